/*
 * fakehost.c — the fake wh_host of fakehost.h: host services that record what a
 * connector does (events, refusals, answers, waits, replies, completions,
 * outgoing HTTP, timers, de-duplication) and check it against the SDK's
 * contract, plus the loader and config helpers a connector test starts with.
 *
 * Owns: fh (knobs and records), the exchange and timer lists, the loaded library.
 * Must not: use the test kit (testlib) — the fuzz targets compile this file —
 * sleep, or reach the network. The helpers a real hub offers (HMAC, constant-
 * time compare, form decoding, JSON paths, Retry-After) are the hub's own.
 */
#include "fakehost.h"

#include "envelope.h"
#include "match.h"
#include "verify.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

fh_state fh;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static void *g_library;

static fh_exchange **g_ex; /* every exchange since the last reset, in order */
static int g_nex, g_ex_cap;
static fh_exchange g_no_exchange = {.url = ""};
static json_t *g_seen; /* dedupe(): every id since the start (the hub remembers for a day) */

#define MAX_TIMERS 64
static fh_timer g_timers[MAX_TIMERS];
static int g_ntimers;
static const fh_timer g_no_timer;

/* ------------------------------------------------------------------------ */
/* Failures                                                                  */

static void fail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(int line, const char *fmt, ...)
{
    pthread_mutex_lock(&g_lock);
    fprintf(stderr, "%s:%d: fake host: ", __FILE__, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fh.failures++;
    pthread_mutex_unlock(&g_lock);
    if (fh.abort_on_failure) {
        abort();
    }
}

/* A contract check: a failure (with the condition and a message) when cond is false. */
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fail(__LINE__, "broken: " #cond ": " __VA_ARGS__);                                     \
        }                                                                                          \
    } while (0)

static bool utf8_ok(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    json_decref(j);
    return j != NULL;
}

/* A NUL-terminated copy of len bytes (body may be NULL when len is 0). */
static char *copy_bytes(const void *body, size_t len)
{
    char *out = malloc(len + 1);
    if (out) {
        if (len) {
            memcpy(out, body, len);
        }
        out[len] = '\0';
    }
    return out;
}

/* ------------------------------------------------------------------------ */
/* Instance services                                                         */

static void f_log(const wh_instance *inst, int level, const char *fmt, ...)
{
    pthread_mutex_lock(&g_lock);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fh.log, sizeof fh.log, fmt, ap); /* formats every argument: catches bad varargs */
    va_end(ap);
    fh.warns += level == WH_LOG_WARN;
    fh.errors += level == WH_LOG_ERROR;
    if (fh.keep_log) {
        wh_buf_printf(&fh.log_all, "%s\n", fh.log);
    }
    if (fh.verbose) {
        fprintf(stderr, "log %d %s: %s\n", level, inst ? inst->name : "?", fh.log);
    }
    pthread_mutex_unlock(&g_lock);
}

static const char *f_instance_name(const wh_instance *inst)
{
    return inst->name;
}

static int64_t f_now_ms(const wh_instance *inst)
{
    return fh.now_ms;
}

static int f_publish(wh_instance *inst, const char *kind, json_t *data)
{
    if (fh.publish_rc) {
        return fh.publish_rc;
    }
    EXPECT(wh_name_ok(kind), "publish with kind '%s'", kind ? kind : "(null)");
    if (!fh.published) {
        fh.published = json_array();
    }
    json_array_append_new(fh.published, json_pack("{s:s, s:o}", "kind", kind ? kind : "", "data",
                                                  data ? data : json_null()));
    return WH_OK;
}

static long f_retry_after_ms(const wh_instance *inst, const char *value)
{
    return wh_retry_after_parse(value, fh.now_ms);
}

/* ------------------------------------------------------------------------ */
/* The inbound request                                                       */

static const char *f_req_method(const wh_request *r)
{
    return r->method ? r->method : "POST";
}

static const char *f_req_path(const wh_request *r)
{
    return r->path ? r->path : "";
}

static const char *f_req_header(const wh_request *r, const char *name)
{
    char lower[256];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof lower; i++) {
        lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    }
    lower[i] = '\0';
    return json_string_value(json_object_get(r->headers, lower));
}

static const char *f_req_query(const wh_request *r, const char *name)
{
    return json_string_value(json_object_get(r->queries, name));
}

static const char *f_req_body(const wh_request *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

static const char *f_req_content_type(const wh_request *r)
{
    return r->ctype;
}

static const json_t *f_req_headers(const wh_request *r)
{
    return r->headers;
}

static const char *f_req_remote(const wh_request *r)
{
    return r->remote ? r->remote : "127.0.0.1";
}

static const json_t *f_req_queries(const wh_request *r)
{
    return r->queries;
}

/* ------------------------------------------------------------------------ */
/* What webhook() answers                                                    */

static int f_emit(wh_webhook *wh, const char *kind, json_t *data)
{
    if (fh.emit_rc) {
        return fh.emit_rc;
    }
    EXPECT(wh->rejects == 0, "emit after reject");
    EXPECT(wh_name_ok(kind), "emit with kind '%s'", kind ? kind : "(null)");
    char *text = json_dumps(data ? data : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
    EXPECT(text != NULL, "emitted data does not encode as JSON (it is journaled)");
    if (fh.verbose) {
        fprintf(stderr, "emit %s: %.300s\n", kind ? kind : "(null)", text ? text : "?");
    }
    free(text);
    wh->emits++;
    snprintf(wh->kind, sizeof wh->kind, "%s", kind ? kind : "");
    if (fh.counts_only) {
        json_decref(data);
        return WH_OK;
    }
    json_decref(wh->data);
    wh->data = data;
    return WH_OK;
}

static int f_reject(wh_webhook *wh, int status, const char *error, const char *detail)
{
    EXPECT(wh->emits == 0, "reject after emit");
    EXPECT(status >= 400 && status <= 599, "reject with status %d", status);
    EXPECT(error && *error && utf8_ok(error, strlen(error)), "reject without an error code");
    /* a detail may quote input that is not UTF-8 (a JSON parser's error text does): the
       gateway writes such bytes as '?' */
    EXPECT(!detail || strlen(detail) < 4096, "a reject detail of %zu bytes", strlen(detail));
    if (fh.verbose) {
        fprintf(stderr, "reject %d %s: %s\n", status, error ? error : "", detail ? detail : "");
    }
    wh->rejects++;
    wh->status = status;
    snprintf(wh->error, sizeof wh->error, "%s", error ? error : "");
    snprintf(wh->detail, sizeof wh->detail, "%s", detail ? detail : "");
    return WH_OK;
}

static int f_answer(wh_webhook *wh, int status, const char *ctype, const char *body, size_t len)
{
    EXPECT(status >= 100 && status <= 599, "answer with status %d", status);
    EXPECT(body || len == 0, "answer with no body but length %zu", len);
    if (fh.verbose) {
        fprintf(stderr, "answer %d %s: %.*s\n", status, ctype ? ctype : "",
                body ? (int)(len < 300 ? len : 300) : 0, body ? body : "");
    }
    wh->answers++;
    wh->status = status;
    snprintf(wh->answer_ctype, sizeof wh->answer_ctype, "%s", ctype ? ctype : "");
    if (fh.counts_only) {
        return WH_OK;
    }
    free(wh->answer_body);
    wh->answer_body = copy_bytes(body, body ? len : 0);
    wh->answer_len = body ? len : 0;
    return WH_OK;
}

static int f_wait(wh_webhook *wh, long deadline_ms, const json_t *fallback)
{
    EXPECT(deadline_ms > 0, "wait with deadline %ld", deadline_ms);
    wh->waits++;
    wh->deadline_ms = deadline_ms;
    if (fh.counts_only) {
        return WH_OK;
    }
    json_decref(wh->fallback);
    wh->fallback = fallback ? json_deep_copy(fallback) : NULL;
    return WH_OK;
}

static void f_webhook_done(wh_webhook *wh)
{
    wh->dones++;
}

static int f_dedupe(wh_webhook *wh, const char *id)
{
    EXPECT(id && *id, "dedupe without an id");
    EXPECT(wh->emits == 0, "dedupe after emit");
    wh->dedupes++;
    snprintf(wh->dedupe_id, sizeof wh->dedupe_id, "%s", id ? id : "");
    if (wh->duplicate) {
        return 1;
    }
    if (fh.dedupe_off || !id) {
        return 0;
    }
    pthread_mutex_lock(&g_lock);
    if (!g_seen) {
        g_seen = json_object();
    }
    int dup = json_object_get(g_seen, id) != NULL;
    if (!dup) {
        json_object_set_new(g_seen, id, json_true());
    }
    pthread_mutex_unlock(&g_lock);
    wh->duplicate = dup;
    return dup;
}

/* ------------------------------------------------------------------------ */
/* What respond() answers                                                    */

static int f_reply(wh_reply *out, int status, const char *ctype, const char *body, size_t len)
{
    EXPECT(status >= 100 && status <= 599, "reply with status %d", status);
    EXPECT(body || len == 0, "reply with no body but length %zu", len);
    out->replies++;
    out->status = status;
    snprintf(out->ctype, sizeof out->ctype, "%s", ctype ? ctype : "");
    if (fh.counts_only) {
        return WH_OK;
    }
    free(out->body);
    out->body = copy_bytes(body, body ? len : 0);
    out->len = body ? len : 0;
    return WH_OK;
}

static int f_reply_header(wh_reply *out, const char *name, const char *value)
{
    EXPECT(name && *name && value && !strpbrk(value, "\r\n") && !strpbrk(name, ":\r\n "),
           "a bad reply header");
    if (fh.counts_only) {
        return WH_OK;
    }
    if (!out->headers) {
        out->headers = json_object();
    }
    json_object_set_new(out->headers, name ? name : "", json_string(value ? value : ""));
    return WH_OK;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */

static const char *f_call_key(const wh_call *call)
{
    return call->key ? call->key : "call-key";
}

static const json_t *f_call_cursor(const wh_call *call)
{
    return call->cursor;
}

static int f_call_attempt(const wh_call *call)
{
    return call->attempt ? call->attempt : 1;
}

static int f_complete(wh_call *call, wh_outcome outcome, json_t *result, long retry_after_ms,
                      const char *error)
{
    EXPECT(call->completes == 0, "complete() called twice for one call (key %s)",
           call->key ? call->key : "call-key");
    EXPECT(outcome == WH_CALL_OK || outcome == WH_CALL_RETRY || outcome == WH_CALL_FAIL,
           "complete() with outcome %d", (int)outcome);
    call->completes++;
    call->outcome = outcome;
    json_decref(call->result);
    call->result = result;
    call->retry_after = retry_after_ms;
    snprintf(call->error, sizeof call->error, "%s", error ? error : "");
    return WH_OK;
}

static int f_http(wh_instance *inst, const wh_http_request *req, wh_http_done done, void *user)
{
    if (fh.http_rc) {
        return fh.http_rc;
    }
    EXPECT(req && req->url && done, "http() without a request, a url or a callback");
    if (!req || !req->url || !done) {
        return WH_ERR_INVALID;
    }
    if (g_nex == g_ex_cap) {
        int cap = g_ex_cap ? 2 * g_ex_cap : 32;
        fh_exchange **grown = realloc(g_ex, (size_t)cap * sizeof *grown);
        if (!grown) {
            return WH_ERR_NOMEM;
        }
        g_ex = grown;
        g_ex_cap = cap;
    }
    fh_exchange *e = calloc(1, sizeof *e);
    if (!e) {
        return WH_ERR_NOMEM;
    }
    snprintf(e->method, sizeof e->method, "%s", req->method ? req->method : "GET");
    e->url = strdup(req->url);
    e->headers = json_array();
    for (const char *const *h = req->headers; h && *h; h++) {
        json_array_append_new(e->headers, json_string_nocheck(*h));
    }
    e->body = req->body ? copy_bytes(req->body, req->body_len) : NULL;
    e->body_len = req->body ? req->body_len : 0;
    e->timeout_ms = req->timeout_ms;
    e->max_response = req->max_response;
    e->done = done;
    e->user = user;
    g_ex[g_nex++] = e;
    return WH_OK;
}

static int f_defer(wh_instance *inst, long delay_ms, void (*fn)(void *user), void *user)
{
    if (fh.defer_rc) {
        return fh.defer_rc;
    }
    EXPECT(fn != NULL && delay_ms >= 0, "defer() without a function or with delay %ld", delay_ms);
    if (g_ntimers >= MAX_TIMERS) {
        return WH_ERR_BUSY;
    }
    g_timers[g_ntimers++] = (fh_timer){fh.now_ms + delay_ms, fn, user, delay_ms};
    return WH_OK;
}

const wh_host fh_host = {
    .struct_size = sizeof(wh_host),
    .abi_minor = WH_ABI_MINOR,
    .log = f_log,
    .instance_name = f_instance_name,
    .now_ms = f_now_ms,
    .publish = f_publish,
    .req_method = f_req_method,
    .req_path = f_req_path,
    .req_header = f_req_header,
    .req_query = f_req_query,
    .req_body = f_req_body,
    .req_content_type = f_req_content_type,
    .req_headers = f_req_headers,
    .req_remote = f_req_remote,
    .emit = f_emit,
    .reject = f_reject,
    .answer = f_answer,
    .wait = f_wait,
    .webhook_done = f_webhook_done,
    .reply = f_reply,
    .reply_header = f_reply_header,
    .call_key = f_call_key,
    .call_cursor = f_call_cursor,
    .call_attempt = f_call_attempt,
    .complete = f_complete,
    .http = f_http,
    .hmac = wh_hmac,
    .ct_equal = wh_ct_equal,
    .form_decode = wh_form_decode,
    .json_path = wh_json_path,
    .retry_after_ms = f_retry_after_ms,
    .req_queries = f_req_queries,
    .defer = f_defer,
    .dedupe = f_dedupe,
};

/* ------------------------------------------------------------------------ */
/* Connectors, instances, clean-up                                           */

const wh_connector *fh_load(const char *path)
{
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "fake host: dlopen: %s\n", dlerror());
        return NULL;
    }
    const wh_connector *(*entry)(void) =
        (const wh_connector *(*)(void))dlsym(so, WH_CONNECTOR_ENTRY_NAME);
    if (!entry) {
        fprintf(stderr, "fake host: %s has no %s\n", path, WH_CONNECTOR_ENTRY_NAME);
        dlclose(so);
        return NULL;
    }
    if (g_library) {
        dlclose(g_library);
    }
    g_library = so;
    return entry();
}

json_t *fh_config(const wh_connector *desc, const char *config_json)
{
    json_error_t err;
    json_t *cfg = json_loads(config_json, 0, &err);
    if (!json_is_object(cfg)) {
        fail(__LINE__, "config is not a JSON object: %s (%s)", config_json,
             cfg ? "not an object" : err.text);
        json_decref(cfg);
        return NULL;
    }
    for (const wh_option *o = desc->options; o && o->name; o++) {
        if (o->def && !json_object_get(cfg, o->name)) {
            json_t *def = json_loads(o->def, JSON_DECODE_ANY, NULL);
            EXPECT(def != NULL, "option %s: the default %s is not JSON", o->name, o->def);
            json_object_set_new(cfg, o->name, def);
        }
    }
    return cfg;
}

int fh_init(const wh_connector *desc, wh_instance *inst, const char *config_json, void **state)
{
    *state = NULL;
    json_t *cfg = fh_config(desc, config_json);
    if (!cfg) {
        return WH_ERR_INVALID;
    }
    int rc = desc->init(&fh_host, inst, cfg, state);
    json_decref(cfg);
    return rc;
}

int fh_init_rc(const wh_connector *desc, wh_instance *inst, const char *config_json)
{
    void *state = NULL;
    int rc = fh_init(desc, inst, config_json, &state);
    if (rc == WH_OK) {
        desc->destroy(state);
    }
    return rc;
}

void fh_check_webhook(const wh_webhook *wh, int rc)
{
    EXPECT(rc == WH_OK || rc == WH_PENDING, "webhook() returned %d (the caller gets a 500)", rc);
    EXPECT(wh->rejects <= 1, "%d rejects", wh->rejects);
    EXPECT(!(wh->rejects && wh->emits), "rejected and emitted");
    EXPECT(wh->waits <= 1 && !(wh->waits && wh->rejects), "waited %d times", wh->waits);
    EXPECT(wh->dedupes <= 1, "dedupe called %d times", wh->dedupes);
}

void fh_webhook_clear(wh_webhook *wh)
{
    if (!wh) {
        return;
    }
    json_decref(wh->data);
    json_decref(wh->fallback);
    free(wh->answer_body);
    memset(wh, 0, sizeof *wh);
}

void fh_reply_clear(wh_reply *out)
{
    if (!out) {
        return;
    }
    free(out->body);
    json_decref(out->headers);
    memset(out, 0, sizeof *out);
}

void fh_call_clear(wh_call *call)
{
    if (!call) {
        return;
    }
    json_decref(call->result);
    json_decref(call->cursor);
    memset(call, 0, sizeof *call);
}

int fh_done(void)
{
    fh_http_reset();
    free(g_ex);
    g_ex = NULL;
    g_ex_cap = 0;
    wh_buf_free(&fh.log_all);
    json_decref(fh.published);
    fh.published = NULL;
    json_decref(g_seen);
    g_seen = NULL;
    if (g_library) {
        dlclose(g_library);
        g_library = NULL;
    }
    return fh.failures;
}

/* ------------------------------------------------------------------------ */
/* Outgoing HTTP                                                             */

int fh_http_count(void)
{
    return g_nex;
}

fh_exchange *fh_http_at(int i)
{
    if (i < 0 || i >= g_nex) {
        fail(__LINE__, "no exchange %d (%d started)", i, g_nex);
        return &g_no_exchange;
    }
    return g_ex[i];
}

int fh_http_pending_count(void)
{
    int n = 0;
    for (int i = 0; i < g_nex; i++) {
        n += g_ex[i]->done != NULL;
    }
    return n;
}

fh_exchange *fh_http_pending(int i)
{
    for (int k = 0, n = 0; k < g_nex; k++) {
        if (g_ex[k]->done && n++ == i) {
            return g_ex[k];
        }
    }
    fail(__LINE__, "no pending exchange %d (%d pending)", i, fh_http_pending_count());
    return &g_no_exchange;
}

void fh_http_respond(fh_exchange *ex, const wh_http_response *response)
{
    if (!ex || !ex->done) {
        fail(__LINE__, "answering an exchange that is %s", ex ? "answered already" : "NULL");
        return;
    }
    wh_http_done done = ex->done;
    ex->done = NULL; /* the callback may start more exchanges */
    done(ex->user, response);
}

void fh_http_answer(fh_exchange *ex, int status, const char *body, const char *headers_json)
{
    json_t *headers = headers_json ? json_loads(headers_json, 0, NULL) : json_object();
    if (!json_is_object(headers)) {
        fail(__LINE__, "response headers are not a JSON object: %s", headers_json);
        json_decref(headers);
        headers = json_object();
    }
    wh_http_response r = {
        status, status ? NULL : "Connection refused", 0, body, body ? strlen(body) : 0, headers, 0};
    fh_http_respond(ex, &r);
    json_decref(headers);
}

bool fh_http_has_header(const fh_exchange *ex, const char *line)
{
    const char *colon = strchr(line, ':');
    size_t name_len = colon ? (size_t)(colon - line) : strlen(line);
    size_t i;
    json_t *v;
    json_array_foreach(ex->headers, i, v)
    {
        const char *sent = json_string_value(v);
        if (strncasecmp(sent, line, name_len) == 0 &&
            strcmp(sent + name_len, line + name_len) == 0) {
            return true;
        }
    }
    return false;
}

void fh_http_reset(void)
{
    for (int i = 0; i < g_nex; i++) {
        fh_exchange *e = g_ex[i];
        if (e->done) {
            fail(__LINE__, "exchange %d (%s %s) was never answered", i, e->method, e->url);
        }
        free(e->url);
        json_decref(e->headers);
        free(e->body);
        free(e);
    }
    g_nex = 0;
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

int fh_timer_count(void)
{
    return g_ntimers;
}

const fh_timer *fh_timer_at(int i)
{
    if (i < 0 || i >= g_ntimers) {
        fail(__LINE__, "no timer %d (%d waiting)", i, g_ntimers);
        return &g_no_timer;
    }
    return &g_timers[i];
}

void fh_advance(int64_t ms)
{
    fh.now_ms += ms;
    for (;;) {
        int best = -1;
        for (int i = 0; i < g_ntimers; i++) {
            if (g_timers[i].due <= fh.now_ms &&
                (best < 0 || g_timers[i].due < g_timers[best].due)) {
                best = i;
            }
        }
        if (best < 0) {
            return;
        }
        fh_timer t = g_timers[best];
        g_timers[best] = g_timers[--g_ntimers];
        t.fn(t.user);
    }
}

void fh_fire_timers(void)
{
    while (g_ntimers > 0) {
        fh_timer t = g_timers[0];
        g_timers[0] = g_timers[--g_ntimers];
        t.fn(t.user);
    }
}
