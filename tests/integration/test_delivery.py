"""Durable delivery through the real binary against a fake API on loopback:
retries with backoff and Retry-After, no retry for a 400, dead letters after
max_attempts and `outbox retry`, runs listed by `wirehub runs`, and a crash
test: kill -9 under load, restart, and every acknowledged event's call
arrives (counted by idempotency key)."""
import json
import os
import signal
import threading
import time
import unittest

from whtest import FakeAPI, Hub, HubTest, Tail, wait_until

CONFIG = """
connectors:
  in:
    type: webhook
  api:
    type: webhook
    max_attempts: %(attempts)d
    timeout_ms: %(timeout)d
"""

RULES = """
rules:
  - name: forward
    on: in/*
    do:
      - call: api.request
        with: { url: "%(url)s/{{event.kind}}", json: { n: "{{body.n}}" } }
"""


class DeliveryTest(HubTest):
    def setUp(self):
        super().setUp()
        self.api = FakeAPI()
        self.addCleanup(self.api.close)

    def start(self, attempts=8, timeout=30000):
        return self.hub(CONFIG % {"attempts": attempts, "timeout": timeout},
                        files={"rules/r.yaml": RULES % {"url": self.api.url}})

    def post(self, h, kind, n):
        s, b = h.json_request("POST", "/hooks/in/" + kind, {"n": n})
        self.assertEqual(s, 200, b)
        return b["events"][0]

    def test_retries_on_500_then_delivers_with_the_same_key(self):
        self.api.script["/flaky"] = [(500, {}, {"e": 1}), (503, {}, {"e": 2}), (200, {}, {"ok": 1})]
        h = self.start()
        self.post(h, "flaky", 1)
        reqs = self.api.wait_requests(3, "/flaky", timeout=20)
        keys = {r["headers"]["idempotency-key"] for r in reqs}
        self.assertEqual(len(keys), 1, "one idempotency key across retries")
        wait_until(lambda: b"done" in h.cmd("outbox", "-c", h.config_path, "--all").stdout, 10,
                   "the call marked done")
        self.assertEqual(len([r for r in self.api.requests if r["path"] == "/flaky"]), 3)
        # a finished run keeps its row, not a second copy of the event (kept a week)
        import sqlite3
        db = sqlite3.connect(os.path.join(h.dir, "wirehub.db"), timeout=30)
        rows = wait_until(lambda: db.execute("SELECT state, ctx FROM runs").fetchall()
                          if db.execute("SELECT count(*) FROM runs WHERE state = 'done'")
                          .fetchone()[0] else None, 10, "the run done")
        db.close()
        self.assertEqual(rows, [("done", "{}")])

    def test_a_header_with_an_empty_value_is_sent(self):
        h = self.hub(CONFIG % {"attempts": 8, "timeout": 30000},
                     files={"rules/r.yaml": """
rules:
  - name: hdr
    on: in/*
    do:
      - call: api.request
        with: { url: "%s/hdr", headers: { X-Empty: "", X-Full: "v" } }
""" % self.api.url})
        self.post(h, "x", 1)
        req = self.api.wait_requests(1, "/hdr")[0]
        self.assertEqual((req["headers"].get("x-empty"), req["headers"].get("x-full")), ("", "v"))

    def test_retry_after_is_honoured(self):
        self.api.script["/busy"] = [(429, {"Retry-After": "1"}, {"e": 1}), (200, {}, {"ok": 1})]
        h = self.start()
        self.post(h, "busy", 1)
        reqs = self.api.wait_requests(2, "/busy", timeout=20)
        self.assertGreaterEqual(reqs[1]["time"] - reqs[0]["time"], 1.0)

    def test_a_call_backing_off_does_not_hold_its_instance_slot(self):
        # concurrency 1: a call waiting out a Retry-After (or a backoff from a dead
        # endpoint) is not in flight, so the instance's next call goes at once
        self.api.script["/slow"] = [(429, {"Retry-After": "600"}, {"e": 1})]
        h = self.hub(CONFIG % {"attempts": 8, "timeout": 30000} + "    concurrency: 1\n",
                     files={"rules/r.yaml": RULES % {"url": self.api.url} + """
  - name: dead-end
    on: in/dead
    do:
      - call: api.request
        with: { url: "http://127.0.0.1:9/nobody", json: {} }
"""})
        self.post(h, "slow", 1)
        self.api.wait_requests(1, "/slow")
        self.post(h, "dead", 2)
        h.err.wait_for(r"request attempt 1 failed, next in")
        self.post(h, "healthy", 3)
        self.api.wait_requests(1, "/healthy", timeout=10)

    def test_a_failing_alert_on_dead_letters_does_not_loop(self):
        # the README's pattern: a rule on hub/dead_letter tells someone. When that
        # call dies too, its own failure is logged, not announced again (a loop)
        self.api.script["/work"] = [(400, {}, {"e": "bad"})]
        self.api.script["/alert"] = [(400, {}, {"e": "bad too"})]
        rules = """
rules:
  - name: work
    on: in/*
    do:
      - call: api.request
        with: { url: "%(url)s/work", json: {} }
  - name: alert
    on: hub/dead_letter
    do:
      - call: api.request
        with: { url: "%(url)s/alert", json: { text: "stuck: {{call}}" } }
  - name: alert-run
    on: hub/call_failed
    do:
      - call: api.request
        with: { url: "%(url)s/alert", json: { text: "failed: {{rule}}" } }
""" % {"url": self.api.url}
        h = self.hub(CONFIG % {"attempts": 3, "timeout": 30000}, files={"rules/r.yaml": rules})
        self.post(h, "x", 1)
        h.err.wait_for(r"not announced as hub/dead_letter: its rule was started by a failure")
        h.err.wait_for(r"not announced as hub/call_failed: rule alert(-run)? was itself started")
        wait_until(lambda: h.err.text().count("not announced as hub/dead_letter") == 2 and
                   h.err.text().count("not announced as hub/call_failed") == 2, 10,
                   "both alerts' failures logged")
        # one work call, two alerts for it (dead letter, run failed): nothing more comes
        n = len(self.api.requests)
        self.assertEqual(n, 3)
        dead = lambda: len(h.cmd("outbox", "-c", h.config_path, "--dead").stdout.splitlines())
        self.assertEqual(dead(), 1 + 3)  # the header and three dead calls
        time.sleep(1.5)  # a loop would have made more by now
        self.assertEqual((len(self.api.requests), dead()), (n, 4))

    def test_calls_backing_off_never_fill_the_queue_ahead_of_healthy_ones(self):
        # queue_max 2: past half of it, a call waiting out its delay waits in the
        # outbox instead of memory, so healthy calls behind three 429s still go
        self.api.script["/slow"] = [(429, {"Retry-After": "600"}, {"e": 1})]
        h = self.hub(CONFIG % {"attempts": 8, "timeout": 30000} +
                     "    concurrency: 1\n    queue_max: 2\n",
                     files={"rules/r.yaml": RULES % {"url": self.api.url}})
        for n in range(3):
            self.post(h, "slow", n)
        self.api.wait_requests(3, "/slow", timeout=20)
        self.post(h, "healthy", 9)
        self.post(h, "healthy", 10)
        self.api.wait_requests(2, "/healthy", timeout=15)

        def left():
            rows = [json.loads(l) for l in h.cmd("outbox", "-c", h.config_path, "--json")
                    .stdout.splitlines()]
            return sorted((r["state"], r["attempts"]) for r in rows)
        # the healthy ones done (their outcomes recorded); the 429s wait, attempts kept
        wait_until(lambda: left() == [("pending", 1)] * 3, 10, "only the 429s left")

    def test_a_far_retry_after_waits_an_hour_at_most(self):
        self.api.script["/park"] = [(429, {"Retry-After": "100000"}, {"e": 1})]
        h = self.start()
        self.post(h, "park", 1)
        h.err.wait_for(r"Retry-After of 100000 s shortened to an hour")

        def recorded():
            rows = [json.loads(l) for l in h.cmd("outbox", "-c", h.config_path, "--json").stdout
                    .splitlines()]
            return rows if [(r["state"], r["attempts"]) for r in rows] == [("pending", 1)] else None
        rows = wait_until(recorded, 10, "the attempt recorded")
        wait = rows[0]["next_at"] / 1000 - time.time()
        self.assertTrue(3500 < wait <= 3600, wait)

    def test_timeout_is_retried(self):
        self.api.script["/stall"] = [(200, {}, lambda rec: time.sleep(2) or {"late": 1}),
                                     (200, {}, {"ok": 1})]
        h = self.start(timeout=300)
        self.post(h, "stall", 1)
        self.api.wait_requests(2, "/stall", timeout=20)
        h.err.wait_for(r"attempt 1 failed.*timed out|attempt 1 failed.*[Tt]imeout")

    def test_400_is_not_retried_and_outbox_retry_requeues(self):
        self.api.script["/bad"] = [(400, {}, {"error": "bad"}), (200, {}, {"ok": 1})]
        h = self.start()
        tail = Tail(h, "in/hub/")
        self.post(h, "bad", 1)
        dead = tail.wait_message(lambda m: m["kind"] == "dead_letter")
        self.assertEqual(dead["data"]["attempts"], 1)
        self.assertIn("400", dead["data"]["error"])
        # the API's answer rides along, for a rule that tells someone why
        self.assertEqual((dead["data"]["result"]["status"], dead["data"]["result"]["body"]),
                         (400, {"error": "bad"}))
        failed = tail.wait_message(lambda m: m["kind"] == "call_failed")
        self.assertEqual(failed["data"]["rule"], "forward")
        self.assertEqual(len(self.api.requests), 1)
        r = h.cmd("outbox", "-c", h.config_path, "--dead", "--json")
        rows = [json.loads(l) for l in r.stdout.decode().splitlines()]
        self.assertEqual(len(rows), 1, r)
        self.assertEqual(rows[0]["state"], "dead")
        self.assertIn("400", rows[0]["last_error"])
        self.assertEqual(rows[0]["result"]["body"], {"error": "bad"})
        r = h.cmd("runs", "-c", h.config_path, "--failed", "--json")
        run = json.loads(r.stdout.decode().splitlines()[0])
        # steps count from 1 everywhere: here, in call_failed and in the key
        self.assertEqual((run["rule"], run["step"], failed["data"]["step"]), ("forward", 1, 1))
        self.assertTrue(rows[0]["id"].endswith(".1.1"))
        # re-queue by id: delivered, and the run completes
        r = h.cmd("outbox", "-c", h.config_path, "retry", rows[0]["id"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.api.wait_requests(2, "/bad", timeout=20)
        wait_until(lambda: b"done" in h.cmd("runs", "-c", h.config_path).stdout, 10,
                   "the run done after the retry")
        r = h.cmd("runs", "-c", h.config_path, "--json")
        self.assertEqual([(x["state"], x["step"]) for x in map(json.loads, r.stdout.splitlines())],
                         [("done", 1)])  # a finished run: how many steps it ran
        self.assertEqual(h.cmd("outbox", "-c", h.config_path, "retry", "--dead").returncode, 1)

    def test_dead_letter_after_max_attempts(self):
        self.api.script["/down"] = [(500, {}, {"e": 1})]
        h = self.start(attempts=3)
        tail = Tail(h, "in/hub/dead_letter")
        self.post(h, "down", 1)
        dead = tail.wait_message(lambda m: m["kind"] == "dead_letter", timeout=30)
        self.assertEqual(dead["data"]["attempts"], 3)
        self.assertEqual(len([r for r in self.api.requests if r["path"] == "/down"]), 3)
        r = h.cmd("outbox", "-c", h.config_path, "--dead")
        self.assertIn(b"dead", r.stdout)
        self.assertIn(b"HTTP 500", r.stdout)

    def test_an_outcome_that_cannot_be_written_does_not_resend_the_call(self):
        # The state file goes while the call is out: its outcome cannot be written.
        # The call must not be sent again every scan (2 s) for as long as that lasts.
        gone = threading.Event()

        def slow(rec):
            gone.wait(10)
            return {"ok": 1}

        self.api.script["/slow"] = [(200, {}, slow)]
        h = self.start()
        self.post(h, "slow", 1)
        self.api.wait_requests(1, "/slow")
        os.unlink(os.path.join(h.dir, "wirehub.db"))
        gone.set()
        h.err.wait_for(r"cannot record the outcome of \S+: .*; trying again, the call is not "
                       r"sent again meanwhile")
        time.sleep(5)  # two and a half scans
        self.assertEqual(len([r for r in self.api.requests if r["path"] == "/slow"]), 1)
        self.assertEqual(h.stop(), 0)

    def test_restart_resumes_pending_calls(self):
        # the API is down while the hub runs; the call stays pending across a restart
        self.api.script["/later"] = [(503, {}, {"e": 1})]
        h = self.start()
        self.post(h, "later", 7)
        self.api.wait_requests(1, "/later")
        self.assertEqual(h.stop(), 0)
        self.api.script["/later"] = [(200, {}, {"ok": 1})]
        h.start()
        reqs = self.api.wait_requests(2, "/later", timeout=20)
        self.assertEqual(reqs[-1]["json"], {"n": 7})  # a lone {{tag}} keeps the value's type

    TWO_STEPS = """
rules:
  - name: two
    on: in/*
    do:
      - call: api.request
        with: { url: "%(url)s/first" }
      - call: api.request
        with: { url: "%(url)s/%(second)s" }
"""

    def dead_first_call(self, h):
        self.post(h, "go", 1)
        wait_until(lambda: h.cmd("outbox", "-c", h.config_path, "--dead").stdout.count(b"\n") > 1,
                   10, "the first call dead")
        r = h.cmd("outbox", "-c", h.config_path, "--dead", "--json")
        return json.loads(r.stdout.decode().splitlines()[0])["id"]

    def write_rules(self, h, second):
        path = os.path.join(h.dir, "rules", "r.yaml")
        with open(path + ".tmp", "w") as f:
            f.write(self.TWO_STEPS % {"url": self.api.url, "second": second})
        os.rename(path + ".tmp", path)

    def test_a_run_read_back_resumes_on_the_rule_text_it_started_on(self):
        # The run waits in the state file (its first call is dead), the rule's
        # second step changes under it: retried, it goes on as it started.
        self.api.script["/first"] = [(400, {}, {"e": 1}), (200, {}, {"ok": 1})]
        h = self.hub(CONFIG % {"attempts": 3, "timeout": 30000},
                     files={"rules/r.yaml": self.TWO_STEPS % {"url": self.api.url,
                                                              "second": "old"}})
        call = self.dead_first_call(h)
        mark = len(h.err.lines)
        self.write_rules(h, "new")
        h.err.wait_for(r"loaded rules=1", start=mark)
        self.assertEqual(h.cmd("outbox", "-c", h.config_path, "retry", call).returncode, 0)
        self.api.wait_requests(1, "/old", timeout=20)
        wait_until(lambda: b"done" in h.cmd("runs", "-c", h.config_path).stdout, 10, "run done")
        self.assertEqual([r for r in self.api.requests if r["path"] == "/new"], [])

        # After a restart that text is gone: the run fails, saying why, rather
        # than run the new step or wait for ever.
        self.api.script["/first"] = [(400, {}, {"e": 1}), (200, {}, {"ok": 1})]
        call = self.dead_first_call(h)
        self.assertEqual(h.stop(), 0)
        self.write_rules(h, "newer")
        h.start()
        self.assertEqual(h.cmd("outbox", "-c", h.config_path, "retry", call).returncode, 0)
        h.err.wait_for(r"engine: run \S+ failed: rule 'two' was changed or removed since this "
                       r"run started; its remaining steps are not run", timeout=20)
        r = h.cmd("runs", "-c", h.config_path, "--failed", "--json")
        runs = [json.loads(l) for l in r.stdout.decode().splitlines()]
        self.assertIn("was changed or removed", runs[-1]["error"])
        self.assertEqual([r for r in self.api.requests if r["path"] in ("/new", "/newer")], [])


class CrashTest(HubTest):
    """Webhooks stream in while the hub is killed with SIGKILL several times."""

    def test_kill9_loses_no_acknowledged_event(self):
        api = FakeAPI()
        self.addCleanup(api.close)
        h = self.hub(CONFIG % {"attempts": 50, "timeout": 5000},
                     files={"rules/r.yaml": RULES % {"url": api.url}})
        acked = []
        lock = threading.Lock()
        stop = threading.Event()

        def sender():
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    s, b = h.json_request("POST", "/hooks/in/crash", {"n": n}, timeout=5)
                except Exception:
                    time.sleep(0.01)
                    continue
                if s == 200:
                    with lock:
                        acked.append(b["events"][0])

        threads = [threading.Thread(target=sender) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for round_ in range(3):
                wait_until(lambda: len(acked) >= 50 * (round_ + 1), 30, "acknowledged events")
                h.proc.kill()
                h.proc.wait(10)
                h._close()
                h.start()
            wait_until(lambda: len(acked) >= 250, 30, "more acknowledged events")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        # every acknowledged event's call arrives; the key is "<event id>.1.1"
        want = {e + ".1.1" for e in acked}

        def arrived():
            with api.cond:
                got = {r["headers"].get("idempotency-key") for r in api.requests}
            return want <= got

        wait_until(arrived, 60, "every acknowledged event's call at the fake API")
        self.assertEqual(h.stop(), 0)
        import sqlite3
        db = sqlite3.connect(os.path.join(h.dir, "wirehub.db"))
        self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        db.close()


class RecoveryTest(HubTest):
    """What a crash left behind is picked up at the next start, a page at a
    time: events journaled but never handled, and runs whose call finished
    while the hub was down. More than one page of each (the page is 512 rows),
    and each exactly once."""

    EVENTS = 1300
    RUNS = 700

    @staticmethod
    def rules(api):
        return RULES % {"url": api.url} + """
  - name: chain
    on: in/chain
    do:
      - call: api.request
        with: { url: "%(url)s/first" }
        as: first
      - call: api.request
        with: { url: "%(url)s/second", json: { n: "{{first.body.got}}" } }
""" % {"url": api.url}

    def test_backlog_left_by_a_crash_is_resumed_once(self):
        import sqlite3
        api = FakeAPI()
        self.addCleanup(api.close)
        rules = self.rules(api)
        h = self.hub(CONFIG % {"attempts": 8, "timeout": 30000}, files={"rules/r.yaml": rules})
        self.assertEqual(h.stop(), 0)  # the state file now has the latest schema

        # what a crash leaves: journaled events not yet handled, and runs
        # waiting on a call that has since finished
        db = sqlite3.connect(os.path.join(h.dir, "wirehub.db"))
        now = int(time.time() * 1000) - 60000
        events = []
        for i in range(self.EVENTS):
            eid = "%012x%020x" % (now + i, i)
            env = {"id": eid, "time": "2026-01-01T00:00:00.000Z", "source": "in", "kind": "k",
                   "data": {"body": {"n": i}, "headers": {}, "query": {}, "path": "k"}}
            events.append((eid, json.dumps(env), now + i))
        db.executemany("INSERT INTO events (id, source, kind, envelope, state, created_ms) "
                       "VALUES (?1, 'in', 'k', ?2, 'new', ?3)", events)
        for i in range(self.RUNS):
            rid = "r%05d" % i
            db.execute("INSERT INTO runs (id, event_id, rule, step, ctx, state, created_ms, "
                       "updated_ms) VALUES (?1, NULL, 'chain', 0, '{}', 'waiting', ?2, ?2)",
                       (rid, now + i % 5))  # equal updated_ms: the rowid breaks ties
            db.execute("INSERT INTO outbox (id, run_id, step, instance, op, args, key, state, "
                       "attempts, next_at_ms, result, created_ms, updated_ms) VALUES "
                       "(?1 || '.1', ?1, 1, 'api', 'request', '{}', ?1 || '.1', 'done', 1, ?2, "
                       "?3, ?2, ?2)", (rid, now, json.dumps({"status": 200, "headers": {},
                                                             "body": {"got": i}})))
        db.commit()
        db.close()

        h.start()
        h.err.wait_for(r"recovered waiting_runs=%d unhandled_events=%d" % (self.RUNS, self.EVENTS),
                       timeout=60)

        def keys(path):
            with api.cond:
                return [r["headers"].get("idempotency-key") for r in api.requests
                        if r["path"] == path]

        wait_until(lambda: len(keys("/k")) >= self.EVENTS and len(keys("/second")) >= self.RUNS,
                   120, "every replayed event's call and every resumed run's next call")
        self.assertEqual(h.stop(), 0)
        got = keys("/k")
        self.assertEqual(sorted(got), sorted(e[0] + ".1.1" for e in events))
        second = keys("/second")
        self.assertEqual(sorted(second), sorted("r%05d.2" % i for i in range(self.RUNS)))
        with api.cond:
            ns = sorted(r["json"]["n"] for r in api.requests if r["path"] == "/second")
        self.assertEqual(ns, list(range(self.RUNS)))  # the first call's result reached step 2
        self.assertEqual(keys("/first"), [])  # finished calls are not made again
        db = sqlite3.connect(os.path.join(h.dir, "wirehub.db"))
        self.assertEqual(db.execute("SELECT count(*) FROM events WHERE state = 'new'").fetchone(),
                         (0,))
        self.assertEqual(db.execute("SELECT state, count(*) FROM runs WHERE rule = 'chain' "
                                    "GROUP BY state").fetchall(), [("done", self.RUNS)])
        db.close()

    def test_what_the_bus_lost_is_swept_up(self):
        # An event in the journal that the bus never brought (a failed publish,
        # a message dropped past the high-water mark), and a call outcome it
        # never brought to the engine: within a sweep (every 10 s for the
        # journal, every second for outcomes, each with 10 s of grace) the
        # engine takes both from the store, without waiting for a restart.
        import sqlite3
        api = FakeAPI()
        self.addCleanup(api.close)
        h = self.hub(CONFIG % {"attempts": 8, "timeout": 30000} + "  quiet:\n    type: webhook\n",
                     files={"rules/r.yaml": self.rules(api)})
        # events of an instance no rule reads are journaled as handled
        s, b = h.json_request("POST", "/hooks/quiet/x", {"n": 1})
        self.assertEqual(s, 200, b)
        s, live = h.json_request("POST", "/hooks/in/live", {"n": 2})
        self.assertEqual(s, 200, live)
        api.wait_requests(1, "/live")
        db = sqlite3.connect(os.path.join(h.dir, "wirehub.db"), timeout=30)
        self.assertEqual(db.execute("SELECT state FROM events WHERE id = ?",
                                    (b["events"][0],)).fetchall(), [("done",)])
        now = int(time.time() * 1000)
        t = now - 30000
        eid = "%012x%020x" % (t, 7)
        env = {"id": eid, "time": "2026-01-01T00:00:00.000Z", "source": "in", "kind": "lost",
               "data": {"body": {"n": 5}, "headers": {}, "query": {}, "path": "lost"}}
        with db:
            db.execute("INSERT INTO events (id, source, kind, envelope, state, created_ms) "
                       "VALUES (?, 'in', 'lost', ?, 'new', ?)", (eid, json.dumps(env), t))
            db.execute("INSERT INTO runs (id, event_id, rule, step, ctx, state, created_ms, "
                       "updated_ms) VALUES ('lost-run', NULL, 'chain', 0, '{}', 'waiting', ?1, ?1)",
                       (now,))
            db.execute("INSERT INTO outbox (id, run_id, step, instance, op, args, key, state, "
                       "attempts, next_at_ms, result, created_ms, updated_ms) VALUES "
                       "('lost-run.1', 'lost-run', 1, 'api', 'request', '{}', 'lost-run.1', "
                       "'done', 1, ?1, ?2, ?1, ?1)",
                       (now, json.dumps({"status": 200, "headers": {}, "body": {"got": 9}})))
        db.close()
        reqs = api.wait_requests(1, "/lost", timeout=40)
        self.assertEqual(reqs[0]["headers"].get("idempotency-key"), eid + ".1.1")
        self.assertEqual(reqs[0]["json"], {"n": 5})
        h.err.wait_for(r"took 1 journaled event\(s\) the bus had not delivered", timeout=10)
        reqs = api.wait_requests(1, "/second", timeout=40)
        self.assertEqual((reqs[0]["headers"].get("idempotency-key"), reqs[0]["json"]),
                         ("lost-run.2", {"n": 9}))
        h.err.wait_for(r"resumed 1 run\(s\) whose call outcome the bus had not delivered",
                       timeout=10)
        self.assertEqual(h.stop(), 0)
        # what the bus did bring was not taken a second time
        self.assertEqual(len([r for r in api.requests if r["path"] == "/live"]), 1)
        self.assertEqual(h.err.text().count("had not delivered"), 2)

if __name__ == "__main__":
    unittest.main()


class ConcurrencyTest(HubTest):
    """`concurrency` caps an instance's calls in flight; the calls past the cap
    wait in order, and another instance's calls do not wait behind them."""

    def test_cap_holds_and_other_instances_pass(self):
        api = FakeAPI()
        self.addCleanup(api.close)
        gate = threading.Event()
        self.addCleanup(gate.set)
        lock = threading.Lock()
        active = [0, 0]  # now, most at once

        def held(rec):
            with lock:
                active[0] += 1
                active[1] = max(active[1], active[0])
            gate.wait(30)
            with lock:
                active[0] -= 1
            return {"ok": True}

        api.script["/slow"] = [(200, {}, held)]
        h = self.hub("connectors:\n  in:\n    type: webhook\n"
                     "  slow:\n    type: webhook\n    concurrency: 2\n"
                     "  fast:\n    type: webhook\n",
                     files={"rules/r.yaml": (
                         "rules:\n"
                         "  - name: s\n    on: in/slow\n    do:\n"
                         "      - call: slow.request\n"
                         "        with: { url: \"%(u)s/slow\", json: { n: \"{{body.n}}\" } }\n"
                         "  - name: f\n    on: in/fast\n    do:\n"
                         "      - call: fast.request\n"
                         "        with: { url: \"%(u)s/fast\", json: { n: 1 } }\n") % {"u": api.url}})
        for n in range(6):
            s, b = h.json_request("POST", "/hooks/in/slow", {"n": n})
            self.assertEqual(s, 200, b)
        api.wait_requests(2, "/slow")
        # the fast instance is not queued behind the slow one's waiting calls
        s, b = h.json_request("POST", "/hooks/in/fast", {"n": 0})
        self.assertEqual(s, 200, b)
        api.wait_requests(1, "/fast")
        with api.cond:
            self.assertEqual(len([r for r in api.requests if r["path"] == "/slow"]), 2,
                             "only `concurrency` calls in flight")
        gate.set()
        reqs = api.wait_requests(6, "/slow", timeout=20)
        self.assertEqual([r["json"]["n"] for r in reqs], [str(n) for n in range(6)],
                         "waiting calls start in order")
        self.assertEqual(active[1], 2)
        wait_until(lambda: h.cmd("outbox", "-c", h.config_path, "--json").stdout.strip() in
                   (b"[]", b""), 20, "the outbox drained")


    def test_calls_past_queue_max_wait_in_the_outbox_in_order(self):
        """With concurrency 1 and queue_max 2, ten calls: one in flight, two
        in memory, the rest read back from the outbox as room frees, all in
        order and each once."""
        api = FakeAPI()
        self.addCleanup(api.close)
        gate = threading.Event()
        self.addCleanup(gate.set)
        api.script["/slow"] = [(200, {}, lambda rec: gate.wait(30) and {"ok": True})]
        h = self.hub("log_level: debug\nconnectors:\n  in:\n    type: webhook\n"
                     "  slow:\n    type: webhook\n    concurrency: 1\n    queue_max: 2\n",
                     files={"rules/r.yaml": (
                         "rules:\n"
                         "  - name: s\n    on: in/slow\n    do:\n"
                         "      - call: slow.request\n"
                         "        with: { url: \"%s/slow\", json: { n: \"{{body.n}}\" } }\n")
                         % api.url})
        for n in range(10):
            s, b = h.json_request("POST", "/hooks/in/slow", {"n": n})
            self.assertEqual(s, 200, b)
        api.wait_requests(1, "/slow")
        h.err.wait_for(r"slow: 2 calls waiting; later ones wait in the outbox")
        gate.set()
        reqs = api.wait_requests(10, "/slow", timeout=30)
        self.assertEqual([r["json"]["n"] for r in reqs], [str(n) for n in range(10)])
        wait_until(lambda: h.cmd("outbox", "-c", h.config_path, "--json").stdout.strip() in
                   (b"[]", b""), 20, "the outbox drained")
        self.assertEqual(len(api.requests), 10, "each call once")


class DedupeTest(HubTest):
    """A delivery id seen before is answered as the first time; rules run once,
    also across a restart."""

    def test_repeated_delivery_runs_rules_once(self):
        h = self.hub("connectors:\n  gh:\n    type: webhook\n    id_header: X-GitHub-Delivery\n"
                     "  console:\n    type: console\n",
                     files={"rules/r.yaml": "rules:\n  - name: p\n    on: gh/*\n    do:\n"
                            "      - call: console.say\n        with: { text: \"got {{body.n}}\" }\n"})
        hdr = {"X-GitHub-Delivery": "d-1"}
        s1, b1 = h.json_request("POST", "/hooks/gh", {"n": 1}, hdr)
        self.assertEqual(s1, 200)
        h.out.wait_for(r"got 1")
        s2, b2 = h.json_request("POST", "/hooks/gh", {"n": 1}, hdr)
        self.assertEqual((s2, b2), (s1, b1), "the same answer, the same event ids")
        # a new id runs again; then the old id after a restart is still a duplicate
        s3, b3 = h.json_request("POST", "/hooks/gh", {"n": 2}, {"X-GitHub-Delivery": "d-2"})
        h.out.wait_for(r"got 2")
        # events are handled in order, so a second "got 1" would be out by now
        self.assertEqual(h.out.text().count("got 1"), 1)
        self.assertEqual(h.stop(), 0)
        h.start()
        s4, b4 = h.json_request("POST", "/hooks/gh", {"n": 1}, hdr)
        self.assertEqual((s4, b4), (s1, b1))
        s5, b5 = h.json_request("POST", "/hooks/gh", {"n": 3}, {"X-GitHub-Delivery": "d-3"})
        h.out.wait_for(r"got 3")
        self.assertEqual(h.out.text().count("got 1"), 0, "stdout restarted; no replay")
