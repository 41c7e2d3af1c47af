/* log.c — leveled logging (see log.h). The level is process-wide: logging is
 * configuration, not per-worker state. */
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum log_level current_level = LOG_INFO;
static FILE *log_out;

void log_set_level(enum log_level level) { current_level = level; }
enum log_level log_get_level(void) { return current_level; }
void log_set_file(FILE *f) { log_out = f; }

int log_level_from_name(const char *name)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0) return i;
    return -1;
}

static void log_vwrite(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
    static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    FILE *out = log_out ? log_out : stderr;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000, tags[level]);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0) m = 0;
    n += m;
    if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2;
    if (suffix) {
        m = snprintf(line + n, sizeof(line) - (size_t)n - 1, "%s", suffix);
        if (m > 0) n += m;
        if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2;
    }
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, out);
    fflush(out);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (level > current_level) return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, NULL, fmt, ap);
    va_end(ap);
}

/* One lock for every key: only lines that may repeat come here, and the
 * critical section is a few compares. */
static pthread_mutex_t ratelimit_lock = PTHREAD_MUTEX_INITIALIZER;

bool log_write_ratelimited(struct log_ratelimit *rl, enum log_level level, const char *fmt, ...)
{
    if (level > current_level) return false;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    uint32_t suppressed = 0;
    pthread_mutex_lock(&ratelimit_lock);
    if (rl->window_ms == 0 || now_ms - rl->window_ms >= 1000) {
        rl->window_ms = now_ms ? now_ms : 1;
        rl->printed = 0;
    }
    bool print = rl->printed < LOG_RATELIMIT_BURST;
    if (print) {
        rl->printed++;
        suppressed = rl->suppressed;
        rl->suppressed = 0;
    } else {
        rl->suppressed++;
    }
    pthread_mutex_unlock(&ratelimit_lock);
    if (!print) return false;
    char suffix[48];
    if (suppressed) snprintf(suffix, sizeof(suffix), " (suppressed %u similar)", suppressed);
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, suppressed ? suffix : NULL, fmt, ap);
    va_end(ap);
    return true;
}
