/*
 * slack_ops.c — the Slack connector's operations: post_message,
 * update_message, add_reaction, and the polls thread_replies and
 * channel_history (new messages since the cursor, pages followed, this
 * bot's own messages left out, authors named through a users.info cache).
 *
 * Owns: argument checking and result shapes. Must not: talk HTTP itself
 * (slack_api.c does, with pacing and outcome mapping), block, or keep a
 * call after completing it. Everything here runs on the delivery thread.
 */
#include "slack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAGES 50          /* a bound on one poll's pagination */
#define POLL_TOLERANCE_MS 200 /* timers are not exact: this much early is on time */
#define THREAD_POLLS_MAX 4096

static int fail(slack *s, wh_call *call, const char *error)
{
    s->host->complete(call, WH_CALL_FAIL, NULL, 0, error);
    return WH_OK;
}

/* "<op>: `<arg>` must be a string" */
static int fail_type(slack *s, wh_call *call, const char *op, const char *arg)
{
    char err[160];
    snprintf(err, sizeof err, "%s: `%s` must be a string", op, arg);
    return fail(s, call, err);
}

/* A result for a failed Slack call: Slack's answer, kept for dead letters. */
static json_t *failure_result(const slack_result *r)
{
    return r->body ? json_deep_copy(r->body) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Arguments                                                                 */

/*
 * An optional string argument: absent, null and "" are NULL. Returns false
 * (with *bad set to the name) when it is another type.
 */
static bool opt_str(const json_t *args, const char *name, const char **out, const char **bad)
{
    const json_t *v = json_object_get(args, name);
    *out = NULL;
    if (!v || json_is_null(v)) {
        return true;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = name;
        return false;
    }
    *out = json_string_length(v) ? json_string_value(v) : NULL;
    return true;
}

/* `blocks`: an array, or a string holding a JSON array (a rendered template). New ref. */
static bool opt_blocks(const json_t *args, json_t **out)
{
    const json_t *v = json_object_get(args, "blocks");
    *out = NULL;
    if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        return true;
    }
    if (json_is_array(v)) {
        *out = json_incref((json_t *)v);
        return true;
    }
    if (json_is_string(v)) {
        json_t *parsed = json_loads(json_string_value(v), 0, NULL);
        if (json_is_array(parsed)) {
            *out = parsed;
            return true;
        }
        json_decref(parsed);
    }
    return false;
}

/* A boolean argument, also as "true"/"false" text. -1 absent, 0/1, -2 malformed. */
static int opt_bool(const json_t *args, const char *name)
{
    const json_t *v = json_object_get(args, name);
    if (!v || json_is_null(v)) {
        return -1;
    }
    if (json_is_boolean(v)) {
        return json_is_true(v);
    }
    const char *t = json_string_value(v);
    if (t && (strcmp(t, "true") == 0 || strcmp(t, "false") == 0)) {
        return t[0] == 't';
    }
    return t && !*t ? -1 : -2;
}

static bool id_like(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 250 && !strpbrk(s, "\r\n");
}

/* ------------------------------------------------------------------------ */
/* post_message, update_message, add_reaction                                */

enum { OP_POST, OP_UPDATE, OP_REACT };

typedef struct simple_ctx {
    slack *s;
    wh_call *call;
    int which;
    char channel[256], ts[32], thread_ts[32], name[128];
} simple_ctx;

static void simple_done(void *user, const slack_result *r)
{
    simple_ctx *c = user;
    slack *s = c->s;
    wh_call *call = c->call;
    bool ok = r->outcome == WH_CALL_OK ||
              (c->which == OP_REACT && r->slack_error &&
               strcmp(r->slack_error, "already_reacted") == 0); /* a retry after a lost answer */
    if (!ok) {
        free(c);
        s->host->complete(call, r->outcome, failure_result(r), r->retry_after_ms, r->error);
        return;
    }
    const char *channel = jstr_nonempty(r->body, "channel");
    const char *ts = jstr_nonempty(r->body, "ts");
    if (c->which == OP_REACT || !channel) {
        channel = c->channel;
    }
    if (c->which == OP_REACT || !ts) {
        ts = c->ts;
    }
    json_t *result = json_pack("{s:s, s:s}", "channel", channel, "ts", ts);
    if (result && c->thread_ts[0]) {
        json_object_set_new(result, "thread_ts", json_string(c->thread_ts));
    }
    if (result && c->which == OP_REACT) {
        json_object_set_new(result, "name", json_string(c->name));
    }
    free(c);
    if (!result) {
        s->host->complete(call, WH_CALL_RETRY, NULL, 0, "out of memory");
        return;
    }
    s->host->complete(call, WH_CALL_OK, result, 0, NULL);
}

static int start_simple(slack *s, wh_call *call, int which, const char *method, json_t *body,
                        const char *channel, const char *ts, const char *thread_ts,
                        const char *name)
{
    simple_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        json_decref(body);
        s->host->complete(call, WH_CALL_RETRY, NULL, 0, "out of memory");
        return WH_OK;
    }
    c->s = s;
    c->call = call;
    c->which = which;
    snprintf(c->channel, sizeof c->channel, "%s", channel);
    snprintf(c->ts, sizeof c->ts, "%s", ts ? ts : "");
    snprintf(c->thread_ts, sizeof c->thread_ts, "%s", thread_ts ? thread_ts : "");
    snprintf(c->name, sizeof c->name, "%s", name ? name : "");
    slack_api_call(s, method, false, body, channel, simple_done, c);
    json_decref(body);
    return WH_OK;
}

static int op_post_message(void *state, wh_call *call, const json_t *args)
{
    slack *s = state;
    const char *channel, *text, *thread_ts, *bad = NULL;
    json_t *blocks = NULL;
    if (!opt_str(args, "channel", &channel, &bad) || !opt_str(args, "text", &text, &bad) ||
        !opt_str(args, "thread_ts", &thread_ts, &bad)) {
        return fail_type(s, call, "post_message", bad);
    }
    if (!channel || !id_like(channel)) {
        return fail(s, call, "post_message: `channel` is required (an id like C0123 or #name)");
    }
    if (thread_ts && !slack_ts_valid(thread_ts)) {
        return fail(s, call, "post_message: `thread_ts` must be a Slack timestamp");
    }
    int broadcast = opt_bool(args, "reply_broadcast");
    if (broadcast == -2) {
        return fail(s, call, "post_message: `reply_broadcast` must be true or false");
    }
    if (!opt_blocks(args, &blocks)) {
        return fail(s, call, "post_message: `blocks` must be a list of Block Kit blocks");
    }
    if (!text && !blocks) {
        return fail(s, call, "post_message: give `text`, `blocks` or both");
    }
    json_t *body = json_pack("{s:s}", "channel", channel);
    if (body && text) {
        json_object_set_new(body, "text", json_string(text));
    }
    if (body && blocks) {
        json_object_set(body, "blocks", blocks);
    }
    if (body && thread_ts) {
        json_object_set_new(body, "thread_ts", json_string(thread_ts));
    }
    if (body && broadcast >= 0) {
        json_object_set_new(body, "reply_broadcast", json_boolean(broadcast));
    }
    json_decref(blocks);
    if (!body) {
        s->host->complete(call, WH_CALL_RETRY, NULL, 0, "out of memory");
        return WH_OK;
    }
    return start_simple(s, call, OP_POST, "chat.postMessage", body, channel, NULL, thread_ts, NULL);
}

static int op_update_message(void *state, wh_call *call, const json_t *args)
{
    slack *s = state;
    const char *channel, *ts, *text, *bad = NULL;
    json_t *blocks = NULL;
    if (!opt_str(args, "channel", &channel, &bad) || !opt_str(args, "ts", &ts, &bad) ||
        !opt_str(args, "text", &text, &bad)) {
        return fail_type(s, call, "update_message", bad);
    }
    if (!channel || !id_like(channel) || !ts || !slack_ts_valid(ts)) {
        return fail(s, call,
                    "update_message: `channel` and `ts` (a Slack timestamp) are "
                    "required");
    }
    if (!opt_blocks(args, &blocks)) {
        return fail(s, call, "update_message: `blocks` must be a list of Block Kit blocks");
    }
    if (!text && !blocks) {
        return fail(s, call, "update_message: give `text`, `blocks` or both");
    }
    json_t *body = json_pack("{s:s, s:s}", "channel", channel, "ts", ts);
    if (body && text) {
        json_object_set_new(body, "text", json_string(text));
    }
    if (body && blocks) {
        json_object_set(body, "blocks", blocks);
    }
    json_decref(blocks);
    if (!body) {
        s->host->complete(call, WH_CALL_RETRY, NULL, 0, "out of memory");
        return WH_OK;
    }
    return start_simple(s, call, OP_UPDATE, "chat.update", body, channel, ts, NULL, NULL);
}

static int op_add_reaction(void *state, wh_call *call, const json_t *args)
{
    slack *s = state;
    const char *channel, *ts, *name, *bad = NULL;
    if (!opt_str(args, "channel", &channel, &bad) || !opt_str(args, "ts", &ts, &bad) ||
        !opt_str(args, "name", &name, &bad)) {
        return fail_type(s, call, "add_reaction", bad);
    }
    if (!channel || !id_like(channel) || !ts || !slack_ts_valid(ts) || !name) {
        return fail(s, call,
                    "add_reaction: `channel`, `ts` (a Slack timestamp) and `name` are "
                    "required");
    }
    /* ":thumbsup:" and "thumbsup" both work */
    char clean[128];
    size_t n = strlen(name);
    if (n >= 2 && name[0] == ':' && name[n - 1] == ':') {
        name++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof clean) {
        return fail(s, call, "add_reaction: `name` must be an emoji name like thumbsup");
    }
    memcpy(clean, name, n);
    clean[n] = '\0';
    json_t *body = json_pack("{s:s, s:s, s:s}", "channel", channel, "timestamp", ts, "name", clean);
    if (!body) {
        s->host->complete(call, WH_CALL_RETRY, NULL, 0, "out of memory");
        return WH_OK;
    }
    return start_simple(s, call, OP_REACT, "reactions.add", body, channel, ts, NULL, clean);
}

/* ------------------------------------------------------------------------ */
/* Polls: thread_replies and channel_history                                 */

typedef struct poll_ctx {
    slack *s;
    wh_call *call;
    bool thread; /* thread_replies (else channel_history) */
    char channel[256];
    char parent[32];      /* thread_replies: the parent's ts */
    char oldest[32];      /* only messages after this ts are new */
    char thread_key[300]; /* "channel ts": the thread_polls entry a successful poll sets */
    char newest[32];      /* the largest ts seen after `oldest` */
    char *page_cursor;    /* Slack's next_cursor, or NULL for the first page */
    int pages;
    json_t *seen;  /* ts → message: every message after `oldest`, own ones included */
    json_t *users; /* user ids to name, in order */
    size_t user_next;
    bool names_failed;
    int64_t started;
} poll_ctx;

static void poll_free(poll_ctx *c)
{
    if (c) {
        free(c->page_cursor);
        json_decref(c->seen);
        json_decref(c->users);
        free(c);
    }
}

static void poll_finish(poll_ctx *c, wh_outcome outcome, json_t *result, long retry_after,
                        const char *error)
{
    slack *s = c->s;
    wh_call *call = c->call;
    poll_free(c);
    s->host->complete(call, outcome, result, retry_after, error);
}

static int64_t thread_polled(slack *s, const char *key, int64_t now, bool record);

static bool kept_subtype(const char *st)
{
    return !st || strcmp(st, "thread_broadcast") == 0 || strcmp(st, "bot_message") == 0 ||
           strcmp(st, "file_share") == 0 || strcmp(st, "me_message") == 0;
}

static int cmp_ts_items(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    return slack_ts_cmp(jstr(x, "ts"), jstr(y, "ts"));
}

/* The poll's items, ascending by ts, and its cursor: complete the call. */
static void poll_complete(poll_ctx *c)
{
    slack *s = c->s;
    size_t n = json_object_size(c->seen), k = 0;
    const json_t **msgs = calloc(n ? n : 1, sizeof *msgs);
    json_t *items = json_array();
    if (!msgs || !items) {
        free(msgs);
        json_decref(items);
        poll_finish(c, WH_CALL_RETRY, NULL, 0, "out of memory");
        return;
    }
    const char *key;
    json_t *m;
    json_object_foreach(c->seen, key, m)
    {
        if (c->thread && slack_ts_cmp(key, c->parent) == 0) {
            continue; /* the parent is not a reply */
        }
        if (!kept_subtype(jstr(m, "subtype")) || slack_from_self(s, m)) {
            continue;
        }
        msgs[k++] = m;
    }
    qsort(msgs, k, sizeof *msgs, cmp_ts_items);
    for (size_t i = 0; i < k; i++) {
        m = (json_t *)msgs[i];
        const char *ts = jstr(m, "ts");
        const char *user = jstr_nonempty(m, "user");
        char author[256] = "";
        if (user) {
            if (!slack_user_cached(s, user, author, sizeof author)) {
                snprintf(author, sizeof author, "%s", user);
            }
        } else {
            /* a bot's message: named as a pushed one is (slack_ingress.c) */
            const char *bn = slack_bot_author(m);
            snprintf(author, sizeof author, "%s", bn ? bn : "unknown");
            user = jstr_nonempty(m, "bot_id");
        }
        char when[40] = "";
        slack_ts_rfc3339(ts, when, sizeof when);
        const char *text = jstr(m, "text");
        sbuf plain = {0};
        slack_plain_text(s, &plain, text);
        json_t *item = plain.oom ? NULL
                                 : json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s, s:s, s:s}", "id", ts,
                                             "ts", ts, "user", user, "author", author, "text",
                                             plain.data ? plain.data : "", "mrkdwn",
                                             text ? text : "", "time", when, "channel", c->channel);
        free(plain.data);
        if (item && jstr(m, "thread_ts")) {
            json_object_set_new(item, "thread_ts", json_string(jstr(m, "thread_ts")));
        }
        if (item && !c->thread && json_is_integer(json_object_get(m, "reply_count"))) {
            json_object_set(item, "reply_count", json_object_get(m, "reply_count"));
        }
        if (!item || json_array_append_new(items, item) != 0) {
            free(msgs);
            json_decref(items);
            poll_finish(c, WH_CALL_RETRY, NULL, 0, "out of memory");
            return;
        }
    }
    free(msgs);
    if (c->thread) {
        /* only a poll that worked starts the next interval: a retry is not held back */
        thread_polled(s, c->thread_key, c->started, true);
    }
    const char *oldest = c->newest[0] ? c->newest : c->oldest;
    json_t *result = json_pack("{s:o, s:{s:s, s:I}}", "items", items, "cursor", "oldest", oldest,
                               "polled_ms", (json_int_t)c->started);
    if (!result) {
        poll_finish(c, WH_CALL_RETRY, NULL, 0, "out of memory");
        return;
    }
    poll_finish(c, WH_CALL_OK, result, 0, NULL);
}

static void lookup_next_user(poll_ctx *c);

static void user_done(void *user, const slack_result *r)
{
    poll_ctx *c = user;
    slack *s = c->s;
    const char *id = json_string_value(json_array_get(c->users, c->user_next));
    if (r->outcome == WH_CALL_RETRY) {
        poll_finish(c, WH_CALL_RETRY, NULL, r->retry_after_ms, r->error);
        return;
    }
    if (r->outcome == WH_CALL_OK) {
        const char *name = slack_name_of_user(json_object_get(r->body, "user"));
        slack_user_remember(s, id, name ? name : id);
    } else {
        /* user_not_found, missing users:read…: the id stands in for the name */
        if (!c->names_failed) {
            s->host->log(s->inst, WH_LOG_WARN, "authors shown as user ids: %s", r->error);
        }
        c->names_failed = true;
        slack_user_remember(s, id, id);
    }
    c->user_next++;
    lookup_next_user(c);
}

static void lookup_next_user(poll_ctx *c)
{
    slack *s = c->s;
    char name[256];
    while (c->user_next < json_array_size(c->users)) {
        const char *id = json_string_value(json_array_get(c->users, c->user_next));
        if (!slack_user_cached(s, id, name, sizeof name)) {
            json_t *args = json_pack("{s:s}", "user", id);
            if (!args) {
                poll_finish(c, WH_CALL_RETRY, NULL, 0, "out of memory");
                return;
            }
            slack_api_call(s, "users.info", true, args, NULL, user_done, c);
            json_decref(args);
            return;
        }
        c->user_next++;
    }
    poll_complete(c);
}

/* After the last page: the users to name, then the items. */
static void name_authors(poll_ctx *c)
{
    slack *s = c->s;
    c->users = json_array();
    json_t *listed = json_object();
    if (!c->users || !listed) {
        json_decref(listed);
        poll_finish(c, WH_CALL_RETRY, NULL, 0, "out of memory");
        return;
    }
    const char *key;
    json_t *m;
    char name[256];
    json_object_foreach(c->seen, key, m)
    {
        const char *user = jstr_nonempty(m, "user");
        if (!user || strlen(user) >= SLACK_ID_MAX || json_object_get(listed, user) ||
            (c->thread && slack_ts_cmp(key, c->parent) == 0) || slack_from_self(s, m) ||
            !kept_subtype(jstr(m, "subtype")) || slack_user_cached(s, user, name, sizeof name)) {
            continue;
        }
        json_object_set_new(listed, user, json_true());
        json_array_append_new(c->users, json_string(user));
    }
    json_decref(listed);
    c->user_next = 0;
    lookup_next_user(c);
}

static void fetch_page(poll_ctx *c);

static void page_done(void *user, const slack_result *r)
{
    poll_ctx *c = user;
    if (r->outcome != WH_CALL_OK) {
        poll_finish(c, r->outcome, failure_result(r), r->retry_after_ms, r->error);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(r->body, "messages"), i, m)
    {
        const char *ts = jstr(m, "ts");
        if (!ts || !slack_ts_valid(ts) || strlen(ts) >= sizeof c->newest ||
            slack_ts_cmp(ts, c->oldest) <= 0) {
            continue;
        }
        if (!c->newest[0] || slack_ts_cmp(ts, c->newest) > 0) {
            snprintf(c->newest, sizeof c->newest, "%s", ts);
        }
        json_object_set(c->seen, ts, m);
    }
    const char *next = jstr_nonempty(json_object_get(r->body, "response_metadata"), "next_cursor");
    free(c->page_cursor);
    c->page_cursor = NULL;
    if (next && c->pages < MAX_PAGES) {
        c->page_cursor = strdup(next);
        if (!c->page_cursor) {
            poll_finish(c, WH_CALL_RETRY, NULL, 0, "out of memory");
            return;
        }
        fetch_page(c);
        return;
    }
    if (next) {
        c->s->host->log(c->s->inst, WH_LOG_WARN,
                        "more than %d pages in one poll: the rest comes with the next poll",
                        MAX_PAGES);
        /* the cursor must not pass what was not read: keep the newest of what was */
    }
    name_authors(c);
}

static void fetch_page(poll_ctx *c)
{
    slack *s = c->s;
    json_t *args = json_pack("{s:s}", "channel", c->channel);
    if (args && c->thread) {
        json_object_set_new(args, "ts", json_string(c->parent));
    }
    if (args) {
        json_object_set_new(args, "oldest", json_string(c->oldest));
        json_object_set_new(args, "limit", json_integer(s->page_limit));
        if (c->page_cursor) {
            json_object_set_new(args, "cursor", json_string(c->page_cursor));
        }
    }
    if (!args) {
        poll_finish(c, WH_CALL_RETRY, NULL, 0, "out of memory");
        return;
    }
    c->pages++;
    slack_api_call(s, c->thread ? "conversations.replies" : "conversations.history", true, args,
                   c->channel, page_done, c);
    json_decref(args);
}

static void identity_done(void *user, const slack_result *r)
{
    poll_ctx *c = user;
    char user_id[SLACK_ID_MAX];
    slack_identity(c->s, user_id, NULL, NULL);
    if (r->outcome != WH_CALL_OK && !user_id[0]) {
        /* without even our user id, our own posts would come back as replies */
        poll_finish(c, r->outcome, failure_result(r), r->retry_after_ms, r->error);
        return;
    }
    fetch_page(c); /* with the user id known (configured, or from an event): go on */
}

/* Learn who "we" are (auth.test, once per instance) so that our own messages are left out. */
static void poll_begin(poll_ctx *c)
{
    slack_identity_fetch(c->s, identity_done, c);
}

/* Last-poll times of threads, bounded: entries older than the interval are forgotten. */
static int64_t thread_polled(slack *s, const char *key, int64_t now, bool record)
{
    int64_t last = (int64_t)json_integer_value(json_object_get(s->thread_polls, key));
    if (record) {
        if (json_object_size(s->thread_polls) >= THREAD_POLLS_MAX) {
            const char *k;
            json_t *v;
            void *tmp;
            json_object_foreach_safe(s->thread_polls, tmp, k, v)
            {
                if (now - json_integer_value(v) >= s->replies_every_ms) {
                    json_object_del(s->thread_polls, k);
                }
            }
        }
        if (json_object_size(s->thread_polls) < THREAD_POLLS_MAX) {
            json_object_set_new(s->thread_polls, key, json_integer((json_int_t)now));
        }
    }
    return last;
}

static poll_ctx *poll_new(slack *s, wh_call *call, bool thread, const char *channel)
{
    poll_ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->seen = json_object())) {
        free(c);
        return NULL;
    }
    c->s = s;
    c->call = call;
    c->thread = thread;
    snprintf(c->channel, sizeof c->channel, "%s", channel);
    c->started = s->host->now_ms(s->inst);
    return c;
}

static int op_thread_replies(void *state, wh_call *call, const json_t *args)
{
    slack *s = state;
    const wh_host *h = s->host;
    const char *channel, *ts, *bad = NULL;
    if (!opt_str(args, "channel", &channel, &bad) || !opt_str(args, "ts", &ts, &bad)) {
        return fail_type(s, call, "thread_replies", bad);
    }
    if (!channel || !id_like(channel) || !ts || !slack_ts_valid(ts) || strlen(ts) >= 32) {
        return fail(s, call,
                    "thread_replies: `channel` and `ts` (the parent's Slack timestamp) "
                    "are required");
    }
    const json_t *cursor = h->call_cursor(call);
    const char *oldest = jstr(cursor, "oldest");
    if (cursor && !json_is_null(cursor) &&
        (!oldest || !slack_ts_valid(oldest) || strlen(oldest) >= 32)) {
        h->log(s->inst, WH_LOG_WARN, "thread_replies: ignoring a cursor that is not ours");
        cursor = NULL;
        oldest = NULL;
    }
    int64_t now = h->now_ms(s->inst);
    char key[300];
    snprintf(key, sizeof key, "%s %s", channel, ts);
    int64_t last = (int64_t)json_integer_value(json_object_get(cursor, "polled_ms"));
    int64_t mem = thread_polled(s, key, now, false);
    if (mem > last) {
        last = mem;
    }
    if (s->replies_every_ms > 0 && last > 0 && last <= now &&
        now - last + POLL_TOLERANCE_MS < s->replies_every_ms) {
        /* too early for Slack's budget: nothing new, and the same cursor */
        json_t *result =
            json_pack("{s:[], s:O?}", "items", "cursor", cursor ? (json_t *)cursor : NULL);
        h->complete(call, result ? WH_CALL_OK : WH_CALL_RETRY, result, 0,
                    result ? NULL : "out of memory");
        return WH_OK;
    }
    poll_ctx *c = poll_new(s, call, true, channel);
    if (!c) {
        h->complete(call, WH_CALL_RETRY, NULL, 0, "out of memory");
        return WH_OK;
    }
    snprintf(c->thread_key, sizeof c->thread_key, "%s", key);
    snprintf(c->parent, sizeof c->parent, "%s", ts);
    snprintf(c->oldest, sizeof c->oldest, "%s", oldest ? oldest : ts);
    poll_begin(c);
    return WH_OK;
}

static int op_channel_history(void *state, wh_call *call, const json_t *args)
{
    slack *s = state;
    const wh_host *h = s->host;
    const char *channel, *arg_oldest, *bad = NULL;
    if (!opt_str(args, "channel", &channel, &bad) || !opt_str(args, "oldest", &arg_oldest, &bad)) {
        return fail_type(s, call, "channel_history", bad);
    }
    if (!channel || !id_like(channel)) {
        return fail(s, call, "channel_history: `channel` is required");
    }
    if (arg_oldest && (!slack_ts_valid(arg_oldest) || strlen(arg_oldest) >= 32)) {
        return fail(s, call, "channel_history: `oldest` must be a Slack timestamp");
    }
    const json_t *cursor = h->call_cursor(call);
    const char *oldest = jstr(cursor, "oldest");
    if (cursor && !json_is_null(cursor) &&
        (!oldest || !slack_ts_valid(oldest) || strlen(oldest) >= 32)) {
        h->log(s->inst, WH_LOG_WARN, "channel_history: ignoring a cursor that is not ours");
        oldest = NULL;
    }
    int64_t now = h->now_ms(s->inst);
    if (!oldest && !arg_oldest) {
        /* the first poll marks where "new" begins: messages after this moment */
        char mark[32];
        slack_ts_from_ms(now, mark, sizeof mark);
        json_t *result = json_pack("{s:[], s:{s:s, s:I}}", "items", "cursor", "oldest", mark,
                                   "polled_ms", (json_int_t)now);
        h->complete(call, result ? WH_CALL_OK : WH_CALL_RETRY, result, 0,
                    result ? NULL : "out of memory");
        return WH_OK;
    }
    poll_ctx *c = poll_new(s, call, false, channel);
    if (!c) {
        h->complete(call, WH_CALL_RETRY, NULL, 0, "out of memory");
        return WH_OK;
    }
    snprintf(c->oldest, sizeof c->oldest, "%s", oldest ? oldest : arg_oldest);
    poll_begin(c);
    return WH_OK;
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

static const wh_option k_post_args[] = {
    {"channel", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "channel id (C…) or #name"},
    {"text", WH_OPT_STRING, NULL, 0, "message text (mrkdwn); required without blocks"},
    {"blocks", WH_OPT_ANY, NULL, 0, "Block Kit blocks (a list, or a template giving one)"},
    {"thread_ts", WH_OPT_STRING, NULL, 0, "reply in this thread (the parent's ts)"},
    {"reply_broadcast", WH_OPT_BOOL, NULL, 0, "with thread_ts: also show in the channel"},
    {NULL, 0, NULL, 0, NULL},
};

static const wh_option k_update_args[] = {
    {"channel", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "the message's channel id"},
    {"ts", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "the message's ts"},
    {"text", WH_OPT_STRING, NULL, 0, "new text; required without blocks"},
    {"blocks", WH_OPT_ANY, NULL, 0, "new Block Kit blocks"},
    {NULL, 0, NULL, 0, NULL},
};

static const wh_option k_reaction_args[] = {
    {"channel", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "the message's channel id"},
    {"ts", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "the message's ts"},
    {"name", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "emoji name (thumbsup or :thumbsup:)"},
    {NULL, 0, NULL, 0, NULL},
};

static const wh_option k_replies_args[] = {
    {"channel", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "the thread's channel id"},
    {"ts", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "the parent message's ts"},
    {NULL, 0, NULL, 0, NULL},
};

static const wh_option k_history_args[] = {
    {"channel", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "channel id"},
    {"oldest", WH_OPT_STRING, NULL, 0,
     "start after this ts on the first poll (default: the first poll's time)"},
    {NULL, 0, NULL, 0, NULL},
};

const wh_operation slack_operations[] = {
    {"post_message", "chat.postMessage; result {channel, ts}", k_post_args, op_post_message, 0},
    {"update_message", "chat.update; result {channel, ts}", k_update_args, op_update_message, 0},
    {"add_reaction", "reactions.add; result {channel, ts, name}", k_reaction_args, op_add_reaction,
     0},
    {"thread_replies",
     "poll conversations.replies: new replies {id, ts, user, author, text, time}, without the "
     "parent and this bot's messages",
     k_replies_args, op_thread_replies, WH_OP_POLL},
    {"channel_history", "poll conversations.history: new messages, without this bot's",
     k_history_args, op_channel_history, WH_OP_POLL},
    {NULL, NULL, NULL, NULL, 0},
};
