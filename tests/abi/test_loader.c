/*
 * The loader against deliberately broken plugins (tests/abi/fixtures/):
 * each refusal must name the file and the reason, and a good plugin loads.
 */
#include "instance.h"
#include "plugin.h"
#include "testlib.h"
#include "doc.h"

#include <sys/stat.h>
#include <unistd.h>

#define FIXTURES WH_BINARY_DIR "/tests/fixtures"

static char *copy_to(const char *dir, const char *name)
{
    char src[1024], dst[1024];
    snprintf(src, sizeof src, "%s/%s.so", FIXTURES, name);
    snprintf(dst, sizeof dst, "%s/%s.so", dir, name);
    size_t len;
    FILE *in = fopen(src, "rb");
    if (!in) {
        return NULL;
    }
    char *buf = malloc(8 << 20);
    len = fread(buf, 1, 8 << 20, in);
    fclose(in);
    FILE *out = fopen(dst, "wb");
    fwrite(buf, 1, len, out);
    fclose(out);
    free(buf);
    chmod(dst, 0755);
    return strdup(dst);
}

static void expect_refusal(const char *dir, const char *type, const char *needle)
{
    char err[1024] = "";
    wh_plugin *p = wh_plugin_load(dir, type, err, sizeof err);
    CHECK(p == NULL);
    if (!strstr(err, needle)) {
        fprintf(stderr, "loading %s: error \"%s\" lacks \"%s\"\n", type, err, needle);
        wh_test_failures++;
    }
    char file[600];
    snprintf(file, sizeof file, "%s.so", type);
    if (strcmp(type, "Bad/Name") != 0 && !strstr(err, file)) {
        fprintf(stderr, "loading %s: error \"%s\" does not name the file\n", type, err);
        wh_test_failures++;
    }
    wh_plugin_destroy(&p);
}

int main(void)
{
    char *dir = wh_test_tmpdir();
    chmod(dir, 0755);
    const char *names[] = {"good", "no_symbol", "wrong_major", "short_struct", "no_init",
                           "newer_host", "wrong_jansson", "misnamed", "init_fails"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = copy_to(dir, names[i]);
        CHECK(p != NULL);
        free(p);
    }

    char err[1024];
    wh_plugin *good = wh_plugin_load(dir, "good", err, sizeof err);
    CHECK(good != NULL);
    if (good) {
        CHECK_STR(good->type, "good");
        CHECK(good->desc.init != NULL);
    }
    wh_plugin_destroy(&good);
    CHECK(good == NULL);

    expect_refusal(dir, "no_symbol", "no symbol wirehub_connector_v1");
    expect_refusal(dir, "wrong_major", "built for connector ABI 2");
    expect_refusal(dir, "short_struct", "smaller than ABI 1.0");
    expect_refusal(dir, "no_init", "no init callback");
    expect_refusal(dir, "newer_host", "needs wirehub ABI 1.999");
    expect_refusal(dir, "wrong_jansson", "jansson");
    expect_refusal(dir, "misnamed", "declares type 'good', expected 'misnamed'");
    expect_refusal(dir, "missing", "no such connector");
    char e2[256];
    CHECK(wh_plugin_load(dir, "Bad/Name", e2, sizeof e2) == NULL);
    CHECK(strstr(e2, "not a connector type name") != NULL);

    /* writable by others: the file, then the directory */
    char path[1024];
    snprintf(path, sizeof path, "%s/good.so", dir);
    chmod(path, 0666);
    expect_refusal(dir, "good", "writable by other users");
    chmod(path, 0755);
    chmod(dir, 0777);
    expect_refusal(dir, "good", "connectors directory is writable by other users");
    chmod(dir, 0755);

    /* instances: options validated with positions, defaults filled, init failure reported */
    const char *yaml = "connectors:\n"
                       "  a:\n"
                       "    type: init_fails\n"
                       "    token: t0k3n\n"
                       "    colour: blue\n"
                       "  b:\n"
                       "    type: init_fails\n"
                       "    retries: many\n"
                       "  c:\n"
                       "    type: nope\n";
    json_t *errors = json_array();
    wh_doc *doc = wh_doc_parse("cfg.yaml", yaml, strlen(yaml), errors);
    CHECK(doc != NULL);
    wh_instances *set = wh_instances_load(json_object_get(wh_doc_root(doc), "connectors"), dir,
                                          doc, "/connectors", errors);
    CHECK(set == NULL);
    char *all = json_dumps(errors, JSON_INDENT(1));
    CHECK(strstr(all, "cfg.yaml:5:5: unknown key 'colour' (known keys: token, retries, type, "
                      "concurrency, queue_max, timeout_ms, max_attempts, insecure_tls)"));
    CHECK(strstr(all, "cfg.yaml:6:3: missing required key 'token'"));
    CHECK(strstr(all, "cfg.yaml:8:5: 'retries' must be an integer"));
    CHECK(strstr(all, "cfg.yaml:10:5: ") && strstr(all, "nope.so: no such connector"));
    CHECK(!strstr(all, "t0k3n"));
    if (wh_test_failures) {
        fprintf(stderr, "%s\n", all);
    }
    free(all);
    json_decref(errors);
    wh_doc_destroy(&doc);

    const char *ok = "connectors:\n  a: { type: init_fails, token: x }\n";
    errors = json_array();
    doc = wh_doc_parse("ok.yaml", ok, strlen(ok), errors);
    set = wh_instances_load(json_object_get(wh_doc_root(doc), "connectors"), dir, doc,
                            "/connectors", errors);
    CHECK(set != NULL);
    if (set) {
        CHECK_INT(json_integer_value(json_object_get(set->v[0]->config, "retries")), 3);
        wh_services svc = {0};
        char why[256];
        CHECK(wh_instances_init(set, &svc, why, sizeof why) == WH_ERR_CONFIG);
        CHECK(strstr(why, "connector 'a' (type init_fails) failed to start") != NULL);
    }
    wh_instances_destroy(&set);
    json_decref(errors);
    wh_doc_destroy(&doc);

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.so", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    free(dir);
    return wh_test_done("abi.loader");
}
