/*
 * fuzz_envelope.c — the bus envelope decoder (hub/envelope.c) on an arbitrary
 * frame, as another process could send it.
 *
 * Oracle: a refused frame says why; an accepted one passes wh_env_check, gives
 * a rule context holding its data and an "event" object, and re-encoded with
 * wh_env_encode (the hot path) decodes again to the same source, kind, data and
 * reply_to prefix.
 * Must not: keep anything between inputs.
 */
#include "envelope.h"
#include "fuzz.h"
#include "rules.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    json_t *env = wh_env_decode((const char *)data, size, err, sizeof err);
    if (!env) {
        FUZZ_CHECK(err[0] != '\0', "refused without a reason");
        return 0;
    }
    FUZZ_CHECK(wh_env_check(env, err, sizeof err) == 0, "decoded but fails the check: %s", err);
    const char *source = json_string_value(json_object_get(env, "source"));
    const char *kind = json_string_value(json_object_get(env, "kind"));
    json_t *d = json_object_get(env, "data");

    json_t *ctx = wh_rules_context(env);
    FUZZ_CHECK(json_is_object(ctx), "no context");
    json_t *event = json_object_get(ctx, "event");
    FUZZ_CHECK(json_is_object(event), "the context has no event object");
    FUZZ_CHECK(json_equal(json_object_get(event, "source"), json_object_get(env, "source")),
               "event.source differs");
    if (!json_is_object(d)) {
        FUZZ_CHECK(json_equal(json_object_get(ctx, "data"), d), "non-object data lost");
    }
    json_decref(ctx);

    char topic[WH_TOPIC_MAX];
    FUZZ_CHECK(wh_topic_in(topic, sizeof topic, source, kind) == 0,
               "no topic for a valid envelope");

    char id[33];
    size_t len = 0;
    char *text = wh_env_encode(source, kind, d, "resp/node/", id, &len);
    FUZZ_CHECK(text != NULL, "a decoded envelope does not encode");
    FUZZ_CHECK(len == strlen(text), "encode length %zu", len);
    json_t *back = wh_env_decode(text, len, err, sizeof err);
    FUZZ_CHECK(back != NULL, "its encoding does not decode: %s", err);
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(back, "source")), source) == 0 &&
                   strcmp(json_string_value(json_object_get(back, "kind")), kind) == 0,
               "source/kind changed");
    FUZZ_CHECK(json_equal(json_object_get(back, "data"), d), "data changed in the round trip");
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(back, "id")), id) == 0, "id changed");
    const char *reply_to = json_string_value(json_object_get(back, "reply_to"));
    FUZZ_CHECK(reply_to && strncmp(reply_to, "resp/node/", 10) == 0 &&
                   strcmp(reply_to + 10, id) == 0,
               "reply_to is %s", reply_to ? reply_to : "(none)");
    json_decref(back);
    free(text);
    json_decref(env);
    return 0;
}
