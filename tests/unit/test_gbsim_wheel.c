/* test_gbsim_wheel.c — cascade-gbsim's timer wheel and latency histograms
 * (src/app/gbsim_wheel.c, gbsim_stats.c), driven by a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "app/gbsim_int.h"
#include "base/timer.h"

struct item {
    struct gbsim_wheel_node node;
    int fired;
    uint64_t fired_at;
    int rearm_ms;          /* > 0: re-arm from the callback */
    struct item *stop;     /* stop this one from the callback */
};

static struct gbsim_wheel *cur;

static void on_fire(struct gbsim_wheel_node *n, uint64_t now, void *user)
{
    (void)user;
    struct item *it = container_of(n, struct item, node);
    it->fired++;
    it->fired_at = now;
    if (it->stop) gbsim_wheel_del(cur, &it->stop->node);
    if (it->rearm_ms > 0) gbsim_wheel_add(cur, n, now + (uint64_t)it->rearm_ms);
}

static void test_fires_in_order_and_at_most_a_tick_late(void **state)
{
    (void)state;
    struct gbsim_wheel w;
    assert_int_equal(gbsim_wheel_init(&w, 64, 10, 1000, on_fire, NULL), 0);
    cur = &w;
    struct item a = {0}, b = {0}, c = {0};
    gbsim_wheel_add(&w, &a.node, 1005);
    gbsim_wheel_add(&w, &b.node, 1050);
    gbsim_wheel_add(&w, &c.node, 1000 + 64 * 10 * 3 + 7); /* three rounds ahead */
    assert_int_equal(w.count, 3);
    assert_int_equal(gbsim_wheel_run(&w, 1004, 0), 0); /* never early */
    assert_int_equal(a.fired, 0);
    assert_int_equal(gbsim_wheel_run(&w, 1009, 0), 1); /* a's tick (1000..1009) is over */
    assert_int_equal(a.fired, 1);
    assert_int_equal(a.fired_at, 1009);
    assert_int_equal(gbsim_wheel_run(&w, 1058, 0), 0);
    assert_int_equal(b.fired, 0);
    assert_int_equal(gbsim_wheel_run(&w, 1059, 0), 1);
    assert_int_equal(b.fired, 1);
    /* c's slot comes around twice before its round: it stays. */
    assert_int_equal(gbsim_wheel_run(&w, 2928, 0), 0);
    assert_int_equal(c.fired, 0);
    assert_int_equal(gbsim_wheel_run(&w, 2929, 0), 1);
    assert_int_equal(c.fired, 1);
    assert_int_equal(w.count, 0);
    gbsim_wheel_free(&w);
}

/* A backlog fires in slices of at most max, in deadline order, none lost,
 * none twice; a node armed from a callback for "now" waits for a later run. */
static void test_backlog_fires_in_slices(void **state)
{
    (void)state;
    struct gbsim_wheel w;
    assert_int_equal(gbsim_wheel_init(&w, 64, 10, 1000, on_fire, NULL), 0);
    cur = &w;
    struct item it[25] = {0};
    for (int i = 0; i < 25; i++) gbsim_wheel_add(&w, &it[i].node, 1000 + (uint64_t)(i / 10) * 10); /* 3 ticks */
    it[0].rearm_ms = 1; /* due again at once */
    assert_int_equal(gbsim_wheel_run(&w, 5000, 7), 7);
    for (int i = 0; i < 25; i++) assert_int_equal(it[i].fired, i < 7 ? 1 : 0);
    assert_int_equal(gbsim_wheel_run(&w, 5000, 7), 7); /* the rest of tick 0, then tick 1 */
    for (int i = 0; i < 25; i++) assert_int_equal(it[i].fired, i < 14 ? 1 : 0);
    assert_int_equal(gbsim_wheel_run(&w, 5000, 100), 11);
    for (int i = 0; i < 25; i++) assert_int_equal(it[i].fired, 1);
    assert_int_equal(w.count, 1); /* item 0, re-armed for 5001: the tick 5000..5009 */
    assert_int_equal(gbsim_wheel_run(&w, 5008, 0), 0);
    assert_int_equal(gbsim_wheel_run(&w, 5009, 0), 1);
    assert_int_equal(it[0].fired, 2);
    gbsim_wheel_free(&w);
}

static void test_stop_rearm_and_callbacks(void **state)
{
    (void)state;
    struct gbsim_wheel w;
    assert_int_equal(gbsim_wheel_init(&w, 8, 10, 0, on_fire, NULL), 0);
    cur = &w;
    struct item a = {0}, b = {0}, c = {0}, d = {0};
    gbsim_wheel_add(&w, &a.node, 100);
    gbsim_wheel_add(&w, &b.node, 100);
    a.stop = &b; /* a stops b, which sits behind it in the same slot */
    gbsim_wheel_add(&w, &c.node, 50);
    gbsim_wheel_del(&w, &c.node);
    gbsim_wheel_del(&w, &c.node); /* stopping twice is harmless */
    assert_false(gbsim_wheel_armed(&c.node));
    /* Re-arming moves a node; it fires once, at its new time. */
    gbsim_wheel_add(&w, &d.node, 30);
    gbsim_wheel_add(&w, &d.node, 200);
    assert_int_equal(w.count, 3);
    gbsim_wheel_run(&w, 109, 0);
    assert_int_equal(a.fired, 1);
    assert_int_equal(b.fired, 0);
    assert_int_equal(c.fired, 0);
    assert_int_equal(d.fired, 0);
    gbsim_wheel_run(&w, 209, 0);
    assert_int_equal(d.fired, 1);
    /* A callback re-arming for "now" fires on the next tick, not in a loop. */
    struct item e = {.rearm_ms = 1};
    gbsim_wheel_add(&w, &e.node, 215);
    assert_int_equal(gbsim_wheel_run(&w, 219, 0), 1);
    assert_int_equal(e.fired, 1);
    e.rearm_ms = 0;
    assert_int_equal(gbsim_wheel_run(&w, 229, 0), 1);
    assert_int_equal(e.fired, 2);
    /* Many timers, spread over many rounds, each fires exactly once. */
    static struct item many[1000];
    memset(many, 0, sizeof(many));
    for (int i = 0; i < 1000; i++) gbsim_wheel_add(&w, &many[i].node, 300 + (uint64_t)i * 7);
    for (uint64_t t = 230; t <= 7400; t += 3) gbsim_wheel_run(&w, t, 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(many[i].fired, 1);
        assert_true(many[i].fired_at >= 300 + (uint64_t)i * 7); /* never early */
        assert_true(many[i].fired_at <= 300 + (uint64_t)i * 7 + 13);
    }
    assert_int_equal(w.count, 0);
    gbsim_wheel_free(&w);
}

static void test_histogram_quantiles(void **state)
{
    (void)state;
    struct gbsim_hist h;
    memset(&h, 0, sizeof(h));
    assert_int_equal(gbsim_hist_quantile(&h, 0.5), 0);
    for (uint32_t i = 1; i <= 100; i++) gbsim_hist_add(&h, i);
    assert_int_equal(gbsim_hist_quantile(&h, 0.5), 51);
    assert_int_equal(gbsim_hist_quantile(&h, 0.99), 100);
    assert_int_equal(h.max, 100);
    struct gbsim_hist slow;
    memset(&slow, 0, sizeof(slow));
    for (int i = 0; i < 100; i++) gbsim_hist_add(&slow, 2000);
    gbsim_hist_add(&slow, 4000000); /* beyond the last bucket: counted there */
    gbsim_hist_merge(&h, &slow);
    assert_int_equal(h.n, 201);
    uint32_t p99 = gbsim_hist_quantile(&h, 0.99);
    assert_in_range(p99, 1900, 2000); /* 2000 ms within the bucket's 6 % */
    assert_int_equal(h.max, 4000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_in_order_and_at_most_a_tick_late),
        cmocka_unit_test(test_stop_rearm_and_callbacks),
        cmocka_unit_test(test_backlog_fires_in_slices),
        cmocka_unit_test(test_histogram_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
