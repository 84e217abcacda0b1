/*
 * fakehost.h — a fake wh_host for testing a connector without the hub: one
 * table of host services that records what the connector does, so a test can
 * drive webhook(), respond(), late() and operations by hand and check every
 * answer. The connector tests (tests/connector/) and the fuzz targets
 * (tests/fuzz/fuzz_host.h) use it; a new connector's test needs nothing else.
 *
 * A test of your connector, in short (tests/connector/test_<type>.c is built
 * and linked with this file automatically; see test_webhook.c for a full one):
 *
 *   const wh_connector *d = fh_load(WH_CONNECTOR_DIR "/mine.so");
 *   wh_instance inst = {"team"};
 *   void *s;
 *   CHECK_INT(fh_init(d, &inst, "{\"token\": \"t\"}", &s), WH_OK); // + option defaults
 *
 *   wh_request r = {.ctype = "application/json", .body = "{}", .body_len = 2,
 *                   .headers = json_pack("{s:s}", "x-sig", "…")}; // lower-case names
 *   wh_webhook wh = {0};
 *   CHECK_INT(d->webhook(s, &r, &wh), WH_OK);
 *   CHECK_INT(wh.emits, 1);  CHECK_STR(wh.kind, "message");  // wh.data: the last event
 *   fh_webhook_clear(&wh);  json_decref(r.headers);
 *
 *   wh_call c = {.key = "run-1/0"};                // an operation: start, then
 *   d->operations[0].start(s, &c, args);           //   the request it sent:
 *   CHECK_STR(fh_http_pending(0)->url, "https://api.example/x");
 *   fh_http_answer(fh_http_pending(0), 429, "", "{\"retry-after\": \"7\"}");
 *   CHECK_INT(c.outcome, WH_CALL_RETRY);  CHECK_INT(c.retry_after, 7000);
 *   fh_call_clear(&c);
 *
 *   d->destroy(s);
 *   CHECK_INT(fh_done(), 0);                        // no contract broken; unloads
 *   return wh_test_done("connector.mine");
 *
 * Time is the test's: fh.now_ms is the clock, fh_advance() moves it and runs
 * the timers that defer() set. Nothing sleeps, nothing touches the network.
 * Failures on demand: fh.http_rc, fh.emit_rc, fh.defer_rc, fh.publish_rc make
 * that service refuse; to check a connector copes without a newer service,
 * init it with a copy of fh_host where that member is NULL (test_console.c).
 *
 * Contract checks: the fake host also checks what the SDK promises the hub
 * (no emit after reject, statuses in range, kinds that are names, data that
 * encodes as JSON, complete() once per call, every HTTP exchange answered
 * before fh_http_reset()/fh_done(), …). A breach is printed with the reason
 * and counted in fh.failures (fh_done() returns it), or aborts with
 * fh.abort_on_failure (the fuzz targets).
 *
 * Owns: the definitions of the opaque SDK structs (wh_instance, wh_request,
 * wh_webhook, wh_reply, wh_call — the test fills and reads them), the
 * recorded exchanges and timers, the dedupe memory and the loaded library.
 * Must not: depend on the test kit (tests/testlib.h) — the fuzz targets link
 * this file — or do real I/O other than loading the connector.
 * Threads: log(), complete() and the recorders may be called from several
 * threads on different objects (fh.log and fh.failures are locked); http(),
 * defer() and the exchange and timer functions below are for one thread.
 */
#ifndef WH_FAKEHOST_H
#define WH_FAKEHOST_H
#include "util.h"

#include <stdbool.h>
#include <stdint.h>
#include <wirehub/connector.h>

/* ------------------------------------------------------------------------ */
/* The SDK's opaque structs, as this host defines them                      */

/** An instance: the host only needs its name. */
struct wh_instance {
    const char *name;
};

/** An inbound request, filled by the test and borrowed by the host. */
struct wh_request {
    const char *method; /**< req_method(); NULL means "POST" */
    const char *path;   /**< req_path(); NULL means "" */
    const char *ctype;  /**< req_content_type(), as given (may be NULL) */
    const char *remote; /**< req_remote(); NULL means "127.0.0.1" */
    const char *body;   /**< NUL-terminated, as the hub's is */
    size_t body_len;
    json_t *headers; /**< lower-case name → string, or NULL (req_header lower-cases) */
    json_t *queries; /**< name → string, or NULL */
};

/** What webhook() answered: counts, and the last of each. Zero it before a request. */
struct wh_webhook {
    int emits, rejects, answers, waits, dedupes, dones;
    char kind[128]; /**< the last emit's kind */
    json_t *data;   /**< the last emit's data (owned: fh_webhook_clear) */
    int status;     /**< of the last reject or answer */
    char error[64]; /**< the last reject's error code */
    char detail[512];
    char answer_ctype[64];
    char *answer_body; /**< the last answer's body, NUL-terminated (owned) */
    size_t answer_len;
    long deadline_ms; /**< the last wait()'s deadline */
    json_t *fallback; /**< a copy of the last wait()'s fallback (owned) */
    char dedupe_id[128];
    /** Set before the call: dedupe() answers 1 ("seen before"). Set by dedupe() when it
        answered 1. */
    int duplicate;
};

/** What respond() answered. Zero it before the call; fh_reply_clear after. */
struct wh_reply {
    int replies; /**< reply() calls */
    int status;
    char ctype[64];
    char *body; /**< NUL-terminated copy of the last reply()'s body (owned) */
    size_t len;
    json_t *headers; /**< reply_header()s: name → value (owned) */
};

/** One operation call: what the test sets, and how it completed. */
struct wh_call {
    const char *key; /**< call_key(); NULL means "call-key" (borrowed) */
    json_t *cursor;  /**< call_cursor() (owned: fh_call_clear) */
    int attempt;     /**< call_attempt(); 0 means 1 */
    int completes;
    wh_outcome outcome;
    json_t *result; /**< owned: fh_call_clear */
    long retry_after;
    char error[512];
};

/* ------------------------------------------------------------------------ */
/* Knobs and records                                                         */

typedef struct fh_state {
    /* knobs: the test sets them (all off by default) */
    int64_t now_ms;        /**< the clock of now_ms() and retry_after_ms() */
    int emit_rc;           /**< non-zero: emit() fails with this code, takes nothing */
    int http_rc;           /**< non-zero: http() fails with this code, records nothing */
    int defer_rc;          /**< non-zero: defer() fails with this code */
    int publish_rc;        /**< non-zero: publish() fails with this code */
    bool dedupe_off;       /**< dedupe() remembers nothing: 1 only for wh->duplicate */
    bool keep_log;         /**< append every line logged to log_all */
    bool verbose;          /**< print logs, emits, rejects and answers to stderr */
    bool counts_only;      /**< keep no event data, bodies or fallbacks (fuzzing: fewer
                                allocations); counts, statuses and codes are recorded */
    bool abort_on_failure; /**< abort() at the first failure (fuzzing) */
    /* records */
    char log[1024];    /**< the last line logged */
    int warns;         /**< lines logged at WH_LOG_WARN */
    int errors;        /**< lines logged at WH_LOG_ERROR */
    wh_buf log_all;    /**< with keep_log: every line, each ending in '\n' */
    json_t *published; /**< publish(): array of {"kind", "data"}, or NULL */
    int failures;      /**< contract breaches and misuse seen (each printed) */
} fh_state;

/** The fake host's state; tests read and set it directly. */
extern fh_state fh;

/** The host table: every service of this SDK version. */
extern const wh_host fh_host;

/* ------------------------------------------------------------------------ */
/* Connectors and instances                                                  */

/**
 * Load a connector library (RTLD_NOW | RTLD_LOCAL) and return its descriptor,
 * or NULL after printing why. fh_done() unloads it.
 * Ownership: the descriptor belongs to the library.
 */
const wh_connector *fh_load(const char *path);

/**
 * The config as the hub hands it to init(): `config_json` (an object as JSON
 * text) plus the defaults of desc's options. NULL (and a failure) when the
 * text does not parse.
 * Ownership: returns a new reference.
 */
json_t *fh_config(const wh_connector *desc, const char *config_json);

/**
 * init() on fh_host with fh_config(desc, config_json). Returns init's code
 * (WH_ERR_INVALID when the text does not parse); *state is set, or NULL.
 * Ownership: *state is the caller's (desc->destroy); inst is kept by the connector.
 */
int fh_init(const wh_connector *desc, wh_instance *inst, const char *config_json, void **state);

/**
 * fh_init() and, when it succeeds, destroy(): the code init() returned. For
 * checking that init() refuses a config.
 */
int fh_init_rc(const wh_connector *desc, wh_instance *inst, const char *config_json);

/**
 * The checks after one webhook() call, as the gateway needs the answer: it
 * returned WH_OK or WH_PENDING, at most one reject and never with an emit,
 * at most one wait and never with a reject, dedupe() at most once.
 * A breach is a failure.
 */
void fh_check_webhook(const wh_webhook *wh, int rc);

/** Free what wh holds and zero it (NULL-safe). */
void fh_webhook_clear(wh_webhook *wh);
/** Free what out holds and zero it (NULL-safe). */
void fh_reply_clear(wh_reply *out);
/** Free call's result and cursor and zero it (NULL-safe). */
void fh_call_clear(wh_call *call);

/**
 * Forget everything recorded, report exchanges never answered, unload the
 * library. Call it last, after every instance is destroyed.
 * Returns fh.failures (0 when the connector kept the contract).
 */
int fh_done(void);

/* ------------------------------------------------------------------------ */
/* Outgoing HTTP: http() records each request; the test answers it          */

typedef struct fh_exchange {
    char method[32]; /**< "GET" when the request said NULL */
    char *url;
    json_t *headers; /**< array of the "Name: value" lines sent */
    char *body;      /**< NUL-terminated copy, NULL when the request had none */
    size_t body_len;
    long timeout_ms;
    size_t max_response;
    wh_http_done done; /**< NULL once answered */
    void *user;
} fh_exchange;

/** Exchanges started since the last fh_http_reset(). */
int fh_http_count(void);
/** Exchange i in the order started (answered or not). Out of range: a failure and an empty one. */
fh_exchange *fh_http_at(int i);
/** Exchanges not answered yet. */
int fh_http_pending_count(void);
/** The i-th exchange not answered yet, oldest first. Out of range: a failure and an empty one. */
fh_exchange *fh_http_pending(int i);
/**
 * Finish `ex` with `response` (borrowed): runs the connector's callback, once.
 * Answering an exchange twice is a failure.
 */
void fh_http_respond(fh_exchange *ex, const wh_http_response *response);
/**
 * Finish `ex` with a status (0: the transport error "Connection refused"), a
 * body (NULL: none) and response headers as a JSON object text (NULL: none).
 */
void fh_http_answer(fh_exchange *ex, int status, const char *body, const char *headers_json);
/** Whether `line` ("Name: value") was sent: the name in any case, the value exact. */
bool fh_http_has_header(const fh_exchange *ex, const char *line);
/** Forget the exchanges (the count starts at 0 again); one not answered is a failure. */
void fh_http_reset(void);

/* ------------------------------------------------------------------------ */
/* Timers: defer() records them; the test runs them                          */

typedef struct fh_timer {
    int64_t due; /**< fh.now_ms when set, plus delay_ms */
    void (*fn)(void *user);
    void *user;
    long delay_ms;
} fh_timer;

/** Timers waiting (at most 64; a 65th defer() fails with WH_ERR_BUSY). */
int fh_timer_count(void);
/** Waiting timer i (the order changes as timers run). Out of range: a failure, an empty one. */
const fh_timer *fh_timer_at(int i);
/** Move the clock by `ms` and run the timers due, earliest first (those they set too). */
void fh_advance(int64_t ms);
/** Run every waiting timer now, as the hub does at shutdown. */
void fh_fire_timers(void);

#endif
