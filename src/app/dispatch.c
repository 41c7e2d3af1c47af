/* dispatch.c — the core's request dispatch and its own answers.
 *
 * A new server transaction is offered to each enabled role in turn; the first
 * that returns 1 owns it. What no role takes is answered here, as a UAS core
 * would (RFC 3261 §8.2): OPTIONS -> 200 with our capabilities, a Require we do
 * not support -> 420, CANCEL -> 200 + 487 on the INVITE (or 481), in-dialog
 * requests nobody knows -> 481, unknown methods -> 501, known ones -> 405.
 *
 * Issue 9: these answers go to anyone who sends a datagram, so they keep no
 * state: the 200 to OPTIONS and every refusal of a request from outside a
 * dialog are sent once (txn_reject, txn_respond_stateless), not kept for
 * retransmissions for 32 s; only the 487 that ends a CANCELled INVITE, which
 * the caller waits for, stays stateful. */
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "api/http.h"
#include "api/routes_gb_lower.h"
#include "api/routes_messages.h"
#include "api/routes_presence.h"
#include "api/routes_registrar.h"
#include "app/worker.h"
#include "app/events_stream.h"
#include "api/routes_gb.h"
#include "auth/digest.h"
#include "base/clock.h"
#include "base/log.h"
#include "gb/lower/lower.h"
#include "gb/upper/upper.h"
#include "proxy/proxy.h"
#include "registrar/digest_check.h"
#include "registrar/location.h"
#include "registrar/cluster.h"
#include "registrar/location_mirror.h"
#include "registrar/users_mirror.h"
#include "gb/upper/admin_mirror.h"
#include "gb/upper/device_mirror.h"
#include "registrar/registrar.h"
#include "sip/local.h"
#include "subs/offline_msg.h"
#include "subs/mwi_mirror.h"
#include "subs/allow_mirror.h"
#include "subs/presence_mirror.h"
#include "subs/subs_takeover.h"
#include "subs/dialog_mirror.h"
#include "subs/reg_nodes.h"
#include "subs/subs.h"
#include "txn/txn.h"
#include "ua/ua.h"

_Static_assert(CLUSTER_GB_OFFLINE_KEEP_MS == GB_DEVMIRROR_OFFLINE_KEEP_MS, "a reaped record keeps as an offline one");
_Static_assert(CLUSTER_INC_MAX == GB_DEVMIRROR_INC_MAX, "one incarnation size");

/* Written tight: the 200 to OPTIONS goes to anyone, and its size over the
 * request's is the amplification a spoofed ping buys (issue 9: <= 1.5x for a
 * typical 340-byte OPTIONS; Accept-Language is left out, we serve no
 * language-dependent content, RFC 3261 §11.2). */
#define ACCEPT_VALUE "application/sdp,application/MANSCDP+xml"
#define SUPPORTED_VALUE "path,outbound"

/* The methods this node serves when it is the target (RFC 3261 §20.5):
 * REGISTER, OPTIONS, SUBSCRIBE and PUBLISH (presence) when the notifier is on, what ends or
 * acknowledges the dialogs it takes part in, and with a GB/T 28181 role the
 * INVITE, MESSAGE (MANSCDP) and INFO (MANSRTSP) it takes from devices and
 * platforms. except (a 405's method, or SIP_METHOD_UNKNOWN for none) is left
 * out: a 405 never lists the method it refuses (issue 15). */
static void allow_value(const struct worker *w, enum sip_method except, char *out, size_t cap)
{
    bool gb = w->gb_upper || w->gb_lower;
    const struct {
        enum sip_method m;
        bool on;
    } served[] = {
        {SIP_REGISTER, true}, {SIP_OPTIONS, true}, {SIP_SUBSCRIBE, w->subs != NULL}, {SIP_INVITE, gb},
        {SIP_ACK, true},      {SIP_CANCEL, true},  {SIP_BYE, true},                  {SIP_MESSAGE, gb},
        {SIP_INFO, gb},       {SIP_PUBLISH, w->subs != NULL},
    };
    size_t used = (size_t)snprintf(out, cap, "Allow: ");
    const char *sep = "";
    for (size_t i = 0; i < sizeof(served) / sizeof(served[0]) && used < cap; i++) {
        if (!served[i].on || served[i].m == except) continue;
        used += (size_t)snprintf(out + used, cap - used, "%s%s", sep, sip_method_name(served[i].m));
        sep = ",";
    }
}

/* NAT pings and the proxy's stateless sends: one message from our sockets. */
static int send_datagram(void *arg, struct transport_dest *dest, const void *data, size_t len)
{
    return transport_send(arg, dest, data, len);
}

/* ---- the proxy's collaborators: the registrar's digest checks and local
 * URIs, the node's response counters ---- */

static enum digest_check proxy_digest_check(void *arg, const struct transport_rx *rx, enum sip_hdr hdr,
                                            struct digest_check_result *out)
{
    return digest_check_request(arg, rx, hdr, out); /* arg: the worker's digest_checker */
}
static int proxy_digest_challenge(void *arg, bool proxy, bool stale, const struct transport_rx *rx, sbuf_t *b)
{
    return digest_check_challenge(arg, proxy, stale, rx, b);
}
static void proxy_digest_consume(void *arg, struct sip_msg *m, enum sip_hdr hdr) { digest_check_consume(arg, m, hdr); }
static bool proxy_uri_is_local(void *arg, const struct sip_uri *uri, const struct transport_rx *rx, bool check_port)
{
    return registrar_uri_is_local(arg, uri, rx, check_port);
}
static void proxy_response_out(void *arg, const char *data, size_t len) { worker_count_response_out(arg, data, len); }
static int proxy_offline(void *arg, const struct sip_msg *req, const char *aor, const char **reason)
{
    return offline_msg_take(arg, req, aor, reason);
}

/* The proxy's calls reach the dialog package (no subs logic in the proxy). */
static void proxy_call_seen(void *arg, const struct proxy_call_event *ev)
{
    static const enum subs_call_what what[] = {[PROXY_CALL_INVITE] = SUBS_CALL_INVITE,
                                               [PROXY_CALL_RESPONSE] = SUBS_CALL_RESPONSE,
                                               [PROXY_CALL_BYE] = SUBS_CALL_BYE};
    subs_on_call(arg, what[ev->what], ev->req, ev->resp, ev->status, ev->cancelled, ev->timed_out);
}

static struct proxy *start_proxy(struct worker *w)
{
    struct proxy_deps d = {
        .cfg = &w->cfg.proxy,
        .sip_cfg = &w->cfg.sip,
        .auth_cfg = &w->cfg.auth,
        .reg_cfg = &w->cfg.registrar,
        .local = &w->local,
        .txn = w->txn,
        .send = send_datagram,
        .send_arg = w->transport,
        .timers = &w->timers,
        .loop = w->loop,
        .location = w->location,
        .store = w->store,
        .users = w->users,
        .ua = w->ua,
        .digest = {.check = proxy_digest_check, .challenge = proxy_digest_challenge,
                   .consume = proxy_digest_consume, .arg = &w->digest},
        .uri_is_local = proxy_uri_is_local,
        .uri_is_local_arg = w->registrar,
        .on_response_out = proxy_response_out,
        .on_response_out_arg = w,
        .offline = w->offline ? proxy_offline : NULL,
        .offline_arg = w->offline,
        .on_call = w->subs ? proxy_call_seen : NULL,
        .on_call_arg = w->subs,
        .cluster = w->cluster,
    };
    return proxy_new(&d);
}

static bool admission_refuse(void *arg, struct txn *st) { return worker_overload_refuse(arg, st); }
static bool admission_busy(void *arg) { return worker_overload_busy(arg); }


/* Who we are, as the roles get it (sip/local.h). */
static void fill_local(struct worker *w)
{
    worker_fill_local(w);
    w->admission = (struct txn_admission){.refuse = admission_refuse, .busy = admission_busy, .arg = w};
    digest_checker_init(&w->digest, &w->cfg.auth, &w->local, w->users, w->auth, w->events);
    w->digest.edges = w->cfg.proxy.trusted_edges;
    w->digest.nedges = w->cfg.proxy.trusted_edges_count;
}

/* The GB upper role from its collaborators (it copies the config, the
 * identity and the admission). */
static struct gb_upper *start_gb_upper(struct worker *w)
{
    struct auth_server_config ac;
    auth_server_config_from(&ac, &w->cfg.auth, AUTH_OFFER(AUTH_ALG_MD5));
    char bearer[sizeof(w->cfg.api.token) + 8];
    snprintf(bearer, sizeof(bearer), "Bearer %s", w->cfg.api.token);
    struct gb_upper_deps deps = {.loop = w->loop, .timers = &w->timers, .ua = w->ua, .store = w->store,
                                 .events = w->events, .admission = &w->admission, .devmirror = w->gb_mirror,
                                 .cluster = w->cluster, .txn = w->txn,
                                 .forward_timeout_ms = w->cfg.redis.api_forward_timeout_ms,
                                 .forward_max_pending = w->cfg.redis.api_forward_max_pending,
                                 .forward_tls = w->tls,
                                 .forward_tls_name = w->cfg.redis.api_tls_name,
                                 .forward_authorization = w->cfg.api.token[0] ? bearer : NULL};
    struct gb_config gc = w->cfg.gb;
    gc.live_idle_stop_ms = w->cfg.media.idle_stop_s * 1000u; /* [media] idle_stop */
    gc.live_flv_max_lag_ms = w->cfg.media.flv_max_lag_ms;     /* [media] flv_max_lag_ms */
    struct gb_upper *g = gb_upper_new(&gc, &ac, &w->local, w->cfg.store.path, &deps);
    if (g) gb_upper_set_sfu(g, w->sfu); /* WebRTC live view; the SFU outlives the role's streams */
    return g;
}

static int start_registrar(struct worker *w)
{
    struct registrar_deps d = {
        .trusted_edges = w->cfg.proxy.trusted_edges,
        .trusted_edges_count = w->cfg.proxy.trusted_edges_count,
        .cfg = &w->cfg.registrar,
        .auth_cfg = &w->cfg.auth,
        .sip_cfg = &w->cfg.sip,
        .local = &w->local,
        .users = w->users,
        .auth = w->auth,
        .events = w->events,
        .ua = w->ua,
        .timers = &w->timers,
        .admission = &w->admission,
        .send = send_datagram,
        .send_arg = w->transport,
    };
    w->registrar = registrar_new(&d);
    if (!w->registrar) return -1;
    struct location_callbacks cb;
    registrar_location_callbacks(w->registrar, &cb);
    w->location = location_new(&w->timers, w->store, &cb);
    if (!w->location) return -1;
    if (w->store && location_load(w->location, w->store, worker_now_ms(w), clock_wall_ms()) < 0) {
        log_error("cannot load registrations from the store");
        return -1;
    }
    registrar_set_location(w->registrar, w->location);
    if (w->api) api_routes_registrar(w->api, w->registrar);
    return 0;
}

/* ---- the registrar's observer: one slot, fanned out here to every
 * module that follows the bindings (the notifier, the Redis mirror) ---- */

static void fan_added(void *arg, const struct location_binding *b)
{
    struct worker *w = arg;
    for (size_t i = 0; i < w->nobservers; i++)
        if (w->observers[i].binding_added) w->observers[i].binding_added(w->observers[i].arg, b);
}
static void fan_refreshed(void *arg, const struct location_binding *b)
{
    struct worker *w = arg;
    for (size_t i = 0; i < w->nobservers; i++)
        if (w->observers[i].binding_refreshed) w->observers[i].binding_refreshed(w->observers[i].arg, b);
}
static void fan_removed(void *arg, const struct location_binding *b, enum location_reason reason)
{
    struct worker *w = arg;
    for (size_t i = 0; i < w->nobservers; i++)
        if (w->observers[i].binding_removed) w->observers[i].binding_removed(w->observers[i].arg, b, reason);
}
static void fan_online(void *arg, const char *aor)
{
    struct worker *w = arg;
    for (size_t i = 0; i < w->nobservers; i++)
        if (w->observers[i].aor_online) w->observers[i].aor_online(w->observers[i].arg, aor);
}
static void fan_offline(void *arg, const char *aor, enum location_reason reason)
{
    struct worker *w = arg;
    for (size_t i = 0; i < w->nobservers; i++)
        if (w->observers[i].aor_offline) w->observers[i].aor_offline(w->observers[i].arg, aor, reason);
}

/* Adds obs to the fan-out (the registrar's slot points at the fan-out once
 * there is one observer, and at nothing when none is left). */
static void observer_add(struct worker *w, const struct location_callbacks *obs)
{
    if (w->nobservers >= WORKER_MAX_OBSERVERS) return; /* a programming error: the table is sized for the roles */
    w->observers[w->nobservers++] = *obs;
    struct location_callbacks fan = {.arg = w, .binding_added = fan_added, .binding_refreshed = fan_refreshed,
                                     .binding_removed = fan_removed, .aor_online = fan_online,
                                     .aor_offline = fan_offline};
    registrar_set_observer(w->registrar, &fan);
}

static void observer_remove(struct worker *w, void *arg)
{
    size_t j = 0;
    for (size_t i = 0; i < w->nobservers; i++)
        if (w->observers[i].arg != arg) w->observers[j++] = w->observers[i];
    w->nobservers = j;
    if (!j && w->registrar) registrar_set_observer(w->registrar, NULL);
}

/* [redis] mirror_bindings: the bindings written behind into the cluster. */
static int start_mirror(struct worker *w)
{
    if (!w->cfg.redis.mirror_bindings) return 0;
    int err = 0;
    w->mirror = location_mirror_new(w->loop, &w->timers, w->location, &w->cfg.redis, &err);
    if (!w->mirror) {
        log_error("[redis] cannot start the binding mirror toward %s: %s", w->cfg.redis.nodes, strerror(-err));
        return -1;
    }
    struct location_callbacks obs;
    location_mirror_callbacks(w->mirror, &obs);
    observer_add(w, &obs);
    if (w->cfg.redis.durable_writes && w->registrar) {
        registrar_set_commit_gate(w->registrar, location_mirror_sync, w->mirror);
        log_info("[redis] durable writes: a REGISTER's 200 waits for %u replica(s), at most %u ms",
                 w->cfg.redis.durable_replicas, w->cfg.redis.durable_timeout_ms);
    }
    log_info("[redis] bindings mirrored into the cluster at %s as node %s", w->cfg.redis.nodes,
             location_mirror_node_id(w->mirror));
    return 0;
}

/* A user deleted on another node: her bindings here go too, as for a local
 * delete through the API (routes_registrar.c). */
static void on_user_removed_elsewhere(void *arg, const char *name)
{
    struct worker *w = arg;
    if (w->location) location_remove_all(w->location, str_from_cstr(name), LOCATION_REMOVED_KICKED, NULL, NULL);
}

/* [redis] mirror_users: the users shared with the other nodes. */
static int start_users_mirror(struct worker *w)
{
    if (!w->cfg.redis.mirror_users || !w->users) return 0;
    int err = 0;
    w->users_mirror = users_mirror_new(w->loop, &w->timers, w->users, &w->cfg.redis, &err);
    if (!w->users_mirror) {
        log_error("[redis] cannot start the users mirror toward %s: %s", w->cfg.redis.nodes, strerror(-err));
        return -1;
    }
    users_mirror_set_on_removed(w->users_mirror, on_user_removed_elsewhere, w);
    log_info("[redis] users shared through the cluster at %s (at most %u loaded)", w->cfg.redis.nodes,
             w->cfg.redis.users_max);
    return 0;
}

/* This node's API for its peers (GB requests forwarded to the node that
 * holds the device): [redis] api_advertise, else the [api] listen address
 * when it names one, else the SIP host with the API's bound port; https://
 * before it when the API serves TLS. None when there is no API. */
static void api_advertise(struct worker *w)
{
    char hp[80] = "";
    if (w->cfg.redis.api_advertise[0]) {
        snprintf(hp, sizeof(hp), "%s", w->cfg.redis.api_advertise);
    } else if (!w->api) {
        return;
    } else {
        const char *l = w->cfg.api.listen, *colon = strrchr(l, ':');
        char host[64] = "";
        size_t hl = colon ? (size_t)(colon - l) : 0;
        if (hl >= 2 && l[0] == '[' && l[hl - 1] == ']') l++, hl -= 2;
        if (hl && hl < sizeof(host)) memcpy(host, l, hl), host[hl] = '\0';
        bool wild = !host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "::");
        if (wild) snprintf(host, sizeof(host), "%s", w->local.host);
        wild = !host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !strcmp(host, "[::]");
        if (wild) {
            log_warn("[redis] cluster_route: set api_advertise (the API listens on %s, which peers cannot reach); "
                     "until then GB requests from other nodes for this node's devices get 503", w->cfg.api.listen);
            return;
        }
        bool v6 = strchr(host, ':') != NULL && host[0] != '[';
        snprintf(hp, sizeof(hp), "%s%s%s%s:%d", w->cfg.api.tls_cert[0] ? "https://" : "", v6 ? "[" : "", host,
                 v6 ? "]" : "", api_server_port(w->api));
    }
    if (cluster_set_api(w->cluster, hp) != 0)
        log_warn("[redis] this node's API address %s does not read; not advertised", hp);
    else log_info("[redis] this node's API reached by its peers at %s", hp);
}

/* [redis] cluster_route: the node registry and the remote lookups, on
 * connections of their own. advertise empty: this node's first UDP (else
 * TCP) listener, which must then be a numeric, non-wildcard address. */
static void skip_local(void *arg, const char *type) { events_stream_skip_local(arg, type); }

/* A peer took this live node for dead: its bindings written again, its
 * subscriptions claimed again (a survivor may have adopted some). */
static void on_self_reaped(void *arg)
{
    struct worker *w = arg;
    location_mirror_resync(w->mirror);
    if (w->subs_takeover) subs_takeover_self_reaped(w->subs_takeover);
}

static int start_cluster(struct worker *w)
{
    if (!w->cfg.redis.cluster_route || !w->mirror) return 0;
    char adv[256];
    snprintf(adv, sizeof(adv), "%s", w->cfg.redis.advertise);
    if (!adv[0]) {
        const char *h = w->local.host;
        bool wild = !h[0] || !strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !strcmp(h, "[::]");
        uint16_t udp = w->local.port[SIP_TRANSPORT_UDP], tcp = w->local.port[SIP_TRANSPORT_TCP];
        if (wild || (!udp && !tcp)) {
            log_error("[redis] cluster_route: set advertise (this node listens on %s, which peers cannot reach)",
                      h[0] ? h : "no UDP/TCP address");
            return -1;
        }
        char host[80];
        sip_host_for_header(h, host, sizeof(host));
        if (udp) snprintf(adv, sizeof(adv), "sip:%s:%u", host, udp);
        else snprintf(adv, sizeof(adv), "sip:%s:%u;transport=tcp", host, tcp);
    }
    int err = 0;
    w->cluster = cluster_new(w->loop, &w->timers, &w->cfg.redis, location_mirror_node_id(w->mirror), adv, &err);
    if (!w->cluster) {
        log_error("[redis] cannot start routing between nodes (advertise %s, nodes %s): %s", adv, w->cfg.redis.nodes,
                  err == -EINVAL ? "advertise must be a sip: URI with a numeric host" : strerror(-err));
        return -1;
    }
    api_advertise(w);
    cluster_set_on_reaped(w->cluster, on_self_reaped, w);
    cluster_set_node_death(w->cluster, location_mirror_incarnation(w->mirror), w->events,
                           w->local.domain[0] ? w->local.domain : (w->local.realm[0] ? w->local.realm : w->local.host));
    if (w->events_stream) { /* a reap's offline events into the stream by its own scripts */
        struct events_stream_target t;
        events_stream_target(w->events_stream, &t);
        struct cluster_stream cs = {.key = t.key, .seq_key = t.seq_key, .maxlen = t.maxlen, .node_id = t.node_id,
                                    .node_json = t.node_json, .skip_local = skip_local, .arg = w->events_stream};
        cluster_set_events_stream(w->cluster, &cs);
    }
    log_info("[redis] cluster routing on: node %s reached at %s", location_mirror_node_id(w->mirror), adv);
    return 0;
}

/* The RFC 6665 notifier on the registrar's location; its subscriptions come
 * back from the store. */
static int start_subs(struct worker *w)
{
    if (!w->cfg.subs.enabled) return 0;
    struct subs_deps d = {.cfg = &w->cfg.subs, .local = &w->local, .require_auth = w->cfg.auth.require_auth,
                          .digest = &w->digest, .registrar = w->registrar, .ua = w->ua, .timers = &w->timers,
                          .store = w->store,
                          .claim_loaded = w->cluster && w->cfg.redis.mirror_presence}; /* subs_takeover claims them */
    w->subs = subs_new(&d);
    if (!w->subs) return -1;
    if (subs_load(w->subs, clock_wall_ms()) < 0) {
        log_error("cannot load subscriptions from the store");
        return -1;
    }
    struct location_callbacks obs;
    subs_location_observer(w->subs, &obs);
    observer_add(w, &obs);
    if (w->api) api_routes_presence(w->api, w->subs);
    if (w->cluster) { /* reg watchers see every node's bindings */
        struct reg_nodes_deps rd = {.timers = &w->timers, .cluster = w->cluster, .subs = w->subs,
                                    .node_id = location_mirror_node_id(w->mirror)};
        if (!(w->reg_nodes = reg_nodes_new(&rd))) {
            log_error("cannot start the reg package across nodes");
            return -1;
        }
        log_info("[redis] reg watchers here see the bindings of every live node");
        int derr = 0;
        w->dialog_mirror = dialog_mirror_new(w->loop, &w->timers, w->subs, w->cluster, &w->cfg.redis,
                                             location_mirror_node_id(w->mirror), &derr);
        if (!w->dialog_mirror) {
            log_error("cannot start the dialog package across nodes: %s", strerror(-derr));
            return -1;
        }
        log_info("[redis] dialog watchers here see the calls of every live node");
    }
    return 0;
}

/* This node's name in what it writes into the cluster: the binding mirror's
 * when there is one, else [redis] node_id, else the host name. */
static void node_name(const struct worker *w, char *out, size_t cap)
{
    if (w->mirror) snprintf(out, cap, "%s", location_mirror_node_id(w->mirror));
    else if (w->cfg.redis.node_id[0]) snprintf(out, cap, "%s", w->cfg.redis.node_id);
    else if (gethostname(out, cap - 1) != 0 || !out[0]) snprintf(out, cap, "node-%ld", (long)getpid());
    out[cap - 1] = '\0';
}

/* [redis] mirror_presence: PUBLISHed presence shared with the other nodes'
 * watchers (needs the notifier). */
static int start_presence_mirror(struct worker *w)
{
    if (!w->cfg.redis.mirror_presence) return 0;
    if (!w->subs) {
        log_warn("[redis] mirror_presence: [subscriptions] is off here, nothing to share");
        return 0;
    }
    char node[128];
    node_name(w, node, sizeof(node));
    int err = 0;
    w->presence_mirror = presence_mirror_new(w->loop, &w->timers, w->subs, &w->cfg.redis, node, &err);
    if (!w->presence_mirror) {
        log_error("[redis] cannot start the presence mirror toward %s as node %s: %s", w->cfg.redis.nodes, node,
                  strerror(-err));
        return -1;
    }
    if (w->cluster) presence_mirror_set_cluster(w->presence_mirror, w->cluster); /* registrations elsewhere */
    if (w->cluster) { /* a dead node's subscriptions: one survivor goes on with each */
        presence_mirror_set_incarnation(w->presence_mirror, location_mirror_incarnation(w->mirror));
        w->subs_takeover = subs_takeover_new(w->loop, &w->timers, w->subs, &w->cfg.redis, node,
                                             location_mirror_incarnation(w->mirror), &err);
        if (!w->subs_takeover) {
            log_error("[redis] cannot start the takeover of dead nodes' subscriptions: %s", strerror(-err));
            return -1;
        }
        cluster_set_on_node_reaped(w->cluster, subs_takeover_node_reaped, w->subs_takeover);
    }
    log_info("[redis] presence publications shared through the cluster as node %s (at most %u of other nodes held)%s",
             node, w->cfg.redis.presence_max, w->cluster ? "; registrations on other nodes count" : "");
    return 0;
}

/* [redis] mirror_mwi: message summaries shared with the other nodes'
 * watchers (needs the notifier). */
static int start_mwi_mirror(struct worker *w)
{
    if (!w->cfg.redis.mirror_mwi) return 0;
    if (!w->subs) {
        log_warn("[redis] mirror_mwi: [subscriptions] is off here, nothing to share");
        return 0;
    }
    int err = 0;
    uint32_t max = w->cfg.subs.max_total > 0 ? (uint32_t)w->cfg.subs.max_total : 100000u; /* the store's cap */
    w->mwi_mirror = mwi_mirror_new(w->loop, &w->timers, w->subs, &w->cfg.redis, max, &err);
    if (!w->mwi_mirror) {
        log_error("[redis] cannot start the message-summary mirror toward %s: %s", w->cfg.redis.nodes,
                  strerror(-err));
        return -1;
    }
    log_info("[redis] message summaries shared through the cluster at %s (at most %u users)", w->cfg.redis.nodes,
             max);
    return 0;
}

/* [redis] mirror_presence_allow: the presence allow lists shared with the
 * other nodes (after the notifier loaded its own from the store). */
static int start_allow_mirror(struct worker *w)
{
    if (!w->cfg.redis.mirror_presence_allow) return 0;
    if (!w->subs) {
        log_warn("[redis] mirror_presence_allow: [subscriptions] is off here, nothing to share");
        return 0;
    }
    int err = 0;
    w->allow_mirror = presence_allow_mirror_new(w->loop, &w->timers, subs_presence(w->subs), &w->cfg.redis, &err);
    if (!w->allow_mirror) {
        log_error("[redis] cannot start the presence allow-list mirror toward %s: %s", w->cfg.redis.nodes,
                  strerror(-err));
        return -1;
    }
    log_info("[redis] presence allow lists shared through the cluster at %s", w->cfg.redis.nodes);
    return 0;
}

/* Offline instant messages: kept when the proxy cannot deliver, sent at the
 * user's next registration; they come back from the store. */
static int start_offline(struct worker *w)
{
    if (!w->cfg.messages.offline) return 0;
    struct offline_msg_deps d = {.cfg = &w->cfg.messages, .registrar = w->registrar, .ua = w->ua,
                                 .timers = &w->timers, .store = w->store, .events = w->events};
    w->offline = offline_msg_new(&d);
    if (!w->offline) return -1;
    if (offline_msg_load(w->offline) < 0) {
        log_error("cannot load offline messages from the store");
        return -1;
    }
    registrar_set_on_registered(w->registrar, offline_msg_on_registered, w->offline);
    if (w->api) api_routes_messages(w->api, w->offline);
    return 0;
}

/* [redis] mirror_gb_devices: GB devices written behind into the cluster;
 * with cluster_route, play across nodes (gb/upper/play_nodes.c). */
static int start_gb_mirror(struct worker *w)
{
    if (!w->cfg.redis.mirror_gb_devices) return 0;
    char node[128];
    node_name(w, node, sizeof(node));
    int err = 0;
    w->gb_mirror = gb_devmirror_new(w->loop, &w->timers, &w->cfg.redis, node, &err);
    if (!w->gb_mirror) {
        log_error("[redis] cannot start the GB device mirror toward %s: %s", w->cfg.redis.nodes, strerror(-err));
        return -1;
    }
    /* With routing between nodes: the records carry this run's incarnation
     * and the devices are indexed for a survivor's reap (node death). */
    if (w->cluster) gb_devmirror_set_incarnation(w->gb_mirror, location_mirror_incarnation(w->mirror));
    log_info("[redis] GB devices mirrored into the cluster as node %s%s", node,
             w->cluster ? "; play across nodes on" : "");
    return 0;
}

/* [redis] mirror_gb_admin: the GB devices' administrative records shared
 * with the other nodes (after the role loaded its own from the store). */
static int start_gb_admin_mirror(struct worker *w)
{
    if (!w->cfg.redis.mirror_gb_admin) return 0;
    int err = 0;
    w->gb_admin_mirror = gb_admin_mirror_new(w->loop, &w->timers, w->gb_upper, &w->cfg.redis,
                                             w->cfg.gb.allow_unknown, &err);
    if (!w->gb_admin_mirror) {
        log_error("[redis] cannot start the GB admin mirror toward %s: %s", w->cfg.redis.nodes, strerror(-err));
        return -1;
    }
    log_info("[redis] GB devices' administrative records shared through the cluster at %s", w->cfg.redis.nodes);
    return 0;
}

int dispatch_start_roles(struct worker *w)
{
    fill_local(w);
    /* The UA first: the registrar and the proxy take their tags from it. */
    w->ua = ua_new(&w->cfg.sip, &w->local, &w->timers, w->txn, w->transport, 0);
    if (!w->ua || start_registrar(w) < 0 || start_mirror(w) < 0 || start_users_mirror(w) < 0 || start_cluster(w) < 0 ||
        start_subs(w) < 0 || start_presence_mirror(w) < 0 || start_mwi_mirror(w) < 0 ||
        start_allow_mirror(w) < 0 || start_offline(w) < 0)
        return -1;
    w->proxy = start_proxy(w);
    if (!w->proxy) return -1;

    if (w->cfg.gb.enabled) {
        if (start_gb_mirror(w) < 0) return -1;
        w->gb_upper = start_gb_upper(w);
        if (!w->gb_upper || gb_upper_load(w->gb_upper) < 0 || start_gb_admin_mirror(w) < 0) return -1;
        if (w->api) api_routes_gb_upper(w->api, w->gb_upper);
        if (w->cluster && w->gb_mirror) { /* a dead node's GB devices: this role's state kept true */
            struct cluster_gb_hooks h;
            gb_upper_gb_hooks(w->gb_upper, &h);
            cluster_set_gb_hooks(w->cluster, &h);
        }
    }
    if ((w->cfg.gb.enabled || w->cfg.upstream_count > 0) && dispatch_start_gb_lower(w) < 0) return -1;
    return 0;
}

int dispatch_start_gb_lower(struct worker *w)
{
    struct gb_lower_deps deps = {.ua = w->ua, .txn = w->txn, .timers = &w->timers, .loop = w->loop,
                                 .store = w->store, .events = w->events};
    w->gb_lower = gb_lower_new(&w->cfg.gb, w->cfg.upstreams, w->cfg.upstream_count, &w->local, &deps);
    if (w->gb_lower && gb_lower_load(w->gb_lower) < 0) {
        gb_lower_free(w->gb_lower);
        w->gb_lower = NULL;
    }
    if (!w->gb_lower) return -1;
    if (w->gb_upper) gb_lower_set_upper(w->gb_lower, w->gb_upper);
    if (w->gb_upper && w->events_view) gb_lower_set_cluster_events(w->gb_lower, w->events_view);
    if (w->api) api_routes_gb_lower(w->api, w->gb_lower);
    gb_lower_start(w->gb_lower);
    return 0;
}

void dispatch_stop_roles(struct worker *w, void (*done)(void *arg), void *arg)
{
    if (w->cluster) cluster_set_gb_hooks(w->cluster, NULL);
    gb_admin_mirror_free(w->gb_admin_mirror); /* its connections would keep the loop running */
    w->gb_admin_mirror = NULL;
    if (w->gb_mirror) { /* the role lets go of the mirror and the registry first */
        if (w->gb_upper) gb_upper_stop(w->gb_upper);
        gb_devmirror_free(w->gb_mirror);
        w->gb_mirror = NULL;
    }
    users_mirror_free(w->users_mirror); /* its connections would keep the loop running */
    w->users_mirror = NULL;
    if (w->cluster) cluster_set_on_node_reaped(w->cluster, NULL, NULL);
    subs_takeover_free(w->subs_takeover); /* the same */
    w->subs_takeover = NULL;
    presence_mirror_free(w->presence_mirror); /* the same */
    w->presence_mirror = NULL;
    mwi_mirror_free(w->mwi_mirror); /* the same */
    w->mwi_mirror = NULL;
    presence_allow_mirror_free(w->allow_mirror); /* the same */
    w->allow_mirror = NULL;
    reg_nodes_free(w->reg_nodes); /* before the cluster */
    w->reg_nodes = NULL;
    dialog_mirror_free(w->dialog_mirror); /* the same; its connections would keep the loop running */
    w->dialog_mirror = NULL;
    if (w->proxy) proxy_set_cluster(w->proxy, NULL);
    cluster_free(w->cluster); /* waiting requests get their local answer */
    w->cluster = NULL;
    if (w->mirror) { /* its connections would keep the loop running */
        if (w->registrar) registrar_set_commit_gate(w->registrar, NULL, NULL);
        observer_remove(w, w->mirror);
        location_mirror_free(w->mirror);
        w->mirror = NULL;
    }
    if (w->gb_upper) gb_upper_stop(w->gb_upper);
    if (w->gb_lower) gb_lower_stop(w->gb_lower, done, arg); /* unregisters: needs the loop a moment */
    else done(arg);
}

void dispatch_free_roles(struct worker *w)
{
    if (w->cluster) cluster_set_gb_hooks(w->cluster, NULL);
    if (w->gb_lower) gb_lower_free(w->gb_lower);
    gb_admin_mirror_free(w->gb_admin_mirror); /* before the role it observes */
    w->gb_admin_mirror = NULL;
    if (w->gb_upper) gb_upper_free(w->gb_upper);
    gb_devmirror_free(w->gb_mirror);
    w->gb_mirror = NULL;
    users_mirror_free(w->users_mirror);
    w->users_mirror = NULL;
    if (w->cluster) cluster_set_on_node_reaped(w->cluster, NULL, NULL);
    subs_takeover_free(w->subs_takeover); /* before the notifier */
    w->subs_takeover = NULL;
    presence_mirror_free(w->presence_mirror); /* before the notifier's presence state */
    w->presence_mirror = NULL;
    mwi_mirror_free(w->mwi_mirror); /* before the notifier's store */
    w->mwi_mirror = NULL;
    presence_allow_mirror_free(w->allow_mirror); /* the same */
    w->allow_mirror = NULL;
    reg_nodes_free(w->reg_nodes); /* before the cluster and the notifier */
    w->reg_nodes = NULL;
    dialog_mirror_free(w->dialog_mirror); /* before the cluster and the notifier */
    w->dialog_mirror = NULL;
    if (w->proxy) proxy_set_cluster(w->proxy, NULL);
    cluster_free(w->cluster);
    w->cluster = NULL;
    if (w->proxy) proxy_free(w->proxy);
    if (w->mirror) {
        if (w->registrar) registrar_set_commit_gate(w->registrar, NULL, NULL);
        observer_remove(w, w->mirror);
        location_mirror_free(w->mirror);
        w->mirror = NULL;
    }
    w->nobservers = 0;
    if (w->registrar) registrar_set_observer(w->registrar, NULL);
    subs_free(w->subs);
    w->subs = NULL;
    if (w->registrar) registrar_set_on_registered(w->registrar, NULL, NULL);
    offline_msg_free(w->offline);
    w->offline = NULL;
    if (w->registrar) registrar_free(w->registrar);
    if (w->ua) ua_free(w->ua);
    if (w->location) location_free(w->location);
    w->gb_lower = NULL;
    w->gb_upper = NULL;
    w->proxy = NULL;
    w->registrar = NULL;
    w->ua = NULL;
    w->location = NULL;
}

#define REFUSAL_LOG_PER_S 20

/* A flood of malformed requests must not become a flood of log lines: the
 * first REFUSAL_LOG_PER_S a second are logged, then one line says how many
 * were not. */
static bool refusal_log_ok(struct worker *w)
{
    uint64_t now = worker_now_ms(w);
    if (now - w->refusal_log_ms >= 1000) {
        if (w->refusal_log_suppressed)
            log_warn("%llu more malformed requests answered in the last second, not logged one by one",
                     (unsigned long long)w->refusal_log_suppressed);
        w->refusal_log_ms = now;
        w->refusal_log_count = 0;
        w->refusal_log_suppressed = 0;
    }
    if (w->refusal_log_count < REFUSAL_LOG_PER_S) {
        w->refusal_log_count++;
        return true;
    }
    w->refusal_log_suppressed++;
    return false;
}

void worker_reply_stateless(struct worker *w, const struct transport_rx *rx, int status, const char *reason)
{
    if (!w->transport || !w->txn) return;
    char server[96];
    snprintf(server, sizeof(server), "Server: %s", w->cfg.sip.user_agent);
    str_t extra[] = {str_from_cstr(server)};
    /* Through the txn layer: its To tag makes the ACK for a 4xx to INVITE absorbed. */
    int rc = txn_layer_reply_stateless(w->txn, rx, status, reason, extra, 1);
    if (refusal_log_ok(w))
        log_warn("%d %s to %s %s%s", status, reason, transport_name(rx->proto), rx->src_text, rc ? " (not sent)" : "");
}

enum reply_mode {
    REPLY_REJECT,    /* txn_reject: stateless for a refusal out of a dialog */
    REPLY_STATELESS, /* the 200 to OPTIONS */
    REPLY_STATEFUL,  /* the 487 to a CANCELled INVITE: its retransmission must not start a new call */
};

/* Answers st with our tag and a Server header plus extra lines. */
static void reply_as(struct worker *w, struct txn *st, enum reply_mode mode, int status, const char *reason,
                     const str_t *extra, size_t n)
{
    char tag[17];
    worker_new_tag(w, tag);
    str_t lines[8];
    size_t k = 0;
    char server[96];
    snprintf(server, sizeof(server), "Server: %s", w->cfg.sip.user_agent);
    lines[k++] = str_from_cstr(server);
    for (size_t i = 0; i < n && k < 8; i++) lines[k++] = extra[i];
    const struct sip_msg *req = txn_request(st);
    str_t to_tag = (req && req->to.tag.len) ? STR_NULL : str_from_cstr(tag);
    int (*respond)(struct txn *, int, const char *, str_t, const str_t *, size_t, str_t, str_t) =
        mode == REPLY_STATEFUL ? txn_respond : mode == REPLY_STATELESS ? txn_respond_stateless : txn_reject;
    int rc = respond(st, status, reason, to_tag, lines, k, STR_NULL, STR_NULL);
    if (rc < 0) log_warn("cannot answer %d: %s", status, strerror(-rc));
}

static void reply(struct worker *w, struct txn *st, int status, const char *reason, const str_t *extra, size_t n)
{
    reply_as(w, st, REPLY_REJECT, status, reason, extra, n);
}

/* RFC 3261 §8.2.2.3: option tags in Require that we do not support. */
static bool unsupported_require(const struct sip_msg *m, char *buf, size_t cap)
{
    struct sip_list_iter it;
    str_t item;
    size_t used = 0;
    buf[0] = '\0';
    sip_list_iter_init(&it, m, SIP_HDR_REQUIRE);
    while (sip_list_iter_next(&it, &item)) {
        if (str_ieq_cstr(item, "path") || str_ieq_cstr(item, "outbound")) continue;
        int n = snprintf(buf + used, cap - used, "%s%.*s", used ? ", " : "", STR_FMT(item));
        if (n < 0 || (size_t)n >= cap - used) break;
        used += (size_t)n;
    }
    return used > 0;
}

static void core_answer(struct worker *w, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    char allow[256];
    allow_value(w, m->method == SIP_OPTIONS ? SIP_METHOD_UNKNOWN : m->method, allow, sizeof(allow));

    if (m->method == SIP_CANCEL) {
        struct txn *inv = txn_find_invite_for_cancel(w->txn, rx);
        if (!inv) {
            reply(w, st, 481, "Call/Transaction Does Not Exist", NULL, 0);
            return;
        }
        reply(w, st, 200, "OK", NULL, 0);
        if (txn_last_status(inv) < 200) reply_as(w, inv, REPLY_STATEFUL, 487, "Request Terminated", NULL, 0);
        return;
    }
    char unsupported[256];
    if (m->method != SIP_ACK && unsupported_require(m, unsupported, sizeof(unsupported))) {
        char line[300];
        snprintf(line, sizeof(line), "Unsupported: %s", unsupported);
        str_t extra[] = {str_from_cstr(line)};
        reply(w, st, 420, "Bad Extension", extra, 1);
        return;
    }
    if (m->method == SIP_OPTIONS) {
        str_t extra[] = {str_from_cstr(allow), STR_LIT("Accept: " ACCEPT_VALUE), STR_LIT("Supported: " SUPPORTED_VALUE)};
        reply_as(w, st, REPLY_STATELESS, 200, "OK", extra, 3);
        return;
    }
    if (m->to.tag.len) {
        reply(w, st, 481, "Call/Transaction Does Not Exist", NULL, 0);
        return;
    }
    if (m->method == SIP_METHOD_UNKNOWN) {
        str_t extra[] = {str_from_cstr(allow)};
        reply(w, st, 501, "Not Implemented", extra, 1);
        return;
    }
    str_t extra[] = {str_from_cstr(allow)};
    reply(w, st, 405, "Method Not Allowed", extra, 1);
}

/* An out-of-dialog OPTIONS to our domain for a user we neither provision nor
 * have a binding for is a ping of this server (sipsak -s sip:ping@host,
 * monitoring probes): the core answers it rather than the proxy's 404. */
static bool options_ping_for_us(struct worker *w, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (m->method != SIP_OPTIONS || m->to.tag.len || !w->registrar) return false;
    if (m->ruri.scheme != SIP_SCHEME_SIP && m->ruri.scheme != SIP_SCHEME_SIPS) return false;
    if (!registrar_uri_is_local(w->registrar, &m->ruri, rx, false)) return false;
    if (!m->ruri.user.len) return true;
    char key[256];
    int n = registrar_aor_key(&m->ruri, key, sizeof(key));
    if (n < 0) return false;
    str_t user = str_make(key, (size_t)n);
    if (registrar_user_known(w->registrar, user)) return false;
    const struct location_binding *b;
    return location_lookup(w->location, user, &b, 1) == 0;
}

void dispatch_request(struct worker *w, struct txn *st, const struct transport_rx *rx)
{
    if (w->stopping) {
        reply(w, st, 503, "Service Unavailable", NULL, 0);
        return;
    }
    /* Our own dialogs first (a BYE for a stream we play or serve), then the
     * GB roles (they recognise GB ids and MANSCDP bodies), then the event
     * notifier (SUBSCRIBE to us), the registrar and the proxy; what is left
     * is the UAS core's. */
    if (w->ua && rx->msg->to.tag.len && ua_on_request(w->ua, st, rx)) return;
    if (w->gb_lower && gb_lower_on_request(w->gb_lower, st, rx)) return;
    if (w->gb_upper && gb_upper_on_request(w->gb_upper, st, rx)) return;
    /* Edge mode ([proxy] edge_registrar): REGISTERs and new requests for
     * our domain belong to the registrar node behind us. */
    if (w->proxy && proxy_edge_takes(w->proxy, rx) && proxy_on_request(w->proxy, st, rx)) return;
    /* After the GB roles: a GB/T 28181 subscription (Catalog, Alarm, ...) is
     * theirs to claim; what they leave is the notifier's (489 or reg). */
    if (w->subs && subs_on_request(w->subs, st, rx)) return;
    if (w->registrar && registrar_on_request(w->registrar, st, rx)) return;
    if (options_ping_for_us(w, rx)) {
        core_answer(w, st, rx);
        return;
    }
    if (w->proxy && proxy_on_request(w->proxy, st, rx)) return;
    core_answer(w, st, rx);
}

void dispatch_ack(struct worker *w, const struct transport_rx *rx)
{
    if (w->ua && ua_on_ack(w->ua, rx)) return;
    if (w->proxy) proxy_on_ack(w->proxy, rx);
}

void dispatch_stray_response(struct worker *w, const struct transport_rx *rx)
{
    if (w->ua && ua_on_response(w->ua, rx)) return;
    if (w->registrar && registrar_on_stray_response(w->registrar, rx)) return;
    if (w->proxy) proxy_on_stray_response(w->proxy, rx);
    else log_debug("stray %d response from %s dropped", rx->msg->status, rx->src_text);
}

void dispatch_server_terminated(struct worker *w, struct txn *st)
{
    if (w->proxy) proxy_on_server_terminated(w->proxy, st);
}

void dispatch_conn_lost(struct worker *w, uint64_t conn_id, const char *peer_text)
{
    if (w->registrar) registrar_on_conn_lost(w->registrar, conn_id, peer_text);
    if (w->gb_upper) gb_upper_on_conn_lost(w->gb_upper, conn_id);
    if (w->gb_lower) gb_lower_on_conn_lost(w->gb_lower, conn_id);
}


/* The members every Redis hash mirror shares (redis/hash_mirror.h), as
 * stats[name]; the object made (NULL when out of memory), for the mirror's
 * own counters. */
static json_t *hash_mirror_json(json_t *stats, const char *name, const struct hash_mirror_stats *h)
{
    json_t *o = json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "subscribed", h->subscribed, "loads",
                          (json_int_t)h->loads, "load_failures", (json_int_t)h->load_failures, "announcements",
                          (json_int_t)h->announcements, "applied", (json_int_t)h->applied, "rejected",
                          (json_int_t)h->rejected, "writes_ok", (json_int_t)h->writes_ok, "writes_failed",
                          (json_int_t)h->writes_failed);
    if (o) json_object_set_new(stats, name, o);
    return o;
}

void dispatch_stats(struct worker *w, json_t *stats)
{
    if (w->registrar) registrar_stats_json(w->registrar, stats);
    if (w->proxy) proxy_stats_json(w->proxy, stats);
    if (w->cluster) cluster_stats_json(w->cluster, stats);
    if (w->reg_nodes) reg_nodes_stats_json(w->reg_nodes, stats);
    if (w->dialog_mirror) dialog_mirror_stats_json(w->dialog_mirror, stats);
    if (w->gb_mirror) gb_devmirror_stats_json(w->gb_mirror, stats);
    if (w->users_mirror) {
        struct users_mirror_stats us;
        users_mirror_get_stats(w->users_mirror, &us);
        json_t *o = hash_mirror_json(stats, "redis_users", &us.mirror);
        if (o) json_object_set_new(o, "users", json_integer(us.users));
    }
    if (w->gb_admin_mirror) {
        struct gb_admin_mirror_stats as;
        gb_admin_mirror_get_stats(w->gb_admin_mirror, &as);
        hash_mirror_json(stats, "redis_gb_admin", &as.mirror);
    }
    if (w->mwi_mirror) {
        struct mwi_mirror_stats ms;
        mwi_mirror_get_stats(w->mwi_mirror, &ms);
        json_t *o = hash_mirror_json(stats, "redis_mwi", &ms.mirror);
        if (o) {
            json_object_set_new(o, "summaries", json_integer(ms.summaries));
            json_object_set_new(o, "older", json_integer((json_int_t)ms.older));
            json_object_set_new(o, "not_shared", json_integer((json_int_t)ms.not_shared));
        }
    }
    if (w->presence_mirror) {
        struct presence_mirror_stats ps;
        presence_mirror_get_stats(w->presence_mirror, &ps);
        json_object_set_new(stats, "redis_presence",
                            json_pack("{s:b,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "subscribed", ps.subscribed,
                                      "followed", (int)ps.followed, "remote", (int)ps.remote, "announcements",
                                      (json_int_t)ps.announcements, "fetches", (json_int_t)ps.fetches,
                                      "fetch_failures", (json_int_t)ps.fetch_failures, "rejected",
                                      (json_int_t)ps.rejected, "writes_ok", (json_int_t)ps.writes_ok,
                                      "writes_failed", (json_int_t)ps.writes_failed, "lookup_failures",
                                      (json_int_t)ps.lookup_failures, "takes", (json_int_t)ps.takes, "taken",
                                      (json_int_t)ps.taken, "take_failures", (json_int_t)ps.take_failures,
                                      "given_up", (json_int_t)ps.given_up));
        if (w->subs_takeover) {
            struct subs_takeover_stats ts;
            subs_takeover_get_stats(w->subs_takeover, &ts);
            json_t *o = json_object_get(stats, "redis_presence");
            json_object_set_new(o, "subs_nodes_walked", json_integer((json_int_t)ts.nodes));
            json_object_set_new(o, "subs_adopted", json_integer((json_int_t)ts.adopted));
            json_object_set_new(o, "subs_dropped", json_integer((json_int_t)ts.dropped));
            json_object_set_new(o, "subs_refused_cap", json_integer((json_int_t)ts.refused_cap));
            json_object_set_new(o, "subs_reclaimed", json_integer((json_int_t)ts.reclaimed));
            json_object_set_new(o, "subs_let_go", json_integer((json_int_t)ts.let_go));
            json_object_set_new(o, "subs_self_reaped", json_integer((json_int_t)ts.self_reaped));
            json_object_set_new(o, "subs_takeover_failures", json_integer((json_int_t)ts.failures));
        }
    }
    if (w->allow_mirror) {
        struct presence_allow_mirror_stats as;
        presence_allow_mirror_get_stats(w->allow_mirror, &as);
        json_t *o = hash_mirror_json(stats, "redis_presence_allow", &as.mirror);
        if (o) json_object_set_new(o, "lists", json_integer((json_int_t)as.lists));
    }
    if (w->subs) subs_stats_json(w->subs, stats);
    if (w->offline) offline_msg_stats_json(w->offline, stats);
    if (w->mirror) {
        struct location_mirror_stats ms;
        location_mirror_get_stats(w->mirror, &ms);
        json_object_set_new(stats, "redis_mirror",
                            json_pack("{s:s,s:I,s:I,s:I,s:I,s:i,s:I,s:I,s:I}", "node_id",
                                      location_mirror_node_id(w->mirror), "writes_ok", (json_int_t)ms.writes_ok,
                                      "writes_failed", (json_int_t)ms.writes_failed, "writes_dropped",
                                      (json_int_t)ms.writes_dropped, "resyncs", (json_int_t)ms.resyncs, "pending",
                                      (int)ms.pending, "durable_ok", (json_int_t)ms.durable_ok, "durable_failed",
                                      (json_int_t)ms.durable_failed, "durable_retries",
                                      (json_int_t)ms.durable_retries));
    }
    if (w->gb_upper) {
        struct gb_upper_stats s;
        gb_upper_get_stats(w->gb_upper, &s);
        json_object_set_new(stats, "gb_upper",
                            json_pack("{s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:i,s:i,s:I,s:I,s:I,s:I}", "devices", (int)s.devices, "online",
                                      (int)s.online, "streams", (int)s.streams, "pending_queries",
                                      (int)s.pending_queries, "registers", (json_int_t)s.registers, "keepalives",
                                      (json_int_t)s.keepalives, "messages", (json_int_t)s.messages, "refused",
                                      (json_int_t)s.refused, "catalog_queued", (int)s.catalog_queued,
                                      "catalog_in_flight", (int)s.catalog_in_flight, "catalog_started",
                                      (json_int_t)s.catalog_started, "catalog_paused", (json_int_t)s.catalog_paused, "flv_skips",
                                      (json_int_t)s.flv_skips, "flv_dropped", (json_int_t)s.flv_dropped));
        if (w->gb_mirror) { /* play across nodes (issue 16) */
            json_t *o = json_object_get(stats, "gb_upper");
            json_object_set_new(o, "remote_plays", json_integer((json_int_t)s.remote_plays));
            json_object_set_new(o, "remote_play_failures", json_integer((json_int_t)s.remote_play_failures));
            json_object_set_new(o, "remote_streams_node_lost", json_integer((json_int_t)s.remote_streams_node_lost));
            json_object_set_new(o, "peer_relays", json_integer((json_int_t)s.peer_relays));
            json_object_set_new(o, "peer_refused", json_integer((json_int_t)s.peer_refused));
            json_object_set_new(o, "node_queries", json_integer((json_int_t)s.node_queries));
            json_object_set_new(o, "node_query_failures", json_integer((json_int_t)s.node_query_failures));
            json_object_set_new(o, "node_queries_pending", json_integer((json_int_t)s.node_queries_pending));
            json_object_set_new(o, "peer_queries", json_integer((json_int_t)s.peer_queries));
        }
    }
    if (w->gb_lower) gb_lower_stats_json(w->gb_lower, stats);
}
