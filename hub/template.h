/*
 * template.h — the Mustache templates of rule files: parsed once when rules
 * load, rendered per event against a JSON context.
 *
 * Supported (the Mustache spec's comments, interpolation, sections and
 * inverted modules): {{name}}, {{{name}}}, {{&name}}, {{#name}}…{{/name}},
 * {{^name}}…{{/name}}, {{! comment }}, dotted names, the implicit iterator
 * {{.}}, context-stack lookups and the standalone-line rules. Refused at parse
 * time with a message: partials ({{>x}}), set delimiters ({{=<% %>=}}),
 * template inheritance ({{<x}}, {{$x}}), section nesting deeper than
 * WH_TPL_MAX_DEPTH. Lambdas do not exist in JSON data.
 *
 * Choices where the spec leaves it to the host language (JSON here):
 *   - falsy (section skipped, inverted section rendered): missing, null,
 *     false, an empty array and an empty string. Numbers (0 too) and objects
 *     (even {}) are truthy.
 *   - text of a value: strings as-is, integers in decimal, reals in the
 *     shortest form that reads back to the same double ("1.21"), true/false,
 *     null as "", objects and arrays as compact JSON.
 *   - extension: a name component made only of digits indexes an array
 *     ("{{replies.0.author}}"); it never applies to the first component.
 *
 * Threads: a parsed template is immutable; any number of threads may render
 * one template at once.
 */
#ifndef WH_TEMPLATE_H
#define WH_TEMPLATE_H
#include "util.h"

#include <jansson.h>
#include <stddef.h>

/** Deepest section nesting a template may have. */
#define WH_TPL_MAX_DEPTH 100
/** Largest template text wh_tpl_parse accepts (bytes). */
#define WH_TPL_MAX_SIZE (16u * 1024u * 1024u)
/** Most bytes one render may add to its output. */
#define WH_TPL_MAX_OUTPUT (16u * 1024u * 1024u)
/** Most template nodes one render may visit: bounds the time nested sections over long lists
 *  take ({{#a}}{{#a}}…{{/a}}{{/a}} is |a|^depth). */
#define WH_TPL_MAX_STEPS 1000000u

typedef enum { WH_ESC_NONE = 0, WH_ESC_HTML = 1, WH_ESC_XML = 2, WH_ESC_URL = 3 } wh_escape;
typedef struct wh_tpl wh_tpl;

/**
 * Parse a template. `text` need not be NUL-terminated (len bytes are read).
 * On error returns NULL and, when given, fills err (NUL-terminated, e.g.
 * "unclosed section 'x'", "unexpected closing tag 'y'", "empty tag",
 * "unclosed tag", "partials are not supported") and *line / *col (1-based,
 * the position of the offending tag's "{{" in `text`; columns count bytes).
 * Out of memory is reported as NULL with err "out of memory", line/col 0.
 * Ownership: borrows text (a copy is kept); returns a new template the caller
 * frees with wh_tpl_destroy.
 */
wh_tpl *wh_tpl_parse(const char *text, size_t len, char *err, size_t errsize, int *line, int *col);

/** Free a template. NULL-safe (t or *t), sets *t = NULL. Ownership: takes *t. */
void wh_tpl_destroy(wh_tpl **t);

/**
 * Render against a context value, appending to out. `esc` applies to {{x}}
 * interpolation only; {{{x}}} and {{&x}} are raw. ctx may be any JSON value
 * or NULL (every name is then missing).
 * Returns WH_OK, WH_ERR_NOMEM, WH_ERR_TOO_LARGE (over WH_TPL_MAX_OUTPUT bytes or
 * WH_TPL_MAX_STEPS steps) — out->len is then back to its value at entry — or
 * WH_ERR_INVALID when t or out is NULL.
 * Ownership: borrows t and ctx; out stays the caller's.
 */
int wh_tpl_render(const wh_tpl *t, const json_t *ctx, wh_escape esc, wh_buf *out);

/**
 * Render into a new NUL-terminated string. NULL on OOM, over the limits, or NULL t.
 * Ownership: borrows t and ctx; returns a malloc'd string the caller frees.
 */
char *wh_tpl_render_str(const wh_tpl *t, const json_t *ctx, wh_escape esc);

/**
 * Typed render for rule arguments: when the template is exactly one variable
 * tag ("{{post.blocks}}", "{{{x}}}" or "{{&x}}", spaces allowed inside the
 * braces only) return the referenced value itself (json_null() when missing);
 * otherwise a JSON string of the render with WH_ESC_NONE. NULL only on OOM,
 * over the render limits (or NULL t).
 * Ownership: borrows t and ctx; returns a new reference (which may be a part
 * of ctx, so treat it as read-only).
 */
json_t *wh_tpl_render_json(const wh_tpl *t, const json_t *ctx);

/** True (1) when the template has no tags at all (a plain string), else 0. Ownership: borrows. */
int wh_tpl_is_literal(const wh_tpl *t);

/**
 * Call fn for each variable and section name used, in template order
 * (dotted text as written, e.g. "intent.slots.topic"; "." for the implicit
 * iterator; closing tags are not reported), with the tag's 1-based line and
 * column. Stops when fn returns non-zero and returns that value; 0 otherwise.
 * Ownership: borrows; `name` is valid only during the call.
 */
int wh_tpl_foreach_name(const wh_tpl *t, int (*fn)(void *ud, const char *name, int line, int col),
                        void *ud);

/**
 * Append s (len bytes) to out with the given escaping:
 *   WH_ESC_NONE  as is;
 *   WH_ESC_HTML  & < > "   → &amp; &lt; &gt; &quot; (what the Mustache spec expects);
 *   WH_ESC_XML   & < > " ' → &amp; &lt; &gt; &quot; &apos; (XML, SSML);
 *   WH_ESC_URL   every byte but RFC 3986 unreserved (A-Z a-z 0-9 - . _ ~) as %XX.
 * Returns WH_OK, WH_ERR_NOMEM or WH_ERR_INVALID (unknown esc).
 * Ownership: borrows s; out stays the caller's.
 */
int wh_escape_append(wh_buf *out, const char *s, size_t len, wh_escape esc);
#endif
