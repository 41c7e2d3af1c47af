/* upper_strings.c — interned, reference-counted strings for the upper role.
 *
 * Catalog fields repeat across channels and devices: every camera of a site
 * reports the same manufacturer, model, civil code, address and owner, and
 * every device reaches us at the same local address. At 100 000 devices one
 * heap copy of each of them per channel cost more than the device record
 * itself, so these fields are kept once here and shared (see gb_channel_init
 * in catalog.c for which fields). A string stays while someone holds it;
 * gb_str_release() finds its entry from the pointer, so holders need not
 * know the pool. Loop thread only. */
#include "gb/upper/upper_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#define POOL_MIN_BUCKETS 64

struct gb_str {
    struct gb_str *next;        /* hash chain */
    struct gb_strpool *pool;
    uint32_t refs, hash;
    char s[];
};

struct gb_strpool {
    struct gb_str **buckets;
    uint32_t mask;              /* buckets - 1 */
    uint32_t count;
};

static struct gb_str *entry_of(const char *s) { return (struct gb_str *)(s - offsetof(struct gb_str, s)); }

static uint32_t hash_of(const char *s, size_t len) { return str_hash(str_make(s, len)); }

struct gb_strpool *gb_strpool_new(void)
{
    struct gb_strpool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->buckets = calloc(POOL_MIN_BUCKETS, sizeof(*p->buckets));
    if (!p->buckets) {
        free(p);
        return NULL;
    }
    p->mask = POOL_MIN_BUCKETS - 1;
    return p;
}

void gb_strpool_free(struct gb_strpool *p)
{
    if (!p) return;
    if (p->count) log_debug("gb: %u interned string(s) still held at shutdown", p->count);
    for (uint32_t i = 0; i <= p->mask; i++) {
        for (struct gb_str *e = p->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(p->buckets);
    free(p);
}

static void pool_grow(struct gb_strpool *p)
{
    uint32_t size = (p->mask + 1) * 2;
    struct gb_str **b = calloc(size, sizeof(*b));
    if (!b) return; /* longer chains, still correct */
    for (uint32_t i = 0; i <= p->mask; i++) {
        for (struct gb_str *e = p->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (size - 1)];
            b[e->hash & (size - 1)] = e;
        }
    }
    free(p->buckets);
    p->buckets = b;
    p->mask = size - 1;
}

char *gb_str_intern(struct gb_strpool *p, const char *s)
{
    if (!s) return NULL;
    size_t len = strlen(s);
    uint32_t h = hash_of(s, len);
    for (struct gb_str *e = p->buckets[h & p->mask]; e; e = e->next) {
        if (e->hash == h && !strcmp(e->s, s) && e->refs < UINT32_MAX) {
            e->refs++;
            return e->s;
        }
    }
    struct gb_str *e = malloc(sizeof(*e) + len + 1);
    if (!e) return NULL;
    e->pool = p;
    e->refs = 1;
    e->hash = h;
    memcpy(e->s, s, len + 1);
    e->next = p->buckets[h & p->mask];
    p->buckets[h & p->mask] = e;
    if (++p->count > p->mask + 1) pool_grow(p);
    return e->s;
}

void gb_str_release(const char *s)
{
    if (!s) return;
    struct gb_str *e = entry_of(s);
    if (--e->refs) return;
    struct gb_strpool *p = e->pool;
    for (struct gb_str **pp = &p->buckets[e->hash & p->mask]; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    p->count--;
    free(e);
}

uint32_t gb_strpool_count(const struct gb_strpool *p) { return p ? p->count : 0; }
