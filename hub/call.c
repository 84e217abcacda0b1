/*
 * call.c — starts an operation on the delivery thread and brings its single
 * completion back there. It does not retry or store anything: the caller
 * (delivery) decides what an outcome means.
 */
#include "call.h"
#include "http_client.h"
#include "log.h"
#include "util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct wh_call {
    wh_instance *inst;
    const wh_operation *op;
    json_t *args;
    json_t *cursor;
    char *key;
    int attempt;
    wh_call_done done;
    void *user;
    atomic_int completed;
    /* the outcome, carried to the delivery thread */
    wh_outcome outcome;
    json_t *result;
    long retry_after_ms;
    char *error;
};

static void call_free(wh_call *c)
{
    json_decref(c->args);
    json_decref(c->cursor);
    json_decref(c->result);
    free(c->key);
    free(c->error);
    free(c);
}

static void deliver(void *ud)
{
    wh_call *c = ud;
    c->done(c->user, c->outcome, c->result, c->retry_after_ms, c->error);
    call_free(c);
}

/* A code start() returned that says "try later", not "this call is wrong". */
static int transient(int rc)
{
    return rc == WH_ERR_IO || rc == WH_ERR_BUSY || rc == WH_ERR_TIMEOUT || rc == WH_ERR_NOMEM;
}

static void start(void *ud)
{
    wh_call *c = ud;
    char why[200];
    /* the arguments as the operation declares them: rendered text brought to its types,
       defaults filled in. The same rendering fails every time: a permanent failure. */
    if (wh_args_normalize(c->op->args, c->args, why, sizeof why) != 0) {
        wh_call_complete(c, WH_CALL_FAIL, NULL, 0, why);
        return;
    }
    int rc = c->op->start(c->inst->state, c, c->args);
    if (rc < 0 && !atomic_load(&c->completed)) {
        snprintf(why, sizeof why, "%s.%s could not start: %s", c->inst->name, c->op->name,
                 wh_strerror(rc));
        wh_call_complete(c, transient(rc) ? WH_CALL_RETRY : WH_CALL_FAIL, NULL, 0, why);
    }
}

int wh_call_run(wh_instance *inst, const char *opname, const json_t *args, const char *key,
                const json_t *cursor, int attempt, wh_call_done done, void *user)
{
    const wh_operation *op = wh_plugin_op(inst->plugin, opname);
    if (!op) {
        return WH_ERR_NOT_FOUND;
    }
    if (!inst->svc || !inst->svc->http) {
        return WH_ERR_STATE;
    }
    wh_call *c = calloc(1, sizeof *c);
    if (!c) {
        return WH_ERR_NOMEM;
    }
    c->inst = inst;
    c->op = op;
    c->args = args ? json_deep_copy(args) : json_object();
    c->cursor = cursor ? json_deep_copy(cursor) : NULL;
    c->key = strdup(key ? key : "");
    c->attempt = attempt > 0 ? attempt : 1;
    c->done = done;
    c->user = user;
    if (!c->args || !c->key || (cursor && !c->cursor)) {
        call_free(c);
        return WH_ERR_NOMEM;
    }
    int rc = wh_http_post(inst->svc->http, 0, start, c);
    if (rc != WH_OK) {
        call_free(c);
    }
    return rc;
}

const char *wh_call_key(const wh_call *c)
{
    return c->key;
}

const json_t *wh_call_cursor(const wh_call *c)
{
    return c->cursor;
}

int wh_call_attempt(const wh_call *c)
{
    return c->attempt;
}

int wh_call_complete(wh_call *c, wh_outcome outcome, json_t *result, long retry_after_ms,
                     const char *error)
{
    if (!c) {
        json_decref(result);
        return WH_ERR_INVALID;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&c->completed, &expected, 1)) {
        wh_error(c->inst->name, "operation %s completed twice (connector bug); ignored",
                 c->op->name);
        json_decref(result);
        return WH_ERR_STATE;
    }
    /* recorded, published and kept in a run's context as JSON text: keep it readable */
    if (result && wh_json_readable(result) != 0) {
        json_decref(result);
        result = NULL;
        outcome = WH_CALL_FAIL;
        error = "the result nests more than 2000 levels";
    }
    c->outcome = outcome;
    c->result = result;
    c->retry_after_ms = retry_after_ms;
    c->error = error ? strdup(error) : NULL;
    /* Always finish through the queue: when called inside start() or an HTTP
     * callback, the caller's stack still uses the call. */
    if (wh_http_post(c->inst->svc->http, 0, deliver, c) != WH_OK) {
        deliver(c); /* the delivery thread is gone (shutdown): finish here */
    }
    return WH_OK;
}
