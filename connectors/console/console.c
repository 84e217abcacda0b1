/*
 * console.c — the console connector: operation `say` prints one line to the
 * hub's standard output ("[<instance>] <text>" or "[<instance> <channel>] <text>").
 *
 * Owns: formatting and writing that line with a single write(2) so lines of
 * concurrent calls never interleave. Must not: include anything but the
 * public SDK header, use stdio buffering for the line (a partial line could
 * be flushed by someone else), or print a message over several lines.
 */
#include <wirehub/connector.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct console {
    const wh_host *host;
    wh_instance *inst;
    const char *name; /* borrowed from the host, valid until destroy() */
} console;

static int console_init(const wh_host *host, wh_instance *inst, const json_t *config, void **state)
{
    console *c = calloc(1, sizeof *c);
    if (!c) {
        return WH_ERR_NOMEM;
    }
    c->host = host;
    c->inst = inst;
    c->name = host->instance_name(inst);
    if (!c->name) {
        c->name = "console";
    }
    *state = c;
    return WH_OK;
}

static void console_destroy(void *state)
{
    free(state);
}

/* A growable line; `oom` sticks once an allocation failed. */
typedef struct line {
    char *data;
    size_t len, cap;
    bool oom;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (l->oom) {
        return;
    }
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->len + n) {
            cap *= 2;
        }
        char *p = realloc(l->data, cap);
        if (!p) {
            l->oom = true;
            return;
        }
        l->data = p;
        l->cap = cap;
    }
    memcpy(l->data + l->len, s, n);
    l->len += n;
}

/*
 * Append text so that it stays on one line: newline and carriage return become
 * the two characters "\n" and "\r", other control characters (but tab) "\xHH",
 * so a message can neither break the line nor send terminal escape sequences.
 */
static void put_escaped(line *l, const char *s, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            put(l, "\\n", 2);
        } else if (c == '\r') {
            put(l, "\\r", 2);
        } else if ((c < 0x20 && c != '\t') || c == 0x7F) {
            char e[4] = {'\\', 'x', digits[c >> 4], digits[c & 15]};
            put(l, e, 4);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

/* Write all of buf to fd; 0 or an errno value. */
static int write_all(int fd, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        off += (size_t)n;
    }
    return 0;
}

static int op_say(void *state, wh_call *call, const json_t *args)
{
    console *c = state;
    const wh_host *h = c->host;
    const json_t *text = json_object_get(args, "text");
    const json_t *channel = json_object_get(args, "channel");
    const char *bad = NULL;
    if (!text) {
        bad = "say: `text` is required";
    } else if (!json_is_string(text)) {
        bad = "say: `text` must be a string";
    } else if (channel && !json_is_string(channel)) {
        bad = "say: `channel` must be a string";
    }
    if (bad) {
        h->complete(call, WH_CALL_FAIL, NULL, 0, bad);
        return WH_OK;
    }

    line l = {0};
    put(&l, "[", 1);
    put_escaped(&l, c->name, strlen(c->name));
    if (channel) {
        put(&l, " ", 1);
        put_escaped(&l, json_string_value(channel), json_string_length(channel));
    }
    put(&l, "] ", 2);
    put_escaped(&l, json_string_value(text), json_string_length(text));
    put(&l, "\n", 1);
    if (l.oom) {
        free(l.data);
        h->complete(call, WH_CALL_RETRY, NULL, 0, "say: out of memory");
        return WH_OK;
    }

    /* Anything the process left in stdio's buffer goes first, so lines keep their order. */
    fflush(stdout);
    int err = write_all(STDOUT_FILENO, l.data, l.len);
    free(l.data);
    if (err) {
        char msg[160];
        snprintf(msg, sizeof msg, "say: writing to standard output failed: %s", strerror(err));
        bool transient = err == EAGAIN || err == EWOULDBLOCK || err == ENOSPC;
        h->complete(call, transient ? WH_CALL_RETRY : WH_CALL_FAIL, NULL, 0, msg);
        return WH_OK;
    }
    json_t *result = json_pack("{s:b}", "printed", 1);
    h->complete(call, WH_CALL_OK, result, 0, NULL);
    return WH_OK;
}

static const wh_option k_say_args[] = {
    {"text", WH_OPT_STRING, NULL, WH_OPT_REQUIRED,
     "the message; line breaks are printed as \\n so one message is one line"},
    {"channel", WH_OPT_STRING, NULL, 0, "a label printed after the instance name"},
    {NULL, 0, NULL, 0, NULL},
};

static const wh_operation k_operations[] = {
    {"say", "Print one line to the hub's standard output; result {\"printed\": true}", k_say_args,
     op_say, 0},
    {NULL, NULL, NULL, NULL, 0},
};

static const wh_connector k_console = {
    WH_CONNECTOR_HEADER("console", "1.0.0", "Print messages on the hub's standard output"),
    .options = NULL,
    .init = console_init,
    .destroy = console_destroy,
    .webhook = NULL,
    .respond = NULL,
    .operations = k_operations,
};

WH_CONNECTOR_EXPORT(k_console)
