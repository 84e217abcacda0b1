/*
 * cli.c — `wirehub run`, `tail`, `check` and `describe`: argument parsing and
 * printing only; the work is done by the parts they start.
 */
#include "cli.h"
#include "bus.h"
#include "config.h"
#include "envelope.h"
#include "hub.h"
#include "log.h"
#include "plugin.h"
#include "ruleset.h"
#include "util.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int wh_cli_common(int argc, char **argv, const char **config, char **rest, int *nrest,
                  const char *usage)
{
    *nrest = 0;
    if (argc > WH_CLI_MAX_ARGS) { /* `rest` holds at most that many */
        fprintf(stderr, "wirehub %s: too many arguments\n%s", argv[0], usage);
        return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "wirehub %s: %s needs a file\n%s", argv[0], a, usage);
                return -1;
            }
            *config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            *config = a + 9;
        } else if (a[0] == '-' && a[1] && strcmp(a, "-") != 0) {
            /* left for the subcommand */
            rest[(*nrest)++] = argv[i];
        } else {
            rest[(*nrest)++] = argv[i];
        }
    }
    return 0;
}

wh_rules *wh_cli_load_rules(const wh_config *cfg)
{
    json_t *errors = json_array();
    wh_rules *rules = wh_ruleset_load(cfg, errors);
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        fprintf(stderr, "%s\n", json_string_value(e));
    }
    json_decref(errors);
    return rules;
}

static wh_config *cli_load(const char *path, int need_secrets)
{
    json_t *errors = json_array();
    wh_config *cfg =
        need_secrets ? wh_config_load(path, errors) : wh_config_load_unresolved(path, errors);
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        fprintf(stderr, "%s\n", json_string_value(e));
    }
    json_decref(errors);
    return cfg;
}

wh_config *wh_cli_load_config(const char *path)
{
    return cli_load(path, 1);
}

wh_config *wh_cli_load_config_unresolved(const char *path)
{
    return cli_load(path, 0);
}

static const char run_usage[] =
    "usage: wirehub run [-c FILE]\n"
    "  Start the hub in the foreground on FILE (default $WIREHUB_CONFIG or ./wirehub.yaml).\n"
    "  SIGINT/SIGTERM stop it cleanly. Logs go to standard error.\n"
    "exit: 0 stopped cleanly, 1 could not start, 2 bad config or usage\n";

int wh_cmd_run(int argc, char **argv)
{
    const char *config = wh_config_default_path();
    char *rest[WH_CLI_MAX_ARGS];
    int nrest = 0;
    int rc = wh_cli_common(argc, argv, &config, rest, &nrest, run_usage);
    if (rc) {
        return rc > 0 ? WH_EXIT_OK : WH_EXIT_USAGE;
    }
    if (nrest) {
        fprintf(stderr, "wirehub run: unexpected argument '%s'\n%s", rest[0], run_usage);
        return WH_EXIT_USAGE;
    }
    /* Signals are taken by sigwait() below only: block them before any thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    wh_config *cfg = wh_cli_load_config(config);
    if (!cfg) {
        return WH_EXIT_USAGE;
    }
    if (!getenv("WIREHUB_LOG")) {
        wh_log_set_level(cfg->log_level);
    }
    /* every connection is a descriptor: allow as many as the system lets us */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < cfg->gateway.max_connections + 256) {
        wh_warn("hub", "gateway.max_connections=%u is above what the file limit allows (%llu)",
                cfg->gateway.max_connections, (unsigned long long)rl.rlim_cur);
    }
    wh_info("hub", "starting version=%s config=%s connectors_dir=%s", WH_VERSION,
            wh_log_q(cfg->path), wh_log_q(cfg->connectors_dir));
    wh_rules *rules = wh_cli_load_rules(cfg);
    if (!rules) {
        wh_config_destroy(&cfg);
        return WH_EXIT_USAGE;
    }
    wh_info("rules", "loaded rules=%zu files=%zu dir=%s", wh_rules_count(rules),
            wh_rules_files(rules), wh_log_q(cfg->rules_dir));
    wh_hub *hub = wh_hub_start(cfg, rules);
    if (!hub) {
        wh_rules_unref(&rules);
        wh_config_destroy(&cfg);
        return WH_EXIT_FAIL;
    }
    wh_info("hub", "ready");
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            wh_info("hub", "SIGHUP: reloading rules");
            wh_hub_reload(hub);
            continue;
        }
        wh_info("hub", "stopping signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    wh_hub_stop(&hub);
    wh_info("hub", "stopped");
    return WH_EXIT_OK;
}

static const char tail_usage[] =
    "usage: wirehub tail [-c FILE] [PREFIX]\n"
    "  Join the running hub's bus (its first bus.bind endpoint) and print every\n"
    "  message whose topic starts with PREFIX (default: all but sys/) as one JSON\n"
    "  line: the envelope with its \"topic\" added. Ctrl-C stops.\n"
    "exit: 0 stopped, 1 cannot join the bus, 2 bad config or usage\n";

static volatile sig_atomic_t tail_stop;
static void on_tail_signal(int sig)
{
    (void)sig;
    tail_stop = 1;
}

int wh_cmd_tail(int argc, char **argv)
{
    const char *config = wh_config_default_path();
    char *rest[WH_CLI_MAX_ARGS];
    int nrest = 0;
    int rc = wh_cli_common(argc, argv, &config, rest, &nrest, tail_usage);
    if (rc) {
        return rc > 0 ? WH_EXIT_OK : WH_EXIT_USAGE;
    }
    if (nrest > 1 || (nrest == 1 && rest[0][0] == '-')) {
        fprintf(stderr, "wirehub tail: unexpected argument '%s'\n%s", rest[nrest - 1], tail_usage);
        return WH_EXIT_USAGE;
    }
    const char *prefix = nrest ? rest[0] : "";
    wh_config *cfg = wh_cli_load_config_unresolved(config);
    if (!cfg) {
        return WH_EXIT_USAGE;
    }
    if (json_array_size(cfg->bus_bind) == 0) {
        fprintf(stderr, "wirehub tail: %s has no bus.bind endpoint to join\n", cfg->path);
        wh_config_destroy(&cfg);
        return WH_EXIT_USAGE;
    }
    wh_bus_ends ends;
    char err[300];
    const char *ep = json_string_value(json_array_get(cfg->bus_bind, 0));
    if (wh_bus_ends_to_reach(ep, &ends, err, sizeof err) != 0) {
        fprintf(stderr, "wirehub tail: %s\n", err);
        wh_config_destroy(&cfg);
        return WH_EXIT_USAGE;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_tail_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    void *zctx = zmq_ctx_new();
    const char *prefixes[] = {prefix, NULL};
    wh_sub *sub = wh_sub_new(zctx, &ends, prefixes, 5000);
    if (!sub) {
        fprintf(stderr, "wirehub tail: cannot join the bus at %s (is the hub running?)\n", ep);
        zmq_ctx_term(zctx);
        wh_config_destroy(&cfg);
        return WH_EXIT_FAIL;
    }
    fprintf(stderr, "wirehub tail: joined %s prefix=\"%s\"\n", ep, prefix);
    fflush(stderr);
    int status = WH_EXIT_OK;
    while (!tail_stop) {
        char *topic, *raw;
        size_t len;
        int got = wh_sub_recv_raw(sub, 200, &topic, &raw, &len);
        if (got < 0) {
            status = WH_EXIT_FAIL;
            break;
        }
        if (got == 0) {
            continue;
        }
        if (!(prefix[0] == '\0' && strncmp(topic, "sys/", 4) == 0)) {
            json_t *msg = json_loadb(raw, len, 0, NULL);
            json_t *line = json_pack("{s:s}", "topic", topic);
            if (json_is_object(msg)) {
                json_object_update(line, msg);
            } else {
                json_object_set(line, "message", msg ? msg : json_null());
            }
            char *text = json_dumps(line, JSON_COMPACT);
            if (text && (printf("%s\n", text) < 0 || fflush(stdout) != 0)) {
                tail_stop = 1; /* the reader is gone (`tail | head -1`): done, not an error */
            }
            free(text);
            json_decref(line);
            json_decref(msg);
        }
        free(topic);
        free(raw);
    }
    wh_sub_destroy(&sub);
    zmq_ctx_term(zctx);
    wh_config_destroy(&cfg);
    return status;
}

static const char check_usage[] =
    "usage: wirehub check [-c FILE]\n"
    "  Validate the config, every connector instance's keys and every rule file\n"
    "  without starting.\n"
    "  Every problem is printed as file:line:col: what is wrong.\n"
    "exit: 0 valid, 2 problems found\n";

int wh_cmd_check(int argc, char **argv)
{
    const char *config = wh_config_default_path();
    char *rest[WH_CLI_MAX_ARGS];
    int nrest = 0;
    int rc = wh_cli_common(argc, argv, &config, rest, &nrest, check_usage);
    if (rc) {
        return rc > 0 ? WH_EXIT_OK : WH_EXIT_USAGE;
    }
    if (nrest) {
        fprintf(stderr, "wirehub check: unexpected argument '%s'\n%s", rest[0], check_usage);
        return WH_EXIT_USAGE;
    }
    wh_config *cfg = wh_cli_load_config(config);
    if (!cfg) {
        /* Say all that is wrong at once: when the file itself parses (a secret is
         * missing, a connector refused its keys), the rules are checked against it
         * too. Its errors were printed above; a second load's are the same. */
        json_t *again = json_array();
        wh_config *bare = wh_config_load_unresolved(config, again);
        json_decref(again);
        struct stat rsb;
        if (bare && stat(bare->rules_dir, &rsb) == 0) {
            wh_rules *r = wh_cli_load_rules(bare);
            wh_rules_unref(&r);
        }
        wh_config_destroy(&bare);
        return WH_EXIT_USAGE;
    }
    wh_rules *rules = wh_cli_load_rules(cfg);
    if (!rules) {
        wh_config_destroy(&cfg);
        return WH_EXIT_USAGE;
    }
    /* what the connectors warn about (unsigned requests accepted, checks off) */
    for (size_t i = 0; i < cfg->instances->n; i++) {
        size_t k;
        json_t *w;
        json_array_foreach(cfg->instances->v[i]->warnings, k, w)
        {
            fprintf(stderr, "%s\n", json_string_value(w));
        }
    }
    struct stat sb;
    if (stat(cfg->rules_dir, &sb) != 0) {
        printf("%s: ok (%zu connector instance%s, no rules: no directory %s)\n", cfg->path,
               cfg->instances->n, cfg->instances->n == 1 ? "" : "s", cfg->rules_dir);
    } else {
        printf("%s: ok (%zu connector instance%s, %zu rule%s in %zu file%s)\n", cfg->path,
               cfg->instances->n, cfg->instances->n == 1 ? "" : "s", wh_rules_count(rules),
               wh_rules_count(rules) == 1 ? "" : "s", wh_rules_files(rules),
               wh_rules_files(rules) == 1 ? "" : "s");
    }
    wh_rules_unref(&rules);
    wh_config_destroy(&cfg);
    return WH_EXIT_OK;
}

static const char describe_usage[] =
    "usage: wirehub describe [--connectors-dir DIR] TYPE\n"
    "  Print a connector's config keys, operations and whether it takes webhooks.\n"
    "exit: 0 printed, 2 no such connector or usage error\n";

int wh_cmd_describe(int argc, char **argv)
{
    const char *dir = wh_default_connectors_dir();
    const char *type = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(describe_usage, stdout);
            return WH_EXIT_OK;
        }
        if (strcmp(argv[i], "--connectors-dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (!type && argv[i][0] != '-') {
            type = argv[i];
        } else {
            fprintf(stderr, "wirehub describe: unexpected argument '%s'\n%s", argv[i],
                    describe_usage);
            return WH_EXIT_USAGE;
        }
    }
    if (!type) {
        fputs(describe_usage, stderr);
        return WH_EXIT_USAGE;
    }
    char err[1024];
    wh_plugin *p = wh_plugin_load(dir, type, err, sizeof err);
    if (!p) {
        fprintf(stderr, "wirehub describe: %s\n", err);
        return WH_EXIT_USAGE;
    }
    wh_describe(p, stdout);
    wh_plugin_destroy(&p);
    return WH_EXIT_OK;
}

static const char send_usage[] =
    "usage: wirehub send [-c FILE] [--dry-run] INSTANCE KIND DATA.json\n"
    "  Publish an event on the running hub's bus as if INSTANCE had received it\n"
    "  (DATA.json is the event's data; - reads standard input). With --dry-run no\n"
    "  hub is needed: print which rules match (and, for the others, the first\n"
    "  criterion that failed) and the calls and answer they would produce.\n"
    "exit: 0 sent (or dry run done), 1 the hub's bus cannot be reached, 2 usage,\n"
    "      config, rule or data errors\n";

int wh_cmd_send(int argc, char **argv)
{
    const char *config = wh_config_default_path();
    char *rest[WH_CLI_MAX_ARGS];
    int nrest = 0, dry = 0;
    int rc = wh_cli_common(argc, argv, &config, rest, &nrest, send_usage);
    if (rc) {
        return rc > 0 ? WH_EXIT_OK : WH_EXIT_USAGE;
    }
    char *pos[3];
    int npos = 0;
    for (int i = 0; i < nrest; i++) {
        if (strcmp(rest[i], "--dry-run") == 0) {
            dry = 1;
        } else if (rest[i][0] == '-' && rest[i][1]) {
            fprintf(stderr, "wirehub send: unknown option '%s'\n%s", rest[i], send_usage);
            return WH_EXIT_USAGE;
        } else if (npos < 3) {
            pos[npos++] = rest[i];
        } else {
            npos = 4;
        }
    }
    if (npos != 3) {
        fputs(send_usage, stderr);
        return WH_EXIT_USAGE;
    }
    const char *instance = pos[0], *kind = pos[1], *file = pos[2];
    if (!wh_name_ok(kind)) {
        fprintf(stderr, "wirehub send: kind '%s' must be 1-64 of A-Z a-z 0-9 _ . -\n", kind);
        return WH_EXIT_USAGE;
    }
    json_error_t jerr;
    json_t *data = strcmp(file, "-") == 0 ? json_loadf(stdin, JSON_DECODE_ANY, &jerr)
                                          : json_load_file(file, JSON_DECODE_ANY, &jerr);
    if (!data) {
        const char *shown = strcmp(file, "-") == 0 ? "<stdin>" : file;
        if (jerr.line > 0) {
            fprintf(stderr, "%s:%d:%d: %s\n", shown, jerr.line, jerr.column, jerr.text);
        } else {
            fprintf(stderr, "%s: %s\n", shown, jerr.text); /* cannot be read: no position */
        }
        return WH_EXIT_USAGE;
    }
    wh_config *cfg = wh_cli_load_config_unresolved(config);
    if (!cfg) {
        json_decref(data);
        return WH_EXIT_USAGE;
    }
    int status = WH_EXIT_OK;
    if (strcmp(instance, "hub") != 0 && !wh_instances_get(cfg->instances, instance)) {
        fprintf(stderr, "wirehub send: %s has no connector instance '%s'\n", cfg->path, instance);
        status = WH_EXIT_USAGE;
    } else if (dry) {
        wh_rules *rules = wh_cli_load_rules(cfg);
        if (!rules) {
            status = WH_EXIT_USAGE;
        } else {
            wh_send_dry_run(rules, instance, kind, data, stdout);
            wh_rules_unref(&rules);
        }
    } else {
        status = WH_EXIT_FAIL;
        wh_bus_ends ends;
        char err[300];
        const char *ep = json_string_value(json_array_get(cfg->bus_bind, 0));
        void *zctx = zmq_ctx_new();
        wh_pub *pub = NULL;
        json_t *env = NULL;
        char topic[WH_TOPIC_MAX];
        if (!ep || wh_bus_ends_to_reach(ep, &ends, err, sizeof err) != 0) {
            fprintf(stderr, "wirehub send: %s has no usable bus.bind endpoint\n", cfg->path);
        } else if (!(pub = wh_pub_new(zctx, &ends, 3000))) {
            fprintf(stderr, "wirehub send: cannot reach the hub's bus at %s (is it running?)\n",
                    ends.pub);
        } else if (!(env = wh_env_new(instance, kind, json_incref(data)))) {
            json_decref(data);
            fprintf(stderr, "wirehub send: cannot build the event\n");
        } else if (wh_topic_in(topic, sizeof topic, instance, kind) != 0 ||
                   wh_pub_send(pub, topic, env) != 0) {
            fprintf(stderr, "wirehub send: cannot publish\n");
        } else {
            printf("%s\n", json_string_value(json_object_get(env, "id")));
            status = WH_EXIT_OK;
        }
        json_decref(env);
        wh_pub_destroy(&pub);
        zmq_ctx_term(zctx);
    }
    json_decref(data);
    wh_config_destroy(&cfg);
    return status;
}
