/* assoc.h — a fixed-size set-associative table: the shape of every table a
 * stranger can fill (nonces answered, failed attempts per source).
 *
 * Buckets of `ways` entries each, a power-of-two count of them, allocated
 * once: memory is bounded whatever arrives, and a full bucket evicts by the
 * owner's rule (the owner defines the bucket struct: its entries and any
 * per-bucket state). assoc_init sizes the table for at least `entries`
 * entries (clamped to max_entries). The hash picks the bucket; it must come
 * from a keyed or uniform source (an HMAC, a seeded hash) so a stranger
 * cannot aim at one bucket. */
#ifndef CASCADE_BASE_ASSOC_H
#define CASCADE_BASE_ASSOC_H

#include <stddef.h>
#include <stdint.h>

struct assoc {
    void *buckets;
    size_t bucket_size;
    size_t mask;          /* buckets - 1 */
};

/* 0, or -1 when the memory cannot be had. Entries start zeroed. */
int assoc_init(struct assoc *a, uint32_t entries, uint32_t max_entries, uint32_t ways, size_t bucket_size);
void assoc_free(struct assoc *a);
static inline void *assoc_bucket(const struct assoc *a, uint64_t hash)
{
    return (char *)a->buckets + (size_t)(hash & a->mask) * a->bucket_size;
}

#endif
