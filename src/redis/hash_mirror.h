/* hash_mirror.h — one table of records shared between nodes through one
 * Redis Cluster hash, each node keeping its own copy (issue 16): the engine
 * under [redis] mirror_users (registrar/users_mirror.h), mirror_gb_admin
 * (gb/upper/admin_mirror.h) and mirror_mwi (subs/mwi_mirror.h).
 *
 * Every entry is one field of the hash <key>: field = the entry's name,
 * value = its record (the owner's encoding). A change the owner makes is
 * handed here (hash_mirror_changed): written (HSET, or HDEL for a delete)
 * and then announced with "PUBLISH <channel> <name>", routed by the hash's
 * key so that it follows the write on the same connection. Every node is
 * SUBSCRIBEd to the channel (redis/redis_sub.h); a message makes it HGET
 * that field and hand the answer to the owner's apply (a record: add or
 * replace; none: delete), which changes its table quietly (not handed back
 * here). Each time the subscription is (re)established the node reloads the
 * whole hash (HSCAN, bounded batches): it may have missed announcements.
 * A name announced while a load runs is read on its own, and the (older)
 * scan's value for it is ignored.
 *
 * Conflicts: Redis serialises the writes to the hash (one slot, one
 * master); every node applies what its HGET reads after the announcement of
 * each write, so all nodes end with the value of the last write Redis took
 * (whole records: the last writer's record wins, field by field nothing is
 * merged). A stamped table (config.stamped) keeps instead the record with
 * the largest stamp: a write stamped below the held record is not taken.
 *
 * The hash holds a marker field "#" (owners' names never hold '#'):
 * absent, the first node to load finds the hash never seeded and writes its
 * own entries into it (HSETNX, in EVAL batches of up to 2048 entries or
 * ~256 KiB: a table of 100 000 GB devices is some 50 writes, not 200 000),
 * then the marker, and announces
 * "#", which makes every node reload the hash; present, Redis is the truth
 * and a node drops
 * the entries it has that the hash lacks (deleted elsewhere while it was
 * away), unless the owner's may_drop says to keep one.
 *
 * Why one hash, not a key per entry: the cluster client routes by key and
 * has no per-master SCAN; these tables change rarely (an operator's API
 * call) and are read in full only at a (re)subscription, so one slot holds
 * them. Loop thread only. */
#ifndef CASCADE_REDIS_HASH_MIRROR_H
#define CASCADE_REDIS_HASH_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct redisReply;
struct timer_service;
struct hash_mirror;

enum hash_mirror_result {
    HASH_MIRROR_UNCHANGED = 0,
    HASH_MIRROR_ADDED,
    HASH_MIRROR_CHANGED,
    HASH_MIRROR_REMOVED,
    HASH_MIRROR_REJECTED, /* a bad name or record, or over a cap: table unchanged */
};

#define HASH_MIRROR_NAME_MAX 255 /* bytes of a field name; longer ones are refused */

struct hash_mirror_ops {
    const char *what; /* in the log lines: "users", "gb admin" */
    /* A field name read from Redis (an announcement, a scanned field): may it
     * name an entry? (s is not NUL-terminated; len 1..HASH_MIRROR_NAME_MAX.) */
    bool (*name_ok)(const char *s, size_t len);
    /* Applies Redis's record for name (NUL-terminated, name_ok) to the table,
     * quietly: value NULL means none (delete). value is stranger input. */
    enum hash_mirror_result (*apply)(void *arg, const char *name, const char *value, size_t len);
    /* Calls cb for every local entry's name until cb returns non-zero. */
    int (*foreach)(void *arg, int (*cb)(void *cbarg, const char *name), void *cbarg);
    /* The record of local entry name into out (cap bytes): its length, or < 0 (skip it). */
    int (*encode)(void *arg, const char *name, char *out, size_t cap);
    /* A local entry the seeded hash lacks: drop it? NULL: always. */
    bool (*may_drop)(void *arg, const char *name);
    void *arg;
};

struct hash_mirror_config {
    const char *key;       /* the hash, e.g. "cascade:users" */
    const char *channel;   /* the announcements, e.g. "cascade:users-changes" */
    const char *seeds;     /* [redis] nodes */
    uint32_t timeout_ms;   /* [redis] timeout_ms */
    uint32_t max_pending;  /* writes unanswered at once; more are dropped (counted) */
    size_t max_entries;    /* entries a load reads at most; more are skipped (counted) */
    size_t record_max;     /* bytes of one record; a longer value is refused */
    /* Records start with a decimal stamp (a time): a change is written by a
     * script that keeps the held record when its stamp is larger (the hash
     * never goes back in time; the owner's apply refuses an older stamp
     * too). The announcement follows either way. */
    bool stamped;
};

struct hash_mirror_stats {
    uint64_t loads;          /* full loads completed */
    uint64_t load_failures;  /* a load that failed and was tried again */
    uint64_t announcements;  /* messages received */
    uint64_t applied;        /* changes made to the table from Redis */
    uint64_t rejected;       /* records or names refused (bad, or over a cap) */
    uint64_t writes_ok, writes_failed; /* this node's changes written into Redis */
    bool subscribed;
};

struct redis_config;

/* Where a table lives: key "<prefix><table>", announcements on
 * "<prefix><table>-changes" ([redis] key_prefix). */
struct hash_mirror_names {
    char key[96];
    char channel[112];
};

/* A config for table from the [redis] keys every mirror shares (nodes,
 * timeout_ms, max_pending), naming it in *names (which must live until
 * hash_mirror_new has copied them); the caller sets max_entries, record_max
 * and stamped. */
struct hash_mirror_config hash_mirror_config_for(const struct redis_config *cfg, const char *table,
                                                 struct hash_mirror_names *names);

/* Starts it: subscribes, then loads (answers come later, from the loop).
 * The config's strings are copied. NULL with *err. */
struct hash_mirror *hash_mirror_new(uv_loop_t *loop, struct timer_service *timers, const struct hash_mirror_config *cfg,
                                    const struct hash_mirror_ops *ops, int *err);
/* No callback runs during or after this call. NULL: nothing. */
void hash_mirror_free(struct hash_mirror *m);
/* The owner changed name here (the API): rec its new record (len bytes), or
 * NULL when it was deleted. Written and announced. */
void hash_mirror_changed(struct hash_mirror *m, const char *name, const char *rec, size_t len);
void hash_mirror_get_stats(const struct hash_mirror *m, struct hash_mirror_stats *out);

/* An HSCAN answer: ["cursor", [field, value, ...]]. Copies the cursor (digits
 * only) into cursor and calls cb for each pair (both strings). 0, or -EINVAL
 * for a reply of another shape (nothing called). */
int hash_mirror_scan_read(const struct redisReply *r, char *cursor, size_t cap,
                          void (*cb)(void *arg, const struct redisReply *field, const struct redisReply *value),
                          void *arg);

#endif
