/* fuzz_hls.c — libFuzzer target for the HLS segmenter.
 *
 * Input: byte 0 configures (target, ring, codec, TS or fMP4); then records of [len:2]
 * [pts step:2][flags:1] and len bytes of access unit. Flags: key frame, a
 * PTS leap, take a reference on the newest segment, drop the held one. After
 * every frame: the ring stays within its size and the byte cap, every
 * segment starts with PAT/PMT and a key frame, sequence numbers are
 * contiguous, the playlist lists exactly the ring, and a held segment keeps
 * its bytes through rotation. In fMP4 mode a segment is one moof + mdat whose
 * sizes add up, and the init segment is ftyp + moov. The whole input is also
 * tried as a key frame for the fMP4 init segment builder (SPS parsers). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media/fmp4.h"
#include "media/hls.h"
#include "media/mpegts.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

#define CAP (64u << 10)

static uint32_t sum(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Boxes that tile the buffer exactly, with the given types in order. */
static void check_boxes(const uint8_t *p, size_t len, const char *t1, const char *t2)
{
    CHECK(len >= 16 && memcmp(p + 4, t1, 4) == 0);
    uint32_t a = be32(p);
    CHECK(a >= 8 && a <= len - 8 && memcmp(p + a + 4, t2, 4) == 0 && a + be32(p + a) == len);
}

static void check_segment(const gb_hls_segment_t *s, bool fmp4)
{
    CHECK(s->len <= CAP);
    if (fmp4) {
        check_boxes(s->data, s->len, "moof", "mdat");
        CHECK(be32(s->data + 20) == (uint32_t)(s->seq + 1));
        CHECK(be32(s->data + 8 + 16 + 8 + 16 + 20 + 20 + 8) == 0x02000000); /* first sample is a sync sample */
        return;
    }
    CHECK(s->len % GB_TS_PACKET_SIZE == 0);
    CHECK(s->len >= 3 * GB_TS_PACKET_SIZE && s->data[1] == 0x40 && s->data[2] == 0x00);
    const uint8_t *v = s->data + 2 * GB_TS_PACKET_SIZE;
    CHECK(v[1] == 0x41 && v[2] == 0x00 && (v[5] & 0x40)); /* a key frame opens it */
}

static void check_ring(gb_hls_t *h, unsigned ring, bool fmp4)
{
    uint64_t first, last;
    sbuf_t pl;
    sbuf_init(&pl);
    int listed = gb_hls_playlist(h, &pl);
    if (!gb_hls_seq_range(h, &first, &last)) {
        CHECK(listed == 0 && pl.len == 0);
        sbuf_free(&pl);
        return;
    }
    CHECK(last >= first && last - first < ring && listed == (int)(last - first + 1));
    sbuf_append_char(&pl, '\0');
    char want[64];
    snprintf(want, sizeof(want), "#EXT-X-MEDIA-SEQUENCE:%llu\n", (unsigned long long)first);
    CHECK(strstr(pl.data, want) != NULL);
    snprintf(want, sizeof(want), "\nseg%llu.%s\n", (unsigned long long)last, fmp4 ? "m4s" : "ts");
    CHECK(strstr(pl.data, want) != NULL);
    for (uint64_t q = first; q <= last; q++) {
        gb_hls_segment_t *s = gb_hls_segment_ref(h, q);
        CHECK(s && s->seq == q);
        check_segment(s, fmp4);
        CHECK(s->duration / 90 <= 120000 + 6000); /* caps: 30 s plus one frame step */
        uint64_t seq;
        snprintf(want, sizeof(want), "seg%llu.%s", (unsigned long long)q, fmp4 ? "m4s" : "ts");
        CHECK(gb_hls_parse_uri(h, want, strlen(want), &seq) && seq == q);
        gb_hls_segment_unref(s);
    }
    CHECK(gb_hls_segment_ref(h, last + 1) == NULL);
    if (first) CHECK(gb_hls_segment_ref(h, first - 1) == NULL);
    gb_hls_segment_t *init = gb_hls_init_ref(h);
    CHECK(fmp4 == (init != NULL));
    if (init) check_boxes(init->data, init->len, "ftyp", "moov"), gb_hls_segment_unref(init);
    sbuf_free(&pl);
}

static void fuzz_init_segment(const uint8_t *data, size_t size)
{
    for (int c = 0; c < 2; c++) {
        sbuf_t b;
        sbuf_init(&b);
        gb_fmp4_video_t v;
        if (gb_fmp4_init_segment(&b, c ? GB_CODEC_H265 : GB_CODEC_H264, data, size, &v) == 0) {
            check_boxes((const uint8_t *)b.data, b.len, "ftyp", "moov");
            CHECK(v.width > 0 && v.height > 0);
        } else {
            CHECK(b.len == 0);
        }
        sbuf_free(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fuzz_init_segment(data + 1, size - 1);
    bool fmp4 = data[0] & 8;
    unsigned ring = 3 + (data[0] & 3);
    gb_hls_cfg_t cfg = {.codec = (data[0] & 4) ? GB_CODEC_H265 : GB_CODEC_H264,
                        .format = fmp4 ? GB_HLS_FMP4 : GB_HLS_TS,
                        .target_ms = 100u * (1 + (data[0] >> 4)),
                        .ring = ring,
                        .max_segment_bytes = CAP,
                        .max_segment_ms = 2000,
                        .uri_prefix = "seg"};
    gb_hls_t *h = gb_hls_new(&cfg);
    CHECK(h != NULL);
    gb_hls_segment_t *held = NULL;
    uint32_t held_sum = 0;
    uint64_t pts = 0;
    size_t pos = 1;
    while (size - pos >= 5) {
        size_t len = ((size_t)data[pos] << 8 | data[pos + 1]) % (CAP / 2);
        uint64_t step = (uint64_t)data[pos + 2] << 8 | data[pos + 3];
        uint8_t flags = data[pos + 4];
        pos += 5;
        if (len > size - pos) len = size - pos;
        pts += (flags & 2) ? step << 16 : step;
        int rc = gb_hls_push(h, data + pos, len, pts, flags & 1);
        pos += len;
        CHECK(len == 0 ? rc < 0 : (rc >= 0 && rc <= GB_HLS_CUT));
        if (held) CHECK(sum(held->data, held->len) == held_sum);
        if ((flags & 4) && !held) {
            uint64_t first, last;
            if (gb_hls_seq_range(h, &first, &last)) {
                held = gb_hls_segment_ref(h, last);
                CHECK(held != NULL);
                held_sum = sum(held->data, held->len);
            }
        }
        if ((flags & 8) && held) gb_hls_segment_unref(held), held = NULL;
        check_ring(h, ring, fmp4);
    }
    const gb_hls_stats_t *st = gb_hls_stats(h);
    CHECK(st->frames_muxed + st->frames_waiting_key + st->frames_too_big <= st->frames_in);
    gb_hls_free(h);
    if (held) {
        CHECK(sum(held->data, held->len) == held_sum);
        gb_hls_segment_unref(held);
    }
    return 0;
}
