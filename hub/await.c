/*
 * await.c — owns the life of conversations after the engine opened them:
 * when each is next polled, which pushed events count as its replies, and
 * when it closes (its `for` ran out, or a `stop_await`).
 *
 * A poll is a call like any other: it goes into the outbox (run
 * "await:<conversation>") so delivery applies the same caps, retries and
 * dead letters, and its outcome comes back on `done/await` with new items
 * and the cursor to continue from. Items are stored once per key and id —
 * an item both pushed and polled is stored once — and only after that
 * commit is each new one published as `in/<instance>/reply` with the key,
 * the key's unread count, the item and the await's `vars`.
 *
 * One thread; the store holds the truth, memory only what is in flight.
 */
#include "await.h"
#include "envelope.h"
#include "log.h"
#include "match.h"
#include "sqlbatch.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define TICK_MS 1000
/* A poll in flight this long is looked up in the outbox: its `done/await` may
 * have been lost on the bus (a high-water-mark drop), and without a look the
 * conversation would never be polled again until a restart. */
#define POLL_CHECK_MS 5000

typedef struct collector {
    struct collector *next;
    char *id, *key, *instance, *on_source, *on_kind;
    wh_match *match;
    json_t *vars;
    int64_t until_ms; /* the await's `for` ends: collect nothing after it */
} collector;

struct wh_await {
    wh_store *store;
    wh_pub *pub;
    wh_sub *sub;
    pthread_t thread;
    int started;
    atomic_int stopping;
    json_t *polling;    /* conversation id → {call, since} while its poll is in flight */
    collector *collectors;
    json_t *subscribed; /* "in/<source>/<kind>" prefixes for collectors */
};

static json_t *query(wh_await *a, const char *sql, json_t *params)
{
    return wh_store_rows(a->store, sql, params);
}

static int commit(wh_await *a, json_t *sql)
{
    if (json_array_size(sql) == 0) {
        return WH_OK;
    }
    int rc = wh_store_write_sync(a->store, wh_sqlbatch_exec, sql);
    if (rc != WH_OK && !wh_store_gone(a->store)) { /* the store says that itself, every 10 s */
        /* a full disk fails every save: one line per 10 s, with how many */
        static int64_t said_ms;
        static unsigned long failed;
        failed++;
        int64_t now = wh_mono_ms();
        if (!said_ms || now - said_ms >= 10000) {
            wh_error("await", "cannot save (%lu time%s since the last such line): %s", failed,
                     failed == 1 ? "" : "s", wh_strerror(rc));
            said_ms = now;
            failed = 0;
        }
    }
    return rc;
}

static void collectors_free(wh_await *a)
{
    while (a->collectors) {
        collector *c = a->collectors;
        a->collectors = c->next;
        free(c->id);
        free(c->key);
        free(c->instance);
        free(c->on_source);
        free(c->on_kind);
        wh_match_destroy(&c->match);
        json_decref(c->vars);
        free(c);
    }
}

/* Rebuild the collectors of open conversations and subscribe to their events. */
static void refresh_collectors(wh_await *a)
{
    collectors_free(a);
    json_t *rows = query(a,
                         "SELECT id, key, instance, vars, collect, until_ms FROM conversations "
                         "WHERE state = 'open' AND collect IS NOT NULL",
                         NULL);
    json_t *want = json_object();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_t *collect =
            json_loads(json_string_value(json_object_get(row, "collect")), 0, NULL);
        const char *on = json_string_value(json_object_get(collect, "on"));
        const char *slash = on ? strchr(on, '/') : NULL;
        collector *c = slash ? calloc(1, sizeof *c) : NULL;
        if (c) {
            c->id = strdup(json_string_value(json_object_get(row, "id")));
            c->key = strdup(json_string_value(json_object_get(row, "key")));
            c->instance = strdup(json_string_value(json_object_get(row, "instance")));
            c->on_source = strndup(on, (size_t)(slash - on));
            c->on_kind = strdup(slash + 1);
            c->match = wh_match_compile(NULL, NULL, json_object_get(collect, "if"), NULL);
            c->vars = json_loads(json_string_value(json_object_get(row, "vars")), 0, NULL);
            json_t *until = json_object_get(row, "until_ms");
            c->until_ms = json_is_integer(until) ? json_integer_value(until) : INT64_MAX;
            c->next = a->collectors;
            a->collectors = c;
            char prefix[160];
            if (strcmp(c->on_source, "*") == 0) {
                snprintf(prefix, sizeof prefix, "in/");
            } else if (strcmp(c->on_kind, "*") == 0) {
                snprintf(prefix, sizeof prefix, "in/%s/", c->on_source);
            } else {
                snprintf(prefix, sizeof prefix, "in/%s/%s", c->on_source, c->on_kind);
            }
            json_object_set_new(want, prefix, json_true());
        }
        json_decref(collect);
    }
    json_decref(rows);
    void *sock = wh_sub_socket(a->sub);
    const char *prefix;
    json_t *v;
    json_object_foreach(want, prefix, v)
    {
        if (!json_object_get(a->subscribed, prefix)) {
            zmq_setsockopt(sock, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
        }
    }
    json_object_foreach(a->subscribed, prefix, v)
    {
        if (!json_object_get(want, prefix)) {
            zmq_setsockopt(sock, ZMQ_UNSUBSCRIBE, prefix, strlen(prefix));
        }
    }
    json_decref(a->subscribed);
    a->subscribed = want;
}

/*
 * Store the items not yet stored under `key`, then publish one reply event
 * for each new one. Ownership: borrows items (an array of objects with id).
 */
static void store_items(wh_await *a, const char *key, const char *instance, const json_t *vars,
                        const json_t *items, json_t *extra_sql)
{
    json_t *sql = extra_sql ? extra_sql : json_array();
    json_t *fresh = json_array();
    int64_t now = wh_now_ms();
    size_t i, skipped = 0, edited = 0;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        const json_t *idv = json_object_get(item, "id");
        char idbuf[64];
        const char *id = json_string_value(idv);
        if (!id && json_is_integer(idv)) {
            snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(idv));
            id = idbuf;
        }
        if (!id) {
            skipped++;
            continue;
        }
        json_t *have = query(a, "SELECT text FROM replies WHERE key = ?1 AND id = ?2",
                             json_pack("[s, s]", key, id));
        int dup = json_array_size(have) > 0;
        const char *text = json_string_value(json_object_get(item, "text"));
        const char *was = json_string_value(json_object_get(json_array_get(have, 0), "text"));
        if (dup && text && (!was || strcmp(was, text) != 0)) {
            /* edited since it was stored: what is read from now on is the new text */
            wh_sqlbatch_add(sql,
                            "UPDATE replies SET text = ?3, author = coalesce(?4, author), "
                            "item = ?5 WHERE key = ?1 AND id = ?2",
                            json_pack("[s, s, s, s?, O]", key, id, text,
                                      json_string_value(json_object_get(item, "author")), item));
            edited++;
        }
        json_decref(have);
        for (size_t k = 0; !dup && k < json_array_size(fresh); k++) {
            dup = strcmp(json_string_value(json_object_get(json_array_get(fresh, k), "id")), id) ==
                  0;
        }
        if (dup) {
            continue;
        }
        char ts[40];
        wh_time_rfc3339(now, ts, sizeof ts);
        const char *time = json_string_value(json_object_get(item, "time"));
        json_t *row = json_pack("{s:s, s:s?, s:s?, s:s, s:s}", "id", id, "author",
                                json_string_value(json_object_get(item, "author")), "text",
                                json_string_value(json_object_get(item, "text")), "time",
                                time ? time : ts, "source", instance);
        if (!row) {
            continue;
        }
        wh_sqlbatch_add(sql,
                        "INSERT OR IGNORE INTO replies (key, id, author, text, time, source, item, "
                        "read, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
                        json_pack("[s, s, O, O, O, s, O, I]", key, id,
                                  json_object_get(row, "author"), json_object_get(row, "text"),
                                  json_object_get(row, "time"), instance, item,
                                  (json_int_t)now));
        json_object_set(row, "item", (json_t *)item);
        json_array_append_new(fresh, row);
    }
    if (skipped) {
        /* items are stored once by id: one without cannot be (a connector's bug) */
        wh_warn("await", "skipped %zu item(s) without an `id` (a string or integer) key=%s",
                skipped, wh_log_q(key));
    }
    int committed = commit(a, sql) == WH_OK;
    if (committed && edited) {
        wh_info("await", "updated %zu edited repl%s key=%s", edited, edited == 1 ? "y" : "ies",
                wh_log_q(key));
    }
    if (committed && json_array_size(fresh) > 0) {
        json_t *cnt = query(a, "SELECT count(*) AS n FROM replies WHERE key = ?1 AND read = 0",
                            json_pack("[s]", key));
        json_int_t unread = json_integer_value(json_object_get(json_array_get(cnt, 0), "n"));
        json_decref(cnt);
        char topic[WH_TOPIC_MAX];
        snprintf(topic, sizeof topic, "in/%s/reply", instance);
        json_array_foreach(fresh, i, item)
        {
            json_object_set_new(item, "key", json_string(key));
            json_object_set_new(item, "unread", json_integer(unread));
            json_object_set(item, "vars", vars ? (json_t *)vars : json_object());
            json_t *env = wh_env_new(instance, "reply", json_incref(item));
            if (env) {
                wh_pub_send(a->pub, topic, env);
                json_decref(env);
            } else {
                json_decref(item);
            }
        }
        /* long polls of the replies API wait on this */
        char rtopic[WH_TOPIC_MAX];
        if ((size_t)snprintf(rtopic, sizeof rtopic, "reply/%s", key) < sizeof rtopic) {
            json_t *note = json_pack("{s:s, s:I}", "key", key, "unread", unread);
            wh_pub_send(a->pub, rtopic, note);
            json_decref(note);
        }
        wh_info("await", "stored %zu new repl%s key=%s unread=%lld", json_array_size(fresh),
                json_array_size(fresh) == 1 ? "y" : "ies", wh_log_q(key), (long long)unread);
    }
    json_decref(fresh);
    json_decref(sql);
}

static void on_poll_done(wh_await *a, const json_t *msg);

/*
 * Polls in flight for POLL_CHECK_MS are looked up in the outbox. One that
 * finished is handled from its record, as if `done/await` had come (it was
 * recorded before it was published, so the record is the truth); one whose
 * record is gone is forgotten. Storing is by id, so an outcome handled twice
 * (the bus was only slow) stores nothing twice.
 */
static void check_polls(wh_await *a)
{
    int64_t now = wh_mono_ms();
    json_t *late = json_array();
    const char *id;
    json_t *p;
    json_object_foreach(a->polling, id, p)
    {
        if (now - json_integer_value(json_object_get(p, "since")) >= POLL_CHECK_MS) {
            json_array_append_new(late, json_pack("[s, O]", id, json_object_get(p, "call")));
        }
    }
    size_t i;
    json_t *pair;
    json_array_foreach(late, i, pair)
    {
        const char *conv = json_string_value(json_array_get(pair, 0));
        const char *call = json_string_value(json_array_get(pair, 1));
        json_t *rows = query(a, "SELECT state, result, last_error AS error FROM outbox WHERE id = ?1",
                             json_pack("[s]", call));
        if (!rows) {
            continue; /* the store did not answer: look again next tick */
        }
        json_t *row = json_array_get(rows, 0);
        const char *state = json_string_value(json_object_get(row, "state"));
        if (!row) {
            json_object_del(a->polling, conv);
        } else if (state && (strcmp(state, "done") == 0 || strcmp(state, "dead") == 0)) {
            const char *res = json_string_value(json_object_get(row, "result"));
            json_t *result = res ? json_loads(res, JSON_DECODE_ANY, NULL) : NULL;
            char run[128];
            snprintf(run, sizeof run, "await:%s", conv);
            json_t *msg = json_pack("{s:s, s:s, s:s, s:o?, s:O?}", "call", call, "run", run,
                                    "outcome", strcmp(state, "done") == 0 ? "ok" : "failed",
                                    "result", result, "error", json_object_get(row, "error"));
            if (msg) {
                wh_warn("await", "took poll %s's outcome from the outbox (the bus had not "
                        "delivered it)", call);
                on_poll_done(a, msg);
            }
            json_decref(msg);
        } else {
            /* still pending or retrying: give it another POLL_CHECK_MS */
            json_object_set_new(json_object_get(a->polling, conv), "since", json_integer(now));
        }
        json_decref(rows);
    }
    json_decref(late);
}

/* Close expired conversations; start the polls that are due. */
static int64_t tick(wh_await *a)
{
    check_polls(a);
    int64_t now = wh_now_ms();
    json_t *sql = json_array();
    wh_sqlbatch_add(sql,
                    "UPDATE conversations SET state = 'closed' WHERE state = 'open' AND until_ms "
                    "<= ?1",
                    json_pack("[I]", (json_int_t)now));
    json_t *due = query(a,
                        "SELECT id, instance, op, args, cursor, every_ms FROM conversations WHERE "
                        "state = 'open' AND until_ms > ?1 AND next_at_ms <= ?1 ORDER BY "
                        "next_at_ms LIMIT 200",
                        json_pack("[I]", (json_int_t)now));
    json_t *calls = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(due, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        if (json_object_get(a->polling, id)) {
            continue;
        }
        char call[160], run[120];
        snprintf(call, sizeof call, "%s.poll.%lld", id, (long long)now);
        snprintf(run, sizeof run, "await:%s", id);
        json_t *args =
            json_loads(json_string_value(json_object_get(row, "args")), JSON_DECODE_ANY, NULL);
        const char *cur = json_string_value(json_object_get(row, "cursor"));
        json_t *cursor = cur ? json_loads(cur, JSON_DECODE_ANY, NULL) : NULL;
        wh_sqlbatch_add(sql,
                        "INSERT OR IGNORE INTO outbox (id, run_id, step, instance, op, args, key, "
                        "state, attempts, next_at_ms, created_ms, updated_ms) VALUES (?1, ?2, 0, "
                        "?3, ?4, ?5, ?1, 'pending', 0, ?6, ?6, ?6)",
                        json_pack("[s, s, O, O, O, I]", call, run, json_object_get(row, "instance"),
                                  json_object_get(row, "op"), args ? args : json_null(),
                                  (json_int_t)now));
        wh_sqlbatch_add(sql, "UPDATE conversations SET next_at_ms = ?1 WHERE id = ?2",
                        json_pack("[I, s]",
                                  (json_int_t)(now +
                                               json_integer_value(json_object_get(row, "every_ms"))),
                                  id));
        json_array_append_new(calls, json_pack("{s:s, s:s, s:O, s:O, s:o, s:s, s:i, s:o}", "call",
                                               call, "run", run, "instance",
                                               json_object_get(row, "instance"), "op",
                                               json_object_get(row, "op"), "args",
                                               args ? args : json_object(), "key", call,
                                               "attempts", 0, "cursor",
                                               cursor ? cursor : json_null()));
        json_object_set_new(a->polling, id,
                            json_pack("{s:s, s:I}", "call", call, "since",
                                      (json_int_t)wh_mono_ms()));
    }
    json_decref(due);
    if (commit(a, sql) == WH_OK) {
        json_array_foreach(calls, i, row)
        {
            char topic[WH_TOPIC_MAX];
            snprintf(topic, sizeof topic, "out/%s",
                     json_string_value(json_object_get(row, "instance")));
            wh_pub_send(a->pub, topic, row);
        }
    } else {
        json_object_clear(a->polling);
    }
    json_decref(calls);
    json_decref(sql);
    /* sleep until the next poll is due (at most a tick) */
    json_t *next = query(a,
                         "SELECT min(next_at_ms) AS t FROM conversations WHERE state = 'open'",
                         NULL);
    json_t *t = json_object_get(json_array_get(next, 0), "t");
    int64_t wait = json_is_integer(t) ? json_integer_value(t) - wh_now_ms() : TICK_MS;
    json_decref(next);
    return wait < 10 ? 10 : (wait > TICK_MS ? TICK_MS : wait);
}

static void on_poll_done(wh_await *a, const json_t *msg)
{
    const char *run = json_string_value(json_object_get(msg, "run"));
    if (!run || strncmp(run, "await:", 6) != 0) {
        return;
    }
    const char *id = run + 6;
    /* only this poll's outcome frees the conversation for its next poll: a late
     * duplicate of an earlier one (see check_polls) must not start a second */
    const char *call = json_string_value(json_object_get(msg, "call"));
    const char *flying =
        json_string_value(json_object_get(json_object_get(a->polling, id), "call"));
    if (call && flying && strcmp(call, flying) == 0) {
        json_object_del(a->polling, id);
    }
    json_t *rows = query(a, "SELECT key, instance, vars FROM conversations WHERE id = ?1",
                         json_pack("[s]", id));
    json_t *conv = json_array_get(rows, 0);
    const char *outcome = json_string_value(json_object_get(msg, "outcome"));
    if (conv && outcome && strcmp(outcome, "ok") == 0) {
        const json_t *result = json_object_get(msg, "result");
        json_t *sql = json_array();
        /* kept as JSON text whatever its type: a bare string bound as text would not
         * read back (`next-1` is no JSON), and the next poll would start over */
        char *cursor = json_object_get(result, "cursor")
                           ? json_dumps(json_object_get(result, "cursor"),
                                        JSON_COMPACT | JSON_ENCODE_ANY)
                           : NULL;
        if (cursor) {
            wh_sqlbatch_add(sql, "UPDATE conversations SET cursor = ?1 WHERE id = ?2",
                            json_pack("[s, s]", cursor, id));
        }
        free(cursor);
        json_t *vars = json_loads(json_string_value(json_object_get(conv, "vars")), 0, NULL);
        store_items(a, json_string_value(json_object_get(conv, "key")),
                    json_string_value(json_object_get(conv, "instance")), vars,
                    json_object_get(result, "items"), sql);
        json_decref(vars);
    } else if (conv && json_is_true(json_object_get(msg, "permanent"))) {
        /* refused for good (a thread that is gone, a token revoked): polling again would
         * only add a dead letter every `every`. Pushed replies are still collected until
         * the await's `for` ends. */
        json_t *sql = json_array();
        wh_sqlbatch_add(sql,
                        "UPDATE conversations SET next_at_ms = until_ms WHERE id = ?1 AND state = "
                        "'open'",
                        json_pack("[s]", id));
        commit(a, sql);
        json_decref(sql);
        wh_warn("await", "poll for %s failed for good: %s; no more polls for key=%s", id,
                json_string_value(json_object_get(msg, "error")) ?: "failed",
                wh_log_q(json_string_value(json_object_get(conv, "key"))));
    } else if (conv) {
        wh_warn("await", "poll for %s failed: %s; next poll as scheduled", id,
                json_string_value(json_object_get(msg, "error")) ?: "failed");
    }
    json_decref(rows);
}

/* An event on a collector's topic: stored as a reply when it matches. */
static void on_pushed(wh_await *a, const char *raw, size_t len)
{
    char err[160];
    json_t *env = wh_env_decode(raw, len, err, sizeof err);
    if (!env) {
        return;
    }
    const char *source = json_string_value(json_object_get(env, "source"));
    const char *kind = json_string_value(json_object_get(env, "kind"));
    const json_t *data = json_object_get(env, "data");
    int64_t now = wh_now_ms();
    for (collector *c = a->collectors; c; c = c->next) {
        if (now >= c->until_ms) {
            continue; /* its `for` is over (the tick closes it and drops it) */
        }
        if ((strcmp(c->on_source, "*") != 0 && strcmp(c->on_source, source) != 0) ||
            (strcmp(c->on_kind, "*") != 0 && strcmp(c->on_kind, kind) != 0) ||
            (c->match && !wh_match_eval(c->match, data))) {
            continue;
        }
        /* the item as a poll would give it: the platform's id (Slack's ts) when there is one */
        const json_t *id = json_object_get(data, "id");
        if (!json_is_string(id)) {
            id = json_object_get(data, "ts");
        }
        if (!json_is_string(id)) {
            id = json_object_get(env, "id");
        }
        const json_t *author = json_object_get(data, "author");
        if (!json_is_string(author)) {
            author = json_object_get(data, "user");
        }
        /* the message's own time when the connector gives one (as a poll would),
         * else when the hub received it */
        const json_t *when = json_object_get(data, "time");
        json_t *item = json_pack("{s:O, s:O?, s:O?, s:O}", "id", id, "author",
                                 json_is_string(author) ? author : NULL, "text",
                                 json_object_get(data, "text"), "time",
                                 json_is_string(when) ? when : json_object_get(env, "time"));
        json_t *items = item ? json_pack("[o]", item) : NULL;
        if (items) {
            store_items(a, c->key, c->instance, c->vars, items, NULL);
        }
        json_decref(items);
    }
    json_decref(env);
}

static void *await_main(void *arg)
{
    wh_await *a = arg;
    refresh_collectors(a);
    int64_t next_tick = 0;
    while (!atomic_load(&a->stopping)) {
        int64_t now = wh_mono_ms();
        if (now >= next_tick) {
            next_tick = now + tick(a);
        }
        char *topic, *raw;
        size_t len;
        int64_t wait = next_tick - wh_mono_ms();
        int got = wh_sub_recv_raw(a->sub, (int)(wait < 0 ? 0 : (wait > 200 ? 200 : wait)), &topic,
                                  &raw, &len);
        if (got < 0) {
            break;
        }
        if (got == 0) {
            continue;
        }
        if (strcmp(topic, "await/changed") == 0) {
            refresh_collectors(a);
            next_tick = 0;
        } else if (strcmp(topic, "done/await") == 0) {
            json_t *msg = json_loadb(raw, len, 0, NULL);
            if (msg) {
                on_poll_done(a, msg);
            }
            json_decref(msg);
        } else if (strncmp(topic, "in/", 3) == 0) {
            on_pushed(a, raw, len);
        }
        free(topic);
        free(raw);
    }
    return NULL;
}

wh_await *wh_await_new(wh_store *store, void *zctx, const wh_bus_ends *ends, char *err,
                       size_t errsize)
{
    wh_await *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    a->store = store;
    a->polling = json_object();
    a->subscribed = json_object();
    const char *prefixes[] = {"await/changed", "done/await", NULL};
    a->pub = wh_pub_new(zctx, ends, 5000);
    a->sub = wh_sub_new(zctx, ends, prefixes, 5000);
    if (!a->pub || !a->sub) {
        snprintf(err, errsize, "cannot join the bus");
        goto fail;
    }
    if (pthread_create(&a->thread, NULL, await_main, a) != 0) {
        snprintf(err, errsize, "cannot start the await thread");
        goto fail;
    }
    a->started = 1;
    return a;
fail:
    wh_await_destroy(&a);
    return NULL;
}

void wh_await_destroy(wh_await **pa)
{
    wh_await *a = pa ? *pa : NULL;
    if (!a) {
        return;
    }
    atomic_store(&a->stopping, 1);
    if (a->started) {
        pthread_join(a->thread, NULL);
    }
    collectors_free(a);
    wh_sub_destroy(&a->sub);
    wh_pub_destroy(&a->pub);
    json_decref(a->polling);
    json_decref(a->subscribed);
    free(a);
    *pa = NULL;
}
