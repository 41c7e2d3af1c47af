/* fuzz_sdp.c — libFuzzer target for the SDP parser (RFC 4566 + GB/T 28181).
 *
 * A session that parses must print, parse again with the same shape, and
 * print to the same bytes; every helper is called on every media. */
#include <stdint.h>
#include <string.h>

#include "sip/sdp.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

static void helpers(const struct sdp_session *s)
{
    uint32_t ssrc;
    (void)sdp_gb_ssrc(s, &ssrc);
    (void)sdp_media_direction(s, NULL);
    for (uint32_t i = 0; i < s->media_count; i++) {
        const struct sdp_media *m = &s->media[i];
        str_t cur = m->fmts, f;
        int n = 0;
        while (sdp_fmt_next(&cur, &f)) {
            CHECK(f.len > 0);
            unsigned pt = 0;
            for (size_t k = 0; k < f.len && k < 4; k++) pt = pt * 10 + (unsigned)(f.s[k] - '0');
            struct sdp_rtpmap rm;
            if (sdp_media_rtpmap(m, pt % 128, &rm) == 0) CHECK(rm.encoding.len > 0);
            CHECK(++n < 100000);
        }
        CHECK(n > 0);
        (void)sdp_media_direction(s, m);
        (void)sdp_media_setup(s, m);
        (void)sdp_media_conn(s, m);
        (void)sdp_media_attr(s, m, "rtpmap");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static _Alignas(16) char scratch[16384];
    arena_t a;
    arena_init(&a, scratch, sizeof(scratch));
    struct sdp_session s;
    const char *why = NULL;
    if (sdp_parse((const char *)data, size, &a, &s, &why) != 0) {
        CHECK(why != NULL);
        arena_free(&a);
        return 0;
    }
    helpers(&s);
    sbuf_t out;
    sbuf_init(&out);
    CHECK(sdp_print(&s, &out) == 0);
    static _Alignas(16) char scratch2[16384];
    arena_t a2;
    arena_init(&a2, scratch2, sizeof(scratch2));
    struct sdp_session s2;
    CHECK(sdp_parse(out.data, out.len, &a2, &s2, &why) == 0);
    CHECK(s2.media_count == s.media_count && s2.time_count == s.time_count);
    CHECK(s2.attr_count == s.attr_count && s2.bw_count == s.bw_count);
    CHECK(str_eq(s2.gb_ssrc, s.gb_ssrc) && str_eq(s2.gb_format, s.gb_format));
    for (uint32_t i = 0; i < s.media_count; i++) {
        CHECK(s2.media[i].port == s.media[i].port);
        CHECK(s2.media[i].attr_count == s.media[i].attr_count);
        CHECK(s2.media[i].conn_count == s.media[i].conn_count);
        CHECK(str_eq(s2.media[i].fmts, s.media[i].fmts));
    }
    sbuf_t out2;
    sbuf_init(&out2);
    CHECK(sdp_print(&s2, &out2) == 0);
    CHECK(out2.len == out.len && memcmp(out.data, out2.data, out.len) == 0);
    sbuf_free(&out2);
    sbuf_free(&out);
    arena_free(&a2);
    arena_free(&a);
    return 0;
}
