/* upper.c — the GB/T 28181 upper platform: device table, REGISTER with
 * digest, keepalive, online/offline, persistence, MANSCDP MESSAGE dispatch.
 *
 * A device is online between a successful REGISTER and the first of: Expires
 * 0, registration expiry, interval × misses without a keepalive, loss of the
 * TCP connection it registered over. One timer per device holds the earlier
 * of its two deadlines (expiry, keepalive), so nothing scans the table.
 *
 * Digest: our own auth_server offering MD5 only (GB/T 28181 §9.1.2 devices
 * speak nothing else), realm = [gb] domain, qop per [gb] qop (many devices
 * fail with qop, RFC 2069 form by default). The HA1 is computed from the
 * device's password (its own record, else [gb] password). A REGISTER that
 * re-uses the nonce of the device's last accepted REGISTER from another
 * address is a replay (a captured Authorization): challenged again, the
 * device stays where it is.
 *
 * Requests in a device's name (MESSAGE) are taken only from the flow it
 * registered over: the same UDP address and port, or the same TCP
 * connection. Anything else is refused 403 without a transaction record: a
 * forged keepalive must not keep a dead camera online, nor a forged Catalog
 * replace its channels. A device whose address changed (NAT rebinding)
 * takes the 403 as "register again" (§9.6) and is then reached there. */
#include "gb/upper/upper_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "events/events.h"
#include "auth/digest.h"
#include "base/clock.h"
#include "base/log.h"
#include "store/store.h"
#include "txn/txn.h"

#define MANSCDP_TYPE "Application/MANSCDP+xml"

uint64_t gb_now(const struct gb_upper *g) { return timer_now(g->timers); }

void gb_iso_time(int64_t wall_ms, char out[32])
{
    if (wall_ms <= 0) out[0] = '\0';
    else clock_iso8601(out, 32, wall_ms, 1);
}

void gb_publish(struct gb_upper *g, const char *type, json_t *fields)
{
    if (g->events) event_publish(g->events, type, fields);
    else json_decref(fields);
}

json_t *gb_error_json(const char *code, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return json_pack("{s:s,s:s}", "error", code, "detail", detail);
}

const char *gb_log_text(const char *in, char *out, size_t cap)
{
    size_t k = 0;
    for (const char *p = in ? in : ""; *p && k + 1 < cap; p++) out[k++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    out[k] = '\0';
    return out;
}

/* ---- waiters ---- */

void gb_waiter_add(struct gb_waiter **list, struct gb_waiter *wt)
{
    wt->next = *list;
    wt->list = list;
    *list = wt;
}

void gb_waiter_cancel(struct gb_waiter *wt)
{
    if (!wt || !wt->list) return;
    for (struct gb_waiter **pp = wt->list; *pp; pp = &(*pp)->next) {
        if (*pp == wt) {
            *pp = wt->next;
            break;
        }
    }
    wt->list = NULL;
    wt->next = NULL;
}

void gb_waiters_done(struct gb_waiter **list, int status, json_t *body)
{
    while (*list) {
        struct gb_waiter *wt = *list;
        *list = wt->next;
        wt->list = NULL;
        wt->next = NULL;
        json_incref(body);
        wt->done(wt, status, body);
    }
    json_decref(body);
}

/* ---- device table ---- */

/* Two base/htable.h tables over the same devices: by id (every device) and
 * by conn_id (those registered over TCP, for a lost connection). */
static uint32_t id_hash(str_t id) { return str_hash(id); }

struct gb_device *gb_device_find_str(struct gb_upper *g, str_t id)
{
    if (id.len != GB_ID_LEN) return NULL;
    for (struct hnode *n = htable_first(&g->devices, id_hash(id)); n; n = htable_next(n)) {
        struct gb_device *d = container_of(n, struct gb_device, by_id);
        if (str_eq_cstr(id, d->id)) return d;
    }
    return NULL;
}

struct gb_device *gb_device_find(struct gb_upper *g, const char *id)
{
    return id ? gb_device_find_str(g, str_from_cstr(id)) : NULL;
}

static void conn_add(struct gb_upper *g, struct gb_device *d)
{
    if (hnode_linked(&d->by_conn) || !d->conn_id) return;
    /* No memory for the very first bucket array: the device is simply not
     * found when its connection goes (its keepalive deadline still ends it). */
    (void)htable_insert(&g->by_conn, &d->by_conn, htable_hash_u64(d->conn_id));
}

static void conn_remove(struct gb_upper *g, struct gb_device *d) { htable_remove(&g->by_conn, &d->by_conn); }

static void device_timer(struct timer_node *n, uint64_t now);

static struct gb_device *device_new(struct gb_upper *g, str_t id)
{
    if (!gb_id_valid(id)) return NULL;
    struct gb_device *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->g = g;
    str_copy(d->id, sizeof(d->id), id);
    d->charset = g->charset;
    d->auth_enabled = true;
    d->allow = true;
    timer_node_init(&d->timer);
    gb_subs_device_init(d);
    if (htable_insert(&g->devices, &d->by_id, id_hash(id)) != 0) {
        free(d);
        return NULL;
    }
    return d;
}

static void device_free(struct gb_upper *g, struct gb_device *d)
{
    timer_stop(g->timers, &d->timer);
    gb_subs_device_offline(g, d);
    json_decref(d->position);
    while (d->queries) gb_queries_fail(g, d, 503, "shutting-down", "the device record is gone");
    gb_channels_free(d->channels, d->channel_count);
    json_decref(d->info);
    json_decref(d->status);
    free(d->password);
    free(d->contact);
    gb_str_release(d->local_host);
    free(d);
}

static void device_unlink(struct gb_upper *g, struct gb_device *d)
{
    conn_remove(g, d);
    htable_remove(&g->devices, &d->by_id);
}

struct foreach_ctx {
    void (*fn)(struct gb_device *d, void *arg);
    void *arg;
};

static int foreach_visit(struct hnode *n, void *arg)
{
    struct foreach_ctx *c = arg;
    c->fn(container_of(n, struct gb_device, by_id), c->arg);
    return 0;
}

void gb_device_foreach(struct gb_upper *g, void (*fn)(struct gb_device *d, void *arg), void *arg)
{
    struct foreach_ctx c = {.fn = fn, .arg = arg};
    htable_foreach(&g->devices, foreach_visit, &c);
}

void gb_device_dest(const struct gb_device *d, struct transport_dest *out)
{
    memset(out, 0, sizeof(*out));
    out->proto = d->proto;
    memcpy(&out->addr, &d->addr, d->addr.sa.sa_family == AF_INET6 ? sizeof(d->addr.in6) : sizeof(d->addr.in));
    out->conn_id = sip_transport_is_stream(d->proto) ? d->conn_id : 0;
    out->listener_id = d->proto == SIP_TRANSPORT_UDP ? d->listener_id : 0;
}

void gb_device_remote_text(const struct gb_device *d, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (!d->addr.sa.sa_family) return;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, &d->addr, sizeof(d->addr));
    transport_addr_text(&ss, buf, cap);
}

void gb_device_request(struct gb_upper *g, struct gb_device *d, const char *target_id, struct ua_request *r,
                       char *buf, size_t cap)
{
    const struct gb_config *cfg = &g->cfg;
    char remote[TRANSPORT_ADDR_TEXT];
    gb_device_remote_text(d, remote, sizeof(remote));
    memset(r, 0, sizeof(*r));
    int a = snprintf(buf, cap, "sip:%s@%s", target_id, remote[0] ? remote : cfg->domain);
    int b = snprintf(buf + a + 1, cap - (size_t)a - 1, "<sip:%s@%s>", cfg->id, cfg->domain);
    int c = snprintf(buf + a + b + 2, cap - (size_t)(a + b) - 2, "<sip:%s@%.10s>", target_id, target_id);
    r->ruri = str_make(buf, (size_t)a);
    r->from = str_make(buf + a + 1, (size_t)b);
    r->to = str_make(buf + a + b + 2, (size_t)c);
    r->local_host = d->local_host ? str_from_cstr(d->local_host) : STR_NULL;
}

/* ---- persistence ---- */

void gb_device_persist(struct gb_upper *g, struct gb_device *d)
{
    if (!g->store) return;
    char remote[TRANSPORT_ADDR_TEXT];
    gb_device_remote_text(d, remote, sizeof(remote));
    char *info = d->info ? json_dumps(d->info, JSON_COMPACT) : NULL;
    char *status = d->status ? json_dumps(d->status, JSON_COMPACT) : NULL;
    char subscribe[GB_SUBS_TEXT_MAX];
    gb_subs_own_text(d->sub_own, subscribe);
    struct store_gb_device row = {
        .id = d->id,
        .password = d->password ? d->password : "",
        .charset = gb_charset_name(d->charset),
        .auth_enabled = d->auth_enabled,
        .allow = d->allow,
        .online = d->online,
        .remote = remote,
        .transport = sip_transport_param(d->proto),
        .registered_at = d->registered_at,
        .last_keepalive = d->last_keepalive,
        .expires_at = d->expires_at,
        .info_json = info ? info : "",
        .status_json = status ? status : "",
        .subscribe = subscribe,
    };
    int rc = store_submit(g->store, store_op_gb_device_upsert(&row), NULL, NULL);
    if (rc < 0) log_warn("gb device %s: not persisted (%s)", d->id, strerror(-rc));
    else d->in_store = true;
    d->keepalive_stored_at = d->last_keepalive;
    free(info);
    free(status);
}

/* ---- JSON ---- */

static json_t *time_or_null(int64_t ms)
{
    char t[32];
    gb_iso_time(ms, t);
    return t[0] ? json_string(t) : json_null();
}

/* A member of the last DeviceInfo answer, or null (none yet, or empty). */
static json_t *info_or_null(const struct gb_device *d, const char *key)
{
    const char *v = gb_device_info_str(d, key);
    return v ? json_string(v) : json_null();
}

json_t *gb_device_json(struct gb_upper *g, struct gb_device *d, bool full)
{
    (void)g;
    char remote[TRANSPORT_ADDR_TEXT];
    gb_device_remote_text(d, remote, sizeof(remote));
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(d->id));
    /* The device names itself only in its DeviceInfo answer (§A.2.6.6; kept
     * in the store): null until one came. */
    json_object_set_new(o, "name", info_or_null(d, "device_name"));
    json_object_set_new(o, "manufacturer", info_or_null(d, "manufacturer"));
    json_object_set_new(o, "model", info_or_null(d, "model"));
    json_object_set_new(o, "online", json_boolean(d->online));
    json_object_set_new(o, "remote", remote[0] ? json_string(remote) : json_null());
    json_object_set_new(o, "transport", d->addr.sa.sa_family ? json_string(sip_transport_param(d->proto))
                                                             : json_null());
    json_object_set_new(o, "registered_at", time_or_null(d->registered_at));
    json_object_set_new(o, "last_keepalive", time_or_null(d->last_keepalive));
    json_object_set_new(o, "expires_at", time_or_null(d->online ? d->expires_at : 0));
    json_object_set_new(o, "channels", json_integer((json_int_t)d->channel_count));
    json_object_set_new(o, "charset", json_string(gb_charset_name(d->charset)));
    json_object_set_new(o, "auth", json_boolean(d->auth_enabled));
    json_object_set_new(o, "allow", json_boolean(d->allow));
    json_object_set_new(o, "own_password", json_boolean(d->password != NULL));
    json_object_set_new(o, "subscribe", gb_subs_mask_json(gb_subs_mask(d)));
    json_object_set_new(o, "own_subscribe", json_boolean(d->sub_own >= 0));
    json_object_set_new(o, "streams", json_integer(d->streams));
    json_object_set(o, "position", d->position ? d->position : json_null());
    if (full) {
        json_object_set_new(o, "subscriptions", gb_subs_json(d));
        json_object_set_new(o, "contact", d->contact ? json_string(d->contact) : json_null());
        json_object_set(o, "info", d->info ? d->info : json_null());
        json_object_set(o, "status", d->status ? d->status : json_null());
    }
    return o;
}

struct device_filter {
    json_t *arr;
    const char *q;    /* NULL: every device */
};

/* needle (already lower case) in hay, ASCII letters folded: names in other
 * scripts (Chinese) have no case and match byte for byte. */
static bool contains_folded(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && (char)tolower((unsigned char)hay[i]) == needle[i]) i++;
        if (i == n) return true;
    }
    return !n;
}

static void collect_device(struct gb_device *d, void *arg)
{
    struct device_filter *f = arg;
    if (f->q) {
        const char *name = gb_device_info_str(d, "device_name");
        if (!contains_folded(d->id, f->q) && !(name && contains_folded(name, f->q))) return;
    }
    json_array_append_new(f->arr, gb_device_json(d->g, d, false));
}

static int cmp_id(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));
    return strcmp(x ? x : "", y ? y : "");
}

json_t *gb_devices_json(struct gb_upper *g) { return gb_devices_json_match(g, NULL); }

json_t *gb_devices_json_match(struct gb_upper *g, const char *q)
{
    char folded[GB_DEVICES_QUERY_MAX + 1];
    json_t *arr = json_array();
    struct device_filter f = {.arr = arr, .q = NULL};
    if (q && *q) {
        size_t n = strnlen(q, GB_DEVICES_QUERY_MAX + 1);
        if (n > GB_DEVICES_QUERY_MAX) n = GB_DEVICES_QUERY_MAX; /* the route refuses longer ones */
        for (size_t i = 0; i < n; i++) folded[i] = (char)tolower((unsigned char)q[i]);
        folded[n] = '\0';
        f.q = folded;
    }
    gb_device_foreach(g, collect_device, &f);
    /* Stable order for people and tests. */
    size_t n = json_array_size(arr);
    json_t **v = malloc((n ? n : 1) * sizeof(*v));
    if (v) {
        for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(arr, i));
        qsort(v, n, sizeof(*v), cmp_id);
        json_array_clear(arr);
        for (size_t i = 0; i < n; i++) json_array_append_new(arr, v[i]);
        free(v);
    }
    return json_pack("{s:o}", "devices", arr);
}

/* ---- online / offline ---- */

static void device_arm(struct gb_upper *g, struct gb_device *d)
{
    uint64_t next = d->expires_mono < d->keepalive_deadline ? d->expires_mono : d->keepalive_deadline;
    timer_start(g->timers, &d->timer, next, device_timer);
}

static void device_offline_from(struct gb_upper *g, struct gb_device *d, const char *reason, const char *node);

static void device_offline(struct gb_upper *g, struct gb_device *d, const char *reason)
{
    device_offline_from(g, d, reason, NULL);
}

void gb_device_node_lost(struct gb_upper *g, struct gb_device *d, const char *node)
{
    device_offline_from(g, d, "node-lost", node);
}

/* node: the dead node a survivor found the device registered to (reason
 * node-lost; the event names it), else NULL. */
static void device_offline_from(struct gb_upper *g, struct gb_device *d, const char *reason, const char *node)
{
    if (!d->online) return;
    d->online = false;
    if (g->online) g->online--;
    timer_stop(g->timers, &d->timer);
    conn_remove(g, d);
    log_info("gb device %s offline (%s)", d->id, reason);
    gb_streams_stop_device(g, d->id, "device-offline");
    gb_peer_relays_stop_device(g, d->id); /* streams relayed to other nodes end too */
    gb_queries_fail(g, d, 503, "device-offline", "the device went offline");
    gb_subs_device_offline(g, d);
    json_t *f = json_pack("{s:s,s:s}", "device_id", d->id, "reason", reason);
    if (f && node) json_object_set_new(f, "lost_node", json_string(node)); /* "node": the stream's writer */
    gb_publish(g, "gb.device.offline", f);
    gb_device_persist(g, d);
    gb_mirror_offline(g, d);
}

static void device_timer(struct timer_node *n, uint64_t now)
{
    struct gb_device *d = container_of(n, struct gb_device, timer);
    struct gb_upper *g = d->g;
    if (!d->online) return;
    if (now >= d->expires_mono) device_offline(g, d, "expired");
    else if (now >= d->keepalive_deadline) device_offline(g, d, "keepalive-timeout");
    else device_arm(g, d);
}

static uint64_t keepalive_window_ms(const struct gb_upper *g)
{
    const struct gb_config *cfg = &g->cfg;
    return (uint64_t)cfg->keepalive_interval * (uint64_t)cfg->keepalive_misses * 1000u;
}

/* ---- answering ---- */

/* stateless: keep no transaction record for Timer J (RFC 3261 §8.2.7); a
 * retransmission of the request is then handled again, so only for answers
 * where that is harmless: a challenge, a keepalive. */
static void reply_as(struct gb_upper *g, struct txn *st, int status, const char *reason, const str_t *extra, size_t n,
                     bool stateless)
{
    str_t lines[8];
    size_t k = 0;
    char server[96];
    snprintf(server, sizeof(server), "Server: %s", g->local.user_agent);
    if (g->local.user_agent[0]) lines[k++] = str_from_cstr(server);
    for (size_t i = 0; i < n && k < 8; i++) lines[k++] = extra[i];
    char tag[UA_TAG_SIZE];
    ua_new_tag(g->ua, tag);
    const struct sip_msg *req = txn_request(st);
    str_t to_tag = req && req->to.tag.len ? STR_NULL : str_from_cstr(tag);
    int rc = (stateless ? txn_respond_stateless : txn_respond)(st, status, reason, to_tag, lines, k, STR_NULL,
                                                                STR_NULL);
    if (rc < 0) log_warn("gb: %d not sent: %s", status, strerror(-rc));
    if (status >= 400) g->stats.refused++;
}

/* A challenge is stateless: a device that retransmits its REGISTER is
 * challenged again. */
static void reply(struct gb_upper *g, struct txn *st, int status, const char *reason, const str_t *extra, size_t n)
{
    reply_as(g, st, status, reason, extra, n, status == 401);
}

/* GB/T 28181 §9.1.2.1: the 200 to REGISTER carries the time devices set
 * their clocks from, local time with milliseconds and no zone. */
static void date_line(char *buf, size_t cap)
{
    int64_t ms = clock_wall_ms();
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&sec, &tm);
    snprintf(buf, cap, "Date: %04d-%02d-%02dT%02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static void challenge(struct gb_upper *g, struct txn *st, bool stale)
{
    sbuf_t b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "WWW-Authenticate: ");
    uint64_t now_s = (uint64_t)(clock_wall_ms() / 1000);
    int rc = auth_challenge_for(g->auth, str_from_cstr(g->cfg.domain), AUTH_ALG_MD5, g->cfg.qop, stale,
                                (const struct sockaddr *)&txn_rx_info(st)->src, now_s, &b);
    if (rc != 0 || b.failed) {
        log_error("gb: cannot build a challenge (%d)", rc);
        reply(g, st, 500, NULL, NULL, 0);
    } else {
        str_t line = sbuf_str(&b);
        reply(g, st, 401, "Unauthorized", &line, 1);
    }
    sbuf_free(&b);
}

/* Is rx where d registered from: the same TCP connection, else the same
 * UDP address and port. */
static bool device_flow_is(const struct gb_device *d, const struct transport_rx *rx)
{
    if (!d->addr.sa.sa_family || rx->proto != d->proto) return false;
    if (sip_transport_is_stream(d->proto)) return d->conn_id && rx->conn_id == d->conn_id;
    if (rx->src.ss_family != d->addr.sa.sa_family) return false;
    if (d->addr.sa.sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&rx->src;
        return a->sin_port == d->addr.in.sin_port && a->sin_addr.s_addr == d->addr.in.sin_addr.s_addr;
    }
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&rx->src;
    return a->sin6_port == d->addr.in6.sin6_port && !memcmp(&a->sin6_addr, &d->addr.in6.sin6_addr, sizeof(a->sin6_addr));
}

/* A captured Authorization replayed from elsewhere while its nonce lives:
 * the nonce of d's last accepted REGISTER, from an address d is not at. The
 * device itself may re-use its nonce (qop nc+1, or RFC 2069 form) from where
 * it is; after a move it gets one more challenge, which costs a round trip. */
static bool nonce_replayed(const struct gb_device *d, uint64_t nonce, const struct transport_rx *rx)
{
    return d->last_nonce && nonce == d->last_nonce && !device_flow_is(d, rx);
}

/* 64-bit FNV-1a: a device keeps 8 bytes of its nonce, not the nonce (the
 * nonces are ours, nobody picks them to collide). Never 0. */
static uint64_t nonce_hash(str_t nonce)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < nonce.len; i++) h = (h ^ (uint8_t)nonce.s[i]) * 1099511628211ull;
    return h ? h : 1;
}

/* 1: authenticated; 0: answered (401/403). */
/* auth.failed for a device's REGISTER, when the throttle says one is due
 * (at most one per device and source per failure window). */
static void auth_failed_event(struct gb_upper *g, str_t id, const struct transport_rx *rx, enum auth_result res,
                              const struct auth_verify_info *info)
{
    const char *reason = res == AUTH_LOCKED
                             ? (info->throttle.locked == AUTH_THROTTLE_USER ? "locked-user" : "locked-source")
                         : res == AUTH_BAD_RESPONSE ? "wrong-password"
                         : res == AUTH_REPLAY       ? "replay"
                                                    : "bad-nonce";
    json_t *f = json_object();
    json_object_set_new(f, "user", json_stringn(id.s, id.len));
    json_object_set_new(f, "realm", json_string(g->cfg.domain));
    json_object_set_new(f, "remote", json_string(rx->src_text));
    json_object_set_new(f, "transport", json_string(sip_transport_param(rx->proto)));
    json_object_set_new(f, "reason", json_string(reason));
    json_object_set_new(f, "count", json_integer(info->throttle.count));
    gb_publish(g, "auth.failed", f);
}

static int check_auth(struct gb_upper *g, struct gb_device *d, str_t id, struct txn *st,
                      const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    const struct sip_header *az = sip_msg_header(m, SIP_HDR_AUTHORIZATION);
    if (!az) {
        challenge(g, st, false);
        return 0;
    }
    struct auth_credentials cr;
    if (auth_parse_credentials(az->value, &cr) != 0) {
        log_warn("gb REGISTER from %.*s at %s: bad Authorization (%s)", STR_FMT(id), rx->src_text,
                 cr.error ? cr.error : "?");
        challenge(g, st, false);
        return 0;
    }
    if (!str_eq(cr.username, id)) {
        log_warn("gb REGISTER from %.*s at %s: credentials of another user, 403", STR_FMT(id), rx->src_text);
        reply(g, st, 403, "Forbidden", NULL, 0);
        return 0;
    }
    if (!str_eq_cstr(cr.realm, g->cfg.domain)) {
        log_warn("gb REGISTER from %.*s at %s: realm %.*s is not ours", STR_FMT(id), rx->src_text,
                 STR_FMT(cr.realm));
        challenge(g, st, false);
        return 0;
    }
    /* RFC 2617 §3.2.2.5 wants the digest-uri to name the Request-URI; GB
     * devices put sip:<upper id>@<domain>, sip:<upper ip:port> or the R-URI
     * there, so any SIP URI is taken (the answer covers it, and a REGISTER
     * here is always for us). */
    struct sip_uri du;
    if (sip_uri_parse(cr.uri, &du) != 0) {
        log_warn("gb REGISTER from %.*s at %s: digest uri is not a SIP URI", STR_FMT(id), rx->src_text);
        challenge(g, st, false);
        return 0;
    }
    if (!sip_uri_equal(&du, &m->ruri))
        log_debug("gb REGISTER from %.*s: digest uri %.*s differs from the Request-URI", STR_FMT(id), STR_FMT(cr.uri));
    const char *pw = d && d->password ? d->password : g->cfg.password;
    char ha1[65];
    if (auth_ha1(AUTH_ALG_MD5, id, cr.realm, str_from_cstr(pw), ha1) != 0) {
        reply(g, st, 500, NULL, NULL, 0);
        return 0;
    }
    struct auth_verify_info info;
    enum auth_result res =
        auth_verify_from(g->auth, &cr, STR_LIT("REGISTER"), str_from_cstr(ha1), (const struct sockaddr *)&rx->src,
                         (uint64_t)(clock_wall_ms() / 1000), &info);
    if (info.throttle.report && res != AUTH_OK) auth_failed_event(g, id, rx, res, &info);
    if (res == AUTH_LOCKED) {
        /* Too many failures from this source or for this device: refused
         * before any digest work, statelessly, until the lockout ends. */
        char ra[32];
        snprintf(ra, sizeof(ra), "Retry-After: %u", info.throttle.retry_after ? info.throttle.retry_after : 1);
        str_t line = str_from_cstr(ra);
        log_warn_rl("gb REGISTER from %.*s at %s: 403, too many failed attempts (%u s left)", STR_FMT(id),
                    rx->src_text, info.throttle.retry_after);
        reply_as(g, st, 403, "Too Many Failed Attempts", &line, 1, true);
        return 0;
    }
    if (res == AUTH_OK && d && nonce_replayed(d, nonce_hash(cr.nonce), rx)) {
        g->stats.nonce_replays++;
        gb_log_refusal(g, "gb REGISTER from %.*s at %s refused: nonce of its last registration re-used from another address",
                       STR_FMT(id), rx->src_text);
        challenge(g, st, false);
        return 0;
    }
    if (res == AUTH_OK) {
        g->auth_nonce = nonce_hash(cr.nonce);
        return 1;
    }
    if (res == AUTH_STALE) {
        challenge(g, st, true);
        return 0;
    }
    log_warn("gb REGISTER from %.*s at %s refused: %s", STR_FMT(id), rx->src_text, auth_result_name(res));
    challenge(g, st, false);
    return 0;
}

static int register_expires(const struct sip_msg *m)
{
    int64_t e = m->expires;
    struct sip_list_iter it;
    str_t item;
    struct sip_name_addr na;
    sip_list_iter_init(&it, m, SIP_HDR_CONTACT);
    if (sip_list_iter_next(&it, &item) && sip_name_addr_parse(item, &na) == 0) {
        str_t v;
        uint64_t x;
        if (sip_param_get(na.params, "expires", &v) && str_to_u64(v, 1u << 31, &x) == 0) e = (int64_t)x;
    }
    if (e < 0) e = GB_DEFAULT_EXPIRES;
    if (e > GB_MAX_EXPIRES) e = GB_MAX_EXPIRES;
    return (int)e;
}

static str_t first_contact_uri(const struct sip_msg *m)
{
    struct sip_list_iter it;
    str_t item;
    struct sip_name_addr na;
    sip_list_iter_init(&it, m, SIP_HDR_CONTACT);
    if (sip_list_iter_next(&it, &item) && sip_name_addr_parse(item, &na) == 0 && !na.star) return na.uri_raw;
    return STR_NULL;
}

static void local_host_of(const struct transport_rx *rx, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    buf[0] = '\0';
    if (rx->local.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&rx->local;
        if (a->sin_addr.s_addr && inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip))) snprintf(buf, cap, "%s", ip);
    } else if (rx->local.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&rx->local;
        static const struct in6_addr any = IN6ADDR_ANY_INIT;
        if (memcmp(&a->sin6_addr, &any, sizeof(any)) && inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip)))
            snprintf(buf, cap, "[%s]", ip);
    }
}

static bool our_domain(const struct gb_upper *g, str_t id)
{
    return id.len == GB_ID_LEN && !memcmp(id.s, g->cfg.domain, GB_DOMAIN_LEN);
}

static void set_str(char **dst, str_t v)
{
    if (*dst && str_eq_cstr(v, *dst)) return;
    free(*dst);
    *dst = v.len ? str_dup(v) : NULL;
}

static int on_register(struct gb_upper *g, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    const struct gb_config *cfg = &g->cfg;
    str_t id = m->from.uri.user;
    struct gb_device *d = gb_device_find_str(g, id);
    bool for_us = str_eq_cstr(m->ruri.user, cfg->id);
    if (!d && !for_us && !(gb_id_valid(id) && our_domain(g, id))) return 0;
    g->stats.registers++;
    if (!gb_id_valid(id)) {
        log_warn("gb REGISTER from %s: From user \"%.*s\" is not a GB id, 403", rx->src_text,
                 (int)(id.len > 40 ? 40 : id.len), id.s ? id.s : "");
        reply(g, st, 403, "Forbidden", NULL, 0);
        return 1;
    }
    if ((!d && !cfg->allow_unknown) || (d && !d->allow)) {
        log_warn("gb REGISTER from %.*s at %s: not an allowed device, 403", STR_FMT(id), rx->src_text);
        reply(g, st, 403, "Forbidden", NULL, 0);
        return 1;
    }
    g->auth_nonce = 0;
    /* Overload: a device not online is a new registration; refused before
     * digest and store work (refreshes and unregistrations go on). */
    if (!(d && d->online) && register_expires(m) != 0 && txn_admission_refuse(&g->admission, st)) return 1;
    if ((!d || d->auth_enabled) && !check_auth(g, d, id, st, rx)) return 1;

    int expires = register_expires(m);
    char dl[64];
    date_line(dl, sizeof(dl));
    if (expires == 0) {
        str_t lines[] = {str_from_cstr(dl), STR_LIT("Expires: 0")};
        reply(g, st, 200, "OK", lines, 2);
        if (d && d->online) device_offline(g, d, "unregister");
        return 1;
    }
    if (!d && !(d = device_new(g, id))) {
        reply(g, st, 500, NULL, NULL, 0);
        return 1;
    }
    /* The flow the device is reached over (RFC 3261 §18.2.2 / RFC 5626 style). */
    if (hnode_linked(&d->by_conn) && (!sip_transport_is_stream(rx->proto) || rx->conn_id != d->conn_id)) conn_remove(g, d);
    d->proto = rx->proto;
    memset(&d->addr, 0, sizeof(d->addr));
    memcpy(&d->addr, &rx->src, rx->src.ss_family == AF_INET6 ? sizeof(d->addr.in6) : sizeof(d->addr.in));
    d->conn_id = rx->conn_id;
    d->listener_id = rx->listener_id;
    set_str(&d->contact, first_contact_uri(m));
    d->last_nonce = g->auth_nonce;
    char host[INET6_ADDRSTRLEN + 2];
    local_host_of(rx, host, sizeof(host));
    if (!d->local_host || strcmp(d->local_host, host) != 0) {
        /* Interned: every device reaching the same address shares it. */
        gb_str_release(d->local_host);
        d->local_host = host[0] ? gb_str_intern(g->strings, host) : NULL;
    }
    if (sip_transport_is_stream(d->proto)) conn_add(g, d);

    int64_t wall = clock_wall_ms();
    uint64_t now = gb_now(g);
    d->expires_s = expires;
    d->expires_at = wall + (int64_t)expires * 1000;
    d->expires_mono = now + (uint64_t)expires * 1000u;
    char exp_line[32];
    snprintf(exp_line, sizeof(exp_line), "Expires: %d", expires);
    str_t lines[] = {str_from_cstr(dl), str_from_cstr(exp_line)};
    reply(g, st, 200, "OK", lines, 2);

    bool was_online = d->online;
    if (!was_online) {
        d->online = true;
        g->online++;
        d->registered_at = wall;
        d->last_keepalive = wall; /* the keepalive window starts at registration */
        d->keepalive_deadline = now + keepalive_window_ms(g);
    }
    device_arm(g, d);
    gb_device_persist(g, d);
    gb_mirror_online(g, d);
    gb_mirror_channels(g, d);
    if (!was_online) {
        char remote[TRANSPORT_ADDR_TEXT];
        gb_device_remote_text(d, remote, sizeof(remote));
        log_info("gb device %s online from %s %s (expires %d)", d->id, transport_name(d->proto), remote, expires);
        gb_publish(g, "gb.device.online",
                   json_pack("{s:s,s:s,s:s,s:s,s:i}", "device_id", d->id, "reason", "register", "remote", remote,
                             "transport", sip_transport_param(d->proto), "expires", expires));
        if (cfg->catalog_on_register) gb_catq_push(g, d);
        gb_subs_device_online(g, d);
    }
    return 1;
}

/* ---- MESSAGE ---- */

/* "Application/MANSCDP+xml[;charset=X]": charset copied into cs. */
static bool is_manscdp(str_t ct, char *cs, size_t cap)
{
    cs[0] = '\0';
    const char *semi = memchr(ct.s, ';', ct.len);
    str_t type = str_trim(str_make(ct.s, semi ? (size_t)(semi - ct.s) : ct.len));
    if (!str_ieq_cstr(type, MANSCDP_TYPE)) return false;
    if (semi) {
        str_t v;
        if (sip_param_get(str_make(semi + 1, ct.len - (size_t)(semi + 1 - ct.s)), "charset", &v)) str_copy(cs, cap, v);
    }
    return true;
}

static void on_keepalive(struct gb_upper *g, struct gb_device *d)
{
    int64_t wall = clock_wall_ms();
    d->last_keepalive = wall;
    d->keepalive_deadline = gb_now(g) + keepalive_window_ms(g);
    device_arm(g, d);
    g->stats.keepalives++;
    /* The store learns keepalives now and then, not each one (write load at scale). */
    if (wall - d->keepalive_stored_at >= GB_KEEPALIVE_PERSIST_MS) gb_device_persist(g, d);
    gb_mirror_keepalive(g, d); /* at most once per [redis] gb_keepalive_write_s */
}

static int on_message(struct gb_upper *g, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    char cs[32];
    if (!is_manscdp(m->content_type, cs, sizeof(cs))) return 0;
    str_t id = m->from.uri.user;
    struct gb_device *d = gb_device_find_str(g, id);
    if (!d) {
        if (!gb_id_valid(id) || !(str_eq_cstr(m->ruri.user, g->cfg.id) || our_domain(g, id))) return 0;
        gb_log_refusal(g, "gb MESSAGE from unknown device %.*s at %s: 403 (register first)", STR_FMT(id), rx->src_text);
        reply(g, st, 403, "Forbidden", NULL, 0);
        return 1;
    }
    if (d->online && !device_flow_is(d, rx)) {
        g->stats.foreign_messages++;
        char at[TRANSPORT_ADDR_TEXT];
        gb_device_remote_text(d, at, sizeof(at));
        gb_log_refusal(g, "gb MESSAGE in the name of %s from %s %s, not its registered %s %s: 403", d->id,
                       transport_name(rx->proto), rx->src_text, transport_name(d->proto), at);
        reply_as(g, st, 403, "Forbidden", NULL, 0, true);
        return 1;
    }
    g->stats.messages++;
    gb_manscdp_t body;
    int rc = gb_manscdp_parse(m->body.s, m->body.len, cs[0] ? cs : NULL, &body);
    if (rc != 0) {
        log_warn("gb MESSAGE from %s at %s: bad MANSCDP body (%s), 400", d->id, rx->src_text,
                 gb_manscdp_strerror(rc));
        reply(g, st, 400, gb_manscdp_strerror(rc), NULL, 0);
        gb_manscdp_free(&body);
        return 1;
    }
    if (!d->online) {
        /* Devices take a 403 to a keepalive as "register again" (§9.6). */
        log_info("gb %s %s from %s at %s while not registered: 403", gb_msg_kind_name(body.kind) ? gb_msg_kind_name(body.kind) : "?",
                 body.cmd_type ? body.cmd_type : "?", d->id, rx->src_text);
        reply(g, st, 403, "Forbidden", NULL, 0);
        gb_manscdp_free(&body);
        return 1;
    }
    bool keepalive = body.kind == GB_MSG_NOTIFY && body.cmd == GB_CMD_KEEPALIVE;
    if (keepalive && body.device_id && strcmp(body.device_id, d->id) != 0) {
        /* §9.6.1: a device keeps itself alive; no keepalive on behalf of another. */
        char named[32];
        gb_log_refusal(g, "gb keepalive from %s at %s names DeviceID \"%s\": 400", d->id, rx->src_text,
                       gb_log_text(body.device_id, named, sizeof(named)));
        reply(g, st, 400, "DeviceID Mismatch", NULL, 0);
        gb_manscdp_free(&body);
        return 1;
    }
    /* Keepalives are most of a large platform's traffic (100 000 devices at
     * 60 s: 1 667/s): their 200s keep no Timer J record. A retransmitted
     * keepalive is simply taken again. */
    reply_as(g, st, 200, "OK", NULL, 0, keepalive);
    if (keepalive) on_keepalive(g, d);
    else if (body.kind == GB_MSG_RESPONSE) gb_query_on_response(g, d, &body);
    else if (body.kind == GB_MSG_NOTIFY && body.cmd == GB_CMD_CATALOG) gb_catalog_on_notify(g, d, &body);
    else if (body.kind == GB_MSG_NOTIFY && body.cmd == GB_CMD_ALARM) gb_alarm_on_notify(g, d, &body);
    else if (body.kind == GB_MSG_NOTIFY && body.cmd == GB_CMD_MOBILE_POSITION) gb_position_on_notify(g, d, &body);
    else if (body.kind == GB_MSG_NOTIFY && body.cmd_type && !strcmp(body.cmd_type, "MediaStatus"))
        gb_streams_media_end(g, d->id, body.device_id); /* §A.2.5.9: NotifyType 121, the file ended */
    else
        log_debug("gb %s %s from %s ignored", gb_msg_kind_name(body.kind) ? gb_msg_kind_name(body.kind) : "?",
                  body.cmd_type ? body.cmd_type : "?", d->id);
    gb_manscdp_free(&body);
    return 1;
}

/* ---- module interface ---- */

static bool all_digits(const char *s, size_t n)
{
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

struct gb_upper *gb_upper_new(const struct gb_config *cfg, const struct auth_server_config *auth,
                              const struct sip_local *local, const char *store_path, const struct gb_upper_deps *deps)
{
    if (!all_digits(cfg->id, GB_ID_LEN) || !all_digits(cfg->domain, GB_DOMAIN_LEN)) {
        log_error("[gb] id must be 20 digits and domain 10 digits (got \"%s\", \"%s\")", cfg->id, cfg->domain);
        return NULL;
    }
    if (cfg->media_port_min == 0 || cfg->media_port_max < cfg->media_port_min) {
        log_error("[gb] media_ports is empty");
        return NULL;
    }
    struct gb_upper *g = calloc(1, sizeof(*g));
    if (!g) return NULL;
    g->cfg = *cfg;
    g->local = *local;
    htable_init(&g->devices);
    g->devices.min_buckets = 1024; /* a platform has devices: skip the first doublings */
    htable_init(&g->by_conn);
    htable_init(&g->streams_by_sid);
    snprintf(g->store_path, sizeof(g->store_path), "%s", store_path ? store_path : "");
    g->loop = deps->loop;
    g->timers = deps->timers;
    g->ua = deps->ua;
    g->store = deps->store;
    g->events = deps->events;
    if (deps->admission) g->admission = *deps->admission;
    g->devmirror = deps->devmirror;
    g->cluster = deps->devmirror ? deps->cluster : NULL; /* play across nodes reads the devices' records */
    g->forward_timeout_ms = deps->forward_timeout_ms ? deps->forward_timeout_ms : 15000;
    g->forward_max = deps->forward_max_pending ? deps->forward_max_pending : 64;
    g->forward_tls = deps->forward_tls;
    snprintf(g->forward_tls_name, sizeof(g->forward_tls_name), "%s",
             deps->forward_tls_name ? deps->forward_tls_name : "");
    if (deps->forward_authorization && *deps->forward_authorization &&
        !(g->forward_auth = strdup(deps->forward_authorization))) {
        gb_upper_free(g);
        return NULL;
    }
    g->txn = deps->txn;
    if (gb_charset_from_name(cfg->charset, &g->charset) != 0) {
        log_warn("[gb] charset \"%s\" unknown, using GB2312", cfg->charset);
        g->charset = GB_CHARSET_GB2312;
    }
    snprintf(g->media_ip, sizeof(g->media_ip), "%s", cfg->media_ip[0] ? cfg->media_ip : local->host);
    /* Devices speak MD5 only (GB/T 28181 §9.1.2), whatever [auth] offers SIP UAs. */
    struct auth_server_config ac = *auth;
    ac.algorithms = AUTH_OFFER(AUTH_ALG_MD5);
    g->auth = auth_server_new(&ac);
    g->strings = gb_strpool_new();
    if (!g->auth || !g->strings || gb_ssrc_alloc_init(&g->ssrc, str_from_cstr(cfg->domain)) != 0) {
        gb_upper_free(g);
        return NULL;
    }
    g->next_sn = 1;
    g->sub_mask = gb_subs_parse_mask(cfg->subscribe);
    g->next_port = cfg->media_port_min;
    log_info("gb upper role: id %s domain %s, keepalive %d s x %d, media %s:%u-%u", cfg->id, cfg->domain,
             cfg->keepalive_interval, cfg->keepalive_misses, g->media_ip, cfg->media_port_min,
             cfg->media_port_max);
    return g;
}

int gb_upper_on_request(struct gb_upper *g, struct txn *st, const struct transport_rx *rx)
{
    if (!g || g->stopping || !rx->msg) return 0;
    switch (rx->msg->method) {
    case SIP_REGISTER: return on_register(g, st, rx);
    case SIP_INVITE:
    case SIP_CANCEL: return g->cluster && !rx->msg->to.tag.len ? gb_peer_on_request(g, st, rx) : 0;
    case SIP_MESSAGE:
        if (rx->msg->to.tag.len) return 0;
        /* A peer's DeviceControl for our device names it in a Request-URI
         * parameter (play_nodes.c); a device's MESSAGE has none. */
        if (g->cluster && rx->msg->ruri.params.len && gb_peer_on_request(g, st, rx)) return 1;
        return on_message(g, st, rx);
    case SIP_NOTIFY: return rx->msg->to.tag.len ? gb_subs_on_notify(g, st, rx) : 0;
    default: return 0;
    }
}

void gb_upper_on_conn_lost(struct gb_upper *g, uint64_t conn_id)
{
    if (!g || !conn_id) return;
    for (struct hnode *n = htable_first(&g->by_conn, htable_hash_u64(conn_id)), *next; n; n = next) {
        next = htable_next(n); /* device_offline takes d off this table */
        struct gb_device *d = container_of(n, struct gb_device, by_conn);
        if (d->conn_id == conn_id) device_offline(g, d, "transport-lost");
    }
}

/* ---- admin records ---- */

static void admin_changed(struct gb_upper *g, const char *id, bool deleted)
{
    if (g->admin_obs) g->admin_obs(g->admin_obs_arg, id, deleted);
}

void gb_upper_set_admin_observer(struct gb_upper *g, void (*cb)(void *arg, const char *id, bool deleted), void *arg)
{
    g->admin_obs = cb;
    g->admin_obs_arg = arg;
}

int gb_device_admin_set(struct gb_upper *g, const char *id, const char *password, const char *charset, int auth)
{
    str_t sid = str_from_cstr(id);
    if (!gb_id_valid(sid)) return -EINVAL;
    gb_charset_t cs = g->charset;
    if (charset && *charset && gb_charset_from_name(charset, &cs) != 0) return -EINVAL;
    if (password && (strlen(password) > GB_ADMIN_PASSWORD_MAX || strpbrk(password, "\r\n"))) return -EINVAL;
    struct gb_device *d = gb_device_find_str(g, sid);
    if (!d && !(d = device_new(g, sid))) return -ENOMEM;
    if (password) {
        free(d->password);
        d->password = *password ? strdup(password) : NULL;
    }
    if (charset && *charset) d->charset = cs;
    if (auth >= 0) d->auth_enabled = auth != 0;
    d->allow = true;
    gb_device_persist(g, d);
    admin_changed(g, d->id, false);
    return 0;
}

int gb_device_admin_subscribe(struct gb_upper *g, const char *id, int mask)
{
    if (mask < -1 || mask >= (1 << GB_SUB_KINDS)) return -EINVAL;
    struct gb_device *d = gb_device_find(g, id);
    if (!d) return -ENOENT;
    if (d->sub_own == mask) return 0;
    d->sub_own = (int8_t)mask;
    gb_device_persist(g, d);
    gb_subs_device_apply(g, d);
    admin_changed(g, d->id, false);
    return 0;
}

/* The device gone from this node (the API, or a delete on another node). */
static void admin_remove(struct gb_upper *g, struct gb_device *d)
{
    device_offline(g, d, "unregister");
    if (g->store) store_submit(g->store, store_op_gb_device_delete(d->id), NULL, NULL);
    device_unlink(g, d);
    device_free(g, d);
}

int gb_device_admin_delete(struct gb_upper *g, const char *id)
{
    struct gb_device *d = gb_device_find(g, id);
    if (!d) return -ENOENT;
    char copy[sizeof(d->id)];
    snprintf(copy, sizeof(copy), "%s", d->id);
    admin_remove(g, d);
    admin_changed(g, copy, true);
    return 0;
}

int gb_device_admin_get(struct gb_upper *g, const char *id, struct gb_admin_record *out)
{
    struct gb_device *d = gb_device_find(g, id);
    if (!d) return -ENOENT;
    memset(out, 0, sizeof(*out));
    snprintf(out->password, sizeof(out->password), "%s", d->password ? d->password : "");
    out->charset = d->charset;
    out->auth = d->auth_enabled;
    out->allow = d->allow;
    out->subscribe = d->sub_own;
    return 0;
}

enum gb_admin_apply gb_device_admin_apply(struct gb_upper *g, const char *id, const struct gb_admin_record *r)
{
    str_t sid = str_from_cstr(id);
    struct gb_device *d = gb_device_find_str(g, sid);
    if (!r) {
        if (!d) return GB_ADMIN_UNCHANGED;
        admin_remove(g, d);
        return GB_ADMIN_REMOVED;
    }
    if (!gb_id_valid(sid) || r->subscribe < -1 || r->subscribe >= (1 << GB_SUB_KINDS)) return GB_ADMIN_REJECTED;
    bool added = !d;
    if (!d && !(d = device_new(g, sid))) return GB_ADMIN_REJECTED;
    const char *pw = d->password ? d->password : "";
    bool same = !added && !strcmp(pw, r->password) && d->charset == r->charset && d->auth_enabled == r->auth &&
                d->allow == r->allow && d->sub_own == r->subscribe;
    if (same) return GB_ADMIN_UNCHANGED;
    if (strcmp(pw, r->password)) {
        free(d->password);
        d->password = r->password[0] ? strdup(r->password) : NULL;
    }
    d->charset = r->charset;
    d->auth_enabled = r->auth;
    d->allow = r->allow;
    bool subs = d->sub_own != r->subscribe;
    d->sub_own = (int8_t)r->subscribe;
    gb_device_persist(g, d);
    if (subs) gb_subs_device_apply(g, d); /* online here: SUBSCRIBEs follow the new list at once */
    if (!d->allow && d->online) device_offline(g, d, "unregister");
    return added ? GB_ADMIN_ADDED : GB_ADMIN_CHANGED;
}

struct admin_walk {
    int (*cb)(void *arg, const char *id);
    void *arg;
};

static int admin_visit(struct hnode *n, void *arg)
{
    struct admin_walk *w = arg;
    return w->cb(w->arg, container_of(n, struct gb_device, by_id)->id);
}

int gb_device_admin_foreach(struct gb_upper *g, int (*cb)(void *arg, const char *id), void *arg)
{
    struct admin_walk w = {cb, arg};
    return htable_foreach(&g->devices, admin_visit, &w);
}

/* ---- restoring ---- */

static int parse_remote(const char *text, union gb_addr *out)
{
    const char *colon = strrchr(text, ':');
    if (!colon) return -1;
    uint64_t port;
    if (str_to_u64(str_from_cstr(colon + 1), 65535, &port) != 0) return -1;
    struct sockaddr_storage ss;
    if (transport_addr_parse(text, (size_t)(colon - text), (uint16_t)port, &ss) != 0) return -1;
    memset(out, 0, sizeof(*out));
    memcpy(out, &ss, ss.ss_family == AF_INET6 ? sizeof(out->in6) : sizeof(out->in));
    return 0;
}

static int load_device(void *arg, const struct store_gb_device *row)
{
    struct gb_upper *g = arg;
    str_t id = str_from_cstr(row->id);
    struct gb_device *d = gb_device_find_str(g, id);
    if (!d && !(d = device_new(g, id))) {
        log_warn("gb: stored device \"%s\" skipped (bad id or no memory)", row->id);
        return 0;
    }
    d->in_store = true;
    free(d->password);
    d->password = row->password[0] ? strdup(row->password) : NULL;
    gb_charset_t cs;
    if (gb_charset_from_name(row->charset, &cs) == 0) d->charset = cs;
    d->auth_enabled = row->auth_enabled;
    d->allow = row->allow;
    d->sub_own = (int8_t)gb_subs_own_from_text(row->subscribe);
    int proto = sip_transport_from_name(str_from_cstr(row->transport));
    d->proto = proto < 0 ? SIP_TRANSPORT_UDP : (enum sip_transport)proto;
    if (row->remote[0] && parse_remote(row->remote, &d->addr) != 0) memset(&d->addr, 0, sizeof(d->addr));
    d->registered_at = row->registered_at;
    d->last_keepalive = d->keepalive_stored_at = row->last_keepalive;
    d->expires_at = row->expires_at;
    json_error_t je;
    if (row->info_json[0]) d->info = json_loads(row->info_json, 0, &je);
    if (row->status_json[0]) d->status = json_loads(row->status_json, 0, &je);
    if (!row->online) return 0;
    int64_t wall = clock_wall_ms();
    const char *lost = NULL;
    if (row->expires_at <= wall) lost = "expired";
    else if (sip_transport_is_stream(d->proto)) lost = "transport-lost"; /* the connection did not survive us */
    else if (!d->addr.sa.sa_family) lost = "expired";
    if (lost) {
        d->online = true; /* so that device_offline reports and persists the change */
        g->online++;
        device_offline(g, d, lost);
        return 0;
    }
    uint64_t now = gb_now(g);
    d->online = true;
    g->online++;
    d->expires_mono = now + (uint64_t)(row->expires_at - wall);
    d->keepalive_deadline = now + keepalive_window_ms(g);
    device_arm(g, d);
    gb_subs_device_restored(g, d);
    gb_mirror_online(g, d); /* this node holds it again */
    gb_mirror_channels(g, d);
    return 0;
}

struct load_ch {
    struct gb_upper *g;
    struct gb_device *d;
    size_t cap;
};

static const char *or_null(const char *s) { return s && *s ? s : NULL; }

static int load_channel(void *arg, const struct store_gb_channel *row)
{
    struct load_ch *lc = arg;
    if (!lc->d || strcmp(lc->d->id, row->device_id) != 0) {
        lc->d = gb_device_find(lc->g, row->device_id);
        lc->cap = lc->d ? lc->d->channel_count : 0;
    }
    struct gb_device *d = lc->d;
    if (!d || d->channel_count >= GB_MAX_CHANNELS) return 0;
    if (d->channel_count == lc->cap) {
        size_t ncap = lc->cap ? lc->cap * 2 : 16;
        struct gb_channel *nc = realloc(d->channels, ncap * sizeof(*nc));
        if (!nc) return -ENOMEM;
        d->channels = nc;
        lc->cap = ncap;
    }
    const char *bg = NULL;
    json_t *x = NULL;
    if (row->extra_json && *row->extra_json) {
        json_error_t je;
        x = json_loads(row->extra_json, 0, &je);
        bg = x ? json_string_value(json_object_get(x, "business_group_id")) : NULL;
    }
    struct gb_channel_src src = {
        .id = row->id,
        .name = or_null(row->name),
        .parent_id = or_null(row->parent_id),
        .manufacturer = or_null(row->manufacturer),
        .model = or_null(row->model),
        .civil_code = or_null(row->civil_code),
        .address = or_null(row->address),
        .business_group_id = or_null(bg),
        .extra_json = or_null(row->extra_json),
        .status = row->status,
    };
    int rc = gb_channel_init(lc->g, &d->channels[d->channel_count], &src);
    json_decref(x);
    if (rc != 0) return -ENOMEM;
    d->channel_count++;
    return 0;
}

/* The load grew each channel array by doubling: keep exactly the channels. */
static void trim_channels(struct gb_device *d, void *arg)
{
    (void)arg;
    if (!d->channel_count) {
        free(d->channels);
        d->channels = NULL;
        return;
    }
    struct gb_channel *fit = realloc(d->channels, d->channel_count * sizeof(*fit));
    if (fit) d->channels = fit;
}

int gb_upper_load(struct gb_upper *g)
{
    if (!g->store) return 0;
    int rc = store_load_gb_devices(g->store, load_device, g);
    if (rc < 0) {
        log_error("gb: cannot load devices (%d)", rc);
        return -1;
    }
    struct load_ch lc = {.g = g};
    rc = store_load_gb_channels(g->store, NULL, load_channel, &lc);
    if (rc < 0) {
        log_error("gb: cannot load channels (%d)", rc);
        return -1;
    }
    gb_device_foreach(g, trim_channels, NULL);
    if (gb_subs_load(g) < 0) {
        log_error("gb: cannot load the subscriptions to devices");
        return -1;
    }
    log_info("gb: %u devices restored, %u online", htable_count(&g->devices), g->online);
    return 0;
}

/* ---- reload ---- */

struct reload_ctx {
    struct gb_upper *g;
    struct gb_devices_reload r;
};

static void reload_unmark(struct gb_device *d, void *arg)
{
    (void)arg;
    d->reload_seen = false;
}

static bool same_text(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

static int reload_device_row(void *arg, const struct store_gb_device *row)
{
    struct reload_ctx *c = arg;
    str_t id = str_from_cstr(row->id);
    struct gb_device *d = gb_device_find_str(c->g, id);
    bool added = false;
    if (!d) {
        if (!(d = device_new(c->g, id))) {
            log_warn("gb: stored device \"%.32s\" skipped (bad id or no memory)", row->id);
            return 0;
        }
        added = true;
    }
    c->r.rows++;
    d->reload_seen = true;
    d->in_store = true;
    gb_charset_t cs = d->charset;
    if (gb_charset_from_name(row->charset, &cs) != 0) cs = d->charset;
    int own = gb_subs_own_from_text(row->subscribe);
    bool changed = !same_text(d->password, row->password) || cs != d->charset ||
                   d->auth_enabled != row->auth_enabled || d->allow != row->allow || own != d->sub_own;
    if (own != d->sub_own) {
        d->sub_own = (int8_t)own;
        gb_subs_device_apply(c->g, d);
    }
    if (changed) {
        free(d->password);
        d->password = row->password[0] ? strdup(row->password) : NULL;
        d->charset = cs;
        d->auth_enabled = row->auth_enabled;
        d->allow = row->allow;
    }
    if (added) c->r.added++;
    else if (changed) c->r.changed++;
    return 0;
}

struct reload_gone {
    struct gb_device **v;
    size_t n, cap;
};

static void reload_collect_gone(struct gb_device *d, void *arg)
{
    struct reload_gone *gone = arg;
    if (d->reload_seen || !d->in_store || gone->n == gone->cap) return;
    gone->v[gone->n++] = d;
}

int gb_upper_reload_devices(struct gb_upper *g, struct gb_devices_reload *out)
{
    struct reload_ctx c = {.g = g};
    if (!g->store) {
        if (out) *out = c.r;
        return 0;
    }
    gb_device_foreach(g, reload_unmark, NULL);
    int rc = store_load_gb_devices(g->store, reload_device_row, &c);
    if (rc < 0) {
        log_error("gb: devices not re-read (%d)", rc);
        return rc;
    }
    /* Rows gone: collected first, as dropping changes the table being walked. */
    size_t n = htable_count(&g->devices);
    struct reload_gone gone = {.v = calloc(n ? n : 1, sizeof(*gone.v)), .cap = n};
    if (!gone.v) return -ENOMEM;
    gb_device_foreach(g, reload_collect_gone, &gone);
    for (size_t i = 0; i < gone.n; i++) {
        struct gb_device *d = gone.v[i];
        log_info("gb: device %s is no longer in the store: dropped", d->id);
        device_offline(g, d, "removed"); /* persists the change: the delete below follows it */
        store_submit(g->store, store_op_gb_device_delete(d->id), NULL, NULL);
        device_unlink(g, d);
        device_free(g, d);
        c.r.removed++;
    }
    free(gone.v);
    log_info("gb: devices re-read: %d stored, %d added, %d changed, %d dropped", c.r.rows, c.r.added, c.r.changed,
             c.r.removed);
    if (out) *out = c.r;
    return 0;
}

/* ---- stop / free ---- */

static void fail_device_queries(struct gb_device *d, void *arg)
{
    (void)arg;
    gb_queries_fail(d->g, d, 503, "shutting-down", "the daemon is stopping");
    gb_subs_device_offline(d->g, d); /* SUBSCRIBEs in flight forgotten while the UA lives */
}

void gb_upper_stop(struct gb_upper *g)
{
    if (!g || g->stopping) return;
    g->stopping = true;
    gb_nodes_stop(g);
    gb_streams_stop_all(g, "shutdown");
    gb_device_foreach(g, fail_device_queries, NULL);
}

static void free_device(struct gb_device *d, void *arg)
{
    (void)arg;
    device_free(d->g, d);
}

void gb_upper_free(struct gb_upper *g)
{
    if (!g) return;
    g->stopping = true; /* what goes now is not forgotten in the store (gb_subs rows stay) */
    gb_nodes_stop(g);   /* nothing when gb_upper_stop ran */
    gb_streams_stop_all(g, "shutdown");
    gb_live_hls_free_ended(g);
    gb_device_foreach(g, free_device, NULL);
    gb_catq_free(g);
    gb_alarms_free(g);
    htable_free(&g->devices);
    htable_free(&g->by_conn);
    htable_free(&g->streams_by_sid);
    if (g->auth) auth_server_free(g->auth);
    gb_strpool_free(g->strings); /* after the devices: they hold its strings */
    free(g->forward_auth);
    free(g);
}

void gb_upper_get_stats(const struct gb_upper *g, struct gb_upper_stats *out)
{
    *out = g->stats;
    out->devices = htable_count(&g->devices);
    out->online = g->online;
    out->streams = g->stream_count;
    out->pending_queries = g->pending_queries;
    out->catalog_queued = g->catq.count;
    out->catalog_in_flight = g->catq.in_flight;
    out->catalog_started = g->catq.started;
    out->catalog_paused = g->catq.paused;
    out->node_queries_pending = g->forward_count;
}
