/*
 * gateway_int.h — private to hub/gateway*.c: the request objects behind the
 * SDK's opaque wh_request/wh_webhook/wh_reply handles, the gateway itself,
 * and the functions the gateway's files call in one another. Nothing outside
 * the gateway includes it; the rest of the hub sees gateway.h only.
 *
 * Locking: gw->lock guards the pending list and each request's hand-over
 * between threads (suspend/resume). A request is touched by one thread at a
 * time: MHD's until it is suspended, then whoever resumes it. gw->conn_lock
 * guards only the connection list (gateway_conn.c); the two are never held
 * together.
 */
#ifndef WH_GATEWAY_INT_H
#define WH_GATEWAY_INT_H
#include "api.h"
#include "gateway.h"
#include "util.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define CTYPE_JSON "application/json"

struct wh_webhook {
    wh_request *req;
    json_t *events;          /* [{kind, data}] */
    int reject_status;
    char *reject_error, *reject_detail;
    int answer_status;
    char answer_ctype[128];
    wh_buf answer_body;
    int answered;
    int duplicate; /* dedupe() said the platform sent this before */
    int wait;
    int reserved; /* holds one of gw->nreserved: a place among max_waiting, from wait() */
    long deadline_ms;
    json_t *fallback;
};

struct wh_reply {
    int status;
    char ctype[128];
    wh_buf body;
    json_t *headers; /* [[name, value]] */
};

enum req_state { ST_BODY, ST_WEBHOOK, ST_JOURNAL, ST_WAITING, ST_READY, ST_DONE };

struct wh_request {
    wh_gateway *gw;
    struct MHD_Connection *conn;
    enum req_state state;
    wh_instance *inst;
    char method[16];
    char *path;
    char ctype[128];
    wh_buf body;
    int too_large;
    json_t *headers;
    json_t *queries;
    char remote[INET6_ADDRSTRLEN];
    struct wh_webhook wh;
    struct wh_reply reply;
    /* waiting for the engine */
    int suspended;
    int done_early; /* webhook_done() came before we could suspend */
    char reqid[33];
    int64_t deadline;
    json_t *event;
    json_t *outgoing; /* [[topic, envelope text]]: published once journaled */
    json_t *journal;  /* the INSERTs that journal them */
    char *ids;        /* the default answer's "events" array, as JSON text */
    char *poll_key;   /* a long poll's key (GET /v1/replies/<key>?wait=…) */
    int poll_unread, poll_peek;
    char *poll_since;
    char *dedupe_key; /* "<instance>\n<id>" when the connector called dedupe() */
    char *dedupe_id;
    char *dup_of; /* a repeat of a delivery still being handled: its dedupe key */
    struct wh_request *next; /* pending list */
    int64_t started;
};

/* A connection's phase, for its total deadline; one conn_track each (gateway_conn.c). */
enum conn_phase { PH_WAITING_HEADERS, PH_BODY, PH_PROCESSING };

typedef struct conn_track conn_track;

struct wh_gateway {
    wh_gateway_opts opts;
    char host[64];
    char node[64];
    struct MHD_Daemon *mhd;
    wh_instances *instances;
    wh_store *store;
    wh_pub *pub;
    wh_sub *sub;
    pthread_t resp_thread;
    int resp_started;
    pthread_mutex_t lock;
    wh_request *pending;
    unsigned npending;
    unsigned nreserved; /* callers that will wait once journaled (wait() said yes) */
    unsigned journaling; /* requests whose events are queued in the store (ST_JOURNAL) */
    json_t *seen;       /* dedupe cache: key → answer object, or null while in progress */
    char **seen_ring; /* keys in arrival order, to bound the cache (SEEN_CACHE_MAX) */
    size_t seen_head, seen_n;
    json_t *late;       /* request id → {instance, event, until}: answers that may come late */
    wh_api *api;        /* the replies API, or NULL when not configured */
    pthread_mutex_t conn_lock;
    conn_track *conns;
    wh_request *pollers; /* long polls waiting for a reply under their key */
    unsigned npollers;   /* how many (for /healthz) */
    uint64_t reply_seq;  /* bumped for every reply notification (under gw->lock) */
    atomic_int async_webhooks;
    atomic_int live;
    atomic_int stopping;
    int64_t started;
};

/* ---- gateway_conn.c: total deadlines per connection ---- */

/** MHD_OPTION_NOTIFY_CONNECTION: track a connection from its start to its close. */
void wh_gw_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode toe);
/** Move conn to `phase`, to be complete by `deadline` (mono ms; 0 = none). Takes conn_lock. */
void wh_gw_set_phase(wh_gateway *gw, struct MHD_Connection *conn, enum conn_phase phase,
                     int64_t deadline);
/** Shut down the connections past their deadline (answer thread). Takes conn_lock. */
void wh_gw_enforce_deadlines(wh_gateway *gw, int64_t now);

/* ---- gateway.c: replies, and a request's life ---- */

/** Set status, content type (NULL: JSON) and a copy of body. */
void wh_gw_reply_set(struct wh_reply *r, int status, const char *ctype, const char *body,
                     size_t len);
/** Set {"error": error, "detail": detail} with `status`. */
void wh_gw_reply_error(struct wh_reply *r, int status, const char *error, const char *detail);
/** Queue r on conn. Ownership: borrows r (MHD copies the body). */
enum MHD_Result wh_gw_queue_reply(struct MHD_Connection *conn, const struct wh_reply *r);
/** Queue an error answer at once; `allow` (may be NULL) becomes an Allow header. */
enum MHD_Result wh_gw_queue_error(struct MHD_Connection *conn, int status, const char *error,
                                  const char *detail, const char *allow);
/** Fill r->remote with the client's address. */
void wh_gw_note_remote(wh_request *r);
/** Mark r ready and hand it back to MHD. Caller holds gw->lock. */
void wh_gw_resume_ready(wh_request *r);
/** Act on what the connector decided (events, answer, wait). Caller holds gw->lock. */
void wh_gw_after_webhook(wh_request *r);
/**
 * Remember a dedupe key's answer (NULL: in progress) in the bounded cache.
 * Ownership: takes answer. Caller holds gw->lock.
 */
void wh_gw_seen_remember(wh_gateway *gw, const char *key, json_t *answer);
/** Forget an id's answer (the first delivery failed or went unanswered) so a
 *  retry may try again; the key keeps its place in the bounded cache. Caller
 *  holds gw->lock. */
void wh_gw_seen_forget(wh_gateway *gw, const char *key);

/* ---- gateway_replies.c: GET /v1/replies/<key> ---- */

/** Answer, refuse or hold (a long poll) a request for the replies under `key`. */
enum MHD_Result wh_gw_replies_route(wh_gateway *gw, wh_request *r, const char *key,
                                    const char *method);
/**
 * Answer the long polls for `key` (NULL: none by key) and those due at `now`, or all
 * once the gateway is stopping. Caller holds gw->lock.
 */
/**
 * Take the long polls that are due (`now` past their wait), or wait for
 * `key` (NULL: none), off gw->pollers and return them as a list. Caller holds
 * gw->lock; the list is then the caller's to pass to wh_gw_answer_pollers().
 */
wh_request *wh_gw_take_pollers(wh_gateway *gw, const char *key, int64_t now);
/**
 * Answer and resume taken long polls, those that mark nothing first (a peek
 * sees what a marking poll then takes). One whose wait has not ended (`now`,
 * as given to wh_gw_take_pollers) and that finds nothing after all — another
 * poll marked the replies read — goes back on gw->pollers to wait on.
 * Reads (and marks read) the store, so the caller must NOT hold gw->lock;
 * takes it only to resume or re-queue each request.
 */
void wh_gw_answer_pollers(wh_gateway *gw, wh_request *list, int64_t now);
#endif
