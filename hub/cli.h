/* cli.h — the subcommands main() dispatches to. Each returns the process exit status. */
#ifndef WH_CLI_H
#define WH_CLI_H

/** Exit statuses, documented in the README. */
enum {
    WH_EXIT_OK = 0,      /**< success */
    WH_EXIT_FAIL = 1,    /**< a runtime failure (cannot bind, bus down, …) */
    WH_EXIT_USAGE = 2,   /**< bad command line, config or rules */
};

int wh_cmd_run(int argc, char **argv);
int wh_cmd_tail(int argc, char **argv);
int wh_cmd_check(int argc, char **argv);
int wh_cmd_describe(int argc, char **argv);
int wh_cmd_render(int argc, char **argv);

/** The most arguments a subcommand takes (the size of `rest` below). */
#define WH_CLI_MAX_ARGS 64

/**
 * Parse "-c FILE"/"--config FILE"/"--config=FILE" and "-h"/"--help" out of argv
 * (argv[0] is the subcommand). Remaining positional arguments are moved to the
 * front of `rest` (count in *nrest). Returns 0, 1 when help was asked, -1 on a
 * usage error (message printed).
 */
int wh_cli_common(int argc, char **argv, const char **config, char **rest, int *nrest,
                  const char *usage);

/** Load a config and print every error to stderr; NULL on failure. */
struct wh_config *wh_cli_load_config(const char *path);
/** The same without requiring secrets (wh_config_load_unresolved): for tail,
 *  send and the state commands. */
struct wh_config *wh_cli_load_config_unresolved(const char *path);
/** Load the config's rules and print every error to stderr; NULL on failure. */
struct wh_rules *wh_cli_load_rules(const struct wh_config *cfg);
int wh_cmd_send(int argc, char **argv);
int wh_cmd_outbox(int argc, char **argv);
int wh_cmd_runs(int argc, char **argv);
int wh_cmd_replies(int argc, char **argv);
#endif
