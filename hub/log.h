/* log.h — structured log lines on stderr: time, level, part, message with key=value fields. */
#ifndef WH_LOG_H
#define WH_LOG_H
#include "wirehub/connector.h"

/** Set the most verbose level printed (WH_LOG_INFO by default; env WIREHUB_LOG=debug). */
void wh_log_set_level(int level);
int wh_log_level(void);
/** Parse "error", "warn", "info", "debug"; -1 when unknown. */
int wh_log_parse_level(const char *name);

/**
 * One record: `2026-11-27T13:54:20.123Z info gateway: message key=value`.
 * `part` is "gateway", "bus", "team" (an instance), … Control characters in
 * the message are escaped so one record is always one line. Thread-safe.
 */
void wh_log(int level, const char *part, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void wh_logv(int level, const char *part, const char *fmt, va_list ap);

/**
 * A log field's value as logfmt writes it: as is, or in double quotes (with
 * `"` and `\` escaped) when it is empty or holds a space, `"`, `=` or `\`,
 * so `config="my dir/w.yaml"` stays one field. The text lives in a small
 * per-thread ring (8 slots of 512 bytes; longer values are cut): use it
 * within the log call's arguments only.
 */
const char *wh_log_q(const char *value);

#define wh_error(part, ...) wh_log(WH_LOG_ERROR, part, __VA_ARGS__)
#define wh_warn(part, ...) wh_log(WH_LOG_WARN, part, __VA_ARGS__)
#define wh_info(part, ...) wh_log(WH_LOG_INFO, part, __VA_ARGS__)
#define wh_debug(part, ...) wh_log(WH_LOG_DEBUG, part, __VA_ARGS__)
#endif
