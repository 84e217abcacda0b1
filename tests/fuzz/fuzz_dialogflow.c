/*
 * fuzz_dialogflow.c — the Dialogflow ES connector (every .c of
 * connectors/dialogflow, compiled in) on a fake host (fuzz_host.h).
 *
 * Input: byte 0 chooses, bit by bit,
 *   0    respond() instead of webhook(): the rest is the rule's response (a
 *        JSON object) for a fixed intent event;
 *   1    the instance with credentials (basic auth and an X-Fulfillment-Key
 *        header; the right ones are sent unless bit 2 is set);
 *   2    the Authorization and X-Fulfillment-Key values are the next two
 *        input lines;
 *   3    dedupe() answers "seen before".
 * The rest is the body (a WebhookRequest). Owns two instances made once.
 */
#include "fuzz_host.h"

static wh_instance g_inst = {"assistant"};
static void *g_open, *g_auth;
static json_t *g_event;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_open = fuzz_instance(&g_inst, "{\"users\": {\"u-1\": \"Ana\"}}");
    g_auth =
        fuzz_instance(&g_inst, "{\"username\": \"df\", \"password\": \"s3cret\","
                               " \"header_name\": \"X-Fulfillment-Key\", \"header_value\": \"k1\","
                               " \"user_id_path\": \"originalDetectIntentRequest.payload.uid\"}");
    g_event = json_loads("{\"kind\":\"intent\",\"data\":{\"intent\":{\"name\":\"X\"}}}", 0, NULL);
    if (!g_event) {
        exit(1);
    }
    return 0;
}

/* A header value: as given when it is UTF-8 (the fake keeps headers in JSON), else dropped. */
static void set_header(json_t *headers, const char *name, const char *value)
{
    json_t *v = json_string(value);
    if (v) {
        json_object_set_new(headers, name, v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    unsigned flags = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    void *state = (flags & 2) ? g_auth : g_open;
    char auth[256] = "Basic ZGY6czNjcmV0", key[256] = "k1"; /* base64("df:s3cret") */
    if (!(flags & 1) && (flags & 4)) {
        fuzz_take_line(&p, &n, auth, sizeof auth);
        fuzz_take_line(&p, &n, key, sizeof key);
    }
    char *body = fuzz_text(p, n);

    if (flags & 1) {
        json_t *response = json_loadb(body, n, 0, NULL);
        if (response) { /* the engine only hands over objects */
            wh_reply out = {0};
            int rc = WH_CONNECTOR_ENTRY()->respond(state, g_event, response, &out);
            FUZZ_CHECK(rc == WH_OK, "respond() returned %d", rc);
            FUZZ_CHECK(out.replies == 1 && out.status == 200, "%d replies, status %d", out.replies,
                       out.status);
            fh_reply_clear(&out);
            json_decref(response);
        }
        free(body);
        return 0;
    }

    wh_request req = fuzz_request("application/json", body, n);
    set_header(req.headers, "authorization", auth);
    set_header(req.headers, "x-fulfillment-key", key);
    wh_webhook wh = {0};
    wh.duplicate = (flags & 8) ? 1 : 0;
    int rc = WH_CONNECTOR_ENTRY()->webhook(state, &req, &wh);
    fh_check_webhook(&wh, rc);
    FUZZ_CHECK(rc != WH_PENDING, "pending on a request that needs nothing fetched");
    FUZZ_CHECK(wh.rejects || wh.emits || (wh.duplicate && wh.dedupes), "no answer at all");
    FUZZ_CHECK(!wh.emits || wh.waits, "an intent without wait()");
    free(body);
    fuzz_request_free(&req);
    fh_webhook_clear(&wh);
    return 0;
}
