/*
 * store.c — owns the state file's connections: one writer connection driven by
 * the writer thread (group commit: a queue of jobs, one transaction per batch,
 * one SAVEPOINT per job), a pool of read connections, and a prepared-statement
 * cache per connection. It knows nothing of what the tables mean (callers'
 * jobs do), and the schema itself lives in migrate.c. It must never fsync per
 * job, never run a `done` callback before the commit it reports, and never let
 * a SQLite code escape untranslated from its API.
 *
 * Lock rules: `qlock` guards the job queue and `closing`; `rlock` guards the
 * reader free list. Neither is held while SQL runs or a callback is called.
 */
#include "store.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CACHE_BUCKETS 64
#define CACHE_WARN 256 /* more distinct SQL texts than this smells of generated SQL */
#define BUSY_TIMEOUT_MS 5000

typedef struct cached_stmt {
    char *sql;
    uint32_t hash;
    sqlite3_stmt *st;
    struct cached_stmt *next;
} cached_stmt;

/* One SQLite connection and its statement cache. Used by one thread at a time. */
typedef struct wh_conn {
    sqlite3 *db;
    cached_stmt *buckets[CACHE_BUCKETS];
    size_t count;
    int warned;
} wh_conn;

typedef struct job {
    wh_store_fn fn;
    void *ud;
    wh_store_done done;
    void *done_ud;
    int rc;
    int64_t queued_us;
    struct job *next;
} job;

struct wh_store {
    char *path;
    wh_store_opts opts;
    int version;

    wh_conn wconn; /* the writer's; touched only by the writer thread once it runs */
    pthread_t writer;
    int writer_started;

    int locks_inited;
    pthread_mutex_t qlock;
    pthread_cond_t qcond; /* CLOCK_MONOTONIC: the writer waits for jobs */
    job *head, *tail;
    int qlen;
    int closing;

    wh_conn *readers;
    int nreaders; /* opened */
    int *free_idx;
    int nfree;
    int rbusy; /* connections lent to read functions */
    int rclosing;
    pthread_mutex_t rlock;
    pthread_cond_t rcond;

    _Atomic uint64_t jobs, transactions, failed_jobs;
    atomic_int gone;      /* the state file was removed or replaced while open */
    int64_t gone_said_ms; /* writer thread: when that was last logged */
};

/* The connection whose job or read function runs on this thread (for the cache),
   and the store this thread is reading from (to refuse nested reads). */
static _Thread_local wh_conn *tls_conn;
static _Thread_local const wh_store *tls_reading;

static void seterr(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errsize, const char *fmt, ...)
{
    if (!err || errsize == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- SQLite helpers ---- */

int wh_sql_status(int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return WH_OK;
    case SQLITE_NOMEM:
        return WH_ERR_NOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return WH_ERR_BUSY;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return WH_ERR_INVALID;
    case SQLITE_TOOBIG:
        return WH_ERR_TOO_LARGE;
    case SQLITE_NOTFOUND:
        return WH_ERR_NOT_FOUND;
    case SQLITE_MISUSE:
        return WH_ERR_STATE;
    case SQLITE_AUTH:
        return WH_ERR_AUTH;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_NOLFS:
    case SQLITE_NOTADB:
        return WH_ERR_IO;
    default:
        return WH_ERR;
    }
}

int wh_sql_exec(sqlite3 *db, const char *sql)
{
    if (!db || !sql) {
        return WH_ERR_INVALID;
    }
    return wh_sql_status(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

sqlite3_stmt *wh_sql_prepare_cached(sqlite3 *db, const char *sql)
{
    wh_conn *c = tls_conn;
    if (!c || !db || c->db != db || !sql) {
        return NULL;
    }
    uint32_t h = fnv1a(sql);
    cached_stmt **bucket = &c->buckets[h % CACHE_BUCKETS];
    for (cached_stmt *e = *bucket; e; e = e->next) {
        if (e->hash == h && strcmp(e->sql, sql) == 0) {
            sqlite3_reset(e->st);
            sqlite3_clear_bindings(e->st);
            return e->st;
        }
    }
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail) != SQLITE_OK ||
        !st) {
        sqlite3_finalize(st);
        return NULL;
    }
    if (tail && *tail) {
        /* Only whitespace and comments may follow: a second statement would be
           silently ignored by the caller. */
        sqlite3_stmt *more = NULL;
        int rc = sqlite3_prepare_v2(db, tail, -1, &more, NULL);
        if (rc != SQLITE_OK || more) {
            sqlite3_finalize(more);
            sqlite3_finalize(st);
            return NULL;
        }
    }
    cached_stmt *e = calloc(1, sizeof *e);
    char *copy = strdup(sql);
    if (!e || !copy) {
        free(e);
        free(copy);
        sqlite3_finalize(st);
        return NULL;
    }
    e->sql = copy;
    e->hash = h;
    e->st = st;
    e->next = *bucket;
    *bucket = e;
    if (++c->count > CACHE_WARN && !c->warned) {
        c->warned = 1;
        wh_warn("store", "over %d cached statements on one connection: is SQL text generated?",
                CACHE_WARN);
    }
    return st;
}

/* Reset statements a function left mid-way, so a reader does not pin its snapshot
   (it would see stale data next time) and the writer's COMMIT is not held up. */
static void reset_busy(sqlite3 *db)
{
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st)) {
        if (sqlite3_stmt_busy(st)) {
            sqlite3_reset(st);
        }
    }
}

/* Step a cached one-shot statement (BEGIN, SAVEPOINT, …). Returns a SQLite code. */
static int run_cached(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = wh_sql_prepare_cached(db, sql);
    if (!st) {
        int rc = sqlite3_errcode(db);
        return rc == SQLITE_OK ? SQLITE_ERROR : rc;
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* ---- connections ---- */

static void conn_close(wh_conn *c)
{
    for (int i = 0; i < CACHE_BUCKETS; i++) {
        cached_stmt *e = c->buckets[i];
        while (e) {
            cached_stmt *next = e->next;
            sqlite3_finalize(e->st);
            free(e->sql);
            free(e);
            e = next;
        }
        c->buckets[i] = NULL;
    }
    c->count = 0;
    if (c->db) {
        sqlite3_stmt *st;
        int strays = 0;
        while ((st = sqlite3_next_stmt(c->db, NULL)) != NULL) {
            sqlite3_finalize(st);
            strays++;
        }
        if (strays) {
            wh_warn("store", "finalized %d statement(s) a job or read left behind", strays);
        }
        int rc = sqlite3_close(c->db);
        if (rc != SQLITE_OK) {
            wh_warn("store", "closing a connection: %s", sqlite3_errstr(rc));
        }
        c->db = NULL;
    }
}

static int conn_open(wh_conn *c, const char *path, char *err, size_t errsize)
{
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        seterr(err, errsize, "%s: cannot open: %s", path,
               c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        return wh_sql_status(rc);
    }
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    return WH_OK;
}

/* A one-row text answer of a PRAGMA, into out. Returns a SQLite code. */
static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t size)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(out, size, "%s", t ? (const char *)t : "");
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            out[0] = '\0';
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- permissions ---- */

static int check_mode(const char *path, const char *what, const char *file, int must_exist,
                      int want_dir, char *err, size_t errsize)
{
    struct stat st;
    if (stat(file, &st) != 0) {
        if (errno == ENOENT && !must_exist) {
            return WH_OK;
        }
        seterr(err, errsize, "%s: %s%s: %s", path, what, errno == ENOENT ? " does not exist" : "",
               errno == ENOENT ? file : strerror(errno));
        return errno == ENOENT ? WH_ERR_NOT_FOUND : WH_ERR_IO;
    }
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        seterr(err, errsize, "%s: %s %s is not a %s", path, what, file,
               want_dir ? "directory" : "regular file");
        return WH_ERR_INVALID;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        seterr(err, errsize,
               "%s: refusing to use a state file other users can write (%s %s is mode %04o)", path,
               what, file, (unsigned)(st.st_mode & 07777));
        return WH_ERR_AUTH;
    }
    return WH_OK;
}

static int check_paths(const char *path, char *err, size_t errsize)
{
    char *dir = wh_dirname(path);
    if (!dir) {
        seterr(err, errsize, "%s: out of memory", path);
        return WH_ERR_NOMEM;
    }
    int rc = check_mode(path, "directory", dir, 1, 1, err, errsize);
    free(dir);
    if (rc != WH_OK) {
        return rc;
    }
    /* Create it private; the -wal and -shm files SQLite makes copy its mode. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        close(fd);
        wh_info("store", "created state file %s", path);
    } else if (errno != EEXIST) {
        seterr(err, errsize, "%s: cannot create the state file: %s", path, strerror(errno));
        return WH_ERR_IO;
    }
    rc = check_mode(path, "state file", path, 1, 0, err, errsize);
    struct stat st;
    if (rc == WH_OK && stat(path, &st) == 0 && st.st_nlink > 1) {
        /* SQLite names its -wal and -shm after the path: two names, two logs, one database */
        seterr(err, errsize,
               "%s: the state file has %lu hard links; it must have one name (each name would "
               "get its own -wal file, which corrupts the database)",
               path, (unsigned long)st.st_nlink);
        return WH_ERR_CONFIG;
    }
    size_t n = strlen(path) + 5;
    char *side = malloc(n);
    if (!side) {
        seterr(err, errsize, "%s: out of memory", path);
        return WH_ERR_NOMEM;
    }
    if (rc == WH_OK) {
        snprintf(side, n, "%s-wal", path);
        rc = check_mode(path, "file", side, 0, 0, err, errsize);
    }
    if (rc == WH_OK) {
        snprintf(side, n, "%s-shm", path);
        rc = check_mode(path, "file", side, 0, 0, err, errsize);
    }
    free(side);
    return rc;
}

/* ---- the writer ---- */

/* Every job in [from, to) still marked successful gets `rc`. */
static void fail_jobs(job *from, job *to, int rc)
{
    for (job *j = from; j && j != to; j = j->next) {
        if (j->rc == 0) {
            j->rc = rc;
        }
    }
}

/* The transaction ended under us (a job ran COMMIT/ROLLBACK, or SQLite rolled back
   after an I/O error): nothing since `first` can be called committed. */
static void tx_lost(wh_store *s, job *first, job *culprit, int rc)
{
    wh_warn("store", "a write transaction ended inside a job (rc %d); failing %s", rc,
            first == culprit ? "that job" : "it and the jobs before it");
    culprit->rc = rc < 0 ? rc : WH_ERR_STATE;
    fail_jobs(first, culprit, WH_ERR);
    if (!sqlite3_get_autocommit(s->wconn.db)) {
        sqlite3_exec(s->wconn.db, "ROLLBACK", NULL, NULL, NULL);
    }
}

/*
 * Whether the state file was deleted or replaced under the open database
 * (SQLite goes on writing to the unlinked file, which nothing would ever read
 * again): then nothing may be acknowledged as durable. Logged every 10 s.
 */
static int file_gone(wh_store *s)
{
    int moved = 0;
    if (sqlite3_file_control(s->wconn.db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK ||
        !moved) {
        return 0;
    }
    atomic_store(&s->gone, 1);
    int64_t now = wh_mono_ms();
    if (!s->gone_said_ms || now - s->gone_said_ms >= 10000) {
        s->gone_said_ms = now;
        wh_error("store",
                 "the state file %s was removed or replaced while wirehub had it open: nothing is "
                 "written or acknowledged any more; stop wirehub, restore the file (or accept a "
                 "new one) and start it again",
                 s->path);
    }
    return 1;
}

int wh_store_gone(wh_store *s)
{
    return s ? atomic_load(&s->gone) : 0;
}

static void run_batch(wh_store *s, job *batch)
{
    sqlite3 *db = s->wconn.db;
    job *tx_first = NULL;
    int in_tx = 0;

    job *run_from = batch;
    if (file_gone(s)) {
        fail_jobs(batch, NULL, WH_ERR_IO);
        run_from = NULL; /* none runs; all are counted and answered below */
    }
    for (job *j = run_from; j; j = j->next) {
        if (!in_tx) {
            int rc = run_cached(db, "BEGIN IMMEDIATE");
            if (rc != SQLITE_OK) {
                wh_warn("store", "cannot begin a write transaction: %s", sqlite3_errmsg(db));
                fail_jobs(j, NULL, wh_sql_status(rc) ? wh_sql_status(rc) : WH_ERR);
                break;
            }
            atomic_fetch_add(&s->transactions, 1);
            in_tx = 1;
            tx_first = j;
        }
        int rc = run_cached(db, "SAVEPOINT wh_job");
        if (rc != SQLITE_OK) {
            if (sqlite3_get_autocommit(db)) {
                tx_lost(s, tx_first, j, wh_sql_status(rc));
                in_tx = 0;
            } else {
                j->rc = wh_sql_status(rc) ? wh_sql_status(rc) : WH_ERR;
            }
            continue;
        }
        int r = j->fn(db, j->ud);
        reset_busy(db);
        if (sqlite3_get_autocommit(db)) {
            tx_lost(s, tx_first, j, r);
            in_tx = 0;
            continue;
        }
        if (r != 0) {
            j->rc = r < 0 ? r : WH_ERR;
            rc = run_cached(db, "ROLLBACK TO wh_job");
            if (rc == SQLITE_OK) {
                rc = run_cached(db, "RELEASE wh_job");
            }
        } else {
            rc = run_cached(db, "RELEASE wh_job");
        }
        if (rc != SQLITE_OK) {
            /* The savepoint could not be undone or released: the transaction's
               content is uncertain, so none of it is committed. */
            tx_lost(s, tx_first, j, j->rc ? j->rc : wh_sql_status(rc));
            in_tx = 0;
        }
    }
    if (in_tx) {
        int rc = run_cached(db, "COMMIT");
        if (rc != SQLITE_OK) {
            wh_warn("store", "commit failed: %s", sqlite3_errmsg(db));
            if (!sqlite3_get_autocommit(db)) {
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            }
            fail_jobs(tx_first, NULL, wh_sql_status(rc) ? wh_sql_status(rc) : WH_ERR);
        }
    }

    uint64_t n = 0, failed = 0;
    for (job *j = batch; j; j = j->next) {
        n++;
        if (j->rc != 0) {
            failed++;
        }
    }
    /* Counted before the callbacks, so whoever waits for them sees final numbers. */
    atomic_fetch_add(&s->jobs, n);
    atomic_fetch_add(&s->failed_jobs, failed);
    while (batch) {
        job *next = batch->next;
        if (batch->done) {
            batch->done(batch->done_ud, batch->rc);
        }
        free(batch);
        batch = next;
    }
}

static void *writer_main(void *arg)
{
    wh_store *s = arg;
    tls_conn = &s->wconn;
    pthread_mutex_lock(&s->qlock);
    for (;;) {
        while (!s->head && !s->closing) {
            pthread_cond_wait(&s->qcond, &s->qlock);
        }
        if (!s->head) {
            break;
        }
        /* Group commit: let the oldest job wait up to batch_wait_us for company,
           unless the batch is full or we are draining for close. */
        if (s->opts.batch_wait_us > 0) {
            int64_t deadline = s->head->queued_us + s->opts.batch_wait_us;
            while (!s->closing && s->qlen < s->opts.batch_max) {
                int64_t now = mono_us();
                if (now >= deadline) {
                    break;
                }
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                int64_t ns = ts.tv_nsec + (deadline - now) * 1000;
                ts.tv_sec += ns / 1000000000;
                ts.tv_nsec = ns % 1000000000;
                pthread_cond_timedwait(&s->qcond, &s->qlock, &ts);
            }
        }
        job *batch = s->head, *last = s->head;
        int n = 1;
        while (n < s->opts.batch_max && last->next) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (!s->head) {
            s->tail = NULL;
        }
        last->next = NULL;
        s->qlen -= n;
        pthread_mutex_unlock(&s->qlock);
        run_batch(s, batch);
        pthread_mutex_lock(&s->qlock);
    }
    pthread_mutex_unlock(&s->qlock);
    tls_conn = NULL;
    return NULL;
}

static int on_writer_thread(const wh_store *s)
{
    return s->writer_started && pthread_equal(pthread_self(), s->writer);
}

/* ---- public API ---- */

void wh_store_opts_init(wh_store_opts *opts)
{
    opts->batch_max = 256;
    opts->batch_wait_us = 0;
    opts->synchronous_full = 1;
    opts->readers = 4;
    opts->queue_max = 65536;
}

static int resolve_opts(const wh_store_opts *in, wh_store_opts *o, char *err, size_t errsize)
{
    wh_store_opts_init(o);
    if (!in) {
        return WH_OK;
    }
    if (in->batch_max < 0 || in->batch_max > 100000) {
        seterr(err, errsize, "store: batch_max %d is not within 1..100000", in->batch_max);
        return WH_ERR_CONFIG;
    }
    if (in->batch_wait_us < 0 || in->batch_wait_us > 1000000) {
        seterr(err, errsize, "store: batch_wait_us %d is not within 0..1000000", in->batch_wait_us);
        return WH_ERR_CONFIG;
    }
    if (in->readers < 0 || in->readers > 64) {
        seterr(err, errsize, "store: readers %d is not within 1..64", in->readers);
        return WH_ERR_CONFIG;
    }
    if (in->queue_max < 0 || in->queue_max > 10000000) {
        seterr(err, errsize, "store: queue_max %d is not within 1..10000000", in->queue_max);
        return WH_ERR_CONFIG;
    }
    if (in->batch_max) {
        o->batch_max = in->batch_max;
    }
    o->batch_wait_us = in->batch_wait_us;
    o->synchronous_full = in->synchronous_full ? 1 : 0;
    if (in->readers) {
        o->readers = in->readers;
    }
    if (in->queue_max) {
        o->queue_max = in->queue_max;
    }
    return WH_OK;
}

static int init_locks(wh_store *s)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        return WH_ERR;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_mutex_init(&s->qlock, NULL) == 0;
    ok = ok && pthread_cond_init(&s->qcond, &ca) == 0;
    ok = ok && pthread_mutex_init(&s->rlock, NULL) == 0;
    ok = ok && pthread_cond_init(&s->rcond, NULL) == 0;
    pthread_condattr_destroy(&ca);
    /* pthread init of these types cannot fail on Linux except for resources;
       treat any failure as fatal for the open. */
    return ok ? WH_OK : WH_ERR;
}

/* Set up the writer connection: a SQLite file of ours, WAL, the newest schema. */
static int setup_writer(wh_store *s, char *err, size_t errsize)
{
    sqlite3 *db = s->wconn.db;
    char mode[32];
    /* The first statement reads the header: this is where "not a database" shows. */
    int rc = pragma_text(db, "PRAGMA user_version", mode, sizeof mode);
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_NOTADB) {
            seterr(err, errsize, "%s: not a SQLite database (%s)", s->path, sqlite3_errmsg(db));
        } else {
            seterr(err, errsize, "%s: cannot read: %s", s->path, sqlite3_errmsg(db));
        }
        return wh_sql_status(rc);
    }
    /* Refuse a newer or foreign file before WAL mode (a persistent change) is set. */
    char why[256];
    why[0] = '\0';
    int st = wh_migrate_check(db, why, sizeof why);
    if (st != WH_OK) {
        seterr(err, errsize, "%s: %s", s->path, why);
        return st;
    }
    rc = pragma_text(db, "PRAGMA journal_mode=WAL", mode, sizeof mode);
    if (rc != SQLITE_OK || strcmp(mode, "wal") != 0) {
        seterr(err, errsize, "%s: cannot use WAL mode (%s)", s->path,
               rc != SQLITE_OK ? sqlite3_errmsg(db) : mode);
        return rc != SQLITE_OK ? wh_sql_status(rc) : WH_ERR_UNSUPPORTED;
    }
    rc =
        sqlite3_exec(db,
                     s->opts.synchronous_full ? "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON"
                                              : "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON",
                     NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        seterr(err, errsize, "%s: %s", s->path, sqlite3_errmsg(db));
        return wh_sql_status(rc);
    }
    st = wh_migrate(db, &s->version, why, sizeof why);
    if (st != WH_OK) {
        seterr(err, errsize, "%s: %s", s->path, why);
        return st;
    }
    return WH_OK;
}

static int open_readers(wh_store *s, char *err, size_t errsize)
{
    int n = s->opts.readers;
    s->readers = calloc((size_t)n, sizeof *s->readers);
    s->free_idx = calloc((size_t)n, sizeof *s->free_idx);
    if (!s->readers || !s->free_idx) {
        seterr(err, errsize, "%s: out of memory", s->path);
        return WH_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        wh_conn *c = &s->readers[i];
        s->nreaders = i + 1; /* so close() closes a half-opened one too */
        int rc = conn_open(c, s->path, err, errsize);
        if (rc != WH_OK) {
            return rc;
        }
        int sr = sqlite3_exec(c->db, "PRAGMA query_only=1", NULL, NULL, NULL);
        if (sr != SQLITE_OK) {
            seterr(err, errsize, "%s: %s", s->path, sqlite3_errmsg(c->db));
            return wh_sql_status(sr);
        }
        s->free_idx[s->nfree++] = i;
    }
    return WH_OK;
}

wh_store *wh_store_open(const char *path, const wh_store_opts *opts, char *err, size_t errsize)
{
    seterr(err, errsize, "%s", "");
    if (!path || !*path) {
        seterr(err, errsize, "store: no state file path");
        return NULL;
    }
    wh_store_opts o;
    if (resolve_opts(opts, &o, err, errsize) != WH_OK) {
        return NULL;
    }
    if (!sqlite3_threadsafe()) {
        seterr(err, errsize, "store: this SQLite library was built without thread support");
        return NULL;
    }
    if (check_paths(path, err, errsize) != WH_OK) {
        return NULL;
    }
    wh_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        seterr(err, errsize, "%s: out of memory", path);
        return NULL;
    }
    s->opts = o;
    atomic_init(&s->jobs, 0);
    atomic_init(&s->transactions, 0);
    atomic_init(&s->failed_jobs, 0);
    if (init_locks(s) != WH_OK) {
        seterr(err, errsize, "%s: cannot create locks", path);
        goto fail;
    }
    s->locks_inited = 1;
    if (conn_open(&s->wconn, path, err, errsize) != WH_OK ||
        setup_writer(s, err, errsize) != WH_OK || open_readers(s, err, errsize) != WH_OK) {
        goto fail;
    }
    int rc = pthread_create(&s->writer, NULL, writer_main, s);
    if (rc != 0) {
        seterr(err, errsize, "%s: cannot start the writer thread: %s", path, strerror(rc));
        goto fail;
    }
    s->writer_started = 1;
    pthread_setname_np(s->writer, "wh-store");
    return s;

fail:
    wh_store_close(&s);
    return NULL;
}

void wh_store_close(wh_store **sp)
{
    if (!sp || !*sp) {
        return;
    }
    wh_store *s = *sp;
    if (on_writer_thread(s) || tls_reading == s) {
        wh_error("store", "wh_store_close called from a store callback; not closing");
        return;
    }
    if (s->writer_started) {
        pthread_mutex_lock(&s->qlock);
        s->closing = 1;
        pthread_cond_broadcast(&s->qcond);
        pthread_mutex_unlock(&s->qlock);
        pthread_join(s->writer, NULL);
        s->writer_started = 0;
    }
    if (s->locks_inited) {
        pthread_mutex_lock(&s->rlock);
        s->rclosing = 1;
        while (s->rbusy > 0) {
            pthread_cond_wait(&s->rcond, &s->rlock);
        }
        pthread_mutex_unlock(&s->rlock);
    }
    for (int i = 0; i < s->nreaders; i++) {
        conn_close(&s->readers[i]);
    }
    conn_close(&s->wconn); /* the last connection: checkpoints and removes the WAL */
    /* Jobs can only be queued while the writer runs, and it drains them; this is for
       a store whose writer never started. */
    while (s->head) {
        job *next = s->head->next;
        free(s->head);
        s->head = next;
    }
    if (s->locks_inited) {
        pthread_mutex_destroy(&s->qlock);
        pthread_cond_destroy(&s->qcond);
        pthread_mutex_destroy(&s->rlock);
        pthread_cond_destroy(&s->rcond);
    }
    free(s->readers);
    free(s->free_idx);
    free(s->path);
    free(s);
    *sp = NULL;
}

static int enqueue(wh_store *s, wh_store_fn fn, wh_store_done done, void *ud, int first);

int wh_store_write(wh_store *s, wh_store_fn fn, wh_store_done done, void *ud)
{
    return enqueue(s, fn, done, ud, 0);
}

static int enqueue(wh_store *s, wh_store_fn fn, wh_store_done done, void *ud, int first)
{
    if (!s || !fn) {
        return WH_ERR_INVALID;
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        return WH_ERR_NOMEM;
    }
    j->fn = fn;
    j->ud = ud;
    j->done = done;
    j->done_ud = ud;
    j->queued_us = mono_us();
    pthread_mutex_lock(&s->qlock);
    int rc = WH_OK;
    if (s->closing || !s->writer_started) {
        rc = WH_ERR_STATE;
    } else if (s->qlen >= s->opts.queue_max) {
        rc = WH_ERR_BUSY;
    } else if (first) {
        j->next = s->head;
        s->head = j;
        if (!s->tail) {
            s->tail = j;
        }
        s->qlen++;
        if (s->qlen == 1 || s->qlen == s->opts.batch_max) {
            pthread_cond_signal(&s->qcond);
        }
    } else {
        if (s->tail) {
            s->tail->next = j;
        } else {
            s->head = j;
        }
        s->tail = j;
        s->qlen++;
        /* Wake the writer when it may be idle (first job) or its batch is full. */
        if (s->qlen == 1 || s->qlen == s->opts.batch_max) {
            pthread_cond_signal(&s->qcond);
        }
    }
    pthread_mutex_unlock(&s->qlock);
    if (rc != WH_OK) {
        free(j);
    }
    return rc;
}

typedef struct sync_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int finished;
    int rc;
    wh_store_fn fn;
    void *ud;
} sync_wait;

static int sync_fn(sqlite3 *db, void *ud)
{
    sync_wait *w = ud;
    return w->fn(db, w->ud);
}

static void sync_done(void *ud, int rc)
{
    sync_wait *w = ud;
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    w->finished = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int wh_store_write_sync(wh_store *s, wh_store_fn fn, void *ud)
{
    if (!s || !fn) {
        return WH_ERR_INVALID;
    }
    if (on_writer_thread(s)) {
        return WH_ERR_STATE;
    }
    sync_wait w = {.finished = 0, .rc = 0, .fn = fn, .ud = ud};
    if (pthread_mutex_init(&w.lock, NULL) != 0) {
        return WH_ERR;
    }
    if (pthread_cond_init(&w.cond, NULL) != 0) {
        pthread_mutex_destroy(&w.lock);
        return WH_ERR;
    }
    /* A caller blocks on this one (the engine's pass): it goes ahead of the
       queued asynchronous jobs. Nothing queued can depend on it, and nothing
       it does depends on them: whatever it builds on was committed before
       its caller heard of it. */
    int rc = enqueue(s, sync_fn, sync_done, &w, 1);
    if (rc == WH_OK) {
        pthread_mutex_lock(&w.lock);
        while (!w.finished) {
            pthread_cond_wait(&w.cond, &w.lock);
        }
        rc = w.rc;
        pthread_mutex_unlock(&w.lock);
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return rc;
}

int wh_store_read(wh_store *s, wh_store_fn fn, void *ud)
{
    if (!s || !fn) {
        return WH_ERR_INVALID;
    }
    if (tls_reading == s) {
        return WH_ERR_STATE;
    }
    pthread_mutex_lock(&s->rlock);
    while (s->nfree == 0 && !s->rclosing) {
        pthread_cond_wait(&s->rcond, &s->rlock);
    }
    if (s->rclosing) {
        pthread_mutex_unlock(&s->rlock);
        return WH_ERR_STATE;
    }
    int idx = s->free_idx[--s->nfree];
    s->rbusy++;
    pthread_mutex_unlock(&s->rlock);

    wh_conn *c = &s->readers[idx];
    wh_conn *saved_conn = tls_conn;
    const wh_store *saved_reading = tls_reading;
    tls_conn = c;
    tls_reading = s;
    int r = fn(c->db, ud);
    reset_busy(c->db);
    if (!sqlite3_get_autocommit(c->db)) {
        /* A read function left a BEGIN open: end it so the snapshot moves on. */
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
    tls_conn = saved_conn;
    tls_reading = saved_reading;

    pthread_mutex_lock(&s->rlock);
    s->free_idx[s->nfree++] = idx;
    s->rbusy--;
    pthread_cond_broadcast(&s->rcond);
    pthread_mutex_unlock(&s->rlock);
    return r;
}

void wh_store_stats_get(wh_store *s, wh_store_stats *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (!s) {
        return;
    }
    out->jobs = atomic_load(&s->jobs);
    out->transactions = atomic_load(&s->transactions);
    out->failed_jobs = atomic_load(&s->failed_jobs);
}

int wh_store_schema_version(wh_store *s)
{
    return s ? s->version : WH_ERR_INVALID;
}

const char *wh_store_path(wh_store *s)
{
    return s ? s->path : NULL;
}
