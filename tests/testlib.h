/* testlib.h — a tiny assertion kit for the C tests: each failure prints file:line and exits 1. */
#ifndef WH_TESTLIB_H
#define WH_TESTLIB_H
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int wh_test_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            wh_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a != _b) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, _a, _b); \
            wh_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                                                   \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,      \
                    _a ? _a : "(null)", _b ? _b : "(null)");                                       \
            wh_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

/** Print the summary and return the exit status for main(). */
int wh_test_done(const char *name);

/** Make a fresh private temp directory (mode 0700); malloc'd path. */
char *wh_test_tmpdir(void);
/** Write `text` to dir/name; returns the malloc'd path. */
char *wh_test_write(const char *dir, const char *name, const char *text);
#endif
