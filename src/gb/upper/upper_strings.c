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

/* Entries sit in a base/htable.h table keyed by the string's hash. */
struct gb_str {
    struct hnode node;          /* pool->table */
    struct gb_strpool *pool;
    uint32_t refs;
    char s[];
};

struct gb_strpool {
    struct htable table;
};

static struct gb_str *entry_of(const char *s) { return (struct gb_str *)(s - offsetof(struct gb_str, s)); }

static uint32_t hash_of(const char *s, size_t len) { return str_hash(str_make(s, len)); }

struct gb_strpool *gb_strpool_new(void)
{
    struct gb_strpool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    htable_init(&p->table);
    return p;
}

static int entry_free(struct hnode *n, void *arg)
{
    (void)arg;
    free(container_of(n, struct gb_str, node));
    return 0;
}

void gb_strpool_free(struct gb_strpool *p)
{
    if (!p) return;
    if (htable_count(&p->table))
        log_debug("gb: %u interned string(s) still held at shutdown", htable_count(&p->table));
    htable_foreach(&p->table, entry_free, NULL);
    htable_free(&p->table);
    free(p);
}

char *gb_str_intern(struct gb_strpool *p, const char *s)
{
    if (!s) return NULL;
    size_t len = strlen(s);
    uint32_t h = hash_of(s, len);
    for (struct hnode *n = htable_first(&p->table, h); n; n = htable_next(n)) {
        struct gb_str *e = container_of(n, struct gb_str, node);
        if (!strcmp(e->s, s) && e->refs < UINT32_MAX) {
            e->refs++;
            return e->s;
        }
    }
    struct gb_str *e = malloc(sizeof(*e) + len + 1);
    if (!e) return NULL;
    e->pool = p;
    e->refs = 1;
    memcpy(e->s, s, len + 1);
    if (htable_insert(&p->table, &e->node, h) != 0) {
        free(e);
        return NULL;
    }
    return e->s;
}

void gb_str_release(const char *s)
{
    if (!s) return;
    struct gb_str *e = entry_of(s);
    if (--e->refs) return;
    htable_remove(&e->pool->table, &e->node);
    free(e);
}

uint32_t gb_strpool_count(const struct gb_strpool *p) { return p ? htable_count(&p->table) : 0; }
