/* nack_cache.c — per-stream retransmission cache (see nack_cache.h).
 *
 * Two structures share the copies in the byte ring:
 * - slots, indexed by seq & mask, answer get();
 * - a FIFO of the regions written, oldest first. Copies are laid in the ring
 *   in the order they are put, so walking forward from the write position
 *   meets them oldest first: making room is popping the FIFO while its
 *   oldest region overlaps the room wanted. A region whose slot was since
 *   given to another packet (or a newer copy of the same one) is orphaned:
 *   it still occupies bytes until popped, but get() no longer sees it. */
#include "media/nack_cache.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t off, len;
    uint16_t seq;
    bool used;
} cache_slot_t;

typedef struct {
    uint32_t off, len;
    uint16_t seq;
} cache_region_t;

struct nack_cache {
    size_t mask;           /* slots - 1 */
    cache_slot_t *slots;
    cache_region_t *fifo;  /* ring of slots entries */
    size_t fifo_first, fifo_n;
    uint8_t *mem;
    size_t cap, head;      /* ring size; where the next copy goes */
    size_t count;          /* live slots */
};

nack_cache_t *nack_cache_new(size_t slots, size_t max_bytes)
{
    if (slots == 0 || slots > 32768 || (slots & (slots - 1)) || max_bytes == 0 || max_bytes > (1u << 31))
        return NULL;
    nack_cache_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->mask = slots - 1;
    c->cap = max_bytes;
    c->slots = calloc(slots, sizeof(*c->slots));
    c->fifo = calloc(slots, sizeof(*c->fifo));
    c->mem = malloc(max_bytes);
    if (!c->slots || !c->fifo || !c->mem) {
        nack_cache_free(c);
        return NULL;
    }
    return c;
}

void nack_cache_free(nack_cache_t *c)
{
    if (!c) return;
    free(c->slots);
    free(c->fifo);
    free(c->mem);
    free(c);
}

void nack_cache_clear(nack_cache_t *c)
{
    memset(c->slots, 0, (c->mask + 1) * sizeof(*c->slots));
    c->fifo_first = c->fifo_n = 0;
    c->head = 0;
    c->count = 0;
}

size_t nack_cache_count(const nack_cache_t *c) { return c->count; }

static bool region_live(const nack_cache_t *c, const cache_region_t *r)
{
    const cache_slot_t *s = &c->slots[r->seq & c->mask];
    return s->used && s->seq == r->seq && s->off == r->off;
}

static void pop_oldest(nack_cache_t *c)
{
    cache_region_t *r = &c->fifo[c->fifo_first];
    if (region_live(c, r)) {
        c->slots[r->seq & c->mask].used = false;
        c->count--;
    }
    c->fifo_first = (c->fifo_first + 1) & c->mask;
    c->fifo_n--;
}

/* Pops the oldest regions while they overlap [from, to). */
static void evict_range(nack_cache_t *c, size_t from, size_t to)
{
    while (c->fifo_n) {
        const cache_region_t *r = &c->fifo[c->fifo_first];
        if (!(r->off < to && from < (size_t)r->off + r->len)) return;
        pop_oldest(c);
    }
}

int nack_cache_put(nack_cache_t *c, uint16_t seq, const uint8_t *pkt, size_t len)
{
    if (!pkt || len == 0 || len > c->cap) return -EINVAL;
    size_t at = c->head;
    if (c->cap - at < len) { /* no room before the end: skip the tail, start over */
        evict_range(c, at, c->cap);
        at = 0;
    }
    evict_range(c, at, at + len);
    if (c->fifo_n == c->mask + 1) pop_oldest(c);
    cache_slot_t *s = &c->slots[seq & c->mask];
    if (s->used) c->count--; /* its region stays in the FIFO, orphaned */
    memcpy(c->mem + at, pkt, len);
    *s = (cache_slot_t){.off = (uint32_t)at, .len = (uint32_t)len, .seq = seq, .used = true};
    c->count++;
    c->fifo[(c->fifo_first + c->fifo_n) & c->mask] = (cache_region_t){.off = (uint32_t)at, .len = (uint32_t)len, .seq = seq};
    c->fifo_n++;
    c->head = at + len;
    return 0;
}

const uint8_t *nack_cache_get(const nack_cache_t *c, uint16_t seq, size_t *len)
{
    const cache_slot_t *s = &c->slots[seq & c->mask];
    if (!s->used || s->seq != seq) return NULL;
    if (len) *len = s->len;
    return c->mem + s->off;
}
