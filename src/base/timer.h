/* timer.h — a timer service: a binary min-heap of intrusive timer nodes.
 *
 * One service per worker holds every timer of the stack (transaction timers
 * A–K, binding expiries, GB keepalive deadlines), so nothing scans all objects
 * each second. The service does not read a clock: the owner calls
 * timer_run(ts, now_ms) — from one libuv timer in the daemon, from a fake
 * clock in tests — and re-arms its clock source at timer_next_deadline().
 *
 * A node lives inside the object it times (embed struct timer_node); the
 * callback gets the node and recovers the object with container_of. A node
 * may be stopped or restarted from inside any callback. */
#ifndef CASCADE_BASE_TIMER_H
#define CASCADE_BASE_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct timer_node;
typedef void (*timer_cb)(struct timer_node *node, uint64_t now_ms);

struct timer_node {
    uint64_t deadline_ms;
    timer_cb cb;
    uint32_t heap_index;     /* UINT32_MAX when not armed */
    uint64_t order;          /* FIFO among equal deadlines */
};

struct timer_service {
    struct timer_node **heap;
    uint32_t count, cap;
    uint64_t next_order;
    uint64_t now_ms;         /* the last time timer_run was given */
    /* The owner's clock (the loop's in the daemon, a fake one in tests);
     * modules read the time through timer_now() so tests can drive it. */
    uint64_t (*clock)(void *arg);
    void *clock_arg;
};

void timer_service_init(struct timer_service *ts);
void timer_service_free(struct timer_service *ts);
void timer_node_init(struct timer_node *n);
static inline bool timer_armed(const struct timer_node *n) { return n->heap_index != UINT32_MAX; }
/* Arms (or re-arms) n to fire at deadline_ms. 0, or -1 on allocation failure. */
int timer_start(struct timer_service *ts, struct timer_node *n, uint64_t deadline_ms, timer_cb cb);
void timer_stop(struct timer_service *ts, struct timer_node *n);
/* Fires every timer due at now_ms, in deadline order. Returns how many fired. */
int timer_run(struct timer_service *ts, uint64_t now_ms);
/* Deadline of the earliest armed timer, or UINT64_MAX when none. */
uint64_t timer_next_deadline(const struct timer_service *ts);
/* The owner's clock in ms (monotonic); without one, the last time given to
 * timer_run. */
static inline uint64_t timer_now(const struct timer_service *ts)
{
    return ts->clock ? ts->clock(ts->clock_arg) : ts->now_ms;
}

#endif
