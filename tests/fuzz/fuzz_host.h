/*
 * fuzz_host.h — the fake host (tests/fakehost.h) set up for the connector
 * targets (fuzz_webhook and the ones for alexa, dialogflow, slack). The
 * connector's .c files are compiled into the target, and its descriptor is
 * reached through WH_CONNECTOR_ENTRY.
 *
 * The fake host checks each answer as the gateway would need it (at most one
 * reject, never after an emit, statuses in range, events with valid kinds and
 * data that encodes as JSON, error codes that are UTF-8; fh_check_webhook()
 * after the call); here a broken check aborts, so libFuzzer saves the input.
 * Setup: a fixed clock (runs reproduce), outgoing HTTP, timers and publishing
 * refused (only ingress is fuzzed), dedupe() answering what wh.duplicate says
 * and remembering nothing, answers counted but their bodies not kept (fewer
 * allocations), WH_FUZZ_VERBOSE printing what was emitted or rejected.
 * Must not: keep a request's data after the call (like a real host); every
 * target frees the answers with fh_webhook_clear() / fh_reply_clear().
 */
#ifndef WH_FUZZ_HOST_H
#define WH_FUZZ_HOST_H
#include "fakehost.h"
#include "fuzz.h"
#include "util.h"
#include "verify.h"

#include <string.h>

const wh_connector *WH_CONNECTOR_ENTRY(void);

/** The fake clock: 2025-11-27T13:54:20.123Z. */
#define FUZZ_NOW_MS 1764251660123LL

/*
 * Create an instance of the compiled-in connector from a JSON config, with
 * the option defaults filled in as the hub does. Exits when init fails: the
 * configs are the target's own, so that is a broken target, not a finding.
 */
static inline void *fuzz_instance(wh_instance *inst, const char *config_json)
{
    fh.now_ms = FUZZ_NOW_MS;
    fh.http_rc = WH_ERR_UNSUPPORTED;
    fh.defer_rc = WH_ERR_UNSUPPORTED;
    fh.publish_rc = WH_ERR_UNSUPPORTED;
    fh.dedupe_off = true;
    fh.counts_only = true;
    fh.verbose = getenv("WH_FUZZ_VERBOSE") != NULL;
    const wh_connector *desc = WH_CONNECTOR_ENTRY();
    void *state = NULL;
    int rc = fh_init(desc, inst, config_json, &state);
    if (rc != WH_OK) {
        fprintf(stderr, "fuzz host: init of %s failed (%d) for %s\n", desc->hdr.name, rc,
                config_json);
        exit(1);
    }
    fh.abort_on_failure = true;
    return state;
}

/* A private NUL-terminated copy of n input bytes, as the host's body is. Ownership: free() it. */
static inline char *fuzz_text(const uint8_t *p, size_t n)
{
    char *text = malloc(n + 1);
    FUZZ_CHECK(text != NULL, "out of memory");
    memcpy(text, p, n);
    text[n] = '\0';
    return text;
}

/*
 * A POST to the instance's hook with `body` (NUL-terminated, `len` bytes) and the
 * content type `ctype`, also sent as the Content-Type header unless NULL. Headers and
 * queries are empty objects the target adds to (lower-case names).
 * Ownership: the body stays the caller's; free the rest with fuzz_request_free().
 */
static inline wh_request fuzz_request(const char *ctype, const char *body, size_t len)
{
    wh_request req = {
        .method = "POST",
        .path = "",
        .ctype = ctype,
        .remote = "127.0.0.1",
        .body = body,
        .body_len = len,
        .headers = json_object(),
        .queries = json_object(),
    };
    if (ctype) {
        json_object_set_new(req.headers, "content-type", json_string(ctype));
    }
    return req;
}

static inline void fuzz_request_free(wh_request *req)
{
    json_decref(req->headers);
    json_decref(req->queries);
}

/* The next line of the input as a C string (cut at '\n' or NUL), at most cap-1 bytes. */
static inline void fuzz_take_line(const uint8_t **p, size_t *n, char *out, size_t cap)
{
    const uint8_t *nl = memchr(*p, '\n', *n);
    size_t len = nl ? (size_t)(nl - *p) : *n;
    size_t copy = len < cap - 1 ? len : cap - 1;
    memcpy(out, *p, copy);
    out[copy] = '\0';
    size_t used = nl ? len + 1 : len;
    *p += used;
    *n -= used;
}
#endif
