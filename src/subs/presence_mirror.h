/* presence_mirror.h — presence publications shared between nodes through
 * Redis Cluster ([redis] mirror_presence, issue 16).
 *
 * A PUBLISH (RFC 3903) is answered by the node it reaches, which keeps the
 * publication (presence.c: entity tag, expiry, SIP-If-Match) as before;
 * this module copies it into the cluster so that every node's watchers of
 * that user see it. Subscription dialogs stay on the node that holds them:
 * only it can reach a TCP/WS watcher (a dead node's UDP ones are continued
 * by the survivor that reaps it: subs_takeover.h).
 *
 *   one hash per presentity   <prefix>pres:{<aor>}   ({aor}: one slot)
 *     field  "<node id>/<n>"  (n: the node's number for the publication,
 *                              kept across refreshes, unlike the entity tag)
 *     value  {"node":..,"exp":<wall ms>,"set":<wall ms>,"ver":<n>,"body":"<pidf>"}
 *   key TTL  the latest "exp" of its fields (PEXPIREAT), so a dead node's
 *            publications leave with their expiry
 *   channel  <prefix>pres-changes, message = the hash's key
 *
 * A change made here (set, modify, refresh, removal, expiry) is one script
 * call on the hash's master: HSET (or HDEL), fields whose record is expired
 * or unreadable deleted, PEXPIREAT, PUBLISH. A node follows only the AoRs
 * its own presence watchers watch (presence_watch): for each it reads the
 * hash (HGETALL) when the first watcher comes, at each announcement naming
 * it, and after each (re)subscription to the channel (pub/sub drops what
 * was published meanwhile); what it reads replaces its copy of the other
 * nodes' publications (presence_remote_set), which notifies the watchers
 * when something they see changed. Its own node's records are skipped (the
 * local state is the truth for them); an expired record is skipped, and a
 * kept one is dropped at its expiry even if no announcement comes (its node
 * died). Records that do not read are skipped, counted and logged.
 *
 * Loop thread only. */
#ifndef CASCADE_SUBS_PRESENCE_MIRROR_H
#define CASCADE_SUBS_PRESENCE_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/timer.h"
#include "redis/redis_config.h"
#include "subs/presence.h"
#include "subs/subs.h"

struct cluster;
struct redisReply;
struct presence_mirror;

#define PRESENCE_NODE_MAX 128          /* a node id with its NUL */
#define PRESENCE_RECORD_MAX (96 * 1024) /* bytes of one record (a 16 KiB PIDF escaped); longer: refused */
#define PRESENCE_MIRROR_PAIRS_MAX 256  /* fields of one hash looked at; the rest are skipped */

/* One record as read from Redis (stranger input, checked). */
struct presence_record {
    char id[PRESENCE_PUB_ID_MAX];      /* the field: "<node>/<digits>" */
    char node[PRESENCE_NODE_MAX];      /* printable, no '/', not empty */
    int64_t expires_wall_ms;           /* > 0 */
    int64_t set_wall_ms;               /* >= 0 */
    uint64_t version;
    char *body;                        /* a PIDF document pidf_validate accepts; NUL-terminated, owned */
    size_t len;
    char pid[PRESENCE_PID_SIZE];       /* "" or 1..32 lower-case hex digits */
};

/* The record of pub, published by node (field id "<node>/<pub->id>" in
 * field, cap fcap), as a malloc'd NUL-terminated string in *out. Its length,
 * or -ENOSPC / -ENOMEM / -EINVAL (a node id not usable). */
int presence_record_encode(const char *node, const struct presence_shared_pub *pub, char *field, size_t fcap,
                           char **out);
/* Reads one field and its value: 0 and out filled (free with
 * presence_record_clear), or -EINVAL with out cleared. Accepted: a JSON
 * object (no duplicate key) of at most PRESENCE_RECORD_MAX bytes with
 * node, exp > 0, set >= 0, ver >= 0 (integers) and body (a valid PIDF
 * document of at most PIDF_MAX_BODY bytes), whose field is exactly
 * "<node>/<1..20 digits>". */
int presence_record_decode(const char *field, size_t flen, const char *value, size_t vlen,
                           struct presence_record *out);
void presence_record_clear(struct presence_record *r);

/* An HGETALL answer ([field, value, ...]): decodes at most
 * PRESENCE_MIRROR_PAIRS_MAX pairs into out (at most cap), skipping
 * own_node's, those expired at now_wall_ms, and those that do not read
 * (counted in *bad). Returns how many are in out, or -EINVAL for a reply of
 * another shape (nothing in out). */
int presence_mirror_read_hash(const struct redisReply *r, const char *own_node, int64_t now_wall_ms,
                              struct presence_record *out, size_t cap, size_t *bad);

/* The answer of the take script (presence_take, mode 'r', 'm' or 'd'):
 * [0] when no unexpired record of the hash has the tag, else [1, the old
 * field, pid, set, ver, body] with set and ver decimal strings and body the
 * document for 'r' ("" otherwise). Stranger input: checked like a record. */
struct presence_take_answer {
    char old_id[PRESENCE_PUB_ID_MAX];  /* "<node>/<1..20 digits>" */
    char pid[PRESENCE_PID_SIZE];       /* 1..32 lower-case hex digits */
    int64_t set_wall_ms;               /* >= 0 */
    uint64_t version;
    const char *body;                  /* 'r': a PIDF document pidf_validate accepts (into the reply) */
    size_t len;
};
/* 1 found (out filled), 0 not found, -EINVAL for any other answer. */
int presence_take_reply_read(const struct redisReply *r, char mode, struct presence_take_answer *out);

/* A subscription's record (subs_record_hooks), written by each node into
 * <prefix>subs:{<aor>}: field "<node>/<its To tag>", value
 * {"node":..,"watcher":"<From URI>","event":"<package>","exp":<wall ms>}
 * (version 1, written by presence_sub_record_encode; the mirror writes
 * version 2, with the dialog's state for a survivor: subs_takeover.h, which
 * this reader reads too: the members it does not know are left alone). */
#define PRESENCE_SUB_TAG_MAX 128      /* a To tag with its NUL */
#define PRESENCE_SUB_WATCHER_MAX 512  /* a watcher URI with its NUL */
#define PRESENCE_SUB_EVENT_MAX 16     /* a package name with its NUL */

struct presence_sub_record {
    char id[PRESENCE_NODE_MAX + PRESENCE_SUB_TAG_MAX]; /* the field */
    char node[PRESENCE_NODE_MAX];
    char watcher[PRESENCE_SUB_WATCHER_MAX];            /* printable, no space */
    char event[PRESENCE_SUB_EVENT_MAX];                /* [a-z0-9.-] */
    int64_t expires_wall_ms;                           /* > 0 */
};
/* The record of r as node (field in field, fcap), NUL-terminated, malloc'd in
 * *out: its length, or -EINVAL / -ENOSPC / -ENOMEM. */
int presence_sub_record_encode(const char *node, const struct subs_record *r, char *field, size_t fcap, char **out);
/* Reads one field and value (stranger input): 0 and out filled, -EINVAL.
 * The field must be "<node>/<tag>" (tag: 1..127 printable, no space). */
int presence_sub_record_decode(const char *field, size_t flen, const char *value, size_t vlen,
                               struct presence_sub_record *out);

/* A change message: the AoR named by "<prefix>pres:{<aor>}" copied into aor
 * (cap bytes), 0; -EINVAL when it is not such a key or the AoR is empty,
 * too long, or holds a control character, a space, '{' or '}'. */
int presence_mirror_key_aor(const char *prefix, const char *msg, size_t len, char *aor, size_t cap);
/* A change message as the take script sends it too: the key, then
 * optionally one space and the field that left ("<node>/<digits>": that
 * node's publication was taken over or removed by another node). 0 with
 * aor and field (""  when none) filled, or -EINVAL. */
int presence_mirror_change_parse(const char *prefix, const char *msg, size_t len, char *aor, size_t cap, char *field,
                                 size_t fcap);

struct presence_mirror_stats {
    bool subscribed;          /* the change channel is up */
    uint32_t followed;        /* AoRs watched here, whose other publications are followed */
    uint32_t remote;          /* other nodes' publications held */
    uint64_t announcements;   /* change messages received */
    uint64_t fetches;         /* hashes read */
    uint64_t fetch_failures;  /* a read that failed (the next announcement or resubscription reads again) */
    uint64_t rejected;        /* records skipped: unreadable, over a cap */
    uint64_t writes_ok, writes_failed; /* this node's changes written into Redis */
    uint64_t lookup_failures; /* where a watched user is registered could not be read (cluster_route) */
    uint64_t takes;           /* PUBLISH naming a tag held elsewhere: looked for in Redis */
    uint64_t taken;           /* ... found and taken over (or removed) by this node */
    uint64_t take_failures;   /* ... Redis did not answer, or its answer did not read */
    uint64_t given_up;        /* this node's publications another node took over */
};

/* Starts sharing the publications of s's presence state (its mirror hooks
 * are taken; presence_max of cfg caps the other nodes' publications held)
 * and the records of s's subscriptions (subs_set_record_hooks: written into
 * <prefix>subs:{<aor>} with their expiry, every node's listed by
 * subs_records), as node_id. NULL with *err (-EINVAL: no usable seed or
 * node id, -ENOMEM). */
struct presence_mirror *presence_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct subs *s,
                                            const struct redis_config *cfg, const char *node_id, int *err);
/* With [redis] cluster_route: the state derived for a watched user with no
 * publication counts her registrations on the other nodes too. The mirror
 * asks c where each AoR watched here is registered (cluster_lookup) when
 * its first watcher comes, at each change message of its bindings and
 * when c's channel comes back (cluster_set_on_bindings_changed: the one
 * slot is taken), and tells p (presence_set_registered_elsewhere). NULL
 * lets go of c (before cluster_free). */
void presence_mirror_set_cluster(struct presence_mirror *m, struct cluster *c);
/* With cluster_route: this run's incarnation (location_mirror_incarnation).
 * The subscription records carry it and each AoR with one is added to
 * <prefix>node-subs:{<node>}:<inc>, the index a survivor walks when this
 * run is reaped (subs_takeover.h); the records held are written again. */
void presence_mirror_set_incarnation(struct presence_mirror *m, const char *inc);
/* Lets go of p's hooks (the other nodes' publications it holds stay until
 * they expire) and closes the connections. */
void presence_mirror_free(struct presence_mirror *m);
void presence_mirror_get_stats(const struct presence_mirror *m, struct presence_mirror_stats *out);

#endif
