/* The await part against a real store and bus: a poll whose `done/await` the
   bus never brings is taken from the outbox record, and the conversation is
   polled again — it is not left "in flight" until a restart. */
#include "await.h"
#include "bus.h"
#include "sqlbatch.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

#include <sqlite3.h>

static json_t *rows_of(wh_store *s, const char *sql, json_t *params)
{
    return wh_store_rows(s, sql, params);
}

static int write_sql(wh_store *s, const char *sql, json_t *params)
{
    json_t *batch = json_array();
    wh_sqlbatch_add(batch, sql, params);
    int rc = wh_store_write_sync(s, wh_sqlbatch_exec, batch);
    json_decref(batch);
    return rc;
}

/* The next poll call the await part sends to out/<instance>, or NULL within timeout_ms. */
static json_t *next_poll(wh_sub *sub, int timeout_ms)
{
    int64_t end = wh_mono_ms() + timeout_ms;
    while (wh_mono_ms() < end) {
        char *topic = NULL, *raw = NULL;
        size_t len = 0;
        int got = wh_sub_recv_raw(sub, 200, &topic, &raw, &len);
        json_t *msg = got == 1 ? json_loadb(raw, len, 0, NULL) : NULL;
        free(topic);
        free(raw);
        if (msg) {
            return msg;
        }
    }
    return NULL;
}

/* Publish probes on `topic` until `sub` receives one: its subscription has then
 * reached the broker, so nothing published after this is missed. */
static int confirm_sub(wh_pub *pub, wh_sub *sub, const char *topic)
{
    json_t *probe = json_pack("{s:b}", "probe", 1);
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        wh_pub_send(pub, topic, probe);
        char *t = NULL, *raw = NULL;
        size_t len = 0;
        ok = wh_sub_recv_raw(sub, 50, &t, &raw, &len) == 1;
        free(t);
        free(raw);
    }
    json_decref(probe);
    return ok;
}

int main(void)
{
    char *dir = wh_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/state.db", dir);
    char err[256] = "";
    wh_store *store = wh_store_open(path, NULL, err, sizeof err);
    CHECK(store != NULL);
    wh_bus *bus = wh_bus_new(NULL, err, sizeof err);
    CHECK(bus != NULL);
    if (!store || !bus) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    const char *prefixes[] = {"out/team", NULL};
    wh_sub *calls = wh_sub_new(wh_bus_zctx(bus), wh_bus_inproc(bus), prefixes, 5000);
    const char *rp[] = {"in/team/reply", NULL};
    wh_sub *replies = wh_sub_new(wh_bus_zctx(bus), wh_bus_inproc(bus), rp, 5000);
    wh_pub *pub = wh_pub_new(wh_bus_zctx(bus), wh_bus_inproc(bus), 5000);
    CHECK(calls && replies && pub);
    CHECK(confirm_sub(pub, calls, "out/team/probe"));
    CHECK(confirm_sub(pub, replies, "in/team/reply"));

    int64_t now = wh_now_ms();
    CHECK_INT(write_sql(store,
                        "INSERT INTO conversations (id, key, run_id, instance, op, args, every_ms, "
                        "until_ms, next_at_ms, vars, state, created_ms) VALUES ('c1', 'talk/ana', "
                        "'r1', 'team', 'thread_replies', '{\"ts\":\"1.2\"}', 500, ?1, ?2, '{}', "
                        "'open', ?2)",
                        json_pack("[I, I]", (json_int_t)(now + 120000), (json_int_t)now)),
              WH_OK);

    wh_await *a = wh_await_new(store, wh_bus_zctx(bus), wh_bus_inproc(bus), err, sizeof err);
    CHECK(a != NULL);

    /* the first poll goes out; its outcome is recorded but never published */
    json_t *poll = next_poll(calls, 10000);
    CHECK(poll != NULL);
    const char *call = json_string_value(json_object_get(poll, "call"));
    CHECK_STR(json_string_value(json_object_get(poll, "run")), "await:c1");
    CHECK(call != NULL);
    if (!poll || !call) {
        return wh_test_done("await");
    }
    CHECK_INT(write_sql(store,
                        "UPDATE outbox SET state = 'done', result = ?1 WHERE id = ?2",
                        json_pack("[s, s]",
                                  "{\"items\":[{\"id\":\"1.3\",\"author\":\"U2\",\"text\":\"on "
                                  "my way\",\"time\":\"2026-11-27T10:00:00.000Z\"}],"
                                  "\"cursor\":\"next-1\"}",
                                  call)),
              WH_OK);

    /* the reply is stored from the record, and polling goes on from its cursor */
    json_t *again = next_poll(calls, 20000);
    CHECK(again != NULL);
    if (again) {
        CHECK(strcmp(json_string_value(json_object_get(again, "call")), call) != 0);
        CHECK_STR(json_string_value(json_object_get(again, "cursor")), "next-1");
    }
    json_t *rows = rows_of(store, "SELECT id, author, text, time FROM replies WHERE key = ?1",
                           json_pack("[s]", "talk/ana"));
    CHECK_INT(json_array_size(rows), 1);
    json_t *r0 = json_array_get(rows, 0);
    CHECK_STR(json_string_value(json_object_get(r0, "text")), "on my way");
    CHECK_STR(json_string_value(json_object_get(r0, "time")), "2026-11-27T10:00:00.000Z");
    json_decref(rows);

    /* the same outcome handled a second time (the bus was only slow) stores nothing twice */
    json_t *late = json_pack("{s:s, s:s, s:s, s:{s:[{s:s, s:s}], s:s}}", "call", call, "run",
                             "await:c1", "outcome", "ok", "result", "items", "id", "1.3",
                             "text", "on my way", "cursor", "next-1");
    CHECK_INT(wh_pub_send(pub, "done/await", late), 0);
    json_decref(late);
    /* a marker the await part handles after the late outcome: the state is settled then */
    late = json_pack("{s:s, s:s, s:s, s:{s:[{s:s, s:s}]}}", "call", "other", "run", "await:c1",
                     "outcome", "ok", "result", "items", "id", "1.4", "text", "marker");
    CHECK_INT(wh_pub_send(pub, "done/await", late), 0);
    json_decref(late);
    json_t *marker = NULL;
    for (int i = 0; i < 3 && !marker; i++) {
        marker = next_poll(replies, 10000); /* the first reply (1.3) came before: skip it */
        if (marker && strcmp(json_string_value(json_object_get(
                                 json_object_get(marker, "data"), "text")) ?: "",
                             "marker") != 0) {
            json_decref(marker);
            marker = NULL;
        }
    }
    CHECK(marker != NULL);
    CHECK_STR(json_string_value(json_object_get(json_object_get(marker, "data"), "text")),
              "marker");
    json_decref(marker);
    rows = rows_of(store, "SELECT id FROM replies WHERE key = ?1 ORDER BY id",
                   json_pack("[s]", "talk/ana"));
    CHECK_INT(json_array_size(rows), 2);
    json_decref(rows);

    /* an edit (the same id, new text) replaces the stored text; it is no new reply */
    CHECK_INT(write_sql(store, "UPDATE replies SET read = 1 WHERE key = ?1 AND id = '1.3'",
                        json_pack("[s]", "talk/ana")),
              WH_OK);
    late = json_pack("{s:s, s:s, s:s, s:{s:[{s:s, s:s}, {s:s, s:s}]}}", "call", "edit", "run",
                     "await:c1", "outcome", "ok", "result", "items", "id", "1.3", "text",
                     "on my way, 5 min late", "id", "1.5", "text", "marker 2");
    CHECK_INT(wh_pub_send(pub, "done/await", late), 0);
    json_decref(late);
    marker = next_poll(replies, 10000);
    CHECK(marker != NULL);
    /* the first reply event after the edit is the new item's, not the edited one's */
    CHECK_STR(json_string_value(json_object_get(json_object_get(marker, "data"), "id")), "1.5");
    json_decref(marker);
    rows = rows_of(store, "SELECT id, text, author, read FROM replies WHERE key = ?1 ORDER BY id",
                   json_pack("[s]", "talk/ana"));
    CHECK_INT(json_array_size(rows), 3);
    r0 = json_array_get(rows, 0);
    CHECK_STR(json_string_value(json_object_get(r0, "text")), "on my way, 5 min late");
    CHECK_STR(json_string_value(json_object_get(r0, "author")), "U2"); /* kept: the edit has none */
    CHECK_INT(json_integer_value(json_object_get(r0, "read")), 1);     /* read stays read */
    json_decref(rows);

    json_decref(poll);
    json_decref(again);
    wh_await_destroy(&a);
    wh_sub_destroy(&replies);
    wh_sub_destroy(&calls);
    wh_pub_destroy(&pub);
    wh_bus_destroy(&bus);
    wh_store_close(&store);
    free(dir);
    return wh_test_done("await");
}
