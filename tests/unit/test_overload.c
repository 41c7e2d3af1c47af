/* test_overload.c — admission control of new registrations (base/overload.c),
 * driven by a fake clock: when a REGISTER that would create a registration
 * is admitted, and what Retry-After it is told when not; and the [overload]
 * keys of the config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <stdlib.h>
#include <unistd.h>

#include "app/config.h"
#include "base/overload.h"

static struct overload_config quiet_config(void)
{
    struct overload_config c;
    overload_config_default(&c);
    c.max_server_txns = 0;
    c.max_store_backlog = 0;
    return c;
}

static void test_defaults_admit_an_idle_server(void **state)
{
    (void)state;
    struct overload_config c;
    overload_config_default(&c);
    struct overload o;
    overload_init(&o, &c, 42);
    struct overload_load idle = {.server_txns = 10, .store_backlog = 3};
    for (uint64_t t = 0; t < 10000; t += 10) assert_int_equal(overload_check(&o, t, &idle, true), OVERLOAD_ADMIT);
    assert_int_equal(o.stats.admitted, 1000);
    assert_int_equal(o.stats.refused, 0);
}

static void test_disabled_admits_everything(void **state)
{
    (void)state;
    struct overload_config c = quiet_config();
    c.enabled = false;
    c.max_register_rate = 1;
    struct overload o;
    overload_init(&o, &c, 1);
    for (int i = 0; i < 5; i++) overload_note_loop(&o, 100, 10000, 100);
    for (int i = 0; i < 100; i++) assert_int_equal(overload_check(&o, 100, NULL, true), OVERLOAD_ADMIT);
}

static void test_one_bad_sample_is_not_overload(void **state)
{
    (void)state;
    struct overload_config c = quiet_config(); /* 250 ms or 95 % x 3 samples, held 2 s */
    struct overload o;
    overload_init(&o, &c, 1);
    overload_note_loop(&o, 1000, 900, 10);
    overload_note_loop(&o, 1100, 900, 10);
    overload_note_loop(&o, 1200, 5, 10);   /* the run is broken */
    overload_note_loop(&o, 1300, 900, 10);
    overload_note_loop(&o, 1400, 0, 100);  /* busy runs count on their own */
    overload_note_loop(&o, 1500, 0, 100);
    overload_note_loop(&o, 1600, 0, 94);   /* under the limit: broken */
    overload_note_loop(&o, 1700, 0, 100);
    assert_false(overload_loop_overloaded(&o, 1700));
    assert_int_equal(overload_check(&o, 1700, NULL, true), OVERLOAD_ADMIT);
    assert_int_equal(o.stats.loop_lag_max_ms, 900);
    assert_int_equal(o.stats.loop_busy_pct, 100);
    assert_int_equal(o.stats.loop_episodes, 0);
}

static void test_sustained_lag_refuses_then_recovers(void **state)
{
    (void)state;
    struct overload_config c = quiet_config();
    struct overload o;
    overload_init(&o, &c, 1);
    for (uint64_t t = 1000; t <= 1200; t += 100) overload_note_loop(&o, t, 300, 0);
    assert_true(overload_loop_overloaded(&o, 1200));
    assert_int_equal(o.stats.loop_episodes, 1);
    assert_int_equal(overload_check(&o, 1250, NULL, true), OVERLOAD_LOOP);
    /* Still late: the hold moves on, the episode is the same one. */
    overload_note_loop(&o, 1300, 300, 0);
    assert_int_equal(o.stats.loop_episodes, 1);
    /* Good samples do not end it at once: it holds for hold_ms after the last late one. */
    overload_note_loop(&o, 1400, 1, 0);
    assert_int_equal(overload_check(&o, 3299, NULL, true), OVERLOAD_LOOP);
    assert_int_equal(overload_check(&o, 3300, NULL, true), OVERLOAD_ADMIT);
    assert_int_equal(o.stats.refused_by[OVERLOAD_LOOP], 2);
    assert_int_equal(o.stats.refused, 2);
    assert_int_equal(o.stats.admitted, 1);
}

/* A saturated UDP loop reads a few dozen datagrams per turn and runs its
 * timers on time: busy ~100 % is what shows it. */
static void test_sustained_busy_loop_refuses(void **state)
{
    (void)state;
    struct overload_config c = quiet_config();
    c.max_loop_lag_ms = 0; /* lag not checked: busy alone decides */
    struct overload o;
    overload_init(&o, &c, 1);
    overload_note_loop(&o, 100, 5000, 96);
    overload_note_loop(&o, 200, 5000, 99);
    assert_int_equal(overload_check(&o, 200, NULL, true), OVERLOAD_ADMIT);
    overload_note_loop(&o, 300, 5000, 95);
    assert_int_equal(overload_check(&o, 300, NULL, false), OVERLOAD_LOOP); /* second legs too */
    assert_int_equal(o.stats.loop_episodes, 1);
    assert_int_equal(overload_check(&o, 2299, NULL, true), OVERLOAD_LOOP);
    assert_int_equal(overload_check(&o, 2300, NULL, true), OVERLOAD_ADMIT);
}

/* A loop busy all the time that still empties its UDP socket keeps up: only
 * a busy loop whose receive queue fills is overloaded. Lag counts either way. */
static void test_busy_counts_only_with_a_filling_queue(void **state)
{
    (void)state;
    struct overload_config c = quiet_config(); /* max_rx_queue 50 % by default */
    struct overload o;
    overload_init(&o, &c, 1);
    for (uint64_t t = 1000; t <= 1500; t += 100) overload_note_loop_rxq(&o, t, 0, 100, 10);
    assert_false(overload_loop_overloaded(&o, 1500));
    assert_int_equal(overload_check(&o, 1500, NULL, true), OVERLOAD_ADMIT);
    assert_int_equal(o.stats.rx_queue_pct, 10);
    for (uint64_t t = 1600; t <= 1800; t += 100) overload_note_loop_rxq(&o, t, 0, 100, 60);
    assert_true(overload_loop_overloaded(&o, 1800));
    assert_int_equal(overload_check(&o, 1800, NULL, true), OVERLOAD_LOOP);
    /* With an empty queue, a late timer is still overload. */
    overload_init(&o, &c, 1);
    for (uint64_t t = 1000; t <= 1200; t += 100) overload_note_loop_rxq(&o, t, 900, 0, 0);
    assert_true(overload_loop_overloaded(&o, 1200));
}

static void test_queue_depths(void **state)
{
    (void)state;
    struct overload_config c = quiet_config();
    c.max_server_txns = 100;
    c.max_store_backlog = 50;
    struct overload o;
    overload_init(&o, &c, 1);
    struct overload_load l = {.server_txns = 99, .store_backlog = 49};
    assert_int_equal(overload_check(&o, 0, &l, true), OVERLOAD_ADMIT);
    l.server_txns = 100;
    assert_int_equal(overload_check(&o, 0, &l, true), OVERLOAD_TXNS);
    l.server_txns = 0;
    l.store_backlog = 50;
    assert_int_equal(overload_check(&o, 0, &l, true), OVERLOAD_STORE);
    assert_int_equal(o.stats.refused_by[OVERLOAD_TXNS], 1);
    assert_int_equal(o.stats.refused_by[OVERLOAD_STORE], 1);
}

static void test_rate_cap_is_a_token_bucket(void **state)
{
    (void)state;
    struct overload_config c = quiet_config();
    c.max_register_rate = 10;
    struct overload o;
    overload_init(&o, &c, 1);
    /* A burst: one second's worth goes through, the rest is refused. */
    int admitted = 0;
    for (int i = 0; i < 50; i++) admitted += overload_check(&o, 5000, NULL, true) == OVERLOAD_ADMIT;
    assert_int_equal(admitted, 10);
    assert_int_equal(o.stats.refused_by[OVERLOAD_RATE], 40);
    /* 100 ms later one more token has accrued, and only one. */
    assert_int_equal(overload_check(&o, 5099, NULL, true), OVERLOAD_RATE);
    assert_int_equal(overload_check(&o, 5100, NULL, true), OVERLOAD_ADMIT);
    assert_int_equal(overload_check(&o, 5100, NULL, true), OVERLOAD_RATE);
    /* A long pause banks one second's worth, not more. */
    admitted = 0;
    for (int i = 0; i < 50; i++) admitted += overload_check(&o, 60000, NULL, true) == OVERLOAD_ADMIT;
    assert_int_equal(admitted, 10);
    /* Offered at 3x the cap for 10 s, the cap's rate is admitted. */
    admitted = 0;
    for (uint64_t t = 60000; t < 70000; t += 33) admitted += overload_check(&o, t, NULL, true) == OVERLOAD_ADMIT;
    assert_in_range(admitted, 99, 101);
    /* The REGISTER answering our challenge takes no second token. */
    while (overload_check(&o, 70000, NULL, true) == OVERLOAD_ADMIT) continue;
    assert_int_equal(overload_check(&o, 70000, NULL, true), OVERLOAD_RATE);
    assert_int_equal(overload_check(&o, 70000, NULL, false), OVERLOAD_ADMIT);
}

static void test_retry_after_is_spread_over_the_range(void **state)
{
    (void)state;
    struct overload_config c = quiet_config();
    c.retry_after_min_s = 5;
    c.retry_after_max_s = 8;
    struct overload o;
    overload_init(&o, &c, 7);
    int seen[9] = {0};
    for (int i = 0; i < 400; i++) {
        uint32_t v = overload_retry_after(&o);
        assert_in_range(v, 5, 8);
        seen[v]++;
    }
    for (int v = 5; v <= 8; v++) assert_true(seen[v] > 40); /* every value, roughly evenly */
    /* A degenerate range is one value; max below min is raised to min. */
    c.retry_after_min_s = 12;
    c.retry_after_max_s = 3;
    overload_init(&o, &c, 7);
    for (int i = 0; i < 20; i++) assert_int_equal(overload_retry_after(&o), 12);
}

static void test_verdict_names(void **state)
{
    (void)state;
    assert_string_equal(overload_verdict_name(OVERLOAD_RATE), "rate");
    assert_string_equal(overload_verdict_name(OVERLOAD_LOOP), "loop");
    assert_string_equal(overload_verdict_name((enum overload_verdict)99), "?");
}

/* Loads text as an ini file into c; returns config_load's result. */
static int load_ini(struct config *c, const char *text, char *err, size_t cap)
{
    char path[] = "/tmp/test_overload_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    config_init(c);
    int rc = config_load(c, path, err, cap);
    unlink(path);
    return rc;
}

static void test_config_keys(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    config_init(&c);
    assert_true(c.overload.enabled);
    assert_int_equal(c.overload.max_loop_lag_ms, 250);
    assert_int_equal(c.overload.max_loop_busy_pct, 95);
    assert_int_equal(c.gb.catalog_concurrency, 32);
    assert_int_equal(load_ini(&c,
                              "[overload]\nenabled = no\nmax_loop_lag_ms = 100\nmax_loop_busy = 0\nloop_samples = 5\n"
                              "hold_ms = 500\nmax_working_transactions = 7\nmax_store_backlog = 8\n"
                              "max_register_rate = 9\nretry_after_min = 10\nretry_after_max = 20\n"
                              "[gb]\ncatalog_concurrency = 3\n",
                              err, sizeof(err)),
                     0);
    assert_false(c.overload.enabled);
    assert_int_equal(c.overload.max_loop_lag_ms, 100);
    assert_int_equal(c.overload.max_loop_busy_pct, 0);
    assert_int_equal(c.overload.loop_samples, 5);
    assert_int_equal(c.overload.hold_ms, 500);
    assert_int_equal(c.overload.max_server_txns, 7);
    assert_int_equal(c.overload.max_store_backlog, 8);
    assert_int_equal(c.overload.max_register_rate, 9);
    assert_int_equal(c.overload.retry_after_min_s, 10);
    assert_int_equal(c.overload.retry_after_max_s, 20);
    assert_int_equal(c.gb.catalog_concurrency, 3);
    /* Refused: an empty Retry-After range, a busy share over 100 %, no catalog slot. */
    assert_int_equal(load_ini(&c, "[overload]\nretry_after_min = 30\nretry_after_max = 5\n", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "retry_after_min > retry_after_max"));
    assert_int_equal(load_ini(&c, "[overload]\nmax_loop_busy = 101\n", err, sizeof(err)), -1);
    assert_int_equal(load_ini(&c, "[gb]\ncatalog_concurrency = 0\n", err, sizeof(err)), -1);
}

/* Background work waits earlier than registrations are refused: at half of
 * the transaction and store limits, and while the receive queue fills. */
static void test_busy_for_background_work(void **state)
{
    (void)state;
    struct overload_config c = quiet_config();
    c.max_server_txns = 1000;
    c.max_store_backlog = 100;
    struct overload o;
    overload_init(&o, &c, 1);
    overload_note_loop_rxq(&o, 1000, 0, 10, 0);
    struct overload_load load = {.server_txns = 499, .store_backlog = 49};
    assert_false(overload_busy(&o, 1000, &load));
    load.server_txns = 500;
    assert_true(overload_busy(&o, 1000, &load));
    assert_int_equal(overload_check(&o, 1000, &load, true), OVERLOAD_ADMIT); /* not refused yet */
    load.server_txns = 0;
    load.store_backlog = 50;
    assert_true(overload_busy(&o, 1000, &load));
    load.store_backlog = 0;
    overload_note_loop_rxq(&o, 1100, 0, 10, c.max_rx_queue_pct);
    assert_true(overload_busy(&o, 1100, &load));
    overload_note_loop_rxq(&o, 1200, 0, 10, 0);
    assert_false(overload_busy(&o, 1200, &load));
    for (uint64_t t = 1300; t <= 1500; t += 100) overload_note_loop_rxq(&o, t, 300, 10, 0);
    assert_true(overload_busy(&o, 1500, NULL));
    c.enabled = false;
    overload_init(&o, &c, 1);
    load.server_txns = 100000;
    assert_false(overload_busy(&o, 1000, &load));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_admit_an_idle_server),
        cmocka_unit_test(test_disabled_admits_everything),
        cmocka_unit_test(test_one_bad_sample_is_not_overload),
        cmocka_unit_test(test_sustained_lag_refuses_then_recovers),
        cmocka_unit_test(test_sustained_busy_loop_refuses),
        cmocka_unit_test(test_busy_counts_only_with_a_filling_queue),
        cmocka_unit_test(test_queue_depths),
        cmocka_unit_test(test_busy_for_background_work),
        cmocka_unit_test(test_rate_cap_is_a_token_bucket),
        cmocka_unit_test(test_retry_after_is_spread_over_the_range),
        cmocka_unit_test(test_verdict_names),
        cmocka_unit_test(test_config_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
