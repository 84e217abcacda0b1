/*
 * api.h — the replies API's logic for clients that poll (a phone app, a
 * custom voice front end): bearer tokens limited to key prefixes, and
 * reading (and marking read) the replies stored under a key. No HTTP here:
 * the gateway routes `GET /v1/replies/<key>` to it and holds long polls.
 */
#ifndef WH_API_H
#define WH_API_H
#include "store.h"
#include <jansson.h>

typedef struct wh_api wh_api;

/**
 * From the config's `api.tokens` object ({name: {token, keys: [prefixes]}},
 * already validated). Ownership: borrows tokens (copied) and store.
 */
wh_api *wh_api_new(const json_t *tokens, wh_store *store);
void wh_api_destroy(wh_api **api);

/**
 * Check an Authorization header value for reading `key`: 0 allowed, 401 no
 * valid bearer token, 403 the token may not read this key. Tokens are
 * compared in constant time.
 */
int wh_api_auth(const wh_api *api, const char *authorization, const char *key);

/**
 * The answer for `key`: {"key", "replies": [{id, author, text, time, source}],
 * "unread": N}. `unread_only` gives only unread replies and marks them read
 * unless `peek`; `since` (a reply id, may be NULL) gives only replies stored
 * after it. *count is the number of replies in the answer. Returns a new
 * reference, or NULL when the store cannot be read.
 */
json_t *wh_api_replies(wh_api *api, const char *key, int unread_only, int peek, const char *since,
                       size_t *count);
/**
 * Taking replies (reading and marking them) as one of several takers (the
 * engine's `load` with `unread`, the API's marking reads), so that none gets
 * a reply another has taken and not yet committed:
 *   after = wh_replies_take_begin(key);  // locks; only take replies with seq > after
 *   ... read ...;
 *   wh_replies_take_end(key, last);      // unlocks; holds up to `last` (0: took none)
 *   ... commit the marks ...;
 *   wh_replies_taken(key);               // after the commit, when last was > 0
 * Any thread; begin and end must pair on one thread, with nothing slow between.
 */
json_int_t wh_replies_take_begin(const char *key);
void wh_replies_take_end(const char *key, json_int_t last);
void wh_replies_taken(const char *key);
#endif
