/* test_log.c — the rate-limited log helpers (base/log.h): a call site prints
 * at most LOG_RATELIMIT_BURST lines per second, and the next line it prints
 * says how many it dropped. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void test_call_site_limited(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    log_set_file(f);
    log_set_level(LOG_INFO);
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
    log_set_file(NULL);
    fclose(f);
}

static void test_suppressed_count_reported(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    log_set_file(f);
    log_set_level(LOG_INFO);
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
    log_set_file(NULL);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_site_limited),
        cmocka_unit_test(test_suppressed_count_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
