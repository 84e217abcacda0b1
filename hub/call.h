/*
 * call.h — one execution of a connector operation: the wh_call behind the
 * opaque handle connectors see. Starting and completing always happen on the
 * delivery thread; whoever started the call hears the outcome through `done`.
 */
#ifndef WH_CALL_H
#define WH_CALL_H
#include "instance.h"

/**
 * Called once on the delivery thread. Ownership: `result` is borrowed (json_incref
 * to keep it); `error` may be NULL.
 */
typedef void (*wh_call_done)(void *user, wh_outcome outcome, const json_t *result,
                             long retry_after_ms, const char *error);

/**
 * Run operation `op` of `inst` with `args` on the delivery thread.
 * `key` is the idempotency key, `cursor` the poll cursor (may be NULL),
 * `attempt` starts at 1. The done callback runs exactly once when this
 * returns WH_OK. Any thread. Ownership: borrows everything (copies kept).
 */
int wh_call_run(wh_instance *inst, const char *op, const json_t *args, const char *key,
                const json_t *cursor, int attempt, wh_call_done done, void *user);

/* host table members */
const char *wh_call_key(const wh_call *call);
const json_t *wh_call_cursor(const wh_call *call);
int wh_call_attempt(const wh_call *call);
int wh_call_complete(wh_call *call, wh_outcome outcome, json_t *result, long retry_after_ms,
                     const char *error);
#endif
