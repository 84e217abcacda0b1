/*
 * fuzz_config.c — the config loader (hub/config.c, instance.c, the options
 * checks) on arbitrary file contents.
 *
 * Owns a private temp directory, made once: the input is rewritten to
 * <dir>/wirehub.yaml per run; <dir>/connectors holds links to the build's
 * webhook.so and console.so (so `connectors_dir: connectors` exercises the
 * plugin options checks; any other type fails fast), <dir>/secret.txt serves
 * ${file:secret.txt} and $WH_FUZZ_SECRET serves ${env:WH_FUZZ_SECRET}.
 * Oracle: a refused config says why, with the file's name.
 * Must not: bind, connect or init a plugin (wh_config_load does neither), or
 * write outside its directory.
 */
#include "config.h"
#include "fuzz.h"
#include "log.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[4096];
static char g_path[4200];

static void cleanup(void)
{
    static const char *const files[] = {
        "wirehub.yaml",          "secret.txt", "connectors/webhook.so",
        "connectors/console.so", "connectors", NULL};
    char p[4300];
    for (size_t i = 0; files[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, files[i]);
        remove(p);
    }
    rmdir(g_dir);
}

static void link_plugin(const char *type)
{
    char from[4200], to[4300];
    snprintf(from, sizeof from, "%s/%s.so", WH_CONNECTOR_DIR, type);
    snprintf(to, sizeof to, "%s/connectors/%s.so", g_dir, type);
    if (access(from, R_OK) == 0 && symlink(from, to) != 0) {
        perror("fuzz_config: symlink");
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/wh-fuzz-config-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("fuzz_config: mkdtemp");
        exit(1);
    }
    atexit(cleanup);
    char p[4300];
    snprintf(p, sizeof p, "%s/connectors", g_dir);
    if (mkdir(p, 0700) != 0) {
        perror("fuzz_config: mkdir");
        exit(1);
    }
    link_plugin("webhook");
    link_plugin("console");
    snprintf(p, sizeof p, "%s/secret.txt", g_dir);
    FILE *f = fopen(p, "w");
    if (!f || fputs("xoxb-not-a-real-token-0123456789\n", f) < 0 || fclose(f) != 0) {
        perror("fuzz_config: secret.txt");
        exit(1);
    }
    setenv("WH_FUZZ_SECRET", "env-secret-0123456789", 1);
    snprintf(g_path, sizeof g_path, "%s/wirehub.yaml", g_dir);
    wh_log_set_level(WH_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(g_path, "wb");
    FUZZ_CHECK(f != NULL, "cannot write %s", g_path);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size && fclose(f) == 0, "cannot write %s", g_path);

    json_t *errors = json_array();
    wh_config *cfg = wh_config_load(g_path, errors);
    fuzz_show_errors(cfg ? "config loaded" : "config refused", errors);
    if (!cfg) {
        FUZZ_CHECK(json_array_size(errors) > 0, "the config was refused without a reason");
        size_t i;
        json_t *e;
        json_array_foreach(errors, i, e)
        {
            const char *s = json_string_value(e);
            FUZZ_CHECK(s && strstr(s, "wirehub.yaml") != NULL, "error without the file: %s",
                       s ? s : "(not a string)");
        }
    } else {
        FUZZ_CHECK(json_array_size(errors) == 0, "a loaded config came with errors");
        FUZZ_CHECK(cfg->state_path && cfg->rules_dir && cfg->connectors_dir && cfg->instances,
                   "a loaded config misses a part");
        FUZZ_CHECK(cfg->listen_port >= 0 && cfg->listen_port <= 65535, "port %d", cfg->listen_port);
        FUZZ_CHECK(json_is_array(cfg->bus_bind), "bus_bind is not a list");
        FUZZ_CHECK(cfg->gateway.max_body >= 1 && cfg->gateway.threads >= 1, "gateway limits unset");
    }
    wh_config_destroy(&cfg);
    json_decref(errors);
    return 0;
}
