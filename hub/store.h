/*
 * store.h — the durable state store: one SQLite file in WAL mode, a schema with
 * migrations, and group commit.
 *
 * wirehub answers a caller with success only after what it promised is durable.
 * The store makes that cheap: writes are *jobs* that a single writer thread runs
 * together inside one short transaction (up to `batch_max` jobs: whatever queued
 * while the previous transaction committed, and optionally what arrives within
 * `batch_wait_us` of the oldest queued job), so many events share one fsync. An
 * idle writer starts at once: under load batches form by themselves, and a lone
 * job never waits for company that is not coming. Each job runs in its own SAVEPOINT, so a failing job is undone alone
 * while the others in its batch commit. A job's `done` callback runs only after
 * the transaction committed (or failed), which is the moment a caller may be told
 * "yes".
 *
 * Reads run on a small pool of separate connections; in WAL mode readers see the
 * last committed state and never block the writer (nor it them).
 *
 * Threads: every function may be called from any thread unless stated otherwise.
 * Job functions and `done` callbacks run on the writer thread; read functions run
 * on the calling thread. SQLite result codes never leave this module's helpers
 * untranslated: wh_sql_status() maps them to WH_* codes (wirehub/connector.h).
 */
#ifndef WH_STORE_H
#define WH_STORE_H
#include "wirehub/connector.h"

#include <stddef.h>
#include <stdint.h>

typedef struct wh_store wh_store;
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

/**
 * Tuning. Start from wh_store_opts_init() (or pass NULL to wh_store_open for the
 * defaults). 0 in batch_max, readers or queue_max means the default; a value out
 * of range is refused by wh_store_open.
 */
typedef struct wh_store_opts {
    int batch_max;        /**< most jobs per transaction (default 256; 1..100000) */
    int batch_wait_us;    /**< how long a queued job may wait for company before the writer
                               starts its transaction (default 0 = never wait: batch what
                               queued up during the previous commit; 0..1000000) */
    int synchronous_full; /**< 1: PRAGMA synchronous=FULL, durable across power loss (default);
                               0: NORMAL, durable across process crashes only */
    int readers;          /**< read connections in the pool (default 4; 1..64) */
    int queue_max;        /**< most queued jobs before wh_store_write answers WH_ERR_BUSY
                               (default 65536; 1..10000000) */
} wh_store_opts;

/** Fill `opts` with the defaults above. */
void wh_store_opts_init(wh_store_opts *opts);

/**
 * Open the state file at `path`, creating it (mode 0600) if missing; its directory
 * must exist. Sets WAL, synchronous, busy_timeout and foreign_keys, runs the
 * migrations up to the newest schema, opens the read pool and starts the writer.
 *
 * Refuses (NULL, a one-line reason in err):
 *   - a file, its -wal/-shm files or its directory that other users (group or
 *     others) can write: "<path>: refusing to use a state file other users can write";
 *   - a schema newer than this binary: "<path>: state file is schema N, this wirehub
 *     knows up to M";
 *   - a file that is not SQLite, or a SQLite file that is not a wirehub state file;
 *   - bad opts, a missing directory, a filesystem without WAL support.
 *
 * Ownership: borrows path and opts; returns a store the caller closes with
 * wh_store_close().
 */
wh_store *wh_store_open(const char *path, const wh_store_opts *opts, char *err, size_t errsize);

/**
 * Finish every queued write (their `done` callbacks run), stop the writer thread,
 * wait for reads in progress, close the connections and free the store; sets *s to
 * NULL. NULL-safe (s or *s). Writes submitted once close has begun are refused with
 * WH_ERR_STATE. Never call from a job, a `done` callback or a read function (it is
 * refused with an error log, and the store is left open).
 * Ownership: takes *s.
 */
void wh_store_close(wh_store **s);

/**
 * A write job: runs on the writer thread inside a transaction shared with other
 * jobs (within its own SAVEPOINT). Return 0, or nonzero to fail only this job: its
 * changes are rolled back, the other jobs' are not. Use WH_* codes (a positive
 * value is reported as WH_ERR). It must not COMMIT, ROLLBACK or BEGIN; if it ends
 * the transaction anyway, it and every earlier job of that transaction are
 * reported failed. Statements left un-reset are reset after it returns.
 */
typedef int (*wh_store_fn)(sqlite3 *db, void *ud);
/**
 * Completion of a write job, on the writer thread: rc 0 after the transaction
 * committed (durably, per `synchronous_full`), or rc < 0 when the job failed, or
 * the transaction could not begin or commit (then every job of it gets the error).
 * Keep it short: the next batch waits for it. It may call wh_store_write() and
 * wh_store_read(), not wh_store_write_sync() or wh_store_close().
 */
typedef void (*wh_store_done)(void *ud, int rc);

/**
 * Queue a write job. Returns WH_OK (then `done`, if not NULL, runs exactly once),
 * WH_ERR_INVALID (s or fn NULL), WH_ERR_STATE (the store is closing), WH_ERR_BUSY
 * (queue_max jobs are waiting) or WH_ERR_NOMEM; on failure nothing runs.
 * Any thread, including the writer thread (the job joins a later batch).
 * Ownership: borrows ud, which must stay valid until `done` ran (or, without
 * `done`, until the store is closed).
 */
int wh_store_write(wh_store *s, wh_store_fn fn, wh_store_done done, void *ud);

/**
 * Queue a write job and block until its transaction committed. The job goes ahead
 * of the queued asynchronous ones (its caller waits; none of them depends on it,
 * so only use it for a job that depends on nothing still queued). Returns the rc its
 * `done` would get (0 or < 0), or what wh_store_write refused with. Called on the
 * writer thread (from a job or `done`), it would wait for itself: WH_ERR_STATE.
 * Ownership: borrows ud.
 */
int wh_store_write_sync(wh_store *s, wh_store_fn fn, void *ud);

/**
 * Run `fn` on a read connection (queries only: PRAGMA query_only is on) and return
 * what fn returned. It sees the last committed state, not the writer's open batch.
 * Blocks only while all pool connections are in use. A read function must not
 * call wh_store_read on the same store (WH_ERR_STATE) — it would risk a deadlock.
 * Returns WH_ERR_INVALID when s or fn is NULL.
 * Ownership: borrows ud.
 */
int wh_store_read(wh_store *s, wh_store_fn fn, void *ud);

/**
 * Whether the state file was removed or replaced while open (seen by the
 * writer before a batch): every write fails with WH_ERR_IO from then on.
 */
int wh_store_gone(wh_store *s);

/** Counters since open, for tests and benchmarks. */
typedef struct wh_store_stats {
    uint64_t jobs;         /**< write jobs completed (success or not) */
    uint64_t transactions; /**< transactions begun by the writer */
    uint64_t failed_jobs;  /**< jobs completed with rc < 0 */
} wh_store_stats;
/** Snapshot of the counters. Jobs are counted before their `done` callbacks run. */
void wh_store_stats_get(wh_store *s, wh_store_stats *out);
/** The file's schema version (after migrations: the newest this binary knows). */
int wh_store_schema_version(wh_store *s);
/** The path the store was opened with. Ownership: borrowed, valid until close. */
const char *wh_store_path(wh_store *s);

/* ---- helpers for job and read functions ---- */

/** Translate a SQLite result code (primary or extended) into a WH_* code. */
int wh_sql_status(int sqlite_rc);

/**
 * Run one or more SQL statements without results (sqlite3_exec). Returns a WH_*
 * code; sqlite3_errmsg(db) has the detail. Ownership: borrows everything.
 */
int wh_sql_exec(sqlite3 *db, const char *sql);

/**
 * A prepared statement for `sql` (one statement), cached per connection by SQL
 * text so hot-path jobs do not re-prepare. It comes back reset with its bindings
 * cleared. Use constant SQL text; do not hold a statement across another
 * wh_sql_prepare_cached() call for the same text. Only valid inside a job or read
 * function of a wh_store, on the `db` it was given. Returns NULL on a SQL error
 * (sqlite3_errmsg(db) says why), for text with more than one statement, or outside
 * a store callback.
 * Ownership: the statement belongs to the connection's cache: never finalize it;
 * it is finalized when the store closes.
 */
sqlite3_stmt *wh_sql_prepare_cached(sqlite3 *db, const char *sql);

/* ---- migrate.c: the schema (internal to the store) ---- */

/** The newest schema version this binary knows. */
int wh_migrate_latest(void);

/**
 * Without changing anything, check that the file on `db` may be used: a wirehub
 * state file (or an empty one) of a schema this binary knows. WH_OK, or an error
 * with a reason in err. Ownership: borrows db.
 */
int wh_migrate_check(sqlite3 *db, char *err, size_t errsize);

/**
 * Bring the database on `db` to the newest schema, each migration in its own
 * IMMEDIATE transaction (so two processes opening one file do not both apply it).
 * Returns WH_OK with the resulting version in *version, or an error with a reason in
 * err: a newer schema, a SQLite file of something else, a failing migration.
 * Ownership: borrows db.
 */
int wh_migrate(sqlite3 *db, int *version, char *err, size_t errsize);
#endif
