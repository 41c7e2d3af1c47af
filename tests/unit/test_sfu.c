/* test_sfu.c — the SFU (media/sfu.h) end to end on 127.0.0.1 with
 * simulcast: a publisher client sends the real Chromium simulcast offer
 * (sdp_offers/chromium_publish_simulcast.sdp, its ICE and DTLS credentials
 * swapped for the client's) and three VP8 layers q, h, f, each packet
 * saying its rid; a viewer client sends the Chromium viewer offer. The
 * clients are made from the blocks a browser stands for: stun.h's binding
 * request, a DTLS client (dtls.h) and msrtp (srtp.h).
 *
 * What is checked: the viewer receives one stream, under the SSRC its
 * answer announces, with sequence numbers that follow each other across
 * layer switches; its REMB below every layer's bitrate makes the SFU ask
 * the publisher for a key frame of the lowest layer (PLI to that layer's
 * SSRC) and switch there only at that key frame; a NACK of the viewer's
 * number is answered with the right layer's packet under that number.
 *
 * Members (sfu_join: the room WebSocket's participants): a member's
 * publishing peer whose consent expires ends its streams and the
 * subscriptions to it, never the member; the member leaves once whatever
 * order its socket close, a kick and its peer's expiry arrive in; its
 * subscriptions are capped, replaced on a second subscribe.
 *
 * The loop runs until a condition holds or 10 s pass; no test asserts on
 * elapsed time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/log.h"
#include "media/dtls.h"
#include "media/forward.h"
#include "media/rtcp.h"
#include "media/sfu.h"
#include "media/srtp.h"
#include "media/stun.h"
#include "media/webrtc_sdp.h"

#define WAIT_NS (10ull * 1000 * 1000 * 1000)
#define MAX_GOT 4096
#define MID_EXT 4  /* the ids of chromium_publish_simulcast.sdp's video m-line */
#define RID_EXT 10

static const uint32_t layer_ssrc[3] = {0x1110, 0x2220, 0x3330};
static const char layer_rid[3] = {'q', 'h', 'f'};
static const size_t layer_size[3] = {100, 300, 900}; /* payload bytes: q < h < f in bitrate */

struct got {
    uint32_t ssrc;
    uint16_t seq;
    uint8_t layer; /* the payload's mark */
};

struct client {
    const char *ufrag;
    uv_udp_t udp;
    struct sockaddr_storage server;
    struct dtls_context *ctx;
    struct dtls_session *dtls;
    struct dtls_io io;
    struct msrtp *in, *out;
    uint8_t server_fp[DTLS_FP_LEN];
    char server_ufrag[WSDP_TOKEN_MAX], server_pwd[WSDP_PWD_MAX];
    int stun_count;
    struct got got[MAX_GOT];
    size_t n_got;
    uint32_t pli[64];
    size_t n_pli;
    uint16_t drop[2];  /* RTP sequence numbers to lose on the way in (before SRTP, which would */
    size_t n_drop;     /* refuse their resends as replays had they been taken) */
    size_t dropped;
    bool dtls_closed;  /* the server ended DTLS (an alert) */
    bool keep;         /* refresh ICE consent (a binding every ~300 ms) */
    struct capture *cap; /* local sources: whole packets depacketized into access units */
    int tick;
    uint8_t rx[2048];
};

/* H.264 access units rebuilt from RFC 6184 packets (single NAL and FU-A),
 * each NAL behind a 4-byte start code. */
#define CAP_AUS 8
#define CAP_AU_MAX 16384
struct capture {
    uint8_t au[CAP_AUS][CAP_AU_MAX];
    size_t len[CAP_AUS];
    size_t n;            /* complete access units */
    size_t cur;          /* bytes of the one being rebuilt */
    uint32_t pt_seen;    /* the payload type the viewer got */
    uint16_t seqs[512];  /* every sequence number, in arrival order */
    size_t n_seqs;
};

struct env {
    uv_loop_t loop;
    uv_timer_t tick;
    struct sfu *sfu;
    struct client pub, view;
    char pub_id[ROOM_ID_LEN + 1], view_id[ROOM_ID_LEN + 1];
    uint32_t out_ssrc;
    uint16_t seq[3];
    uint32_t ts[3];
};

#define WAIT_FOR(e, cond)                                                                                      \
    do {                                                                                                       \
        uint64_t dl_ = uv_hrtime() + WAIT_NS;                                                                  \
        while (!(cond) && uv_hrtime() < dl_) uv_run(&(e)->loop, UV_RUN_ONCE);                                  \
        assert_true(cond);                                                                                     \
    } while (0)

static void run_for(struct env *e, unsigned ms)
{
    uint64_t dl = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (uv_hrtime() < dl) uv_run(&e->loop, UV_RUN_ONCE);
}

/* ---- the clients */

static int client_send(void *user, const void *data, size_t len)
{
    struct client *c = user;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return uv_udp_try_send(&c->udp, &b, 1, (const struct sockaddr *)&c->server) < 0 ? -1 : 0;
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct client *c = h->data;
    *buf = uv_buf_init((char *)c->rx, sizeof(c->rx));
}

static void client_rtcp(struct client *c, const uint8_t *pkt, size_t len)
{
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_iter_init(&it, pkt, len);
    while (rtcp_iter_next(&it, &p) == 1) {
        uint32_t sender, media;
        if (p.pt == RTCP_PT_PSFB && p.count == RTCP_FMT_PLI && rtcp_parse_pli(&p, &sender, &media) == 0 &&
            c->n_pli < 64)
            c->pli[c->n_pli++] = media;
    }
}

static void capture_rtp(struct capture *k, const uint8_t *pkt, size_t len);

static void client_rtp(struct client *c, const uint8_t *pkt, size_t len)
{
    if (c->cap) capture_rtp(c->cap, pkt, len);
    struct fwd_rtp h;
    if (forward_rtp_parse(pkt, len, &h) < 0 || c->n_got == MAX_GOT || len < h.payload_off + 3) return;
    c->got[c->n_got++] = (struct got){.ssrc = h.ssrc, .seq = h.seq, .layer = pkt[h.payload_off + 2]};
}

static void client_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    (void)buf, (void)flags;
    struct client *c = u->data;
    if (n <= 0 || !addr) return;
    size_t len = (size_t)n;
    media_demux_kind_t k = media_demux_kind(c->rx[0]);
    if (k == MEDIA_DEMUX_STUN) {
        c->stun_count++;
    } else if (k == MEDIA_DEMUX_DTLS && c->dtls) {
        const char *why = NULL;
        /* Fails only on the server's alert once it closed the peer (members' tests). */
        if (dtls_session_input(c->dtls, c->rx, len, &c->io, &why) != 0) {
            assert_non_null(c->in);
            c->dtls_closed = true;
            return;
        }
        if (!c->in && dtls_session_established(c->dtls)) {
            struct dtls_srtp_keys keys;
            assert_int_equal(dtls_session_srtp_keys(c->dtls, &keys), 0);
            assert_int_equal(msrtp_pair_from_dtls(&keys, DTLS_ROLE_CLIENT, &c->in, &c->out), 0);
        }
    } else if (k == MEDIA_DEMUX_RTP && c->in) {
        bool rtcp = len >= 2 && c->rx[1] >= 192 && c->rx[1] <= 223;
        uint16_t seq = len >= 4 ? (uint16_t)(c->rx[2] << 8 | c->rx[3]) : 0;
        for (size_t i = 0; !rtcp && i < c->n_drop; i++)
            if (c->drop[i] == seq) {
                c->drop[i] = c->drop[--c->n_drop];
                c->dropped++;
                return;
            }
        if (rtcp) {
            if (msrtp_unprotect_rtcp(c->in, c->rx, &len) == 0) client_rtcp(c, c->rx, len);
        } else if (msrtp_unprotect_rtp(c->in, c->rx, &len) == 0) {
            client_rtp(c, c->rx, len);
        }
    }
}

static void client_binding(struct client *c);

static void on_tick(uv_timer_t *t)
{
    struct env *e = t->data;
    struct client *cs[2] = {&e->pub, &e->view};
    for (int i = 0; i < 2; i++) {
        const char *why;
        if (cs[i]->keep && ++cs[i]->tick % 60 == 0) client_binding(cs[i]);
        if (cs[i]->dtls && dtls_session_timeout_ms(cs[i]->dtls) == 0)
            dtls_session_handle_timeout(cs[i]->dtls, &cs[i]->io, &why);
    }
}

static void client_init(struct env *e, struct client *c, const char *ufrag)
{
    char err[256];
    c->ufrag = ufrag;
    c->ctx = dtls_context_new(200, err, sizeof(err));
    assert_non_null(c->ctx);
    c->io.user = c;
    c->io.send = client_send;
    uv_udp_init(&e->loop, &c->udp);
    c->udp.data = c;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_udp_bind(&c->udp, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_udp_recv_start(&c->udp, client_alloc, client_recv), 0);
}

/* An offer file with the client's ufrag and fingerprint in place of the
 * captured browser's. */
static size_t client_offer(const struct client *c, const char *file, char *out, size_t cap)
{
    char path[256], line[2048];
    snprintf(path, sizeof(path), "sdp_offers/%s", file);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s (tests run in tests/unit)", path);
    size_t n = 0;
    while (fgets(line, sizeof(line), fp)) {
        int w;
        if (!strncmp(line, "a=ice-ufrag:", 12))
            w = snprintf(out + n, cap - n, "a=ice-ufrag:%s\r\n", c->ufrag);
        else if (!strncmp(line, "a=fingerprint:", 14))
            w = snprintf(out + n, cap - n, "a=fingerprint:%s\r\n", dtls_context_fingerprint(c->ctx));
        else
            w = snprintf(out + n, cap - n, "%s", line);
        assert_true(w > 0 && (size_t)w < cap - n);
        n += (size_t)w;
    }
    fclose(fp);
    return n;
}

/* ICE (one binding with USE-CANDIDATE) and DTLS against the answer. */
static void client_connect(struct env *e, struct client *c, const char *answer, size_t len)
{
    static struct wsdp_session a;
    const char *why = NULL;
    if (wsdp_parse(answer, len, &a, &why) != 0) fail_msg("answer: %s", why);
    snprintf(c->server_ufrag, sizeof(c->server_ufrag), "%s", a.ice_ufrag);
    snprintf(c->server_pwd, sizeof(c->server_pwd), "%s", a.ice_pwd);
    memcpy(c->server_fp, a.fingerprint, DTLS_FP_LEN);
    const char *cand = strstr(answer, "a=candidate:1 1 udp 2130706431 127.0.0.1 ");
    assert_non_null(cand);
    unsigned port = 0;
    assert_int_equal(sscanf(cand, "a=candidate:1 1 udp 2130706431 127.0.0.1 %u", &port), 1);
    uv_ip4_addr("127.0.0.1", (int)port, (struct sockaddr_in *)&c->server);
    client_binding(c);
    WAIT_FOR(e, c->stun_count >= 1);
    c->dtls = dtls_session_new(c->ctx, DTLS_ROLE_CLIENT, c->server_fp);
    assert_non_null(c->dtls);
    assert_int_equal(dtls_session_start(c->dtls, &c->io, &why), 0);
    WAIT_FOR(e, c->in != NULL);
}

/* A Binding request nominating the pair (and refreshing consent, RFC 7675). */
static void client_binding(struct client *c)
{
    char username[160];
    snprintf(username, sizeof(username), "%s:%s", c->server_ufrag, c->ufrag);
    uint8_t tid[STUN_TID_LEN], req[STUN_MAX_MESSAGE];
    for (int i = 0; i < STUN_TID_LEN; i++) tid[i] = (uint8_t)rand();
    size_t rlen = 0;
    assert_int_equal(stun_build_binding_request(tid, username, 0x6e7f00ff, true, true, 0x1122334455667788ull,
                                                (const uint8_t *)c->server_pwd, strlen(c->server_pwd), req,
                                                sizeof(req), &rlen),
                     0);
    assert_int_equal(client_send(c, req, rlen), 0);
}

static bool connected(struct env *e, const char *id)
{
    struct sfu_peer_info info;
    return sfu_peer_info(e->sfu, id, &info) == 0 && info.connected;
}

static void client_send_rtcp(struct client *c, uint8_t *buf, size_t len)
{
    assert_int_equal(msrtp_protect_rtcp(c->out, buf, &len, 1500), 0);
    assert_int_equal(client_send(c, buf, len), 0);
}

/* One VP8 packet (a whole frame) of a layer: mid and rid elements, the
 * payload descriptor, then the layer's mark. */
static void pub_send(struct env *e, int layer, bool key)
{
    uint8_t b[1500];
    uint16_t seq = e->seq[layer]++;
    uint32_t ts = e->ts[layer];
    e->ts[layer] += 3000;
    uint8_t hdr[12] = {0x90, 0x80 | 96, (uint8_t)(seq >> 8), (uint8_t)seq,
                       (uint8_t)(ts >> 24), (uint8_t)(ts >> 16), (uint8_t)(ts >> 8), (uint8_t)ts,
                       (uint8_t)(layer_ssrc[layer] >> 24), (uint8_t)(layer_ssrc[layer] >> 16),
                       (uint8_t)(layer_ssrc[layer] >> 8), (uint8_t)layer_ssrc[layer]};
    memcpy(b, hdr, 12);
    const uint8_t ext[8] = {0xBE, 0xDE, 0, 1, MID_EXT << 4, '1', RID_EXT << 4, (uint8_t)layer_rid[layer]};
    memcpy(b + 12, ext, 8);
    size_t off = 20;
    b[off++] = 0x10;              /* S, partition 0 */
    b[off++] = key ? 0x00 : 0x01; /* P bit */
    memset(b + off, layer, layer_size[layer]);
    size_t len = off + layer_size[layer];
    assert_int_equal(msrtp_protect_rtp(e->pub.out, b, &len, sizeof(b)), 0);
    assert_int_equal(client_send(&e->pub, b, len), 0);
}

static void pub_frame(struct env *e, bool key)
{
    for (int l = 0; l < 3; l++) pub_send(e, l, key);
}

/* ---- set up and tear down */

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    uv_timer_init(&e->loop, &e->tick);
    e->tick.data = e;
    uv_timer_start(&e->tick, on_tick, 5, 5);
    struct sfu_config cfg;
    sfu_config_default(&cfg);
    cfg.rtc.bind_ip = "127.0.0.1";
    char err[256] = "";
    e->sfu = sfu_new(&e->loop, &cfg, NULL, err, sizeof(err));
    if (!e->sfu) fail_msg("sfu_new: %s", err);
    client_init(e, &e->pub, "pubUfrag");
    client_init(e, &e->view, "viewUfrag");
    e->seq[0] = 100, e->seq[1] = 30000, e->seq[2] = 65500; /* f wraps */
    e->ts[0] = 1000, e->ts[1] = 7000000, e->ts[2] = 4294900000u;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    sfu_free(e->sfu);
    struct client *cs[2] = {&e->pub, &e->view};
    for (int i = 0; i < 2; i++) {
        dtls_session_free(cs[i]->dtls);
        msrtp_free(cs[i]->in);
        msrtp_free(cs[i]->out);
        dtls_context_free(cs[i]->ctx);
        uv_close((uv_handle_t *)&cs[i]->udp, NULL);
    }
    uv_close((uv_handle_t *)&e->tick, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
    return 0;
}

/* Publisher (offer file pub_file) and viewer connected; out_ssrc is what
 * the viewer's answer names for video. */
static void publish_and_view(struct env *e, const char *pub_file)
{
    static char offer[WSDP_MAX_TEXT];
    const char *why = NULL;
    sbuf_t ans;
    sbuf_init(&ans);
    size_t n = client_offer(&e->pub, pub_file, offer, sizeof(offer));
    if (sfu_publish(e->sfu, "sim", "pub", NULL, offer, n, &ans, e->pub_id, &why) != 0) fail_msg("publish: %s", why);
    client_connect(e, &e->pub, ans.data, ans.len);
    WAIT_FOR(e, connected(e, e->pub_id));

    sbuf_clear(&ans);
    n = client_offer(&e->view, "chromium_view.sdp", offer, sizeof(offer));
    if (sfu_view(e->sfu, "sim", NULL, "view", NULL, offer, n, &ans, e->view_id, &why) != 0) fail_msg("view: %s", why);
    static struct wsdp_session a;
    assert_int_equal(wsdp_parse(ans.data, ans.len, &a, &why), 0);
    assert_int_equal(a.media[1].n_ssrcs, 1);
    e->out_ssrc = a.media[1].ssrcs[0].ssrc;
    assert_true(e->out_ssrc != 0);
    assert_null(strstr(ans.data, "rid"));
    client_connect(e, &e->view, ans.data, ans.len);
    WAIT_FOR(e, connected(e, e->view_id));
    sbuf_free(&ans);
}

/* The packets the viewer got from from on are under out_ssrc and each
 * follows the one before by one. */
static void assert_one_continuous_stream(const struct env *e, size_t from)
{
    const struct client *v = &e->view;
    for (size_t i = from; i < v->n_got; i++) {
        assert_int_equal(v->got[i].ssrc, e->out_ssrc);
        if (i > from) assert_int_equal(v->got[i].seq, (uint16_t)(v->got[i - 1].seq + 1));
    }
}

static bool got_layer(const struct client *v, uint8_t layer)
{
    return v->n_got && v->got[v->n_got - 1].layer == layer;
}

static bool pli_for(const struct client *c, uint32_t ssrc)
{
    for (size_t i = 0; i < c->n_pli; i++)
        if (c->pli[i] == ssrc) return true;
    return false;
}

/* ---- tests */

static void test_simulcast_layers(void **state)
{
    struct env *e = *state;
    publish_and_view(e, "chromium_publish_simulcast.sdp");
    for (int l = 0; l < 3; l++) assert_true(e->out_ssrc != layer_ssrc[l]);

    /* Key frames of every layer: with no estimate yet the viewer climbs to
     * f within the first frame, as one stream. Frames go on for over a
     * second so every layer's bitrate is measured. */
    pub_frame(e, true);
    WAIT_FOR(e, got_layer(&e->view, 2));
    for (int i = 0; i < 40; i++) {
        run_for(e, 30);
        pub_frame(e, false);
    }
    WAIT_FOR(e, e->view.n_got >= 30);
    assert_true(got_layer(&e->view, 2));
    assert_one_continuous_stream(e, 0);

    /* The viewer's REMB is below every layer: the SFU asks q for a key
     * frame and keeps sending f until it comes. */
    uint8_t rtcp[1500];
    uint32_t media[1] = {e->out_ssrc};
    int n = rtcp_build_remb(rtcp, sizeof(rtcp), 0x7777, 1000, media, 1);
    assert_true(n > 0);
    client_send_rtcp(&e->view, rtcp, (size_t)n);
    run_for(e, 50);
    pub_frame(e, false);
    WAIT_FOR(e, pli_for(&e->pub, layer_ssrc[0]));
    size_t before = e->view.n_got;
    pub_frame(e, false);
    WAIT_FOR(e, e->view.n_got > before);
    assert_true(got_layer(&e->view, 2));

    /* q's key frame: from it on the viewer gets q, still one stream. The
     * viewer loses the last f packet and q's key frame on the way. */
    assert_one_continuous_stream(e, 0);
    uint16_t last = e->view.got[e->view.n_got - 1].seq;
    e->view.drop[0] = (uint16_t)(last + 1);
    e->view.drop[1] = (uint16_t)(last + 2);
    e->view.n_drop = 2;
    pub_frame(e, false);  /* f: last + 1, lost */
    pub_send(e, 0, true); /* q's key frame: last + 2, lost */
    pub_send(e, 1, false);
    pub_send(e, 2, false);
    pub_frame(e, false);  /* q: last + 3 */
    WAIT_FOR(e, e->view.n_got && e->view.got[e->view.n_got - 1].seq == (uint16_t)(last + 3));
    assert_true(got_layer(&e->view, 0));
    assert_int_equal(e->view.dropped, 2);
    run_for(e, 50);
    assert_int_equal(e->view.got[e->view.n_got - 1].seq, (uint16_t)(last + 3)); /* f and h no more */

    /* The viewer NACKs both on its own numbers: each comes again from its
     * layer under the number asked. */
    uint16_t asked[2] = {(uint16_t)(last + 1), (uint16_t)(last + 2)};
    n = rtcp_build_nack(rtcp, sizeof(rtcp), 0x7777, e->out_ssrc, asked, 2);
    size_t had = e->view.n_got;
    client_send_rtcp(&e->view, rtcp, (size_t)n);
    WAIT_FOR(e, e->view.n_got >= had + 2);
    assert_int_equal(e->view.got[had].seq, asked[0]);
    assert_int_equal(e->view.got[had].layer, 2);
    assert_int_equal(e->view.got[had].ssrc, e->out_ssrc);
    assert_int_equal(e->view.got[had + 1].seq, asked[1]);
    assert_int_equal(e->view.got[had + 1].layer, 0);
    assert_int_equal(e->view.got[had + 1].ssrc, e->out_ssrc);
}

/* The viewer asks for no more than h: it leaves f at h's next key frame. */
static void test_simulcast_max_layer(void **state)
{
    struct env *e = *state;
    publish_and_view(e, "chromium_publish_simulcast.sdp");
    pub_frame(e, true);
    WAIT_FOR(e, got_layer(&e->view, 2));
    assert_int_equal(sfu_set_max_layer(e->sfu, e->view_id, 1), 0);
    assert_int_equal(sfu_set_max_layer(e->sfu, e->pub_id, 1), -EINVAL);
    assert_int_equal(sfu_set_max_layer(e->sfu, "nobody", 1), -ENOENT);
    pub_frame(e, false);
    WAIT_FOR(e, pli_for(&e->pub, layer_ssrc[1]));
    size_t before = e->view.n_got;
    pub_frame(e, false);
    WAIT_FOR(e, e->view.n_got > before);
    assert_true(got_layer(&e->view, 2)); /* no key frame of h yet */
    pub_send(e, 0, false);
    pub_send(e, 1, true);
    pub_send(e, 2, false);
    WAIT_FOR(e, got_layer(&e->view, 1));
    run_for(e, 50);
    assert_true(got_layer(&e->view, 1));
    assert_one_continuous_stream(e, 0);
}

/* Without simulcast nothing is renumbered: the viewer gets the publisher's
 * SSRC and sequence numbers as they are. */
static void test_plain_publisher_unchanged(void **state)
{
    struct env *e = *state;
    publish_and_view(e, "chromium_publish.sdp");
    const uint32_t ssrc = 336574753u; /* the offer's video SSRC, announced to the viewer */
    assert_int_equal(e->out_ssrc, ssrc);
    for (uint16_t i = 0; i < 5; i++) {
        uint8_t b[64] = {0x80, 96, 0xFF, (uint8_t)(0xFE + i), 0, 0, 0, 9, (uint8_t)(ssrc >> 24),
                         (uint8_t)(ssrc >> 16), (uint8_t)(ssrc >> 8), (uint8_t)ssrc, 0x10, 0x00, 7};
        uint16_t seq = (uint16_t)(0xFFFE + i);
        b[2] = (uint8_t)(seq >> 8), b[3] = (uint8_t)seq;
        size_t len = 20;
        assert_int_equal(msrtp_protect_rtp(e->pub.out, b, &len, sizeof(b)), 0);
        assert_int_equal(client_send(&e->pub, b, len), 0);
    }
    WAIT_FOR(e, e->view.n_got == 5);
    for (uint16_t i = 0; i < 5; i++) {
        assert_int_equal(e->view.got[i].ssrc, ssrc);
        assert_int_equal(e->view.got[i].seq, (uint16_t)(0xFFFE + i));
        assert_int_equal(e->view.got[i].layer, 7);
    }
}

/* ---- members (the room WebSocket's participants) ---- */

/* What the SFU's observer said. */
struct obs {
    struct {
        enum room_event_type type;
        char id[ROOM_ID_LEN + 1];
        enum room_leave_reason reason;
    } ev[256];
    size_t n;
    struct {
        char part[ROOM_ID_LEN + 1], pub[ROOM_ID_LEN + 1], reason[32];
    } note[64];
    size_t n_notes;
};
static struct obs obs;

static void obs_event(void *user, const struct room_event *ev)
{
    (void)user;
    if (obs.n == 256) return;
    obs.ev[obs.n].type = ev->type;
    snprintf(obs.ev[obs.n].id, sizeof(obs.ev[0].id), "%s", ev->participant_id);
    obs.ev[obs.n++].reason = ev->reason;
}

static void obs_ended(void *user, const char *room, const char *part, const char *pub, const char *reason)
{
    (void)user;
    assert_string_equal(room, "m");
    if (obs.n_notes == 64) return;
    snprintf(obs.note[obs.n_notes].part, sizeof(obs.note[0].part), "%s", part);
    snprintf(obs.note[obs.n_notes].pub, sizeof(obs.note[0].pub), "%s", pub ? pub : "");
    snprintf(obs.note[obs.n_notes++].reason, sizeof(obs.note[0].reason), "%s", reason);
}

static size_t n_ev(enum room_event_type t, const char *id)
{
    size_t c = 0;
    for (size_t i = 0; i < obs.n; i++)
        if (obs.ev[i].type == t && (!id || !strcmp(obs.ev[i].id, id))) c++;
    return c;
}

static int left_reason(const char *id)
{
    for (size_t i = 0; i < obs.n; i++)
        if (obs.ev[i].type == ROOM_EV_LEFT && !strcmp(obs.ev[i].id, id)) return (int)obs.ev[i].reason;
    return -1;
}

static bool noted(const char *part, const char *pub, const char *reason)
{
    for (size_t i = 0; i < obs.n_notes; i++)
        if (!strcmp(obs.note[i].part, part) && !strcmp(obs.note[i].pub, pub) && !strcmp(obs.note[i].reason, reason))
            return true;
    return false;
}

/* Consent short (2 s) so that a client that stops refreshing it is gone soon. */
static int setup_members(void **state)
{
    setup(state);
    struct env *e = *state;
    sfu_free(e->sfu);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    struct sfu_config cfg;
    sfu_config_default(&cfg);
    cfg.rtc.consent_timeout_ms = 2000;
    cfg.rooms.max_subscriptions_per_participant = 1;
    char err[256] = "";
    e->sfu = sfu_new(&e->loop, &cfg, NULL, err, sizeof(err));
    if (!e->sfu) fail_msg("sfu_new: %s", err);
    memset(&obs, 0, sizeof(obs));
    struct sfu_observer ob = {.room_event = obs_event, .peer_ended = obs_ended};
    sfu_set_observer(e->sfu, &ob);
    return 0;
}

/* Members a and b join "m"; a publishes (pub client), b subscribes to a
 * (view client); both connected, consent kept fresh. */
static void members_connected(struct env *e, char a[ROOM_ID_LEN + 1], char b[ROOM_ID_LEN + 1])
{
    static char offer[WSDP_MAX_TEXT];
    const char *why = NULL;
    sbuf_t ans;
    sbuf_init(&ans);
    assert_int_equal(sfu_join(e->sfu, "m", "a", NULL, a, &why), 0);
    assert_int_equal(sfu_join(e->sfu, "m", "b", NULL, b, &why), 0);
    assert_int_equal(n_ev(ROOM_EV_JOINED, NULL), 2);
    size_t n = client_offer(&e->pub, "chromium_publish.sdp", offer, sizeof(offer));
    if (sfu_publish_as(e->sfu, a, offer, n, &ans, &why) != 0) fail_msg("publish_as: %s", why);
    e->pub.keep = true;
    client_connect(e, &e->pub, ans.data, ans.len);
    WAIT_FOR(e, n_ev(ROOM_EV_PUBLISHED, a) == 2);
    sbuf_clear(&ans);
    n = client_offer(&e->view, "chromium_view.sdp", offer, sizeof(offer));
    if (sfu_subscribe_as(e->sfu, b, a, offer, n, -1, &ans, &why) != 0) fail_msg("subscribe_as: %s", why);
    e->view.keep = true;
    client_connect(e, &e->view, ans.data, ans.len);
    WAIT_FOR(e, room_is_subscribed(sfu_rooms(e->sfu), b, a));
    sbuf_free(&ans);
}

/* A member's publishing peer whose consent expires ends its streams (each
 * unpublished once) and b's subscription, never the member; then a kick,
 * a late socket close and a late leave: one left each, with the first
 * reason. */
static void test_member_peer_gone_is_not_a_leave(void **state)
{
    struct env *e = *state;
    char a[ROOM_ID_LEN + 1], b[ROOM_ID_LEN + 1];
    members_connected(e, a, b);
    e->pub.keep = false; /* the publishing page froze */
    WAIT_FOR(e, n_ev(ROOM_EV_UNPUBLISHED, a) == 2 && noted(b, a, "unpublished"));
    assert_true(noted(a, "", "consent-expired"));
    assert_int_equal(n_ev(ROOM_EV_LEFT, NULL), 0);
    struct room_participant_info pi;
    assert_int_equal(room_participant_get(sfu_rooms(e->sfu), a, &pi), 0);
    assert_int_equal(pi.streams, 0);
    assert_false(room_is_subscribed(sfu_rooms(e->sfu), b, a));
    struct sfu_peer_info info;
    assert_int_equal(sfu_peer_info(e->sfu, b, &info), 0);
    assert_true(info.member);
    assert_int_equal(info.subscriptions, 0);

    assert_int_equal(sfu_kick(e->sfu, a), 0);
    assert_int_equal(sfu_exit(e->sfu, a, ROOM_LEAVE_DISCONNECTED), -ENOENT); /* its socket closes after */
    assert_int_equal(sfu_exit(e->sfu, b, ROOM_LEAVE_DISCONNECTED), 0);
    assert_int_equal(sfu_leave(e->sfu, b), -ENOENT);
    e->view.keep = false;
    run_for(e, 2500); /* b's own peer would have expired by now: it was closed with b */
    assert_int_equal(n_ev(ROOM_EV_JOINED, NULL), 2);
    assert_int_equal(n_ev(ROOM_EV_LEFT, a), 1);
    assert_int_equal(n_ev(ROOM_EV_LEFT, b), 1);
    assert_int_equal(left_reason(a), ROOM_LEAVE_KICKED);
    assert_int_equal(left_reason(b), ROOM_LEAVE_DISCONNECTED);
    assert_int_equal(n_ev(ROOM_EV_PUBLISHED, a), 2);
    assert_int_equal(n_ev(ROOM_EV_UNPUBLISHED, a), 2);
}

/* The other order: the socket closes first (one left, streams unpublished
 * with it), then the consent of its peer would expire and a kick arrives:
 * nothing more. b stays until the room closes. */
static void test_member_socket_close_then_consent(void **state)
{
    struct env *e = *state;
    char a[ROOM_ID_LEN + 1], b[ROOM_ID_LEN + 1];
    members_connected(e, a, b);
    assert_int_equal(sfu_exit(e->sfu, a, ROOM_LEAVE_DISCONNECTED), 0);
    assert_int_equal(n_ev(ROOM_EV_UNPUBLISHED, a), 2);
    assert_int_equal(n_ev(ROOM_EV_LEFT, a), 1);
    assert_true(noted(b, a, "left"));
    e->pub.keep = false;
    run_for(e, 3000);
    assert_int_equal(sfu_kick(e->sfu, a), -ENOENT);
    assert_int_equal(n_ev(ROOM_EV_UNPUBLISHED, a), 2);
    assert_int_equal(n_ev(ROOM_EV_LEFT, a), 1);
    assert_int_equal(n_ev(ROOM_EV_LEFT, b), 0);
    assert_int_equal(sfu_close_room(e->sfu, "m"), 0);
    assert_int_equal(n_ev(ROOM_EV_LEFT, b), 1);
    assert_int_equal(left_reason(b), ROOM_LEAVE_ROOM_CLOSED);
    assert_int_equal(sfu_exit(e->sfu, b, ROOM_LEAVE_DISCONNECTED), -ENOENT);
}

/* Subscriptions are capped per member (here 1); subscribing again to the
 * same publisher replaces the first; self, strangers and other rooms are
 * refused; a WHIP publisher can be subscribed to, and a WHEP viewer can
 * view a member. */
static void test_member_subscriptions(void **state)
{
    struct env *e = *state;
    static char offer[WSDP_MAX_TEXT];
    const char *why = NULL;
    char a[ROOM_ID_LEN + 1], b[ROOM_ID_LEN + 1], w[ROOM_ID_LEN + 1], x[ROOM_ID_LEN + 1], v[ROOM_ID_LEN + 1];
    sbuf_t ans;
    sbuf_init(&ans);
    assert_int_equal(sfu_join(e->sfu, "m", "a", NULL, a, &why), 0);
    assert_int_equal(sfu_join(e->sfu, "m", "b", NULL, b, &why), 0);
    assert_int_equal(sfu_join(e->sfu, "other", "x", NULL, x, &why), 0);
    assert_int_equal(sfu_join(e->sfu, "../m", "x", NULL, x, &why), -EINVAL);
    size_t n = client_offer(&e->pub, "chromium_publish.sdp", offer, sizeof(offer));
    assert_int_equal(sfu_publish_as(e->sfu, a, offer, n, &ans, &why), 0);
    sbuf_clear(&ans);
    assert_int_equal(sfu_publish(e->sfu, "m", "whip", NULL, offer, n, &ans, w, &why), 0);
    n = client_offer(&e->view, "chromium_view.sdp", offer, sizeof(offer));
    sbuf_clear(&ans);
    assert_int_equal(sfu_subscribe_as(e->sfu, b, a, offer, n, -1, &ans, &why), 0);
    sbuf_clear(&ans);
    assert_int_equal(sfu_subscribe_as(e->sfu, b, a, offer, n, 0, &ans, &why), 0); /* replaces */
    assert_int_equal(sfu_set_max_layer_as(e->sfu, b, a, 1), 0);
    sbuf_clear(&ans);
    assert_int_equal(sfu_subscribe_as(e->sfu, b, w, offer, n, -1, &ans, &why), -ENOSPC);
    assert_int_equal(sfu_subscribe_as(e->sfu, a, a, offer, n, -1, &ans, &why), -EINVAL);
    assert_int_equal(sfu_subscribe_as(e->sfu, x, a, offer, n, -1, &ans, &why), -ENOENT);
    assert_int_equal(sfu_subscribe_as(e->sfu, b, "0123456789abcdef", offer, n, -1, &ans, &why), -ENOENT);
    assert_int_equal(sfu_unsubscribe_as(e->sfu, b, a), 0);
    assert_int_equal(sfu_unsubscribe_as(e->sfu, b, a), -ENOENT);
    assert_int_equal(sfu_set_max_layer_as(e->sfu, b, a, 1), -ENOENT);
    sbuf_clear(&ans);
    assert_int_equal(sfu_subscribe_as(e->sfu, b, w, offer, n, -1, &ans, &why), 0); /* room again */
    sbuf_clear(&ans);
    assert_int_equal(sfu_view(e->sfu, "m", a, "whep", NULL, offer, n, &ans, v, &why), 0);
    assert_int_equal(obs.n_notes, 0); /* nothing ended that the members did not ask for */
    struct sfu_stats st;
    sfu_get_stats(e->sfu, &st);
    assert_int_equal(st.participants, 5); /* a, b, x, whip, whep */
    sfu_close_room(e->sfu, "m");
    sfu_close_room(e->sfu, "other");
    assert_int_equal(n_ev(ROOM_EV_LEFT, NULL), 3); /* the WHIP and WHEP peers were never announced */
    sbuf_free(&ans);
}

/* ---- local sources (sfu_source_new) ---- */

static void cap_put(struct capture *k, const uint8_t *p, size_t n)
{
    if (k->n == CAP_AUS || k->cur + n > CAP_AU_MAX) return;
    memcpy(k->au[k->n] + k->cur, p, n);
    k->cur += n;
}

static void capture_rtp(struct capture *k, const uint8_t *pkt, size_t len)
{
    static const uint8_t sc[4] = {0, 0, 0, 1};
    struct fwd_rtp h;
    if (forward_rtp_parse(pkt, len, &h) < 0 || len <= h.payload_off) return;
    const uint8_t *p = pkt + h.payload_off;
    size_t n = len - h.payload_off;
    k->pt_seen = h.pt;
    if (k->n_seqs < 512) k->seqs[k->n_seqs++] = h.seq;
    if ((p[0] & 0x1f) == 28 && n > 2) { /* FU-A */
        if (p[1] & 0x80) {
            uint8_t hdr = (uint8_t)((p[0] & 0xe0) | (p[1] & 0x1f));
            cap_put(k, sc, 4);
            cap_put(k, &hdr, 1);
        }
        cap_put(k, p + 2, n - 2);
    } else {
        cap_put(k, sc, 4);
        cap_put(k, p, n);
    }
    if (h.marker && k->n < CAP_AUS) {
        k->len[k->n++] = k->cur;
        k->cur = 0;
    }
}

struct src_obs {
    int joined, left, keyframes;
};

static void src_keyframe(void *user) { ((struct src_obs *)user)->keyframes++; }
static void src_viewer(void *user, const char *id, bool joined)
{
    (void)id;
    struct src_obs *o = user;
    if (joined)
        o->joined++;
    else
        o->left++;
}

/* An access unit of NALs (type, size) with 4-byte start codes; the bytes
 * after each header are a pattern of the NAL's index. */
static size_t make_au(uint8_t *out, const uint8_t *types, const size_t *sizes, size_t n, uint8_t mark)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        out[off++] = 0, out[off++] = 0, out[off++] = 0, out[off++] = 1;
        out[off++] = (uint8_t)(0x60 | types[i]);
        for (size_t j = 1; j < sizes[i]; j++) out[off++] = (uint8_t)(0x10 + ((mark + i + j) % 0xe0)); /* no 00 00 */
    }
    return off;
}

static void test_local_source(void **state)
{
    struct env *e = *state;
    static struct capture cap;
    memset(&cap, 0, sizeof(cap));
    struct src_obs so = {0};
    struct sfu_source_config sc = {.room = "gb-1", .name = "camera", .profile_level_id = "42e01f",
                                   .cb = {.user = &so, .keyframe = src_keyframe, .viewer = src_viewer}};
    int err = 0;
    const char *why = NULL;
    struct sfu_source *src = sfu_source_new(e->sfu, &sc, &err, &why);
    if (!src) fail_msg("sfu_source_new: %d %s", err, why);
    assert_string_equal(sfu_source_room(src), "gb-1");
    /* A key frame (SPS, PPS, an IDR slice in FU-A fragments) and a P frame
     * before anybody watches: the GOP a viewer gets when it connects. */
    static uint8_t aus[4][8192];
    size_t lens[4];
    const uint8_t key_t[3] = {7, 8, 5}, p_t[1] = {1};
    const size_t key_s[3] = {12, 4, 3000}, p1_s[1] = {500}, p2_s[1] = {1400}, p3_s[1] = {40};
    lens[0] = make_au(aus[0], key_t, key_s, 3, 0);
    aus[0][5] = 0x42, aus[0][6] = 0xe0, aus[0][7] = 0x1f; /* the SPS's profile-level-id */
    lens[1] = make_au(aus[1], p_t, p1_s, 1, 1);
    lens[2] = make_au(aus[2], p_t, p2_s, 1, 2);
    lens[3] = make_au(aus[3], p_t, p3_s, 1, 3);
    assert_int_equal(sfu_source_video(src, aus[0], lens[0], 1000, true), 0);
    assert_int_equal(sfu_source_video(src, aus[1], lens[1], 4600, false), 0);

    static char offer[WSDP_MAX_TEXT];
    sbuf_t ans;
    sbuf_init(&ans);
    size_t n = client_offer(&e->view, "chromium_view.sdp", offer, sizeof(offer));
    if (sfu_view(e->sfu, "gb-1", NULL, "view", NULL, offer, n, &ans, e->view_id, &why) != 0) fail_msg("view: %s", why);
    static struct wsdp_session a;
    assert_int_equal(wsdp_parse(ans.data, ans.len, &a, &why), 0);
    const struct wsdp_codec *vc = wsdp_media_codec(&a.media[1]);
    assert_non_null(vc);
    assert_string_equal(vc->name, "H264");
    assert_non_null(strstr(vc->fmtp, "packetization-mode=1"));
    assert_int_equal(a.media[1].n_ssrcs, 1);
    uint32_t ssrc = a.media[1].ssrcs[0].ssrc;
    e->view.cap = &cap;
    client_connect(e, &e->view, ans.data, ans.len);
    WAIT_FOR(e, so.joined == 1);
    /* The GOP so far arrives at once, then what is fed after. */
    WAIT_FOR(e, cap.n == 2);
    assert_int_equal(sfu_source_video(src, aus[2], lens[2], 8200, false), 0);
    assert_int_equal(sfu_source_video(src, aus[3], lens[3], 11800, false), 0);
    WAIT_FOR(e, cap.n == 4);
    assert_int_equal(cap.pt_seen, vc->pt);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cap.len[i], lens[i]);
        assert_memory_equal(cap.au[i], aus[i], lens[i]);
    }
    for (size_t i = 1; i < cap.n_seqs; i++) assert_int_equal(cap.seqs[i], (uint16_t)(cap.seqs[i - 1] + 1));

    /* A lost packet's NACK is answered from the cache (lost before SRTP,
     * which would refuse a second copy as a replay); a PLI reaches the
     * callback. */
    uint8_t rtcp[256];
    uint16_t asked = (uint16_t)(cap.seqs[cap.n_seqs - 1] + 1);
    e->view.drop[0] = asked;
    e->view.n_drop = 1;
    assert_int_equal(sfu_source_video(src, aus[3], lens[3], 15400, false), 0);
    WAIT_FOR(e, e->view.dropped == 1);
    size_t had = cap.n_seqs;
    int w = rtcp_build_nack(rtcp, sizeof(rtcp), 0x7777, ssrc, &asked, 1);
    client_send_rtcp(&e->view, rtcp, (size_t)w);
    WAIT_FOR(e, cap.n_seqs == had + 1);
    assert_int_equal(cap.seqs[had], asked);
    w = rtcp_build_pli(rtcp, sizeof(rtcp), 0x7777, ssrc);
    client_send_rtcp(&e->view, rtcp, (size_t)w);
    WAIT_FOR(e, so.keyframes == 1);
    struct sfu_source_stats st;
    sfu_source_get_stats(src, &st);
    assert_int_equal(st.access_units, 5);
    assert_int_equal(st.gop_replays, 1);
    assert_int_equal(st.viewers, 1);

    /* The viewer leaves: reported once. */
    assert_int_equal(sfu_leave(e->sfu, e->view_id), 0);
    assert_int_equal(so.left, 1);
    sfu_source_free(src);
    sbuf_free(&ans);
}

/* Freeing the source closes its room: the viewer's DTLS is closed, its
 * participant gone, and no callback runs from the free. */
static void test_local_source_free_ends_viewers(void **state)
{
    struct env *e = *state;
    struct src_obs so = {0};
    struct sfu_source_config sc = {.room = "gb-2", .cb = {.user = &so, .viewer = src_viewer}};
    struct sfu_source *src = sfu_source_new(e->sfu, &sc, NULL, NULL);
    assert_non_null(src);
    static char offer[WSDP_MAX_TEXT];
    const char *why = NULL;
    sbuf_t ans;
    sbuf_init(&ans);
    size_t n = client_offer(&e->view, "chromium_view.sdp", offer, sizeof(offer));
    if (sfu_view(e->sfu, "gb-2", NULL, "view", NULL, offer, n, &ans, e->view_id, &why) != 0) fail_msg("view: %s", why);
    client_connect(e, &e->view, ans.data, ans.len);
    WAIT_FOR(e, so.joined == 1);
    sfu_source_free(src);
    WAIT_FOR(e, e->view.dtls_closed);
    struct sfu_peer_info info;
    assert_int_equal(sfu_peer_info(e->sfu, e->view_id, &info), -ENOENT);
    assert_int_equal(so.left, 0);
    struct room_info ri;
    assert_true(room_get(sfu_rooms(e->sfu), "gb-2", &ri) < 0);
    /* A bad profile-level-id or room name is refused. */
    int err = 0;
    struct sfu_source_config bad = {.room = "gb-3", .profile_level_id = "42e0"};
    assert_null(sfu_source_new(e->sfu, &bad, &err, &why));
    assert_int_equal(err, -EINVAL);
    bad = (struct sfu_source_config){.room = "bad room"};
    assert_null(sfu_source_new(e->sfu, &bad, &err, &why));
    assert_int_equal(err, -EINVAL);
    sbuf_free(&ans);
}

/* A source with audio (a camera's G.711): a second m-line the browser's
 * audio m-line takes (PCMA, its own SSRC), samples sent in 20 ms packets
 * with consecutive sequence numbers; a video-only source refuses samples,
 * and only PCMA/PCMU are audio. */
static void test_local_source_audio(void **state)
{
    struct env *e = *state;
    static struct capture cap;
    memset(&cap, 0, sizeof(cap));
    struct src_obs so = {0};
    struct sfu_source_config sc = {.room = "gb-4", .audio = "PCMA", .cb = {.user = &so, .viewer = src_viewer}};
    int err = 0;
    const char *why = NULL;
    struct sfu_source *src = sfu_source_new(e->sfu, &sc, &err, &why);
    if (!src) fail_msg("sfu_source_new: %d %s", err, why);
    static char offer[WSDP_MAX_TEXT];
    sbuf_t ans;
    sbuf_init(&ans);
    size_t n = client_offer(&e->view, "chromium_view.sdp", offer, sizeof(offer));
    if (sfu_view(e->sfu, "gb-4", NULL, "view", NULL, offer, n, &ans, e->view_id, &why) != 0) fail_msg("view: %s", why);
    static struct wsdp_session a;
    assert_int_equal(wsdp_parse(ans.data, ans.len, &a, &why), 0);
    const struct wsdp_codec *ac = wsdp_media_codec(&a.media[0]); /* Chromium's audio m-line comes first */
    assert_non_null(ac);
    assert_string_equal(ac->name, "PCMA");
    assert_int_equal(ac->clock, 8000);
    assert_int_equal(ac->pt, 8);
    assert_int_equal(a.media[0].n_ssrcs, 1);
    assert_int_equal(a.media[1].n_ssrcs, 1);
    assert_int_not_equal(a.media[0].ssrcs[0].ssrc, a.media[1].ssrcs[0].ssrc);
    e->view.cap = &cap;
    client_connect(e, &e->view, ans.data, ans.len);
    WAIT_FOR(e, so.joined == 1);
    uint8_t samples[400];
    for (size_t i = 0; i < sizeof(samples); i++) samples[i] = (uint8_t)(0xD5 ^ (i & 3));
    assert_int_equal(sfu_source_audio(src, samples, sizeof(samples), 8000), 0);
    WAIT_FOR(e, cap.n_seqs == 3); /* 160 + 160 + 80 samples */
    assert_int_equal(cap.pt_seen, 8);
    assert_int_equal(cap.seqs[1], (uint16_t)(cap.seqs[0] + 1));
    assert_int_equal(cap.seqs[2], (uint16_t)(cap.seqs[1] + 1));
    /* The capture keeps each payload behind a 4-byte start code. */
    assert_int_equal(cap.cur, 3 * 4 + sizeof(samples));
    assert_memory_equal(cap.au[0] + 4, samples, 160);
    assert_memory_equal(cap.au[0] + 4 + 160 + 4, samples + 160, 160);
    assert_memory_equal(cap.au[0] + 2 * (4 + 160) + 4, samples + 320, 80);
    struct sfu_source_stats st;
    sfu_source_get_stats(src, &st);
    assert_int_equal(st.audio_packets, 3);
    sfu_source_free(src);
    sbuf_free(&ans);

    struct sfu_source_config video_only = {.room = "gb-5"};
    src = sfu_source_new(e->sfu, &video_only, NULL, NULL);
    assert_non_null(src);
    assert_int_equal(sfu_source_audio(src, samples, 160, 0), -EINVAL);
    sfu_source_free(src);
    struct sfu_source_config bad = {.room = "gb-6", .audio = "opus"};
    assert_null(sfu_source_new(e->sfu, &bad, &err, &why));
    assert_int_equal(err, -EINVAL);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_simulcast_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simulcast_max_layer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_publisher_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_peer_gone_is_not_a_leave, setup_members, teardown),
        cmocka_unit_test_setup_teardown(test_member_socket_close_then_consent, setup_members, teardown),
        cmocka_unit_test_setup_teardown(test_member_subscriptions, setup_members, teardown),
        cmocka_unit_test_setup_teardown(test_local_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_source_free_ends_viewers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_source_audio, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
