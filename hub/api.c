/*
 * api.c — tokens and reply queries for the replies API. It reads and writes
 * the store synchronously (short statements) and knows nothing of HTTP.
 */
#include "api.h"
#include "sqlbatch.h"
#include "util.h"

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

typedef struct req {
    const char *key, *since;
    int unread_only, peek;
    json_t *rows;
    json_int_t unread;
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
                          json_pack("[s, I]", q->key, after), &q->rows);
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
    int rc = read_replies(db, q);
    size_t n = json_array_size(q->rows);
    if (rc != WH_OK || n == 0) {
        return rc;
    }
    json_int_t last = json_integer_value(json_object_get(json_array_get(q->rows, n - 1), "seq"));
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
    req q = {key, since, unread_only, peek, NULL, 0};
    int marks = unread_only && !peek;
    int rc = marks ? wh_store_write_sync(api->store, take_replies, &q)
                   : wh_store_read(api->store, read_replies, &q);
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
