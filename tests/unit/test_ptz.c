/* test_ptz.c — GB/T 28181 Annex A.3 PTZ command: known values, worked by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gb/codec/ptz.h"

static void expect_build(const char *cmd, int speed, int zoom, uint16_t addr, const char *want)
{
    char hex[GB_PTZ_HEX_LEN + 1];
    assert_int_equal(gb_ptz_build(cmd, speed, zoom, addr, hex), 0);
    assert_string_equal(hex, want);
}

static void test_build_known_values(void **state)
{
    (void)state;
    /* Byte 2 = version 0 in the high nibble, check (0xA + 0x5 + 0x0) % 16 = 0xF
     * in the low nibble: always 0x0F. Byte 8 = sum of bytes 1..7 mod 256. */
    /* stop: A5+0F+01 = 0xB5 (the value every GB platform sends). */
    expect_build("stop", 0, 0, 1, "A50F0100000000B5");
    /* left, pan speed 0x1F: B5+02+1F = 0xD6. Published as the "left" example
     * in GB28181 PTZ write-ups (A50F01021F0000D6). */
    expect_build("left", 0x1F, 0, 1, "A50F01021F0000D6");
    /* right 0x1F: B5+01+1F = 0xD5. */
    expect_build("right", 0x1F, 0, 1, "A50F01011F0000D5");
    /* up, tilt speed 0x64 in byte 6: B5+08+64 = 0x121 -> 0x21. */
    expect_build("up", 0x64, 0, 1, "A50F010800640021");
    /* down 0x64: B5+04+64 = 0x11D -> 0x1D. */
    expect_build("down", 0x64, 0, 1, "A50F01040064001D");
    /* upleft 0x10 on both axes: B5+0A+10+10 = 0xDF. */
    expect_build("upleft", 0x10, 0, 1, "A50F010A101000DF");
    /* upright 0x10: B5+09+10+10 = 0xDE. */
    expect_build("upright", 0x10, 0, 1, "A50F0109101000DE");
    /* downleft 0x10: B5+06+10+10 = 0xDB. */
    expect_build("downleft", 0x10, 0, 1, "A50F0106101000DB");
    /* downright 0xFF: B5+05+FF+FF = 0x2B8 -> 0xB8. */
    expect_build("downright", 255, 0, 1, "A50F0105FFFF00B8");
    /* zoomin, zoom speed 1 in byte 7's high nibble (0x10): B5+10+10 = 0xD5. */
    expect_build("zoomin", 0, 1, 1, "A50F0110000010D5");
    /* zoomout, zoom 15 at address 0xFFF: byte3 FF, byte7 F|F = FF;
     * A5+0F+FF+20+FF = 0x2D2 -> 0xD2. */
    expect_build("zoomout", 0, 15, 0xFFF, "A50FFF200000FFD2");
    /* stop at address 0x123: byte3 0x23, byte7 low nibble 1; A5+0F+23+01 = 0xD8. */
    expect_build("stop", 0, 0, 0x123, "A50F2300000001D8");
    /* speed is ignored for the axes a command does not move, zoom speed for pan/tilt. */
    expect_build("left", 0x1F, 9, 1, "A50F01021F0000D6");
    expect_build("zoomin", 200, 1, 1, "A50F0110000010D5");
}

static void test_build_refusals(void **state)
{
    (void)state;
    char hex[GB_PTZ_HEX_LEN + 1] = "x";
    assert_int_equal(gb_ptz_build("spin", 1, 0, 1, hex), -1);
    assert_string_equal(hex, "");
    assert_int_equal(gb_ptz_build(NULL, 1, 0, 1, hex), -1);
    assert_int_equal(gb_ptz_build("left", 256, 0, 1, hex), -1);
    assert_int_equal(gb_ptz_build("left", -1, 0, 1, hex), -1);
    assert_int_equal(gb_ptz_build("zoomin", 0, 16, 1, hex), -1);
    assert_int_equal(gb_ptz_build("zoomin", 0, -1, 1, hex), -1);
    assert_int_equal(gb_ptz_build("stop", 0, 0, 0x1000, hex), -1);
    assert_int_equal(gb_ptz_build("LEFT", 1, 0, 1, hex), -1);
    /* Raw: preset call 0x82 with preset 5 in byte 5: A5+0F+01+82+05 = 0x13C -> 0x3C. */
    assert_int_equal(gb_ptz_build_raw(0x82, 5, 0, 0, 1, hex), 0);
    assert_string_equal(hex, "A50F01820500003C");
    assert_int_equal(gb_ptz_build_raw(0x82, 5, 0, 16, 1, hex), -1);
}

static void test_parse(void **state)
{
    (void)state;
    gb_ptz_t p;
    assert_int_equal(gb_ptz_parse("A50F0105FFFF00B8", 16, &p), 0);
    assert_int_equal(p.version, 0);
    assert_int_equal(p.address, 1);
    assert_int_equal(p.command, GB_PTZ_DOWN | GB_PTZ_RIGHT);
    assert_int_equal(p.pan_speed, 255);
    assert_int_equal(p.tilt_speed, 255);
    assert_int_equal(p.zoom_speed, 0);
    assert_string_equal(gb_ptz_command_name(p.command), "downright");
    assert_int_equal(p.bytes[7], 0xB8);

    /* Lower case, surrounding whitespace as in a pretty-printed XML element. */
    const char *s = "\r\n  a50fff200000ffd2 \n";
    assert_int_equal(gb_ptz_parse(s, strlen(s), &p), 0);
    assert_int_equal(p.address, 0xFFF);
    assert_int_equal(p.command, GB_PTZ_ZOOM_OUT);
    assert_int_equal(p.zoom_speed, 15);
    assert_string_equal(gb_ptz_command_name(p.command), "zoomout");

    assert_int_equal(gb_ptz_parse("A50F0100000000B5", 16, &p), 0);
    assert_int_equal(p.command, 0);
    assert_string_equal(gb_ptz_command_name(p.command), "stop");
    assert_null(gb_ptz_command_name(0x82));

    /* Every built command parses back to itself. */
    const char *cmds[] = {"left", "right", "up", "down", "upleft", "upright", "downleft", "downright",
                          "zoomin", "zoomout", "stop"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char hex[GB_PTZ_HEX_LEN + 1];
        assert_int_equal(gb_ptz_build(cmds[i], 77, 7, 0xABC, hex), 0);
        assert_int_equal(gb_ptz_parse(hex, strlen(hex), &p), 0);
        assert_string_equal(gb_ptz_command_name(p.command), cmds[i]);
        assert_int_equal(p.address, 0xABC);
    }
}

static void test_parse_refusals(void **state)
{
    (void)state;
    gb_ptz_t p;
    assert_int_equal(gb_ptz_parse("A50F0100000000B6", 16, &p), -1); /* checksum */
    assert_int_equal(gb_ptz_parse("A50E0100000000B4", 16, &p), -1); /* byte-2 check nibble */
    assert_int_equal(gb_ptz_parse("A40F0100000000B4", 16, &p), -1); /* header */
    assert_int_equal(gb_ptz_parse("A50F0100000000B", 15, &p), -1);
    assert_int_equal(gb_ptz_parse("A50F0100000000B5FF", 18, &p), -1);
    assert_int_equal(gb_ptz_parse("A50F01000000G0B5", 16, &p), -1);
    assert_int_equal(gb_ptz_parse("A50F 100000000B5", 16, &p), -1);
    assert_int_equal(gb_ptz_parse(NULL, 0, &p), -1);
    assert_int_equal(gb_ptz_parse("", 0, &p), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_known_values),
        cmocka_unit_test(test_build_refusals),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
