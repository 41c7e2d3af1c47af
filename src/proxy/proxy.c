/* proxy.c — request routing for the proxy and redirect roles (RFC 3261
 * §16.3-§16.5, §8.3): validation (416, 483, 482, 420), Route pre-processing
 * (loose routing, our Record-Route popped), the target set from the
 * location service (404 unknown, 480 no binding), the redirect answer (302),
 * and the stateless paths: ACK for 2xx and stray 2xx retransmissions.
 * Forking and response handling live in fork.c. */
#include "proxy/proxy.h"
#include "sip/sip_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "proxy/pike.h"
#include "proxy/proxy_int.h"
#include "registrar/cluster.h"
#include "registrar/location.h"
#include "registrar/registrar.h"
#include "registrar/users.h"
#include "store/store.h"
#include "txn/txn.h"
#include "ua/ua.h"

/* ---- small helpers ---- */

static bool uri_is_local(const struct proxy *p, const struct sip_uri *uri, const struct transport_rx *rx,
                         bool check_port)
{
    return p->d.uri_is_local(p->d.uri_is_local_arg, uri, rx, check_port);
}

typedef int (*respond_fn)(struct txn *, int, const char *, str_t, const str_t *, size_t, str_t, str_t);

static void reply_with(struct proxy *p, struct txn *st, int status, const char *reason, str_t extra,
                       respond_fn respond)
{
    const struct sip_msg *req = txn_request(st);
    const struct transport_rx *ri = txn_rx_info(st);
    if (!req || !ri) return;
    char src[TRANSPORT_ADDR_TEXT];
    snprintf(src, sizeof(src), "%s", ri->src_text);
    char tag[UA_TAG_SIZE];
    ua_new_tag(p->d.ua, tag);
    char server[96];
    str_t lines[2];
    size_t n = 0;
    if (p->d.local->user_agent[0]) {
        snprintf(server, sizeof(server), "Server: %s", p->d.local->user_agent);
        lines[n++] = str_from_cstr(server);
    }
    if (extra.len) lines[n++] = extra;
    int rc = respond(st, status, reason, req->to.tag.len ? STR_NULL : str_from_cstr(tag), lines, n, STR_NULL,
                     STR_NULL);
    if (rc < 0)
        log_warn("proxy: cannot send %d to %s: %s", status, src, strerror(-rc));
}

/* The final of a request we forwarded (fork.c): stateful, its caller may
 * retransmit the INVITE and must not start a second call. */
void proxy_reply(struct proxy *p, struct txn *st, int status, const char *reason, str_t extra)
{
    reply_with(p, st, status, reason, extra, txn_respond);
}

/* A refusal before forwarding (404, 407, 403, 483, ...): txn_reject sends it
 * once and keeps no state for a request from outside a dialog (issue 9). */
static void proxy_reject(struct proxy *p, struct txn *st, int status, const char *reason, str_t extra)
{
    reply_with(p, st, status, reason, extra, txn_reject);
}

static void refuse(struct proxy *p, struct txn *st, const struct transport_rx *rx, int status, const char *reason,
                   str_t extra, const char *why)
{
    /* Anyone can make us refuse (404, 403 Relaying Forbidden, 483, ...):
     * at most LOG_RATELIMIT_BURST lines a second per status (base/log). */
    if (log_get_level() >= LOG_WARN)
        log_write_ratelimited(&p->refuse_log[(unsigned)status % PROXY_REFUSE_LOG_KEYS], LOG_WARN,
                              "proxy: %d %s to %.*s from %s: %s", status, reason, STR_FMT(rx->msg->method_name),
                              rx->src_text, why);
    proxy_reject(p, st, status, reason, extra);
}

/* refuse() for what any stranger can send in a flood (bad credentials): the
 * line at most LOG_RATELIMIT_BURST a second (base/log). */
static void refuse_rl(struct proxy *p, struct txn *st, const struct transport_rx *rx, int status, const char *reason,
                      const char *why)
{
    log_warn_rl("proxy: %d %s to %.*s from %s: %s", status, reason, STR_FMT(rx->msg->method_name), rx->src_text, why);
    proxy_reject(p, st, status, reason, STR_NULL);
}

/* ---- per-source rate limit ([proxy] pike_*, pike.h) ---- */

/* One line per source and window (PROXY_PIKE_REFUSE_FIRST), and at most
 * LOG_RATELIMIT_BURST a second in all (base/log): a flood from many sources
 * must not flood the log. */
static void pike_log(struct proxy *p, const struct transport_rx *rx, const struct sockaddr_storage *phone)
{
    const struct proxy_config *cfg = &p->cfg;
    char behind[TRANSPORT_ADDR_TEXT + 32] = "";
    if (phone) {
        char t[TRANSPORT_ADDR_TEXT];
        transport_addr_text(phone, t, sizeof(t));
        snprintf(behind, sizeof(behind), " (phone %s behind the edge)", t);
    }
    log_warn_rl("proxy: 503 to %.*s from %s%s: more than %u requests in %u s ([proxy] pike_limit), refused until "
                "the window ends",
                STR_FMT(rx->msg->method_name), rx->src_text, behind, cfg->pike_limit, cfg->pike_window_s);
}

static bool same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return a->ss_family == AF_INET6 && !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                                               &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
}

/* Counts a request the proxy is about to route against its source's
 * allowance; trusted sources are exempt. false: answered 503 here. */
static bool pike_allows(struct proxy *p, struct txn *st, const struct transport_rx *rx)
{
    const struct sockaddr *src = (const struct sockaddr *)&rx->src;
    if (!p->pike || (p->cfg.trusted_count && config_cidr_match(p->cfg.trusted, p->cfg.trusted_count, src)))
        return true;
    /* Edge mode: the registrar behind us sends every phone's calls. */
    if (p->edge && p->edge_addr.ss_family && same_ip(&p->edge_addr, &rx->src)) return true;
    /* [proxy] trusted_edges: a phone behind an edge counts on its own. */
    struct sockaddr_storage phone;
    bool behind = digest_edge_peer(p->cfg.trusted_edges, p->cfg.trusted_edges_count, rx, &phone);
    if (behind) src = (const struct sockaddr *)&phone;
    uint64_t now = timer_now(p->d.timers);
    enum proxy_pike_verdict v = proxy_pike_check(p->pike, src, now);
    if (v == PROXY_PIKE_PASS) return true;
    p->stats.pike_refused++;
    if (v == PROXY_PIKE_REFUSE_FIRST) pike_log(p, rx, behind ? &phone : NULL);
    /* Stateless where the transaction layer allows it: a flood keeps no
     * transaction records (RFC 3261 §8.2.7). */
    char tag[UA_TAG_SIZE], ra[40];
    ua_new_tag(p->d.ua, tag);
    snprintf(ra, sizeof(ra), "Retry-After: %u", p->cfg.pike_window_s);
    str_t line = str_from_cstr(ra);
    int rc = txn_respond_stateless(st, 503, "Too Many Requests", rx->msg->to.tag.len ? STR_NULL : str_from_cstr(tag),
                                   &line, 1, STR_NULL, STR_NULL);
    if (rc < 0) log_debug("proxy: 503 to %s not sent: %s", rx->src_text, strerror(-rc));
    return false;
}

static bool wildcard_host(const char *h)
{
    return !h[0] || !strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !strcmp(h, "[::]");
}

static void remember_via_host(struct proxy *p, const char *h)
{
    for (int i = 0; i < 4; i++) {
        if (!strcmp(p->via_hosts[i], h)) return;
        if (!p->via_hosts[i][0]) {
            snprintf(p->via_hosts[i], sizeof(p->via_hosts[i]), "%s", h);
            return;
        }
    }
}

void proxy_via_host(const struct proxy *p, const struct transport_rx *rx, char *out, size_t cap)
{
    const char *local_host = p->d.local->host;
    if (!wildcard_host(local_host) || !rx) {
        sip_host_for_header(local_host[0] ? local_host : "127.0.0.1", out, cap); /* "[::1]" for ::1 */
        return;
    }
    char h[INET6_ADDRSTRLEN];
    const struct sockaddr_storage *a = &rx->local;
    if (a->ss_family == AF_INET && inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, h, sizeof(h)))
        snprintf(out, cap, "%s", h);
    else if (a->ss_family == AF_INET6 && inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, h, sizeof(h)))
        snprintf(out, cap, "[%s]", h);
    else
        snprintf(out, cap, "127.0.0.1");
    remember_via_host((struct proxy *)p, out);
}

bool proxy_via_is_ours(void *arg, const struct sip_via *v)
{
    struct proxy *p = arg;
    struct sip_uri u = {.scheme = SIP_SCHEME_SIP, .host = v->host, .port = v->port};
    if (uri_is_local(p, &u, NULL, true)) return true;
    for (int i = 0; i < 4 && p->via_hosts[i][0]; i++)
        if (str_ieq_cstr(v->host, p->via_hosts[i])) {
            struct sip_uri l = {.scheme = SIP_SCHEME_SIP, .host = str_from_cstr(p->d.local->host), .port = v->port};
            /* same host as a wildcard listener: the port decides */
            if (uri_is_local(p, &l, NULL, true) || wildcard_host(p->d.local->host)) return true;
        }
    return false;
}

bool proxy_sips_demanded(const struct sip_msg *m)
{
    if (m->ruri.scheme == SIP_SCHEME_SIPS) return true;
    uint32_t idx;
    str_t entry;
    struct sip_name_addr na;
    return sip_edit_first_entry(m, SIP_HDR_ROUTE, &idx, &entry) && sip_name_addr_parse(entry, &na) == 0 &&
           na.uri.scheme == SIP_SCHEME_SIPS;
}

static bool dialog_creating(enum sip_method m)
{
    return m == SIP_INVITE || m == SIP_SUBSCRIBE || m == SIP_REFER;
}

/* ---- flows (RFC 5626 §5.3: reuse the connection a UA registered over) ---- */

enum binding_reach {
    REACH_CONTACT,  /* send where the Contact (or Path) says */
    REACH_FLOW,     /* over the flow written to dest */
    REACH_NONE,     /* nowhere: a WebSocket client whose connection is gone */
};

/* How a binding is reached. A connection-oriented binding (TCP, TLS, WS,
 * WSS) over the connection it registered on; a TCP/TLS one whose
 * connection is gone by its Contact, but a WS/WSS one has no other way in:
 * its Contact host is a made-up ".invalid" name (RFC 7118 §5) and nobody
 * connects to a browser. Such a flow is given without an address, so that
 * the transport never opens a new connection for it. UDP behind NAT: its
 * source address. */
static enum binding_reach binding_flow(const struct location_binding *b, struct transport_dest *d)
{
    memset(d, 0, sizeof(*d));
    if (b->path[0]) return REACH_CONTACT; /* reach it through its Path */
    size_t alen = b->addr.sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                  : b->addr.sa.sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                    : 0;
    if (b->transport >= SIP_TRANSPORT_COUNT) return REACH_CONTACT;
    enum sip_transport proto = (enum sip_transport)b->transport; /* numbered alike (location.h) */
    if (sip_transport_is_ws(proto)) {
        if (!b->conn_id || (b->flags & LOCATION_FLAG_TRANSPORT_LOST)) return REACH_NONE;
        d->proto = proto;
        d->conn_id = b->conn_id;
        return REACH_FLOW;
    }
    if (sip_transport_is_stream(proto)) {
        if (!b->conn_id || !alen) return REACH_CONTACT; /* flow gone: connect to the contact */
        d->proto = proto;
        d->conn_id = b->conn_id;
    } else {
        if (!alen || !(b->flags & LOCATION_FLAG_NAT)) return REACH_CONTACT; /* not behind NAT: to the Contact */
        d->proto = SIP_TRANSPORT_UDP;
    }
    memcpy(&d->addr, &b->addr, alen);
    return REACH_FLOW;
}

bool proxy_flow_for_uri(struct proxy *p, const struct sip_uri *uri, struct transport_dest *dest)
{
    char key[LOCATION_MAX_AOR];
    if (!p->d.location || registrar_aor_key(uri, key, sizeof(key)) < 0) return false;
    const struct location_binding *bs[PROXY_MAX_BRANCHES];
    size_t n = location_lookup(p->d.location, str_from_cstr(key), bs, PROXY_MAX_BRANCHES);
    if (n > PROXY_MAX_BRANCHES) n = PROXY_MAX_BRANCHES;
    for (size_t i = 0; i < n; i++) {
        bool same = str_eq_cstr(uri->raw, bs[i]->contact);
        if (!same) {
            struct sip_uri u;
            same = sip_uri_parse(str_from_cstr(bs[i]->contact), &u) == 0 && sip_uri_equal(&u, uri);
        }
        if (same) return binding_flow(bs[i], dest) == REACH_FLOW;
    }
    return false;
}

/* ---- routing (RFC 3261 §16.4, §16.6 steps 6-7) ---- */

static bool route_entry_uri(str_t entry, struct sip_name_addr *na)
{
    return sip_name_addr_parse(entry, na) == 0 && !na->star;
}

/* A flow named by a flow token in one of our Route entries. */
struct route_flow {
    bool found;                       /* dest is the flow to send on */
    bool path;                        /* named by a Path token (edge mode) */
    bool bad;                         /* a token we did not make (or altered) */
    bool gone;                        /* a Path token of ours naming a connection of an earlier run */
    bool from_peer;                   /* our Route entry had the cluster's peer mark */
    struct transport_dest dest;
};

/* RFC 5626 §5.3: our Route entry u may carry a flow token (user part, with
 * ;ob). A token naming the flow the request arrived on is ignored: the
 * request goes the other way, by the rest of its route or its R-URI. */
static void take_flow_token(struct proxy *p, const struct sip_uri *u, const struct transport_rx *rx,
                            struct route_flow *rf)
{
    if (!rf || !u->user.len || !sip_param_get(u->params, "ob", NULL)) return;
    if (u->user.len >= 2 && u->user.s[0] == 'p' && u->user.s[1] == 't') {
        /* A Path token (edge mode): a connection, or a UDP client's address. */
        struct transport_dest d;
        int rc = proxy_path_token_parse(&p->flow_key, u->user, &d);
        if (rc < 0) {
            rf->bad = true;
            return;
        }
        if (rc > 0) { /* ours, from before a restart: its connection died with that run */
            rf->gone = true;
            return;
        }
        if (sip_transport_is_stream(d.proto) ? sip_transport_is_stream(rx->proto) && rx->conn_id == d.conn_id
                                             : rx->proto == d.proto && transport_addr_equal(&rx->src, &d.addr))
            return; /* the client's own request: it goes the other way */
        rf->found = true;
        rf->path = true;
        rf->dest = d;
        return;
    }
    enum sip_transport proto;
    uint64_t id;
    if (proxy_flow_token_parse(&p->flow_key, u->user, &proto, &id) != 0) {
        rf->bad = true;
        return;
    }
    if (sip_transport_is_stream(rx->proto) && rx->conn_id == id) return;
    rf->found = true;
    memset(&rf->dest, 0, sizeof(rf->dest));
    rf->dest.proto = proto;
    rf->dest.conn_id = id; /* no address: a gone flow is never reopened */
}

/* §16.4: undo a strict router's rewrite, then pop our own Route entries
 * (two when we double record-routed), noting a flow token in them (rf may
 * be NULL). Returns whether one of ours was there. */
static bool preprocess_routes(struct proxy *p, struct sip_msg *m, arena_t *a, const struct transport_rx *rx,
                              struct route_flow *rf)
{
    if (rf) memset(rf, 0, sizeof(*rf));
    bool popped = false;
    uint32_t idx;
    str_t entry;
    struct sip_name_addr na;
    if (m->ruri.user.len == 0 && m->ruri.lr && uri_is_local(p, &m->ruri, rx, true) &&
        sip_edit_last_entry(m, SIP_HDR_ROUTE, &idx, &entry) && route_entry_uri(entry, &na)) {
        if (sip_msg_set_ruri(m, a, na.uri_raw) == 0) {
            sip_edit_pop_last_entry(m, SIP_HDR_ROUTE);
            popped = true;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (!sip_edit_first_entry(m, SIP_HDR_ROUTE, &idx, &entry) || !route_entry_uri(entry, &na)) break;
        if (!uri_is_local(p, &na.uri, rx, true)) break;
        take_flow_token(p, &na.uri, rx, rf);
        /* [redis] cluster_route: a peer node sent this to us by our Route
         * with its mark; nothing of it when the cluster mode is off. */
        if (rf && p->d.cluster && sip_param_get(na.uri.params, CLUSTER_PEER_PARAM, NULL)) rf->from_peer = true;
        sip_edit_pop_first_entry(m, SIP_HDR_ROUTE);
        popped = true;
    }
    return popped;
}

int proxy_next_hop(struct proxy *p, struct sip_msg *m, arena_t *a, const struct proxy_target *t,
                   struct transport_dest *dest, char *host, size_t cap, uint16_t *port)
{
    uint32_t idx;
    str_t entry;
    struct sip_name_addr na;
    if (sip_edit_first_entry(m, SIP_HDR_ROUTE, &idx, &entry)) {
        if (!route_entry_uri(entry, &na)) return -1;
        if (!na.uri.lr) {
            /* §16.6 step 6: a strict router gets the Route as its R-URI and
             * the R-URI goes to the end of the Route set. */
            str_t old = arena_printf(a, "<%.*s>", STR_FMT(m->ruri_raw));
            str_t next = arena_strdup(a, na.uri_raw);
            if (!old.s || !next.s || sip_msg_add_header(m, a, STR_LIT("Route"), old) != 0) return -1;
            sip_edit_pop_first_entry(m, SIP_HDR_ROUTE);
            if (sip_msg_set_ruri(m, a, next) != 0) return -1;
            return proxy_uri_dest(&m->ruri, dest, host, cap, port);
        }
        return proxy_uri_dest(&na.uri, dest, host, cap, port);
    }
    if (t && t->use_flow) {
        *dest = t->flow;
        *port = transport_addr_port(&dest->addr);
        return 0;
    }
    if (proxy_flow_for_uri(p, &m->ruri, dest)) {
        *port = transport_addr_port(&dest->addr);
        return 0;
    }
    return proxy_uri_dest(&m->ruri, dest, host, cap, port);
}

/* ---- redirect server (RFC 3261 §8.3.4, §21.3.3) ---- */

static void redirect(struct proxy *p, struct txn *st, const struct location_binding *const *bs, size_t n)
{
    sbuf_t *b = &p->sb;
    sbuf_clear(b);
    uint64_t now = timer_now(p->d.timers);
    for (size_t i = 0; i < n; i++) {
        uint64_t left = bs[i]->expires_ms > now ? (bs[i]->expires_ms - now + 999) / 1000 : 0;
        if (i) sbuf_append_cstr(b, "\r\n");
        sbuf_printf(b, "Contact: <%s>", bs[i]->contact);
        if (bs[i]->q1000 < 1000) sbuf_printf(b, ";q=0.%03u", (unsigned)bs[i]->q1000);
        sbuf_printf(b, ";expires=%llu", (unsigned long long)left);
    }
    if (b->failed) {
        sbuf_free(b);
        sbuf_init(b);
        proxy_reject(p, st, 500, "Server Internal Error", STR_NULL);
        return;
    }
    p->stats.redirected++;
    proxy_reject(p, st, 302, "Moved Temporarily", sbuf_str(b));
}

/* ---- requests ---- */

/* The Warning of a refused sips: request (RFC 5630 §5.3, warn-code 380
 * registered by its §9), in the arena. */
str_t proxy_sips_warning(struct proxy *p)
{
    const struct sip_local *l = p->d.local;
    char agent[sizeof(l->domain) + 2];
    sip_host_for_header(l->domain[0] ? l->domain : l->host[0] ? l->host : "127.0.0.1", agent, sizeof(agent));
    return arena_printf(&p->arena, "Warning: 380 %s \"SIPS Not Allowed\"", agent);
}

/* RFC 5630 §5.3: a sips: request goes only to a binding that asked for
 * sips (a sips: Contact) and is reached securely (registered over TLS or
 * WSS; the registrar takes a sips: Contact over nothing else). */
static bool binding_takes_sips(const struct location_binding *b, bool contact_sips)
{
    return contact_sips && b->transport < SIP_TRANSPORT_COUNT &&
           sip_transport_is_secure((enum sip_transport)b->transport);
}

static bool contact_is_sips(const char *contact)
{
    return !strncasecmp(contact, "sips:", 5);
}

/* The target for binding b of a request whose R-URI scheme is sips or not.
 * false: b cannot be reached (a WebSocket client whose flow is gone). */
static bool binding_target(struct proxy *p, const struct location_binding *b, bool sips, struct proxy_target *t)
{
    *t = (struct proxy_target){
        .path = b->path[0] ? arena_strdup(&p->arena, str_from_cstr(b->path)) : STR_NULL,
    };
    enum binding_reach reach = binding_flow(b, &t->flow);
    if (reach == REACH_NONE) return false;
    t->use_flow = reach == REACH_FLOW;
    /* RFC 5626 §5.3: a client only its flow reaches gets a flow token in
     * our Record-Route, so that requests later in the dialog find it: a
     * WebSocket client, or one that registered as outbound (reg-id). */
    t->flow_token = t->use_flow && sip_transport_is_stream(t->flow.proto) &&
                    (sip_transport_is_ws(t->flow.proto) || b->reg_id);
    const char *c = b->contact;
    if (!sips && contact_is_sips(c)) {
        /* RFC 5630 §5.3: a sip: request to a sips: Contact goes with a sip:
         * R-URI, over TLS all the same: over its flow, else to the address
         * the sips: Contact names. A Contact naming a host that needs a DNS
         * lookup keeps its sips: R-URI (the lookup then yields a TLS hop):
         * a sip: R-URI there would be sent over UDP. */
        struct sip_uri u;
        char host[PROXY_HOST_MAX];
        uint16_t port;
        if (!t->use_flow && !b->path[0] && sip_uri_parse(str_from_cstr(c), &u) == 0 &&
            proxy_uri_dest(&u, &t->flow, host, sizeof(host), &port) == 0)
            t->use_flow = true;
        if (t->use_flow || b->path[0]) {
            t->ruri = arena_printf(&p->arena, "sip:%s", c + 5);
            return true;
        }
    }
    t->ruri = arena_strdup(&p->arena, str_from_cstr(c));
    return true;
}

/* A binding that came through an edge (its Path): remembered by the
 * branch, so that the edge's 430 Flow Failed removes it (fork.c). */
static void binding_remember(struct proxy *p, const struct location_binding *b, struct proxy_target *t)
{
    if (!b->path[0]) return;
    str_t aor = arena_strdup(&p->arena, str_from_cstr(b->aor));
    str_t contact = arena_strdup(&p->arena, str_from_cstr(b->contact));
    if (!aor.s || !contact.s) return;
    t->binding_aor = aor.s;
    t->binding_contact = contact.s;
}

/* A MESSAGE outside a dialog may be kept for its user (offline_msg.h). */
static bool offline_candidate(const struct proxy *p, const struct sip_msg *req)
{
    return p->d.offline && req->method == SIP_MESSAGE && req->to.tag.len == 0;
}

bool proxy_offline_offer(struct proxy *p, struct txn *st, const struct sip_msg *req, const char *aor)
{
    const char *reason = NULL;
    int status = p->d.offline(p->d.offline_arg, req, aor, &reason);
    if (status == 0) return false;
    if (status == 202) reason = "Accepted";
    proxy_reply(p, st, status, reason, STR_NULL);
    return true;
}

/* ---- between nodes ([redis] cluster_route, registrar/cluster.h) ---- */

/* A request waiting for the cluster's answer. Its server transaction keeps
 * the request (txn_request) and where it came from (txn_rx_info). */
struct proxy_wait {
    struct proxy_wait *next, *prev;
    struct proxy *p;
    struct txn *st;
    struct cluster_lookup *lookup;
};

static void route_local(struct proxy *p, struct txn *st, const struct transport_rx *rx, struct sip_msg *req,
                        const struct cluster_result *remote, bool from_peer);

static void wait_unlink(struct proxy *p, struct proxy_wait *w)
{
    if (w->prev) w->prev->next = w->next;
    else p->waits = w->next;
    if (w->next) w->next->prev = w->prev;
    p->nwaits--;
}

static struct proxy_wait *wait_find(struct proxy *p, const struct txn *st)
{
    for (struct proxy_wait *w = p->waits; w; w = w->next)
        if (w->st == st) return w;
    return NULL;
}

/* The cluster answered (or failed): the request is routed again from its
 * server transaction, as it was when it arrived, with the answer. */
static void on_cluster_answer(void *arg, const struct cluster_result *r)
{
    struct proxy_wait *w = arg;
    struct proxy *p = w->p;
    struct txn *st = w->st;
    wait_unlink(p, w);
    free(w);
    const struct transport_rx *rx = txn_rx_info(st);
    if (!rx || !rx->msg) return; /* answered meanwhile */
    arena_reset(&p->arena);
    struct sip_msg req;
    if (sip_edit_clone(rx->msg, &p->arena, &req) != 0) {
        refuse(p, st, rx, 500, "Server Internal Error", STR_NULL, "out of memory");
        return;
    }
    struct route_flow rf;
    preprocess_routes(p, &req, &p->arena, rx, &rf);
    if (p->cfg.authenticate && p->d.digest.consume)
        p->d.digest.consume(p->d.digest.arg, &req, SIP_HDR_PROXY_AUTHORIZATION);
    route_local(p, st, rx, &req, r, false);
}

/* Asks the cluster where aor is. true: the request waits (answered by
 * on_cluster_answer); false: go on with *now (answered from the cache, or
 * now->status < 0 when the lookup was refused). */
static bool cluster_ask(struct proxy *p, struct txn *st, const struct transport_rx *rx, const char *aor,
                        struct cluster_result *now)
{
    memset(now, 0, sizeof(*now));
    p->stats.cluster_lookups++;
    struct proxy_wait *w = calloc(1, sizeof(*w));
    int rc = w ? cluster_lookup(p->d.cluster, aor, now, on_cluster_answer, w, &w->lookup) : -ENOMEM;
    if (rc == 0) {
        w->p = p;
        w->st = st;
        w->next = p->waits;
        if (p->waits) p->waits->prev = w;
        p->waits = w;
        p->nwaits++;
        return true;
    }
    free(w);
    if (rc < 0) {
        now->status = rc;
        log_warn_rl("proxy: cluster lookup of %s for %.*s from %s refused (%s; %u waiting): answered locally", aor,
                    STR_FMT(rx->msg->method_name), rx->src_text, strerror(-rc), p->nwaits);
    }
    return false;
}

/* Forwards req to the nodes of r (r->n > 0): to each its Route with the
 * peer mark, the Request-URI the user at that node. */
static void forward_to_nodes(struct proxy *p, struct txn *st, const struct transport_rx *rx, struct sip_msg *req,
                             const char *aor, const struct cluster_result *r)
{
    struct proxy_target t[CLUSTER_MAX_HITS];
    size_t k = 0;
    for (size_t i = 0; i < r->n && i < CLUSTER_MAX_HITS; i++) {
        t[k] = (struct proxy_target){
            .ruri = arena_printf(&p->arena, "sip:%.*s@%s", STR_FMT(req->ruri.user), r->hits[i].hostport),
            .path = arena_strdup(&p->arena, str_from_cstr(r->hits[i].route)),
        };
        if (!t[k].ruri.s || !t[k].path.s) {
            refuse(p, st, rx, 500, "Server Internal Error", STR_NULL, "out of memory");
            return;
        }
        log_debug("proxy: %.*s for %s from %s goes to node %s", STR_FMT(req->method_name), aor, rx->src_text,
                  r->hits[i].node);
        k++;
    }
    p->stats.cluster_forwarded++;
    proxy_fork(p, st, rx, req, t, k, dialog_creating(req->method) && req->to.tag.len == 0,
               offline_candidate(p, req) ? aor : NULL);
}

/* §16.5: the target set of a request for our domain. remote: the cluster's
 * answer once asked (NULL: not asked yet); from_peer: a peer node sent it,
 * local bindings only. */
static void route_local(struct proxy *p, struct txn *st, const struct transport_rx *rx, struct sip_msg *req,
                        const struct cluster_result *remote, bool from_peer)
{
    char aor[LOCATION_MAX_AOR];
    if (registrar_aor_key(&req->ruri, aor, sizeof(aor)) < 0) {
        p->stats.not_found++;
        refuse(p, st, rx, 404, "Not Found", STR_NULL, "no usable user part in the Request-URI");
        return;
    }
    const struct location_binding *bs[PROXY_MAX_BRANCHES];
    size_t n = p->d.location ? location_lookup(p->d.location, str_from_cstr(aor), bs, PROXY_MAX_BRANCHES) : 0;
    if (n > PROXY_MAX_BRANCHES) n = PROXY_MAX_BRANCHES;
    /* [registrar] max_contacts also bounds the fan-out when the store holds
     * more (bindings made before the limit was set): issue 9. */
    if (p->max_contacts > 0 && n > (size_t)p->max_contacts) n = (size_t)p->max_contacts;
    /* [redis] cluster_route: no binding here, maybe on another node (not
     * for sips:, whose every hop must be TLS; not in redirect mode). */
    struct cluster_result now;
    if (n == 0 && p->d.cluster && !remote && !from_peer && !p->redirect && req->ruri.scheme == SIP_SCHEME_SIP) {
        if (cluster_ask(p, st, rx, aor, &now)) return;
        remote = &now;
    }
    if (n == 0 && remote && remote->n) {
        forward_to_nodes(p, st, rx, req, aor, remote);
        return;
    }
    if (n == 0 && remote && remote->status < 0) p->stats.cluster_fallbacks++;
    if (n == 0) {
        if (p->d.users && users_find(p->d.users, str_from_cstr(aor))) {
            if (offline_candidate(p, req) && proxy_offline_offer(p, st, req, aor)) return;
            p->stats.unavailable++;
            log_info_rl("proxy: 480 to %.*s from %s: %s has no binding", STR_FMT(req->method_name), rx->src_text, aor);
            proxy_reject(p, st, 480, "Temporarily Unavailable", STR_NULL);
        } else {
            p->stats.not_found++;
            log_info_rl("proxy: 404 to %.*s from %s: no user %s", STR_FMT(req->method_name), rx->src_text, aor);
            proxy_reject(p, st, 404, "Not Found", STR_NULL);
        }
        return;
    }
    /* RFC 5630 §5.3: a sips: request only to the bindings that take sips;
     * none: 480 with warn-code 380, never a downgrade. */
    bool sips = req->ruri.scheme == SIP_SCHEME_SIPS;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!sips || binding_takes_sips(bs[i], contact_is_sips(bs[i]->contact))) bs[k++] = bs[i];
    if (k == 0) {
        p->stats.unavailable++;
        log_info_rl("proxy: 480 to %.*s from %s: sips: request and no binding of %s takes sips (RFC 5630 §5.3)",
                    STR_FMT(req->method_name), rx->src_text, aor);
        proxy_reject(p, st, 480, "SIPS Not Allowed", proxy_sips_warning(p));
        return;
    }
    n = k;
    if (p->redirect) {
        /* A WebSocket client is reached only on its own connection (its
         * Contact names a .invalid host, RFC 7118 §5.2): no use to a caller
         * sent elsewhere. */
        k = 0;
        for (size_t i = 0; i < n; i++)
            if (bs[i]->transport != LOCATION_TRANSPORT_WS && bs[i]->transport != LOCATION_TRANSPORT_WSS) bs[k++] = bs[i];
        if (k == 0) {
            p->stats.unavailable++;
            proxy_reject(p, st, 480, "Temporarily Unavailable", STR_NULL);
            return;
        }
        redirect(p, st, bs, k);
        return;
    }
    struct proxy_target t[PROXY_MAX_BRANCHES];
    k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!binding_target(p, bs[i], sips, &t[k])) continue; /* its WebSocket is gone */
        if (!t[k].ruri.s) {
            refuse(p, st, rx, 500, "Server Internal Error", STR_NULL, "out of memory");
            return;
        }
        binding_remember(p, bs[i], &t[k]);
        k++;
    }
    if (k == 0) {
        if (offline_candidate(p, req) && proxy_offline_offer(p, st, req, aor)) return;
        p->stats.unavailable++;
        log_info_rl("proxy: 480 to %.*s from %s: no binding of %s is reachable (their WebSocket flows are gone)",
                    STR_FMT(req->method_name), rx->src_text, aor);
        proxy_reject(p, st, 480, "Temporarily Unavailable", STR_NULL);
        return;
    }
    proxy_fork(p, st, rx, req, t, k, dialog_creating(req->method) && req->to.tag.len == 0,
               offline_candidate(p, req) ? aor : NULL);
}

/* 407 with one Proxy-Authenticate per offered algorithm. */
static void challenge(struct proxy *p, struct txn *st, const struct transport_rx *rx, bool stale)
{
    sbuf_t *b = &p->sb;
    sbuf_clear(b);
    if (p->d.digest.challenge(p->d.digest.arg, true, stale, rx, b) != 0) {
        refuse(p, st, rx, 500, "Server Internal Error", STR_NULL, "cannot build a challenge (realm empty?)");
        return;
    }
    proxy_reject(p, st, 407, "Proxy Authentication Required", sbuf_lines(b));
}

/* [proxy] authenticate: a new request that claims one of our users as its
 * sender (From in our domain), or that we would relay to another domain,
 * must carry Proxy-Authorization for our realm (RFC 3261 §22.3); with
 * [auth] match_user the digest user must be the From user. Requests from
 * other domains to our users (incoming calls), in-dialog requests and
 * requests from [proxy] trusted sources pass.
 * Our realm's credentials are taken out of req, the copy that goes on.
 * 1: authenticated or not needed; 0: answered (407/403/400). */
static int proxy_authenticate(struct proxy *p, struct txn *st, const struct transport_rx *rx, struct sip_msg *req,
                              bool to_foreign)
{
    const struct sip_msg *m = rx->msg;
    if (!p->cfg.authenticate || m->to.tag.len) return 1;
    /* [proxy] trusted: gateways and peer proxies are not challenged. */
    if (p->cfg.trusted_count &&
        config_cidr_match(p->cfg.trusted, p->cfg.trusted_count, (const struct sockaddr *)&rx->src))
        return 1;
    bool from_local = (m->from.uri.scheme == SIP_SCHEME_SIP || m->from.uri.scheme == SIP_SCHEME_SIPS) &&
                      uri_is_local(p, &m->from.uri, rx, false);
    if (!from_local && !to_foreign) return 1;
    struct digest_check_result res;
    switch (p->d.digest.check(p->d.digest.arg, rx, SIP_HDR_PROXY_AUTHORIZATION, &res)) {
    case DIGEST_CHECK_OK: break;
    case DIGEST_CHECK_NONE:
        p->stats.challenged++;
        log_debug("proxy: 407 to %.*s from %s: %s", STR_FMT(m->method_name), rx->src_text, res.why);
        challenge(p, st, rx, false);
        return 0;
    case DIGEST_CHECK_STALE:
        p->stats.challenged++;
        log_info_rl("proxy: %s from %s: re-challenging", res.why, rx->src_text);
        challenge(p, st, rx, true);
        return 0;
    case DIGEST_CHECK_FAILED:
        p->stats.auth_failed++;
        if (res.log) log_warn_rl("proxy: 407 to %.*s from %s: %s", STR_FMT(m->method_name), rx->src_text, res.why);
        challenge(p, st, rx, false);
        return 0;
    case DIGEST_CHECK_LOCKED:
        p->stats.auth_failed++;
        if (res.log) log_warn_rl("proxy: 403 to %.*s from %s: %s", STR_FMT(m->method_name), rx->src_text, res.why);
        proxy_reply(p, st, 403, "Too Many Failed Attempts", STR_NULL);
        return 0;
    case DIGEST_CHECK_BAD_HEADER:
        p->stats.refused++;
        refuse_rl(p, st, rx, 400, "Bad Proxy-Authorization Header", res.why);
        return 0;
    case DIGEST_CHECK_URI_MISMATCH:
        p->stats.refused++;
        refuse_rl(p, st, rx, 400, "Digest URI Mismatch", res.why);
        return 0;
    }
    if (p->match_user && from_local && !str_eq_cstr(m->from.uri.user, res.user->name)) {
        p->stats.auth_failed++;
        char why[160];
        snprintf(why, sizeof(why), "user %s may not send as %.*s@%.*s", res.user->name,
                 (int)(m->from.uri.user.len > 64 ? 64 : m->from.uri.user.len), m->from.uri.user.s,
                 (int)(m->from.uri.host.len > 64 ? 64 : m->from.uri.host.len), m->from.uri.host.s);
        refuse(p, st, rx, 403, "Forbidden", STR_NULL, why);
        return 0;
    }
    p->d.digest.consume(p->d.digest.arg, req, SIP_HDR_PROXY_AUTHORIZATION);
    return 1;
}

/* §16.3 step 5 (we support no proxy extensions). */
static bool proxy_require(const struct sip_msg *m, sbuf_t *b)
{
    struct sip_list_iter it;
    str_t item;
    bool any = false;
    sip_list_iter_init(&it, m, SIP_HDR_PROXY_REQUIRE);
    while (sip_list_iter_next(&it, &item)) {
        sbuf_append_cstr(b, any ? ", " : "Unsupported: ");
        sbuf_append_str(b, item);
        any = true;
    }
    return any;
}

/* ---- edge mode ([proxy] edge_registrar) ---- */

static bool supports_path(const struct sip_msg *m)
{
    struct sip_list_iter it;
    str_t item;
    sip_list_iter_init(&it, m, SIP_HDR_SUPPORTED);
    while (sip_list_iter_next(&it, &item))
        if (str_ieq_cstr(item, "path")) return true;
    return false;
}

/* The flow rx came in on, as a destination to send back on. */
static void flow_of(const struct transport_rx *rx, struct transport_dest *d)
{
    memset(d, 0, sizeof(*d));
    d->proto = rx->proto;
    d->addr = rx->src;
    d->listener_id = rx->listener_id;
    if (sip_transport_is_stream(rx->proto)) d->conn_id = rx->conn_id;
}

int proxy_edge_path_value(struct proxy *p, const struct transport_rx *rx, char *out, size_t cap)
{
    /* The registrar sends to our Path over the edge registrar's transport:
     * we must listen on it. */
    if (!p->d.local->port[p->edge_proto]) return -1;
    struct transport_dest flow;
    flow_of(rx, &flow);
    char tok[PROXY_PATH_TOKEN_MAX + 1];
    if (proxy_path_token_make(&p->flow_key, &flow, tok, sizeof(tok)) < 0) return -1;
    char vh[80];
    proxy_via_host(p, rx, vh, sizeof(vh));
    int n = snprintf(out, cap, "<sip:%s@%s:%u;transport=%s;lr;ob>", tok, vh, sip_local_port(p->d.local, p->edge_proto),
                     sip_transport_param(p->edge_proto));
    return n > 0 && (size_t)n < cap ? n : -1;
}

/* RFC 3327 §5.1 / RFC 5626 §5.1: a REGISTER for our domain goes to the
 * registrar behind us, our Path (naming the client's flow) on top of the
 * Path list, Supported: path added when the UA did not say it; neither
 * challenged nor record-routed here. Its answers (401 included) go back by
 * the transaction. */
static void edge_register(struct proxy *p, struct txn *st, const struct transport_rx *rx, struct sip_msg *req)
{
    char path[PROXY_PATH_TOKEN_MAX + 160];
    if (proxy_edge_path_value(p, rx, path, sizeof(path)) < 0) {
        p->stats.refused++;
        refuse(p, st, rx, 500, "Server Internal Error", STR_NULL,
               "no Path for this flow (no [sip] listen on the edge registrar's transport?)");
        return;
    }
    str_t pv = arena_strdup(&p->arena, str_from_cstr(path));
    if (!pv.s || sip_edit_insert_before(req, &p->arena, SIP_HDR_PATH, -1, STR_LIT("Path"), pv) != 0 ||
        (!supports_path(req) && sip_msg_add_header(req, &p->arena, STR_LIT("Supported"), STR_LIT("path")) != 0)) {
        refuse(p, st, rx, 500, "Server Internal Error", STR_NULL, "out of memory");
        return;
    }
    p->stats.edge_registers++;
    struct proxy_target up = {.path = str_from_cstr(p->edge_route)};
    proxy_fork(p, st, rx, req, &up, 1, false, NULL);
}

bool proxy_edge_takes(const struct proxy *p, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!p || !p->edge || !m || !m->is_request || m->method == SIP_ACK || m->method == SIP_CANCEL) return false;
    if (m->ruri.scheme != SIP_SCHEME_SIP && m->ruri.scheme != SIP_SCHEME_SIPS) return false;
    if (!uri_is_local(p, &m->ruri, rx, false)) return false;
    if (m->method == SIP_REGISTER) return true;
    return m->ruri.user.len && !m->to.tag.len;
}

int proxy_on_request(struct proxy *p, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!p || !m || !m->is_request || m->method == SIP_ACK) return 0;

    if (m->method == SIP_CANCEL) {
        /* §16.10: a CANCEL for one of our response contexts. */
        struct txn *inv = txn_find_invite_for_cancel(p->d.txn, rx);
        struct proxy_call *c = inv ? proxy_call_find(p, inv) : NULL;
        struct proxy_wait *w = inv && !c && p->waits ? wait_find(p, inv) : NULL;
        if (w) { /* still waiting for the cluster's answer: ends here */
            p->stats.cancels++;
            cluster_lookup_cancel(w->lookup);
            wait_unlink(p, w);
            free(w);
            proxy_reply(p, st, 200, "OK", STR_NULL);
            proxy_reply(p, inv, 487, "Request Terminated", STR_NULL);
            return 1;
        }
        if (!c) return 0;
        p->stats.cancels++;
        proxy_reply(p, st, 200, "OK", STR_NULL);
        arena_reset(&p->arena);
        proxy_call_cancel(c);
        return 1;
    }
    bool has_route = m->first[SIP_HDR_ROUTE] >= 0;
    bool ruri_local = uri_is_local(p, &m->ruri, rx, true);
    /* Edge mode: a REGISTER for our domain goes to the registrar behind us. */
    bool edge_reg = p->edge && m->method == SIP_REGISTER && uri_is_local(p, &m->ruri, rx, false);
    /* Addressed to this node itself (OPTIONS ping, a dialog we are in): the core's. */
    if (!edge_reg && !has_route && ruri_local && (m->ruri.user.len == 0 || m->to.tag.len)) return 0;
    if (!pike_allows(p, st, rx)) return 1;

    arena_reset(&p->arena);
    p->stats.requests++;
    if (m->ruri.scheme != SIP_SCHEME_SIP && m->ruri.scheme != SIP_SCHEME_SIPS) {
        p->stats.refused++;
        refuse(p, st, rx, 416, "Unsupported URI Scheme", STR_NULL, "Request-URI scheme");
        return 1;
    }
    if (!sip_transport_is_secure(rx->proto) && proxy_sips_demanded(m)) {
        /* RFC 3261 §26.2.2 as RFC 5630 §4 / Appendix A puts it: sips means
         * TLS on every hop, this one included. Going on would hand the next
         * hop a sips: request that already crossed the network in clear. */
        p->stats.refused++;
        refuse(p, st, rx, 480, "SIPS Not Allowed", proxy_sips_warning(p), "sips: request over a non-secure transport");
        return 1;
    }
    if (m->max_forwards == 0) {
        p->stats.too_many_hops++;
        refuse(p, st, rx, 483, "Too Many Hops", STR_NULL, "Max-Forwards is 0");
        return 1;
    }
    if (proxy_detect_loop(m, proxy_via_is_ours, p)) {
        p->stats.loops++;
        refuse(p, st, rx, 482, "Loop Detected", STR_NULL, "our Via with the same loop hash");
        return 1;
    }
    sbuf_clear(&p->sb);
    if (proxy_require(m, &p->sb)) {
        p->stats.refused++;
        char line[256];
        str_copy(line, sizeof(line), sbuf_str(&p->sb));
        refuse(p, st, rx, 420, "Bad Extension", str_from_cstr(line), "Proxy-Require");
        return 1;
    }

    struct sip_msg req;
    if (sip_edit_clone(m, &p->arena, &req) != 0) {
        refuse(p, st, rx, 500, "Server Internal Error", STR_NULL, "out of memory");
        return 1;
    }
    struct route_flow rf;
    bool popped = preprocess_routes(p, &req, &p->arena, rx, &rf);
    bool rr = dialog_creating(req.method) && req.to.tag.len == 0;
    if (rf.bad) {
        /* RFC 5626 §5.3: a flow token that fails its check is 403. */
        p->stats.refused++;
        refuse(p, st, rx, 403, "Forbidden", STR_NULL, "flow token in our Route altered or not ours");
        return 1;
    }
    if (rf.gone) {
        /* RFC 5626 §5.3: the flow a token of ours names no longer exists
         * (it died with an earlier run of this node): 430, so that the
         * registrar drops the binding. */
        p->stats.flow_failed++;
        refuse(p, st, rx, 430, "Flow Failed", STR_NULL, "the Path token names a connection of an earlier run");
        return 1;
    }
    if (edge_reg) {
        edge_register(p, st, rx, &req);
        return 1;
    }
    if (rf.found) {
        /* RFC 5626 §5.3: over the flow the token names, whatever the
         * R-URI says (a WebSocket client's Contact cannot be resolved).
         * A Path token: the registrar behind us authenticated the sender. */
        if (!rf.path && !proxy_authenticate(p, st, rx, &req, false)) return 1;
        if (rf.path) p->stats.path_routed++;
        struct proxy_target ft = {.use_flow = true, .flow = rf.dest, .by_token = true, .edge_client = rf.path};
        proxy_fork(p, st, rx, &req, &ft, 1, rr, NULL);
        return 1;
    }
    struct proxy_target keep = {0};
    bool local_target = req.first[SIP_HDR_ROUTE] < 0 && uri_is_local(p, &req.ruri, rx, true);
    bool for_us = local_target && (req.ruri.user.len == 0 || req.to.tag.len);
    if (req.first[SIP_HDR_ROUTE] >= 0) {
        /* Loose routing onward (§16.4, §16.6 step 7). */
        if (!popped && !p->cfg.allow_foreign) {
            p->stats.refused++;
            refuse(p, st, rx, 403, "Relaying Forbidden", STR_NULL, "Route set does not pass through us");
            return 1;
        }
        if (!proxy_authenticate(p, st, rx, &req, true)) return 1;
        proxy_fork(p, st, rx, &req, &keep, 1, rr, NULL);
        return 1;
    }
    if (local_target) {
        if (for_us) return 0; /* after our Route went, the request is for this node: the core answers */
        if (p->edge) {
            /* Edge mode: the location is the registrar's, and so are the
             * users (it challenges); we stay in the dialog (our
             * Record-Route, with a token facing the client). */
            p->stats.edge_outbound++;
            struct proxy_target up = {.path = str_from_cstr(p->edge_route), .edge_up = true};
            proxy_fork(p, st, rx, &req, &up, 1, rr, NULL);
            return 1;
        }
        /* A request a live peer node forwarded was authenticated there. */
        bool peer = rf.from_peer && cluster_is_node_addr(p->d.cluster, (const struct sockaddr *)&rx->src);
        if (rf.from_peer) p->stats.from_peers++;
        if (!peer && !proxy_authenticate(p, st, rx, &req, false)) return 1;
        route_local(p, st, rx, &req, NULL, rf.from_peer);
        return 1;
    }
    if (!popped && !p->cfg.allow_foreign) {
        p->stats.refused++;
        refuse(p, st, rx, 403, "Relaying Forbidden", STR_NULL, "Request-URI names another domain");
        return 1;
    }
    if (!proxy_authenticate(p, st, rx, &req, true)) return 1;
    proxy_fork(p, st, rx, &req, &keep, 1, rr, NULL);
    return 1;
}

/* ---- stateless paths ---- */

void proxy_on_ack(struct proxy *p, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!p || !m || m->method != SIP_ACK) return;
    if (m->max_forwards == 0) {
        log_info_rl("proxy: ACK from %s dropped: Max-Forwards 0", rx->src_text);
        return;
    }
    arena_reset(&p->arena);
    struct sip_msg req;
    if (sip_edit_clone(m, &p->arena, &req) != 0) return;
    if (!sip_transport_is_secure(rx->proto) && proxy_sips_demanded(m)) {
        log_info_rl("proxy: ACK from %s dropped: sips: over a non-secure transport", rx->src_text);
        return;
    }
    struct route_flow rf;
    bool popped = preprocess_routes(p, &req, &p->arena, rx, &rf);
    if (rf.bad || rf.gone) {
        log_info_rl("proxy: ACK from %s dropped: flow token in our Route %s", rx->src_text,
                    rf.bad ? "altered or not ours" : "names a connection of an earlier run");
        return;
    }
    struct proxy_target ft = {.use_flow = true, .flow = rf.dest, .by_token = true};
    if (!rf.found && req.first[SIP_HDR_ROUTE] < 0 && uri_is_local(p, &req.ruri, rx, true)) {
        log_debug("proxy: ACK from %s is for this node", rx->src_text);
        return;
    }
    if (!popped && !p->cfg.allow_foreign) {
        log_info_rl("proxy: ACK from %s dropped: not routed through us", rx->src_text);
        return;
    }
    if (sip_edit_set_max_forwards(&req, &p->arena, m->max_forwards > 0 ? m->max_forwards - 1 : 70) != 0) return;
    struct transport_dest dest;
    char host[PROXY_HOST_MAX];
    uint16_t port = 0;
    int rc = proxy_next_hop(p, &req, &p->arena, rf.found ? &ft : NULL, &dest, host, sizeof(host), &port);
    if (rc < 0) {
        log_info_rl("proxy: ACK from %s dropped: no usable next hop", rx->src_text);
        return;
    }
    if (proxy_sips_demanded(&req) && !sip_transport_is_secure(dest.proto)) {
        log_info_rl("proxy: ACK from %s dropped: its sips: next hop is not over TLS/WSS", rx->src_text);
        return;
    }
    /* §16.11: the same branch for a retransmitted ACK. */
    char branch[PROXY_BRANCH_LEN + 1];
    uint32_t idx;
    str_t top;
    if (!sip_edit_first_entry(m, SIP_HDR_VIA, &idx, &top)) return;
    proxy_make_branch(branch, sizeof(branch), proxy_loop_hash(m, top), 0);
    char vh[80];
    proxy_via_host(p, rx, vh, sizeof(vh));
    const struct sip_local *l = p->d.local;
    uint16_t vport = sip_local_port(l, dest.proto);
    str_t via = arena_printf(&p->arena, "SIP/2.0/%s %s:%u;branch=%s", transport_name(dest.proto), vh, vport, branch);
    if (!via.s || sip_msg_insert_header(&req, &p->arena, 0, STR_LIT("Via"), via) != 0) return;
    sbuf_clear(&p->sb);
    if (sip_print(&req, &p->sb) != 0 || p->sb.failed) return;
    p->stats.acks_forwarded++;
    proxy_send_stateless(p, &dest, rc == 1 ? host : NULL, port, p->sb.data, p->sb.len);
}

void proxy_forward_response_stateless(struct proxy *p, const struct sip_msg *resp, const char *src_text)
{
    uint32_t idx;
    str_t top, next;
    struct sip_via v;
    if (!sip_edit_first_entry(resp, SIP_HDR_VIA, &idx, &top) || sip_via_parse(top, &v) != 0) return;
    uint64_t h;
    if (!proxy_branch_loop_hash(v.branch, &h) || !proxy_via_is_ours(p, &v)) {
        log_debug("proxy: %d from %s dropped: top Via is not ours", resp->status, src_text);
        return;
    }
    struct sip_msg m;
    if (sip_edit_clone(resp, &p->arena, &m) != 0) return;
    sip_edit_pop_first_entry(&m, SIP_HDR_VIA);
    if (!sip_edit_first_entry(&m, SIP_HDR_VIA, &idx, &next) || sip_via_parse(next, &v) != 0) {
        log_info_rl("proxy: %d from %s dropped: no Via left to send it to", resp->status, src_text);
        return;
    }
    struct transport_dest dest;
    char host[PROXY_HOST_MAX];
    uint16_t port;
    int rc = proxy_via_dest(&v, &dest, host, sizeof(host), &port);
    if (rc < 0) return;
    sbuf_clear(&p->sb);
    if (sip_print(&m, &p->sb) != 0 || p->sb.failed) return;
    if (p->d.on_response_out) p->d.on_response_out(p->d.on_response_out_arg, p->sb.data, p->sb.len);
    p->stats.stray_forwarded++;
    proxy_send_stateless(p, &dest, rc == 1 ? host : NULL, port, p->sb.data, p->sb.len);
}

void proxy_on_stray_response(struct proxy *p, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!p || !m || m->is_request) return;
    /* §16.7 step 5 / RFC 6026: only 2xx to INVITE travel without a transaction. */
    if (m->cseq.method != SIP_INVITE || m->status < 200 || m->status >= 300) {
        log_debug("proxy: stray %d from %s dropped", m->status, rx->src_text);
        return;
    }
    arena_reset(&p->arena);
    proxy_forward_response_stateless(p, m, rx->src_text);
}

void proxy_on_server_terminated(struct proxy *p, struct txn *st)
{
    if (!p) return;
    struct proxy_wait *w = p->waits ? wait_find(p, st) : NULL;
    if (w) {
        cluster_lookup_cancel(w->lookup);
        wait_unlink(p, w);
        free(w);
    }
    struct proxy_call *c = proxy_call_find(p, st);
    if (c) proxy_call_server_gone(c);
}

/* ---- life cycle, stats ---- */

#define SECRET_NAME "edge_token_key"

static int secret_row(void *arg, const struct store_node_secret *row)
{
    if (strcmp(row->name, SECRET_NAME)) return 0;
    snprintf(arg, 65, "%s", row->value);
    return 1;
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (unsigned char)v;
    }
    return 0;
}

/* The key of our Path and flow tokens: from [proxy] edge_secret; else a
 * random key made once and kept in the store, so that tokens outlive a
 * restart (the registrar behind an edge keeps its Path until the binding
 * expires); else (no store) a random one for this run. */
static int flow_key_load(struct proxy *p, struct store *st)
{
    if (p->cfg.edge_secret[0]) {
        if (proxy_flow_key_set(&p->flow_key, (const unsigned char *)p->cfg.edge_secret, strlen(p->cfg.edge_secret)) ==
            0)
            return 0;
        log_error("proxy: cannot derive the token key from [proxy] edge_secret");
        return -1;
    }
    if (!st) {
        if (proxy_flow_key_init(&p->flow_key) == 0) return 0;
        log_error("proxy: no random bytes for the flow token key");
        return -1;
    }
    char hex[65] = "";
    unsigned char key[32];
    if (store_load_node_secrets(st, secret_row, hex) < 0 || (hex[0] && unhex(hex, key, sizeof(key)) != 0)) {
        log_error("proxy: cannot read the token key from the store");
        return -1;
    }
    if (!hex[0]) {
        struct proxy_flow_key fresh;
        if (proxy_flow_key_init(&fresh) != 0) {
            log_error("proxy: no random bytes for the flow token key");
            return -1;
        }
        memcpy(key, fresh.k, sizeof(key));
        for (size_t i = 0; i < sizeof(key); i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
        struct store_node_secret row = {.name = SECRET_NAME, .value = hex};
        struct store_op *op = store_op_node_secret_upsert(&row);
        if (store_submit(st, op, NULL, NULL) != 0) {
            log_error("proxy: cannot keep the token key in the store");
            return -1;
        }
        store_flush_sync(st);
        log_info("proxy: a new token key, kept in the store");
    }
    return proxy_flow_key_set(&p->flow_key, key, sizeof(key));
}

struct proxy *proxy_new(const struct proxy_deps *d)
{
    struct proxy *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->d = *d;
    p->cfg = *d->cfg;
    p->t1_ms = d->sip_cfg->t1_ms ? d->sip_cfg->t1_ms : 500;
    p->match_user = d->auth_cfg->match_user;
    p->max_contacts = d->reg_cfg->max_contacts;
    p->d.cfg = NULL;
    p->d.sip_cfg = NULL;
    p->d.auth_cfg = NULL;
    p->d.reg_cfg = NULL;
    p->redirect = !strcasecmp(p->cfg.mode, "redirect");
    if (flow_key_load(p, d->store) != 0) {
        free(p);
        return NULL;
    }
    arena_init(&p->arena, p->arena_mem, sizeof(p->arena_mem));
    p->arena.limit = 4u << 20;
    sbuf_init(&p->sb);
    if (p->cfg.edge_registrar[0]) {
        struct sip_uri u;
        struct transport_dest dest;
        char host[PROXY_HOST_MAX];
        uint16_t port;
        const char *er = p->cfg.edge_registrar;
        int n = snprintf(p->edge_route, sizeof(p->edge_route), "<%s%s>", er, strstr(er, ";lr") ? "" : ";lr");
        int rc = -1;
        if (n <= 0 || (size_t)n >= sizeof(p->edge_route) || sip_uri_parse(str_from_cstr(er), &u) != 0 ||
            (rc = proxy_uri_dest(&u, &dest, host, sizeof(host), &port)) < 0) {
            log_error("proxy: [proxy] edge_registrar '%s' is not a usable next hop", er);
            sbuf_free(&p->sb);
            free(p);
            return NULL;
        }
        p->edge = true;
        p->edge_proto = dest.proto;
        if (rc == 0) p->edge_addr = dest.addr; /* numeric: exempt from pike (a name is not) */
        log_info("proxy: edge mode: REGISTERs and requests for our domain go to %s (Path, RFC 3327)", er);
    }
    if (p->cfg.pike_limit) {
        p->pike = proxy_pike_new(p->cfg.pike_limit, p->cfg.pike_window_s * 1000);
        if (!p->pike) {
            free(p);
            return NULL;
        }
        log_info("proxy: at most %u requests per source in %u s (pike)", p->cfg.pike_limit, p->cfg.pike_window_s);
    }
    log_info("proxy: %s mode, foreign domains %s, timer C %us", p->redirect ? "redirect" : "stateful proxy",
             p->cfg.allow_foreign ? "forwarded" : "refused", p->cfg.invite_timeout_s);
    return p;
}

void proxy_free(struct proxy *p)
{
    if (!p) return;
    while (p->waits) {
        struct proxy_wait *w = p->waits;
        cluster_lookup_cancel(w->lookup);
        wait_unlink(p, w);
        free(w);
    }
    proxy_calls_free(p);
    proxy_pike_free(p->pike);
    htable_free(&p->by_st);
    arena_free(&p->arena);
    sbuf_free(&p->sb);
    free(p);
}

void proxy_set_cluster(struct proxy *p, struct cluster *c) { p->d.cluster = c; }

void proxy_get_stats(const struct proxy *p, struct proxy_stats *out) { *out = p->stats; }

void proxy_stats_json(const struct proxy *p, json_t *stats)
{
    const struct proxy_stats *s = &p->stats;
    json_t *o = json_object();
    if (!o) return;
#define PUT(name) json_object_set_new(o, #name, json_integer((json_int_t)s->name))
    PUT(requests);
    PUT(forwarded);
    PUT(redirected);
    PUT(not_found);
    PUT(unavailable);
    PUT(loops);
    PUT(too_many_hops);
    PUT(refused);
    PUT(challenged);
    PUT(auth_failed);
    PUT(cancels);
    PUT(timer_c);
    PUT(acks_forwarded);
    PUT(stray_forwarded);
    PUT(dns_lookups);
    PUT(dns_failures);
    PUT(non_invite_timeouts);
    PUT(pike_refused);
    PUT(cluster_lookups);
    PUT(cluster_forwarded);
    PUT(cluster_fallbacks);
    PUT(from_peers);
    PUT(edge_registers);
    PUT(edge_outbound);
    PUT(path_routed);
    PUT(flow_failed);
    PUT(flow_failed_removed);
    PUT(calls_live);
#undef PUT
    json_object_set_new(stats, "proxy", o);
}
