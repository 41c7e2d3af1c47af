/* device_subs.c — the upper role's subscriptions to its devices (GB/T
 * 28181-2016 §9.11 catalog, §9.4 alarm, §9.12 mobile position): which ones
 * ([gb] subscribe), the SUBSCRIBE and its refreshes, and the NOTIFYs that
 * arrive within them.
 *
 * Life of one subscription (struct gb_sub, three per device):
 *
 *   IDLE --device online / retry timer--> PENDING (SUBSCRIBE, new Call-ID)
 *   PENDING --2xx--> ACTIVE (refresh timer at 3/4 of the granted Expires)
 *   PENDING --489/405/501--> IDLE (not served: asked again on the next register)
 *   PENDING --other final--> IDLE (retry in GB_SUB_RETRY_MS)
 *   ACTIVE --refresh timer--> PENDING (SUBSCRIBE in the same dialog, CSeq+1)
 *   ACTIVE --NOTIFY "terminated"--> IDLE (retry)
 *   ACTIVE --kind dropped from the device's list--> ENDING (SUBSCRIBE, Expires 0)
 *   ENDING --any final--> IDLE (not asked again while the list leaves it out)
 *   PENDING --2xx after the kind was dropped--> ENDING
 *   any --device offline--> IDLE (timer stopped, SUBSCRIBE forgotten)
 *
 * Which kinds: the device's own list when it has one (sub_own, stored with
 * the device, set through the API), else [gb] subscribe.
 *
 * The dialog (Call-ID, tags, CSeq) lives here rather than in the UA: the UA
 * keeps INVITE dialogs, and a subscription needs nothing of theirs but the
 * identifiers. A NOTIFY is ours when its Call-ID and To tag are one of a
 * device's subscriptions; its body (a MANSCDP Notify) is routed by CmdType,
 * not by the Event header, because platforms differ on the Event value
 * (Catalog, Alarm, MobilePosition, presence...). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gb/upper/upper_int.h"

#include "base/clock.h"
#include "store/store.h"

#define MANSCDP_CT "Application/MANSCDP+xml"
#define GB_SUB_RETRY_MS 30000u  /* a refused or lost subscription is tried again after this */
#define GB_SUB_RESTORE_MS 1000u /* after a restart, devices restored online are subscribed again from here */
#define GB_SUB_RESTORE_SPREAD_MS 4000u

_Static_assert(GB_SUBSCRIBE_CATALOG == 1u << GB_SUB_CATALOG && GB_SUBSCRIBE_ALARM == 1u << GB_SUB_ALARM &&
                   GB_SUBSCRIBE_POSITION == 1u << GB_SUB_POSITION,
               "the API's subscribe bits are the kinds'");

static const char *const sub_names[GB_SUB_KINDS] = {"catalog", "alarm", "position"};
/* Event header values we send: the CmdType of the body (§9.11.1 uses Catalog). */
static const char *const sub_events[GB_SUB_KINDS] = {"Catalog", "Alarm", "MobilePosition"};
static const gb_cmd_t sub_cmds[GB_SUB_KINDS] = {GB_CMD_CATALOG, GB_CMD_ALARM, GB_CMD_MOBILE_POSITION};

unsigned gb_subs_parse_mask(const char *list)
{
    unsigned mask = 0;
    const char *p = list ? list : "";
    while (*p) {
        size_t n = strcspn(p, ", ");
        bool known = n == 0;
        for (int k = 0; k < GB_SUB_KINDS; k++)
            if (n == strlen(sub_names[k]) && strncmp(p, sub_names[k], n) == 0) mask |= 1u << k, known = true;
        if (!known) log_warn("[gb] subscribe: \"%.*s\" unknown (catalog, alarm, position)", (int)n, p);
        p += n;
        if (*p) p++;
    }
    return mask;
}

int gb_subs_own_from_text(const char *text)
{
    if (!text || !*text) return -1;
    if (!strcmp(text, "none")) return 0;
    return (int)gb_subs_parse_mask(text);
}

void gb_subs_own_text(int own, char out[GB_SUBS_TEXT_MAX])
{
    out[0] = '\0';
    if (own < 0) return;
    if (own == 0) {
        snprintf(out, GB_SUBS_TEXT_MAX, "none");
        return;
    }
    size_t n = 0;
    for (int k = 0; k < GB_SUB_KINDS; k++)
        if (own & (1 << k)) n += (size_t)snprintf(out + n, GB_SUBS_TEXT_MAX - n, "%s%s", n ? "," : "", sub_names[k]);
}

unsigned gb_subs_mask(const struct gb_device *d) { return d->sub_own >= 0 ? (unsigned)d->sub_own : d->g->sub_mask; }

json_t *gb_subs_mask_json(unsigned mask)
{
    json_t *a = json_array();
    for (int k = 0; k < GB_SUB_KINDS; k++)
        if (mask & (1u << k)) json_array_append_new(a, json_string(sub_names[k]));
    return a;
}

static bool wanted(const struct gb_sub *s) { return (gb_subs_mask(s->dev) >> s->kind) & 1u; }

void gb_subs_device_init(struct gb_device *d)
{
    d->subs = NULL;
    d->sub_own = -1;
}

/* The subscriptions are held only while the device is online and [gb]
 * subscribe asks for some: ~1 KiB that a million devices without them do
 * not pay. */
static struct gb_sub *subs_alloc(struct gb_device *d)
{
    if (d->subs) return d->subs;
    struct gb_sub *a = calloc(GB_SUB_KINDS, sizeof(*a));
    if (!a) return NULL;
    for (int k = 0; k < GB_SUB_KINDS; k++) {
        a[k].dev = d;
        a[k].kind = (uint8_t)k;
        timer_node_init(&a[k].timer);
    }
    return d->subs = a;
}

static void sub_send(struct gb_upper *g, struct gb_sub *s, int expires);

/* The dialog of an active subscription, kept so that a restart refreshes
 * it instead of making a new one (the device would hold both). */
static void sub_store(struct gb_upper *g, struct gb_sub *s)
{
    if (!g->store) return;
    struct store_gb_sub row = {.device_id = s->dev->id, .kind = sub_names[s->kind], .call_id = s->call_id,
                               .local_tag = s->local_tag, .remote_tag = s->remote_tag, .cseq = s->cseq,
                               .expires_at = clock_wall_ms() + (int64_t)s->expires_s * 1000};
    if (store_submit(g->store, store_op_gb_sub_upsert(&row), NULL, NULL) == 0) s->stored = true;
}

static void sub_unstore(struct gb_upper *g, struct gb_sub *s)
{
    if (!s->stored || !g->store || g->stopping) return; /* stopping: kept for the restart */
    store_submit(g->store, store_op_gb_sub_delete(s->dev->id, sub_names[s->kind]), NULL, NULL);
    s->stored = false;
}

static void sub_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct gb_sub *s = container_of(n, struct gb_sub, timer);
    struct gb_upper *g = s->dev->g;
    if (!s->dev->online || g->stopping || s->state == GB_SUB_PENDING || s->state == GB_SUB_ENDING || !wanted(s))
        return;
    if (s->state == GB_SUB_IDLE) s->remote_tag[0] = '\0'; /* a new dialog */
    sub_send(g, s, g->cfg.subscribe_expires);
}

/* Ends s with a SUBSCRIBE carrying Expires 0 in its dialog (RFC 6665
 * §4.1.2.3); the device's NOTIFY "terminated" that follows still matches. */
static void sub_end(struct gb_upper *g, struct gb_sub *s)
{
    timer_stop(g->timers, &s->timer);
    s->active_since = 0;
    s->last_error[0] = '\0';
    if (s->state != GB_SUB_ACTIVE || !s->remote_tag[0]) {
        if (s->state != GB_SUB_PENDING && s->state != GB_SUB_ENDING) s->state = GB_SUB_IDLE;
        return; /* a SUBSCRIBE in flight is ended when its 2xx comes */
    }
    log_info("gb subscription %s of %s: no longer wanted, ending it", sub_names[s->kind], s->dev->id);
    sub_send(g, s, 0);
}

static void sub_retry(struct gb_upper *g, struct gb_sub *s, const char *why)
{
    sub_unstore(g, s);
    s->state = GB_SUB_IDLE;
    s->active_since = 0;
    snprintf(s->last_error, sizeof(s->last_error), "%s", why);
    timer_start(g->timers, &s->timer, gb_now(g) + GB_SUB_RETRY_MS, sub_timer);
}

static void sub_on_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                         const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)rx, (void)dlg;
    struct gb_sub *s = arg;
    struct gb_device *d = s->dev;
    struct gb_upper *g = d->g;
    s->h = NULL;
    if (s->state == GB_SUB_ENDING) {
        /* Whatever the answer, the subscription is over on our side. */
        s->state = GB_SUB_IDLE;
        sub_unstore(g, s);
        log_info("gb subscription %s of %s ended (SUBSCRIBE Expires 0 answered %d)", sub_names[s->kind], d->id,
                 status);
        gb_publish(g, "gb.subscription",
                   json_pack("{s:s,s:s,s:s}", "device_id", d->id, "event", sub_names[s->kind], "state", "ended"));
        return;
    }
    if (!wanted(s)) {
        /* Dropped from the device's list while this SUBSCRIBE was in flight. */
        s->state = GB_SUB_IDLE;
        sub_unstore(g, s);
        if (status >= 200 && status < 300 && resp && resp->to.tag.len) {
            str_copy(s->remote_tag, sizeof(s->remote_tag), resp->to.tag);
            s->state = GB_SUB_ACTIVE;
            sub_end(g, s);
        }
        return;
    }
    if (status >= 200 && status < 300 && resp) {
        if (resp->to.tag.len) str_copy(s->remote_tag, sizeof(s->remote_tag), resp->to.tag);
        /* The notifier may shorten the time (RFC 6665 §4.2.1.1); 0 ends it. */
        int granted = resp->expires >= 0 && resp->expires < g->cfg.subscribe_expires ? (int)resp->expires
                                                                                      : g->cfg.subscribe_expires;
        if (granted == 0) {
            sub_retry(g, s, "expires-0");
            return;
        }
        bool fresh = s->state != GB_SUB_ACTIVE && !s->active_since;
        s->state = GB_SUB_ACTIVE;
        s->expires_s = granted;
        s->last_error[0] = '\0';
        if (!s->active_since) s->active_since = clock_wall_ms();
        timer_start(g->timers, &s->timer, gb_now(g) + (uint64_t)granted * 750u, sub_timer);
        sub_store(g, s);
        if (fresh) {
            log_info("gb subscription %s of %s active (expires %d)", sub_names[s->kind], d->id, granted);
            gb_publish(g, "gb.subscription",
                       json_pack("{s:s,s:s,s:s,s:i}", "device_id", d->id, "event", sub_names[s->kind], "state",
                                 "active", "expires", granted));
        }
        return;
    }
    char why[32];
    snprintf(why, sizeof(why), "status-%d", status);
    s->remote_tag[0] = '\0';
    if (status == 489 || status == 405 || status == 501) {
        /* The device does not serve this package (RFC 6665 §8.3.1): asking
         * again changes nothing until it registers anew. */
        log_warn("gb subscription %s of %s: SUBSCRIBE answered %d, not asked again until it re-registers",
                 sub_names[s->kind], d->id, status);
        s->state = GB_SUB_IDLE;
        sub_unstore(g, s);
        snprintf(s->last_error, sizeof(s->last_error), "%s", why);
        return;
    }
    log_warn("gb subscription %s of %s: SUBSCRIBE answered %d, again in %u s", sub_names[s->kind], d->id, status,
             GB_SUB_RETRY_MS / 1000u);
    sub_retry(g, s, why);
    /* 481: the device forgot the dialog (it restarted, or we did and it let
     * the dialog go): a new one at once rather than after the retry delay. */
    if (status == 481) timer_start(g->timers, &s->timer, gb_now(g) + 1000u, sub_timer);
}

static const struct ua_uac_cb sub_cb = {.on_final = sub_on_final};

static void sub_send(struct gb_upper *g, struct gb_sub *s, int expires)
{
    struct gb_device *d = s->dev;
    bool refresh = s->remote_tag[0] != '\0';
    if (!refresh) {
        ua_new_call_id(g->ua, s->call_id);
        ua_new_tag(g->ua, s->local_tag);
        s->cseq = 0;
    }
    sbuf_t body;
    sbuf_init(&body);
    int interval = s->kind == GB_SUB_POSITION ? g->cfg.position_interval : -1;
    if (gb_manscdp_build_subscribe_query(&body, d->charset, sub_cmds[s->kind], g->next_sn++, d->id, interval) != 0 ||
        body.failed) {
        sbuf_free(&body);
        sub_retry(g, s, "no-memory");
        return;
    }
    struct ua_request r;
    char buf[512], ev[48], ex[32];
    gb_device_request(g, d, d->id, &r, buf, sizeof(buf));
    snprintf(ev, sizeof(ev), "Event: %s", sub_events[s->kind]);
    snprintf(ex, sizeof(ex), "Expires: %d", expires);
    str_t lines[] = {str_from_cstr(ev), str_from_cstr(ex)};
    r.method = SIP_SUBSCRIBE;
    r.call_id = str_from_cstr(s->call_id);
    r.from_tag = str_from_cstr(s->local_tag);
    r.to_tag = refresh ? str_from_cstr(s->remote_tag) : STR_NULL;
    r.cseq = ++s->cseq;
    r.auto_contact = true;  /* where the device sends its NOTIFYs */
    r.headers = lines;
    r.header_count = 2;
    r.content_type = STR_LIT(MANSCDP_CT);
    r.body = sbuf_str(&body);
    struct transport_dest dest;
    gb_device_dest(d, &dest);
    s->h = ua_request_send(g->ua, &r, &dest, NULL, &sub_cb, s);
    sbuf_free(&body);
    if (!s->h) {
        if (expires == 0) s->state = GB_SUB_IDLE; /* the device lets it expire */
        else sub_retry(g, s, "not-sent");
        return;
    }
    s->state = expires == 0 ? GB_SUB_ENDING : GB_SUB_PENDING;
}

void gb_subs_device_online(struct gb_upper *g, struct gb_device *d)
{
    unsigned mask = gb_subs_mask(d);
    if (!mask) return;
    if (!subs_alloc(d)) {
        log_warn("gb: no memory for the subscriptions of %s", d->id);
        return;
    }
    for (int k = 0; k < GB_SUB_KINDS; k++) {
        struct gb_sub *s = &d->subs[k];
        if (!(mask & (1u << k)) || s->state != GB_SUB_IDLE) continue;
        s->remote_tag[0] = '\0';
        timer_stop(g->timers, &s->timer);
        sub_send(g, s, g->cfg.subscribe_expires);
    }
}

void gb_subs_device_restored(struct gb_upper *g, struct gb_device *d)
{
    unsigned mask = gb_subs_mask(d);
    if (!mask || !subs_alloc(d)) return;
    /* Spread over GB_SUB_RESTORE_SPREAD_MS so that a node restarting with
     * many devices online does not send all their SUBSCRIBEs at once. */
    uint64_t at = gb_now(g) + GB_SUB_RESTORE_MS + str_hash(str_from_cstr(d->id)) % GB_SUB_RESTORE_SPREAD_MS;
    for (int k = 0; k < GB_SUB_KINDS; k++) {
        struct gb_sub *s = &d->subs[k];
        if (!(mask & (1u << k)) || s->state != GB_SUB_IDLE) continue;
        s->remote_tag[0] = '\0';
        timer_start(g->timers, &s->timer, at, sub_timer);
    }
}

static int load_sub_row(void *arg, const struct store_gb_sub *row)
{
    struct gb_upper *g = arg;
    struct gb_device *d = gb_device_find(g, row->device_id);
    int kind = -1;
    for (int k = 0; k < GB_SUB_KINDS; k++)
        if (!strcmp(row->kind, sub_names[k])) kind = k;
    int64_t left = row->expires_at - clock_wall_ms();
    struct gb_sub *s = d && d->online && d->subs && kind >= 0 ? &d->subs[kind] : NULL;
    if (!s || !(gb_subs_mask(d) & (1u << kind)) || left <= 1000 || !row->call_id[0] || !row->local_tag[0] ||
        !row->remote_tag[0] || strlen(row->call_id) >= sizeof(s->call_id) ||
        strlen(row->local_tag) >= sizeof(s->local_tag) || strlen(row->remote_tag) >= sizeof(s->remote_tag)) {
        /* Over, or for a device no longer online or no longer subscribed to. */
        if (g->store) store_submit(g->store, store_op_gb_sub_delete(row->device_id, row->kind), NULL, NULL);
        return 0;
    }
    snprintf(s->call_id, sizeof(s->call_id), "%s", row->call_id);
    snprintf(s->local_tag, sizeof(s->local_tag), "%s", row->local_tag);
    snprintf(s->remote_tag, sizeof(s->remote_tag), "%s", row->remote_tag);
    s->cseq = row->cseq;
    s->state = GB_SUB_ACTIVE; /* the refresh gb_subs_device_restored armed goes within this dialog */
    s->expires_s = (int)(left / 1000);
    s->active_since = clock_wall_ms();
    s->stored = true;
    return 0;
}

int gb_subs_load(struct gb_upper *g)
{
    if (!g->store) return 0;
    int rc = store_load_gb_subs(g->store, load_sub_row, g);
    return rc < 0 ? rc : 0;
}

void gb_subs_device_apply(struct gb_upper *g, struct gb_device *d)
{
    if (!d->online || g->stopping) return;
    unsigned mask = gb_subs_mask(d);
    for (int k = 0; d->subs && k < GB_SUB_KINDS; k++)
        if (!(mask & (1u << k))) sub_end(g, &d->subs[k]);
    gb_subs_device_online(g, d);
}

void gb_subs_device_offline(struct gb_upper *g, struct gb_device *d)
{
    if (!d->subs) return;
    for (int k = 0; k < GB_SUB_KINDS; k++) {
        struct gb_sub *s = &d->subs[k];
        timer_stop(g->timers, &s->timer);
        if (s->h) ua_request_cancel(s->h);
        s->h = NULL;
        sub_unstore(g, s); /* offline: the subscriptions are over (kept when the node stops) */
    }
    free(d->subs);
    d->subs = NULL;
}

static struct gb_sub *sub_of_notify(struct gb_device *d, const struct sip_msg *m)
{
    for (int k = 0; d->subs && k < GB_SUB_KINDS; k++) {
        struct gb_sub *s = &d->subs[k];
        if (s->local_tag[0] && str_eq_cstr(m->to.tag, s->local_tag) && str_eq_cstr(m->call_id, s->call_id)) return s;
    }
    return NULL;
}

static void answer(struct txn *st, int status, const char *reason)
{
    int rc = txn_respond(st, status, reason, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
    if (rc < 0) log_warn("gb: %d to NOTIFY not sent: %s", status, strerror(-rc));
}

/* "terminated" in Subscription-State (RFC 6665 §8.2.3). */
static bool notify_terminated(const struct sip_msg *m)
{
    const struct sip_header *h = sip_msg_header_by_name(m, "Subscription-State");
    if (!h) return false;
    str_t v = str_trim(h->value);
    return v.len >= 10 && strncasecmp(v.s, "terminated", 10) == 0;
}

int gb_subs_on_notify(struct gb_upper *g, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    struct gb_device *d = gb_device_find_str(g, m->from.uri.user);
    if (!d) return 0;
    struct gb_sub *s = sub_of_notify(d, m);
    if (!s) {
        gb_log_refusal(g, "gb NOTIFY from %s at %s matches none of our subscriptions: 481", d->id, rx->src_text);
        answer(st, 481, "Subscription Does Not Exist");
        return 1;
    }
    if (!s->remote_tag[0] && m->from.tag.len) str_copy(s->remote_tag, sizeof(s->remote_tag), m->from.tag);
    gb_manscdp_t body;
    int rc = m->body.len ? gb_manscdp_parse(m->body.s, m->body.len, NULL, &body) : (gb_manscdp_init(&body), 0);
    if (rc != 0) {
        log_warn("gb NOTIFY from %s at %s: bad MANSCDP body (%s), 400", d->id, rx->src_text, gb_manscdp_strerror(rc));
        answer(st, 400, gb_manscdp_strerror(rc));
        gb_manscdp_free(&body);
        return 1;
    }
    answer(st, 200, "OK");
    s->notifies++;
    if (body.kind == GB_MSG_NOTIFY) {
        if (body.cmd == GB_CMD_CATALOG) gb_catalog_on_notify(g, d, &body);
        else if (body.cmd == GB_CMD_ALARM) gb_alarm_on_notify(g, d, &body);
        else if (body.cmd == GB_CMD_MOBILE_POSITION) gb_position_on_notify(g, d, &body);
        else log_debug("gb NOTIFY %s from %s ignored", body.cmd_type ? body.cmd_type : "?", d->id);
    }
    gb_manscdp_free(&body);
    if (notify_terminated(m) && (s->state == GB_SUB_ACTIVE || s->state == GB_SUB_IDLE) && !wanted(s)) {
        s->state = GB_SUB_IDLE; /* our Expires 0 crossed it, or it ended what we no longer want */
        timer_stop(g->timers, &s->timer);
        sub_unstore(g, s);
    } else if (notify_terminated(m) && s->state != GB_SUB_PENDING && s->state != GB_SUB_ENDING) {
        log_info("gb subscription %s of %s terminated by the device", sub_names[s->kind], d->id);
        s->remote_tag[0] = '\0';
        sub_retry(g, s, "terminated");
    }
    return 1;
}

json_t *gb_subs_json(const struct gb_device *d)
{
    static const char *const states[] = {"idle", "pending", "active", "ending"};
    json_t *o = json_object();
    unsigned mask = gb_subs_mask(d);
    for (int k = 0; k < GB_SUB_KINDS; k++) {
        if (!(mask & (1u << k))) continue;
        const struct gb_sub *s = d->subs ? &d->subs[k] : NULL;
        json_t *e = json_pack("{s:s,s:I}", "state", states[s ? s->state : GB_SUB_IDLE], "notifies",
                              (json_int_t)(s ? s->notifies : 0));
        if (s && s->state == GB_SUB_ACTIVE) {
            json_object_set_new(e, "expires", json_integer(s->expires_s));
            json_object_set_new(e, "call_id", json_string(s->call_id));
        }
        if (s && s->last_error[0]) json_object_set_new(e, "last_error", json_string(s->last_error));
        json_object_set_new(o, sub_names[k], e);
    }
    return o;
}
