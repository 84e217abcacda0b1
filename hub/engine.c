/*
 * engine.c — events in, runs out. One thread owns every run, so runs need
 * no locks; only the current rule set is shared (with reload) under a mutex.
 *
 * A run is one firing of a rule: its steps execute in order. A `call` step
 * publishes the call and waits for its outcome (bound under `as:`); a
 * `respond` step answers a waiting caller; the rule's own `respond` is sent
 * as soon as the run has started, without waiting for calls to finish,
 * because assistants must hear back inside seconds. A caller whose event
 * started no run that answers hears "no response" at once and gets its
 * connector's fallback instead of waiting for the deadline.
 */
#include "engine.h"
#include "envelope.h"
#include "log.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define BUCKETS 4096

/* Shared by the runs of one event that a caller waits for. */
typedef struct waiter {
    char *reply_to;
    char event_id[33];
    int responded;
    int refs;
} waiter;

typedef struct run {
    struct run *next;
    char call_id[48];
    wh_rules *rules;
    const wh_rule *rule;
    json_t *ctx;
    size_t step;
    waiter *w;
    char key_base[96];
} run;

struct wh_engine {
    wh_pub *pub;
    wh_sub *sub;
    char node[64];
    char done_topic[128];
    pthread_mutex_t lock;
    wh_rules *rules;
    pthread_t thread;
    int started;
    atomic_int stopping;
    run *waiting[BUCKETS]; /* runs waiting for a call outcome, by call id */
    uint64_t seq;
    json_t *subscribed;  /* topic prefixes the SUB socket has now (engine thread) */
    atomic_int resubscribe; /* set_rules asks the engine thread to update them */
};

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 16777619u;
    }
    return h % BUCKETS;
}

static void waiter_release(wh_engine *e, waiter *w)
{
    if (!w || --w->refs > 0) {
        return;
    }
    if (!w->responded) {
        /* nothing answered: let the gateway send the fallback now */
        json_t *msg = json_pack("{s:s, s:n, s:s}", "id", w->event_id, "response", "reason",
                                "no rule answered this event");
        if (msg) {
            wh_pub_send(e->pub, w->reply_to, msg);
        }
        json_decref(msg);
    }
    free(w->reply_to);
    free(w);
}

static void respond(wh_engine *e, waiter *w, json_t *response)
{
    if (!w || w->responded || !response) {
        json_decref(response);
        return;
    }
    json_t *msg = json_pack("{s:s, s:o}", "id", w->event_id, "response", response);
    if (msg && wh_pub_send(e->pub, w->reply_to, msg) == 0) {
        w->responded = 1;
    }
    json_decref(msg);
}

static void run_free(wh_engine *e, run *r)
{
    waiter_release(e, r->w);
    json_decref(r->ctx);
    wh_rules_unref(&r->rules);
    free(r);
}

static void run_failed(wh_engine *e, run *r, const wh_step *s, const char *error)
{
    wh_warn("engine", "rule %s failed at step %zu (%s.%s): %s", wh_rule_name(r->rule),
            r->step + 1, wh_step_instance(s), wh_step_op(s), error ? error : "failed");
    json_t *data = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:O?}", "rule", wh_rule_name(r->rule),
                             "file", wh_rule_file(r->rule), "step", (json_int_t)(r->step + 1),
                             "instance", wh_step_instance(s), "operation", wh_step_op(s), "error",
                             error ? error : "failed", "event",
                             json_object_get(r->ctx, "event"));
    json_t *env = data ? wh_env_new("hub", "call_failed", data) : NULL;
    if (env) {
        wh_pub_send(e->pub, "in/hub/call_failed", env);
        json_decref(env);
    } else {
        json_decref(data);
    }
    run_free(e, r);
}

/* Execute steps until the run waits for a call or ends. */
static void advance(wh_engine *e, run *r)
{
    size_t n = wh_rule_nsteps(r->rule);
    while (r->step < n) {
        const wh_step *s = wh_rule_step(r->rule, r->step);
        switch (wh_step_kind_of(s)) {
        case WH_STEP_CALL: {
            json_t *args = wh_step_render_with(s, r->ctx);
            snprintf(r->call_id, sizeof r->call_id, "%016llx",
                     (unsigned long long)++e->seq);
            char key[160], topic[WH_TOPIC_MAX];
            snprintf(key, sizeof key, "%s/%zu", r->key_base, r->step + 1);
            snprintf(topic, sizeof topic, "out/%s", wh_step_instance(s));
            json_t *msg = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s}", "call", r->call_id,
                                    "instance", wh_step_instance(s), "op", wh_step_op(s), "args",
                                    args ? args : json_object(), "key", key, "reply_to",
                                    e->done_topic);
            if (!msg || wh_pub_send(e->pub, topic, msg) != 0) {
                json_decref(msg);
                run_failed(e, r, s, "cannot publish the call");
                return;
            }
            json_decref(msg);
            unsigned b = hash(r->call_id);
            r->next = e->waiting[b];
            e->waiting[b] = r;
            return;
        }
        case WH_STEP_RESPOND:
            respond(e, r->w, wh_step_render_respond(s, r->ctx));
            break;
        case WH_STEP_AWAIT:
        case WH_STEP_STOP_AWAIT:
            wh_warn("engine", "rule %s: await steps are not executed yet; step %zu skipped",
                    wh_rule_name(r->rule), r->step + 1);
            break;
        }
        r->step++;
    }
    run_free(e, r);
}

typedef struct match_ctx {
    wh_engine *e;
    wh_rules *rules;
    const json_t *env;
    json_t *ctx;
    waiter *w;
    int matched;
} match_ctx;

static int on_candidate(void *ud, const wh_rule *rule)
{
    match_ctx *m = ud;
    if (!wh_rule_matches(rule, m->ctx)) {
        return 0;
    }
    m->matched++;
    wh_debug("engine", "rule %s matched event %s", wh_rule_name(rule),
             json_string_value(json_object_get(m->env, "id")));
    run *r = calloc(1, sizeof *r);
    if (!r) {
        return 1;
    }
    r->rules = wh_rules_ref(m->rules);
    r->rule = rule;
    r->ctx = json_copy(m->ctx); /* results bound by as: stay in this run */
    snprintf(r->key_base, sizeof r->key_base, "%s/%d",
             json_string_value(json_object_get(m->env, "id")), m->matched);
    if (m->w) {
        m->w->refs++;
        r->w = m->w;
        respond(m->e, m->w, wh_rule_render_respond(rule, m->ctx));
    }
    advance(m->e, r);
    return wh_rule_stop(rule);
}

static void on_event(wh_engine *e, const char *raw, size_t len)
{
    char err[200];
    json_t *env = wh_env_decode(raw, len, err, sizeof err);
    if (!env) {
        wh_warn("engine", "dropped a malformed event: %s", err);
        return;
    }
    pthread_mutex_lock(&e->lock);
    wh_rules *rules = e->rules ? wh_rules_ref(e->rules) : NULL;
    pthread_mutex_unlock(&e->lock);

    match_ctx m = {e, rules, env, wh_rules_context(env), NULL, 0};
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
        json_t *msg = json_pack("{s:s, s:n, s:s}", "id", m.w->event_id, "response", "reason",
                                "no rule matched");
        if (msg) {
            wh_pub_send(e->pub, m.w->reply_to, msg);
            m.w->responded = 1;
        }
        json_decref(msg);
    }
    waiter_release(e, m.w);
    json_decref(m.ctx);
    wh_rules_unref(&rules);
    json_decref(env);
}

static void on_done(wh_engine *e, const char *raw, size_t len)
{
    json_t *msg = json_loadb(raw, len, 0, NULL);
    const char *id = json_string_value(json_object_get(msg, "call"));
    if (!id) {
        json_decref(msg);
        return;
    }
    unsigned b = hash(id);
    run **pp = &e->waiting[b];
    while (*pp && strcmp((*pp)->call_id, id) != 0) {
        pp = &(*pp)->next;
    }
    run *r = *pp;
    if (!r) {
        json_decref(msg);
        return;
    }
    *pp = r->next;
    r->next = NULL;
    const wh_step *s = wh_rule_step(r->rule, r->step);
    const char *outcome = json_string_value(json_object_get(msg, "outcome"));
    if (!outcome || strcmp(outcome, "ok") != 0) {
        run_failed(e, r, s, json_string_value(json_object_get(msg, "error")));
        json_decref(msg);
        return;
    }
    const char *as = wh_step_as(s);
    if (as) {
        json_t *result = json_object_get(msg, "result");
        json_object_set(r->ctx, as, result ? result : json_null());
    }
    r->step++;
    advance(e, r);
    json_decref(msg);
}

/*
 * The engine subscribes only to the sources its rules name ("in/<source>/",
 * or "in/" when a rule says `*`), so ZeroMQ drops events no rule could match
 * at the publisher, before they cost a hop. A waiting caller of an instance
 * no rule names therefore gets its fallback at the deadline, not at once.
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

static int any_rule(void *ud, const wh_rule *rule)
{
    (void)ud;
    (void)rule;
    return 1;
}

/*
 * Most events on a busy hub meet no rule. The topic names the source and
 * kind, so such an event is dropped without decoding its JSON — unless a
 * caller waits for it (it then needs its "no rule matched" answer).
 */
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

static void *engine_main(void *arg)
{
    wh_engine *e = arg;
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
            continue;
        }
        if (strncmp(topic, "in/", 3) == 0) {
            if (worth_decoding(e, topic, raw, len)) {
                on_event(e, raw, len);
            }
        } else if (strcmp(topic, e->done_topic) == 0) {
            on_done(e, raw, len);
        }
        free(topic);
        free(raw);
    }
    return NULL;
}

wh_engine *wh_engine_new(void *zctx, const wh_bus_ends *ends, const char *node, wh_rules *rules,
                         char *err, size_t errsize)
{
    wh_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&e->lock, NULL);
    snprintf(e->node, sizeof e->node, "%s", node);
    snprintf(e->done_topic, sizeof e->done_topic, "done/%s/engine", node);
    e->subscribed = wanted_prefixes(rules);
    size_t n = 0;
    const char *prefixes[64 + 2];
    const char *prefix;
    json_t *v;
    int all = json_object_get(e->subscribed, "in/") != NULL || json_object_size(e->subscribed) > 64;
    if (all) {
        /* too many sources to list: take everything under in/ */
        json_decref(e->subscribed);
        e->subscribed = json_pack("{s:b}", "in/", 1);
    }
    json_object_foreach(e->subscribed, prefix, v)
    {
        prefixes[n++] = prefix;
    }
    prefixes[n++] = e->done_topic;
    prefixes[n] = NULL;
    e->pub = wh_pub_new(zctx, ends, 5000);
    e->sub = wh_sub_new(zctx, ends, prefixes, 5000);
    if (!e->pub || !e->sub) {
        snprintf(err, errsize, "cannot join the bus");
        goto fail;
    }
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        snprintf(err, errsize, "cannot start the engine thread");
        goto fail;
    }
    e->started = 1;
    e->rules = rules;
    return e;
fail:
    wh_engine_destroy(&e);
    return NULL;
}

void wh_engine_set_rules(wh_engine *e, wh_rules *rules)
{
    pthread_mutex_lock(&e->lock);
    wh_rules *old = e->rules;
    e->rules = rules;
    pthread_mutex_unlock(&e->lock);
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
    size_t dropped = 0;
    for (size_t i = 0; i < BUCKETS; i++) {
        while (e->waiting[i]) {
            run *r = e->waiting[i];
            e->waiting[i] = r->next;
            dropped++;
            run_free(e, r);
        }
    }
    if (dropped) {
        wh_warn("engine", "stopped with %zu run%s waiting for calls", dropped,
                dropped == 1 ? "" : "s");
    }
    wh_sub_destroy(&e->sub);
    wh_pub_destroy(&e->pub);
    json_decref(e->subscribed);
    if (e->started) {
        wh_rules_unref(&e->rules);
    }
    pthread_mutex_destroy(&e->lock);
    free(e);
    *pe = NULL;
}
