"""The whole story of DESIGN.md, end to end through the real binary on
loopback, with fakes of Amazon (certificates, tokens, Proactive Events),
Slack and a device polling the replies API:

  Alexa: a signed GivePresentationIntent → "OK, I told the team" → the fake
  Slack gets the post → the thread gains replies from two users → the hub's
  polling stores them → one notification ("2 new messages") → a signed
  GetFeedbackIntent is answered with both replies, authors by name → asked
  again: nothing new; a client of the replies API sees the same replies.
  Then the same through Dialogflow, then from Slack with /presenting.

The rules are the shipped rules/presentation.yaml."""
import hashlib
import hmac
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes"))

from alexa_pki import SKILL_ID, USER_ID, AlexaPKI, alexa_body  # noqa: E402
from fake_slack import FakeSlack  # noqa: E402
from whtest import SOURCE, FakeAPI, HubTest, wait_until  # noqa: E402

CERT_URL = "https://s3.amazonaws.com/echo.api/good.pem"
EVENTS_PATH = "/v1/proactiveEvents/stages/development"
SIGNING = "story-signing-secret-0123456789"
API_TOKEN = "story-replies-token-0123456789"

CONFIG = """
connectors:
  alexa:
    type: alexa
    skill_id: "%(skill)s"
    ca_file: "%(ca)s"
    cert_fetch_override: "%(certs)s"
    users: { "%(user)s": Ana }
    client_id: "${env:ALEXA_CLIENT_ID}"
    client_secret: "${env:ALEXA_CLIENT_SECRET}"
    auth_url: "%(amazon)s/auth/o2/token"
    events_api_base: "%(amazon)s"
  assistant:
    type: dialogflow
    header_name: X-Agent-Key
    header_value: "${env:DIALOGFLOW_KEY}"
    users: { "g-ana": Ana }
  team:
    type: slack
    token: xoxb-test
    signing_secret: "${env:SLACK_SIGNING_SECRET}"
    api_base: "%(slack)s"
    bot_user_id: UBOT
api:
  tokens:
    speaker: { token: "${env:REPLIES_TOKEN}", keys: ["presentation/"] }
"""

PKI = None
PKI_DIR = None


def setUpModule():
    global PKI, PKI_DIR
    PKI_DIR = tempfile.mkdtemp(prefix="wh-story-pki-")
    PKI = AlexaPKI(PKI_DIR)


def tearDownModule():
    shutil.rmtree(PKI_DIR, ignore_errors=True)


class StoryTest(HubTest):
    def setUp(self):
        super().setUp()
        self.slack = FakeSlack()
        self.addCleanup(self.slack.close)
        self.slack.auto_replies = [("U1", "great, send the slides"), ("U2", "I'll join at three")]
        self.certs = FakeAPI({"/echo.api/good.pem": [(200, {}, PKI.chains["good"])]})
        self.addCleanup(self.certs.close)
        self.tokens = 0
        self.amazon = FakeAPI({"/auth/o2/token": [(200, {}, self.token)],
                               EVENTS_PATH: [(202, {}, "")]})
        self.addCleanup(self.amazon.close)
        with open(os.path.join(SOURCE, "rules", "presentation.yaml")) as f:
            rules = f.read()
        # the shipped rules notify after 10 s of quiet; the test need not wait that long
        rules = rules.replace('debounce: { key: "{{key}}", for: 10s }',
                              'debounce: { key: "{{key}}", for: 1s }')
        self.h = self.hub(CONFIG % {"skill": SKILL_ID, "ca": PKI.ca_file, "user": USER_ID,
                                    "certs": self.certs.url, "amazon": self.amazon.url,
                                    "slack": self.slack.api_base},
                          files={"rules/presentation.yaml": rules},
                          env={"ALEXA_CLIENT_ID": "amzn1.application-oa2-client.story",
                               "ALEXA_CLIENT_SECRET": "story-client-secret-0123456789",
                               "DIALOGFLOW_KEY": "story-agent-key-0123456789",
                               "SLACK_SIGNING_SECRET": SIGNING, "REPLIES_TOKEN": API_TOKEN})

    def token(self, rec):
        self.tokens += 1
        return {"access_token": "Atza|story-token-%d-0123456789" % self.tokens,
                "token_type": "bearer", "expires_in": 3600}

    # ---- the callers ---------------------------------------------------------

    def alexa(self, intent, slots=None):
        body = alexa_body("IntentRequest", "amzn1.echo-api.request.%f" % time.time(),
                          intent=intent, slots=slots)
        t0 = time.monotonic()
        status, env = self.h.json_request("POST", "/hooks/alexa", body,
                                          PKI.headers(body, CERT_URL))
        self.assertEqual(status, 200, env)
        return env["response"]["outputSpeech"]["text"], time.monotonic() - t0

    def assistant(self, intent, params=None):
        status, body = self.h.json_request(
            "POST", "/hooks/assistant",
            {"responseId": "df-%f" % time.time(), "session": "projects/p/agent/sessions/s1",
             "queryResult": {"queryText": intent, "parameters": params or {},
                             "intent": {"displayName": intent}},
             "originalDetectIntentRequest": {"source": "google",
                                             "payload": {"user": {"userId": "g-ana"}}}},
            {"X-Agent-Key": "story-agent-key-0123456789"})
        self.assertEqual(status, 200, body)
        return body["fulfillmentText"]

    def slash(self, command, text=""):
        body = urllib.parse.urlencode({
            "command": command, "text": text, "user_id": "U9", "user_name": "dee",
            "channel_id": "C0TEAM", "team_id": "T0TEAM",
            "response_url": self.slack.api_base.replace("/api", "/response/x"),
            "trigger_id": "1.2.3"}).encode()
        ts = str(int(time.time()))
        sig = "v0=" + hmac.new(SIGNING.encode(), b"v0:" + ts.encode() + b":" + body,
                               hashlib.sha256).hexdigest()
        status, headers, data = self.h.request("POST", "/hooks/team", body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig})
        self.assertEqual(status, 200, data)
        import json
        return json.loads(data)["text"]

    def replies_api(self, key):
        status, body = self.h.json_request(
            "GET", "/v1/replies/" + key, headers={"Authorization": "Bearer " + API_TOKEN})
        self.assertEqual(status, 200, body)
        return [(r["author"], r["text"]) for r in body["replies"]]

    def stored(self, key, n):
        wait_until(lambda: len(self.replies_api(key)) >= n, 30, "%d replies under %s" % (n, key))

    # ---- the story -----------------------------------------------------------

    def test_story_alexa_then_dialogflow_then_slack(self):
        both = [("Ben", "great, send the slides"), ("Chen Li", "I'll join at three")]

        # Alexa
        said, took = self.alexa("GivePresentationIntent", {"topic": "the Q3 roadmap"})
        self.assertEqual(said, "OK, I told the team.")
        self.assertLess(took, 6.0, "answered inside the skill's deadline")
        post = self.slack.wait_calls("chat.postMessage", 1)[0]
        self.assertEqual(post["json"], {"channel": "#team", "text":
                                        "Ana is presenting: the Q3 roadmap — reply in the thread"})
        key = "presentation/" + USER_ID
        self.stored(key, 2)
        events = wait_until(lambda: [r for r in self.amazon.requests if r["path"] == EVENTS_PATH],
                            30, "an Alexa notification")
        # one notification for the burst, with both replies counted
        time.sleep(1.5)  # a second would have come by now (debounce 1 s)
        events = [r for r in self.amazon.requests if r["path"] == EVENTS_PATH]
        self.assertEqual(len(events), 1)
        payload = events[0]["json"]["event"]["payload"]
        self.assertEqual(payload["messageGroup"]["count"], 2)
        self.assertEqual(events[0]["json"]["relevantAudience"]["payload"]["user"], USER_ID)
        said, _ = self.alexa("GetFeedbackIntent")
        self.assertEqual(said, "Ben says: great, send the slides. Chen Li says: I'll join at three.")
        said, _ = self.alexa("GetFeedbackIntent")
        self.assertEqual(said, "Nothing new from the team.")
        self.assertEqual(self.replies_api(key), both)

        # Dialogflow
        self.assertEqual(self.assistant("GivePresentationIntent", {"topic": "the budget"}),
                         "OK, I told the team.")
        post = self.slack.wait_calls("chat.postMessage", 2)[1]
        self.assertEqual(post["json"]["text"], "Ana is presenting: the budget — reply in the thread")
        self.stored("presentation/g-ana", 2)
        self.assertEqual(self.assistant("GetFeedbackIntent"),
                         "Ben says: great, send the slides. Chen Li says: I'll join at three.")
        self.assertEqual(self.assistant("GetFeedbackIntent"), "Nothing new from the team.")
        self.assertEqual(self.replies_api("presentation/g-ana"), both)

        # Slack
        self.assertEqual(self.slash("/presenting", "the launch"), "OK, I told the team.")
        post = self.slack.wait_calls("chat.postMessage", 3)[2]
        self.assertEqual(post["json"]["text"], "<@U9> is presenting: the launch — reply in the thread")
        self.stored("presentation/slack/U9", 2)
        self.assertEqual(self.slash("/feedback"),
                         "Ben says: great, send the slides\nChen Li says: I'll join at three\n")
        self.assertEqual(self.slash("/feedback"), "Nothing new from the team.")

        self.assertEqual(self.slack.problems, [])
        # only Alexa users get notifications
        self.assertEqual(len([r for r in self.amazon.requests if r["path"] == EVENTS_PATH]), 1)


if __name__ == "__main__":
    unittest.main()
