/*
 * fuzz_webhook.c — the webhook connector's webhook() (connectors/webhook/
 * webhook.c, compiled in) on a fake host (fuzz_host.h).
 *
 * Input: byte 0 chooses, bit by bit,
 *   0-2  the content type (k_ctypes);
 *   3    an instance with a `secret` (then the signature header is a valid
 *        HMAC of the body unless bit 4 is set);
 *   4    the signature header is the next input line instead;
 *   5    the request path (after /hooks/<instance>) is the next input line;
 *   6    an instance with `id_header` and `wait_ms` (de-duplication, waiting);
 *   7    dedupe() answers "seen before".
 * The rest is the body. Lines end at '\n' (a NUL also ends a path or header
 * value, as a C string would).
 * Owns four instances made once; each input is one request.
 */
#include "fuzz_host.h"

static const char *const k_ctypes[8] = {
    "application/json",
    "application/x-www-form-urlencoded",
    "application/vnd.github+json",
    "text/plain",
    NULL,
    "",
    "application/JSON",
    "+json",
};

static const char *const k_configs[4] = {
    "{}",
    "{\"secret\": \"It's a Secret to Everybody\"}",
    "{\"id_header\": \"X-GitHub-Delivery\", \"wait_ms\": 5000, \"kind\": \"push\","
    " \"fallback\": {\"text\": \"later\"}}",
    "{\"secret\": \"k\", \"signature_header\": \"X-Signature\", \"signature_prefix\": \"\","
    " \"id_header\": \"X-GitHub-Delivery\", \"wait_ms\": 1}",
};
static const char *const k_sig_headers[4] = {"x-hub-signature-256", "x-hub-signature-256",
                                             "x-hub-signature-256", "x-signature"};
static const char *const k_secrets[4] = {NULL, "It's a Secret to Everybody", NULL, "k"};

static wh_instance g_inst = {"hooks"};
static void *g_state[4];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (int i = 0; i < 4; i++) {
        g_state[i] = fuzz_instance(&g_inst, k_configs[i]);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    unsigned flags = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    int which = ((flags >> 3) & 1) | (((flags >> 6) & 1) << 1);

    char path[512] = "";
    char sig[512] = "";
    if (flags & 0x20) {
        fuzz_take_line(&p, &n, path, sizeof path);
    }
    if (k_secrets[which] && (flags & 0x10)) {
        fuzz_take_line(&p, &n, sig, sizeof sig);
    } else if (k_secrets[which]) {
        unsigned char mac[WH_HMAC_MAX];
        size_t mac_len = 0;
        FUZZ_CHECK(wh_hmac("sha256", k_secrets[which], strlen(k_secrets[which]), p, n, mac,
                           &mac_len) == WH_OK,
                   "hmac failed");
        char hex[2 * WH_HMAC_MAX + 1];
        wh_hex(mac, mac_len, hex);
        snprintf(sig, sizeof sig, "%s%s", which == 3 ? "" : "sha256=", hex);
    }

    const char *ctype = k_ctypes[flags & 7];
    char *body = fuzz_text(p, n);
    wh_request req = fuzz_request(ctype, body, n);
    req.path = path;
    json_object_set_new(req.headers, "user-agent", json_string("GitHub-Hookshot/fuzz"));
    json_object_set_new(req.headers, "authorization", json_string("Bearer not-for-rules"));
    json_object_set_new(req.headers, "x-github-delivery", json_string("72d3162e-cc78-11e3"));
    json_object_set_new(req.queries, "source", json_string("fuzz"));
    if (k_secrets[which]) {
        json_t *s = json_string(sig);
        if (!s) { /* not UTF-8: a real host keeps raw bytes, the fake can only drop them */
            s = json_string("sha256=");
        }
        json_object_set_new(req.headers, k_sig_headers[which], s);
    }

    wh_webhook wh = {0};
    wh.duplicate = (flags & 0x80) ? 1 : 0;
    int rc = WH_CONNECTOR_ENTRY()->webhook(g_state[which], &req, &wh);
    fh_check_webhook(&wh, rc);
    FUZZ_CHECK(wh.rejects || wh.emits || wh.duplicate, "neither an event nor a refusal");

    free(body);
    fuzz_request_free(&req);
    fh_webhook_clear(&wh);
    return 0;
}
