/* assoc.c — the fixed-size set-associative table (see assoc.h). */
#include "base/assoc.h"

#include <stdlib.h>

int assoc_init(struct assoc *a, uint32_t entries, uint32_t max_entries, uint32_t ways, size_t bucket_size)
{
    if (entries > max_entries) entries = max_entries;
    if (ways == 0) ways = 1;
    size_t n = 1;
    while (n * ways < entries) n <<= 1;
    a->buckets = calloc(n, bucket_size);
    a->bucket_size = bucket_size;
    a->mask = n - 1;
    return a->buckets ? 0 : -1;
}

void assoc_free(struct assoc *a)
{
    free(a->buckets);
    a->buckets = NULL;
}
