/*
 * fuzz_alexa.c — the Alexa connector (every .c of connectors/alexa, compiled in) on a
 * fake host (fuzz_host.h), with `verify: false`: the certificate chain and
 * signature cannot be forged by a fuzzer, so everything after them is fuzzed
 * directly, and the pure checks before them (certificate URL, base64,
 * timestamps) are fuzzed on their own.
 *
 * Input: byte 0 chooses the mode (low two bits) and flags:
 *   mode 0  webhook(): the rest is the request body (JSON); bit 2: dedupe()
 *           answers "seen before";
 *   mode 1  respond(): the rest is the rule's response (a JSON object), for a
 *           fixed intent event; bit 2: an event without a session;
 *   mode 2/3 ax_url_check(), ax_base64_decode() and ax_parse_timestamp() on the
 *            rest (as text).
 * Seeds carry request timestamps at the fake clock's time (FUZZ_NOW_MS).
 * Owns one instance made once.
 */
#include "fuzz_host.h"

#include "../../connectors/alexa/alexa_verify.h"

#define SKILL "amzn1.ask.skill.00000000-0000-0000-0000-000000000000"

static wh_instance g_inst = {"alexa"};
static void *g_state;
static json_t *g_event, *g_event_nosession;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_state = fuzz_instance(&g_inst, "{\"skill_id\": \"" SKILL "\", \"verify\": false,"
                                     " \"users\": {\"amzn1.ask.account.ANA\": \"Ana\"}}");
    g_event = json_loads(
        "{\"id\":\"0123456789abcdef0123456789abcdef\",\"time\":\"2025-11-27T13:54:20.123Z\","
        "\"source\":\"alexa\",\"kind\":\"intent\",\"data\":{\"request\":{\"type\":"
        "\"IntentRequest\"},\"session\":{\"id\":\"s1\",\"new\":false,\"attributes\":"
        "{\"count\":2,\"topic\":\"Q3\"}},\"intent\":{\"name\":\"GetFeedbackIntent\"}}}",
        0, NULL);
    g_event_nosession = json_deep_copy(g_event);
    json_object_del(json_object_get(g_event_nosession, "data"), "session");
    if (!g_event || !g_event_nosession) {
        exit(1);
    }
    return 0;
}

static void run_webhook(const char *body, size_t len, int duplicate)
{
    wh_request req = fuzz_request("application/json", body, len);
    wh_webhook wh = {0};
    wh.duplicate = duplicate;
    int rc = WH_CONNECTOR_ENTRY()->webhook(g_state, &req, &wh);
    fh_check_webhook(&wh, rc);
    FUZZ_CHECK(rc != WH_PENDING, "pending without a certificate to fetch");
    FUZZ_CHECK(wh.rejects || wh.emits || (wh.duplicate && wh.dedupes), "no answer at all");
    FUZZ_CHECK(!wh.emits || wh.waits || wh.answers, "an event without wait() or answer()");
    fuzz_request_free(&req);
    fh_webhook_clear(&wh);
}

static void run_respond(const char *text, size_t len, int no_session)
{
    json_t *response = json_loadb(text, len, 0, NULL);
    if (!response) {
        return; /* the engine only hands over objects: a rule's `respond` or a fallback */
    }
    wh_reply out = {0};
    int rc = WH_CONNECTOR_ENTRY()->respond(g_state, no_session ? g_event_nosession : g_event,
                                           response, &out);
    FUZZ_CHECK(rc == WH_OK, "respond() returned %d", rc);
    FUZZ_CHECK(out.replies == 1 && out.status == 200, "%d replies, status %d", out.replies,
               out.status);
    fh_reply_clear(&out);
    json_decref(response);
}

static void run_checks(const char *text, size_t len)
{
    char canon[AX_URL_MAX + 64], why[160];
    if (ax_url_check(text, canon, sizeof canon, why, sizeof why) == 0) {
        FUZZ_CHECK(strncmp(canon, "https://s3.amazonaws.com/echo.api/", 34) == 0,
                   "accepted a URL outside s3.amazonaws.com/echo.api/: %s", canon);
        FUZZ_CHECK(!strstr(canon, "/../") && !strstr(canon, "/./") && !strpbrk(canon, "?#%\\"),
                   "an accepted URL is not normal: %s", canon);
    } else {
        FUZZ_CHECK(why[0] != '\0', "a URL refused without a reason");
    }
    unsigned char raw[AX_SIG_MAX];
    long n = ax_base64_decode(text, len, raw, sizeof raw);
    FUZZ_CHECK(n >= -1 && n <= (long)sizeof raw && (n < 0 || (size_t)n <= len * 3 / 4),
               "base64 decoded %ld bytes from %zu", n, len);
    json_t *ts = json_stringn(text, len);
    int64_t ms;
    if (ts) {
        ax_parse_timestamp(ts, &ms);
        json_decref(ts);
    }
    json_t *num = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    if (num) {
        ax_parse_timestamp(num, &ms);
        json_decref(num);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    unsigned flags = data[0];
    char *rest = fuzz_text(data + 1, size - 1);
    switch (flags & 3) {
    case 0:
        run_webhook(rest, size - 1, (flags & 4) != 0);
        break;
    case 1:
        run_respond(rest, size - 1, (flags & 4) != 0);
        break;
    default:
        run_checks(rest, size - 1);
        break;
    }
    free(rest);
    return 0;
}
