/*
 * template.c — the Mustache engine: parses a template once into a flat list
 * of nodes (text runs, variables, sections that know where they end) with
 * dotted names already split into NUL-terminated components, and renders
 * that list against a JSON context into a caller's wh_buf without
 * allocating per lookup. It owns the escaping rules (HTML, XML, URL).
 *
 * It must stay pure: no I/O, no logging, no globals that change, no
 * knowledge of rules or events. Recursion is bounded by WH_TPL_MAX_DEPTH,
 * which the parser enforces.
 */
#include "template.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_TEXT, N_VAR, N_RAW, N_SECTION, N_INVERTED };

/* One component of a dotted name: a key, and its value as an array index
   (-1 unless the component is all digits). */
typedef struct tpl_comp {
    const char *key;
    long index;
} tpl_comp;

typedef struct tpl_node {
    int kind;
    int line, col;   /* of the tag's "{{" (0 for text) */
    size_t off, len; /* N_TEXT: bytes of t->text */
    size_t end;      /* sections: index of the first node after the body */
    /* Named nodes. During the parse these hold offsets (name_off into the
       pool, comp_first into comps); finish() turns them into pointers. */
    size_t name_off, comp_first, ncomp;
    const char *name;
    const tpl_comp *comps;
} tpl_node;

struct wh_tpl {
    char *text; /* copy of the source; text nodes point into it */
    tpl_node *nodes;
    size_t nnodes, cap_nodes;
    tpl_comp *comps;
    size_t ncomps, cap_comps;
    wh_buf pool; /* names as written, then their components, NUL-separated */
    size_t ntags;
};

/* ------------------------------------------------------------------------ */
/* Escaping                                                                  */

static const char *const html_entity[256] = {
    ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;"};

/* XML 1.0 cannot carry C0 control characters other than tab, LF and CR, not
   even as character references; they are dropped (""), so that text from a
   chat message never breaks the SSML a voice assistant parses. */
static const char *const xml_entity[256] = {
    [0x00] = "",    [0x01] = "",    [0x02] = "",      [0x03] = "",      [0x04] = "",
    [0x05] = "",    [0x06] = "",    [0x07] = "",      [0x08] = "",      [0x0b] = "",
    [0x0c] = "",    [0x0e] = "",    [0x0f] = "",      [0x10] = "",      [0x11] = "",
    [0x12] = "",    [0x13] = "",    [0x14] = "",      [0x15] = "",      [0x16] = "",
    [0x17] = "",    [0x18] = "",    [0x19] = "",      [0x1a] = "",      [0x1b] = "",
    [0x1c] = "",    [0x1d] = "",    [0x1e] = "",      [0x1f] = "",      ['&'] = "&amp;",
    ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&apos;"};

static int url_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int escape_entities(wh_buf *out, const char *s, size_t len, const char *const *table)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep = table[(unsigned char)s[i]];
        if (!rep) {
            continue;
        }
        if (i > run && wh_buf_append(out, s + run, i - run) != WH_OK) {
            return WH_ERR_NOMEM;
        }
        if (*rep && wh_buf_append(out, rep, strlen(rep)) != WH_OK) {
            return WH_ERR_NOMEM;
        }
        run = i + 1;
    }
    if (len > run && wh_buf_append(out, s + run, len - run) != WH_OK) {
        return WH_ERR_NOMEM;
    }
    return WH_OK;
}

static int escape_url(wh_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (url_unreserved(c)) {
            continue;
        }
        char pct[3] = {'%', hex[c >> 4], hex[c & 15]};
        if ((i > run && wh_buf_append(out, s + run, i - run) != WH_OK) ||
            wh_buf_append(out, pct, 3) != WH_OK) {
            return WH_ERR_NOMEM;
        }
        run = i + 1;
    }
    if (len > run && wh_buf_append(out, s + run, len - run) != WH_OK) {
        return WH_ERR_NOMEM;
    }
    return WH_OK;
}

int wh_escape_append(wh_buf *out, const char *s, size_t len, wh_escape esc)
{
    if (!out || (!s && len)) {
        return WH_ERR_INVALID;
    }
    switch (esc) {
    case WH_ESC_NONE:
        return len ? wh_buf_append(out, s, len) : WH_OK;
    case WH_ESC_HTML:
        return escape_entities(out, s, len, html_entity);
    case WH_ESC_XML:
        return escape_entities(out, s, len, xml_entity);
    case WH_ESC_URL:
        return escape_url(out, s, len);
    }
    return WH_ERR_INVALID;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

typedef struct parser {
    wh_tpl *t;
    const char *s;
    size_t len;
    /* incremental line counting: lines seen up to lc_pos */
    size_t lc_pos, line_start;
    int line;
    /* open sections, innermost last: node indexes */
    size_t open[WH_TPL_MAX_DEPTH];
    int depth;
    char *err;
    size_t errsize;
    int *eline, *ecol;
} parser;

static void where(parser *p, size_t pos, int *line, int *col)
{
    while (p->lc_pos < pos) {
        const char *nl = memchr(p->s + p->lc_pos, '\n', pos - p->lc_pos);
        if (!nl) {
            p->lc_pos = pos;
            break;
        }
        p->line++;
        p->lc_pos = (size_t)(nl - p->s) + 1;
        p->line_start = p->lc_pos;
    }
    *line = p->line;
    *col = (int)(pos - p->line_start) + 1;
}

static void fail_at(parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_at(parser *p, int line, int col, const char *fmt, ...)
{
    if (p->err && p->errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errsize, fmt, ap);
        va_end(ap);
    }
    if (p->eline) {
        *p->eline = line;
    }
    if (p->ecol) {
        *p->ecol = col;
    }
}

static void fail_nomem(parser *p)
{
    fail_at(p, 0, 0, "out of memory");
}

static tpl_node *add_node(parser *p, int kind)
{
    wh_tpl *t = p->t;
    if (t->nnodes == t->cap_nodes) {
        size_t cap = t->cap_nodes ? t->cap_nodes * 2 : 8;
        tpl_node *n = realloc(t->nodes, cap * sizeof *n);
        if (!n) {
            return NULL;
        }
        t->nodes = n;
        t->cap_nodes = cap;
    }
    tpl_node *n = &t->nodes[t->nnodes++];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    return n;
}

static int add_text(parser *p, size_t from, size_t to)
{
    if (to <= from) {
        return WH_OK;
    }
    tpl_node *n = add_node(p, N_TEXT);
    if (!n) {
        return WH_ERR_NOMEM;
    }
    n->off = from;
    n->len = to - from;
    return WH_OK;
}

static int add_comp(parser *p, size_t key_off, long index)
{
    wh_tpl *t = p->t;
    if (t->ncomps == t->cap_comps) {
        size_t cap = t->cap_comps ? t->cap_comps * 2 : 8;
        tpl_comp *c = realloc(t->comps, cap * sizeof *c);
        if (!c) {
            return WH_ERR_NOMEM;
        }
        t->comps = c;
        t->cap_comps = cap;
    }
    /* the key pointer is fixed up in finish(); park the offset in it */
    t->comps[t->ncomps].key = (const char *)(uintptr_t)key_off;
    t->comps[t->ncomps].index = index;
    t->ncomps++;
    return WH_OK;
}

static long digits_index(const char *s, size_t n)
{
    if (n == 0 || n > 9) {
        return -1;
    }
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Store a validated name (as written, then its components) on node n. */
static int set_name(parser *p, tpl_node *n, const char *name, size_t nlen)
{
    wh_tpl *t = p->t;
    n->name_off = t->pool.len;
    if (wh_buf_append(&t->pool, name, nlen) != WH_OK || wh_buf_append(&t->pool, "", 1) != WH_OK) {
        return WH_ERR_NOMEM;
    }
    n->comp_first = t->ncomps;
    n->ncomp = 0;
    if (nlen == 1 && name[0] == '.') {
        return WH_OK; /* the implicit iterator: no components */
    }
    size_t start = 0;
    for (size_t i = 0; i <= nlen; i++) {
        if (i < nlen && name[i] != '.') {
            continue;
        }
        size_t off = t->pool.len;
        if (wh_buf_append(&t->pool, name + start, i - start) != WH_OK ||
            wh_buf_append(&t->pool, "", 1) != WH_OK ||
            add_comp(p, off, n->ncomp ? digits_index(name + start, i - start) : -1) != WH_OK) {
            return WH_ERR_NOMEM;
        }
        n->ncomp++;
        start = i + 1;
    }
    return WH_OK;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Check a tag's trimmed content as a name; on failure fills the error. */
static int check_name(parser *p, const char *name, size_t nlen, int line, int col)
{
    if (nlen == 0) {
        fail_at(p, line, col, "empty tag");
        return WH_ERR_INVALID;
    }
    for (size_t i = 0; i < nlen; i++) {
        if (is_space(name[i])) {
            fail_at(p, line, col, "invalid tag name '%.*s' (names contain no spaces)", (int)nlen,
                    name);
            return WH_ERR_INVALID;
        }
    }
    if (nlen == 1 && name[0] == '.') {
        return WH_OK;
    }
    for (size_t i = 0; i < nlen; i++) {
        int at_edge = i == 0 || i == nlen - 1;
        if (name[i] == '.' && (at_edge || name[i + 1] == '.')) {
            fail_at(p, line, col, "invalid name '%.*s' (empty part between dots)", (int)nlen, name);
            return WH_ERR_INVALID;
        }
    }
    return WH_OK;
}

/* Turn the offsets parked during the parse into pointers (the arrays no
   longer move). */
static void finish(wh_tpl *t)
{
    for (size_t i = 0; i < t->ncomps; i++) {
        t->comps[i].key = t->pool.data + (uintptr_t)t->comps[i].key;
    }
    for (size_t i = 0; i < t->nnodes; i++) {
        tpl_node *n = &t->nodes[i];
        if (n->kind != N_TEXT) {
            n->name = t->pool.data + n->name_off;
            /* "{{.}}" alone has no components, and then t->comps is NULL */
            n->comps = n->ncomp ? t->comps + n->comp_first : NULL;
        }
    }
}

static const char *find2(const char *s, size_t from, size_t len, char c)
{
    for (size_t i = from; i + 1 < len; i++) {
        const char *hit = memchr(s + i, c, len - i - 1);
        if (!hit) {
            return NULL;
        }
        if (hit[1] == c) {
            return hit;
        }
        i = (size_t)(hit - s);
    }
    return NULL;
}

/* Offset of the first byte that is not well-formed UTF-8 (overlong forms,
   surrogates and code points above U+10FFFF included), or len. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return i;
        }
        if (len - i < n || s[i + 1] < lo || s[i + 1] > hi) {
            return i;
        }
        for (size_t k = 2; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return i;
            }
        }
        i += n;
    }
    return len;
}

static int parse(parser *p)
{
    const char *s = p->s;
    size_t len = p->len;
    size_t pos = 0, text_start = 0;

    /* Renders become JSON strings (wh_tpl_render_json), so the text must be
       UTF-8; values from jansson always are. */
    size_t bad = utf8_invalid_at((const unsigned char *)s, len);
    if (bad < len) {
        int line, col;
        where(p, bad, &line, &col);
        fail_at(p, line, col, "invalid UTF-8 (byte 0x%02X)", (unsigned char)s[bad]);
        return WH_ERR_INVALID;
    }

    for (;;) {
        const char *open = find2(s, pos, len, '{');
        if (!open) {
            break;
        }
        size_t ts = (size_t)(open - s);
        int line, col;
        where(p, ts, &line, &col);
        size_t c = ts + 2;
        char sigil = c < len ? s[c] : '\0';
        int kind;
        switch (sigil) {
        case '{':
        case '&':
            kind = N_RAW;
            c++;
            break;
        case '#':
            kind = N_SECTION;
            c++;
            break;
        case '^':
            kind = N_INVERTED;
            c++;
            break;
        case '/':
        case '!':
            kind = -1; /* closing tag or comment: no node */
            c++;
            break;
        case '>':
            fail_at(p, line, col, "partials are not supported");
            return WH_ERR_UNSUPPORTED;
        case '=':
            fail_at(p, line, col, "set delimiters are not supported");
            return WH_ERR_UNSUPPORTED;
        case '<':
        case '$':
            fail_at(p, line, col, "template inheritance is not supported");
            return WH_ERR_UNSUPPORTED;
        default:
            kind = N_VAR;
            break;
        }
        const char *close = find2(s, c, len, '}');
        if (!close) {
            fail_at(p, line, col, "unclosed tag");
            return WH_ERR_INVALID;
        }
        size_t ce = (size_t)(close - s);
        size_t te = ce + 2;
        if (sigil == '{') {
            if (te >= len || s[te] != '}') {
                fail_at(p, line, col, "unclosed tag (a '{{{' tag ends with '}}}')");
                return WH_ERR_INVALID;
            }
            te++;
        }
        p->t->ntags++;

        /* the name, trimmed */
        const char *name = s + c;
        size_t nlen = ce - c;
        while (nlen && is_space(name[0])) {
            name++;
            nlen--;
        }
        while (nlen && is_space(name[nlen - 1])) {
            nlen--;
        }
        if (sigil != '!') {
            /* "{{a} b {{c}}" would otherwise read as one strange name */
            if (find2(name, 0, nlen, '{')) {
                fail_at(p, line, col, "unclosed tag");
                return WH_ERR_INVALID;
            }
            if (check_name(p, name, nlen, line, col) != WH_OK) {
                return WH_ERR_INVALID;
            }
        }

        /* Standalone lines: a section, inverted, closing or comment tag alone
           on its line (but for spaces and tabs) takes the whole line with it. */
        size_t cut = ts, next = te;
        if (kind != N_VAR && kind != N_RAW) {
            size_t ls = ts;
            while (ls > text_start && (s[ls - 1] == ' ' || s[ls - 1] == '\t')) {
                ls--;
            }
            size_t e = te;
            while (e < len && (s[e] == ' ' || s[e] == '\t')) {
                e++;
            }
            size_t after = 0;
            int line_end = 1;
            if (e == len) {
                after = len;
            } else if (s[e] == '\n') {
                after = e + 1;
            } else if (s[e] == '\r' && e + 1 < len && s[e + 1] == '\n') {
                after = e + 2;
            } else {
                line_end = 0;
            }
            if (line_end && (ls == 0 || s[ls - 1] == '\n')) {
                cut = ls;
                next = after;
            }
        }
        if (add_text(p, text_start, cut) != WH_OK) {
            fail_nomem(p);
            return WH_ERR_NOMEM;
        }
        pos = text_start = next;

        if (sigil == '!') {
            continue;
        }
        if (sigil == '/') {
            if (p->depth == 0) {
                fail_at(p, line, col, "unexpected closing tag '%.*s'", (int)nlen, name);
                return WH_ERR_INVALID;
            }
            tpl_node *o = &p->t->nodes[p->open[p->depth - 1]];
            const char *oname = p->t->pool.data + o->name_off;
            if (strlen(oname) != nlen || memcmp(oname, name, nlen) != 0) {
                fail_at(p, line, col, "unexpected closing tag '%.*s' (open section is '%s')",
                        (int)nlen, name, oname);
                return WH_ERR_INVALID;
            }
            o->end = p->t->nnodes;
            p->depth--;
            continue;
        }
        if (kind == N_SECTION || kind == N_INVERTED) {
            if (p->depth == WH_TPL_MAX_DEPTH) {
                fail_at(p, line, col, "sections nested too deeply (limit %d)", WH_TPL_MAX_DEPTH);
                return WH_ERR_TOO_LARGE;
            }
            p->open[p->depth++] = p->t->nnodes;
        }
        tpl_node *n = add_node(p, kind);
        if (!n || set_name(p, n, name, nlen) != WH_OK) {
            fail_nomem(p);
            return WH_ERR_NOMEM;
        }
        n->line = line;
        n->col = col;
    }
    if (add_text(p, text_start, len) != WH_OK) {
        fail_nomem(p);
        return WH_ERR_NOMEM;
    }
    if (p->depth > 0) {
        const tpl_node *o = &p->t->nodes[p->open[p->depth - 1]];
        fail_at(p, o->line, o->col, "unclosed section '%s'", p->t->pool.data + o->name_off);
        return WH_ERR_INVALID;
    }
    return WH_OK;
}

wh_tpl *wh_tpl_parse(const char *text, size_t len, char *err, size_t errsize, int *line, int *col)
{
    parser p = {.s = text,
                .len = len,
                .line = 1,
                .err = err,
                .errsize = errsize,
                .eline = line,
                .ecol = col};
    if (err && errsize) {
        err[0] = '\0';
    }
    if (line) {
        *line = 0;
    }
    if (col) {
        *col = 0;
    }
    if (!text && len) {
        fail_at(&p, 0, 0, "no template text");
        return NULL;
    }
    if (len > WH_TPL_MAX_SIZE) {
        fail_at(&p, 1, 1, "template too large (%zu bytes, limit %u)", len, WH_TPL_MAX_SIZE);
        return NULL;
    }
    wh_tpl *t = calloc(1, sizeof *t);
    if (!t || !(t->text = malloc(len + 1))) {
        free(t);
        fail_nomem(&p);
        return NULL;
    }
    if (len) {
        memcpy(t->text, text, len);
    }
    t->text[len] = '\0';
    p.t = t;
    p.s = t->text;
    /* the pool is never empty, so pool.data exists even for tag-less templates */
    if (wh_buf_append(&t->pool, "", 0) != WH_OK) {
        fail_nomem(&p);
        wh_tpl_destroy(&t);
        return NULL;
    }
    if (parse(&p) != WH_OK) {
        wh_tpl_destroy(&t);
        return NULL;
    }
    finish(t);
    return t;
}

void wh_tpl_destroy(wh_tpl **tp)
{
    if (!tp || !*tp) {
        return;
    }
    wh_tpl *t = *tp;
    free(t->text);
    free(t->nodes);
    free(t->comps);
    wh_buf_free(&t->pool);
    free(t);
    *tp = NULL;
}

int wh_tpl_is_literal(const wh_tpl *t)
{
    return t && t->ntags == 0;
}

int wh_tpl_foreach_name(const wh_tpl *t, int (*fn)(void *ud, const char *name, int line, int col),
                        void *ud)
{
    if (!t || !fn) {
        return 0;
    }
    for (size_t i = 0; i < t->nnodes; i++) {
        const tpl_node *n = &t->nodes[i];
        if (n->kind == N_TEXT) {
            continue;
        }
        int rc = fn(ud, n->name, n->line, n->col);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                 */

typedef struct render {
    const wh_tpl *t;
    wh_escape esc;
    wh_buf *out;
    size_t max_len; /* out->len may not pass this (WH_TPL_MAX_OUTPUT) */
    size_t steps;   /* nodes visited, at most WH_TPL_MAX_STEPS */
    int top;        /* index of the innermost context */
    const json_t *stack[WH_TPL_MAX_DEPTH + 1];
} render;

/* Resolve a name per the spec: the first component up the context stack,
   the rest strictly inside what it found. NULL when missing. */
static const json_t *lookup_in(const json_t *const *stack, int top, const tpl_node *n)
{
    if (n->ncomp == 0) {
        return stack[top];
    }
    const tpl_comp *c = n->comps;
    const json_t *v = NULL;
    for (int i = top; i >= 0; i--) {
        if (json_is_object(stack[i]) && (v = json_object_get(stack[i], c[0].key))) {
            break;
        }
    }
    for (size_t k = 1; v && k < n->ncomp; k++) {
        if (json_is_object(v)) {
            v = json_object_get(v, c[k].key);
        } else if (json_is_array(v) && c[k].index >= 0) {
            v = json_array_get(v, (size_t)c[k].index);
        } else {
            v = NULL;
        }
    }
    return v;
}

static int truthy(const json_t *v)
{
    if (!v) {
        return 0;
    }
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return 0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    default:
        return 1;
    }
}

/* Shortest "%.Ng" that reads back as the same double: any decimal of at
   most 15 significant digits survives a round trip, so %.15g already gives
   the shortest form when one that short exists. */
static int format_real(double d, char *buf, size_t size)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    return n;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return wh_buf_append(data, buffer, size) == WH_OK ? 0 : -1;
}

static int append_value(wh_buf *out, const json_t *v, wh_escape esc)
{
    char num[40];
    int n;
    if (!v) {
        return WH_OK;
    }
    switch (json_typeof(v)) {
    case JSON_STRING:
        return wh_escape_append(out, json_string_value(v), json_string_length(v), esc);
    case JSON_INTEGER:
        n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return wh_escape_append(out, num, (size_t)n, esc);
    case JSON_REAL:
        n = format_real(json_real_value(v), num, sizeof num);
        return wh_escape_append(out, num, (size_t)n, esc);
    case JSON_TRUE:
        return wh_escape_append(out, "true", 4, esc);
    case JSON_FALSE:
        return wh_escape_append(out, "false", 5, esc);
    case JSON_NULL:
        return WH_OK;
    case JSON_OBJECT:
    case JSON_ARRAY:
        break;
    }
    if (esc == WH_ESC_NONE) {
        return json_dump_callback(v, dump_cb, out, JSON_COMPACT) == 0 ? WH_OK : WH_ERR_NOMEM;
    }
    wh_buf tmp = {0};
    int rc = WH_ERR_NOMEM;
    if (json_dump_callback(v, dump_cb, &tmp, JSON_COMPACT) == 0) {
        rc = wh_escape_append(out, tmp.data, tmp.len, esc);
    }
    wh_buf_free(&tmp);
    return rc;
}

static int render_range(render *r, size_t from, size_t to)
{
    const tpl_node *nodes = r->t->nodes;
    for (size_t i = from; i < to; i++) {
        const tpl_node *n = &nodes[i];
        const json_t *v;
        int rc = WH_OK;
        /* data decides how often sections repeat: bound the work, not only the depth */
        if (++r->steps > WH_TPL_MAX_STEPS) {
            return WH_ERR_TOO_LARGE;
        }
        switch (n->kind) {
        case N_TEXT:
            rc = wh_buf_append(r->out, r->t->text + n->off, n->len);
            break;
        case N_VAR:
            rc = append_value(r->out, lookup_in(r->stack, r->top, n), r->esc);
            break;
        case N_RAW:
            rc = append_value(r->out, lookup_in(r->stack, r->top, n), WH_ESC_NONE);
            break;
        case N_SECTION:
            v = lookup_in(r->stack, r->top, n);
            if (truthy(v)) {
                if (r->top + 1 > WH_TPL_MAX_DEPTH) {
                    return WH_ERR_INVALID; /* the parser makes this unreachable */
                }
                size_t count = json_is_array(v) ? json_array_size(v) : 1;
                r->top++;
                for (size_t k = 0; k < count && rc == WH_OK; k++) {
                    r->stack[r->top] = json_is_array(v) ? json_array_get(v, k) : v;
                    rc = render_range(r, i + 1, n->end);
                }
                r->top--;
            }
            i = n->end - 1;
            break;
        case N_INVERTED:
            if (!truthy(lookup_in(r->stack, r->top, n))) {
                rc = render_range(r, i + 1, n->end);
            }
            i = n->end - 1;
            break;
        }
        if (rc == WH_OK && r->out->len > r->max_len) {
            rc = WH_ERR_TOO_LARGE;
        }
        if (rc != WH_OK) {
            return rc;
        }
    }
    return WH_OK;
}

int wh_tpl_render(const wh_tpl *t, const json_t *ctx, wh_escape esc, wh_buf *out)
{
    if (!t || !out || (unsigned)esc > WH_ESC_URL) {
        return WH_ERR_INVALID;
    }
    size_t len0 = out->len;
    render r;
    r.t = t;
    r.esc = esc;
    r.out = out;
    r.max_len = len0 + WH_TPL_MAX_OUTPUT;
    r.steps = 0;
    r.top = 0;
    r.stack[0] = ctx;
    /* an empty render still leaves a NUL-terminated buffer behind */
    int rc = wh_buf_append(out, "", 0);
    if (rc == WH_OK) {
        rc = render_range(&r, 0, t->nnodes);
    }
    if (rc != WH_OK) {
        out->len = len0;
        if (out->data) {
            out->data[len0] = '\0';
        }
        return rc == WH_ERR_INVALID || rc == WH_ERR_TOO_LARGE ? rc : WH_ERR_NOMEM;
    }
    return WH_OK;
}

char *wh_tpl_render_str(const wh_tpl *t, const json_t *ctx, wh_escape esc)
{
    wh_buf b = {0};
    if (wh_tpl_render(t, ctx, esc, &b) != WH_OK) {
        wh_buf_free(&b);
        return NULL;
    }
    return b.data;
}

json_t *wh_tpl_render_json(const wh_tpl *t, const json_t *ctx)
{
    if (!t) {
        return NULL;
    }
    if (t->ntags == 1 && t->nnodes == 1 &&
        (t->nodes[0].kind == N_VAR || t->nodes[0].kind == N_RAW)) {
        const json_t *v = lookup_in(&ctx, 0, &t->nodes[0]);
        /* a new reference to a part of ctx: jansson's refcount is not part
           of the value, so counting through a const pointer is sound */
        return v ? json_incref((json_t *)v) : json_null();
    }
    wh_buf b = {0};
    json_t *s = NULL;
    if (wh_tpl_render(t, ctx, WH_ESC_NONE, &b) == WH_OK) {
        s = json_stringn(b.data, b.len);
    }
    wh_buf_free(&b);
    return s;
}
