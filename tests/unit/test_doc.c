/* test_doc.c — hub/doc.c: typing of scalars, positions, limits and error texts. */
#include "testlib.h"
#include "doc.h"

#include <stdlib.h>
#include <string.h>

/* Parse text; returns the doc (NULL on error) and leaves messages in *errs (new array). */
static wh_doc *parse(const char *text, json_t **errs)
{
    *errs = json_array();
    return wh_doc_parse("t.yaml", text, strlen(text), *errs);
}

static const char *err_at(json_t *errs, size_t i)
{
    return json_string_value(json_array_get(errs, i));
}

/* The compact JSON of the value of key "v" in "v: <scalar>". */
static char *scalar_json(const char *scalar)
{
    char text[256];
    snprintf(text, sizeof text, "v: %s\n", scalar);
    json_t *errs;
    wh_doc *d = parse(text, &errs);
    char *out = NULL;
    if (d) {
        out = json_dumps(json_object_get(wh_doc_root(d), "v"), JSON_COMPACT | JSON_ENCODE_ANY);
    } else {
        out = strdup(err_at(errs, 0) ? err_at(errs, 0) : "(no error)");
    }
    wh_doc_destroy(&d);
    json_decref(errs);
    return out;
}

static void test_scalar_table(void)
{
    static const struct {
        const char *in, *out;
    } table[] = {
        {"null", "null"},
        {"Null", "null"},
        {"NULL", "null"},
        {"~", "null"},
        {"", "null"},
        {"nULL", "\"nULL\""},
        {"true", "true"},
        {"True", "true"},
        {"TRUE", "true"},
        {"false", "false"},
        {"False", "false"},
        {"FALSE", "false"},
        {"yes", "\"yes\""},
        {"no", "\"no\""},
        {"on", "\"on\""},
        {"Off", "\"Off\""},
        {"tRUE", "\"tRUE\""},
        {"123", "123"},
        {"-7", "-7"},
        {"+5", "5"},
        {"007", "7"},
        {"0x1F", "31"},
        {"0o17", "15"},
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"0x", "\"0x\""},
        {"0b101", "\"0b101\""},
        {"1_000", "\"1_000\""},
        {"12abc", "\"12abc\""},
        {"-x", "\"-x\""},
        {"1.5", "1.5"},
        {"-2e3", "-2000.0"},
        {".5", "0.5"},
        {"1e3", "1000.0"},
        {"1.", "1.0"},
        {"+0.25", "0.25"},
        {"1e", "\"1e\""},
        {".", "\".\""},
        {"inf", "\"inf\""},
        {"hello world", "\"hello world\""},
        {"'123'", "\"123\""},
        {"\"true\"", "\"true\""},
        {"\"null\"", "\"null\""},
        {"''", "\"\""},
        {"\"\"", "\"\""},
        {"'1.5'", "\"1.5\""},
        {"\"a\\tb\\u00e9\"", "\"a\\tb\u00e9\""},
        {"|\n  line one\n  line two", "\"line one\\nline two\\n\""},
        {">\n  folded\n  text", "\"folded text\\n\""},
        {"|\n  123", "\"123\\n\""},
        {"!!str 123", "\"123\""},
        {"!!str true", "\"true\""},
        {"!!int \"42\"", "42"},
        {"!!int 0x10", "16"},
        {"!!float 3", "3.0"},
        {"!!float '2.5'", "2.5"},
        {"!!bool \"false\"", "false"},
        {"!!null ''", "null"},
        {"!!null ~", "null"},
        {"! 12", "\"12\""},
        {"<<", "\"<<\""},
        /* errors */
        {".inf", "t.yaml:1:4: '.inf' cannot be stored: JSON has no infinity or NaN"},
        {"-.Inf", "t.yaml:1:4: '-.Inf' cannot be stored: JSON has no infinity or NaN"},
        {".nan", "t.yaml:1:4: '.nan' cannot be stored: JSON has no infinity or NaN"},
        {"1e999", "t.yaml:1:4: number '1e999' is out of range"},
        {"99999999999999999999", "t.yaml:1:4: integer '99999999999999999999' is out of range"},
        {"!!int abc", "t.yaml:1:4: 'abc' is not a valid !!int"},
        {"!!int 1.5", "t.yaml:1:4: '1.5' is not a valid !!int"},
        {"!!bool yes", "t.yaml:1:4: 'yes' is not a valid !!bool"},
        {"!!null 0", "t.yaml:1:4: '0' is not a valid !!null"},
        {"!!float x", "t.yaml:1:4: 'x' is not a valid !!float"},
        {"!foo x",
         "t.yaml:1:4: unsupported tag '!foo' on a scalar (allowed: !!str, !!int, !!float, !!bool, "
         "!!null)"},
        {"!!map x",
         "t.yaml:1:4: unsupported tag '!!map' on a scalar (allowed: !!str, !!int, !!float, "
         "!!bool, !!null)"},
        {"!!timestamp 2001-12-14",
         "t.yaml:1:4: unsupported tag '!!timestamp' on a scalar (allowed: !!str, !!int, "
         "!!float, !!bool, !!null)"},
        {"!!str [1]", "t.yaml:1:4: unsupported tag '!!str' on a sequence (allowed: !!seq)"},
        {"!!seq [1]", "[1]"},
        {"!!map {a: 1}", "{\"a\":1}"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        char *got = scalar_json(table[i].in);
        if (!got || strcmp(got, table[i].out) != 0) {
            fprintf(stderr, "scalar '%s'\n", table[i].in);
        }
        CHECK_STR(got, table[i].out);
        free(got);
    }
}

static void test_min_max_int(void)
{
    json_t *errs;
    wh_doc *d = parse("a: 9223372036854775807\nb: -9223372036854775808\nc: 0x7fffffffffffffff\n"
                      "d: 0x8000000000000000\n",
                      &errs);
    CHECK(d == NULL);
    CHECK_INT(json_array_size(errs), 1);
    CHECK_STR(err_at(errs, 0), "t.yaml:4:4: integer '0x8000000000000000' is out of range");
    wh_doc_destroy(&d);
    json_decref(errs);
}

static const char *positions_doc = "connectors:\n"                  /* 1 */
                                   "  team:\n"                      /* 2 */
                                   "    type: slack\n"              /* 3 */
                                   "    token: \"abc\"\n"           /* 4 */
                                   "rules:\n"                       /* 5 */
                                   "  - name: one\n"                /* 6 */
                                   "    if:\n"                      /* 7 */
                                   "      intent.name: Give\n"      /* 8 */
                                   "  - [1, 2]\n"                   /* 9 */
                                   "weird/key~x: 1\n"               /* 10 */
                                   "# comment\n"                    /* 11 */
                                   "flow: {a: 1, b: [x, {c: d}]}\n" /* 12 */
                                   "\"quoted\": é\n";               /* 13 */

static void check_pos(const wh_doc *d, const char *ptr, int kline, int kcol, int vline, int vcol)
{
    int l = -1, c = -1;
    CHECK_INT(wh_doc_pos(d, ptr, &l, &c), 0);
    if (l != kline || c != kcol) {
        fprintf(stderr, "pos of '%s'\n", ptr);
    }
    CHECK_INT(l, kline);
    CHECK_INT(c, kcol);
    l = c = -1;
    CHECK_INT(wh_doc_value_pos(d, ptr, &l, &c), 0);
    if (l != vline || c != vcol) {
        fprintf(stderr, "value pos of '%s'\n", ptr);
    }
    CHECK_INT(l, vline);
    CHECK_INT(c, vcol);
}

static void test_positions(void)
{
    json_t *errs;
    wh_doc *d = parse(positions_doc, &errs);
    CHECK(d != NULL);
    CHECK_INT(json_array_size(errs), 0);
    if (!d) {
        json_decref(errs);
        return;
    }
    CHECK_STR(wh_doc_file(d), "t.yaml");
    check_pos(d, "", 1, 1, 1, 1);
    check_pos(d, NULL, 1, 1, 1, 1);
    check_pos(d, "/connectors", 1, 1, 2, 3);
    check_pos(d, "/connectors/team", 2, 3, 3, 5);
    check_pos(d, "/connectors/team/type", 3, 5, 3, 11);
    check_pos(d, "/connectors/team/token", 4, 5, 4, 12);
    check_pos(d, "/rules", 5, 1, 6, 3);
    check_pos(d, "/rules/0", 6, 5, 6, 5);
    check_pos(d, "/rules/0/name", 6, 5, 6, 11);
    check_pos(d, "/rules/0/if", 7, 5, 8, 7);
    check_pos(d, "/rules/0/if/intent.name", 8, 7, 8, 20);
    check_pos(d, "/rules/1", 9, 5, 9, 5);
    check_pos(d, "/rules/1/0", 9, 6, 9, 6);
    check_pos(d, "/rules/1/1", 9, 9, 9, 9);
    check_pos(d, "/weird~1key~0x", 10, 1, 10, 14);
    check_pos(d, "/flow", 12, 1, 12, 7);
    check_pos(d, "/flow/b/1/c", 12, 22, 12, 25);
    check_pos(d, "/quoted", 13, 1, 13, 11);
    /* Unknown pointers fall back to the nearest known ancestor. */
    check_pos(d, "/connectors/team/nope", 2, 3, 3, 5);
    check_pos(d, "/connectors/team/token/deeper/still", 4, 5, 4, 12);
    check_pos(d, "/nothing/here", 1, 1, 1, 1);
    check_pos(d, "/rules/7", 5, 1, 6, 3);
    /* "/weird/key~x" is not the escaped pointer, so it is unknown → root. */
    check_pos(d, "/weird/key~x", 1, 1, 1, 1);

    json_t *e2 = json_array();
    wh_doc_error(d, e2, "/connectors/team/token", "bad %s %d", "token", 7);
    wh_doc_value_error(d, e2, "/connectors/team/token", "bad value");
    wh_doc_error(NULL, e2, "/x", "no doc");
    wh_doc_error(d, NULL, "/x", "ignored");
    CHECK_INT(json_array_size(e2), 3);
    CHECK_STR(err_at(e2, 0), "t.yaml:4:5: bad token 7");
    CHECK_STR(err_at(e2, 1), "t.yaml:4:12: bad value");
    CHECK_STR(err_at(e2, 2), "<unknown>:0:0: no doc");
    json_decref(e2);

    int l = 0, c = 0;
    CHECK_INT(wh_doc_pos(NULL, "", &l, &c), -1);
    CHECK_INT(wh_doc_value_pos(NULL, "", &l, &c), -1);
    CHECK(wh_doc_root(NULL) == NULL);
    CHECK(wh_doc_file(NULL) == NULL);

    json_t *root = wh_doc_root(d);
    json_t *team = json_object_get(json_object_get(root, "connectors"), "team");
    CHECK_STR(json_string_value(json_object_get(team, "token")), "abc");
    CHECK_INT(json_integer_value(json_object_get(root, "weird/key~x")), 1);
    CHECK_STR(json_string_value(json_object_get(root, "quoted")), "é");
    wh_doc_destroy(&d);
    CHECK(d == NULL);
    wh_doc_destroy(&d);
    wh_doc_destroy(NULL);
    json_decref(errs);
}

static void expect_errors(const char *text, const char *const *want)
{
    json_t *errs;
    wh_doc *d = parse(text, &errs);
    CHECK(d == NULL);
    size_t n = 0;
    while (want[n]) {
        n++;
    }
    if (json_array_size(errs) != n) {
        char *dump = json_dumps(errs, JSON_INDENT(1));
        fprintf(stderr, "for %s\ngot %s\n", text, dump);
        free(dump);
    }
    CHECK_INT(json_array_size(errs), n);
    for (size_t i = 0; i < n; i++) {
        CHECK_STR(err_at(errs, i), want[i]);
    }
    wh_doc_destroy(&d);
    json_decref(errs);
}

#define EXPECT(text, ...)                                                                          \
    do {                                                                                           \
        const char *const _w[] = {__VA_ARGS__, NULL};                                              \
        expect_errors(text, _w);                                                                   \
    } while (0)

static void test_duplicates_and_keys(void)
{
    EXPECT("a: 1\nb: 2\na: 3\n", "t.yaml:3:1: duplicate key 'a' (first at line 1)");
    EXPECT("x:\n  a: 1\n  'a': 2\n", "t.yaml:3:3: duplicate key 'a' (first at line 2)");
    EXPECT("{a: 1, a: 2}", "t.yaml:1:8: duplicate key 'a' (first at line 1)");
    /* Every problem is reported, not only the first. */
    EXPECT("a: 1\na: 2\nb: .inf\nc: {[1]: 2}\n", "t.yaml:2:1: duplicate key 'a' (first at line 1)",
           "t.yaml:3:4: '.inf' cannot be stored: JSON has no infinity or NaN",
           "t.yaml:4:5: keys must be scalars");
    EXPECT("? [a, b]\n: 1\n", "t.yaml:1:3: keys must be scalars");
    EXPECT("? {a: 1}\n: 1\n", "t.yaml:1:3: keys must be scalars");
    EXPECT("l: &l [1]\n*l : 2\n", "t.yaml:2:1: keys must be scalars");
    EXPECT("a: *nope\n", "t.yaml:1:4: unknown alias '*nope' (no earlier anchor '&nope')");
    EXPECT("\"a\\0b\": 1\n", "t.yaml:1:1: keys must not contain NUL characters");

    /* Keys are strings as written; `<<` is an ordinary key. */
    json_t *errs;
    wh_doc *d = parse("1: a\ntrue: b\nnull: c\n~: d\n0x10: e\n<<: {x: 1}\n\"\": f\n", &errs);
    CHECK(d != NULL);
    json_t *r = wh_doc_root(d);
    CHECK_STR(json_string_value(json_object_get(r, "1")), "a");
    CHECK_STR(json_string_value(json_object_get(r, "true")), "b");
    CHECK_STR(json_string_value(json_object_get(r, "null")), "c");
    CHECK_STR(json_string_value(json_object_get(r, "~")), "d");
    CHECK_STR(json_string_value(json_object_get(r, "0x10")), "e");
    CHECK(json_is_object(json_object_get(r, "<<")));
    CHECK(json_object_get(r, "x") == NULL);
    CHECK_STR(json_string_value(json_object_get(r, "")), "f");
    check_pos(d, "/", 7, 1, 7, 5);
    wh_doc_destroy(&d);
    json_decref(errs);
}

static void test_aliases(void)
{
    json_t *errs;
    wh_doc *d = parse("base: &b {x: 1, y: [1, 2]}\n"
                      "other: *b\n"
                      "k: &s hello\n"
                      "use: *s\n"
                      "*s : v\n"
                      "&kk key2: 3\n"
                      "again: *kk\n"
                      "list: [*b, *s]\n",
                      &errs);
    CHECK(d != NULL);
    CHECK_INT(json_array_size(errs), 0);
    if (!d) {
        json_decref(errs);
        return;
    }
    json_t *r = wh_doc_root(d);
    CHECK(json_equal(json_object_get(r, "base"), json_object_get(r, "other")));
    CHECK(json_object_get(r, "base") != json_object_get(r, "other"));
    CHECK_STR(json_string_value(json_object_get(r, "use")), "hello");
    CHECK_STR(json_string_value(json_object_get(r, "hello")), "v");
    CHECK_STR(json_string_value(json_object_get(r, "again")), "key2");
    CHECK_INT(json_array_size(json_object_get(r, "list")), 2);
    /* A deep copy: changing the copy leaves the original alone. */
    json_object_set_new(json_object_get(r, "other"), "x", json_integer(2));
    CHECK_INT(json_integer_value(json_object_get(json_object_get(r, "base"), "x")), 1);
    /* Inside an alias's copy positions fall back to the alias. */
    check_pos(d, "/other/y/1", 2, 1, 2, 8);
    check_pos(d, "/list/0/x", 8, 8, 8, 8);
    check_pos(d, "/base/y/1", 1, 24, 1, 24);
    wh_doc_destroy(&d);
    json_decref(errs);
}

static void test_alias_bomb(void)
{
    const char *bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                       "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                       "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    json_t *errs;
    wh_doc *d = parse(bomb, &errs);
    CHECK(d == NULL);
    CHECK_INT(json_array_size(errs), 1);
    CHECK_STR(err_at(errs, 0),
              "t.yaml:7:8: document has more than 1000000 nodes (counting what aliases expand "
              "to)");
    json_decref(errs);

    /* Deep aliases: nesting counts what the copy brings. */
    wh_doc_destroy(&d);
}

static void test_documents_and_empty(void)
{
    EXPECT("a: 1\n---\nb: 2\n", "t.yaml:2:1: only one document is allowed");
    EXPECT("--- 1\n--- 2\n", "t.yaml:2:1: only one document is allowed");

    static const char *const empties[] = {"", "\n\n", "# only a comment\n", "---\n", "--- \n...\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        json_t *errs;
        wh_doc *d = parse(empties[i], &errs);
        CHECK(d != NULL);
        CHECK(json_is_object(wh_doc_root(d)));
        CHECK_INT(json_object_size(wh_doc_root(d)), 0);
        int l = 0, c = 0;
        CHECK_INT(wh_doc_pos(d, "", &l, &c), 0);
        CHECK_INT(l, 1);
        wh_doc_destroy(&d);
        json_decref(errs);
    }
    /* An explicit null stays null; a bare scalar root is allowed. */
    json_t *errs;
    wh_doc *d = parse("~\n", &errs);
    CHECK(d && json_is_null(wh_doc_root(d)));
    wh_doc_destroy(&d);
    json_decref(errs);
    d = parse("- 1\n- two\n", &errs);
    CHECK(d && json_array_size(wh_doc_root(d)) == 2);
    wh_doc_destroy(&d);
    json_decref(errs);

    /* NULL text with zero length is an empty file; NULL file name reads "<input>". */
    errs = json_array();
    d = wh_doc_parse(NULL, NULL, 0, errs);
    CHECK(d && json_is_object(wh_doc_root(d)));
    CHECK_STR(wh_doc_file(d), "<input>");
    wh_doc_destroy(&d);
    d = wh_doc_parse(NULL, "a: [", 4, errs);
    CHECK(d == NULL);
    /* libyaml places the end of the stream at the start of the next line. */
    CHECK_STR(err_at(errs, 0),
              "<input>:2:1: did not find expected node content while parsing a flow node");
    /* errors may be NULL. */
    d = wh_doc_parse(NULL, "a: [", 4, NULL);
    CHECK(d == NULL);
    json_decref(errs);
}

static void test_json_input(void)
{
    const char *text =
        "{\n\t\"a\": [1, 2.5, \"x\", true, null, -3e2],\n"
        "\t\"b\":{\"c\":\"d\\/e\\u00e9\\n\"},\n\t\"e\": {}, \"f\": [], \"g\": \"\"\n}\n";
    json_t *errs;
    wh_doc *d = parse(text, &errs);
    CHECK(d != NULL);
    json_error_t jerr;
    json_t *want = json_loads(text, 0, &jerr);
    CHECK(want != NULL);
    CHECK(d && json_equal(wh_doc_root(d), want));
    if (d) {
        /* jansson's json_equal treats 2.5 and -300.0 as reals: check types too. */
        json_t *a = json_object_get(wh_doc_root(d), "a");
        CHECK(json_is_integer(json_array_get(a, 0)));
        CHECK(json_is_real(json_array_get(a, 1)));
        CHECK(json_is_real(json_array_get(a, 5)));
        check_pos(d, "/b/c", 3, 7, 3, 11); /* a tab is one column */
        check_pos(d, "/a/2", 2, 16, 2, 16);
    }
    json_decref(want);
    wh_doc_destroy(&d);
    json_decref(errs);
}

static void test_syntax_errors(void)
{
    EXPECT("a: 1\n  b: 2\n", "t.yaml:2:4: mapping values are not allowed in this context");
    EXPECT("a: [1, 2\nb: 3\n",
           "t.yaml:2:2: did not find expected ',' or ']' while parsing a flow sequence");
    EXPECT("a:\n  - x\n - y\n",
           "t.yaml:3:2: did not find expected key while parsing a block mapping");
    EXPECT("a: \"unterminated\n",
           "t.yaml:2:1: found unexpected end of stream while scanning a quoted scalar");
    EXPECT("a: 1\nb: \xff\n", "t.yaml:2:4: invalid leading UTF-8 octet (byte 0xFF)");
    EXPECT("a: 1\n\tb: 2\n", "t.yaml:2:1: found a tab character that violates indentation "
                             "while scanning a plain scalar");
    /* where libyaml does not say so, the tab is named */
    EXPECT("rules:\n\t- name: x\n", "t.yaml:2:1: a tab: YAML indents with spaces, not tabs "
                                    "(found character that cannot start any token)");
}

static char *nested(int depth, const char *open, const char *close)
{
    size_t ol = strlen(open), cl = strlen(close);
    char *s = malloc((size_t)depth * (ol + cl) + 1);
    char *o = s;
    for (int i = 0; i < depth; i++) {
        memcpy(o, open, ol);
        o += ol;
    }
    for (int i = 0; i < depth; i++) {
        memcpy(o, close, cl);
        o += cl;
    }
    *o = '\0';
    return s;
}

static void test_depth(void)
{
    json_t *errs;
    char *ok = nested(WH_YAML_MAX_DEPTH, "[", "]");
    wh_doc *d = parse(ok, &errs);
    CHECK(d != NULL);
    CHECK_INT(json_array_size(errs), 0);
    wh_doc_destroy(&d);
    json_decref(errs);
    free(ok);

    char *bad = nested(WH_YAML_MAX_DEPTH + 1, "[", "]");
    d = parse(bad, &errs);
    CHECK(d == NULL);
    CHECK_INT(json_array_size(errs), 1);
    CHECK_STR(err_at(errs, 0), "t.yaml:1:257: nesting is deeper than 256 levels");
    wh_doc_destroy(&d);
    json_decref(errs);
    free(bad);

    char *huge = nested(100000, "{a: ", "}");
    d = parse(huge, &errs);
    CHECK(d == NULL);
    CHECK_STR(err_at(errs, 0), "t.yaml:1:1025: nesting is deeper than 256 levels");
    wh_doc_destroy(&d);
    json_decref(errs);
    free(huge);

    /* An alias cannot smuggle nesting past the bound. */
    char *inner = nested(200, "[", "]");
    char *outer = nested(100, "[", "]");
    size_t n = strlen(inner) + strlen(outer) + 64;
    char *text = malloc(n);
    snprintf(text, n, "a: &x %s\nb: %.*s*x%s\n", inner, 100, outer, outer + 100);
    d = parse(text, &errs);
    CHECK(d == NULL);
    CHECK_STR(err_at(errs, 0), "t.yaml:2:104: nesting is deeper than 256 levels");
    wh_doc_destroy(&d);
    json_decref(errs);
    free(text);
    free(inner);
    free(outer);
}

static void test_pointers(void)
{
    char buf[64];
    CHECK_STR(wh_ptr_child(buf, sizeof buf, "/a", "b/c~d"), "/a/b~1c~0d");
    CHECK_STR(wh_ptr_child(buf, sizeof buf, "", "x"), "/x");
    CHECK_STR(wh_ptr_child(buf, sizeof buf, NULL, "intent.name"), "/intent.name");
    CHECK_STR(wh_ptr_child(buf, sizeof buf, "/a", ""), "/a/");
    CHECK_STR(wh_ptr_index(buf, sizeof buf, "/rules", 12), "/rules/12");
    CHECK(wh_ptr_child(buf, sizeof buf, "/a", "x") == buf);
    /* Truncation keeps a terminated prefix and never splits an escape. */
    char small[6];
    CHECK_STR(wh_ptr_child(small, sizeof small, "/ab", "~~"), "/ab/");
    CHECK_STR(wh_ptr_child(small, sizeof small, "/abcdefgh", "x"), "/abcd");
    CHECK_STR(wh_ptr_child(small, 1, "/a", "b"), "");
    CHECK(wh_ptr_child(small, 0, "/a", "b") == small);
    char *p = wh_ptr_child_dup("/a~0", "k/~");
    CHECK_STR(p, "/a~0/k~1~0");
    free(p);
    p = wh_ptr_index_dup("", 0);
    CHECK_STR(p, "/0");
    free(p);

    /* The escaped pointers reach members whose keys hold '/' and '~'. */
    json_t *errs;
    wh_doc *d = parse("top:\n  \"a/b\":\n    \"~c\": 1\n", &errs);
    CHECK(d != NULL);
    wh_ptr_child(buf, sizeof buf, "/top", "a/b");
    char buf2[64];
    wh_ptr_child(buf2, sizeof buf2, buf, "~c");
    CHECK_STR(buf2, "/top/a~1b/~0c");
    check_pos(d, buf2, 3, 5, 3, 11);
    wh_doc_destroy(&d);
    json_decref(errs);
}

static void test_load(void)
{
    char *dir = wh_test_tmpdir();
    CHECK(dir != NULL);
    char *path = wh_test_write(dir, "c.yaml", "a: 1\nb: [x]\n");
    json_t *errs = json_array();
    wh_doc *d = wh_doc_load(path, errs);
    CHECK(d != NULL);
    CHECK_STR(wh_doc_file(d), path);
    CHECK_INT(json_integer_value(json_object_get(wh_doc_root(d), "a")), 1);
    wh_doc_destroy(&d);

    char *bad = wh_test_write(dir, "bad.yaml", "a: 1\na: 2\n");
    d = wh_doc_load(bad, errs);
    CHECK(d == NULL);
    char want[1024];
    snprintf(want, sizeof want, "%s:2:1: duplicate key 'a' (first at line 1)", bad);
    CHECK_STR(err_at(errs, 0), want);

    char missing[512];
    snprintf(missing, sizeof missing, "%s/missing.yaml", dir);
    d = wh_doc_load(missing, errs);
    CHECK(d == NULL);
    snprintf(want, sizeof want, "%s: cannot read: No such file or directory", missing);
    CHECK_STR(err_at(errs, 1), want);
    CHECK_INT(json_array_size(errs), 2);
    json_decref(errs);
    remove(path);
    remove(bad);
    remove(dir);
    free(path);
    free(bad);
    free(dir);
}

static void test_error_cap(void)
{
    /* Hundreds of problems: the list stops at WH_YAML_MAX_ERRORS with a last notice. */
    size_t n = 300 * 16;
    char *text = malloc(n);
    size_t o = 0;
    for (int i = 0; i < 300; i++) {
        o += (size_t)snprintf(text + o, n - o, "k%d: .nan\n", i);
    }
    json_t *errs;
    wh_doc *d = parse(text, &errs);
    CHECK(d == NULL);
    CHECK_INT(json_array_size(errs), WH_YAML_MAX_ERRORS);
    CHECK_STR(err_at(errs, WH_YAML_MAX_ERRORS - 1), "t.yaml:100:6: too many errors, giving up");
    json_decref(errs);
    free(text);
}

int main(void)
{
    test_scalar_table();
    test_min_max_int();
    test_positions();
    test_duplicates_and_keys();
    test_aliases();
    test_alias_bomb();
    test_documents_and_empty();
    test_json_input();
    test_syntax_errors();
    test_depth();
    test_pointers();
    test_load();
    test_error_cap();
    return wh_test_done("unit.doc");
}
