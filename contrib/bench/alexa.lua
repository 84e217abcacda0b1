-- alexa.lua — a wrk script that POSTs pre-signed Alexa IntentRequests.
--
-- It owns sending the bodies wirehub-bench-alexa-sign wrote (one per line,
-- "base64sig<TAB>body", each with its own requestId) with the Alexa headers,
-- optional pacing, and the one BENCH_RESULT line contrib/bench/alexa parses.
-- It must not add a response() callback (that would measure Lua, not wirehub)
-- and must not send a body twice unless the file runs out; then it wraps and
-- counts the repeats (they take the hub's de-duplication path) in `wrapped`.
--
-- Environment: BENCH_ALEXA_BODIES (the signed file, required), BENCH_PATH
-- (default /hooks/alexa), BENCH_CERT_URL (default
-- https://s3.amazonaws.com/echo.api/good.pem), BENCH_RATE (total requests/s over
-- all connections, paced with delay(); unset = as fast as possible; the
-- connections must be enough to carry it at the measured latency), BENCH_THREADS
-- (required: wrk -t; wrk runs a thread's init() before the next thread exists).
-- Each wrk thread takes every T-th line (T = threads), so threads never share one.

local path = os.getenv("BENCH_PATH") or "/hooks/alexa"
local cert_url = os.getenv("BENCH_CERT_URL") or "https://s3.amazonaws.com/echo.api/good.pem"
local bodies_file = os.getenv("BENCH_ALEXA_BODIES")
local rate = tonumber(os.getenv("BENCH_RATE") or "")

local nthreads = tonumber(os.getenv("BENCH_THREADS") or "")
local threads = {}

-- main thread, once per thread before its init(): number the threads
function setup(thread)
    thread:set("id", #threads)
    thread:set("wrapped", 0)
    table.insert(threads, thread)
end

local sigs, bodies, count, pos = {}, {}, 0, 0
interval_ms = 0

function init(args)
    if not nthreads or nthreads < 1 or id >= nthreads then
        error("alexa.lua: set BENCH_THREADS to wrk's -t")
    end
    if not bodies_file then
        error("alexa.lua: set BENCH_ALEXA_BODIES to the signed bodies file")
    end
    local f = assert(io.open(bodies_file, "r"))
    local i = 0
    for line in f:lines() do
        if i % nthreads == id then
            local tab = line:find("\t", 1, true)
            if tab then
                count = count + 1
                sigs[count] = line:sub(1, tab - 1)
                bodies[count] = line:sub(tab + 1)
            end
        end
        i = i + 1
    end
    f:close()
    if count == 0 then
        error("alexa.lua: no signed bodies for thread " .. id .. " in " .. bodies_file)
    end
    if rate and rate > 0 then
        interval_ms = nthreads * 1000 / rate
    end
    wrapped = 0
end

local headers = {
    ["Content-Type"] = "application/json; charset=utf-8",
    ["User-Agent"] = "wirehub-bench/1",
    ["SignatureCertChainUrl"] = cert_url,
}

function request()
    pos = pos + 1
    if pos > count then
        pos = 1
    end
    if wrapped > 0 or pos == 1 and sent_once then
        wrapped = wrapped + 1
    end
    sent_once = true
    headers["Signature-256"] = sigs[pos]
    return wrk.format("POST", path, headers, bodies[pos])
end

-- Pacing: each thread owns an absolute schedule of send slots, interval
-- threads/rate apart; delay() returns the wait until the next free slot (a slot
-- in the past is moved to now: no catch-up bursts). Waiting is not latency.
if rate and rate > 0 then
    local ffi = require("ffi")
    ffi.cdef[[
        typedef struct { long tv_sec; long tv_nsec; } wh_bench_ts;
        int clock_gettime(int clk, wh_bench_ts *ts);
    ]]
    local ts = ffi.new("wh_bench_ts")
    local next_ms = 0
    local function now_ms()
        ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
        return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    end
    function delay()
        local now = now_ms()
        local slot = next_ms > now and next_ms or now
        next_ms = slot + interval_ms
        return math.floor(slot - now + 0.5)
    end
end

-- Runs once, in wrk's main thread, after the run. Durations are microseconds.
function done(summary, latency, requests)
    local secs = summary.duration / 1e6
    local e = summary.errors
    local wraps = 0
    for _, t in ipairs(threads) do
        wraps = wraps + (t:get("wrapped") or 0)
    end
    io.write(string.format(
        "BENCH_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d " ..
        "max_us=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d " ..
        "wrapped=%d\n",
        summary.requests, summary.duration, summary.requests / secs,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout, wraps))
end
