/* test_h264.c — Annex B NAL/access-unit reader, key frames, SPS frame rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clip_testutil.h"
#include "media/h264.h"

static void test_clip_access_units(void **state)
{
    (void)state;
    size_t len;
    uint8_t *clip = read_test_clip(&len);
    assert_non_null(clip);
    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H264, clip, len);
    gb_au_t au;
    unsigned frames = 0, keys = 0;
    const uint8_t *expect = clip;
    while (gb_au_reader_next(&r, &au)) {
        /* Access units tile the file: each starts where the previous ended. */
        assert_ptr_equal(au.data, expect);
        expect = au.data + au.len;
        assert_int_equal(au.vcl_count, 1);
        if (au.key) {
            assert_true(frames == 0 || frames == 25); /* -g 25 */
            keys++;
        }
        if (frames == 0) {
            /* SPS, PPS, SEI, IDR, with a 4-byte start code in front. */
            assert_int_equal(au.nal_count, 4);
            assert_memory_equal(au.data, "\x00\x00\x00\x01\x67", 5);
        }
        frames++;
    }
    assert_int_equal(frames, 50);
    assert_int_equal(keys, 2);
    assert_ptr_equal(expect, clip + len);
    assert_true(gb_annexb_has_key(GB_CODEC_H264, clip, len));

    /* Frame rate from the SPS VUI: num_units_in_tick 1, time_scale 50. */
    double fps = gb_h264_frame_rate(clip, len, 12.5);
    assert_true(fps > 24.999 && fps < 25.001);
    size_t pos = 0;
    gb_nal_t n;
    assert_true(gb_nal_next(clip, len, &pos, &n));
    assert_int_equal(gb_h264_nal_type(&n), GB_H264_NAL_SPS);
    gb_h264_sps_t sps;
    assert_int_equal(gb_h264_parse_sps(n.data, n.len, &sps), 0);
    assert_int_equal(sps.profile_idc, 66);
    assert_int_equal(sps.width, 320);
    assert_int_equal(sps.height, 240);
    assert_true(sps.has_timing);
    assert_int_equal(sps.num_units_in_tick, 1);
    assert_int_equal(sps.time_scale, 50);
    free(clip);
}

static void test_nal_splitting(void **state)
{
    (void)state;
    /* junk, 4-byte start, an empty NAL, 3-byte start, trailing zeros. */
    static const uint8_t buf[] = {0xFF, 0x12, 0x00, 0x00, 0x00, 0x01, 0x09, 0xF0, 0x00, 0x00, 0x01,
                                  0x00, 0x00, 0x01, 0x65, 0x88, 0x00, 0x00, 0x02, 0x01, 0x00, 0x00,
                                  0x01, 0x41, 0x9A, 0x00, 0x00, 0x00};
    size_t pos = 0;
    gb_nal_t n;
    assert_true(gb_nal_next(buf, sizeof(buf), &pos, &n));
    assert_int_equal(gb_h264_nal_type(&n), GB_H264_NAL_AUD);
    assert_int_equal(n.len, 2);
    assert_ptr_equal(n.start, buf + 2); /* junk before the first start code is skipped, then */
    assert_true(gb_nal_next(buf, sizeof(buf), &pos, &n));
    /* the empty NAL (00 00 01 directly followed by 00 00 01) is skipped */
    assert_int_equal(gb_h264_nal_type(&n), GB_H264_NAL_IDR);
    /* 00 00 02 is not a start code: it stays inside the NAL */
    assert_int_equal(n.len, 6);
    assert_memory_equal(n.data, "\x65\x88\x00\x00\x02\x01", 6);
    assert_true(gb_nal_next(buf, sizeof(buf), &pos, &n));
    assert_int_equal(gb_h264_nal_type(&n), GB_H264_NAL_SLICE);
    assert_int_equal(n.len, 2); /* trailing zero bytes dropped */
    assert_false(gb_nal_next(buf, sizeof(buf), &pos, &n));
    assert_int_equal(pos, sizeof(buf));
    assert_false(gb_nal_next(buf, 0, &pos, &n));
    pos = 0;
    assert_false(gb_nal_next((const uint8_t *)"\x00\x00", 2, &pos, &n));
    pos = 0;
    assert_false(gb_nal_next((const uint8_t *)"\x00\x00\x01", 3, &pos, &n));
}

static void test_multi_slice_and_aud(void **state)
{
    (void)state;
    /* Picture 1: AUD, IDR slice first_mb 0 (0x88 = '1...'), IDR slice first_mb 1
     * (0x40 = '010' -> ue 1). Picture 2: non-IDR slice first_mb 0, then its
     * second slice. Picture 3: a slice first_mb 0 with no AUD. */
    static const uint8_t buf[] = {
        0, 0, 0, 1, 0x09, 0xF0,                 /* AUD */
        0, 0, 1, 0x65, 0x88, 0x11,              /* IDR, first_mb_in_slice 0 */
        0, 0, 1, 0x65, 0x40, 0x22,              /* IDR, first_mb_in_slice 1 */
        0, 0, 1, 0x09, 0xF0,                    /* AUD */
        0, 0, 1, 0x41, 0x9A, 0x33,              /* P, first_mb 0 */
        0, 0, 1, 0x41, 0x40, 0x44,              /* P, first_mb 1 */
        0, 0, 1, 0x41, 0x88, 0x55,              /* P, first_mb 0: new picture */
        0, 0, 1, 0x0C, 0xFF, 0xFF, 0x80,        /* filler data stays with it */
    };
    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H264, buf, sizeof(buf));
    gb_au_t au;
    assert_true(gb_au_reader_next(&r, &au));
    assert_true(au.key);
    assert_int_equal(au.nal_count, 3);
    assert_int_equal(au.vcl_count, 2);
    assert_int_equal(au.len, 18);
    assert_true(gb_au_reader_next(&r, &au));
    assert_false(au.key);
    assert_int_equal(au.nal_count, 3);
    assert_int_equal(au.vcl_count, 2);
    assert_true(gb_au_reader_next(&r, &au));
    assert_false(au.key);
    assert_int_equal(au.nal_count, 2);
    assert_int_equal(au.vcl_count, 1);
    assert_ptr_equal(au.data + au.len, buf + sizeof(buf));
    assert_false(gb_au_reader_next(&r, &au));
    assert_false(gb_annexb_has_key(GB_CODEC_H264, buf + 18, sizeof(buf) - 18));
}

static void test_h265(void **state)
{
    (void)state;
    /* H.265 NAL header is 2 bytes: type = (b0 >> 1) & 0x3f. VPS 32 (0x40 0x01),
     * SPS 33 (0x42 0x01), PPS 34 (0x44 0x01), IDR_W_RADL 19 (0x26 0x01), TRAIL_R
     * 1 (0x02 0x01), CRA 21 (0x2A 0x01). The slice's first bit is
     * first_slice_segment_in_pic_flag. */
    static const uint8_t buf[] = {
        0, 0, 0, 1, 0x40, 0x01, 0x0C, 0, 0, 1, 0x42, 0x01, 0x01, 0, 0, 1, 0x44, 0x01, 0xC1,
        0, 0, 1, 0x26, 0x01, 0xAF, 0x11, /* IDR, first slice */
        0, 0, 1, 0x26, 0x01, 0x2F, 0x22, /* IDR, second slice segment */
        0, 0, 1, 0x02, 0x01, 0xD0, 0x33, /* TRAIL_R, first slice */
        0, 0, 1, 0x2A, 0x01, 0x80, 0x44, /* CRA: IRAP */
    };
    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H265, buf, sizeof(buf));
    gb_au_t au;
    assert_true(gb_au_reader_next(&r, &au));
    assert_true(au.key);
    assert_int_equal(au.nal_count, 5);
    assert_int_equal(au.vcl_count, 2);
    assert_true(gb_au_reader_next(&r, &au));
    assert_false(au.key);
    assert_int_equal(au.nal_count, 1);
    assert_true(gb_au_reader_next(&r, &au));
    assert_true(au.key);
    assert_false(gb_au_reader_next(&r, &au));
    gb_nal_t n = {.data = (const uint8_t *)"\x26\x01", .len = 2};
    assert_int_equal(gb_h265_nal_type(&n), 19);
    assert_true(gb_nal_is_key(GB_CODEC_H265, &n));
    assert_true(gb_nal_is_vcl(GB_CODEC_H265, &n));
    assert_false(gb_nal_is_key(GB_CODEC_H264, &n)); /* as H.264 this is type 6, SEI */
    assert_string_equal(gb_codec_name(GB_CODEC_H265), "h265");
    assert_string_equal(gb_codec_name(GB_CODEC_UNKNOWN), "unknown");
}

static void hex_to_bytes(const char *hex, uint8_t *out, size_t *len)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    *len = n;
}

/* SPSs written by x264 (ffmpeg 5.1), with what ffprobe reports for them. */
static void test_sps_from_x264(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        int profile, width, height;
        double fps;
    } cases[] = {
        /* High, 1280x720, 30000/1001 */
        {"6764001facd9405005bb011000003e90000ea600f1831960", 100, 1280, 720, 30000.0 / 1001},
        /* High, interlaced (frame_mbs_only 0) 720x576, 25 */
        {"6764001eacd940b424d8088000000300800000190f8a14cb", 100, 720, 576, 25.0},
        /* High 4:4:4, 176x144, 15 (chroma_format_idc 3) */
        {"67f4000a919b28589d8088000003000800000300f078912cb0", 244, 176, 144, 15.0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t nal[64];
        size_t len;
        hex_to_bytes(cases[i].hex, nal, &len);
        gb_h264_sps_t s;
        assert_int_equal(gb_h264_parse_sps(nal, len, &s), 0);
        assert_int_equal(s.profile_idc, cases[i].profile);
        assert_int_equal(s.width, cases[i].width);
        assert_int_equal(s.height, cases[i].height);
        assert_true(s.has_timing);
        assert_true(s.fps > cases[i].fps - 0.001 && s.fps < cases[i].fps + 0.001);
    }
}

/* ---- a hand-made SPS exercising scaling lists, cropping and VUI fields ---- */

typedef struct {
    uint8_t buf[128];
    size_t bits;
} bitwriter_t;

static void bw_bits(bitwriter_t *w, uint32_t v, unsigned n)
{
    for (unsigned i = n; i-- > 0; w->bits++)
        if ((v >> i) & 1) w->buf[w->bits / 8] |= (uint8_t)(0x80 >> (w->bits % 8));
}
static void bw_ue(bitwriter_t *w, uint32_t v)
{
    uint32_t x = v + 1;
    unsigned len = 0;
    while ((x >> len) > 1) len++;
    bw_bits(w, 0, len);
    bw_bits(w, x, len + 1);
}
static void bw_se(bitwriter_t *w, int32_t v) { bw_ue(w, v > 0 ? (uint32_t)(2 * v - 1) : (uint32_t)(-2 * v)); }

/* Adds emulation prevention bytes (H.264 §7.4.1). */
static size_t to_ebsp(const uint8_t *rbsp, size_t n, uint8_t *out)
{
    size_t o = 0;
    unsigned zeros = 0;
    for (size_t i = 0; i < n; i++) {
        if (zeros == 2 && rbsp[i] <= 3) out[o++] = 3, zeros = 0;
        out[o++] = rbsp[i];
        zeros = rbsp[i] == 0 ? zeros + 1 : 0;
    }
    return o;
}

static void test_sps_hand_made(void **state)
{
    (void)state;
    bitwriter_t w;
    memset(&w, 0, sizeof(w));
    bw_bits(&w, 0x67, 8);  /* NAL header */
    bw_bits(&w, 100, 8);   /* profile_idc High */
    bw_bits(&w, 0, 8);     /* constraints */
    bw_bits(&w, 40, 8);    /* level 4.0 */
    bw_ue(&w, 0);          /* sps id */
    bw_ue(&w, 1);          /* chroma_format_idc 4:2:0 */
    bw_ue(&w, 0);          /* bit depth luma - 8 */
    bw_ue(&w, 0);          /* bit depth chroma - 8 */
    bw_bits(&w, 0, 1);     /* qpprime */
    bw_bits(&w, 1, 1);     /* seq_scaling_matrix_present_flag */
    bw_bits(&w, 1, 1);     /* list 0 present: deltas 8, then 0 -> nextScale 0 ends it */
    bw_se(&w, 8);
    bw_se(&w, -16);
    for (int i = 1; i < 6; i++) bw_bits(&w, 0, 1);
    bw_bits(&w, 1, 1); /* list 6 (8x8) present: 64 deltas of 0 (flat 8) */
    for (int i = 0; i < 64; i++) bw_se(&w, 0);
    bw_bits(&w, 0, 1);  /* list 7 */
    bw_ue(&w, 0);       /* log2_max_frame_num - 4 */
    bw_ue(&w, 1);       /* pic_order_cnt_type 1 */
    bw_bits(&w, 0, 1);  /* delta_pic_order_always_zero */
    bw_se(&w, -2);      /* offset_for_non_ref_pic */
    bw_se(&w, 0);       /* offset_for_top_to_bottom_field */
    bw_ue(&w, 2);       /* num_ref_frames_in_pic_order_cnt_cycle */
    bw_se(&w, 1);
    bw_se(&w, -1);
    bw_ue(&w, 4);       /* max_num_ref_frames */
    bw_bits(&w, 0, 1);  /* gaps */
    bw_ue(&w, 119);     /* 1920 / 16 - 1 */
    bw_ue(&w, 67);      /* 1088 / 16 - 1 */
    bw_bits(&w, 1, 1);  /* frame_mbs_only */
    bw_bits(&w, 1, 1);  /* direct_8x8 */
    bw_bits(&w, 1, 1);  /* frame_cropping_flag */
    bw_ue(&w, 0), bw_ue(&w, 0), bw_ue(&w, 0), bw_ue(&w, 4); /* bottom 4 x 2 = 8 rows */
    bw_bits(&w, 1, 1);  /* vui_parameters_present_flag */
    bw_bits(&w, 1, 1);  /* aspect_ratio_info_present */
    bw_bits(&w, 255, 8); /* Extended_SAR */
    bw_bits(&w, 4, 16), bw_bits(&w, 3, 16);
    bw_bits(&w, 1, 1), bw_bits(&w, 0, 1); /* overscan */
    bw_bits(&w, 1, 1), bw_bits(&w, 5, 3), bw_bits(&w, 0, 1), bw_bits(&w, 1, 1); /* video signal + colour */
    bw_bits(&w, 1, 8), bw_bits(&w, 1, 8), bw_bits(&w, 1, 8);
    bw_bits(&w, 1, 1), bw_ue(&w, 0), bw_ue(&w, 0); /* chroma loc */
    bw_bits(&w, 1, 1);  /* timing_info_present */
    bw_bits(&w, 1, 32); /* num_units_in_tick */
    bw_bits(&w, 50, 32); /* time_scale -> 25 fps; "00 00 00 32" needs emulation prevention */
    bw_bits(&w, 1, 1);  /* fixed_frame_rate */
    bw_bits(&w, 1, 1);  /* rbsp stop bit */
    size_t rbsp_len = (w.bits + 7) / 8;
    uint8_t nal[160];
    size_t n = to_ebsp(w.buf, rbsp_len, nal);
    assert_true(n > rbsp_len); /* emulation prevention was needed */
    gb_h264_sps_t s;
    assert_int_equal(gb_h264_parse_sps(nal, n, &s), 0);
    assert_int_equal(s.profile_idc, 100);
    assert_int_equal(s.level_idc, 40);
    assert_int_equal(s.width, 1920);
    assert_int_equal(s.height, 1080);
    assert_true(s.has_timing);
    assert_int_equal(s.num_units_in_tick, 1);
    assert_int_equal(s.time_scale, 50);
    assert_true(s.fps > 24.999 && s.fps < 25.001);

    /* Through an Annex B buffer. */
    uint8_t annexb[200] = {0, 0, 0, 1};
    memcpy(annexb + 4, nal, n);
    double fps = gb_h264_frame_rate(annexb, 4 + n, 10.0);
    assert_true(fps > 24.999 && fps < 25.001);

    /* Truncated in the middle of the timing info: size known, no timing. */
    assert_int_equal(gb_h264_parse_sps(nal, n - 6, &s), 0);
    assert_false(s.has_timing);
    assert_int_equal(s.width, 1920);
    assert_true(gb_h264_frame_rate(annexb, 4 + n - 6, 10.0) == 10.0);
    /* Truncated before the size: refused. */
    assert_int_equal(gb_h264_parse_sps(nal, 12, &s), -1);
}

static void test_sps_refusals(void **state)
{
    (void)state;
    gb_h264_sps_t s;
    /* Not an SPS. */
    assert_int_equal(gb_h264_parse_sps((const uint8_t *)"\x68\xce\x38\x80", 4, &s), -1);
    assert_int_equal(gb_h264_parse_sps(NULL, 0, &s), -1);
    /* An exp-Golomb code with 32+ leading zeros. */
    static const uint8_t bad[] = {0x67, 0x42, 0x00, 0x1e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
    assert_int_equal(gb_h264_parse_sps(bad, sizeof(bad), &s), -1);
    /* No SPS at all: the default rate. */
    assert_true(gb_h264_frame_rate((const uint8_t *)"\x00\x00\x01\x65\x88", 5, 25.0) == 25.0);
    /* All-0xFF garbage after a valid header must not crash or loop. */
    uint8_t ff[64];
    memset(ff, 0xFF, sizeof(ff));
    ff[0] = 0x67;
    gb_h264_parse_sps(ff, sizeof(ff), &s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clip_access_units),
        cmocka_unit_test(test_nal_splitting),
        cmocka_unit_test(test_multi_slice_and_aud),
        cmocka_unit_test(test_h265),
        cmocka_unit_test(test_sps_from_x264),
        cmocka_unit_test(test_sps_hand_made),
        cmocka_unit_test(test_sps_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
