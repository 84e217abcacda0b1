/*
 * webhook.c — the generic webhook connector: any HTTP POST in (optionally
 * HMAC-signed, GitHub style), any HTTP request out (operation `request`).
 *
 * Owns: signature checking against its own config, decoding JSON and form
 * bodies into one event per request, and mapping an outgoing exchange's
 * status to OK / RETRY / FAIL. Must not: include anything but the public
 * SDK header, do network I/O itself (host->http does), block, keep a
 * request's borrowed data after webhook() returns, or log secrets/payloads.
 */
#include <wirehub/connector.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KIND_MAX 64
#define METHOD_MAX 32

/* One instance. Immutable after init(), so webhook() may run on several threads at once. */
typedef struct webhook {
    const wh_host *host;
    wh_instance *inst;
    char *secret; /* NULL: unsigned requests are accepted */
    size_t secret_len;
    char *sig_header;
    char *sig_prefix;
    char *kind;
    char *id_header;  /* the header naming each delivery, for de-duplication */
    long wait_ms;     /* > 0: the caller waits for the rule's respond */
    json_t *fallback; /* the answer when none comes in time */
} webhook;

static const wh_option k_options[] = {
    {"secret", WH_OPT_STRING, NULL, WH_OPT_SECRET,
     "HMAC-SHA256 key: when set, every request must carry a valid signature of its raw body; "
     "when absent, unsigned requests are accepted"},
    {"signature_header", WH_OPT_STRING, "\"X-Hub-Signature-256\"", 0,
     "the request header carrying the signature"},
    {"signature_prefix", WH_OPT_STRING, "\"sha256=\"", 0,
     "text before the hex digest in the signature header (may be empty)"},
    {"kind", WH_OPT_STRING, "\"event\"", 0,
     "the event kind; a first path segment (/hooks/<instance>/<kind>) overrides it"},
    {"id_header", WH_OPT_STRING, NULL, 0,
     "a header that names each delivery (GitHub: X-GitHub-Delivery): a delivery seen before is "
     "answered again without running rules twice"},
    {"wait_ms", WH_OPT_INT, "0", 0,
     "when > 0, the caller waits up to this long for the matching rule's `respond` and gets "
     "it as its JSON answer"},
    {"fallback", WH_OPT_OBJECT, "{\"error\": \"no_answer\"}", 0,
     "the JSON answer when `wait_ms` passes or no rule answers"},
    {NULL, 0, NULL, 0, NULL},
};

/* ------------------------------------------------------------------------ */
/* Small helpers (the connector links nothing of the hub's).                 */

/* A growable string; `len` excludes the NUL that always follows. */
typedef struct sbuf {
    char *data;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_append(sbuf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_append(b, s, strlen(s));
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = ascii_lower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* An RFC 9110 token character (header names, methods). */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if (!is_tchar((unsigned char)s[n]) || n >= max) {
            return false;
        }
    }
    return n > 0;
}

/* [A-Za-z0-9_.-]{1,64}, and not only dots ("." and ".." make confusing topics). */
static bool valid_kind(const char *s, size_t n)
{
    if (n == 0 || n > KIND_MAX) {
        return false;
    }
    bool only_dots = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return false;
        }
        only_dots = only_dots && c == '.';
    }
    return !only_dots;
}

/* "application/json" or any "<type>/<subtype>+json" (case-insensitive, no parameters). */
static bool is_json_media(const char *mt, size_t n)
{
    if (n == 16 && strncasecmp(mt, "application/json", 16) == 0) {
        return true;
    }
    return n > 5 && memchr(mt, '/', n) && strncasecmp(mt + n - 5, "+json", 5) == 0;
}

/* Length of the valid UTF-8 sequence at s[0] (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min, cp;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

/* A JSON string of arbitrary bytes: invalid UTF-8 becomes U+FFFD. New reference or NULL. */
static json_t *string_lossy(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j) {
        return j;
    }
    sbuf b = {0};
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k) {
            sb_append(&b, s + i, k);
            i += k;
        } else {
            sb_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    j = b.oom ? NULL : json_stringn_nocheck(b.data ? b.data : "", b.len);
    free(b.data);
    return j;
}

static char *opt_dup(const json_t *config, const char *name, const char *def)
{
    const json_t *v = json_object_get(config, name);
    const char *s = json_is_string(v) ? json_string_value(v) : def;
    return s ? strdup(s) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */

static void webhook_destroy(void *state)
{
    webhook *w = state;
    if (!w) {
        return;
    }
    json_decref(w->fallback);
    free(w->id_header);
    if (w->secret) {
        /* volatile so the wipe is not optimised away */
        volatile char *p = w->secret;
        for (size_t i = 0; i < w->secret_len; i++) {
            p[i] = 0;
        }
    }
    free(w->secret);
    free(w->sig_header);
    free(w->sig_prefix);
    free(w->kind);
    free(w);
}

static int webhook_init(const wh_host *host, wh_instance *inst, const json_t *config, void **state)
{
    webhook *w = calloc(1, sizeof *w);
    if (!w) {
        return WH_ERR_NOMEM;
    }
    w->host = host;
    w->inst = inst;
    /* every problem is logged before giving up: `check` lists them all, each at its key */
    int bad = 0;
    for (const wh_option *o = k_options; o->name; o++) {
        const json_t *v = json_object_get(config, o->name);
        if (o->type == WH_OPT_STRING && v && !json_is_string(v)) {
            host->log(inst, WH_LOG_ERROR, "config: `%s` must be a string", o->name);
            bad = 1;
        }
    }
    if (bad) {
        goto fail_config; /* what follows reads these keys as strings */
    }
    const json_t *secret = json_object_get(config, "secret");
    if (secret) {
        w->secret_len = json_string_length(secret);
        w->secret = malloc(w->secret_len + 1);
        if (!w->secret) {
            goto fail_nomem;
        }
        memcpy(w->secret, json_string_value(secret), w->secret_len + 1);
        if (w->secret_len == 0) {
            host->log(inst, WH_LOG_ERROR,
                      "config: `secret` is empty (remove it to accept "
                      "unsigned requests)");
            bad = 1;
        }
    }
    w->sig_header = opt_dup(config, "signature_header", "X-Hub-Signature-256");
    w->sig_prefix = opt_dup(config, "signature_prefix", "sha256=");
    w->kind = opt_dup(config, "kind", "event");
    if (json_object_get(config, "id_header")) {
        w->id_header = opt_dup(config, "id_header", "");
        if (!w->id_header) {
            goto fail_nomem;
        }
    }
    if (!w->sig_header || !w->sig_prefix || !w->kind) {
        goto fail_nomem;
    }
    if (!is_token(w->sig_header, 256)) {
        host->log(inst, WH_LOG_ERROR, "config: `signature_header` is not a header name");
        bad = 1;
    }
    if (!valid_kind(w->kind, strlen(w->kind))) {
        host->log(inst, WH_LOG_ERROR, "config: `kind` must match [A-Za-z0-9_.-]{1,64}");
        bad = 1;
    }
    w->wait_ms = (long)json_integer_value(json_object_get(config, "wait_ms"));
    if (w->wait_ms < 0 || w->wait_ms > 60000) {
        host->log(inst, WH_LOG_ERROR, "config: `wait_ms` must be between 0 and 60000");
        bad = 1;
    }
    if (bad) {
        goto fail_config;
    }
    w->fallback = json_deep_copy(json_object_get(config, "fallback"));
    if (!w->fallback) {
        w->fallback = json_pack("{s:s}", "error", "no_answer");
    }
    if (!w->secret) {
        host->log(inst, WH_LOG_WARN, "no `secret` configured: accepting unsigned requests");
    }
    *state = w;
    return WH_OK;
fail_nomem:
    webhook_destroy(w);
    return WH_ERR_NOMEM;
fail_config:
    webhook_destroy(w);
    return WH_ERR_CONFIG;
}

/* ------------------------------------------------------------------------ */
/* Ingress                                                                   */

/*
 * Check the signature header against HMAC-SHA256(secret, raw body).
 * Returns 1 when it matches; otherwise rejects the request and returns 0,
 * or a negative code when even the rejection failed.
 */
static int check_signature(const webhook *w, const wh_request *req, wh_webhook *wh,
                           const char *body, size_t body_len)
{
    const wh_host *h = w->host;
    char detail[320];
    const char *sig = h->req_header(req, w->sig_header);
    if (!sig) {
        snprintf(detail, sizeof detail, "header %s is missing", w->sig_header);
        int rc = h->reject(wh, 401, "missing_signature", detail);
        return rc < 0 ? rc : 0;
    }
    unsigned char mac[64];
    size_t mac_len = 0;
    int rc = h->hmac("sha256", w->secret, w->secret_len, body, body_len, mac, &mac_len);
    if (rc != WH_OK) {
        h->log(w->inst, WH_LOG_ERROR, "hmac failed (%d)", rc);
        return rc < 0 ? rc : WH_ERR;
    }
    /* Decode the presented hex (either case) and compare bytes in constant time. */
    size_t plen = strlen(w->sig_prefix);
    unsigned char got[64];
    bool well_formed = strncmp(sig, w->sig_prefix, plen) == 0 && strlen(sig + plen) == 2 * mac_len;
    for (size_t i = 0; well_formed && i < mac_len; i++) {
        int hi = hexval(sig[plen + 2 * i]), lo = hexval(sig[plen + 2 * i + 1]);
        well_formed = hi >= 0 && lo >= 0;
        got[i] = well_formed ? (unsigned char)(hi << 4 | lo) : 0;
    }
    if (!well_formed) {
        snprintf(detail, sizeof detail, "header %s must be %s<%zu hex digits>", w->sig_header,
                 w->sig_prefix, 2 * mac_len);
        rc = h->reject(wh, 401, "bad_signature", detail);
        return rc < 0 ? rc : 0;
    }
    if (!h->ct_equal(mac, mac_len, got, mac_len)) {
        rc = h->reject(wh, 401, "bad_signature", "signature does not match the body");
        return rc < 0 ? rc : 0;
    }
    return 1;
}

static bool excluded_header(const webhook *w, const char *name)
{
    return strcasecmp(name, "authorization") == 0 || strcasecmp(name, "cookie") == 0 ||
           strcasecmp(name, "proxy-authorization") == 0 || strcasecmp(name, w->sig_header) == 0;
}

/* The request's headers minus credentials and the signature. New reference or NULL. */
static json_t *copy_headers(const webhook *w, const json_t *all)
{
    json_t *out = json_object();
    const char *name;
    json_t *value;
    if (!out) {
        return NULL;
    }
    json_object_foreach((json_t *)all, name, value)
    {
        if (!json_is_string(value) || excluded_header(w, name)) {
            continue;
        }
        /* strings are immutable here: share them rather than copy */
        if (json_object_set(out, name, value) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* Reject and map the host's answer to webhook()'s return value. */
static int refuse(const wh_host *h, wh_webhook *wh, int status, const char *error,
                  const char *detail)
{
    int rc = h->reject(wh, status, error, detail);
    return rc < 0 ? rc : WH_OK;
}

static int webhook_webhook(void *state, const wh_request *req, wh_webhook *wh)
{
    const webhook *w = state;
    const wh_host *h = w->host;
    char detail[320];

    size_t body_len = 0;
    const char *body = h->req_body(req, &body_len);
    if (!body) {
        body = "";
        body_len = 0;
    }

    /* 1. Authenticate first: an unsigned caller learns nothing about paths or bodies. */
    if (w->secret) {
        int ok = check_signature(w, req, wh, body, body_len);
        if (ok != 1) {
            return ok < 0 ? ok : WH_OK;
        }
    }

    /* 2. The kind: the first path segment, else the configured one. The header promises a
     *    path without query; if a host ever passes one, it is split off and decoded. */
    const char *path = h->req_path(req);
    if (!path) {
        path = "";
    }
    const char *qmark = strchr(path, '?');
    size_t path_len = qmark ? (size_t)(qmark - path) : strlen(path);
    const char *seg = path;
    size_t seg_len = path_len;
    if (seg_len && seg[0] == '/') {
        seg++;
        seg_len--;
    }
    const char *slash = memchr(seg, '/', seg_len);
    if (slash) {
        seg_len = (size_t)(slash - seg);
    }
    char kind[KIND_MAX + 1];
    if (seg_len) {
        if (!valid_kind(seg, seg_len)) {
            return refuse(h, wh, 400, "bad_kind",
                          "the path segment after the instance must match [A-Za-z0-9_.-]{1,64}");
        }
        memcpy(kind, seg, seg_len);
        kind[seg_len] = '\0';
    } else {
        snprintf(kind, sizeof kind, "%s", w->kind);
    }

    /* 3. A delivery seen before is answered as the first one was. */
    if (w->id_header && WH_HOST_HAS(h, dedupe)) {
        const char *id = h->req_header(req, w->id_header);
        if (id && *id && h->dedupe(wh, id) == 1) {
            return WH_OK;
        }
    }

    /* 4. Decode the body by media type. */
    const char *ct = h->req_content_type(req);
    json_t *parsed = NULL;
    if (ct && is_json_media(ct, strlen(ct))) {
        if (body_len == 0) {
            return refuse(h, wh, 400, "bad_json", "the body is empty");
        }
        json_error_t jerr;
        parsed = json_loadb(body, body_len, JSON_DECODE_ANY, &jerr);
        if (!parsed) {
            snprintf(detail, sizeof detail, "%s (line %d, column %d)", jerr.text, jerr.line,
                     jerr.column);
            return refuse(h, wh, 400, "bad_json", detail);
        }
    } else if (ct && strcasecmp(ct, "application/x-www-form-urlencoded") == 0) {
        parsed = h->form_decode(body, body_len);
        if (!parsed) {
            return refuse(h, wh, 400, "bad_form",
                          "malformed form body (a bad %-escape, invalid UTF-8 or %00)");
        }
    } else {
        snprintf(detail, sizeof detail,
                 "expected application/json, */*+json or application/x-www-form-urlencoded, "
                 "got %.80s",
                 ct && *ct ? ct : "no Content-Type");
        return refuse(h, wh, 415, "unsupported_media_type", detail);
    }

    /* 5. The event. */
    json_t *query = NULL;
    if (qmark) {
        query = h->form_decode(qmark + 1, strlen(qmark + 1));
    } else if (WH_HOST_HAS(h, req_queries) && h->req_queries(req)) {
        query = json_deep_copy(h->req_queries(req));
    }
    if (!query) {
        query = json_object();
    }
    json_t *data = json_object();
    json_t *headers = copy_headers(w, h->req_headers(req));
    /* the host percent-decodes the path, so it may hold any bytes (%FF) */
    json_t *path_j = string_lossy(path, path_len);
    if (!data || !headers || !query || !path_j) {
        json_decref(parsed);
        json_decref(headers);
        json_decref(query);
        json_decref(path_j);
        json_decref(data);
        return WH_ERR_NOMEM;
    }
    /* set_new consumes its value even when it fails, so every call is made */
    int bad = json_object_set_new(data, "body", parsed);
    bad |= json_object_set_new(data, "headers", headers);
    bad |= json_object_set_new(data, "query", query);
    bad |= json_object_set_new(data, "path", path_j);
    if (bad) {
        json_decref(data);
        return WH_ERR_NOMEM;
    }
    int rc = h->emit(wh, kind, data);
    if (rc != WH_OK) {
        json_decref(data);
        return rc < 0 ? rc : WH_ERR;
    }
    if (w->wait_ms > 0) {
        return h->wait(wh, w->wait_ms, w->fallback);
    }
    return WH_OK;
}

/* ------------------------------------------------------------------------ */
/* Operation `request`                                                       */

static const wh_option k_request_args[] = {
    {"url", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "absolute http:// or https:// URL"},
    {"query", WH_OPT_OBJECT, NULL, 0,
     "query arguments added to the URL, encoded: object of name -> string, number or boolean"},
    {"method", WH_OPT_STRING, NULL, 0, "HTTP method; default POST with a body, else GET"},
    {"headers", WH_OPT_OBJECT, NULL, 0, "extra request headers: object of name -> string"},
    {"json", WH_OPT_ANY, NULL, 0, "a JSON body (sent as application/json)"},
    {"form", WH_OPT_OBJECT, NULL, 0,
     "a form body (sent as application/x-www-form-urlencoded); values are strings, numbers "
     "or booleans"},
    {"body", WH_OPT_STRING, NULL, 0, "a raw body (text/plain unless headers set Content-Type)"},
    {"timeout_ms", WH_OPT_INT, NULL, 0, "whole-exchange timeout in ms (0: the hub's default)"},
    {NULL, 0, NULL, 0, NULL},
};

typedef struct request_ctx {
    const webhook *w;
    wh_call *call;
} request_ctx;

static bool valid_url(const char *u)
{
    size_t skip;
    if (strncasecmp(u, "http://", 7) == 0) {
        skip = 7;
    } else if (strncasecmp(u, "https://", 8) == 0) {
        skip = 8;
    } else {
        return false;
    }
    if (u[skip] == '\0' || u[skip] == '/' || u[skip] == '?' || u[skip] == '#') {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)u; *p; p++) {
        if (*p <= 0x20 || *p == 0x7F) {
            return false;
        }
    }
    return true;
}

/* The WHATWG application/x-www-form-urlencoded byte serializer. */
static void form_escape(sbuf *b, const char *s, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '*' || c == '-' || c == '.' || c == '_') {
            sb_append(b, (const char *)&c, 1);
        } else if (c == ' ') {
            sb_append(b, "+", 1);
        } else {
            char e[3] = {'%', digits[c >> 4], digits[c & 15]};
            sb_append(b, e, 3);
        }
    }
}

/* Encode a form object into b; false (with err set) on a value that is not a scalar. */
/* `what` names the argument in errors: "request: `form`", "poll: `query`" */
static bool encode_form(sbuf *b, const json_t *form, const char *what, char *err, size_t errsize)
{
    const char *key;
    json_t *value;
    bool first = true;
    json_object_foreach((json_t *)form, key, value)
    {
        if (json_is_null(value)) {
            continue; /* a template that named nothing: left out, as a top-level argument is */
        }
        if (!first) {
            sb_append(b, "&", 1);
        }
        first = false;
        form_escape(b, key, strlen(key));
        sb_append(b, "=", 1);
        if (json_is_string(value)) {
            form_escape(b, json_string_value(value), json_string_length(value));
        } else if (json_is_number(value) || json_is_boolean(value)) {
            char *text = json_dumps(value, JSON_ENCODE_ANY);
            if (!text) {
                b->oom = true;
                return true;
            }
            sb_puts(b, text);
            free(text);
        } else {
            snprintf(err, errsize, "%s.%.64s` must be a string, number or boolean", what, key);
            return false;
        }
    }
    return true;
}

/*
 * `url` with the arguments of `query` (encoded as a form is) appended, after
 * any query the URL has and before its fragment, which is dropped (it is
 * never sent). Returns false with err set when a value is not a scalar.
 */
static bool url_with_query(sbuf *out, const char *url, const json_t *query, const char *what,
                           char *err, size_t errsize)
{
    const char *hash = strchr(url, '#');
    size_t base = hash ? (size_t)(hash - url) : strlen(url);
    sb_append(out, url, base);
    size_t given = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)query, k, v)
    {
        given += !json_is_null(v);
    }
    if (given == 0) {
        return true;
    }
    const char *q = memchr(url, '?', base);
    if (!q) {
        sb_append(out, "?", 1);
    } else if (q + 1 < url + base && url[base - 1] != '&') {
        sb_append(out, "&", 1);
    }
    return encode_form(out, query, what, err, errsize);
}

/* Media type of a Content-Type value, lower-cased, without parameters, into out. */
static void media_type(const char *value, char *out, size_t size)
{
    size_t n = 0;
    while (*value == ' ' || *value == '\t') {
        value++;
    }
    for (; *value && *value != ';' && *value != ' ' && *value != '\t' && n + 1 < size; value++) {
        out[n++] = ascii_lower(*value);
    }
    out[n] = '\0';
}

/* {"status", "headers", "body"} of a response. New reference or NULL (out of memory). */
static json_t *response_result(const wh_http_response *r)
{
    json_t *headers = r->headers ? json_deep_copy(r->headers) : json_object();
    const char *ct = json_string_value(json_object_get(r->headers, "content-type"));
    char mt[128] = "";
    if (ct) {
        media_type(ct, mt, sizeof mt);
    }
    const char *text = r->body ? r->body : "";
    size_t text_len = r->body ? r->body_len : 0;
    json_t *body = NULL;
    if (text_len && is_json_media(mt, strlen(mt))) {
        body = json_loadb(text, text_len, JSON_DECODE_ANY, NULL);
    }
    if (!body) {
        body = string_lossy(text, text_len);
    }
    json_t *result = json_object();
    if (!result || !headers || !body ||
        json_object_set_new(result, "status", json_integer(r->status)) ||
        json_object_set(result, "headers", headers) || json_object_set(result, "body", body)) {
        json_decref(result);
        result = NULL;
    }
    json_decref(headers);
    json_decref(body);
    return result;
}

static void request_done(void *user, const wh_http_response *r)
{
    request_ctx *ctx = user;
    const wh_host *h = ctx->w->host;
    char err[256];
    if (r->status == 0) {
        snprintf(err, sizeof err, "request: %s",
                 r->timed_out ? "timed out" : (r->error ? r->error : "no response"));
        /* an answer over the size cap is the same answer next time: not retried */
        int too_large = h->abi_minor >= 1 && r->too_large;
        h->complete(ctx->call, too_large ? WH_CALL_FAIL : WH_CALL_RETRY, NULL, 0, err);
        free(ctx);
        return;
    }
    json_t *result = response_result(r);
    if (!result) {
        h->complete(ctx->call, WH_CALL_RETRY, NULL, 0, "request: out of memory");
    } else if (r->status >= 200 && r->status <= 299) {
        h->complete(ctx->call, WH_CALL_OK, result, 0, NULL);
    } else {
        snprintf(err, sizeof err, "HTTP %d", r->status);
        if (r->status == 408 || r->status == 429 || (r->status >= 500 && r->status <= 599)) {
            long after = 0;
            const char *ra = json_string_value(json_object_get(r->headers, "retry-after"));
            if (ra && h->retry_after_ms) {
                after = h->retry_after_ms(ctx->w->inst, ra);
            }
            h->complete(ctx->call, WH_CALL_RETRY, result, after > 0 ? after : 0, err);
        } else {
            h->complete(ctx->call, WH_CALL_FAIL, result, 0, err);
        }
    }
    free(ctx);
}

/* Headers set by wirehub or by curl that a rule may not override. */
static bool reserved_header(const char *name)
{
    return strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0;
}

static int op_request(void *state, wh_call *call, const json_t *args)
{
    const webhook *w = state;
    const wh_host *h = w->host;
    char err[256] = "";
    sbuf body = {0}, full_url = {0};
    char **lines = NULL;
    size_t nlines = 0;
    char *json_text = NULL;
    const char *body_ptr = NULL;
    size_t body_len = 0;
    const char *ctype = NULL;
    bool user_ctype = false;
    char method[METHOD_MAX + 1];
    long timeout_ms = 0;

    if (!json_is_object(args)) {
        snprintf(err, sizeof err, "request: arguments must be an object");
        goto fail;
    }
    /* url */
    const json_t *url = json_object_get(args, "url");
    if (!url) {
        snprintf(err, sizeof err, "request: `url` is required");
        goto fail;
    }
    if (!json_is_string(url) || strlen(json_string_value(url)) != json_string_length(url) ||
        !valid_url(json_string_value(url))) {
        snprintf(err, sizeof err, "request: `url` must be an absolute http:// or https:// URL");
        goto fail;
    }
    /* query arguments, appended to the URL encoded */
    const json_t *a_query = json_object_get(args, "query");
    if (a_query) {
        if (!json_is_object(a_query)) {
            snprintf(err, sizeof err, "request: `query` must be an object");
            goto fail;
        }
        if (!url_with_query(&full_url, json_string_value(url), a_query, "request: `query", err,
                            sizeof err)) {
            goto fail;
        }
        if (full_url.oom || !full_url.data) {
            goto nomem;
        }
    }
    /* body arguments: at most one */
    const json_t *a_json = json_object_get(args, "json");
    const json_t *a_form = json_object_get(args, "form");
    const json_t *a_body = json_object_get(args, "body");
    if ((a_json != NULL) + (a_form != NULL) + (a_body != NULL) > 1) {
        snprintf(err, sizeof err, "request: give only one of `json`, `form` or `body`");
        goto fail;
    }
    /* method */
    const json_t *m = json_object_get(args, "method");
    if (m) {
        const char *ms = json_string_value(m);
        if (!ms || !is_token(ms, METHOD_MAX)) {
            snprintf(err, sizeof err, "request: `method` must be an HTTP method such as POST");
            goto fail;
        }
        size_t i = 0;
        for (; ms[i]; i++) {
            method[i] = (ms[i] >= 'a' && ms[i] <= 'z') ? (char)(ms[i] - 'a' + 'A') : ms[i];
        }
        method[i] = '\0';
    } else {
        snprintf(method, sizeof method, "%s", (a_json || a_form || a_body) ? "POST" : "GET");
    }
    /* timeout */
    const json_t *t = json_object_get(args, "timeout_ms");
    if (t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 ||
            json_integer_value(t) > 24LL * 3600 * 1000) {
            snprintf(err, sizeof err, "request: `timeout_ms` must be an integer 0..86400000");
            goto fail;
        }
        timeout_ms = (long)json_integer_value(t);
    }
    /* headers: user headers, Content-Type, Idempotency-Key, NULL */
    const json_t *hdrs = json_object_get(args, "headers");
    if (hdrs && !json_is_object(hdrs)) {
        snprintf(err, sizeof err, "request: `headers` must be an object of strings");
        goto fail;
    }
    lines = calloc(json_object_size(hdrs) + 3, sizeof *lines);
    if (!lines) {
        goto nomem;
    }
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)hdrs, name, value)
    {
        const char *v = json_string_value(value);
        if (!is_token(name, 256)) {
            snprintf(err, sizeof err, "request: header name `%.64s` is not valid", name);
            goto fail;
        }
        if (!v || strlen(v) != json_string_length(value) || strpbrk(v, "\r\n")) {
            snprintf(err, sizeof err,
                     "request: header `%.64s` must be a string without line breaks", name);
            goto fail;
        }
        if (reserved_header(name)) {
            snprintf(err, sizeof err, "request: header `%.64s` is set by wirehub", name);
            goto fail;
        }
        if (strcasecmp(name, "idempotency-key") == 0) {
            continue; /* always the call's own key, below */
        }
        user_ctype = user_ctype || strcasecmp(name, "content-type") == 0;
        size_t n = strlen(name) + strlen(v) + 3;
        if (!(lines[nlines] = malloc(n))) {
            goto nomem;
        }
        snprintf(lines[nlines++], n, "%s: %s", name, v);
    }
    /* body */
    if (a_json) {
        json_text = json_dumps(a_json, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!json_text) {
            goto nomem;
        }
        body_ptr = json_text;
        body_len = strlen(json_text);
        ctype = "application/json";
    } else if (a_form) {
        if (!json_is_object(a_form)) {
            snprintf(err, sizeof err, "request: `form` must be an object");
            goto fail;
        }
        if (!encode_form(&body, a_form, "request: `form", err, sizeof err)) {
            goto fail;
        }
        if (body.oom) {
            goto nomem;
        }
        body_ptr = body.data ? body.data : "";
        body_len = body.len;
        ctype = "application/x-www-form-urlencoded";
    } else if (a_body) {
        if (!json_is_string(a_body)) {
            snprintf(err, sizeof err, "request: `body` must be a string");
            goto fail;
        }
        body_ptr = json_string_value(a_body);
        body_len = json_string_length(a_body);
        ctype = "text/plain; charset=utf-8";
    }
    if (ctype && !user_ctype) {
        size_t n = strlen(ctype) + 15;
        if (!(lines[nlines] = malloc(n))) {
            goto nomem;
        }
        snprintf(lines[nlines++], n, "Content-Type: %s", ctype);
    }
    const char *key = h->call_key(call);
    if (key && !strpbrk(key, "\r\n")) {
        size_t n = strlen(key) + 18;
        if (!(lines[nlines] = malloc(n))) {
            goto nomem;
        }
        snprintf(lines[nlines++], n, "Idempotency-Key: %s", key);
    }

    request_ctx *ctx = malloc(sizeof *ctx);
    if (!ctx) {
        goto nomem;
    }
    ctx->w = w;
    ctx->call = call;
    wh_http_request r = {
        .struct_size = sizeof r,
        .method = method,
        .url = full_url.data ? full_url.data : json_string_value(url),
        .headers = (const char *const *)lines,
        .body = body_ptr,
        .body_len = body_len,
        .timeout_ms = timeout_ms,
        .max_response = 0,
    };
    int rc = h->http(w->inst, &r, request_done, ctx);
    if (rc != WH_OK) {
        free(ctx);
        snprintf(err, sizeof err, "request: could not start the exchange (%d)", rc);
        h->complete(call, rc == WH_ERR_INVALID ? WH_CALL_FAIL : WH_CALL_RETRY, NULL, 0, err);
    }
    goto done;

nomem:
    h->complete(call, WH_CALL_RETRY, NULL, 0, "request: out of memory");
    goto done;
fail:
    h->complete(call, WH_CALL_FAIL, NULL, 0, err);
done:
    for (size_t i = 0; lines && i < nlines; i++) {
        free(lines[i]);
    }
    free(lines);
    free(json_text);
    free(body.data);
    free(full_url.data);
    return WH_OK;
}

/* ------------------------------------------------------------------------ */
/* Operation `poll`: a JSON endpoint that lists items, for `await` steps.    */

static const wh_option k_poll_args[] = {
    {"url", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "absolute http:// or https:// URL (GET)"},
    {"query", WH_OPT_OBJECT, NULL, 0,
     "query arguments added to the URL, encoded: object of name -> string, number or boolean"},
    {"headers", WH_OPT_OBJECT, NULL, 0, "extra request headers: object of name -> string"},
    {"items", WH_OPT_STRING, "\"items\"", 0, "dotted path of the item list in the response"},
    {"cursor", WH_OPT_STRING, "\"cursor\"", 0, "dotted path of the next cursor in the response"},
    {"cursor_param", WH_OPT_STRING, "\"cursor\"", 0,
     "query parameter that carries the previous cursor"},
    {"timeout_ms", WH_OPT_INT, NULL, 0, "whole-exchange timeout"},
    {NULL, 0, NULL, 0, NULL},
};

typedef struct poll_ctx {
    const webhook *w;
    wh_call *call;
    char *items_path, *cursor_path;
    json_t *prev_cursor;
} poll_ctx;

static void poll_ctx_free(poll_ctx *p)
{
    free(p->items_path);
    free(p->cursor_path);
    json_decref(p->prev_cursor);
    free(p);
}

static void poll_done(void *user, const wh_http_response *r)
{
    poll_ctx *p = user;
    const wh_host *h = p->w->host;
    char err[256];
    if (r->status == 0) {
        snprintf(err, sizeof err, "poll: %s",
                 r->timed_out ? "timed out" : (r->error ? r->error : "no response"));
        h->complete(p->call, WH_CALL_RETRY, NULL, 0, err);
        poll_ctx_free(p);
        return;
    }
    if (r->status < 200 || r->status > 299) {
        snprintf(err, sizeof err, "HTTP %d", r->status);
        int retry = r->status == 408 || r->status == 429 || r->status >= 500;
        long after = 0;
        const char *ra = json_string_value(json_object_get(r->headers, "retry-after"));
        if (retry && ra) {
            after = h->retry_after_ms(p->w->inst, ra);
        }
        h->complete(p->call, retry ? WH_CALL_RETRY : WH_CALL_FAIL, NULL, after > 0 ? after : 0,
                    err);
        poll_ctx_free(p);
        return;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(r->body ? r->body : "", r->body_len, JSON_DECODE_ANY, &jerr);
    const json_t *list = doc ? h->json_path(doc, p->items_path) : NULL;
    if (!json_is_array(list)) {
        snprintf(err, sizeof err, "poll: the response has no list at '%s'", p->items_path);
        h->complete(p->call, WH_CALL_RETRY, NULL, 0, err);
        json_decref(doc);
        poll_ctx_free(p);
        return;
    }
    json_t *items = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it)
    {
        const json_t *id = json_object_get(it, "id");
        if (!json_is_object(it) || !(json_is_string(id) || json_is_integer(id))) {
            continue; /* an item must say who it is to be stored once */
        }
        json_t *copy = json_deep_copy(it);
        if (json_is_integer(id)) {
            char buf[32];
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(id));
            json_object_set_new(copy, "id", json_string(buf));
        }
        json_array_append_new(items, copy);
    }
    const json_t *next = h->json_path(doc, p->cursor_path);
    json_t *result = json_pack("{s:o, s:O}", "items", items, "cursor",
                               next && !json_is_null(next)
                                   ? next
                                   : (p->prev_cursor ? p->prev_cursor : json_null()));
    h->complete(p->call, WH_CALL_OK, result, 0, NULL);
    json_decref(doc);
    poll_ctx_free(p);
}

static int op_poll(void *state, wh_call *call, const json_t *args)
{
    const webhook *w = state;
    const wh_host *h = w->host;
    const char *url = json_string_value(json_object_get(args, "url"));
    if (!url || !valid_url(url)) {
        return h->complete(call, WH_CALL_FAIL, NULL, 0,
                           "poll: `url` must be an absolute http:// or https:// URL");
    }
    const char *items = json_string_value(json_object_get(args, "items"));
    const char *cursor = json_string_value(json_object_get(args, "cursor"));
    const char *param = json_string_value(json_object_get(args, "cursor_param"));
    poll_ctx *p = calloc(1, sizeof *p);
    if (!p) {
        return WH_ERR_NOMEM;
    }
    p->w = w;
    p->call = call;
    p->items_path = strdup(items ? items : "items");
    p->cursor_path = strdup(cursor ? cursor : "cursor");
    const json_t *prev = h->call_cursor(call);
    p->prev_cursor = prev ? json_deep_copy(prev) : NULL;
    /* `query`, then the cursor (which wins over a `query` argument of its name) */
    const json_t *a_query = json_object_get(args, "query");
    json_t *query = json_is_object(a_query) ? json_copy((json_t *)a_query) : json_object();
    if (prev && query && (json_is_string(prev) || json_is_integer(prev))) {
        json_object_set(query, param ? param : "cursor", (json_t *)prev);
    }
    sbuf full = {0};
    char qerr[160] = "";
    if (a_query && !json_is_object(a_query)) {
        snprintf(qerr, sizeof qerr, "poll: `query` must be an object");
    } else if (query) {
        url_with_query(&full, url, query, "poll: `query", qerr, sizeof qerr);
    }
    json_decref(query);
    if (qerr[0]) {
        free(full.data);
        poll_ctx_free(p);
        return h->complete(call, WH_CALL_FAIL, NULL, 0, qerr);
    }
    /* headers: "Name: value" lines, the same checks as `request` */
    const json_t *hdrs = json_object_get(args, "headers");
    size_t n = json_object_size(hdrs);
    char **lines = calloc(n + 2, sizeof *lines);
    size_t k = 0;
    const char *name;
    const json_t *val;
    int bad = !lines || !p->items_path || !p->cursor_path || !full.data || full.oom;
    json_object_foreach((json_t *)hdrs, name, val)
    {
        const char *v = json_string_value(val);
        if (bad || !v || !is_token(name, 256) || strpbrk(v, "\r\n")) {
            bad = 1;
            break;
        }
        size_t len = strlen(name) + strlen(v) + 3;
        lines[k] = malloc(len);
        if (!lines[k]) {
            bad = 1;
            break;
        }
        snprintf(lines[k++], len, "%s: %s", name, v);
    }
    int rc = WH_OK;
    if (bad) {
        h->complete(call, WH_CALL_FAIL, NULL, 0, "poll: bad `headers` (strings, no line breaks)");
        poll_ctx_free(p);
    } else {
        lines[k] = (char *)"Accept: application/json";
        wh_http_request req = {sizeof req, "GET", full.data, (const char *const *)lines, NULL, 0,
                               (long)json_integer_value(json_object_get(args, "timeout_ms")), 0};
        rc = h->http(w->inst, &req, poll_done, p);
        if (rc != WH_OK) {
            poll_ctx_free(p);
            h->complete(call, WH_CALL_RETRY, NULL, 0, "poll: cannot start the request");
            rc = WH_OK;
        }
        lines[k] = NULL;
    }
    for (size_t i = 0; lines && i < k; i++) {
        free(lines[i]);
    }
    free(lines);
    free(full.data);
    return rc;
}

static const wh_operation k_operations[] = {
    {"request", "Send one HTTP request; result {status, headers, body}", k_request_args, op_request,
     0},
    {"poll", "GET a JSON list of items (each with an id); result {items, cursor}", k_poll_args,
     op_poll, WH_OP_POLL},
    {NULL, NULL, NULL, NULL, 0},
};

static const wh_connector k_webhook = {
    WH_CONNECTOR_HEADER("webhook", "1.0.0",
                        "Generic webhooks in (optionally HMAC-signed), HTTP requests out"),
    .options = k_options,
    .init = webhook_init,
    .destroy = webhook_destroy,
    .webhook = webhook_webhook,
    .respond = NULL,
    .operations = k_operations,
};

WH_CONNECTOR_EXPORT(k_webhook)
