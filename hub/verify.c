/*
 * verify.c — the host's verification and decoding helpers offered to connectors
 * through the wh_host table: HMAC (OpenSSL), form decoding and Retry-After parsing.
 *
 * Pure functions: no state, no I/O, no logging, no knowledge of the parts or
 * of any platform. Platform rules (which header, which signed string) belong
 * in the connectors. Constant-time comparison lives in util.c (wh_ct_equal).
 */
#include "verify.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* HMAC                                                                      */

int wh_hmac(const char *digest, const void *key, size_t key_len, const void *msg, size_t msg_len,
            unsigned char *out, size_t *out_len)
{
    if (!digest || !out || !out_len || (!key && key_len) || (!msg && msg_len) ||
        key_len > INT_MAX) {
        return WH_ERR_INVALID;
    }
    const EVP_MD *md = NULL;
    if (strcmp(digest, "sha256") == 0) {
        md = EVP_sha256();
    } else if (strcmp(digest, "sha1") == 0) {
        md = EVP_sha1();
    } else if (strcmp(digest, "sha512") == 0) {
        md = EVP_sha512();
    } else {
        return WH_ERR_INVALID;
    }
    /* OpenSSL refuses a NULL key even with length 0; an empty key is legal HMAC. */
    static const unsigned char empty[1] = {0};
    unsigned int n = 0;
    if (!HMAC(md, key ? key : empty, (int)key_len, msg ? msg : empty, msg_len, out, &n)) {
        return WH_ERR;
    }
    *out_len = n;
    return WH_OK;
}

/* ------------------------------------------------------------------------ */
/* Forms                                                                     */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            min = 0x10000;
        } else {
            return false;
        }
        if (len - i - 1 < n) {
            return false;
        }
        unsigned cp = c & (0x3Fu >> n);
        for (size_t k = 1; k <= n; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decode [s, s+len) into out (room for len bytes); returns the length or -1 on a bad escape. */
static long form_unescape(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+') {
            out[o++] = ' ';
        } else if (c == '%') {
            if (len - i < 3) {
                return -1;
            }
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = c;
        }
    }
    return (long)o;
}

json_t *wh_form_decode(const char *body, size_t len)
{
    if (!body && len) {
        return NULL;
    }
    if (len > LONG_MAX - 1) {
        return NULL;
    }
    json_t *obj = json_object();
    char *key = malloc(len + 1), *val = malloc(len + 1);
    if (!obj || !key || !val) {
        goto fail;
    }
    size_t pos = 0;
    while (pos < len) {
        const char *seg = body + pos;
        const char *amp = memchr(seg, '&', len - pos);
        size_t seg_len = amp ? (size_t)(amp - seg) : len - pos;
        pos += seg_len + 1;
        if (seg_len == 0) {
            continue;
        }
        const char *eq = memchr(seg, '=', seg_len);
        size_t key_raw = eq ? (size_t)(eq - seg) : seg_len;
        long klen = form_unescape(seg, key_raw, key);
        long vlen = eq ? form_unescape(eq + 1, seg_len - key_raw - 1, val) : 0;
        /* no NUL either: "%00" could not be read back from the journal as JSON text */
        if (klen < 0 || vlen < 0 || memchr(key, '\0', (size_t)klen) ||
            memchr(val, '\0', (size_t)vlen) ||
            !utf8_valid((const unsigned char *)key, (size_t)klen) ||
            !utf8_valid((const unsigned char *)val, (size_t)vlen)) {
            goto fail;
        }
        json_t *v = json_stringn_nocheck(val, (size_t)vlen);
        if (!v || json_object_setn_new_nocheck(obj, key, (size_t)klen, v) != 0) {
            goto fail;
        }
    }
    free(key);
    free(val);
    return obj;
fail:
    free(key);
    free(val);
    json_decref(obj);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Retry-After                                                               */

/* A small cursor over the header value; every parser step advances or fails. */
typedef struct cursor {
    const char *p, *end;
} cursor;

static bool take_lit(cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) {
        return false;
    }
    c->p += n;
    return true;
}

/* Exactly `n` digits. */
static bool take_digits(cursor *c, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') {
            return false;
        }
        v = v * 10 + (*c->p++ - '0');
    }
    *out = v;
    return true;
}

/* One of `names` (count n), returning its index. */
static bool take_name(cursor *c, const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++) {
        if (take_lit(c, names[i])) {
            *out = i;
            return true;
        }
    }
    return false;
}

static const char *const k_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const k_days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const k_days_long[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                          "Friday", "Saturday", "Sunday"};

/* hh:mm:ss with ranges checked (60 seconds allowed for a leap second). */
static bool take_time(cursor *c, int *h, int *m, int *s)
{
    return take_digits(c, 2, h) && take_lit(c, ":") && take_digits(c, 2, m) && take_lit(c, ":") &&
           take_digits(c, 2, s) && *h <= 23 && *m <= 59 && *s <= 60;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* The year of `ms` since the epoch (UTC). */
static int year_of(int64_t ms)
{
    int64_t days = ms / 86400000;
    if (ms < 0 && ms % 86400000) {
        days--;
    }
    /* Inverse of days_from_civil, year only. */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp + (mp < 10 ? 3 : -9);
    return (int)(yoe + era * 400 + (m <= 2));
}

/* Parse an HTTP-date (RFC 9110 §5.6.7) into ms since the epoch. */
static bool parse_http_date(cursor c, int64_t now_ms, int64_t *out)
{
    int wd, day, mon, year, h, mi, s;
    cursor t = c;
    if (take_name(&t, k_days_long, 7, &wd) && take_lit(&t, ", ")) {
        /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        int yy;
        if (!(take_digits(&t, 2, &day) && take_lit(&t, "-") && take_name(&t, k_months, 12, &mon) &&
              take_lit(&t, "-") && take_digits(&t, 2, &yy) && take_lit(&t, " ") &&
              take_time(&t, &h, &mi, &s) && take_lit(&t, " GMT"))) {
            return false;
        }
        /* A two-digit year more than 50 years ahead is the most recent past one. */
        int now_year = year_of(now_ms);
        year = now_year - now_year % 100 + yy;
        if (year > now_year + 50) {
            year -= 100;
        }
    } else if (t = c, take_name(&t, k_days, 7, &wd) && take_lit(&t, ", ")) {
        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        if (!(take_digits(&t, 2, &day) && take_lit(&t, " ") && take_name(&t, k_months, 12, &mon) &&
              take_lit(&t, " ") && take_digits(&t, 4, &year) && take_lit(&t, " ") &&
              take_time(&t, &h, &mi, &s) && take_lit(&t, " GMT"))) {
            return false;
        }
    } else if (t = c, take_name(&t, k_days, 7, &wd) && take_lit(&t, " ")) {
        /* asctime: Sun Nov  6 08:49:37 1994 */
        if (!(take_name(&t, k_months, 12, &mon) && take_lit(&t, " "))) {
            return false;
        }
        if (take_lit(&t, " ")) {
            if (!take_digits(&t, 1, &day)) {
                return false;
            }
        } else if (!take_digits(&t, 2, &day)) {
            return false;
        }
        if (!(take_lit(&t, " ") && take_time(&t, &h, &mi, &s) && take_lit(&t, " ") &&
              take_digits(&t, 4, &year))) {
            return false;
        }
    } else {
        return false;
    }
    if (t.p != t.end || day < 1 || day > days_in_month(year, mon + 1)) {
        return false;
    }
    int64_t secs = days_from_civil(year, mon + 1, day) * 86400 + h * 3600 + mi * 60 + s;
    *out = secs * 1000;
    return true;
}

long wh_retry_after_parse(const char *value, int64_t now_ms)
{
    if (!value) {
        return -1;
    }
    cursor c = {value, value + strlen(value)};
    while (c.p < c.end && (*c.p == ' ' || *c.p == '\t')) {
        c.p++;
    }
    while (c.end > c.p && (c.end[-1] == ' ' || c.end[-1] == '\t')) {
        c.end--;
    }
    if (c.p == c.end) {
        return -1;
    }
    if (*c.p >= '0' && *c.p <= '9') {
        int64_t secs = 0;
        for (const char *p = c.p; p < c.end; p++) {
            if (*p < '0' || *p > '9') {
                return -1;
            }
            if (secs < INT32_MAX) {
                secs = secs * 10 + (*p - '0');
            }
        }
        if (secs > INT32_MAX) {
            secs = INT32_MAX;
        }
        int64_t ms = secs * 1000;
        return ms > LONG_MAX ? LONG_MAX : (long)ms;
    }
    int64_t at;
    if (!parse_http_date(c, now_ms, &at)) {
        return -1;
    }
    if (at <= now_ms) {
        return 0;
    }
    int64_t delta = at - now_ms;
    return delta > LONG_MAX ? LONG_MAX : (long)delta;
}
