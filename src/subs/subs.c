/* subs.c — the RFC 6665 notifier and its packages: reg (RFC 3680) here,
 * dialog (RFC 4235, dialog_info.c: the proxy's calls) and message-summary
 * (RFC 3842, mwi.c: relayed from a voicemail source) through the hooks at
 * the end of this file.
 *
 * A subscription, as the notifier holds it:
 *
 *   SUBSCRIBE (no To tag) --200 + full NOTIFY--> active
 *   active --SUBSCRIBE refresh--> active (new expiry, full NOTIFY)
 *   active --registrar change--> active (partial NOTIFY, version + 1)
 *   active --Expires: 0 | expiry--> terminated NOTIFY (reason=timeout), gone
 *   active --481 / no answer to a NOTIFY--> gone (no NOTIFY)
 *   presence active --its allow list no longer allows the watcher-->
 *       terminated NOTIFY (reason=rejected, no body), gone
 *
 *   A fetch (SUBSCRIBE with Expires: 0): 200 and one terminated NOTIFY with
 *   the state; reg, dialog and presence across nodes for an AoR with no
 *   view here: linked (not stored) until the other nodes' state is read,
 *   then that NOTIFY and gone.
 *
 *   Across nodes, a new watcher (or one taken over from a dead node) of an
 *   AoR whose other nodes' state is not read here yet gets its first NOTIFY
 *   when that first read answers (or fails at its deadline: this node's
 *   view), not this node's view at once followed by the rest.
 *
 * One NOTIFY is in flight per subscription at a time, so they cannot pass
 * each other on the way: a change while one is outstanding marks the
 * subscription dirty, and the answer to it sends the full state then.
 *
 * Each is a dialog keyed by (Call-ID, our tag), indexed a second time by AoR
 * so that a registrar change finds its watchers, with one expiry timer, and
 * a row in the store written at each change of what the row holds (the
 * NOTIFY CSeq and the document version included: after a restart both go on
 * increasing). NOTIFYs are UAC transactions of the UA layer; their outcome
 * is matched back by key, so a subscription that went away in between is
 * simply not found. */
#include "subs/subs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/htable.h"
#include "base/log.h"
#include "base/str.h"
#include "base/timer.h"
#include "sip/proto.h"
#include "registrar/users.h"
#include "sip/local.h"
#include "store/store.h"
#include "subs/dialog_info.h"
#include "subs/dialog_nodes.h"
#include "subs/mwi.h"
#include "subs/pidf.h"
#include "subs/presence.h"
#include "subs/winfo.h"
#include "subs/reg_nodes.h"
#include "subs/reginfo.h"


#define SUBS_MAX_CALL_ID 256
#define SUBS_MAX_TAG 128
#define SUBS_MAX_URI 512
#define SUBS_MAX_ROUTES_TEXT 1024
#define SUBS_MAX_CONTACTS 64       /* contacts in one full document */

/* One subscription. Its variable strings live in one allocation after the
 * struct (sub_new), each as long as it is, within the SUBS_MAX_* caps: a
 * subscription costs its struct (~400 bytes) and what its peer wrote, not
 * the caps. The remote target may change on a refresh: a longer one than
 * the room it had goes to an allocation of its own (target_heap). */
struct subs_sub {
    struct hnode by_key, by_aor;
    struct timer_node expiry;
    struct subs *owner;
    const char *call_id;               /* < SUBS_MAX_CALL_ID */
    const char *remote_tag;            /* < SUBS_MAX_TAG */
    const char *aor;                   /* < LOCATION_MAX_AOR */
    const char *subscriber;            /* the subscriber's From URI, < SUBS_MAX_URI */
    char *target;                      /* remote target (Contact URI), < SUBS_MAX_URI */
    const char *routes;                /* route set, comma-joined, in order, < SUBS_MAX_ROUTES_TEXT */
    const char *who;                   /* the user its digest authenticated ("": none), < SUBS_MAX_TAG */
    uint16_t target_room;              /* bytes at target */
    bool target_heap;                  /* target is an allocation of its own */
    char local_tag[UA_TAG_SIZE];
    char event[16];
    char remote[TRANSPORT_ADDR_TEXT];
    struct transport_dest dest;        /* where NOTIFYs go when there is no route set */
    bool dest_ok;
    bool in_flight;                    /* a NOTIFY awaits its final answer */
    bool dirty;                        /* state changed meanwhile: a full NOTIFY follows it */
    bool awaiting_remote;              /* reg, dialog, presence: its first NOTIFY waits for the other nodes' state */
    bool fetch;                        /* a fetch (Expires: 0) waiting for that read: not stored, no record */
    bool unclaimed;                    /* taken up from the store, not yet claimed (subs_claimed): silent */
    int64_t expires_wall_ms;
    uint32_t local_cseq, remote_cseq, version;
    char text[];
};

/* The strings of a new subscription, checked against their caps. */
struct sub_text {
    str_t call_id, remote_tag, aor, subscriber, target, routes, who;
};

/* A zeroed subscription holding v's strings; NULL when one is over its cap
 * (*too_long set) or on allocation failure. */
static struct subs_sub *sub_new(const struct sub_text *v, bool *too_long)
{
    const str_t f[] = {v->call_id, v->remote_tag, v->aor, v->subscriber, v->target, v->routes, v->who};
    static const size_t cap[] = {SUBS_MAX_CALL_ID, SUBS_MAX_TAG, LOCATION_MAX_AOR, SUBS_MAX_URI, SUBS_MAX_URI,
                                 SUBS_MAX_ROUTES_TEXT, SUBS_MAX_TAG};
    size_t need = 0;
    *too_long = false;
    for (size_t i = 0; i < 7; i++) {
        if (f[i].len >= cap[i] || (f[i].len && memchr(f[i].s, '\0', f[i].len))) {
            *too_long = true;
            return NULL;
        }
        need += f[i].len + 1;
    }
    struct subs_sub *sub = calloc(1, sizeof(*sub) + need);
    if (!sub) return NULL;
    char *p = sub->text;
    const char **dst[] = {&sub->call_id, &sub->remote_tag, &sub->aor, &sub->subscriber, (const char **)&sub->target,
                          &sub->routes, &sub->who};
    for (size_t i = 0; i < 7; i++) {
        if (f[i].len) memcpy(p, f[i].s, f[i].len);
        p[f[i].len] = '\0';
        *dst[i] = p;
        p += f[i].len + 1;
    }
    sub->target_room = (uint16_t)(v->target.len + 1);
    timer_node_init(&sub->expiry);
    return sub;
}

static void sub_free(struct subs_sub *sub)
{
    if (sub->target_heap) free(sub->target);
    free(sub);
}

/* A refresh's remote target (RFC 6665 §4.1.2.1: it may change). False on
 * allocation failure (the old one stays). */
static bool sub_set_target(struct subs_sub *sub, const char *target)
{
    size_t n = strlen(target);
    if (n < sub->target_room) {
        memcpy(sub->target, target, n + 1);
        return true;
    }
    char *t = malloc(n + 1);
    if (!t) return false;
    memcpy(t, target, n + 1);
    if (sub->target_heap) free(sub->target);
    sub->target = t;
    sub->target_room = (uint16_t)(n + 1);
    sub->target_heap = true;
    return true;
}

/* One NOTIFY in flight: what its answer needs to find the subscription. */
struct subs_pending {
    struct subs_pending *next, **pprev;
    struct subs *owner;
    struct ua_uac *h;
    bool final;                        /* the terminated NOTIFY: nothing to end on failure */
    char call_id[SUBS_MAX_CALL_ID];
    char local_tag[UA_TAG_SIZE];
};

/* How many subscriptions one subscriber URI holds ([subscriptions]
 * max_per_subscriber), kept as they come and go so that a new SUBSCRIBE
 * costs one lookup, not a walk over every subscription. Freed at zero. */
struct subs_count {
    struct hnode node;
    uint32_t n;
    char subscriber[];
};

struct subs {
    struct subs_config cfg;
    const struct sip_local *local;
    bool require_auth;
    const struct digest_checker *digest;
    struct registrar *registrar;
    struct ua *ua;
    struct timer_service *timers;
    struct store *store;
    bool claim_loaded;                 /* subs_deps.claim_loaded */
    struct presence *presence;         /* the presence package's publications and allow lists */
    struct htable by_key, by_aor;
    struct htable by_subscriber;       /* struct subs_count */
    struct subs_pending *pending;
    struct subs_stats stats;
    sbuf_t sb;
    struct dialog_table *dialogs;      /* dialog: the calls of watched AoRs */
    struct mwi_store *mwi;             /* message-summary: the latest summary per AoR */
    struct mwi_source sources[MWI_MAX_SOURCES];
    size_t nsources;                   /* 0: message-summary is not served */
    struct subs_record_hooks rec;      /* subs_set_record_hooks */
    struct subs_reg_hooks reg;         /* subs_set_reg_hooks */
    struct subs_mwi_hooks mwi_hooks;   /* subs_set_mwi_hooks */
    struct subs_dialog_hooks dlg;      /* subs_set_dialog_hooks */
};

/* message-summary is served with a source here, or summaries from other nodes. */
static bool mwi_served(const struct subs *s) { return s->nsources || s->mwi_hooks.taken; }

/* The Allow-Events line of a 489: message-summary only with a source. */
static const char *allow_events(const struct subs *s)
{
    return mwi_served(s) ? "Allow-Events: " SUBS_ALLOW_EVENTS ", message-summary" : "Allow-Events: " SUBS_ALLOW_EVENTS;
}

static bool package_served(const struct subs *s, const char *pkg)
{
    return strcmp(pkg, "reg") == 0 || strcmp(pkg, "dialog") == 0 || strcmp(pkg, "presence") == 0 ||
           strcmp(pkg, "presence.winfo") == 0 ||
           (mwi_served(s) && strcmp(pkg, "message-summary") == 0);
}

static const char *content_type_of(const char *pkg)
{
    if (strcmp(pkg, "dialog") == 0) return DIALOG_INFO_CONTENT_TYPE;
    if (strcmp(pkg, "message-summary") == 0) return MWI_CONTENT_TYPE;
    if (strcmp(pkg, "presence") == 0) return PIDF_CONTENT_TYPE;
    if (strcmp(pkg, "presence.winfo") == 0) return WINFO_CONTENT_TYPE;
    return REGINFO_CONTENT_TYPE;
}

/* ---- pure helpers ---- */

int64_t subs_clamp_expires(const struct subs_config *cfg, int64_t asked)
{
    if (asked < 0) asked = cfg->default_expires;
    if (asked == 0) return 0;
    if (asked < cfg->min_expires) return -1;
    if (asked > cfg->max_expires) return cfg->max_expires;
    return asked;
}

int subs_event_package(str_t event, char *out, size_t cap)
{
    size_t n = 0;
    size_t i = 0;
    while (i < event.len && (event.s[i] == ' ' || event.s[i] == '\t')) i++;
    for (; i < event.len && event.s[i] != ';' && event.s[i] != ' ' && event.s[i] != '\t'; i++) {
        if (n + 1 >= cap) return -1;
        char c = event.s[i];
        out[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    if (n == 0 || cap == 0) return -1;
    out[n] = '\0';
    return (int)n;
}

static bool copy_str(char *dst, size_t cap, str_t s)
{
    if (s.len >= cap) return false;
    memcpy(dst, s.s, s.len);
    dst[s.len] = '\0';
    return true;
}

static uint32_t key_hash(const char *call_id, const char *tag)
{
    return str_hash(str_from_cstr(call_id)) * 31u ^ str_hash(str_from_cstr(tag));
}

static struct subs_sub *find_sub(const struct subs *s, const char *call_id, const char *tag)
{
    for (struct hnode *n = htable_first(&s->by_key, key_hash(call_id, tag)); n; n = htable_next(n)) {
        struct subs_sub *sub = container_of(n, struct subs_sub, by_key);
        if (strcmp(sub->call_id, call_id) == 0 && strcmp(sub->local_tag, tag) == 0) return sub;
    }
    return NULL;
}

static struct subs_count *count_find(const struct subs *s, const char *subscriber, uint32_t h)
{
    for (struct hnode *n = htable_first(&s->by_subscriber, h); n; n = htable_next(n)) {
        struct subs_count *c = container_of(n, struct subs_count, node);
        if (strcmp(c->subscriber, subscriber) == 0) return c;
    }
    return NULL;
}

static uint32_t subscriber_count(const struct subs *s, const char *subscriber)
{
    const struct subs_count *c = count_find(s, subscriber, str_hash(str_from_cstr(subscriber)));
    return c ? c->n : 0;
}

/* One more subscription of subscriber; -ENOMEM when its count cannot be had. */
static int count_add(struct subs *s, const char *subscriber)
{
    uint32_t h = str_hash(str_from_cstr(subscriber));
    struct subs_count *c = count_find(s, subscriber, h);
    if (!c) {
        size_t len = strlen(subscriber);
        c = calloc(1, sizeof(*c) + len + 1);
        if (!c) return -ENOMEM;
        memcpy(c->subscriber, subscriber, len + 1);
        if (htable_insert(&s->by_subscriber, &c->node, h) < 0) {
            free(c);
            return -ENOMEM;
        }
    }
    c->n++;
    return 0;
}

static void count_drop(struct subs *s, const char *subscriber)
{
    struct subs_count *c = count_find(s, subscriber, str_hash(str_from_cstr(subscriber)));
    if (!c || --c->n > 0) return;
    htable_remove(&s->by_subscriber, &c->node);
    free(c);
}

/* ---- persistence ---- */

static void sub_persist(struct subs *s, const struct subs_sub *sub)
{
    if (!s->store) return;
    struct store_subscription row = {
        .call_id = sub->call_id, .local_tag = sub->local_tag, .remote_tag = sub->remote_tag,
        .event = sub->event, .aor = sub->aor, .subscriber = sub->subscriber, .target = sub->target,
        .routes = sub->routes, .remote = sub->remote,
        .transport = sip_transport_param(sub->dest.proto), .expires_at = sub->expires_wall_ms,
        .local_cseq = sub->local_cseq, .remote_cseq = sub->remote_cseq, .version = sub->version};
    if (store_submit(s->store, store_op_subscription_upsert(&row), NULL, NULL) < 0)
        log_warn("subs: cannot store the subscription %s", sub->call_id);
}

static void sub_forget(struct subs *s, const char *call_id, const char *tag)
{
    if (s->store) store_submit(s->store, store_op_subscription_delete(call_id, tag), NULL, NULL);
}

static void winfo_changed(struct subs *s, const char *aor);

static void record_of(const struct subs_sub *sub, struct subs_record *r)
{
    *r = (struct subs_record){.aor = sub->aor, .id = sub->local_tag, .watcher = sub->subscriber,
                              .event = sub->event, .expires_wall_ms = sub->expires_wall_ms, .node_alive = 1,
                              .call_id = sub->call_id, .remote_tag = sub->remote_tag, .target = sub->target,
                              .routes = sub->routes, .transport = sip_transport_param(sub->dest.proto),
                              .remote = sub->remote, .accept = content_type_of(sub->event),
                              .local_cseq = sub->local_cseq, .remote_cseq = sub->remote_cseq,
                              .version = sub->version};
}

static void record_changed(struct subs *s, const struct subs_sub *sub)
{
    if (!s->rec.changed || sub->unclaimed) return; /* not this node's to write until claimed */
    struct subs_record r;
    record_of(sub, &r);
    s->rec.changed(s->rec.arg, &r);
}

/* Unlinks and frees sub, deleting its row. */
static void sub_remove(struct subs *s, struct subs_sub *sub)
{
    char aor[LOCATION_MAX_AOR];
    bool presence = strcmp(sub->event, "presence") == 0, fetch = sub->fetch;
    if (presence) snprintf(aor, sizeof(aor), "%s", sub->aor);
    timer_stop(s->timers, &sub->expiry);
    htable_remove(&s->by_key, &sub->by_key);
    htable_remove(&s->by_aor, &sub->by_aor);
    count_drop(s, sub->subscriber);
    if (!sub->fetch) {
        sub_forget(s, sub->call_id, sub->local_tag);
        if (s->rec.gone && !sub->unclaimed) s->rec.gone(s->rec.arg, sub->aor, sub->local_tag);
    }
    if (s->reg.watch && strcmp(sub->event, "reg") == 0) s->reg.watch(s->reg.arg, sub->aor, false);
    if (s->dlg.watch && strcmp(sub->event, "dialog") == 0) s->dlg.watch(s->dlg.arg, sub->aor, false);
    if (s->stats.active) s->stats.active--;
    sub_free(sub);
    if (presence) {
        presence_watch(s->presence, aor, false);
        if (!fetch) winfo_changed(s, aor); /* one watcher fewer (a fetch was never listed) */
    }
}

/* ---- NOTIFY ---- */

static void aor_uri(const struct subs *s, const char *aor, char *out, size_t cap)
{
    if (strchr(aor, '@')) snprintf(out, cap, "sip:%s", aor);
    else snprintf(out, cap, "sip:%s@%s", aor, s->local->domain);
}

static void pending_unlink(struct subs_pending *p)
{
    *p->pprev = p->next;
    if (p->next) p->next->pprev = p->pprev;
}

static void sub_notify_full(struct subs *s, struct subs_sub *sub);

static void on_notify_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                            const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)rx, (void)dlg;
    struct subs_pending *p = arg;
    struct subs *s = p->owner;
    pending_unlink(p);
    struct subs_sub *sub = p->final ? NULL : find_sub(s, p->call_id, p->local_tag);
    free(p);
    if (!sub) return;
    sub->in_flight = false;
    /* RFC 6665 §4.2.2: a 481, and a timeout or transport failure (our 408
     * and 503), mean the subscriber is gone. */
    if (status == 481 || (status == 408 && !resp) || (status == 503 && !resp)) {
        log_info("subs: %s subscription %s to %s ended: NOTIFY answered %d", sub->event, sub->subscriber, sub->aor,
                 status);
        s->stats.ended_by_peer++;
        sub_remove(s, sub);
        return;
    }
    if (sub->dirty) {
        sub->dirty = false;
        sub_notify_full(s, sub);
    }
}

/* Splits the route set text into values (pointing into buf). */
static size_t split_routes(const char *routes, char *buf, size_t cap, str_t *out, size_t max)
{
    if (!copy_str(buf, cap, str_from_cstr(routes))) return 0;
    str_t cursor = str_from_cstr(buf), item;
    size_t n = 0;
    while (n < max && sip_list_next(&cursor, &item)) out[n++] = item;
    return n;
}

/* Where a NOTIFY goes (RFC 3261 §12.2.1.1 with the pinned flow): the first
 * route when there is a route set, else the address the SUBSCRIBE came
 * from (the subscriber may sit behind NAT, RFC 3581), else the target. */
static int notify_dest(const struct subs_sub *sub, const str_t *routes, size_t nroutes, struct transport_dest *out)
{
    if (nroutes) {
        struct sip_name_addr na;
        if (sip_name_addr_parse(routes[0], &na) != 0) return -EINVAL;
        return ua_dest_from_uri(na.uri_raw, out);
    }
    if (sub->dest_ok) {
        *out = sub->dest;
        return 0;
    }
    return ua_dest_from_uri(str_from_cstr(sub->target), out);
}

/* Sends one NOTIFY in sub's dialog with Subscription-State state_line and
 * the body in s->sb. final: the subscription is already gone. */
static int sub_send_notify(struct subs *s, struct subs_sub *sub, const char *state_line, bool final)
{
    if (sub->unclaimed) { /* maybe another node's now: nothing goes until claimed */
        if (!final) sub->dirty = true;
        return -EAGAIN;
    }
    char rbuf[SUBS_MAX_ROUTES_TEXT];
    str_t routes[UA_MAX_ROUTES];
    size_t nroutes = split_routes(sub->routes, rbuf, sizeof(rbuf), routes, UA_MAX_ROUTES);
    struct transport_dest dest;
    int rc = notify_dest(sub, routes, nroutes, &dest);
    if (rc < 0) {
        log_warn("subs: no destination for a NOTIFY to %s (%s)", sub->target, strerror(-rc));
        return rc;
    }
    char from[LOCATION_MAX_AOR + 160], event[40], state[96], to[SUBS_MAX_URI + 2];
    aor_uri(s, sub->aor, from, sizeof(from));
    snprintf(event, sizeof(event), "Event: %s", sub->event);
    snprintf(state, sizeof(state), "Subscription-State: %s", state_line);
    snprintf(to, sizeof(to), "<%s>", sub->subscriber);
    str_t headers[] = {str_from_cstr(event), str_from_cstr(state)};
    struct subs_pending *p = calloc(1, sizeof(*p));
    if (!p) return -ENOMEM;
    p->owner = s;
    p->final = final;
    snprintf(p->call_id, sizeof(p->call_id), "%s", sub->call_id);
    memcpy(p->local_tag, sub->local_tag, sizeof(p->local_tag));
    sub->local_cseq++;
    struct ua_request r = {
        .method = SIP_NOTIFY, .ruri = str_from_cstr(sub->target), .from = str_from_cstr(from),
        .from_tag = str_from_cstr(sub->local_tag), .to = str_from_cstr(to), .to_tag = str_from_cstr(sub->remote_tag),
        .call_id = str_from_cstr(sub->call_id), .cseq = sub->local_cseq, .auto_contact = true,
        .contact_user = str_from_cstr(sub->aor), .routes = routes, .route_count = nroutes, .headers = headers,
        .header_count = 2, .content_type = s->sb.len ? str_from_cstr(content_type_of(sub->event)) : STR_NULL,
        .body = sbuf_str(&s->sb)};
    struct ua_uac_cb cb = {.on_final = on_notify_final};
    p->h = ua_request_send(s->ua, &r, &dest, NULL, &cb, p);
    if (!p->h) {
        free(p);
        return -EIO;
    }
    p->next = s->pending;
    if (p->next) p->next->pprev = &p->next;
    p->pprev = &s->pending;
    s->pending = p;
    if (!final) sub->in_flight = true;
    s->stats.notifies++;
    return 0;
}

/* presence.winfo: the presence subscriptions to sub's AoR, each "active"
 * (cascade authorises a watcher when it subscribes, by presence_policy: one
 * it refuses gets 403 and is not held, so none waits as "pending"). */
static int build_winfo(struct subs *s, struct subs_sub *sub)
{
    char uri[LOCATION_MAX_AOR + 160];
    struct winfo_watcher w[WINFO_MAX_WATCHERS];
    size_t n = 0;
    for (struct hnode *h = htable_first(&s->by_aor, str_hash(str_from_cstr(sub->aor))); h && n < WINFO_MAX_WATCHERS;
         h = htable_next(h)) {
        const struct subs_sub *x = container_of(h, struct subs_sub, by_aor);
        if (strcmp(x->event, "presence") != 0 || strcmp(x->aor, sub->aor) != 0 || x->fetch) continue;
        w[n++] = (struct winfo_watcher){.id = x->local_tag, .uri = x->subscriber, .status = "active",
                                        .event = "subscribe"};
    }
    aor_uri(s, sub->aor, uri, sizeof(uri));
    return winfo_build(&s->sb, sub->version++, uri, "presence", w, n);
}

/* The whole state of sub's package and AoR into s->sb (dialog: the calls
 * tracked; message-summary: the source's latest summary, or "no";
 * presence.winfo: the watchers). */
static int build_other(struct subs *s, struct subs_sub *sub)
{
    char uri[LOCATION_MAX_AOR + 160];
    sbuf_clear(&s->sb);
    if (strcmp(sub->event, "presence.winfo") == 0) return build_winfo(s, sub);
    if (strcmp(sub->event, "message-summary") == 0) {
        const char *body = s->mwi ? mwi_store_get(s->mwi, sub->aor) : NULL;
        sbuf_append_cstr(&s->sb, body ? body : MWI_NOTHING_WAITING);
        return s->sb.failed ? -ENOMEM : 0;
    }
    const struct dialog_info_entry *d[64];
    size_t n = s->dialogs ? dialog_table_list(s->dialogs, sub->aor, d, 64) : 0;
    /* the other nodes' calls (dialog_nodes.h), those not tracked here too */
    const struct dialog_remote *r = NULL;
    size_t nr = s->dlg.remote ? s->dlg.remote(s->dlg.arg, sub->aor, &r) : 0, here = n;
    for (size_t i = 0; i < nr && n < 64; i++) {
        if (r[i].e.state == DIALOG_TERMINATED) continue;
        bool dup = false;
        for (size_t j = 0; j < here && !dup; j++) dup = strcmp(d[j]->id, r[i].e.id) == 0;
        if (!dup) d[n++] = &r[i].e;
    }
    aor_uri(s, sub->aor, uri, sizeof(uri));
    return dialog_info_build(&s->sb, sub->version++, true, uri, d, n);
}

/* Whether uri is among this node's bindings b[n] (local ones count first). */
static bool bound_here(const struct location_binding *const *b, size_t n, const char *uri)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(b[i]->contact, uri) == 0) return true;
    return false;
}

/* The other nodes' contacts of aor not bound here (reg_nodes.h). */
static size_t remote_count(struct subs *s, const char *aor, const char *except)
{
    const struct reg_remote *r = NULL;
    size_t nr = s->reg.remote ? s->reg.remote(s->reg.arg, aor, &r) : 0, k = 0;
    if (!nr) return 0;
    struct location *loc = registrar_location(s->registrar);
    const struct location_binding *b[SUBS_MAX_CONTACTS];
    size_t n = loc ? location_lookup(loc, str_from_cstr(aor), b, SUBS_MAX_CONTACTS) : 0;
    if (n > SUBS_MAX_CONTACTS) n = SUBS_MAX_CONTACTS;
    for (size_t i = 0; i < nr; i++) k += !bound_here(b, n, r[i].uri) && (!except || strcmp(r[i].uri, except) != 0);
    return k;
}

/* The whole registration state of sub's AoR into s->sb (presence: the
 * document presence.c composes, which needs the bindings too). */
static int build_full(struct subs *s, struct subs_sub *sub, bool terminated)
{
    if (strcmp(sub->event, "reg") != 0 && strcmp(sub->event, "presence") != 0) return build_other(s, sub);
    struct location *loc = registrar_location(s->registrar);
    const struct location_binding *b[SUBS_MAX_CONTACTS];
    size_t n = loc ? location_lookup(loc, str_from_cstr(sub->aor), b, SUBS_MAX_CONTACTS) : 0;
    if (n > SUBS_MAX_CONTACTS) n = SUBS_MAX_CONTACTS;
    char uri[LOCATION_MAX_AOR + 160];
    aor_uri(s, sub->aor, uri, sizeof(uri));
    sbuf_clear(&s->sb);
    if (strcmp(sub->event, "presence") == 0)
        return presence_document(s->presence, sub->aor, uri, n > 0, n ? b[0]->contact : NULL, &s->sb);
    struct reginfo_contact c[SUBS_MAX_CONTACTS];
    uint64_t now = timer_now(s->timers);
    for (size_t i = 0; i < n; i++)
        c[i] = (struct reginfo_contact){.uri = b[i]->contact, .state = "active", .event = "registered",
                                        .expires = b[i]->expires_ms > now
                                                       ? (uint32_t)((b[i]->expires_ms - now + 999) / 1000)
                                                       : 0,
                                        .q1000 = b[i]->q1000, .call_id = b[i]->call_id, .cseq = b[i]->cseq};
    /* the other nodes' contacts (reg_nodes.h), those not bound here too */
    const struct reg_remote *r = NULL;
    size_t nr = s->reg.remote ? s->reg.remote(s->reg.arg, sub->aor, &r) : 0;
    int64_t wall = clock_wall_ms();
    for (size_t i = 0; i < nr && n < SUBS_MAX_CONTACTS; i++) {
        if (bound_here(b, n, r[i].uri)) continue;
        c[n++] = (struct reginfo_contact){.uri = r[i].uri, .state = "active", .event = "registered",
                                          .expires = r[i].expires_wall_ms > wall
                                                         ? (uint32_t)((r[i].expires_wall_ms - wall + 999) / 1000)
                                                         : 0,
                                          .q1000 = r[i].q1000};
    }
    /* RFC 3680 §5.3: "init" when no contact is bound. */
    const char *state = terminated ? "terminated" : n ? "active" : "init";
    return reginfo_build(&s->sb, sub->version++, true, uri, state, c, n);
}

static uint32_t seconds_left(const struct subs *s, const struct subs_sub *sub)
{
    uint64_t now = timer_now(s->timers);
    return sub->expiry.deadline_ms > now ? (uint32_t)((sub->expiry.deadline_ms - now + 999) / 1000) : 0;
}

static void sub_notify_full(struct subs *s, struct subs_sub *sub)
{
    if (sub->in_flight || sub->unclaimed) {
        sub->dirty = true;
        return;
    }
    if (build_full(s, sub, false) < 0) return;
    char state[48];
    snprintf(state, sizeof(state), "active;expires=%u", seconds_left(s, sub));
    sub_send_notify(s, sub, state, false);
    sub_persist(s, sub);
}

/* The terminated NOTIFY (RFC 6665 §4.2.1.4 and §4.2.2), then sub is gone. */
static void sub_terminate(struct subs *s, struct subs_sub *sub, const char *reason)
{
    char state[48];
    snprintf(state, sizeof(state), "terminated;reason=%s", reason);
    if (build_full(s, sub, false) == 0) sub_send_notify(s, sub, state, true);
    sub_remove(s, sub);
}

static void on_expiry(struct timer_node *node, uint64_t now_ms)
{
    (void)now_ms;
    struct subs_sub *sub = container_of(node, struct subs_sub, expiry);
    log_info("subs: %s subscription of %s to %s expired", sub->event, sub->subscriber, sub->aor);
    sub_terminate(sub->owner, sub, "timeout");
}

/* ---- answering SUBSCRIBE ---- */

/* A refusal of a request outside a dialog goes once, with no transaction
 * kept (issue 9: strangers get no state); 2xx and in-dialog answers are
 * stateful. */
static void respond(struct txn *st, int status, const char *reason, str_t tag, const str_t *extra, size_t n)
{
    const struct sip_msg *req = txn_request(st);
    bool once = status >= 300 && req && !req->to.tag.len;
    int rc = (once ? txn_reject : txn_respond)(st, status, reason, tag, extra, n, STR_NULL, STR_NULL);
    if (rc < 0) log_warn("subs: cannot answer %d: %s", status, strerror(-rc));
}

static void refuse(struct subs *s, struct txn *st, const struct transport_rx *rx, int status, const char *reason,
                   const char *extra_line, const char *why)
{
    s->stats.refused++;
    str_t extra[1] = {str_from_cstr(extra_line)};
    log_warn_rl("subs: %d to SUBSCRIBE from %s (%.*s): %s", status, rx->src_text,
                (int)(rx->msg->from.uri_raw.len > 128 ? 128 : rx->msg->from.uri_raw.len), rx->msg->from.uri_raw.s,
                why);
    respond(st, status, reason, STR_NULL, extra, extra_line ? 1 : 0);
}

/* 401/403/400 answered (0), or 1: the SUBSCRIBE's user may watch aor (its
 * name in who, "" without [auth] require_auth). */
static int authorise(struct subs *s, struct txn *st, const struct transport_rx *rx, const char *aor,
                     const char *pkg, char *who, size_t who_cap)
{
    who[0] = '\0';
    if (!s->require_auth) return 1;
    struct digest_check_result res;
    enum digest_check c = digest_check_request(s->digest, rx, SIP_HDR_AUTHORIZATION, &res);
    if (c == DIGEST_CHECK_OK) snprintf(who, who_cap, "%s", res.user->name);
    if (c == DIGEST_CHECK_OK && strcmp(pkg, "presence") == 0) {
        if (presence_may_watch(s->presence, res.user->name, aor)) return 1;
        refuse(s, st, rx, 403, "Forbidden", NULL, "not allowed to watch this user's presence (presence_policy)");
        return 0;
    }
    if (c == DIGEST_CHECK_OK) {
        bool any = strcmp(pkg, "reg") == 0 ? s->cfg.reg_any_user : strcmp(pkg, "dialog") == 0 && s->cfg.dialog_any_user;
        if (any || strcmp(res.user->name, aor) == 0) return 1;
        refuse(s, st, rx, 403, "Forbidden", NULL, "only the AoR's own user may watch it with this package");
        return 0;
    }
    if (c == DIGEST_CHECK_BAD_HEADER || c == DIGEST_CHECK_URI_MISMATCH) {
        refuse(s, st, rx, 400, c == DIGEST_CHECK_BAD_HEADER ? "Bad Authorization Header" : "Digest URI Mismatch",
               NULL, res.why);
        return 0;
    }
    if (c == DIGEST_CHECK_LOCKED) {
        refuse(s, st, rx, 403, "Too Many Failed Attempts", NULL, res.why);
        return 0;
    }
    if (c != DIGEST_CHECK_NONE && res.log) log_warn_rl("subs: 401 to SUBSCRIBE from %s: %s", rx->src_text, res.why);
    sbuf_clear(&s->sb);
    if (digest_check_challenge(s->digest, false, c == DIGEST_CHECK_STALE, rx, &s->sb) < 0 || s->sb.failed) {
        respond(st, 500, "Server Internal Error", STR_NULL, NULL, 0);
        return 0;
    }
    str_t extra[] = {sbuf_lines(&s->sb)};
    respond(st, 401, "Unauthorized", STR_NULL, extra, 1);
    return 0;
}

/* Our 2xx: To tag, Contact, Expires and the Record-Route set (RFC 6665
 * §4.2.1, RFC 3261 §12.1.1). */
static void accept_subscribe(struct subs *s, struct txn *st, const struct transport_rx *rx, struct subs_sub *sub,
                             uint32_t expires)
{
    str_t extra[4 + UA_MAX_ROUTES];
    size_t n = 0;
    char contact[LOCATION_MAX_AOR + 128], host[80], exp[32];
    sip_host_for_header(s->local->host, host, sizeof(host));
    snprintf(contact, sizeof(contact), "Contact: <sip:%s@%s:%u%s%s>", sub->aor, host,
             sip_local_port(s->local, rx->proto), rx->proto == SIP_TRANSPORT_UDP ? "" : ";transport=",
             rx->proto == SIP_TRANSPORT_UDP ? "" : sip_transport_param(rx->proto));
    snprintf(exp, sizeof(exp), "Expires: %u", expires);
    extra[n++] = str_from_cstr(contact);
    extra[n++] = str_from_cstr(exp);
    char rr_lines[UA_MAX_ROUTES][SUBS_MAX_URI + 16];
    size_t k = 0;
    for (const struct sip_header *h = sip_msg_header(rx->msg, SIP_HDR_RECORD_ROUTE); h && k < UA_MAX_ROUTES;
         h = sip_msg_header_next(rx->msg, h)) {
        snprintf(rr_lines[k], sizeof(rr_lines[k]), "Record-Route: %.*s", STR_FMT(h->value));
        extra[n++] = str_from_cstr(rr_lines[k++]);
    }
    respond(st, 200, "OK", str_from_cstr(sub->local_tag), extra, n);
}

/* The route set from Record-Route, in order (RFC 3261 §12.1.1). */
static bool take_routes(const struct sip_msg *m, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    struct sip_list_iter it;
    str_t item;
    sip_list_iter_init(&it, m, SIP_HDR_RECORD_ROUTE);
    while (sip_list_iter_next(&it, &item)) {
        int w = snprintf(out + used, cap - used, "%s%.*s", used ? "," : "", STR_FMT(item));
        if (w < 0 || (size_t)w >= cap - used) return false;
        used += (size_t)w;
    }
    return true;
}

static bool take_target(const struct sip_msg *m, char *out, size_t cap)
{
    const struct sip_header *h = sip_msg_header(m, SIP_HDR_CONTACT);
    struct sip_name_addr na;
    str_t cursor, item;
    if (!h) return false;
    cursor = h->value;
    if (!sip_list_next(&cursor, &item) || sip_name_addr_parse(item, &na) != 0 || na.star) return false;
    return copy_str(out, cap, na.uri_raw);
}

static void set_dest(struct subs_sub *sub, const struct transport_rx *rx)
{
    memset(&sub->dest, 0, sizeof(sub->dest));
    sub->dest.proto = rx->proto;
    sub->dest.addr = rx->src;
    sub->dest.conn_id = rx->conn_id;
    sub->dest_ok = true;
    snprintf(sub->remote, sizeof(sub->remote), "%s", rx->src_text);
}

static void arm_expiry(struct subs *s, struct subs_sub *sub, uint32_t expires, int64_t wall_now)
{
    timer_start(s->timers, &sub->expiry, timer_now(s->timers) + (uint64_t)expires * 1000u, on_expiry);
    sub->expires_wall_ms = wall_now + (int64_t)expires * 1000;
}

static int link_sub(struct subs *s, struct subs_sub *sub)
{
    if (htable_insert(&s->by_key, &sub->by_key, key_hash(sub->call_id, sub->local_tag)) < 0) return -ENOMEM;
    if (htable_insert(&s->by_aor, &sub->by_aor, str_hash(str_from_cstr(sub->aor))) < 0) {
        htable_remove(&s->by_key, &sub->by_key);
        return -ENOMEM;
    }
    if (count_add(s, sub->subscriber) < 0) {
        htable_remove(&s->by_aor, &sub->by_aor);
        htable_remove(&s->by_key, &sub->by_key);
        return -ENOMEM;
    }
    s->stats.active++;
    if (strcmp(sub->event, "presence") == 0) presence_watch(s->presence, sub->aor, true);
    if (s->reg.watch && strcmp(sub->event, "reg") == 0) s->reg.watch(s->reg.arg, sub->aor, true);
    if (s->dlg.watch && strcmp(sub->event, "dialog") == 0) s->dlg.watch(s->dlg.arg, sub->aor, true);
    return 0;
}

/* Whether the first read of the other nodes' state of aor for package (reg,
 * dialog, presence) is in flight: a new watcher's first NOTIFY waits for it. */
static bool first_read_pending(struct subs *s, const char *package, const char *aor)
{
    if (strcmp(package, "reg") == 0) return s->reg.pending && s->reg.pending(s->reg.arg, aor);
    if (strcmp(package, "dialog") == 0) return s->dlg.pending && s->dlg.pending(s->dlg.arg, aor);
    if (strcmp(package, "presence") == 0) return presence_first_read_pending(s->presence, aor);
    return false;
}

/* The answer to a fetch: the state in a terminated NOTIFY, then it goes. */
static void fetch_answer(struct subs *s, struct subs_sub *sub)
{
    if (build_full(s, sub, false) == 0) sub_send_notify(s, sub, "terminated;reason=timeout", true);
    sub_remove(s, sub);
}

/* A fetch of reg, dialog or presence across nodes: linked for the time of one read (not
 * stored, no record), so that the hooks read the other nodes' state of an AoR
 * this node holds no view of. True when it waits for that read (answered by
 * subs_*_remote_changed, within the read's deadline; the expiry timer is a
 * backstop); false when sub is not linked (the caller answers and frees it)
 * or was answered and freed here. */
static bool fetch_waits(struct subs *s, struct subs_sub *sub)
{
    bool reg = strcmp(sub->event, "reg") == 0, dlg = strcmp(sub->event, "dialog") == 0;
    bool pres = strcmp(sub->event, "presence") == 0 && presence_mirrored(s->presence);
    if (!(reg && s->reg.watch && s->reg.pending) && !(dlg && s->dlg.watch && s->dlg.pending) && !pres) return false;
    sub->fetch = true;
    if (link_sub(s, sub) < 0) {
        sub->fetch = false;
        return false;
    }
    if (first_read_pending(s, sub->event, sub->aor)) {
        sub->awaiting_remote = true;
        arm_expiry(s, sub, 60, clock_wall_ms());
        return true;
    }
    fetch_answer(s, sub); /* a view held already (or a read refused at once) */
    return true;
}

/* An initial SUBSCRIBE for the reg package of aor. */
static void new_subscription(struct subs *s, struct txn *st, const struct transport_rx *rx, const char *aor,
                             const char *package, const char *who)
{
    const struct sip_msg *m = rx->msg;
    int64_t expires = subs_clamp_expires(&s->cfg, m->expires);
    if (expires < 0) {
        char line[40];
        snprintf(line, sizeof(line), "Min-Expires: %d", s->cfg.min_expires);
        refuse(s, st, rx, 423, "Interval Too Brief", line, "expiry below min_expires");
        return;
    }
    char routes[SUBS_MAX_ROUTES_TEXT], target[SUBS_MAX_URI];
    if (!take_routes(m, routes, sizeof(routes))) {
        refuse(s, st, rx, 400, "Bad Request", NULL, "a dialog field is too long");
        return;
    }
    if (!take_target(m, target, sizeof(target))) {
        refuse(s, st, rx, 400, "Missing Contact", NULL, "no usable Contact");
        return;
    }
    struct sub_text v = {.call_id = m->call_id, .remote_tag = m->from.tag, .aor = str_from_cstr(aor),
                         .subscriber = m->from.uri_raw, .target = str_from_cstr(target),
                         .routes = str_from_cstr(routes), .who = str_from_cstr(who)};
    bool too_long;
    struct subs_sub *sub = sub_new(&v, &too_long);
    if (!sub) {
        if (too_long) refuse(s, st, rx, 400, "Bad Request", NULL, "a dialog field is too long");
        else respond(st, 500, "Server Internal Error", STR_NULL, NULL, 0);
        return;
    }
    sub->owner = s;
    snprintf(sub->event, sizeof(sub->event), "%s", package);
    if (s->cfg.max_total && s->stats.active >= (uint32_t)s->cfg.max_total && expires) {
        sub_free(sub);
        refuse(s, st, rx, 503, "Service Unavailable", "Retry-After: 60", "[subscriptions] max_total reached");
        return;
    }
    if (s->cfg.max_per_subscriber && expires &&
        subscriber_count(s, sub->subscriber) >= (uint32_t)s->cfg.max_per_subscriber) {
        sub_free(sub);
        refuse(s, st, rx, 403, "Too Many Subscriptions", NULL, "[subscriptions] max_per_subscriber reached");
        return;
    }
    char tag[UA_TAG_SIZE];
    ua_new_tag(s->ua, tag);
    memcpy(sub->local_tag, tag, sizeof(tag));
    sub->remote_cseq = m->cseq.number;
    set_dest(sub, rx);
    accept_subscribe(s, st, rx, sub, (uint32_t)expires);
    s->stats.accepted++;
    if (expires == 0) {
        /* A fetch (RFC 6665 §4.4.3): one terminated NOTIFY with the state;
         * across nodes, once the other nodes' state is read. */
        if (fetch_waits(s, sub)) return;
        if (build_full(s, sub, false) == 0) sub_send_notify(s, sub, "terminated;reason=timeout", true);
        sub_free(sub);
        return;
    }
    if (link_sub(s, sub) < 0) {
        sub_free(sub);
        return;
    }
    arm_expiry(s, sub, (uint32_t)expires, clock_wall_ms());
    record_changed(s, sub);
    log_info("subs: %s subscription of %s to %s for %llds from %s", package, sub->subscriber, aor,
             (long long)expires, rx->src_text);
    if (first_read_pending(s, package, aor))
        sub->awaiting_remote = true; /* subs_*_remote_changed sends it, within the read's deadline */
    else
        sub_notify_full(s, sub);
    if (strcmp(package, "presence") == 0) winfo_changed(s, aor); /* a new watcher */
}

/* A SUBSCRIBE inside sub's dialog: refresh or unsubscribe. */
static void refresh_subscription(struct subs *s, struct txn *st, const struct transport_rx *rx,
                                 struct subs_sub *sub)
{
    const struct sip_msg *m = rx->msg;
    if (m->cseq.number <= sub->remote_cseq) {
        respond(st, 500, "Server Internal Error", STR_NULL, NULL, 0); /* RFC 3261 §12.2.2 */
        return;
    }
    int64_t expires = subs_clamp_expires(&s->cfg, m->expires);
    if (expires < 0) {
        char line[40];
        snprintf(line, sizeof(line), "Min-Expires: %d", s->cfg.min_expires);
        refuse(s, st, rx, 423, "Interval Too Brief", line, "expiry below min_expires");
        return;
    }
    sub->remote_cseq = m->cseq.number;
    char target[SUBS_MAX_URI];
    if (take_target(m, target, sizeof(target))) sub_set_target(sub, target);
    set_dest(sub, rx);
    accept_subscribe(s, st, rx, sub, (uint32_t)expires);
    if (expires == 0) {
        log_info("subs: %s subscription of %s to %s ended by the subscriber", sub->event, sub->subscriber, sub->aor);
        sub_terminate(s, sub, "timeout");
        return;
    }
    arm_expiry(s, sub, (uint32_t)expires, clock_wall_ms());
    record_changed(s, sub);
    if (!sub->awaiting_remote) sub_notify_full(s, sub); /* else the read's answer sends it */
}

/* Whether the request names this node, and the AoR key ("" for the domain). */
static bool for_us(struct subs *s, const struct transport_rx *rx, char *aor, size_t cap)
{
    const struct sip_uri *u = &rx->msg->ruri;
    if (u->scheme != SIP_SCHEME_SIP && u->scheme != SIP_SCHEME_SIPS) return false;
    if (!registrar_uri_is_local(s->registrar, u, rx, false)) return false;
    aor[0] = '\0';
    if (!u->user.len) return true;
    int n = registrar_aor_key(u, aor, cap);
    return n > 0;
}

static int source_notify(struct subs *s, struct txn *st, const struct transport_rx *rx);
/* A PUBLISH to one of our users goes to the presence package (RFC 3903);
 * one to a user we do not know is refused here (404). */
static int on_publish(struct subs *s, struct txn *st, const struct transport_rx *rx)
{
    char aor[LOCATION_MAX_AOR];
    /* The domain itself publishes nothing: the core's 405 (issue 15). */
    if (!for_us(s, rx, aor, sizeof(aor)) || !aor[0]) return 0;
    if (!registrar_user_known(s->registrar, str_from_cstr(aor))) {
        refuse(s, st, rx, 404, "Not Found", NULL, "PUBLISH for no user of ours");
        return 1;
    }
    presence_on_publish(s->presence, st, rx, aor);
    return 1;
}

int subs_on_request(struct subs *s, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (s && m && m->method == SIP_NOTIFY && !m->to.tag.len && s->nsources) return source_notify(s, st, rx);
    if (s && m && m->method == SIP_PUBLISH) return on_publish(s, st, rx);
    if (!s || !m || m->method != SIP_SUBSCRIBE) return 0;
    if (m->to.tag.len) {
        char cid[SUBS_MAX_CALL_ID], tag[UA_TAG_SIZE];
        if (!copy_str(cid, sizeof(cid), m->call_id) || !copy_str(tag, sizeof(tag), m->to.tag)) return 0;
        struct subs_sub *sub = find_sub(s, cid, tag);
        /* Not ours (or not from this subscriber, or a fetch being answered):
         * the proxy or the core (481). */
        if (!sub || sub->fetch || !str_eq_cstr(m->from.tag, sub->remote_tag)) return 0;
        if (sub->unclaimed) { /* whose it is is being asked (subs_claimed): moments */
            str_t extra[1] = {str_from_cstr("Retry-After: 1")};
            s->stats.refused++;
            respond(st, 503, "Service Unavailable", STR_NULL, extra, 1);
            return 1;
        }
        char pkg[16];
        const struct sip_header *ev = sip_msg_header(m, SIP_HDR_EVENT);
        if (!ev || subs_event_package(ev->value, pkg, sizeof(pkg)) < 0 || strcmp(pkg, sub->event) != 0) {
            refuse(s, st, rx, 489, "Bad Event", allow_events(s), "not this dialog's package");
            return 1;
        }
        refresh_subscription(s, st, rx, sub);
        return 1;
    }
    char aor[LOCATION_MAX_AOR];
    if (!for_us(s, rx, aor, sizeof(aor))) return 0;
    char pkg[16];
    const struct sip_header *ev = sip_msg_header(m, SIP_HDR_EVENT);
    if (!ev || subs_event_package(ev->value, pkg, sizeof(pkg)) < 0 || !package_served(s, pkg)) {
        refuse(s, st, rx, 489, "Bad Event", allow_events(s), "package not served");
        return 1;
    }
    if (!aor[0]) {
        refuse(s, st, rx, 404, "Not Found", NULL, "the package needs an AoR, not the domain");
        return 1;
    }
    const struct location_binding *b;
    struct location *loc = registrar_location(s->registrar);
    if (!registrar_user_known(s->registrar, str_from_cstr(aor)) &&
        (!loc || location_lookup(loc, str_from_cstr(aor), &b, 1) == 0)) {
        refuse(s, st, rx, 404, "Not Found", NULL, "no such user");
        return 1;
    }
    char who[SUBS_MAX_TAG];
    if (!authorise(s, st, rx, aor, pkg, who, sizeof(who))) return 1;
    new_subscription(s, st, rx, aor, pkg, who);
    return 1;
}

/* ---- registrar changes: partial NOTIFYs (RFC 3680 §5.3) ---- */

/* b changed (state, event): a partial NOTIFY to each reg subscription of
 * its AoR, the whole document to each presence one unless presence_told
 * (they had it already). */
static void notify_change(struct subs *s, const struct location_binding *b, const char *state, const char *event,
                          bool presence_told)
{
    uint32_t h = str_hash(str_from_cstr(b->aor));
    struct hnode *n = htable_first(&s->by_aor, h);
    if (!n) return;
    struct location *loc = registrar_location(s->registrar);
    const struct location_binding *all[SUBS_MAX_CONTACTS];
    size_t count = loc ? location_lookup(loc, str_from_cstr(b->aor), all, SUBS_MAX_CONTACTS) : 0;
    size_t others = 0;
    for (size_t i = 0; i < count && i < SUBS_MAX_CONTACTS; i++)
        if (strcmp(all[i]->contact, b->contact) != 0) others++;
    bool active = strcmp(state, "active") == 0;
    if (!active && !others) others = remote_count(s, b->aor, b->contact); /* registered on another node */
    const char *reg_state = (active || others) ? "active" : "terminated";
    uint64_t now = timer_now(s->timers);
    struct reginfo_contact c = {.uri = b->contact, .state = state, .event = event,
                                .expires = b->expires_ms > now ? (uint32_t)((b->expires_ms - now + 999) / 1000) : 0,
                                .q1000 = b->q1000, .call_id = b->call_id, .cseq = b->cseq};
    char uri[LOCATION_MAX_AOR + 160];
    aor_uri(s, b->aor, uri, sizeof(uri));
    for (; n; n = htable_next(n)) {
        struct subs_sub *sub = container_of(n, struct subs_sub, by_aor);
        if (strcmp(sub->aor, b->aor) != 0) continue;
        if (strcmp(sub->event, "presence") == 0) {
            /* RFC 3856 §6.4: presence has no partial state; the whole
             * document goes (it may change from closed to open). A
             * refreshed binding changes nothing a watcher sees. */
            if (strcmp(event, "refreshed") != 0 && !presence_told && !sub->awaiting_remote && !sub->fetch)
                sub_notify_full(s, sub);
            continue;
        }
        if (strcmp(sub->event, "reg") != 0 || sub->awaiting_remote || sub->fetch) continue;
        if (sub->in_flight) {
            sub->dirty = true; /* the full state goes when the NOTIFY out is answered */
            continue;
        }
        sbuf_clear(&s->sb);
        if (reginfo_build(&s->sb, sub->version++, false, uri, reg_state, &c, 1) < 0) continue;
        char line[48];
        snprintf(line, sizeof(line), "active;expires=%u", seconds_left(s, sub));
        sub_send_notify(s, sub, line, false);
        sub_persist(s, sub);
    }
}

static void obs_added(void *arg, const struct location_binding *b) { notify_change(arg, b, "active", "registered", false); }
static void obs_refreshed(void *arg, const struct location_binding *b)
{
    notify_change(arg, b, "active", "refreshed", false);
}
/* b's AoR's bindings other than b (b may or may not be listed yet). */
static size_t others_bound(struct subs *s, const struct location_binding *b)
{
    struct location *loc = registrar_location(s->registrar);
    const struct location_binding *all[SUBS_MAX_CONTACTS];
    size_t count = loc ? location_lookup(loc, str_from_cstr(b->aor), all, SUBS_MAX_CONTACTS) : 0, others = 0;
    for (size_t i = 0; i < count && i < SUBS_MAX_CONTACTS; i++) others += strcmp(all[i]->contact, b->contact) != 0;
    return others;
}

static void obs_removed(void *arg, const struct location_binding *b, enum location_reason reason)
{
    struct subs *s = arg;
    /* No binding, closed: with the user's last binding gone, its
     * publications go too (on_presence_change tells the watchers). A device
     * whose flow died, that stopped answering or was kicked cannot withdraw
     * what it published; one that unregisters or lets its binding expire
     * may withdraw it late or never (liblinphone sends its PUBLISH with
     * Expires: 0 32 s after the REGISTER with Expires: 0, when it destroys
     * the removed account). A binding replaced by its successor (RFC 5626
     * §6) is no user going. A publisher that refreshes a dropped tag gets
     * 412 (RFC 3903 §6) and has to publish anew. When some went, the
     * presence watchers have had the new document: only reg's are told. */
    size_t dropped = 0;
    if (reason != LOCATION_REMOVED_REPLACED && others_bound(s, b) == 0)
        dropped = presence_drop_user(s->presence, b->aor);
    notify_change(s, b, "terminated", reginfo_event_for_removal(reason), dropped > 0);
}

/* ---- the other nodes' contacts (reg_nodes.h) ---- */

struct fetch_find {
    const char *pkg;
    struct subs_sub *found;
};

static int fetch_any(struct hnode *n, void *arg)
{
    struct fetch_find *c = arg;
    struct subs_sub *sub = container_of(n, struct subs_sub, by_key);
    if (!sub->fetch || !sub->awaiting_remote || strcmp(sub->event, c->pkg) != 0) return 0;
    c->found = sub;
    return 1;
}

/* A fetch of pkg waiting for the first read of aor (NULL: of any AoR), or NULL. */
static struct subs_sub *fetch_waiting(struct subs *s, const char *aor, const char *pkg)
{
    if (!aor) {
        struct fetch_find c = {.pkg = pkg};
        htable_foreach(&s->by_key, fetch_any, &c);
        return c.found;
    }
    for (struct hnode *n = htable_first(&s->by_aor, str_hash(str_from_cstr(aor))); n; n = htable_next(n)) {
        struct subs_sub *sub = container_of(n, struct subs_sub, by_aor);
        if (sub->fetch && sub->awaiting_remote && strcmp(sub->event, pkg) == 0 && strcmp(sub->aor, aor) == 0)
            return sub;
    }
    return NULL;
}

/* The fetches of pkg waiting for aor's first read (NULL: any AoR's) get their answer. */
static void answer_fetches(struct subs *s, const char *aor, const char *pkg)
{
    struct subs_sub *sub;
    while ((sub = fetch_waiting(s, aor, pkg))) {
        sub->awaiting_remote = false;
        fetch_answer(s, sub);
    }
}

void subs_reg_remote_changed(struct subs *s, const char *aor, const struct reginfo_contact *c, size_t n)
{
    struct hnode *h = htable_first(&s->by_aor, str_hash(str_from_cstr(aor)));
    if (!h) return;
    /* a contact bound here too is this node's (build_full lists it once) */
    struct location *loc = registrar_location(s->registrar);
    const struct location_binding *b[SUBS_MAX_CONTACTS];
    size_t nb = loc ? location_lookup(loc, str_from_cstr(aor), b, SUBS_MAX_CONTACTS) : 0, k = 0;
    if (nb > SUBS_MAX_CONTACTS) nb = SUBS_MAX_CONTACTS;
    struct reginfo_contact mine[2 * REG_NODES_MAX];
    for (size_t i = 0; i < n && k < 2 * REG_NODES_MAX; i++)
        if (!bound_here(b, nb, c[i].uri)) mine[k++] = c[i];
    c = mine;
    n = k;
    const char *reg_state = NULL;
    char uri[LOCATION_MAX_AOR + 160];
    aor_uri(s, aor, uri, sizeof(uri));
    for (; h; h = htable_next(h)) {
        struct subs_sub *sub = container_of(h, struct subs_sub, by_aor);
        if (strcmp(sub->event, "reg") != 0 || strcmp(sub->aor, aor) != 0 || sub->fetch) continue;
        if (sub->awaiting_remote) {
            sub->awaiting_remote = false;
            sub_notify_full(s, sub);
            continue;
        }
        if (!n) continue;
        if (sub->in_flight) {
            sub->dirty = true;
            continue;
        }
        if (!reg_state) reg_state = nb || remote_count(s, aor, NULL) ? "active" : "terminated";
        sbuf_clear(&s->sb);
        if (reginfo_build(&s->sb, sub->version++, false, uri, reg_state, c, n) < 0) continue;
        char line[48];
        snprintf(line, sizeof(line), "active;expires=%u", seconds_left(s, sub));
        sub_send_notify(s, sub, line, false);
        sub_persist(s, sub);
    }
    answer_fetches(s, aor, "reg");
}

static int reg_replay(struct hnode *n, void *arg)
{
    struct subs *s = arg;
    struct subs_sub *sub = container_of(n, struct subs_sub, by_key);
    if (strcmp(sub->event, "reg") != 0) return 0;
    if (s->reg.watch) s->reg.watch(s->reg.arg, sub->aor, true);
    else if (sub->awaiting_remote && !sub->fetch) {
        sub->awaiting_remote = false;
        sub_notify_full(s, sub);
    }
    return 0;
}

void subs_set_reg_hooks(struct subs *s, const struct subs_reg_hooks *h)
{
    if (h) s->reg = *h;
    else memset(&s->reg, 0, sizeof(s->reg));
    htable_foreach(&s->by_key, reg_replay, s);
    if (!h) answer_fetches(s, NULL, "reg"); /* with this node's view */
}

static void notify_dialogs(struct subs *s, const char *aor, const struct dialog_info_entry *const *d, size_t nd);

static int dlg_replay(struct hnode *n, void *arg)
{
    struct subs *s = arg;
    struct subs_sub *sub = container_of(n, struct subs_sub, by_key);
    if (strcmp(sub->event, "dialog") != 0) return 0;
    if (s->dlg.watch) s->dlg.watch(s->dlg.arg, sub->aor, true);
    else if (sub->awaiting_remote && !sub->fetch) {
        sub->awaiting_remote = false;
        sub_notify_full(s, sub);
    }
    return 0;
}

void subs_set_dialog_hooks(struct subs *s, const struct subs_dialog_hooks *h)
{
    if (h) s->dlg = *h;
    else memset(&s->dlg, 0, sizeof(s->dlg));
    htable_foreach(&s->by_key, dlg_replay, s);
    if (!h) answer_fetches(s, NULL, "dialog"); /* with this node's view */
}

void subs_dialog_remote_changed(struct subs *s, const char *aor, const struct dialog_info_entry *c, size_t n)
{
    const struct dialog_info_entry *d[64], *mine[64];
    size_t k = 0, nm = s->dialogs ? dialog_table_list(s->dialogs, aor, mine, 64) : 0;
    for (size_t i = 0; i < n && k < 64; i++) {
        bool here = false;
        for (size_t j = 0; j < nm && !here; j++) here = strcmp(mine[j]->id, c[i].id) == 0;
        if (!here) d[k++] = &c[i];
    }
    if (k) notify_dialogs(s, aor, d, k); /* not to those waiting for their first NOTIFY */
    /* the first read answered: the watchers waiting for it get the full state */
    for (struct hnode *h = htable_first(&s->by_aor, str_hash(str_from_cstr(aor))); h; h = htable_next(h)) {
        struct subs_sub *sub = container_of(h, struct subs_sub, by_aor);
        if (strcmp(sub->event, "dialog") != 0 || strcmp(sub->aor, aor) != 0 || !sub->awaiting_remote || sub->fetch)
            continue;
        sub->awaiting_remote = false;
        sub_notify_full(s, sub);
    }
    answer_fetches(s, aor, "dialog");
}

void subs_dialog_foreach(struct subs *s, int (*fn)(void *arg, const struct dialog_info_entry *e), void *arg)
{
    if (s->dialogs) dialog_table_foreach(s->dialogs, fn, arg);
}

void subs_location_observer(struct subs *s, struct location_callbacks *cb)
{
    *cb = (struct location_callbacks){
        .arg = s, .binding_added = obs_added, .binding_refreshed = obs_refreshed, .binding_removed = obs_removed};
}

/* ---- dialog (RFC 4235): the calls the proxy forwards ---- */

/* Whether aor has a subscription to pkg. */
static bool watched(const struct subs *s, const char *aor, const char *pkg)
{
    for (struct hnode *n = htable_first(&s->by_aor, str_hash(str_from_cstr(aor))); n; n = htable_next(n)) {
        const struct subs_sub *sub = container_of(n, struct subs_sub, by_aor);
        if (strcmp(sub->aor, aor) == 0 && strcmp(sub->event, pkg) == 0) return true;
    }
    return false;
}

/* The AoR key of a URI of our domain ("" when not ours). */
static void local_aor(struct subs *s, const struct sip_uri *u, char *aor, size_t cap)
{
    aor[0] = '\0';
    if ((u->scheme != SIP_SCHEME_SIP && u->scheme != SIP_SCHEME_SIPS) || !u->user.len) return;
    if (!registrar_uri_is_local(s->registrar, u, NULL, false)) return;
    if (registrar_aor_key(u, aor, cap) <= 0) aor[0] = '\0';
}

/* A partial NOTIFY with e to each dialog subscription of e's AoR. Each
 * change goes at once, not held behind an unanswered NOTIFY: the document
 * version orders them (RFC 4235 §4.1), and a busy lamp must not miss the
 * short-lived states. */
static void notify_dialogs(struct subs *s, const char *aor, const struct dialog_info_entry *const *d, size_t nd)
{
    char uri[LOCATION_MAX_AOR + 160];
    aor_uri(s, aor, uri, sizeof(uri));
    for (struct hnode *n = htable_first(&s->by_aor, str_hash(str_from_cstr(aor))); n; n = htable_next(n)) {
        struct subs_sub *sub = container_of(n, struct subs_sub, by_aor);
        if (strcmp(sub->aor, aor) != 0 || strcmp(sub->event, "dialog") != 0 || sub->awaiting_remote || sub->fetch)
            continue;
        sbuf_clear(&s->sb);
        if (dialog_info_build(&s->sb, sub->version++, false, uri, d, nd) < 0) continue;
        char line[48];
        snprintf(line, sizeof(line), "active;expires=%u", seconds_left(s, sub));
        sub_send_notify(s, sub, line, false);
        sub_persist(s, sub);
    }
}

/* Notifies e's change (and shares it: subs_dialog_hooks); a terminated
 * entry has had its last word and goes. */
static void dialog_changed(struct subs *s, struct dialog_info_entry *e)
{
    if (s->dlg.changed) s->dlg.changed(s->dlg.arg, e);
    const struct dialog_info_entry *one[1] = {e};
    notify_dialogs(s, dialog_table_aor(e), one, 1);
    if (e->state == DIALOG_TERMINATED) dialog_table_remove(s->dialogs, e);
}

static void copy_cstr(char *dst, size_t cap, str_t v)
{
    size_t n = v.len < cap ? v.len : cap - 1;
    if (n) memcpy(dst, v.s, n); /* an absent display name has no pointer */
    dst[n] = '\0';
}

/* An initial INVITE: a trying entry for each watched party of ours. */
static void dialog_invite(struct subs *s, const struct sip_msg *req)
{
    const struct sip_name_addr *side[2] = {&req->from, &req->to};
    for (int i = 0; i < 2; i++) {
        char aor[LOCATION_MAX_AOR];
        local_aor(s, &side[i]->uri, aor, sizeof(aor));
        if (!aor[0] || !(watched(s, aor, "dialog") || (s->dlg.shared && s->dlg.shared(s->dlg.arg, aor)))) continue;
        if (dialog_table_find(s->dialogs, aor, req->call_id, req->from.tag)) continue; /* calls itself */
        struct dialog_info_entry *e = dialog_table_add(s->dialogs, aor, req->call_id, req->from.tag, i == 0);
        if (!e) {
            log_warn_rl("subs: call %.*s of %s not tracked ([subscriptions] dialog_max_per_user)",
                        STR_FMT(req->call_id), aor);
            continue;
        }
        const struct sip_name_addr *other = side[1 - i];
        copy_cstr(e->local_uri, sizeof(e->local_uri), side[i]->uri_raw);
        copy_cstr(e->remote_uri, sizeof(e->remote_uri), other->uri_raw);
        copy_cstr(e->remote_display, sizeof(e->remote_display), other->display);
        dialog_changed(s, e);
    }
}

static void dialog_response(struct subs *s, const struct sip_msg *req, const struct sip_msg *resp, int status,
                            bool cancelled, bool timed_out)
{
    const struct sip_uri *side[2] = {&req->from.uri, &req->to.uri};
    str_t to_tag = resp ? resp->to.tag : STR_NULL;
    for (int i = 0; i < 2; i++) {
        char aor[LOCATION_MAX_AOR];
        local_aor(s, side[i], aor, sizeof(aor));
        if (!aor[0]) continue;
        struct dialog_info_entry *e = dialog_table_find(s->dialogs, aor, req->call_id, req->from.tag);
        if (e && dialog_info_on_response(e, status, to_tag, cancelled, timed_out)) dialog_changed(s, e);
    }
}

/* A BYE ends the dialog whose two tags it carries, for both parties. */
static void dialog_bye(struct subs *s, const struct sip_msg *bye)
{
    struct dialog_info_entry *e[8];
    size_t n = dialog_table_by_call(s->dialogs, bye->call_id, e, 8);
    for (size_t i = 0; i < n; i++) {
        bool tags = (str_eq_cstr(bye->from.tag, e[i]->local_tag) && str_eq_cstr(bye->to.tag, e[i]->remote_tag)) ||
                    (str_eq_cstr(bye->from.tag, e[i]->remote_tag) && str_eq_cstr(bye->to.tag, e[i]->local_tag));
        if (tags && dialog_info_on_bye(e[i], bye->from.tag)) dialog_changed(s, e[i]);
    }
}

void subs_on_call(struct subs *s, enum subs_call_what what, const struct sip_msg *req, const struct sip_msg *resp,
                  int status, bool cancelled, bool timed_out)
{
    if (!s || !req || !s->dialogs) return;
    if (what == SUBS_CALL_BYE) {
        dialog_bye(s, req);
        return;
    }
    if (req->method != SIP_INVITE || req->to.tag.len || !req->from.tag.len) return; /* re-INVITEs change nothing */
    if (what == SUBS_CALL_INVITE) dialog_invite(s, req);
    else dialog_response(s, req, resp, status, cancelled, timed_out);
}

/* ---- message-summary (RFC 3842): summaries from a voicemail source ---- */

static void answer_source(struct txn *st, const struct transport_rx *rx, int status, const char *reason,
                          const char *why)
{
    if (status >= 300)
        log_warn_rl("subs: %d to a message-summary NOTIFY from %s: %s", status, rx->src_text, why);
    else
        log_debug("subs: message summary from %s taken", rx->src_text);
    respond(st, status, reason, STR_NULL, NULL, 0);
}

/* An out-of-dialog NOTIFY (Event: message-summary) to one of our users: a
 * configured source's summary is kept and sent to the user's watchers;
 * anyone else's is refused 403. Other NOTIFYs are not ours (0). */
static int source_notify(struct subs *s, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    char pkg[24], aor[LOCATION_MAX_AOR];
    const struct sip_header *ev = sip_msg_header(m, SIP_HDR_EVENT);
    if (!ev || subs_event_package(ev->value, pkg, sizeof(pkg)) < 0 || strcmp(pkg, "message-summary") != 0) return 0;
    if (!for_us(s, rx, aor, sizeof(aor))) return 0;
    if (!mwi_source_match(s->sources, s->nsources, &rx->src)) {
        answer_source(st, rx, 403, "Not A Voicemail Source", "not in [subscriptions] voicemail_source");
        return 1;
    }
    const struct location_binding *b;
    struct location *loc = registrar_location(s->registrar);
    if (!aor[0] || (!registrar_user_known(s->registrar, str_from_cstr(aor)) &&
                    (!loc || location_lookup(loc, str_from_cstr(aor), &b, 1) == 0))) {
        answer_source(st, rx, 404, "Not Found", "no such user");
        return 1;
    }
    str_t ct = str_trim(m->content_type);
    const char *semi = ct.len ? memchr(ct.s, ';', ct.len) : NULL;
    if (semi) ct = str_trim(str_make(ct.s, (size_t)(semi - ct.s)));
    if (!str_ieq_cstr(ct, MWI_CONTENT_TYPE)) {
        answer_source(st, rx, 415, "Unsupported Media Type", "not application/simple-message-summary");
        return 1;
    }
    const char *why = NULL;
    if (mwi_validate(m->body.s, m->body.len, &why) < 0) {
        answer_source(st, rx, 400, why, why);
        return 1;
    }
    /* the order between nodes (mwi_mirror.h): the wall clock when taken, never
     * below the summary held (one another node stamped a little ahead) */
    int64_t stamp = clock_wall_ms(), held = mwi_store_stamp(s->mwi, aor);
    if (held >= stamp) stamp = held + 1;
    int rc = mwi_store_put(s->mwi, aor, m->body.s, m->body.len, stamp);
    if (rc < 0) {
        answer_source(st, rx, 503, "Service Unavailable", rc == -ENOSPC ? "summary table full" : "no memory");
        return 1;
    }
    answer_source(st, rx, 200, "OK", NULL);
    subs_mwi_changed(s, aor);
    if (s->mwi_hooks.taken) s->mwi_hooks.taken(s->mwi_hooks.arg, aor);
    return 1;
}

void subs_mwi_changed(struct subs *s, const char *aor)
{
    for (struct hnode *n = htable_first(&s->by_aor, str_hash(str_from_cstr(aor))); n; n = htable_next(n)) {
        struct subs_sub *sub = container_of(n, struct subs_sub, by_aor);
        if (strcmp(sub->aor, aor) == 0 && strcmp(sub->event, "message-summary") == 0) sub_notify_full(s, sub);
    }
}

void subs_set_mwi_hooks(struct subs *s, const struct subs_mwi_hooks *h)
{
    if (h) s->mwi_hooks = *h;
    else memset(&s->mwi_hooks, 0, sizeof(s->mwi_hooks));
}

struct mwi_store *subs_mwi_store(struct subs *s) { return s->mwi; }

/* The presence watchers of aor changed: its presence.winfo subscribers get
 * the new list. */
static void winfo_changed(struct subs *s, const char *aor)
{
    for (struct hnode *n = htable_first(&s->by_aor, str_hash(str_from_cstr(aor))); n; n = htable_next(n)) {
        struct subs_sub *sub = container_of(n, struct subs_sub, by_aor);
        if (strcmp(sub->aor, aor) == 0 && strcmp(sub->event, "presence.winfo") == 0) sub_notify_full(s, sub);
    }
}

/* A user's published presence changed: its watchers get the new document
 * (not those waiting for the first read of the other nodes' publications:
 * on_first_read sends theirs). */
static void on_presence_change(void *arg, const char *aor)
{
    struct subs *s = arg;
    for (struct hnode *n = htable_first(&s->by_aor, str_hash(str_from_cstr(aor))); n; n = htable_next(n)) {
        struct subs_sub *sub = container_of(n, struct subs_sub, by_aor);
        if (strcmp(sub->aor, aor) == 0 && strcmp(sub->event, "presence") == 0 && !sub->awaiting_remote &&
            !sub->fetch)
            sub_notify_full(s, sub);
    }
}

/* A presence watcher waiting for its first NOTIFY gets it. */
static void presence_release(struct subs *s, struct subs_sub *sub)
{
    if (strcmp(sub->event, "presence") != 0 || !sub->awaiting_remote || sub->fetch) return;
    sub->awaiting_remote = false;
    sub_notify_full(s, sub);
}

static int presence_release_one(struct hnode *n, void *arg)
{
    presence_release(arg, container_of(n, struct subs_sub, by_key));
    return 0;
}

/* The first read of aor's publications on the other nodes answered, or
 * failed at its deadline (NULL: every AoR's, the mirror went): the
 * watchers and fetches waiting for it get the state now, in one NOTIFY. */
static void on_first_read(void *arg, const char *aor)
{
    struct subs *s = arg;
    if (!aor) {
        htable_foreach(&s->by_key, presence_release_one, s);
    } else {
        for (struct hnode *n = htable_first(&s->by_aor, str_hash(str_from_cstr(aor))); n; n = htable_next(n)) {
            struct subs_sub *sub = container_of(n, struct subs_sub, by_aor);
            if (strcmp(sub->aor, aor) == 0) presence_release(s, sub);
        }
    }
    answer_fetches(s, aor, "presence");
}

/* A presence subscription of aor that its allow list no longer allows, or
 * NULL (the policy applies to authenticated watchers: [auth] require_auth). */
static struct subs_sub *unallowed_watcher(struct subs *s, const char *aor)
{
    for (struct hnode *n = htable_first(&s->by_aor, str_hash(str_from_cstr(aor))); n; n = htable_next(n)) {
        struct subs_sub *sub = container_of(n, struct subs_sub, by_aor);
        if (strcmp(sub->aor, aor) == 0 && strcmp(sub->event, "presence") == 0 &&
            !presence_may_watch(s->presence, sub->who, aor))
            return sub;
    }
    return NULL;
}

/* aor's allow list was set or changed (here or by another node): each
 * presence subscription to it from a watcher it no longer allows ends now
 * (RFC 6665 §4.2.2, "rejected"), without the document it may not see. */
static void on_allow_change(void *arg, const char *aor)
{
    struct subs *s = arg;
    if (!s->require_auth || s->cfg.presence_policy != SUBS_PRESENCE_ALLOWLIST) return;
    struct subs_sub *sub;
    while ((sub = unallowed_watcher(s, aor))) {
        log_info("subs: presence subscription of %s (%s) to %s ended: no longer in its allow list", sub->subscriber,
                 sub->who[0] ? sub->who : "unknown user", aor);
        s->stats.ended_rejected++;
        sbuf_clear(&s->sb); /* no body: the watcher may not see the state */
        sub_send_notify(s, sub, "terminated;reason=rejected", true);
        sub_remove(s, sub); /* its presence.winfo watchers get the list without it */
    }
}

struct presence *subs_presence(struct subs *s) { return s->presence; }

static int record_replay(struct hnode *n, void *arg)
{
    record_changed(arg, container_of(n, struct subs_sub, by_key));
    return 0;
}

void subs_set_record_hooks(struct subs *s, const struct subs_record_hooks *h)
{
    if (h) s->rec = *h;
    else memset(&s->rec, 0, sizeof(s->rec));
    htable_foreach(&s->by_key, record_replay, s);
}

int subs_records(struct subs *s, const char *aor, subs_records_cb cb, void *ctx, void **handle)
{
    *handle = NULL;
    if (s->rec.list) return s->rec.list(s->rec.arg, aor, cb, ctx, handle);
    struct subs_record *r = calloc(SUBS_RECORDS_MAX, sizeof(*r));
    if (!r) return -ENOMEM;
    size_t n = 0;
    for (struct hnode *h = htable_first(&s->by_aor, str_hash(str_from_cstr(aor))); h && n < SUBS_RECORDS_MAX;
         h = htable_next(h)) {
        const struct subs_sub *sub = container_of(h, struct subs_sub, by_aor);
        if (strcmp(sub->aor, aor) == 0 && !sub->fetch) record_of(sub, &r[n++]);
    }
    cb(ctx, 0, r, n);
    free(r);
    return 0;
}

void subs_records_cancel(struct subs *s, void *handle)
{
    if (handle && s->rec.cancel) s->rec.cancel(s->rec.arg, handle);
}

/* ---- life cycle ---- */

struct subs *subs_new(const struct subs_deps *d)
{
    struct subs *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->cfg = *d->cfg;
    s->local = d->local;
    s->require_auth = d->require_auth;
    s->digest = d->digest;
    s->registrar = d->registrar;
    s->ua = d->ua;
    s->timers = d->timers;
    s->store = d->store;
    s->claim_loaded = d->claim_loaded;
    htable_init(&s->by_key);
    htable_init(&s->by_aor);
    htable_init(&s->by_subscriber);
    sbuf_init(&s->sb);
    char why[200];
    int n = mwi_sources_parse(s->cfg.voicemail_source, s->sources, MWI_MAX_SOURCES, why, sizeof(why));
    if (n < 0) log_warn("subs: [subscriptions] %s: message-summary is off", why);
    s->nsources = n > 0 ? (size_t)n : 0;
    s->dialogs = dialog_table_new((unsigned)s->cfg.dialog_max_per_user);
    s->mwi = mwi_store_new(s->cfg.max_total > 0 ? (unsigned)s->cfg.max_total : 100000u);
    struct presence_deps pd = {.cfg = &s->cfg, .timers = d->timers, .require_auth = d->require_auth,
                               .digest = d->digest, .store = d->store, .registrar = d->registrar,
                               .on_change = on_presence_change, .on_allow_change = on_allow_change,
                               .on_first_read = on_first_read, .arg = s};
    s->presence = presence_new(&pd);
    if (!s->dialogs || !s->mwi || !s->presence) {
        subs_free(s);
        return NULL;
    }
    return s;
}

struct load_ctx {
    struct subs *s;
    int64_t now_wall;
    int loaded;
    bool hold;       /* held unclaimed (subs_load with claim_loaded) */
    bool quiet;      /* no record written (an adoption refused over a cap) */
};

/* The flow a subscription came over died with the old process: UDP keeps
 * its source address, a connection-oriented one goes to its target. */
static void restore_dest(struct subs_sub *sub, const char *transport)
{
    int proto = sip_transport_from_name(str_from_cstr(transport));
    if (proto != SIP_TRANSPORT_UDP) return;
    char host[TRANSPORT_ADDR_TEXT];
    snprintf(host, sizeof(host), "%s", sub->remote);
    char *colon = strrchr(host, ':');
    if (!colon) return;
    *colon = '\0';
    char *h = host;
    size_t hl = strlen(h);
    if (h[0] == '[' && hl > 1 && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    if (ua_dest_from_host(h, (uint16_t)atoi(colon + 1), SIP_TRANSPORT_UDP, 0, &sub->dest) == 0) sub->dest_ok = true;
}

/* The user a stored subscription's watcher is (its row keeps no digest
 * name): the From URI's user when the URI is of our domain, else "". */
static void who_of_subscriber(struct subs *s, const char *subscriber, char *who, size_t cap)
{
    who[0] = '\0';
    struct sip_uri u;
    if (!s->require_auth || sip_uri_parse(str_from_cstr(subscriber), &u) != 0 || !u.user.len) return;
    if (!registrar_uri_is_local(s->registrar, &u, NULL, false) || registrar_aor_key(&u, who, cap) <= 0) who[0] = '\0';
}

static int load_row(void *arg, const struct store_subscription *row)
{
    struct load_ctx *c = arg;
    if (row->expires_at <= c->now_wall) {
        sub_forget(c->s, row->call_id, row->local_tag);
        return 0;
    }
    char who[SUBS_MAX_TAG];
    who_of_subscriber(c->s, row->subscriber, who, sizeof(who));
    struct sub_text v = {.call_id = str_from_cstr(row->call_id), .remote_tag = str_from_cstr(row->remote_tag),
                         .aor = str_from_cstr(row->aor), .subscriber = str_from_cstr(row->subscriber),
                         .target = str_from_cstr(row->target), .routes = str_from_cstr(row->routes),
                         .who = str_from_cstr(who)};
    bool too_long;
    struct subs_sub *sub = sub_new(&v, &too_long);
    if (!sub) return too_long ? 0 : -ENOMEM;
    sub->owner = c->s;
    if (!copy_str(sub->local_tag, sizeof(sub->local_tag), str_from_cstr(row->local_tag)) ||
        !copy_str(sub->event, sizeof(sub->event), str_from_cstr(row->event)) ||
        !copy_str(sub->remote, sizeof(sub->remote), str_from_cstr(row->remote)) || link_sub(c->s, sub) < 0) {
        sub_free(sub);
        return 0;
    }
    sub->local_cseq = row->local_cseq;
    sub->remote_cseq = row->remote_cseq;
    sub->version = row->version;
    restore_dest(sub, row->transport);
    uint64_t left_ms = (uint64_t)(row->expires_at - c->now_wall);
    timer_start(c->s->timers, &sub->expiry, timer_now(c->s->timers) + left_ms, on_expiry);
    sub->expires_wall_ms = row->expires_at;
    sub->unclaimed = c->hold;
    if (!c->quiet) record_changed(c->s, sub);
    c->loaded++;
    return 0;
}

int subs_adopt(struct subs *s, const struct store_subscription *row, int64_t now_wall_ms)
{
    if (!package_served(s, row->event)) return -ENOTSUP;
    if (sip_transport_from_name(str_from_cstr(row->transport)) != SIP_TRANSPORT_UDP) return -EHOSTUNREACH;
    if (row->expires_at <= now_wall_ms) return -ETIME;
    if (strlen(row->call_id) >= SUBS_MAX_CALL_ID || strlen(row->local_tag) >= UA_TAG_SIZE) return -EINVAL;
    if (find_sub(s, row->call_id, row->local_tag)) return -EEXIST;
    /* the caps a new SUBSCRIBE meets: this node cannot carry one more */
    bool over = (s->cfg.max_total && s->stats.active >= (uint32_t)s->cfg.max_total) ||
                (s->cfg.max_per_subscriber &&
                 subscriber_count(s, row->subscriber) >= (uint32_t)s->cfg.max_per_subscriber);
    struct load_ctx c = {.s = s, .now_wall = now_wall_ms, .quiet = over};
    int rc = load_row(&c, row);
    if (rc < 0) return rc;
    struct subs_sub *sub = c.loaded ? find_sub(s, row->call_id, row->local_tag) : NULL;
    if (!sub) return -EINVAL;
    if (over) {
        /* RFC 6665 §4.2.2: "deactivated", the subscriber re-subscribes at
         * once, out of the dialog, and is admitted like any (here or on a
         * node with room; a 503 Retry-After or 403 by the caps otherwise) */
        sbuf_clear(&s->sb);
        sub_send_notify(s, sub, "terminated;reason=deactivated", true);
        sub->unclaimed = true; /* not this node's: no record was written, none to delete */
        sub_remove(s, sub);
        return -EDQUOT;
    }
    log_info("subs: %s subscription of %s to %s taken over (NOTIFYs to %s)", sub->event, sub->subscriber, sub->aor,
             sub->remote);
    /* with this node's Contact: the subscriber's next refresh comes here;
     * once the other nodes' state is read when this node had no view of it */
    if (first_read_pending(s, sub->event, sub->aor)) sub->awaiting_remote = true;
    else sub_notify_full(s, sub);
    if (strcmp(sub->event, "presence") == 0) winfo_changed(s, sub->aor);
    return 0;
}

struct unclaimed_ctx {
    void (*fn)(void *arg, const struct subs_record *r);
    void *arg;
    size_t n;
};

static int unclaimed_one(struct hnode *n, void *arg)
{
    struct unclaimed_ctx *u = arg;
    const struct subs_sub *sub = container_of(n, struct subs_sub, by_key);
    if (!sub->unclaimed) return 0;
    struct subs_record r;
    record_of(sub, &r);
    u->fn(u->arg, &r);
    u->n++;
    return 0;
}

size_t subs_unclaimed(struct subs *s, void (*fn)(void *arg, const struct subs_record *r), void *arg)
{
    struct unclaimed_ctx u = {fn, arg, 0};
    htable_foreach(&s->by_key, unclaimed_one, &u);
    return u.n;
}

static int unclaim_one(struct hnode *n, void *arg)
{
    struct subs_sub *sub = container_of(n, struct subs_sub, by_key);
    /* over a connection, its record says so: no survivor adopts it (subs_adopt) */
    if (sub->fetch || sub->unclaimed || sub->dest.proto != SIP_TRANSPORT_UDP) return 0;
    sub->unclaimed = true;
    (*(size_t *)arg)++;
    return 0;
}

size_t subs_unclaim_all(struct subs *s)
{
    size_t n = 0;
    htable_foreach(&s->by_key, unclaim_one, &n);
    return n;
}

static int rewrite_one(struct hnode *n, void *arg)
{
    struct subs_sub *sub = container_of(n, struct subs_sub, by_key);
    if (!sub->fetch) record_changed(arg, sub); /* unclaimed ones are not written */
    return 0;
}

void subs_records_rewrite(struct subs *s) { htable_foreach(&s->by_key, rewrite_one, s); }

int subs_claimed(struct subs *s, const char *call_id, const char *tag, bool kept)
{
    struct subs_sub *sub = find_sub(s, call_id, tag);
    if (!sub || !sub->unclaimed) return -ENOENT;
    if (!kept) {
        log_info("subs: %s subscription of %s to %s let go: another node took it while this one was down or "
                 "taken for dead",
                 sub->event, sub->subscriber, sub->aor);
        sub_remove(s, sub); /* its row and timer; no NOTIFY, no record touched */
        return 0;
    }
    sub->unclaimed = false;
    record_changed(s, sub);
    if (sub->dirty) { /* its state changed while it waited */
        sub->dirty = false;
        sub_notify_full(s, sub);
    }
    return 0;
}

int subs_load(struct subs *s, int64_t now_wall_ms)
{
    if (!s->store) return 0;
    struct load_ctx c = {.s = s, .now_wall = now_wall_ms, .hold = s->claim_loaded};
    int rc = store_load_subscriptions(s->store, load_row, &c);
    if (rc < 0) return rc;
    if (c.loaded) log_info("subs: %d subscriptions taken up from the store", c.loaded);
    rc = presence_load(s->presence);
    if (rc < 0) return rc;
    return c.loaded;
}

static int free_one(struct hnode *n, void *arg)
{
    struct subs *s = arg;
    struct subs_sub *sub = container_of(n, struct subs_sub, by_key);
    timer_stop(s->timers, &sub->expiry);
    htable_remove(&s->by_key, &sub->by_key);
    htable_remove(&s->by_aor, &sub->by_aor);
    count_drop(s, sub->subscriber);
    sub_free(sub);
    return 0;
}

void subs_free(struct subs *s)
{
    if (!s) return;
    while (s->pending) {
        struct subs_pending *p = s->pending;
        pending_unlink(p);
        ua_request_detach(p->h);
        free(p);
    }
    htable_foreach(&s->by_key, free_one, s);
    dialog_table_free(s->dialogs);
    mwi_store_free(s->mwi);
    presence_free(s->presence);
    htable_free(&s->by_key);
    htable_free(&s->by_aor);
    htable_free(&s->by_subscriber); /* every count went to zero (and was freed) with its subscriptions */
    sbuf_free(&s->sb);
    free(s);
}

void subs_get_stats(const struct subs *s, struct subs_stats *out) { *out = s->stats; }

void subs_stats_json(const struct subs *s, json_t *stats)
{
    json_object_set_new(stats, "subscriptions",
                        json_pack("{s:i,s:I,s:I,s:I,s:I,s:I,s:i,s:i}", "active", (int)s->stats.active, "accepted",
                                  (json_int_t)s->stats.accepted, "refused", (json_int_t)s->stats.refused,
                                  "notifies", (json_int_t)s->stats.notifies, "ended_by_peer",
                                  (json_int_t)s->stats.ended_by_peer, "ended_rejected",
                                  (json_int_t)s->stats.ended_rejected, "dialogs_tracked",
                                  (int)dialog_table_count(s->dialogs), "summaries_held",
                                  (int)mwi_store_count(s->mwi)));
}
