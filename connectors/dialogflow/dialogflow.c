/*
 * dialogflow.c — the Dialogflow ES fulfillment webhook connector.
 *
 * Owns: checking the credentials Dialogflow is configured to send (HTTP basic
 * auth and/or one fixed header, compared in constant time), decoding a
 * WebhookRequest into one `intent` event for a caller that waits for the
 * engine (unfilled parameters left out of `intent.slots`, so that a rule's
 * `exists: true` means "the user gave it"), and turning a rule's generic
 * response into a WebhookResponse (fulfillmentText plus an Actions-on-Google
 * `payload.google`).
 *
 * Must not: include anything but the SDK header, libc and jansson; do
 * network I/O; log a body or a credential.
 *
 * Threads: webhook() runs on several HTTP threads at once, respond() on the
 * gateway's answer thread. The instance is immutable after init().
 */
#include <wirehub/connector.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JSON_CT "application/json;charset=UTF-8"
#define DEFAULT_USER_PATH "originalDetectIntentRequest.payload.user.userId"
#define FILLED_DEPTH_MAX 32 /* nesting pruned of unfilled values; deeper is kept as sent */

typedef struct dialogflow {
    const wh_host *host;
    wh_instance *inst;
    char *basic; /* base64("username:password"), or NULL */
    char *header_name;
    char *header_value;
    size_t header_len;
    char *user_path; /* where the user id is in the request */
    long deadline_ms;
    json_t *fallback; /* {"speech": fallback_speech} */
    json_t *users;    /* user id → name, or NULL */
} dialogflow;

static const wh_option k_options[] = {
    {"username", WH_OPT_STRING, NULL, 0,
     "HTTP basic auth user name set in the Dialogflow console (with `password`)"},
    {"password", WH_OPT_STRING, NULL, WH_OPT_SECRET, "HTTP basic auth password"},
    {"header_name", WH_OPT_STRING, NULL, 0,
     "a header Dialogflow is configured to send (with `header_value`)"},
    {"header_value", WH_OPT_STRING, NULL, WH_OPT_SECRET, "the value that header must have"},
    {"deadline_ms", WH_OPT_INT, "4500", 0,
     "how long the request waits for a rule's answer before it gets `fallback_speech`"},
    {"fallback_speech", WH_OPT_STRING, "\"Sorry, I can't answer that right now.\"", 0,
     "what is said when no rule answers in time"},
    {"user_id_path", WH_OPT_STRING, "\"" DEFAULT_USER_PATH "\"", 0,
     "dotted path in the request to the user's id, given to rules as `user.id`"},
    {"users", WH_OPT_OBJECT, NULL, 0, "user id → name: the name is given to rules as `user.name`"},
    {NULL, 0, NULL, 0, NULL},
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static char *base64(const unsigned char *in, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? abc[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static void wipe_free(char *s)
{
    if (s) {
        volatile char *p = s; /* volatile so the wipe is not optimised away */
        while (*p) {
            *p++ = 0;
        }
    }
    free(s);
}

static const char *opt_str(const json_t *config, const char *name)
{
    return json_string_value(json_object_get(config, name));
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */

static void df_destroy(void *state)
{
    dialogflow *d = state;
    if (!d) {
        return;
    }
    wipe_free(d->basic);
    wipe_free(d->header_value);
    free(d->header_name);
    free(d->user_path);
    json_decref(d->fallback);
    json_decref(d->users);
    free(d);
}

static bool header_name_ok(const char *s)
{
    if (!*s || strlen(s) > 256) {
        return false;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c))) {
            return false;
        }
    }
    return true;
}

static int df_init(const wh_host *host, wh_instance *inst, const json_t *config, void **state)
{
    dialogflow *d = calloc(1, sizeof *d);
    if (!d) {
        return WH_ERR_NOMEM;
    }
    d->host = host;
    d->inst = inst;
    /* every problem is logged before giving up: `check` lists them all, each at its key */
    int bad = 0;
    const char *user = opt_str(config, "username"), *pass = opt_str(config, "password");
    const char *hname = opt_str(config, "header_name"), *hvalue = opt_str(config, "header_value");
    if (!user != !pass) {
        host->log(inst, WH_LOG_ERROR, "config: `username` and `password` go together");
        bad = 1;
    }
    if (user && pass && (strchr(user, ':') || !*user || !*pass)) {
        host->log(inst, WH_LOG_ERROR,
                  "config: `username` must be non-empty without ':' and `password` non-empty");
        bad = 1;
    }
    if (!hname != !hvalue) {
        host->log(inst, WH_LOG_ERROR, "config: `header_name` and `header_value` go together");
        bad = 1;
    }
    if (hname && hvalue && (!header_name_ok(hname) || !*hvalue)) {
        host->log(inst, WH_LOG_ERROR,
                  "config: `header_name` must be a header name and `header_value` non-empty");
        bad = 1;
    }
    const json_t *deadline = json_object_get(config, "deadline_ms");
    d->deadline_ms = deadline ? (long)json_integer_value(deadline) : 4500;
    if (d->deadline_ms < 100 || d->deadline_ms > 60000) {
        host->log(inst, WH_LOG_ERROR, "config: `deadline_ms` must be between 100 and 60000");
        bad = 1;
    }
    const json_t *users = json_object_get(config, "users");
    const char *uid;
    const json_t *uname;
    if (users && !json_is_object(users)) {
        host->log(inst, WH_LOG_ERROR, "config: `users` must map user ids to names");
        bad = 1;
        users = NULL;
    }
    json_object_foreach((json_t *)users, uid, uname)
    {
        if (!json_is_string(uname)) {
            host->log(inst, WH_LOG_ERROR, "config: `users`: each name must be a string");
            bad = 1;
            break;
        }
    }
    if (bad) {
        goto fail_config;
    }
    if (user) {
        size_t n = strlen(user) + strlen(pass) + 2;
        char *pair = malloc(n);
        if (!pair) {
            goto fail_nomem;
        }
        snprintf(pair, n, "%s:%s", user, pass);
        d->basic = base64((const unsigned char *)pair, n - 1);
        wipe_free(pair);
        if (!d->basic) {
            goto fail_nomem;
        }
    }
    if (hname) {
        d->header_name = strdup(hname);
        d->header_value = strdup(hvalue);
        d->header_len = strlen(hvalue);
        if (!d->header_name || !d->header_value) {
            goto fail_nomem;
        }
    }
    const char *path = opt_str(config, "user_id_path");
    const char *fallback = opt_str(config, "fallback_speech");
    d->user_path = strdup(path ? path : DEFAULT_USER_PATH);
    d->fallback = json_pack("{s:s}", "speech", fallback ? fallback : "");
    d->users = users ? json_deep_copy(users) : NULL;
    if (!d->user_path || !d->fallback || (users && !d->users)) {
        goto fail_nomem;
    }
    if (!d->basic && !d->header_name) {
        host->log(inst, WH_LOG_WARN,
                  "no `username`/`password` or `header_name`/`header_value` configured: "
                  "accepting unauthenticated requests");
    }
    *state = d;
    return WH_OK;
fail_nomem:
    df_destroy(d);
    return WH_ERR_NOMEM;
fail_config:
    df_destroy(d);
    return WH_ERR_CONFIG;
}

/* ------------------------------------------------------------------------ */
/* Ingress                                                                   */

static int refuse(const dialogflow *d, wh_webhook *wh, int status, const char *error,
                  const char *detail)
{
    d->host->log(d->inst, WH_LOG_WARN, "request refused: %s: %s", error, detail);
    int rc = d->host->reject(wh, status, error, detail);
    return rc < 0 ? rc : WH_OK;
}

/* 1 when the credentials hold; otherwise the request is refused (401) and 0 is returned. */
static int authenticate(const dialogflow *d, const wh_request *req, wh_webhook *wh, int *rc)
{
    const wh_host *h = d->host;
    if (d->basic) {
        const char *auth = h->req_header(req, "Authorization");
        if (!auth || strncasecmp(auth, "Basic ", 6) != 0) {
            *rc = refuse(d, wh, 401, "missing_auth", "HTTP basic authentication is required");
            return 0;
        }
        auth += 6;
        while (*auth == ' ') {
            auth++;
        }
        size_t n = strlen(auth);
        while (n > 0 && auth[n - 1] == ' ') {
            n--;
        }
        if (!h->ct_equal(auth, n, d->basic, strlen(d->basic))) {
            *rc = refuse(d, wh, 401, "bad_auth", "the user name or password is wrong");
            return 0;
        }
    }
    if (d->header_name) {
        const char *v = h->req_header(req, d->header_name);
        if (!v) {
            char detail[320];
            snprintf(detail, sizeof detail, "the %s header is required", d->header_name);
            *rc = refuse(d, wh, 401, "missing_header", detail);
            return 0;
        }
        if (!h->ct_equal(v, strlen(v), d->header_value, d->header_len)) {
            char detail[320];
            snprintf(detail, sizeof detail, "the %s header has the wrong value", d->header_name);
            *rc = refuse(d, wh, 401, "bad_header", detail);
            return 0;
        }
    }
    return 1;
}

static int put(json_t *obj, const char *key, json_t *value)
{
    return value ? json_object_set_new(obj, key, value) : 0;
}

static json_t *str_or_null(const json_t *v)
{
    return json_is_string(v) ? json_incref((json_t *)v) : NULL;
}

/*
 * A parameter's value as rules see it: what Dialogflow sends for "not filled"
 * left out. Unfilled is "" and null, and a list or object that holds nothing
 * filled ([] and {} included); inside lists and objects the unfilled items are
 * left out too (@sys.location's empty sub-fields, say). Numbers, false and
 * white space are values. Returns a new reference, or NULL when `v` is unfilled
 * (or memory ran out: then *nomem is set).
 */
static json_t *filled(const json_t *v, int depth, bool *nomem)
{
    if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        return NULL;
    }
    if ((!json_is_array(v) && !json_is_object(v)) || depth >= FILLED_DEPTH_MAX) {
        json_t *copy = json_deep_copy(v);
        *nomem |= !copy;
        return copy;
    }
    json_t *out = json_is_array(v) ? json_array() : json_object();
    if (!out) {
        *nomem = true;
        return NULL;
    }
    if (json_is_array(v)) {
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item)
        {
            json_t *f = filled(item, depth + 1, nomem);
            if (f && json_array_append_new(out, f) != 0) {
                *nomem = true;
            }
        }
    } else {
        const char *key;
        const json_t *item;
        json_object_foreach((json_t *)v, key, item)
        {
            json_t *f = filled(item, depth + 1, nomem);
            if (f && json_object_set_new(out, key, f) != 0) {
                *nomem = true;
            }
        }
    }
    size_t n = json_is_array(out) ? json_array_size(out) : json_object_size(out);
    if (*nomem || n == 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* intent.slots: the filled parameters. New reference, NULL when out of memory. */
static json_t *slots_of(const json_t *params)
{
    json_t *slots = json_object();
    bool nomem = !slots;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)params, key, value)
    {
        json_t *f = nomem ? NULL : filled(value, 1, &nomem);
        if (f && json_object_set_new(slots, key, f) != 0) {
            nomem = true;
        }
    }
    if (nomem) {
        json_decref(slots);
        return NULL;
    }
    return slots;
}

/* The event's data. Takes `root` (kept under "raw") on success. */
static json_t *event_data(const dialogflow *d, json_t *root)
{
    const wh_host *h = d->host;
    const json_t *qr = json_object_get(root, "queryResult");
    const json_t *params = json_object_get(qr, "parameters");
    const json_t *odir = json_object_get(root, "originalDetectIntentRequest");
    json_t *data = json_object();
    json_t *intent = json_object();
    json_t *session = json_object();
    json_t *user = json_object();
    json_t *request = json_object();
    int bad = !data || !intent || !session || !user || !request;

    bad |= put(intent, "name",
               str_or_null(json_object_get(json_object_get(qr, "intent"), "displayName")));
    json_t *slots = slots_of(json_is_object(params) ? params : NULL);
    bad |= !slots;
    bad |= put(intent, "slots", slots);
    bad |= put(intent, "action", str_or_null(json_object_get(qr, "action")));
    const json_t *conf = json_object_get(qr, "intentDetectionConfidence");
    bad |= put(intent, "confidence", json_is_number(conf) ? json_deep_copy(conf) : NULL);
    bad |= put(data, "intent", intent);
    bad |= put(data, "text", str_or_null(json_object_get(qr, "queryText")));
    bad |= put(session, "id", str_or_null(json_object_get(root, "session")));
    bad |= put(data, "session", session);
    bad |= put(data, "locale", str_or_null(json_object_get(qr, "languageCode")));
    bad |= put(data, "source", str_or_null(json_object_get(odir, "source")));
    bad |= put(request, "id", str_or_null(json_object_get(root, "responseId")));
    bad |= put(data, "request", request);
    const json_t *uid = h->json_path ? h->json_path(root, d->user_path) : NULL;
    if (json_is_string(uid) || json_is_integer(uid)) {
        json_t *id = json_is_string(uid) ? json_incref((json_t *)uid)
                                         : json_sprintf("%lld", (long long)json_integer_value(uid));
        const char *name = json_string_value(json_object_get(d->users, json_string_value(id)));
        bad |= put(user, "name", name ? json_string(name) : NULL);
        bad |= put(user, "id", id);
    }
    bad |= put(data, "user", user);
    if (bad) {
        json_decref(data);
        return NULL;
    }
    if (json_object_set(data, "raw", root) != 0) {
        json_decref(data);
        return NULL;
    }
    json_decref(root);
    return data;
}

static int df_webhook(void *state, const wh_request *req, wh_webhook *wh)
{
    const dialogflow *d = state;
    const wh_host *h = d->host;
    int rc = WH_OK;
    if (!authenticate(d, req, wh, &rc)) {
        return rc;
    }
    size_t len = 0;
    const char *body = h->req_body(req, &len);
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", body ? len : 0, 0, &jerr);
    char detail[256];
    if (!json_is_object(root)) {
        if (root) {
            snprintf(detail, sizeof detail, "the body is JSON but not an object");
        } else {
            snprintf(detail, sizeof detail, "the body is not JSON: %s (line %d, column %d)",
                     jerr.text, jerr.line, jerr.column);
        }
        json_decref(root);
        return refuse(d, wh, 400, "bad_json", detail);
    }
    if (!json_is_object(json_object_get(root, "queryResult"))) {
        json_decref(root);
        return refuse(d, wh, 400, "bad_request", "queryResult is missing: not a WebhookRequest");
    }
    const char *id = json_string_value(json_object_get(root, "responseId"));
    if (id && *id && WH_HOST_HAS(h, dedupe) && h->dedupe(wh, id) == 1) {
        json_decref(root); /* answered as the first delivery was */
        return WH_OK;
    }
    json_t *data = event_data(d, root);
    if (!data) {
        json_decref(root);
        return WH_ERR_NOMEM;
    }
    rc = h->emit(wh, "intent", data);
    if (rc != WH_OK) {
        json_decref(data);
        return rc < 0 ? rc : WH_ERR;
    }
    return h->wait(wh, d->deadline_ms, d->fallback);
}

/* ------------------------------------------------------------------------ */
/* Respond                                                                   */

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

/* SSML by the engine's rule: "<speak>" after optional white space. */
static bool is_ssml(const char *s)
{
    while (is_space(*s)) {
        s++;
    }
    return strncmp(s, "<speak>", 7) == 0;
}

/* SSML to plain text: tags dropped, the five XML entities decoded, white space trimmed. */
static char *ssml_text(const char *ssml)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    char *out = malloc(strlen(ssml) + 1), *o = out;
    if (!out) {
        return NULL;
    }
    bool in_tag = false;
    for (const char *p = ssml; *p;) {
        if (in_tag) {
            in_tag = *p++ != '>';
            continue;
        }
        if (*p == '<') {
            in_tag = true;
            p++;
            continue;
        }
        bool done = false;
        for (size_t i = 0; *p == '&' && i < sizeof ents / sizeof ents[0] && !done; i++) {
            size_t n = strlen(ents[i].ent);
            if (strncmp(p, ents[i].ent, n) == 0) {
                *o++ = ents[i].c;
                p += n;
                done = true;
            }
        }
        if (!done) {
            *o++ = *p++;
        }
    }
    *o = '\0';
    trim(out);
    return out;
}

static bool end_session(const dialogflow *d, const json_t *v)
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
    d->host->log(d->inst, WH_LOG_WARN, "respond: `end_session` is not a boolean; ending");
    return true;
}

static int df_respond(void *state, const json_t *event, const json_t *response, wh_reply *out)
{
    const dialogflow *d = state;
    char *speech = as_text(json_object_get(response, "speech"));
    char *text = as_text(json_object_get(response, "text"));
    char *plain = NULL;
    bool ssml = false;
    if (speech) {
        trim(speech);
        ssml = is_ssml(speech);
        plain = ssml ? ssml_text(speech) : strdup(speech);
    }
    /* what is shown: `text` when the rule gives one, else the speech without markup */
    const char *shown = text ? text : plain ? plain : "";
    json_t *simple = NULL;
    if (speech && *speech) {
        simple = ssml ? json_pack("{s:s, s:s}", "ssml", speech, "displayText", shown)
                      : json_pack("{s:s}", "textToSpeech", speech);
        if (simple && !ssml && text) {
            json_object_set_new(simple, "displayText", json_string(text));
        }
    } else if (*shown) {
        simple = json_pack("{s:s}", "textToSpeech", shown);
    }
    json_t *google = json_pack("{s:b}", "expectUserResponse",
                               !end_session(d, json_object_get(response, "end_session")));
    if (google && simple) {
        json_object_set_new(
            google, "richResponse",
            json_pack("{s:[o]}", "items", json_pack("{s:o}", "simpleResponse", simple)));
        simple = NULL;
    }
    json_decref(simple);
    json_t *env =
        google ? json_pack("{s:s, s:{s:o}}", "fulfillmentText", shown, "payload", "google", google)
               : NULL;
    char *body = env ? json_dumps(env, JSON_COMPACT) : NULL;
    int rc = body ? d->host->reply(out, 200, JSON_CT, body, strlen(body)) : WH_ERR_NOMEM;
    free(body);
    json_decref(env);
    free(speech);
    free(text);
    free(plain);
    return rc;
}

static const wh_connector k_dialogflow = {
    WH_CONNECTOR_HEADER("dialogflow", "1.0.0",
                        "Dialogflow ES fulfillment webhook (intents in, fulfillment out)"),
    .options = k_options,
    .init = df_init,
    .destroy = df_destroy,
    .webhook = df_webhook,
    .respond = df_respond,
    .respond_keys = (const char *const[]){"speech", "text", "end_session", NULL},
    .operations = NULL,
};

WH_CONNECTOR_EXPORT(k_dialogflow)
