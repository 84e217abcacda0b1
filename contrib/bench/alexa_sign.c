/*
 * alexa_sign.c — wirehub-bench-alexa-sign: pre-signed Alexa IntentRequest
 * bodies for the alexa load benchmark (contrib/bench/alexa + alexa.lua).
 *
 * It owns building N request bodies (an IntentRequest "HelloIntent" with one
 * slot `name`, a unique requestId each, the current timestamp, the given
 * skill and user ids) and signing each one's raw bytes with the given RSA key
 * (RSA PKCS#1 v1.5, SHA-256, like Amazon's Signature-256). It writes one line
 * per body: "base64(signature)<TAB>body". Bodies contain no tab or newline.
 *
 * It must not talk to the network or to wirehub, and it writes nothing but
 * OUT. Not a test, not installed. Usage:
 *   wirehub-bench-alexa-sign KEY.pem SKILL_ID USER_ID N OUT [ID_PREFIX]
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_N 10000000ul
#define MAX_ID 200

static const char *const names[] = {"Ana", "Bruno", "Chen", "Dara", "Emil", "Fatou", "Goran",
                                    "Hana"};

static int usage(void)
{
    fprintf(stderr, "usage: wirehub-bench-alexa-sign KEY.pem SKILL_ID USER_ID N OUT "
                    "[ID_PREFIX]\n");
    return 2;
}

/* An id goes into JSON unescaped: allow only a conservative character set. */
static int id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_ID) {
        return 0;
    }
    for (; *s; s++) {
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') ||
              ('0' <= *s && *s <= '9') || strchr(".-_:", *s))) {
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        return usage();
    }
    const char *key_path = argv[1], *skill = argv[2], *user = argv[3], *out_path = argv[5];
    const char *prefix = argc == 7 ? argv[6] : "bench";
    char *end = NULL;
    errno = 0;
    unsigned long n = strtoul(argv[4], &end, 10);
    if (errno || !end || *end || n == 0 || n > MAX_N) {
        fprintf(stderr, "alexa-sign: N must be 1..%lu\n", MAX_N);
        return 2;
    }
    if (!id_ok(skill) || !id_ok(user) || !id_ok(prefix)) {
        fprintf(stderr, "alexa-sign: ids may hold only [A-Za-z0-9.-_:], 1..%d characters\n",
                MAX_ID);
        return 2;
    }
    FILE *kf = fopen(key_path, "r");
    if (!kf) {
        fprintf(stderr, "alexa-sign: %s: %s\n", key_path, strerror(errno));
        return 1;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
    fclose(kf);
    if (!key) {
        fprintf(stderr, "alexa-sign: %s: not a PEM private key\n", key_path);
        return 1;
    }
    FILE *out = fopen(out_path, "w");
    if (!out) {
        fprintf(stderr, "alexa-sign: %s: %s\n", out_path, strerror(errno));
        EVP_PKEY_free(key);
        return 1;
    }
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);

    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[1024];
    unsigned char b64[1400];
    char body[2048];
    int rc = 0;
    for (unsigned long i = 0; md && i < n; i++) {
        int len = snprintf(
            body, sizeof body,
            "{\"version\":\"1.0\",\"session\":{\"new\":true,\"sessionId\":"
            "\"amzn1.echo-api.session.%s-%lu\",\"application\":{\"applicationId\":\"%s\"},"
            "\"attributes\":{},\"user\":{\"userId\":\"%s\"}},\"context\":{\"System\":{"
            "\"application\":{\"applicationId\":\"%s\"},\"user\":{\"userId\":\"%s\"},"
            "\"device\":{\"deviceId\":\"amzn1.ask.device.1\"},"
            "\"apiEndpoint\":\"https://api.amazonalexa.com\"}},\"request\":{\"type\":"
            "\"IntentRequest\",\"requestId\":\"amzn1.echo-api.request.%s-%lu\",\"locale\":"
            "\"en-US\",\"timestamp\":\"%s\",\"intent\":{\"name\":\"HelloIntent\","
            "\"confirmationStatus\":\"NONE\",\"slots\":{\"name\":{\"name\":\"name\","
            "\"value\":\"%s\",\"confirmationStatus\":\"NONE\"}}}}}",
            prefix, i, skill, user, skill, user, prefix, i, ts, names[i % 8]);
        if (len < 0 || (size_t)len >= sizeof body) {
            fprintf(stderr, "alexa-sign: body too long\n");
            rc = 1;
            break;
        }
        size_t siglen = sizeof sig;
        if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
            EVP_DigestSign(md, sig, &siglen, (const unsigned char *)body, (size_t)len) != 1 ||
            siglen > 1024) {
            fprintf(stderr, "alexa-sign: signing failed (is it an RSA key of at most 8192 "
                            "bits?)\n");
            rc = 1;
            break;
        }
        EVP_EncodeBlock(b64, sig, (int)siglen);
        if (fprintf(out, "%s\t%s\n", b64, body) < 0) {
            fprintf(stderr, "alexa-sign: %s: write failed\n", out_path);
            rc = 1;
            break;
        }
        EVP_MD_CTX_reset(md);
    }
    if (!md) {
        fprintf(stderr, "alexa-sign: out of memory\n");
        rc = 1;
    }
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    if (fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "alexa-sign: %s: %s\n", out_path, strerror(errno));
        rc = 1;
    }
    return rc;
}
