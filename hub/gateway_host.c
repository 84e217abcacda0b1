/*
 * gateway_host.c — what a connector calls on a request, through the host
 * table: the wh_req_* accessors, the decisions of webhook() (emit, reject,
 * answer, wait, dedupe, done) and, for respond(), wh_reply_*.
 *
 * These only read the request and record the connector's decisions in it;
 * acting on them (journal, publish, suspend, answer) is gateway.c's, which
 * wh_wh_done() hands a WH_PENDING request back to. They run on the thread
 * that holds the request, and take gw->lock only for the gateway's shared
 * tables (pending count, dedupe cache) and for that hand-back.
 */
#include "gateway_int.h"
#include "envelope.h"
#include "sqlbatch.h"
#include "store.h"
#include "util.h"

#include <ctype.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* SDK accessors                                                        */

const char *wh_req_method(const wh_request *r)
{
    return r->method;
}

const char *wh_req_path(const wh_request *r)
{
    return r->path ? r->path : "";
}

const char *wh_req_header(const wh_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *wh_req_query(const wh_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *wh_req_body(const wh_request *r, size_t *len)
{
    if (len) {
        *len = r->body.len;
    }
    return r->body.data ? r->body.data : "";
}

const char *wh_req_content_type(const wh_request *r)
{
    return r->ctype;
}

/* Set name → value in obj. A header or query argument with a stray byte (Latin-1,
   %FF) is kept with U+FFFD rather than left out; the name goes in as it is unless
   jansson refuses it (not UTF-8), when it takes the same path. */
static void put_lossy(json_t *obj, const char *name, const char *value)
{
    json_t *v = value ? wh_json_string_lossy(value, strlen(value)) : json_string("");
    if (v && json_object_set(obj, name, v) != 0) {
        json_t *k = wh_json_string_lossy(name, strlen(name));
        if (k) {
            json_object_set(obj, json_string_value(k), v);
        }
        json_decref(k);
    }
    json_decref(v);
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    json_t *obj = cls;
    char name[128];
    size_t i = 0;
    for (; key[i] && i + 1 < sizeof name; i++) {
        name[i] = (char)tolower((unsigned char)key[i]);
    }
    name[i] = '\0';
    const char *had = json_string_value(json_object_get(obj, name));
    if (had && value) {
        /* a repeated field is one list (RFC 9110, 5.3): "a, b" */
        size_t n = strlen(had) + strlen(value) + 3;
        char *both = malloc(n);
        if (both) {
            snprintf(both, n, "%s, %s", had, value);
            put_lossy(obj, name, both);
            free(both);
        }
        return MHD_YES;
    }
    put_lossy(obj, name, value);
    return MHD_YES;
}

const json_t *wh_req_headers(const wh_request *r)
{
    wh_request *m = (wh_request *)r; /* filled once, on first use, by the one thread using it */
    if (!m->headers) {
        m->headers = json_object();
        if (m->headers) {
            MHD_get_connection_values(m->conn, MHD_HEADER_KIND, collect_header, m->headers);
        }
    }
    return m->headers;
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    put_lossy(cls, key, value);
    return MHD_YES;
}

const json_t *wh_req_queries(const wh_request *r)
{
    wh_request *m = (wh_request *)r; /* filled once, on first use, like the headers */
    if (!m->queries) {
        m->queries = json_object();
        if (m->queries) {
            MHD_get_connection_values(m->conn, MHD_GET_ARGUMENT_KIND, collect_query, m->queries);
        }
    }
    return m->queries;
}

const char *wh_req_remote(const wh_request *r)
{
    return r->remote;
}

int wh_wh_emit(wh_webhook *wh, const char *kind, json_t *data)
{
    if (!wh_name_ok(kind)) {
        return WH_ERR_INVALID;
    }
    /* a NUL inside a string, or nesting past what jansson reads back once the event is
     * inside its envelope, would make the journaled event unreadable: never lose it */
    if (wh_json_readable(data) != 0) {
        json_decref(data); /* taken: the request is refused as a whole */
        wh_wh_reject(wh, 400, "too_deep", "the event would nest more than 2000 levels");
        return WH_OK;
    }
    json_t *ev = json_pack("{s:s, s:O}", "kind", kind, "data", data ? data : json_null());
    if (!ev || json_array_append_new(wh->events, ev) != 0) {
        return WH_ERR_NOMEM;
    }
    json_decref(data);
    return WH_OK;
}

int wh_wh_reject(wh_webhook *wh, int status, const char *error, const char *detail)
{
    if (status < 400 || status > 599) {
        return WH_ERR_INVALID;
    }
    free(wh->reject_error);
    free(wh->reject_detail);
    wh->reject_status = status;
    wh->reject_error = strdup(error ? error : "error");
    wh->reject_detail = strdup(detail ? detail : "");
    return wh->reject_error && wh->reject_detail ? WH_OK : WH_ERR_NOMEM;
}

int wh_wh_answer(wh_webhook *wh, int status, const char *ctype, const char *body, size_t len)
{
    if (status < 100 || status > 599) {
        return WH_ERR_INVALID;
    }
    wh->answered = 1;
    wh->answer_status = status;
    snprintf(wh->answer_ctype, sizeof wh->answer_ctype, "%s", ctype ? ctype : "text/plain");
    wh_buf_free(&wh->answer_body);
    return wh_buf_append(&wh->answer_body, body ? body : "", body ? len : 0);
}

int wh_wh_wait(wh_webhook *wh, long deadline_ms, const json_t *fallback)
{
    wh_gateway *gw = wh->req->gw;
    /* the place is taken now, not when the caller starts waiting after its journal
       commit: callers arriving together must not all pass the check */
    pthread_mutex_lock(&gw->lock);
    int full = !wh->reserved && gw->npending + gw->nreserved >= gw->opts.max_pending;
    if (!full && !wh->reserved) {
        gw->nreserved++;
        wh->reserved = 1;
    }
    pthread_mutex_unlock(&gw->lock);
    if (full) {
        return wh_wh_reject(wh, 429, "too_many_waiting",
                            "too many requests are waiting for answers; retry shortly");
    }
    json_decref(wh->fallback);
    wh->fallback = fallback ? json_deep_copy(fallback) : json_object();
    wh->wait = 1;
    wh->deadline_ms = deadline_ms;
    return wh->fallback ? WH_OK : WH_ERR_NOMEM;
}

typedef struct seen_q {
    const char *source, *id;
    json_t *rows;
} seen_q;

static int read_seen(sqlite3 *db, void *ud)
{
    seen_q *q = ud;
    return wh_sql_query(db, "SELECT answer FROM seen WHERE source = ?1 AND id = ?2",
                        json_pack("[s, s]", q->source, q->id), &q->rows);
}

/* A repeat is answered as its first delivery was (`answer`, from the cache or
   the state file). */
static void answer_duplicate(struct wh_webhook *wh, const json_t *answer)
{
    wh->duplicate = 1;
    if (json_is_object(answer)) {
        wh_wh_answer(wh, (int)json_integer_value(json_object_get(answer, "status")),
                     json_string_value(json_object_get(answer, "ctype")),
                     json_string_value(json_object_get(answer, "body")),
                     json_string_length(json_object_get(answer, "body")));
    } else {
        static const char no_answer[] = "{\"ok\":true,\"duplicate\":true}";
        wh_wh_answer(wh, 200, CTYPE_JSON, no_answer, sizeof no_answer - 1);
    }
}

/* A repeat found in the cache: answered now, or (first delivery still in
   progress) made to wait for that answer. Takes key's text. Caller holds gw->lock. */
static void repeat_of(struct wh_webhook *wh, const json_t *cached, wh_buf *key)
{
    if (json_is_object(cached)) {
        answer_duplicate(wh, cached);
        wh_buf_free(key);
        return;
    }
    wh->duplicate = 1;
    wh->req->dup_of = key->data;
    key->data = NULL;
    wh_buf_free(key);
}

int wh_wh_dedupe(wh_webhook *wh, const char *id)
{
    wh_request *r = wh->req;
    wh_gateway *gw = r->gw;
    if (!id || !*id || r->dedupe_key) {
        return WH_ERR_INVALID;
    }
    wh_buf key = {0};
    wh_buf_printf(&key, "%s\n%s", r->inst->name, id);
    if (!key.data) {
        return WH_ERR_NOMEM;
    }
    pthread_mutex_lock(&gw->lock);
    json_t *cached = json_object_get(gw->seen, key.data);
    if (cached && !json_is_false(cached)) {
        repeat_of(wh, cached, &key);
        pthread_mutex_unlock(&gw->lock);
        return 1;
    }
    pthread_mutex_unlock(&gw->lock);
    /* not in memory: the state file remembers across restarts */
    seen_q q = {r->inst->name, id, NULL};
    if (gw->store && wh_store_read(gw->store, read_seen, &q) == WH_OK &&
        json_array_size(q.rows) > 0) {
        json_t *answer = json_loads(
            json_string_value(json_object_get(json_array_get(q.rows, 0), "answer")), 0, NULL);
        answer_duplicate(wh, answer);
        json_decref(answer);
        json_decref(q.rows);
        wh_buf_free(&key);
        return 1;
    }
    json_decref(q.rows);
    pthread_mutex_lock(&gw->lock);
    cached = json_object_get(gw->seen, key.data);
    if (cached && !json_is_false(cached)) {
        /* the same id arrived on another thread while we read the state file */
        repeat_of(wh, cached, &key);
        pthread_mutex_unlock(&gw->lock);
        return 1;
    }
    wh_gw_seen_remember(gw, key.data, NULL); /* in progress */
    pthread_mutex_unlock(&gw->lock);
    r->dedupe_key = key.data;
    r->dedupe_id = strdup(id);
    return r->dedupe_id ? 0 : WH_ERR_NOMEM;
}

void wh_wh_done(wh_webhook *wh)
{
    wh_request *r = wh->req;
    wh_gateway *gw = r->gw;
    pthread_mutex_lock(&gw->lock);
    if (!r->suspended) {
        r->done_early = 1; /* dispatch() has not suspended yet; it continues itself */
        pthread_mutex_unlock(&gw->lock);
        return;
    }
    atomic_fetch_sub(&gw->async_webhooks, 1);
    wh_gw_after_webhook(r);
    if (r->state == ST_READY) {
        wh_gw_resume_ready(r);
    }
    /* ST_JOURNAL, ST_WAITING: stays suspended until stored, answered or the deadline */
    pthread_mutex_unlock(&gw->lock);
}

int wh_reply_set(wh_reply *out, int status, const char *ctype, const char *body, size_t len)
{
    if (status < 100 || status > 599) {
        return WH_ERR_INVALID;
    }
    wh_gw_reply_set(out, status, ctype, body, len);
    return WH_OK;
}

int wh_reply_header(wh_reply *out, const char *name, const char *value)
{
    if (!name || !value || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) {
        return WH_ERR_INVALID;
    }
    if (!out->headers) {
        out->headers = json_array();
    }
    return json_array_append_new(out->headers, json_pack("[s,s]", name, value)) == 0
               ? WH_OK
               : WH_ERR_NOMEM;
}
