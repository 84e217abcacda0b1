/*
 * test_template.c — the template engine beyond the Mustache spec files:
 * parse errors and their positions, escaping modes, typed renders for rule
 * arguments, value formatting, limits, name enumeration and the
 * `wirehub render` command.
 */
#include "cli.h"
#include "template.h"
#include "testlib.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

/* Parse text (must succeed), render with esc against JSON data, return a
   malloc'd string. */
static char *render(const char *text, const char *data, wh_escape esc)
{
    char err[200];
    int line, col;
    wh_tpl *t = wh_tpl_parse(text, strlen(text), err, sizeof err, &line, &col);
    if (!t) {
        fprintf(stderr, "unexpected parse error in \"%s\": %d:%d: %s\n", text, line, col, err);
        wh_test_failures++;
        return strdup("(parse error)");
    }
    json_error_t jerr;
    json_t *ctx = json_loads(data, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    CHECK(ctx != NULL);
    char *s = wh_tpl_render_str(t, ctx, esc);
    CHECK(s != NULL);
    json_decref(ctx);
    wh_tpl_destroy(&t);
    CHECK(t == NULL);
    return s ? s : strdup("(render error)");
}

#define CHECK_RENDER(text, data, esc, expected)                                                    \
    do {                                                                                           \
        char *_s = render(text, data, esc);                                                        \
        CHECK_STR(_s, expected);                                                                   \
        free(_s);                                                                                  \
    } while (0)

/* Parse must fail with a message starting with `msg` at line:col. */
static void expect_error(const char *text, const char *msg, int eline, int ecol)
{
    char err[200] = "unset";
    int line = -1, col = -1;
    wh_tpl *t = wh_tpl_parse(text, strlen(text), err, sizeof err, &line, &col);
    CHECK(t == NULL);
    wh_tpl_destroy(&t);
    if (strncmp(err, msg, strlen(msg)) != 0 || line != eline || col != ecol) {
        fprintf(stderr, "template \"%s\": got %d:%d: %s, expected %d:%d: %s\n", text, line, col,
                err, eline, ecol, msg);
        wh_test_failures++;
    }
}

static void test_parse_errors(void)
{
    expect_error("Hello\n  {{#a}}x", "unclosed section 'a'", 2, 3);
    expect_error("{{#a}}\n {{#b}}\n{{/b}}", "unclosed section 'a'", 1, 1);
    expect_error("ab {{/b}}", "unexpected closing tag 'b'", 1, 4);
    expect_error("{{#a}}\n\n  x {{/b}}", "unexpected closing tag 'b' (open section is 'a')", 3, 5);
    expect_error("x\ny {{ }}", "empty tag", 2, 3);
    expect_error("{{#}}", "empty tag", 1, 1);
    expect_error("{{{}}}", "empty tag", 1, 1);
    expect_error("x {{name", "unclosed tag", 1, 3);
    expect_error("x {{{name}}", "unclosed tag", 1, 3);
    expect_error("{{user.name} is {{x}}", "unclosed tag", 1, 1);
    expect_error("a\r\nb\n  {{>header}}", "partials are not supported", 3, 3);
    expect_error("{{=<% %>=}}", "set delimiters are not supported", 1, 1);
    expect_error("{{$block}}{{/block}}", "template inheritance is not supported", 1, 1);
    expect_error("{{a b}}", "invalid tag name 'a b'", 1, 1);
    expect_error("{{a..b}}", "invalid name 'a..b'", 1, 1);
    expect_error("{{.a}}", "invalid name '.a'", 1, 1);
    expect_error("{{a.}}", "invalid name 'a.'", 1, 1);
    expect_error("ok\n\xc3\xa9 \xff", "invalid UTF-8", 2, 4);
    expect_error("\xed\xa0\x80", "invalid UTF-8", 1, 1); /* a surrogate */
    expect_error("\xc0\xaf", "invalid UTF-8", 1, 1);     /* overlong '/' */

    /* error outputs are optional */
    CHECK(wh_tpl_parse("{{#a}}", 6, NULL, 0, NULL, NULL) == NULL);
    /* only len bytes are read: the unclosed tag lies beyond them */
    wh_tpl *t = wh_tpl_parse("abc{{", 3, NULL, 0, NULL, NULL);
    CHECK(t != NULL);
    char *s = wh_tpl_render_str(t, NULL, WH_ESC_NONE);
    CHECK_STR(s, "abc");
    free(s);
    wh_tpl_destroy(&t);
    wh_tpl_destroy(&t); /* NULL-safe, twice */
    wh_tpl_destroy(NULL);
}

static void test_escaping(void)
{
    CHECK_RENDER("{{t}}", "{\"t\": \"Q&A <today>\"}", WH_ESC_XML, "Q&amp;A &lt;today&gt;");
    CHECK_RENDER("<s>{{t}}</s>", "{\"t\": \"\\\"it's\\\"\"}", WH_ESC_XML,
                 "<s>&quot;it&apos;s&quot;</s>");
    /* C0 controls cannot appear in XML at all; tab/LF/CR stay */
    CHECK_RENDER("{{t}}", "{\"t\": \"a\\u0001b\\u0000c\\td\\ne\"}", WH_ESC_XML, "abc\td\ne");
    CHECK_RENDER("{{{t}}}|{{&t}}", "{\"t\": \"Q&A <today>\"}", WH_ESC_XML,
                 "Q&A <today>|Q&A <today>");
    /* the spec's HTML set: & < > " but not ' */
    CHECK_RENDER("{{t}}", "{\"t\": \"<a href='x'>&\\\"</a>\"}", WH_ESC_HTML,
                 "&lt;a href='x'&gt;&amp;&quot;&lt;/a&gt;");
    CHECK_RENDER("{{t}}", "{\"t\": \"<b>&\"}", WH_ESC_NONE, "<b>&");
    CHECK_RENDER("https://x.test/?q={{q}}&n={{n}}", "{\"q\": \"a b&c=d/\\u00e9~-._\", \"n\": 1e20}",
                 WH_ESC_URL, "https://x.test/?q=a%20b%26c%3Dd%2F%C3%A9~-._&n=1e%2B20");
    /* objects are escaped like any text */
    CHECK_RENDER("{{o}}", "{\"o\": {\"a\": \"<\"}}", WH_ESC_HTML,
                 "{&quot;a&quot;:&quot;&lt;&quot;}");

    wh_buf b = {0};
    CHECK_INT(wh_escape_append(&b, "a+b c", 5, WH_ESC_URL), WH_OK);
    CHECK_INT(wh_escape_append(&b, "", 0, WH_ESC_XML), WH_OK);
    CHECK_INT(wh_escape_append(&b, "'", 1, WH_ESC_XML), WH_OK);
    CHECK_INT(wh_escape_append(&b, "x", 1, (wh_escape)9), WH_ERR_INVALID);
    CHECK_STR(b.data, "a%2Bb%20c&apos;");
    wh_buf_free(&b);
}

static void test_values(void)
{
    CHECK_RENDER("{{i}} {{n}} {{big}}", "{\"i\": 85, \"n\": -3, \"big\": 9007199254740993}",
                 WH_ESC_HTML, "85 -3 9007199254740993");
    CHECK_RENDER("{{a}}|{{b}}|{{c}}|{{d}}|{{e}}|{{f}}",
                 "{\"a\": 1.210, \"b\": 0.30000000000000004, \"c\": 3.0, \"d\": -0.5, "
                 "\"e\": 1e-7, \"f\": 123456789.125}",
                 WH_ESC_NONE, "1.21|0.30000000000000004|3|-0.5|1e-07|123456789.125");
    CHECK_RENDER("[{{t}}|{{f}}|{{z}}|{{missing}}]", "{\"t\": true, \"f\": false, \"z\": null}",
                 WH_ESC_NONE, "[true|false||]");
    CHECK_RENDER("{{o}} {{a}} {{e}}",
                 "{\"o\": {\"x\": 1, \"y\": [1, \"two\"]}, \"a\": [], \"e\": {}}", WH_ESC_NONE,
                 "{\"x\":1,\"y\":[1,\"two\"]} [] {}");
    /* a string with an embedded NUL keeps its full length */
    CHECK_RENDER("<{{s}}>", "{\"s\": \"a\\u0000b\"}", WH_ESC_NONE, "<a");
    char *s = render("{{s}}", "{\"s\": \"a\\u0000b\"}", WH_ESC_URL);
    CHECK_STR(s, "a%00b");
    free(s);
}

static void test_sections(void)
{
    /* the presentation story's read-back */
    const char *speech = "{{#replies}}{{author}} says: {{text}}. {{/replies}}{{^replies}}No "
                         "replies yet.{{/replies}}";
    CHECK_RENDER(speech,
                 "{\"replies\": [{\"author\": \"Ben\", \"text\": \"great, send the slides\"},"
                 " {\"author\": \"Chen\", \"text\": \"I'll join at three\"}]}",
                 WH_ESC_XML,
                 "Ben says: great, send the slides. Chen says: I&apos;ll join at three. ");
    CHECK_RENDER(speech, "{\"replies\": []}", WH_ESC_XML, "No replies yet.");
    CHECK_RENDER(speech, "{}", WH_ESC_XML, "No replies yet.");
    CHECK_RENDER(
        "{{user.name}} is presenting: {{intent.slots.topic}}",
        "{\"user\": {\"name\": \"Ana\"}, \"intent\": {\"slots\": {\"topic\": \"Q3 roadmap\"}}}",
        WH_ESC_NONE, "Ana is presenting: Q3 roadmap");
    /* falsy: empty string, null, false, [] — truthy: 0, {}, "0" */
    CHECK_RENDER("{{#s}}S{{/s}}{{^s}}s{{/s}}", "{\"s\": \"\"}", WH_ESC_NONE, "s");
    CHECK_RENDER("{{#s}}S{{/s}}{{^s}}s{{/s}}", "{\"s\": \"0\"}", WH_ESC_NONE, "S");
    CHECK_RENDER("{{#n}}[{{.}}]{{/n}}{{^n}}n{{/n}}", "{\"n\": 0}", WH_ESC_NONE, "[0]");
    CHECK_RENDER("{{#o}}O{{/o}}{{^o}}o{{/o}}", "{\"o\": {}}", WH_ESC_NONE, "O");
    /* a null in an inner context masks the outer name */
    CHECK_RENDER("{{#a}}<{{x}}>{{/a}}", "{\"x\": \"outer\", \"a\": {\"x\": null}}", WH_ESC_NONE,
                 "<>");
    CHECK_RENDER("{{#a}}<{{x}}>{{/a}}", "{\"x\": \"outer\", \"a\": {}}", WH_ESC_NONE, "<outer>");
    /* extension: digits index arrays after the first component */
    CHECK_RENDER("{{replies.1.author}}|{{replies.9.author}}|{{0}}",
                 "{\"replies\": [{\"author\": \"Ben\"}, {\"author\": \"Chen\"}], \"0\": \"zero\"}",
                 WH_ESC_NONE, "Chen||zero");
    CHECK_RENDER("{{m.1}}", "{\"m\": {\"1\": \"key\"}}", WH_ESC_NONE, "key");
    /* a NULL context: everything is missing, nothing crashes */
    const char *text = "a{{x}}{{.}}{{#y}}Y{{/y}}{{^y}}b{{/y}}";
    wh_tpl *t = wh_tpl_parse(text, strlen(text), NULL, 0, NULL, NULL);
    CHECK(t != NULL);
    char *s = wh_tpl_render_str(t, NULL, WH_ESC_HTML);
    CHECK_STR(s, "ab");
    free(s);
    wh_tpl_destroy(&t);
}

static void test_render_buffer(void)
{
    wh_tpl *t = wh_tpl_parse("{{x}}!", 6, NULL, 0, NULL, NULL);
    json_t *ctx = json_pack("{s:s}", "x", "hi");
    wh_buf b = {0};
    CHECK_INT(wh_buf_puts(&b, "say: "), WH_OK);
    CHECK_INT(wh_tpl_render(t, ctx, WH_ESC_NONE, &b), WH_OK);
    CHECK_INT(wh_tpl_render(t, ctx, WH_ESC_NONE, &b), WH_OK);
    CHECK_STR(b.data, "say: hi!hi!");
    CHECK_INT(b.len, 11);
    CHECK_INT(wh_tpl_render(NULL, ctx, WH_ESC_NONE, &b), WH_ERR_INVALID);
    CHECK_INT(wh_tpl_render(t, ctx, WH_ESC_NONE, NULL), WH_ERR_INVALID);
    CHECK_INT(b.len, 11);
    wh_buf_free(&b);

    /* an empty render still yields a string */
    wh_tpl *e = wh_tpl_parse("", 0, NULL, 0, NULL, NULL);
    CHECK(e != NULL);
    char *s = wh_tpl_render_str(e, ctx, WH_ESC_NONE);
    CHECK_STR(s, "");
    free(s);
    CHECK(wh_tpl_is_literal(e));
    wh_tpl_destroy(&e);
    json_decref(ctx);
    wh_tpl_destroy(&t);
}

static json_t *render_json(const char *text, const json_t *ctx)
{
    wh_tpl *t = wh_tpl_parse(text, strlen(text), NULL, 0, NULL, NULL);
    CHECK(t != NULL);
    json_t *v = t ? wh_tpl_render_json(t, ctx) : NULL;
    wh_tpl_destroy(&t);
    return v;
}

static void test_render_json(void)
{
    json_t *ctx = json_loads("{\"post\": {\"blocks\": [{\"type\": \"section\"}], \"ts\": \"1.2\","
                             " \"n\": 7, \"ok\": true}}",
                             0, NULL);
    const json_t *blocks = json_object_get(json_object_get(ctx, "post"), "blocks");

    json_t *v = render_json("{{post.blocks}}", ctx);
    CHECK(v == blocks); /* the value itself, not a copy */
    CHECK(json_is_array(v));
    CHECK_INT(blocks->refcount, 2);
    json_decref(v);

    v = render_json("{{ post.n }}", ctx);
    CHECK(json_is_integer(v) && json_integer_value(v) == 7);
    json_decref(v);
    v = render_json("{{{post.ok}}}", ctx);
    CHECK(json_is_true(v));
    json_decref(v);
    v = render_json("{{&post}}", ctx);
    CHECK(json_is_object(v) && json_object_size(v) == 4);
    json_decref(v);
    v = render_json("{{.}}", ctx);
    CHECK(v == ctx);
    json_decref(v);

    v = render_json("{{post.missing}}", ctx);
    CHECK(json_is_null(v));
    json_decref(v);

    /* anything but exactly one variable tag renders to a string */
    v = render_json("ts={{post.ts}}", ctx);
    CHECK(json_is_string(v));
    CHECK_STR(json_string_value(v), "ts=1.2");
    json_decref(v);
    v = render_json(" {{post.n}}", ctx);
    CHECK_STR(json_string_value(v), " 7");
    json_decref(v);
    v = render_json("{{post.n}}{{post.n}}", ctx);
    CHECK_STR(json_string_value(v), "77");
    json_decref(v);
    v = render_json("{{! note }}{{post.n}}", ctx);
    CHECK_STR(json_string_value(v), "7");
    json_decref(v);
    v = render_json("{{#post}}{{n}}{{/post}}", ctx);
    CHECK_STR(json_string_value(v), "7");
    json_decref(v);
    v = render_json("{{post.blocks}}!", ctx);
    CHECK_STR(json_string_value(v), "[{\"type\":\"section\"}]!");
    json_decref(v);
    v = render_json("plain <text>", ctx);
    CHECK_STR(json_string_value(v), "plain <text>");
    json_decref(v);
    v = render_json("", ctx);
    CHECK_STR(json_string_value(v), "");
    json_decref(v);

    CHECK_INT(blocks->refcount, 1);
    json_decref(ctx);
}

static void test_depth(void)
{
    /* WH_TPL_MAX_DEPTH nested sections parse and render; one more is refused */
    wh_buf b = {0};
    for (int i = 0; i < WH_TPL_MAX_DEPTH; i++) {
        wh_buf_puts(&b, "{{#a}}");
    }
    wh_buf_puts(&b, "{{x}}");
    for (int i = 0; i < WH_TPL_MAX_DEPTH; i++) {
        wh_buf_puts(&b, "{{/a}}");
    }
    wh_tpl *t = wh_tpl_parse(b.data, b.len, NULL, 0, NULL, NULL);
    CHECK(t != NULL);
    json_t *ctx = json_pack("{s:b,s:s}", "a", 1, "x", "deep");
    char *s = wh_tpl_render_str(t, ctx, WH_ESC_NONE);
    CHECK_STR(s, "deep");
    free(s);
    wh_tpl_destroy(&t);
    json_decref(ctx);
    wh_buf_free(&b);

    for (int i = 0; i < 5000; i++) {
        wh_buf_puts(&b, i == 50 ? "\n{{^a}}" : "{{#a}}");
    }
    char err[200];
    int line, col;
    t = wh_tpl_parse(b.data, b.len, err, sizeof err, &line, &col);
    CHECK(t == NULL);
    CHECK_STR(err, "sections nested too deeply (limit 100)");
    CHECK_INT(line, 2);
    CHECK_INT(col, 1 + 6 * (WH_TPL_MAX_DEPTH - 50));
    wh_buf_free(&b);
}

/* Data decides how often sections repeat: a render's work and output are bounded (found by
   fuzz_template: six nested sections over 40 items took minutes). */
static void test_render_limits(void)
{
    const char *text = "{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}x{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}";
    wh_tpl *t = wh_tpl_parse(text, strlen(text), NULL, 0, NULL, NULL);
    json_t *items = json_array();
    for (int i = 0; i < 40; i++) {
        json_array_append_new(items, json_integer(i));
    }
    json_t *ctx = json_pack("{s:O}", "a", items);
    wh_buf out = {0};
    wh_buf_puts(&out, "kept");
    CHECK_INT(wh_tpl_render(t, ctx, WH_ESC_NONE, &out), WH_ERR_TOO_LARGE);
    CHECK_INT(out.len, 4);
    CHECK_STR(out.data, "kept");
    CHECK(wh_tpl_render_str(t, ctx, WH_ESC_NONE) == NULL);
    CHECK(wh_tpl_render_json(t, ctx) == NULL);
    wh_tpl_destroy(&t);
    json_decref(ctx);

    /* 40^3 steps are fine */
    text = "{{#a}}{{#a}}{{#a}}x{{/a}}{{/a}}{{/a}}";
    t = wh_tpl_parse(text, strlen(text), NULL, 0, NULL, NULL);
    ctx = json_pack("{s:O}", "a", items);
    out.len = 0;
    CHECK_INT(wh_tpl_render(t, ctx, WH_ESC_NONE, &out), WH_OK);
    CHECK_INT(out.len, 40 * 40 * 40);
    wh_tpl_destroy(&t);
    json_decref(items);

    /* output: 17 copies of 1 MiB pass WH_TPL_MAX_OUTPUT */
    char *big = malloc(1u << 20);
    memset(big, 'b', 1u << 20);
    json_t *list = json_array();
    for (int i = 0; i < 17; i++) {
        json_array_append_new(list, json_stringn(big, 1u << 20));
    }
    json_decref(ctx);
    ctx = json_pack("{s:o}", "a", list);
    text = "{{#a}}{{.}}{{/a}}";
    t = wh_tpl_parse(text, strlen(text), NULL, 0, NULL, NULL);
    out.len = 0;
    CHECK_INT(wh_tpl_render(t, ctx, WH_ESC_NONE, &out), WH_ERR_TOO_LARGE);
    CHECK_INT(out.len, 0);
    json_array_remove(list, 16);
    CHECK_INT(wh_tpl_render(t, ctx, WH_ESC_NONE, &out), WH_OK);
    CHECK_INT(out.len, 16u << 20);
    wh_tpl_destroy(&t);
    json_decref(ctx);
    free(big);
    wh_buf_free(&out);
}

struct seen {
    wh_buf names;
    int calls, stop_at;
};

static int collect(void *ud, const char *name, int line, int col)
{
    struct seen *s = ud;
    wh_buf_printf(&s->names, "%s@%d:%d ", name, line, col);
    return ++s->calls == s->stop_at ? 42 : 0;
}

static void test_foreach_name(void)
{
    const char *text = "{{a.b}} {{! c }}{{#list}}\n  {{.}}{{{raw}}}\n{{/list}}{{^ x.y }}{{/ x.y }}";
    wh_tpl *t = wh_tpl_parse(text, strlen(text), NULL, 0, NULL, NULL);
    CHECK(t != NULL);
    struct seen s = {0};
    CHECK_INT(wh_tpl_foreach_name(t, collect, &s), 0);
    CHECK_STR(s.names.data, "a.b@1:1 list@1:17 .@2:3 raw@2:8 x.y@3:10 ");
    wh_buf_free(&s.names);

    struct seen s2 = {.stop_at = 2};
    CHECK_INT(wh_tpl_foreach_name(t, collect, &s2), 42);
    CHECK_INT(s2.calls, 2);
    wh_buf_free(&s2.names);
    CHECK(!wh_tpl_is_literal(t));
    wh_tpl_destroy(&t);

    t = wh_tpl_parse("just { text } here", 18, NULL, 0, NULL, NULL);
    CHECK(wh_tpl_is_literal(t));
    struct seen s3 = {0};
    CHECK_INT(wh_tpl_foreach_name(t, collect, &s3), 0);
    CHECK_INT(s3.calls, 0);
    wh_tpl_destroy(&t);
    t = wh_tpl_parse("{{! only a comment }}", 21, NULL, 0, NULL, NULL);
    CHECK(t != NULL && !wh_tpl_is_literal(t));
    wh_tpl_destroy(&t);
}

/* Run wh_cmd_render with stdout and stderr captured into malloc'd strings. */
static int run_render(char **argv, char **out, char **err, const char *dir)
{
    int argc = 0;
    while (argv[argc]) {
        argc++;
    }
    char opath[512], epath[512];
    snprintf(opath, sizeof opath, "%s/stdout", dir);
    snprintf(epath, sizeof epath, "%s/stderr", dir);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fo = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1);
    dup2(fe, 2);
    int rc = wh_cmd_render(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    close(fo);
    close(fe);
    *out = wh_read_file(opath, 1 << 20, NULL);
    *err = wh_read_file(epath, 1 << 20, NULL);
    unlink(opath);
    unlink(epath);
    return rc;
}

static void test_cmd_render(void)
{
    char *dir = wh_test_tmpdir();
    CHECK(dir != NULL);
    char *tpl =
        wh_test_write(dir, "speech.mustache", "{{#replies}}{{author}}: {{text}}. {{/replies}}");
    char *bad = wh_test_write(dir, "bad.mustache", "ok\nthen {{#replies}} never closed");
    char *data = wh_test_write(dir, "data.json",
                               "{\"replies\": [{\"author\": \"Ben\", \"text\": \"Q&A <now>\"}]}");
    char *badjson = wh_test_write(dir, "bad.json", "{\"replies\": [");
    char *out, *err;

    char *help[] = {"render", "--help", NULL};
    CHECK_INT(run_render(help, &out, &err, dir), 0);
    CHECK(out && strstr(out, "usage: wirehub render"));
    free(out);
    free(err);

    char *xml[] = {"render", "--escape", "xml", tpl, data, NULL};
    CHECK_INT(run_render(xml, &out, &err, dir), 0);
    CHECK_STR(out, "Ben: Q&amp;A &lt;now&gt;. ");
    CHECK_STR(err, "");
    free(out);
    free(err);

    char *plain[] = {"render", tpl, data, NULL};
    CHECK_INT(run_render(plain, &out, &err, dir), 0);
    CHECK_STR(out, "Ben: Q&A <now>. ");
    free(out);
    free(err);

    char *url[] = {"render", "--escape=url", tpl, data, NULL};
    CHECK_INT(run_render(url, &out, &err, dir), 0);
    CHECK_STR(out, "Ben: Q%26A%20%3Cnow%3E. ");
    free(out);
    free(err);

    char *tpl_err[] = {"render", bad, data, NULL};
    CHECK_INT(run_render(tpl_err, &out, &err, dir), 2);
    char expect[600];
    snprintf(expect, sizeof expect, "%s:2:6: unclosed section 'replies'\n", bad);
    CHECK_STR(err, expect);
    CHECK_STR(out, "");
    free(out);
    free(err);

    char *json_err[] = {"render", tpl, badjson, NULL};
    CHECK_INT(run_render(json_err, &out, &err, dir), 2);
    CHECK(err && strstr(err, "invalid JSON"));
    free(out);
    free(err);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope.json", dir);
    char *no_file[] = {"render", tpl, missing, NULL};
    CHECK_INT(run_render(no_file, &out, &err, dir), 2);
    CHECK(err && strstr(err, "cannot read") && strstr(err, "nope.json"));
    free(out);
    free(err);

    char *usage1[] = {"render", tpl, NULL};
    char *usage2[] = {"render", "--escape", "rot13", tpl, data, NULL};
    char *usage3[] = {"render", "--escape", NULL};
    char *usage4[] = {"render", "--frobnicate", tpl, data, NULL};
    char *usage5[] = {"render", tpl, data, data, NULL};
    char **usages[] = {usage1, usage2, usage3, usage4, usage5};
    for (size_t i = 0; i < sizeof usages / sizeof usages[0]; i++) {
        CHECK_INT(run_render(usages[i], &out, &err, dir), 2);
        CHECK(err && strstr(err, "usage: wirehub render"));
        CHECK_STR(out, "");
        free(out);
        free(err);
    }

    unlink(tpl);
    unlink(bad);
    unlink(data);
    unlink(badjson);
    rmdir(dir);
    free(tpl);
    free(bad);
    free(data);
    free(badjson);
    free(dir);
}

/* Not an assertion (timing depends on the machine and on valgrind): prints
   the rate for the record. */
static void bench(void)
{
    const char *text = "{{user.name}} is presenting: {{intent.slots.topic}} — reply in the thread";
    wh_tpl *t = wh_tpl_parse(text, strlen(text), NULL, 0, NULL, NULL);
    json_t *ctx =
        json_loads("{\"user\": {\"name\": \"Ana\", \"id\": \"u1\"}, \"intent\": {\"name\": "
                   "\"GivePresentationIntent\", \"slots\": {\"topic\": \"Q3 roadmap\"}}}",
                   0, NULL);
    const char *env = getenv("WH_BENCH_ITERATIONS");
    long n = env ? atol(env) : 20000;
    wh_buf b = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        b.len = 0;
        if (wh_tpl_render(t, ctx, WH_ESC_XML, &b) != WH_OK) {
            wh_test_failures++;
            break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK_STR(b.data, "Ana is presenting: Q3 roadmap — reply in the thread");
    fprintf(stderr, "bench: %ld renders in %.3f s = %.0f renders/s\n", n, secs,
            secs > 0 ? (double)n / secs : 0.0);
    wh_buf_free(&b);
    json_decref(ctx);
    wh_tpl_destroy(&t);
}

int main(void)
{
    test_parse_errors();
    test_escaping();
    test_values();
    test_sections();
    test_render_buffer();
    test_render_json();
    test_depth();
    test_render_limits();
    test_foreach_name();
    test_cmd_render();
    bench();
    return wh_test_done("template");
}
