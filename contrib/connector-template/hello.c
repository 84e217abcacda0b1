/*
 * hello.c — a minimal wirehub connector to copy. It shows the three things a
 * connector does:
 *   webhook()  turns an HTTP request into an event (and makes the caller wait
 *              for the rule's answer),
 *   respond()  turns the rule's generic answer into this platform's reply,
 *   greet      an operation a rule can call (asynchronous: it completes
 *              through host->complete(), here at once).
 * It includes only <wirehub/connector.h>. Build it out of tree:
 *   cc -shared -fPIC $(pkg-config --cflags wirehub) hello.c -o hello.so
 */
#include <wirehub/connector.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hello {
    const wh_host *host;
    wh_instance *inst;
    char greeting[64];
} hello;

/* Config keys: validated (unknown keys are errors) and defaulted by the hub. */
static const wh_option options[] = {
    {"greeting", WH_OPT_STRING, "\"Hello\"", 0, "the word the greet operation starts with"},
    {NULL, 0, NULL, 0, NULL},
};

static int hello_init(const wh_host *host, wh_instance *inst, const json_t *config, void **state)
{
    hello *h = calloc(1, sizeof *h);
    if (!h) {
        return WH_ERR_NOMEM;
    }
    h->host = host;
    h->inst = inst;
    snprintf(h->greeting, sizeof h->greeting, "%s",
             json_string_value(json_object_get(config, "greeting")));
    host->log(inst, WH_LOG_INFO, "ready, greeting=%s", h->greeting);
    *state = h;
    return WH_OK;
}

static void hello_destroy(void *state)
{
    free(state);
}

/* POST /hooks/<instance> with {"name": "..."} → event "greet"; the caller waits. */
static int hello_webhook(void *state, const wh_request *req, wh_webhook *wh)
{
    const wh_host *host = ((hello *)state)->host;
    if (strcmp(host->req_content_type(req), "application/json") != 0) {
        return host->reject(wh, 415, "unsupported_media_type", "send application/json");
    }
    size_t len;
    const char *body = host->req_body(req, &len);
    json_t *data = json_loadb(body, len, 0, NULL);
    if (!json_is_string(json_object_get(data, "name"))) {
        json_decref(data);
        return host->reject(wh, 400, "bad_request", "expected {\"name\": \"...\"}");
    }
    if (host->emit(wh, "greet", data) != WH_OK) { /* takes data on success */
        json_decref(data);
        return WH_ERR_NOMEM;
    }
    json_t *fallback = json_pack("{s:s}", "text", "nobody answered");
    int rc = host->wait(wh, 2000, fallback); /* borrows fallback */
    json_decref(fallback);
    return rc;
}

/* The rule's `respond: { text: … }` → a plain-text HTTP answer. */
static int hello_respond(void *state, const json_t *event, const json_t *response, wh_reply *out)
{
    (void)event; /* the envelope the caller's request produced, if the reply needs it */
    const wh_host *host = ((hello *)state)->host;
    const char *text = json_string_value(json_object_get(response, "text"));
    return host->reply(out, 200, "text/plain; charset=utf-8", text ? text : "",
                       text ? strlen(text) : 0);
}

/* Operation `greet`: args {name} → result {text}. */
static const wh_option greet_args[] = {
    {"name", WH_OPT_STRING, NULL, WH_OPT_REQUIRED, "who to greet"},
    {NULL, 0, NULL, 0, NULL},
};

static int hello_greet(void *state, wh_call *call, const json_t *args)
{
    hello *h = state;
    const char *name = json_string_value(json_object_get(args, "name"));
    if (!name) {
        return h->host->complete(call, WH_CALL_FAIL, NULL, 0, "greet: `name` is required");
    }
    char text[256];
    snprintf(text, sizeof text, "%s, %s!", h->greeting, name);
    return h->host->complete(call, WH_CALL_OK, json_pack("{s:s}", "text", text), 0, NULL);
}

static const wh_operation operations[] = {
    {"greet", "Greet someone; result {text}", greet_args, hello_greet, 0},
    {NULL, NULL, NULL, NULL, 0},
};

static const wh_connector descriptor = {
    WH_CONNECTOR_HEADER("hello", "1.0.0", "A minimal connector to copy"),
    .options = options,
    .init = hello_init,
    .destroy = hello_destroy,
    .webhook = hello_webhook,
    .respond = hello_respond,
    .operations = operations,
};

WH_CONNECTOR_EXPORT(descriptor)
