/*
 * slack_ingress.c — requests from Slack to /hooks/<instance>: signature and
 * timestamp verification, then Events API callbacks, slash commands and
 * interactivity payloads decoded into events; the answers for callers that
 * wait (respond) and for answers that came too late (late → response_url).
 *
 * Also answers Slack's ssl_check probes of slash command URLs (an empty 200).
 *
 * Owns: the mapping from Slack's payloads to event data and from a rule's
 * generic response to Slack's message JSON. Must not: look at anything in a
 * request before its signature is verified, do network I/O on the gateway's
 * threads other than through host->http, keep borrowed request data, or log
 * secrets, response URLs or payloads.
 */
#include "slack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KIND_MAX 64

static int refuse(const wh_host *h, wh_webhook *wh, int status, const char *error,
                  const char *detail)
{
    int rc = h->reject(wh, status, error, detail);
    return rc < 0 ? rc : WH_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Verification                                                              */

/*
 * X-Slack-Signature = "v0=" + hex HMAC-SHA256(signing_secret,
 * "v0:" + X-Slack-Request-Timestamp + ":" + raw body), compared in constant
 * time, and the timestamp within max_skew of the clock. Returns 1 when the
 * request is authentic; otherwise rejects it (401) and returns 0, or a
 * negative code when even that failed.
 */
static int verify(slack *s, const wh_request *req, wh_webhook *wh, const char *body, size_t len)
{
    const wh_host *h = s->host;
    const char *ts = h->req_header(req, "X-Slack-Request-Timestamp");
    const char *sig = h->req_header(req, "X-Slack-Signature");
    if (!ts || !sig) {
        int rc = h->reject(wh, 401, "missing_signature",
                           "X-Slack-Signature and X-Slack-Request-Timestamp are required");
        return rc < 0 ? rc : 0;
    }
    size_t tlen = strlen(ts);
    long long t = 0;
    bool ts_ok = tlen >= 1 && tlen <= 12;
    for (size_t i = 0; ts_ok && i < tlen; i++) {
        ts_ok = ts[i] >= '0' && ts[i] <= '9';
        t = t * 10 + (ts[i] - '0');
    }
    if (!ts_ok) {
        int rc = h->reject(wh, 401, "bad_timestamp",
                           "X-Slack-Request-Timestamp must be seconds since the epoch");
        return rc < 0 ? rc : 0;
    }
    unsigned char got[32];
    bool well_formed = strncmp(sig, "v0=", 3) == 0 && strlen(sig + 3) == 64;
    for (size_t i = 0; well_formed && i < 32; i++) {
        int hi = hexval(sig[3 + 2 * i]), lo = hexval(sig[4 + 2 * i]);
        well_formed = hi >= 0 && lo >= 0;
        got[i] = well_formed ? (unsigned char)(hi << 4 | lo) : 0;
    }
    if (!well_formed) {
        int rc =
            h->reject(wh, 401, "bad_signature", "X-Slack-Signature must be v0=<64 hex digits>");
        return rc < 0 ? rc : 0;
    }
    size_t mlen = 3 + tlen + 1 + len;
    char *msg = malloc(mlen + 1);
    if (!msg) {
        return WH_ERR_NOMEM;
    }
    memcpy(msg, "v0:", 3);
    memcpy(msg + 3, ts, tlen);
    msg[3 + tlen] = ':';
    if (len) {
        memcpy(msg + 4 + tlen, body, len);
    }
    unsigned char mac[64];
    size_t mac_len = 0;
    int rc = h->hmac("sha256", s->signing_secret, s->signing_secret_len, msg, mlen, mac, &mac_len);
    free(msg);
    if (rc != WH_OK || mac_len != 32) {
        h->log(s->inst, WH_LOG_ERROR, "hmac failed (%d)", rc);
        return rc < 0 ? rc : WH_ERR;
    }
    if (!h->ct_equal(mac, 32, got, 32)) {
        rc = h->reject(wh, 401, "bad_signature", "X-Slack-Signature does not match the request");
        return rc < 0 ? rc : 0;
    }
    long long now = (long long)(h->now_ms(s->inst) / 1000);
    long long skew = now > t ? now - t : t - now;
    if (skew > s->max_skew_s) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "X-Slack-Request-Timestamp is %lld s away from the clock (at most %ld)", skew,
                 s->max_skew_s);
        rc = h->reject(wh, 401, "stale_timestamp", detail);
        return rc < 0 ? rc : 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Helpers for event data                                                    */

static bool valid_kind(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= KIND_MAX || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                               (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return n > 0 && strspn(s, ".") != n;
}

/* A string member, or the "id" of an object member (Slack uses both shapes). */
static const char *str_or_id(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    return jstr(v, "id");
}

/* set key to a string, or null when s is NULL; returns nonzero on failure */
static int set_str(json_t *obj, const char *key, const char *s)
{
    return json_object_set_new(obj, key, s ? json_string(s) : json_null());
}

static int set_str_opt(json_t *obj, const char *key, const char *s)
{
    return s ? json_object_set_new(obj, key, json_string(s)) : 0;
}

/* A deep copy without the deprecated verification `token`. New reference or NULL. */
static json_t *raw_copy(const json_t *v)
{
    json_t *c = json_deep_copy(v);
    if (json_is_object(c)) {
        json_object_del(c, "token");
    }
    return c;
}

/* ------------------------------------------------------------------------ */
/* Events API                                                                */

/* Learn the bot's user id and the app id from a signed event envelope. */
static void learn_from_envelope(slack *s, const json_t *env)
{
    const json_t *auths = json_object_get(env, "authorizations");
    size_t i;
    const json_t *a;
    const char *bot_user = NULL;
    json_array_foreach(auths, i, a)
    {
        if (json_is_true(json_object_get(a, "is_bot")) && jstr_nonempty(a, "user_id")) {
            bot_user = jstr(a, "user_id");
            break;
        }
    }
    slack_learn_identity(s, bot_user, NULL, jstr_nonempty(env, "api_app_id"));
}

/* From this app's bot: the event, or the message it carries (message_changed). */
static bool event_from_self(slack *s, const json_t *ev)
{
    const json_t *inner = json_object_get(ev, "message");
    return slack_from_self(s, ev) || (json_is_object(inner) && slack_from_self(s, inner));
}

/* The event data for one event_callback. New reference or NULL (out of memory). */
static json_t *event_data(slack *s, const json_t *env, const json_t *ev, const char *type)
{
    const json_t *inner = json_object_get(ev, "message"); /* message_changed and friends */
    const json_t *item = json_object_get(ev, "item");     /* reactions */
    const char *channel = str_or_id(ev, "channel");
    if (!channel) {
        channel = jstr(item, "channel");
    }
    if (!channel) {
        channel = jstr(ev, "channel_id");
    }
    const char *user = str_or_id(ev, "user");
    if (!user) {
        user = jstr(inner, "user");
    }
    /* A bot's message without a user id reads as a poll gives it: `user` is its bot id,
     * `author` its bot profile's name or username (slack_bot_author). */
    const char *bot_author = NULL;
    if (!user) {
        const json_t *m = slack_bot_author(ev) ? ev : inner;
        bot_author = slack_bot_author(m);
        if (bot_author) {
            user = jstr_nonempty(m, "bot_id");
        }
    }
    const char *text = jstr(ev, "text");
    if (!text) {
        text = jstr(inner, "text");
    }
    /* the message's own ts names it: for message_changed that is the inner message's
     * (the outer ts is the edit's), so an edited reply is not a second reply */
    const char *ts = jstr(item, "ts");
    if (!ts) {
        ts = jstr(inner, "ts");
    }
    if (!ts) {
        ts = jstr(ev, "ts");
    }
    if (!ts) {
        ts = jstr(ev, "event_ts");
    }
    const char *thread_ts = jstr(ev, "thread_ts");
    if (!thread_ts) {
        thread_ts = jstr(inner, "thread_ts");
    }
    bool self = event_from_self(s, ev);

    json_t *d = json_object();
    if (!d) {
        return NULL;
    }
    int bad = set_str(d, "event_id", jstr(env, "event_id"));
    bad |= set_str(d, "type", type);
    bad |= set_str(d, "team", jstr(env, "team_id") ? jstr(env, "team_id") : jstr(ev, "team"));
    bad |= set_str(d, "channel", channel);
    bad |= set_str(d, "user", user);
    if (text) {
        sbuf plain = {0};
        slack_plain_text(s, &plain, text);
        bad |= plain.oom || set_str(d, "text", plain.data ? plain.data : "");
        free(plain.data);
        bad |= set_str(d, "mrkdwn", text);
    } else {
        bad |= set_str(d, "text", NULL);
    }
    bad |= set_str(d, "ts", ts);
    bad |= set_str(d, "thread_ts", thread_ts);
    bad |= json_object_set_new(d, "from_self", json_boolean(self));
    bad |= set_str_opt(d, "subtype", jstr(ev, "subtype"));
    bad |= set_str_opt(d, "bot_id", jstr(ev, "bot_id"));
    bad |= set_str_opt(d, "reaction", jstr(ev, "reaction"));
    bad |= set_str_opt(d, "item_user", jstr(ev, "item_user"));
    bad |= set_str_opt(d, "channel_type", jstr(ev, "channel_type"));
    const json_t *etime = json_object_get(env, "event_time");
    if (json_is_integer(etime)) {
        bad |= json_object_set_new(d, "event_time", json_integer(json_integer_value(etime)));
    }
    /* the message's own time, as a poll gives it (an await stores it with the reply) */
    char when[40];
    if (ts && slack_ts_rfc3339(ts, when, sizeof when)) {
        bad |= json_object_set_new(d, "time", json_string(when));
    }
    char name[256];
    if (bot_author) {
        bad |= json_object_set_new(d, "author", json_string(bot_author));
    } else if (user && slack_user_cached(s, user, name, sizeof name)) {
        /* for a pushed reply: the name a poll would give (when it is known already) */
        bad |= json_object_set_new(d, "author", json_string(name));
    }
    json_t *raw = raw_copy(ev);
    bad |= raw ? json_object_set_new(d, "raw", raw) : -1;
    if (bad) {
        json_decref(d);
        return NULL;
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* Before the event is published: who we are, and the author's name         */

/*
 * Two things may be missing when an event arrives, and both change what
 * rules see:
 *   - this app's identity (auth.test, once per instance): without its bot id,
 *     a message our bot posted with only `bot_id` would read from_self:false
 *     and a rule could answer its own post;
 *   - the author's name: a pushed thread reply should name its author as a
 *     poll would ("Ben", not "U1"), since the first of the two to arrive is
 *     what an await stores.
 * Then webhook() returns WH_PENDING and the lookups run on the delivery thread
 * (auth.test shared with every other caller, users.info in its paced lane), at
 * once; the event is emitted when both answered, or after LOOKUP_WAIT_MS at the
 * latest with what is known by then, well inside Slack's 3 seconds. The
 * callbacks (lookups and timer) share the context; the last one frees it.
 */
#define LOOKUP_WAIT_MS 1000

typedef struct pending_ev {
    slack *s;
    wh_webhook *wh;
    json_t *data;
    char kind[KIND_MAX + 1];
    char user[SLACK_ID_MAX]; /* to name, or "" */
    bool want_identity;
    int refs;        /* the start, the timer, each lookup */
    int outstanding; /* the start and the lookups not answered yet */
    bool finished;
} pending_ev;

static void pending_finish(pending_ev *n)
{
    if (n->finished) {
        return;
    }
    n->finished = true;
    const wh_host *h = n->s->host;
    char name[256];
    if (n->user[0] && !json_object_get(n->data, "author") &&
        !json_is_true(json_object_get(n->data, "from_self")) &&
        slack_user_cached(n->s, n->user, name, sizeof name)) {
        json_object_set_new(n->data, "author", json_string(name));
    }
    if (h->emit(n->wh, n->kind, n->data) != WH_OK) {
        json_decref(n->data);
        h->reject(n->wh, 500, "connector_error", "cannot publish the event");
    }
    n->data = NULL;
    h->webhook_done(n->wh); /* n->wh is the hub's again from here */
}

static void pending_release(pending_ev *n)
{
    if (--n->refs == 0) {
        pending_finish(n);
        json_decref(n->data);
        free(n);
    }
}

/* One lookup (or the start) is over: publish when it was the last. */
static void pending_step_done(pending_ev *n)
{
    if (--n->outstanding == 0) {
        pending_finish(n);
    }
    pending_release(n);
}

static void pending_timeout(void *user)
{
    pending_ev *n = user;
    pending_finish(n);
    pending_release(n);
}

static void pending_identity_done(void *user, const slack_result *r)
{
    pending_ev *n = user;
    (void)r; /* a failure is logged by slack_api.c; the event goes out with what is known */
    if (!n->finished && event_from_self(n->s, json_object_get(n->data, "raw"))) {
        json_object_set_new(n->data, "from_self", json_true());
    }
    pending_step_done(n);
}

static void pending_name_done(void *user, const slack_result *r)
{
    pending_ev *n = user;
    if (r->outcome == WH_CALL_OK) {
        const char *name = slack_name_of_user(json_object_get(r->body, "user"));
        slack_user_remember(n->s, n->user, name ? name : n->user);
    } else if (r->outcome == WH_CALL_FAIL) {
        slack_user_remember(n->s, n->user, n->user); /* user_not_found, no users:read */
    }
    pending_step_done(n);
}

static void pending_start(void *user)
{
    pending_ev *n = user;
    slack *s = n->s;
    const wh_host *h = s->host;
    n->outstanding = 1; /* this function: nothing is published while lookups start */
    n->refs++;
    if (h->defer(s->inst, LOOKUP_WAIT_MS, pending_timeout, n) != WH_OK) {
        n->refs--;
    }
    if (n->want_identity) {
        n->refs++;
        n->outstanding++;
        slack_identity_fetch(s, pending_identity_done, n);
    }
    char name[256];
    json_t *args = NULL;
    if (n->user[0] && !n->finished && !slack_user_cached(s, n->user, name, sizeof name) &&
        (args = json_pack("{s:s}", "user", n->user)) != NULL) {
        n->refs++;
        n->outstanding++;
        slack_api_call(s, "users.info", true, args, NULL, pending_name_done, n);
        json_decref(args);
    }
    pending_step_done(n);
}

/* Whether the event could be this app's own but nothing says so yet: learn who we are. */
static bool needs_identity(slack *s, const json_t *ev, const json_t *data)
{
    if (json_is_true(json_object_get(data, "from_self")) || !slack_identity_wanted(s)) {
        return false;
    }
    const json_t *inner = json_object_get(ev, "message");
    if (jstr_nonempty(ev, "bot_id") || jstr_nonempty(inner, "bot_id")) {
        return true; /* a bot's post: ours only when its bot id is ours */
    }
    char user_id[SLACK_ID_MAX];
    slack_identity(s, user_id, NULL, NULL);
    return !user_id[0] && jstr_nonempty(data, "user"); /* our bot user, perhaps */
}

/*
 * Emit `data` once it is complete (above). Returns WH_PENDING when the lookups
 * were started (data taken), or WH_OK when nothing is missing or they cannot
 * start (data still the caller's, to emit now).
 */
static int emit_complete(slack *s, wh_webhook *wh, const char *kind, const json_t *ev, json_t *data)
{
    const wh_host *h = s->host;
    if (!WH_HOST_HAS(h, defer) || !WH_HOST_HAS(h, webhook_done)) {
        return WH_OK;
    }
    bool identity = needs_identity(s, ev, data);
    const char *user = jstr(data, "user");
    char name[256];
    bool naming = user && *user && strlen(user) < SLACK_ID_MAX &&
                  !json_object_get(data, "author") &&
                  !json_is_true(json_object_get(data, "from_self")) &&
                  !slack_user_cached(s, user, name, sizeof name);
    if (!identity && !naming) {
        if (slack_identity_wanted(s)) {
            slack_identity_kick(s); /* not needed for this one: learn it for the next */
        }
        return WH_OK;
    }
    pending_ev *n = calloc(1, sizeof *n);
    if (!n) {
        return WH_OK;
    }
    n->s = s;
    n->wh = wh;
    n->data = data;
    n->refs = 1;
    n->want_identity = identity;
    snprintf(n->kind, sizeof n->kind, "%s", kind);
    if (naming) {
        snprintf(n->user, sizeof n->user, "%s", user);
    }
    if (h->defer(s->inst, 0, pending_start, n) != WH_OK) {
        free(n);
        return WH_OK;
    }
    if (!identity && slack_identity_wanted(s)) {
        slack_identity_kick(s);
    }
    return WH_PENDING;
}

static int answer_json(const wh_host *h, wh_webhook *wh, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) {
        return WH_ERR_NOMEM;
    }
    int rc = h->answer(wh, 200, "application/json", text, strlen(text));
    free(text);
    return rc;
}

static int events_api(slack *s, wh_webhook *wh, const char *body, size_t len)
{
    const wh_host *h = s->host;
    json_error_t jerr;
    json_t *env = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(env)) {
        char detail[256];
        snprintf(detail, sizeof detail, "the body is not a JSON object: %s (line %d, column %d)",
                 env ? "another JSON value" : jerr.text, jerr.line, jerr.column);
        json_decref(env);
        return refuse(h, wh, 400, "bad_json", detail);
    }
    int rc = WH_OK;
    const char *type = jstr(env, "type");
    if (type && strcmp(type, "url_verification") == 0) {
        const char *challenge = jstr(env, "challenge");
        if (!challenge) {
            rc = refuse(h, wh, 400, "bad_event", "url_verification without a `challenge`");
        } else {
            rc = answer_json(h, wh, json_pack("{s:s}", "challenge", challenge));
        }
    } else if (type && strcmp(type, "event_callback") == 0) {
        const json_t *ev = json_object_get(env, "event");
        const char *event_id = jstr_nonempty(env, "event_id");
        const char *kind = jstr(ev, "type");
        if (!json_is_object(ev) || !event_id || !kind || !valid_kind(kind)) {
            rc = refuse(h, wh, 400, "bad_event",
                        "event_callback needs `event_id` and an `event` object whose `type` "
                        "matches [A-Za-z0-9_.-]{1,64}");
            goto done;
        }
        learn_from_envelope(s, env);
        if (WH_HOST_HAS(h, dedupe)) {
            /* Slack retries (X-Slack-Retry-Num) carry the same event_id: answered, not rerun */
            int seen = h->dedupe(wh, event_id);
            if (seen != 0) {
                rc = seen < 0 ? seen : WH_OK;
                goto done;
            }
        }
        json_t *data = event_data(s, env, ev, kind);
        if (!data) {
            rc = WH_ERR_NOMEM;
            goto done;
        }
        if (emit_complete(s, wh, kind, ev, data) == WH_PENDING) {
            rc = WH_PENDING; /* emitted on the delivery thread, then webhook_done() */
            goto done;
        }
        rc = h->emit(wh, kind, data);
        if (rc != WH_OK) {
            json_decref(data);
            rc = rc < 0 ? rc : WH_ERR;
        }
        /* the hub answers 200 {"ok":true,…} once the event is journaled */
    } else if (type && strcmp(type, "app_rate_limited") == 0) {
        h->log(s->inst, WH_LOG_WARN,
               "Slack is dropping this app's events for a minute (app_rate_limited)");
        rc = answer_json(h, wh, json_pack("{s:b}", "ok", 1));
    } else {
        char detail[160];
        snprintf(detail, sizeof detail, "unknown Events API type %.64s", type ? type : "(none)");
        rc = refuse(h, wh, 400, "bad_event", detail);
    }
done:
    json_decref(env);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Slash commands and interactivity                                          */

static int command(slack *s, wh_webhook *wh, const json_t *form)
{
    const wh_host *h = s->host;
    const char *cmd = jstr_nonempty(form, "command");
    json_t *d = json_object();
    if (!d) {
        return WH_ERR_NOMEM;
    }
    int bad = set_str(d, "command", cmd);
    bad |= set_str(d, "text", jstr(form, "text") ? jstr(form, "text") : "");
    bad |= set_str(d, "user", jstr(form, "user_id"));
    bad |= set_str(d, "user_name", jstr(form, "user_name"));
    bad |= set_str(d, "channel", jstr(form, "channel_id"));
    bad |= set_str(d, "channel_name", jstr(form, "channel_name"));
    bad |= set_str(d, "team", jstr(form, "team_id"));
    bad |= set_str(d, "response_url", jstr(form, "response_url"));
    bad |= set_str(d, "trigger_id", jstr(form, "trigger_id"));
    json_t *raw = raw_copy(form);
    bad |= raw ? json_object_set_new(d, "raw", raw) : -1;
    if (bad) {
        json_decref(d);
        return WH_ERR_NOMEM;
    }
    int rc = h->emit(wh, "command", d);
    if (rc != WH_OK) {
        json_decref(d);
        return rc < 0 ? rc : WH_ERR;
    }
    json_t *fallback = json_object(); /* an empty 200: Slack shows nothing, late() follows */
    rc = fallback ? h->wait(wh, s->deadline_ms, fallback) : WH_ERR_NOMEM;
    json_decref(fallback);
    return rc;
}

/* The chosen value of a block action, whatever its element. Borrowed or NULL. */
static const char *action_value(const json_t *a)
{
    const char *v = jstr(a, "value");
    if (!v) {
        v = jstr(json_object_get(a, "selected_option"), "value");
    }
    static const char *const keys[] = {"selected_date",    "selected_time",         "selected_user",
                                       "selected_channel", "selected_conversation", NULL};
    for (int i = 0; !v && keys[i]; i++) {
        v = jstr(a, keys[i]);
    }
    return v;
}

static int interaction(slack *s, wh_webhook *wh, const char *payload_text)
{
    const wh_host *h = s->host;
    json_error_t jerr;
    json_t *p = json_loads(payload_text, 0, &jerr);
    if (!json_is_object(p) || !jstr_nonempty(p, "type")) {
        json_decref(p);
        return refuse(h, wh, 400, "bad_payload",
                      "the `payload` field must hold a JSON object with a `type`");
    }
    const json_t *a0 = json_array_get(json_object_get(p, "actions"), 0);
    const json_t *user = json_object_get(p, "user");
    const json_t *container = json_object_get(p, "container");
    const json_t *message = json_object_get(p, "message");
    const char *channel = str_or_id(p, "channel");
    if (!channel) {
        channel = jstr(container, "channel_id");
    }
    const char *message_ts = jstr(message, "ts");
    if (!message_ts) {
        message_ts = jstr(container, "message_ts");
    }
    const char *response_url = jstr(p, "response_url");
    if (!response_url) {
        response_url = jstr(json_array_get(json_object_get(p, "response_urls"), 0), "response_url");
    }
    const char *callback_id = jstr(p, "callback_id");
    if (!callback_id) {
        callback_id = jstr(json_object_get(p, "view"), "callback_id");
    }
    json_t *d = json_object();
    int bad = d ? 0 : -1;
    if (d) {
        bad |= set_str(d, "type", jstr(p, "type"));
        bad |= set_str(d, "action_id", jstr(a0, "action_id"));
        bad |= set_str(d, "block_id", jstr(a0, "block_id"));
        bad |= set_str(d, "value", action_value(a0));
        bad |=
            set_str(d, "user", json_is_string(user) ? json_string_value(user) : jstr(user, "id"));
        bad |= set_str(d, "user_name",
                       jstr(user, "username") ? jstr(user, "username") : jstr(user, "name"));
        bad |= set_str(d, "channel", channel);
        bad |= set_str(d, "message_ts", message_ts);
        bad |= set_str(d, "thread_ts", jstr(message, "thread_ts"));
        bad |= set_str(d, "team", str_or_id(p, "team"));
        bad |= set_str(d, "response_url", response_url);
        bad |= set_str(d, "trigger_id", jstr(p, "trigger_id"));
        bad |= set_str(d, "callback_id", callback_id);
        json_t *raw = raw_copy(p);
        bad |= raw ? json_object_set_new(d, "raw", raw) : -1;
    }
    json_decref(p);
    if (bad) {
        json_decref(d);
        return WH_ERR_NOMEM;
    }
    int rc = h->emit(wh, "interaction", d);
    if (rc != WH_OK) {
        json_decref(d);
        return rc < 0 ? rc : WH_ERR;
    }
    json_t *fallback = json_object();
    rc = fallback ? h->wait(wh, s->deadline_ms, fallback) : WH_ERR_NOMEM;
    json_decref(fallback);
    return rc;
}

int slack_webhook(void *state, const wh_request *req, wh_webhook *wh)
{
    slack *s = state;
    const wh_host *h = s->host;
    size_t len = 0;
    const char *body = h->req_body(req, &len);
    if (!body) {
        body = "";
        len = 0;
    }
    /* 1. Nothing is looked at before the request is known to come from Slack. */
    int ok = verify(s, req, wh, body, len);
    if (ok != 1) {
        return ok < 0 ? ok : WH_OK;
    }
    /* 2. By media type: the Events API is JSON, commands and interactions are forms. */
    const char *ct = h->req_content_type(req);
    if (ct && strcasecmp(ct, "application/json") == 0) {
        return events_api(s, wh, body, len);
    }
    if (!ct || strcasecmp(ct, "application/x-www-form-urlencoded") != 0) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "expected application/json or application/x-www-form-urlencoded, got %.80s",
                 ct && *ct ? ct : "no Content-Type");
        return refuse(h, wh, 415, "unsupported_media_type", detail);
    }
    json_t *form = h->form_decode(body, len);
    if (!form) {
        return refuse(h, wh, 400, "bad_form",
                      "malformed form body (a bad %-escape, invalid UTF-8 or %00)");
    }
    int rc;
    const char *payload = jstr(form, "payload");
    const char *ssl_check = jstr(form, "ssl_check");
    if (ssl_check && strcmp(ssl_check, "1") == 0) {
        /* Slack checking a slash command's certificate: an empty 200, no event (as Bolt's
         * SslCheck). Like every request it was verified above: Slack signs them all. */
        rc = h->answer(wh, 200, "text/plain", "", 0);
    } else if (payload) {
        rc = interaction(s, wh, payload);
    } else if (jstr_nonempty(form, "command")) {
        rc = command(s, wh, form);
    } else {
        rc = refuse(h, wh, 400, "bad_form",
                    "a form from Slack has `command` (slash command), `payload` "
                    "(interactivity) or `ssl_check=1`");
    }
    json_decref(form);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                   */

/*
 * Slack's message JSON for a rule's response: {response_type, text, blocks,
 * replace_original, delete_original}. NULL when the response has nothing
 * to show (no text, no blocks, no delete_original). New reference.
 */
static json_t *message_of(const json_t *response)
{
    const json_t *text = json_object_get(response, "text");
    const json_t *blocks = json_object_get(response, "blocks");
    const json_t *del = json_object_get(response, "delete_original");
    bool has_text = json_is_string(text) && json_string_length(text) > 0;
    bool has_blocks = json_is_array(blocks);
    if (!has_text && !has_blocks && !json_is_true(del)) {
        return NULL;
    }
    const json_t *eph = json_object_get(response, "ephemeral");
    const char *type = jstr(response, "response_type");
    if (!type || (strcmp(type, "ephemeral") != 0 && strcmp(type, "in_channel") != 0)) {
        type = json_is_false(eph) ? "in_channel" : "ephemeral";
    }
    json_t *m = json_pack("{s:s}", "response_type", type);
    if (!m) {
        return NULL;
    }
    if (has_text) {
        json_object_set(m, "text", (json_t *)text);
    }
    if (has_blocks) {
        json_object_set(m, "blocks", (json_t *)blocks);
    }
    static const char *const flags[] = {"replace_original", "delete_original", NULL};
    for (int i = 0; flags[i]; i++) {
        const json_t *f = json_object_get(response, flags[i]);
        if (json_is_boolean(f)) {
            json_object_set(m, flags[i], (json_t *)f);
        }
    }
    return m;
}

static int reply_json(const wh_host *h, wh_reply *out, const json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (!text) {
        return WH_ERR_NOMEM;
    }
    int rc = h->reply(out, 200, "application/json", text, strlen(text));
    free(text);
    return rc;
}

int slack_respond(void *state, const json_t *event, const json_t *response, wh_reply *out)
{
    slack *s = state;
    const wh_host *h = s->host;
    const char *kind = jstr(event, "kind");
    const json_t *data = json_object_get(event, "data");
    if (kind && strcmp(kind, "interaction") == 0) {
        if (json_object_get(response, "response_action")) {
            /* a view_submission's answer (errors, update, push, clear) goes in the body */
            json_t *ra = json_object();
            static const char *const keys[] = {"response_action", "errors", "view", NULL};
            for (int i = 0; ra && keys[i]; i++) {
                json_t *v = json_object_get(response, keys[i]);
                if (v) {
                    json_object_set(ra, keys[i], v);
                }
            }
            int rc = ra ? reply_json(h, out, ra) : WH_ERR_NOMEM;
            json_decref(ra);
            return rc;
        }
        /* block actions are acknowledged empty; a message goes to the response_url */
        json_t *m = message_of(response);
        if (m) {
            const char *url = jstr_nonempty(data, "response_url");
            int rc = url ? slack_post_response_url(s, url, m) : WH_ERR_NOT_FOUND;
            if (rc != WH_OK) {
                h->log(s->inst, WH_LOG_WARN, "interaction answer not sent: %s",
                       url ? "cannot start the request" : "the payload has no response_url");
            }
            json_decref(m);
        }
        return h->reply(out, 200, "text/plain", "", 0);
    }
    if (kind && strcmp(kind, "command") == 0) {
        json_t *m = message_of(response);
        if (!m) {
            return h->reply(out, 200, "text/plain", "", 0);
        }
        int rc = reply_json(h, out, m);
        json_decref(m);
        return rc;
    }
    return reply_json(h, out, response ? response : json_null());
}

int slack_late(void *state, const json_t *event, const json_t *response)
{
    slack *s = state;
    const char *kind = jstr(event, "kind");
    if (!kind || (strcmp(kind, "command") != 0 && strcmp(kind, "interaction") != 0)) {
        return WH_OK;
    }
    json_t *m = message_of(response);
    if (!m) {
        if (json_object_get(response, "response_action")) {
            s->host->log(s->inst, WH_LOG_WARN,
                         "a late response_action cannot be delivered (Slack closed the view)");
        }
        return WH_OK;
    }
    const char *url = jstr_nonempty(json_object_get(event, "data"), "response_url");
    int rc = url ? slack_post_response_url(s, url, m) : WH_ERR_NOT_FOUND;
    json_decref(m);
    return rc;
}
