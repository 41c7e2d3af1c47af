/* histogram.c — see histogram.h. */
#include "base/histogram.h"

#include <string.h>

const uint64_t histogram_latency_bounds_us[HISTOGRAM_LATENCY_BOUNDS] = {
    50,     100,    250,     500,     1000,    2500,    5000,     10000,   25000,
    50000,  100000, 250000,  500000,  1000000, 2500000, 5000000,  10000000,
};

void histogram_init(struct histogram *h, const uint64_t *bounds_us, unsigned n)
{
    memset(h, 0, sizeof(*h));
    h->bounds_us = bounds_us;
    h->nbounds = n < HISTOGRAM_MAX_BOUNDS ? n : HISTOGRAM_MAX_BOUNDS;
}

void histogram_snapshot(const struct histogram *h, struct histogram *out)
{
    out->bounds_us = h->bounds_us;
    out->nbounds = h->nbounds;
    for (unsigned i = 0; i <= HISTOGRAM_MAX_BOUNDS; i++)
        out->buckets[i] = __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
    out->count = __atomic_load_n(&h->count, __ATOMIC_RELAXED);
    out->sum_us = __atomic_load_n(&h->sum_us, __ATOMIC_RELAXED);
}
