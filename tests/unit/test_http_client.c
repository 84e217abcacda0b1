/*
 * test_http_client.c — the delivery loop initialises curl lazily: jobs run
 * without it, the first request sets it up once, destroy releases it only
 * when it was set up, and the idle loop sleeps. Linked with
 * -Wl,--wrap=curl_global_init,--wrap=curl_global_cleanup to count calls.
 */
#include "http_client.h"
#include "testlib.h"
#include "util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static atomic_int n_init, n_cleanup;

CURLcode __real_curl_global_init(long flags);
void __real_curl_global_cleanup(void);

CURLcode __wrap_curl_global_init(long flags)
{
    n_init++;
    return __real_curl_global_init(flags);
}

void __wrap_curl_global_cleanup(void)
{
    n_cleanup++;
    __real_curl_global_cleanup();
}

/* a one-shot wait for callbacks from the loop thread */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int fired;
static int64_t fired_at;
static void *first_user; /* which job ran first */
static int on_thread;
static int last_status;
static char last_error[256];

static void reset(void)
{
    pthread_mutex_lock(&mu);
    fired = 0;
    last_status = -1;
    last_error[0] = '\0';
    pthread_mutex_unlock(&mu);
}

/* Wait (at most 10 s: a test must not hang) until `want` callbacks ran. */
static int wait_fired(int want)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&mu);
    while (fired < want) {
        if (pthread_cond_timedwait(&cv, &mu, &until) != 0) {
            break;
        }
    }
    int n = fired;
    pthread_mutex_unlock(&mu);
    CHECK_INT(n, want);
    return n;
}

static wh_http *g_http;

static void job_fn(void *user)
{
    pthread_mutex_lock(&mu);
    if (fired == 0) {
        first_user = user;
    }
    fired++;
    fired_at = wh_mono_ms();
    on_thread = wh_http_on_thread(g_http);
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static void done_fn(void *user, const wh_http_response *r)
{
    (void)user;
    pthread_mutex_lock(&mu);
    fired++;
    last_status = r->status;
    snprintf(last_error, sizeof last_error, "%s", r->error ? r->error : "");
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

/* a server that answers every connection with one fixed response */
static int srv_fd;
static void *server(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(srv_fd, NULL, NULL);
        if (c < 0) {
            return NULL;
        }
        char buf[4096];
        ssize_t n = read(c, buf, sizeof buf);
        (void)n;
        static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        ssize_t w = write(c, resp, sizeof resp - 1);
        (void)w;
        close(c);
    }
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 +
           ru.ru_stime.tv_usec / 1e3;
}

int main(void)
{
    char err[256];
    srv_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    CHECK(bind(srv_fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(listen(srv_fd, 16) == 0);
    getsockname(srv_fd, (struct sockaddr *)&sa, &sl);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
    pthread_t st;
    pthread_create(&st, NULL, server, NULL);

    /* 1. created and destroyed without a request: curl never touched */
    wh_http *h = wh_http_new(NULL, err, sizeof err);
    CHECK(h != NULL);
    wh_http_destroy(&h);
    CHECK(h == NULL);
    wh_http_destroy(&h); /* NULL is fine */
    CHECK_INT(n_init, 0);
    CHECK_INT(n_cleanup, 0);

    /* 2. jobs run on the loop thread, on time, without curl; idle costs no CPU */
    g_http = h = wh_http_new(NULL, err, sizeof err);
    reset();
    int64_t t0 = wh_mono_ms();
    CHECK_INT(wh_http_post(h, 0, job_fn, NULL), WH_OK);
    wait_fired(1);
    CHECK(on_thread);
    reset();
    t0 = wh_mono_ms();
    static int late, early;
    CHECK_INT(wh_http_post(h, 300, job_fn, &late), WH_OK);
    CHECK_INT(wh_http_post(h, 100, job_fn, &early), WH_OK); /* earlier one posted later */
    wait_fired(1);
    CHECK(fired_at - t0 >= 100);
    wait_fired(2);
    CHECK(first_user == &early); /* timers run in due order, not posting order */
    CHECK(fired_at - t0 >= 300);
    double c0 = cpu_ms();
    usleep(500 * 1000);
    double idle = cpu_ms() - c0;
    CHECK(idle < 20.0); /* the loop sleeps: no polling */
    CHECK_INT(n_init, 0);

    /* 3. the first request initialises curl once; later ones do not */
    wh_http_request req = {.method = "GET", .url = url};
    reset();
    CHECK_INT(wh_http_submit(h, &req, done_fn, NULL), WH_OK);
    wait_fired(1);
    CHECK_INT(last_status, 200);
    CHECK_INT(n_init, 1);
    reset();
    CHECK_INT(wh_http_submit(h, &req, done_fn, NULL), WH_OK);
    CHECK_INT(wh_http_post(h, 50, job_fn, NULL), WH_OK);
    wait_fired(2);
    CHECK_INT(n_init, 1);
    c0 = cpu_ms();
    usleep(500 * 1000);
    idle = cpu_ms() - c0;
    CHECK(idle < 20.0);

    /* 4. a second hub shares curl: cleanup only when the last one goes */
    wh_http *h2 = wh_http_new(NULL, err, sizeof err);
    reset();
    CHECK_INT(wh_http_submit(h2, &req, done_fn, NULL), WH_OK);
    wait_fired(1);
    CHECK_INT(last_status, 200);
    CHECK_INT(n_init, 1);
    wh_http_destroy(&h);
    CHECK_INT(n_cleanup, 0);
    wh_http_destroy(&h2);
    CHECK_INT(n_cleanup, 1);

    /* 5. after cleanup, a new hub initialises again */
    g_http = h = wh_http_new(NULL, err, sizeof err);
    reset();
    CHECK_INT(wh_http_submit(h, &req, done_fn, NULL), WH_OK);
    wait_fired(1);
    CHECK_INT(last_status, 200);
    CHECK_INT(n_init, 2);
    wh_http_destroy(&h);
    CHECK_INT(n_cleanup, 2);

    /* 6. stop at once after a submit and a far job: each callback runs exactly once */
    g_http = h = wh_http_new(NULL, err, sizeof err);
    reset();
    CHECK_INT(wh_http_post(h, 60000, job_fn, NULL), WH_OK);
    CHECK_INT(wh_http_submit(h, &req, done_fn, NULL), WH_OK);
    wh_http_destroy(&h);
    CHECK_INT(fired, 2);
    CHECK_INT(n_init, n_cleanup);

    shutdown(srv_fd, SHUT_RDWR);
    close(srv_fd);
    pthread_join(st, NULL);
    return wh_test_done("http_client");
}
