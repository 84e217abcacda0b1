/*
 * delivery.c — executes calls published on `out/<instance>`:
 *   {"call": ID, "instance": I, "op": O, "args": {…}, "key": K, "reply_to": TOPIC}
 * and publishes the outcome on reply_to:
 *   {"call": ID, "outcome": "ok"|"failed", "result": …, "error": …, "attempts": N}
 * Retries (connection errors, timeouts, 5xx, 429 — whatever the connector
 * reports as RETRY) wait with exponential backoff and jitter, or the
 * connector's Retry-After, on the delivery thread's timers: nothing spins.
 * It keeps no state beyond the calls in flight; durability is the store's.
 */
#include "delivery.h"
#include "call.h"
#include "http_client.h"
#include "log.h"
#include "util.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct wh_delivery {
    wh_delivery_opts opts;
    wh_instances *instances;
    wh_pub *pub;
    wh_sub *sub;
    pthread_t thread;
    int started;
    atomic_int stopping;
};

typedef struct job {
    wh_delivery *d;
    wh_instance *inst;
    json_t *msg; /* the request as received */
    int attempt;
} job;

static void job_free(job *j)
{
    json_decref(j->msg);
    free(j);
}

static void publish_outcome(job *j, const char *outcome, const json_t *result, const char *error)
{
    const char *reply_to = json_string_value(json_object_get(j->msg, "reply_to"));
    if (!reply_to) {
        return;
    }
    json_t *out = json_pack("{s:O, s:s, s:O, s:s?, s:i}", "call",
                            json_object_get(j->msg, "call"), "outcome", outcome, "result",
                            result ? result : json_null(), "error", error, "attempts",
                            j->attempt);
    if (!out || wh_pub_send(j->d->pub, reply_to, out) != 0) {
        wh_error("delivery", "cannot publish the outcome of call %s",
                 json_string_value(json_object_get(j->msg, "call")));
    }
    json_decref(out);
}

static void attempt(void *ud);

static int64_t backoff_ms(const wh_delivery_opts *o, int attempt_no)
{
    int64_t d = o->backoff_base_ms;
    for (int i = 1; i < attempt_no && d < o->backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > o->backoff_max_ms) {
        d = o->backoff_max_ms;
    }
    /* full jitter on the upper half: spreads retries of a burst without starving any */
    unsigned r = 0;
    RAND_bytes((unsigned char *)&r, sizeof r);
    return d / 2 + (int64_t)(r % (uint64_t)(d / 2 + 1));
}

static void on_done(void *user, wh_outcome outcome, const json_t *result, long retry_after_ms,
                    const char *error)
{
    job *j = user;
    const char *op = json_string_value(json_object_get(j->msg, "op"));
    if (outcome == WH_CALL_OK) {
        publish_outcome(j, "ok", result, NULL);
        job_free(j);
        return;
    }
    if (outcome == WH_CALL_RETRY && j->attempt < j->d->opts.max_attempts &&
        !atomic_load(&j->d->stopping)) {
        int64_t delay = retry_after_ms > 0 ? retry_after_ms : backoff_ms(&j->d->opts, j->attempt);
        wh_info(j->inst->name, "%s attempt %d failed, retrying in %lld ms: %s", op, j->attempt,
                (long long)delay, error ? error : "transient error");
        j->attempt++;
        if (wh_http_post(j->inst->svc->http, delay, attempt, j) == WH_OK) {
            return;
        }
    }
    wh_warn(j->inst->name, "%s failed after %d attempt%s: %s", op, j->attempt,
            j->attempt == 1 ? "" : "s", error ? error : "failed");
    publish_outcome(j, "failed", result, error ? error : "failed");
    job_free(j);
}

static void attempt(void *ud)
{
    job *j = ud;
    int rc = wh_call_run(j->inst, json_string_value(json_object_get(j->msg, "op")),
                         json_object_get(j->msg, "args"),
                         json_string_value(json_object_get(j->msg, "key")), NULL, j->attempt,
                         on_done, j);
    if (rc != WH_OK) {
        publish_outcome(j, "failed", NULL, wh_strerror(rc));
        job_free(j);
    }
}

static void take(wh_delivery *d, const char *raw, size_t len)
{
    json_t *msg = json_loadb(raw, len, 0, NULL);
    const char *iname = json_string_value(json_object_get(msg, "instance"));
    const char *op = json_string_value(json_object_get(msg, "op"));
    wh_instance *inst = iname ? wh_instances_get(d->instances, iname) : NULL;
    job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(msg);
        return;
    }
    j->d = d;
    j->inst = inst;
    j->msg = msg;
    j->attempt = 1;
    if (!msg || !inst || !op || !json_is_string(json_object_get(msg, "call"))) {
        wh_warn("delivery", "dropped a malformed call request (instance=%s op=%s)",
                iname ? iname : "?", op ? op : "?");
        if (msg && json_is_string(json_object_get(msg, "call"))) {
            publish_outcome(j, "failed", NULL, "no such instance or operation");
        }
        job_free(j);
        return;
    }
    if (wh_http_post(inst->svc->http, 0, attempt, j) != WH_OK) {
        publish_outcome(j, "failed", NULL, "wirehub is stopping");
        job_free(j);
    }
}

static void *delivery_main(void *arg)
{
    wh_delivery *d = arg;
    while (!atomic_load(&d->stopping)) {
        char *topic, *raw;
        size_t len;
        int got = wh_sub_recv_raw(d->sub, 200, &topic, &raw, &len);
        if (got < 0) {
            break;
        }
        if (got == 1) {
            take(d, raw, len);
            free(topic);
            free(raw);
        }
    }
    return NULL;
}

wh_delivery *wh_delivery_new(const wh_delivery_opts *opts, wh_instances *instances, void *zctx,
                             const wh_bus_ends *ends, char *err, size_t errsize)
{
    wh_delivery *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    if (opts) {
        d->opts = *opts;
    }
    if (d->opts.max_attempts <= 0) {
        d->opts.max_attempts = 8;
    }
    if (d->opts.backoff_base_ms <= 0) {
        d->opts.backoff_base_ms = 500;
    }
    if (d->opts.backoff_max_ms <= 0) {
        d->opts.backoff_max_ms = 300000;
    }
    d->instances = instances;
    const char *prefixes[] = {"out/", NULL};
    d->pub = wh_pub_new(zctx, ends, 5000);
    d->sub = wh_sub_new(zctx, ends, prefixes, 5000);
    if (!d->pub || !d->sub) {
        snprintf(err, errsize, "cannot join the bus");
        goto fail;
    }
    if (pthread_create(&d->thread, NULL, delivery_main, d) != 0) {
        snprintf(err, errsize, "cannot start the delivery listener");
        goto fail;
    }
    d->started = 1;
    return d;
fail:
    wh_delivery_destroy(&d);
    return NULL;
}

void wh_delivery_stop(wh_delivery *d)
{
    if (!d) {
        return;
    }
    atomic_store(&d->stopping, 1);
    if (d->started) {
        pthread_join(d->thread, NULL);
        d->started = 0;
    }
    wh_sub_destroy(&d->sub);
}

void wh_delivery_destroy(wh_delivery **pd)
{
    wh_delivery *d = pd ? *pd : NULL;
    if (!d) {
        return;
    }
    wh_delivery_stop(d);
    wh_pub_destroy(&d->pub);
    free(d);
    *pd = NULL;
}
