"""The dialogflow connector through the real binary: basic auth and a required
header (401 on each failure, checked before the body), an intent decoded into an
event and answered with both fulfillmentText and payload.google, SSML speech,
the fallback, an instance without credentials warning at start, and unfilled
parameters ("", [], {}, null) left out of intent.slots so that `exists: true`
means the user gave a value."""
import base64
import unittest

from whtest import HubTest, Tail

CONFIG = """
connectors:
  assistant:
    type: dialogflow
    username: fulfil
    password: "${env:DF_PASSWORD}"
    header_name: X-Agent-Key
    header_value: "k-123"
    users: { "user-7": "Ben" }
  headeronly:
    type: dialogflow
    header_name: X-Agent-Key
    header_value: "k-456"
    deadline_ms: 700
    fallback_speech: "Nobody answered."
  open:
    type: dialogflow
"""

RULES = """
rules:
  - name: topic
    on: assistant/intent
    if: { intent.name: TopicIntent }
    respond:
      speech: "{{user.name}} said {{intent.slots.topic}}"
      end_session: false
  - name: ssml
    on: "*/intent"
    if: { intent.name: SsmlIntent }
    respond:
      speech: "<speak>Topic: {{intent.slots.topic}}</speak>"
      text: "Topic: {{intent.slots.topic}}"
  # the README's example rule
  - name: assistant-topic
    on: open/intent
    if: { intent.name: ReadmeTopicIntent, intent.slots.topic: { exists: true } }
    respond:
      speech: "<speak>OK: {{intent.slots.topic}}.</speak>"
      text: "OK: {{intent.slots.topic}}."
      end_session: false
"""


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def df_request(intent="TopicIntent", params=None, response_id="resp-1", text="tell them"):
    return {
        "responseId": response_id,
        "session": "projects/p/agent/sessions/s-42",
        "queryResult": {
            "queryText": text,
            "action": "topic.tell",
            "parameters": params if params is not None else {"topic": "Q3 roadmap"},
            "allRequiredParamsPresent": True,
            "intent": {"name": "projects/p/agent/intents/abc", "displayName": intent},
            "intentDetectionConfidence": 0.9,
            "languageCode": "en",
        },
        "originalDetectIntentRequest": {"source": "google", "version": "2",
                                        "payload": {"user": {"userId": "user-7"}}},
    }


class DialogflowTest(HubTest):
    def setUp(self):
        super().setUp()
        self.h = self.hub(CONFIG, files={"rules/df.yaml": RULES},
                          env={"DF_PASSWORD": "pa:ss word"})
        self.good = {"Authorization": basic("fulfil", "pa:ss word"), "X-Agent-Key": "k-123"}

    def post(self, body, headers, instance="assistant"):
        return self.h.json_request("POST", "/hooks/" + instance, body, headers)

    def assert_401(self, result, error):
        status, body = result
        self.assertEqual(status, 401, body)
        self.assertEqual(body["error"], error)
        self.assertTrue(body["detail"])

    def test_auth_failures(self):
        req = df_request()
        key = {"X-Agent-Key": "k-123"}
        self.assert_401(self.post(req, key), "missing_auth")
        self.assert_401(self.post(req, dict(key, Authorization="Bearer x")), "missing_auth")
        self.assert_401(self.post(req, dict(key, Authorization=basic("fulfil", "wrong"))),
                        "bad_auth")
        self.assert_401(self.post(req, dict(key, Authorization=basic("other", "pa:ss word"))),
                        "bad_auth")
        self.assert_401(self.post(req, {"Authorization": self.good["Authorization"]}),
                        "missing_header")
        self.assert_401(self.post(req, dict(self.good, **{"X-Agent-Key": "k-12"})), "bad_header")
        self.assert_401(self.post(req, {"X-Agent-Key": "k-123"}, "headeronly"), "bad_header")
        self.assert_401(self.post(req, {}, "headeronly"), "missing_header")
        # credentials are checked before the body: a bad body with bad credentials is a 401
        self.assert_401(self.h.json_request("POST", "/hooks/assistant", "{nope",
                                            {"Content-Type": "application/json"}), "missing_auth")
        self.assertNotIn("pa:ss word", self.h.err.text())

    def test_intent_answered_with_both_fields(self):
        tail = Tail(self.h, "in/assistant/")
        # the scheme is case-insensitive
        hdrs = dict(self.good, Authorization=self.good["Authorization"].replace("Basic", "basic"))
        status, body = self.post(df_request(), hdrs)
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {
            "fulfillmentText": "Ben said Q3 roadmap",
            "payload": {"google": {
                "expectUserResponse": True,
                "richResponse": {"items": [
                    {"simpleResponse": {"textToSpeech": "Ben said Q3 roadmap"}}]}}},
        })
        msg = tail.wait_message(lambda m: m.get("kind") == "intent")
        data = msg["data"]
        self.assertEqual(msg["topic"], "in/assistant/intent")
        self.assertEqual(data["intent"], {"name": "TopicIntent", "slots": {"topic": "Q3 roadmap"},
                                          "action": "topic.tell", "confidence": 0.9})
        self.assertEqual(data["text"], "tell them")
        self.assertEqual(data["session"], {"id": "projects/p/agent/sessions/s-42"})
        self.assertEqual(data["locale"], "en")
        self.assertEqual(data["source"], "google")
        self.assertEqual(data["user"], {"id": "user-7", "name": "Ben"})
        self.assertEqual(data["request"], {"id": "resp-1"})
        self.assertEqual(data["raw"]["responseId"], "resp-1")

    def test_ssml_speech(self):
        status, body = self.post(df_request("SsmlIntent", {"topic": "Q&A <today>"}),
                                 {"X-Agent-Key": "k-456"}, "headeronly")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["fulfillmentText"], "Topic: Q&A <today>")
        google = body["payload"]["google"]
        self.assertIs(google["expectUserResponse"], False)
        self.assertEqual(google["richResponse"]["items"], [{"simpleResponse": {
            "ssml": "<speak>Topic: Q&amp;A &lt;today&gt;</speak>",
            "displayText": "Topic: Q&A <today>"}}])

    def test_fallback_and_repeat(self):
        status, body = self.post(df_request("UnknownIntent", response_id="r-fb"),
                                 {"X-Agent-Key": "k-456"}, "headeronly")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["fulfillmentText"], "Nobody answered.")
        self.assertIs(body["payload"]["google"]["expectUserResponse"], False)
        # the same responseId again: the same answer
        again = self.post(df_request("UnknownIntent", response_id="r-fb"),
                          {"X-Agent-Key": "k-456"}, "headeronly")
        self.assertEqual(again, (status, body))

    def test_bad_bodies_and_open_instance(self):
        self.h.err.wait_for(r"open: no `username`/`password` or `header_name`/`header_value` "
                            r"configured: accepting unauthenticated requests")
        status, body = self.h.json_request("POST", "/hooks/open", "[1]",
                                           {"Content-Type": "application/json"})
        self.assertEqual((status, body["error"]), (400, "bad_json"))
        status, body = self.post({"responseId": "x"}, {}, "open")
        self.assertEqual((status, body["error"]), (400, "bad_request"))
        # no credentials configured: an unauthenticated request is answered
        status, body = self.post(df_request("SsmlIntent", response_id="r-open"), {}, "open")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["fulfillmentText"], "Topic: Q3 roadmap")

    def test_unfilled_parameters_do_not_exist(self):
        fallback = "Sorry, I can't answer that right now."
        # what Dialogflow ES sends for a parameter the user did not give: "" (a list
        # parameter: []); {} and null carry no value either
        for i, unfilled in enumerate(["", [], {}, None, [""], {"name": ""}]):
            status, body = self.post(df_request("ReadmeTopicIntent", {"topic": unfilled},
                                                response_id="r-unfilled-%d" % i), {}, "open")
            self.assertEqual(status, 200, body)
            self.assertEqual(body["fulfillmentText"], fallback, unfilled)
        # a value is a value: the rule matches
        status, body = self.post(df_request("ReadmeTopicIntent", {"topic": "Q3"},
                                            response_id="r-filled"), {}, "open")
        self.assertEqual((status, body["fulfillmentText"]), (200, "OK: Q3."))
        status, body = self.post(df_request("ReadmeTopicIntent", {"topic": 0},
                                            response_id="r-zero"), {}, "open")
        self.assertEqual((status, body["fulfillmentText"]), (200, "OK: 0."))

    def test_unfilled_parameters_left_out_of_the_event(self):
        tail = Tail(self.h, "in/open/")
        params = {"topic": "Q3", "when": "", "people": [], "place": {}, "note": None,
                  "dishes": ["ham", "", "eggs"], "count": 0, "urgent": False, "space": " ",
                  "location": {"city": "Berlin", "country": "", "street-address": "",
                               "zip-code": ""},
                  "nested": {"a": [{"b": ""}], "c": {}}}
        status, body = self.post(df_request("OtherIntent", params, response_id="r-ev"), {},
                                 "open")
        self.assertEqual(status, 200, body)
        data = tail.wait_message(lambda m: m.get("kind") == "intent")["data"]
        self.assertEqual(data["intent"]["slots"], {
            "topic": "Q3", "dishes": ["ham", "eggs"], "count": 0, "urgent": False,
            "space": " ", "location": {"city": "Berlin"}})
        # the request as Dialogflow sent it stays available under raw
        self.assertEqual(data["raw"]["queryResult"]["parameters"], params)

    def test_bad_config(self):
        h = self.hub(CONFIG + "  half:\n    type: dialogflow\n    username: u\n", start=False,
                     env={"DF_PASSWORD": "p"})
        r = h.cmd("run", "-c", h.config_path, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"`username` and `password` go together", r.stderr)


if __name__ == "__main__":
    unittest.main()
