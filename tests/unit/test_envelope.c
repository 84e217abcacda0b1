/* The envelope: building, checking, decoding, topics. */
#include "envelope.h"
#include "testlib.h"

#include <regex.h>

static int matches(const char *s, const char *re)
{
    regex_t rx;
    regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
    int ok = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return ok;
}

int main(void)
{
    json_t *data = json_pack("{s:s}", "text", "hi");
    json_t *env = wh_env_new("team", "message", data);
    CHECK(env != NULL);
    const char *id = json_string_value(json_object_get(env, "id"));
    CHECK(id && matches(id, "^[0-9a-f]{32}$"));
    CHECK(matches(json_string_value(json_object_get(env, "time")),
                  "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$"));
    CHECK_STR(json_string_value(json_object_get(env, "source")), "team");
    CHECK_STR(json_string_value(json_object_get(env, "kind")), "message");
    CHECK(json_object_get(env, "data") == data); /* taken, not copied */

    char err[200];
    CHECK_INT(wh_env_check(env, err, sizeof err), 0);
    json_t *env2 = wh_env_new("team", "message", NULL);
    CHECK(strcmp(id, json_string_value(json_object_get(env2, "id"))) != 0); /* random ids */
    CHECK(json_is_object(json_object_get(env2, "data")));
    json_decref(env2);

    /* round trip */
    char *text = json_dumps(env, JSON_COMPACT);
    json_t *back = wh_env_decode(text, strlen(text), err, sizeof err);
    CHECK(back && json_equal(back, env));
    json_decref(back);
    free(text);

    /* bad names are refused, and data stays the caller's */
    json_t *mine = json_object();
    CHECK(wh_env_new("a/b", "x", mine) == NULL);
    CHECK(wh_env_new("ok", "", mine) == NULL);
    CHECK(wh_env_new(NULL, "x", mine) == NULL);
    CHECK_INT(mine->refcount, 1);
    json_decref(mine);
    CHECK(wh_name_ok("a-b_c.d9"));
    CHECK(!wh_name_ok("a b"));
    char long65[66];
    memset(long65, 'a', 65);
    long65[65] = '\0';
    CHECK(!wh_name_ok(long65));
    long65[64] = '\0';
    CHECK(wh_name_ok(long65));

    /* decoding refuses what is not an envelope, saying why */
    struct {
        const char *text, *why;
    } bad[] = {
        {"{", "invalid JSON"},
        {"[]", "not an object"},
        {"{\"id\":\"x\",\"time\":\"t\",\"source\":\"a\",\"kind\":\"b\",\"data\":1}", "id must be"},
        {"{\"id\":\"0123456789abcdef0123456789abcdef\",\"source\":\"a\",\"kind\":\"b\",\"data\":1}",
         "time must be"},
        {"{\"id\":\"0123456789abcdef0123456789abcdef\",\"time\":\"t\",\"source\":\"a/b\",\"kind\":"
         "\"b\",\"data\":1}",
         "source must be"},
        {"{\"id\":\"0123456789abcdef0123456789abcdef\",\"time\":\"t\",\"source\":\"a\",\"kind\":"
         "\"b\"}",
         "data is missing"},
        {"{\"id\":\"0123456789abcdef0123456789abcdef\",\"time\":\"t\",\"source\":\"a\",\"kind\":"
         "\"b\",\"data\":1,\"reply_to\":5}",
         "reply_to must be"},
        {"{\"id\":\"0123456789abcdef0123456789abcdef\",\"id\":\"0123456789abcdef0123456789abcdef\","
         "\"time\":\"t\",\"source\":\"a\",\"kind\":\"b\",\"data\":1}",
         "duplicate"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        json_t *j = wh_env_decode(bad[i].text, strlen(bad[i].text), err, sizeof err);
        CHECK(j == NULL);
        if (!strstr(err, bad[i].why)) {
            fprintf(stderr, "case %zu: \"%s\" lacks \"%s\"\n", i, err, bad[i].why);
            wh_test_failures++;
        }
        json_decref(j);
    }

    char topic[WH_TOPIC_MAX];
    CHECK_INT(wh_topic_in(topic, sizeof topic, "team", "message"), 0);
    CHECK_STR(topic, "in/team/message");
    char tiny[8];
    CHECK_INT(wh_topic_in(tiny, sizeof tiny, "team", "message"), -1);

    json_decref(env);
    return wh_test_done("unit.envelope");
}
