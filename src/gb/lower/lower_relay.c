/* lower_relay.c — the middle node of a multi-level cascade: this node is a
 * lower platform to its upstreams and an upper platform to its devices, and
 * relays between the two (GB/T 28181 §9.2.2 cascade play, §9.5 catalog).
 *
 *  - Catalog: the devices registered here appear in our answers as items
 *    under our id (Parental 1, ParentID us) with their channels under them
 *    (ParentID the device, or the parent the device gave inside its own tree).
 *  - INVITE from an upstream for such a channel: sent on to the device with
 *    the upstream's SDP unchanged, so the device streams straight to the
 *    upstream's media address; the device's 200 (its SDP) answers the
 *    upstream. Two dialogs, one per side; BYE on either side ends the other.
 *    A CANCEL from the upstream cancels the INVITE to the device.
 *  - DeviceControl for such a channel: re-encoded in the device's charset
 *    and sent to the device.
 *  - DeviceInfo / DeviceStatus / RecordInfo for such a device or channel:
 *    asked of the device through the upper role's queries (a gb_waiter per
 *    question, joined with the same question in flight); its answer, or an
 *    error answer when it is offline or silent, goes to the upstream with
 *    the upstream's SN and the id it asked about (lower_query.c builds it).
 *  - Changes seen by the upper role (device online/offline, catalog updated),
 *    followed on the event bus, go upward as catalog Notifies.
 *
 * The upper role's devices are read through its public header (upper.h):
 * device handles found by id, their channels as read-only views, requests
 * sent to them and queries asked of them by the role itself. */
#include "gb/lower/lower_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/events.h"
#include "base/clock.h"
#include "base/log.h"
#include "gb/upper/upper.h"
#include "txn/txn.h"

/* ---- lookups ---- */

struct owner_ctx {
    str_t id;
    struct gb_device *dev;
    struct gb_channel_view chan;
};

static void find_channel(struct gb_device *d, void *arg)
{
    struct owner_ctx *c = arg;
    if (c->dev) return;
    struct gb_channel_view ch;
    for (size_t i = 0; i < gb_device_channel_count(d); i++)
        if (gb_device_channel(d, i, &ch) && str_eq_cstr(c->id, ch.id)) {
            c->dev = d;
            c->chan = ch;
            return;
        }
}

/* The device that is id or owns channel id. A linear pass over the upper's
 * devices for a channel id: INVITEs and controls are rare next to keepalives.
 * *chan (when asked): the channel (copied into *chan_out), or NULL when id is
 * the device itself. */
static struct gb_device *owner_of(struct gb_lower *l, str_t id, struct gb_channel_view *chan_out,
                                  const struct gb_channel_view **chan)
{
    struct owner_ctx c = {.id = id};
    if (chan) *chan = NULL;
    if (!l->upper || id.len != GB_ID_LEN) return NULL;
    struct gb_device *d = gb_device_find_str(l->upper, id);
    if (d) return d;
    gb_device_foreach(l->upper, find_channel, &c);
    if (chan && c.dev) {
        *chan_out = c.chan;
        *chan = chan_out;
    }
    return c.dev;
}

bool gb_relay_knows(struct gb_lower *l, str_t id) { return owner_of(l, id, NULL, NULL) != NULL; }

bool gb_relay_across_nodes(struct gb_lower *l) { return l->upper && gb_upper_plays_across_nodes(l->upper); }

/* ---- catalog ---- */

struct cat_ctx {
    struct gb_lower *l;
    const char *only;
    gb_catalog_item_t **items;
    size_t *n, *cap;
    int rc;
};

static void device_items(struct gb_device *d, void *arg)
{
    struct cat_ctx *c = arg;
    struct gb_lower *l = c->l;
    const char *id = gb_device_id(d);
    bool online = gb_device_online(d);
    if (c->rc || (c->only && strcmp(c->only, id))) return;
    char civil[GB_DOMAIN_LEN + 1];
    memcpy(civil, id, 6);
    civil[6] = '\0';
    if (!c->only) {
        gb_catalog_item_t it;
        gb_catalog_item_init(&it);
        const char *name = gb_device_info_str(d, "device_name");
        const char *manufacturer = gb_device_info_str(d, "manufacturer");
        const char *model = gb_device_info_str(d, "model");
        it.device_id = (char *)id;
        it.name = (char *)(name ? name : id);
        it.manufacturer = (char *)(manufacturer ? manufacturer : "unknown");
        it.model = (char *)(model ? model : "unknown");
        it.owner = (char *)"Owner";
        it.civil_code = civil;
        it.address = (char *)"Address";
        it.parental = 1;
        it.parent_id = l->id;
        it.safety_way = 0;
        it.register_way = 1;
        it.secrecy = 0;
        it.status = online ? GB_ONOFF_ON : GB_ONOFF_OFF;
        if ((c->rc = gb_lower_items_push(c->items, c->n, c->cap, &it)) != 0) return;
    }
    struct gb_channel_view view;
    const struct gb_channel_view *ch = &view;
    for (size_t i = 0; i < gb_device_channel_count(d); i++) {
        if (!gb_device_channel(d, i, &view)) continue;
        gb_catalog_item_t it;
        gb_catalog_item_init(&it);
        it.device_id = (char *)ch->id;
        it.name = (char *)(ch->name ? ch->name : ch->id);
        it.manufacturer = (char *)ch->manufacturer;
        it.model = (char *)ch->model;
        it.owner = (char *)"Owner";
        it.civil_code = (char *)(ch->civil_code ? ch->civil_code : civil);
        it.address = (char *)(ch->address ? ch->address : "Address");
        it.parental = 0;
        /* Keep the device's own tree; a channel hung on nothing (or on the
         * platform it registered to, i.e. us) goes under its device. */
        it.parent_id = (char *)(ch->parent_id && *ch->parent_id && strcmp(ch->parent_id, l->id) ? ch->parent_id : id);
        it.business_group_id = (char *)ch->business_group_id;
        it.safety_way = 0;
        it.register_way = 1;
        it.secrecy = 0;
        it.status = !online || !strcmp(ch->status, "OFF") ? GB_ONOFF_OFF : GB_ONOFF_ON;
        if ((c->rc = gb_lower_items_push(c->items, c->n, c->cap, &it)) != 0) return;
    }
}

int gb_relay_catalog(struct gb_lower *l, const char *only_device, gb_catalog_item_t **items, size_t *n,
                     size_t *cap)
{
    if (!l->upper) return 0;
    struct cat_ctx c = {.l = l, .only = only_device, .items = items, .n = n, .cap = cap};
    if (only_device) {
        struct gb_device *d = gb_device_find(l->upper, only_device);
        if (d) device_items(d, &c);
    } else {
        gb_device_foreach(l->upper, device_items, &c);
    }
    return c.rc;
}

static void count_device(struct gb_device *d, void *arg) { *(size_t *)arg += 1 + gb_device_channel_count(d); }

size_t gb_relay_channel_count(struct gb_lower *l)
{
    size_t n = 0;
    if (l->upper) gb_device_foreach(l->upper, count_device, &n);
    return n;
}

static void device_json(struct gb_device *d, void *arg)
{
    json_t *arr = arg;
    const char *id = gb_device_id(d);
    bool online = gb_device_online(d);
    struct gb_channel_view ch;
    for (size_t i = 0; i < gb_device_channel_count(d); i++) {
        if (!gb_device_channel(d, i, &ch)) continue;
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "id", ch.id, "name", ch.name ? ch.name : ch.id,
                              "parent_id", ch.parent_id && *ch.parent_id ? ch.parent_id : id, "status",
                              online ? (ch.status[0] ? ch.status : "ON") : "OFF", "device_id", id, "online",
                              online);
        if (o) json_array_append_new(arr, o);
    }
}

void gb_relay_channels_json(struct gb_lower *l, json_t *arr)
{
    if (l->upper) gb_device_foreach(l->upper, device_json, arr);
}

/* ---- INVITE relay ---- */

static void respond(struct gb_lower *l, struct txn *st, int status, str_t reason);

static void relay_free(struct gb_relay *r)
{
    struct gb_lower *l = r->l;
    if (r->prev) r->prev->next = r->next;
    else l->relays = r->next;
    if (r->next) r->next->prev = r->prev;
    l->relay_count--;
    free(r);
}

static void relay_log_end(struct gb_relay *r, const char *reason)
{
    log_info("gb lower: relayed stream of %s (device %s) for upstream %s ended: %s", r->channel_id, r->device_id,
             r->up->cfg.id, reason);
    gb_lower_publish(r->l, "gb.lower.relay.stopped",
                     json_pack("{s:s,s:s,s:s,s:s}", "upstream", r->up->cfg.id, "device_id", r->device_id, "channel_id",
                               r->channel_id, "reason", reason));
}

static void up_dlg_end(void *arg, struct ua_dialog *d, enum ua_dialog_end why)
{
    (void)d;
    struct gb_relay *r = arg;
    r->up_dlg = NULL;
    if (r->dev_dlg) ua_dialog_bye(r->dev_dlg);
    r->dev_dlg = NULL;
    relay_log_end(r, why == UA_END_BYE_RECEIVED ? "bye-from-upstream" : "no-ack-from-upstream");
    relay_free(r);
}

static void dev_dlg_end(void *arg, struct ua_dialog *d, enum ua_dialog_end why)
{
    (void)d;
    (void)why;
    struct gb_relay *r = arg;
    r->dev_dlg = NULL;
    if (r->up_dlg) ua_dialog_bye(r->up_dlg);
    r->up_dlg = NULL;
    relay_log_end(r, "bye-from-device");
    relay_free(r);
}

/* In-dialog requests from the upstream: INFO (playback control, MANSRTSP)
 * goes on to the device in its dialog, and the device's final status comes
 * back as ours. The upstream's transaction lives until we answer it, and the
 * device's INFO always ends (a final or 408), so the context needs nothing
 * from the relay after sending: the relay may end meanwhile. */
struct info_relay {
    struct txn *st;
    char channel_id[GB_ID_LEN + 1];
};

static void info_relay_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                             const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)resp, (void)rx, (void)dlg;
    struct info_relay *c = arg;
    log_info("gb lower: relayed INFO for %s: device answered %d", c->channel_id, status);
    int rc = txn_respond(c->st, status >= 200 && status < 700 ? status : 500, NULL, STR_NULL, NULL, 0, STR_NULL,
                         STR_NULL);
    if (rc < 0) log_debug("gb lower: relayed INFO answer not sent: %s", strerror(-rc));
    free(c);
}

static const struct ua_uac_cb info_relay_cb = {.on_final = info_relay_final};

static void up_dlg_request(void *arg, struct ua_dialog *d, struct txn *st, const struct transport_rx *rx)
{
    (void)d;
    struct gb_relay *r = arg;
    const struct sip_msg *m = rx->msg;
    if (m->method != SIP_INFO) {
        respond(r->l, st, m->method == SIP_INVITE || m->method == SIP_UPDATE ? 488 : 200, STR_NULL);
        return;
    }
    struct info_relay *c = r->dev_dlg ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        respond(r->l, st, r->dev_dlg ? 500 : 481, STR_NULL);
        return;
    }
    c->st = st;
    snprintf(c->channel_id, sizeof(c->channel_id), "%s", r->channel_id);
    if (!ua_dialog_request(r->dev_dlg, SIP_INFO, NULL, 0, m->content_type, m->body, &info_relay_cb, c)) {
        free(c);
        respond(r->l, st, 500, STR_NULL);
    }
}

static const struct ua_dialog_cb up_dlg_cb = {.on_request = up_dlg_request, .on_end = up_dlg_end};
static const struct ua_dialog_cb dev_dlg_cb = {.on_end = dev_dlg_end};

static void respond(struct gb_lower *l, struct txn *st, int status, str_t reason)
{
    char rs[64];
    str_copy(rs, sizeof(rs), reason);
    gb_lower_respond(l, st, status, rs[0] ? rs : NULL, NULL, 0);
}

json_t *gb_lower_relay_started_fields(const char *upstream, const char *device_id, const char *channel_id,
                                      const char *via_node)
{
    json_t *ev = json_pack("{s:s,s:s,s:s}", "upstream", upstream, "device_id", device_id, "channel_id", channel_id);
    if (ev && via_node && *via_node) json_object_set_new(ev, "via_node", json_string(via_node));
    return ev;
}

static void relay_invite_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                               const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h;
    (void)rx;
    struct gb_relay *r = arg;
    struct gb_lower *l = r->l;
    r->h = NULL;
    struct txn *st = r->st;
    r->st = NULL;
    if (status >= 200 && status < 300 && dlg) {
        r->dev_dlg = dlg;
        ua_dialog_set_cb(dlg, &dev_dlg_cb, r);
        /* The dialog is pinned to the device's registered address (pin_dest):
         * the ACK went there already, and so do the BYE and INFO. */
        str_t body = resp ? resp->body : STR_NULL;
        r->up_dlg = ua_answer_invite(l->ua, st, 200, STR_NULL, NULL, 0,
                                     body.len ? STR_LIT("application/sdp") : STR_NULL, body, &up_dlg_cb, r);
        if (!r->up_dlg) {
            log_warn("gb lower: relayed 200 for %s could not be sent upstream; BYE to the device", r->channel_id);
            respond(l, st, 500, STR_NULL);
            ua_dialog_bye(r->dev_dlg);
            r->dev_dlg = NULL;
            relay_free(r);
            return;
        }
        log_info("gb lower: relayed INVITE for %s: device %s answered%s%s, stream goes to upstream %s", r->channel_id,
                 r->device_id, r->node[0] ? " through node " : "", r->node, r->up->cfg.id);
        gb_lower_publish(l, "gb.lower.relay.started",
                         gb_lower_relay_started_fields(r->up->cfg.id, r->device_id, r->channel_id, r->node));
        return;
    }
    int code = status >= 300 && status < 700 ? status : 500;
    log_info("gb lower: relayed INVITE for %s: device %s answered %d%s%s", r->channel_id, r->device_id, status,
             r->node[0] ? " through node " : "", r->node);
    respond(l, st, code, resp ? resp->reason : STR_NULL);
    relay_free(r);
}

static const struct ua_uac_cb relay_invite_cb = {.on_final = relay_invite_final};

static void relay_link(struct gb_lower *l, struct gb_relay *r)
{
    r->next = l->relays;
    if (l->relays) l->relays->prev = r;
    l->relays = r;
    l->relay_count++;
}

/* Our INVITE, made from the upstream's m: to device d when it is here, else
 * through the node t names (the peer-marked hop plays use, play_nodes.c:
 * that node relays it to the device over the device's flow). Either way
 * the upstream's SDP goes unchanged, so the device streams straight to the
 * upstream's media address. */
static struct ua_uac *relay_send(struct gb_relay *r, const struct sip_msg *m, struct gb_device *d,
                                 const struct gb_node_target *t)
{
    struct gb_lower *l = r->l;
    struct ua_request req = {0};
    req.method = SIP_INVITE;
    req.auto_contact = true;
    req.contact_user = str_from_cstr(l->id);
    /* Subject (GB/T 28181 §9.2.2.1): "<channel>:<ssrc>,<sender>:<n>"; the
     * sender on this leg is us. */
    char subject[160];
    const struct sip_header *sh = sip_msg_header(m, SIP_HDR_SUBJECT);
    str_t first = STR_NULL;
    if (sh) {
        const char *comma = memchr(sh->value.s, ',', sh->value.len);
        first = str_make(sh->value.s, comma ? (size_t)(comma - sh->value.s) : sh->value.len);
    }
    if (first.len && first.len < 64)
        snprintf(subject, sizeof(subject), "Subject: %.*s,%s:0", STR_FMT(first), l->id);
    else
        snprintf(subject, sizeof(subject), "Subject: %s:0,%s:0", r->channel_id, l->id);
    str_t hdr = str_from_cstr(subject);
    req.headers = &hdr;
    req.header_count = 1;
    req.content_type = m->body.len ? STR_LIT("application/sdp") : STR_NULL;
    req.body = m->body;
    /* ACK, INFO, BYE where the INVITE went (the device's registered address,
     * or the owning node), not to a Contact that may be private. */
    req.pin_dest = true;
    if (d) return gb_device_send(l->upper, d, r->channel_id, &req, &relay_invite_cb, r);
    return gb_upper_send_via(l->upper, t, r->channel_id, &req, &relay_invite_cb, r);
}

/* Across nodes: where the channel is (gb_upper_locate), then the INVITE
 * through its node; or the answer the local relay would give. */
static void relay_located(void *arg, int status, const struct gb_node_target *t)
{
    struct gb_relay *r = arg;
    struct gb_lower *l = r->l;
    r->loc = NULL;
    const struct sip_msg *m = r->st ? txn_request(r->st) : NULL;
    struct gb_device *d = NULL;
    if (status == 0 && t->local) {
        d = gb_device_find(l->upper, t->device_id);
        if (!d || !gb_device_online(d)) status = 480;
    }
    if (status == 404 && owner_of(l, str_from_cstr(r->channel_id), NULL, NULL)) status = 480; /* known here, offline */
    if (status == 0 && !m) status = 500;
    if (status == 0) {
        snprintf(r->device_id, sizeof(r->device_id), "%s", t->device_id);
        if (!d) snprintf(r->node, sizeof(r->node), "%s", t->node);
        r->h = relay_send(r, m, d, t);
        if (!r->h) status = 500;
    }
    if (status) {
        log_info("gb lower: INVITE from upstream %s for %s: not relayed to any node, %d", r->up->cfg.id,
                 r->channel_id, status);
        struct txn *st = r->st;
        r->st = NULL;
        if (st) respond(l, st, status, STR_NULL);
        relay_free(r);
        return;
    }
    log_info("gb lower: INVITE from upstream %s for %s relayed to device %s%s%s", r->up->cfg.id, r->channel_id,
             r->device_id, r->node[0] ? " through node " : "", r->node);
}

void gb_relay_invite(struct gb_lower *l, struct gb_upstream *up, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    struct gb_device *d = owner_of(l, m->ruri.user, NULL, NULL);
    /* Known here but offline: maybe registered on another node (a record
     * shared by [redis] mirror_gb_admin, or a device that moved). */
    bool across = (!d || !gb_device_online(d)) && l->upper && gb_upper_plays_across_nodes(l->upper);
    if (!d && !across) {
        respond(l, st, 404, STR_NULL);
        return;
    }
    if (d && !gb_device_online(d) && !across) {
        log_info("gb lower: INVITE from upstream %s for %.*s: device %s offline, 480", up->cfg.id,
                 STR_FMT(m->ruri.user), gb_device_id(d));
        respond(l, st, 480, STR_NULL);
        return;
    }
    struct gb_relay *r = calloc(1, sizeof(*r));
    if (!r) {
        respond(l, st, 500, STR_NULL);
        return;
    }
    r->l = l;
    r->up = up;
    r->st = st;
    r->started_at = clock_wall_ms();
    str_copy(r->channel_id, sizeof(r->channel_id), m->ruri.user);
    relay_link(l, r);
    if (across) {
        /* Not registered here: maybe on another node (issue 16). Only an
         * upstream's INVITE is looked up, and the hop it takes is marked:
         * the owning node relays it to its own device or answers 404, never
         * sends it on (play_nodes.c), so no loop can form. */
        int rc = gb_upper_locate(l->upper, r->channel_id, relay_located, r, &r->loc);
        if (rc != 0) {
            int code = rc == -EINVAL || rc == -ENOENT ? 404 : 503;
            log_info("gb lower: INVITE from upstream %s for %s: not looked up on the other nodes (%s): %d",
                     up->cfg.id, r->channel_id, strerror(-rc), code);
            r->st = NULL;
            respond(l, st, code, STR_NULL);
            relay_free(r);
        }
        return;
    }
    snprintf(r->device_id, sizeof(r->device_id), "%s", gb_device_id(d));
    r->h = relay_send(r, m, d, NULL);
    if (!r->h) {
        r->st = NULL;
        respond(l, st, 500, STR_NULL);
        relay_free(r);
        return;
    }
    log_info("gb lower: INVITE from upstream %s for %s relayed to device %s", up->cfg.id, r->channel_id,
             r->device_id);
}

int gb_relay_cancel(struct gb_lower *l, struct txn *invite_st)
{
    for (struct gb_relay *r = l->relays; r; r = r->next) {
        if (r->st != invite_st) continue;
        log_info("gb lower: relayed INVITE for %s cancelled by upstream %s", r->channel_id, r->up->cfg.id);
        if (r->loc) gb_upper_locate_cancel(l->upper, r->loc);
        r->loc = NULL;
        if (r->h) ua_request_cancel(r->h);
        r->h = NULL;
        r->st = NULL;
        respond(l, invite_st, 487, STR_NULL);
        relay_free(r);
        return 1;
    }
    return 0;
}

/* ---- queries asked of the device ---- */

struct gb_relay_query {
    struct gb_waiter wt;              /* first: done() hands it back */
    struct gb_relay_query *next;      /* l->relay_queries */
    struct gb_lower *l;
    struct gb_upstream *up;
    struct gb_relay_ask ask;
    struct gb_locate *loc;            /* across nodes: looking the id's device up */
    char *start, *end;                /* across nodes: RecordInfo's range, until asked */
};

static void relay_query_unlink(struct gb_relay_query *q)
{
    for (struct gb_relay_query **pp = &q->l->relay_queries; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            break;
        }
}

static void relay_query_free(struct gb_relay_query *q)
{
    free(q->ask.name);
    free(q->start);
    free(q->end);
    free(q);
}

/* The upper role's answer (exactly once): the device's Response, or the
 * query's failure (timeout, device gone offline, shutdown); across nodes,
 * the owning node's API answer, which is the same JSON. */
static void relay_query_done(struct gb_waiter *wt, int status, json_t *body)
{
    struct gb_relay_query *q = (struct gb_relay_query *)wt;
    relay_query_unlink(q);
    const char *what = gb_cmd_name(q->ask.cmd);
    if (status == 200)
        log_info("gb lower: %s for %s answered by its device, sent to upstream %s (SN %u)", what, q->ask.id,
                 q->up->cfg.id, q->ask.sn);
    else {
        const char *why = json_string_value(json_object_get(body, "error"));
        log_info("gb lower: %s for %s not answered by its device (%d %s): error answer to upstream %s", what,
                 q->ask.id, status, why ? why : "-", q->up->cfg.id);
    }
    gb_lower_answer_relayed(q->l, q->up, &q->ask, status, body);
    json_decref(body);
    relay_query_free(q);
}

static enum gb_query_kind query_kind(gb_cmd_t cmd)
{
    return cmd == GB_CMD_DEVICE_INFO ? GB_Q_INFO : cmd == GB_CMD_DEVICE_STATUS ? GB_Q_STATUS : GB_Q_RECORDS;
}

/* Asks device d (here) the query q: 0, or a negative errno (not asked).
 * chan: the channel asked about when the catalog here has it. */
static int query_ask_here(struct gb_relay_query *q, struct gb_device *d, const struct gb_channel_view *chan,
                          const char *start, const char *end)
{
    enum gb_query_kind kind = query_kind(q->ask.cmd);
    if (kind == GB_Q_RECORDS && !q->ask.name && !(q->ask.name = strdup(chan && chan->name ? chan->name : q->ask.id)))
        return -ENOMEM;
    /* DeviceInfo / DeviceStatus of the device itself: target NULL, so it
     * joins the same question asked through the API. */
    const char *target = kind == GB_Q_RECORDS || strcmp(q->ask.id, gb_device_id(d)) ? q->ask.id : NULL;
    return gb_query_start(q->l->upper, d, kind, target, start, end, &q->wt);
}

/* A query not asked: the error answer the upstream gets at once. */
static void query_refused(struct gb_relay_query *q, int status, const char *why)
{
    log_info("gb lower: %s for %s from upstream %s not asked of its device (%s): error answer",
             gb_cmd_name(q->ask.cmd), q->ask.id, q->up->cfg.id, why);
    gb_lower_answer_relayed(q->l, q->up, &q->ask, status, NULL);
    relay_query_free(q);
}

/* Across nodes: the id's device and node found (gb_upper_locate); the query
 * goes to that node's API (gb_upper_query_remote), whose answer is the
 * one the device gave there. */
static void query_located(void *arg, int status, const struct gb_node_target *t)
{
    struct gb_relay_query *q = arg;
    struct gb_lower *l = q->l;
    q->loc = NULL;
    relay_query_unlink(q);
    if (status == 404 && owner_of(l, str_from_cstr(q->ask.id), NULL, NULL)) status = 480; /* known here, offline */
    if (status) {
        query_refused(q, status == 480 ? 409 : status, status == 404 ? "on no node" : status == 480 ? "offline"
                                                                                                    : "node unavailable");
        return;
    }
    int rc;
    enum gb_query_kind kind = query_kind(q->ask.cmd);
    bool of_device = !strcmp(t->device_id, q->ask.id);
    if (t->local) {
        struct gb_device *d = gb_device_find(l->upper, t->device_id);
        rc = d ? query_ask_here(q, d, NULL, q->start, q->end) : -ENOTCONN;
    } else {
        if (kind == GB_Q_RECORDS && !q->ask.name && !(q->ask.name = strdup(q->ask.id))) rc = -ENOMEM;
        else
            rc = gb_upper_query_remote(l->upper, t->device_id, kind,
                                       kind == GB_Q_RECORDS || !of_device ? q->ask.id : NULL, q->start, q->end,
                                       &q->wt);
    }
    if (rc != 0) {
        query_refused(q, rc == -ENOTCONN ? 409 : 503, strerror(-rc));
        return;
    }
    q->next = l->relay_queries;
    l->relay_queries = q;
    log_info("gb lower: %s for %s from upstream %s (SN %u) asked of device %s%s%s", gb_cmd_name(q->ask.cmd),
             q->ask.id, q->up->cfg.id, q->ask.sn, t->device_id, t->local ? "" : " through node ",
             t->local ? "" : t->node);
}

int gb_relay_query(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m)
{
    struct gb_channel_view view;
    const struct gb_channel_view *chan;
    struct gb_device *d = m->device_id ? owner_of(l, str_from_cstr(m->device_id), &view, &chan) : NULL;
    bool across = (!d || !gb_device_online(d)) && m->device_id && gb_relay_across_nodes(l) &&
                  gb_id_valid(str_from_cstr(m->device_id)); /* known here but offline: maybe elsewhere */
    if (!d && !across) return -ENOENT;
    struct gb_relay_query *q = calloc(1, sizeof(*q));
    if (!q) {
        struct gb_relay_ask ask = {.cmd = m->cmd, .sn = m->sn};
        snprintf(ask.id, sizeof(ask.id), "%s", m->device_id);
        gb_lower_answer_relayed(l, up, &ask, 503, NULL);
        return 0;
    }
    q->wt.done = relay_query_done;
    q->l = l;
    q->up = up;
    q->ask.cmd = m->cmd;
    q->ask.sn = m->sn;
    snprintf(q->ask.id, sizeof(q->ask.id), "%s", m->device_id);
    snprintf(q->ask.type, sizeof(q->ask.type), "%s", m->record_query.type ? m->record_query.type : "");
    int rc;
    if (across) {
        /* Maybe registered on another node (issue 16): its owner's API asks
         * it. An id on no node gets an error answer, as an offline one. */
        if (m->record_query.start_time && !(q->start = strdup(m->record_query.start_time))) rc = -ENOMEM;
        else if (m->record_query.end_time && !(q->end = strdup(m->record_query.end_time))) rc = -ENOMEM;
        else rc = gb_upper_locate(l->upper, q->ask.id, query_located, q, &q->loc);
        if (rc == 0) {
            q->next = l->relay_queries;
            l->relay_queries = q;
            return 0;
        }
        query_refused(q, rc == -EINVAL || rc == -ENOENT ? 404 : 503, strerror(-rc));
        return 0;
    }
    rc = query_ask_here(q, d, chan, m->record_query.start_time, m->record_query.end_time);
    if (rc != 0) {
        log_info("gb lower: %s for %s from upstream %s not asked of device %s (%s): error answer", gb_cmd_name(m->cmd),
                 q->ask.id, up->cfg.id, gb_device_id(d), rc == -ENOTCONN ? "offline" : strerror(-rc));
        gb_lower_answer_relayed(l, up, &q->ask, rc == -ENOTCONN ? 409 : 503, NULL);
        relay_query_free(q);
        return 0;
    }
    q->next = l->relay_queries;
    l->relay_queries = q;
    log_info("gb lower: %s for %s from upstream %s (SN %u) asked of device %s", gb_cmd_name(m->cmd), q->ask.id,
             up->cfg.id, m->sn, gb_device_id(d));
    return 0;
}

static void relay_controls_stop(struct gb_lower *l, struct gb_upstream *up);

void gb_relays_stop(struct gb_lower *l, struct gb_upstream *up, const char *reason)
{
    relay_controls_stop(l, up);
    for (struct gb_relay_query **pp = &l->relay_queries; *pp;) {
        struct gb_relay_query *q = *pp;
        if (up && q->up != up) {
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        if (q->loc) gb_upper_locate_cancel(l->upper, q->loc);
        gb_waiter_cancel(&q->wt);
        relay_query_free(q);
    }
    struct gb_relay *r = l->relays;
    while (r) {
        struct gb_relay *next = r->next;
        if (up && r->up != up) {
            r = next;
            continue;
        }
        if (r->loc) gb_upper_locate_cancel(l->upper, r->loc);
        if (r->h) ua_request_cancel(r->h);
        if (r->st) respond(l, r->st, 480, STR_NULL);
        if (r->up_dlg) ua_dialog_bye(r->up_dlg);
        if (r->dev_dlg) ua_dialog_bye(r->dev_dlg);
        relay_log_end(r, reason);
        relay_free(r);
        r = next;
    }
}

/* ---- DeviceControl ---- */

/* Sends control m to device d (here), in the device's charset. */
static int control_send_here(struct gb_lower *l, struct gb_device *d, const gb_manscdp_t *m)
{
    sbuf_t body;
    sbuf_init(&body);
    int rc = gb_manscdp_build(&body, gb_device_charset(d), m);
    if (rc != 0) {
        sbuf_free(&body);
        return -EINVAL;
    }
    struct ua_request r = {0};
    r.method = SIP_MESSAGE;
    r.content_type = STR_LIT("Application/MANSCDP+xml");
    r.body = sbuf_str(&body);
    struct ua_uac *h = gb_device_send(l->upper, d, gb_device_id(d), &r, NULL, NULL);
    sbuf_free(&body);
    if (!h) return -EIO;
    log_info("gb lower: DeviceControl for %s relayed to device %s", m->device_id, gb_device_id(d));
    return 0;
}

/* Across nodes: the control, written in UTF-8, waits for its device's node. */
struct gb_relay_control {
    struct gb_relay_control *next;  /* l->relay_controls */
    struct gb_lower *l;
    struct gb_upstream *up;
    struct gb_locate *loc;
    char id[GB_ID_LEN + 1];
    sbuf_t body;
};

static void control_free(struct gb_relay_control *c)
{
    for (struct gb_relay_control **pp = &c->l->relay_controls; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    sbuf_free(&c->body);
    free(c);
}

/* The MESSAGE through the owning node (play_nodes.c: it re-encodes the
 * control for its device and sends it on), or to the device here. */
static void control_located(void *arg, int status, const struct gb_node_target *t)
{
    struct gb_relay_control *c = arg;
    struct gb_lower *l = c->l;
    c->loc = NULL;
    int rc = status ? -ENOENT : 0;
    if (rc == 0 && t->local) {
        struct gb_device *d = gb_device_find(l->upper, t->device_id);
        gb_manscdp_t m;
        rc = d ? gb_manscdp_parse(c->body.data, c->body.len, "UTF-8", &m) : -ENOENT;
        if (rc == 0) {
            rc = gb_device_online(d) ? control_send_here(l, d, &m) : -ENOTCONN;
            gb_manscdp_free(&m);
        }
    } else if (rc == 0) {
        struct ua_request r = {0};
        r.method = SIP_MESSAGE;
        r.content_type = STR_LIT("Application/MANSCDP+xml");
        r.body = sbuf_str(&c->body);
        rc = gb_upper_send_via(l->upper, t, c->id, &r, NULL, NULL) ? 0 : -EIO;
        if (rc == 0)
            log_info("gb lower: DeviceControl for %s relayed to device %s through node %s", c->id, t->device_id,
                     t->node);
    }
    if (rc != 0)
        log_warn("gb lower: DeviceControl for %s from upstream %s not relayed (%s)", c->id, c->up->cfg.id,
                 status ? (status == 404 ? "on no node" : status == 480 ? "offline" : "node unavailable")
                        : "not sent");
    control_free(c);
}

static void relay_controls_stop(struct gb_lower *l, struct gb_upstream *up)
{
    for (struct gb_relay_control *c = l->relay_controls, *next; c; c = next) {
        next = c->next;
        if (up && c->up != up) continue;
        gb_upper_locate_cancel(l->upper, c->loc);
        control_free(c);
    }
}

int gb_relay_control(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m)
{
    struct gb_device *d = owner_of(l, str_from_cstr(m->device_id), NULL, NULL);
    if (d && gb_device_online(d)) return control_send_here(l, d, m);
    if (!gb_relay_across_nodes(l) || !m->device_id) return -ENOTCONN; /* offline here, or unknown */
    /* Maybe registered on another node (issue 16): that node takes the
     * control in a peer-marked MESSAGE and sends it to its device. */
    struct gb_relay_control *c = calloc(1, sizeof(*c));
    if (!c) return -ENOMEM;
    c->l = l;
    c->up = up;
    snprintf(c->id, sizeof(c->id), "%s", m->device_id);
    sbuf_init(&c->body);
    int rc = gb_manscdp_build(&c->body, GB_CHARSET_UTF8, m) != 0 ? -EINVAL : 0;
    if (rc == 0) rc = gb_upper_locate(l->upper, c->id, control_located, c, &c->loc);
    if (rc != 0) {
        sbuf_free(&c->body);
        free(c);
        return rc;
    }
    c->next = l->relay_controls;
    l->relay_controls = c;
    return 0;
}

/* ---- changes seen by the upper role -> catalog Notify upward ---- */

#define NOTE_BATCH_MS 500      /* changes gathered before one Notify batch goes up */
#define NOTE_MAX (1u << 20)    /* pending changes kept at most (a registration storm) */

static int note_cmp(const void *a, const void *b)
{
    return strcmp(((const struct gb_relay_note *)a)->device_id, ((const struct gb_relay_note *)b)->device_id);
}

/* Sends the changes gathered since the last batch, one entry per device
 * whatever happened to it meanwhile, from the device's state now:
 *  - offline: the device item OFF, its channels updated with status OFF;
 *  - catalog updated: the device item and its channels as UPDATE (an
 *    upper that did not know them adds them);
 *  - back online only: the device item as UPDATE with status ON.
 * While a previous batch is still going up the next one waits: a slow upper
 * gets the changes later, merged, rather than a growing flood. */
static void note_timer_cb(struct timer_node *n, uint64_t now)
{
    struct gb_lower *l = container_of(n, struct gb_lower, note_timer);
    if (gb_lower_notify_busy(l)) {
        gb_lower_arm(l, &l->note_timer, now + NOTE_BATCH_MS, note_timer_cb);
        return;
    }
    qsort(l->notes, l->note_count, sizeof(*l->notes), note_cmp);
    gb_catalog_item_t *items = NULL;
    size_t count = 0, cap = 0;
    struct cat_ctx c = {.l = l, .items = &items, .n = &count, .cap = &cap};
    for (size_t i = 0; i < l->note_count && !c.rc;) {
        size_t j = i;
        bool updated = false;
        for (; j < l->note_count && !strcmp(l->notes[j].device_id, l->notes[i].device_id); j++)
            updated |= l->notes[j].event == GB_EVENT_UPDATE;
        struct gb_device *d = l->upper ? gb_device_find(l->upper, l->notes[i].device_id) : NULL;
        i = j;
        if (!d) continue;
        size_t first = count;
        device_items(d, &c);
        if (c.rc || count == first) continue;
        bool online = gb_device_online(d);
        items[first].event = online ? GB_EVENT_UPDATE : GB_EVENT_OFF;
        if (online && !updated) {
            gb_lower_items_free_tail(items, first + 1, count);
            count = first + 1;
        } else {
            for (size_t k = first + 1; k < count; k++) items[k].event = GB_EVENT_UPDATE;
        }
    }
    l->note_count = 0;
    l->notes_dropped = false;
    if (c.rc) log_error("gb lower: no memory for a catalog Notify batch");
    else gb_lower_notify_items(l, items, count);
    gb_lower_items_free(items, count);
}

static void note_add(struct gb_lower *l, const char *device_id, gb_catalog_event_t ev)
{
    if (l->note_count == l->note_cap) {
        size_t nc = l->note_cap ? l->note_cap * 2 : 64;
        struct gb_relay_note *nn = nc <= NOTE_MAX ? realloc(l->notes, nc * sizeof(*nn)) : NULL;
        if (!nn) {
            if (!l->notes_dropped) log_warn("gb lower: %zu device changes pending, more are dropped", l->note_count);
            l->notes_dropped = true;
            return;
        }
        l->notes = nn;
        l->note_cap = nc;
    }
    struct gb_relay_note *note = &l->notes[l->note_count++];
    snprintf(note->device_id, sizeof(note->device_id), "%s", device_id);
    note->event = (uint8_t)ev;
    if (!timer_armed(&l->note_timer)) gb_lower_arm(l, &l->note_timer, gb_lower_now(l) + NOTE_BATCH_MS, note_timer_cb);
}

static void on_bus_event(uint64_t seq, const char *json, size_t len, void *arg)
{
    (void)seq;
    struct gb_lower *l = arg;
    if (!l->upper || l->stopping) return;
    /* Cheap filter before parsing: only the upper role's device events. */
    if (!memmem(json, len, "\"gb.device.", 11) && !memmem(json, len, "\"gb.catalog.updated\"", 20) &&
        !memmem(json, len, "\"gb.alarm\"", 10) && !memmem(json, len, "\"gb.position\"", 13))
        return;
    json_error_t err;
    json_t *ev = json_loadb(json, len, 0, &err);
    if (!ev) return;
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *id = json_string_value(json_object_get(ev, "device_id"));
    /* Alarms and positions of our devices go up within the upstreams' subscriptions. */
    if (type && (!strcmp(type, "gb.alarm") || !strcmp(type, "gb.position"))) gb_lower_relay_report(l, type, ev);
    if (type && id && gb_id_valid(str_from_cstr(id))) {
        if (!strcmp(type, "gb.device.online")) note_add(l, id, GB_EVENT_ON);
        else if (!strcmp(type, "gb.device.offline")) note_add(l, id, GB_EVENT_OFF);
        else if (!strcmp(type, "gb.catalog.updated")) note_add(l, id, GB_EVENT_UPDATE);
    }
    json_decref(ev);
}

void gb_relay_watch(struct gb_lower *l, bool on)
{
    if (on) {
        if (l->events) event_subscribe(l->events, on_bus_event, l);
        return;
    }
    if (l->events) event_unsubscribe(l->events, on_bus_event, l);
    timer_stop(l->timers, &l->note_timer);
    free(l->notes);
    l->notes = NULL;
    l->note_count = l->note_cap = 0;
}
