/*
 * cmd_send.c — `wirehub send --dry-run`: shows which rules an event would
 * fire and what their steps would do, rendered against the event, without
 * calling, storing or publishing anything. It owns the dry run's output format
 * only; loading and matching are rules.c's. It must not start any part of the
 * hub (the lead wires the command line around wh_send_dry_run()).
 */
#include "envelope.h"
#include "rules.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Print a rendered value compactly, or "null" when rendering ran out of memory. */
static void print_json(FILE *out, const json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    fputs(s ? s : "null", out);
    free(s);
}

static int print_load(void *ud, const char *name, const char *key, int unread, long limit)
{
    fprintf((FILE *)ud, "  load %s key=%s%s", name, key, unread ? " unread" : "");
    if (limit > 0) {
        fprintf((FILE *)ud, " limit=%ld", limit);
    }
    fputc('\n', (FILE *)ud);
    return 0;
}

static int print_step(FILE *out, const wh_step *s, const json_t *ctx)
{
    char every[32], dur[32];
    json_t *v = NULL;
    char *key = NULL;
    switch (wh_step_kind_of(s)) {
    case WH_STEP_CALL:
        v = wh_step_render_with(s, ctx);
        fprintf(out, "  call %s.%s ", wh_step_instance(s), wh_step_op(s));
        print_json(out, v);
        fputc('\n', out);
        break;
    case WH_STEP_AWAIT:
        key = wh_step_render_key(s, ctx);
        wh_rules_fmt_duration(wh_step_every_ms(s), every, sizeof every);
        wh_rules_fmt_duration(wh_step_for_ms(s), dur, sizeof dur);
        fprintf(out, "  await %s.%s key=%s every=%s for=%s", wh_step_instance(s), wh_step_op(s),
                key ? key : "", every, dur);
        if (wh_step_collect_on(s)) {
            fprintf(out, " collect=%s", wh_step_collect_on(s));
        }
        fputc('\n', out);
        break;
    case WH_STEP_RESPOND:
        v = wh_step_render_respond(s, ctx);
        fputs("  respond ", out);
        print_json(out, v);
        fputc('\n', out);
        break;
    case WH_STEP_STOP_AWAIT:
        key = wh_step_render_key(s, ctx);
        fprintf(out, "  stop_await %s\n", key ? key : "");
        break;
    }
    int rc = (wh_step_kind_of(s) == WH_STEP_CALL || wh_step_kind_of(s) == WH_STEP_RESPOND) && !v
                 ? WH_ERR_NOMEM
                 : WH_OK;
    if ((wh_step_kind_of(s) == WH_STEP_AWAIT || wh_step_kind_of(s) == WH_STEP_STOP_AWAIT) && !key) {
        rc = WH_ERR_NOMEM;
    }
    json_decref(v);
    free(key);
    return rc;
}

/* The matched rule's loads, steps and respond; then, when its steps name
   results (`as:`), that those are missing here. */
static int print_rule(FILE *out, const wh_rule *rule, const json_t *ctx)
{
    size_t n = wh_rule_nsteps(rule);
    int rc = wh_rule_each_load(rule, ctx, print_load, out);
    int results = 0;
    for (size_t i = 0; rc == WH_OK && i < n; i++) {
        results |= wh_step_as(wh_rule_step(rule, i)) != NULL;
        rc = print_step(out, wh_rule_step(rule, i), ctx);
    }
    if (rc == WH_OK && wh_rule_has_respond(rule)) {
        json_t *v = wh_rule_render_respond(rule, ctx);
        if (!v) {
            return WH_ERR_NOMEM;
        }
        fputs("  respond ", out);
        print_json(out, v);
        fputc('\n', out);
        json_decref(v);
    }
    if (rc == WH_OK && results) {
        fputs("  (results of earlier calls are not available in a dry run)\n", out);
    }
    return rc;
}

int wh_send_dry_run(const wh_rules *rules, const char *instance, const char *kind,
                    const json_t *data, FILE *out)
{
    if (!rules || !out || !instance || !kind || !wh_name_ok(instance) || !wh_name_ok(kind)) {
        return WH_ERR_INVALID;
    }
    char now[40];
    wh_time_rfc3339(wh_now_ms(), now, sizeof now);
    json_t *env = json_pack("{s:s,s:s,s:s,s:s}", "id", "00000000000000000000000000000000", "time",
                            now, "source", instance, "kind", kind);
    if (env && (data ? json_object_set(env, "data", (json_t *)data)
                     : json_object_set_new(env, "data", json_object())) != 0) {
        json_decref(env);
        env = NULL;
    }
    json_t *ctx = env ? wh_rules_context(env) : NULL;
    if (!ctx) {
        json_decref(env);
        return WH_ERR_NOMEM;
    }
    int matched = 0, considered = 0, rc = WH_OK;
    for (size_t i = 0; rc == WH_OK && i < wh_rules_count(rules); i++) {
        const wh_rule *rule = wh_rules_get(rules, i);
        if (!wh_rule_on_matches(rule, instance, kind)) {
            continue;
        }
        considered++;
        fprintf(out, "rule %s (%s): ", wh_rule_name(rule), wh_rule_file(rule));
        if (!wh_rule_enabled(rule)) {
            fputs("disabled\n", out);
            continue;
        }
        char why[512];
        if (!wh_rule_explain(rule, ctx, why, sizeof why)) {
            fprintf(out, "not matched: %s\n", why);
            continue;
        }
        fputs("matched\n", out);
        matched++;
        rc = print_rule(out, rule, ctx);
        if (rc == WH_OK && wh_rule_stop(rule)) {
            fputs("  stop: later rules are not tried\n", out);
            break;
        }
    }
    if (rc == WH_OK && considered == 0) {
        /* no `on:` takes this event: show the near misses (same instance or
         * same kind), the likely typos, rather than every rule loaded */
        for (size_t i = 0; i < wh_rules_count(rules); i++) {
            const wh_rule *rule = wh_rules_get(rules, i);
            const char *on = wh_rule_on(rule);
            const char *slash = on ? strchr(on, '/') : NULL;
            if (!slash) {
                continue;
            }
            size_t n = (size_t)(slash - on);
            if ((n == strlen(instance) && strncmp(on, instance, n) == 0) ||
                strcmp(slash + 1, kind) == 0) {
                fprintf(out, "rule %s (%s): not matched: on: %s does not take %s/%s\n",
                        wh_rule_name(rule), wh_rule_file(rule), on, instance, kind);
            }
        }
        fprintf(out, "no rule has an on: that takes %s/%s (%zu rule%s loaded)\n", instance, kind,
                wh_rules_count(rules), wh_rules_count(rules) == 1 ? "" : "s");
    }
    if (rc == WH_OK && matched == 0) {
        fputs("no rule matched\n", out);
    }
    json_decref(ctx);
    json_decref(env);
    return rc == WH_OK ? matched : rc;
}
