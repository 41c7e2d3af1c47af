/* subs_takeover.h — a dead node's subscriptions continued by a survivor
 * ([redis] mirror_presence with cluster_route, issue 16).
 *
 * Each node writes a record of each subscription it serves as notifier
 * into <prefix>subs:{<aor>} (presence_mirror.h). Version 2 of the record
 * (this file) carries what another node needs to go on as the notifier of
 * that dialog (RFC 6665 §4.2, RFC 3261 §12): Call-ID, both tags, the
 * subscriber's remote target and route set, the CSeqs, the document
 * version, the package and the content type of its NOTIFYs, the expiry, how
 * the SUBSCRIBE came (transport, "ip:port"), and the writer's incarnation.
 * Every AoR a node writes a record for is added to its incarnation's index
 * <prefix>node-subs:{<node>}:<inc> (a set, a day's TTL renewed per write).
 *
 * When the node registry reaps a dead incarnation (cluster.h, node death),
 * the node that held the claim and finished the reap (exactly one) walks
 * that index (SSCAN) and runs one script per AoR that deletes and returns
 * every record naming the dead node and incarnation: the script is the
 * commit point, so each record is handed to one node at most. Each record
 * is then adopted (subs_adopt: this node's store row, expiry, record under
 * its node id and index, and a NOTIFY with the full state and this node's
 * Contact, so the subscriber's next refresh comes here) or dropped: a
 * record of version 1 (no dialog state), one whose subscriber came over a
 * connection (TCP/TLS/WS: that flow died with its node), an expired one,
 * or one that does not read. The index is deleted at the end of the walk.
 *
 * Walks resume: each live run registers itself in <prefix>subs-runs:{<id>}
 * (once the node registry lists it) and its id in <prefix>subs-nodes; a
 * walk is claimed there (its field "<until> <node>/<inc>", a lease of
 * SUBS_TAKEOVER_LEASE_MS renewed per batch) and the field goes when the walk
 * ends without failure. Every SUBS_TAKEOVER_CHECK_MS each node looks for
 * runs no longer listed (reaped) whose walk is unclaimed or whose claim
 * lapsed, and walks them: a claimer dying before or during its walk, or a
 * walk that failed, leaves the run to the next check.
 *
 * A node restarted under the same id takes its subscriptions up from its
 * store unclaimed (subs_deps.claim_loaded: no NOTIFY, no record) and claims
 * each here before anything is sent: its run's index first, then one
 * script on the AoR's hash that rewrites the record with the new run while
 * it is still this node's field, or answers that it is gone (adopted by a
 * survivor, or expired), when the local copy goes silently (subs_claimed).
 * The survivor's script takes only the old run's records: per record,
 * exactly one of the two has it.
 *
 * A live node taken for dead by a peer (a pause or a failover hid three
 * heartbeats; cluster.h) keeps its incarnation: the record's run says
 * nothing there. It puts every subscription a survivor could adopt (over
 * UDP) back to unclaimed at once (subs_takeover_self_reaped) and claims
 * them the same way once no walk of its run holds a claim (GATE_LUA): from
 * then on only this node touches its run's records, so a record still
 * there is its own, one gone was adopted. One over a connection is adopted
 * by nobody (its flow is here): it goes on, its record (which a walk
 * deleted) written again then.
 *
 * A survivor does not know how many NOTIFYs the dead node sent after it
 * last wrote the record (it writes it when the subscription is made or
 * refreshed, not per NOTIFY): it goes on from the record's CSeq and document
 * version plus SUBS_TAKEOVER_JUMP, so that its NOTIFYs are newer than any
 * the dead node sent unless it sent more than that since.
 *
 * Loop thread only. */
#ifndef CASCADE_SUBS_SUBS_TAKEOVER_H
#define CASCADE_SUBS_SUBS_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/timer.h"
#include "redis/redis_config.h"
#include "subs/subs.h"

struct redisReply;
struct store_subscription;
struct subs_takeover;

#define SUBS_TAKEOVER_VERSION 2
#define SUBS_TAKEOVER_JUMP 100000u          /* CSeq and version steps a survivor skips */
#define SUBS_TAKEOVER_RECORD_MAX 8192       /* bytes of one record; longer: refused */
#define SUBS_TAKEOVER_NODE_MAX 128          /* with its NUL */
#define SUBS_TAKEOVER_INC_MAX 48            /* with its NUL (CLUSTER_INC_MAX) */
#define SUBS_TAKEOVER_TAG_MAX 128
#define SUBS_TAKEOVER_CALL_ID_MAX 256
#define SUBS_TAKEOVER_URI_MAX 512
#define SUBS_TAKEOVER_ROUTES_MAX 1024
#define SUBS_TAKEOVER_EVENT_MAX 16
#define SUBS_TAKEOVER_ACCEPT_MAX 64
#define SUBS_TAKEOVER_REMOTE_MAX 64
#define SUBS_TAKEOVER_TP_MAX 8
#define SUBS_TAKEOVER_INDEX_TTL_MS (24u * 3600u * 1000u)
#define SUBS_TAKEOVER_PAIRS_MAX 256         /* records one script answer hands over at most */
#define SUBS_TAKEOVER_CHECK_MS 5000u        /* the look for runs left to walk, and claims retried */
#define SUBS_TAKEOVER_LEASE_MS 15000u       /* a walk's claim, renewed per batch */

/* A record as read from Redis (stranger input, checked). version 1: only
 * id, node, tag, watcher, event and expires_wall_ms are set. */
struct subs_takeover_record {
    int version;                                   /* 1 or 2 */
    char node[SUBS_TAKEOVER_NODE_MAX];             /* printable, no '/' */
    char tag[SUBS_TAKEOVER_TAG_MAX];               /* the field after "<node>/": our To tag */
    char watcher[SUBS_TAKEOVER_URI_MAX];
    char event[SUBS_TAKEOVER_EVENT_MAX];           /* [a-z0-9.-] */
    int64_t expires_wall_ms;                       /* > 0 */
    char inc[SUBS_TAKEOVER_INC_MAX];               /* "" when absent */
    char call_id[SUBS_TAKEOVER_CALL_ID_MAX];       /* v2: printable, no space */
    char remote_tag[SUBS_TAKEOVER_TAG_MAX];        /* v2: the subscriber's From tag */
    char target[SUBS_TAKEOVER_URI_MAX];            /* v2: no space */
    char routes[SUBS_TAKEOVER_ROUTES_MAX];         /* v2: printable (spaces too), may be empty */
    char accept[SUBS_TAKEOVER_ACCEPT_MAX];         /* v2: printable, may be empty */
    char transport[SUBS_TAKEOVER_TP_MAX];          /* v2: udp, tcp, tls, sctp, ws, wss */
    char remote[SUBS_TAKEOVER_REMOTE_MAX];         /* v2: "ip:port", no space */
    uint32_t local_cseq, remote_cseq, version_doc; /* v2: 0 .. 2^31 - 1 */
};

/* The version 2 record of r (its dialog fields set) as node, incarnation
 * inc ("" or NULL: none): field "<node>/<r->id>" into field (fcap), the
 * value malloc'd NUL-terminated in *out. Its length, or -EINVAL (a field
 * that would not read back), -ENOSPC, -ENOMEM. */
int subs_takeover_record_encode(const char *node, const char *inc, const struct subs_record *r, char *field,
                                size_t fcap, char **out);
/* Reads a field and its value, version 1 (no "v") or 2: 0 and out filled,
 * or -EINVAL (out cleared). */
int subs_takeover_record_decode(const char *field, size_t flen, const char *value, size_t vlen,
                                struct subs_takeover_record *out);

/* What a survivor does with a dead node's record. */
enum subs_takeover_verdict {
    SUBS_TAKEOVER_ADOPT = 0,   /* continue the dialog here */
    SUBS_TAKEOVER_OLD,         /* version 1: no dialog state to continue */
    SUBS_TAKEOVER_FLOW,        /* came over a connection on the dead node: unreachable from here */
    SUBS_TAKEOVER_EXPIRED,     /* at now */
};
enum subs_takeover_verdict subs_takeover_decide(const struct subs_takeover_record *r, int64_t now_wall_ms);
/* The store row for subs_adopt from an adoptable record of aor (pointers
 * into r; CSeq and version moved on by SUBS_TAKEOVER_JUMP). */
void subs_takeover_row(const struct subs_takeover_record *r, const char *aor, struct store_subscription *row);

/* The adoption script's answer: an array of field, value pairs (at most
 * SUBS_TAKEOVER_PAIRS_MAX looked at). fn is called for each pair (value
 * NULL when the pair is not two strings); returns the pairs seen, or
 * -EINVAL for another shape. */
int subs_takeover_reply_each(const struct redisReply *r,
                             void (*fn)(void *arg, const char *field, size_t flen, const char *value, size_t vlen),
                             void *arg);
/* "<prefix>node-subs:{<node>}:<inc>"; -ENOSPC when it does not fit. */
int subs_takeover_index_key(const char *prefix, const char *node, const char *inc, char *out, size_t cap);

struct subs_takeover_stats {
    uint64_t nodes;       /* dead incarnations whose subscriptions this node walked */
    uint64_t adopted;     /* subscriptions continued here */
    uint64_t dropped;     /* handed over but not adoptable (old record, a dead flow, expired, unreadable) */
    uint64_t refused_cap; /* handed over but over [subscriptions] max_total / max_per_subscriber: deactivated */
    uint64_t reclaimed;   /* this node's own, taken up from its store (or held at a self-reap), claimed for this run */
    uint64_t let_go;      /* the same, found taken by another: dropped */
    uint64_t self_reaped; /* times this live node was taken for dead: its subscriptions claimed again */
    uint64_t failures;    /* scans, claims or scripts that failed (retried by a later walk or check) */
};

/* How it talks to Redis: the cluster client by default; a test gives its
 * own (subs_takeover_new_io). */
typedef void (*subs_takeover_cb)(void *arg, int status, const struct redisReply *reply);
struct subs_takeover_io {
    void *arg;
    /* argv to the master of argv[key_index]'s slot: 0 and cb exactly once
     * later (-ECANCELED when the io closes), or a negative errno, no cb */
    int (*command)(void *arg, int key_index, int argc, const char **argv, const size_t *lens, subs_takeover_cb cb,
                   void *cb_arg);
    int64_t (*wall_ms)(void *arg); /* NULL: clock_wall_ms */
};

/* Its own Redis connections (cfg's seeds); node_id and inc this node's run
 * ("" inc: no registration, no claims). Starts the checks and the claims of
 * the subscriptions the store gave back. NULL with *err. */
struct subs_takeover *subs_takeover_new(uv_loop_t *loop, struct timer_service *timers, struct subs *s,
                                        const struct redis_config *cfg, const char *node_id, const char *inc,
                                        int *err);
/* The same on io, not started (subs_takeover_start). */
struct subs_takeover *subs_takeover_new_io(struct timer_service *timers, struct subs *s, const char *key_prefix,
                                           const char *node_id, const char *inc, const struct subs_takeover_io *io,
                                           int *err);
void subs_takeover_start(struct subs_takeover *t);
/* The cluster's hook (cluster_set_on_node_reaped): takes over what node id
 * (incarnation inc) left, once its walk is claimed. Walks run one at a
 * time; a few wait (more are found again by the checks). */
void subs_takeover_node_reaped(void *arg, const char *id, const char *inc);
/* The cluster's self-reap hook (cluster_set_on_reaped, through dispatch.c):
 * this live node was taken for dead and its run listed again, under the
 * same incarnation. Every subscription it holds over UDP is put back to
 * unclaimed (subs_unclaim_all: silent, a refresh answered 503), and once no
 * other node's walk of this run holds its claim (a walk stops at its next
 * renewal, the run being listed again) each is claimed as after a restart:
 * its record still there is still this node's (kept, indexed again: a
 * finished walk deleted the index), gone is adopted by a survivor (let go
 * silently); then too, every other one's record is written again
 * (subs_records_rewrite: one over a connection, which no survivor adopts,
 * goes on throughout). No-op without an incarnation. */
void subs_takeover_self_reaped(void *arg);
/* Before the io closes (its callbacks then see the takeover gone). */
void subs_takeover_free(struct subs_takeover *t);
void subs_takeover_get_stats(const struct subs_takeover *t, struct subs_takeover_stats *out);

#endif
