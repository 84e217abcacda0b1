/*
 * host.c — the services table every connector receives. Each entry is a thin
 * adapter onto the part that owns the service (gateway for requests, call.c
 * for operations, http_client for HTTP, verify.c for crypto); this file owns
 * no state of its own.
 */
#include "call.h"
#include "doc.h"
#include "envelope.h"
#include "gateway.h"
#include "http_client.h"
#include "instance.h"
#include "log.h"
#include "match.h"
#include "util.h"
#include "verify.h"
#include "bus.h"

#include <stdio.h>
#include <string.h>

/* While wh_instances_validate() runs init() on this thread: where its errors go. */
typedef struct capture {
    const wh_doc *doc;
    const char *pointer; /* the instance: /connectors/<name> */
    json_t *errors;
    int count;
    json_t *warnings; /* positioned like errors, "warning: " before the text */
} capture;
static _Thread_local capture *tls_capture;

/*
 * A connector's error while its config is validated becomes a config error
 * positioned in the file: at the key when the message names one the way the
 * bundled connectors do ("config: `key` …"), else at the instance.
 */
static void captured(capture *c, const wh_instance *inst, const char *msg, int warning)
{
    const char *text = strncmp(msg, "config: ", 8) == 0 ? msg + 8 : msg;
    json_t *into = warning ? c->warnings : c->errors;
    const char *label = warning ? "warning: " : "";
    const char *name = inst ? inst->name : "?";
    const char *end = text[0] == '`' ? strchr(text + 1, '`') : NULL;
    if (end && end - text - 1 < 128) {
        char key[128], child[512];
        memcpy(key, text + 1, (size_t)(end - text - 1));
        key[end - text - 1] = '\0';
        wh_ptr_child(child, sizeof child, c->pointer, key);
        /* at its value (or, for a key the file does not have, at the instance) */
        wh_doc_value_error(c->doc, into, child, "%sconnector '%s': %s", label, name, text);
    } else {
        wh_doc_error(c->doc, into, c->pointer, "%sconnector '%s': %s", label, name, text);
    }
    c->count += !warning;
}

static void host_log(const wh_instance *inst, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (tls_capture && (level == WH_LOG_ERROR || level == WH_LOG_WARN)) {
        char msg[1024];
        vsnprintf(msg, sizeof msg, fmt, ap);
        captured(tls_capture, inst, msg, level == WH_LOG_WARN);
    } else if (!tls_capture) {
        wh_logv(level, inst ? inst->name : "connector", fmt, ap);
    }
    va_end(ap);
}


static const char *host_instance_name(const wh_instance *inst)
{
    return inst->name;
}

static int64_t host_now_ms(const wh_instance *inst)
{
    if (inst && inst->svc && inst->svc->now_ms) {
        return inst->svc->now_ms();
    }
    return wh_now_ms();
}

static int host_publish(wh_instance *inst, const char *kind, json_t *data)
{
    if (!inst->svc || !inst->svc->pub) {
        return WH_ERR_STATE;
    }
    if (!wh_name_ok(kind)) {
        return WH_ERR_INVALID;
    }
    if (wh_json_readable(data) != 0) { /* NULs are replaced; too deep could not be read back */
        wh_warn(inst->name, "an event of kind %s nests more than %d levels: not published", kind,
                WH_JSON_DEPTH_MAX);
        return WH_ERR_INVALID;
    }
    json_incref(data);
    json_t *env = wh_env_new(inst->name, kind, data);
    if (!env) {
        json_decref(data);
        return WH_ERR_NOMEM;
    }
    char topic[WH_TOPIC_MAX];
    wh_topic_in(topic, sizeof topic, inst->name, kind);
    int rc = wh_pub_send(inst->svc->pub, topic, env);
    json_decref(env);
    if (rc != 0) {
        return WH_ERR_IO;
    }
    json_decref(data); /* taken on success */
    return WH_OK;
}

static int host_http(wh_instance *inst, const wh_http_request *req, wh_http_done done,
                     void *user)
{
    if (!inst->svc || !inst->svc->http) {
        return WH_ERR_STATE;
    }
    int insecure = json_is_true(json_object_get(inst->config, "insecure_tls"));
    if (req && req->timeout_ms <= 0) {
        /* the instance's `timeout_ms` is the default for its exchanges */
        wh_http_request copy = *req;
        copy.timeout_ms = (long)json_integer_value(json_object_get(inst->config, "timeout_ms"));
        return wh_http_submit_ex(inst->svc->http, &copy, insecure, done, user);
    }
    return wh_http_submit_ex(inst->svc->http, req, insecure, done, user);
}

static int host_hmac(const char *digest, const void *key, size_t key_len, const void *msg,
                     size_t msg_len, unsigned char *out, size_t *out_len)
{
    return wh_hmac(digest, key, key_len, msg, msg_len, out, out_len);
}

static const json_t *host_json_path(const json_t *root, const char *path)
{
    return wh_json_path(root, path);
}

static long host_retry_after(const wh_instance *inst, const char *value)
{
    return wh_retry_after_parse(value, host_now_ms(inst));
}

static int host_defer(wh_instance *inst, long delay_ms, void (*fn)(void *), void *user)
{
    if (!inst->svc || !inst->svc->http || !fn) {
        return WH_ERR_STATE;
    }
    return wh_http_post(inst->svc->http, delay_ms, fn, user);
}

static const wh_host table = {
    .struct_size = sizeof(wh_host),
    .abi_minor = WH_ABI_MINOR,
    .log = host_log,
    .instance_name = host_instance_name,
    .now_ms = host_now_ms,
    .publish = host_publish,
    .req_method = wh_req_method,
    .req_path = wh_req_path,
    .req_header = wh_req_header,
    .req_query = wh_req_query,
    .req_body = wh_req_body,
    .req_content_type = wh_req_content_type,
    .req_headers = wh_req_headers,
    .req_remote = wh_req_remote,
    .emit = wh_wh_emit,
    .reject = wh_wh_reject,
    .answer = wh_wh_answer,
    .wait = wh_wh_wait,
    .webhook_done = wh_wh_done,
    .reply = wh_reply_set,
    .reply_header = wh_reply_header,
    .call_key = wh_call_key,
    .call_cursor = wh_call_cursor,
    .call_attempt = wh_call_attempt,
    .complete = wh_call_complete,
    .http = host_http,
    .hmac = host_hmac,
    .ct_equal = wh_ct_equal,
    .form_decode = wh_form_decode,
    .json_path = host_json_path,
    .retry_after_ms = host_retry_after,
    .req_queries = wh_req_queries,
    .defer = host_defer,
    .dedupe = wh_wh_dedupe,
};

const wh_host *wh_host_table(void)
{
    return &table;
}

int wh_instance_validate(wh_instance *inst, const wh_doc *doc, const char *pointer,
                         json_t *errors)
{
    json_t *said = json_array(); /* what init() logged as errors, positioned */
    json_decref(inst->warnings);
    inst->warnings = json_array();
    capture c = {doc, pointer, said, 0, inst->warnings};
    tls_capture = &c;
    void *state = NULL;
    int rc = inst->plugin->desc.init(&table, inst, inst->config, &state);
    if (rc == WH_OK) {
        inst->plugin->desc.destroy(state);
    }
    tls_capture = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(said, i, e)
    {
        if (rc != WH_OK) {
            json_array_append(errors, e);
        } else {
            wh_error(inst->name, "%s", json_string_value(e)); /* logged, yet accepted */
        }
    }
    json_decref(said);
    if (rc != WH_OK && c.count == 0) {
        wh_doc_error(doc, errors, pointer, "connector '%s' (type %s) refused its configuration: %s",
                     inst->name, inst->plugin->type, wh_strerror(rc));
        c.count++;
    }
    return rc == WH_OK ? 0 : c.count;
}
