/*
 * alexa_notify.c — the Alexa connector's `notify` operation: one
 * AMAZON.MessageAlert.Activated event ("You have 3 new messages from your
 * team") for one user through the Proactive Events API, with the access
 * token it needs from Login with Amazon (OAuth client credentials, scope
 * alexa::proactive_events).
 *
 * Owns: argument checks, the event body, the referenceId (derived from the
 * call's idempotency key, so a retried call updates the same event instead
 * of notifying twice), the token cache (one token request however many calls
 * wait; a token is kept until a minute before it expires and dropped after a
 * 401), and mapping answers to OK / RETRY / FAIL.
 *
 * Must not: log or put into a result the client secret, the client id or an
 * access token (errors name HTTP statuses and the APIs' short error codes
 * only); block; retry on its own beyond the one resend after a 401 (the hub
 * owns backoff). Everything after ax_notifier_new() runs on the delivery
 * thread, so the cache has no lock.
 */
#include "alexa_notify.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define EVENT_NAME "AMAZON.MessageAlert.Activated"
#define SCOPE_FORM "alexa%3A%3Aproactive_events" /* alexa::proactive_events, form-encoded */
#define TOKEN_MAX 8192                           /* bytes of an access token */
#define TOKEN_TTL_DEFAULT_S 3600                 /* when the answer has no expires_in */
#define TOKEN_TTL_MAX_S (30L * 86400)
#define TOKEN_MARGIN_S 60 /* refresh this long before the token expires */
#define RESPONSE_MAX (64 * 1024)
#define USER_MAX 1024
#define CREATOR_MAX 256
#define COUNT_MAX 1000000
#define REF_SIZE 72 /* "wh-" + 64 hex digits + NUL */

typedef struct nctx nctx;

struct ax_notifier {
    const wh_host *host;
    wh_instance *inst;
    char *client_id;     /* (secret) NULL when not configured */
    char *client_secret; /* (secret) */
    char *auth_url;
    char *events_url;
    long expiry_s;

    /* [delivery] the shared access token */
    char *auth_header;           /* "Authorization: Bearer <token>" (secret), or NULL */
    int64_t token_until;         /* the token is used until this time (ms) */
    unsigned token_gen;          /* grows with every token stored */
    bool fetching;               /* a token request is in flight */
    nctx *wait_head, *wait_tail; /* calls waiting for that request */
};

/* One notify call, from start to complete. */
struct nctx {
    nctx *next;
    ax_notifier *n;
    wh_call *call;
    char *body; /* the event, built once: a resend after a 401 is the same event */
    size_t body_len;
    unsigned gen;   /* the token generation the last send used */
    bool refreshed; /* a 401 already got this call a fresh token */
    char ref[REF_SIZE];
};

const wh_option ax_notify_args[] = {
    {"user", WH_OPT_STRING, NULL, WH_OPT_REQUIRED,
     "the Alexa user id (amzn1.ask.account.…, `user.id` of the skill's events)"},
    {"creator", WH_OPT_STRING, NULL, WH_OPT_REQUIRED,
     "who the messages are from: Alexa says \"… new messages from <creator>\""},
    {"count", WH_OPT_INT, NULL, WH_OPT_REQUIRED,
     "how many messages (1 or more; a template like \"{{unread}}\" works)"},
    {"urgency", WH_OPT_STRING, NULL, 0, "URGENT marks the messages urgent; empty or absent: not"},
    {NULL, 0, NULL, 0, NULL},
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* True when s has no byte below 0x20 (or 0x7f); spaces too when !spaces_ok. */
static bool clean_text(const char *s, bool spaces_ok)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || (!spaces_ok && *p == ' ')) {
            return false;
        }
    }
    return true;
}

/* An absolute http(s) URL without white space, control characters or a fragment. */
static bool url_ok(const char *u, bool query_ok)
{
    size_t skip = strncmp(u, "https://", 8) == 0 ? 8 : strncmp(u, "http://", 7) == 0 ? 7 : 0;
    return skip && u[skip] && u[skip] != '/' && clean_text(u, false) && !strchr(u, '#') &&
           (query_ok || !strchr(u, '?'));
}

/* application/x-www-form-urlencoded value (RFC 3986 unreserved stay). malloc'd or NULL. */
static char *form_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) {
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* RFC 3339 UTC with milliseconds: 2027-01-15T08:00:00.000Z */
static void rfc3339(int64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char base[32] = "1970-01-01T00:00:00";
    if (gmtime_r(&t, &tm)) {
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    }
    snprintf(out, size, "%s.%03dZ", base, (int)(ms % 1000));
}

/* "wh-" + hex SHA-256 of the call's idempotency key: stable across retries, any key. */
static bool reference_id(const char *key, char out[REF_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(key, strlen(key), md, &len, EVP_sha256(), NULL) || len != 32) {
        return false;
    }
    memcpy(out, "wh-", 3);
    wh_hex(md, len, out + 3);
    return true;
}

/* A short, printable excerpt of a JSON answer's error field, or "". */
static void answer_error(const wh_http_response *r, const char *const *fields, char *out,
                         size_t size)
{
    out[0] = '\0';
    if (!r->body || r->body_len == 0) {
        return;
    }
    json_t *b = json_loadb(r->body, r->body_len, 0, NULL);
    const char *m = NULL;
    for (size_t i = 0; fields[i] && !m; i++) {
        m = json_string_value(json_object_get(b, fields[i]));
    }
    if (m) {
        size_t o = 0;
        for (const unsigned char *p = (const unsigned char *)m; *p && o + 1 < size; p++) {
            out[o++] = (*p < 0x20 || *p == 0x7f) ? ' ' : (char)*p;
        }
        out[o] = '\0';
    }
    json_decref(b);
}

static long retry_after(const ax_notifier *n, const wh_http_response *r)
{
    const char *v = json_string_value(json_object_get(r->headers, "retry-after"));
    if (!v || !WH_HOST_HAS(n->host, retry_after_ms)) {
        return 0;
    }
    long ms = n->host->retry_after_ms(n->inst, v);
    return ms > 0 ? ms : 0;
}

static bool transient(int status)
{
    return status == 0 || status == 408 || status == 429 || status >= 500;
}

/* ------------------------------------------------------------------------ */
/* Calls                                                                     */

static void ctx_free(nctx *c)
{
    if (c) {
        free(c->body);
        free(c);
    }
}

/* Complete the call and free its context. `status` <= 0: the event got no answer. */
static void finish(nctx *c, wh_outcome outcome, int status, long retry_after_ms, const char *error)
{
    const wh_host *h = c->n->host;
    wh_call *call = c->call;
    json_t *result = json_pack("{s:s}", "reference_id", c->ref);
    if (result && status > 0) {
        json_object_set_new(result, "status", json_integer(status));
    }
    ctx_free(c);
    if (!result && outcome == WH_CALL_OK) {
        /* accepted, but no result to give: a retry updates the same event */
        h->complete(call, WH_CALL_RETRY, NULL, 0, "notify: out of memory");
        return;
    }
    h->complete(call, outcome, result, retry_after_ms, error);
}

static void with_token(nctx *c);

static void event_done(void *user, const wh_http_response *r)
{
    nctx *c = user;
    ax_notifier *n = c->n;
    char why[320], detail[200];
    static const char *const fields[] = {"message", "code", "error", NULL};
    if (r->status >= 200 && r->status <= 299) {
        finish(c, WH_CALL_OK, r->status, 0, NULL);
        return;
    }
    if (r->status == 401 && !c->refreshed) {
        /* the token expired early or was revoked: one fresh token, one resend */
        c->refreshed = true;
        if (c->gen == n->token_gen) {
            free_secret(n->auth_header);
            n->auth_header = NULL;
            n->token_until = 0;
        }
        n->host->log(n->inst, WH_LOG_INFO,
                     "notify: Proactive Events API answered 401: fetching a new access token");
        with_token(c);
        return;
    }
    if (r->status == 0) {
        snprintf(why, sizeof why, "notify: Proactive Events API: %s",
                 r->timed_out ? "timed out" : (r->error ? r->error : "no answer"));
        finish(c, WH_CALL_RETRY, 0, 0, why);
        return;
    }
    answer_error(r, fields, detail, sizeof detail);
    snprintf(why, sizeof why, "notify: Proactive Events API answered HTTP %d%s%s%s", r->status,
             detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
    if (r->status == 401) {
        snprintf(why + strlen(why), sizeof why - strlen(why),
                 " with a fresh token: check the skill's permissions");
    }
    if (transient(r->status)) {
        finish(c, WH_CALL_RETRY, r->status, retry_after(n, r), why);
    } else {
        finish(c, WH_CALL_FAIL, r->status, 0, why);
    }
}

static void send_event(nctx *c)
{
    ax_notifier *n = c->n;
    const char *headers[] = {n->auth_header, "Content-Type: application/json", NULL};
    wh_http_request hr = {
        .struct_size = sizeof hr,
        .method = "POST",
        .url = n->events_url,
        .headers = headers,
        .body = c->body,
        .body_len = c->body_len,
        .timeout_ms = 0,
        .max_response = RESPONSE_MAX,
    };
    c->gen = n->token_gen;
    int rc = n->host->http(n->inst, &hr, event_done, c);
    if (rc != WH_OK) {
        char why[96];
        snprintf(why, sizeof why, "notify: cannot start the request (%d)", rc);
        finish(c, rc == WH_ERR_INVALID ? WH_CALL_FAIL : WH_CALL_RETRY, 0, 0, why);
    }
}

/* ------------------------------------------------------------------------ */
/* The access token                                                          */

/* Complete every waiting call with the same outcome (the token request failed). */
static void fail_waiters(ax_notifier *n, wh_outcome outcome, long retry_after_ms, const char *error)
{
    nctx *c = n->wait_head;
    n->wait_head = n->wait_tail = NULL;
    while (c) {
        nctx *next = c->next;
        finish(c, outcome, 0, retry_after_ms, error);
        c = next;
    }
}

/* Store a token from a 2xx answer; false when the answer holds none. */
static bool store_token(ax_notifier *n, const wh_http_response *r, long *ttl_s)
{
    json_t *b = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    const json_t *tok = json_object_get(b, "access_token");
    const char *type = json_string_value(json_object_get(b, "token_type"));
    const json_t *exp = json_object_get(b, "expires_in");
    const char *t = json_string_value(tok);
    bool ok = t && *t && json_string_length(tok) == strlen(t) && strlen(t) <= TOKEN_MAX &&
              clean_text(t, false) && (!type || strcasecmp(type, "bearer") == 0);
    char *header = NULL;
    if (ok) {
        size_t len = strlen("Authorization: Bearer ") + strlen(t) + 1;
        header = malloc(len);
        ok = header != NULL;
        if (ok) {
            snprintf(header, len, "Authorization: Bearer %s", t);
        }
    }
    json_int_t ttl = json_is_integer(exp) ? json_integer_value(exp) : TOKEN_TTL_DEFAULT_S;
    if (ttl < 1) {
        ttl = 1;
    }
    if (ttl > TOKEN_TTL_MAX_S) {
        ttl = TOKEN_TTL_MAX_S;
    }
    json_decref(b);
    if (!ok) {
        return false;
    }
    json_int_t margin = ttl >= 2 * TOKEN_MARGIN_S ? TOKEN_MARGIN_S : ttl / 2;
    free_secret(n->auth_header);
    n->auth_header = header;
    n->token_until = n->host->now_ms(n->inst) + (int64_t)(ttl - margin) * 1000;
    n->token_gen++;
    *ttl_s = (long)ttl;
    return true;
}

static void token_done(void *user, const wh_http_response *r)
{
    ax_notifier *n = user;
    char why[320], code[64];
    static const char *const fields[] = {"error", NULL};
    n->fetching = false;
    if (r->status >= 200 && r->status <= 299) {
        long ttl = 0;
        if (!store_token(n, r, &ttl)) {
            fail_waiters(n, WH_CALL_FAIL, 0,
                         "notify: the token answer holds no bearer access_token (check auth_url)");
            return;
        }
        n->host->log(n->inst, WH_LOG_INFO, "notify: access token fetched, valid for %ld s", ttl);
        nctx *c = n->wait_head;
        n->wait_head = n->wait_tail = NULL;
        while (c) {
            nctx *next = c->next;
            c->next = NULL;
            send_event(c);
            c = next;
        }
        return;
    }
    if (r->status == 0) {
        snprintf(why, sizeof why, "notify: token request: %s",
                 r->timed_out ? "timed out" : (r->error ? r->error : "no answer"));
        fail_waiters(n, WH_CALL_RETRY, 0, why);
        return;
    }
    /* LWA's `error` is a short code (invalid_client, invalid_scope); nothing else is shown */
    answer_error(r, fields, code, sizeof code);
    if (!clean_text(code, false) || strlen(code) > 48) {
        code[0] = '\0';
    }
    snprintf(why, sizeof why, "notify: token request answered HTTP %d%s%s%s", r->status,
             code[0] ? " " : "", code,
             transient(r->status) ? "" : " (check client_id, client_secret and auth_url)");
    if (transient(r->status)) {
        fail_waiters(n, WH_CALL_RETRY, retry_after(n, r), why);
        return;
    }
    n->host->log(n->inst, WH_LOG_WARN, "%s", why);
    fail_waiters(n, WH_CALL_FAIL, 0, why);
}

static void fetch_token(ax_notifier *n)
{
    char *id = form_escape(n->client_id);
    char *secret = form_escape(n->client_secret);
    char *body = NULL;
    int len = -1;
    if (id && secret) {
        len =
            asprintf(&body, "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s",
                     id, secret, SCOPE_FORM);
    }
    free_secret(id);
    free_secret(secret);
    if (len < 0) {
        fail_waiters(n, WH_CALL_RETRY, 0, "notify: out of memory");
        return;
    }
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                          "Accept: application/json", NULL};
    wh_http_request hr = {
        .struct_size = sizeof hr,
        .method = "POST",
        .url = n->auth_url,
        .headers = headers,
        .body = body,
        .body_len = (size_t)len,
        .timeout_ms = 0,
        .max_response = RESPONSE_MAX,
    };
    n->fetching = true;
    int rc = n->host->http(n->inst, &hr, token_done, n);
    OPENSSL_cleanse(body, (size_t)len);
    free(body);
    if (rc != WH_OK) {
        char why[96];
        n->fetching = false;
        snprintf(why, sizeof why, "notify: cannot start the token request (%d)", rc);
        fail_waiters(n, rc == WH_ERR_INVALID ? WH_CALL_FAIL : WH_CALL_RETRY, 0, why);
    }
}

/* Send with the cached token, or wait for the (one) token request. */
static void with_token(nctx *c)
{
    ax_notifier *n = c->n;
    if (n->auth_header && n->host->now_ms(n->inst) < n->token_until) {
        send_event(c);
        return;
    }
    c->next = NULL;
    if (n->wait_tail) {
        n->wait_tail->next = c;
    } else {
        n->wait_head = c;
    }
    n->wait_tail = c;
    if (!n->fetching) {
        fetch_token(n);
    }
}

/* ------------------------------------------------------------------------ */
/* Arguments and the event                                                   */

/*
 * A string argument: NULL when absent, null or "". Sets *bad when it is not a
 * string, holds a NUL or a control character, or is longer than max bytes.
 */
static const char *str_arg(const json_t *args, const char *name, size_t max, bool *bad)
{
    const json_t *v = json_object_get(args, name);
    if (!v || json_is_null(v)) {
        return NULL;
    }
    const char *s = json_string_value(v);
    if (!s || json_string_length(v) != strlen(s) || strlen(s) > max || !clean_text(s, true)) {
        *bad = true;
        return NULL;
    }
    return *s ? s : NULL;
}

/* `count`: an integer, or text of digits (a rendered template), 1..COUNT_MAX; else -1. */
static long count_arg(const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i >= 1 && i <= COUNT_MAX ? (long)i : -1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return d >= 1 && d <= COUNT_MAX && d == (double)(long)d ? (long)d : -1;
    }
    const char *s = json_string_value(v);
    if (!s) {
        return -1;
    }
    while (*s == ' ') {
        s++;
    }
    long n = 0;
    size_t digits = 0;
    for (; *s >= '0' && *s <= '9' && digits < 8; s++, digits++) {
        n = n * 10 + (*s - '0');
    }
    while (*s == ' ') {
        s++;
    }
    return digits > 0 && *s == '\0' && n >= 1 && n <= COUNT_MAX ? n : -1;
}

/* `urgency`: 1 URGENT, 0 not urgent, -1 something else. */
static int urgency_arg(const json_t *v)
{
    if (!v || json_is_null(v) || json_is_false(v)) {
        return 0;
    }
    if (json_is_true(v)) {
        return 1;
    }
    const char *s = json_string_value(v);
    if (!s) {
        return -1;
    }
    if (!*s || strcasecmp(s, "false") == 0) {
        return 0;
    }
    return strcasecmp(s, "URGENT") == 0 || strcasecmp(s, "true") == 0 ? 1 : -1;
}

/* The request body (Proactive Events REST API, AMAZON.MessageAlert.Activated). */
static char *event_body(const ax_notifier *n, const char *ref, const char *user,
                        const char *creator, long count, bool urgent, size_t *len)
{
    int64_t now = n->host->now_ms(n->inst);
    char ts[40], exp[40];
    rfc3339(now, ts, sizeof ts);
    rfc3339(now + (int64_t)n->expiry_s * 1000, exp, sizeof exp);
    json_t *group =
        json_pack("{s:{s:s}, s:I}", "creator", "name", creator, "count", (json_int_t)count);
    if (group && urgent && json_object_set_new(group, "urgency", json_string("URGENT")) != 0) {
        json_decref(group);
        group = NULL;
    }
    json_t *ev = group ? json_pack("{s:s, s:s, s:s, s:{s:s, s:{s:{s:s, s:s}, s:o}}, s:[], "
                                   "s:{s:s, s:{s:s}}}",
                                   "timestamp", ts, "referenceId", ref, "expiryTime", exp, "event",
                                   "name", EVENT_NAME, "payload", "state", "status", "UNREAD",
                                   "freshness", "NEW", "messageGroup", group, "localizedAttributes",
                                   "relevantAudience", "type", "Unicast", "payload", "user", user)
                       : NULL;
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    *len = text ? strlen(text) : 0;
    return text;
}

int ax_notify_start(ax_notifier *n, wh_call *call, const json_t *args)
{
    const wh_host *h = n->host;
    if (!n->client_id) {
        h->complete(call, WH_CALL_FAIL, NULL, 0,
                    "notify: this instance has no client_id and client_secret (the skill's "
                    "Permissions page in the Alexa developer console)");
        return WH_OK;
    }
    bool bad_user = false, bad_creator = false;
    const char *user = str_arg(args, "user", USER_MAX, &bad_user);
    const char *creator = str_arg(args, "creator", CREATOR_MAX, &bad_creator);
    long count = count_arg(json_object_get(args, "count"));
    int urgency = urgency_arg(json_object_get(args, "urgency"));
    const char *error = NULL;
    if (bad_user || !user) {
        error = bad_user ? "notify: `user` must be a string of at most 1024 bytes without control "
                           "characters"
                         : "notify: `user` is required: the Alexa user id (amzn1.ask.account.…)";
    } else if (bad_creator || !creator) {
        error = bad_creator ? "notify: `creator` must be a string of at most 256 bytes without "
                              "control characters"
                            : "notify: `creator` is required: who the messages are from";
    } else if (count < 0) {
        error = "notify: `count` must be a whole number from 1 to 1000000";
    } else if (urgency < 0) {
        error = "notify: `urgency` must be URGENT, or empty for not urgent";
    }
    if (error) {
        h->complete(call, WH_CALL_FAIL, NULL, 0, error);
        return WH_OK;
    }
    nctx *c = calloc(1, sizeof *c);
    const char *key = h->call_key(call);
    if (!c || !reference_id(key ? key : "", c->ref)) {
        free(c);
        h->complete(call, WH_CALL_RETRY, NULL, 0, "notify: out of memory");
        return WH_OK;
    }
    c->n = n;
    c->call = call;
    c->body = event_body(n, c->ref, user, creator, count, urgency == 1, &c->body_len);
    if (!c->body) {
        finish(c, WH_CALL_RETRY, 0, 0, "notify: out of memory");
        return WH_OK;
    }
    with_token(c);
    return WH_OK;
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */

void ax_notifier_destroy(ax_notifier *n)
{
    if (!n) {
        return;
    }
    /* nothing waits at destroy (no HTTP callback is pending); free defensively */
    for (nctx *c = n->wait_head; c;) {
        nctx *next = c->next;
        ctx_free(c);
        c = next;
    }
    free_secret(n->client_id);
    free_secret(n->client_secret);
    free_secret(n->auth_header);
    free(n->auth_url);
    free(n->events_url);
    free(n);
}

static const char *nonempty(const json_t *config, const char *key)
{
    const char *s = json_string_value(json_object_get(config, key));
    return s && *s ? s : NULL;
}

int ax_notifier_new(const wh_host *host, wh_instance *inst, const json_t *config, ax_notifier **out,
                    char *err, size_t err_size)
{
    *out = NULL;
    const char *id = nonempty(config, "client_id");
    const char *secret = nonempty(config, "client_secret");
    const char *auth = nonempty(config, "auth_url");
    const char *base = nonempty(config, "events_api_base");
    const char *stage = nonempty(config, "stage");
    const json_t *expiry = json_object_get(config, "expiry_s");
    if (!auth) {
        auth = AX_AUTH_URL_DEFAULT;
    }
    if (!base) {
        base = AX_EVENTS_BASE_DEFAULT;
    }
    if (!stage) {
        stage = "development";
    }
    if (!id != !secret) {
        snprintf(err, err_size, "`%s` is set but `%s` is not: notify needs both",
                 id ? "client_id" : "client_secret", id ? "client_secret" : "client_id");
        return WH_ERR_CONFIG;
    }
    if (id && (!clean_text(id, false) || !clean_text(secret, false))) {
        snprintf(err, err_size,
                 "`client_id` and `client_secret` must not hold spaces or "
                 "control characters");
        return WH_ERR_CONFIG;
    }
    if (!url_ok(auth, true)) {
        snprintf(err, err_size, "`auth_url` must be an http:// or https:// URL");
        return WH_ERR_CONFIG;
    }
    if (!url_ok(base, false)) {
        snprintf(err, err_size,
                 "`events_api_base` must be an http:// or https:// URL without a "
                 "query");
        return WH_ERR_CONFIG;
    }
    bool live = strcmp(stage, "live") == 0;
    if (!live && strcmp(stage, "development") != 0) {
        snprintf(err, err_size, "`stage` must be development or live");
        return WH_ERR_CONFIG;
    }
    json_int_t exp_s = expiry ? json_integer_value(expiry) : AX_EXPIRY_S_DEFAULT;
    if (expiry &&
        (!json_is_integer(expiry) || exp_s < AX_EXPIRY_S_MIN || exp_s > AX_EXPIRY_S_MAX)) {
        snprintf(err, err_size, "`expiry_s` must be from %d (5 minutes) to %d (24 hours)",
                 AX_EXPIRY_S_MIN, AX_EXPIRY_S_MAX);
        return WH_ERR_CONFIG;
    }
    ax_notifier *n = calloc(1, sizeof *n);
    if (!n) {
        return WH_ERR_NOMEM;
    }
    n->host = host;
    n->inst = inst;
    n->expiry_s = (long)exp_s;
    n->client_id = id ? strdup(id) : NULL;
    n->client_secret = secret ? strdup(secret) : NULL;
    n->auth_url = strdup(auth);
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') {
        blen--;
    }
    if (asprintf(&n->events_url, "%.*s%s", (int)blen, base,
                 live ? "/v1/proactiveEvents/" : "/v1/proactiveEvents/stages/development") < 0) {
        n->events_url = NULL;
    }
    if ((id && (!n->client_id || !n->client_secret)) || !n->auth_url || !n->events_url) {
        ax_notifier_destroy(n);
        return WH_ERR_NOMEM;
    }
    if (id && strncmp(n->auth_url, "http://", 7) == 0) {
        host->log(inst, WH_LOG_WARN,
                  "auth_url is plain http://: the client secret travels unencrypted (tests only)");
    }
    if (id && strncmp(n->events_url, "http://", 7) == 0) {
        host->log(inst, WH_LOG_WARN,
                  "events_api_base is plain http://: access tokens travel unencrypted (tests "
                  "only)");
    }
    *out = n;
    return WH_OK;
}
