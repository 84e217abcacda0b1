/*
 * hub.c — wires the parts together. The order below is the whole story of a
 * start; stop is the same list backwards. Parts never call each other: they
 * meet on the bus; this file only hands each the handles it needs.
 *
 *   1. bus          broker thread, inproc + configured endpoints
 *   2. delivery     the curl multi thread (outgoing HTTP, operation calls)
 *   3. publisher    the connectors' handle for host->publish
 *   4. instances    connector init(), in config order
 *   5. gateway      HTTP in; last, so nothing arrives before the rest is up
 */
#include "hub.h"
#include "bus.h"
#include "gateway.h"
#include "http_client.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct wh_hub {
    wh_config *cfg;
    wh_bus *bus;
    wh_http *http;
    wh_pub *pub;
    wh_services svc;
    int instances_up;
    wh_gateway *gateway;
    char node[17];
};

wh_hub *wh_hub_start(wh_config *cfg)
{
    wh_hub *hub = calloc(1, sizeof *hub);
    if (!hub) {
        return NULL;
    }
    char err[512];
    wh_random_hex(8, hub->node);

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
    wh_gateway_opts gopts = cfg->gateway; /* 5 */
    gopts.node = hub->node;
    hub->gateway = wh_gateway_new(&gopts, cfg->instances, wh_bus_zctx(hub->bus),
                                  wh_bus_inproc(hub->bus), err, sizeof err);
    if (!hub->gateway) {
        wh_error("hub", "gateway: %s", err);
        goto fail;
    }
    hub->cfg = cfg;
    wh_info("gateway", "listening addr=%s:%d instances=%zu", cfg->listen_host,
            wh_gateway_port(hub->gateway), cfg->instances->n);
    return hub;
fail:
    hub->cfg = NULL; /* the caller keeps cfg on failure */
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

void wh_hub_stop(wh_hub **phub)
{
    wh_hub *hub = phub ? *phub : NULL;
    if (!hub) {
        return;
    }
    wh_gateway_destroy(&hub->gateway); /* 5 */
    wh_http_destroy(&hub->http);       /* 2: in-flight calls end before their connectors do */
    wh_config_destroy(&hub->cfg);      /* 4: destroy() each instance, unload plugins */
    wh_pub_destroy(&hub->pub);         /* 3 */
    wh_bus_destroy(&hub->bus);         /* 1 */
    free(hub);
    *phub = NULL;
}
