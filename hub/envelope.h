/*
 * envelope.h — the message every part puts on the bus: a topic frame, then one
 * JSON frame {id, time, source, kind, data[, reply_to]}.
 */
#ifndef WH_ENVELOPE_H
#define WH_ENVELOPE_H
#include <jansson.h>
#include <stddef.h>

/** Longest topic we build or accept. */
#define WH_TOPIC_MAX 512

/**
 * A new envelope with a fresh 128-bit random hex id and the current time.
 * Ownership: takes `data` on success (NULL becomes {}); returns a new reference
 * or NULL (bad source/kind, or out of memory).
 */
json_t *wh_env_new(const char *source, const char *kind, json_t *data);

/**
 * The hot path's envelope: the same JSON text wh_env_new() + encoding would
 * give, built without an intermediate object. With `reply_to_prefix`
 * ("resp/<node>/"), the envelope gets "reply_to": prefix + its id. Writes the
 * id to id_out. Returns a malloc'd NUL-terminated text (length in *len) or
 * NULL (bad names, out of memory). Ownership: borrows data.
 */
char *wh_env_encode(const char *source, const char *kind, const json_t *data,
                    const char *reply_to_prefix, char id_out[33], size_t *len);

/** A name usable as a source or kind: 1–64 of [A-Za-z0-9_.-]. */
int wh_name_ok(const char *s);

/**
 * Check that `env` has the envelope's shape: `id` (32 hex digits), `time`
 * (string), `source` and `kind` (names), `data` (any), optional `reply_to`
 * (string). Returns 0 or -1 with a reason in err. Ownership: borrows.
 */
int wh_env_check(const json_t *env, char *err, size_t errsize);

/**
 * Decode and check one JSON frame. Returns a new reference or NULL with a
 * reason in err. The frame is bounded by the caller (bus frames ≤ 16 MiB).
 */
json_t *wh_env_decode(const char *buf, size_t len, char *err, size_t errsize);

/** The topic of an inbound event: "in/<source>/<kind>". Returns 0 or -1 when too long. */
int wh_topic_in(char *out, size_t size, const char *source, const char *kind);
#endif
