"""Rule reload follows the rules directory's path, not the directory found at
start: a directory replaced by mv + mkdir, a `rules` symlink swapped by an
atomic rename, a swapped parent symlink, a directory created after start, and
one deleted (the running rules stay until it is back). Every step is checked by a waiting caller
getting the version the rule file holds at that moment."""
import os
import shutil
import signal
import unittest

from whtest import HubTest, wait_until

CONFIG = """
connectors:
  ask:
    type: webhook
    wait_ms: 2000
    fallback: { text: "no rule" }
"""


def rule(version):
    return ("rules:\n  - name: version\n    on: ask/*\n"
            "    respond: { text: \"%s\" }\n" % version)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class ReloadFollowsPathTest(HubTest):
    def answer(self, h):
        status, body = h.json_request("POST", "/hooks/ask", {"q": "version?"})
        self.assertEqual(status, 200, body)
        return body.get("text")

    def wait_answer(self, h, version, timeout=15):
        wait_until(lambda: self.answer(h) == version, timeout, "the rule answering %r" % version)

    def test_directory_replaced_by_mv_and_mkdir(self):
        h = self.hub(CONFIG, files={"rules/a.yaml": rule("v1")})
        self.assertEqual(self.answer(h), "v1")
        rules = os.path.join(h.dir, "rules")
        mark = len(h.err.lines)
        os.rename(rules, rules + ".old")
        os.mkdir(rules, 0o755)
        write(os.path.join(rules, "a.yaml"), rule("v2"))
        self.wait_answer(h, "v2")
        # one batch of events or several: seen as replaced, or as gone and back
        h.err.wait_for(r"rules: rules directory \S+/rules (was replaced|is back)", start=mark)
        # the watch is on the new directory now: later edits there are seen
        write(os.path.join(rules, "a.yaml"), rule("v3"))
        self.wait_answer(h, "v3")
        mark = len(h.err.lines)
        write(os.path.join(rules, "b.yaml"), "rules: []\n")
        h.err.wait_for(r"rules: loaded rules=1 files=2", start=mark)

    def test_symlink_swapped_by_atomic_rename(self):
        h = self.hub(CONFIG, start=False)
        for v in ("v1", "v2"):
            write(os.path.join(h.dir, "releases", v, "rules", "a.yaml"), rule(v))
        link = os.path.join(h.dir, "rules")
        os.symlink(os.path.join("releases", "v1", "rules"), link)
        h.start()
        self.assertEqual(self.answer(h), "v1")
        # a deploy: a new link beside the old one, renamed over it (rename(2) is atomic)
        mark = len(h.err.lines)
        os.symlink(os.path.join("releases", "v2", "rules"), link + ".new")
        os.rename(link + ".new", link)
        self.wait_answer(h, "v2")
        h.err.wait_for(r"rules: rules directory \S+/rules was replaced: watching the new one",
                       start=mark)
        # edits in the new target are seen
        write(os.path.join(h.dir, "releases", "v2", "rules", "a.yaml"), rule("v2.1"))
        self.wait_answer(h, "v2.1")
        mark = len(h.err.lines)
        write(os.path.join(h.dir, "releases", "v2", "rules", "b.yaml"), "rules: []\n")
        h.err.wait_for(r"rules: loaded rules=1 files=2", start=mark)

    def test_parent_symlink_swapped(self):
        # the release layout: `current -> releases/N`, rules under it; no event in
        # a watched directory says that `current` moved: the periodic re-check sees it
        h = self.hub(CONFIG + "rules: current/rules\n", start=False)
        for v in ("v1", "v2"):
            write(os.path.join(h.dir, "releases", v, "rules", "a.yaml"), rule(v))
        current = os.path.join(h.dir, "current")
        os.symlink(os.path.join("releases", "v1"), current)
        h.start()
        self.assertEqual(self.answer(h), "v1")
        os.symlink(os.path.join("releases", "v2"), current + ".new")
        os.rename(current + ".new", current)
        self.wait_answer(h, "v2")
        write(os.path.join(h.dir, "releases", "v2", "rules", "a.yaml"), rule("v2.1"))
        self.wait_answer(h, "v2.1")

    def test_directory_missing_at_start(self):
        h = self.hub(CONFIG)
        h.err.wait_for(r"rules: no rules directory at \S+/rules yet: its rules load when it "
                       r"appears")
        self.assertEqual(self.answer(h), "no rule")
        rules = os.path.join(h.dir, "rules")
        os.mkdir(rules, 0o755)
        write(os.path.join(rules, "a.yaml"), rule("v1"))
        self.wait_answer(h, "v1")
        h.err.wait_for(r"rules: rules directory \S+/rules appeared: watching it")
        write(os.path.join(rules, "a.yaml"), rule("v2"))
        self.wait_answer(h, "v2")

    def test_directory_deleted_keeps_rules_until_back(self):
        # debug level: the watcher says when it skips a reload because the directory is gone
        h = self.hub(CONFIG, files={"rules/a.yaml": rule("v1")}, env={"WIREHUB_LOG": "debug"})
        self.assertEqual(self.answer(h), "v1")
        rules = os.path.join(h.dir, "rules")
        mark = len(h.err.lines)
        shutil.rmtree(rules)  # the file first (a change), then the directory
        h.err.wait_for(r"rules: rules directory \S+/rules is gone \(No such file or directory\): "
                       r"keeping the running rules until it is back", start=mark)
        h.err.wait_for(r"rules: rules directory \S+/rules is missing: not reloading", start=mark)
        self.assertEqual(self.answer(h), "v1")
        # a SIGHUP meanwhile keeps them too
        h.proc.send_signal(signal.SIGHUP)
        h.err.wait_for(r"rules: no rules directory at \S+/rules: keeping the rules that were "
                       r"running", start=mark)
        self.assertEqual(self.answer(h), "v1")
        self.assertNotIn("running with no rules", "\n".join(h.err.lines[mark:]))
        # and it is watched again once it is back
        write(os.path.join(rules, "a.yaml"), rule("v2"))
        self.wait_answer(h, "v2")
        h.err.wait_for(r"rules: rules directory \S+/rules is back: watching it again", start=mark)


if __name__ == "__main__":
    unittest.main()
