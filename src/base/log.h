/* log.h — leveled logging to stderr (or a file), one line per record.
 *
 * Every refusal of input is logged with the sender's address: use
 * log_warn("400 %s from %s", reason, addr) style messages.
 *
 * Anything a peer can make repeat (garbage, oversize, refused connections,
 * accept or connect errors) goes through the rate-limited forms:
 *
 *     log_warn_rl("TCP garbage from %s: closing", peer);
 *
 * Each call site prints at most LOG_RATELIMIT_BURST lines per second; the
 * rest are counted, and the next line that call site prints ends with
 * " (suppressed N similar)". The state is a static per call site (the key is
 * the line of code, not the text); code that wants its own key (one per
 * listener, say) passes a struct log_ratelimit to log_write_ratelimited.
 * Thread-safe; a suppressed line costs a clock read and an uncontended lock. */
#ifndef CASCADE_BASE_LOG_H
#define CASCADE_BASE_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(enum log_level level);
int log_level_from_name(const char *name); /* -1 when unknown */
enum log_level log_get_level(void);
void log_set_file(FILE *f);
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One rate-limit key. Zero-initialised (static) is the valid start state. */
struct log_ratelimit {
    int64_t window_ms;    /* start of the current one-second window */
    uint32_t printed;     /* lines printed in it */
    uint32_t suppressed;  /* lines dropped since the last printed one */
};
#define LOG_RATELIMIT_BURST 5

/* log_write unless rl printed LOG_RATELIMIT_BURST lines this second. Returns
 * true when the line was printed. */
bool log_write_ratelimited(struct log_ratelimit *rl, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_RATELIMITED(level, ...)                                            \
    do {                                                                       \
        static struct log_ratelimit log_rl_site_;                              \
        if ((level) <= log_get_level())                                        \
            log_write_ratelimited(&log_rl_site_, (level), __VA_ARGS__);        \
    } while (0)
#define log_error_rl(...) LOG_RATELIMITED(LOG_ERROR, __VA_ARGS__)
#define log_warn_rl(...) LOG_RATELIMITED(LOG_WARN, __VA_ARGS__)
#define log_info_rl(...) LOG_RATELIMITED(LOG_INFO, __VA_ARGS__)

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { if (log_get_level() >= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
