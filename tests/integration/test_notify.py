"""Alexa notifications through the real binary: `alexa.notify` gets an access
token from a fake Login with Amazon endpoint (client credentials, once, reused
across calls, fetched again after a 401) and posts AMAZON.MessageAlert.Activated
events to a fake Proactive Events API. A burst of three replies polled at once
becomes one notification with count 3 (the rule's `debounce:`); a retried call
keeps its referenceId."""
import hashlib
import json
import os
import sqlite3
import threading
import unittest
from urllib.parse import parse_qs

from whtest import FakeAPI, HubTest, wait_until

CLIENT_ID = "amzn1.application-oa2-client.itest-0123456789"
CLIENT_SECRET = "itest-client-secret-0123456789abcdef"
EVENTS_PATH = "/v1/proactiveEvents/stages/development"
TOKEN_PATH = "/auth/o2/token"
USER = "amzn1.ask.account.ITESTUSER"

CONFIG = """
connectors:
  in:
    type: webhook
  api:
    type: webhook
  alexa:
    type: alexa
    skill_id: amzn1.ask.skill.itest
    client_id: "${env:ALEXA_CLIENT_ID}"
    client_secret: "${env:ALEXA_CLIENT_SECRET}"
    auth_url: "%(auth)s/auth/o2/token"
    events_api_base: "%(events)s"
    expiry_s: 1800
"""

RULES = """
rules:
  - name: start
    on: in/start
    do:
      - await: api.poll
        with: { url: "%(poll)s/thread/{{body.who}}" }
        key: "thread/{{body.who}}"
        every: 1s
        for: 60s
        vars: { user: "{{body.user}}" }
  - name: tell-alexa
    on: api/reply
    debounce: { key: "{{key}}", for: 1s }
    do:
      - call: alexa.notify
        with: { user: "{{vars.user}}", creator: "your team", count: "{{unread}}", urgency: URGENT }
  - name: direct
    on: in/notify
    do:
      - call: alexa.notify
        with: { user: "{{body.user}}", creator: "{{body.creator}}", count: "{{body.count}}" }
"""


class NotifyTest(HubTest):
    def setUp(self):
        super().setUp()
        self.items = []
        self.tokens = []
        self.lock = threading.Lock()
        self.poll = FakeAPI({"/thread/ana": [(200, {}, lambda rec: {
            "items": list(self.items), "cursor": self.items[-1]["id"] if self.items else None})]})
        self.auth = FakeAPI({TOKEN_PATH: [(200, {}, self.new_token)]})
        self.addCleanup(self.poll.close)
        self.addCleanup(self.auth.close)

    def new_token(self, rec):
        with self.lock:
            token = "Atza|itest-access-token-%d-0123456789" % (len(self.tokens) + 1)
            self.tokens.append(token)
        return {"access_token": token, "scope": "alexa::proactive_events",
                "token_type": "bearer", "expires_in": 3600}

    def start(self, events_script=None):
        self.events = FakeAPI({EVENTS_PATH: events_script or [(202, {}, "")]})
        self.addCleanup(self.events.close)
        h = self.hub(CONFIG % {"auth": self.auth.url, "events": self.events.url},
                     files={"rules/r.yaml": RULES % {"poll": self.poll.url}},
                     env={"ALEXA_CLIENT_ID": CLIENT_ID, "ALEXA_CLIENT_SECRET": CLIENT_SECRET},
                     start=False)
        # neither the credentials nor any access token may appear in logs or answers
        h.secrets |= {CLIENT_ID, CLIENT_SECRET, "itest-access-token"}
        return h.start()

    def db(self, h, sql):
        con = sqlite3.connect(os.path.join(h.dir, "wirehub.db"))
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def notify_calls(self, h):
        return self.db(h, "SELECT key, state, attempts, result FROM outbox "
                          "WHERE instance = 'alexa' AND op = 'notify'")

    def settled(self, h, n):
        """n notify calls are done, no burst is pending, no call is queued."""
        calls = self.notify_calls(h)
        return (len(calls) == n and all(c[1] == "done" for c in calls)
                and not self.db(h, "SELECT 1 FROM debounce")
                and not self.db(h, "SELECT 1 FROM events WHERE state != 'done'"))

    def events_sent(self):
        with self.events.cond:
            return [r for r in self.events.requests if r["path"] == EVENTS_PATH]

    def token_requests(self):
        with self.auth.cond:
            return [r for r in self.auth.requests if r["path"] == TOKEN_PATH]

    def check_token_request(self, rec):
        self.assertEqual(rec["method"], "POST")
        self.assertTrue(rec["headers"]["content-type"].startswith(
            "application/x-www-form-urlencoded"))
        form = parse_qs(rec["body"].decode())
        self.assertEqual(form, {"grant_type": ["client_credentials"], "client_id": [CLIENT_ID],
                                "client_secret": [CLIENT_SECRET],
                                "scope": ["alexa::proactive_events"]})

    def test_a_burst_of_three_replies_is_one_notification(self):
        h = self.start()
        self.items.extend([{"id": str(i), "author": "A%d" % i, "text": "t%d" % i}
                           for i in (1, 2, 3)])
        s, _ = h.json_request("POST", "/hooks/in/start", {"who": "ana", "user": USER})
        self.assertEqual(s, 200)
        self.events.wait_requests(1, EVENTS_PATH, timeout=20)
        # the burst is over and its run is done; two more polls find nothing new
        wait_until(lambda: self.settled(h, 1), 20, "the notification's run to finish")
        n = len(self.poll.requests)
        self.poll.wait_requests(n + 2, "/thread/ana", timeout=20)
        self.assertTrue(self.settled(h, 1))
        sent = self.events_sent()
        self.assertEqual(len(sent), 1)
        rec = sent[0]
        self.assertEqual(rec["method"], "POST")
        self.assertEqual(rec["headers"]["authorization"], "Bearer " + self.tokens[0])
        self.assertTrue(rec["headers"]["content-type"].startswith("application/json"))
        ev = rec["json"]
        self.assertEqual(ev["event"], {
            "name": "AMAZON.MessageAlert.Activated",
            "payload": {"state": {"status": "UNREAD", "freshness": "NEW"},
                        "messageGroup": {"creator": {"name": "your team"}, "count": 3,
                                         "urgency": "URGENT"}}})
        self.assertEqual(ev["relevantAudience"], {"type": "Unicast", "payload": {"user": USER}})
        self.assertEqual(ev["localizedAttributes"], [])
        # timestamps: RFC 3339 UTC with milliseconds; expiryTime = timestamp + expiry_s
        from datetime import datetime, timedelta
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        ts = datetime.strptime(ev["timestamp"], fmt)
        self.assertEqual(datetime.strptime(ev["expiryTime"], fmt) - ts, timedelta(seconds=1800))
        self.assertRegex(ev["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        # referenceId: "wh-" + SHA-256 of the call's idempotency key; the result names it
        key, state, attempts, result = self.notify_calls(h)[0]
        self.assertEqual(ev["referenceId"], "wh-" + hashlib.sha256(key.encode()).hexdigest())
        self.assertEqual(json.loads(result), {"status": 202, "reference_id": ev["referenceId"]})
        # one token request, as Login with Amazon wants it
        self.assertEqual(len(self.token_requests()), 1)
        self.check_token_request(self.token_requests()[0])

        # a later reply: a second notification (count 4), the same token
        self.items.append({"id": "4", "author": "B", "text": "t4"})
        self.events.wait_requests(2, EVENTS_PATH, timeout=20)
        wait_until(lambda: self.settled(h, 2), 20, "the second notification's run")
        sent = self.events_sent()
        self.assertEqual(len(sent), 2)
        ev2 = sent[1]["json"]
        self.assertEqual(ev2["event"]["payload"]["messageGroup"]["count"], 4)
        self.assertNotEqual(ev2["referenceId"], ev["referenceId"])
        self.assertEqual(sent[1]["headers"]["authorization"], "Bearer " + self.tokens[0])
        self.assertEqual(len(self.token_requests()), 1)

    def test_a_retried_call_keeps_its_reference_id(self):
        h = self.start([(500, {}, "{\"message\": \"internal\"}"), (202, {}, "")])
        s, _ = h.json_request("POST", "/hooks/in/notify",
                              {"user": USER, "creator": "Ben", "count": 2})
        self.assertEqual(s, 200)
        sent = self.events.wait_requests(2, EVENTS_PATH, timeout=20)
        wait_until(lambda: self.settled(h, 1), 20, "the call to finish")
        self.assertEqual(len(self.events_sent()), 2)
        first, second = sent[0]["json"], sent[1]["json"]
        self.assertEqual(first["referenceId"], second["referenceId"])
        self.assertEqual(first["event"], second["event"])
        self.assertEqual(second["event"]["payload"]["messageGroup"],
                         {"creator": {"name": "Ben"}, "count": 2})
        key, state, attempts, result = self.notify_calls(h)[0]
        self.assertEqual(attempts, 2)
        self.assertEqual(json.loads(result)["reference_id"], first["referenceId"])
        self.assertEqual(len(self.token_requests()), 1)

    def test_a_401_fetches_a_new_token_within_the_call(self):
        h = self.start([(401, {}, "{\"message\": \"expired\"}"), (202, {}, "")])
        h.json_request("POST", "/hooks/in/notify", {"user": USER, "creator": "Chen", "count": 1})
        sent = self.events.wait_requests(2, EVENTS_PATH, timeout=20)
        wait_until(lambda: self.settled(h, 1), 20, "the call to finish")
        self.assertEqual(len(self.token_requests()), 2)
        for rec in self.token_requests():
            self.check_token_request(rec)
        self.assertEqual(sent[0]["headers"]["authorization"], "Bearer " + self.tokens[0])
        self.assertEqual(sent[1]["headers"]["authorization"], "Bearer " + self.tokens[1])
        self.assertEqual(sent[0]["json"]["referenceId"], sent[1]["json"]["referenceId"])
        key, state, attempts, result = self.notify_calls(h)[0]
        self.assertEqual(attempts, 1)  # the resend is part of the same attempt
        self.assertEqual(json.loads(result)["status"], 202)


if __name__ == "__main__":
    unittest.main()
