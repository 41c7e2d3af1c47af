/* test_g711.c — G.711 A-law and µ-law (media/g711.h): the code points of
 * ITU-T G.711 for silence and full scale, every code surviving a
 * decode/encode round trip, the quantisation error bounded by the segment
 * step, and the test tone's level and frequency. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "media/g711.h"

static void test_known_codes(void **state)
{
    (void)state;
    assert_int_equal(gb_g711_alaw_encode(0), 0xD5); /* A-law silence: even bits inverted */
    assert_int_equal(gb_g711_alaw_encode(32767), 0xAA);
    assert_int_equal(gb_g711_alaw_encode(-32768), 0x2A);
    assert_int_equal(gb_g711_ulaw_encode(0), 0xFF); /* µ-law silence: all bits inverted */
    assert_int_equal(gb_g711_ulaw_encode(32767), 0x80);
    assert_int_equal(gb_g711_ulaw_encode(-32768), 0x00);
    assert_int_equal(gb_g711_alaw_decode(0xD5), 8);
    assert_int_equal(gb_g711_alaw_decode(0xAA), 32256);
    assert_int_equal(gb_g711_ulaw_decode(0xFF), 0);
    assert_int_equal(gb_g711_ulaw_decode(0x80), 32124);
}

static void test_every_code_round_trips(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        assert_int_equal(gb_g711_alaw_encode(gb_g711_alaw_decode((uint8_t)c)), c);
        /* µ-law has two zeros (0x7F, negative zero, and 0xFF): both decode to 0. */
        if (c != 0x7F) assert_int_equal(gb_g711_ulaw_encode(gb_g711_ulaw_decode((uint8_t)c)), c);
    }
}

/* A logarithmic code: the error grows with the magnitude, about 1/32 of it
 * (A-law) or 1/16 (µ-law) above the linear segments. */
static void test_error_bounded(void **state)
{
    (void)state;
    for (int x = -32768; x < 32768; x += 3) {
        int ea = abs(gb_g711_alaw_decode(gb_g711_alaw_encode((int16_t)x)) - x);
        int eu = abs(gb_g711_ulaw_decode(gb_g711_ulaw_encode((int16_t)x)) - x);
        assert_true(ea * 32 <= abs(x) + 512);
        assert_true(eu * 16 <= abs(x) + 512);
    }
}

/* The simulator's tone: 440 Hz at amplitude 8000, phase continuous across
 * blocks (two halves equal one whole). */
static void test_tone(void **state)
{
    (void)state;
    for (int ulaw = 0; ulaw < 2; ulaw++) {
        uint8_t whole[8000], half[8000];
        gb_g711_tone(whole, 8000, 0, 440.0, 8000, ulaw);
        gb_g711_tone(half, 4000, 0, 440.0, 8000, ulaw);
        gb_g711_tone(half + 4000, 4000, 4000, 440.0, 8000, ulaw);
        assert_memory_equal(whole, half, sizeof(whole));
        int peak = 0, crossings = 0;
        int16_t last = 0;
        for (int i = 0; i < 8000; i++) {
            int16_t v = ulaw ? gb_g711_ulaw_decode(whole[i]) : gb_g711_alaw_decode(whole[i]);
            if (abs(v) > peak) peak = abs(v);
            if (i && (last < 0) != (v < 0)) crossings++;
            last = v;
        }
        assert_true(peak > 7500 && peak < 8500);
        assert_true(crossings >= 878 && crossings <= 882); /* two a cycle, one second */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_codes),
        cmocka_unit_test(test_every_code_round_trips),
        cmocka_unit_test(test_error_bounded),
        cmocka_unit_test(test_tone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
