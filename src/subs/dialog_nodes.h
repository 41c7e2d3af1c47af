/* dialog_nodes.h — the dialog package (RFC 4235) across nodes (issue 16):
 * the records a node shares of the calls it sees for a watched AoR, how a
 * watcher's node reads them back (stranger input, checked), and the diff
 * of two reads as the dialogs a partial NOTIFY carries.
 *
 * The storage this encoding is made for (the follower that writes and reads
 * it is not written yet, see docs/architecture.md):
 *
 *   one hash per AoR     <prefix>dlg:{<aor>}
 *     field  "<node id>/<dialog id>"   (dialog id: the 16 hex digits of
 *                                       dialog_info_entry.id)
 *     value  {"node":..,"exp":<wall ms>,"cid":<Call-ID>,"lt":<local tag>,
 *             "rt":<remote tag>,"dir":"initiator"|"recipient",
 *             "st":"trying"|...|"terminated","ev":<terminated event>,
 *             "code":<final status>,"lu":<local URI>,"ru":<remote URI>,
 *             "rd":<remote display name>}   (empty strings, ev and code 0
 *                                            left out)
 *   key TTL  the latest "exp" of its fields; a record's exp is a short
 *            lease renewed by its node while the call lasts, so a dead
 *            node's dialogs vanish with it; a terminated record is kept
 *            for a few seconds so that the readers see how it ended
 *   channel  <prefix>dlg-changes, message = the hash's key (read back with
 *            cluster_key_aor)
 *
 * A node writes an AoR's dialogs only while the AoR is watched somewhere
 * (a marker key <prefix>dlgw:{<aor>} with a TTL, renewed by the watchers'
 * nodes, and announced on the channel so that the other nodes cache it:
 * no Redis read on the call path). Pure: no I/O; any thread. */
#ifndef CASCADE_SUBS_DIALOG_NODES_H
#define CASCADE_SUBS_DIALOG_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "subs/dialog_info.h"
#include "subs/follow.h"

struct redisReply;

#define DIALOG_NODES_NODE_MAX 128       /* a node id, with its NUL */
#define DIALOG_NODES_FIELD_MAX (DIALOG_NODES_NODE_MAX + 17) /* "<node>/<16 hex>", with its NUL */
#define DIALOG_NODES_RECORD_MAX 4096    /* bytes of one record; longer: refused */
#define DIALOG_NODES_PAIRS_MAX 256      /* fields of one hash looked at; the rest skipped (over_cap) */
#define DIALOG_NODES_MAX 32             /* other nodes' dialogs kept per AoR; the rest skipped (over_cap) */

/* The messages on <prefix>dlg-changes (dialog_nodes_message). */
enum dialog_nodes_msg {
    DIALOG_NODES_MSG_CHANGED = 1,       /* "<prefix>dlg:{<aor>}": aor's hash was written */
    DIALOG_NODES_MSG_WATCHED,           /* "<prefix>dlgw:{<aor>} <node>": node has a watcher of aor */
    DIALOG_NODES_MSG_SYNC,              /* "<prefix>dlgw-sync": a node (re)subscribed, announce again */
};

/* One dialog of another node, as read. */
struct dialog_remote {
    struct dialog_info_entry e;
    char node[DIALOG_NODES_NODE_MAX];
    int64_t expires_wall_ms;
};

/* e's record as node, leased until expires_wall_ms: the field into field
 * (fcap) and the value into out (cap), both NUL-terminated. The value's
 * length, or -EINVAL (a node id that cannot be read back: empty, '/',
 * bytes at or below space, DEL, '{' '}', too long; an entry without id),
 * -ENOSPC (does not fit), -ENOMEM. */
int dialog_nodes_encode(const char *node, const struct dialog_info_entry *e, int64_t expires_wall_ms, char *field,
                        size_t fcap, char *out, size_t cap);
/* Reads one field and its value (any bytes): 0 and out filled, or -EINVAL.
 * Accepted: a field "<node>/<16 lower-case hex>", a JSON object (no
 * duplicate key) of at most DIALOG_NODES_RECORD_MAX bytes whose node is the
 * field's, exp an integer > 0, cid non-empty, st one of the five states,
 * dir initiator or recipient, ev (terminated only) one of cancelled,
 * rejected, timeout, local-bye, remote-bye, replaced, error, code absent
 * or 100..699, the strings within their dialog_info.h caps with no control
 * byte and no NUL, the URIs "sip:", "sips:" or "tel:" (any case) when not
 * empty. out->e.event points to a static string. */
int dialog_nodes_decode(const char *field, size_t flen, const char *value, size_t vlen, struct dialog_remote *out);

/* A message read from the channel (any bytes): its kind with aor (cap) and
 * node (ncap) filled as it names them ("" otherwise), or -EINVAL. The AoR
 * and node: non-empty, fitting, no byte at or below space, DEL, '{' '}'
 * (the node no '/' either); nothing else around. */
int dialog_nodes_message(const char *prefix, const char *msg, size_t len, char *aor, size_t cap, char *node,
                         size_t ncap);

/* The other live nodes' unexpired dialogs in an HGETALL answer: how many
 * were put in out (at most cap and DIALOG_NODES_MAX), or -1 when r is no
 * array. A dialog seen by two nodes (a call between them) is kept once,
 * the record with the later state. st (may be NULL) counts what was
 * skipped. */
int dialog_nodes_parse(const struct redisReply *r, const char *self, int64_t now_wall, follow_alive_fn alive,
                       void *arg, struct dialog_remote *out, size_t cap, struct follow_read_stats *st);

/* What the watchers must be told going from old to cur, as entries copied
 * into out (at most cap): a dialog new in cur, or in both with another
 * state, tag, code or event, as cur has it; one in old only and not yet
 * terminated, terminated (no event: it vanished, its node died or its
 * record's lease passed). Its count. */
size_t dialog_nodes_diff(const struct dialog_remote *old, size_t n_old, const struct dialog_remote *cur, size_t n_cur,
                         struct dialog_info_entry *out, size_t cap);

#endif
