/*
 * fuzz_slack.c — the Slack connector's ingress (every .c of connectors/slack,
 * compiled in) on a fake host (fuzz_host.h): Events API callbacks, slash
 * commands and interactivity payloads, then respond() and late().
 *
 * Input: byte 0 chooses, bit by bit,
 *   0-1  the content type: application/json (Events API), a form (commands,
 *        interactions), text/plain, none;
 *   2    the X-Slack-Signature header is the next input line (else a valid
 *        signature of the body at the fake clock's time is computed);
 *   3    dedupe() answers "seen before";
 *   4    respond()/late() instead of webhook(): the rest is the rule's response
 *        (a JSON object) for a fixed event whose kind bits 5-6 choose (message,
 *        command, interaction, interaction without response_url).
 * The rest is the body. Outgoing HTTP is refused by the fake host, so a
 * response_url post fails at once (and is logged), as when Slack is down.
 * Owns one instance made once.
 */
#include "fuzz_host.h"

#define SECRET "8f742231b10e8888abcd99yyyzzz85a5"
#define TS "1764251660" /* FUZZ_NOW_MS in seconds */

static wh_instance g_inst = {"team"};
static void *g_state;
static json_t *g_events[4];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_state =
        fuzz_instance(&g_inst, "{\"token\": \"xoxb-not-a-token\", \"signing_secret\": \"" SECRET
                               "\", \"bot_user_id\": \"UBOT\"}");
    static const char *const events[4] = {
        "{\"kind\":\"message\",\"data\":{\"channel\":\"C1\",\"text\":\"hi\"}}",
        "{\"kind\":\"command\",\"data\":{\"command\":\"/team\",\"response_url\":"
        "\"https://hooks.slack.com/commands/T1/1/x\"}}",
        "{\"kind\":\"interaction\",\"data\":{\"type\":\"block_actions\",\"response_url\":"
        "\"https://hooks.slack.com/actions/T1/1/x\"}}",
        "{\"kind\":\"interaction\",\"data\":{\"type\":\"view_submission\"}}",
    };
    for (int i = 0; i < 4; i++) {
        g_events[i] = json_loads(events[i], 0, NULL);
        if (!g_events[i]) {
            exit(1);
        }
    }
    return 0;
}

static void run_respond(unsigned flags, const char *text, size_t len)
{
    json_t *response = json_loadb(text, len, 0, NULL);
    if (!response) {
        return; /* the engine only hands over objects: a rule's `respond` or a fallback */
    }
    const json_t *event = g_events[(flags >> 5) & 3];
    wh_reply out = {0};
    int rc = WH_CONNECTOR_ENTRY()->respond(g_state, event, response, &out);
    FUZZ_CHECK(rc == WH_OK, "respond() returned %d", rc);
    FUZZ_CHECK(out.replies == 1 && out.status == 200, "%d replies, status %d", out.replies,
               out.status);
    fh_reply_clear(&out);
    rc = WH_CONNECTOR_ENTRY()->late(g_state, event, response);
    FUZZ_CHECK(rc == WH_OK || rc == WH_ERR_NOT_FOUND || rc == WH_ERR_UNSUPPORTED,
               "late() returned %d", rc);
    json_decref(response);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    unsigned flags = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *body;
    if (flags & 0x10) {
        body = fuzz_text(p, n);
        run_respond(flags, body, n);
        free(body);
        return 0;
    }
    char sig[256];
    if (flags & 4) {
        fuzz_take_line(&p, &n, sig, sizeof sig);
    } else {
        size_t mlen = 3 + strlen(TS) + 1 + n;
        char *msg = malloc(mlen + 1);
        FUZZ_CHECK(msg != NULL, "out of memory");
        snprintf(msg, mlen + 1, "v0:%s:", TS);
        memcpy(msg + 4 + strlen(TS), p, n);
        unsigned char mac[WH_HMAC_MAX];
        size_t mac_len = 0;
        FUZZ_CHECK(wh_hmac("sha256", SECRET, strlen(SECRET), msg, mlen, mac, &mac_len) == WH_OK,
                   "hmac failed");
        free(msg);
        memcpy(sig, "v0=", 3);
        wh_hex(mac, mac_len, sig + 3);
    }
    static const char *const ctypes[4] = {"application/json", "application/x-www-form-urlencoded",
                                          "text/plain", NULL};
    const char *ctype = ctypes[flags & 3];
    body = fuzz_text(p, n);
    wh_request req = fuzz_request(ctype, body, n);
    json_t *sig_j = json_string(sig);
    json_object_set_new(req.headers, "x-slack-signature", sig_j ? sig_j : json_string("v0="));
    json_object_set_new(req.headers, "x-slack-request-timestamp", json_string(TS));
    wh_webhook wh = {0};
    wh.duplicate = (flags & 8) ? 1 : 0;
    int rc = WH_CONNECTOR_ENTRY()->webhook(g_state, &req, &wh);
    fh_check_webhook(&wh, rc);
    FUZZ_CHECK(rc != WH_PENDING, "pending on a request that needs nothing fetched");
    FUZZ_CHECK(wh.rejects || wh.emits || wh.answers || (wh.duplicate && wh.dedupes),
               "no answer at all");
    free(body);
    fuzz_request_free(&req);
    fh_webhook_clear(&wh);
    return 0;
}
