/* gbsim_int.h — pieces of cascade-gbsim shared by its files: the timer wheel
 * that holds one timer per simulated device (gbsim_wheel.c) and the latency
 * histograms behind its per-second report (gbsim_stats.c). */
#ifndef CASCADE_APP_GBSIM_INT_H
#define CASCADE_APP_GBSIM_INT_H

#include <stdbool.h>
#include <stdint.h>

/* ---- timer wheel (gbsim_wheel.c) ----
 * A hashed wheel of nslots lists, one tick of tick_ms each: arming and
 * stopping are O(1) and a device's timer is two pointers and a deadline,
 * where a heap would pay log N per (re)arm for a million devices whose
 * timers are re-armed at every keepalive. A deadline past the wheel's span
 * waits in its slot for the rounds to come around. Timers never fire early
 * and at most one tick late; one armed from a callback for "now" fires on
 * the next tick.
 * Not thread-safe: one wheel per loop thread. */
struct gbsim_wheel_node {
    struct gbsim_wheel_node *next, *prev; /* NULL when not armed */
    uint64_t deadline_ms;
};

struct gbsim_wheel;
typedef void (*gbsim_wheel_cb)(struct gbsim_wheel_node *n, uint64_t now_ms, void *user);

struct gbsim_wheel {
    struct gbsim_wheel_node *slots; /* sentinel heads of circular lists */
    uint32_t mask;                  /* nslots - 1 */
    uint32_t tick_ms;
    uint64_t cur_tick;              /* the next tick to run */
    uint32_t count;                 /* armed nodes */
    gbsim_wheel_cb cb;
    void *user;
};

/* nslots: a power of two. 0, or -1 (no memory). */
int gbsim_wheel_init(struct gbsim_wheel *w, uint32_t nslots, uint32_t tick_ms, uint64_t now_ms, gbsim_wheel_cb cb,
                     void *user);
void gbsim_wheel_free(struct gbsim_wheel *w);
static inline bool gbsim_wheel_armed(const struct gbsim_wheel_node *n) { return n->next != 0; }
void gbsim_wheel_add(struct gbsim_wheel *w, struct gbsim_wheel_node *n, uint64_t deadline_ms);
void gbsim_wheel_del(struct gbsim_wheel *w, struct gbsim_wheel_node *n);
/* Fires the nodes due by now_ms, at most max of them (0: all): a simulator
 * that fell behind fires its backlog in slices and reads its sockets in
 * between, instead of sending seconds of requests while their answers
 * overflow the receive buffer. Returns how many fired. */
uint32_t gbsim_wheel_run(struct gbsim_wheel *w, uint64_t now_ms, uint32_t max);

/* ---- histograms (gbsim_stats.c) ----
 * Milliseconds in buckets of 1 ms up to 128 ms, then 16 per doubling up to
 * ~65 s (about 6 % error): enough to tell 2 ms from 200 ms and 2 s. */
#define GBSIM_HIST_BUCKETS (128 + 16 * 9 + 1)
struct gbsim_hist {
    uint32_t b[GBSIM_HIST_BUCKETS];
    uint64_t n;
    uint32_t max;
};

void gbsim_hist_add(struct gbsim_hist *h, uint32_t ms);
void gbsim_hist_merge(struct gbsim_hist *into, const struct gbsim_hist *from);
/* The q-quantile (0..1) in ms (the bucket's lower edge); 0 when empty. */
uint32_t gbsim_hist_quantile(const struct gbsim_hist *h, double q);

#endif
