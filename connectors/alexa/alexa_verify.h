/*
 * alexa_verify.h — the Alexa request checks that need OpenSSL: the
 * SignatureCertChainUrl rules, the per-URL cache of verified signing keys
 * (fetched through the host's HTTP client), the body signature and the
 * request timestamp. Private to alexa.so; nothing here is part of the SDK.
 */
#ifndef WH_ALEXA_VERIFY_H
#define WH_ALEXA_VERIFY_H

#include <wirehub/connector.h>

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

/** Longest SignatureCertChainUrl accepted, in bytes. */
#define AX_URL_MAX 2048
/** Largest decoded signature accepted (RSA-8192). */
#define AX_SIG_MAX 1024
/** Certificate URLs cached at once, and fetches in flight at once (per instance). */
#define AX_CACHE_MAX 64
#define AX_FETCH_MAX 8
/** Requests waiting for one fetch; more are refused. */
#define AX_WAITERS_MAX 4096
/** The largest PEM chain read from a certificate URL. */
#define AX_PEM_MAX (64 * 1024)
/** How long a certificate fetch may take. */
#define AX_FETCH_TIMEOUT_MS 3000
/** The name the signing certificate must carry. */
#define AX_SAN "echo-api.amazon.com"

/**
 * Check a SignatureCertChainUrl by Amazon's rules: resolve "." and ".."
 * segments, then scheme https and host s3.amazonaws.com (both
 * case-insensitive), path starting "/echo.api/" (case-sensitive), port 443 if
 * given. Also refused: user information, a query or fragment, percent-escapes
 * and backslashes in the path, control characters, over AX_URL_MAX bytes.
 * On success writes "https://s3.amazonaws.com<normalised path>" to `out` and
 * returns 0; otherwise returns -1 and says why in `why` (no URL echoed).
 * Ownership: borrows everything.
 */
int ax_url_check(const char *url, char *out, size_t outsize, char *why, size_t whysize);

/**
 * Decode standard base64 (padding required when the length is not a multiple
 * of 4; no white space). Returns the length written to `out`, or -1 when the
 * text is not base64 or does not fit in `outsize`.
 */
long ax_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsize);

/**
 * Parse an Alexa `request.timestamp`: an ISO 8601 string
 * "YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)", or an integer of epoch milliseconds
 * (years 1970 to 9999). Returns 0 with *ms set, or -1.
 */
int ax_parse_timestamp(const json_t *ts, int64_t *ms);

/**
 * 1 when `sig` is a valid RSA signature of `body` by `key` (SHA-256, or SHA-1
 * when `sha1`), 0 otherwise. Any thread. Ownership: borrows everything.
 */
int ax_signature_ok(EVP_PKEY *key, int sha1, const unsigned char *sig, size_t sig_len,
                    const void *body, size_t body_len);

typedef struct ax_verifier ax_verifier;

/**
 * Create the key cache. `ca_file` NULL means the system's trust store;
 * `fetch_prefix` NULL means fetch the URL itself, else it replaces
 * "https://s3.amazonaws.com" in the URL fetched (validation still applies to
 * the URL as sent). Returns NULL with a reason in err.
 * Ownership: borrows host and inst (they must outlive the verifier) and copies
 * the strings.
 */
ax_verifier *ax_verifier_new(const wh_host *host, wh_instance *inst, const char *ca_file,
                             const char *fetch_prefix, char *err, size_t errsize);

/** Free the cache (NULL-safe). No fetch may be in flight. */
void ax_verifier_destroy(ax_verifier *v);

/**
 * Called when a fetch for a waiting request ends, on the delivery thread:
 * `key` is the verified signing key (borrowed for the call), or NULL with
 * `error` (a short code) and `detail` set.
 */
typedef void (*ax_key_cb)(void *user, EVP_PKEY *key, const char *error, const char *detail);

enum { AX_KEY_READY = 0, AX_KEY_PENDING = 1, AX_KEY_FAILED = -1 };

/**
 * The verified signing key for a checked URL (ax_url_check's `out`).
 * AX_KEY_READY: *key holds a new reference (EVP_PKEY_free it).
 * AX_KEY_PENDING: the chain is being fetched; cb(user, …) runs exactly once
 * later, on the delivery thread. With `cb` NULL the cache is only looked at:
 * AX_KEY_PENDING then means "not cached" and nothing is started.
 * AX_KEY_FAILED: `error`/`detail` say why (cb is never called).
 * Any thread; the cache is guarded by a mutex.
 */
int ax_key_get(ax_verifier *v, const char *url, EVP_PKEY **key, ax_key_cb cb, void *user,
               char *error, size_t errorsize, char *detail, size_t detailsize);

/** Fetches started so far (for tests and logs). */
unsigned long ax_fetch_count(ax_verifier *v);

#endif
