/* follow.h — following AoRs' records in Redis for the watchers here: the
 * machinery reg_nodes.c and dialog_mirror.c share.
 *
 * One follow per AoR watched (its watchers counted). One read in flight per
 * AoR; a read asked for during one is folded into one more read after it
 * (coalesced); at most inflight_max reads in flight over all AoRs, the others
 * wait their turn in a FIFO queue (queued). A failed or refused read is
 * retried with a backoff of 1 s doubling to 30 s; the records whose expiry
 * passed go meanwhile. A timer re-reads at the earliest expiry held.
 *
 * What is read and what the records are is the user's: it starts a read
 * (ops.read), hands its answer back (follower_answer), parses it into an
 * array of records (ops.parse; each holds an int64_t expiry, wall ms, at
 * exp_off) and tells the watchers what changed (ops.replaced). Loop thread. */
#ifndef CASCADE_SUBS_FOLLOW_H
#define CASCADE_SUBS_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/htable.h"
#include "base/timer.h"

struct redisReply;
struct follow;

/* ---- pure: reading other nodes' records (reg_nodes_parse, dialog_nodes_parse) ---- */

/* Whether node is live (cluster_node_hit answers 0). */
typedef bool (*follow_alive_fn)(void *arg, const char *node);

/* What a read skipped. */
struct follow_read_stats {
    uint32_t rejected;           /* a field or record that does not read */
    uint32_t own;                /* this node's (the local state is the truth) */
    uint32_t expired;            /* its expiry (lease) passed */
    uint32_t dead;               /* its node is not live here */
    uint32_t over_cap;           /* beyond the pairs looked at or the records kept */
};

/* The records of an HGETALL answer (field, value pairs) and what to do with
 * them. */
struct follow_records {
    size_t elem_size;            /* a record's size */
    size_t node_off;             /* offsetof its node id (a NUL-terminated char array) */
    size_t exp_off;              /* offsetof its int64_t expiry (wall ms) */
    size_t pairs_max;            /* pairs looked at; the rest skipped (over_cap) */
    size_t max;                  /* records kept at most (cap clamped to it) */
    void *tmp;                   /* one record, decoded into */
    /* A pair (two strings) into rec: 0, or -1 (rejected). */
    int (*decode)(const struct redisReply *field, const struct redisReply *value, void *rec);
    /* Whether rec is one of out's n already: folded into it, or counted in
     * st (NULL: none is). */
    bool (*dup)(void *out, size_t n, const void *rec, struct follow_read_stats *st);
};

/* The other live nodes' unexpired records in HGETALL answer r: how many
 * put in out (at most cap and how->max), or -1 when r is no array. A
 * record is skipped (counted in st, which may be NULL) when it does not
 * read (rejected), is self's (own), expired at now_wall, its node is not
 * alive (alive NULL: all are) or over the caps. */
int follow_parse_hash(const struct redisReply *r, const struct follow_records *how, const char *self,
                      int64_t now_wall, follow_alive_fn alive, void *arg, void *out, size_t cap,
                      struct follow_read_stats *st);

/* ---- the follower ---- */

/* One read asked for; the user's read callback gets it as its argument. */
struct follow_read {
    struct follower *fl;
    struct follow *f;            /* NULL: its follow went, the answer is dropped */
    void *handle;                /* the user's, for ops.cancel */
};

struct follow_ops {
    void *arg;
    /* Sends aor's read; its answer comes back with follower_answer(rd, ...)
     * (not from inside). rd->handle may be set for cancel. 0 or -errno. */
    int (*read)(void *arg, const char *aor, struct follow_read *rd);
    /* Cancels rd's read: its answer will not come. NULL: reads are not
     * cancelled, a dropped follow's answer is dropped when it comes (and
     * holds its slot until then). */
    void (*cancel)(void *arg, struct follow_read *rd);
    /* The answer's records into out (cap of them): their count, or -1 (a
     * failure: the records stay until their expiry, retried). status < 0: no
     * answer. Counts and logs are the user's. */
    int (*parse)(void *arg, const char *aor, int status, const struct redisReply *reply, void *out, size_t cap);
    /* A read not sent (rc < 0); it is retried. */
    void (*refused)(void *arg, const char *aor, int rc);
    /* aor's view went from old to cur (first: its first view, or no read
     * could be sent for it). The follow may go inside. */
    void (*replaced)(void *arg, const char *aor, const void *old, size_t n_old, const void *cur, size_t n, bool first);
    /* A follow was made for aor (before its first read); NULL: nothing. */
    void (*added)(void *arg, const char *aor);
    int64_t (*wall_ms)(void *arg);
};

struct follow_config {
    struct timer_service *timers;
    struct follow_ops ops;
    size_t elem_size;            /* a record's size */
    size_t exp_off;              /* offsetof its int64_t expiry (wall ms) */
    size_t cap;                  /* records kept per AoR */
    void *scratch;               /* cap records, the answers parsed into (loop thread, reused) */
    uint32_t inflight_max;       /* reads in flight over all AoRs */
    uint32_t slack_ms;           /* re-read this long after the earliest expiry */
    /* the user's counters, kept here */
    uint32_t *followed;          /* AoRs followed */
    uint32_t *held;              /* records held for them */
    uint64_t *coalesced;         /* reads folded into one asked for or queued */
    uint64_t *queued;            /* reads that waited for a slot */
};

struct follower {
    struct follow_config cfg;
    struct htable follows;
    uint32_t inflight;
    struct follow *whead, *wtail; /* waiting for a read slot, oldest first */
};

void follower_init(struct follower *fl, const struct follow_config *cfg);
/* Drops every follow (their reads cancelled, or their answers dropped). */
void follower_drop_all(struct follower *fl);
/* follower_drop_all, then the table freed. */
void follower_fini(struct follower *fl);
/* Cancels the reads, forgets the queue and empties the views (no diff, the
 * follows stay): before the watchers are released at the end. */
void follower_quiesce(struct follower *fl);

/* A watcher of aor came (on) or went. */
void follower_watch(struct follower *fl, const char *aor, bool on);
/* aor's records changed (a read, or one more after the one in flight);
 * NULL: all AoRs'. */
void follower_changed(struct follower *fl, const char *aor);
/* The answer to rd's read, from the user's callback (status -ECANCELED:
 * the reads are going, nothing more done). */
void follower_answer(struct follow_read *rd, int status, const struct redisReply *reply);
/* What aor's watchers were told: its records (count returned). */
size_t follower_have(const struct follower *fl, const char *aor, const void **out);
/* Whether aor's first read has not answered yet. */
bool follower_pending(const struct follower *fl, const char *aor);
/* fn(arg, aor) for each AoR followed. */
void follower_foreach(struct follower *fl, void (*fn)(void *arg, const char *aor), void *arg);

#endif
