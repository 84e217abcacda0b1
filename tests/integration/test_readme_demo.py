"""The README's demo, run from the README's own text: its curl command (a shell
here-document playing Alexa) against the bundled demo config must get the
Alexa answer the README shows and make the hub print the console line it
promises. If the README and the demo drift apart, this fails."""
import json
import os
import re
import subprocess
import unittest

from whtest import SOURCE, HubTest


def readme_section(text, heading):
    start = text.index(heading)
    nxt = text.find("\n## ", start + 1)
    return text[start:nxt if nxt > 0 else len(text)]


class ReadmeDemoTest(HubTest):
    def test_demo_curl_gets_the_promised_answer_and_line(self):
        with open(os.path.join(SOURCE, "README.md")) as f:
            section = readme_section(f.read(), "## Try it")
        blocks = re.findall(r"```(sh|json|)\n(.*?)```", section, re.S)
        curl = next(b for lang, b in blocks if lang == "sh" and b.lstrip().startswith("curl"))
        answer = json.loads(next(b for lang, b in blocks if lang == "json"))
        promised = next(b for lang, b in blocks if b.lstrip().startswith("[console")).strip()

        with open(os.path.join(SOURCE, "contrib", "demo", "wirehub.yaml")) as f:
            config = f.read()
        config = re.sub(r"(?m)^listen:.*$", "listen: 127.0.0.1:0", config)
        config = re.sub(r"(?m)^rules:.*$",
                        "rules: " + os.path.join(SOURCE, "contrib", "demo", "rules"), config)
        h = self.hub(config)
        h.err.wait_for(r"warn alexa: .*verif")
        h.err.wait_for(r"accepting unsigned requests")

        cmd = curl.replace("127.0.0.1:8080", "127.0.0.1:%d" % h.port)
        r = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), answer)
        line = h.out.wait_for(re.escape(promised))
        self.assertEqual(line.string, promised)


if __name__ == "__main__":
    unittest.main()
