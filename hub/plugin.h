/*
 * plugin.h — the connector loader: opens <type>.so from the connectors
 * directory and checks its descriptor before anything of it runs.
 */
#ifndef WH_PLUGIN_H
#define WH_PLUGIN_H
#include "wirehub/connector.h"
#include <stddef.h>

typedef struct wh_plugin {
    char *type;         /**< the type name (== the file name without .so) */
    char *path;         /**< the file it came from */
    void *dl;           /**< dlopen handle, NULL for built-in descriptors (tests) */
    wh_connector desc;  /**< the descriptor, copied only up to its struct_size */
} wh_plugin;

/** The smallest descriptor the loader accepts (ABI 1.0). */
#define WH_CONNECTOR_MIN_SIZE (offsetof(wh_connector, operations) + sizeof(void *))

/**
 * Load `<dir>/<type>.so` and check it. Refuses, with "file: reason" in err:
 * a bad type name, a directory or file writable by other users, a missing file,
 * dlopen errors, no entry symbol, another ABI major, a struct_size below the
 * minimum, a host older than the plugin's minimum minor, a jansson major
 * mismatch, a name that differs from the file's, a missing init or destroy.
 * Ownership: returns a new plugin the caller destroys.
 */
wh_plugin *wh_plugin_load(const char *dir, const char *type, char *err, size_t errsize);

/**
 * Check a descriptor (the same checks as the loader, for one already in
 * memory). `path` is used in messages. Returns a new plugin or NULL.
 */
wh_plugin *wh_plugin_from_desc(const wh_connector *desc, uint32_t size_hint, const char *path,
                               const char *type, char *err, size_t errsize);

/** Close and free. NULL-safe. */
void wh_plugin_destroy(wh_plugin **p);

/** Look up an operation by name, or NULL. */
const wh_operation *wh_plugin_op(const wh_plugin *p, const char *name);

/** The connectors directory wirehub was built or installed with, found beside the binary. */
const char *wh_default_connectors_dir(void);
#endif
