/*
 * sqlbatch.c — binds JSON values to SQLite statements and reads rows back as
 * JSON. It knows no table; the parts write their own SQL.
 */
#include "sqlbatch.h"
#include "log.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

int wh_sqlbatch_add(json_t *batch, const char *sql, json_t *params)
{
    /* Objects and arrays are bound as their JSON text: encode them here, on the
     * thread that queues the statement, so the store's writer (which every part
     * waits on) only binds, and the row holds them as they were when queued. */
    size_t i;
    json_t *v;
    json_array_foreach(params, i, v)
    {
        if (json_is_object(v) || json_is_array(v)) {
            char *text = json_dumps(v, JSON_COMPACT);
            json_t *s = text ? json_stringn_nocheck(text, strlen(text)) : NULL;
            free(text);
            if (!s || json_array_set_new(params, i, s) != 0) {
                json_decref(params);
                return WH_ERR_NOMEM;
            }
        }
    }
    json_t *op = json_pack("[s, o]", sql, params ? params : json_array());
    if (!op) {
        return WH_ERR_NOMEM;
    }
    return json_array_append_new(batch, op) == 0 ? WH_OK : WH_ERR_NOMEM;
}

static int bind_all(sqlite3_stmt *st, const json_t *params)
{
    size_t i;
    json_t *v;
    json_array_foreach(params, i, v)
    {
        int idx = (int)i + 1, rc;
        switch (json_typeof(v)) {
        case JSON_STRING:
            rc = sqlite3_bind_text(st, idx, json_string_value(v), (int)json_string_length(v),
                                   SQLITE_TRANSIENT);
            break;
        case JSON_INTEGER:
            rc = sqlite3_bind_int64(st, idx, json_integer_value(v));
            break;
        case JSON_REAL:
            rc = sqlite3_bind_double(st, idx, json_real_value(v));
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            rc = sqlite3_bind_int(st, idx, json_is_true(v));
            break;
        case JSON_NULL:
            rc = sqlite3_bind_null(st, idx);
            break;
        default: {
            char *text = json_dumps(v, JSON_COMPACT);
            if (!text) {
                return WH_ERR_NOMEM;
            }
            rc = sqlite3_bind_text(st, idx, text, -1, free);
            break;
        }
        }
        if (rc != SQLITE_OK) {
            return wh_sql_status(rc);
        }
    }
    return WH_OK;
}

static int run_one(sqlite3 *db, const char *sql, const json_t *params, json_t *rows)
{
    sqlite3_stmt *st = wh_sql_prepare_cached(db, sql);
    if (!st) {
        wh_error("store", "cannot prepare: %s", sqlite3_errmsg(db));
        return WH_ERR;
    }
    int rc = bind_all(st, params);
    if (rc != WH_OK) {
        return rc;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (!rows) {
            continue;
        }
        json_t *row = json_object();
        int n = sqlite3_column_count(st);
        for (int c = 0; c < n; c++) {
            json_t *val;
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER:
                val = json_integer(sqlite3_column_int64(st, c));
                break;
            case SQLITE_FLOAT:
                val = json_real(sqlite3_column_double(st, c));
                break;
            case SQLITE_NULL:
                val = json_null();
                break;
            default:
                val = json_stringn((const char *)sqlite3_column_text(st, c),
                                   (size_t)sqlite3_column_bytes(st, c));
                break;
            }
            json_object_set_new(row, sqlite3_column_name(st, c), val ? val : json_null());
        }
        json_array_append_new(rows, row);
    }
    if (step != SQLITE_DONE) {
        wh_error("store", "statement failed: %s", sqlite3_errmsg(db));
        return wh_sql_status(step);
    }
    return WH_OK;
}

int wh_sqlbatch_exec(sqlite3 *db, void *ud)
{
    const json_t *batch = ud;
    size_t i;
    json_t *op;
    json_array_foreach(batch, i, op)
    {
        int rc = run_one(db, json_string_value(json_array_get(op, 0)), json_array_get(op, 1), NULL);
        if (rc != WH_OK) {
            return rc;
        }
    }
    return WH_OK;
}

int wh_sql_query(sqlite3 *db, const char *sql, json_t *params, json_t **rows)
{
    *rows = json_array();
    int rc = *rows ? run_one(db, sql, params, *rows) : WH_ERR_NOMEM;
    json_decref(params);
    if (rc != WH_OK) {
        json_decref(*rows);
        *rows = NULL;
    }
    return rc;
}

typedef struct rows_q {
    const char *sql;
    json_t *params; /* handed to wh_sql_query, which takes it */
    json_t *rows;
} rows_q;

static int read_rows(sqlite3 *db, void *ud)
{
    rows_q *q = ud;
    json_t *params = q->params;
    q->params = NULL;
    return wh_sql_query(db, q->sql, params, &q->rows);
}

json_t *wh_store_rows(wh_store *s, const char *sql, json_t *params)
{
    rows_q q = {sql, params ? params : json_array(), NULL};
    int rc = wh_store_read(s, read_rows, &q);
    json_decref(q.params); /* the read never ran */
    if (rc != WH_OK) {
        json_decref(q.rows);
        return NULL;
    }
    return q.rows;
}
