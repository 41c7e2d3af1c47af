/* allow_mirror.h — the presence allow lists shared between nodes through
 * Redis Cluster ([redis] mirror_presence_allow, issue 16), on the engine of
 * redis/hash_mirror.h (the third table on it, after the users and the GB
 * administrative records).
 *
 * What PUT /users/{name}/presence/allow sets is one field of the hash
 * <prefix>presallow (field = the user's AoR key, value = a compact JSON
 * record, below; a cleared list is no field), announced on
 * <prefix>presallow-changes. Every node applies the other nodes' changes to
 * its own lists (memory and SQLite, as an API change would be), so a
 * SUBSCRIBE is decided on the local list only: it never waits for Redis.
 * As with a change through the node's own API, the next SUBSCRIBE is
 * decided by the new list, and the presence subscriptions it no longer
 * allows end at once (presence_allow_apply -> the notifier: a NOTIFY
 * terminated;reason=rejected). The whole list is written at each
 * change: concurrent changes of one user's list on two nodes end with the
 * list of the write Redis took last, on every node.
 *
 * A node whose hash was seeded drops the lists it has that the hash lacks
 * (cleared elsewhere while it was away).
 *
 * The record: {"allow":["bob","carol"]}. */
#ifndef CASCADE_SUBS_ALLOW_MIRROR_H
#define CASCADE_SUBS_ALLOW_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "redis/hash_mirror.h"
#include "redis/redis_config.h"
#include "subs/presence.h"

struct timer_service;
struct presence_allow_mirror;

/* Bytes of one record; a longer one is refused. 64 names of 63 bytes, each
 * '"' or '\' written as two, fit. */
#define PRESENCE_ALLOW_RECORD_MAX 9216

/* The record of names[0..n), NUL-terminated in out. Its length, or -EINVAL
 * (n is 0 or over PRESENCE_MAX_ALLOW), -ENOSPC, -ENOMEM. */
int presence_allow_record_encode(const char (*names)[PRESENCE_MAX_NAME], size_t n, char *out, size_t cap);
/* Reads a record from Redis (stranger input): 0 with names[0..*n) filled
 * (each NUL-terminated), or -EINVAL (*n 0). Accepted: an object whose
 * member allow is an array of 1..PRESENCE_MAX_ALLOW strings, each 1..63
 * bytes, with no NUL and no comma (what presence_allow_set takes); other
 * members are ignored (a newer node's). */
int presence_allow_record_decode(const char *buf, size_t len, char (*names)[PRESENCE_MAX_NAME], size_t *n);
/* Whether a field name read from Redis may name a user's list: 1..255 bytes
 * with no control character, no '#' (the engine's marker) and no NUL. */
bool presence_allow_field_ok(const char *s, size_t len);

struct presence_allow_mirror_stats {
    struct hash_mirror_stats mirror; /* the engine's */
    size_t lists;                    /* AoRs with an allow list on this node */
};

/* Starts the mirror of p's allow lists (its allow observer is taken);
 * cfg->presence_allow_max caps the lists a load reads and the ones held.
 * NULL with *err. */
struct presence_allow_mirror *presence_allow_mirror_new(uv_loop_t *loop, struct timer_service *timers,
                                                        struct presence *p, const struct redis_config *cfg,
                                                        int *err);
void presence_allow_mirror_free(struct presence_allow_mirror *m);
void presence_allow_mirror_get_stats(const struct presence_allow_mirror *m, struct presence_allow_mirror_stats *out);

#endif
