/*
 * api.c — tokens and reply queries for the replies API. It reads and writes
 * the store synchronously (short statements) and knows nothing of HTTP.
 */
#include "api.h"
#include "sqlbatch.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct wh_api {
    json_t *tokens; /* [{token, keys}] */
    wh_store *store;
};

wh_api *wh_api_new(const json_t *tokens, wh_store *store)
{
    wh_api *api = calloc(1, sizeof *api);
    if (!api) {
        return NULL;
    }
    api->store = store;
    api->tokens = json_array();
    const char *name;
    json_t *t;
    json_object_foreach((json_t *)tokens, name, t)
    {
        json_array_append_new(api->tokens, json_deep_copy(t));
    }
    return api;
}

void wh_api_destroy(wh_api **papi)
{
    wh_api *api = papi ? *papi : NULL;
    if (!api) {
        return;
    }
    json_decref(api->tokens);
    free(api);
    *papi = NULL;
}

int wh_api_auth(const wh_api *api, const char *authorization, const char *key)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) {
        return 401;
    }
    const char *given = authorization + 7;
    size_t glen = strlen(given);
    const json_t *match = NULL;
    size_t i;
    json_t *t;
    /* every token is compared, so the time taken says nothing about which matched */
    json_array_foreach(api->tokens, i, t)
    {
        const json_t *tok = json_object_get(t, "token");
        if (wh_ct_equal(json_string_value(tok), json_string_length(tok), given, glen) && !match) {
            match = t;
        }
    }
    if (!match) {
        return 401;
    }
    json_t *prefix;
    json_array_foreach(json_object_get(match, "keys"), i, prefix)
    {
        const char *p = json_string_value(prefix);
        if (p && strncmp(key, p, strlen(p)) == 0) {
            return 0;
        }
    }
    return 403;
}

/*
 * Replies being taken (read and marked) but not committed yet, by key: the
 * highest seq taken and how many takers hold it. The engine's unread loads
 * and the API's marking reads skip them, so two takers never hand out one
 * reply. Process-wide: both sides know a key only by its name.
 */
static pthread_mutex_t taking_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *taking; /* key → [seq, holders] */

json_int_t wh_replies_take_begin(const char *key)
{
    pthread_mutex_lock(&taking_lock);
    return json_integer_value(json_array_get(json_object_get(taking, key), 0));
}

void wh_replies_take_end(const char *key, json_int_t last)
{
    if (last > 0) {
        if (!taking) {
            taking = json_object();
        }
        json_t *t = json_object_get(taking, key);
        if (t) {
            json_int_t was = json_integer_value(json_array_get(t, 0));
            json_array_set_new(t, 0, json_integer(last > was ? last : was));
            json_array_set_new(t, 1, json_integer(json_integer_value(json_array_get(t, 1)) + 1));
        } else {
            json_object_set_new(taking, key, json_pack("[I, i]", last, 1));
        }
    }
    pthread_mutex_unlock(&taking_lock);
}

void wh_replies_taken(const char *key)
{
    pthread_mutex_lock(&taking_lock);
    json_t *t = json_object_get(taking, key);
    json_int_t holders = json_integer_value(json_array_get(t, 1)) - 1;
    if (t && holders > 0) {
        json_array_set_new(t, 1, json_integer(holders));
    } else if (t) {
        json_object_del(taking, key);
    }
    if (taking && json_object_size(taking) == 0) {
        json_decref(taking);
        taking = NULL;
    }
    pthread_mutex_unlock(&taking_lock);
}

typedef struct req {
    const char *key, *since;
    int unread_only, peek;
    json_t *rows;
    json_int_t unread;
    json_int_t floor; /* only replies after this seq (another taker has those up to it) */
} req;

static int read_replies(sqlite3 *db, void *ud)
{
    req *q = ud;
    json_t *since = NULL;
    json_int_t after = 0;
    if (q->since) {
        int rc = wh_sql_query(db, "SELECT seq FROM replies WHERE key = ?1 AND id = ?2",
                              json_pack("[s, s]", q->key, q->since), &since);
        if (rc != WH_OK) {
            return rc;
        }
        after = json_integer_value(json_object_get(json_array_get(since, 0), "seq"));
        json_decref(since);
    }
    int rc = wh_sql_query(db,
                          q->unread_only
                              ? "SELECT seq, id, author, text, time, source FROM replies WHERE key "
                                "= ?1 AND seq > ?2 AND read = 0 ORDER BY seq"
                              : "SELECT seq, id, author, text, time, source FROM replies WHERE key "
                                "= ?1 AND seq > ?2 ORDER BY seq",
                          json_pack("[s, I]", q->key, after > q->floor ? after : q->floor),
                          &q->rows);
    if (rc != WH_OK) {
        return rc;
    }
    json_t *cnt = NULL;
    rc = wh_sql_query(db, "SELECT count(*) AS n FROM replies WHERE key = ?1 AND read = 0",
                      json_pack("[s]", q->key), &cnt);
    q->unread = json_integer_value(json_object_get(json_array_get(cnt, 0), "n"));
    json_decref(cnt);
    return rc;
}

/*
 * A marking read, as one write job: the replies are read and marked in the
 * writer's transaction, so two callers at once never both take one reply.
 */
static int take_replies(sqlite3 *db, void *ud)
{
    req *q = ud;
    q->floor = wh_replies_take_begin(q->key);
    int rc = read_replies(db, q);
    size_t n = json_array_size(q->rows);
    json_int_t last =
        n ? json_integer_value(json_object_get(json_array_get(q->rows, n - 1), "seq")) : 0;
    wh_replies_take_end(q->key, rc == WH_OK ? last : 0);
    q->floor = rc == WH_OK ? last : 0; /* held until committed (wh_api_replies) */
    if (rc != WH_OK || n == 0) {
        return rc;
    }
    json_t *batch = json_array();
    wh_sqlbatch_add(batch, "UPDATE replies SET read = 1 WHERE key = ?1 AND read = 0 AND seq <= ?2",
                    json_pack("[s, I]", q->key, last));
    rc = wh_sqlbatch_exec(db, batch);
    json_decref(batch);
    if (rc == WH_OK) {
        q->unread -= (json_int_t)n;
        if (q->unread < 0) {
            q->unread = 0;
        }
    }
    return rc;
}

json_t *wh_api_replies(wh_api *api, const char *key, int unread_only, int peek, const char *since,
                       size_t *count)
{
    req q = {key, since, unread_only, peek, NULL, 0, 0};
    int marks = unread_only && !peek;
    int rc = marks ? wh_store_write_sync(api->store, take_replies, &q)
                   : wh_store_read(api->store, read_replies, &q);
    if (marks && q.floor > 0) {
        wh_replies_taken(key); /* committed (or failed, and then free to take again) */
    }
    if (rc != WH_OK) {
        json_decref(q.rows);
        return NULL;
    }
    size_t i;
    json_t *row;
    json_array_foreach(q.rows, i, row)
    {
        json_object_del(row, "seq");
    }
    *count = json_array_size(q.rows);
    return json_pack("{s:s, s:o, s:I}", "key", key, "replies", q.rows, "unread", q.unread);
}
