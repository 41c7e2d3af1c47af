/* log.h — leveled logging to stderr (or a file), one line per record.
 *
 * Every refusal of input is logged with the sender's address: use
 * log_warn("400 %s from %s", reason, addr) style messages. */
#ifndef CASCADE_BASE_LOG_H
#define CASCADE_BASE_LOG_H

#include <stdio.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(enum log_level level);
int log_level_from_name(const char *name); /* -1 when unknown */
enum log_level log_get_level(void);
void log_set_file(FILE *f);
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { if (log_get_level() >= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
