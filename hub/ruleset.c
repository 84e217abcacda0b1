/*
 * ruleset.c — the bridge between the config's instances and the rule
 * loader's schema callbacks. No state beyond one load.
 */
#include "ruleset.h"
#include "log.h"
#include "util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct names {
    const wh_config *cfg;
    wh_buf instances;
    wh_buf ops;
} names;

static int has_instance(void *ud, const char *instance)
{
    names *n = ud;
    return wh_instances_get(n->cfg->instances, instance) != NULL;
}

static const wh_operation *find_op(void *ud, const char *instance, const char *op)
{
    names *n = ud;
    wh_instance *inst = wh_instances_get(n->cfg->instances, instance);
    return inst ? wh_plugin_op(inst->plugin, op) : NULL;
}

static const char *const *respond_keys(void *ud, const char *instance)
{
    names *n = ud;
    wh_instance *inst = wh_instances_get(n->cfg->instances, instance);
    return inst && inst->plugin->desc.respond ? inst->plugin->desc.respond_keys : NULL;
}

static const char *instance_names(void *ud)
{
    names *n = ud;
    wh_buf_free(&n->instances);
    for (size_t i = 0; i < n->cfg->instances->n; i++) {
        wh_buf_printf(&n->instances, "%s%s", i ? ", " : "", n->cfg->instances->v[i]->name);
    }
    return n->instances.data ? n->instances.data : "none";
}

static const char *op_names(void *ud, const char *instance)
{
    names *n = ud;
    wh_buf_free(&n->ops);
    wh_instance *inst = wh_instances_get(n->cfg->instances, instance);
    for (const wh_operation *op = inst ? inst->plugin->desc.operations : NULL; op && op->name;
         op++) {
        wh_buf_printf(&n->ops, "%s%s", n->ops.len ? ", " : "", op->name);
    }
    return n->ops.data ? n->ops.data : "none";
}

/* Rules decide what wirehub does with its tokens: refuse ones other users can change. */
static int writable_by_others(const char *dir, json_t *errors)
{
    struct stat st;
    int bad = 0;
    if (stat(dir, &st) == 0 && (st.st_mode & S_IWOTH)) {
        json_array_append_new(errors,
                              json_sprintf("%s: refusing to load rules from a directory other "
                                           "users can write (chmod o-w)",
                                           dir));
        return 1;
    }
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            (st.st_mode & S_IWOTH)) {
            json_array_append_new(errors,
                                  json_sprintf("%s: refusing to load a rule file other users can "
                                               "write (chmod o-w)",
                                               path));
            bad = 1;
        }
    }
    if (d) {
        closedir(d);
    }
    return bad;
}

wh_rules *wh_ruleset_load(const wh_config *cfg, json_t *errors)
{
    size_t from = json_array_size(errors);
    /* refused, but the files are still read: every other error is listed too */
    int unsafe = writable_by_others(cfg->rules_dir, errors);
    struct stat st;
    names n = {cfg, {0}, {0}};
    wh_rules_schema schema = {has_instance, find_op, instance_names, op_names, &n, respond_keys};
    wh_rules *rules;
    if (stat(cfg->rules_dir, &st) != 0) {
        wh_warn("rules", "no rules directory at %s: running with no rules", cfg->rules_dir);
        rules = wh_rules_load_text("(none)", "rules: []\n", 10, &schema, errors);
    } else {
        rules = wh_rules_load_dir(cfg->rules_dir, &schema, errors);
    }
    wh_buf_free(&n.instances);
    wh_buf_free(&n.ops);
    if (unsafe) {
        wh_rules_unref(&rules);
    }
    wh_errors_sort(errors, from);
    return rules;
}
