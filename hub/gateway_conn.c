/*
 * gateway_conn.c — total deadlines per connection, against slow clients. It
 * tracks every connection MHD opens, moves it from phase to phase as its
 * request advances (headers, body, processing), and drops those past their
 * deadline (the answer thread calls wh_gw_enforce_deadlines() about every
 * 50 ms).
 *
 * It must not read, route or answer requests, and it takes only
 * gw->conn_lock, never gw->lock.
 */
#include "gateway_int.h"
#include "log.h"
#include "util.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

/*
 * Every connection, with when its current request must be complete. MHD's
 * own timeout is an idle timeout, which a client sending a byte a second
 * never trips (slowloris); these deadlines are total.
 */
struct conn_track {
    struct conn_track *next, *prev;
    struct MHD_Connection *conn;
    enum conn_phase phase;
    int64_t deadline; /* mono ms; 0 = none */
    int shut;
};

void wh_gw_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode toe)
{
    wh_gateway *gw = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_track *t = calloc(1, sizeof *t);
        if (!t) {
            return;
        }
        t->conn = conn;
        t->phase = PH_WAITING_HEADERS;
        t->deadline = wh_mono_ms() + (int64_t)gw->opts.timeout_s * 1000;
        pthread_mutex_lock(&gw->conn_lock);
        t->next = gw->conns;
        if (gw->conns) {
            gw->conns->prev = t;
        }
        gw->conns = t;
        pthread_mutex_unlock(&gw->conn_lock);
        *socket_context = t;
    } else if (*socket_context) {
        conn_track *t = *socket_context;
        pthread_mutex_lock(&gw->conn_lock);
        if (t->prev) {
            t->prev->next = t->next;
        } else {
            gw->conns = t->next;
        }
        if (t->next) {
            t->next->prev = t->prev;
        }
        pthread_mutex_unlock(&gw->conn_lock);
        free(t);
        *socket_context = NULL;
    }
}

void wh_gw_set_phase(wh_gateway *gw, struct MHD_Connection *conn, enum conn_phase phase,
                     int64_t deadline)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_track *t = ci ? ci->socket_context : NULL;
    if (t) {
        pthread_mutex_lock(&gw->conn_lock);
        t->phase = phase;
        t->deadline = deadline;
        pthread_mutex_unlock(&gw->conn_lock);
    }
}

/* Drop connections past their deadline: shutdown() makes MHD see the end of the stream. */
void wh_gw_enforce_deadlines(wh_gateway *gw, int64_t now)
{
    pthread_mutex_lock(&gw->conn_lock);
    for (conn_track *t = gw->conns; t; t = t->next) {
        if (t->shut || !t->deadline || t->deadline > now || t->phase == PH_PROCESSING) {
            continue;
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(t->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) {
            shutdown(ci->connect_fd, SHUT_RDWR);
            t->shut = 1;
            wh_debug("gateway", "dropped a connection too slow to send its %s",
                     t->phase == PH_BODY ? "body" : "request");
        }
    }
    pthread_mutex_unlock(&gw->conn_lock);
}
