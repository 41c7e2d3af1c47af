/* offline_msg.c — offline instant messages (see offline_msg.h).
 *
 * A message, as this node holds it:
 *
 *   MESSAGE, user unreachable --202--> queued --2xx to our MESSAGE--> delivered
 *   queued --max_age passed (sweep)--> expired
 *   delivered | expired --max_age after the change (sweep)--> forgotten
 *
 * Each user with messages has a box: its messages in arrival order (every
 * state, so that the API can show what became of them) and at most one
 * delivery in flight. A delivery sends the oldest queued message; its 2xx
 * sends the next; anything else ends the run. The memory is authoritative
 * while the daemon runs; every change of a message is an upsert of its row,
 * so a restart takes up the same boxes. */
#include "subs/offline_msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/htable.h"
#include "base/log.h"
#include "base/str.h"
#include "events/events.h"
#include "registrar/location.h"
#include "sip/proto.h"
#include "store/store.h"

#define OFFLINE_SWEEP_MS 60000u     /* how often expiry is looked at (at most; less when max_age is shorter) */
#define OFFLINE_MAX_ROUTES 8        /* Path entries of a binding used as our route set */

enum offline_state { OFFLINE_QUEUED = 0, OFFLINE_DELIVERED, OFFLINE_EXPIRED };
static const char *const state_names[] = {"queued", "delivered", "expired"};

/* One message; its strings live in text[] (from, to, content type, body). */
struct offline_item {
    struct offline_item *next;         /* in its box, oldest first */
    uint64_t id;
    int64_t received_at, updated_at;
    enum offline_state state;
    const char *from, *to, *ctype, *body;
    size_t body_len;
    char text[];
};

struct offline_box {
    struct hnode node;
    struct offline_item *head, **tail;
    uint32_t queued, queued_bytes;
    struct offline_delivery *delivery; /* the MESSAGE in flight, or NULL */
    char aor[];
};

/* A delivery in flight; its answer finds the box (if still there) by name. */
struct offline_delivery {
    struct offline_msg *owner;
    struct ua_uac *h;
    uint64_t id;
    char aor[LOCATION_MAX_AOR];
};

struct offline_msg {
    struct offline_msg_config cfg;
    struct registrar *registrar;
    struct ua *ua;
    struct timer_service *timers;
    struct store *store;
    struct event_bus *events;
    int64_t (*wall_ms)(void);
    struct htable boxes;
    struct timer_node sweep;
    uint64_t next_id;
    struct offline_msg_stats stats;
};

/* ---- boxes ---- */

static struct offline_box *box_find(const struct offline_msg *o, const char *aor)
{
    for (struct hnode *n = htable_first(&o->boxes, str_hash(str_from_cstr(aor))); n; n = htable_next(n)) {
        struct offline_box *b = container_of(n, struct offline_box, node);
        if (strcmp(b->aor, aor) == 0) return b;
    }
    return NULL;
}

static struct offline_box *box_get(struct offline_msg *o, const char *aor)
{
    struct offline_box *b = box_find(o, aor);
    if (b) return b;
    size_t len = strlen(aor);
    b = calloc(1, sizeof(*b) + len + 1);
    if (!b) return NULL;
    memcpy(b->aor, aor, len + 1);
    b->tail = &b->head;
    if (htable_insert(&o->boxes, &b->node, str_hash(str_from_cstr(aor))) < 0) {
        free(b);
        return NULL;
    }
    return b;
}

/* An empty box with nothing in flight goes. */
static void box_maybe_free(struct offline_msg *o, struct offline_box *b)
{
    if (b->head || b->delivery) return;
    htable_remove(&o->boxes, &b->node);
    free(b);
}

static void box_append(struct offline_box *b, struct offline_item *it)
{
    it->next = NULL;
    *b->tail = it;
    b->tail = &it->next;
    if (it->state == OFFLINE_QUEUED) {
        b->queued++;
        b->queued_bytes += (uint32_t)it->body_len;
    }
}

static struct offline_item *item_new(uint64_t id, const char *from, const char *to, const char *ctype, str_t body)
{
    size_t lf = strlen(from), lt = strlen(to), lc = strlen(ctype);
    struct offline_item *it = calloc(1, sizeof(*it) + lf + lt + lc + body.len + 4);
    if (!it) return NULL;
    char *p = it->text;
    it->id = id;
    it->from = memcpy(p, from, lf + 1), p += lf + 1;
    it->to = memcpy(p, to, lt + 1), p += lt + 1;
    it->ctype = memcpy(p, ctype, lc + 1), p += lc + 1;
    if (body.len) memcpy(p, body.s, body.len);
    p[body.len] = '\0';
    it->body = p;
    it->body_len = body.len;
    return it;
}

/* ---- persistence and events ---- */

static void item_persist(struct offline_msg *o, const struct offline_box *b, const struct offline_item *it)
{
    if (!o->store) return;
    struct store_offline_msg row = {
        .id = it->id, .owner = b->aor, .from_uri = it->from, .to_uri = it->to, .content_type = it->ctype,
        /* Once the message is out (or given up) its text is nobody's business. */
        .body = it->state == OFFLINE_QUEUED ? it->body : "", .received_at = it->received_at,
        .state = state_names[it->state], .updated_at = it->updated_at};
    if (store_submit(o->store, store_op_offline_msg_upsert(&row), NULL, NULL) < 0)
        log_warn("offline: cannot store message %llu for %s", (unsigned long long)it->id, b->aor);
}

static void publish(struct offline_msg *o, const char *type, const struct offline_box *b,
                    const struct offline_item *it)
{
    if (!o->events) return;
    struct event_field f[] = {EVENT_INT("id", it->id), EVENT_STR("user", b->aor), EVENT_STR("from", it->from)};
    event_publish_fields(o->events, type, f, sizeof(f) / sizeof(f[0]));
}

/* A queued message leaves the queue for a final state. */
static void item_finish(struct offline_msg *o, struct offline_box *b, struct offline_item *it,
                        enum offline_state state)
{
    if (it->state != OFFLINE_QUEUED) return;
    b->queued--;
    b->queued_bytes -= (uint32_t)it->body_len;
    o->stats.queued--;
    it->state = state;
    it->updated_at = o->wall_ms();
    item_persist(o, b, it);
    if (state == OFFLINE_DELIVERED) {
        o->stats.delivered++;
        publish(o, "message.delivered", b, it);
        log_info("offline: message %llu delivered to %s", (unsigned long long)it->id, b->aor);
    } else {
        o->stats.expired++;
        publish(o, "message.expired", b, it);
        log_info("offline: message %llu for %s expired undelivered", (unsigned long long)it->id, b->aor);
    }
}

/* ---- taking a MESSAGE ---- */

/* "\"display\" <uri>" or "<uri>": the header value without its tag. */
static void name_addr_text(const struct sip_name_addr *na, char *out, size_t cap)
{
    if (na->display.len)
        snprintf(out, cap, "\"%.*s\" <%.*s>", STR_FMT(na->display), STR_FMT(na->uri_raw));
    else
        snprintf(out, cap, "<%.*s>", STR_FMT(na->uri_raw));
}

int offline_msg_take(void *arg, const struct sip_msg *req, const char *aor, const char **reason)
{
    struct offline_msg *o = arg;
    if (!o->cfg.offline || req->method != SIP_MESSAGE || req->to.tag.len) return 0;
    /* The store keeps text; a body with a NUL in it cannot be kept whole. */
    if (req->body.len && memchr(req->body.s, '\0', req->body.len)) return 0;
    struct offline_box *b = box_find(o, aor);
    uint32_t queued = b ? b->queued : 0, bytes = b ? b->queued_bytes : 0;
    if (req->body.len > (size_t)o->cfg.max_body) {
        o->stats.refused++;
        *reason = "Message Too Large To Keep";
        log_info("offline: MESSAGE for %s refused: %zu body bytes ([messages] max_body %d)", aor, req->body.len,
                 o->cfg.max_body);
        return 480;
    }
    if (queued + 1 > (uint32_t)o->cfg.max_per_user ||
        (uint64_t)bytes + req->body.len > (uint64_t)o->cfg.max_bytes_per_user) {
        o->stats.refused++;
        *reason = "Offline Message Quota Exceeded";
        log_info("offline: MESSAGE for %s refused: %u queued, %u bytes (quota %d messages, %d bytes)", aor, queued,
                 bytes, o->cfg.max_per_user, o->cfg.max_bytes_per_user);
        return 480;
    }
    char from[1024], to[1024], ctype[256];
    name_addr_text(&req->from, from, sizeof(from));
    name_addr_text(&req->to, to, sizeof(to));
    snprintf(ctype, sizeof(ctype), "%.*s", STR_FMT(req->content_type));
    if (!b) b = box_get(o, aor);
    struct offline_item *it = b ? item_new(o->next_id, from, to, ctype, req->body) : NULL;
    if (!it) {
        if (b) box_maybe_free(o, b);
        return 0;
    }
    o->next_id++;
    it->received_at = it->updated_at = o->wall_ms();
    it->state = OFFLINE_QUEUED;
    box_append(b, it);
    o->stats.queued++;
    o->stats.stored++;
    item_persist(o, b, it);
    publish(o, "message.stored", b, it);
    log_info("offline: MESSAGE from %s kept for %s as %llu (%u queued)", from, aor, (unsigned long long)it->id,
             b->queued);
    return 202;
}

/* ---- delivering ---- */

static void deliver_next(struct offline_msg *o, struct offline_box *b);

static struct offline_item *first_queued(const struct offline_box *b)
{
    for (struct offline_item *it = b->head; it; it = it->next)
        if (it->state == OFFLINE_QUEUED) return it;
    return NULL;
}

static struct offline_item *item_find(const struct offline_box *b, uint64_t id)
{
    for (struct offline_item *it = b->head; it; it = it->next)
        if (it->id == id) return it;
    return NULL;
}

/* The binding most recently registered: the one that just came up. */
static const struct location_binding *newest_binding(struct offline_msg *o, const char *aor)
{
    struct location *loc = registrar_location(o->registrar);
    const struct location_binding *bs[LOCATION_MAX_CONTACTS];
    size_t n = loc ? location_lookup(loc, str_from_cstr(aor), bs, LOCATION_MAX_CONTACTS) : 0;
    if (n > LOCATION_MAX_CONTACTS) n = LOCATION_MAX_CONTACTS;
    const struct location_binding *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (!best || bs[i]->received_wall_ms > best->received_wall_ms) best = bs[i];
    return best;
}

/* Splits a comma-joined Path into its entries (commas inside <> or quotes
 * kept) in buf; returns how many. */
static size_t split_path(const char *path, char *buf, size_t cap, str_t *out, size_t max)
{
    size_t len = strlen(path);
    if (len >= cap) return 0;
    memcpy(buf, path, len + 1);
    size_t n = 0, start = 0;
    int depth = 0;
    bool quoted = false;
    for (size_t i = 0; i <= len && n < max; i++) {
        char c = buf[i];
        if (c == '"') quoted = !quoted;
        else if (!quoted && c == '<') depth++;
        else if (!quoted && c == '>' && depth > 0) depth--;
        if (c != '\0' && (c != ',' || depth || quoted)) continue;
        str_t e = str_trim((str_t){buf + start, i - start});
        if (e.len) out[n++] = e;
        start = i + 1;
    }
    return n;
}

/* Where our MESSAGE to binding bn goes (as the proxy reaches a binding):
 * its Path's first hop; else the connection it registered over, or its
 * source address when it is behind NAT; else its Contact. */
static int binding_dest(const struct location_binding *bn, const str_t *routes, size_t nroutes,
                        struct transport_dest *d)
{
    memset(d, 0, sizeof(*d));
    if (nroutes) {
        struct sip_name_addr na;
        if (sip_name_addr_parse(routes[0], &na) != 0) return -EINVAL;
        return ua_dest_from_uri(na.uri_raw, d);
    }
    size_t alen = bn->addr.sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                  : bn->addr.sa.sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                      : 0;
    enum sip_transport proto = bn->transport < SIP_TRANSPORT_COUNT ? (enum sip_transport)bn->transport
                                                                   : SIP_TRANSPORT_UDP;
    bool lost = bn->flags & LOCATION_FLAG_TRANSPORT_LOST;
    if (sip_transport_is_ws(proto)) {
        if (!bn->conn_id || lost) return -ENOTCONN; /* a browser is reached over its socket or not at all */
        d->proto = proto;
        d->conn_id = bn->conn_id;
        return 0;
    }
    if (alen && ((sip_transport_is_stream(proto) && bn->conn_id && !lost) ||
                 (!sip_transport_is_stream(proto) && (bn->flags & LOCATION_FLAG_NAT)))) {
        d->proto = proto;
        d->conn_id = sip_transport_is_stream(proto) ? bn->conn_id : 0;
        memcpy(&d->addr, &bn->addr, alen);
        return 0;
    }
    return ua_dest_from_uri(str_from_cstr(bn->contact), d);
}

/* RFC 1123 date of a wall-clock time, as RFC 3261 §20.17 writes it. */
static void date_header(int64_t wall_ms, char *out, size_t cap)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "Date: %a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void on_delivery_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                              const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)resp, (void)rx, (void)dlg;
    struct offline_delivery *dv = arg;
    struct offline_msg *o = dv->owner;
    struct offline_box *b = box_find(o, dv->aor);
    if (!b || b->delivery != dv) {
        free(dv);
        return;
    }
    b->delivery = NULL;
    struct offline_item *it = item_find(b, dv->id);
    free(dv);
    if (status >= 200 && status < 300) {
        if (it) item_finish(o, b, it, OFFLINE_DELIVERED);
        deliver_next(o, b);
        return;
    }
    o->stats.delivery_failures++;
    log_info("offline: message %llu for %s answered %d: kept for a later registration",
             (unsigned long long)(it ? it->id : 0), b->aor, status);
    box_maybe_free(o, b);
}

/* Sends the oldest queued message of b unless one is in flight. */
static void deliver_next(struct offline_msg *o, struct offline_box *b)
{
    struct offline_item *it = b->delivery ? NULL : first_queued(b);
    const struct location_binding *bn = it ? newest_binding(o, b->aor) : NULL;
    if (!bn) {
        box_maybe_free(o, b);
        return;
    }
    char pbuf[1024];
    str_t routes[OFFLINE_MAX_ROUTES];
    size_t nroutes = bn->path[0] ? split_path(bn->path, pbuf, sizeof(pbuf), routes, OFFLINE_MAX_ROUTES) : 0;
    struct transport_dest dest;
    int rc = binding_dest(bn, routes, nroutes, &dest);
    if (rc < 0) {
        log_warn("offline: no way to %s (%s): %u message(s) wait", bn->contact, strerror(-rc), b->queued);
        return;
    }
    struct offline_delivery *dv = calloc(1, sizeof(*dv));
    if (!dv) return;
    dv->owner = o;
    dv->id = it->id;
    snprintf(dv->aor, sizeof(dv->aor), "%s", b->aor);
    char date[64];
    date_header(it->received_at, date, sizeof(date));
    str_t headers[] = {str_from_cstr(date)};
    struct ua_request r = {
        .method = SIP_MESSAGE, .ruri = str_from_cstr(bn->contact), .from = str_from_cstr(it->from),
        .to = str_from_cstr(it->to), .routes = routes, .route_count = nroutes, .headers = headers,
        .header_count = 1, .content_type = str_from_cstr(it->ctype),
        .body = (str_t){it->body, it->body_len}};
    struct ua_uac_cb cb = {.on_final = on_delivery_final};
    dv->h = ua_request_send(o->ua, &r, &dest, NULL, &cb, dv);
    if (!dv->h) {
        log_warn("offline: cannot send message %llu to %s", (unsigned long long)it->id, bn->contact);
        free(dv);
        return;
    }
    b->delivery = dv;
}

void offline_msg_on_registered(void *arg, const char *aor)
{
    struct offline_msg *o = arg;
    struct offline_box *b = box_find(o, aor);
    if (b && b->queued) deliver_next(o, b);
}

/* ---- the sweep ---- */

static uint64_t sweep_period(const struct offline_msg *o)
{
    uint64_t age_ms = (uint64_t)o->cfg.max_age * 1000u;
    return age_ms < OFFLINE_SWEEP_MS ? age_ms : OFFLINE_SWEEP_MS;
}

/* Expires what waited too long, forgets what was final long enough. */
static int sweep_box(struct hnode *n, void *arg)
{
    struct offline_msg *o = arg;
    struct offline_box *b = container_of(n, struct offline_box, node);
    int64_t now = o->wall_ms(), age = (int64_t)o->cfg.max_age * 1000;
    for (struct offline_item **pp = &b->head; *pp;) {
        struct offline_item *it = *pp;
        /* The one in flight is left to its answer. */
        bool in_flight = b->delivery && b->delivery->id == it->id;
        if (it->state == OFFLINE_QUEUED && !in_flight && it->received_at + age <= now)
            item_finish(o, b, it, OFFLINE_EXPIRED);
        if (it->state != OFFLINE_QUEUED && it->updated_at + age <= now) {
            *pp = it->next;
            free(it);
            continue;
        }
        pp = &it->next;
    }
    /* The tail pointer follows the last survivor. */
    b->tail = &b->head;
    while (*b->tail) b->tail = &(*b->tail)->next;
    if (!b->head && !b->delivery) {
        htable_remove(&o->boxes, &b->node); /* allowed: the node being visited */
        free(b);
    }
    return 0;
}

static void on_sweep(struct timer_node *tn, uint64_t now)
{
    struct offline_msg *o = container_of(tn, struct offline_msg, sweep);
    htable_foreach(&o->boxes, sweep_box, o);
    if (o->store)
        store_submit(o->store, store_op_offline_msgs_delete_done(o->wall_ms() - (int64_t)o->cfg.max_age * 1000),
                     NULL, NULL);
    timer_start(o->timers, &o->sweep, now + sweep_period(o), on_sweep);
}

/* ---- life ---- */

struct offline_msg *offline_msg_new(const struct offline_msg_deps *d)
{
    struct offline_msg *o = calloc(1, sizeof(*o));
    if (!o) return NULL;
    o->cfg = *d->cfg;
    o->registrar = d->registrar;
    o->ua = d->ua;
    o->timers = d->timers;
    o->store = d->store;
    o->events = d->events;
    o->wall_ms = d->wall_ms ? d->wall_ms : clock_wall_ms;
    o->next_id = 1;
    htable_init(&o->boxes);
    timer_node_init(&o->sweep);
    timer_start(o->timers, &o->sweep, timer_now(o->timers) + sweep_period(o), on_sweep);
    return o;
}

static int load_row(void *arg, const struct store_offline_msg *row)
{
    struct offline_msg *o = arg;
    int st = -1;
    for (int k = 0; k < 3; k++)
        if (strcmp(row->state, state_names[k]) == 0) st = k;
    if (st < 0) return 0; /* a state this build does not know: left alone */
    struct offline_box *b = box_get(o, row->owner);
    struct offline_item *it =
        b ? item_new(row->id, row->from_uri, row->to_uri, row->content_type, str_from_cstr(row->body)) : NULL;
    if (!it) return -ENOMEM;
    it->state = (enum offline_state)st;
    it->received_at = row->received_at;
    it->updated_at = row->updated_at;
    box_append(b, it);
    if (it->state == OFFLINE_QUEUED) o->stats.queued++;
    if (row->id >= o->next_id) o->next_id = row->id + 1;
    return 0;
}

int offline_msg_load(struct offline_msg *o)
{
    if (!o->store) return 0;
    int rc = store_load_offline_msgs(o->store, load_row, o);
    if (rc < 0) return rc;
    htable_foreach(&o->boxes, sweep_box, o); /* what expired while we were down */
    if (o->stats.queued) log_info("offline: %u message(s) wait for their users", o->stats.queued);
    return (int)o->stats.queued;
}

static int free_box(struct hnode *n, void *arg)
{
    struct offline_msg *o = arg;
    struct offline_box *b = container_of(n, struct offline_box, node);
    if (b->delivery) {
        /* Detached, it calls back no more: its message stays queued in the
         * store for the next run. */
        ua_request_detach(b->delivery->h);
        free(b->delivery);
    }
    while (b->head) {
        struct offline_item *it = b->head;
        b->head = it->next;
        free(it);
    }
    htable_remove(&o->boxes, &b->node);
    free(b);
    return 0;
}

void offline_msg_free(struct offline_msg *o)
{
    if (!o) return;
    timer_stop(o->timers, &o->sweep);
    htable_foreach(&o->boxes, free_box, o);
    htable_free(&o->boxes);
    free(o);
}

/* ---- reading ---- */

struct list_ctx {
    const char *state;
    json_t *arr;
};

static int list_box(const struct offline_box *b, struct list_ctx *c)
{
    for (const struct offline_item *it = b->head; it; it = it->next) {
        if (c->state && c->state[0] && strcmp(c->state, state_names[it->state]) != 0) continue;
        char received[40], updated[40];
        clock_iso8601(received, sizeof(received), it->received_at, 1);
        clock_iso8601(updated, sizeof(updated), it->updated_at, 1);
        json_t *m = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s}", "id", (json_int_t)it->id, "user", b->aor,
                              "from", it->from, "to", it->to, "content_type", it->ctype, "size",
                              (json_int_t)it->body_len, "received", received, "state", state_names[it->state],
                              "updated", updated);
        if (!m || json_array_append_new(c->arr, m) != 0) return -1;
    }
    return 0;
}

static int list_one(struct hnode *n, void *arg)
{
    return list_box(container_of(n, struct offline_box, node), arg);
}

static int by_id(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
    return x < y ? -1 : x > y;
}

json_t *offline_msg_list_json(const struct offline_msg *o, const char *user, const char *state)
{
    struct list_ctx c = {state, json_array()};
    if (!c.arr) return NULL;
    int rc = 0;
    if (user && user[0]) {
        const struct offline_box *b = box_find(o, user);
        if (b) rc = list_box(b, &c);
    } else {
        rc = htable_foreach((struct htable *)&o->boxes, list_one, &c);
    }
    if (rc != 0) {
        json_decref(c.arr);
        return NULL;
    }
    /* Arrival order across users (a box is in order already). */
    size_t n = json_array_size(c.arr);
    if (n > 1 && !(user && user[0])) {
        json_t **v = malloc(n * sizeof(*v));
        json_t *sorted = json_array();
        if (!v || !sorted) {
            free(v);
            json_decref(sorted);
            json_decref(c.arr);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) v[i] = json_array_get(c.arr, i);
        qsort(v, n, sizeof(*v), by_id);
        for (size_t i = 0; i < n; i++) json_array_append(sorted, v[i]);
        free(v);
        json_decref(c.arr);
        c.arr = sorted;
    }
    return c.arr;
}

bool offline_msg_state_valid(const char *state)
{
    for (size_t k = 0; k < sizeof(state_names) / sizeof(state_names[0]); k++)
        if (strcmp(state, state_names[k]) == 0) return true;
    return false;
}

void offline_msg_get_stats(const struct offline_msg *o, struct offline_msg_stats *out) { *out = o->stats; }

void offline_msg_stats_json(const struct offline_msg *o, json_t *stats)
{
    const struct offline_msg_stats *s = &o->stats;
    json_object_set_new(stats, "offline_messages",
                        json_pack("{s:i,s:I,s:I,s:I,s:I,s:I}", "queued", (int)s->queued, "stored",
                                  (json_int_t)s->stored, "refused", (json_int_t)s->refused, "delivered",
                                  (json_int_t)s->delivered, "expired", (json_int_t)s->expired,
                                  "delivery_failures", (json_int_t)s->delivery_failures));
}
