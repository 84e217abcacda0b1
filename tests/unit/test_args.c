/* Operation arguments brought to their declared types before start() (wh_args_normalize),
   and the literal check the rules loader makes (wh_arg_fits). */
#include "instance.h"
#include "testlib.h"

static const wh_option args[] = {
    {"text", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "the text"},
    {"count", WH_OPT_INT, NULL, 0, "how many"},
    {"ratio", WH_OPT_NUMBER, NULL, 0, "a number"},
    {"quiet", WH_OPT_BOOL, "false", 0, "no sound"},
    {"mode", WH_OPT_STRING, "\"HTML\"", 0, "parse mode"},
    {"blocks", WH_OPT_ARRAY, NULL, 0, "blocks"},
    {"extra", WH_OPT_ANY, NULL, 0, "anything"},
    {NULL, 0, NULL, 0, NULL},
};

static json_t *normalized(const char *in, char *why, size_t whysize, int *rc)
{
    json_t *obj = json_loads(in, 0, NULL);
    *rc = wh_args_normalize(args, obj, why, whysize);
    return obj;
}

static void expect(const char *in, const char *want)
{
    char why[200] = "";
    int rc;
    json_t *got = normalized(in, why, sizeof why, &rc);
    json_t *w = json_loads(want, 0, NULL);
    CHECK_INT(rc, 0);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_SORT_KEYS);
        fprintf(stderr, "normalize %s\n   got  %s\n   want %s (%s)\n", in, g, want, why);
        free(g);
        wh_test_failures++;
    }
    json_decref(got);
    json_decref(w);
}

static void expect_refused(const char *in, const char *why_want)
{
    char why[200] = "";
    int rc;
    json_t *got = normalized(in, why, sizeof why, &rc);
    CHECK_INT(rc, -1);
    CHECK_STR(why, why_want);
    json_decref(got);
}

int main(void)
{
    /* rendered text to the declared type; defaults for what is missing or null */
    expect("{\"text\": 7, \"count\": \"42\", \"ratio\": \"1.5\", \"quiet\": \"true\"}",
           "{\"text\": \"7\", \"count\": 42, \"ratio\": 1.5, \"quiet\": true, \"mode\": \"HTML\"}");
    expect("{\"text\": true, \"count\": -3, \"ratio\": 2, \"mode\": null}",
           "{\"text\": \"true\", \"count\": -3, \"ratio\": 2, \"quiet\": false, "
           "\"mode\": \"HTML\"}");
    expect("{\"text\": 2.5, \"count\": 4.0, \"extra\": null, \"blocks\": [1]}",
           "{\"text\": \"2.5\", \"count\": 4, \"quiet\": false, \"mode\": \"HTML\", "
           "\"extra\": null, \"blocks\": [1]}");
    /* what no rendering can fix is refused, naming the argument and the value's kind
     * (the value is event data, which is never logged) */
    expect_refused("{\"text\": \"x\", \"count\": \"abc\"}",
                   "argument `count` must be an integer, got a string of 3 bytes");
    expect_refused("{\"text\": \"x\", \"count\": \"4.5\"}",
                   "argument `count` must be an integer, got a string of 3 bytes");
    expect_refused("{\"text\": \"x\", \"count\": \" 4\"}",
                   "argument `count` must be an integer, got a string of 2 bytes");
    expect_refused("{\"text\": \"x\", \"count\": \"99999999999999999999\"}",
                   "argument `count` must be an integer, got a string of 20 bytes");
    expect_refused("{\"text\": \"x\", \"quiet\": \"yes\"}",
                   "argument `quiet` must be true or false, got a string of 3 bytes");
    expect_refused("{\"text\": \"x\", \"ratio\": \"nan\"}",
                   "argument `ratio` must be a number, got a string of 3 bytes");
    expect_refused("{\"text\": {\"password\": \"hunter2\"}}",
                   "argument `text` must be a string, got an object");
    expect_refused("{\"text\": \"x\", \"blocks\": \"[1]\"}",
                   "argument `blocks` must be a list, got a string of 3 bytes");
    expect_refused("{\"text\": \"x\", \"count\": \"x\"}",
                   "argument `count` must be an integer, got a string of 1 byte");

    /* the loader's view of a literal */
    json_t *v = json_string("7");
    CHECK(wh_arg_fits(WH_OPT_INT, v));
    CHECK(wh_arg_fits(WH_OPT_STRING, v));
    CHECK(!wh_arg_fits(WH_OPT_BOOL, v));
    json_decref(v);
    v = json_pack("[i]", 1);
    CHECK(!wh_arg_fits(WH_OPT_STRING, v));
    CHECK(wh_arg_fits(WH_OPT_ARRAY, v));
    CHECK(wh_arg_fits(WH_OPT_ANY, v));
    json_decref(v);
    CHECK(wh_arg_fits(WH_OPT_INT, json_null()));
    return wh_test_done("args");
}
