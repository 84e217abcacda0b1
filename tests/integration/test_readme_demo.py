"""The README's demo, run from the README's own text: its curl command against
the bundled demo config must make the hub print the console line the README
promises. If the README and the demo drift apart, this fails."""
import os
import re
import shlex
import subprocess
import unittest

from whtest import SOURCE, HubTest


def readme_section(text, heading):
    start = text.index(heading)
    nxt = text.find("\n## ", start + 1)
    return text[start:nxt if nxt > 0 else len(text)]


class ReadmeDemoTest(HubTest):
    def test_demo_curl_prints_the_promised_line(self):
        with open(os.path.join(SOURCE, "README.md")) as f:
            section = readme_section(f.read(), "## Try it")
        blocks = re.findall(r"```(?:sh)?\n(.*?)```", section, re.S)
        curl = next(b for b in blocks if b.lstrip().startswith("curl"))
        promised = next(b for b in blocks if b.lstrip().startswith("[console")).strip()

        with open(os.path.join(SOURCE, "contrib", "demo", "wirehub.yaml")) as f:
            config = f.read()
        config = re.sub(r"(?m)^listen:.*$", "listen: 127.0.0.1:0", config)
        config = re.sub(r"(?m)^rules:.*$",
                        "rules: " + os.path.join(SOURCE, "contrib", "demo", "rules"), config)
        h = self.hub(config)
        h.err.wait_for(r"accepting unsigned requests")

        cmd = curl.replace("\\\n", " ").replace("127.0.0.1:8080", "127.0.0.1:%d" % h.port)
        r = subprocess.run(shlex.split(cmd), capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'"ok":true', r.stdout)
        line = h.out.wait_for(re.escape(promised))
        self.assertEqual(line.string, promised)


if __name__ == "__main__":
    unittest.main()
