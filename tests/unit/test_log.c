/* test_log.c — logging (base/log.h): a call site prints at most its burst
 * of lines per second and the count of the rest is reported (by its next
 * line, or by log_flush_suppressed once it went quiet); JSON lines parse,
 * with strangers' bytes escaped; a log file is reopened after a rotation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <unistd.h>

#include "base/log.h"

/* Everything written to f since the start, NUL-terminated (static buffer). */
static const char *file_text(FILE *f)
{
    static char buf[64 * 1024];
    fflush(f);
    long n = ftell(f);
    rewind(f);
    size_t got = fread(buf, 1, n > 0 && (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1, f);
    buf[got] = '\0';
    fseek(f, 0, SEEK_END);
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void log_from_one_site(int i) { log_warn_rl("garbage from 192.0.2.%d:5060", i); }

/* Log lines of the given format at LOG_INFO into a temporary file. */
static FILE *capture(enum log_format format)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    log_set_file(f);
    log_set_level(LOG_INFO);
    log_set_format(format);
    return f;
}

/* Back to text on stderr; closes f. */
static void release(FILE *f)
{
    log_set_format(LOG_FORMAT_TEXT);
    log_set_file(NULL);
    fclose(f);
}

static void test_call_site_limited(void **state)
{
    (void)state;
    FILE *f = capture(LOG_FORMAT_TEXT);
    for (int i = 0; i < 1000; i++) log_from_one_site(i);
    /* One window (two if a stalled machine crossed a second boundary). */
    const char *text = file_text(f);
    assert_in_range(count(text, "garbage from"), LOG_RATELIMIT_BURST, 2 * LOG_RATELIMIT_BURST);
    assert_non_null(strstr(text, "WARN  garbage from 192.0.2.0:5060\n"));
    /* Another call site has its own budget. */
    for (int i = 0; i < 100; i++) log_info_rl("other site %d", i);
    text = file_text(f);
    assert_in_range(count(text, "other site"), LOG_RATELIMIT_BURST, 2 * LOG_RATELIMIT_BURST);
    /* Below the level: nothing, and nothing counted. */
    for (int i = 0; i < 100; i++) LOG_RATELIMITED(LOG_DEBUG, "debug %d", i);
    assert_int_equal(count(file_text(f), "debug"), 0);
    release(f);
}

static void test_suppressed_count_reported(void **state)
{
    (void)state;
    FILE *f = capture(LOG_FORMAT_TEXT);
    struct log_ratelimit rl = {0};
    int printed = 0;
    for (int i = 0; i < 100; i++) printed += log_write_ratelimited(&rl, LOG_WARN, "refused %d", i);
    assert_int_equal(printed, LOG_RATELIMIT_BURST);
    assert_int_equal(rl.suppressed, 100 - LOG_RATELIMIT_BURST);
    /* The window passes (moved back rather than waited for): the next line carries the count. */
    rl.window_ms -= 1000;
    assert_true(log_write_ratelimited(&rl, LOG_WARN, "refused again"));
    char want[64];
    snprintf(want, sizeof(want), "refused again (suppressed %d similar)\n", 100 - LOG_RATELIMIT_BURST);
    assert_non_null(strstr(file_text(f), want));
    assert_int_equal(rl.suppressed, 0);
    /* A plain line after it says nothing of suppression. */
    assert_true(log_write_ratelimited(&rl, LOG_WARN, "refused once more"));
    assert_non_null(strstr(file_text(f), "refused once more\n"));
    release(f);
}

/* The lines of text, each parsed as one JSON object (at most 64), leaving
 * out the count reports of other tests' sites (their windows may end while
 * this test runs; only the site at line 77 is this file's). */
static int json_lines(const char *text, json_t **out, int cap)
{
    int n = 0;
    for (const char *p = text; *p && n < cap;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl); /* every line ends with a newline */
        json_error_t err;
        out[n] = json_loadb(p, (size_t)(nl - p), 0, &err);
        if (!out[n]) fail_msg("line %d does not parse: %s: %.*s", n + 1, err.text, (int)(nl - p), p);
        if (json_object_get(out[n], "suppressed") && json_integer_value(json_object_get(out[n], "line")) != 77)
            json_decref(out[n]);
        else
            n++;
        p = nl + 1;
    }
    return n;
}

static void test_json_lines_parse(void **state)
{
    (void)state;
    FILE *f = capture(LOG_FORMAT_JSON);
    log_warn("400 %s from %s", "bad Via", "192.0.2.7:5060");
    log_info("user %s registered", "alice");
    log_debug("not written at info");
    json_t *l[64];
    int n = json_lines(file_text(f), l, 64);
    assert_int_equal(n, 2);
    assert_string_equal(json_string_value(json_object_get(l[0], "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(l[0], "msg")), "400 bad Via from 192.0.2.7:5060");
    assert_string_equal(json_string_value(json_object_get(l[0], "file")), "test_log.c");
    assert_true(json_integer_value(json_object_get(l[0], "line")) > 0);
    assert_non_null(json_object_get(l[0], "module"));
    const char *ts = json_string_value(json_object_get(l[0], "ts"));
    assert_non_null(ts); /* 2026-12-06T04:43:20.102Z */
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[23], 'Z');
    assert_string_equal(json_string_value(json_object_get(l[1], "level")), "info");
    assert_null(json_object_get(l[1], "suppressed"));
    for (int i = 0; i < n; i++) json_decref(l[i]);
    release(f);
}

/* What a stranger controls (a User-Agent, a user name) may hold anything. */
static void test_json_escapes_strangers_bytes(void **state)
{
    (void)state;
    FILE *f = capture(LOG_FORMAT_JSON);
    static const struct {
        const char *in, *want; /* want: the msg after JSON decoding */
    } cases[] = {
        {"quote \" and backslash \\", "quote \" and backslash \\"},
        {"new\nline\r\ttab", "new\nline\r\ttab"},
        {"bell\a esc\x1b del\x7f", "bell\a esc\x1b del\x7f"},
        {"caf\xc3\xa9 \xf0\x9f\x8e\xa5", "caf\xc3\xa9 \xf0\x9f\x8e\xa5"}, /* valid UTF-8 stays */
        {"lone \xff byte", "lone \xef\xbf\xbd byte"},                       /* U+FFFD */
        {"cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd"},                   /* truncated sequence */
        {"overlong \xc0\xaf", "overlong \xef\xbf\xbd\xef\xbf\xbd"},
        {"surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"too high \xf4\x90\x80\x80", "too high \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    };
    size_t ncases = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < ncases; i++) log_warn("ua %s", cases[i].in);
    json_t *l[64];
    assert_int_equal(json_lines(file_text(f), l, 64), (int)ncases);
    for (size_t i = 0; i < ncases; i++) {
        char want[512];
        snprintf(want, sizeof(want), "ua %s", cases[i].want);
        assert_string_equal(json_string_value(json_object_get(l[i], "msg")), want);
        json_decref(l[i]);
    }
    /* A message at the size limit still makes one whole line. */
    static char big[4096];
    memset(big, '"', sizeof(big) - 1);
    log_warn("%s", big);
    const char *text = file_text(f);
    const char *last = text + strlen(text) - 1;
    while (last > text && last[-1] != '\n') last--;
    json_error_t err;
    json_t *o = json_loads(last, 0, &err);
    assert_non_null(o);
    assert_true(strlen(json_string_value(json_object_get(o, "msg"))) > 1000);
    json_decref(o);
    release(f);
}

static void test_text_escapes_control_chars(void **state)
{
    (void)state;
    FILE *f = capture(LOG_FORMAT_TEXT);
    log_warn("user %s", "eve\n2026-12-06T00:00:00.000Z ERROR forged");
    const char *text = file_text(f);
    assert_non_null(strstr(text, "user eve\\x0a2026-12-06T00:00:00.000Z ERROR forged\n"));
    assert_null(strstr(text, "\n2026-12-06T00:00:00.000Z")); /* no line of its own */
    release(f);
}

static void log_plain_site(int i) { log_warn("plain site %d", i); }

/* Every log line, not only the _rl forms, has a per-site budget. */
static void test_plain_site_limited(void **state)
{
    (void)state;
    FILE *f = capture(LOG_FORMAT_TEXT);
    for (int i = 0; i < 1000; i++) log_plain_site(i);
    assert_in_range(count(file_text(f), "plain site"), LOG_SITE_BURST, 2 * LOG_SITE_BURST);
    release(f);
}

/* A site that goes quiet after a burst gets its count printed by the flush. */
static void test_flush_reports_quiet_site(void **state)
{
    (void)state;
    FILE *f = capture(LOG_FORMAT_JSON);
    static struct log_ratelimit rl; /* as the macros' sites: static */
    int printed = 0;
    for (int i = 0; i < 40; i++)
        printed += log_write_site(&rl, LOG_RATELIMIT_BURST, "/x/src/proxy/proxy.c", 77, LOG_WARN, "loop %d", i);
    assert_int_equal(printed, LOG_RATELIMIT_BURST);
    log_flush_suppressed(); /* inside the window: nothing yet */
    assert_int_equal(count(file_text(f), "\"line\":77,\"suppressed\""), 0);
    rl.window_ms -= 1000;   /* the second is over (moved back rather than waited for) */
    log_flush_suppressed();
    json_t *l[64];
    int n = json_lines(file_text(f), l, 64);
    assert_int_equal(n, LOG_RATELIMIT_BURST + 1);
    json_t *r = l[n - 1];
    assert_int_equal(json_integer_value(json_object_get(r, "suppressed")), 40 - LOG_RATELIMIT_BURST);
    assert_string_equal(json_string_value(json_object_get(r, "module")), "proxy");
    assert_string_equal(json_string_value(json_object_get(r, "file")), "proxy.c");
    assert_int_equal(json_integer_value(json_object_get(r, "line")), 77);
    assert_string_equal(json_string_value(json_object_get(r, "level")), "warn");
    for (int i = 0; i < n; i++) json_decref(l[i]);
    /* Reported once: a second flush and the site's next line say nothing more. */
    log_flush_suppressed();
    assert_true(log_write_site(&rl, LOG_RATELIMIT_BURST, "/x/src/proxy/proxy.c", 77, LOG_WARN, "loop again"));
    assert_int_equal(count(file_text(f), "\"line\":77,\"suppressed\""), 1);
    release(f);
}

static void read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* logrotate moves the file, then SIGUSR1 makes the daemon call log_reopen. */
static void test_reopen_after_rotation(void **state)
{
    (void)state;
    char dir[] = "/tmp/cascade-logtest.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512], rotated[512];
    snprintf(path, sizeof(path), "%s/cascade.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/cascade.log.1", dir);
    log_set_level(LOG_INFO);
    assert_int_equal(log_open(path), 0);
    log_info("before rotation");
    assert_int_equal(rename(path, rotated), 0);
    log_info("still the old file");
    assert_int_equal(log_reopen(), 0);
    log_info("after rotation");
    char buf[4096];
    read_file(rotated, buf, sizeof(buf));
    assert_non_null(strstr(buf, "before rotation"));
    assert_non_null(strstr(buf, "still the old file"));
    assert_null(strstr(buf, "after rotation"));
    read_file(path, buf, sizeof(buf));
    assert_non_null(strstr(buf, "after rotation"));
    assert_null(strstr(buf, "before rotation"));
    /* A path that cannot be opened: an error, and lines keep their place. */
    char bad[600];
    snprintf(bad, sizeof(bad), "%s/no/such/dir/x.log", dir);
    assert_true(log_open(bad) < 0);
    log_info("kept");
    read_file(path, buf, sizeof(buf));
    assert_non_null(strstr(buf, "kept"));
    log_set_file(NULL);
    unlink(path);
    unlink(rotated);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_site_limited),
        cmocka_unit_test(test_suppressed_count_reported),
        cmocka_unit_test(test_json_lines_parse),
        cmocka_unit_test(test_json_escapes_strangers_bytes),
        cmocka_unit_test(test_text_escapes_control_chars),
        cmocka_unit_test(test_plain_site_limited),
        cmocka_unit_test(test_flush_reports_quiet_site),
        cmocka_unit_test(test_reopen_after_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
