/*
 * hub.c — wires the parts together. The order below is the whole story of a
 * start; stop is the same list backwards. Parts never call each other: they
 * meet on the bus; this file only hands each the handles it needs.
 *
 *   0. store        the SQLite state file (journal, runs, outbox)
 *   1. bus          broker thread, inproc + configured endpoints
 *   2. delivery     the curl multi thread (outgoing HTTP, operation calls)
 *   3. publisher    the connectors' handle for host->publish
 *   4. instances    connector init(), in config order
 *   5. delivery     executes calls published on out/<instance>
 *   6. engine       rules: events in, calls and answers out
 *      await        conversations: polls on schedule, pushed replies
 *   7. watcher      reloads rules when their directory changes
 *   8. gateway      HTTP in; last, so nothing arrives before the rest is up
 */
#include "hub.h"
#include "await.h"
#include "bus.h"
#include "delivery.h"
#include "engine.h"
#include "ruleset.h"
#include "store.h"
#include "watch.h"
#include "gateway.h"
#include "http_client.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct wh_hub {
    int lock_fd; /* <state>.lock, flock()ed: one hub per state file */
    wh_config *cfg;
    wh_store *store;
    wh_bus *bus;
    wh_http *http;
    wh_pub *pub;
    wh_services svc;
    int instances_up;
    wh_delivery *delivery;
    wh_engine *engine;
    wh_await *await;
    wh_watch *watch;
    pthread_mutex_t reload_lock;
    wh_gateway *gateway;
    char node[17];
};

static void reload_from_watch(void *ud)
{
    wh_hub_reload(ud);
}

static int engine_consumes(void *ud, const char *source)
{
    return wh_engine_consumes(ud, source);
}

int wh_hub_reload(wh_hub *hub)
{
    pthread_mutex_lock(&hub->reload_lock);
    struct stat sb;
    if (stat(hub->cfg->rules_dir, &sb) != 0) {
        /* gone for a moment (a deploy swapping it): not "no rules" — keep them,
         * as the watch does; it reloads when the directory is back */
        wh_warn("rules", "no rules directory at %s: keeping the rules that were running",
                hub->cfg->rules_dir);
        pthread_mutex_unlock(&hub->reload_lock);
        return WH_ERR_CONFIG;
    }
    json_t *errors = json_array();
    wh_rules *rules = wh_ruleset_load(hub->cfg, errors);
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        wh_error("rules", "%s", json_string_value(e));
    }
    int rc = WH_OK;
    if (rules) {
        wh_info("rules", "loaded rules=%zu files=%zu", wh_rules_count(rules),
                wh_rules_files(rules));
        wh_engine_set_rules(hub->engine, rules);
    } else {
        wh_error("rules", "reload failed; keeping the rules that were running");
        rc = WH_ERR_CONFIG;
    }
    json_decref(errors);
    pthread_mutex_unlock(&hub->reload_lock);
    return rc;
}

static void stop_parts(wh_hub *hub);

/*
 * One hub per state file: a second `wirehub run` on the same config would
 * replay the first one's events in flight at its start and take over its bus
 * sockets before failing on the port. Held until the hub stops (the kernel
 * drops it if the process dies). Returns the fd, or -1 with the reason logged.
 */
static int lock_state(const char *state_path)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.lock", state_path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        wh_error("hub", "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        wh_error("hub", "another wirehub (pid %s) is running on the state file %s",
                 pid[0] ? pid : "?", state_path);
        close(fd);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        wh_warn("hub", "cannot write the pid into %s: %s", path, strerror(errno));
    }
    return fd;
}

wh_hub *wh_hub_start(wh_config *cfg, wh_rules *rules)
{
    wh_hub *hub = calloc(1, sizeof *hub);
    if (!hub) {
        return NULL;
    }
    hub->lock_fd = -1;
    pthread_mutex_init(&hub->reload_lock, NULL);
    char err[512];
    wh_random_hex(8, hub->node);

    char *dir = wh_dirname(cfg->state_path); /* 0 */
    if (dir && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        wh_error("hub", "cannot create the state directory %s: %s", dir, strerror(errno));
    }
    hub->lock_fd = lock_state(cfg->state_path);
    if (hub->lock_fd < 0) {
        free(dir);
        goto fail;
    }
    free(dir);
    wh_store_opts sopts;
    wh_store_opts_init(&sopts);
    sopts.synchronous_full = cfg->state_sync_full;
    hub->store = wh_store_open(cfg->state_path, &sopts, err, sizeof err);
    if (!hub->store) {
        wh_error("hub", "state: %s", err);
        goto fail;
    }

    hub->bus = wh_bus_new(cfg->bus_bind, err, sizeof err); /* 1 */
    if (!hub->bus) {
        wh_error("hub", "bus: %s", err);
        goto fail;
    }
    hub->http = wh_http_new(NULL, err, sizeof err); /* 2 */
    if (!hub->http) {
        wh_error("hub", "delivery: %s", err);
        goto fail;
    }
    hub->pub = wh_pub_new(wh_bus_zctx(hub->bus), wh_bus_inproc(hub->bus), 5000); /* 3 */
    if (!hub->pub) {
        wh_error("hub", "cannot join the bus");
        goto fail;
    }
    hub->svc.pub = hub->pub;
    hub->svc.http = hub->http;
    if (wh_instances_init(cfg->instances, &hub->svc, err, sizeof err) != WH_OK) { /* 4 */
        wh_error("hub", "%s", err);
        goto fail;
    }
    hub->instances_up = 1;
    hub->delivery = wh_delivery_new(NULL, cfg->instances, hub->store, /* 5 */
                                    wh_bus_zctx(hub->bus), wh_bus_inproc(hub->bus), err,
                                    sizeof err);
    if (!hub->delivery) {
        wh_error("hub", "delivery: %s", err);
        goto fail;
    }
    hub->engine = wh_engine_new(wh_bus_zctx(hub->bus), wh_bus_inproc(hub->bus), hub->node, /* 6 */
                                hub->store, wh_rules_ref(rules), err, sizeof err);
    if (!hub->engine) {
        wh_rules_unref(&rules); /* the reference meant for the engine; the caller keeps its own */
        wh_error("hub", "engine: %s", err);
        goto fail;
    }
    hub->await = wh_await_new(hub->store, wh_bus_zctx(hub->bus), wh_bus_inproc(hub->bus), err,
                              sizeof err);
    if (!hub->await) {
        wh_error("hub", "await: %s", err);
        goto fail;
    }
    hub->cfg = cfg;
    hub->watch = wh_watch_new(cfg->rules_dir, 250, reload_from_watch, hub); /* 7 */
    wh_gateway_opts gopts = cfg->gateway; /* 8 */
    gopts.node = hub->node;
    gopts.api_tokens = cfg->api_tokens;
    gopts.rule_lag_ms = wh_engine_lag(hub->engine);
    gopts.consumes = engine_consumes;
    gopts.consumes_ud = hub->engine;
    hub->gateway = wh_gateway_new(&gopts, cfg->instances, hub->store, wh_bus_zctx(hub->bus),
                                  wh_bus_inproc(hub->bus), err, sizeof err);
    if (!hub->gateway) {
        wh_error("hub", "gateway: %s", err);
        goto fail;
    }
    wh_info("gateway", "listening addr=%s:%d instances=%zu", cfg->listen_host,
            wh_gateway_port(hub->gateway), cfg->instances->n);
    wh_rules_unref(&rules); /* taken: the engine holds its own reference */
    return hub;
fail:
    hub->cfg = NULL; /* the caller keeps cfg on failure */
    /* what runs connector code (timers, calls in flight) stops before their destroy() */
    stop_parts(hub);
    if (hub->instances_up) {
        /* undo init() but leave the plugins loaded: cfg still owns them */
        for (size_t i = cfg->instances->n; i-- > 0;) {
            wh_instance *inst = cfg->instances->v[i];
            if (inst->inited) {
                inst->plugin->desc.destroy(inst->state);
                inst->inited = 0;
                inst->state = NULL;
            }
        }
        hub->instances_up = 0;
    }
    wh_hub_stop(&hub);
    return NULL;
}

int wh_hub_port(const wh_hub *hub)
{
    return wh_gateway_port(hub->gateway);
}

/* Stop every part that may call into a connector; each step takes NULL. */
static void stop_parts(wh_hub *hub)
{
    wh_gateway_destroy(&hub->gateway); /* 8 */
    wh_watch_destroy(&hub->watch);     /* 7 */
    wh_await_destroy(&hub->await);     /* 6 */
    wh_engine_destroy(&hub->engine);
    wh_delivery_stop(hub->delivery);   /* 5: no new calls… */
    wh_http_destroy(&hub->http);       /* 2: …in-flight calls end before their connectors do */
    wh_store_close(&hub->store);       /* 0: their outcomes are written (delivery still exists) */
    wh_delivery_destroy(&hub->delivery);
}

void wh_hub_stop(wh_hub **phub)
{
    wh_hub *hub = phub ? *phub : NULL;
    if (!hub) {
        return;
    }
    stop_parts(hub);
    wh_config_destroy(&hub->cfg);      /* 4: destroy() each instance, unload plugins */
    wh_pub_destroy(&hub->pub);         /* 3 */
    wh_bus_destroy(&hub->bus);         /* 1 */
    if (hub->lock_fd >= 0) {
        close(hub->lock_fd); /* the next hub may start */
    }
    pthread_mutex_destroy(&hub->reload_lock);
    free(hub);
    *phub = NULL;
}
