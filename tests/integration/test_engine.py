"""Rules through the real binary: an event matches, calls run in order with
results bound by `as:`, a waiting caller gets the rule's respond (or the
fallback), failures publish hub/call_failed, and reloads swap rules
atomically or keep the running ones."""
import json
import os
import signal
import unittest

from whtest import FakeAPI, Hub, HubTest, Tail, wait_until

CONFIG = """
connectors:
  in:
    type: webhook
  ask:
    type: webhook
    wait_ms: %(wait)d
    fallback: { text: "nobody answered" }
  api:
    type: webhook
  console:
    type: console
"""

RULES = """
rules:
  - name: chain
    on: in/order
    if: { body.total: { gte: 10 } }
    do:
      - call: api.request
        with: { url: "%(url)s/orders", json: { id: "{{body.id}}" } }
        as: created
      - call: console.say
        with: { channel: "#sales", text: "order {{body.id}} stored as {{created.body.ref}}" }
  - name: answer
    on: ask/*
    if: { body.q: hello }
    respond: { text: "hi {{body.name}}" }
  - name: broken
    on: in/fail
    do:
      - call: api.request
        with: { url: "%(url)s/missing" }
"""


class EngineTest(HubTest):
    def setUp(self):
        super().setUp()
        self.api = FakeAPI({"/orders": [(200, {}, {"ref": "R-1"})],
                            "/missing": [(404, {}, {"error": "nope"})]})
        self.addCleanup(self.api.close)

    def start(self, wait=2000, rules=None):
        return self.hub(CONFIG % {"wait": wait},
                        files={"rules/main.yaml": (rules or RULES) % {"url": self.api.url}})

    def test_calls_run_in_order_with_results(self):
        h = self.start()
        s, b = h.json_request("POST", "/hooks/in/order", {"id": "A7", "total": 12})
        self.assertEqual(s, 200, b)
        line = h.out.wait_for(r"^\[console #sales\] ")
        self.assertEqual(line.string, "[console #sales] order A7 stored as R-1")
        reqs = self.api.wait_requests(1, "/orders")
        self.assertEqual(reqs[0]["json"], {"id": "A7"})
        self.assertTrue(reqs[0]["headers"].get("idempotency-key"))
        # criteria: a small order matches nothing
        s, b = h.json_request("POST", "/hooks/in/order", {"id": "B1", "total": 3})
        self.assertEqual(s, 200)
        s, b = h.json_request("POST", "/hooks/in/order", {"id": "C2", "total": 50})
        h.out.wait_for(r"order C2 stored")
        self.assertNotIn("B1", h.out.text())

    def test_rendered_arguments_take_the_operation_types(self):
        # a value that is exactly one tag keeps its JSON type: an integer for
        # console.say's string `text` is said, not a dead letter; a literal the
        # operation cannot take is a rule error at load
        rules = RULES + """
  - name: count
    on: in/count
    do:
      - call: console.say
        with: { text: "{{body.n}}" }
"""
        h = self.start(rules=rules)
        s, b = h.json_request("POST", "/hooks/in/count", {"n": 7})
        self.assertEqual(s, 200, b)
        line = h.out.wait_for(r"^\[console\] ")
        self.assertEqual(line.string, "[console] 7")
        bad = rules + """
  - name: literal
    on: in/x
    do:
      - call: console.say
        with: { text: [1, 2] }
"""
        h2 = Hub(CONFIG % {"wait": 2000}, {"rules/main.yaml": bad % {"url": "x"}})
        self.hubs.append(h2)
        r = h2.cmd("check", "-c", h2.config_path)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr.decode(), r"main\.yaml:\d+:\d+: argument 'text' for "
                         r"console\.say must be a string, got \[1,2\]")

    def test_a_template_over_the_render_limit_fails_the_run_saying_so(self):
        # 1,100 x 1,100 section passes render past the 1,000,000-value limit: the
        # run fails naming the reason (not a call with every argument lost)
        rules = RULES + """
  - name: huge
    on: in/huge
    do:
      - call: console.say
        with: { text: "{{#body.l}}{{#body.l}}x{{/body.l}}{{/body.l}}" }
"""
        h = self.start(rules=rules)
        tail = Tail(h, "in/hub/")
        s, b = h.json_request("POST", "/hooks/in/huge", {"l": list(range(1100))})
        self.assertEqual(s, 200, b)
        m = tail.wait_message(lambda m: m.get("kind") == "call_failed")
        self.assertEqual(m["data"]["rule"], "huge")
        self.assertIn("cannot render the step's templates", m["data"]["error"])
        self.assertEqual(h.out.text(), "", "nothing was said")

    def test_a_nul_in_a_result_reaches_the_next_step_as_u_fffd(self):
        # a text body with a NUL byte: the outcome stays readable JSON, so the run
        # goes on at once with the text (the NUL as U+FFFD), not after a sweep
        self.api.script["/nul"] = [(200, {"Content-Type": "text/plain"}, b"a\x00b")]
        rules = RULES + """
  - name: nul
    on: in/nul
    do:
      - call: api.request
        with: { url: "%(url)s/nul" }
        as: r
      - call: console.say
        with: { text: "got {{r.status}} {{r.body}}" }
"""
        h = self.start(rules=rules)
        s, b = h.json_request("POST", "/hooks/in/nul", {})
        self.assertEqual(s, 200, b)
        line = h.out.wait_for(r"^\[console\] got ", timeout=8)
        self.assertEqual(line.string, "[console] got 200 a\ufffdb")
        self.assertNotIn("had not delivered", h.err.text())

    def test_waiting_caller_gets_respond(self):
        h = self.start()
        s, b = h.json_request("POST", "/hooks/ask", {"q": "hello", "name": "Ana"})
        self.assertEqual((s, b), (200, {"text": "hi Ana"}))

    def test_no_rule_gives_fallback_at_once(self):
        h = self.start(wait=30000)
        s, b = h.json_request("POST", "/hooks/ask", {"q": "other"}, timeout=10)
        self.assertEqual((s, b), (200, {"text": "nobody answered"}))
        h.err.wait_for(r"fallback answer: no rule matched")

    def test_deadline_fallback(self):
        # the rule answers only after a call, which the fake API never finishes in time
        rules = RULES + """
  - name: slow
    on: ask/slow
    do:
      - call: api.request
        with: { url: "%(url)s/slow", timeout_ms: 20000 }
      - respond: { text: "too late" }
"""
        import time
        self.api.script["/slow"] = [(200, {}, lambda rec: time.sleep(3) or {"ok": 1})]
        h = self.start(wait=500, rules=rules)
        s, b = h.json_request("POST", "/hooks/ask/slow", {"q": "x"})
        self.assertEqual((s, b), (200, {"text": "nobody answered"}))
        h.err.wait_for(r"fallback answer: no answer from the engine within 500 ms")

    STUCK = """  - name: stuck
    on: hub/call_failed
    do:
      - call: console.say
        with: { channel: "#ops", text: "{{rule}} failed at step {{step}} for {{origin.source}}/{{origin.kind}} {{origin.id}}" }
"""

    def test_failed_call_publishes_call_failed(self):
        h = self.start(rules=RULES + self.STUCK)
        tail = Tail(h, "in/hub/")
        s, b = h.json_request("POST", "/hooks/in/fail", {"x": 1})
        self.assertEqual(s, 200)
        msg = tail.wait_message(lambda m: m.get("kind") == "call_failed")
        self.assertEqual(msg["source"], "hub")
        self.assertEqual(msg["data"]["rule"], "broken")
        self.assertEqual(msg["data"]["operation"], "request")
        self.assertIn("404", msg["data"]["error"])
        self.assertEqual(msg["data"]["origin"], {"id": b["events"][0], "time": msg["data"]["origin"]
                                                 ["time"], "source": "in", "kind": "fail"})
        self.assertEqual(len(self.api.requests), 1, "a 404 is not retried")
        # a rule on hub/call_failed reads the failure and the event it came from
        line = h.out.wait_for(r"^\[console #ops\] ")
        self.assertEqual(line.string, "[console #ops] broken failed at step 1 for in/fail %s"
                         % b["events"][0])

    def test_reload_swaps_rules_and_failed_reload_keeps_them(self):
        h = self.start()
        path = os.path.join(h.dir, "rules", "main.yaml")
        new = RULES.replace("hi {{body.name}}", "hello again {{body.name}}") % {"url": self.api.url}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(new)
        os.rename(tmp, path)  # an editor's atomic save
        h.err.wait_for(r"rules: loaded rules=3", start=0)
        wait_until(lambda: h.json_request("POST", "/hooks/ask", {"q": "hello", "name": "B"})[1]
                   == {"text": "hello again B"}, 10, "the reloaded rule")
        # a broken file: the error is logged with its position and the old rules stay
        mark = len(h.err.lines)
        with open(path, "w") as f:
            f.write("rules:\n  - name: x\n    on: in/order\n    iff: {}\n")
        h.err.wait_for(r"main\.yaml:4:5: unknown key 'iff'", start=mark)
        h.err.wait_for(r"reload failed; keeping the rules that were running", start=mark)
        self.assertEqual(h.json_request("POST", "/hooks/ask", {"q": "hello", "name": "C"})[1],
                         {"text": "hello again C"})
        # SIGHUP reloads too
        with open(path, "w") as f:
            f.write(RULES % {"url": self.api.url})
        mark = len(h.err.lines)
        h.proc.send_signal(signal.SIGHUP)
        h.err.wait_for(r"rules: loaded rules=3", start=mark)
        wait_until(lambda: h.json_request("POST", "/hooks/ask", {"q": "hello", "name": "D"})[1]
                   == {"text": "hi D"}, 10, "the original rule back")


@unittest.skipIf(os.environ.get("WIREHUB_VALGRIND"), "2,200 calls: too slow under memcheck; "
                 "the sanitizer build runs it")
class ManyWaitingRunsTest(HubTest):
    """More runs wait for calls than the engine keeps in memory (1,000): the
    rest wait only in the state file and are read back, context and all, when
    their call finishes — every second step sees its first step's result."""

    def test_runs_past_the_memory_cap_resume_from_the_store(self):
        import http.client
        import threading
        gate = threading.Event()
        self.addCleanup(gate.set)
        api = FakeAPI()
        self.addCleanup(api.close)

        def first(rec):
            gate.wait(60)
            return {"n": rec["json"]["n"]}
        api.script["/first"] = [(200, {}, first)]
        h = self.hub("connectors:\n  in:\n    type: webhook\n"
                     "  api:\n    type: webhook\n    concurrency: 4\n",
                     files={"rules/r.yaml": (
                         "rules:\n  - name: two\n    on: in/*\n    do:\n"
                         "      - call: api.request\n"
                         "        with: { url: \"%(u)s/first\", json: { n: \"{{body.n}}\" } }\n"
                         "        as: one\n"
                         "      - call: api.request\n"
                         "        with: { url: \"%(u)s/second\", json: { n: \"{{body.n}}\", "
                         "got: \"{{one.body.n}}\" } }\n") % {"u": api.url}})
        total = 1100

        def poster(lo, hi):
            conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
            for n in range(lo, hi):
                conn.request("POST", "/hooks/in/ev", body=json.dumps({"n": n}),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
            conn.close()
        threads = [threading.Thread(target=poster, args=(i * 275, (i + 1) * 275))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        # every run is waiting for its first call (4 in flight, the rest queued)
        wait_until(lambda: int(h.cmd("runs", "-c", h.config_path, "--json").stdout.count(
            b'"waiting"')) >= total, 60, "%d waiting runs" % total)
        gate.set()
        reqs = api.wait_requests(total, "/second", timeout=120)
        self.assertEqual(sorted(int(r["json"]["n"]) for r in reqs), list(range(total)))
        self.assertTrue(all(r["json"]["got"] == r["json"]["n"] for r in reqs),
                        "each run resumed with its own first result")


@unittest.skipIf(os.environ.get("WIREHUB_VALGRIND"), "hundreds of slow renders: too slow under "
                 "memcheck; the sanitizer build runs it")
class BackpressureTest(HubTest):
    """While rules are further behind than gateway.max_rule_lag, new events are
    refused with 503 busy and Retry-After (not queued in memory without end),
    except those of an instance no rule reads; once the engine catches up they are taken again, and every event that was
    acknowledged is handled."""

    def test_events_refused_while_rules_lag_then_taken_again(self):
        import http.client
        import threading
        # each render walks 729,000 sections, each looking up a missing name
        heavy = ("{{#body.a}}{{#body.a}}{{#body.a}}{{^x}}{{/x}}{{/body.a}}{{/body.a}}{{/body.a}}"
                 "done {{body.n}}")
        h = self.hub("gateway:\n  max_rule_lag: 150ms\nconnectors:\n  in:\n    type: webhook\n"
                     "  other:\n    type: webhook\n  out:\n    type: console\n",
                     files={"rules/r.yaml": "rules:\n  - name: slow\n    on: in/*\n    do:\n"
                            "      - call: out.say\n        with: { text: \"%s\" }\n" % heavy})
        body = {"a": list(range(90))}
        acked, busy, lock = [], [], threading.Lock()

        def post(n, conn):
            conn.request("POST", "/hooks/in/ev", body=json.dumps(dict(body, n=n)),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = json.loads(r.read())
            with lock:
                if r.status == 200:
                    acked.append(n)
                else:
                    busy.append((r.status, data.get("error"), r.getheader("Retry-After")))
            return r.status

        def burst(k):
            conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
            for n in range(k * 50, (k + 1) * 50):
                post(n, conn)
            conn.close()
        # a burst the engine needs seconds for (~17 ms a render)...
        threads = [threading.Thread(target=burst, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        # ...and while it works through it, new events are refused
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
        more = iter(range(1000, 100000))
        wait_until(lambda: post(next(more), conn) == 503, 30, "an event refused as busy")
        conn.close()
        # an instance no rule reads does not queue behind the rules: still taken
        s, b = h.json_request("POST", "/hooks/other/ev", {"n": 0})
        self.assertEqual(s, 200, b)
        self.assertEqual(h.json_request("POST", "/hooks/in/ev", dict(body, n=-2))[0], 503,
                         "the rules were still behind")
        self.assertEqual(set(busy), {(503, "busy", "1")})
        self.assertTrue(acked)
        # caught up: every acknowledged event was handled, and new ones are taken again
        wait_until(lambda: h.out.text().count("done ") >= len(acked), 120,
                   "%d acknowledged events handled" % len(acked))
        wait_until(lambda: h.json_request("POST", "/hooks/in/ev", dict(body, n=-1))[0] == 200, 30,
                   "events taken again once the rules caught up")
        done = {int(x) for x in __import__("re").findall(r"done (\d+)", h.out.text())}
        self.assertLessEqual(set(acked), done)


if __name__ == "__main__":
    unittest.main()
