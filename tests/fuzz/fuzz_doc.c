/*
 * fuzz_doc.c — the YAML/JSON document parser (hub/doc.c) on arbitrary bytes.
 *
 * Owns only the oracle: a failed parse says why; a parsed document has a root
 * that encodes as JSON and reads back equal, and every node has a position.
 * Must not: touch files, or keep anything between inputs.
 */
#include "doc.h"
#include "fuzz.h"

#include <string.h>

/* Bound the walk: an alias bomb below WH_YAML_MAX_NODES is still a million nodes. */
#define WALK_MAX 20000

static void check_pos(const wh_doc *d, const char *ptr)
{
    int line = 0, col = 0;
    FUZZ_CHECK(wh_doc_pos(d, ptr, &line, &col) == 0, "no position for '%s'", ptr);
    FUZZ_CHECK(line >= 1 && col >= 1, "position %d:%d for '%s'", line, col, ptr);
    FUZZ_CHECK(wh_doc_value_pos(d, ptr, &line, &col) == 0, "no value position for '%s'", ptr);
    FUZZ_CHECK(line >= 1 && col >= 1, "value position %d:%d for '%s'", line, col, ptr);
}

static void walk(const wh_doc *d, const json_t *v, const char *ptr, size_t *budget)
{
    if (*budget == 0) {
        return;
    }
    (*budget)--;
    check_pos(d, ptr);
    if (json_is_object(v)) {
        const char *key;
        json_t *m;
        json_object_foreach((json_t *)v, key, m)
        {
            char *child = wh_ptr_child_dup(ptr, key);
            if (child) {
                walk(d, m, child, budget);
            }
            free(child);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            char *child = wh_ptr_index_dup(ptr, i);
            if (child) {
                walk(d, m, child, budget);
            }
            free(child);
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *errors = json_array();
    wh_doc *d = wh_doc_parse("fuzz.yaml", (const char *)data, size, errors);
    fuzz_show_errors(d ? "parsed" : "refused", errors);
    if (!d) {
        FUZZ_CHECK(json_array_size(errors) > 0, "the parse failed without saying why");
        FUZZ_CHECK(json_array_size(errors) <= WH_YAML_MAX_ERRORS + 1, "%zu errors",
                   json_array_size(errors));
        size_t i;
        json_t *e;
        json_array_foreach(errors, i, e)
        {
            const char *s = json_string_value(e);
            FUZZ_CHECK(s && strncmp(s, "fuzz.yaml:", 10) == 0, "error without position: %s",
                       s ? s : "(not a string)");
        }
        json_decref(errors);
        return 0;
    }
    FUZZ_CHECK(json_array_size(errors) == 0, "a parsed document came with errors");
    json_t *root = wh_doc_root(d);
    FUZZ_CHECK(root != NULL, "a parsed document has no root");
    FUZZ_CHECK(strcmp(wh_doc_file(d), "fuzz.yaml") == 0, "file name lost");

    /* What the hub does with a document: encode it (dry runs, the API) and read it back. */
    char *text = json_dumps(root, JSON_ENCODE_ANY | JSON_COMPACT);
    FUZZ_CHECK(text != NULL, "the document does not encode as JSON");
    json_error_t jerr;
    json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    FUZZ_CHECK(back != NULL, "its JSON does not read back: %s", jerr.text);
    FUZZ_CHECK(json_equal(root, back), "its JSON reads back different");
    json_decref(back);
    free(text);

    size_t budget = WALK_MAX;
    walk(d, root, "", &budget);
    /* An unknown pointer falls back to its nearest known ancestor. */
    check_pos(d, "/no~1such/0/key");
    wh_doc_error(d, errors, "/no/such", "an error at %d", 1);
    wh_doc_value_error(d, errors, "", "an error at the root");
    FUZZ_CHECK(json_array_size(errors) == 2, "wh_doc_error appended %zu", json_array_size(errors));

    wh_doc_destroy(&d);
    FUZZ_CHECK(d == NULL, "destroy did not clear the pointer");
    json_decref(errors);
    return 0;
}
