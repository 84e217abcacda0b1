/*
 * bus.h — the ZeroMQ broker and the small publish/subscribe API every part uses.
 *
 * The broker runs XSUB (publishers connect) ⇄ XPUB (subscribers connect) with
 * zmq_proxy_steerable in its own thread. It binds inproc endpoints for the
 * parts of this process and, for other processes, each configured endpoint:
 * subscribers connect to the endpoint itself, publishers to its sibling
 * (tcp port + 1, or the ipc path + ".in"). A message is two frames: topic and
 * one JSON object.
 */
#ifndef WH_BUS_H
#define WH_BUS_H
#include <jansson.h>
#include <stddef.h>

#define WH_EP_MAX 256

/** The two endpoints of one broker: where publishers and subscribers connect. */
typedef struct wh_bus_ends {
    char pub[WH_EP_MAX]; /**< XSUB side: PUB sockets connect here */
    char sub[WH_EP_MAX]; /**< XPUB side: SUB sockets connect here */
} wh_bus_ends;

/**
 * Derive the ends for an external endpoint ("tcp://127.0.0.1:7600",
 * "ipc:///run/wirehub/bus"). Returns 0, or -1 with a reason in err.
 */
int wh_bus_ends_for(const char *endpoint, wh_bus_ends *ends, char *err, size_t errsize);

/**
 * The ends a client (tail, send, another process) connects to for a bound
 * endpoint: as wh_bus_ends_for(), with a wildcard host ("*", 0.0.0.0, [::])
 * reached over loopback. Returns 0, or -1 with a reason in err.
 */
int wh_bus_ends_to_reach(const char *endpoint, wh_bus_ends *ends, char *err, size_t errsize);

typedef struct wh_bus wh_bus;

/**
 * Start the broker, bound to inproc and to each endpoint in `binds` (array of
 * strings, may be NULL). ipc sockets are made mode 0600. An ipc path another
 * process still listens on is refused (ZeroMQ would silently take it over);
 * a stale socket file left by a crash is replaced.
 * Returns NULL with a reason in err. Ownership: borrows binds.
 */
wh_bus *wh_bus_new(const json_t *binds, char *err, size_t errsize);
/** Stop the broker thread, close its sockets and the context. NULL-safe. */
void wh_bus_destroy(wh_bus **bus);
/** The ZeroMQ context (for parts in this process). */
void *wh_bus_zctx(wh_bus *bus);
/** The inproc ends. */
const wh_bus_ends *wh_bus_inproc(const wh_bus *bus);

/* ---- publishing: thread-safe (a mutex around one PUB socket) ---- */
typedef struct wh_pub wh_pub;

/**
 * Connect a publisher and wait (≤ timeout_ms) until the broker forwards its
 * messages to current subscribers, so the first message is not lost to
 * ZeroMQ's slow-joiner race. Returns NULL on failure.
 */
wh_pub *wh_pub_new(void *zctx, const wh_bus_ends *ends, int timeout_ms);
void wh_pub_destroy(wh_pub **pub);
/** Send topic + JSON (encoded compactly). 0 or -1. Ownership: borrows msg. */
int wh_pub_send(wh_pub *pub, const char *topic, const json_t *msg);
/** Send topic + already-encoded bytes. */
int wh_pub_send_raw(wh_pub *pub, const char *topic, const char *data, size_t len);

/* ---- subscribing: one thread per wh_sub ---- */
typedef struct wh_sub wh_sub;

/**
 * Connect a subscriber for the topic prefixes (NULL-terminated; "" = all) and
 * wait (≤ timeout_ms) until its subscriptions reach the broker's publishers.
 */
wh_sub *wh_sub_new(void *zctx, const wh_bus_ends *ends, const char *const *prefixes,
                   int timeout_ms);
void wh_sub_destroy(wh_sub **sub);
/**
 * Receive one message, waiting up to timeout_ms (-1 forever). Returns 1 with
 * *topic (malloc'd) and *raw (malloc'd JSON text, *len bytes) set, 0 on timeout,
 * -1 on error (e.g. the context is terminating).
 */
int wh_sub_recv_raw(wh_sub *sub, int timeout_ms, char **topic, char **raw, size_t *len);
/** The underlying socket, for zmq_poll with other sockets. */
void *wh_sub_socket(wh_sub *sub);
#endif
