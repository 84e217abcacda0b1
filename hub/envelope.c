/*
 * envelope.c — builds, checks and decodes bus envelopes. Pure: no bus, no I/O.
 * Decoding is strict so that a malformed frame from another process is
 * dropped with a reason instead of reaching a part half-formed.
 */
#include "envelope.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

int wh_name_ok(const char *s)
{
    if (!s) {
        return 0;
    }
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            return 0;
        }
    }
    return n >= 1 && n <= 64;
}

json_t *wh_env_new(const char *source, const char *kind, json_t *data)
{
    if (!wh_name_ok(source) || !wh_name_ok(kind)) {
        return NULL;
    }
    char id[33], ts[40];
    if (wh_new_id(id) != WH_OK) {
        return NULL;
    }
    wh_time_rfc3339(wh_now_ms(), ts, sizeof ts);
    json_t *env = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "time", ts, "source", source,
                            "kind", kind);
    if (!env) {
        return NULL;
    }
    if (json_object_set_new(env, "data", data ? data : json_object()) != 0) {
        /* set_new releases data on failure; the caller must not see it taken */
        json_decref(env);
        return NULL;
    }
    return env;
}

static int dump_to_buf(const char *chunk, size_t size, void *ud)
{
    return wh_buf_append(ud, chunk, size) == WH_OK ? 0 : -1;
}

char *wh_env_encode(const char *source, const char *kind, const json_t *data,
                    const char *reply_to_prefix, char id_out[33], size_t *len)
{
    if (!wh_name_ok(source) || !wh_name_ok(kind) || wh_new_id(id_out) != WH_OK) {
        return NULL;
    }
    char ts[40];
    wh_time_rfc3339(wh_now_ms(), ts, sizeof ts);
    /* most envelopes fit: one allocation instead of a chain of reallocs while dumping */
    wh_buf out = {.data = malloc(2048), .cap = 2048};
    if (!out.data) {
        return NULL;
    }
    out.data[0] = '\0';
    /* names are [A-Za-z0-9_.-] and the prefix is ours: nothing here needs escaping */
    int rc = wh_buf_printf(&out, "{\"id\":\"%s\",\"time\":\"%s\",\"source\":\"%s\",\"kind\":\"%s\",",
                           id_out, ts, source, kind);
    if (rc == WH_OK && reply_to_prefix) {
        rc = wh_buf_printf(&out, "\"reply_to\":\"%s%s\",", reply_to_prefix, id_out);
    }
    if (rc == WH_OK) {
        rc = wh_buf_puts(&out, "\"data\":");
    }
    /* data is written straight into the envelope: no separate text to copy */
    if (rc == WH_OK && json_dump_callback(data ? data : json_null(), dump_to_buf, &out,
                                          JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        rc = WH_ERR_NOMEM;
    }
    if (rc == WH_OK) {
        rc = wh_buf_puts(&out, "}");
    }
    if (rc != WH_OK) {
        wh_buf_free(&out);
        return NULL;
    }
    *len = out.len;
    return out.data;
}

static int is_hex32(const char *s)
{
    if (!s || strlen(s) != 32) {
        return 0;
    }
    for (int i = 0; i < 32; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

int wh_env_check(const json_t *env, char *err, size_t errsize)
{
    const char *why = NULL;
    if (!json_is_object(env)) {
        why = "envelope is not an object";
    } else if (!is_hex32(json_string_value(json_object_get(env, "id")))) {
        why = "id must be 32 lower-case hex digits";
    } else if (!json_is_string(json_object_get(env, "time"))) {
        why = "time must be a string";
    } else if (!wh_name_ok(json_string_value(json_object_get(env, "source")))) {
        why = "source must be a name of [A-Za-z0-9_.-]";
    } else if (!wh_name_ok(json_string_value(json_object_get(env, "kind")))) {
        why = "kind must be a name of [A-Za-z0-9_.-]";
    } else if (!json_object_get(env, "data")) {
        why = "data is missing";
    } else if (json_object_get(env, "reply_to") &&
               !json_is_string(json_object_get(env, "reply_to"))) {
        why = "reply_to must be a string";
    }
    if (why) {
        snprintf(err, errsize, "%s", why);
        return -1;
    }
    return 0;
}

json_t *wh_env_decode(const char *buf, size_t len, char *err, size_t errsize)
{
    json_error_t jerr;
    json_t *env = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!env) {
        snprintf(err, errsize, "invalid JSON at %d:%d: %s", jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (wh_env_check(env, err, errsize) != 0) {
        json_decref(env);
        return NULL;
    }
    return env;
}

int wh_topic_in(char *out, size_t size, const char *source, const char *kind)
{
    int n = snprintf(out, size, "in/%s/%s", source, kind);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}
