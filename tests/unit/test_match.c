/* test_match.c — hub/match.c: paths, operators, mismatches, combinators, explain, errors. */
#include "match.h"
#include "testlib.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Compile the `if:` of a YAML text; the doc is returned in *doc for positions. */
static wh_match *compile_yaml(const char *yaml, wh_doc **doc, json_t *errs)
{
    *doc = wh_doc_parse("t.yaml", yaml, strlen(yaml), errs);
    if (!*doc) {
        return NULL;
    }
    return wh_match_compile(*doc, "/if", json_object_get(wh_doc_root(*doc), "if"), errs);
}

static json_t *js(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v) {
        fprintf(stderr, "bad test JSON: %s: %s\n", text, e.text);
        exit(2);
    }
    return v;
}

/* Evaluate criteria given as flow YAML against ctx; -1 when it does not compile. */
static int eval_yaml(const char *criteria, const json_t *ctx)
{
    char text[1024];
    snprintf(text, sizeof text, "if: %s\n", criteria);
    json_t *errs = json_array();
    wh_doc *d = NULL;
    wh_match *m = compile_yaml(text, &d, errs);
    int r = -1;
    if (m) {
        r = wh_match_eval(m, ctx);
        char why[256];
        /* explain agrees with eval, and says something exactly when false */
        CHECK_INT(wh_match_explain(m, ctx, why, sizeof why), r);
        CHECK_INT(why[0] != '\0', !r);
    } else {
        char *dump = json_dumps(errs, 0);
        fprintf(stderr, "criteria %s: %s\n", criteria, dump);
        free(dump);
    }
    wh_match_destroy(&m);
    wh_doc_destroy(&d);
    json_decref(errs);
    return r;
}

static const char *ctx_text =
    "{\"s\": \"hello world\", \"n\": 42, \"r\": 2.5, \"b\": true, \"z\": null,"
    " \"o\": {\"k\": \"v\"}, \"a\": [1, \"x\", {\"k\": \"v\"}], \"e\": \"\","
    " \"f\": false, \"big\": 9007199254740993}";

static void test_paths(void)
{
    json_t *root = js("{\"a\": {\"b\": [{\"c\": 1}, {\"0\": \"zero\"}]}, \"x.y\": 2,"
                      " \"arr\": [[1, 2]], \"m\": {\"7\": \"seven\"}}");
    static const struct {
        const char *path;
        const char *want; /* compact JSON or NULL for missing */
    } cases[] = {
        {"a.b.0.c", "1"},
        {"a.b.1.0", "\"zero\""},
        {"a.b.2", NULL},
        {"a.b.-1", NULL},
        {"arr.0.1", "2"},
        {"m.7", "\"seven\""},
        {"a..b", NULL},
        {"a.", NULL},
        {".a", NULL},
        {"x.y", NULL},
        {"nope", NULL},
        {"a.b.0.c.d", NULL},
        {"arr.99999999999999999999", NULL},
        {"arr.00", "[1,2]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const json_t *v = wh_json_path(root, cases[i].path);
        wh_path p;
        int rc = wh_path_parse(&p, cases[i].path);
        const json_t *v2 = rc == WH_OK ? wh_path_get(&p, root) : NULL;
        CHECK(v == v2);
        char *got = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (cases[i].want) {
            CHECK_STR(got, cases[i].want);
        } else if (v) {
            fprintf(stderr, "path %s: expected missing, got %s\n", cases[i].path, got);
            CHECK(v == NULL);
        }
        free(got);
        wh_path_free(&p);
    }
    CHECK(wh_json_path(root, "") == root);
    CHECK(wh_json_path(NULL, "a") == NULL);
    CHECK(wh_json_path(root, NULL) == NULL);

    wh_path p;
    CHECK_INT(wh_path_parse(&p, "items.12.id"), WH_OK);
    CHECK_INT(p.n, 3);
    CHECK_STR(p.parts[0], "items");
    CHECK_INT(p.index[0], -1);
    CHECK_INT(p.index[1], 12);
    CHECK_STR(p.parts[2], "id");
    wh_path_free(&p);
    CHECK_INT(p.n, 0);
    wh_path_free(&p);
    CHECK_INT(wh_path_parse(&p, "a..b"), WH_ERR_INVALID);
    CHECK_INT(p.n, 0);
    CHECK(p.parts == NULL);
    CHECK_INT(wh_path_parse(&p, "a."), WH_ERR_INVALID);
    CHECK_INT(wh_path_parse(&p, ""), WH_OK);
    CHECK_INT(p.n, 0);
    CHECK(wh_path_get(&p, root) == root);
    wh_path_free(&p);
    CHECK(wh_path_get(NULL, root) == NULL);
    json_decref(root);
}

static void test_equal_num(void)
{
    static const struct {
        const char *a, *b;
        int eq;
    } cases[] = {
        {"1", "1.0", 1},
        {"1", "1", 1},
        {"1", "2", 0},
        {"0.5", "0.5", 1},
        {"[1, {\"a\": 2.0}]", "[1.0, {\"a\": 2}]", 1},
        {"\"1\"", "1", 0},
        {"true", "1", 0},
        {"true", "true", 1},
        {"true", "false", 0},
        {"null", "null", 1},
        {"null", "0", 0},
        {"{\"a\": 1}", "{\"a\": 1, \"b\": 2}", 0},
        {"{\"a\": 1, \"b\": [1]}", "{\"b\": [1.0], \"a\": 1}", 1},
        {"{\"a\": 1}", "{\"b\": 1}", 0},
        {"[1, 2]", "[2, 1]", 0},
        {"[]", "{}", 0},
        {"\"a\\u0000b\"", "\"a\\u0000c\"", 0},
        {"\"a\\u0000b\"", "\"a\\u0000b\"", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *a = js(cases[i].a), *b = js(cases[i].b);
        if (wh_json_equal_num(a, b) != cases[i].eq || wh_json_equal_num(b, a) != cases[i].eq) {
            fprintf(stderr, "equal_num(%s, %s)\n", cases[i].a, cases[i].b);
        }
        CHECK_INT(wh_json_equal_num(a, b), cases[i].eq);
        CHECK_INT(wh_json_equal_num(b, a), cases[i].eq);
        json_decref(a);
        json_decref(b);
    }
    json_t *one = json_integer(1);
    CHECK_INT(wh_json_equal_num(NULL, NULL), 1);
    CHECK_INT(wh_json_equal_num(one, NULL), 0);
    CHECK_INT(wh_json_equal_num(NULL, one), 0);
    json_decref(one);
}

/* Each operator against each kind of value: s(tring) n(integer) r(eal) b(ool)
   z (null) o(bject) a(rray) m(issing). The expectation string has one 0/1 per kind. */
static void test_operator_matrix(void)
{
    static const char *const keys[] = {"s", "n", "r", "b", "z", "o", "a", "m"};
    static const struct {
        const char *op, *arg, *want;
    } rows[] = {
        {"equals", "hello world", "10000000"},
        {"equals", "42", "01000000"},
        {"equals", "42.0", "01000000"},
        {"equals", "2.5", "00100000"},
        {"equals", "true", "00010000"},
        {"equals", "null", "00001000"},
        {"equals", "{k: v}", "00000100"},
        {"equals", "[1, x, {k: v}]", "00000010"},
        {"equals", "'42'", "00000000"},
        {"not", "hello world", "01111111"},
        {"not", "42", "10111111"},
        {"not", "null", "11110111"},
        {"in", "['hello world', 42, null]", "11001000"},
        {"in", "[2.5, {k: v}]", "00100100"},
        {"in", "[]", "00000000"},
        {"exists", "true", "11110110"},
        {"exists", "false", "00001001"},
        {"contains", "o", "10000000"},
        {"contains", "x", "00000010"},
        {"contains", "1.0", "00000010"},
        {"contains", "{k: v}", "00000010"},
        {"contains", "''", "10000000"},
        {"contains", "k", "00000000"},
        {"starts_with", "hell", "10000000"},
        {"starts_with", "world", "00000000"},
        {"starts_with", "''", "10000000"},
        {"ends_with", "rld", "10000000"},
        {"ends_with", "hello", "00000000"},
        {"ends_with", "'a very long suffix, longer than the value'", "00000000"},
        {"regex", "'l+o\\s'", "10000000"},
        {"regex", "'^world'", "00000000"},
        {"regex", "'4'", "00000000"},
        {"regex", "'.*'", "10000000"},
        {"gt", "2", "01100000"},
        {"gt", "42", "00000000"},
        {"gt", "2.4", "01100000"},
        {"gte", "42", "01000000"},
        {"gte", "2.5", "01100000"},
        {"lt", "42", "00100000"},
        {"lt", "43", "01100000"},
        {"lte", "42", "01100000"},
        {"lte", "2", "00000000"},
        {"gt", "-1", "01100000"},
    };
    json_t *ctx = js(ctx_text);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char got[9] = {0};
        for (size_t k = 0; k < 8; k++) {
            char crit[256];
            snprintf(crit, sizeof crit, "{%s: {%s: %s}}", keys[k], rows[i].op, rows[i].arg);
            int r = eval_yaml(crit, ctx);
            got[k] = r == 1 ? '1' : r == 0 ? '0' : '?';
        }
        if (strcmp(got, rows[i].want) != 0) {
            fprintf(stderr, "%s: %s\n", rows[i].op, rows[i].arg);
        }
        CHECK_STR(got, rows[i].want);
    }
    json_decref(ctx);
}

static void test_shorthand_and_paths(void)
{
    json_t *ctx = js(ctx_text);
    static const struct {
        const char *crit;
        int want;
    } cases[] = {
        {"{s: hello world}", 1},
        {"{s: hello}", 0},
        {"{n: 42}", 1},
        {"{n: 42.0}", 1},
        {"{n: '42'}", 0},
        {"{b: true}", 1},
        {"{b: 1}", 0},
        {"{f: false}", 1},
        {"{z: null}", 1},
        {"{z: ~}", 1},
        {"{m: null}", 0},
        {"{a: [1, x, {k: v}]}", 1},
        {"{a: [1.0, x, {k: v}]}", 1},
        {"{a: [1, x]}", 0},
        {"{e: ''}", 1},
        {"{e: {exists: true}}", 1},
        {"{o.k: v}", 1},
        {"{a.2.k: v}", 1},
        {"{a.0: 1}", 1},
        {"{a.1: x}", 1},
        {"{a.5: 1}", 0},
        {"{a.5: {exists: false}}", 1},
        {"{a.5: {not: 1}}", 1},
        {"{s.0: h}", 0},
        {"{n: {gte: 18, lt: 65}}", 1},
        {"{n: {gte: 18, lt: 40}}", 0},
        {"{n: {gt: 41.5, lte: 42.0}}", 1},
        {"{big: {gt: 9007199254740992}}", 1},
        {"{s: hello world, n: 42, b: true}", 1},
        {"{s: hello world, n: 41}", 0},
        {"{s: {starts_with: Dr, ends_with: x}}", 0},
        {"{s: {starts_with: he, ends_with: ld, not: hello}}", 1},
        {"{s: {regex: '(?i)HELLO'}}", 1},
        {"{s: {regex: 'h.llo w'}}", 1},
        {"{}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = eval_yaml(cases[i].crit, ctx);
        if (r != cases[i].want) {
            fprintf(stderr, "criteria %s\n", cases[i].crit);
        }
        CHECK_INT(r, cases[i].want);
    }
    json_decref(ctx);
}

static void test_combinators(void)
{
    json_t *ctx = js(ctx_text);
    static const struct {
        const char *crit;
        int want;
    } cases[] = {
        {"{any: [{n: 1}, {n: 42}]}", 1},
        {"{any: [{n: 1}, {n: 2}]}", 0},
        {"{all: [{n: 42}, {s: {contains: world}}]}", 1},
        {"{all: [{n: 42}, {s: {contains: mars}}]}", 0},
        {"{none: [{n: 1}, {b: false}]}", 1},
        {"{none: [{n: 1}, {b: true}]}", 0},
        {"{none: [{m: 1}]}", 1},
        {"{any: []}", 0},
        {"{all: []}", 1},
        {"{none: []}", 1},
        {"{any: [{n: 1}, {all: [{s: {starts_with: he}}, {none: [{b: false}]}]}]}", 1},
        {"{any: [{n: 1}, {all: [{s: {starts_with: he}}, {none: [{b: true}]}]}]}", 0},
        {"{n: 42, any: [{z: null}, {m: 1}], none: [{a.0: 2}]}", 1},
        {"{all: [{any: [{all: [{none: [{n: 0}]}]}]}]}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = eval_yaml(cases[i].crit, ctx);
        if (r != cases[i].want) {
            fprintf(stderr, "criteria %s\n", cases[i].crit);
        }
        CHECK_INT(r, cases[i].want);
    }
    json_decref(ctx);
}

static void check_why(const char *criteria, const char *ctx_json, const char *want)
{
    char text[1024];
    snprintf(text, sizeof text, "if: %s\n", criteria);
    json_t *errs = json_array();
    wh_doc *d = NULL;
    wh_match *m = compile_yaml(text, &d, errs);
    CHECK(m != NULL);
    json_t *ctx = js(ctx_json);
    char why[512];
    int r = wh_match_explain(m, ctx, why, sizeof why);
    CHECK_INT(r, want[0] == '\0');
    CHECK_STR(why, want);
    json_decref(ctx);
    wh_match_destroy(&m);
    wh_doc_destroy(&d);
    json_decref(errs);
}

static void test_explain(void)
{
    const char *rule = "{intent.name: GivePresentationIntent, intent.slots.topic: {exists: true}}";
    check_why(rule, "{\"intent\": {\"name\": \"GetFeedbackIntent\"}}",
              "intent.name: \"GetFeedbackIntent\" is not equal to \"GivePresentationIntent\"");
    check_why(rule, "{\"intent\": {\"name\": \"GivePresentationIntent\", \"slots\": {}}}",
              "intent.slots.topic: missing (exists: true)");
    check_why(rule,
              "{\"intent\": {\"name\": \"GivePresentationIntent\", \"slots\": {\"topic\": null}}}",
              "intent.slots.topic: null (exists: true)");
    check_why(
        rule,
        "{\"intent\": {\"name\": \"GivePresentationIntent\", \"slots\": {\"topic\": \"Q3\"}}}", "");
    check_why(rule, "{}", "intent.name: missing (equals: \"GivePresentationIntent\")");
    check_why("{x: {exists: false}}", "{\"x\": [1, 2]}", "x: [1,2] is present (exists: false)");
    check_why("{x: {not: 3}}", "{\"x\": 3.0}", "x: 3.0 is excluded by not: 3");
    check_why("{x: {in: [a, b]}}", "{\"x\": \"c\"}", "x: \"c\" is not in [\"a\",\"b\"]");
    check_why("{x: {contains: u}}", "{\"x\": \"abc\"}", "x: \"abc\" does not contain \"u\"");
    check_why("{x: {starts_with: Dr}}", "{\"x\": 5}", "x: 5 does not start with \"Dr\"");
    check_why("{x: {ends_with: x}}", "{\"x\": \"ab\"}", "x: \"ab\" does not end with \"x\"");
    check_why("{x: {regex: '^a$'}}", "{\"x\": \"ab\"}", "x: \"ab\" does not match regex \"^a$\"");
    check_why("{x: {gt: 5}}", "{\"x\": \"9\"}", "x: \"9\" is not greater than 5");
    check_why("{x: {gte: 5}}", "{\"x\": 4}", "x: 4 is not greater than or equal to 5");
    check_why("{x: {lt: 5}}", "{\"x\": 5}", "x: 5 is not less than 5");
    check_why("{x: {lte: 5}}", "{\"x\": 5.5}", "x: 5.5 is not less than or equal to 5");
    check_why("{x: {gt: 5}}", "{}", "x: missing (gt: 5)");
    check_why("{all: [{a: 1}, {b: 2}]}", "{\"a\": 1, \"b\": 3}", "all[1]: b: 3 is not equal to 2");
    check_why("{any: [{a: 1}, {b: {exists: true}}]}", "{\"a\": 2}",
              "any: no alternative matched: [0] a: 2 is not equal to 1; [1] b: missing (exists: "
              "true)");
    check_why("{none: [{a: 1}, {a: 2}]}", "{\"a\": 2}", "none: alternative [1] matched");
    check_why("{all: [{none: [{a: 2}]}]}", "{\"a\": 2}", "all[0]: none: alternative [0] matched");

    /* Long values are cut; the buffer bound is honoured; why may be NULL. */
    json_t *errs = json_array();
    wh_doc *d = NULL;
    wh_match *m = compile_yaml("if: {x: short}\n", &d, errs);
    json_t *ctx = json_pack("{s:s}", "x",
                            "0123456789012345678901234567890123456789012345678901"
                            "2345678901234567890123456789012345678901234567890123456789");
    char why[512];
    CHECK_INT(wh_match_explain(m, ctx, why, sizeof why), 0);
    CHECK_STR(why, "x: \"012345678901234567890123456789012345678901234567890123456789012345678901"
                   "2345678... is not equal to \"short\"");
    char small[10];
    memset(small, 'Z', sizeof small);
    CHECK_INT(wh_match_explain(m, ctx, small, sizeof small), 0);
    CHECK_STR(small, "x: \"01234");
    CHECK_INT(wh_match_explain(m, ctx, NULL, 0), 0);
    CHECK_INT(wh_match_explain(m, ctx, why, 0), 0);
    CHECK_INT(wh_match_explain(NULL, ctx, why, sizeof why), 0);
    CHECK_STR(why, "no criteria");
    /* Prefixing a nested explanation into a tiny buffer stays in bounds. */
    wh_match_destroy(&m);
    wh_doc_destroy(&d);
    m = compile_yaml("if: {all: [{all: [{x: 1}]}]}\n", &d, errs);
    char tiny[6];
    CHECK_INT(wh_match_explain(m, ctx, tiny, sizeof tiny), 0);
    CHECK_STR(tiny, "all[0");
    json_decref(ctx);
    wh_match_destroy(&m);
    wh_doc_destroy(&d);
    json_decref(errs);
}

static void test_compile_errors(void)
{
    const char *text = "if:\n"                                 /* 1 */
                       "  user.age: { greater: 18, gte: x }\n" /* 2 */
                       "  text: { regex: \"(unclosed\" }\n"    /* 3 */
                       "  channel: { in: \"#a\" }\n"           /* 4 */
                       "  topic: { exists: yes }\n"            /* 5 */
                       "  any: nope\n"                         /* 6 */
                       "  all:\n"                              /* 7 */
                       "    - 3\n"                             /* 8 */
                       "    - { a: { lt: [1] } }\n"            /* 9 */
                       "  name: { starts_with: 5 }\n"          /* 10 */
                       "  bad..path: 1\n"                      /* 11 */
                       "  empty: {}\n"                         /* 12 */
                       "  ok: { gt: 1, any: [] }\n"            /* 13 */
                       "  '': 1\n";                            /* 14 */
    static const char *const want[] = {
        "t.yaml:2:15: unknown operator 'greater' for 'user.age' (valid: equals, not, in, exists, "
        "contains, starts_with, ends_with, regex, gt, gte, lt, lte)",
        "t.yaml:2:33: 'gte' for 'user.age' needs a number, got a string",
        "t.yaml:3:18: invalid regex for 'text' at offset 9: missing closing parenthesis",
        "t.yaml:4:18: 'in' for 'channel' needs a list, got a string",
        "t.yaml:5:20: 'exists' for 'topic' needs true or false, got a string",
        "t.yaml:6:3: 'any' needs a list of criteria objects, got a string",
        "t.yaml:8:7: 'all' item 0 must be a criteria object (path: condition), got an integer",
        "t.yaml:9:18: 'lt' for 'a' needs a number, got a list",
        "t.yaml:10:24: 'starts_with' for 'name' needs a string, got an integer",
        "t.yaml:11:3: invalid path 'bad..path': components separated by '.' must not be empty",
        "t.yaml:12:10: 'empty' has no operators (valid: equals, not, in, exists, contains, "
        "starts_with, ends_with, regex, gt, gte, lt, lte; use equals: {} to compare with an "
        "empty object)",
        "t.yaml:13:16: unknown operator 'any' for 'ok' (valid: equals, not, in, exists, contains, "
        "starts_with, ends_with, regex, gt, gte, lt, lte)",
        "t.yaml:14:3: invalid path '': components separated by '.' must not be empty",
    };
    json_t *errs = json_array();
    wh_doc *d = NULL;
    wh_match *m = compile_yaml(text, &d, errs);
    CHECK(d != NULL);
    CHECK(m == NULL);
    size_t n = sizeof want / sizeof want[0];
    if (json_array_size(errs) != n) {
        char *dump = json_dumps(errs, JSON_INDENT(1));
        fprintf(stderr, "got %s\n", dump);
        free(dump);
    }
    CHECK_INT(json_array_size(errs), n);
    for (size_t i = 0; i < n; i++) {
        CHECK_STR(json_string_value(json_array_get(errs, i)), want[i]);
    }
    wh_doc_destroy(&d);
    json_decref(errs);

    /* Criteria that are not an object, positioned at the value. */
    errs = json_array();
    m = compile_yaml("if: just a string\n", &d, errs);
    CHECK(m == NULL);
    CHECK_INT(json_array_size(errs), 1);
    CHECK_STR(json_string_value(json_array_get(errs, 0)),
              "t.yaml:1:5: criteria must be an object of path: condition, got a string");
    wh_doc_destroy(&d);
    json_decref(errs);

    /* Without a doc. */
    errs = json_array();
    json_t *crit = js("{\"x\": {\"gt\": \"a\"}, \"y\": {\"regex\": \"[\"}}");
    m = wh_match_compile(NULL, NULL, crit, errs);
    CHECK(m == NULL);
    CHECK_INT(json_array_size(errs), 2);
    CHECK_STR(json_string_value(json_array_get(errs, 0)),
              "<criteria>:0:0: 'gt' for 'x' needs a number, got a string");
    CHECK_STR(json_string_value(json_array_get(errs, 1)),
              "<criteria>:0:0: invalid regex for 'y' at offset 1: missing terminating ] for "
              "character class");
    /* errors may be NULL */
    CHECK(wh_match_compile(NULL, NULL, crit, NULL) == NULL);
    json_decref(crit);
    json_decref(errs);

    /* Nesting is bounded. */
    errs = json_array();
    json_t *deep = json_object();
    json_t *cur = deep;
    for (int i = 0; i < WH_MATCH_MAX_DEPTH + 5; i++) {
        json_t *inner = json_object();
        json_object_set_new(cur, "all", json_pack("[o]", inner));
        cur = inner;
    }
    json_object_set_new(cur, "x", json_integer(1));
    m = wh_match_compile(NULL, NULL, deep, errs);
    CHECK(m == NULL);
    CHECK_INT(json_array_size(errs), 1);
    CHECK_STR(json_string_value(json_array_get(errs, 0)),
              "<criteria>:0:0: criteria nest deeper than 32 levels");
    json_decref(deep);
    json_decref(errs);
}

static void test_match_all_and_lifetime(void)
{
    json_t *ctx = js(ctx_text);
    /* NULL or null criteria match everything, even a NULL context. */
    wh_match *m = wh_match_compile(NULL, NULL, NULL, NULL);
    CHECK(m != NULL);
    CHECK_INT(wh_match_eval(m, ctx), 1);
    CHECK_INT(wh_match_eval(m, NULL), 1);
    wh_match_destroy(&m);
    CHECK(m == NULL);
    wh_match_destroy(&m);
    wh_match_destroy(NULL);
    json_t *null = json_null();
    m = wh_match_compile(NULL, NULL, null, NULL);
    CHECK(m && wh_match_eval(m, ctx) == 1);
    wh_match_destroy(&m);
    CHECK_INT(wh_match_eval(NULL, ctx), 0);

    /* The compiled criteria own copies: the source document may go away. */
    json_t *errs = json_array();
    wh_doc *d = NULL;
    m = compile_yaml("if: {o: {equals: {k: v}}, a: {contains: x}, s: {in: [hello world]}}\n", &d,
                     errs);
    wh_doc_destroy(&d);
    CHECK(m != NULL);
    CHECK_INT(wh_match_eval(m, ctx), 1);
    /* A NULL context: every path is missing. */
    CHECK_INT(wh_match_eval(m, NULL), 0);
    wh_match_destroy(&m);
    json_decref(errs);
    json_decref(ctx);
}

static void test_regex_limits(void)
{
    /* Catastrophic backtracking is cut by the match limit: false, and quickly. */
    json_t *crit = js("{\"x\": {\"regex\": \"^(a+)+$\"}}");
    wh_match *m = wh_match_compile(NULL, NULL, crit, NULL);
    CHECK(m != NULL);
    char subject[64];
    memset(subject, 'a', 40);
    strcpy(subject + 40, "b");
    json_t *ctx = json_pack("{s:s}", "x", subject);
    int64_t t0 = wh_mono_ms();
    CHECK_INT(wh_match_eval(m, ctx), 0);
    CHECK(wh_mono_ms() - t0 < 10000);
    json_decref(ctx);
    ctx = json_pack("{s:s}", "x", "aaaa");
    CHECK_INT(wh_match_eval(m, ctx), 1);
    json_decref(ctx);
    wh_match_destroy(&m);
    json_decref(crit);

    /* UTF-8: '.' is one character, not one byte. */
    crit = js("{\"x\": {\"regex\": \"^caf.$\"}}");
    m = wh_match_compile(NULL, NULL, crit, NULL);
    ctx = json_pack("{s:s}", "x", "caf\xc3\xa9");
    CHECK_INT(wh_match_eval(m, ctx), 1);
    json_decref(ctx);
    wh_match_destroy(&m);
    json_decref(crit);
}

typedef struct worker {
    const wh_match *m;
    const json_t *yes, *no;
    int bad;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 2000; i++) {
        if (wh_match_eval(w->m, w->yes) != 1 || wh_match_eval(w->m, w->no) != 0) {
            w->bad++;
        }
    }
    return NULL;
}

static void test_threads(void)
{
    json_t *crit = js("{\"text\": {\"regex\": \"^deploy (\\\\w+)$\"}, \"n\": {\"gte\": 1}}");
    wh_match *m = wh_match_compile(NULL, NULL, crit, NULL);
    CHECK(m != NULL);
    json_t *yes = js("{\"text\": \"deploy api\", \"n\": 2}");
    json_t *no = js("{\"text\": \"deploy api now\", \"n\": 2}");
    pthread_t t[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){m, yes, no, 0};
        CHECK_INT(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT(w[i].bad, 0);
    }
    json_decref(yes);
    json_decref(no);
    json_decref(crit);
    wh_match_destroy(&m);
}

int main(void)
{
    test_paths();
    test_equal_num();
    test_operator_matrix();
    test_shorthand_and_paths();
    test_combinators();
    test_explain();
    test_compile_errors();
    test_match_all_and_lifetime();
    test_regex_limits();
    test_threads();
    return wh_test_done("test_match");
}
