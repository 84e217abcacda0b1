/*
 * wirehub-bench-floor — the cheapest servers that can be built from wirehub's
 * own libraries, to show where the webhook benchmark's targets sit.
 *
 * It owns nothing of wirehub: each mode is the least a server could do for
 * one rung of what wirehub promises, so that "wirehub / nginx" can be read
 * against "the least that promise costs / nginx" on the same machine:
 *
 *   idle     links every library wirehub links, initialises none, and waits:
 *            its RSS is the floor under wirehub's idle RSS.
 *   answer   libmicrohttpd (wirehub's flags, two threads) reads the body,
 *            checks it is JSON with jansson and answers 200 at once.
 *   handoff  the same, but the answer comes from another thread through
 *            suspend/resume, as any answer that waits for a writer must.
 *   journal  handoff, and that thread first commits each body to SQLite
 *            (WAL, synchronous=FULL, one transaction per batch of waiting
 *            requests): the least "a 200 means the event is on disk" costs.
 *
 * usage: wirehub-bench-floor MODE PORT [STATE_FILE]
 * Prints "ready" once it listens; SIGTERM or SIGINT stops it (exit 0).
 * Not a test and not installed.
 */
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the libraries wirehub links and this program otherwise would not */
#include <curl/curl.h>
#include <openssl/crypto.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yaml.h>
#include <zmq.h>

enum mode { M_IDLE, M_ANSWER, M_HANDOFF, M_JOURNAL };

typedef struct request {
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    int committed;
    struct request *next;
} request;

static enum mode mode;
static sqlite3 *db;
static struct MHD_Response *ok_response;

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static request *queue_head, *queue_tail;
static int stopping;

static int commit_batch(request *batch, sqlite3_stmt *insert, unsigned long long *seq)
{
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        return -1;
    }
    for (request *r = batch; r; r = r->next) {
        char id[33];
        snprintf(id, sizeof id, "%032llx", ++*seq);
        sqlite3_bind_text(insert, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(insert, 2, r->body, (int)r->len, SQLITE_STATIC);
        int rc = sqlite3_step(insert);
        sqlite3_reset(insert);
        if (rc != SQLITE_DONE) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* takes every waiting request at once: the batch is whatever queued meanwhile */
static void *writer_main(void *arg)
{
    (void)arg;
    sqlite3_stmt *insert = NULL;
    unsigned long long seq = 0;
    if (mode == M_JOURNAL && sqlite3_prepare_v2(db, "INSERT INTO events (id, body) VALUES (?1, ?2)",
                                                -1, &insert, NULL) != SQLITE_OK) {
        fprintf(stderr, "floor: prepare: %s\n", sqlite3_errmsg(db));
        exit(1);
    }
    for (;;) {
        pthread_mutex_lock(&queue_lock);
        while (!queue_head && !stopping) {
            pthread_cond_wait(&queue_cond, &queue_lock);
        }
        request *batch = queue_head;
        queue_head = queue_tail = NULL;
        int stop = stopping && !batch;
        pthread_mutex_unlock(&queue_lock);
        if (stop) {
            break;
        }
        int ok = mode != M_JOURNAL || commit_batch(batch, insert, &seq) == 0;
        for (request *r = batch, *next; r; r = next) {
            next = r->next;
            r->committed = ok ? 1 : -1;
            MHD_resume_connection(r->conn);
        }
    }
    sqlite3_finalize(insert);
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **ctx)
{
    (void)cls;
    (void)url;
    (void)version;
    request *r = *ctx;
    if (!r) {
        if (strcmp(method, "POST") != 0) {
            return MHD_queue_response(conn, 200, ok_response); /* the runner's readiness GET */
        }
        r = calloc(1, sizeof *r);
        if (!r) {
            return MHD_NO;
        }
        r->conn = conn;
        *ctx = r;
        return MHD_YES;
    }
    if (*size) {
        if (r->len + *size > 1024 * 1024) {
            return MHD_NO;
        }
        if (r->len + *size > r->cap) {
            size_t cap = (r->len + *size) * 2;
            char *grown = realloc(r->body, cap);
            if (!grown) {
                return MHD_NO;
            }
            r->body = grown;
            r->cap = cap;
        }
        memcpy(r->body + r->len, data, *size);
        r->len += *size;
        *size = 0;
        return MHD_YES;
    }
    if (r->committed) {
        return MHD_queue_response(conn, r->committed > 0 ? 200 : 503, ok_response);
    }
    json_t *doc = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
    if (!doc) {
        return MHD_queue_response(conn, 400, ok_response);
    }
    json_decref(doc);
    if (mode == M_ANSWER) {
        return MHD_queue_response(conn, 200, ok_response);
    }
    pthread_mutex_lock(&queue_lock);
    MHD_suspend_connection(conn);
    if (queue_tail) {
        queue_tail->next = r;
    } else {
        queue_head = r;
    }
    queue_tail = r;
    pthread_cond_signal(&queue_cond);
    pthread_mutex_unlock(&queue_lock);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    request *r = *ctx;
    if (r) {
        free(r->body);
        free(r);
        *ctx = NULL;
    }
}

/* one call into each library wirehub links, so that the linker keeps them all */
static void print_versions(void)
{
    int major, minor, patch;
    zmq_version(&major, &minor, &patch);
    char pcre[48] = "";
    pcre2_config_8(PCRE2_CONFIG_VERSION, pcre);
    fprintf(stderr,
            "floor: libzmq %d.%d.%d, libmicrohttpd %s, %s, jansson %s, yaml %s, "
            "sqlite %s, %s, pcre2 %s\n",
            major, minor, patch, MHD_get_version(), curl_version(), JANSSON_VERSION,
            yaml_get_version_string(), sqlite3_libversion(), OpenSSL_version(OPENSSL_VERSION),
            pcre);
}

static int open_journal(const char *path)
{
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, body TEXT);",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "floor: %s: %s\n", path, db ? sqlite3_errmsg(db) : "cannot open");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char *names[] = {"idle", "answer", "handoff", "journal"};
    int m = -1;
    for (int i = 0; argc >= 3 && i < 4; i++) {
        if (strcmp(argv[1], names[i]) == 0) {
            m = i;
        }
    }
    long port = argc >= 3 ? strtol(argv[2], NULL, 10) : -1;
    if (m < 0 || port < 0 || port > 65535 || (m == M_JOURNAL && argc < 4)) {
        fprintf(stderr, "usage: wirehub-bench-floor idle|answer|handoff|journal PORT [STATE_FILE]\n"
                        "(journal needs STATE_FILE)\n");
        return 2;
    }
    mode = (enum mode)m;
    if (mode != M_IDLE) {
        print_versions(); /* idle touches no library beyond what loading them does */
    }

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL); /* threads started below inherit it */

    struct MHD_Daemon *daemon = NULL;
    pthread_t writer;
    int have_writer = 0;
    if (mode != M_IDLE) {
        if (mode == M_JOURNAL && open_journal(argv[3]) != 0) {
            return 1;
        }
        static const char answer[] = "{\"ok\":true}";
        ok_response = MHD_create_response_from_buffer(sizeof answer - 1, (void *)answer,
                                                      MHD_RESPMEM_PERSISTENT);
        if (mode != M_ANSWER) {
            have_writer = pthread_create(&writer, NULL, writer_main, NULL) == 0;
        }
        daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                                      MHD_ALLOW_SUSPEND_RESUME,
                                  (uint16_t)port, NULL, NULL, on_request, NULL,
                                  MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_NOTIFY_COMPLETED,
                                  on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, 1000u,
                                  MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
        if (!daemon) {
            fprintf(stderr, "floor: cannot listen on port %ld\n", port);
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);

    if (daemon) {
        MHD_quiesce_daemon(daemon);
    }
    if (have_writer) {
        pthread_mutex_lock(&queue_lock);
        stopping = 1;
        pthread_cond_signal(&queue_cond);
        pthread_mutex_unlock(&queue_lock);
        pthread_join(writer, NULL);
    }
    if (daemon) {
        MHD_stop_daemon(daemon);
        MHD_destroy_response(ok_response);
    }
    sqlite3_close(db);
    return 0;
}
