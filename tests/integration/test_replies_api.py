"""The replies API through the real binary: bearer tokens limited to key
prefixes (401/403), unread and peek, since, and long polls that return when a
reply lands or when the wait ends."""
import threading
import time
import unittest

from whtest import FakeAPI, HubTest, wait_until

CONFIG = """
gateway:
  timeout: 1s
connectors:
  in:
    type: webhook
  api:
    type: webhook
  ask:
    type: webhook
    wait_ms: 5000
api:
  tokens:
    phone:
      token: "${env:WH_PHONE_TOKEN}"
      keys: ["thread/"]
    other:
      token: "other-token-0123456789"
      keys: ["elsewhere/"]
"""

RULES = """
rules:
  - name: start
    on: in/start
    do:
      - await: api.poll
        with: { url: "%(url)s/thread" }
        key: "thread/ana"
        every: 1s
        for: 60s
  - name: read
    on: ask/*
    load: { replies: { key: "thread/ana", unread: true, limit: 2 } }
    respond: { ids: "{{#replies}}{{id}},{{/replies}}" }
"""

TOKEN = "phone-token-0123456789abcdef"


class RepliesApiTest(HubTest):
    def setUp(self):
        super().setUp()
        self.items = []
        self.api = FakeAPI({"/thread": [(200, {}, lambda rec: {"items": list(self.items)})]})
        self.addCleanup(self.api.close)
        self.h = self.hub(CONFIG, files={"rules/r.yaml": RULES % {"url": self.api.url}},
                          env={"WH_PHONE_TOKEN": TOKEN})

    def get(self, path, token=TOKEN, timeout=10):
        headers = {"Authorization": "Bearer " + token} if token else {}
        return self.h.json_request("GET", path, headers=headers, timeout=timeout)

    def add(self, i, author, text):
        mark = len(self.h.err.lines)
        self.items.append({"id": str(i), "author": author, "text": text})
        self.h.err.wait_for(r"await: stored .* key=thread/ana", start=mark)

    def test_auth(self):
        s, b = self.get("/v1/replies/thread/ana", token=None)
        self.assertEqual((s, b["error"]), (401, "unauthorized"))
        s, b = self.get("/v1/replies/thread/ana", token="wrong-token-0123456789")
        self.assertEqual(s, 401)
        s, b = self.get("/v1/replies/thread/ana", token="other-token-0123456789")
        self.assertEqual((s, b["error"]), (403, "forbidden"))
        s, b = self.get("/v1/replies/private/x")
        self.assertEqual(s, 403)
        self.assertNotIn(TOKEN, self.h.err.text())

    def test_a_long_poll_outlasts_the_request_timeout(self):
        # gateway.timeout (1s here) bounds a slow client's request, not a long
        # poll's wait: it was cut with no answer at 3 × timeout
        t0 = time.monotonic()
        s, b = self.get("/v1/replies/thread/ana?wait=5", timeout=20)
        self.assertEqual((s, b["replies"]), (200, []))
        self.assertGreaterEqual(time.monotonic() - t0, 4.9)

    def test_a_long_poll_whose_caller_left_marks_nothing_read(self):
        import socket
        self.h.json_request("POST", "/hooks/in/start", {})
        self.api.wait_requests(1, "/thread")
        # a client that gives up on its unread long poll before the reply lands
        c = socket.create_connection(("127.0.0.1", self.h.port))
        c.sendall(("GET /v1/replies/thread/ana?unread=1&wait=30 HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % TOKEN).encode())
        polls = lambda: self.h.json_request("GET", "/healthz")[1]["polls"]
        wait_until(lambda: polls() == 1, 10, "the long poll parked")
        c.close()
        self.items.append({"id": "1", "author": "Ben", "text": "great"})
        wait_until(lambda: polls() == 0, 20, "the long poll answered (into a closed socket)")
        # the reply stays unread for the caller that does ask
        s, b = self.get("/v1/replies/thread/ana?unread=1")
        self.assertEqual(([r["text"] for r in b["replies"]], b["unread"]), (["great"], 0))

    def test_long_polls_on_one_key_share_a_reply_without_empty_answers(self):
        # Two marking long polls and a peek wait on one key. The peek sees the
        # reply whichever marking poll takes it; the marking poll that finds
        # nothing left waits on (no early empty answer) and gets the next one.
        self.h.json_request("POST", "/hooks/in/start", {})
        self.api.wait_requests(1, "/thread")
        out = {}

        def poll(name, query):
            out[name] = self.get("/v1/replies/thread/ana?" + query, timeout=40)

        polls = lambda: self.h.json_request("GET", "/healthz")[1]["polls"]
        threads = [threading.Thread(target=poll, args=a) for a in
                   (("m1", "unread=1&wait=30"), ("m2", "unread=1&wait=30"),
                    ("peek", "unread=1&peek=1&wait=30"))]
        for t in threads:
            t.start()
        wait_until(lambda: polls() == 3, 10, "three long polls parked")
        self.items.append({"id": "1", "author": "Ben", "text": "great"})
        threads[2].join(20)
        self.assertEqual([r["text"] for r in out["peek"][1]["replies"]], ["great"])
        wait_until(lambda: len(out) == 2, 20, "one marking poll answered")
        self.assertEqual(polls(), 1, "the other waits on")
        first = "m1" if "m1" in out else "m2"
        self.assertEqual([r["text"] for r in out[first][1]["replies"]], ["great"])
        self.items.append({"id": "2", "author": "Chen", "text": "at three"})
        for t in threads:
            t.join(35)
        second = "m2" if first == "m1" else "m1"
        self.assertEqual([r["text"] for r in out[second][1]["replies"]], ["at three"])
        self.assertEqual(out[second][1]["unread"], 0)

    def test_unread_peek_since_and_long_poll(self):
        self.h.json_request("POST", "/hooks/in/start", {})
        self.api.wait_requests(1, "/thread")
        self.add(1, "Ben", "great")
        self.add(2, "Chen", "at three")
        s, b = self.get("/v1/replies/thread%2Fana")  # the key is URL-decoded
        self.assertEqual(s, 200)
        self.assertEqual(b["key"], "thread/ana")
        self.assertEqual([r["author"] for r in b["replies"]], ["Ben", "Chen"])
        self.assertEqual(b["unread"], 2)
        self.assertEqual(set(b["replies"][0]), {"id", "author", "text", "time", "source"})
        s, b = self.get("/v1/replies/thread/ana?unread=1&peek=1")
        self.assertEqual((len(b["replies"]), b["unread"]), (2, 2), "peek marks nothing")
        s, b = self.get("/v1/replies/thread/ana?unread=1")
        self.assertEqual((len(b["replies"]), b["unread"]), (2, 0))
        s, b = self.get("/v1/replies/thread/ana?unread=1")
        self.assertEqual(b["replies"], [])
        s, b = self.get("/v1/replies/thread/ana?since=1")
        self.assertEqual([r["id"] for r in b["replies"]], ["2"])

        # a long poll that times out answers 200 with an empty list
        t0 = time.monotonic()
        s, b = self.get("/v1/replies/thread/ana?since=2&wait=1")
        self.assertEqual((s, b["replies"]), (200, []))
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)

        # a long poll returns when a reply lands
        out = {}

        def poll():
            out["r"] = self.get("/v1/replies/thread/ana?since=2&wait=30", timeout=40)

        t = threading.Thread(target=poll)
        t.start()
        # whether the poll reaches the hub before or after the reply is stored,
        # it must answer with exactly the new reply
        time.sleep(0.3)
        self.items.append({"id": "3", "author": "Dee", "text": "late"})
        t.join(35)
        s, b = out["r"]
        self.assertEqual(s, 200)
        self.assertEqual([r["id"] for r in b["replies"]], ["3"])

    def readers_at_once(self, n_replies, readers):
        """Store n_replies, then 5 rounds: every reader (a function returning
        (status, ids)) runs at the same instant; each reply must go to exactly
        one of them. The replies are marked unread again in the state file
        between rounds."""
        import os
        import sqlite3
        self.h.json_request("POST", "/hooks/in/start", {})
        self.api.wait_requests(1, "/thread")
        for i in range(1, n_replies + 1):
            self.add(i, "Ben", "reply %d" % i)
        db = sqlite3.connect(os.path.join(self.h.dir, "wirehub.db"), timeout=10)
        self.addCleanup(db.close)
        for _ in range(5):
            with db:
                db.execute("UPDATE replies SET read = 0")
            got, go = [], threading.Event()

            def run(read):
                go.wait(10)
                got.append(read())

            threads = [threading.Thread(target=run, args=(r,)) for r in readers]
            for t in threads:
                t.start()
            go.set()
            for t in threads:
                t.join(20)
            self.assertEqual([s for s, _ in got], [200] * len(readers))
            ids = sorted(i for _, some in got for i in some)
            self.assertEqual(ids, [str(i) for i in range(1, n_replies + 1)],
                             "each reply to exactly one reader")

    def api_reader(self):
        s, b = self.get("/v1/replies/thread/ana?unread=1")
        return s, [r["id"] for r in b["replies"]]

    def rule_reader(self):
        s, b = self.h.json_request("POST", "/hooks/ask/read", {})
        return s, [i for i in b["ids"].split(",") if i]

    def test_marking_readers_at_once_never_share_a_reply(self):
        self.readers_at_once(3, [self.api_reader] * 8)

    def test_rules_and_api_readers_at_once_never_share_a_reply(self):
        # rule runs loading with unread (limit 2) and API readers marking
        self.readers_at_once(4, [self.api_reader, self.rule_reader] * 4)

    def test_marking_long_polls_that_lose_the_race_wait_on(self):
        # five marking long polls at once on one stored reply: one gets it, the
        # others are held for their whole wait rather than answered empty at once
        self.h.json_request("POST", "/hooks/in/start", {})
        self.api.wait_requests(1, "/thread")
        self.add(1, "Ben", "great")
        got, go = [], threading.Event()

        def poll():
            go.wait(10)
            t0 = time.monotonic()
            s, b = self.get("/v1/replies/thread/ana?unread=1&wait=3", timeout=20)
            got.append((s, [r["id"] for r in b["replies"]], time.monotonic() - t0))

        threads = [threading.Thread(target=poll) for _ in range(5)]
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(i for _, ids, _ in got for i in ids), ["1"])
        for s, ids, took in got:
            self.assertEqual(s, 200)
            if not ids:
                self.assertGreaterEqual(took, 2.5, "an empty answer before the wait ended")

    def test_bad_arguments_are_400(self):
        for path, error in (("/v1/replies/thread/a%ffb", "bad_key"),
                            ("/v1/replies/thread/a%c3%28", "bad_key"),
                            ("/v1/replies/thread/ana?unread=2", "bad_unread"),
                            ("/v1/replies/thread/ana?unread=", "bad_unread"),
                            ("/v1/replies/thread/ana?unread=1&peek=maybe", "bad_peek"),
                            ("/v1/replies/thread/ana?wait=1e9", "bad_wait"),
                            ("/v1/replies/thread/ana?wait", "bad_wait")):
            s, b = self.get(path)
            self.assertEqual((s, b.get("error")), (400, error), path)
        s, b = self.get("/v1/replies/thread/ana?unread=true&peek=no")
        self.assertEqual(s, 200)
        # a bare flag is set: ?unread&peek peeks at the unread ones
        self.h.json_request("POST", "/hooks/in/start", {})
        self.add(1, "Ben", "great")
        s, b = self.get("/v1/replies/thread/ana?unread&peek")
        self.assertEqual((s, len(b["replies"]), b["unread"]), (200, 1, 1))
        s, b = self.get("/v1/replies/thread/ana?unread")
        self.assertEqual((s, len(b["replies"]), b["unread"]), (200, 1, 0))
        self.assertEqual(self.h.json_request("GET", "/healthz")[0], 200)


if __name__ == "__main__":
    unittest.main()
