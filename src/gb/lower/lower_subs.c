/* lower_subs.c — the subscriptions an upstream holds with the lower role
 * (GB/T 28181-2016 §9.11 catalog, §9.4 alarm, §9.12 mobile position): its
 * SUBSCRIBE answered (new, refresh, Expires 0), and the NOTIFYs sent within
 * them. Catalog changes of the local and relayed channels go there as NOTIFY
 * (lower_query.c asks gb_lower_catalog_sub before each Notify); an upstream
 * that never subscribed to the catalog gets them as MESSAGE, when its
 * notify_without_subscription allows (older platforms expect that).
 *
 * Alarm and MobilePosition subscriptions carry what the devices of this
 * node's upper role report (a middle node: gb.alarm / gb.position events,
 * relayed by gb_lower_relay_report) and, across cascade nodes ([redis]
 * events_stream), what devices on other nodes report (the same events in
 * the cluster's view, lower_nodes.c: gb_lower_relay_node_report, its
 * NOTIFYs in flight capped per upstream); the local channels have none.
 *
 * One subscription per kind per upstream: a new SUBSCRIBE of a kind replaces
 * the one before (the upper re-subscribes after its own restart). Expiry is
 * read where it matters (before a NOTIFY), so no timer is kept.
 *
 * Each accepted subscription is stored (table gb_lower_subs, one row per
 * upstream and kind: the dialog, the Event, the wall-clock expiry) and taken
 * up at start, so that after a restart the NOTIFYs go on within the dialog
 * the upper holds. The NOTIFY CSeq must keep growing across the restart
 * without a write per NOTIFY: the row holds a ceiling every CSeq sent stays
 * below, moved up GB_LOWER_CSEQ_STEP at a time, and a restart starts from
 * it. A 481 to a NOTIFY (the upper forgot the dialog, RFC 6665 §4.2.2) ends
 * the subscription. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gb/lower/lower_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "events/events.h"
#include "sip/msg.h"
#include "store/store.h"
#include "txn/txn.h"

#define GB_LOWER_SUB_MAX_S 86400   /* longest subscription granted */
#define GB_LOWER_CSEQ_STEP 256u    /* NOTIFYs between two writes of the CSeq ceiling */

static const char *const kind_names[GB_UP_SUB_KINDS] = {"catalog", "alarm", "position"};

static int kind_of(gb_cmd_t cmd)
{
    switch (cmd) {
    case GB_CMD_CATALOG: return GB_UP_SUB_CATALOG;
    case GB_CMD_ALARM: return GB_UP_SUB_ALARM;
    case GB_CMD_MOBILE_POSITION: return GB_UP_SUB_POSITION;
    default: return -1;
    }
}

static void store_done(void *arg, int status)
{
    (void)arg;
    if (status < 0) log_warn("gb lower: subscription not stored: %s", strerror(-status));
}

static void sub_persist(struct gb_lower *l, struct gb_upstream *up, int kind)
{
    if (!l->store) return;
    const struct gb_up_sub *s = &up->subs[kind];
    struct store_gb_lower_sub row = {
        .upstream = up->cfg.id, .kind = kind_names[kind], .call_id = s->call_id, .local_tag = s->local_tag,
        .remote_tag = s->remote_tag, .contact = s->contact, .event = s->event, .cseq_ceiling = s->cseq_ceiling,
        .expires_at = s->expires_wall};
    store_submit(l->store, store_op_gb_lower_sub_upsert(&row), store_done, NULL);
}

static void sub_unstore(struct gb_lower *l, struct gb_upstream *up, int kind)
{
    if (l->store) store_submit(l->store, store_op_gb_lower_sub_delete(up->cfg.id, kind_names[kind]), store_done, NULL);
}

static void sub_set_expiry(struct gb_lower *l, struct gb_up_sub *s, int e)
{
    s->expires_at = gb_lower_now(l) + (uint64_t)e * 1000u;
    s->expires_wall = clock_wall_ms() + (int64_t)e * 1000;
}

static bool sub_live(const struct gb_lower *l, const struct gb_up_sub *s)
{
    return s->active && gb_lower_now(l) < s->expires_at;
}

static struct gb_up_sub *sub_of(struct gb_upstream *up, const struct sip_msg *m)
{
    for (int k = 0; k < GB_UP_SUB_KINDS; k++) {
        struct gb_up_sub *s = &up->subs[k];
        if (s->active && str_eq_cstr(m->call_id, s->call_id) && str_eq_cstr(m->to.tag, s->local_tag)) return s;
    }
    return NULL;
}

static void answer(struct txn *st, int status, const char *tag, int expires)
{
    char ex[32];
    snprintf(ex, sizeof(ex), "Expires: %d", expires);
    str_t line = str_from_cstr(ex);
    int rc = txn_respond(st, status, NULL, tag ? str_from_cstr(tag) : STR_NULL, status < 300 ? &line : NULL,
                         status < 300 ? 1 : 0, STR_NULL, STR_NULL);
    if (rc < 0) log_warn("gb lower: %d to SUBSCRIBE not sent: %s", status, strerror(-rc));
}

static int granted(const struct sip_msg *m)
{
    /* No Expires: the package default; GB/T 28181 gives none, 3600 is what platforms use. */
    if (m->expires < 0) return 3600;
    return m->expires > GB_LOWER_SUB_MAX_S ? GB_LOWER_SUB_MAX_S : (int)m->expires;
}

static void on_refresh(struct gb_lower *l, struct gb_upstream *up, struct txn *st, const struct sip_msg *m)
{
    struct gb_up_sub *s = sub_of(up, m);
    if (!s) {
        int rc = txn_respond(st, 481, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
        if (rc < 0) log_warn("gb lower: 481 to SUBSCRIBE not sent: %s", strerror(-rc));
        return;
    }
    int e = granted(m);
    answer(st, 200, NULL, e);
    int kind = (int)(s - up->subs);
    if (e == 0) {
        log_info("gb lower: upstream %s ended its %s subscription", up->cfg.id, s->event);
        s->active = false;
        sub_unstore(l, up, kind);
        return;
    }
    sub_set_expiry(l, s, e);
    sub_persist(l, up, kind);
}

void gb_lower_on_subscribe(struct gb_lower *l, struct gb_upstream *up, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (m->to.tag.len) {
        on_refresh(l, up, st, m);
        return;
    }
    gb_manscdp_t q;
    int rc = gb_manscdp_parse(m->body.s, m->body.len, NULL, &q);
    int kind = rc == 0 && q.kind == GB_MSG_QUERY ? kind_of(q.cmd) : -1;
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "%s", rc == 0 && q.cmd_type ? q.cmd_type : "?");
    gb_manscdp_free(&q);
    if (kind < 0) {
        /* RFC 6665 §8.3.1: a package we do not serve. */
        log_info("gb lower: SUBSCRIBE from upstream %s for \"%s\": 489", up->cfg.id, cmd);
        int r = txn_respond(st, 489, "Bad Event", STR_NULL, NULL, 0, STR_NULL, STR_NULL);
        if (r < 0) log_warn("gb lower: 489 not sent: %s", strerror(-r));
        return;
    }
    struct gb_up_sub *s = &up->subs[kind];
    int e = granted(m);
    bool had = s->active;
    memset(s, 0, sizeof(*s));
    s->up = up;
    ua_new_tag(l->ua, s->local_tag);
    answer(st, 200, s->local_tag, e);
    if (e == 0) { /* a fetch: nothing kept (the one it replaced is over) */
        if (had) sub_unstore(l, up, kind);
        return;
    }
    s->active = true;
    str_copy(s->call_id, sizeof(s->call_id), m->call_id);
    str_copy(s->remote_tag, sizeof(s->remote_tag), m->from.tag);
    const struct sip_header *ev = sip_msg_header_by_name(m, "Event");
    str_copy(s->event, sizeof(s->event), ev ? str_trim(ev->value) : str_from_cstr(gb_cmd_name(GB_CMD_CATALOG)));
    struct sip_list_iter it;
    str_t item;
    struct sip_name_addr na;
    sip_list_iter_init(&it, m, SIP_HDR_CONTACT);
    if (sip_list_iter_next(&it, &item) && sip_name_addr_parse(item, &na) == 0 && !na.star)
        str_copy(s->contact, sizeof(s->contact), na.uri_raw);
    sub_set_expiry(l, s, e);
    s->cseq_ceiling = GB_LOWER_CSEQ_STEP;
    sub_persist(l, up, kind);
    if (kind == GB_UP_SUB_CATALOG) up->ever_subscribed = true;
    log_info("gb lower: upstream %s subscribed to %s (Event %s, expires %d)", up->cfg.id, kind_names[kind], s->event,
             e);
    gb_lower_publish(l, "gb.lower.subscribed",
                     json_pack("{s:s,s:s,s:i}", "upstream", up->cfg.id, "event", kind_names[kind], "expires", e));
    /* Read back from the cluster's view in the stream's order (gb_lower_view_subscribed;
     * not while it catches up at start, when what it reads is skipped). */
    if (l->view && event_bus_ready(l->view) && up->sub_view_pending[kind] < UINT32_MAX) up->sub_view_pending[kind]++;
}

void gb_lower_view_subscribed(struct gb_lower *l, const json_t *ev, const char *self)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *node = json_string_value(json_object_get(ev, "node"));
    const char *upstream = json_string_value(json_object_get(ev, "upstream"));
    const char *event = json_string_value(json_object_get(ev, "event"));
    if (!type || strcmp(type, "gb.lower.subscribed") || !node || !*node || !self || !upstream || !event) return;
    int kind = -1;
    for (int k = 0; k < GB_UP_SUB_KINDS; k++)
        if (!strcmp(event, kind_names[k])) kind = k;
    if (kind < 0) return;
    for (int i = 0; i < l->up_count; i++) {
        struct gb_upstream *up = &l->ups[i];
        if (up->removed || strcmp(up->cfg.id, upstream)) continue;
        if (!strcmp(node, self)) {
            if (up->sub_view_pending[kind]) up->sub_view_pending[kind]--;
            continue;
        }
        struct gb_up_sub *s = &up->subs[kind];
        if (up->sub_view_pending[kind] || !s->active) continue; /* ours is the newer, or none */
        s->active = false;
        sub_unstore(l, up, kind);
        up->subs_replaced_by_node[kind]++;
        log_info("gb lower: upstream %s subscribed to %s at node %.64s since: its subscription here ends (one per "
                 "upstream across the nodes)",
                 up->cfg.id, kind_names[kind], node);
    }
}

struct gb_up_sub *gb_lower_catalog_sub(struct gb_upstream *up)
{
    struct gb_up_sub *s = &up->subs[GB_UP_SUB_CATALOG];
    return sub_live(up->l, s) ? s : NULL;
}

bool gb_lower_catalog_wanted(struct gb_upstream *up)
{
    if (gb_lower_catalog_sub(up)) return true;
    return !up->ever_subscribed && up->cfg.notify_without_subscription;
}

/* A NOTIFY sent with no callback of the caller's: only a 481 matters. */
static void notify_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                         const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)rx, (void)dlg;
    struct gb_up_sub *s = arg;
    if (status == 481) gb_lower_sub_gone(s, resp);
}

static const struct ua_uac_cb notify_cb = {.on_final = notify_final};

void gb_lower_sub_gone(struct gb_up_sub *s, const struct sip_msg *resp)
{
    if (!s->active || !resp || !str_eq_cstr(resp->call_id, s->call_id)) return; /* already replaced */
    for (int i = 0; s->up && i < GB_UP_SUB_KINDS; i++) {
        if (&s->up->subs[i] != s) continue;
        log_info("gb lower: upstream %s answered 481 to a NOTIFY: its %s subscription is over", s->up->cfg.id,
                 kind_names[i]);
        s->active = false;
        sub_unstore(s->up->l, s->up, i);
    }
}

struct ua_uac *gb_lower_send_notify(struct gb_lower *l, struct gb_upstream *up, struct gb_up_sub *sub,
                                    const sbuf_t *body, const struct ua_uac_cb *cb, void *arg)
{
    struct ua_request r;
    struct ua_notify_lines nl;
    char from[96];
    gb_lower_request_init(l, up, SIP_NOTIFY, &r, from, sizeof(from));
    ua_subscription_notify(&r, &nl, sub->event, sub->call_id, sub->local_tag, sub->remote_tag, sub->contact,
                           ++sub->cseq, sub->expires_at, gb_lower_now(l));
    r.content_type = STR_LIT("Application/MANSCDP+xml");
    r.body = sbuf_str(body);
    if (sub->cseq >= sub->cseq_ceiling) {
        sub->cseq_ceiling = sub->cseq + GB_LOWER_CSEQ_STEP;
        sub_persist(l, up, (int)(sub - up->subs));
    }
    struct ua_credentials cred = {.user = str_from_cstr(l->id), .password = str_from_cstr(up->cfg.password)};
    sub->up = up;
    struct ua_uac *h = cb ? ua_request_send(l->ua, &r, &up->dest, &cred, cb, arg)
                          : ua_request_send(l->ua, &r, &up->dest, &cred, &notify_cb, sub);
    if (h) sub->notifies++;
    return h;
}

/* An event field as text: strings as they are, integers printed, else NULL. */
static const char *field_text(const json_t *ev, const char *key, char *buf, size_t cap)
{
    const json_t *v = json_object_get(ev, key);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return NULL;
}

int gb_lower_report_body(sbuf_t *body, gb_charset_t cs, uint32_t sn, bool alarm, const json_t *ev)
{
    const char *channel = json_string_value(json_object_get(ev, "channel"));
    if (!channel) channel = json_string_value(json_object_get(ev, "device"));
    if (!channel || !gb_id_valid(str_from_cstr(channel))) return -1;
    const json_t *lon = json_object_get(ev, "longitude"), *lat = json_object_get(ev, "latitude");
    bool has_pos = json_is_number(lon) && json_is_number(lat);
    if (!alarm && !has_pos) return -1;
    char b1[24], b2[24], b3[24], b4[24], b5[24];
    int rc;
    if (alarm) {
        gb_alarm_t a = {.priority = (char *)field_text(ev, "priority", b1, sizeof(b1)),
                        .method = (char *)field_text(ev, "method", b2, sizeof(b2)),
                        .time = (char *)field_text(ev, "alarm_time", b3, sizeof(b3)),
                        .description = (char *)field_text(ev, "description", b4, sizeof(b4)),
                        .type = (char *)field_text(ev, "alarm_type", b5, sizeof(b5))};
        rc = gb_manscdp_build_alarm_notify(body, cs, sn, channel, &a, has_pos, has_pos ? json_number_value(lon) : 0,
                                           has_pos ? json_number_value(lat) : 0);
    } else {
        gb_position_t p = {.time = (char *)field_text(ev, "position_time", b1, sizeof(b1)),
                           .speed = (char *)field_text(ev, "speed", b2, sizeof(b2)),
                           .direction = (char *)field_text(ev, "direction", b3, sizeof(b3)),
                           .altitude = (char *)field_text(ev, "altitude", b4, sizeof(b4))};
        rc = gb_manscdp_build_position_notify(body, cs, sn, channel, &p, json_number_value(lon),
                                              json_number_value(lat));
    }
    return rc == 0 && !body->failed ? 0 : -1;
}

/* ---- reports of devices on other nodes: in flight, capped ---- */

static void node_report_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                              const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)rx, (void)dlg;
    struct gb_upstream *up = arg;
    for (uint32_t i = 0; i < up->node_report_count; i++)
        if (up->node_reports[i] == h) {
            up->node_reports[i] = up->node_reports[--up->node_report_count];
            break;
        }
    if (status == 481) { /* whichever of the two it was sent in (the Call-ID says) */
        gb_lower_sub_gone(&up->subs[GB_UP_SUB_ALARM], resp);
        gb_lower_sub_gone(&up->subs[GB_UP_SUB_POSITION], resp);
    }
}

static const struct ua_uac_cb node_report_cb = {.on_final = node_report_final};

void gb_lower_node_reports_free(struct gb_upstream *up)
{
    for (uint32_t i = 0; i < up->node_report_count; i++) ua_request_detach(up->node_reports[i]);
    free(up->node_reports);
    up->node_reports = NULL;
    up->node_report_count = 0;
}

/* Room for one more report of another node's device to up: 0, or -1
 * (counted, logged at most once a second or so). */
static int node_report_room(struct gb_upstream *up, int kind)
{
    if (!up->node_reports) up->node_reports = calloc(GB_LOWER_NODE_REPORTS_MAX, sizeof(*up->node_reports));
    if (up->node_reports && up->node_report_count < GB_LOWER_NODE_REPORTS_MAX) return 0;
    up->node_reports_dropped[kind]++;
    log_warn_rl("gb lower: upstream %s: %u %s NOTIFY(s) for other nodes' devices unanswered, one more dropped "
                "(%llu so far)",
                up->cfg.id, up->node_report_count, kind_names[kind],
                (unsigned long long)up->node_reports_dropped[kind]);
    return -1;
}

/* The one filter and writer of both paths: every registered upstream
 * holding a live subscription of the kind gets the report as NOTIFY. */
static void relay_report(struct gb_lower *l, const char *type, const json_t *ev, bool other_node)
{
    bool alarm = !strcmp(type, "gb.alarm");
    int kind = alarm ? GB_UP_SUB_ALARM : GB_UP_SUB_POSITION;
    for (int i = 0; i < l->up_count; i++) {
        struct gb_upstream *up = &l->ups[i];
        struct gb_up_sub *s = &up->subs[kind];
        if (up->state != GB_UP_REGISTERED || !sub_live(l, s)) continue;
        sbuf_t body;
        sbuf_init(&body);
        if (gb_lower_report_body(&body, up->charset, l->sn + 1, alarm, ev) != 0 ||
            (other_node && node_report_room(up, kind) != 0)) {
            sbuf_free(&body);
            continue;
        }
        l->sn++;
        struct ua_uac *h = other_node ? gb_lower_send_notify(l, up, s, &body, &node_report_cb, up)
                                      : gb_lower_send_notify(l, up, s, &body, NULL, NULL);
        if (!h) log_warn("gb lower: %s NOTIFY to upstream %s not sent", alarm ? "Alarm" : "MobilePosition", up->cfg.id);
        else if (other_node) {
            up->node_reports[up->node_report_count++] = h;
            up->node_reports_sent[kind]++;
        }
        sbuf_free(&body);
    }
}

void gb_lower_relay_report(struct gb_lower *l, const char *type, const json_t *ev) { relay_report(l, type, ev, false); }

void gb_lower_relay_node_report(struct gb_lower *l, const char *type, const json_t *ev)
{
    relay_report(l, type, ev, true);
}

void gb_lower_subs_clear(struct gb_upstream *up)
{
    for (int k = 0; k < GB_UP_SUB_KINDS; k++) {
        if (up->subs[k].active && up->l) sub_unstore(up->l, up, k);
        up->subs[k].active = false;
    }
}

static int load_sub_row(void *arg, const struct store_gb_lower_sub *row)
{
    struct gb_lower *l = arg;
    int kind = -1;
    for (int k = 0; k < GB_UP_SUB_KINDS; k++)
        if (!strcmp(row->kind, kind_names[k])) kind = k;
    struct gb_upstream *up = NULL;
    for (int i = 0; i < l->up_count; i++)
        if (!l->ups[i].removed && !strcmp(l->ups[i].cfg.id, row->upstream)) up = &l->ups[i];
    int64_t left = row->expires_at - clock_wall_ms();
    if (kind < 0 || !up || left <= 0 || !row->call_id[0] || !row->local_tag[0]) {
        /* Over, or for an upstream no longer configured. */
        if (l->store) store_submit(l->store, store_op_gb_lower_sub_delete(row->upstream, row->kind), store_done, NULL);
        return 0;
    }
    struct gb_up_sub *s = &up->subs[kind];
    memset(s, 0, sizeof(*s));
    str_copy(s->call_id, sizeof(s->call_id), str_from_cstr(row->call_id));
    str_copy(s->local_tag, sizeof(s->local_tag), str_from_cstr(row->local_tag));
    str_copy(s->remote_tag, sizeof(s->remote_tag), str_from_cstr(row->remote_tag));
    str_copy(s->contact, sizeof(s->contact), str_from_cstr(row->contact));
    str_copy(s->event, sizeof(s->event), str_from_cstr(row->event));
    s->active = true;
    s->up = up;
    /* Every CSeq sent before the restart was below the ceiling: start there,
     * and store the next one before using it. */
    s->cseq = row->cseq_ceiling;
    s->cseq_ceiling = row->cseq_ceiling + GB_LOWER_CSEQ_STEP;
    s->expires_wall = row->expires_at;
    s->expires_at = gb_lower_now(l) + (uint64_t)left;
    if (kind == GB_UP_SUB_CATALOG) up->ever_subscribed = true;
    sub_persist(l, up, kind);
    log_info("gb lower: upstream %s's %s subscription taken up from the store (%lld s left)", up->cfg.id,
             kind_names[kind], (long long)(left / 1000));
    return 0;
}

int gb_lower_subs_load(struct gb_lower *l)
{
    if (!l->store) return 0;
    int rc = store_load_gb_lower_subs(l->store, load_sub_row, l);
    return rc < 0 ? rc : 0;
}

json_t *gb_lower_subs_json(const struct gb_upstream *up)
{
    json_t *o = json_object();
    for (int k = 0; k < GB_UP_SUB_KINDS; k++) {
        const struct gb_up_sub *s = &up->subs[k];
        bool live = sub_live(up->l, s);
        json_t *e = json_pack("{s:s,s:I}", "state", live ? "active" : "none", "notifies", (json_int_t)s->notifies);
        if (live) json_object_set_new(e, "call_id", json_string(s->call_id));
        if (k != GB_UP_SUB_CATALOG) { /* reports of devices on other nodes (part of notifies) */
            json_object_set_new(e, "other_nodes", json_integer((json_int_t)up->node_reports_sent[k]));
            json_object_set_new(e, "other_nodes_dropped", json_integer((json_int_t)up->node_reports_dropped[k]));
        }
        json_object_set_new(e, "replaced_by_node", json_integer((json_int_t)up->subs_replaced_by_node[k]));
        json_object_set_new(o, kind_names[k], e);
    }
    json_object_set_new(o, "ever_subscribed_catalog", json_boolean(up->ever_subscribed));
    return o;
}
