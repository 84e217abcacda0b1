/*
 * fuzz_template.c — the Mustache subset (hub/template.c): parse, then render.
 *
 * Input: the template, then (after the first NUL byte, or else the first 0xFF)
 * JSON data. The template is parsed; when it parses it is rendered against the
 * data (or an empty context when the data is not JSON) with every escape,
 * as a string, and typed. The raw input also goes through wh_escape_append.
 * Oracle: a refused template has a message and a position inside the text;
 * a render succeeds or stops at the render limits (WH_TPL_MAX_STEPS/OUTPUT)
 * leaving the buffer as it was, the string and buffer renders agree, the typed render of
 * a template with tags is a string or a value from the data, and escaping
 * never leaves a raw special character.
 * Must not: keep anything between inputs.
 */
#include "fuzz.h"
#include "template.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static int on_name(void *ud, const char *name, int line, int col)
{
    FUZZ_CHECK(name && line >= 1 && col >= 1, "name at %d:%d", line, col);
    (*(size_t *)ud)++;
    return 0;
}

static int upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static void check_escape(const char *s, size_t len, wh_escape esc)
{
    wh_buf out = {0};
    FUZZ_CHECK(wh_escape_append(&out, s, len, esc) == WH_OK, "escape %d failed", (int)esc);
    const char *bad = esc == WH_ESC_HTML ? "<>\"" : esc == WH_ESC_XML ? "<>\"'" : "";
    for (size_t i = 0; i < out.len; i++) {
        char c = out.data[i];
        if (esc == WH_ESC_URL) {
            int unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                             (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
            FUZZ_CHECK(unreserved || (c == '%' && i + 2 < out.len && upper_hex(out.data[i + 1]) &&
                                      upper_hex(out.data[i + 2])),
                       "URL escape left 0x%02x", (unsigned char)c);
        } else {
            FUZZ_CHECK(c == '\0' || !strchr(bad, c), "escape %d left '%c'", (int)esc, c);
        }
    }
    if (esc == WH_ESC_NONE) {
        FUZZ_CHECK(out.len == len && (len == 0 || memcmp(out.data, s, len) == 0),
                   "WH_ESC_NONE changed the text");
    }
    wh_buf_free(&out);
}

static void render_all(const wh_tpl *t, const json_t *ctx, int utf8)
{
    static const wh_escape escs[] = {WH_ESC_NONE, WH_ESC_HTML, WH_ESC_XML, WH_ESC_URL};
    for (size_t i = 0; i < sizeof escs / sizeof escs[0]; i++) {
        wh_buf out = {0};
        FUZZ_CHECK(wh_buf_append(&out, "x", 1) == WH_OK, "out of memory");
        int rc = wh_tpl_render(t, ctx, escs[i], &out);
        FUZZ_CHECK(rc == WH_OK || rc == WH_ERR_TOO_LARGE, "render %d failed: %d", (int)escs[i], rc);
        if (rc == WH_ERR_TOO_LARGE) {
            /* over WH_TPL_MAX_STEPS or WH_TPL_MAX_OUTPUT: the buffer is as it was */
            FUZZ_CHECK(out.len == 1 && out.data[1] == '\0', "a refused render left output");
            wh_buf_free(&out);
            if (escs[i] == WH_ESC_NONE) {
                /* escaping only adds output: every other render stops too (and costs as
                   much), so this input is done */
                return;
            }
            continue;
        }
        char *s = wh_tpl_render_str(t, ctx, escs[i]);
        FUZZ_CHECK(s != NULL, "render_str %d failed", (int)escs[i]);
        FUZZ_CHECK(out.len - 1 == strlen(s) || memchr(out.data + 1, '\0', out.len - 1),
                   "render and render_str differ in length");
        FUZZ_CHECK(memcmp(out.data + 1, s, strlen(s)) == 0, "render and render_str differ");
        free(s);
        wh_buf_free(&out);
    }
    json_t *typed = wh_tpl_render_json(t, ctx);
    /* NULL is allowed for a template that is not UTF-8 (rule files always are) */
    FUZZ_CHECK(typed != NULL || !utf8, "render_json failed");
    if (typed && wh_tpl_is_literal(t)) {
        FUZZ_CHECK(json_is_string(typed), "a literal rendered typed to a non-string");
    }
    json_decref(typed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const uint8_t *cut = memchr(data, '\0', size);
    if (!cut) {
        cut = memchr(data, 0xFF, size);
    }
    size_t tlen = cut ? (size_t)(cut - data) : size;
    const char *json = cut ? (const char *)cut + 1 : NULL;
    size_t jlen = cut ? size - tlen - 1 : 0;

    char err[256] = "";
    int line = -1, col = -1;
    wh_tpl *t = wh_tpl_parse(text, tlen, err, sizeof err, &line, &col);
    if (!t) {
        FUZZ_CHECK(err[0] != '\0', "refused without a message");
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL, "message not terminated");
        FUZZ_CHECK(line >= 1 && col >= 1, "refused at %d:%d (%s)", line, col, err);
    } else {
        size_t names = 0;
        FUZZ_CHECK(wh_tpl_foreach_name(t, on_name, &names) == 0, "foreach_name stopped");
        FUZZ_CHECK(!wh_tpl_is_literal(t) || names == 0, "a literal with %zu names", names);
        json_t *ctx = NULL;
        if (json) {
            json_error_t jerr;
            ctx = json_loadb(json, jlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        }
        json_t *as_string = json_stringn(text, tlen);
        int utf8 = as_string != NULL;
        json_decref(as_string);
        render_all(t, ctx, utf8);
        if (ctx) {
            render_all(t, NULL, utf8);
        }
        json_decref(ctx);
        wh_tpl_destroy(&t);
        FUZZ_CHECK(t == NULL, "destroy did not clear the pointer");
    }

    check_escape(text, size, WH_ESC_NONE);
    check_escape(text, size, WH_ESC_HTML);
    check_escape(text, size, WH_ESC_XML);
    check_escape(text, size, WH_ESC_URL);
    return 0;
}
