/*
 * alexa.c — the Alexa Skills Kit connector: a custom skill's HTTPS endpoint.
 *
 * Owns: the order of the request checks (certificate URL, signature,
 * timestamp, skill id — the X.509 and signature work is alexa_verify.c's),
 * decoding a verified request into one event (launch, intent,
 * session_ended, request) for a caller that waits for the engine,
 * answering a verified CanFulfillIntentRequest itself from the config (no
 * event: Amazon forbids side effects for it, so no rule may run),
 * turning a rule's generic response into Alexa's response envelope, and the
 * config and operations table (the `notify` operation itself, proactive
 * events, is alexa_notify.c's).
 *
 * Must not: include anything but the SDK header, OpenSSL (through
 * alexa_verify.h), libc and jansson; block an HTTP thread (a certificate chain
 * not cached yet is fetched asynchronously and the request finishes with
 * webhook_done()); log a request body, a signature or a token.
 *
 * Threads: webhook() runs on several HTTP threads at once, the end of a
 * fetched request on the delivery thread, respond() on the gateway's answer
 * thread. The instance is immutable after init(); the key cache has its own
 * lock.
 */
#include "alexa_notify.h"
#include "alexa_verify.h"

#include <wirehub/connector.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CT "application/json;charset=UTF-8"
#define MAX_SKEW_MS 150000L
#define SPEECH_MAX 8000          /* characters of outputSpeech text or SSML */
#define CARD_MAX 8000            /* characters of a card's title and content together */
#define RESPONSE_MAX (24 * 1024) /* bytes of the whole response */

typedef struct alexa {
    const wh_host *host;
    wh_instance *inst;
    char *skill_id;
    bool verify;
    bool allow_sha1;
    long deadline_ms;
    json_t *fallback;    /* {"speech": fallback_speech} */
    json_t *users;       /* user id → name, or NULL */
    json_t *can_fulfill; /* intent name → true: CanFulfillIntentRequest answers YES */
    ax_verifier *verifier;
    ax_notifier *notifier; /* the notify operation (its token cache: delivery thread only) */
} alexa;

/* A request waiting for its certificate chain to be fetched. */
typedef struct pending {
    alexa *a;
    const wh_request *req;
    wh_webhook *wh;
    int64_t started;
    bool sha1;
    size_t sig_len;
    unsigned char sig[];
} pending;

static const wh_option k_options[] = {
    {"skill_id", WH_OPT_STRING, NULL, WH_OPT_REQUIRED,
     "the skill's application id (amzn1.ask.skill.…): requests for any other skill are refused"},
    {"verify", WH_OPT_BOOL, "true", 0,
     "check the certificate chain and the signature of every request; false only for local "
     "tests (logged as a warning at start)"},
    {"allow_sha1", WH_OPT_BOOL, "false", 0,
     "accept the legacy SHA-1 `Signature` header when `Signature-256` is absent"},
    {"ca_file", WH_OPT_STRING, NULL, WH_OPT_PATH,
     "PEM file of trust anchors for the certificate chain; default the system's trust store"},
    {"cert_fetch_override", WH_OPT_STRING, NULL, 0,
     "URL prefix that replaces https://s3.amazonaws.com when fetching certificate chains "
     "(tests, air-gapped mirrors); the URL as sent is still checked"},
    {"deadline_ms", WH_OPT_INT, "6000", 0,
     "how long Alexa's request waits for a rule's answer before it gets `fallback_speech`"},
    {"fallback_speech", WH_OPT_STRING, "\"Sorry, I can't answer that right now.\"", 0,
     "what Alexa says when no rule answers in time"},
    {"users", WH_OPT_OBJECT, NULL, 0, "user id → name: the name is given to rules as `user.name`"},
    {"can_fulfill", WH_OPT_ARRAY, "[]", 0,
     "CanFulfillIntentRequest: the intents this skill can fulfil, answered YES (each filled "
     "slot understood and fulfilled); any other intent is answered NO. Answered at once, no "
     "rule runs"},
    {"client_id", WH_OPT_STRING, NULL, WH_OPT_SECRET,
     "notify: the skill's client id (developer console: Build → Permissions → Alexa Skill "
     "Messaging)"},
    {"client_secret", WH_OPT_STRING, NULL, WH_OPT_SECRET,
     "notify: the skill's client secret (use ${env:…} or ${file:…})"},
    {"auth_url", WH_OPT_STRING, "\"" AX_AUTH_URL_DEFAULT "\"", 0,
     "notify: the OAuth token URL (Login with Amazon)"},
    {"events_api_base", WH_OPT_STRING, "\"" AX_EVENTS_BASE_DEFAULT "\"", 0,
     "notify: the Proactive Events host: https://api.amazonalexa.com (North America), "
     "https://api.eu.amazonalexa.com (Europe), https://api.fe.amazonalexa.com (Far East)"},
    {"stage", WH_OPT_STRING, "\"development\"", 0,
     "notify: development (/v1/proactiveEvents/stages/development, for testers) or live "
     "(/v1/proactiveEvents/, a certified skill)"},
    {"expiry_s", WH_OPT_INT, "3600", 0,
     "notify: seconds until a notification expires (expiryTime), 300 to 86400"},
    {NULL, 0, NULL, 0, NULL},
};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */

static void alexa_destroy(void *state)
{
    alexa *a = state;
    if (!a) {
        return;
    }
    ax_verifier_destroy(a->verifier);
    ax_notifier_destroy(a->notifier);
    json_decref(a->fallback);
    json_decref(a->users);
    json_decref(a->can_fulfill);
    free(a->skill_id);
    free(a);
}

static int alexa_init(const wh_host *host, wh_instance *inst, const json_t *config, void **state)
{
    alexa *a = calloc(1, sizeof *a);
    if (!a) {
        return WH_ERR_NOMEM;
    }
    a->host = host;
    a->inst = inst;
    /* every problem is logged before giving up: `check` lists them all, each at its key */
    int bad = 0;
    const char *skill = json_string_value(json_object_get(config, "skill_id"));
    if (!skill || !*skill) {
        host->log(inst, WH_LOG_ERROR, "config: `skill_id` is required (amzn1.ask.skill.…)");
        bad = 1;
    }
    const json_t *verify = json_object_get(config, "verify");
    a->verify = verify ? json_is_true(verify) : true;
    a->allow_sha1 = json_is_true(json_object_get(config, "allow_sha1"));
    const json_t *deadline = json_object_get(config, "deadline_ms");
    a->deadline_ms = deadline ? (long)json_integer_value(deadline) : 6000;
    if (a->deadline_ms < 100 || a->deadline_ms > 60000) {
        host->log(inst, WH_LOG_ERROR, "config: `deadline_ms` must be between 100 and 60000");
        bad = 1;
    }
    const char *fallback = json_string_value(json_object_get(config, "fallback_speech"));
    const char *ca_file = json_string_value(json_object_get(config, "ca_file"));
    const char *override = json_string_value(json_object_get(config, "cert_fetch_override"));
    const json_t *users = json_object_get(config, "users");
    if (users && !json_is_object(users)) {
        host->log(inst, WH_LOG_ERROR, "config: `users` must map user ids to names");
        bad = 1;
        users = NULL;
    }
    const char *uid;
    const json_t *uname;
    json_object_foreach((json_t *)users, uid, uname)
    {
        if (!json_is_string(uname)) {
            host->log(inst, WH_LOG_ERROR, "config: `users`: each name must be a string");
            bad = 1;
            break;
        }
    }
    const json_t *cf = json_object_get(config, "can_fulfill");
    if (cf && !json_is_array(cf)) {
        host->log(inst, WH_LOG_ERROR, "config: `can_fulfill` must be a list of intent names");
        bad = 1;
        cf = NULL;
    }
    a->can_fulfill = json_object();
    if (!a->can_fulfill) {
        alexa_destroy(a);
        return WH_ERR_NOMEM;
    }
    size_t ci;
    const json_t *cname;
    json_array_foreach(cf, ci, cname)
    {
        const char *n = json_string_value(cname);
        if (!n || !*n) {
            host->log(inst, WH_LOG_ERROR,
                      "config: `can_fulfill`: entry %zu must be an intent name (a non-empty "
                      "string)",
                      ci + 1);
            bad = 1;
            continue;
        }
        if (json_object_set_new(a->can_fulfill, n, json_true()) != 0) {
            alexa_destroy(a);
            return WH_ERR_NOMEM;
        }
    }
    if (override && strncmp(override, "http://", 7) != 0 && strncmp(override, "https://", 8) != 0) {
        host->log(inst, WH_LOG_ERROR,
                  "config: `cert_fetch_override` must be an http:// or https:// URL prefix");
        bad = 1;
        override = NULL;
    }
    if (!bad) {
        a->skill_id = strdup(skill);
        a->fallback = json_pack("{s:s}", "speech", fallback ? fallback : "");
        a->users = users ? json_deep_copy(users) : NULL;
        if (!a->skill_id || !a->fallback || (users && !a->users)) {
            alexa_destroy(a);
            return WH_ERR_NOMEM;
        }
    }
    if (a->verify) {
        char err[256];
        a->verifier = ax_verifier_new(host, inst, ca_file, override, err, sizeof err);
        if (!a->verifier) {
            host->log(inst, WH_LOG_ERROR, "config: %s", err);
            bad = 1;
        }
        if (override && a->verifier) {
            host->log(inst, WH_LOG_WARN,
                      "cert_fetch_override: certificate chains are fetched from %s instead of "
                      "https://s3.amazonaws.com (tests and mirrors only)",
                      override);
        }
    } else {
        host->log(inst, WH_LOG_WARN,
                  "verify: false — requests are NOT checked for Amazon's certificate and "
                  "signature: anyone who reaches this hook can speak as Alexa. Local tests only.");
    }
    char nerr[256];
    int nrc = ax_notifier_new(host, inst, config, &a->notifier, nerr, sizeof nerr);
    if (nrc == WH_ERR_CONFIG) {
        host->log(inst, WH_LOG_ERROR, "config: %s", nerr);
        bad = 1;
    } else if (nrc != WH_OK) {
        alexa_destroy(a);
        return nrc;
    }
    if (bad) {
        goto fail_config;
    }
    *state = a;
    return WH_OK;
fail_config:
    alexa_destroy(a);
    return WH_ERR_CONFIG;
}

/* ------------------------------------------------------------------------ */
/* Ingress                                                                   */

/* Refuse with 400 (500 for our own failures) naming the check; map to webhook()'s result. */
static int refuse(const alexa *a, wh_webhook *wh, const char *error, const char *detail)
{
    const wh_host *h = a->host;
    bool ours = strcmp(error, "internal") == 0;
    h->log(a->inst, ours ? WH_LOG_ERROR : WH_LOG_WARN, "request refused: %s: %s", error, detail);
    int rc = h->reject(wh, ours ? 500 : 400, error, detail);
    return rc < 0 ? rc : WH_OK;
}

static const json_t *path2(const json_t *root, const char *a, const char *b)
{
    return json_object_get(json_object_get(root, a), b);
}

static const json_t *path3(const json_t *root, const char *a, const char *b, const char *c)
{
    return json_object_get(path2(root, a, b), c);
}

/* The canonical value of a resolved slot, else NULL. */
static const char *resolved(const json_t *slot)
{
    const json_t *authorities = path2(slot, "resolutions", "resolutionsPerAuthority");
    size_t i;
    const json_t *auth;
    json_array_foreach(authorities, i, auth)
    {
        const char *code = json_string_value(path2(auth, "status", "code"));
        if (code && strcmp(code, "ER_SUCCESS_MATCH") == 0) {
            const char *name = json_string_value(
                path2(json_array_get(json_object_get(auth, "values"), 0), "value", "name"));
            if (name) {
                return name;
            }
        }
    }
    return NULL;
}

/* A simple slot value (resolved, else spoken), or NULL when the slot is not filled. */
static const char *simple_value(const json_t *slot)
{
    const char *v = resolved(slot);
    return v ? v : json_string_value(json_object_get(slot, "value"));
}

/*
 * A slot's value for rules: the resolved canonical value, else the spoken one;
 * a multiple-value slot (slotValue.type "List") gives an array. New reference,
 * or NULL when the slot is not filled.
 */
static json_t *slot_value(const json_t *slot)
{
    const char *v = simple_value(slot);
    if (v) {
        return json_string(v);
    }
    const json_t *sv = json_object_get(slot, "slotValue");
    const char *type = json_string_value(json_object_get(sv, "type"));
    if (type && strcmp(type, "Simple") == 0) {
        v = simple_value(sv);
        return v ? json_string(v) : NULL;
    }
    if (type && strcmp(type, "List") == 0) {
        json_t *list = json_array();
        size_t i;
        const json_t *item;
        json_array_foreach(json_object_get(sv, "values"), i, item)
        {
            const char *iv = simple_value(item);
            if (iv) {
                json_array_append_new(list, json_string(iv));
            }
        }
        if (json_array_size(list) == 0) {
            json_decref(list); /* no value in it: not filled */
            return NULL;
        }
        return list;
    }
    return NULL;
}

static const char *kind_of(const char *type)
{
    if (strcmp(type, "LaunchRequest") == 0) {
        return "launch";
    }
    if (strcmp(type, "IntentRequest") == 0) {
        return "intent";
    }
    if (strcmp(type, "SessionEndedRequest") == 0) {
        return "session_ended";
    }
    return "request";
}

/* set_new that tolerates a NULL value (skips it); returns 0 or -1. */
static int put(json_t *obj, const char *key, json_t *value)
{
    return value ? json_object_set_new(obj, key, value) : 0;
}

static json_t *str_or_null(const json_t *v)
{
    return json_is_string(v) ? json_incref((json_t *)v) : NULL;
}

/* The event's data. Takes `root` (the parsed body, kept under "raw") on success. */
static json_t *event_data(const alexa *a, json_t *root)
{
    const json_t *request = json_object_get(root, "request");
    const json_t *session = json_object_get(root, "session");
    json_t *data = json_object();
    json_t *req = json_object();
    json_t *user = json_object();
    int bad = !data || !req || !user;

    bad |= put(req, "type", str_or_null(json_object_get(request, "type")));
    bad |= put(req, "id", str_or_null(json_object_get(request, "requestId")));
    bad |= put(req, "timestamp", json_deep_copy(json_object_get(request, "timestamp")));
    bad |= put(req, "reason", str_or_null(json_object_get(request, "reason")));
    bad |= put(req, "error", json_deep_copy(json_object_get(request, "error")));
    bad |= put(data, "request", req);
    req = NULL;
    bad |= put(data, "locale", str_or_null(json_object_get(request, "locale")));

    const json_t *uid = path3(root, "context", "System", "user");
    uid = json_object_get(uid, "userId");
    if (!json_is_string(uid)) {
        uid = path2(session, "user", "userId");
    }
    if (json_is_string(uid)) {
        bad |= put(user, "id", json_incref((json_t *)uid));
        bad |= put(user, "name", str_or_null(json_object_get(a->users, json_string_value(uid))));
    }
    bad |= put(data, "user", user);
    user = NULL;

    if (json_is_object(session)) {
        json_t *s = json_object();
        const json_t *attrs = json_object_get(session, "attributes");
        bad |= !s;
        bad |= put(s, "id", str_or_null(json_object_get(session, "sessionId")));
        bad |= put(s, "new",
                   json_is_boolean(json_object_get(session, "new"))
                       ? json_incref(json_object_get(session, "new"))
                       : NULL);
        bad |= put(s, "attributes", json_is_object(attrs) ? json_deep_copy(attrs) : json_object());
        bad |= put(data, "session", s);
    }

    const json_t *intent = json_object_get(request, "intent");
    if (json_is_object(intent)) {
        json_t *in = json_object();
        json_t *slots = json_object();
        bad |= !in || !slots;
        bad |= put(in, "name", str_or_null(json_object_get(intent, "name")));
        bad |= put(in, "confirmation", str_or_null(json_object_get(intent, "confirmationStatus")));
        const char *name;
        const json_t *slot;
        json_object_foreach((json_t *)json_object_get(intent, "slots"), name, slot)
        {
            bad |= put(slots, name, slot_value(slot));
        }
        bad |= put(in, "slots", slots);
        bad |= put(data, "intent", in);
    }
    if (bad) {
        json_decref(req);
        json_decref(user);
        json_decref(data);
        return NULL;
    }
    /* The raw request goes to the journal and `wirehub tail`: the bearer tokens
     * Amazon puts in it (the API access token, account linking's user token)
     * are not for them. */
    json_t *sys = json_object_get(json_object_get(root, "context"), "System");
    json_t *tok_slots[] = {sys, json_object_get(sys, "user"),
                           json_object_get(json_object_get(root, "session"), "user")};
    static const char *const tok_names[] = {"apiAccessToken", "accessToken", "accessToken"};
    for (size_t i = 0; i < sizeof tok_slots / sizeof tok_slots[0]; i++) {
        if (json_is_string(json_object_get(tok_slots[i], tok_names[i]))) {
            json_object_set_new(tok_slots[i], tok_names[i], json_string("(redacted)"));
        }
    }
    if (json_object_set(data, "raw", root) != 0) {
        json_decref(data);
        return NULL;
    }
    json_decref(root);
    return data;
}

/*
 * A verified CanFulfillIntentRequest, answered at once: YES for an intent in
 * `can_fulfill` (each filled slot: canUnderstand and canFulfill YES), else NO
 * (each filled slot NO, NO). No event is emitted, so no rule runs: Amazon
 * requires that the skill give no feedback and cause no side effects for it.
 * Nothing is recorded for de-duplication either — a repeat gets the same answer
 * anyway, since it depends on the request and the configuration only.
 */
static int answer_can_fulfill(const alexa *a, wh_webhook *wh, const json_t *request)
{
    const wh_host *h = a->host;
    const json_t *intent = json_object_get(request, "intent");
    const char *name = json_string_value(json_object_get(intent, "name"));
    const char *verdict = name && json_object_get(a->can_fulfill, name) ? "YES" : "NO";
    json_t *slots = json_object();
    int bad = !slots;
    const char *slot_name;
    const json_t *slot;
    json_object_foreach((json_t *)json_object_get(intent, "slots"), slot_name, slot)
    {
        json_t *value = slot_value(slot);
        if (value) {
            /* only the slots Alexa detected a value for */
            bad |= json_object_set_new(
                slots, slot_name,
                json_pack("{s:s, s:s}", "canUnderstand", verdict, "canFulfill", verdict));
        }
        json_decref(value);
    }
    json_t *env = bad ? NULL
                      : json_pack("{s:s, s:{s:{s:s, s:O}}}", "version", "1.0", "response",
                                  "canFulfillIntent", "canFulfill", verdict, "slots", slots);
    json_decref(slots);
    char *body = env ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    if (!body) {
        return WH_ERR_NOMEM;
    }
    h->log(a->inst, WH_LOG_DEBUG, "CanFulfillIntentRequest for %s: %s", name ? name : "(no intent)",
           verdict);
    int rc = h->answer(wh, 200, JSON_CT, body, strlen(body));
    free(body);
    return rc < 0 ? rc : WH_OK;
}

/* Everything after the signature: decode, timestamp, skill id, de-duplication, the event. */
static int handle(const alexa *a, wh_webhook *wh, const char *body, size_t len, int64_t started)
{
    const wh_host *h = a->host;
    char detail[256];
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(root)) {
        if (root) {
            snprintf(detail, sizeof detail, "the body is JSON but not an object");
        } else {
            snprintf(detail, sizeof detail, "the body is not JSON: %s (line %d, column %d)",
                     jerr.text, jerr.line, jerr.column);
        }
        json_decref(root);
        return refuse(a, wh, "bad_json", detail);
    }
    const json_t *request = json_object_get(root, "request");
    const char *type = json_string_value(json_object_get(request, "type"));
    const char *id = json_string_value(json_object_get(request, "requestId"));
    if (!type || !id || !*id) {
        json_decref(root);
        return refuse(a, wh, "bad_request", "request.type and request.requestId are required");
    }
    int64_t ts;
    if (ax_parse_timestamp(json_object_get(request, "timestamp"), &ts) != 0) {
        json_decref(root);
        return refuse(a, wh, "bad_timestamp", "request.timestamp is missing or not ISO 8601");
    }
    int64_t now = h->now_ms(a->inst), skew = now - ts;
    if (skew > MAX_SKEW_MS || skew < -MAX_SKEW_MS) {
        json_decref(root);
        /* "more than": 150.5 s is refused, and "150 s" alone would read as allowed */
        long long off = skew < 0 ? -(long long)skew : (long long)skew;
        snprintf(detail, sizeof detail,
                 "request.timestamp is more than %ld s %s now (%lld.%03lld s); Alexa's "
                 "requests are accepted within %ld s either way",
                 MAX_SKEW_MS / 1000, skew < 0 ? "after" : "before", off / 1000, off % 1000,
                 MAX_SKEW_MS / 1000);
        return refuse(a, wh, "stale_timestamp", detail);
    }
    const char *ctx_app = json_string_value(
        json_object_get(path3(root, "context", "System", "application"), "applicationId"));
    const char *ses_app = json_string_value(path3(root, "session", "application", "applicationId"));
    if (!ctx_app && !ses_app) {
        json_decref(root);
        return refuse(a, wh, "wrong_skill", "the request names no application id");
    }
    if ((ctx_app && strcmp(ctx_app, a->skill_id) != 0) ||
        (ses_app && strcmp(ses_app, a->skill_id) != 0)) {
        json_decref(root);
        return refuse(a, wh, "wrong_skill", "the application id is not this instance's skill_id");
    }
    if (strcmp(type, "CanFulfillIntentRequest") == 0) {
        int rc = answer_can_fulfill(a, wh, request);
        json_decref(root);
        return rc;
    }
    if (WH_HOST_HAS(h, dedupe)) {
        int seen = h->dedupe(wh, id);
        if (seen == 1) {
            json_decref(root); /* the hub answers as it answered the first delivery */
            return WH_OK;
        }
        if (seen < 0) {
            h->log(a->inst, WH_LOG_WARN, "cannot record the request id for de-duplication (%d)",
                   seen);
        }
    }
    const char *kind = kind_of(type);
    bool ended = strcmp(kind, "session_ended") == 0;
    json_t *data = event_data(a, root);
    if (!data) {
        json_decref(root);
        return WH_ERR_NOMEM;
    }
    int rc = h->emit(wh, kind, data);
    if (rc != WH_OK) {
        json_decref(data);
        return rc < 0 ? rc : WH_ERR;
    }
    if (ended) {
        /* Alexa ignores any answer to SessionEndedRequest: do not make it wait */
        static const char empty[] = "{\"version\":\"1.0\",\"response\":{}}";
        return h->answer(wh, 200, JSON_CT, empty, sizeof empty - 1);
    }
    /* the time spent fetching a certificate counts against Alexa's patience */
    long left = a->deadline_ms - (long)(now - started);
    return h->wait(wh, left < 100 ? 100 : left, a->fallback);
}

static int check_signature(const alexa *a, wh_webhook *wh, EVP_PKEY *key, bool sha1,
                           const unsigned char *sig, size_t sig_len, const char *body, size_t len)
{
    if (!ax_signature_ok(key, sha1, sig, sig_len, body, len)) {
        return refuse(a, wh, "bad_signature",
                      sha1 ? "the Signature (SHA-1) does not match the body"
                           : "the Signature-256 does not match the body");
    }
    return 1;
}

/* The certificate chain arrived (or could not be had): finish the request. Delivery thread. */
static void key_ready(void *user, EVP_PKEY *key, const char *error, const char *detail)
{
    pending *p = user;
    const alexa *a = p->a;
    const wh_host *h = a->host;
    size_t len = 0;
    const char *body = h->req_body(p->req, &len);
    int rc;
    if (!key) {
        rc = refuse(a, p->wh, error, detail);
    } else {
        rc = check_signature(a, p->wh, key, p->sha1, p->sig, p->sig_len, body, len);
        if (rc == 1) {
            rc = handle(a, p->wh, body, len, p->started);
        }
    }
    if (rc < 0) {
        h->log(a->inst, WH_LOG_ERROR, "cannot finish a request (%d)", rc);
        h->reject(p->wh, 500, "connector_error", "the connector failed on this request");
    }
    h->webhook_done(p->wh);
    free(p);
}

static int alexa_webhook(void *state, const wh_request *req, wh_webhook *wh)
{
    alexa *a = state;
    const wh_host *h = a->host;
    int64_t started = h->now_ms(a->inst);
    size_t len = 0;
    const char *body = h->req_body(req, &len);
    if (!body) {
        body = "";
        len = 0;
    }
    if (!a->verify) {
        return handle(a, wh, body, len, started);
    }

    /* 1. The certificate URL, by Amazon's rules, before anything is fetched. */
    const char *url = h->req_header(req, "SignatureCertChainUrl");
    if (!url || !*url) {
        return refuse(a, wh, "missing_cert_url", "the SignatureCertChainUrl header is missing");
    }
    char canon[AX_URL_MAX + 64], why[160];
    if (ax_url_check(url, canon, sizeof canon, why, sizeof why) != 0) {
        return refuse(a, wh, "bad_cert_url", why);
    }

    /* 2. The signature header: Signature-256, or the legacy SHA-1 one only when allowed. */
    bool sha1 = false;
    const char *sig = h->req_header(req, "Signature-256");
    if (!sig || !*sig) {
        sig = h->req_header(req, "Signature");
        if (!sig || !*sig) {
            return refuse(a, wh, "missing_signature", "the Signature-256 header is missing");
        }
        if (!a->allow_sha1) {
            return refuse(a, wh, "missing_signature",
                          "the Signature-256 header is missing (the legacy SHA-1 Signature is "
                          "accepted only with allow_sha1: true)");
        }
        sha1 = true;
    }
    unsigned char raw[AX_SIG_MAX];
    long sig_len = ax_base64_decode(sig, strlen(sig), raw, sizeof raw);
    if (sig_len <= 0) {
        return refuse(a, wh, "bad_signature", "the signature is not base64");
    }

    /* 3. The signing key: cached, or fetched while the request waits. */
    char error[48], detail[256];
    EVP_PKEY *key = NULL;
    int k = ax_key_get(a->verifier, canon, &key, NULL, NULL, error, sizeof error, detail,
                       sizeof detail);
    if (k == AX_KEY_PENDING) {
        pending *p = malloc(sizeof *p + (size_t)sig_len);
        if (!p) {
            return WH_ERR_NOMEM;
        }
        *p = (pending){a, req, wh, started, sha1, (size_t)sig_len};
        memcpy(p->sig, raw, (size_t)sig_len);
        k = ax_key_get(a->verifier, canon, &key, key_ready, p, error, sizeof error, detail,
                       sizeof detail);
        if (k == AX_KEY_PENDING) {
            return WH_PENDING; /* p belongs to the cache's callback now */
        }
        free(p);
    }
    if (k == AX_KEY_FAILED) {
        return refuse(a, wh, error, detail);
    }
    int rc = check_signature(a, wh, key, sha1, raw, (size_t)sig_len, body, len);
    EVP_PKEY_free(key);
    if (rc != 1) {
        return rc;
    }
    return handle(a, wh, body, len, started);
}

/* ------------------------------------------------------------------------ */
/* Respond                                                                   */

/* Text of a response member: a string as is, a number as JSON; else NULL. malloc'd. */
static char *as_text(const json_t *v)
{
    if (json_is_string(v)) {
        return strndup(json_string_value(v), json_string_length(v));
    }
    if (json_is_number(v)) {
        return json_dumps(v, JSON_ENCODE_ANY);
    }
    return NULL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* SSML by the engine's rule: "<speak>" after optional white space. */
static bool is_ssml(const char *s)
{
    while (is_space(*s)) {
        s++;
    }
    return strncmp(s, "<speak>", 7) == 0;
}

/* Number of UTF-8 characters; *cut gets the byte length of the first `max`. */
static size_t utf8_chars(const char *s, size_t max, size_t *cut)
{
    size_t chars = 0, i = 0;
    *cut = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (chars == max) {
                *cut = i;
            }
            chars++;
        }
    }
    if (chars <= max) {
        *cut = i;
    }
    return chars;
}

/* SSML to plain text, in place: tags dropped, the five XML entities decoded. */
static void ssml_to_text(char *s)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    char *out = s;
    bool in_tag = false;
    for (char *p = s; *p;) {
        if (in_tag) {
            in_tag = *p++ != '>';
            continue;
        }
        if (*p == '<') {
            in_tag = true;
            p++;
            continue;
        }
        if (*p == '&') {
            bool done = false;
            for (size_t i = 0; i < sizeof ents / sizeof ents[0] && !done; i++) {
                size_t n = strlen(ents[i].ent);
                if (strncmp(p, ents[i].ent, n) == 0) {
                    *out++ = ents[i].c;
                    p += n;
                    done = true;
                }
            }
            if (done) {
                continue;
            }
        }
        *out++ = *p++;
    }
    *out = '\0';
}

static void trim(char *s)
{
    size_t n = strlen(s), start = 0;
    while (n > 0 && is_space(s[n - 1])) {
        s[--n] = '\0';
    }
    while (is_space(s[start])) {
        start++;
    }
    memmove(s, s + start, n - start + 1);
}

/* An outputSpeech object for `text` (consumed), or NULL when there is nothing to say. */
static json_t *output_speech(const alexa *a, char *text, const char *what)
{
    if (!text) {
        return NULL;
    }
    trim(text);
    size_t cut;
    if (is_ssml(text)) {
        if (utf8_chars(text, SPEECH_MAX, &cut) <= SPEECH_MAX) {
            json_t *o = json_pack("{s:s, s:s}", "type", "SSML", "ssml", text);
            free(text);
            return o;
        }
        a->host->log(a->inst, WH_LOG_WARN,
                     "%s: SSML over %d characters: sent as plain text, shortened", what,
                     SPEECH_MAX);
        ssml_to_text(text);
        trim(text);
    }
    if (utf8_chars(text, SPEECH_MAX, &cut) > SPEECH_MAX) {
        a->host->log(a->inst, WH_LOG_WARN, "%s: over %d characters: shortened", what, SPEECH_MAX);
        text[cut] = '\0';
    }
    json_t *o = text[0] ? json_pack("{s:s, s:s}", "type", "PlainText", "text", text) : NULL;
    free(text);
    return o;
}

static bool end_session(const alexa *a, const json_t *v)
{
    if (!v || json_is_null(v)) {
        return true;
    }
    if (json_is_boolean(v)) {
        return json_is_true(v);
    }
    const char *s = json_string_value(v);
    if (s && (strcmp(s, "false") == 0 || strcmp(s, "true") == 0)) {
        return s[0] == 't';
    }
    a->host->log(a->inst, WH_LOG_WARN,
                 "respond: `end_session` is not a boolean; ending the session");
    return true;
}

static json_t *simple_card(const json_t *card)
{
    if (!json_is_object(card)) {
        return NULL;
    }
    char *title = as_text(json_object_get(card, "title"));
    const json_t *t = json_object_get(card, "text");
    char *text = as_text(t ? t : json_object_get(card, "content"));
    json_t *out = NULL;
    if (title || text) {
        size_t cut, n = utf8_chars(title ? title : "", CARD_MAX, &cut);
        if (title && n >= CARD_MAX) {
            title[cut] = '\0';
            n = CARD_MAX;
        }
        if (text && utf8_chars(text, CARD_MAX - n, &cut) > CARD_MAX - n) {
            text[cut] = '\0';
        }
        out = json_pack("{s:s, s:s, s:s}", "type", "Simple", "title", title ? title : "", "content",
                        text ? text : "");
    }
    free(title);
    free(text);
    return out;
}

static char *dump(const json_t *env, size_t *len)
{
    char *text = json_dumps(env, JSON_COMPACT);
    *len = text ? strlen(text) : 0;
    return text;
}

/* The envelope for `response`; NULL when out of memory. */
static json_t *envelope(const alexa *a, const json_t *event, const json_t *response)
{
    json_t *env = json_object();
    json_t *resp = json_object();
    int bad = !env || !resp;
    bad |= json_object_set_new(env, "version", json_string("1.0"));
    bool end = end_session(a, json_object_get(response, "end_session"));
    const json_t *attrs = json_object_get(response, "attributes");
    if (attrs && !json_is_object(attrs)) {
        a->host->log(a->inst, WH_LOG_WARN, "respond: `attributes` is not an object; ignored");
        attrs = NULL;
    }
    if (!attrs && !end) {
        /* the session goes on: keep what it held, as the ASK SDK does */
        attrs = path3(event, "data", "session", "attributes");
    }
    if (json_is_object(attrs)) {
        bad |= json_object_set_new(env, "sessionAttributes", json_deep_copy(attrs));
    }
    bad |= put(resp, "outputSpeech",
               output_speech(a, as_text(json_object_get(response, "speech")), "speech"));
    bad |= put(resp, "card", simple_card(json_object_get(response, "card")));
    json_t *re = output_speech(a, as_text(json_object_get(response, "reprompt")), "reprompt");
    if (re) {
        bad |= json_object_set_new(resp, "reprompt", json_pack("{s:o}", "outputSpeech", re));
    }
    bad |= json_object_set_new(resp, "shouldEndSession", json_boolean(end));
    bad |= json_object_set_new(env, "response", resp);
    resp = NULL;
    if (bad) {
        json_decref(env);
        return NULL;
    }
    return env;
}

static int alexa_respond(void *state, const json_t *event, const json_t *response, wh_reply *out)
{
    const alexa *a = state;
    const wh_host *h = a->host;
    json_t *env = envelope(a, event, response);
    size_t len = 0;
    char *text = env ? dump(env, &len) : NULL;
    /* Alexa refuses responses over 24 KB: shed what matters least, then fall back */
    if (text && len > RESPONSE_MAX && json_object_get(env, "sessionAttributes")) {
        h->log(a->inst, WH_LOG_WARN, "respond: over %d bytes: session attributes dropped",
               RESPONSE_MAX);
        json_object_del(env, "sessionAttributes");
        free(text);
        text = dump(env, &len);
    }
    if (text && len > RESPONSE_MAX && json_object_get(json_object_get(env, "response"), "card")) {
        h->log(a->inst, WH_LOG_WARN, "respond: over %d bytes: card dropped", RESPONSE_MAX);
        json_object_del(json_object_get(env, "response"), "card");
        free(text);
        text = dump(env, &len);
    }
    if (text && len > RESPONSE_MAX) {
        h->log(a->inst, WH_LOG_WARN, "respond: over %d bytes: the fallback speech is sent",
               RESPONSE_MAX);
        free(text);
        json_decref(env);
        env = envelope(a, event, a->fallback);
        text = env ? dump(env, &len) : NULL;
    }
    json_decref(env);
    if (!text) {
        return WH_ERR_NOMEM;
    }
    int rc = h->reply(out, 200, JSON_CT, text, len);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */

static int op_notify(void *state, wh_call *call, const json_t *args)
{
    alexa *a = state;
    return ax_notify_start(a->notifier, call, args);
}

static const wh_operation k_operations[] = {
    {"notify",
     "Proactive Events: AMAZON.MessageAlert.Activated (\"You have 3 new messages from your "
     "team\") for one user; result {status, reference_id}",
     ax_notify_args, op_notify, 0},
    {NULL, NULL, NULL, NULL, 0},
};

static const wh_connector k_alexa = {
    WH_CONNECTOR_HEADER("alexa", "1.1.0",
                        "Alexa Skills Kit custom skill endpoint (verified requests in, speech "
                        "out) and proactive notifications"),
    .options = k_options,
    .init = alexa_init,
    .destroy = alexa_destroy,
    .webhook = alexa_webhook,
    .respond = alexa_respond,
    .respond_keys = (const char *const[]){"speech", "reprompt", "card", "end_session", "attributes",
                                          NULL},
    .operations = k_operations,
};

WH_CONNECTOR_EXPORT(k_alexa)
