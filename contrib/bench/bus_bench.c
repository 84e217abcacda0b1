/*
 * bus_bench.c — wirehub-bench-bus: message throughput of the wirehub bus
 * (wh_pub → broker proxy thread → wh_sub) against a bare libzmq PUB→SUB
 * inproc pair in the same process.
 *
 * It owns the two timed loops. Each sends N messages of two frames (a topic and
 * a 200-byte JSON envelope text) from the main thread to a receiver thread that
 * counts them. ZeroMQ PUB drops at its high-water mark, so the sender keeps at
 * most WINDOW messages in flight (sent minus counted; WINDOW is below every
 * HWM on the path): nothing may be lost, and a run that loses or corrupts a
 * message exits 1 without reporting a rate. It prints both rates, the ratio
 * and one BENCH_RESULT line.
 *
 * It must not touch the network, files, the store or any connector. Not a test,
 * not installed. Usage: wirehub-bench-bus [N [WINDOW]]  (1000000, 20000)
 */
#include "bus.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define TOPIC "in/bench/msg"
#define ENV_LEN 200
#define RECV_TIMEOUT_MS 5000
#define BARE_HWM 100000 /* the same as the bus's own sockets */

typedef struct run {
    uint64_t n;
    wh_sub *sub;  /* the bus run */
    void *zsub;   /* the bare run */
    char env[ENV_LEN + 1];
    atomic_uint_fast64_t received;
    atomic_uint_fast64_t bad; /* wrong size, topic or content */
    atomic_int failed;        /* receive error or timeout */
} run;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A 200-byte envelope-like JSON object (padded with a `pad` string). */
static void make_envelope(char *out)
{
    const char *head = "{\"id\":\"01J9ZQ3V7K2M4N6P8R0S2T4V6X\",\"topic\":\"in/bench/msg\","
                       "\"instance\":\"bench\",\"kind\":\"msg\",\"ts\":\"2026-01-01T00:00:00Z\","
                       "\"data\":{\"n\":1,\"text\":\"hello\"},\"pad\":\"";
    size_t hl = strlen(head);
    memcpy(out, head, hl);
    memset(out + hl, 'x', ENV_LEN - hl - 2);
    memcpy(out + ENV_LEN - 2, "\"}", 3);
}

static void *recv_bus(void *arg)
{
    run *r = arg;
    for (uint64_t i = 0; i < r->n; i++) {
        char *topic = NULL, *raw = NULL;
        size_t len = 0;
        int rc = wh_sub_recv_raw(r->sub, RECV_TIMEOUT_MS, &topic, &raw, &len);
        if (rc != 1) {
            r->failed = 1;
            free(topic);
            free(raw);
            break;
        }
        if (len != ENV_LEN || strcmp(topic, TOPIC) != 0 || memcmp(raw, r->env, len) != 0) {
            atomic_fetch_add(&r->bad, 1);
        }
        free(topic);
        free(raw);
        atomic_fetch_add_explicit(&r->received, 1, memory_order_release);
    }
    return NULL;
}

static void *recv_bare(void *arg)
{
    run *r = arg;
    int timeout = RECV_TIMEOUT_MS;
    zmq_setsockopt(r->zsub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char topic[64];
    char buf[ENV_LEN + 16];
    for (uint64_t i = 0; i < r->n; i++) {
        int tl = zmq_recv(r->zsub, topic, sizeof topic, 0);
        int more = 0;
        size_t ml = sizeof more;
        zmq_getsockopt(r->zsub, ZMQ_RCVMORE, &more, &ml);
        if (tl == 5 && !more && memcmp(topic, "probe", 5) == 0) {
            i--; /* a late probe from bare_setup: not one of ours */
            continue;
        }
        if (tl < 0 || !more) {
            r->failed = 1;
            break;
        }
        int bl = zmq_recv(r->zsub, buf, sizeof buf, 0);
        if (bl < 0) {
            r->failed = 1;
            break;
        }
        if (bl != ENV_LEN || (size_t)tl != strlen(TOPIC) || memcmp(topic, TOPIC, (size_t)tl) ||
            memcmp(buf, r->env, ENV_LEN) != 0) {
            atomic_fetch_add(&r->bad, 1);
        }
        atomic_fetch_add_explicit(&r->received, 1, memory_order_release);
    }
    return NULL;
}

/* Wait until fewer than `window` messages are in flight, or the receiver stopped. */
static void throttle(run *r, uint64_t sent, uint64_t window)
{
    while (sent - atomic_load_explicit(&r->received, memory_order_acquire) >= window &&
           !r->failed) {
        sched_yield();
    }
}

/* Bare PUB→SUB: bind, connect, then probe until the subscription has arrived. */
static int bare_setup(void *ctx, void **pub, void **sub)
{
    int hwm = BARE_HWM, zero = 0;
    *pub = zmq_socket(ctx, ZMQ_PUB);
    *sub = zmq_socket(ctx, ZMQ_SUB);
    if (!*pub || !*sub) {
        return -1;
    }
    void *socks[2] = {*pub, *sub};
    for (int i = 0; i < 2; i++) {
        zmq_setsockopt(socks[i], ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(socks[i], ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
    }
    zmq_setsockopt(*sub, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_bind(*pub, "inproc://bench-bare") != 0 ||
        zmq_connect(*sub, "inproc://bench-bare") != 0) {
        return -1;
    }
    /* Probe with a one-frame "probe" message until one arrives (≤ 5 s), then drain. */
    for (int i = 0; i < 5000; i++) {
        zmq_send(*pub, "probe", 5, 0);
        zmq_pollitem_t it = {*sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 1) == 1) {
            char b[16];
            while (zmq_recv(*sub, b, sizeof b, ZMQ_DONTWAIT) >= 0) {
            }
            return 0;
        }
    }
    return -1;
}

/* Send r->n messages through `send`, timed until the receiver has counted them all. */
static double timed_run(run *r, void *(*receiver)(void *), wh_pub *pub, void *zpub,
                        uint64_t window)
{
    pthread_t th;
    atomic_store(&r->received, 0);
    atomic_store(&r->bad, 0);
    r->failed = 0;
    double t0 = now_s();
    if (pthread_create(&th, NULL, receiver, r) != 0) {
        return -1;
    }
    size_t tl = strlen(TOPIC);
    for (uint64_t i = 0; i < r->n && !r->failed; i++) {
        throttle(r, i, window);
        int rc;
        if (pub) {
            rc = wh_pub_send_raw(pub, TOPIC, r->env, ENV_LEN);
        } else {
            rc = (zmq_send(zpub, TOPIC, tl, ZMQ_SNDMORE) < 0 ||
                  zmq_send(zpub, r->env, ENV_LEN, 0) < 0)
                     ? -1
                     : 0;
        }
        if (rc != 0) {
            fprintf(stderr, "bus-bench: send failed: %s\n", zmq_strerror(zmq_errno()));
            r->failed = 1;
        }
    }
    pthread_join(th, NULL);
    double dt = now_s() - t0;
    uint64_t got = atomic_load(&r->received), bad = atomic_load(&r->bad);
    if (r->failed || got != r->n || bad != 0) {
        fprintf(stderr, "bus-bench: received %llu of %llu (%llu corrupt)%s\n",
                (unsigned long long)got, (unsigned long long)r->n, (unsigned long long)bad,
                r->failed ? ", receiver timed out or failed" : "");
        return -1;
    }
    return dt;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end || s[0] == '-' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t n = 1000000, window = 20000;
    if (argc > 3 || (argc > 1 && parse_u64(argv[1], 1, 1000000000ull, &n) != 0) ||
        (argc > 2 && parse_u64(argv[2], 1, BARE_HWM / 2, &window) != 0)) {
        fprintf(stderr, "usage: wirehub-bench-bus [N (1..1e9, default 1000000) "
                        "[WINDOW (1..%d, default 20000)]]\n",
                BARE_HWM / 2);
        return 2;
    }
    static run r;
    r.n = n;
    make_envelope(r.env);

    /* 1. through the wirehub bus */
    char err[256] = "";
    wh_bus *bus = wh_bus_new(NULL, err, sizeof err);
    if (!bus) {
        fprintf(stderr, "bus-bench: wh_bus_new: %s\n", err);
        return 1;
    }
    const char *const prefixes[] = {"in/bench/", NULL};
    wh_sub *sub = wh_sub_new(wh_bus_zctx(bus), wh_bus_inproc(bus), prefixes, 5000);
    wh_pub *pub = sub ? wh_pub_new(wh_bus_zctx(bus), wh_bus_inproc(bus), 5000) : NULL;
    if (!sub || !pub) {
        fprintf(stderr, "bus-bench: cannot connect to the bus\n");
        wh_pub_destroy(&pub);
        wh_sub_destroy(&sub);
        wh_bus_destroy(&bus);
        return 1;
    }
    r.sub = sub;
    double t_bus = timed_run(&r, recv_bus, pub, NULL, window);
    wh_pub_destroy(&pub);
    wh_sub_destroy(&sub);
    wh_bus_destroy(&bus);
    if (t_bus < 0) {
        return 1;
    }

    /* 2. bare libzmq PUB → SUB over inproc, no proxy */
    void *ctx = zmq_ctx_new();
    void *zpub = NULL, *zsub = NULL;
    if (!ctx || bare_setup(ctx, &zpub, &zsub) != 0) {
        fprintf(stderr, "bus-bench: bare PUB/SUB setup failed: %s\n",
                zmq_strerror(zmq_errno()));
        if (zpub) {
            zmq_close(zpub);
        }
        if (zsub) {
            zmq_close(zsub);
        }
        if (ctx) {
            zmq_ctx_term(ctx);
        }
        return 1;
    }
    r.zsub = zsub;
    double t_bare = timed_run(&r, recv_bare, NULL, zpub, window);
    zmq_close(zpub);
    zmq_close(zsub);
    zmq_ctx_term(ctx);
    if (t_bare < 0) {
        return 1;
    }

    double bus_rate = (double)n / t_bus, bare_rate = (double)n / t_bare;
    int maj, min, pat;
    zmq_version(&maj, &min, &pat);
    printf("messages: %llu of %d bytes (+ topic \"%s\"), in-flight window %llu, "
           "libzmq %d.%d.%d, none lost\n",
           (unsigned long long)n, ENV_LEN, TOPIC, (unsigned long long)window, maj, min, pat);
    printf("wirehub bus (wh_pub -> proxy -> wh_sub): %10.0f msg/s  (%.3f s)\n", bus_rate, t_bus);
    printf("bare libzmq PUB -> SUB inproc:           %10.0f msg/s  (%.3f s)\n", bare_rate,
           t_bare);
    printf("ratio bus/bare: %.3f\n", bus_rate / bare_rate);
    printf("BENCH_RESULT messages=%llu bytes=%d window=%llu bus_msgs_per_s=%.0f "
           "bare_msgs_per_s=%.0f ratio=%.3f lost=0\n",
           (unsigned long long)n, ENV_LEN, (unsigned long long)window, bus_rate, bare_rate,
           bus_rate / bare_rate);
    return 0;
}
