/*
 * test_console.c — the real console.so through the fake host (tests/fakehost.h), reduced
 * to the services the console uses: `say` writes exactly one line per message to
 * standard output (captured by pointing fd 1 at a temp file), escapes line breaks and
 * control characters, refuses bad arguments, reports write failures, and keeps lines
 * whole when several threads say things at once.
 */
#include "fakehost.h"
#include "testlib.h"
#include "util.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

static const wh_connector *g_desc;
static const wh_operation *g_say;
static char *g_out_path;
static int g_saved_stdout = -1;

/* Point fd 1 at a fresh temp file. */
static void capture_begin(void)
{
    fflush(stdout);
    int fd = open(g_out_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    CHECK(fd >= 0);
    g_saved_stdout = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    close(fd);
}

/* Restore fd 1 and return what was written (malloc'd). */
static char *capture_end(void)
{
    fflush(stdout);
    dup2(g_saved_stdout, STDOUT_FILENO);
    close(g_saved_stdout);
    g_saved_stdout = -1;
    size_t len = 0;
    char *text = wh_read_file(g_out_path, 64 << 20, &len);
    CHECK(text != NULL);
    return text;
}

static void say(void *state, wh_call *call, const char *args)
{
    fh_call_clear(call);
    json_t *a = json_loads(args, JSON_ALLOW_NUL, NULL);
    CHECK(a != NULL);
    CHECK_INT(g_say->start(state, call, a), WH_OK);
    json_decref(a);
}

static void test_descriptor(void)
{
    CHECK_STR(g_desc->hdr.name, "console");
    CHECK_INT(g_desc->hdr.abi_major, WH_ABI_MAJOR);
    CHECK(g_desc->options == NULL);
    CHECK(g_desc->webhook == NULL);
    CHECK_STR(g_say->name, "say");
    CHECK(g_desc->operations[1].name == NULL);
    CHECK_STR(g_say->args[0].name, "text");
    CHECK(g_say->args[0].flags & WH_OPT_REQUIRED);
    CHECK_STR(g_say->args[1].name, "channel");
    CHECK(!(g_say->args[1].flags & WH_OPT_REQUIRED));
}

static void test_say(void *state)
{
    wh_call call = {0};

    capture_begin();
    say(state, &call, "{\"text\": \"hello\"}");
    char *out = capture_end();
    CHECK_STR(out, "[desk] hello\n");
    CHECK_INT(call.completes, 1);
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK(json_is_true(json_object_get(call.result, "printed")));
    CHECK_INT(json_object_size(call.result), 1);
    free(out);

    capture_begin();
    say(state, &call,
        "{\"text\": \"Ana is presenting: Q3 roadmap — reply\", \"channel\": \"#team\"}");
    say(state, &call, "{\"text\": \"two\\nlines\\r\\nand \\u001b[31mred\\u0000 tab\\tend\"}");
    say(state, &call, "{\"text\": \"\", \"channel\": \"a\\nb\"}");
    out = capture_end();
    CHECK_STR(out, "[desk #team] Ana is presenting: Q3 roadmap — reply\n"
                   "[desk] two\\nlines\\r\\nand \\x1b[31mred\\x00 tab\tend\n"
                   "[desk a\\nb] \n");
    CHECK_INT(call.outcome, WH_CALL_OK);
    free(out);

    /* Bad arguments: FAIL, nothing printed. */
    struct {
        const char *args, *error;
    } bad[] = {
        {"{}", "say: `text` is required"},
        {"{\"channel\": \"#x\"}", "say: `text` is required"},
        {"{\"text\": 5}", "say: `text` must be a string"},
        {"{\"text\": \"x\", \"channel\": []}", "say: `channel` must be a string"},
    };
    capture_begin();
    for (size_t i = 0; i < WH_ARRAY_LEN(bad); i++) {
        say(state, &call, bad[i].args);
        CHECK_INT(call.completes, 1);
        CHECK_INT(call.outcome, WH_CALL_FAIL);
        CHECK_STR(call.error, bad[i].error);
        CHECK(call.result == NULL);
    }
    out = capture_end();
    CHECK_STR(out, "");
    free(out);

    /* Standard output not writable: FAIL with the reason. */
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int ro = open("/dev/null", O_RDONLY);
    dup2(ro, STDOUT_FILENO);
    close(ro);
    say(state, &call, "{\"text\": \"lost\"}");
    dup2(saved, STDOUT_FILENO);
    close(saved);
    CHECK_INT(call.outcome, WH_CALL_FAIL);
    CHECK(strstr(call.error, "say: writing to standard output failed") != NULL);
    json_decref(call.result);
}

/* Several threads saying long lines at once: every line comes out whole. */
#define THREADS 4
#define LINES 200
#define TEXT_LEN 3000

typedef struct worker {
    void *state;
    int id;
    int failures;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    char *text = malloc(TEXT_LEN + 1);
    memset(text, 'a' + w->id, TEXT_LEN);
    text[TEXT_LEN] = '\0';
    json_t *args = json_pack("{s:s}", "text", text);
    for (int i = 0; i < LINES; i++) {
        wh_call call = {0};
        g_say->start(w->state, &call, args);
        w->failures += call.outcome != WH_CALL_OK;
        json_decref(call.result);
    }
    json_decref(args);
    free(text);
    return NULL;
}

static void test_concurrent(void *state)
{
    worker workers[THREADS];
    pthread_t threads[THREADS];
    capture_begin();
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (worker){state, i, 0};
        pthread_create(&threads[i], NULL, work, &workers[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK_INT(workers[i].failures, 0);
    }
    char *out = capture_end();
    int counts[THREADS] = {0}, broken = 0;
    for (char *line = out, *nl; line && (nl = strchr(line, '\n')); line = nl + 1) {
        size_t len = (size_t)(nl - line);
        char c = len > 7 ? line[7] : 0;
        int id = c - 'a';
        bool whole = len == 7 + TEXT_LEN && strncmp(line, "[desk] ", 7) == 0 && id >= 0 &&
                     id < THREADS && strspn(line + 7, (char[]){c, 0}) == TEXT_LEN;
        if (whole) {
            counts[id]++;
        } else {
            broken++;
        }
    }
    CHECK_INT(broken, 0);
    for (int i = 0; i < THREADS; i++) {
        CHECK_INT(counts[i], LINES);
    }
    free(out);
}

int main(void)
{
    g_desc = fh_load(WH_CONNECTOR_DIR "/console.so");
    CHECK(g_desc != NULL);
    if (!g_desc) {
        return wh_test_done("connector.console");
    }
    g_say = &g_desc->operations[0];
    char *dir = wh_test_tmpdir();
    CHECK(dir != NULL);
    g_out_path = malloc(strlen(dir) + 16);
    sprintf(g_out_path, "%s/stdout.txt", dir);

    /* Only what the console uses, from the fake host; every other service is absent. */
    const wh_host host = {
        .struct_size = sizeof(wh_host),
        .abi_minor = WH_ABI_MINOR,
        .log = fh_host.log,
        .instance_name = fh_host.instance_name,
        .complete = fh_host.complete,
    };
    wh_instance inst = {"desk"};
    json_t *cfg = json_object();
    void *state = NULL;
    CHECK_INT(g_desc->init(&host, &inst, cfg, &state), WH_OK);
    json_decref(cfg);

    test_descriptor();
    test_say(state);
    test_concurrent(state);

    g_desc->destroy(state);
    g_desc->destroy(NULL);
    unlink(g_out_path);
    rmdir(dir);
    free(g_out_path);
    free(dir);
    CHECK_INT(fh_done(), 0);
    return wh_test_done("connector.console");
}
