/* admin_mirror.h — GB devices' administrative records shared between nodes
 * through Redis Cluster ([redis] mirror_gb_admin, issue 16), on the engine
 * of redis/hash_mirror.h (the same shape as the users' mirror).
 *
 * What POST /gb/devices, PATCH and DELETE /gb/devices/{id} change — the
 * device's password, charset, auth, allow and own subscribe list — is one
 * field of the hash <prefix>gbadmin (field = the 20-digit id, value = a
 * compact JSON record, below), announced on <prefix>gbadmin-changes. Every
 * node applies the other nodes' changes to its own device table (memory and
 * SQLite, as an API change would be), so a REGISTER is checked against the
 * local table only: it never waits for Redis. A delete reaches every node
 * (a device online there goes offline: gb.device.offline, reason
 * unregister); a changed subscribe list is applied at once by the node the
 * device is online on; a password or charset at the device's next REGISTER
 * or message. The whole record is written at each change: concurrent
 * changes of one device on two nodes end with the record of the write Redis
 * took last, on every node.
 *
 * A node whose hash was seeded drops the devices it has that the hash
 * lacks (deleted elsewhere while it was away) when [gb] allow_unknown =
 * no; with allow_unknown = yes it keeps them (a device that registered on
 * its own has no record in the hash until an API change gives it one).
 *
 * The record: {"password":"…","charset":"GB2312","auth":true,"allow":true,
 * "subscribe":-1}; passwords travel and rest in Redis in clear, as they do
 * in SQLite (the digest needs them): keep Redis private (ACL, network). */
#ifndef CASCADE_GB_UPPER_ADMIN_MIRROR_H
#define CASCADE_GB_UPPER_ADMIN_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "gb/upper/upper.h"
#include "redis/hash_mirror.h"
#include "redis/redis_config.h"

struct timer_service;
struct gb_admin_mirror;

#define GB_ADMIN_RECORD_MAX 512 /* bytes of one record; a longer one is refused */

/* The record of r, NUL-terminated in out. Its length, or -ENOSPC / -ENOMEM. */
int gb_admin_record_encode(const struct gb_admin_record *r, char *out, size_t cap);
/* Reads a record from Redis (stranger input): 0 and out filled, or -EINVAL.
 * Accepted: an object with password (a string of 0..GB_ADMIN_PASSWORD_MAX
 * bytes, no NUL, CR or LF), charset (a name gb_charset_from_name knows),
 * auth and allow (booleans) and subscribe (an integer -1..7); other members
 * are ignored (a newer node's). */
int gb_admin_record_decode(const char *buf, size_t len, struct gb_admin_record *out);

struct gb_admin_mirror_stats {
    struct hash_mirror_stats mirror; /* the engine's: the table adds none */
};

/* Starts the mirror of g's administrative records (its admin observer is
 * taken). allow_unknown: [gb] allow_unknown. NULL with *err. */
struct gb_admin_mirror *gb_admin_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct gb_upper *g,
                                            const struct redis_config *cfg, bool allow_unknown, int *err);
void gb_admin_mirror_free(struct gb_admin_mirror *m);
void gb_admin_mirror_get_stats(const struct gb_admin_mirror *m, struct gb_admin_mirror_stats *out);

#endif
