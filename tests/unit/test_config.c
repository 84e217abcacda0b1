/* Config loading: defaults, relative paths, secret references, every error with its position. */
#include "config.h"
#include "testlib.h"

#include <stdlib.h>
#include <unistd.h>

static wh_config *load(const char *dir, const char *text, json_t *errors)
{
    char *path = wh_test_write(dir, "wirehub.yaml", text);
    wh_config *cfg = wh_config_load(path, errors);
    free(path);
    return cfg;
}

static void expect_error(json_t *errors, const char *needle)
{
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        if (strstr(json_string_value(e), needle)) {
            return;
        }
    }
    char *all = json_dumps(errors, JSON_INDENT(1));
    fprintf(stderr, "no error contains \"%s\" in %s\n", needle, all);
    free(all);
    wh_test_failures++;
}

int main(void)
{
    char *dir = wh_test_tmpdir();
    char cfgdir_connectors[1024];
    snprintf(cfgdir_connectors, sizeof cfgdir_connectors, "connectors_dir: %s\n",
             WH_CONNECTOR_DIR);

    /* defaults and relative paths */
    json_t *errors = json_array();
    wh_config *cfg = load(dir, "state: data/x.db\nrules: r\n", errors);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_STR(cfg->listen_host, "127.0.0.1");
        CHECK_INT(cfg->listen_port, 8080);
        char want[1100];
        snprintf(want, sizeof want, "%s/data/x.db", dir);
        CHECK_STR(cfg->state_path, want);
        snprintf(want, sizeof want, "%s/r", dir);
        CHECK_STR(cfg->rules_dir, want);
        CHECK_INT(cfg->gateway.max_body, 1048576);
        CHECK_INT(cfg->gateway.timeout_s, 10);
        CHECK_INT(cfg->gateway.threads, 2);
        CHECK_INT(json_array_size(cfg->bus_bind), 1);
        CHECK(strstr(json_string_value(json_array_get(cfg->bus_bind, 0)), "/wirehub.bus") != NULL);
        CHECK_INT(cfg->instances->n, 0);
    }
    wh_config_destroy(&cfg);
    CHECK(cfg == NULL);
    json_decref(errors);

    /* listen forms */
    errors = json_array();
    cfg = load(dir, "listen: \"[::1]:0\"\nbus: { bind: [\"tcp://127.0.0.1:7600\"] }\n", errors);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_STR(cfg->listen_host, "::1");
        CHECK_INT(cfg->listen_port, 0);
        CHECK_STR(json_string_value(json_array_get(cfg->bus_bind, 0)), "tcp://127.0.0.1:7600");
    }
    wh_config_destroy(&cfg);
    json_decref(errors);

    /* secrets: env, file (relative, one newline dropped), embedded, escaped */
    setenv("WH_TEST_TOKEN", "tok-123", 1);
    char *sec = wh_test_write(dir, "secret.txt", "file-secret\n");
    char text[4096];
    snprintf(text, sizeof text,
             "%sconnectors:\n"
             "  a:\n    type: webhook\n    secret: \"${env:WH_TEST_TOKEN}\"\n"
             "  b:\n    type: webhook\n    secret: \"${file:secret.txt}\"\n"
             "  c:\n    type: webhook\n    secret: \"x-${env:WH_TEST_TOKEN}-$${literal}\"\n",
             cfgdir_connectors);
    errors = json_array();
    cfg = load(dir, text, errors);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_STR(json_string_value(json_object_get(cfg->instances->v[0]->config, "secret")),
                  "tok-123");
        CHECK_STR(json_string_value(json_object_get(cfg->instances->v[1]->config, "secret")),
                  "file-secret");
        CHECK_STR(json_string_value(json_object_get(cfg->instances->v[2]->config, "secret")),
                  "x-tok-123-${literal}");
        /* defaults from the plugin's options table */
        CHECK_STR(json_string_value(
                      json_object_get(cfg->instances->v[0]->config, "signature_header")),
                  "X-Hub-Signature-256");
    }
    wh_config_destroy(&cfg);
    json_decref(errors);

    /* every problem, with positions, and never a secret value */
    unsetenv("WH_TEST_MISSING");
    snprintf(text, sizeof text,
             "%slisten: nowhere\n"                      /* 2 */
             "gateway:\n"                               /* 3 */
             "  max_body: 0\n"                          /* 4 */
             "  timeout: forever\n"                     /* 5 */
             "  colour: red\n"                          /* 6 */
             "bus: { bind: \"udp://x\" }\n"             /* 7 */
             "log_level: loud\n"                        /* 8 */
             "connectors:\n"                            /* 9 */
             "  a:\n"                                   /* 10 */
             "    type: webhook\n"                      /* 11 */
             "    secret: \"${env:WH_TEST_MISSING}\"\n" /* 12 */
             "  b:\n"                                   /* 13 */
             "    type: webhook\n"                      /* 14 */
             "    secret: \"${vault:x}\"\n"             /* 15 */
             "  c:\n"                                   /* 16 */
             "    secret: tok-123\n"                    /* 17 */
             "  \"bad name\": { type: console }\n",     /* 18 */
             cfgdir_connectors);
    errors = json_array();
    cfg = load(dir, text, errors);
    CHECK(cfg == NULL);
    expect_error(errors, "wirehub.yaml:2:9: 'listen' must be host:port");
    expect_error(errors, "wirehub.yaml:4:13: 'max_body' must be between 1 and");
    expect_error(errors, "wirehub.yaml:5:12: 'timeout' must be a duration");
    expect_error(errors, "wirehub.yaml:6:3: unknown key 'colour'");
    expect_error(errors, "wirehub.yaml:7:14: endpoint must start with ipc:// or tcp://");
    expect_error(errors, "wirehub.yaml:8:12: 'log_level' must be");
    expect_error(errors, "wirehub.yaml:12:13: `connectors.a.secret`: environment variable "
                         "WH_TEST_MISSING is not set");
    expect_error(errors, "wirehub.yaml:15:13: unknown reference '${vault:x}'");
    expect_error(errors, "wirehub.yaml:16:3: connector 'c' needs 'type'");
    expect_error(errors, "wirehub.yaml:18:3: instance name 'bad name'");
    char *all = json_dumps(errors, 0);
    CHECK(strstr(all, "tok-123") == NULL);
    free(all);
    json_decref(errors);

    /* a file that cannot be read */
    errors = json_array();
    cfg = wh_config_load("/nonexistent/wirehub.yaml", errors);
    CHECK(cfg == NULL);
    expect_error(errors, "/nonexistent/wirehub.yaml: cannot read");
    json_decref(errors);

    unlink(sec);
    free(sec);
    char path[1100];
    snprintf(path, sizeof path, "%s/wirehub.yaml", dir);
    unlink(path);
    rmdir(dir);
    free(dir);
    return wh_test_done("unit.config");
}
