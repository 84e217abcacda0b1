/*
 * rules.h — rule files: loading and validating them, the index that finds the
 * rules an event can fire, and rendering a rule's steps against an event.
 *
 * A rule file (YAML or JSON; `*.yaml`, `*.yml`, `*.json`) holds only `rules:`,
 * a list of rules:
 *
 *   rules:
 *     - name: tell-team-about-presentation   # required, unique across all files
 *       on: alexa/intent                     # required "<instance>/<kind>"; * for either
 *       enabled: true                        # optional, default true
 *       stop: false                          # optional: no later rule sees the event
 *       if: { intent.name: GivePresentationIntent }   # optional criteria (match.h)
 *       load: { replies: "presentation/{{user.id}}" } # or name: { key: T, unread: bool, limit: N }
 *       do:                                  # optional list of steps, each ONE of:
 *         - call: team.post_message          #   call: <instance>.<operation>
 *           with: { channel: "#team", text: "{{user.name}} is presenting" }
 *           as: post                         #   optional result name
 *         - await: team.thread_replies       #   await: a WH_OP_POLL operation
 *           with: { channel: "{{post.channel}}", ts: "{{post.ts}}" }
 *           key: "presentation/{{user.id}}"  #   required template
 *           every: 20s                       #   required duration, >= 1s
 *           for: 30m                         #   required duration, > every
 *           vars: { user: "{{user.id}}" }    #   optional object, templated
 *           collect: { on: team/message, if: { thread_ts: "{{post.ts}}" } }
 *         - respond: { speech: "Posted at {{post.ts}}" }
 *         - stop_await: "presentation/{{user.id}}"
 *       respond: { speech: "OK, I told the team." }   # optional object
 *
 * Files load in strcmp order of their names, rules in file order; that is the
 * order in which rules see an event. Every problem in every file is reported
 * as "file:line:col: what is wrong" before a load fails; a failed load builds
 * nothing, so a reload that fails keeps the set that was running.
 *
 * Templates (template.h) are every string inside `with`, `vars`, `respond`,
 * `load` keys, an await's `key`, `stop_await`, and the scalar values of
 * `collect.if`. Rendering rules:
 *   - a string that is exactly one {{var}} keeps the value's JSON type
 *     (wh_tpl_render_json); a missing value renders as null;
 *   - other strings render as text with no escaping (JSON encoding escapes);
 *   - objects and arrays render member by member; other scalars are copied;
 *   - SSML: in a `respond` object (the rule's or a respond step's), a string
 *     member named `speech` or `reprompt` (at any depth) whose template text
 *     starts with "<speak>" (after optional white space) renders with
 *     WH_ESC_XML, so values inserted into SSML are XML-escaped ("Q&A" →
 *     "Q&amp;A"); it is never typed. Every other respond string renders as
 *     above (WH_ESC_NONE).
 *   Rendered values never share objects or arrays with the context: a
 *   container taken from it by a {{var}} is deep-copied, so results may be
 *   modified by the caller.
 *   A render that passes the template limits (WH_TPL_MAX_STEPS nodes or
 *   WH_TPL_MAX_OUTPUT bytes, in template.h) fails like one out of memory: the
 *   render functions below return NULL and wh_rule_each_load WH_ERR_NOMEM.
 *
 * Purity: loading reads the rule files and nothing else — no bus, no threads,
 * no logging. A loaded wh_rules is immutable; any number of threads may match
 * and render against one set at once. Sets are reference counted so a reload
 * can swap them while runs keep the set they started with.
 */
#ifndef WH_RULES_H
#define WH_RULES_H
#include "match.h"
#include "wirehub/connector.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** Longest `as` or `load` name (they are [A-Za-z_][A-Za-z0-9_]*). */
#define WH_RULE_NAME_MAX 64
/** Deepest nesting of a templated value (`with`, `vars`, `respond`). */
#define WH_RULES_MAX_DEPTH 64

/**
 * What the loader checks names against (the lead fills it from the loaded
 * connectors). Any callback may be NULL: that check is then skipped.
 */
typedef struct wh_rules_schema {
    /** 1 when `instance` exists. */
    int (*has_instance)(void *ud, const char *instance);
    /** The operation, or NULL. */
    const wh_operation *(*find_op)(void *ud, const char *instance, const char *op);
    /** Comma-separated known names for messages (static or ud-owned buffers). */
    const char *(*instance_names)(void *ud);
    const char *(*op_names)(void *ud, const char *instance);
    void *ud;
    /** The respond keys the instance's connector reads (NULL-terminated), or
     *  NULL: any. May itself be NULL (not checked). */
    const char *const *(*respond_keys)(void *ud, const char *instance);
} wh_rules_schema;

typedef struct wh_rules wh_rules; /* immutable after load; reference counted */
typedef struct wh_rule wh_rule;   /* owned by its wh_rules */
typedef struct wh_step wh_step;   /* owned by its wh_rule */

/**
 * Load every rule file (`*.yaml`, `*.yml`, `*.json`, not starting with '.') in
 * `dir`, in strcmp order of their names. A missing dir is the error
 * "dir: no such directory"; an empty dir is fine (zero rules). `schema` may be
 * NULL (no name checks). Returns NULL on any error; every problem is appended
 * to `errors` (a JSON array of strings; may be NULL) as "file:line:col: what".
 * The set's refcount starts at 1.
 *
 * Ownership: borrows dir, schema (used only during the call) and errors;
 * returns a new set released with wh_rules_unref().
 */
wh_rules *wh_rules_load_dir(const char *dir, const wh_rules_schema *schema, json_t *errors);

/**
 * As wh_rules_load_dir() for an explicit list of files, loaded in the order
 * given (file names appear in messages as given).
 * Ownership: borrows everything; returns a new set.
 */
wh_rules *wh_rules_load_files(const char *const *paths, size_t n, const wh_rules_schema *schema,
                              json_t *errors);

/**
 * As wh_rules_load_dir() for one in-memory text (`len` bytes, need not be
 * NUL-terminated) named `name` in messages (NULL reads "<input>").
 * Ownership: borrows everything; returns a new set.
 */
wh_rules *wh_rules_load_text(const char *name, const char *text, size_t len,
                             const wh_rules_schema *schema, json_t *errors);

/** Take another reference (atomic; any thread). Returns r. Ownership: the caller owns one more. */
wh_rules *wh_rules_ref(wh_rules *r);
/** Drop a reference and set *r to NULL; frees at zero. Accepts NULL. Ownership: takes *r. */
void wh_rules_unref(wh_rules **r);
/** Number of rules (enabled or not). Ownership: borrows. */
size_t wh_rules_count(const wh_rules *r);
/** Number of files the set was loaded from. Ownership: borrows. */
size_t wh_rules_files(const wh_rules *r);
/** The i-th rule in rule order, or NULL past the end. Ownership: borrowed from r. */
const wh_rule *wh_rules_get(const wh_rules *r, size_t i);

/**
 * The template context for an envelope {id, time, source, kind, data}: a new
 * object holding the members of `data` (when it is an object; any other
 * present data sits under "data") plus "event": {id, time, source, kind}
 * (members present in the envelope only). "event" replaces a data member of
 * that name. Members are shared with the envelope (treat both as read-only).
 * NULL only when out of memory.
 *
 * Ownership: borrows envelope; returns a new reference.
 */
json_t *wh_rules_context(const json_t *envelope);

/**
 * Call fn for each ENABLED rule whose `on` matches (source, kind), in rule
 * order, merging the exact "source/kind", "source/ *", "* /kind" and "* / *"
 * index entries without allocating. Stops early when fn returns non-zero and
 * returns that value; 0 otherwise. Cost is proportional to the rules that
 * can match, not to the size of the set.
 *
 * Ownership: borrows everything; `rule` is borrowed from r during the call.
 */
int wh_rules_each_candidate(const wh_rules *r, const char *source, const char *kind,
                            int (*fn)(void *ud, const wh_rule *rule), void *ud);

/*
 * Rule accessors. A NULL rule gives NULL or 0.
 * Ownership: borrow the rule; strings returned are borrowed from the rule set
 * and live as long as it does.
 */
const char *wh_rule_name(const wh_rule *rule);
/**
 * 16 hex digits that change when the rule's text does (not its formatting or
 * key order): a run stored under one resumes only on a rule with the same.
 */
const char *wh_rule_fingerprint(const wh_rule *rule);
/**
 * The rule named `name` whose fingerprint is `fp` (any fingerprint when fp is
 * NULL), or NULL. Ownership: borrowed from rules.
 */
const wh_rule *wh_rules_find(const wh_rules *rules, const char *name, const char *fp);
/** "file:line" of the rule, for logs. */
const char *wh_rule_file(const wh_rule *rule);
/** The `on` value as written ("alexa/intent", "* /message" without the space). */
const char *wh_rule_on(const wh_rule *rule);
/** 1 when `enabled` (the default), else 0. */
int wh_rule_enabled(const wh_rule *rule);
/** 1 when the rule has `stop: true`. */
int wh_rule_stop(const wh_rule *rule);
/** 1 when the rule's `on` covers (source, kind) (enabled or not). */
int wh_rule_on_matches(const wh_rule *rule, const char *source, const char *kind);
/** Criteria: 1 when ctx satisfies `if` (a rule without `if` always does). Ownership: borrows. */
int wh_rule_matches(const wh_rule *rule, const json_t *ctx);
/**
 * As wh_rule_matches(); on 0 writes the first failed criterion into why
 * (see wh_match_explain()). Ownership: borrows; writes into the caller's why.
 */
int wh_rule_explain(const wh_rule *rule, const json_t *ctx, char *why, size_t size);

/*
 * Steps, in the order of `do:`. Accessors for a part the step's kind lacks
 * return NULL or 0.
 * Ownership: borrow the step; strings returned are borrowed from the rule set.
 */
typedef enum { WH_STEP_CALL = 1, WH_STEP_AWAIT, WH_STEP_RESPOND, WH_STEP_STOP_AWAIT } wh_step_kind;
size_t wh_rule_nsteps(const wh_rule *rule);
/** The i-th step or NULL past the end. Ownership: borrowed from the rule. */
const wh_step *wh_rule_step(const wh_rule *rule, size_t i);
wh_step_kind wh_step_kind_of(const wh_step *s);
const char *wh_step_instance(const wh_step *s);   /**< call/await, else NULL */
const char *wh_step_op(const wh_step *s);         /**< call/await, else NULL */
const char *wh_step_as(const wh_step *s);         /**< call: result name or NULL */
int64_t wh_step_every_ms(const wh_step *s);       /**< await, else 0 */
int64_t wh_step_for_ms(const wh_step *s);         /**< await, else 0 */
const char *wh_step_collect_on(const wh_step *s); /**< await: "inst/kind" or NULL */

/*
 * Rendering. All return NEW references (or malloc'd strings) and NULL only
 * when out of memory (or when the step is not of a kind that has the part,
 * as noted). Ownership: borrow the step/rule and ctx.
 */
/** call/await `with` arguments; {} when the step has none. */
json_t *wh_step_render_with(const wh_step *s, const json_t *ctx);
/** await `vars`; {} when none. */
json_t *wh_step_render_vars(const wh_step *s, const json_t *ctx);
/** await `key` or the stop_await key (malloc'd; the caller frees); NULL for other kinds. */
char *wh_step_render_key(const wh_step *s, const json_t *ctx);
/** A respond step's object (SSML rule above); NULL for other kinds. */
json_t *wh_step_render_respond(const wh_step *s, const json_t *ctx);
/** The rule's `respond` object, or NULL when the rule has none. */
json_t *wh_rule_render_respond(const wh_rule *rule, const json_t *ctx);
/** 1 when the rule has a `respond` object. */
int wh_rule_has_respond(const wh_rule *rule);

/**
 * The collect criteria of an await, with their templated scalars rendered
 * against ctx and compiled. NULL when the step has no collect (or on OOM).
 * When a rendered value no longer fits its operator (a template gave a string
 * to `gt`, an invalid regex), the matcher matches nothing.
 *
 * Ownership: borrows; returns a new matcher the caller frees with wh_match_destroy().
 */
wh_match *wh_step_render_collect(const wh_step *s, const json_t *ctx);
/**
 * `debounce: { key: TEMPLATE, for: DURATION }`: a burst of matches with the
 * same rendered key runs the rule once, `for` after the last match (at most
 * 3 × `for` after the first), with the last match's context. 0 / NULL when
 * the rule has no debounce. The key is malloc'd.
 */
int64_t wh_rule_debounce_ms(const wh_rule *rule);
char *wh_rule_render_debounce_key(const wh_rule *rule, const json_t *ctx);

/**
 * The same criteria rendered but not compiled (to store with a conversation
 * and compile later): a new reference, {} when the collect has no `if`, NULL
 * when the step has no collect.
 */
json_t *wh_step_render_collect_if(const wh_step *s, const json_t *ctx);

/** The largest `limit` of a load entry. */
#define WH_LOAD_LIMIT_MAX 10000

/**
 * Call fn(ud, name, key, unread, limit) for each `load` entry in order, the key
 * rendered against ctx; limit is 0 when the entry has none. Stops when fn
 * returns non-zero and returns that; WH_ERR_NOMEM when out of memory; 0 otherwise.
 *
 * Ownership: borrows; name and key are valid only during the call.
 */
int wh_rule_each_load(const wh_rule *rule, const json_t *ctx,
                      int (*fn)(void *ud, const char *name, const char *key, int unread,
                                long limit),
                      void *ud);

/**
 * A duration as rule files write it: 20s, 30m, 2h, 1d, 1500ms.
 * Ownership: writes into the caller's out (always NUL-terminated).
 */
void wh_rules_fmt_duration(int64_t ms, char *out, size_t size);

/**
 * `wirehub send --dry-run` (hub/cmd_send.c): build an envelope for
 * (instance, kind, data) with the id "000…0" and the current time, and print
 * to `out`, in rule order, every rule whose `on` covers the event: whether it
 * matched (or why not, or that it is disabled) and, when it did, its loads,
 * steps and respond rendered against the event. Honours `stop`. Prints
 * "no rule matched" when none did. Nothing is called, stored or published.
 * Returns the number of rules matched, or a negative WH_ERR_* (bad instance
 * or kind name, out of memory).
 *
 * Ownership: borrows everything; writes to out.
 */
int wh_send_dry_run(const wh_rules *rules, const char *instance, const char *kind,
                    const json_t *data, FILE *out);
#endif
