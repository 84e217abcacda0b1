/*
 * doc.h — YAML (and JSON) documents parsed into jansson values, with the
 * source position of every node, so that every error a user sees can read
 * `file:line:col: what is wrong`.
 *
 * Positions are kept by JSON pointer (RFC 6901): "" is the root,
 * "/connectors/team/token" a member, "/rules/0/if/intent.name" an array item's
 * member. In a key, '~' is written "~0" and '/' is written "~1". Pointers are
 * used (not json_t addresses) because jansson's true/false/null are shared.
 *
 * YAML → JSON mapping (YAML 1.2 core schema):
 *   - quoted scalars ('x', "x") and block scalars (|, >) are strings;
 *   - plain scalars: null, Null, NULL, ~ and the empty scalar → null;
 *     true/True/TRUE, false/False/FALSE → boolean; 123, -4, +5, 0x1F, 0o17 →
 *     integer (must fit in json_int_t); 1.5, -2e3, .5 → real; .inf and .nan are
 *     refused (JSON cannot hold them); anything else → string (`yes` stays a
 *     string);
 *   - the tags !!str, !!int, !!float, !!bool, !!null (and !!map, !!seq on
 *     collections, and the non-specific "!") are honoured; other tags are errors;
 *   - mapping keys must be scalars and are kept as written (`1: x` has the key
 *     "1"); a duplicate key is an error; `<<` is an ordinary key;
 *   - anchors and aliases are expanded by deep copy, at most WH_YAML_MAX_NODES
 *     nodes in total ("billion laughs" is refused);
 *   - one document per file; nesting at most WH_YAML_MAX_DEPTH levels;
 *   - an empty file (or a document with no content) is an empty object.
 *
 * Threads: a wh_doc is immutable after parsing; concurrent readers are fine.
 */
#ifndef WH_DOC_H
#define WH_DOC_H
#include <jansson.h>
#include <stddef.h>

/** Nesting bound (mappings and sequences inside each other). */
#define WH_YAML_MAX_DEPTH 256
/** Bound on the number of nodes, counting every copy an alias makes. */
#define WH_YAML_MAX_NODES 1000000
/** Bound on wh_doc_load()'s file size. */
#define WH_YAML_MAX_FILE (16u * 1024u * 1024u)
/** At most this many errors are appended by one parse. */
#define WH_YAML_MAX_ERRORS 100

typedef struct wh_doc wh_doc;

/**
 * Parse `len` bytes of YAML or JSON (need not be NUL-terminated). `file` names
 * the source in messages (copied; NULL reads "<input>").
 *
 * Returns the document, or NULL when anything is wrong: then one string
 * "file:line:col: message" per problem found is appended to `errors` (a json
 * array; may be NULL to discard). Line and column are 1-based; columns count
 * characters.
 *
 * Ownership: borrows file, text and errors; returns a new document the caller
 * frees with wh_doc_destroy().
 */
wh_doc *wh_doc_parse(const char *file, const char *text, size_t len, json_t *errors);

/**
 * Read and parse the file at `path` (at most WH_YAML_MAX_FILE bytes). When the
 * file cannot be read, appends "path: cannot read: <strerror>" and returns NULL.
 *
 * Ownership: borrows path and errors; returns a new document.
 */
wh_doc *wh_doc_load(const char *path, json_t *errors);

/** Free a document and set *d to NULL. Accepts NULL and *d == NULL. Ownership: takes *d. */
void wh_doc_destroy(wh_doc **d);

/**
 * The parsed value (an object for an empty file).
 * Ownership: borrowed; valid while the document lives. json_incref() it to keep it longer.
 */
json_t *wh_doc_root(const wh_doc *d);

/** The file name given to wh_doc_parse(). Ownership: borrowed from the document. */
const char *wh_doc_file(const wh_doc *d);

/**
 * Position of the node at `pointer` ("" or NULL for the root): for an object
 * member the position of its KEY (best for "unknown key" messages); for array
 * items and the root the position where the value starts. If `pointer` itself
 * is unknown (e.g. inside a value an alias copied), the nearest known ancestor
 * is used. Returns 0 and sets *line, *col (1-based), or -1 (d NULL).
 *
 * Ownership: borrows everything.
 */
int wh_doc_pos(const wh_doc *d, const char *pointer, int *line, int *col);

/**
 * Position where the VALUE at `pointer` starts (for errors inside a scalar,
 * e.g. a template or a regex). Same fallback and return as wh_doc_pos().
 *
 * Ownership: borrows everything.
 */
int wh_doc_value_pos(const wh_doc *d, const char *pointer, int *line, int *col);

/**
 * Append "file:line:col: <formatted message>" to `errors` for the node at
 * `pointer`, positioned as wh_doc_pos() says. With d NULL the prefix is
 * "<unknown>:0:0:". Does nothing when errors is NULL.
 *
 * Ownership: borrows everything.
 */
void wh_doc_error(const wh_doc *d, json_t *errors, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Like wh_doc_error(), positioned at the value (wh_doc_value_pos()). */
void wh_doc_value_error(const wh_doc *d, json_t *errors, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * Build a child pointer: parent + "/" + key with '~' → "~0" and '/' → "~1",
 * into out (always NUL-terminated; truncated when size is too small — a
 * truncated pointer still resolves to its nearest known ancestor).
 * parent NULL means the root. Returns out.
 *
 * Ownership: borrows parent and key; writes into the caller's out.
 */
char *wh_ptr_child(char *out, size_t size, const char *parent, const char *key);
/** parent + "/" + decimal index, into out, as wh_ptr_child(). Returns out. */
char *wh_ptr_index(char *out, size_t size, const char *parent, size_t index);

/**
 * As wh_ptr_child() / wh_ptr_index() but never truncates: returns a malloc'd
 * string or NULL when out of memory. Ownership: the caller frees the result.
 */
char *wh_ptr_child_dup(const char *parent, const char *key);
char *wh_ptr_index_dup(const char *parent, size_t index);

#endif
