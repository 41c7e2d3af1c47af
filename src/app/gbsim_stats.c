/* gbsim_stats.c — latency histograms of the simulator (see gbsim_int.h). */
#include <string.h>

#include "app/gbsim_int.h"

static uint32_t bucket_of(uint32_t ms)
{
    if (ms < 128) return ms;
    uint32_t e = 31 - (uint32_t)__builtin_clz(ms); /* 7.. */
    uint32_t sub = (ms >> (e - 4)) & 15;           /* 16 steps per doubling */
    uint32_t b = 128 + (e - 7) * 16 + sub;
    return b < GBSIM_HIST_BUCKETS ? b : GBSIM_HIST_BUCKETS - 1;
}

static uint32_t bucket_floor(uint32_t b)
{
    if (b < 128) return b;
    uint32_t e = (b - 128) / 16 + 7, sub = (b - 128) % 16;
    return (1u << e) + (sub << (e - 4));
}

void gbsim_hist_add(struct gbsim_hist *h, uint32_t ms)
{
    h->b[bucket_of(ms)]++;
    h->n++;
    if (ms > h->max) h->max = ms;
}

void gbsim_hist_merge(struct gbsim_hist *into, const struct gbsim_hist *from)
{
    for (int i = 0; i < GBSIM_HIST_BUCKETS; i++) into->b[i] += from->b[i];
    into->n += from->n;
    if (from->max > into->max) into->max = from->max;
}

uint32_t gbsim_hist_quantile(const struct gbsim_hist *h, double q)
{
    if (!h->n) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if (rank >= h->n) rank = h->n - 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < GBSIM_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank) return bucket_floor(i);
    }
    return h->max;
}
