/* util.c — helpers with no state and no knowledge of the parts. */
#include "util.h"

#include <openssl/crypto.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>

const char *wh_strerror(int code)
{
    switch (code) {
    case WH_OK: return "ok";
    case WH_PENDING: return "pending";
    case WH_ERR: return "error";
    case WH_ERR_NOMEM: return "out of memory";
    case WH_ERR_INVALID: return "invalid input";
    case WH_ERR_AUTH: return "authentication failed";
    case WH_ERR_NOT_FOUND: return "not found";
    case WH_ERR_UNSUPPORTED: return "unsupported";
    case WH_ERR_TOO_LARGE: return "too large";
    case WH_ERR_IO: return "I/O error";
    case WH_ERR_CONFIG: return "configuration error";
    case WH_ERR_BUSY: return "busy";
    case WH_ERR_TIMEOUT: return "timed out";
    case WH_ERR_STATE: return "wrong state";
    default: return "unknown error";
    }
}

int64_t wh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wh_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wh_time_rfc3339(int64_t ms, char *out, size_t size)
{
    /* every event and log line needs this; the calendar part changes once a second */
    static __thread time_t cached_secs = -1;
    static __thread char base[32];
    time_t secs = (time_t)(ms / 1000);
    if (secs != cached_secs) {
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_secs = secs;
    }
    snprintf(out, size, "%s.%03dZ", base, (int)(ms % 1000));
}

int wh_random_hex(size_t nbytes, char *out)
{
    unsigned char raw[64];
    if (nbytes > sizeof raw || getrandom(raw, nbytes, 0) != (ssize_t)nbytes) {
        return WH_ERR;
    }
    wh_hex(raw, nbytes, out);
    return WH_OK;
}

int wh_new_id(char out[33])
{
    /* 48 bits of Unix milliseconds, then 80 random bits: unique like a random
       id, but ids made later sort later, so the state file's id indexes grow
       at their right edge instead of touching a random page per insert. */
    unsigned char raw[16];
    uint64_t ms = (uint64_t)wh_now_ms();
    for (int i = 0; i < 6; i++) {
        raw[i] = (unsigned char)(ms >> (8 * (5 - i)));
    }
    if (getrandom(raw + 6, 10, 0) != 10) {
        return WH_ERR;
    }
    wh_hex(raw, sizeof raw, out);
    return WH_OK;
}

char *wh_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    errno = 0;
    wh_buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > max) {
            fclose(f);
            wh_buf_free(&b);
            errno = EFBIG;
            return NULL;
        }
        if (wh_buf_append(&b, chunk, n) != WH_OK) {
            fclose(f);
            wh_buf_free(&b);
            errno = ENOMEM;
            return NULL;
        }
    }
    int err = ferror(f) ? (errno ? errno : EIO) : 0; /* a directory: EISDIR */
    fclose(f);
    if (err) {
        wh_buf_free(&b);
        errno = err;
        return NULL;
    }
    if (wh_buf_append(&b, "", 1) != WH_OK) {
        wh_buf_free(&b);
        errno = ENOMEM;
        return NULL;
    }
    if (len) {
        *len = b.len - 1;
    }
    return b.data;
}

char *wh_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        return strdup(".");
    }
    if (slash == path) {
        return strdup("/");
    }
    return strndup(path, (size_t)(slash - path));
}

char *wh_path_join(const char *base_dir, const char *rel)
{
    if (rel[0] == '/' || !base_dir || !*base_dir) {
        return strdup(rel);
    }
    size_t n = strlen(base_dir) + strlen(rel) + 2;
    char *out = malloc(n);
    if (out) {
        snprintf(out, n, "%s/%s", base_dir, rel);
    }
    return out;
}

char *wh_path_follow_link(char *path)
{
    struct stat st;
    if (!path || lstat(path, &st) != 0 || !S_ISLNK(st.st_mode)) {
        return path;
    }
    char *real = realpath(path, NULL);
    if (!real) {
        return path; /* dangling: opening it says so */
    }
    free(path);
    return real;
}

int wh_buf_append(wh_buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1) {
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (!p) {
            return WH_ERR_NOMEM;
        }
        b->data = p;
        b->cap = cap;
    }
    if (len) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
    return WH_OK;
}

int wh_buf_puts(wh_buf *b, const char *s)
{
    return wh_buf_append(b, s, strlen(s));
}

int wh_buf_printf(wh_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return WH_ERR;
    }
    if ((size_t)n < sizeof small) {
        return wh_buf_append(b, small, (size_t)n);
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        return WH_ERR_NOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = wh_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

void wh_buf_free(wh_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int64_t wh_parse_duration_ms(const char *s)
{
    if (!s || !*s) {
        return -1;
    }
    /* "90" (seconds), "500ms", "1.5h", or parts in a row: "1m30s", "1h 30m" */
    double total = 0;
    const char *p = s;
    int parts = 0;
    while (*p) {
        if (parts && *p == ' ') {
            p++;
            continue;
        }
        if (!(*p >= '0' && *p <= '9') && *p != '.') {
            return -1; /* no sign, no leading space, no hex or inf */
        }
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p || v < 0) {
            return -1;
        }
        for (const char *q = p; q < end; q++) {
            if (!(*q >= '0' && *q <= '9') && *q != '.') {
                return -1; /* plain decimals only: no 0x10, no 1e3 */
            }
        }
        double mult;
        size_t ulen;
        if (strncmp(end, "ms", 2) == 0) {
            mult = 1, ulen = 2;
        } else if (*end == 's') {
            mult = 1000, ulen = 1;
        } else if (*end == 'm') {
            mult = 60000, ulen = 1;
        } else if (*end == 'h') {
            mult = 3600000, ulen = 1;
        } else if (*end == 'd') {
            mult = 86400000, ulen = 1;
        } else if (*end == '\0' && parts == 0) {
            mult = 1000, ulen = 0; /* a bare number: seconds */
        } else {
            return -1;
        }
        total += v * mult;
        if (total > 9.0e15) {
            return -1;
        }
        p = end + ulen;
        parts++;
    }
    return parts ? (int64_t)total : -1;
}

int wh_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) {
        return 0;
    }
    return alen == 0 || CRYPTO_memcmp(a, b, alen) == 0;
}

static size_t nul_to_fffd(json_t *v, int depth, int *deepest)
{
    if (!v || depth > 4096) {
        return 0;
    }
    if (depth > *deepest) {
        *deepest = depth;
    }
    size_t changed = 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (!memchr(s, '\0', len)) {
            return 0;
        }
        wh_buf b = {0};
        for (size_t i = 0; i < len; i++) {
            if (s[i]) {
                wh_buf_append(&b, s + i, 1);
            } else {
                wh_buf_append(&b, "\xEF\xBF\xBD", 3);
            }
        }
        if (b.data) {
            json_string_setn_nocheck(v, b.data, b.len);
        }
        wh_buf_free(&b);
        return 1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            changed += nul_to_fffd(x, depth + 1, deepest);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            changed += nul_to_fffd(x, depth + 1, deepest);
        }
    }
    return changed;
}

size_t wh_json_nul_to_fffd(json_t *v)
{
    int deepest = 0;
    return nul_to_fffd(v, 0, &deepest);
}

int wh_json_readable(json_t *v)
{
    int deepest = 0;
    nul_to_fffd(v, 1, &deepest);
    return deepest <= WH_JSON_DEPTH_MAX ? 0 : -1;
}

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp, min;
    size_t len;
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    return cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : len;
}

json_t *wh_json_string_lossy(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j || !s) {
        return j;
    }
    wh_buf b = {0};
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq_len((const unsigned char *)s + i, n - i);
        if (k && s[i]) {
            wh_buf_append(&b, s + i, k);
            i += k;
        } else {
            wh_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    j = json_stringn_nocheck(b.data ? b.data : "", b.len);
    wh_buf_free(&b);
    return j;
}

typedef struct placed {
    json_t *msg;
    size_t file_len; /* the message's file: its first file_len bytes */
    long line, col;
    size_t index;
} placed;

static int by_place(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    const char *xs = json_string_value(x->msg), *ys = json_string_value(y->msg);
    size_t n = x->file_len < y->file_len ? x->file_len : y->file_len;
    int c = memcmp(xs, ys, n);
    if (c == 0 && x->file_len != y->file_len) {
        c = x->file_len < y->file_len ? -1 : 1;
    }
    if (c != 0) {
        return c;
    }
    if (x->line != y->line) {
        return x->line < y->line ? -1 : 1;
    }
    if (x->col != y->col) {
        return x->col < y->col ? -1 : 1;
    }
    return x->index < y->index ? -1 : (x->index > y->index);
}

void wh_errors_sort(json_t *errors, size_t from)
{
    size_t n = json_array_size(errors);
    if (from >= n || n - from < 2) {
        return;
    }
    placed *v = calloc(n - from, sizeof *v);
    if (!v) {
        return;
    }
    for (size_t i = from; i < n; i++) {
        placed *p = &v[i - from];
        p->msg = json_incref(json_array_get(errors, i));
        p->index = i;
        const char *m = json_string_value(p->msg);
        const char *c = m ? strstr(m, ": ") : NULL; /* the message starts after "file:l:c" */
        p->file_len = c ? (size_t)(c - m) : 0;
        if (!c) {
            continue;
        }
        /* "file:line:col" or "file:line": the numbers at the end of the place */
        const char *q = c;
        while (q > m && q[-1] >= '0' && q[-1] <= '9') {
            q--;
        }
        long last = q < c ? strtol(q, NULL, 10) : -1;
        if (last < 0 || q == m || q[-1] != ':') {
            continue; /* "file: message": no position */
        }
        const char *l = q - 1;
        while (l > m && l[-1] >= '0' && l[-1] <= '9') {
            l--;
        }
        if (l < q - 1 && l > m && l[-1] == ':') {
            p->line = strtol(l, NULL, 10);
            p->col = last;
            p->file_len = (size_t)(l - 1 - m);
        } else {
            p->line = last;
            p->file_len = (size_t)(q - 1 - m);
        }
    }
    qsort(v, n - from, sizeof *v, by_place);
    for (size_t i = from; i < n; i++) {
        json_array_set_new(errors, i, v[i - from].msg);
    }
    free(v);
}
