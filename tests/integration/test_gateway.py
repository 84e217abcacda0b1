"""The gateway through the real binary: signed webhooks reach the bus (seen by
`wirehub tail`), every refusal has the right status and JSON body, and after
each one /healthz still answers."""
import hashlib
import hmac
import json
import os
import socket
import unittest

from whtest import HubTest, Tail

SECRET = "It's a Secret to Everybody"
CONFIG = """
connectors:
  gh:
    type: webhook
    secret: "${env:WH_TEST_SECRET}"
  open:
    type: webhook
    kind: ping
  say:
    type: console
"""


def sign(body, secret=SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class GatewayTest(HubTest):
    def setUp(self):
        super().setUp()
        self.h = self.hub(CONFIG, env={"WH_TEST_SECRET": SECRET})

    def assert_error(self, status, body, want_status, want_error):
        self.assertEqual(status, want_status, body)
        self.assertIsInstance(body, dict)
        self.assertEqual(body.get("error"), want_error)
        self.assertIsInstance(body.get("detail"), str)
        self.assertTrue(self.h.healthy(), "/healthz must answer after a %d" % want_status)

    def test_signed_webhook_reaches_tail(self):
        tail = Tail(self.h, "in/")
        body = json.dumps({"action": "opened", "number": 7}).encode()
        status, resp = self.h.json_request(
            "POST", "/hooks/gh/pull_request?x=1", body,
            {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body),
             "Authorization": "Bearer hidden"})
        self.assertEqual(status, 200, resp)
        self.assertTrue(resp["ok"])
        self.assertEqual(len(resp["events"]), 1)
        msg = tail.wait_message(lambda m: m.get("id") == resp["events"][0])
        self.assertEqual(msg["topic"], "in/gh/pull_request")
        self.assertEqual(msg["source"], "gh")
        self.assertEqual(msg["kind"], "pull_request")
        self.assertRegex(msg["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertRegex(msg["id"], r"^[0-9a-f]{32}$")
        self.assertEqual(msg["data"]["body"], {"action": "opened", "number": 7})
        self.assertEqual(msg["data"]["query"].get("x"), "1")
        self.assertNotIn("authorization", msg["data"]["headers"])
        self.assertEqual(tail.stop(), 0)

    def test_unsigned_instance_and_form_body(self):
        tail = Tail(self.h, "in/open/")
        status, resp = self.h.json_request("POST", "/hooks/open", "a=1&b=two+words",
                                           {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200, resp)
        msg = tail.wait_message(lambda m: m.get("id") == resp["events"][0])
        self.assertEqual(msg["kind"], "ping")
        self.assertEqual(msg["data"]["body"], {"a": "1", "b": "two words"})
        tail.stop()

    def test_bad_and_missing_signature_401(self):
        body = b'{"a":1}'
        s, b = self.h.json_request("POST", "/hooks/gh", body, {
            "Content-Type": "application/json", "X-Hub-Signature-256": sign(body, "wrong")})
        self.assert_error(s, b, 401, "bad_signature")
        s, b = self.h.json_request("POST", "/hooks/gh", body, {"Content-Type": "application/json"})
        self.assert_error(s, b, 401, "missing_signature")
        self.assertNotIn(SECRET, self.h.err.text())

    def raw_exchange(self, head, body_part=b""):
        """Send raw bytes and read until the server closes or sends a whole JSON answer."""
        sock = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        try:
            sock.sendall(head + body_part)
            data = b""
            while True:
                try:
                    part = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not part:
                    break
                data += part
                if b"\r\n\r\n" in data and data.rstrip().endswith(b"}"):
                    break
            return data
        finally:
            sock.close()

    def test_oversized_body_413(self):
        # declared too large: refused before the body is read
        data = self.raw_exchange(b"POST /hooks/open HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n" % (1024 * 1024 + 1), b'{"x":"')
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:100])
        self.assertIn(b'"error":"payload_too_large"', data)
        self.assertTrue(self.h.healthy())
        # exactly at the limit is accepted (and, being bad JSON, refused by the connector)
        body = b"a" * (1024 * 1024)
        s, b = self.h.json_request("POST", "/hooks/open", body, {"Content-Type": "application/json"})
        self.assert_error(s, b, 400, "bad_json")

    def test_oversized_chunked_body_413(self):
        sock = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        sock.sendall(b"POST /hooks/open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"a" * 65536
        for _ in range(20):
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            part = sock.recv(65536)
            if not part:
                break
            data += part
        sock.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:100])
        self.assertIn(b'"payload_too_large"', data)
        self.assertTrue(self.h.healthy())

    def test_a_port_in_use_stops_start_up_cleanly(self):
        # every connector is up by the time the gateway binds: the failed start
        # must take down what runs their code before their destroy() (a
        # sanitizer or memcheck report would show in the exit status and log)
        h = self.hub(CONFIG, env={"WH_TEST_SECRET": SECRET})
        from whtest import Hub
        other = Hub(CONFIG + "  team:\n    type: slack\n    signing_secret: x\n"
                    "    token: xoxb-1\n    api_base: http://127.0.0.1:9\n"
                    "listen: 127.0.0.1:%d\n" % h.port, env={"WH_TEST_SECRET": SECRET})
        self.hubs.append(other)
        r = other.cmd("run", "-c", other.config_path, timeout=60)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn("cannot listen on 127.0.0.1:%d" % h.port, err)
        self.assertNotIn("Sanitizer", err)
        self.assertTrue(h.healthy())

    def test_one_hub_per_state_file(self):
        # a second `wirehub run` on the same config must not replay the first
        # one's events or take its bus sockets before failing
        h = self.hub(CONFIG, env={"WH_TEST_SECRET": SECRET})
        r = h.cmd("run", "-c", h.config_path, timeout=60)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn("another wirehub (pid %d) is running on the state file" % h.proc.pid, err)
        self.assertNotIn("bound endpoint", err, "it stopped before the bus")
        self.assertTrue(h.healthy())
        t = Tail(h)  # the first hub's bus socket is still its own
        s, b = h.json_request("POST", "/hooks/open", {"x": 1})
        self.assertEqual(s, 200, b)
        t.wait_message(lambda m: m.get("source") == "open")
        self.assertEqual(t.stop(), 0)
        self.assertEqual(h.stop(), 0)
        # and its ipc socket files are gone with it
        left = [f for f in os.listdir(h.dir) if f.startswith("wirehub.bus")]
        self.assertEqual(left, [])

    def test_a_state_file_removed_under_the_hub_acknowledges_nothing(self):
        # SQLite would go on writing to the unlinked file, which no restart reads:
        # nothing may be answered as journaled from then on
        h = self.hub(CONFIG, env={"WH_TEST_SECRET": SECRET})
        s, b = h.json_request("POST", "/hooks/open", {"n": 1})
        self.assertEqual(s, 200, b)
        os.unlink(os.path.join(h.dir, "wirehub.db"))
        s, b = h.json_request("POST", "/hooks/open", {"n": 2})
        self.assertEqual((s, b.get("error")), (503, "store_unavailable"), b)
        h.err.wait_for(r"error store: the state file \S+wirehub.db was removed or replaced while "
                       r"wirehub had it open")
        s, b = h.json_request("GET", "/healthz")
        self.assertEqual((s, b["status"]), (503, "state_file_gone"))
        self.assertEqual(h.stop(), 0)

    def test_one_hub_per_state_file_through_a_symlink(self):
        # another config whose state is a symlink to this hub's state file: the
        # same file, so the same lock (and the same -wal), not a second writer
        h = self.hub(CONFIG, env={"WH_TEST_SECRET": SECRET})
        from whtest import Hub
        other = Hub(CONFIG + "state: alias.db\nbus: { bind: \"ipc://other.bus\" }\n",
                    env={"WH_TEST_SECRET": SECRET})
        self.hubs.append(other)
        os.symlink(os.path.join(h.dir, "wirehub.db"), os.path.join(other.dir, "alias.db"))
        r = other.cmd("run", "-c", other.config_path, timeout=60)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn("another wirehub (pid %d) is running on the state file %s"
                      % (h.proc.pid, os.path.realpath(os.path.join(h.dir, "wirehub.db"))), err)
        self.assertFalse(os.path.exists(os.path.join(other.dir, "alias.db-wal")))
        self.assertTrue(h.healthy())
        # a hard link is the same file under a second name: refused as such
        os.unlink(os.path.join(other.dir, "alias.db"))
        os.link(os.path.join(h.dir, "wirehub.db"), os.path.join(other.dir, "alias.db"))
        r = other.cmd("run", "-c", other.config_path, timeout=60)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn("alias.db: the state file has 2 hard links; it must have one name", err)
        self.assertFalse(os.path.exists(os.path.join(other.dir, "alias.db-wal")))
        self.assertTrue(h.healthy())

    def test_a_second_hub_cannot_take_a_running_hub_bus(self):
        # another config in the same folder has the same default ipc bus: its hub
        # is refused there (ZeroMQ would take the socket over), and its failed
        # start leaves the running hub's bus alone
        h = self.hub(CONFIG, env={"WH_TEST_SECRET": SECRET})
        with open(os.path.join(h.dir, "other.yaml"), "w") as f:
            f.write("listen: 127.0.0.1:0\nstate: other.db\n"
                    "connectors:\n  open: { type: webhook }\n")
        r = h.cmd("run", "-c", "other.yaml", timeout=60)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn("wirehub.bus: another process (another hub?) listens on it", err)
        t = Tail(h)
        s, b = h.json_request("POST", "/hooks/open", {"x": 2})
        self.assertEqual(s, 200, b)
        t.wait_message(lambda m: m.get("source") == "open")
        self.assertEqual(t.stop(), 0)

    def test_bus_endpoints_relative_paths_and_wildcards(self):
        # a relative ipc path is relative to the config's folder, whatever the
        # current directory; `send` reaches a tcp://* endpoint over loopback; a
        # host name cannot be bound and is a config error at its line
        import subprocess
        from whtest import BIN, Hub

        def free_port():
            # the bus uses a tcp endpoint's port and the next one
            for _ in range(50):
                a, b = socket.socket(), socket.socket()
                try:
                    a.bind(("127.0.0.1", 0))
                    p = a.getsockname()[1]
                    b.bind(("127.0.0.1", p + 1))
                    return p
                except OSError:
                    continue
                finally:
                    a.close()
                    b.close()
            raise AssertionError("no two free ports in a row")
        port = free_port()
        cfg = CONFIG + "bus:\n  bind: [\"ipc://sock/bus\", \"tcp://*:%d\"]\n" % port
        h = self.hub(cfg, files={"sock/.keep": ""}, env={"WH_TEST_SECRET": SECRET})
        self.assertTrue(os.path.exists(os.path.join(h.dir, "sock", "bus")))
        t = Tail(h)
        r = subprocess.run([BIN, "send", "-c", h.config_path, "open", "ping", "-"], cwd="/",
                           env=h.env, input=b'{"via": "ipc"}', capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        t.wait_message(lambda m: m.get("data") == {"via": "ipc"})
        self.assertEqual(t.stop(), 0)
        bad = Hub("bus:\n  bind: \"tcp://localhost:%d\"\n" % port)
        self.hubs.append(bad)
        r = bad.cmd("check", "-c", bad.config_path)
        self.assertEqual(r.returncode, 2)
        self.assertIn(bad.config_path + ":2:9: a tcp bus endpoint needs a numeric host", r.stderr.decode())
        for ep in ("tcp://*:%d", "tcp://[::1]:%d"):
            if "::1" in ep and not socket.has_ipv6:
                continue
            star = Hub("listen: 127.0.0.1:0\nbus:\n  bind: \"%s\"\n"
                       "connectors:\n  open: { type: webhook }\n" % (ep % free_port()))
            self.hubs.append(star)
            star.start()
            t = Tail(star)
            r = star.cmd("send", "-c", star.config_path, "open", "ping", "-",
                         input=json.dumps({"via": ep}).encode())
            self.assertEqual(r.returncode, 0, r.stderr)
            t.wait_message(lambda m: m.get("data") == {"via": ep})
            self.assertEqual(t.stop(), 0)

    def test_stray_bytes_in_headers_and_query_are_kept_as_u_fffd(self):
        t = Tail(self.h, "in/open/")
        req = (b"POST /hooks/open?a=%FF&b=ok HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\n"
               b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=10)
        s.sendall(req)
        self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 200"))
        s.close()
        m = t.wait_message(lambda m: m.get("source") == "open")
        self.assertEqual(m["data"]["query"], {"a": "\ufffd", "b": "ok"})
        self.assertEqual(m["data"]["headers"]["x-latin"], "caf\ufffd")
        self.assertEqual(t.stop(), 0)

    def test_unknown_instance_404(self):
        s, b = self.h.json_request("POST", "/hooks/nope", {"a": 1})
        self.assert_error(s, b, 404, "not_found")
        s, b = self.h.json_request("GET", "/elsewhere")
        self.assert_error(s, b, 404, "not_found")
        # an instance without a webhook (console) is not a route either
        s, b = self.h.json_request("POST", "/hooks/say", {"a": 1})
        self.assert_error(s, b, 404, "not_found")

    def test_wrong_method_405(self):
        status, headers, data = self.h.request("GET", "/hooks/open")
        self.assert_error(status, json.loads(data), 405, "method_not_allowed")
        self.assertEqual(headers.get("allow"), "POST")
        s, b = self.h.json_request("POST", "/healthz", {"a": 1})
        self.assert_error(s, b, 405, "method_not_allowed")

    def test_malformed_json_400(self):
        s, b = self.h.json_request("POST", "/hooks/open", b'{"a": ', {"Content-Type": "application/json"})
        self.assert_error(s, b, 400, "bad_json")

    def test_unsupported_media_type_415(self):
        s, b = self.h.json_request("POST", "/hooks/open", b"<x/>", {"Content-Type": "application/xml"})
        self.assert_error(s, b, 415, "unsupported_media_type")

    def test_slow_client_is_dropped_and_others_served(self):
        h = self.hub(CONFIG.replace("connectors:", "gateway: { timeout: 1s }\nconnectors:"),
                     env={"WH_TEST_SECRET": SECRET})
        slow = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        slow.sendall(b"POST /hooks/open HTTP/1.1\r\nHost: x\r\nContent-Ty")  # and then nothing
        # others are served meanwhile
        for _ in range(5):
            self.assertTrue(h.healthy())
        # the slow one is closed by the server once the timeout passes
        slow.settimeout(10)
        try:
            data = slow.recv(4096)
        except ConnectionResetError:
            data = b""
        self.assertEqual(data, b"", "the server closes a connection that stalls")
        slow.close()
        self.assertTrue(h.healthy())

    def test_max_waiting_holds_for_callers_arriving_together(self):
        # the place among max_waiting is taken when the connector asks to wait,
        # not after the event's journal commit: a burst cannot all slip past it
        import threading
        h = self.hub("gateway: { max_waiting: 2 }\nconnectors:\n"
                     "  ask: { type: webhook, wait_ms: 4000, fallback: { text: later } }\n")
        out = []
        go = threading.Barrier(8)

        def ask():
            go.wait(10)
            out.append(h.json_request("POST", "/hooks/ask", {"q": 1}, timeout=20))
        ts = [threading.Thread(target=ask) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        statuses = sorted(s for s, _ in out)
        self.assertEqual(statuses, [200, 200] + [429] * 6, out)
        self.assertTrue(all(b == {"text": "later"} for s, b in out if s == 200))
        self.assertTrue(all(b["error"] == "too_many_waiting" for s, b in out if s == 429))
        self.assertEqual(h.json_request("GET", "/healthz")[1]["pending"], 0)

    def test_healthz_and_clean_stop(self):
        s, b = self.h.json_request("GET", "/healthz")
        self.assertEqual(s, 200)
        self.assertEqual(b["status"], "ok")
        self.assertEqual(b["instances"], 3)
        self.assertEqual(self.h.stop(), 0)
        self.assertIn("hub: stopped", self.h.err.text())


class StopUnderLoadTest(HubTest):
    """SIGTERM while requests stream in: the hub exits 0 (no crash, no sanitizer
    report), every request gets an answer or a closed connection, and every
    event it acknowledged is in the journal."""

    def test_sigterm_under_load_keeps_every_acknowledged_event(self):
        import http.client
        import os
        import sqlite3
        import threading
        from whtest import wait_until
        h = self.hub("connectors:\n  open:\n    type: webhook\n    kind: ping\n")
        acked, lock, stop = [], threading.Lock(), threading.Event()
        statuses = set()

        def client():
            conn = None
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
                    conn.request("POST", "/hooks/open", body=b'{"n": 1}',
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException):
                    conn = None  # the hub is going away: keep trying until told to stop
                    continue
                with lock:
                    statuses.add(resp.status)
                    if resp.status == 200:
                        acked.extend(json.loads(data)["events"])
        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(acked) >= 300, 30, "300 acknowledged events")
            rc = h.stop()
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(rc, 0)
        self.assertLessEqual(statuses, {200, 503}, "answered 200, or 503 while stopping")
        db = sqlite3.connect(os.path.join(h.dir, "wirehub.db"))
        have = {row[0] for row in db.execute("SELECT id FROM events")}
        db.close()
        missing = [i for i in acked if i not in have]
        self.assertEqual(missing, [], "acknowledged events missing from the journal")


if __name__ == "__main__":
    unittest.main()
