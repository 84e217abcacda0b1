/*
 * http_client.c — owns the delivery thread and, once the first request
 * arrives, its curl multi handle. Other threads only enqueue (requests, jobs)
 * under a mutex and wake the loop; everything curl does happens on this one
 * thread, so connectors' callbacks never race each other. It knows nothing of
 * retries or rules: it runs exchanges and reports what happened.
 *
 * curl (and with it OpenSSL, which curl's global init sets up: over 2 MiB)
 * is initialised only when a request first needs it: a hub that only
 * receives never pays for it. Until then the loop sleeps on a condition
 * variable; afterwards on curl_multi_poll, woken by curl_multi_wakeup. Jobs
 * (timers) never need curl.
 */
#include "http_client.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct xfer {
    struct xfer *next;
    struct xfer *anext, *aprev; /* the active list: transfers inside curl */
    CURL *easy;
    struct curl_slist *headers;
    wh_buf body;
    size_t cap;
    int overflow;
    json_t *resp_headers;
    wh_http_done done;
    void *user;
    char errbuf[CURL_ERROR_SIZE];
    /* queued request, before it reaches curl */
    char *method, *url;
    char **hdrs;
    char *req_body;
    size_t req_len;
    long timeout_ms;
    int insecure_tls;
} xfer;

typedef struct job {
    struct job *next;
    int64_t due;
    void (*fn)(void *);
    void *user;
} job;

struct wh_http {
    wh_http_opts opts;
    CURLM *multi;   /* NULL until the first request; set under lock by the loop */
    int curl_ref;   /* this object holds a curl global init (see curl_acquire) */
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* wakes the loop while it has no multi handle */
    xfer *queue;    /* submitted, not yet added to curl */
    job *jobs;      /* sorted by due time */
    int stopping;
    int running;    /* transfers inside curl */
    xfer *active;
};

/*
 * curl's global state is shared by every wh_http in the process: the first to
 * need it initialises it, the last to go cleans it up. The mutex serialises
 * both (curl_global_init is thread-safe only when curl was built so), and the
 * count lets a process stop and start hubs (tests do) without using curl
 * after its cleanup.
 */
static pthread_mutex_t curl_global_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned curl_global_users;

static int curl_acquire(void)
{
    int rc = 0;
    pthread_mutex_lock(&curl_global_lock);
    if (curl_global_users == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = -1;
    } else {
        curl_global_users++;
    }
    pthread_mutex_unlock(&curl_global_lock);
    return rc;
}

static void curl_release(void)
{
    pthread_mutex_lock(&curl_global_lock);
    if (curl_global_users > 0 && --curl_global_users == 0) {
        curl_global_cleanup();
    }
    pthread_mutex_unlock(&curl_global_lock);
}

/* Wake the loop after queueing work or stopping. Caller holds h->lock; returns the multi to
 * wake with curl_multi_wakeup() after unlocking (NULL: the condition variable was signalled). */
static CURLM *wake_locked(wh_http *h)
{
    if (!h->multi) {
        pthread_cond_signal(&h->cond);
    }
    return h->multi;
}

/* On the loop thread: curl's global init and the multi handle, once. */
static int ensure_curl(wh_http *h)
{
    if (h->multi) {
        return 0;
    }
    if (!h->curl_ref) {
        if (curl_acquire() != 0) {
            wh_error("delivery", "curl_global_init failed");
            return -1;
        }
        h->curl_ref = 1;
    }
    CURLM *m = curl_multi_init();
    if (!m) {
        wh_error("delivery", "curl_multi_init failed");
        return -1;
    }
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    pthread_mutex_lock(&h->lock);
    h->multi = m;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static void xfer_free(xfer *x)
{
    if (!x) {
        return;
    }
    if (x->easy) {
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->headers);
    wh_buf_free(&x->body);
    json_decref(x->resp_headers);
    free(x->method);
    free(x->url);
    for (size_t i = 0; x->hdrs && x->hdrs[i]; i++) {
        free(x->hdrs[i]);
    }
    free(x->hdrs);
    free(x->req_body);
    free(x);
}

static void finish(xfer *x, int status, const char *error, int timed_out)
{
    wh_http_response r = {0};
    r.status = status;
    r.error = error;
    r.timed_out = timed_out;
    r.too_large = status == 0 && x->overflow;
    r.body = x->body.data ? x->body.data : "";
    r.body_len = x->body.len;
    r.headers = x->resp_headers;
    x->done(x->user, &r);
    xfer_free(x);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (x->body.len + len > x->cap) {
        x->overflow = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return wh_buf_append(&x->body, data, len) == WH_OK ? len : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        json_object_clear(x->resp_headers); /* a new response (after 100 Continue) */
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon || colon == data || json_object_size(x->resp_headers) > 200) {
        return len;
    }
    char name[128];
    size_t nl = (size_t)(colon - data);
    if (nl >= sizeof name) {
        return len;
    }
    for (size_t i = 0; i < nl; i++) {
        name[i] = (char)tolower((unsigned char)data[i]);
    }
    name[nl] = '\0';
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
        end--;
    }
    json_t *val = json_stringn_nocheck(v, (size_t)(end - v));
    if (val) {
        json_object_set_new(x->resp_headers, name, val);
    }
    return len;
}

static int start_xfer(wh_http *h, xfer *x)
{
    x->easy = curl_easy_init();
    if (!x->easy) {
        return -1;
    }
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, x->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, x->timeout_ms < 10000 ? x->timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "wirehub/" WH_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    if (x->insecure_tls) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    for (size_t i = 0; x->hdrs && x->hdrs[i]; i++) {
        struct curl_slist *n = curl_slist_append(x->headers, x->hdrs[i]);
        if (!n) {
            return -1;
        }
        x->headers = n;
    }
    /* curl adds "Expect: 100-continue" to large bodies; APIs rarely want it */
    struct curl_slist *n = curl_slist_append(x->headers, "Expect:");
    if (n) {
        x->headers = n;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    if (strcmp(x->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(x->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->req_body ? x->req_body : "");
        if (strcmp(x->method, "POST") != 0) {
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
        }
    }
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        return -1;
    }
    h->running++;
    x->anext = h->active;
    if (h->active) {
        h->active->aprev = x;
    }
    h->active = x;
    return 0;
}

static void unlink_active(wh_http *h, xfer *x)
{
    if (x->aprev) {
        x->aprev->anext = x->anext;
    } else {
        h->active = x->anext;
    }
    if (x->anext) {
        x->anext->aprev = x->aprev;
    }
    x->anext = x->aprev = NULL;
}

static void drain_done(wh_http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        xfer *x = NULL;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(h->multi, e);
        h->running--;
        unlink_active(h, x);
        if (rc == CURLE_OK) {
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            finish(x, (int)status, NULL, 0);
        } else if (x->overflow) {
            char why[96];
            snprintf(why, sizeof why, "response larger than the %zu-byte limit", x->cap);
            finish(x, 0, why, 0);
        } else {
            char why[CURL_ERROR_SIZE + 64];
            snprintf(why, sizeof why, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
            finish(x, 0, why, rc == CURLE_OPERATION_TIMEDOUT);
        }
    }
}

/* Take what other threads queued; run due jobs. Returns ms until the next job (or 1000). */
static long take_queued(wh_http *h)
{
    pthread_mutex_lock(&h->lock);
    xfer *q = h->queue;
    h->queue = NULL;
    int64_t now = wh_mono_ms();
    job *due = NULL, **tail = &due;
    while (h->jobs && (h->jobs->due <= now || h->stopping)) {
        job *j = h->jobs;
        h->jobs = j->next;
        j->next = NULL;
        *tail = j;
        tail = &j->next;
    }
    long wait = 1000;
    if (h->jobs) {
        int64_t d = h->jobs->due - now;
        wait = d < wait ? (long)d : wait;
    }
    pthread_mutex_unlock(&h->lock);
    /* submitted requests keep their order */
    xfer *rev = NULL;
    while (q) {
        xfer *n = q->next;
        q->next = rev;
        rev = q;
        q = n;
    }
    while (rev) {
        xfer *x = rev;
        rev = rev->next;
        if (h->stopping) {
            finish(x, 0, "wirehub is stopping", 0);
        } else if (ensure_curl(h) != 0) {
            finish(x, 0, "cannot start the transfer: curl could not be initialised", 0);
        } else if (start_xfer(h, x) != 0) {
            finish(x, 0, "cannot start the transfer", 0);
        }
    }
    while (due) {
        job *j = due;
        due = due->next;
        j->fn(j->user);
        free(j);
    }
    return wait < 0 ? 0 : wait;
}

static __thread const wh_http *current_loop;

/* True when the loop has something to do now. Caller holds h->lock. */
static int work_ready_locked(const wh_http *h, int64_t now)
{
    return h->queue || h->stopping || (h->jobs && h->jobs->due <= now);
}

/*
 * Before curl exists: sleep until a request, a job, stop, or the next job's
 * due time. Wakers signal under the same lock, so no wakeup is lost.
 */
static void sleep_without_curl(wh_http *h)
{
    pthread_mutex_lock(&h->lock);
    for (;;) {
        int64_t now = wh_mono_ms();
        if (h->multi || work_ready_locked(h, now)) {
            break;
        }
        if (!h->jobs) {
            pthread_cond_wait(&h->cond, &h->lock);
            continue;
        }
        int64_t due = h->jobs->due;
        struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000L};
        int rc = pthread_cond_timedwait(&h->cond, &h->lock, &ts);
        if (rc != 0 && rc != ETIMEDOUT) {
            break; /* never spin on an unexpected error: take_queued re-checks */
        }
    }
    pthread_mutex_unlock(&h->lock);
}

static void *loop_main(void *arg)
{
    wh_http *h = arg;
    current_loop = h;
    for (;;) {
        long wait = take_queued(h);
        if (h->multi) {
            int still;
            curl_multi_perform(h->multi, &still);
            drain_done(h);
        }
        pthread_mutex_lock(&h->lock);
        int stop = h->stopping && !h->queue && !h->jobs;
        /* work queued after take_queued (e.g. while curl was being set up) runs first */
        int busy = work_ready_locked(h, wh_mono_ms());
        pthread_mutex_unlock(&h->lock);
        if (stop) {
            break;
        }
        if (busy) {
            continue;
        }
        if (h->multi) {
            curl_multi_poll(h->multi, NULL, 0, (int)wait, NULL);
        } else {
            sleep_without_curl(h);
        }
    }
    /* abort what is still in flight; callbacks still run once each */
    while (h->active) {
        xfer *x = h->active;
        unlink_active(h, x);
        curl_multi_remove_handle(h->multi, x->easy);
        h->running--;
        finish(x, 0, "wirehub is stopping", 0);
    }
    /* jobs and requests queued by those callbacks run (or fail) too */
    for (int round = 0; round < 100; round++) {
        pthread_mutex_lock(&h->lock);
        int more = h->queue || h->jobs;
        pthread_mutex_unlock(&h->lock);
        if (!more) {
            break;
        }
        take_queued(h);
    }
    return NULL;
}

wh_http *wh_http_new(const wh_http_opts *opts, char *err, size_t errsize)
{
    wh_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    if (opts) {
        h->opts = *opts;
    }
    if (h->opts.default_timeout_ms <= 0) {
        h->opts.default_timeout_ms = 30000;
    }
    if (h->opts.default_max_response == 0) {
        h->opts.default_max_response = 8u << 20;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* job due times are wh_mono_ms() */
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    /* no curl yet: the first request initialises it on the loop thread (ensure_curl) */
    if (pthread_create(&h->thread, NULL, loop_main, h) != 0) {
        snprintf(err, errsize, "cannot start the delivery thread");
        goto fail;
    }
    h->started = 1;
    return h;
fail:
    wh_http_destroy(&h);
    return NULL;
}

void wh_http_destroy(wh_http **ph)
{
    wh_http *h = ph ? *ph : NULL;
    if (!h) {
        return;
    }
    if (h->started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = 1;
        CURLM *m = wake_locked(h);
        pthread_mutex_unlock(&h->lock);
        if (m) {
            curl_multi_wakeup(m);
        }
        pthread_join(h->thread, NULL);
    }
    if (h->multi) {
        curl_multi_cleanup(h->multi);
    }
    if (h->curl_ref) {
        curl_release(); /* only when this object ever initialised curl */
    }
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
    *ph = NULL;
}

int wh_http_submit(wh_http *h, const wh_http_request *req, wh_http_done done, void *user)
{
    return wh_http_submit_ex(h, req, 0, done, user);
}

int wh_http_submit_ex(wh_http *h, const wh_http_request *req, int insecure_tls, wh_http_done done,
                      void *user)
{
    if (!req || !req->url || !done) {
        return WH_ERR_INVALID;
    }
    xfer *x = calloc(1, sizeof *x);
    if (!x) {
        return WH_ERR_NOMEM;
    }
    x->done = done;
    x->user = user;
    x->insecure_tls = insecure_tls;
    x->method = strdup(req->method ? req->method : "GET");
    x->url = strdup(req->url);
    x->resp_headers = json_object();
    x->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : h->opts.default_timeout_ms;
    x->cap = req->max_response ? req->max_response : h->opts.default_max_response;
    size_t nh = 0;
    while (req->headers && req->headers[nh]) {
        nh++;
    }
    x->hdrs = calloc(nh + 1, sizeof *x->hdrs);
    int bad = !x->method || !x->url || !x->resp_headers || !x->hdrs;
    for (size_t i = 0; !bad && i < nh; i++) {
        bad = !(x->hdrs[i] = strdup(req->headers[i]));
        /* "Name:" with nothing after it: libcurl would drop the header; "Name;" is how it
           sends one with an empty value, which is what "Name: " says */
        char *colon = bad ? NULL : strchr(x->hdrs[i], ':');
        if (colon && colon > x->hdrs[i] && strspn(colon + 1, " \t") == strlen(colon + 1)) {
            colon[0] = ';';
            colon[1] = '\0';
        }
    }
    if (!bad && req->body_len) {
        x->req_body = malloc(req->body_len);
        bad = !x->req_body;
        if (!bad) {
            memcpy(x->req_body, req->body, req->body_len);
            x->req_len = req->body_len;
        }
    }
    if (bad) {
        xfer_free(x);
        return WH_ERR_NOMEM;
    }
    pthread_mutex_lock(&h->lock);
    if (h->stopping) {
        pthread_mutex_unlock(&h->lock);
        xfer_free(x);
        return WH_ERR_STATE;
    }
    x->next = h->queue;
    h->queue = x;
    CURLM *m = wake_locked(h);
    pthread_mutex_unlock(&h->lock);
    if (m) {
        curl_multi_wakeup(m);
    }
    return WH_OK;
}

int wh_http_post(wh_http *h, int64_t delay_ms, void (*fn)(void *), void *user)
{
    job *j = calloc(1, sizeof *j);
    if (!j) {
        return WH_ERR_NOMEM;
    }
    j->fn = fn;
    j->user = user;
    j->due = wh_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
    pthread_mutex_lock(&h->lock);
    if (h->stopping && !wh_http_on_thread(h)) {
        pthread_mutex_unlock(&h->lock);
        free(j);
        return WH_ERR_STATE;
    }
    job **pp = &h->jobs;
    while (*pp && (*pp)->due <= j->due) {
        pp = &(*pp)->next;
    }
    j->next = *pp;
    *pp = j;
    CURLM *m = wake_locked(h);
    pthread_mutex_unlock(&h->lock);
    if (m) {
        curl_multi_wakeup(m);
    }
    return WH_OK;
}

int wh_http_on_thread(const wh_http *h)
{
    return current_loop == h;
}
