/* log.c — leveled logging (see log.h). The level, format and destination
 * are process-wide: logging is configuration, not per-worker state.
 *
 * Two locks: ratelimit_lock guards the per-site counters and the list of
 * sites with counts to report; out_lock guards the destination, so a line
 * is written whole by one write(2) and a reopen swaps the descriptor
 * between two lines. A line is formatted in a per-thread buffer. */
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_MSG_MAX 2048                        /* the formatted message, before escaping */
#define LOG_LINE_MAX (LOG_MSG_MAX * 6 + 512)    /* escaped: at most 6 bytes per byte (\u00XX) */
#define LOG_FLUSH_BATCH 32                      /* reports printed per flush; the rest wait */

static enum log_level current_level = LOG_INFO;
static enum log_format current_format = LOG_FORMAT_TEXT;

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int out_fd = -1;          /* -1: stderr */
static bool out_owned;           /* out_fd was opened here (log_open) */
static char out_path[PATH_MAX];  /* "" unless log_open */

static pthread_mutex_t ratelimit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_ratelimit *pending; /* call sites with dropped lines (ratelimit_lock) */

void log_set_level(enum log_level level) { current_level = level; }
enum log_level log_get_level(void) { return current_level; }
void log_set_format(enum log_format format) { current_format = format; }

int log_level_from_name(const char *name)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0) return i;
    return -1;
}

int log_format_from_name(const char *name)
{
    if (strcasecmp(name, "text") == 0) return LOG_FORMAT_TEXT;
    if (strcasecmp(name, "json") == 0) return LOG_FORMAT_JSON;
    return -1;
}

/* ---- destination ---- */

static void set_fd(int fd, bool owned, const char *path)
{
    pthread_mutex_lock(&out_lock);
    int old = out_owned ? out_fd : -1;
    out_fd = fd;
    out_owned = owned;
    if (path != out_path) snprintf(out_path, sizeof(out_path), "%s", path ? path : "");
    pthread_mutex_unlock(&out_lock);
    if (old >= 0 && old != fd) close(old);
}

void log_set_file(FILE *f)
{
    if (f) fflush(f);
    set_fd(f ? fileno(f) : -1, false, NULL);
}

static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

int log_open(const char *path)
{
    if (!path || !*path || strlen(path) >= sizeof(out_path)) return -EINVAL;
    int fd = open_path(path);
    if (fd < 0) return fd;
    set_fd(fd, true, path);
    return 0;
}

int log_reopen(void)
{
    char path[PATH_MAX];
    pthread_mutex_lock(&out_lock);
    memcpy(path, out_path, sizeof(path));
    pthread_mutex_unlock(&out_lock);
    if (!path[0]) return 0;
    int fd = open_path(path);
    if (fd < 0) return fd;
    set_fd(fd, true, out_path);
    return 0;
}

static void write_out(const char *data, size_t len)
{
    pthread_mutex_lock(&out_lock);
    int fd = out_fd >= 0 ? out_fd : STDERR_FILENO;
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* nowhere left to complain to */
        data += n;
        len -= (size_t)n;
    }
    pthread_mutex_unlock(&out_lock);
}

/* ---- formatting ---- */

struct line_buf {
    char *p;
    size_t len, cap; /* cap keeps room for the closing bytes and '\n' */
};

static void put(struct line_buf *b, const char *s, size_t n)
{
    if (n > b->cap - b->len) n = b->cap - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(struct line_buf *b, const char *s) { put(b, s, strlen(s)); }

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 §4: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

/* The message as a JSON string body: never cuts an escape in half. */
static void put_json_text(struct line_buf *b, const char *msg, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)msg;
    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *out = esc;
        size_t olen;
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, olen = 2;
            i++;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\', esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't', olen = 2;
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15], olen = 6;
            i++;
        } else if (c < 0x80) {
            out = (const char *)s + i, olen = 1;
            i++;
        } else if ((olen = utf8_len(s + i, n - i)) != 0) {
            out = (const char *)s + i;
            i += olen;
        } else {
            out = "\\ufffd", olen = 6; /* one replacement per bad byte */
            i++;
        }
        if (olen > b->cap - b->len) return;
        put(b, out, olen);
    }
}

/* The message as text: control characters as \xNN, so a stranger's bytes
 * cannot start a line of their own. */
static void put_plain_text(struct line_buf *b, const char *msg, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c < 0x20 || c == 0x7F) {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            if (b->cap - b->len < 4) return;
            put(b, esc, 4);
        } else {
            put(b, msg + i, 1);
        }
    }
}

/* "registrar" and "registrar.c" from ".../src/registrar/registrar.c"; a path
 * outside src/ gives "" and its last component. */
static void split_site(const char *file, char *module, size_t cap, const char **base)
{
    const char *slash = strrchr(file, '/');
    *base = slash ? slash + 1 : file;
    module[0] = '\0';
    const char *src = NULL;
    for (const char *p = strstr(file, "src/"); p; p = strstr(p + 1, "src/"))
        if (p == file || p[-1] == '/') src = p + 4;
    if (src && slash && slash > src) snprintf(module, cap, "%.*s", (int)(slash - src), src);
}

static const char *const level_tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* One line: msg is the formatted message; suppressed > 0 adds the count
 * (as " (suppressed N similar)" in text). */
static void emit(enum log_level level, const char *file, int line, const char *msg, size_t msg_len,
                 uint32_t suppressed)
{
    static _Thread_local char buf[LOG_LINE_MAX];
    struct line_buf b = {buf, 0, sizeof(buf) - 8};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t wl = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + wl, sizeof(when) - wl, ".%03ldZ", ts.tv_nsec / 1000000);
    char num[96];
    if (current_format == LOG_FORMAT_JSON) {
        snprintf(num, sizeof(num), "{\"ts\":\"%s\",\"level\":\"%s\"", when, level_names[level]);
        puts_(&b, num);
        if (file) {
            char module[128];
            const char *base;
            split_site(file, module, sizeof(module), &base);
            puts_(&b, ",\"module\":\"");
            put_json_text(&b, module, strlen(module));
            puts_(&b, "\",\"file\":\"");
            put_json_text(&b, base, strlen(base));
            snprintf(num, sizeof(num), "\",\"line\":%d", line);
            puts_(&b, num);
        }
        if (suppressed) {
            snprintf(num, sizeof(num), ",\"suppressed\":%u", suppressed);
            puts_(&b, num);
        }
        puts_(&b, ",\"msg\":\"");
        put_json_text(&b, msg, msg_len);
        b.cap += 8; /* the reserve: the closing bytes always fit */
        puts_(&b, "\"}\n");
    } else {
        snprintf(num, sizeof(num), "%s %-5s ", when, level_tags[level]);
        puts_(&b, num);
        put_plain_text(&b, msg, msg_len);
        if (suppressed) {
            snprintf(num, sizeof(num), " (suppressed %u similar)", suppressed);
            puts_(&b, num);
        }
        b.cap += 8;
        puts_(&b, "\n");
    }
    write_out(b.p, b.len);
}

/* ---- rate limits ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return ms ? ms : 1; /* 0 is "no window yet" */
}

struct flush_report {
    const char *file;
    int line;
    enum log_level level;
    uint32_t count;
};

static void flush_at(int64_t now)
{
    if (!__atomic_load_n(&pending, __ATOMIC_RELAXED)) return; /* the common case: no lock */
    struct flush_report r[LOG_FLUSH_BATCH];
    int n = 0;
    pthread_mutex_lock(&ratelimit_lock);
    for (struct log_ratelimit **pp = &pending; *pp && n < LOG_FLUSH_BATCH;) {
        struct log_ratelimit *rl = *pp;
        if (now - rl->window_ms < 1000 && rl->suppressed) {
            pp = &rl->next; /* still inside its window: the count may grow */
            continue;
        }
        if (rl->suppressed) r[n++] = (struct flush_report){rl->file, rl->line, rl->level, rl->suppressed};
        rl->suppressed = 0;
        rl->listed = false;
        __atomic_store_n(pp, rl->next, __ATOMIC_RELAXED);
        rl->next = NULL;
    }
    pthread_mutex_unlock(&ratelimit_lock);
    for (int i = 0; i < n; i++) {
        if ((int)r[i].level > (int)current_level) continue;
        char msg[80];
        int len = snprintf(msg, sizeof(msg), "suppressed %u similar lines", r[i].count);
        if (current_format == LOG_FORMAT_TEXT) {
            char module[128];
            const char *base;
            split_site(r[i].file, module, sizeof(module), &base);
            char text[512];
            len = snprintf(text, sizeof(text), "%s%s%s:%d: %s", module, module[0] ? "/" : "", base, r[i].line, msg);
            emit(r[i].level, r[i].file, r[i].line, text, (size_t)len, 0);
        } else {
            emit(r[i].level, r[i].file, r[i].line, msg, (size_t)len, r[i].count);
        }
    }
}

void log_flush_suppressed(void) { flush_at(now_ms()); }

bool log_write_site(struct log_ratelimit *rl, uint32_t burst, const char *file, int line, enum log_level level,
                    const char *fmt, ...)
{
    if ((int)level > (int)current_level) return false;
    int64_t now = now_ms();
    uint32_t suppressed = 0;
    pthread_mutex_lock(&ratelimit_lock);
    if (rl->window_ms == 0 || now - rl->window_ms >= 1000) {
        rl->window_ms = now;
        rl->printed = 0;
    }
    bool print = rl->printed < burst;
    if (print) {
        rl->printed++;
        suppressed = rl->suppressed;
        rl->suppressed = 0; /* a listed key leaves the list at the next flush */
    } else {
        rl->suppressed++;
        rl->level = level;
        if (file && !rl->listed) {
            rl->file = file;
            rl->line = line;
            rl->listed = true;
            rl->next = pending;
            __atomic_store_n(&pending, rl, __ATOMIC_RELAXED);
        }
    }
    pthread_mutex_unlock(&ratelimit_lock);
    if (!print) return false;
    flush_at(now);
    char msg[LOG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    if ((size_t)m >= sizeof(msg)) m = (int)sizeof(msg) - 1;
    emit(level, file, line, msg, (size_t)m, suppressed);
    return true;
}
