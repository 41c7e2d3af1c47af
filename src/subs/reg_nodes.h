/* reg_nodes.h — the reg event package (RFC 3680) across nodes ([redis]
 * cluster_route, issue 16): a watcher subscribed here sees every live
 * node's unexpired bindings of the AoR, not only this node's.
 *
 * The other nodes' bindings are read from the hash the binding mirror
 * writes (<prefix>loc:{<aor>}, location_mirror.h) with cluster_read_bindings
 * — never on the REGISTER path: only for the AoRs a reg watcher here
 * watches, when the first watcher comes (its initial NOTIFY waits for that
 * read, at most the client's timeout_ms), at each <prefix>loc-changes
 * message naming the AoR, when the channel comes back, and at the earliest
 * expiry of what was read (a refresh on another node is not announced: the
 * read at its old expiry finds the later one, "refreshed"). Per AoR at most
 * one read in flight; messages during it ask for one more read after it
 * (bursts coalesce into two reads); over all AoRs at most
 * REG_NODES_INFLIGHT_MAX, the others queued in order. What a read finds is diffed against
 * what the watchers were last told (reg_nodes_diff) and the changes go as
 * one partial NOTIFY (subs_reg_remote_changed).
 *
 *   subs_new(...);  rn = reg_nodes_new(&(struct reg_nodes_deps){...});
 *   ...             reg_nodes_free(rn) before cluster_free and subs_free.
 *
 * A contact that goes is "terminated" with event: expired (its record's
 * expiry had passed), deactivated (its node is not live here: killed, its
 * bindings reaped by a survivor — the UA is expected to register again,
 * RFC 3680 §5.3), unregistered (removed before its expiry by a live node).
 * When Redis does not answer, the watchers keep what they saw, except the
 * other nodes' contacts whose expiry passes meanwhile (expired): the view
 * shrinks to this node's, nothing crashes, reads are retried (1 s, doubling
 * to 30 s). Loop thread only. */
#ifndef CASCADE_SUBS_REG_NODES_H
#define CASCADE_SUBS_REG_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/timer.h"
#include "registrar/cluster.h"
#include "subs/follow.h"
#include "subs/reginfo.h"

struct cluster;
struct redisReply;
struct reg_nodes;
struct subs;

#define REG_NODES_URI_MAX 256    /* a contact URI read from Redis, with its NUL; longer: refused */
#define REG_NODES_NODE_MAX 128   /* a node id, with its NUL */
#define REG_NODES_PAIRS_MAX 256  /* fields of one hash looked at; the rest skipped (over_cap) */
#define REG_NODES_MAX 32         /* other nodes' contacts kept per AoR; the rest skipped (over_cap) */
#define REG_NODES_INFLIGHT_MAX 64 /* reads in flight over all AoRs; more wait their turn (queued), so that
                                   * the channel's return with many AoRs followed leaves the cluster's
                                   * lookup_max_pending to the proxy's lookups */

/* One binding of another node, as read. */
struct reg_remote {
    char uri[REG_NODES_URI_MAX];
    char node[REG_NODES_NODE_MAX];
    int64_t expires_wall_ms;
    int q1000;
};

/* ---- pure (tests/unit/test_reg_nodes.c, tests/fuzz/fuzz_cluster.c) ---- */

/* A contact URI as a field of the hash (len bytes, any byte): "sip:" or
 * "sips:" (any case), then bytes 0x21..0x7e other than '<' '>' '"', the
 * whole under REG_NODES_URI_MAX. */
bool reg_nodes_contact_ok(const char *s, size_t len);
/* The other live nodes' unexpired bindings in an HGETALL answer (fields
 * checked by reg_nodes_contact_ok, values by cluster_record_read_q): how
 * many were put in out (at most cap and REG_NODES_MAX), or -1 when r is no
 * array. st (may be NULL) counts what was skipped. */
int reg_nodes_parse(const struct redisReply *r, const char *self, int64_t now_wall, follow_alive_fn alive,
                    void *arg, struct reg_remote *out, size_t cap, struct follow_read_stats *st);
/* What changed from old to cur, as reginfo contacts (their strings point
 * into old and cur): a contact only in cur active/registered; in both with
 * another node active/registered, with another expiry active/refreshed; only
 * in old terminated/expired, deactivated or unregistered (see above). Its
 * count (at most cap). */
size_t reg_nodes_diff(const struct reg_remote *old, size_t n_old, const struct reg_remote *cur, size_t n_cur,
                      int64_t now_wall, follow_alive_fn alive, void *arg, struct reginfo_contact *out, size_t cap);

/* ---- the follower ---- */

/* How the follower reads and what it asks; the cluster's by default (a
 * test gives its own, with cluster NULL, and calls reg_nodes_changed). */
struct reg_nodes_io {
    void *arg;
    /* as cluster_read_bindings / cluster_read_cancel */
    int (*read)(void *arg, const char *aor, cluster_read_cb cb, void *cb_arg, struct cluster_lookup **h);
    void (*cancel)(void *arg, struct cluster_lookup *h);
    bool (*alive)(void *arg, const char *node);  /* as cluster_node_hit() == 0 */
    int64_t (*wall_ms)(void *arg);               /* NULL: clock_wall_ms */
};

struct reg_nodes_deps {
    struct timer_service *timers;
    struct cluster *cluster;     /* reads, the change messages, node liveness; NULL: io only */
    struct subs *subs;           /* its reg watchers (subs_set_reg_hooks) */
    const char *node_id;         /* this node's id in the records */
    const struct reg_nodes_io *io; /* NULL: the cluster's */
};

struct reg_nodes_stats {
    uint32_t followed;           /* AoRs a reg watcher here watches */
    uint32_t contacts;           /* other nodes' contacts held for them */
    uint64_t reads;              /* HGETALLs answered */
    uint64_t read_failures;      /* failed, timed out, or an error reply */
    uint64_t refused;            /* not sent (over lookup_max_pending, client refused) */
    uint64_t coalesced;          /* messages folded into a read already asked for or queued */
    uint64_t queued;             /* reads that waited for one of the REG_NODES_INFLIGHT_MAX slots */
    uint64_t changes;            /* contact changes told to the watchers */
    uint64_t rejected;           /* records skipped as unreadable */
    uint64_t over_cap;           /* records skipped over the caps */
};

/* NULL on allocation failure or when the cluster has no room for a
 * listener. Sets the subs hooks and the cluster's listener. */
struct reg_nodes *reg_nodes_new(const struct reg_nodes_deps *d);
/* Removes both, cancels the reads; watchers waiting for a first read get
 * their NOTIFY. */
void reg_nodes_free(struct reg_nodes *rn);
void reg_nodes_get_stats(const struct reg_nodes *rn, struct reg_nodes_stats *out);
/* A change message named aor's bindings (NULL: the channel came back,
 * anything may have changed): what the cluster's listener calls. */
void reg_nodes_changed(struct reg_nodes *rn, const char *aor);
/* Adds "redis_reg": {...} to a /stats object. */
void reg_nodes_stats_json(const struct reg_nodes *rn, json_t *stats);

#endif
