/* test_rules.c — rule files: loading, every validation error with its exact
   position, the index, context, rendering, loads, collect, refcount, dry run. */
#include "rules.h"
#include "testlib.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* A fake schema: instances alexa and team.                                  */

static const wh_option post_args[] = {
    {"channel", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "channel"},
    {"text", WH_OPT_STRING, NULL, 0, "text"},
    {"thread_ts", WH_OPT_STRING, NULL, 0, "thread"},
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

static int has_instance(void *ud, const char *inst)
{
    (void)ud;
    return strcmp(inst, "alexa") == 0 || strcmp(inst, "team") == 0;
}

static const wh_operation *find_op(void *ud, const char *inst, const char *op)
{
    (void)ud;
    if (strcmp(inst, "team") != 0) {
        return NULL;
    }
    for (const wh_operation *o = team_ops; o->name; o++) {
        if (strcmp(o->name, op) == 0) {
            return o;
        }
    }
    return NULL;
}

static const char *instance_names(void *ud)
{
    (void)ud;
    return "alexa, team";
}

static const char *op_names(void *ud, const char *inst)
{
    (void)ud;
    return strcmp(inst, "team") == 0 ? "post_message, thread_replies" : "";
}

static const wh_rules_schema schema = {has_instance, find_op, instance_names, op_names, NULL,
                                       NULL};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static wh_rules *load(const char *name, const char *text, json_t *errors)
{
    return wh_rules_load_text(name, text, strlen(text), &schema, errors);
}

static void print_errors(const json_t *errors)
{
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        fprintf(stderr, "    got: %s\n", json_string_value(e));
    }
}

/* Load must fail with exactly these errors, in this order. */
static void expect_errors_in(const char *file, int line, wh_rules *r, json_t *errors,
                             const char *const *expected)
{
    size_t n = 0;
    while (expected[n]) {
        n++;
    }
    int bad = r != NULL || json_array_size(errors) != n;
    for (size_t i = 0; !bad && i < n; i++) {
        bad = strcmp(json_string_value(json_array_get(errors, i)), expected[i]) != 0;
    }
    if (bad) {
        fprintf(stderr, "%s:%d: errors differ (load %s)\n", file, line, r ? "succeeded" : "failed");
        for (size_t i = 0; i < n; i++) {
            fprintf(stderr, "   want: %s\n", expected[i]);
        }
        print_errors(errors);
        wh_test_failures++;
    }
}

#define EXPECT_ERRORS(name, text, ...)                                                             \
    do {                                                                                           \
        json_t *_errs = json_array();                                                              \
        wh_rules *_r = load(name, text, _errs);                                                    \
        const char *const _want[] = {__VA_ARGS__, NULL};                                           \
        expect_errors_in(__FILE__, __LINE__, _r, _errs, _want);                                    \
        wh_rules_unref(&_r);                                                                       \
        json_decref(_errs);                                                                        \
    } while (0)

static json_t *parse_json(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    if (!v) {
        fprintf(stderr, "bad test JSON: %s\n", err.text);
        abort();
    }
    return v;
}

static json_t *envelope(const char *source, const char *kind, const char *data)
{
    json_t *env = json_pack("{s:s,s:s,s:s,s:s}", "id", "0123456789abcdef0123456789abcdef", "time",
                            "2026-11-27T13:54:20.123Z", "source", source, "kind", kind);
    json_object_set_new(env, "data", parse_json(data));
    return env;
}

static json_t *context(const char *source, const char *kind, const char *data)
{
    json_t *env = envelope(source, kind, data);
    json_t *ctx = wh_rules_context(env);
    json_decref(env);
    return ctx;
}

static void check_json(const char *file, int line, json_t *got, const char *want)
{
    char *g = got ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!g || strcmp(g, want) != 0) {
        fprintf(stderr, "%s:%d: got %s, expected %s\n", file, line, g ? g : "(null)", want);
        wh_test_failures++;
    }
    free(g);
}
#define CHECK_JSON(got, want) check_json(__FILE__, __LINE__, got, want)

/* ------------------------------------------------------------------------ */
/* The presentation story, with every feature                                */

static const char presentation[] =
    "rules:\n"
    "  - name: tell-team-about-presentation\n"
    "    on: alexa/intent\n"
    "    if:\n"
    "      intent.name: GivePresentationIntent\n"
    "      intent.slots.topic: { exists: true }\n"
    "    do:\n"
    "      - call: team.post_message\n"
    "        with: { channel: \"#team\", text: \"{{user.name}} is presenting: "
    "{{intent.slots.topic}}\" }\n"
    "        as: post\n"
    "      - await: team.thread_replies\n"
    "        with: { channel: \"{{post.channel}}\", ts: \"{{post.ts}}\" }\n"
    "        key: \"presentation/{{user.id}}\"\n"
    "        every: 20s\n"
    "        for: 30m\n"
    "        vars: { user: \"{{user.id}}\" }\n"
    "        collect: { on: team/message, if: { thread_ts: \"{{post.ts}}\" } }\n"
    "    respond:\n"
    "      speech: \"OK, I told the team.\"\n"
    "  - name: read-back-replies\n"
    "    on: alexa/intent\n"
    "    if: { intent.name: GetFeedbackIntent }\n"
    "    enabled: true\n"
    "    stop: true\n"
    "    load:\n"
    "      replies: \"presentation/{{user.id}}\"\n"
    "      fresh: { key: \"fresh/{{user.id}}\", unread: true, limit: 5 }\n"
    "    do:\n"
    "      - respond: { speech: \"{{#replies}}{{author}} says: {{text}}. {{/replies}}\" }\n"
    "      - stop_await: \"presentation/{{user.id}}\"\n"
    "    respond:\n"
    "      speech: \"<speak>Topic {{intent.slots.topic}}</speak>\"\n"
    "      text: \"Topic {{intent.slots.topic}}\"\n"
    "      reprompt: \"{{intent.slots.topic}}\"\n"
    "      end_session: false\n";

static void test_valid_file(void)
{
    json_t *errors = json_array();
    wh_rules *r = load("rules/presentation.yaml", presentation, errors);
    CHECK(r != NULL);
    print_errors(errors);
    CHECK_INT(json_array_size(errors), 0);
    json_decref(errors);
    if (!r) {
        return;
    }
    CHECK_INT(wh_rules_count(r), 2);
    CHECK_INT(wh_rules_files(r), 1);
    const wh_rule *a = wh_rules_get(r, 0), *b = wh_rules_get(r, 1);
    CHECK(wh_rules_get(r, 2) == NULL);
    CHECK_STR(wh_rule_name(a), "tell-team-about-presentation");
    CHECK_STR(wh_rule_file(a), "rules/presentation.yaml:2");
    CHECK_STR(wh_rule_on(a), "alexa/intent");
    CHECK_STR(wh_rule_file(b), "rules/presentation.yaml:20");
    CHECK_INT(wh_rule_enabled(a), 1);
    CHECK_INT(wh_rule_stop(a), 0);
    CHECK_INT(wh_rule_stop(b), 1);
    CHECK_INT(wh_rule_nsteps(a), 2);
    CHECK_INT(wh_rule_nsteps(b), 2);
    CHECK(wh_rule_step(a, 2) == NULL);

    const wh_step *call = wh_rule_step(a, 0), *await = wh_rule_step(a, 1);
    CHECK_INT(wh_step_kind_of(call), WH_STEP_CALL);
    CHECK_STR(wh_step_instance(call), "team");
    CHECK_STR(wh_step_op(call), "post_message");
    CHECK_STR(wh_step_as(call), "post");
    CHECK(wh_step_collect_on(call) == NULL);
    CHECK_INT(wh_step_every_ms(call), 0);
    CHECK(wh_step_render_key(call, NULL) == NULL);
    CHECK(wh_step_render_respond(call, NULL) == NULL);

    CHECK_INT(wh_step_kind_of(await), WH_STEP_AWAIT);
    CHECK_STR(wh_step_instance(await), "team");
    CHECK_STR(wh_step_op(await), "thread_replies");
    CHECK(wh_step_as(await) == NULL);
    CHECK_INT(wh_step_every_ms(await), 20000);
    CHECK_INT(wh_step_for_ms(await), 1800000);
    CHECK_STR(wh_step_collect_on(await), "team/message");

    CHECK_INT(wh_step_kind_of(wh_rule_step(b, 0)), WH_STEP_RESPOND);
    CHECK_INT(wh_step_kind_of(wh_rule_step(b, 1)), WH_STEP_STOP_AWAIT);

    json_t *ctx = context("alexa", "intent",
                          "{\"intent\":{\"name\":\"GivePresentationIntent\",\"slots\":{\"topic\":"
                          "\"Q3\"}},\"user\":{\"id\":\"u1\",\"name\":\"Ana\"}}");
    CHECK_INT(wh_rule_matches(a, ctx), 1);
    CHECK_INT(wh_rule_matches(b, ctx), 0);
    char why[200];
    CHECK_INT(wh_rule_explain(b, ctx, why, sizeof why), 0);
    CHECK_STR(why, "intent.name: \"GivePresentationIntent\" is not equal to \"GetFeedbackIntent\"");
    CHECK_INT(wh_rule_explain(a, ctx, why, sizeof why), 1);
    CHECK_STR(why, "");

    json_t *v = wh_step_render_with(call, ctx);
    CHECK_JSON(v, "{\"channel\":\"#team\",\"text\":\"Ana is presenting: Q3\"}");
    json_decref(v);
    char *key = wh_step_render_key(await, ctx);
    CHECK_STR(key, "presentation/u1");
    free(key);
    v = wh_step_render_vars(await, ctx);
    CHECK_JSON(v, "{\"user\":\"u1\"}");
    json_decref(v);
    v = wh_step_render_vars(call, ctx);
    CHECK_JSON(v, "{}");
    json_decref(v);
    v = wh_rule_render_respond(a, ctx);
    CHECK_JSON(v, "{\"speech\":\"OK, I told the team.\"}");
    json_decref(v);
    CHECK_INT(wh_rule_has_respond(a), 1);
    json_decref(ctx);
    wh_rules_unref(&r);
    CHECK(r == NULL);
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                */

static void test_errors_shapes(void)
{
    /* YAML syntax errors come from the parser, with its position */
    EXPECT_ERRORS("s.yaml", "rules:\n  - name: [a\n",
                  "s.yaml:3:1: did not find expected ',' or ']' while parsing a flow sequence");

    EXPECT_ERRORS("t.yaml", "- a\n- b\n",
                  "t.yaml:1:1: a rule file must be a mapping with a 'rules' list, got a list");
    EXPECT_ERRORS("t.yaml", "rule:\n  - name: x\n",
                  "t.yaml:1:1: unknown key 'rule' at the top of a rule file (known: rules)");
    EXPECT_ERRORS("t.yaml", "rules: { name: x }\n",
                  "t.yaml:1:8: 'rules' must be a list of rules, got a mapping");
    EXPECT_ERRORS("t.yaml", "rules:\n  - just a string\n",
                  "t.yaml:2:5: a rule must be a mapping (name, on, ...), got a string");
    EXPECT_ERRORS("t.yaml", "rules:\n  - on: alexa/intent\n", "t.yaml:2:5: rule has no 'name'");
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: x\n",
                  "t.yaml:2:5: rule has no 'on' (instance/kind)");
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: 5\n    on: alexa/intent\n",
                  "t.yaml:2:11: 'name' must be a non-empty string, got an integer");
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: x\n    on: alexa/intent\n    stop: 1\n",
                  "t.yaml:4:11: 'stop' must be true or false, got an integer");
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: x\n    on: alexa/intent\n    do: { call: x }\n",
                  "t.yaml:4:9: 'do' must be a list of steps, got a mapping");
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: x\n    on: alexa/intent\n    do: [ hello ]\n",
                  "t.yaml:4:11: a step must be a mapping with one of call, await, respond, "
                  "stop_await");
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: x\n    on: alexa/intent\n    respond: [ hi ]\n",
                  "t.yaml:4:14: 'respond' must be a mapping (speech, text, ...), got a list");
    EXPECT_ERRORS("t.yaml",
                  "rules:\n  - name: x\n    on: alexa/intent\n    do:\n      - respond: hi\n",
                  "t.yaml:5:18: 'respond' must be a mapping (speech, text, ...), got a string");
    /* templated values are nested at most WH_RULES_MAX_DEPTH levels */
    {
        wh_buf deep = {0};
        wh_buf_puts(&deep, "rules:\n  - name: x\n    on: alexa/intent\n    respond: { a: ");
        for (int i = 0; i < 70; i++) {
            wh_buf_puts(&deep, "[");
        }
        for (int i = 0; i < 70; i++) {
            wh_buf_puts(&deep, "]");
        }
        wh_buf_puts(&deep, " }\n");
        char want[100];
        /* the first '[' is at column 19 (depth 1); the 65th is the first too deep */
        snprintf(want, sizeof want, "t.yaml:4:%d: nested deeper than 64 levels", 19 + 64);
        EXPECT_ERRORS("t.yaml", deep.data, want);
        wh_buf_free(&deep);
    }
    /* an empty file and an empty list are fine */
    json_t *errors = json_array();
    wh_rules *r = load("e.yaml", "", errors);
    CHECK(r != NULL);
    CHECK_INT(wh_rules_count(r), 0);
    wh_rules_unref(&r);
    r = load("e.yaml", "rules: []\n", errors);
    CHECK(r != NULL);
    CHECK_INT(wh_rules_count(r), 0);
    wh_rules_unref(&r);
    CHECK_INT(json_array_size(errors), 0);
    json_decref(errors);
}

static void test_errors_on(void)
{
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: x\n    on: alexa\n",
                  "t.yaml:3:9: bad 'on' value 'alexa': expected instance/kind (either may be *)");
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: x\n    on: alexa/intent/x\n",
                  "t.yaml:3:9: bad 'on' value 'alexa/intent/x': expected instance/kind (either "
                  "may be *)");
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: x\n    on: \"a b/c\"\n",
                  "t.yaml:3:9: bad 'on' value 'a b/c': expected instance/kind (either may be *)");
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: x\n    on: [alexa]\n",
                  "t.yaml:3:9: 'on' must be a string like 'instance/kind', got a list");
    EXPECT_ERRORS("t.yaml", "rules:\n  - name: x\n    on: teem/intent\n",
                  "t.yaml:3:9: unknown instance 'teem' (known: alexa, team)");
    /* *, hub and known instances are fine */
    json_t *errors = json_array();
    wh_rules *r = load("ok.yaml",
                       "rules:\n"
                       "  - { name: a, on: \"*/*\" }\n"
                       "  - { name: b, on: hub/started }\n"
                       "  - { name: c, on: \"team/*\" }\n"
                       "  - { name: d, on: \"*/message\" }\n",
                       errors);
    CHECK(r != NULL);
    print_errors(errors);
    CHECK_INT(wh_rules_count(r), 4);
    wh_rules_unref(&r);
    json_decref(errors);
}

static void test_errors_steps(void)
{
    EXPECT_ERRORS("t.yaml",
                  "rules:\n"
                  "  - name: x\n"
                  "    on: alexa/intent\n"
                  "    do:\n"
                  "      - call: team.post_mesage\n"
                  "      - call: teem.post_message\n"
                  "      - call: post_message\n"
                  "      - call: team.post_message\n"
                  "        with: { chanel: \"#x\", text: hi }\n"
                  "      - call: team.post_message\n"
                  "      - call: team.post_message\n"
                  "        with: [ a ]\n"
                  "      - { call: team.post_message, respond: {} }\n"
                  "      - { with: {} }\n"
                  "      - call: team.post_message\n"
                  "        with: { channel: x }\n"
                  "        key: k\n"
                  "      - cal: team.post_message\n"
                  "        with: { text: \"{{x}\" }\n",
                  "t.yaml:5:15: unknown operation 'post_mesage' for instance 'team' (known: "
                  "post_message, thread_replies)",
                  "t.yaml:6:15: unknown instance 'teem' (known: alexa, team)",
                  "t.yaml:7:15: 'call' must be 'instance.operation', got 'post_message'",
                  "t.yaml:9:17: unknown argument 'chanel' for team.post_message (known: channel, "
                  "text, thread_ts)",
                  "t.yaml:9:9: missing required argument 'channel' for team.post_message",
                  "t.yaml:10:9: missing required argument 'channel' for team.post_message",
                  "t.yaml:12:15: 'with' must be a mapping of argument names to values, got a list",
                  "t.yaml:13:9: a step has both 'call' and 'respond'; use exactly one of call, "
                  "await, respond, stop_await",
                  "t.yaml:14:9: a step needs one of call, await, respond, stop_await",
                  "t.yaml:17:9: unknown key 'key' in a call step (known: call, with, as)",
                  "t.yaml:18:9: unknown step 'cal': a step needs one of call, await, respond, "
                  "stop_await",
                  "t.yaml:19:24: template: unclosed tag");
}

static void test_errors_await(void)
{
    EXPECT_ERRORS("t.yaml",
                  "rules:\n"
                  "  - name: x\n"
                  "    on: alexa/intent\n"
                  "    do:\n"
                  "      - await: team.post_message\n"
                  "        with: { channel: x }\n"
                  "        key: k\n"
                  "        every: 20s\n"
                  "        for: 30m\n"
                  "      - await: team.thread_replies\n"
                  "        with: { ts: x, cursor: y }\n"
                  "      - await: team.thread_replies\n"
                  "        key: [k]\n"
                  "        every: 500ms\n"
                  "        for: soon\n"
                  "        vars: [ x ]\n"
                  "        as: z\n"
                  "      - await: team.thread_replies\n"
                  "        key: k\n"
                  "        every: 1m\n"
                  "        for: 60\n"
                  "        collect: { on: teem/message, if: { a: { greater: 1 } }, x: 1 }\n"
                  "      - await: team.thread_replies\n"
                  "        key: k\n"
                  "        every: 10\n"
                  "        for: 1h\n"
                  "        collect: { if: { a: 1 } }\n"
                  "      - stop_await: 5\n",
                  "t.yaml:5:16: 'await' needs a poll operation; team.post_message is not one",
                  "t.yaml:11:24: unknown argument 'cursor' for team.thread_replies (known: "
                  "channel, ts)",
                  "t.yaml:10:9: await step has no 'key' (a template naming the replies)",
                  "t.yaml:10:9: await step has no 'every' (a duration like 20s)",
                  "t.yaml:10:9: await step has no 'for' (a duration like 20s)",
                  "t.yaml:17:9: unknown key 'as' in an await step (known: await, with, key, "
                  "every, for, vars, collect)",
                  "t.yaml:13:14: 'key' must be a string (a template), got a list",
                  "t.yaml:14:16: 'every' must be at least 1s",
                  "t.yaml:15:14: 'for' must be a duration like 20s, 30m or 2h",
                  "t.yaml:16:15: 'vars' must be a mapping, got a list",
                  "t.yaml:21:14: 'for' (1m) must be longer than 'every' (1m)",
                  "t.yaml:22:65: unknown key 'x' in collect (known: on, if)",
                  "t.yaml:22:24: unknown instance 'teem' (known: alexa, team)",
                  "t.yaml:22:49: unknown operator 'greater' for 'a' (valid: equals, not, in, "
                  "exists, contains, starts_with, ends_with, regex, gt, gte, lt, lte)",
                  "t.yaml:27:18: 'collect' has no 'on' (instance/kind)",
                  "t.yaml:28:21: 'stop_await' must be a string (a template), got an integer");
}

static void test_errors_misc(void)
{
    /* unknown keys, bools, criteria, load, as, duplicates, respond */
    EXPECT_ERRORS("t.yaml",
                  "rules:\n"
                  "  - name: a\n"
                  "    on: alexa/intent\n"
                  "    frobnicate: 1\n"
                  "    enabled: maybe\n"
                  "    if: { n: { gt: x } }\n"
                  "    load:\n"
                  "      r1: 5\n"
                  "      r2: { key: k, unread: yes, x: 1 }\n"
                  "      3rd: k\n"
                  "      r4: { unread: true }\n"
                  "      r5: { key: k, limit: 0 }\n"
                  "      r6: { key: k, limit: \"5\" }\n"
                  "    do:\n"
                  "      - call: team.post_message\n"
                  "        with: { channel: x }\n"
                  "        as: 9lives\n"
                  "      - call: team.post_message\n"
                  "        with: { channel: x }\n"
                  "        as: post\n"
                  "      - call: team.post_message\n"
                  "        with: { channel: x }\n"
                  "        as: post\n"
                  "  - name: a\n"
                  "    on: alexa/intent\n",
                  "t.yaml:4:5: unknown key 'frobnicate' in a rule (known: name, on, enabled, stop, "
                  "if, load, do, respond, debounce)",
                  "t.yaml:5:14: 'enabled' must be true or false, got a string",
                  "t.yaml:6:20: 'gt' for 'n' needs a number, got a string",
                  "t.yaml:8:11: load entry 'r1' must be a key template or a mapping {key, "
                  "unread, limit}, got an integer",
                  "t.yaml:9:34: unknown key 'x' in a load entry (known: key, unread, limit)",
                  "t.yaml:9:29: 'unread' must be true or false, got a string",
                  "t.yaml:10:7: load name '3rd' must be a letter or _, then letters, digits or _ "
                  "(at most 64)",
                  "t.yaml:11:11: load entry 'r4' has no 'key'",
                  "t.yaml:12:28: 'limit' must be a whole number from 1 to 10000, got 0",
                  "t.yaml:13:28: 'limit' must be a whole number from 1 to 10000, got a string",
                  "t.yaml:17:13: 'as' must be a name: a letter or _, then letters, digits or _ "
                  "(at most 64)",
                  "t.yaml:23:13: duplicate result name 'post' in this rule",
                  "t.yaml:24:5: duplicate rule name 'a' (first in t.yaml:2:5)");
}

static void test_debounce(void)
{
    EXPECT_ERRORS("d.yaml",
                  "rules:\n"
                  "  - name: a\n"
                  "    on: team/reply\n"
                  "    debounce: { key: \"{{#k}}\", for: 1ms, every: 2 }\n"
                  "  - name: b\n"
                  "    on: team/reply\n"
                  "    debounce: { for: 10s }\n"
                  "    respond: { text: x }\n",
                  "d.yaml:4:42: unknown key 'every' in debounce (known: key, for)",
                  "d.yaml:4:23: template: unclosed section 'k'",
                  "d.yaml:4:37: 'for' must be a duration from 100ms to 1d, like 10s",
                  "d.yaml:7:15: debounce has no 'key' (a template naming the burst)",
                  "d.yaml:7:15: a debounced rule cannot 'respond' (it runs after the caller left)");
    json_t *errors = json_array();
    const char *ok = "rules:\n  - name: n\n    on: team/reply\n"
                     "    debounce: { key: \"{{key}}\", for: 10s }\n";
    wh_rules *r = wh_rules_load_text("ok.yaml", ok, strlen(ok), NULL, errors);
    CHECK(r != NULL);
    if (r) {
        const wh_rule *rule = wh_rules_get(r, 0);
        CHECK_INT(wh_rule_debounce_ms(rule), 10000);
        json_t *ctx = json_pack("{s:s}", "key", "thread/ana");
        char *key = wh_rule_render_debounce_key(rule, ctx);
        CHECK_STR(key, "thread/ana");
        free(key);
        json_decref(ctx);
    }
    wh_rules_unref(&r);
    /* durations read alike everywhere: a number of seconds, units, parts in a row */
    const char *forms[][2] = {{"10", "10000"}, {"1m30s", "90000"}, {"\"1h 30m\"", "5400000"},
                              {"1.5m", "90000"}, {"2.5", "2500"}, {"250ms", "250"}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "rules:\n  - name: n\n    on: team/reply\n"
                 "    debounce: { key: k, for: %s }\n",
                 forms[i][0]);
        r = wh_rules_load_text("ok.yaml", text, strlen(text), NULL, errors);
        CHECK(r != NULL);
        CHECK_INT(r ? wh_rule_debounce_ms(wh_rules_get(r, 0)) : -1, atoll(forms[i][1]));
        wh_rules_unref(&r);
    }
    const char *bad[] = {"1x", "-5s", "s", "1m30", "inf", " 5s", "1h-2m", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(wh_parse_duration_ms(bad[i]), -1);
    }
    CHECK_INT(wh_parse_duration_ms("1d2h3m4s5ms"), 93784005);
    json_decref(errors);
}

static void test_errors_templates(void)
{
    /* position = the value's, plus the offset inside the string when on the same line */
    EXPECT_ERRORS(
        "t.yaml",
        "rules:\n"
        "  - name: x\n"
        "    on: alexa/intent\n"
        "    load: { r: \"a/{{b\" }\n"
        "    do:\n"
        "      - call: team.post_message\n"
        "        with: { channel: \"#t\", text: \"Hi {{#x}}\" }\n"
        "      - call: team.post_message\n"
        "        with:\n"
        "          channel: plain {{/y}}\n"
        "      - call: team.post_message\n"
        "        with: { channel: 'it''s {{>p}}' }\n"
        "      - call: team.post_message\n"
        "        with: { channel: \"\\u00e9 {{}}\" }\n"
        "      - call: team.post_message\n"
        "        with:\n"
        "          channel: |\n"
        "            line one\n"
        "            {{#open}}\n"
        "          text: [ \"ok\", { deep: \"\xc3\xa9 {{ a b }}\" } ]\n"
        "      - await: team.thread_replies\n"
        "        key: \"k/{{user.id\"\n"
        "        every: 20s\n"
        "        for: 1h\n"
        "        vars: { v: \"{{^x}}\" }\n"
        "        collect: { on: team/message, if: { ts: \"{{/z}}\" } }\n"
        "      - stop_await: \"{{!\"\n"
        "    respond: { speech: \"<speak>{{#a}}</speak>\" }\n",
        "t.yaml:4:19: template: unclosed tag", "t.yaml:7:42: template: unclosed section 'x'",
        "t.yaml:10:26: template: unexpected closing tag 'y'",
        /* the '' escape comes before the tag: the value's position */
        "t.yaml:12:26: template: partials are not supported",
        /* so does the \u escape */
        "t.yaml:14:26: template: empty tag",
        /* a list is no string, whatever templates it holds (checked before the values) */
        "t.yaml:20:17: argument 'text' for team.post_message must be a string, got "
        "[\"ok\",{\"deep\":\"\xc3\xa9 {{ a b }}\"}]",
        /* a block scalar: the value's position */
        "t.yaml:17:20: template: unclosed section 'open'",
        /* columns count characters: the 2-byte e-acute is one */
        "t.yaml:20:36: template: invalid tag name 'a b' (names contain no spaces)",
        "t.yaml:22:17: template: unclosed tag", "t.yaml:25:21: template: unclosed section 'x'",
        "t.yaml:26:49: template: unexpected closing tag 'z'",
        "t.yaml:27:22: template: unclosed tag", "t.yaml:28:32: template: unclosed section 'a'");
}

static void test_many_errors_two_files(void)
{
    char *dir = wh_test_tmpdir();
    char *a = wh_test_write(dir, "a.yaml",
                            "rules:\n"
                            "  - name: same\n"
                            "    on: alexa/intent\n"
                            "  - name: other\n"
                            "    on: nope/intent\n");
    char *b = wh_test_write(dir, "b.yaml",
                            "rules:\n"
                            "  - name: fine\n"
                            "    on: team/message\n"
                            "  - name: same\n"
                            "    on: alexa/intent\n"
                            "    do: [ { call: team.nope } ]\n");
    char *c = wh_test_write(dir, "c.yml", "rules: [\n");
    char *missing = NULL;
    if (asprintf(&missing, "%s/missing.yaml", dir) < 0) {
        abort();
    }
    const char *paths[] = {a, b, c, missing};
    json_t *errors = json_array();
    wh_rules *r = wh_rules_load_files(paths, 4, &schema, errors);
    CHECK(r == NULL);
    char want[6][1024];
    snprintf(want[0], sizeof want[0], "%s:5:9: unknown instance 'nope' (known: alexa, team)", a);
    snprintf(want[1], sizeof want[1], "%s:4:5: duplicate rule name 'same' (first in %s:2:5)", b, a);
    snprintf(want[2], sizeof want[2],
             "%s:6:19: unknown operation 'nope' for instance 'team' (known: post_message, "
             "thread_replies)",
             b);
    snprintf(want[3], sizeof want[3],
             "%s:2:1: did not find expected node content while parsing a "
             "flow node",
             c);
    snprintf(want[4], sizeof want[4], "%s: cannot read: No such file or directory", missing);
    int before = wh_test_failures;
    CHECK_INT(json_array_size(errors), 5);
    for (size_t i = 0; i < 5; i++) {
        CHECK_STR(json_string_value(json_array_get(errors, i)), want[i]);
    }
    if (wh_test_failures != before) {
        print_errors(errors);
    }
    json_decref(errors);

    /* the directory: missing, not a directory */
    errors = json_array();
    r = wh_rules_load_dir(missing, &schema, errors);
    CHECK(r == NULL);
    snprintf(want[0], sizeof want[0], "%s: no such directory", missing);
    CHECK_STR(json_string_value(json_array_get(errors, 0)), want[0]);
    r = wh_rules_load_dir(a, &schema, errors);
    CHECK(r == NULL);
    snprintf(want[0], sizeof want[0], "%s: not a directory", a);
    CHECK_STR(json_string_value(json_array_get(errors, 1)), want[0]);
    json_decref(errors);

    remove(a);
    remove(b);
    remove(c);
    remove(dir);
    free(a);
    free(b);
    free(c);
    free(missing);
    free(dir);
}

/* ------------------------------------------------------------------------ */
/* Order and index                                                           */

static int collect_names(void *ud, const wh_rule *rule)
{
    wh_buf *b = ud;
    wh_buf_printf(b, "%s%s", b->len ? " " : "", wh_rule_name(rule));
    return 0;
}

static void test_order_and_dir(void)
{
    char *dir = wh_test_tmpdir();
    char *files[6];
    files[0] = wh_test_write(dir, "b.yaml",
                             "rules:\n  - { name: b1, on: alexa/intent }\n"
                             "  - { name: b2, on: alexa/intent }\n");
    files[1] = wh_test_write(dir, "a.yaml",
                             "rules:\n  - { name: a1, on: alexa/intent }\n"
                             "  - { name: a2, on: alexa/intent }\n");
    files[2] =
        wh_test_write(dir, "c.json", "{\"rules\": [{\"name\": \"c1\", \"on\": \"alexa/intent\"}]}");
    files[3] = wh_test_write(dir, "ab.yml", "rules:\n  - { name: ab1, on: alexa/intent }\n");
    files[4] = wh_test_write(dir, "notes.txt", "not rules");
    files[5] = wh_test_write(dir, ".hidden.yaml", "broken: [");
    json_t *errors = json_array();
    wh_rules *r = wh_rules_load_dir(dir, &schema, errors);
    CHECK(r != NULL);
    print_errors(errors);
    CHECK_INT(wh_rules_files(r), 4);
    wh_buf b = {0};
    wh_rules_each_candidate(r, "alexa", "intent", collect_names, &b);
    CHECK_STR(b.data, "a1 a2 ab1 b1 b2 c1");
    wh_buf_free(&b);
    char want[1024];
    snprintf(want, sizeof want, "%s/c.json:1", dir);
    CHECK_STR(wh_rule_file(wh_rules_get(r, 5)), want);
    wh_rules_unref(&r);

    /* an empty directory is zero rules */
    for (size_t i = 0; i < 6; i++) {
        remove(files[i]);
        free(files[i]);
    }
    r = wh_rules_load_dir(dir, &schema, errors);
    CHECK(r != NULL);
    CHECK_INT(wh_rules_count(r), 0);
    CHECK_INT(wh_rules_files(r), 0);
    CHECK_INT(wh_rules_each_candidate(r, "alexa", "intent", collect_names, &b), 0);
    CHECK(b.len == 0);
    wh_rules_unref(&r);
    CHECK_INT(json_array_size(errors), 0);
    json_decref(errors);
    remove(dir);
    free(dir);
}

static int stop_at_second(void *ud, const wh_rule *rule)
{
    int *seen = ud;
    return ++*seen == 2 ? 42 : 0;
}

static void test_index(void)
{
    static const char text[] = "rules:\n"
                               "  - { name: any-any, on: \"*/*\" }\n"
                               "  - { name: exact, on: alexa/intent }\n"
                               "  - { name: off, on: alexa/intent, enabled: false }\n"
                               "  - { name: any-intent, on: \"*/intent\" }\n"
                               "  - { name: team-msg, on: team/message }\n"
                               "  - { name: alexa-any, on: \"alexa/*\" }\n"
                               "  - { name: exact2, on: alexa/intent, stop: true }\n"
                               "  - { name: off-any, on: \"*/*\", enabled: false }\n"
                               "  - { name: any-any2, on: \"*/*\" }\n";
    json_t *errors = json_array();
    wh_rules *r = wh_rules_load_text("i.yaml", text, strlen(text), NULL, errors);
    CHECK(r != NULL);
    print_errors(errors);
    json_decref(errors);
    wh_buf b = {0};
    wh_rules_each_candidate(r, "alexa", "intent", collect_names, &b);
    CHECK_STR(b.data, "any-any exact any-intent alexa-any exact2 any-any2");
    b.len = 0;
    wh_rules_each_candidate(r, "alexa", "launch", collect_names, &b);
    CHECK_STR(b.data, "any-any alexa-any any-any2");
    b.len = 0;
    wh_rules_each_candidate(r, "team", "message", collect_names, &b);
    CHECK_STR(b.data, "any-any team-msg any-any2");
    b.len = 0;
    wh_rules_each_candidate(r, "web", "intent", collect_names, &b);
    CHECK_STR(b.data, "any-any any-intent any-any2");
    b.len = 0;
    /* names spelled "*" do not show a rule twice */
    wh_rules_each_candidate(r, "*", "*", collect_names, &b);
    CHECK_STR(b.data, "any-any any-any2");
    wh_buf_free(&b);
    int seen = 0;
    CHECK_INT(wh_rules_each_candidate(r, "alexa", "intent", stop_at_second, &seen), 42);
    CHECK_INT(seen, 2);
    /* disabled rules are kept and validated, but never candidates */
    CHECK_INT(wh_rules_count(r), 9);
    CHECK_INT(wh_rule_enabled(wh_rules_get(r, 2)), 0);
    CHECK_INT(wh_rule_on_matches(wh_rules_get(r, 2), "alexa", "intent"), 1);
    CHECK_INT(wh_rule_on_matches(wh_rules_get(r, 4), "alexa", "intent"), 0);
    CHECK_INT(wh_rule_stop(wh_rules_get(r, 6)), 1);
    wh_rules_unref(&r);

    /* a disabled rule is still validated */
    EXPECT_ERRORS("t.yaml", "rules:\n  - { name: x, on: zz/intent, enabled: false }\n",
                  "t.yaml:2:20: unknown instance 'zz' (known: alexa, team)");
}

/* ------------------------------------------------------------------------ */
/* Context and rendering                                                     */

static void test_context(void)
{
    json_t *ctx = context("alexa", "intent", "{\"user\":{\"id\":\"u1\"},\"event\":\"shadowed\"}");
    CHECK_JSON(ctx,
               "{\"user\":{\"id\":\"u1\"},\"event\":{\"id\":\"0123456789abcdef0123456789abcdef\","
               "\"time\":\"2026-11-27T13:54:20.123Z\",\"source\":\"alexa\",\"kind\":\"intent\"}}");
    json_decref(ctx);
    ctx = context("web", "hook", "[1,2]");
    CHECK_JSON(ctx, "{\"data\":[1,2],\"event\":{\"id\":\"0123456789abcdef0123456789abcdef\","
                    "\"time\":\"2026-11-27T13:54:20.123Z\",\"source\":\"web\",\"kind\":\"hook\"}}");
    json_decref(ctx);
    ctx = context("web", "hook", "\"text\"");
    CHECK_STR(json_string_value(json_object_get(ctx, "data")), "text");
    json_decref(ctx);
    /* no data at all */
    json_t *env = json_pack("{s:s,s:s}", "source", "a", "kind", "b");
    ctx = wh_rules_context(env);
    CHECK_JSON(ctx, "{\"event\":{\"source\":\"a\",\"kind\":\"b\"}}");
    json_decref(ctx);
    json_decref(env);
}

static void test_render(void)
{
    static const char text[] =
        "rules:\n"
        "  - name: r\n"
        "    on: \"*/*\"\n"
        "    do:\n"
        "      - call: web.post\n"
        "        with:\n"
        "          n: \"{{count}}\"\n"
        "          obj: \"{{user}}\"\n"
        "          raw: \"{{{user.name}}}\"\n"
        "          text: \"Hi {{user.name}} ({{count}})\"\n"
        "          lit: 5\n"
        "          flag: true\n"
        "          none: null\n"
        "          plain: \"just text\"\n"
        "          arr: [ \"{{count}}\", x, { k: \"{{user.id}}\" } ]\n"
        "          missing: \"{{nope}}\"\n"
        "          missing_text: \"[{{nope}}]\"\n"
        "          ev: \"{{event.source}}/{{event.kind}}\"\n"
        "      - respond:\n"
        "          speech: \"<speak>About {{topic}}</speak>\"\n"
        "          reprompt: \"{{topic}}\"\n"
        "          text: \"About {{topic}}\"\n"
        "          card: { title: \"{{topic}}\", speech: \"  <speak>{{topic}}</speak>\" }\n"
        "          list: [ \"<speak>{{topic}}</speak>\" ]\n"
        "    respond:\n"
        "      speech: \"<speak>{{#items}}{{.}}, {{/items}}</speak>\"\n"
        "      text: \"<speak>{{topic}}</speak>\"\n";
    json_t *errors = json_array();
    wh_rules *r = wh_rules_load_text("r.yaml", text, strlen(text), NULL, errors);
    CHECK(r != NULL);
    print_errors(errors);
    json_decref(errors);
    if (!r) {
        return;
    }
    const wh_rule *rule = wh_rules_get(r, 0);
    json_t *ctx = context("web", "hook",
                          "{\"count\":3,\"user\":{\"id\":\"u1\",\"name\":\"Ana & Ben\"},"
                          "\"topic\":\"Q&A <today>\",\"items\":[\"a<b\",\"c\"]}");
    json_t *with = wh_step_render_with(wh_rule_step(rule, 0), ctx);
    CHECK_JSON(with,
               "{\"n\":3,\"obj\":{\"id\":\"u1\",\"name\":\"Ana & Ben\"},\"raw\":\"Ana & Ben\","
               "\"text\":\"Hi Ana & Ben (3)\",\"lit\":5,\"flag\":true,\"none\":null,"
               "\"plain\":\"just text\",\"arr\":[3,\"x\",{\"k\":\"u1\"}],\"missing\":null,"
               "\"missing_text\":\"[]\",\"ev\":\"web/hook\"}");
    /* a container taken from the context is a copy */
    CHECK(json_object_get(with, "obj") != json_object_get(ctx, "user"));
    json_object_set_new(json_object_get(with, "obj"), "added", json_true());
    CHECK(json_object_get(json_object_get(ctx, "user"), "added") == NULL);
    json_decref(with);

    json_t *resp = wh_step_render_respond(wh_rule_step(rule, 1), ctx);
    CHECK_JSON(resp, "{\"speech\":\"<speak>About Q&amp;A &lt;today&gt;</speak>\","
                     "\"reprompt\":\"Q&A <today>\",\"text\":\"About Q&A <today>\","
                     "\"card\":{\"title\":\"Q&A <today>\",\"speech\":\"  <speak>Q&amp;A "
                     "&lt;today&gt;</speak>\"},\"list\":[\"<speak>Q&A <today></speak>\"]}");
    json_decref(resp);
    resp = wh_rule_render_respond(rule, ctx);
    CHECK_JSON(resp, "{\"speech\":\"<speak>a&lt;b, c, </speak>\","
                     "\"text\":\"<speak>Q&A <today></speak>\"}");
    json_decref(resp);
    /* steps of other kinds have no respond */
    CHECK(wh_step_render_respond(wh_rule_step(rule, 0), ctx) == NULL);
    json_decref(ctx);
    wh_rules_unref(&r);
}

static int record_load(void *ud, const char *name, const char *key, int unread, long limit)
{
    wh_buf_printf(ud, "%s=%s:%d:%ld;", name, key, unread, limit);
    return 0;
}

static int stop_load(void *ud, const char *name, const char *key, int unread, long limit)
{
    (void)name;
    (void)key;
    (void)unread;
    (void)limit;
    ++*(int *)ud;
    return 7;
}

static void test_loads(void)
{
    json_t *errors = json_array();
    wh_rules *r = load("p.yaml", presentation, errors);
    CHECK(r != NULL);
    json_decref(errors);
    json_t *ctx = context("alexa", "intent", "{\"user\":{\"id\":\"u1\"}}");
    wh_buf b = {0};
    CHECK_INT(wh_rule_each_load(wh_rules_get(r, 1), ctx, record_load, &b), 0);
    CHECK_STR(b.data, "replies=presentation/u1:0:0;fresh=fresh/u1:1:5;");
    int n = 0;
    CHECK_INT(wh_rule_each_load(wh_rules_get(r, 1), ctx, stop_load, &n), 7);
    CHECK_INT(n, 1);
    /* a rule without loads calls nothing */
    b.len = 0;
    CHECK_INT(wh_rule_each_load(wh_rules_get(r, 0), ctx, record_load, &b), 0);
    CHECK(b.len == 0);
    wh_buf_free(&b);
    json_decref(ctx);
    wh_rules_unref(&r);
}

static void test_collect(void)
{
    static const char text[] =
        "rules:\n"
        "  - name: r\n"
        "    on: alexa/intent\n"
        "    do:\n"
        "      - await: team.thread_replies\n"
        "        key: k\n"
        "        every: 20s\n"
        "        for: 1h\n"
        "        collect: { on: team/message, if: { thread_ts: \"{{post.ts}}\", n: { gt: 2 } } }\n"
        "      - await: team.thread_replies\n"
        "        key: k\n"
        "        every: 20s\n"
        "        for: 1h\n"
        "        collect: { on: \"*/message\", if: { text: { regex: \"{{pattern}}\" } } }\n"
        "      - await: team.thread_replies\n"
        "        key: k\n"
        "        every: 20s\n"
        "        for: 1h\n"
        "        collect: { on: team/message }\n"
        "      - await: team.thread_replies\n"
        "        key: k\n"
        "        every: 20s\n"
        "        for: 1h\n";
    json_t *errors = json_array();
    wh_rules *r = load("c.yaml", text, errors);
    CHECK(r != NULL);
    print_errors(errors);
    json_decref(errors);
    if (!r) {
        return;
    }
    const wh_rule *rule = wh_rules_get(r, 0);
    json_t *ctx = context("alexa", "intent", "{\"post\":{\"ts\":\"123.4\"},\"pattern\":\"(\"}");
    json_t *hit = parse_json("{\"thread_ts\":\"123.4\",\"n\":3}");
    json_t *miss = parse_json("{\"thread_ts\":\"999\",\"n\":3}");
    json_t *literal = parse_json("{\"thread_ts\":\"{{post.ts}}\",\"n\":3}");
    wh_match *m = wh_step_render_collect(wh_rule_step(rule, 0), ctx);
    CHECK(m != NULL);
    CHECK_INT(wh_match_eval(m, hit), 1);
    CHECK_INT(wh_match_eval(m, miss), 0);
    CHECK_INT(wh_match_eval(m, literal), 0);
    wh_match_destroy(&m);
    /* a rendered regex that does not compile matches nothing */
    json_t *text_any = parse_json("{\"text\":\"(\"}");
    m = wh_step_render_collect(wh_rule_step(rule, 1), ctx);
    CHECK(m != NULL);
    CHECK_INT(wh_match_eval(m, text_any), 0);
    wh_match_destroy(&m);
    CHECK_STR(wh_step_collect_on(wh_rule_step(rule, 1)), "*/message");
    /* collect without `if` matches every collected event */
    m = wh_step_render_collect(wh_rule_step(rule, 2), ctx);
    CHECK(m != NULL);
    CHECK_INT(wh_match_eval(m, miss), 1);
    wh_match_destroy(&m);
    /* no collect: NULL */
    CHECK(wh_step_render_collect(wh_rule_step(rule, 3), ctx) == NULL);
    CHECK(wh_step_collect_on(wh_rule_step(rule, 3)) == NULL);
    json_decref(text_any);
    json_decref(hit);
    json_decref(miss);
    json_decref(literal);
    json_decref(ctx);
    wh_rules_unref(&r);
}

static void test_refcount(void)
{
    json_t *errors = json_array();
    wh_rules *r = load("p.yaml", presentation, errors);
    json_decref(errors);
    CHECK(r != NULL);
    wh_rules *r2 = wh_rules_ref(r);
    CHECK(r2 == r);
    wh_rules_unref(&r);
    CHECK(r == NULL);
    /* still alive through r2 (valgrind would report a use after free) */
    CHECK_INT(wh_rules_count(r2), 2);
    CHECK_STR(wh_rule_name(wh_rules_get(r2, 0)), "tell-team-about-presentation");
    wh_rules_unref(&r2);
    CHECK(r2 == NULL);
    wh_rules_unref(&r2); /* NULL is fine */
    wh_rules_unref(NULL);
    CHECK(wh_rules_ref(NULL) == NULL);
}

/* ------------------------------------------------------------------------ */
/* Dry run                                                                   */

static char *dry_run(const wh_rules *r, const char *inst, const char *kind, const char *data,
                     int *matched)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    json_t *d = parse_json(data);
    *matched = wh_send_dry_run(r, inst, kind, d, out);
    fclose(out);
    json_decref(d);
    return buf;
}

static void test_dry_run(void)
{
    json_t *errors = json_array();
    wh_rules *r = load("rules/presentation.yaml", presentation, errors);
    CHECK(r != NULL);
    json_decref(errors);
    int matched = -1;
    char *out = dry_run(r, "alexa", "intent",
                        "{\"intent\":{\"name\":\"GivePresentationIntent\",\"slots\":{\"topic\":"
                        "\"Q3\"}},\"user\":{\"id\":\"u1\",\"name\":\"Ana\"}}",
                        &matched);
    CHECK_INT(matched, 1);
    CHECK_STR(
        out, "rule tell-team-about-presentation (rules/presentation.yaml:2): matched\n"
             "  call team.post_message {\"channel\":\"#team\",\"text\":\"Ana is presenting: Q3\"}\n"
             "  await team.thread_replies key=presentation/u1 every=20s for=30m "
             "collect=team/message\n"
             "  respond {\"speech\":\"OK, I told the team.\"}\n"
             "  (results of earlier calls are not available in a dry run)\n"
             "rule read-back-replies (rules/presentation.yaml:20): not matched: intent.name: "
             "\"GivePresentationIntent\" is not equal to \"GetFeedbackIntent\"\n");
    free(out);

    out = dry_run(r, "alexa", "intent",
                  "{\"intent\":{\"name\":\"GetFeedbackIntent\",\"slots\":{\"topic\":\"Q&A\"}},"
                  "\"user\":{\"id\":\"u1\"}}",
                  &matched);
    CHECK_INT(matched, 1);
    CHECK_STR(out, "rule tell-team-about-presentation (rules/presentation.yaml:2): not matched: "
                   "intent.name: \"GetFeedbackIntent\" is not equal to \"GivePresentationIntent\"\n"
                   "rule read-back-replies (rules/presentation.yaml:20): matched\n"
                   "  load replies key=presentation/u1\n"
                   "  load fresh key=fresh/u1 unread limit=5\n"
                   "  respond {\"speech\":\"\"}\n"
                   "  stop_await presentation/u1\n"
                   "  respond {\"speech\":\"<speak>Topic Q&amp;A</speak>\",\"text\":\"Topic Q&A\","
                   "\"reprompt\":\"Q&A\",\"end_session\":false}\n"
                   "  stop: later rules are not tried\n");
    free(out);

    out = dry_run(r, "team", "message", "{}", &matched);
    CHECK_INT(matched, 0);
    CHECK_STR(out, "no rule has an on: that takes team/message (2 rules loaded)\n"
                   "no rule matched\n");
    free(out);
    CHECK_INT(wh_send_dry_run(r, "bad name", "x", NULL, stdout), WH_ERR_INVALID);
    wh_rules_unref(&r);

    /* stop ends the list; disabled rules are shown as such */
    static const char text[] = "rules:\n"
                               "  - { name: off, on: \"alexa/*\", enabled: false }\n"
                               "  - { name: first, on: \"*/intent\", stop: true }\n"
                               "  - { name: never, on: alexa/intent }\n";
    errors = json_array();
    r = load("s.yaml", text, errors);
    json_decref(errors);
    out = dry_run(r, "alexa", "intent", "[]", &matched);
    CHECK_INT(matched, 1);
    CHECK_STR(out, "rule off (s.yaml:2): disabled\n"
                   "rule first (s.yaml:3): matched\n"
                   "  stop: later rules are not tried\n");
    free(out);
    wh_rules_unref(&r);
}

/* ------------------------------------------------------------------------ */
/* Timing (printed, not asserted): 1,000 rules over 50 instances             */

static int bench_fn(void *ud, const wh_rule *rule)
{
    void **st = ud;
    const json_t *ctx = st[0];
    if (wh_rule_matches(rule, ctx)) {
        json_t *v = wh_step_render_with(wh_rule_step(rule, 0), ctx);
        ++*(long *)st[1];
        json_decref(v);
    }
    return 0;
}

static void test_timing(void)
{
    wh_buf text = {0};
    wh_buf_puts(&text, "rules:\n");
    for (int i = 0; i < 1000; i++) {
        wh_buf_printf(&text,
                      "  - name: r%d\n    on: inst%d/kind%d\n    if: { user.id: u%d }\n"
                      "    do: [ { call: out.send, with: { text: \"hello {{user.name}}\" } } ]\n",
                      i, i % 50, (i / 50) % 4, i % 100);
    }
    json_t *errors = json_array();
    wh_rules *r = wh_rules_load_text("bench.yaml", text.data, text.len, NULL, errors);
    wh_buf_free(&text);
    CHECK(r != NULL);
    print_errors(errors);
    json_decref(errors);
    if (!r) {
        return;
    }
    const char *n = getenv("WH_RULES_BENCH_EVENTS");
    long events = n ? atol(n) : 200000, matches = 0;
    json_t *envs[64];
    for (int i = 0; i < 64; i++) {
        char src[16], kind[16], data[80];
        snprintf(src, sizeof src, "inst%d", i % 50);
        snprintf(kind, sizeof kind, "kind%d", i % 4);
        snprintf(data, sizeof data, "{\"user\":{\"id\":\"u%d\",\"name\":\"Ana\"},\"n\":%d}",
                 i % 100, i);
        envs[i] = envelope(src, kind, data);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long e = 0; e < events; e++) {
        const json_t *env = envs[e & 63];
        json_t *ctx = wh_rules_context(env);
        void *st[2] = {ctx, &matches};
        wh_rules_each_candidate(r, json_string_value(json_object_get(env, "source")),
                                json_string_value(json_object_get(env, "kind")), bench_fn, st);
        json_decref(ctx);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("timing: %ld events, %ld matches, %.3f s, %.0f events/s (1000 rules, 50 instances)\n",
           events, matches, secs, secs > 0 ? (double)events / secs : 0.0);
    CHECK(matches > 0);
    for (int i = 0; i < 64; i++) {
        json_decref(envs[i]);
    }
    wh_rules_unref(&r);
}

/* An SSML template's own text must be well-formed XML: values are escaped at render, the
   text around them is the rule's, and Alexa and Google refuse a response that does not parse. */
static void test_ssml_text(void)
{
#define SSML_RULE(speech) "rules:\n  - name: x\n    on: alexa/i\n    respond: { speech: \"" speech "\" }\n"
    const char *pre = "t.yaml:4:24: 'speech' is SSML (it starts with <speak>) and must be "
                      "well-formed XML: ";
    char want[400];
    EXPECT_ERRORS("t.yaml",
                  "rules:\n  - name: x\n    on: alexa/i\n    do:\n"
                  "      - call: team.post_message\n        with: { channel: null, text: t }\n",
                  "t.yaml:6:26: argument 'channel' for team.post_message is required: null "
                  "leaves it out");
    EXPECT_ERRORS("t.yaml",
                  "rules:\n  - name: x\n    on: alexa/i\n    do:\n"
                  "      - call: team.post_message\n        with: { channel: c, text: t }\n"
                  "        as: event\n",
                  "t.yaml:7:13: 'as: event' would hide the event's own id, time, source and kind: "
                  "pick another name");
    snprintf(want, sizeof want, "%s%s", pre,
             "'&' at character 9 does not start an entity: write &amp; for the character");
    EXPECT_ERRORS("t.yaml", SSML_RULE("<speak>Q&A {{who}}</speak>"), want);
    snprintf(want, sizeof want, "%s%s", pre,
             "'<' at character 10 does not start a tag: write &lt; for the character");
    EXPECT_ERRORS("t.yaml", SSML_RULE("<speak>1 < 2</speak>"), want);
    snprintf(want, sizeof want, "%s%s", pre, "</speak> at character 17 comes while <D> is open");
    EXPECT_ERRORS("t.yaml", SSML_RULE("<speak>R<D> team</speak>"), want);
    snprintf(want, sizeof want, "%s%s", pre, "<speak> is never closed");
    EXPECT_ERRORS("t.yaml", SSML_RULE("<speak>hi"), want);
    snprintf(want, sizeof want, "%s%s", pre, "the tag at character 11 is never closed with '>'");
    EXPECT_ERRORS("t.yaml", SSML_RULE("<speak>hi <break"), want);
    snprintf(want, sizeof want, "%s%s", pre, "text after the closing </speak> (SSML has one root)");
    EXPECT_ERRORS("t.yaml", SSML_RULE("<speak>a</speak>trailing"), want);
    snprintf(want, sizeof want, "%s%s", pre,
             "another element after the closing </speak> (SSML has one root)");
    EXPECT_ERRORS("t.yaml", SSML_RULE("<speak>x</speak><speak>y</speak>"), want);
    snprintf(want, sizeof want, "%s%s", pre,
             "attribute 'a' at character 8 needs a quoted value");
    EXPECT_ERRORS("t.yaml", SSML_RULE("<speak><p a=1>x</p></speak>"), want);
    snprintf(want, sizeof want, "%s%s", pre,
             "the tag at character 8 repeats the attribute 'a'");
    EXPECT_ERRORS("t.yaml", SSML_RULE("<speak><p a='1' a='2'>x</p></speak>"), want);
    snprintf(want, sizeof want, "%s%s", pre,
             "'<' in attribute 'x' at character 8: write &lt; for the character");
    EXPECT_ERRORS("t.yaml", SSML_RULE("<speak><p x='a<b'>x</p></speak>"), want);
    /* what XML itself refuses: references to no character, "]]>", "--" in a comment,
       control characters, declarations; and templates where nothing is escaped */
    static const char *const more[][2] = {
        {"<speak>&#0;</speak>", "'&' at character 8 does not start an entity: write &amp; for "
                                "the character"},
        {"<speak>&#xD800;</speak>", "'&' at character 8 does not start an entity: write "
                                    "&amp; for the character"},
        {"<speak>&#1114112;</speak>", "'&' at character 8 does not start an entity: write "
                                      "&amp; for the character"},
        {"<speak>a ]]> b</speak>", "\"]]>\" at character 10: write ]]&gt;"},
        {"<speak><!-- a -- b --></speak>", "the comment at character 8 holds \"--\""},
        {"<speak><!-- {{x}} --></speak>",
         "the comment at character 8 holds a template tag (what it inserts there is not "
         "escaped)"},
        {"<speak><!DOCTYPE x></speak>", "a <!…> declaration at character 8 is not SSML"},
        {"<speak><?pi x?></speak>", "a processing instruction at character 8 is not SSML"},
        {"<speak>a\\u0001</speak>", "a control character (0x01) at character 9"},
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "rules:\n  - name: x\n    on: alexa/i\n    respond: { speech: \"%s\" }\n",
                 more[i][0]);
        snprintf(want, sizeof want, "%s%s", pre, more[i][1]);
        EXPECT_ERRORS("t.yaml", text, want);
    }
    /* entities, character references, attributes holding tags, empty tags, comments, and
       tags inside sections (whose nesting depends on the data: not checked) are fine */
    const char *fine[] = {
        SSML_RULE("<speak>Fine &amp; &lt;&gt;&quot;&apos; &#233; &#x41; {{name}} {{{raw}}} "
                  "<break time='1s'/> <emphasis level=\\\"strong\\\">{{x}}</emphasis> "
                  "<audio src=\\\"{{url}}?a=1&amp;b=2\\\" /><!-- a > b --></speak>"),
        SSML_RULE("<speak>{{#a}}<emphasis>{{/a}}x{{#a}}</emphasis>{{/a}}</speak>"),
        SSML_RULE("  <speak><prosody rate='slow' pitch = \\\"+5%\\\">{{t}}</prosody> "
                  "<say-as interpret-as='digits' >{{n}}</say-as></speak>  "),
        SSML_RULE("Q&A <not SSML>: plain text is sent as it is"),
        NULL};
    for (int i = 0; fine[i]; i++) {
        json_t *errors = json_array();
        wh_rules *r = load("ok.yaml", fine[i], errors);
        CHECK(r != NULL);
        print_errors(errors);
        wh_rules_unref(&r);
        json_decref(errors);
    }
#undef SSML_RULE
}

int main(void)
{
    test_valid_file();
    test_errors_shapes();
    test_errors_on();
    test_errors_steps();
    test_errors_await();
    test_errors_misc();
    test_debounce();
    test_errors_templates();
    test_ssml_text();
    test_many_errors_two_files();
    test_order_and_dir();
    test_index();
    test_context();
    test_render();
    test_loads();
    test_collect();
    test_refcount();
    test_dry_run();
    test_timing();
    return wh_test_done("rules");
}
