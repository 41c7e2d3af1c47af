/* forward.c — per-packet forwarding logic of the SFU (see forward.h): RTP
 * header and RFC 8285 extension walking, per-viewer rewriting, publisher
 * stream bookkeeping (cache, loss, receiver statistics) and the RTCP the
 * forwarder reads and writes. */
#include "media/forward.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- RTP header ---- */

int forward_rtp_parse(const uint8_t *pkt, size_t len, struct fwd_rtp *h)
{
    if (!pkt || len < FWD_RTP_HEADER || (pkt[0] >> 6) != 2) return -1;
    size_t off = FWD_RTP_HEADER + 4 * (size_t)(pkt[0] & 0x0F);
    if (off > len) return -1;
    h->marker = pkt[1] & 0x80;
    h->pt = pkt[1] & 0x7F;
    h->seq = rd16(pkt + 2);
    h->ts = rd32(pkt + 4);
    h->ssrc = rd32(pkt + 8);
    h->ext_profile = 0;
    h->ext_off = h->ext_len = 0;
    if (pkt[0] & 0x10) {
        if (len - off < 4) return -1;
        size_t words = rd16(pkt + off + 2);
        h->ext_profile = rd16(pkt + off);
        off += 4;
        if (words * 4 > len - off) return -1;
        h->ext_off = off;
        h->ext_len = words * 4;
        off += h->ext_len;
    }
    if (pkt[0] & 0x20) { /* the last octet counts the padding, itself included */
        uint8_t pad = pkt[len - 1];
        if (pad == 0 || pad > len - off) return -1;
    }
    h->payload_off = off;
    return 0;
}

/* One element of an RFC 8285 extension block: its header at hdr (1 or 2
 * bytes), its data at off. */
struct ext_elem {
    size_t hdr, hdr_len, off, len;
    uint8_t id;
};

enum ext_form { EXT_OTHER, EXT_ONE, EXT_TWO };

static enum ext_form ext_form_of(uint16_t profile)
{
    if (profile == FWD_EXT_ONE_BYTE) return EXT_ONE;
    if ((profile & 0xFFF0) == FWD_EXT_TWO_BYTE) return EXT_TWO;
    return EXT_OTHER;
}

/* 1 with the element at *pos (skipping padding), 0 at the end of the
 * elements: the block's end, the one-byte id 15 that stops parsing
 * (§4.2), or an element running past the block (*pos is then where the
 * unusable bytes start). */
static int ext_next(const uint8_t *b, size_t n, enum ext_form form, size_t *pos, struct ext_elem *e)
{
    while (*pos < n) {
        size_t at = *pos;
        uint8_t x = b[at];
        if (x == 0) { /* padding, both forms */
            (*pos)++;
            continue;
        }
        if (form == EXT_ONE) {
            uint8_t id = x >> 4;
            size_t l = (size_t)(x & 0x0F) + 1;
            if (id == 0) { /* id 0 is reserved for padding: a single byte, whatever its low bits */
                (*pos)++;
                continue;
            }
            if (id == 15 || n - at - 1 < l) return 0;
            *e = (struct ext_elem){.hdr = at, .hdr_len = 1, .off = at + 1, .len = l, .id = id};
        } else {
            if (n - at < 2) return 0;
            size_t l = b[at + 1];
            if (n - at - 2 < l) return 0;
            *e = (struct ext_elem){.hdr = at, .hdr_len = 2, .off = at + 2, .len = l, .id = x};
        }
        *pos = e->off + e->len;
        return 1;
    }
    return 0;
}

const uint8_t *forward_rtp_ext(const uint8_t *pkt, const struct fwd_rtp *h, uint8_t id, size_t *vlen)
{
    enum ext_form form = ext_form_of(h->ext_profile);
    if (!h->ext_len || form == EXT_OTHER || id == 0) return NULL;
    const uint8_t *b = pkt + h->ext_off;
    size_t pos = 0;
    struct ext_elem e;
    while (ext_next(b, h->ext_len, form, &pos, &e))
        if (e.id == id) {
            if (vlen) *vlen = e.len;
            return b + e.off;
        }
    return NULL;
}

/* ---- viewer sinks ---- */

void forward_sink_init(struct fwd_sink *k, uint8_t pt)
{
    memset(k, 0, sizeof(*k));
    k->pt = pt & 0x7F;
}

void forward_sink_map(struct fwd_sink *k, uint8_t pub_id, uint8_t viewer_id)
{
    if (pub_id == 0 || pub_id >= FWD_EXT_IDS) return;
    k->ext[pub_id] = viewer_id < FWD_EXT_IDS ? viewer_id : 0;
}

void forward_sink_set_mid(struct fwd_sink *k, uint8_t pub_id, uint8_t viewer_id, const char *mid)
{
    if (pub_id == 0 || pub_id >= FWD_EXT_IDS) return;
    size_t n = mid ? strlen(mid) : 0;
    forward_sink_map(k, pub_id, viewer_id);
    k->mid_pub_id = pub_id;
    if (n == 0 || n > FWD_MID_MAX) { /* nothing we can write: the element goes */
        k->ext[pub_id] = 0;
        k->mid_len = 0;
        return;
    }
    memcpy(k->mid, mid, n);
    k->mid_len = (uint8_t)n;
}

/* Rewrites one element in place: translated id, the viewer's mid value
 * (shorter values leave zero padding behind them, §4.1.1 allows padding
 * between elements), or blanked. */
static void rewrite_elem(const struct fwd_sink *k, uint8_t *b, enum ext_form form, const struct ext_elem *e)
{
    uint8_t to = e->id < FWD_EXT_IDS ? k->ext[e->id] : 0;
    size_t vlen = e->len;
    const uint8_t *value = NULL;
    if (to && e->id == k->mid_pub_id) {
        if (k->mid_len > e->len) to = 0; /* does not fit where the publisher's was */
        vlen = k->mid_len;
        value = (const uint8_t *)k->mid;
    }
    if (!to) {
        memset(b + e->hdr, 0, e->hdr_len + e->len);
        return;
    }
    if (form == EXT_ONE) {
        b[e->hdr] = (uint8_t)(to << 4 | (vlen - 1));
    } else {
        b[e->hdr] = to;
        b[e->hdr + 1] = (uint8_t)vlen;
    }
    if (value) {
        memcpy(b + e->off, value, vlen);
        memset(b + e->off + vlen, 0, e->len - vlen);
    }
}

static void rewrite_ext(const struct fwd_sink *k, uint8_t *b, size_t n, uint16_t profile)
{
    enum ext_form form = ext_form_of(profile);
    if (form == EXT_OTHER) return; /* not RFC 8285: no ids to translate, receivers skip it */
    size_t pos = 0;
    struct ext_elem e;
    while (ext_next(b, n, form, &pos, &e)) rewrite_elem(k, b, form, &e);
    /* Whatever follows the last usable element (an id 15, a truncated
     * element) carries untranslated ids: make it padding too. */
    if (pos < n) memset(b + pos, 0, n - pos);
}

int forward_prepare(const struct fwd_sink *k, const uint8_t *pkt, size_t len, uint8_t *out, size_t cap)
{
    struct fwd_rtp h;
    if (!out || len > cap || forward_rtp_parse(pkt, len, &h) < 0) return -1;
    memcpy(out, pkt, len);
    out[1] = (uint8_t)((out[1] & 0x80) | k->pt);
    if (h.ext_len) rewrite_ext(k, out + h.ext_off, h.ext_len, h.ext_profile);
    return (int)len;
}

const struct wsdp_codec *forward_media_codec(const struct wsdp_media *m)
{
    if (!m || m->port == 0) return NULL;
    for (size_t i = 0; i < m->n_codecs && i < WSDP_MAX_CODECS; i++)
        if (m->codecs[i].rtx_for == 0 && strcasecmp(m->codecs[i].name, "rtx") != 0) return &m->codecs[i];
    return NULL;
}

void forward_sink_from_media(struct fwd_sink *k, uint8_t pt, const struct wsdp_media *pub, const struct wsdp_media *view)
{
    forward_sink_init(k, pt);
    for (size_t i = 0; i < pub->n_ext && i < WSDP_MAX_EXTMAP; i++) {
        const struct wsdp_extmap *pe = &pub->ext[i];
        for (size_t j = 0; j < view->n_ext && j < WSDP_MAX_EXTMAP; j++) {
            if (strcmp(pe->uri, view->ext[j].uri) != 0) continue;
            if (strcmp(pe->uri, WSDP_EXT_MID) == 0)
                forward_sink_set_mid(k, pe->id, view->ext[j].id, view->mid);
            else
                forward_sink_map(k, pe->id, view->ext[j].id);
            break;
        }
    }
}

static bool media_receivable(const struct wsdp_media *m)
{
    return m->port != 0 && m->dir != WSDP_DIR_INACTIVE && m->kind != WSDP_KIND_OTHER && forward_media_codec(m);
}

static bool same_codec(const struct wsdp_codec *a, const struct wsdp_codec *b)
{
    return strcasecmp(a->name, b->name) == 0 && a->clock == b->clock;
}

void forward_match_view(const struct wsdp_session *pub, const struct wsdp_session *view, int map[WSDP_MAX_MEDIA])
{
    bool used[WSDP_MAX_MEDIA] = {false};
    size_t np = pub->n_media < WSDP_MAX_MEDIA ? pub->n_media : WSDP_MAX_MEDIA;
    for (size_t i = 0; i < WSDP_MAX_MEDIA; i++) map[i] = -1;
    for (size_t i = 0; i < view->n_media && i < WSDP_MAX_MEDIA; i++) {
        const struct wsdp_media *v = &view->media[i];
        if (!media_receivable(v)) continue;
        uint32_t ssrc = v->n_ssrcs ? v->ssrcs[0].ssrc : 0;
        int take = -1;
        for (size_t j = 0; ssrc && j < np && take < 0; j++) {
            const struct wsdp_media *p = &pub->media[j];
            if (!used[j] && media_receivable(p) &&
                ((p->n_ssrcs && p->ssrcs[0].ssrc == ssrc) || (p->n_rids && p->out_ssrc == ssrc)))
                take = (int)j;
        }
        for (size_t j = 0; j < np && take < 0; j++) {
            const struct wsdp_media *p = &pub->media[j];
            if (!used[j] && media_receivable(p) && p->kind == v->kind &&
                same_codec(forward_media_codec(p), forward_media_codec(v)))
                take = (int)j;
        }
        if (take >= 0) {
            used[take] = true;
            map[i] = take;
        }
    }
}

/* ---- publisher streams ---- */

static size_t pow2_at_least(size_t n, size_t lo, size_t hi)
{
    size_t p = lo;
    while (p < n && p < hi) p <<= 1;
    return p;
}

void forward_cache_size(bool video, uint32_t cache_ms, size_t *slots, size_t *bytes)
{
    /* video: up to one packet per 2 ms (~5 Mbit/s of 1200-byte packets);
     * audio: one per 10 ms. */
    size_t per = video ? 2 : 10, size = video ? 1200 : 320;
    *slots = pow2_at_least(cache_ms / per + 1, 16, 32768);
    *bytes = *slots * size;
    if (*bytes < 4 * 1500) *bytes = 4 * 1500; /* always room for the largest packets */
}

int forward_stream_init(struct fwd_stream *st, const struct fwd_stream_config *cfg)
{
    memset(st, 0, sizeof(*st));
    st->cfg = *cfg;
    st->cfg.pt &= 0x7F;
    size_t slots, bytes;
    forward_cache_size(cfg->video, cfg->cache_ms, &slots, &bytes);
    st->cache = nack_cache_new(slots, bytes);
    if (!st->cache) return -ENOMEM;
    st->window = (uint16_t)(slots > 32768 ? 32768 : slots);
    return 0;
}

void forward_stream_free(struct fwd_stream *st)
{
    if (!st) return;
    nack_cache_free(st->cache);
    st->cache = NULL;
}

static void stream_restart(struct fwd_stream *st, uint16_t seq)
{
    st->started = true;
    st->max_seq = seq;
    st->cycles = 0;
    st->base_seq = seq;
    st->received = 0;
    st->expected_prior = st->received_prior = 0;
    st->have_transit = false;
    st->n_missing = 0;
}

void forward_stream_set_ssrc(struct fwd_stream *st, uint32_t ssrc)
{
    st->cfg.ssrc = ssrc;
    st->started = false;
    st->n_missing = 0;
    st->have_sr = false;
    st->jitter_q4 = 0;
    st->have_transit = false;
    if (st->cache) nack_cache_clear(st->cache);
}

static int find_missing(const struct fwd_stream *st, uint16_t seq)
{
    for (size_t i = 0; i < st->n_missing; i++)
        if (st->missing[i].seq == seq) return (int)i;
    return -1;
}

static void drop_missing(struct fwd_stream *st, size_t i)
{
    memmove(&st->missing[i], &st->missing[i + 1], (st->n_missing - i - 1) * sizeof(st->missing[0]));
    st->n_missing--;
}

static void add_missing(struct fwd_stream *st, uint16_t seq)
{
    if (st->n_missing == FWD_MISSING_MAX) drop_missing(st, 0); /* the oldest is the least worth asking */
    st->missing[st->n_missing++] = (struct fwd_missing){.seq = seq};
}

/* RFC 3550 A.8, in the stream's clock. */
static void update_jitter(struct fwd_stream *st, uint32_t ts, uint64_t now_ms)
{
    if (!st->cfg.clock) return;
    uint32_t arrival = (uint32_t)(now_ms * st->cfg.clock / 1000);
    int64_t transit = (int32_t)(arrival - ts);
    if (st->have_transit) {
        int64_t d = transit - st->last_transit;
        if (d < 0) d = -d;
        if (d > 0x7FFFFFFF) d = 0x7FFFFFFF;
        int64_t j = (int64_t)st->jitter_q4 + d - (((int64_t)st->jitter_q4 + 8) >> 4);
        st->jitter_q4 = j < 0 ? 0 : (j > 0xFFFFFFFFLL ? 0xFFFFFFFFu : (uint32_t)j);
    }
    st->last_transit = transit;
    st->have_transit = true;
}

enum fwd_verdict forward_stream_receive(struct fwd_stream *st, const uint8_t *pkt, size_t len,
                                        const struct fwd_rtp *h, uint64_t now_ms)
{
    uint16_t seq = h->seq;
    if (!st->started) {
        stream_restart(st, seq);
        update_jitter(st, h->ts, now_ms);
    } else {
        if (nack_cache_get(st->cache, seq, NULL)) {
            st->duplicates++;
            return FWD_DUPLICATE;
        }
        int32_t d = (int16_t)(uint16_t)(seq - st->max_seq);
        if (d > st->window || -d >= st->window) { /* far from anything cached: a new run */
            st->restarts++;
            stream_restart(st, seq);
        } else if (d > 0) {
            if (seq < st->max_seq) st->cycles += 1u << 16;
            if (st->cfg.nack) {
                int32_t gap = d - 1, first = gap > FWD_MISSING_MAX ? gap - FWD_MISSING_MAX : 0;
                for (int32_t i = first; i < gap; i++) add_missing(st, (uint16_t)(st->max_seq + 1 + i));
            }
            st->max_seq = seq;
            update_jitter(st, h->ts, now_ms);
        } else { /* late: the retransmission we asked for, or reordering */
            int i = find_missing(st, seq);
            if (i >= 0) drop_missing(st, (size_t)i);
        }
    }
    st->received++;
    if (nack_cache_put(st->cache, seq, pkt, len) < 0) st->cache_errors++;
    return FWD_FORWARD;
}

const uint8_t *forward_stream_cached(const struct fwd_stream *st, uint16_t seq, size_t *len)
{
    return st->cache ? nack_cache_get(st->cache, seq, len) : NULL;
}

/* How far behind the newest packet seq is (0: the newest; negative: ahead). */
static int32_t age_of(const struct fwd_stream *st, uint16_t seq)
{
    return (int16_t)(uint16_t)(st->max_seq - seq);
}

bool forward_stream_want(struct fwd_stream *st, uint16_t seq, uint64_t now_ms)
{
    (void)now_ms; /* asked at the next forward_stream_nack, whatever the time */
    if (!st->cfg.nack || !st->started) return false;
    int32_t age = age_of(st, seq);
    if (age <= 0 || age >= st->window || find_missing(st, seq) >= 0) return false;
    add_missing(st, seq);
    return true;
}

int forward_stream_nack(struct fwd_stream *st, uint64_t now_ms, uint32_t retry_ms, uint32_t sender_ssrc, uint8_t *buf,
                        size_t cap)
{
    if (!st->cfg.nack || !st->cfg.ssrc || st->n_missing == 0) return 0;
    uint16_t seqs[FWD_MISSING_MAX];
    size_t n = 0, keep = 0;
    for (size_t i = 0; i < st->n_missing; i++) {
        struct fwd_missing m = st->missing[i];
        int32_t age = age_of(st, m.seq);
        if (m.tries >= FWD_NACK_TRIES || age <= 0 || age >= st->window) continue; /* given up, or gone */
        if (m.tries == 0 || now_ms < m.last_ms || now_ms - m.last_ms >= retry_ms) {
            seqs[n++] = m.seq;
            m.tries++;
            m.last_ms = now_ms;
        }
        st->missing[keep++] = m;
    }
    st->n_missing = keep;
    if (n == 0) return 0;
    return rtcp_build_nack(buf, cap, sender_ssrc, st->cfg.ssrc, seqs, n);
}

int forward_stream_keyframe_build(struct fwd_stream *st, uint32_t sender_ssrc, uint8_t *buf, size_t cap)
{
    if (!st->cfg.ssrc) return 0;
    if (st->cfg.use_fir) return rtcp_build_fir(buf, cap, sender_ssrc, st->cfg.ssrc, ++st->fir_seq);
    return rtcp_build_pli(buf, cap, sender_ssrc, st->cfg.ssrc);
}

int forward_stream_keyframe(struct fwd_stream *st, uint64_t now_ms, uint32_t interval_ms, uint32_t sender_ssrc,
                            uint8_t *buf, size_t cap)
{
    if (!st->cfg.ssrc || !rtcp_rate_limit_allow(&st->keyframe_rl, now_ms, interval_ms)) return 0;
    return forward_stream_keyframe_build(st, sender_ssrc, buf, cap);
}

bool forward_stream_report(struct fwd_stream *st, uint64_t now_ms, rtcp_report_block_t *out)
{
    if (!st->started || !st->cfg.ssrc) return false;
    uint32_t ext_max = st->cycles + st->max_seq;
    uint32_t expected = ext_max - st->base_seq + 1;
    int64_t lost = (int64_t)expected - (int64_t)st->received;
    if (lost > 0x7FFFFF) lost = 0x7FFFFF;
    if (lost < -0x800000) lost = -0x800000;
    uint32_t exp_int = expected - st->expected_prior;
    uint32_t rcv_int = (uint32_t)st->received - st->received_prior;
    st->expected_prior = expected;
    st->received_prior = (uint32_t)st->received;
    int64_t lost_int = (int64_t)exp_int - (int64_t)rcv_int;
    *out = (rtcp_report_block_t){
        .ssrc = st->cfg.ssrc,
        .fraction_lost = (uint8_t)(exp_int == 0 || lost_int <= 0 ? 0 : (lost_int << 8) / exp_int),
        .cumulative_lost = (int32_t)lost,
        .ext_highest_seq = ext_max,
        .jitter = st->jitter_q4 >> 4,
    };
    if (st->have_sr) {
        out->lsr = st->lsr;
        uint64_t since = now_ms >= st->sr_at_ms ? now_ms - st->sr_at_ms : 0;
        out->dlsr = (uint32_t)(since * 65536 / 1000);
    }
    return true;
}

int forward_build_receiver_report(struct fwd_stream *const *streams, size_t n, uint32_t sender_ssrc, const char *cname,
                                  uint64_t remb_bps, uint64_t now_ms, uint8_t *buf, size_t cap)
{
    rtcp_report_block_t blocks[RTCP_MAX_REPORTS];
    uint32_t ssrcs[RTCP_MAX_REPORTS];
    size_t nb = 0;
    for (size_t i = 0; i < n && nb < RTCP_MAX_REPORTS; i++) {
        if (!streams[i] || !forward_stream_report(streams[i], now_ms, &blocks[nb])) continue;
        ssrcs[nb] = blocks[nb].ssrc;
        nb++;
    }
    if (nb == 0) return 0;
    int off = rtcp_build_rr(buf, cap, sender_ssrc, blocks, nb);
    if (off < 0) return off;
    if (cname && *cname) {
        size_t cl = strlen(cname);
        int r = rtcp_build_sdes_cname(buf + off, cap - (size_t)off, sender_ssrc, cname, cl > 255 ? 255 : cl);
        if (r < 0) return r;
        off += r;
    }
    if (remb_bps) {
        int r = rtcp_build_remb(buf + off, cap - (size_t)off, sender_ssrc, remb_bps, ssrcs, nb);
        if (r < 0) return r;
        off += r;
    }
    return off;
}

/* ---- simulcast ---- */

enum fwd_video_codec forward_video_codec(const struct wsdp_codec *c)
{
    if (!c) return FWD_VIDEO_OTHER;
    if (strcasecmp(c->name, "VP8") == 0) return FWD_VIDEO_VP8;
    if (strcasecmp(c->name, "H264") == 0) return FWD_VIDEO_H264;
    return FWD_VIDEO_OTHER;
}

bool forward_rtp_payload(const uint8_t *pkt, size_t len, const struct fwd_rtp *h, const uint8_t **payload,
                         size_t *plen)
{
    size_t end = len;
    if (pkt[0] & 0x20) end -= pkt[len - 1]; /* forward_rtp_parse checked it fits */
    if (h->payload_off >= end) return false;
    *payload = pkt + h->payload_off;
    *plen = end - h->payload_off;
    return true;
}

/* RFC 7741 §4.2: the payload descriptor's length, 0 when it runs past len. */
static size_t vp8_descriptor_len(const uint8_t *p, size_t len)
{
    size_t off = 1;
    if (!(p[0] & 0x80)) return off;
    if (len < 2) return 0;
    uint8_t x = p[1];
    off = 2;
    if (x & 0x80) { /* I: PictureID, 15 bits when its M bit is set */
        if (off >= len) return 0;
        off += (p[off] & 0x80) ? 2 : 1;
    }
    if (x & 0x40) off++;          /* L: TL0PICIDX */
    if (x & 0x30) off++;          /* T or K: TID/Y/KEYIDX */
    return off < len ? off : 0;
}

static bool vp8_key(const uint8_t *p, size_t len)
{
    if (len < 2 || !(p[0] & 0x10) || (p[0] & 0x07) != 0) return false; /* S set, partition 0 */
    size_t off = vp8_descriptor_len(p, len);
    return off && !(p[off] & 0x01); /* RFC 7741 §4.3: P bit clear is a key frame */
}

static bool h264_key_nal(uint8_t type) { return type == 5 || type == 7; } /* IDR slice, SPS */

static bool h264_key(const uint8_t *p, size_t len)
{
    uint8_t type = p[0] & 0x1F;
    if (type >= 1 && type <= 23) return h264_key_nal(type);
    if (type == 24) { /* STAP-A (RFC 6184 §5.7.1): 16-bit size, NAL unit, … */
        for (size_t off = 1; off + 2 < len;) {
            size_t n = (size_t)p[off] << 8 | p[off + 1];
            if (n == 0 || n > len - off - 2) return false;
            if (h264_key_nal(p[off + 2] & 0x1F)) return true;
            off += 2 + n;
        }
        return false;
    }
    if (type == 28) /* FU-A (§5.8): the start fragment of a key NAL unit */
        return len >= 2 && (p[1] & 0x80) && h264_key_nal(p[1] & 0x1F);
    return false;
}

bool forward_keyframe_start(enum fwd_video_codec codec, const uint8_t *payload, size_t len)
{
    if (!payload || len == 0) return false;
    if (codec == FWD_VIDEO_VP8) return vp8_key(payload, len);
    if (codec == FWD_VIDEO_H264) return h264_key(payload, len);
    return false;
}

void forward_layers_init(struct fwd_layers *l, const char (*rids)[WSDP_RID_MAX], size_t n)
{
    memset(l, 0, sizeof(*l));
    l->n = n > FWD_MAX_LAYERS ? FWD_MAX_LAYERS : n;
    for (size_t i = 0; i < l->n; i++) {
        memcpy(l->rid[i], rids[i], WSDP_RID_MAX);
        l->rid[i][WSDP_RID_MAX - 1] = '\0';
    }
}

int forward_layers_classify(struct fwd_layers *l, const uint8_t *pkt, const struct fwd_rtp *h, uint8_t rid_ext,
                            bool *learnt)
{
    *learnt = false;
    for (size_t i = 0; i < l->n; i++)
        if (l->ssrc[i] && l->ssrc[i] == h->ssrc) return (int)i;
    size_t vlen = 0;
    const uint8_t *v = rid_ext ? forward_rtp_ext(pkt, h, rid_ext, &vlen) : NULL;
    if (!v || !h->ssrc) return -1;
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->rid[i]) != vlen || memcmp(l->rid[i], v, vlen) != 0) continue;
        /* a new SSRC for a rid: the encoder restarted; the old one is gone */
        l->ssrc[i] = h->ssrc;
        l->seen[i] = false;
        *learnt = true;
        return (int)i;
    }
    return -1;
}

void forward_layers_account(struct fwd_layers *l, int layer, size_t len, uint64_t now_ms)
{
    if (layer < 0 || (size_t)layer >= l->n) return;
    if (!l->win_started) {
        l->win_started = true;
        l->win_start_ms = now_ms;
    } else if (now_ms >= l->win_start_ms + FWD_RATE_WINDOW_MS) {
        uint64_t span = now_ms - l->win_start_ms;
        for (size_t i = 0; i < l->n; i++) {
            l->bps[i] = l->win_bytes[i] * 8 * 1000 / span;
            l->win_bytes[i] = 0;
        }
        l->win_start_ms = now_ms;
    }
    l->win_bytes[layer] += len;
    l->last_ms[layer] = now_ms;
    l->seen[layer] = true;
}

bool forward_layer_active(const struct fwd_layers *l, int layer, uint64_t now_ms)
{
    if (layer < 0 || (size_t)layer >= l->n || !l->seen[layer]) return false;
    return now_ms < l->last_ms[layer] || now_ms - l->last_ms[layer] < FWD_LAYER_IDLE_MS;
}

void forward_sel_init(struct fwd_sel *k, uint32_t ssrc, uint32_t clock, int max_layer)
{
    memset(k, 0, sizeof(*k));
    k->ssrc = ssrc;
    k->clock = clock;
    k->max_layer = max_layer < 0 ? 0 : max_layer >= FWD_MAX_LAYERS ? FWD_MAX_LAYERS - 1 : max_layer;
    k->current = k->target = -1;
    k->trial = k->proven = -1;
    k->trial_backoff_ms = FWD_TRIAL_FIRST_MS;
}

void forward_sel_estimate(struct fwd_sel *k, uint64_t bps)
{
    /* An equal estimate (the browser holding it) keeps the state: only a
     * rise says the queue is gone. */
    if (k->bwe_bps && bps < k->bwe_bps) k->bwe_fell = true;
    if (bps > k->bwe_bps) k->bwe_fell = false;
    k->bwe_bps = bps;
}

void forward_sel_congested(struct fwd_sel *k)
{
    k->congested = true;
    if (k->trial >= 0) k->trial_fell = true;
}

/* Whether the estimate says a layer of layer_bps is too much for the
 * viewer (forward_sel_choose). */
static bool sel_too_much(const struct fwd_sel *k, uint64_t layer_bps, bool proven)
{
    if (!k->bwe_bps || layer_bps <= k->bwe_bps) return false;
    if (!proven && k->bwe_bps * 2 < layer_bps) return true;
    return k->bwe_fell && k->bwe_bps * 10 < layer_bps * 7;
}

static void trial_failed(struct fwd_sel *k, uint64_t now_ms)
{
    k->trial = -1;
    k->trials_failed++;
    k->trial_backoff_ms = k->trial_backoff_ms >= FWD_TRIAL_MAX_MS / 2 ? FWD_TRIAL_MAX_MS : k->trial_backoff_ms * 2;
    k->trial_at_ms = now_ms + k->trial_backoff_ms;
}

/* The trial step of forward_sel_choose: fit is the usual choice (-1: none).
 * Returns the target. */
static int sel_trial(struct fwd_sel *k, const struct fwd_layers *l, int fit, uint64_t now_ms)
{
    if (k->trial >= 0) {
        bool fell = k->trial_fell;
        if (fell || !forward_layer_active(l, k->trial, now_ms) || k->trial > k->max_layer) {
            trial_failed(k, now_ms);
        } else if (k->current != k->trial) {
            if (now_ms < k->trial_deadline_ms) return k->trial; /* its key frame is on the way */
            trial_failed(k, now_ms);
        } else {
            if (!k->trial_until_ms) k->trial_until_ms = now_ms + FWD_TRIAL_HOLD_MS;
            if (now_ms < k->trial_until_ms) return k->trial;
            k->proven = k->trial; /* it held */
            k->trial = -1;
            k->trial_backoff_ms = FWD_TRIAL_FIRST_MS;
            k->trial_at_ms = now_ms + FWD_TRIAL_FIRST_MS;
            k->congested = false;
            return fit > k->proven ? fit : k->proven;
        }
        /* Failed: back to where the trial started, or lower if the
         * estimate says so. */
        k->congested = false;
        if (fit < 0 || fit > k->trial_from) fit = k->trial_from;
        return fit;
    }
    if (fit < 0) return k->target;
    /* Settled below what the viewer asked for, with no congestion: a trial
     * once the quiet spell is over. Congestion (or any move) starts the
     * spell again. */
    if (k->current < 0 || fit != k->current || k->current >= k->max_layer) {
        k->trial_at_ms = 0;
        k->congested = false;
        return fit;
    }
    if (k->congested || !k->bwe_bps) {
        k->congested = false;
        k->trial_at_ms = now_ms + k->trial_backoff_ms;
        return fit;
    }
    if (!k->trial_at_ms) k->trial_at_ms = now_ms + k->trial_backoff_ms;
    if (now_ms < k->trial_at_ms) return fit;
    int up = -1;
    for (int i = k->current + 1; i <= k->max_layer && i < (int)l->n; i++)
        if (forward_layer_active(l, i, now_ms)) {
            up = i;
            break;
        }
    if (up < 0) return fit;
    k->trial = up;
    k->trial_from = k->current;
    k->trial_fell = false;
    k->trial_until_ms = 0;
    k->trial_deadline_ms = now_ms + FWD_TRIAL_WAIT_MS;
    k->trials++;
    return up;
}

int forward_sel_choose(struct fwd_sel *k, const struct fwd_layers *l, uint64_t now_ms)
{
    int fit = -1, lowest = -1;
    bool keep = false; /* the layer forwarded now may stay */
    for (int i = 0; i < (int)l->n; i++) {
        if (!forward_layer_active(l, i, now_ms)) continue;
        if (lowest < 0) lowest = i;
        /* Up from the layer forwarded wants headroom: a layer that only
         * just fits in the estimate fills the path, and its estimate falls. */
        uint64_t need = l->bps[i];
        if (k->current >= 0 && i > k->current) need += need / 4;
        if (i <= k->max_layer && (!k->bwe_bps || need <= k->bwe_bps)) fit = i;
        if (i == k->current && i <= k->max_layer && !sel_too_much(k, l->bps[i], i == k->proven)) keep = true;
    }
    if (keep && fit < k->current) fit = k->current;
    if (fit < 0) fit = lowest;
    return k->target = sel_trial(k, l, fit, now_ms);
}

bool forward_sel_waiting(const struct fwd_sel *k) { return k->target >= 0 && k->target != k->current; }

/* The target's key frame: the new run starts right after the last packet
 * sent (no gap, no repeat) and one frame interval's worth of clock later
 * than the last timestamp (at least one tick), whatever the layer's own
 * numbering. The first run keeps the layer's numbers. */
static void sel_switch(struct fwd_sel *k, int layer, const struct fwd_rtp *h, uint64_t now_ms)
{
    struct fwd_sel_switch sw = {.layer = layer};
    if (k->sent) {
        uint64_t ms = now_ms > k->last_ms ? now_ms - k->last_ms : 0;
        uint32_t step = (uint32_t)(ms * k->clock / 1000);
        sw.seq_off = (uint16_t)(k->last_seq + 1 - h->seq);
        sw.ts_off = k->last_ts + (step ? step : 1) - h->ts;
    }
    sw.out_seq = (uint16_t)(h->seq + sw.seq_off);
    if (k->n_hist == FWD_SEL_HISTORY) {
        memmove(&k->hist[0], &k->hist[1], (FWD_SEL_HISTORY - 1) * sizeof(k->hist[0]));
        k->n_hist--;
    }
    k->hist[k->n_hist++] = sw;
    if (layer != k->proven) k->proven = -1;
    k->current = layer;
    k->start_seq = h->seq;
    k->switches++;
}

bool forward_sel_packet(struct fwd_sel *k, int layer, const struct fwd_rtp *h, bool keyframe, uint64_t now_ms,
                        struct fwd_sel_out *out)
{
    if (layer >= 0 && layer == k->target && layer != k->current && keyframe) sel_switch(k, layer, h, now_ms);
    if (layer < 0 || layer != k->current || (int16_t)(uint16_t)(h->seq - k->start_seq) < 0) {
        k->dropped++;
        return false;
    }
    const struct fwd_sel_switch *sw = &k->hist[k->n_hist - 1];
    out->seq = (uint16_t)(h->seq + sw->seq_off);
    out->ts = h->ts + sw->ts_off;
    if (!k->sent || (int16_t)(uint16_t)(out->seq - k->last_seq) > 0) {
        k->last_seq = out->seq;
        k->last_ts = out->ts;
        k->last_ms = now_ms;
    }
    k->sent = true;
    return true;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void forward_sel_rewrite(const struct fwd_sel *k, uint8_t *pkt, const struct fwd_sel_out *o)
{
    wr16(pkt + 2, o->seq);
    wr32(pkt + 4, o->ts);
    wr32(pkt + 8, k->ssrc);
}

bool forward_sel_lookup(const struct fwd_sel *k, uint16_t out_seq, int *layer, uint16_t *in_seq, uint32_t *ts_off)
{
    if (!k->sent || (int16_t)(uint16_t)(k->last_seq - out_seq) < 0) return false; /* not sent yet */
    for (size_t i = k->n_hist; i-- > 0;) {
        const struct fwd_sel_switch *sw = &k->hist[i];
        /* runs follow each other: the newest one starting at or before out_seq holds it */
        if ((int16_t)(uint16_t)(out_seq - sw->out_seq) < 0) continue;
        *layer = sw->layer;
        *in_seq = (uint16_t)(out_seq - sw->seq_off);
        *ts_off = sw->ts_off;
        return true;
    }
    return false;
}


int forward_sel_sr(const struct fwd_sel *k, int layer, const rtcp_sender_info_t *si, uint8_t *buf, size_t cap)
{
    if (!k->sent || layer != k->current || k->n_hist == 0) return 0;
    rtcp_sender_info_t out = *si;
    out.rtp_ts = si->rtp_ts + k->hist[k->n_hist - 1].ts_off;
    return rtcp_build_sr(buf, cap, k->ssrc, &out, NULL, 0);
}

/* ---- RTCP from viewers and publishers ---- */

static void ask_keyframe(struct fwd_viewer_rtcp *out, struct fwd_stream *st, uint64_t now_ms, uint32_t interval_ms)
{
    for (size_t i = 0; i < out->n_keyframe; i++)
        if (out->keyframe[i] == st) return; /* PLI and FIR for one stream in one compound: one request */
    if (out->n_keyframe == FWD_FB_STREAMS || !rtcp_rate_limit_allow(&st->keyframe_rl, now_ms, interval_ms)) {
        out->rate_limited++;
        return;
    }
    out->keyframe[out->n_keyframe++] = st;
}

static void note_upstream(struct fwd_viewer_rtcp *out, struct fwd_stream *st)
{
    for (size_t i = 0; i < out->n_upstream; i++)
        if (out->upstream[i] == st) return;
    if (out->n_upstream < FWD_FB_STREAMS) out->upstream[out->n_upstream++] = st;
}

static void viewer_nack(const rtcp_packet_t *p, fwd_find_fn find, fwd_map_fn map, void *arg, uint64_t now_ms,
                        struct fwd_viewer_rtcp *out)
{
    rtcp_nack_t nack;
    if (rtcp_parse_nack(p, &nack) < 0) {
        out->malformed++;
        return;
    }
    void *tag = NULL;
    struct fwd_stream *named = find(arg, nack.media_ssrc, &tag);
    if (!named) {
        out->unknown++;
        return;
    }
    if (nack.truncated) out->truncated = true;
    for (size_t i = 0; i < nack.count; i++) {
        uint16_t out_seq = nack.seqs[i], seq = out_seq;
        struct fwd_stream *st = named;
        out->nacked++;
        if (map && !map(arg, tag, out_seq, &st, &seq)) {
            out->missed++;
            continue;
        }
        if (forward_stream_cached(st, seq, NULL)) {
            if (out->n_resend == FWD_FB_MAX) {
                out->truncated = true;
                continue;
            }
            out->resend[out->n_resend++] = (struct fwd_resend){.st = st, .tag = tag, .seq = seq, .out_seq = out_seq};
        } else {
            out->missed++;
            if (forward_stream_want(st, seq, now_ms)) note_upstream(out, st);
        }
    }
}

static void viewer_psfb(const rtcp_packet_t *p, fwd_find_fn find, void *arg, uint64_t now_ms, uint32_t interval_ms,
                        struct fwd_viewer_rtcp *out)
{
    void *tag = NULL;
    if (p->count == RTCP_FMT_PLI) {
        uint32_t sender, media;
        if (rtcp_parse_pli(p, &sender, &media) < 0) {
            out->malformed++;
            return;
        }
        struct fwd_stream *st = find(arg, media, &tag);
        if (st)
            ask_keyframe(out, st, now_ms, interval_ms);
        else
            out->unknown++;
    } else if (p->count == RTCP_FMT_FIR) {
        rtcp_fir_t fir;
        if (rtcp_parse_fir(p, &fir) < 0) {
            out->malformed++;
            return;
        }
        for (size_t i = 0; i < fir.count; i++) {
            struct fwd_stream *st = find(arg, fir.entries[i].ssrc, &tag);
            if (st)
                ask_keyframe(out, st, now_ms, interval_ms);
            else
                out->unknown++;
        }
    } else if (p->count == RTCP_FMT_AFB) {
        rtcp_remb_t remb;
        if (rtcp_parse_remb(p, &remb) == 0) {
            out->remb++; /* the viewer's estimate: picks its simulcast layer */
            out->remb_bps = remb.bitrate;
        } else
            out->other++;
    } else {
        out->other++;
    }
}

void forward_viewer_rtcp(const uint8_t *pkt, size_t len, fwd_find_fn find, void *arg, uint64_t now_ms,
                         uint32_t interval_ms, struct fwd_viewer_rtcp *out)
{
    forward_viewer_rtcp_map(pkt, len, find, NULL, arg, now_ms, interval_ms, out);
}

void forward_viewer_rtcp_map(const uint8_t *pkt, size_t len, fwd_find_fn find, fwd_map_fn map, void *arg,
                             uint64_t now_ms, uint32_t interval_ms, struct fwd_viewer_rtcp *out)
{
    out->remb_bps = 0;
    out->n_resend = out->n_upstream = out->n_keyframe = 0;
    out->nacked = out->missed = out->rate_limited = out->unknown = 0;
    out->reports = out->remb = out->other = out->malformed = 0;
    out->truncated = false;
    rtcp_iter_t it;
    rtcp_packet_t p;
    int rc;
    rtcp_iter_init(&it, pkt, len);
    while ((rc = rtcp_iter_next(&it, &p)) == 1) {
        if (p.pt == RTCP_PT_SR || p.pt == RTCP_PT_RR)
            out->reports++; /* about what we send: nothing to act on yet */
        else if (p.pt == RTCP_PT_RTPFB && p.count == RTCP_FMT_NACK)
            viewer_nack(&p, find, map, arg, now_ms, out);
        else if (p.pt == RTCP_PT_PSFB)
            viewer_psfb(&p, find, arg, now_ms, interval_ms, out);
        else
            out->other++;
    }
    if (rc < 0) out->malformed++;
}

int forward_publisher_rtcp(const uint8_t *pkt, size_t len, fwd_find_fn find, void *arg, uint64_t now_ms, uint8_t *out,
                           size_t cap)
{
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_report_t r;
    size_t off = 0;
    rtcp_iter_init(&it, pkt, len);
    while (rtcp_iter_next(&it, &p) == 1) {
        if (p.pt != RTCP_PT_SR || rtcp_parse_report(&p, &r) < 0) continue;
        void *tag = NULL;
        struct fwd_stream *st = find(arg, r.ssrc, &tag);
        if (!st) continue;
        st->lsr = (uint32_t)(r.si.ntp >> 16);
        st->sr_at_ms = now_ms;
        st->have_sr = true;
        int n = rtcp_build_sr(out + off, cap - off, r.ssrc, &r.si, NULL, 0);
        if (n < 0) return n;
        off += (size_t)n;
    }
    return (int)off;
}
