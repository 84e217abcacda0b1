/* Log lines: one record per line, and field values quoted when they would split. */
#include "log.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the lines wh_log wrote to stderr while fn ran */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/wh-test-log.XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char text[8192];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return text;
}

static void log_spaced(void)
{
    wh_info("hub", "starting config=%s dir=%s", wh_log_q("/srv/my hub/wirehub.yaml"),
            wh_log_q("/srv/rules"));
    wh_warn("await", "key=%s\nnext", wh_log_q("a\"b"));
}

int main(void)
{
    CHECK_STR(wh_log_q("plain/path.yaml"), "plain/path.yaml");
    CHECK_STR(wh_log_q("sp ace"), "\"sp ace\"");
    CHECK_STR(wh_log_q(""), "\"\"");
    CHECK_STR(wh_log_q(NULL), "\"\"");
    CHECK_STR(wh_log_q("a=b"), "\"a=b\"");
    CHECK_STR(wh_log_q("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
    /* several in one call's arguments: each keeps its own slot */
    const char *a = wh_log_q("one two"), *b = wh_log_q("three four");
    CHECK_STR(a, "\"one two\"");
    CHECK_STR(b, "\"three four\"");
    /* a long value is cut, still quoted and terminated */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[5] = ' ';
    const char *q = wh_log_q(big);
    CHECK(strlen(q) < 512 && q[0] == '"' && q[strlen(q) - 1] == '"');

    const char *text = capture(log_spaced);
    CHECK(strstr(text, " info hub: starting config=\"/srv/my hub/wirehub.yaml\" dir=/srv/rules\n"));
    /* a newline in the message stays inside its record */
    CHECK(strstr(text, " warn await: key=\"a\\\"b\"\\nnext\n"));
    int lines = 0;
    for (const char *p = text; *p; p++) {
        lines += *p == '\n';
    }
    CHECK_INT(lines, 2);
    return wh_test_done("unit.log");
}
