/* cluster.h — routing between cascade nodes over Redis Cluster (issue 16):
 * the node registry and the remote binding lookup.
 *
 * Node registry: every heartbeat_ms this node writes
 *   <prefix>node:{<id>}   hash: sip -> its advertised SIP URI, seen -> wall ms,
 *                         api -> its HTTP API "ip:port", or "https://ip:port" when
 *                         it serves TLS ("" none; cluster_set_api)
 * with a TTL of three heartbeats, adds its id to the set <prefix>nodes, and
 * reads the set back (SMEMBERS, then HMGET sip api of each member) into a
 * local table of the live nodes. A node whose hash has expired (it stopped
 * heartbeating: killed, partitioned) drops out of the table and of the set;
 * one not refreshed for three heartbeats counts as dead locally too.
 *
 * Lookup: cluster_lookup(aor) reads <prefix>loc:{<aor>} (the hash the
 * binding mirror writes, location_mirror.h) with HGETALL and returns the
 * live nodes other than this one holding an unexpired binding, each with
 * the Route and the host:port to forward through. Answers are kept in a
 * bounded local cache (direct-mapped, 1024 AoRs, negative answers too) for
 * at most lookup_cache_ms; a hit is answered at once, without Redis. The
 * cache is kept true by invalidation: the mirrors PUBLISH the key of every
 * binding added or removed on <prefix>loc-changes, and this node holds one
 * SUBSCRIBEd connection to a seed (any node of a Redis Cluster delivers
 * every PUBLISH), dropping the AoR's entry on each message. An answer read
 * before an invalidation that arrives while it is in flight is not kept;
 * while the subscription is down (connecting, lost) nothing is cached and
 * everything is flushed when it comes back. A node that stops
 * heartbeating invalidates the entries naming it. Lookups waiting for Redis
 * are capped (lookup_max_pending); each ends by the client's deadline
 * (timeout_ms) at the latest.
 *
 * A request forwarded to a peer carries the flag parameter "cascade-peer"
 * in the Route entry naming the peer (CLUSTER_PEER_PARAM): the peer routes
 * such a request to its own bindings only, never on to a third node.
 *
 * Its own Redis connections (not the mirror's): a backlog of write-behind
 * never delays a lookup. Loop thread only. */
#ifndef CASCADE_REGISTRAR_CLUSTER_H
#define CASCADE_REGISTRAR_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>
#include <uv.h>

#include "base/timer.h"
#include "redis/redis_config.h"

#define CLUSTER_MAX_NODES 64
#define CLUSTER_MAX_HITS 8               /* nodes a lookup names at most */
#define CLUSTER_PEER_PARAM "cascade-peer"
#define CLUSTER_ROUTE_MAX 320
#define CLUSTER_HOSTPORT_MAX 272
#define CLUSTER_DEAD_ROUNDS 3            /* heartbeat rounds in a row a peer's hash must read nil before its reap */
#define CLUSTER_API_MAX 64               /* a node's API "host:port", with its NUL */
#define CLUSTER_INC_MAX 48               /* an incarnation id, with its NUL */
#define CLUSTER_INDEX_TTL_MS (24u * 3600u * 1000u) /* LOCATION_MIRROR_INDEX_TTL_MS */
#define CLUSTER_GB_ID_MAX 65             /* a GB device id read from a dead node's index, with its NUL */
#define CLUSTER_GB_WINDOW 128            /* a dead node's device scripts in flight at once */
#define CLUSTER_GB_SCAN_MAX 4096         /* members taken from one SSCAN answer (COUNT 128 asks for far fewer) */
#define CLUSTER_GB_OFFLINE_KEEP_MS 300000u /* GB_DEVMIRROR_OFFLINE_KEEP_MS */

struct cluster;
struct cluster_lookup;
struct event_bus;
struct event_field;
struct redisReply;

struct cluster_hit {
    char node[128];                      /* its node id */
    char route[CLUSTER_ROUTE_MAX];       /* "<sip:10.0.0.2:5060;lr;cascade-peer>" */
    char hostport[CLUSTER_HOSTPORT_MAX]; /* "10.0.0.2:5060", for the Request-URI */
};

struct cluster_result {
    int status;                          /* 0 answered; < 0 Redis failed (-ETIMEDOUT, ...) */
    bool cached;                         /* from the local cache */
    size_t n;                            /* live nodes holding a binding; 0: none */
    struct cluster_hit hits[CLUSTER_MAX_HITS];
};

/* r is valid during the call only. */
typedef void (*cluster_lookup_cb)(void *arg, const struct cluster_result *r);

struct cluster_stats {
    uint64_t lookups;                    /* asked */
    uint64_t cache_hits;                 /* answered from the cache */
    uint64_t found;                      /* answers naming at least one node */
    uint64_t failed;                     /* Redis failed or timed out */
    uint64_t refused;                    /* over lookup_max_pending or refused by the client */
    uint64_t heartbeats;                 /* rounds sent */
    uint64_t heartbeat_failures;         /* rounds with a failed command */
    uint64_t invalidations;              /* change messages received */
    uint64_t nodes_reaped;               /* dead incarnations this node finished reaping */
    uint64_t bindings_reaped;            /* their bindings this node removed from Redis */
    uint64_t node_lost_offline;          /* user.offline reason node-lost this node emitted */
    uint64_t self_reaped;                /* times a peer took this live node for dead (bindings rewritten) */
    uint64_t gb_devices_reaped;          /* a dead node's GB devices this node marked offline (node-lost events) */
    uint64_t gb_devices_kept;            /* ... found online here with a newer registration (record written again) */
    uint64_t reap_events_streamed;       /* offline events this node's reap wrote into the events stream */
    uint64_t reap_events_cancelled;      /* reaped records found bound / registered again when announced: no event */
    uint32_t pending;                    /* lookups waiting for Redis */
    uint32_t nodes_live;                 /* other nodes in the table, alive */
    uint32_t peers_stream_differs;       /* ... whose [redis] events_stream differs from this node's (warned) */
};

/* cfg: [redis] (nodes, node_id, key_prefix, timeout_ms, heartbeat_ms,
 * lookup_*); advertise: this node's SIP URI as peers reach it (numeric
 * host, checked). NULL with *err: -EINVAL (bad seeds or advertise), -ENOMEM. */
struct cluster *cluster_new(uv_loop_t *loop, struct timer_service *timers, const struct redis_config *cfg,
                            const char *node_id, const char *advertise, int *err);
/* Node death (cluster.c, "node death"): inc is this run's incarnation (the
 * mirror's, location_mirror_incarnation); the heartbeat lists it in
 * <prefix>node-incs:{<id>} and keeps its index alive. When a peer's hash
 * has expired, or a previous run of this node id is still listed, one node
 * claims each listed incarnation (<prefix>dead:{<id>}:<inc>, SET-if-absent
 * with a TTL of three heartbeats, renewed per batch), removes the fields
 * naming it from the AoRs of its index (one Lua script per AoR, the commit
 * point), publishes the change, and emits user.offline reason node-lost
 * (fields user, aor "sip:<user>@<domain>", reason, node) for each AoR that
 * has no unexpired binding left anywhere, exactly once. inc "" turns it off
 * (the dead node's bindings then only expire on their TTL). */
void cluster_set_node_death(struct cluster *c, const char *inc, struct event_bus *events, const char *domain);
/* fn(arg) when this node finds its own incarnation reaped while it lives
 * (its heartbeat lists it anew, the same incarnation): the mirror writes
 * every binding again (location_mirror_resync) and the subscriptions are
 * claimed again (subs_takeover_self_reaped); app/dispatch.c calls both. */
void cluster_set_on_reaped(struct cluster *c, void (*fn)(void *arg), void *arg);
/* fn(arg, id, inc) on the node that finished reaping incarnation inc of
 * node id (the claim's holder, once per incarnation): the subscriptions'
 * takeover (subs/subs_takeover.h) starts from there. NULL: none. */
void cluster_set_on_node_reaped(struct cluster *c, void (*fn)(void *arg, const char *id, const char *inc), void *arg);
/* fn(arg, aor) after each change message naming aor's bindings (its cache
 * entry dropped first: a lookup from inside fn reads Redis), and
 * fn(arg, NULL) each time the channel is (re)confirmed (anything may have
 * changed while it was down). aor is valid during the call only. Up to
 * CLUSTER_LISTENERS_MAX listeners, one per arg: a second call with the same
 * arg replaces its fn, fn NULL removes it. 0, or -ENOSPC (all taken). */
#define CLUSTER_LISTENERS_MAX 4
int cluster_set_on_bindings_changed(struct cluster *c, void (*fn)(void *arg, const char *aor), void *arg);
/* A dead node's GB devices (node death, second phase, under the same
 * claim): the devices listed in the incarnation's index
 * <prefix>node-gbdevs:{<id>}:<inc> (written by gb/upper/device_mirror.c)
 * are walked with SSCAN, at most CLUSTER_GB_WINDOW scripts in flight; one
 * script per device marks its record <prefix>gbdev:{<dev>} offline only
 * while it names the dead node and incarnation and says online 1 (the
 * commit point: once per device). The hooks keep the GB role's state true;
 * without them (no GB role here) the event is published as is. */
struct cluster_gb_hooks {
    /* The wall ms of device id's registration when it is online here, else
     * 0. A registration here at or after the dead node's wins: the record
     * is left alone and kept() called. */
    int64_t (*local_registered)(void *arg, const char *id);
    /* The script marked id offline: publish gb.device.offline (device_id,
     * reason "node-lost", lost_node: node) once, and drop a stale online
     * state here. */
    void (*lost)(void *arg, const char *id, const char *node);
    /* id is online here with a newer registration: write its record again. */
    void (*kept)(void *arg, const char *id);
    void *arg;
};
/* h NULL: none (the events are published by the cluster itself). */
void cluster_set_gb_hooks(struct cluster *c, const struct cluster_gb_hooks *h);
/* [redis] events_stream (app/events_stream.h): the reap's offline events
 * go into the cluster's stream from its own scripts, not from the bus.
 * The AoR and device scripts leave a mark where an offline is due
 * (<prefix>reaped:{<aor>} field "<id>/<inc>"; the device record's field
 * reaped); one heartbeat after the walk (a survivor's queued write of a
 * user or device that came back lands meanwhile) both indexes are walked
 * again: a script per AoR / device answers whether the offline is still
 * due (CLUSTER_EMIT_*), and a due one is written into the stream by
 * STREAM_LUA, once per record (a hash <prefix>{events}:reaped:<id>:<inc> in
 * the stream's slot), then its mark removed. The node's bus still gets each
 * event (its subscribers here), skip_local keeping the stream writer from
 * writing it again. The strings are copied. NULL: off. */
struct cluster_stream {
    const char *key, *seq_key, *maxlen, *node_id, *node_json; /* events_stream_target */
    void (*skip_local)(void *arg, const char *type);          /* events_stream_skip_local */
    void *arg;
};
void cluster_set_events_stream(struct cluster *c, const struct cluster_stream *s);
/* Every lookup still waiting gets its callback with status -ECANCELED
 * (inside this call); the loop must run once more afterwards. */
void cluster_free(struct cluster *c);

/* Starts looking aor up. Returns 1 when answered at once from the cache
 * (*now filled, cb never called), 0 when waiting (cb runs exactly once,
 * later, unless cluster_lookup_cancel; *h set), or a negative errno
 * without cb: -ENOBUFS (lookup_max_pending wait already), -EAGAIN /
 * -ENOMEM / -E2BIG (refused by the Redis client). */
int cluster_lookup(struct cluster *c, const char *aor, struct cluster_result *now, cluster_lookup_cb cb, void *arg,
                   struct cluster_lookup **h);
/* cb will not run (the Redis answer, when it comes, is dropped). */
void cluster_lookup_cancel(struct cluster_lookup *h);
/* aor's location hash as Redis answers it (HGETALL, no cache), for a
 * reader of the records themselves (subs/reg_nodes.h); the same cap as the
 * lookups (lookup_max_pending). 0 and cb exactly once later (status 0 with
 * the reply, valid during the call; or a negative errno and NULL:
 * -ETIMEDOUT, -EIO for an error reply, -ECANCELED at cluster_free) unless
 * cluster_read_cancel; or a negative errno and no cb (-ENOBUFS, ...). */
typedef void (*cluster_read_cb)(void *arg, int status, const struct redisReply *reply);
int cluster_read_bindings(struct cluster *c, const char *aor, cluster_read_cb cb, void *arg, struct cluster_lookup **h);
void cluster_read_cancel(struct cluster_lookup *h);

/* Whether addr's IP is the host of a live node's advertised URI (to trust
 * a request marked as coming from a peer: no digest challenge). */
bool cluster_is_node_addr(const struct cluster *c, const struct sockaddr *addr);
/* The live node called id (another node, or this one): 0 with *out
 * filled (its Route with the peer mark, its host:port); -EHOSTDOWN when
 * it stopped heartbeating, -ENOENT when this node never saw it. */
int cluster_node_hit(const struct cluster *c, const char *id, struct cluster_hit *out);
/* This node's API as its peers reach it, "ip:port" or "[v6]:port"
 * (numeric), "https://" before it when it serves TLS, written into its registry hash (field api) from the next
 * heartbeat on; NULL or "": none (peers then send it no API request).
 * 0, or -EINVAL when it does not read (cluster_peer_api). */
int cluster_set_api(struct cluster *c, const char *hostport);
/* The API address of the live node called id: 0 with hostport ("ip:port",
 * no scheme), *addr and *https (it advertises https://) filled;
 * -EHOSTDOWN (stopped heartbeating), -ENOENT (never seen here),
 * -EADDRNOTAVAIL (it advertises no usable API). */
int cluster_node_api(const struct cluster *c, const char *id, char *hostport, size_t cap,
                     struct sockaddr_storage *addr, bool *https);
/* Calls fn for each other node alive now (heartbeating) that advertises
 * an API, with its id; returns how many (at most CLUSTER_MAX_NODES). */
size_t cluster_live_apis(const struct cluster *c, void (*fn)(void *arg, const char *id), void *arg);
const char *cluster_node_id(const struct cluster *c);
const char *cluster_advertise(const struct cluster *c);
void cluster_get_stats(const struct cluster *c, struct cluster_stats *out);
/* Adds "cluster": {...} to a /stats object. */
void cluster_stats_json(const struct cluster *c, json_t *stats);

/* ---- what a node reads from Redis (pure; tests/fuzz/fuzz_cluster.c) ---- */

/* A peer's advertised URI (NUL-terminated): a sip:/sips: URI with a host,
 * no user, no headers, under 256 bytes, nothing at or below space, no
 * '<' '>' '"' ','. 0 with the Route to push ("<uri;lr;cascade-peer>"),
 * host:port (the default port filled in) and *ip (ss_family 0 when the
 * host is not numeric); -1 when unusable or a result does not fit. */
int cluster_peer_uri(const char *uri, char *route, size_t route_cap, char *hostport, size_t hostport_cap,
                     struct sockaddr_storage *ip);
/* A peer's API address as read from its registry hash (len bytes, any
 * byte): "a.b.c.d:port" or "[v6]:port", numeric, port 1..65535, optionally
 * after "https://", all under CLUSTER_API_MAX and cap. 0 with hostport (the
 * text after the scheme, NUL-terminated), *addr (family, address, port)
 * and *tls (the scheme was there); -1 otherwise. */
int cluster_peer_api(const char *s, size_t len, char *hostport, size_t cap, struct sockaddr_storage *addr,
                     bool *tls);
/* A mirrored binding record (location_mirror.h): 0 with its "node" (non-
 * empty, fits node_cap with its NUL) and "expires" (an integer, wall ms);
 * -1 otherwise. */
int cluster_record_read(const char *json, size_t len, char *node, size_t node_cap, int64_t *expires);
/* The same, and its "q" in *q1000 when q1000 is not NULL (an integer
 * 0..1000; absent or anything else: 1000). */
int cluster_record_read_q(const char *json, size_t len, char *node, size_t node_cap, int64_t *expires, int *q1000);
/* The AoR inside a location key's hash tag ("t:loc:{alice}" -> "alice"):
 * its length, or -1 (no tag, empty, a NUL inside, not under cap). */
int cluster_key_aor(const char *key, size_t len, char *aor, size_t cap);
/* A member of a node's index (an AoR) or of its incarnation list, as read
 * from Redis: copied NUL-terminated into out when non-empty, under cap, and
 * free of bytes at or below space, DEL, '{' and '}' (it goes inside a key's
 * hash tag); its length, or -1. */
int cluster_reap_member(const char *s, size_t len, char *out, size_t cap);
/* The reap script's answer: an array of two non-negative integers {removed,
 * left}; 0, or -1 for any other shape. */
int cluster_reap_counts(const struct redisReply *r, long long *removed, long long *left);

/* The GB device reap script's answer: CLUSTER_GB_NONE (not the dead node's
 * any more, already offline, or gone), CLUSTER_GB_LOST (marked offline by
 * this run), CLUSTER_GB_KEPT (online here with a newer registration: left
 * alone); -1 for anything else. */
enum { CLUSTER_GB_NONE = 0, CLUSTER_GB_LOST = 1, CLUSTER_GB_KEPT = 2 };
int cluster_gb_reap_verdict(const struct redisReply *r);
/* The announcing scripts' answer (cluster_set_events_stream): nothing due
 * (no mark: announced before, or never lost), due (write the event), kept
 * (a device online here with a newer registration: the role writes its
 * record again; devices only), moved (bound or registered again meanwhile:
 * the mark dropped, no event); -1 for anything else. */
enum { CLUSTER_EMIT_NONE = 0, CLUSTER_EMIT_DUE = 1, CLUSTER_EMIT_KEPT = 2, CLUSTER_EMIT_MOVED = 3 };
int cluster_emit_verdict(const struct redisReply *r);
/* The stream script's answer: the seq written, 0 when the event was there
 * already; -1 for anything else. */
int cluster_stream_answer(const struct redisReply *r, long long *seq);

/* A dead node's offline event, the same for the bus and for the stream
 * script's body (byte for byte, event_format_fields_body): for an AoR
 * (gb false) user.offline with user, aor (sip:<what>@<domain>, written into
 * uri), reason node-lost and lost_node (the dead node); for a device
 * gb.device.offline with device_id, reason node-lost and lost_node. No
 * "node": in the stream that is the node that wrote the event. out holds
 * CLUSTER_LOST_FIELDS; the strings are referenced, not copied. Returns how
 * many fields, *type the event's type. */
#define CLUSTER_LOST_FIELDS 4
size_t cluster_node_lost_event(bool gb, const char *what, const char *domain, const char *dead, char *uri,
                               size_t ucap, struct event_field *out, const char **type);

/* The walk over a dead node's GB device index, one SSCAN answer at a time
 * (pure: tests/unit/test_node_death.c). Zeroed = empty, cursor "0". */
struct cluster_gb_walk {
    char cursor[32];                     /* the next SSCAN's cursor; "0" after the last answer */
    char (*ids)[CLUSTER_GB_ID_MAX];      /* the usable members of the last answer */
    size_t n, next;                      /* ids held, ids handed out */
    uint32_t outstanding;                /* handed out, not answered */
    uint64_t skipped;                    /* members that are no usable device id */
};
/* Takes an SSCAN answer ({cursor, {members...}}): 0, -ENOMEM, or -1 for a
 * shape that is no SSCAN answer (the walk unchanged). At most
 * CLUSTER_GB_SCAN_MAX members are taken (the rest counted skipped). Only
 * when the previous answer's ids are all answered (asserted by -EBUSY). */
int cluster_gb_walk_scan(struct cluster_gb_walk *w, const struct redisReply *r);
/* The next device to send a script for, or NULL: none left in this answer,
 * or CLUSTER_GB_WINDOW already in flight. */
const char *cluster_gb_walk_next(struct cluster_gb_walk *w);
/* One handed-out id answered (or never sent). */
void cluster_gb_walk_answered(struct cluster_gb_walk *w);
/* Every id of the last answer handed out and answered. */
bool cluster_gb_walk_batch_done(const struct cluster_gb_walk *w);
/* Frees the ids; the cursor back to "0". */
void cluster_gb_walk_reset(struct cluster_gb_walk *w);

#endif
