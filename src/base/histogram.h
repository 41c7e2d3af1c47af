/* histogram.h — a latency histogram with fixed buckets, for the metrics
 * endpoint: integer counters in the struct, no allocation, a short scan
 * over the bucket edges per observation.
 *
 *     static struct histogram h;      // or a member; zeroed, then:
 *     histogram_init(&h, histogram_latency_bounds_us, HISTOGRAM_LATENCY_BOUNDS);
 *     histogram_observe(&h, elapsed_us);
 *
 * One thread observes at a time (the loop thread; the store's commits,
 * which its busy flag serialises); any thread may read. The counters are
 * written and read with relaxed atomic loads and stores, which compile to
 * plain moves: a reader sees each counter whole, though a snapshot taken
 * during an observation may have the count one ahead of a bucket. */
#ifndef CASCADE_BASE_HISTOGRAM_H
#define CASCADE_BASE_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_MAX_BOUNDS 24

struct histogram {
    const uint64_t *bounds_us;                 /* ascending upper edges, inclusive */
    unsigned nbounds;                          /* at most HISTOGRAM_MAX_BOUNDS */
    uint64_t buckets[HISTOGRAM_MAX_BOUNDS + 1]; /* per bucket (not cumulative); the last: above every edge */
    uint64_t count, sum_us;
};

/* 50 µs … 10 s, roughly 1-2.5-5 per decade: request handling, loop lag,
 * commit times. */
#define HISTOGRAM_LATENCY_BOUNDS 17
extern const uint64_t histogram_latency_bounds_us[HISTOGRAM_LATENCY_BOUNDS];

/* Zeroes h and sets its edges (n is capped at HISTOGRAM_MAX_BOUNDS). The
 * edges must outlive h. */
void histogram_init(struct histogram *h, const uint64_t *bounds_us, unsigned n);

static inline void histogram_add_(uint64_t *c, uint64_t v)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/* One observation of us microseconds. */
static inline void histogram_observe(struct histogram *h, uint64_t us)
{
    unsigned i = 0;
    while (i < h->nbounds && us > h->bounds_us[i]) i++;
    histogram_add_(&h->buckets[i], 1);
    histogram_add_(&h->sum_us, us);
    histogram_add_(&h->count, 1);
}

/* A copy of h's counters, each read whole. */
void histogram_snapshot(const struct histogram *h, struct histogram *out);

#endif
