/*
 * delivery.c — executes the outbox. A call arrives whole on `out/<instance>`
 * (or from a scan of the outbox: at start, and every few seconds for calls a
 * person re-queued with `wirehub outbox retry`). It starts at once unless its
 * instance is at its concurrency cap, then waits in the instance's FIFO; past
 * `queue_max` waiting calls, later ones wait only in the outbox (memory stays
 * bounded while an API is down) and are read back oldest first as room frees.
 *
 * Each outcome is written to the outbox row first (attempts, state, result,
 * last error, next attempt) and only after that commit is the engine told
 * (`done/engine`) or the retry timer set, so a crash never loses an outcome
 * the engine acted on. Retries (whatever the connector reports as RETRY)
 * wait with exponential backoff and jitter, or the connector's Retry-After,
 * on the delivery thread's timers: nothing spins. After `max_attempts`, or
 * at once for a permanent failure, the call is dead: `in/hub/dead_letter`.
 */
#include "delivery.h"
#include "call.h"
#include "envelope.h"
#include "http_client.h"
#include "log.h"
#include "sqlbatch.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

typedef struct job {
    struct job *next; /* the waiting FIFO */
    struct wh_delivery *d;
    wh_instance *inst;
    json_t *call; /* {call, run, instance, op, args, key, attempts} */
    int attempt;  /* the attempt running now (1-based) */
    /* the outcome being recorded */
    const char *state;
    json_t *result;
    char *error;
    int64_t delay_ms;
    int permanent; /* dead at once: the API refused it for good (not retries run out) */
    json_t *sql;
    int record_tries; /* failed writes of this outcome so far (a full disk, a lost file) */
} job;

/* An instance's calls: how many are in flight, and the FIFO of those waiting
   for its concurrency cap. Starting or finishing a call touches only its lane. */
typedef struct lane {
    wh_instance *inst;
    int cap;       /* `concurrency` */
    int queue_max; /* `queue_max`: most calls waiting in memory */
    int busy;
    int queued;
    int backing_off; /* calls waiting out a retry's delay: not in flight, not in the FIFO */
    int spilled; /* calls were left in the outbox: refill from it, oldest first */
    job *queue, **queue_tail;
} lane;

struct wh_delivery {
    wh_delivery_opts opts;
    wh_instances *instances;
    wh_store *store;
    wh_pub *pub;
    wh_sub *sub;
    pthread_t thread;
    int started;
    atomic_int stopping;
    pthread_mutex_t lock;
    json_t *inflight; /* call id → true: started or waiting, not yet finished */
    json_t *recent;   /* call id → when it finished, kept only while a scan runs: a
                         scan that read it as pending just before it finished must
                         not send it again */
    int scanning;
    size_t nlanes;
    lane *lanes; /* one per instance, in the instances' order */
};

static const char *job_id(const job *j)
{
    return json_string_value(json_object_get(j->call, "call"));
}

static void job_free(job *j)
{
    json_decref(j->call);
    json_decref(j->result);
    json_decref(j->sql);
    free(j->error);
    free(j);
}

static int cap_of(const wh_instance *inst)
{
    json_int_t c = json_integer_value(json_object_get(inst->config, "concurrency"));
    return c > 0 ? (int)c : 16;
}

static int queue_max_of(const wh_instance *inst)
{
    json_int_t c = json_integer_value(json_object_get(inst->config, "queue_max"));
    return c > 0 ? (int)(c < 1000000 ? c : 1000000) : 1000;
}

/* An API's Retry-After is honoured up to this: a far-off one (a day, a date
   in 2100) would otherwise park the call for as long, counted as one attempt. */
#define RETRY_AFTER_MAX_MS (3600 * 1000L)

static int max_attempts_of(const wh_instance *inst)
{
    json_int_t c = json_integer_value(json_object_get(inst->config, "max_attempts"));
    return c > 0 ? (int)c : 8;
}

static int64_t backoff_ms(const wh_delivery_opts *o, int attempt_no)
{
    int64_t d = o->backoff_base_ms;
    for (int i = 1; i < attempt_no && d < o->backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > o->backoff_max_ms) {
        d = o->backoff_max_ms;
    }
    /* jitter over the upper half: spreads a burst's retries without starving any. Not a
     * secret, so the kernel's getrandom (never blocking) will do: RAND_bytes would initialise
     * OpenSSL (config, providers: about 3 MiB) in a hub that otherwise may never need it. */
    unsigned r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        r = (unsigned)wh_mono_ms() * 2654435761u; /* pool not ready at boot: any spread helps */
    }
    return d / 2 + (int64_t)(r % (uint64_t)(d / 2 + 1));
}

static void attempt(void *ud);
static void requeue(void *ud);
static void pump(struct wh_delivery *d, lane *ln);

static lane *lane_of(struct wh_delivery *d, const wh_instance *inst)
{
    for (size_t i = 0; i < d->nlanes; i++) {
        if (d->lanes[i].inst == inst) {
            return &d->lanes[i];
        }
    }
    return NULL;
}

/* Mark finished and let a waiting call of the same instance go. Caller holds no lock. */
static void release(struct wh_delivery *d, job *j)
{
    lane *ln = lane_of(d, j->inst);
    pthread_mutex_lock(&d->lock);
    json_object_del(d->inflight, job_id(j));
    if (d->scanning) {
        json_object_set_new(d->recent, job_id(j), json_integer(wh_now_ms()));
    }
    if (ln && ln->busy > 0) {
        ln->busy--;
    }
    pthread_mutex_unlock(&d->lock);
    if (ln) {
        pump(d, ln);
    }
}

/* Whether the call's run was started by hub/dead_letter or hub/call_failed: its own
   dead letter is then not announced, or a rule alerting on dead letters whose alert
   fails would start itself again without end. */
static int started_by_failure(struct wh_delivery *d, const job *j)
{
    const char *run = json_string_value(json_object_get(j->call, "run"));
    json_t *rows = run && strncmp(run, "await:", 6) != 0
                       ? wh_store_rows(d->store,
                                       "SELECT json_extract(ctx, '$.event.source') AS source, "
                                       "json_extract(ctx, '$.event.kind') AS kind FROM runs "
                                       "WHERE id = ?1",
                                       json_pack("[s]", run))
                       : NULL;
    json_t *row = json_array_get(rows, 0);
    const char *source = json_string_value(json_object_get(row, "source"));
    const char *kind = json_string_value(json_object_get(row, "kind"));
    int yes = source && kind && strcmp(source, "hub") == 0 &&
              (strcmp(kind, "dead_letter") == 0 || strcmp(kind, "call_failed") == 0);
    json_decref(rows);
    return yes;
}

static void publish_outcome(struct wh_delivery *d, job *j)
{
    json_t *msg = json_pack("{s:O, s:O, s:s, s:O?, s:s?, s:i, s:b}", "call",
                            json_object_get(j->call, "call"), "run",
                            json_object_get(j->call, "run"), "outcome",
                            strcmp(j->state, "done") == 0 ? "ok" : "failed", "result", j->result,
                            "error", j->error, "attempts", j->attempt, "permanent",
                            j->permanent);
    /* polls belong to the await part, every other call to a run of the engine */
    const char *run = json_string_value(json_object_get(j->call, "run"));
    const char *topic = run && strncmp(run, "await:", 6) == 0 ? "done/await" : "done/engine";
    if (!msg || wh_pub_send(d->pub, topic, msg) != 0) {
        wh_error("delivery", "cannot tell the engine about call %s (it learns at restart)",
                 job_id(j));
    }
    json_decref(msg);
    int poll = run && strncmp(run, "await:", 6) == 0;
    if (strcmp(j->state, "dead") == 0 && poll) {
        /* a poll's failure is the await's business (the next poll, or the end of polling
           for good); announcing it would start a rule on hub/dead_letter for every poll,
           and an await opened by such a rule would feed itself */
        wh_warn(j->inst->name, "poll %s is a dead letter (not announced as hub/dead_letter)",
                job_id(j));
    } else if (strcmp(j->state, "dead") == 0 && started_by_failure(d, j)) {
        wh_warn(j->inst->name, "dead letter %s not announced as hub/dead_letter: its rule was "
                "started by a failure event (announcing it would loop)", job_id(j));
    } else if (strcmp(j->state, "dead") == 0) {
        /* with the API's last answer when there was one (its error body, for alerts) */
        json_t *data = json_pack("{s:O, s:O, s:O, s:O, s:i, s:s?, s:O?}", "call",
                                 json_object_get(j->call, "call"), "run",
                                 json_object_get(j->call, "run"), "instance",
                                 json_object_get(j->call, "instance"), "operation",
                                 json_object_get(j->call, "op"), "attempts", j->attempt, "error",
                                 j->error, "result", j->result);
        json_t *env = data ? wh_env_new("hub", "dead_letter", data) : NULL;
        if (env) {
            wh_pub_send(d->pub, "in/hub/dead_letter", env);
        } else {
            json_decref(data);
        }
        json_decref(env);
    }
}

static int record(sqlite3 *db, void *ud);
static void recorded(void *ud, int rc);

/* Write the outcome again (the timer of a failed write; the delivery thread). */
static void rerecord(void *ud)
{
    job *j = ud;
    if (atomic_load(&j->d->stopping)) {
        recorded(j, WH_ERR_STATE); /* given up: the row stays pending for the next start */
        return;
    }
    if (wh_store_write(j->d->store, record, recorded, j) != WH_OK) {
        recorded(j, WH_ERR_BUSY);
    }
}

/* The outcome is durable: now act on it. Runs on the store's writer thread. */
static void recorded(void *ud, int rc)
{
    job *j = ud;
    struct wh_delivery *d = j->d;
    if (rc != WH_OK) {
        /* The call went out and its outcome is known: write that again, waiting longer
           each time (1 s, 2 s, … 30 s), rather than let a scan send the call again
           every 2 s while the disk is full. Should the hub stop first, the row still
           says pending and the next start sends it again (at least once). */
        int64_t delay = (int64_t)1000 << (j->record_tries < 5 ? j->record_tries : 5);
        delay = delay > 30000 ? 30000 : delay;
        if (j->record_tries++ == 0) {
            wh_error("delivery", "cannot record the outcome of %s: %s; trying again, the call "
                     "is not sent again meanwhile", job_id(j), wh_strerror(rc));
        }
        if (rc != WH_ERR_STATE && !atomic_load(&d->stopping) &&
            wh_http_post(j->inst->svc->http, delay, rerecord, j) == WH_OK) {
            return; /* the timer owns it */
        }
        release(d, j);
        job_free(j);
        return;
    }
    if (j->record_tries) {
        wh_info("delivery", "recorded the outcome of %s after %d failed write(s)", job_id(j),
                j->record_tries);
    }
    if (strcmp(j->state, "pending") == 0) {
        json_decref(j->sql);
        j->sql = NULL;
        json_decref(j->result);
        j->result = NULL;
        free(j->error);
        j->error = NULL;
        j->attempt++;
        /* Waiting out the delay is not being in flight: the slot goes to the next call
           (a call backing off from a dead endpoint or a long Retry-After must not hold
           up the instance's healthy calls). The timer puts it back in the FIFO. */
        lane *ln = lane_of(d, j->inst);
        pthread_mutex_lock(&d->lock);
        if (ln && ln->busy > 0) {
            ln->busy--;
        }
        /* At most half of queue_max wait out their delay in memory; past that a call
           waits in the outbox, whose row already says when (next_at_ms), and a refill
           takes it when due: memory stays bounded, and calls backing off never fill
           the lane so that healthy ones behind them cannot start. */
        int keep = ln && ln->backing_off < (ln->queue_max + 1) / 2;
        if (keep) {
            ln->backing_off++;
        } else if (ln) {
            ln->spilled = 1;
            json_object_del(d->inflight, job_id(j));
        }
        pthread_mutex_unlock(&d->lock);
        if (ln && !keep) {
            job_free(j);
            pump(d, ln);
            return;
        }
        if (!atomic_load(&d->stopping) &&
            wh_http_post(j->inst->svc->http, j->delay_ms, requeue, j) == WH_OK) {
            if (ln) {
                pump(d, ln);
            }
            return; /* the retry timer owns it */
        }
        /* stopping: the row stays pending for the next start */
        pthread_mutex_lock(&d->lock);
        if (ln) {
            ln->backing_off--;
        }
        json_object_del(d->inflight, job_id(j));
        pthread_mutex_unlock(&d->lock);
        job_free(j);
        return;
    }
    publish_outcome(d, j);
    release(d, j);
    job_free(j);
}

static int record(sqlite3 *db, void *ud)
{
    return wh_sqlbatch_exec(db, ((job *)ud)->sql);
}

static void on_outcome(void *user, wh_outcome outcome, const json_t *result, long retry_after_ms,
                       const char *error)
{
    job *j = user;
    struct wh_delivery *d = j->d;
    const char *op = json_string_value(json_object_get(j->call, "op"));
    int64_t now = wh_now_ms();
    if (outcome == WH_CALL_RETRY && atomic_load(&d->stopping)) {
        /* cut short by our own shutdown: not the API's fault, not an attempt */
        release(d, j);
        job_free(j);
        return;
    }
    j->result = result ? json_incref((json_t *)result) : NULL;
    j->error = error ? strdup(error) : NULL;
    if (outcome == WH_CALL_OK) {
        j->state = "done";
    } else if (outcome == WH_CALL_RETRY && j->attempt < max_attempts_of(j->inst)) {
        j->state = "pending";
        j->delay_ms = retry_after_ms > 0 ? retry_after_ms : backoff_ms(&d->opts, j->attempt);
        if (j->delay_ms > RETRY_AFTER_MAX_MS) {
            wh_warn(j->inst->name, "%s: Retry-After of %lld s shortened to an hour", op,
                    (long long)(j->delay_ms / 1000));
            j->delay_ms = RETRY_AFTER_MAX_MS;
        }
        wh_info(j->inst->name, "%s attempt %d failed, next in %lld ms: %s", op, j->attempt,
                (long long)j->delay_ms, error ? error : "transient error");
    } else {
        j->state = "dead";
        j->permanent = outcome != WH_CALL_RETRY;
        wh_warn(j->inst->name, "%s is a dead letter after %d attempt%s: %s call=%s", op,
                j->attempt, j->attempt == 1 ? "" : "s", error ? error : "failed", job_id(j));
    }
    j->sql = json_array();
    wh_sqlbatch_add(j->sql,
                    "UPDATE outbox SET state = ?1, attempts = ?2, next_at_ms = ?3, last_error = "
                    "?4, result = ?5, updated_ms = ?6 WHERE id = ?7",
                    json_pack("[s, i, I, s?, O?, I, s]", j->state, j->attempt,
                              (json_int_t)(now + j->delay_ms), j->error, j->result,
                              (json_int_t)now, job_id(j)));
    if (wh_store_write(d->store, record, recorded, j) != WH_OK) {
        recorded(j, WH_ERR_BUSY);
    }
}

static void attempt(void *ud)
{
    job *j = ud;
    const json_t *cursor = json_object_get(j->call, "cursor");
    int rc = wh_call_run(j->inst, json_string_value(json_object_get(j->call, "op")),
                         json_object_get(j->call, "args"),
                         json_string_value(json_object_get(j->call, "key")),
                         json_is_null(cursor) ? NULL : cursor, j->attempt, on_outcome, j);
    if (rc != WH_OK) {
        on_outcome(j, WH_CALL_FAIL, NULL, 0,
                   rc == WH_ERR_NOT_FOUND ? "no such operation" : wh_strerror(rc));
    }
}

/* Start what the lane's cap allows from its FIFO. */
static void pump(struct wh_delivery *d, lane *ln)
{
    pthread_mutex_lock(&d->lock);
    while (ln->queue && ln->busy < ln->cap && !atomic_load(&d->stopping)) {
        job *j = ln->queue;
        ln->queue = j->next;
        if (!ln->queue) {
            ln->queue_tail = &ln->queue;
        }
        j->next = NULL;
        ln->queued--;
        ln->busy++;
        if (wh_http_post(j->inst->svc->http, 0, attempt, j) != WH_OK) {
            /* the row stays pending: the next scan (or start) offers it again */
            ln->busy--;
            json_object_del(d->inflight, job_id(j));
            job_free(j);
        }
    }
    pthread_mutex_unlock(&d->lock);
}

/* A retry's delay is over: the call goes back to the head of its lane's FIFO (it
   was started before those waiting there) and starts when the cap allows. Runs on
   the delivery's HTTP thread, as timers do. */
static void requeue(void *ud)
{
    job *j = ud;
    struct wh_delivery *d = j->d;
    lane *ln = lane_of(d, j->inst);
    pthread_mutex_lock(&d->lock);
    if (ln) {
        ln->backing_off--;
    }
    if (!ln || atomic_load(&d->stopping)) {
        /* the row stays pending for the next start */
        json_object_del(d->inflight, job_id(j));
        pthread_mutex_unlock(&d->lock);
        job_free(j);
        return;
    }
    j->next = ln->queue;
    ln->queue = j;
    if (!j->next) {
        ln->queue_tail = &j->next;
    }
    ln->queued++;
    pthread_mutex_unlock(&d->lock);
    pump(d, ln);
}

/*
 * A call to run (from the bus or a refill). It waits in its lane's FIFO unless
 * the lane already holds queue_max calls, or holds back older calls in the
 * outbox: then it stays only in the outbox (where it is durable) and the lane
 * refills from there, oldest first. Returns 0 when taken (or not needed: in
 * memory already, malformed), 1 when left in the outbox. Ownership: takes call.
 */
static int take(struct wh_delivery *d, json_t *call)
{
    const char *id = json_string_value(json_object_get(call, "call"));
    const char *iname = json_string_value(json_object_get(call, "instance"));
    wh_instance *inst = iname ? wh_instances_get(d->instances, iname) : NULL;
    lane *ln = inst ? lane_of(d, inst) : NULL;
    if (!id || !ln || !json_is_string(json_object_get(call, "op"))) {
        /* only another process can publish these (the bus has no authentication):
         * one line per 10 s, however many */
        static int64_t said_ms;
        static unsigned long dropped;
        dropped++;
        int64_t now = wh_mono_ms();
        if (!said_ms || now - said_ms >= 10000) {
            wh_warn("delivery", "dropped %lu malformed call(s) from the bus (last instance=%s)",
                    dropped, wh_log_q(iname ? iname : "?"));
            said_ms = now;
            dropped = 0;
        }
        json_decref(call);
        return 0;
    }
    pthread_mutex_lock(&d->lock);
    if (json_object_get(d->inflight, id)) {
        pthread_mutex_unlock(&d->lock);
        json_decref(call);
        return 0;
    }
    /* calls backing off count too: memory stays bounded while an API is down */
    if (ln->spilled || ln->queued + ln->backing_off >= ln->queue_max) {
        if (!ln->spilled) {
            wh_debug("delivery", "%s: %d calls waiting; later ones wait in the outbox",
                     inst->name, ln->queued);
        }
        ln->spilled = 1;
        pthread_mutex_unlock(&d->lock);
        json_decref(call);
        return 1;
    }
    job *j = calloc(1, sizeof *j);
    if (!j || json_object_set_new(d->inflight, id, json_true()) != 0) {
        ln->spilled = 1; /* the outbox still has it */
        pthread_mutex_unlock(&d->lock);
        free(j);
        json_decref(call);
        return 1;
    }
    j->d = d;
    j->inst = inst;
    j->call = call;
    j->attempt = (int)json_integer_value(json_object_get(call, "attempts")) + 1;
    *ln->queue_tail = j;
    ln->queue_tail = &j->next;
    ln->queued++;
    pthread_mutex_unlock(&d->lock);
    pump(d, ln);
    return 0;
}

typedef struct due_query {
    const char *instance;
    int limit;
    json_t *rows;
} due_query;

static int read_due(sqlite3 *db, void *ud)
{
    due_query *q = ud;
    return wh_sql_query(db,
                        "SELECT o.id AS call, o.run_id AS run, o.instance, o.op, o.args, o.key, "
                        "o.attempts, o.updated_ms, c.cursor FROM outbox o LEFT JOIN "
                        /* written so that c is found by its key, not scanned per row */
                        "conversations c ON substr(o.run_id, 1, 6) = 'await:' AND c.id = "
                        "substr(o.run_id, 7) WHERE o.state = 'pending' AND o.next_at_ms "
                        "<= ?1 AND o.instance = ?2 ORDER BY o.next_at_ms, o.id LIMIT ?3",
                        json_pack("[I, s, i]", (json_int_t)wh_now_ms(), q->instance, q->limit),
                        &q->rows);
}

/*
 * Take a lane's due calls from the outbox, oldest first, until its queue is
 * full: at start, every rescan_ms (for calls re-queued by `wirehub outbox
 * retry`), and when a lane that left calls in the outbox has room again.
 * Runs on the delivery thread only.
 */
static void refill(struct wh_delivery *d, lane *ln)
{
    /* From before the read until the rows are taken, finished calls are noted:
       a call that finishes after the read saw it pending is not sent again.
       Calls arriving from now on queue normally (the read may see them too:
       the in-flight set keeps them from running twice). */
    pthread_mutex_lock(&d->lock);
    d->scanning = 1;
    ln->spilled = 0;
    /* what is in memory may come first in the rows: read past it */
    due_query q = {ln->inst->name, ln->cap + ln->queued + ln->backing_off + ln->queue_max, NULL};
    pthread_mutex_unlock(&d->lock);
    if (wh_store_read(d->store, read_due, &q) != WH_OK) {
        q.rows = NULL;
        pthread_mutex_lock(&d->lock);
        ln->spilled = 1; /* try again at the next turn */
        pthread_mutex_unlock(&d->lock);
    }
    size_t i;
    json_t *row;
    json_array_foreach(q.rows, i, row)
    {
        pthread_mutex_lock(&d->lock);
        /* unless it was re-queued (outbox retry) after it finished */
        const json_t *fin = json_object_get(d->recent, json_string_value(json_object_get(row, "call")));
        int done_lately = fin && json_integer_value(json_object_get(row, "updated_ms")) <=
                                     json_integer_value(fin);
        int known = json_object_get(d->inflight,
                                    json_string_value(json_object_get(row, "call"))) != NULL;
        pthread_mutex_unlock(&d->lock);
        if (done_lately || known) {
            continue; /* finished after this read, or in memory already */
        }
        json_t *args = json_loads(json_string_value(json_object_get(row, "args")),
                                  JSON_DECODE_ANY, NULL);
        json_object_set_new(row, "args", args ? args : json_object());
        const char *cursor = json_string_value(json_object_get(row, "cursor"));
        json_object_set_new(row, "cursor",
                            cursor ? json_loads(cursor, JSON_DECODE_ANY, NULL) : json_null());
        if (!json_object_get(row, "cursor")) {
            json_object_set_new(row, "cursor", json_null());
        }
        if (take(d, json_incref(row)) == 1) {
            break; /* full: the rest stay in the outbox, and the lane is marked to refill */
        }
    }
    if (json_array_size(q.rows) >= (size_t)q.limit) {
        /* a full page: more may wait in the outbox (the calls taken started at once
           and never filled the queue, so take() did not mark it) — look again as
           soon as there is room, not at the next rescan */
        pthread_mutex_lock(&d->lock);
        ln->spilled = 1;
        pthread_mutex_unlock(&d->lock);
    }
    json_decref(q.rows);
    pthread_mutex_lock(&d->lock);
    d->scanning = 0;
    json_object_clear(d->recent);
    pthread_mutex_unlock(&d->lock);
}

static void scan(struct wh_delivery *d)
{
    for (size_t i = 0; i < d->nlanes; i++) {
        refill(d, &d->lanes[i]);
    }
}

/* Refill the lanes that left calls in the outbox and have room again. Returns
   1 when some lane still has calls in the outbox. */
static int refill_spilled(struct wh_delivery *d)
{
    int any = 0;
    for (size_t i = 0; i < d->nlanes; i++) {
        lane *ln = &d->lanes[i];
        pthread_mutex_lock(&d->lock);
        int go = ln->spilled && ln->queued + ln->backing_off <= ln->queue_max / 2;
        pthread_mutex_unlock(&d->lock);
        if (go) {
            refill(d, ln);
        }
        pthread_mutex_lock(&d->lock);
        any |= ln->spilled;
        pthread_mutex_unlock(&d->lock);
    }
    return any;
}

static void *delivery_main(void *arg)
{
    struct wh_delivery *d = arg;
    scan(d); /* calls left pending by the last run */
    int64_t last_scan = wh_mono_ms();
    int spilled = refill_spilled(d);
    while (!atomic_load(&d->stopping)) {
        char *topic, *raw;
        size_t len;
        /* a lane waiting for room is looked at often; otherwise the bus wakes us */
        int got = wh_sub_recv_raw(d->sub, spilled ? 20 : 200, &topic, &raw, &len);
        if (got < 0) {
            break;
        }
        if (got == 1) {
            json_t *call = json_loadb(raw, len, 0, NULL);
            if (call) {
                take(d, call);
            }
            free(topic);
            free(raw);
        }
        if (wh_mono_ms() - last_scan >= d->opts.rescan_ms) {
            scan(d);
            last_scan = wh_mono_ms();
        }
        spilled = refill_spilled(d);
    }
    return NULL;
}

wh_delivery *wh_delivery_new(const wh_delivery_opts *opts, wh_instances *instances,
                             wh_store *store, void *zctx, const wh_bus_ends *ends, char *err,
                             size_t errsize)
{
    struct wh_delivery *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    if (opts) {
        d->opts = *opts;
    }
    if (d->opts.backoff_base_ms <= 0) {
        d->opts.backoff_base_ms = 500;
    }
    if (d->opts.backoff_max_ms <= 0) {
        d->opts.backoff_max_ms = 300000;
    }
    if (d->opts.rescan_ms <= 0) {
        d->opts.rescan_ms = 2000;
    }
    d->instances = instances;
    d->store = store;
    pthread_mutex_init(&d->lock, NULL);
    d->inflight = json_object();
    d->recent = json_object();
    d->nlanes = instances ? instances->n : 0;
    d->lanes = calloc(d->nlanes ? d->nlanes : 1, sizeof *d->lanes);
    if (!d->inflight || !d->recent || !d->lanes) {
        d->nlanes = 0;
        snprintf(err, errsize, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < d->nlanes; i++) {
        d->lanes[i].inst = instances->v[i];
        d->lanes[i].cap = cap_of(instances->v[i]);
        d->lanes[i].queue_max = queue_max_of(instances->v[i]);
        d->lanes[i].queue_tail = &d->lanes[i].queue;
    }
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
    struct wh_delivery *d = pd ? *pd : NULL;
    if (!d) {
        return;
    }
    wh_delivery_stop(d);
    /* calls still queued behind a cap never started: they stay pending in the outbox */
    for (size_t i = 0; i < d->nlanes; i++) {
        while (d->lanes[i].queue) {
            job *j = d->lanes[i].queue;
            d->lanes[i].queue = j->next;
            job_free(j);
        }
    }
    free(d->lanes);
    wh_pub_destroy(&d->pub);
    json_decref(d->inflight);
    json_decref(d->recent);
    pthread_mutex_destroy(&d->lock);
    free(d);
    *pd = NULL;
}
