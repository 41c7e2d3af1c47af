/* users_mirror.h — SIP users shared between nodes through Redis Cluster
 * ([redis] mirror_users, issue 16), on the engine of redis/hash_mirror.h
 * (one hash, a seed marker, change announcements, loads at each
 * (re)subscription: its header says how).
 *
 * Every user is one field of the hash <prefix>users: field = the name,
 * value = a compact JSON record of what the users module keeps (realm, the
 * HA1 hex values, created_at; never a password: the module has none),
 * announced on <prefix>users-changes. A change made here through the API
 * (users_add/users_del: the users observer) is handed to the engine; a
 * record read from Redis is applied to the table quietly (not told back)
 * but stored in its SQLite as an API change would be. The table users_find
 * reads stays local: the digest checks never wait for Redis.
 *
 * About 250 bytes a user: 100 000 users are 25 MB on one master. */
#ifndef CASCADE_REGISTRAR_USERS_MIRROR_H
#define CASCADE_REGISTRAR_USERS_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/timer.h"
#include "redis/hash_mirror.h"
#include "redis/redis_config.h"
#include "registrar/users.h"

struct redisReply;
struct users_mirror;

#define USERS_MIRROR_RECORD_MAX 1024 /* bytes of one record; a longer one is refused */

struct users_record {
    char realm[USERS_MAX_REALM + 1];
    char md5[33];
    char sha256[65];
    int64_t created_at; /* wall ms, >= 0 */
};

/* The record of e, NUL-terminated in out. Its length, or -ENOSPC. */
int users_record_encode(const struct users_entry *e, char *out, size_t cap);
/* Reads a record from Redis (stranger input): 0 and out filled, or -EINVAL.
 * Accepted: realm 0..USERS_MAX_REALM printable characters, md5 "" or 32 hex,
 * sha256 "" or 64 hex (lower-cased), at least one HA1, created >= 0. */
int users_record_decode(const char *buf, size_t len, struct users_record *out);

enum users_apply_result {
    USERS_APPLY_UNCHANGED = 0,
    USERS_APPLY_ADDED,
    USERS_APPLY_CHANGED,
    USERS_APPLY_REMOVED,
    USERS_APPLY_REJECTED, /* a bad name or record, or over the cap: table unchanged */
};
/* Applies what Redis holds for name (an HGET answer: a string record, or
 * nil for none) to u, quietly. max_users caps a new user. */
enum users_apply_result users_mirror_apply(struct users *u, const char *name, size_t name_len,
                                           const struct redisReply *value, size_t max_users);

struct users_mirror_stats {
    struct hash_mirror_stats mirror; /* the engine's; rejected: bad, or over max_users */
    uint32_t users;                  /* the table now */
};

/* Starts the mirror of u (its observer slot is taken). NULL with *err. */
struct users_mirror *users_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct users *u,
                                      const struct redis_config *cfg, int *err);
void users_mirror_free(struct users_mirror *m);
/* Called after a user was deleted here because Redis no longer has her (an
 * announcement or a load): the caller removes what else she held (her
 * bindings), as the API does for a local delete. NULL: nothing. */
void users_mirror_set_on_removed(struct users_mirror *m, void (*cb)(void *arg, const char *name), void *arg);
void users_mirror_get_stats(const struct users_mirror *m, struct users_mirror_stats *out);

#endif
