/* htable.c — the intrusive chained hash table (see htable.h). */
#include "base/htable.h"

#include <errno.h>
#include <stdlib.h>

void htable_init(struct htable *t) { *t = (struct htable){0}; }

void htable_free(struct htable *t)
{
    free(t->buckets);
    t->buckets = NULL;
    t->mask = 0;
    t->count = 0;
}

static void link_head(struct hnode **head, struct hnode *n)
{
    n->next = *head;
    if (n->next) n->next->pprev = &n->next;
    n->pprev = head;
    *head = n;
}

static void rehash(struct htable *t, struct hnode **b, uint32_t size)
{
    uint32_t old = t->buckets ? t->mask + 1 : 0;
    for (uint32_t i = 0; i < old; i++) {
        for (struct hnode *n = t->buckets[i], *next; n; n = next) {
            next = n->next;
            link_head(&b[n->hash & (size - 1)], n);
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->mask = size - 1;
}

/* Doubles the bucket array; false only when there is none and none can be had. */
static bool grow(struct htable *t)
{
    uint32_t first = t->min_buckets ? t->min_buckets : 64;
    uint32_t size = t->buckets ? (t->mask + 1) * 2 : first;
    if (t->buckets && size == 0) return true; /* 2^32 buckets: stay */
    struct hnode **b = calloc(size, sizeof(*b));
    if (!b) return t->buckets != NULL; /* longer chains, not an error */
    rehash(t, b, size);
    return true;
}

int htable_insert(struct htable *t, struct hnode *n, uint32_t hash)
{
    if ((!t->buckets || t->count >= t->mask + 1) && !grow(t)) return -ENOMEM;
    n->hash = hash;
    n->linked = true;
    link_head(&t->buckets[hash & t->mask], n);
    t->count++;
    return 0;
}

void htable_remove(struct htable *t, struct hnode *n)
{
    /* No buckets: the table was freed under its nodes, which point into
     * nothing now (htable_free leaves them as they are). */
    if (n->linked && t->buckets) {
        *n->pprev = n->next;
        if (n->next) n->next->pprev = n->pprev;
        t->count--;
    }
    n->next = NULL;
    n->pprev = NULL;
    n->linked = false;
}

struct hnode *htable_first(const struct htable *t, uint32_t hash)
{
    if (!t->buckets) return NULL;
    struct hnode *n = t->buckets[hash & t->mask];
    while (n && n->hash != hash) n = n->next;
    return n;
}

struct hnode *htable_next(const struct hnode *n)
{
    uint32_t hash = n->hash;
    struct hnode *x = n->next;
    while (x && x->hash != hash) x = x->next;
    return x;
}

int htable_foreach(struct htable *t, htable_visit_fn fn, void *arg)
{
    if (!t->buckets) return 0;
    for (uint32_t i = 0; i <= t->mask; i++) {
        for (struct hnode *n = t->buckets[i], *next; n; n = next) {
            next = n->next; /* fn may remove n */
            int rc = fn(n, arg);
            if (rc) return rc;
        }
    }
    return 0;
}
