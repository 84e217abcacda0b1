/*
 * wirehub/connector.h — the connector SDK: the only header a connector includes.
 *
 * A connector is a shared object (`<type>.so`) in the hub's connectors
 * directory. It exports exactly one symbol, WH_CONNECTOR_ENTRY, a function
 * returning a pointer to a `static const wh_connector` descriptor. The hub
 * checks the descriptor's header (ABI major, struct size, the host minor it
 * needs, the jansson major it was built with) before it calls anything.
 *
 * Versioning
 *   - WH_ABI_MAJOR changes only when something is removed or changes meaning;
 *     the entry symbol's name carries the major, so an old plugin fails at
 *     dlsym() with a clear message instead of crashing.
 *   - WH_ABI_MINOR grows when members are appended to wh_connector or
 *     wh_host. The host reads only the descriptor fields inside the
 *     plugin's `struct_size`; a plugin tests for newer host services with
 *     WH_HOST_HAS(host, member).
 *
 * Ownership (the same rule everywhere)
 *   - A pointer passed in is borrowed: do not free or json_decref it, do not
 *     keep it after the call returns (json_incref it to keep a json_t).
 *   - A json_t handed to a function documented "takes" becomes the
 *     receiver's, but only when the function succeeds (returns WH_OK); on
 *     failure the caller still owns it.
 *   - A json_t returned to you is a new reference: json_decref it.
 *
 * Threads
 *   - init() and destroy(): the main thread, at start and stop. destroy()
 *     runs after every other callback of the instance has returned and no
 *     HTTP callback is pending.
 *   - webhook() and respond(): the gateway's HTTP threads, possibly several
 *     at once for one instance. Keep them short and non-blocking: no network
 *     I/O, no sleeping. Use host->http() and return WH_PENDING for slow work.
 *   - operation start() and every wh_http_done callback: the delivery thread
 *     (one thread runs all of them, never two at once).
 *   - Host services may be called from any thread unless noted.
 *
 * Minimal connector:
 *
 *   static int say(void *state, wh_call *call, const json_t *args) {
 *       const wh_host *h = ((struct my *)state)->host;
 *       h->log(h_inst, WH_LOG_INFO, "say %s", json_string_value(json_object_get(args, "text")));
 *       return h->complete(call, WH_CALL_OK, NULL, 0, NULL);
 *   }
 *   static const wh_operation ops[] = { { "say", "Print a line", NULL, say, 0 }, { NULL } };
 *   static const wh_connector desc = {
 *       WH_CONNECTOR_HEADER("mine", "1.0.0", "An example"),
 *       .operations = ops, .init = my_init, .destroy = my_destroy,
 *   };
 *   WH_CONNECTOR_EXPORT(desc)
 */
#ifndef WIREHUB_CONNECTOR_H
#define WIREHUB_CONNECTOR_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** ABI major: changes the entry symbol's name. */
#define WH_ABI_MAJOR 1
/** ABI minor: grows when members are appended. */
#define WH_ABI_MINOR 1 /* 1: wh_http_response.too_large */

#define WH_CONNECTOR_ENTRY wirehub_connector_v1
#define WH_CONNECTOR_ENTRY_NAME "wirehub_connector_v1"

/* ------------------------------------------------------------------------ */
/* Status codes: 0 is success, negatives are errors, positives are states.   */

enum {
    WH_OK = 0,
    WH_PENDING = 1,          /**< webhook(): answer later with host->webhook_done() */
    WH_ERR = -1,             /**< unspecified failure */
    WH_ERR_NOMEM = -2,       /**< out of memory */
    WH_ERR_INVALID = -3,     /**< malformed input or argument */
    WH_ERR_AUTH = -4,        /**< authentication or signature check failed */
    WH_ERR_NOT_FOUND = -5,   /**< no such thing */
    WH_ERR_UNSUPPORTED = -6, /**< unsupported media type or feature */
    WH_ERR_TOO_LARGE = -7,   /**< over a size limit */
    WH_ERR_IO = -8,          /**< I/O or network failure */
    WH_ERR_CONFIG = -9,      /**< bad configuration */
    WH_ERR_BUSY = -10,       /**< over a capacity limit, try later */
    WH_ERR_TIMEOUT = -11,    /**< a deadline passed */
    WH_ERR_STATE = -12,      /**< called at the wrong time */
};

/** Log levels for host->log(). */
enum { WH_LOG_ERROR = 0, WH_LOG_WARN = 1, WH_LOG_INFO = 2, WH_LOG_DEBUG = 3 };

/** Outcome of an operation, for host->complete(). */
typedef enum {
    WH_CALL_OK = 0,    /**< done; the result (if any) is the operation's result */
    WH_CALL_RETRY = 1, /**< transient failure: the hub retries with backoff */
    WH_CALL_FAIL = 2,  /**< permanent failure: not retried */
} wh_outcome;

/* ------------------------------------------------------------------------ */
/* Options: a table the host validates against the instance's config.       */

typedef enum {
    WH_OPT_STRING = 1,
    WH_OPT_INT = 2,
    WH_OPT_NUMBER = 3,
    WH_OPT_BOOL = 4,
    WH_OPT_OBJECT = 5,
    WH_OPT_ARRAY = 6,
    WH_OPT_ANY = 7,
} wh_opt_type;

#define WH_OPT_REQUIRED 0x1u /**< the key must be present */
#define WH_OPT_SECRET 0x2u   /**< never printed: `describe` and logs show *** */
#define WH_OPT_PATH 0x4u     /**< a file path: a relative one is made relative to the config file */

/**
 * One configuration key (or one operation argument).
 * `def` is the default as JSON text ("5", "true", "\"x\"") or NULL for none;
 * the host inserts defaults before init() sees the config, and before start()
 * sees an operation's arguments. A table ends with an entry whose name is NULL.
 */
typedef struct wh_option {
    const char *name;
    wh_opt_type type;
    const char *def;
    unsigned flags;
    const char *description;
} wh_option;

/* ------------------------------------------------------------------------ */
/* Opaque handles the host passes to callbacks.                              */

typedef struct wh_instance wh_instance; /**< one configured instance */
typedef struct wh_request wh_request;   /**< one inbound HTTP request */
typedef struct wh_webhook wh_webhook;   /**< what a webhook answers */
typedef struct wh_reply wh_reply;       /**< an HTTP answer being built */
typedef struct wh_call wh_call;         /**< one execution of an operation */

/* ------------------------------------------------------------------------ */
/* Outgoing HTTP (host->http).                                               */

/** An outgoing request. Everything is borrowed for the duration of http(). */
typedef struct wh_http_request {
    size_t struct_size;          /**< sizeof(wh_http_request) */
    const char *method;          /**< "GET", "POST", …; NULL means GET */
    const char *url;             /**< absolute http(s) URL */
    const char *const *headers;  /**< "Name: value" strings, NULL-terminated, or NULL
                                      ("Name:" sends the header with an empty value) */
    const void *body;            /**< request body or NULL */
    size_t body_len;             /**< its length */
    long timeout_ms;             /**< whole-exchange timeout; 0 = the instance's default */
    size_t max_response;         /**< response body cap in bytes; 0 = the hub's default (8 MiB) */
} wh_http_request;

/** A finished exchange. Valid only during the callback. */
typedef struct wh_http_response {
    int status;            /**< HTTP status, or 0 when no answer arrived */
    const char *error;     /**< transport error text when status == 0, else NULL */
    int timed_out;         /**< 1 when the timeout ended the exchange */
    const char *body;      /**< response body, NUL-terminated for convenience */
    size_t body_len;       /**< its length */
    const json_t *headers; /**< object: lower-case name → string (last value wins) */
    /**
     * 1 when the body passed `max_response` (default 8 MiB) and the exchange
     * was cut (status is then 0): asking again gets the same answer, so this
     * is a permanent failure, not a transient one. Appended in ABI 1.1: read
     * it only when host->abi_minor >= 1.
     */
    int too_large;
} wh_http_response;

/** Called once per successful host->http(), on the delivery thread. */
typedef void (*wh_http_done)(void *user, const wh_http_response *response);

/* ------------------------------------------------------------------------ */
/* Host services.                                                            */

typedef struct wh_host {
    uint32_t struct_size; /**< sizeof the host's table: use WH_HOST_HAS() */
    uint32_t abi_minor;   /**< the host's WH_ABI_MINOR (1: wh_http_response.too_large) */

    /** Log one line tagged with the instance. Never pass secrets or payloads above DEBUG. */
    void (*log)(const wh_instance *inst, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /** Instance name as configured ("team"). Borrowed, valid until destroy(). */
    const char *(*instance_name)(const wh_instance *inst);

    /** Wall clock in milliseconds since the Unix epoch (tests may inject one). */
    int64_t (*now_ms)(const wh_instance *inst);

    /**
     * Publish an event from this instance outside any request (a pushed
     * message, a poll loop of the connector's own).
     * Ownership: takes `data` on success. Any thread.
     */
    int (*publish)(wh_instance *inst, const char *kind, json_t *data);

    /* ---- inbound request, valid during webhook() until webhook_done() ---- */

    /** Method ("POST"). */
    const char *(*req_method)(const wh_request *req);
    /** The path after /hooks/<instance>, "" or starting with '/' (percent-decoded). */
    const char *(*req_path)(const wh_request *req);
    /** Header value by case-insensitive name, or NULL. */
    const char *(*req_header)(const wh_request *req, const char *name);
    /** Query argument (decoded) by name, or NULL. */
    const char *(*req_query)(const wh_request *req, const char *name);
    /** The raw body bytes (NUL-terminated for convenience, may contain NULs). */
    const char *(*req_body)(const wh_request *req, size_t *len);
    /** The media type of the body, lower-cased, without parameters ("application/json"). */
    const char *(*req_content_type)(const wh_request *req);
    /** All headers: object of lower-case name → value (last wins). Borrowed. */
    const json_t *(*req_headers)(const wh_request *req);
    /** The client's address as text ("127.0.0.1"). */
    const char *(*req_remote)(const wh_request *req);

    /* ---- what webhook() answers ---- */

    /**
     * Add one event for the bus (`in/<instance>/<kind>`). The hub journals
     * and publishes it before the caller is answered. Returns WH_OK, or
     * WH_ERR_INVALID for a kind that is not 1-64 of [A-Za-z0-9_.-],
     * WH_ERR_NOMEM; on failure `data` is still the caller's to free.
     * Ownership: takes `data` on success.
     */
    int (*emit)(wh_webhook *wh, const char *kind, json_t *data);
    /**
     * Refuse the request: HTTP `status` with {"error": error, "detail": detail}.
     * `error` is a short code ("bad_signature"); neither may contain secrets.
     * Returns WH_OK (or WH_ERR_NOMEM); the refusal is then webhook()'s answer:
     * return WH_OK from webhook() (`return h->reject(...) < 0 ? WH_ERR : WH_OK;`
     * is the usual form). Events emitted before a reject are not published.
     */
    int (*reject)(wh_webhook *wh, int status, const char *error, const char *detail);
    /**
     * Answer at once with this body instead of the default {"ok":true,…}.
     * Copies the body. Events emitted are still published first.
     * Returns WH_OK, WH_ERR_INVALID (status outside 100-599) or WH_ERR_NOMEM.
     */
    int (*answer)(wh_webhook *wh, int status, const char *content_type, const char *body,
                  size_t len);
    /**
     * The caller waits for the engine's respond (assistants). The hub holds
     * the request up to `deadline_ms` (milliseconds from now, relative), then calls the connector's respond()
     * with `fallback` (a generic response object, e.g. {"speech": "…"}).
     * When `gateway.max_waiting` callers already wait, the hub answers this
     * one 429 `too_many_waiting` instead and still returns WH_OK: the refusal
     * is the answer, and the connector has nothing more to do.
     * Ownership: borrows `fallback` (it is copied).
     */
    int (*wait)(wh_webhook *wh, long deadline_ms, const json_t *fallback);
    /**
     * Finish a webhook() that returned WH_PENDING. Call exactly once, from any
     * thread, after the last emit/reject/answer/wait on `wh`.
     */
    void (*webhook_done)(wh_webhook *wh);

    /* ---- what respond() answers ---- */

    /** Set the answer's status, content type and body (copied). */
    int (*reply)(wh_reply *out, int status, const char *content_type, const char *body,
                 size_t len);
    /** Add a response header. */
    int (*reply_header)(wh_reply *out, const char *name, const char *value);

    /* ---- operations ---- */

    /** The call's idempotency key: the same across retries and restarts. */
    const char *(*call_key)(const wh_call *call);
    /** A poll's cursor from its previous result, or NULL on the first poll. Borrowed. */
    const json_t *(*call_cursor)(const wh_call *call);
    /** Attempt number, 1 for the first. */
    int (*call_attempt)(const wh_call *call);
    /**
     * Finish a call, exactly once, from any thread.
     * `result`: the operation's result object (may be NULL). An exception to
     * the header's ownership rule: complete() takes `result` always, even when
     * it returns an error (a second complete() of one call returns
     * WH_ERR_STATE, logs the connector bug and frees `result`).
     * For polls, result holds {"items": [...], "cursor": <any JSON>}. Each item
     * is an object: `id` (a string or an integer; required — the hub stores an
     * item once per key and id, across polls and pushed events, and skips one
     * without an id with a warning), `text`, `author` (strings), `time` (RFC
     * 3339 text, e.g. "2026-01-15T08:00:00.250Z"; when missing, the time the
     * hub stored it); the whole item is kept too, for rules. `cursor` comes
     * back as call_cursor() on the next poll of the conversation (kept across
     * restarts); each poll is its own call with its own key.
     * `outcome`: WH_CALL_RETRY for what may pass (timeouts, 5xx, 429, a
     * connection refused), WH_CALL_FAIL for what will not (a 4xx, a bad
     * argument): the hub retries only the first, with backoff or after
     * `retry_after_ms`, up to the instance's `max_attempts`.
     * `retry_after_ms`: with WH_CALL_RETRY, the earliest next attempt (0 = backoff).
     * `error`: short text for logs and dead letters (no secrets), copied.
     * Returns WH_OK, WH_ERR_STATE (completed before) or WH_ERR_INVALID (no call).
     */
    int (*complete)(wh_call *call, wh_outcome outcome, json_t *result, long retry_after_ms,
                    const char *error);

    /**
     * Start an outgoing HTTP exchange on the hub's curl multi handle.
     * `done` is called exactly once on the delivery thread when this returns
     * WH_OK, and never when it fails. Called on the delivery thread (in
     * start() or another done), `done` runs after http() has returned; called
     * from another thread it may run before — so in init(), where *state is
     * not set yet, start nothing whose `done` needs it.
     * Fails with WH_ERR_INVALID (no URL, a bad method or header), WH_ERR_NOMEM,
     * or WH_ERR_STATE (no HTTP service: the config check's init()). Any thread.
     */
    int (*http)(wh_instance *inst, const wh_http_request *req, wh_http_done done, void *user);

    /* ---- helpers ---- */

    /**
     * HMAC with `digest` "sha256", "sha1" or "sha512". Writes the MAC to
     * `out` (at least 64 bytes) and its length to `*out_len`.
     */
    int (*hmac)(const char *digest, const void *key, size_t key_len, const void *msg,
                size_t msg_len, unsigned char *out, size_t *out_len);
    /** Constant-time comparison of two buffers: 1 when equal (different lengths: 0). */
    int (*ct_equal)(const void *a, size_t a_len, const void *b, size_t b_len);
    /**
     * Decode application/x-www-form-urlencoded into an object of strings
     * (a repeated key keeps the last value). Returns a new reference or NULL
     * on malformed input.
     */
    json_t *(*form_decode)(const char *body, size_t len);
    /** Look up a dotted path ("a.b.0.c") in `root`. Borrowed result or NULL. */
    const json_t *(*json_path)(const json_t *root, const char *path);
    /**
     * A Retry-After value (delay-seconds or an HTTP-date) as milliseconds from
     * now (>= 0), or -1 when absent or unparsable. `value` may be NULL.
     */
    long (*retry_after_ms)(const wh_instance *inst, const char *value);

    /** All query arguments (decoded): object of name → value (last wins). Borrowed. */
    const json_t *(*req_queries)(const wh_request *req);

    /**
     * Run fn(user) on the delivery thread after delay_ms (0 = soon): timers for
     * pacing, token refresh, polls of the connector's own. Any thread. fn runs
     * exactly once when this returns WH_OK (at shutdown, possibly early).
     */
    int (*defer)(wh_instance *inst, long delay_ms, void (*fn)(void *user), void *user);

    /**
     * Say that this request delivers the platform's message `id` (Alexa's
     * requestId, Slack's event_id). Returns 0 when `id` is new for this
     * instance; the hub remembers it (durably, with the events) and the answer
     * the caller gets. Returns 1 when `id` was seen before: the hub answers this
     * request as it answered the first and publishes nothing — rules run once.
     * While the first is still in progress, the repeat waits for that answer
     * (up to 10 s, then 503 duplicate_in_progress). Call it after verifying and
     * before emit(); after a 1, return WH_OK.
     * Remembered for 24 hours.
     */
    int (*dedupe)(wh_webhook *wh, const char *id);
} wh_host;

/** True when the host's table has `member` (a service added in a later minor). */
#define WH_HOST_HAS(host, member)                                                                  \
    ((host)->struct_size >= offsetof(wh_host, member) + sizeof(((wh_host *)0)->member) &&         \
     (host)->member != NULL)

/* ------------------------------------------------------------------------ */
/* Operations.                                                               */

#define WH_OP_POLL 0x1u /**< a poll: result {"items": [...], "cursor": …} */

/**
 * A named asynchronous operation ("post_message"). `start` begins one call;
 * the call ends when host->complete() is called (possibly inside start).
 * `args` describes the arguments; NULL means any. The rule loader checks the
 * names, the required ones, and the type of a literal value; before start()
 * the hub brings each rendered argument to its declared type (a template
 * renders text: "7" → 7 for WH_OPT_INT, 7 → "7" for WH_OPT_STRING, "true" →
 * true for WH_OPT_BOOL, a null is left out) and inserts the `def` of a missing
 * one. A value that cannot be brought to its type fails the call for good
 * ("argument `x` must be an integer, got …") without start() seeing it.
 * start() returns WH_OK when the call is under way (or completed) and
 * a negative code when it could not start (then complete() must not be
 * called): WH_ERR_IO, WH_ERR_BUSY, WH_ERR_TIMEOUT and WH_ERR_NOMEM are
 * retried like WH_CALL_RETRY, any other code fails the call for good — so
 * `return h->http(...)` after a transient failure is retried.
 * Ownership: start() borrows `args` (already normalized as above).
 */
typedef struct wh_operation {
    const char *name;
    const char *description;
    const wh_option *args;
    int (*start)(void *state, wh_call *call, const json_t *args);
    unsigned flags;
} wh_operation;

/* ------------------------------------------------------------------------ */
/* The descriptor.                                                           */

typedef struct wh_abi_header {
    uint32_t abi_major;      /**< WH_ABI_MAJOR at build time */
    uint32_t abi_minor;      /**< WH_ABI_MINOR at build time */
    uint32_t struct_size;    /**< sizeof(wh_connector) at build time */
    uint32_t min_host_minor; /**< the oldest host minor this plugin works with */
    uint32_t jansson_major;  /**< JANSSON_MAJOR_VERSION at build time */
    const char *name;        /**< the type name; must equal the file name without ".so" */
    const char *version;     /**< the connector's own version */
    const char *description; /**< one line */
} wh_abi_header;

typedef struct wh_connector {
    wh_abi_header hdr; /**< fill with WH_CONNECTOR_HEADER() */

    /** Config keys (besides `type`), ending with {NULL}. NULL means none. */
    const wh_option *options;

    /**
     * Mandatory. Create the instance's state from its validated config (with
     * defaults filled in). `*state` is passed to every other callback.
     * Return WH_OK, or a negative code after logging why.
     * The hub also calls init() then destroy() once to check the config
     * (`wirehub check`, and every start before anything runs), with no bus
     * or HTTP (publish, defer and HTTP return WH_ERR_STATE): do no work there
     * that outlives destroy(). An error logged then becomes a config error
     * at the key's line when the message starts "config: `<key>` …" (e.g.
     * "config: `secret` is empty"), else at the instance's. Log every problem
     * before returning WH_ERR_CONFIG, not only the first: the user then fixes
     * the file in one go (the hub lists them in file order). A warning
     * logged then is shown by `wirehub check` the same way, as a warning.
     * Ownership: borrows `host`, `inst` and `config` (keep host and inst;
     * they live until destroy; json_incref config to keep it).
     */
    int (*init)(const wh_host *host, wh_instance *inst, const json_t *config, void **state);

    /** Mandatory. Free the state (NULL-safe). */
    void (*destroy)(void *state);

    /**
     * Optional: decode one HTTP request to /hooks/<instance>[/…].
     * Verify it, emit events with host->emit(), and choose the answer:
     * host->reject() (an error), host->answer() (a body of its own),
     * host->wait() (the caller waits for the engine), or nothing (the hub
     * answers 200 {"ok":true,"events":[ids]} once the events are journaled).
     * Return WH_OK when done, WH_PENDING to finish later with
     * host->webhook_done(), or a negative code (the hub answers 500).
     */
    int (*webhook)(void *state, const wh_request *req, wh_webhook *wh);

    /**
     * Optional: turn a rule's generic response (`speech`, `text`, `card`,
     * `end_session`, …) into the platform's answer for a waiting caller.
     * `event` is the envelope the caller's request produced. Set the answer
     * with host->reply(). Without respond(), the hub answers the response
     * object as JSON.
     */
    int (*respond)(void *state, const json_t *event, const json_t *response, wh_reply *out);

    /** Operations, ending with {NULL}. NULL means none. */
    const wh_operation *operations;

    /**
     * Optional: the rule's answer arrived after the caller got the fallback
     * (its deadline passed). The connector may still deliver it another way —
     * Slack's response_url, a push. Called on the gateway's answer thread up to
     * 30 minutes after the request; not called when no rule answered.
     * Ownership: borrows event and response.
     */
    int (*late)(void *state, const json_t *event, const json_t *response);

    /**
     * Optional: the keys respond() (and late()) read from a rule's response,
     * ending with NULL. With it, the rule loader reports any other key in the
     * `respond:` of a rule on this connector's events (`speach:`) as unknown,
     * at its line. NULL: any key is taken (a connector that answers the
     * response object as it is).
     */
    const char *const *respond_keys;
} wh_connector;

/** The descriptor's first member. */
#define WH_CONNECTOR_HEADER(name, version, description)                                            \
    .hdr = {WH_ABI_MAJOR, WH_ABI_MINOR, (uint32_t)sizeof(wh_connector), 0, JANSSON_MAJOR_VERSION,  \
            (name), (version), (description)}

#if defined(__GNUC__)
#define WH_EXPORT __attribute__((visibility("default")))
#else
#define WH_EXPORT
#endif

/** Export the entry symbol returning `desc` (a static const wh_connector). */
#define WH_CONNECTOR_EXPORT(desc)                                                                  \
    WH_EXPORT const wh_connector *WH_CONNECTOR_ENTRY(void);                                        \
    WH_EXPORT const wh_connector *WH_CONNECTOR_ENTRY(void)                                         \
    {                                                                                              \
        return &(desc);                                                                            \
    }

/** Lower-case hex of `len` bytes into `out` (2*len+1 bytes). */
static inline void wh_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

#ifdef __cplusplus
}
#endif
#endif
