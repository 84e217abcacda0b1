/*
 * test_webhook.c — the real webhook.so, loaded with dlopen and driven through the
 * fake host (tests/fakehost.h): signature checks (GitHub's published vector), kinds,
 * body decoding, header filtering, and the `request` operation's encodings and
 * outcome mapping against canned responses. No network, no sleeps.
 */
#include "fakehost.h"
#include "testlib.h"
#include "util.h"
#include "verify.h"

#include <stdarg.h>
#include <strings.h>

/* ------------------------------------------------------------------------ */
/* Helpers (the fake host is tests/fakehost.h)                               */

static const wh_connector *g_desc;
static wh_instance g_inst = {"hooks"};

static void *instance(const char *config)
{
    void *state = NULL;
    CHECK_INT(fh_init(g_desc, &g_inst, config, &state), WH_OK);
    return state;
}

static int init_rc(const char *config)
{
    return fh_init_rc(g_desc, &g_inst, config);
}

/* A request: headers given as "name", "value", … pairs ending with NULL. */
static wh_request make_req(const char *path, const char *ctype, const char *body, ...)
{
    wh_request r = {.method = "POST",
                    .path = path,
                    .ctype = ctype,
                    .body = body,
                    .body_len = body ? strlen(body) : 0,
                    .headers = json_object()};
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

/* Run webhook() on a request and free the request. */
static int run(void *state, wh_request r, wh_webhook *wh)
{
    fh_webhook_clear(wh);
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
    fh.warns = 0;
    void *s = instance("{}");
    CHECK_INT(fh.warns, 1);
    CHECK(strstr(fh.log, "accepting unsigned requests") != NULL);
    g_desc->destroy(s);

    fh.warns = 0;
    s = instance("{\"secret\": \"k\"}");
    CHECK_INT(fh.warns, 0);
    g_desc->destroy(s);

    fh.errors = 0;
    CHECK_INT(init_rc("{\"secret\": \"\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"kind\": \"two words\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"kind\": \"\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"signature_header\": \"Bad Header:\"}"), WH_ERR_CONFIG);
    CHECK_INT(init_rc("{\"secret\": 5}"), WH_ERR_CONFIG);
    CHECK_INT(fh.errors, 5);
    CHECK(strstr(fh.log, "secret") != NULL);
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
    fh_webhook_clear(&wh);
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
    fh.emit_rc = WH_ERR_BUSY;
    CHECK_INT(run(s, make_req("", "application/json", "{\"big\": [1,2,3]}", NULL), &wh),
              WH_ERR_BUSY);
    fh.emit_rc = 0;
    CHECK_INT(wh.emits, 0);

    fh_webhook_clear(&wh);
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
    fh_http_reset();
    json_t *a = json_loads(args, 0, NULL);
    CHECK(a != NULL);
    CHECK_INT(g_op->start(s, call, a), WH_OK);
    json_decref(a);
}

/* The request the last start() sent (an empty one, and a failure, when none). */
static const fh_exchange *sent(void)
{
    return fh_http_at(fh_http_count() - 1);
}

/* Headers sent that start with `prefix` (case-insensitive). */
static int sent_headers(const char *prefix, const char **last)
{
    int n = 0;
    size_t i;
    json_t *v;
    json_array_foreach(sent()->headers, i, v)
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
    fh_exchange *e = fh_http_pending_count() ? fh_http_pending(0) : NULL;
    CHECK(e != NULL);
    if (!e) {
        return;
    }
    json_t *headers = json_object();
    if (h1) {
        json_object_set_new(headers, h1, json_string(v1));
    }
    wh_http_response r = {status, err, timed_out, body, body ? strlen(body) : 0, headers, 0};
    fh_http_respond(e, &r);
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
        {"{\"url\": \"http://a\", \"query\": [1]}", "request: `query` must be an object"},
        {"{\"url\": \"http://a\", \"query\": {\"q\": []}}",
         "request: `query.q` must be a string, number or boolean"},
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
        CHECK_INT(fh_http_count(), 0);
    }

    /* GET by default, with the idempotency key and no body or content type. */
    start(s, &call, "{\"url\": \"https://api.example.com/items?x=1\"}");
    CHECK_INT(call.completes, 0);
    CHECK_INT(fh_http_count(), 1);
    CHECK_STR(sent()->method, "GET");
    CHECK_STR(sent()->url, "https://api.example.com/items?x=1");
    CHECK(sent()->body == NULL);
    CHECK_INT(sent_headers("Idempotency-Key:", &h), 1);
    CHECK_STR(h, "Idempotency-Key: run-1/step-2");
    CHECK_INT(sent_headers("Content-Type:", &h), 0);
    CHECK_INT(sent()->timeout_ms, 0);
    respond(204, "", NULL, NULL, NULL, 0);
    CHECK_INT(call.outcome, WH_CALL_OK);

    /* json: POST, compact, application/json. */
    start(s, &call,
          "{\"url\": \"http://a.example/hook\", \"json\": {\"text\": \"hé\", \"n\": [1, 2]}}");
    CHECK_STR(sent()->method, "POST");
    CHECK_STR(sent()->body, "{\"text\":\"hé\",\"n\":[1,2]}");
    CHECK_INT(sent()->body_len, strlen("{\"text\":\"hé\",\"n\":[1,2]}"));
    CHECK_INT(sent_headers("Content-Type:", &h), 1);
    CHECK_STR(h, "Content-Type: application/json");
    respond(200, "{}", NULL, NULL, NULL, 0);

    /* json may be any value, null included. */
    start(s, &call, "{\"url\": \"http://a.example/\", \"json\": null}");
    CHECK_STR(sent()->body, "null");
    respond(200, "", NULL, NULL, NULL, 0);

    /* form: WHATWG urlencoded, in the object's order. */
    start(s, &call,
          "{\"url\": \"http://a.example/f\", \"form\": {\"q\": \"a b&c=d\", \"n\": 5, \"r\": 1.5, "
          "\"t\": true, \"u\": \"é~*/+\", \"k y\": \"\"}}");
    CHECK_STR(sent()->method, "POST");
    CHECK_STR(sent()->body, "q=a+b%26c%3Dd&n=5&r=1.5&t=true&u=%C3%A9%7E*%2F%2B&k+y=");
    CHECK_INT(sent_headers("Content-Type:", &h), 1);
    CHECK_STR(h, "Content-Type: application/x-www-form-urlencoded");
    respond(200, "", NULL, NULL, NULL, 0);

    /* query: encoded as a form is, after the URL's own query, before its (dropped)
     * fragment; a null (a template that named nothing) is left out, as a top-level
     * argument is */
    struct {
        const char *args, *url;
    } queries[] = {
        {"{\"url\": \"http://a.example/s?x=1#frag\", \"query\": {\"q\": \"a b&c=d/é\", "
         "\"n\": 2, \"t\": false}}",
         "http://a.example/s?x=1&q=a+b%26c%3Dd%2F%C3%A9&n=2&t=false"},
        {"{\"url\": \"http://a.example/s\", \"query\": {\"k\": \"v\"}}", "http://a.example/s?k=v"},
        {"{\"url\": \"http://a.example/s\", \"query\": {\"a\": null, \"b\": 1}}",
         "http://a.example/s?b=1"},
        {"{\"url\": \"http://a.example/s\", \"query\": {\"a\": null}}", "http://a.example/s"},
        {"{\"url\": \"http://a.example/s?\", \"query\": {}}", "http://a.example/s?"},
    };
    for (size_t i = 0; i < WH_ARRAY_LEN(queries); i++) {
        start(s, &call, queries[i].args);
        CHECK_STR(sent()->url, queries[i].url);
        respond(200, "", NULL, NULL, NULL, 0);
    }

    /* body with a method, the user's own Content-Type and headers, a timeout. The user's
     * Idempotency-Key is replaced by the call's. */
    start(s, &call,
          "{\"url\": \"http://a.example/u\", \"method\": \"put\", \"body\": \"a,b\\n1,2\", "
          "\"headers\": {\"content-type\": \"text/csv\", \"X-Trace\": \"t-1\", "
          "\"Idempotency-Key\": \"mine\"}, \"timeout_ms\": 1500}");
    CHECK_STR(sent()->method, "PUT");
    CHECK_STR(sent()->body, "a,b\n1,2");
    CHECK_INT(sent_headers("Content-Type:", &h), 1);
    CHECK_STR(h, "content-type: text/csv");
    CHECK_INT(sent_headers("X-Trace:", &h), 1);
    CHECK_STR(h, "X-Trace: t-1");
    CHECK_INT(sent_headers("Idempotency-Key:", &h), 1);
    CHECK_STR(h, "Idempotency-Key: run-1/step-2");
    CHECK_INT(sent()->timeout_ms, 1500);
    respond(200, "", NULL, NULL, NULL, 0);

    /* A raw body gets text/plain unless told otherwise; an explicit GET keeps its body. */
    start(s, &call, "{\"url\": \"http://a.example/\", \"method\": \"GET\", \"body\": \"x\"}");
    CHECK_STR(sent()->method, "GET");
    CHECK_INT(sent_headers("Content-Type:", &h), 1);
    CHECK_STR(h, "Content-Type: text/plain; charset=utf-8");
    respond(200, "", NULL, NULL, NULL, 0);

    /* http() refusing: RETRY when transient, FAIL when the request itself is invalid. */
    fh.http_rc = WH_ERR_BUSY;
    start(s, &call, "{\"url\": \"http://a.example/\"}");
    CHECK_INT(call.completes, 1);
    CHECK_INT(call.outcome, WH_CALL_RETRY);
    fh.http_rc = WH_ERR_INVALID;
    start(s, &call, "{\"url\": \"http://a.example/\"}");
    CHECK_INT(call.outcome, WH_CALL_FAIL);
    fh.http_rc = 0;
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
    fh.now_ms = 784111777000LL - 60000; /* 1994-11-06T08:48:37Z */
    g_desc = fh_load(WH_CONNECTOR_DIR "/webhook.so");
    CHECK(g_desc != NULL);
    if (!g_desc) {
        return wh_test_done("connector.webhook");
    }
    g_op = &g_desc->operations[0];

    test_descriptor();
    test_init();
    test_signatures();
    test_kinds_and_bodies();
    void *s = instance("{}");
    test_request_args(s);
    test_request_outcomes(s);
    g_desc->destroy(s);

    CHECK_INT(fh_done(), 0);
    return wh_test_done("connector.webhook");
}
