-- webhook.lua — a wrk script that POSTs one fixed ~300-byte JSON webhook.
--
-- It owns the request the webhook benchmark sends and the one machine-readable
-- line the bench runner parses (BENCH_RESULT ...). It must not add per-response
-- Lua callbacks: they would make wrk itself the bottleneck and measure Lua.
--
-- Path: the first script argument (`wrk ... -s webhook.lua URL -- /hooks/x`),
-- else $BENCH_PATH, else /hooks/bench. The URL's own path is ignored.

local default_path = os.getenv("BENCH_PATH") or "/hooks/bench"

wrk.method = "POST"
wrk.path = default_path
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "wirehub-bench/1"
-- A push-like event, 307 bytes: nested objects, arrays, strings with punctuation.
wrk.body = '{"ref":"refs/heads/main","after":"76ae82c7b1a177c8d03f9e96e0adf2466113728f",'
    .. '"repository":{"id":1296269,"full_name":"octo/hello-world","private":false},'
    .. '"pusher":{"name":"ana","email":"ana@example.com"},"commits":[{"id":"76ae82c",'
    .. '"message":"Fix the bench","added":[],"modified":["README.md"]}],"forced":false}'

function init(args)
    if args[1] and args[1] ~= "" then
        wrk.path = args[1]
    end
end

-- Runs once, in wrk's main thread, after the run. Durations are microseconds.
function done(summary, latency, requests)
    local secs = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        "BENCH_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d " ..
        "max_us=%d body_bytes=%d err_connect=%d err_read=%d err_write=%d err_status=%d " ..
        "err_timeout=%d\n",
        summary.requests, summary.duration, summary.requests / secs,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        #wrk.body, e.connect, e.read, e.write, e.status, e.timeout))
end
