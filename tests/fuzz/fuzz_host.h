/*
 * fuzz_host.h — a fake wh_host for the connector targets (fuzz_webhook and
 * the ones for alexa, dialogflow, slack). The connector's .c files are compiled
 * into the target, and its descriptor is reached through WH_CONNECTOR_ENTRY.
 *
 * Owns: the fake request/webhook/reply/call structs and the host table. The
 * helpers a real hub offers (HMAC, constant-time compare, form decoding, JSON
 * paths, Retry-After) are the hub's own functions, so they are fuzzed too.
 * The webhook answers are checked as the gateway would need them: at most one
 * reject, never a reject after an emit, statuses in range, events with valid
 * kinds and data that encodes as JSON (it is journaled), and error codes that
 * are UTF-8 (details need not be: the gateway makes them ASCII when they are not).
 * Outgoing HTTP and publishing are refused: only ingress is fuzzed here.
 * Must not: keep a request's data after the call (like a real host).
 */
#ifndef WH_FUZZ_HOST_H
#define WH_FUZZ_HOST_H
#include "envelope.h"
#include "fuzz.h"
#include "match.h"
#include "util.h"
#include "verify.h"

#include <stdarg.h>
#include <string.h>
#include <wirehub/connector.h>

const wh_connector *WH_CONNECTOR_ENTRY(void);

struct wh_instance {
    const char *name;
};

struct wh_request {
    const char *method, *path, *ctype, *remote;
    const char *body;
    size_t body_len;
    json_t *headers; /* lower-case name -> string */
    json_t *queries; /* name -> string */
};

struct wh_webhook {
    int emits, rejects, answers, waits, done, dedupes;
    int duplicate; /* what dedupe() answers */
    int status;
};

struct wh_reply {
    int replies;
    int status;
};

struct wh_call {
    int completes;
};

static int fh_utf8(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    json_decref(j);
    return j != NULL;
}

static void fh_log(const wh_instance *inst, int level, const char *fmt, ...)
{
    (void)inst;
    (void)level;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap); /* formats every argument: catches bad varargs */
    va_end(ap);
}

static const char *fh_instance_name(const wh_instance *inst)
{
    return inst->name;
}

static int64_t fh_now_ms(const wh_instance *inst)
{
    (void)inst;
    return 1764251660123LL; /* 2025-11-27T13:54:20.123Z: fixed, so runs reproduce */
}

static int fh_publish(wh_instance *inst, const char *kind, json_t *data)
{
    (void)inst;
    (void)kind;
    (void)data;
    return WH_ERR_UNSUPPORTED;
}

static const char *fh_req_method(const wh_request *r)
{
    return r->method;
}

static const char *fh_req_path(const wh_request *r)
{
    return r->path;
}

static const char *fh_req_header(const wh_request *r, const char *name)
{
    char lower[256];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof lower; i++) {
        lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    }
    lower[i] = '\0';
    return json_string_value(json_object_get(r->headers, lower));
}

static const char *fh_req_query(const wh_request *r, const char *name)
{
    return json_string_value(json_object_get(r->queries, name));
}

static const char *fh_req_body(const wh_request *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

static const char *fh_req_content_type(const wh_request *r)
{
    return r->ctype;
}

static const json_t *fh_req_headers(const wh_request *r)
{
    return r->headers;
}

static const char *fh_req_remote(const wh_request *r)
{
    return r->remote;
}

static const json_t *fh_req_queries(const wh_request *r)
{
    return r->queries;
}

static int fh_emit(wh_webhook *wh, const char *kind, json_t *data)
{
    FUZZ_CHECK(wh->rejects == 0, "emit after reject");
    FUZZ_CHECK(wh_name_ok(kind), "emit with kind '%s'", kind ? kind : "(null)");
    char *text = json_dumps(data ? data : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
    FUZZ_CHECK(text != NULL, "emitted data does not encode as JSON");
    if (getenv("WH_FUZZ_VERBOSE")) {
        fprintf(stderr, "emit %s: %.300s\n", kind, text);
    }
    free(text);
    wh->emits++;
    json_decref(data);
    return WH_OK;
}

static int fh_reject(wh_webhook *wh, int status, const char *error, const char *detail)
{
    FUZZ_CHECK(wh->emits == 0, "reject after emit");
    FUZZ_CHECK(status >= 400 && status <= 599, "reject with status %d", status);
    FUZZ_CHECK(error && *error && fh_utf8(error, strlen(error)), "reject without an error code");
    /* a detail may quote input that is not UTF-8 (a JSON parser's error text does): the
       gateway writes such bytes as '?' (it once answered {"error":"internal"} instead) */
    FUZZ_CHECK(!detail || strlen(detail) < 4096, "a reject detail of %zu bytes", strlen(detail));
    wh->rejects++;
    wh->status = status;
    if (getenv("WH_FUZZ_VERBOSE")) {
        fprintf(stderr, "reject %d %s: %s\n", status, error, detail ? detail : "");
    }
    return WH_OK;
}

static int fh_answer(wh_webhook *wh, int status, const char *ctype, const char *body, size_t len)
{
    FUZZ_CHECK(status >= 100 && status <= 599, "answer with status %d", status);
    FUZZ_CHECK(body || len == 0, "answer with no body but length %zu", len);
    (void)ctype;
    wh->answers++;
    wh->status = status;
    return WH_OK;
}

static int fh_wait(wh_webhook *wh, long deadline_ms, const json_t *fallback)
{
    FUZZ_CHECK(deadline_ms > 0, "wait with deadline %ld", deadline_ms);
    (void)fallback;
    wh->waits++;
    return WH_OK;
}

static void fh_webhook_done(wh_webhook *wh)
{
    wh->done++;
}

static int fh_dedupe(wh_webhook *wh, const char *id)
{
    FUZZ_CHECK(id && *id, "dedupe without an id");
    FUZZ_CHECK(wh->emits == 0, "dedupe after emit");
    wh->dedupes++;
    return wh->duplicate;
}

static int fh_reply(wh_reply *out, int status, const char *ctype, const char *body, size_t len)
{
    FUZZ_CHECK(status >= 100 && status <= 599, "reply with status %d", status);
    FUZZ_CHECK(body || len == 0, "reply with no body but length %zu", len);
    (void)ctype;
    out->replies++;
    out->status = status;
    return WH_OK;
}

static int fh_reply_header(wh_reply *out, const char *name, const char *value)
{
    (void)out;
    FUZZ_CHECK(name && value && !strpbrk(value, "\r\n"), "a bad reply header");
    return WH_OK;
}

static const char *fh_call_key(const wh_call *call)
{
    (void)call;
    return "fuzz-call-key";
}

static const json_t *fh_call_cursor(const wh_call *call)
{
    (void)call;
    return NULL;
}

static int fh_call_attempt(const wh_call *call)
{
    (void)call;
    return 1;
}

static int fh_complete(wh_call *call, wh_outcome outcome, json_t *result, long retry_after_ms,
                       const char *error)
{
    (void)outcome;
    (void)retry_after_ms;
    (void)error;
    call->completes++;
    json_decref(result);
    return WH_OK;
}

static int fh_http(wh_instance *inst, const wh_http_request *req, wh_http_done done, void *user)
{
    (void)inst;
    (void)req;
    (void)done;
    (void)user;
    return WH_ERR_UNSUPPORTED;
}

static long fh_retry_after_ms(const wh_instance *inst, const char *value)
{
    return wh_retry_after_parse(value, fh_now_ms(inst));
}

static int fh_defer(wh_instance *inst, long delay_ms, void (*fn)(void *user), void *user)
{
    (void)inst;
    (void)delay_ms;
    (void)fn;
    (void)user;
    return WH_ERR_UNSUPPORTED;
}

static const wh_host fh_host = {
    .struct_size = sizeof(wh_host),
    .abi_minor = WH_ABI_MINOR,
    .log = fh_log,
    .instance_name = fh_instance_name,
    .now_ms = fh_now_ms,
    .publish = fh_publish,
    .req_method = fh_req_method,
    .req_path = fh_req_path,
    .req_header = fh_req_header,
    .req_query = fh_req_query,
    .req_body = fh_req_body,
    .req_content_type = fh_req_content_type,
    .req_headers = fh_req_headers,
    .req_remote = fh_req_remote,
    .emit = fh_emit,
    .reject = fh_reject,
    .answer = fh_answer,
    .wait = fh_wait,
    .webhook_done = fh_webhook_done,
    .reply = fh_reply,
    .reply_header = fh_reply_header,
    .call_key = fh_call_key,
    .call_cursor = fh_call_cursor,
    .call_attempt = fh_call_attempt,
    .complete = fh_complete,
    .http = fh_http,
    .hmac = wh_hmac,
    .ct_equal = wh_ct_equal,
    .form_decode = wh_form_decode,
    .json_path = wh_json_path,
    .retry_after_ms = fh_retry_after_ms,
    .req_queries = fh_req_queries,
    .defer = fh_defer,
    .dedupe = fh_dedupe,
};

/*
 * Create an instance of the compiled-in connector from a JSON config, with
 * the option defaults filled in as the hub does. Exits when init fails: the
 * configs are the target's own, so that is a broken target, not a finding.
 */
static void *fh_instance(wh_instance *inst, const char *config_json)
{
    const wh_connector *desc = WH_CONNECTOR_ENTRY();
    json_error_t err;
    json_t *cfg = json_loads(config_json, 0, &err);
    if (!cfg) {
        fprintf(stderr, "fuzz host: bad config %s: %s\n", config_json, err.text);
        exit(1);
    }
    for (const wh_option *o = desc->options; o && o->name; o++) {
        if (o->def && !json_object_get(cfg, o->name)) {
            json_object_set_new(cfg, o->name, json_loads(o->def, JSON_DECODE_ANY, NULL));
        }
    }
    void *state = NULL;
    int rc = desc->init(&fh_host, inst, cfg, &state);
    json_decref(cfg);
    if (rc != WH_OK) {
        fprintf(stderr, "fuzz host: init of %s failed (%d) for %s\n", desc->hdr.name, rc,
                config_json);
        exit(1);
    }
    return state;
}

/*
 * The checks after one webhook() call: WH_OK or WH_PENDING (an error code is a
 * 500 for the caller, and allocations cannot fail here: ASan aborts instead),
 * and a consistent answer.
 */
static void fh_check_webhook(const wh_webhook *wh, int rc)
{
    FUZZ_CHECK(rc == WH_OK || rc == WH_PENDING, "webhook() returned %d (the caller gets a 500)",
               rc);
    FUZZ_CHECK(wh->rejects <= 1, "%d rejects", wh->rejects);
    FUZZ_CHECK(!(wh->rejects && wh->emits), "rejected and emitted");
    FUZZ_CHECK(wh->waits <= 1 && !(wh->waits && wh->rejects), "waited %d times", wh->waits);
    FUZZ_CHECK(wh->dedupes <= 1, "dedupe called %d times", wh->dedupes);
}
#endif
