/*
 * test_verify.c — hub/verify.c: HMAC against published vectors (GitHub, Slack, RFC 2202,
 * RFC 4231), form decoding and Retry-After parsing. No I/O, no network.
 */
#include "testlib.h"
#include "util.h"
#include "verify.h"

#include <limits.h>

static void hex_of(const unsigned char *mac, size_t n, char *out)
{
    wh_hex(mac, n, out);
}

/* HMAC of NUL-terminated key and message as lower-case hex. */
static const char *hmac_hex(const char *digest, const char *key, const char *msg, char *out)
{
    unsigned char mac[WH_HMAC_MAX];
    size_t n = 0;
    if (wh_hmac(digest, key, strlen(key), msg, strlen(msg), mac, &n) != WH_OK) {
        return NULL;
    }
    hex_of(mac, n, out);
    return out;
}

static void test_hmac(void)
{
    char hex[2 * WH_HMAC_MAX + 1];

    /* GitHub's "Validating webhook deliveries" vector. */
    CHECK_STR(hmac_hex("sha256", "It's a Secret to Everybody", "Hello, World!", hex),
              "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");

    /* Slack's "Verifying requests from Slack" vector: v0:<timestamp>:<body>. */
    const char *slack_body =
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
        "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
        "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
        "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
        "803a0bc887a14d10d2c447fce8b6703c";
    char base[1024];
    snprintf(base, sizeof base, "v0:%s:%s", "1531420618", slack_body);
    CHECK_STR(hmac_hex("sha256", "8f742231b10e8888abcd99yyyzzz85a5", base, hex),
              "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503");

    /* RFC 2202 test case 2 (SHA-1) and RFC 4231 test case 2 (SHA-256, SHA-512). */
    const char *jefe_msg = "what do ya want for nothing?";
    CHECK_STR(hmac_hex("sha1", "Jefe", jefe_msg, hex), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    CHECK_STR(hmac_hex("sha256", "Jefe", jefe_msg, hex),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK_STR(hmac_hex("sha512", "Jefe", jefe_msg, hex),
              "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a"
              "6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");

    /* Lengths, and the empty key and message (NULL pointers with length 0). */
    unsigned char mac[WH_HMAC_MAX];
    size_t n = 0;
    CHECK_INT(wh_hmac("sha1", "k", 1, "m", 1, mac, &n), WH_OK);
    CHECK_INT(n, 20);
    CHECK_INT(wh_hmac("sha512", "k", 1, "m", 1, mac, &n), WH_OK);
    CHECK_INT(n, 64);
    CHECK_INT(wh_hmac("sha256", NULL, 0, NULL, 0, mac, &n), WH_OK);
    CHECK_INT(n, 32);
    hex_of(mac, n, hex);
    CHECK_STR(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");

    /* A key with a NUL byte inside is used whole. */
    unsigned char mac2[WH_HMAC_MAX];
    size_t n2 = 0;
    CHECK_INT(wh_hmac("sha256", "a\0b", 3, "m", 1, mac, &n), WH_OK);
    CHECK_INT(wh_hmac("sha256", "a", 1, "m", 1, mac2, &n2), WH_OK);
    CHECK(n == n2 && memcmp(mac, mac2, n) != 0);

    /* Refusals. */
    CHECK_INT(wh_hmac("md5", "k", 1, "m", 1, mac, &n), WH_ERR_INVALID);
    CHECK_INT(wh_hmac("SHA256", "k", 1, "m", 1, mac, &n), WH_ERR_INVALID);
    CHECK_INT(wh_hmac(NULL, "k", 1, "m", 1, mac, &n), WH_ERR_INVALID);
    CHECK_INT(wh_hmac("sha256", "k", 1, "m", 1, NULL, &n), WH_ERR_INVALID);
    CHECK_INT(wh_hmac("sha256", "k", 1, "m", 1, mac, NULL), WH_ERR_INVALID);
    CHECK_INT(wh_hmac("sha256", NULL, 1, "m", 1, mac, &n), WH_ERR_INVALID);
    CHECK_INT(wh_hmac("sha256", "k", 1, NULL, 1, mac, &n), WH_ERR_INVALID);
    CHECK_INT(wh_hmac("sha256", "k", (size_t)INT_MAX + 1, "m", 1, mac, &n), WH_ERR_INVALID);
}

/* Decode `body` and compare its compact dump with `expect` (NULL: decoding must fail). */
static void form_case(int line, const char *body, size_t len, const char *expect)
{
    json_t *obj = wh_form_decode(body, len);
    if (!expect) {
        if (obj) {
            char *d = json_dumps(obj, JSON_COMPACT);
            fprintf(stderr, "line %d: expected NULL, got %s\n", line, d);
            free(d);
            wh_test_failures++;
        }
        json_decref(obj);
        return;
    }
    if (!obj) {
        fprintf(stderr, "line %d: expected %s, got NULL\n", line, expect);
        wh_test_failures++;
        return;
    }
    char *d = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    if (strcmp(d, expect) != 0) {
        fprintf(stderr, "line %d: got %s, expected %s\n", line, d, expect);
        wh_test_failures++;
    }
    free(d);
    json_decref(obj);
}

#define FORM(body, expect) form_case(__LINE__, (body), strlen(body), (expect))

static void test_form(void)
{
    FORM("", "{}");
    form_case(__LINE__, NULL, 0, "{}");
    form_case(__LINE__, NULL, 3, NULL);
    FORM("a=1&b=two+words&c=%41%42%2b", "{\"a\":\"1\",\"b\":\"two words\",\"c\":\"AB+\"}");
    FORM("a=1&a=2", "{\"a\":\"2\"}");
    FORM("flag", "{\"flag\":\"\"}");
    FORM("a=", "{\"a\":\"\"}");
    FORM("=v", "{\"\":\"v\"}");
    FORM("&&a=1&&", "{\"a\":\"1\"}");
    FORM("a=b=c", "{\"a\":\"b=c\"}");
    FORM("caf%C3%A9=%E2%82%AC+%F0%9F%98%80", "{\"café\":\"€ 😀\"}");
    FORM("raw=caf\xC3\xA9", "{\"raw\":\"café\"}");
    FORM("k%20ey=v", "{\"k ey\":\"v\"}");
    /* Malformed escapes. */
    FORM("a=%zz", NULL);
    FORM("a=%4", NULL);
    FORM("a=%", NULL);
    FORM("a%G1=1", NULL);
    FORM("a=1&b=%2", NULL);
    /* Invalid UTF-8, decoded or raw: stray byte, overlong, surrogate, truncated, > U+10FFFF. */
    FORM("a=%FF", NULL);
    FORM("a=%C0%80", NULL);
    FORM("a=%ED%A0%80", NULL);
    FORM("a=%E2%82", NULL);
    FORM("a=%F4%90%80%80", NULL);
    FORM("a=\x80", NULL);
    /* NUL: refused in a key and in a value (the journal's JSON could not hold it) */
    FORM("a%00b=1", NULL);
    FORM("v=x%00y", NULL);
    json_t *obj = NULL;
    /* …and whatever a connector builds: NULs become U+FFFD before anything is journaled */
    json_t *data = json_pack("{s:s#, s:[s#], s:s}", "a", "x\0y", (size_t)3, "l", "\0", (size_t)1,
                             "ok", "plain");
    CHECK_INT(wh_json_nul_to_fffd(data), 2);
    CHECK_STR(json_string_value(json_object_get(data, "a")), "x\xEF\xBF\xBDy");
    CHECK_STR(json_string_value(json_array_get(json_object_get(data, "l"), 0)), "\xEF\xBF\xBD");
    CHECK_INT(wh_json_nul_to_fffd(data), 0);
    json_decref(data);
    /* Only `len` bytes are read. */
    form_case(__LINE__, "a=1&b=2", 3, "{\"a\":\"1\"}");

    /* Slack's vector body decodes to the documented fields. */
    const char *slack = "token=xyzz0WbapA4vBCDEFasx0q6G&command=%2Fwebhook-collect&text=&"
                        "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
                        "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN";
    obj = wh_form_decode(slack, strlen(slack));
    CHECK(obj != NULL);
    CHECK_STR(json_string_value(json_object_get(obj, "command")), "/webhook-collect");
    CHECK_STR(json_string_value(json_object_get(obj, "text")), "");
    CHECK_STR(json_string_value(json_object_get(obj, "response_url")),
              "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN");
    json_decref(obj);
}

static void test_retry_after(void)
{
    /* 1994-11-06T08:49:37Z is 784111777 s after the epoch. */
    const int64_t t94 = 784111777000LL;
    const int64_t now = t94 - 30000; /* 30 s before that date */

    CHECK_INT(wh_retry_after_parse("120", now), 120000);
    CHECK_INT(wh_retry_after_parse("0", now), 0);
    CHECK_INT(wh_retry_after_parse(" 7\t", now), 7000);
    CHECK_INT(wh_retry_after_parse("007", now), 7000);
    CHECK_INT(wh_retry_after_parse("99999999999999999999999", now), (long)INT32_MAX * 1000);
    CHECK_INT(wh_retry_after_parse(NULL, now), -1);
    CHECK_INT(wh_retry_after_parse("", now), -1);
    CHECK_INT(wh_retry_after_parse("  ", now), -1);
    CHECK_INT(wh_retry_after_parse("-1", now), -1);
    CHECK_INT(wh_retry_after_parse("+5", now), -1);
    CHECK_INT(wh_retry_after_parse("1.5", now), -1);
    CHECK_INT(wh_retry_after_parse("5s", now), -1);
    CHECK_INT(wh_retry_after_parse("soon", now), -1);

    /* The three HTTP-date forms of RFC 9110 §5.6.7, all the same instant. */
    CHECK_INT(wh_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", now), 30000);
    CHECK_INT(wh_retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", now), 30000);
    CHECK_INT(wh_retry_after_parse("Sun Nov  6 08:49:37 1994", now), 30000);
    CHECK_INT(wh_retry_after_parse("Sun Nov 16 08:49:37 1994", now), 30000 + 10 * 86400000LL);
    /* In the past: 0. */
    CHECK_INT(wh_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", t94 + 5000), 0);
    /* Leap day, end of year, leap second. */
    CHECK_INT(wh_retry_after_parse("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800000LL - 1000), 1000);
    CHECK_INT(wh_retry_after_parse("Thu, 31 Dec 2026 23:59:60 GMT", 1798761600000LL - 1000), 1000);

    /* RFC 850 two-digit years: more than 50 years ahead means the previous century. */
    const int64_t y2026 = 1767225600000LL; /* 2026-01-01T00:00:00Z */
    CHECK_INT(wh_retry_after_parse("Tuesday, 01-Jan-30 00:00:00 GMT", y2026),
              4 * 365 * 86400000LL + 86400000LL); /* 2030, with 2028's leap day */
    CHECK_INT(wh_retry_after_parse("Friday, 01-Jan-99 00:00:00 GMT", y2026), 0); /* 1999 */

    /* Malformed dates. */
    CHECK_INT(wh_retry_after_parse("Sun, 31 Feb 1994 08:49:37 GMT", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun, 29 Feb 1900 08:49:37 GMT", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun, 00 Nov 1994 08:49:37 GMT", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun, 06 Nov 1994 24:00:00 GMT", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun, 06 Nov 1994 08:60:00 GMT", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun, 06 Nov 1994 08:49:37 PST", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT extra", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun, 6 Nov 1994 08:49:37 GMT", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun, 06 Foo 1994 08:49:37 GMT", now), -1);
    CHECK_INT(wh_retry_after_parse("Xyz, 06 Nov 1994 08:49:37 GMT", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun, 06 Nov 1994 08:49:37", now), -1);
    CHECK_INT(wh_retry_after_parse("Sunday, 06-Nov-1994 08:49:37 GMT", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun Nov 6 08:49:37 1994", now), -1);
    CHECK_INT(wh_retry_after_parse("Sun", now), -1);
}

int main(void)
{
    test_hmac();
    test_form();
    test_retry_after();
    return wh_test_done("unit.verify");
}
