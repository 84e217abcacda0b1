/*
 * rules.c — owns rule files: it reads and validates them (every problem in
 * every file, with positions), compiles criteria and templates once, builds
 * the index that hands an event only the rules for its source and kind, and
 * renders a rule's steps against an event context.
 *
 * It must not touch the bus, start threads, log, or know how runs advance
 * (that is engine.c): reading rule files is its only I/O. A wh_rules is never
 * written after load, so matching and rendering need no locks; only the
 * reference count changes, atomically.
 */
#include "rules.h"
#include "instance.h"

#include "template.h"
#include "util.h"
#include "doc.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------ */
/* Data                                                                      */

/* A JSON value whose strings are templates, compiled once. */
typedef enum { TN_LIT, TN_TPL, TN_OBJ, TN_ARR } tn_kind;

typedef struct tnode {
    tn_kind kind;
    wh_escape esc; /* TN_TPL: WH_ESC_NONE renders typed, WH_ESC_XML as SSML text */
    json_t *lit;   /* TN_LIT: the value (scalars and tag-free strings) */
    wh_tpl *tpl;   /* TN_TPL */
    size_t n;      /* TN_OBJ/TN_ARR: number of kids */
    char **keys;   /* TN_OBJ: member names */
    struct tnode *kids;
} tnode;

typedef struct load_entry {
    char *name;
    wh_tpl *key;
    int unread;
    long limit; /* 0: every reply */
} load_entry;

struct wh_step {
    wh_step_kind kind;
    char *instance, *op, *as;
    tnode *with; /* call/await; NULL when absent */
    wh_tpl *key; /* await key, stop_await */
    int64_t every_ms, for_ms;
    tnode *vars;       /* await; NULL when absent */
    char *collect_on;  /* await; NULL when no collect */
    tnode *collect_if; /* await; NULL when collect has no `if` */
    tnode *respond;    /* respond step */
};

struct wh_rule {
    char *name, *file, *on;
    char *on_source, *on_kind; /* one allocation: on_source owns both */
    int enabled, stop;
    wh_match *match; /* NULL: no criteria, matches everything */
    size_t nloads;
    load_entry *loads;
    size_t nsteps;
    wh_step *steps;
    tnode *respond;
    wh_tpl *debounce_key; /* debounce: runs once per burst of matches with the same key */
    int64_t debounce_ms;
    char fp[17]; /* what the rule says, hashed: a stored run resumes only on the same text */
};

/* One index key ("source/kind", either part possibly "*") → rule numbers, ascending. */
typedef struct ix_slot {
    const char *source, *kind; /* borrowed from a rule; NULL: empty slot */
    uint32_t hash;
    size_t n, cap;
    size_t *rules;
} ix_slot;

struct wh_rules {
    atomic_long refs;
    size_t n, cap;
    wh_rule **v;
    size_t nfiles;
    size_t ixcap; /* power of two */
    ix_slot *ix;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* A printable, bounded copy of user text for messages: at most 60 bytes, cut
   on a UTF-8 boundary, control characters shown as '?'. */
static const char *shown(char *out, size_t size, const char *s)
{
    size_t len = strlen(s), n = len, max = size >= 64 ? 60 : size / 2;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (n < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "a mapping";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* [A-Za-z_][A-Za-z0-9_]{0,63} */
static int ident_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && !(n > 0 && c >= '0' && c <= '9')) {
            return 0;
        }
    }
    return n >= 1 && n <= WH_RULE_NAME_MAX;
}

/* An instance or kind in `on`: "*" or 1–64 of [A-Za-z0-9_.-] (as envelope names). */
static int on_part_ok(const char *s, size_t n)
{
    if (n == 1 && s[0] == '*') {
        return 1;
    }
    if (n < 1 || n > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Templated values                                                          */

static void tn_clear(tnode *n)
{
    if (!n) {
        return;
    }
    json_decref(n->lit);
    wh_tpl_destroy(&n->tpl);
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys) {
            free(n->keys[i]);
        }
        if (n->kids) {
            tn_clear(&n->kids[i]);
        }
    }
    free(n->keys);
    free(n->kids);
    memset(n, 0, sizeof *n);
}

static void tn_free(tnode **n)
{
    if (n && *n) {
        tn_clear(*n);
        free(*n);
        *n = NULL;
    }
}

static json_t *tn_render(const tnode *n, const json_t *ctx);

/* A typed render that never hands out a container of ctx. */
static json_t *render_typed(const wh_tpl *t, const json_t *ctx)
{
    json_t *v = wh_tpl_render_json(t, ctx);
    if (v && (json_is_object(v) || json_is_array(v))) {
        json_t *copy = json_deep_copy(v);
        json_decref(v);
        v = copy;
    }
    return v;
}

static json_t *tn_render(const tnode *n, const json_t *ctx)
{
    switch (n->kind) {
    case TN_LIT:
        return json_incref(n->lit);
    case TN_TPL:
        if (n->esc == WH_ESC_NONE) {
            return render_typed(n->tpl, ctx);
        } else {
            wh_buf b = {0};
            json_t *s = NULL;
            if (wh_tpl_render(n->tpl, ctx, n->esc, &b) == WH_OK) {
                s = json_stringn(b.data ? b.data : "", b.len);
            }
            wh_buf_free(&b);
            return s;
        }
    case TN_OBJ: {
        json_t *o = json_object();
        for (size_t i = 0; o && i < n->n; i++) {
            json_t *v = tn_render(&n->kids[i], ctx);
            if (!v || json_object_set_new(o, n->keys[i], v) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    case TN_ARR: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n->n; i++) {
            json_t *v = tn_render(&n->kids[i], ctx);
            if (!v || json_array_append_new(a, v) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The loader                                                                */

/* First occurrence of a rule name, for duplicate messages. */
typedef struct name_slot {
    char *name;
    char *where; /* "file:line:col" */
} name_slot;

typedef struct loader {
    const wh_rules_schema *schema;
    json_t *errors;
    int failed;
    wh_rules *r;
    /* the file being validated */
    const wh_doc *doc;
    const char *text;
    size_t len;
    /* rule names seen so far */
    name_slot *names;
    size_t nnames, namecap;
    const char *on_source; /* the rule being compiled: its `on:` instance (NULL: any) */
} loader;

static void add_error_at(loader *L, const char *ptr, int at_value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_error_at(loader *L, const char *ptr, int at_value, const char *fmt, ...)
{
    L->failed = 1;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (rc < 0) {
        return;
    }
    if (at_value) {
        wh_doc_value_error(L->doc, L->errors, ptr, "%s", msg);
    } else {
        wh_doc_error(L->doc, L->errors, ptr, "%s", msg);
    }
    free(msg);
}

#define KERR(L, ptr, ...) add_error_at(L, ptr, 0, __VA_ARGS__)
#define VERR(L, ptr, ...) add_error_at(L, ptr, 1, __VA_ARGS__)

static void oom(loader *L, const char *ptr)
{
    VERR(L, ptr, "out of memory");
}

/* "file:line:col: msg" at an explicit position (falls back to the value's). */
static void error_at_pos(loader *L, const char *ptr, int line, int col, const char *msg)
{
    L->failed = 1;
    if (!L->errors) {
        return;
    }
    json_t *s = json_sprintf("%s:%d:%d: %s", wh_doc_file(L->doc), line, col, msg);
    if (s) {
        json_array_append_new(L->errors, s);
    } else {
        wh_doc_value_error(L->doc, L->errors, ptr, "%s", msg);
    }
}

/* Byte offset of (line, col) in the source, col counted in characters; -1 if outside. */
static long source_offset(const char *text, size_t len, int line, int col)
{
    size_t i = 0;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(text + i, '\n', len - i);
        if (!nl) {
            return -1;
        }
        i = (size_t)(nl - text) + 1;
    }
    for (int c = 1; c < col; c++) {
        if (i >= len || text[i] == '\n') {
            return -1;
        }
        i++;
        while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80) {
            i++;
        }
    }
    return (long)i;
}

/* A template error inside the string at ptr. When the error is on the
   template's first line and the source holds the string's text verbatim up to
   that point (no escapes before it), point at the exact character; otherwise
   at the value. */
static void template_error(loader *L, const char *ptr, const char *value, const char *err,
                           int tline, int tcol)
{
    int line = 0, col = 0;
    wh_doc_value_pos(L->doc, ptr, &line, &col);
    if (tline == 1 && tcol >= 1 && L->text && line > 0) {
        long off = source_offset(L->text, L->len, line, col);
        size_t pre = (size_t)tcol - 1;
        if (off >= 0 && pre <= strlen(value)) {
            const char *s = L->text + off;
            size_t avail = L->len - (size_t)off;
            int quote = 0;
            if (avail > 0 && (*s == '"' || *s == '\'')) {
                quote = 1;
                s++;
                avail--;
            }
            int block = avail > 0 && (*s == '|' || *s == '>') && !quote;
            if (!block && pre <= avail && memcmp(s, value, pre) == 0 && !memchr(value, '\n', pre)) {
                int chars = 0;
                for (size_t i = 0; i < pre; i++) {
                    chars += ((unsigned char)value[i] & 0xC0) != 0x80;
                }
                col += quote + chars;
            }
        }
    }
    char msg[400];
    snprintf(msg, sizeof msg, "template: %s", err);
    error_at_pos(L, ptr, line, col, msg);
}

/* Parse the template in string value v at ptr; NULL (error reported) when bad. */
static wh_tpl *compile_tpl(loader *L, const json_t *v, const char *ptr)
{
    char err[256] = "";
    int tl = 0, tc = 0;
    const char *s = json_string_value(v);
    wh_tpl *t = wh_tpl_parse(s, json_string_length(v), err, sizeof err, &tl, &tc);
    if (!t) {
        template_error(L, ptr, s, err, tl, tc);
    }
    return t;
}

/* A template that must be a string (key, stop_await, load keys). */
static wh_tpl *compile_tpl_string(loader *L, const json_t *v, const char *ptr, const char *what)
{
    if (!json_is_string(v)) {
        VERR(L, ptr, "'%s' must be a string (a template), got %s", what, type_name(v));
        return NULL;
    }
    return compile_tpl(L, v, ptr);
}

static int speak_text(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
        s++;
    }
    return strncmp(s, "<speak>", 7) == 0;
}

/* The length of a Mustache tag at s ("{{…}}" or "{{{…}}}"), or 0 if s holds none. */
static size_t mustache_tag_len(const char *s)
{
    if (strncmp(s, "{{", 2) != 0) {
        return 0;
    }
    const char *end = strstr(s + 2, s[2] == '{' ? "}}}" : "}}");
    return end ? (size_t)(end - s) + (s[2] == '{' ? 3 : 2) : 0;
}

/*
 * Whether an SSML template's own text is well-formed XML, as Alexa and Google
 * require (a value inserted by a tag is escaped when rendered; the text around
 * it is not). Checks that each '&' starts one of XML's five entities or a
 * character reference, that each '<' starts a tag, and — when no section can
 * drop a tag — that the tags nest. Returns 0, or 1 with the problem in why.
 */
/* Whether the text at p ('&') starts one of XML's five entities or a character
   reference; its length in *len. */
static int xml_entity(const char *p, size_t *len)
{
    static const char *const ents[] = {"amp;", "lt;", "gt;", "quot;", "apos;"};
    for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
        if (strncmp(p + 1, ents[i], strlen(ents[i])) == 0) {
            *len = 1 + strlen(ents[i]);
            return 1;
        }
    }
    if (p[1] != '#') {
        return 0;
    }
    const char *q = p + 2;
    int hex = *q == 'x';
    q += hex;
    const char *digits = q;
    unsigned long cp = 0;
    while (hex ? isxdigit((unsigned char)*q) : isdigit((unsigned char)*q)) {
        unsigned d = isdigit((unsigned char)*q) ? (unsigned)(*q - '0')
                                                : (unsigned)(tolower((unsigned char)*q) - 'a' + 10);
        cp = cp < 0x200000 ? cp * (hex ? 16 : 10) + d : cp; /* past any code point: stays so */
        q++;
    }
    *len = (size_t)(q - p) + 1;
    /* a character XML allows: no NUL or control, no surrogate, nothing past U+10FFFF */
    int allowed = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
                  (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
    return q > digits && *q == ';' && allowed;
}

static int xml_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == ':' || c == '.';
}

/*
 * Read a tag's attributes from q (just past its name) to its '>': each must be
 * name="value" or name='value', once, with no '<' in the value and each '&'
 * an entity (Mustache tags in a value are left to the render, which escapes).
 * Returns the position of the '>' (or of "/>"'s '/'), or NULL with why set.
 */
static const char *ssml_attributes(const char *q, size_t at, char *why, size_t whysize)
{
    char seen[8][32];
    int nseen = 0;
    for (;;) {
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') {
            q++;
        }
        size_t tag = mustache_tag_len(q);
        if (tag) {
            q += tag; /* {{#x}}attr="…"{{/x}}: whatever renders there, the render escapes */
            continue;
        }
        if (*q == '>' || (*q == '/' && q[1] == '>')) {
            return q;
        }
        if (!*q) {
            snprintf(why, whysize, "the tag at character %zu is never closed with '>'", at);
            return NULL;
        }
        const char *name = q;
        while (xml_name_char(*q)) {
            q++;
        }
        size_t nlen = (size_t)(q - name);
        if (nlen == 0 || isdigit((unsigned char)*name) || *name == '-' || *name == '.') {
            snprintf(why, whysize, "the tag at character %zu has a malformed attribute", at);
            return NULL;
        }
        for (int i = 0; i < nseen; i++) {
            if (strlen(seen[i]) == nlen && strncmp(seen[i], name, nlen) == 0) {
                snprintf(why, whysize, "the tag at character %zu repeats the attribute '%.31s'",
                         at, seen[i]);
                return NULL;
            }
        }
        if (nseen < 8 && nlen < sizeof seen[0]) {
            memcpy(seen[nseen], name, nlen);
            seen[nseen++][nlen] = '\0';
        }
        while (*q == ' ' || *q == '\t') {
            q++;
        }
        if (*q != '=') {
            snprintf(why, whysize, "attribute '%.*s' at character %zu needs a quoted value",
                     (int)(nlen > 31 ? 31 : nlen), name, at);
            return NULL;
        }
        q++;
        while (*q == ' ' || *q == '\t') {
            q++;
        }
        if (*q != '"' && *q != '\'') {
            snprintf(why, whysize, "attribute '%.*s' at character %zu needs a quoted value",
                     (int)(nlen > 31 ? 31 : nlen), name, at);
            return NULL;
        }
        char quote = *q++;
        while (*q && *q != quote) {
            size_t t = mustache_tag_len(q);
            size_t elen;
            if (t) {
                q += t;
            } else if (*q == '<') {
                snprintf(why, whysize,
                         "'<' in attribute '%.*s' at character %zu: write &lt; for the character",
                         (int)(nlen > 31 ? 31 : nlen), name, at);
                return NULL;
            } else if (*q == '&' && !xml_entity(q, &elen)) {
                snprintf(why, whysize,
                         "'&' in attribute '%.*s' at character %zu does not start an entity: "
                         "write &amp; for the character",
                         (int)(nlen > 31 ? 31 : nlen), name, at);
                return NULL;
            } else {
                q++;
            }
        }
        if (!*q) {
            snprintf(why, whysize, "the tag at character %zu is never closed with '>'", at);
            return NULL;
        }
        q++;
    }
}

/*
 * Whether an SSML template's own text is well-formed XML, as Alexa and Google
 * require (a value inserted by a tag is escaped when rendered; the text around
 * it is not). Checks that each '&' starts one of XML's five entities or a
 * character reference, that each '<' starts a tag whose attributes are
 * quoted, single and free of '<', and — when no section can drop a tag — that
 * the tags nest in one root with nothing after it. Returns 0, or 1 with the
 * problem in why.
 */
static int ssml_problem(const char *s, char *why, size_t whysize)
{
    char stack[16][32];
    int depth = 0, sections = strstr(s, "{{#") || strstr(s, "{{^"), rooted = 0;
    size_t at = 0; /* characters of text, for the message */
    for (const char *p = s; *p;) {
        size_t tag = mustache_tag_len(p);
        if (tag) {
            if (!sections && rooted && depth == 0) {
                snprintf(why, whysize, "text after the closing </speak> (SSML has one root)");
                return 1;
            }
            p += tag;
            continue;
        }
        at++;
        if (!sections && rooted && depth == 0 && !isspace((unsigned char)*p)) {
            snprintf(why, whysize, "%s after the closing </speak> (SSML has one root)",
                     *p == '<' ? "another element" : "text");
            return 1;
        }
        size_t elen;
        if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') {
            snprintf(why, whysize, "a control character (0x%02X) at character %zu",
                     (unsigned)(unsigned char)*p, at);
            return 1;
        }
        if (strncmp(p, "]]>", 3) == 0) {
            snprintf(why, whysize, "\"]]>\" at character %zu: write ]]&gt;", at);
            return 1;
        }
        if (*p == '&') {
            if (!xml_entity(p, &elen)) {
                snprintf(why, whysize,
                         "'&' at character %zu does not start an entity: write &amp; for "
                         "the character",
                         at);
                return 1;
            }
            p++;
            continue;
        }
        if (*p != '<') {
            p++;
            continue;
        }
        const char *q = p + 1;
        int closing = *q == '/';
        q += closing;
        if (!closing && (*q == '!' || *q == '?')) {
            /* a comment or CDATA: nothing a template inserts there is escaped, and a
               comment holds no "--"; other declarations are no SSML */
            int comment = strncmp(q, "!--", 3) == 0, cdata = strncmp(q, "![CDATA[", 8) == 0;
            const char *body = q + (comment ? 3 : cdata ? 8 : 0);
            const char *end = comment ? strstr(body, "-->") : cdata ? strstr(body, "]]>") : NULL;
            if (!comment && !cdata) {
                snprintf(why, whysize, "%s at character %zu is not SSML",
                         *q == '?' ? "a processing instruction" : "a <!…> declaration", at);
                return 1;
            }
            if (!end) {
                snprintf(why, whysize, "the %s at character %zu is never closed",
                         comment ? "comment" : "CDATA section", at);
                return 1;
            }
            size_t blen = (size_t)(end - body);
            char *inner = strndup(body, blen);
            int dashes = comment && inner && strstr(inner, "--");
            int tpl = inner && strstr(inner, "{{");
            free(inner);
            if (dashes || tpl) {
                snprintf(why, whysize, "the %s at character %zu holds %s",
                         comment ? "comment" : "CDATA section", at,
                         tpl ? "a template tag (what it inserts there is not escaped)"
                             : "\"--\"");
                return 1;
            }
            p = end + 3;
            continue;
        }
        if (!isalpha((unsigned char)*q) && *q != '_') {
            snprintf(why, whysize,
                     "'<' at character %zu does not start a tag: write &lt; for the character",
                     at);
            return 1;
        }
        const char *name = q;
        while (xml_name_char(*q)) {
            q++;
        }
        size_t nlen = (size_t)(q - name);
        if (closing) {
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') {
                q++;
            }
            if (*q != '>') {
                snprintf(why, whysize, "the closing tag at character %zu is malformed", at);
                return 1;
            }
        } else {
            if (*q && *q != '>' && *q != '/' && !isspace((unsigned char)*q) &&
                !mustache_tag_len(q)) {
                snprintf(why, whysize, "the tag name at character %zu is malformed", at);
                return 1;
            }
            q = ssml_attributes(q, at, why, whysize);
            if (!q) {
                return 1;
            }
        }
        int empty = *q == '/';
        q += empty; /* at the '>' */
        if (!sections && closing) {
            int n = (int)(nlen > 31 ? 31 : nlen);
            if (depth == 0) {
                snprintf(why, whysize, "</%.*s> at character %zu closes no open <%.*s>", n, name,
                         at, n, name);
                return 1;
            }
            if (strlen(stack[depth - 1]) != nlen || strncmp(stack[depth - 1], name, nlen) != 0) {
                snprintf(why, whysize, "</%.*s> at character %zu comes while <%.31s> is open", n,
                         name, at, stack[depth - 1]);
                return 1;
            }
            depth--;
        } else if (!sections && !empty) {
            if (depth == (int)(sizeof stack / sizeof stack[0]) || nlen >= sizeof stack[0]) {
                sections = 1; /* deeper or longer than any real SSML: stop checking nesting */
            } else {
                memcpy(stack[depth], name, nlen);
                stack[depth][nlen] = '\0';
                depth++;
                rooted = 1;
            }
        }
        at += (size_t)(q - p);
        p = q + 1;
    }
    if (!sections && depth > 0) {
        snprintf(why, whysize, "<%.31s> is never closed", stack[depth - 1]);
        return 1;
    }
    return 0;
}

/* Compile v into n. `respond` turns on the SSML rule for speech/reprompt. */
static void tn_compile(loader *L, const json_t *v, const char *ptr, int depth, int respond,
                       const char *member, tnode *n)
{
    memset(n, 0, sizeof *n);
    n->kind = TN_LIT;
    if (depth > WH_RULES_MAX_DEPTH) {
        VERR(L, ptr, "nested deeper than %d levels", WH_RULES_MAX_DEPTH);
        return;
    }
    if (json_is_string(v)) {
        wh_tpl *t = compile_tpl(L, v, ptr);
        if (!t) {
            return;
        }
        int ssml = respond && member &&
                   (strcmp(member, "speech") == 0 || strcmp(member, "reprompt") == 0) &&
                   speak_text(json_string_value(v));
        char why[160];
        if (ssml && ssml_problem(json_string_value(v), why, sizeof why)) {
            VERR(L, ptr, "'%s' is SSML (it starts with <speak>) and must be well-formed XML: %s",
                 member, why);
        }
        if (wh_tpl_is_literal(t) && !ssml) {
            wh_tpl_destroy(&t);
            n->lit = json_incref((json_t *)v);
        } else {
            n->kind = TN_TPL;
            n->tpl = t;
            n->esc = ssml ? WH_ESC_XML : WH_ESC_NONE;
        }
        return;
    }
    if (json_is_object(v)) {
        size_t cnt = json_object_size(v);
        n->kind = TN_OBJ;
        n->keys = calloc(cnt ? cnt : 1, sizeof *n->keys);
        n->kids = calloc(cnt ? cnt : 1, sizeof *n->kids);
        if (!n->keys || !n->kids) {
            oom(L, ptr);
            return;
        }
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
            char *kp = wh_ptr_child_dup(ptr, key);
            n->keys[n->n] = strdup(key);
            if (!kp || !n->keys[n->n]) {
                free(kp);
                free(n->keys[n->n]);
                n->keys[n->n] = NULL;
                oom(L, ptr);
                return;
            }
            tn_compile(L, val, kp, depth + 1, respond, key, &n->kids[n->n]);
            n->n++;
            free(kp);
        }
        return;
    }
    if (json_is_array(v)) {
        size_t cnt = json_array_size(v);
        n->kind = TN_ARR;
        n->kids = calloc(cnt ? cnt : 1, sizeof *n->kids);
        if (!n->kids) {
            oom(L, ptr);
            return;
        }
        for (size_t i = 0; i < cnt; i++) {
            char *ip = wh_ptr_index_dup(ptr, i);
            if (!ip) {
                oom(L, ptr);
                return;
            }
            /* speech inside a list keeps the member name that holds the list */
            tn_compile(L, json_array_get(v, i), ip, depth + 1, respond, member, &n->kids[n->n]);
            n->n++;
            free(ip);
        }
        return;
    }
    n->lit = json_incref((json_t *)v);
}

static tnode *tn_new(loader *L, const json_t *v, const char *ptr, int respond)
{
    tnode *n = calloc(1, sizeof *n);
    if (!n) {
        oom(L, ptr);
        return NULL;
    }
    tn_compile(L, v, ptr, 0, respond, NULL, n);
    return n;
}

/* Report every key of obj not in `known` (NULL-terminated). */
static void check_keys(loader *L, const json_t *obj, const char *ptr, const char *where,
                       const char *const *known)
{
    char list[256] = "";
    size_t o = 0;
    for (size_t i = 0; known[i]; i++) {
        int w = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", known[i]);
        if (w < 0 || (size_t)w >= sizeof list - o) {
            break;
        }
        o += (size_t)w;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        size_t i = 0;
        while (known[i] && strcmp(known[i], key) != 0) {
            i++;
        }
        if (!known[i]) {
            char kp[1024], k[80];
            KERR(L, wh_ptr_child(kp, sizeof kp, ptr, key), "unknown key '%s' %s (known: %s)",
                 shown(k, sizeof k, key), where, list);
        }
    }
}

/* A `respond:` mapping against what the rule's connector reads (its respond_keys). */
static void check_respond_keys(loader *L, const json_t *respond, const char *ptr)
{
    const wh_rules_schema *s = L->schema;
    if (!s || !s->respond_keys || !L->on_source || !json_is_object(respond)) {
        return;
    }
    const char *const *known = s->respond_keys(s->ud, L->on_source);
    if (known) {
        char where[160];
        snprintf(where, sizeof where, "in a respond to %s", L->on_source);
        check_keys(L, respond, ptr, where, known);
    }
}

static int bool_member(loader *L, const json_t *obj, const char *ptr, const char *key, int def)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) {
        return def;
    }
    if (!json_is_boolean(v)) {
        char kp[1024];
        VERR(L, wh_ptr_child(kp, sizeof kp, ptr, key), "'%s' must be true or false, got %s", key,
             type_name(v));
        return def;
    }
    return json_is_true(v);
}

static int instance_known(loader *L, const char *inst)
{
    const wh_rules_schema *s = L->schema;
    return !s || !s->has_instance || s->has_instance(s->ud, inst);
}

static const char *instance_list(loader *L)
{
    const wh_rules_schema *s = L->schema;
    const char *names = s && s->instance_names ? s->instance_names(s->ud) : NULL;
    return names && *names ? names : "none";
}

/* Check an `on` value ("inst/kind", either part "*"); splits it into *src and *kind
   (one malloc'd block, owned by *src) when valid. */
static int check_on(loader *L, const json_t *v, const char *ptr, char **src, char **kind)
{
    if (!json_is_string(v)) {
        VERR(L, ptr, "'on' must be a string like 'instance/kind', got %s", type_name(v));
        return -1;
    }
    const char *s = json_string_value(v);
    const char *slash = strchr(s, '/');
    char shw[80];
    if (!slash || !on_part_ok(s, (size_t)(slash - s)) ||
        !on_part_ok(slash + 1, strlen(slash + 1)) || strlen(s) != json_string_length(v)) {
        VERR(L, ptr, "bad 'on' value '%s': expected instance/kind (either may be *)",
             shown(shw, sizeof shw, s));
        return -1;
    }
    size_t il = (size_t)(slash - s);
    char *copy = strdup(s);
    if (!copy) {
        oom(L, ptr);
        return -1;
    }
    copy[il] = '\0';
    int rc = 0;
    if (strcmp(copy, "*") != 0 && strcmp(copy, "hub") != 0 && !instance_known(L, copy)) {
        VERR(L, ptr, "unknown instance '%s' (known: %s)", copy, instance_list(L));
        rc = -1;
    }
    if (rc == 0 && src) {
        *src = copy;
        *kind = copy + il + 1;
    } else {
        free(copy);
    }
    return rc;
}

/* Resolve "instance.operation" (split at the last '.'); returns the op (or NULL
   when the schema cannot tell) and sets *inst and *opname (malloc'd) when well formed. */
static const wh_operation *check_target(loader *L, const json_t *v, const char *ptr,
                                        const char *what, char **inst, char **opname, int *ok)
{
    *ok = 0;
    if (!json_is_string(v)) {
        VERR(L, ptr, "'%s' must be a string like 'instance.operation', got %s", what, type_name(v));
        return NULL;
    }
    const char *s = json_string_value(v);
    const char *dot = strrchr(s, '.');
    char shw[80];
    if (!dot || dot == s || !dot[1] || strlen(s) != json_string_length(v)) {
        VERR(L, ptr, "'%s' must be 'instance.operation', got '%s'", what,
             shown(shw, sizeof shw, s));
        return NULL;
    }
    *inst = strndup(s, (size_t)(dot - s));
    *opname = strdup(dot + 1);
    if (!*inst || !*opname) {
        oom(L, ptr);
        return NULL;
    }
    if (!instance_known(L, *inst)) {
        VERR(L, ptr, "unknown instance '%s' (known: %s)", shown(shw, sizeof shw, *inst),
             instance_list(L));
        return NULL;
    }
    const wh_rules_schema *sc = L->schema;
    if (!sc || !sc->find_op) {
        *ok = 1;
        return NULL;
    }
    const wh_operation *op = sc->find_op(sc->ud, *inst, *opname);
    if (!op) {
        const char *names = sc->op_names ? sc->op_names(sc->ud, *inst) : NULL;
        char shw2[80];
        VERR(L, ptr, "unknown operation '%s' for instance '%s' (known: %s)",
             shown(shw2, sizeof shw2, *opname), *inst, names && *names ? names : "none");
        return NULL;
    }
    *ok = 1;
    return op;
}

/* `with` against the operation's args table (names and required ones). */
static void check_args(loader *L, const wh_operation *op, const char *inst, const json_t *with,
                       const char *step_ptr, const char *with_ptr)
{
    if (!op || !op->args) {
        return;
    }
    char list[512] = "";
    size_t o = 0;
    for (const wh_option *a = op->args; a->name; a++) {
        int w = snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", a->name);
        if (w < 0 || (size_t)w >= sizeof list - o) {
            break;
        }
        o += (size_t)w;
    }
    if (with) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)with, key, val)
        {
            const wh_option *a = op->args;
            while (a->name && strcmp(a->name, key) != 0) {
                a++;
            }
            if (!a->name) {
                char kp[1024], k[80];
                KERR(L, wh_ptr_child(kp, sizeof kp, with_ptr, key),
                     "unknown argument '%s' for %s.%s (known: %s)", shown(k, sizeof k, key), inst,
                     op->name, list[0] ? list : "none");
            } else if (!(json_is_string(val) && strstr(json_string_value(val), "{{")) &&
                       !wh_arg_fits(a->type, val)) {
                /* a literal the operation cannot take (a template is checked when rendered) */
                char kp[1024];
                char *text = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
                VERR(L, wh_ptr_child(kp, sizeof kp, with_ptr, key),
                     "argument '%s' for %s.%s must be %s, got %.40s%s", a->name, inst, op->name,
                     wh_opt_type_name(a->type), text ? text : "?",
                     text && strlen(text) > 40 ? "…" : "");
                free(text);
            }
        }
    }
    for (const wh_option *a = op->args; a->name; a++) {
        const json_t *given = json_object_get(with, a->name);
        if ((a->flags & WH_OPT_REQUIRED) && json_is_null(given)) {
            char kp[1024];
            VERR(L, wh_ptr_child(kp, sizeof kp, with_ptr, a->name),
                 "argument '%s' for %s.%s is required: null leaves it out", a->name, inst,
                 op->name);
        }
        if ((a->flags & WH_OPT_REQUIRED) && !given) {
            KERR(L, with ? with_ptr : step_ptr, "missing required argument '%s' for %s.%s", a->name,
                 inst, op->name);
        }
    }
}

/* A duration member: a string for wh_parse_duration_ms() or a number of seconds. */
static int64_t duration_member(loader *L, const json_t *step, const char *ptr, const char *key)
{
    char kp[1024];
    wh_ptr_child(kp, sizeof kp, ptr, key);
    const json_t *v = json_object_get(step, key);
    if (!v) {
        VERR(L, ptr, "await step has no '%s' (a duration like 20s)", key);
        return -1;
    }
    int64_t ms = -1;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (s[0] >= '0' && s[0] <= '9') {
            ms = wh_parse_duration_ms(s);
        }
    } else if (json_is_number(v) && json_number_value(v) >= 0 &&
               json_number_value(v) < 9000000000000.0) {
        ms = (int64_t)(json_number_value(v) * 1000);
    }
    if (ms < 0) {
        VERR(L, kp, "'%s' must be a duration like 20s, 30m or 2h", key);
        return -1;
    }
    if (ms < 1000) {
        VERR(L, kp, "'%s' must be at least 1s", key);
        return -1;
    }
    return ms;
}

static void fmt_duration(int64_t ms, char *out, size_t size)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < WH_ARRAY_LEN(units); i++) {
        if (ms > 0 && ms % units[i].ms == 0) {
            snprintf(out, size, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    snprintf(out, size, "%lldms", (long long)ms);
}

static const char *const call_keys[] = {"call", "with", "as", NULL};
static const char *const await_keys[] = {"await", "with", "key",     "every",
                                         "for",   "vars", "collect", NULL};
static const char *const respond_keys[] = {"respond", NULL};
static const char *const stop_keys[] = {"stop_await", NULL};
static const char *const collect_keys[] = {"on", "if", NULL};
static const char *const rule_keys[] = {"name", "on",      "enabled", "stop", "if",
                                        "load", "do",      "respond", "debounce", NULL};
static const char *const debounce_keys[] = {"key", "for", NULL};
static const char *const load_keys[] = {"key", "unread", "limit", NULL};
static const char *const top_keys[] = {"rules", NULL};

/* `with` of a call/await: a mapping, templated. */
static void compile_with(loader *L, const json_t *step, const char *ptr, const wh_operation *op,
                         const char *inst, wh_step *st)
{
    char wp[1024];
    wh_ptr_child(wp, sizeof wp, ptr, "with");
    const json_t *with = json_object_get(step, "with");
    if (with && !json_is_object(with)) {
        VERR(L, wp, "'with' must be a mapping of argument names to values, got %s",
             type_name(with));
        return;
    }
    if (op) {
        check_args(L, op, inst, with, ptr, wp);
    }
    if (with) {
        st->with = tn_new(L, with, wp, 0);
    }
}

static void compile_collect(loader *L, const json_t *c, const char *ptr, wh_step *st)
{
    if (!json_is_object(c)) {
        VERR(L, ptr, "'collect' must be a mapping with 'on' and optional 'if', got %s",
             type_name(c));
        return;
    }
    check_keys(L, c, ptr, "in collect", collect_keys);
    char op[1024], ip[1024];
    wh_ptr_child(op, sizeof op, ptr, "on");
    wh_ptr_child(ip, sizeof ip, ptr, "if");
    const json_t *on = json_object_get(c, "on");
    if (!on) {
        VERR(L, ptr, "'collect' has no 'on' (instance/kind)");
    } else if (check_on(L, on, op, NULL, NULL) == 0) {
        st->collect_on = strdup(json_string_value(on));
        if (!st->collect_on) {
            oom(L, op);
        }
    }
    const json_t *crit = json_object_get(c, "if");
    if (crit && !json_is_null(crit)) {
        /* The shape is checked now, with the templates as literal text. */
        wh_match *m = wh_match_compile(L->doc, ip, crit, L->errors);
        if (!m) {
            L->failed = 1;
        }
        wh_match_destroy(&m);
        st->collect_if = tn_new(L, crit, ip, 0);
    }
}

static void compile_step(loader *L, const json_t *step, const char *ptr, wh_step *st,
                         json_t *as_names)
{
    static const char *const kinds[] = {"call", "await", "respond", "stop_await"};
    if (!json_is_object(step)) {
        VERR(L, ptr, "a step must be a mapping with one of call, await, respond, stop_await");
        return;
    }
    int found = -1, nfound = 0;
    for (int i = 0; i < 4; i++) {
        if (json_object_get(step, kinds[i])) {
            if (nfound++ == 0) {
                found = i;
            } else {
                VERR(L, ptr,
                     "a step has both '%s' and '%s'; use exactly one of call, await, "
                     "respond, stop_await",
                     kinds[found], kinds[i]);
            }
        }
    }
    if (nfound == 0) {
        /* name what is there instead (a typo like `cal:`), at that key, and still
         * check the templates under `with:` so one run reports those too */
        const char *key;
        const json_t *kv;
        int named = 0;
        json_object_foreach((json_t *)step, key, kv)
        {
            if (strcmp(key, "with") && strcmp(key, "as") && strcmp(key, "key") &&
                strcmp(key, "every") && strcmp(key, "for") && strcmp(key, "vars") &&
                strcmp(key, "collect")) {
                char kp[1024], shw[80];
                KERR(L, wh_ptr_child(kp, sizeof kp, ptr, key),
                     "unknown step '%s': a step needs one of call, await, respond, stop_await",
                     shown(shw, sizeof shw, key));
                named++;
            }
        }
        if (!named) {
            VERR(L, ptr, "a step needs one of call, await, respond, stop_await");
        }
        compile_with(L, step, ptr, NULL, NULL, st);
        return;
    }
    if (nfound > 1) {
        return;
    }
    char kp[1024];
    wh_ptr_child(kp, sizeof kp, ptr, kinds[found]);
    const json_t *v = json_object_get(step, kinds[found]);
    st->kind = (wh_step_kind)(found + 1);
    switch (st->kind) {
    case WH_STEP_CALL: {
        check_keys(L, step, ptr, "in a call step", call_keys);
        int ok;
        const wh_operation *op = check_target(L, v, kp, "call", &st->instance, &st->op, &ok);
        compile_with(L, step, ptr, ok ? op : NULL, st->instance, st);
        const json_t *as = json_object_get(step, "as");
        if (as) {
            char ap[1024], shw[80];
            wh_ptr_child(ap, sizeof ap, ptr, "as");
            if (!json_is_string(as) || !ident_ok(json_string_value(as))) {
                VERR(L, ap,
                     "'as' must be a name: a letter or _, then letters, digits or _ (at most %d)",
                     WH_RULE_NAME_MAX);
            } else if (json_object_get(as_names, json_string_value(as))) {
                VERR(L, ap, "duplicate result name '%s' in this rule",
                     shown(shw, sizeof shw, json_string_value(as)));
            } else if (strcmp(json_string_value(as), "event") == 0) {
                /* it would hide the envelope: {{event.id}} would read the result */
                VERR(L, ap, "'as: event' would hide the event's own id, time, source and "
                            "kind: pick another name");
            } else {
                json_object_set_new(as_names, json_string_value(as), json_true());
                st->as = strdup(json_string_value(as));
                if (!st->as) {
                    oom(L, ap);
                }
            }
        }
        break;
    }
    case WH_STEP_AWAIT: {
        check_keys(L, step, ptr, "in an await step", await_keys);
        int ok;
        const wh_operation *op = check_target(L, v, kp, "await", &st->instance, &st->op, &ok);
        if (op && !(op->flags & WH_OP_POLL)) {
            VERR(L, kp, "'await' needs a poll operation; %s.%s is not one", st->instance, st->op);
            op = NULL;
        }
        compile_with(L, step, ptr, ok ? op : NULL, st->instance, st);
        const json_t *key = json_object_get(step, "key");
        char p[1024];
        if (!key) {
            VERR(L, ptr, "await step has no 'key' (a template naming the replies)");
        } else {
            st->key = compile_tpl_string(L, key, wh_ptr_child(p, sizeof p, ptr, "key"), "key");
        }
        st->every_ms = duration_member(L, step, ptr, "every");
        st->for_ms = duration_member(L, step, ptr, "for");
        if (st->every_ms > 0 && st->for_ms > 0 && st->for_ms <= st->every_ms) {
            char e[32], f[32];
            fmt_duration(st->every_ms, e, sizeof e);
            fmt_duration(st->for_ms, f, sizeof f);
            VERR(L, wh_ptr_child(p, sizeof p, ptr, "for"),
                 "'for' (%s) must be longer than 'every' (%s)", f, e);
        }
        const json_t *vars = json_object_get(step, "vars");
        if (vars) {
            wh_ptr_child(p, sizeof p, ptr, "vars");
            if (!json_is_object(vars)) {
                VERR(L, p, "'vars' must be a mapping, got %s", type_name(vars));
            } else {
                st->vars = tn_new(L, vars, p, 0);
            }
        }
        const json_t *collect = json_object_get(step, "collect");
        if (collect) {
            compile_collect(L, collect, wh_ptr_child(p, sizeof p, ptr, "collect"), st);
        }
        break;
    }
    case WH_STEP_RESPOND:
        check_keys(L, step, ptr, "in a respond step", respond_keys);
        if (!json_is_object(v)) {
            VERR(L, kp, "'respond' must be a mapping (speech, text, ...), got %s", type_name(v));
        } else {
            check_respond_keys(L, v, kp);
            st->respond = tn_new(L, v, kp, 1);
        }
        break;
    case WH_STEP_STOP_AWAIT:
        check_keys(L, step, ptr, "in a stop_await step", stop_keys);
        st->key = compile_tpl_string(L, v, kp, "stop_await");
        break;
    }
}

static void compile_loads(loader *L, const json_t *load, const char *ptr, wh_rule *rule)
{
    if (!json_is_object(load)) {
        VERR(L, ptr, "'load' must be a mapping of name: key template, got %s", type_name(load));
        return;
    }
    size_t n = json_object_size(load);
    rule->loads = calloc(n ? n : 1, sizeof *rule->loads);
    if (!rule->loads) {
        oom(L, ptr);
        return;
    }
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)load, name, v)
    {
        char ep[1024], kp[1024], shw[80];
        wh_ptr_child(ep, sizeof ep, ptr, name);
        load_entry *e = &rule->loads[rule->nloads++];
        if (!ident_ok(name)) {
            KERR(L, ep,
                 "load name '%s' must be a letter or _, then letters, digits or _ (at most %d)",
                 shown(shw, sizeof shw, name), WH_RULE_NAME_MAX);
        }
        e->name = strdup(name);
        if (!e->name) {
            oom(L, ep);
            continue;
        }
        if (json_is_string(v)) {
            e->key = compile_tpl(L, v, ep);
        } else if (json_is_object(v)) {
            check_keys(L, v, ep, "in a load entry", load_keys);
            const json_t *key = json_object_get(v, "key");
            if (!key) {
                VERR(L, ep, "load entry '%s' has no 'key'", shown(shw, sizeof shw, name));
            } else {
                e->key = compile_tpl_string(L, key, wh_ptr_child(kp, sizeof kp, ep, "key"), "key");
            }
            e->unread = bool_member(L, v, ep, "unread", 0);
            const json_t *limit = json_object_get(v, "limit");
            if (limit && (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
                          json_integer_value(limit) > WH_LOAD_LIMIT_MAX)) {
                char got[40];
                if (json_is_integer(limit)) {
                    snprintf(got, sizeof got, "%" JSON_INTEGER_FORMAT, json_integer_value(limit));
                } else {
                    snprintf(got, sizeof got, "%s", type_name(limit));
                }
                VERR(L, wh_ptr_child(kp, sizeof kp, ep, "limit"),
                     "'limit' must be a whole number from 1 to %d, got %s", WH_LOAD_LIMIT_MAX,
                     got);
            } else if (limit) {
                e->limit = (long)json_integer_value(limit);
            }
        } else {
            VERR(L, ep,
                 "load entry '%s' must be a key template or a mapping {key, unread, limit}, got %s",
                 shown(shw, sizeof shw, name), type_name(v));
        }
    }
}

static void step_clear(wh_step *s)
{
    free(s->instance);
    free(s->op);
    free(s->as);
    tn_free(&s->with);
    wh_tpl_destroy(&s->key);
    tn_free(&s->vars);
    free(s->collect_on);
    tn_free(&s->collect_if);
    tn_free(&s->respond);
}

static void rule_free(wh_rule *r)
{
    if (!r) {
        return;
    }
    free(r->name);
    free(r->file);
    free(r->on);
    free(r->on_source);
    wh_match_destroy(&r->match);
    for (size_t i = 0; i < r->nloads; i++) {
        free(r->loads[i].name);
        wh_tpl_destroy(&r->loads[i].key);
    }
    free(r->loads);
    for (size_t i = 0; i < r->nsteps; i++) {
        step_clear(&r->steps[i]);
    }
    free(r->steps);
    tn_free(&r->respond);
    wh_tpl_destroy(&r->debounce_key);
    free(r);
}

/* Remember a rule name; report a duplicate with where the first one is. */
static void check_name(loader *L, const char *name, const char *ptr)
{
    int line = 0, col = 0;
    wh_doc_pos(L->doc, ptr, &line, &col);
    for (size_t i = 0; i < L->nnames; i++) {
        if (strcmp(L->names[i].name, name) == 0) {
            char shw[80];
            KERR(L, ptr, "duplicate rule name '%s' (first in %s)", shown(shw, sizeof shw, name),
                 L->names[i].where);
            return;
        }
    }
    /* names are few (one per rule) and checked once, at load */
    if (L->nnames == L->namecap) {
        size_t cap = L->namecap ? L->namecap * 2 : 64;
        name_slot *v = realloc(L->names, cap * sizeof *v);
        if (!v) {
            oom(L, ptr);
            return;
        }
        L->names = v;
        L->namecap = cap;
    }
    name_slot *s = &L->names[L->nnames];
    if (asprintf(&s->where, "%s:%d:%d", wh_doc_file(L->doc), line, col) < 0) {
        oom(L, ptr);
        return;
    }
    s->name = strdup(name);
    if (!s->name) {
        free(s->where);
        oom(L, ptr);
        return;
    }
    L->nnames++;
}

static void compile_rule(loader *L, const json_t *item, const char *ptr)
{
    if (!json_is_object(item)) {
        VERR(L, ptr, "a rule must be a mapping (name, on, ...), got %s", type_name(item));
        return;
    }
    L->on_source = NULL; /* set from this rule's `on:` below */
    wh_rule *rule = calloc(1, sizeof *rule);
    json_t *as_names = json_object();
    if (!rule || !as_names) {
        free(rule);
        json_decref(as_names);
        oom(L, ptr);
        return;
    }
    check_keys(L, item, ptr, "in a rule", rule_keys);
    /* the rule as parsed (keys sorted: formatting and key order do not change it) */
    char *canon = json_dumps(item, JSON_SORT_KEYS | JSON_COMPACT);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (canon && EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL) && mdlen >= 8) {
        for (int i = 0; i < 8; i++) {
            snprintf(rule->fp + 2 * i, 3, "%02x", md[i]);
        }
    }
    free(canon);
    char p[1024];
    int line = 0, col = 0;
    wh_doc_value_pos(L->doc, ptr, &line, &col);
    if (asprintf(&rule->file, "%s:%d", wh_doc_file(L->doc), line) < 0) {
        rule->file = NULL;
        oom(L, ptr);
    }

    const json_t *name = json_object_get(item, "name");
    wh_ptr_child(p, sizeof p, ptr, "name");
    if (!name) {
        VERR(L, ptr, "rule has no 'name'");
    } else if (!json_is_string(name) || json_string_length(name) == 0 ||
               strlen(json_string_value(name)) != json_string_length(name)) {
        VERR(L, p, "'name' must be a non-empty string, got %s", type_name(name));
    } else {
        rule->name = strdup(json_string_value(name));
        if (!rule->name) {
            oom(L, p);
        } else {
            check_name(L, rule->name, p);
        }
    }

    const json_t *on = json_object_get(item, "on");
    wh_ptr_child(p, sizeof p, ptr, "on");
    if (!on) {
        VERR(L, ptr, "rule has no 'on' (instance/kind)");
    } else if (check_on(L, on, p, &rule->on_source, &rule->on_kind) == 0) {
        rule->on = strdup(json_string_value(on));
        if (!rule->on) {
            oom(L, p);
        }
    }
    L->on_source = rule->on_source && strcmp(rule->on_source, "*") != 0 ? rule->on_source : NULL;

    rule->enabled = bool_member(L, item, ptr, "enabled", 1);
    rule->stop = bool_member(L, item, ptr, "stop", 0);

    const json_t *crit = json_object_get(item, "if");
    if (crit && !json_is_null(crit)) {
        rule->match =
            wh_match_compile(L->doc, wh_ptr_child(p, sizeof p, ptr, "if"), crit, L->errors);
        if (!rule->match) {
            L->failed = 1;
        }
    }

    const json_t *load = json_object_get(item, "load");
    if (load) {
        compile_loads(L, load, wh_ptr_child(p, sizeof p, ptr, "load"), rule);
    }

    const json_t *steps = json_object_get(item, "do");
    if (steps) {
        wh_ptr_child(p, sizeof p, ptr, "do");
        if (!json_is_array(steps)) {
            VERR(L, p, "'do' must be a list of steps, got %s", type_name(steps));
        } else {
            size_t n = json_array_size(steps);
            rule->steps = calloc(n ? n : 1, sizeof *rule->steps);
            if (!rule->steps) {
                oom(L, p);
            } else {
                for (size_t i = 0; i < n; i++) {
                    char sp[1024];
                    wh_ptr_index(sp, sizeof sp, p, i);
                    compile_step(L, json_array_get(steps, i), sp, &rule->steps[i], as_names);
                    rule->nsteps++;
                }
            }
        }
    }

    const json_t *debounce = json_object_get(item, "debounce");
    if (debounce) {
        wh_ptr_child(p, sizeof p, ptr, "debounce");
        if (!json_is_object(debounce)) {
            VERR(L, p, "'debounce' must be a mapping {key, for}, got %s", type_name(debounce));
        } else {
            check_keys(L, debounce, p, "in debounce", debounce_keys);
            char kp[1100];
            const json_t *key = json_object_get(debounce, "key");
            const json_t *window = json_object_get(debounce, "for");
            if (!key) {
                VERR(L, p, "debounce has no 'key' (a template naming the burst)");
            } else {
                rule->debounce_key =
                    compile_tpl_string(L, key, wh_ptr_child(kp, sizeof kp, p, "key"), "key");
            }
            /* as every duration in a rule: a string, or a number of seconds */
            int64_t ms = json_is_string(window) ? wh_parse_duration_ms(json_string_value(window))
                         : json_is_number(window) && json_number_value(window) >= 0 &&
                                 json_number_value(window) <= 86400
                             ? (int64_t)(json_number_value(window) * 1000)
                             : -1;
            if (!window) {
                VERR(L, p, "debounce has no 'for' (a duration like 10s)");
            } else if (ms < 100 || ms > 86400000) {
                VERR(L, wh_ptr_child(kp, sizeof kp, p, "for"),
                     "'for' must be a duration from 100ms to 1d, like 10s");
            } else {
                rule->debounce_ms = ms;
            }
            if (rule->respond || json_object_get(item, "respond")) {
                VERR(L, p, "a debounced rule cannot 'respond' (it runs after the caller left)");
            }
        }
    }

    const json_t *respond = json_object_get(item, "respond");
    if (respond) {
        wh_ptr_child(p, sizeof p, ptr, "respond");
        if (!json_is_object(respond)) {
            VERR(L, p, "'respond' must be a mapping (speech, text, ...), got %s",
                 type_name(respond));
        } else {
            check_respond_keys(L, respond, p);
            rule->respond = tn_new(L, respond, p, 1);
        }
    }
    json_decref(as_names);

    /* Kept even after errors (to report duplicates across files); the set is
       discarded when anything failed. */
    wh_rules *r = L->r;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        wh_rule **v = realloc(r->v, cap * sizeof *v);
        if (!v) {
            rule_free(rule);
            oom(L, ptr);
            return;
        }
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = rule;
}

static void compile_doc(loader *L)
{
    const json_t *root = wh_doc_root(L->doc);
    if (!json_is_object(root)) {
        VERR(L, "", "a rule file must be a mapping with a 'rules' list, got %s", type_name(root));
        return;
    }
    check_keys(L, root, "", "at the top of a rule file", top_keys);
    const json_t *rules = json_object_get(root, "rules");
    if (!rules || json_is_null(rules)) {
        return;
    }
    if (!json_is_array(rules)) {
        VERR(L, "/rules", "'rules' must be a list of rules, got %s", type_name(rules));
        return;
    }
    for (size_t i = 0; i < json_array_size(rules); i++) {
        char p[64];
        compile_rule(L, json_array_get(rules, i), wh_ptr_index(p, sizeof p, "/rules", i));
    }
}

static void load_one(loader *L, const char *name, const char *text, size_t len)
{
    wh_doc *doc = wh_doc_parse(name ? name : "<input>", text, len, L->errors);
    if (!doc) {
        L->failed = 1;
        return;
    }
    L->doc = doc;
    L->text = text;
    L->len = len;
    compile_doc(L);
    L->r->nfiles++;
    L->doc = NULL;
    L->text = NULL;
    L->len = 0;
    wh_doc_destroy(&doc);
}

/* ------------------------------------------------------------------------ */
/* Index                                                                     */

#define FNV_INIT 2166136261u

static uint32_t fnv(uint32_t h, const char *s)
{
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

static uint32_t ix_hash(const char *source, const char *kind)
{
    return fnv((fnv(FNV_INIT, source) ^ '/') * 16777619u, kind);
}

static const ix_slot *ix_find(const wh_rules *r, const char *source, const char *kind, uint32_t h)
{
    if (!r->ixcap) {
        return NULL;
    }
    size_t mask = r->ixcap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const ix_slot *s = &r->ix[i];
        if (!s->source) {
            return NULL;
        }
        if (s->hash == h && strcmp(s->source, source) == 0 && strcmp(s->kind, kind) == 0) {
            return s;
        }
    }
}

static int build_index(wh_rules *r)
{
    size_t keys = 0;
    for (size_t i = 0; i < r->n; i++) {
        keys += r->v[i]->enabled;
    }
    size_t cap = 8;
    while (cap < keys * 2) {
        cap *= 2;
    }
    r->ix = calloc(cap, sizeof *r->ix);
    if (!r->ix) {
        return WH_ERR_NOMEM;
    }
    r->ixcap = cap;
    for (size_t i = 0; i < r->n; i++) {
        const wh_rule *rule = r->v[i];
        if (!rule->enabled) {
            continue;
        }
        uint32_t h = ix_hash(rule->on_source, rule->on_kind);
        size_t j = h & (cap - 1);
        while (r->ix[j].source &&
               !(r->ix[j].hash == h && strcmp(r->ix[j].source, rule->on_source) == 0 &&
                 strcmp(r->ix[j].kind, rule->on_kind) == 0)) {
            j = (j + 1) & (cap - 1);
        }
        ix_slot *s = &r->ix[j];
        if (!s->source) {
            s->source = rule->on_source;
            s->kind = rule->on_kind;
            s->hash = h;
        }
        if (s->n == s->cap) {
            size_t nc = s->cap ? s->cap * 2 : 4;
            size_t *v = realloc(s->rules, nc * sizeof *v);
            if (!v) {
                return WH_ERR_NOMEM;
            }
            s->rules = v;
            s->cap = nc;
        }
        s->rules[s->n++] = i;
    }
    return WH_OK;
}

int wh_rules_each_candidate(const wh_rules *r, const char *source, const char *kind,
                            int (*fn)(void *ud, const wh_rule *rule), void *ud)
{
    if (!r || !source || !kind || !fn) {
        return 0;
    }
    uint32_t hs = (fnv(FNV_INIT, source) ^ '/') * 16777619u;
    uint32_t hw = (fnv(FNV_INIT, "*") ^ '/') * 16777619u;
    const ix_slot *lists[4] = {
        ix_find(r, source, kind, fnv(hs, kind)),
        ix_find(r, source, "*", fnv(hs, "*")),
        ix_find(r, "*", kind, fnv(hw, kind)),
        ix_find(r, "*", "*", fnv(hw, "*")),
    };
    size_t pos[4] = {0, 0, 0, 0};
    for (;;) {
        size_t best = (size_t)-1;
        for (int i = 0; i < 4; i++) {
            if (lists[i] && pos[i] < lists[i]->n && lists[i]->rules[pos[i]] < best) {
                best = lists[i]->rules[pos[i]];
            }
        }
        if (best == (size_t)-1) {
            return 0;
        }
        /* advance every list at `best`: a source or kind spelled "*" would
           otherwise show a rule twice */
        for (int i = 0; i < 4; i++) {
            if (lists[i] && pos[i] < lists[i]->n && lists[i]->rules[pos[i]] == best) {
                pos[i]++;
            }
        }
        int rc = fn(ud, r->v[best]);
        if (rc) {
            return rc;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Loading entry points                                                      */

static void rules_free(wh_rules *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        rule_free(r->v[i]);
    }
    free(r->v);
    for (size_t i = 0; i < r->ixcap; i++) {
        free(r->ix[i].rules);
    }
    free(r->ix);
    free(r);
}

static int loader_init(loader *L, const wh_rules_schema *schema, json_t *errors)
{
    memset(L, 0, sizeof *L);
    L->schema = schema;
    L->errors = errors;
    L->r = calloc(1, sizeof *L->r);
    if (!L->r) {
        if (errors) {
            json_array_append_new(errors, json_string("rules: out of memory"));
        }
        return -1;
    }
    atomic_init(&L->r->refs, 1);
    return 0;
}

static wh_rules *loader_finish(loader *L)
{
    for (size_t i = 0; i < L->nnames; i++) {
        free(L->names[i].where);
        free(L->names[i].name);
    }
    free(L->names);
    wh_rules *r = L->r;
    if (!L->failed && build_index(r) != WH_OK) {
        if (L->errors) {
            json_array_append_new(L->errors, json_string("rules: out of memory"));
        }
        L->failed = 1;
    }
    if (L->failed) {
        rules_free(r);
        return NULL;
    }
    return r;
}

static void load_path(loader *L, const char *path)
{
    size_t len = 0;
    char *text = wh_read_file(path, WH_YAML_MAX_FILE, &len);
    if (!text) {
        L->failed = 1;
        if (L->errors) {
            int e = errno;
            json_t *s = e == EFBIG ? json_sprintf("%s: cannot read: larger than the %u MiB a file "
                                                  "may have", path, WH_YAML_MAX_FILE >> 20)
                                   : json_sprintf("%s: cannot read: %s", path, strerror(e));
            if (s) {
                json_array_append_new(L->errors, s);
            } else {
                json_array_append_new(L->errors, json_string("<file>: cannot read"));
            }
        }
        return;
    }
    load_one(L, path, text, len);
    free(text);
}

wh_rules *wh_rules_load_text(const char *name, const char *text, size_t len,
                             const wh_rules_schema *schema, json_t *errors)
{
    loader L;
    if (loader_init(&L, schema, errors) != 0) {
        return NULL;
    }
    load_one(&L, name, text ? text : "", text ? len : 0);
    return loader_finish(&L);
}

wh_rules *wh_rules_load_files(const char *const *paths, size_t n, const wh_rules_schema *schema,
                              json_t *errors)
{
    loader L;
    if (loader_init(&L, schema, errors) != 0) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        load_path(&L, paths[i]);
    }
    return loader_finish(&L);
}

static int rule_file_name(const char *n)
{
    if (n[0] == '.') {
        return 0;
    }
    size_t len = strlen(n);
    static const char *const ext[] = {".yaml", ".yml", ".json"};
    for (size_t i = 0; i < WH_ARRAY_LEN(ext); i++) {
        size_t el = strlen(ext[i]);
        if (len > el && strcmp(n + len - el, ext[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void dir_error(json_t *errors, const char *fmt, const char *dir, const char *why)
{
    if (errors) {
        json_t *s = json_sprintf(fmt, dir, why);
        json_array_append_new(errors, s ? s : json_string("rules directory: cannot read"));
    }
}

wh_rules *wh_rules_load_dir(const char *dir, const wh_rules_schema *schema, json_t *errors)
{
    struct stat st;
    if (!dir || stat(dir, &st) != 0) {
        if (dir && errno != ENOENT) {
            dir_error(errors, "%s: cannot read: %s", dir, strerror(errno));
        } else {
            dir_error(errors, "%s: no such directory%s", dir ? dir : "(null)", "");
        }
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        dir_error(errors, "%s: not a directory%s", dir, "");
        return NULL;
    }
    DIR *d = opendir(dir);
    if (!d) {
        dir_error(errors, "%s: cannot read: %s", dir, strerror(errno));
        return NULL;
    }
    char **paths = NULL;
    size_t n = 0, cap = 0;
    int nomem = 0;
    size_t dl = strlen(dir);
    const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!rule_file_name(e->d_name)) {
            continue;
        }
        char *p = NULL;
        if (asprintf(&p, "%s%s%s", dir, sep, e->d_name) < 0) {
            nomem = 1;
            break;
        }
        /* only regular files (following links); a directory named x.yaml is skipped */
        struct stat fs;
        if (stat(p, &fs) == 0 && !S_ISREG(fs.st_mode)) {
            free(p);
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **v = realloc(paths, nc * sizeof *v);
            if (!v) {
                free(p);
                nomem = 1;
                break;
            }
            paths = v;
            cap = nc;
        }
        paths[n++] = p;
    }
    closedir(d);
    wh_rules *r = NULL;
    if (nomem) {
        dir_error(errors, "%s: %s", dir, "out of memory");
    } else {
        if (n) {
            qsort(paths, n, sizeof *paths, cmp_str);
        }
        r = wh_rules_load_files((const char *const *)paths, n, schema, errors);
    }
    for (size_t i = 0; i < n; i++) {
        free(paths[i]);
    }
    free(paths);
    return r;
}

wh_rules *wh_rules_ref(wh_rules *r)
{
    if (r) {
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    }
    return r;
}

void wh_rules_unref(wh_rules **rp)
{
    if (!rp || !*rp) {
        return;
    }
    wh_rules *r = *rp;
    *rp = NULL;
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        rules_free(r);
    }
}

size_t wh_rules_count(const wh_rules *r)
{
    return r ? r->n : 0;
}

size_t wh_rules_files(const wh_rules *r)
{
    return r ? r->nfiles : 0;
}

const wh_rule *wh_rules_get(const wh_rules *r, size_t i)
{
    return r && i < r->n ? r->v[i] : NULL;
}

/* ------------------------------------------------------------------------ */
/* Context                                                                   */

json_t *wh_rules_context(const json_t *envelope)
{
    json_t *ctx = json_object();
    json_t *event = json_object();
    if (!ctx || !event) {
        goto fail;
    }
    json_t *env = (json_t *)envelope; /* read-only; members are shared by reference */
    json_t *data = json_object_get(env, "data");
    if (json_is_object(data)) {
        if (json_object_update(ctx, data) != 0) {
            goto fail;
        }
    } else if (data && json_object_set(ctx, "data", data) != 0) {
        goto fail;
    }
    static const char *const members[] = {"id", "time", "source", "kind"};
    for (size_t i = 0; i < WH_ARRAY_LEN(members); i++) {
        json_t *v = json_object_get(env, members[i]);
        if (v && json_object_set(event, members[i], v) != 0) {
            goto fail;
        }
    }
    if (json_object_set_new(ctx, "event", event) != 0) {
        event = NULL; /* set_new consumed it */
        goto fail;
    }
    return ctx;
fail:
    json_decref(event);
    json_decref(ctx);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                 */

const char *wh_rule_name(const wh_rule *rule)
{
    return rule ? rule->name : NULL;
}

const char *wh_rule_fingerprint(const wh_rule *rule)
{
    return rule ? rule->fp : NULL;
}

const wh_rule *wh_rules_find(const wh_rules *rules, const char *name, const char *fp)
{
    for (size_t i = 0; rules && name && i < rules->n; i++) {
        const wh_rule *r = rules->v[i];
        if (r->name && strcmp(r->name, name) == 0 && (!fp || strcmp(r->fp, fp) == 0)) {
            return r;
        }
    }
    return NULL;
}

const char *wh_rule_file(const wh_rule *rule)
{
    return rule ? rule->file : NULL;
}

const char *wh_rule_on(const wh_rule *rule)
{
    return rule ? rule->on : NULL;
}

int wh_rule_enabled(const wh_rule *rule)
{
    return rule ? rule->enabled : 0;
}

int wh_rule_stop(const wh_rule *rule)
{
    return rule ? rule->stop : 0;
}

int wh_rule_on_matches(const wh_rule *rule, const char *source, const char *kind)
{
    if (!rule || !source || !kind) {
        return 0;
    }
    return (strcmp(rule->on_source, "*") == 0 || strcmp(rule->on_source, source) == 0) &&
           (strcmp(rule->on_kind, "*") == 0 || strcmp(rule->on_kind, kind) == 0);
}

int wh_rule_matches(const wh_rule *rule, const json_t *ctx)
{
    if (!rule) {
        return 0;
    }
    return rule->match ? wh_match_eval(rule->match, ctx) : 1;
}

int wh_rule_explain(const wh_rule *rule, const json_t *ctx, char *why, size_t size)
{
    if (why && size) {
        why[0] = '\0';
    }
    if (!rule) {
        return 0;
    }
    return rule->match ? wh_match_explain(rule->match, ctx, why, size) : 1;
}

size_t wh_rule_nsteps(const wh_rule *rule)
{
    return rule ? rule->nsteps : 0;
}

const wh_step *wh_rule_step(const wh_rule *rule, size_t i)
{
    return rule && i < rule->nsteps ? &rule->steps[i] : NULL;
}

wh_step_kind wh_step_kind_of(const wh_step *s)
{
    return s ? s->kind : (wh_step_kind)0;
}

const char *wh_step_instance(const wh_step *s)
{
    return s ? s->instance : NULL;
}

const char *wh_step_op(const wh_step *s)
{
    return s ? s->op : NULL;
}

const char *wh_step_as(const wh_step *s)
{
    return s ? s->as : NULL;
}

int64_t wh_step_every_ms(const wh_step *s)
{
    return s && s->kind == WH_STEP_AWAIT ? s->every_ms : 0;
}

int64_t wh_step_for_ms(const wh_step *s)
{
    return s && s->kind == WH_STEP_AWAIT ? s->for_ms : 0;
}

const char *wh_step_collect_on(const wh_step *s)
{
    return s ? s->collect_on : NULL;
}

int wh_rule_has_respond(const wh_rule *rule)
{
    return rule && rule->respond;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                 */

static json_t *render_or_empty(const tnode *n, const json_t *ctx)
{
    return n ? tn_render(n, ctx) : json_object();
}

json_t *wh_step_render_with(const wh_step *s, const json_t *ctx)
{
    return s ? render_or_empty(s->with, ctx) : NULL;
}

json_t *wh_step_render_vars(const wh_step *s, const json_t *ctx)
{
    return s ? render_or_empty(s->vars, ctx) : NULL;
}

char *wh_step_render_key(const wh_step *s, const json_t *ctx)
{
    if (!s || !s->key) {
        return NULL;
    }
    return wh_tpl_render_str(s->key, ctx, WH_ESC_NONE);
}

json_t *wh_step_render_respond(const wh_step *s, const json_t *ctx)
{
    return s && s->respond ? tn_render(s->respond, ctx) : NULL;
}

json_t *wh_rule_render_respond(const wh_rule *rule, const json_t *ctx)
{
    return rule && rule->respond ? tn_render(rule->respond, ctx) : NULL;
}

wh_match *wh_step_render_collect(const wh_step *s, const json_t *ctx)
{
    if (!s || !s->collect_on) {
        return NULL;
    }
    json_t *crit = s->collect_if ? tn_render(s->collect_if, ctx) : NULL;
    if (s->collect_if && !crit) {
        return NULL;
    }
    wh_match *m = wh_match_compile(NULL, NULL, crit, NULL);
    json_decref(crit);
    if (!m) {
        /* a template gave an operator a value it cannot use: match nothing */
        json_t *never = json_pack("{s:[]}", "any");
        m = never ? wh_match_compile(NULL, NULL, never, NULL) : NULL;
        json_decref(never);
    }
    return m;
}

int64_t wh_rule_debounce_ms(const wh_rule *rule)
{
    return rule ? rule->debounce_ms : 0;
}

char *wh_rule_render_debounce_key(const wh_rule *rule, const json_t *ctx)
{
    return rule && rule->debounce_key ? wh_tpl_render_str(rule->debounce_key, ctx, WH_ESC_NONE)
                                      : NULL;
}

json_t *wh_step_render_collect_if(const wh_step *s, const json_t *ctx)
{
    if (!s || !s->collect_on) {
        return NULL;
    }
    return s->collect_if ? tn_render(s->collect_if, ctx) : json_object();
}

int wh_rule_each_load(const wh_rule *rule, const json_t *ctx,
                      int (*fn)(void *ud, const char *name, const char *key, int unread,
                                long limit),
                      void *ud)
{
    if (!rule || !fn) {
        return 0;
    }
    for (size_t i = 0; i < rule->nloads; i++) {
        const load_entry *e = &rule->loads[i];
        char *key = wh_tpl_render_str(e->key, ctx, WH_ESC_NONE);
        if (!key) {
            return WH_ERR_NOMEM;
        }
        int rc = fn(ud, e->name, key, e->unread, e->limit);
        free(key);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

void wh_rules_fmt_duration(int64_t ms, char *out, size_t size)
{
    fmt_duration(ms, out, size);
}
