/* fake_clock.h — a clock the test sets by hand, for a timer_service
 * (ts.clock = fake_clock), and spin(), which lets a libuv loop and those
 * timers run a few turns at the clock's current time (replies from a real
 * socket arrive, due timers fire). Included by one test file each: the
 * clock is that file's own. */
#ifndef CASCADE_TEST_FAKE_CLOCK_H
#define CASCADE_TEST_FAKE_CLOCK_H

#include <stdint.h>
#include <uv.h>

#include "base/timer.h"

static uint64_t fake_now;

static inline uint64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static inline void spin(uv_loop_t *loop, struct timer_service *ts)
{
    for (int i = 0; i < 50; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        timer_run(ts, fake_now);
    }
}

#endif
