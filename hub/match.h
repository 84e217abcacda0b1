/*
 * match.h — the criteria of a rule's `if:`, compiled once at load and
 * evaluated per event; plus dotted-path lookup into JSON, shared with the
 * template renderer and the engine.
 *
 * Criteria are an object of `path: condition` entries; all must hold:
 *
 *   if:
 *     intent.name: GivePresentationIntent         # a scalar, list or null: equals
 *     intent.slots.topic: { exists: true }
 *     user.age: { gte: 18, lt: 65 }                # several operators: all must hold
 *     text: { regex: "^deploy (\\w+)$" }
 *     channel: { in: ["#a", "#b"] }
 *     tags: { contains: urgent }
 *     name: { starts_with: "Dr", ends_with: "x", not: "Dr No" }
 *     any:  [ { a: 1 }, { b: { exists: false } } ]
 *     all:  [ ... ]
 *     none: [ ... ]
 *
 * Operators (an object as a path's value is always a set of operators; compare
 * with an object using `equals: {...}`):
 *   equals V      deep JSON equality; integer 1 equals real 1.0
 *   not V         not equal; a missing path is "not equal", so true
 *   in [V...]     equal to one of the list's values
 *   exists B      true: the path resolves to a non-null value; false: it does not
 *   contains V    a string contains the substring V, or an array holds an element equal to V
 *   starts_with S, ends_with S   string prefix / suffix
 *   regex S       PCRE2 syntax, unanchored, UTF-8 (use ^ and $ to anchor)
 *   gt, gte, lt, lte N   numeric comparison; both sides integer or real
 *   all, any, none [criteria...]   combinators over a list of criteria objects
 *
 * A type mismatch is false, never an error at run time: `gt` on a string,
 * `starts_with` on a number. A missing path is false for everything except
 * `exists: false`, `not`, and `none`. `exists` alone treats a JSON null like a
 * missing path (`equals: null` matches a null).
 *
 * Paths: components separated by '.'; a component of digits indexes an array
 * (and is tried as a key when the value there is an object): `items.0.id`.
 * Keys containing '.' cannot be addressed. The keys `all`, `any` and `none`
 * are combinators, never paths.
 *
 * Threads: a compiled wh_match is immutable; wh_match_eval() and
 * wh_match_explain() may run concurrently on one wh_match.
 */
#ifndef WH_MATCH_H
#define WH_MATCH_H
#include "doc.h"

#include <jansson.h>
#include <stddef.h>

/** Bound on how deeply combinators may nest. */
#define WH_MATCH_MAX_DEPTH 32

typedef struct wh_match wh_match;

/**
 * Compile the criteria object `criteria`, found at JSON pointer `pointer` inside
 * `doc` (the `if:` value). criteria NULL or JSON null matches everything.
 * On errors, appends "file:line:col: message" to `errors` for EVERY problem
 * found and returns NULL. `doc` may be NULL (messages then read
 * "<criteria>:0:0: ..."); `pointer` NULL means the root; `errors` may be NULL.
 *
 * Ownership: borrows doc, pointer, criteria and errors (values are copied);
 * returns a new wh_match the caller frees with wh_match_destroy().
 */
wh_match *wh_match_compile(const wh_doc *doc, const char *pointer, const json_t *criteria,
                           json_t *errors);

/** Free and set *m to NULL; accepts NULL and *m == NULL. Ownership: takes *m. */
void wh_match_destroy(wh_match **m);

/**
 * 1 when ctx satisfies the criteria, 0 when not (and when m is NULL). A NULL
 * ctx is an empty context: every path is missing. No allocation, except once
 * per thread for the first regex match.
 *
 * Ownership: borrows m and ctx.
 */
int wh_match_eval(const wh_match *m, const json_t *ctx);

/**
 * Like wh_match_eval(), and when the result is 0 writes into `why` (always
 * NUL-terminated, truncated to `size`) the first criterion that failed, e.g.
 *   intent.name: "GetFeedbackIntent" is not equal to "GivePresentationIntent"
 *   intent.slots.topic: missing (exists: true)
 * On 1, why is "". why may be NULL.
 *
 * Ownership: borrows m and ctx; writes into the caller's why.
 */
int wh_match_explain(const wh_match *m, const json_t *ctx, char *why, size_t size);

/**
 * Look up a dotted path ("intent.slots.topic", "items.0.id") in root. "" is root
 * itself. Returns NULL when any step is missing or a component is empty.
 *
 * Ownership: borrows root and path; returns a value borrowed from root.
 */
const json_t *wh_json_path(const json_t *root, const char *path);

/** A dotted path split once for hot paths. */
typedef struct wh_path {
    size_t n;     /**< number of components; 0 for "" (the root) */
    char **parts; /**< the components */
    long *index;  /**< the component as an array index, or -1 when not all digits */
} wh_path;

/**
 * Split `dotted` into p. Returns WH_OK, WH_ERR_INVALID (an empty component,
 * e.g. "a..b" or "a.") or WH_ERR_NOMEM; on failure p is left empty.
 *
 * Ownership: borrows dotted; p owns its parts until wh_path_free().
 */
int wh_path_parse(wh_path *p, const char *dotted);
/** Free the parts and empty p; accepts an empty or zeroed p. */
void wh_path_free(wh_path *p);
/** As wh_json_path() with a split path. Ownership: returns a value borrowed from root. */
const json_t *wh_path_get(const wh_path *p, const json_t *root);

/**
 * Deep JSON equality where integer 1 equals real 1.0 (at any depth); 1 or 0.
 * Two NULLs are equal. Ownership: borrows both.
 */
int wh_json_equal_num(const json_t *a, const json_t *b);

#endif
