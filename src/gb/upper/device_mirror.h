/* device_mirror.h — GB devices' state written behind into a Redis Cluster
 * (issue 16), and read back by the other nodes, so that a play request on
 * any node finds the node a device is registered to.
 *
 * One hash per device, hash-tagged (a device's fields sit in one slot):
 *   <prefix>gbdev:{<device id>}
 *     node       the node id it is registered to ([redis] node_id)
 *     transport  udp | tcp | tls | ws | wss
 *     remote     the address it registered from, ip:port
 *     online     1 | 0
 *     registered wall ms of the registration that brought it online
 *     keepalive  wall ms of its last keepalive (as last written, see below)
 *     expires    wall ms its registration expires at
 *     inc        the node's incarnation (with [redis] cluster_route: node
 *                death, registrar/cluster.h), absent otherwise
 * and, with an incarnation, the device's id in this run's index
 *   <prefix>node-gbdevs:{<node>}:<inc>
 * (SADD with every online write, SREM on offline): when the node dies, one
 * survivor walks it and marks each device still naming it offline
 * (gb.device.offline reason node-lost, registrar/cluster.c).
 * with a TTL: online, the registration's expiry or the keepalive deadline
 * plus one write interval, whichever comes first (a node killed -9 leaves
 * keys that vanish on their own); offline, GB_DEVMIRROR_OFFLINE_KEEP_MS.
 *
 * Writes: on a registration (new or refreshed), on a keepalive at most once
 * per gb_keepalive_write_s per device (the caller keeps the time of the
 * last write with the device; gb_devmirror_keepalive_due), and on going
 * offline. The offline write is conditional (a Lua script: only while the
 * hash still names this node), so a device that moved to another node is
 * not marked offline by the node it left. Nothing waits for Redis: the
 * calls queue commands, and at most max_pending of them are in flight;
 * beyond it, or when the client refuses, a write is dropped, counted and
 * logged (rate-limited). No resync: a dropped online write is repaired by
 * the device's next keepalive write, a dropped offline write by the TTL.
 *
 * Reads (gb_devmirror_lookup): HGETALL on a second client of its own, so a
 * write backlog never delays a play request; bounded by max_pending and
 * ended by the client's deadline (timeout_ms). Loop thread only.
 *
 * Channels: an upstream platform names a channel, not its device, in the
 * INVITE it sends a middle node (gb/lower/lower_relay.c). So that a node
 * finds the device of a channel registered on another node, each channel
 * id the device's catalog gave is written as
 *   <prefix>gbchan:{<channel id>}   = <device id>   (SET ... PX)
 * on every registration (new or refreshed) and catalog change, with a TTL
 * of GB_DEVMIRROR_CHANNEL_KEEP_MS or twice the registration's, the longer.
 * The string only says which device; whether and where that device is
 * online is its own record's (read next), so a stale channel key sends
 * nothing anywhere by itself. */
#ifndef CASCADE_GB_UPPER_DEVICE_MIRROR_H
#define CASCADE_GB_UPPER_DEVICE_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "base/timer.h"
#include "redis/redis_config.h"

#define GB_DEVMIRROR_OFFLINE_KEEP_MS 300000u /* an offline record stays this long */
#define GB_DEVMIRROR_NODE_MAX 128
#define GB_DEVMIRROR_REMOTE_MAX 64
#define GB_DEVMIRROR_INC_MAX 48 /* CLUSTER_INC_MAX */
#define GB_DEVMIRROR_CHANNEL_KEEP_MS 86400000u /* a channel key lives at least this long */
#define GB_DEVMIRROR_ID_LEN 20 /* GB/T 28181 ids: 20 digits */

struct gb_devmirror;
struct gb_devmirror_lookup;

/* What a node reads back (every field checked, gb_devmirror_record_read). */
struct gb_devmirror_record {
    char node[GB_DEVMIRROR_NODE_MAX];
    char transport[8];
    char remote[GB_DEVMIRROR_REMOTE_MAX];
    char inc[GB_DEVMIRROR_INC_MAX]; /* "" when absent */
    bool online;
    int64_t registered, keepalive, expires; /* wall ms; 0 when absent */
};

/* What a node writes: the device's registration as the role holds it. */
struct gb_devmirror_state {
    const char *transport;      /* "udp" ... */
    const char *remote;         /* "ip:port" */
    int64_t registered, keepalive, expires; /* wall ms */
    uint64_t keepalive_window_ms; /* interval x misses: offline past it without a keepalive */
};

struct gb_devmirror_stats {
    uint64_t writes_ok, writes_failed, writes_dropped;
    uint64_t lookups, lookups_found, lookups_failed, lookups_refused;
    uint32_t pending;           /* writes sent or queued, unanswered */
    uint32_t lookups_pending;
};

/* cfg: [redis] (nodes, key_prefix, timeout_ms, max_pending,
 * gb_keepalive_write_s); node_id: this node's name (not empty). NULL with
 * *err: -EINVAL (bad seeds), -ENOMEM. */
struct gb_devmirror *gb_devmirror_new(uv_loop_t *loop, struct timer_service *timers, const struct redis_config *cfg,
                                      const char *node_id, int *err);
/* Pending writes fail (counted), pending lookups get -ECANCELED (inside
 * this call); the loop must run once more. */
void gb_devmirror_free(struct gb_devmirror *m);

void gb_devmirror_online(struct gb_devmirror *m, const char *id, const struct gb_devmirror_state *s);
/* Whether a keepalive at now_wall is to be written, given the wall ms of
 * the device's last write (0: never). */
bool gb_devmirror_keepalive_due(const struct gb_devmirror *m, int64_t last_write, int64_t now_wall);
void gb_devmirror_offline(struct gb_devmirror *m, const char *id);
/* This run's incarnation (location_mirror_incarnation), with [redis]
 * cluster_route: the records carry it and the devices are indexed for a
 * survivor's reap. "" or never called: neither. */
void gb_devmirror_set_incarnation(struct gb_devmirror *m, const char *inc);

/* Writes the channel keys of device id (channel ids equal to id skipped):
 * one SET each, counted and capped as the other writes. ttl_ms: their TTL
 * (at least GB_DEVMIRROR_CHANNEL_KEEP_MS is used). */
void gb_devmirror_channels(struct gb_devmirror *m, const char *id, const char *const *channels, size_t n,
                           uint64_t ttl_ms);

/* status 0: rec is the device's record (NULL: no such key, or a record
 * that does not read); < 0: Redis failed (-ETIMEDOUT, -ECANCELED, ...).
 * rec valid during the call only. */
typedef void (*gb_devmirror_lookup_cb)(void *arg, int status, const struct gb_devmirror_record *rec);
/* 0 (cb runs exactly once, later, unless cancelled; *h set), or -ENOBUFS
 * (max_pending lookups wait), -EINVAL (id too long), -EAGAIN / -ENOMEM. */
int gb_devmirror_lookup(struct gb_devmirror *m, const char *id, gb_devmirror_lookup_cb cb, void *arg,
                        struct gb_devmirror_lookup **h);
void gb_devmirror_lookup_cancel(struct gb_devmirror_lookup *h);

/* The device of channel id (GET <prefix>gbchan:{id}). status 0: device is
 * the device id read (NULL: no such key, or a value that is not a GB id);
 * < 0: Redis failed. device valid during the call only. Same bounds,
 * counters and cancel (gb_devmirror_lookup_cancel) as gb_devmirror_lookup. */
typedef void (*gb_devmirror_channel_cb)(void *arg, int status, const char *device);
int gb_devmirror_channel_lookup(struct gb_devmirror *m, const char *id, gb_devmirror_channel_cb cb, void *arg,
                                struct gb_devmirror_lookup **h);

const char *gb_devmirror_node_id(const struct gb_devmirror *m);
void gb_devmirror_get_stats(const struct gb_devmirror *m, struct gb_devmirror_stats *out);
/* Adds "redis_gb_devices": {...} to a /stats object. */
void gb_devmirror_stats_json(const struct gb_devmirror *m, json_t *stats);

/* ---- what a node reads from Redis (pure; tests/fuzz/fuzz_gb_devmirror.c) ----
 * An HGETALL answer as n strings, field and value alternating (lens[i] the
 * length of strs[i], which may hold any byte). 0 with *out filled when
 * "node" is there (printable, no space, fits), "online" is 0 or 1 and every
 * number an integer >= 0; unknown fields are skipped, a repeated one keeps
 * the last; -1 otherwise (n odd, empty, a field that does not read). */
int gb_devmirror_record_read(const char *const *strs, const size_t *lens, size_t n, struct gb_devmirror_record *out);
/* The HGETALL reply as the client hands it: 0 with *out (the record reads),
 * -ENOENT (empty: no such key), -EPROTO (not an array of at most 32
 * strings, or a record that does not read). */
struct redisReply;
int gb_devmirror_reply_read(const struct redisReply *reply, struct gb_devmirror_record *out);
/* The GET answer of a channel key: 0 with out (GB_DEVMIRROR_ID_LEN + 1
 * bytes) the device id (20 ASCII digits), -ENOENT (nil: no such key),
 * -EPROTO (anything else). */
int gb_devmirror_channel_reply_read(const struct redisReply *reply, char *out);

#endif
