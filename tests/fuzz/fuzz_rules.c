/*
 * fuzz_rules.c — the rule-file loader (hub/rules.c, match.c, template.c) on
 * arbitrary text, then everything a loaded set does with an event: the index,
 * criteria (with explanations), and rendering of every rule's respond, loads
 * and steps against a fixed context, and the dry run.
 *
 * Owns a fake schema (instances alexa, team, hook; team has post_message and
 * the poll thread_replies, hook's `request` takes any arguments) and the fixed
 * event. Oracle: a refused file says why with file:line:col; a loaded set
 * renders to the right shapes (NULL is allowed: over the template render
 * limits, and out of memory), the index agrees with the rules, and matching
 * agrees with its explanation.
 * Must not: read files, or keep anything between inputs but the fixed event.
 */
#include "fuzz.h"
#include "rules.h"

#include <string.h>

static const wh_option post_args[] = {
    {"channel", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "channel"},
    {"text", WH_OPT_STRING, NULL, 0, "text"},
    {"thread_ts", WH_OPT_STRING, NULL, 0, "thread"},
    {"blocks", WH_OPT_ARRAY, NULL, 0, "blocks"},
    {NULL, 0, NULL, 0, NULL},
};
static const wh_option replies_args[] = {
    {"channel", WH_OPT_STRING, NULL, 0, "channel"},
    {"ts", WH_OPT_STRING, NULL, 0, "thread"},
    {NULL, 0, NULL, 0, NULL},
};
static const wh_operation team_ops[] = {
    {"post_message", "post", post_args, NULL, 0},
    {"thread_replies", "replies", replies_args, NULL, WH_OP_POLL},
    {NULL, NULL, NULL, NULL, 0},
};
static const wh_operation hook_ops[] = {
    {"request", "any request", NULL, NULL, 0},
    {"poll", "any poll", NULL, NULL, WH_OP_POLL},
    {NULL, NULL, NULL, NULL, 0},
};

static int has_instance(void *ud, const char *inst)
{
    (void)ud;
    return strcmp(inst, "alexa") == 0 || strcmp(inst, "team") == 0 || strcmp(inst, "hook") == 0;
}

static const wh_operation *find_op(void *ud, const char *inst, const char *op)
{
    (void)ud;
    const wh_operation *ops = strcmp(inst, "team") == 0   ? team_ops
                              : strcmp(inst, "hook") == 0 ? hook_ops
                                                          : NULL;
    for (const wh_operation *o = ops; o && o->name; o++) {
        if (strcmp(o->name, op) == 0) {
            return o;
        }
    }
    return NULL;
}

static const char *instance_names(void *ud)
{
    (void)ud;
    return "alexa, hook, team";
}

static const char *op_names(void *ud, const char *inst)
{
    (void)ud;
    return strcmp(inst, "team") == 0   ? "post_message, thread_replies"
           : strcmp(inst, "hook") == 0 ? "poll, request"
                                       : "";
}

static const wh_rules_schema g_schema = {has_instance, find_op, instance_names, op_names, NULL,
                                         NULL};

static const char k_event[] =
    "{\"id\":\"0123456789abcdef0123456789abcdef\",\"time\":\"2026-11-27T13:54:20.123Z\","
    "\"source\":\"alexa\",\"kind\":\"intent\",\"data\":{"
    "\"intent\":{\"name\":\"GivePresentationIntent\",\"slots\":{\"topic\":\"Q3 roadmap & <more>\","
    "\"count\":3,\"empty\":\"\"}},"
    "\"user\":{\"id\":\"amzn1.ask.account.X\",\"name\":\"Ana\",\"admin\":false,\"score\":2.5},"
    "\"post\":{\"channel\":\"C123\",\"ts\":\"1700000000.000100\",\"blocks\":[{\"type\":\"x\"}]},"
    "\"replies\":[{\"author\":\"Ben\",\"text\":\"great, send the slides\"},"
    "{\"author\":\"Chen\",\"text\":\"I'll join at three\"}],"
    "\"tags\":[\"a\",\"b\",null,1],\"nothing\":null,\"ok\":true}}";

static json_t *g_event; /* the envelope */
static json_t *g_ctx;   /* its template context */
static FILE *g_null;    /* the dry run's output */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_error_t err;
    g_event = json_loads(k_event, 0, &err);
    g_ctx = g_event ? wh_rules_context(g_event) : NULL;
    g_null = fopen("/dev/null", "w");
    if (!g_ctx || !g_null) {
        fprintf(stderr, "fuzz_rules: cannot set up (%s)\n", err.text);
        exit(1);
    }
    return 0;
}

static int on_load(void *ud, const char *name, const char *key, int unread, long limit)
{
    (void)unread;
    FUZZ_CHECK(name && *name && key, "a load without a name or key");
    FUZZ_CHECK(limit >= 0 && limit <= WH_LOAD_LIMIT_MAX, "a load limit of %ld", limit);
    (*(size_t *)ud)++;
    return 0;
}

static int on_candidate(void *ud, const wh_rule *rule)
{
    FUZZ_CHECK(wh_rule_enabled(rule), "a disabled candidate");
    FUZZ_CHECK(wh_rule_on_matches(rule, "alexa", "intent"),
               "candidate '%s' does not cover alexa/intent", wh_rule_name(rule));
    (*(size_t *)ud)++;
    return 0;
}

static void render_step(const wh_step *s)
{
    wh_step_kind kind = wh_step_kind_of(s);
    FUZZ_CHECK(kind >= WH_STEP_CALL && kind <= WH_STEP_STOP_AWAIT, "step kind %d", (int)kind);
    if (kind == WH_STEP_CALL || kind == WH_STEP_AWAIT) {
        FUZZ_CHECK(wh_step_instance(s) && wh_step_op(s), "a call without instance/op");
        json_t *with = wh_step_render_with(s, g_ctx);
        FUZZ_CHECK(!with || json_is_object(with), "`with` did not render to an object");
        json_decref(with);
    }
    if (kind == WH_STEP_AWAIT) {
        FUZZ_CHECK(wh_step_every_ms(s) >= 1000 && wh_step_for_ms(s) > wh_step_every_ms(s),
                   "await every %lld for %lld", (long long)wh_step_every_ms(s),
                   (long long)wh_step_for_ms(s));
        json_t *vars = wh_step_render_vars(s, g_ctx);
        FUZZ_CHECK(!vars || json_is_object(vars), "`vars` did not render to an object");
        json_decref(vars);
        wh_match *m = wh_step_render_collect(s, g_ctx);
        FUZZ_CHECK(!m == !wh_step_collect_on(s), "collect compiled and collect_on disagree");
        if (m) {
            char why[256];
            FUZZ_CHECK(wh_match_eval(m, g_ctx) == wh_match_explain(m, g_ctx, why, sizeof why),
                       "collect: eval and explain disagree");
        }
        wh_match_destroy(&m);
        json_t *cif = wh_step_render_collect_if(s, g_ctx);
        FUZZ_CHECK(!cif == !wh_step_collect_on(s), "collect_if and collect_on disagree");
        json_decref(cif);
    }
    if (kind == WH_STEP_AWAIT || kind == WH_STEP_STOP_AWAIT) {
        free(wh_step_render_key(s, g_ctx));
    }
    if (kind == WH_STEP_RESPOND) {
        json_t *r = wh_step_render_respond(s, g_ctx);
        FUZZ_CHECK(!r || json_is_object(r), "a respond step did not render to an object");
        json_decref(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *errors = json_array();
    wh_rules *r = wh_rules_load_text("fuzz.yaml", (const char *)data, size, &g_schema, errors);
    fuzz_show_errors(r ? "rules loaded" : "rules refused", errors);
    if (!r) {
        FUZZ_CHECK(json_array_size(errors) > 0, "the rule file was refused without a reason");
        size_t i;
        json_t *e;
        json_array_foreach(errors, i, e)
        {
            const char *s = json_string_value(e);
            FUZZ_CHECK(s && strncmp(s, "fuzz.yaml:", 10) == 0, "error without position: %s",
                       s ? s : "(not a string)");
        }
        json_decref(errors);
        return 0;
    }
    FUZZ_CHECK(json_array_size(errors) == 0, "a loaded set came with errors");
    FUZZ_CHECK(wh_rules_files(r) == 1, "%zu files", wh_rules_files(r));

    size_t expected = 0;
    for (size_t i = 0; i < wh_rules_count(r); i++) {
        const wh_rule *rule = wh_rules_get(r, i);
        FUZZ_CHECK(rule && wh_rule_name(rule) && wh_rule_file(rule) && wh_rule_on(rule),
                   "rule %zu is incomplete", i);
        expected += wh_rule_enabled(rule) && wh_rule_on_matches(rule, "alexa", "intent");
        char why[256];
        int m = wh_rule_matches(rule, g_ctx);
        int e = wh_rule_explain(rule, g_ctx, why, sizeof why);
        FUZZ_CHECK(m == e, "matches (%d) and explain (%d) disagree", m, e);
        if (wh_rule_has_respond(rule)) {
            json_t *resp = wh_rule_render_respond(rule, g_ctx);
            FUZZ_CHECK(!resp || json_is_object(resp), "respond did not render to an object");
            json_decref(resp);
        }
        size_t loads = 0;
        int lrc = wh_rule_each_load(rule, g_ctx, on_load, &loads);
        /* a key over the template render limits reads as WH_ERR_NOMEM */
        FUZZ_CHECK(lrc == 0 || lrc == WH_ERR_NOMEM, "each_load returned %d", lrc);
        for (size_t k = 0; k < wh_rule_nsteps(rule); k++) {
            const wh_step *s = wh_rule_step(rule, k);
            FUZZ_CHECK(s != NULL, "step %zu of %zu is NULL", k, wh_rule_nsteps(rule));
            render_step(s);
        }
    }
    FUZZ_CHECK(wh_rules_get(r, wh_rules_count(r)) == NULL, "a rule past the end");
    size_t found = 0;
    wh_rules_each_candidate(r, "alexa", "intent", on_candidate, &found);
    FUZZ_CHECK(found == expected, "the index found %zu candidates, the rules say %zu", found,
               expected);

    const json_t *d = json_object_get(g_event, "data");
    int n = wh_send_dry_run(r, "alexa", "intent", d, g_null);
    FUZZ_CHECK(n >= 0 && (size_t)n <= expected, "dry run matched %d of %zu", n, expected);

    wh_rules *extra = wh_rules_ref(r);
    wh_rules_unref(&extra);
    wh_rules_unref(&r);
    json_decref(errors);
    return 0;
}
