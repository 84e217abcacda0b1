/*
 * test_mustache_spec.c — runs every case of the official Mustache spec files
 * in ../shared/testdata/mustache-spec/ (read in place, never copied) through
 * the template engine with HTML escaping, and fails on any mismatch. Cases
 * that need partials are skipped and counted; nothing else is skipped.
 */
#include "template.h"
#include "testlib.h"

#include <dirent.h>

#define SPEC_DIR WH_SHARED_DIR "/testdata/mustache-spec"

static int n_run, n_failed, n_skipped;

static void print_quoted(const char *label, const char *s, size_t len)
{
    fprintf(stderr, "    %s \"", label);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            fputs("\\n", stderr);
        } else if (c == '\r') {
            fputs("\\r", stderr);
        } else if (c == '\t') {
            fputs("\\t", stderr);
        } else if (c == '"' || c == '\\') {
            fprintf(stderr, "\\%c", c);
        } else {
            fputc(c, stderr);
        }
    }
    fputs("\"\n", stderr);
}

static void run_case(const char *file, const json_t *tc)
{
    const char *name = json_string_value(json_object_get(tc, "name"));
    const json_t *tj = json_object_get(tc, "template");
    const json_t *ej = json_object_get(tc, "expected");
    const json_t *data = json_object_get(tc, "data");
    if (!name || !json_is_string(tj) || !json_is_string(ej) || !data) {
        fprintf(stderr, "FAIL %s: malformed case %s\n", file, name ? name : "(no name)");
        n_failed++;
        return;
    }
    const json_t *partials = json_object_get(tc, "partials");
    if ((partials && json_object_size(partials) > 0) || strstr(json_string_value(tj), "{{>")) {
        fprintf(stderr, "SKIP %s: %s (needs partials)\n", file, name);
        n_skipped++;
        return;
    }
    n_run++;
    char err[200];
    int line, col;
    wh_tpl *t =
        wh_tpl_parse(json_string_value(tj), json_string_length(tj), err, sizeof err, &line, &col);
    if (!t) {
        fprintf(stderr, "FAIL %s: %s: parse error %d:%d: %s\n", file, name, line, col, err);
        n_failed++;
        return;
    }
    wh_buf out = {0};
    int rc = wh_tpl_render(t, data, WH_ESC_HTML, &out);
    size_t elen = json_string_length(ej);
    if (rc != WH_OK || out.len != elen || memcmp(out.data, json_string_value(ej), elen) != 0) {
        fprintf(stderr, "FAIL %s: %s (rc %d)\n", file, name, rc);
        print_quoted("template:", json_string_value(tj), json_string_length(tj));
        print_quoted("expected:", json_string_value(ej), elen);
        print_quoted("got:     ", out.data ? out.data : "", out.len);
        n_failed++;
    }
    wh_buf_free(&out);
    wh_tpl_destroy(&t);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int main(void)
{
    DIR *d = opendir(SPEC_DIR);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", SPEC_DIR);
        return 1;
    }
    int files = 0;
    int seen_required = 0;
    static const char *const required[] = {"comments.json", "interpolation.json", "sections.json",
                                           "inverted.json"};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!ends_with(e->d_name, ".json")) {
            continue;
        }
        for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
            if (strcmp(e->d_name, required[i]) == 0) {
                seen_required++;
            }
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", SPEC_DIR, e->d_name);
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        const json_t *tests = json_object_get(root, "tests");
        if (!json_is_array(tests) || json_array_size(tests) == 0) {
            fprintf(stderr, "FAIL %s: no tests (%s)\n", e->d_name, root ? "" : jerr.text);
            n_failed++;
            json_decref(root);
            continue;
        }
        files++;
        for (size_t i = 0; i < json_array_size(tests); i++) {
            run_case(e->d_name, json_array_get(tests, i));
        }
        json_decref(root);
    }
    closedir(d);

    fprintf(stderr, "mustache spec: %d files, %d cases run, %d failed, %d skipped\n", files, n_run,
            n_failed, n_skipped);
    CHECK_INT(seen_required, 4);
    CHECK(n_run >= 100); /* the four files hold 110 cases; never pass vacuously */
    CHECK_INT(n_failed, 0);
    return wh_test_done("mustache_spec");
}
