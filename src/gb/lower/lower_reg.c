/* lower_reg.c — registration and keepalive towards one upper platform
 * (GB/T 28181 §9.1 register, §9.6 keepalive; RFC 3261 §10.2 for REGISTER).
 *
 * States: IDLE -> REGISTERING -> REGISTERED, FAILED between attempts,
 * STOPPED when disabled or after shutdown. The rules the classic lower
 * services broke and this one keeps:
 *  - one REGISTER in flight per upper (up->reg); the UA answers the 401 with
 *    the credentials once, so a wrong password is one 401 + one retry, then
 *    a wait of 2 s, 4 s, 8 s ... (jittered, capped at 120 s) before the next;
 *  - one Call-ID and From tag for the binding's life, CSeq growing
 *    (RFC 3261 §10.2.4), refresh at 2/3 of the Expires the upper granted;
 *  - keepalives only while REGISTERED; a keepalive with no 200 by the time
 *    the next is due, or answered non-2xx, is a miss; keepalive_misses misses
 *    in a row and the registration is taken as lost and made again; a 403/404
 *    to a keepalive says the upper does not know us: register at once. */
#include "gb/lower/lower_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "txn/txn.h"

const char *gb_up_state_name(enum gb_up_state s)
{
    switch (s) {
    case GB_UP_IDLE: return "idle";
    case GB_UP_REGISTERING: return "registering";
    case GB_UP_REGISTERED: return "registered";
    case GB_UP_FAILED: return "failed";
    case GB_UP_STOPPED: return "stopped";
    }
    return "?";
}

static void send_register(struct gb_upstream *up, int expires);
static void apply_next(struct gb_upstream *up);

int gb_up_check(const struct config_upstream *u, char *err, size_t errcap)
{
    struct transport_dest d;
    if (!gb_id_valid(str_from_cstr(u->id))) {
        snprintf(err, errcap, "[upstream:%s]: not a 20-digit GB id", u->id);
        return -1;
    }
    if (ua_dest_from_host(u->host, u->port, (enum sip_transport)u->transport, 0, &d) != 0) {
        snprintf(err, errcap, "[upstream:%s] host '%s' is not a numeric address", u->id, u->host);
        return -1;
    }
    return 0;
}

void gb_up_init(struct gb_lower *l, struct gb_upstream *up)
{
    up->l = l;
    timer_node_init(&up->reg_timer);
    timer_node_init(&up->ka_timer);
    up->state = GB_UP_IDLE;
    char err[160];
    if (gb_up_check(&up->cfg, err, sizeof(err)) != 0) {
        log_error("gb lower: %s", err);
        up->state = GB_UP_STOPPED;
        return;
    }
    if (gb_charset_from_name(up->cfg.charset, &up->charset) != 0) {
        log_warn("gb lower: [upstream:%s] charset '%s' unknown, using GB2312", up->cfg.id, up->cfg.charset);
        up->charset = GB_CHARSET_GB2312;
    }
    enum sip_transport proto = (enum sip_transport)up->cfg.transport; /* numbered alike (base/config.h) */
    ua_dest_from_host(up->cfg.host, up->cfg.port, proto, 0, &up->dest); /* checked above */
    snprintf(up->dest.server_name, sizeof(up->dest.server_name), "%s", up->cfg.tls_name);
    char dom[GB_DOMAIN_LEN + 1];
    gb_id_domain(str_from_cstr(up->cfg.id), dom);
    snprintf(up->ruri, sizeof(up->ruri), "sip:%s@%s", up->cfg.id, up->cfg.domain[0] ? up->cfg.domain : dom);
    if (up->cfg.keepalive_interval < 1) up->cfg.keepalive_interval = 60;
    if (up->cfg.keepalive_misses < 1) up->cfg.keepalive_misses = 3;
    if (up->cfg.expires < 1) up->cfg.expires = 3600;
    if (up->cfg.catalog_items < 1) up->cfg.catalog_items = 4;
    ua_new_call_id(l->ua, up->call_id);
    ua_new_tag(l->ua, up->from_tag);
    if (!up->cfg.enabled) {
        up->state = GB_UP_STOPPED;
        snprintf(up->last_error, sizeof(up->last_error), "disabled");
    }
}

static json_t *up_event(const struct gb_upstream *up)
{
    return json_pack("{s:s,s:s,s:s}", "upstream", up->cfg.id, "host", up->cfg.host, "transport",
                     sip_transport_param(up->dest.proto));
}

static void stop_keepalive(struct gb_upstream *up)
{
    timer_stop(up->l->timers, &up->ka_timer);
    if (up->ka) ua_request_detach(up->ka);
    up->ka = NULL;
}

/* Equal jitter: half the exponential step fixed, half random, so that many
 * lower nodes refused at once do not come back in step. */
static uint64_t backoff_ms(struct gb_upstream *up)
{
    uint64_t base = GB_LOWER_RETRY_MIN_MS;
    for (int i = 1; i < up->failures && base < GB_LOWER_RETRY_MAX_MS; i++) base *= 2;
    if (base > GB_LOWER_RETRY_MAX_MS) base = GB_LOWER_RETRY_MAX_MS;
    return base / 2 + gb_lower_random(up->l) % (base / 2 + 1);
}

static void retry_timer_cb(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct gb_upstream *up = container_of(n, struct gb_upstream, reg_timer);
    if (up->l->stopping || up->state == GB_UP_STOPPED) return;
    if (up->state != GB_UP_REGISTERED) up->state = GB_UP_REGISTERING;
    send_register(up, up->cfg.expires);
}

static void register_failed(struct gb_upstream *up, int status, const struct sip_msg *resp)
{
    struct gb_lower *l = up->l;
    up->register_failures++;
    up->failures++;
    if (resp) snprintf(up->last_error, sizeof(up->last_error), "%d %.*s", status, STR_FMT(resp->reason));
    else if (status == 408) snprintf(up->last_error, sizeof(up->last_error), "408 no answer");
    else snprintf(up->last_error, sizeof(up->last_error), "%d transport error", status);
    bool was_registered = up->state == GB_UP_REGISTERED;
    stop_keepalive(up);
    up->state = GB_UP_FAILED;
    uint64_t delay = backoff_ms(up);
    up->next_retry_ms = gb_lower_now(l) + delay;
    log_warn("gb lower: REGISTER to upstream %s (%s:%u) failed: %s; retry %d in %llu ms", up->cfg.id, up->cfg.host,
             up->cfg.port, up->last_error, up->failures, (unsigned long long)delay);
    if (was_registered) {
        json_t *f = up_event(up);
        json_object_set_new(f, "reason", json_string("register-refused"));
        json_object_set_new(f, "error", json_string(up->last_error));
        gb_lower_publish(l, "gb.upstream.lost", f);
        gb_lstreams_stop(l, up, "upstream-lost");
        gb_relays_stop(l, up, "upstream-lost");
        gb_lower_jobs_drop(l, up);
    }
    if (up->failures == 1 || was_registered) {
        json_t *f = up_event(up);
        json_object_set_new(f, "error", json_string(up->last_error));
        gb_lower_publish(l, "gb.upstream.failed", f);
        gb_lower_upstream_persist(l, up);
    }
    gb_lower_arm(l, &up->reg_timer, up->next_retry_ms, retry_timer_cb);
}

static void keepalive_timer_cb(struct timer_node *n, uint64_t now);

/* Expires the upper granted: the Expires header, else our Contact's expires
 * parameter (RFC 3261 §10.2.4), else what we asked for. */
static int granted_expires(const struct gb_upstream *up, const struct sip_msg *resp)
{
    if (resp->expires >= 0) return resp->expires > 86400 ? 86400 : (int)resp->expires;
    const struct sip_header *h = sip_msg_header(resp, SIP_HDR_CONTACT);
    struct sip_name_addr na;
    str_t v;
    uint64_t e;
    if (h && sip_name_addr_parse(h->value, &na) == 0 && sip_param_get(na.params, "expires", &v) &&
        str_to_u64(v, 86400, &e) == 0)
        return (int)e;
    return up->cfg.expires;
}

static void refresh_timer_cb(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct gb_upstream *up = container_of(n, struct gb_upstream, reg_timer);
    if (up->l->stopping || up->state != GB_UP_REGISTERED) return;
    send_register(up, up->cfg.expires);
}

static void registered(struct gb_upstream *up, const struct sip_msg *resp)
{
    struct gb_lower *l = up->l;
    bool was = up->state == GB_UP_REGISTERED;
    up->granted = granted_expires(up, resp);
    if (up->granted <= 0) up->granted = up->cfg.expires;
    up->state = GB_UP_REGISTERED;
    up->failures = 0;
    up->last_error[0] = '\0';
    uint64_t now = gb_lower_now(l);
    if (!was) {
        up->registered_at = clock_wall_ms();
        up->misses = 0;
        const struct sip_header *date = sip_msg_header(resp, SIP_HDR_DATE);
        log_info("gb lower: registered to upstream %s (%s:%u %s), expires %d s%s%.*s", up->cfg.id, up->cfg.host,
                 up->cfg.port, sip_transport_param(up->dest.proto), up->granted,
                 date ? ", upper time " : "", date ? (int)date->value.len : 0, date ? date->value.s : "");
        json_t *f = up_event(up);
        json_object_set_new(f, "expires", json_integer(up->granted));
        gb_lower_publish(l, "gb.upstream.registered", f);
        gb_lower_upstream_persist(l, up);
        /* The first keepalive right away tells the upper we are alive and
         * checks the path both ways; then every interval (GB/T 28181 §9.6). */
        gb_lower_arm(l, &up->ka_timer, now, keepalive_timer_cb);
    }
    /* Refresh at 2/3 of the granted time, at least 1 s ahead. */
    uint64_t refresh = (uint64_t)up->granted * 1000u * 2u / 3u;
    if (refresh < 1000) refresh = 1000;
    gb_lower_arm(l, &up->reg_timer, now + refresh, refresh_timer_cb);
}

static void on_register_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                              const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)rx;
    (void)dlg;
    struct gb_upstream *up = arg;
    struct gb_lower *l = up->l;
    up->reg = NULL;
    up->cseq = ua_request_cseq(h);
    if (sip_transport_is_stream(up->dest.proto)) up->dest.conn_id = ua_request_dest(h)->conn_id;
    if (up->unregistering) {
        up->unregistering = false;
        up->state = GB_UP_STOPPED;
        log_info("gb lower: unregistered from upstream %s: %d", up->cfg.id, status);
        gb_lower_upstream_persist(l, up);
        gb_lower_stop_step(l);
        if (up->has_next && !l->stopping) apply_next(up); /* a reload changed it: register anew */
        return;
    }
    if (l->stopping) return;
    if (status >= 200 && status < 300 && resp) {
        registered(up, resp);
        return;
    }
    if (status == 423 && resp) {
        /* RFC 3261 §10.2.8: Interval Too Brief; ask again with Min-Expires. */
        const struct sip_header *me = sip_msg_header(resp, SIP_HDR_MIN_EXPIRES);
        uint64_t v;
        if (me && str_to_u64(str_trim(me->value), 86400, &v) == 0 && (int)v > up->cfg.expires) {
            log_info("gb lower: upstream %s wants Expires >= %llu", up->cfg.id, (unsigned long long)v);
            up->cfg.expires = (int)v;
            send_register(up, up->cfg.expires);
            return;
        }
    }
    register_failed(up, status, resp);
}

static const struct ua_uac_cb register_cb = {.on_final = on_register_final};

static void send_register(struct gb_upstream *up, int expires)
{
    struct gb_lower *l = up->l;
    if (up->reg) return; /* one in flight: its answer decides what comes next */
    timer_stop(l->timers, &up->reg_timer);
    struct ua_request r;
    char from[96], exp[32];
    gb_lower_request_init(l, up, SIP_REGISTER, &r, from, sizeof(from));
    /* REGISTER: To is our own address of record (RFC 3261 §10.2). */
    r.to = r.from;
    r.from_tag = str_from_cstr(up->from_tag);
    r.call_id = str_from_cstr(up->call_id);
    r.cseq = ++up->cseq;
    r.auto_contact = true;
    r.contact_user = str_from_cstr(l->id);
    snprintf(exp, sizeof(exp), "Expires: %d", expires);
    str_t hdr = str_from_cstr(exp);
    r.headers = &hdr;
    r.header_count = 1;
    struct ua_credentials cred = {.user = str_from_cstr(l->id), .password = str_from_cstr(up->cfg.password)};
    up->registers_sent++;
    up->reg = ua_request_send(l->ua, &r, &up->dest, up->cfg.password[0] ? &cred : NULL, &register_cb, up);
    if (!up->reg) {
        log_error("gb lower: REGISTER to upstream %s could not be sent", up->cfg.id);
        if (!up->unregistering) register_failed(up, 503, NULL);
    }
}

void gb_up_start(struct gb_upstream *up)
{
    if (up->state != GB_UP_IDLE) return;
    up->state = GB_UP_REGISTERING;
    send_register(up, up->cfg.expires);
}

void gb_up_lost(struct gb_upstream *up, const char *reason)
{
    struct gb_lower *l = up->l;
    if (up->state == GB_UP_STOPPED || up->state == GB_UP_IDLE) return;
    bool was = up->state == GB_UP_REGISTERED;
    stop_keepalive(up);
    timer_stop(l->timers, &up->reg_timer);
    if (up->reg) ua_request_detach(up->reg);
    up->reg = NULL;
    up->misses = 0;
    up->state = GB_UP_REGISTERING;
    gb_lower_subs_clear(up); /* the upper subscribes again once we are back */
    snprintf(up->last_error, sizeof(up->last_error), "%s", reason);
    if (was) {
        log_warn("gb lower: registration to upstream %s lost (%s); registering again", up->cfg.id, reason);
        json_t *f = up_event(up);
        json_object_set_new(f, "reason", json_string(reason));
        gb_lower_publish(l, "gb.upstream.lost", f);
        gb_lower_upstream_persist(l, up);
    }
    gb_lstreams_stop(l, up, "upstream-lost");
    gb_relays_stop(l, up, "upstream-lost");
    gb_lower_jobs_drop(l, up);
    send_register(up, up->cfg.expires);
}

static void keepalive_miss(struct gb_upstream *up, const char *why)
{
    up->misses++;
    up->keepalives_missed++;
    log_info("gb lower: keepalive to upstream %s missed (%s), %d of %d", up->cfg.id, why, up->misses,
             up->cfg.keepalive_misses);
    if (up->misses >= up->cfg.keepalive_misses) gb_up_lost(up, "keepalive-timeout");
}

static void on_keepalive_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                               const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)rx;
    (void)dlg;
    struct gb_upstream *up = arg;
    up->ka = NULL;
    if (sip_transport_is_stream(up->dest.proto)) up->dest.conn_id = ua_request_dest(h)->conn_id;
    if (up->state != GB_UP_REGISTERED || up->l->stopping) return;
    if (status >= 200 && status < 300) {
        up->misses = 0;
        up->keepalives_ok++;
        up->last_keepalive_ok = clock_wall_ms();
        return;
    }
    if (resp && (status == 403 || status == 404)) {
        /* The upper no longer knows us (it restarted, or expired us). */
        up->keepalives_missed++;
        gb_up_lost(up, "keepalive-refused");
        return;
    }
    char why[48];
    snprintf(why, sizeof(why), resp ? "%d answer" : status == 408 ? "no answer" : "transport error %d", status);
    keepalive_miss(up, why);
}

static const struct ua_uac_cb keepalive_cb = {.on_final = on_keepalive_final};

static void keepalive_timer_cb(struct timer_node *n, uint64_t now)
{
    struct gb_upstream *up = container_of(n, struct gb_upstream, ka_timer);
    struct gb_lower *l = up->l;
    if (up->state != GB_UP_REGISTERED || l->stopping) return;
    if (up->ka) {
        /* The previous one is still unanswered when the next is due. */
        ua_request_detach(up->ka);
        up->ka = NULL;
        keepalive_miss(up, "no answer within the interval");
        if (up->state != GB_UP_REGISTERED) return;
    }
    sbuf_t body;
    sbuf_init(&body);
    if (gb_manscdp_build_keepalive(&body, up->charset, ++l->sn, l->id, "OK") == 0) {
        up->keepalives_sent++;
        up->ka = gb_lower_send_manscdp(l, up, &body, &keepalive_cb, up);
        if (!up->ka) log_error("gb lower: keepalive to upstream %s could not be sent", up->cfg.id);
    }
    sbuf_free(&body);
    gb_lower_arm(l, &up->ka_timer, now + (uint64_t)up->cfg.keepalive_interval * 1000u, keepalive_timer_cb);
}

int gb_up_stop(struct gb_upstream *up)
{
    struct gb_lower *l = up->l;
    timer_stop(l->timers, &up->reg_timer);
    stop_keepalive(up);
    bool bound = up->state == GB_UP_REGISTERED || up->reg;
    if (up->reg) ua_request_detach(up->reg);
    up->reg = NULL;
    if (!bound || up->state == GB_UP_STOPPED) {
        if (up->state != GB_UP_STOPPED) up->state = GB_UP_STOPPED;
        return 0;
    }
    if (up->state == GB_UP_REGISTERED) {
        json_t *f = up_event(up);
        json_object_set_new(f, "reason", json_string("unregister"));
        gb_lower_publish(l, "gb.upstream.lost", f);
    }
    up->unregistering = true;
    send_register(up, 0);
    if (!up->reg) {
        up->unregistering = false;
        up->state = GB_UP_STOPPED;
        return 0;
    }
    return 1;
}

void gb_up_free(struct gb_upstream *up)
{
    if (!up->l) return;
    timer_stop(up->l->timers, &up->reg_timer);
    stop_keepalive(up);
    if (up->reg) ua_request_detach(up->reg);
    up->reg = NULL;
    gb_lower_node_reports_free(up);
}

static json_t *time_or_null(int64_t ms)
{
    if (!ms) return json_null();
    char buf[40];
    clock_iso8601(buf, sizeof(buf), ms, 1);
    return json_string(buf);
}

json_t *gb_up_json(const struct gb_upstream *up)
{
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:s,s:s}", "id", up->cfg.id, "host", up->cfg.host, "port",
                          (int)up->cfg.port, "transport", sip_transport_param(up->dest.proto),
                          "state", gb_up_state_name(up->state), "last_error", up->last_error);
    if (!o) return NULL;
    json_object_set_new(o, "registered_at", time_or_null(up->state == GB_UP_REGISTERED ? up->registered_at : 0));
    json_object_set_new(o, "last_keepalive_ok", time_or_null(up->last_keepalive_ok));
    json_object_set_new(o, "expires", json_integer(up->state == GB_UP_REGISTERED ? up->granted : 0));
    json_object_set_new(o, "keepalive_interval", json_integer(up->cfg.keepalive_interval));
    json_object_set_new(o, "keepalive_misses", json_integer(up->cfg.keepalive_misses));
    json_object_set_new(o, "misses", json_integer(up->misses));
    json_object_set_new(o, "charset", json_string(gb_charset_name(up->charset)));
    json_object_set_new(o, "registers_sent", json_integer((json_int_t)up->registers_sent));
    json_object_set_new(o, "register_failures", json_integer((json_int_t)up->register_failures));
    json_object_set_new(o, "keepalives_sent", json_integer((json_int_t)up->keepalives_sent));
    json_object_set_new(o, "keepalives_ok", json_integer((json_int_t)up->keepalives_ok));
    json_object_set_new(o, "keepalives_missed", json_integer((json_int_t)up->keepalives_missed));
    json_object_set_new(o, "subscriptions", gb_lower_subs_json(up));
    return o;
}

/* ---- reload ---- */

/* Ends what runs for up and unregisters it; 1 while the unregister is
 * awaited (the slot is STOPPED meanwhile, so nothing else goes to it). */
static int retire(struct gb_upstream *up, const char *reason)
{
    struct gb_lower *l = up->l;
    gb_lstreams_stop(l, up, reason);
    gb_relays_stop(l, up, reason);
    gb_lower_jobs_drop(l, up);
    gb_lower_subs_clear(up);
    int pending = gb_up_stop(up);
    up->state = GB_UP_STOPPED;
    return pending;
}

/* The changed section takes over the slot: a new binding (Call-ID, tag). */
static void apply_next(struct gb_upstream *up)
{
    up->cfg = up->next;
    up->has_next = false;
    up->unregistering = false;
    up->cseq = 0;
    up->failures = 0;
    up->misses = 0;
    up->granted = 0;
    up->last_error[0] = '\0';
    up->ever_subscribed = false;
    gb_lower_subs_clear(up);
    gb_up_init(up->l, up);
    log_info("gb lower: upstream %s now %s:%u %s%s", up->cfg.id, up->cfg.host, up->cfg.port,
             sip_transport_param(up->dest.proto), up->cfg.enabled ? "" : " (disabled)");
    gb_up_start(up);
}

static bool binding_changed(const struct config_upstream *a, const struct config_upstream *b)
{
    return strcmp(a->host, b->host) || a->port != b->port || a->transport != b->transport ||
           strcmp(a->tls_name, b->tls_name) || strcmp(a->domain, b->domain) || a->enabled != b->enabled;
}

void gb_up_reconfigure(struct gb_upstream *up, const struct config_upstream *cfg)
{
    struct gb_lower *l = up->l;
    up->given = *cfg;
    if (up->has_next || up->removed || binding_changed(&up->cfg, cfg)) {
        up->next = *cfg;
        up->has_next = true;
        up->removed = false;
        log_info("gb lower: upstream %s changed: unregistering, then registering to %s:%u", cfg->id, cfg->host,
                 cfg->port);
        if (up->unregistering || retire(up, "upstream-changed")) return; /* on_register_final applies it */
        apply_next(up);
        return;
    }
    up->cfg = *cfg;
    if (gb_charset_from_name(up->cfg.charset, &up->charset) != 0) up->charset = GB_CHARSET_GB2312;
    log_info("gb lower: upstream %s changed: %s", cfg->id,
             up->state == GB_UP_REGISTERED || up->state == GB_UP_FAILED ? "registering again" : "taken as is");
    if (up->state == GB_UP_REGISTERED) {
        send_register(up, up->cfg.expires); /* a refresh on the same binding */
    } else if (up->state == GB_UP_FAILED) {
        timer_stop(l->timers, &up->reg_timer);
        up->failures = 0;
        up->state = GB_UP_REGISTERING;
        send_register(up, up->cfg.expires); /* perhaps the password was what failed */
    }
}

void gb_up_remove(struct gb_upstream *up)
{
    up->removed = true;
    up->has_next = false;
    log_info("gb lower: upstream %s removed: unregistering", up->cfg.id);
    if (!up->unregistering) retire(up, "upstream-removed");
}
