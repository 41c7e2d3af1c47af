/* rtc.c — the WebRTC transport (rtc.h): one UDP port on the loop shared by
 * every peer, ICE-lite, a DTLS server per peer, SRTP once DTLS is done, and
 * the per-peer deadlines. ICE-TCP lives in rtc_tcp.c (rtc_int.h joins them).
 *
 * Who owns what: the transport owns its handles, the DTLS identity, the
 * peers (indexed by local ufrag and by selected remote address in two
 * base/htable tables, and listed for freeing) and one base/timer service
 * driven by one uv_timer. A peer owns its DTLS session and SRTP contexts.
 *
 * Callbacks may close any peer or free the transport: such a peer is
 * unlinked at once (no packet or timer reaches it again) and freed when the
 * dispatch that called out returns (t->depth counts nesting), so no code
 * below a callback touches freed memory. The same holds for the transport.
 *
 * Refusals (strangers, garbage, SRTP that does not unprotect) are counted
 * and logged with the sender through one rate limit per transport.
 * rtc_transport_free sends close_notify to connected peers (best effort)
 * before freeing them; no gone callback follows.
 *
 * Timers: a peer has one timer node at the earliest of its connect or
 * consent deadline and its DTLS retransmission time. Consent refreshes (a
 * valid Binding request, or SRTP/SRTCP that unprotects) only
 * stamp the peer; the node is moved when it fires early (lazy), so a Binding
 * request costs no heap operation. */
#include "media/rtc.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/htable.h"
#include "base/log.h"
#include "base/str.h"
#include "base/timer.h"
#include "media/rtc_int.h"
#include "media/srtp.h"
#include "media/stun.h"
#include "transport/transport.h"

#define DEFAULT_CONNECT_MS 15000
#define DEFAULT_CONSENT_MS 30000
#define DEFAULT_MAX_PEERS 5000
#define SOCKET_BUFFER (4 * 1024 * 1024)

const char *rtc_gone_reason_name(enum rtc_gone_reason r)
{
    switch (r) {
    case RTC_GONE_CONNECT_TIMEOUT: return "connect timeout";
    case RTC_GONE_CONSENT_EXPIRED: return "consent expired";
    case RTC_GONE_DTLS_FAILED: return "DTLS failed";
    case RTC_GONE_DTLS_CLOSED: return "DTLS closed";
    }
    return "?";
}

/* ---- small helpers */

static uint64_t now_ms(const struct rtc_transport *t) { return uv_now(t->loop); }

static uint32_t addr_hash(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
        return htable_hash_u64((uint64_t)v4->sin_addr.s_addr << 16 | v4->sin_port);
    }
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;
    uint64_t hi, lo;
    memcpy(&hi, v6->sin6_addr.s6_addr, 8);
    memcpy(&lo, v6->sin6_addr.s6_addr + 8, 8);
    return htable_hash_u64(hi ^ (lo * 0x9e3779b97f4a7c15ULL) ^ v6->sin6_port);
}

/* One refusal line, rate-limited per transport, with the sender. */
void rtc_refuse_log(struct rtc_transport *t, const struct sockaddr_storage *from, const char *what)
{
    if (LOG_WARN > log_get_level()) return;
    char text[TRANSPORT_ADDR_TEXT];
    if (from) transport_addr_text(from, text, sizeof(text));
    else snprintf(text, sizeof(text), "?");
    log_write_ratelimited(&t->refuse_rl, LOG_WARN, "rtc: %s from %s: dropped", what, text);
}

/* ICE credentials: alphanumeric (a subset of RFC 8839 ice-char), unbiased. */
static int random_token(char *out, size_t n)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t r[64];
    size_t got = 0;
    while (got < n) {
        if (RAND_bytes(r, sizeof(r)) != 1) return -1;
        for (size_t i = 0; i < sizeof(r) && got < n; i++)
            if (r[i] < 248) out[got++] = set[r[i] % 62];
    }
    out[n] = '\0';
    return 0;
}

/* ---- sending */

int rtc_udp_send(struct rtc_transport *t, const struct sockaddr_storage *to, const void *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int rc = uv_udp_try_send(&t->udp, &b, 1, (const struct sockaddr *)to);
    return rc < 0 ? rc : 0;
}

/* On the peer's selected path. */
static int peer_path_send(struct rtc_peer *p, const void *data, size_t len)
{
    if (p->conn) return rtc_tcp_send(p->conn, data, len);
    if (!p->has_path) return -1;
    return rtc_udp_send(p->t, &p->addr, data, len);
}

/* DTLS flights leave here. A datagram the socket would not take is counted
 * and otherwise treated like one lost on the way: DTLS retransmits, and a
 * full socket buffer must not kill the handshake. */
static int dtls_send(void *user, const void *data, size_t len)
{
    struct rtc_peer *p = user;
    if (peer_path_send(p, data, len) != 0) p->st.send_errors++;
    return 0;
}

/* ---- peer lifetime */

static void peer_unlink_addr(struct rtc_peer *p)
{
    if (hnode_linked(&p->by_addr)) htable_remove(&p->t->by_addr, &p->by_addr);
}

static void peer_destroy(struct rtc_peer *p)
{
    msrtp_free(p->srtp_in);
    msrtp_free(p->srtp_out);
    dtls_session_free(p->dtls);
    free(p);
}

/* Takes the peer out of every index and of the live count; it gets no more
 * packets or timers. Freed now, or after the dispatch when inside one. */
static void peer_retire(struct rtc_peer *p)
{
    struct rtc_transport *t = p->t;
    p->dead = true;
    htable_remove(&t->by_ufrag, &p->by_ufrag);
    peer_unlink_addr(p);
    timer_stop(&t->timers, &p->tn);
    rtc_tcp_peer_gone(p);
    p->conn = NULL;
    if (p->prev) p->prev->next = p->next;
    else t->peers = p->next;
    if (p->next) p->next->prev = p->prev;
    t->npeers--;
    if (p->connected) t->npeers_connected--;
    if (t->depth) {
        p->next = t->zombies;
        t->zombies = p;
    } else {
        peer_destroy(p);
    }
}

void rtc_peer_gone(struct rtc_peer *p, enum rtc_gone_reason why)
{
    if (p->dead) return;
    struct rtc_transport *t = p->t;
    log_info("rtc: peer %s (%s) gone: %s", p->ufrag, p->remote[0] ? p->remote : "no path", rtc_gone_reason_name(why));
    t->depth++;
    p->dead = true;  /* a close from inside gone is a no-op */
    if (t->cb.gone && !t->freeing) t->cb.gone(t->cb.user, p, why);
    t->depth--;
    peer_retire(p);
    rtc_after_dispatch(t);
}

/* The earliest of the peer's deadlines. */
static void peer_arm(struct rtc_peer *p)
{
    struct rtc_transport *t = p->t;
    uint64_t deadline = p->connected ? p->consent_ms + t->cfg.consent_timeout_ms
                                     : p->created_ms + t->cfg.connect_timeout_ms;
    if (!p->connected) {
        int64_t d = dtls_session_timeout_ms(p->dtls);
        if (d >= 0 && now_ms(t) + (uint64_t)d < deadline) deadline = now_ms(t) + (uint64_t)d;
    }
    if (!timer_armed(&p->tn) || p->tn.deadline_ms != deadline) {
        timer_start(&t->timers, &p->tn, deadline, rtc_peer_timer_fired);
        t->timers_dirty = true;
    }
}

void rtc_peer_timer_fired(struct timer_node *n, uint64_t now)
{
    struct rtc_peer *p = container_of(n, struct rtc_peer, tn);
    if (p->dead) return;
    if (!p->connected) {
        int64_t d = dtls_session_timeout_ms(p->dtls);
        const char *why = NULL;
        if (d == 0 && dtls_session_handle_timeout(p->dtls, &p->dtls_io, &why) != 0) {
            p->t->stats.dtls_failed++;
            log_info("rtc: peer %s DTLS: %s", p->ufrag, why ? why : "failed");
            rtc_peer_gone(p, RTC_GONE_DTLS_FAILED);
            return;
        }
        if (now >= p->created_ms + p->t->cfg.connect_timeout_ms) {
            rtc_peer_gone(p, RTC_GONE_CONNECT_TIMEOUT);
            return;
        }
    } else if (now >= p->consent_ms + p->t->cfg.consent_timeout_ms) {
        rtc_peer_gone(p, RTC_GONE_CONSENT_EXPIRED);
        return;
    }
    peer_arm(p);
}

/* ---- the timer and the end of each dispatch */

static void on_timer(uv_timer_t *h)
{
    struct rtc_transport *t = h->data;
    t->depth++;
    timer_run(&t->timers, now_ms(t));
    t->depth--;
    t->timers_dirty = true;
    rtc_after_dispatch(t);
}

static void rearm(struct rtc_transport *t)
{
    t->timers_dirty = false;
    uint64_t next = timer_next_deadline(&t->timers);
    if (next == UINT64_MAX) {
        uv_timer_stop(&t->timer);
        return;
    }
    uint64_t now = now_ms(t);
    uv_timer_start(&t->timer, on_timer, next > now ? next - now : 0, 0);
}

static void transport_finish_free(struct rtc_transport *t);

void rtc_after_dispatch(struct rtc_transport *t)
{
    if (t->depth) return;
    while (t->zombies) {
        struct rtc_peer *p = t->zombies;
        t->zombies = p->next;
        peer_destroy(p);
    }
    if (t->free_pending) {
        transport_finish_free(t);
        return;
    }
    if (t->timers_dirty) rearm(t);
}

/* ---- ICE */

static struct rtc_peer *peer_by_ufrag(struct rtc_transport *t, stun_bytes_t u)
{
    str_t key = str_make((const char *)u.p, u.len);
    for (struct hnode *n = htable_first(&t->by_ufrag, str_hash(key)); n; n = htable_next(n)) {
        struct rtc_peer *p = container_of(n, struct rtc_peer, by_ufrag);
        if (strlen(p->ufrag) == u.len && memcmp(p->ufrag, u.p, u.len) == 0) return p;
    }
    return NULL;
}

static struct rtc_peer *peer_by_addr(struct rtc_transport *t, const struct sockaddr_storage *a)
{
    for (struct hnode *n = htable_first(&t->by_addr, addr_hash(a)); n; n = htable_next(n)) {
        struct rtc_peer *p = container_of(n, struct rtc_peer, by_addr);
        if (transport_addr_equal(&p->addr, a)) return p;
    }
    return NULL;
}

/* On a dual-stack socket IPv4 peers appear as ::ffff:a.b.c.d; the browser
 * knows its address as IPv4, so XOR-MAPPED-ADDRESS says it that way. */
static void unmap_v4(const struct sockaddr_storage *from, struct sockaddr_storage *out)
{
    *out = *from;
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)from;
    if (from->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) return;
    struct sockaddr_in v4;
    memset(&v4, 0, sizeof(v4));
    v4.sin_family = AF_INET;
    v4.sin_port = v6->sin6_port;
    memcpy(&v4.sin_addr, v6->sin6_addr.s6_addr + 12, 4);
    memset(out, 0, sizeof(*out));
    memcpy(out, &v4, sizeof(v4));
}

/* The pair the browser nominated (or first proved) becomes the path. A
 * source another peer held moves to this one: the nomination is newer. */
static void select_path(struct rtc_peer *p, const struct sockaddr_storage *from, struct rtc_tcp_conn *conn)
{
    struct rtc_transport *t = p->t;
    peer_unlink_addr(p);
    p->conn = conn;
    p->addr = *from;
    p->has_path = true;
    transport_addr_text(from, p->remote, sizeof(p->remote));
    if (!conn) {
        struct rtc_peer *other = peer_by_addr(t, from);
        if (other) {
            peer_unlink_addr(other);
            other->has_path = false;
            other->remote[0] = '\0';
        }
        htable_insert(&t->by_addr, &p->by_addr, addr_hash(from));
    }
    log_debug("rtc: peer %s path %s%s", p->ufrag, p->remote, conn ? " (tcp)" : "");
}

/* A STUN message from `from` (conn: the ICE-TCP connection it came on, NULL
 * for UDP). Returns the peer it authenticated for, or NULL. */
struct rtc_peer *rtc_on_stun(struct rtc_transport *t, const uint8_t *buf, size_t len,
                             const struct sockaddr_storage *from, struct rtc_tcp_conn *conn)
{
    stun_msg_t m;
    const char *why = NULL;
    if (stun_parse(buf, len, &m, &why) == STUN_PARSE_NOT_STUN) {
        t->stats.dropped_garbage++;
        rtc_refuse_log(t, from, "not STUN");
        return NULL;
    }
    int cls = stun_msg_class(m.type);
    /* Indications are keepalives (RFC 8445 §11): nothing to answer. */
    if (cls == STUN_CLASS_INDICATION) return NULL;
    stun_bytes_t local, remote;
    struct rtc_peer *p = NULL;
    if (cls == STUN_CLASS_REQUEST && stun_username_split(m.username, &local, &remote) == 0)
        p = peer_by_ufrag(t, local);
    /* A connection speaks for the one peer it first authenticated for. */
    if (p && conn && conn->peer && conn->peer != p) p = NULL;
    if (!p) {
        /* Strangers get no answer: a 401 to anyone who asks would make
         * the port a reflector. */
        t->stats.stun_refused++;
        rtc_refuse_log(t, from, cls == STUN_CLASS_REQUEST ? "STUN request for an unknown ufrag" : "STUN response");
        return NULL;
    }
    p->st.stun_requests++;
    uint8_t out[STUN_MAX_MESSAGE];
    size_t outlen = 0;
    stun_ice_info_t info;
    struct sockaddr_storage mapped;
    unmap_v4(from, &mapped);
    int v = stun_ice_lite_answer(buf, len, (const struct sockaddr *)&mapped, p->ufrag, p->pwd, out, sizeof(out),
                                 &outlen, &info);
    if (v == STUN_ICE_SUCCESS && p->remote_ufrag[0] &&
        (info.remote_ufrag.len != strlen(p->remote_ufrag) ||
         memcmp(info.remote_ufrag.p, p->remote_ufrag, info.remote_ufrag.len) != 0)) {
        t->stats.stun_refused++;
        rtc_refuse_log(t, from, "STUN request with the wrong remote ufrag");
        return NULL;
    }
    if (v != STUN_ICE_SUCCESS) {
        t->stats.stun_refused++;
        rtc_refuse_log(t, from, info.why ? info.why : "STUN refused");
        if (v == STUN_ICE_ERROR && outlen) {
            if (conn) rtc_tcp_send(conn, out, outlen);
            else rtc_udp_send(t, from, out, outlen);
        }
        return NULL;
    }
    t->stats.stun_ok++;
    p->consent_ms = now_ms(t);
    if (conn) rtc_tcp_adopt(conn, p);
    bool same = p->has_path && transport_addr_equal(&p->addr, from) && p->conn == conn;
    if (!p->has_path || (info.use_candidate && !same)) select_path(p, from, conn);
    int rc = conn ? rtc_tcp_send(conn, out, outlen) : rtc_udp_send(t, from, out, outlen);
    if (rc != 0) p->st.send_errors++;
    return p;
}

/* ---- DTLS */

static void dtls_established(struct rtc_peer *p)
{
    struct rtc_transport *t = p->t;
    struct dtls_srtp_keys k;
    int st = dtls_session_srtp_keys(p->dtls, &k);
    if (st == 0) st = msrtp_pair_from_dtls(&k, DTLS_ROLE_SERVER, &p->srtp_in, &p->srtp_out);
    memset(&k, 0, sizeof(k));
    if (st != 0) {
        t->stats.dtls_failed++;
        log_warn("rtc: peer %s: SRTP setup failed: %s", p->ufrag, msrtp_strerror(st));
        rtc_peer_gone(p, RTC_GONE_DTLS_FAILED);
        return;
    }
    p->connected = true;
    p->consent_ms = now_ms(t);
    t->npeers_connected++;
    t->stats.dtls_handshakes++;
    if (msrtp_profile(p->srtp_out) == DTLS_SRTP_AEAD_AES_128_GCM) t->stats.srtp_gcm++;
    else t->stats.srtp_cm++;
    peer_arm(p);
    log_debug("rtc: peer %s connected via %s, SRTP %s", p->ufrag, p->remote,
              dtls_srtp_profile_name(msrtp_profile(p->srtp_out)));
    if (t->cb.connected && !t->freeing) t->cb.connected(t->cb.user, p);
}

void rtc_on_dtls(struct rtc_transport *t, struct rtc_peer *p, const uint8_t *buf, size_t len)
{
    const char *why = NULL;
    if (dtls_session_input(p->dtls, buf, len, &p->dtls_io, &why) != 0) {
        if (why && strcmp(why, "close_notify") == 0) {
            rtc_peer_gone(p, RTC_GONE_DTLS_CLOSED);
        } else if (why && strcmp(why, "not DTLS") == 0) {
            t->stats.dropped_garbage++;
        } else {
            t->stats.dtls_failed++;
            log_info("rtc: peer %s (%s) DTLS: %s", p->ufrag, p->remote, why ? why : "failed");
            rtc_peer_gone(p, RTC_GONE_DTLS_FAILED);
        }
        return;
    }
    if (!p->connected && dtls_session_established(p->dtls)) dtls_established(p);
    else if (!p->connected) peer_arm(p);
}

/* ---- SRTP */

void rtc_on_srtp(struct rtc_transport *t, struct rtc_peer *p, uint8_t *buf, size_t len,
                 const struct sockaddr_storage *from)
{
    if (!p->connected) {
        t->stats.dropped_before_dtls++;
        rtc_refuse_log(t, from, "RTP before DTLS");
        return;
    }
    p->st.bytes_in += len;
    /* RFC 5761 §4: with rtcp-mux, payload types 64-95 (second byte
     * 192-223) are RTCP packet types, never RTP. */
    bool rtcp = len >= 2 && buf[1] >= 192 && buf[1] <= 223;
    size_t n = len;
    int st = rtcp ? msrtp_unprotect_rtcp(p->srtp_in, buf, &n) : msrtp_unprotect_rtp(p->srtp_in, buf, &n);
    if (st != 0) {
        p->st.srtp_errors++;
        t->stats.srtp_errors++;
        /* Replays are the network's doing, not worth a line each. */
        if (st != MSRTP_ERR_REPLAY) rtc_refuse_log(t, from, rtcp ? "SRTCP that does not unprotect" : "SRTP that does not unprotect");
        return;
    }
    /* Authenticated SRTP/SRTCP from the selected path refreshes consent
     * as a Binding request does: it proves the same thing RFC 7675 asks
     * for (the peer at this address holds the DTLS-keyed session and
     * wants the flow), and it cannot be forged without the keys. Stacks
     * that keep a path alive only with unauthenticated Binding
     * indications (libnice, GStreamer's webrtcbin) would otherwise be
     * dropped while their media and RTCP flow. */
    p->consent_ms = now_ms(t);
    /* A transport freed from a callback says nothing more. */
    if (t->freeing) return;
    if (rtcp) {
        p->st.rtcp_in++;
        if (t->cb.rtcp) t->cb.rtcp(t->cb.user, p, buf, n);
    } else {
        p->st.rtp_in++;
        if (t->cb.rtp) t->cb.rtp(t->cb.user, p, buf, n);
    }
}

/* ---- UDP receive */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct rtc_transport *t = h->data;
    *buf = uv_buf_init((char *)t->rx, sizeof(t->rx));
}

static void udp_dispatch(struct rtc_transport *t, uint8_t *buf, size_t len, const struct sockaddr_storage *from)
{
    switch (media_demux_kind(buf[0])) {
    case MEDIA_DEMUX_STUN:
        rtc_on_stun(t, buf, len, from, NULL);
        return;
    case MEDIA_DEMUX_DTLS:
    case MEDIA_DEMUX_RTP: {
        struct rtc_peer *p = peer_by_addr(t, from);
        if (!p) {
            t->stats.dropped_unknown_source++;
            rtc_refuse_log(t, from, "DTLS/RTP from an address without ICE");
            return;
        }
        if (buf[0] >= 128) rtc_on_srtp(t, p, buf, len, from);
        else rtc_on_dtls(t, p, buf, len);
        return;
    }
    default:
        t->stats.dropped_garbage++;
        rtc_refuse_log(t, from, "a packet that is not STUN, DTLS or RTP");
        return;
    }
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    struct rtc_transport *t = h->data;
    (void)buf;
    if (nread == 0 || !addr || t->free_pending) return;
    t->rx_ns = uv_hrtime();   /* forwarding delay starts here (batch_flush) */
    if (nread < 0) {
        log_warn_rl("rtc: UDP receive: %s", uv_strerror((int)nread));
        return;
    }
    struct sockaddr_storage from;
    memset(&from, 0, sizeof(from));
    memcpy(&from, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    /* Longer than RTC_MAX_PACKET (or cut by the buffer) is nothing WebRTC
     * sends, and the callbacks are promised RTC_SEND_SLACK spare bytes. */
    if ((flags & UV_UDP_PARTIAL) || (size_t)nread > RTC_MAX_PACKET) {
        t->stats.dropped_garbage++;
        rtc_refuse_log(t, &from, "an oversized datagram");
        return;
    }
    t->depth++;
    udp_dispatch(t, t->rx, (size_t)nread, &from);
    t->depth--;
    rtc_after_dispatch(t);
}

/* ---- candidates */

static bool is_wildcard(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

static void add_address(struct rtc_transport *t, const char *ip)
{
    if (t->naddrs >= RTC_MAX_ADDRS) return;
    for (size_t i = 0; i < t->naddrs; i++)
        if (strcmp(t->addrs[i], ip) == 0) return;
    snprintf(t->addrs[t->naddrs++], sizeof(t->addrs[0]), "%s", ip);
}

/* A wildcard bind announces each interface address of its family (both for
 * "::", which takes IPv4 too): loopback only when nothing else exists, and
 * never IPv6 link-local (a candidate cannot carry the scope). */
static void enumerate_interfaces(struct rtc_transport *t, int family)
{
    uv_interface_address_t *ifs = NULL;
    int n = 0;
    if (uv_interface_addresses(&ifs, &n) != 0) return;
    for (int pass = 0; pass < 2 && t->naddrs == 0; pass++) {
        for (int i = 0; i < n; i++) {
            const struct sockaddr *sa = (const struct sockaddr *)&ifs[i].address;
            if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) continue;
            if (family == AF_INET && sa->sa_family != AF_INET) continue;
            if ((pass == 0) != !ifs[i].is_internal) continue;
            if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&ifs[i].address.address6.sin6_addr)) continue;
            char ip[INET6_ADDRSTRLEN];
            if (sa->sa_family == AF_INET) uv_ip4_name(&ifs[i].address.address4, ip, sizeof(ip));
            else uv_ip6_name(&ifs[i].address.address6, ip, sizeof(ip));
            add_address(t, ip);
        }
    }
    uv_free_interface_addresses(ifs, n);
}

static void make_candidates(struct rtc_transport *t, const struct sockaddr_storage *bound, const char *bind_ip)
{
    if (t->cfg.announce_ip && t->cfg.announce_ip[0]) add_address(t, t->cfg.announce_ip);
    else if (!is_wildcard(bound)) add_address(t, bind_ip);
    else enumerate_interfaces(t, bound->ss_family);
}

size_t rtc_transport_candidates(const struct rtc_transport *t, struct wsdp_candidate *out, size_t max)
{
    size_t n = 0;
    for (int tcp = 0; tcp < 2; tcp++) {
        if (tcp && !t->tcp_enabled) break;
        for (size_t i = 0; i < t->naddrs && n < max; i++, n++) {
            memset(&out[n], 0, sizeof(out[n]));
            snprintf(out[n].ip, sizeof(out[n].ip), "%s", t->addrs[i]);
            out[n].port = t->port;
            out[n].tcp = tcp;
        }
    }
    return n;
}

/* ---- transport lifetime */

void rtc_handle_released(struct rtc_transport *t)
{
    if (--t->open_handles == 0) free(t);
}

static void handle_closed(uv_handle_t *h) { rtc_handle_released(h->data); }

void rtc_close_handle(struct rtc_transport *t, uv_handle_t *h)
{
    h->data = t;
    uv_close(h, handle_closed);
}

static void transport_finish_free(struct rtc_transport *t)
{
    t->free_pending = false;
    t->depth = 1;   /* nothing below frees the transport again */
    while (t->peers) {
        struct rtc_peer *p = t->peers;
        if (p->connected) dtls_session_shutdown(p->dtls, &p->dtls_io);
        p->connected = false;
        t->npeers_connected = 0;
        peer_retire(p);
    }
    while (t->zombies) {
        struct rtc_peer *p = t->zombies;
        t->zombies = p->next;
        peer_destroy(p);
    }
    rtc_tcp_free(t);
    htable_free(&t->by_ufrag);
    htable_free(&t->by_addr);
    timer_service_free(&t->timers);
    dtls_context_free(t->dtls);
    t->dtls = NULL;
    uv_timer_stop(&t->timer);
    /* The last close callback frees t (handle_closed). */
    rtc_close_handle(t, (uv_handle_t *)&t->udp);
    rtc_close_handle(t, (uv_handle_t *)&t->timer);
}

void rtc_transport_free(struct rtc_transport *t)
{
    if (!t || t->freeing) return;
    t->freeing = true;
    if (t->depth) {
        t->free_pending = true;
        return;
    }
    transport_finish_free(t);
}

static void set_defaults(struct rtc_config *c)
{
    if (!c->bind_ip || !c->bind_ip[0]) c->bind_ip = "0.0.0.0";
    if (!c->connect_timeout_ms) c->connect_timeout_ms = DEFAULT_CONNECT_MS;
    if (!c->consent_timeout_ms) c->consent_timeout_ms = DEFAULT_CONSENT_MS;
    if (!c->max_peers) c->max_peers = DEFAULT_MAX_PEERS;
}

/* With port 0 and ICE-TCP on, the UDP and TCP sockets need one free port
 * number for both, and a number the kernel gives a UDP socket may be held
 * by a TCP socket elsewhere (an outgoing connection's ephemeral port). Both
 * are bound here, on the same number, before libuv takes them over, so
 * nothing can take the number between the two binds. -errno, or 0 with
 * *ufd and *tfd open. */
static int bind_port_pair(const struct sockaddr_storage *addr, int *ufd, int *tfd)
{
    socklen_t alen = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int last = EADDRINUSE;
    for (int tries = 0; tries < 64; tries++) {
        struct sockaddr_storage a = *addr;
        int u = socket(addr->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int k = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        socklen_t blen = sizeof(a);
        bool ok = u >= 0 && k >= 0 && bind(u, (const struct sockaddr *)&a, alen) == 0 &&
                  getsockname(u, (struct sockaddr *)&a, &blen) == 0 &&
                  setsockopt(k, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
                  bind(k, (const struct sockaddr *)&a, alen) == 0;
        if (ok) {
            *ufd = u;
            *tfd = k;
            return 0;
        }
        last = errno;
        if (u >= 0) close(u);
        if (k >= 0) close(k);
        if (last != EADDRINUSE) break; /* only a taken TCP number is worth another try */
    }
    return -last;
}

static int udp_open(struct rtc_transport *t, const struct sockaddr_storage *addr, int fd, char *err, size_t errcap)
{
    int rc = fd >= 0 ? uv_udp_open(&t->udp, fd) : uv_udp_bind(&t->udp, (const struct sockaddr *)addr, 0);
    if (rc && fd >= 0) close(fd); /* not libuv's yet */
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    if (!rc) rc = uv_udp_getsockname(&t->udp, (struct sockaddr *)&bound, &blen);
    if (!rc) {
        /* Best effort: a bigger buffer rides out bursts of many peers. */
        int size = SOCKET_BUFFER;
        uv_recv_buffer_size((uv_handle_t *)&t->udp, &size);
        size = SOCKET_BUFFER;
        uv_send_buffer_size((uv_handle_t *)&t->udp, &size);
        t->port = transport_addr_port(&bound);
        t->udp_family = bound.ss_family;
        uv_os_fd_t fd;
        t->udp_fd = uv_fileno((uv_handle_t *)&t->udp, &fd) == 0 ? fd : -1;
        rc = uv_udp_recv_start(&t->udp, udp_alloc, udp_recv);
    }
    if (rc) snprintf(err, errcap, "rtc: UDP %s:%u: %s", t->cfg.bind_ip, t->cfg.port, uv_strerror(rc));
    return rc;
}

struct rtc_transport *rtc_transport_new(uv_loop_t *loop, const struct rtc_config *cfg, const struct rtc_callbacks *cb,
                                        char *err, size_t errcap)
{
    struct rtc_config c = *cfg;
    set_defaults(&c);
    msrtp_global_init();   /* SRTP's primitives chosen before any peer (srtp_crypto.h) */
    struct sockaddr_storage addr;
    if (transport_addr_parse(c.bind_ip, strlen(c.bind_ip), c.port, &addr) != 0) {
        snprintf(err, errcap, "rtc: bind address %s is not a numeric IP", c.bind_ip);
        return NULL;
    }
    struct rtc_transport *t = calloc(1, sizeof(*t));
    if (t) t->udp_fd = -1;
    if (!t) {
        snprintf(err, errcap, "rtc: out of memory");
        return NULL;
    }
    t->loop = loop;
    t->cfg = c;
    snprintf(t->bind_ip, sizeof(t->bind_ip), "%s", c.bind_ip);
    t->cfg.bind_ip = t->bind_ip;
    if (c.announce_ip) snprintf(t->announce_ip, sizeof(t->announce_ip), "%s", c.announce_ip);
    t->cfg.announce_ip = t->announce_ip;
    if (cb) t->cb = *cb;
    htable_init(&t->by_ufrag);
    htable_init(&t->by_addr);
    timer_service_init(&t->timers);
    t->dtls = dtls_context_new(0, err, errcap);
    if (!t->dtls) {
        timer_service_free(&t->timers);
        free(t);
        return NULL;
    }
    uv_udp_init(loop, &t->udp);
    uv_timer_init(loop, &t->timer);
    t->udp.data = t;
    t->timer.data = t;
    t->open_handles = 2;
    int ufd = -1, tfd = -1;
    if (c.tcp && c.port == 0) {
        int rc = bind_port_pair(&addr, &ufd, &tfd);
        if (rc < 0) {
            snprintf(err, errcap, "rtc: UDP and ICE-TCP %s: no port free for both: %s", c.bind_ip, strerror(-rc));
            transport_finish_free(t);
            return NULL;
        }
    }
    if (udp_open(t, &addr, ufd, err, errcap) != 0) {
        if (tfd >= 0) close(tfd);
        transport_finish_free(t);
        return NULL;
    }
    /* ICE-TCP on the same port number the UDP socket got. */
    if (addr.ss_family == AF_INET) ((struct sockaddr_in *)&addr)->sin_port = htons(t->port);
    else ((struct sockaddr_in6 *)&addr)->sin6_port = htons(t->port);
    if (c.tcp && rtc_tcp_open(t, &addr, tfd, err, errcap) != 0) {
        transport_finish_free(t);
        return NULL;
    }
    make_candidates(t, &addr, c.bind_ip);
    return t;
}

uint16_t rtc_transport_port(const struct rtc_transport *t) { return t->port; }
const char *rtc_transport_fingerprint(const struct rtc_transport *t) { return dtls_context_fingerprint(t->dtls); }

void rtc_transport_get_stats(const struct rtc_transport *t, struct rtc_transport_stats *out)
{
    *out = t->stats;
    out->peers = t->npeers;
    out->peers_connected = t->npeers_connected;
}

/* ---- peers */

struct rtc_peer *rtc_peer_new(struct rtc_transport *t, const char *remote_ufrag, const uint8_t remote_fp[DTLS_FP_LEN],
                              void *user)
{
    if (t->freeing || t->npeers >= t->cfg.max_peers) return NULL;
    struct rtc_peer *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->t = t;
    p->user = user;
    p->dtls = dtls_session_new(t->dtls, DTLS_ROLE_SERVER, remote_fp);
    if (!p->dtls) goto fail;
    if (remote_ufrag) snprintf(p->remote_ufrag, sizeof(p->remote_ufrag), "%s", remote_ufrag);
    /* 48 random bits make a clash rare; it is still checked. */
    for (int tries = 0;; tries++) {
        if (tries == 8 || random_token(p->ufrag, RTC_UFRAG_LEN) != 0) goto fail;
        if (!peer_by_ufrag(t, (stun_bytes_t){(const uint8_t *)p->ufrag, RTC_UFRAG_LEN})) break;
    }
    if (random_token(p->pwd, RTC_PWD_LEN) != 0) goto fail;
    if (htable_insert(&t->by_ufrag, &p->by_ufrag, str_hash(str_from_cstr(p->ufrag))) != 0) goto fail;
    p->dtls_io.user = p;
    p->dtls_io.send = dtls_send;
    timer_node_init(&p->tn);
    p->created_ms = now_ms(t);
    p->next = t->peers;
    if (t->peers) t->peers->prev = p;
    t->peers = p;
    t->npeers++;
    peer_arm(p);
    rtc_after_dispatch(t);
    return p;
fail:
    dtls_session_free(p->dtls);
    free(p);
    return NULL;
}

const char *rtc_peer_ufrag(const struct rtc_peer *p) { return p->ufrag; }
const char *rtc_peer_pwd(const struct rtc_peer *p) { return p->pwd; }
void *rtc_peer_user(const struct rtc_peer *p) { return p->user; }
void rtc_peer_set_user(struct rtc_peer *p, void *user) { p->user = user; }
bool rtc_peer_connected(const struct rtc_peer *p) { return p->connected && !p->dead; }
const char *rtc_peer_remote(const struct rtc_peer *p) { return p->remote; }

void rtc_peer_close(struct rtc_peer *p)
{
    if (!p || p->dead) return;
    if (p->connected) dtls_session_shutdown(p->dtls, &p->dtls_io);
    log_debug("rtc: peer %s closed by us", p->ufrag);
    peer_retire(p);
}

static void count_sent(struct rtc_peer *p, bool rtcp, size_t n)
{
    if (rtcp) p->st.rtcp_out++;
    else p->st.rtp_out++;
    p->st.bytes_out += n;
}

/* Queues a protected copy of pkt for the next sendmmsg. */
static int batch_add(struct rtc_peer *p, const uint8_t *pkt, size_t len, bool rtcp)
{
    struct rtc_transport *t = p->t;
    if (t->nbatch == RTC_BATCH) {
        rtc_transport_batch_flush(t);
        t->batching = true;   /* the caller's batch goes on */
    }
    struct rtc_batch_slot *b = &t->batch[t->nbatch];
    memcpy(b->buf, pkt, len);
    size_t n = len;
    int st = rtcp ? msrtp_protect_rtcp(p->srtp_out, b->buf, &n, sizeof(b->buf))
                  : msrtp_protect_rtp(p->srtp_out, b->buf, &n, sizeof(b->buf));
    if (st != 0) {
        p->st.srtp_errors++;
        return -1;
    }
    b->peer = p;
    b->rtcp = rtcp;
    t->batch_iov[t->nbatch] = (struct iovec){.iov_base = b->buf, .iov_len = n};
    t->batch_msg[t->nbatch] = (struct mmsghdr){.msg_hdr = {
        .msg_name = &p->addr,
        .msg_namelen = p->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
        .msg_iov = &t->batch_iov[t->nbatch],
        .msg_iovlen = 1,
    }};
    t->nbatch++;
    return 0;
}

static int peer_send(struct rtc_peer *p, uint8_t *pkt, size_t len, bool rtcp)
{
    if (p->dead || !p->connected || len > RTC_MAX_PACKET) return -1;
    struct rtc_transport *t = p->t;
    if (t->batching && !p->conn && p->has_path && t->udp_fd >= 0 && p->addr.ss_family == t->udp_family)
        return batch_add(p, pkt, len, rtcp);
    size_t n = len;
    int st = rtcp ? msrtp_protect_rtcp(p->srtp_out, pkt, &n, len + RTC_SEND_SLACK)
                  : msrtp_protect_rtp(p->srtp_out, pkt, &n, len + RTC_SEND_SLACK);
    if (st != 0) {
        p->st.srtp_errors++;
        return -1;
    }
    if (peer_path_send(p, pkt, n) != 0) {
        p->st.send_errors++;
        return -1;
    }
    count_sent(p, rtcp, n);
    return 0;
}

void rtc_transport_batch_begin(struct rtc_transport *t) { t->batching = true; }

/* k packets just left: each waited from its datagram's arrival (rx_ns)
 * until now, in RTC_DELAY_BUCKET_US steps, the last bucket open-ended. */
static void record_delay(struct rtc_transport *t, unsigned k)
{
    if (!t->rx_ns) return;
    uint64_t us = (uv_hrtime() - t->rx_ns) / 1000;
    uint64_t b = us / RTC_DELAY_BUCKET_US;
    t->delay_hist[b < RTC_DELAY_BUCKETS ? b : RTC_DELAY_BUCKETS - 1] += k;
    t->delay_sum_us += us * k;
}

uint64_t rtc_transport_delay_sum_us(const struct rtc_transport *t) { return t->delay_sum_us; }

void rtc_transport_delay_histogram(const struct rtc_transport *t, uint64_t out[RTC_DELAY_BUCKETS])
{
    memcpy(out, t->delay_hist, sizeof(t->delay_hist));
}

/* sendmmsg stops at the first message the socket refuses: that one is
 * counted lost (as uv_udp_try_send's callers count a refusal) and the rest
 * go on, except after EAGAIN (the buffer is full: the rest would be
 * refused too). */
void rtc_transport_batch_flush(struct rtc_transport *t)
{
    unsigned off = 0;
    while (off < t->nbatch) {
        int k = sendmmsg(t->udp_fd, &t->batch_msg[off], t->nbatch - off, MSG_DONTWAIT);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            bool full = errno == EAGAIN || errno == EWOULDBLOCK;
            for (unsigned i = off; i < (full ? t->nbatch : off + 1); i++) t->batch[i].peer->st.send_errors++;
            if (full) break;
            off++;
            continue;
        }
        for (unsigned i = off; i < off + (unsigned)k; i++)
            count_sent(t->batch[i].peer, t->batch[i].rtcp, t->batch_iov[i].iov_len);
        record_delay(t, (unsigned)k);
        off += (unsigned)k;
    }
    t->nbatch = 0;
    t->batching = false;
}

int rtc_peer_send_rtp(struct rtc_peer *p, uint8_t *pkt, size_t len) { return peer_send(p, pkt, len, false); }
int rtc_peer_send_rtcp(struct rtc_peer *p, uint8_t *pkt, size_t len) { return peer_send(p, pkt, len, true); }

void rtc_peer_get_stats(const struct rtc_peer *p, struct rtc_peer_stats *out) { *out = p->st; }
