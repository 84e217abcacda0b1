/*
 * rules_bench.c — wirehub-bench-rules: how many events a second one core can
 * match against a rule set and render one template for.
 *
 * It owns generating the workload in memory (a rule file text with R rules
 * over I instances, each `if: { body.n: k }` plus one `respond` template,
 * and a pool of distinct envelopes), checking once, untimed, that every
 * pooled event matches exactly its one rule and renders the expected text,
 * and then timing N events through the engine's per-event path:
 * wh_rules_context → wh_rules_each_candidate → wh_rule_matches on every
 * candidate → wh_rule_render_respond on a match. Building envelopes is not
 * measured. It prints the figures and the command line that produced them.
 *
 * It must not read or write files, touch the bus, the store or the network,
 * or report a rate for a run whose match or render counts are wrong (it
 * exits 1 instead). Not a test, not installed; contrib/bench/run drives it.
 */
#include "rules.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RULES 1000000u
#define MAX_POOL 1000000u
#define MAX_EVENTS 100000000000ull /* 1e11: a bound, not a recommendation */
#define KIND "msg"

typedef struct opts {
    uint64_t events;
    uint64_t rules;
    uint64_t instances;
    uint64_t pool;
} opts;

/* State shared with the candidate callback, for one event and the run. */
typedef struct run {
    const json_t *ctx;     /* the current event's context (borrowed) */
    uint64_t matched_now;  /* matches for the current event */
    uint64_t matches;      /* over the run */
    uint64_t renders;      /* respond objects rendered with a string `text` */
    uint64_t candidates;   /* rules evaluated */
    uint64_t not_one;      /* events that did not match exactly one rule */
    uint64_t text_bytes;   /* total rendered text length: the work is used */
    size_t last_rule;      /* index of the last matching rule (verification) */
    const wh_rules *rules; /* to find a rule's index (verification only) */
    int verify;            /* 1: record last_rule */
} run;

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--events N] [--rules N] [--instances N] [--pool N]\n"
            "  --events N     events to time (default 1000000)\n"
            "  --rules N      rules to generate (default 1000)\n"
            "  --instances N  instances the rules are spread over, rule i on inst<i%%N>/" KIND "\n"
            "                 (default 50; at most --rules, so each has a rule)\n"
            "  --pool N       distinct pre-built envelopes cycled through (default 1000)\n"
            "Every event matches exactly one rule (`if: { body.n: k }`) and renders its\n"
            "`respond: { text: \"rule <i> saw {{body.user}} say {{body.text}}\" }`.\n"
            "Exit status: 0 done, 1 wrong counts or failure, 2 bad usage.\n",
            prog);
}

static int parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (!s || !*s || *s == '-' || *s == '+') {
        fprintf(stderr, "wirehub-bench-rules: %s needs a number\n", name);
        return -1;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) {
        fprintf(stderr,
                "wirehub-bench-rules: %s must be an integer from %" PRIu64 " to %" PRIu64
                " (got '%s')\n",
                name, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* 0 ok, 1 --help printed, -1 bad usage (message printed). */
static int parse_args(int argc, char **argv, opts *o)
{
    *o = (opts){.events = 1000000, .rules = 1000, .instances = 50, .pool = 1000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout, argv[0]);
            return 1;
        }
        uint64_t *dst = NULL, min = 1, max = 0;
        if (strcmp(a, "--events") == 0) {
            dst = &o->events;
            max = MAX_EVENTS;
        } else if (strcmp(a, "--rules") == 0) {
            dst = &o->rules;
            max = MAX_RULES;
        } else if (strcmp(a, "--instances") == 0) {
            dst = &o->instances;
            max = MAX_RULES;
        } else if (strcmp(a, "--pool") == 0) {
            dst = &o->pool;
            max = MAX_POOL;
        } else {
            fprintf(stderr, "wirehub-bench-rules: unknown argument '%s'\n", a);
            usage(stderr, argv[0]);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "wirehub-bench-rules: %s needs a value\n", a);
            return -1;
        }
        if (parse_u64(a, argv[++i], min, max, dst) != 0) {
            return -1;
        }
    }
    if (o->instances > o->rules) {
        fprintf(stderr,
                "wirehub-bench-rules: --instances (%" PRIu64 ") must not exceed --rules (%" PRIu64
                "): every instance needs a rule for its events to match\n",
                o->instances, o->rules);
        return -1;
    }
    return 0;
}

/* Rules on instance s (rule i is on inst<i % I> with n = i / I). */
static uint64_t rules_on(const opts *o, uint64_t s)
{
    return (o->rules - s + o->instances - 1) / o->instances;
}

/* Pool entry p: instance p % I, n cycling through that instance's rules, so
   a pool of R entries holds every rule's event once. The matching rule is
   n * I + s. */
static void pool_entry(const opts *o, uint64_t p, uint64_t *s, uint64_t *n)
{
    *s = p % o->instances;
    *n = (p / o->instances) % rules_on(o, *s);
}

static char *rule_text(const opts *o, size_t *len)
{
    wh_buf b = {0};
    int rc = wh_buf_puts(&b, "# generated by wirehub-bench-rules\nrules:\n");
    for (uint64_t i = 0; i < o->rules && rc == WH_OK; i++) {
        rc = wh_buf_printf(&b,
                           "  - name: r%" PRIu64 "\n"
                           "    on: inst%" PRIu64 "/" KIND "\n"
                           "    if: { body.n: %" PRIu64 " }\n"
                           "    respond: { text: \"rule %" PRIu64
                           " saw {{body.user}} say {{body.text}}\" }\n",
                           i, i % o->instances, i / o->instances, i);
    }
    if (rc != WH_OK) {
        wh_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

static json_t *make_envelope(const opts *o, uint64_t p)
{
    uint64_t s, n;
    pool_entry(o, p, &s, &n);
    char id[40], when[40], src[32], user[32], text[64];
    snprintf(id, sizeof id, "%032" PRIx64, p + 1);
    wh_time_rfc3339(INT64_C(1795788000000) + (int64_t)p, when, sizeof when);
    snprintf(src, sizeof src, "inst%" PRIu64, s);
    snprintf(user, sizeof user, "user%" PRIu64, p);
    snprintf(text, sizeof text, "message number %" PRIu64 " & <more>", p);
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:{s:I, s:s, s:s}}}", "id", id, "time", when,
                     "source", src, "kind", KIND, "data", "body", "n", (json_int_t)n, "user", user,
                     "text", text);
}

static int on_candidate(void *ud, const wh_rule *rule)
{
    run *r = ud;
    r->candidates++;
    if (!wh_rule_matches(rule, r->ctx)) {
        return 0;
    }
    r->matches++;
    r->matched_now++;
    if (r->verify) {
        for (size_t i = 0; i < wh_rules_count(r->rules); i++) {
            if (wh_rules_get(r->rules, i) == rule) {
                r->last_rule = i;
                break;
            }
        }
    }
    json_t *out = wh_rule_render_respond(rule, r->ctx);
    const char *t = json_string_value(json_object_get(out, "text"));
    if (t) {
        r->renders++;
        r->text_bytes += strlen(t);
    }
    json_decref(out);
    return 0; /* every candidate is evaluated, as the engine does without `stop` */
}

/* One event through the per-event path. WH_OK or WH_ERR_NOMEM. */
static int one_event(run *r, const wh_rules *rules, const json_t *env)
{
    json_t *ctx = wh_rules_context(env);
    if (!ctx) {
        return WH_ERR_NOMEM;
    }
    const char *src = json_string_value(json_object_get(env, "source"));
    const char *kind = json_string_value(json_object_get(env, "kind"));
    r->ctx = ctx;
    r->matched_now = 0;
    wh_rules_each_candidate(rules, src, kind, on_candidate, r);
    if (r->matched_now != 1) {
        r->not_one++;
    }
    r->ctx = NULL;
    json_decref(ctx);
    return WH_OK;
}

/* Untimed: each pooled event matches exactly its rule and renders the text
   expected. Returns the number of problems (first few printed). */
static uint64_t verify_pool(const opts *o, const wh_rules *rules, json_t *const *pool)
{
    uint64_t bad = 0;
    for (uint64_t p = 0; p < o->pool; p++) {
        uint64_t s, n;
        pool_entry(o, p, &s, &n);
        uint64_t want = n * o->instances + s;
        run r = {.rules = rules, .verify = 1, .last_rule = (size_t)-1};
        json_t *ctx = wh_rules_context(pool[p]);
        if (!ctx) {
            fprintf(stderr, "wirehub-bench-rules: out of memory\n");
            return bad + 1;
        }
        r.ctx = ctx;
        wh_rules_each_candidate(rules, json_string_value(json_object_get(pool[p], "source")), KIND,
                                on_candidate, &r);
        char expect[160];
        snprintf(expect, sizeof expect,
                 "rule %" PRIu64 " saw user%" PRIu64 " say message number %" PRIu64 " & <more>",
                 want, p, p);
        char *got = NULL;
        if (r.matches == 1) {
            json_t *out = wh_rule_render_respond(wh_rules_get(rules, r.last_rule), ctx);
            const char *t = json_string_value(json_object_get(out, "text"));
            got = t ? strdup(t) : NULL;
            json_decref(out);
        }
        if (r.matches != 1 || r.last_rule != want || !got || strcmp(got, expect) != 0) {
            if (bad < 5) {
                fprintf(stderr,
                        "wirehub-bench-rules: pool event %" PRIu64 " (inst%" PRIu64 ", n %" PRIu64
                        "): %" PRIu64
                        " match(es), last rule %ld, text \"%s\"; want 1 match, rule %" PRIu64
                        ", text \"%s\"\n",
                        p, s, n, r.matches, r.last_rule == (size_t)-1 ? -1L : (long)r.last_rule,
                        got ? got : "(none)", want, expect);
            }
            bad++;
        }
        free(got);
        json_decref(ctx);
    }
    return bad;
}

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The command line, single-quoting arguments a shell would split. */
static void print_command(int argc, char **argv)
{
    printf("command      ");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = *a != '\0';
        for (const char *c = a; *c; c++) {
            if (!(strchr("-_./=:,+@%", *c) || (*c >= '0' && *c <= '9') ||
                  (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))) {
                plain = 0;
                break;
            }
        }
        fputs(i ? " " : "", stdout);
        if (plain) {
            fputs(a, stdout);
        } else {
            putchar('\'');
            for (const char *c = a; *c; c++) {
                fputs(*c == '\'' ? "'\\''" : (char[]){*c, 0}, stdout);
            }
            putchar('\'');
        }
    }
    putchar('\n');
}

int main(int argc, char **argv)
{
    opts o;
    int prc = parse_args(argc, argv, &o);
    if (prc != 0) {
        return prc > 0 ? 0 : 2;
    }

    int status = 1;
    char *text = NULL;
    wh_rules *rules = NULL;
    json_t **pool = NULL;
    json_t *errors = json_array();
    if (!errors) {
        goto fail_nomem;
    }

    /* 1. the rule set */
    size_t len = 0;
    text = rule_text(&o, &len);
    if (!text) {
        goto fail_nomem;
    }
    double t0 = seconds(CLOCK_MONOTONIC);
    rules = wh_rules_load_text("bench-rules.yaml", text, len, NULL, errors);
    double load_s = seconds(CLOCK_MONOTONIC) - t0;
    if (!rules || json_array_size(errors) > 0) {
        size_t i;
        json_t *e;
        fprintf(stderr, "wirehub-bench-rules: the generated rules did not load:\n");
        json_array_foreach(errors, i, e)
        {
            if (i < 10) {
                fprintf(stderr, "  %s\n", json_string_value(e));
            }
        }
        goto done;
    }
    if (wh_rules_count(rules) != o.rules) {
        fprintf(stderr, "wirehub-bench-rules: loaded %zu rules, generated %" PRIu64 "\n",
                wh_rules_count(rules), o.rules);
        goto done;
    }

    /* 2. the envelopes (not measured) */
    pool = calloc(o.pool, sizeof *pool);
    if (!pool) {
        goto fail_nomem;
    }
    for (uint64_t p = 0; p < o.pool; p++) {
        if (!(pool[p] = make_envelope(&o, p))) {
            goto fail_nomem;
        }
    }

    /* 3. correctness once, untimed; it also warms the caches */
    uint64_t bad = verify_pool(&o, rules, pool);
    if (bad) {
        fprintf(stderr,
                "wirehub-bench-rules: %" PRIu64 " of %" PRIu64
                " pooled events did not match and render as expected\n",
                bad, o.pool);
        goto done;
    }

    /* 4. one core */
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    char pinned[96] = "CPU 0";
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        snprintf(pinned, sizeof pinned, "not pinned (sched_setaffinity to CPU 0: %s)",
                 strerror(errno));
        fprintf(stderr, "wirehub-bench-rules: warning: %s\n", pinned);
    }

    /* 5. the measured loop */
    run r = {0};
    double c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
    t0 = seconds(CLOCK_MONOTONIC);
    uint64_t p = 0;
    for (uint64_t e = 0; e < o.events; e++) {
        if (one_event(&r, rules, pool[p]) != WH_OK) {
            goto fail_nomem;
        }
        if (++p == o.pool) {
            p = 0;
        }
    }
    double wall = seconds(CLOCK_MONOTONIC) - t0;
    double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
    double rate = wall > 0 ? (double)o.events / wall : 0;

    printf("wirehub-bench-rules: match + render, one template per match\n");
    printf("rules        %" PRIu64 "\n", o.rules);
    printf("instances    %" PRIu64 "\n", o.instances);
    printf("pool         %" PRIu64 " distinct envelopes\n", o.pool);
    printf("load         %.3f s (rule text %zu bytes)\n", load_s, len);
    printf("cpu          %s\n", pinned);
    printf("events       %" PRIu64 "\n", o.events);
    printf("candidates   %" PRIu64 " (%.1f per event)\n", r.candidates,
           o.events ? (double)r.candidates / (double)o.events : 0.0);
    printf("matches      %" PRIu64 "\n", r.matches);
    printf("renders      %" PRIu64 " (%" PRIu64 " bytes of text)\n", r.renders, r.text_bytes);
    printf("seconds      %.6f (CPU time %.6f)\n", wall, cpu);
    printf("events/s     %.0f\n", rate);
    printf("ns/event     %.1f\n", o.events ? wall * 1e9 / (double)o.events : 0.0);
    print_command(argc, argv);
    printf("BENCH_RESULT rules=%" PRIu64 " instances=%" PRIu64 " pool=%" PRIu64 " events=%" PRIu64
           " candidates=%" PRIu64 " matches=%" PRIu64 " renders=%" PRIu64
           " seconds=%.6f cpu_seconds=%.6f events_per_s=%.0f pinned=%d\n",
           o.rules, o.instances, o.pool, o.events, r.candidates, r.matches, r.renders, wall, cpu,
           rate, strcmp(pinned, "CPU 0") == 0);
    fflush(stdout);

    if (r.matches != o.events || r.renders != o.events || r.not_one != 0) {
        fprintf(stderr,
                "wirehub-bench-rules: wrong counts: %" PRIu64 " events, %" PRIu64
                " matches, %" PRIu64 " renders, %" PRIu64 " events without exactly one match\n",
                o.events, r.matches, r.renders, r.not_one);
        goto done;
    }
    status = 0;
    goto done;

fail_nomem:
    fprintf(stderr, "wirehub-bench-rules: out of memory\n");
    status = 1;
done:
    if (pool) {
        for (uint64_t i = 0; i < o.pool; i++) {
            json_decref(pool[i]);
        }
        free(pool);
    }
    wh_rules_unref(&rules);
    free(text);
    json_decref(errors);
    return status;
}
