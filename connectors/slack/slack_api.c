/*
 * slack_api.c — the Web API client of the Slack connector: builds each call
 * (GET with query arguments for reads, JSON POST with charset=utf-8 for
 * writes, bearer token), paces calls per method to Slack's tiers (and
 * chat.postMessage per channel), pauses a method after a 429, and maps
 * every answer to OK / RETRY / FAIL. Also posts answers to response_urls,
 * and learns the app's identity with one shared auth.test call.
 *
 * Pacing is a token bucket per lane (a method, or chat.postMessage and one
 * channel). A call that must wait sits in its lane's FIFO and one host timer
 * per lane wakes it: nothing spins. A paused method refuses calls at once
 * with RETRY and the remaining pause, so they wait in the hub's durable
 * retry schedule instead of holding the instance's concurrency slots.
 *
 * Must not: block, log secrets, response URLs or payloads. Lanes and pauses
 * are touched only on the delivery thread (ops, HTTP callbacks, timers).
 */
#include "slack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METHOD_MAX 48
#define LANES_SOFT_MAX 256     /* idle lanes beyond this are dropped */
#define DEFAULT_PAUSE_MS 30000 /* a 429 or `ratelimited` without Retry-After */
#define EARLY_SLACK_MS 5       /* a timer this much early still counts as on time */
#define RESPONSE_URL_ATTEMPTS 3
#define AUTH_PAUSE_MIN_MS 30000  /* after a failed auth.test: the first pause… */
#define AUTH_PAUSE_MAX_MS 600000 /* …doubling up to this */

typedef struct api_req {
    struct api_req *next;
    slack *s;
    char method[METHOD_MAX];
    bool get;
    char *url;
    char *body;
    size_t body_len;
    slack_api_done done;
    void *user;
} api_req;

typedef struct slack_lane {
    struct slack_lane *next;
    slack *s;
    char *key; /* "<method>" or "chat.postMessage\n<channel>" */
    char method[METHOD_MAX];
    double tokens, cap, per_ms;
    int64_t refilled_at;
    api_req *head, *tail;
    bool armed; /* a host timer will call lane_timer */
    int64_t armed_due;
    bool pumping; /* lane_pump() is on the stack */
} slack_lane;

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

static void req_free(api_req *r)
{
    if (r) {
        free(r->url);
        free(r->body);
        free(r);
    }
}

/* Report an outcome to the requester and free the request. */
static void req_finish(api_req *r, wh_outcome outcome, const json_t *body, long retry_after_ms,
                       const char *error, const char *slack_error)
{
    slack_result res = {outcome, body, retry_after_ms, error, slack_error};
    slack_api_done done = r->done;
    void *user = r->user;
    req_free(r);
    done(user, &res);
}

static void req_fail(api_req *r, wh_outcome outcome, long retry_after_ms, const char *why)
{
    char err[256];
    /* a long reason is cut, never the method that names the call */
    snprintf(err, sizeof err, "%.48s: %.200s", r->method, why);
    req_finish(r, outcome, NULL, retry_after_ms, err, NULL);
}

/* ------------------------------------------------------------------------ */
/* Pauses (429)                                                              */

static int64_t paused_until(slack *s, const char *method)
{
    return (int64_t)json_integer_value(json_object_get(s->paused, method));
}

static void pause_method(slack *s, const char *method, long ms)
{
    int64_t until = s->host->now_ms(s->inst) + ms;
    if (until > paused_until(s, method)) {
        json_object_set_new(s->paused, method, json_integer((json_int_t)until));
    }
    s->host->log(s->inst, WH_LOG_WARN, "%s rate limited by Slack: paused for %ld ms", method, ms);
}

/* ------------------------------------------------------------------------ */
/* Lanes                                                                     */

/* Calls per millisecond and burst size for a method's lane. */
static void lane_rate(const slack *s, const char *method, double *per_ms, double *cap)
{
    double per_min;
    if (strcmp(method, "chat.postMessage") == 0) {
        *per_ms = s->post_per_s / 1000.0;
        *cap = 1; /* Slack allows short bursts, but one a second is what it promises */
        return;
    }
    if (strcmp(method, "conversations.replies") == 0) {
        per_min = (double)s->replies_per_min;
    } else if (strcmp(method, "users.info") == 0 || strcmp(method, "auth.test") == 0) {
        per_min = (double)s->tier4_per_min;
    } else {
        per_min = (double)s->tier3_per_min;
    }
    *per_ms = per_min / 60000.0;
    /* a burst of ten seconds' worth, at least one call */
    *cap = (double)(long)(per_min / 6.0);
    if (*cap < 1) {
        *cap = 1;
    }
}

static void lane_refill(slack_lane *l, int64_t now)
{
    if (now > l->refilled_at) {
        l->tokens += (double)(now - l->refilled_at) * l->per_ms;
        if (l->tokens > l->cap) {
            l->tokens = l->cap;
        }
        l->refilled_at = now;
    }
}

static void lane_free(slack_lane *l)
{
    while (l->head) {
        api_req *r = l->head;
        l->head = r->next;
        req_free(r);
    }
    free(l->key);
    free(l);
}

/* Drop lanes that hold nothing (no calls, no timer, a full bucket). */
static void lanes_prune(slack *s, int64_t now)
{
    for (slack_lane **pp = &s->lanes; *pp;) {
        slack_lane *l = *pp;
        lane_refill(l, now);
        if (!l->head && !l->armed && !l->pumping && l->tokens >= l->cap) {
            *pp = l->next;
            lane_free(l);
            s->nlanes--;
        } else {
            pp = &l->next;
        }
    }
}

static slack_lane *lane_get(slack *s, const char *method, const char *channel)
{
    char key[METHOD_MAX + 256];
    bool per_channel = channel && strcmp(method, "chat.postMessage") == 0;
    snprintf(key, sizeof key, "%s%s%.250s", method, per_channel ? "\n" : "",
             per_channel ? channel : "");
    for (slack_lane *l = s->lanes; l; l = l->next) {
        if (strcmp(l->key, key) == 0) {
            return l;
        }
    }
    int64_t now = s->host->now_ms(s->inst);
    if (s->nlanes >= LANES_SOFT_MAX) {
        lanes_prune(s, now);
    }
    slack_lane *l = calloc(1, sizeof *l);
    if (!l || !(l->key = strdup(key))) {
        free(l);
        return NULL;
    }
    l->s = s;
    snprintf(l->method, sizeof l->method, "%s", method);
    lane_rate(s, method, &l->per_ms, &l->cap);
    l->tokens = l->cap;
    l->refilled_at = now;
    l->next = s->lanes;
    s->lanes = l;
    s->nlanes++;
    return l;
}

static api_req *lane_pop(slack_lane *l)
{
    api_req *r = l->head;
    l->head = r->next;
    if (!l->head) {
        l->tail = NULL;
    }
    r->next = NULL;
    return r;
}

static void send_now(api_req *r);
static void lane_pump(slack_lane *l, bool force);

static void lane_timer(void *user)
{
    slack_lane *l = user;
    l->armed = false;
    /* Early only at shutdown (or when the wall clock jumped back): go anyway, so the
     * hub's last timer round drains the lane instead of re-arming forever. */
    bool early = l->s->host->now_ms(l->s->inst) + EARLY_SLACK_MS < l->armed_due;
    lane_pump(l, early);
}

/* Start what the lane allows now; arm a timer for the rest. */
static void lane_pump(slack_lane *l, bool force)
{
    slack *s = l->s;
    if (l->pumping) {
        return; /* re-entered from a callback: the loop below picks the new call up */
    }
    l->pumping = true;
    while (l->head) {
        int64_t now = s->host->now_ms(s->inst);
        int64_t until = paused_until(s, l->method);
        if (until > now) {
            char why[96];
            snprintf(why, sizeof why, "rate limited, paused for %lld ms", (long long)(until - now));
            req_fail(lane_pop(l), WH_CALL_RETRY, (long)(until - now), why);
            continue;
        }
        lane_refill(l, now);
        if (l->tokens >= 1 || force) {
            l->tokens = l->tokens >= 1 ? l->tokens - 1 : 0;
            force = false;
            send_now(lane_pop(l));
            continue;
        }
        if (l->armed) {
            break;
        }
        double need = (1.0 - l->tokens) / l->per_ms;
        long wait = (long)need;
        if ((double)wait < need) {
            wait++;
        }
        if (wait < 1) {
            wait = 1;
        }
        l->armed = true;
        l->armed_due = now + wait;
        if (s->host->defer(s->inst, wait, lane_timer, l) != WH_OK) {
            l->armed = false;
            while (l->head) {
                req_fail(lane_pop(l), WH_CALL_RETRY, 0, "cannot schedule the call");
            }
        }
        break;
    }
    l->pumping = false;
}

typedef struct slack_waiter {
    struct slack_waiter *next;
    slack_identity_done done;
    void *user;
} slack_waiter;

void slack_api_cleanup(slack *s)
{
    while (s->auth_waiters) { /* none once every HTTP callback has run */
        slack_waiter *w = s->auth_waiters;
        s->auth_waiters = w->next;
        free(w);
    }
    while (s->lanes) {
        slack_lane *l = s->lanes;
        s->lanes = l->next;
        if (l->head) {
            s->host->log(s->inst, WH_LOG_WARN, "%s: calls dropped at shutdown", l->method);
        }
        lane_free(l);
    }
    s->nlanes = 0;
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                   */

static bool retryable_error(const char *e)
{
    static const char *const transient[] = {
        "ratelimited",     "internal_error",    "fatal_error",   "service_unavailable",
        "request_timeout", "team_added_to_org", "accesslimited", NULL};
    for (int i = 0; transient[i]; i++) {
        if (strcmp(e, transient[i]) == 0) {
            return true;
        }
    }
    return false;
}

static long retry_after_of(slack *s, const wh_http_response *resp)
{
    const char *ra = json_string_value(json_object_get(resp->headers, "retry-after"));
    long ms = ra ? s->host->retry_after_ms(s->inst, ra) : -1;
    return ms;
}

static void http_done(void *user, const wh_http_response *resp)
{
    api_req *r = user;
    slack *s = r->s;
    char why[256];
    if (resp->status == 0) {
        snprintf(why, sizeof why, "%s",
                 resp->timed_out ? "timed out" : (resp->error ? resp->error : "no answer"));
        req_fail(r, WH_CALL_RETRY, 0, why);
        return;
    }
    if (resp->status == 429) {
        long ra = retry_after_of(s, resp);
        if (ra < 0) {
            ra = DEFAULT_PAUSE_MS;
        }
        pause_method(s, r->method, ra);
        req_fail(r, WH_CALL_RETRY, ra, "HTTP 429 rate limited");
        return;
    }
    if (resp->status >= 500 || resp->status == 408) {
        long ra = retry_after_of(s, resp);
        snprintf(why, sizeof why, "HTTP %d", resp->status);
        req_fail(r, WH_CALL_RETRY, ra > 0 ? ra : 0, why);
        return;
    }
    if (resp->status < 200 || resp->status > 299) {
        snprintf(why, sizeof why, "HTTP %d", resp->status);
        req_fail(r, WH_CALL_FAIL, 0, why);
        return;
    }
    json_t *body = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, NULL);
    if (!json_is_object(body) || !json_is_boolean(json_object_get(body, "ok"))) {
        json_decref(body);
        req_fail(r, WH_CALL_FAIL, 0, "the answer is not a Slack API answer (check api_base)");
        return;
    }
    if (json_is_true(json_object_get(body, "ok"))) {
        req_finish(r, WH_CALL_OK, body, 0, NULL, NULL);
        json_decref(body);
        return;
    }
    const char *e = jstr_nonempty(body, "error");
    if (!e) {
        e = "unknown_error";
    }
    char err[320];
    const char *needed = jstr_nonempty(body, "needed");
    snprintf(err, sizeof err, "%s: %.120s%s%.80s%s", r->method, e, needed ? " (needed: " : "",
             needed ? needed : "", needed ? ")" : "");
    long ra = 0;
    wh_outcome outcome = WH_CALL_FAIL;
    if (strcmp(e, "ratelimited") == 0) {
        ra = retry_after_of(s, resp);
        if (ra < 0) {
            ra = DEFAULT_PAUSE_MS;
        }
        pause_method(s, r->method, ra);
        outcome = WH_CALL_RETRY;
    } else if (retryable_error(e)) {
        outcome = WH_CALL_RETRY;
    }
    req_finish(r, outcome, body, ra, err, e);
    json_decref(body);
}

static void send_now(api_req *r)
{
    slack *s = r->s;
    const char *headers[3] = {s->auth_header, NULL, NULL};
    if (!r->get) {
        headers[1] = "Content-Type: application/json; charset=utf-8";
    }
    wh_http_request hr = {
        .struct_size = sizeof hr,
        .method = r->get ? "GET" : "POST",
        .url = r->url,
        .headers = headers,
        .body = r->body,
        .body_len = r->body_len,
        .timeout_ms = 0,
        .max_response = 0,
    };
    int rc = s->host->http(s->inst, &hr, http_done, r);
    if (rc != WH_OK) {
        char why[96];
        snprintf(why, sizeof why, "cannot start the request (%d)", rc);
        req_fail(r, rc == WH_ERR_INVALID ? WH_CALL_FAIL : WH_CALL_RETRY, 0, why);
    }
}

/* Query string for a GET: scalars only, in the object's order. */
static void add_query(sbuf *b, const json_t *args)
{
    const char *key;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)args, key, v)
    {
        char num[64];
        const char *text = NULL;
        if (json_is_string(v)) {
            text = json_string_value(v);
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            text = num;
        } else if (json_is_boolean(v)) {
            text = json_is_true(v) ? "true" : "false";
        }
        if (!text) {
            continue;
        }
        sb_puts(b, first ? "?" : "&");
        first = false;
        sb_urlencode(b, key);
        sb_puts(b, "=");
        sb_urlencode(b, text);
    }
}

void slack_api_call(slack *s, const char *method, bool get, const json_t *args, const char *channel,
                    slack_api_done done, void *user)
{
    api_req *r = calloc(1, sizeof *r);
    if (!r) {
        slack_result res = {WH_CALL_RETRY, NULL, 0, "out of memory", NULL};
        done(user, &res);
        return;
    }
    r->s = s;
    snprintf(r->method, sizeof r->method, "%s", method);
    r->get = get;
    r->done = done;
    r->user = user;
    int64_t now = s->host->now_ms(s->inst);
    int64_t until = paused_until(s, method);
    if (until > now) {
        char why[96];
        snprintf(why, sizeof why, "rate limited, paused for %lld ms", (long long)(until - now));
        req_fail(r, WH_CALL_RETRY, (long)(until - now), why);
        return;
    }
    sbuf url = {0};
    sb_printf(&url, "%s/%s", s->api_base, method);
    if (get) {
        add_query(&url, args);
    } else {
        r->body = args ? json_dumps(args, JSON_COMPACT) : strdup("{}");
        r->body_len = r->body ? strlen(r->body) : 0;
    }
    r->url = url.data;
    slack_lane *l =
        (url.oom || !r->url || (!get && !r->body)) ? NULL : lane_get(s, method, channel);
    if (!l) {
        if (url.oom) {
            free(url.data);
            r->url = NULL;
        }
        req_fail(r, WH_CALL_RETRY, 0, "out of memory");
        return;
    }
    if (l->tail) {
        l->tail->next = r;
    } else {
        l->head = r;
    }
    l->tail = r;
    if (!l->armed) {
        lane_pump(l, false);
    }
}

/* ------------------------------------------------------------------------ */
/* response_url                                                              */

typedef struct rurl {
    slack *s;
    char *url;
    char *body;
    int attempt;
} rurl;

static void rurl_free(rurl *c)
{
    if (c) {
        free(c->url);
        free(c->body);
        free(c);
    }
}

static void rurl_done(void *user, const wh_http_response *resp);

/* Start one attempt; frees c when it cannot start. */
static int rurl_send(rurl *c)
{
    static const char *const headers[] = {"Content-Type: application/json; charset=utf-8", NULL};
    wh_http_request hr = {
        .struct_size = sizeof hr,
        .method = "POST",
        .url = c->url,
        .headers = headers,
        .body = c->body,
        .body_len = strlen(c->body),
        .timeout_ms = 0,
        .max_response = 64 * 1024,
    };
    c->attempt++;
    int rc = c->s->host->http(c->s->inst, &hr, rurl_done, c);
    if (rc != WH_OK) {
        rurl_free(c);
    }
    return rc;
}

static void rurl_retry(void *user)
{
    rurl *c = user;
    slack *s = c->s;
    if (rurl_send(c) != WH_OK) {
        s->host->log(s->inst, WH_LOG_WARN, "response_url answer not delivered: cannot retry");
    }
}

static void rurl_done(void *user, const wh_http_response *resp)
{
    rurl *c = user;
    slack *s = c->s;
    if (resp->status >= 200 && resp->status <= 299) {
        s->host->log(s->inst, WH_LOG_DEBUG, "response_url answer delivered");
        rurl_free(c);
        return;
    }
    bool transient = resp->status == 0 || resp->status == 429 || resp->status >= 500;
    if (transient && c->attempt < RESPONSE_URL_ATTEMPTS) {
        long ra = retry_after_of(s, resp);
        long delay = ra > 0 ? ra : 1000L * c->attempt;
        if (s->host->defer(s->inst, delay, rurl_retry, c) == WH_OK) {
            return;
        }
    }
    if (resp->status == 0) {
        s->host->log(s->inst, WH_LOG_WARN, "response_url answer not delivered: %s",
                     resp->timed_out ? "timed out" : (resp->error ? resp->error : "no answer"));
    } else {
        s->host->log(s->inst, WH_LOG_WARN, "response_url answer not delivered: HTTP %d",
                     resp->status);
    }
    rurl_free(c);
}

int slack_post_response_url(slack *s, const char *url, const json_t *message)
{
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
        return WH_ERR_INVALID;
    }
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f) {
            return WH_ERR_INVALID;
        }
    }
    rurl *c = calloc(1, sizeof *c);
    if (!c) {
        return WH_ERR_NOMEM;
    }
    c->s = s;
    c->url = strdup(url);
    c->body = json_dumps(message, JSON_COMPACT);
    if (!c->url || !c->body) {
        rurl_free(c);
        return WH_ERR_NOMEM;
    }
    return rurl_send(c);
}

/* ------------------------------------------------------------------------ */
/* Identity: auth.test, once                                                 */

bool slack_identity_wanted(slack *s)
{
    int64_t now = s->host->now_ms(s->inst);
    pthread_mutex_lock(&s->lock);
    bool wanted = s->auth_state != SLACK_AUTH_DONE &&
                  !(s->auth_state == SLACK_AUTH_FAILED && now < s->auth_retry_at);
    pthread_mutex_unlock(&s->lock);
    return wanted;
}

static void identity_kicked(void *user)
{
    slack_identity_fetch(user, NULL, NULL);
}

void slack_identity_kick(slack *s)
{
    const wh_host *h = s->host;
    if (!WH_HOST_HAS(h, defer)) {
        return;
    }
    int64_t now = h->now_ms(s->inst);
    pthread_mutex_lock(&s->lock);
    int was = s->auth_state;
    bool start = was == SLACK_AUTH_IDLE || (was == SLACK_AUTH_FAILED && now >= s->auth_retry_at);
    if (start) {
        s->auth_state = SLACK_AUTH_QUEUED;
    }
    pthread_mutex_unlock(&s->lock);
    if (start && h->defer(s->inst, 0, identity_kicked, s) != WH_OK) {
        pthread_mutex_lock(&s->lock);
        if (s->auth_state == SLACK_AUTH_QUEUED) {
            s->auth_state = was; /* the next event tries again */
        }
        pthread_mutex_unlock(&s->lock);
    }
}

static void identity_answered(void *user, const slack_result *r)
{
    slack *s = user;
    const wh_host *h = s->host;
    slack_result res = *r;
    char error[sizeof s->auth_error];
    if (r->outcome == WH_CALL_OK) {
        slack_learn_identity(s, jstr_nonempty(r->body, "user_id"), jstr_nonempty(r->body, "bot_id"),
                             jstr_nonempty(r->body, "app_id"));
        char user_id[SLACK_ID_MAX], bot_id[SLACK_ID_MAX];
        slack_identity(s, user_id, bot_id, NULL);
        pthread_mutex_lock(&s->lock);
        s->auth_state = SLACK_AUTH_DONE;
        pthread_mutex_unlock(&s->lock);
        h->log(s->inst, WH_LOG_INFO, "this app's bot: user %s, bot %s", user_id[0] ? user_id : "?",
               bot_id[0] ? bot_id : "?");
    } else {
        snprintf(error, sizeof error, "%s", r->error ? r->error : "auth.test: failed");
        int64_t now = h->now_ms(s->inst);
        pthread_mutex_lock(&s->lock);
        long pause = s->auth_backoff_ms > 0 ? s->auth_backoff_ms : AUTH_PAUSE_MIN_MS;
        if (r->retry_after_ms > pause) {
            pause = r->retry_after_ms;
        }
        s->auth_backoff_ms = pause * 2 < AUTH_PAUSE_MAX_MS ? pause * 2 : AUTH_PAUSE_MAX_MS;
        s->auth_state = SLACK_AUTH_FAILED;
        s->auth_retry_at = now + pause;
        s->auth_outcome = r->outcome;
        snprintf(s->auth_error, sizeof s->auth_error, "%s", error);
        pthread_mutex_unlock(&s->lock);
        h->log(s->inst, WH_LOG_WARN,
               "%s: this app's own bot messages are recognised by user id and app id only "
               "until it succeeds (next try in %ld s at the earliest)",
               error, pause / 1000);
        res.error = error;
        res.retry_after_ms = pause;
    }
    /* the waiters, oldest first; one may start another fetch (it sees the new state) */
    slack_waiter *list = s->auth_waiters, *rev = NULL;
    s->auth_waiters = NULL;
    while (list) {
        slack_waiter *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        slack_waiter *w = rev;
        rev = rev->next;
        w->done(w->user, &res);
        free(w);
    }
}

void slack_identity_fetch(slack *s, slack_identity_done done, void *user)
{
    int64_t now = s->host->now_ms(s->inst);
    pthread_mutex_lock(&s->lock);
    int state = s->auth_state;
    if (state == SLACK_AUTH_FAILED && now < s->auth_retry_at) {
        char error[sizeof s->auth_error];
        snprintf(error, sizeof error, "%s", s->auth_error);
        slack_result r = {(wh_outcome)s->auth_outcome, NULL, (long)(s->auth_retry_at - now), error,
                          NULL};
        pthread_mutex_unlock(&s->lock);
        if (done) {
            done(user, &r);
        }
        return;
    }
    if (state == SLACK_AUTH_DONE) {
        pthread_mutex_unlock(&s->lock);
        if (done) {
            slack_result r = {WH_CALL_OK, NULL, 0, NULL, NULL};
            done(user, &r);
        }
        return;
    }
    s->auth_state = SLACK_AUTH_BUSY;
    pthread_mutex_unlock(&s->lock);
    if (done) {
        slack_waiter *w = calloc(1, sizeof *w);
        if (!w) {
            slack_result r = {WH_CALL_RETRY, NULL, 0, "auth.test: out of memory", NULL};
            done(user, &r);
        } else {
            w->done = done;
            w->user = user;
            w->next = s->auth_waiters; /* newest first; reversed when answered */
            s->auth_waiters = w;
        }
    }
    if (state != SLACK_AUTH_BUSY) {
        /* may answer before it returns: the waiter is in the list already */
        slack_api_call(s, "auth.test", false, NULL, NULL, identity_answered, s);
    }
}
