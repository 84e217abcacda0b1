/*
 * engine.c — events in, durable runs out. One thread owns every run in
 * memory; the store owns the truth.
 *
 * The engine works in passes: it drains what the bus has (events and call
 * outcomes, up to a batch), advances runs in memory, and writes everything
 * the pass decided — new runs, their steps, outbox rows for calls, events
 * marked done — in ONE store transaction. Only after that commit does it
 * publish: call wake-ups for delivery, answers for waiting callers, failure
 * events. So a caller hears "I told the team" only once the calls are in the
 * outbox, and a crash at any moment leaves either the event still `new`
 * (processed again at start) or the whole pass committed.
 *
 * A run is one firing of a rule: its steps execute in order. A `call` step
 * puts the call in the outbox and waits for its outcome (bound under `as:`);
 * a `respond` step answers a waiting caller; the rule's own `respond` is sent
 * with the pass that started the run. A caller whose event started no run
 * that answers hears "no response" at once and gets its connector's fallback.
 */
#include "engine.h"
#include "api.h"
#include "envelope.h"
#include "log.h"
#include "sqlbatch.h"
#include "util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define BUCKETS 4096
#define PASS_MAX 256
/* Runs waiting for a call are kept in memory up to this many; past it (a
   backlog at an API) they wait only in the store and are read back when
   their call finishes, so memory stays bounded. Runs a caller waits on stay. */
#define WAITING_MAX 1000

/* Shared by the runs of one event that a caller waits for. */
typedef struct waiter {
    char *reply_to;
    char event_id[33];
    int responded;
    int refs;
} waiter;

typedef struct run {
    struct run *next;
    char id[64];       /* "<event id>.<n>": stable, so keys survive restarts */
    char call_id[80];  /* the outbox row it waits for: "<run id>.<step>" */
    wh_rules *rules;
    const wh_rule *rule;
    json_t *ctx;
    int ctx_saved; /* the runs row holds this ctx: later saves leave it out */
    int stored;    /* the runs row exists (a new run's is written by its first save) */
    size_t step;
    waiter *w;
} run;

/* How many replaced rule sets stay for runs that started on them (the oldest goes first). */
#define RETIRED_MAX 16

/* What one pass decided: SQL to commit, then messages to publish. */
typedef struct pass {
    json_t *sql;     /* sqlbatch */
    json_t *effects; /* [[topic, message]] */
    int64_t now;
    json_t *taken; /* key → how many unread loads of this pass took replies under it; or NULL */
} pass;

struct wh_engine {
    wh_pub *pub;
    wh_sub *sub;
    wh_store *store;
    char node[64];
    pthread_mutex_t lock;
    wh_rules *rules;
    pthread_t thread;
    int started;
    atomic_int stopping;
    run *waiting[BUCKETS]; /* runs waiting for a call outcome, by outbox id */
    size_t nwaiting;
    _Atomic int64_t lag_ms; /* age of the event handled last; 0 once the queue is empty */
    json_t *subscribed;    /* topic prefixes the SUB socket has now (engine thread) */
    int64_t next_debounce; /* when the earliest debounced burst ends (0: none known) */
    pthread_cond_t recovered_cond;
    int recovered;         /* recover() has finished (guarded by lock) */
    atomic_int resubscribe;
    int64_t next_cleanup; /* mono ms */
    int64_t next_sweep;   /* mono ms: the journal's */
    int64_t next_outcomes; /* mono ms */
    /* {source: true}, "*" for all: what the rules read. Read by the gateway for
     * every request, so under a lock of its own that readers share. */
    pthread_rwlock_t consumed_lock;
    json_t *consumed;
    json_t *swept;        /* ids the last sweep took, should the bus bring one after all */
    int64_t outcomes_from; /* calls finished before this were seen by recover() or a sweep */
    /* Rule sets a reload replaced that have a rule (by name and text) the current
     * set lacks, newest last, under lock: a run read back from the state file
     * resumes on the text it started on. */
    wh_rules *retired[RETIRED_MAX];
    size_t nretired;
};

/* Journaled events the bus did not bring (a publish that failed, a message
 * ZeroMQ dropped past its high-water mark, a subscription that took effect
 * after a rule was added) are taken from the journal: every SWEEP_EVERY_MS,
 * those SWEEP_GRACE_MS older than the last event the bus brought. Call
 * outcomes it did not bring are looked for every OUTCOMES_EVERY_MS among the
 * calls finished since the last look: short looks, so that the engine never
 * stalls for long (a second of 8,000 calls is about 4 ms). */
#define SWEEP_EVERY_MS 10000
#define SWEEP_GRACE_MS 10000
#define OUTCOMES_EVERY_MS 1000
#define SWEEP_PAGE 64 /* usually the first row is already too new */

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 16777619u;
    }
    return h % BUCKETS;
}

static void run_free(pass *p, run *r);

/* A run now waits for its call `r->call_id`: keep it in memory, or (over
   WAITING_MAX, nobody waiting on it) let it go: its row has it all. */
static void keep_waiting(wh_engine *e, pass *p, run *r)
{
    if (!r->w && e->nwaiting >= WAITING_MAX) {
        run_free(p, r);
        return;
    }
    unsigned b = hash(r->call_id);
    r->next = e->waiting[b];
    e->waiting[b] = r;
    e->nwaiting++;
}

static void effect(pass *p, const char *topic, json_t *msg)
{
    if (msg) {
        json_array_append_new(p->effects, json_pack("[s, o]", topic, msg));
    }
}

static void waiter_release(pass *p, waiter *w)
{
    if (!w || --w->refs > 0) {
        return;
    }
    if (!w->responded) {
        /* nothing answered: let the gateway send the fallback now */
        effect(p, w->reply_to,
               json_pack("{s:s, s:n, s:s}", "id", w->event_id, "response", "reason",
                         "no rule answered this event"));
    }
    free(w->reply_to);
    free(w);
}

static void respond(pass *p, waiter *w, json_t *response)
{
    if (!w || w->responded || !response) {
        json_decref(response);
        return;
    }
    effect(p, w->reply_to, json_pack("{s:s, s:o}", "id", w->event_id, "response", response));
    w->responded = 1;
}

/* What a step says when its templates cannot be rendered: the result would pass
   a limit (rules.h: 16 MiB or 1,000,000 nodes per render), or memory ran out. */
#define RENDER_FAILED                                                                              \
    "cannot render the step's templates: the result would exceed 16 MiB or 1,000,000 values"

/* A rendered respond; NULL means its templates could not be rendered: said in the
   log, and the caller gets the fallback (from the deadline or the run's end). */
static void respond_rendered(pass *p, run *r, json_t *response)
{
    if (!response) {
        wh_error("engine", "rule %s: cannot render its respond (over the 16 MiB or "
                 "1,000,000-value limit); the caller gets the fallback",
                 wh_rule_name(r->rule));
        return;
    }
    respond(p, r->w, response);
}

static void run_free(pass *p, run *r)
{
    waiter_release(p, r->w);
    json_decref(r->ctx);
    wh_rules_unref(&r->rules);
    free(r);
}

static void save_run(pass *p, run *r, const char *state, const char *error)
{
    /* A finished run keeps its row (for `wirehub runs`), not its context: that is
       the whole event again, kept a week, and nothing resumes a done run. A failed
       one keeps it, since `outbox retry` resumes it. */
    int done = strcmp(state, "done") == 0;
    if (!r->stored) {
        /* a new run is written once, as the pass leaves it: one statement, not two */
        const json_t *event = json_object_get(r->ctx, "event");
        wh_sqlbatch_add(p->sql,
                        "INSERT OR IGNORE INTO runs (id, event_id, rule, step, ctx, reply_to, "
                        "state, error, created_ms, updated_ms, rule_fp) VALUES (?1, ?2, ?3, ?4, "
                        "?5, ?6, ?7, ?8, ?9, ?9, ?10)",
                        json_pack("[s, s?, s, I, o, s?, s, s?, I, s]", r->id,
                                  json_string_value(json_object_get(event, "id")),
                                  wh_rule_name(r->rule), (json_int_t)r->step,
                                  done ? json_string("{}") : json_incref(r->ctx),
                                  r->w ? r->w->reply_to : NULL, state, error, (json_int_t)p->now,
                                  wh_rule_fingerprint(r->rule)));
        r->stored = 1;
        r->ctx_saved = 1;
        return;
    }
    if (done) {
        wh_sqlbatch_add(p->sql,
                        "UPDATE runs SET step = ?1, ctx = '{}', state = ?2, error = ?3, "
                        "updated_ms = ?4 WHERE id = ?5",
                        json_pack("[I, s, s?, I, s]", (json_int_t)r->step, state, error,
                                  (json_int_t)p->now, r->id));
        return;
    }
    if (r->ctx_saved) {
        /* encoding the context again would write the same text */
        wh_sqlbatch_add(p->sql,
                        "UPDATE runs SET step = ?1, state = ?2, error = ?3, updated_ms = ?4 "
                        "WHERE id = ?5",
                        json_pack("[I, s, s?, I, s]", (json_int_t)r->step, state, error,
                                  (json_int_t)p->now, r->id));
        return;
    }
    wh_sqlbatch_add(p->sql,
                    "UPDATE runs SET step = ?1, ctx = ?2, state = ?3, error = ?4, updated_ms = ?5 "
                    "WHERE id = ?6",
                    json_pack("[I, O, s, s?, I, s]", (json_int_t)r->step, r->ctx, state, error,
                              (json_int_t)p->now, r->id));
    r->ctx_saved = 1;
}

/* Whether an event is one of the hub's own failure announcements. */
static int failure_event(const json_t *ev)
{
    const char *source = json_string_value(json_object_get(ev, "source"));
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    return source && kind && strcmp(source, "hub") == 0 &&
           (strcmp(kind, "call_failed") == 0 || strcmp(kind, "dead_letter") == 0);
}

static void run_failed(pass *p, run *r, const char *instance, const char *op, const char *error)
{
    wh_warn("engine", "rule %s failed at step %zu (%s.%s): %s", wh_rule_name(r->rule),
            r->step + 1, instance, op, error ? error : "failed");
    save_run(p, r, "failed", error ? error : "failed");
    if (failure_event(json_object_get(r->ctx, "event"))) {
        /* a rule on hub/call_failed or hub/dead_letter whose own call fails would
           otherwise start itself again, without end */
        wh_warn("engine", "not announced as hub/call_failed: rule %s was itself started by a "
                "failure event (announcing it would loop)", wh_rule_name(r->rule));
        run_free(p, r);
        return;
    }
    json_t *data = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:O?}", "rule",
                             wh_rule_name(r->rule), "file", wh_rule_file(r->rule), "run", r->id,
                             "step", (json_int_t)(r->step + 1), "instance", instance, "operation",
                             op, "error", error ? error : "failed", "origin",
                             json_object_get(r->ctx, "event"));
    json_t *env = data ? wh_env_new("hub", "call_failed", data) : NULL;
    if (!env) {
        json_decref(data);
    }
    effect(p, "in/hub/call_failed", env);
    run_free(p, r);
}

/* Execute steps until the run waits for a call or ends. */
static void advance(wh_engine *e, pass *p, run *r)
{
    size_t n = wh_rule_nsteps(r->rule);
    while (r->step < n) {
        const wh_step *s = wh_rule_step(r->rule, r->step);
        switch (wh_step_kind_of(s)) {
        case WH_STEP_CALL: {
            json_t *args = wh_step_render_with(s, r->ctx);
            if (!args) {
                run_failed(p, r, wh_step_instance(s), wh_step_op(s), RENDER_FAILED);
                return;
            }
            snprintf(r->call_id, sizeof r->call_id, "%s.%zu", r->id, r->step + 1);
            wh_sqlbatch_add(p->sql,
                            "INSERT OR IGNORE INTO outbox (id, run_id, step, instance, op, args, "
                            "key, state, attempts, next_at_ms, created_ms, updated_ms) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?1, 'pending', 0, ?7, ?7, ?7)",
                            json_pack("[s, s, I, s, s, O, I]", r->call_id, r->id,
                                      (json_int_t)(r->step + 1), wh_step_instance(s),
                                      wh_step_op(s), args, (json_int_t)p->now));
            save_run(p, r, "waiting", NULL);
            /* the whole call rides along, so delivery starts it without a read */
            char topic[WH_TOPIC_MAX];
            snprintf(topic, sizeof topic, "out/%s", wh_step_instance(s));
            effect(p, topic,
                   json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:i}", "call", r->call_id, "run",
                             r->id, "instance", wh_step_instance(s), "op", wh_step_op(s), "args",
                             args, "key", r->call_id, "attempts", 0));
            keep_waiting(e, p, r);
            return;
        }
        case WH_STEP_RESPOND:
            respond_rendered(p, r, wh_step_render_respond(s, r->ctx));
            break;
        case WH_STEP_AWAIT: {
            /* a conversation for the await part; the run goes on without waiting */
            char conv[96];
            snprintf(conv, sizeof conv, "%s.%zu", r->id, r->step + 1);
            char *key = wh_step_render_key(s, r->ctx);
            json_t *args = wh_step_render_with(s, r->ctx);
            json_t *vars = wh_step_render_vars(s, r->ctx);
            if (!key || !args || !vars) {
                free(key);
                json_decref(args);
                json_decref(vars);
                run_failed(p, r, wh_step_instance(s), wh_step_op(s), RENDER_FAILED);
                return;
            }
            json_t *collect = NULL;
            json_t *crit = wh_step_render_collect_if(s, r->ctx);
            if (crit) {
                collect = json_pack("{s:s, s:o}", "on", wh_step_collect_on(s), "if", crit);
            }
            wh_sqlbatch_add(p->sql,
                            "INSERT OR IGNORE INTO conversations (id, key, run_id, instance, op, "
                            "args, cursor, every_ms, until_ms, next_at_ms, vars, collect, state, "
                            "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8, ?9, ?10, "
                            "?11, 'open', ?9)",
                            json_pack("[s, s, s, s, s, o, I, I, I, o, o?]", conv, key ? key : "",
                                      r->id, wh_step_instance(s), wh_step_op(s),
                                      args ? args : json_object(),
                                      (json_int_t)wh_step_every_ms(s),
                                      (json_int_t)(p->now + wh_step_for_ms(s)),
                                      (json_int_t)p->now, vars ? vars : json_object(), collect));
            effect(p, "await/changed", json_pack("{s:s}", "opened", conv));
            free(key);
            break;
        }
        case WH_STEP_STOP_AWAIT: {
            char *key = wh_step_render_key(s, r->ctx);
            wh_sqlbatch_add(p->sql,
                            "UPDATE conversations SET state = 'closed' WHERE key = ?1 AND state "
                            "= 'open'",
                            json_pack("[s]", key ? key : ""));
            effect(p, "await/changed", json_pack("{s:s?}", "closed", key));
            free(key);
            break;
        }
        }
        r->step++;
    }
    save_run(p, r, "done", NULL);
    run_free(p, r);
}

static json_t *query(wh_engine *e, const char *sql, json_t *params);
static wh_rules *current_rules(wh_engine *e);

/* `load:` puts the replies stored under a key into the run's context. */
typedef struct load_ctx {
    wh_engine *e;
    pass *p;
    json_t *ctx;
} load_ctx;

static int load_one(void *ud, const char *name, const char *key, int unread, long limit)
{
    load_ctx *lc = ud;
    pass *p = lc->p;
    /* replies another taker (a run of this pass, a replies-API reader) has taken but not
     * committed yet are not seen read here: skip them */
    json_int_t after = unread ? wh_replies_take_begin(key) : 0;
    json_t *rows = query(lc->e,
                         unread ? "SELECT seq, id, author, text, time, source FROM replies WHERE "
                                  "key = ?1 AND read = 0 AND seq > ?2 ORDER BY seq LIMIT ?3"
                                : "SELECT seq, id, author, text, time, source FROM replies WHERE "
                                  "key = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                         json_pack("[s, I, I]", key, after, (json_int_t)(limit > 0 ? limit : -1)));
    if (!rows) {
        rows = json_array();
    }
    json_int_t last = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        last = json_integer_value(json_object_get(row, "seq"));
        json_object_del(row, "seq");
    }
    if (unread) {
        wh_replies_take_end(key, last);
    }
    if (unread && last > 0) {
        /* these are read now; a later run asking for unread ones gets only newer */
        wh_sqlbatch_add(p->sql,
                        "UPDATE replies SET read = 1 WHERE key = ?1 AND read = 0 AND seq <= ?2",
                        json_pack("[s, I]", key, last));
        if (!p->taken) {
            p->taken = json_object();
        }
        /* held until finish_pass() commits: one release per take */
        json_object_set_new(p->taken, key,
                            json_integer(json_integer_value(json_object_get(p->taken, key)) + 1));
    }
    if (unread) {
        /* what a limit left for next time: "and 3 more" */
        char left_name[WH_RULE_NAME_MAX + 8];
        snprintf(left_name, sizeof left_name, "%s_left", name);
        json_t *cnt = query(lc->e,
                            "SELECT count(*) AS n FROM replies WHERE key = ?1 AND read = 0 AND "
                            "seq > ?2",
                            json_pack("[s, I]", key, last > after ? last : after));
        json_int_t left = json_integer_value(json_object_get(json_array_get(cnt, 0), "n"));
        json_decref(cnt);
        if (left > 0) { /* absent at 0, so that {{#replies_left}} reads as "any left?" */
            json_object_set_new(lc->ctx, left_name, json_integer(left));
        }
    }
    json_object_set_new(lc->ctx, name, rows);
    return 0;
}

typedef struct match_ctx {
    wh_engine *e;
    pass *p;
    wh_rules *rules;
    const json_t *env;
    json_t *ctx;
    waiter *w;
    int matched;
} match_ctx;

/* Start one run of `rule` on a copy of `ctx`; it advances as far as it can in this pass. */
static void start_run(wh_engine *e, pass *p, wh_rules *rules, const wh_rule *rule,
                      const json_t *ctx, const char *run_id, waiter *w)
{
    run *r = calloc(1, sizeof *r);
    if (!r) {
        return;
    }
    r->rules = wh_rules_ref(rules);
    r->rule = rule;
    r->ctx = json_copy((json_t *)ctx); /* results bound by as: stay in this run */
    snprintf(r->id, sizeof r->id, "%s", run_id);
    load_ctx lc = {e, p, r->ctx};
    wh_rule_each_load(rule, ctx, load_one, &lc);
    wh_debug("engine", "rule %s matched run=%s", wh_rule_name(rule), r->id);
    if (w) {
        w->refs++;
        r->w = w;
        if (wh_rule_has_respond(rule)) {
            respond_rendered(p, r, wh_rule_render_respond(rule, r->ctx));
        }
    }
    advance(e, p, r);
}

static int on_candidate(void *ud, const wh_rule *rule)
{
    match_ctx *m = ud;
    if (!wh_rule_matches(rule, m->ctx)) {
        return 0;
    }
    m->matched++;
    int64_t window = wh_rule_debounce_ms(rule);
    if (window > 0) {
        /* a burst: remember the latest context; the run starts when the burst ends */
        char *key = wh_rule_render_debounce_key(rule, m->ctx);
        wh_sqlbatch_add(m->p->sql,
                        "INSERT INTO debounce (rule, key, ctx, first_ms, due_ms) VALUES (?1, ?2, "
                        "?3, ?4, ?5) ON CONFLICT (rule, key) DO UPDATE SET ctx = excluded.ctx, "
                        "due_ms = min(excluded.due_ms, debounce.first_ms + ?6)",
                        json_pack("[s, s, O, I, I, I]", wh_rule_name(rule), key ? key : "",
                                  m->ctx, (json_int_t)m->p->now, (json_int_t)(m->p->now + window),
                                  (json_int_t)(3 * window)));
        free(key);
        if (m->e->next_debounce == 0 || m->p->now + window < m->e->next_debounce) {
            m->e->next_debounce = m->p->now + window;
        }
        return wh_rule_stop(rule);
    }
    char run_id[64];
    snprintf(run_id, sizeof run_id, "%s.%d", json_string_value(json_object_get(m->env, "id")),
             m->matched);
    start_run(m->e, m->p, m->rules, rule, m->ctx, run_id, m->w);
    return wh_rule_stop(rule);
}

/* Bursts whose quiet time has passed: one run each, with the burst's last context. */
static void run_debounced(wh_engine *e, pass *p)
{
    if (e->next_debounce == 0 || p->now < e->next_debounce) {
        return;
    }
    json_t *rows = query(e, "SELECT rule, key, ctx, due_ms FROM debounce ORDER BY due_ms", NULL);
    wh_rules *rules = current_rules(e);
    e->next_debounce = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_int_t due = json_integer_value(json_object_get(row, "due_ms"));
        if (due > p->now) {
            if (e->next_debounce == 0 || due < e->next_debounce) {
                e->next_debounce = due;
            }
            continue;
        }
        const char *name = json_string_value(json_object_get(row, "rule"));
        wh_sqlbatch_add(p->sql, "DELETE FROM debounce WHERE rule = ?1 AND key = ?2",
                        json_pack("[O, O]", json_object_get(row, "rule"),
                                  json_object_get(row, "key")));
        const wh_rule *rule = NULL;
        for (size_t k = 0; rules && name && k < wh_rules_count(rules); k++) {
            if (strcmp(wh_rule_name(wh_rules_get(rules, k)), name) == 0) {
                rule = wh_rules_get(rules, k);
            }
        }
        json_t *ctx = json_loads(json_string_value(json_object_get(row, "ctx")), 0, NULL);
        if (rule && ctx) {
            /* stable and unique: the burst's last event and the rule */
            char run_id[64];
            unsigned h = 2166136261u;
            for (const char *c = name; *c; c++) {
                h = (h ^ (unsigned char)*c) * 16777619u;
            }
            snprintf(run_id, sizeof run_id, "%.32s.d%08x",
                     json_string_value(json_object_get(json_object_get(ctx, "event"), "id")), h);
            start_run(e, p, rules, rule, ctx, run_id, NULL);
        } else {
            wh_warn("engine", "debounced rule '%s' is no longer loaded; its burst is dropped",
                    name ? name : "?");
        }
        json_decref(ctx);
    }
    wh_rules_unref(&rules);
    json_decref(rows);
}

static wh_rules *current_rules(wh_engine *e)
{
    pthread_mutex_lock(&e->lock);
    wh_rules *rules = e->rules ? wh_rules_ref(e->rules) : NULL;
    pthread_mutex_unlock(&e->lock);
    return rules;
}

static void on_event(wh_engine *e, pass *p, json_t *env)
{
    wh_rules *rules = current_rules(e);
    match_ctx m = {e, p, rules, env, wh_rules_context(env), NULL, 0};
    const char *reply_to = json_string_value(json_object_get(env, "reply_to"));
    if (reply_to) {
        m.w = calloc(1, sizeof *m.w);
        if (m.w) {
            m.w->reply_to = strdup(reply_to);
            snprintf(m.w->event_id, sizeof m.w->event_id, "%s",
                     json_string_value(json_object_get(env, "id")));
            m.w->refs = 1;
        }
    }
    if (rules && m.ctx) {
        wh_rules_each_candidate(rules, json_string_value(json_object_get(env, "source")),
                                json_string_value(json_object_get(env, "kind")), on_candidate, &m);
    }
    if (m.w && !m.w->responded && m.matched == 0) {
        effect(p, m.w->reply_to,
               json_pack("{s:s, s:n, s:s}", "id", m.w->event_id, "response", "reason",
                         "no rule matched"));
        m.w->responded = 1;
    }
    wh_sqlbatch_add(p->sql, "UPDATE events SET state = 'done' WHERE id = ?1",
                    json_pack("[s]", json_string_value(json_object_get(env, "id"))));
    waiter_release(p, m.w);
    json_decref(m.ctx);
    wh_rules_unref(&rules);
}

/* Rows of a query on the store (a new reference, or NULL). Ownership: takes params. */
static json_t *query(wh_engine *e, const char *sql, json_t *params)
{
    return wh_store_rows(e->store, sql, params);
}

/*
 * The rule set holding the rule `name` with fingerprint `fp` (any text when
 * fp is NULL: a run stored before fingerprints): the current set first, then
 * the sets reloads replaced, newest first. A new reference, or NULL.
 */
static wh_rules *rules_with(wh_engine *e, const char *name, const char *fp, const wh_rule **rule)
{
    wh_rules *found = NULL;
    pthread_mutex_lock(&e->lock);
    if ((*rule = wh_rules_find(e->rules, name, fp))) {
        found = wh_rules_ref(e->rules);
    }
    for (size_t i = e->nretired; !found && i-- > 0;) {
        if ((*rule = wh_rules_find(e->retired[i], name, fp))) {
            found = wh_rules_ref(e->retired[i]);
        }
    }
    pthread_mutex_unlock(&e->lock);
    return found;
}

/*
 * A run not in memory (one of many waiting, after a restart, or a dead call
 * retried by hand), on the text of its rule it started on. When that text is
 * gone (the rule was changed or removed, and the hub restarted or reloaded
 * often since), the run fails, saying why, instead of waiting for ever.
 */
static run *load_run(wh_engine *e, pass *p, const char *run_id)
{
    json_t *rows = query(e,
                         "SELECT r.id, r.rule, r.rule_fp, r.step, r.ctx FROM runs r WHERE r.id = "
                         "?1 AND r.state = 'waiting'",
                         json_pack("[s]", run_id));
    json_t *row = json_array_get(rows, 0);
    run *r = NULL;
    const wh_rule *rule = NULL;
    const char *name = json_string_value(json_object_get(row, "rule"));
    const char *fp = json_string_value(json_object_get(row, "rule_fp"));
    wh_rules *rules = name ? rules_with(e, name, fp && *fp ? fp : NULL, &rule) : NULL;
    json_t *ctx = row ? json_loads(json_string_value(json_object_get(row, "ctx")), 0, NULL) : NULL;
    if (rule && ctx && (r = calloc(1, sizeof *r))) {
        snprintf(r->id, sizeof r->id, "%s", run_id);
        r->rules = wh_rules_ref(rules);
        r->rule = rule;
        r->ctx = ctx;
        r->ctx_saved = 1;
        r->stored = 1;
        ctx = NULL;
        r->step = (size_t)json_integer_value(json_object_get(row, "step"));
        snprintf(r->call_id, sizeof r->call_id, "%s.%zu", r->id, r->step + 1);
    } else if (row && !rule) {
        char why[200];
        snprintf(why, sizeof why,
                 "rule '%s' was changed or removed since this run started; its remaining steps "
                 "are not run",
                 name ? name : "?");
        wh_warn("engine", "run %s failed: %s", run_id, why);
        wh_sqlbatch_add(p->sql,
                        "UPDATE runs SET state = 'failed', error = ?1, updated_ms = ?2 WHERE id = "
                        "?3 AND state = 'waiting'",
                        json_pack("[s, I, s]", why, (json_int_t)p->now, run_id));
    }
    json_decref(ctx);
    wh_rules_unref(&rules);
    json_decref(rows);
    return r;
}

static void on_done(wh_engine *e, pass *p, const json_t *msg)
{
    const char *id = json_string_value(json_object_get(msg, "call"));
    const char *run_id = json_string_value(json_object_get(msg, "run"));
    if (!id) {
        return;
    }
    unsigned b = hash(id);
    run **pp = &e->waiting[b];
    while (*pp && strcmp((*pp)->call_id, id) != 0) {
        pp = &(*pp)->next;
    }
    run *r = *pp;
    if (r) {
        *pp = r->next;
        r->next = NULL;
        e->nwaiting--;
    } else if (!run_id || !(r = load_run(e, p, run_id)) || strcmp(r->call_id, id) != 0) {
        if (r) {
            run_free(p, r);
        }
        return;
    }
    const wh_step *s = wh_rule_step(r->rule, r->step);
    const char *outcome = json_string_value(json_object_get(msg, "outcome"));
    if (!outcome || strcmp(outcome, "ok") != 0) {
        run_failed(p, r, wh_step_instance(s), wh_step_op(s),
                   json_string_value(json_object_get(msg, "error")));
        return;
    }
    const char *as = wh_step_as(s);
    if (as) {
        json_t *result = json_object_get(msg, "result");
        json_object_set(r->ctx, as, result ? result : json_null());
        r->ctx_saved = 0;
    }
    r->step++;
    advance(e, p, r);
}

/* Commit what the pass decided, then publish its effects. */
/* The replies this pass's loads took are committed as read (or, failed, free again). */
static void release_taken(pass *p)
{
    const char *key;
    json_t *n;
    json_object_foreach(p->taken, key, n)
    {
        for (json_int_t i = 0; i < json_integer_value(n); i++) {
            wh_replies_taken(key);
        }
    }
    json_decref(p->taken);
    p->taken = NULL;
}

static void finish_pass(wh_engine *e, pass *p)
{
    if (json_array_size(p->sql) > 0) {
        int rc = wh_store_write_sync(e->store, wh_sqlbatch_exec, p->sql);
        if (rc != WH_OK) {
            /* nothing of this pass is durable: its events stay `new` and are
             * processed again at the next start; tell nobody it happened */
            wh_error("engine", "cannot save %zu change(s): %s; they will be redone at restart",
                     json_array_size(p->sql), wh_strerror(rc));
            json_array_clear(p->effects);
        }
    }
    size_t i;
    json_t *fx;
    json_array_foreach(p->effects, i, fx)
    {
        wh_pub_send(e->pub, json_string_value(json_array_get(fx, 0)), json_array_get(fx, 1));
    }
    json_array_clear(p->sql);
    json_array_clear(p->effects);
    release_taken(p);
}

/*
 * At start: resume runs that were waiting (their call may have finished while
 * we were down), then process events journaled but never handled. Both are
 * read a page at a time: after a crash under load the journal can hold
 * hundreds of thousands of events, and holding them all at once took
 * hundreds of MiB.
 */
#define RECOVER_PAGE 512

/* A row {call, run, state, result, error} of a finished call: act on it as
   on its done/engine message (on_done ignores a run no longer waiting for it). */
static void resume_finished(wh_engine *e, pass *p, const json_t *row)
{
    const char *state = json_string_value(json_object_get(row, "state"));
    json_t *result =
        json_loads(json_string_value(json_object_get(row, "result")), JSON_DECODE_ANY, NULL);
    json_t *msg = json_pack("{s:O, s:O, s:s, s:o?, s:O?}", "call", json_object_get(row, "call"),
                            "run", json_object_get(row, "run"), "outcome",
                            state && strcmp(state, "done") == 0 ? "ok" : "failed", "result",
                            result, "error", json_object_get(row, "error"));
    on_done(e, p, msg);
    json_decref(msg);
}

static void recover_runs(wh_engine *e, pass *p, size_t *resumed)
{
    /* Keyset over runs_finished (state, updated_ms, rowid). A run this
     * recovery touches is saved with updated_ms = p->now and must not be seen
     * again, so the walk stops before p->now; should the clock have gone back
     * since the last write, p->now moves past it first. */
    json_t *top = query(e, "SELECT max(updated_ms) AS t FROM runs WHERE state = 'waiting'", NULL);
    json_t *t = json_object_get(json_array_get(top, 0), "t");
    if (json_is_integer(t) && json_integer_value(t) >= p->now) {
        p->now = json_integer_value(t) + 1;
    }
    json_decref(top);
    json_int_t after_ms = INT64_MIN, after_row = 0;
    for (;;) {
        json_t *rows = query(
            e,
            "SELECT r.rowid AS rn, r.updated_ms AS um, r.id AS run, o.id AS call, o.state, "
            "o.result, o.last_error AS error FROM runs r LEFT JOIN outbox o ON o.id = r.id || '.' "
            "|| (r.step + 1) WHERE r.state = 'waiting' AND r.updated_ms < ?1 AND (r.updated_ms, "
            "r.rowid) > (?2, ?3) ORDER BY r.updated_ms, r.rowid LIMIT ?4",
            json_pack("[I, I, I, i]", (json_int_t)p->now, after_ms, after_row, RECOVER_PAGE));
        size_t i, n = json_array_size(rows);
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            after_ms = json_integer_value(json_object_get(row, "um"));
            after_row = json_integer_value(json_object_get(row, "rn"));
            const char *state = json_string_value(json_object_get(row, "state"));
            const char *run_id = json_string_value(json_object_get(row, "run"));
            if (state && (strcmp(state, "done") == 0 || strcmp(state, "dead") == 0)) {
                resume_finished(e, p, row);
            } else if (run_id) {
                run *r = e->nwaiting < WAITING_MAX ? load_run(e, p, run_id) : NULL;
                if (r) {
                    keep_waiting(e, p, r);
                }
            }
            (*resumed)++;
            if (json_array_size(p->sql) >= PASS_MAX) {
                finish_pass(e, p);
            }
        }
        json_decref(rows);
        if (n < RECOVER_PAGE) {
            return;
        }
    }
}

/*
 * Handle the journal's `new` events in journal order (rowid, which
 * events_state (state, rowid) serves), up to the first created at or after
 * `before_ms` (0: all). Returns how many were handled.
 */
static size_t take_journal(wh_engine *e, pass *p, int64_t before_ms)
{
    json_int_t after = 0;
    size_t taken = 0;
    int page = before_ms ? SWEEP_PAGE : RECOVER_PAGE;
    for (;;) {
        json_t *rows = query(e,
                             "SELECT rowid AS rn, id, created_ms AS t, envelope FROM events WHERE "
                             "state = 'new' AND rowid > ?1 ORDER BY rowid LIMIT ?2",
                             json_pack("[I, i]", after, page));
        size_t i, n = json_array_size(rows);
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            if (before_ms && json_integer_value(json_object_get(row, "t")) >= before_ms) {
                n = 0; /* the rest are newer still: the bus brings them */
                break;
            }
            char err[160];
            after = json_integer_value(json_object_get(row, "rn"));
            const char *text = json_string_value(json_object_get(row, "envelope"));
            json_t *env = text ? wh_env_decode(text, strlen(text), err, sizeof err) : NULL;
            if (env) {
                json_object_del(env, "reply_to"); /* that caller is gone */
                on_event(e, p, env);
                taken++;
                json_decref(env);
                if (before_ms) {
                    json_object_set(e->swept, json_string_value(json_object_get(row, "id")),
                                    json_true());
                }
            } else {
                const char *id = json_string_value(json_object_get(row, "id"));
                wh_error("engine", "journaled event %s cannot be read (%s); it is skipped",
                         id ? id : "?", text ? err : "no envelope");
                wh_sqlbatch_add(p->sql, "UPDATE events SET state = 'done' WHERE id = ?1",
                                json_pack("[s?]", id));
            }
            if (json_array_size(p->sql) >= PASS_MAX) {
                finish_pass(e, p);
            }
        }
        json_decref(rows);
        if (n < (size_t)page) {
            return taken;
        }
    }
}

static void recover(wh_engine *e, pass *p)
{
    size_t resumed = 0, replayed = 0;
    recover_runs(e, p, &resumed);
    finish_pass(e, p);
    replayed = take_journal(e, p, 0);
    json_t *rows = query(e, "SELECT min(due_ms) AS t FROM debounce", NULL);
    json_t *t = json_object_get(json_array_get(rows, 0), "t");
    e->next_debounce = json_is_integer(t) ? json_integer_value(t) : 0;
    json_decref(rows);
    finish_pass(e, p);
    if (resumed || replayed) {
        wh_info("engine", "recovered waiting_runs=%zu unhandled_events=%zu", resumed, replayed);
    }
}

/*
 * The engine subscribes only to the sources its rules name ("in/<source>/",
 * or "in/" when a rule says `*`), so ZeroMQ drops events no rule could match
 * at the publisher, before they cost a hop. (They are journaled all the same;
 * the cleanup below removes them.)
 */
static json_t *wanted_prefixes(wh_rules *rules)
{
    json_t *want = json_object();
    json_object_set_new(want, "in/hub/", json_true()); /* hub/call_failed and friends */
    for (size_t i = 0; rules && i < wh_rules_count(rules); i++) {
        const wh_rule *rule = wh_rules_get(rules, i);
        const char *on = wh_rule_on(rule);
        const char *slash = on ? strchr(on, '/') : NULL;
        if (!slash || !wh_rule_enabled(rule)) {
            continue;
        }
        char prefix[128];
        if (slash - on == 1 && on[0] == '*') {
            snprintf(prefix, sizeof prefix, "in/");
        } else {
            snprintf(prefix, sizeof prefix, "in/%.*s/", (int)(slash - on), on);
        }
        json_object_set_new(want, prefix, json_true());
    }
    return want;
}

/* The sources the rules read, for wh_engine_consumes(): {source: true}, or {"*": true}. */
static json_t *consumed_sources(wh_rules *rules)
{
    json_t *set = json_object();
    for (size_t i = 0; set && rules && i < wh_rules_count(rules); i++) {
        const wh_rule *rule = wh_rules_get(rules, i);
        const char *on = wh_rule_on(rule);
        const char *slash = on ? strchr(on, '/') : NULL;
        if (slash && wh_rule_enabled(rule)) {
            json_object_setn_new(set, on, (size_t)(slash - on), json_true());
        }
    }
    return set;
}

int wh_engine_consumes(wh_engine *e, const char *source)
{
    pthread_rwlock_rdlock(&e->consumed_lock);
    int yes = !e->consumed || json_object_get(e->consumed, "*") ||
              json_object_get(e->consumed, source);
    pthread_rwlock_unlock(&e->consumed_lock);
    return yes;
}

static void resubscribe(wh_engine *e)
{
    pthread_mutex_lock(&e->lock);
    json_t *want = wanted_prefixes(e->rules);
    pthread_mutex_unlock(&e->lock);
    void *sock = wh_sub_socket(e->sub);
    const char *prefix;
    json_t *v;
    json_object_foreach(want, prefix, v)
    {
        if (!json_object_get(e->subscribed, prefix)) {
            zmq_setsockopt(sock, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
        }
    }
    json_object_foreach(e->subscribed, prefix, v)
    {
        if (!json_object_get(want, prefix)) {
            zmq_setsockopt(sock, ZMQ_UNSUBSCRIBE, prefix, strlen(prefix));
        }
    }
    json_decref(e->subscribed);
    e->subscribed = want;
}

/* Events of sources no rule names arrive only when a `*` rule exists; a
 * topic check avoids decoding those that still meet no rule. */
static int any_rule(void *ud, const wh_rule *rule)
{
    (void)ud;
    (void)rule;
    return 1;
}

static int worth_decoding(wh_engine *e, const char *topic, const char *raw, size_t len)
{
    char source[80];
    const char *s = topic + 3, *slash = strchr(s, '/');
    if (!slash || (size_t)(slash - s) >= sizeof source) {
        return 1;
    }
    memcpy(source, s, (size_t)(slash - s));
    source[slash - s] = '\0';
    pthread_mutex_lock(&e->lock);
    int any = e->rules && wh_rules_each_candidate(e->rules, source, slash + 1, any_rule, NULL);
    pthread_mutex_unlock(&e->lock);
    return any || memmem(raw, len, "\"reply_to\"", 10) != NULL;
}

/* How old an event is, from its id (48 bits of milliseconds first; see
   wh_new_id), or -1 for an id that does not carry a plausible time. */
static int64_t event_age_ms(const char *raw, size_t len, int64_t now)
{
    const char *id = memmem(raw, len, "\"id\":\"", 6);
    if (!id || (size_t)(raw + len - id) < 6 + 12) {
        return -1;
    }
    int64_t t = 0;
    for (int i = 0; i < 12; i++) {
        char c = id[6 + i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) {
            return -1;
        }
        t = t * 16 + d;
    }
    int64_t age = now - t;
    return age >= 0 && age < 86400000 ? age : -1;
}

static void take(wh_engine *e, pass *p, const char *topic, const char *raw, size_t len)
{
    if (strncmp(topic, "in/", 3) == 0) {
        int64_t age = event_age_ms(raw, len, wh_now_ms());
        if (age >= 0) {
            atomic_store(&e->lag_ms, age);
        }
        if (json_object_size(e->swept) > 0) {
            const char *id = memmem(raw, len, "\"id\":\"", 6);
            if (id && (size_t)(raw + len - id) > 6 + 32 &&
                json_object_getn(e->swept, id + 6, 32)) {
                return; /* a sweep took it from the journal already */
            }
        }
        char err[200];
        json_t *env = worth_decoding(e, topic, raw, len) ? wh_env_decode(raw, len, err, sizeof err)
                                                          : NULL;
        if (env) {
            on_event(e, p, env);
            json_decref(env);
        } else {
            /* journaled by the gateway, no rule for it: mark it handled */
            const char *id = memmem(raw, len, "\"id\":\"", 6);
            if (id && (size_t)(raw + len - id) > 6 + 32) {
                wh_sqlbatch_add(p->sql, "UPDATE events SET state = 'done' WHERE id = ?1",
                                json_pack("[s#]", id + 6, (size_t)32));
            }
        }
    } else if (strncmp(topic, "done/engine", 11) == 0) {
        json_t *msg = json_loadb(raw, len, 0, NULL);
        if (msg) {
            on_done(e, p, msg);
        }
        json_decref(msg);
    }
}

/*
 * The journal keeps handled events an hour, de-duplication ids a day; runs
 * and delivered calls are kept a week for `wirehub runs` / `outbox`. An event
 * still `new` is never removed: the sweep (or the next start) handles it.
 * Each statement removes at most WH_CLEANUP_CHUNK rows and reads about
 * as many (events through events_state, oldest first; seen from the oldest rowid;
 * runs and outbox through their (state, time) indexes), so the writer is never
 * held for a scan of a large table; while a chunk comes back full, the next
 * cleanup follows a second later instead of a minute.
 */
int wh_engine_cleanup(sqlite3 *db, void *ud)
{
    int *more = ud;
    static const struct {
        const char *sql;
        int64_t keep_ms;
    } steps[] = {
        {"DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE state = 'done' "
         "ORDER BY rowid LIMIT ?2) AND created_ms < ?1",
         3600 * 1000LL},
        {"DELETE FROM seen WHERE rowid IN (SELECT rowid FROM seen ORDER BY rowid LIMIT ?2) AND "
         "created_ms < ?1",
         86400 * 1000LL},
        {"DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs WHERE state IN ('done', "
         "'failed') AND updated_ms < ?1 LIMIT ?2)",
         7 * 86400 * 1000LL},
        /* a delivered call's next_at_ms is when it finished (plus at most the last backoff) */
        {"DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox WHERE state = 'done' AND "
         "next_at_ms < ?1 LIMIT ?2)",
         7 * 86400 * 1000LL},
    };
    int64_t now = wh_now_ms();
    *more = 0;
    for (size_t i = 0; i < WH_ARRAY_LEN(steps); i++) {
        sqlite3_stmt *st = wh_sql_prepare_cached(db, steps[i].sql);
        if (!st) {
            wh_error("engine", "cannot prepare the cleanup: %s", sqlite3_errmsg(db));
            return WH_ERR;
        }
        sqlite3_bind_int64(st, 1, now - steps[i].keep_ms);
        sqlite3_bind_int(st, 2, WH_CLEANUP_CHUNK);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            wh_error("engine", "cleanup failed: %s", sqlite3_errmsg(db));
            return wh_sql_status(rc);
        }
        if (sqlite3_changes(db) >= WH_CLEANUP_CHUNK) {
            *more = 1;
        }
    }
    return WH_OK;
}

static void cleanup(wh_engine *e)
{
    int more = 0;
    if (wh_store_write_sync(e->store, wh_engine_cleanup, &more) != WH_OK) {
        more = 0; /* logged; try again at the usual time */
    }
    e->next_cleanup = wh_mono_ms() + (more ? 1000 : 60000);
}

/* Runs still waiting on a call that finished in [e->outcomes_from, before_ms):
   their done/engine message was lost. Keyset over outbox_due (state, next_at_ms,
   rowid); a finished call's next_at_ms is when it finished. */
static size_t take_outcomes(wh_engine *e, pass *p, int64_t before_ms)
{
    json_int_t after_ms = e->outcomes_from - 1, after_row = INT64_MAX;
    size_t taken = 0;
    for (;;) {
        json_t *rows = query(
            e,
            "SELECT o.rowid AS rn, o.next_at_ms AS t, o.id AS call, o.run_id AS run, o.state, "
            "o.result, o.last_error AS error FROM outbox o JOIN runs r ON r.id = o.run_id AND "
            "r.step + 1 = o.step WHERE o.state IN ('done', 'dead') AND (o.next_at_ms, o.rowid) > "
            "(?1, ?2) AND o.next_at_ms < ?3 AND r.state = 'waiting' ORDER BY o.next_at_ms, o.rowid "
            "LIMIT ?4",
            json_pack("[I, I, I, i]", after_ms, after_row, (json_int_t)before_ms, RECOVER_PAGE));
        size_t i, n = json_array_size(rows);
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            after_ms = json_integer_value(json_object_get(row, "t"));
            after_row = json_integer_value(json_object_get(row, "rn"));
            resume_finished(e, p, row);
            taken++;
            if (json_array_size(p->sql) >= PASS_MAX) {
                finish_pass(e, p);
            }
        }
        json_decref(rows);
        if (n < RECOVER_PAGE) {
            return taken;
        }
    }
}

/* Take from the store what the bus should have brought long ago (see SWEEP_EVERY_MS). */
static void sweep(wh_engine *e, pass *p)
{
    int64_t seen = p->now - atomic_load(&e->lag_ms); /* the bus has brought events up to here */
    size_t n;
    if (wh_mono_ms() >= e->next_sweep) {
        json_object_clear(e->swept); /* the last sweep's, kept SWEEP_EVERY_MS: no bus is later */
        n = take_journal(e, p, seen - SWEEP_GRACE_MS);
        finish_pass(e, p);
        if (n) {
            wh_warn("engine", "took %zu journaled event(s) the bus had not delivered", n);
        }
        e->next_sweep = wh_mono_ms() + SWEEP_EVERY_MS;
    }
    int64_t until = seen - SWEEP_GRACE_MS;
    if (until > e->outcomes_from) {
        n = take_outcomes(e, p, until);
        finish_pass(e, p);
        e->outcomes_from = until;
        if (n) {
            wh_warn("engine", "resumed %zu run(s) whose call outcome the bus had not delivered",
                    n);
        }
    }
    e->next_outcomes = wh_mono_ms() + OUTCOMES_EVERY_MS;
}

static void *engine_main(void *arg)
{
    wh_engine *e = arg;
    pass p = {json_array(), json_array(), wh_now_ms(), NULL};
    e->outcomes_from = p.now; /* recover() took every call finished before */
    recover(e, &p);
    e->next_cleanup = wh_mono_ms() + 60000;
    e->next_sweep = wh_mono_ms() + SWEEP_EVERY_MS;
    e->next_outcomes = wh_mono_ms() + OUTCOMES_EVERY_MS;
    pthread_mutex_lock(&e->lock);
    e->recovered = 1;
    pthread_cond_broadcast(&e->recovered_cond);
    pthread_mutex_unlock(&e->lock);
    while (!atomic_load(&e->stopping)) {
        if (atomic_exchange(&e->resubscribe, 0)) {
            resubscribe(e);
        }
        char *topic, *raw;
        size_t len;
        int got = wh_sub_recv_raw(e->sub, 50, &topic, &raw, &len);
        if (got < 0) {
            break;
        }
        if (got == 0) {
            atomic_store(&e->lag_ms, 0); /* nothing queued: caught up */
        }
        p.now = wh_now_ms();
        /* one pass: what arrived, up to a batch, committed together */
        for (int n = 0; got == 1; n++) {
            take(e, &p, topic, raw, len);
            free(topic);
            free(raw);
            got = n + 1 < PASS_MAX ? wh_sub_recv_raw(e->sub, 0, &topic, &raw, &len) : 0;
        }
        run_debounced(e, &p);
        finish_pass(e, &p);
        if (wh_mono_ms() >= e->next_cleanup) {
            cleanup(e);
        }
        if (wh_mono_ms() >= e->next_outcomes) {
            p.now = wh_now_ms();
            sweep(e, &p);
        }
    }
    json_decref(p.sql);
    json_decref(p.effects);
    release_taken(&p);
    return NULL;
}

const _Atomic int64_t *wh_engine_lag(const wh_engine *e)
{
    return e ? &e->lag_ms : NULL;
}

wh_engine *wh_engine_new(void *zctx, const wh_bus_ends *ends, const char *node, wh_store *store,
                         wh_rules *rules, char *err, size_t errsize)
{
    wh_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->lock, NULL);
    pthread_rwlock_init(&e->consumed_lock, NULL);
    pthread_cond_init(&e->recovered_cond, NULL);
    snprintf(e->node, sizeof e->node, "%s", node);
    e->store = store;
    e->subscribed = wanted_prefixes(rules);
    if (json_object_size(e->subscribed) > 64) {
        /* too many sources to list: take everything under in/ */
        json_decref(e->subscribed);
        e->subscribed = json_pack("{s:b}", "in/", 1);
    }
    size_t n = 0;
    const char *prefixes[64 + 2];
    const char *prefix;
    json_t *v;
    json_object_foreach(e->subscribed, prefix, v)
    {
        prefixes[n++] = prefix;
    }
    prefixes[n++] = "done/engine";
    prefixes[n] = NULL;
    e->pub = wh_pub_new(zctx, ends, 5000);
    e->sub = wh_sub_new(zctx, ends, prefixes, 5000);
    if (!e->pub || !e->sub) {
        snprintf(err, errsize, "cannot join the bus");
        goto fail;
    }
    e->rules = rules;
    e->consumed = consumed_sources(rules);
    e->swept = json_object();
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        e->rules = NULL;
        snprintf(err, errsize, "cannot start the engine thread");
        goto fail;
    }
    e->started = 1;
    /* Journaled events a crash left unhandled are replayed before anything new
     * can arrive: the hub starts the gateway only after this returns, so no
     * event is both replayed and received from the bus. */
    pthread_mutex_lock(&e->lock);
    while (!e->recovered) {
        pthread_cond_wait(&e->recovered_cond, &e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return e;
fail:
    wh_engine_destroy(&e);
    return NULL;
}

/* Whether `old` has a rule (by name and text) that `rules` lacks. */
static int has_other_rules(const wh_rules *old, const wh_rules *rules)
{
    for (size_t i = 0; old && i < wh_rules_count(old); i++) {
        const wh_rule *r = wh_rules_get(old, i);
        if (!wh_rules_find(rules, wh_rule_name(r), wh_rule_fingerprint(r))) {
            return 1;
        }
    }
    return 0;
}

void wh_engine_set_rules(wh_engine *e, wh_rules *rules)
{
    json_t *consumed = consumed_sources(rules);
    pthread_mutex_lock(&e->lock);
    wh_rules *old = e->rules;
    e->rules = rules;
    if (old && has_other_rules(old, rules)) {
        /* runs that started on it may still be waiting in the state file */
        if (e->nretired == RETIRED_MAX) {
            wh_rules_unref(&e->retired[0]);
            memmove(e->retired, e->retired + 1, (RETIRED_MAX - 1) * sizeof e->retired[0]);
            e->nretired--;
        }
        e->retired[e->nretired++] = old;
        old = NULL;
    }
    pthread_mutex_unlock(&e->lock);
    pthread_rwlock_wrlock(&e->consumed_lock);
    json_t *was = e->consumed;
    e->consumed = consumed;
    pthread_rwlock_unlock(&e->consumed_lock);
    json_decref(was);
    atomic_store(&e->resubscribe, 1);
    wh_rules_unref(&old);
}

void wh_engine_destroy(wh_engine **pe)
{
    wh_engine *e = pe ? *pe : NULL;
    if (!e) {
        return;
    }
    atomic_store(&e->stopping, 1);
    if (e->started) {
        pthread_join(e->thread, NULL);
    }
    /* runs waiting for calls stay in the store and resume at the next start */
    pass p = {json_array(), json_array(), wh_now_ms(), NULL};
    for (size_t i = 0; i < BUCKETS; i++) {
        while (e->waiting[i]) {
            run *r = e->waiting[i];
            e->waiting[i] = r->next;
            run_free(&p, r);
        }
    }
    json_decref(p.sql);
    json_decref(p.effects);
    release_taken(&p); /* callers still waiting are answered by the gateway's shutdown */
    wh_sub_destroy(&e->sub);
    wh_pub_destroy(&e->pub);
    json_decref(e->subscribed);
    json_decref(e->consumed);
    json_decref(e->swept);
    wh_rules_unref(&e->rules);
    for (size_t i = 0; i < e->nretired; i++) {
        wh_rules_unref(&e->retired[i]);
    }
    pthread_cond_destroy(&e->recovered_cond);
    pthread_mutex_destroy(&e->lock);
    pthread_rwlock_destroy(&e->consumed_lock);
    free(e);
    *pe = NULL;
}
