/*
 * gateway_replies.c — the replies API's HTTP side: GET /v1/replies/<key>
 * (bearer token, unread/peek/since, wait=N) and the long polls held without a
 * thread until a reply lands under their key or their wait ends. What the
 * answer holds, the tokens and the marking read are api.c's.
 *
 * It must not touch webhooks, the pending list or the dedupe cache; its
 * requests wait on gw->pollers, under gw->lock.
 */
#include "gateway_int.h"
#include "api.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ */
/* the replies API: GET /v1/replies/<key>                               */

/* A flag argument: absent 0, bare (`?unread`) 1, 1/true/yes, 0/false/no; -1 for anything else. */
static int flag_arg(struct MHD_Connection *conn, const char *name)
{
    const char *v = NULL;
    size_t len = 0;
    if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v, &len) !=
        MHD_YES) {
        return 0;
    }
    if (!v) {
        return 1;
    }
    if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0) {
        return 1;
    }
    if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0) {
        return 0;
    }
    return -1;
}

/* Whether the caller is still connected: a long poll's client may have given
   up (a timeout of its own) while it waited, and unread replies it would be
   answered must not be marked read for nobody. EOF or an error: gone. */
static int caller_still_there(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) {
        return 1;
    }
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

/* Answer a replies request. A `held` one (a long poll whose wait goes on)
   that finds nothing is not answered: returns 0 and leaves r->reply unset.
   Otherwise sets r->reply and returns 1. */
static int replies_answer(wh_gateway *gw, wh_request *r, const char *key, int held)
{
    size_t n = 0;
    int peek = r->poll_peek;
    if (r->poll_unread && !peek && !caller_still_there(r->conn)) {
        peek = 1; /* nobody will read them: they stay unread for the next caller */
        wh_debug("gateway", "a replies long poll's caller left: key=%s stays unread",
                 wh_log_q(key));
    }
    json_t *body = wh_api_replies(gw->api, key, r->poll_unread, peek, r->poll_since, &n);
    if (!body) {
        wh_gw_reply_error(&r->reply, 503, "store_unavailable", "cannot read the replies; retry");
        return 1;
    }
    if (held && n == 0) {
        json_decref(body);
        return 0;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    wh_gw_reply_set(&r->reply, 200, CTYPE_JSON, text ? text : "{}", text ? strlen(text) : 2);
    free(text);
    json_decref(body);
    return 1;
}

/* Hold r (no thread) until a reply for its key lands or wait_s pass, unless a reply
   was stored since reply_seq was `seq` or the hub is stopping. Returns 1 when held. */
static int park(wh_gateway *gw, wh_request *r, uint64_t seq, long wait_s)
{
    pthread_mutex_lock(&gw->lock);
    if (seq != gw->reply_seq || atomic_load(&gw->stopping)) {
        pthread_mutex_unlock(&gw->lock);
        return 0;
    }
    r->deadline = wh_mono_ms() + wait_s * 1000;
    r->state = ST_WAITING;
    r->next = gw->pollers;
    gw->pollers = r;
    gw->npollers++;
    r->suspended = 1;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&gw->lock);
    return 1;
}

enum MHD_Result wh_gw_replies_route(wh_gateway *gw, wh_request *r, const char *key,
                                    const char *method)
{
    struct MHD_Connection *conn = r->conn;
    if (!gw->api) {
        return wh_gw_queue_error(conn, 404, "not_found",
                                 "the replies API is off (configure api.tokens to turn it on)",
                                 NULL);
    }
    if (strcmp(method, "GET") != 0) {
        return wh_gw_queue_error(conn, 405, "method_not_allowed", "the replies API answers GET",
                                 "GET");
    }
    if (!*key) {
        return wh_gw_queue_error(conn, 404, "not_found", "GET /v1/replies/<key>", NULL);
    }
    int auth = wh_api_auth(gw->api,
                           MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), key);
    if (auth == 401) {
        wh_gw_note_remote(r);
        wh_info("gateway", "refused status=401 error=unauthorized route=replies remote=%s",
                r->remote);
        return wh_gw_queue_error(conn, 401, "unauthorized", "a valid bearer token is required",
                                 NULL);
    }
    if (auth == 403) {
        return wh_gw_queue_error(conn, 403, "forbidden", "this token may not read that key", NULL);
    }
    json_t *utf8 = json_string(key); /* jansson checks UTF-8 */
    json_decref(utf8);
    if (!utf8) {
        return wh_gw_queue_error(conn, 400, "bad_key", "the key must be UTF-8", NULL);
    }
    r->poll_unread = flag_arg(conn, "unread");
    r->poll_peek = flag_arg(conn, "peek");
    if (r->poll_unread < 0 || r->poll_peek < 0) {
        return wh_gw_queue_error(conn, 400, r->poll_unread < 0 ? "bad_unread" : "bad_peek",
                                 "unread and peek are 1, true or yes; 0, false or no", NULL);
    }
    const char *since = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");
    const char *wait = NULL;
    size_t wait_len = 0;
    int has_wait = MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, "wait", 4, &wait,
                                                 &wait_len) == MHD_YES;
    long wait_s = 0;
    if (has_wait) {
        char *end = NULL;
        wait_s = wait ? strtol(wait, &end, 10) : -1;
        if (!wait || end == wait || *end || wait_s < 0) {
            return wh_gw_queue_error(conn, 400, "bad_wait",
                                     "wait must be whole seconds (more than 60 counts as 60)",
                                     NULL);
        }
        wait_s = wait_s > 60 ? 60 : wait_s;
    }
    if (wait_s > 0) {
        /* waiting is the request's work now, not a slow client: no body deadline */
        wh_gw_set_phase(gw, conn, PH_PROCESSING, 0);
    }
    r->poll_since = since ? strdup(since) : NULL;
    r->poll_key = strdup(key);
    if (!r->poll_key || (since && !r->poll_since)) {
        return MHD_NO;
    }
    /* Peek without the lock (it reads the store); a reply notified meanwhile
       bumps reply_seq, and then we look again rather than miss it. */
    for (int tries = 0; wait_s > 0 && tries < 3; tries++) {
        pthread_mutex_lock(&gw->lock);
        uint64_t seq = gw->reply_seq;
        pthread_mutex_unlock(&gw->lock);
        size_t n = 0;
        json_t *peek = wh_api_replies(gw->api, key, r->poll_unread, 1, r->poll_since, &n);
        json_decref(peek);
        if (!peek || n > 0) {
            break; /* something to answer now (or a store error to report) */
        }
        if (park(gw, r, seq, wait_s)) {
            return MHD_YES; /* nothing yet: held until a reply lands or the wait ends */
        }
        if (atomic_load(&gw->stopping)) {
            break;
        }
    }
    /* A marking poll that finds the replies it saw taken by another reader at the
       same instant waits on, as a held one does, rather than answering early. */
    int marks = r->poll_unread && !r->poll_peek;
    pthread_mutex_lock(&gw->lock);
    uint64_t seq = gw->reply_seq;
    pthread_mutex_unlock(&gw->lock);
    if (!replies_answer(gw, r, key, wait_s > 0 && marks)) {
        if (park(gw, r, seq, wait_s)) {
            return MHD_YES;
        }
        replies_answer(gw, r, key, 0); /* a reply landed meanwhile, or stopping */
    }
    r->state = ST_DONE;
    return wh_gw_queue_reply(conn, &r->reply);
}

wh_request *wh_gw_take_pollers(wh_gateway *gw, const char *key, int64_t now)
{
    wh_request *taken = NULL;
    wh_request **pp = &gw->pollers;
    while (*pp) {
        wh_request *r = *pp;
        int due = r->deadline <= now || atomic_load(&gw->stopping);
        if (due || (key && strcmp(r->poll_key, key) == 0)) {
            *pp = r->next;
            r->next = taken;
            taken = r;
            gw->npollers--;
            continue;
        }
        pp = &r->next;
    }
    return taken;
}

void wh_gw_answer_pollers(wh_gateway *gw, wh_request *list, int64_t now)
{
    /* pass 0: polls that mark nothing; pass 1: those that mark what they get read */
    for (int pass = 0; pass < 2; pass++) {
        wh_request **pp = &list;
        while (*pp) {
            wh_request *r = *pp;
            int marks = r->poll_unread && !r->poll_peek;
            if (marks != pass) {
                pp = &r->next;
                continue;
            }
            *pp = r->next;
            r->next = NULL;
            /* taken off gw->pollers and suspended: no other thread touches it now */
            int held = r->deadline > now && !atomic_load(&gw->stopping);
            int answered = replies_answer(gw, r, r->poll_key, held);
            pthread_mutex_lock(&gw->lock);
            if (answered) {
                wh_gw_resume_ready(r);
            } else {
                r->next = gw->pollers; /* another poll took the replies: wait on */
                gw->pollers = r;
                gw->npollers++;
            }
            pthread_mutex_unlock(&gw->lock);
        }
    }
}
