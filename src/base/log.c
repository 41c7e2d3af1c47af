/* log.c — leveled logging (see log.h). The level is process-wide: logging is
 * configuration, not per-worker state. */
#include "base/log.h"

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

void log_write(enum log_level level, const char *fmt, ...)
{
    if (level > current_level) return;
    static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    FILE *out = log_out ? log_out : stderr;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    n += m;
    if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, out);
    fflush(out);
}
