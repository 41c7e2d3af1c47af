/* test_forward.c — the SFU's per-packet rules (media/forward.h): what a
 * viewer's copy of a packet looks like (RFC 8285 extension layouts from the
 * RFC's own figures), how a publisher stream notices loss and asks for it
 * (RFC 4585 generic NACK bitmasks), how a viewer's feedback is split, the
 * key frame limiter with explicit times, and the reports sent upstream. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "media/forward.h"

/* ---- helpers ---- */

/* An RTP packet: header, optional extension block (profile + elements,
 * whose length must be a multiple of 4), then payload bytes 0xA0, 0xA1, … */
static size_t rtp(uint8_t *b, uint8_t pt, bool marker, uint16_t seq, uint32_t ts, uint32_t ssrc, uint16_t profile,
                  const uint8_t *ext, size_t ext_len, size_t payload)
{
    b[0] = 0x80 | (ext ? 0x10 : 0);
    b[1] = (uint8_t)((marker ? 0x80 : 0) | pt);
    b[2] = (uint8_t)(seq >> 8), b[3] = (uint8_t)seq;
    b[4] = (uint8_t)(ts >> 24), b[5] = (uint8_t)(ts >> 16), b[6] = (uint8_t)(ts >> 8), b[7] = (uint8_t)ts;
    b[8] = (uint8_t)(ssrc >> 24), b[9] = (uint8_t)(ssrc >> 16), b[10] = (uint8_t)(ssrc >> 8), b[11] = (uint8_t)ssrc;
    size_t off = 12;
    if (ext) {
        b[off] = (uint8_t)(profile >> 8), b[off + 1] = (uint8_t)profile;
        b[off + 2] = (uint8_t)((ext_len / 4) >> 8), b[off + 3] = (uint8_t)(ext_len / 4);
        memcpy(b + off + 4, ext, ext_len);
        off += 4 + ext_len;
    }
    for (size_t i = 0; i < payload; i++) b[off + i] = (uint8_t)(0xA0 + i);
    return off + payload;
}

static size_t simple(uint8_t *b, uint16_t seq, uint32_t ssrc) { return rtp(b, 96, false, seq, seq * 3000u, ssrc, 0, NULL, 0, 20); }

static struct fwd_stream *stream_new(bool video, uint32_t ssrc)
{
    struct fwd_stream *st = calloc(1, sizeof(*st));
    struct fwd_stream_config cfg = {
        .video = video, .pt = 96, .ssrc = ssrc, .clock = 90000, .nack = true, .cache_ms = 1000};
    assert_int_equal(forward_stream_init(st, &cfg), 0);
    return st;
}

static void stream_del(struct fwd_stream *st)
{
    forward_stream_free(st);
    free(st);
}

static enum fwd_verdict feed(struct fwd_stream *st, uint16_t seq, uint64_t now)
{
    uint8_t b[200];
    size_t n = simple(b, seq, st->cfg.ssrc);
    struct fwd_rtp h;
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    return forward_stream_receive(st, b, n, &h, now);
}

/* The NACK's lost sequence numbers, decoded back. */
static size_t nack_seqs(const uint8_t *buf, int len, uint32_t *media, uint16_t *out)
{
    assert_true(len > 0);
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_nack_t nack;
    rtcp_iter_init(&it, buf, (size_t)len);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_nack(&p, &nack), 0);
    *media = nack.media_ssrc;
    memcpy(out, nack.seqs, nack.count * sizeof(uint16_t));
    return nack.count;
}

/* ---- RTP header ---- */

static void test_rtp_parse(void **state)
{
    (void)state;
    uint8_t b[200];
    const uint8_t ext[4] = {0x10, 0xAA, 0, 0};
    size_t n = rtp(b, 111, true, 0x1234, 0xCAFEBABE, 0x01020304, FWD_EXT_ONE_BYTE, ext, 4, 10);
    struct fwd_rtp h;
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    assert_int_equal(h.pt, 111);
    assert_true(h.marker);
    assert_int_equal(h.seq, 0x1234);
    assert_int_equal(h.ts, 0xCAFEBABE);
    assert_int_equal(h.ssrc, 0x01020304);
    assert_int_equal(h.ext_profile, 0xBEDE);
    assert_int_equal(h.ext_off, 16);
    assert_int_equal(h.ext_len, 4);
    assert_int_equal(h.payload_off, 20);

    /* the refusals: short, version, CSRCs or extension past the end, padding */
    assert_int_equal(forward_rtp_parse(b, 11, &h), -1);
    b[0] = 0x40 | 0x10;
    assert_int_equal(forward_rtp_parse(b, n, &h), -1);
    b[0] = 0x80 | 0x0F;
    assert_int_equal(forward_rtp_parse(b, 60, &h), -1);
    b[0] = 0x90;
    assert_int_equal(forward_rtp_parse(b, 17, &h), -1); /* extension header cut */
    assert_int_equal(forward_rtp_parse(b, 19, &h), -1); /* one word announced, 3 bytes there */
    b[0] = 0xA0;                                         /* padding: last octet counts it */
    b[n - 1] = 0;
    assert_int_equal(forward_rtp_parse(b, n, &h), -1);
    b[n - 1] = 9;
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    b[n - 1] = 200;
    assert_int_equal(forward_rtp_parse(b, n, &h), -1);
}

/* RFC 8285 §4.2's figure: IDs with L=0 (1 byte), L=1 (2 bytes), two
 * padding bytes, L=3 (4 bytes); length = 3 words. Here A=1, B=2, C=3. */
static const uint8_t one_byte_fig[12] = {0x10, 0x11, 0x21, 0x22, 0x23, 0x00, 0x00, 0x33, 0x31, 0x32, 0x33, 0x34};
/* RFC 8285 §4.3's figure: ID L=0, ID L=1 (1 byte), padding, ID L=4. A=1,
 * B=2, C=20 (two-byte ids may exceed 14). */
static const uint8_t two_byte_fig[12] = {0x01, 0x00, 0x02, 0x01, 0x21, 0x00, 0x14, 0x04, 0x31, 0x32, 0x33, 0x34};

static void test_ext_lookup_both_forms(void **state)
{
    (void)state;
    uint8_t b[200];
    struct fwd_rtp h;
    size_t vlen = 0;
    size_t n = rtp(b, 96, false, 1, 1, 1, FWD_EXT_ONE_BYTE, one_byte_fig, 12, 4);
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    const uint8_t *v = forward_rtp_ext(b, &h, 1, &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, 1);
    assert_int_equal(v[0], 0x11);
    v = forward_rtp_ext(b, &h, 2, &vlen);
    assert_int_equal(vlen, 2);
    assert_memory_equal(v, "\x22\x23", 2);
    v = forward_rtp_ext(b, &h, 3, &vlen); /* found past the padding */
    assert_int_equal(vlen, 4);
    assert_memory_equal(v, "\x31\x32\x33\x34", 4);
    assert_null(forward_rtp_ext(b, &h, 4, &vlen));

    n = rtp(b, 96, false, 1, 1, 1, FWD_EXT_TWO_BYTE | 0x5, two_byte_fig, 12, 4); /* appbits are free */
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    v = forward_rtp_ext(b, &h, 1, &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, 0);
    v = forward_rtp_ext(b, &h, 2, &vlen);
    assert_int_equal(vlen, 1);
    assert_int_equal(v[0], 0x21);
    v = forward_rtp_ext(b, &h, 20, &vlen);
    assert_int_equal(vlen, 4);
    assert_memory_equal(v, "\x31\x32\x33\x34", 4);

    /* not RFC 8285: no elements */
    n = rtp(b, 96, false, 1, 1, 1, 0x1234, one_byte_fig, 12, 4);
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    assert_null(forward_rtp_ext(b, &h, 1, &vlen));
}

/* The viewer's copy: payload type rewritten (marker kept), ids translated,
 * an extension the viewer lacks blanked to zero bytes, the rest untouched. */
static void test_prepare_one_byte(void **state)
{
    (void)state;
    uint8_t in[200], out[200];
    size_t n = rtp(in, 96, true, 7, 9, 0xAABBCCDD, FWD_EXT_ONE_BYTE, one_byte_fig, 12, 30);
    struct fwd_sink k;
    forward_sink_init(&k, 102);
    forward_sink_map(&k, 1, 5); /* A → 5 */
    /* B (2) not agreed by the viewer: blanked */
    forward_sink_map(&k, 3, 14); /* C → 14 */
    assert_int_equal(forward_prepare(&k, in, n, out, sizeof(out)), (int)n);
    assert_int_equal(out[1], 0x80 | 102);
    assert_memory_equal(out + 2, in + 2, 10); /* seq, timestamp, SSRC kept */
    const uint8_t want[12] = {0x50, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0xE3, 0x31, 0x32, 0x33, 0x34};
    assert_memory_equal(out + 16, want, 12);
    assert_memory_equal(out + 28, in + 28, 30);
    /* the input is not touched, and a short output buffer is refused */
    assert_memory_equal(in + 16, one_byte_fig, 12);
    assert_int_equal(forward_prepare(&k, in, n, out, n - 1), -1);
    assert_int_equal(forward_prepare(&k, in, 11, out, sizeof(out)), -1);

    /* no marker stays no marker; a packet without extensions is copied */
    n = simple(in, 5, 1);
    assert_int_equal(forward_prepare(&k, in, n, out, sizeof(out)), (int)n);
    assert_int_equal(out[1], 102);
    assert_memory_equal(out + 2, in + 2, n - 2);
}

static void test_prepare_two_byte(void **state)
{
    (void)state;
    uint8_t in[200], out[200];
    size_t n = rtp(in, 96, false, 7, 9, 1, FWD_EXT_TWO_BYTE, two_byte_fig, 12, 8);
    struct fwd_sink k;
    forward_sink_init(&k, 96);
    forward_sink_map(&k, 1, 9);
    forward_sink_map(&k, 2, 3);
    /* C is id 20: beyond the table, always blanked */
    assert_int_equal(forward_prepare(&k, in, n, out, sizeof(out)), (int)n);
    const uint8_t want[12] = {0x09, 0x00, 0x03, 0x01, 0x21, 0x00, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(out + 16, want, 12);
    assert_int_equal(out[12], 0x10);
    assert_int_equal(out[13], 0x00);
}

/* RFC 8285 §4.2: id 15 stops the parsing; what follows is not translated,
 * so the viewer's copy carries it as padding. An element that runs past
 * the block likewise. */
static void test_prepare_stop_and_truncated(void **state)
{
    (void)state;
    uint8_t in[200], out[200];
    struct fwd_sink k;
    forward_sink_init(&k, 96);
    forward_sink_map(&k, 1, 1);
    forward_sink_map(&k, 2, 2);
    const uint8_t stop[8] = {0x10, 0x55, 0xF0, 0x20, 0x66, 0x00, 0x00, 0x00};
    size_t n = rtp(in, 96, false, 1, 1, 1, FWD_EXT_ONE_BYTE, stop, 8, 4);
    assert_int_equal(forward_prepare(&k, in, n, out, sizeof(out)), (int)n);
    const uint8_t want[8] = {0x10, 0x55, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(out + 16, want, 8);

    const uint8_t cut[4] = {0x10, 0x55, 0x23, 0x01}; /* id 2 wants 4 bytes, 1 left */
    n = rtp(in, 96, false, 1, 1, 1, FWD_EXT_ONE_BYTE, cut, 4, 4);
    assert_int_equal(forward_prepare(&k, in, n, out, sizeof(out)), (int)n);
    assert_memory_equal(out + 16, "\x10\x55\x00\x00", 4);
}

/* The mid element carries the viewer's mid: same length replaced, shorter
 * written with zero padding after it, longer impossible (blanked). */
static void test_prepare_mid(void **state)
{
    (void)state;
    uint8_t in[200], out[200];
    const uint8_t ext[4] = {0x10, '0', 0x00, 0x00}; /* mid (id 1) = "0" */
    size_t n = rtp(in, 96, false, 1, 1, 1, FWD_EXT_ONE_BYTE, ext, 4, 4);
    struct fwd_sink k;
    forward_sink_init(&k, 96);
    forward_sink_set_mid(&k, 1, 4, "1");
    assert_int_equal(forward_prepare(&k, in, n, out, sizeof(out)), (int)n);
    assert_memory_equal(out + 16, "\x40" "1\x00\x00", 4);

    forward_sink_set_mid(&k, 1, 4, "10");
    assert_int_equal(forward_prepare(&k, in, n, out, sizeof(out)), (int)n);
    assert_memory_equal(out + 16, "\x00\x00\x00\x00", 4);

    const uint8_t ext3[4] = {0x12, 'a', 'b', 'c'}; /* mid = "abc" */
    n = rtp(in, 96, false, 1, 1, 1, FWD_EXT_ONE_BYTE, ext3, 4, 4);
    forward_sink_set_mid(&k, 1, 4, "v");
    assert_int_equal(forward_prepare(&k, in, n, out, sizeof(out)), (int)n);
    assert_memory_equal(out + 16, "\x40v\x00\x00", 4);

    const uint8_t ext2b[8] = {0x01, 0x03, 'a', 'b', 'c', 0, 0, 0}; /* two-byte form */
    n = rtp(in, 96, false, 1, 1, 1, FWD_EXT_TWO_BYTE, ext2b, 8, 4);
    forward_sink_set_mid(&k, 1, 4, "xy");
    assert_int_equal(forward_prepare(&k, in, n, out, sizeof(out)), (int)n);
    assert_memory_equal(out + 16, "\x04\x02xy\x00\x00\x00\x00", 8);
}

static struct wsdp_media *media(struct wsdp_session *s, enum wsdp_kind kind, const char *mid, const char *codec,
                               uint8_t pt, uint32_t clock, uint32_t ssrc)
{
    struct wsdp_media *m = &s->media[s->n_media++];
    m->kind = kind;
    m->port = 9;
    m->dir = WSDP_DIR_SENDONLY;
    strcpy(m->mid, mid);
    m->codecs[0].pt = pt;
    strcpy(m->codecs[0].name, codec);
    m->codecs[0].clock = clock;
    m->n_codecs = 1;
    if (ssrc) {
        m->ssrcs[0].ssrc = ssrc;
        m->n_ssrcs = 1;
    }
    return m;
}

static void ext(struct wsdp_media *m, uint8_t id, const char *uri)
{
    m->ext[m->n_ext].id = id;
    strcpy(m->ext[m->n_ext].uri, uri);
    m->n_ext++;
}

/* The mapping comes from the two answers, by URI. */
static void test_sink_from_media(void **state)
{
    (void)state;
    struct wsdp_session *pub = calloc(1, sizeof(*pub)), *view = calloc(1, sizeof(*view));
    struct wsdp_media *p = media(pub, WSDP_KIND_VIDEO, "0", "VP8", 96, 90000, 0);
    ext(p, 1, WSDP_EXT_MID);
    ext(p, 3, WSDP_EXT_ABS_SEND_TIME);
    ext(p, 5, "urn:example:only-the-publisher");
    struct wsdp_media *v = media(view, WSDP_KIND_VIDEO, "v1", "VP8", 120, 90000, 0);
    ext(v, 2, WSDP_EXT_ABS_SEND_TIME);
    ext(v, 4, WSDP_EXT_MID);
    struct fwd_sink k;
    forward_sink_from_media(&k, 120, p, v);
    assert_int_equal(k.pt, 120);
    assert_int_equal(k.ext[1], 4);
    assert_int_equal(k.mid_pub_id, 1);
    assert_int_equal(k.mid_len, 2);
    assert_memory_equal(k.mid, "v1", 2);
    assert_int_equal(k.ext[3], 2);
    assert_int_equal(k.ext[5], 0);
    free(pub);
    free(view);
}

/* A viewer m-line naming the publisher's SSRC takes that m-line; otherwise
 * the next unused one of its kind and codec. */
static void test_match_view(void **state)
{
    (void)state;
    struct wsdp_session *pub = calloc(1, sizeof(*pub)), *view = calloc(1, sizeof(*view));
    media(pub, WSDP_KIND_AUDIO, "0", "opus", 111, 48000, 11);
    media(pub, WSDP_KIND_VIDEO, "1", "VP8", 96, 90000, 22);
    media(pub, WSDP_KIND_VIDEO, "2", "H264", 102, 90000, 33);
    pub->media[2].port = 0; /* rejected: never matched */
    media(view, WSDP_KIND_VIDEO, "a", "vp8", 100, 90000, 0);
    media(view, WSDP_KIND_AUDIO, "b", "opus", 109, 48000, 0);
    media(view, WSDP_KIND_VIDEO, "c", "VP8", 100, 90000, 0); /* the only VP8 is taken */
    media(view, WSDP_KIND_AUDIO, "d", "opus", 109, 48000, 0);
    view->media[3].dir = WSDP_DIR_INACTIVE;
    int map[WSDP_MAX_MEDIA];
    forward_match_view(pub, view, map);
    assert_int_equal(map[0], 1);
    assert_int_equal(map[1], 0);
    assert_int_equal(map[2], -1);
    assert_int_equal(map[3], -1);
    assert_int_equal(map[4], -1);

    memset(view, 0, sizeof(*view));
    media(view, WSDP_KIND_VIDEO, "a", "VP8", 100, 90000, 22);
    forward_match_view(pub, view, map);
    assert_int_equal(map[0], 1);
    free(pub);
    free(view);
}

/* ---- publisher streams ---- */

static void test_cache_size(void **state)
{
    (void)state;
    size_t slots, bytes;
    forward_cache_size(true, 1000, &slots, &bytes);
    assert_int_equal(slots, 512);
    assert_int_equal(bytes, 512 * 1200);
    forward_cache_size(false, 1000, &slots, &bytes);
    assert_int_equal(slots, 128);
    assert_true(bytes >= 6000);
    forward_cache_size(true, 1000000, &slots, &bytes);
    assert_int_equal(slots, 32768);
}

/* RFC 4585 §6.2.1: PID is the first lost packet, bit i of BLP the loss of
 * PID+i+1. Packets 100, 102, 104 arrive: 101 and 103 are lost, one FCI
 * with PID 101 and BLP 0x0002. */
static void test_gap_nack_bitmask(void **state)
{
    (void)state;
    struct fwd_stream *st = stream_new(true, 0x5EED);
    assert_int_equal(feed(st, 100, 0), FWD_FORWARD);
    assert_int_equal(feed(st, 102, 1), FWD_FORWARD);
    assert_int_equal(feed(st, 104, 2), FWD_FORWARD);
    uint8_t buf[200];
    int n = forward_stream_nack(st, 3, 100, 0xF00D, buf, sizeof(buf));
    assert_int_equal(n, 16);
    assert_int_equal(buf[0], 0x81);    /* V=2, FMT 1 */
    assert_int_equal(buf[1], 205);     /* RTPFB */
    assert_memory_equal(buf + 4, "\x00\x00\xF0\x0D\x00\x00\x5E\xED", 8);
    assert_memory_equal(buf + 12, "\x00\x65\x00\x02", 4);
    stream_del(st);
}

/* Each lost packet is asked again after the retry time, at most
 * FWD_NACK_TRIES times; one that arrives stops being asked. */
static void test_nack_retries(void **state)
{
    (void)state;
    struct fwd_stream *st = stream_new(true, 7);
    uint8_t buf[200];
    uint16_t seqs[64];
    uint32_t media;
    feed(st, 10, 0);
    feed(st, 13, 0); /* 11, 12 lost */
    assert_int_equal(nack_seqs(buf, forward_stream_nack(st, 0, 100, 1, buf, sizeof(buf)), &media, seqs), 2);
    assert_int_equal(media, 7);
    assert_int_equal(forward_stream_nack(st, 50, 100, 1, buf, sizeof(buf)), 0); /* too soon */
    assert_int_equal(feed(st, 11, 60), FWD_FORWARD);                              /* recovered, late */
    assert_int_equal(nack_seqs(buf, forward_stream_nack(st, 100, 100, 1, buf, sizeof(buf)), &media, seqs), 1);
    assert_int_equal(seqs[0], 12);
    assert_int_equal(nack_seqs(buf, forward_stream_nack(st, 200, 100, 1, buf, sizeof(buf)), &media, seqs), 1);
    assert_int_equal(forward_stream_nack(st, 300, 100, 1, buf, sizeof(buf)), 0); /* three tries: given up */
    assert_int_equal(st->n_missing, 0);
    assert_int_equal(feed(st, 11, 400), FWD_DUPLICATE);
    stream_del(st);
}

/* Bounded: a gap wider than FWD_MISSING_MAX asks only for the newest; a gap
 * wider than the cache window is a new run and asks for nothing. */
static void test_nack_bounds(void **state)
{
    (void)state;
    struct fwd_stream *st = stream_new(true, 7);
    uint8_t buf[600];
    uint16_t seqs[64];
    uint32_t media;
    feed(st, 1000, 0);
    feed(st, 1000 + 101, 0); /* 100 lost */
    size_t n = nack_seqs(buf, forward_stream_nack(st, 0, 100, 1, buf, sizeof(buf)), &media, seqs);
    assert_int_equal(n, FWD_MISSING_MAX);
    assert_int_equal(seqs[0], 1101 - FWD_MISSING_MAX);
    assert_int_equal(seqs[n - 1], 1100);

    uint16_t far = (uint16_t)(1101 + st->window + 1);
    feed(st, far, 1);
    assert_int_equal(st->restarts, 1);
    assert_int_equal(forward_stream_nack(st, 1000, 100, 1, buf, sizeof(buf)), 0);
    feed(st, (uint16_t)(far + 1), 2);
    assert_int_equal(forward_stream_nack(st, 1000, 100, 1, buf, sizeof(buf)), 0);

    /* a stream whose publisher takes no NACK asks nothing */
    struct fwd_stream *quiet = stream_new(false, 8);
    quiet->cfg.nack = false;
    feed(quiet, 1, 0);
    feed(quiet, 5, 0);
    assert_int_equal(forward_stream_nack(quiet, 0, 100, 1, buf, sizeof(buf)), 0);
    stream_del(quiet);
    stream_del(st);
}

/* The 16-bit wrap: 65534, then 1 — 65535 and 0 are lost, not 65 000 others. */
static void test_wrap(void **state)
{
    (void)state;
    struct fwd_stream *st = stream_new(true, 7);
    uint8_t buf[200];
    uint16_t seqs[64];
    uint32_t media;
    feed(st, 65534, 0);
    feed(st, 1, 0);
    assert_int_equal(nack_seqs(buf, forward_stream_nack(st, 0, 100, 1, buf, sizeof(buf)), &media, seqs), 2);
    assert_int_equal(seqs[0], 65535);
    assert_int_equal(seqs[1], 0);
    rtcp_report_block_t rb;
    assert_true(forward_stream_report(st, 0, &rb));
    assert_int_equal(rb.ext_highest_seq, 65536 + 1);
    assert_int_equal(rb.cumulative_lost, 2);
    stream_del(st);
}

/* A viewer's miss is asked upstream once, only inside the window and only
 * for packets that were sent. */
static void test_want(void **state)
{
    (void)state;
    struct fwd_stream *st = stream_new(true, 7);
    assert_false(forward_stream_want(st, 5, 0)); /* nothing seen yet */
    for (uint16_t s = 100; s < 110; s++) feed(st, s, 0);
    assert_non_null(forward_stream_cached(st, 105, NULL));
    assert_false(forward_stream_want(st, 110, 0)); /* not sent yet */
    assert_false(forward_stream_want(st, 109, 0)); /* the newest */
    assert_false(forward_stream_want(st, (uint16_t)(109 - st->window), 0));
    st->n_missing = 0;
    assert_true(forward_stream_want(st, 104, 0)); /* say the byte budget evicted it */
    assert_false(forward_stream_want(st, 104, 0));
    uint8_t buf[100];
    uint16_t seqs[64];
    uint32_t media;
    assert_int_equal(nack_seqs(buf, forward_stream_nack(st, 0, 100, 1, buf, sizeof(buf)), &media, seqs), 1);
    assert_int_equal(seqs[0], 104);
    stream_del(st);
}

/* One key frame request per interval, whoever asks; times passed in. */
static void test_keyframe_rate_limit(void **state)
{
    (void)state;
    struct fwd_stream *st = stream_new(true, 0xABCD);
    uint8_t buf[64];
    int n = forward_stream_keyframe(st, 5000, 1000, 0x1111, buf, sizeof(buf));
    assert_int_equal(n, 12); /* PLI: header, sender, media; no FCI */
    assert_memory_equal(buf, "\x81\xCE\x00\x02\x00\x00\x11\x11\x00\x00\xAB\xCD", 12);
    assert_int_equal(forward_stream_keyframe(st, 5500, 1000, 0x1111, buf, sizeof(buf)), 0);
    assert_int_equal(forward_stream_keyframe(st, 5999, 1000, 0x1111, buf, sizeof(buf)), 0);
    assert_int_equal(forward_stream_keyframe(st, 6000, 1000, 0x1111, buf, sizeof(buf)), 12);

    st->cfg.use_fir = true; /* FIR: the command sequence number grows per request */
    assert_int_equal(forward_stream_keyframe(st, 7000, 1000, 0x1111, buf, sizeof(buf)), 20);
    assert_int_equal(buf[0], 0x84);
    assert_int_equal(buf[16], 1);
    assert_int_equal(forward_stream_keyframe(st, 8000, 1000, 0x1111, buf, sizeof(buf)), 20);
    assert_int_equal(buf[16], 2);

    st->cfg.ssrc = 0; /* not learnt yet: nothing to name */
    assert_int_equal(forward_stream_keyframe(st, 9000, 1000, 0x1111, buf, sizeof(buf)), 0);
    stream_del(st);
}

/* ---- RTCP ---- */

struct two_streams {
    struct fwd_stream *video, *audio;
};

static struct fwd_stream *find2(void *arg, uint32_t ssrc, void **tag)
{
    struct two_streams *t = arg;
    if (ssrc == t->video->cfg.ssrc) {
        *tag = t;
        return t->video;
    }
    if (ssrc == t->audio->cfg.ssrc) return t->audio;
    return NULL;
}

/* A viewer's compound: RR, NACK (some cached, some not), PLI, REMB and a
 * FIR for an SSRC it does not receive. */
static void test_viewer_rtcp(void **state)
{
    (void)state;
    struct two_streams t = {stream_new(true, 0x1000), stream_new(false, 0x2000)};
    for (uint16_t s = 10; s < 20; s++)
        if (s != 15) feed(t.video, s, 0);
    t.video->n_missing = 0; /* as if 15 had been given up */
    uint8_t c[400];
    int off = rtcp_build_rr(c, sizeof(c), 0x9999, NULL, 0);
    const uint16_t asked[] = {12, 15, 17};
    off += rtcp_build_nack(c + off, sizeof(c) - (size_t)off, 0x9999, 0x1000, asked, 3);
    off += rtcp_build_pli(c + off, sizeof(c) - (size_t)off, 0x9999, 0x1000);
    const uint32_t remb_ssrcs[] = {0x1000};
    off += rtcp_build_remb(c + off, sizeof(c) - (size_t)off, 0x9999, 300000, remb_ssrcs, 1);
    off += rtcp_build_fir(c + off, sizeof(c) - (size_t)off, 0x9999, 0x7777, 1);
    struct fwd_viewer_rtcp *r = malloc(sizeof(*r));
    forward_viewer_rtcp(c, (size_t)off, find2, &t, 10000, 1000, r);
    assert_int_equal(r->reports, 1);
    assert_int_equal(r->remb, 1);
    assert_true(r->remb_bps == 300000); /* the viewer's estimate, for its simulcast layer */
    assert_int_equal(r->nacked, 3);
    assert_int_equal(r->n_resend, 2);
    assert_int_equal(r->resend[0].seq, 12);
    assert_ptr_equal(r->resend[0].st, t.video);
    assert_ptr_equal(r->resend[0].tag, &t);
    assert_int_equal(r->resend[1].seq, 17);
    assert_int_equal(r->missed, 1);
    assert_int_equal(r->n_upstream, 1);
    assert_ptr_equal(r->upstream[0], t.video);
    assert_int_equal(r->n_keyframe, 1);
    assert_ptr_equal(r->keyframe[0], t.video);
    assert_int_equal(r->unknown, 1);
    assert_int_equal(r->malformed, 0);

    /* the same again 500 ms later: the miss is already being asked, the PLI is held back */
    forward_viewer_rtcp(c, (size_t)off, find2, &t, 10500, 1000, r);
    assert_int_equal(r->n_upstream, 0);
    assert_int_equal(r->n_keyframe, 0);
    assert_int_equal(r->rate_limited, 1);
    uint8_t buf[64];
    assert_int_equal(forward_stream_keyframe_build(t.video, 1, buf, sizeof(buf)), 12);

    /* broken framing stops the walk, counted */
    c[1] = 201;
    c[2] = 0x7F;
    forward_viewer_rtcp(c, (size_t)off, find2, &t, 20000, 1000, r);
    assert_int_equal(r->malformed, 1);
    assert_int_equal(r->n_resend, 0);
    free(r);
    stream_del(t.video);
    stream_del(t.audio);
}

/* A publisher's SR goes to viewers without its report blocks, and its time
 * comes back to the publisher as LSR with the delay since (DLSR). */
static void test_publisher_sr_and_rr(void **state)
{
    (void)state;
    struct two_streams t = {stream_new(true, 0x1000), stream_new(false, 0x2000)};
    uint8_t c[400], out[400];
    rtcp_sender_info_t si = {.ntp = 0x0000123456789ABCull, .rtp_ts = 4242, .packet_count = 9, .octet_count = 900};
    rtcp_report_block_t blk = {.ssrc = 0x5555};
    int off = rtcp_build_sr(c, sizeof(c), 0x1000, &si, &blk, 1);
    off += rtcp_build_sdes_cname(c + off, sizeof(c) - (size_t)off, 0x1000, "pub", 3);
    off += rtcp_build_sr(c + off, sizeof(c) - (size_t)off, 0x3333, &si, NULL, 0); /* unknown stream */
    int n = forward_publisher_rtcp(c, (size_t)off, find2, &t, 50000, out, sizeof(out));
    assert_int_equal(n, 28);
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_report_t rep;
    rtcp_iter_init(&it, out, (size_t)n);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_report(&p, &rep), 0);
    assert_true(rep.is_sr);
    assert_int_equal(rep.ssrc, 0x1000);
    assert_int_equal(rep.report_count, 0);
    assert_int_equal(rep.si.rtp_ts, 4242);
    assert_int_equal(forward_publisher_rtcp(c, (size_t)off, find2, &t, 50000, out, 10), -ENOSPC);

    /* 10 packets expected, 8 received: fraction 2/10 = 51/256 */
    for (uint16_t s = 0; s < 10; s++)
        if (s != 3 && s != 6) feed(t.video, s, 50000);
    uint8_t rr[400];
    struct fwd_stream *both[2] = {t.video, t.audio};
    n = forward_build_receiver_report(both, 2, 0xBEEF, "cascade", 2500000, 50500, rr, sizeof(rr));
    assert_true(n > 0);
    rtcp_iter_init(&it, rr, (size_t)n);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_report(&p, &rep), 0);
    assert_false(rep.is_sr);
    assert_int_equal(rep.ssrc, 0xBEEF);
    assert_int_equal(rep.report_count, 1); /* the audio stream has not started */
    assert_int_equal(rep.reports[0].ssrc, 0x1000);
    assert_int_equal(rep.reports[0].fraction_lost, 51);
    assert_int_equal(rep.reports[0].cumulative_lost, 2);
    assert_int_equal(rep.reports[0].ext_highest_seq, 9);
    assert_int_equal(rep.reports[0].lsr, 0x12345678); /* the middle 32 bits of the NTP time */
    assert_int_equal(rep.reports[0].dlsr, 32768); /* 500 ms in 1/65536 s */
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(p.pt, RTCP_PT_SDES);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    rtcp_remb_t remb;
    assert_int_equal(rtcp_parse_remb(&p, &remb), 0);
    assert_int_equal(remb.ssrc_count, 1);
    assert_int_equal(remb.ssrcs[0], 0x1000);
    assert_true(remb.bitrate <= 2500000 && remb.bitrate > 2490000);
    assert_int_equal(rtcp_iter_next(&it, &p), 0);

    /* the next interval with no loss says 0 */
    feed(t.video, 10, 51000);
    n = forward_build_receiver_report(both, 2, 0xBEEF, NULL, 0, 51000, rr, sizeof(rr));
    assert_int_equal(n, 8 + 24);
    rtcp_iter_init(&it, rr, (size_t)n);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_report(&p, &rep), 0);
    assert_int_equal(rep.reports[0].fraction_lost, 0);
    stream_del(t.video);
    stream_del(t.audio);
}

/* Jitter (RFC 3550 A.8): packets on time have none; one late by 10 ms adds
 * |D|/16 = 900/16 in 90 kHz units. */
static void test_jitter(void **state)
{
    (void)state;
    struct fwd_stream *st = stream_new(true, 7);
    uint8_t b[100];
    struct fwd_rtp h;
    for (uint16_t s = 0; s < 3; s++) { /* 20 ms apart in both clocks */
        size_t n = rtp(b, 96, false, s, s * 1800u, 7, 0, NULL, 0, 10);
        assert_int_equal(forward_rtp_parse(b, n, &h), 0);
        forward_stream_receive(st, b, n, &h, 1000 + s * 20u);
    }
    assert_int_equal(st->jitter_q4 >> 4, 0);
    size_t n = rtp(b, 96, false, 3, 3 * 1800u, 7, 0, NULL, 0, 10);
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    forward_stream_receive(st, b, n, &h, 1000 + 60 + 10);
    assert_int_equal(st->jitter_q4, 900);
    stream_del(st);
}

/* SSRC learnt later: the old history is forgotten. */
static void test_set_ssrc(void **state)
{
    (void)state;
    struct fwd_stream *st = stream_new(true, 0);
    uint8_t buf[64];
    assert_int_equal(forward_stream_keyframe(st, 0, 1000, 1, buf, sizeof(buf)), 0);
    forward_stream_set_ssrc(st, 99);
    feed(st, 5, 0);
    assert_non_null(forward_stream_cached(st, 5, NULL));
    forward_stream_set_ssrc(st, 100);
    assert_null(forward_stream_cached(st, 5, NULL));
    assert_false(st->started);
    stream_del(st);
}

/* ---- simulcast ---- */

#define RID_EXT 10
#define OUT_SSRC 0xABCD0001u

/* Layers q (0), h (1), f (2) with SSRCs 0x100, 0x200, 0x300 and their own
 * sequence numbers and timestamps, as Chromium numbers each encoding. */
static const uint32_t layer_ssrc[3] = {0x100, 0x200, 0x300};
static const uint16_t layer_seq0[3] = {1000, 20000, 65530};
static const uint32_t layer_ts0[3] = {5000, 900000, 4294960000u};

/* A VP8 packet of layer n: its k-th packet (seq and ts from the layer's
 * bases, 3000 ticks per packet: one packet per frame), key or not, the rid
 * element when with_rid. */
static size_t vp8_pkt(uint8_t *b, int n, uint16_t k, bool key, bool with_rid)
{
    static const char *rid[3] = {"q", "h", "f"};
    uint8_t ext[4] = {(uint8_t)(RID_EXT << 4 | 0), (uint8_t)rid[n][0], 0, 0};
    size_t off = rtp(b, 96, true, (uint16_t)(layer_seq0[n] + k), layer_ts0[n] + 3000u * k, layer_ssrc[n],
                     FWD_EXT_ONE_BYTE, with_rid ? ext : NULL, with_rid ? 4 : 0, 0);
    b[off] = 0x10;                    /* S=1, PID 0 */
    b[off + 1] = key ? 0x00 : 0x01;   /* P bit: 0 is a key frame */
    memset(b + off + 2, (uint8_t)(0x40 + n), 20);
    return off + 22;
}

static void init_layers(struct fwd_layers *l)
{
    static const char rids[3][WSDP_RID_MAX] = {"q", "h", "f"};
    forward_layers_init(l, rids, 3);
    for (int i = 0; i < 3; i++) l->ssrc[i] = layer_ssrc[i];
}

static bool keyframe_of(const uint8_t *b, size_t n)
{
    struct fwd_rtp h;
    const uint8_t *p;
    size_t pl;
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    return forward_rtp_payload(b, n, &h, &p, &pl) && forward_keyframe_start(FWD_VIDEO_VP8, p, pl);
}

/* Offers packet k of layer n to the selector at now; returns the seq it
 * goes out with, or -1 when dropped. */
static int32_t offer(struct fwd_sel *k, int n, uint16_t idx, bool key, uint64_t now, uint32_t *ts)
{
    uint8_t b[200];
    size_t len = vp8_pkt(b, n, idx, key, false);
    struct fwd_rtp h;
    assert_int_equal(forward_rtp_parse(b, len, &h), 0);
    assert_int_equal(keyframe_of(b, len), key);
    struct fwd_sel_out o;
    if (!forward_sel_packet(k, n, &h, key, now, &o)) return -1;
    if (ts) *ts = o.ts;
    return o.seq;
}

static void test_keyframe_vp8(void **state)
{
    (void)state;
    const uint8_t key[] = {0x10, 0x00, 0x9d}, inter[] = {0x10, 0x01, 0x9d}, later[] = {0x00, 0x00, 0x9d};
    const uint8_t part1[] = {0x11, 0x00, 0x9d};
    assert_true(forward_keyframe_start(FWD_VIDEO_VP8, key, sizeof(key)));
    assert_false(forward_keyframe_start(FWD_VIDEO_VP8, inter, sizeof(inter)));
    assert_false(forward_keyframe_start(FWD_VIDEO_VP8, later, sizeof(later)));   /* not the start (S=0) */
    assert_false(forward_keyframe_start(FWD_VIDEO_VP8, part1, sizeof(part1)));   /* partition 1 */
    /* X: I with a 15-bit PictureID (M), L (TL0PICIDX), T/K byte, then the P bit */
    const uint8_t ext_key[] = {0x90, 0xF0, 0x80 | 0x12, 0x34, 0x07, 0x40, 0x00, 0x9d};
    const uint8_t ext_inter[] = {0x90, 0xF0, 0x80 | 0x12, 0x34, 0x07, 0x40, 0x01, 0x9d};
    const uint8_t ext_short_pid[] = {0x90, 0x80, 0x12, 0x00};
    assert_true(forward_keyframe_start(FWD_VIDEO_VP8, ext_key, sizeof(ext_key)));
    assert_false(forward_keyframe_start(FWD_VIDEO_VP8, ext_inter, sizeof(ext_inter)));
    assert_true(forward_keyframe_start(FWD_VIDEO_VP8, ext_short_pid, sizeof(ext_short_pid)));
    /* a descriptor running past the payload is no key frame */
    assert_false(forward_keyframe_start(FWD_VIDEO_VP8, ext_key, 6));
    assert_false(forward_keyframe_start(FWD_VIDEO_VP8, ext_key, 1));
    assert_false(forward_keyframe_start(FWD_VIDEO_OTHER, key, sizeof(key)));
}

static void test_keyframe_h264(void **state)
{
    (void)state;
    const uint8_t idr[] = {0x65, 0x88}, sps[] = {0x67, 0x42}, pps[] = {0x68, 0xce}, slice[] = {0x41, 0x9a};
    assert_true(forward_keyframe_start(FWD_VIDEO_H264, idr, sizeof(idr)));
    assert_true(forward_keyframe_start(FWD_VIDEO_H264, sps, sizeof(sps)));
    assert_false(forward_keyframe_start(FWD_VIDEO_H264, pps, sizeof(pps)));
    assert_false(forward_keyframe_start(FWD_VIDEO_H264, slice, sizeof(slice)));
    /* STAP-A: SPS + PPS (what browsers send before the IDR) */
    const uint8_t stap[] = {0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce};
    const uint8_t stap_inter[] = {0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x41, 0x9a};
    const uint8_t stap_bad[] = {0x78, 0x00, 0x09, 0x67, 0x42};
    assert_true(forward_keyframe_start(FWD_VIDEO_H264, stap, sizeof(stap)));
    assert_false(forward_keyframe_start(FWD_VIDEO_H264, stap_inter, sizeof(stap_inter)));
    assert_false(forward_keyframe_start(FWD_VIDEO_H264, stap_bad, sizeof(stap_bad)));
    /* FU-A: the start fragment of an IDR only */
    const uint8_t fu_start[] = {0x7C, 0x85, 0x88}, fu_mid[] = {0x7C, 0x05, 0x88}, fu_p[] = {0x7C, 0x81, 0x9a};
    assert_true(forward_keyframe_start(FWD_VIDEO_H264, fu_start, sizeof(fu_start)));
    assert_false(forward_keyframe_start(FWD_VIDEO_H264, fu_mid, sizeof(fu_mid)));
    assert_false(forward_keyframe_start(FWD_VIDEO_H264, fu_p, sizeof(fu_p)));
    assert_false(forward_keyframe_start(FWD_VIDEO_H264, fu_start, 1));
}

/* SSRCs are learnt from the rtp-stream-id element; a packet without it and
 * with an unknown SSRC belongs to no layer; a rid's new SSRC replaces the old. */
static void test_layers_learn_ssrc(void **state)
{
    (void)state;
    static const char rids[3][WSDP_RID_MAX] = {"q", "h", "f"};
    struct fwd_layers l;
    forward_layers_init(&l, rids, 3);
    uint8_t b[200];
    struct fwd_rtp h;
    bool learnt;
    size_t n = vp8_pkt(b, 1, 0, true, false);
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    assert_int_equal(forward_layers_classify(&l, b, &h, RID_EXT, &learnt), -1);
    n = vp8_pkt(b, 1, 1, false, true);
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    assert_int_equal(forward_layers_classify(&l, b, &h, RID_EXT, &learnt), 1);
    assert_true(learnt);
    assert_int_equal(l.ssrc[1], 0x200);
    n = vp8_pkt(b, 1, 2, false, false);
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    assert_int_equal(forward_layers_classify(&l, b, &h, RID_EXT, &learnt), 1);
    assert_false(learnt);
    /* rid "h" again under another SSRC */
    n = vp8_pkt(b, 1, 3, false, true);
    b[11] = 0x99;
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    assert_int_equal(forward_layers_classify(&l, b, &h, RID_EXT, &learnt), 1);
    assert_true(learnt);
    assert_int_equal(l.ssrc[1], 0x299);
    /* a rid that is not ours; the extension id not negotiated */
    n = vp8_pkt(b, 0, 0, false, true);
    b[n - 22 - 3] = 'x';
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    assert_int_equal(forward_layers_classify(&l, b, &h, RID_EXT, &learnt), -1);
    n = vp8_pkt(b, 0, 0, false, true);
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    assert_int_equal(forward_layers_classify(&l, b, &h, 0, &learnt), -1);
}

/* Bitrates per 1 s window, activity per layer. */
static void feed_rates(struct fwd_layers *l, uint64_t from, uint64_t to, const uint64_t bps[3])
{
    for (uint64_t t = from; t < to; t += 10)
        for (int i = 0; i < 3; i++)
            if (bps[i]) forward_layers_account(l, i, (size_t)(bps[i] / 8 / 100), t);
}

/* The target: the highest active layer up to the viewer's max whose
 * bitrate fits its estimate; none fits: the lowest active. */
static void test_sel_choose(void **state)
{
    (void)state;
    struct fwd_layers l;
    init_layers(&l);
    struct fwd_sel k;
    forward_sel_init(&k, OUT_SSRC, 90000, 2);
    assert_int_equal(forward_sel_choose(&k, &l, 0), -1); /* nothing sent yet */
    const uint64_t rates[3] = {150000, 500000, 1500000};
    feed_rates(&l, 0, 1010, rates);
    assert_true(l.bps[0] >= 140000 && l.bps[0] <= 160000);
    assert_true(l.bps[2] >= 1400000 && l.bps[2] <= 1600000);
    /* no estimate yet: the highest */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 2);
    k.bwe_bps = 1000000;
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 1);
    k.bwe_bps = 5000000;
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 2);
    k.max_layer = 1; /* the viewer asked for no more than h */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 1);
    k.max_layer = 2;
    k.bwe_bps = 50000; /* nothing fits: the lowest */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 0);
    /* f stops (the browser paused it): after FWD_LAYER_IDLE_MS it is not chosen */
    const uint64_t no_f[3] = {150000, 500000, 0};
    k.bwe_bps = 5000000;
    feed_rates(&l, 1010, 2500, no_f);
    assert_int_equal(forward_sel_choose(&k, &l, 2500), 1);
    /* everything silent: the target stays */
    assert_int_equal(forward_sel_choose(&k, &l, 9000), 1);
}

/* A viewer forwarded f keeps it while its estimate only lags (a browser's
 * REMB starts from what arrives and grows slowly): it goes down when the
 * estimate falls below 70 % of f (its path queues up) or is below half of
 * f whatever its history; it goes up only with headroom. */
static void test_sel_lagging_estimate(void **state)
{
    (void)state;
    struct fwd_layers l;
    init_layers(&l);
    const uint64_t rates[3] = {150000, 500000, 1500000};
    feed_rates(&l, 0, 1010, rates);
    struct fwd_sel k;
    forward_sel_init(&k, OUT_SSRC, 90000, 2);
    k.current = k.target = 2;
    forward_sel_estimate(&k, 1000000); /* the first estimate, two thirds of f: lagging */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 2);
    forward_sel_estimate(&k, 1100000); /* it grows */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 2);
    forward_sel_estimate(&k, 1200000);
    forward_sel_estimate(&k, 1150000); /* a small fall: still 77 % of f */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 2);
    forward_sel_estimate(&k, 1000000); /* fallen to 67 %: the highest that fits */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 1);
    forward_sel_estimate(&k, 1000000); /* held, not risen: still too much */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 1);
    forward_sel_estimate(&k, 1050000); /* rising again: f (still forwarded) may stay */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 2);

    /* A first estimate under half of f: too much at once. */
    forward_sel_init(&k, OUT_SSRC, 90000, 2);
    k.current = k.target = 2;
    forward_sel_estimate(&k, 600000);
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 1);
    forward_sel_estimate(&k, 200000); /* nor does h fit now: q */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 0);
    /* Forwarded q, the estimate rises past h's rate: up to h only with a
     * quarter of h to spare. */
    k.current = 0;
    forward_sel_estimate(&k, 600000);
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 0);
    forward_sel_estimate(&k, 650000);
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 1);
    /* The viewer's max layer is below the one forwarded: down, whatever the estimate. */
    k.current = 2;
    k.max_layer = 1;
    forward_sel_estimate(&k, 5000000);
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 1);
}

/* A viewer settled on q: its estimate can only grow to ~1.5x what it
 * receives, never to h's rate, so h is tried after the quiet spell (an
 * estimate that only jitters down and up, pinned at its ceiling, does not
 * delay it; congestion does). The trial holds: h is kept, proven;
 * congestion while on trial ends it, back to q, and doubles the spell; a
 * trial layer whose key frame never comes is given up. */
static void test_sel_trial(void **state)
{
    (void)state;
    struct fwd_layers l;
    init_layers(&l);
    const uint64_t rates[3] = {150000, 500000, 1500000};
    feed_rates(&l, 0, 80000, rates);
    struct fwd_sel k;
    forward_sel_init(&k, OUT_SSRC, 90000, 2);
    uint16_t seq[3] = {0, 0, 0};
    k.target = 0;
    assert_true(offer(&k, 0, seq[0]++, true, 1000, NULL) >= 0); /* on q */
    forward_sel_estimate(&k, 250000);
    /* settled: the spell starts */
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 0);
    assert_int_equal(forward_sel_choose(&k, &l, 1010 + FWD_TRIAL_FIRST_MS - 1), 0);
    /* the estimate jitters with what arrives: no effect on the spell */
    forward_sel_estimate(&k, 240000);
    assert_int_equal(forward_sel_choose(&k, &l, 3000), 0);
    forward_sel_estimate(&k, 250000);
    /* congestion restarts it */
    forward_sel_congested(&k);
    forward_sel_estimate(&k, 240000);
    assert_int_equal(forward_sel_choose(&k, &l, 5000), 0);
    forward_sel_estimate(&k, 250000);
    assert_int_equal(forward_sel_choose(&k, &l, 5000 + FWD_TRIAL_FIRST_MS - 1), 0);
    uint64_t t = 5000 + FWD_TRIAL_FIRST_MS;
    /* the trial: h, whose key frame is asked for */
    assert_int_equal(forward_sel_choose(&k, &l, t), 1);
    assert_int_equal(k.trials, 1);
    assert_true(forward_sel_waiting(&k));
    assert_true(offer(&k, 1, seq[1]++, false, t + 10, NULL) < 0); /* not a key frame: not yet */
    assert_true(offer(&k, 0, seq[0]++, false, t + 10, NULL) >= 0); /* q meanwhile */
    assert_true(offer(&k, 1, seq[1]++, true, t + 20, NULL) >= 0);  /* on h */
    assert_int_equal(k.current, 1);
    /* held although the estimate is under half of h: no fall */
    forward_sel_estimate(&k, 260000);
    assert_int_equal(forward_sel_choose(&k, &l, t + 30), 1);
    assert_int_equal(forward_sel_choose(&k, &l, t + 30 + FWD_TRIAL_HOLD_MS - 1), 1);
    assert_int_equal(forward_sel_choose(&k, &l, t + 30 + FWD_TRIAL_HOLD_MS), 1); /* it held: proven */
    assert_int_equal(k.proven, 1);
    assert_int_equal(k.trials_failed, 0);
    forward_sel_estimate(&k, 280000);
    assert_int_equal(forward_sel_choose(&k, &l, t + 4000), 1); /* proven: kept, though under half */
    /* a fall under 70 % of h: down as usual, and h is no longer proven */
    forward_sel_estimate(&k, 270000);
    assert_int_equal(forward_sel_choose(&k, &l, t + 4100), 0);
    assert_true(offer(&k, 0, seq[0]++, true, t + 4110, NULL) >= 0);
    assert_int_equal(k.proven, -1);

    /* The next trial fails: the estimate falls on h. */
    forward_sel_estimate(&k, 275000);
    t += 4200;
    assert_int_equal(forward_sel_choose(&k, &l, t), 0);
    t += FWD_TRIAL_FIRST_MS;
    assert_int_equal(forward_sel_choose(&k, &l, t), 1);
    assert_true(offer(&k, 1, seq[1]++, true, t + 10, NULL) >= 0);
    forward_sel_estimate(&k, 230000); /* lower alone is not congestion */
    assert_int_equal(forward_sel_choose(&k, &l, t + 400), 1);
    forward_sel_congested(&k); /* the path queues up: back to q */
    forward_sel_estimate(&k, 230000);
    assert_int_equal(forward_sel_choose(&k, &l, t + 500), 0);
    assert_int_equal(k.trials_failed, 1);
    assert_int_equal(k.trial, -1);
    assert_true(offer(&k, 0, seq[0]++, true, t + 510, NULL) >= 0);
    /* settled again: twice the spell (from the failure) before the next trial */
    forward_sel_estimate(&k, 240000);
    assert_int_equal(forward_sel_choose(&k, &l, t + 600), 0);
    assert_int_equal(forward_sel_choose(&k, &l, t + 500 + 2 * FWD_TRIAL_FIRST_MS - 1), 0);
    t += 500 + 2 * FWD_TRIAL_FIRST_MS;
    assert_int_equal(forward_sel_choose(&k, &l, t), 1);
    assert_int_equal(k.trials, 3);
    /* ... whose key frame never comes: given up after FWD_TRIAL_WAIT_MS */
    assert_int_equal(forward_sel_choose(&k, &l, t + FWD_TRIAL_WAIT_MS - 1), 1);
    assert_int_equal(forward_sel_choose(&k, &l, t + FWD_TRIAL_WAIT_MS), 0);
    assert_int_equal(k.trials_failed, 2);
    assert_false(forward_sel_waiting(&k));

    /* At the viewer's max layer, or with nothing above active: no trial. */
    forward_sel_init(&k, OUT_SSRC, 90000, 0);
    k.target = 0;
    assert_true(offer(&k, 0, 0, true, 1000, NULL) >= 0);
    forward_sel_estimate(&k, 250000);
    assert_int_equal(forward_sel_choose(&k, &l, 1010), 0);
    assert_int_equal(forward_sel_choose(&k, &l, 1010 + 4 * FWD_TRIAL_MAX_MS), 0);
    assert_int_equal(k.trials, 0);
}

/* The first packet a viewer gets is a key frame of its target; the first
 * run keeps that layer's numbers, under the viewer's SSRC. */
static void test_sel_starts_at_keyframe(void **state)
{
    (void)state;
    struct fwd_sel k;
    forward_sel_init(&k, OUT_SSRC, 90000, 2);
    k.target = 2;
    assert_true(forward_sel_waiting(&k));
    assert_int_equal(offer(&k, 2, 0, false, 100, NULL), -1);
    assert_int_equal(offer(&k, 0, 0, true, 100, NULL), -1); /* a key frame, of another layer */
    uint32_t ts;
    assert_int_equal(offer(&k, 2, 1, true, 133, &ts), (uint16_t)(layer_seq0[2] + 1));
    assert_int_equal(ts, layer_ts0[2] + 3000);
    assert_false(forward_sel_waiting(&k));
    assert_int_equal(offer(&k, 2, 2, false, 166, NULL), (uint16_t)(layer_seq0[2] + 2));
    uint8_t b[200];
    size_t n = vp8_pkt(b, 2, 2, false, false);
    struct fwd_sel_out o = {.seq = 7, .ts = 9};
    forward_sel_rewrite(&k, b, &o);
    struct fwd_rtp h;
    assert_int_equal(forward_rtp_parse(b, n, &h), 0);
    assert_int_equal(h.ssrc, OUT_SSRC);
    assert_int_equal(h.seq, 7);
    assert_int_equal(h.ts, 9);
    assert_int_equal(k.dropped, 2);
}

/* Going up at t=1000 waits for f's key frame at t=1100: q goes on until
 * then; f's first packet follows q's last seq by one, its timestamp q's
 * last plus the 100 ms between them; q is dropped from then on. */
static void test_sel_switch_up_waits_for_keyframe(void **state)
{
    (void)state;
    struct fwd_sel k;
    forward_sel_init(&k, OUT_SSRC, 90000, 2);
    k.target = 0;
    uint32_t ts, last_ts = 0;
    int32_t first = offer(&k, 0, 0, true, 900, &ts), seq = first;
    for (uint16_t i = 1; i <= 3; i++) seq = offer(&k, 0, i, false, 900 + 33u * i, &last_ts);
    assert_int_equal(seq, (uint16_t)(first + 3));
    /* t=1000: the estimate allows f */
    k.target = 2;
    assert_true(forward_sel_waiting(&k));
    assert_int_equal(offer(&k, 2, 40, false, 1000, NULL), -1);
    seq = offer(&k, 0, 4, false, 1033, &last_ts); /* q still flows */
    assert_int_equal(seq, (uint16_t)(first + 4));
    assert_int_equal(offer(&k, 2, 41, false, 1066, NULL), -1);
    /* t=1100: f's key frame */
    int32_t up = offer(&k, 2, 42, true, 1100, &ts);
    assert_int_equal(up, (uint16_t)(seq + 1));
    assert_int_equal(ts, last_ts + 67 * 90); /* 1100 - 1033 ms at 90 kHz */
    assert_false(forward_sel_waiting(&k));
    assert_int_equal(offer(&k, 0, 5, false, 1100, NULL), -1);
    uint32_t ts2;
    assert_int_equal(offer(&k, 2, 43, false, 1133, &ts2), (uint16_t)(up + 1));
    assert_int_equal(ts2, ts + 3000); /* f's own spacing from there */
    assert_int_equal(k.switches, 2);
}

/* Going down waits too: f goes on until h's key frame. */
static void test_sel_switch_down_waits_for_keyframe(void **state)
{
    (void)state;
    struct fwd_sel k;
    forward_sel_init(&k, OUT_SSRC, 90000, 2);
    k.target = 2;
    int32_t seq = offer(&k, 2, 0, true, 0, NULL);
    k.target = 1;
    assert_int_equal(offer(&k, 1, 0, false, 10, NULL), -1);
    assert_int_equal(offer(&k, 2, 1, false, 33, NULL), (uint16_t)(seq + 1));
    assert_int_equal(offer(&k, 1, 1, false, 40, NULL), -1);
    assert_int_equal(offer(&k, 2, 2, false, 66, NULL), (uint16_t)(seq + 2));
    assert_int_equal(offer(&k, 1, 2, true, 70, NULL), (uint16_t)(seq + 3));
    assert_int_equal(offer(&k, 2, 3, false, 99, NULL), -1);
    assert_int_equal(offer(&k, 1, 3, false, 100, NULL), (uint16_t)(seq + 4));
}

/* Many switches, every layer's numbers wrapping differently: what the
 * viewer receives counts up by one, never a gap, never a repeat; old
 * packets of the current layer from before its switch are dropped. */
static void test_sel_seq_continuous(void **state)
{
    (void)state;
    struct fwd_sel k;
    forward_sel_init(&k, OUT_SSRC, 90000, 2);
    static const int plan[] = {0, 2, 1, 2, 0, 1, 0, 2, 2, 1};
    int32_t prev = -1;
    uint32_t prev_ts = 0;
    uint64_t now = 0;
    uint16_t idx = 0;
    size_t sent = 0;
    for (size_t p = 0; p < sizeof(plan) / sizeof(plan[0]); p++) {
        k.target = plan[p];
        uint64_t switches = k.switches;
        int32_t switch_idx = -1;
        for (int f = 0; f < 12; f++, idx++, now += 33) {
            for (int n = 0; n < 3; n++) {
                bool key = f == 4 || (n == 0 && f == 0 && p == 0);
                uint32_t ts;
                int32_t s = offer(&k, n, idx, key, now, &ts);
                if (k.switches != switches && switch_idx < 0) switch_idx = idx;
                if (s < 0) continue;
                if (prev >= 0) {
                    assert_int_equal(s, (uint16_t)(prev + 1));
                    assert_true((int32_t)(ts - prev_ts) > 0); /* time goes forward */
                }
                prev = s;
                prev_ts = ts;
                sent++;
            }
        }
        /* a late packet of the new layer from just before its switch */
        if (switch_idx > 0) assert_int_equal(offer(&k, k.current, (uint16_t)(switch_idx - 1), false, now, NULL), -1);
    }
    assert_true(sent >= 100);
}

struct sim {
    struct fwd_stream *layer[3];
    struct fwd_sel k;
};

static struct fwd_stream *find_sim(void *arg, uint32_t ssrc, void **tag)
{
    struct sim *m = arg;
    if (ssrc != m->k.ssrc || m->k.current < 0) return NULL;
    *tag = &m->k;
    return m->layer[m->k.current];
}

static bool map_sim(void *arg, void *tag, uint16_t out_seq, struct fwd_stream **st, uint16_t *seq)
{
    struct sim *m = arg;
    int layer;
    uint32_t ts_off;
    assert_ptr_equal(tag, &m->k);
    if (!forward_sel_lookup(&m->k, out_seq, &layer, seq, &ts_off)) return false;
    *st = m->layer[layer];
    return true;
}

/* Packets go to each layer's cache and through the selector (q, then h
 * from its key frame); the viewer NACKs on its own numbers, across the
 * switch: each maps back to the right layer's cached packet. */
static void test_sel_nack_maps_to_layer(void **state)
{
    (void)state;
    struct sim *m = calloc(1, sizeof(*m));
    for (int i = 0; i < 3; i++) m->layer[i] = stream_new(true, layer_ssrc[i]);
    forward_sel_init(&m->k, OUT_SSRC, 90000, 2);
    m->k.target = 0;
    uint16_t outs[20];
    int out_layer[20];
    uint16_t in_seq[20];
    size_t n_out = 0;
    for (uint16_t i = 0; i < 10; i++) {
        if (i == 5) m->k.target = 1;
        for (int n = 0; n < 2; n++) {
            uint8_t b[200];
            bool key = (n == 0 && i == 0) || (n == 1 && i == 7);
            size_t len = vp8_pkt(b, n, i, key, false);
            struct fwd_rtp h;
            assert_int_equal(forward_rtp_parse(b, len, &h), 0);
            assert_int_equal(forward_stream_receive(m->layer[n], b, len, &h, 100u * i), FWD_FORWARD);
            struct fwd_sel_out o;
            if (!forward_sel_packet(&m->k, n, &h, key, 100u * i, &o)) continue;
            outs[n_out] = o.seq;
            out_layer[n_out] = n;
            in_seq[n_out++] = h.seq;
        }
    }
    assert_int_equal(n_out, 11); /* q 0..7 (its 7 comes before h's key frame 7), h 7..9 */
    assert_int_equal(out_layer[7], 0);
    assert_int_equal(out_layer[8], 1);
    for (size_t i = 0; i < n_out; i++) {
        int layer;
        uint16_t seq;
        uint32_t ts_off;
        assert_true(forward_sel_lookup(&m->k, outs[i], &layer, &seq, &ts_off));
        assert_int_equal(layer, out_layer[i]);
        assert_int_equal(seq, in_seq[i]);
    }
    int layer;
    uint16_t seq;
    uint32_t ts_off;
    assert_false(forward_sel_lookup(&m->k, (uint16_t)(outs[10] + 1), &layer, &seq, &ts_off)); /* not sent yet */

    /* one NACK naming the last two of q and the first two of h */
    uint8_t c[200];
    const uint16_t asked[] = {outs[6], outs[7], outs[8], outs[9]};
    int off = rtcp_build_nack(c, sizeof(c), 0x9999, OUT_SSRC, asked, 4);
    struct fwd_viewer_rtcp *r = malloc(sizeof(*r));
    forward_viewer_rtcp_map(c, (size_t)off, find_sim, map_sim, m, 2000, 1000, r);
    assert_int_equal(r->nacked, 4);
    assert_int_equal(r->n_resend, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_ptr_equal(r->resend[i].st, m->layer[out_layer[6 + i]]);
        assert_int_equal(r->resend[i].seq, in_seq[6 + i]);
        assert_int_equal(r->resend[i].out_seq, outs[6 + i]);
        size_t clen;
        const uint8_t *cp = forward_stream_cached(r->resend[i].st, r->resend[i].seq, &clen);
        struct fwd_rtp h;
        assert_int_equal(forward_rtp_parse(cp, clen, &h), 0);
        assert_int_equal(h.ssrc, layer_ssrc[out_layer[6 + i]]);
    }
    /* a sequence number the viewer was never sent: missed */
    const uint16_t ahead[] = {(uint16_t)(outs[10] + 5)};
    off = rtcp_build_nack(c, sizeof(c), 0x9999, OUT_SSRC, ahead, 1);
    forward_viewer_rtcp_map(c, (size_t)off, find_sim, map_sim, m, 2000, 1000, r);
    assert_int_equal(r->n_resend, 0);
    assert_int_equal(r->missed, 1);
    free(r);
    for (int i = 0; i < 3; i++) stream_del(m->layer[i]);
    free(m);
}

/* Only FWD_SEL_HISTORY runs are remembered: NACKs older than that are not
 * answered. */
static void test_sel_history_bound(void **state)
{
    (void)state;
    struct fwd_sel k;
    forward_sel_init(&k, OUT_SSRC, 90000, 2);
    uint16_t first = 0;
    for (int s = 0; s < FWD_SEL_HISTORY + 2; s++) {
        k.target = s % 2;
        int32_t seq = offer(&k, s % 2, (uint16_t)(s * 2), true, (uint64_t)s * 100, NULL);
        assert_true(seq >= 0);
        if (s == 0) first = (uint16_t)seq;
        assert_true(offer(&k, s % 2, (uint16_t)(s * 2 + 1), false, (uint64_t)s * 100 + 33, NULL) >= 0);
    }
    assert_int_equal(k.n_hist, FWD_SEL_HISTORY);
    int layer;
    uint16_t seq;
    uint32_t ts_off;
    assert_false(forward_sel_lookup(&k, first, &layer, &seq, &ts_off));
    assert_true(forward_sel_lookup(&k, k.last_seq, &layer, &seq, &ts_off));
}

/* A layer's SR reaches the viewer under its SSRC with the RTP time moved
 * as its packets' are; SRs of layers it does not receive do not. */
static void test_sel_sr(void **state)
{
    (void)state;
    struct fwd_sel k;
    forward_sel_init(&k, OUT_SSRC, 90000, 2);
    rtcp_sender_info_t si = {.ntp = 0x0102030405060708ull, .rtp_ts = layer_ts0[1] + 6000, .packet_count = 9};
    uint8_t buf[64];
    assert_int_equal(forward_sel_sr(&k, 1, &si, buf, sizeof(buf)), 0); /* nothing sent yet */
    k.target = 0;
    assert_true(offer(&k, 0, 0, true, 0, NULL) >= 0);
    k.target = 1;
    uint32_t ts;
    assert_true(offer(&k, 1, 2, true, 100, &ts) >= 0); /* h's packet at layer_ts0[1] + 6000 went out as ts */
    assert_int_equal(forward_sel_sr(&k, 0, &si, buf, sizeof(buf)), 0);
    int n = forward_sel_sr(&k, 1, &si, buf, sizeof(buf));
    assert_int_equal(n, 28);
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_report_t r;
    rtcp_iter_init(&it, buf, (size_t)n);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_report(&p, &r), 0);
    assert_int_equal(r.ssrc, OUT_SSRC);
    assert_int_equal(r.si.rtp_ts, ts);
    assert_true(r.si.ntp == si.ntp);
    assert_int_equal(r.report_count, 0);
    assert_true(forward_sel_sr(&k, 1, &si, buf, 8) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtp_parse),
        cmocka_unit_test(test_ext_lookup_both_forms),
        cmocka_unit_test(test_prepare_one_byte),
        cmocka_unit_test(test_prepare_two_byte),
        cmocka_unit_test(test_prepare_stop_and_truncated),
        cmocka_unit_test(test_prepare_mid),
        cmocka_unit_test(test_sink_from_media),
        cmocka_unit_test(test_match_view),
        cmocka_unit_test(test_cache_size),
        cmocka_unit_test(test_gap_nack_bitmask),
        cmocka_unit_test(test_nack_retries),
        cmocka_unit_test(test_nack_bounds),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_want),
        cmocka_unit_test(test_keyframe_rate_limit),
        cmocka_unit_test(test_viewer_rtcp),
        cmocka_unit_test(test_publisher_sr_and_rr),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_set_ssrc),
        cmocka_unit_test(test_keyframe_vp8),
        cmocka_unit_test(test_keyframe_h264),
        cmocka_unit_test(test_layers_learn_ssrc),
        cmocka_unit_test(test_sel_choose),
        cmocka_unit_test(test_sel_lagging_estimate),
        cmocka_unit_test(test_sel_trial),
        cmocka_unit_test(test_sel_starts_at_keyframe),
        cmocka_unit_test(test_sel_switch_up_waits_for_keyframe),
        cmocka_unit_test(test_sel_switch_down_waits_for_keyframe),
        cmocka_unit_test(test_sel_seq_continuous),
        cmocka_unit_test(test_sel_nack_maps_to_layer),
        cmocka_unit_test(test_sel_history_bound),
        cmocka_unit_test(test_sel_sr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
