/*
 * http_client.h — the delivery thread: one curl multi handle that runs every
 * outgoing HTTP exchange, plus a queue of jobs (operation starts, timers) that
 * must run on that same thread. curl's global state is initialised here, on the
 * first request (not before: a hub that only receives never initialises TLS), and
 * cleaned up when the last wh_http that used it is destroyed; callers never
 * call curl_global_init themselves.
 */
#ifndef WH_HTTP_CLIENT_H
#define WH_HTTP_CLIENT_H
#include "wirehub/connector.h"
#include <stdint.h>

typedef struct wh_http wh_http;

typedef struct wh_http_opts {
    long default_timeout_ms;    /**< when a request gives none (default 30000) */
    size_t default_max_response; /**< response cap (default 8 MiB) */
} wh_http_opts;

/**
 * Start the thread; curl is not touched until the first wh_http_submit(). Returns NULL with a
 * reason in err. Ownership: the caller owns the result (wh_http_destroy).
 */
wh_http *wh_http_new(const wh_http_opts *opts, char *err, size_t errsize);
/**
 * Stop: transfers still running end with status 0 and error "wirehub is
 * stopping" (their callbacks run), queued jobs run, then the thread exits.
 * Releases curl's global state if this object initialised it. Accepts NULL.
 */
void wh_http_destroy(wh_http **http);

/**
 * Queue one exchange. `done` runs exactly once on the delivery thread when
 * this returns WH_OK. Any thread. Ownership: borrows req (copied).
 */
int wh_http_submit(wh_http *http, const wh_http_request *req, wh_http_done done, void *user);

/**
 * As wh_http_submit(), with TLS certificate and host verification off when
 * `insecure_tls` is set: only for an instance configured `insecure_tls: true`,
 * which the hub announces with a warning at every start.
 */
int wh_http_submit_ex(wh_http *http, const wh_http_request *req, int insecure_tls,
                      wh_http_done done, void *user);

/** Run fn(user) on the delivery thread after delay_ms (0 = soon). Any thread. */
int wh_http_post(wh_http *http, int64_t delay_ms, void (*fn)(void *user), void *user);

/** True when called on the delivery thread. */
int wh_http_on_thread(const wh_http *http);
#endif
