/* util.h — small helpers every part links: errors, time, ids, files, strings. */
#ifndef WH_UTIL_H
#define WH_UTIL_H
#include "wirehub/connector.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/** Text for a WH_* status code. */
const char *wh_strerror(int code);

/** Wall clock, ms since the epoch. */
int64_t wh_now_ms(void);
/** Monotonic clock, ms. */
int64_t wh_mono_ms(void);
/** RFC 3339 UTC with milliseconds: 2026-11-27T13:54:20.123Z. */
void wh_time_rfc3339(int64_t ms, char *out, size_t size);

/** `nbytes` random bytes as lower-case hex into out (2*nbytes+1). WH_OK or WH_ERR. */
int wh_random_hex(size_t nbytes, char *out);
/** A new 128-bit id as 32 hex digits (+ NUL): 48 bits of Unix milliseconds, then
 *  80 random bits, so ids sort by creation time. WH_ERR if no randomness. */
int wh_new_id(char out[33]);

/**
 * Read a whole file (at most `max` bytes). Returns a malloc'd NUL-terminated
 * buffer (length in *len) or NULL with errno set.
 */
char *wh_read_file(const char *path, size_t max, size_t *len);

/** Directory part of a path ("." when none); malloc'd. */
char *wh_dirname(const char *path);
/** `rel` joined to `base_dir` unless absolute; malloc'd. */
char *wh_path_join(const char *base_dir, const char *rel);
/**
 * The file a path names when its last component is a symlink (resolved, absolute),
 * else the path itself: two names of one state file must share its lock and its
 * -wal and -shm files, which are named after the path. Takes path (malloc'd) and
 * returns a malloc'd path (path itself, or a new one after freeing it).
 */
char *wh_path_follow_link(char *path);

/** Growable byte buffer. */
typedef struct wh_buf {
    char *data;
    size_t len, cap;
} wh_buf;
int wh_buf_append(wh_buf *b, const void *data, size_t len);
int wh_buf_puts(wh_buf *b, const char *s);
int wh_buf_printf(wh_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wh_buf_free(wh_buf *b);

/** Parse a duration ("250ms", "20s", "30m", "2h", "1d", or a bare number of seconds) into ms; -1 if bad. */
int64_t wh_parse_duration_ms(const char *s);

/** Constant-time equality of two buffers (1 equal, 0 not; lengths compared too). */
int wh_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/**
 * Replace each NUL character inside the strings of `v` (recursively) with
 * U+FFFD: what the hub journals and publishes is read back with jansson,
 * which refuses "\u0000". Returns the number of strings changed.
 * Ownership: edits v in place.
 */
size_t wh_json_nul_to_fffd(json_t *v);

/**
 * How deep a value the hub carries (an event's data, a call's result) may
 * nest: it travels inside an envelope or a run's context, a few levels below
 * the top, and jansson reads at most 2048.
 */
#define WH_JSON_DEPTH_MAX 2000

/**
 * wh_json_nul_to_fffd(v), then 0 when v nests at most WH_JSON_DEPTH_MAX levels
 * (a scalar is 1, [1] is 2), -1 when deeper: it could not be read back.
 * Ownership: edits v in place.
 */
int wh_json_readable(json_t *v);

/**
 * A JSON string of arbitrary bytes: invalid UTF-8 becomes U+FFFD (so a header
 * or query value with a stray byte is kept, not dropped). New reference, or
 * NULL when out of memory.
 */
json_t *wh_json_string_lossy(const char *s, size_t n);

/**
 * Sort errors[from..] ("file:line:col: message" strings) by file, then line,
 * then column; messages without a position keep their order before the
 * positioned ones of their file. The checks run in their own order (keys, then
 * each connector's; a rule's parts), a reader goes down each file.
 * Ownership: edits errors in place.
 */
void wh_errors_sort(json_t *errors, size_t from);

#endif
