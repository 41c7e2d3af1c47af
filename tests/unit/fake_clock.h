/* fake_clock.h — a clock the test sets by hand, for a timer_service
 * (ts.clock = fake_clock); fake_loop_init() and fake_loop_close(), a libuv
 * loop and a timer service on that clock for one test; and spin(), which
 * lets the loop and those timers run a few turns at the clock's current
 * time (replies from a real socket arrive, due timers fire). Included by
 * one test file each: the clock is that file's own. */
#ifndef CASCADE_TEST_FAKE_CLOCK_H
#define CASCADE_TEST_FAKE_CLOCK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include "base/timer.h"

static uint64_t fake_now;

static inline uint64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static inline void fake_loop_init(uv_loop_t *loop, struct timer_service *ts)
{
    assert_int_equal(uv_loop_init(loop), 0);
    timer_service_init(ts);
    ts->clock = fake_clock;
}

/* The loop must have nothing left open (the test freed and let it close
 * what it made). */
static inline void fake_loop_close(uv_loop_t *loop, struct timer_service *ts)
{
    assert_int_equal(uv_loop_close(loop), 0);
    timer_service_free(ts);
}

static inline void spin(uv_loop_t *loop, struct timer_service *ts)
{
    for (int i = 0; i < 50; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        timer_run(ts, fake_now);
    }
}

#endif
