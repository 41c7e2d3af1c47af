/* test_codec_config.c — bit reader and Exp-Golomb codes, RBSP unescaping,
 * H.265 SPS fields, and the avcC / hvcC records (src/media/codec_config.c).
 * Expected records are written out by hand from ISO/IEC 14496-15 §5.3.3.1
 * and §8.3.3.1; the parameter sets are the test clip's and x265's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clip_testutil.h"
#include "media/codec_config.h"
#include "media/h264.h"

/* Packs a string of '0'/'1' (spaces ignored) MSB first; returns the bytes used. */
static size_t pack_bits(const char *s, uint8_t *out, size_t cap)
{
    memset(out, 0, cap);
    size_t n = 0;
    for (; *s; s++) {
        if (*s == ' ') continue;
        if (*s == '1') out[n / 8] |= (uint8_t)(0x80 >> (n % 8));
        n++;
    }
    return (n + 7) / 8;
}

static void test_golomb_table(void **state)
{
    (void)state;
    /* H.264 Table 9-2: codeNum from its bit string; Table 9-3: se(v) from codeNum. */
    static const struct {
        const char *bits;
        uint32_t ue;
        int32_t se;
    } rows[] = {
        {"1", 0, 0},           {"010", 1, 1},          {"011", 2, -1},       {"00100", 3, 2},
        {"00101", 4, -2},      {"00110", 5, 3},        {"00111", 6, -3},     {"0001000", 7, 4},
        {"0001110", 13, 7},    {"000011111", 30, -15}, {"00000100000", 31, 16},
        {"0000000000000000 1 0000000000000000", 65535, 32768},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t buf[8];
        size_t n = pack_bits(rows[i].bits, buf, sizeof(buf));
        gb_bits_t b;
        gb_bits_init(&b, buf, n);
        assert_int_equal(gb_bits_ue(&b), rows[i].ue);
        assert_false(b.err);
        gb_bits_init(&b, buf, n);
        assert_int_equal(gb_bits_se(&b), rows[i].se);
        assert_false(b.err);
    }
}

static void test_bits_fixed_and_overrun(void **state)
{
    (void)state;
    const uint8_t buf[3] = {0xA5, 0x0F, 0x80};
    gb_bits_t b;
    gb_bits_init(&b, buf, sizeof(buf));
    assert_int_equal(gb_bits_get(&b, 1), 1);
    assert_int_equal(gb_bits_get(&b, 3), 2);    /* 010 */
    assert_int_equal(gb_bits_get(&b, 8), 0x50); /* 0101 0000 */
    gb_bits_skip(&b, 4);
    assert_int_equal(gb_bits_get(&b, 1), 1);
    assert_false(b.err);
    assert_int_equal(gb_bits_get(&b, 8), 0); /* 7 bits left */
    assert_true(b.err);
    assert_int_equal(gb_bits_get(&b, 1), 0); /* stays failed */

    gb_bits_init(&b, buf, sizeof(buf));
    gb_bits_skip(&b, 25);
    assert_true(b.err);

    /* More than 31 leading zeros is not a 32-bit code. */
    const uint8_t zeros[6] = {0, 0, 0, 0, 0x80, 0};
    gb_bits_init(&b, zeros, sizeof(zeros));
    assert_int_equal(gb_bits_ue(&b), 0);
    assert_true(b.err);
    /* A code cut by the end of the data. */
    const uint8_t cut[1] = {0x01}; /* 0000 0001, then the 7 info bits are missing */
    gb_bits_init(&b, cut, sizeof(cut));
    gb_bits_ue(&b);
    assert_true(b.err);
}

static void test_unescape(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
        size_t in_len, out_len;
    } rows[] = {
        {"\x00\x00\x03\x01", "\x00\x00\x01", 4, 3},
        {"\x00\x00\x03\x00\x00\x03\x00", "\x00\x00\x00\x00\x00", 7, 5},
        {"\x00\x03\x00", "\x00\x03\x00", 3, 3},           /* one zero is not a prefix */
        {"\x00\x00\x00\x03\x02", "\x00\x00\x00\x02", 5, 4}, /* three zeros count as two */
        {"\x12\x00\x00\x03", "\x12\x00\x00", 4, 3},       /* cabac_zero_word at the end */
        {"\x00\x00\x03\x03", "\x00\x00\x03", 4, 3},       /* the 03 after an escape is data */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t out[16];
        size_t n = gb_rbsp_unescape((const uint8_t *)rows[i].in, rows[i].in_len, out, sizeof(out));
        assert_int_equal(n, rows[i].out_len);
        assert_memory_equal(out, rows[i].out, n);
    }
    /* The output bound stops the copy. */
    uint8_t out[2];
    assert_int_equal(gb_rbsp_unescape((const uint8_t *)"\x01\x02\x03\x04", 4, out, sizeof(out)), 2);
    assert_memory_equal(out, "\x01\x02", 2);
}

static void test_avcc_from_clip(void **state)
{
    (void)state;
    size_t len;
    uint8_t *clip = read_test_clip(&len);
    assert_non_null(clip);
    gb_param_sets_t p = {0};
    size_t pos = 0;
    gb_nal_t n;
    while ((!p.sps || !p.pps) && gb_nal_next(clip, len, &pos, &n)) {
        if (gb_h264_nal_type(&n) == GB_H264_NAL_SPS) p.sps = n.data, p.sps_len = n.len;
        if (gb_h264_nal_type(&n) == GB_H264_NAL_PPS) p.pps = n.data, p.pps_len = n.len;
    }
    /* The clip's SPS: Baseline (66), constraint_set0/1 (0xC0), level 1.3 (13). */
    static const uint8_t sps[24] = {0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00,
                                    0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80};
    static const uint8_t pps[5] = {0x68, 0xcb, 0x83, 0xcb, 0x20};
    assert_int_equal(p.sps_len, sizeof(sps));
    assert_memory_equal(p.sps, sps, sizeof(sps));
    assert_int_equal(p.pps_len, sizeof(pps));
    assert_memory_equal(p.pps, pps, sizeof(pps));

    uint8_t want[40] = {1, 0x42, 0xc0, 0x0d, /* version, profile, constraint flags, level from SPS bytes 1-3 */
                        0xFF,                /* reserved '111111', lengthSizeMinusOne 3 */
                        0xE1,                /* reserved '111', one SPS */
                        0x00, 24};
    memcpy(want + 8, sps, 24);
    want[32] = 1; /* one PPS */
    want[33] = 0, want[34] = 5;
    memcpy(want + 35, pps, 5);
    /* Baseline has no chroma/depth fields, asked for or not. */
    for (int with_format = 0; with_format < 2; with_format++) {
        uint8_t out[64];
        assert_int_equal(gb_avcc_size(&p, with_format), sizeof(want));
        assert_int_equal(gb_avcc_write(&p, with_format, out, sizeof(out)), sizeof(want));
        assert_memory_equal(out, want, sizeof(want));
        assert_int_equal(gb_avcc_write(&p, with_format, out, sizeof(want) - 1), -1);
    }
    p.sps_len = 3; /* the profile bytes are not all there */
    uint8_t out[64];
    assert_int_equal(gb_avcc_write(&p, false, out, sizeof(out)), -1);
    free(clip);
}

static void test_avcc_high_profile_format(void **state)
{
    (void)state;
    /* x264 High (100) 4:2:0 8-bit: chroma_format_idc 1, both depths 8. */
    static const uint8_t sps[25] = {0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x60, 0x96, 0xc0, 0x44, 0x00, 0x00,
                                    0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x50, 0xa6, 0x58};
    static const uint8_t pps[6] = {0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0};
    gb_param_sets_t p = {.sps = sps, .sps_len = sizeof(sps), .pps = pps, .pps_len = sizeof(pps)};
    assert_true(gb_avcc_has_format(sps));
    uint8_t out[64];
    long n = gb_avcc_write(&p, true, out, sizeof(out));
    assert_int_equal(n, 11 + 25 + 6 + 4);
    assert_int_equal(gb_avcc_size(&p, true), (size_t)n);
    /* reserved '111111' + chroma 1, '11111' + depth-8 0 twice, no SPS extensions. */
    assert_memory_equal(out + n - 4, "\xFD\xF8\xF8\x00", 4);
    assert_int_equal(gb_avcc_write(&p, false, out, sizeof(out)), 11 + 25 + 6);
}

/* x265 Main, 330x250 (coded 336x256, cropped by the conformance window). */
static const uint8_t h265_vps[24] = {0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00,
                                     0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x95, 0x98, 0x09};
static const uint8_t h265_sps[44] = {0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00,
                                     0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x88, 0x04,
                                     0x07, 0x24, 0x99, 0x65, 0x66, 0x92, 0x4c, 0xaf, 0x01, 0x68, 0x08,
                                     0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x40};
static const uint8_t h265_pps[7] = {0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40};
/* The general profile_tier_level with its emulation prevention bytes out. */
static const uint8_t h265_ptl[12] = {0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x3c};

static void test_h265_sps(void **state)
{
    (void)state;
    gb_h265_sps_t s;
    assert_int_equal(gb_h265_sps_parse(h265_sps, sizeof(h265_sps), &s), 0);
    assert_memory_equal(s.ptl, h265_ptl, 12); /* Main (1), level 2 (60) */
    assert_int_equal(s.sub_layers, 1);
    assert_true(s.temporal_nesting);
    assert_int_equal(s.chroma_format_idc, 1);
    assert_int_equal(s.bit_depth_luma, 0);
    assert_int_equal(s.bit_depth_chroma, 0);
    assert_int_equal(s.width, 330);
    assert_int_equal(s.height, 250);

    /* x265 Main 10, 320x240, two temporal sub-layers (sub-layer flags parsed). */
    static const uint8_t main10[46] = {0x42, 0x01, 0x02, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
                                       0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x00, 0x00, 0xa0, 0x0a, 0x08, 0x0f,
                                       0x13, 0x65, 0x95, 0x98, 0xac, 0xd2, 0x49, 0x95, 0xe0, 0x2d, 0x01, 0x00,
                                       0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x19, 0x08};
    assert_int_equal(gb_h265_sps_parse(main10, sizeof(main10), &s), 0);
    assert_int_equal(s.ptl[0], 0x02);
    assert_int_equal(s.sub_layers, 2);
    assert_false(s.temporal_nesting);
    assert_int_equal(s.bit_depth_luma, 2);
    assert_int_equal(s.bit_depth_chroma, 2);
    assert_int_equal(s.width, 320);
    assert_int_equal(s.height, 240);

    /* Cut inside the profile_tier_level, then just after it. */
    assert_int_equal(gb_h265_sps_parse(h265_sps, 14, &s), -1);
    assert_int_equal(gb_h265_sps_parse(h265_sps, 18, &s), -1);
    assert_int_equal(gb_h265_sps_parse(h265_sps, 0, &s), -1);
}

static void test_hvcc(void **state)
{
    (void)state;
    gb_param_sets_t p = {h265_vps, h265_sps, h265_pps, sizeof(h265_vps), sizeof(h265_sps), sizeof(h265_pps)};
    gb_h265_sps_t s;
    assert_int_equal(gb_h265_sps_parse(h265_sps, sizeof(h265_sps), &s), 0);
    uint8_t want[23 + 15 + 24 + 44 + 7];
    uint8_t *w = want;
    *w++ = 1; /* configurationVersion */
    memcpy(w, h265_ptl, 12), w += 12;
    *w++ = 0xF0, *w++ = 0x00; /* reserved '1111', min_spatial_segmentation_idc 0 */
    *w++ = 0xFC;              /* parallelismType 0 */
    *w++ = 0xFD;              /* chroma_format_idc 1 */
    *w++ = 0xF8, *w++ = 0xF8; /* bit depths 8 */
    *w++ = 0, *w++ = 0;       /* avgFrameRate */
    *w++ = 1 << 3 | 1 << 2 | 3; /* constantFrameRate 0, one layer, nested, 4-byte lengths */
    *w++ = 3;
    const uint8_t *sets[3] = {h265_vps, h265_sps, h265_pps};
    const uint8_t lens[3] = {24, 44, 7};
    for (int i = 0; i < 3; i++) {
        *w++ = (uint8_t)(0x80 | (32 + i)); /* complete, VPS / SPS / PPS */
        *w++ = 0, *w++ = 1;
        *w++ = 0, *w++ = lens[i];
        memcpy(w, sets[i], lens[i]), w += lens[i];
    }
    assert_int_equal(w - want, sizeof(want));
    uint8_t out[256];
    assert_int_equal(gb_hvcc_size(&p), sizeof(want));
    assert_int_equal(gb_hvcc_write(&p, &s, out, sizeof(out)), sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
    assert_int_equal(gb_hvcc_write(&p, &s, out, sizeof(want) - 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golomb_table),
        cmocka_unit_test(test_bits_fixed_and_overrun),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_avcc_from_clip),
        cmocka_unit_test(test_avcc_high_profile_format),
        cmocka_unit_test(test_h265_sps),
        cmocka_unit_test(test_hvcc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
