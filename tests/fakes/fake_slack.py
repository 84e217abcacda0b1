"""A fake Slack Web API on 127.0.0.1 for wirehub's tests (Python standard library only).

It checks what a real workspace would refuse, and records everything:

- every /api/<method> call needs `Authorization: Bearer <token>` (else `not_authed` /
  `invalid_auth`, as Slack answers: HTTP 200 with ok:false);
- write methods (chat.postMessage, chat.update, reactions.add, auth.test) must be POSTs
  with `Content-Type: application/json; charset=utf-8` and a JSON object body; read
  methods (conversations.replies, conversations.history, users.info) GETs with query
  arguments and no body. Argument shapes are checked per method. Every violation is
  appended to `problems` (tests assert it stays empty) and answered ok:false;
- conversations.replies / .history paginate with `response_metadata.next_cursor`,
  `page_size` messages a page at most (and never more than `limit`);
- `script[method]` holds one-shot answers (status, headers, body) used before the
  normal behaviour: `ok:false` errors, 429 with Retry-After, 5xx;
- `delay[method]` (seconds) stalls answers of a method;
- POSTs to /response/<anything> are response_url deliveries, kept in `responses`.

Channels: "#team"/"team" is C0TEAM, "#slow" is C0SLOW, "#other" is C0OTHER; "#private" (C0PRIV)
answers not_in_channel; anything else channel_not_found. Messages this fake posts are
the bot's (user UBOT, bot BBOT, app A0APP). `auto_replies` [(user, text), …] are added as
thread replies under every new top-level post.
"""
import base64
import http.server
import json
import socketserver
import threading
import time
import urllib.parse

WRITE_METHODS = {"chat.postMessage", "chat.update", "reactions.add", "auth.test"}
READ_METHODS = {"conversations.replies", "conversations.history", "users.info"}


class FakeSlack:
    def __init__(self, token="xoxb-test", page_size=2):
        self.token = token
        self.page_size = page_size
        self.lock = threading.Condition()
        self.requests = []    # every request: method, path, api, query, headers, body, json, time
        self.problems = []    # requests a real Slack would have refused
        self.responses = []   # response_url POSTs: path, json, time
        self.script = {}      # api method -> [(status, headers, body)] one-shot answers
        self.delay = {}       # api method -> seconds to stall
        self.auto_replies = []
        self.bot = {"user_id": "UBOT", "bot_id": "BBOT", "app_id": "A0APP", "team_id": "T0TEAM"}
        self.names = {"#team": "C0TEAM", "team": "C0TEAM", "#slow": "C0SLOW", "slow": "C0SLOW",
                      "#other": "C0OTHER", "other": "C0OTHER", "#private": "C0PRIV"}
        self.channels = {"C0TEAM": [], "C0SLOW": [], "C0OTHER": []}
        self.users = {
            "U1": {"id": "U1", "name": "ben", "real_name": "Ben Adams",
                   "profile": {"display_name": "Ben", "real_name": "Ben Adams"}},
            "U2": {"id": "U2", "name": "chen", "real_name": "Chen Li",
                   "profile": {"display_name": "", "real_name": "Chen Li"}},
        }
        self.reactions = []
        self._clock = int(time.time())
        self._seq = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                status, headers, out = fake._handle(self.command, self.path, self.headers, body)
                if not isinstance(out, (bytes, str)):
                    out = json.dumps(out)
                    headers = dict(headers)
                    headers.setdefault("Content-Type", "application/json; charset=utf-8")
                if isinstance(out, str):
                    out = out.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.api_base = self.url + "/api"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # ---- helpers for tests ------------------------------------------------------------

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def calls(self, api=None):
        with self.lock:
            return [r for r in self.requests if api is None or r["api"] == api]

    def wait(self, pred, timeout=10.0, what="a condition at the fake Slack"):
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for " + what)
                self.lock.wait(left)

    def wait_calls(self, api, n, timeout=10.0):
        return self.wait(lambda: (lambda got: got if len(got) >= n else None)(
            [r for r in self.requests if r["api"] == api]), timeout,
            "%d call(s) of %s" % (n, api))

    def wait_responses(self, n, timeout=10.0):
        return self.wait(lambda: self.responses[:] if len(self.responses) >= n else None,
                         timeout, "%d response_url POST(s)" % n)

    def thread_of(self, channel, ts):
        with self.lock:
            return [m for m in self.channels.get(channel, [])
                    if m["ts"] == ts or m.get("thread_ts") == ts]

    def add_message(self, channel, user, text, thread_ts=None):
        with self.lock:
            return self._add(channel, {"user": user, "text": text}, thread_ts)

    # ---- internals ---------------------------------------------------------------------

    def _next_ts(self):
        self._seq += 1
        return "%d.%06d" % (self._clock + self._seq, self._seq)

    def _add(self, channel, msg, thread_ts=None):
        msg = dict(msg, ts=self._next_ts(), type="message")
        if thread_ts:
            msg["thread_ts"] = thread_ts
        self.channels[channel].append(msg)
        self.lock.notify_all()
        return msg

    def _problem(self, text):
        self.problems.append(text)
        return 200, {}, {"ok": False, "error": "fake_refused", "detail": text}

    def _handle(self, verb, raw_path, headers, body):
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        try:
            js = json.loads(body) if body else None
        except ValueError:
            js = None
        api = path[len("/api/"):] if path.startswith("/api/") else None
        rec = {"method": verb, "path": raw_path, "api": api, "query": query,
               "headers": {k.lower(): v for k, v in headers.items()}, "body": body, "json": js,
               "time": time.monotonic()}
        with self.lock:
            self.requests.append(rec)
            if path.startswith("/response/"):
                self.responses.append({"path": path, "json": js, "time": rec["time"],
                                       "content_type": rec["headers"].get("content-type")})
                self.lock.notify_all()
                return 200, {}, "ok"
            self.lock.notify_all()
            if api is None:
                return 404, {}, {"error": "no such path"}
            delay = self.delay.get(api, 0)
        if delay:
            time.sleep(delay)
        with self.lock:
            out = self._api(api, verb, rec, js, query)
            self.lock.notify_all()
            return out

    def _api(self, api, verb, rec, js, query):
        auth = rec["headers"].get("authorization")
        if not auth:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if auth != "Bearer " + self.token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        if api in WRITE_METHODS:
            ctype = rec["headers"].get("content-type", "")
            if verb != "POST":
                return self._problem("%s must be a POST, got %s" % (api, verb))
            if ctype.replace(" ", "").lower() != "application/json;charset=utf-8":
                return self._problem("%s: Content-Type %r, want application/json; charset=utf-8"
                                     % (api, ctype))
            if not isinstance(js, dict):
                return self._problem("%s: the body is not a JSON object" % api)
            args = js
        elif api in READ_METHODS:
            if verb != "GET" or rec["body"]:
                return self._problem("%s must be a GET with query arguments" % api)
            args = query
        else:
            return 200, {}, {"ok": False, "error": "unknown_method"}
        answers = self.script.get(api)
        if answers:
            return answers.pop(0)
        return getattr(self, "_" + api.replace(".", "_"))(args)

    def _channel(self, args, key="channel"):
        name = args.get(key)
        if not isinstance(name, str) or not name:
            return None, self._problem("`%s` must be a non-empty string" % key)
        cid = self.names.get(name, name)
        if cid == "C0PRIV":
            return None, (200, {}, {"ok": False, "error": "not_in_channel"})
        if cid not in self.channels:
            return None, (200, {}, {"ok": False, "error": "channel_not_found"})
        return cid, None

    def _msg(self, cid, ts):
        return next((m for m in self.channels[cid] if m["ts"] == ts), None)

    def _chat_postMessage(self, a):
        cid, err = self._channel(a)
        if err:
            return err
        text, blocks, thread_ts = a.get("text"), a.get("blocks"), a.get("thread_ts")
        if text is None and blocks is None:
            return 200, {}, {"ok": False, "error": "no_text"}
        if (text is not None and not isinstance(text, str)) or \
                (blocks is not None and not isinstance(blocks, list)) or \
                (thread_ts is not None and not isinstance(thread_ts, str)):
            return self._problem("chat.postMessage: text str, blocks list, thread_ts str")
        if set(a) - {"channel", "text", "blocks", "thread_ts", "reply_broadcast"}:
            return self._problem("chat.postMessage: unexpected arguments %s" % sorted(a))
        msg = {"user": self.bot["user_id"], "bot_id": self.bot["bot_id"],
               "app_id": self.bot["app_id"], "text": text or ""}
        if blocks is not None:
            msg["blocks"] = blocks
        m = self._add(cid, msg, thread_ts)
        if not thread_ts:
            for user, rtext in self.auto_replies:
                self._add(cid, {"user": user, "text": rtext}, m["ts"])
        return 200, {}, {"ok": True, "channel": cid, "ts": m["ts"], "message": m}

    def _chat_update(self, a):
        cid, err = self._channel(a)
        if err:
            return err
        m = self._msg(cid, a.get("ts"))
        if not m:
            return 200, {}, {"ok": False, "error": "message_not_found"}
        m["text"] = a.get("text", m["text"])
        return 200, {}, {"ok": True, "channel": cid, "ts": m["ts"], "text": m["text"]}

    def _reactions_add(self, a):
        cid, err = self._channel(a)
        if err:
            return err
        if not isinstance(a.get("timestamp"), str) or not isinstance(a.get("name"), str) \
                or ":" in a["name"]:
            return self._problem("reactions.add: timestamp and name (no colons) are strings")
        self.reactions.append((cid, a["timestamp"], a["name"]))
        return 200, {}, {"ok": True}

    def _auth_test(self, a):
        return 200, {}, dict(self.bot, ok=True, url="https://fake.slack.com/", user="wirehub")

    def _page(self, msgs, a, key):
        limit = a.get("limit", "100")
        if not limit.isdigit() or int(limit) < 1:
            return None, None, None, self._problem("%s: limit must be a positive integer" % key)
        size = min(int(limit), self.page_size)
        start = 0
        if a.get("cursor"):
            try:
                start = int(base64.b64decode(a["cursor"]).decode().split(":")[1])
            except (ValueError, IndexError):
                return None, None, None, (200, {}, {"ok": False, "error": "invalid_cursor"})
        page = msgs[start:start + size]
        more = start + size < len(msgs)
        nxt = base64.b64encode(("next:%d" % (start + size)).encode()).decode() if more else ""
        return page, more, nxt, None

    def _conversations_replies(self, a):
        cid, err = self._channel(a)
        if err:
            return err
        ts = a.get("ts")
        parent = self._msg(cid, ts) if ts else None
        if not parent:
            return 200, {}, {"ok": False, "error": "thread_not_found"}
        oldest = float(a.get("oldest") or 0)
        replies = sorted((m for m in self.channels[cid]
                          if m.get("thread_ts") == ts and m["ts"] != ts
                          and float(m["ts"]) > oldest), key=lambda m: float(m["ts"]))
        page, more, nxt, err = self._page(replies, a, "conversations.replies")
        if err:
            return err
        # like Slack, the parent leads every page
        return 200, {}, {"ok": True, "messages": [parent] + page, "has_more": more,
                         "response_metadata": {"next_cursor": nxt}}

    def _conversations_history(self, a):
        cid, err = self._channel(a)
        if err:
            return err
        oldest = float(a.get("oldest") or 0)
        top = sorted((m for m in self.channels[cid]
                      if m.get("thread_ts") in (None, m["ts"]) and float(m["ts"]) > oldest),
                     key=lambda m: -float(m["ts"]))
        page, more, nxt, err = self._page(top, a, "conversations.history")
        if err:
            return err
        return 200, {}, {"ok": True, "messages": page, "has_more": more,
                         "response_metadata": {"next_cursor": nxt}}

    def _users_info(self, a):
        u = self.users.get(a.get("user"))
        if not u:
            return 200, {}, {"ok": False, "error": "user_not_found"}
        return 200, {}, {"ok": True, "user": u}
