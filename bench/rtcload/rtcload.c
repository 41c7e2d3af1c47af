/* rtcload.c — cascade-rtcload, a load viewer: one process, one libuv loop,
 * N WebRTC receive-only viewers of one stream, each with its own UDP socket
 * (its own 5-tuple), ICE, a DTLS client session, SRTP and RTCP feedback.
 * It measures what a viewer sees: time to connect, time to the first key
 * frame, packets, bytes, loss (from each SSRC's extended sequence numbers),
 * receive jitter. It does not measure the server's forwarding delay (that
 * needs the server's own in/out stamps; see docs/bench-media.md).
 *
 * Signaling: WHEP (--whep URL: POST our recvonly offer, read the 201
 * answer; the server is ICE-lite and we are controlling) or the Janus HTTP
 * API with its streaming plugin (--janus URL --mountpoint ID: Janus offers,
 * we answer; Janus is a full agent and controlling, we are controlled and
 * answer its checks as well as sending ours).
 *
 * Built from the project's blocks: media/stun.h (Binding requests and the
 * responder), media/dtls.h (client role, one certificate for all viewers),
 * media/srtp.h, media/rtcp.h (RR, NACK, PLI builders), media/rtp.h (RTP
 * header parsing). Output: one JSON line a second on stdout, then a summary
 * line ("summary":true). Per-packet work allocates nothing: one receive
 * buffer for the whole loop, fixed per-viewer state. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "media/dtls.h"
#include "media/rtcp.h"
#include "media/rtp.h"
#include "media/srtp.h"
#include "media/stun.h"
#include "rl_http.h"
#include "rl_sdp.h"

#define MAX_STREAMS 4
#define NACK_MAX_GAP 64            /* a bigger hole is not worth asking for */
#define TICK_MS 20
#define ICE_RETRY_MS 100           /* checks before the pair works */
#define CONSENT_MS 2000            /* checks after: consent freshness (RFC 7675) */
#define CONSENT_LOST_MS 30000
#define RR_MS 1000
#define PLI_RETRY_MS 1000
#define DTLS_FIRST_TIMEOUT_MS 400

enum vstate { V_IDLE, V_SIGNALING, V_ICE, V_DTLS, V_MEDIA, V_FAILED };

/* Sequence accounting of one SSRC. Not rtp.h's RFC 3550 A.1 statistics:
 * those take a jump of more than 3000 as a sender restart and start
 * counting afresh, which hides exactly the loss we measure when a server
 * drops seconds of a queue at once. Here every forward step (the signed
 * 16-bit difference) extends the highest sequence number. */
typedef struct {
    bool started;
    uint32_t ssrc;
    uint16_t max_seq;
    uint32_t cycles, base;
    uint64_t received;
    uint64_t exp_prior, recv_prior; /* for the RR's fraction lost */
} seqstat_t;

static void seq_init(seqstat_t *q, uint32_t ssrc, uint16_t seq)
{
    *q = (seqstat_t){.started = true, .ssrc = ssrc, .max_seq = seq, .base = seq, .received = 1};
}

static uint32_t seq_ext_max(const seqstat_t *q) { return q->cycles + q->max_seq; }
static uint64_t seq_expected(const seqstat_t *q) { return q->started ? (uint64_t)seq_ext_max(q) - q->base + 1 : 0; }

/* Lost so far, never negative (duplicates count as received). */
static uint64_t seq_lost(const seqstat_t *q)
{
    uint64_t e = seq_expected(q);
    return e > q->received ? e - q->received : 0;
}

static void seq_update(seqstat_t *q, uint16_t seq)
{
    int16_t d = (int16_t)(uint16_t)(seq - q->max_seq);
    if (d > 0) {
        if (seq < q->max_seq)
            q->cycles += 65536u;
        q->max_seq = seq;
    }
    q->received++;
}

/* RFC 3550 §6.4.1 fraction lost since the last call, in 1/256. */
static uint8_t seq_fraction(seqstat_t *q)
{
    uint64_t e = seq_expected(q), r = q->received;
    uint64_t de = e - q->exp_prior, dr = r - q->recv_prior;
    q->exp_prior = e;
    q->recv_prior = r;
    return de == 0 || dr >= de ? 0 : (uint8_t)(((de - dr) << 8) / de);
}

typedef struct {
    bool used, video;
    uint32_t clock;
    seqstat_t st;
    uint32_t jitter_q4;            /* RFC 3550 A.8 jitter in timestamp units, <<4 */
    int64_t last_transit;
    bool have_transit;
} stream_t;

typedef struct viewer {
    int idx;
    enum vstate state;
    uv_udp_t udp;
    bool udp_open;
    struct sockaddr_in local, remote;
    char ufrag[12], pwd[28];
    rl_sdp_t peer;
    uint8_t peer_fp[DTLS_FP_LEN];
    bool controlling;
    uint64_t tie;
    bool check_ok, peer_checked, peer_nominated;
    uint64_t last_check_ok, ice_ok_at;
    struct dtls_session *dtls;
    struct msrtp *in, *out;
    bool decrypt;                  /* still unprotecting payloads (until the key frame) */
    uint32_t ssrc;
    int pt_h264, pt_vp8;
    uint64_t t_join, t_conn, t_key, t_first_video;
    uint64_t next_stun, next_rr, next_pli;
    int plis_left;
    uint32_t video_ssrc;
    uint64_t pkts, bytes, nacks, plis, auth_fail, early;
    stream_t streams[MAX_STREAMS];
    bool keyframed, consent_lost;
    uint64_t janus_handle;
    char *location;
    const char *fail_why;
    const struct whep_target *tgt; /* WHEP: where this viewer posts (--whep, or its --whep-file line) */
} viewer_t;

/* A WHEP endpoint: the address, Host and path of its URL. */
struct whep_target {
    struct sockaddr_in addr;
    char hostport[256], path[512];
};

static struct {
    const char *whep, *whep_file, *token, *janus, *bind_ip;
    uint64_t mountpoint;
    int n, ramp_ms, duration_s, inflight;
    bool decrypt_all, quiet, print_sdp;
    unsigned srtp;   /* DTLS_PROFILE_* offered */
} cfg = {.n = 10, .ramp_ms = 2000, .duration_s = 30, .inflight = 16, .srtp = DTLS_PROFILE_CM | DTLS_PROFILE_GCM};

static uv_loop_t *loop;
static viewer_t *viewers;
static struct dtls_context *dctx;
static char our_fp[DTLS_FP_ATTR_LEN + 1];
static struct sockaddr_in srv_addr;
static char srv_hostport[256], srv_path[512];
static struct whep_target *whep_tgts;  /* WHEP: one per URL; viewer i takes i mod count */
static int n_whep_tgts;
static char auth_hdr[600];
static uint64_t janus_session;
static uint64_t t0, t_end;
static int joined;
static bool stopping;
static uv_timer_t tick_timer, stop_timer, keepalive_timer;
static uint8_t rxbuf[4096];
static uint64_t sig_fail, janus_events, janus_hangups;
/* What the last one-second line printed, for its deltas. */
static uint64_t prev_pkts, prev_bytes, prev_nacks;
static uint64_t pps_window[10], bytes_window[10];
static int window_n;

static uint64_t now_ns(void) { return uv_hrtime(); }
static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static void fail(viewer_t *v, const char *why)
{
    if (v->state == V_FAILED)
        return;
    v->state = V_FAILED;
    v->fail_why = why;
    if (!cfg.quiet && !stopping) /* a session torn down at the end is no failure */
        fprintf(stderr, "rtcload: viewer %d failed: %s\n", v->idx, why);
}

/* ---- sending on a viewer's socket ---- */

static int udp_send(viewer_t *v, const void *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int r = uv_udp_try_send(&v->udp, &b, 1, (const struct sockaddr *)&v->remote);
    return r < 0 ? -1 : 0;
}

static int dtls_send_cb(void *user, const void *data, size_t len) { return udp_send(user, data, len); }

static void send_rtcp(viewer_t *v, uint8_t *pkt, size_t len, size_t cap)
{
    if (!v->out || msrtp_protect_rtcp(v->out, pkt, &len, cap) != MSRTP_OK)
        return;
    udp_send(v, pkt, len);
}

static void send_check(viewer_t *v)
{
    uint8_t tid[STUN_TID_LEN], out[STUN_MAX_MESSAGE];
    char user[200];
    size_t len;
    RAND_bytes(tid, sizeof tid);
    snprintf(user, sizeof user, "%s:%s", v->peer.ufrag, v->ufrag);
    /* PRIORITY of a peer-reflexive candidate of ours (RFC 8445 §7.1.1). */
    if (stun_build_binding_request(tid, user, 1845501695u, v->controlling, v->controlling, v->tie,
                                   (const uint8_t *)v->peer.pwd, strlen(v->peer.pwd), out, sizeof out, &len) == 0)
        udp_send(v, out, len);
}

static void send_pli(viewer_t *v)
{
    uint8_t pkt[64 + MSRTP_RTCP_TRAILER];
    int n = rtcp_build_pli(pkt, 64, v->ssrc, v->video_ssrc);
    if (n > 0) {
        send_rtcp(v, pkt, (size_t)n, sizeof pkt);
        v->plis++;
    }
}

static void send_rr(viewer_t *v)
{
    rtcp_report_block_t blocks[MAX_STREAMS];
    size_t nb = 0;
    for (int i = 0; i < MAX_STREAMS; i++) {
        stream_t *s = &v->streams[i];
        if (!s->used || !s->st.started)
            continue;
        uint64_t lost = seq_lost(&s->st);
        blocks[nb++] = (rtcp_report_block_t){
            .ssrc = s->st.ssrc,
            .fraction_lost = seq_fraction(&s->st),
            .cumulative_lost = (int32_t)(lost > 0x7fffff ? 0x7fffff : lost),
            .ext_highest_seq = seq_ext_max(&s->st),
            .jitter = s->jitter_q4 >> 4,
        };
    }
    uint8_t pkt[4 + 4 + 24 * MAX_STREAMS + MSRTP_RTCP_TRAILER];
    int n = rtcp_build_rr(pkt, sizeof pkt - MSRTP_RTCP_TRAILER, v->ssrc, blocks, nb);
    if (n > 0)
        send_rtcp(v, pkt, (size_t)n, sizeof pkt);
}

/* ---- the media path ---- */

static bool is_keyframe_h264(const uint8_t *p, size_t n)
{
    if (n < 1)
        return false;
    uint8_t t = p[0] & 0x1f;
    if (t == 5 || t == 7)
        return true;
    if (t == 28) /* FU-A: the start fragment of an IDR slice */
        return n >= 2 && (p[1] & 0x80) && (p[1] & 0x1f) == 5;
    if (t == 24) { /* STAP-A: any aggregated SPS or IDR */
        size_t off = 1;
        while (off + 3 <= n) {
            size_t sz = ((size_t)p[off] << 8) | p[off + 1];
            uint8_t nt = p[off + 2] & 0x1f;
            if (nt == 5 || nt == 7)
                return true;
            off += 2 + sz;
        }
    }
    return false;
}

/* RFC 7741 §4.2/§4.3: the first packet of a frame (S=1, PID=0) whose VP8
 * payload header has P (inverse key frame flag) 0. */
static bool is_keyframe_vp8(const uint8_t *p, size_t n)
{
    if (n < 1)
        return false;
    size_t off = 1;
    if (p[0] & 0x80) { /* X */
        if (n < 2)
            return false;
        uint8_t x = p[1];
        off = 2;
        if (x & 0x80) /* I: PictureID, 7 or 15 bits */
            off += (n > off && (p[off] & 0x80)) ? 2 : 1;
        if (x & 0x40) /* L */
            off++;
        if (x & 0x30) /* T or K */
            off++;
    }
    if (!(p[0] & 0x10) || (p[0] & 0x07) != 0 || off >= n)
        return false;
    return (p[off] & 0x01) == 0;
}

static stream_t *stream_for(viewer_t *v, uint32_t ssrc, uint8_t pt)
{
    for (int i = 0; i < MAX_STREAMS; i++)
        if (v->streams[i].used && v->streams[i].st.ssrc == ssrc)
            return &v->streams[i];
    for (int i = 0; i < MAX_STREAMS; i++) {
        stream_t *s = &v->streams[i];
        if (s->used)
            continue;
        s->used = true;
        s->video = (int)pt == v->pt_h264 || (int)pt == v->pt_vp8;
        s->clock = s->video ? 90000 : 48000;
        s->st.ssrc = ssrc; /* started by the first packet */
        return s;
    }
    return NULL;
}

/* Asks again for the holes between the highest sequence number before this
 * packet and this one (RFC 4585 §6.2.1). */
static void nack_gap(viewer_t *v, stream_t *s, uint32_t prev_max, uint32_t now_max)
{
    if (now_max <= prev_max + 1 || now_max - prev_max - 1 > NACK_MAX_GAP)
        return;
    uint16_t seqs[NACK_MAX_GAP];
    size_t n = 0;
    for (uint32_t e = prev_max + 1; e < now_max; e++)
        seqs[n++] = (uint16_t)e;
    uint8_t pkt[12 + 4 * NACK_MAX_GAP + MSRTP_RTCP_TRAILER];
    int len = rtcp_build_nack(pkt, sizeof pkt - MSRTP_RTCP_TRAILER, v->ssrc, s->st.ssrc, seqs, n);
    if (len > 0) {
        send_rtcp(v, pkt, (size_t)len, sizeof pkt);
        v->nacks += n;
    }
}

static void on_rtp(viewer_t *v, uint8_t *buf, size_t len, uint64_t t)
{
    if (!v->in) {
        v->early++;
        return;
    }
    if (rtcp_is_rtcp(buf, len)) {
        msrtp_unprotect_rtcp(v->in, buf, &len); /* SRs: read and dropped */
        return;
    }
    gb_rtp_packet_t p;
    if (v->decrypt) {
        if (msrtp_unprotect_rtp(v->in, buf, &len) != MSRTP_OK) {
            v->auth_fail++;
            return;
        }
        if (gb_rtp_parse(buf, len, &p) < 0)
            return;
    } else {
        /* The header is in the clear: enough to count and find holes. */
        size_t trailer = msrtp_rtp_trailer(v->in);
        if (len < GB_RTP_HEADER_LEN + trailer)
            return;
        memset(&p, 0, sizeof p);
        p.payload_type = buf[1] & 0x7f;
        p.seq = (uint16_t)(buf[2] << 8 | buf[3]);
        p.timestamp = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
        p.ssrc = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 | buf[11];
        p.payload_len = len - GB_RTP_HEADER_LEN - trailer;
    }
    stream_t *s = stream_for(v, p.ssrc, p.payload_type);
    if (!s)
        return;
    uint32_t prev = s->st.started ? seq_ext_max(&s->st) : 0;
    bool was_started = s->st.started;
    if (was_started)
        seq_update(&s->st, p.seq);
    else
        seq_init(&s->st, p.ssrc, p.seq);
    v->pkts++;
    v->bytes += len;
    uint32_t cur = seq_ext_max(&s->st);
    if (was_started && s->video)
        nack_gap(v, s, prev, cur);
    if (!was_started || cur > prev) { /* jitter from in-order packets only, RFC 3550 A.8 */
        int64_t arrival = (int64_t)((t / 1000u) * s->clock / 1000000u);
        int64_t transit = arrival - (int64_t)p.timestamp;
        if (s->have_transit) {
            int64_t d = transit - s->last_transit;
            if (d < 0)
                d = -d;
            s->jitter_q4 += (uint32_t)d - ((s->jitter_q4 + 8) >> 4);
        }
        s->last_transit = transit;
        s->have_transit = true;
    }
    if (s->video && !v->video_ssrc) {
        v->video_ssrc = p.ssrc;
        v->t_first_video = t;
        send_pli(v);
        v->plis_left = 5;
        v->next_pli = t / 1000000u + PLI_RETRY_MS;
    }
    if (s->video && !v->keyframed && v->decrypt) {
        bool key = (int)p.payload_type == v->pt_h264 ? is_keyframe_h264(p.payload, p.payload_len)
                                                      : is_keyframe_vp8(p.payload, p.payload_len);
        if (key) {
            v->keyframed = true;
            v->t_key = t;
            if (!cfg.decrypt_all)
                v->decrypt = false;
        }
    }
}

/* ---- ICE and DTLS ---- */

static void start_dtls(viewer_t *v)
{
    v->dtls = dtls_session_new(dctx, DTLS_ROLE_CLIENT, v->peer_fp);
    if (!v->dtls) {
        fail(v, "no memory for DTLS");
        return;
    }
    struct dtls_io io = {.user = v, .send = dtls_send_cb};
    const char *why = NULL;
    if (dtls_session_start(v->dtls, &io, &why) < 0) {
        fail(v, why ? why : "DTLS start failed");
        return;
    }
    v->state = V_DTLS;
}

/* When to send the ClientHello. An ICE-lite server (cascade) takes media and
 * DTLS as soon as one of our checks has been answered. A full agent that
 * controls (Janus) starts its DTLS side only once it has nominated a pair
 * (its check with USE-CANDIDATE): a ClientHello before that is dropped and
 * the retransmission backs off (400 ms, 800 ms, ...), which would charge the
 * server for our impatience; browsers also wait for the nominated pair. A
 * full agent that we control needs its own check to have worked. Whatever
 * the peer, 1 s after our first answered check we go ahead regardless. */
static void maybe_start_dtls(viewer_t *v, uint64_t ms)
{
    if (v->state != V_ICE || !v->check_ok)
        return;
    bool ready = v->peer.ice_lite || (v->controlling ? v->peer_checked : v->peer_nominated);
    if (ready || ms - v->ice_ok_at >= 1000)
        start_dtls(v);
}

static void on_stun(viewer_t *v, const uint8_t *buf, size_t len, const struct sockaddr *src, uint64_t ms)
{
    stun_msg_t m;
    if (stun_parse(buf, len, &m, NULL) != STUN_PARSE_OK)
        return;
    int cls = stun_msg_class(m.type);
    if (cls == STUN_CLASS_REQUEST) {
        uint8_t out[STUN_MAX_MESSAGE];
        size_t olen = 0;
        stun_ice_info_t info;
        int r = stun_ice_lite_answer(buf, len, src, v->ufrag, v->pwd, out, sizeof out, &olen, &info);
        if (olen)
            udp_send(v, out, olen);
        if (r == STUN_ICE_SUCCESS) {
            v->peer_checked = true;
            v->peer_nominated |= info.use_candidate;
            maybe_start_dtls(v, ms);
        }
    } else if (cls == STUN_CLASS_SUCCESS) {
        if (!stun_verify_integrity(buf, &m, (const uint8_t *)v->peer.pwd, strlen(v->peer.pwd)))
            return;
        v->last_check_ok = ms;
        if (!v->check_ok) {
            v->check_ok = true;
            v->ice_ok_at = ms;
            maybe_start_dtls(v, ms);
        }
    }
}

static void on_dtls(viewer_t *v, const uint8_t *buf, size_t len, uint64_t t)
{
    if (!v->dtls)
        return;
    struct dtls_io io = {.user = v, .send = dtls_send_cb};
    const char *why = NULL;
    if (dtls_session_input(v->dtls, buf, len, &io, &why) < 0) {
        if (why && strcmp(why, "not DTLS") == 0)
            return;
        fail(v, why ? why : "DTLS failed");
        return;
    }
    if (v->in || !dtls_session_established(v->dtls))
        return;
    struct dtls_srtp_keys k;
    if (dtls_session_srtp_keys(v->dtls, &k) < 0 || msrtp_pair_from_dtls(&k, DTLS_ROLE_CLIENT, &v->in, &v->out) != 0) {
        fail(v, "SRTP keys");
        return;
    }
    v->state = V_MEDIA;
    v->t_conn = t;
    v->next_rr = t / 1000000u + RR_MS;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init((char *)rxbuf, sizeof rxbuf);
}

static void on_udp(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *src, unsigned flags)
{
    (void)flags;
    viewer_t *v = h->data;
    if (n <= 0 || !src || v->state == V_FAILED)
        return;
    uint8_t *d = (uint8_t *)buf->base;
    uint64_t t = now_ns();
    switch (media_demux_kind(d[0])) {
    case MEDIA_DEMUX_STUN:
        on_stun(v, d, (size_t)n, src, t / 1000000u);
        break;
    case MEDIA_DEMUX_DTLS:
        on_dtls(v, d, (size_t)n, t);
        break;
    case MEDIA_DEMUX_RTP:
        on_rtp(v, d, (size_t)n, t);
        break;
    default:
        break;
    }
}

/* Binds the viewer's socket on ip, port chosen by the kernel. */
static int open_socket(viewer_t *v, const char *ip)
{
    struct sockaddr_in a;
    if (uv_ip4_addr(ip, 0, &a) != 0 || uv_udp_init(loop, &v->udp) != 0)
        return -1;
    v->udp.data = v;
    v->udp_open = true;
    if (uv_udp_bind(&v->udp, (const struct sockaddr *)&a, 0) != 0)
        return -1;
    int sz = 1 << 20; /* room for a key frame burst while the loop is busy */
    uv_recv_buffer_size((uv_handle_t *)&v->udp, &sz);
    int alen = sizeof v->local;
    uv_udp_getsockname(&v->udp, (struct sockaddr *)&v->local, &alen);
    return uv_udp_recv_start(&v->udp, on_alloc, on_udp) == 0 ? 0 : -1;
}

/* The server's description is in v->peer: pick payload types, the remote
 * address and the fingerprint, and start checking. */
static int take_peer(viewer_t *v)
{
    if (!v->peer.have_cand || uv_ip4_addr(v->peer.cand_ip, v->peer.cand_port, &v->remote) != 0)
        return -1;
    if (dtls_fingerprint_parse(v->peer.fingerprint, v->peer_fp) != 0)
        return -1;
    v->pt_h264 = v->pt_vp8 = -1;
    for (size_t i = 0; i < v->peer.n_media; i++) {
        if (v->peer.media[i].pt_h264 >= 0 && v->pt_h264 < 0)
            v->pt_h264 = v->peer.media[i].pt_h264;
        if (v->peer.media[i].pt_vp8 >= 0 && v->pt_vp8 < 0)
            v->pt_vp8 = v->peer.media[i].pt_vp8;
    }
    v->state = V_ICE;
    v->next_stun = 0; /* the tick sends the first check */
    return 0;
}

static rl_sdp_local_t local_of(viewer_t *v, char *ip, size_t cap)
{
    uv_ip4_name(&v->local, ip, cap);
    return (rl_sdp_local_t){.ufrag = v->ufrag, .pwd = v->pwd, .fingerprint = our_fp, .ip = ip,
                            .port = ntohs(v->local.sin_port), .ssrc = v->ssrc};
}

/* ---- WHEP ---- */

static void on_whep_answer(void *user, const rl_http_resp_t *r)
{
    viewer_t *v = user;
    if (r->status != 201) {
        sig_fail++;
        fail(v, r->status ? "WHEP POST not 201" : "WHEP POST: no response");
        return;
    }
    if (r->location) {
        if (r->location[0] == '/') {
            v->location = strdup(r->location);
        } else {
            /* absolute: keep only the path; the server is the one we posted to */
            const char *p = strstr(r->location, "://");
            p = p ? strchr(p + 3, '/') : NULL;
            v->location = p ? strdup(p) : NULL;
        }
    }
    if (cfg.print_sdp && v->idx == 0)
        fprintf(stderr, "--- answer (viewer 0): HTTP %d\n%.*s", r->status, (int)r->body_len, r->body);
    const char *why = "bad answer";
    if (rl_sdp_parse(r->body, r->body_len, &v->peer, &why) < 0 || take_peer(v) < 0) {
        sig_fail++;
        fail(v, why);
    }
}

static void whep_join(viewer_t *v)
{
    char sdp[4096], ip[64];
    if (open_socket(v, cfg.bind_ip ? cfg.bind_ip : "127.0.0.1") < 0) {
        fail(v, "socket");
        return;
    }
    v->controlling = true;
    rl_sdp_local_t l = local_of(v, ip, sizeof ip);
    int n = rl_sdp_write_offer(&l, sdp, sizeof sdp);
    if (n < 0) {
        fail(v, "offer too long");
        return;
    }
    if (cfg.print_sdp && v->idx == 0)
        fprintf(stderr, "--- offer (viewer 0)\n%s", sdp);
    rl_http_request(&v->tgt->addr, v->tgt->hostport, "POST", v->tgt->path, "application/sdp",
                    cfg.token ? auth_hdr : NULL, sdp, (size_t)n, on_whep_answer, v);
}

static void on_ignore(void *user, const rl_http_resp_t *r)
{
    (void)user;
    (void)r;
}

/* ---- Janus ---- */

static void janus_post(const char *path, json_t *msg, rl_http_cb cb, void *user)
{
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!body)
        return;
    rl_http_request(&srv_addr, srv_hostport, "POST", path, "application/json", NULL, body, strlen(body), cb, user);
    free(body);
}

static void on_janus_start(void *user, const rl_http_resp_t *r)
{
    viewer_t *v = user;
    if (r->status != 200) {
        sig_fail++;
        fail(v, "Janus start: no response");
    }
}

static void janus_offer(viewer_t *v, const char *sdp)
{
    if (cfg.print_sdp && v->idx == 0)
        fprintf(stderr, "--- Janus offer (viewer 0)\n%s", sdp);
    const char *why = "bad offer";
    if (rl_sdp_parse(sdp, strlen(sdp), &v->peer, &why) < 0) {
        fail(v, why);
        return;
    }
    /* Janus gathers on the host's interfaces, never loopback: bind where its
     * candidate is (a local address: still no wire between us). */
    if (open_socket(v, cfg.bind_ip ? cfg.bind_ip : v->peer.have_cand ? v->peer.cand_ip : "127.0.0.1") < 0) {
        fail(v, "socket");
        return;
    }
    v->controlling = false; /* the offerer controls (RFC 8445 §6.1.1) */
    char ans[4096], ip[64], path[640];
    rl_sdp_local_t l = local_of(v, ip, sizeof ip);
    int n = rl_sdp_write_answer(&v->peer, &l, ans, sizeof ans);
    if (n < 0 || take_peer(v) < 0) {
        fail(v, "cannot answer Janus's offer");
        return;
    }
    if (cfg.print_sdp && v->idx == 0)
        fprintf(stderr, "--- answer (viewer 0)\n%s", ans);
    snprintf(path, sizeof path, "%s/%" PRIu64 "/%" PRIu64, srv_path, janus_session, v->janus_handle);
    janus_post(path,
               json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:s}}", "janus", "message", "transaction", "start", "body",
                         "request", "start", "jsep", "type", "answer", "sdp", ans),
               on_janus_start, v);
}

static viewer_t *viewer_by_handle(uint64_t h)
{
    for (int i = 0; i < joined; i++)
        if (viewers[i].janus_handle == h)
            return &viewers[i];
    return NULL;
}

static void janus_event(json_t *ev)
{
    janus_events++;
    const char *kind = json_string_value(json_object_get(ev, "janus"));
    viewer_t *v = viewer_by_handle((uint64_t)json_integer_value(json_object_get(ev, "sender")));
    if (!kind || !v)
        return;
    if (strcmp(kind, "hangup") == 0 || strcmp(kind, "detached") == 0) {
        janus_hangups++;
        fail(v, "Janus hung up");
        return;
    }
    json_t *jsep = json_object_get(ev, "jsep");
    const char *type = json_string_value(json_object_get(jsep, "type"));
    const char *sdp = json_string_value(json_object_get(jsep, "sdp"));
    if (type && sdp && strcmp(type, "offer") == 0 && v->state == V_SIGNALING)
        janus_offer(v, sdp);
    json_t *err = json_object_get(json_object_get(json_object_get(ev, "plugindata"), "data"), "error");
    if (err)
        fail(v, "Janus: watch refused");
}

static void janus_poll(void);

static void on_janus_poll(void *user, const rl_http_resp_t *r)
{
    (void)user;
    json_t *j = r->status == 200 ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    if (json_is_array(j)) {
        size_t i;
        json_t *ev;
        json_array_foreach(j, i, ev) janus_event(ev);
    } else if (json_is_object(j)) {
        janus_event(j);
    }
    json_decref(j);
    if (!stopping)
        janus_poll();
}

static void janus_poll(void)
{
    char path[640];
    snprintf(path, sizeof path, "%s/%" PRIu64 "?maxev=50", srv_path, janus_session);
    rl_http_request(&srv_addr, srv_hostport, "GET", path, NULL, NULL, NULL, 0, on_janus_poll, NULL);
}

static void on_janus_watch(void *user, const rl_http_resp_t *r)
{
    viewer_t *v = user;
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    const char *kind = json_string_value(json_object_get(j, "janus"));
    if (!kind || (strcmp(kind, "ack") != 0 && strcmp(kind, "event") != 0)) {
        sig_fail++;
        fail(v, "Janus watch failed");
    } else if (strcmp(kind, "event") == 0) {
        janus_event(j); /* answered at once rather than through the poll */
    }
    json_decref(j);
}

static void on_janus_attach(void *user, const rl_http_resp_t *r)
{
    viewer_t *v = user;
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *id = json_object_get(json_object_get(j, "data"), "id");
    if (!json_is_integer(id)) {
        sig_fail++;
        fail(v, "Janus attach failed");
        json_decref(j);
        return;
    }
    v->janus_handle = (uint64_t)json_integer_value(id);
    json_decref(j);
    char path[640];
    snprintf(path, sizeof path, "%s/%" PRIu64 "/%" PRIu64, srv_path, janus_session, v->janus_handle);
    janus_post(path,
               json_pack("{s:s, s:s, s:{s:s, s:I}}", "janus", "message", "transaction", "watch", "body", "request",
                         "watch", "id", (json_int_t)cfg.mountpoint),
               on_janus_watch, v);
}

static void janus_join(viewer_t *v)
{
    char path[640];
    snprintf(path, sizeof path, "%s/%" PRIu64, srv_path, janus_session);
    janus_post(path, json_pack("{s:s, s:s, s:s}", "janus", "attach", "plugin", "janus.plugin.streaming",
                               "transaction", "attach"),
               on_janus_attach, v);
}

static void on_keepalive(uv_timer_t *t)
{
    (void)t;
    char path[640];
    snprintf(path, sizeof path, "%s/%" PRIu64, srv_path, janus_session);
    janus_post(path, json_pack("{s:s, s:s}", "janus", "keepalive", "transaction", "ka"), on_ignore, NULL);
}

/* ---- the run ---- */

static void viewer_join(viewer_t *v)
{
    v->state = V_SIGNALING;
    v->t_join = now_ns();
    v->decrypt = true;
    RAND_bytes((uint8_t *)&v->tie, sizeof v->tie);
    RAND_bytes((uint8_t *)&v->ssrc, sizeof v->ssrc);
    /* ufrag 8 and pwd 24 characters from the ice-char set (RFC 8839 §5.4). */
    static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t r[32];
    RAND_bytes(r, sizeof r);
    for (int i = 0; i < 8; i++)
        v->ufrag[i] = chars[r[i] & 63];
    for (int i = 0; i < 24; i++)
        v->pwd[i] = chars[r[8 + i] & 63];
    if (cfg.janus)
        janus_join(v);
    else
        whep_join(v);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of a (sorted in place) of n, in ms from ns. */
static double quant_ms(uint64_t *a, size_t n, double q)
{
    if (!n)
        return -1;
    qsort(a, n, sizeof *a, cmp_u64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)a[i] / 1e6;
}

typedef struct {
    int connected, keyframed, failed, signaling, ice, dtls, gcm, cm;
    uint64_t pkts, bytes, nacks, plis, expected, lost, auth_fail;
    double jitter_ms_sum;
    int jitter_n;
} totals_t;

static totals_t totals(void)
{
    totals_t t = {0};
    for (int i = 0; i < joined; i++) {
        viewer_t *v = &viewers[i];
        t.connected += v->t_conn != 0;
        t.gcm += v->in && msrtp_profile(v->in) == DTLS_SRTP_AEAD_AES_128_GCM;
        t.cm += v->in && msrtp_profile(v->in) == DTLS_SRTP_AES128_CM_SHA1_80;
        t.keyframed += v->keyframed;
        t.failed += v->state == V_FAILED;
        t.signaling += v->state == V_SIGNALING;
        t.ice += v->state == V_ICE;
        t.dtls += v->state == V_DTLS;
        t.pkts += v->pkts;
        t.bytes += v->bytes;
        t.nacks += v->nacks;
        t.plis += v->plis;
        t.auth_fail += v->auth_fail;
        for (int k = 0; k < MAX_STREAMS; k++) {
            stream_t *s = &v->streams[k];
            if (!s->used || !s->st.started)
                continue;
            t.expected += seq_expected(&s->st);
            t.lost += seq_lost(&s->st);
            if (s->video) {
                t.jitter_ms_sum += (double)(s->jitter_q4 >> 4) * 1000.0 / s->clock;
                t.jitter_n++;
            }
        }
    }
    return t;
}

static void print_second(uint64_t ms)
{
    totals_t t = totals();
    uint64_t dp = t.pkts - prev_pkts, db = t.bytes - prev_bytes;
    pps_window[window_n % 10] = dp;
    bytes_window[window_n % 10] = db;
    window_n++;
    printf("{\"t\":%.1f,\"joined\":%d,\"connected\":%d,\"keyframed\":%d,\"failed\":%d,"
           "\"in_signaling\":%d,\"in_ice\":%d,\"in_dtls\":%d,\"pps\":%" PRIu64
           ",\"mbps\":%.2f,\"nacks\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"loss_pct\":%.4f,\"jitter_ms\":%.2f,"
           "\"http_pending\":%zu}\n",
           (double)(ms - t0 / 1000000u) / 1000.0, joined, t.connected, t.keyframed, t.failed, t.signaling, t.ice,
           t.dtls, dp,
           (double)db * 8 / 1e6, t.nacks - prev_nacks, t.expected, t.lost,
           t.expected ? 100.0 * (double)t.lost / (double)t.expected : 0.0,
           t.jitter_n ? t.jitter_ms_sum / t.jitter_n : 0.0, rl_http_pending());
    fflush(stdout);
    prev_pkts = t.pkts;
    prev_bytes = t.bytes;
    prev_nacks = t.nacks;
}

/* Drops the kernel counted on our sockets (/proc/net/udp, last column):
 * loss that happened in this process's receive queues, not the server. */
static uint64_t socket_drops(void)
{
    static uint8_t ours[65536 / 8];
    memset(ours, 0, sizeof ours);
    for (int i = 0; i < joined; i++)
        if (viewers[i].udp_open) {
            uint16_t p = ntohs(viewers[i].local.sin_port);
            ours[p / 8] |= (uint8_t)(1u << (p % 8));
        }
    FILE *f = fopen("/proc/net/udp", "r");
    if (!f)
        return 0;
    char line[512];
    uint64_t drops = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned ip, port;
        if (sscanf(line, " %*d: %x:%x", &ip, &port) != 2 || port > 65535 || !(ours[port / 8] & (1u << (port % 8))))
            continue;
        char *last = strrchr(line, ' ');
        if (last)
            drops += strtoull(last + 1, NULL, 10);
    }
    fclose(f);
    return drops;
}

static void print_summary(void)
{
    totals_t t = totals();
    uint64_t *conn = calloc((size_t)cfg.n + 1, sizeof *conn), *key = calloc((size_t)cfg.n + 1, sizeof *key);
    size_t nc = 0, nk = 0;
    uint64_t last_conn = 0, last_key = 0, first_join = joined ? viewers[0].t_join : t0;
    for (int i = 0; conn && key && i < joined; i++) {
        viewer_t *v = &viewers[i];
        if (v->t_conn) {
            conn[nc++] = v->t_conn - v->t_join;
            if (v->t_conn > last_conn)
                last_conn = v->t_conn;
        }
        if (v->keyframed) {
            key[nk++] = v->t_key - v->t_join;
            if (v->t_key > last_key)
                last_key = v->t_key;
        }
    }
    uint64_t wp = 0, wb = 0;
    int wn = window_n < 10 ? window_n : 10;
    for (int i = 0; i < wn; i++) {
        wp += pps_window[i];
        wb += bytes_window[i];
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                   ru.ru_stime.tv_usec / 1e6;
    double wall_s = (double)(now_ns() - t0) / 1e9;
    printf("{\"summary\":true,\"mode\":\"%s\",\"viewers\":%d,\"joined\":%d,\"connected\":%d,\"keyframed\":%d,"
           "\"failed\":%d,\"signaling_failures\":%" PRIu64 ",\"srtp_gcm\":%d,\"srtp_cm\":%d,",
           cfg.janus ? "janus" : "whep", cfg.n, joined, t.connected, t.keyframed, t.failed, sig_fail, t.gcm, t.cm);
    if (t.connected == cfg.n)
        printf("\"all_connected_ms\":%.0f,", (double)(last_conn - first_join) / 1e6);
    else
        printf("\"all_connected_ms\":null,");
    if (t.keyframed == cfg.n)
        printf("\"all_keyframed_ms\":%.0f,", (double)(last_key - first_join) / 1e6);
    else
        printf("\"all_keyframed_ms\":null,");
    printf("\"connect_ms_p50\":%.0f,\"connect_ms_p99\":%.0f,\"keyframe_ms_p50\":%.0f,\"keyframe_ms_p99\":%.0f,",
           quant_ms(conn, nc, 0.5), quant_ms(conn, nc, 0.99), quant_ms(key, nk, 0.5), quant_ms(key, nk, 0.99));
    printf("\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"pps_last10s\":%.0f,\"mbps_last10s\":%.2f,"
           "\"expected\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"loss_pct\":%.4f,\"nacks\":%" PRIu64 ",\"plis\":%" PRIu64
           ",\"srtp_auth_fail\":%" PRIu64 ",\"jitter_ms\":%.2f,\"socket_drops\":%" PRIu64
           ",\"client_cpu_pct\":%.1f,\"decrypt\":\"%s\"}\n",
           t.pkts, t.bytes, wn ? (double)wp / wn : 0.0, wn ? (double)wb * 8 / 1e6 / wn : 0.0, t.expected, t.lost,
           t.expected ? 100.0 * (double)t.lost / (double)t.expected : 0.0, t.nacks, t.plis, t.auth_fail,
           t.jitter_n ? t.jitter_ms_sum / t.jitter_n : 0.0, socket_drops(), wall_s > 0 ? 100.0 * cpu_s / wall_s : 0,
           cfg.decrypt_all ? "all" : "until-key-frame");
    fflush(stdout);
    free(conn);
    free(key);
}

static void on_stop_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h) && h->type != UV_TCP) /* TCP: rl_http's, closed by it */
        uv_close(h, NULL);
}

static void on_stop(uv_timer_t *t)
{
    (void)t;
    /* Leave once the goodbyes are out, or after 5 s regardless. */
    if (rl_http_pending() > 0 && now_ms() < t_end + 5000)
        return;
    rl_http_abort_all();
    uv_walk(loop, on_stop_walk, NULL);
}

static void finish_run(void)
{
    stopping = true;
    print_summary();
    if (cfg.janus && janus_session) {
        char path[640];
        snprintf(path, sizeof path, "%s/%" PRIu64, srv_path, janus_session);
        janus_post(path, json_pack("{s:s, s:s}", "janus", "destroy", "transaction", "bye"), on_ignore, NULL);
    } else {
        for (int i = 0; i < joined; i++)
            if (viewers[i].location)
                rl_http_request(&viewers[i].tgt->addr, viewers[i].tgt->hostport, "DELETE", viewers[i].location, NULL,
                                cfg.token ? auth_hdr : NULL, NULL, 0, on_ignore, NULL);
    }
    t_end = now_ms();
    uv_timer_stop(&tick_timer);
    uv_timer_start(&stop_timer, on_stop, 50, 50);
}

static void viewer_tick(viewer_t *v, uint64_t ms)
{
    if (v->state == V_ICE || v->state == V_DTLS || v->state == V_MEDIA) {
        if (ms >= v->next_stun) {
            send_check(v);
            v->next_stun = ms + (v->check_ok ? CONSENT_MS : ICE_RETRY_MS);
        }
        if (v->check_ok && !v->consent_lost && ms - v->last_check_ok > CONSENT_LOST_MS)
            v->consent_lost = true;
        maybe_start_dtls(v, ms);
    }
    if (v->state == V_DTLS && v->dtls && dtls_session_timeout_ms(v->dtls) == 0) {
        struct dtls_io io = {.user = v, .send = dtls_send_cb};
        const char *why = NULL;
        if (dtls_session_handle_timeout(v->dtls, &io, &why) < 0)
            fail(v, why ? why : "DTLS timeout");
    }
    if (v->state == V_MEDIA) {
        if (ms >= v->next_rr) {
            send_rr(v);
            v->next_rr = ms + RR_MS;
        }
        if (v->video_ssrc && !v->keyframed && v->plis_left > 0 && ms >= v->next_pli) {
            send_pli(v);
            v->plis_left--;
            v->next_pli = ms + PLI_RETRY_MS;
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    static uint64_t next_print;
    uint64_t ms = now_ms(), start_ms = t0 / 1000000u;
    /* Joins spread evenly over the ramp. */
    int due = cfg.ramp_ms <= 0 ? cfg.n : (int)((uint64_t)cfg.n * (ms - start_ms) / (uint64_t)cfg.ramp_ms) + 1;
    if (due > cfg.n)
        due = cfg.n;
    while (joined < due)
        viewer_join(&viewers[joined++]);
    for (int i = 0; i < joined; i++)
        viewer_tick(&viewers[i], ms);
    if (!next_print)
        next_print = ms + 1000;
    if (ms >= next_print) {
        next_print += 1000;
        print_second(ms);
    }
    if (ms - start_ms >= (uint64_t)cfg.duration_s * 1000u)
        finish_run();
}

static void begin_run(void)
{
    t0 = now_ns();
    uv_timer_start(&tick_timer, on_tick, 0, TICK_MS);
    if (cfg.janus)
        uv_timer_start(&keepalive_timer, on_keepalive, 25000, 25000);
}

static void on_janus_session(void *user, const rl_http_resp_t *r)
{
    (void)user;
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *id = json_object_get(json_object_get(j, "data"), "id");
    if (!json_is_integer(id)) {
        fprintf(stderr, "rtcload: Janus create failed (HTTP %d)\n", r->status);
        json_decref(j);
        exit(1);
    }
    janus_session = (uint64_t)json_integer_value(id);
    json_decref(j);
    janus_poll();
    begin_run();
}

/* --whep-file: one WHEP URL a line (blank lines and # comments skipped). */
static int load_whep_file(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "rtcload: cannot read %s\n", file);
        return -1;
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t l = strcspn(line, "\r\n");
        line[l] = 0;
        if (!l || line[0] == '#') continue;
        struct whep_target *t = realloc(whep_tgts, (size_t)(n_whep_tgts + 1) * sizeof *t);
        if (!t) break;
        whep_tgts = t;
        t = &whep_tgts[n_whep_tgts];
        if (rl_http_url(line, &t->addr, t->hostport, sizeof t->hostport, t->path, sizeof t->path) < 0) {
            fprintf(stderr, "rtcload: cannot use URL %s (http://host:port/path)\n", line);
            fclose(f);
            return -1;
        }
        n_whep_tgts++;
    }
    fclose(f);
    if (n_whep_tgts == 0) fprintf(stderr, "rtcload: no URL in %s\n", file);
    return n_whep_tgts ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: cascade-rtcload (--whep URL|--whep-file FILE [--token T] | --janus URL --mountpoint ID) [options]\n"
            "  --whep-file FILE     WHEP URLs, one a line: viewer i posts to line i mod count\n"
            "  -n, --viewers N      viewers (10)\n"
            "  --ramp MS            spread the joins over MS milliseconds (2000; 0: all at once)\n"
            "  --duration S         run S seconds from the first join, then summarise (30)\n"
            "  --bind IP            local address of the viewers' sockets (WHEP: 127.0.0.1;\n"
            "                       Janus: the address of Janus's candidate)\n"
            "  --inflight K         signaling requests at once (16)\n"
            "  --decrypt-all        unprotect every packet (default: until the first key frame,\n"
            "                       then count from the clear RTP header only)\n"
            "  --srtp gcm|cm|both   DTLS-SRTP profiles offered (both: AEAD_AES_128_GCM first,\n"
            "                       then AES128_CM_SHA1_80; the summary counts what was agreed)\n"
            "  --quiet              no per-viewer failure lines on stderr\n"
            "  --print-sdp          viewer 0's offer and answer on stderr\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"whep", required_argument, 0, 'w'},     {"token", required_argument, 0, 't'},
        {"janus", required_argument, 0, 'j'},    {"mountpoint", required_argument, 0, 'm'},
        {"viewers", required_argument, 0, 'n'},  {"ramp", required_argument, 0, 'r'},
        {"duration", required_argument, 0, 'd'}, {"bind", required_argument, 0, 'b'},
        {"inflight", required_argument, 0, 'i'}, {"decrypt-all", no_argument, 0, 'a'},
        {"quiet", no_argument, 0, 'q'},          {"print-sdp", no_argument, 0, 'p'},
        {"whep-file", required_argument, 0, 'W'}, {"srtp", required_argument, 0, 's'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
        switch (c) {
        case 'w': cfg.whep = optarg; break;
        case 'W': cfg.whep_file = optarg; break;
        case 't': cfg.token = optarg; break;
        case 'j': cfg.janus = optarg; break;
        case 'm': cfg.mountpoint = strtoull(optarg, NULL, 10); break;
        case 'n': cfg.n = atoi(optarg); break;
        case 'r': cfg.ramp_ms = atoi(optarg); break;
        case 'd': cfg.duration_s = atoi(optarg); break;
        case 'b': cfg.bind_ip = optarg; break;
        case 'i': cfg.inflight = atoi(optarg); break;
        case 'a': cfg.decrypt_all = true; break;
        case 'q': cfg.quiet = true; break;
        case 'p': cfg.print_sdp = true; break;
        case 's':
            cfg.srtp = !strcmp(optarg, "gcm")    ? DTLS_PROFILE_GCM
                       : !strcmp(optarg, "cm")   ? DTLS_PROFILE_CM
                       : !strcmp(optarg, "both") ? DTLS_PROFILE_CM | DTLS_PROFILE_GCM
                                                 : 0;
            if (!cfg.srtp)
                usage();
            break;
        default: usage();
        }
    }
    if (cfg.whep && cfg.whep_file) usage();
    if (cfg.whep_file) cfg.whep = cfg.whep_file;
    if (!!cfg.whep == !!cfg.janus || cfg.n <= 0 || cfg.n > 20000 || cfg.duration_s <= 0 ||
        (cfg.janus && !cfg.mountpoint))
        usage();
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    /* Each viewer holds a socket; signaling needs a few more. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (cfg.whep_file) {
        if (load_whep_file(cfg.whep_file) < 0) return 2;
    } else {
        const char *url = cfg.whep ? cfg.whep : cfg.janus;
        if (rl_http_url(url, &srv_addr, srv_hostport, sizeof srv_hostport, srv_path, sizeof srv_path) < 0) {
            fprintf(stderr, "rtcload: cannot use URL %s (http://host:port/path)\n", url);
            return 2;
        }
        if (cfg.whep) {
            whep_tgts = calloc(1, sizeof *whep_tgts);
            if (!whep_tgts) return 1;
            whep_tgts[0].addr = srv_addr;
            memcpy(whep_tgts[0].hostport, srv_hostport, sizeof srv_hostport);
            memcpy(whep_tgts[0].path, srv_path, sizeof srv_path);
            n_whep_tgts = 1;
        }
    }
    if (cfg.token)
        snprintf(auth_hdr, sizeof auth_hdr, "Bearer %s", cfg.token);
    char err[256];
    dctx = dtls_context_new(DTLS_FIRST_TIMEOUT_MS, err, sizeof err);
    if (!dctx) {
        fprintf(stderr, "rtcload: DTLS: %s\n", err);
        return 1;
    }
    if (dtls_context_set_profiles(dctx, cfg.srtp) < 0) {
        fprintf(stderr, "rtcload: DTLS: cannot set the SRTP profiles\n");
        return 1;
    }
    snprintf(our_fp, sizeof our_fp, "%s", dtls_context_fingerprint(dctx));
    viewers = calloc((size_t)cfg.n, sizeof *viewers);
    if (!viewers)
        return 1;
    for (int i = 0; i < cfg.n; i++) {
        viewers[i].idx = i;
        viewers[i].tgt = n_whep_tgts ? &whep_tgts[i % n_whep_tgts] : NULL;
    }
    loop = uv_default_loop();
    rl_http_init(loop, cfg.inflight);
    uv_timer_init(loop, &tick_timer);
    uv_timer_init(loop, &stop_timer);
    uv_timer_init(loop, &keepalive_timer);
    if (cfg.janus)
        janus_post(srv_path, json_pack("{s:s, s:s}", "janus", "create", "transaction", "create"), on_janus_session,
                   NULL);
    else
        begin_run();
    uv_run(loop, UV_RUN_DEFAULT);
    for (int i = 0; i < cfg.n; i++) {
        dtls_session_free(viewers[i].dtls);
        msrtp_free(viewers[i].in);
        msrtp_free(viewers[i].out);
        free(viewers[i].location);
    }
    free(viewers);
    free(whep_tgts);
    dtls_context_free(dctx);
    uv_loop_close(loop);
    return 0;
}
