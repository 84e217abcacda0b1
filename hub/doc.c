/*
 * doc.c — YAML/JSON text into a jansson value plus the source position of
 * every node, kept in a hash table keyed by JSON pointer. It owns the YAML →
 * JSON typing rules and the limits (depth, node count, one document, error
 * count). It must not know what a config or a rule file means, and does no I/O
 * besides wh_doc_load()'s single read.
 *
 * libyaml's event parser is driven by a loop with an explicit stack of open
 * collections, so hostile nesting cannot exhaust the C stack. Once any error
 * is reported the result is NULL, so after an error the builder only has to
 * stay memory-safe and keep finding further errors; values under a bad key are
 * built and then dropped.
 */
#include "doc.h"
#include "util.h"

#include <yaml.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Position table: JSON pointer → key and value positions (0 = none).        */

typedef struct pos_entry {
    char *ptr;
    size_t len;
    int kl, kc, vl, vc;
} pos_entry;

typedef struct pos_table {
    pos_entry *e;
    size_t cap, n;
} pos_table;

struct wh_doc {
    char *file;
    json_t *root;
    pos_table pos;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static pos_entry *pos_find(const pos_table *t, const char *ptr, size_t len)
{
    if (!t->cap) {
        return NULL;
    }
    size_t i = (size_t)hash_bytes(ptr, len) & (t->cap - 1);
    while (t->e[i].ptr) {
        if (t->e[i].len == len && memcmp(t->e[i].ptr, ptr, len) == 0) {
            return &t->e[i];
        }
        i = (i + 1) & (t->cap - 1);
    }
    return NULL;
}

static int pos_grow(pos_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    pos_entry *e = calloc(cap, sizeof *e);
    if (!e) {
        return -1;
    }
    for (size_t j = 0; j < t->cap; j++) {
        if (t->e[j].ptr) {
            size_t i = (size_t)hash_bytes(t->e[j].ptr, t->e[j].len) & (cap - 1);
            while (e[i].ptr) {
                i = (i + 1) & (cap - 1);
            }
            e[i] = t->e[j];
        }
    }
    free(t->e);
    t->e = e;
    t->cap = cap;
    return 0;
}

/* Find or insert; NULL when out of memory. */
static pos_entry *pos_put(pos_table *t, const char *ptr)
{
    size_t len = strlen(ptr);
    pos_entry *f = pos_find(t, ptr, len);
    if (f) {
        return f;
    }
    if ((t->n + 1) * 2 > t->cap && pos_grow(t) != 0) {
        return NULL;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        return NULL;
    }
    memcpy(copy, ptr, len + 1);
    size_t i = (size_t)hash_bytes(ptr, len) & (t->cap - 1);
    while (t->e[i].ptr) {
        i = (i + 1) & (t->cap - 1);
    }
    t->e[i] = (pos_entry){.ptr = copy, .len = len};
    t->n++;
    return &t->e[i];
}

static void pos_free(pos_table *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        free(t->e[i].ptr);
    }
    free(t->e);
    *t = (pos_table){0};
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

/* Append "file:line:col: msg". File names need not be UTF-8; JSON strings must be. */
static void append_msg(json_t *errors, const char *file, int line, int col, const char *msg)
{
    if (!errors) {
        return;
    }
    char *s = NULL;
    if (asprintf(&s, "%s:%d:%d: %s", file, line, col, msg) < 0) {
        return;
    }
    json_t *j = json_string(s);
    if (!j) {
        for (char *c = s; *c; c++) {
            if ((unsigned char)*c >= 0x80) {
                *c = '?';
            }
        }
        j = json_string(s);
    }
    free(s);
    json_array_append_new(errors, j);
}

/* A short printable excerpt of user text for messages: at most 60 bytes, cut on
   a UTF-8 boundary, control characters shown as '?'. */
static const char *snippet(char *out, size_t size, const char *s, size_t len)
{
    size_t max = size > 64 ? 60 : size / 2;
    size_t n = len;
    int cut = 0;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
        cut = 1;
    }
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cut && o + 4 < size) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* ------------------------------------------------------------------------ */
/* Builder state                                                             */

typedef struct frame {
    json_t *node; /* object or array being filled */
    char *ptr;    /* its JSON pointer; NULL when the node will be dropped */
    char *anchor; /* anchor name to register when complete */
    yaml_mark_t start;
    size_t nodes_at_start;
    int height; /* height of the tallest child so far */
    /* mappings: the pending key */
    int have_key, key_bad;
    char *key;
    size_t keylen;
    char *child_ptr;
} frame;

typedef struct parser {
    const char *file;
    const char *text;
    size_t len;
    json_t *errors;
    int nerrors;
    int failed;
    int fatal;
    int docs;
    frame stack[WH_YAML_MAX_DEPTH];
    int depth;
    size_t nodes;
    json_t *anchors; /* name → [value, nodes, height, raw text or null] */
    json_t *root;
    int root_empty; /* root is an empty plain scalar: the file has no content */
    pos_table *pos;
} parser;

static void perr(parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void perr(parser *p, int line, int col, const char *fmt, ...)
{
    p->failed = 1;
    if (p->nerrors >= WH_YAML_MAX_ERRORS) {
        return;
    }
    p->nerrors++;
    if (p->nerrors == WH_YAML_MAX_ERRORS) {
        append_msg(p->errors, p->file, line, col, "too many errors, giving up");
        p->fatal = 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r >= 0) {
        append_msg(p->errors, p->file, line, col, msg);
        free(msg);
    }
}

#define MLINE(m) ((int)(m)->line + 1)
#define MCOL(m) ((int)(m)->column + 1)

static void oom(parser *p, const yaml_mark_t *m)
{
    perr(p, MLINE(m), MCOL(m), "out of memory");
    p->fatal = 1;
}

/* Count n more nodes against WH_YAML_MAX_NODES; 0 (and a fatal error) when over. */
static int count_nodes(parser *p, size_t n, const yaml_mark_t *m)
{
    if (n > (size_t)WH_YAML_MAX_NODES - p->nodes) {
        perr(p, MLINE(m), MCOL(m),
             "document has more than %d nodes (counting what aliases expand to)",
             WH_YAML_MAX_NODES);
        p->fatal = 1;
        return 0;
    }
    p->nodes += n;
    return 1;
}

static frame *top(parser *p)
{
    return p->depth ? &p->stack[p->depth - 1] : NULL;
}

/* Pointer of the node about to start under the top frame. *out is NULL when the
   node will be dropped (it is a key, or sits under a bad key or in a dropped
   node). Returns -1 when out of memory. */
static int child_ptr(parser *p, char **out)
{
    *out = NULL;
    frame *f = top(p);
    if (!f) {
        *out = strdup("");
        return *out ? 0 : -1;
    }
    if (!f->ptr) {
        return 0;
    }
    if (json_is_array(f->node)) {
        *out = wh_ptr_index_dup(f->ptr, json_array_size(f->node));
        return *out ? 0 : -1;
    }
    if (!f->have_key || f->key_bad || !f->child_ptr) {
        return 0;
    }
    *out = strdup(f->child_ptr);
    return *out ? 0 : -1;
}

static void record_value(parser *p, const char *ptr, const yaml_mark_t *m)
{
    if (!ptr) {
        return;
    }
    pos_entry *e = pos_put(p->pos, ptr);
    if (!e) {
        oom(p, m);
        return;
    }
    e->vl = MLINE(m);
    e->vc = MCOL(m);
}

static void add_anchor(parser *p, const char *name, json_t *value, size_t nodes, int height,
                       const char *raw, size_t rawlen, const yaml_mark_t *m)
{
    json_t *a = json_array();
    int bad = !a || json_array_append(a, value) != 0 ||
              json_array_append_new(a, json_integer((json_int_t)nodes)) != 0 ||
              json_array_append_new(a, json_integer(height)) != 0 ||
              json_array_append_new(a, raw ? json_stringn(raw, rawlen) : json_null()) != 0;
    if (bad) {
        json_decref(a);
        oom(p, m);
        return;
    }
    /* json_object_set_new releases `a` itself when it fails. */
    if (json_object_set_new(p->anchors, name, a) != 0) {
        oom(p, m);
    }
}

/* Place a complete value in the top frame (or make it the root). Takes v. */
static void attach(parser *p, json_t *v, int height, const yaml_mark_t *start)
{
    frame *f = top(p);
    if (!f) {
        json_decref(p->root);
        p->root = v;
        return;
    }
    if (height > f->height) {
        f->height = height;
    }
    if (json_is_array(f->node)) {
        if (json_array_append_new(f->node, v) != 0) {
            oom(p, start);
        }
        return;
    }
    if (!f->have_key) {
        perr(p, MLINE(start), MCOL(start), "keys must be scalars");
        json_decref(v);
        f->have_key = 1;
        f->key_bad = 1;
        return;
    }
    if (f->key_bad || !f->key) {
        json_decref(v);
    } else if (json_object_setn_new(f->node, f->key, f->keylen, v) != 0) {
        oom(p, start);
    }
    f->have_key = 0;
    f->key_bad = 0;
    free(f->key);
    f->key = NULL;
    free(f->child_ptr);
    f->child_ptr = NULL;
}

static void take_key(parser *p, frame *f, const char *k, size_t len, const yaml_mark_t *m)
{
    char snip[80];
    f->have_key = 1;
    f->key_bad = 0;
    if (memchr(k, '\0', len)) {
        perr(p, MLINE(m), MCOL(m), "keys must not contain NUL characters");
        f->key_bad = 1;
        return;
    }
    if (json_object_getn(f->node, k, len)) {
        int first = 0;
        if (f->ptr) {
            char *cp = wh_ptr_child_dup(f->ptr, k);
            const pos_entry *e = cp ? pos_find(p->pos, cp, strlen(cp)) : NULL;
            first = e ? e->kl : 0;
            free(cp);
        }
        snippet(snip, sizeof snip, k, len);
        if (first) {
            perr(p, MLINE(m), MCOL(m), "duplicate key '%s' (first at line %d)", snip, first);
        } else {
            perr(p, MLINE(m), MCOL(m), "duplicate key '%s'", snip);
        }
        f->key_bad = 1;
        return;
    }
    f->key = strndup(k, len);
    if (!f->key) {
        oom(p, m);
        return;
    }
    f->keylen = len;
    if (f->ptr) {
        f->child_ptr = wh_ptr_child_dup(f->ptr, f->key);
        pos_entry *e = f->child_ptr ? pos_put(p->pos, f->child_ptr) : NULL;
        if (!e) {
            oom(p, m);
            return;
        }
        e->kl = MLINE(m);
        e->kc = MCOL(m);
    }
}

/* ------------------------------------------------------------------------ */
/* Scalars (YAML 1.2 core schema)                                            */

enum { T_AUTO, T_STR, T_INT, T_FLOAT, T_BOOL, T_NULL, T_MAP, T_SEQ, T_BAD };

#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

static int tag_kind(const char *tag)
{
    if (!tag || strcmp(tag, "!") == 0) {
        return T_AUTO;
    }
    static const struct {
        const char *name;
        int kind;
    } tags[] = {{"str", T_STR},   {"int", T_INT}, {"float", T_FLOAT}, {"bool", T_BOOL},
                {"null", T_NULL}, {"map", T_MAP}, {"seq", T_SEQ}};
    size_t pl = strlen(YAML_TAG_PREFIX);
    if (strncmp(tag, YAML_TAG_PREFIX, pl) == 0) {
        for (size_t i = 0; i < WH_ARRAY_LEN(tags); i++) {
            if (strcmp(tag + pl, tags[i].name) == 0) {
                return tags[i].kind;
            }
        }
    }
    return T_BAD;
}

/* "!!int" for the core tags, the tag as written otherwise. */
static const char *tag_display(char *out, size_t size, const char *tag)
{
    size_t pl = strlen(YAML_TAG_PREFIX);
    if (strncmp(tag, YAML_TAG_PREFIX, pl) == 0) {
        char s[64];
        snprintf(out, size, "!!%s", snippet(s, sizeof s, tag + pl, strlen(tag + pl)));
        return out;
    }
    return snippet(out, size, tag, strlen(tag));
}

static int eq_any(const char *s, size_t len, const char *const *words)
{
    for (; *words; words++) {
        if (strlen(*words) == len && memcmp(*words, s, len) == 0) {
            return 1;
        }
    }
    return 0;
}

static int is_null_word(const char *s, size_t len)
{
    static const char *const w[] = {"null", "Null", "NULL", "~", "", NULL};
    return eq_any(s, len, w);
}

/* 1 true, 0 false, -1 not a boolean. */
static int bool_word(const char *s, size_t len)
{
    static const char *const t[] = {"true", "True", "TRUE", NULL};
    static const char *const f[] = {"false", "False", "FALSE", NULL};
    return eq_any(s, len, t) ? 1 : eq_any(s, len, f) ? 0 : -1;
}

static int digit_val(char c, int base)
{
    int v = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : 99;
    return v < base ? v : -1;
}

/* Core schema integers: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+.
   1 parsed, 0 not an integer, -1 an integer out of range. */
static int parse_int(const char *s, size_t len, json_int_t *out)
{
    int base = 10, neg = 0;
    size_t i = 0;
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        base = s[1] == 'x' ? 16 : 8;
        i = 2;
    } else if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i >= len) {
        return 0;
    }
    unsigned long long v = 0;
    int range = 0;
    const unsigned long long limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
    for (; i < len; i++) {
        int d = digit_val(s[i], base);
        if (d < 0) {
            return 0;
        }
        if (v > (limit - (unsigned)d) / (unsigned)base) {
            range = 1;
        } else {
            v = v * (unsigned)base + (unsigned)d;
        }
    }
    if (range) {
        return -1;
    }
    *out =
        neg ? (v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(json_int_t)v) : (json_int_t)v;
    return 1;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_float_form(const char *s, size_t len)
{
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '-' || s[i] == '+')) {
        i++;
    }
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
            digits++;
        }
    }
    if (!digits) {
        return 0;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+')) {
            i++;
        }
        size_t ed = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
            ed++;
        }
        if (!ed) {
            return 0;
        }
    }
    return i == len;
}

static int is_inf_nan(const char *s, size_t len)
{
    static const char *const w[] = {".inf",  ".Inf",  ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
                                    "-.Inf", "-.INF", ".nan", ".NaN",  ".NAN",  NULL};
    return eq_any(s, len, w);
}

/* The value of a scalar in value position. Reports typing errors (and returns a
   null placeholder); NULL only when out of memory. */
static json_t *scalar_value(parser *p, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const yaml_mark_t *m = &ev->start_mark;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    int kind = tag_kind(tag);
    char snip[80], tbuf[80];

    if (kind == T_AUTO && tag) {
        kind = T_STR; /* the non-specific tag "!" */
    } else if (kind == T_AUTO && !plain) {
        kind = T_STR;
    }
    if (kind == T_BAD || kind == T_MAP || kind == T_SEQ) {
        perr(p, MLINE(m), MCOL(m),
             "unsupported tag '%s' on a scalar (allowed: !!str, !!int, !!float, !!bool, !!null)",
             tag_display(tbuf, sizeof tbuf, tag));
        return json_null();
    }
    if (kind == T_STR) {
        json_t *v = json_stringn(s, len);
        if (!v) {
            perr(p, MLINE(m), MCOL(m), "string is not valid UTF-8");
            return json_null();
        }
        return v;
    }
    if ((kind == T_AUTO || kind == T_NULL) && is_null_word(s, len)) {
        return json_null();
    }
    int b = bool_word(s, len);
    if ((kind == T_AUTO || kind == T_BOOL) && b >= 0) {
        return json_boolean(b);
    }
    json_int_t iv = 0;
    int ir = (kind == T_AUTO || kind == T_INT || kind == T_FLOAT) ? parse_int(s, len, &iv) : 0;
    if (ir < 0 && kind != T_FLOAT) {
        perr(p, MLINE(m), MCOL(m), "integer '%s' is out of range",
             snippet(snip, sizeof snip, s, len));
        return json_null();
    }
    if (ir > 0 && kind != T_FLOAT) {
        return json_integer(iv);
    }
    if ((kind == T_AUTO || kind == T_FLOAT) && is_inf_nan(s, len)) {
        perr(p, MLINE(m), MCOL(m), "'%s' cannot be stored: JSON has no infinity or NaN",
             snippet(snip, sizeof snip, s, len));
        return json_null();
    }
    /* Integers in hex/octal with !!float take the integer path's value. */
    if (kind == T_FLOAT && ir > 0 && !is_float_form(s, len)) {
        return json_real((double)iv);
    }
    if ((kind == T_AUTO || kind == T_FLOAT) && is_float_form(s, len)) {
        /* s is NUL-terminated by libyaml and the form has no NUL, so strtod stops at
           the end. The hub never calls setlocale(), so '.' is the decimal point. */
        double d = strtod(s, NULL);
        if (!isfinite(d)) {
            perr(p, MLINE(m), MCOL(m), "number '%s' is out of range",
                 snippet(snip, sizeof snip, s, len));
            return json_null();
        }
        return json_real(d);
    }
    if (kind != T_AUTO) {
        perr(p, MLINE(m), MCOL(m), "'%s' is not a valid %s", snippet(snip, sizeof snip, s, len),
             tag_display(tbuf, sizeof tbuf, tag));
        return json_null();
    }
    json_t *v = json_stringn(s, len);
    if (!v) {
        perr(p, MLINE(m), MCOL(m), "string is not valid UTF-8");
        return json_null();
    }
    return v;
}

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

static void on_scalar(parser *p, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const yaml_mark_t *m = &ev->start_mark;
    const char *anchor = (const char *)ev->data.scalar.anchor;
    frame *f = top(p);
    if (!count_nodes(p, 1, m)) {
        return;
    }
    if (f && json_is_object(f->node) && !f->have_key) {
        const char *tag = (const char *)ev->data.scalar.tag;
        if (tag && tag_kind(tag) == T_BAD) {
            char tbuf[80];
            perr(p, MLINE(m), MCOL(m), "unsupported tag '%s' on a key",
                 tag_display(tbuf, sizeof tbuf, tag));
        }
        take_key(p, f, s, len, m);
        if (anchor) {
            json_t *kv = json_stringn(s, len);
            if (kv) {
                add_anchor(p, anchor, kv, 1, 0, s, len, m);
                json_decref(kv);
            } else {
                perr(p, MLINE(m), MCOL(m), "key is not valid UTF-8");
            }
        }
        return;
    }
    char *ptr = NULL;
    if (child_ptr(p, &ptr) != 0) {
        oom(p, m);
        return;
    }
    record_value(p, ptr, m);
    free(ptr);
    json_t *v = scalar_value(p, ev);
    if (!v) {
        oom(p, m);
        return;
    }
    if (!f) {
        p->root_empty =
            len == 0 && !ev->data.scalar.tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    }
    if (anchor) {
        add_anchor(p, anchor, v, 1, 0, s, len, m);
    }
    attach(p, v, 0, m);
}

static void on_alias(parser *p, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const yaml_mark_t *m = &ev->start_mark;
    json_t *a = json_object_get(p->anchors, name);
    frame *f = top(p);
    char snip[80];
    if (!a) {
        perr(p, MLINE(m), MCOL(m), "unknown alias '*%s' (no earlier anchor '&%s')",
             snippet(snip, sizeof snip, name, strlen(name)), snip);
        if (f && json_is_object(f->node) && !f->have_key) {
            f->have_key = 1;
            f->key_bad = 1;
        } else {
            attach(p, json_null(), 0, m);
        }
        return;
    }
    json_t *raw = json_array_get(a, 3);
    if (f && json_is_object(f->node) && !f->have_key) {
        if (!json_is_string(raw)) {
            perr(p, MLINE(m), MCOL(m), "keys must be scalars");
            f->have_key = 1;
            f->key_bad = 1;
            return;
        }
        take_key(p, f, json_string_value(raw), json_string_length(raw), m);
        return;
    }
    size_t n = (size_t)json_integer_value(json_array_get(a, 1));
    int h = (int)json_integer_value(json_array_get(a, 2));
    if (!count_nodes(p, n, m)) {
        return;
    }
    if (p->depth + h > WH_YAML_MAX_DEPTH) {
        perr(p, MLINE(m), MCOL(m), "nesting is deeper than %d levels", WH_YAML_MAX_DEPTH);
        p->fatal = 1;
        return;
    }
    char *ptr = NULL;
    if (child_ptr(p, &ptr) != 0) {
        oom(p, m);
        return;
    }
    record_value(p, ptr, m);
    free(ptr);
    json_t *copy = json_deep_copy(json_array_get(a, 0));
    if (!copy) {
        oom(p, m);
        return;
    }
    attach(p, copy, h, m);
}

static void on_start(parser *p, const yaml_event_t *ev, int is_map)
{
    const yaml_mark_t *m = &ev->start_mark;
    const char *tag =
        (const char *)(is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    const char *anchor =
        (const char *)(is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
    if (p->depth >= WH_YAML_MAX_DEPTH) {
        perr(p, MLINE(m), MCOL(m), "nesting is deeper than %d levels", WH_YAML_MAX_DEPTH);
        p->fatal = 1;
        return;
    }
    int kind = tag_kind(tag);
    if (kind != T_AUTO && kind != (is_map ? T_MAP : T_SEQ)) {
        char tbuf[80];
        perr(p, MLINE(m), MCOL(m), "unsupported tag '%s' on a %s (allowed: %s)",
             tag_display(tbuf, sizeof tbuf, tag), is_map ? "mapping" : "sequence",
             is_map ? "!!map" : "!!seq");
    }
    size_t before = p->nodes;
    if (!count_nodes(p, 1, m)) {
        return;
    }
    frame fr = {.start = *m, .nodes_at_start = before};
    if (child_ptr(p, &fr.ptr) != 0) {
        oom(p, m);
        return;
    }
    fr.node = is_map ? json_object() : json_array();
    fr.anchor = anchor ? strdup(anchor) : NULL;
    if (!fr.node || (anchor && !fr.anchor)) {
        json_decref(fr.node);
        free(fr.ptr);
        free(fr.anchor);
        oom(p, m);
        return;
    }
    record_value(p, fr.ptr, m);
    p->stack[p->depth++] = fr;
}

static void frame_free(frame *f)
{
    json_decref(f->node);
    free(f->ptr);
    free(f->anchor);
    free(f->key);
    free(f->child_ptr);
    *f = (frame){0};
}

static void on_end(parser *p)
{
    if (!p->depth) {
        return;
    }
    frame f = p->stack[--p->depth];
    json_t *node = f.node;
    f.node = NULL;
    if (f.anchor) {
        add_anchor(p, f.anchor, node, p->nodes - f.nodes_at_start, f.height + 1, NULL, 0, &f.start);
    }
    attach(p, node, f.height + 1, &f.start);
    frame_free(&f);
}

/* 1-based line and column (in characters) of a byte offset in the input. */
static void offset_pos(const parser *p, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    if (off > p->len) {
        off = p->len;
    }
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)p->text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void syntax_error(parser *p, const yaml_parser_t *yp)
{
    int line, col;
    if (yp->error == YAML_MEMORY_ERROR) {
        perr(p, 1, 1, "out of memory");
        return;
    }
    if (yp->error == YAML_READER_ERROR) {
        offset_pos(p, yp->problem_offset, &line, &col);
    } else {
        line = MLINE(&yp->problem_mark);
        col = MCOL(&yp->problem_mark);
    }
    const char *problem = yp->problem ? yp->problem : "syntax error";
    /* the byte at (line, col): libyaml's mark counts characters, not bytes */
    const char *at = p->text, *end = p->text + p->len;
    for (int l = 1; l < line && at < end; at++) {
        l += *at == '\n';
    }
    for (int c = 1; c < col && at < end;) {
        at++;
        c += at < end && ((unsigned char)*at & 0xC0) != 0x80;
    }
    if (yp->error != YAML_READER_ERROR && at < end && *at == '\t' && !strstr(problem, "tab")) {
        /* libyaml's words ("found character that cannot start any token") hide the cause */
        perr(p, line, col, "a tab: YAML indents with spaces, not tabs (%s)", problem);
        return;
    }
    if (yp->error == YAML_READER_ERROR && yp->problem_value != -1) {
        perr(p, line, col, "%s (byte 0x%02X)", problem, (unsigned)yp->problem_value);
    } else if (yp->context) {
        perr(p, line, col, "%s %s", problem, yp->context);
    } else {
        perr(p, line, col, "%s", problem);
    }
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

void wh_doc_destroy(wh_doc **d)
{
    if (!d || !*d) {
        return;
    }
    free((*d)->file);
    json_decref((*d)->root);
    pos_free(&(*d)->pos);
    free(*d);
    *d = NULL;
}

wh_doc *wh_doc_parse(const char *file, const char *text, size_t len, json_t *errors)
{
    if (!file) {
        file = "<input>";
    }
    if (!text) {
        text = "";
        len = 0;
    }
    wh_doc *d = calloc(1, sizeof *d);
    parser *p = calloc(1, sizeof *p);
    yaml_parser_t yp;
    int yp_ok = 0;
    if (!d || !p || !(d->file = strdup(file)) || !(p->anchors = json_object()) ||
        !(yp_ok = yaml_parser_initialize(&yp))) {
        append_msg(errors, file, 0, 0, "out of memory");
        goto fail;
    }
    p->file = file;
    p->text = text;
    p->len = len;
    p->errors = errors;
    p->pos = &d->pos;
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);

    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&yp, &ev)) {
            syntax_error(p, &yp);
            break;
        }
        int done = ev.type == YAML_STREAM_END_EVENT;
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++p->docs > 1) {
                perr(p, MLINE(&ev.start_mark), MCOL(&ev.start_mark),
                     "only one document is allowed");
                p->fatal = 1;
            }
            break;
        case YAML_SCALAR_EVENT:
            on_scalar(p, &ev);
            break;
        case YAML_ALIAS_EVENT:
            on_alias(p, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            on_start(p, &ev, 0);
            break;
        case YAML_MAPPING_START_EVENT:
            on_start(p, &ev, 1);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            on_end(p);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (done || p->fatal) {
            break;
        }
    }
    if (p->failed) {
        goto fail;
    }
    if (!p->root || (json_is_null(p->root) && p->root_empty)) {
        json_decref(p->root);
        p->root = json_object();
        pos_entry *e = p->root ? pos_put(&d->pos, "") : NULL;
        if (!e) {
            append_msg(errors, file, 0, 0, "out of memory");
            goto fail;
        }
        e->vl = e->vc = 1;
    }
    d->root = p->root;
    p->root = NULL;
    json_decref(p->anchors);
    yaml_parser_delete(&yp);
    free(p);
    return d;

fail:
    if (p) {
        while (p->depth) {
            frame_free(&p->stack[--p->depth]);
        }
        json_decref(p->root);
        json_decref(p->anchors);
        free(p);
    }
    if (yp_ok) {
        yaml_parser_delete(&yp);
    }
    wh_doc_destroy(&d);
    return NULL;
}

wh_doc *wh_doc_load(const char *path, json_t *errors)
{
    size_t len = 0;
    char *text = wh_read_file(path, WH_YAML_MAX_FILE, &len);
    if (!text) {
        if (errors) {
            char *msg = NULL;
            int e = errno;
            int rc = e == EFBIG ? asprintf(&msg, "%s: cannot read: larger than the %u MiB a file "
                                                 "may have", path, WH_YAML_MAX_FILE >> 20)
                                : asprintf(&msg, "%s: cannot read: %s", path, strerror(e));
            if (rc >= 0) {
                json_t *j = json_string(msg);
                if (!j) {
                    for (char *c = msg; *c; c++) {
                        if ((unsigned char)*c >= 0x80) {
                            *c = '?';
                        }
                    }
                    j = json_string(msg);
                }
                json_array_append_new(errors, j);
                free(msg);
            }
        }
        return NULL;
    }
    wh_doc *d = wh_doc_parse(path, text, len, errors);
    free(text);
    return d;
}

json_t *wh_doc_root(const wh_doc *d)
{
    return d ? d->root : NULL;
}

const char *wh_doc_file(const wh_doc *d)
{
    return d ? d->file : NULL;
}

static const pos_entry *lookup(const wh_doc *d, const char *pointer)
{
    if (!pointer) {
        pointer = "";
    }
    size_t n = strlen(pointer);
    for (;;) {
        const pos_entry *e = pos_find(&d->pos, pointer, n);
        if (e || n == 0) {
            return e;
        }
        while (n > 0 && pointer[n - 1] != '/') {
            n--;
        }
        if (n > 0) {
            n--; /* drop the '/' */
        }
    }
}

int wh_doc_pos(const wh_doc *d, const char *pointer, int *line, int *col)
{
    const pos_entry *e = d ? lookup(d, pointer) : NULL;
    if (!e) {
        return -1;
    }
    *line = e->kl ? e->kl : e->vl;
    *col = e->kl ? e->kc : e->vc;
    return 0;
}

int wh_doc_value_pos(const wh_doc *d, const char *pointer, int *line, int *col)
{
    const pos_entry *e = d ? lookup(d, pointer) : NULL;
    if (!e) {
        return -1;
    }
    *line = e->vl ? e->vl : e->kl;
    *col = e->vl ? e->vc : e->kc;
    return 0;
}

static void doc_verror(const wh_doc *d, json_t *errors, const char *pointer, int value,
                       const char *fmt, va_list ap)
{
    if (!errors) {
        return;
    }
    int line = 0, col = 0;
    if (d) {
        if (value) {
            wh_doc_value_pos(d, pointer, &line, &col);
        } else {
            wh_doc_pos(d, pointer, &line, &col);
        }
    }
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) {
        return;
    }
    append_msg(errors, d ? d->file : "<unknown>", line, col, msg);
    free(msg);
}

void wh_doc_error(const wh_doc *d, json_t *errors, const char *pointer, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    doc_verror(d, errors, pointer, 0, fmt, ap);
    va_end(ap);
}

void wh_doc_value_error(const wh_doc *d, json_t *errors, const char *pointer, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    doc_verror(d, errors, pointer, 1, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Pointers                                                                  */

static size_t escaped_len(const char *key)
{
    size_t n = 0;
    for (const char *c = key; *c; c++) {
        n += (*c == '~' || *c == '/') ? 2 : 1;
    }
    return n;
}

/* Writes parent "/" escaped-key into out (which has room for it all). */
static void write_child(char *out, const char *parent, size_t plen, const char *key)
{
    memcpy(out, parent, plen);
    char *o = out + plen;
    *o++ = '/';
    for (const char *c = key; *c; c++) {
        if (*c == '~') {
            *o++ = '~';
            *o++ = '0';
        } else if (*c == '/') {
            *o++ = '~';
            *o++ = '1';
        } else {
            *o++ = *c;
        }
    }
    *o = '\0';
}

char *wh_ptr_child(char *out, size_t size, const char *parent, const char *key)
{
    if (!out || size == 0) {
        return out;
    }
    if (!parent) {
        parent = "";
    }
    if (!key) {
        key = "";
    }
    size_t o = 0;
    for (const char *c = parent; *c && o + 1 < size; c++) {
        out[o++] = *c;
    }
    if (o + 1 < size) {
        out[o++] = '/';
    }
    for (const char *c = key; *c; c++) {
        const char *rep = *c == '~' ? "~0" : *c == '/' ? "~1" : NULL;
        size_t need = rep ? 2 : 1;
        if (o + need >= size) {
            break;
        }
        if (rep) {
            out[o++] = rep[0];
            out[o++] = rep[1];
        } else {
            out[o++] = *c;
        }
    }
    out[o] = '\0';
    return out;
}

char *wh_ptr_index(char *out, size_t size, const char *parent, size_t index)
{
    char num[32];
    snprintf(num, sizeof num, "%zu", index);
    return wh_ptr_child(out, size, parent, num);
}

char *wh_ptr_child_dup(const char *parent, const char *key)
{
    if (!parent) {
        parent = "";
    }
    if (!key) {
        key = "";
    }
    size_t plen = strlen(parent);
    char *out = malloc(plen + 1 + escaped_len(key) + 1);
    if (out) {
        write_child(out, parent, plen, key);
    }
    return out;
}

char *wh_ptr_index_dup(const char *parent, size_t index)
{
    char num[32];
    snprintf(num, sizeof num, "%zu", index);
    return wh_ptr_child_dup(parent, num);
}
