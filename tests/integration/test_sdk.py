"""The SDK as a connector author meets it: `cmake --install` into a fresh
prefix gives the header and wirehub.pc; the template in
contrib/connector-template builds out of tree with `pkg-config --cflags
wirehub`; the installed wirehub loads it and runs its webhook, operation and
respond."""
import os
import shutil
import subprocess
import tempfile
import unittest

from whtest import BUILD, SOURCE, Hub, HubTest

RULES = """
rules:
  - name: greet
    on: hi/greet
    do:
      - call: hi.greet
        with: { name: "{{name}}" }
        as: g
      - respond: { text: "{{g.text}}" }
"""


class SdkTest(HubTest):
    def test_template_builds_against_the_installed_tree(self):
        prefix = tempfile.mkdtemp(prefix="wh-prefix-")
        self.addCleanup(shutil.rmtree, prefix, True)
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(prefix, "include/wirehub/connector.h")))
        libdirs = [d for d in ("lib", "lib64", "lib/x86_64-linux-gnu")
                   if os.path.exists(os.path.join(prefix, d, "pkgconfig", "wirehub.pc"))]
        self.assertTrue(libdirs, "wirehub.pc installed")
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, libdirs[0], "pkgconfig"))
        cflags = subprocess.run(["pkg-config", "--cflags", "wirehub"], env=env,
                                capture_output=True, text=True, check=True).stdout.split()
        connectors = subprocess.run(["pkg-config", "--variable=connectorsdir", "wirehub"],
                                    env=env, capture_output=True, text=True,
                                    check=True).stdout.strip()
        self.assertTrue(os.path.exists(os.path.join(connectors, "webhook.so")))

        work = tempfile.mkdtemp(prefix="wh-tpl-")
        self.addCleanup(shutil.rmtree, work, True)
        os.chmod(work, 0o755)
        src = os.path.join(SOURCE, "contrib", "connector-template", "hello.c")
        out = os.path.join(work, "hello.so")
        r = subprocess.run(["cc", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"] + cflags +
                           [src, "-o", out], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        os.chmod(out, 0o755)
        # the installed binary describes it and runs it
        wirehub = os.path.join(prefix, "bin", "wirehub")
        r = subprocess.run([wirehub, "describe", "--connectors-dir", work, "hello"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("greeting", r.stdout)
        self.assertIn("greet — Greet someone", r.stdout)

        h = Hub("connectors_dir: %s\nconnectors:\n  hi: { type: hello, greeting: Hej }\n" % work,
                files={"rules/hello.yaml": RULES})
        self.hubs.append(h)
        h.env["WIREHUB_BIN"] = wirehub
        import whtest
        old = whtest.BIN
        whtest.BIN = wirehub
        try:
            h.start()
        finally:
            whtest.BIN = old
        status, headers, body = h.request("POST", "/hooks/hi", b'{"name": "Ana"}',
                                          {"Content-Type": "application/json"})
        self.assertEqual((status, body), (200, b"Hej, Ana!"))
        self.assertTrue(headers["content-type"].startswith("text/plain"))
        status, _, body = h.request("POST", "/hooks/hi", b'{"nom": 1}',
                                    {"Content-Type": "application/json"})
        self.assertEqual(status, 400)


if __name__ == "__main__":
    unittest.main()
