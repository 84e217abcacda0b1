/*
 * migrate.c — owns the schema of the state file: an append-only array of
 * migrations, PRAGMA user_version as the version and PRAGMA application_id as
 * the mark that a SQLite file is wirehub's. It must not change a migration that
 * has shipped (add a new one instead), and must not open, close or configure
 * connections: store.c does that and calls wh_migrate() once per open.
 */
#include "store.h"
#include "log.h"
#include "util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

/* "WHB1": marks the file as a wirehub state file (sqlite's file header, offset 68). */
#define WH_APPLICATION_ID 0x57484231

/* migrations[i] brings a file from schema i to schema i + 1. Append only. */
static const char *const migrations[] = {
    /* 1: the first schema. */
    "CREATE TABLE events ("
    "  id TEXT PRIMARY KEY,"
    "  source TEXT,"
    "  kind TEXT,"
    "  envelope TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'new'," /* new|done */
    "  created_ms INTEGER NOT NULL);"
    "CREATE INDEX events_state ON events(state);"

    "CREATE TABLE seen ("
    "  source TEXT,"
    "  id TEXT,"
    "  created_ms INTEGER,"
    "  answer TEXT," /* the answer given, for repeated requests */
    "  PRIMARY KEY(source, id));"

    "CREATE TABLE runs ("
    "  id TEXT PRIMARY KEY,"
    "  event_id TEXT,"
    "  rule TEXT NOT NULL,"
    "  step INTEGER NOT NULL,"
    "  ctx TEXT NOT NULL,"
    "  reply_to TEXT,"
    "  state TEXT NOT NULL," /* running|waiting|done|failed */
    "  error TEXT,"
    "  created_ms INTEGER,"
    "  updated_ms INTEGER);"
    "CREATE INDEX runs_state ON runs(state);"

    "CREATE TABLE outbox ("
    "  id TEXT PRIMARY KEY,"
    "  run_id TEXT,"
    "  step INTEGER,"
    "  instance TEXT NOT NULL,"
    "  op TEXT NOT NULL,"
    "  args TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  state TEXT NOT NULL," /* pending|inflight|done|failed|dead */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at_ms INTEGER NOT NULL,"
    "  last_error TEXT,"
    "  result TEXT,"
    "  created_ms INTEGER,"
    "  updated_ms INTEGER);"
    "CREATE INDEX outbox_due ON outbox(state, next_at_ms);"

    "CREATE TABLE conversations ("
    "  id TEXT PRIMARY KEY,"
    "  key TEXT NOT NULL,"
    "  run_id TEXT,"
    "  instance TEXT,"
    "  op TEXT,"
    "  args TEXT,"
    "  cursor TEXT,"
    "  every_ms INTEGER,"
    "  until_ms INTEGER,"
    "  next_at_ms INTEGER,"
    "  vars TEXT,"
    "  collect TEXT,"
    "  state TEXT NOT NULL," /* open|closed */
    "  created_ms INTEGER);"
    "CREATE INDEX conversations_key ON conversations(key);"
    "CREATE INDEX conversations_due ON conversations(state, next_at_ms);"

    "CREATE TABLE replies ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  key TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  author TEXT,"
    "  text TEXT,"
    "  time TEXT,"
    "  source TEXT,"
    "  item TEXT," /* the full item, JSON */
    "  read INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER,"
    "  UNIQUE(key, id));"
    "CREATE INDEX replies_key ON replies(key, seq);",

    /* 1 → 2: debounced rules wait here for the end of their burst */
    "CREATE TABLE debounce ("
    "  rule TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  ctx TEXT NOT NULL,"
    "  first_ms INTEGER NOT NULL,"
    "  due_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (rule, key));"
    "CREATE INDEX debounce_due ON debounce(due_ms);",

    /* 2 → 3: finished runs are found by state and age, so the cleanup reads
       only the rows it removes (runs_state alone made it visit every one) */
    "CREATE INDEX runs_finished ON runs(state, updated_ms); DROP INDEX runs_state;",

    /* 3 → 4: delivery reads one instance's due calls; without this it walked
       every pending call of every instance to find them */
    "CREATE INDEX outbox_lane ON outbox(instance, state, next_at_ms);",

    /* 4 → 5: which text of its rule a run started on, so that a run read back
       from the state file resumes on that text, not on a reloaded one */
    "ALTER TABLE runs ADD COLUMN rule_fp TEXT;",
};

int wh_migrate_latest(void)
{
    return (int)WH_ARRAY_LEN(migrations);
}

/* One integer from a query (a PRAGMA or a count). Returns a SQLite code. */
static int query_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_ERROR;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Refuse what this binary must not touch. 0 when the file may be migrated from `v`. */
static int check_file(sqlite3 *db, int v, char *err, size_t errsize)
{
    int latest = wh_migrate_latest();
    if (v > latest) {
        snprintf(err, errsize, "state file is schema %d, this wirehub knows up to %d", v, latest);
        return WH_ERR_UNSUPPORTED;
    }
    if (v < 0) {
        snprintf(err, errsize, "state file has an invalid schema version %d", v);
        return WH_ERR_INVALID;
    }
    int app = 0;
    int rc = query_int(db, "PRAGMA application_id", &app);
    if (rc != SQLITE_OK) {
        snprintf(err, errsize, "cannot read the application id: %s", sqlite3_errmsg(db));
        return wh_sql_status(rc);
    }
    if (v > 0 && app != WH_APPLICATION_ID) {
        snprintf(err, errsize,
                 "not a wirehub state file (SQLite application_id %d, user_version %d)", app, v);
        return WH_ERR_INVALID;
    }
    if (v == 0) {
        int objects = 0;
        rc = query_int(db, "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                       &objects);
        if (rc != SQLITE_OK) {
            snprintf(err, errsize, "cannot read the schema: %s", sqlite3_errmsg(db));
            return wh_sql_status(rc);
        }
        if (objects > 0 || (app != 0 && app != WH_APPLICATION_ID)) {
            snprintf(err, errsize,
                     "not a wirehub state file (a SQLite database with %d other objects)", objects);
            return WH_ERR_INVALID;
        }
    }
    return WH_OK;
}

int wh_migrate_check(sqlite3 *db, char *err, size_t errsize)
{
    int v = 0;
    int rc = query_int(db, "PRAGMA user_version", &v);
    if (rc != SQLITE_OK) {
        snprintf(err, errsize, "cannot read the schema version: %s", sqlite3_errmsg(db));
        return wh_sql_status(rc);
    }
    return check_file(db, v, err, errsize);
}

int wh_migrate(sqlite3 *db, int *version, char *err, size_t errsize)
{
    int latest = wh_migrate_latest();
    for (;;) {
        int v = 0;
        int rc = query_int(db, "PRAGMA user_version", &v);
        if (rc != SQLITE_OK) {
            snprintf(err, errsize, "cannot read the schema version: %s", sqlite3_errmsg(db));
            return wh_sql_status(rc);
        }
        int st = check_file(db, v, err, errsize);
        if (st != WH_OK) {
            return st;
        }
        if (v == latest) {
            *version = v;
            return WH_OK;
        }

        /* IMMEDIATE takes the write lock first, then re-reads: another process may
           have applied this migration while we looked. */
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, errsize, "cannot begin migration: %s", sqlite3_errmsg(db));
            return wh_sql_status(rc);
        }
        int again = -1;
        rc = query_int(db, "PRAGMA user_version", &again);
        if (rc != SQLITE_OK || again != v) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            if (rc != SQLITE_OK) {
                snprintf(err, errsize, "cannot read the schema version: %s", sqlite3_errmsg(db));
                return wh_sql_status(rc);
            }
            continue;
        }
        char *msg = NULL;
        rc = sqlite3_exec(db, migrations[v], NULL, NULL, &msg);
        if (rc == SQLITE_OK) {
            char pragmas[128];
            snprintf(pragmas, sizeof pragmas,
                     "PRAGMA user_version = %d; PRAGMA application_id = %d", v + 1,
                     WH_APPLICATION_ID);
            sqlite3_free(msg);
            msg = NULL;
            rc = sqlite3_exec(db, pragmas, NULL, NULL, &msg);
        }
        if (rc == SQLITE_OK) {
            sqlite3_free(msg);
            msg = NULL;
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
        }
        if (rc != SQLITE_OK) {
            snprintf(err, errsize, "migration to schema %d failed: %s", v + 1,
                     msg ? msg : sqlite3_errmsg(db));
            sqlite3_free(msg);
            if (!sqlite3_get_autocommit(db)) {
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            }
            return wh_sql_status(rc);
        }
        sqlite3_free(msg);
        wh_info("store", "state file migrated to schema %d", v + 1);
    }
}
