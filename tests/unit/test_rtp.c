/* test_rtp.c — RTP header parsing, packing, receiver statistics, RFC 4571
 * framing, and the whole media path clip -> PS -> RTP (UDP/TCP) -> PS -> frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clip_testutil.h"
#include "gb/codec/gbid.h"
#include "media/h264.h"
#include "media/ps.h"
#include "media/rtp.h"

static void test_parse(void **state)
{
    (void)state;
    gb_rtp_packet_t p;
    /* V2, M, PT 96, seq 0x1234, ts 0x01020304, ssrc 0x0BEBC201 (decimal 200000001) */
    static const uint8_t min[] = {0x80, 0xE0, 0x12, 0x34, 1, 2, 3, 4, 0x0B, 0xEB, 0xC2, 0x01, 0xAA, 0xBB};
    assert_int_equal(gb_rtp_parse(min, sizeof(min), &p), 0);
    assert_int_equal(p.version, 2);
    assert_true(p.marker);
    assert_false(p.padding);
    assert_false(p.extension);
    assert_int_equal(p.payload_type, 96);
    assert_int_equal(p.seq, 0x1234);
    assert_int_equal(p.timestamp, 0x01020304);
    assert_int_equal(p.ssrc, 200000001u);
    assert_int_equal(p.payload_len, 2);
    assert_ptr_equal(p.payload, min + 12);
    /* Header only: empty payload is fine. */
    assert_int_equal(gb_rtp_parse(min, 12, &p), 0);
    assert_int_equal(p.payload_len, 0);

    /* 2 CSRCs, an extension of 1 word, 3 bytes of padding. */
    static const uint8_t full[] = {0xB2, 0x60, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7,
                                   0, 0, 0, 0x11, 0, 0, 0, 0x22,           /* CSRC */
                                   0xBE, 0xDE, 0x00, 0x01, 1, 2, 3, 4,     /* extension */
                                   0x55, 0x66, 0, 0, 3};                    /* payload + padding */
    assert_int_equal(gb_rtp_parse(full, sizeof(full), &p), 0);
    assert_int_equal(p.csrc_count, 2);
    assert_int_equal(p.csrc[1], 0x22);
    assert_true(p.extension);
    assert_int_equal(p.ext_profile, 0xBEDE);
    assert_int_equal(p.ext_len, 4);
    assert_memory_equal(p.ext_data, "\x01\x02\x03\x04", 4);
    assert_true(p.padding);
    assert_false(p.marker);
    assert_int_equal(p.payload_len, 2);
    assert_memory_equal(p.payload, "\x55\x66", 2);

    /* Refusals: short, version, CSRC/extension/padding beyond the end. */
    assert_int_equal(gb_rtp_parse(min, 11, &p), -1);
    assert_int_equal(gb_rtp_parse(NULL, 0, &p), -1);
    uint8_t v1[sizeof(min)];
    memcpy(v1, min, sizeof(min));
    v1[0] = 0x40;
    assert_int_equal(gb_rtp_parse(v1, sizeof(v1), &p), -1);
    assert_int_equal(gb_rtp_parse(full, 19, &p), -1); /* second CSRC cut */
    assert_int_equal(gb_rtp_parse(full, 23, &p), -1); /* extension header cut */
    assert_int_equal(gb_rtp_parse(full, 27, &p), -1); /* extension data cut */
    uint8_t pad[sizeof(full)];
    memcpy(pad, full, sizeof(full));
    pad[sizeof(pad) - 1] = 0;
    assert_int_equal(gb_rtp_parse(pad, sizeof(pad), &p), -1); /* padding count 0 */
    pad[sizeof(pad) - 1] = 6;
    assert_int_equal(gb_rtp_parse(pad, sizeof(pad), &p), -1); /* padding into the header */
    pad[sizeof(pad) - 1] = 5;
    assert_int_equal(gb_rtp_parse(pad, sizeof(pad), &p), 0); /* exactly the payload */
    assert_int_equal(p.payload_len, 0);
}

typedef struct {
    uint8_t pkts[16][1500];
    size_t len[16];
    size_t count;
    size_t stop_after;
} sink_t;

static int sink(void *arg, const uint8_t *pkt, size_t len)
{
    sink_t *s = arg;
    if (s->count < 16 && len <= 1500) memcpy(s->pkts[s->count], pkt, len), s->len[s->count] = len;
    s->count++;
    return s->stop_after && s->count >= s->stop_after ? 7 : 0;
}

static void test_pack(void **state)
{
    (void)state;
    uint8_t frame[3000];
    for (size_t i = 0; i < sizeof(frame); i++) frame[i] = (uint8_t)i;
    gb_rtp_packer_t pk;
    assert_int_equal(gb_rtp_packer_init(&pk, 200000001u, 96, 65534, false, 0), 0);
    assert_int_equal(pk.max_payload, 1400);
    sink_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    assert_int_equal(gb_rtp_pack_frame(&pk, frame, sizeof(frame), 90000, sink, s), 0);
    assert_int_equal(s->count, 3);
    size_t want_len[3] = {1412, 1412, 212};
    uint16_t want_seq[3] = {65534, 65535, 0};
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        gb_rtp_packet_t p;
        assert_int_equal(s->len[i], want_len[i]);
        assert_int_equal(gb_rtp_parse(s->pkts[i], s->len[i], &p), 0);
        assert_int_equal(p.seq, want_seq[i]);
        assert_int_equal(p.marker, i == 2);
        assert_int_equal(p.timestamp, 90000);
        assert_int_equal(p.ssrc, 200000001u);
        assert_int_equal(p.payload_type, 96);
        assert_memory_equal(p.payload, frame + off, p.payload_len);
        off += p.payload_len;
    }
    assert_int_equal(off, sizeof(frame));
    assert_int_equal(pk.seq, 1);
    assert_int_equal(pk.packets, 3);
    assert_int_equal(pk.bytes, 3036);

    /* TCP: each packet carries its RFC 4571 length. */
    memset(s, 0, sizeof(*s));
    assert_int_equal(gb_rtp_packer_init(&pk, 1, 96, 0, true, 1000), 0);
    assert_int_equal(gb_rtp_pack_frame(&pk, frame, 1500, 3600, sink, s), 0);
    assert_int_equal(s->count, 2);
    assert_int_equal(s->len[0], 2 + 12 + 1000);
    assert_int_equal(s->pkts[0][0] << 8 | s->pkts[0][1], 1012);
    assert_int_equal(s->pkts[1][0] << 8 | s->pkts[1][1], 512);
    assert_int_equal(s->pkts[1][3] & 0x80, 0x80); /* marker on the last */

    /* The callback can stop packing. */
    memset(s, 0, sizeof(*s));
    s->stop_after = 1;
    assert_int_equal(gb_rtp_pack_frame(&pk, frame, 3000, 3600, sink, s), 7);
    assert_int_equal(s->count, 1);
    /* Refusals. */
    assert_int_equal(gb_rtp_pack_frame(&pk, frame, 0, 0, sink, s), -1);
    assert_int_equal(gb_rtp_packer_init(&pk, 1, 96, 0, false, 65535), -1);
    assert_int_equal(gb_rtp_packer_init(&pk, 1, 128, 0, false, 0), -1);
    free(s);
}

static gb_rtp_packet_t pkt(uint16_t seq, uint32_t ssrc)
{
    gb_rtp_packet_t p;
    memset(&p, 0, sizeof(p));
    p.version = 2;
    p.seq = seq;
    p.ssrc = ssrc;
    p.payload_len = 100;
    return p;
}

static void test_stats(void **state)
{
    (void)state;
    gb_rtp_stats_t s;
    gb_rtp_stats_init(&s, true, 200000001u);
    gb_rtp_packet_t p = pkt(65530, 999);
    assert_int_equal(gb_rtp_stats_update(&s, &p), -1);
    assert_int_equal(s.wrong_ssrc, 1);
    assert_int_equal(gb_rtp_stats_expected(&s), 0);
    /* 65530..65535, 0..3 with 65533 and 1 lost: wraps once. */
    uint16_t seqs[] = {65530, 65531, 65532, 65534, 65535, 0, 2, 3};
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        p = pkt(seqs[i], 200000001u);
        assert_int_equal(gb_rtp_stats_update(&s, &p), 0);
    }
    assert_int_equal(s.received, 8);
    assert_int_equal(s.bytes, 800);
    assert_int_equal(gb_rtp_stats_ext_max(&s), 65536 + 3);
    assert_int_equal(gb_rtp_stats_expected(&s), 10);
    assert_int_equal(gb_rtp_stats_lost(&s), 2);
    /* 2 of 10 lost = 51/256. */
    assert_int_equal(gb_rtp_stats_fraction_lost(&s), 51);
    assert_int_equal(gb_rtp_stats_fraction_lost(&s), 0); /* nothing new since */
    /* The late 1 arrives (reordered), then a duplicate of 3: lost goes 1 then 0. */
    p = pkt(1, 200000001u);
    assert_int_equal(gb_rtp_stats_update(&s, &p), 0);
    assert_int_equal(gb_rtp_stats_lost(&s), 1);
    p = pkt(3, 200000001u);
    assert_int_equal(gb_rtp_stats_update(&s, &p), 0);
    assert_int_equal(gb_rtp_stats_lost(&s), 0);
    assert_int_equal(gb_rtp_stats_ext_max(&s), 65536 + 3);
    /* Another SSRC mid-stream is refused. */
    p = pkt(4, 200000002u);
    assert_int_equal(gb_rtp_stats_update(&s, &p), -1);
    assert_int_equal(s.wrong_ssrc, 2);
    /* A jump of 10000: held once, then taken as a restart when 10001 follows. */
    p = pkt(10004, 200000001u);
    assert_int_equal(gb_rtp_stats_update(&s, &p), 1);
    assert_int_equal(gb_rtp_stats_ext_max(&s), 65536 + 3);
    p = pkt(10005, 200000001u);
    assert_int_equal(gb_rtp_stats_update(&s, &p), 0);
    assert_int_equal(s.resets, 1);
    assert_int_equal(gb_rtp_stats_expected(&s), 1);
    assert_int_equal(s.received, 1);
    p = pkt(10006, 200000001u);
    assert_int_equal(gb_rtp_stats_update(&s, &p), 0);
    assert_int_equal(gb_rtp_stats_lost(&s), 0);

    /* Without a configured SSRC, the first packet's is learnt and enforced. */
    gb_rtp_stats_t t;
    gb_rtp_stats_init(&t, false, 0);
    p = pkt(5, 42);
    assert_int_equal(gb_rtp_stats_update(&t, &p), 0);
    p = pkt(6, 43);
    assert_int_equal(gb_rtp_stats_update(&t, &p), -1);
    assert_int_equal(t.ssrc, 42);
}

typedef struct {
    uint8_t data[4][64];
    size_t len[4];
    size_t count;
} got_t;

static int got_packet(void *arg, const uint8_t *p, size_t len)
{
    got_t *g = arg;
    if (g->count < 4 && len <= 64) memcpy(g->data[g->count], p, len), g->len[g->count] = len;
    g->count++;
    return 0;
}

static void test_deframer(void **state)
{
    (void)state;
    /* Three framed packets (the middle one empty) in one stream. */
    static const uint8_t stream[] = {0x00, 0x0E, 0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0xAA, 0xBB,
                                     0x00, 0x00,
                                     0x00, 0x0C, 0x80, 0xE0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 5};
    for (size_t step = 1; step <= sizeof(stream); step++) {
        gb_rtp_deframer_t d;
        gb_rtp_deframer_init(&d);
        got_t g = {0};
        for (size_t off = 0; off < sizeof(stream); off += step) {
            size_t n = sizeof(stream) - off < step ? sizeof(stream) - off : step;
            assert_int_equal(gb_rtp_deframer_feed(&d, stream + off, n, got_packet, &g), 0);
        }
        assert_int_equal(g.count, 2);
        assert_int_equal(g.len[0], 14);
        assert_memory_equal(g.data[0], stream + 2, 14);
        assert_int_equal(g.len[1], 12);
        assert_memory_equal(g.data[1], stream + 20, 12);
        assert_int_equal(d.packets, 2);
        assert_int_equal(d.empty_frames, 1);
        assert_int_equal(d.len, 0);
        gb_rtp_deframer_free(&d);
    }
    /* Lost framing (the peer sends raw RTP without length, or garbage). */
    gb_rtp_deframer_t d;
    gb_rtp_deframer_init(&d);
    got_t g = {0};
    assert_int_equal(gb_rtp_deframer_feed(&d, (const uint8_t *)"\x00\x02\x47\x40", 4, got_packet, &g), -1);
    gb_rtp_deframer_free(&d);
    /* A 64 KiB announced length is buffered, not refused. */
    gb_rtp_deframer_init(&d);
    assert_int_equal(gb_rtp_deframer_feed(&d, (const uint8_t *)"\xFF\xFF\x80", 3, got_packet, &g), 0);
    assert_int_equal(d.len, 3);
    gb_rtp_deframer_free(&d);
}

/* ---- the whole path ---- */

typedef struct {
    gb_rtp_stats_t stats;
    gb_ps_demux_t demux;
    sbuf_t tcp;              /* TCP mode: the byte stream */
    bool tcp_mode;
    const uint8_t *au[64];
    size_t au_len[64];
    size_t frames, mismatches, key_frames, markers;
} path_t;

static void path_frame(void *arg, const gb_ps_frame_t *f)
{
    path_t *p = arg;
    size_t i = p->frames++;
    if (i >= 64 || f->len != p->au_len[i] || memcmp(f->data, p->au[i], f->len) != 0 ||
        f->pts != 3600 * (uint64_t)(i + 1) || f->codec != GB_CODEC_H264)
        p->mismatches++;
    if (f->key) p->key_frames++;
}

/* Receiver side of one RTP packet. */
static int path_receive(void *arg, const uint8_t *pkt, size_t len)
{
    path_t *p = arg;
    gb_rtp_packet_t r;
    if (gb_rtp_parse(pkt, len, &r) != 0) return -1;
    if (gb_rtp_stats_update(&p->stats, &r) != 0) return -1;
    if (r.payload_type != GB_RTP_PT_PS) return -1;
    gb_ps_demux_feed(&p->demux, r.payload, r.payload_len);
    if (r.marker) { /* the frame is complete: no need to wait for the next one */
        p->markers++;
        gb_ps_demux_flush(&p->demux);
    }
    return 0;
}

static int path_send(void *arg, const uint8_t *pkt, size_t len)
{
    path_t *p = arg;
    if (p->tcp_mode) {
        sbuf_append(&p->tcp, pkt, len);
        return 0;
    }
    return path_receive(p, pkt, len);
}

static void run_path(bool tcp)
{
    size_t clip_len;
    uint8_t *clip = read_test_clip(&clip_len);
    assert_non_null(clip);
    path_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->tcp_mode = tcp;
    sbuf_init(&p->tcp);

    /* SSRC from the allocator, as the upper platform puts it in y=. */
    gb_ssrc_alloc_t alloc;
    assert_int_equal(gb_ssrc_alloc_init(&alloc, STR_LIT("3402000000")), 0);
    char y[GB_SSRC_LEN + 1];
    assert_int_equal(gb_ssrc_alloc(&alloc, false, y), 0);
    uint32_t ssrc;
    assert_int_equal(gb_ssrc_to_u32(str_from_cstr(y), &ssrc), 0);

    gb_rtp_stats_init(&p->stats, true, ssrc);
    gb_ps_demux_init(&p->demux, path_frame, p);
    gb_rtp_packer_t pk;
    assert_int_equal(gb_rtp_packer_init(&pk, ssrc, GB_RTP_PT_PS, 65500, tcp, tcp ? 8000 : 0), 0);

    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H264, clip, clip_len);
    gb_au_t au;
    size_t n = 0;
    sbuf_t ps;
    sbuf_init(&ps);
    while (gb_au_reader_next(&r, &au)) {
        p->au[n] = au.data;
        p->au_len[n] = au.len;
        uint64_t pts = 3600 * (uint64_t)(n + 1);
        sbuf_clear(&ps);
        assert_int_equal(gb_ps_mux_frame(&ps, GB_CODEC_H264, au.data, au.len, pts, au.key), 0);
        assert_int_equal(gb_rtp_pack_frame(&pk, (const uint8_t *)ps.data, ps.len, (uint32_t)pts, path_send, p), 0);
        n++;
    }
    if (tcp) { /* the TCP stream arrives in arbitrary chunks */
        gb_rtp_deframer_t d;
        gb_rtp_deframer_init(&d);
        uint32_t rnd = 5;
        for (size_t off = 0; off < p->tcp.len;) {
            rnd = rnd * 1103515245u + 12345u;
            size_t c = 1 + (rnd >> 16) % 4000;
            if (c > p->tcp.len - off) c = p->tcp.len - off;
            assert_int_equal(gb_rtp_deframer_feed(&d, (const uint8_t *)p->tcp.data + off, c, path_receive, p), 0);
            off += c;
        }
        assert_int_equal(d.packets, pk.packets);
        gb_rtp_deframer_free(&d);
    }
    assert_int_equal(n, 50);
    assert_int_equal(p->frames, 50);
    assert_int_equal(p->mismatches, 0);
    assert_int_equal(p->key_frames, 2);
    assert_int_equal(p->markers, 50);
    assert_int_equal(p->stats.received, pk.packets);
    assert_int_equal(gb_rtp_stats_expected(&p->stats), pk.packets);
    assert_int_equal(gb_rtp_stats_lost(&p->stats), 0);
    /* UDP cuts the key frames into several packets; TCP packets hold 8000 bytes. */
    assert_true(tcp ? pk.packets >= 50 : pk.packets > 52);
    /* Sequence numbers started at 65500 and wrapped. */
    assert_true(pk.seq < 1000);
    assert_int_equal(gb_rtp_stats_ext_max(&p->stats), 65536u + pk.seq - 1);
    gb_ps_demux_free(&p->demux);
    sbuf_free(&ps);
    sbuf_free(&p->tcp);
    free(p);
    free(clip);
}

static void test_path_udp(void **state)
{
    (void)state;
    run_path(false);
}

static void test_path_tcp(void **state)
{
    (void)state;
    run_path(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_deframer),
        cmocka_unit_test(test_path_udp),
        cmocka_unit_test(test_path_tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
