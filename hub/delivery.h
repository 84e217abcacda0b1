/*
 * delivery.h — the bus part that executes connector calls from the outbox:
 * it hears `out/<instance>` (a call the engine just committed), runs the
 * operation on the delivery thread within the instance's concurrency cap,
 * records every outcome in the store, retries transient failures with
 * backoff, moves calls that keep failing to the dead letters, and tells the
 * engine on `done/engine`.
 */
#ifndef WH_DELIVERY_H
#define WH_DELIVERY_H
#include "bus.h"
#include "instance.h"
#include "store.h"

typedef struct wh_delivery_opts {
    int64_t backoff_base_ms; /**< first retry delay (default 500), doubled each time */
    int64_t backoff_max_ms;  /**< cap (default 300000) */
    int64_t rescan_ms;       /**< how often the outbox is scanned for due calls (default 2000) */
} wh_delivery_opts;

typedef struct wh_delivery wh_delivery;

/**
 * Start: resumes every pending call in the outbox, then follows out/.
 * Per instance, the config keys `concurrency`, `max_attempts` and
 * `timeout_ms` apply. Ownership: borrows everything; instances must be inited
 * and the store must outlive the delivery.
 */
wh_delivery *wh_delivery_new(const wh_delivery_opts *opts, wh_instances *instances,
                             wh_store *store, void *zctx, const wh_bus_ends *ends, char *err,
                             size_t errsize);
/**
 * Stop taking calls. Calls in flight go on until the delivery thread
 * (wh_http) stops; their outcomes still need the store and the publisher, so
 * wh_delivery_destroy() comes after wh_http_destroy() and before the store
 * closes. Calls cut short stay pending in the outbox for the next start.
 */
void wh_delivery_stop(wh_delivery *d);
/** Stop if needed and free. NULL-safe. */
void wh_delivery_destroy(wh_delivery **d);
#endif
