/* dialog_mirror.h — the dialog package (RFC 4235) across nodes ([redis]
 * cluster_route, issue 16): a dialog watcher subscribed here sees the calls
 * of the watched AoR that any live node's proxy handles, not only this
 * node's. Records, keys and messages: dialog_nodes.h.
 *
 * Who is watched: each node announces the AoRs its dialog watchers watch
 * ("<prefix>dlgw:{<aor>} <node>" on <prefix>dlg-changes) when the first
 * watcher comes and every DIALOG_MIRROR_ANNOUNCE_MS while one stays; every
 * node keeps what it hears in a bounded local table (DIALOG_MIRROR_WATCHED_MAX
 * AoRs, each forgotten 3 announcement periods after it was last heard). A
 * node that (re)subscribes asks the others to announce at once
 * ("<prefix>dlgw-sync"). The call path reads no Redis: subs asks
 * dialog_mirror whether an AoR is watched elsewhere (the local table).
 *
 * Writing: a call of an AoR watched elsewhere is tracked by subs like a
 * locally watched one; each change is one fire-and-forget script call
 * (HSET of "<node>/<id>", the key's TTL raised to the record's lease,
 * expired fields dropped once the hash has more than 64, PUBLISH of the
 * key). A live call's lease is DIALOG_MIRROR_LEASE_MS, renewed every
 * DIALOG_MIRROR_ANNOUNCE_MS without a message; a terminated call's record
 * stays DIALOG_MIRROR_ENDED_MS so that readers see how it ended. Writes
 * waiting for Redis are capped (DIALOG_MIRROR_WRITES_MAX); more are dropped
 * and counted.
 *
 * Reading: for each AoR a dialog watcher here watches, the hash is read
 * (HGETALL) when the first watcher comes, at each change message naming it,
 * when the channel comes back and a little after the earliest lease held
 * (a dead node's calls end with their lease: terminated without event).
 * One read in flight per AoR (messages during it ask for one more after
 * it), at most DIALOG_MIRROR_INFLIGHT_MAX over all AoRs (the others
 * queued). What is read (dialog_nodes_parse: at most DIALOG_NODES_MAX calls
 * of other live nodes) is diffed against what the watchers were told
 * (dialog_nodes_diff) and goes as one partial NOTIFY
 * (subs_dialog_remote_changed); the full document lists the other nodes'
 * unterminated calls too. The first NOTIFY does not wait for the first
 * read. Redis down: the watchers keep what they saw but for the calls
 * whose lease passes (terminated); reads are retried (1 s doubling to
 * 30 s); the view shrinks to this node's. Loop thread only. */
#ifndef CASCADE_SUBS_DIALOG_MIRROR_H
#define CASCADE_SUBS_DIALOG_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "base/timer.h"
#include "redis/redis_config.h"

struct cluster;
struct subs;
struct dialog_mirror;

#define DIALOG_MIRROR_ANNOUNCE_MS 20000u  /* watched AoRs announced, live leases renewed */
#define DIALOG_MIRROR_LEASE_MS 60000u     /* a live call's record */
#define DIALOG_MIRROR_ENDED_MS 15000u     /* a terminated call's record */
#define DIALOG_MIRROR_WATCHED_MAX 65536u  /* AoRs watched elsewhere known here */
#define DIALOG_MIRROR_INFLIGHT_MAX 64u    /* reads in flight */
#define DIALOG_MIRROR_WRITES_MAX 4096u    /* writes and announcements waiting for Redis */

struct dialog_mirror_stats {
    bool subscribed;          /* the channel is up */
    uint32_t followed;        /* AoRs a dialog watcher here watches */
    uint32_t watched_elsewhere; /* AoRs known watched on another node */
    uint32_t remote;          /* other nodes' calls held for the watchers */
    uint64_t writes;          /* records written (changes and renewals) */
    uint64_t write_failures;  /* not sent (over the cap, refused) or failed */
    uint64_t announcements;   /* watched AoRs announced by this node */
    uint64_t messages;        /* channel messages read */
    uint64_t bad_messages;    /* ... that did not read */
    uint64_t reads;           /* HGETALLs answered */
    uint64_t read_failures;   /* failed, timed out, refused, or not an array */
    uint64_t coalesced;       /* messages folded into a read already asked for */
    uint64_t queued;          /* reads that waited for a slot */
    uint64_t changes;         /* call changes told to the watchers */
    uint64_t rejected;        /* records skipped as unreadable */
    uint64_t over_cap;        /* records or AoRs skipped over the caps */
};

/* How it talks to Redis: the cluster client's by default; a test gives its
 * own (dialog_mirror_new_io) and feeds the channel with
 * dialog_mirror_message / dialog_mirror_subscribed. */
struct redisReply;
typedef void (*dialog_mirror_cb)(void *arg, int status, const struct redisReply *reply);
struct dialog_mirror_io {
    void *arg;
    /* sends argv to the master of key's slot: 0 and cb exactly once later
     * (-ECANCELED when the io closes), or a negative errno without cb */
    int (*command)(void *arg, const char *key, int argc, const char **argv, const size_t *lens, dialog_mirror_cb cb,
                   void *cb_arg);
    bool (*alive)(void *arg, const char *node);  /* NULL: every node live */
    int64_t (*wall_ms)(void *arg);               /* NULL: clock_wall_ms */
};

/* Starts it for s's dialog watchers (subs_set_dialog_hooks) as node_id;
 * cluster: node liveness. NULL with *err (-EINVAL, -ENOMEM). */
struct dialog_mirror *dialog_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct subs *s,
                                        struct cluster *cluster, const struct redis_config *cfg, const char *node_id,
                                        int *err);
/* The same on io (no connection of its own, no channel: the caller feeds it). */
struct dialog_mirror *dialog_mirror_new_io(struct timer_service *timers, struct subs *s, const char *key_prefix,
                                           const char *node_id, const struct dialog_mirror_io *io);
/* A channel message, as the subscription hands it. */
void dialog_mirror_message(struct dialog_mirror *m, const char *msg, size_t len);
/* The channel is (again) subscribed. */
void dialog_mirror_subscribed(struct dialog_mirror *m);
/* Lets go of the hooks, cancels the reads, closes the connections (before
 * subs_free and cluster_free). */
void dialog_mirror_free(struct dialog_mirror *m);
void dialog_mirror_get_stats(const struct dialog_mirror *m, struct dialog_mirror_stats *out);
/* Adds "redis_dialog": {...} to a /stats object. */
void dialog_mirror_stats_json(const struct dialog_mirror *m, json_t *stats);

#endif
