"""Faults from APIs, through the real binary: connection refused, a reset in
the middle of a response, a stall longer than the timeout, 500/503 bursts, a
429 storm, invalid JSON, a 10 MiB answer. Meanwhile webhooks are still
answered, the hub does not spin while it waits, the response it reads is
capped, and every call ends delivered or dead-lettered — nothing silent."""
import json
import os
import socket
import sqlite3
import threading
import time
import unittest

from whtest import SLOW, FakeAPI, HubTest, wait_until

CONFIG = """
connectors:
  in: { type: webhook }
  api: { type: webhook, max_attempts: 4, timeout_ms: 1000 }
"""

RULES = """
rules:
  - name: call
    on: in/*
    do:
      - call: api.request
        with: { url: "{{body.url}}" }
"""


class RawServer:
    """Accepts connections and misbehaves: 'reset' sends half a response and resets."""

    def __init__(self, mode):
        self.mode, self.count = mode, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d/x" % self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        import struct
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            try:
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: application/json\r\n\r\n{\"par")
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            finally:
                c.close()

    def close(self):
        self.stop = True
        self.sock.close()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class FaultsTest(HubTest):
    def test_fault_matrix(self):
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        refused_url = "http://127.0.0.1:%d/x" % closed.getsockname()[1]
        closed.close()  # nothing listens there now
        reset = RawServer("reset")
        self.addCleanup(reset.close)
        big = b'{"pad":"' + b"x" * (10 * 1024 * 1024) + b'"}'
        api = FakeAPI({
            "/burst": [(500, {}, {"e": 1}), (503, {}, {"e": 2}), (500, {}, {"e": 3}),
                       (200, {}, {"ok": 1})],
            "/storm": [(429, {"Retry-After": "1"}, {"e": 1})] * 3 + [(200, {}, {"ok": 1})],
            "/stall": [(200, {}, lambda rec: time.sleep(30) or {"late": 1})],
            "/badjson": [(200, {"Content-Type": "application/json"}, b'{"truncated": ')],
            "/huge": [(200, {"Content-Type": "application/json"}, big)],
        })
        self.addCleanup(api.close)
        h = self.hub(CONFIG, files={"rules/r.yaml": RULES})
        cases = {
            "refused": refused_url, "reset": reset.url, "burst": api.url + "/burst",
            "storm": api.url + "/storm", "stall": api.url + "/stall",
            "badjson": api.url + "/badjson", "huge": api.url + "/huge",
        }
        for name, url in cases.items():
            s, b = h.json_request("POST", "/hooks/in/" + name, {"url": url})
            self.assertEqual(s, 200, b)

        # webhooks are answered while the faults play out
        for i in range(20):
            s, b = h.json_request("POST", "/hooks/in/other", {"url": api.url + "/fine"}, timeout=5)
            self.assertEqual(s, 200)

        # waiting for retries costs no CPU: measure a quiet second
        time.sleep(0.5)
        c0 = cpu_seconds(h.proc.pid)
        time.sleep(2)
        self.assertLess(cpu_seconds(h.proc.pid) - c0, 0.5 * SLOW, "the hub spins while waiting")

        db = os.path.join(h.dir, "wirehub.db")

        def outcomes():
            con = sqlite3.connect(db)
            try:
                rows = con.execute(
                    "SELECT o.state, o.attempts, o.last_error, json_extract(e.envelope, '$.kind') "
                    "FROM outbox o JOIN runs r ON o.run_id = r.id "
                    "JOIN events e ON e.id = r.event_id").fetchall()
            finally:
                con.close()
            if any(state == "pending" for state, *_ in rows) or len(rows) < len(cases) + 20:
                return None
            return {kind: (state, attempts, err) for state, attempts, err, kind in rows
                    if kind != "other"}

        got = wait_until(outcomes, 120, "every call delivered or dead")
        self.assertEqual(got["burst"][:2], ("done", 4))
        self.assertEqual(got["storm"][:2], ("done", 4))
        self.assertEqual(got["badjson"][0], "done")  # the body is kept as text
        for name in ("refused", "reset", "stall"):
            self.assertEqual(got[name][:2], ("dead", 4), name)
        self.assertIn("timed out", got["stall"][2])
        # an answer over the size cap would be the same next time: dead at once
        self.assertEqual(got["huge"][:2], ("dead", 1))
        self.assertIn("response larger than the 8388608-byte limit", got["huge"][2])
        self.assertEqual(reset.count, 4)
        # the 429 storm waited as told: each retry at least a second after the last
        times = [r["time"] for r in api.requests if r["path"] == "/storm"]
        self.assertTrue(all(b - a >= 1.0 for a, b in zip(times, times[1:])), times)


if __name__ == "__main__":
    unittest.main()
