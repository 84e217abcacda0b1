/* The state store: creation and refusals, migrations, group commit, per-job
   failure, sync writes, reads beside the writer, close draining, crash durability. */
#include "engine.h"
#include "store.h"
#include "testlib.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *tmpdir;

static char *path_in(const char *name)
{
    size_t n = strlen(tmpdir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", tmpdir, name);
    return p;
}

static wh_store_opts fast_opts(void)
{
    wh_store_opts o;
    wh_store_opts_init(&o);
    return o;
}

/* ---- jobs and reads used by the tests ---- */

typedef struct insert {
    char id[40];
    int fail_after; /* return this after inserting (0 = succeed) */
    int rc;         /* what done() reported */
    int finished;
} insert;

static int insert_fn(sqlite3 *db, void *ud)
{
    insert *in = ud;
    sqlite3_stmt *st = wh_sql_prepare_cached(
        db,
        "INSERT INTO events(id, source, kind, envelope, created_ms) VALUES (?, 't', 'k', '{}', ?)");
    if (!st) {
        return WH_ERR;
    }
    sqlite3_bind_text(st, 1, in->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, wh_now_ms());
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        return wh_sql_status(rc);
    }
    return in->fail_after;
}

/* Callbacks are counted under one lock so a test can wait for "all done". */
static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cb_cond = PTHREAD_COND_INITIALIZER;
static int cb_count;

static void insert_done(void *ud, int rc)
{
    insert *in = ud;
    pthread_mutex_lock(&cb_lock);
    in->rc = rc;
    in->finished = 1;
    cb_count++;
    pthread_cond_broadcast(&cb_cond);
    pthread_mutex_unlock(&cb_lock);
}

/* Wait (at most 60 s, so a bug fails instead of hanging) for `n` callbacks. */
static int wait_callbacks(int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 60;
    pthread_mutex_lock(&cb_lock);
    int rc = 0;
    while (cb_count < n && rc == 0) {
        rc = pthread_cond_timedwait(&cb_cond, &cb_lock, &ts);
    }
    int got = cb_count;
    pthread_mutex_unlock(&cb_lock);
    return got;
}

static void reset_callbacks(void)
{
    pthread_mutex_lock(&cb_lock);
    cb_count = 0;
    pthread_mutex_unlock(&cb_lock);
}

/* A job that holds the writer (inside its transaction) until released. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered, released;
    const char *insert_id; /* optional row to insert before waiting */
    int rc;                /* what gate_done() reported */
} gate;

static void gate_init(gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
}

static void gate_fini(gate *g)
{
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
}

static int gate_fn(sqlite3 *db, void *ud)
{
    gate *g = ud;
    if (g->insert_id) {
        insert in = {.fail_after = 0};
        snprintf(in.id, sizeof in.id, "%s", g->insert_id);
        if (insert_fn(db, &in) != 0) {
            return WH_ERR;
        }
    }
    pthread_mutex_lock(&g->lock);
    g->entered = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->released) {
        pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return 0;
}

static void gate_done(void *ud, int rc)
{
    gate *g = ud;
    pthread_mutex_lock(&cb_lock);
    g->rc = rc;
    cb_count++;
    pthread_cond_broadcast(&cb_cond);
    pthread_mutex_unlock(&cb_lock);
}

static void gate_wait_entered(gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->entered) {
        pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
}

static void gate_release(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->released = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

typedef struct query {
    const char *sql;
    const char *arg; /* bound to ?1 when not NULL */
    long long n;
    char text[128];
} query;

static int query_fn(sqlite3 *db, void *ud)
{
    query *q = ud;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, q->sql, -1, &st, NULL);
    if (rc == SQLITE_OK && q->arg) {
        sqlite3_bind_text(st, 1, q->arg, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        q->n = sqlite3_column_int64(st, 0);
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(q->text, sizeof q->text, "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        q->n = -1;
        q->text[0] = '\0';
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return wh_sql_status(rc);
}

static long long read_int(wh_store *s, const char *sql, const char *arg)
{
    query q = {.sql = sql, .arg = arg};
    int rc = wh_store_read(s, query_fn, &q);
    return rc == WH_OK ? q.n : -1000 + rc;
}

static long long count_events(wh_store *s)
{
    return read_int(s, "SELECT count(*) FROM events", NULL);
}

static int has_event(wh_store *s, const char *id)
{
    return read_int(s, "SELECT count(*) FROM events WHERE id = ?1", id) == 1;
}

/* ---- tests ---- */

static int pragma_on_writer(sqlite3 *db, void *ud)
{
    return query_fn(db, ud);
}

static void test_create(void)
{
    char *p = path_in("create.db");
    char err[256];
    wh_store *s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "open: %s\n", err);
        free(p);
        return;
    }
    CHECK_INT(wh_store_schema_version(s), wh_migrate_latest());
    CHECK_INT(wh_migrate_latest(), 5);
    CHECK_STR(wh_store_path(s), p);

    query q = {.sql = "PRAGMA journal_mode"};
    CHECK_INT(wh_store_read(s, query_fn, &q), WH_OK);
    CHECK_STR(q.text, "wal");
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600);

    /* The writer connection runs with synchronous=FULL (2) and foreign keys on. */
    query sync = {.sql = "PRAGMA synchronous"};
    CHECK_INT(wh_store_write_sync(s, pragma_on_writer, &sync), WH_OK);
    CHECK_INT(sync.n, 2);
    query fk = {.sql = "PRAGMA foreign_keys"};
    CHECK_INT(wh_store_write_sync(s, pragma_on_writer, &fk), WH_OK);
    CHECK_INT(fk.n, 1);

    static const char *const objects[] = {
        "events",
        "events_state",
        "seen",
        "runs",
        "runs_finished",
        "outbox",
        "outbox_due",
        "outbox_lane",
        "conversations",
        "conversations_key",
        "conversations_due",
        "replies",
        "replies_key",
    };
    for (size_t i = 0; i < WH_ARRAY_LEN(objects); i++) {
        long long n = read_int(s, "SELECT count(*) FROM sqlite_master WHERE name = ?1", objects[i]);
        if (n != 1) {
            fprintf(stderr, "missing schema object %s\n", objects[i]);
        }
        CHECK_INT(n, 1);
    }
    CHECK_INT(read_int(s, "PRAGMA user_version", NULL), wh_migrate_latest());
    CHECK_INT(read_int(s, "PRAGMA application_id", NULL), 0x57484231);
    /* Reads are reads. */
    query w = {.sql = "INSERT INTO seen(source, id) VALUES ('a', 'b')"};
    CHECK(wh_store_read(s, query_fn, &w) != WH_OK);
    wh_store_close(&s);
    CHECK(s == NULL);
    wh_store_close(&s); /* NULL-safe */
    wh_store_close(NULL);

    /* synchronous_full = 0 → NORMAL (1) */
    wh_store_opts o = fast_opts();
    o.synchronous_full = 0;
    s = wh_store_open(p, &o, err, sizeof err);
    CHECK(s != NULL);
    query sync2 = {.sql = "PRAGMA synchronous"};
    CHECK_INT(wh_store_write_sync(s, pragma_on_writer, &sync2), WH_OK);
    CHECK_INT(sync2.n, 1);
    wh_store_close(&s);
    free(p);
}

static void test_reopen(void)
{
    char *p = path_in("reopen.db");
    char err[256];
    wh_store *s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    insert in = {.id = "kept"};
    CHECK_INT(wh_store_write_sync(s, insert_fn, &in), WH_OK);
    wh_store_close(&s);
    /* The last connection checkpoints: the data is in the main file now. */
    char *wal = path_in("reopen.db-wal");
    CHECK(access(wal, F_OK) != 0);
    free(wal);

    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    CHECK_INT(wh_store_schema_version(s), wh_migrate_latest());
    CHECK(has_event(s, "kept"));
    CHECK_INT(count_events(s), 1);
    wh_store_close(&s);
    free(p);
}

static void make_sqlite_file(const char *p, const char *sql)
{
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open(p, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    chmod(p, 0600);
}

static void test_refusals(void)
{
    char err[256];

    /* a newer schema */
    char *p = path_in("newer.db");
    make_sqlite_file(p, "PRAGMA user_version = 99");
    wh_store *s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "state file is schema 99, this wirehub knows up to 5") != NULL);
    CHECK(strstr(err, p) == err); /* names the file first */
    free(p);

    /* not SQLite */
    p = path_in("text.db");
    free(wh_test_write(tmpdir, "text.db",
                       "this is a text file, not a database; it is long enough to have a header "
                       "that SQLite would read, and then some more text to be sure of it.\n"));
    chmod(p, 0600);
    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "not a SQLite database") != NULL);
    free(p);

    /* SQLite, but someone else's */
    p = path_in("foreign.db");
    make_sqlite_file(p, "CREATE TABLE contacts(name TEXT)");
    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "not a wirehub state file") != NULL);
    char *fwal = path_in("foreign.db-wal");
    CHECK(access(fwal, F_OK) != 0);
    free(fwal);
    {
        /* refused before anything changed: still in rollback-journal mode */
        sqlite3 *db = NULL;
        char mode[16] = "";
        sqlite3_stmt *st = NULL;
        sqlite3_open(p, &db);
        if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(st, 0));
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        CHECK_STR(mode, "delete");
    }
    free(p);

    /* a file other users can write, then a directory */
    p = path_in("perm.db");
    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    wh_store_close(&s);
    CHECK_INT(chmod(p, 0666), 0);
    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "refusing to use a state file other users can write") != NULL);
    CHECK_INT(chmod(p, 0620), 0); /* group-writable too */
    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "other users can write") != NULL);
    CHECK_INT(chmod(p, 0600), 0);
    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    wh_store_close(&s);
    CHECK_INT(chmod(tmpdir, 0777), 0);
    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "refusing to use a state file other users can write") != NULL);
    CHECK(strstr(err, "directory") != NULL);
    CHECK_INT(chmod(tmpdir, 0700), 0);
    free(p);

    /* a directory that does not exist */
    p = path_in("nowhere/state.db");
    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "does not exist") != NULL);
    free(p);

    /* bad options, no path */
    p = path_in("opts.db");
    wh_store_opts o = fast_opts();
    o.batch_wait_us = -1;
    s = wh_store_open(p, &o, err, sizeof err);
    CHECK(s == NULL);
    CHECK(strstr(err, "batch_wait_us") != NULL);
    o = fast_opts();
    o.readers = 1000;
    CHECK(wh_store_open(p, &o, err, sizeof err) == NULL);
    CHECK(strstr(err, "readers") != NULL);
    CHECK(access(p, F_OK) != 0); /* refused before touching the disk */
    CHECK(wh_store_open(NULL, NULL, err, sizeof err) == NULL);
    CHECK(wh_store_open("", NULL, err, sizeof err) == NULL);
    free(p);
}

typedef struct submitter {
    wh_store *s;
    insert *rows;
    int n;
    int failures;
} submitter;

static void *submit_thread(void *arg)
{
    submitter *t = arg;
    for (int i = 0; i < t->n; i++) {
        if (wh_store_write(t->s, insert_fn, insert_done, &t->rows[i]) != WH_OK) {
            t->failures++;
        }
    }
    return NULL;
}

static void test_group_commit(void)
{
    enum { THREADS = 4, PER = 250, TOTAL = THREADS * PER };
    char *p = path_in("group.db");
    char err[256];
    wh_store_opts o = fast_opts(); /* batch_max 256, batch_wait 2 ms */
    wh_store *s = wh_store_open(p, &o, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        free(p);
        return;
    }
    insert *rows = calloc(TOTAL, sizeof *rows);
    for (int i = 0; i < TOTAL; i++) {
        snprintf(rows[i].id, sizeof rows[i].id, "g%04d", i);
    }
    reset_callbacks();

    /* Hold the writer until all 1000 jobs are queued: then batching is certain. */
    gate g;
    gate_init(&g);
    CHECK_INT(wh_store_write(s, gate_fn, NULL, &g), WH_OK);
    gate_wait_entered(&g);

    pthread_t th[THREADS];
    submitter sub[THREADS];
    for (int t = 0; t < THREADS; t++) {
        sub[t] = (submitter){.s = s, .rows = rows + t * PER, .n = PER};
        pthread_create(&th[t], NULL, submit_thread, &sub[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        CHECK_INT(sub[t].failures, 0);
    }
    /* Nothing of the queued jobs has run while the writer is held. */
    wh_store_stats st;
    wh_store_stats_get(s, &st);
    CHECK_INT(st.jobs, 0);
    gate_release(&g);
    CHECK_INT(wait_callbacks(TOTAL), TOTAL);

    int ok = 0;
    for (int i = 0; i < TOTAL; i++) {
        ok += rows[i].finished && rows[i].rc == 0;
    }
    CHECK_INT(ok, TOTAL);
    CHECK_INT(count_events(s), TOTAL);
    wh_store_stats_get(s, &st);
    CHECK_INT(st.jobs, TOTAL + 1);
    CHECK_INT(st.failed_jobs, 0);
    /* The gate's own transaction, then ceil(1000 / 256) = 4. */
    CHECK(st.transactions <= (TOTAL + 255) / 256 + 1);
    CHECK(st.transactions < st.jobs / 4);
    fprintf(stderr, "group commit: %llu jobs in %llu transactions\n", (unsigned long long)st.jobs,
            (unsigned long long)st.transactions);
    wh_store_close(&s);
    gate_fini(&g);
    free(rows);
    free(p);
}

static int rollback_fn(sqlite3 *db, void *ud)
{
    (void)ud;
    return wh_sql_exec(db, "ROLLBACK");
}

static void rollback_done(void *ud, int rc)
{
    *(int *)ud = rc;
    pthread_mutex_lock(&cb_lock);
    cb_count++;
    pthread_cond_broadcast(&cb_cond);
    pthread_mutex_unlock(&cb_lock);
}

static void test_failing_job(void)
{
    char *p = path_in("fail.db");
    char err[256];
    wh_store *s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        free(p);
        return;
    }
    insert first = {.id = "dup"};
    CHECK_INT(wh_store_write_sync(s, insert_fn, &first), WH_OK);

    reset_callbacks();
    gate g;
    gate_init(&g);
    CHECK_INT(wh_store_write(s, gate_fn, NULL, &g), WH_OK);
    gate_wait_entered(&g);
    wh_store_stats before;
    wh_store_stats_get(s, &before);

    insert a = {.id = "a"}, dup = {.id = "dup"}, c = {.id = "c", .fail_after = WH_ERR_INVALID},
           pos = {.id = "pos", .fail_after = 7}, b = {.id = "b"};
    CHECK_INT(wh_store_write(s, insert_fn, insert_done, &a), WH_OK);
    CHECK_INT(wh_store_write(s, insert_fn, insert_done, &dup), WH_OK); /* constraint */
    CHECK_INT(wh_store_write(s, insert_fn, insert_done, &c), WH_OK);   /* inserts, then fails */
    CHECK_INT(wh_store_write(s, insert_fn, insert_done, &pos), WH_OK); /* positive = failure */
    CHECK_INT(wh_store_write(s, insert_fn, insert_done, &b), WH_OK);
    gate_release(&g);
    CHECK_INT(wait_callbacks(5), 5);

    CHECK_INT(a.rc, 0);
    CHECK_INT(dup.rc, WH_ERR_INVALID);
    CHECK_INT(c.rc, WH_ERR_INVALID);
    CHECK_INT(pos.rc, WH_ERR);
    CHECK_INT(b.rc, 0);
    CHECK(has_event(s, "a"));
    CHECK(has_event(s, "b"));
    CHECK(!has_event(s, "c")); /* rolled back alone */
    CHECK(!has_event(s, "pos"));
    CHECK_INT(count_events(s), 3); /* dup, a, b */
    wh_store_stats after;
    wh_store_stats_get(s, &after);
    CHECK_INT(after.transactions - before.transactions, 1); /* one batch, one commit */
    CHECK_INT(after.failed_jobs - before.failed_jobs, 3);

    /* A job that ends the transaction itself: it and the jobs before it in that
       transaction fail (their work is gone); later jobs get a new transaction. */
    reset_callbacks();
    gate g2;
    gate_init(&g2);
    CHECK_INT(wh_store_write(s, gate_fn, NULL, &g2), WH_OK);
    gate_wait_entered(&g2);
    insert x = {.id = "x"}, y = {.id = "y"};
    int rb_rc = 1;
    CHECK_INT(wh_store_write(s, insert_fn, insert_done, &x), WH_OK);
    CHECK_INT(wh_store_write(s, rollback_fn, rollback_done, &rb_rc), WH_OK);
    CHECK_INT(wh_store_write(s, insert_fn, insert_done, &y), WH_OK);
    gate_release(&g2);
    CHECK_INT(wait_callbacks(3), 3);
    CHECK(x.rc < 0);
    CHECK(rb_rc < 0);
    CHECK_INT(y.rc, 0);
    CHECK(!has_event(s, "x"));
    CHECK(has_event(s, "y"));
    wh_store_close(&s);
    gate_fini(&g);
    gate_fini(&g2);
    free(p);
}

typedef struct reentry {
    wh_store *s;
    int sync_rc;
    int read_rc;
} reentry;

static int noop_fn(sqlite3 *db, void *ud)
{
    (void)db;
    (void)ud;
    return 0;
}

static int reenter_write_fn(sqlite3 *db, void *ud)
{
    reentry *r = ud;
    (void)db;
    r->sync_rc = wh_store_write_sync(r->s, noop_fn, NULL); /* on the writer: refused */
    return 0;
}

static int reenter_read_fn(sqlite3 *db, void *ud)
{
    reentry *r = ud;
    (void)db;
    r->read_rc = wh_store_read(r->s, noop_fn, NULL); /* nested read: refused */
    return 42;
}

static int leave_open_fn(sqlite3 *db, void *ud)
{
    /* Start a read, never reset it, and leave a BEGIN open. */
    (void)ud;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_stmt *st = wh_sql_prepare_cached(db, "SELECT id FROM events");
    return st && sqlite3_step(st) == SQLITE_ROW ? 0 : WH_ERR;
}

static void test_sync_and_reads(void)
{
    char *p = path_in("sync.db");
    char err[256];
    wh_store_opts o = fast_opts();
    o.readers = 1; /* one reader: a pinned snapshot would show */
    wh_store *s = wh_store_open(p, &o, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        free(p);
        return;
    }
    insert in = {.id = "s1"};
    CHECK_INT(wh_store_write_sync(s, insert_fn, &in), WH_OK);
    CHECK(has_event(s, "s1")); /* visible as soon as write_sync returned */
    insert again = {.id = "s1"};
    CHECK_INT(wh_store_write_sync(s, insert_fn, &again), WH_ERR_INVALID);

    reentry r = {.s = s, .sync_rc = 1, .read_rc = 1};
    CHECK_INT(wh_store_write_sync(s, reenter_write_fn, &r), WH_OK);
    CHECK_INT(r.sync_rc, WH_ERR_STATE);
    CHECK_INT(wh_store_read(s, reenter_read_fn, &r), 42); /* returns fn's value */
    CHECK_INT(r.read_rc, WH_ERR_STATE);
    CHECK_INT(wh_store_read(NULL, noop_fn, NULL), WH_ERR_INVALID);
    CHECK_INT(wh_store_write(s, NULL, NULL, NULL), WH_ERR_INVALID);
    CHECK_INT(wh_store_write_sync(NULL, noop_fn, NULL), WH_ERR_INVALID);

    /* A read that leaves a statement mid-way and a transaction open does not pin the
       reader's snapshot: the next read sees a later commit. */
    CHECK_INT(wh_store_read(s, leave_open_fn, NULL), 0);
    insert in2 = {.id = "s2"};
    CHECK_INT(wh_store_write_sync(s, insert_fn, &in2), WH_OK);
    CHECK(has_event(s, "s2"));

    /* While the writer sits inside an open transaction, reads neither block nor
       see its uncommitted row. */
    gate g;
    gate_init(&g);
    g.insert_id = "uncommitted";
    reset_callbacks();
    CHECK_INT(wh_store_write(s, gate_fn, NULL, &g), WH_OK);
    gate_wait_entered(&g);
    CHECK(!has_event(s, "uncommitted"));
    CHECK_INT(count_events(s), 2);
    gate_release(&g);
    insert after = {.id = "after"};
    CHECK_INT(wh_store_write_sync(s, insert_fn, &after), WH_OK);
    CHECK(has_event(s, "uncommitted"));
    wh_store_close(&s);
    gate_fini(&g);
    free(p);
}

typedef struct cache_probe {
    sqlite3_stmt *a, *b, *multi, *bad, *other_db;
    int bound_after;
} cache_probe;

static int cache_fn(sqlite3 *db, void *ud)
{
    cache_probe *c = ud;
    c->a = wh_sql_prepare_cached(db, "SELECT ?1");
    sqlite3_bind_int(c->a, 1, 5);
    sqlite3_step(c->a); /* left mid-way on purpose */
    c->b = wh_sql_prepare_cached(db, "SELECT ?1");
    /* reset and cleared: stepping now yields NULL, not 5 */
    c->bound_after =
        sqlite3_step(c->b) == SQLITE_ROW && sqlite3_column_type(c->b, 0) == SQLITE_NULL;
    c->multi = wh_sql_prepare_cached(db, "SELECT 1; SELECT 2");
    c->bad = wh_sql_prepare_cached(db, "SELEKT nonsense");
    sqlite3_stmt *ok = wh_sql_prepare_cached(db, "SELECT 1; -- trailing comment\n");
    sqlite3 *mem = NULL;
    sqlite3_open(":memory:", &mem);
    c->other_db = wh_sql_prepare_cached(mem, "SELECT 1");
    sqlite3_close(mem);
    return ok ? 0 : WH_ERR;
}

static void test_stmt_cache(void)
{
    char *p = path_in("cache.db");
    char err[256];
    wh_store *s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    cache_probe c = {0};
    CHECK_INT(wh_store_read(s, cache_fn, &c), 0);
    CHECK(c.a != NULL && c.a == c.b);
    CHECK(c.bound_after);
    CHECK(c.multi == NULL);
    CHECK(c.bad == NULL);
    CHECK(c.other_db == NULL);
    cache_probe w = {0};
    CHECK_INT(wh_store_write_sync(s, cache_fn, &w), 0);
    CHECK(w.a != NULL && w.a == w.b && w.a != c.a);         /* one cache per connection */
    CHECK(wh_sql_prepare_cached(NULL, "SELECT 1") == NULL); /* outside a callback */
    CHECK_INT(wh_sql_status(SQLITE_CONSTRAINT_PRIMARYKEY), WH_ERR_INVALID);
    CHECK_INT(wh_sql_status(SQLITE_BUSY), WH_ERR_BUSY);
    CHECK_INT(wh_sql_status(SQLITE_DONE), WH_OK);
    CHECK_INT(wh_sql_status(SQLITE_IOERR_FSYNC), WH_ERR_IO);
    wh_store_close(&s);
    free(p);
}

static void test_queue_limit(void)
{
    char *p = path_in("limit.db");
    char err[256];
    wh_store_opts o = fast_opts();
    o.queue_max = 2;
    wh_store *s = wh_store_open(p, &o, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        free(p);
        return;
    }
    gate g;
    gate_init(&g);
    g.rc = 1;
    CHECK_INT(wh_store_write(s, gate_fn, gate_done, &g), WH_OK);
    gate_wait_entered(&g); /* the gate left the queue */
    CHECK_INT(wh_store_write(s, noop_fn, NULL, NULL), WH_OK);
    CHECK_INT(wh_store_write(s, noop_fn, NULL, NULL), WH_OK);
    CHECK_INT(wh_store_write(s, noop_fn, NULL, NULL), WH_ERR_BUSY);
    gate_release(&g);
    wh_store_close(&s);
    CHECK_INT(g.rc, 0);
    gate_fini(&g);
    free(p);
}

/* ---- close drains the queue ---- */

static atomic_int late_done;
static atomic_int late_bad;

static void late_cb(void *ud, int rc)
{
    (void)ud;
    atomic_fetch_add(&late_done, 1);
    if (rc != 0) {
        atomic_fetch_add(&late_bad, 1);
    }
}

typedef struct closer {
    wh_store *s;
    gate *g;
    int accepted;
    int last_rc;
} closer;

/* Keep writing until the store says it is closing, then let the writer go: so
   close() certainly begins with jobs still queued. */
static void *closer_thread(void *arg)
{
    closer *c = arg;
    for (;;) {
        int rc = wh_store_write(c->s, noop_fn, late_cb, NULL);
        if (rc == WH_OK) {
            c->accepted++;
        } else if (rc == WH_ERR_STATE) {
            c->last_rc = rc;
            break;
        } else {
            sched_yield(); /* WH_ERR_BUSY: the queue is full; wait for close to begin */
        }
    }
    gate_release(c->g);
    return NULL;
}

static void test_close_drains(void)
{
    enum { N = 100 };
    char *p = path_in("drain.db");
    char err[256];
    wh_store_opts o = fast_opts();
    o.queue_max = 1000;
    wh_store *s = wh_store_open(p, &o, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        free(p);
        return;
    }
    insert rows[N];
    memset(rows, 0, sizeof rows);
    reset_callbacks();
    gate g;
    gate_init(&g);
    CHECK_INT(wh_store_write(s, gate_fn, NULL, &g), WH_OK);
    gate_wait_entered(&g);
    for (int i = 0; i < N; i++) {
        snprintf(rows[i].id, sizeof rows[i].id, "d%03d", i);
        CHECK_INT(wh_store_write(s, insert_fn, insert_done, &rows[i]), WH_OK);
    }
    atomic_store(&late_done, 0);
    atomic_store(&late_bad, 0);
    closer c = {.s = s, .g = &g};
    pthread_t th;
    pthread_create(&th, NULL, closer_thread, &c);
    wh_store_close(&s); /* returns only after the writer drained everything */
    CHECK(s == NULL);
    pthread_join(th, NULL);
    CHECK_INT(c.last_rc, WH_ERR_STATE);
    CHECK_INT(wait_callbacks(N), N); /* already done: no waiting happens */
    int ok = 0;
    for (int i = 0; i < N; i++) {
        ok += rows[i].finished && rows[i].rc == 0;
    }
    CHECK_INT(ok, N);
    CHECK_INT(atomic_load(&late_done), c.accepted);
    CHECK_INT(atomic_load(&late_bad), 0);

    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    CHECK_INT(count_events(s), N);
    wh_store_close(&s);
    gate_fini(&g);
    free(p);
}

/* ---- crash durability ---- */

/* Child: write rows with write_sync, telling the parent each acknowledged index.
   Ends with _exit (no close) or is killed by the parent. */
static void crash_child(const char *p, int fd, int n, int queue_more)
{
    char err[256];
    wh_store *s = wh_store_open(p, NULL, err, sizeof err);
    if (!s) {
        _exit(3);
    }
    for (int i = 0; i < n; i++) {
        insert in = {.fail_after = 0};
        snprintf(in.id, sizeof in.id, "c%06d", i);
        if (wh_store_write_sync(s, insert_fn, &in) != WH_OK) {
            _exit(4);
        }
        if (write(fd, &i, sizeof i) != (ssize_t)sizeof i) {
            _exit(5);
        }
    }
    static insert extra[20];
    for (int i = 0; queue_more && i < 20; i++) {
        snprintf(extra[i].id, sizeof extra[i].id, "x%02d", i);
        wh_store_write(s, insert_fn, NULL, &extra[i]); /* never acknowledged */
    }
    int end = -1;
    if (write(fd, &end, sizeof end) != (ssize_t)sizeof end) {
        _exit(6);
    }
    _exit(0); /* a crash as far as the store knows: no close, writer mid-flight */
}

static void crash_check(const char *p, const int *acked, int nacked)
{
    char err[256];
    wh_store *s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "reopen after crash: %s\n", err);
        return;
    }
    int missing = 0;
    for (int i = 0; i < nacked; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%06d", acked[i]);
        missing += !has_event(s, id);
    }
    CHECK_INT(missing, 0);
    CHECK(count_events(s) >= nacked);
    query q = {.sql = "PRAGMA integrity_check"};
    CHECK_INT(wh_store_read(s, query_fn, &q), WH_OK);
    CHECK_STR(q.text, "ok");
    wh_store_close(&s);
}

static void test_crash(int kill_it)
{
    enum { N = 400, KILL_AFTER = 40 };
    char *p = path_in(kill_it ? "crash-kill.db" : "crash-exit.db");
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_child(p, fds[1], kill_it ? 1000000 : N, !kill_it);
    }
    close(fds[1]);
    int *acked = calloc(1000000, sizeof *acked);
    int nacked = 0, ended = 0, killed = 0, v;
    while (read(fds[0], &v, sizeof v) == (ssize_t)sizeof v) {
        if (v < 0) {
            ended = 1;
            continue;
        }
        acked[nacked++] = v;
        if (kill_it && !killed && nacked >= KILL_AFTER) {
            kill(pid, SIGKILL); /* mid-stream: likely inside a transaction */
            killed = 1;
        }
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (kill_it) {
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        CHECK(nacked >= KILL_AFTER);
    } else {
        CHECK(ended);
        CHECK_INT(nacked, N);
    }
    fprintf(stderr, "crash (%s): %d acknowledged rows\n", kill_it ? "SIGKILL" : "_exit", nacked);
    crash_check(p, acked, nacked);
    free(acked);
    free(p);
}

/* A schema-2 file (runs_state, no outbox_lane, no rule_fp, user_version 2) with data opens
   at the latest schema: the indexes are replaced and added, the rows stay. */
static void test_migrate_2_to_latest(void)
{
    char *p = path_in("v2.db");
    char err[256];
    wh_store *s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    wh_store_close(&s);
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open(p, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db,
                           "DROP INDEX runs_finished; CREATE INDEX runs_state ON runs(state);"
                           "DROP INDEX outbox_lane; ALTER TABLE runs DROP COLUMN rule_fp;"
                           "INSERT INTO runs (id, rule, step, ctx, state, created_ms, updated_ms) "
                           "VALUES ('r1', 'x', 0, '{}', 'done', 1, 1);"
                           "PRAGMA user_version = 2;",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    if (s) {
        CHECK_INT(wh_store_schema_version(s), wh_migrate_latest());
        query q = {.sql = "SELECT count(*) FROM sqlite_master WHERE name = 'runs_finished'"};
        CHECK_INT(wh_store_read(s, query_fn, &q), WH_OK);
        CHECK_INT(q.n, 1);
        query lane = {.sql = "SELECT count(*) FROM sqlite_master WHERE name = 'outbox_lane'"};
        CHECK_INT(wh_store_read(s, query_fn, &lane), WH_OK);
        CHECK_INT(lane.n, 1);
        query old = {.sql = "SELECT count(*) FROM sqlite_master WHERE name = 'runs_state'"};
        CHECK_INT(wh_store_read(s, query_fn, &old), WH_OK);
        CHECK_INT(old.n, 0);
        query fp = {.sql = "SELECT count(*) FROM pragma_table_info('runs') WHERE name = "
                           "'rule_fp'"};
        CHECK_INT(wh_store_read(s, query_fn, &fp), WH_OK);
        CHECK_INT(fp.n, 1);
        query rows = {.sql = "SELECT count(*) FROM runs WHERE id = 'r1'"};
        CHECK_INT(wh_store_read(s, query_fn, &rows), WH_OK);
        CHECK_INT(rows.n, 1);
        wh_store_close(&s);
    }
    free(p);
}

static int fill_for_cleanup(sqlite3 *db, void *ud)
{
    (void)ud;
    long long now = wh_now_ms(), hour = 3600000LL, day = 24 * hour, week = 7 * day;
    char sql[1024];
    /* first (oldest rowids) 2 events never handled: they stay, however old */
    snprintf(sql, sizeof sql,
             "INSERT INTO events (id, source, kind, envelope, state, created_ms) VALUES "
             "('u1', 's', 'k', '{}', 'new', %lld), ('u2', 's', 'k', '{}', 'new', %lld)",
             now - 3 * day, now - 2 * hour);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return WH_ERR;
    }
    /* then 2,500 handled events older than an hour, then 3 recent ones */
    for (int i = 0; i < 2503; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO events (id, source, kind, envelope, state, created_ms) VALUES "
                 "('e%d', 's', 'k', '{}', 'done', %lld)",
                 i, i < 2500 ? now - 2 * hour : now - 1000);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            return WH_ERR;
        }
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO seen (source, id, created_ms) VALUES ('s', 'old', %lld), ('s', 'new', %lld);"
             "INSERT INTO runs (id, rule, step, ctx, state, created_ms, updated_ms) VALUES "
             "('r-old', 'x', 1, '{}', 'done', %lld, %lld), ('r-failed', 'x', 1, '{}', 'failed', "
             "%lld, %lld), ('r-waiting', 'x', 1, '{}', 'waiting', %lld, %lld), ('r-new', 'x', 1, "
             "'{}', 'done', %lld, %lld);",
             now - 2 * day, now, now - 2 * week, now - 2 * week, now - 2 * week, now - 2 * week,
             now - 2 * week, now - 2 * week, now, now);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return WH_ERR;
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO outbox (id, instance, op, args, key, state, next_at_ms, created_ms, "
             "updated_ms) VALUES ('o-old', 'i', 'op', '{}', 'o-old', 'done', %lld, %lld, %lld), "
             "('o-dead', 'i', 'op', '{}', 'o-dead', 'dead', %lld, %lld, %lld), ('o-new', 'i', "
             "'op', '{}', 'o-new', 'done', %lld, %lld, %lld);",
             now - 2 * week, now - 2 * week, now - 2 * week, now - 2 * week, now - 2 * week,
             now - 2 * week, now, now, now);
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? WH_OK : WH_ERR;
}

static long long count_where(wh_store *s, const char *sql)
{
    query q = {.sql = sql, .n = -1};
    CHECK_INT(wh_store_read(s, query_fn, &q), WH_OK);
    return q.n;
}

/* The engine's cleanup removes what is past keeping, never an event not yet
   handled, at most a chunk per table per call, and says when a table had more. */
static void test_cleanup(void)
{
    char *p = path_in("cleanup.db");
    char err[256];
    wh_store *s = wh_store_open(p, NULL, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        free(p);
        return;
    }
    CHECK_INT(wh_store_write_sync(s, fill_for_cleanup, NULL), WH_OK);
    int more = -1;
    CHECK_INT(wh_store_write_sync(s, wh_engine_cleanup, &more), WH_OK);
    CHECK_INT(more, 1);
    CHECK_INT(count_where(s, "SELECT count(*) FROM events"), 2 + 2503 - WH_CLEANUP_CHUNK);
    more = -1;
    CHECK_INT(wh_store_write_sync(s, wh_engine_cleanup, &more), WH_OK);
    CHECK_INT(more, 0);
    CHECK_INT(count_where(s, "SELECT count(*) FROM events"), 2 + 3);
    CHECK_INT(count_where(s, "SELECT count(*) FROM events WHERE id IN ('u1', 'u2')"), 2);
    CHECK_INT(count_where(s, "SELECT count(*) FROM seen WHERE id = 'new'"), 1);
    CHECK_INT(count_where(s, "SELECT count(*) FROM seen"), 1);
    CHECK_INT(count_where(s, "SELECT count(*) FROM runs WHERE id IN ('r-waiting', 'r-new')"), 2);
    CHECK_INT(count_where(s, "SELECT count(*) FROM runs"), 2);
    CHECK_INT(count_where(s, "SELECT count(*) FROM outbox WHERE id IN ('o-dead', 'o-new')"), 2);
    CHECK_INT(count_where(s, "SELECT count(*) FROM outbox"), 2);
    wh_store_close(&s);
    free(p);
}

int main(void)
{
    tmpdir = wh_test_tmpdir();
    if (!tmpdir) {
        perror("tmpdir");
        return 1;
    }
    /* Forking tests first, while this process has no threads. */
    test_crash(0);
    test_crash(1);
    test_create();
    test_reopen();
    test_refusals();
    test_group_commit();
    test_failing_job();
    test_sync_and_reads();
    test_stmt_cache();
    test_queue_limit();
    test_close_drains();
    test_migrate_2_to_latest();
    test_cleanup();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    free(tmpdir);
    return wh_test_done("store");
}
