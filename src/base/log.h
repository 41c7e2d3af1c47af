/* log.h — leveled logging, one line per record, as text or as JSON, to
 * stderr (journald picks it up) or to a file that can be reopened after a
 * log rotation.
 *
 * Every refusal of input is logged with the sender's address: use
 * log_warn("400 %s from %s", reason, addr) style messages.
 *
 * Every call site is rate-limited. The plain forms (log_info, log_warn, ...)
 * print at most LOG_SITE_BURST lines per second from one site; anything a
 * peer can make repeat (garbage, oversize, refused connections, accept or
 * connect errors) goes through the tighter forms:
 *
 *     log_warn_rl("TCP garbage from %s: closing", peer);
 *
 * which print at most LOG_RATELIMIT_BURST lines per second. The rest are
 * counted. The count is reported once the second is over: by the next line
 * that site prints, which ends with " (suppressed N similar)", or, when the
 * site stays quiet, by log_flush_suppressed() (the daemon calls it every
 * second, and any log line calls it too), which prints
 * "suppressed N similar lines" under the site's file and line. The state is
 * a static per call site (the key is the line of code, not the text); code
 * that wants its own key (one per listener, say) passes a struct
 * log_ratelimit to log_write_ratelimited; such a key lives in its owner's
 * memory, so its count is only reported by its next line.
 * Thread-safe; a suppressed line costs a clock read and an uncontended lock.
 *
 * Text lines: "2026-12-06T04:43:20.102Z WARN  message". JSON lines: one
 * object per line, {"ts":"…","level":"warn","module":"registrar",
 * "file":"registrar.c","line":120,"msg":"…"} plus "suppressed":N when the
 * line reports dropped ones. Messages often carry bytes from strangers:
 * control characters are escaped in both formats (text: \xNN), and in JSON
 * quotes and backslashes are escaped and each byte of invalid UTF-8 becomes
 * U+FFFD, so every line parses. */
#ifndef CASCADE_BASE_LOG_H
#define CASCADE_BASE_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 };

void log_set_level(enum log_level level);
int log_level_from_name(const char *name); /* -1 when unknown */
enum log_level log_get_level(void);
void log_set_format(enum log_format format);
int log_format_from_name(const char *name); /* "text", "json"; -1 when unknown */

/* Lines go to f from now on (NULL: stderr). f stays the caller's; it must
 * outlive its use here. */
void log_set_file(FILE *f);
/* Lines go to path from now on: opened for appending, created with mode
 * 0640. 0, or a negative errno (the old destination stays). */
int log_open(const char *path);
/* Opens the log_open path again (after logrotate moved the file away): new
 * lines go to a new file at that path. 0 when there is no path (stderr), or
 * a negative errno (lines keep going to the old file). */
int log_reopen(void);

/* One rate-limit key. Zero-initialised (static) is the valid start state. */
struct log_ratelimit {
    int64_t window_ms;    /* start of the current one-second window */
    uint32_t printed;     /* lines printed in it */
    uint32_t suppressed;  /* lines dropped since the last printed one */
    /* Set for call-site keys (static storage): the key may join the list
     * log_flush_suppressed() reports from. */
    const char *file;
    int line;
    enum log_level level; /* of the suppressed lines */
    bool listed;
    struct log_ratelimit *next;
};
#define LOG_RATELIMIT_BURST 5  /* lines per second: *_rl forms and explicit keys */
#define LOG_SITE_BURST 50      /* lines per second: the plain forms */

/* The line, unless rl printed burst lines this second. file and line name
 * the call site (NULL, 0: an explicit key, not listed for flushing). Returns
 * true when the line was printed. */
bool log_write_site(struct log_ratelimit *rl, uint32_t burst, const char *file, int line, enum log_level level,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* log_write_site with an explicit key (one per listener, say). */
#define log_write_ratelimited(rl, level, ...) \
    log_write_site((rl), LOG_RATELIMIT_BURST, NULL, 0, (level), __VA_ARGS__)

/* Reports the counts of call sites whose window is over and that dropped
 * lines since they last printed. Cheap when there is nothing to report. */
void log_flush_suppressed(void);

#define LOG_SITE(level, burst, ...)                                                        \
    do {                                                                                   \
        static struct log_ratelimit log_rl_site_;                                          \
        if ((int)(level) <= (int)log_get_level())                                          \
            log_write_site(&log_rl_site_, (burst), __FILE__, __LINE__, (level), __VA_ARGS__); \
    } while (0)
#define LOG_RATELIMITED(level, ...) LOG_SITE(level, LOG_RATELIMIT_BURST, __VA_ARGS__)
#define log_error_rl(...) LOG_RATELIMITED(LOG_ERROR, __VA_ARGS__)
#define log_warn_rl(...) LOG_RATELIMITED(LOG_WARN, __VA_ARGS__)
#define log_info_rl(...) LOG_RATELIMITED(LOG_INFO, __VA_ARGS__)

#define log_error(...) LOG_SITE(LOG_ERROR, LOG_SITE_BURST, __VA_ARGS__)
#define log_warn(...) LOG_SITE(LOG_WARN, LOG_SITE_BURST, __VA_ARGS__)
#define log_info(...) LOG_SITE(LOG_INFO, LOG_SITE_BURST, __VA_ARGS__)
#define log_debug(...) LOG_SITE(LOG_DEBUG, LOG_SITE_BURST, __VA_ARGS__)

#endif
