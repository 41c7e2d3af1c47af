/* registrar.c — REGISTER processing (RFC 3261 §10.3), digest authentication
 * of registrations, Path (RFC 3327), and the events that location changes
 * turn into. See registrar.h for the wiring.
 *
 * The answer to a REGISTER that changes bindings waits for the store: the
 * location service calls back once the batch holding the change is
 * committed, and only then is the 200 built (from the request the server
 * transaction keeps), listing every binding of the AoR as it is at that
 * moment. Nothing here blocks. */
#include "registrar/registrar.h"
#include "sip/sip_config.h"
#include "registrar/registrar_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "events/events.h"
#include "auth/digest.h"
#include "base/clock.h"
#include "base/log.h"
#include "registrar/digest_check.h"
#include "registrar/natping.h"
#include "registrar/users.h"
#include "txn/txn.h"

#define REG_ARENA_BYTES 16384
#define REG_STASH_BYTES 1024
#define REG_MAX_IFADDRS 32
#define REG_IFADDR_TTL_MS 10000

/* A REGISTER whose 200 waits for the store commit. */
struct reg_pending {
    struct registrar *r;             /* NULL once the registrar is freed */
    struct txn *st;
    struct reg_pending *prev, *next;
    char aor[];
};

/* What the last binding_added/removed callback saw, for the user.online /
 * user.offline event that follows it (the binding is gone by then). */
struct reg_stash {
    char aor[LOCATION_MAX_AOR];
    char contact[REG_STASH_BYTES];
    char remote[TRANSPORT_ADDR_TEXT];
    char transport[8];
};

struct registrar {
    struct registrar_config cfg;
    bool require_auth, match_user;   /* [auth] */
    struct sip_config sip;           /* [sip]: the listen addresses */
    const struct sip_local *local;
    struct location *location;
    struct users *users;
    struct auth_server *auth;
    struct event_bus *events;
    struct ua *ua;
    struct timer_service *timers;
    const struct txn_admission *admission;
    struct digest_checker digest;
    struct location_callbacks observer; /* registrar_set_observer; members NULL when none */
    registrar_commit_gate gate;      /* registrar_set_commit_gate; NULL: none */
    void *gate_arg;
    void (*on_registered)(void *arg, const char *aor); /* registrar_set_on_registered */
    void *on_registered_arg;
    bool stopping;
    struct registrar_stats stats;
    struct reg_pending *pending;
    arena_t arena;                   /* per request: contacts, joined Path */
    sbuf_t sb;                       /* extra header lines of an answer */
    struct reg_stash stash;
    struct natping *natping;         /* NULL when [registrar] nat_ping_interval = 0 */
    time_t date_sec;                 /* second date_line was formatted for */
    char date_line[64];
    /* This machine's addresses, for listeners on 0.0.0.0 / :: (re-read
     * every REG_IFADDR_TTL_MS: interfaces come and go). */
    struct sockaddr_storage ifaddrs[REG_MAX_IFADDRS];
    int ifaddr_count;
    uint64_t ifaddr_read_ms;
    _Alignas(16) char arena_mem[REG_ARENA_BYTES];
};

struct location *registrar_location(const struct registrar *r) { return r->location; }
struct users *registrar_users(const struct registrar *r) { return r->users; }
const struct sip_local *registrar_local(const struct registrar *r) { return r->local; }
uint64_t registrar_now(const struct registrar *r) { return timer_now(r->timers); }

/* snprintf(dst, cap, "%s", src) without the format machinery (hot path). */
static void copy_cstr(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- helpers shared with the proxy ---- */

static str_t strip_brackets(str_t h)
{
    if (h.len >= 2 && h.s[0] == '[' && h.s[h.len - 1] == ']') return str_make(h.s + 1, h.len - 2);
    return h;
}

/* The numeric host of a sockaddr, without brackets. */
static bool addr_host(const struct sockaddr_storage *a, char *buf, size_t cap)
{
    if (a->ss_family == AF_INET) return inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, buf, (socklen_t)cap);
    if (a->ss_family == AF_INET6)
        return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, buf, (socklen_t)cap);
    return false;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return a->ss_family == AF_INET6 && !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                                               &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

static bool is_wildcard(const char *h) { return !h[0] || !strcmp(h, "0.0.0.0") || !strcmp(h, "::"); }

/* A listener on 0.0.0.0 or :: takes every address of this machine: host
 * (numeric) is ours when it is a loopback address or one of the machine's
 * interface addresses. */
static bool host_is_this_machine(struct registrar *r, str_t host)
{
    bool wildcard = false;
    for (int i = 0; !wildcard && i < r->sip.listen_count; i++) wildcard = is_wildcard(r->sip.listen[i].host);
    struct sockaddr_storage a;
    if (!wildcard || transport_addr_parse(host.s, host.len, 0, &a) != 0) return false;
    if (a.ss_family == AF_INET && (ntohl(((struct sockaddr_in *)&a)->sin_addr.s_addr) >> 24) == 127) return true;
    if (a.ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&a)->sin6_addr)) return true;
    uint64_t now = timer_now(r->timers);
    if (!r->ifaddr_read_ms || now - r->ifaddr_read_ms >= REG_IFADDR_TTL_MS) {
        uv_interface_address_t *ifs;
        int n;
        r->ifaddr_count = 0;
        r->ifaddr_read_ms = now ? now : 1;
        if (uv_interface_addresses(&ifs, &n) == 0) {
            for (int i = 0; i < n && r->ifaddr_count < REG_MAX_IFADDRS; i++) {
                struct sockaddr_storage *d = &r->ifaddrs[r->ifaddr_count];
                memset(d, 0, sizeof(*d));
                if (ifs[i].address.address4.sin_family == AF_INET)
                    memcpy(d, &ifs[i].address.address4, sizeof(struct sockaddr_in));
                else if (ifs[i].address.address6.sin6_family == AF_INET6)
                    memcpy(d, &ifs[i].address.address6, sizeof(struct sockaddr_in6));
                else continue;
                r->ifaddr_count++;
            }
            uv_free_interface_addresses(ifs, n);
        }
    }
    for (int i = 0; i < r->ifaddr_count; i++)
        if (same_addr(&a, &r->ifaddrs[i])) return true;
    return false;
}

_Static_assert((int)LOCATION_TRANSPORT_WSS == (int)SIP_TRANSPORT_WSS, "location and SIP transports are numbered alike");

static bool port_is_ours(const struct registrar *r, uint16_t port, const struct transport_rx *rx)
{
    for (int i = 0; i < SIP_TRANSPORT_COUNT; i++)
        if (r->local->port[i] && port == r->local->port[i]) return true;
    for (int i = 0; i < r->sip.listen_count; i++)
        if (r->sip.listen[i].port && r->sip.listen[i].port == port) return true;
    return rx && transport_addr_port(&rx->local) == port;
}

bool registrar_uri_is_local(struct registrar *r, const struct sip_uri *uri, const struct transport_rx *rx,
                            bool check_port)
{
    if (uri->scheme != SIP_SCHEME_SIP && uri->scheme != SIP_SCHEME_SIPS) return false;
    str_t host = strip_brackets(uri->host);
    if (host.len == 0) return false;
    /* A maddr names where to send, not who we are (RFC 3261 §19.1.1): let the
     * request go there. */
    if (uri->maddr.len) return false;
    bool addr = false;
    if (r->local->domain[0] && str_ieq(host, strip_brackets(str_from_cstr(r->local->domain)))) {
        /* A domain name is ours on any port; a domain given as an address
         * is an address like the others (another UA may share the host). */
        struct sockaddr_storage ss;
        if (transport_addr_parse(host.s, host.len, 0, &ss) != 0) return true;
        addr = true;
    }
    if (r->local->host[0] && str_ieq(host, strip_brackets(str_from_cstr(r->local->host)))) addr = true;
    for (int i = 0; !addr && i < r->sip.listen_count; i++)
        if (str_ieq(host, strip_brackets(str_from_cstr(r->sip.listen[i].host)))) addr = true;
    if (!addr && rx) {
        char h[INET6_ADDRSTRLEN];
        if (addr_host(&rx->local, h, sizeof(h)) && str_ieq_cstr(host, h)) addr = true;
    }
    if (!addr) addr = host_is_this_machine(r, host);
    if (!addr) return false;
    /* No port: the URI names this host's SIP service, on whatever port it
     * listens (sip:bob@127.0.0.1 with us on 127.0.0.1:5070 is a call to
     * our user bob, issue 9). An explicit port must be one of ours: another
     * UA may share the host. */
    if (!check_port || !uri->port) return true;
    return port_is_ours(r, uri->port, rx);
}

int registrar_aor_key(const struct sip_uri *uri, char *out, size_t cap)
{
    if (uri->user.len == 0 || cap == 0) return -1;
    int n = sip_unescape(uri->user, out, cap - 1);
    if (n <= 0) return -1;
    for (int i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) return -1;
    out[n] = '\0';
    return n;
}

bool registrar_user_known(const struct registrar *r, str_t name)
{
    return r->users && users_find(r->users, name) != NULL;
}

/* ---- answering ---- */

/* Answers st with a To tag (RFC 3261 §8.2.6.2) and extra, one or more
 * "Name: value" lines joined by CRLF (no trailing CRLF). stateless: keep no
 * transaction record (challenges and lockout refusals, see below). */
static void reg_send(struct registrar *r, struct txn *st, int status, const char *reason, str_t extra, bool stateless)
{
    const struct sip_msg *req = txn_request(st);
    const struct transport_rx *ri = txn_rx_info(st);
    if (!req || !ri) return;
    char src[TRANSPORT_ADDR_TEXT];
    copy_cstr(src, sizeof(src), ri->src_text); /* the request may be gone after txn_respond */
    char tag[17];
    ua_new_tag(r->ua, tag);
    str_t lines[1] = {extra};
    /* A challenge keeps no transaction record (RFC 3261 §8.2.7): under a
     * registration storm that halves what Timer J holds, and a retransmitted
     * REGISTER is simply challenged again with a fresh nonce. */
    int rc = (stateless ? txn_respond_stateless : txn_reject)( /* refusals: stateless too (issue 9) */
        st, status, reason, req->to.tag.len ? STR_NULL : str_from_cstr(tag), lines, extra.len ? 1 : 0, STR_NULL,
        STR_NULL);
    if (rc < 0) log_warn("registrar: cannot send %d to %s: %s", status, src, strerror(-rc));
    if (status == 200) r->stats.ok++;
    else if (status != 401 && status != 403) r->stats.refused++;
}

static void reg_reply(struct registrar *r, struct txn *st, int status, const char *reason, str_t extra)
{
    reg_send(r, st, status, reason, extra, status == 401);
}

static const char *st_src(const struct txn *st)
{
    const struct transport_rx *ri = txn_rx_info(st);
    return ri ? ri->src_text : "?";
}

static void reg_refuse(struct registrar *r, struct txn *st, int status, const char *reason, const char *why)
{
    /* at most LOG_RATELIMIT_BURST a second: a flood of bad REGISTERs must not flood the log */
    log_warn_rl("registrar: %d %s to REGISTER from %s: %s", status, reason, st_src(st), why);
    reg_reply(r, st, status, reason, STR_NULL);
}


/* RFC 7231 §7.1.1.1 IMF-fixdate, as RFC 3261 §20.17 asks; formatted once
 * per second. */
static void append_date(struct registrar *r, sbuf_t *b)
{
    time_t now = time(NULL);
    if (now != r->date_sec || !r->date_line[0]) {
        struct tm tm;
        gmtime_r(&now, &tm);
        if (!strftime(r->date_line, sizeof(r->date_line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm))
            r->date_line[0] = '\0';
        r->date_sec = now;
    }
    sbuf_append_cstr(b, r->date_line);
}

static void append_server(const struct sip_local *local, sbuf_t *b)
{
    if (!local->user_agent[0]) return;
    sbuf_append(b, "Server: ", 8);
    sbuf_append_cstr(b, local->user_agent);
    sbuf_append(b, "\r\n", 2);
}

static bool supports_tag(const struct sip_msg *m, const char *tag)
{
    struct sip_list_iter it;
    str_t item;
    sip_list_iter_init(&it, m, SIP_HDR_SUPPORTED);
    while (sip_list_iter_next(&it, &item))
        if (str_ieq_cstr(item, tag)) return true;
    return false;
}

static bool supports_path(const struct sip_msg *m) { return supports_tag(m, "path"); }

/* An outbound REGISTER (RFC 5626 §4.2, §6): the UA supports outbound and a
 * Contact carries reg-id and +sip.instance. We are its first hop when it
 * has no Path; a Path whose first URI lacks ;ob means the edge proxy does
 * not keep flows, and the flow part is then not honoured (§6: no Require). */
static bool outbound_register(struct registrar *r, const struct sip_msg *req)
{
    if (!supports_tag(req, "outbound")) return false;
    struct sip_contact *list = NULL;
    bool star = false;
    if (sip_msg_contacts(req, &r->arena, &list, &star) < 0) return false;
    bool any = false;
    for (struct sip_contact *c = list; c && !any; c = c->next) any = c->reg_id.len && c->instance.len;
    if (!any) return false;
    struct sip_list_iter it;
    str_t first;
    struct sip_name_addr na;
    sip_list_iter_init(&it, req, SIP_HDR_PATH);
    if (!sip_list_iter_next(&it, &first)) return true;
    return sip_name_addr_parse(first, &na) == 0 && sip_param_get(na.uri.params, "ob", NULL);
}

static void append_q(sbuf_t *b, int q1000)
{
    if (q1000 >= 1000) return;
    if (q1000 < 0) q1000 = 0;
    char q[16];
    snprintf(q, sizeof(q), ";q=0.%03d", q1000);
    sbuf_append_cstr(b, q);
}

/* RFC 3261 §10.3 step 8: the 200 lists every current binding with its
 * remaining expiry; Path comes back when the UA supports it (RFC 3327 §5.3). */
static void reg_answer_ok(struct registrar *r, struct txn *st, const char *aor)
{
    const struct sip_msg *req = txn_request(st);
    if (!req) return;
    const struct location_binding *bs[LOCATION_MAX_CONTACTS];
    size_t n = location_lookup(r->location, str_from_cstr(aor), bs, LOCATION_MAX_CONTACTS);
    if (n > LOCATION_MAX_CONTACTS) n = LOCATION_MAX_CONTACTS;
    uint64_t now = timer_now(r->timers);
    sbuf_t *b = &r->sb;
    sbuf_clear(b);
    for (size_t i = 0; i < n; i++) {
        const struct location_binding *x = bs[i];
        uint64_t left = x->expires_ms > now ? (x->expires_ms - now + 999) / 1000 : 0;
        sbuf_append_cstr(b, "Contact: <");
        sbuf_append_cstr(b, x->contact);
        sbuf_append_cstr(b, ">;expires=");
        sbuf_append_u64(b, left);
        append_q(b, x->q1000);
        if (x->instance[0]) sbuf_printf(b, ";+sip.instance=\"%s\"", x->instance);
        if (x->reg_id) sbuf_printf(b, ";reg-id=%u", x->reg_id);
        sbuf_append_cstr(b, "\r\n");
    }
    /* RFC 5626 §6: we keep the flow of an outbound registration (reg-id
     * and +sip.instance, asked for with Supported: outbound) and say so. */
    if (outbound_register(r, req)) sbuf_append_cstr(b, "Require: outbound\r\nSupported: outbound, path\r\n");
    if (req->first[SIP_HDR_PATH] >= 0 && supports_path(req)) {
        for (const struct sip_header *h = sip_msg_header(req, SIP_HDR_PATH); h; h = sip_msg_header_next(req, h)) {
            sbuf_append_cstr(b, "Path: ");
            sbuf_append_str(b, h->value);
            sbuf_append_cstr(b, "\r\n");
        }
    }
    append_date(r, b);
    append_server(r->local, b);
    if (b->failed) {
        sbuf_free(b);
        sbuf_init(b);
        reg_refuse(r, st, 500, "Server Internal Error", "out of memory building the 200");
        return;
    }
    /* A fetch (no Contact) says nothing about the UA listening now. Read
     * before the answer: the transaction lets go of the request with it. */
    bool registered = n && req->first[SIP_HDR_CONTACT] >= 0;
    reg_reply(r, st, 200, "OK", sbuf_lines(b));
    if (registered && r->on_registered) r->on_registered(r->on_registered_arg, aor);
}

static void pending_unlink(struct registrar *r, struct reg_pending *p)
{
    if (p->prev) p->prev->next = p->next;
    else r->pending = p->next;
    if (p->next) p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

/* The commit gate (durable writes) answered for one REGISTER. */
static void reg_gated(void *arg, int status)
{
    struct reg_pending *p = arg;
    struct registrar *r = p->r;
    if (r) {
        pending_unlink(r, p);
        if (r->stopping) {
            /* the transport is going away: nothing can be sent */
        } else if (status == 0) {
            reg_answer_ok(r, p->st, p->aor);
        } else {
            /* Stored here, but not replicated in the shared store: a 200
             * would promise what a failover may take back. */
            log_warn_rl("registrar: binding of %s not made durable in Redis (%s): 500 to %s", p->aor,
                        strerror(-status), st_src(p->st));
            reg_reply(r, p->st, 500, "Server Internal Error", STR_LIT("Retry-After: 5"));
        }
    }
    free(p);
}

/* The store committed (or failed) the change of one REGISTER. */
static void reg_committed(void *arg, int status)
{
    struct reg_pending *p = arg;
    struct registrar *r = p->r;
    if (r && status == 0 && !r->stopping && r->gate) {
        int rc = r->gate(r->gate_arg, p->aor, reg_gated, p);
        if (rc == 0) return; /* reg_gated answers */
        if (rc < 0) {
            reg_gated(p, rc);
            return;
        }
    }
    if (r) {
        pending_unlink(r, p);
        if (r->stopping) {
            /* the transport is going away: nothing can be sent */
        } else if (status == 0) {
            reg_answer_ok(r, p->st, p->aor);
        } else {
            log_error("registrar: binding of %s not stored (%s): 500 to %s", p->aor, strerror(-status),
                      st_src(p->st));
            reg_reply(r, p->st, 500, "Server Internal Error", STR_LIT("Retry-After: 5"));
        }
    }
    free(p);
}

static struct reg_pending *pending_new(struct registrar *r, struct txn *st, const char *aor)
{
    size_t len = strlen(aor);
    struct reg_pending *p = malloc(sizeof(*p) + len + 1);
    if (!p) return NULL;
    p->r = r;
    p->st = st;
    memcpy(p->aor, aor, len + 1);
    p->prev = NULL;
    p->next = r->pending;
    if (r->pending) r->pending->prev = p;
    r->pending = p;
    return p;
}

static void pending_drop(struct registrar *r, struct reg_pending *p)
{
    pending_unlink(r, p);
    free(p);
}

/* ---- authentication (RFC 3261 §22.4, RFC 8760) ---- */

/* 401 with one WWW-Authenticate per offered algorithm, its nonces bound to
 * the source address of the request. */
static void reg_challenge(struct registrar *r, struct txn *st, bool stale)
{
    sbuf_t *b = &r->sb;
    sbuf_clear(b);
    int rc = digest_check_challenge(&r->digest, false, stale, txn_rx_info(st), b);
    append_server(r->local, b);
    if (rc < 0 || b->failed) {
        sbuf_free(b);
        sbuf_init(b);
        reg_refuse(r, st, 500, "Server Internal Error", "cannot build a challenge (realm empty?)");
        return;
    }
    reg_reply(r, st, 401, "Unauthorized", sbuf_lines(b));
}

/* 403 to a source or user over [auth] max_failures: stateless and before
 * any digest work, so a guessing flood costs us a table lookup and a send. */
static void reg_locked_out(struct registrar *r, struct txn *st, const struct digest_check_result *res)
{
    char line[48];
    snprintf(line, sizeof(line), "Retry-After: %u", res->retry_after ? res->retry_after : 1);
    r->stats.locked_out++;
    reg_send(r, st, 403, "Too Many Failed Attempts", str_from_cstr(line), true);
}

/* 1: authenticated (the answer is not sent yet; *nonce_reused from the
 * digest check); 0: answered (401/403/400). */
static int reg_authenticate(struct registrar *r, struct txn *st, const struct transport_rx *rx, const char *aor,
                            bool *nonce_reused)
{
    struct digest_check_result res;
    switch (digest_check_request(&r->digest, rx, SIP_HDR_AUTHORIZATION, &res)) {
    case DIGEST_CHECK_OK: break;
    case DIGEST_CHECK_NONE:
        r->stats.challenged++;
        reg_challenge(r, st, false);
        return 0;
    case DIGEST_CHECK_STALE:
        r->stats.challenged++;
        if (res.log) log_info_rl("registrar: %s from %s: re-challenging", res.why, rx->src_text);
        reg_challenge(r, st, true);
        return 0;
    case DIGEST_CHECK_FAILED:
        r->stats.auth_failed++;
        if (res.log) log_warn_rl("registrar: 401 to REGISTER from %s: %s", rx->src_text, res.why);
        reg_challenge(r, st, false);
        return 0;
    case DIGEST_CHECK_LOCKED:
        if (res.log) log_warn_rl("registrar: 403 to REGISTER from %s: %s", rx->src_text, res.why);
        reg_locked_out(r, st, &res);
        return 0;
    case DIGEST_CHECK_BAD_HEADER:
        r->stats.refused++;
        if (res.log) log_warn_rl("registrar: 400 to REGISTER from %s: %s", rx->src_text, res.why);
        reg_reply(r, st, 400, "Bad Authorization Header", STR_NULL);
        return 0;
    case DIGEST_CHECK_URI_MISMATCH:
        if (res.log) log_warn_rl("registrar: 400 to REGISTER from %s: %s", rx->src_text, res.why);
        reg_reply(r, st, 400, "Digest URI Mismatch", STR_NULL);
        return 0;
    }
    *nonce_reused = res.nonce_reused;
    /* RFC 3261 §10.3 step 3: is this user allowed to change this AoR? */
    if (r->match_user && strcmp(res.user->name, aor) != 0) {
        r->stats.forbidden++;
        log_warn("registrar: 403 to REGISTER from %s: user %s may not register %s", rx->src_text, res.user->name, aor);
        reg_reply(r, st, 403, "Forbidden", STR_NULL);
        return 0;
    }
    return 1;
}

/* ---- REGISTER (RFC 3261 §10.3) ---- */

/* Option tags in Require we do not know (RFC 3261 §10.3 step 2, §8.2.2.3). */
static bool reg_unsupported(const struct sip_msg *m, sbuf_t *b)
{
    struct sip_list_iter it;
    str_t item;
    bool any = false;
    sip_list_iter_init(&it, m, SIP_HDR_REQUIRE);
    while (sip_list_iter_next(&it, &item)) {
        if (str_ieq_cstr(item, "path") || str_ieq_cstr(item, "outbound")) continue;
        sbuf_append_cstr(b, any ? ", " : "Unsupported: ");
        sbuf_append_str(b, item);
        any = true;
    }
    return any;
}

/* The Path header values joined by ", " (RFC 3327 §5.3), in the arena. */
static str_t joined_path(struct registrar *r, const struct sip_msg *m)
{
    if (m->first[SIP_HDR_PATH] < 0) return STR_NULL;
    size_t total = 0;
    for (const struct sip_header *h = sip_msg_header(m, SIP_HDR_PATH); h; h = sip_msg_header_next(m, h))
        total += h->value.len + 2;
    char *p = arena_alloc(&r->arena, total + 1);
    if (!p) return STR_NULL;
    size_t used = 0;
    for (const struct sip_header *h = sip_msg_header(m, SIP_HDR_PATH); h; h = sip_msg_header_next(m, h)) {
        if (used) {
            memcpy(p + used, ", ", 2);
            used += 2;
        }
        memcpy(p + used, h->value.s, h->value.len);
        used += h->value.len;
    }
    p[used] = '\0';
    return str_make(p, used);
}

/* The stored form of a contact: an existing binding's string when the URIs
 * are equal by RFC 3261 §19.1.4 (step 7 compares that way), else the URI as
 * received. */
static str_t contact_key(const struct sip_contact *c, const struct location_binding *const *old, size_t n_old)
{
    str_t raw = c->addr.uri_raw;
    for (size_t i = 0; i < n_old; i++)
        if (str_eq_cstr(raw, old[i]->contact)) return raw;
    for (size_t i = 0; i < n_old; i++) {
        struct sip_uri u;
        if (sip_uri_parse(str_from_cstr(old[i]->contact), &u) == 0 && sip_uri_equal(&u, &c->addr.uri))
            return str_from_cstr(old[i]->contact);
    }
    return raw;
}

static int location_error_status(int rc, const char **reason)
{
    switch (rc) {
    case LOCATION_ERR_INVALID: *reason = "Bad Contact"; return 400;
    case LOCATION_ERR_OUT_OF_ORDER: *reason = "Out Of Order CSeq"; return 500;
    case LOCATION_ERR_TOO_MANY: *reason = "Too Many Contacts"; return 403;
    default: *reason = "Server Internal Error"; return 500;
    }
}

/* Whether contact key would add a binding or move one to another source
 * address or connection. A REGISTER answered on a nonce accepted before
 * (auth_verify_info.nonce_reused) may be a replay of a captured answer:
 * without qop the answer covers neither the Contact nor the source, so such
 * a REGISTER may refresh or remove bindings where they are, nothing more. */
static bool reg_moves_binding(str_t key, const struct location_binding *const *old, size_t n_old,
                              const struct transport_rx *rx)
{
    for (size_t i = 0; i < n_old; i++) {
        if (!str_eq_cstr(key, old[i]->contact)) continue;
        struct sockaddr_storage a;
        memset(&a, 0, sizeof(a));
        memcpy(&a, &old[i]->addr, sizeof(old[i]->addr));
        if (old[i]->addr.sa.sa_family == AF_UNSPEC || !transport_addr_equal(&a, &rx->src)) return true;
        return sip_transport_is_stream(rx->proto) && old[i]->conn_id != rx->conn_id;
    }
    return true;
}

/* RFC 5630 §5.2: a registrar binds a sips: Contact only when the REGISTER
 * itself came the secure way, its Request-URI and every Path URI sips: too,
 * and refuses it with 400 otherwise. The hop it arrived on must be TLS or
 * WSS (RFC 3261 §26.2.2 as RFC 5630 updates it: sips means TLS on every
 * hop); else anyone on the path could register a "secure" contact in
 * clear. NULL when the contact may be bound, else why not. */
static const char *sips_contact_refused(const struct sip_msg *m, const struct transport_rx *rx)
{
    if (!sip_transport_is_secure(rx->proto)) return "sips: Contact over a non-secure transport (RFC 5630 §5.2)";
    if (m->ruri.scheme != SIP_SCHEME_SIPS) return "sips: Contact in a REGISTER for a sip: Request-URI (RFC 5630 §5.2)";
    struct sip_list_iter it;
    str_t item;
    struct sip_name_addr na;
    sip_list_iter_init(&it, m, SIP_HDR_PATH);
    while (sip_list_iter_next(&it, &item))
        if (sip_name_addr_parse(item, &na) != 0 || na.uri.scheme != SIP_SCHEME_SIPS)
            return "sips: Contact behind a sip: Path (RFC 5630 §5.2)";
    return NULL;
}

static void reg_apply(struct registrar *r, struct txn *st, const struct transport_rx *rx, const char *aor,
                      bool nonce_reused)
{
    const struct sip_msg *m = rx->msg;
    struct sip_contact *list = NULL;
    bool star = false;
    if (sip_msg_contacts(m, &r->arena, &list, &star) < 0) {
        reg_refuse(r, st, 400, "Bad Contact", "malformed Contact");
        return;
    }
    str_t aor_s = str_from_cstr(aor);
    if (star) {
        /* RFC 3261 §10.3 step 6: "*" only alone and with Expires: 0. */
        if (list || m->expires != 0) {
            reg_refuse(r, st, 400, "Bad Contact", "Contact: * with other contacts or a non-zero Expires");
            return;
        }
        struct reg_pending *p = pending_new(r, st, aor);
        if (!p) {
            reg_refuse(r, st, 500, "Server Internal Error", "out of memory");
            return;
        }
        int rc = location_unregister_all(r->location, aor_s, m->call_id, m->cseq.number, reg_committed, p);
        if (rc < 0) {
            const char *reason;
            int status = location_error_status(rc, &reason);
            pending_drop(r, p);
            reg_refuse(r, st, status, reason, "unregister-all refused by the location service");
        }
        return;
    }
    if (!list) { /* a query (§10.3 step 8 with no change) */
        reg_answer_ok(r, st, aor);
        return;
    }

    const struct location_binding *old[LOCATION_MAX_CONTACTS];
    size_t n_old = location_lookup(r->location, aor_s, old, LOCATION_MAX_CONTACTS);
    if (n_old > LOCATION_MAX_CONTACTS) n_old = LOCATION_MAX_CONTACTS;

    struct location_binding_in in[LOCATION_MAX_CONTACTS];
    size_t n = 0;
    str_t path = joined_path(r, m);
    const struct sip_header *ua = sip_msg_header(m, SIP_HDR_USER_AGENT);
    int64_t min_e = r->cfg.min_expires, max_e = r->cfg.max_expires;
    for (struct sip_contact *c = list; c; c = c->next) {
        if (n == LOCATION_MAX_CONTACTS) {
            reg_refuse(r, st, 403, "Too Many Contacts", "over the contacts limit of one REGISTER");
            return;
        }
        if (c->addr.uri.scheme != SIP_SCHEME_SIP && c->addr.uri.scheme != SIP_SCHEME_SIPS) {
            reg_refuse(r, st, 400, "Bad Contact", "contact is not a sip/sips URI");
            return;
        }
        const char *why = c->addr.uri.scheme == SIP_SCHEME_SIPS ? sips_contact_refused(m, rx) : NULL;
        if (why) {
            reg_refuse(r, st, 400, "SIPS Contact Not Allowed", why);
            return;
        }
        int64_t e = c->expires >= 0 ? c->expires : (m->expires >= 0 ? m->expires : r->cfg.default_expires);
        if (e > 0 && e < min_e) {
            /* RFC 3261 §10.3 step 7: 423 with our minimum. */
            char line[64];
            snprintf(line, sizeof(line), "Min-Expires: %lld", (long long)min_e);
            log_info("registrar: 423 to REGISTER from %s: expires %lld < %lld", rx->src_text, (long long)e,
                     (long long)min_e);
            reg_reply(r, st, 423, "Interval Too Brief", str_from_cstr(line));
            return;
        }
        if (e > max_e) e = max_e;
        uint64_t reg_id = 0;
        if (c->reg_id.len && str_to_u64(c->reg_id, UINT32_MAX, &reg_id) < 0) {
            reg_refuse(r, st, 400, "Bad Contact", "bad reg-id");
            return;
        }
        str_t key = contact_key(c, old, n_old);
        if (nonce_reused && reg_moves_binding(key, old, n_old, rx)) {
            /* stale=true: a UA with the password answers a fresh nonce at
             * once; a replayed capture gets no further. */
            r->stats.challenged++;
            log_info_rl("registrar: REGISTER from %s for %s on a reused nonce would add or move contact %.*s: "
                        "re-challenging",
                        rx->src_text, aor, (int)(key.len > 100 ? 100 : key.len), key.s);
            reg_challenge(r, st, true);
            return;
        }
        in[n++] = (struct location_binding_in){
            .contact = key,
            .expires_s = (uint32_t)e,
            .q1000 = c->q1000,
            .call_id = m->call_id,
            .cseq = m->cseq.number,
            .transport = (enum location_transport)rx->proto, /* numbered alike (location.h) */
            .remote_addr = (const struct sockaddr *)&rx->src,
            /* With a Path the flow is the edge proxy's (RFC 3327, RFC 5626
             * §6): our connection to it carries every client behind it, so
             * its loss is not this binding's, and it is not ours to ping. */
            .conn_id = sip_transport_is_stream(rx->proto) && !path.len ? rx->conn_id : 0,
            .path = path,
            .user_agent = ua ? ua->value : STR_NULL,
            .instance = c->instance,
            .reg_id = (uint32_t)reg_id,
            /* Behind NAT (natping_request_natted): requests go to the source
             * address, which gets keepalive pings (natping.h); otherwise
             * to the Contact. */
            .flags = !path.len && rx->proto == SIP_TRANSPORT_UDP &&
                             natping_request_natted(&m->via, &c->addr.uri, &rx->src)
                         ? LOCATION_FLAG_NAT
                         : 0,
        };
    }
    struct reg_pending *p = pending_new(r, st, aor);
    if (!p) {
        reg_refuse(r, st, 500, "Server Internal Error", "out of memory");
        return;
    }
    int rc = location_update(r->location, aor_s, in, n, timer_now(r->timers), reg_committed, p);
    if (rc < 0) {
        const char *reason;
        int status = location_error_status(rc, &reason);
        pending_drop(r, p);
        char why[96];
        snprintf(why, sizeof(why), "location update for %s refused (%d)", aor, rc);
        reg_refuse(r, st, status, reason, why);
    }
    /* on 0 the answer comes from reg_committed (maybe already sent) */
}

int registrar_on_request(struct registrar *r, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!r || !m || m->method != SIP_REGISTER) return 0;
    /* §10.3 step 1: a REGISTER for another domain is not ours (the proxy
     * may forward it). A domain has no port: sip:127.0.0.1 reaching us on
     * another port is still for our domain. */
    if (!registrar_uri_is_local(r, &m->ruri, rx, false)) return 0;
    r->stats.registers++;
    arena_reset(&r->arena);
    if (!r->location) {
        reg_refuse(r, st, 500, "Server Internal Error", "no location service");
        return 1;
    }

    sbuf_clear(&r->sb);
    if (reg_unsupported(m, &r->sb)) {
        log_warn("registrar: 420 to REGISTER from %s: %.*s", rx->src_text, STR_FMT(sbuf_str(&r->sb)));
        reg_reply(r, st, 420, "Bad Extension", sbuf_str(&r->sb));
        return 1;
    }
    /* §10.3 step 5: the AoR is the To URI; it must be in our domain. */
    char aor[LOCATION_MAX_AOR];
    if (m->to.uri.scheme != SIP_SCHEME_SIP && m->to.uri.scheme != SIP_SCHEME_SIPS) {
        reg_refuse(r, st, 404, "Not Found", "To is not a sip/sips URI");
        return 1;
    }
    if (!registrar_uri_is_local(r, &m->to.uri, rx, false)) {
        reg_refuse(r, st, 404, "Not Found", "To names another domain");
        return 1;
    }
    if (registrar_aor_key(&m->to.uri, aor, sizeof(aor)) < 0) {
        reg_refuse(r, st, 404, "Not Found", "To has no usable user part");
        return 1;
    }
    /* Overload: an AoR without bindings is a new registration; refused
     * before digest and store work (refreshes and removals go on). */
    if (m->expires != 0 && !location_lookup(r->location, str_from_cstr(aor), NULL, 0) &&
        txn_admission_refuse(r->admission, st))
        return 1;
    bool nonce_reused = false;
    if (r->require_auth && !reg_authenticate(r, st, rx, aor, &nonce_reused)) return 1;
    reg_apply(r, st, rx, aor, nonce_reused);
    return 1;
}

/* ---- connection loss ---- */

struct conn_scan {
    uint64_t conn_id;
    char **aors;
    size_t n, cap;
};

static int collect_conn_aors(void *arg, const struct location_binding *b)
{
    struct conn_scan *s = arg;
    if (b->conn_id != s->conn_id) return 0;
    if (s->n && !strcmp(s->aors[s->n - 1], b->aor)) return 0; /* foreach goes AoR by AoR */
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        char **na = realloc(s->aors, ncap * sizeof(*na));
        if (!na) return 1;
        s->aors = na;
        s->cap = ncap;
    }
    s->aors[s->n] = strdup(b->aor);
    if (!s->aors[s->n]) return 1;
    s->n++;
    return 0;
}

static void publish_offline(struct registrar *r, const char *aor, const char *reason, const struct reg_stash *st,
                            bool kept);

void registrar_on_conn_lost(struct registrar *r, uint64_t conn_id, const char *peer_text)
{
    if (!r || !conn_id || !r->location) return;
    if (!r->cfg.keep_on_transport_loss) {
        int n = location_remove_by_conn(r->location, conn_id, LOCATION_REMOVED_TRANSPORT_LOST);
        if (n > 0) log_info("registrar: %d binding(s) dropped: connection %llu to %s lost", n,
                            (unsigned long long)conn_id, peer_text ? peer_text : "?");
        return;
    }
    /* Keep mode: the bindings stay (flagged) but the users they belong to
     * cannot be reached any more; report each AoR whose every binding is now
     * flagged. This walks all bindings, which only this optional mode pays. */
    struct conn_scan s = {.conn_id = conn_id};
    location_foreach(r->location, collect_conn_aors, &s);
    int n = location_flag_conn_lost(r->location, conn_id);
    if (n > 0) log_info("registrar: %d binding(s) flagged: connection %llu to %s lost", n,
                        (unsigned long long)conn_id, peer_text ? peer_text : "?");
    for (size_t i = 0; i < s.n; i++) {
        const struct location_binding *bs[LOCATION_MAX_CONTACTS];
        size_t k = location_lookup(r->location, str_from_cstr(s.aors[i]), bs, LOCATION_MAX_CONTACTS);
        bool all = true;
        for (size_t j = 0; j < k && j < LOCATION_MAX_CONTACTS; j++)
            if (!(bs[j]->flags & LOCATION_FLAG_TRANSPORT_LOST)) all = false;
        if (all && k) {
            struct reg_stash st = {0};
            snprintf(st.contact, sizeof(st.contact), "%s", bs[0]->contact);
            snprintf(st.remote, sizeof(st.remote), "%s", bs[0]->remote);
            snprintf(st.transport, sizeof(st.transport), "%s", location_transport_name(bs[0]->transport));
            publish_offline(r, s.aors[i], "transport-lost", &st, true);
        }
        free(s.aors[i]);
    }
    free(s.aors);
}

/* ---- events (architecture.md "Events") ---- */

/* "sip:AOR@DOMAIN" for the events' aor field (truncated like snprintf). */
static const char *aor_uri(const struct registrar *r, const char *aor, char *buf, size_t cap)
{
    const struct sip_local *l = r->local;
    char dom[160]; /* an IPv6 literal domain in brackets, as in any URI */
    sip_host_for_header(l->domain[0] ? l->domain : (l->realm[0] ? l->realm : l->host), dom, sizeof(dom));
    const char *parts[] = {"sip:", aor, "@", dom};
    size_t k = 0;
    for (size_t i = 0; i < 4; i++)
        for (const char *c = parts[i]; *c && k + 1 < cap; c++) buf[k++] = *c;
    buf[k] = '\0';
    return buf;
}

static void stash_binding(struct registrar *r, const struct location_binding *b)
{
    struct reg_stash *s = &r->stash;
    copy_cstr(s->aor, sizeof(s->aor), b->aor);
    copy_cstr(s->contact, sizeof(s->contact), b->contact);
    copy_cstr(s->remote, sizeof(s->remote), b->remote);
    copy_cstr(s->transport, sizeof(s->transport), location_transport_name(b->transport));
}

static const struct reg_stash *stash_for(const struct registrar *r, const char *aor)
{
    if (strcmp(r->stash.aor, aor) != 0) return NULL;
    return &r->stash;
}

/* Events go out through event_publish_fields: one REGISTER that adds a
 * binding publishes two, and building jansson objects for them cost more than
 * the rest of the REGISTER. The field order is the JSON order. */
static void publish_binding(struct registrar *r, const char *type, const struct location_binding *b,
                            const char *reason)
{
    if (!r->events) return;
    char uri[LOCATION_MAX_AOR + 160];
    struct event_field f[7] = {
        EVENT_STR("user", b->aor),
        EVENT_STR("aor", aor_uri(r, b->aor, uri, sizeof(uri))),
        EVENT_STR("contact", b->contact),
        EVENT_STR("remote", b->remote),
        EVENT_STR("transport", location_transport_name(b->transport)),
    };
    if (reason) {
        f[5] = EVENT_STR("reason", reason);
    } else {
        uint64_t now = timer_now(r->timers);
        uint64_t left = b->expires_ms > now ? (b->expires_ms - now + 999) / 1000 : 0;
        f[5] = EVENT_INT("expires", left);
    }
    event_publish_fields(r->events, type, f, 6);
}

static void publish_offline(struct registrar *r, const char *aor, const char *reason, const struct reg_stash *st,
                            bool kept)
{
    if (!r->events) return;
    char uri[LOCATION_MAX_AOR + 160];
    struct event_field f[7];
    size_t n = 0;
    f[n++] = EVENT_STR("user", aor);
    f[n++] = EVENT_STR("aor", aor_uri(r, aor, uri, sizeof(uri)));
    f[n++] = EVENT_STR("reason", reason);
    if (st) {
        f[n++] = EVENT_STR("contact", st->contact);
        f[n++] = EVENT_STR("remote", st->remote);
        f[n++] = EVENT_STR("transport", st->transport);
    }
    if (kept) f[n++] = EVENT_BOOL("kept", true);
    event_publish_fields(r->events, "user.offline", f, n);
}

static void cb_added(void *arg, const struct location_binding *b)
{
    struct registrar *r = arg;
    stash_binding(r, b);
    publish_binding(r, "registration.added", b, NULL);
    if (r->observer.binding_added) r->observer.binding_added(r->observer.arg, b);
}

static void cb_refreshed(void *arg, const struct location_binding *b)
{
    struct registrar *r = arg;
    natping_refreshed(r->natping, b);
    publish_binding(r, "registration.refreshed", b, NULL);
    if (r->observer.binding_refreshed) r->observer.binding_refreshed(r->observer.arg, b);
}

static void cb_removed(void *arg, const struct location_binding *b, enum location_reason reason)
{
    struct registrar *r = arg;
    stash_binding(r, b);
    publish_binding(r, "registration.removed", b, location_reason_name(reason));
    if (r->observer.binding_removed) r->observer.binding_removed(r->observer.arg, b, reason);
}

static void cb_online(void *arg, const char *aor)
{
    struct registrar *r = arg;
    if (!r->events) return;
    char uri[LOCATION_MAX_AOR + 160];
    struct event_field f[5];
    size_t n = 0;
    f[n++] = EVENT_STR("user", aor);
    f[n++] = EVENT_STR("aor", aor_uri(r, aor, uri, sizeof(uri)));
    const struct reg_stash *st = stash_for(r, aor);
    if (st) {
        f[n++] = EVENT_STR("contact", st->contact);
        f[n++] = EVENT_STR("remote", st->remote);
        f[n++] = EVENT_STR("transport", st->transport);
    }
    event_publish_fields(r->events, "user.online", f, n);
}

static void cb_offline(void *arg, const char *aor, enum location_reason reason)
{
    struct registrar *r = arg;
    publish_offline(r, aor, location_reason_name(reason), stash_for(r, aor), false);
}

void registrar_location_callbacks(struct registrar *r, struct location_callbacks *cb)
{
    *cb = (struct location_callbacks){
        .arg = r,
        .binding_added = cb_added,
        .binding_refreshed = cb_refreshed,
        .binding_removed = cb_removed,
        .aor_online = cb_online,
        .aor_offline = cb_offline,
    };
}

void registrar_set_on_registered(struct registrar *r, void (*fn)(void *arg, const char *aor), void *arg)
{
    r->on_registered = fn;
    r->on_registered_arg = fn ? arg : NULL;
}

void registrar_set_observer(struct registrar *r, const struct location_callbacks *obs)
{
    if (obs) r->observer = *obs;
    else memset(&r->observer, 0, sizeof(r->observer));
}

/* ---- life cycle, stats ---- */

struct registrar *registrar_new(const struct registrar_deps *d)
{
    struct registrar *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->cfg = *d->cfg;
    r->require_auth = d->auth_cfg->require_auth;
    r->match_user = d->auth_cfg->match_user;
    r->sip = *d->sip_cfg;
    r->local = d->local;
    r->users = d->users;
    r->auth = d->auth;
    r->events = d->events;
    r->ua = d->ua;
    r->timers = d->timers;
    r->admission = d->admission;
    digest_checker_init(&r->digest, d->auth_cfg, d->local, d->users, d->auth, d->events);
    r->digest.edges = d->trusted_edges;
    r->digest.nedges = d->trusted_edges_count;
    arena_init(&r->arena, r->arena_mem, sizeof(r->arena_mem));
    r->arena.limit = 1u << 20;
    sbuf_init(&r->sb);
    if (!r->local->realm[0]) log_warn("registrar: no realm ([auth] realm or [sip] domain): digest challenges will fail");
    struct natping_deps nd = {
        .interval_s = (uint32_t)r->cfg.nat_ping_interval_s,
        .max_lost = (uint32_t)r->cfg.nat_ping_max_lost,
        .local = d->local,
        .timers = d->timers,
        .ua = d->ua,
        .send = d->send,
        .send_arg = d->send_arg,
    };
    r->natping = natping_new(&nd);
    registrar_set_location(r, d->location);
    return r;
}

void registrar_set_location(struct registrar *r, struct location *loc)
{
    r->location = loc;
    natping_set_location(r->natping, loc);
    /* [registrar] max_contacts bounds the fan-out of one call (issue 9). */
    if (loc) location_set_limits(loc, (uint32_t)r->cfg.max_contacts, 0);
    if (loc) location_set_write_behind(loc, (uint32_t)r->cfg.write_behind_ms);
}

void registrar_set_commit_gate(struct registrar *r, registrar_commit_gate gate, void *arg)
{
    r->gate = gate;
    r->gate_arg = arg;
}

void registrar_stop(struct registrar *r)
{
    if (r) r->stopping = true;
}

void registrar_free(struct registrar *r)
{
    if (!r) return;
    for (struct reg_pending *p = r->pending, *next; p; p = next) {
        next = p->next;
        p->r = NULL; /* freed by its store callback */
        p->prev = p->next = NULL;
    }
    natping_free(r->natping);
    arena_free(&r->arena);
    sbuf_free(&r->sb);
    free(r);
}

void registrar_get_stats(const struct registrar *r, struct registrar_stats *out) { *out = r->stats; }

int registrar_on_stray_response(struct registrar *r, const struct transport_rx *rx)
{
    return r ? natping_on_response(r->natping, rx) : 0;
}

void registrar_stats_json(const struct registrar *r, json_t *stats)
{
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "registers", (json_int_t)r->stats.registers, "ok",
                          (json_int_t)r->stats.ok, "challenged", (json_int_t)r->stats.challenged, "auth_failed",
                          (json_int_t)r->stats.auth_failed, "forbidden", (json_int_t)r->stats.forbidden, "refused",
                          (json_int_t)r->stats.refused, "locked_out", (json_int_t)r->stats.locked_out);
    if (!o) return;
    if (r->location) {
        json_object_set_new(o, "bindings", json_integer((json_int_t)location_count(r->location)));
        json_object_set_new(o, "aors", json_integer((json_int_t)location_aor_count(r->location)));
        json_object_set_new(stats, "bindings", json_integer((json_int_t)location_count(r->location)));
    }
    natping_stats_json(r->natping, o);
    json_object_set_new(stats, "registrar", o);
}
