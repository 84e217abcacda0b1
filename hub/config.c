/*
 * config.c — reads wirehub.yaml into a wh_config. Every problem in the file is
 * reported (not only the first) as file:line:col, and the hub refuses to
 * start on any of them. Secret references are resolved here and nowhere else;
 * messages name the key or the variable, never a value.
 */
#include "config.h"
#include "bus.h"
#include "log.h"
#include "plugin.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_FILE_MAX (64 * 1024)

const char *wh_config_default_path(void)
{
    const char *env = getenv("WIREHUB_CONFIG");
    return env && *env ? env : "wirehub.yaml";
}

/* "/connectors/gh/secret" → "connectors.gh.secret": the key, as a reader names it. */
static void key_name(const char *pointer, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = pointer && *pointer == '/' ? pointer + 1 : ""; *p && n + 1 < size; p++) {
        char c = *p;
        if (c == '/') {
            c = '.';
        } else if (c == '~' && (p[1] == '0' || p[1] == '1')) {
            c = p[1] == '0' ? '~' : '/';
            p++;
        }
        out[n++] = c;
    }
    out[n] = '\0';
}

/* Resolve the references in one string; returns a new string or NULL (error appended). */
static char *resolve_string(const char *s, const wh_doc *doc, const char *pointer,
                            const char *base_dir, json_t *errors, int *bad)
{
    char key[256];
    key_name(pointer, key, sizeof key);
    wh_buf out = {0};
    const char *p = s;
    while (*p) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            wh_buf_puts(&out, "${");
            p += 3;
            continue;
        }
        if (!(p[0] == '$' && p[1] == '{')) {
            wh_buf_append(&out, p, 1);
            p++;
            continue;
        }
        const char *close = strchr(p, '}');
        if (!close) {
            wh_doc_value_error(doc, errors, pointer, "unterminated '${' reference (write $${ for a literal)");
            *bad = 1;
            break;
        }
        const char *ref = p + 2;
        size_t rlen = (size_t)(close - ref);
        char name[512];
        if (rlen >= sizeof name) {
            wh_doc_value_error(doc, errors, pointer, "secret reference too long");
            *bad = 1;
            break;
        }
        memcpy(name, ref, rlen);
        name[rlen] = '\0';
        if (strncmp(name, "env:", 4) == 0 && name[4]) {
            const char *v = getenv(name + 4);
            if (!v) {
                wh_doc_value_error(doc, errors, pointer,
                                   "`%s`: environment variable %s is not set", key, name + 4);
                *bad = 1;
            } else {
                wh_buf_puts(&out, v);
            }
        } else if (strncmp(name, "file:", 5) == 0 && name[5]) {
            char *path = wh_path_join(base_dir, name + 5);
            size_t len = 0;
            char *content = path ? wh_read_file(path, SECRET_FILE_MAX, &len) : NULL;
            if (!content) {
                wh_doc_value_error(doc, errors, pointer, "`%s`: cannot read secret file %s: %s",
                                   key, path ? path : name + 5, strerror(errno));
                *bad = 1;
            } else {
                if (len && content[len - 1] == '\n') {
                    len--;
                }
                if (len && content[len - 1] == '\r') {
                    len--;
                }
                wh_buf_append(&out, content, len);
                free(content);
            }
            free(path);
        } else {
            wh_doc_value_error(doc, errors, pointer,
                               "unknown reference '${%s}': use ${env:NAME} or ${file:PATH}", name);
            *bad = 1;
        }
        p = close + 1;
    }
    if (*bad) {
        wh_buf_free(&out);
        return NULL;
    }
    if (!out.data) {
        wh_buf_append(&out, "", 0);
    }
    return out.data;
}

int wh_config_resolve_secrets(json_t *node, const wh_doc *doc, const char *pointer,
                              const char *base_dir, json_t *errors)
{
    int problems = 0;
    if (json_is_object(node)) {
        const char *key;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(node, tmp, key, v)
        {
            char *child = wh_ptr_child_dup(pointer, key);
            if (json_is_string(v)) {
                const char *s = json_string_value(v);
                if (strchr(s, '$')) {
                    int bad = 0;
                    char *r = resolve_string(s, doc, child, base_dir, errors, &bad);
                    if (r) {
                        json_object_set_new(node, key, json_string_nocheck(r));
                        free(r);
                    }
                    problems += bad;
                }
            } else {
                problems += wh_config_resolve_secrets(v, doc, child, base_dir, errors);
            }
            free(child);
        }
    } else if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v)
        {
            char *child = wh_ptr_index_dup(pointer, i);
            if (json_is_string(v) && strchr(json_string_value(v), '$')) {
                int bad = 0;
                char *r = resolve_string(json_string_value(v), doc, child, base_dir, errors, &bad);
                if (r) {
                    json_array_set_new(node, i, json_string_nocheck(r));
                    free(r);
                }
                problems += bad;
            } else if (!json_is_string(v)) {
                problems += wh_config_resolve_secrets(v, doc, child, base_dir, errors);
            }
            free(child);
        }
    }
    return problems;
}

static const wh_option top_options[] = {
    {"listen", WH_OPT_STRING, "\"127.0.0.1:8080\"", 0, "host:port the gateway listens on"},
    {"state", WH_OPT_STRING, "\"wirehub.db\"", 0, "the SQLite state file"},
    {"state_sync", WH_OPT_STRING, "\"full\"", 0,
     "full: a commit survives power loss; normal: it survives a crash of wirehub (faster)"},
    {"rules", WH_OPT_STRING, "\"rules\"", 0, "directory of rule files"},
    {"connectors_dir", WH_OPT_STRING, NULL, 0, "directory of connector plugins"},
    {"log_level", WH_OPT_STRING, "\"info\"", 0, "error, warn, info or debug"},
    {"bus", WH_OPT_OBJECT, NULL, 0, "bus endpoints for other processes"},
    {"gateway", WH_OPT_OBJECT, NULL, 0, "HTTP limits"},
    {"connectors", WH_OPT_OBJECT, "{}", 0, "named connector instances"},
    {"api", WH_OPT_OBJECT, NULL, 0, "the replies API for clients that poll (off unless set)"},
    {NULL, 0, NULL, 0, NULL},
};

static const wh_option api_options[] = {
    {"tokens", WH_OPT_OBJECT, NULL, WH_OPT_REQUIRED, "name: {token, keys}"},
    {NULL, 0, NULL, 0, NULL},
};

static const wh_option token_options[] = {
    {"token", WH_OPT_STRING, NULL, WH_OPT_REQUIRED | WH_OPT_SECRET, "the bearer token"},
    {"keys", WH_OPT_ARRAY, NULL, WH_OPT_REQUIRED, "key prefixes this token may read"},
    {NULL, 0, NULL, 0, NULL},
};

static int check_api(wh_config *cfg, json_t *api, json_t *errors)
{
    int problems = wh_options_apply(api_options, NULL, api, cfg->doc, "/api", errors);
    json_t *tokens = json_object_get(api, "tokens");
    const char *name;
    json_t *t;
    json_object_foreach(json_is_object(tokens) ? tokens : NULL, name, t)
    {
        char *ptr = wh_ptr_child_dup("/api/tokens", name);
        if (!json_is_object(t)) {
            wh_doc_value_error(cfg->doc, errors, ptr, "token '%s' must be a mapping", name);
            problems++;
        } else {
            problems += wh_options_apply(token_options, NULL, t, cfg->doc, ptr, errors);
            const json_t *tok = json_object_get(t, "token");
            if (json_is_string(tok) && json_string_length(tok) < 16) {
                char *tp = wh_ptr_child_dup(ptr, "token");
                wh_doc_value_error(cfg->doc, errors, tp,
                                   "token '%s' is shorter than 16 characters", name);
                free(tp);
                problems++;
            }
            size_t i;
            json_t *k;
            json_array_foreach(json_object_get(t, "keys"), i, k)
            {
                if (!json_is_string(k)) {
                    char *kp = wh_ptr_child_dup(ptr, "keys");
                    wh_doc_value_error(cfg->doc, errors, kp, "keys must be strings");
                    free(kp);
                    problems++;
                    break;
                }
            }
        }
        free(ptr);
    }
    if (!problems) {
        cfg->api_tokens = tokens;
    }
    return problems;
}

static const wh_option bus_options[] = {
    {"bind", WH_OPT_ANY, NULL, 0, "endpoint or list of endpoints (ipc:// or tcp://)"},
    {NULL, 0, NULL, 0, NULL},
};

static const wh_option gateway_options[] = {
    {"max_body", WH_OPT_INT, "1048576", 0, "largest request body in bytes (413 above)"},
    {"timeout", WH_OPT_STRING, "\"10s\"", 0, "drop a connection idle or slow this long"},
    {"max_connections", WH_OPT_INT, "4096", 0, "simultaneous connections"},
    {"max_waiting", WH_OPT_INT, "1024", 0, "requests held for an answer (429 above)"},
    {"threads", WH_OPT_INT, "2", 0, "HTTP threads"},
    {"max_rule_lag", WH_OPT_STRING, "\"2s\"", 0,
     "refuse new events (503 busy) while rules are this far behind; 0s: never"},
    {NULL, 0, NULL, 0, NULL},
};

static int parse_listen(wh_config *cfg, const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon) {
        return -1;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port < 0 || port > 65535) {
        return -1;
    }
    size_t hlen = (size_t)(colon - s);
    const char *h = s;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0) {
        h = "0.0.0.0";
        hlen = 7;
    }
    if (hlen >= sizeof cfg->listen_host) {
        return -1;
    }
    memcpy(cfg->listen_host, h, hlen);
    cfg->listen_host[hlen] = '\0';
    cfg->listen_port = (int)port;
    /* numeric only, as the gateway binds it: a host name is not looked up */
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, cfg->listen_host, addr) != 1 &&
        inet_pton(AF_INET6, cfg->listen_host, addr) != 1) {
        return -1;
    }
    return 0;
}

static int positive(const json_t *obj, const char *key, long long max, const wh_doc *doc,
                    const char *pointer, json_t *errors, long long *out)
{
    const json_t *j = json_object_get(obj, key);
    if (!json_is_integer(j)) {
        return 1; /* its type was reported by the options check */
    }
    json_int_t v = json_integer_value(j);
    if (v < 1 || v > max) {
        char *p = wh_ptr_child_dup(pointer, key);
        wh_doc_value_error(doc, errors, p, "'%s' must be between 1 and %lld", key, max);
        free(p);
        return 1;
    }
    *out = v;
    return 0;
}

static wh_config *load(const char *path, json_t *errors, int need_secrets);

wh_config *wh_config_load(const char *path, json_t *errors)
{
    size_t from = json_array_size(errors);
    wh_config *cfg = load(path, errors, 1);
    wh_errors_sort(errors, from);
    return cfg;
}

wh_config *wh_config_load_unresolved(const char *path, json_t *errors)
{
    size_t from = json_array_size(errors);
    wh_config *cfg = load(path, errors, 0);
    wh_errors_sort(errors, from);
    return cfg;
}

/*
 * Check one bus.bind endpoint and add it, as the hub binds it, to cfg->bus_bind:
 * a relative ipc path is made relative to the config's folder (like every path
 * in the file), and a tcp host must be numeric or a wildcard (ZeroMQ cannot
 * bind a name). Returns the number of problems reported.
 */
static int add_bus_endpoint(wh_config *cfg, json_t *errors, const char *ptr, const json_t *v,
                            int need_secrets)
{
    const char *ep = json_string_value(v);
    if (!ep) {
        wh_doc_value_error(cfg->doc, errors, ptr, "bus endpoints must be strings");
        return 1;
    }
    if (strstr(ep, "${")) {
        /* a reference that did not resolve: reported by the resolution already */
        if (need_secrets) {
            return 0;
        }
        wh_doc_value_error(cfg->doc, errors, ptr,
                           "'bind' refers to %s, which cannot be resolved here: the bus "
                           "endpoint is needed to reach the hub",
                           ep);
        return 1;
    }
    char full[WH_EP_MAX + 1024];
    snprintf(full, sizeof full, "%s", ep);
    if (strncmp(ep, "ipc://", 6) == 0 && ep[6] != '/' && ep[6] != '@' && ep[6]) {
        char *abs = realpath(cfg->dir, NULL);
        snprintf(full, sizeof full, "ipc://%s/%s", abs ? abs : cfg->dir, ep + 6);
        free(abs);
    }
    if (strncmp(ep, "tcp://", 6) == 0) {
        const char *host = ep + 6, *colon = strrchr(host, ':');
        size_t n = colon ? (size_t)(colon - host) : strlen(host);
        char h[128] = "";
        if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
            host++;
            n -= 2;
        }
        if (n < sizeof h) {
            memcpy(h, host, n);
            h[n] = '\0';
        }
        unsigned char buf[16];
        if (strcmp(h, "*") != 0 && inet_pton(AF_INET, h, buf) != 1 &&
            inet_pton(AF_INET6, h, buf) != 1) {
            wh_doc_value_error(cfg->doc, errors, ptr,
                               "a tcp bus endpoint needs a numeric host (127.0.0.1, [::1]) or * "
                               "for every interface, not '%s'",
                               h);
            return 1;
        }
    }
    wh_bus_ends ends;
    char why[300];
    if (wh_bus_ends_for(full, &ends, why, sizeof why) != 0) {
        wh_doc_value_error(cfg->doc, errors, ptr, "%s", why);
        return 1;
    }
    json_array_append_new(cfg->bus_bind, json_string(full));
    return 0;
}

static wh_config *load(const char *path, json_t *errors, int need_secrets)
{
    wh_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        return NULL;
    }
    int problems = 0;
    cfg->path = strdup(path);
    cfg->dir = wh_dirname(path);
    cfg->doc = wh_doc_load(path, errors);
    if (!cfg->path || !cfg->dir || !cfg->doc) {
        goto fail;
    }
    json_t *root = wh_doc_root(cfg->doc);
    if (!json_is_object(root)) {
        wh_doc_error(cfg->doc, errors, "", "the config must be a mapping of keys");
        goto fail;
    }
    /* Keep going after a problem so that one run reports every problem in the file;
     * a value of the wrong type reads as absent below. */
    problems += wh_options_apply(top_options, NULL, root, cfg->doc, "", errors);
    int unresolved = 0; /* a connector would see "${env:…}" as written: no validation then */
    if (need_secrets) {
        unresolved = wh_config_resolve_secrets(root, cfg->doc, "", cfg->dir, errors);
        problems += unresolved;
    } else {
        json_t *ignored = json_array(); /* what cannot be resolved stays as written */
        wh_config_resolve_secrets(root, cfg->doc, "", cfg->dir, ignored);
        json_decref(ignored);
    }
    const char *listen = json_string_value(json_object_get(root, "listen"));
    if (listen && parse_listen(cfg, listen) != 0) {
        wh_doc_value_error(cfg->doc, errors, "/listen",
                           "'listen' must be host:port with a numeric host (e.g. 127.0.0.1:8080, "
                           "[::1]:8080, or :8080 for every interface)");
        problems++;
    }
    const char *state = json_string_value(json_object_get(root, "state"));
    const char *rules = json_string_value(json_object_get(root, "rules"));
    cfg->state_path = wh_path_follow_link(wh_path_join(cfg->dir, state ? state : "wirehub.db"));
    cfg->rules_dir = wh_path_join(cfg->dir, rules ? rules : "rules");
    const char *cdir = json_string_value(json_object_get(root, "connectors_dir"));
    cfg->connectors_dir = cdir ? wh_path_join(cfg->dir, cdir) : strdup(wh_default_connectors_dir());
    const char *sync = json_string_value(json_object_get(root, "state_sync"));
    cfg->state_sync_full = 1;
    if (sync && strcmp(sync, "normal") == 0) {
        cfg->state_sync_full = 0;
    } else if (sync && strcmp(sync, "full") != 0) {
        wh_doc_value_error(cfg->doc, errors, "/state_sync", "'state_sync' must be full or normal");
        problems++;
    }
    const char *level = json_string_value(json_object_get(root, "log_level"));
    cfg->log_level = level ? wh_log_parse_level(level) : WH_LOG_INFO;
    if (cfg->log_level < 0) {
        wh_doc_value_error(cfg->doc, errors, "/log_level",
                           "'log_level' must be error, warn, info or debug");
        problems++;
    }

    /* bus */
    json_t *bus = json_object_get(root, "bus");
    if (!json_is_object(bus)) {
        bus = NULL; /* a wrong type was reported above */
    }
    cfg->bus_bind = json_array();
    if (bus) {
        problems += wh_options_apply(bus_options, NULL, bus, cfg->doc, "/bus", errors);
        json_t *bind = json_object_get(bus, "bind");
        if (json_is_string(bind)) {
            problems += add_bus_endpoint(cfg, errors, "/bus/bind", bind, need_secrets);
        } else if (json_is_array(bind)) {
            size_t i;
            json_t *ep;
            json_array_foreach(bind, i, ep)
            {
                char p[64];
                wh_ptr_index(p, sizeof p, "/bus/bind", i);
                problems += add_bus_endpoint(cfg, errors, p, ep, need_secrets);
            }
        } else if (bind) {
            wh_doc_value_error(cfg->doc, errors, "/bus/bind",
                               "'bind' must be an endpoint or a list of endpoints");
            problems++;
        }
    } else {
        /* a private ipc endpoint beside the config, so `wirehub tail` works out of the box */
        char ep[WH_EP_MAX];
        char *abs = realpath(cfg->dir, NULL);
        snprintf(ep, sizeof ep, "ipc://%s/wirehub.bus", abs ? abs : cfg->dir);
        wh_bus_ends ends;
        char why[300];
        if (wh_bus_ends_for(ep, &ends, why, sizeof why) == 0) {
            json_array_append_new(cfg->bus_bind, json_string(ep));
        }
        free(abs);
    }

    /* gateway limits */
    json_t *gw = json_object_get(root, "gateway");
    if (!json_is_object(gw)) {
        gw = json_object();
        json_object_set_new(root, "gateway", gw);
    }
    problems += wh_options_apply(gateway_options, NULL, gw, cfg->doc, "/gateway", errors);
    long long v;
    if (!positive(gw, "max_body", 1LL << 30, cfg->doc, "/gateway", errors, &v)) {
        cfg->gateway.max_body = (size_t)v;
    } else {
        problems++;
    }
    if (!positive(gw, "max_connections", 1000000, cfg->doc, "/gateway", errors, &v)) {
        cfg->gateway.max_connections = (unsigned)v;
    } else {
        problems++;
    }
    if (!positive(gw, "max_waiting", 1000000, cfg->doc, "/gateway", errors, &v)) {
        cfg->gateway.max_pending = (unsigned)v;
    } else {
        problems++;
    }
    if (!positive(gw, "threads", 64, cfg->doc, "/gateway", errors, &v)) {
        cfg->gateway.threads = (unsigned)v;
    } else {
        problems++;
    }
    const json_t *timeout = json_object_get(gw, "timeout");
    int64_t t = wh_parse_duration_ms(json_string_value(timeout));
    if (json_is_string(timeout) && (t < 1000 || t > 3600000)) {
        wh_doc_value_error(cfg->doc, errors, "/gateway/timeout",
                           "'timeout' must be a duration from 1s to 1h (e.g. 10s)");
        problems++;
    } else if (json_is_string(timeout)) {
        cfg->gateway.timeout_s = (unsigned)(t / 1000);
    }
    const json_t *lag = json_object_get(gw, "max_rule_lag");
    int64_t lag_ms = wh_parse_duration_ms(json_string_value(lag));
    if (json_is_string(lag) && (lag_ms < 0 || lag_ms > 3600000)) {
        wh_doc_value_error(cfg->doc, errors, "/gateway/max_rule_lag",
                           "'max_rule_lag' must be a duration up to 1h (e.g. 2s; 0s: never)");
        problems++;
    } else if (json_is_string(lag)) {
        cfg->gateway.max_rule_lag_ms = lag_ms;
    }
    cfg->gateway.host = cfg->listen_host;
    cfg->gateway.port = cfg->listen_port;

    json_t *api = json_object_get(root, "api");
    if (json_is_object(api)) {
        problems += check_api(cfg, api, errors);
    }

    /* connectors */
    json_t *connectors = json_object_get(root, "connectors");
    /* with the connectors' own checks (ranges, pairs of keys, files), before anything
     * starts: `wirehub check` reports them, and `run` stops here with exit 2 */
    cfg->instances = wh_instances_load_checked(json_is_object(connectors) ? connectors : NULL,
                                               cfg->connectors_dir, cfg->doc, "/connectors",
                                               errors, need_secrets);
    if (!cfg->instances) {
        problems++;
    }
    if (problems || !cfg->state_path || !cfg->rules_dir || !cfg->connectors_dir) {
        goto fail;
    }
    return cfg;
fail:
    wh_config_destroy(&cfg);
    return NULL;
}

void wh_config_destroy(wh_config **pcfg)
{
    wh_config *cfg = pcfg ? *pcfg : NULL;
    if (!cfg) {
        return;
    }
    wh_instances_destroy(&cfg->instances);
    json_decref(cfg->bus_bind);
    wh_doc_destroy(&cfg->doc);
    free(cfg->path);
    free(cfg->dir);
    free(cfg->state_path);
    free(cfg->rules_dir);
    free(cfg->connectors_dir);
    free(cfg);
    *pcfg = NULL;
}
