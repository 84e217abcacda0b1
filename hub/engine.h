/*
 * engine.h — the bus part that matches events against rules and advances
 * durable runs: it hears `in/…` events and `done/engine` call outcomes,
 * records runs and their calls in the store, and after each commit publishes
 * call wake-ups on `out/<instance>`, answers on the event's `reply_to`, and
 * `in/hub/call_failed` when a run fails. At start it resumes waiting runs and
 * handles events that were journaled but never processed.
 */
#ifndef WH_ENGINE_H
#define WH_ENGINE_H
#include "bus.h"
#include "rules.h"
#include "store.h"

#include <stdatomic.h>
#include <stdint.h>

typedef struct wh_engine wh_engine;

/**
 * Start. Ownership: takes one reference of `rules` on success (NULL = no rules
 * yet); borrows the rest (the store must outlive the engine).
 */
wh_engine *wh_engine_new(void *zctx, const wh_bus_ends *ends, const char *node, wh_store *store,
                         wh_rules *rules, char *err, size_t errsize);
/**
 * Swap the rule set atomically: events from now on meet `rules`; runs already
 * started finish on the set they started with. Ownership: takes a reference.
 */
void wh_engine_set_rules(wh_engine *engine, wh_rules *rules);
/**
 * How far behind the engine is: the age in ms of the event it handled last,
 * 0 while its queue is empty. The gateway refuses new events past
 * `gateway.max_rule_lag`. Readable from any thread; valid while the engine is.
 */
const _Atomic int64_t *wh_engine_lag(const wh_engine *engine);
/**
 * Whether events from `source` reach the engine at all: an enabled rule names
 * that source, or `*`. The gateway refuses only those while the engine lags;
 * the others never queue behind it. Any thread.
 */
int wh_engine_consumes(wh_engine *engine, const char *source);
/** Most rows one cleanup statement removes. */
#define WH_CLEANUP_CHUNK 2000
/**
 * A store job (wh_store_fn) that removes what the state file no longer keeps:
 * handled events older than an hour (never an unhandled one), de-duplication
 * ids older than a day, finished runs and delivered calls older than a week —
 * at most WH_CLEANUP_CHUNK rows per table. `ud` is an int set to 1 when some
 * table had more to remove. The engine runs it every minute (every second while
 * it has more); exposed for tests.
 */
int wh_engine_cleanup(sqlite3 *db, void *ud);
/** Stop: runs waiting for calls stay in the store for the next start. NULL-safe. */
void wh_engine_destroy(wh_engine **engine);
#endif
