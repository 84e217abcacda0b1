/*
 * instance.h — configured connector instances: the plugin each uses, its
 * validated config, its state, and the services the host table reaches
 * through it.
 */
#ifndef WH_INSTANCE_H
#define WH_INSTANCE_H
#include "plugin.h"
#include "wirehub/connector.h"
#include <jansson.h>
#include <stdio.h>

struct wh_pub;
struct wh_http;
struct wh_doc;

/** What the host table needs from the running hub (all optional in tests). */
typedef struct wh_services {
    struct wh_pub *pub;     /**< publisher for host->publish */
    struct wh_http *http;   /**< delivery thread for host->http and calls */
    int64_t (*now_ms)(void); /**< clock; NULL = wall clock */
} wh_services;

struct wh_instance {
    char *name;
    wh_plugin *plugin; /* borrowed from the set's plugins */
    json_t *config;    /* validated, defaults filled; owned */
    void *state;
    int inited;
    const wh_services *svc;
    json_t *warnings; /* what init() warned when the config was checked: `check` shows them */
};

typedef struct wh_instances {
    size_t n;
    wh_instance **v;
    size_t nplugins;
    wh_plugin **plugins;
} wh_instances;

/**
 * Load the plugins for the `connectors` object of a config and validate each
 * instance's keys against its plugin's options (unknown keys, types, required
 * keys; defaults filled). Every problem is appended to `errors` as
 * "file:line:col: …" using `doc` for positions (`pointer` is the JSON pointer
 * of the connectors object). Returns NULL when anything was wrong.
 * Ownership: borrows connectors and doc.
 */
wh_instances *wh_instances_load(const json_t *connectors, const char *connectors_dir,
                                const struct wh_doc *doc, const char *pointer, json_t *errors);
/**
 * wh_instances_load(), and with `validate` also each instance's connector checks
 * (wh_instance_validate) for every instance whose keys passed, so that one file
 * lists them all. Ownership: as wh_instances_load.
 */
wh_instances *wh_instances_load_checked(const json_t *connectors, const char *connectors_dir,
                                        const struct wh_doc *doc, const char *pointer,
                                        json_t *errors, int validate);

/** Call init() on every instance in order. On failure, the ones done are destroyed. */
int wh_instances_init(wh_instances *set, const wh_services *svc, char *err, size_t errsize);

/** Find an instance by name, or NULL. */
wh_instance *wh_instances_get(const wh_instances *set, const char *name);

/** destroy() every inited instance (reverse order), unload plugins, free. NULL-safe. */
void wh_instances_destroy(wh_instances **set);

/**
 * Bring an operation's rendered arguments to the types its table declares,
 * before start() sees them: a template renders text, so "7" becomes 7 for an
 * integer, 7 becomes "7" for a string, "true" becomes true for a boolean; a
 * null is left out; a missing argument gets its `def`. Returns 0, or -1 with
 * the first argument that cannot be brought to its type in `why` (the value
 * shown at most 40 characters). Ownership: edits obj in place, borrows table.
 */
int wh_args_normalize(const wh_option *table, json_t *obj, char *why, size_t whysize);

/**
 * Whether a literal value (no template in it) can be brought to the type, as
 * wh_args_normalize() would. Returns 1 or 0.
 */
int wh_arg_fits(wh_opt_type type, const json_t *v);

/** "a string", "an integer", … for messages. */
const char *wh_opt_type_name(wh_opt_type t);

/**
 * Validate `obj` against an options table; fills defaults into obj. Keys in
 * `extra` (NULL-terminated) are allowed besides the table. Problems go to
 * errors via doc/pointer. Returns the number of problems.
 */
int wh_options_apply(const wh_option *table, const char *const *extra, json_t *obj,
                     const struct wh_doc *doc, const char *pointer, json_t *errors);

/** The host services table (one, shared by every instance). */
const wh_host *wh_host_table(void);

/**
 * Run the connector's init() on its config and destroy() at once, with no
 * services (no bus, no HTTP): what `wirehub check` and every start do before
 * anything runs. The errors init() logs become config errors in `errors`,
 * "file:line:col: connector '<name>': …", at the key a "config: `key` …"
 * message names, else at the instance (`pointer`). Returns the number of
 * problems (0: accepted). Ownership: borrows everything.
 */
int wh_instance_validate(wh_instance *inst, const struct wh_doc *doc, const char *pointer,
                         json_t *errors);

/** Print a connector's description, options and operations (wirehub describe). */
void wh_describe(const wh_plugin *p, FILE *out);
#endif
