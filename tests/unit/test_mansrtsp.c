/* test_mansrtsp.c — GB/T 28181 Annex B playback control bodies: the forms
 * devices and platforms send, what is refused, and that what we build reads
 * back the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gb/codec/mansrtsp.h"

static struct gb_rtsp_req parse_ok(const char *body)
{
    struct gb_rtsp_req r;
    const char *why = NULL;
    int rc = gb_mansrtsp_parse(body, strlen(body), &r, &why);
    if (rc) fail_msg("refused: %s", why ? why : "?");
    return r;
}

static void parse_refused(const char *body, const char *why_part)
{
    struct gb_rtsp_req r;
    const char *why = NULL;
    assert_int_equal(gb_mansrtsp_parse(body, strlen(body), &r, &why), -1);
    assert_non_null(why);
    assert_non_null(strstr(why, why_part));
}

static void test_parse_forms(void **state)
{
    (void)state;
    struct gb_rtsp_req r = parse_ok("PAUSE MANSRTSP/1.0\r\nCSeq: 3\r\nPauseTime: now\r\n");
    assert_int_equal(r.method, GB_RTSP_PAUSE);
    assert_int_equal(r.cseq, 3);
    assert_false(r.has_range);

    r = parse_ok("PLAY MANSRTSP/1.0\r\nCSeq: 4\r\nRange: npt=now-\r\n");
    assert_int_equal(r.method, GB_RTSP_PLAY);
    assert_true(r.has_range);
    assert_true(r.range_from < 0);
    assert_false(r.has_scale);

    /* 2011 devices: RTSP/1.0, LF only, lower-case names, a range end. */
    r = parse_ok("play RTSP/1.0\ncseq:7\nrange: npt=120.5-300\nscale: 0.25\n\n");
    assert_int_equal(r.cseq, 7);
    assert_true(r.has_range);
    assert_true(r.range_from > 120.49 && r.range_from < 120.51);
    assert_true(r.has_scale);
    assert_true(r.scale > 0.249 && r.scale < 0.251);

    r = parse_ok("TEARDOWN MANSRTSP/1.0\r\nCSeq: 9\r\n");
    assert_int_equal(r.method, GB_RTSP_TEARDOWN);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    parse_refused("", "empty");
    parse_refused("SEEK MANSRTSP/1.0\r\nCSeq: 1\r\n", "method");
    parse_refused("PLAY HTTP/1.1\r\nCSeq: 1\r\n", "version");
    parse_refused("PLAY MANSRTSP/1.0\r\nRange: npt=now-\r\n", "CSeq");
    parse_refused("PLAY MANSRTSP/1.0\r\nCSeq: x\r\n", "CSeq");
    parse_refused("PLAY MANSRTSP/1.0\r\nCSeq: 1.5\r\n", "CSeq");
    parse_refused("PLAY MANSRTSP/1.0\r\nCSeq: 1\r\nScale: 100\r\n", "Scale");
    parse_refused("PLAY MANSRTSP/1.0\r\nCSeq: 1\r\nScale: -1\r\n", "Scale");
    parse_refused("PLAY MANSRTSP/1.0\r\nCSeq: 1\r\nRange: clock=20200101T000000Z-\r\n", "Range");
    parse_refused("PLAY MANSRTSP/1.0\r\nCSeq: 1\r\nRange: npt=-5-\r\n", "Range");
    /* Found by fuzz_mansrtsp: a position whose "%.3f" form the parser could not read back. */
    parse_refused("PLAY MANSRTSP/1.0\r\nCSeq: 4\r\nRange: npt=1288888888888888888888888880-\r\n", "Range");
    parse_refused("PLAY MANSRTSP/1.0\r\nCSeq: 4\r\nRange: npt=0-99999999999\r\n", "Range");
    parse_refused("PLAY MANSRTSP/1.0\r\nCSeq: 1\r\nnocolon\r\n", "':'");
    char big[GB_MANSRTSP_MAX_BODY + 10];
    memset(big, 'a', sizeof(big));
    struct gb_rtsp_req r;
    const char *why;
    assert_int_equal(gb_mansrtsp_parse(big, sizeof(big), &r, &why), -1);
    assert_non_null(strstr(why, "too large"));
    /* Not NUL-terminated: the parser reads only len bytes. */
    const char exact[] = "PAUSE MANSRTSP/1.0\r\nCSeq: 12";
    assert_int_equal(gb_mansrtsp_parse(exact, sizeof(exact) - 2, &r, &why), 0);
    assert_int_equal(r.cseq, 1);
}

static void round_trip(const struct gb_rtsp_req *in, const char *want)
{
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_mansrtsp_build(&b, in), 0);
    sbuf_append_char(&b, 0);
    assert_string_equal(b.data, want);
    struct gb_rtsp_req out = parse_ok(b.data);
    assert_int_equal(out.method, in->method);
    assert_int_equal(out.cseq, in->cseq);
    assert_int_equal(out.has_scale, in->has_scale);
    sbuf_free(&b);
}

static void test_build(void **state)
{
    (void)state;
    round_trip(&(struct gb_rtsp_req){.method = GB_RTSP_PAUSE, .cseq = 2},
               "PAUSE MANSRTSP/1.0\r\nCSeq: 2\r\nPauseTime: now\r\n");
    round_trip(&(struct gb_rtsp_req){.method = GB_RTSP_PLAY, .cseq = 3},
               "PLAY MANSRTSP/1.0\r\nCSeq: 3\r\nRange: npt=now-\r\n");
    round_trip(&(struct gb_rtsp_req){.method = GB_RTSP_PLAY, .cseq = 4, .has_scale = true, .scale = 2},
               "PLAY MANSRTSP/1.0\r\nCSeq: 4\r\nScale: 2\r\n");
    round_trip(&(struct gb_rtsp_req){.method = GB_RTSP_PLAY, .cseq = 5, .has_range = true, .range_from = 90},
               "PLAY MANSRTSP/1.0\r\nCSeq: 5\r\nRange: npt=90.000-\r\n");
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(gb_mansrtsp_build(&b, &(struct gb_rtsp_req){.method = GB_RTSP_PLAY, .has_scale = true, .scale = 0}), -1);
    assert_int_equal(gb_mansrtsp_build(&b, &(struct gb_rtsp_req){.method = GB_RTSP_PLAY, .has_scale = true, .scale = 32}), -1);
    sbuf_free(&b);
}

static void test_content_type(void **state)
{
    (void)state;
    assert_true(gb_mansrtsp_is_type("Application/MANSRTSP", 20));
    assert_true(gb_mansrtsp_is_type("application/mansrtsp;charset=utf-8", 34));
    assert_false(gb_mansrtsp_is_type("Application/MANSCDP+xml", 23));
    assert_false(gb_mansrtsp_is_type(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_content_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
