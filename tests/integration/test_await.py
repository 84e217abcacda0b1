"""Awaiting replies through the real binary: an `await` step polls a fake
thread on schedule with the cursor of the previous poll, stores only new
items under its key, publishes each as an `in/<instance>/reply` event with
`key`, `unread` and `vars`, takes pushed events (`collect`), stops at `for`
or on `stop_await`; `load` with `unread` reads and marks replies."""
import json
import os
import sqlite3
import time
import unittest

from whtest import FakeAPI, HubTest, wait_until

CONFIG = """
connectors:
  in:
    type: webhook
  ask:
    type: webhook
    wait_ms: 5000
  api:
    type: webhook
  console:
    type: console
"""

RULES = """
rules:
  - name: start
    on: in/start
    do:
      - await: api.poll
        with: { url: "%(url)s/thread/{{body.who}}#top", query: { who: "{{body.who}}", q: "a b&c" } }
        key: "thread/{{body.who}}"
        every: 1s
        for: %(for)s
        vars: { who: "{{body.who}}" }
        collect: { on: in/push, if: { body.thread: "{{body.who}}" } }
  - name: on-reply
    on: api/reply
    do:
      - call: console.say
        with: { text: "reply {{id}} from {{author}} for {{vars.who}} unread={{unread}} key={{key}}" }
  - name: read
    on: ask/read
    load: { replies: { key: "thread/{{body.who}}", unread: true } }
    respond:
      text: "{{#replies}}{{author}}: {{text}}; {{/replies}}{{^replies}}nothing new{{/replies}}"
  - name: one
    on: ask/one
    load: { replies: { key: "thread/{{body.who}}", unread: true, limit: 1 } }
    respond: { text: "{{#replies}}{{author}}{{/replies}} left={{replies_left}}" }
  - name: all
    on: ask/all
    load: { replies: "thread/{{body.who}}" }
    respond: { text: "{{#replies}}{{author}} {{/replies}}" }
  - name: notify
    on: api/reply
    debounce: { key: "{{key}}", for: 1s }
    do:
      - call: console.say
        with: { text: "notify {{vars.who}}: {{unread}} new" }
  - name: stop
    on: in/stop
    do:
      - stop_await: "thread/{{body.who}}"
"""


class AwaitTest(HubTest):
    def setUp(self):
        super().setUp()
        self.items = []
        self.api = FakeAPI({"/thread/ana": [(200, {}, lambda rec: {
            "items": list(self.items), "cursor": self.items[-1]["id"] if self.items else None})]})
        self.addCleanup(self.api.close)

    def start(self, for_="30s"):
        return self.hub(CONFIG, files={"rules/r.yaml": RULES % {"url": self.api.url, "for": for_}})

    def conv_state(self, h):
        db = sqlite3.connect(os.path.join(h.dir, "wirehub.db"))
        try:
            return [r[0] for r in db.execute("SELECT state FROM conversations")]
        finally:
            db.close()

    def test_polls_store_new_items_and_load_unread(self):
        h = self.start()
        self.assertEqual(h.json_request("POST", "/hooks/in/start", {"who": "ana"})[0], 200)
        self.api.wait_requests(1, "/thread/ana")
        self.items.append({"id": "1", "author": "Ben", "text": "great, send the slides"})
        h.out.wait_for(r"^\[console\] reply 1 from Ben for ana unread=1 key=thread/ana$")
        self.items.append({"id": "2", "author": "Chen", "text": "I'll join at three"})
        h.out.wait_for(r"^\[console\] reply 2 from Chen for ana unread=2 key=thread/ana$")
        # later polls carry the cursor and return both items again: nothing is stored twice
        n = len(self.api.requests)
        self.api.wait_requests(n + 2, "/thread/ana")
        # `query` is encoded into the URL (the fragment is never sent), the cursor after it
        self.assertIn("/thread/ana?who=ana&q=a+b%26c&cursor=2",
                      [r["path"] for r in self.api.requests])
        self.assertEqual(self.api.requests[0]["path"], "/thread/ana?who=ana&q=a+b%26c")
        self.assertEqual(h.out.text().count("reply 1 from"), 1)
        self.assertEqual(h.out.text().count("reply 2 from"), 1)
        # load unread with a limit: the oldest one, and how many are left
        s, b = h.json_request("POST", "/hooks/ask/one", {"who": "ana"})
        self.assertEqual(b, {"text": "Ben left=1"})
        # load unread: the rest, then nothing new; load without unread: all
        s, b = h.json_request("POST", "/hooks/ask/read", {"who": "ana"})
        self.assertEqual(b, {"text": "Chen: I'll join at three; "})
        s, b = h.json_request("POST", "/hooks/ask/read", {"who": "ana"})
        self.assertEqual(b, {"text": "nothing new"})
        s, b = h.json_request("POST", "/hooks/ask/one", {"who": "ana"})
        self.assertEqual(b, {"text": " left="})  # absent when none is left
        s, b = h.json_request("POST", "/hooks/ask/all", {"who": "ana"})
        self.assertEqual(b, {"text": "Ben Chen "})
        r = h.cmd("replies", "-c", h.config_path, "thread/ana")
        rows = [json.loads(l) for l in r.stdout.decode().splitlines()]
        self.assertEqual([(x["id"], x["author"], x["read"]) for x in rows],
                         [("1", "Ben", True), ("2", "Chen", True)])
        # a pushed event that matches the collect is a reply too
        s, b = h.json_request("POST", "/hooks/in/push", {"thread": "ana", "text": "pushed"})
        h.out.wait_for(r"^\[console\] reply [0-9a-f]{32} from .* for ana unread=1")
        # stop_await closes it: polls end
        h.json_request("POST", "/hooks/in/stop", {"who": "ana"})
        wait_until(lambda: self.conv_state(h) == ["closed"], 10, "the conversation closed")

    def test_a_burst_of_replies_is_one_notification(self):
        h = self.start()
        self.items.extend([{"id": str(i), "author": "A%d" % i, "text": "t"} for i in (1, 2, 3)])
        h.json_request("POST", "/hooks/in/start", {"who": "ana"})
        h.out.wait_for(r"^\[console\] notify ana: 3 new$")
        h.out.wait_for(r"reply 3 from")
        self.items.append({"id": "4", "author": "B", "text": "t"})
        h.out.wait_for(r"^\[console\] notify ana: 4 new$")
        self.assertEqual(len([l for l in h.out.lines if "notify" in l]), 2)

    def test_polling_stops_at_for(self):
        h = self.start(for_="2s")
        h.json_request("POST", "/hooks/in/start", {"who": "ana"})
        self.api.wait_requests(1, "/thread/ana")
        wait_until(lambda: self.conv_state(h) == ["closed"], 10, "the conversation closed at `for`")
        n = len(self.api.requests)
        # a pushed event for the thread is not collected either, now
        s, b = h.json_request("POST", "/hooks/in/push", {"thread": "ana", "text": "too late"})
        self.assertEqual(s, 200)
        # two poll periods later, no poll has been made
        time.sleep(2.5)
        self.assertEqual(len(self.api.requests), n)
        r = h.cmd("replies", "-c", h.config_path, "thread/ana")
        self.assertEqual(r.stdout, b"", "collected after the await's `for`")

    def test_a_poll_refused_for_good_ends_polling_not_collecting(self):
        # a thread that is gone: the poll is a dead letter at once (a 4xx), and
        # polling again every second would only add one dead letter a second
        self.api.script["/thread/ana"] = [(404, {}, {"error": "thread_not_found"})]
        h = self.start()
        h.json_request("POST", "/hooks/in/start", {"who": "ana"})
        h.err.wait_for(r"await: poll for \S+ failed for good: .*404.*; no more polls for "
                       r"key=thread/ana")
        n = len(self.api.requests)
        self.assertEqual(n, 1)
        # pushed replies are still collected while the await's `for` runs
        s, b = h.json_request("POST", "/hooks/in/push", {"thread": "ana", "text": "pushed"})
        h.out.wait_for(r"^\[console\] reply [0-9a-f]{32} from .* for ana unread=1")
        time.sleep(2.5)  # two poll periods: none is made
        self.assertEqual(len(self.api.requests), n)
        self.assertEqual(self.conv_state(h), ["open"])
        self.assertEqual(h.err.text().count("is a dead letter after"), 1)
        # a poll's dead letter is the await's business: not announced (a rule on
        # hub/dead_letter that opened an await would otherwise feed itself)
        self.assertIn("is a dead letter (not announced as hub/dead_letter)", h.err.text())


if __name__ == "__main__":
    unittest.main()
