/*
 * main.c — argv → the subcommand; nothing else. No library is initialised here:
 * curl's global state belongs to http_client.c, which sets it up on first use.
 */
#include "cli.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: wirehub COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  run [-c FILE]                 start the hub in the foreground\n"
    "  tail [-c FILE] [PREFIX]       print bus messages of a running hub as JSON lines\n"
    "  check [-c FILE]               validate the config and rules, then exit\n"
    "  send [-c FILE] [--dry-run] INSTANCE KIND DATA.json\n"
    "                                publish an event (or show what rules would do)\n"
    "  describe TYPE                 show a connector's keys and operations\n"
    "  render [--escape E] TPL DATA  render one template with a JSON file\n"
    "  outbox [-c FILE] [--dead|--all] [--json]\n"
    "                                list undelivered and dead calls; outbox retry ID|--dead\n"
    "  runs [-c FILE] [--failed] [--json]\n"
    "                                list rule runs\n"
    "  replies [-c FILE] KEY         print replies stored under KEY\n"
    "  version                       print the version\n"
    "\n"
    "Every command takes --help. FILE defaults to $WIREHUB_CONFIG or ./wirehub.yaml.\n"
    "exit status: 0 success, 1 runtime failure, 2 usage, config or rule errors\n";

int main(int argc, char **argv)
{
    const char *lvl = getenv("WIREHUB_LOG");
    if (lvl && wh_log_parse_level(lvl) >= 0) {
        wh_log_set_level(wh_log_parse_level(lvl));
    } else if (lvl && *lvl) {
        fprintf(stderr, "wirehub: WIREHUB_LOG=%.40s is not a level (error, warn, info or debug); "
                        "ignored\n",
                lvl);
    }
    if (argc < 2) {
        fputs(usage, stderr);
        return WH_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return WH_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc > 2 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
            fputs("usage: wirehub version\n  Print the version and the connector ABI.\n"
                  "exit: 0\n",
                  stdout);
            return WH_EXIT_OK;
        }
        if (argc > 2) {
            fprintf(stderr, "wirehub version: unexpected argument '%s'\nusage: wirehub version\n",
                    argv[2]);
            return WH_EXIT_USAGE;
        }
        printf("wirehub %s (connector ABI %d.%d)\n", WH_VERSION, WH_ABI_MAJOR, WH_ABI_MINOR);
        return WH_EXIT_OK;
    }
    int rc;
    if (strcmp(cmd, "run") == 0) {
        rc = wh_cmd_run(argc - 1, argv + 1);
    } else if (strcmp(cmd, "tail") == 0) {
        rc = wh_cmd_tail(argc - 1, argv + 1);
    } else if (strcmp(cmd, "check") == 0) {
        rc = wh_cmd_check(argc - 1, argv + 1);
    } else if (strcmp(cmd, "describe") == 0) {
        rc = wh_cmd_describe(argc - 1, argv + 1);
    } else if (strcmp(cmd, "outbox") == 0) {
        rc = wh_cmd_outbox(argc - 1, argv + 1);
    } else if (strcmp(cmd, "runs") == 0) {
        rc = wh_cmd_runs(argc - 1, argv + 1);
    } else if (strcmp(cmd, "replies") == 0) {
        rc = wh_cmd_replies(argc - 1, argv + 1);
    } else if (strcmp(cmd, "send") == 0) {
        rc = wh_cmd_send(argc - 1, argv + 1);
    } else if (strcmp(cmd, "render") == 0) {
        rc = wh_cmd_render(argc - 1, argv + 1);
    } else {
        fprintf(stderr, "wirehub: unknown command '%s'\n\n%s", cmd, usage);
        rc = WH_EXIT_USAGE;
    }
    return rc;
}
