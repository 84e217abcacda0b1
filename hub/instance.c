/*
 * instance.c — turns the config's `connectors:` object into loaded plugins
 * and validated instance configs, and runs init/destroy in order. The
 * options check lives here because it is what makes an unknown key an error
 * with a line number instead of a silent typo.
 */
#include "instance.h"
#include "log.h"
#include "util.h"
#include "doc.h"
#include "envelope.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(wh_opt_type t)
{
    switch (t) {
    case WH_OPT_STRING: return "a string";
    case WH_OPT_INT: return "an integer";
    case WH_OPT_NUMBER: return "a number";
    case WH_OPT_BOOL: return "true or false";
    case WH_OPT_OBJECT: return "a mapping";
    case WH_OPT_ARRAY: return "a list";
    default: return "any value";
    }
}

static int type_ok(wh_opt_type t, const json_t *v)
{
    switch (t) {
    case WH_OPT_STRING: return json_is_string(v);
    case WH_OPT_INT: return json_is_integer(v);
    case WH_OPT_NUMBER: return json_is_number(v);
    case WH_OPT_BOOL: return json_is_boolean(v);
    case WH_OPT_OBJECT: return json_is_object(v);
    case WH_OPT_ARRAY: return json_is_array(v);
    default: return 1;
    }
}

const char *wh_opt_type_name(wh_opt_type t)
{
    return type_name(t);
}

/* Parse a whole string as a signed decimal integer. */
static int parse_int(const char *s, long long *out)
{
    if (!s || !*s) {
        return 0;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || (*s != '-' && (*s < '0' || *s > '9'))) {
        return 0;
    }
    *out = v;
    return 1;
}

/* Parse a whole string as a finite number. */
static int parse_number(const char *s, double *out)
{
    if (!s || !*s || isspace((unsigned char)*s)) {
        return 0;
    }
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v)) {
        return 0;
    }
    *out = v;
    return 1;
}

/* The value brought to type t: a new reference, or NULL when it cannot be. */
static json_t *coerce(wh_opt_type t, json_t *v)
{
    long long i;
    double d;
    const char *s = json_string_value(v);
    switch (t) {
    case WH_OPT_STRING:
        if (json_is_string(v)) {
            return json_incref(v);
        }
        if (json_is_boolean(v)) {
            return json_string(json_is_true(v) ? "true" : "false");
        }
        if (json_is_number(v)) {
            char *text = json_dumps(v, JSON_ENCODE_ANY);
            json_t *out = text ? json_string(text) : NULL;
            free(text);
            return out;
        }
        return NULL;
    case WH_OPT_INT:
        if (json_is_integer(v)) {
            return json_incref(v);
        }
        if (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v)) {
            return json_integer((json_int_t)json_real_value(v));
        }
        return parse_int(s, &i) ? json_integer((json_int_t)i) : NULL;
    case WH_OPT_NUMBER:
        if (json_is_number(v)) {
            return json_incref(v);
        }
        if (parse_int(s, &i)) {
            return json_integer((json_int_t)i);
        }
        return parse_number(s, &d) ? json_real(d) : NULL;
    case WH_OPT_BOOL:
        if (json_is_boolean(v)) {
            return json_incref(v);
        }
        if (s && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
            return json_boolean(strcmp(s, "true") == 0);
        }
        return NULL;
    case WH_OPT_OBJECT: return json_is_object(v) ? json_incref(v) : NULL;
    case WH_OPT_ARRAY: return json_is_array(v) ? json_incref(v) : NULL;
    default: return json_incref(v);
    }
}

int wh_arg_fits(wh_opt_type type, const json_t *v)
{
    json_t *c = coerce(type, (json_t *)v);
    json_decref(c);
    return c != NULL || json_is_null(v);
}

int wh_args_normalize(const wh_option *table, json_t *obj, char *why, size_t whysize)
{
    for (const wh_option *o = table; o && o->name; o++) {
        json_t *v = json_object_get(obj, o->name);
        if (v && json_is_null(v) && o->type != WH_OPT_ANY) {
            json_object_del(obj, o->name); /* nothing there: as if left out */
            v = NULL;
        }
        if (!v) {
            json_t *d = o->def ? json_loads(o->def, JSON_DECODE_ANY, NULL) : NULL;
            if (d) {
                json_object_set_new(obj, o->name, d);
            }
            continue;
        }
        json_t *c = coerce(o->type, v);
        if (!c) {
            /* the value is event data, which is never logged: its kind says enough */
            char got[64];
            if (json_is_string(v)) {
                snprintf(got, sizeof got, "a string of %zu byte%s", json_string_length(v),
                         json_string_length(v) == 1 ? "" : "s");
            } else {
                snprintf(got, sizeof got, "%s",
                         json_is_object(v)   ? "an object"
                         : json_is_array(v)  ? "a list"
                         : json_is_number(v) ? "a number"
                                             : "true or false");
            }
            snprintf(why, whysize, "argument `%s` must be %s, got %s", o->name,
                     type_name(o->type), got);
            return -1;
        }
        if (c != v) {
            json_object_set_new(obj, o->name, c);
        } else {
            json_decref(c);
        }
    }
    return 0;
}

static const wh_option *find_opt(const wh_option *table, const char *name)
{
    for (const wh_option *o = table; o && o->name; o++) {
        if (strcmp(o->name, name) == 0) {
            return o;
        }
    }
    return NULL;
}

static int in_list(const char *const *list, const char *name)
{
    for (size_t i = 0; list && list[i]; i++) {
        if (strcmp(list[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

int wh_options_apply(const wh_option *table, const char *const *extra, json_t *obj,
                     const wh_doc *doc, const char *pointer, json_t *errors)
{
    int problems = 0;
    char ptr[1024];
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        wh_ptr_child(ptr, sizeof ptr, pointer, key);
        const wh_option *o = find_opt(table, key);
        if (!o) {
            if (in_list(extra, key)) {
                continue;
            }
            wh_buf known = {0};
            for (const wh_option *k = table; k && k->name; k++) {
                wh_buf_printf(&known, "%s%s", known.len ? ", " : "", k->name);
            }
            for (size_t i = 0; extra && extra[i]; i++) {
                wh_buf_printf(&known, "%s%s", known.len ? ", " : "", extra[i]);
            }
            wh_doc_error(doc, errors, ptr, "unknown key '%s' (known keys: %s)", key,
                         known.data ? known.data : "none");
            wh_buf_free(&known);
            problems++;
        } else if (!type_ok(o->type, val)) {
            /* the default shows the form wanted: a duration "2s", "host:port", … */
            const char *like = (o->flags & WH_OPT_SECRET) ? NULL : o->def;
            wh_doc_error(doc, errors, ptr, "'%s' must be %s%s%s", key, type_name(o->type),
                         like ? ", like " : "", like ? like : "");
            problems++;
        }
    }
    for (const wh_option *o = table; o && o->name; o++) {
        if (json_object_get(obj, o->name)) {
            continue;
        }
        if (o->flags & WH_OPT_REQUIRED) {
            wh_doc_error(doc, errors, pointer, "missing required key '%s'", o->name);
            problems++;
        } else if (o->def) {
            json_t *d = json_loads(o->def, JSON_DECODE_ANY, NULL);
            if (d) {
                json_object_set_new(obj, o->name, d);
            }
        }
    }
    return problems;
}

/* keys the hub itself reads from every instance (besides `type`) */
static const wh_option common_options[] = {
    {"concurrency", WH_OPT_INT, "16", 0, "calls of this instance in flight at once"},
    {"queue_max", WH_OPT_INT, "1000", 0,
     "calls waiting in memory for a free slot; more wait in the state file"},
    {"timeout_ms", WH_OPT_INT, "30000", 0, "default timeout of one HTTP exchange"},
    {"max_attempts", WH_OPT_INT, "8", 0, "attempts before a call becomes a dead letter"},
    {"insecure_tls", WH_OPT_BOOL, "false", 0,
     "turn off TLS certificate checks for this instance's outgoing calls (warned at start)"},
    {NULL, 0, NULL, 0, NULL},
};
static const char *const common_keys[] = {"type",       "concurrency",  "queue_max",
                                          "timeout_ms", "max_attempts", "insecure_tls", NULL};

/* Whether a secret reference in v was left as written (it could not be resolved):
   the connector would check "${env:X}" itself, so its checks wait for the value. */
static int unresolved_ref(const json_t *v, int depth)
{
    if (depth > 64) {
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        return strstr(s, "${env:") || strstr(s, "${file:");
    }
    const char *k;
    const json_t *x;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x)
        {
            if (unresolved_ref(x, depth + 1)) {
                return 1;
            }
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if (unresolved_ref(x, depth + 1)) {
                return 1;
            }
        }
    }
    return 0;
}

wh_instances *wh_instances_load(const json_t *connectors, const char *connectors_dir,
                                const wh_doc *doc, const char *pointer, json_t *errors)
{
    return wh_instances_load_checked(connectors, connectors_dir, doc, pointer, errors, 0);
}

wh_instances *wh_instances_load_checked(const json_t *connectors, const char *connectors_dir,
                                        const wh_doc *doc, const char *pointer, json_t *errors,
                                        int validate)
{
    wh_instances *set = calloc(1, sizeof *set);
    if (!set) {
        return NULL;
    }
    size_t count = json_object_size(connectors);
    set->v = calloc(count + 1, sizeof *set->v);
    set->plugins = calloc(count + 1, sizeof *set->plugins);
    if (!set->v || !set->plugins) {
        wh_instances_destroy(&set);
        return NULL;
    }
    int problems = 0;
    const char *name;
    json_t *cfg;
    char ptr[1024], tptr[1100];
    json_object_foreach((json_t *)connectors, name, cfg)
    {
        wh_ptr_child(ptr, sizeof ptr, pointer, name);
        if (!wh_name_ok(name)) {
            wh_doc_error(doc, errors, ptr,
                         "instance name '%s' must be 1-64 characters of A-Z a-z 0-9 _ . -", name);
            problems++;
            continue;
        }
        if (!json_is_object(cfg)) {
            wh_doc_error(doc, errors, ptr, "connector '%s' must be a mapping with a 'type'", name);
            problems++;
            continue;
        }
        const char *type = json_string_value(json_object_get(cfg, "type"));
        wh_ptr_child(tptr, sizeof tptr, ptr, "type");
        if (!type) {
            wh_doc_error(doc, errors, json_object_get(cfg, "type") ? tptr : ptr,
                         "connector '%s' needs 'type' (a string naming its plugin)", name);
            problems++;
            continue;
        }
        wh_plugin *plugin = NULL;
        for (size_t i = 0; i < set->nplugins; i++) {
            if (strcmp(set->plugins[i]->type, type) == 0) {
                plugin = set->plugins[i];
            }
        }
        if (!plugin) {
            char err[1024];
            plugin = wh_plugin_load(connectors_dir, type, err, sizeof err);
            if (!plugin) {
                wh_doc_error(doc, errors, tptr, "%s", err);
                problems++;
                continue;
            }
            set->plugins[set->nplugins++] = plugin;
        }
        json_t *copy = json_deep_copy(cfg);
        wh_instance *inst = calloc(1, sizeof *inst);
        if (!copy || !inst || !(inst->name = strdup(name))) {
            json_decref(copy);
            free(inst);
            wh_instances_destroy(&set);
            return NULL;
        }
        inst->plugin = plugin;
        inst->config = copy;
        set->v[set->n++] = inst;
        int before = problems;
        problems += wh_options_apply(plugin->desc.options, common_keys, copy, doc, ptr, errors);
        /* paths are relative to the config file, like the hub's own */
        for (const wh_option *o = plugin->desc.options; o && o->name; o++) {
            const char *v = json_string_value(json_object_get(copy, o->name));
            if ((o->flags & WH_OPT_PATH) && v && v[0] != '/' && doc) {
                char *dir = wh_dirname(wh_doc_file(doc));
                char *full = dir ? wh_path_join(dir, v) : NULL;
                if (full) {
                    json_object_set_new(copy, o->name, json_string(full));
                }
                free(full);
                free(dir);
            }
        }
        /* the hub's own keys: types checked, defaults filled, bounds enforced */
        json_t *own = json_object();
        for (const wh_option *o = common_options; o->name; o++) {
            json_t *v = json_object_get(copy, o->name);
            if (v) {
                json_object_set(own, o->name, v);
            }
        }
        problems += wh_options_apply(common_options, NULL, own, doc, ptr, errors);
        for (const wh_option *o = common_options; o->name; o++) {
            json_t *v = json_object_get(own, o->name);
            char kptr[1200];
            wh_ptr_child(kptr, sizeof kptr, ptr, o->name);
            if (json_is_integer(v) && (json_integer_value(v) < 1 ||
                                       json_integer_value(v) > 86400000)) {
                wh_doc_value_error(doc, errors, kptr, "'%s' must be a positive integer", o->name);
                problems++;
            }
            if (v) {
                json_object_set(copy, o->name, v);
            }
        }
        json_decref(own);
        /* the connector's own checks, for each instance whose keys read: one instance's
         * mistyped key does not hide another's range errors */
        if (validate && problems == before && !unresolved_ref(copy, 0)) {
            problems += wh_instance_validate(inst, doc, ptr, errors);
        }
    }
    if (problems) {
        wh_instances_destroy(&set);
        return NULL;
    }
    return set;
}

int wh_instances_init(wh_instances *set, const wh_services *svc, char *err, size_t errsize)
{
    for (size_t i = 0; i < set->n; i++) {
        wh_instance *inst = set->v[i];
        inst->svc = svc;
        int rc = inst->plugin->desc.init(wh_host_table(), inst, inst->config, &inst->state);
        if (rc != WH_OK) {
            snprintf(err, errsize, "connector '%s' (type %s) failed to start: %s", inst->name,
                     inst->plugin->type, wh_strerror(rc));
            for (size_t j = i; j-- > 0;) {
                set->v[j]->plugin->desc.destroy(set->v[j]->state);
                set->v[j]->inited = 0;
                set->v[j]->state = NULL;
            }
            return rc;
        }
        inst->inited = 1;
        if (json_is_true(json_object_get(inst->config, "insecure_tls"))) {
            wh_warn(inst->name, "insecure_tls is on: outgoing TLS certificates are NOT verified "
                                "for this instance");
        }
    }
    return WH_OK;
}

wh_instance *wh_instances_get(const wh_instances *set, const char *name)
{
    for (size_t i = 0; set && i < set->n; i++) {
        if (strcmp(set->v[i]->name, name) == 0) {
            return set->v[i];
        }
    }
    return NULL;
}

void wh_instances_destroy(wh_instances **pset)
{
    wh_instances *set = pset ? *pset : NULL;
    if (!set) {
        return;
    }
    for (size_t i = set->n; i-- > 0;) {
        wh_instance *inst = set->v[i];
        if (inst->inited) {
            inst->plugin->desc.destroy(inst->state);
        }
        json_decref(inst->config);
        json_decref(inst->warnings);
        free(inst->name);
        free(inst);
    }
    for (size_t i = 0; i < set->nplugins; i++) {
        wh_plugin_destroy(&set->plugins[i]);
    }
    free(set->v);
    free(set->plugins);
    free(set);
    *pset = NULL;
}

void wh_describe(const wh_plugin *p, FILE *out)
{
    const wh_abi_header *h = &p->desc.hdr;
    fprintf(out, "%s %s — %s\n  file: %s\n\nconfig keys:\n", h->name, h->version,
            h->description ? h->description : "", p->path);
    fprintf(out, "  %-22s %s\n", "type", "(required) the connector type");
    for (const wh_option *o = p->desc.options; o && o->name; o++) {
        fprintf(out, "  %-22s %s%s%s%s%s%s\n", o->name,
                (o->flags & WH_OPT_REQUIRED) ? "(required) " : "",
                (o->flags & WH_OPT_SECRET) ? "(secret) " : "",
                o->description ? o->description : "", o->def ? " [default " : "",
                o->def ? ((o->flags & WH_OPT_SECRET) ? "***" : o->def) : "", o->def ? "]" : "");
    }
    fprintf(out, "\noperations:\n");
    if (!p->desc.operations || !p->desc.operations->name) {
        fprintf(out, "  (none)\n");
    }
    for (const wh_operation *op = p->desc.operations; op && op->name; op++) {
        fprintf(out, "  %s%s — %s\n", op->name, (op->flags & WH_OP_POLL) ? " (poll)" : "",
                op->description ? op->description : "");
        for (const wh_option *a = op->args; a && a->name; a++) {
            fprintf(out, "      %-18s %s%s (%s)%s%s%s\n", a->name,
                    (a->flags & WH_OPT_REQUIRED) ? "(required) " : "",
                    a->description ? a->description : "", type_name(a->type),
                    a->def ? " [default " : "", a->def ? a->def : "", a->def ? "]" : "");
        }
    }
    fprintf(out, "\nwebhook: %s\n", p->desc.webhook ? "yes (/hooks/<instance>)" : "no");
}
