/*
 * sqlbatch.h — SQL statements with JSON parameters: built by a part on its
 * own thread, executed later inside one store job; and queries whose rows
 * come back as JSON objects.
 */
#ifndef WH_SQLBATCH_H
#define WH_SQLBATCH_H
#include "store.h"
#include <jansson.h>

/**
 * Append one statement to `batch` (a json array). `params` (an array, or NULL)
 * binds ?1, ?2, …: strings as text, integers, reals, null, booleans as 0/1,
 * objects and arrays as their compact JSON text. Ownership: takes params.
 */
int wh_sqlbatch_add(json_t *batch, const char *sql, json_t *params);

/** A wh_store_fn: execute every statement of the batch (`ud`, borrowed) in order. */
int wh_sqlbatch_exec(sqlite3 *db, void *ud);

/**
 * Run one query and return its rows as an array of objects (column → value):
 * INTEGER → integer, FLOAT → real, TEXT → string, NULL → null. Ownership:
 * takes params; *rows is a new reference. Returns WH_OK or a WH_ERR_* code.
 */
int wh_sql_query(sqlite3 *db, const char *sql, json_t *params, json_t **rows);
/**
 * The rows of one query, read through the store's read pool (wh_store_read
 * running wh_sql_query): a new array, or NULL when the store refused.
 * Ownership: takes params (also when the read fails).
 */
json_t *wh_store_rows(wh_store *s, const char *sql, json_t *params);

#endif
