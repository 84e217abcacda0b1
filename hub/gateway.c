/*
 * gateway.c — owns the libmicrohttpd daemon, the routing of each request,
 * the life of the request objects behind the SDK's opaque wh_request/
 * wh_webhook/wh_reply handles (journal, publish, suspend/resume, the table of
 * requests held for the engine's answer, repeats of a delivery) and the
 * answer thread.
 *
 * It publishes events on the bus and hears answers on it; it never calls the
 * engine or delivery. Connector callbacks run on MHD's threads (webhook) and
 * on the gateway's answer thread (respond). Slow work is never done here: a
 * connector that needs the network returns WH_PENDING and finishes later.
 *
 * Its neighbours: gateway_conn.c (total deadlines per connection),
 * gateway_replies.c (the replies API and its long polls), gateway_host.c
 * (what a connector calls on a request). The structs and the lock rule are
 * in gateway_int.h.
 */
#include "gateway_int.h"
#include "envelope.h"
#include "log.h"
#include "sqlbatch.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <zmq.h>

#define LATE_KEEP_MS (30 * 60 * 1000) /* Slack's response_url lives 30 minutes */
#define LATE_MAX 10000

/* ------------------------------------------------------------------ */
/* replies                                                              */

static void reply_reset(struct wh_reply *r)
{
    wh_buf_free(&r->body);
    json_decref(r->headers);
    r->headers = NULL;
    r->status = 0;
    r->ctype[0] = '\0';
}

void wh_gw_reply_set(struct wh_reply *r, int status, const char *ctype, const char *body,
                     size_t len)
{
    wh_buf_free(&r->body);
    r->status = status;
    snprintf(r->ctype, sizeof r->ctype, "%s", ctype ? ctype : CTYPE_JSON);
    wh_buf_append(&r->body, body ? body : "", body ? len : 0);
}

/* Bytes >= 0x80 become '?', in place. */
static void ascii_only(char *s)
{
    for (; s && *s; s++) {
        if ((unsigned char)*s >= 0x80) {
            *s = '?';
        }
    }
}

void wh_gw_reply_error(struct wh_reply *r, int status, const char *error, const char *detail)
{
    json_t *j = json_pack("{s:s, s:s}", "error", error ? error : "error", "detail",
                          detail ? detail : "");
    if (!j) {
        /* not UTF-8: a connector may quote what it could not parse (a JSON parser's error
           text does); say it with '?' rather than lose the error (found by fuzz_alexa) */
        char *e = strdup(error ? error : "error"), *d = strdup(detail ? detail : "");
        ascii_only(e);
        ascii_only(d);
        j = e && d ? json_pack("{s:s, s:s}", "error", e, "detail", d) : NULL;
        free(e);
        free(d);
    }
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    wh_gw_reply_set(r, status, CTYPE_JSON, text ? text : "{\"error\":\"internal\"}",
                    text ? strlen(text) : 20);
    free(text);
    json_decref(j);
}

enum MHD_Result wh_gw_queue_reply(struct MHD_Connection *conn, const struct wh_reply *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->body.len, r->body.data ? r->body.data : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype[0] ? r->ctype : CTYPE_JSON);
    size_t i;
    json_t *h;
    json_array_foreach(r->headers, i, h)
    {
        MHD_add_response_header(resp, json_string_value(json_array_get(h, 0)),
                                json_string_value(json_array_get(h, 1)));
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)(r->status ? r->status : 500), resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result wh_gw_queue_error(struct MHD_Connection *conn, int status, const char *error,
                                  const char *detail, const char *allow)
{
    struct wh_reply r = {0};
    wh_gw_reply_error(&r, status, error, detail);
    if (allow) {
        r.headers = json_pack("[[s,s]]", "Allow", allow);
    }
    enum MHD_Result ret = wh_gw_queue_reply(conn, &r);
    reply_reset(&r);
    return ret;
}
/* ------------------------------------------------------------------ */
/* request life                                                        */

static void request_free(wh_request *r)
{
    if (!r) {
        return;
    }
    free(r->path);
    wh_buf_free(&r->body);
    json_decref(r->headers);
    json_decref(r->queries);
    json_decref(r->wh.events);
    free(r->wh.reject_error);
    free(r->wh.reject_detail);
    wh_buf_free(&r->wh.answer_body);
    json_decref(r->wh.fallback);
    reply_reset(&r->reply);
    json_decref(r->event);
    json_decref(r->outgoing);
    json_decref(r->journal);
    free(r->ids);
    free(r->dedupe_key);
    free(r->dedupe_id);
    free(r->dup_of);
    free(r->poll_key);
    free(r->poll_since);
    free(r);
}

static void release_repeats(wh_gateway *gw, const char *key, const struct wh_reply *answer);

/* Give back the place wait() took among max_waiting. Caller holds gw->lock. */
static void unreserve(wh_gateway *gw, wh_request *r)
{
    if (r->wh.reserved) {
        r->wh.reserved = 0;
        gw->nreserved--;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    wh_gateway *gw = cls;
    wh_request *r = *con_cls;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        /* a kept-alive connection has `timeout` to send its whole next request */
        wh_gw_set_phase(gw, conn, PH_WAITING_HEADERS,
                        wh_mono_ms() + (int64_t)gw->opts.timeout_s * 1000);
    }
    if (r) {
        if (r->dedupe_key && r->state != ST_DONE) {
            /* never answered (the client went away): a retry of the id may try again,
               and repeats waiting for this answer are told to retry */
            pthread_mutex_lock(&gw->lock);
            if (json_is_null(json_object_get(gw->seen, r->dedupe_key))) {
                wh_gw_seen_forget(gw, r->dedupe_key);
            }
            struct wh_reply retry = {0};
            wh_gw_reply_error(&retry, 503, "retry",
                              "the first delivery of this id was not answered");
            release_repeats(gw, r->dedupe_key, &retry);
            reply_reset(&retry);
            pthread_mutex_unlock(&gw->lock);
        }
        if (r->wh.reserved) {
            /* refused or gone before it could wait */
            pthread_mutex_lock(&gw->lock);
            unreserve(gw, r);
            pthread_mutex_unlock(&gw->lock);
        }
        atomic_fetch_sub(&gw->live, 1);
        request_free(r);
        *con_cls = NULL;
    }
}

/* Turn a generic response (or the fallback) into the platform's answer. */
static void build_answer(wh_request *r, const json_t *response)
{
    const wh_connector *d = &r->inst->plugin->desc;
    reply_reset(&r->reply);
    if (d->respond) {
        int rc = d->respond(r->inst->state, r->event, response, &r->reply);
        if (rc == WH_OK && r->reply.status == 0) {
            wh_error(r->inst->name, "respond() returned without calling reply() (a connector bug)");
            wh_gw_reply_error(&r->reply, 500, "connector_error", "the connector could not answer");
        } else if (rc != WH_OK) {
            wh_error(r->inst->name, "respond() failed: %s", wh_strerror(rc));
            wh_gw_reply_error(&r->reply, 500, "connector_error", "the connector could not answer");
        }
        return;
    }
    char *text = json_dumps(response ? response : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    wh_gw_reply_set(&r->reply, 200, CTYPE_JSON, text ? text : "null", text ? strlen(text) : 4);
    free(text);
}

/* Mark ready and hand back to MHD. Caller holds gw->lock. */
void wh_gw_resume_ready(wh_request *r)
{
    r->state = ST_READY;
    if (r->suspended) {
        r->suspended = 0;
        MHD_resume_connection(r->conn);
    }
}

static void pending_remove(wh_gateway *gw, wh_request *r)
{
    for (wh_request **pp = &gw->pending; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            r->next = NULL;
            gw->npending--;
            return;
        }
    }
}

#define SEEN_CACHE_MAX 10000
/* how long a repeat waits for the first delivery's answer (Alexa waits 8 s) */
#define DUP_WAIT_MS 10000

void wh_gw_seen_remember(wh_gateway *gw, const char *key, json_t *answer)
{
    if (!json_object_get(gw->seen, key)) {
        char *copy = strdup(key);
        if (!copy) {
            json_decref(answer);
            return;
        }
        size_t slot = (gw->seen_head + gw->seen_n) % SEEN_CACHE_MAX;
        if (gw->seen_n == SEEN_CACHE_MAX) {
            /* full: the oldest key leaves the cache (the state file still has it) */
            json_object_del(gw->seen, gw->seen_ring[gw->seen_head]);
            free(gw->seen_ring[gw->seen_head]);
            gw->seen_head = (gw->seen_head + 1) % SEEN_CACHE_MAX;
            gw->seen_n--;
        }
        gw->seen_ring[slot] = copy;
        gw->seen_n++;
    }
    json_object_set_new(gw->seen, key, answer ? answer : json_null());
}

void wh_gw_seen_forget(wh_gateway *gw, const char *key)
{
    /* false rather than removed: the key keeps its one ring slot, so evicting
       that slot later removes the entry once, not a newer one early */
    if (json_object_get(gw->seen, key)) {
        json_object_set_new(gw->seen, key, json_false());
    }
}

/* The first delivery of `key` has its answer (or failed): repeats that waited
   for it get the same. Caller holds gw->lock. */
static void release_repeats(wh_gateway *gw, const char *key, const struct wh_reply *answer)
{
    wh_request **pp = &gw->pending;
    while (*pp) {
        wh_request *w = *pp;
        if (!w->dup_of || strcmp(w->dup_of, key) != 0) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->next = NULL;
        gw->npending--;
        wh_gw_reply_set(&w->reply, answer->status, answer->ctype, answer->body.data,
                        answer->body.len);
        wh_gw_resume_ready(w);
    }
}

static int save_answer(sqlite3 *db, void *ud)
{
    int rc = wh_sqlbatch_exec(db, ud);
    json_decref(ud);
    return rc;
}

static void saved(void *ud, int rc)
{
    (void)ud;
    if (rc != WH_OK) {
        wh_warn("gateway", "cannot store a de-duplication answer: %s", wh_strerror(rc));
    }
}

/* The answer is final: remember it for duplicates of this request, then send it. */
static enum MHD_Result finish(wh_request *r)
{
    wh_gateway *gw = r->gw;
    r->state = ST_DONE;
    if (r->dedupe_key && !r->wh.duplicate) {
        pthread_mutex_lock(&gw->lock);
        if (r->reply.status >= 500) {
            /* not an answer to repeat: a retry of this id may try again */
            wh_gw_seen_forget(gw, r->dedupe_key);
        } else {
            json_t *answer = json_pack("{s:i, s:s, s:s#}", "status", r->reply.status, "ctype",
                                       r->reply.ctype, "body",
                                       r->reply.body.data ? r->reply.body.data : "",
                                       r->reply.body.len);
            if (answer && gw->store) {
                json_t *batch = json_array();
                wh_sqlbatch_add(batch, "UPDATE seen SET answer = ?1 WHERE source = ?2 AND id = ?3",
                                json_pack("[O, s, s]", answer, r->inst->name, r->dedupe_id));
                if (wh_store_write(gw->store, save_answer, saved, batch) != WH_OK) {
                    json_decref(batch);
                }
            }
            wh_gw_seen_remember(gw, r->dedupe_key, answer);
        }
        release_repeats(gw, r->dedupe_key, &r->reply);
        pthread_mutex_unlock(&gw->lock);
    }
    return wh_gw_queue_reply(r->conn, &r->reply);
}

/*
 * The events are durable (or there is no store): publish them, then prepare
 * the answer or start waiting. Caller holds gw->lock.
 */
static void publish_and_answer(wh_request *r)
{
    wh_gateway *gw = r->gw;
    struct wh_webhook *wh = &r->wh;
    unreserve(gw, r); /* it waits (counted in npending) or is answered now */
    size_t i;
    json_t *out;
    json_array_foreach(r->outgoing, i, out)
    {
        const char *text = json_string_value(json_array_get(out, 1));
        if (wh_pub_send_raw(gw->pub, json_string_value(json_array_get(out, 0)), text,
                            strlen(text)) != 0) {
            /* journaled already: the engine picks it up at the next start */
            wh_error("gateway", "cannot publish a journaled event; it is handled at restart");
        }
    }
    if (wh->wait) {
        if (json_array_size(wh->events) == 0) {
            build_answer(r, wh->fallback);
            r->state = ST_READY;
            return;
        }
        r->deadline = wh_mono_ms() + (wh->deadline_ms > 0 ? wh->deadline_ms : 5000);
        r->state = ST_WAITING;
        r->next = gw->pending;
        gw->pending = r;
        gw->npending++;
        return;
    }
    if (wh->answered) {
        wh_gw_reply_set(&r->reply, wh->answer_status, wh->answer_ctype, wh->answer_body.data,
                        wh->answer_body.len);
    } else {
        wh_buf ok = {0};
        wh_buf_printf(&ok, "{\"ok\":true,\"events\":%s}", r->ids ? r->ids : "[]");
        wh_gw_reply_set(&r->reply, 200, CTYPE_JSON, ok.data ? ok.data : "{\"ok\":true}",
                        ok.data ? ok.len : 11);
        wh_buf_free(&ok);
    }
    r->state = ST_READY;
}

static int journal(sqlite3 *db, void *ud)
{
    return wh_sqlbatch_exec(db, ((wh_request *)ud)->journal);
}

/* The journal's commit (or failure), on the store's writer thread. */
static void journaled(void *ud, int rc)
{
    wh_request *r = ud;
    wh_gateway *gw = r->gw;
    pthread_mutex_lock(&gw->lock);
    gw->journaling--;
    if (rc != WH_OK) {
        wh_error("gateway", "cannot journal the event: %s", wh_strerror(rc));
        wh_gw_reply_error(&r->reply, 503, "store_unavailable", "cannot store the event; retry");
        r->state = ST_READY;
    } else {
        publish_and_answer(r);
    }
    if (r->state == ST_READY) {
        wh_gw_resume_ready(r);
    }
    pthread_mutex_unlock(&gw->lock);
}

/*
 * After the connector decided: build the envelopes and the rows that journal
 * them. Touches only the request, so dispatch() runs it without gw->lock
 * (requests on other threads build theirs at the same time); an asynchronous
 * webhook's wh_wh_done() runs it under the lock it already holds. Returns 1 when the request
 * goes on to submit_events(), 0 when its answer is set (ST_READY).
 */
static int prepare_events(wh_request *r)
{
    wh_gateway *gw = r->gw;
    struct wh_webhook *wh = &r->wh;
    if (wh->reject_status) {
        wh_info("gateway", "refused status=%d error=%s instance=%s remote=%s", wh->reject_status,
                wh->reject_error, r->inst->name, r->remote);
        wh_gw_reply_error(&r->reply, wh->reject_status, wh->reject_error, wh->reject_detail);
        r->state = ST_READY;
        return 0;
    }
    if (atomic_load(&gw->stopping)) {
        wh_gw_reply_error(&r->reply, 503, "shutting_down", "wirehub is stopping; retry shortly");
        r->state = ST_READY;
        return 0;
    }
    if (r->dup_of) {
        return 1; /* waits for the first delivery's answer (submit_events) */
    }
    if (wh->duplicate) {
        /* answered as the first delivery was; nothing is published again */
        wh_gw_reply_set(&r->reply, wh->answer_status, wh->answer_ctype, wh->answer_body.data,
                        wh->answer_body.len);
        r->state = ST_READY;
        return 0;
    }
    wh_buf ids = {0};
    wh_buf_puts(&ids, "[");
    char prefix[96];
    snprintf(prefix, sizeof prefix, "resp/%s/", gw->node);
    r->outgoing = json_array();
    r->journal = json_array();
    int64_t now = wh_now_ms();
    int consumed = !gw->opts.consumes || gw->opts.consumes(gw->opts.consumes_ud, r->inst->name);
    size_t i;
    json_t *ev;
    json_array_foreach(wh->events, i, ev)
    {
        const char *kind = json_string_value(json_object_get(ev, "kind"));
        const json_t *data = json_object_get(ev, "data");
        int waits = i == 0 && wh->wait;
        char id[33];
        size_t len = 0;
        char *text = wh_env_encode(r->inst->name, kind, data, waits ? prefix : NULL, id, &len);
        char topic[WH_TOPIC_MAX];
        if (!text || wh_topic_in(topic, sizeof topic, r->inst->name, kind) != 0) {
            free(text);
            wh_buf_free(&ids);
            wh_gw_reply_error(&r->reply, 500, "internal", "cannot build the event");
            r->state = ST_READY;
            return 0;
        }
        if (waits) {
            /* kept for respond(): the connector sees the envelope its caller produced */
            snprintf(r->reqid, sizeof r->reqid, "%s", id);
            r->event = json_loadb(text, len, 0, NULL);
        }
        /* an event no rule reads is journaled as handled: nothing will take it */
        wh_sqlbatch_add(r->journal,
                        "INSERT OR IGNORE INTO events (id, source, kind, envelope, state, "
                        "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        json_pack("[s, s, s, s, s, I]", id, r->inst->name, kind, text,
                                  consumed ? "new" : "done", (json_int_t)now));
        json_array_append_new(r->outgoing, json_pack("[s, s]", topic, text));
        free(text);
        wh_buf_printf(&ids, "%s\"%s\"", i ? "," : "", id);
    }
    wh_buf_puts(&ids, "]");
    r->ids = ids.data;
    if (r->dedupe_id) {
        wh_sqlbatch_add(r->journal,
                        "INSERT OR IGNORE INTO seen (source, id, created_ms) VALUES (?1, ?2, ?3)",
                        json_pack("[s, s, I]", r->inst->name, r->dedupe_id, (json_int_t)now));
    }
    return 1;
}

/*
 * Journal the prepared events, then (in publish_and_answer) publish and
 * answer. Caller holds gw->lock and suspends the request while the state is
 * ST_JOURNAL or ST_WAITING; holding the lock until then keeps journaled()
 * from racing ahead of the suspension.
 */
static void submit_events(wh_request *r)
{
    wh_gateway *gw = r->gw;
    if (atomic_load(&gw->stopping)) {
        wh_gw_reply_error(&r->reply, 503, "shutting_down", "wirehub is stopping; retry shortly");
        r->state = ST_READY;
        return;
    }
    if (r->dup_of) {
        const json_t *answer = json_object_get(gw->seen, r->dup_of);
        if (json_is_object(answer)) {
            /* the first delivery was answered meanwhile */
            wh_gw_reply_set(&r->reply, (int)json_integer_value(json_object_get(answer, "status")),
                            json_string_value(json_object_get(answer, "ctype")),
                            json_string_value(json_object_get(answer, "body")),
                            json_string_length(json_object_get(answer, "body")));
            r->state = ST_READY;
        } else if (!answer || json_is_false(answer)) {
            wh_gw_reply_error(&r->reply, 503, "retry",
                              "the first delivery of this id failed; retry");
            r->state = ST_READY;
        } else {
            /* still in progress: wait for its answer, as long as a caller would */
            r->deadline = wh_mono_ms() + DUP_WAIT_MS;
            r->state = ST_WAITING;
            r->next = gw->pending;
            gw->pending = r;
            gw->npending++;
        }
        return;
    }
    if (gw->opts.rule_lag_ms && gw->opts.max_rule_lag_ms > 0 && json_array_size(r->journal) > 0) {
        int64_t lag = atomic_load(gw->opts.rule_lag_ms);
        if (lag > gw->opts.max_rule_lag_ms &&
            (!gw->opts.consumes || gw->opts.consumes(gw->opts.consumes_ud, r->inst->name))) {
            /* the rules are behind: taking more would only grow the queue in memory
             * (an instance no rule reads never queues behind them) */
            char detail[128];
            snprintf(detail, sizeof detail, "rules are %lld ms behind; retry shortly",
                     (long long)lag);
            wh_gw_reply_error(&r->reply, 503, "busy", detail);
            if (!r->reply.headers) {
                r->reply.headers = json_array();
            }
            json_array_append_new(r->reply.headers, json_pack("[s, s]", "Retry-After", "1"));
            r->state = ST_READY;
            return;
        }
    }
    if (gw->store && json_array_size(r->journal) > 0) {
        r->state = ST_JOURNAL;
        if (wh_store_write(gw->store, journal, journaled, r) != WH_OK) {
            wh_gw_reply_error(&r->reply, 503, "store_unavailable",
                              "too many events waiting to be stored; retry shortly");
            r->state = ST_READY;
        } else {
            gw->journaling++;
        }
        return;
    }
    publish_and_answer(r);
}

/* prepare_events() then submit_events(); caller holds gw->lock. */
void wh_gw_after_webhook(wh_request *r)
{
    if (prepare_events(r)) {
        submit_events(r);
    }
}
/* ------------------------------------------------------------------ */
/* routing                                                              */

static enum MHD_Result healthz(wh_gateway *gw, struct MHD_Connection *conn)
{
    pthread_mutex_lock(&gw->lock);
    unsigned pending = gw->npending, polls = gw->npollers;
    pthread_mutex_unlock(&gw->lock);
    int gone = gw->store && wh_store_gone(gw->store);
    int stopping = atomic_load(&gw->stopping);
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "status",
                          stopping ? "stopping" : gone ? "state_file_gone" : "ok", "version",
                          WH_VERSION,
                          "uptime_s", (json_int_t)((wh_mono_ms() - gw->started) / 1000),
                          "instances", (json_int_t)gw->instances->n, "pending",
                          (json_int_t)pending, "polls", (json_int_t)polls);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    struct wh_reply r = {0};
    wh_gw_reply_set(&r, stopping || gone ? 503 : 200, CTYPE_JSON, text ? text : "{}",
                    text ? strlen(text) : 2);
    enum MHD_Result ret = wh_gw_queue_reply(conn, &r);
    reply_reset(&r);
    free(text);
    json_decref(j);
    return ret;
}

void wh_gw_note_remote(wh_request *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) {
        snprintf(r->remote, sizeof r->remote, "?");
        return;
    }
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->remote,
                  sizeof r->remote);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->remote,
                  sizeof r->remote);
    }
}
/* Count a header's occurrences (request smuggling hides in repeats). */
/* How often the headers that must not repeat appear, in one pass over them. */
typedef struct hcount {
    int cl, te, ct; /* Content-Length, Transfer-Encoding, Content-Type */
} hcount;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    hcount *c = cls;
    c->cl += strcasecmp(key, "Content-Length") == 0;
    c->te += strcasecmp(key, "Transfer-Encoding") == 0;
    c->ct += strcasecmp(key, "Content-Type") == 0;
    return MHD_YES;
}
static enum MHD_Result route(wh_gateway *gw, wh_request *r, const char *url, const char *method)
{
    struct MHD_Connection *conn = r->conn;
    if (strcmp(url, "/healthz") == 0) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            return wh_gw_queue_error(conn, 405, "method_not_allowed", "/healthz answers GET",
                                     "GET, HEAD");
        }
        return healthz(gw, conn);
    }
    if (strncmp(url, "/v1/replies/", 12) == 0) {
        return wh_gw_replies_route(gw, r, url + 12, method);
    }
    if (strncmp(url, "/hooks/", 7) != 0) {
        return wh_gw_queue_error(conn, 404, "not_found",
                                 "no such route; webhooks go to /hooks/<instance>", NULL);
    }
    const char *name = url + 7;
    const char *slash = strchr(name, '/');
    size_t nlen = slash ? (size_t)(slash - name) : strlen(name);
    char iname[80];
    if (nlen == 0 || nlen >= sizeof iname) {
        return wh_gw_queue_error(conn, 404, "not_found", "no such instance", NULL);
    }
    memcpy(iname, name, nlen);
    iname[nlen] = '\0';
    r->inst = wh_instances_get(gw->instances, iname);
    if (!r->inst || !r->inst->plugin->desc.webhook) {
        char detail[160];
        snprintf(detail, sizeof detail, "no instance '%s' that takes webhooks", iname);
        return wh_gw_queue_error(conn, 404, "not_found", detail, NULL);
    }
    if (strcmp(method, "POST") != 0) {
        return wh_gw_queue_error(conn, 405, "method_not_allowed", "webhooks are POSTed", "POST");
    }
    if (atomic_load(&gw->stopping)) {
        return wh_gw_queue_error(conn, 503, "shutting_down", "wirehub is stopping; retry shortly",
                                 NULL);
    }
    /* one unambiguous framing, or nothing: a proxy in front may read it another way */
    hcount hc = {0, 0, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &hc);
    if (hc.cl > 1 || hc.te > 1 || (hc.cl && hc.te)) {
        return wh_gw_queue_error(
            conn, 400, "bad_framing",
            "Content-Length and Transfer-Encoding must not be combined or repeated", NULL);
    }
    /* one media type: with two, the body would be read by one and the event say the other */
    if (hc.ct > 1) {
        return wh_gw_queue_error(conn, 400, "bad_content_type",
                                 "a request has at most one Content-Type header", NULL);
    }
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    /* exactly "chunked": libmicrohttpd frames nothing else (not even "chunked " with a
       trailing space, which it would wait on for ever) */
    if (te && strcasecmp(te, "chunked") != 0) {
        /* gzip, or a chain: the body's length cannot be known (RFC 9112, 6.1) */
        return wh_gw_queue_error(conn, 501, "unsupported_transfer_encoding",
                                 "only Transfer-Encoding: chunked is understood", NULL);
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (n > gw->opts.max_body) {
            char detail[96];
            snprintf(detail, sizeof detail, "body over the %zu-byte limit", gw->opts.max_body);
            return wh_gw_queue_error(conn, 413, "payload_too_large", detail, NULL);
        }
    }
    snprintf(r->method, sizeof r->method, "%s", method);
    r->path = strdup(slash ? slash : "");
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    size_t k = 0;
    for (; ct && ct[k] && ct[k] != ';' && k + 1 < sizeof r->ctype; k++) {
        r->ctype[k] = (char)tolower((unsigned char)ct[k]);
    }
    while (k > 0 && r->ctype[k - 1] == ' ') {
        k--;
    }
    r->ctype[k] = '\0';
    wh_gw_note_remote(r);
    r->state = ST_BODY;
    return r->path ? MHD_YES : MHD_NO;
}

static enum MHD_Result dispatch(wh_gateway *gw, wh_request *r)
{
    wh_gw_set_phase(gw, r->conn, PH_PROCESSING, 0);
    r->wh.req = r;
    r->wh.events = json_array();
    const wh_connector *d = &r->inst->plugin->desc;
    r->state = ST_WEBHOOK;
    int rc = d->webhook(r->inst->state, r, &r->wh);
    if (rc == WH_PENDING) {
        pthread_mutex_lock(&gw->lock);
        if (!r->done_early) {
            atomic_fetch_add(&gw->async_webhooks, 1);
            r->suspended = 1;
            MHD_suspend_connection(r->conn);
            pthread_mutex_unlock(&gw->lock);
            return MHD_YES;
        }
        pthread_mutex_unlock(&gw->lock);
        rc = WH_OK;
    }
    if (rc < 0) {
        wh_error(r->inst->name, "webhook() failed: %s", wh_strerror(rc));
        wh_gw_reply_error(&r->reply, 500, "connector_error",
                          "the connector failed on this request");
        return finish(r);
    }
    int go = prepare_events(r);
    pthread_mutex_lock(&gw->lock);
    if (go) {
        submit_events(r);
    }
    if (r->state == ST_WAITING || r->state == ST_JOURNAL) {
        r->suspended = 1;
        MHD_suspend_connection(r->conn);
        pthread_mutex_unlock(&gw->lock);
        return MHD_YES;
    }
    pthread_mutex_unlock(&gw->lock);
    return finish(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    wh_gateway *gw = cls;
    wh_request *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) {
            return MHD_NO;
        }
        r->gw = gw;
        r->conn = conn;
        r->started = wh_mono_ms();
        r->state = ST_DONE;
        *con_cls = r;
        atomic_fetch_add(&gw->live, 1);
        /* headers are in; the body gets a deadline of its own */
        wh_gw_set_phase(gw, conn, PH_BODY, r->started + 3 * (int64_t)gw->opts.timeout_s * 1000);
        return route(gw, r, url, method);
    }
    switch (r->state) {
    case ST_BODY:
        if (*upload_size) {
            if (r->body.len + *upload_size > gw->opts.max_body) {
                r->too_large = 1; /* keep reading and discarding; answer at the end */
                wh_buf_free(&r->body);
            } else if (!r->too_large &&
                       wh_buf_append(&r->body, upload_data, *upload_size) != WH_OK) {
                return MHD_NO;
            }
            *upload_size = 0;
            return MHD_YES;
        }
        if (r->too_large) {
            r->state = ST_DONE;
            char detail[96];
            snprintf(detail, sizeof detail, "body over the %zu-byte limit", gw->opts.max_body);
            return wh_gw_queue_error(conn, 413, "payload_too_large", detail, NULL);
        }
        if (!r->body.data) {
            wh_buf_append(&r->body, "", 0);
        }
        return dispatch(gw, r);
    case ST_READY:
        return finish(r);
    default:
        *upload_size = 0;
        return MHD_YES;
    }
}
/* ------------------------------------------------------------------ */
/* the answer thread                                                    */

static void answer_from_bus(wh_gateway *gw, const char *topic, const char *raw, size_t len)
{
    const char *id = strrchr(topic, '/');
    if (!id) {
        return;
    }
    id++;
    json_t *msg = json_loadb(raw, len, 0, NULL);
    pthread_mutex_lock(&gw->lock);
    wh_request *r = gw->pending;
    while (r && (r->dup_of || strcmp(r->reqid, id) != 0)) { /* repeats have no reqid */
        r = r->next;
    }
    if (!r) {
        json_t *late = json_incref(json_object_get(gw->late, id));
        json_object_del(gw->late, id);
        pthread_mutex_unlock(&gw->lock);
        const json_t *response = json_object_get(msg, "response");
        wh_instance *inst =
            late ? wh_instances_get(gw->instances,
                                    json_string_value(json_object_get(late, "instance")))
                 : NULL;
        if (inst && json_is_object(response)) {
            int rc = inst->plugin->desc.late(inst->state, json_object_get(late, "event"),
                                             response);
            if (rc != WH_OK) {
                wh_warn(inst->name, "late answer not delivered: %s", wh_strerror(rc));
            }
        }
        json_decref(late);
        json_decref(msg);
        return;
    }
    if (r) {
        pending_remove(gw, r);
        const json_t *response = json_object_get(msg, "response");
        if (!json_is_object(response)) {
            const char *why = json_string_value(json_object_get(msg, "reason"));
            wh_info(r->inst->name, "fallback answer: %s request=%s", why ? why : "no response",
                    r->reqid);
            response = r->wh.fallback;
        }
        build_answer(r, response);
        wh_gw_resume_ready(r);
    }
    pthread_mutex_unlock(&gw->lock);
    json_decref(msg);
}

static int64_t expire_pending(wh_gateway *gw)
{
    int64_t now = wh_mono_ms(), next = now + 1000;
    pthread_mutex_lock(&gw->lock);
    wh_request **pp = &gw->pending;
    while (*pp) {
        wh_request *r = *pp;
        if (r->deadline <= now) {
            *pp = r->next;
            r->next = NULL;
            gw->npending--;
            if (r->dup_of) {
                wh_gw_reply_error(&r->reply, 503, "duplicate_in_progress",
                                  "the first delivery of this id is still being handled; retry");
                wh_gw_resume_ready(r);
                continue;
            }
            wh_info(r->inst->name,
                    "fallback answer: no answer from the engine within %ld ms request=%s",
                    r->wh.deadline_ms, r->reqid);
            if (r->inst->plugin->desc.late && r->event) {
                /* the connector can still deliver an answer that comes later */
                json_object_set_new(gw->late, r->reqid,
                                    json_pack("{s:s, s:O, s:I}", "instance", r->inst->name,
                                              "event", r->event, "until",
                                              (json_int_t)(now + LATE_KEEP_MS)));
            }
            build_answer(r, r->wh.fallback);
            wh_gw_resume_ready(r);
            continue;
        }
        if (r->deadline < next) {
            next = r->deadline;
        }
        pp = &r->next;
    }
    const char *id;
    json_t *entry;
    void *tmp;
    wh_request *polls = wh_gw_take_pollers(gw, NULL, now);
    json_object_foreach_safe(gw->late, tmp, id, entry)
    {
        if (json_integer_value(json_object_get(entry, "until")) <= now ||
            json_object_size(gw->late) > LATE_MAX) {
            json_object_del(gw->late, id);
        }
    }
    for (wh_request *r = gw->pollers; r; r = r->next) {
        if (r->deadline < next) {
            next = r->deadline;
        }
    }
    pthread_mutex_unlock(&gw->lock);
    wh_gw_answer_pollers(gw, polls, now);
    return next - now;
}

static void *resp_main(void *arg)
{
    wh_gateway *gw = arg;
    while (!atomic_load(&gw->stopping)) {
        int64_t wait = expire_pending(gw);
        wh_gw_enforce_deadlines(gw, wh_mono_ms());
        /* new waiters may have earlier deadlines than the one we sleep for */
        if (wait > 50) {
            wait = 50;
        }
        char *topic, *raw;
        size_t len;
        int got = wh_sub_recv_raw(gw->sub, (int)wait, &topic, &raw, &len);
        if (got < 0) {
            break;
        }
        if (got == 1) {
            if (strncmp(topic, "reply/", 6) == 0) {
                pthread_mutex_lock(&gw->lock);
                gw->reply_seq++;
                int64_t now = wh_mono_ms();
                wh_request *polls = wh_gw_take_pollers(gw, topic + 6, now);
                pthread_mutex_unlock(&gw->lock);
                wh_gw_answer_pollers(gw, polls, now);
            } else {
                answer_from_bus(gw, topic, raw, len);
            }
            free(topic);
            free(raw);
        }
    }
    return NULL;
}
/* ------------------------------------------------------------------ */
/* life                                                                 */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    wh_debug("http", "%s", msg);
}

wh_gateway *wh_gateway_new(const wh_gateway_opts *opts, wh_instances *instances,
                           wh_store *store, void *zctx, const wh_bus_ends *ends, char *err,
                           size_t errsize)
{
    wh_gateway *gw = calloc(1, sizeof *gw);
    if (!gw) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    gw->opts = *opts;
    snprintf(gw->host, sizeof gw->host, "%s", opts->host ? opts->host : "127.0.0.1");
    snprintf(gw->node, sizeof gw->node, "%s", opts->node ? opts->node : "local");
    gw->opts.host = gw->host;
    gw->opts.node = gw->node;
    if (!gw->opts.max_body) {
        gw->opts.max_body = 1u << 20;
    }
    if (!gw->opts.timeout_s) {
        gw->opts.timeout_s = 10;
    }
    if (!gw->opts.max_connections) {
        gw->opts.max_connections = 1024;
    }
    if (!gw->opts.max_pending) {
        gw->opts.max_pending = 1024;
    }
    if (!gw->opts.threads) {
        gw->opts.threads = 2;
    }
    gw->instances = instances;
    gw->store = store;
    gw->started = wh_mono_ms();
    gw->seen = json_object();
    gw->seen_ring = calloc(SEEN_CACHE_MAX, sizeof *gw->seen_ring);
    gw->late = json_object();
    pthread_mutex_init(&gw->lock, NULL);
    pthread_mutex_init(&gw->conn_lock, NULL);

    gw->pub = wh_pub_new(zctx, ends, 5000);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "resp/%s/", gw->node);
    const char *prefixes[] = {prefix, opts->api_tokens ? "reply/" : NULL, NULL};
    gw->sub = wh_sub_new(zctx, ends, prefixes, 5000);
    if (opts->api_tokens && store) {
        gw->api = wh_api_new(opts->api_tokens, store);
    }
    if (!gw->seen || !gw->seen_ring || !gw->late) {
        snprintf(err, errsize, "out of memory");
        goto fail;
    }
    if (!gw->pub || !gw->sub) {
        snprintf(err, errsize, "cannot join the bus");
        goto fail;
    }

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof port, "%d", opts->port);
    if (getaddrinfo(gw->host, port, &hints, &ai) != 0 || !ai) {
        snprintf(err, errsize, "listen address '%s' is not a numeric IPv4 or IPv6 address",
                 gw->host);
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (ai->ai_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    gw->mhd = MHD_start_daemon(
        flags, (uint16_t)opts->port, NULL, NULL, on_request, gw, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        gw, MHD_OPTION_NOTIFY_CONNECTION, wh_gw_on_connection, gw, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)gw->opts.timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)gw->opts.max_connections, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(gw->opts.threads > 1 ? gw->opts.threads : 0), MHD_OPTION_END);
    /* MHD's default on Linux is SO_REUSEADDR alone: a restart binds at once past
     * TIME_WAIT, while a second hub on the same port fails instead of sharing
     * its connections (SO_REUSEPORT, which LISTENING_ADDRESS_REUSE 1 sets). */
    freeaddrinfo(ai);
    if (!gw->mhd) {
        snprintf(err, errsize, "cannot listen on %s:%d (in use, or not allowed)", gw->host,
                 opts->port);
        goto fail;
    }
    if (pthread_create(&gw->resp_thread, NULL, resp_main, gw) != 0) {
        snprintf(err, errsize, "cannot start the gateway's answer thread");
        goto fail;
    }
    gw->resp_started = 1;
    return gw;
fail:
    wh_gateway_destroy(&gw);
    return NULL;
}

int wh_gateway_port(const wh_gateway *gw)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(gw->mhd, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : -1;
}

void wh_gateway_destroy(wh_gateway **pgw)
{
    wh_gateway *gw = pgw ? *pgw : NULL;
    if (!gw) {
        return;
    }
    atomic_store(&gw->stopping, 1);
    if (gw->resp_started) {
        pthread_join(gw->resp_thread, NULL);
    }
    /* connectors finishing async webhooks resume their own requests (503) */
    for (int i = 0; i < 500 && atomic_load(&gw->async_webhooks) > 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* events being journaled are acknowledged once stored (the store outlives
       the gateway); their requests are suspended, and MHD must not stop with a
       suspended connection nor a commit callback find the gateway gone */
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&gw->lock);
        unsigned n = gw->journaling;
        pthread_mutex_unlock(&gw->lock);
        if (n == 0) {
            break;
        }
        if (i == 2999) {
            wh_error("gateway", "%u request(s) still waiting for the store at shutdown", n);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&gw->lock);
    wh_request *polls = wh_gw_take_pollers(gw, NULL, INT64_MAX);
    pthread_mutex_unlock(&gw->lock);
    wh_gw_answer_pollers(gw, polls, INT64_MAX);
    pthread_mutex_lock(&gw->lock);
    while (gw->pending) {
        wh_request *r = gw->pending;
        pending_remove(gw, r);
        wh_gw_reply_error(&r->reply, 503, "shutting_down", "wirehub is stopping; retry shortly");
        wh_gw_resume_ready(r);
    }
    pthread_mutex_unlock(&gw->lock);
    if (gw->mhd) {
        /* let MHD send the answers just resumed, briefly */
        for (int i = 0; i < 200 && atomic_load(&gw->live) > 0; i++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        MHD_stop_daemon(gw->mhd);
    }
    wh_sub_destroy(&gw->sub);
    wh_pub_destroy(&gw->pub);
    json_decref(gw->seen);
    for (size_t i = 0; gw->seen_ring && i < gw->seen_n; i++) {
        free(gw->seen_ring[(gw->seen_head + i) % SEEN_CACHE_MAX]);
    }
    free(gw->seen_ring);
    json_decref(gw->late);
    wh_api_destroy(&gw->api);
    pthread_mutex_destroy(&gw->conn_lock);
    pthread_mutex_destroy(&gw->lock);
    free(gw);
    *pgw = NULL;
}
