"""Helpers for integration tests: run the real wirehub binary on loopback.

Everything waits for conditions with bounded timeouts; nothing sleeps for luck.
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

BIN = os.environ.get("WIREHUB_BIN", "wirehub")
BUILD = os.environ.get("WIREHUB_BUILD", ".")
SOURCE = os.environ.get("WIREHUB_SOURCE", ".")
SHARED = os.environ.get("WIREHUB_SHARED", os.path.join(SOURCE, "..", "shared"))
# Under valgrind or sanitizers everything is slower; scale the waits.
SLOW = float(os.environ.get("WIREHUB_TEST_SLOWDOWN", "1"))


def wait_until(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


class Lines:
    """Collects a pipe's lines in a thread."""

    def __init__(self, pipe, echo_prefix=None):
        self.lines = []
        self.cond = threading.Condition()
        self.echo = echo_prefix
        self.thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.thread.start()

    def _run(self, pipe):
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if self.echo and os.environ.get("WIREHUB_TEST_ECHO"):
                print(self.echo, line, flush=True)
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, pattern, timeout=10.0, start=0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "timed out waiting for /%s/; got:\n%s" % (pattern, "\n".join(self.lines[-30:])))
                self.cond.wait(left)

    def text(self):
        with self.cond:
            return "\n".join(self.lines)


class Hub:
    """A wirehub process on a generated config in a private temp directory."""

    def __init__(self, config, files=None, env=None):
        self.dir = tempfile.mkdtemp(prefix="wh-it-")
        os.chmod(self.dir, 0o700)
        self.config_path = os.path.join(self.dir, "wirehub.yaml")
        for name, text in (files or {}).items():
            path = os.path.join(self.dir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        if "listen:" not in config:
            # appended, so that line numbers in tests match the text they wrote
            config = config + ("" if config.endswith("\n") or not config else "\n") + \
                "listen: 127.0.0.1:0\n"
        with open(self.config_path, "w") as f:
            f.write(config)
        self.env = dict(os.environ)
        self.env.update(env or {})
        # Secrets handed to the hub: no log line, answer or tail output may show them
        # (checked for every test in HubTest.tearDown).
        self.secrets = {v for k, v in (env or {}).items()
                        if re.search(r"SECRET|TOKEN|PASSWORD|KEY", k, re.I) and len(v) >= 8}
        self.responses = []
        self.logs = []
        self.proc = None
        self.port = None
        self.tails = []

    def cmd(self, *args, timeout=30, input=None):
        """Run another wirehub command against this config; returns CompletedProcess."""
        r = subprocess.run([BIN] + list(args), cwd=self.dir, env=self.env, input=input,
                           capture_output=True, timeout=timeout * SLOW)
        self.logs.append(r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace"))
        return r

    def leaked_secrets(self):
        """Secrets that appear in anything this hub said: logs, answers, tail output."""
        said = list(self.logs) + [b.decode("utf-8", "replace") for b in self.responses]
        if self.proc is not None:
            said += [self.out.text(), self.err.text()]
        said += [t.out.text() + t.err.text() for t in self.tails]
        return sorted(s for s in self.secrets if any(s in x for x in said))

    def start(self):
        # WIREHUB_VALGRIND=1 runs the hub under memcheck: any error or definitely
        # lost block makes its exit status 99, which tearDown reports
        pre = []
        if os.environ.get("WIREHUB_VALGRIND"):
            pre = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                   "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite"]
        self.proc = subprocess.Popen(pre + [BIN, "run", "-c", self.config_path], cwd=self.dir,
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = Lines(self.proc.stdout, "[stdout]")
        self.err = Lines(self.proc.stderr, "[stderr]")
        m = self.err.wait_for(r"listening addr=[^ ]*:(\d+)", timeout=30)
        self.port = int(m.group(1))
        self.err.wait_for(r"hub: ready", timeout=30)
        return self

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict(headers or {})
                headers.setdefault("Content-Type", "application/json")
            elif isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            self.responses.append(data)
            return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data
        finally:
            conn.close()

    def json_request(self, method, path, body=None, headers=None, timeout=10):
        status, hdrs, data = self.request(method, path, body, headers, timeout)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return status, parsed

    def healthy(self):
        status, body = self.json_request("GET", "/healthz")
        return status == 200 and body.get("status") == "ok"

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout * SLOW)
        self._close()
        return rc

    def _close(self):
        self.out.thread.join(5)
        self.err.thread.join(5)
        self.logs.append(self.out.text())
        self.logs.append(self.err.text())
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.proc = None

    def kill(self):
        if self.proc:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            self._close()

    def cleanup(self):
        for t in self.tails:
            if t.proc.returncode is None:
                t.stop()
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Tail:
    """`wirehub tail` on a hub's config, collecting JSON lines."""

    def __init__(self, hub, prefix=None):
        args = [BIN, "tail", "-c", hub.config_path] + ([prefix] if prefix else [])
        self.proc = subprocess.Popen(args, cwd=hub.dir, env=hub.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = Lines(self.proc.stdout, "[tail]")
        self.err = Lines(self.proc.stderr, "[tail-err]")
        hub.tails.append(self)
        self.err.wait_for(r"wirehub tail: joined", timeout=20)

    def messages(self):
        return [json.loads(l) for l in self.out.lines if l.startswith("{")]

    def wait_message(self, pred, timeout=10):
        return wait_until(lambda: next((m for m in self.messages() if pred(m)), None), timeout,
                          "a tail message")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(10 * SLOW)
        self.out.thread.join(5)
        self.err.thread.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


class HubTest(unittest.TestCase):
    """Base class: self.hubs are cleaned up after each test."""

    def setUp(self):
        self.hubs = []

    def tearDown(self):
        # Every hub must stop cleanly on SIGTERM: exit status 0 and no sanitizer
        # report (under ASan a leak or a memory error turns the exit status non-zero).
        problems = []
        for h in self.hubs:
            for t in h.tails:
                if t.proc.returncode is None:
                    t.stop()
            if h.proc is not None:
                rc = h.stop()
                text = h.err.text()
                if rc != 0 or "Sanitizer" in text or "runtime error:" in text:
                    problems.append("hub exit status %s; log tail:\n%s" % (rc, text[-4000:]))
            leaked = h.leaked_secrets()
            if leaked:
                problems.append("secret value(s) appeared in logs or answers: %d" % len(leaked))
            h.cleanup()
        if problems:
            self.fail("\n".join(problems))

    def hub(self, config, files=None, env=None, start=True):
        h = Hub(config, files, env)
        self.hubs.append(h)
        return h.start() if start else h


class FakeAPI:
    """A recording HTTP server on 127.0.0.1 (a stand-in third-party API).

    `script` maps a path to a list of (status, headers, body) answers used in
    order (the last one repeats); unknown paths answer 200 {"ok": true}.
    Every request is recorded as a dict: method, path, headers, body, json."""

    def __init__(self, script=None):
        import http.server
        import socketserver
        self.script = dict(script or {})
        self.requests = []
        self.cond = threading.Condition()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = None
                rec = {"method": self.command, "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body, "json": parsed, "time": time.monotonic()}
                with api.cond:
                    answers = api.script.get(self.path.split("?")[0])
                    if answers:
                        ans = answers[0] if len(answers) == 1 else answers.pop(0)
                    else:
                        ans = (200, {}, {"ok": True})
                    api.requests.append(rec)
                    api.cond.notify_all()
                status, headers, out = ans
                if callable(out):
                    out = out(rec)
                if not isinstance(out, (bytes, str)):
                    out = json.dumps(out)
                    headers = dict(headers)
                    headers.setdefault("Content-Type", "application/json")
                if isinstance(out, str):
                    out = out.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_requests(self, n, path=None, timeout=10):
        def have():
            with self.cond:
                got = [r for r in self.requests if path is None or r["path"].startswith(path)]
            return got if len(got) >= n else None
        return wait_until(have, timeout, "%d request(s) at the fake API" % n)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
