/*
 * await.h — the bus part that collects replies for open conversations (the
 * `await` step): it polls on schedule through the outbox, takes matching
 * pushed events (`collect:`), stores each new item under the conversation's
 * key, and publishes it as `in/<instance>/reply`.
 */
#ifndef WH_AWAIT_H
#define WH_AWAIT_H
#include "bus.h"
#include "store.h"

typedef struct wh_await wh_await;

/** Start. Ownership: borrows everything; the store must outlive the part. */
wh_await *wh_await_new(wh_store *store, void *zctx, const wh_bus_ends *ends, char *err,
                       size_t errsize);
/** Stop and free. Open conversations stay in the store for the next start. NULL-safe. */
void wh_await_destroy(wh_await **a);
#endif
