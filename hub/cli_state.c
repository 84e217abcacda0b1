/*
 * cli_state.c — `wirehub outbox`, `runs` and `replies`: read (and, for
 * `outbox retry`, re-queue) what the running hub keeps in its state file.
 * SQLite in WAL mode lets this process read and write beside the hub.
 */
#include "cli.h"
#include "config.h"
#include "sqlbatch.h"
#include "store.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Open the config's state file; on failure *status says why (2 config, 1 state). */
static wh_store *open_state(const char *config, wh_config **cfg_out, int *status)
{
    *status = WH_EXIT_USAGE;
    wh_config *cfg = wh_cli_load_config_unresolved(config);
    if (!cfg) {
        return NULL;
    }
    *status = WH_EXIT_FAIL;
    if (access(cfg->state_path, F_OK) != 0) {
        fprintf(stderr, "wirehub: no state file at %s (has the hub run with this config?)\n",
                cfg->state_path);
        wh_config_destroy(&cfg);
        return NULL;
    }
    char err[512];
    wh_store_opts o;
    wh_store_opts_init(&o);
    o.readers = 1;
    wh_store *st = wh_store_open(cfg->state_path, &o, err, sizeof err);
    if (!st) {
        fprintf(stderr, "wirehub: %s\n", err);
        wh_config_destroy(&cfg);
        return NULL;
    }
    *cfg_out = cfg;
    return st;
}

static json_t *rows_of(wh_store *st, const char *sql, json_t *params)
{
    json_t *rows = wh_store_rows(st, sql, params);
    if (!rows) {
        fprintf(stderr, "wirehub: cannot read the state file\n");
    }
    return rows;
}

static void when(json_t *ms, char *out, size_t size)
{
    if (!json_is_integer(ms)) {
        snprintf(out, size, "-");
        return;
    }
    wh_time_rfc3339(json_integer_value(ms), out, size);
}

static void print_rows(json_t *rows, int as_json, const char *const *cols, const int *widths)
{
    size_t i;
    json_t *row;
    if (!as_json) {
        for (size_t c = 0; cols[c]; c++) {
            printf("%-*s ", widths[c], cols[c]);
        }
        printf("\n");
    }
    json_array_foreach(rows, i, row)
    {
        if (as_json) {
            char *text = json_dumps(row, JSON_COMPACT);
            printf("%s\n", text ? text : "{}");
            free(text);
            continue;
        }
        for (size_t c = 0; cols[c]; c++) {
            json_t *v = json_object_get(row, cols[c]);
            char buf[64];
            const char *s;
            if (json_is_string(v)) {
                s = json_string_value(v);
            } else if (json_is_integer(v) && strstr(cols[c], "_at")) {
                when(v, buf, sizeof buf);
                s = buf;
            } else if (json_is_integer(v)) {
                snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
                s = buf;
            } else {
                s = "-";
            }
            /* an API's error text may hold line breaks or escape sequences: one row, one line */
            char safe[512];
            size_t k = 0;
            for (const unsigned char *p = (const unsigned char *)s; *p && k + 8 < sizeof safe;
                 p++) {
                unsigned cp = 0; /* C1 controls and bidi overrides, as UTF-8 */
                if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
                    cp = p[1];
                } else if (p[0] == 0xE2 && (p[1] == 0x80 || p[1] == 0x81) && p[2]) {
                    unsigned u = 0x2000 | (unsigned)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
                    if (u == 0x200E || u == 0x200F || (u >= 0x202A && u <= 0x202E) ||
                        (u >= 0x2066 && u <= 0x2069)) {
                        cp = u;
                    }
                }
                if (*p < 0x20 || *p == 0x7f) {
                    k += (size_t)snprintf(safe + k, sizeof safe - k, "\\x%02x", *p);
                } else if (cp) {
                    k += (size_t)snprintf(safe + k, sizeof safe - k, "\\u%04x", cp);
                    p += cp < 0x100 ? 1 : 2;
                } else {
                    safe[k++] = (char)*p;
                }
            }
            safe[k] = '\0';
            printf("%-*s ", widths[c], safe);
        }
        printf("\n");
    }
}

static const char outbox_usage[] =
    "usage: wirehub outbox [-c FILE] [--dead | --all] [--json]\n"
    "       wirehub outbox [-c FILE] retry ID | --dead\n"
    "  List calls waiting to be delivered and dead letters (--dead: only dead\n"
    "  letters; --all: delivered ones too) with state, attempts, next attempt and\n"
    "  last error; or re-queue one dead call, or all of them. A running hub picks\n"
    "  re-queued calls up within seconds; their runs resume.\n"
    "exit: 0 done, 1 nothing to retry or the state cannot be read, 2 usage or config\n";

int wh_cmd_outbox(int argc, char **argv)
{
    const char *config = wh_config_default_path();
    char *rest[WH_CLI_MAX_ARGS];
    int nrest = 0;
    int rc = wh_cli_common(argc, argv, &config, rest, &nrest, outbox_usage);
    if (rc) {
        return rc > 0 ? WH_EXIT_OK : WH_EXIT_USAGE;
    }
    int dead = 0, all = 0, as_json = 0, retry = 0;
    const char *id = NULL;
    for (int i = 0; i < nrest; i++) {
        if (strcmp(rest[i], "--dead") == 0) {
            dead = 1;
        } else if (strcmp(rest[i], "--all") == 0) {
            all = 1;
        } else if (strcmp(rest[i], "--json") == 0) {
            as_json = 1;
        } else if (strcmp(rest[i], "retry") == 0 && !retry) {
            retry = 1;
        } else if (retry && !id && rest[i][0] != '-') {
            id = rest[i];
        } else {
            fprintf(stderr, "wirehub outbox: unexpected argument '%s'\n%s", rest[i], outbox_usage);
            return WH_EXIT_USAGE;
        }
    }
    if (retry && !id == !dead) {
        fputs(outbox_usage, stderr);
        return WH_EXIT_USAGE;
    }
    if (dead && all) {
        fprintf(stderr, "wirehub outbox: --dead and --all are alternatives\n%s", outbox_usage);
        return WH_EXIT_USAGE;
    }
    wh_config *cfg = NULL;
    int failed_with;
    wh_store *st = open_state(config, &cfg, &failed_with);
    if (!st) {
        return failed_with;
    }
    int status = WH_EXIT_OK;
    if (retry) {
        json_t *which = id ? json_pack("[s]", id) : json_array();
        const char *cond = id ? "id = ?1 AND state = 'dead'" : "state = 'dead'";
        json_t *rows = rows_of(st, id ? "SELECT id, run_id FROM outbox WHERE id = ?1 AND state = 'dead'"
                                      : "SELECT id, run_id FROM outbox WHERE state = 'dead'",
                               json_deep_copy(which));
        if (json_array_size(rows) == 0) {
            fprintf(stderr, "wirehub outbox: %s\n",
                    id ? "no dead call with that id" : "no dead calls");
            status = WH_EXIT_FAIL;
        } else {
            json_t *batch = json_array();
            char sql[256];
            snprintf(sql, sizeof sql,
                     "UPDATE outbox SET state = 'pending', attempts = 0, next_at_ms = %lld, "
                     "last_error = NULL, updated_ms = %lld WHERE %s",
                     (long long)wh_now_ms(), (long long)wh_now_ms(), cond);
            wh_sqlbatch_add(batch, sql, json_deep_copy(which));
            size_t i;
            json_t *row;
            json_array_foreach(rows, i, row)
            {
                wh_sqlbatch_add(batch,
                                "UPDATE runs SET state = 'waiting', error = NULL WHERE id = ?1 "
                                "AND state = 'failed'",
                                json_pack("[O]", json_object_get(row, "run_id")));
            }
            if (wh_store_write_sync(st, wh_sqlbatch_exec, batch) != WH_OK) {
                fprintf(stderr, "wirehub outbox: cannot update the state file\n");
                status = WH_EXIT_FAIL;
            } else {
                printf("re-queued %zu call%s\n", json_array_size(rows),
                       json_array_size(rows) == 1 ? "" : "s");
            }
            json_decref(batch);
        }
        json_decref(rows);
        json_decref(which);
    } else {
        const char *sql =
            dead ? "SELECT id, state, attempts, next_at_ms AS next_at, instance || '.' || op AS "
                   "call, last_error, result FROM outbox WHERE state = 'dead' ORDER BY updated_ms"
            : all ? "SELECT id, state, attempts, next_at_ms AS next_at, instance || '.' || op AS "
                    "call, last_error, result FROM outbox ORDER BY created_ms"
                  : "SELECT id, state, attempts, next_at_ms AS next_at, instance || '.' || op "
                    "AS call, last_error, result FROM outbox WHERE state != 'done' ORDER BY "
                    "created_ms";
        json_t *rows = rows_of(st, sql, NULL);
        /* --json: the last answer as JSON (an API's error body), when there was one */
        size_t ri;
        json_t *row;
        json_array_foreach(rows, ri, row)
        {
            const char *res = json_string_value(json_object_get(row, "result"));
            json_t *v = res ? json_loads(res, JSON_DECODE_ANY, NULL) : NULL;
            json_object_set_new(row, "result", v ? v : json_null());
        }
        static const char *const cols[] = {"id", "state", "attempts", "next_at", "call",
                                           "last_error", NULL};
        static const int widths[] = {40, 8, 8, 24, 28, 0};
        print_rows(rows, as_json, cols, widths);
        status = rows ? WH_EXIT_OK : WH_EXIT_FAIL;
        json_decref(rows);
    }
    wh_store_close(&st);
    wh_config_destroy(&cfg);
    return status;
}

static const char runs_usage[] =
    "usage: wirehub runs [-c FILE] [--failed] [--json]\n"
    "  List rule runs (newest last) with state, step and error. Steps count from 1:\n"
    "  the step a run is at or failed at; for a finished run, how many it ran.\n"
    "exit: 0 listed, 1 the state cannot be read, 2 usage or config\n";

int wh_cmd_runs(int argc, char **argv)
{
    const char *config = wh_config_default_path();
    char *rest[WH_CLI_MAX_ARGS];
    int nrest = 0;
    int rc = wh_cli_common(argc, argv, &config, rest, &nrest, runs_usage);
    if (rc) {
        return rc > 0 ? WH_EXIT_OK : WH_EXIT_USAGE;
    }
    int failed = 0, as_json = 0;
    for (int i = 0; i < nrest; i++) {
        if (strcmp(rest[i], "--failed") == 0) {
            failed = 1;
        } else if (strcmp(rest[i], "--json") == 0) {
            as_json = 1;
        } else {
            fprintf(stderr, "wirehub runs: unexpected argument '%s'\n%s", rest[i], runs_usage);
            return WH_EXIT_USAGE;
        }
    }
    wh_config *cfg = NULL;
    int failed_with;
    wh_store *st = open_state(config, &cfg, &failed_with);
    if (!st) {
        return failed_with;
    }
    /* steps count from 1, as in the log, keys and hub/call_failed: the step a
     * run is at (or failed at); a finished run shows how many it ran */
    json_t *rows = rows_of(st,
                           failed ? "SELECT id, rule, state, step + 1 AS step, updated_ms AS "
                                    "updated_at, error FROM runs WHERE state = 'failed' ORDER BY "
                                    "updated_ms"
                                  : "SELECT id, rule, state, CASE state WHEN 'done' THEN step "
                                    "ELSE step + 1 END AS step, updated_ms AS updated_at, error "
                                    "FROM runs ORDER BY created_ms",
                           NULL);
    static const char *const cols[] = {"id", "rule", "state", "step", "updated_at", "error", NULL};
    static const int widths[] = {36, 28, 8, 4, 24, 0};
    print_rows(rows, as_json, cols, widths);
    int status = rows ? WH_EXIT_OK : WH_EXIT_FAIL;
    json_decref(rows);
    wh_store_close(&st);
    wh_config_destroy(&cfg);
    return status;
}

static const char replies_usage[] =
    "usage: wirehub replies [-c FILE] KEY\n"
    "  Print the replies stored under KEY as JSON lines, oldest first.\n"
    "exit: 0 printed (possibly nothing), 1 the state cannot be read, 2 usage or config\n";

int wh_cmd_replies(int argc, char **argv)
{
    const char *config = wh_config_default_path();
    char *rest[WH_CLI_MAX_ARGS];
    int nrest = 0;
    int rc = wh_cli_common(argc, argv, &config, rest, &nrest, replies_usage);
    if (rc) {
        return rc > 0 ? WH_EXIT_OK : WH_EXIT_USAGE;
    }
    if (nrest != 1) {
        fputs(replies_usage, stderr);
        return WH_EXIT_USAGE;
    }
    wh_config *cfg = NULL;
    int failed_with;
    wh_store *st = open_state(config, &cfg, &failed_with);
    if (!st) {
        return failed_with;
    }
    json_t *rows = rows_of(st,
                           "SELECT id, author, text, time, source, read FROM replies WHERE key = ?1 "
                           "ORDER BY seq",
                           json_pack("[s]", rest[0]));
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_object_set_new(row, "read", json_boolean(json_integer_value(json_object_get(row, "read"))));
        char *text = json_dumps(row, JSON_COMPACT);
        printf("%s\n", text ? text : "{}");
        free(text);
    }
    int status = rows ? WH_EXIT_OK : WH_EXIT_FAIL;
    json_decref(rows);
    wh_store_close(&st);
    wh_config_destroy(&cfg);
    return status;
}
