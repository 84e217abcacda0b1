/*
 * alexa_verify.c — everything about an Alexa request that needs X.509 or a
 * signature: the SignatureCertChainUrl rules, fetching a PEM chain through the
 * host's HTTP client, checking it (validity, subject alternative name, trust
 * with OpenSSL), caching the signing key per URL until the chain expires, and
 * verifying the body's signature.
 *
 * Must not: block a caller (a missing chain is fetched asynchronously and the
 * request waits on the cache entry), fetch the same URL twice at once, keep a
 * chain that did not verify, or log a request body or a signature.
 *
 * Locking: v->lock guards the entry table, each entry's state and its waiter
 * list. Keys handed out are extra references, so an entry may be evicted
 * while a request still verifies with its key. A fetching entry is never
 * evicted: its HTTP callback owns it until it is marked ready or removed.
 */
#include "alexa_verify.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define AMAZON_HOST "s3.amazonaws.com"
#define AMAZON_PREFIX "https://" AMAZON_HOST
#define PATH_PREFIX "/echo.api/"

/* ------------------------------------------------------------------------ */
/* The certificate URL                                                       */

/* RFC 3986 section 5.2.4, in place: `p` starts with '/'. */
static void remove_dot_segments(char *p)
{
    char *in = p, *out = p; /* out never passes in, so one buffer serves both */
    while (*in) {
        if (strncmp(in, "/./", 3) == 0) {
            in += 2;
        } else if (strcmp(in, "/.") == 0) {
            in[1] = '\0'; /* becomes "/" */
        } else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0) {
            in += 3; /* "/../x" → "/x"; "/.." → "/" */
            if (*in == '\0') {
                *--in = '/';
            }
            while (out > p && *--out != '/') {
            }
        } else {
            /* move "/segment" */
            do {
                *out++ = *in++;
            } while (*in && *in != '/');
        }
    }
    *out = '\0';
    if (p[0] == '\0') {
        p[0] = '/', p[1] = '\0';
    }
}

int ax_url_check(const char *url, char *out, size_t outsize, char *why, size_t whysize)
{
    size_t n = url ? strlen(url) : 0;
    if (n == 0 || n > AX_URL_MAX) {
        snprintf(why, whysize, "the URL is empty or longer than %d bytes", AX_URL_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7F) {
            snprintf(why, whysize, "the URL holds spaces, control or non-ASCII characters");
            return -1;
        }
    }
    const char *sep = strstr(url, "://");
    if (!sep) {
        snprintf(why, whysize, "not an absolute URL");
        return -1;
    }
    if ((size_t)(sep - url) != 5 || strncasecmp(url, "https", 5) != 0) {
        snprintf(why, whysize, "the scheme must be https");
        return -1;
    }
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    if (memchr(auth, '@', alen)) {
        snprintf(why, whysize, "the host must be " AMAZON_HOST " (user information given)");
        return -1;
    }
    const char *colon = memchr(auth, ':', alen);
    size_t hlen = colon ? (size_t)(colon - auth) : alen;
    if (hlen != strlen(AMAZON_HOST) || strncasecmp(auth, AMAZON_HOST, hlen) != 0) {
        snprintf(why, whysize, "the host must be " AMAZON_HOST);
        return -1;
    }
    if (colon) {
        const char *port = colon + 1;
        size_t plen = alen - hlen - 1;
        long value = 0;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9' || i >= 5) {
                value = -1;
                break;
            }
            value = value * 10 + (port[i] - '0');
        }
        if (plen > 0 && value != 443) {
            snprintf(why, whysize, "the port must be 443");
            return -1;
        }
    }
    const char *path = auth + alen;
    size_t plen = strcspn(path, "?#");
    if (path[plen]) {
        snprintf(why, whysize, "the URL must not have a query or fragment");
        return -1;
    }
    if (memchr(path, '%', plen) || memchr(path, '\\', plen)) {
        snprintf(why, whysize, "the path must not hold percent-escapes or backslashes");
        return -1;
    }
    size_t pre = strlen(AMAZON_PREFIX);
    if (pre + plen + 2 > outsize) {
        snprintf(why, whysize, "the URL is too long");
        return -1;
    }
    memcpy(out, AMAZON_PREFIX, pre);
    char *p = out + pre;
    if (plen == 0) {
        p[0] = '/', p[1] = '\0';
    } else {
        memcpy(p, path, plen);
        p[plen] = '\0';
    }
    remove_dot_segments(p);
    if (strncmp(p, PATH_PREFIX, strlen(PATH_PREFIX)) != 0) {
        snprintf(why, whysize,
                 "the path must start with " PATH_PREFIX " (after resolving . and ..)");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* base64, timestamps, signatures                                            */

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

long ax_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsize)
{
    if (len == 0 || len % 4 != 0) {
        return -1;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64val(c)) < 0) {
                return -1; /* a character after '=', or not base64 */
            }
        }
        unsigned triple =
            (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        size_t emit = 3 - (size_t)pad;
        if (o + emit > outsize) {
            return -1;
        }
        for (size_t k = 0; k < emit; k++) {
            out[o++] = (unsigned char)(triple >> (16 - 8 * k));
        }
    }
    return (long)o;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int ax_parse_timestamp(const json_t *ts, int64_t *ms)
{
    if (json_is_integer(ts)) {
        /* bounded to years 1970..9999 so that later arithmetic cannot overflow */
        json_int_t v = json_integer_value(ts);
        if (v < 0 || v > 253402300799999LL) {
            return -1;
        }
        *ms = (int64_t)v;
        return 0;
    }
    const char *s = json_string_value(ts);
    if (!s || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':') {
        return -1;
    }
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 60) {
        return -1;
    }
    const char *p = s + 19;
    int frac_ms = 0;
    if (*p == '.') {
        int k = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, k++) {
            if (k < 3) {
                frac_ms = frac_ms * 10 + (*p - '0');
            }
        }
        if (k == 0) {
            return -1;
        }
        for (; k < 3; k++) {
            frac_ms *= 10;
        }
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return -1;
        }
        offset_min = (*p == '+' ? 1 : -1) * (oh * 60 + om);
        p += 6;
    } else {
        return -1;
    }
    if (*p) {
        return -1;
    }
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - (int64_t)offset_min * 60;
    *ms = secs * 1000 + frac_ms;
    return 0;
}

int ax_signature_ok(EVP_PKEY *key, int sha1, const unsigned char *sig, size_t sig_len,
                    const void *body, size_t body_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md &&
             EVP_DigestVerifyInit(md, NULL, sha1 ? EVP_sha1() : EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(md, sig, sig_len, body, body_len) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) {
        ERR_clear_error(); /* the thread's error queue must not grow with refusals */
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* The key cache                                                             */

typedef struct waiter {
    ax_key_cb cb;
    void *user;
    struct waiter *next;
} waiter;

typedef struct entry {
    ax_verifier *v;
    char *url;          /* canonical: https://s3.amazonaws.com/echo.api/… */
    bool fetching;      /* the HTTP callback owns the entry until it ends */
    EVP_PKEY *key;      /* when ready */
    int64_t not_before; /* the verified chain's validity window, epoch ms */
    int64_t not_after;
    uint64_t used; /* last use, for eviction */
    waiter *waiters, **tail;
    size_t nwaiters;
} entry;

struct ax_verifier {
    const wh_host *host;
    wh_instance *inst;
    X509_STORE *store;
    char *prefix; /* replaces AMAZON_PREFIX when fetching, or NULL */
    pthread_mutex_t lock;
    bool lock_ready;
    entry *entries[AX_CACHE_MAX];
    size_t n;
    unsigned fetching;
    unsigned long fetches;
    uint64_t tick;
};

static void entry_free(entry *e)
{
    if (!e) {
        return;
    }
    while (e->waiters) {
        waiter *w = e->waiters;
        e->waiters = w->next;
        free(w);
    }
    EVP_PKEY_free(e->key);
    free(e->url);
    free(e);
}

/* Caller holds the lock. */
static void entry_remove(ax_verifier *v, size_t i)
{
    v->entries[i] = v->entries[--v->n];
    v->entries[v->n] = NULL;
}

static int64_t asn1_ms(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
        return -1;
    }
    int64_t days =
        days_from_civil((int64_t)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday);
    return (days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) * 1000;
}

static bool has_san(X509 *cert)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    bool found = false;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !found; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS) {
            const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
            int len = ASN1_STRING_length(g->d.dNSName);
            found = len == (int)strlen(AX_SAN) && strncasecmp((const char *)s, AX_SAN, len) == 0;
        }
    }
    GENERAL_NAMES_free(names);
    return found;
}

static void fmt_time(int64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm)) {
        strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
    } else {
        snprintf(out, size, "?");
    }
}

/*
 * Check a fetched PEM chain. On success sets *key (a new reference) and the
 * chain's validity window and returns 0; otherwise -1 with error/detail.
 */
static int check_chain(ax_verifier *v, const char *pem, size_t len, int64_t now, EVP_PKEY **key,
                       int64_t *not_before, int64_t *not_after, char *error, size_t errorsize,
                       char *detail, size_t detailsize)
{
    int rc = -1;
    STACK_OF(X509) *certs = sk_X509_new_null();
    STACK_OF(X509) *rest = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    BIO *bio = BIO_new_mem_buf(pem, len > (size_t)AX_PEM_MAX ? AX_PEM_MAX : (int)len);
    if (!certs || !rest || !ctx || !bio) {
        snprintf(error, errorsize, "internal");
        snprintf(detail, detailsize, "out of memory");
        goto done;
    }
    X509 *c;
    while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(certs, c)) {
            X509_free(c);
            snprintf(error, errorsize, "internal");
            snprintf(detail, detailsize, "out of memory");
            goto done;
        }
        if (sk_X509_num(certs) > 1 && !sk_X509_push(rest, c)) {
            snprintf(error, errorsize, "internal");
            snprintf(detail, detailsize, "out of memory");
            goto done;
        }
    }
    if (sk_X509_num(certs) == 0) {
        snprintf(error, errorsize, "bad_cert_chain");
        snprintf(detail, detailsize, "no PEM certificate at the certificate URL");
        goto done;
    }
    X509 *leaf = sk_X509_value(certs, 0);
    int64_t nb = asn1_ms(X509_get0_notBefore(leaf)), na = asn1_ms(X509_get0_notAfter(leaf));
    char when[32];
    if (nb < 0 || na < 0 || now < nb) {
        fmt_time(nb, when, sizeof when);
        snprintf(error, errorsize, "cert_expired");
        snprintf(detail, detailsize, "the signing certificate is not valid before %s", when);
        goto done;
    }
    if (now >= na) {
        fmt_time(na, when, sizeof when);
        snprintf(error, errorsize, "cert_expired");
        snprintf(detail, detailsize, "the signing certificate expired at %s", when);
        goto done;
    }
    if (!has_san(leaf)) {
        snprintf(error, errorsize, "cert_san_mismatch");
        snprintf(detail, detailsize,
                 "the signing certificate's subject alternative names lack " AX_SAN);
        goto done;
    }
    if (X509_STORE_CTX_init(ctx, v->store, leaf, rest) != 1) {
        snprintf(error, errorsize, "internal");
        snprintf(detail, detailsize, "cannot set up certificate verification");
        goto done;
    }
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)(now / 1000));
    if (X509_verify_cert(ctx) != 1) {
        int e = X509_STORE_CTX_get_error(ctx);
        bool time_err = e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID;
        snprintf(error, errorsize, "%s", time_err ? "cert_expired" : "cert_untrusted");
        snprintf(detail, detailsize, "the certificate chain does not verify: %s (depth %d)",
                 X509_verify_cert_error_string(e), X509_STORE_CTX_get_error_depth(ctx));
        goto done;
    }
    /* the cached key is good while every certificate of the verified chain is */
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        int64_t b = asn1_ms(X509_get0_notBefore(x)), a = asn1_ms(X509_get0_notAfter(x));
        nb = b > nb ? b : nb;
        na = a >= 0 && a < na ? a : na;
    }
    *key = X509_get_pubkey(leaf);
    if (!*key) {
        snprintf(error, errorsize, "bad_cert_chain");
        snprintf(detail, detailsize, "the signing certificate's public key cannot be read");
        goto done;
    }
    *not_before = nb;
    *not_after = na;
    rc = 0;
done:
    ERR_clear_error();
    BIO_free(bio);
    X509_STORE_CTX_free(ctx);
    sk_X509_free(rest); /* the certificates belong to `certs` */
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

static void fetched(void *user, const wh_http_response *r)
{
    entry *e = user;
    ax_verifier *v = e->v;
    const wh_host *h = v->host;
    char error[48] = "", detail[256] = "";
    EVP_PKEY *key = NULL;
    int64_t nb = 0, na = 0;
    int rc = -1;
    if (r->status != 200) {
        snprintf(error, sizeof error, "cert_fetch_failed");
        if (r->status == 0) {
            snprintf(detail, sizeof detail, "cannot fetch the certificate chain: %s",
                     r->timed_out ? "timed out" : (r->error ? r->error : "no answer"));
        } else {
            snprintf(detail, sizeof detail, "fetching the certificate chain answered HTTP %d",
                     r->status);
        }
    } else {
        rc = check_chain(v, r->body ? r->body : "", r->body ? r->body_len : 0, h->now_ms(v->inst),
                         &key, &nb, &na, error, sizeof error, detail, sizeof detail);
    }

    pthread_mutex_lock(&v->lock);
    waiter *list = e->waiters;
    e->waiters = NULL;
    e->tail = &e->waiters;
    e->nwaiters = 0;
    v->fetching--;
    if (rc == 0) {
        e->fetching = false;
        e->key = key;
        e->not_before = nb;
        e->not_after = na;
        e->used = ++v->tick;
        EVP_PKEY_up_ref(key); /* ours for the callbacks below, even if evicted meanwhile */
    } else {
        for (size_t i = 0; i < v->n; i++) {
            if (v->entries[i] == e) {
                entry_remove(v, i);
                break;
            }
        }
    }
    pthread_mutex_unlock(&v->lock);

    if (rc == 0) {
        char until[32];
        fmt_time(na, until, sizeof until);
        h->log(v->inst, WH_LOG_INFO, "certificate chain verified and cached url=%s until=%s",
               e->url, until);
    } else {
        h->log(v->inst, WH_LOG_WARN, "certificate chain refused url=%s error=%s: %s", e->url, error,
               detail);
    }
    while (list) {
        waiter *w = list;
        list = w->next;
        w->cb(w->user, rc == 0 ? key : NULL, error, detail);
        free(w);
    }
    if (rc == 0) {
        EVP_PKEY_free(key);
    } else {
        entry_free(e);
    }
}

ax_verifier *ax_verifier_new(const wh_host *host, wh_instance *inst, const char *ca_file,
                             const char *fetch_prefix, char *err, size_t errsize)
{
    ax_verifier *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    v->host = host;
    v->inst = inst;
    if (pthread_mutex_init(&v->lock, NULL) != 0) {
        snprintf(err, errsize, "cannot create a mutex");
        goto fail;
    }
    v->lock_ready = true;
    v->store = X509_STORE_new();
    if (!v->store) {
        snprintf(err, errsize, "out of memory");
        goto fail;
    }
    if (ca_file) {
        if (X509_STORE_load_file(v->store, ca_file) != 1) {
            snprintf(err, errsize, "`ca_file`: cannot load trust anchors from %s", ca_file);
            goto fail;
        }
    } else if (X509_STORE_set_default_paths(v->store) != 1) {
        snprintf(err, errsize, "cannot load the system's trust store");
        goto fail;
    }
    if (fetch_prefix) {
        v->prefix = strdup(fetch_prefix);
        if (!v->prefix) {
            snprintf(err, errsize, "out of memory");
            goto fail;
        }
        size_t n = strlen(v->prefix);
        while (n > 0 && v->prefix[n - 1] == '/') {
            v->prefix[--n] = '\0';
        }
    }
    ERR_clear_error();
    return v;
fail:
    ERR_clear_error();
    ax_verifier_destroy(v);
    return NULL;
}

void ax_verifier_destroy(ax_verifier *v)
{
    if (!v) {
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        entry_free(v->entries[i]);
    }
    X509_STORE_free(v->store);
    free(v->prefix);
    if (v->lock_ready) {
        pthread_mutex_destroy(&v->lock);
    }
    free(v);
}

unsigned long ax_fetch_count(ax_verifier *v)
{
    pthread_mutex_lock(&v->lock);
    unsigned long n = v->fetches;
    pthread_mutex_unlock(&v->lock);
    return n;
}

static int add_waiter(entry *e, ax_key_cb cb, void *user)
{
    waiter *w = malloc(sizeof *w);
    if (!w) {
        return -1;
    }
    w->cb = cb;
    w->user = user;
    w->next = NULL;
    *e->tail = w;
    e->tail = &w->next;
    e->nwaiters++;
    return 0;
}

/* Make room for one more entry: drop the least recently used idle one. Caller holds the lock. */
static void evict_one(ax_verifier *v)
{
    size_t victim = v->n;
    for (size_t i = 0; i < v->n; i++) {
        if (!v->entries[i]->fetching &&
            (victim == v->n || v->entries[i]->used < v->entries[victim]->used)) {
            victim = i;
        }
    }
    if (victim < v->n) {
        entry *e = v->entries[victim];
        entry_remove(v, victim);
        entry_free(e);
    }
}

int ax_key_get(ax_verifier *v, const char *url, EVP_PKEY **key, ax_key_cb cb, void *user,
               char *error, size_t errorsize, char *detail, size_t detailsize)
{
    const wh_host *h = v->host;
    int64_t now = h->now_ms(v->inst);
    *key = NULL;
    pthread_mutex_lock(&v->lock);
    entry *e = NULL;
    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->entries[i]->url, url) == 0) {
            e = v->entries[i];
            if (!e->fetching && (now < e->not_before || now >= e->not_after)) {
                /* outside the chain's validity: fetch again (and refuse if it still is) */
                entry_remove(v, i);
                entry_free(e);
                e = NULL;
            }
            break;
        }
    }
    if (e && !e->fetching) {
        e->used = ++v->tick;
        EVP_PKEY_up_ref(e->key);
        *key = e->key;
        pthread_mutex_unlock(&v->lock);
        return AX_KEY_READY;
    }
    if (!cb) {
        pthread_mutex_unlock(&v->lock);
        return AX_KEY_PENDING; /* only looking */
    }
    if (e) {
        if (e->nwaiters >= AX_WAITERS_MAX || add_waiter(e, cb, user) != 0) {
            pthread_mutex_unlock(&v->lock);
            snprintf(error, errorsize, "cert_fetch_failed");
            snprintf(detail, detailsize, "too many requests are waiting for this certificate");
            return AX_KEY_FAILED;
        }
        pthread_mutex_unlock(&v->lock);
        return AX_KEY_PENDING;
    }
    if (v->fetching >= AX_FETCH_MAX) {
        pthread_mutex_unlock(&v->lock);
        snprintf(error, errorsize, "cert_fetch_failed");
        snprintf(detail, detailsize, "too many certificate fetches in flight");
        return AX_KEY_FAILED;
    }
    if (v->n >= AX_CACHE_MAX) {
        evict_one(v); /* one idle entry exists: AX_FETCH_MAX < AX_CACHE_MAX */
    }
    char fetch_url[AX_URL_MAX + 512];
    const char *path = url + strlen(AMAZON_PREFIX);
    snprintf(fetch_url, sizeof fetch_url, "%s%s", v->prefix ? v->prefix : AMAZON_PREFIX, path);
    e = calloc(1, sizeof *e);
    if (e) {
        e->v = v;
        e->fetching = true;
        e->tail = &e->waiters;
        e->url = strdup(url);
    }
    if (!e || !e->url || add_waiter(e, cb, user) != 0) {
        pthread_mutex_unlock(&v->lock);
        entry_free(e);
        snprintf(error, errorsize, "internal");
        snprintf(detail, detailsize, "out of memory");
        return AX_KEY_FAILED;
    }
    static const char *const headers[] = {"Accept: application/x-pem-file, */*", NULL};
    wh_http_request req = {
        .struct_size = sizeof req,
        .method = "GET",
        .url = fetch_url,
        .headers = headers,
        .timeout_ms = AX_FETCH_TIMEOUT_MS,
        .max_response = AX_PEM_MAX,
    };
    /* http() only queues the exchange (its callback runs on the delivery thread), so it is
     * started under the lock: no other request can see the entry before it is in flight. */
    int rc = h->http(v->inst, &req, fetched, e);
    if (rc != WH_OK) {
        pthread_mutex_unlock(&v->lock);
        entry_free(e);
        snprintf(error, errorsize, "cert_fetch_failed");
        snprintf(detail, detailsize, "cannot start fetching the certificate chain (%d)", rc);
        return AX_KEY_FAILED;
    }
    v->entries[v->n++] = e;
    v->fetching++;
    v->fetches++;
    pthread_mutex_unlock(&v->lock);
    return AX_KEY_PENDING;
}
