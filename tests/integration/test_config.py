"""Config errors through the real binary: file:line:col messages, exit status 2,
secrets resolved from env and files and never printed."""
import os
import unittest

from whtest import Hub, HubTest


class ConfigTest(HubTest):
    def check(self, config, files=None, env=None):
        h = Hub(config, files, env)
        self.hubs.append(h)
        return h, h.cmd("check", "-c", h.config_path)

    def test_unknown_and_mistyped_keys(self):
        h, r = self.check("listen: 127.0.0.1:0\nlisten_port: 8\ngateway:\n  max_body: big\n"
                          "connectors:\n  x:\n    type: webhook\n    secrett: s\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        err = r.stderr.decode()
        path = h.config_path
        self.assertIn(path + ":2:1: unknown key 'listen_port'", err)
        self.assertIn(path + ":4:3: 'max_body' must be an integer, like 1048576", err)
        self.assertIn(path + ":8:5: unknown key 'secrett'", err)

    def test_same_errors_stop_run(self):
        h = Hub("bogus: 1\n")
        self.hubs.append(h)
        r = h.cmd("run", "-c", h.config_path)
        self.assertEqual(r.returncode, 2)
        self.assertIn(":1:1: unknown key 'bogus'", r.stderr.decode())

    def test_connector_checks_are_config_errors_with_positions(self):
        # the connectors' own checks (ranges, pairs of keys) run at `check` and
        # stop `run` with exit 2 before anything starts, each at its line
        cfg = ("listen: 127.0.0.1:0\n"
               "connectors:\n"
               "  gh:\n"
               "    type: webhook\n"
               "    secret: \"\"\n"
               "  ask: { type: webhook, wait_ms: 999999 }\n"
               "  df:\n"
               "    type: dialogflow\n"
               "    username: u\n")
        h, r = self.check(cfg)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 2, err)
        path = h.config_path
        self.assertIn(path + ":5:13: connector 'gh': `secret` is empty", err)
        self.assertIn(path + ":6:34: connector 'ask': `wait_ms` must be between 0 and 60000", err)
        self.assertIn(path + ":9:15: connector 'df': `username` and `password` go together", err)
        r = h.cmd("run", "-c", h.config_path)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.decode(), err)
        self.assertFalse(os.path.exists(os.path.join(h.dir, "wirehub.db")), "nothing started")

    def test_check_shows_what_connectors_warn_about(self):
        h, r = self.check("listen: 127.0.0.1:0\nconnectors:\n  open: { type: webhook }\n"
                          "  ask: { type: alexa, skill_id: amzn1.ask.skill.x, verify: false }\n",
                          files={"rules/.keep": ""})
        self.assertEqual(r.returncode, 0, r.stderr)
        err = r.stderr.decode()
        self.assertIn(h.config_path + ":3:3: warning: connector 'open': no `secret` configured: "
                      "accepting unsigned requests", err)
        self.assertIn(h.config_path + ":4:3: warning: connector 'ask': verify: false", err)
        self.assertIn(b": ok (2 connector instances", r.stdout)

    def test_every_connector_problem_is_listed_in_file_order(self):
        # each connector logs all its problems, not the first; one instance's schema
        # error does not hide another's checks; the list goes down the file
        cfg = ("listen: 127.0.0.1:0\n"
               "connectors:\n"
               "  team:\n"
               "    type: slack\n"
               "    api_base: \"not a url\"\n"
               "    token: \"\"\n"
               "    signing_secret: s\n"
               "    replies_per_min: -1\n"
               "    tier4_per_min: 0\n"
               "  ask: { type: alexa, deadline_ms: \"5\" }\n"
               "  df: { type: dialogflow, username: u, deadline_ms: 1 }\n"
               "  hook: { type: webhook, kind: \"x y\", wait_ms: 70000 }\n")
        h, r = self.check(cfg)
        self.assertEqual(r.returncode, 2, r.stderr)
        got = [l.split(": ", 1)[0].rsplit(":", 2)[1:] + [l.split(": ", 1)[1]]
               for l in r.stderr.decode().splitlines()]
        self.assertEqual([(int(a), int(b)) for a, b, _ in got],
                         sorted((int(a), int(b)) for a, b, _ in got), "in file order")
        text = r.stderr.decode()
        path = h.config_path
        for want in (":5:15: connector 'team': `api_base` must be",
                     ":6:12: connector 'team': `token` must be",
                     ":8:22: connector 'team': `replies_per_min` must be 0..100000",
                     ":9:20: connector 'team': `tier4_per_min` must be 1..100000",
                     ":10:3: missing required key 'skill_id'",
                     ":10:23: 'deadline_ms' must be an integer",
                     ":11:37: connector 'df': `username` and `password` go together",
                     ":11:53: connector 'df': `deadline_ms` must be between 100 and 60000",
                     ":12:32: connector 'hook': `kind` must match",
                     ":12:48: connector 'hook': `wait_ms` must be between 0 and 60000"):
            self.assertIn(path + want, text)

    def test_check_goes_on_to_the_rules_after_a_config_error(self):
        # one `check` says everything: a missing secret, and the rule errors too
        cfg = ("listen: 127.0.0.1:0\n"
               "connectors:\n"
               "  in: { type: webhook, secret: \"${env:WH_TEST_UNSET_SECRET}\" }\n"
               "  say: { type: console }\n"
               "  ask: { type: webhook, wait_ms: 70000 }\n")
        rules = "rules:\n  - name: a\n    on: in/x\n    do:\n      - call: say.shout\n"
        h, r = self.check(cfg, files={"rules/r.yaml": rules})
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 2, err)
        self.assertIn(h.config_path + ":3:32: `connectors.in.secret`: environment variable "
                      "WH_TEST_UNSET_SECRET is not set", err)
        self.assertRegex(err, r"rules/r\.yaml:5:15: unknown operation 'shout' for instance 'say'")
        # the other instances' own checks run: only the one missing its secret waits
        self.assertIn(h.config_path + ":5:34: connector 'ask': `wait_ms` must be between 0 and "
                      "60000", err)
        self.assertEqual(r.stdout, b"", "no 'ok'")

    def test_a_wrong_type_shows_the_form_wanted(self):
        h, r = self.check("listen: 8080\ngateway:\n  max_rule_lag: 2\n")
        err = r.stderr.decode()
        self.assertIn(h.config_path + ":1:1: 'listen' must be a string, like \"127.0.0.1:8080\"",
                      err)
        self.assertIn(h.config_path + ":3:3: 'max_rule_lag' must be a string, like \"2s\"", err)

    def test_check_says_when_there_are_no_rules_and_why_a_file_is_too_big(self):
        h, r = self.check("listen: 127.0.0.1:0\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok (0 connector instances, no rules: no directory %s/rules)" % h.dir,
                      r.stdout.decode())
        os.makedirs(os.path.join(h.dir, "rules"))
        with open(os.path.join(h.dir, "rules", "big.yaml"), "w") as f:
            f.write("#" * (16 * 1024 * 1024 + 1))
        r = h.cmd("check", "-c", h.config_path)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"big.yaml: cannot read: larger than the 16 MiB a file may have", r.stderr)

    def test_listen_must_be_numeric(self):
        for bad in ('"[::1"', "999.1.1.1:80", "localhost:8080", "127.0.0.1:70000"):
            h, r = self.check("listen: %s\n" % bad)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn(h.config_path + ":1:9: 'listen' must be host:port with a numeric host",
                          r.stderr.decode())
        for good in ('"[::1]:0"', "127.0.0.1:0", '":0"'):
            h, r = self.check("listen: %s\n" % good)
            self.assertEqual(r.returncode, 0, (good, r.stderr))

    def test_yaml_syntax_error_position(self):
        h, r = self.check("connectors:\n  x: [1, 2\n")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr.decode(), r"wirehub\.yaml:\d+:\d+: ")

    def test_missing_secret_names_the_variable_not_values(self):
        h, r = self.check("connectors:\n  gh:\n    type: webhook\n    secret: \"${env:WH_NOPE_SECRET}\"\n",
                          env={"WH_NOPE_SECRET": ""})
        # set but empty is allowed; now unset it
        env = dict(os.environ)
        env.pop("WH_NOPE_SECRET", None)
        h.env = env
        r = h.cmd("check", "-c", h.config_path)
        self.assertEqual(r.returncode, 2)
        self.assertIn(":4:13: `connectors.gh.secret`: environment variable WH_NOPE_SECRET is not set",
                      r.stderr.decode())

    def test_secret_from_file_and_env_work(self):
        h, r = self.check(
            "connectors:\n  gh:\n    type: webhook\n    secret: \"${file:secret.txt}\"\n"
            "  gh2:\n    type: webhook\n    secret: \"pre-${env:WH_S2}\"\n",
            files={"secret.txt": "s3cr3t-value\n"}, env={"WH_S2": "v2"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"s3cr3t-value", r.stdout + r.stderr)
        h, r = self.check("connectors:\n  gh:\n    type: webhook\n    secret: \"${file:absent.txt}\"\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("`connectors.gh.secret`: cannot read secret file", r.stderr.decode())
        # a directory says so (it read as an I/O error)
        h, r = self.check("connectors:\n  gh:\n    type: webhook\n    secret: \"${file:d}\"\n",
                          files={"d/x": ""})
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr.decode(), r"cannot read secret file \S+/d: Is a directory")

    def test_unknown_connector_type(self):
        h, r = self.check("connectors:\n  x:\n    type: telepathy\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn(":3:5: ", r.stderr.decode())
        self.assertIn("telepathy.so: no such connector", r.stderr.decode())

    def test_version_and_help(self):
        h = Hub("")
        self.hubs.append(h)
        r = h.cmd("version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^wirehub \d+\.\d+\.\d+")
        for sub in ("run", "tail", "check", "describe", "render"):
            r = h.cmd(sub, "--help")
            self.assertEqual(r.returncode, 0, sub)
            self.assertIn("usage: wirehub " + sub, r.stdout.decode())
        r = h.cmd("frobnicate")
        self.assertEqual(r.returncode, 2)
        r = h.cmd("describe", "webhook")
        self.assertEqual(r.returncode, 0)
        self.assertIn("signature_header", r.stdout.decode())
        self.assertRegex(r.stdout.decode(), r"\n  secret +\(secret\) HMAC")


if __name__ == "__main__":
    unittest.main()
