/* redis_cluster.h — a Redis Cluster client on the libuv loop.
 *
 * hiredis (Debian's libhiredis 0.14) speaks RESP over one async connection
 * per node, attached to the caller's loop (redis_uv.h: hiredis's own libuv
 * adapter, less a bug); this module adds what a cluster needs on top
 * (Debian packages no cluster library for hiredis):
 *
 *  - the slot map, from CLUSTER SLOTS, asked of any node that answers (the
 *    seeds first); a command is routed by its key's slot (redis_slot.h);
 *  - one connection per master, opened when a command first needs it and
 *    reopened with exponential backoff after it drops;
 *  - MOVED: the slot's owner is updated at once, the map re-read in the
 *    background and the command resent to the new owner;
 *    ASK: the command is resent once to the importing node, after ASKING,
 *    and the map is left alone (the slot is still migrating);
 *    TRYAGAIN / CLUSTERDOWN / LOADING: the map is re-read and the command
 *    resent every 100 ms until its deadline (a failover in progress);
 *  - caps: at most max_inflight commands sent and unanswered per node (the
 *    rest wait in order), max_queued waiting in all, max_redirects per
 *    command; a deadline per command from submission to answer.
 *
 * What the caller gets: exactly one callback per accepted command, on the
 * loop thread, with status 0 and the server's reply (which may be an error
 * reply other than the redirections above: WRONGTYPE, OOM...), or a negative
 * code and no reply:
 *   -ETIMEDOUT   no answer within timeout_ms (a command already sent may
 *                still have been executed; its connection is dropped)
 *   -ECONNRESET  the connection closed with the command sent (it may have run)
 *   -ELOOP       more than max_redirects MOVED/ASK/TRYAGAIN
 *   -ENOSPC      a redirection to a node beyond the cap on nodes
 *   -EADDRNOTAVAIL a redirection to a host name (not resolved on the loop)
 *   -ECANCELED   redis_cluster_free() while it waited
 * A command is resent only when it certainly did not run (redirections,
 * TRYAGAIN, CLUSTERDOWN, a connection that never carried it).
 *
 * Nothing blocks the loop: addresses must be numeric (names would need a
 * resolver call), connects are non-blocking, and the deadlines run on the
 * caller's timer service (base/timer.h), which the caller drives. */
#ifndef CASCADE_REDIS_CLUSTER_H
#define CASCADE_REDIS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/timer.h"

struct redisReply;
struct redis_cluster;

#define REDIS_CLUSTER_MAX_NODES 128
#define REDIS_CLUSTER_MAX_ARGS 64
#define REDIS_CLUSTER_MAX_ARG_BYTES (1024 * 1024) /* all arguments of one command */

struct redis_cluster_config {
    const char *seeds;          /* "127.0.0.1:7000,[::1]:7001": numeric, at most 16 */
    uint32_t timeout_ms;        /* per command, submission to answer; 0: 2000 */
    uint32_t max_inflight;      /* per node; 0: 1000 */
    uint32_t max_queued;        /* waiting to be sent, all nodes; 0: 10000 */
    uint32_t max_redirects;     /* per command; 0: 5 */
    uint32_t reconnect_min_ms;  /* first backoff; 0: 50 */
    uint32_t reconnect_max_ms;  /* backoff cap; 0: 2000 */
};

struct redis_cluster_stats {
    uint64_t commands;     /* accepted */
    uint64_t replies;      /* answered with status 0 */
    uint64_t moved, ask, retries; /* redirections followed, TRYAGAIN/CLUSTERDOWN resends */
    uint64_t refreshes;    /* slot maps read */
    uint64_t connects;     /* connections established */
    uint64_t drops;        /* connections lost or dropped */
    uint64_t timeouts, failures; /* callbacks with -ETIMEDOUT, with another error */
    uint32_t nodes;        /* known */
    uint32_t masters;      /* owning slots in the current map */
    uint32_t slots_mapped; /* of 16384 */
    uint32_t queued, inflight; /* callers' commands waiting to be sent; sent and unanswered */
};

/* status 0: reply is the server's answer, valid until the callback returns.
 * status < 0: reply is NULL (see the codes above). */
typedef void (*redis_cluster_cb)(void *arg, int status, const struct redisReply *reply);

/* Returns NULL with *err set: -EINVAL for a seed list that does not read
 * (or names a host that is not a numeric address), -ENOMEM. The first
 * map is asked for at once. */
struct redis_cluster *redis_cluster_new(uv_loop_t *loop, struct timer_service *timers,
                                        const struct redis_cluster_config *cfg, int *err);

/* Fails every waiting command with -ECANCELED (callbacks run inside), closes
 * the connections. Not from inside one of this cluster's callbacks. The
 * loop must run once more afterwards for libuv to finish closing the
 * handles. */
void redis_cluster_free(struct redis_cluster *c);

/* Sends argv (argc arguments, lengths in argvlen, copied) to the master of
 * the slot of argv[key_index]. Returns 0 when accepted (cb will run, never
 * from inside this call), or without calling cb: -EINVAL (bad arguments,
 * key_index out of range), -E2BIG (over the argument caps), -EAGAIN
 * (max_queued commands already wait), -ENOMEM. */
int redis_cluster_command(struct redis_cluster *c, int key_index, int argc, const char **argv,
                          const size_t *argvlen, redis_cluster_cb cb, void *arg);

/* The same for a command without a key (WAIT): sent to the master of
 * key's slot, as a command on that key would be. A MOVED answer is
 * followed like any other. */
int redis_cluster_command_routed(struct redis_cluster *c, const char *key, size_t key_len, int argc,
                                 const char **argv, const size_t *argvlen, redis_cluster_cb cb, void *arg);

/* Inside a callback with status 0: the connection the reply came on (a
 * serial never reused, 0 if unknown) and the reply's rank among all
 * replies delivered. Two replies with the same conn were executed by one
 * server in the order of their seq, on one connection: a WAIT answered
 * after a write on the same conn covers that write. Outside a callback:
 * 0, 0. */
void redis_cluster_reply_origin(const struct redis_cluster *c, uint64_t *conn, uint64_t *seq);

void redis_cluster_get_stats(const struct redis_cluster *c, struct redis_cluster_stats *out);

#endif
