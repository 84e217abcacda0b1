/*
 * match.c — compiles a rule's `if:` criteria into a small tree (paths split,
 * regexes compiled, arguments copied) and evaluates it against an event
 * context; also owns dotted-path lookup and number-tolerant JSON equality.
 * Pure code: no I/O, no logging, no threads of its own, no knowledge of rules
 * beyond the criteria object it is handed.
 *
 * A compiled wh_match is never written after compile, so evaluation on many
 * threads at once needs no lock. jansson values are only read during
 * evaluation (no incref), and PCRE2 match data comes from a per-thread slot.
 */
#include "match.h"
#include "util.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    OP_EQUALS,
    OP_NOT,
    OP_IN,
    OP_EXISTS,
    OP_CONTAINS,
    OP_STARTS_WITH,
    OP_ENDS_WITH,
    OP_REGEX,
    OP_GT,
    OP_GTE,
    OP_LT,
    OP_LTE,
    OP_ALL,
    OP_ANY,
    OP_NONE,
} op_t;

static const char *const op_names[] = {"equals",      "not",       "in",    "exists", "contains",
                                       "starts_with", "ends_with", "regex", "gt",     "gte",
                                       "lt",          "lte",       "all",   "any",    "none"};

#define VALID_OPS                                                                                  \
    "equals, not, in, exists, contains, starts_with, ends_with, regex, gt, gte, lt, lte"

/* Regexes are unanchored and may meet hostile subjects: cap backtracking well
   below PCRE2's default of 10,000,000 so one event cannot stall the engine. */
#define MATCH_LIMIT 1000000
#define DEPTH_LIMIT 100000

typedef struct crit crit;

typedef struct test {
    op_t op;
    json_t *arg;    /* owned copy of the operator's argument */
    pcre2_code *re; /* OP_REGEX */
    int flag;       /* OP_EXISTS */
} test;

typedef struct entry {
    char *text; /* the key as written: a path, or all/any/none */
    op_t comb;  /* OP_ALL/OP_ANY/OP_NONE for combinators, else OP_EQUALS */
    wh_path path;
    test *tests;
    size_t ntests;
    crit *subs; /* combinators: the alternatives */
    size_t nsubs;
} entry;

struct crit {
    entry *e;
    size_t n;
};

struct wh_match {
    crit root;
    pcre2_match_context *mctx;
};

/* ------------------------------------------------------------------------ */
/* Paths                                                                     */

/* A component of 1–18 digits is an index; -1 otherwise. */
static long comp_index(const char *s, size_t len)
{
    if (len == 0 || len > 18) {
        return -1;
    }
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static const json_t *step(const json_t *cur, const char *comp, size_t len, long index)
{
    if (json_is_object(cur)) {
        return json_object_getn(cur, comp, len);
    }
    if (json_is_array(cur) && index >= 0) {
        return json_array_get(cur, (size_t)index);
    }
    return NULL;
}

const json_t *wh_json_path(const json_t *root, const char *path)
{
    if (!root || !path) {
        return NULL;
    }
    const json_t *cur = root;
    const char *s = path;
    if (!*s) {
        return root;
    }
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        if (len == 0) {
            return NULL;
        }
        cur = step(cur, s, len, comp_index(s, len));
        if (!cur || !dot) {
            return cur;
        }
        s = dot + 1;
    }
}

void wh_path_free(wh_path *p)
{
    if (!p) {
        return;
    }
    for (size_t i = 0; p->parts && i < p->n; i++) {
        free(p->parts[i]);
    }
    free(p->parts);
    free(p->index);
    *p = (wh_path){0};
}

int wh_path_parse(wh_path *p, const char *dotted)
{
    *p = (wh_path){0};
    if (!dotted) {
        return WH_ERR_INVALID;
    }
    if (!*dotted) {
        return WH_OK;
    }
    size_t n = 1;
    for (const char *c = dotted; *c; c++) {
        n += *c == '.';
    }
    p->parts = calloc(n, sizeof *p->parts);
    p->index = calloc(n, sizeof *p->index);
    if (!p->parts || !p->index) {
        wh_path_free(p);
        return WH_ERR_NOMEM;
    }
    const char *s = dotted;
    for (size_t i = 0; i < n; i++) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        if (len == 0) {
            p->n = i;
            wh_path_free(p);
            return WH_ERR_INVALID;
        }
        p->parts[i] = strndup(s, len);
        if (!p->parts[i]) {
            p->n = i;
            wh_path_free(p);
            return WH_ERR_NOMEM;
        }
        p->index[i] = comp_index(s, len);
        s = dot ? dot + 1 : s + len;
    }
    p->n = n;
    return WH_OK;
}

const json_t *wh_path_get(const wh_path *p, const json_t *root)
{
    const json_t *cur = root;
    for (size_t i = 0; p && cur && i < p->n; i++) {
        cur = step(cur, p->parts[i], strlen(p->parts[i]), p->index[i]);
    }
    return p ? cur : NULL;
}

/* ------------------------------------------------------------------------ */
/* Equality and numbers                                                      */

/* jansson's parser stops at depth 2048; values deeper than this bound can only
   come from code, and compare unequal rather than risk the stack. */
#define EQUAL_MAX_DEPTH 2048

static int equal_num(const json_t *a, const json_t *b, int depth)
{
    if (a == b) {
        return 1;
    }
    if (!a || !b || depth > EQUAL_MAX_DEPTH) {
        return 0;
    }
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) {
            return json_integer_value(a) == json_integer_value(b);
        }
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) {
        return 0;
    }
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b)) {
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            if (!equal_num(json_array_get(a, i), json_array_get(b, i), depth + 1)) {
                return 0;
            }
        }
        return 1;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) {
            return 0;
        }
        /* Iteration does not modify the object; jansson's iterator API is not const. */
        json_t *ma = (json_t *)a;
        for (void *it = json_object_iter(ma); it; it = json_object_iter_next(ma, it)) {
            const json_t *vb =
                json_object_getn(b, json_object_iter_key(it), json_object_iter_key_len(it));
            if (!equal_num(json_object_iter_value(it), vb, depth + 1)) {
                return 0;
            }
        }
        return 1;
    }
    default:
        return 1; /* true, false, null: same type is equal */
    }
}

int wh_json_equal_num(const json_t *a, const json_t *b)
{
    return equal_num(a, b, 0);
}

/* -1, 0, 1 for two numbers. */
static int num_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------------ */
/* Regex match data: one per thread, freed when the thread exits.            */

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t md_key;
static int md_key_ok;

static void md_free(void *md)
{
    pcre2_match_data_free(md);
}

static void md_init(void)
{
    md_key_ok = pthread_key_create(&md_key, md_free) == 0;
}

/* The thread's match data; *own is set when the caller must free it (no slot). */
static pcre2_match_data *thread_md(int *own)
{
    *own = 0;
    pthread_once(&md_once, md_init);
    pcre2_match_data *md = md_key_ok ? pthread_getspecific(md_key) : NULL;
    if (md) {
        return md;
    }
    /* One pair suffices: only whether it matched is wanted. */
    md = pcre2_match_data_create(1, NULL);
    if (md && (!md_key_ok || pthread_setspecific(md_key, md) != 0)) {
        *own = 1;
    }
    return md;
}

static int regex_match(const wh_match *m, const pcre2_code *re, const json_t *v)
{
    int own;
    pcre2_match_data *md = thread_md(&own);
    if (!md) {
        return 0;
    }
    int rc =
        pcre2_match(re, (PCRE2_SPTR)json_string_value(v), json_string_length(v), 0, 0, md, m->mctx);
    if (own) {
        pcre2_match_data_free(md);
    }
    /* 0 means matched with an ovector too small for the groups: still a match. */
    return rc >= 0;
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                                */

static int test_holds(const wh_match *m, const test *t, const json_t *v)
{
    switch (t->op) {
    case OP_EQUALS:
        return v && equal_num(v, t->arg, 0);
    case OP_NOT:
        return !v || !equal_num(v, t->arg, 0);
    case OP_IN:
        for (size_t i = 0; v && i < json_array_size(t->arg); i++) {
            if (equal_num(v, json_array_get(t->arg, i), 0)) {
                return 1;
            }
        }
        return 0;
    case OP_EXISTS:
        return (v && !json_is_null(v)) == t->flag;
    case OP_CONTAINS:
        if (json_is_string(v) && json_is_string(t->arg)) {
            size_t al = json_string_length(t->arg);
            return al == 0 || memmem(json_string_value(v), json_string_length(v),
                                     json_string_value(t->arg), al) != NULL;
        }
        for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
            if (equal_num(json_array_get(v, i), t->arg, 0)) {
                return 1;
            }
        }
        return 0;
    case OP_STARTS_WITH:
    case OP_ENDS_WITH: {
        if (!json_is_string(v)) {
            return 0;
        }
        size_t vl = json_string_length(v), al = json_string_length(t->arg);
        if (al > vl) {
            return 0;
        }
        const char *s = json_string_value(v) + (t->op == OP_ENDS_WITH ? vl - al : 0);
        return memcmp(s, json_string_value(t->arg), al) == 0;
    }
    case OP_REGEX:
        return json_is_string(v) && regex_match(m, t->re, v);
    case OP_GT:
        return json_is_number(v) && num_cmp(v, t->arg) > 0;
    case OP_GTE:
        return json_is_number(v) && num_cmp(v, t->arg) >= 0;
    case OP_LT:
        return json_is_number(v) && num_cmp(v, t->arg) < 0;
    case OP_LTE:
        return json_is_number(v) && num_cmp(v, t->arg) <= 0;
    default:
        return 0;
    }
}

/* Compact JSON of v, cut at about 80 bytes on a UTF-8 boundary. */
static void show(char *out, size_t size, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        snprintf(out, size, "(value)");
        return;
    }
    size_t len = strlen(s), max = size > 84 ? 80 : (size ? size - 1 : 0);
    if (len > max) {
        while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) {
            max--;
        }
        snprintf(out, size, "%.*s...", (int)max, s);
    } else {
        snprintf(out, size, "%s", s);
    }
    free(s);
}

static void explain_test(const entry *e, const test *t, const json_t *v, char *why, size_t size)
{
    char vs[96], as[96];
    const char *op = op_names[t->op];
    show(as, sizeof as, t->arg);
    if (t->op == OP_EXISTS) {
        if (t->flag) {
            snprintf(why, size, "%s: %s (exists: true)", e->text, v ? "null" : "missing");
        } else {
            show(vs, sizeof vs, v);
            snprintf(why, size, "%s: %s is present (exists: false)", e->text, vs);
        }
        return;
    }
    if (!v) {
        snprintf(why, size, "%s: missing (%s: %s)", e->text, op, as);
        return;
    }
    show(vs, sizeof vs, v);
    static const char *const verbs[] = {
        [OP_EQUALS] = "is not equal to",
        [OP_NOT] = "is excluded by not:",
        [OP_IN] = "is not in",
        [OP_CONTAINS] = "does not contain",
        [OP_STARTS_WITH] = "does not start with",
        [OP_ENDS_WITH] = "does not end with",
        [OP_REGEX] = "does not match regex",
        [OP_GT] = "is not greater than",
        [OP_GTE] = "is not greater than or equal to",
        [OP_LT] = "is not less than",
        [OP_LTE] = "is not less than or equal to",
    };
    snprintf(why, size, "%s: %s %s %s", e->text, vs, verbs[t->op], as);
}

static int eval_crit(const wh_match *m, const crit *c, const json_t *ctx, char *why, size_t size);

/* Prefix why (which holds a sub-criterion's explanation) with a label. */
static void prefix_why(char *why, size_t size, const char *label)
{
    size_t ll = strlen(label), wl = strlen(why);
    if (ll >= size) {
        memcpy(why, label, size - 1);
        why[size - 1] = '\0';
        return;
    }
    if (ll + wl >= size) {
        wl = size - 1 - ll;
    }
    memmove(why + ll, why, wl);
    memcpy(why, label, ll);
    why[ll + wl] = '\0';
}

static int eval_entry(const wh_match *m, const entry *e, const json_t *ctx, char *why, size_t size)
{
    char label[64];
    switch (e->comb) {
    case OP_ALL:
        for (size_t i = 0; i < e->nsubs; i++) {
            if (!eval_crit(m, &e->subs[i], ctx, why, size)) {
                if (why) {
                    snprintf(label, sizeof label, "all[%zu]: ", i);
                    prefix_why(why, size, label);
                }
                return 0;
            }
        }
        return 1;
    case OP_ANY:
        for (size_t i = 0; i < e->nsubs; i++) {
            if (eval_crit(m, &e->subs[i], ctx, NULL, 0)) {
                return 1;
            }
        }
        if (why) {
            /* Explain each alternative: "any: no alternative matched: [0] ...; [1] ..." */
            size_t o = (size_t)snprintf(why, size, "any: no alternative matched");
            for (size_t i = 0; i < e->nsubs && o + 1 < size; i++) {
                int w = snprintf(why + o, size - o, "%s[%zu] ", i ? "; " : ": ", i);
                if (w < 0 || (size_t)w >= size - o) {
                    break;
                }
                o += (size_t)w;
                eval_crit(m, &e->subs[i], ctx, why + o, size - o);
                o += strlen(why + o);
            }
        }
        return 0;
    case OP_NONE:
        for (size_t i = 0; i < e->nsubs; i++) {
            if (eval_crit(m, &e->subs[i], ctx, NULL, 0)) {
                if (why) {
                    snprintf(why, size, "none: alternative [%zu] matched", i);
                }
                return 0;
            }
        }
        return 1;
    default:
        break;
    }
    const json_t *v = ctx ? wh_path_get(&e->path, ctx) : NULL;
    for (size_t i = 0; i < e->ntests; i++) {
        if (!test_holds(m, &e->tests[i], v)) {
            if (why) {
                explain_test(e, &e->tests[i], v, why, size);
            }
            return 0;
        }
    }
    return 1;
}

static int eval_crit(const wh_match *m, const crit *c, const json_t *ctx, char *why, size_t size)
{
    for (size_t i = 0; i < c->n; i++) {
        if (!eval_entry(m, &c->e[i], ctx, why, size)) {
            return 0;
        }
    }
    if (why && size) {
        why[0] = '\0';
    }
    return 1;
}

int wh_match_eval(const wh_match *m, const json_t *ctx)
{
    return m ? eval_crit(m, &m->root, ctx, NULL, 0) : 0;
}

int wh_match_explain(const wh_match *m, const json_t *ctx, char *why, size_t size)
{
    if (why && size == 0) {
        why = NULL;
    }
    if (why) {
        why[0] = '\0';
    }
    if (!m) {
        if (why) {
            snprintf(why, size, "no criteria");
        }
        return 0;
    }
    return eval_crit(m, &m->root, ctx, why, size);
}

/* ------------------------------------------------------------------------ */
/* Destruction                                                               */

static void crit_free(crit *c);

static void entry_free(entry *e)
{
    free(e->text);
    wh_path_free(&e->path);
    for (size_t i = 0; e->tests && i < e->ntests; i++) {
        json_decref(e->tests[i].arg);
        pcre2_code_free(e->tests[i].re);
    }
    free(e->tests);
    for (size_t i = 0; e->subs && i < e->nsubs; i++) {
        crit_free(&e->subs[i]);
    }
    free(e->subs);
}

static void crit_free(crit *c)
{
    for (size_t i = 0; c->e && i < c->n; i++) {
        entry_free(&c->e[i]);
    }
    free(c->e);
    *c = (crit){0};
}

void wh_match_destroy(wh_match **m)
{
    if (!m || !*m) {
        return;
    }
    crit_free(&(*m)->root);
    pcre2_match_context_free((*m)->mctx);
    free(*m);
    *m = NULL;
}

/* ------------------------------------------------------------------------ */
/* Compilation                                                               */

typedef struct cc {
    const wh_doc *doc;
    json_t *errors;
    int failed;
} cc;

static void cerr(cc *c, const char *ptr, int at_value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Report at the node's key (at_value 0) or value (1); "<criteria>:0:0:" without a doc. */
static void cerr(cc *c, const char *ptr, int at_value, const char *fmt, ...)
{
    c->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0) {
        return;
    }
    if (!c->doc) {
        if (c->errors) {
            json_array_append_new(c->errors, json_sprintf("<criteria>:0:0: %s", msg));
        }
    } else if (at_value) {
        wh_doc_value_error(c->doc, c->errors, ptr, "%s", msg);
    } else {
        wh_doc_error(c->doc, c->errors, ptr, "%s", msg);
    }
    free(msg);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* A printable, bounded rendering of a key for messages: at most 60 bytes, cut on
   a UTF-8 boundary, control characters shown as '?'. */
static const char *key_text(char *out, size_t size, const char *k)
{
    size_t len = strlen(k), n = len, max = size >= 64 ? 60 : size / 2;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)k[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k[i];
        out[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (n < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static int compile_crit(cc *c, const json_t *obj, const char *ptr, int depth, crit *out);

static int find_op(const char *name)
{
    for (int i = 0; i <= OP_LTE; i++) {
        if (strcmp(name, op_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* One operator on a path; errors are reported at the argument (vptr). */
static void compile_test(cc *c, test *t, op_t op, const json_t *arg, const char *path,
                         const char *vptr)
{
    char pk[80];
    const char *name = op_names[op];
    key_text(pk, sizeof pk, path);
    t->op = op;
    switch (op) {
    case OP_IN:
        if (!json_is_array(arg)) {
            cerr(c, vptr, 1, "'in' for '%s' needs a list, got %s", pk, type_name(arg));
            return;
        }
        break;
    case OP_EXISTS:
        if (!json_is_boolean(arg)) {
            cerr(c, vptr, 1, "'exists' for '%s' needs true or false, got %s", pk, type_name(arg));
            return;
        }
        t->flag = json_is_true(arg);
        break;
    case OP_STARTS_WITH:
    case OP_ENDS_WITH:
    case OP_REGEX:
        if (!json_is_string(arg)) {
            cerr(c, vptr, 1, "'%s' for '%s' needs a string, got %s", name, pk, type_name(arg));
            return;
        }
        break;
    case OP_GT:
    case OP_GTE:
    case OP_LT:
    case OP_LTE:
        if (!json_is_number(arg)) {
            cerr(c, vptr, 1, "'%s' for '%s' needs a number, got %s", name, pk, type_name(arg));
            return;
        }
        break;
    default:
        break;
    }
    if (op == OP_REGEX) {
        int ec = 0;
        PCRE2_SIZE off = 0;
        t->re = pcre2_compile((PCRE2_SPTR)json_string_value(arg), json_string_length(arg),
                              PCRE2_UTF, &ec, &off, NULL);
        if (!t->re) {
            PCRE2_UCHAR msg[256];
            if (pcre2_get_error_message(ec, msg, sizeof msg) < 0) {
                snprintf((char *)msg, sizeof msg, "error %d", ec);
            }
            cerr(c, vptr, 1, "invalid regex for '%s' at offset %zu: %s", pk, (size_t)off,
                 (const char *)msg);
            return;
        }
        /* No pcre2_jit_compile(): the JIT reads words past the subject's end, which
           valgrind reports as errors in every test run; the interpreter is fast enough
           for rule criteria, and MATCH_LIMIT bounds its worst case. */
    }
    t->arg = json_deep_copy(arg);
    if (!t->arg) {
        cerr(c, vptr, 1, "out of memory");
    }
}

static void compile_combinator(cc *c, entry *e, op_t op, const json_t *val, const char *kptr,
                               int depth)
{
    const char *name = op_names[op];
    e->comb = op;
    if (!json_is_array(val)) {
        cerr(c, kptr, 0, "'%s' needs a list of criteria objects, got %s", name, type_name(val));
        return;
    }
    size_t n = json_array_size(val);
    e->subs = calloc(n ? n : 1, sizeof *e->subs);
    if (!e->subs) {
        cerr(c, kptr, 0, "out of memory");
        return;
    }
    e->nsubs = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(val, i);
        char *iptr = wh_ptr_index_dup(kptr, i);
        if (!iptr) {
            cerr(c, kptr, 0, "out of memory");
            return;
        }
        if (!json_is_object(item)) {
            cerr(c, iptr, 1, "'%s' item %zu must be a criteria object (path: condition), got %s",
                 name, i, type_name(item));
        } else {
            compile_crit(c, item, iptr, depth + 1, &e->subs[i]);
        }
        free(iptr);
    }
}

static void compile_path(cc *c, entry *e, const char *key, const json_t *val, const char *kptr)
{
    char pk[80];
    key_text(pk, sizeof pk, key);
    e->comb = OP_EQUALS;
    int rc = wh_path_parse(&e->path, key);
    if (rc == WH_ERR_NOMEM) {
        cerr(c, kptr, 0, "out of memory");
        return;
    }
    if (rc != WH_OK || !*key) {
        cerr(c, kptr, 0, "invalid path '%s': components separated by '.' must not be empty", pk);
    }
    if (!json_is_object(val)) {
        e->tests = calloc(1, sizeof *e->tests);
        if (!e->tests) {
            cerr(c, kptr, 0, "out of memory");
            return;
        }
        e->ntests = 1;
        compile_test(c, &e->tests[0], OP_EQUALS, val, key, kptr);
        return;
    }
    size_t n = json_object_size(val);
    if (n == 0) {
        cerr(c, kptr, 1,
             "'%s' has no operators (valid: " VALID_OPS
             "; use equals: {} to compare with an empty object)",
             pk);
        return;
    }
    e->tests = calloc(n, sizeof *e->tests);
    if (!e->tests) {
        cerr(c, kptr, 0, "out of memory");
        return;
    }
    json_t *mval = (json_t *)val; /* read-only iteration */
    for (void *it = json_object_iter(mval); it; it = json_object_iter_next(mval, it)) {
        const char *opname = json_object_iter_key(it);
        char *optr = wh_ptr_child_dup(kptr, opname);
        if (!optr) {
            cerr(c, kptr, 0, "out of memory");
            return;
        }
        int op = find_op(opname);
        if (op < 0) {
            char ok[80];
            cerr(c, optr, 0, "unknown operator '%s' for '%s' (valid: " VALID_OPS ")",
                 key_text(ok, sizeof ok, opname), pk);
        } else {
            compile_test(c, &e->tests[e->ntests], (op_t)op, json_object_iter_value(it), key, optr);
            e->ntests++;
        }
        free(optr);
    }
}

static int compile_crit(cc *c, const json_t *obj, const char *ptr, int depth, crit *out)
{
    if (depth > WH_MATCH_MAX_DEPTH) {
        cerr(c, ptr, 1, "criteria nest deeper than %d levels", WH_MATCH_MAX_DEPTH);
        return -1;
    }
    if (!json_is_object(obj)) {
        cerr(c, ptr, 1, "criteria must be an object of path: condition, got %s", type_name(obj));
        return -1;
    }
    size_t n = json_object_size(obj);
    out->e = calloc(n ? n : 1, sizeof *out->e);
    if (!out->e) {
        cerr(c, ptr, 1, "out of memory");
        return -1;
    }
    json_t *mobj = (json_t *)obj; /* read-only iteration */
    for (void *it = json_object_iter(mobj); it; it = json_object_iter_next(mobj, it)) {
        const char *key = json_object_iter_key(it);
        const json_t *val = json_object_iter_value(it);
        entry *e = &out->e[out->n++];
        char *kptr = wh_ptr_child_dup(ptr, key);
        e->text = strdup(key);
        if (!kptr || !e->text) {
            free(kptr);
            cerr(c, ptr, 1, "out of memory");
            return -1;
        }
        if (strcmp(key, "all") == 0 || strcmp(key, "any") == 0 || strcmp(key, "none") == 0) {
            op_t op = key[1] == 'l' ? OP_ALL : key[1] == 'n' ? OP_ANY : OP_NONE;
            compile_combinator(c, e, op, val, kptr, depth);
        } else {
            compile_path(c, e, key, val, kptr);
        }
        free(kptr);
    }
    return 0;
}

wh_match *wh_match_compile(const wh_doc *doc, const char *pointer, const json_t *criteria,
                           json_t *errors)
{
    cc c = {.doc = doc, .errors = errors};
    if (!pointer) {
        pointer = "";
    }
    wh_match *m = calloc(1, sizeof *m);
    if (!m || !(m->mctx = pcre2_match_context_create(NULL))) {
        cerr(&c, pointer, 1, "out of memory");
        wh_match_destroy(&m);
        return NULL;
    }
    pcre2_set_match_limit(m->mctx, MATCH_LIMIT);
    pcre2_set_depth_limit(m->mctx, DEPTH_LIMIT);
    if (criteria && !json_is_null(criteria)) {
        compile_crit(&c, criteria, pointer, 0, &m->root);
    }
    if (c.failed) {
        wh_match_destroy(&m);
        return NULL;
    }
    return m;
}
