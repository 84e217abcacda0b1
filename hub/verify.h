/* verify.h — host helpers offered to connectors: HMAC, form decoding, Retry-After. */
#ifndef WH_VERIFY_H
#define WH_VERIFY_H
#include "wirehub/connector.h"
#include <stddef.h>
#include <stdint.h>

/** The largest MAC wh_hmac() writes (SHA-512). */
#define WH_HMAC_MAX 64

/**
 * HMAC of `msg` under `key` with `digest` "sha256", "sha1" or "sha512"
 * (OpenSSL). Writes the MAC to `out` (at least WH_HMAC_MAX bytes) and its
 * length to `*out_len`. An empty key (key_len 0, key may be NULL) is allowed.
 * Returns WH_OK, or WH_ERR_INVALID for an unknown digest, a NULL argument or
 * a length over INT_MAX (key); WH_ERR if OpenSSL fails.
 * Ownership: borrows everything; writes only to `out` and `out_len`. Any thread.
 */
int wh_hmac(const char *digest, const void *key, size_t key_len, const void *msg, size_t msg_len,
            unsigned char *out, size_t *out_len);

/**
 * Decode an application/x-www-form-urlencoded body into an object of strings.
 * Pairs are separated by '&' (empty pairs are skipped); a pair without '='
 * has the value ""; '+' is a space; %XX is a byte. A repeated key keeps the
 * last value. An empty body (len 0, body may be NULL) gives {}.
 * Returns NULL for a malformed escape ("%4", "%zz"), a decoded key or value
 * that is not valid UTF-8 (overlong forms and surrogates included), a key
 * containing NUL, or out of memory. Values may contain NUL (jansson keeps
 * the length).
 * Ownership: borrows `body`; returns a new reference. Any thread.
 */
json_t *wh_form_decode(const char *body, size_t len);

/**
 * A Retry-After header value as milliseconds from `now_ms`: delay-seconds
 * ("120", saturating at INT32_MAX seconds) or an HTTP-date in IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37
 * GMT") or asctime ("Sun Nov  6 08:49:37 1994") form. Surrounding spaces
 * and tabs are ignored. A date in the past gives 0.
 * Returns the delay (>= 0), or -1 when `value` is NULL or unparsable.
 * Ownership: borrows `value`. Any thread.
 */
long wh_retry_after_parse(const char *value, int64_t now_ms);
#endif
