/*
 * bus.c — owns the broker thread and the PUB/SUB sockets handed to parts.
 * It knows nothing of envelopes' meaning or of any part. Sockets are not
 * thread-safe: a wh_pub serialises its senders with a mutex; a wh_sub belongs
 * to one thread. Every socket has linger 0 so shutdown never blocks on peers.
 */
#include "bus.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#define HWM 100000
/* Other processes' pipes (tail, send, other nodes): a subscriber stopped with
 * Ctrl-Z must not make the hub hold 100,000 messages for it. */
#define EXTERNAL_HWM 10000
#define MAX_FRAME (16u << 20)

struct wh_bus {
    void *zctx;
    void *xsub, *xpub, *ctl_server, *ctl_client;
    pthread_t thread;
    int started;
    wh_bus_ends inproc;
    json_t *ipc_files; /* ipc:// paths bound here: removed when the bus goes */
};

struct wh_pub {
    void *sock;
    pthread_mutex_t lock;
};

struct wh_sub {
    void *sock;
};

static void set_common(void *sock)
{
    int zero = 0, hwm = HWM, one = 1;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    /* tcp://[::1]:port binds and connects only with IPv6 on (IPv4 still works) */
    zmq_setsockopt(sock, ZMQ_IPV6, &one, sizeof one);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
}

int wh_bus_ends_for(const char *endpoint, wh_bus_ends *ends, char *err, size_t errsize)
{
    if (!endpoint || strlen(endpoint) + 4 >= WH_EP_MAX) {
        snprintf(err, errsize, "endpoint missing or too long");
        return -1;
    }
    snprintf(ends->sub, sizeof ends->sub, "%s", endpoint);
    if (strncmp(endpoint, "ipc://", 6) == 0) {
        if (strlen(endpoint + 6) + 3 > 107) {
            snprintf(err, errsize, "ipc path longer than 104 characters: %s", endpoint);
            return -1;
        }
        snprintf(ends->pub, sizeof ends->pub, "%s.in", endpoint);
        return 0;
    }
    if (strncmp(endpoint, "tcp://", 6) == 0) {
        const char *colon = strrchr(endpoint + 6, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || !end || *end || port < 1 || port > 65534) {
            snprintf(err, errsize,
                     "tcp endpoint needs an explicit port below 65535 (the next port is the "
                     "publishers' side): %s",
                     endpoint);
            return -1;
        }
        snprintf(ends->pub, sizeof ends->pub, "%.*s:%ld", (int)(colon - endpoint), endpoint,
                 port + 1);
        return 0;
    }
    snprintf(err, errsize, "endpoint must start with ipc:// or tcp://: %s", endpoint);
    return -1;
}

int wh_bus_ends_to_reach(const char *endpoint, wh_bus_ends *ends, char *err, size_t errsize)
{
    static const struct {
        const char *any, *loop;
    } wild[] = {{"tcp://*:", "tcp://127.0.0.1:"},
                {"tcp://0.0.0.0:", "tcp://127.0.0.1:"},
                {"tcp://[::]:", "tcp://[::1]:"}};
    char ep[WH_EP_MAX];
    snprintf(ep, sizeof ep, "%s", endpoint ? endpoint : "");
    for (size_t i = 0; endpoint && i < sizeof wild / sizeof wild[0]; i++) {
        size_t n = strlen(wild[i].any);
        if (strncmp(endpoint, wild[i].any, n) == 0) {
            snprintf(ep, sizeof ep, "%s%s", wild[i].loop, endpoint + n);
        }
    }
    return wh_bus_ends_for(endpoint ? ep : NULL, ends, err, errsize);
}

/* Whether a process listens on the unix socket at path (a hub's bus). */
static int ipc_in_use(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        return 0;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    int live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return live;
}

static void *broker_main(void *arg)
{
    wh_bus *bus = arg;
    zmq_proxy_steerable(bus->xsub, bus->xpub, NULL, bus->ctl_server);
    return NULL;
}

static int bind_ep(void *sock, const char *ep, char *err, size_t errsize)
{
    if (strncmp(ep, "ipc://", 6) == 0 && ipc_in_use(ep + 6)) {
        snprintf(err, errsize,
                 "cannot bind %s: another process (another hub?) listens on it; give this "
                 "hub its own bus.bind",
                 ep);
        return -1;
    }
    if (zmq_bind(sock, ep) != 0) {
        snprintf(err, errsize, "cannot bind %s: %s", ep, zmq_strerror(zmq_errno()));
        return -1;
    }
    if (strncmp(ep, "ipc://", 6) == 0 && chmod(ep + 6, 0600) != 0) {
        snprintf(err, errsize, "cannot restrict %s to its owner: %s", ep, strerror(errno));
        return -1;
    }
    return 0;
}

wh_bus *wh_bus_new(const json_t *binds, char *err, size_t errsize)
{
    wh_bus *bus = calloc(1, sizeof *bus);
    if (!bus) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    bus->ipc_files = json_array();
    bus->zctx = zmq_ctx_new();
    if (!bus->zctx) {
        snprintf(err, errsize, "zmq_ctx_new failed");
        goto fail;
    }
    /* inproc names are per context, so several hubs in one process do not clash */
    snprintf(bus->inproc.pub, WH_EP_MAX, "inproc://wirehub-pub");
    snprintf(bus->inproc.sub, WH_EP_MAX, "inproc://wirehub-sub");
    bus->xsub = zmq_socket(bus->zctx, ZMQ_XSUB);
    bus->xpub = zmq_socket(bus->zctx, ZMQ_XPUB);
    bus->ctl_server = zmq_socket(bus->zctx, ZMQ_PAIR);
    bus->ctl_client = zmq_socket(bus->zctx, ZMQ_PAIR);
    if (!bus->xsub || !bus->xpub || !bus->ctl_server || !bus->ctl_client) {
        snprintf(err, errsize, "zmq_socket failed: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    set_common(bus->xsub);
    set_common(bus->xpub);
    set_common(bus->ctl_server);
    set_common(bus->ctl_client);
    if (bind_ep(bus->xsub, bus->inproc.pub, err, errsize) ||
        bind_ep(bus->xpub, bus->inproc.sub, err, errsize) ||
        bind_ep(bus->ctl_server, "inproc://wirehub-ctl", err, errsize)) {
        goto fail;
    }
    if (zmq_connect(bus->ctl_client, "inproc://wirehub-ctl") != 0) {
        snprintf(err, errsize, "control socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    /* From here on the binds face other processes: options are taken per endpoint
     * at bind time, so the inproc pipes above keep theirs. */
    int ext_hwm = EXTERNAL_HWM;
    int64_t maxsize = MAX_FRAME;
    zmq_setsockopt(bus->xpub, ZMQ_SNDHWM, &ext_hwm, sizeof ext_hwm);
    zmq_setsockopt(bus->xsub, ZMQ_RCVHWM, &ext_hwm, sizeof ext_hwm);
    zmq_setsockopt(bus->xsub, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
    size_t i;
    json_t *ep;
    json_array_foreach(binds, i, ep)
    {
        wh_bus_ends ends;
        if (wh_bus_ends_for(json_string_value(ep), &ends, err, errsize) != 0) {
            goto fail;
        }
        /* each file is noted as ours once bound: only those are removed at the end */
        int ipc = strncmp(ends.sub, "ipc://", 6) == 0;
        if (bind_ep(bus->xpub, ends.sub, err, errsize)) {
            goto fail;
        }
        if (ipc) {
            json_array_append_new(bus->ipc_files, json_string(ends.sub + 6));
        }
        if (bind_ep(bus->xsub, ends.pub, err, errsize)) {
            goto fail;
        }
        if (ipc) {
            json_array_append_new(bus->ipc_files, json_string(ends.pub + 6));
        }
        wh_info("bus", "bound endpoint=%s publishers=%s", wh_log_q(ends.sub),
                wh_log_q(ends.pub));
    }
    if (pthread_create(&bus->thread, NULL, broker_main, bus) != 0) {
        snprintf(err, errsize, "cannot start the broker thread");
        goto fail;
    }
    bus->started = 1;
    return bus;
fail:
    wh_bus_destroy(&bus);
    return NULL;
}

void wh_bus_destroy(wh_bus **pbus)
{
    wh_bus *bus = pbus ? *pbus : NULL;
    if (!bus) {
        return;
    }
    if (bus->started) {
        zmq_send(bus->ctl_client, "TERMINATE", 9, 0);
        pthread_join(bus->thread, NULL);
    }
    void *socks[] = {bus->xsub, bus->xpub, bus->ctl_server, bus->ctl_client};
    for (size_t i = 0; i < WH_ARRAY_LEN(socks); i++) {
        if (socks[i]) {
            zmq_close(socks[i]);
        }
    }
    if (bus->zctx) {
        zmq_ctx_term(bus->zctx);
    }
    /* ZeroMQ leaves an ipc socket file behind; nothing listens on it any more */
    size_t i;
    json_t *f;
    json_array_foreach(bus->ipc_files, i, f)
    {
        unlink(json_string_value(f));
    }
    json_decref(bus->ipc_files);
    free(bus);
    *pbus = NULL;
}

void *wh_bus_zctx(wh_bus *bus)
{
    return bus->zctx;
}

const wh_bus_ends *wh_bus_inproc(const wh_bus *bus)
{
    return &bus->inproc;
}

/*
 * The slow-joiner handshake: a probe on a unique topic is sent from `pub`
 * until `sub` sees it. Subscriptions travel SUB → XPUB → XSUB → PUB in order
 * and XSUB replays its whole subscription set to a new publisher first, so
 * once the probe arrives, `pub` knows every subscription made before it and
 * `sub`'s subscriptions have reached the broker.
 */
static int handshake(void *pub, void *sub, int timeout_ms)
{
    char topic[64] = "sys/sync/";
    if (wh_random_hex(8, topic + strlen(topic)) != WH_OK) {
        return -1;
    }
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topic, strlen(topic));
    int64_t deadline = wh_mono_ms() + timeout_ms;
    int rc = -1;
    while (wh_mono_ms() < deadline) {
        zmq_send(pub, topic, strlen(topic), ZMQ_SNDMORE);
        zmq_send(pub, "{}", 2, 0);
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 5) < 0) {
            break;
        }
        int got = 0;
        while (item.revents & ZMQ_POLLIN) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, sub, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&msg);
                break;
            }
            if (zmq_msg_size(&msg) == strlen(topic) &&
                memcmp(zmq_msg_data(&msg), topic, strlen(topic)) == 0) {
                got = 1;
            }
            int more = zmq_msg_more(&msg);
            zmq_msg_close(&msg);
            while (more) { /* drain the rest of this message */
                zmq_msg_init(&msg);
                zmq_msg_recv(&msg, sub, 0);
                more = zmq_msg_more(&msg);
                zmq_msg_close(&msg);
            }
        }
        if (got) {
            rc = 0;
            break;
        }
    }
    zmq_setsockopt(sub, ZMQ_UNSUBSCRIBE, topic, strlen(topic));
    return rc;
}

wh_pub *wh_pub_new(void *zctx, const wh_bus_ends *ends, int timeout_ms)
{
    wh_pub *pub = calloc(1, sizeof *pub);
    void *probe = NULL;
    if (!pub) {
        return NULL;
    }
    pthread_mutex_init(&pub->lock, NULL);
    pub->sock = zmq_socket(zctx, ZMQ_PUB);
    probe = zmq_socket(zctx, ZMQ_SUB);
    if (!pub->sock || !probe) {
        goto fail;
    }
    set_common(pub->sock);
    set_common(probe);
    if (zmq_connect(pub->sock, ends->pub) != 0 || zmq_connect(probe, ends->sub) != 0) {
        wh_error("bus", "cannot connect publisher to %s: %s", ends->pub, zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (handshake(pub->sock, probe, timeout_ms) != 0) {
        wh_error("bus", "publisher handshake with %s timed out", ends->pub);
        goto fail;
    }
    zmq_close(probe);
    return pub;
fail:
    if (probe) {
        zmq_close(probe);
    }
    wh_pub_destroy(&pub);
    return NULL;
}

void wh_pub_destroy(wh_pub **ppub)
{
    wh_pub *pub = ppub ? *ppub : NULL;
    if (!pub) {
        return;
    }
    if (pub->sock) {
        zmq_close(pub->sock);
    }
    pthread_mutex_destroy(&pub->lock);
    free(pub);
    *ppub = NULL;
}

int wh_pub_send_raw(wh_pub *pub, const char *topic, const char *data, size_t len)
{
    pthread_mutex_lock(&pub->lock);
    int rc = 0;
    if (zmq_send(pub->sock, topic, strlen(topic), ZMQ_SNDMORE) < 0 ||
        zmq_send(pub->sock, data, len, 0) < 0) {
        rc = -1;
    }
    pthread_mutex_unlock(&pub->lock);
    return rc;
}

int wh_pub_send(wh_pub *pub, const char *topic, const json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text) {
        return -1;
    }
    int rc = wh_pub_send_raw(pub, topic, text, strlen(text));
    free(text);
    return rc;
}

wh_sub *wh_sub_new(void *zctx, const wh_bus_ends *ends, const char *const *prefixes,
                   int timeout_ms)
{
    wh_sub *sub = calloc(1, sizeof *sub);
    void *probe = NULL;
    if (!sub) {
        return NULL;
    }
    sub->sock = zmq_socket(zctx, ZMQ_SUB);
    probe = zmq_socket(zctx, ZMQ_PUB);
    if (!sub->sock || !probe) {
        goto fail;
    }
    set_common(sub->sock);
    set_common(probe);
    int64_t maxsize = MAX_FRAME;
    zmq_setsockopt(sub->sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
    for (size_t i = 0; prefixes && prefixes[i]; i++) {
        zmq_setsockopt(sub->sock, ZMQ_SUBSCRIBE, prefixes[i], strlen(prefixes[i]));
    }
    if (zmq_connect(sub->sock, ends->sub) != 0 || zmq_connect(probe, ends->pub) != 0) {
        wh_error("bus", "cannot connect subscriber to %s: %s", ends->sub,
                 zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (handshake(probe, sub->sock, timeout_ms) != 0) {
        wh_error("bus", "subscriber handshake with %s timed out", ends->sub);
        goto fail;
    }
    zmq_close(probe);
    return sub;
fail:
    if (probe) {
        zmq_close(probe);
    }
    wh_sub_destroy(&sub);
    return NULL;
}

void wh_sub_destroy(wh_sub **psub)
{
    wh_sub *sub = psub ? *psub : NULL;
    if (!sub) {
        return;
    }
    if (sub->sock) {
        zmq_close(sub->sock);
    }
    free(sub);
    *psub = NULL;
}

void *wh_sub_socket(wh_sub *sub)
{
    return sub->sock;
}

int wh_sub_recv_raw(wh_sub *sub, int timeout_ms, char **topic, char **raw, size_t *len)
{
    *topic = NULL;
    *raw = NULL;
    *len = 0;
    for (;;) {
        zmq_pollitem_t item = {sub->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, timeout_ms);
        if (n < 0) {
            return zmq_errno() == EINTR ? 0 : -1;
        }
        if (n == 0) {
            return 0;
        }
        zmq_msg_t frames[2];
        int count = 0, more = 1, bad = 0;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, sub->sock, 0) < 0) {
                zmq_msg_close(&m);
                for (int i = 0; i < count; i++) {
                    zmq_msg_close(&frames[i]);
                }
                return -1;
            }
            more = zmq_msg_more(&m);
            if (count < 2) {
                frames[count++] = m;
            } else {
                bad = 1;
                zmq_msg_close(&m);
            }
        }
        if (count == 2 && !bad) {
            size_t tlen = zmq_msg_size(&frames[0]);
            *len = zmq_msg_size(&frames[1]);
            *topic = strndup(zmq_msg_data(&frames[0]), tlen);
            *raw = malloc(*len + 1);
            if (*topic && *raw) {
                memcpy(*raw, zmq_msg_data(&frames[1]), *len);
                (*raw)[*len] = '\0';
            }
        }
        for (int i = 0; i < count; i++) {
            zmq_msg_close(&frames[i]);
        }
        if (*topic && *raw) {
            return 1;
        }
        free(*topic);
        free(*raw);
        *topic = *raw = NULL;
        /* malformed message (not topic + one frame): dropped, wait for the next */
        if (timeout_ms == 0) {
            return 0;
        }
    }
}
