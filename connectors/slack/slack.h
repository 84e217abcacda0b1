/*
 * slack.h — private to the Slack connector: the instance state and the
 * functions its files share. Not part of the SDK; nothing outside
 * connectors/slack includes it.
 *
 * Threads: webhook()/respond()/late() run on the gateway's threads, several
 * at once; operations, HTTP callbacks and deferred timers run on the one
 * delivery thread. Fields marked [delivery] are touched only there; fields
 * marked [lock] only under `lock`; the rest are immutable after init().
 */
#ifndef WH_SLACK_H
#define WH_SLACK_H

#include <wirehub/connector.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLACK_ID_MAX 64 /* Slack ids (U…, B…, A…) are short; longer ones are refused */

struct slack_lane;
struct slack_waiter;

/* auth_state: the one auth.test call that learns this app's bot user id and bot id */
enum {
    SLACK_AUTH_IDLE,   /* never tried */
    SLACK_AUTH_QUEUED, /* a timer will start it (slack_identity_kick) */
    SLACK_AUTH_BUSY,   /* in flight */
    SLACK_AUTH_DONE,   /* answered: never called again */
    SLACK_AUTH_FAILED, /* failed: tried again after auth_retry_at */
};

typedef struct slack {
    const wh_host *host;
    wh_instance *inst;
    char *token;          /* bearer token (secret) */
    char *auth_header;    /* "Authorization: Bearer <token>" (secret) */
    char *signing_secret; /* (secret) */
    size_t signing_secret_len;
    char *api_base; /* without a trailing '/' */
    long max_skew_s;
    long deadline_ms;
    double post_per_s;     /* chat.postMessage per channel per second */
    long tier3_per_min;    /* chat.update, reactions.add, conversations.history */
    long replies_per_min;  /* conversations.replies */
    long tier4_per_min;    /* users.info, auth.test */
    long replies_every_ms; /* minimum interval between two polls of one thread */
    long page_limit;       /* `limit` for conversations.replies / .history */

    pthread_mutex_t lock;
    char bot_user_id[SLACK_ID_MAX]; /* [lock] configured, from auth.test or an event */
    char bot_id[SLACK_ID_MAX];      /* [lock] from auth.test */
    char app_id[SLACK_ID_MAX];      /* [lock] from an event's api_app_id */
    json_t *users;                  /* [lock] user id → {"name", "at"}: users.info cache */

    /* auth.test, once: who "we" are (see slack_identity_fetch) */
    int auth_state;        /* [lock] SLACK_AUTH_* */
    int64_t auth_retry_at; /* [lock] with SLACK_AUTH_FAILED: no new attempt before (ms) */
    long auth_backoff_ms;  /* [lock] the pause after the next failure */
    int auth_outcome;      /* [lock] with SLACK_AUTH_FAILED: RETRY or FAIL */
    char auth_error[200];  /* [lock] with SLACK_AUTH_FAILED: "auth.test: …" */
    struct slack_waiter *auth_waiters; /* [delivery] callers waiting for the answer */

    struct slack_lane *lanes; /* [delivery] pacing lanes */
    size_t nlanes;            /* [delivery] */
    json_t *paused;           /* [delivery] Web API method → paused until (ms) after a 429 */
    json_t *thread_polls;     /* [delivery] "channel ts" → last conversations.replies poll (ms) */
} slack;

/* ---- slack.c: small helpers ---------------------------------------------- */

/** A growable string; `len` excludes the NUL that always follows `data`. */
typedef struct sbuf {
    char *data;
    size_t len, cap;
    bool oom;
} sbuf;

void sb_append(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Percent-encode for a URL query (RFC 3986 unreserved characters stay). */
void sb_urlencode(sbuf *b, const char *s);

/** The string member `key` of `obj`, or NULL. Ownership: borrows obj; result borrowed. */
const char *jstr(const json_t *obj, const char *key);
/** Like jstr() but an empty string is NULL too. */
const char *jstr_nonempty(const json_t *obj, const char *key);

/**
 * Compare two Slack timestamps ("1700000000.000200") numerically.
 * Returns <0, 0, >0; a malformed one sorts before every valid one.
 */
int slack_ts_cmp(const char *a, const char *b);
/** True when `ts` looks like a Slack timestamp (digits, optionally "." and digits). */
bool slack_ts_valid(const char *ts);
/** RFC 3339 UTC time with milliseconds of a Slack timestamp into out (>= 32 bytes). */
bool slack_ts_rfc3339(const char *ts, char *out, size_t size);
/** A Slack timestamp for a wall-clock time in ms ("1700000000.123000"). */
void slack_ts_from_ms(int64_t ms, char *out, size_t size);

/** Copy the bot identity under the lock (each buffer SLACK_ID_MAX bytes; "" when unknown). */
void slack_identity(slack *s, char *user_id, char *bot_id, char *app_id);
/** Remember an identity learned from Slack; NULL or "" leaves a field as it is. */
void slack_learn_identity(slack *s, const char *user_id, const char *bot_id, const char *app_id);
/** True when a message object was posted by this app's bot. Ownership: borrows msg. */
bool slack_from_self(slack *s, const json_t *msg);
/**
 * The name of a bot that posted `msg` (a message without a user id): its
 * `bot_profile.name`, else its `username`, else its `bot_id`; NULL when it has
 * none of them. Polls and pushed events both name bots with it.
 * Ownership: borrows msg; the result is borrowed from it.
 */
const char *slack_bot_author(const json_t *msg);

/**
 * Message text (Slack's mrkdwn) as plain text, appended to out: `&amp;`,
 * `&lt;`, `&gt;` decoded; `<@U1>` as `@` and the user's cached name (else the
 * id), `<#C1|general>` as `#general`, `<!here>` as `@here`, a link as its
 * label (else its URL, a mailto: without the scheme). Other markup (*bold*,
 * _italic_, emoji codes) is kept. Ownership: borrows; appends to out.
 */
void slack_plain_text(slack *s, sbuf *out, const char *text);

/** The cached display name of `user`, copied into out; false when not cached or expired. */
bool slack_user_cached(slack *s, const char *user, char *out, size_t size);
/** Cache a user's name. */
void slack_user_remember(slack *s, const char *user, const char *name);
/**
 * A users.info `user` object's display name, else real name, else name, or NULL.
 * Ownership: borrows user; the result is borrowed from it.
 */
const char *slack_name_of_user(const json_t *user);

/* ---- slack_ingress.c: webhook(), respond(), late() ------------------------ */
/* The descriptor's callbacks (see connector.h). Ownership: they borrow everything. */

int slack_webhook(void *state, const wh_request *req, wh_webhook *wh);
int slack_respond(void *state, const json_t *event, const json_t *response, wh_reply *out);
int slack_late(void *state, const json_t *event, const json_t *response);

/* ---- slack_api.c: Web API calls, pacing, rate limits, outcome mapping ------ */

/** What a finished Web API call gave. Everything is borrowed for the callback only. */
typedef struct slack_result {
    wh_outcome outcome;      /* OK, RETRY (transient, 429, 5xx) or FAIL */
    const json_t *body;      /* the parsed answer when it was JSON, else NULL */
    long retry_after_ms;     /* with RETRY: the earliest next attempt (0 = backoff) */
    const char *error;       /* with RETRY/FAIL: "<method>: <slack error or HTTP status>" */
    const char *slack_error; /* Slack's `error` string when the body said ok:false */
} slack_result;

typedef void (*slack_api_done)(void *user, const slack_result *r);

/**
 * Call Web API `method` ("chat.postMessage"): as GET with `args` as query
 * arguments when `get`, else as a POST with `args` as a JSON body
 * (charset=utf-8). The call waits in its pacing lane (per method, and per
 * `channel` for chat.postMessage) and is refused at once, RETRY with the
 * remaining time, while a 429 has paused the method. `done` runs exactly
 * once, on the delivery thread, possibly before this returns.
 * Ownership: borrows args. Thread: delivery.
 */
void slack_api_call(slack *s, const char *method, bool get, const json_t *args, const char *channel,
                    slack_api_done done, void *user);

/** Free the lanes (waiting requests are dropped without a callback: only at destroy). */
void slack_api_cleanup(slack *s);

/**
 * POST a message JSON to a response_url (commands, interactions), retrying
 * a transient failure up to twice on timers. Any thread.
 * Ownership: borrows url and message.
 */
int slack_post_response_url(slack *s, const char *url, const json_t *message);

/* ---- slack_api.c: the app's identity (auth.test) --------------------------- */

/**
 * True while auth.test has not answered and may be tried now (never tried,
 * queued, in flight, or failed with its pause over). Any thread.
 */
bool slack_identity_wanted(slack *s);

/**
 * Start auth.test soon, in the background, when it is wanted and not started
 * yet: a host timer runs slack_identity_fetch() on the delivery thread. Any
 * thread; does nothing when the host cannot defer.
 */
void slack_identity_kick(slack *s);

/** What slack_identity_fetch() reports: WH_CALL_OK once auth.test answered. */
typedef void (*slack_identity_done)(void *user, const slack_result *r);

/**
 * Learn this app's bot user id and bot id with auth.test, once per instance:
 * calls done(user, r) when auth.test has answered (r->outcome OK), or has
 * failed (RETRY/FAIL with the error; r->body is Slack's answer when this
 * call made the request). Concurrent callers share one request. After a
 * failure, no new request is made for a pause (30 s, doubling up to 10 min,
 * at least Retry-After) and callers in it get the failure at once. `done`
 * may be NULL, and may run before this returns.
 * Thread: delivery. Ownership: user is the caller's.
 */
void slack_identity_fetch(slack *s, slack_identity_done done, void *user);

/* ---- slack_ops.c: the operations table ------------------------------------ */

extern const wh_operation slack_operations[];

#endif
