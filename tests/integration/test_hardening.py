"""Secrets and privileges: outgoing TLS is verified unless an instance says
insecure_tls (warned at every start); wirehub refuses rules and state that
other users can write; and the secret check every integration test runs
(whtest.HubTest) really catches a leaked value."""
import http.server
import json
import os
import ssl
import subprocess
import tempfile
import threading
import unittest

from whtest import Hub, HubTest, Tail, wait_until

RULES = """
rules:
  - name: call
    on: in/*
    do:
      - call: api.request
        with: { url: "%(url)s/x" }
"""


class TlsServer:
    """A self-signed HTTPS server on 127.0.0.1 that answers 200 and counts requests."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wh-tls-")
        key, crt = os.path.join(self.dir, "k.pem"), os.path.join(self.dir, "c.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", crt, "-days", "1", "-subj", "/CN=127.0.0.1"],
                       check=True, capture_output=True)
        self.count = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.count += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class HardeningTest(HubTest):
    def test_tls_is_verified_unless_insecure_tls(self):
        tls = TlsServer()
        self.addCleanup(tls.close)
        h = self.hub("connectors:\n  in: { type: webhook }\n  api: { type: webhook, max_attempts: 1 }\n",
                     files={"rules/r.yaml": RULES % {"url": tls.url}})
        self.assertNotIn("insecure_tls is on", h.err.text())
        tail = Tail(h, "in/hub/dead_letter")
        h.json_request("POST", "/hooks/in/x", {})
        dead = tail.wait_message(lambda m: True)
        self.assertRegex(dead["data"]["error"], r"(?i)certificate|SSL")
        self.assertEqual(tls.count, 0)

        h2 = self.hub("connectors:\n  in: { type: webhook }\n"
                      "  api: { type: webhook, insecure_tls: true }\n",
                      files={"rules/r.yaml": RULES % {"url": tls.url}})
        h2.err.wait_for(r"warn api: insecure_tls is on: outgoing TLS certificates are NOT verified")
        h2.json_request("POST", "/hooks/in/x", {})
        wait_until(lambda: tls.count >= 1, 10, "the insecure call delivered")

    def test_refuses_rules_other_users_can_write(self):
        h = Hub("connectors:\n  in: { type: webhook }\n",
                files={"rules/r.yaml": "rules: []\n",
                       "rules/s.yaml": "rules:\n  - name: x\n    on: nobody/x\n"})
        self.hubs.append(h)
        os.chmod(os.path.join(h.dir, "rules"), 0o777)
        r = h.cmd("check", "-c", h.config_path)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"refusing to load rules from a directory other users can write", r.stderr)
        os.chmod(os.path.join(h.dir, "rules"), 0o755)
        os.chmod(os.path.join(h.dir, "rules", "r.yaml"), 0o666)
        r = h.cmd("run", "-c", h.config_path)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"refusing to load a rule file other users can write", r.stderr)
        # the refusal does not hide the other files' errors
        self.assertIn(b"s.yaml:3:9: unknown instance 'nobody'", r.stderr)

    def test_refuses_a_state_file_other_users_can_write(self):
        h = Hub("connectors:\n  in: { type: webhook }\n")
        self.hubs.append(h)
        h.start()
        self.assertEqual(h.stop(), 0)
        os.chmod(os.path.join(h.dir, "wirehub.db"), 0o666)
        r = h.cmd("run", "-c", h.config_path, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"other users can write", r.stderr)

    def test_the_secret_check_catches_a_leak(self):
        # a rule that prints a request field: if that field carries a secret, it leaks
        h = self.hub("connectors:\n  in: { type: webhook }\n  console: { type: console }\n",
                     files={"rules/r.yaml": "rules:\n  - name: echo\n    on: in/*\n    do:\n"
                            "      - call: console.say\n        with: { text: \"{{body.x}}\" }\n"},
                     env={"WH_DEMO_TOKEN": "token-value-123456"})
        h.json_request("POST", "/hooks/in/x", {"x": "token-value-123456"})
        h.out.wait_for("token-value-123456")
        self.assertEqual(h.leaked_secrets(), ["token-value-123456"])
        h.secrets.clear()  # planted on purpose; the real check runs in tearDown


if __name__ == "__main__":
    unittest.main()
