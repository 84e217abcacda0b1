/*
 * test_slack.c — the real slack.so, loaded with dlopen and driven through the
 * fake host (tests/fakehost.h) with a test clock, recorded HTTP exchanges
 * answered by hand, and timers run by hand: Slack's published signing vector (read from
 * ../shared/testdata/README.md), bad and stale signatures, url_verification,
 * events (de-duplication, from_self), slash commands, interactions, the
 * answers for waiting and late callers, operations' requests and outcomes,
 * pacing per channel and per method, 429 pauses, and reply polling with
 * pagination, author names and the per-thread poll interval.
 */
#include "fakehost.h"
#include "testlib.h"
#include "util.h"
#include "verify.h"

#include <strings.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static const wh_connector *g_desc;
static wh_instance g_inst = {"team"};
static const char *const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";

static void *instance(const char *config)
{
    void *state = NULL;
    CHECK_INT(fh_init(g_desc, &g_inst, config, &state), WH_OK);
    return state;
}

static void *std_instance(const char *extra)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"token\": \"xoxb-test\", \"signing_secret\": \"%s\", "
             "\"api_base\": \"http://slack.test/api/\"%s%s}",
             SECRET, extra ? ", " : "", extra ? extra : "");
    return instance(cfg);
}

static int init_rc(const char *config)
{
    return fh_init_rc(g_desc, &g_inst, config);
}

static void sign(const char *secret, const char *ts, const char *body, char out[80])
{
    size_t n = strlen(ts) + strlen(body) + 5;
    char *base = malloc(n);
    snprintf(base, n, "v0:%s:%s", ts, body);
    unsigned char mac[WH_HMAC_MAX];
    size_t len = 0;
    wh_hmac("sha256", secret, strlen(secret), base, strlen(base), mac, &len);
    free(base);
    strcpy(out, "v0=");
    wh_hex(mac, len, out + 3);
}

/* Run webhook() on a request signed now (or with the given ts/sig when not NULL). */
static int deliver(void *s, wh_webhook *wh, const char *ctype, const char *body, const char *ts,
                   const char *sig)
{
    char tsbuf[32], sigbuf[80];
    if (!ts) {
        snprintf(tsbuf, sizeof tsbuf, "%lld", (long long)(fh.now_ms / 1000));
        ts = tsbuf;
    }
    if (!sig) {
        sign(SECRET, ts, body, sigbuf);
        sig = sigbuf;
    }
    wh_request r = {
        .ctype = ctype, .body = body, .body_len = strlen(body), .headers = json_object()};
    json_object_set_new(r.headers, "content-type", json_string(ctype));
    if (*ts) {
        json_object_set_new(r.headers, "x-slack-request-timestamp", json_string(ts));
    }
    if (*sig) {
        json_object_set_new(r.headers, "x-slack-signature", json_string(sig));
    }
    fh_webhook_clear(wh);
    int rc = g_desc->webhook(s, &r, wh);
    json_decref(r.headers);
    return rc;
}

static const char *dstr(const json_t *data, const char *key)
{
    return json_string_value(json_object_get(data, key));
}

/* Answer exchange ex: status, optional "Name: value" header, body. */
static void answer_ex(fh_exchange *ex, int status, const char *header, const char *body)
{
    json_t *hdrs = json_object();
    if (header) {
        const char *colon = strchr(header, ':');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(colon - header), header);
        for (char *p = name; *p; p++) {
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        }
        json_object_set_new(hdrs, name, json_string(colon + 2));
    }
    json_object_set_new(hdrs, "content-type", json_string("application/json; charset=utf-8"));
    wh_http_response r = {
        status, status ? NULL : "Connection refused", 0, body ? body : "", body ? strlen(body) : 0,
        hdrs, 0};
    fh_http_respond(ex, &r);
    json_decref(hdrs);
}

/* Answer the oldest pending exchange. */
static void answer(int status, const char *header, const char *body)
{
    if (fh_http_pending_count() == 0) {
        fprintf(stderr, "answer(): no pending exchange\n");
        wh_test_failures++;
        return;
    }
    answer_ex(fh_http_pending(0), status, header, body);
}

/* The path and query of the pending exchange i, after the api_base. */
static const char *api_path(int i)
{
    const char *base = "http://slack.test/api";
    return strncmp(fh_http_pending(i)->url, base, strlen(base)) == 0
               ? fh_http_pending(i)->url + strlen(base)
               : fh_http_pending(i)->url;
}

/* The index of the oldest pending exchange whose path (after api_base) starts with prefix. */
static int pending_at(const char *prefix)
{
    for (int i = 0; i < fh_http_pending_count(); i++) {
        if (strncmp(api_path(i), prefix, strlen(prefix)) == 0) {
            return i;
        }
    }
    return -1;
}

/* Answer the oldest pending exchange to a path starting with prefix (a failure when none). */
static void answer_path(const char *prefix, int status, const char *header, const char *body)
{
    int i = pending_at(prefix);
    if (i < 0) {
        fprintf(stderr, "answer_path(): no pending exchange to %s\n", prefix);
        wh_test_failures++;
        return;
    }
    answer_ex(fh_http_pending(i), status, header, body);
}

static const wh_operation *op(const char *name)
{
    for (const wh_operation *o = g_desc->operations; o->name; o++) {
        if (strcmp(o->name, name) == 0) {
            return o;
        }
    }
    return NULL;
}

static void reset_call(wh_call *c)
{
    fh_call_clear(c);
    c->key = "k1";
}

static int start(void *s, const char *opname, wh_call *call, const char *args)
{
    json_t *a = json_loads(args, 0, NULL);
    CHECK(a != NULL);
    json_t *keep = call->cursor;
    call->cursor = NULL;
    reset_call(call);
    call->cursor = keep;
    int rc = op(opname)->start(s, call, a);
    json_decref(a);
    return rc;
}

static json_t *body_json(int i)
{
    return fh_http_pending(i)->body ? json_loads(fh_http_pending(i)->body, 0, NULL) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Slack's published vector, read from the shared test data                  */

typedef struct vector {
    char secret[128], ts[32], sig[128];
    char *body;
} vector;

/* The backticked spans of the Slack paragraph: secret, timestamp, body, …, signature. */
static bool read_vector(vector *v)
{
    char *text = wh_read_file(WH_SHARED_DIR "/testdata/README.md", 1 << 20, NULL);
    if (!text) {
        return false;
    }
    bool ok = false;
    char *start = strstr(text, "Slack request signing");
    char *end = start ? strstr(start, "GitHub webhook signing") : NULL;
    char *spans[8];
    int n = 0;
    for (char *p = start; p && p < end && n < 8;) {
        char *a = strchr(p, '`');
        char *b = a ? strchr(a + 1, '`') : NULL;
        if (!a || !b || b > end) {
            break;
        }
        *b = '\0';
        spans[n++] = a + 1;
        p = b + 1;
    }
    if (n >= 6) {
        snprintf(v->secret, sizeof v->secret, "%s", spans[0]);
        snprintf(v->ts, sizeof v->ts, "%s", spans[1]);
        v->body = strdup(spans[2]);
        snprintf(v->sig, sizeof v->sig, "%s", spans[5]);
        ok = strncmp(v->sig, "v0=", 3) == 0 && strcmp(spans[4], "X-Slack-Signature") == 0;
    }
    free(text);
    return ok;
}

static void test_descriptor(void)
{
    CHECK_INT(g_desc->hdr.abi_major, WH_ABI_MAJOR);
    CHECK_STR(g_desc->hdr.name, "slack");
    CHECK(g_desc->webhook && g_desc->respond && g_desc->late);
    int secrets = 0;
    for (const wh_option *o = g_desc->options; o->name; o++) {
        if (strcmp(o->name, "token") == 0 || strcmp(o->name, "signing_secret") == 0) {
            secrets += (o->flags & WH_OPT_SECRET) && (o->flags & WH_OPT_REQUIRED);
        }
        if (o->def) {
            json_t *d = json_loads(o->def, JSON_DECODE_ANY, NULL);
            CHECK(d != NULL);
            json_decref(d);
        }
    }
    CHECK_INT(secrets, 2);
    CHECK(op("post_message") && op("update_message") && op("add_reaction"));
    CHECK(op("thread_replies") && (op("thread_replies")->flags & WH_OP_POLL));
    CHECK(op("channel_history") && (op("channel_history")->flags & WH_OP_POLL));
    CHECK(!(op("post_message")->flags & WH_OP_POLL));
}

static void test_init(void)
{
    fh.errors = 0;
    CHECK_INT(init_rc("{\"token\": \"\", \"signing_secret\": \"s\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"token\": \"t\", \"signing_secret\": \"\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"token\": \"t\\r\\nX: y\", \"signing_secret\": \"s\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"token\": \"t\", \"signing_secret\": \"s\", \"api_base\": \"ftp://x\"}"),
              WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"token\": \"t\", \"signing_secret\": \"s\", \"deadline_ms\": 3000}"),
              WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"token\": \"t\", \"signing_secret\": \"s\", \"max_skew\": 0}"),
              WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"token\": \"t\", \"signing_secret\": \"s\", "
                      "\"post_per_channel_per_s\": 0}"),
              WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"token\": \"t\", \"signing_secret\": \"s\", \"page_limit\": 0}"),
              WH_ERR_CONFIG);
    CHECK_INT(fh.errors, 8);
    CHECK(strstr(fh.log, "page_limit") != NULL);
    CHECK_INT(init_rc("{\"token\": \"t\", \"signing_secret\": \"s\"}"), WH_OK);
    g_desc->destroy(NULL);
}

/* ------------------------------------------------------------------------ */
/* Ingress                                                                   */

static void test_signing_vector(void)
{
    vector v = {0};
    CHECK(read_vector(&v));
    if (!v.body) {
        return;
    }
    CHECK_STR(v.secret, SECRET);
    fh.now_ms = strtoll(v.ts, NULL, 10) * 1000 + 200; /* the test clock: when Slack signed it */
    void *s = std_instance(NULL);
    wh_webhook wh = {0};
    const char *form = "application/x-www-form-urlencoded";

    /* Slack's published request passes and is a slash command. */
    CHECK_INT(deliver(s, &wh, form, v.body, v.ts, v.sig), WH_OK);
    CHECK_INT(wh.rejects, 0);
    CHECK_INT(wh.emits, 1);
    CHECK_STR(wh.kind, "command");
    CHECK_STR(dstr(wh.data, "command"), "/webhook-collect");
    CHECK_STR(dstr(wh.data, "text"), "");
    CHECK_STR(dstr(wh.data, "user"), "U2CERLKJA");
    CHECK_STR(dstr(wh.data, "user_name"), "roadrunner");
    CHECK_STR(dstr(wh.data, "channel"), "G8PSS9T3V");
    CHECK_STR(dstr(wh.data, "team"), "T1DC2JH3J");
    CHECK_STR(dstr(wh.data, "response_url"),
              "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN");
    CHECK(json_object_get(json_object_get(wh.data, "raw"), "token") == NULL);
    CHECK_STR(dstr(json_object_get(wh.data, "raw"), "trigger_id"),
              "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c");
    /* the caller waits for the rule, with an empty fallback */
    CHECK_INT(wh.waits, 1);
    CHECK_INT(wh.deadline_ms, 2500);
    CHECK(json_is_object(wh.fallback) && json_object_size(wh.fallback) == 0);

    /* Upper-case hex is the same signature. */
    char upper[128];
    snprintf(upper, sizeof upper, "%s", v.sig);
    for (char *p = upper + 3; *p; p++) {
        *p = (char)((*p >= 'a' && *p <= 'f') ? *p - 32 : *p);
    }
    deliver(s, &wh, form, v.body, v.ts, upper);
    CHECK_INT(wh.emits, 1);

    /* One changed byte of body, timestamp or signature: 401, nothing emitted. */
    char *tampered = strdup(v.body);
    tampered[strlen(tampered) - 1] ^= 1;
    deliver(s, &wh, form, tampered, v.ts, v.sig);
    CHECK_INT(wh.status, 401);
    CHECK_STR(wh.error, "bad_signature");
    CHECK_INT(wh.emits, 0);
    free(tampered);
    deliver(s, &wh, form, v.body, "1531420619", v.sig);
    CHECK_STR(wh.error, "bad_signature");
    char wrong[128];
    snprintf(wrong, sizeof wrong, "%s", v.sig);
    wrong[10] = wrong[10] == '0' ? '1' : '0';
    deliver(s, &wh, form, v.body, v.ts, wrong);
    CHECK_STR(wh.error, "bad_signature");
    CHECK_INT(wh.emits, 0);

    /* Malformed signatures and timestamps. */
    const char *bad_sigs[] = {"v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                              "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                              "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b50",
                              "v0=zz114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                              "v0="};
    for (size_t i = 0; i < sizeof bad_sigs / sizeof bad_sigs[0]; i++) {
        deliver(s, &wh, form, v.body, v.ts, bad_sigs[i]);
        CHECK_INT(wh.status, 401);
        CHECK_STR(wh.error, "bad_signature");
    }
    deliver(s, &wh, form, v.body, "", v.sig);
    CHECK_STR(wh.error, "missing_signature");
    deliver(s, &wh, form, v.body, v.ts, "");
    CHECK_STR(wh.error, "missing_signature");
    deliver(s, &wh, form, v.body, "15314x0618", v.sig);
    CHECK_STR(wh.error, "bad_timestamp");
    deliver(s, &wh, form, v.body, "-1531420618", v.sig);
    CHECK_STR(wh.error, "bad_timestamp");

    /* Stale: the same authentic request more than max_skew (300 s) later, or earlier. */
    fh.now_ms += 300 * 1000;
    deliver(s, &wh, form, v.body, v.ts, v.sig);
    CHECK_INT(wh.emits, 1); /* 300 s is still inside */
    fh.now_ms += 1000;
    deliver(s, &wh, form, v.body, v.ts, v.sig);
    CHECK_INT(wh.status, 401);
    CHECK_STR(wh.error, "stale_timestamp");
    CHECK_INT(wh.emits, 0);
    fh.now_ms = strtoll(v.ts, NULL, 10) * 1000 - 302 * 1000;
    deliver(s, &wh, form, v.body, v.ts, v.sig);
    CHECK_STR(wh.error, "stale_timestamp");
    g_desc->destroy(s);

    /* A narrower window is configurable. */
    fh.now_ms = strtoll(v.ts, NULL, 10) * 1000 + 11 * 1000;
    s = std_instance("\"max_skew\": 10");
    deliver(s, &wh, form, v.body, v.ts, v.sig);
    CHECK_STR(wh.error, "stale_timestamp");
    g_desc->destroy(s);

    /* Another secret: the vector does not verify. */
    fh.now_ms = strtoll(v.ts, NULL, 10) * 1000;
    s = instance("{\"token\": \"t\", \"signing_secret\": \"other\"}");
    deliver(s, &wh, form, v.body, v.ts, v.sig);
    CHECK_STR(wh.error, "bad_signature");
    g_desc->destroy(s);
    fh_webhook_clear(&wh);
    free(v.body);
}

static void test_events(void)
{
    fh.now_ms = 1700000000000LL;
    void *s = std_instance(NULL);
    wh_webhook wh = {0};
    const char *json = "application/json";

    /* url_verification: the challenge, nothing published. */
    deliver(
        s, &wh, json,
        "{\"token\":\"x\",\"challenge\":\"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P\","
        "\"type\":\"url_verification\"}",
        NULL, NULL);
    CHECK_INT(wh.answers, 1);
    CHECK_INT(wh.status, 200);
    CHECK_STR(wh.answer_ctype, "application/json");
    CHECK_STR(wh.answer_body,
              "{\"challenge\":\"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P\"}");
    CHECK_INT(wh.emits, 0);

    /* A thread reply: kind = the inner type, de-duplicated by event_id. */
    const char *msg =
        "{\"token\":\"x\",\"team_id\":\"T1\",\"api_app_id\":\"A1\",\"type\":\"event_callback\","
        "\"event_id\":\"Ev01\",\"event_time\":1700000000,"
        "\"authorizations\":[{\"team_id\":\"T1\",\"user_id\":\"UBOT\",\"is_bot\":true}],"
        "\"event\":{\"type\":\"message\",\"channel\":\"C1\",\"user\":\"U1\",\"text\":\"great, "
        "send the slides\",\"ts\":\"1700000001.000200\",\"thread_ts\":\"1700000000.000100\","
        "\"channel_type\":\"channel\"}}";
    /* U1 is not named yet: the event waits (on the delivery thread) for users.info */
    CHECK_INT(deliver(s, &wh, json, msg, NULL, NULL), WH_PENDING);
    CHECK_INT(wh.rejects, 0);
    CHECK_INT(wh.dedupes, 1);
    CHECK_STR(wh.dedupe_id, "Ev01");
    CHECK_INT(wh.emits, 0);
    CHECK_INT(fh_http_pending_count(), 0);
    fh_advance(0);
    /* …and auth.test starts in the background (U1 is not our bot user UBOT: the event does
     * not wait for it) */
    CHECK_INT(fh_http_pending_count(), 2);
    CHECK(pending_at("/users.info?user=U1") >= 0);
    CHECK(pending_at("/auth.test") >= 0);
    CHECK_INT(wh.emits, 0);
    answer_path("/users.info", 200, NULL,
                "{\"ok\":true,\"user\":{\"id\":\"U1\",\"profile\":{\"display_name\":"
                "\"Ben\"}}}");
    CHECK_INT(wh.emits, 1);
    CHECK_INT(wh.dones, 1);
    CHECK_STR(dstr(wh.data, "author"), "Ben");
    answer_path("/auth.test", 200, NULL, "{\"ok\":true,\"user_id\":\"UBOT\",\"bot_id\":\"BBOT\"}");
    CHECK_INT(fh_http_pending_count(), 0);
    fh_advance(1000); /* the lookup's deadline passes: nothing more happens */
    CHECK_INT(wh.emits, 1);
    CHECK_INT(wh.dones, 1);
    CHECK_INT(fh_timer_count(), 0);
    CHECK_STR(wh.kind, "message");
    CHECK_STR(dstr(wh.data, "channel"), "C1");
    CHECK_STR(dstr(wh.data, "user"), "U1");
    CHECK_STR(dstr(wh.data, "text"), "great, send the slides");
    CHECK_STR(dstr(wh.data, "mrkdwn"), "great, send the slides");
    CHECK_STR(dstr(wh.data, "ts"), "1700000001.000200");
    CHECK_STR(dstr(wh.data, "thread_ts"), "1700000000.000100");
    CHECK_STR(dstr(wh.data, "team"), "T1");
    CHECK_STR(dstr(wh.data, "event_id"), "Ev01");
    CHECK(json_is_false(json_object_get(wh.data, "from_self")));
    CHECK_STR(dstr(json_object_get(wh.data, "raw"), "text"), "great, send the slides");
    CHECK_INT(wh.waits, 0);
    CHECK_INT(wh.answers, 0); /* the hub's default answer, after journaling */

    /* Slack's retry of the same event_id: acknowledged, not published again. */
    deliver(s, &wh, json, msg, NULL, NULL);
    CHECK_INT(wh.dedupes, 1);
    CHECK_INT(wh.emits, 0);
    CHECK_INT(wh.rejects, 0);

    /* The bot's own message (its user id learned from `authorizations`): from_self. */
    deliver(
        s, &wh, json,
        "{\"team_id\":\"T1\",\"type\":\"event_callback\",\"event_id\":\"Ev02\","
        "\"event\":{\"type\":\"message\",\"channel\":\"C1\",\"user\":\"UBOT\",\"bot_id\":\"B9\","
        "\"text\":\"Ana is presenting\",\"ts\":\"1700000002.000100\"}}",
        NULL, NULL);
    CHECK_INT(wh.emits, 1);
    CHECK(json_is_true(json_object_get(wh.data, "from_self")));
    CHECK(json_is_null(json_object_get(wh.data, "thread_ts")));
    CHECK_STR(dstr(wh.data, "bot_id"), "B9");
    /* …and one from the same app (api_app_id), even without our user id */
    deliver(s, &wh, json,
            "{\"team_id\":\"T1\",\"type\":\"event_callback\",\"event_id\":\"Ev03\","
            "\"event\":{\"type\":\"message\",\"subtype\":\"bot_message\",\"channel\":\"C1\","
            "\"app_id\":\"A1\",\"text\":\"x\",\"ts\":\"1700000003.000100\"}}",
            NULL, NULL);
    CHECK(json_is_true(json_object_get(wh.data, "from_self")));
    CHECK_STR(dstr(wh.data, "subtype"), "bot_message");

    /* reaction_added: channel and ts of the item. Naming U2 takes too long: the event
     * goes out at LOOKUP_WAIT_MS with the user id only; the late name is cached. */
    CHECK_INT(
        deliver(s, &wh, json,
                "{\"team_id\":\"T1\",\"type\":\"event_callback\",\"event_id\":\"Ev04\","
                "\"event\":{\"type\":\"reaction_added\",\"user\":\"U2\",\"reaction\":\"thumbsup\","
                "\"item_user\":\"U1\",\"item\":{\"type\":\"message\",\"channel\":\"C7\","
                "\"ts\":\"1700000001.000200\"},\"event_ts\":\"1700000004.000100\"}}",
                NULL, NULL),
        WH_PENDING);
    fh_advance(0);
    CHECK_INT(fh_http_pending_count(), 1);
    fh_advance(999);
    CHECK_INT(wh.emits, 0);
    fh_advance(1);
    CHECK_INT(wh.emits, 1);
    CHECK_INT(wh.dones, 1);
    CHECK(json_object_get(wh.data, "author") == NULL);
    answer(200, NULL, "{\"ok\":true,\"user\":{\"id\":\"U2\",\"real_name\":\"Chen Li\"}}");
    CHECK_INT(wh.emits, 1);
    CHECK_INT(wh.dones, 1);
    CHECK_STR(wh.kind, "reaction_added");
    CHECK_STR(dstr(wh.data, "channel"), "C7");
    CHECK_STR(dstr(wh.data, "ts"), "1700000001.000200");
    CHECK_STR(dstr(wh.data, "reaction"), "thumbsup");
    CHECK(json_is_null(json_object_get(wh.data, "text")));

    /* message_changed: the edited message's user, text and ts (U1 is named by now); the
     * outer ts is the edit's, so an await does not store the edit as a second reply */
    deliver(s, &wh, json,
            "{\"team_id\":\"T1\",\"type\":\"event_callback\",\"event_id\":\"Ev05\","
            "\"event\":{\"type\":\"message\",\"subtype\":\"message_changed\",\"channel\":\"C1\","
            "\"hidden\":true,\"ts\":\"1700000009.000300\",\"event_ts\":\"1700000009.000300\","
            "\"message\":{\"type\":\"message\",\"user\":\"U1\",\"text\":\"great, send the "
            "slides &amp; <@U2> please\",\"ts\":\"1700000001.000200\",\"thread_ts\":\"1700000000.000100\","
            "\"edited\":{\"user\":\"U1\",\"ts\":\"1700000009.000000\"}},"
            "\"previous_message\":{\"type\":\"message\",\"user\":\"U1\",\"text\":\"great, "
            "send the slides\",\"ts\":\"1700000001.000200\"}}}",
            NULL, NULL);
    CHECK_INT(wh.emits, 1);
    CHECK_STR(dstr(wh.data, "subtype"), "message_changed");
    CHECK_STR(dstr(wh.data, "ts"), "1700000001.000200");
    CHECK_STR(dstr(wh.data, "thread_ts"), "1700000000.000100");
    CHECK_STR(dstr(wh.data, "user"), "U1");
    CHECK_STR(dstr(wh.data, "text"), "great, send the slides & @Chen Li please");
    CHECK_STR(dstr(wh.data, "mrkdwn"), "great, send the slides &amp; <@U2> please");    CHECK_STR(dstr(json_object_get(wh.data, "raw"), "ts"), "1700000009.000300");

    /* a mention id too long to be a user id is said whole: never cut inside a character
     * (fuzz_slack: the cut made the text invalid UTF-8, and the request a 500) */
    deliver(s, &wh, json,
            "{\"team_id\":\"T1\",\"type\":\"event_callback\",\"event_id\":\"Ev07\","
            "\"event\":{\"type\":\"message\",\"channel\":\"C1\",\"user\":\"U1\","
            "\"ts\":\"1700000010.000300\",\"text\":\"hi <@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aaaaaaaaaaaaaaaaaaaaaaaaa\u00e9!>\"}}",
            NULL, NULL);
    CHECK_STR(dstr(wh.data, "text"),
              "hi @aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaé!");

    /* Bad events: 400, never a crash. */
    const char *bad[] = {
        "not json",
        "[1,2]",
        "{\"type\":\"event_callback\",\"event\":{\"type\":\"message\"}}",
        "{\"type\":\"event_callback\",\"event_id\":\"E\",\"event\":{\"type\":\"a b\"}}",
        "{\"type\":\"event_callback\",\"event_id\":\"E\",\"event\":\"x\"}",
        "{\"type\":\"url_verification\"}",
        "{\"type\":\"something_else\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        deliver(s, &wh, json, bad[i], NULL, NULL);
        CHECK_INT(wh.status, 400);
        CHECK_INT(wh.emits, 0);
    }
    deliver(s, &wh, "text/plain", "x", NULL, NULL);
    CHECK_INT(wh.status, 415);
    /* a bad body with a bad signature is a 401: nothing is read before verification */
    deliver(s, &wh, json, "not json", NULL, "v0=00");
    CHECK_INT(wh.status, 401);
    /* app_rate_limited: acknowledged with a warning */
    fh.warns = 0;
    deliver(s, &wh, json, "{\"type\":\"app_rate_limited\",\"minute_rate_limited\":1}", NULL, NULL);
    CHECK_INT(wh.answers, 1);
    CHECK_INT(fh.warns, 1);
    fh_webhook_clear(&wh);
    g_desc->destroy(s);
}

static void test_interaction_and_answers(void)
{
    fh.now_ms = 1700000000000LL;
    void *s = std_instance("\"deadline_ms\": 1200");
    wh_webhook wh = {0};
    const char *form = "application/x-www-form-urlencoded";

    /* A button click: the JSON in `payload` (form-encoded). */
    const char *payload =
        "{\"type\":\"block_actions\",\"token\":\"x\",\"user\":{\"id\":\"U1\",\"username\":\"ana\"},"
        "\"team\":{\"id\":\"T1\"},\"channel\":{\"id\":\"C1\"},\"container\":{\"type\":"
        "\"message\",\"message_ts\":\"1700000000.000100\",\"channel_id\":\"C1\"},"
        "\"response_url\":\"http://slack.test/actions/1\",\"trigger_id\":\"tr1\","
        "\"actions\":[{\"action_id\":\"approve\",\"block_id\":\"b1\",\"value\":\"yes\","
        "\"type\":\"button\"}]}";
    wh_buf enc = {0};
    wh_buf_puts(&enc, "payload=");
    for (const char *p = payload; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) {
            wh_buf_append(&enc, p, 1);
        } else {
            wh_buf_printf(&enc, "%%%02X", (unsigned char)*p);
        }
    }
    CHECK_INT(deliver(s, &wh, form, enc.data, NULL, NULL), WH_OK);
    wh_buf_free(&enc);
    CHECK_INT(wh.emits, 1);
    CHECK_STR(wh.kind, "interaction");
    CHECK_STR(dstr(wh.data, "type"), "block_actions");
    CHECK_STR(dstr(wh.data, "action_id"), "approve");
    CHECK_STR(dstr(wh.data, "value"), "yes");
    CHECK_STR(dstr(wh.data, "user"), "U1");
    CHECK_STR(dstr(wh.data, "channel"), "C1");
    CHECK_STR(dstr(wh.data, "message_ts"), "1700000000.000100");
    CHECK_STR(dstr(wh.data, "response_url"), "http://slack.test/actions/1");
    CHECK(json_object_get(json_object_get(wh.data, "raw"), "token") == NULL);
    CHECK_INT(wh.waits, 1);
    CHECK_INT(wh.deadline_ms, 1200);

    /* A form that is neither a command nor an interaction; a payload that is not JSON. */
    deliver(s, &wh, form, "a=b", NULL, NULL);
    CHECK_INT(wh.status, 400);
    CHECK_STR(wh.error, "bad_form");
    deliver(s, &wh, form, "payload=%7Bnope", NULL, NULL);
    CHECK_STR(wh.error, "bad_payload");
    deliver(s, &wh, form, "command=%zz", NULL, NULL);
    CHECK_STR(wh.error, "bad_form");

    /* respond(): a command's answer in the body, ephemeral unless told otherwise. */
    json_t *cmd_event = json_pack("{s:s, s:{s:s, s:s}}", "kind", "command", "data", "command",
                                  "/standup", "response_url", "http://slack.test/commands/9");
    wh_reply out = {0};
    json_t *resp = json_pack("{s:s}", "text", "Noted, Ana");
    CHECK_INT(g_desc->respond(s, cmd_event, resp, &out), WH_OK);
    CHECK_INT(out.status, 200);
    CHECK_STR(out.ctype, "application/json");
    CHECK_STR(out.body, "{\"response_type\":\"ephemeral\",\"text\":\"Noted, Ana\"}");
    json_object_set_new(resp, "ephemeral", json_false());
    g_desc->respond(s, cmd_event, resp, &out);
    CHECK_STR(out.body, "{\"response_type\":\"in_channel\",\"text\":\"Noted, Ana\"}");
    /* the fallback (deadline passed, or no rule): an empty 200 */
    json_t *empty = json_object();
    g_desc->respond(s, cmd_event, empty, &out);
    CHECK_INT(out.status, 200);
    CHECK_STR(out.body, "");
    CHECK_INT(fh_http_pending_count(), 0);

    /* late(): the answer that missed the deadline goes to the response_url. */
    CHECK_INT(g_desc->late(s, cmd_event, resp), WH_OK);
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(fh_http_pending(0)->method, "POST");
    CHECK_STR(fh_http_pending(0)->url, "http://slack.test/commands/9");
    CHECK(fh_http_has_header(fh_http_pending(0), "Content-Type: application/json; charset=utf-8"));
    CHECK_STR(fh_http_pending(0)->body,
              "{\"response_type\":\"in_channel\",\"text\":\"Noted, Ana\"}");
    /* a 503 is retried on a timer, then delivered */
    answer(503, NULL, "busy");
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK_INT(fh_timer_count(), 1);
    fh_advance(1000);
    CHECK_INT(fh_http_pending_count(), 1);
    answer(200, NULL, "ok");
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK_INT(fh_timer_count(), 0);
    /* nothing to say: nothing sent */
    CHECK_INT(g_desc->late(s, cmd_event, empty), WH_OK);
    CHECK_INT(fh_http_pending_count(), 0);

    /* An interaction's message goes to its response_url; the ack is empty. */
    json_t *ia_event = json_pack("{s:s, s:{s:s}}", "kind", "interaction", "data", "response_url",
                                 "http://slack.test/actions/1");
    json_t *ia_resp = json_pack("{s:s, s:b}", "text", "Approved", "replace_original", 1);
    g_desc->respond(s, ia_event, ia_resp, &out);
    CHECK_STR(out.body, "");
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(fh_http_pending(0)->url, "http://slack.test/actions/1");
    CHECK_STR(fh_http_pending(0)->body,
              "{\"response_type\":\"ephemeral\",\"text\":\"Approved\",\"replace_original\":true}");
    answer(200, NULL, "ok");
    /* a view_submission's response_action is the body */
    json_t *ra =
        json_pack("{s:s, s:{s:s}}", "response_action", "errors", "errors", "title", "Too short");
    g_desc->respond(s, ia_event, ra, &out);
    CHECK_STR(out.ctype, "application/json");
    CHECK_STR(out.body, "{\"response_action\":\"errors\",\"errors\":{\"title\":\"Too short\"}}");
    CHECK_INT(fh_http_pending_count(), 0);

    json_decref(ra);
    json_decref(ia_resp);
    json_decref(ia_event);
    json_decref(empty);
    json_decref(resp);
    json_decref(cmd_event);
    fh_reply_clear(&out);
    fh_webhook_clear(&wh);
    g_desc->destroy(s);
}

static void test_ssl_check(void)
{
    fh.now_ms = 1700000000000LL;
    void *s = std_instance(NULL);
    wh_webhook wh = {0};
    const char *form = "application/x-www-form-urlencoded";
    const char *check = "ssl_check=1&token=gIkuvaNzQIHg97ATvDxqgjtO";

    /* Slack checking a slash command URL's certificate, signed: an empty 200, no event. */
    CHECK_INT(deliver(s, &wh, form, check, NULL, NULL), WH_OK);
    CHECK_INT(wh.rejects, 0);
    CHECK_INT(wh.answers, 1);
    CHECK_INT(wh.status, 200);
    CHECK_INT((int)wh.answer_len, 0);
    CHECK_INT(wh.emits, 0);
    CHECK_INT(wh.waits, 0);
    CHECK_INT(wh.dedupes, 0);
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK_INT(fh_timer_count(), 0);
    /* with other fields (Slack sends none): still only the check, as Bolt answers it */
    deliver(s, &wh, form, "ssl_check=1&token=x&command=%2Fstandup&text=hi", NULL, NULL);
    CHECK_INT(wh.status, 200);
    CHECK_INT(wh.emits, 0);
    CHECK_INT(wh.waits, 0);

    /* Verified like every request: unsigned, forged or replayed checks are refused. */
    deliver(s, &wh, form, check, NULL, "");
    CHECK_INT(wh.status, 401);
    CHECK_STR(wh.error, "missing_signature");
    CHECK_INT(wh.answers, 0);
    deliver(s, &wh, form, check, NULL,
            "v0=0000000000000000000000000000000000000000000000000000000000000000");
    CHECK_STR(wh.error, "bad_signature");
    char old[32];
    snprintf(old, sizeof old, "%lld", (long long)(fh.now_ms / 1000 - 301));
    deliver(s, &wh, form, check, old, NULL);
    CHECK_STR(wh.error, "stale_timestamp");
    CHECK_INT(wh.answers, 0);
    /* only ssl_check=1 is a check */
    deliver(s, &wh, form, "ssl_check=0&token=x", NULL, NULL);
    CHECK_INT(wh.status, 400);
    CHECK_STR(wh.error, "bad_form");
    fh_webhook_clear(&wh);
    g_desc->destroy(s);
}

/* An event_callback with a message from bot `bot_id` that has nothing but its bot id. */
static const char *bot_post(char *buf, size_t size, const char *event_id, const char *bot_id,
                            bool authorizations)
{
    snprintf(buf, size,
             "{\"team_id\":\"T1\",\"api_app_id\":\"A1\",\"type\":\"event_callback\","
             "\"event_id\":\"%s\",%s\"event\":{\"type\":\"message\",\"subtype\":\"bot_message\","
             "\"channel\":\"C1\",\"bot_id\":\"%s\",\"text\":\"my own post\","
             "\"ts\":\"1700000005.000100\",\"thread_ts\":\"1700000000.000100\"}}",
             event_id,
             authorizations ? "\"authorizations\":[{\"team_id\":\"T1\",\"user_id\":\"UBOT\","
                              "\"is_bot\":true}],"
                            : "",
             bot_id);
    return buf;
}

static void test_own_bot_id(void)
{
    fh.now_ms = 1700000000000LL;
    const char *json = "application/json";
    const char *auth_ok =
        "{\"ok\":true,\"user_id\":\"UBOT\",\"bot_id\":\"BBOT\",\"team_id\":\"T1\"}";
    char ev[1024];
    int sent = fh_http_count();
    void *s = std_instance(NULL);
    /* init talks to nobody: start-up never waits for Slack, nor fails without it */
    CHECK_INT(fh_http_count(), sent);
    CHECK_INT(fh_timer_count(), 0);
    wh_webhook wh = {0};

    /* Our bot's post that carries only its bot id (the envelope's authorizations give the
     * bot user, not the bot id): held until auth.test says which bot is ours. */
    CHECK_INT(deliver(s, &wh, json, bot_post(ev, sizeof ev, "EvB1", "BBOT", true), NULL, NULL),
              WH_PENDING);
    CHECK_INT(wh.emits, 0);
    fh_advance(0);
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(fh_http_pending(0)->method, "POST");
    CHECK_STR(api_path(0), "/auth.test");
    CHECK(fh_http_has_header(fh_http_pending(0), "Authorization: Bearer xoxb-test"));
    CHECK_INT(wh.emits, 0);
    answer(200, NULL, auth_ok);
    CHECK_INT(wh.emits, 1);
    CHECK_INT(wh.dones, 1);
    CHECK(json_is_true(json_object_get(wh.data, "from_self")));
    CHECK_STR(dstr(wh.data, "bot_id"), "BBOT");
    CHECK_INT(fh_http_pending_count(), 0); /* a bot is not looked up with users.info */
    fh_advance(1000);
    CHECK_INT(wh.emits, 1);
    CHECK_INT(fh_timer_count(), 0);
    /* known now: the next goes out at once; another bot's post is not ours */
    CHECK_INT(deliver(s, &wh, json, bot_post(ev, sizeof ev, "EvB2", "BBOT", true), NULL, NULL),
              WH_OK);
    CHECK(json_is_true(json_object_get(wh.data, "from_self")));
    CHECK_INT(deliver(s, &wh, json, bot_post(ev, sizeof ev, "EvB3", "BOTHER", false), NULL, NULL),
              WH_OK);
    CHECK(json_is_false(json_object_get(wh.data, "from_self")));
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK_INT(fh_timer_count(), 0);
    /* a poll does not ask again, and leaves our bot-id-only post out */
    wh_call call = {0};
    start(s, "thread_replies", &call, "{\"channel\": \"C1\", \"ts\": \"1700000000.000100\"}");
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK(strncmp(api_path(0), "/conversations.replies?", 23) == 0);
    answer(200, NULL,
           "{\"ok\":true,\"messages\":[{\"ts\":\"1700000000.000100\",\"user\":\"U1\"},"
           "{\"ts\":\"1700000005.000100\",\"subtype\":\"bot_message\",\"bot_id\":\"BBOT\","
           "\"text\":\"my own post\",\"thread_ts\":\"1700000000.000100\"},"
           "{\"ts\":\"1700000006.000100\",\"subtype\":\"bot_message\",\"bot_id\":\"BOTHER\","
           "\"text\":\"theirs\",\"thread_ts\":\"1700000000.000100\"}]}");
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_INT(json_array_size(json_object_get(call.result, "items")), 1);
    CHECK_STR(dstr(json_array_get(json_object_get(call.result, "items"), 0), "text"), "theirs");
    CHECK_INT(fh_http_pending_count(), 0);
    reset_call(&call);
    g_desc->destroy(s);

    /* Slack unreachable: nothing fails; the event goes out with what is known (no
     * authorizations here: from_self false), and auth.test waits out a pause. */
    fh.now_ms = 1700000000000LL;
    s = std_instance(NULL);
    fh.warns = 0;
    CHECK_INT(deliver(s, &wh, json, bot_post(ev, sizeof ev, "EvC1", "BBOT", false), NULL, NULL),
              WH_PENDING);
    fh_advance(0);
    CHECK_STR(api_path(0), "/auth.test");
    answer(0, NULL, NULL); /* connection refused */
    CHECK_INT(wh.emits, 1);
    CHECK_INT(wh.dones, 1);
    CHECK(json_is_false(json_object_get(wh.data, "from_self")));
    CHECK_INT(fh.warns, 1);
    CHECK(strstr(fh.log, "auth.test: Connection refused") != NULL);
    fh_advance(1000);
    CHECK_INT(fh_timer_count(), 0);
    /* in the pause: events are not held and Slack is not asked */
    CHECK_INT(deliver(s, &wh, json, bot_post(ev, sizeof ev, "EvC2", "BBOT", false), NULL, NULL),
              WH_OK);
    CHECK_INT(wh.emits, 1);
    CHECK_INT(fh_timer_count(), 0);
    /* …and a poll, which without even our user id cannot leave our posts out, is retried
     * after the pause instead of asking */
    start(s, "thread_replies", &call, "{\"channel\": \"C1\", \"ts\": \"1700000000.000100\"}");
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    CHECK_INT(call.retry_after, 29000);
    CHECK_STR(call.error, "auth.test: Connection refused");
    /* after the pause the next event asks again; Slack is slow, so the event goes out at
     * 1 s with what is known, and a poll meanwhile shares the same auth.test */
    fh_advance(29000);
    CHECK_INT(deliver(s, &wh, json, bot_post(ev, sizeof ev, "EvC3", "BBOT", false), NULL, NULL),
              WH_PENDING);
    fh_advance(0);
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(api_path(0), "/auth.test");
    fh_advance(999);
    CHECK_INT(wh.emits, 0);
    fh_advance(1);
    CHECK_INT(wh.emits, 1);
    CHECK(json_is_false(json_object_get(wh.data, "from_self")));
    start(s, "thread_replies", &call, "{\"channel\": \"C1\", \"ts\": \"1700000000.000100\"}");
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_INT(call.completes, 0);
    answer(200, NULL, auth_ok);
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK(strncmp(api_path(0), "/conversations.replies?", 23) == 0);
    answer(200, NULL, "{\"ok\":true,\"messages\":[]}");
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_INT(deliver(s, &wh, json, bot_post(ev, sizeof ev, "EvC4", "BBOT", false), NULL, NULL),
              WH_OK);
    CHECK(json_is_true(json_object_get(wh.data, "from_self")));
    reset_call(&call);
    fh_webhook_clear(&wh);
    g_desc->destroy(s);
}

/* The same bot messages pushed (Events API) and polled (conversations.replies) read the same. */
static void test_bot_message_pushed_and_polled(void)
{
    fh.now_ms = 1700000100000LL;
    void *s = std_instance("\"bot_user_id\": \"UBOT\"");
    const char *const msgs[] = {
        /* named by its bot profile, by its username, by its bot id */
        "{\"type\":\"message\",\"subtype\":\"bot_message\",\"bot_id\":\"BOTHER\","
        "\"username\":\"otherbot\",\"bot_profile\":{\"id\":\"BOTHER\",\"name\":\"Other Bot\"},"
        "\"text\":\"build passed\",\"ts\":\"1700000020.000100\","
        "\"thread_ts\":\"1700000000.000100\"}",
        "{\"type\":\"message\",\"subtype\":\"bot_message\",\"bot_id\":\"BCI\","
        "\"username\":\"CI\",\"text\":\"deployed\",\"ts\":\"1700000021.000100\","
        "\"thread_ts\":\"1700000000.000100\"}",
        ("{\"type\":\"message\",\"subtype\":\"bot_message\",\"bot_id\":\"BANON\","
         "\"text\":\"beep\",\"ts\":\"1700000022.000100\",\"thread_ts\":\"1700000000.000100\"}"),
    };
    enum { N = sizeof msgs / sizeof msgs[0] };
    const char *const authors[N] = {"Other Bot", "CI", "BANON"};
    const char *const users[N] = {"BOTHER", "BCI", "BANON"};

    /* Polled: the thread's replies (who we are is asked first, once). */
    wh_call call = {0};
    start(s, "thread_replies", &call, "{\"channel\": \"C1\", \"ts\": \"1700000000.000100\"}");
    if (pending_at("/auth.test") >= 0) {
        answer_path("/auth.test", 200, NULL,
                    "{\"ok\":true,\"user_id\":\"UBOT\",\"bot_id\":\"BBOT\"}");
    }
    char page[2048];
    snprintf(
        page, sizeof page,
        "{\"ok\":true,\"messages\":[{\"ts\":\"1700000000.000100\",\"user\":\"UBOT\"},%s,%s,%s]}",
        msgs[0], msgs[1], msgs[2]);
    answer_path("/conversations.replies", 200, NULL, page);
    CHECK_INT(fh_http_pending_count(), 0); /* bots are not looked up */
    CHECK_INT(call.outcome, WH_CALL_OK);
    const json_t *items = json_object_get(call.result, "items");
    CHECK_INT(json_array_size(items), N);

    /* Pushed: the same messages as Events API message events. */
    wh_webhook wh = {0};
    static const char *const fields[] = {"user",    "author",    "text", "ts",
                                         "channel", "thread_ts", "time", NULL};
    for (size_t i = 0; i < N && i < json_array_size(items); i++) {
        json_t *ev = json_loads(msgs[i], 0, NULL);
        json_object_set_new(ev, "channel", json_string("C1"));
        char id[16];
        snprintf(id, sizeof id, "EvP%zu", i);
        json_t *env = json_pack("{s:s, s:s, s:s, s:o}", "team_id", "T1", "type", "event_callback",
                                "event_id", id, "event", ev);
        char *body = json_dumps(env, JSON_COMPACT);
        CHECK_INT(deliver(s, &wh, "application/json", body, NULL, NULL), WH_OK);
        free(body);
        json_decref(env);
        CHECK_INT(wh.emits, 1);
        CHECK_INT(fh_http_pending_count(), 0);
        const json_t *item = json_array_get(items, i), *data = wh.data;
        CHECK_STR(dstr(item, "user"), users[i]);
        CHECK_STR(dstr(item, "author"), authors[i]);
        CHECK(json_is_false(json_object_get(data, "from_self")));
        for (int k = 0; fields[k]; k++) {
            const json_t *a = json_object_get(item, fields[k]),
                         *b = json_object_get(data, fields[k]);
            if (!json_equal(a, b)) {
                fprintf(stderr, "message %zu: `%s` polled %s, pushed %s\n", i, fields[k],
                        json_string_value(a), json_string_value(b));
                wh_test_failures++;
            }
        }
        CHECK_STR(dstr(item, "id"), dstr(data, "ts")); /* stored once, whichever came first */
    }
    CHECK_INT(fh_timer_count(), 0);
    reset_call(&call);
    fh_webhook_clear(&wh);
    g_desc->destroy(s);
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */

static void test_post_message(void)
{
    fh.now_ms = 1700000000000LL;
    void *s = std_instance(NULL);
    wh_call call = {0};

    CHECK_INT(start(s, "post_message", &call,
                    "{\"channel\": \"C1\", \"text\": \"Ana is presenting: Q3 — reply in the "
                    "thread\", \"blocks\": \"[{\\\"type\\\": \\\"divider\\\"}]\", "
                    "\"thread_ts\": \"\"}"),
              WH_OK);
    CHECK_INT(call.completes, 0);
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(fh_http_pending(0)->method, "POST");
    CHECK_STR(api_path(0), "/chat.postMessage");
    CHECK(fh_http_has_header(fh_http_pending(0), "Authorization: Bearer xoxb-test"));
    CHECK(fh_http_has_header(fh_http_pending(0), "Content-Type: application/json; charset=utf-8"));
    json_t *b = body_json(0);
    CHECK_STR(dstr(b, "channel"), "C1");
    CHECK_STR(dstr(b, "text"), "Ana is presenting: Q3 — reply in the thread");
    CHECK_STR(dstr(json_array_get(json_object_get(b, "blocks"), 0), "type"), "divider");
    CHECK(json_object_get(b, "thread_ts") == NULL);
    json_decref(b);
    answer(200, NULL,
           "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1700000000.000100\","
           "\"message\":{\"text\":\"x\"}}");
    CHECK_INT(call.completes, 1);
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_STR(dstr(call.result, "channel"), "C1");
    CHECK_STR(dstr(call.result, "ts"), "1700000000.000100");

    /* Slack's errors: ok:false with `error`; some retry, most do not. */
    struct {
        int status;
        const char *header, *body;
        wh_outcome outcome;
        const char *error;
        long retry_after;
    } cases[] = {
        {200, NULL, "{\"ok\":false,\"error\":\"channel_not_found\"}", WH_CALL_FAIL,
         "chat.postMessage: channel_not_found", 0},
        {200, NULL, "{\"ok\":false,\"error\":\"not_in_channel\"}", WH_CALL_FAIL,
         "chat.postMessage: not_in_channel", 0},
        {200, NULL, "{\"ok\":false,\"error\":\"invalid_auth\"}", WH_CALL_FAIL,
         "chat.postMessage: invalid_auth", 0},
        {200, NULL, "{\"ok\":false,\"error\":\"missing_scope\",\"needed\":\"chat:write\"}",
         WH_CALL_FAIL, "chat.postMessage: missing_scope (needed: chat:write)", 0},
        {200, NULL, "{\"ok\":false,\"error\":\"internal_error\"}", WH_CALL_RETRY,
         "chat.postMessage: internal_error", 0},
        {503, "Retry-After: 3", "oops", WH_CALL_RETRY, "chat.postMessage: HTTP 503", 3000},
        {500, NULL, "", WH_CALL_RETRY, "chat.postMessage: HTTP 500", 0},
        {404, NULL, "", WH_CALL_FAIL, "chat.postMessage: HTTP 404", 0},
        {200, NULL, "<html>", WH_CALL_FAIL, NULL, 0},
        {0, NULL, NULL, WH_CALL_RETRY, "chat.postMessage: Connection refused", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fh_advance(1000); /* one post a second per channel */
        start(s, "post_message", &call, "{\"channel\": \"C1\", \"text\": \"x\"}");
        CHECK_INT(fh_http_pending_count(), 1);
        answer(cases[i].status, cases[i].header, cases[i].body);
        CHECK_INT(call.completes, 1);
        CHECK_INT(call.outcome, cases[i].outcome);
        if (cases[i].error) {
            CHECK_STR(call.error, cases[i].error);
        }
        CHECK_INT(call.retry_after, cases[i].retry_after);
    }
    /* the failure keeps Slack's answer for the dead letter */
    fh_advance(1000);
    start(s, "post_message", &call, "{\"channel\": \"C1\", \"text\": \"x\"}");
    answer(200, NULL, "{\"ok\":false,\"error\":\"channel_not_found\"}");
    CHECK_STR(dstr(call.result, "error"), "channel_not_found");

    /* Arguments are checked before anything is sent. */
    const char *bad[] = {"{\"text\": \"x\"}",
                         "{\"channel\": \"C1\"}",
                         "{\"channel\": 5, \"text\": \"x\"}",
                         "{\"channel\": \"C1\", \"text\": \"x\", \"thread_ts\": \"yesterday\"}",
                         "{\"channel\": \"C1\", \"blocks\": \"{}\"}",
                         "{\"channel\": \"C1\", \"text\": \"x\", \"reply_broadcast\": \"maybe\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        start(s, "post_message", &call, bad[i]);
        CHECK_INT(call.completes, 1);
        CHECK_INT(call.outcome, WH_CALL_FAIL);
        CHECK(strncmp(call.error, "post_message: ", 14) == 0);
        CHECK_INT(fh_http_pending_count(), 0);
    }

    /* update_message and add_reaction */
    fh_advance(2000);
    start(s, "update_message", &call,
          "{\"channel\": \"C1\", \"ts\": \"1700000000.000100\", \"text\": \"edited\"}");
    CHECK_STR(api_path(0), "/chat.update");
    b = body_json(0);
    CHECK_STR(dstr(b, "ts"), "1700000000.000100");
    CHECK_STR(dstr(b, "text"), "edited");
    json_decref(b);
    answer(200, NULL, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1700000000.000100\"}");
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_STR(dstr(call.result, "ts"), "1700000000.000100");

    start(s, "add_reaction", &call,
          "{\"channel\": \"C1\", \"ts\": \"1700000000.000100\", \"name\": \":thumbsup:\"}");
    CHECK_STR(api_path(0), "/reactions.add");
    b = body_json(0);
    CHECK_STR(dstr(b, "timestamp"), "1700000000.000100");
    CHECK_STR(dstr(b, "name"), "thumbsup");
    json_decref(b);
    answer(200, NULL, "{\"ok\":true}");
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_STR(dstr(call.result, "name"), "thumbsup");
    /* a retry whose first attempt landed: already_reacted is success */
    start(s, "add_reaction", &call,
          "{\"channel\": \"C1\", \"ts\": \"1700000000.000100\", \"name\": \"thumbsup\"}");
    answer(200, NULL, "{\"ok\":false,\"error\":\"already_reacted\"}");
    CHECK_INT(call.outcome, WH_CALL_OK);

    /* http() refusing to start: RETRY, or FAIL for an invalid request */
    fh_advance(2000);
    fh.http_rc = WH_ERR_STATE;
    start(s, "post_message", &call, "{\"channel\": \"C1\", \"text\": \"x\"}");
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    fh.http_rc = 0;

    reset_call(&call);
    g_desc->destroy(s);
}

static void test_pacing_and_pauses(void)
{
    fh.now_ms = 1700000000000LL;
    void *s = std_instance(NULL);
    wh_call a = {0}, b = {0}, c = {0};

    /* One post a second per channel: the second to C1 waits on a timer, C2 goes at once. */
    start(s, "post_message", &a, "{\"channel\": \"C1\", \"text\": \"1\"}");
    start(s, "post_message", &b, "{\"channel\": \"C1\", \"text\": \"2\"}");
    start(s, "post_message", &c, "{\"channel\": \"C2\", \"text\": \"3\"}");
    CHECK_INT(fh_http_pending_count(), 2);
    CHECK(strstr(fh_http_pending(0)->body, "\"1\"") != NULL);
    CHECK(strstr(fh_http_pending(1)->body, "\"3\"") != NULL);
    CHECK_INT(fh_timer_count(), 1);
    CHECK_INT(fh_timer_at(0)->delay_ms, 1000);
    fh_advance(999);
    CHECK_INT(fh_http_pending_count(), 2);
    fh_advance(1);
    CHECK_INT(fh_http_pending_count(), 3);
    CHECK(strstr(fh_http_pending(2)->body, "\"2\"") != NULL);
    answer(200, NULL, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1.1\"}");
    answer(200, NULL, "{\"ok\":true,\"channel\":\"C2\",\"ts\":\"1.2\"}");
    answer(200, NULL, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1.3\"}");
    CHECK(a.outcome == WH_CALL_OK && b.outcome == WH_CALL_OK && c.outcome == WH_CALL_OK);
    CHECK_STR(dstr(b.result, "ts"), "1.3");

    /* A 429 pauses chat.postMessage (every channel) for Retry-After; reactions go on. */
    fh_advance(5000);
    start(s, "post_message", &a, "{\"channel\": \"C1\", \"text\": \"4\"}");
    answer(429, "Retry-After: 7", "{\"ok\":false,\"error\":\"ratelimited\"}");
    CHECK_INT(a.outcome, WH_CALL_RETRY);
    CHECK_INT(a.retry_after, 7000);
    CHECK_STR(a.error, "chat.postMessage: HTTP 429 rate limited");
    int before = fh_http_count();
    start(s, "post_message", &b, "{\"channel\": \"C3\", \"text\": \"5\"}");
    CHECK_INT(fh_http_count(), before); /* not sent */
    CHECK_INT(b.completes, 1);
    CHECK_INT(b.outcome, WH_CALL_RETRY);
    CHECK_INT(b.retry_after, 7000);
    start(s, "add_reaction", &c, "{\"channel\": \"C1\", \"ts\": \"1.1\", \"name\": \"eyes\"}");
    CHECK_INT(fh_http_count(), before + 1);
    CHECK_STR(api_path(0), "/reactions.add");
    answer(200, NULL, "{\"ok\":true}");
    CHECK_INT(c.outcome, WH_CALL_OK);
    fh_advance(3000);
    start(s, "post_message", &b, "{\"channel\": \"C3\", \"text\": \"5\"}");
    CHECK_INT(b.retry_after, 4000);
    fh_advance(4000);
    start(s, "post_message", &b, "{\"channel\": \"C3\", \"text\": \"5\"}");
    CHECK_INT(fh_http_pending_count(), 1);
    answer(200, NULL, "{\"ok\":true,\"channel\":\"C3\",\"ts\":\"2.1\"}");
    CHECK_INT(b.outcome, WH_CALL_OK);

    /* ok:false ratelimited without a 429 pauses too (default 30 s without Retry-After). */
    start(s, "add_reaction", &c, "{\"channel\": \"C1\", \"ts\": \"1.1\", \"name\": \"eyes\"}");
    answer(200, NULL, "{\"ok\":false,\"error\":\"ratelimited\"}");
    CHECK_INT(c.outcome, WH_CALL_RETRY);
    CHECK_INT(c.retry_after, 30000);
    before = fh_http_count();
    start(s, "add_reaction", &c, "{\"channel\": \"C1\", \"ts\": \"1.1\", \"name\": \"eyes\"}");
    CHECK_INT(fh_http_count(), before);
    CHECK_INT(c.outcome, WH_CALL_RETRY);

    /* Tier 3 pacing: a burst of ten seconds' worth, then one per 1.2 s (50/min). */
    fh_advance(60000);
    int sent = fh_http_count();
    wh_call burst[10] = {{0}}; /* one wh_call per call, as the hub has */
    for (int i = 0; i < 10; i++) {
        start(s, "update_message", &burst[i],
              "{\"channel\": \"C1\", \"ts\": \"1.1\", \"text\": \"edit\"}");
    }
    CHECK_INT(fh_http_count() - sent, 8);
    CHECK_INT(fh_timer_count(), 1);
    CHECK_INT(fh_timer_at(0)->delay_ms, 1200);
    fh_advance(1200);
    CHECK_INT(fh_http_count() - sent, 9);
    /* shutdown: the hub runs pending timers early; the lane drains instead of re-arming */
    fh_fire_timers();
    CHECK_INT(fh_http_count() - sent, 10);
    CHECK_INT(fh_timer_count(), 0);
    while (fh_http_pending_count()) {
        answer(200, NULL, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1.1\"}");
    }
    for (int i = 0; i < 10; i++) {
        CHECK_INT(burst[i].completes, 1);
        reset_call(&burst[i]);
    }

    reset_call(&a);
    reset_call(&b);
    reset_call(&c);
    g_desc->destroy(s);
}

static const char *query_arg(const char *url, const char *name, char *out, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof pat, "%s=", name);
    const char *q = strchr(url, '?');
    while (q) {
        q++;
        if (strncmp(q, pat, strlen(pat)) == 0) {
            const char *v = q + strlen(pat);
            size_t n = strcspn(v, "&");
            snprintf(out, size, "%.*s", (int)n, v);
            return out;
        }
        q = strchr(q, '&');
    }
    return NULL;
}

static void test_thread_replies(void)
{
    fh.now_ms = 1700000100000LL;
    void *s = std_instance(NULL);
    wh_call call = {0};
    char v[256];
    const char *args = "{\"channel\": \"C1\", \"ts\": \"1700000000.000100\"}";

    /* First poll: who are we (auth.test), then the thread, page by page. */
    start(s, "thread_replies", &call, args);
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(fh_http_pending(0)->method, "POST");
    CHECK_STR(api_path(0), "/auth.test");
    answer(200, NULL, "{\"ok\":true,\"user_id\":\"UBOT\",\"bot_id\":\"BBOT\",\"team_id\":\"T1\"}");
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(fh_http_pending(0)->method, "GET");
    CHECK(strncmp(api_path(0), "/conversations.replies?", 23) == 0);
    CHECK(fh_http_has_header(fh_http_pending(0), "Authorization: Bearer xoxb-test"));
    CHECK(fh_http_pending(0)->body == NULL);
    CHECK_STR(query_arg(fh_http_pending(0)->url, "channel", v, sizeof v), "C1");
    CHECK_STR(query_arg(fh_http_pending(0)->url, "ts", v, sizeof v), "1700000000.000100");
    CHECK_STR(query_arg(fh_http_pending(0)->url, "oldest", v, sizeof v), "1700000000.000100");
    CHECK_STR(query_arg(fh_http_pending(0)->url, "limit", v, sizeof v), "200");
    CHECK(query_arg(fh_http_pending(0)->url, "cursor", v, sizeof v) == NULL);
    answer(200, NULL,
           "{\"ok\":true,\"has_more\":true,\"messages\":["
           "{\"ts\":\"1700000000.000100\",\"user\":\"UBOT\",\"text\":\"Ana is presenting\","
           "\"thread_ts\":\"1700000000.000100\",\"reply_count\":4},"
           "{\"ts\":\"1700000010.000100\",\"user\":\"U1\",\"text\":\"great, send the slides\","
           "\"thread_ts\":\"1700000000.000100\"},"
           "{\"ts\":\"1700000011.000100\",\"user\":\"UBOT\",\"bot_id\":\"BBOT\",\"text\":\"(bot)\","
           "\"thread_ts\":\"1700000000.000100\"}],"
           "\"response_metadata\":{\"next_cursor\":\"bmV4dDox+/=\"}}");
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(query_arg(fh_http_pending(0)->url, "cursor", v, sizeof v), "bmV4dDox%2B%2F%3D");
    answer(200, NULL,
           "{\"ok\":true,\"has_more\":false,\"messages\":["
           "{\"ts\":\"1700000000.000100\",\"user\":\"UBOT\",\"text\":\"Ana is presenting\"},"
           "{\"ts\":\"1700000012.000100\",\"user\":\"U2\",\"text\":\"I'll join at three\","
           "\"thread_ts\":\"1700000000.000100\"},"
           "{\"ts\":\"1700000013.000100\",\"user\":\"U1\",\"text\":\"Q&amp;A &lt;3 -&gt; <@U2> "
           "<@U9|dee> <@U8> <#C7|general> <!here> <!subteam^S1|@devs> <https://x.example/a|the "
           "deck> <https://x.example/b> <mailto:a@b.example|a@b.example> <broken *bold*\","
           "\"thread_ts\":\"1700000000.000100\"},"
           "{\"ts\":\"1700000014.000100\",\"subtype\":\"channel_join\",\"user\":\"U3\","
           "\"text\":\"joined\"}],"
           "\"response_metadata\":{\"next_cursor\":\"\"}}");
    /* authors: one users.info per user, display name first, real name otherwise */
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK(strncmp(api_path(0), "/users.info?user=U1", 19) == 0);
    answer(200, NULL,
           "{\"ok\":true,\"user\":{\"id\":\"U1\",\"name\":\"ben\",\"real_name\":\"Ben "
           "Adams\",\"profile\":{\"display_name\":\"Ben\",\"real_name\":\"Ben Adams\"}}}");
    CHECK(strncmp(api_path(0), "/users.info?user=U2", 19) == 0);
    answer(200, NULL,
           "{\"ok\":true,\"user\":{\"id\":\"U2\",\"name\":\"chen\",\"profile\":"
           "{\"display_name\":\"\",\"real_name\":\"Chen Li\"}}}");
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK_INT(call.completes, 1);
    CHECK_INT(call.outcome, WH_CALL_OK);
    const json_t *items = json_object_get(call.result, "items");
    CHECK_INT(json_array_size(items), 3);
    const json_t *i0 = json_array_get(items, 0), *i1 = json_array_get(items, 1),
                 *i2 = json_array_get(items, 2);
    CHECK_STR(dstr(i0, "id"), "1700000010.000100");
    CHECK_STR(dstr(i0, "ts"), "1700000010.000100");
    CHECK_STR(dstr(i0, "author"), "Ben");
    CHECK_STR(dstr(i0, "user"), "U1");
    CHECK_STR(dstr(i0, "text"), "great, send the slides");
    CHECK_STR(dstr(i0, "time"), "2023-11-14T22:13:30.000Z");
    CHECK_STR(dstr(i1, "author"), "Chen Li");
    CHECK_STR(dstr(i1, "text"), "I'll join at three");
    CHECK_STR(dstr(i2, "author"), "Ben");
    /* text is plain: entities decoded, mentions and links as a reader would say them;
     * Slack's own markup stays in mrkdwn */
    CHECK_STR(dstr(i2, "text"), "Q&A <3 -> @Chen Li @dee @U8 #general @here @devs the deck "
                                "https://x.example/b a@b.example <broken *bold*");
    CHECK_STR(dstr(i2, "mrkdwn"), "Q&amp;A &lt;3 -&gt; <@U2> <@U9|dee> <@U8> <#C7|general> "
                                  "<!here> <!subteam^S1|@devs> <https://x.example/a|the deck> "
                                  "<https://x.example/b> <mailto:a@b.example|a@b.example> "
                                  "<broken *bold*");
    CHECK_STR(dstr(i0, "mrkdwn"), "great, send the slides");

    const json_t *cursor = json_object_get(call.result, "cursor");
    CHECK_STR(dstr(cursor, "oldest"), "1700000014.000100");
    CHECK_INT(json_integer_value(json_object_get(cursor, "polled_ms")), 1700000100000LL);

    /* The next poll 5 s later is too early (replies_poll_every 20 s): no call, same cursor. */
    json_t *prev = json_deep_copy(cursor);
    call.cursor = json_incref(prev);
    fh_advance(5000);
    start(s, "thread_replies", &call, args);
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_INT(json_array_size(json_object_get(call.result, "items")), 0);
    CHECK(json_equal(json_object_get(call.result, "cursor"), prev));
    /* also without a cursor (another caller of the same thread) */
    json_decref(call.cursor);
    call.cursor = NULL;
    start(s, "thread_replies", &call, args);
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK(json_is_null(json_object_get(call.result, "cursor")) ||
          json_object_get(call.result, "cursor") == NULL);
    /* another thread is not held back */
    start(s, "thread_replies", &call, "{\"channel\": \"C1\", \"ts\": \"1700000050.000100\"}");
    CHECK_INT(fh_http_pending_count(), 1);
    answer(200, NULL, "{\"ok\":true,\"messages\":[]}");
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_STR(dstr(json_object_get(call.result, "cursor"), "oldest"), "1700000050.000100");

    /* 20 s after the first: polls from the cursor; names come from the cache. */
    call.cursor = json_incref(prev);
    fh_advance(15000);
    start(s, "thread_replies", &call, args);
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(query_arg(fh_http_pending(0)->url, "oldest", v, sizeof v), "1700000014.000100");
    answer(200, NULL,
           "{\"ok\":true,\"messages\":["
           "{\"ts\":\"1700000000.000100\",\"user\":\"UBOT\",\"text\":\"Ana is presenting\"},"
           "{\"ts\":\"1700000013.000100\",\"user\":\"U1\",\"text\":\"and the notes\"},"
           "{\"ts\":\"1700000090.000100\",\"user\":\"U1\",\"text\":\"see you\"}]}");
    CHECK_INT(fh_http_pending_count(), 0); /* no users.info: cached */
    items = json_object_get(call.result, "items");
    CHECK_INT(json_array_size(items), 1);
    CHECK_STR(dstr(json_array_get(items, 0), "text"), "see you");
    CHECK_STR(dstr(json_array_get(items, 0), "author"), "Ben");
    CHECK_STR(dstr(json_object_get(call.result, "cursor"), "oldest"), "1700000090.000100");
    json_decref(prev);

    /* A pushed message event now carries the cached author name. */
    wh_webhook wh = {0};
    deliver(s, &wh, "application/json",
            "{\"team_id\":\"T1\",\"type\":\"event_callback\",\"event_id\":\"Ev77\",\"event\":"
            "{\"type\":\"message\",\"channel\":\"C1\",\"user\":\"U2\",\"text\":\"pushed\","
            "\"ts\":\"1700000095.000100\",\"thread_ts\":\"1700000000.000100\"}}",
            NULL, NULL);
    CHECK_STR(dstr(wh.data, "author"), "Chen Li");
    fh_webhook_clear(&wh);

    /* Errors: a failed users.info leaves the id as the name; a failed page fails the poll. */
    json_decref(call.cursor);
    call.cursor = NULL;
    fh_advance(30000);
    start(s, "thread_replies", &call, "{\"channel\": \"C1\", \"ts\": \"1700000200.000100\"}");
    answer(200, NULL,
           "{\"ok\":true,\"messages\":[{\"ts\":\"1700000201.000100\",\"user\":\"U9\","
           "\"text\":\"hi\"}]}");
    answer(200, NULL, "{\"ok\":false,\"error\":\"user_not_found\"}");
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_STR(dstr(json_array_get(json_object_get(call.result, "items"), 0), "author"), "U9");
    start(s, "thread_replies", &call, "{\"channel\": \"CX\", \"ts\": \"1700000300.000100\"}");
    answer(200, NULL, "{\"ok\":false,\"error\":\"channel_not_found\"}");
    CHECK_INT(call.outcome, WH_CALL_FAIL);
    CHECK_STR(call.error, "conversations.replies: channel_not_found");
    /* a failed poll does not start the interval: its retry goes to Slack again */
    start(s, "thread_replies", &call, "{\"channel\": \"C1\", \"ts\": \"1700000400.000100\"}");
    answer(503, NULL, "");
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    start(s, "thread_replies", &call, "{\"channel\": \"C1\", \"ts\": \"1700000400.000100\"}");
    CHECK_INT(fh_http_pending_count(), 1);
    answer(429, "Retry-After: 60", "");
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    CHECK_INT(call.retry_after, 60000);
    start(s, "thread_replies", &call, "{\"channel\": \"C1\"}");
    CHECK_INT(call.outcome, WH_CALL_FAIL);
    start(s, "thread_replies", &call, "{\"channel\": \"C1\", \"ts\": \"soon\"}");
    CHECK_INT(call.outcome, WH_CALL_FAIL);
    CHECK_INT(fh_http_pending_count(), 0);
    reset_call(&call);
    g_desc->destroy(s);
}

static void test_replies_restricted_and_history(void)
{
    /* An app limited to one conversations.replies call a minute, 15 per page. */
    fh.now_ms = 1700000100000LL;
    void *s = std_instance("\"bot_user_id\": \"UBOT\", \"replies_per_min\": 1, "
                           "\"replies_poll_every\": 60, \"page_limit\": 15");
    wh_call call = {0};
    char v[64];
    start(s, "thread_replies", &call, "{\"channel\": \"C1\", \"ts\": \"1700000000.000100\"}");
    /* bot_user_id is configured, but not the bot id: auth.test, once. When it fails, the
     * configured user id is enough to go on (no retry of the poll for it). */
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(api_path(0), "/auth.test");
    answer(500, NULL, "");
    CHECK_INT(call.completes, 0);
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK_STR(query_arg(fh_http_pending(0)->url, "limit", v, sizeof v), "15");
    answer(200, NULL,
           "{\"ok\":true,\"messages\":[{\"ts\":\"1700000001.000100\",\"user\":"
           "\"UBOT\"}],\"response_metadata\":{\"next_cursor\":\"p2\"}}");
    /* the second page waits a minute on a timer */
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK_INT(fh_timer_count(), 1);
    CHECK_INT(fh_timer_at(0)->delay_ms, 60000);
    fh_advance(60000);
    CHECK_INT(fh_http_pending_count(), 1);
    answer(200, NULL, "{\"ok\":true,\"messages\":[]}");
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_INT(json_array_size(json_object_get(call.result, "items")), 0); /* own message only */
    CHECK_STR(dstr(json_object_get(call.result, "cursor"), "oldest"), "1700000001.000100");
    g_desc->destroy(s);

    /* channel_history: the first poll marks the start; later ones return what is new. */
    fh.now_ms = 1700000100000LL;
    s = std_instance("\"bot_user_id\": \"UBOT\"");
    start(s, "channel_history", &call, "{\"channel\": \"C1\"}");
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_STR(dstr(json_object_get(call.result, "cursor"), "oldest"), "1700000100.000000");
    call.cursor = json_deep_copy(json_object_get(call.result, "cursor"));
    fh_advance(10000);
    start(s, "channel_history", &call, "{\"channel\": \"C1\"}");
    CHECK_INT(fh_http_pending_count(), 1);
    answer_path("/auth.test", 200, NULL, "{\"ok\":true,\"user_id\":\"UBOT\",\"bot_id\":\"BBOT\"}");
    CHECK_INT(fh_http_pending_count(), 1);
    CHECK(strncmp(api_path(0), "/conversations.history?", 23) == 0);
    CHECK_STR(query_arg(fh_http_pending(0)->url, "oldest", v, sizeof v), "1700000100.000000");
    /* newest first, as Slack sends them */
    answer(200, NULL,
           "{\"ok\":true,\"messages\":["
           "{\"ts\":\"1700000105.000100\",\"user\":\"U1\",\"text\":\"second\","
           "\"reply_count\":2,\"thread_ts\":\"1700000105.000100\"},"
           "{\"ts\":\"1700000104.000100\",\"user\":\"UBOT\",\"text\":\"mine\"},"
           "{\"ts\":\"1700000103.000100\",\"bot_id\":\"B7\",\"username\":\"CI\","
           "\"subtype\":\"bot_message\",\"text\":\"first\"}]}");
    answer(200, NULL, "{\"ok\":true,\"user\":{\"id\":\"U1\",\"real_name\":\"Ben Adams\"}}");
    CHECK_INT(call.outcome, WH_CALL_OK);
    const json_t *items = json_object_get(call.result, "items");
    CHECK_INT(json_array_size(items), 2);
    CHECK_STR(dstr(json_array_get(items, 0), "text"), "first");
    CHECK_STR(dstr(json_array_get(items, 0), "author"), "CI");
    CHECK_STR(dstr(json_array_get(items, 0), "user"), "B7");
    CHECK_STR(dstr(json_array_get(items, 1), "author"), "Ben Adams");
    CHECK_INT(json_integer_value(json_object_get(json_array_get(items, 1), "reply_count")), 2);
    CHECK_STR(dstr(json_object_get(call.result, "cursor"), "oldest"), "1700000105.000100");
    /* an explicit oldest on the first poll */
    json_decref(call.cursor);
    call.cursor = NULL;
    start(s, "channel_history", &call, "{\"channel\": \"C1\", \"oldest\": \"0\"}");
    CHECK_STR(query_arg(fh_http_pending(0)->url, "oldest", v, sizeof v), "0");
    answer(200, NULL, "{\"ok\":true,\"messages\":[]}");
    CHECK_INT(call.outcome, WH_CALL_OK);
    /* a foreign cursor is ignored with a warning */
    call.cursor = json_string("abc");
    fh.warns = 0;
    start(s, "channel_history", &call, "{\"channel\": \"C1\"}");
    CHECK_INT(fh.warns, 1);
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_INT(fh_http_pending_count(), 0);
    reset_call(&call);
    g_desc->destroy(s);
}

int main(void)
{
    g_desc = fh_load(WH_CONNECTOR_DIR "/slack.so");
    CHECK(g_desc != NULL);
    if (!g_desc) {
        return wh_test_done("connector.slack");
    }

    test_descriptor();
    test_init();
    test_signing_vector();
    test_events();
    test_interaction_and_answers();
    test_ssl_check();
    test_own_bot_id();
    test_bot_message_pushed_and_polled();
    test_post_message();
    test_pacing_and_pauses();
    test_thread_replies();
    test_replies_restricted_and_history();
    CHECK_INT(fh_http_pending_count(), 0);
    CHECK_INT(fh_timer_count(), 0);

    CHECK_INT(fh_done(), 0);
    return wh_test_done("connector.slack");
}
