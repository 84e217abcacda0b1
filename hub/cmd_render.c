/*
 * cmd_render.c — `wirehub render`: renders one template file against one
 * JSON data file and prints the result, so that rule authors can try a
 * template without running the hub. It owns argument parsing and messages
 * for that command only; the engine itself lives in template.c. It must not
 * start any part of the hub or read configuration.
 *
 * Exit statuses: WH_EXIT_OK with the render on stdout; WH_EXIT_USAGE for a
 * bad command line, an unreadable file, invalid JSON or a template error
 * (`FILE:line:col: message` on stderr); WH_EXIT_FAIL when stdout cannot be
 * written or memory runs out.
 */
#include "cli.h"
#include "template.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Data files larger than this are refused rather than read into memory. */
#define RENDER_MAX_DATA (64u * 1024u * 1024u)

static const char usage[] =
    "usage: wirehub render [--escape html|xml|url|none] TEMPLATE_FILE DATA.json\n"
    "\n"
    "Render a Mustache template (as used in rule files) against JSON data and\n"
    "print the result. --escape chooses how {{name}} values are escaped\n"
    "(default none); {{{name}}} and {{&name}} are never escaped.\n"
    "exit: 0 rendered, 1 the result is over the render limit (16 MiB or 1,000,000\n"
    "      values) or cannot be written, 2 usage, template or data errors\n";

static int usage_error(const char *fmt, const char *arg)
{
    fputs("wirehub render: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n\n", stderr);
    fputs(usage, stderr);
    return WH_EXIT_USAGE;
}

static int parse_escape(const char *name, wh_escape *esc)
{
    static const struct {
        const char *name;
        wh_escape esc;
    } names[] = {
        {"none", WH_ESC_NONE}, {"html", WH_ESC_HTML}, {"xml", WH_ESC_XML}, {"url", WH_ESC_URL}};
    for (size_t i = 0; i < WH_ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *esc = names[i].esc;
            return 0;
        }
    }
    return -1;
}

int wh_cmd_render(int argc, char **argv)
{
    wh_escape esc = WH_ESC_NONE;
    const char *paths[2] = {NULL, NULL};
    int npaths = 0, options_done = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = NULL;
        if (!options_done && a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--") == 0) {
                options_done = 1;
                continue;
            }
            if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                fputs(usage, stdout);
                return WH_EXIT_OK;
            }
            if (strcmp(a, "--escape") == 0) {
                if (i + 1 >= argc) {
                    return usage_error("%s needs a value (html, xml, url or none)", a);
                }
                value = argv[++i];
            } else if (strncmp(a, "--escape=", 9) == 0) {
                value = a + 9;
            } else {
                return usage_error("unknown option '%s'", a);
            }
            if (parse_escape(value, &esc) != 0) {
                return usage_error("unknown escape '%s' (html, xml, url or none)", value);
            }
            continue;
        }
        if (npaths == 2) {
            return usage_error("unexpected argument '%s'", a);
        }
        paths[npaths++] = a;
    }
    if (npaths < 2) {
        return usage_error("%s",
                           npaths ? "missing DATA.json" : "missing TEMPLATE_FILE and DATA.json");
    }

    int status = WH_EXIT_USAGE;
    char *text = NULL, *data = NULL;
    wh_tpl *tpl = NULL;
    json_t *ctx = NULL;
    wh_buf out = {0};
    size_t text_len = 0, data_len = 0;

    text = wh_read_file(paths[0], WH_TPL_MAX_SIZE, &text_len);
    if (!text) {
        fprintf(stderr, "wirehub render: cannot read %s: %s\n", paths[0], strerror(errno));
        goto done;
    }
    data = wh_read_file(paths[1], RENDER_MAX_DATA, &data_len);
    if (!data) {
        fprintf(stderr, "wirehub render: cannot read %s: %s\n", paths[1], strerror(errno));
        goto done;
    }

    char err[256];
    int line = 0, col = 0;
    tpl = wh_tpl_parse(text, text_len, err, sizeof err, &line, &col);
    if (!tpl) {
        fprintf(stderr, "%s:%d:%d: %s\n", paths[0], line, col, err);
        goto done;
    }

    json_error_t jerr;
    ctx = json_loadb(data, data_len, JSON_DECODE_ANY, &jerr);
    if (!ctx) {
        fprintf(stderr, "%s:%d:%d: invalid JSON: %s\n", paths[1], jerr.line, jerr.column,
                jerr.text);
        goto done;
    }

    int rc = wh_tpl_render(tpl, ctx, esc, &out);
    if (rc != WH_OK) {
        fprintf(stderr, "wirehub render: %s\n",
                rc == WH_ERR_NOMEM ? "the result is over the render limit (16 MiB or 1,000,000 "
                                     "values)"
                                   : wh_strerror(rc));
        status = WH_EXIT_FAIL;
        goto done;
    }
    if ((out.len && fwrite(out.data, 1, out.len, stdout) != out.len) || fflush(stdout) != 0) {
        fprintf(stderr, "wirehub render: cannot write output: %s\n", strerror(errno));
        status = WH_EXIT_FAIL;
        goto done;
    }
    status = WH_EXIT_OK;

done:
    wh_buf_free(&out);
    json_decref(ctx);
    wh_tpl_destroy(&tpl);
    free(data);
    free(text);
    return status;
}
