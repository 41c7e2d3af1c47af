/* mwi_mirror.h — the message-summary package across nodes ([redis]
 * mirror_mwi, issue 16): the latest summary per user, as a voicemail source
 * last sent it to any node, shared through one Redis Cluster hash on the
 * hash_mirror engine (redis/hash_mirror.h), each node keeping its own copy
 * (the notifier's mwi store) and notifying its own watchers.
 *
 *   <prefix>mwi            field = the AoR, value = "<stamp>\n<body>"
 *   <prefix>mwi-changes    announcements (the AoR)
 *
 * stamp: the wall-clock milliseconds when a node took the summary from a
 * voicemail source, and never below the stamp of the summary it held then
 * (subs.c). Order: the summary with the larger stamp wins; Redis takes a
 * write only when its stamp is not below the held one (a stamped
 * hash_mirror), and a node applies a record only when its stamp is not
 * below the one it holds. An equal stamp with another body is applied (the
 * hash's value is the truth); the same stamp and body change nothing.
 *
 * A node that takes a summary changes its table and notifies its watchers
 * at once, then writes and announces it; every node (the writer too)
 * reads the record after the announcement: the writer finds what it holds
 * (nothing happens, no echo), the others apply it quietly and notify their
 * own watchers of that AoR once, as for a local change. Nothing is sent
 * back into Redis for an applied record.
 *
 * A load (at each (re)subscription) applies what the hash holds by the same
 * order and keeps the summaries it lacks (nothing deletes a field: such a
 * summary was taken here while Redis could not be written).
 *
 * Caps: a record is at most MWI_MIRROR_RECORD_MAX bytes, its body passes
 * mwi_validate like a voicemail source's; the table holds at most
 * [subscriptions] max_total users (a new AoR beyond is refused, counted). */
#ifndef CASCADE_SUBS_MWI_MIRROR_H
#define CASCADE_SUBS_MWI_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "redis/hash_mirror.h"
#include "subs/mwi.h"

struct redis_config;
struct subs;
struct timer_service;

#define MWI_MIRROR_STAMP_DIGITS 15
#define MWI_MIRROR_RECORD_MAX (MWI_MAX_BODY + MWI_MIRROR_STAMP_DIGITS + 1)

/* ---- records (stranger input when read) ---- */

/* "<stamp>\n<body>" into out (cap bytes, NUL-terminated): its length, or
 * -EINVAL (a negative stamp, a body too long), -ENOSPC. */
int mwi_record_encode(int64_t stamp, const char *body, size_t len, char *out, size_t cap);
/* Splits a record read from Redis: 0 with *stamp and body[0..*blen) (inside
 * buf, passing mwi_validate), or -EINVAL. */
int mwi_record_decode(const char *buf, size_t len, int64_t *stamp, const char **body, size_t *blen);
/* An AoR that may be a field: 1..255 printable bytes, no space, no '#'. */
bool mwi_mirror_name_ok(const char *s, size_t len);

enum mwi_apply_result {
    MWI_APPLY_UNCHANGED = 0,
    MWI_APPLY_ADDED,
    MWI_APPLY_CHANGED,
    MWI_APPLY_REMOVED,
    MWI_APPLY_OLDER,    /* stamped below the summary held: not applied */
    MWI_APPLY_REJECTED, /* a bad name or record, or the table full */
};
/* Applies Redis's record for aor (NUL-terminated) to st by the order above;
 * rec NULL: none (delete). The caller notifies the watchers of a change. */
enum mwi_apply_result mwi_mirror_apply(struct mwi_store *st, const char *aor, const char *rec, size_t len);

/* ---- the mirror ---- */

struct mwi_mirror;

struct mwi_mirror_stats {
    /* The engine's; applied: summaries changed here from Redis (their
     * watchers notified); rejected: records or names refused (bad, or the
     * table full). */
    struct hash_mirror_stats mirror;
    uint64_t older;      /* records stamped below the summary held: not applied */
    uint64_t not_shared; /* summaries taken here whose AoR cannot be a field */
    uint32_t summaries;  /* the table now */
};

/* Starts it on s's store (its mwi hooks are taken). NULL with *err. */
struct mwi_mirror *mwi_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct subs *s,
                                  const struct redis_config *cfg, uint32_t max_users, int *err);
void mwi_mirror_free(struct mwi_mirror *m);
void mwi_mirror_get_stats(const struct mwi_mirror *m, struct mwi_mirror_stats *out);

#endif
