/*
 * config.h — wirehub.yaml: loaded with positions, checked key by key,
 * secrets resolved, relative paths made relative to the file, connector
 * plugins loaded and their keys validated.
 */
#ifndef WH_CONFIG_H
#define WH_CONFIG_H
#include "gateway.h"
#include "instance.h"
#include "doc.h"

typedef struct wh_config {
    char *path;           /**< the file */
    char *dir;            /**< its directory: relative paths start here */
    wh_doc *doc;          /**< the parsed file (secrets resolved in place) */
    char listen_host[64]; /**< from `listen` */
    int listen_port;
    char *state_path;     /**< `state` */
    int state_sync_full;  /**< `state_sync: full` (default) or normal */
    char *rules_dir;      /**< `rules` */
    char *connectors_dir; /**< `connectors_dir` (default: beside the binary) */
    json_t *bus_bind;     /**< array of endpoints (default: ipc://<dir>/wirehub.bus) */
    int log_level;        /**< `log_level` */
    wh_gateway_opts gateway;     /**< `gateway:` limits */
    wh_instances *instances;     /**< loaded plugins, validated configs, not yet inited */
    const json_t *api_tokens;    /**< `api.tokens` (borrowed from doc), NULL: API off */
} wh_config;

/** The config file used when -c is not given: $WIREHUB_CONFIG or ./wirehub.yaml. */
const char *wh_config_default_path(void);

/**
 * Load and check everything. Returns NULL when anything is wrong, with every
 * problem appended to `errors` as "file:line:col: what is wrong". Values of
 * secrets never appear in messages.
 */
wh_config *wh_config_load(const char *path, json_t *errors);
/**
 * The same for commands that only read the state file or join the bus
 * (tail, outbox, runs, replies, send): a secret reference that cannot be
 * resolved is left as written, not an error, so an operator can run them
 * without the hub's credentials. Never use the result to start connectors.
 */
wh_config *wh_config_load_unresolved(const char *path, json_t *errors);
void wh_config_destroy(wh_config **cfg);

/**
 * Replace ${env:NAME} and ${file:PATH} in every string under `node` (PATH
 * relative to base_dir; one trailing newline dropped; "$${" stays a literal
 * "${"). Problems go to errors naming the key, never a value. Returns the count.
 */
int wh_config_resolve_secrets(json_t *node, const wh_doc *doc, const char *pointer,
                              const char *base_dir, json_t *errors);
#endif
