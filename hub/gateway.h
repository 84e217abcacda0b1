/*
 * gateway.h — HTTP in. Routes /hooks/<instance>[/…] to the instance's
 * connector, answers /healthz, and holds requests whose caller waits for the
 * engine (suspend/resume) until a `resp/<node>/<request-id>` message arrives
 * on the bus or the deadline passes.
 */
#ifndef WH_GATEWAY_H
#define WH_GATEWAY_H
#include "bus.h"
#include "instance.h"
#include "store.h"

#include <stdatomic.h>
#include <stdint.h>

typedef struct wh_gateway_opts {
    const char *host;         /**< listen address (default 127.0.0.1) */
    int port;                 /**< 0 = ephemeral */
    size_t max_body;          /**< bytes (default 1 MiB) → 413 above */
    unsigned timeout_s;       /**< idle/slow connection timeout (default 10) */
    unsigned max_connections; /**< default 1024 */
    unsigned max_pending;     /**< requests held for the engine (default 1024) → 429 above */
    unsigned threads;         /**< HTTP threads (default 2) */
    const char *node;         /**< this process's node id (resp/<node>/…) */
    const json_t *api_tokens; /**< the replies API's tokens; NULL: /v1/ is off */
    const _Atomic int64_t *rule_lag_ms; /**< the engine's lag (wh_engine_lag); NULL: none */
    int64_t max_rule_lag_ms;  /**< refuse new events (503 busy) while the lag is above; 0: never */
    /** whether the engine takes events from this source (wh_engine_consumes):
     *  only those are refused while it lags. NULL: all are. */
    int (*consumes)(void *ud, const char *source);
    void *consumes_ud;
} wh_gateway_opts;

typedef struct wh_gateway wh_gateway;

/**
 * Start serving. With a store, a request's events are journaled (committed)
 * before they are published and the caller is answered. Returns NULL with a
 * reason in err. Ownership: borrows everything (it must outlive the gateway).
 */
wh_gateway *wh_gateway_new(const wh_gateway_opts *opts, wh_instances *instances,
                           wh_store *store, void *zctx, const wh_bus_ends *ends, char *err,
                           size_t errsize);
/** The bound port (useful with port 0). */
int wh_gateway_port(const wh_gateway *gw);
/** Answer held requests with 503, finish pending webhooks, stop. NULL-safe. */
void wh_gateway_destroy(wh_gateway **gw);

/* host table members (see wirehub/connector.h) */
const char *wh_req_method(const wh_request *req);
const char *wh_req_path(const wh_request *req);
const char *wh_req_header(const wh_request *req, const char *name);
const char *wh_req_query(const wh_request *req, const char *name);
const char *wh_req_body(const wh_request *req, size_t *len);
const char *wh_req_content_type(const wh_request *req);
const json_t *wh_req_headers(const wh_request *req);
const char *wh_req_remote(const wh_request *req);
const json_t *wh_req_queries(const wh_request *req);
int wh_wh_emit(wh_webhook *wh, const char *kind, json_t *data);
int wh_wh_reject(wh_webhook *wh, int status, const char *error, const char *detail);
int wh_wh_answer(wh_webhook *wh, int status, const char *ctype, const char *body, size_t len);
int wh_wh_wait(wh_webhook *wh, long deadline_ms, const json_t *fallback);
void wh_wh_done(wh_webhook *wh);
int wh_wh_dedupe(wh_webhook *wh, const char *id);
int wh_reply_set(wh_reply *out, int status, const char *ctype, const char *body, size_t len);
int wh_reply_header(wh_reply *out, const char *name, const char *value);
#endif
