/* location_mirror.h — the location service's bindings written behind into a
 * Redis Cluster (issue 16), so that other nodes can see who is registered
 * where. SQLite stays the source of truth; nothing here is on the REGISTER
 * answer path: the callbacks only queue commands, answered later on the loop.
 *
 * One hash per AoR, hash-tagged so that all of an AoR lives in one slot:
 *   <prefix>loc:{<aor>}   field: the contact URI
 *                         value: {"node":..,"flow":conn_id,"transport":"udp",
 *                                 "remote":"ip:port","expires":wall ms,"q":1000}
 * and PEXPIREAT at the latest expiry among the AoR's bindings, so a node that
 * dies leaves nothing behind past its bindings' lifetime. A removed binding is
 * HDEL'd (Redis deletes the hash with its last field). With [redis]
 * cluster_route, a binding added or removed is followed by
 * PUBLISH <prefix>loc-changes <key> on the key's own master (after the
 * write), which the peers' lookup caches drop the key on (cluster.h).
 *
 * Writes waiting for an answer are capped (max_pending): beyond it, or when
 * the cluster client refuses, a write is dropped, counted and logged (at most
 * once per 10 s with the count skipped). After writes were lost, the first
 * write that succeeds schedules a resync: every binding of the location is
 * written again (removals lost meanwhile are not replayed; those keys expire
 * on their TTL). The bindings loaded from the store at start-up are written
 * once the loop runs.
 *
 * With cluster_route, each record also names this run's incarnation ("inc")
 * and every AoR with a binding here is in this incarnation's index,
 *   <prefix>node-aors:{<node id>}:<inc>   set of AoRs (SADD on add and on a
 *                                         resync, SREM when the AoR's last
 *                                         binding here goes; TTL refreshed
 *                                         by the heartbeat)
 * which a surviving node reads when this one dies (cluster.h, node death).
 * Loop thread only. */
#ifndef CASCADE_REGISTRAR_LOCATION_MIRROR_H
#define CASCADE_REGISTRAR_LOCATION_MIRROR_H

#include <stdint.h>

#include <uv.h>

#include "base/timer.h"
#include "registrar/location.h"
#include "redis/redis_config.h"

struct location_mirror;

#define LOCATION_MIRROR_INDEX_TTL_MS (24u * 3600u * 1000u) /* beyond any binding's lifetime */

struct location_mirror_stats {
    uint64_t writes_ok;       /* commands answered without an error */
    uint64_t writes_failed;   /* answered with an error, timed out, connection lost */
    uint64_t writes_dropped;  /* never sent: over max_pending or refused by the client */
    uint64_t resyncs;         /* full rewrites after lost writes */
    uint64_t durable_ok;      /* [redis] durable_writes: REGISTERs answered once replicated */
    uint64_t durable_failed;  /* not replicated by durable_timeout_ms (answered 500) */
    uint64_t durable_retries; /* syncs sent again (an error, a failover, too few replicas) */
    uint32_t pending;         /* sent or queued, not answered */
};

/* cfg is read now (node_id "" resolved to the host name). loc: read for
 * the AoR's other bindings (the key's expiry) and for resyncs. NULL with
 * *err (-EINVAL: bad node list; -ENOMEM). */
struct location_mirror *location_mirror_new(uv_loop_t *loop, struct timer_service *timers,
                                            const struct location *loc, const struct redis_config *cfg, int *err);
/* Pending writes fail with -ECANCELED (counted); the loop must run once more. */
void location_mirror_free(struct location_mirror *m);
/* Callbacks to register as a registrar observer (binding_added/refreshed/removed). */
void location_mirror_callbacks(struct location_mirror *m, struct location_callbacks *out);
void location_mirror_get_stats(const struct location_mirror *m, struct location_mirror_stats *out);
const char *location_mirror_node_id(const struct location_mirror *m);
/* [redis] durable_writes: makes aor's bindings, as they are here now,
 * durable in Redis (written on the slot's master and acknowledged by
 * durable_replicas of its replicas, WAIT on the same connection), retrying
 * through failovers until durable_timeout_ms. Returns 1 when there is
 * nothing to wait for (durable_writes off, or no binding of aor here: cb
 * never called), 0 when cb will be called once (0 durable, -ETIMEDOUT at
 * the deadline, -ECANCELED when the mirror is freed), or -ENOMEM. mirror is
 * a struct location_mirror (the registrar's commit gate signature). */
typedef void (*location_mirror_sync_cb)(void *arg, int status);
int location_mirror_sync(void *mirror, const char *aor, location_mirror_sync_cb cb, void *arg);
/* Every binding written again (and indexed) on the next loop turn, counted
 * in resyncs: a peer took this node for dead (cluster_set_on_reaped). */
void location_mirror_resync(void *mirror);
/* This run's incarnation ("<wall ms hex>-<random hex>"), in every record as
 * "inc" and in the index key. */
const char *location_mirror_incarnation(const struct location_mirror *m);

#endif
