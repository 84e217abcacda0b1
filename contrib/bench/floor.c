/*
 * wirehub-bench-floor — the cheapest servers that can be built from wirehub's
 * own libraries, to show where the webhook benchmark's targets sit.
 *
 * It owns nothing of wirehub: each mode is the least a server could do for
 * one rung of what wirehub promises, so that "wirehub / nginx" can be read
 * against "the least that promise costs / nginx" on the same machine:
 *
 *   call     journal, and then each committed body is POSTed to URL (libcurl
 *            multi, 64 at a time, retried until a 2xx) and its row marked
 *            done in a later transaction: the least "webhook -> one call to
 *            an API, never lost" costs. The 200 still comes after the first
 *            commit, as wirehub's does. On stop it finishes every call and
 *            prints "delivered N of M".
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
 * usage: wirehub-bench-floor MODE PORT [STATE_FILE [URL]]
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

enum mode { M_IDLE, M_ANSWER, M_HANDOFF, M_JOURNAL, M_CALL };

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
static int stopping, writer_busy;

/* call mode: committed bodies waiting for their POST, and POSTs done */
typedef struct call {
    unsigned long long seq;
    char *body;
    size_t len;
    struct call *next;
} call;
static const char *call_url;
static CURLM *multi;
static call *calls_head, *calls_tail; /* queue_lock: to the caller thread */
static unsigned long long *done_seqs; /* queue_lock: to the writer */
static size_t done_len, done_cap;
static int draining; /* queue_lock: stop once all is delivered */

static void seq_id(char id[33], unsigned long long seq)
{
    snprintf(id, 33, "%032llx", seq);
}

/* one transaction: the new bodies (with their seq numbers), then the calls done */
static int commit_batch(request *batch, unsigned long long first, const unsigned long long *done,
                        size_t ndone, sqlite3_stmt *insert, sqlite3_stmt *mark)
{
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        return -1;
    }
    int rc = SQLITE_DONE;
    char id[33];
    unsigned long long seq = first;
    for (request *r = batch; r && rc == SQLITE_DONE; r = r->next) {
        seq_id(id, seq++);
        sqlite3_bind_text(insert, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(insert, 2, r->body, (int)r->len, SQLITE_STATIC);
        rc = sqlite3_step(insert);
        sqlite3_reset(insert);
    }
    for (size_t i = 0; i < ndone && rc == SQLITE_DONE; i++) {
        seq_id(id, done[i]);
        sqlite3_bind_text(mark, 1, id, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(mark);
        sqlite3_reset(mark);
    }
    if (rc != SQLITE_DONE) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* call mode: copies of the committed bodies, to the caller thread */
static void hand_over(request *batch, unsigned long long first)
{
    call *head = NULL, **tail = &head;
    for (request *r = batch; r; r = r->next) {
        call *c = calloc(1, sizeof *c);
        if (!c || !(c->body = malloc(r->len ? r->len : 1))) {
            fprintf(stderr, "floor: out of memory\n");
            exit(1);
        }
        memcpy(c->body, r->body, r->len);
        c->len = r->len;
        c->seq = first++;
        *tail = c;
        tail = &c->next;
    }
    if (!head) {
        return;
    }
    pthread_mutex_lock(&queue_lock);
    if (calls_tail) {
        calls_tail->next = head;
    } else {
        calls_head = head;
    }
    for (calls_tail = head; calls_tail->next; calls_tail = calls_tail->next) {
    }
    pthread_mutex_unlock(&queue_lock);
    curl_multi_wakeup(multi);
}

/* takes every waiting request at once: the batch is whatever queued meanwhile */
static void *writer_main(void *arg)
{
    (void)arg;
    sqlite3_stmt *insert = NULL, *mark = NULL;
    unsigned long long seq = 1;
    if (mode >= M_JOURNAL &&
        (sqlite3_prepare_v2(db, "INSERT INTO events (id, body) VALUES (?1, ?2)", -1, &insert,
                            NULL) != SQLITE_OK ||
         sqlite3_prepare_v2(db, "UPDATE events SET state = 'done' WHERE id = ?1", -1, &mark,
                            NULL) != SQLITE_OK)) {
        fprintf(stderr, "floor: prepare: %s\n", sqlite3_errmsg(db));
        exit(1);
    }
    unsigned long long *done = NULL;
    for (;;) {
        pthread_mutex_lock(&queue_lock);
        while (!queue_head && !done_len && !stopping) {
            pthread_cond_wait(&queue_cond, &queue_lock);
        }
        request *batch = queue_head;
        queue_head = queue_tail = NULL;
        size_t ndone = done_len;
        done = done_seqs; /* taken whole; the caller starts a new array */
        done_seqs = NULL;
        done_len = done_cap = 0;
        int stop = stopping && !batch && !ndone;
        writer_busy = !stop;
        pthread_mutex_unlock(&queue_lock);
        if (stop) {
            break;
        }
        unsigned long long first = seq;
        for (request *r = batch; r; r = r->next) {
            seq++;
        }
        int ok = mode < M_JOURNAL || commit_batch(batch, first, done, ndone, insert, mark) == 0;
        free(done);
        if (ok && mode == M_CALL) {
            hand_over(batch, first);
        }
        for (request *r = batch, *next; r; r = next) {
            next = r->next;
            r->committed = ok ? 1 : -1;
            MHD_resume_connection(r->conn);
        }
        pthread_mutex_lock(&queue_lock);
        writer_busy = 0;
        pthread_mutex_unlock(&queue_lock);
    }
    sqlite3_finalize(insert);
    sqlite3_finalize(mark);
    return NULL;
}

static size_t discard(char *data, size_t size, size_t n, void *ud)
{
    (void)data;
    (void)ud;
    return size * n;
}

static void start_call(call *c, struct curl_slist *headers)
{
    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "floor: curl_easy_init failed\n");
        exit(1);
    }
    curl_easy_setopt(h, CURLOPT_URL, call_url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)c->len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, c);
    curl_multi_add_handle(multi, h);
}

/* call mode: POSTs every handed-over body, 64 at a time, until a 2xx */
static void *caller_main(void *arg)
{
    (void)arg;
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    call *pending = NULL, **pending_tail = &pending;
    int in_flight = 0;
    for (;;) {
        pthread_mutex_lock(&queue_lock);
        if (calls_head) {
            *pending_tail = calls_head;
            pending_tail = &calls_tail->next;
            calls_head = calls_tail = NULL;
        }
        int finished = draining && !pending && !in_flight && !queue_head && !writer_busy;
        pthread_mutex_unlock(&queue_lock);
        if (finished) {
            break;
        }
        while (pending && in_flight < 64) {
            call *c = pending;
            pending = c->next;
            if (!pending) {
                pending_tail = &pending;
            }
            c->next = NULL;
            start_call(c, headers);
            in_flight++;
        }
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            CURL *h = msg->easy_handle;
            call *c = NULL;
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&c);
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            int delivered = msg->data.result == CURLE_OK && status >= 200 && status < 300;
            curl_multi_remove_handle(multi, h);
            curl_easy_cleanup(h);
            in_flight--;
            if (!delivered) {
                *pending_tail = c; /* again, at the back */
                pending_tail = &c->next;
                continue;
            }
            pthread_mutex_lock(&queue_lock);
            if (done_len == done_cap) {
                done_cap = done_cap ? done_cap * 2 : 256;
                unsigned long long *grown = realloc(done_seqs, done_cap * sizeof *grown);
                if (!grown) {
                    fprintf(stderr, "floor: out of memory\n");
                    exit(1);
                }
                done_seqs = grown;
            }
            done_seqs[done_len++] = c->seq;
            pthread_cond_signal(&queue_cond);
            pthread_mutex_unlock(&queue_lock);
            free(c->body);
            free(c);
        }
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    curl_slist_free_all(headers);
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
                     "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, body TEXT,"
                     " state TEXT NOT NULL DEFAULT 'new');",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "floor: %s: %s\n", path, db ? sqlite3_errmsg(db) : "cannot open");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char *names[] = {"idle", "answer", "handoff", "journal", "call"};
    int m = -1;
    for (int i = 0; argc >= 3 && i < 5; i++) {
        if (strcmp(argv[1], names[i]) == 0) {
            m = i;
        }
    }
    long port = argc >= 3 ? strtol(argv[2], NULL, 10) : -1;
    if (m < 0 || port < 0 || port > 65535 || (m >= M_JOURNAL && argc < 4) ||
        (m == M_CALL && argc < 5)) {
        fprintf(stderr, "usage: wirehub-bench-floor idle|answer|handoff|journal|call PORT "
                        "[STATE_FILE [URL]]\n(journal needs STATE_FILE, call also URL)\n");
        return 2;
    }
    call_url = m == M_CALL ? argv[4] : NULL;
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
    pthread_t writer, caller;
    int have_writer = 0, have_caller = 0;
    if (mode != M_IDLE) {
        if (mode >= M_JOURNAL && open_journal(argv[3]) != 0) {
            return 1;
        }
        if (mode == M_CALL) {
            curl_global_init(CURL_GLOBAL_DEFAULT);
            multi = curl_multi_init();
            curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
            if (!multi || pthread_create(&caller, NULL, caller_main, NULL) != 0) {
                fprintf(stderr, "floor: cannot start the caller\n");
                return 1;
            }
            have_caller = 1;
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
    if (have_caller) {
        /* every committed body is delivered before the writer stops */
        pthread_mutex_lock(&queue_lock);
        draining = 1;
        pthread_mutex_unlock(&queue_lock);
        curl_multi_wakeup(multi);
        pthread_join(caller, NULL);
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
    if (mode == M_CALL) {
        sqlite3_stmt *count = NULL;
        if (sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(state = 'done'), 0) FROM events",
                               -1, &count, NULL) == SQLITE_OK &&
            sqlite3_step(count) == SQLITE_ROW) {
            printf("delivered %lld of %lld\n", sqlite3_column_int64(count, 1),
                   sqlite3_column_int64(count, 0));
        }
        sqlite3_finalize(count);
        curl_multi_cleanup(multi);
    }
    sqlite3_close(db);
    return 0;
}
