/*
 * host.c — the services table every connector receives. Each entry is a thin
 * adapter onto the part that owns the service (gateway for requests, call.c
 * for operations, http_client for HTTP, verify.c for crypto); this file owns
 * no state of its own.
 */
#include "call.h"
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

static void host_log(const wh_instance *inst, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wh_logv(level, inst ? inst->name : "connector", fmt, ap);
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
