"""The alexa connector through the real binary.

A test PKI (root → intermediate → leaf with SAN echo-api.amazon.com, plus an
expired leaf, a leaf without the SAN and a chain under an untrusted root) is made
with the openssl CLI; a FakeAPI serves the chains at /echo.api/… and the hub
fetches them there through `cert_fetch_override`. Bodies are signed with the
leaf's key like Amazon signs them. Every verification check is made to fail on
its own (400 naming the check, body not logged), and valid launch, intent and
session-end requests get correct envelopes. A signed CanFulfillIntentRequest is
answered by the connector from `can_fulfill`, after the same checks, and no rule
runs for it."""
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes"))

from alexa_pki import SKILL_ID, USER_ID, AlexaPKI, alexa_body, now_iso  # noqa: E402
from whtest import SOURCE, FakeAPI, HubTest, Tail, wait_until  # noqa: E402

PKI = None
PKI_DIR = None
CERT_BASE = "https://s3.amazonaws.com/echo.api/"

CONFIG = """
connectors:
  alexa:
    type: alexa
    skill_id: "%(skill)s"
    ca_file: "%(ca)s"
    cert_fetch_override: "%(api)s"
    deadline_ms: %(deadline)d
    fallback_speech: "Sorry, the team is slow today."
    users: { "%(user)s": "Ana" }%(extra)s
  api:
    type: webhook
"""

RULES = """
rules:
  - name: welcome
    on: alexa/launch
    respond:
      speech: "Welcome to the team skill."
      reprompt: "What should I tell the team?"
      end_session: false
  - name: topic
    on: alexa/intent
    if: { intent.name: TopicIntent, intent.slots.topic: { exists: true } }
    respond:
      speech: "{{user.name}}, you said {{intent.slots.topic}}."
      card: { title: "Topic", text: "{{intent.slots.topic}} ({{intent.slots.when}})" }
      end_session: false
      attributes: { topic: "{{intent.slots.topic}}" }
  - name: ssml
    on: alexa/intent
    if: { intent.name: SsmlIntent }
    respond:
      speech: "<speak>The topic is {{intent.slots.topic}}.</speak>"
  - name: keep-session
    on: alexa/intent
    if: { intent.name: KeepIntent }
    respond: { speech: "Still here.", end_session: false }
  - name: count
    on: alexa/intent
    if: { intent.name: CountIntent }
    do:
      - call: api.request
        with: { url: "%(api)s/count", json: { request: "{{request.id}}" } }
      - respond: { speech: "Counted {{request.id}}." }
  - name: slow
    on: alexa/intent
    if: { intent.name: SlowIntent }
    do:
      - call: api.request
        with: { url: "%(api)s/slow", timeout_ms: 20000 }
      - respond: { speech: "Too late." }
  - name: any-request
    on: alexa/request
    do:
      - call: api.request
        with: { url: "%(api)s/side-effect", json: { request: "{{request.id}}" } }
      - respond: { speech: "A rule ran." }
  - name: bye
    on: alexa/session_ended
    do:
      - call: api.request
        with: { url: "%(api)s/ended", json: { reason: "{{request.reason}}" } }
"""


def setUpModule():
    global PKI, PKI_DIR
    PKI_DIR = tempfile.mkdtemp(prefix="wh-alexa-pki-")
    PKI = AlexaPKI(PKI_DIR)


def tearDownModule():
    shutil.rmtree(PKI_DIR, ignore_errors=True)


def pem(name):
    return [(200, {"Content-Type": "application/x-pem-file"}, PKI.chains[name])]


class AlexaTest(HubTest):
    def setUp(self):
        super().setUp()
        self.release = threading.Event()
        self.addCleanup(self.release.set)
        self.api = FakeAPI({
            "/echo.api/good.pem": pem("good"),
            "/echo.api/cache.pem": pem("good"),
            "/echo.api/norm.pem": pem("good"),
            "/echo.api/expired.pem": pem("expired"),
            "/echo.api/future.pem": pem("future"),
            "/echo.api/nosan.pem": pem("nosan"),
            "/echo.api/untrusted.pem": pem("untrusted"),
            "/echo.api/junk.pem": [(200, {}, "this is not PEM")],
            "/echo.api/missing.pem": [(404, {}, "NoSuchKey")],
            "/slow": [(200, {}, lambda rec: self.release.wait(10) and {"ok": 1})],
        })
        self.addCleanup(self.api.close)

    def start(self, deadline=3000, extra=""):
        cfg = CONFIG % {"skill": SKILL_ID, "ca": PKI.ca_file, "api": self.api.url,
                        "deadline": deadline, "user": USER_ID, "extra": extra}
        return self.hub(cfg, files={"rules/alexa.yaml": RULES % {"api": self.api.url}})

    def post(self, h, body, url=CERT_BASE + "good.pem", headers=None, sign_body=None, **kw):
        hdrs = PKI.headers(sign_body if sign_body is not None else body, url, **kw)
        hdrs.update(headers or {})
        for k in [k for k, v in hdrs.items() if v is None]:
            del hdrs[k]
        return h.json_request("POST", "/hooks/alexa", body, hdrs)

    def assert_refused(self, h, status_body, error, marker=None):
        status, body = status_body
        self.assertEqual(status, 400, body)
        self.assertEqual(body.get("error"), error, body)
        self.assertTrue(body.get("detail"))
        if marker:
            self.assertNotIn(marker, h.err.text(), "a refused body must not be logged")
        return body

    def cert_fetches(self, path):
        return [r for r in self.api.requests if r["path"] == path]

    # ---- valid requests ------------------------------------------------------------------

    def test_launch_answered_with_envelope(self):
        h = self.start()
        h.err.wait_for(r"cert_fetch_override: certificate chains are fetched from http://127")
        tail = Tail(h, "in/alexa/")
        status, env = self.post(h, alexa_body("LaunchRequest", "req-launch"))
        self.assertEqual(status, 200, env)
        self.assertEqual(env, {
            "version": "1.0",
            "sessionAttributes": {},
            "response": {
                "outputSpeech": {"type": "PlainText", "text": "Welcome to the team skill."},
                "reprompt": {"outputSpeech": {"type": "PlainText",
                                              "text": "What should I tell the team?"}},
                "shouldEndSession": False,
            },
        })
        msg = tail.wait_message(lambda m: m.get("kind") == "launch")
        data = msg["data"]
        self.assertEqual(msg["topic"], "in/alexa/launch")
        self.assertEqual(data["request"]["type"], "LaunchRequest")
        self.assertEqual(data["request"]["id"], "req-launch")
        self.assertEqual(data["user"], {"id": USER_ID, "name": "Ana"})
        self.assertEqual(data["session"], {"id": "amzn1.echo-api.session.1", "new": True,
                                           "attributes": {}})
        self.assertEqual(data["locale"], "en-US")
        self.assertEqual(data["raw"]["request"]["requestId"], "req-launch")
        self.assertNotIn("intent", data)

    def test_intent_with_slots(self):
        h = self.start()
        tail = Tail(h, "in/alexa/")
        resolved = {"name": "topic", "value": "queue three roadmap", "confirmationStatus": "NONE",
                    "resolutions": {"resolutionsPerAuthority": [
                        {"authority": "amzn1.er-authority.echo-sdk.x.Topic",
                         "status": {"code": "ER_SUCCESS_MATCH"},
                         "values": [{"value": {"name": "Q3 roadmap", "id": "Q3"}}]}]}}
        unmatched = {"name": "when", "value": "now", "resolutions": {"resolutionsPerAuthority": [
            {"status": {"code": "ER_SUCCESS_NO_MATCH"}}]}}
        body = alexa_body("IntentRequest", "req-topic", intent="TopicIntent",
                          slots={"topic": resolved, "when": unmatched,
                                 "empty": {"name": "empty", "confirmationStatus": "NONE"}},
                          new=False, attributes={"old": 1})
        status, env = self.post(h, body)
        self.assertEqual(status, 200, env)
        self.assertEqual(env["response"]["outputSpeech"],
                         {"type": "PlainText", "text": "Ana, you said Q3 roadmap."})
        self.assertEqual(env["response"]["card"],
                         {"type": "Simple", "title": "Topic", "content": "Q3 roadmap (now)"})
        self.assertIs(env["response"]["shouldEndSession"], False)
        self.assertEqual(env["sessionAttributes"], {"topic": "Q3 roadmap"})
        self.assertEqual(env["version"], "1.0")
        data = tail.wait_message(lambda m: m.get("kind") == "intent")["data"]
        self.assertEqual(data["intent"], {"name": "TopicIntent", "confirmation": "NONE",
                                          "slots": {"topic": "Q3 roadmap", "when": "now"}})
        self.assertEqual(data["session"]["attributes"], {"old": 1})
        self.assertIs(data["session"]["new"], False)

    def test_session_attributes_carried_when_the_session_goes_on(self):
        h = self.start()
        status, env = self.post(h, alexa_body("IntentRequest", "req-keep", intent="KeepIntent",
                                              attributes={"step": 2}))
        self.assertEqual(status, 200, env)
        self.assertEqual(env["sessionAttributes"], {"step": 2})
        self.assertIs(env["response"]["shouldEndSession"], False)

    def test_ssml_escapes_slot_values(self):
        h = self.start()
        status, env = self.post(h, alexa_body("IntentRequest", "req-ssml", intent="SsmlIntent",
                                              slots={"topic": "Q&A <today>"}))
        self.assertEqual(status, 200, env)
        self.assertEqual(env["response"]["outputSpeech"], {
            "type": "SSML", "ssml": "<speak>The topic is Q&amp;A &lt;today&gt;.</speak>"})
        self.assertIs(env["response"]["shouldEndSession"], True)
        self.assertNotIn("sessionAttributes", env)

    def test_session_end_answered_at_once_and_rules_run(self):
        h = self.start()
        status, env = self.post(h, alexa_body("SessionEndedRequest", "req-end"))
        self.assertEqual((status, env), (200, {"version": "1.0", "response": {}}))
        got = self.api.wait_requests(1, "/ended")
        self.assertEqual(got[0]["json"], {"reason": "USER_INITIATED"})

    def test_no_rule_gets_fallback_speech(self):
        h = self.start()
        status, env = self.post(h, alexa_body("IntentRequest", "req-none", intent="NobodyIntent"))
        self.assertEqual(status, 200, env)
        self.assertEqual(env, {"version": "1.0", "response": {
            "outputSpeech": {"type": "PlainText", "text": "Sorry, the team is slow today."},
            "shouldEndSession": True}})

    def test_deadline_fallback(self):
        h = self.start(deadline=800)
        t0 = time.monotonic()
        status, env = self.post(h, alexa_body("IntentRequest", "req-slow", intent="SlowIntent"))
        took = time.monotonic() - t0
        self.assertEqual(status, 200, env)
        self.assertEqual(env["response"]["outputSpeech"]["text"], "Sorry, the team is slow today.")
        self.assertIs(env["response"]["shouldEndSession"], True)
        self.assertGreaterEqual(took, 0.7)
        h.err.wait_for(r"fallback answer: no answer from the engine within \d+ ms")
        self.release.set()

    def test_repeated_request_id_answered_again_rules_run_once(self):
        h = self.start()
        body = alexa_body("IntentRequest", "req-dup", intent="CountIntent")
        first = self.post(h, body)
        self.assertEqual(first[0], 200, first)
        self.assertEqual(first[1]["response"]["outputSpeech"]["text"], "Counted req-dup.")
        self.api.wait_requests(1, "/count")
        again = self.post(h, body)
        self.assertEqual(again, first)
        # a later, different request is handled after the duplicate: its call comes second
        other = self.post(h, alexa_body("IntentRequest", "req-dup-2", intent="CountIntent"))
        self.assertEqual(other[1]["response"]["outputSpeech"]["text"], "Counted req-dup-2.")
        calls = self.api.wait_requests(2, "/count")
        self.assertEqual([c["json"]["request"] for c in calls], ["req-dup", "req-dup-2"])

    def test_repeat_while_first_in_progress_gets_the_same_answer(self):
        h = self.start(deadline=5000)
        body = alexa_body("IntentRequest", "req-twice", intent="SlowIntent")
        results = {}

        def send(name):
            results[name] = self.post(h, body)
        first = threading.Thread(target=send, args=("first",))
        first.start()
        self.api.wait_requests(1, "/slow")
        repeat = threading.Thread(target=send, args=("repeat",))
        repeat.start()

        def pending():
            s, b = h.json_request("GET", "/healthz")
            return s == 200 and b["pending"] == 2
        wait_until(pending, 10, "the repeat waiting beside the first delivery")
        self.release.set()
        first.join(20)
        repeat.join(20)
        self.assertEqual(results["first"][0], 200, results)
        self.assertEqual(results["first"][1]["response"]["outputSpeech"]["text"], "Too late.")
        self.assertEqual(results["repeat"], results["first"], "the repeat gets the same envelope")
        self.assertEqual(len([r for r in self.api.requests if r["path"] == "/slow"]), 1,
                         "the rule ran once")

    def test_certificate_fetched_once_for_many_requests(self):
        h = self.start()
        url = CERT_BASE + "cache.pem"
        results = []

        def one(i):
            results.append(self.post(h, alexa_body("IntentRequest", "req-c%d" % i,
                                                   intent="KeepIntent"), url=url))
        # the first wave arrives before the chain is cached: they share one fetch
        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for i in range(6, 10):
            one(i)
        self.assertEqual([s for s, _ in results], [200] * 10, results)
        self.assertEqual(len(self.cert_fetches("/echo.api/cache.pem")), 1)
        h.err.wait_for(r"certificate chain verified and cached url=https://s3\.amazonaws\.com"
                       r"/echo\.api/cache\.pem")

    def test_valid_url_spellings(self):
        h = self.start()
        for i, url in enumerate([
                "https://s3.amazonaws.com/echo.api/../echo.api/norm.pem",
                "HTTPS://S3.AmazonAWS.com:443/echo.api/./norm.pem",
                "https://s3.amazonaws.com:443/echo.api/norm.pem"]):
            status, env = self.post(h, alexa_body("IntentRequest", "req-u%d" % i,
                                                  intent="KeepIntent"), url=url)
            self.assertEqual(status, 200, (url, env))
        # the normalised path is what is fetched, once
        self.assertEqual(len(self.cert_fetches("/echo.api/norm.pem")), 1)
        self.assertEqual(len(self.api.requests), 1)

    # ---- every check failing on its own --------------------------------------------------

    def test_bad_certificate_urls(self):
        h = self.start()
        cases = {
            "http://s3.amazonaws.com/echo.api/good.pem": "scheme must be https",
            "https://notamazon.com/echo.api/good.pem": "host must be s3.amazonaws.com",
            "https://s3.amazonaws.com/EcHo.aPi/good.pem": "path must start with /echo.api/",
            "https://s3.amazonaws.com/invalid.path/good.pem": "path must start with /echo.api/",
            "https://s3.amazonaws.com:563/echo.api/good.pem": "port must be 443",
            "https://s3.amazonaws.com/echo.api/../good.pem": "path must start with /echo.api/",
            "https://s3.amazonaws.com/echo.api/../../echo.api/x/../../good.pem":
                "path must start with /echo.api/",
        }
        for i, (url, why) in enumerate(cases.items()):
            body = alexa_body("IntentRequest", "req-url%d" % i, intent="KeepIntent")
            refused = self.assert_refused(h, self.post(h, body, url=url), "bad_cert_url")
            self.assertIn(why, refused["detail"], url)
        self.assertEqual(self.api.requests, [], "nothing is fetched for a refused URL")

    def test_missing_headers(self):
        h = self.start()
        body = alexa_body("IntentRequest", "req-h1", intent="KeepIntent")
        self.assert_refused(h, self.post(h, body, headers={"SignatureCertChainUrl": None}),
                            "missing_cert_url")
        self.assert_refused(h, self.post(h, body, sha256=False), "missing_signature")
        r = self.assert_refused(h, self.post(h, body, sha256=False, sha1=True),
                                "missing_signature")
        self.assertIn("allow_sha1", r["detail"])
        self.assert_refused(h, self.post(h, body, headers={"Signature-256": "not base64!"}),
                            "bad_signature")

    def test_expired_certificate(self):
        h = self.start()
        body = alexa_body("IntentRequest", "req-exp", intent="KeepIntent")
        r = self.assert_refused(h, self.post(h, body, url=CERT_BASE + "expired.pem"),
                                "cert_expired")
        self.assertIn("expired at 2020-02-01T00:00:00Z", r["detail"])
        r = self.assert_refused(h, self.post(h, body, url=CERT_BASE + "future.pem"),
                                "cert_expired")
        self.assertIn("not valid before 2099-01-01", r["detail"])

    def test_certificate_without_san(self):
        h = self.start()
        body = alexa_body("IntentRequest", "req-san", intent="KeepIntent")
        r = self.assert_refused(h, self.post(h, body, url=CERT_BASE + "nosan.pem"),
                                "cert_san_mismatch")
        self.assertIn("echo-api.amazon.com", r["detail"])

    def test_untrusted_root(self):
        h = self.start()
        body = alexa_body("IntentRequest", "req-untrusted", intent="KeepIntent")
        r = self.assert_refused(h, self.post(h, body, url=CERT_BASE + "untrusted.pem"),
                                "cert_untrusted")
        self.assertIn("unable to get local issuer certificate", r["detail"])
        # a refused chain is not cached: the next request fetches it again
        self.assert_refused(h, self.post(h, body, url=CERT_BASE + "untrusted.pem"),
                            "cert_untrusted")
        self.assertEqual(len(self.cert_fetches("/echo.api/untrusted.pem")), 2)

    def test_unusable_chain_urls(self):
        h = self.start()
        body = alexa_body("IntentRequest", "req-junk", intent="KeepIntent")
        self.assert_refused(h, self.post(h, body, url=CERT_BASE + "junk.pem"), "bad_cert_chain")
        r = self.assert_refused(h, self.post(h, body, url=CERT_BASE + "missing.pem"),
                                "cert_fetch_failed")
        self.assertIn("HTTP 404", r["detail"])

    def test_tampered_body(self):
        h = self.start()
        signed = alexa_body("IntentRequest", "req-tamper", intent="KeepIntent",
                            slots={"topic": "MARKER-ORIGINAL"})
        tampered = signed.replace(b"MARKER-ORIGINAL", b"MARKER-TAMPERED")
        self.assert_refused(h, self.post(h, tampered, sign_body=signed), "bad_signature",
                            marker="MARKER-TAMPERED")
        # the same signature on the body it was made for passes
        status, env = self.post(h, signed)
        self.assertEqual(status, 200, env)

    def test_stale_timestamp(self):
        h = self.start()
        for i, offset in enumerate([-151 - 5, 155]):
            body = alexa_body("IntentRequest", "req-stale%d" % i, intent="KeepIntent",
                              timestamp=now_iso(offset), slots={"topic": "MARKER-STALE"})
            r = self.assert_refused(h, self.post(h, body), "stale_timestamp",
                                    marker="MARKER-STALE")
            self.assertRegex(r["detail"], r"^request\.timestamp is more than 150 s (before|after) "
                                          r"now \(15\d\.\d{3} s\); Alexa's requests are "
                                          r"accepted within 150 s either way$")
            self.assertIn("after" if offset > 0 else "before", r["detail"])
        ok = alexa_body("IntentRequest", "req-fresh", intent="KeepIntent", timestamp=now_iso(-100))
        self.assertEqual(self.post(h, ok)[0], 200)

    # ---- CanFulfillIntentRequest -----------------------------------------------------------

    def cfir(self, request_id, intent, slots=None, **kw):
        sl = {name: {"name": name, "value": v} if v is not None else {"name": name}
              for name, v in (slots or {}).items()}
        return alexa_body("CanFulfillIntentRequest", request_id,
                          extra={"intent": {"name": intent, "slots": sl}}, **kw)

    def test_can_fulfill_answered_at_once_without_rules(self):
        h = self.start(extra="\n    can_fulfill: [TopicIntent, KeepIntent]")
        tail = Tail(h, "in/alexa/")
        status, env = self.post(h, self.cfir("req-cf-1", "TopicIntent",
                                             {"topic": "Q3 roadmap", "when": None}))
        self.assertEqual(status, 200, env)
        self.assertEqual(env, {"version": "1.0", "response": {"canFulfillIntent": {
            "canFulfill": "YES",
            "slots": {"topic": {"canUnderstand": "YES", "canFulfill": "YES"}}}}})
        status, env = self.post(h, self.cfir("req-cf-2", "OrderPizzaIntent", {"size": "large"}))
        self.assertEqual(status, 200, env)
        self.assertEqual(env, {"version": "1.0", "response": {"canFulfillIntent": {
            "canFulfill": "NO",
            "slots": {"size": {"canUnderstand": "NO", "canFulfill": "NO"}}}}})
        # no event for either: the next request's event is the first the bus sees, and
        # the rule on alexa/request never ran
        status, env = self.post(h, alexa_body("LaunchRequest", "req-cf-after"))
        self.assertEqual(status, 200, env)
        tail.wait_message(lambda m: m.get("kind") == "launch")
        self.assertEqual([m["data"]["request"]["id"] for m in tail.messages()
                          if m.get("data", {}).get("request")], ["req-cf-after"])
        self.assertEqual([r for r in self.api.requests if r["path"] == "/side-effect"], [])
        # another request type still reaches the rules (and waits for them)
        status, env = self.post(h, alexa_body("Messaging.MessageReceived", "req-other"))
        self.assertEqual(status, 200, env)
        self.assertEqual(env["response"]["outputSpeech"]["text"], "A rule ran.")
        self.api.wait_requests(1, "/side-effect")

    def test_can_fulfill_checked_like_any_request(self):
        h = self.start(extra="\n    can_fulfill: [TopicIntent]")
        signed = self.cfir("req-cf-tamper", "TopicIntent", {"topic": "MARKER-CF"})
        self.assert_refused(h, self.post(h, signed.replace(b"MARKER-CF", b"MARKER-XX"),
                                         sign_body=signed), "bad_signature", marker="MARKER-XX")
        self.assert_refused(h, self.post(h, signed, headers={"SignatureCertChainUrl": None}),
                            "missing_cert_url")
        self.assert_refused(h, self.post(h, signed, url=CERT_BASE + "untrusted.pem"),
                            "cert_untrusted")
        self.assert_refused(h, self.post(h, self.cfir("req-cf-old", "TopicIntent",
                                                      timestamp=now_iso(-200))),
                            "stale_timestamp")
        self.assert_refused(h, self.post(h, self.cfir("req-cf-skill", "TopicIntent",
                                                      skill_id="amzn1.ask.skill.other")),
                            "wrong_skill")
        status, env = self.post(h, signed)
        self.assertEqual(status, 200, env)
        self.assertEqual(env["response"]["canFulfillIntent"]["canFulfill"], "YES")

    def test_wrong_skill_id(self):
        h = self.start()
        body = alexa_body("IntentRequest", "req-skill", intent="KeepIntent",
                          skill_id="amzn1.ask.skill.someone-else")
        self.assert_refused(h, self.post(h, body), "wrong_skill")

    def test_malformed_bodies(self):
        h = self.start()
        self.assert_refused(h, self.post(h, b"{not json"), "bad_json")
        self.assert_refused(h, self.post(h, b'{"version": "1.0"}'), "bad_request")
        body = json.loads(alexa_body("IntentRequest", "req-badts", intent="KeepIntent"))
        body["request"]["timestamp"] = "yesterday"
        self.assert_refused(h, self.post(h, json.dumps(body).encode()), "bad_timestamp")


class AlexaOptionsTest(HubTest):
    def setUp(self):
        super().setUp()
        self.api = FakeAPI({"/echo.api/good.pem": pem("good")})
        self.addCleanup(self.api.close)

    def config(self, extra):
        return CONFIG % {"skill": SKILL_ID, "ca": PKI.ca_file, "api": self.api.url,
                         "deadline": 3000, "user": USER_ID, "extra": extra}

    def test_sha1_only_when_allowed(self):
        h = self.hub(self.config("\n    allow_sha1: true"),
                     files={"rules/r.yaml": "rules:\n  - name: r\n    on: alexa/*\n"
                            "    respond: { speech: ok }\n"})
        body = alexa_body("LaunchRequest", "req-sha1")
        hdrs = PKI.headers(body, CERT_BASE + "good.pem", sha1=True, sha256=False)
        status, env = h.json_request("POST", "/hooks/alexa", body, hdrs)
        self.assertEqual(status, 200, env)
        self.assertEqual(env["response"]["outputSpeech"]["text"], "ok")
        # with both headers, Signature-256 decides: a wrong one is refused
        body = alexa_body("LaunchRequest", "req-sha1-b")
        hdrs = PKI.headers(body, CERT_BASE + "good.pem", sha1=True)
        hdrs["Signature-256"] = PKI.sign(b"something else")
        status, err = h.json_request("POST", "/hooks/alexa", body, hdrs)
        self.assertEqual((status, err["error"]), (400, "bad_signature"))

    def test_verify_false_warns_and_still_checks_skill_and_time(self):
        h = self.hub(self.config("\n    verify: false"),
                     files={"rules/r.yaml": "rules:\n  - name: r\n    on: alexa/*\n"
                            "    respond: { speech: ok }\n"})
        h.err.wait_for(r"verify: false .* requests are NOT checked")
        status, env = h.json_request("POST", "/hooks/alexa", alexa_body("LaunchRequest", "r-1"),
                                     {"Content-Type": "application/json"})
        self.assertEqual(status, 200, env)
        status, err = h.json_request(
            "POST", "/hooks/alexa", alexa_body("LaunchRequest", "r-2", timestamp=now_iso(-600)),
            {"Content-Type": "application/json"})
        self.assertEqual((status, err["error"]), (400, "stale_timestamp"))
        status, err = h.json_request(
            "POST", "/hooks/alexa", alexa_body("LaunchRequest", "r-3", skill_id="other"),
            {"Content-Type": "application/json"})
        self.assertEqual((status, err["error"]), (400, "wrong_skill"))
        self.assertEqual(self.api.requests, [])

    def test_can_fulfill_config_is_checked(self):
        # a mapping instead of a list: the hub names the file and line
        h = self.hub(self.config("\n    can_fulfill: { TopicIntent: YES }"), start=False)
        r = h.cmd("run", "-c", h.config_path, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr.decode(), r"wirehub\.yaml:11:5: 'can_fulfill' must be a list")
        # a list of something else than intent names: the connector says which entry
        h = self.hub(self.config("\n    can_fulfill: [TopicIntent, 7]"), start=False)
        r = h.cmd("run", "-c", h.config_path, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"`can_fulfill`: entry 2 must be an intent name", r.stderr)
        # the key is documented by `describe`
        r = h.cmd("describe", "alexa")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"can_fulfill", r.stdout)

    def test_bad_config_is_refused(self):
        h = self.hub(self.config("\n    deadline_ms: 5"), start=False)
        r = h.cmd("run", "-c", h.config_path, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"deadline_ms", r.stderr)
        h2 = self.hub(self.config("\n    ca_file: /nonexistent/ca.pem").replace(
            '    ca_file: "%s"\n' % PKI.ca_file, ""), start=False)
        r = h2.cmd("run", "-c", h2.config_path, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"/nonexistent/ca.pem", r.stderr)


STORY_CONFIG = """
connectors:
  alexa:
    type: alexa
    skill_id: "%(skill)s"
    ca_file: "%(ca)s"
    cert_fetch_override: "%(certs)s"
    users: { "%(user)s": Ana }
  assistant:
    type: dialogflow
    header_name: X-Agent-Key
    header_value: k-1
  team:
    type: slack
    token: xoxb-test
    signing_secret: not-used-here
    api_base: "%(slack)s"
    bot_user_id: UBOT
"""


class PresentationStoryTest(HubTest):
    """rules/presentation.yaml with the three instances it names: it validates, and the
    story runs end to end against a fake Slack (post, thread replies, read back)."""

    def setUp(self):
        super().setUp()
        from fake_slack import FakeSlack
        self.slack = FakeSlack()
        self.addCleanup(self.slack.close)
        self.certs = FakeAPI({"/echo.api/good.pem": pem("good")})
        self.addCleanup(self.certs.close)
        with open(os.path.join(SOURCE, "rules", "presentation.yaml")) as f:
            self.rules = f.read()
        self.config = STORY_CONFIG % {"skill": SKILL_ID, "ca": PKI.ca_file, "user": USER_ID,
                                      "certs": self.certs.url, "slack": self.slack.api_base}

    def ask(self, h, intent, request_id, slots=None):
        status, env = self._post(h, alexa_body("IntentRequest", request_id, intent=intent,
                                               slots=slots))
        self.assertEqual(status, 200, env)
        return env["response"]["outputSpeech"]["text"]

    def _post(self, h, body):
        return h.json_request("POST", "/hooks/alexa", body,
                              PKI.headers(body, CERT_BASE + "good.pem"))

    def test_rules_validate(self):
        h = self.hub(self.config, files={"rules/presentation.yaml": self.rules}, start=False)
        r = h.cmd("check", "-c", h.config_path)
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    def test_story_end_to_end(self):
        self.slack.auto_replies = [("U1", "great, send the slides"),
                                   ("U2", "I'll join at three")]
        h = self.hub(self.config, files={"rules/presentation.yaml": self.rules})
        self.assertEqual(self.ask(h, "GetFeedbackIntent", "req-s0"), "Nothing new from the team.")
        self.assertEqual(self.ask(h, "GivePresentationIntent", "req-s1",
                                  {"topic": "Q3 roadmap"}), "OK, I told the team.")
        post = self.slack.wait_calls("chat.postMessage", 1)[0]
        self.assertEqual(post["json"], {"channel": "#team", "text":
                                        "Ana is presenting: Q3 roadmap \u2014 reply in the thread"})
        # the thread is polled at once; the replies are read back later
        n = [0]

        def read_back():
            n[0] += 1
            return self.ask(h, "GetFeedbackIntent", "req-s2-%d" % n[0])

        said = wait_until(lambda: (lambda t: t if t != "Nothing new from the team." else None)(
                              read_back()),
                          20, "the replies to be read back")
        self.assertEqual(said,
                         "Ben says: great, send the slides. Chen Li says: I'll join at three.")
        # Google Assistant's users have their own replies
        status, body = h.json_request(
            "POST", "/hooks/assistant",
            {"responseId": "df-1", "session": "projects/p/agent/sessions/s",
             "queryResult": {"queryText": "what did they say", "parameters": {},
                             "intent": {"displayName": "GetFeedbackIntent"}},
             "originalDetectIntentRequest": {"source": "google",
                                             "payload": {"user": {"userId": "g-1"}}}},
            {"X-Agent-Key": "k-1"})
        self.assertEqual((status, body["fulfillmentText"]), (200, "Nothing new from the team."))
        self.assertEqual(self.slack.problems, [])

    def test_assistant_without_a_topic_tells_nobody(self):
        h = self.hub(self.config, files={"rules/presentation.yaml": self.rules})

        def give(response_id, topic):
            return h.json_request(
                "POST", "/hooks/assistant",
                {"responseId": response_id, "session": "projects/p/agent/sessions/s",
                 "queryResult": {"queryText": "tell my team I'm presenting",
                                 "parameters": {"topic": topic},
                                 "intent": {"displayName": "GivePresentationIntent"}},
                 "originalDetectIntentRequest": {"source": "google",
                                                 "payload": {"user": {"userId": "g-1"}}}},
                {"X-Agent-Key": "k-1"})
        # Dialogflow sends "" (or [] for a list parameter) when the user gave no topic:
        # the rule's `exists: true` does not match, nothing is posted
        for i, unfilled in enumerate(["", []]):
            status, body = give("df-empty-%d" % i, unfilled)
            self.assertEqual((status, body["fulfillmentText"]),
                             (200, "Sorry, I can't answer that right now."))
        status, body = give("df-topic", "Q3 roadmap")
        self.assertEqual((status, body["fulfillmentText"]), (200, "OK, I told the team."))
        posts = self.slack.wait_calls("chat.postMessage", 1)
        self.assertEqual([p["json"]["text"] for p in posts],
                         ["Someone is presenting: Q3 roadmap \u2014 reply in the thread"])


if __name__ == "__main__":
    unittest.main()
