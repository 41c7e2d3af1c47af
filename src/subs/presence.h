/* presence.h — the presence package's state (RFC 3856, RFC 3903): the
 * documents users PUBLISH, each under an entity tag, soft state that
 * expires; the per-user allow lists of who may watch them; and the
 * document a watcher is sent (the composition of a user's publications,
 * or, with none, one derived from its registrations).
 *
 *   struct presence *p = presence_new(&deps);            deps.on_change gets the AoRs
 *   presence_publish(p, &req, &out);                       out.status 200/412/403/503...
 *   presence_document(p, "alice", "sip:alice@example.com", true, contact, &sb);
 *   presence_on_publish(p, st, rx, "alice");               a PUBLISH to sip:alice@us
 *
 * The notifier (subs.c) owns one, calls presence_on_publish for a PUBLISH
 * to one of our users and is told through on_change when a user's published
 * state changes (publish, modify, remove, expiry). Loop thread only. */
#ifndef CASCADE_SUBS_PRESENCE_H
#define CASCADE_SUBS_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "base/timer.h"
#include "registrar/digest_check.h"
#include "subs/subs_config.h"
#include "txn/txn.h"

struct presence;
struct registrar;
struct store;

#define PRESENCE_ETAG_SIZE 25           /* 24 characters (144 random bits, base64url) + NUL */
#define PRESENCE_DEFAULT_EXPIRES 3600   /* a PUBLISH with no Expires (RFC 3903 §4) */
#define PRESENCE_MAX_ALLOW 64           /* names in one allow list */
#define PRESENCE_MAX_NAME 64            /* a user name in an allow list */

struct presence_deps {
    const struct subs_config *cfg;        /* borrowed: presence_* keys, min/max_expires */
    struct timer_service *timers;         /* publication expiries */
    bool require_auth;                    /* [auth] require_auth: PUBLISH is challenged */
    const struct digest_checker *digest;  /* borrowed */
    struct store *store;                  /* allow lists survive restarts; NULL: they do not */
    struct registrar *registrar;          /* which users exist (the API's allow lists) */
    /* A user's published state changed (aor: its AoR key). */
    void (*on_change)(void *arg, const char *aor);
    /* aor's allow list was set (presence_allow_set, the API's, even when the
     * same) or changed by presence_allow_apply (another node's): the notifier
     * ends the subscriptions it no longer allows. NULL: nothing. */
    void (*on_allow_change)(void *arg, const char *aor);
    /* [redis] mirror_presence: the first read of aor's publications on the
     * other nodes answered, or failed at its deadline (presence_first_read_done;
     * aor NULL: every AoR's, the mirror went). The watchers whose first
     * NOTIFY waits for it (presence_first_read_pending) get it now. NULL:
     * nothing. */
    void (*on_first_read)(void *arg, const char *aor);
    void *arg;
};

/* NULL on allocation failure. */
struct presence *presence_new(const struct presence_deps *d);
/* Frees every publication without calling on_change. */
void presence_free(struct presence *p);

/* A PUBLISH, read (RFC 3903 §6). */
struct presence_publish {
    const char *aor;          /* the user published for (AoR key) */
    const char *if_match;     /* SIP-If-Match, NULL for an initial publication */
    int64_t expires;          /* granted: 0 removes (clamp before) */
    const char *body;         /* application/pidf+xml, or NULL/0 for a refresh */
    size_t len;
};

struct presence_outcome {
    int status;               /* 200, 400, 403, 412, 413, 500, 503 */
    const char *reason;       /* its reason phrase */
    const char *why;          /* for the log and a 400's Warning, or NULL */
    char etag[PRESENCE_ETAG_SIZE]; /* 200 with expires > 0: the new entity tag */
    uint32_t expires;         /* 200: seconds granted */
};

/* Applies one publication (RFC 3903 §6): initial (no if_match, a body),
 * refresh (if_match, no body), modify (if_match and a body) or remove
 * (if_match, expires 0). Each success but removal gets a new entity tag; an
 * unknown or expired if_match is 412. on_change is called before it
 * returns when the user's document changed. */
void presence_publish(struct presence *p, const struct presence_publish *req, struct presence_outcome *out);

/* Removes every publication of aor (its devices are gone); on_change once
 * when there was any. Returns how many went. */
size_t presence_drop_user(struct presence *p, const char *aor);

/* How many publications the user holds now. */
size_t presence_count(const struct presence *p, const char *aor);

/* The document a watcher of aor gets (entity: its URI), appended to out:
 * every tuple of the user's publications, newest first; with none, the
 * state derived from its registrations (registered: any binding, contact:
 * one bound contact or NULL). 0, or a negative errno. */
int presence_document(struct presence *p, const char *aor, const char *entity, bool registered,
                      const char *contact, sbuf_t *out);

/* Whether watcher (a user name of ours) may see aor's presence under
 * [subscriptions] presence_policy. */
bool presence_may_watch(const struct presence *p, const char *watcher, const char *aor);

/* "domain" or "allowlist": [subscriptions] presence_policy. */
const char *presence_policy_name(const struct presence *p);
/* Whether name is one of our users (for the API). */
bool presence_user_known(const struct presence *p, const char *name);

/* The allow list of aor: copies up to cap names into names (each
 * PRESENCE_MAX_NAME bytes); returns how many it holds. */
size_t presence_allow_get(const struct presence *p, const char *aor, char (*names)[PRESENCE_MAX_NAME], size_t cap);
/* Replaces aor's allow list (n == 0 clears it), writes it to the store,
 * calls deps.on_allow_change and tells the observer
 * (presence_set_allow_observer). 0, -EINVAL (a name empty, too long, with a
 * comma, or more than PRESENCE_MAX_ALLOW), -ENOMEM. */
int presence_allow_set(struct presence *p, const char *aor, const char *const *names, size_t n);

/* Reads the allow lists from the store. How many users have one, or a
 * negative errno. */
int presence_load(struct presence *p);

/* ---- allow lists shared between nodes ([redis] mirror_presence_allow,
 * subs/allow_mirror.h) ---- */
enum presence_allow_result {
    PRESENCE_ALLOW_UNCHANGED = 0,
    PRESENCE_ALLOW_ADDED,
    PRESENCE_ALLOW_CHANGED,
    PRESENCE_ALLOW_REMOVED,
    PRESENCE_ALLOW_REJECTED, /* a bad AoR or name: nothing changed */
    PRESENCE_ALLOW_NOMEM,
};
/* Another node's allow list of aor (n == 0: it has none): made this node's,
 * written to the store, the observer not told. SUBSCRIBE decisions follow
 * it at once and, when it changed, deps.on_allow_change is called (the
 * subscriptions it no longer allows end), as with presence_allow_set. */
enum presence_allow_result presence_allow_apply(struct presence *p, const char *aor, const char *const *names,
                                                size_t n);
/* cb is told the AoR of each list presence_allow_set sets (the API's;
 * not presence_load's nor presence_allow_apply's). NULL: none. */
void presence_set_allow_observer(struct presence *p, void (*cb)(void *arg, const char *aor), void *arg);
/* cb for every AoR with an allow list until it returns non-zero (no change
 * from cb); returns that value. */
int presence_allow_foreach(struct presence *p, int (*cb)(void *arg, const char *aor), void *arg);
/* How many AoRs have an allow list. */
size_t presence_allow_count(const struct presence *p);

/* ---- publications of other nodes ([redis] mirror_presence, presence_mirror.h) ----
 *
 * A publication as the nodes share it: id names it across nodes and does
 * not change on a refresh (the entity tag does); version changes only when
 * its document does; times are wall-clock ms. */
#define PRESENCE_PUB_ID_MAX 160 /* "<node id>/<n>" with its NUL */
#define PRESENCE_PID_SIZE 33    /* a publication's identity across nodes: 32 hex digits + NUL */
#define PRESENCE_TAG_HASH_SIZE 65 /* SHA-256 hex of "<aor>\n<entity tag>" + NUL */

struct presence_shared_pub {
    const char *id;             /* < PRESENCE_PUB_ID_MAX */
    const char *node;           /* the node that holds it */
    int64_t expires_wall_ms;    /* gone after this */
    int64_t set_wall_ms;        /* when its document was set: newest first */
    uint64_t version;           /* its document's version */
    const char *body;           /* a valid PIDF document (pidf_validate) */
    size_t len;
    /* The publication's identity, kept when another node takes it over
     * (unlike id), and the hash of its current entity tag
     * (presence_tag_hash): how another node finds it. NULL: none (a record
     * of an older node). */
    const char *pid;
    const char *tag;
};

/* The hash of an entity tag as the records hold it: SHA-256 of
 * "<aor>\n<etag>" in lower-case hex, so a tag names a publication of its
 * own AoR only and Redis holds no usable tag. */
void presence_tag_hash(const char *aor, const char *etag, char out[PRESENCE_TAG_HASH_SIZE]);

/* A PUBLISH whose SIP-If-Match this node does not hold, given to the
 * mirror's take hook: find the publication of aor whose tag hash is
 * tag in Redis and make it this node's (mode 'r' refresh, 'm' modify,
 * 'd' remove), in one script. */
struct presence_take {
    const char *aor;
    const char *tag;            /* presence_tag_hash of the presented entity tag */
    char mode;                  /* 'r', 'm', 'd' */
    /* 'r' and 'm': the publication as this node will hold it */
    const char *id;             /* this node's number for it */
    const char *new_tag;        /* the hash of its new entity tag */
    int64_t expires_wall_ms;
    /* 'm': its new document */
    int64_t set_wall_ms;
    uint64_t version;
    const char *body;
    size_t len;
};

/* What the take found (status 1): the publication's identity, when its
 * document was set and (mode 'r') the document; valid during the call. */
struct presence_take_found {
    const char *old_id;         /* the field it had: "<node>/<n>" */
    const char *pid;
    int64_t set_wall_ms;
    uint64_t version;
    const char *body;           /* mode 'r': a valid PIDF document */
    size_t len;
};

/* status: 1 found and taken (found filled), 0 no such publication (or an
 * expired one), a negative errno when Redis could not say. */
typedef void (*presence_take_cb)(void *ctx, int status, const struct presence_take_found *found);

/* What the mirror is told; each hook is called on the loop thread, its
 * arguments valid only during the call. NULL members: nothing. */
struct presence_mirror_hooks {
    void *arg;
    /* One of this node's publications was set, modified or refreshed (pub->id:
     * this node's number for it; the mirror puts its node id before it). */
    void (*published)(void *arg, const char *aor, const struct presence_shared_pub *pub);
    /* One of this node's publications went (removed, expired, its user's
     * last binding gone); id as published gave it. */
    void (*withdrawn)(void *arg, const char *aor, const char *id);
    /* aor's first presence watcher on this node came (on), or its last
     * went (off): the mirror follows the other nodes' publications of the
     * AoRs watched here only. */
    void (*watch)(void *arg, const char *aor, bool on);
    /* A PUBLISH names an entity tag this node does not hold: look for it
     * among every node's publications (struct presence_take). 0 and cb is
     * called later (exactly once, -ECANCELED at shutdown), or a negative
     * errno (not asked). NULL: 412 as without the mirror. */
    int (*take)(void *arg, const struct presence_take *req, presence_take_cb cb, void *ctx);
    /* Whether the first read of aor's other publications (asked by watch)
     * has not answered yet: a new watcher's first NOTIFY waits for it. The
     * mirror calls presence_first_read_done when it answers, fails or
     * reaches its deadline. NULL: no watcher waits. */
    bool (*pending)(void *arg, const char *aor);
};

/* Sets the hooks (NULL: none) and calls watch(on) for every AoR watched
 * now. remote_max caps the other nodes' publications held. NULL also
 * releases the watchers waiting for a first read (deps.on_first_read with
 * no AoR): they get this node's view. */
void presence_set_mirror(struct presence *p, const struct presence_mirror_hooks *h, size_t remote_max);

/* Whether a new watcher of aor waits for the first read of the other nodes'
 * publications (the mirror's pending hook; false without the mirror). */
bool presence_first_read_pending(const struct presence *p, const char *aor);
/* Whether the mirror follows the other nodes' publications (a fetch of an
 * AoR nobody watches here reads them first). */
bool presence_mirrored(const struct presence *p);
/* The mirror's first read of aor answered (after presence_remote_set), or
 * failed, or its deadline passed: deps.on_first_read. */
void presence_first_read_done(struct presence *p, const char *aor);

/* Replaces the other nodes' publications of aor with pubs (already read and
 * checked; ones expired at now_wall_ms, beyond the per-user or the total cap
 * are skipped and counted in the return value). When what watchers see
 * changed (a publication came or went, a document's bytes differ),
 * on_change is called once: a refresh, or the same document set again,
 * notifies nobody. Each is dropped at its expiry (on_change). */
size_t presence_remote_set(struct presence *p, const char *aor, const struct presence_shared_pub *pubs, size_t n,
                           int64_t now_wall_ms);
/* Forgets the other nodes' publications of aor (nobody here watches it any
 * more); no on_change. */
void presence_remote_clear(struct presence *p, const char *aor);
/* How many of the other nodes' publications are held (all users). */
size_t presence_remote_count(const struct presence *p);

/* Another node took over (or removed) this node's publication <id> of aor
 * (the mirror read it in a change message): it is no longer this node's.
 * Nothing is written into Redis; if aor is watched here its document is
 * kept as another node's publication until the next read says what became
 * of it (presence_remote_set matches it by its pid). Returns whether one
 * was held. */
bool presence_taken(struct presence *p, const char *aor, const char *id);

/* Applies a PUBLISH with SIP-If-Match that may name another node's
 * publication: as presence_publish when the tag is held here (done is
 * called before it returns); otherwise, with the mirror's take hook, the
 * publication is looked for in Redis and done is called when that is
 * known (200 and the new tag: it is this node's now; 412: nowhere; 503:
 * Redis did not answer). out is valid during done only. */
typedef void (*presence_publish_done)(void *ctx, const struct presence_outcome *out);
void presence_publish_any(struct presence *p, const struct presence_publish *req, presence_publish_done done,
                          void *ctx);

/* Whether aor, watched here, is registered on another node (the mirror
 * asks the cluster's lookups, [redis] cluster_route): its state derived
 * with no publication is then open (no contact). When that derived state
 * changes, on_change. Forgotten with the AoR's last watcher. */
void presence_set_registered_elsewhere(struct presence *p, const char *aor, bool yes);

/* A presence watcher of aor was added (on) or removed (off) here; the
 * notifier calls it for each presence subscription it links and unlinks. */
void presence_watch(struct presence *p, const char *aor, bool on);

/* Answers a PUBLISH for aor (a user of ours; the caller checked locality):
 * 489 for an event other than presence, digest like REGISTER, 423 under
 * min_expires, 415 for a body that is not application/pidf+xml, then
 * presence_publish. Always answers. */
void presence_on_publish(struct presence *p, struct txn *st, const struct transport_rx *rx, const char *aor);

#endif
