/*
 * slack.c — the Slack connector's descriptor: its config keys, init and
 * destroy, the bot identity and user-name cache shared by ingress and
 * operations, and small string and timestamp helpers.
 *
 * Owns: the instance state's lifetime. Must not: include anything but the
 * public SDK header (and libc), do network I/O or block (slack_api.c goes
 * through host->http), or log secrets or payloads. Ingress lives in
 * slack_ingress.c, the Web API client in slack_api.c, operations in
 * slack_ops.c.
 */
#include "slack.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define USER_TTL_MS (60LL * 60 * 1000) /* a changed display name shows within an hour */
#define USER_CACHE_MAX 5000

static const wh_option k_options[] = {
    {"token", WH_OPT_STRING, NULL, WH_OPT_REQUIRED | WH_OPT_SECRET,
     "bot token (xoxb-…) sent as `Authorization: Bearer` to the Web API"},
    {"signing_secret", WH_OPT_STRING, NULL, WH_OPT_REQUIRED | WH_OPT_SECRET,
     "the app's signing secret: every request to /hooks/<instance> must carry a valid "
     "X-Slack-Signature"},
    {"api_base", WH_OPT_STRING, "\"https://slack.com/api\"", 0,
     "Web API base URL (another Slack deployment, or a fake for tests)"},
    {"max_skew", WH_OPT_INT, "300", 0,
     "seconds an X-Slack-Request-Timestamp may differ from the clock (replay window)"},
    {"deadline_ms", WH_OPT_INT, "2500", 0,
     "how long a slash command or interaction waits for the rule's respond (Slack gives up "
     "after 3000 ms); a later answer goes to the response_url"},
    {"bot_user_id", WH_OPT_STRING, NULL, 0,
     "the bot's user id (U…); learned with auth.test or from events when absent"},
    {"post_per_channel_per_s", WH_OPT_NUMBER, "1", 0,
     "chat.postMessage calls per second per channel (Slack allows about one)"},
    {"tier3_per_min", WH_OPT_INT, "50", 0,
     "calls per minute of each Tier 3 method: chat.update, reactions.add, "
     "conversations.history (and conversations.replies unless replies_per_min is set)"},
    {"replies_per_min", WH_OPT_INT, "0", 0,
     "conversations.replies calls per minute; 0 uses tier3_per_min. Set 1 for a commercially "
     "distributed app outside the Marketplace"},
    {"tier4_per_min", WH_OPT_INT, "100", 0, "users.info and auth.test calls per minute"},
    {"replies_poll_every", WH_OPT_NUMBER, "20", 0,
     "seconds: the minimum interval between two thread_replies polls of one thread; an "
     "earlier poll returns no items and the same cursor. Set 60 for apps limited to one "
     "conversations.replies call a minute"},
    {"page_limit", WH_OPT_INT, "200", 0,
     "`limit` per page of conversations.replies / conversations.history (15 for apps "
     "limited to 15)"},
    {NULL, 0, NULL, 0, NULL},
};

/* ------------------------------------------------------------------------ */
/* Strings                                                                   */

void sb_append(sbuf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sb_puts(sbuf *b, const char *s)
{
    sb_append(b, s, strlen(s));
}

void sb_printf(sbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_append(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_append(b, big, (size_t)n);
    free(big);
}

void sb_urlencode(sbuf *b, const char *s)
{
    static const char digits[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            sb_append(b, (const char *)p, 1);
        } else {
            char e[3] = {'%', digits[c >> 4], digits[c & 15]};
            sb_append(b, e, 3);
        }
    }
}

const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

const char *jstr_nonempty(const json_t *obj, const char *key)
{
    const char *v = jstr(obj, key);
    return v && *v ? v : NULL;
}

/* ------------------------------------------------------------------------ */
/* Timestamps                                                                */

/* "1700000000.000200" → seconds and microseconds; false when malformed. */
static bool ts_parse(const char *ts, int64_t *sec, int64_t *usec)
{
    if (!ts || !*ts) {
        return false;
    }
    int64_t s = 0, u = 0;
    const char *p = ts;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (++digits > 12) {
            return false;
        }
        s = s * 10 + (*p - '0');
    }
    if (digits == 0) {
        return false;
    }
    if (*p == '.') {
        p++;
        int fd = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (++fd > 6) {
                return false;
            }
            u = u * 10 + (*p - '0');
        }
        for (int k = fd; k < 6; k++) {
            u *= 10;
        }
    }
    if (*p) {
        return false;
    }
    *sec = s;
    *usec = u;
    return true;
}

bool slack_ts_valid(const char *ts)
{
    int64_t s, u;
    return ts_parse(ts, &s, &u);
}

int slack_ts_cmp(const char *a, const char *b)
{
    int64_t as = 0, au = 0, bs = 0, bu = 0;
    bool va = ts_parse(a, &as, &au), vb = ts_parse(b, &bs, &bu);
    if (!va || !vb) {
        return (int)va - (int)vb;
    }
    if (as != bs) {
        return as < bs ? -1 : 1;
    }
    return au < bu ? -1 : (au > bu ? 1 : 0);
}

bool slack_ts_rfc3339(const char *ts, char *out, size_t size)
{
    int64_t s, u;
    if (!ts_parse(ts, &s, &u)) {
        return false;
    }
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        return false;
    }
    int n = snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(u / 1000));
    return n > 0 && (size_t)n < size;
}

void slack_ts_from_ms(int64_t ms, char *out, size_t size)
{
    if (ms < 0) {
        ms = 0;
    }
    snprintf(out, size, "%lld.%06lld", (long long)(ms / 1000), (long long)(ms % 1000) * 1000);
}

/* ------------------------------------------------------------------------ */
/* Identity and the users cache (shared by the gateway and delivery threads) */

static void copy_id(char *dst, const char *src)
{
    if (src && *src && strlen(src) < SLACK_ID_MAX) {
        snprintf(dst, SLACK_ID_MAX, "%s", src);
    }
}

void slack_identity(slack *s, char *user_id, char *bot_id, char *app_id)
{
    pthread_mutex_lock(&s->lock);
    if (user_id) {
        memcpy(user_id, s->bot_user_id, SLACK_ID_MAX);
    }
    if (bot_id) {
        memcpy(bot_id, s->bot_id, SLACK_ID_MAX);
    }
    if (app_id) {
        memcpy(app_id, s->app_id, SLACK_ID_MAX);
    }
    pthread_mutex_unlock(&s->lock);
}

void slack_learn_identity(slack *s, const char *user_id, const char *bot_id, const char *app_id)
{
    pthread_mutex_lock(&s->lock);
    if (!s->bot_user_id[0]) {
        copy_id(s->bot_user_id, user_id);
    }
    copy_id(s->bot_id, bot_id);
    copy_id(s->app_id, app_id);
    pthread_mutex_unlock(&s->lock);
}

bool slack_from_self(slack *s, const json_t *msg)
{
    char user_id[SLACK_ID_MAX], bot_id[SLACK_ID_MAX], app_id[SLACK_ID_MAX];
    slack_identity(s, user_id, bot_id, app_id);
    const char *u = jstr(msg, "user"), *b = jstr(msg, "bot_id"), *a = jstr(msg, "app_id");
    if (!a) {
        a = jstr(json_object_get(msg, "bot_profile"), "app_id");
    }
    return (u && user_id[0] && strcmp(u, user_id) == 0) ||
           (b && bot_id[0] && strcmp(b, bot_id) == 0) || (a && app_id[0] && strcmp(a, app_id) == 0);
}

const char *slack_bot_author(const json_t *msg)
{
    const char *n = jstr_nonempty(json_object_get(msg, "bot_profile"), "name");
    if (!n) {
        n = jstr_nonempty(msg, "username");
    }
    if (!n) {
        n = jstr_nonempty(msg, "bot_id");
    }
    return n;
}

/* Slack escapes only these three in message text */
static void put_decoded(sbuf *out, const char *s, size_t n)
{
    static const struct {
        const char *entity;
        size_t len;
        char c;
    } ents[] = {{"&amp;", 5, '&'}, {"&lt;", 4, '<'}, {"&gt;", 4, '>'}};
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '&') {
            continue;
        }
        for (size_t e = 0; e < sizeof ents / sizeof ents[0]; e++) {
            if (n - i >= ents[e].len && memcmp(s + i, ents[e].entity, ents[e].len) == 0) {
                sb_append(out, s + start, i - start);
                sb_append(out, &ents[e].c, 1);
                i += ents[e].len - 1;
                start = i + 1;
                break;
            }
        }
    }
    sb_append(out, s + start, n - start);
}

/* One <...> sequence (without the brackets) as a reader would say it. */
static void put_control(slack *s, sbuf *out, const char *seq, size_t n)
{
    const char *bar = memchr(seq, '|', n);
    size_t tlen = bar ? (size_t)(bar - seq) : n;
    const char *label = bar ? bar + 1 : NULL;
    size_t llen = bar ? n - tlen - 1 : 0;
    if (tlen > 1 && seq[0] == '@') { /* a user: <@U123> or <@U123|ana> */
        char id[64], name[256];
        sb_append(out, "@", 1);
        if (label && llen) {
            put_decoded(out, label, llen);
        } else if (tlen - 1 < sizeof id &&
                   (snprintf(id, sizeof id, "%.*s", (int)(tlen - 1), seq + 1),
                    slack_user_cached(s, id, name, sizeof name))) {
            sb_puts(out, name);
        } else {
            put_decoded(out, seq + 1, tlen - 1); /* whole: a cut could split a character */
        }
    } else if (tlen > 1 && seq[0] == '#') { /* a channel: <#C123|general> */
        sb_append(out, "#", 1);
        put_decoded(out, label && llen ? label : seq + 1, label && llen ? llen : tlen - 1);
    } else if (tlen > 1 && seq[0] == '!') { /* <!here>, <!subteam^S1|@team>, <!date^…|text> */
        if (label && llen) {
            put_decoded(out, label, llen);
        } else {
            size_t kw = strcspn(seq + 1, "^|>");
            kw = kw < tlen - 1 ? kw : tlen - 1;
            sb_append(out, "@", 1);
            sb_append(out, seq + 1, kw);
        }
    } else if (label && llen) { /* a link with a label */
        put_decoded(out, label, llen);
    } else { /* a bare link; mailto: is said without its scheme */
        size_t skip = tlen > 7 && strncmp(seq, "mailto:", 7) == 0 ? 7 : 0;
        put_decoded(out, seq + skip, tlen - skip);
    }
}

void slack_plain_text(slack *s, sbuf *out, const char *text)
{
    const char *p = text ? text : "";
    while (*p) {
        const char *lt = strchr(p, '<');
        const char *gt = lt ? strchr(lt + 1, '>') : NULL;
        if (!lt || !gt) {
            put_decoded(out, p, strlen(p));
            break;
        }
        put_decoded(out, p, (size_t)(lt - p));
        put_control(s, out, lt + 1, (size_t)(gt - lt - 1));
        p = gt + 1;
    }
}

bool slack_user_cached(slack *s, const char *user, char *out, size_t size)
{
    bool found = false;
    int64_t now = s->host->now_ms(s->inst);
    pthread_mutex_lock(&s->lock);
    const json_t *e = json_object_get(s->users, user);
    const char *name = jstr(e, "name");
    if (name && now - json_integer_value(json_object_get(e, "at")) < USER_TTL_MS) {
        snprintf(out, size, "%s", name);
        found = true;
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

void slack_user_remember(slack *s, const char *user, const char *name)
{
    int64_t now = s->host->now_ms(s->inst);
    pthread_mutex_lock(&s->lock);
    if (json_object_size(s->users) >= USER_CACHE_MAX) {
        json_object_clear(s->users); /* a crude bound: names are cheap to look up again */
    }
    json_object_set_new(s->users, user,
                        json_pack("{s:s, s:I}", "name", name, "at", (json_int_t)now));
    pthread_mutex_unlock(&s->lock);
}

const char *slack_name_of_user(const json_t *user)
{
    const json_t *profile = json_object_get(user, "profile");
    const char *n = jstr_nonempty(profile, "display_name");
    if (!n) {
        n = jstr_nonempty(profile, "real_name");
    }
    if (!n) {
        n = jstr_nonempty(user, "real_name");
    }
    if (!n) {
        n = jstr_nonempty(user, "name");
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */

static void wipe_free(char *p)
{
    if (p) {
        volatile char *v = p;
        while (*v) {
            *v++ = 0;
        }
        free(p);
    }
}

static void slack_destroy(void *state)
{
    slack *s = state;
    if (!s) {
        return;
    }
    slack_api_cleanup(s);
    wipe_free(s->token);
    wipe_free(s->auth_header);
    if (s->signing_secret) {
        volatile char *v = s->signing_secret;
        for (size_t i = 0; i < s->signing_secret_len; i++) {
            v[i] = 0;
        }
        free(s->signing_secret);
    }
    free(s->api_base);
    json_decref(s->users);
    json_decref(s->paused);
    json_decref(s->thread_polls);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static long int_opt(const json_t *config, const char *name, long def)
{
    const json_t *v = json_object_get(config, name);
    return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

static double num_opt(const json_t *config, const char *name, double def)
{
    const json_t *v = json_object_get(config, name);
    return json_is_number(v) ? json_number_value(v) : def;
}

static bool header_safe(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return false;
        }
    }
    return true;
}

static int slack_init(const wh_host *host, wh_instance *inst, const json_t *config, void **state)
{
    slack *s = calloc(1, sizeof *s);
    if (!s) {
        return WH_ERR_NOMEM;
    }
    s->host = host;
    s->inst = inst;
    pthread_mutex_init(&s->lock, NULL);
    s->users = json_object();
    s->paused = json_object();
    s->thread_polls = json_object();
    if (!s->users || !s->paused || !s->thread_polls) {
        goto nomem;
    }
    /* every problem is logged before giving up: `check` lists them all, each at its key */
    int bad = 0;
    const char *token = jstr(config, "token");
    const json_t *secret = json_object_get(config, "signing_secret");
    if (!token || !*token || !header_safe(token)) {
        host->log(inst, WH_LOG_ERROR,
                  "config: `token` must be a non-empty string without "
                  "control characters");
        bad = 1;
        token = "";
    }
    if (!json_is_string(secret) || json_string_length(secret) == 0) {
        host->log(inst, WH_LOG_ERROR, "config: `signing_secret` must be a non-empty string");
        bad = 1;
        secret = NULL;
    }
    s->token = strdup(token);
    size_t n = strlen(token) + 32;
    s->auth_header = malloc(n);
    s->signing_secret_len = secret ? json_string_length(secret) : 0;
    s->signing_secret = malloc(s->signing_secret_len + 1);
    const char *base = jstr(config, "api_base");
    s->api_base = strdup(base ? base : "https://slack.com/api");
    if (!s->token || !s->auth_header || !s->signing_secret || !s->api_base) {
        goto nomem;
    }
    snprintf(s->auth_header, n, "Authorization: Bearer %s", token);
    memcpy(s->signing_secret, secret ? json_string_value(secret) : "", s->signing_secret_len + 1);
    size_t blen = strlen(s->api_base);
    while (blen > 0 && s->api_base[blen - 1] == '/') {
        s->api_base[--blen] = '\0';
    }
    if ((strncmp(s->api_base, "https://", 8) != 0 && strncmp(s->api_base, "http://", 7) != 0) ||
        !header_safe(s->api_base) || strchr(s->api_base, ' ') || strchr(s->api_base, '?')) {
        host->log(inst, WH_LOG_ERROR,
                  "config: `api_base` must be an http:// or https:// URL without a query");
        bad = 1;
    }
    s->max_skew_s = int_opt(config, "max_skew", 300);
    s->deadline_ms = int_opt(config, "deadline_ms", 2500);
    s->post_per_s = num_opt(config, "post_per_channel_per_s", 1);
    s->tier3_per_min = int_opt(config, "tier3_per_min", 50);
    s->replies_per_min = int_opt(config, "replies_per_min", 0);
    s->tier4_per_min = int_opt(config, "tier4_per_min", 100);
    double every = num_opt(config, "replies_poll_every", 20);
    s->page_limit = int_opt(config, "page_limit", 200);
    if (s->max_skew_s < 1 || s->max_skew_s > 86400) {
        host->log(inst, WH_LOG_ERROR, "config: `max_skew` must be 1..86400 seconds");
        bad = 1;
    }
    if (s->deadline_ms < 1 || s->deadline_ms > 2900) {
        host->log(inst, WH_LOG_ERROR,
                  "config: `deadline_ms` must be 1..2900 (Slack waits 3000 ms at most)");
        bad = 1;
    }
    if (!(s->post_per_s > 0 && s->post_per_s <= 1000)) {
        host->log(inst, WH_LOG_ERROR, "config: `post_per_channel_per_s` must be > 0 and <= 1000");
        bad = 1;
    }
    if (s->tier3_per_min < 1 || s->tier3_per_min > 100000) {
        host->log(inst, WH_LOG_ERROR, "config: `tier3_per_min` must be 1..100000");
        bad = 1;
    }
    if (s->tier4_per_min < 1 || s->tier4_per_min > 100000) {
        host->log(inst, WH_LOG_ERROR, "config: `tier4_per_min` must be 1..100000");
        bad = 1;
    }
    if (s->replies_per_min < 0 || s->replies_per_min > 100000) {
        host->log(inst, WH_LOG_ERROR,
                  "config: `replies_per_min` must be 0..100000 (0: as `tier3_per_min`)");
        bad = 1;
    }
    if (s->replies_per_min == 0) {
        s->replies_per_min = s->tier3_per_min;
    }
    if (!(every >= 0 && every <= 86400)) {
        host->log(inst, WH_LOG_ERROR, "config: `replies_poll_every` must be 0..86400 seconds");
        bad = 1;
    }
    s->replies_every_ms = (long)(every * 1000.0 + 0.5);
    if (s->page_limit < 1 || s->page_limit > 1000) {
        host->log(inst, WH_LOG_ERROR, "config: `page_limit` must be 1..1000");
        bad = 1;
    }
    const char *bot = jstr(config, "bot_user_id");
    if (bot) {
        if (!*bot || strlen(bot) >= SLACK_ID_MAX) {
            host->log(inst, WH_LOG_ERROR, "config: `bot_user_id` must be a Slack user id (U…)");
            bad = 1;
        } else {
            copy_id(s->bot_user_id, bot);
        }
    }
    if (bad) {
        goto bad;
    }
    *state = s;
    return WH_OK;
nomem:
    slack_destroy(s);
    return WH_ERR_NOMEM;
bad:
    slack_destroy(s);
    return WH_ERR_CONFIG;
}

static const wh_connector k_slack = {
    WH_CONNECTOR_HEADER("slack", "1.0.0",
                        "Slack: signed Events API, slash commands and interactivity in; "
                        "Web API messages, reactions and reply polling out"),
    .options = k_options,
    .init = slack_init,
    .destroy = slack_destroy,
    .webhook = slack_webhook,
    .respond = slack_respond,
    .operations = slack_operations,
    .late = slack_late,
    .respond_keys = (const char *const[]){"text", "blocks", "ephemeral", "response_type",
                                          "replace_original", "delete_original",
                                          "response_action", "errors", "view", NULL},
};

WH_CONNECTOR_EXPORT(k_slack)
