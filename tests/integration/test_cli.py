"""The rule tools through the real binary: check (every error with its
position), send (live, onto a running hub's bus), send --dry-run (no hub),
and render."""
import json
import os
import unittest

from whtest import Hub, HubTest, Tail

CONFIG = """
connectors:
  team:
    type: webhook
  console:
    type: console
"""

RULES = """
rules:
  - name: greet
    on: team/hello
    if: { who: { exists: true } }
    do:
      - call: console.say
        with: { text: "hello {{who}}" }
    respond: { text: "hi {{who}}" }
  - name: other
    on: team/hello
    if: { who: Zed }
    do:
      - call: console.say
        with: { text: "zed" }
"""


class CliTest(HubTest):
    def test_check_reports_every_rule_error_with_positions(self):
        h = Hub(CONFIG, files={"rules/a.yaml": RULES, "rules/b.yaml":
                               "rules:\n  - name: greet\n    on: teem/hello\n"
                               "    do:\n      - call: console.shout\n"
                               "    if: { n: { greater: 3 } }\n"
                               "    respond: { text: \"{{#x}}\" }\n"})
        self.hubs.append(h)
        r = h.cmd("check", "-c", h.config_path)
        self.assertEqual(r.returncode, 2, r.stdout)
        err = r.stderr.decode()
        b = os.path.join(h.dir, "rules", "b.yaml")
        self.assertIn(b + ":2:5: duplicate rule name 'greet' (first in", err)
        self.assertIn(b + ":3:9: unknown instance 'teem'", err)
        self.assertIn(b + ":5:15: unknown operation 'shout' for instance 'console'", err)
        self.assertIn(b + ":6:16: unknown operator 'greater'", err)
        self.assertIn(b + ":7:23: template: unclosed section 'x'", err)
        # listed down each file, whatever order the checks ran in
        places = [tuple(int(x) for x in l[len(b) + 1:].split(":", 2)[:2])
                  for l in err.splitlines() if l.startswith(b + ":")]
        self.assertEqual(places, sorted(places))
        self.assertEqual(len(places), 5)
        # fixed, it passes
        os.remove(b)
        r = h.cmd("check", "-c", h.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"ok (2 connector instances, 2 rules in 1 file)", r.stdout)

    def test_check_knows_what_each_connector_reads_from_respond(self):
        # a misspelled respond field would be dropped silently at run time
        cfg = ("connectors:\n  al: { type: alexa, skill_id: amzn1.ask.skill.x }\n"
               "  hook: { type: webhook, wait_ms: 100 }\n")
        rules = ("rules:\n"
                 "  - name: a\n"
                 "    on: al/intent\n"
                 "    respond: { speach: hi, end_session: false }\n"
                 "  - name: b\n"                       # the webhook answers the object as it is
                 "    on: hook/x\n"
                 "    respond: { anything: 1 }\n"
                 "  - name: c\n"
                 "    on: al/launch\n"
                 "    do:\n"
                 "      - respond: { speech: ok, ephemeral: true }\n"
                 "  - name: d\n"                       # any source: not checked
                 "    on: \"*/intent\"\n"
                 "    respond: { speech: ok, text: ok }\n")
        h = Hub(cfg, files={"rules/a.yaml": rules})
        self.hubs.append(h)
        r = h.cmd("check", "-c", h.config_path)
        self.assertEqual(r.returncode, 2, r.stdout)
        err = r.stderr.decode().splitlines()
        a = os.path.join(h.dir, "rules", "a.yaml")
        known = "(known: speech, reprompt, card, end_session, attributes)"
        self.assertEqual(err, [a + ":4:16: unknown key 'speach' in a respond to al " + known,
                               a + ":11:32: unknown key 'ephemeral' in a respond to al " + known])

    def test_dry_run_needs_no_hub(self):
        h = Hub(CONFIG, files={"rules/a.yaml": RULES, "ev.json": json.dumps({"who": "Ana"})})
        self.hubs.append(h)
        r = h.cmd("send", "-c", h.config_path, "--dry-run", "team", "hello", "ev.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("rule greet (", out)
        self.assertIn(": matched", out)
        self.assertIn('call console.say {"text":"hello Ana"}', out)
        self.assertIn('respond {"text":"hi Ana"}', out)
        self.assertIn('rule other (', out)
        self.assertIn('not matched: who: "Ana" is not equal to "Zed"', out)
        r = h.cmd("send", "-c", h.config_path, "--dry-run", "nope", "hello", "ev.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"no connector instance 'nope'", r.stderr)
        # no on: takes the event (a typo in the kind): the near misses are shown
        r = h.cmd("send", "-c", h.config_path, "--dry-run", "team", "helo", "ev.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertRegex(out, r"rule greet \(\S+/rules/a\.yaml:\d+\): not matched: on: team/hello "
                              r"does not take team/helo\n")
        self.assertIn("no rule has an on: that takes team/helo (2 rules loaded)\nno rule matched\n",
                      out)

    def test_send_publishes_on_a_running_hub(self):
        h = self.hub(CONFIG, files={"rules/a.yaml": RULES, "ev.json": json.dumps({"who": "Bo"})})
        tail = Tail(h, "in/team/")
        r = h.cmd("send", "-c", h.config_path, "team", "hello", "ev.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        event_id = r.stdout.decode().strip()
        self.assertRegex(event_id, r"^[0-9a-f]{32}$")
        msg = tail.wait_message(lambda m: m.get("id") == event_id)
        self.assertEqual(msg["data"], {"who": "Bo"})
        h.out.wait_for(r"^\[console\] hello Bo$")
        # stdin works too
        r = h.cmd("send", "-c", h.config_path, "team", "hello", "-", input=b'{"who": "Cy"}')
        self.assertEqual(r.returncode, 0, r.stderr)
        h.out.wait_for(r"^\[console\] hello Cy$")

    def test_tail_ends_when_its_reader_does(self):
        # `wirehub tail | head -1`: once the pipe's reader has gone, tail exits 0
        import subprocess
        from whtest import BIN
        h = self.hub(CONFIG, files={"rules/a.yaml": RULES})
        tail = subprocess.Popen([BIN, "tail", "-c", h.config_path, "in/team/"], cwd=h.dir,
                                env=h.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: tail.poll() is None and tail.kill())
        # joined once a sent event shows up on its stdout
        for _ in range(50):
            h.json_request("POST", "/hooks/team/hello", {"who": "Al"})
            ready = __import__("select").select([tail.stdout], [], [], 0.2)[0]
            if ready:
                break
        self.assertTrue(tail.stdout.readline().startswith(b"{"))
        tail.stdout.close()  # the reader leaves, as head -1 does
        for _ in range(50):
            if tail.poll() is not None:
                break
            h.json_request("POST", "/hooks/team/hello", {"who": "Bo"})
            try:
                tail.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
        self.assertEqual(tail.wait(10), 0)
        tail.stderr.close()

    def test_tables_show_control_characters_escaped(self):
        # an API's error text with a line break and an escape sequence: one row, one
        # line, no bytes a terminal would act on (--json keeps the text exact)
        import sqlite3
        h = self.hub(CONFIG, files={"rules/a.yaml": RULES})
        self.assertEqual(h.stop(), 0)
        db = sqlite3.connect(os.path.join(h.dir, "wirehub.db"))
        with db:
            db.execute("INSERT INTO outbox (id, instance, op, args, key, state, attempts, "
                       "next_at_ms, last_error, created_ms, updated_ms) VALUES ('c1', 'team', "
                       "'request', '{}', 'c1', 'dead', 1, 0, ?, 0, 0)",
                       ("bad\n\x1b[31mfake log line\r\u009b2J\u202eevil",))
        db.close()
        r = h.cmd("outbox", "-c", h.config_path, "--dead")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), 2, lines)  # the header and one row
        self.assertIn("bad\\x0a\\x1b[31mfake log line\\x0d\\u009b2J\\u202eevil", lines[1])
        self.assertNotIn("\x1b", r.stdout.decode())
        r = h.cmd("outbox", "-c", h.config_path, "--dead", "--json")
        self.assertEqual(json.loads(r.stdout)["last_error"],
                         "bad\n\x1b[31mfake log line\r\u009b2J\u202eevil")

    def test_send_without_a_hub_fails_clearly(self):
        h = Hub(CONFIG, files={"ev.json": "{}"})
        self.hubs.append(h)
        r = h.cmd("send", "-c", h.config_path, "team", "hello", "ev.json")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"cannot reach the hub's bus at ipc://", r.stderr)
        self.assertIn(b"wirehub.bus.in (is it running?)", r.stderr, "the socket send tried")
        r = h.cmd("send", "-c", h.config_path, "team", "hello", "missing.json")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr.decode(), r"^missing\.json: unable to open .*No such file")

    def test_usage_mistakes_are_told(self):
        h = Hub(CONFIG)
        self.hubs.append(h)
        r = h.cmd("version", "--help")
        self.assertEqual((r.returncode, r.stdout.startswith(b"usage: wirehub version")), (0, True))
        r = h.cmd("version", "extra")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"unexpected argument 'extra'", r.stderr)
        r = h.cmd("outbox", "-c", h.config_path, "--dead", "--all")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--dead and --all are alternatives", r.stderr)
        h.env["WIREHUB_LOG"] = "loud"
        r = h.cmd("version")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"WIREHUB_LOG=loud is not a level", r.stderr)

    def test_state_commands_without_a_state_file(self):
        h = Hub(CONFIG)
        self.hubs.append(h)
        for cmd in (["outbox"], ["runs"], ["replies", "k"]):
            r = h.cmd(*cmd, "-c", h.config_path)
            self.assertEqual(r.returncode, 1, cmd)
            self.assertIn(b"no state file", r.stderr)
        r = h.cmd("runs", "-c", os.path.join(h.dir, "missing.yaml"))
        self.assertEqual(r.returncode, 2)

    def test_operator_commands_run_without_the_hubs_secrets(self):
        # Under systemd the hub's credentials are readable by the hub alone:
        # tail, send and the state commands must not need them; run and check do.
        cfg = ("bus:\n  bind: [\"ipc://wh-cli-bus\"]\nconnectors:\n  team:\n    type: webhook\n"
               "    secret: ${env:WH_CLI_HOOK_SECRET}\n")
        h = Hub(cfg, env={"WH_CLI_HOOK_SECRET": "s3cret-value-123"})
        self.hubs.append(h)
        h.start()
        s, b = h.json_request("POST", "/hooks/team/x", {"n": 1})
        self.assertEqual(s, 401, b)  # the secret is in force
        del h.env["WH_CLI_HOOK_SECRET"]  # what the commands below run with
        t = Tail(h)
        self.assertIsNone(t.proc.poll())
        self.assertEqual(t.stop(), 0)
        self.assertEqual(h.stop(), 0)
        for cmd in (["runs"], ["outbox"], ["replies", "k"]):
            r = h.cmd(*cmd, "-c", h.config_path)
            self.assertEqual(r.returncode, 0, (cmd, r.stderr))
        r = h.cmd("send", "--dry-run", "-c", h.config_path, "team", "hello", "-", input=b"{}")
        self.assertEqual(r.returncode, 0, r.stderr)
        for cmd in (["check"], ["run"]):
            r = h.cmd(*cmd, "-c", h.config_path)
            self.assertEqual(r.returncode, 2, cmd)
            self.assertIn(b"WH_CLI_HOOK_SECRET", r.stderr)

    def test_render(self):
        h = Hub("", files={"t.mustache": "<speak>{{name}} & {{#items}}{{.}},{{/items}}</speak>",
                           "d.json": json.dumps({"name": "Q&A <today>", "items": [1, 2]}),
                           "bad.mustache": "line1\n{{#open}}\n"})
        self.hubs.append(h)
        r = h.cmd("render", "--escape", "xml", "t.mustache", "d.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), "<speak>Q&amp;A &lt;today&gt; & 1,2,</speak>")
        r = h.cmd("render", "bad.mustache", "d.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"bad.mustache:2:1: unclosed section 'open'", r.stderr)


if __name__ == "__main__":
    unittest.main()
