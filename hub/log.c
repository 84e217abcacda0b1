/*
 * log.c — the one place that writes log records. Records are formatted into
 * a local buffer and written with one write(2), so lines from threads never
 * interleave. This file must never be handed a secret: callers log names of
 * keys, not values.
 */
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_level = WH_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void wh_log_set_level(int level)
{
    g_level = level;
}

int wh_log_level(void)
{
    return g_level;
}

int wh_log_parse_level(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (name && strcmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void wh_logv(int level, const char *part, const char *fmt, va_list ap)
{
    if (level > g_level) {
        return;
    }
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char line[4200];
    char ts[40];
    wh_time_rfc3339(wh_now_ms(), ts, sizeof ts);
    size_t n = (size_t)snprintf(line, sizeof line, "%s %s %s: ", ts,
                                level_names[level < 0 ? 0 : (level > 3 ? 3 : level)],
                                part ? part : "hub");
    for (const char *p = msg; *p && n + 5 < sizeof line; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\n') {
            line[n++] = '\\';
            line[n++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            n += (size_t)snprintf(line + n, sizeof line - n, "\\x%02x", c);
        } else {
            line[n++] = (char)c;
        }
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

const char *wh_log_q(const char *value)
{
    static _Thread_local char ring[8][512];
    static _Thread_local unsigned slot;
    const char *v = value ? value : "";
    if (*v && !strpbrk(v, " \"=\\")) {
        return v;
    }
    char *out = ring[slot++ % 8];
    size_t n = 0, cap = sizeof ring[0];
    out[n++] = '"';
    for (; *v && n + 3 < cap; v++) {
        if (*v == '"' || *v == '\\') {
            out[n++] = '\\';
        }
        out[n++] = *v;
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

void wh_log(int level, const char *part, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wh_logv(level, part, fmt, ap);
    va_end(ap);
}
