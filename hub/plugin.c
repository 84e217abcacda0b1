/*
 * plugin.c — one loader for every connector. It refuses what it cannot trust
 * (files other users may write, foreign ABIs) with the file and the reason,
 * and reads a descriptor only within the struct_size the plugin declared, so
 * older plugins keep working on newer hosts. It never calls a plugin's code
 * except the entry function; instances are someone else's business.
 */
#include "plugin.h"
#include "util.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef const wh_connector *(*entry_fn)(void);

static int type_ok(const char *type)
{
    size_t n = 0;
    for (; type && type[n]; n++) {
        char c = type[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return 0;
        }
    }
    return n >= 1 && n <= 64;
}

static int writable_by_others(const char *path, const char *file, char *err, size_t errsize,
                              const char *what)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return 1;
    }
    if (st.st_mode & S_IWOTH) {
        snprintf(err, errsize, "%s: refusing to load %s: the %s is writable by other users", path,
                 file, what);
        return 1;
    }
    return 0;
}

wh_plugin *wh_plugin_from_desc(const wh_connector *d, uint32_t size_hint, const char *path,
                               const char *type, char *err, size_t errsize)
{
    (void)size_hint;
    if (!d) {
        snprintf(err, errsize, "%s: the entry function returned no descriptor", path);
        return NULL;
    }
    const wh_abi_header *h = &d->hdr;
    if (h->abi_major != WH_ABI_MAJOR) {
        snprintf(err, errsize, "%s: built for connector ABI %u, this wirehub speaks ABI %u", path,
                 h->abi_major, WH_ABI_MAJOR);
        return NULL;
    }
    if (h->struct_size < WH_CONNECTOR_MIN_SIZE) {
        snprintf(err, errsize, "%s: descriptor is %u bytes, smaller than ABI %u.0's %zu", path,
                 h->struct_size, WH_ABI_MAJOR, (size_t)WH_CONNECTOR_MIN_SIZE);
        return NULL;
    }
    if (h->min_host_minor > WH_ABI_MINOR) {
        snprintf(err, errsize, "%s: needs wirehub ABI %u.%u or newer, this one is %u.%u", path,
                 WH_ABI_MAJOR, h->min_host_minor, WH_ABI_MAJOR, WH_ABI_MINOR);
        return NULL;
    }
    if (h->jansson_major != JANSSON_MAJOR_VERSION) {
        snprintf(err, errsize, "%s: built with jansson %u.x, wirehub uses jansson %d.x", path,
                 h->jansson_major, JANSSON_MAJOR_VERSION);
        return NULL;
    }
    if (!h->name || strcmp(h->name, type) != 0) {
        snprintf(err, errsize, "%s: declares type '%s', expected '%s' (the file name)", path,
                 h->name ? h->name : "(none)", type);
        return NULL;
    }
    wh_connector copy;
    memset(&copy, 0, sizeof copy);
    size_t n = h->struct_size < sizeof copy ? h->struct_size : sizeof copy;
    memcpy(&copy, d, n);
    if (!copy.init || !copy.destroy) {
        snprintf(err, errsize, "%s: the descriptor has no %s callback", path,
                 copy.init ? "destroy" : "init");
        return NULL;
    }
    for (const wh_operation *op = copy.operations; op && op->name; op++) {
        if (!op->start) {
            snprintf(err, errsize, "%s: operation '%s' has no start callback", path, op->name);
            return NULL;
        }
    }
    wh_plugin *p = calloc(1, sizeof *p);
    if (!p || !(p->type = strdup(type)) || !(p->path = strdup(path))) {
        snprintf(err, errsize, "out of memory");
        wh_plugin_destroy(&p);
        return NULL;
    }
    p->desc = copy;
    return p;
}

wh_plugin *wh_plugin_load(const char *dir, const char *type, char *err, size_t errsize)
{
    if (!type_ok(type)) {
        snprintf(err, errsize, "'%s' is not a connector type name (use a-z, 0-9, _ and -)",
                 type ? type : "");
        return NULL;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.so", dir, type);
    if (access(path, F_OK) != 0) {
        snprintf(err, errsize, "%s: no such connector (is connectors_dir right?)", path);
        return NULL;
    }
    char file[96];
    snprintf(file, sizeof file, "%s.so", type);
    if (writable_by_others(dir, file, err, errsize, "connectors directory") ||
        writable_by_others(path, file, err, errsize, "file")) {
        return NULL;
    }
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        snprintf(err, errsize, "%s: cannot load: %s", path, why ? why : "unknown error");
        return NULL;
    }
    entry_fn entry;
    *(void **)&entry = dlsym(dl, WH_CONNECTOR_ENTRY_NAME);
    if (!entry) {
        snprintf(err, errsize,
                 "%s: no symbol %s (not a wirehub connector, or built for another ABI major)",
                 path, WH_CONNECTOR_ENTRY_NAME);
        dlclose(dl);
        return NULL;
    }
    wh_plugin *p = wh_plugin_from_desc(entry(), 0, path, type, err, errsize);
    if (!p) {
        dlclose(dl);
        return NULL;
    }
    p->dl = dl;
    return p;
}

void wh_plugin_destroy(wh_plugin **pp)
{
    wh_plugin *p = pp ? *pp : NULL;
    if (!p) {
        return;
    }
    if (p->dl) {
        dlclose(p->dl);
    }
    free(p->type);
    free(p->path);
    free(p);
    *pp = NULL;
}

const wh_operation *wh_plugin_op(const wh_plugin *p, const char *name)
{
    for (const wh_operation *op = p->desc.operations; op && op->name; op++) {
        if (strcmp(op->name, name) == 0) {
            return op;
        }
    }
    return NULL;
}

const char *wh_default_connectors_dir(void)
{
    static char dir[PATH_MAX + 128];
    if (dir[0]) {
        return dir;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(dir, sizeof dir, "/usr/local/%s", WH_INSTALL_CONNECTORS_REL);
        return dir;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
        *slash = '\0';
    }
    /* the build tree keeps connectors/ beside the binary */
    char candidate[PATH_MAX + 128];
    snprintf(candidate, sizeof candidate, "%s/connectors", exe);
    struct stat st;
    if (stat(candidate, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof dir, "%s", candidate);
        return dir;
    }
    /* installed: <prefix>/bin/wirehub → <prefix>/lib…/wirehub/connectors */
    slash = strrchr(exe, '/');
    if (slash) {
        *slash = '\0';
    }
    snprintf(dir, sizeof dir, "%s/%s", exe, WH_INSTALL_CONNECTORS_REL);
    return dir;
}
