/* subs.h — the notifier of SIP-specific event notification (RFC 6665) for
 * the packages cascade serves itself: reg (RFC 3680), a subscription to an
 * AoR's registrations; dialog (RFC 4235), the calls the proxy forwards for
 * an AoR (subs_on_call); message-summary (RFC 3842), the summaries a
 * configured voicemail source sends as out-of-dialog NOTIFYs to a user
 * (403 to any other sender; served only with [subscriptions]
 * voicemail_source set);
 * presence (RFC 3856), its state from PUBLISH (RFC 3903) or from the
 * registrations (presence.h); presence.winfo (RFC 3857/3858), a user's own
 * presentity's watchers (winfo.h).
 *
 * A SUBSCRIBE whose Request-URI names this node is taken here instead of
 * being proxied to phones: a package we do not serve gets 489 with
 * Allow-Events; otherwise the subscriber is authenticated like a REGISTER
 * (401, the AoR's own user only), its Expires is clamped to [subscriptions]
 * bounds (423 with Min-Expires below the minimum) and the subscription
 * dialog is made (our To tag, Contact, the Record-Route set). A NOTIFY with
 * the full state follows each accepted SUBSCRIBE and refresh, a partial one
 * each registrar change (reg with [redis] cluster_route: every live node's
 * bindings, reg_nodes.h, and dialog: every live node's calls,
 * dialog_mirror.h; the first NOTIFY of a watcher of an AoR nobody here
 * watched yet, and a fetch's, waits for their first read); Expires: 0 or the
 * expiry ends it with a terminated NOTIFY (reason=timeout); a presence
 * subscription whose watcher an allow-list change no longer allows ends with
 * one (reason=rejected, no body). A NOTIFY answered 481, or not answered at all,
 * ends the subscription silently (RFC 6665 §4.1.3). Subscriptions are
 * written to the store and reloaded at start-up (subs_load).
 *
 * Wiring (src/app), after the registrar and its location:
 *   s = subs_new(&deps); subs_load(s, wall_now);
 *   registrar_set_observer(reg, &cb) with subs_location_observer(s, &cb)
 *   subs_on_request() from dispatch, after the UA's dialogs and the GB roles;
 *   proxy_deps.on_call -> subs_on_call() (dialog);
 *   subs_free() before the UA and the location are freed.
 * Loop thread only. */
#ifndef CASCADE_SUBS_SUBS_H
#define CASCADE_SUBS_SUBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "registrar/digest_check.h"
#include "registrar/location.h"
#include "registrar/registrar.h"
#include "subs/reginfo.h"
#include "subs/subs_config.h"
#include "txn/txn.h"
#include "ua/ua.h"

struct store;
struct subs;

/* The packages served, as Allow-Events lists them. */
#define SUBS_ALLOW_EVENTS "reg, dialog, presence, presence.winfo" /* and message-summary with a voicemail source */

struct subs_deps {
    const struct subs_config *cfg;        /* copied */
    const struct sip_local *local;        /* domain, host, ports */
    bool require_auth;                    /* [auth] require_auth */
    const struct digest_checker *digest;  /* the node's digest checks (borrowed) */
    struct registrar *registrar;          /* locality, AoR keys, the location service */
    struct ua *ua;                        /* tags, NOTIFY transactions */
    struct timer_service *timers;         /* expiries */
    struct store *store;                  /* NULL: nothing survives a restart */
    /* what subs_load takes up is held unclaimed (no NOTIFY, no record
     * written) until subs_claimed says whether it is still this node's:
     * [redis] mirror_presence with cluster_route, where a survivor may have
     * adopted it while this node was down (subs_takeover.h) */
    bool claim_loaded;
};

/* NULL on allocation failure. Every pointer must outlive the notifier. */
struct subs *subs_new(const struct subs_deps *d);
/* Reloads the store's subscriptions (those expired at now_wall_ms are
 * deleted). Returns how many were loaded, or a negative errno. */
int subs_load(struct subs *s, int64_t now_wall_ms);
/* Frees every subscription without NOTIFY (they stay in the store, so a
 * restart takes them up again); pending NOTIFY transactions are detached. */
void subs_free(struct subs *s);

/* 1 when the request was ours (answered here): a SUBSCRIBE or PUBLISH to
 * this node, or a request inside one of our subscription dialogs. 0
 * otherwise. */
int subs_on_request(struct subs *s, struct txn *st, const struct transport_rx *rx);

/* The calls the proxy forwards, for the dialog package (the app adapts
 * the proxy's proxy_call_event to this): an initial INVITE being forked
 * (req); a response to it going upstream (req the INVITE, resp or NULL
 * when the proxy made it, the status sent; cancelled by a CANCEL,
 * timed_out by timer C); a BYE in a dialog (req). Only AoRs with a dialog
 * subscription at the INVITE are tracked. */
enum subs_call_what { SUBS_CALL_INVITE, SUBS_CALL_RESPONSE, SUBS_CALL_BYE };
void subs_on_call(struct subs *s, enum subs_call_what what, const struct sip_msg *req, const struct sip_msg *resp,
                  int status, bool cancelled, bool timed_out);

/* Fills cb so that registrar changes reach the subscriptions (cb->arg is s).
 * Only the binding_* members are set. */
void subs_location_observer(struct subs *s, struct location_callbacks *cb);

/* ---- subscription records, for the API and the other nodes ----
 * ([redis] mirror_presence writes them into the cluster, presence_mirror.h) */

struct subs_record {
    const char *aor;          /* the watched AoR key */
    const char *id;           /* this node's To tag of the dialog; in a list from the cluster "<node>/<tag>" */
    const char *watcher;      /* the subscriber's From URI */
    const char *event;        /* its package */
    const char *node;         /* the node holding it; NULL: this one */
    int64_t expires_wall_ms;
    int node_alive;           /* 1, 0 (stopped heartbeating), -1 not known */
    /* the dialog as a survivor continues it (subs_takeover.h); set in what
     * changed() gets, NULL / 0 in a list from the cluster */
    const char *call_id, *remote_tag; /* remote_tag: the subscriber's From tag */
    const char *target, *routes;      /* remote target, route set (comma-joined) */
    const char *transport, *remote;   /* how the SUBSCRIBE came: "udp", "ip:port" */
    const char *accept;               /* the content type of its NOTIFYs */
    uint32_t local_cseq, remote_cseq, version;
};
/* status 0 and n records (valid during the call), or a negative errno. */
typedef void (*subs_records_cb)(void *ctx, int status, const struct subs_record *recs, size_t n);

struct subs_record_hooks {
    void *arg;
    /* a subscription was made, taken up from the store or refreshed */
    void (*changed)(void *arg, const struct subs_record *r);
    /* it ended (id: its To tag) */
    void (*gone)(void *arg, const char *aor, const char *id);
    /* aor's subscriptions on every node: 1 and cb later, exactly once
     * unless cancel(handle) first; or a negative errno and no cb */
    int (*list)(void *arg, const char *aor, subs_records_cb cb, void *ctx, void **handle);
    void (*cancel)(void *arg, void *handle);
};
/* Sets the hooks (NULL: none) and calls changed() for every subscription held. */
void subs_set_record_hooks(struct subs *s, const struct subs_record_hooks *h);
/* aor's subscriptions: with a list hook, every node's (1: cb later, *handle
 * for subs_records_cancel; < 0: not asked); else this node's (0: cb was
 * called inside, at most SUBS_RECORDS_MAX). */
#define SUBS_RECORDS_MAX 256
int subs_records(struct subs *s, const char *aor, subs_records_cb cb, void *ctx, void **handle);
void subs_records_cancel(struct subs *s, void *handle);
/* Takes over another node's subscription (subs_takeover.h): held as one of
 * this node's (its store row, expiry, record), then a NOTIFY with the full
 * state and this node's Contact. 0; -EEXIST (held here), -ENOTSUP (package
 * not served here), -EHOSTUNREACH (not UDP: its flow died with its node),
 * -ETIME (expired at now_wall_ms), -EINVAL (a field over its cap), -ENOMEM;
 * -EDQUOT: over [subscriptions] max_total or max_per_subscriber here, the
 * subscriber told "terminated;reason=deactivated" in that dialog (RFC 6665
 * §4.2.2: it re-subscribes at once, admitted again like any new one) and
 * nothing held. */
struct store_subscription;
int subs_adopt(struct subs *s, const struct store_subscription *row, int64_t now_wall_ms);
/* The subscriptions taken up from the store and not yet claimed
 * (subs_deps.claim_loaded): fn for each (the record as changed() would
 * get it; valid during the call). Returns how many. */
size_t subs_unclaimed(struct subs *s, void (*fn)(void *arg, const struct subs_record *r), void *arg);
/* The verdict on an unclaimed subscription (call_id, tag: its dialog):
 * kept, it is held as any (its record written, a NOTIFY when its state
 * changed meanwhile); not kept (another node took it), its store row and
 * timer go, nothing sent. 0, or -ENOENT (not held unclaimed). */
int subs_claimed(struct subs *s, const char *call_id, const char *tag, bool kept);
/* Every subscription held here with a record a survivor could adopt (not
 * a fetch, over UDP: subs_adopt takes no other) put back to unclaimed, as
 * if just taken up from the store: this live node was taken for dead and a
 * survivor may have adopted some (subs_takeover_self_reaped). Nothing is
 * sent or written for them until subs_claimed. Returns how many were put
 * back (those already unclaimed not counted). */
size_t subs_unclaim_all(struct subs *s);
/* Every claimed subscription's record written again (the record hooks'
 * changed): those over a connection, whose records a survivor's walk of
 * this live node's run deleted without adopting them. */
void subs_records_rewrite(struct subs *s);

/* ---- the reg package across nodes ([redis] cluster_route, reg_nodes.h) ---- */

struct reg_remote;
struct subs_reg_hooks {
    void *arg;
    /* a reg subscription to aor was linked (on) or removed (off): once each */
    void (*watch)(void *arg, const char *aor, bool on);
    /* the other nodes' contacts of aor as the watchers were last told */
    size_t (*remote)(void *arg, const char *aor, const struct reg_remote **out);
    /* the first read of aor is in flight: a new watcher's NOTIFY waits for
     * subs_reg_remote_changed */
    bool (*pending)(void *arg, const char *aor);
};
/* Sets the hooks and calls watch(on) for every reg subscription held; NULL:
 * none (watchers still waiting get their NOTIFY now). */
void subs_set_reg_hooks(struct subs *s, const struct subs_reg_hooks *h);
/* The other nodes' contacts of aor changed (c[n], the hook's remote() the
 * new view already): one partial NOTIFY to each reg watcher of aor (n > 0),
 * the full state to each waiting for it. */
void subs_reg_remote_changed(struct subs *s, const char *aor, const struct reginfo_contact *c, size_t n);

/* ---- message-summary across nodes ([redis] mirror_mwi, mwi_mirror.h) ---- */

struct mwi_store;
struct subs_mwi_hooks {
    void *arg;
    /* a voicemail source's summary for aor was taken here (the store holds it) */
    void (*taken)(void *arg, const char *aor);
};
/* Sets the hooks (NULL: none). With hooks, message-summary is served even
 * with no voicemail source configured here: the summaries come from the
 * other nodes. */
void subs_set_mwi_hooks(struct subs *s, const struct subs_mwi_hooks *h);
/* The latest summary per user (the mirror changes it quietly, then calls
 * subs_mwi_changed). */
struct mwi_store *subs_mwi_store(struct subs *s);
/* aor's summary changed in the store: its message-summary watchers here
 * get the new state, once each. */
void subs_mwi_changed(struct subs *s, const char *aor);

/* ---- dialog across nodes ([redis] cluster_route, dialog_mirror.h) ---- */

struct dialog_info_entry;
struct dialog_remote;
struct subs_dialog_hooks {
    void *arg;
    /* a dialog subscription to aor was linked (on) or removed (off): once each */
    void (*watch)(void *arg, const char *aor, bool on);
    /* aor is watched on another node: its calls are tracked here too */
    bool (*shared)(void *arg, const char *aor);
    /* a tracked call of aor (dialog_table_aor) changed: e is about to be
     * notified here (and removed when terminated) */
    void (*changed)(void *arg, const struct dialog_info_entry *e);
    /* the other nodes' calls of aor as the watchers were last told */
    size_t (*remote)(void *arg, const char *aor, const struct dialog_remote **out);
    /* the first read of aor is in flight: a new watcher's NOTIFY (and a
     * fetch's) waits for subs_dialog_remote_changed */
    bool (*pending)(void *arg, const char *aor);
};
/* Sets the hooks and calls watch(on) for every dialog subscription held;
 * NULL: none. */
void subs_set_dialog_hooks(struct subs *s, const struct subs_dialog_hooks *h);
/* The other nodes' calls of aor changed (c[n], the hook's remote() the new
 * view already): one partial NOTIFY to each dialog watcher of aor with
 * those that this node does not track itself. */
void subs_dialog_remote_changed(struct subs *s, const char *aor, const struct dialog_info_entry *c, size_t n);
/* Calls fn for each call tracked here (any AoR) until it returns non-zero. */
void subs_dialog_foreach(struct subs *s, int (*fn)(void *arg, const struct dialog_info_entry *e), void *arg);

/* The presence state (publications, allow lists), for the API. */
struct presence *subs_presence(struct subs *s);

struct subs_stats {
    uint32_t active;              /* subscriptions held */
    uint64_t accepted;            /* initial SUBSCRIBEs answered 200 */
    uint64_t refused;             /* 4xx/5xx to SUBSCRIBE (489, 423, 403, 503 ...) */
    uint64_t notifies;            /* NOTIFYs sent */
    uint64_t ended_by_peer;       /* 481 or no answer to a NOTIFY */
    uint64_t ended_rejected;      /* presence: ended by an allow-list change (reason=rejected) */
};
void subs_get_stats(const struct subs *s, struct subs_stats *out);
/* Adds "subscriptions": {...} to a /stats object. */
void subs_stats_json(const struct subs *s, json_t *stats);

/* ---- pure helpers, for tests ---- */

/* The expiry to grant for a request asking `asked` seconds (-1: no
 * Expires): 0 for 0, default for -1, max for more than max; -1 when
 * 0 < asked < min (the caller answers 423). */
int64_t subs_clamp_expires(const struct subs_config *cfg, int64_t asked);
/* The package of an Event header value ("reg;id=1" -> "reg"): its length
 * in out (lower-cased), or -1 when empty or longer than cap - 1. */
int subs_event_package(str_t event, char *out, size_t cap);

#endif
