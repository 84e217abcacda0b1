/*
 * test_alexa.c — the real alexa.so, loaded with dlopen and driven through the
 * fake host (tests/fakehost.h): an injectable clock and a fake HTTP client whose
 * exchanges the test finishes by hand. Certificates are made in-process with OpenSSL
 * (a root in a temporary ca_file, leaves signed by it or by an untrusted root)
 * and bodies are signed with the leaf's key, so every check runs for real:
 * the certificate URL rules, one fetch per URL shared by waiting requests, the
 * cache's lifetime and limits, the chain checks, signatures, timestamps, skill
 * ids, the event's shape and the response envelope's limits. A
 * CanFulfillIntentRequest is answered by the connector itself, after the same
 * checks, without an event.
 *
 * The `notify` operation (proactive events) runs against the same fake HTTP
 * client: the token request and the event posts are inspected byte for byte
 * and answered by hand (202, 401, 429, 5xx, transport errors, LWA errors).
 */
#include "fakehost.h"
#include "match.h"
#include "testlib.h"
#include "util.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#define SKILL "amzn1.ask.skill.test"
#define GOOD_URL "https://s3.amazonaws.com/echo.api/echo-api-cert.pem"
#define OVERRIDE "http://127.0.0.1:9/mirror"

#define T0 1800000000000LL /* 2027-01-15T08:00:00Z */

/* ------------------------------------------------------------------------ */
/* Test certificates                                                         */

static EVP_PKEY *g_root_key, *g_leaf_key;
static X509 *g_root;
static char *g_dir, *g_ca_file;

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       long from_s, long to_s, const char *san, int ca)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(fh.now_ms / 1000 + from_s));
    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(fh.now_ms / 1000 + to_s));
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, key);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                                              ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (ca) {
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (san) {
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    CHECK(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static char *pem_of(X509 *a, X509 *b)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, a);
    if (b) {
        PEM_write_bio_X509(bio, b);
    }
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

/* Chains served by the fake fetches. */
static char *g_good, *g_expired, *g_future, *g_nosan, *g_untrusted, *g_short;

static void make_pki(void)
{
    g_root_key = EVP_RSA_gen(2048);
    g_leaf_key = EVP_RSA_gen(2048);
    CHECK(g_root_key && g_leaf_key);
    g_root = make_cert("test root", g_root_key, NULL, NULL, -86400, 365 * 86400L, NULL, 1);
    X509 *good = make_cert("echo-api.amazon.com", g_leaf_key, g_root, g_root_key, -3600,
                           30 * 86400L, "DNS:echo-api.amazon.com", 0);
    X509 *expired = make_cert("echo-api.amazon.com", g_leaf_key, g_root, g_root_key, -7200, -3600,
                              "DNS:echo-api.amazon.com", 0);
    X509 *future = make_cert("echo-api.amazon.com", g_leaf_key, g_root, g_root_key, 3600, 7200,
                             "DNS:echo-api.amazon.com", 0);
    X509 *nosan = make_cert("echo-api.amazon.com", g_leaf_key, g_root, g_root_key, -3600, 86400,
                            "DNS:echo-api.amazon.com.evil.example, DNS:other.example", 0);
    /* valid for one hour only: the cache must not outlive it */
    X509 *shortlived = make_cert("echo-api.amazon.com", g_leaf_key, g_root, g_root_key, -60, 3600,
                                 "DNS:Echo-API.amazon.com", 0);
    X509 *other_root = make_cert("other root", g_leaf_key, NULL, NULL, -86400, 86400, NULL, 1);
    X509 *untrusted = make_cert("echo-api.amazon.com", g_leaf_key, other_root, g_leaf_key, -3600,
                                86400, "DNS:echo-api.amazon.com", 0);
    g_good = pem_of(good, NULL);
    g_expired = pem_of(expired, NULL);
    g_future = pem_of(future, NULL);
    g_nosan = pem_of(nosan, NULL);
    g_short = pem_of(shortlived, NULL);
    g_untrusted = pem_of(untrusted, other_root);
    char *root_pem = pem_of(g_root, NULL);
    g_dir = wh_test_tmpdir();
    g_ca_file = wh_test_write(g_dir, "ca.pem", root_pem);
    free(root_pem);
    X509_free(good);
    X509_free(expired);
    X509_free(future);
    X509_free(nosan);
    X509_free(shortlived);
    X509_free(other_root);
    X509_free(untrusted);
}

static void free_pki(void)
{
    free(g_good);
    free(g_expired);
    free(g_future);
    free(g_nosan);
    free(g_short);
    free(g_untrusted);
    X509_free(g_root);
    EVP_PKEY_free(g_root_key);
    EVP_PKEY_free(g_leaf_key);
    remove(g_ca_file);
    rmdir(g_dir);
    free(g_ca_file);
    free(g_dir);
}

/* base64 signature of body with the leaf key ("sha256" or "sha1"). malloc'd. */
static char *sign(const char *body, const char *digest)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t n = 0;
    EVP_DigestSignInit(md, NULL, strcmp(digest, "sha1") == 0 ? EVP_sha1() : EVP_sha256(), NULL,
                       g_leaf_key);
    EVP_DigestSign(md, NULL, &n, (const unsigned char *)body, strlen(body));
    unsigned char *sig = malloc(n);
    EVP_DigestSign(md, sig, &n, (const unsigned char *)body, strlen(body));
    EVP_MD_CTX_free(md);
    char *b64 = malloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, sig, (int)n);
    free(sig);
    return b64;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

static const wh_connector *g_desc;
static wh_instance g_inst = {"alexa"};

static int try_init(const char *config, void **state)
{
    return fh_init(g_desc, &g_inst, config, state);
}

static void *instance(const char *config)
{
    void *state;
    CHECK_INT(try_init(config, &state), WH_OK);
    return state;
}

/* A verified instance (our root, fetches through the override). */
static void *verified(const char *extra)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"skill_id\": \"" SKILL "\", \"ca_file\": \"%s\", \"cert_fetch_override\": "
             "\"" OVERRIDE "/\"%s}",
             g_ca_file, extra ? extra : "");
    return instance(cfg);
}

static void iso(int64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A request body of `type` with `id`, at the fake clock's now (+ skew_s). */
static char *body_of(const char *type, const char *id, long skew_s, const char *skill,
                     const char *request_extra)
{
    char ts[32], buf[4096];
    iso(fh.now_ms + skew_s * 1000, ts, sizeof ts);
    snprintf(buf, sizeof buf,
             "{\"version\":\"1.0\",\"session\":{\"new\":true,\"sessionId\":\"s-1\","
             "\"application\":{\"applicationId\":\"%s\"},\"attributes\":{\"a\":1},"
             "\"user\":{\"userId\":\"u-session\"}},"
             "\"context\":{\"System\":{\"application\":{\"applicationId\":\"%s\"},"
             "\"user\":{\"userId\":\"u-1\"},\"apiAccessToken\":\"tok\"}},"
             "\"request\":{\"type\":\"%s\",\"requestId\":\"%s\",\"timestamp\":\"%s\","
             "\"locale\":\"de-DE\"%s}}",
             skill, skill, type, id, ts, request_extra ? request_extra : "");
    return strdup(buf);
}

typedef struct call {
    wh_request req;
    char *body; /* req.body, owned */
    wh_webhook wh;
    int rc;
} call;

static void call_free(call *c)
{
    json_decref(c->req.headers);
    free(c->body);
    fh_webhook_clear(&c->wh);
    memset(c, 0, sizeof *c);
}

/* Send `body` signed (sig NULL: a real SHA-256 signature; "" none) with the cert URL. */
static void send_raw(void *s, call *c, char *body, const char *url, const char *sig,
                     const char *sig1)
{
    call_free(c);
    c->req.headers = json_object();
    c->req.ctype = "application/json";
    c->body = body;
    c->req.body = body;
    c->req.body_len = strlen(body);
    if (url) {
        json_object_set_new(c->req.headers, "signaturecertchainurl", json_string(url));
    }
    char *real = sig ? NULL : sign(body, "sha256");
    if (!sig || *sig) {
        json_object_set_new(c->req.headers, "signature-256", json_string(sig ? sig : real));
    }
    if (sig1) {
        json_object_set_new(c->req.headers, "signature", json_string(sig1));
    }
    free(real);
    c->rc = g_desc->webhook(s, &c->req, &c->wh);
}

static void send(void *s, call *c, const char *type, const char *id, const char *url)
{
    send_raw(s, c, body_of(type, id, 0, SKILL, NULL), url, NULL, NULL);
}

/* Finish fetch i with a status and body. */
static void fetch_done(int i, int status, const char *body, int timed_out)
{
    fh_exchange *e = i < fh_http_count() ? fh_http_at(i) : NULL;
    CHECK(e != NULL && e->done != NULL);
    if (!e || !e->done) {
        return;
    }
    wh_http_response r = {
        status, status ? NULL : "Connection refused", timed_out, body, body ? strlen(body) : 0,
        NULL, 0};
    fh_http_respond(e, &r);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

static void test_descriptor_and_init(void)
{
    CHECK_STR(g_desc->hdr.name, "alexa");
    CHECK(g_desc->webhook != NULL && g_desc->respond != NULL);
    const wh_option *skill = NULL;
    for (const wh_option *o = g_desc->options; o->name; o++) {
        if (strcmp(o->name, "skill_id") == 0) {
            skill = o;
        }
    }
    CHECK(skill && (skill->flags & WH_OPT_REQUIRED));

    void *s;
    CHECK_INT(try_init("{}", &s), WH_ERR_CONFIG);
    CHECK(s == NULL);
    CHECK_INT(try_init("{\"skill_id\": \"\"}", &s), WH_ERR_CONFIG);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"deadline_ms\": 50}", &s), WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "deadline_ms") != NULL);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"deadline_ms\": 60001}", &s), WH_ERR_CONFIG);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"cert_fetch_override\": \"ftp://x\"}", &s),
              WH_ERR_CONFIG);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"ca_file\": \"/nonexistent/ca.pem\"}", &s),
              WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "/nonexistent/ca.pem") != NULL);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"users\": {\"u\": 1}}", &s), WH_ERR_CONFIG);

    /* the system trust store by default, no warning */
    int warns = fh.warns;
    s = instance("{\"skill_id\": \"x\"}");
    CHECK_INT(fh.warns, warns);
    g_desc->destroy(s);
    /* warnings at start: the override, and loudly verify: false */
    s = verified(NULL);
    CHECK_INT(fh.warns, warns + 1);
    CHECK(strstr(fh.log, "cert_fetch_override") && strstr(fh.log, OVERRIDE));
    g_desc->destroy(s);
    s = instance("{\"skill_id\": \"x\", \"verify\": false}");
    CHECK_INT(fh.warns, warns + 2);
    CHECK(strstr(fh.log, "NOT checked") != NULL);
    g_desc->destroy(s);
    g_desc->destroy(NULL);
}

static void test_cert_urls(void)
{
    void *s = verified(NULL);
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"http://s3.amazonaws.com/echo.api/echo-api-cert.pem", "scheme must be https"},
        {"ftp://s3.amazonaws.com/echo.api/echo-api-cert.pem", "scheme must be https"},
        {"https:/s3.amazonaws.com/echo.api/echo-api-cert.pem", "not an absolute URL"},
        {"s3.amazonaws.com/echo.api/echo-api-cert.pem", "not an absolute URL"},
        {"https://notamazon.com/echo.api/echo-api-cert.pem", "host must be"},
        {"https://s3.amazonaws.com.evil.com/echo.api/echo-api-cert.pem", "host must be"},
        {"https://evil.com/s3.amazonaws.com/echo.api/echo-api-cert.pem", "host must be"},
        {"https://s3.amazonaws.com@evil.com/echo.api/echo-api-cert.pem", "host must be"},
        {"https://user@s3.amazonaws.com/echo.api/echo-api-cert.pem", "host must be"},
        {"https://s3.amazonaws.com./echo.api/echo-api-cert.pem", "host must be"},
        {"https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem", "port must be 443"},
        {"https://s3.amazonaws.com:4430/echo.api/echo-api-cert.pem", "port must be 443"},
        {"https://s3.amazonaws.com:443x/echo.api/echo-api-cert.pem", "port must be 443"},
        {"https://s3.amazonaws.com:000000443/echo.api/echo-api-cert.pem", "port must be 443"},
        {"https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem", "path must start"},
        {"https://s3.amazonaws.com/invalid.path/echo-api-cert.pem", "path must start"},
        {"https://s3.amazonaws.com/echo.api", "path must start"},
        {"https://s3.amazonaws.com", "path must start"},
        {"https://s3.amazonaws.com/echo.apix/echo-api-cert.pem", "path must start"},
        {"https://s3.amazonaws.com/echo.api/../echo-api-cert.pem", "path must start"},
        {"https://s3.amazonaws.com/echo.api/..", "path must start"},
        {"https://s3.amazonaws.com/echo.api/a/../../../echo.api/../x.pem", "path must start"},
        {"https://s3.amazonaws.com/x/../echo.api/../echo.api2/c.pem", "path must start"},
        {"https://s3.amazonaws.com/echo.api/%2e%2e/x.pem", "percent-escapes"},
        {"https://s3.amazonaws.com/echo.api/..\\x.pem", "backslashes"},
        {"https://s3.amazonaws.com/echo.api/c.pem?x=1", "query or fragment"},
        {"https://s3.amazonaws.com/echo.api/c.pem#f", "query or fragment"},
        {"https://s3.amazonaws.com/echo.api/c .pem", "spaces"},
        {"https://s3.amazonaws.com/echo.api/caf\xc3\xa9.pem", "non-ASCII"},
    };
    call c = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        send(s, &c, "LaunchRequest", "r-1", bad[i].url);
        CHECK_INT(c.rc, WH_OK);
        CHECK_INT(c.wh.status, 400);
        CHECK_STR(c.wh.error, "bad_cert_url");
        if (!strstr(c.wh.detail, bad[i].why)) {
            fprintf(stderr, "url %s: detail \"%s\" lacks \"%s\"\n", bad[i].url, c.wh.detail,
                    bad[i].why);
            wh_test_failures++;
        }
        CHECK_INT(c.wh.emits, 0);
    }
    CHECK_INT(fh_http_count(), 0);
    char longurl[2100] = GOOD_URL;
    memset(longurl + strlen(longurl), 'a', sizeof longurl - strlen(longurl) - 1);
    longurl[sizeof longurl - 1] = '\0';
    send(s, &c, "LaunchRequest", "r-1", longurl);
    CHECK_STR(c.wh.error, "bad_cert_url");

    /* valid spellings: the normalised path is fetched through the override */
    static const struct {
        const char *url, *fetched;
    } good[] = {
        {GOOD_URL, OVERRIDE "/echo.api/echo-api-cert.pem"},
        {"https://s3.amazonaws.com:443/echo.api/a.pem", OVERRIDE "/echo.api/a.pem"},
        {"https://s3.amazonaws.com:/echo.api/b.pem", OVERRIDE "/echo.api/b.pem"},
        {"HtTpS://S3.AMAZONAWS.COM/echo.api/c.pem", OVERRIDE "/echo.api/c.pem"},
        {"https://s3.amazonaws.com/echo.api/../echo.api/d.pem", OVERRIDE "/echo.api/d.pem"},
        {"https://s3.amazonaws.com/echo.api/x/./../e.pem", OVERRIDE "/echo.api/e.pem"},
        {"https://s3.amazonaws.com/x/../echo.api/f.pem", OVERRIDE "/echo.api/f.pem"},
        {"https://s3.amazonaws.com/echo.api/a/b/../../g.pem", OVERRIDE "/echo.api/g.pem"},
        {"https://s3.amazonaws.com/echo.api/.../h.pem", OVERRIDE "/echo.api/.../h.pem"},
        {"https://s3.amazonaws.com/echo.api/", OVERRIDE "/echo.api/"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int before = fh_http_count();
        send(s, &c, "LaunchRequest", "r-1", good[i].url);
        CHECK_INT(c.rc, WH_PENDING);
        CHECK_INT(c.wh.rejects, 0);
        CHECK_INT(fh_http_count(), before + 1);
        CHECK_STR(fh_http_at(before)->url, good[i].fetched);
        CHECK_INT(fh_http_at(before)->timeout_ms, 3000);
        CHECK(fh_http_at(before)->max_response > 0 && fh_http_at(before)->max_response <= 65536);
        fetch_done(before, 404, "NoSuchKey", 0); /* clean up: the waiter is refused */
        CHECK_INT(c.wh.dones, 1);
        CHECK_STR(c.wh.error, "cert_fetch_failed");
        CHECK(strstr(c.wh.detail, "HTTP 404") != NULL);
    }
    call_free(&c);
    g_desc->destroy(s);
    fh_http_reset();
}

static void test_fetch_once_and_cache(void)
{
    void *s = verified(NULL);
    call c[4];
    memset(c, 0, sizeof c);
    fh.dedupe_off = false;

    /* three requests before the chain arrives share one fetch */
    send(s, &c[0], "LaunchRequest", "r-a", GOOD_URL);
    send(s, &c[1], "IntentRequest", "r-b", GOOD_URL);
    send(s, &c[2], "LaunchRequest", "r-c",
         "https://s3.amazonaws.com/echo.api/x/../echo-api-cert.pem");
    for (int i = 0; i < 3; i++) {
        CHECK_INT(c[i].rc, WH_PENDING);
        CHECK_INT(c[i].wh.dones, 0);
    }
    CHECK_INT(fh_http_count(), 1);
    fh.now_ms += 1500; /* the fetch took 1.5 s: it counts against the deadline */
    fetch_done(0, 200, g_good, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(c[i].wh.dones, 1);
        CHECK_INT(c[i].wh.rejects, 0);
        CHECK_INT(c[i].wh.emits, 1);
        CHECK_INT(c[i].wh.waits, 1);
        CHECK_INT(c[i].wh.deadline_ms, 6000 - 1500);
        CHECK_STR(json_string_value(json_object_get(c[i].wh.fallback, "speech")),
                  "Sorry, I can't answer that right now.");
    }
    CHECK_STR(c[0].wh.kind, "launch");
    CHECK_STR(c[1].wh.kind, "intent");
    CHECK(strstr(fh.log, "cached") != NULL);

    /* cached now: answered synchronously, no fetch */
    send(s, &c[3], "LaunchRequest", "r-d", GOOD_URL);
    CHECK_INT(c[3].rc, WH_OK);
    CHECK_INT(c[3].wh.emits, 1);
    CHECK_INT(c[3].wh.deadline_ms, 6000);
    CHECK_INT(fh_http_count(), 1);

    /* a bad signature with a cached key: refused synchronously */
    send_raw(s, &c[3], body_of("LaunchRequest", "r-e", 0, SKILL, NULL), GOOD_URL, "AAAA", NULL);
    CHECK_INT(c[3].rc, WH_OK);
    CHECK_STR(c[3].wh.error, "bad_signature");
    /* and a signature that fails while the chain is being fetched: refused after the fetch */
    const char *other = "https://s3.amazonaws.com/echo.api/other.pem";
    char *sig = sign("something else", "sha256");
    send_raw(s, &c[3], body_of("LaunchRequest", "r-f", 0, SKILL, NULL), other, sig, NULL);
    free(sig);
    CHECK_INT(c[3].rc, WH_PENDING);
    fetch_done(1, 200, g_good, 0);
    CHECK_INT(c[3].wh.dones, 1);
    CHECK_INT(c[3].wh.status, 400);
    CHECK_STR(c[3].wh.error, "bad_signature");
    CHECK_INT(c[3].wh.emits, 0);

    /* a repeated requestId: dedupe says so, nothing is emitted */
    send(s, &c[3], "LaunchRequest", "r-a", GOOD_URL);
    CHECK_INT(c[3].rc, WH_OK);
    CHECK_INT(c[3].wh.duplicate, 1);
    CHECK_INT(c[3].wh.emits, 0);
    CHECK_INT(c[3].wh.waits, 0);

    fh.dedupe_off = true;
    fh.now_ms = T0;
    for (int i = 0; i < 4; i++) {
        call_free(&c[i]);
    }
    g_desc->destroy(s);
    fh_http_reset();
}

static void test_chain_checks(void)
{
    void *s = verified(NULL);
    call c = {0};
    static const struct {
        const char *name;
        char **pem;
        const char *error, *detail;
    } cases[] = {
        {"expired.pem", &g_expired, "cert_expired", "expired at"},
        {"future.pem", &g_future, "cert_expired", "not valid before"},
        {"nosan.pem", &g_nosan, "cert_san_mismatch", "echo-api.amazon.com"},
        {"untrusted.pem", &g_untrusted, "cert_untrusted", "does not verify"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char url[256];
        snprintf(url, sizeof url, "https://s3.amazonaws.com/echo.api/%s", cases[i].name);
        int n = fh_http_count();
        send(s, &c, "LaunchRequest", "r-1", url);
        CHECK_INT(c.rc, WH_PENDING);
        fetch_done(n, 200, *cases[i].pem, 0);
        CHECK_INT(c.wh.dones, 1);
        CHECK_INT(c.wh.status, 400);
        CHECK_STR(c.wh.error, cases[i].error);
        CHECK(strstr(c.wh.detail, cases[i].detail) != NULL);
        CHECK_INT(c.wh.emits, 0);
        /* not cached: asked again, fetched again */
        send(s, &c, "LaunchRequest", "r-1", url);
        CHECK_INT(c.rc, WH_PENDING);
        CHECK_INT(fh_http_count(), n + 2);
        fetch_done(n + 1, 500, "", 0);
        CHECK_STR(c.wh.error, "cert_fetch_failed");
    }
    /* garbage, a transport error, a timeout */
    int n = fh_http_count();
    send(s, &c, "LaunchRequest", "r-1", GOOD_URL);
    fetch_done(n, 200, "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", 0);
    CHECK_STR(c.wh.error, "bad_cert_chain");
    send(s, &c, "LaunchRequest", "r-1", GOOD_URL);
    fetch_done(n + 1, 0, NULL, 0);
    CHECK_STR(c.wh.error, "cert_fetch_failed");
    CHECK(strstr(c.wh.detail, "Connection refused") != NULL);
    send(s, &c, "LaunchRequest", "r-1", GOOD_URL);
    fetch_done(n + 2, 0, NULL, 1);
    CHECK(strstr(c.wh.detail, "timed out") != NULL);
    /* http() refusing to start: refused at once, nothing pending */
    fh.http_rc = WH_ERR_STATE;
    send(s, &c, "LaunchRequest", "r-1", GOOD_URL);
    CHECK_INT(c.rc, WH_OK);
    CHECK_STR(c.wh.error, "cert_fetch_failed");
    CHECK_INT(c.wh.dones, 0);
    fh.http_rc = 0;
    call_free(&c);
    g_desc->destroy(s);
    fh_http_reset();
}

static void test_cache_lifetime_and_limits(void)
{
    void *s = verified(NULL);
    call c = {0};
    int64_t start = fh.now_ms;
    /* a chain valid for one more hour is cached for that hour only */
    send(s, &c, "LaunchRequest", "r-1", GOOD_URL);
    fetch_done(0, 200, g_short, 0);
    CHECK_INT(c.wh.emits, 1);
    fh.now_ms = start + 3599 * 1000;
    send(s, &c, "LaunchRequest", "r-2", GOOD_URL);
    CHECK_INT(c.rc, WH_OK);
    CHECK_INT(c.wh.emits, 1);
    CHECK_INT(fh_http_count(), 1);
    fh.now_ms = start + 3600 * 1000;
    send(s, &c, "LaunchRequest", "r-3", GOOD_URL);
    CHECK_INT(c.rc, WH_PENDING);
    CHECK_INT(fh_http_count(), 2);
    fetch_done(1, 200, g_short, 0);
    CHECK_STR(c.wh.error, "cert_expired");
    fh.now_ms = start;

    /* at most 8 fetches in flight */
    call w[8];
    memset(w, 0, sizeof w);
    int first = fh_http_count();
    for (int i = 0; i < 8; i++) {
        char url[128];
        snprintf(url, sizeof url, "https://s3.amazonaws.com/echo.api/f%d.pem", i);
        send(s, &w[i], "LaunchRequest", "r-1", url);
        CHECK_INT(w[i].rc, WH_PENDING);
    }
    send(s, &c, "LaunchRequest", "r-1", "https://s3.amazonaws.com/echo.api/f8.pem");
    CHECK_INT(c.rc, WH_OK);
    CHECK_STR(c.wh.error, "cert_fetch_failed");
    CHECK(strstr(c.wh.detail, "too many") != NULL);
    CHECK_INT(fh_http_count(), first + 8);
    for (int i = 0; i < 8; i++) {
        fetch_done(first + i, 503, "", 0);
        CHECK_INT(w[i].wh.dones, 1);
        call_free(&w[i]);
    }
    /* room again */
    send(s, &c, "LaunchRequest", "r-1", "https://s3.amazonaws.com/echo.api/f8.pem");
    CHECK_INT(c.rc, WH_PENDING);
    fetch_done(first + 8, 200, g_good, 0);
    CHECK_INT(c.wh.emits, 1);
    call_free(&c);
    g_desc->destroy(s);
    fh_http_reset();

    /* at most 64 URLs cached: the least recently used goes */
    s = verified(NULL);
    for (int i = 0; i < 65; i++) {
        char url[128], id[32];
        snprintf(url, sizeof url, "https://s3.amazonaws.com/echo.api/c%d.pem", i);
        snprintf(id, sizeof id, "r-c%d", i);
        send(s, &c, "LaunchRequest", id, url);
        CHECK_INT(c.rc, WH_PENDING);
        fetch_done(fh_http_count() - 1, 200, g_good, 0);
        CHECK_INT(c.wh.emits, 1);
        if (i == 0) {
            continue;
        }
        /* keep c0 fresh, so c1 is the oldest when the 65th arrives */
        send(s, &c, "LaunchRequest", "r-1", "https://s3.amazonaws.com/echo.api/c0.pem");
        CHECK_INT(c.rc, WH_OK);
    }
    CHECK_INT(fh_http_count(), 65);
    send(s, &c, "LaunchRequest", "r-1", "https://s3.amazonaws.com/echo.api/c0.pem");
    CHECK_INT(c.rc, WH_OK);
    send(s, &c, "LaunchRequest", "r-1", "https://s3.amazonaws.com/echo.api/c1.pem");
    CHECK_INT(c.rc, WH_PENDING);
    fetch_done(65, 200, g_good, 0);
    call_free(&c);
    g_desc->destroy(s);
    fh_http_reset();
}

static void test_signature_headers(void)
{
    void *s = verified(NULL);
    call c = {0};
    send(s, &c, "LaunchRequest", "r-1", GOOD_URL);
    fetch_done(0, 200, g_good, 0);
    CHECK_INT(c.wh.emits, 1);

    send(s, &c, "LaunchRequest", "r-1", NULL);
    CHECK_STR(c.wh.error, "missing_cert_url");
    send_raw(s, &c, body_of("LaunchRequest", "r-2", 0, SKILL, NULL), GOOD_URL, "", NULL);
    CHECK_STR(c.wh.error, "missing_signature");
    char *body = body_of("LaunchRequest", "r-3", 0, SKILL, NULL);
    char *sig1 = sign(body, "sha1");
    send_raw(s, &c, body, GOOD_URL, "", sig1);
    CHECK_STR(c.wh.error, "missing_signature");
    CHECK(strstr(c.wh.detail, "allow_sha1") != NULL);
    free(sig1);
    static const char *const not_b64[] = {"abc", "ab=c", "a===", "!!!!", "AAAA=AAA"};
    for (size_t i = 0; i < sizeof not_b64 / sizeof not_b64[0]; i++) {
        send_raw(s, &c, body_of("LaunchRequest", "r-4", 0, SKILL, NULL), GOOD_URL, not_b64[i],
                 NULL);
        CHECK_STR(c.wh.error, "bad_signature");
        CHECK_STR(c.wh.detail, "the signature is not base64");
    }
    /* tampered: one byte changed after signing */
    body = body_of("LaunchRequest", "r-5", 0, SKILL, NULL);
    char *sig = sign(body, "sha256");
    body[strlen(body) - 3] ^= 1;
    send_raw(s, &c, body, GOOD_URL, sig, NULL);
    CHECK_STR(c.wh.error, "bad_signature");
    CHECK_INT(c.wh.emits, 0);
    free(sig);
    g_desc->destroy(s);

    /* allow_sha1: the legacy header alone is accepted, but never instead of a bad SHA-256 */
    s = verified(", \"allow_sha1\": true");
    int n = fh_http_count();
    body = body_of("LaunchRequest", "r-6", 0, SKILL, NULL);
    sig1 = sign(body, "sha1");
    send_raw(s, &c, body, GOOD_URL, "", sig1);
    fetch_done(n, 200, g_good, 0);
    CHECK_INT(c.wh.rejects, 0);
    CHECK_INT(c.wh.emits, 1);
    body = body_of("LaunchRequest", "r-7", 0, SKILL, NULL);
    send_raw(s, &c, body, GOOD_URL, "AAAA", sig1);
    CHECK_STR(c.wh.error, "bad_signature");
    free(sig1);
    call_free(&c);
    g_desc->destroy(s);
    fh_http_reset();
}

static void test_timestamps_and_skill(void)
{
    void *s = instance("{\"skill_id\": \"" SKILL "\", \"verify\": false, \"deadline_ms\": 2500}");
    call c = {0};
    char ts[32], extra[256];

    static const struct {
        long skew_s;
        int ok;
    } skews[] = {{0, 1}, {-150, 1}, {150, 1}, {-151, 0}, {151, 0}, {-86400, 0}};
    for (size_t i = 0; i < sizeof skews / sizeof skews[0]; i++) {
        send_raw(s, &c, body_of("LaunchRequest", "t", skews[i].skew_s, SKILL, NULL), NULL, "",
                 NULL);
        CHECK_INT(c.wh.emits, skews[i].ok);
        if (!skews[i].ok) {
            CHECK_STR(c.wh.error, "stale_timestamp");
            CHECK_INT(c.wh.status, 400);
        } else {
            CHECK_INT(c.wh.deadline_ms, 2500);
        }
    }
    /* just over the limit (epoch milliseconds): refused, and the detail does not claim
     * the offset is within what is accepted */
    static const struct {
        long long off_ms;
        const char *detail;
    } edges[] = {
        {150500, "request.timestamp is more than 150 s after now (150.500 s); Alexa's requests "
                 "are accepted within 150 s either way"},
        {-150001, "request.timestamp is more than 150 s before now (150.001 s); Alexa's "
                  "requests are accepted within 150 s either way"},
        {150000, NULL},
        {-150000, NULL},
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        snprintf(extra, sizeof extra,
                 "{\"request\":{\"type\":\"LaunchRequest\",\"requestId\":\"x\","
                 "\"timestamp\":%lld},\"session\":{\"application\":"
                 "{\"applicationId\":\"" SKILL "\"}}}",
                 (long long)fh.now_ms + edges[i].off_ms);
        send_raw(s, &c, strdup(extra), NULL, "", NULL);
        if (edges[i].detail) {
            CHECK_STR(c.wh.error, "stale_timestamp");
            CHECK_STR(c.wh.detail, edges[i].detail);
            CHECK_INT(c.wh.emits, 0);
        } else {
            CHECK_INT(c.wh.rejects, 0);
            CHECK_INT(c.wh.emits, 1);
        }
    }
    /* other spellings of the time: fractions, offsets, epoch milliseconds */
    iso(fh.now_ms, ts, sizeof ts);
    static const char *const forms[] = {"%.19s.123Z", "%.19s.5z", "%.19s+00:00",
                                        "%.19s.123456789Z"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char t[64], rx[128];
        snprintf(t, sizeof t, forms[i], ts);
        snprintf(rx, sizeof rx, "\"timestamp\":\"%s\"", t);
        char *b = body_of("LaunchRequest", "t", 0, SKILL, NULL);
        char *at = strstr(b, "\"timestamp\":\"");
        char *end = strchr(at + 13, '"');
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - b), b, rx, end + 1);
        free(b);
        send_raw(s, &c, strdup(buf), NULL, "", NULL);
        CHECK_INT(c.wh.emits, 1);
    }
    /* 14:00 at +06:00 is 08:00Z */
    char shifted[64];
    time_t t = (time_t)(fh.now_ms / 1000 + 6 * 3600);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(shifted, sizeof shifted, "%Y-%m-%dT%H:%M:%S+06:00", &tm);
    snprintf(extra, sizeof extra,
             "{\"request\":{\"type\":\"LaunchRequest\",\"requestId\":\"x\","
             "\"timestamp\":\"%s\"},\"context\":{\"System\":{\"application\":"
             "{\"applicationId\":\"" SKILL "\"}}}}",
             shifted);
    send_raw(s, &c, strdup(extra), NULL, "", NULL);
    CHECK_INT(c.wh.emits, 1);
    snprintf(extra, sizeof extra,
             "{\"request\":{\"type\":\"LaunchRequest\",\"requestId\":\"x\","
             "\"timestamp\":%lld},\"session\":{\"application\":"
             "{\"applicationId\":\"" SKILL "\"}}}",
             (long long)fh.now_ms);
    send_raw(s, &c, strdup(extra), NULL, "", NULL);
    CHECK_INT(c.wh.emits, 1);
    static const char *const bad_ts[] = {"\"2027-13-01T00:00:00Z\"",
                                         "\"2027-01-15 08:00:00Z\"",
                                         "\"2027-01-15T08:00:00\"",
                                         "\"2027-01-15T08:00:00.Z\"",
                                         "\"2027-01-15T08:00:00Zjunk\"",
                                         "null",
                                         "1.5",
                                         "-9223372036854775807",
                                         "9223372036854775807",
                                         "-1",
                                         "\"\""};
    for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++) {
        snprintf(extra, sizeof extra,
                 "{\"request\":{\"type\":\"LaunchRequest\",\"requestId\":\"x\",\"timestamp\":%s},"
                 "\"session\":{\"application\":{\"applicationId\":\"" SKILL "\"}}}",
                 bad_ts[i]);
        send_raw(s, &c, strdup(extra), NULL, "", NULL);
        CHECK_STR(c.wh.error, "bad_timestamp");
    }

    /* the skill id: both places must name it when present */
    send_raw(s, &c, body_of("LaunchRequest", "t", 0, "amzn1.ask.skill.other", NULL), NULL, "",
             NULL);
    CHECK_STR(c.wh.error, "wrong_skill");
    snprintf(extra, sizeof extra,
             "{\"request\":{\"type\":\"LaunchRequest\",\"requestId\":\"x\",\"timestamp\":%lld},"
             "\"session\":{\"application\":{\"applicationId\":\"" SKILL "\"}},"
             "\"context\":{\"System\":{\"application\":{\"applicationId\":\"other\"}}}}",
             (long long)fh.now_ms);
    send_raw(s, &c, strdup(extra), NULL, "", NULL);
    CHECK_STR(c.wh.error, "wrong_skill");
    snprintf(extra, sizeof extra,
             "{\"request\":{\"type\":\"LaunchRequest\",\"requestId\":\"x\",\"timestamp\":%lld}}",
             (long long)fh.now_ms);
    send_raw(s, &c, strdup(extra), NULL, "", NULL);
    CHECK_STR(c.wh.error, "wrong_skill");
    CHECK(strstr(c.wh.detail, "no application id") != NULL);

    /* malformed bodies */
    send_raw(s, &c, strdup("[1, 2]"), NULL, "", NULL);
    CHECK_STR(c.wh.error, "bad_json");
    send_raw(s, &c, strdup(""), NULL, "", NULL);
    CHECK_STR(c.wh.error, "bad_json");
    send_raw(s, &c, strdup("{\"request\": {\"type\": \"LaunchRequest\"}}"), NULL, "", NULL);
    CHECK_STR(c.wh.error, "bad_request");
    CHECK_INT(c.wh.emits, 0);
    call_free(&c);
    g_desc->destroy(s);
}

static const json_t *at(const json_t *root, const char *path)
{
    return wh_json_path(root, path);
}

static void test_event_shapes(void)
{
    void *s = instance("{\"skill_id\": \"" SKILL "\", \"verify\": false, "
                       "\"users\": {\"u-1\": \"Ana\"}}");
    call c = {0};
    const char *slots =
        ",\"intent\":{\"name\":\"PlanIntent\",\"confirmationStatus\":\"CONFIRMED\",\"slots\":{"
        "\"spoken\":{\"name\":\"spoken\",\"value\":\"tomorrow\"},"
        "\"resolved\":{\"name\":\"resolved\",\"value\":\"q three\",\"resolutions\":"
        "{\"resolutionsPerAuthority\":[{\"status\":{\"code\":\"ER_SUCCESS_NO_MATCH\"}},"
        "{\"status\":{\"code\":\"ER_SUCCESS_MATCH\"},\"values\":[{\"value\":{\"name\":\"Q3\","
        "\"id\":\"q3\"}},{\"value\":{\"name\":\"Q4\"}}]}]}},"
        "\"nomatch\":{\"name\":\"nomatch\",\"value\":\"blue\",\"resolutions\":"
        "{\"resolutionsPerAuthority\":[{\"status\":{\"code\":\"ER_SUCCESS_NO_MATCH\"}}]}},"
        "\"empty\":{\"name\":\"empty\",\"confirmationStatus\":\"NONE\"},"
        "\"simple\":{\"name\":\"simple\",\"slotValue\":{\"type\":\"Simple\",\"value\":\"x\"}},"
        "\"list\":{\"name\":\"list\",\"slotValue\":{\"type\":\"List\",\"values\":["
        "{\"type\":\"Simple\",\"value\":\"ham\"},{\"type\":\"Simple\",\"value\":\"egg\","
        "\"resolutions\":{\"resolutionsPerAuthority\":[{\"status\":{\"code\":"
        "\"ER_SUCCESS_MATCH\"},\"values\":[{\"value\":{\"name\":\"Egg\"}}]}]}},"
        "{\"type\":\"Simple\"}]}},"
        "\"nolist\":{\"name\":\"nolist\",\"slotValue\":{\"type\":\"List\",\"values\":["
        "{\"type\":\"Simple\"}]}},"
        "\"odd\":[1,2]}}";
    send_raw(s, &c, body_of("IntentRequest", "r-i", 0, SKILL, slots), NULL, "", NULL);
    CHECK_INT(c.wh.emits, 1);
    CHECK_STR(c.wh.kind, "intent");
    json_t *want = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:[s, s]}}", "name", "PlanIntent",
                             "confirmation", "CONFIRMED", "slots", "spoken", "tomorrow", "resolved",
                             "Q3", "nomatch", "blue", "simple", "x", "list", "ham", "Egg");
    if (!json_equal(want, at(c.wh.data, "intent"))) {
        char *got = json_dumps(at(c.wh.data, "intent"), JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(stderr, "intent: %s\n", got);
        free(got);
        wh_test_failures++;
    }
    json_decref(want);
    CHECK_STR(json_string_value(at(c.wh.data, "user.id")), "u-1");
    CHECK_STR(json_string_value(at(c.wh.data, "user.name")), "Ana");
    CHECK_STR(json_string_value(at(c.wh.data, "session.id")), "s-1");
    CHECK(json_is_true(at(c.wh.data, "session.new")));
    CHECK_INT(json_integer_value(at(c.wh.data, "session.attributes.a")), 1);
    CHECK_STR(json_string_value(at(c.wh.data, "locale")), "de-DE");
    CHECK_STR(json_string_value(at(c.wh.data, "request.type")), "IntentRequest");
    CHECK_STR(json_string_value(at(c.wh.data, "request.id")), "r-i");
    CHECK(json_is_string(at(c.wh.data, "request.timestamp")));
    /* the bearer tokens Amazon sends are not kept in the event (journal, tail) */
    CHECK_STR(json_string_value(at(c.wh.data, "raw.context.System.apiAccessToken")), "(redacted)");
    CHECK_INT(c.wh.waits, 1);

    /* session end: answered at once with an empty response, rules still see it */
    send_raw(s, &c,
             body_of("SessionEndedRequest", "r-e", 0, SKILL,
                     ",\"reason\":\"ERROR\",\"error\":{\"type\":\"INVALID_RESPONSE\"}"),
             NULL, "", NULL);
    CHECK_STR(c.wh.kind, "session_ended");
    CHECK_INT(c.wh.waits, 0);
    CHECK_INT(c.wh.answers, 1);
    CHECK_STR(c.wh.answer_body, "{\"version\":\"1.0\",\"response\":{}}");
    CHECK_STR(json_string_value(at(c.wh.data, "request.reason")), "ERROR");
    CHECK_STR(json_string_value(at(c.wh.data, "request.error.type")), "INVALID_RESPONSE");
    CHECK(at(c.wh.data, "intent") == NULL);

    /* any other request type is `request`; no session, user from the session is not needed */
    char extra[512];
    snprintf(extra, sizeof extra,
             "{\"request\":{\"type\":\"Messaging.MessageReceived\",\"requestId\":\"x\","
             "\"timestamp\":%lld,\"intent\":{\"name\":\"A\"}},\"context\":{\"System\":{"
             "\"application\":{\"applicationId\":\"" SKILL "\"},\"user\":{\"userId\":\"u-2\"}}}}",
             (long long)fh.now_ms);
    send_raw(s, &c, strdup(extra), NULL, "", NULL);
    CHECK_STR(c.wh.kind, "request");
    CHECK(at(c.wh.data, "session") == NULL);
    CHECK_STR(json_string_value(at(c.wh.data, "user.id")), "u-2");
    CHECK(at(c.wh.data, "user.name") == NULL);
    CHECK_STR(json_string_value(at(c.wh.data, "intent.name")), "A");
    CHECK_INT(json_object_size(at(c.wh.data, "intent.slots")), 0);
    CHECK_INT(c.wh.waits, 1);
    call_free(&c);
    g_desc->destroy(s);
}

/* A CanFulfillIntentRequest body for `intent` (NULL: none) with `slots` (JSON text or NULL). */
static char *cfir_body(const char *id, const char *intent, const char *slots, long skew_s,
                       const char *skill)
{
    char extra[2048];
    if (intent) {
        snprintf(extra, sizeof extra, ",\"intent\":{\"name\":\"%s\",\"slots\":%s}", intent,
                 slots ? slots : "{}");
    } else {
        extra[0] = '\0';
    }
    return body_of("CanFulfillIntentRequest", id, skew_s, skill, extra);
}

/* The answer's body must equal `want` (JSON text), compared as JSON. */
static void check_answer(const call *c, const char *want)
{
    json_t *got = c->wh.answer_body ? json_loads(c->wh.answer_body, 0, NULL) : NULL;
    json_t *w = json_loads(want, 0, NULL);
    CHECK(w != NULL);
    if (!got || !json_equal(got, w)) {
        fprintf(stderr, "answer: %s\n want: %s\n", c->wh.answer_body ? c->wh.answer_body : "(none)",
                want);
        wh_test_failures++;
    }
    json_decref(got);
    json_decref(w);
}

static void test_can_fulfill(void)
{
    /* the key: a list (the hub checks the type with the line; init checks it too) of
     * non-empty intent names */
    void *s;
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"can_fulfill\": \"TopicIntent\"}", &s),
              WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "`can_fulfill` must be a list of intent names") != NULL);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"can_fulfill\": [\"A\", 2]}", &s), WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "`can_fulfill`: entry 2 must be an intent name") != NULL);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"can_fulfill\": [\"\"]}", &s), WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "`can_fulfill`: entry 1 must be an intent name") != NULL);
    const wh_option *opt = NULL;
    for (const wh_option *o = g_desc->options; o->name; o++) {
        if (strcmp(o->name, "can_fulfill") == 0) {
            opt = o;
        }
    }
    CHECK(opt && opt->type == WH_OPT_ARRAY && opt->def && strcmp(opt->def, "[]") == 0);

    s = instance("{\"skill_id\": \"" SKILL "\", \"verify\": false, "
                 "\"can_fulfill\": [\"TopicIntent\", \"AMAZON.HelpIntent\"]}");
    call c = {0};
    const char *slots =
        "{\"topic\":{\"name\":\"topic\",\"value\":\"q three\",\"resolutions\":"
        "{\"resolutionsPerAuthority\":[{\"status\":{\"code\":\"ER_SUCCESS_MATCH\"},"
        "\"values\":[{\"value\":{\"name\":\"Q3\"}}]}]}},"
        "\"when\":{\"name\":\"when\",\"confirmationStatus\":\"NONE\"},"
        "\"list\":{\"name\":\"list\",\"slotValue\":{\"type\":\"List\",\"values\":["
        "{\"type\":\"Simple\",\"value\":\"ham\"}]}},"
        "\"nolist\":{\"name\":\"nolist\",\"slotValue\":{\"type\":\"List\",\"values\":[]}}}";

    /* listed: YES, each slot with a value understood and fulfilled; no event, no wait */
    send_raw(s, &c, cfir_body("cf-1", "TopicIntent", slots, 0, SKILL), NULL, "", NULL);
    CHECK_INT(c.rc, WH_OK);
    CHECK_INT(c.wh.emits, 0);
    CHECK_INT(c.wh.waits, 0);
    CHECK_INT(c.wh.rejects, 0);
    CHECK_INT(c.wh.dedupes, 0);
    CHECK_INT(c.wh.answers, 1);
    CHECK_INT(c.wh.status, 200);
    CHECK_STR(c.wh.answer_ctype, "application/json;charset=UTF-8");
    check_answer(&c, "{\"version\":\"1.0\",\"response\":{\"canFulfillIntent\":{"
                     "\"canFulfill\":\"YES\",\"slots\":{"
                     "\"topic\":{\"canUnderstand\":\"YES\",\"canFulfill\":\"YES\"},"
                     "\"list\":{\"canUnderstand\":\"YES\",\"canFulfill\":\"YES\"}}}}}");
    send_raw(s, &c, cfir_body("cf-2", "AMAZON.HelpIntent", NULL, 0, SKILL), NULL, "", NULL);
    check_answer(&c, "{\"version\":\"1.0\",\"response\":{\"canFulfillIntent\":{"
                     "\"canFulfill\":\"YES\",\"slots\":{}}}}");

    /* not listed, or no intent at all: NO */
    send_raw(s, &c, cfir_body("cf-3", "OrderPizzaIntent", slots, 0, SKILL), NULL, "", NULL);
    CHECK_INT(c.wh.emits, 0);
    CHECK_INT(c.wh.waits, 0);
    check_answer(&c, "{\"version\":\"1.0\",\"response\":{\"canFulfillIntent\":{"
                     "\"canFulfill\":\"NO\",\"slots\":{"
                     "\"topic\":{\"canUnderstand\":\"NO\",\"canFulfill\":\"NO\"},"
                     "\"list\":{\"canUnderstand\":\"NO\",\"canFulfill\":\"NO\"}}}}}");
    send_raw(s, &c, cfir_body("cf-4", NULL, NULL, 0, SKILL), NULL, "", NULL);
    check_answer(&c, "{\"version\":\"1.0\",\"response\":{\"canFulfillIntent\":{"
                     "\"canFulfill\":\"NO\",\"slots\":{}}}}");
    /* intent names are matched exactly */
    send_raw(s, &c, cfir_body("cf-5", "topicintent", NULL, 0, SKILL), NULL, "", NULL);
    check_answer(&c, "{\"version\":\"1.0\",\"response\":{\"canFulfillIntent\":{"
                     "\"canFulfill\":\"NO\",\"slots\":{}}}}");

    /* the timestamp and the skill id are checked first, as for any request */
    send_raw(s, &c, cfir_body("cf-6", "TopicIntent", NULL, -200, SKILL), NULL, "", NULL);
    CHECK_STR(c.wh.error, "stale_timestamp");
    CHECK_INT(c.wh.answers, 0);
    send_raw(s, &c, cfir_body("cf-7", "TopicIntent", NULL, 0, "amzn1.ask.skill.other"), NULL, "",
             NULL);
    CHECK_STR(c.wh.error, "wrong_skill");
    CHECK_INT(c.wh.answers, 0);
    g_desc->destroy(s);

    /* the default: every intent NO */
    s = instance("{\"skill_id\": \"" SKILL "\", \"verify\": false}");
    send_raw(s, &c, cfir_body("cf-8", "TopicIntent", NULL, 0, SKILL), NULL, "", NULL);
    check_answer(&c, "{\"version\":\"1.0\",\"response\":{\"canFulfillIntent\":{"
                     "\"canFulfill\":\"NO\",\"slots\":{}}}}");
    g_desc->destroy(s);

    /* verified: the certificate chain and the signature come first */
    s = verified(", \"can_fulfill\": [\"TopicIntent\"]");
    int n = fh_http_count();
    send_raw(s, &c, cfir_body("cf-9", "TopicIntent", NULL, 0, SKILL), GOOD_URL, NULL, NULL);
    CHECK_INT(c.rc, WH_PENDING);
    CHECK_INT(c.wh.answers, 0);
    fetch_done(n, 200, g_good, 0);
    CHECK_INT(c.wh.dones, 1);
    CHECK_INT(c.wh.emits, 0);
    check_answer(&c, "{\"version\":\"1.0\",\"response\":{\"canFulfillIntent\":{"
                     "\"canFulfill\":\"YES\",\"slots\":{}}}}");
    char *body = cfir_body("cf-10", "TopicIntent", NULL, 0, SKILL);
    char *sig = sign(body, "sha256");
    body[strlen(body) - 3] ^= 1; /* tampered after signing */
    send_raw(s, &c, body, GOOD_URL, sig, NULL);
    free(sig);
    CHECK_STR(c.wh.error, "bad_signature");
    CHECK_INT(c.wh.answers, 0);
    send_raw(s, &c, cfir_body("cf-11", "TopicIntent", NULL, 0, SKILL), NULL, NULL, NULL);
    CHECK_STR(c.wh.error, "missing_cert_url");
    CHECK_INT(c.wh.answers, 0);
    call_free(&c);
    g_desc->destroy(s);
    fh_http_reset();
}

/* respond() with `response` (JSON text) for an event; returns the parsed envelope. */
static json_t *respond(void *s, const char *response, const char *event)
{
    json_t *r = json_loads(response, 0, NULL);
    json_t *e =
        json_loads(event ? event : "{\"data\":{\"session\":{\"attributes\":{\"k\":1}}}}", 0, NULL);
    CHECK(r && e);
    wh_reply out = {0};
    CHECK_INT(g_desc->respond(s, e, r, &out), WH_OK);
    CHECK_INT(out.status, 200);
    CHECK_STR(out.ctype, "application/json;charset=UTF-8");
    CHECK(out.body && strlen(out.body) <= 24 * 1024);
    json_t *env = out.body ? json_loads(out.body, 0, NULL) : NULL;
    CHECK(env != NULL);
    CHECK_STR(json_string_value(json_object_get(env, "version")), "1.0");
    CHECK(json_is_boolean(at(env, "response.shouldEndSession")));
    fh_reply_clear(&out);
    json_decref(r);
    json_decref(e);
    return env;
}

static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

static void test_respond(void)
{
    void *s = instance("{\"skill_id\": \"x\", \"verify\": false, \"fallback_speech\": \"Later.\"}");

    json_t *env = respond(s,
                          "{\"speech\": \"Hi\", \"reprompt\": \"<speak>Again?</speak>\", \"card\": "
                          "{\"title\": \"T\", \"text\": \"C\"}, \"end_session\": false, "
                          "\"attributes\": {\"x\": [1]}}",
                          NULL);
    json_t *want = json_loads(
        "{\"version\":\"1.0\",\"sessionAttributes\":{\"x\":[1]},\"response\":{\"outputSpeech\":"
        "{\"type\":\"PlainText\",\"text\":\"Hi\"},\"card\":{\"type\":\"Simple\",\"title\":\"T\","
        "\"content\":\"C\"},\"reprompt\":{\"outputSpeech\":{\"type\":\"SSML\",\"ssml\":"
        "\"<speak>Again?</speak>\"}},\"shouldEndSession\":false}}",
        0, NULL);
    CHECK(json_equal(env, want));
    json_decref(want);
    json_decref(env);

    /* defaults: the session ends, attributes are not carried; SSML trimmed */
    env = respond(s, "{\"speech\": \"  <speak>a &amp; b</speak>\\n\"}", NULL);
    CHECK_STR(json_string_value(at(env, "response.outputSpeech.type")), "SSML");
    CHECK_STR(json_string_value(at(env, "response.outputSpeech.ssml")), "<speak>a &amp; b</speak>");
    CHECK(json_is_true(at(env, "response.shouldEndSession")));
    CHECK(json_object_get(env, "sessionAttributes") == NULL);
    CHECK(at(env, "response.reprompt") == NULL && at(env, "response.card") == NULL);
    json_decref(env);

    /* the session goes on: its attributes are carried over */
    env = respond(s, "{\"speech\": 42, \"end_session\": \"false\"}", NULL);
    CHECK_STR(json_string_value(at(env, "response.outputSpeech.text")), "42");
    CHECK(json_is_false(at(env, "response.shouldEndSession")));
    CHECK_INT(json_integer_value(at(env, "sessionAttributes.k")), 1);
    json_decref(env);

    /* odd values: warned about, sensible defaults */
    int warns = fh.warns;
    env = respond(s, "{\"speech\": \"\", \"end_session\": 0, \"attributes\": [1], \"card\": 5}",
                  NULL);
    CHECK_INT(fh.warns, warns + 2);
    CHECK(at(env, "response.outputSpeech") == NULL);
    CHECK(json_is_true(at(env, "response.shouldEndSession")));
    CHECK(json_object_get(env, "sessionAttributes") == NULL);
    CHECK(at(env, "response.card") == NULL);
    json_decref(env);

    /* the fallback object the hub passes at the deadline */
    env = respond(s, "{\"speech\": \"Later.\"}", NULL);
    CHECK_STR(json_string_value(at(env, "response.outputSpeech.text")), "Later.");
    json_decref(env);

    /* speech over 8000 characters is shortened (by characters, not bytes) */
    size_t n = 9000;
    char *big = malloc(n * 2 + 64);
    char *p = big + sprintf(big, "{\"speech\": \"");
    for (size_t i = 0; i < n; i++) {
        p += sprintf(p, "\xc3\xa9"); /* é */
    }
    sprintf(p, "\"}");
    env = respond(s, big, NULL);
    CHECK_INT(utf8_len(json_string_value(at(env, "response.outputSpeech.text"))), 8000);
    json_decref(env);
    free(big);

    /* SSML over 8000 characters becomes plain text without tags */
    big = malloc(20 * 1000 + 64);
    p = big + sprintf(big, "{\"speech\": \"<speak>");
    for (int i = 0; i < 1000; i++) {
        p += sprintf(p, "<p>a&amp;b</p>");
    }
    sprintf(p, "</speak>\"}");
    env = respond(s, big, NULL);
    CHECK_STR(json_string_value(at(env, "response.outputSpeech.type")), "PlainText");
    const char *text = json_string_value(at(env, "response.outputSpeech.text"));
    CHECK(text && strlen(text) == 3000 && strncmp(text, "a&ba&b", 6) == 0);
    json_decref(env);
    free(big);

    /* a card is capped at 8000 characters together */
    big = malloc(20000);
    p = big + sprintf(big, "{\"card\": {\"title\": \"Title\", \"text\": \"");
    memset(p, 'x', 9000);
    sprintf(p + 9000, "\"}}");
    env = respond(s, big, NULL);
    CHECK_INT(strlen(json_string_value(at(env, "response.card.content"))), 8000 - 5);
    json_decref(env);
    free(big);

    /* over 24 KB: attributes go first, then the card, then only the fallback is said */
    big = malloc(40000);
    p = big + sprintf(big, "{\"speech\": \"hello\", \"end_session\": false, \"attributes\": "
                           "{\"blob\": \"");
    memset(p, 'y', 30000);
    sprintf(p + 30000, "\"}}");
    warns = fh.warns;
    env = respond(s, big, NULL);
    CHECK_INT(fh.warns, warns + 1);
    CHECK(json_object_get(env, "sessionAttributes") == NULL);
    CHECK_STR(json_string_value(at(env, "response.outputSpeech.text")), "hello");
    json_decref(env);
    p = big + sprintf(big, "{\"speech\": \"");
    for (int i = 0; i < 7000; i++) {
        p += sprintf(p, "\xf0\x9f\x98\x80"); /* 4 bytes each: 28 KB under 8000 characters */
    }
    sprintf(p, "\", \"card\": {\"title\": \"t\"}}");
    env = respond(s, big, NULL);
    CHECK_STR(json_string_value(at(env, "response.outputSpeech.text")), "Later.");
    CHECK(at(env, "response.card") == NULL);
    json_decref(env);
    free(big);
    g_desc->destroy(s);
}

/* ------------------------------------------------------------------------ */
/* notify: proactive events                                                  */

#define N_ID "amzn1.application-oa2-client.ID1"
#define N_SECRET "S3CRET/+&=value"
#define N_AUTH "https://auth.test/auth/o2/token"
#define N_EVENTS "https://events.test/v1/proactiveEvents/stages/development"
#define N_TOKEN1 "Atza|TOKEN-ONE"
#define N_TOKEN2 "Atza|TOKEN-TWO"

static const wh_operation *notify_op(void)
{
    for (const wh_operation *op = g_desc->operations; op && op->name; op++) {
        if (strcmp(op->name, "notify") == 0) {
            return op;
        }
    }
    return NULL;
}

/* An instance with client credentials (expiry 15 minutes) plus `extra` keys. */
static void *notifier(const char *extra)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"skill_id\": \"x\", \"client_id\": \"" N_ID "\", \"client_secret\": \"" N_SECRET
             "\", \"auth_url\": \"" N_AUTH "\", \"events_api_base\": \"https://events.test/\", "
             "\"expiry_s\": 900%s}",
             extra ? extra : "");
    return instance(cfg);
}

static void call_reset(wh_call *c, const char *key, int attempt)
{
    fh_call_clear(c);
    c->key = key;
    c->attempt = attempt;
}

/* Start notify with `args` (JSON text) as call `c` (key, attempt). */
static void notify(void *s, wh_call *c, const char *key, int attempt, const char *args)
{
    call_reset(c, key, attempt);
    json_t *a = json_loads(args, 0, NULL);
    CHECK(a != NULL);
    CHECK_INT(notify_op()->start(s, c, a), WH_OK);
    json_decref(a);
}

/* Answer exchange i with a status, a body and response headers (JSON text or NULL). */
static void answer(int i, int status, const char *body, const char *headers)
{
    fh_exchange *e = i < fh_http_count() ? fh_http_at(i) : NULL;
    CHECK(e != NULL && e->done != NULL);
    if (!e || !e->done) {
        return;
    }
    fh_http_answer(e, status, body, headers);
}

static void token_ok(int i, const char *token, int expires_in)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"access_token\": \"%s\", \"scope\": \"alexa::proactive_events\", "
             "\"token_type\": \"bearer\", \"expires_in\": %d}",
             token, expires_in);
    CHECK_STR(fh_http_at(i)->url, N_AUTH);
    answer(i, 200, body, NULL);
}

static char *expected_ref(const char *key)
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(key, strlen(key), md, &n, EVP_sha256(), NULL);
    char *out = malloc(3 + 64 + 1);
    memcpy(out, "wh-", 3);
    wh_hex(md, 32, out + 3);
    return out;
}

static bool has_header(int i, const char *line)
{
    return fh_http_has_header(fh_http_at(i), line);
}

static json_t *body_json(int i)
{
    const char *text = fh_http_at(i)->body;
    json_t *b = text ? json_loads(text, 0, NULL) : NULL;
    CHECK(b != NULL);
    return b;
}

static const char *jget(const json_t *root, const char *path)
{
    return json_string_value(wh_json_path(root, path));
}

static void test_notify_config(void)
{
    const wh_operation *op = notify_op();
    CHECK(op != NULL);
    if (!op) {
        return;
    }
    CHECK(op->flags == 0);
    const char *want[] = {"user", "creator", "count", "urgency"};
    for (size_t i = 0; i < 4; i++) {
        CHECK(op->args[i].name && strcmp(op->args[i].name, want[i]) == 0);
        CHECK(((op->args[i].flags & WH_OPT_REQUIRED) != 0) == (i < 3));
    }
    CHECK(op->args[4].name == NULL);
    int secrets = 0;
    for (const wh_option *o = g_desc->options; o->name; o++) {
        if (strcmp(o->name, "client_id") == 0 || strcmp(o->name, "client_secret") == 0) {
            secrets += (o->flags & WH_OPT_SECRET) != 0;
        }
    }
    CHECK_INT(secrets, 2);

    void *s;
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"client_id\": \"a\"}", &s), WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "client_secret") != NULL);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"client_secret\": \"" N_SECRET "\"}", &s),
              WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "client_id") != NULL && !strstr(fh.log, N_SECRET));
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"stage\": \"beta\"}", &s), WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "stage") != NULL);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"expiry_s\": 299}", &s), WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "expiry_s") != NULL);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"expiry_s\": 86401}", &s), WH_ERR_CONFIG);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"auth_url\": \"ftp://x/token\"}", &s),
              WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "auth_url") != NULL);
    CHECK_INT(try_init("{\"skill_id\": \"x\", \"events_api_base\": \"https://e.test/?a=1\"}", &s),
              WH_ERR_CONFIG);
    CHECK(strstr(fh.log, "events_api_base") != NULL);

    /* plain http:// for credentials and tokens: a warning each */
    int warns = fh.warns;
    s = notifier(", \"auth_url\": \"http://127.0.0.1:9/token\", \"events_api_base\": "
                 "\"http://127.0.0.1:9\"");
    CHECK_INT(fh.warns, warns + 2);
    g_desc->destroy(s);

    /* no credentials: the instance starts, notify says what to configure */
    s = instance("{\"skill_id\": \"x\"}");
    wh_call c = {0};
    notify(s, &c, "k", 1, "{\"user\": \"u\", \"creator\": \"team\", \"count\": 1}");
    CHECK_INT(c.completes, 1);
    CHECK_INT(c.outcome, WH_CALL_FAIL);
    CHECK(strstr(c.error, "client_id") && strstr(c.error, "client_secret"));
    CHECK_INT(fh_http_count(), 0);
    call_reset(&c, "", 0);
    g_desc->destroy(s);
}

static void test_notify_event_and_token(void)
{
    int64_t saved = fh.now_ms;
    fh.now_ms = T0 + 250;
    fh_http_reset();
    void *s = notifier(NULL);
    wh_call a = {0}, b = {0}, c = {0};

    /* two calls before any token: one token request */
    notify(s, &a, "run-1.0", 1,
           "{\"user\": \"amzn1.ask.account.U1\", \"creator\": \"your team\", \"count\": 2, "
           "\"urgency\": \"URGENT\"}");
    notify(s, &b, "run-2.0", 1,
           "{\"user\": \"amzn1.ask.account.U2\", \"creator\": \"Ben\", \"count\": \" 3\"}");
    CHECK_INT(fh_http_count(), 1);
    CHECK_INT(a.completes + b.completes, 0);
    CHECK_STR(fh_http_at(0)->method, "POST");
    CHECK_STR(fh_http_at(0)->url, N_AUTH);
    CHECK(has_header(0, "Content-Type: application/x-www-form-urlencoded"));
    CHECK_STR(fh_http_at(0)->body,
              "grant_type=client_credentials&client_id=amzn1.application-oa2-"
              "client.ID1&client_secret=S3CRET%2F%2B%26%3Dvalue&scope=alexa%3A%3A"
              "proactive_events");
    token_ok(0, N_TOKEN1, 3600);
    CHECK_INT(fh_http_count(), 3);
    for (int i = 1; i <= 2; i++) {
        CHECK_STR(fh_http_at(i)->method, "POST");
        CHECK_STR(fh_http_at(i)->url, N_EVENTS);
        CHECK(has_header(i, "Authorization: Bearer " N_TOKEN1));
        CHECK(has_header(i, "Content-Type: application/json"));
    }

    /* the event, field by field */
    char *ref_a = expected_ref("run-1.0"), *ref_b = expected_ref("run-2.0");
    json_t *ev = body_json(1);
    CHECK_STR(jget(ev, "timestamp"), "2027-01-15T08:00:00.250Z");
    CHECK_STR(jget(ev, "expiryTime"), "2027-01-15T08:15:00.250Z");
    CHECK_STR(jget(ev, "referenceId"), ref_a);
    CHECK_INT(strlen(ref_a), 67);
    CHECK_STR(jget(ev, "event.name"), "AMAZON.MessageAlert.Activated");
    CHECK_STR(jget(ev, "event.payload.state.status"), "UNREAD");
    CHECK_STR(jget(ev, "event.payload.state.freshness"), "NEW");
    CHECK_STR(jget(ev, "event.payload.messageGroup.creator.name"), "your team");
    CHECK_INT(json_integer_value(wh_json_path(ev, "event.payload.messageGroup.count")), 2);
    CHECK(json_is_integer(wh_json_path(ev, "event.payload.messageGroup.count")));
    CHECK_STR(jget(ev, "event.payload.messageGroup.urgency"), "URGENT");
    CHECK(json_is_array(json_object_get(ev, "localizedAttributes")));
    CHECK_STR(jget(ev, "relevantAudience.type"), "Unicast");
    CHECK_STR(jget(ev, "relevantAudience.payload.user"), "amzn1.ask.account.U1");
    json_decref(ev);
    ev = body_json(2);
    CHECK_STR(jget(ev, "referenceId"), ref_b);
    CHECK_STR(jget(ev, "relevantAudience.payload.user"), "amzn1.ask.account.U2");
    CHECK_STR(jget(ev, "event.payload.messageGroup.creator.name"), "Ben");
    CHECK_INT(json_integer_value(wh_json_path(ev, "event.payload.messageGroup.count")), 3);
    CHECK(wh_json_path(ev, "event.payload.messageGroup.urgency") == NULL);
    json_decref(ev);

    /* 202: OK with {status, reference_id} */
    answer(1, 202, "", NULL);
    CHECK_INT(a.completes, 1);
    CHECK_INT(a.outcome, WH_CALL_OK);
    CHECK_INT(json_integer_value(json_object_get(a.result, "status")), 202);
    CHECK_STR(jget(a.result, "reference_id"), ref_a);
    CHECK_INT(json_object_size(a.result), 2);
    answer(2, 202, NULL, NULL);
    CHECK_INT(b.completes, 1);
    CHECK_INT(b.outcome, WH_CALL_OK);

    /* ten minutes later the token is reused; a minute before it expires it is not */
    fh.now_ms += 600000;
    notify(s, &c, "run-3.0", 1, "{\"user\": \"u\", \"creator\": \"team\", \"count\": 1}");
    CHECK_INT(fh_http_count(), 4);
    CHECK_STR(fh_http_at(3)->url, N_EVENTS);
    CHECK(has_header(3, "Authorization: Bearer " N_TOKEN1));
    answer(3, 202, NULL, NULL);
    CHECK_INT(c.outcome, WH_CALL_OK);
    fh.now_ms = T0 + 250 + (3600 - 60) * 1000LL;
    notify(s, &c, "run-4.0", 1, "{\"user\": \"u\", \"creator\": \"team\", \"count\": 1}");
    CHECK_INT(fh_http_count(), 5);
    CHECK_STR(fh_http_at(4)->url, N_AUTH);
    token_ok(4, N_TOKEN2, 3600);
    CHECK_INT(fh_http_count(), 6);
    CHECK(has_header(5, "Authorization: Bearer " N_TOKEN2));
    json_t *ev4 = body_json(5);
    CHECK_STR(jget(ev4, "timestamp"), "2027-01-15T08:59:00.250Z");
    CHECK_STR(jget(ev4, "expiryTime"), "2027-01-15T09:14:00.250Z");
    json_decref(ev4);
    answer(5, 202, NULL, NULL);
    CHECK_INT(c.outcome, WH_CALL_OK);

    /* live stage, another region, default expiry (one hour) */
    g_desc->destroy(s);
    s = notifier(", \"stage\": \"live\", \"events_api_base\": \"https://api.eu.amazonalexa.com\", "
                 "\"expiry_s\": 3600");
    fh.now_ms = T0;
    fh_http_reset();
    notify(s, &c, "k", 1, "{\"user\": \"u\", \"creator\": \"team\", \"count\": 1}");
    token_ok(0, N_TOKEN1, 3600);
    CHECK_STR(fh_http_at(1)->url, "https://api.eu.amazonalexa.com/v1/proactiveEvents/");
    ev = body_json(1);
    CHECK_STR(jget(ev, "timestamp"), "2027-01-15T08:00:00.000Z");
    CHECK_STR(jget(ev, "expiryTime"), "2027-01-15T09:00:00.000Z");
    json_decref(ev);
    answer(1, 202, NULL, NULL);

    free(ref_a);
    free(ref_b);
    call_reset(&a, "", 0);
    call_reset(&b, "", 0);
    call_reset(&c, "", 0);
    g_desc->destroy(s);
    fh.now_ms = saved;
    fh_http_reset();
}

static void test_notify_refresh_after_401(void)
{
    fh_http_reset();
    void *s = notifier(NULL);
    wh_call a = {0}, b = {0};
    const char *args = "{\"user\": \"u\", \"creator\": \"team\", \"count\": 4}";

    /* a cached token that Amazon no longer takes: one new token, the same event again */
    notify(s, &a, "run-401", 1, args);
    token_ok(0, N_TOKEN1, 3600);
    answer(1, 401, "{\"message\": \"token expired\"}", NULL);
    CHECK_INT(a.completes, 0);
    CHECK_INT(fh_http_count(), 3);
    CHECK_STR(fh_http_at(2)->url, N_AUTH);
    token_ok(2, N_TOKEN2, 3600);
    CHECK_INT(fh_http_count(), 4);
    CHECK_STR(fh_http_at(3)->url, N_EVENTS);
    CHECK(has_header(3, "Authorization: Bearer " N_TOKEN2));
    CHECK_STR(fh_http_at(3)->body, fh_http_at(1)->body);
    answer(3, 202, NULL, NULL);
    CHECK_INT(a.completes, 1);
    CHECK_INT(a.outcome, WH_CALL_OK);

    /* two calls answered 401 with the same token: one token request between them */
    notify(s, &a, "run-x", 1, args);
    notify(s, &b, "run-y", 1, args);
    CHECK_INT(fh_http_count(), 6);
    answer(4, 401, NULL, NULL);
    answer(5, 401, NULL, NULL);
    CHECK_INT(fh_http_count(), 7);
    CHECK_STR(fh_http_at(6)->url, N_AUTH);
    token_ok(6, "Atza|TOKEN-THREE", 3600);
    CHECK_INT(fh_http_count(), 9);
    CHECK(has_header(7, "Authorization: Bearer Atza|TOKEN-THREE"));
    CHECK(has_header(8, "Authorization: Bearer Atza|TOKEN-THREE"));

    /* 401 again with the fresh token: FAIL, no third token */
    answer(7, 401, NULL, NULL);
    CHECK_INT(a.completes, 1);
    CHECK_INT(a.outcome, WH_CALL_FAIL);
    CHECK(strstr(a.error, "401") != NULL);
    answer(8, 202, NULL, NULL);
    CHECK_INT(b.outcome, WH_CALL_OK);
    CHECK_INT(fh_http_count(), 9);

    call_reset(&a, "", 0);
    call_reset(&b, "", 0);
    g_desc->destroy(s);
    fh_http_reset();
}

static void test_notify_outcomes(void)
{
    fh_http_reset();
    void *s = notifier(NULL);
    wh_call a = {0}, b = {0};
    const char *args = "{\"user\": \"u\", \"creator\": \"team\", \"count\": 1}";
    char *ref = expected_ref("run-500");

    /* 500 with Retry-After: RETRY; the retried call (attempt 2) is the same event */
    notify(s, &a, "run-500", 1, args);
    token_ok(0, N_TOKEN1, 3600);
    answer(1, 500, "oops", "{\"retry-after\": \"7\"}");
    CHECK_INT(a.completes, 1);
    CHECK_INT(a.outcome, WH_CALL_RETRY);
    CHECK_INT(a.retry_after, 7000);
    CHECK(strstr(a.error, "500") != NULL);
    CHECK_STR(jget(a.result, "reference_id"), ref);
    fh.now_ms += 7000;
    notify(s, &a, "run-500", 2, args);
    CHECK_INT(fh_http_count(), 3);
    json_t *ev = body_json(2);
    CHECK_STR(jget(ev, "referenceId"), ref);
    json_decref(ev);
    answer(2, 202, NULL, NULL);
    CHECK_INT(a.outcome, WH_CALL_OK);
    CHECK_STR(jget(a.result, "reference_id"), ref);
    free(ref);

    /* 429 (Retry-After), 503 and no answer: RETRY; 403, 400, 432: FAIL */
    static const struct {
        int status;
        const char *body, *headers;
        wh_outcome outcome;
        long retry_after;
        const char *says;
    } cases[] = {
        {429, NULL, "{\"retry-after\": \"3\"}", WH_CALL_RETRY, 3000, "429"},
        {503, NULL, NULL, WH_CALL_RETRY, 0, "503"},
        {0, NULL, NULL, WH_CALL_RETRY, 0, "Connection refused"},
        {403, "{\"message\": \"Forbidden\"}", NULL, WH_CALL_FAIL, 0, "403 (Forbidden)"},
        {400, "{\"message\": \"Invalid expiryTime\\n\"}", NULL, WH_CALL_FAIL, 0,
         "400 (Invalid expiryTime )"},
        {432, NULL, NULL, WH_CALL_FAIL, 0, "432"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = fh_http_count();
        notify(s, &a, "run-case", 1, args);
        CHECK_INT(fh_http_count(), n + 1);
        answer(n, cases[i].status, cases[i].body, cases[i].headers);
        CHECK_INT(a.completes, 1);
        CHECK_INT(a.outcome, cases[i].outcome);
        CHECK_INT(a.retry_after, cases[i].retry_after);
        if (!strstr(a.error, cases[i].says)) {
            fprintf(stderr, "status %d: error \"%s\" lacks \"%s\"\n", cases[i].status, a.error,
                    cases[i].says);
            wh_test_failures++;
        }
        CHECK_INT(json_integer_value(json_object_get(a.result, "status")), cases[i].status);
    }

    /* the request cannot start: RETRY */
    fh.http_rc = WH_ERR_BUSY;
    notify(s, &a, "run-busy", 1, args);
    fh.http_rc = 0;
    CHECK_INT(a.completes, 1);
    CHECK_INT(a.outcome, WH_CALL_RETRY);

    /* bad arguments: FAIL at once, nothing sent */
    static const struct {
        const char *args, *says;
    } bad[] = {
        {"{\"creator\": \"team\", \"count\": 1}", "`user` is required"},
        {"{\"user\": \"\", \"creator\": \"team\", \"count\": 1}", "`user` is required"},
        {"{\"user\": 5, \"creator\": \"team\", \"count\": 1}", "`user` must be a string"},
        {"{\"user\": \"u\\n\", \"creator\": \"team\", \"count\": 1}", "`user` must be a string"},
        {"{\"user\": \"u\", \"count\": 1}", "`creator` is required"},
        {"{\"user\": \"u\", \"creator\": [], \"count\": 1}", "`creator` must be a string"},
        {"{\"user\": \"u\", \"creator\": \"team\"}", "`count`"},
        {"{\"user\": \"u\", \"creator\": \"team\", \"count\": 0}", "`count`"},
        {"{\"user\": \"u\", \"creator\": \"team\", \"count\": -2}", "`count`"},
        {"{\"user\": \"u\", \"creator\": \"team\", \"count\": \"abc\"}", "`count`"},
        {"{\"user\": \"u\", \"creator\": \"team\", \"count\": \"3x\"}", "`count`"},
        {"{\"user\": \"u\", \"creator\": \"team\", \"count\": 1.5}", "`count`"},
        {"{\"user\": \"u\", \"creator\": \"team\", \"count\": 1000001}", "`count`"},
        {"{\"user\": \"u\", \"creator\": \"team\", \"count\": 1, \"urgency\": \"LOW\"}",
         "`urgency`"},
        {"{\"user\": \"u\", \"creator\": \"team\", \"count\": 1, \"urgency\": 2}", "`urgency`"},
    };
    int n = fh_http_count();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        notify(s, &a, "run-bad", 1, bad[i].args);
        CHECK_INT(a.completes, 1);
        CHECK_INT(a.outcome, WH_CALL_FAIL);
        if (!strstr(a.error, bad[i].says)) {
            fprintf(stderr, "args %s: error \"%s\" lacks \"%s\"\n", bad[i].args, a.error,
                    bad[i].says);
            wh_test_failures++;
        }
    }
    CHECK_INT(fh_http_count(), n);
    /* a long creator name is fine up to 256 bytes; "urgent" in any case and false work */
    notify(s, &a, "run-ok", 1,
           "{\"user\": \"u\", \"creator\": \"team\", \"count\": 1, \"urgency\": \"urgent\"}");
    CHECK_INT(fh_http_count(), n + 1);
    ev = body_json(n);
    CHECK_STR(jget(ev, "event.payload.messageGroup.urgency"), "URGENT");
    json_decref(ev);
    answer(n, 202, NULL, NULL);
    notify(s, &a, "run-ok2", 1,
           "{\"user\": \"u\", \"creator\": \"team\", \"count\": 1.0, \"urgency\": false}");
    ev = body_json(n + 1);
    CHECK(wh_json_path(ev, "event.payload.messageGroup.urgency") == NULL);
    CHECK_INT(json_integer_value(wh_json_path(ev, "event.payload.messageGroup.count")), 1);
    json_decref(ev);
    answer(n + 1, 202, NULL, NULL);
    CHECK_INT(a.outcome, WH_CALL_OK);
    g_desc->destroy(s);

    /* the token endpoint: bad credentials FAIL every waiting call, naming LWA's code only */
    fh_http_reset();
    s = notifier(NULL);
    notify(s, &a, "t-1", 1, args);
    notify(s, &b, "t-2", 1, args);
    CHECK_INT(fh_http_count(), 1);
    answer(0, 401,
           "{\"error_description\": \"Client authentication failed for " N_ID "\", "
           "\"error\": \"invalid_client\"}",
           NULL);
    CHECK_INT(a.completes + b.completes, 2);
    CHECK_INT(a.outcome, WH_CALL_FAIL);
    CHECK_INT(b.outcome, WH_CALL_FAIL);
    CHECK(strstr(a.error, "401 invalid_client") != NULL);
    CHECK(strstr(a.error, "client_secret") != NULL); /* the hint names the key, not its value */
    CHECK(!strstr(a.error, N_ID) && !strstr(a.error, N_SECRET));
    CHECK(json_object_get(a.result, "status") == NULL);
    /* 503 with Retry-After: RETRY; a transport error: RETRY; a 200 without a token: FAIL */
    notify(s, &a, "t-3", 1, args);
    CHECK_INT(fh_http_count(), 2);
    answer(1, 503, NULL, "{\"retry-after\": \"2\"}");
    CHECK_INT(a.outcome, WH_CALL_RETRY);
    CHECK_INT(a.retry_after, 2000);
    notify(s, &a, "t-4", 1, args);
    answer(2, 0, NULL, NULL);
    CHECK_INT(a.outcome, WH_CALL_RETRY);
    notify(s, &a, "t-5", 1, args);
    answer(3, 200, "<html>not a token</html>", NULL);
    CHECK_INT(a.outcome, WH_CALL_FAIL);
    CHECK(strstr(a.error, "auth_url") != NULL);
    notify(s, &a, "t-6", 1, args);
    answer(4, 200, "{\"access_token\": \"bad token\\r\\nX: y\"}", NULL);
    CHECK_INT(a.outcome, WH_CALL_FAIL);
    /* the token request cannot start: RETRY, and the next call tries again */
    fh.http_rc = WH_ERR_BUSY;
    notify(s, &a, "t-7", 1, args);
    fh.http_rc = 0;
    CHECK_INT(a.outcome, WH_CALL_RETRY);
    notify(s, &a, "t-8", 1, args);
    CHECK_STR(fh_http_at(fh_http_count() - 1)->url, N_AUTH);
    token_ok(fh_http_count() - 1, N_TOKEN1, 30); /* short-lived: used for 15 s */
    answer(fh_http_count() - 1, 202, NULL, NULL);
    CHECK_INT(a.outcome, WH_CALL_OK);
    fh.now_ms += 16000;
    notify(s, &a, "t-9", 1, args);
    CHECK_STR(fh_http_at(fh_http_count() - 1)->url, N_AUTH);
    token_ok(fh_http_count() - 1, N_TOKEN2, 3600);
    answer(fh_http_count() - 1, 202, NULL, NULL);
    CHECK_INT(a.outcome, WH_CALL_OK);

    /* nothing secret was ever logged */
    const char *log = fh.log_all.data ? fh.log_all.data : "";
    CHECK(!strstr(log, N_SECRET) && !strstr(log, "S3CRET") && !strstr(log, N_ID));
    CHECK(!strstr(log, N_TOKEN1) && !strstr(log, N_TOKEN2) && !strstr(log, "TOKEN-THREE"));
    CHECK(strstr(log, "access token fetched") != NULL);

    call_reset(&a, "", 0);
    call_reset(&b, "", 0);
    g_desc->destroy(s);
    fh_http_reset();
}

int main(void)
{
    fh.now_ms = T0;
    fh.keep_log = true;   /* every line: nothing secret may be logged */
    fh.dedupe_off = true; /* test_fetch_once_and_cache turns it on */
    g_desc = fh_load(WH_CONNECTOR_DIR "/alexa.so");
    CHECK(g_desc != NULL);
    if (!g_desc) {
        return wh_test_done("connector.alexa");
    }
    make_pki();

    test_descriptor_and_init();
    test_cert_urls();
    test_fetch_once_and_cache();
    test_chain_checks();
    test_cache_lifetime_and_limits();
    test_signature_headers();
    test_timestamps_and_skill();
    test_event_shapes();
    test_can_fulfill();
    test_respond();
    test_notify_config();
    test_notify_event_and_token();
    test_notify_refresh_after_401();
    test_notify_outcomes();

    free_pki();
    CHECK_INT(fh_done(), 0);
    return wh_test_done("connector.alexa");
}
