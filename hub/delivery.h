/*
 * delivery.h — the bus part that executes connector calls: it hears
 * `out/<instance>` requests, runs the operation on the delivery thread,
 * retries transient failures with backoff, and answers on the caller's
 * `done/…` topic.
 */
#ifndef WH_DELIVERY_H
#define WH_DELIVERY_H
#include "bus.h"
#include "instance.h"

typedef struct wh_delivery_opts {
    int max_attempts;        /**< default 8 */
    int64_t backoff_base_ms; /**< first retry delay (default 500), doubled each time */
    int64_t backoff_max_ms;  /**< cap (default 300000) */
} wh_delivery_opts;

typedef struct wh_delivery wh_delivery;

/** Start: subscribes to out/. Ownership: borrows everything; instances must be inited. */
wh_delivery *wh_delivery_new(const wh_delivery_opts *opts, wh_instances *instances, void *zctx,
                             const wh_bus_ends *ends, char *err, size_t errsize);
/**
 * Stop taking calls (the listener thread ends). Calls in flight go on until
 * the delivery thread (wh_http) stops; their outcomes still need the
 * publisher, so wh_delivery_destroy() comes after wh_http_destroy().
 */
void wh_delivery_stop(wh_delivery *d);
/** Stop if needed and free. NULL-safe. */
void wh_delivery_destroy(wh_delivery **d);
#endif
