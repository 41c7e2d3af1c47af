/* dialog_info.h — the dialog event package (RFC 4235): the calls the proxy
 * handles for a watched user, kept per AoR, and their document
 * (application/dialog-info+xml).
 *
 * A call is one entry per AoR that takes part in it, keyed by (Call-ID, the
 * caller's From tag): forks answering with different To tags share it (the
 * latest tag wins), which is what a busy-lamp field needs. States follow
 * RFC 4235 §3.7.1:
 *
 *   INVITE seen      -> trying
 *   1xx without tag  -> proceeding      1xx with a To tag -> early
 *   2xx              -> confirmed
 *   3xx-6xx          -> terminated (cancelled | timeout | rejected, code)
 *   BYE              -> terminated (local-bye | remote-bye)
 *
 * The table is bounded per AoR (dialog_table_new); a terminated entry is
 * removed by its owner once the change has been notified. Pure: no timers,
 * no I/O; loop thread (or any single thread). */
#ifndef CASCADE_SUBS_DIALOG_INFO_H
#define CASCADE_SUBS_DIALOG_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "base/str.h"

#define DIALOG_INFO_CONTENT_TYPE "application/dialog-info+xml"
#define DIALOG_INFO_MAX_CALL_ID 256
#define DIALOG_INFO_MAX_TAG 128
#define DIALOG_INFO_MAX_URI 256
#define DIALOG_INFO_MAX_DISPLAY 64
#define DIALOG_INFO_MAX_AOR 256

enum dialog_state { DIALOG_TRYING, DIALOG_PROCEEDING, DIALOG_EARLY, DIALOG_CONFIRMED, DIALOG_TERMINATED };

struct dialog_info_entry {
    char id[17];                               /* stable: a hash of Call-ID and the caller's tag */
    char call_id[DIALOG_INFO_MAX_CALL_ID];
    char local_tag[DIALOG_INFO_MAX_TAG];       /* the watched user's side ("" not known yet) */
    char remote_tag[DIALOG_INFO_MAX_TAG];
    bool initiator;                            /* the watched user placed the call */
    enum dialog_state state;
    const char *event;                         /* terminated only: cancelled, rejected, timeout,
                                                  local-bye, remote-bye; else NULL */
    int code;                                  /* the final status that ended it; 0: none */
    char local_uri[DIALOG_INFO_MAX_URI];       /* the watched user's identity */
    char remote_uri[DIALOG_INFO_MAX_URI];      /* the other party's */
    char remote_display[DIALOG_INFO_MAX_DISPLAY];
};

/* The state's name as the document writes it. */
const char *dialog_state_name(enum dialog_state s);

/* Appends the whole document to out: full (every entry in d) or partial
 * (the changed ones). entity: the watched AoR's URI. 0, or -ENOMEM. */
int dialog_info_build(sbuf_t *out, uint32_t version, bool full, const char *entity,
                      const struct dialog_info_entry *const *d, size_t n);

/* A response to the call's INVITE went upstream: moves e (never backwards;
 * nothing after terminated). to_tag: the response's To tag. cancelled: the
 * caller CANCELled; timed_out: the proxy gave up (timer C). true when the
 * state changed. */
bool dialog_info_on_response(struct dialog_info_entry *e, int status, str_t to_tag, bool cancelled, bool timed_out);
/* A BYE in the call's dialog from the side whose tag is from_tag. true when
 * the state changed. */
bool dialog_info_on_bye(struct dialog_info_entry *e, str_t from_tag);

/* ---- the per-AoR table ---- */

struct dialog_table;

/* per_aor_cap: calls tracked per AoR (>= 1). NULL on allocation failure. */
struct dialog_table *dialog_table_new(unsigned per_aor_cap);
void dialog_table_free(struct dialog_table *t);

/* aor's entry for the call (call_id, caller_tag), or NULL. */
struct dialog_info_entry *dialog_table_find(struct dialog_table *t, const char *aor, str_t call_id, str_t caller_tag);
/* A new entry in state trying (initiator, tags and ids filled from the
 * arguments, the rest for the caller to fill); NULL when aor is at the
 * cap, a field is too long, or memory ran out. */
struct dialog_info_entry *dialog_table_add(struct dialog_table *t, const char *aor, str_t call_id, str_t caller_tag,
                                           bool initiator);
/* Up to max (at most 64) of aor's entries, oldest first; returns how many. */
size_t dialog_table_list(struct dialog_table *t, const char *aor, const struct dialog_info_entry **out, size_t max);
/* Every entry with call_id, of any AoR, up to max; returns how many. */
size_t dialog_table_by_call(struct dialog_table *t, str_t call_id, struct dialog_info_entry **out, size_t max);
/* The AoR key an entry belongs to. */
const char *dialog_table_aor(const struct dialog_info_entry *e);
/* Unlinks and frees e. */
void dialog_table_remove(struct dialog_table *t, struct dialog_info_entry *e);
/* Calls fn for every entry until it returns non-zero. */
void dialog_table_foreach(struct dialog_table *t, int (*fn)(void *arg, const struct dialog_info_entry *e), void *arg);
/* Entries held, over every AoR. */
uint32_t dialog_table_count(const struct dialog_table *t);

#endif
