/* test_ps.c — MPEG-2 PS muxer and demuxer: layout bytes, round trips through
 * arbitrary cuts, large frames, device quirks, garbage, and ffprobe's view. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clip_testutil.h"
#include "media/flv.h"
#include "media/g711.h"
#include "media/h264.h"
#include "media/ps.h"

#define MAX_FRAMES 64

typedef struct {
    const uint8_t *data[MAX_FRAMES];
    size_t len[MAX_FRAMES];
    bool key[MAX_FRAMES];
    uint64_t pts[MAX_FRAMES];
    size_t count;
} frames_t;

/* The clip's access units, and the clip muxed into a PS (pts from 3600, 40 ms apart). */
static void mux_clip(uint8_t **clip, size_t *clip_len, frames_t *f, sbuf_t *ps)
{
    *clip = read_test_clip(clip_len);
    assert_non_null(*clip);
    memset(f, 0, sizeof(*f));
    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H264, *clip, *clip_len);
    gb_au_t au;
    double fps = gb_h264_frame_rate(*clip, *clip_len, 25.0);
    while (gb_au_reader_next(&r, &au)) {
        assert_true(f->count < MAX_FRAMES);
        uint64_t pts = 3600 + (uint64_t)(f->count * 90000 / fps);
        f->data[f->count] = au.data;
        f->len[f->count] = au.len;
        f->key[f->count] = au.key;
        f->pts[f->count] = pts;
        f->count++;
        assert_int_equal(gb_ps_mux_frame(ps, GB_CODEC_H264, au.data, au.len, pts, au.key), 0);
    }
    assert_int_equal(f->count, 50);
}

typedef struct {
    const frames_t *want;
    size_t got;
    bool all_equal;
    gb_codec_t codec;
    int stream_type;
} check_t;

static void check_frame(void *arg, const gb_ps_frame_t *fr)
{
    check_t *c = arg;
    size_t i = c->got++;
    if (i >= c->want->count || fr->len != c->want->len[i] || memcmp(fr->data, c->want->data[i], fr->len) != 0 ||
        !fr->has_pts || fr->pts != c->want->pts[i] || fr->key != c->want->key[i])
        c->all_equal = false;
    c->codec = fr->codec;
    c->stream_type = fr->stream_type;
}

static void test_crc32(void **state)
{
    (void)state;
    /* CRC-32/MPEG-2 check value. */
    assert_int_equal(gb_ps_crc32((const uint8_t *)"123456789", 9), 0x0376E6E7u);
}

static void test_layout_bytes(void **state)
{
    (void)state;
    static const uint8_t au[] = {0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00};
    sbuf_t ps;
    sbuf_init(&ps);
    /* pts 0x1_2345_6789 (33 bits) on a key frame. */
    uint64_t pts = 0x123456789ull;
    assert_int_equal(gb_ps_mux_frame(&ps, GB_CODEC_H264, au, sizeof(au), pts, true), 0);
    const uint8_t *p = (const uint8_t *)ps.data;
    assert_int_equal(ps.len, 14 + 15 + 20 + 19 + sizeof(au));
    /* Pack header: SCR base bits 32..30 = 100, 29..15, 14..0 with markers. */
    static const uint8_t pack[] = {0x00, 0x00, 0x01, 0xBA,
                                   /* 01, scr[32..30] 100, 1, scr[29..28] 10 */ 0x66,
                                   /* scr[27..20] */ 0x34,
                                   /* scr[19..15] 1 scr[14..13] */ (uint8_t)(((0x123456789ull >> 15) & 0x1F) << 3 | 0x04 | ((0x123456789ull >> 13) & 3)),
                                   (uint8_t)(0x123456789ull >> 5),
                                   (uint8_t)((0x123456789ull & 0x1F) << 3 | 0x04),
                                   0x01,
                                   /* mux rate 25000 = 0x61A8 -> 22 bits + '11' */ 0x01, 0x86, 0xA3, 0xF8};
    assert_memory_equal(p, pack, sizeof(pack));
    assert_int_equal(pack[5], (0x123456789ull >> 20) & 0xFF);
    p += 14;
    assert_memory_equal(p, "\x00\x00\x01\xBB\x00\x09", 6);
    assert_int_equal(p[12], 0xE0); /* the video stream's entry */
    p += 15;
    assert_memory_equal(p, "\x00\x00\x01\xBC\x00\x0E", 6);
    assert_int_equal(p[12], GB_PS_STREAM_TYPE_H264);
    assert_int_equal(p[13], 0xE0);
    /* ISO 13818-1 Annex A: the CRC over the section including it leaves 0. */
    assert_int_equal(gb_ps_crc32(p, 20), 0);
    p += 20;
    /* PES: length 3 + 10 + 8, PTS '0011' and DTS '0001' forms. */
    assert_memory_equal(p, "\x00\x00\x01\xE0\x00\x15\x84\xC0\x0A", 9);
    /* PTS 0x123456789: bits 32..30 = 100 -> 0011 100 1 = 0x39. */
    assert_int_equal(p[9], 0x39);
    assert_int_equal(p[14], 0x19);
    assert_memory_equal(p + 10, p + 15, 4);
    assert_memory_equal(p + 19, au, sizeof(au));

    /* A non-key frame: pack header and PES only. */
    sbuf_clear(&ps);
    assert_int_equal(gb_ps_mux_frame(&ps, GB_CODEC_H265, au, sizeof(au), 90000, false), 0);
    assert_int_equal(ps.len, 14 + 19 + sizeof(au));
    assert_int_equal((uint8_t)ps.data[17], 0xE0);
    /* Refusals. */
    size_t before = ps.len;
    assert_int_equal(gb_ps_mux_frame(&ps, GB_CODEC_UNKNOWN, au, sizeof(au), 0, true), -1);
    assert_int_equal(gb_ps_mux_frame(&ps, GB_CODEC_H264, au, 0, 0, true), -1);
    assert_int_equal(ps.len, before);
    sbuf_free(&ps);
}

static void test_clip_round_trip_any_cut(void **state)
{
    (void)state;
    uint8_t *clip;
    size_t clip_len;
    frames_t f;
    sbuf_t ps;
    sbuf_init(&ps);
    mux_clip(&clip, &clip_len, &f, &ps);
    /* Whole buffer, single bytes, and pseudo-random cuts. */
    for (int mode = 0; mode < 3; mode++) {
        check_t c = {&f, 0, true, GB_CODEC_UNKNOWN, -1};
        gb_ps_demux_t d;
        gb_ps_demux_init(&d, check_frame, &c);
        uint32_t rnd = 12345;
        size_t off = 0;
        while (off < ps.len) {
            size_t n;
            if (mode == 0) n = ps.len;
            else if (mode == 1) n = 1;
            else rnd = rnd * 1103515245u + 12345u, n = 1 + (rnd >> 16) % 3000;
            if (n > ps.len - off) n = ps.len - off;
            assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)ps.data + off, n), 0);
            off += n;
        }
        /* The last frame is complete only once the stream says so. */
        assert_int_equal(c.got, 49);
        gb_ps_demux_flush(&d);
        assert_int_equal(c.got, 50);
        assert_true(c.all_equal);
        assert_int_equal(c.codec, GB_CODEC_H264);
        assert_int_equal(c.stream_type, 0x1B);
        assert_int_equal(d.stats.frames, 50);
        assert_int_equal(d.stats.packs, 50);
        assert_int_equal(d.stats.psms, 2);
        assert_int_equal(d.stats.system_headers, 2);
        assert_int_equal(d.stats.pes_video, 50);
        assert_int_equal(d.stats.resyncs, 0);
        assert_int_equal(d.stats.psm_crc_errors, 0);
        assert_int_equal(d.stats.bytes_in, ps.len);
        gb_ps_demux_free(&d);
    }
    sbuf_free(&ps);
    free(clip);
}

/* Writes ps to a temp file and reads ffprobe's view of its video stream
 * (entries: -show_entries stream=...; stderr: "2>&1" or "2>/dev/null")
 * into out. */
static void ffprobe_ps(const sbuf_t *ps, const char *entries, const char *stderr_to, char *out, size_t cap)
{
    char path[] = "/tmp/cascade_test_ps_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, ps->data, ps->len), (ssize_t)ps->len);
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -count_frames -select_streams v -show_entries stream=%s "
             "-of default=noprint_wrappers=1 %s %s",
             entries, path, stderr_to);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    pclose(p);
    unlink(path);
    print_message("ffprobe: %s", out);
}

static void test_ffprobe_reads_it(void **state)
{
    (void)state;
    if (system("command -v ffprobe >/dev/null 2>&1") != 0) {
        print_message("SKIP: ffprobe not installed, the ffprobe check of the muxed PS is skipped\n");
        skip();
    }
    uint8_t *clip;
    size_t clip_len;
    frames_t f;
    sbuf_t ps;
    sbuf_init(&ps);
    mux_clip(&clip, &clip_len, &f, &ps);
    char out[1024];
    ffprobe_ps(&ps, "codec_name,nb_read_frames,width,height", "2>&1", out, sizeof(out));
    assert_non_null(strstr(out, "codec_name=h264"));
    assert_non_null(strstr(out, "width=320"));
    assert_non_null(strstr(out, "height=240"));
    assert_non_null(strstr(out, "nb_read_frames=50"));
    sbuf_free(&ps);
    free(clip);
}

/* A frame larger than one PES packet (16-bit length) is split; H.265 is typed 0x24. */
static void test_large_frame_split(void **state)
{
    (void)state;
    size_t len = 200000;
    uint8_t *au = malloc(len);
    assert_non_null(au);
    uint32_t rnd = 7;
    for (size_t i = 0; i < len; i++) rnd = rnd * 1103515245u + 12345u, au[i] = (uint8_t)((rnd >> 16) | 0x01);
    memcpy(au, "\x00\x00\x00\x01\x26\x01", 6); /* H.265 IDR_W_RADL */
    sbuf_t ps;
    sbuf_init(&ps);
    assert_int_equal(gb_ps_mux_frame(&ps, GB_CODEC_H265, au, len, 1000, true), 0);
    assert_int_equal(gb_ps_mux_frame(&ps, GB_CODEC_H265, au, 1000, 4600, false), 0);
    /* Walk the PES packets of the first frame. */
    const uint8_t *p = (const uint8_t *)ps.data + 14 + 15 + 20;
    size_t payload = 0, pes = 0;
    while (p[3] == 0xE0) {
        size_t plen = (size_t)p[4] << 8 | p[5];
        assert_true(plen <= 0xFFFF);
        payload += plen - 3 - p[8];
        assert_int_equal(p[7], pes == 0 ? 0xC0 : 0x00); /* PTS/DTS on the first only */
        p += 6 + plen;
        pes++;
    }
    assert_int_equal(pes, 4);
    assert_int_equal(payload, len);
    assert_int_equal(p[3], 0xBA); /* next frame's pack */

    frames_t want = {0};
    want.data[0] = au, want.len[0] = len, want.key[0] = true, want.pts[0] = 1000;
    want.data[1] = au, want.len[1] = 1000, want.key[1] = true, want.pts[1] = 4600;
    want.count = 2;
    check_t c = {&want, 0, true, GB_CODEC_UNKNOWN, -1};
    gb_ps_demux_t d;
    gb_ps_demux_init(&d, check_frame, &c);
    for (size_t off = 0; off < ps.len; off += 1400) {
        size_t n = ps.len - off < 1400 ? ps.len - off : 1400;
        assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)ps.data + off, n), 0);
    }
    gb_ps_demux_flush(&d);
    assert_int_equal(c.got, 2);
    assert_true(c.all_equal);
    assert_int_equal(c.codec, GB_CODEC_H265);
    assert_int_equal(c.stream_type, 0x24);
    assert_int_equal(d.stats.pes_video, 5);
    gb_ps_demux_free(&d);
    sbuf_free(&ps);
    free(au);
}

static void put_pes(sbuf_t *b, uint8_t id, const uint8_t *hdr, size_t hlen, const uint8_t *payload, size_t n)
{
    size_t plen = 3 + hlen + n;
    uint8_t h[9] = {0, 0, 1, id, (uint8_t)(plen >> 8), (uint8_t)plen, 0x80, 0, (uint8_t)hlen};
    if (hlen >= 5 && (hdr[0] & 0xF0) == 0x20) h[7] = 0x80; /* PTS only */
    sbuf_append(b, h, 9);
    sbuf_append(b, hdr, hlen);
    sbuf_append(b, payload, n);
}

typedef struct {
    size_t count;
    size_t len[8];
    uint64_t pts[8];
    bool has_pts[8];
    bool key[8];
    uint8_t first[8];
} collect_t;

static void collect(void *arg, const gb_ps_frame_t *fr)
{
    collect_t *c = arg;
    if (c->count < 8) {
        c->len[c->count] = fr->len;
        c->pts[c->count] = fr->pts;
        c->has_pts[c->count] = fr->has_pts;
        c->key[c->count] = fr->key;
        c->first[c->count] = fr->data[4];
    }
    c->count++;
}

/* What devices send: audio PES, padding, PTS-only headers with stuffing, a
 * frame spread over PES packets with and without a repeated PTS, garbage
 * between packs, no PSM at all. */
static void test_device_quirks(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b);
    static const uint8_t pack[14] = {0, 0, 1, 0xBA, 0x44, 0, 0x04, 0, 0x04, 0x01, 0x01, 0x86, 0xA3, 0xFA};
    /* pts 3600 as PTS-only (0010), plus 3 stuffing bytes in the header */
    uint8_t ts[8] = {0x21, 0x00, 0x01, 0x1C, 0x21, 0xFF, 0xFF, 0xFF};
    static const uint8_t sps[] = {0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1e};
    static const uint8_t idr[] = {0, 0, 0, 1, 0x65, 0x88, 0x80, 0x40};
    static const uint8_t p1[] = {0, 0, 0, 1, 0x41, 0x9A, 0x11};
    static const uint8_t aac[] = {0xFF, 0xF1, 0x50, 0x80};
    sbuf_append(&b, "\x12\x34\x00\x00", 4); /* garbage, including a lone 00 00 */
    sbuf_append(&b, pack, 14);              /* pack_stuffing_length 2 */
    sbuf_append(&b, "\xFF\xFF", 2);
    put_pes(&b, 0xE0, ts, 8, sps, sizeof(sps)); /* SPS with PTS 3600 */
    put_pes(&b, 0xC0, ts, 8, aac, sizeof(aac)); /* audio: not video */
    put_pes(&b, 0xE0, ts, 8, idr, sizeof(idr)); /* same PTS: same frame */
    put_pes(&b, 0xE0, NULL, 0, idr + 4, 4);     /* continuation without PTS */
    sbuf_append(&b, "\x00\x00\x01\xBE\x00\x03\xFF\xFF\xFF", 9); /* padding stream */
    sbuf_append(&b, "\xAB\xCD", 2);                              /* garbage between packs */
    sbuf_append(&b, pack, 14);
    sbuf_append(&b, "\xFF\xFF", 2);
    ts[3] = 0x38, ts[4] = 0x41; /* pts 7200: 7200 >> 7 = 0x38, (7200 << 1 & 0xFE) | 1 = 0x41 */
    put_pes(&b, 0xE0, ts, 5, p1, sizeof(p1));
    sbuf_append(&b, "\x00\x00\x01\xB9", 4); /* program end */

    collect_t c = {0};
    gb_ps_demux_t d;
    gb_ps_demux_init(&d, collect, &c);
    for (size_t i = 0; i < b.len; i++) assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)b.data + i, 1), 0);
    gb_ps_demux_flush(&d);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.len[0], sizeof(sps) + sizeof(idr) + 4);
    assert_true(c.has_pts[0]);
    assert_int_equal(c.pts[0], 3600);
    assert_true(c.key[0]);
    assert_int_equal(c.first[0], 0x67);
    assert_int_equal(c.len[1], sizeof(p1));
    assert_int_equal(c.pts[1], 7200);
    assert_false(c.key[1]);
    assert_int_equal(d.stats.packs, 2);
    assert_int_equal(d.stats.pes_video, 4);
    assert_int_equal(d.stats.pes_other, 2); /* audio + padding */
    assert_int_equal(d.stats.psms, 0);
    assert_true(d.stats.resyncs >= 2);
    assert_int_equal(d.stats.bytes_skipped, 6);
    assert_int_equal(d.codec, GB_CODEC_UNKNOWN); /* no PSM seen */
    gb_ps_demux_free(&d);
    sbuf_free(&b);
}

/* A frame that never ends is cut at GB_PS_MAX_FRAME and dropped, not buffered forever. (One PES
 * cannot itself exceed GB_PS_MAX_FRAME: PES_packet_length is 16 bits; a frame can, over many PES.) */
static void test_oversized_frame_dropped(void **state)
{
    (void)state;
    uint8_t *chunk = calloc(1, 65000);
    assert_non_null(chunk);
    memcpy(chunk, "\x00\x00\x00\x01\x65\x88", 6);
    collect_t c = {0};
    gb_ps_demux_t d;
    gb_ps_demux_init(&d, collect, &c);
    sbuf_t b;
    sbuf_init(&b);
    uint8_t ts[5] = {0x21, 0x00, 0x01, 0x1C, 0x21};
    put_pes(&b, 0xE0, ts, 5, chunk, 65000);
    assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)b.data, b.len), 0);
    sbuf_clear(&b);
    put_pes(&b, 0xE0, NULL, 0, chunk, 65000);
    for (size_t i = 0; i < GB_PS_MAX_FRAME / 65000 + 2; i++)
        assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)b.data, b.len), 0);
    assert_true(d.frame_cap <= GB_PS_MAX_FRAME);
    sbuf_clear(&b);
    ts[3] = 0x38, ts[4] = 0x41;
    put_pes(&b, 0xE0, ts, 5, chunk, 100);
    assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)b.data, b.len), 0);
    gb_ps_demux_flush(&d);
    assert_int_equal(d.stats.frames_dropped, 1);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.len[0], 100);
    gb_ps_demux_free(&d);
    sbuf_free(&b);
    free(chunk);
}

/* Random bytes and mangled PS: no crash, no hang, memory stays bounded. */
static void test_garbage(void **state)
{
    (void)state;
    uint8_t *clip;
    size_t clip_len;
    frames_t f;
    sbuf_t ps;
    sbuf_init(&ps);
    mux_clip(&clip, &clip_len, &f, &ps);
    uint32_t rnd = 99;
    for (int round = 0; round < 20; round++) {
        uint8_t *buf = malloc(ps.len);
        assert_non_null(buf);
        memcpy(buf, ps.data, ps.len);
        for (int k = 0; k < 50; k++) {
            rnd = rnd * 1103515245u + 12345u;
            buf[(rnd >> 8) % ps.len] = (uint8_t)rnd;
        }
        collect_t c = {0};
        gb_ps_demux_t d;
        gb_ps_demux_init(&d, collect, &c);
        for (size_t off = 0; off < ps.len; off += 777)
            assert_int_equal(gb_ps_demux_feed(&d, buf + off, ps.len - off < 777 ? ps.len - off : 777), 0);
        gb_ps_demux_flush(&d);
        assert_true(d.in_len < 70000);
        assert_true(c.count > 0);
        gb_ps_demux_free(&d);
        free(buf);
    }
    sbuf_free(&ps);
    free(clip);
}

/* Garbage before the first pack and between every pack (bytes that hold no
 * start code, and start codes no PS unit has): skipped and counted exactly,
 * and every frame of the clip still comes out whole. */
static void test_garbage_among_packs(void **state)
{
    (void)state;
    uint8_t *clip;
    size_t clip_len;
    frames_t f;
    sbuf_t ps, b;
    sbuf_init(&ps);
    sbuf_init(&b);
    mux_clip(&clip, &clip_len, &f, &ps);
    static const uint8_t junk[][6] = {{0x47, 0x11, 0x00, 0x00, 0x02, 0x7F}, /* a TS-looking byte, a lone 00 00 */
                                      {0x00, 0x00, 0x01, 0x00, 0x12, 0x34}, /* a start code of a slice, not PS */
                                      {0x00, 0x00, 0x01, 0xBA, 0x00, 0xFF}}; /* a pack header of no MPEG version */
    const uint8_t *p = (const uint8_t *)ps.data;
    size_t junk_total = 0, packs = 0;
    for (size_t i = 0; i < ps.len; i++) {
        /* A pack starts at 00 00 01 BA: 0xBA is no H.264 NAL header (its forbidden bit is set). */
        if (i + 4 <= ps.len && !memcmp(p + i, "\x00\x00\x01\xBA", 4)) {
            sbuf_append(&b, junk[packs % 3], 6);
            junk_total += 6;
            packs++;
        }
        sbuf_append_char(&b, (char)p[i]);
    }
    assert_int_equal(packs, f.count);
    check_t c = {.want = &f, .all_equal = true};
    gb_ps_demux_t d;
    gb_ps_demux_init(&d, check_frame, &c);
    for (size_t off = 0; off < b.len; off += 333)
        assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)b.data + off, b.len - off < 333 ? b.len - off : 333), 0);
    gb_ps_demux_flush(&d);
    assert_int_equal(c.got, f.count);
    assert_true(c.all_equal);
    assert_int_equal(d.stats.bytes_skipped, junk_total);
    assert_true(d.stats.resyncs >= packs);
    assert_int_equal(d.stats.packs, f.count);
    gb_ps_demux_free(&d);
    sbuf_free(&b);
    sbuf_free(&ps);
    free(clip);
}

/* A stream with no PSM at all (some devices never send one): the frames come
 * out with the codec unknown, and the FLV output, which then takes them as
 * H.264, packages the clip. */
static void test_no_psm_still_packaged(void **state)
{
    (void)state;
    uint8_t *clip;
    size_t clip_len;
    frames_t f;
    sbuf_t ps, b;
    sbuf_init(&ps);
    sbuf_init(&b);
    mux_clip(&clip, &clip_len, &f, &ps);
    /* Take every PSM (00 00 01 BC, its length in the next two bytes) out. */
    const uint8_t *p = (const uint8_t *)ps.data;
    size_t removed = 0;
    for (size_t i = 0; i < ps.len;) {
        if (i + 6 <= ps.len && !memcmp(p + i, "\x00\x00\x01\xBC", 4)) {
            i += 6 + ((size_t)p[i + 4] << 8 | p[i + 5]);
            removed++;
            continue;
        }
        sbuf_append_char(&b, (char)p[i++]);
    }
    assert_true(removed > 0);
    check_t c = {.want = &f, .all_equal = true};
    gb_ps_demux_t d;
    gb_ps_demux_init(&d, check_frame, &c);
    assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)b.data, b.len), 0);
    gb_ps_demux_flush(&d);
    assert_int_equal(c.got, f.count);
    assert_true(c.all_equal);
    assert_int_equal(c.codec, GB_CODEC_UNKNOWN);
    assert_int_equal(c.stream_type, -1);
    assert_int_equal(d.stats.psms, 0);
    gb_ps_demux_free(&d);

    gb_flv_muxer_t m;
    gb_flv_config_t cfg = {.video = GB_CODEC_H264};
    assert_int_equal(gb_flv_muxer_init(&m, &cfg), 0);
    uint8_t *out = malloc(gb_flv_video_bound(65536));
    assert_non_null(out);
    size_t written = 0;
    for (size_t i = 0; i < f.count; i++) {
        gb_flv_frame_info_t info;
        assert_true(f.len[i] <= 65536);
        assert_int_equal(gb_flv_write_video(&m, f.data[i], f.len[i], f.pts[i], f.pts[i], out,
                                            gb_flv_video_bound(65536), &info), 0);
        if (info.len) written++;
    }
    assert_int_equal(written, f.count);
    assert_true(m.width > 0 && m.height > 0);
    free(out);
    sbuf_free(&b);
    sbuf_free(&ps);
    free(clip);
}

/* An H.265 stream (the PSM says 0x24) whose frames carry SPS and PPS but no
 * VPS: the demuxer hands the frames out (an IRAP is a key frame); the FLV
 * muxer, which needs all three parameter sets for its hvcC, drops and counts
 * every frame instead of writing a sequence header it cannot complete. */
static void test_h265_without_vps(void **state)
{
    (void)state;
    static const uint8_t sps[] = {0, 0, 0, 1, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x00};
    static const uint8_t pps[] = {0, 0, 0, 1, 0x44, 0x01, 0xC1, 0x72, 0xB4, 0x62, 0x40};
    static const uint8_t idr[] = {0, 0, 0, 1, 0x26, 0x01, 0xAF, 0x06, 0xB8, 0x10};  /* IDR_W_RADL (19) */
    static const uint8_t trail[] = {0, 0, 0, 1, 0x02, 0x01, 0xD0, 0x09, 0x7E};      /* TRAIL_R (1) */
    uint8_t key[sizeof(sps) + sizeof(pps) + sizeof(idr)];
    memcpy(key, sps, sizeof(sps));
    memcpy(key + sizeof(sps), pps, sizeof(pps));
    memcpy(key + sizeof(sps) + sizeof(pps), idr, sizeof(idr));
    sbuf_t ps;
    sbuf_init(&ps);
    for (int i = 0; i < 4; i++) {
        bool k = i % 2 == 0;
        assert_int_equal(gb_ps_mux_frame(&ps, GB_CODEC_H265, k ? key : trail, k ? sizeof(key) : sizeof(trail),
                                         3600u * (unsigned)(i + 1), k),
                         0);
    }
    collect_t c = {0};
    gb_ps_demux_t d;
    gb_ps_demux_init(&d, collect, &c);
    for (size_t i = 0; i < ps.len; i += 7)
        assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)ps.data + i, ps.len - i < 7 ? ps.len - i : 7), 0);
    gb_ps_demux_flush(&d);
    assert_int_equal(c.count, 4);
    assert_int_equal(d.codec, GB_CODEC_H265);
    assert_int_equal(d.stream_type, GB_PS_STREAM_TYPE_H265);
    assert_true(c.key[0]);
    assert_false(c.key[1]);
    assert_true(c.key[2]);
    assert_int_equal(c.len[0], sizeof(key));

    gb_flv_muxer_t m;
    gb_flv_config_t cfg = {.video = GB_CODEC_H265};
    assert_int_equal(gb_flv_muxer_init(&m, &cfg), 0);
    size_t cap = gb_flv_video_bound(sizeof(key));
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    for (int i = 0; i < 4; i++) {
        bool k = i % 2 == 0;
        gb_flv_frame_info_t info;
        assert_int_equal(gb_flv_write_video(&m, k ? key : trail, k ? sizeof(key) : sizeof(trail), 3600, 3600, out,
                                            cap, &info),
                         0);
        assert_int_equal(info.len, 0);
    }
    assert_int_equal(m.stats.frames_no_params, 4);
    assert_false(m.have_seq);
    free(out);
    gb_ps_demux_free(&d);
    sbuf_free(&ps);
}

/* ---- audio (G.711 as GB cameras send it) ---- */

typedef struct {
    size_t count, bad;
    int stream_type;
    uint64_t pts[MAX_FRAMES];
} audio_t;

/* The tone block that goes with frame i (320 samples = 40 ms). */
static void tone_block(uint8_t out[320], size_t i) { gb_g711_tone(out, 320, i * 320, 440.0, 8000, 0); }

/* The clip muxed with a PSM that lists A-law audio, each frame followed by
 * its audio pack at the frame's PTS. */
static void mux_clip_av(uint8_t **clip, size_t *clip_len, frames_t *f, sbuf_t *ps)
{
    *clip = read_test_clip(clip_len);
    assert_non_null(*clip);
    memset(f, 0, sizeof(*f));
    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H264, *clip, *clip_len);
    gb_au_t au;
    while (gb_au_reader_next(&r, &au)) {
        assert_true(f->count < MAX_FRAMES);
        uint64_t pts = 3600 + f->count * 3600;
        f->data[f->count] = au.data;
        f->len[f->count] = au.len;
        f->key[f->count] = au.key;
        f->pts[f->count] = pts;
        assert_int_equal(gb_ps_mux_frame_av(ps, GB_CODEC_H264, GB_PS_STREAM_TYPE_PCMA, au.data, au.len, pts, au.key), 0);
        uint8_t tone[320];
        tone_block(tone, f->count);
        assert_int_equal(gb_ps_mux_audio(ps, tone, sizeof(tone), pts), 0);
        f->count++;
    }
}

static void check_audio(void *arg, const gb_ps_audio_t *a)
{
    audio_t *c = arg;
    uint8_t want[320];
    tone_block(want, c->count);
    if (c->count >= MAX_FRAMES || a->len != 320 || memcmp(a->data, want, 320) != 0 || !a->has_pts) c->bad++;
    else c->pts[c->count] = a->pts;
    c->stream_type = a->stream_type;
    c->count++;
}

typedef struct {
    check_t video;
    int audio_type_on_frames;
} av_check_t;

static void check_frame_av(void *arg, const gb_ps_frame_t *fr)
{
    av_check_t *c = arg;
    check_frame(&c->video, fr);
    if (fr->audio_stream_type != GB_PS_STREAM_TYPE_PCMA) c->audio_type_on_frames = fr->audio_stream_type;
}

/* Audio PES come out whole with their PTS, however the input is cut; the
 * video frames are the same as without audio. */
static void test_audio_round_trip_any_cut(void **state)
{
    (void)state;
    uint8_t *clip;
    size_t clip_len;
    frames_t f;
    sbuf_t ps;
    sbuf_init(&ps);
    mux_clip_av(&clip, &clip_len, &f, &ps);
    for (int mode = 0; mode < 3; mode++) {
        av_check_t c = {{&f, 0, true, GB_CODEC_UNKNOWN, -1}, GB_PS_STREAM_TYPE_PCMA};
        audio_t a = {0};
        gb_ps_demux_t d;
        gb_ps_demux_init(&d, check_frame_av, &c);
        gb_ps_demux_set_audio_cb(&d, check_audio, &a);
        uint32_t rnd = 777;
        for (size_t off = 0, n; off < ps.len; off += n) {
            if (mode == 0) n = ps.len;
            else if (mode == 1) n = 1;
            else rnd = rnd * 1103515245u + 12345u, n = 1 + (rnd >> 16) % 2000;
            if (n > ps.len - off) n = ps.len - off;
            assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)ps.data + off, n), 0);
        }
        gb_ps_demux_flush(&d);
        assert_int_equal(c.video.got, 50);
        assert_true(c.video.all_equal);
        assert_int_equal(c.audio_type_on_frames, GB_PS_STREAM_TYPE_PCMA);
        assert_int_equal(a.count, 50);
        assert_int_equal(a.bad, 0);
        assert_int_equal(a.stream_type, GB_PS_STREAM_TYPE_PCMA);
        for (size_t i = 0; i < 50; i++) assert_int_equal(a.pts[i], f.pts[i]);
        assert_int_equal(d.stats.pes_audio, 50);
        assert_int_equal(d.stats.pes_other, 0);
        assert_int_equal(d.stats.packs, 100);
        assert_int_equal(d.stats.psm_crc_errors, 0);
        gb_ps_demux_free(&d);
    }
    sbuf_free(&ps);
    free(clip);
}

/* The system header gains an audio entry, the PSM a second elementary
 * stream (0x91 -> 0xC0), its CRC still right; the audio PES carries a PTS
 * alone (ISO/IEC 13818-1 §2.5.3.5, §2.5.4.1, §2.4.3.7). */
static void test_audio_layout_bytes(void **state)
{
    (void)state;
    const uint8_t au[] = {0, 0, 0, 1, 0x65, 0x88, 0x84};
    sbuf_t ps;
    sbuf_init(&ps);
    assert_int_equal(gb_ps_mux_frame_av(&ps, GB_CODEC_H264, GB_PS_STREAM_TYPE_PCMU, au, sizeof(au), 90000, true), 0);
    const uint8_t *p = (const uint8_t *)ps.data;
    const uint8_t *sys = p + 14, *psm = sys + 18;
    assert_memory_equal(sys, "\x00\x00\x01\xBB\x00\x0C", 6);
    assert_int_equal(sys[9] >> 2, 1); /* audio_bound */
    assert_memory_equal(sys + 15, "\xC0\xC0\x20", 3);
    assert_memory_equal(psm, "\x00\x00\x01\xBC\x00\x12", 6);
    assert_memory_equal(psm + 10, "\x00\x08\x1B\xE0\x00\x00\x91\xC0\x00\x00", 10);
    assert_int_equal(gb_ps_crc32(psm, 24), 0); /* a CRC over data and CRC leaves 0 */
    assert_int_equal(psm[24 + 3], 0xE0);
    size_t video_end = ps.len;
    const uint8_t samples[160] = {0xD5};
    assert_int_equal(gb_ps_mux_audio(&ps, samples, sizeof(samples), 90000 + 1800), 0);
    const uint8_t *a = (const uint8_t *)ps.data + video_end + 14;
    assert_int_equal(ps.len, video_end + 14 + 14 + 160);
    assert_memory_equal(a, "\x00\x00\x01\xC0\x00\xA8\x84\x80\x05", 9); /* length 3 + 5 + 160 */
    assert_int_equal(a[9] >> 4, 2);                                   /* '0010': PTS only */
    assert_int_equal(gb_ps_mux_audio(&ps, samples, 0, 0), -1);
    assert_int_equal(gb_ps_mux_audio(&ps, NULL, 10, 0), -1);
    sbuf_free(&ps);
}

static void count_audio(void *arg, const gb_ps_audio_t *a)
{
    (void)a;
    (*(int *)arg)++;
}

/* An audio PES the PSM does not list says nothing of its codec: counted,
 * not handed up. A listed one without a callback is only counted. */
static void test_audio_needs_a_psm_entry(void **state)
{
    (void)state;
    const uint8_t au[] = {0, 0, 0, 1, 0x65, 0x88, 0x84};
    const uint8_t samples[320] = {0x55};
    sbuf_t ps;
    sbuf_init(&ps);
    assert_int_equal(gb_ps_mux_frame(&ps, GB_CODEC_H264, au, sizeof(au), 3600, true), 0);
    assert_int_equal(gb_ps_mux_audio(&ps, samples, sizeof(samples), 3600), 0);
    int got = 0;
    gb_ps_demux_t d;
    gb_ps_demux_init(&d, NULL, NULL);
    gb_ps_demux_set_audio_cb(&d, count_audio, &got);
    assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)ps.data, ps.len), 0);
    assert_int_equal(got, 0);
    assert_int_equal(d.stats.pes_other, 1);
    assert_int_equal(d.stats.pes_audio, 0);
    gb_ps_demux_free(&d);

    sbuf_clear(&ps);
    assert_int_equal(gb_ps_mux_frame_av(&ps, GB_CODEC_H264, GB_PS_STREAM_TYPE_PCMA, au, sizeof(au), 3600, true), 0);
    assert_int_equal(gb_ps_mux_audio(&ps, samples, sizeof(samples), 3600), 0);
    gb_ps_demux_init(&d, NULL, NULL);
    assert_int_equal(gb_ps_demux_feed(&d, (const uint8_t *)ps.data, ps.len), 0);
    assert_int_equal(d.stats.pes_audio, 1);
    assert_int_equal(d.audio_stream_type, GB_PS_STREAM_TYPE_PCMA);
    gb_ps_demux_free(&d);
    sbuf_free(&ps);
}

/* ffmpeg's PS demuxer does not map stream type 0x90 (it takes any 0xC0
 * PES for MPEG audio), so the audio is checked with a real player on
 * live.flv (tests/peers/test_gb_live.sh); here: a PS with audio packs still
 * gives ffprobe all 50 frames of the video. */
static void test_ffprobe_reads_video_beside_audio(void **state)
{
    (void)state;
    if (system("command -v ffprobe >/dev/null 2>&1") != 0) {
        print_message("SKIP: ffprobe not installed, the ffprobe check of PS with audio is skipped\n");
        skip();
    }
    uint8_t *clip;
    size_t clip_len;
    frames_t f;
    sbuf_t ps;
    sbuf_init(&ps);
    mux_clip_av(&clip, &clip_len, &f, &ps);
    char out[1024];
    ffprobe_ps(&ps, "codec_name,nb_read_frames", "2>/dev/null", out, sizeof(out));
    assert_non_null(strstr(out, "codec_name=h264"));
    assert_non_null(strstr(out, "nb_read_frames=50"));
    sbuf_free(&ps);
    free(clip);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_layout_bytes),
        cmocka_unit_test(test_clip_round_trip_any_cut),
        cmocka_unit_test(test_ffprobe_reads_it),
        cmocka_unit_test(test_large_frame_split),
        cmocka_unit_test(test_device_quirks),
        cmocka_unit_test(test_oversized_frame_dropped),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_garbage_among_packs),
        cmocka_unit_test(test_no_psm_still_packaged),
        cmocka_unit_test(test_h265_without_vps),
        cmocka_unit_test(test_audio_round_trip_any_cut),
        cmocka_unit_test(test_audio_layout_bytes),
        cmocka_unit_test(test_audio_needs_a_psm_entry),
        cmocka_unit_test(test_ffprobe_reads_video_beside_audio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
