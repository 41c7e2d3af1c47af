/* test_rtc.c — the WebRTC transport (media/rtc.h) on a real libuv loop on
 * 127.0.0.1, against a client made in the test from the same blocks a
 * browser stands for: stun.h's request builder (ICE controlling side), a
 * DTLS client session (dtls.h) and msrtp (srtp.h) for its SRTP.
 *
 * The loop runs UV_RUN_ONCE until a condition holds or 10 s pass (a ticking
 * timer keeps it from blocking and drives the client's DTLS retransmits);
 * no test asserts on elapsed time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "base/log.h"
#include "media/dtls.h"
#include "media/rtc.h"
#include "media/srtp.h"
#include "media/stun.h"

#define CLIENT_UFRAG "cliUfrag"
#define WAIT_NS (10ull * 1000 * 1000 * 1000)

/* ---- what the server side reported */

struct rec {
    int connected, gone, rtp, rtcp;
    enum rtc_gone_reason why;
    struct rtc_peer *last;
    uint8_t rtp_pkt[2048], rtcp_pkt[2048];
    size_t rtp_len, rtcp_len;
    bool free_in_gone;          /* the gone callback frees the transport */
    bool close_in_rtp;          /* the rtp callback closes its peer */
    struct rtc_transport **tp;
};

/* ---- the client */

struct client {
    uv_udp_t udp;
    /* ICE-TCP instead of UDP when tcp_on (RFC 4571 frames both ways). */
    bool tcp_on, tcp_connected, tcp_closed;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uint8_t tbuf[4096];
    size_t tlen;
    struct sockaddr_storage self, server;
    struct dtls_context *ctx;
    struct dtls_session *dtls;
    struct dtls_io io;
    struct msrtp *in, *out;
    int dtls_failed;
    const char *dtls_why;
    uint8_t stun[2048];
    size_t stun_len;
    int stun_count;
    uint8_t media[2048];
    size_t media_len;
    int media_count, srtp_errors;
    uint8_t rx[2048];
};

struct env {
    uv_loop_t loop;
    uv_timer_t tick;
    struct rtc_transport *t;
    struct rec rec;
    struct client c;
    uint8_t server_fp[DTLS_FP_LEN], client_fp[DTLS_FP_LEN];
};

#define WAIT_FOR(e, cond)                                                                                      \
    do {                                                                                                       \
        uint64_t dl_ = uv_hrtime() + WAIT_NS;                                                                  \
        while (!(cond) && uv_hrtime() < dl_) uv_run(&(e)->loop, UV_RUN_ONCE);                                  \
        assert_true(cond);                                                                                     \
    } while (0)

/* Runs the loop for about ms more: only to show that nothing else happens. */
static void run_for(struct env *e, unsigned ms)
{
    uint64_t dl = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (uv_hrtime() < dl) uv_run(&e->loop, UV_RUN_ONCE);
}

static struct rtc_transport_stats stats(struct env *e)
{
    struct rtc_transport_stats s;
    rtc_transport_get_stats(e->t, &s);
    return s;
}

static int client_send(void *user, const void *data, size_t len)
{
    struct client *c = user;
    if (c->tcp_on) {
        uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
        uv_buf_t b[2] = {uv_buf_init((char *)hdr, 2), uv_buf_init((char *)data, (unsigned)len)};
        return uv_try_write((uv_stream_t *)&c->tcp, b, 2) == (int)(len + 2) ? 0 : -1;
    }
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return uv_udp_try_send(&c->udp, &b, 1, (const struct sockaddr *)&c->server) < 0 ? -1 : 0;
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct client *c = h->data;
    *buf = uv_buf_init((char *)c->rx, sizeof(c->rx));
}

static void client_on_dtls(struct client *c, const uint8_t *buf, size_t len)
{
    if (!c->dtls) return;
    const char *why = NULL;
    if (dtls_session_input(c->dtls, buf, len, &c->io, &why) != 0) {
        c->dtls_failed++;
        c->dtls_why = why;
        return;
    }
    if (!c->in && dtls_session_established(c->dtls)) {
        struct dtls_srtp_keys k;
        assert_int_equal(dtls_session_srtp_keys(c->dtls, &k), 0);
        assert_int_equal(msrtp_pair_from_dtls(&k, DTLS_ROLE_CLIENT, &c->in, &c->out), 0);
    }
}

/* One datagram or frame, in c->rx. */
static void client_packet(struct client *c, size_t len)
{
    media_demux_kind_t k = media_demux_kind(c->rx[0]);
    if (k == MEDIA_DEMUX_STUN) {
        memcpy(c->stun, c->rx, len);
        c->stun_len = len;
        c->stun_count++;
    } else if (k == MEDIA_DEMUX_DTLS) {
        client_on_dtls(c, c->rx, len);
    } else if (k == MEDIA_DEMUX_RTP && c->in) {
        bool rtcp = len >= 2 && c->rx[1] >= 192 && c->rx[1] <= 223;
        int st = rtcp ? msrtp_unprotect_rtcp(c->in, c->rx, &len) : msrtp_unprotect_rtp(c->in, c->rx, &len);
        if (st) {
            c->srtp_errors++;
            return;
        }
        memcpy(c->media, c->rx, len);
        c->media_len = len;
        c->media_count++;
    }
}

static void client_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    (void)buf, (void)flags;
    struct client *c = h->data;
    if (n <= 0 || !addr) return;
    client_packet(c, (size_t)n);
}

static void client_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct client *c = h->data;
    *buf = uv_buf_init((char *)c->tbuf + c->tlen, (unsigned)(sizeof(c->tbuf) - c->tlen));
}

static void client_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct client *c = s->data;
    if (n < 0) {
        c->tcp_closed = true;
        uv_read_stop(s);
        return;
    }
    c->tlen += (size_t)n;
    size_t off = 0;
    while (c->tlen - off >= 2) {
        size_t flen = (size_t)c->tbuf[off] << 8 | c->tbuf[off + 1];
        if (c->tlen - off < 2 + flen) break;
        memcpy(c->rx, c->tbuf + off + 2, flen);
        off += 2 + flen;
        client_packet(c, flen);
    }
    memmove(c->tbuf, c->tbuf + off, c->tlen - off);
    c->tlen -= off;
}

static void client_tcp_connected(uv_connect_t *req, int status)
{
    struct client *c = req->data;
    assert_int_equal(status, 0);
    c->tcp_connected = true;
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, client_tcp_alloc, client_tcp_read), 0);
}

static void on_tick(uv_timer_t *h)
{
    struct env *e = h->data;
    struct client *c = &e->c;
    const char *why;
    if (c->dtls && dtls_session_timeout_ms(c->dtls) == 0) dtls_session_handle_timeout(c->dtls, &c->io, &why);
}

/* ---- server callbacks */

static void on_connected(void *user, struct rtc_peer *p)
{
    struct rec *r = user;
    r->connected++;
    r->last = p;
}

static void on_rtp(void *user, struct rtc_peer *p, uint8_t *pkt, size_t len)
{
    struct rec *r = user;
    r->rtp++;
    memcpy(r->rtp_pkt, pkt, len);
    r->rtp_len = len;
    if (r->close_in_rtp) rtc_peer_close(p);
}

static void on_rtcp(void *user, struct rtc_peer *p, uint8_t *pkt, size_t len)
{
    (void)p;
    struct rec *r = user;
    r->rtcp++;
    memcpy(r->rtcp_pkt, pkt, len);
    r->rtcp_len = len;
}

static void on_gone(void *user, struct rtc_peer *p, enum rtc_gone_reason why)
{
    struct rec *r = user;
    r->gone++;
    r->why = why;
    r->last = p;
    rtc_peer_close(p);          /* allowed, and no second report */
    if (r->free_in_gone) {
        rtc_transport_free(*r->tp);
        *r->tp = NULL;
    }
}

/* ---- set up and tear down */

static void env_start(struct env *e, const struct rtc_config *cfg)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(uv_loop_init(&e->loop), 0);
    uv_timer_init(&e->loop, &e->tick);
    e->tick.data = e;
    uv_timer_start(&e->tick, on_tick, 5, 5);

    struct rtc_callbacks cb = {&e->rec, on_connected, on_rtp, on_rtcp, on_gone};
    char err[256] = "";
    e->t = rtc_transport_new(&e->loop, cfg, &cb, err, sizeof(err));
    if (!e->t) fail_msg("rtc_transport_new: %s", err);
    e->rec.tp = &e->t;
    assert_int_equal(dtls_fingerprint_parse(rtc_transport_fingerprint(e->t), e->server_fp), 0);

    struct client *c = &e->c;
    c->ctx = dtls_context_new(200, err, sizeof(err));
    assert_non_null(c->ctx);
    assert_int_equal(dtls_fingerprint_parse(dtls_context_fingerprint(c->ctx), e->client_fp), 0);
    c->io.user = c;
    c->io.send = client_send;
    uv_udp_init(&e->loop, &c->udp);
    c->udp.data = c;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_udp_bind(&c->udp, (const struct sockaddr *)&a, 0), 0);
    int len = sizeof(c->self);
    assert_int_equal(uv_udp_getsockname(&c->udp, (struct sockaddr *)&c->self, &len), 0);
    uv_ip4_addr("127.0.0.1", rtc_transport_port(e->t), (struct sockaddr_in *)&c->server);
    assert_int_equal(uv_udp_recv_start(&c->udp, client_alloc, client_recv), 0);
}

static struct rtc_config local_cfg(void)
{
    struct rtc_config cfg = {0};
    cfg.bind_ip = "127.0.0.1";
    return cfg;
}

static void env_stop(struct env *e)
{
    if (e->t) rtc_transport_free(e->t);
    e->t = NULL;
    dtls_session_free(e->c.dtls);
    msrtp_free(e->c.in);
    msrtp_free(e->c.out);
    dtls_context_free(e->c.ctx);
    uv_close((uv_handle_t *)&e->c.udp, NULL);
    if (e->c.tcp_on) uv_close((uv_handle_t *)&e->c.tcp, NULL);
    uv_close((uv_handle_t *)&e->tick, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    /* Every handle of the transport closed: it freed itself. */
    assert_int_equal(uv_loop_close(&e->loop), 0);
}

/* ---- client actions */

static void send_raw(struct env *e, const void *data, size_t len)
{
    assert_int_equal(client_send(&e->c, data, len), 0);
}

static void send_binding(struct env *e, const char *server_ufrag, const char *pwd, bool use_candidate,
                         uint8_t tid[STUN_TID_LEN])
{
    char username[64];
    snprintf(username, sizeof(username), "%s:%s", server_ufrag, CLIENT_UFRAG);
    for (int i = 0; i < STUN_TID_LEN; i++) tid[i] = (uint8_t)rand();
    uint8_t req[STUN_MAX_MESSAGE];
    size_t len = 0;
    assert_int_equal(stun_build_binding_request(tid, username, 0x6e7f00ff, use_candidate, true, 0x1122334455667788ull,
                                                (const uint8_t *)pwd, strlen(pwd), req, sizeof(req), &len),
                     0);
    send_raw(e, req, len);
}

static struct rtc_peer *new_peer(struct env *e, const uint8_t *fp)
{
    struct rtc_peer *p = rtc_peer_new(e->t, CLIENT_UFRAG, fp ? fp : e->client_fp, NULL);
    assert_non_null(p);
    return p;
}

static void ice(struct env *e, struct rtc_peer *p)
{
    uint8_t tid[STUN_TID_LEN];
    int before = e->c.stun_count;
    send_binding(e, rtc_peer_ufrag(p), rtc_peer_pwd(p), true, tid);
    WAIT_FOR(e, e->c.stun_count == before + 1);
}

static void dtls_start(struct env *e)
{
    e->c.dtls = dtls_session_new(e->c.ctx, DTLS_ROLE_CLIENT, e->server_fp);
    assert_non_null(e->c.dtls);
    const char *why = NULL;
    assert_int_equal(dtls_session_start(e->c.dtls, &e->c.io, &why), 0);
}

static struct rtc_peer *connect_peer(struct env *e)
{
    struct rtc_peer *p = new_peer(e, NULL);
    ice(e, p);
    dtls_start(e);
    WAIT_FOR(e, e->rec.connected == 1 && e->c.in != NULL);
    assert_ptr_equal(e->rec.last, p);
    assert_true(rtc_peer_connected(p));
    return p;
}

static size_t make_rtp(uint8_t *buf, uint16_t seq, const char *payload)
{
    uint8_t h[12] = {0x80, 96, (uint8_t)(seq >> 8), (uint8_t)seq, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef};
    memcpy(buf, h, 12);
    size_t n = strlen(payload);
    memcpy(buf + 12, payload, n);
    return 12 + n;
}

/* RTCP RR (PT 201) with no report blocks, and an APP-like tail of words. */
static size_t make_rtcp(uint8_t *buf)
{
    uint8_t rr[8] = {0x80, 201, 0, 1, 0xca, 0xfe, 0xba, 0xbe};
    memcpy(buf, rr, 8);
    return 8;
}

/* ---- tests */

static void test_binding_success(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    struct rtc_peer *p = new_peer(&e, NULL);
    assert_int_equal(strlen(rtc_peer_ufrag(p)), 8);
    assert_int_equal(strlen(rtc_peer_pwd(p)), 24);
    assert_string_equal(rtc_peer_remote(p), "");

    uint8_t tid[STUN_TID_LEN];
    send_binding(&e, rtc_peer_ufrag(p), rtc_peer_pwd(p), false, tid);
    WAIT_FOR(&e, e.c.stun_count == 1);
    stun_msg_t m;
    assert_int_equal(stun_parse(e.c.stun, e.c.stun_len, &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.type, STUN_BINDING_SUCCESS);
    assert_memory_equal(m.tid, tid, STUN_TID_LEN);
    assert_true(m.has_xor_mapped);
    const struct sockaddr_in *got = (const struct sockaddr_in *)&m.xor_mapped;
    const struct sockaddr_in *self = (const struct sockaddr_in *)&e.c.self;
    assert_int_equal(got->sin_family, AF_INET);
    assert_int_equal(got->sin_port, self->sin_port);
    assert_int_equal(got->sin_addr.s_addr, self->sin_addr.s_addr);
    const char *pwd = rtc_peer_pwd(p);
    assert_true(stun_verify_integrity(e.c.stun, &m, (const uint8_t *)pwd, strlen(pwd)));
    assert_true(stun_verify_fingerprint(e.c.stun, &m));

    /* The first valid request selected the path. */
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(self->sin_port));
    assert_string_equal(rtc_peer_remote(p), want);
    struct rtc_peer_stats ps;
    rtc_peer_get_stats(p, &ps);
    assert_int_equal(ps.stun_requests, 1);
    assert_int_equal(stats(&e).stun_ok, 1);
    assert_int_equal(stats(&e).peers, 1);
    assert_int_equal(stats(&e).peers_connected, 0);
    assert_false(rtc_peer_connected(p));
    env_stop(&e);
}

static void test_binding_refused(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    struct rtc_peer *p = new_peer(&e, NULL);
    uint8_t tid[STUN_TID_LEN];

    /* Wrong password: a 401 without integrity (RFC 8489 §9.1.3). */
    send_binding(&e, rtc_peer_ufrag(p), "not-the-password-at-all", true, tid);
    WAIT_FOR(&e, e.c.stun_count == 1);
    stun_msg_t m;
    assert_int_equal(stun_parse(e.c.stun, e.c.stun_len, &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.type, STUN_BINDING_ERROR);
    assert_true(m.has_error);
    assert_int_equal(m.error_code, 401);
    assert_int_equal(stats(&e).stun_refused, 1);
    assert_string_equal(rtc_peer_remote(p), "");

    /* Unknown ufrag: no answer at all. The valid request sent after it is
     * answered; the loopback keeps order, so one more response in all means
     * the first got none. */
    send_binding(&e, "nosuchuf", rtc_peer_pwd(p), true, tid);
    send_binding(&e, rtc_peer_ufrag(p), rtc_peer_pwd(p), true, tid);
    WAIT_FOR(&e, e.c.stun_count == 2);
    assert_int_equal(stun_parse(e.c.stun, e.c.stun_len, &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.type, STUN_BINDING_SUCCESS);
    assert_memory_equal(m.tid, tid, STUN_TID_LEN);
    assert_int_equal(stats(&e).stun_refused, 2);
    assert_int_equal(stats(&e).stun_ok, 1);
    env_stop(&e);
}

static void test_dtls_before_ice_dropped(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    struct rtc_peer *p = new_peer(&e, NULL);
    dtls_start(&e);
    WAIT_FOR(&e, stats(&e).dropped_unknown_source >= 1);
    assert_false(rtc_peer_connected(p));
    /* RTP-looking bytes from nowhere known are dropped the same way. */
    uint8_t pkt[64];
    size_t n = make_rtp(pkt, 1, "hello");
    uint64_t before = stats(&e).dropped_unknown_source;
    send_raw(&e, pkt, n);
    WAIT_FOR(&e, stats(&e).dropped_unknown_source == before + 1);
    assert_int_equal(e.rec.connected, 0);
    env_stop(&e);
}

static void test_rtp_before_dtls_and_garbage(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    struct rtc_peer *p = new_peer(&e, NULL);
    ice(&e, p);
    uint8_t pkt[64];
    size_t n = make_rtp(pkt, 1, "early");
    send_raw(&e, pkt, n);
    WAIT_FOR(&e, stats(&e).dropped_before_dtls == 1);
    static const uint8_t junk[] = {0xff, 0x01, 0x02, 0x03, 0x04};
    send_raw(&e, junk, sizeof(junk));
    WAIT_FOR(&e, stats(&e).dropped_garbage == 1);
    /* First byte says STUN, the rest is not. */
    static const uint8_t not_stun[] = {0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4};
    send_raw(&e, not_stun, sizeof(not_stun));
    WAIT_FOR(&e, stats(&e).dropped_garbage == 2);
    /* Oversized datagrams are refused before anything looks at them. */
    static uint8_t big[RTC_MAX_PACKET + 20];
    memset(big, 0x80, sizeof(big));
    send_raw(&e, big, sizeof(big));
    WAIT_FOR(&e, stats(&e).dropped_garbage == 3);
    assert_int_equal(e.rec.rtp, 0);
    env_stop(&e);
}

static void test_connect_and_media(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    struct rtc_peer *p = connect_peer(&e);
    assert_int_equal(stats(&e).peers_connected, 1);
    assert_int_equal(stats(&e).dtls_handshakes, 1);
    /* Our own client offers both profiles: GCM, cascade's first choice. */
    assert_int_equal(stats(&e).srtp_gcm, 1);
    assert_int_equal(stats(&e).srtp_cm, 0);

    /* Client → server: SRTP and SRTCP arrive as plaintext. */
    uint8_t plain[256], buf[256 + RTC_SEND_SLACK];
    size_t n = make_rtp(plain, 7, "video payload");
    memcpy(buf, plain, n);
    size_t len = n;
    assert_int_equal(msrtp_protect_rtp(e.c.out, buf, &len, sizeof(buf)), 0);
    send_raw(&e, buf, len);
    WAIT_FOR(&e, e.rec.rtp == 1);
    assert_int_equal(e.rec.rtp_len, n);
    assert_memory_equal(e.rec.rtp_pkt, plain, n);

    n = make_rtcp(plain);
    memcpy(buf, plain, n);
    len = n;
    assert_int_equal(msrtp_protect_rtcp(e.c.out, buf, &len, sizeof(buf)), 0);
    send_raw(&e, buf, len);
    WAIT_FOR(&e, e.rec.rtcp == 1);
    assert_int_equal(e.rec.rtcp_len, n);
    assert_memory_equal(e.rec.rtcp_pkt, plain, n);

    /* A replay does not reach the callback. */
    send_raw(&e, buf, len);
    WAIT_FOR(&e, stats(&e).srtp_errors == 1);
    assert_int_equal(e.rec.rtcp, 1);

    /* Server → client: protected in place, the client gets the same bytes. */
    n = make_rtp(plain, 100, "from the server");
    memcpy(buf, plain, n);
    assert_int_equal(rtc_peer_send_rtp(p, buf, n), 0);
    WAIT_FOR(&e, e.c.media_count == 1);
    assert_int_equal(e.c.media_len, n);
    assert_memory_equal(e.c.media, plain, n);
    n = make_rtcp(plain);
    memcpy(buf, plain, n);
    assert_int_equal(rtc_peer_send_rtcp(p, buf, n), 0);
    WAIT_FOR(&e, e.c.media_count == 2);
    assert_memory_equal(e.c.media, plain, n);

    struct rtc_peer_stats ps;
    rtc_peer_get_stats(p, &ps);
    assert_int_equal(ps.rtp_in, 1);
    assert_int_equal(ps.rtcp_in, 1);
    assert_int_equal(ps.rtp_out, 1);
    assert_int_equal(ps.rtcp_out, 1);
    assert_int_equal(ps.srtp_errors, 1);
    assert_true(ps.bytes_in > 0 && ps.bytes_out > 0);
    assert_int_equal(e.c.srtp_errors, 0);
    assert_int_equal(e.rec.connected, 1);
    assert_int_equal(e.rec.gone, 0);
    env_stop(&e);
}

/* Batched sends: the caller's buffer is left as it was, nothing leaves
 * before the flush, then everything does — more than one batch's worth,
 * so a full batch flushes itself midway — each packet intact and counted. */
static void test_batched_sends(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    struct rtc_peer *p = connect_peer(&e);
    enum { N = RTC_BATCH + 6 };
    uint8_t plain[256], buf[256 + RTC_SEND_SLACK];
    size_t n = make_rtp(plain, 7, "batched");
    rtc_transport_batch_begin(e.t);
    for (int i = 0; i < N; i++) {
        memcpy(buf, plain, n);
        buf[2] = (uint8_t)(i >> 8);   /* sequence numbers i: no replay refusal */
        buf[3] = (uint8_t)i;
        assert_int_equal(rtc_peer_send_rtp(p, buf, n), 0);
        assert_int_equal(buf[3], (uint8_t)i);
        assert_memory_equal(buf + 4, plain + 4, n - 4);   /* not protected in place */
    }
    rtc_transport_batch_flush(e.t);
    WAIT_FOR(&e, e.c.media_count == N);
    assert_int_equal(e.c.srtp_errors, 0);
    assert_int_equal(e.c.media_len, n);
    assert_memory_equal(e.c.media + 4, plain + 4, n - 4);   /* the last one, decrypted */
    struct rtc_peer_stats ps;
    rtc_peer_get_stats(p, &ps);
    assert_int_equal(ps.rtp_out, N);
    assert_int_equal(ps.send_errors, 0);
    /* After the flush a send goes out at once again. */
    memcpy(buf, plain, n);
    buf[3] = (uint8_t)N;
    assert_int_equal(rtc_peer_send_rtp(p, buf, n), 0);
    WAIT_FOR(&e, e.c.media_count == N + 1);
    env_stop(&e);
}

static void test_wrong_fingerprint(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    uint8_t wrong[DTLS_FP_LEN];
    memset(wrong, 0x5a, sizeof(wrong));
    struct rtc_peer *p = new_peer(&e, wrong);
    ice(&e, p);
    dtls_start(&e);
    WAIT_FOR(&e, e.rec.gone == 1);
    assert_int_equal(e.rec.why, RTC_GONE_DTLS_FAILED);
    assert_int_equal(e.rec.connected, 0);
    assert_int_equal(stats(&e).peers, 0);
    assert_int_equal(stats(&e).dtls_failed, 1);
    run_for(&e, 300);   /* client retransmits land nowhere: no second report */
    assert_int_equal(e.rec.gone, 1);
    env_stop(&e);
}

static void test_consent_expires(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    cfg.consent_timeout_ms = 300;
    env_start(&e, &cfg);
    connect_peer(&e);
    WAIT_FOR(&e, e.rec.gone == 1);
    assert_int_equal(e.rec.why, RTC_GONE_CONSENT_EXPIRED);
    assert_int_equal(stats(&e).peers, 0);
    assert_int_equal(stats(&e).peers_connected, 0);
    run_for(&e, 400);
    assert_int_equal(e.rec.gone, 1);
    env_stop(&e);
}

static void test_consent_refreshed(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    cfg.consent_timeout_ms = 1500;
    env_start(&e, &cfg);
    struct rtc_peer *p = connect_peer(&e);
    /* Binding requests keep it alive well past one consent period. */
    for (int i = 0; i < 20; i++) {
        ice(&e, p);
        run_for(&e, 100);
    }
    assert_int_equal(e.rec.gone, 0);
    assert_true(rtc_peer_connected(p));
    WAIT_FOR(&e, e.rec.gone == 1);
    assert_int_equal(e.rec.why, RTC_GONE_CONSENT_EXPIRED);
    env_stop(&e);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    cfg.connect_timeout_ms = 300;
    env_start(&e, &cfg);
    struct rtc_peer *p = new_peer(&e, NULL);
    ice(&e, p);   /* ICE alone is not enough */
    WAIT_FOR(&e, e.rec.gone == 1);
    assert_int_equal(e.rec.why, RTC_GONE_CONNECT_TIMEOUT);
    assert_ptr_equal(e.rec.last, p);
    assert_int_equal(stats(&e).peers, 0);
    run_for(&e, 400);
    assert_int_equal(e.rec.gone, 1);
    env_stop(&e);
}

static void test_close_notify_from_client(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    connect_peer(&e);
    dtls_session_shutdown(e.c.dtls, &e.c.io);
    WAIT_FOR(&e, e.rec.gone == 1);
    assert_int_equal(e.rec.why, RTC_GONE_DTLS_CLOSED);
    assert_int_equal(stats(&e).peers, 0);
    env_stop(&e);
}

static void test_peer_close_no_callback(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    struct rtc_peer *p = connect_peer(&e);
    rtc_peer_close(p);
    assert_int_equal(stats(&e).peers, 0);
    assert_int_equal(stats(&e).peers_connected, 0);
    /* The client hears close_notify. */
    WAIT_FOR(&e, e.c.dtls_failed == 1);
    assert_string_equal(e.c.dtls_why, "close_notify");
    /* Its media now comes from an address nobody owns. */
    uint8_t buf[128];
    size_t len = make_rtp(buf, 9, "late");
    assert_int_equal(msrtp_protect_rtp(e.c.out, buf, &len, sizeof(buf)), 0);
    send_raw(&e, buf, len);
    WAIT_FOR(&e, stats(&e).dropped_unknown_source == 1);
    assert_int_equal(e.rec.gone, 0);
    assert_int_equal(e.rec.rtp, 0);
    env_stop(&e);
}

static void test_max_peers(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    cfg.max_peers = 2;
    env_start(&e, &cfg);
    struct rtc_peer *a = new_peer(&e, NULL);
    struct rtc_peer *b = new_peer(&e, NULL);
    assert_string_not_equal(rtc_peer_ufrag(a), rtc_peer_ufrag(b));
    assert_null(rtc_peer_new(e.t, CLIENT_UFRAG, e.client_fp, NULL));
    rtc_peer_close(a);
    struct rtc_peer *c = rtc_peer_new(e.t, CLIENT_UFRAG, e.client_fp, &e);
    assert_non_null(c);
    assert_ptr_equal(rtc_peer_user(c), &e);
    rtc_peer_set_user(c, NULL);
    assert_null(rtc_peer_user(c));
    assert_int_equal(stats(&e).peers, 2);
    env_stop(&e);
}

static void test_free_with_live_peers(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    connect_peer(&e);
    new_peer(&e, NULL);
    new_peer(&e, NULL);
    rtc_transport_free(e.t);
    e.t = NULL;
    assert_int_equal(e.rec.gone, 0);
    env_stop(&e);   /* the loop closes with no handle left; ASan sees no leak */
}

static void test_free_inside_gone(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    cfg.connect_timeout_ms = 200;
    env_start(&e, &cfg);
    e.rec.free_in_gone = true;
    new_peer(&e, NULL);
    new_peer(&e, NULL);
    WAIT_FOR(&e, e.t == NULL);
    /* The other peer timed out in the same sweep: a freed transport no
     * longer reports. */
    assert_int_equal(e.rec.gone, 1);
    env_stop(&e);
}

/* Switches the client to ICE-TCP: connects to the transport's port. */
static void tcp_connect(struct env *e)
{
    struct client *c = &e->c;
    c->tcp_on = true;
    c->tcp_connected = c->tcp_closed = false;
    c->tlen = 0;
    uv_tcp_init(&e->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    assert_int_equal(uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&c->server, client_tcp_connected), 0);
    WAIT_FOR(e, c->tcp_connected);
    int len = sizeof(c->self);
    assert_int_equal(uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&c->self, &len), 0);
}

static void test_ice_tcp(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    cfg.tcp = true;
    env_start(&e, &cfg);
    struct wsdp_candidate cand[4];
    assert_int_equal(rtc_transport_candidates(e.t, cand, 4), 2);
    assert_false(cand[0].tcp);
    assert_true(cand[1].tcp);
    assert_int_equal(cand[1].port, rtc_transport_port(e.t));

    tcp_connect(&e);
    WAIT_FOR(&e, stats(&e).tcp_connections == 1);
    struct rtc_peer *p = connect_peer(&e);
    stun_msg_t m;
    assert_int_equal(stun_parse(e.c.stun, e.c.stun_len, &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.type, STUN_BINDING_SUCCESS);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(((struct sockaddr_in *)&e.c.self)->sin_port));
    assert_string_equal(rtc_peer_remote(p), want);

    uint8_t plain[256], buf[256 + RTC_SEND_SLACK];
    size_t n = make_rtp(plain, 1, "over tcp");
    memcpy(buf, plain, n);
    size_t len = n;
    assert_int_equal(msrtp_protect_rtp(e.c.out, buf, &len, sizeof(buf)), 0);
    send_raw(&e, buf, len);
    WAIT_FOR(&e, e.rec.rtp == 1);
    assert_memory_equal(e.rec.rtp_pkt, plain, n);
    n = make_rtp(plain, 2, "back over tcp");
    memcpy(buf, plain, n);
    assert_int_equal(rtc_peer_send_rtp(p, buf, n), 0);
    WAIT_FOR(&e, e.c.media_count == 1);
    assert_memory_equal(e.c.media, plain, n);

    /* The peer going closes its connection. */
    rtc_peer_close(p);
    WAIT_FOR(&e, e.c.tcp_closed);
    assert_int_equal(e.rec.gone, 0);
    env_stop(&e);
}

/* A client that stops reading: the server queues what the socket does not
 * take, then drops whole frames; once the client reads again, every frame
 * it gets is intact (the RFC 4571 framing never breaks). */
static void test_ice_tcp_backpressure(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    cfg.tcp = true;
    env_start(&e, &cfg);
    tcp_connect(&e);
    struct rtc_peer *p = connect_peer(&e);
    uv_read_stop((uv_stream_t *)&e.c.tcp);
    int sent = 0, refused = 0;
    uint8_t buf[1200 + RTC_SEND_SLACK];
    for (int i = 0; i < 50000 && refused < 10; i++) {
        memset(buf, 0, sizeof(buf));
        uint8_t h[12] = {0x80, 96, (uint8_t)(i >> 8), (uint8_t)i, 0, 0, 0, 0, 1, 2, 3, 4};
        memcpy(buf, h, 12);
        if (rtc_peer_send_rtp(p, buf, 1200) == 0) sent++;
        else refused++;
    }
    assert_int_equal(refused, 10);
    struct rtc_peer_stats ps;
    rtc_peer_get_stats(p, &ps);
    assert_int_equal(ps.send_errors, 10);
    assert_int_equal(uv_read_start((uv_stream_t *)&e.c.tcp, client_tcp_alloc, client_tcp_read), 0);
    WAIT_FOR(&e, e.c.media_count == sent);
    assert_int_equal(e.c.srtp_errors, 0);
    assert_int_equal(e.c.media_len, 1200);
    env_stop(&e);
}

static void tcp_handle_closed(uv_handle_t *h) { *(bool *)h->data = true; }

/* Closes the client's connection and waits until libuv let go of it. */
static void tcp_drop(struct env *e)
{
    bool done = false;
    e->c.tcp.data = &done;
    uv_close((uv_handle_t *)&e->c.tcp, tcp_handle_closed);
    WAIT_FOR(e, done);
    e->c.tcp_on = false;
}

static void test_ice_tcp_refused(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    cfg.tcp = true;
    cfg.max_peers = 1;
    env_start(&e, &cfg);
    struct rtc_peer *p = new_peer(&e, NULL);

    /* A first frame that is not STUN. */
    tcp_connect(&e);
    static const uint8_t junk[] = {0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    send_raw(&e, junk, sizeof(junk));
    WAIT_FOR(&e, e.c.tcp_closed);
    tcp_drop(&e);

    /* A Binding request for nobody. */
    tcp_connect(&e);
    uint8_t tid[STUN_TID_LEN];
    send_binding(&e, "nosuchuf", rtc_peer_pwd(p), true, tid);
    WAIT_FOR(&e, e.c.tcp_closed);
    assert_int_equal(e.c.stun_count, 0);
    tcp_drop(&e);

    /* A frame longer than any packet. */
    tcp_connect(&e);
    static const uint8_t huge[] = {0xff, 0xff, 0, 1};
    uv_buf_t b = uv_buf_init((char *)huge, sizeof(huge));
    assert_int_equal(uv_try_write((uv_stream_t *)&e.c.tcp, &b, 1), (int)sizeof(huge));
    WAIT_FOR(&e, e.c.tcp_closed);
    tcp_drop(&e);
    assert_int_equal(stats(&e).dropped_garbage, 2);

    /* Over the cap (max_peers = 1): with one connection held, a second one
     * is closed at once. */
    tcp_connect(&e);
    ice(&e, p);
    struct client c2;
    memset(&c2, 0, sizeof(c2));
    uv_tcp_init(&e.loop, &c2.tcp);
    c2.tcp.data = &c2;
    c2.creq.data = &c2;
    assert_int_equal(uv_tcp_connect(&c2.creq, &c2.tcp, (const struct sockaddr *)&e.c.server, client_tcp_connected), 0);
    WAIT_FOR(&e, c2.tcp_closed);
    assert_false(e.c.tcp_closed);
    bool done = false;
    c2.tcp.data = &done;
    uv_close((uv_handle_t *)&c2.tcp, tcp_handle_closed);
    WAIT_FOR(&e, done);
    assert_int_equal(stats(&e).tcp_connections, 4);
    assert_int_equal(e.rec.connected, 0);
    env_stop(&e);
}

static void test_close_from_rtp_callback(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    connect_peer(&e);
    e.rec.close_in_rtp = true;
    uint8_t buf[128];
    for (uint16_t seq = 1; seq <= 2; seq++) {
        size_t len = make_rtp(buf, seq, "x");
        assert_int_equal(msrtp_protect_rtp(e.c.out, buf, &len, sizeof(buf)), 0);
        send_raw(&e, buf, len);
    }
    WAIT_FOR(&e, stats(&e).dropped_unknown_source == 1);
    assert_int_equal(e.rec.rtp, 1);
    assert_int_equal(e.rec.gone, 0);
    assert_int_equal(stats(&e).peers, 0);
    env_stop(&e);
}

/* A second peer proving the same source address takes it over: DTLS and
 * RTP from there are the newer peer's. */
static void test_address_moves_to_newer_peer(void **state)
{
    (void)state;
    struct env e;
    struct rtc_config cfg = local_cfg();
    env_start(&e, &cfg);
    struct rtc_peer *a = new_peer(&e, NULL);
    struct rtc_peer *b = new_peer(&e, NULL);
    ice(&e, a);
    assert_string_not_equal(rtc_peer_remote(a), "");
    ice(&e, b);
    assert_string_equal(rtc_peer_remote(a), "");
    assert_string_not_equal(rtc_peer_remote(b), "");
    dtls_start(&e);
    WAIT_FOR(&e, e.rec.connected == 1);
    assert_ptr_equal(e.rec.last, b);
    assert_false(rtc_peer_connected(a));
    env_stop(&e);
}

/* Bound to "::" (dual stack), an IPv4 client is told its IPv4 address. */
static void test_dual_stack_maps_ipv4(void **state)
{
    (void)state;
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd < 0) skip();
    close(fd);
    struct env e;
    struct rtc_config cfg = local_cfg();
    cfg.bind_ip = "::";
    env_start(&e, &cfg);
    struct rtc_peer *p = new_peer(&e, NULL);
    ice(&e, p);
    stun_msg_t m;
    assert_int_equal(stun_parse(e.c.stun, e.c.stun_len, &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.type, STUN_BINDING_SUCCESS);
    const struct sockaddr_in *got = (const struct sockaddr_in *)&m.xor_mapped;
    const struct sockaddr_in *self = (const struct sockaddr_in *)&e.c.self;
    assert_int_equal(got->sin_family, AF_INET);
    assert_int_equal(got->sin_addr.s_addr, self->sin_addr.s_addr);
    assert_int_equal(got->sin_port, self->sin_port);
    /* DTLS and media flow over the mapped path as well. */
    dtls_start(&e);
    WAIT_FOR(&e, e.rec.connected == 1);
    env_stop(&e);
}

static void test_candidates(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct rtc_callbacks cb = {0};
    char err[256];
    struct wsdp_candidate c[4];

    struct rtc_config cfg = local_cfg();
    struct rtc_transport *t = rtc_transport_new(&loop, &cfg, &cb, err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(rtc_transport_candidates(t, c, 4), 1);
    assert_string_equal(c[0].ip, "127.0.0.1");
    assert_int_equal(c[0].port, rtc_transport_port(t));
    assert_true(c[0].port != 0);
    assert_false(c[0].tcp);
    assert_int_equal(strncmp(rtc_transport_fingerprint(t), "sha-256 ", 8), 0);
    rtc_transport_free(t);

    cfg.announce_ip = "203.0.113.7";
    t = rtc_transport_new(&loop, &cfg, &cb, err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(rtc_transport_candidates(t, c, 4), 1);
    assert_string_equal(c[0].ip, "203.0.113.7");
    rtc_transport_free(t);

    cfg.announce_ip = NULL;
    cfg.bind_ip = "0.0.0.0";
    t = rtc_transport_new(&loop, &cfg, &cb, err, sizeof(err));
    assert_non_null(t);
    size_t n = rtc_transport_candidates(t, c, 4);
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++) assert_string_not_equal(c[i].ip, "0.0.0.0");
    rtc_transport_free(t);

    cfg.bind_ip = "not an address";
    assert_null(rtc_transport_new(&loop, &cfg, &cb, err, sizeof(err)));

    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(rtc_gone_reason_name(RTC_GONE_CONNECT_TIMEOUT), "connect timeout");
    assert_string_equal(rtc_gone_reason_name(RTC_GONE_CONSENT_EXPIRED), "consent expired");
    assert_string_equal(rtc_gone_reason_name(RTC_GONE_DTLS_FAILED), "DTLS failed");
    assert_string_equal(rtc_gone_reason_name(RTC_GONE_DTLS_CLOSED), "DTLS closed");
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binding_success),
        cmocka_unit_test(test_binding_refused),
        cmocka_unit_test(test_dtls_before_ice_dropped),
        cmocka_unit_test(test_rtp_before_dtls_and_garbage),
        cmocka_unit_test(test_connect_and_media),
        cmocka_unit_test(test_batched_sends),
        cmocka_unit_test(test_wrong_fingerprint),
        cmocka_unit_test(test_consent_expires),
        cmocka_unit_test(test_consent_refreshed),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_close_notify_from_client),
        cmocka_unit_test(test_peer_close_no_callback),
        cmocka_unit_test(test_max_peers),
        cmocka_unit_test(test_free_with_live_peers),
        cmocka_unit_test(test_free_inside_gone),
        cmocka_unit_test(test_close_from_rtp_callback),
        cmocka_unit_test(test_address_moves_to_newer_peer),
        cmocka_unit_test(test_dual_stack_maps_ipv4),
        cmocka_unit_test(test_ice_tcp),
        cmocka_unit_test(test_ice_tcp_refused),
        cmocka_unit_test(test_ice_tcp_backpressure),
        cmocka_unit_test(test_candidates),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
