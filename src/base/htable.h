/* htable.h — the one hash table of the code base: chained, intrusive, keyed by
 * a 32-bit hash the caller computes.
 *
 * A node lives inside the object it indexes (embed struct hnode, like a
 * timer_node); lookups walk the nodes that carry the wanted hash and the
 * caller compares keys and recovers its object with container_of. One object
 * may sit in several tables through several nodes.
 *
 *   struct conn { struct hnode by_id; uint64_t id; ... };
 *   struct htable t;
 *   htable_init(&t);
 *   htable_insert(&t, &c->by_id, id_hash(c->id));
 *   for (struct hnode *n = htable_first(&t, h); n; n = htable_next(n))
 *       if (container_of(n, struct conn, by_id)->id == id) ...
 *   htable_remove(&t, &c->by_id);
 *
 * Growth: the bucket array doubles when the count passes it (load factor 1),
 * rehashing from the stored hashes. Chains are doubly linked (each node
 * knows the pointer to it), so removal costs the same however many nodes
 * share a hash: every binding of one connection, in a registrar's index by
 * connection, does. Out of memory has one policy everywhere:
 * a failed growth is not an error — the table keeps its buckets and its
 * chains get longer; only the very first bucket array can fail, and then
 * htable_insert returns -ENOMEM and the node is not linked. Removal never
 * allocates and never fails. Not thread-safe. */
#ifndef CASCADE_BASE_HTABLE_H
#define CASCADE_BASE_HTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hnode {
    struct hnode *next;
    struct hnode **pprev;    /* the pointer that points at this node: removal is O(1) */
    uint32_t hash;
    bool linked;
};

struct htable {
    struct hnode **buckets;
    uint32_t mask;           /* buckets - 1; 0 before the first insert */
    uint32_t count;
    uint32_t min_buckets;    /* first allocation (power of two; 0: 64) */
};

void htable_init(struct htable *t);
/* Frees the bucket array; the nodes (the caller's) are left as they are. */
void htable_free(struct htable *t);
/* Links n under hash. 0, or -ENOMEM (only when the table has no buckets yet
 * and none can be had). n must not be linked already. */
int htable_insert(struct htable *t, struct hnode *n, uint32_t hash);
/* Unlinks n; a node that is not linked is left alone. */
void htable_remove(struct htable *t, struct hnode *n);
static inline bool hnode_linked(const struct hnode *n) { return n->linked; }
/* The first node with this hash, then the following ones (NULL at the end). */
struct hnode *htable_first(const struct htable *t, uint32_t hash);
struct hnode *htable_next(const struct hnode *n);
static inline uint32_t htable_count(const struct htable *t) { return t->count; }

/* Every node, in no particular order. The callback may remove the node it is
 * given (and no other); it returns non-zero to stop. Returns that value. */
typedef int (*htable_visit_fn)(struct hnode *n, void *arg);
int htable_foreach(struct htable *t, htable_visit_fn fn, void *arg);

/* A hash for integer keys (ids); strings use str_hash / str_ihash (base/str.h). */
static inline uint32_t htable_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

#endif
