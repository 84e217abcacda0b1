/*
 * test_webhook.c — the real webhook.so, loaded with dlopen and driven through a
 * fake wh_host table: signature checks (GitHub's published vector), kinds,
 * body decoding, header filtering, and the `request` operation's encodings and
 * outcome mapping against canned responses. No network, no sleeps.
 */
#include "testlib.h"
#include "util.h"
#include "verify.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <strings.h>

/* ------------------------------------------------------------------------ */
/* The fake host                                                             */

struct wh_instance {
    const char *name;
};

struct wh_request {
    const char *method, *path, *ctype, *body;
    size_t body_len;
    json_t *headers; /* lower-case name -> string */
};

struct wh_webhook {
    int emits, rejects;
    char kind[128];
    json_t *data;
    int status;
    char error[64], detail[512];
};

struct wh_call {
    const char *key;
    int completes;
    wh_outcome outcome;
    json_t *result;
    long retry_after;
    char error[256];
};

static int64_t g_now = 784111777000LL - 60000; /* 1994-11-06T08:48:37Z */
static char g_log[1024];
static int g_warns, g_errors;
static int g_emit_rc;

static struct {
    int calls;
    int fail_rc; /* returned by http() when non-zero */
    char method[40], url[512];
    json_t *headers; /* array of "Name: value" */
    char *body;
    size_t body_len;
    long timeout_ms;
    wh_http_done done;
    void *user;
} g_http;

static void f_log(const wh_instance *inst, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_log, sizeof g_log, fmt, ap);
    va_end(ap);
    g_warns += level == WH_LOG_WARN;
    g_errors += level == WH_LOG_ERROR;
}

static const char *f_instance_name(const wh_instance *inst)
{
    return inst->name;
}

static int64_t f_now_ms(const wh_instance *inst)
{
    return g_now;
}

static int f_publish(wh_instance *inst, const char *kind, json_t *data)
{
    return WH_ERR_UNSUPPORTED;
}

static const char *f_req_method(const wh_request *r)
{
    return r->method;
}

static const char *f_req_path(const wh_request *r)
{
    return r->path;
}

static const char *f_req_header(const wh_request *r, const char *name)
{
    char lower[256];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof lower; i++) {
        lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    }
    lower[i] = '\0';
    return json_string_value(json_object_get(r->headers, lower));
}

static const char *f_req_query(const wh_request *r, const char *name)
{
    return NULL;
}

static const char *f_req_body(const wh_request *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

static const char *f_req_content_type(const wh_request *r)
{
    return r->ctype;
}

static const json_t *f_req_headers(const wh_request *r)
{
    return r->headers;
}

static const char *f_req_remote(const wh_request *r)
{
    return "127.0.0.1";
}

static int f_emit(wh_webhook *wh, const char *kind, json_t *data)
{
    if (g_emit_rc) {
        return g_emit_rc;
    }
    wh->emits++;
    snprintf(wh->kind, sizeof wh->kind, "%s", kind);
    json_decref(wh->data);
    wh->data = data;
    return WH_OK;
}

static int f_reject(wh_webhook *wh, int status, const char *error, const char *detail)
{
    wh->rejects++;
    wh->status = status;
    snprintf(wh->error, sizeof wh->error, "%s", error ? error : "");
    snprintf(wh->detail, sizeof wh->detail, "%s", detail ? detail : "");
    return WH_OK;
}

static int f_answer(wh_webhook *wh, int status, const char *ct, const char *body, size_t len)
{
    return WH_ERR_UNSUPPORTED;
}

static int f_wait(wh_webhook *wh, long deadline_ms, const json_t *fallback)
{
    return WH_ERR_UNSUPPORTED;
}

static void f_webhook_done(wh_webhook *wh) {}

static int f_reply(wh_reply *out, int status, const char *ct, const char *body, size_t len)
{
    return WH_ERR_UNSUPPORTED;
}

static int f_reply_header(wh_reply *out, const char *name, const char *value)
{
    return WH_ERR_UNSUPPORTED;
}

static const char *f_call_key(const wh_call *call)
{
    return call->key;
}

static const json_t *f_call_cursor(const wh_call *call)
{
    return NULL;
}

static int f_call_attempt(const wh_call *call)
{
    return 1;
}

static int f_complete(wh_call *call, wh_outcome outcome, json_t *result, long retry_after_ms,
                      const char *error)
{
    call->completes++;
    call->outcome = outcome;
    json_decref(call->result);
    call->result = result;
    call->retry_after = retry_after_ms;
    snprintf(call->error, sizeof call->error, "%s", error ? error : "");
    return WH_OK;
}

static int f_http(wh_instance *inst, const wh_http_request *req, wh_http_done done, void *user)
{
    if (g_http.fail_rc) {
        return g_http.fail_rc;
    }
    g_http.calls++;
    snprintf(g_http.method, sizeof g_http.method, "%s", req->method ? req->method : "GET");
    snprintf(g_http.url, sizeof g_http.url, "%s", req->url);
    json_decref(g_http.headers);
    g_http.headers = json_array();
    for (const char *const *h = req->headers; h && *h; h++) {
        json_array_append_new(g_http.headers, json_string(*h));
    }
    free(g_http.body);
    g_http.body = NULL;
    g_http.body_len = req->body_len;
    if (req->body) {
        g_http.body = malloc(req->body_len + 1);
        memcpy(g_http.body, req->body, req->body_len);
        g_http.body[req->body_len] = '\0';
    }
    g_http.timeout_ms = req->timeout_ms;
    g_http.done = done;
    g_http.user = user;
    return WH_OK;
}

static long f_retry_after_ms(const wh_instance *inst, const char *value)
{
    return wh_retry_after_parse(value, g_now);
}

static const wh_host g_host = {
    .struct_size = sizeof(wh_host),
    .abi_minor = WH_ABI_MINOR,
    .log = f_log,
    .instance_name = f_instance_name,
    .now_ms = f_now_ms,
    .publish = f_publish,
    .req_method = f_req_method,
    .req_path = f_req_path,
    .req_header = f_req_header,
    .req_query = f_req_query,
    .req_body = f_req_body,
    .req_content_type = f_req_content_type,
    .req_headers = f_req_headers,
    .req_remote = f_req_remote,
    .emit = f_emit,
    .reject = f_reject,
    .answer = f_answer,
    .wait = f_wait,
    .webhook_done = f_webhook_done,
    .reply = f_reply,
    .reply_header = f_reply_header,
    .call_key = f_call_key,
    .call_cursor = f_call_cursor,
    .call_attempt = f_call_attempt,
    .complete = f_complete,
    .http = f_http,
    .hmac = wh_hmac,
    .ct_equal = wh_ct_equal,
    .form_decode = wh_form_decode,
    .json_path = NULL,
    .retry_after_ms = f_retry_after_ms,
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static const wh_connector *g_desc;
static wh_instance g_inst = {"hooks"};

/* The config as the host would pass it: `given` plus the options' defaults. */
static json_t *with_defaults(const char *given)
{
    json_t *cfg = json_loads(given, 0, NULL);
    for (const wh_option *o = g_desc->options; o && o->name; o++) {
        if (o->def && !json_object_get(cfg, o->name)) {
            json_object_set_new(cfg, o->name, json_loads(o->def, JSON_DECODE_ANY, NULL));
        }
    }
    return cfg;
}

static void *instance(const char *config)
{
    json_t *cfg = with_defaults(config);
    void *state = NULL;
    int rc = g_desc->init(&g_host, &g_inst, cfg, &state);
    json_decref(cfg);
    CHECK_INT(rc, WH_OK);
    return state;
}

static int init_rc(const char *config)
{
    json_t *cfg = with_defaults(config);
    void *state = NULL;
    int rc = g_desc->init(&g_host, &g_inst, cfg, &state);
    json_decref(cfg);
    if (rc == WH_OK) {
        g_desc->destroy(state);
    }
    return rc;
}

/* A request: headers given as "name", "value", … pairs ending with NULL. */
static wh_request make_req(const char *path, const char *ctype, const char *body, ...)
{
    wh_request r = {"POST", path, ctype, body, body ? strlen(body) : 0, json_object()};
    va_list ap;
    va_start(ap, body);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        json_object_set_new(r.headers, name, json_string(va_arg(ap, const char *)));
    }
    va_end(ap);
    if (ctype) {
        json_object_set_new(r.headers, "content-type", json_string(ctype));
    }
    return r;
}

static void clear_wh(wh_webhook *wh)
{
    json_decref(wh->data);
    memset(wh, 0, sizeof *wh);
}

/* Run webhook() on a request and free the request. */
static int run(void *state, wh_request r, wh_webhook *wh)
{
    clear_wh(wh);
    int rc = g_desc->webhook(state, &r, wh);
    json_decref(r.headers);
    return rc;
}

static const char *sig_of(const char *secret, const char *body, char *out)
{
    unsigned char mac[WH_HMAC_MAX];
    size_t n = 0;
    wh_hmac("sha256", secret, strlen(secret), body, strlen(body), mac, &n);
    strcpy(out, "sha256=");
    wh_hex(mac, n, out + 7);
    return out;
}

static const json_t *at(const json_t *root, const char *a, const char *b)
{
    const json_t *v = json_object_get(root, a);
    return b ? json_object_get(v, b) : v;
}

/* ------------------------------------------------------------------------ */
/* Descriptor and init                                                       */

static void test_descriptor(void)
{
    CHECK_INT(g_desc->hdr.abi_major, WH_ABI_MAJOR);
    CHECK_INT(g_desc->hdr.struct_size, sizeof(wh_connector));
    CHECK_STR(g_desc->hdr.name, "webhook");
    CHECK(g_desc->webhook != NULL);
    CHECK(g_desc->respond == NULL);
    int secret_flagged = 0, noptions = 0;
    for (const wh_option *o = g_desc->options; o->name; o++) {
        noptions++;
        if (strcmp(o->name, "secret") == 0) {
            secret_flagged = (o->flags & WH_OPT_SECRET) && o->def == NULL;
        }
        if (o->def) {
            json_t *d = json_loads(o->def, JSON_DECODE_ANY, NULL);
            CHECK(d != NULL);
            json_decref(d);
        }
    }
    CHECK_INT(noptions, 7);
    CHECK(secret_flagged);
    CHECK_STR(g_desc->operations[0].name, "request");
    CHECK_STR(g_desc->operations[1].name, "poll");
    CHECK((g_desc->operations[1].flags & WH_OP_POLL) != 0);
    CHECK(g_desc->operations[2].name == NULL);
    int url_required = 0;
    for (const wh_option *a = g_desc->operations[0].args; a && a->name; a++) {
        if (strcmp(a->name, "url") == 0) {
            url_required = (a->flags & WH_OPT_REQUIRED) != 0;
        }
    }
    CHECK(url_required);
}

static void test_init(void)
{
    g_warns = 0;
    void *s = instance("{}");
    CHECK_INT(g_warns, 1);
    CHECK(strstr(g_log, "accepting unsigned requests") != NULL);
    g_desc->destroy(s);

    g_warns = 0;
    s = instance("{\"secret\": \"k\"}");
    CHECK_INT(g_warns, 0);
    g_desc->destroy(s);

    g_errors = 0;
    CHECK_INT(init_rc("{\"secret\": \"\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"kind\": \"two words\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"kind\": \"\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"signature_header\": \"Bad Header:\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"secret\": 5}"), WH_ERR_CONFIG);
    CHECK_INT(g_errors, 5);
    CHECK(strstr(g_log, "secret") != NULL);
    g_desc->destroy(NULL);
}

/* ------------------------------------------------------------------------ */
/* Ingress                                                                   */

static void test_signatures(void)
{
    const char *secret = "It's a Secret to Everybody";
    const char *vector = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const char *upper = "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17";
    void *s = instance("{\"secret\": \"It's a Secret to Everybody\"}");
    wh_webhook wh = {0};

    /* GitHub's vector: the signature passes, so the (non-JSON) body is what fails. */
    CHECK_INT(
        run(s,
            make_req("", "application/json", "Hello, World!", "x-hub-signature-256", vector, NULL),
            &wh),
        WH_OK);
    CHECK_INT(wh.status, 400);
    CHECK_STR(wh.error, "bad_json");
    CHECK(strstr(wh.detail, "line 1") != NULL);
    CHECK_INT(wh.emits, 0);

    /* Upper-case hex is accepted too. */
    run(s, make_req("", "application/json", "Hello, World!", "x-hub-signature-256", upper, NULL),
        &wh);
    CHECK_STR(wh.error, "bad_json");

    /* Missing, wrong, malformed. */
    run(s, make_req("", "application/json", "{}", NULL), &wh);
    CHECK_INT(wh.status, 401);
    CHECK_STR(wh.error, "missing_signature");
    CHECK(strstr(wh.detail, "X-Hub-Signature-256") != NULL);
    CHECK_INT(wh.emits, 0);

    run(s, make_req("", "application/json", "Hello, World!!", "x-hub-signature-256", vector, NULL),
        &wh);
    CHECK_INT(wh.status, 401);
    CHECK_STR(wh.error, "bad_signature");
    CHECK_STR(wh.detail, "signature does not match the body");

    const char *bad[] = {
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17a",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043ezz",
        "sha256=",
        "",
    };
    for (size_t i = 0; i < WH_ARRAY_LEN(bad); i++) {
        run(s,
            make_req("", "application/json", "Hello, World!", "x-hub-signature-256", bad[i], NULL),
            &wh);
        CHECK_INT(wh.status, 401);
        CHECK_STR(wh.error, "bad_signature");
        CHECK_INT(wh.emits, 0);
    }

    /* Verification comes before parsing: a bad body with a bad signature is a 401. */
    run(s, make_req("", "text/plain", "x", "x-hub-signature-256", vector, NULL), &wh);
    CHECK_INT(wh.status, 401);

    /* A JSON body signed with the same secret reaches emit, without the signature header. */
    const char *body = "{\"action\": \"opened\", \"number\": 7}";
    char sig[80];
    run(s,
        make_req("", "application/json", body, "x-hub-signature-256", sig_of(secret, body, sig),
                 "x-github-event", "pull_request", NULL),
        &wh);
    CHECK_INT(wh.rejects, 0);
    CHECK_INT(wh.emits, 1);
    CHECK_STR(wh.kind, "event");
    CHECK_STR(json_string_value(at(wh.data, "body", "action")), "opened");
    CHECK_INT(json_integer_value(at(wh.data, "body", "number")), 7);
    CHECK_STR(json_string_value(at(wh.data, "headers", "x-github-event")), "pull_request");
    CHECK(at(wh.data, "headers", "x-hub-signature-256") == NULL);
    g_desc->destroy(s);

    /* A configurable scheme: another header, no prefix. */
    s = instance("{\"secret\": \"k2\", \"signature_header\": \"X-Signature\", "
                 "\"signature_prefix\": \"\"}");
    run(s, make_req("", "application/json", body, "x-signature", sig_of("k2", body, sig) + 7, NULL),
        &wh);
    CHECK_INT(wh.emits, 1);
    CHECK(at(wh.data, "headers", "x-signature") == NULL);
    run(s,
        make_req("", "application/json", body, "x-hub-signature-256", sig_of("k2", body, sig),
                 NULL),
        &wh);
    CHECK_STR(wh.error, "missing_signature");
    CHECK(strstr(wh.detail, "X-Signature") != NULL);
    clear_wh(&wh);
    g_desc->destroy(s);
}

static void test_kinds_and_bodies(void)
{
    void *s = instance("{\"kind\": \"deploy\"}");
    wh_webhook wh = {0};

    /* Kind from config, and every part of the data. */
    CHECK_INT(
        run(s,
            make_req("", "application/json", "[1, 2]", "user-agent", "curl/8", "x-custom", "yes",
                     "authorization", "Bearer t", "cookie", "c=1", "proxy-authorization", "Basic x",
                     "x-hub-signature-256", "sha256=00", NULL),
            &wh),
        WH_OK);
    CHECK_INT(wh.emits, 1);
    CHECK_STR(wh.kind, "deploy");
    CHECK_INT(json_array_size(at(wh.data, "body", NULL)), 2);
    CHECK_STR(json_string_value(at(wh.data, "headers", "user-agent")), "curl/8");
    CHECK_STR(json_string_value(at(wh.data, "headers", "x-custom")), "yes");
    CHECK_STR(json_string_value(at(wh.data, "headers", "content-type")), "application/json");
    CHECK(at(wh.data, "headers", "authorization") == NULL);
    CHECK(at(wh.data, "headers", "cookie") == NULL);
    CHECK(at(wh.data, "headers", "proxy-authorization") == NULL);
    CHECK(at(wh.data, "headers", "x-hub-signature-256") == NULL);
    CHECK_INT(json_object_size(at(wh.data, "headers", NULL)), 3);
    CHECK(json_is_object(at(wh.data, "query", NULL)));
    CHECK_INT(json_object_size(at(wh.data, "query", NULL)), 0);
    CHECK_STR(json_string_value(at(wh.data, "path", NULL)), "");
    CHECK_INT(json_object_size(wh.data), 4);

    /* Kind from the first path segment. */
    run(s, make_req("/push", "application/json", "{}", NULL), &wh);
    CHECK_STR(wh.kind, "push");
    run(s, make_req("/build.done-2/extra/more", "application/json", "{}", NULL), &wh);
    CHECK_STR(wh.kind, "build.done-2");
    CHECK_STR(json_string_value(at(wh.data, "path", NULL)), "/build.done-2/extra/more");
    run(s, make_req("/", "application/json", "{}", NULL), &wh);
    CHECK_STR(wh.kind, "deploy");
    /* A decoded path may hold any bytes (%FF): kept as U+FFFD (found by fuzz_webhook). */
    CHECK_INT(run(s, make_req("/push/caf\xE9", "application/json", "{}", NULL), &wh), WH_OK);
    CHECK_INT(wh.emits, 1);
    CHECK_STR(json_string_value(at(wh.data, "path", NULL)), "/push/caf\xEF\xBF\xBD");
    char long_seg[80] = "/";
    memset(long_seg + 1, 'k', 64);
    run(s, make_req(long_seg, "application/json", "{}", NULL), &wh);
    CHECK_INT(wh.emits, 1);
    CHECK_INT(strlen(wh.kind), 64);
    const char *bad_paths[] = {"/two%20words", "/a b", "/..", "/caf\xC3\xA9", "/a:b"};
    for (size_t i = 0; i < WH_ARRAY_LEN(bad_paths); i++) {
        run(s, make_req(bad_paths[i], "application/json", "{}", NULL), &wh);
        CHECK_INT(wh.status, 400);
        CHECK_STR(wh.error, "bad_kind");
        CHECK_INT(wh.emits, 0);
    }
    memset(long_seg + 1, 'k', 65);
    run(s, make_req(long_seg, "application/json", "{}", NULL), &wh);
    CHECK_STR(wh.error, "bad_kind");

    /* JSON: +json suffix types, scalars, empty and broken bodies. */
    run(s, make_req("", "application/vnd.github+json", "{\"a\": true}", NULL), &wh);
    CHECK(json_is_true(at(wh.data, "body", "a")));
    run(s, make_req("", "application/json", "42", NULL), &wh);
    CHECK_INT(json_integer_value(at(wh.data, "body", NULL)), 42);
    run(s, make_req("", "application/json", "", NULL), &wh);
    CHECK_INT(wh.status, 400);
    CHECK_STR(wh.error, "bad_json");
    run(s, make_req("", "application/json", "{\"a\":\n  }", NULL), &wh);
    CHECK_STR(wh.error, "bad_json");
    CHECK(strstr(wh.detail, "line 2") != NULL);
    CHECK(strstr(wh.detail, "column") != NULL);

    /* Forms. */
    run(s, make_req("/slash", "application/x-www-form-urlencoded", "a=1&b=x+y&c=%2Fz", NULL), &wh);
    CHECK_INT(wh.emits, 1);
    CHECK_STR(wh.kind, "slash");
    CHECK_STR(json_string_value(at(wh.data, "body", "a")), "1");
    CHECK_STR(json_string_value(at(wh.data, "body", "b")), "x y");
    CHECK_STR(json_string_value(at(wh.data, "body", "c")), "/z");
    run(s, make_req("", "application/x-www-form-urlencoded", "", NULL), &wh);
    CHECK_INT(json_object_size(at(wh.data, "body", NULL)), 0);
    run(s, make_req("", "application/x-www-form-urlencoded", "a=%zz", NULL), &wh);
    CHECK_INT(wh.status, 400);
    CHECK_STR(wh.error, "bad_form");

    /* Anything else is 415. */
    run(s, make_req("", "text/plain", "hi", NULL), &wh);
    CHECK_INT(wh.status, 415);
    CHECK_STR(wh.error, "unsupported_media_type");
    CHECK(strstr(wh.detail, "text/plain") != NULL);
    run(s, make_req("", NULL, "hi", NULL), &wh);
    CHECK_INT(wh.status, 415);
    run(s, make_req("", "application/jsonx", "{}", NULL), &wh);
    CHECK_INT(wh.status, 415);
    run(s, make_req("", "multipart/form-data", "x", NULL), &wh);
    CHECK_INT(wh.status, 415);

    /* emit() failing: the connector keeps (and frees) the data and reports the code. */
    g_emit_rc = WH_ERR_BUSY;
    CHECK_INT(run(s, make_req("", "application/json", "{\"big\": [1,2,3]}", NULL), &wh),
              WH_ERR_BUSY);
    g_emit_rc = 0;
    CHECK_INT(wh.emits, 0);

    clear_wh(&wh);
    g_desc->destroy(s);
}

/* ------------------------------------------------------------------------ */
/* Operation `request`                                                       */

static const wh_operation *g_op;

/* Start `request` with args given as JSON text. */
static void start(void *s, wh_call *call, const char *args)
{
    json_decref(call->result);
    memset(call, 0, sizeof *call);
    call->key = "run-1/step-2";
    g_http.calls = 0;
    g_http.done = NULL;
    json_t *a = json_loads(args, 0, NULL);
    CHECK(a != NULL);
    CHECK_INT(g_op->start(s, call, a), WH_OK);
    json_decref(a);
}

/* Headers sent that start with `prefix` (case-insensitive). */
static int sent_headers(const char *prefix, const char **last)
{
    int n = 0;
    size_t i;
    json_t *v;
    json_array_foreach(g_http.headers, i, v)
    {
        if (strncasecmp(json_string_value(v), prefix, strlen(prefix)) == 0) {
            n++;
            *last = json_string_value(v);
        }
    }
    return n;
}

/* Finish the pending exchange with a canned response. */
static void respond(int status, const char *body, const char *h1, const char *v1, const char *err,
                    int timed_out)
{
    CHECK(g_http.done != NULL);
    if (!g_http.done) {
        return;
    }
    json_t *headers = json_object();
    if (h1) {
        json_object_set_new(headers, h1, json_string(v1));
    }
    wh_http_response r = {status, err, timed_out, body, body ? strlen(body) : 0, headers};
    wh_http_done done = g_http.done;
    g_http.done = NULL;
    done(g_http.user, &r);
    json_decref(headers);
}

static void test_request_args(void *s)
{
    wh_call call = {0};
    const char *h = NULL;

    /* Argument errors complete with FAIL and never reach http(). */
    struct {
        const char *args, *error;
    } bad[] = {
        {"{}", "request: `url` is required"},
        {"{\"url\": \"ftp://example.com/x\"}",
         "request: `url` must be an absolute http:// or https:// URL"},
        {"{\"url\": \"http://\"}", "request: `url` must be an absolute http:// or https:// URL"},
        {"{\"url\": \"https://a.example/ x\"}",
         "request: `url` must be an absolute http:// or https:// URL"},
        {"{\"url\": 5}", "request: `url` must be an absolute http:// or https:// URL"},
        {"{\"url\": \"http://a\", \"json\": {}, \"body\": \"x\"}",
         "request: give only one of `json`, `form` or `body`"},
        {"{\"url\": \"http://a\", \"json\": null, \"form\": {}}",
         "request: give only one of `json`, `form` or `body`"},
        {"{\"url\": \"http://a\", \"method\": \"GE T\"}",
         "request: `method` must be an HTTP method such as POST"},
        {"{\"url\": \"http://a\", \"headers\": {\"X\": \"a\\r\\nInjected: 1\"}}",
         "request: header `X` must be a string without line breaks"},
        {"{\"url\": \"http://a\", \"headers\": {\"X\": 1}}",
         "request: header `X` must be a string without line breaks"},
        {"{\"url\": \"http://a\", \"headers\": {\"Bad Name\": \"v\"}}",
         "request: header name `Bad Name` is not valid"},
        {"{\"url\": \"http://a\", \"headers\": {\"Content-Length\": \"3\"}}",
         "request: header `Content-Length` is set by wirehub"},
        {"{\"url\": \"http://a\", \"headers\": []}",
         "request: `headers` must be an object of strings"},
        {"{\"url\": \"http://a\", \"form\": {\"a\": {}}}",
         "request: `form.a` must be a string, number or boolean"},
        {"{\"url\": \"http://a\", \"form\": \"a=1\"}", "request: `form` must be an object"},
        {"{\"url\": \"http://a\", \"body\": 5}", "request: `body` must be a string"},
        {"{\"url\": \"http://a\", \"timeout_ms\": -1}",
         "request: `timeout_ms` must be an integer 0..86400000"},
        {"{\"url\": \"http://a\", \"timeout_ms\": \"5s\"}",
         "request: `timeout_ms` must be an integer 0..86400000"},
    };
    for (size_t i = 0; i < WH_ARRAY_LEN(bad); i++) {
        start(s, &call, bad[i].args);
        CHECK_INT(call.completes, 1);
        CHECK_INT(call.outcome, WH_CALL_FAIL);
        CHECK_STR(call.error, bad[i].error);
        CHECK_INT(g_http.calls, 0);
    }

    /* GET by default, with the idempotency key and no body or content type. */
    start(s, &call, "{\"url\": \"https://api.example.com/items?x=1\"}");
    CHECK_INT(call.completes, 0);
    CHECK_INT(g_http.calls, 1);
    CHECK_STR(g_http.method, "GET");
    CHECK_STR(g_http.url, "https://api.example.com/items?x=1");
    CHECK(g_http.body == NULL);
    CHECK_INT(sent_headers("Idempotency-Key:", &h), 1);
    CHECK_STR(h, "Idempotency-Key: run-1/step-2");
    CHECK_INT(sent_headers("Content-Type:", &h), 0);
    CHECK_INT(g_http.timeout_ms, 0);
    respond(204, "", NULL, NULL, NULL, 0);
    CHECK_INT(call.outcome, WH_CALL_OK);

    /* json: POST, compact, application/json. */
    start(s, &call,
          "{\"url\": \"http://a.example/hook\", \"json\": {\"text\": \"hé\", \"n\": [1, 2]}}");
    CHECK_STR(g_http.method, "POST");
    CHECK_STR(g_http.body, "{\"text\":\"hé\",\"n\":[1,2]}");
    CHECK_INT(g_http.body_len, strlen("{\"text\":\"hé\",\"n\":[1,2]}"));
    CHECK_INT(sent_headers("Content-Type:", &h), 1);
    CHECK_STR(h, "Content-Type: application/json");
    respond(200, "{}", NULL, NULL, NULL, 0);

    /* json may be any value, null included. */
    start(s, &call, "{\"url\": \"http://a.example/\", \"json\": null}");
    CHECK_STR(g_http.body, "null");
    respond(200, "", NULL, NULL, NULL, 0);

    /* form: WHATWG urlencoded, in the object's order. */
    start(s, &call,
          "{\"url\": \"http://a.example/f\", \"form\": {\"q\": \"a b&c=d\", \"n\": 5, \"r\": 1.5, "
          "\"t\": true, \"u\": \"é~*/+\", \"k y\": \"\"}}");
    CHECK_STR(g_http.method, "POST");
    CHECK_STR(g_http.body, "q=a+b%26c%3Dd&n=5&r=1.5&t=true&u=%C3%A9%7E*%2F%2B&k+y=");
    CHECK_INT(sent_headers("Content-Type:", &h), 1);
    CHECK_STR(h, "Content-Type: application/x-www-form-urlencoded");
    respond(200, "", NULL, NULL, NULL, 0);

    /* body with a method, the user's own Content-Type and headers, a timeout. The user's
     * Idempotency-Key is replaced by the call's. */
    start(s, &call,
          "{\"url\": \"http://a.example/u\", \"method\": \"put\", \"body\": \"a,b\\n1,2\", "
          "\"headers\": {\"content-type\": \"text/csv\", \"X-Trace\": \"t-1\", "
          "\"Idempotency-Key\": \"mine\"}, \"timeout_ms\": 1500}");
    CHECK_STR(g_http.method, "PUT");
    CHECK_STR(g_http.body, "a,b\n1,2");
    CHECK_INT(sent_headers("Content-Type:", &h), 1);
    CHECK_STR(h, "content-type: text/csv");
    CHECK_INT(sent_headers("X-Trace:", &h), 1);
    CHECK_STR(h, "X-Trace: t-1");
    CHECK_INT(sent_headers("Idempotency-Key:", &h), 1);
    CHECK_STR(h, "Idempotency-Key: run-1/step-2");
    CHECK_INT(g_http.timeout_ms, 1500);
    respond(200, "", NULL, NULL, NULL, 0);

    /* A raw body gets text/plain unless told otherwise; an explicit GET keeps its body. */
    start(s, &call, "{\"url\": \"http://a.example/\", \"method\": \"GET\", \"body\": \"x\"}");
    CHECK_STR(g_http.method, "GET");
    CHECK_INT(sent_headers("Content-Type:", &h), 1);
    CHECK_STR(h, "Content-Type: text/plain; charset=utf-8");
    respond(200, "", NULL, NULL, NULL, 0);

    /* http() refusing: RETRY when transient, FAIL when the request itself is invalid. */
    g_http.fail_rc = WH_ERR_BUSY;
    start(s, &call, "{\"url\": \"http://a.example/\"}");
    CHECK_INT(call.completes, 1);
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    g_http.fail_rc = WH_ERR_INVALID;
    start(s, &call, "{\"url\": \"http://a.example/\"}");
    CHECK_INT(call.outcome, WH_CALL_FAIL);
    g_http.fail_rc = 0;
    json_decref(call.result);
}

static void test_request_outcomes(void *s)
{
    wh_call call = {0};
    const char *url = "{\"url\": \"http://a.example/\", \"json\": {}}";

    /* 2xx with a JSON content type (parameters allowed): parsed body. */
    start(s, &call, url);
    respond(201, "{\"ok\": true, \"id\": 9}", "content-type", "Application/JSON; charset=utf-8",
            NULL, 0);
    CHECK_INT(call.completes, 1);
    CHECK_INT(call.outcome, WH_CALL_OK);
    CHECK_INT(json_integer_value(at(call.result, "status", NULL)), 201);
    CHECK(json_is_true(at(call.result, "body", "ok")));
    CHECK_INT(json_integer_value(at(call.result, "body", "id")), 9);
    CHECK_STR(json_string_value(at(call.result, "headers", "content-type")),
              "Application/JSON; charset=utf-8");

    /* A +json type; text; JSON type with a body that does not parse; invalid UTF-8. */
    start(s, &call, url);
    respond(200, "[1]", "content-type", "application/problem+json", NULL, 0);
    CHECK(json_is_array(at(call.result, "body", NULL)));
    start(s, &call, url);
    respond(200, "{\"not\": \"parsed\"}", "content-type", "text/plain", NULL, 0);
    CHECK_STR(json_string_value(at(call.result, "body", NULL)), "{\"not\": \"parsed\"}");
    start(s, &call, url);
    respond(200, "not json", "content-type", "application/json", NULL, 0);
    CHECK_STR(json_string_value(at(call.result, "body", NULL)), "not json");
    start(s, &call, url);
    respond(200,
            "a\xFF"
            "b",
            NULL, NULL, NULL, 0);
    CHECK_STR(json_string_value(at(call.result, "body", NULL)), "a\xEF\xBF\xBD"
                                                                "b");
    CHECK_INT(json_object_size(at(call.result, "headers", NULL)), 0);

    /* 500: retry with backoff. */
    start(s, &call, url);
    respond(500, "oops", NULL, NULL, NULL, 0);
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    CHECK_STR(call.error, "HTTP 500");
    CHECK_INT(call.retry_after, 0);
    CHECK_INT(json_integer_value(at(call.result, "status", NULL)), 500);

    /* 429 with Retry-After seconds; 503 with an HTTP-date; 408. */
    start(s, &call, url);
    respond(429, "", "retry-after", "7", NULL, 0);
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    CHECK_STR(call.error, "HTTP 429");
    CHECK_INT(call.retry_after, 7000);
    start(s, &call, url);
    respond(503, "", "retry-after", "Sun, 06 Nov 1994 08:49:37 GMT", NULL, 0);
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    CHECK_INT(call.retry_after, 60000);
    start(s, &call, url);
    respond(503, "", "retry-after", "whenever", NULL, 0);
    CHECK_INT(call.retry_after, 0);
    start(s, &call, url);
    respond(408, "", NULL, NULL, NULL, 0);
    CHECK_INT(call.outcome, WH_CALL_RETRY);

    /* Other statuses fail for good, keeping the response for the dead letter. */
    start(s, &call, url);
    respond(404, "{\"error\": \"no such hook\"}", "content-type", "application/json", NULL, 0);
    CHECK_INT(call.outcome, WH_CALL_FAIL);
    CHECK_STR(call.error, "HTTP 404");
    CHECK_STR(json_string_value(at(call.result, "body", "error")), "no such hook");
    start(s, &call, url);
    respond(301, "", "location", "http://elsewhere/", NULL, 0);
    CHECK_INT(call.outcome, WH_CALL_FAIL);
    CHECK_STR(call.error, "HTTP 301");

    /* Transport errors and timeouts retry, without a result. */
    start(s, &call, url);
    respond(0, NULL, NULL, NULL, "Connection refused", 0);
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    CHECK_STR(call.error, "request: Connection refused");
    CHECK(call.result == NULL);
    start(s, &call, url);
    respond(0, NULL, NULL, NULL, "Timeout was reached", 1);
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    CHECK_STR(call.error, "request: timed out");
    CHECK_INT(call.completes, 1);
    json_decref(call.result);
}

int main(void)
{
    void *so = dlopen(WH_CONNECTOR_DIR "/webhook.so", RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    const wh_connector *(*entry)(void) =
        (const wh_connector *(*)(void))dlsym(so, WH_CONNECTOR_ENTRY_NAME);
    CHECK(entry != NULL);
    if (!entry) {
        dlclose(so);
        return wh_test_done("connector.webhook");
    }
    g_desc = entry();
    g_op = &g_desc->operations[0];

    test_descriptor();
    test_init();
    test_signatures();
    test_kinds_and_bodies();
    void *s = instance("{}");
    test_request_args(s);
    test_request_outcomes(s);
    g_desc->destroy(s);

    json_decref(g_http.headers);
    free(g_http.body);
    dlclose(so);
    return wh_test_done("connector.webhook");
}
