/* bench_hop.c — what handing a message from one libuv loop to another costs,
 * against what a lock costs: the figure behind the one-loop-per-core plan
 * (docs/architecture.md, "One loop per core").
 *
 *   bench_hop [RATE] [SECONDS]
 *
 * Three runs of RATE messages a second (default 1000) for SECONDS (default 3),
 * each driven by a 1 ms timer on loop A, with the process CPU (user + system,
 * both threads) per message:
 *   local  the message is handled on A (the baseline: A's timer wake-ups);
 *   hop    each message is pushed on a mutex-protected queue and loop B is
 *          woken with uv_async_send (libuv coalesces wake-ups: under load one
 *          wake carries many messages, at ordinary rates one each), B takes it;
 *   lock   the message is handled on A under an uncontended mutex.
 * hop - local is the cost of a hop at that rate; lock - local of a lock.
 * Then one burst of 1 000 000 hops back to back (saturation: wake-ups coalesce).
 *
 * Not a test: prints numbers, asserts nothing. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <uv.h>

enum mode { MODE_LOCAL, MODE_HOP, MODE_LOCK };

struct run {
    enum mode mode;
    uint64_t rate, total, sent, tick;
    uv_loop_t loop_a, loop_b;
    uv_timer_t timer;
    uv_async_t wake_b, stop_b;
    pthread_mutex_t mu;
    uint64_t queued;        /* under mu: messages waiting for B */
    uint64_t handled_a;     /* A's handled messages (local, lock) */
    atomic_uint_fast64_t handled_b;
};

static double cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* The "work" of a message: a counter, so that the figures are the hand-off's. */
static void handle(uint64_t *n) { (*n)++; }

static void on_wake_b(uv_async_t *h)
{
    struct run *r = h->data;
    pthread_mutex_lock(&r->mu);
    uint64_t n = r->queued;
    r->queued = 0;
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_add(&r->handled_b, n);
}

static void close_cb(uv_handle_t *h) { (void)h; }

/* On B: its handles closed, so its loop ends. */
static void on_stop_b(uv_async_t *h)
{
    struct run *r = h->data;
    uv_close((uv_handle_t *)&r->wake_b, close_cb);
    uv_close((uv_handle_t *)&r->stop_b, close_cb);
}

static void send_one(struct run *r)
{
    switch (r->mode) {
    case MODE_LOCAL: handle(&r->handled_a); break;
    case MODE_LOCK:
        pthread_mutex_lock(&r->mu);
        handle(&r->handled_a);
        pthread_mutex_unlock(&r->mu);
        break;
    case MODE_HOP:
        pthread_mutex_lock(&r->mu);
        r->queued++;
        pthread_mutex_unlock(&r->mu);
        uv_async_send(&r->wake_b);
        break;
    }
    r->sent++;
}

static void on_tick(uv_timer_t *t)
{
    struct run *r = t->data;
    r->tick++;
    /* messages due by now: rate * ms / 1000, spread over the ticks */
    uint64_t due = r->rate * r->tick / 1000;
    while (r->sent < due && r->sent < r->total) send_one(r);
    if (r->sent >= r->total) uv_timer_stop(t);
}

static void *loop_b_main(void *arg)
{
    struct run *r = arg;
    uv_run(&r->loop_b, UV_RUN_DEFAULT);
    return NULL;
}

/* One run; total messages at rate (0: back to back). CPU per message in µs. */
static double run_one(enum mode mode, uint64_t rate, uint64_t total)
{
    static struct run r;
    r = (struct run){.mode = mode, .rate = rate, .total = total};
    pthread_mutex_init(&r.mu, NULL);
    uv_loop_init(&r.loop_a);
    uv_loop_init(&r.loop_b);
    uv_async_init(&r.loop_b, &r.wake_b, on_wake_b);
    r.wake_b.data = &r;
    uv_async_init(&r.loop_b, &r.stop_b, on_stop_b);
    r.stop_b.data = &r;
    pthread_t tb;
    pthread_create(&tb, NULL, loop_b_main, &r);
    double c0 = cpu_s();
    if (rate) {
        uv_timer_init(&r.loop_a, &r.timer);
        r.timer.data = &r;
        uv_timer_start(&r.timer, on_tick, 1, 1);
        uv_run(&r.loop_a, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *)&r.timer, close_cb);
        uv_run(&r.loop_a, UV_RUN_DEFAULT);
    } else {
        while (r.sent < total) send_one(&r);
    }
    if (mode == MODE_HOP)
        while (atomic_load(&r.handled_b) < total) uv_sleep(1);
    double used = cpu_s() - c0;
    uv_async_send(&r.stop_b);
    pthread_join(tb, NULL);
    uv_loop_close(&r.loop_a);
    uv_loop_close(&r.loop_b);
    pthread_mutex_destroy(&r.mu);
    return used / (double)total * 1e6;
}

int main(int argc, char **argv)
{
    uint64_t rate = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000;
    uint64_t secs = argc > 2 ? strtoull(argv[2], NULL, 10) : 3;
    if (!rate || !secs) {
        fprintf(stderr, "usage: bench_hop [RATE] [SECONDS]\n");
        return 2;
    }
    uint64_t total = rate * secs;
    double local = run_one(MODE_LOCAL, rate, total);
    double hop = run_one(MODE_HOP, rate, total);
    double lock = run_one(MODE_LOCK, rate, total);
    printf("at %llu/s for %llu s, CPU per message (both threads):\n", (unsigned long long)rate,
           (unsigned long long)secs);
    printf("  local %.2f us, hop %.2f us, lock %.2f us: a hop costs %.2f us, a lock %.3f us\n", local, hop, lock,
           hop - local, lock - local);
    double burst = run_one(MODE_HOP, 0, 1000000);
    printf("  1 000 000 hops back to back: %.3f us each (wake-ups coalesced)\n", burst);
    return 0;
}
