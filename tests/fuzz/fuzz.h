/*
 * fuzz.h — what every fuzz target shares: the libFuzzer entry points and an
 * oracle macro. A broken invariant is a crash for libFuzzer (abort()), so it
 * saves the input like any ASan/UBSan finding.
 */
#ifndef WH_FUZZ_H
#define WH_FUZZ_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/** Abort (a finding) with file:line and the message when `cond` is false. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/** With WH_FUZZ_VERBOSE set, print the messages a refusal gave (to check seeds by hand). */
static inline void fuzz_show_errors(const char *what, const json_t *errors)
{
    static int verbose = -1;
    if (verbose < 0) {
        verbose = getenv("WH_FUZZ_VERBOSE") != NULL;
    }
    if (!verbose) {
        return;
    }
    size_t n = json_array_size(errors);
    fprintf(stderr, "%s: %zu message(s)\n", what, n);
    for (size_t i = 0; i < n; i++) {
        fprintf(stderr, "  %s\n", json_string_value(json_array_get(errors, i)));
    }
}

#endif
