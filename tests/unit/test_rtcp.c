/* test_rtcp.c — RTCP for the SFU: RFC 5761 demultiplexing, compound walking
 * with its failure rules, every decoder against bytes written by hand from
 * the RFC figures, every builder against the same bytes, and the key frame
 * request limiter. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "media/rtcp.h"

/* The next packet of a compound buffer, which must be there. */
static rtcp_packet_t one(const uint8_t *buf, size_t len)
{
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_iter_init(&it, buf, len);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_iter_next(&it, &p), 0);
    return p;
}

static void test_demux(void **state)
{
    (void)state;
    /* RFC 5761 §4: the second octet, marker bit included, 192..223 is RTCP. */
    static const uint8_t sr[] = {0x80, 200, 0, 6}, rr[] = {0x80, 201, 0, 1};
    static const uint8_t lo[] = {0x80, 192, 0, 0}, hi[] = {0x80, 223, 0, 0};
    static const uint8_t rtp96[] = {0x80, 96, 0, 1}, rtp96m[] = {0x80, 0x80 | 96, 0, 1};
    static const uint8_t below[] = {0x80, 191, 0, 0}, above[] = {0x80, 224, 0, 0};
    assert_true(rtcp_is_rtcp(sr, 4));
    assert_true(rtcp_is_rtcp(rr, 4));
    assert_true(rtcp_is_rtcp(lo, 4));
    assert_true(rtcp_is_rtcp(hi, 4));
    assert_false(rtcp_is_rtcp(rtp96, 4));
    assert_false(rtcp_is_rtcp(rtp96m, 4)); /* PT 96 with the marker: 224 */
    assert_false(rtcp_is_rtcp(below, 4));
    assert_false(rtcp_is_rtcp(above, 4));
    assert_false(rtcp_is_rtcp(sr, 3));
    assert_false(rtcp_is_rtcp(NULL, 0));
}

/* RFC 3550 §6.4.1 figure: SR with one report block. */
static const uint8_t sr_bytes[] = {
    0x81, 0xC8, 0x00, 0x0C,                         /* V=2 RC=1 PT=200 length=12 */
    0x11, 0x22, 0x33, 0x44,                         /* SSRC of sender */
    0xE5, 0xA1, 0xB2, 0xC3, 0x80, 0x00, 0x00, 0x00, /* NTP timestamp */
    0x00, 0x01, 0x5F, 0x90,                         /* RTP timestamp 90000 */
    0x00, 0x00, 0x00, 0x64,                         /* packet count 100 */
    0x00, 0x01, 0xD4, 0xC0,                         /* octet count 120000 */
    0xAA, 0xBB, 0xCC, 0xDD,                         /* SSRC_1 */
    0x40, 0xFF, 0xFF, 0xFE,                         /* fraction 64/256, cumulative lost -2 */
    0x00, 0x01, 0xFF, 0xFF,                         /* extended highest seq: 1 cycle, 65535 */
    0x00, 0x00, 0x00, 0x20,                         /* jitter */
    0xB2, 0xC3, 0x80, 0x00,                         /* LSR: middle of an NTP time */
    0x00, 0x01, 0x00, 0x00,                         /* DLSR 1 s */
};

static void test_sr(void **state)
{
    (void)state;
    rtcp_packet_t p = one(sr_bytes, sizeof(sr_bytes));
    assert_int_equal(p.pt, RTCP_PT_SR);
    assert_int_equal(p.count, 1);
    assert_int_equal(p.len, sizeof(sr_bytes));
    rtcp_report_t r;
    assert_int_equal(rtcp_parse_report(&p, &r), 0);
    assert_true(r.is_sr);
    assert_int_equal(r.ssrc, 0x11223344);
    assert_true(r.si.ntp == 0xE5A1B2C380000000ull);
    assert_int_equal(r.si.rtp_ts, 90000);
    assert_int_equal(r.si.packet_count, 100);
    assert_int_equal(r.si.octet_count, 120000);
    assert_int_equal(r.report_count, 1);
    const rtcp_report_block_t *b = &r.reports[0];
    assert_int_equal(b->ssrc, 0xAABBCCDD);
    assert_int_equal(b->fraction_lost, 64);
    assert_int_equal(b->cumulative_lost, -2); /* negative: duplicates (§6.4.1) */
    assert_int_equal(b->ext_highest_seq, 0x1FFFF);
    assert_int_equal(b->jitter, 32);
    assert_int_equal(b->lsr, 0xB2C38000);
    assert_int_equal(b->dlsr, 65536);

    /* Building the same gives the same bytes. */
    uint8_t out[128];
    assert_int_equal(rtcp_build_sr(out, sizeof(out), r.ssrc, &r.si, r.reports, 1), sizeof(sr_bytes));
    assert_memory_equal(out, sr_bytes, sizeof(sr_bytes));
    assert_int_equal(rtcp_build_sr(out, sizeof(sr_bytes) - 1, r.ssrc, &r.si, r.reports, 1), -ENOSPC);
    assert_int_equal(rtcp_build_sr(out, sizeof(out), r.ssrc, NULL, NULL, 0), -EINVAL);

    /* RC=1 but the length leaves no room for the block: a body error. */
    uint8_t cut[sizeof(sr_bytes) - 24];
    memcpy(cut, sr_bytes, sizeof(cut));
    cut[3] = 0x06;
    p = one(cut, sizeof(cut));
    assert_int_equal(rtcp_parse_report(&p, &r), -1);
    cut[0] = 0x80; /* RC=0: a lone sender report */
    p = one(cut, sizeof(cut));
    assert_int_equal(rtcp_parse_report(&p, &r), 0);
    assert_int_equal(r.report_count, 0);
}

static void test_rr(void **state)
{
    (void)state;
    /* Empty RR (§6.4.2: RC=0 is valid), the usual head of a compound packet. */
    static const uint8_t empty[] = {0x80, 0xC9, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04};
    rtcp_packet_t p = one(empty, sizeof(empty));
    rtcp_report_t r;
    assert_int_equal(rtcp_parse_report(&p, &r), 0);
    assert_false(r.is_sr);
    assert_int_equal(r.ssrc, 0x01020304);
    assert_int_equal(r.report_count, 0);
    uint8_t out[8 + 31 * 24 + 4];
    assert_int_equal(rtcp_build_rr(out, sizeof(out), 0x01020304, NULL, 0), 8);
    assert_memory_equal(out, empty, 8);

    /* Two blocks; cumulative lost beyond 24 bits clamps (§6.4.1). */
    rtcp_report_block_t blocks[2] = {
        {.ssrc = 7, .fraction_lost = 255, .cumulative_lost = 0x1000000, .ext_highest_seq = 1, .jitter = 2, .lsr = 3, .dlsr = 4},
        {.ssrc = 8, .cumulative_lost = -0x1000000},
    };
    int n = rtcp_build_rr(out, sizeof(out), 9, blocks, 2);
    assert_int_equal(n, 8 + 48);
    assert_int_equal(out[0], 0x82);
    assert_int_equal(out[3], 13);
    assert_memory_equal(out + 12, "\xFF\x7F\xFF\xFF", 4);
    p = one(out, (size_t)n);
    assert_int_equal(rtcp_parse_report(&p, &r), 0);
    assert_int_equal(r.report_count, 2);
    assert_int_equal(r.reports[0].cumulative_lost, 0x7FFFFF);
    assert_int_equal(r.reports[0].dlsr, 4);
    assert_int_equal(r.reports[1].ssrc, 8);
    assert_int_equal(r.reports[1].cumulative_lost, -0x800000);

    /* 31 blocks is the most; 32 does not fit the 5-bit RC. */
    rtcp_report_block_t many[32];
    memset(many, 0, sizeof(many));
    assert_int_equal(rtcp_build_rr(out, sizeof(out), 9, many, 31), 8 + 31 * 24);
    assert_int_equal(rtcp_build_rr(out, sizeof(out), 9, many, 32), -EINVAL);
    /* Not a report. */
    static const uint8_t pli[] = {0x81, 0xCE, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2};
    p = one(pli, sizeof(pli));
    assert_int_equal(rtcp_parse_report(&p, &r), -1);
}

static void test_sdes(void **state)
{
    (void)state;
    /* RFC 3550 §6.5: two chunks; the first has a CNAME of 16 octets, the
     * second a NOTE and a CNAME, each chunk ending with nulls to a word. */
    static const uint8_t sdes[] = {
        0x82, 0xCA, 0x00, 0x0A,
        0x11, 0x11, 0x11, 0x11, 0x01, 0x10, 'u', 's', 'e', 'r', '@', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o',
        'm', 0x00, 0x00,
        0x22, 0x22, 0x22, 0x22, 0x07, 0x02, 'h', 'i', 0x01, 0x03, 'a', 'b', 'c', 0x00, 0x00, 0x00,
    };
    _Static_assert(sizeof(sdes) == 44, "11 words");
    rtcp_packet_t p = one(sdes, sizeof(sdes));
    rtcp_sdes_t s;
    assert_int_equal(rtcp_parse_sdes(&p, &s), 0);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.chunks[0].ssrc, 0x11111111);
    assert_int_equal(s.chunks[0].cname_len, 16);
    assert_memory_equal(s.chunks[0].cname, "user@example.com", 16);
    assert_int_equal(s.chunks[1].ssrc, 0x22222222);
    assert_int_equal(s.chunks[1].cname_len, 3);
    assert_memory_equal(s.chunks[1].cname, "abc", 3);

    /* The builder makes the first chunk alone. */
    uint8_t out[300];
    int n = rtcp_build_sdes_cname(out, sizeof(out), 0x11111111, "user@example.com", 16);
    assert_int_equal(n, 28);
    assert_int_equal(out[0], 0x81);
    assert_int_equal(out[3], 6);
    assert_memory_equal(out + 4, sdes + 4, 24);
    /* Text ending on a word boundary still gets a null item: a whole word. */
    n = rtcp_build_sdes_cname(out, sizeof(out), 5, "ab", 2);
    assert_int_equal(n, 16);
    assert_memory_equal(out + 12, "\0\0\0\0", 4);
    p = one(out, (size_t)n);
    assert_int_equal(rtcp_parse_sdes(&p, &s), 0);
    assert_int_equal(s.chunks[0].cname_len, 2);
    assert_int_equal(rtcp_build_sdes_cname(out, sizeof(out), 5, "ab", 0), -EINVAL);
    assert_int_equal(rtcp_build_sdes_cname(out, 15, 5, "ab", 2), -ENOSPC);

    /* A chunk without its null item, an item running past the end, and
     * a count promising more chunks than there are: body errors. */
    uint8_t bad[sizeof(sdes)];
    memcpy(bad, sdes, sizeof(bad));
    bad[sizeof(bad) - 3] = 0x05, bad[sizeof(bad) - 2] = 0x00, bad[sizeof(bad) - 1] = 0x05;
    p = one(bad, sizeof(bad)); /* a PHONE item of 0 octets, then a lone type octet */
    assert_int_equal(rtcp_parse_sdes(&p, &s), -1);
    memcpy(bad, sdes, sizeof(bad));
    bad[9] = 0x30;
    p = one(bad, sizeof(bad));
    assert_int_equal(rtcp_parse_sdes(&p, &s), -1);
    memcpy(bad, sdes, sizeof(bad));
    bad[0] = 0x83;
    p = one(bad, sizeof(bad));
    assert_int_equal(rtcp_parse_sdes(&p, &s), -1);
}

static void test_bye(void **state)
{
    (void)state;
    /* RFC 3550 §6.6: two SSRCs and a reason of 3 octets, padded to a word. */
    static const uint8_t bye[] = {0x82, 0xCB, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0x03, 'b', 'y', 'e'};
    rtcp_packet_t p = one(bye, sizeof(bye));
    rtcp_bye_t b;
    assert_int_equal(rtcp_parse_bye(&p, &b), 0);
    assert_int_equal(b.count, 2);
    assert_int_equal(b.ssrcs[0], 1);
    assert_int_equal(b.ssrcs[1], 2);
    assert_int_equal(b.reason_len, 3);
    assert_memory_equal(b.reason, "bye", 3);
    /* Without a reason. */
    uint8_t short_bye[12];
    memcpy(short_bye, bye, 12);
    short_bye[3] = 2;
    p = one(short_bye, 12);
    assert_int_equal(rtcp_parse_bye(&p, &b), 0);
    assert_null(b.reason);
    /* A reason longer than the packet; more SSRCs than words. */
    uint8_t bad[sizeof(bye)];
    memcpy(bad, bye, sizeof(bad));
    bad[12] = 4;
    p = one(bad, sizeof(bad));
    assert_int_equal(rtcp_parse_bye(&p, &b), -1);
    short_bye[0] = 0x83;
    p = one(short_bye, 12);
    assert_int_equal(rtcp_parse_bye(&p, &b), -1);
}

static void test_nack_parse(void **state)
{
    (void)state;
    /* RFC 4585 §6.2.1: PID 0xFFFE, BLP 0x0005: bit 0 is PID+1 = 0xFFFF, bit 2
     * is PID+3, which wraps to 0x0001. */
    static const uint8_t nack[] = {0x81, 0xCD, 0x00, 0x03, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x0B,
                                   0xFF, 0xFE, 0x00, 0x05};
    rtcp_packet_t p = one(nack, sizeof(nack));
    rtcp_nack_t n;
    assert_int_equal(rtcp_parse_nack(&p, &n), 0);
    assert_int_equal(n.sender_ssrc, 10);
    assert_int_equal(n.media_ssrc, 11);
    assert_int_equal(n.count, 3);
    assert_false(n.truncated);
    assert_int_equal(n.seqs[0], 0xFFFE);
    assert_int_equal(n.seqs[1], 0xFFFF);
    assert_int_equal(n.seqs[2], 0x0001);

    /* No FCI, or the wrong FMT: refused. */
    uint8_t bad[sizeof(nack)];
    memcpy(bad, nack, sizeof(bad));
    bad[3] = 2;
    p = one(bad, 12);
    assert_int_equal(rtcp_parse_nack(&p, &n), -1);
    memcpy(bad, nack, sizeof(bad));
    bad[0] = 0x83;
    p = one(bad, sizeof(bad));
    assert_int_equal(rtcp_parse_nack(&p, &n), -1);

    /* 40 FCIs with all 16 BLP bits: 680 numbers, only the first 512 kept. */
    uint8_t big[12 + 40 * 4];
    memcpy(big, nack, 12);
    big[3] = (uint8_t)(sizeof(big) / 4 - 1);
    for (int i = 0; i < 40; i++) {
        uint16_t pid = (uint16_t)(i * 17);
        big[12 + 4 * i] = (uint8_t)(pid >> 8), big[13 + 4 * i] = (uint8_t)pid;
        big[14 + 4 * i] = 0xFF, big[15 + 4 * i] = 0xFF;
    }
    p = one(big, sizeof(big));
    assert_int_equal(rtcp_parse_nack(&p, &n), 0);
    assert_int_equal(n.count, RTCP_NACK_MAX_SEQS);
    assert_true(n.truncated);
    for (size_t i = 0; i < n.count; i++) assert_int_equal(n.seqs[i], i);
}

static void test_nack_build(void **state)
{
    (void)state;
    uint8_t out[256];
    rtcp_nack_t n;
    /* The RFC example back: the same bytes. */
    static const uint16_t wrap[] = {0xFFFE, 0xFFFF, 0x0001};
    int len = rtcp_build_nack(out, sizeof(out), 10, 11, wrap, 3);
    assert_int_equal(len, 16);
    assert_memory_equal(out, "\x81\xCD\x00\x03\x00\x00\x00\x0A\x00\x00\x00\x0B\xFF\xFE\x00\x05", 16);

    /* 65530 is the PID; 65535 is 5 after it (bit 4); 10 is 16 after it
     * across the wrap (bit 15); 11 is 17 after it: a new FCI; 40 another. */
    static const uint16_t seqs[] = {65530, 65535, 10, 11, 40};
    len = rtcp_build_nack(out, sizeof(out), 1, 2, seqs, 5);
    assert_int_equal(len, 24);
    assert_int_equal(out[3], 5);
    assert_memory_equal(out + 12, "\xFF\xFA\x80\x10\x00\x0B\x00\x00\x00\x28\x00\x00", 12);
    rtcp_packet_t p = one(out, (size_t)len);
    assert_int_equal(rtcp_parse_nack(&p, &n), 0);
    assert_int_equal(n.count, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(n.seqs[i], seqs[i]);

    /* Repeats add nothing; out of order still correct, just one FCI more. */
    static const uint16_t dup[] = {5, 5, 6, 6, 5};
    len = rtcp_build_nack(out, sizeof(out), 1, 2, dup, 5);
    assert_int_equal(len, 16);
    assert_memory_equal(out + 12, "\x00\x05\x00\x01", 4);
    static const uint16_t back[] = {20, 5, 6};
    len = rtcp_build_nack(out, sizeof(out), 1, 2, back, 3);
    assert_int_equal(len, 20);
    assert_memory_equal(out + 12, "\x00\x14\x00\x00\x00\x05\x00\x01", 8);

    /* 17 consecutive numbers fill one FCI exactly. */
    uint16_t run[17];
    for (int i = 0; i < 17; i++) run[i] = (uint16_t)(65535 + i);
    len = rtcp_build_nack(out, sizeof(out), 1, 2, run, 17);
    assert_int_equal(len, 16);
    assert_memory_equal(out + 12, "\xFF\xFF\xFF\xFF", 4);

    assert_int_equal(rtcp_build_nack(out, sizeof(out), 1, 2, seqs, 0), -EINVAL);
    assert_int_equal(rtcp_build_nack(out, 23, 1, 2, seqs, 5), -ENOSPC);
}

static void test_pli_fir(void **state)
{
    (void)state;
    /* RFC 4585 §6.3.1: PLI is the common header alone. */
    static const uint8_t pli[] = {0x81, 0xCE, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78};
    uint8_t out[64];
    assert_int_equal(rtcp_build_pli(out, sizeof(out), 1, 0x12345678), 12);
    assert_memory_equal(out, pli, 12);
    assert_int_equal(rtcp_build_pli(out, 11, 1, 0x12345678), -ENOSPC);
    rtcp_packet_t p = one(pli, sizeof(pli));
    uint32_t s, m;
    assert_int_equal(rtcp_parse_pli(&p, &s, &m), 0);
    assert_int_equal(s, 1);
    assert_int_equal(m, 0x12345678);
    rtcp_fir_t f;
    assert_int_equal(rtcp_parse_fir(&p, &f), -1);

    /* RFC 5104 §4.3.1: FMT 4, media SSRC 0, entry SSRC + seq nr + reserved. */
    static const uint8_t fir[] = {0x84, 0xCE, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                                  0x12, 0x34, 0x56, 0x78, 0x2A, 0x00, 0x00, 0x00};
    assert_int_equal(rtcp_build_fir(out, sizeof(out), 1, 0x12345678, 42), 20);
    assert_memory_equal(out, fir, 20);
    p = one(fir, sizeof(fir));
    assert_int_equal(rtcp_parse_fir(&p, &f), 0);
    assert_int_equal(f.sender_ssrc, 1);
    assert_int_equal(f.count, 1);
    assert_int_equal(f.entries[0].ssrc, 0x12345678);
    assert_int_equal(f.entries[0].seq_nr, 42);
    assert_int_equal(rtcp_parse_pli(&p, &s, &m), -1);
    /* No entry: refused. */
    uint8_t bad[12];
    memcpy(bad, fir, 12);
    bad[3] = 2;
    p = one(bad, 12);
    assert_int_equal(rtcp_parse_fir(&p, &f), -1);
}

static void test_remb(void **state)
{
    (void)state;
    /* draft-alvestrand-rmcat-remb §2.2: 1 000 000 bit/s = 250 000 << 2:
     * exp 2, mantissa 0x3D090 -> octets 0x0B 0xD0 0x90 after Num SSRC. */
    static const uint8_t remb[] = {0x8F, 0xCE, 0x00, 0x06, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                                   'R',  'E',  'M',  'B',  0x02, 0x0B, 0xD0, 0x90, 0xAA, 0xAA, 0xAA, 0xAA,
                                   0xBB, 0xBB, 0xBB, 0xBB};
    static const uint32_t ssrcs[] = {0xAAAAAAAA, 0xBBBBBBBB};
    uint8_t out[2048];
    assert_int_equal(rtcp_build_remb(out, sizeof(out), 1, 1000000, ssrcs, 2), sizeof(remb));
    assert_memory_equal(out, remb, sizeof(remb));
    /* Rounded down to what the mantissa holds. */
    assert_int_equal(rtcp_build_remb(out, sizeof(out), 1, 1000003, ssrcs, 2), sizeof(remb));
    assert_memory_equal(out, remb, sizeof(remb));
    rtcp_packet_t p = one(remb, sizeof(remb));
    rtcp_remb_t r;
    assert_int_equal(rtcp_parse_remb(&p, &r), 0);
    assert_int_equal(r.sender_ssrc, 1);
    assert_true(r.bitrate == 1000000);
    assert_int_equal(r.ssrc_count, 2);
    assert_false(r.truncated);
    assert_int_equal(r.ssrcs[1], 0xBBBBBBBB);

    /* Small values need no exponent; 300 Mbit/s is 146484 << 11; the largest
     * 64-bit value needs exp 46. */
    static const uint64_t rates[] = {0, 1, 0x3FFFF, 0x40000, 300000000, UINT64_MAX};
    static const uint64_t back[] = {0, 1, 0x3FFFF, 0x40000, 299999232, 0x3FFFFull << 46};
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        int n = rtcp_build_remb(out, sizeof(out), 1, rates[i], NULL, 0);
        assert_int_equal(n, 20);
        p = one(out, (size_t)n);
        assert_int_equal(rtcp_parse_remb(&p, &r), 0);
        assert_true(r.bitrate == back[i]);
        assert_int_equal(r.ssrc_count, 0);
    }
    /* Exponent 63 with a full mantissa does not fit 64 bits: saturates. */
    uint8_t huge[sizeof(remb)];
    memcpy(huge, remb, sizeof(huge));
    huge[17] = 0xFF, huge[18] = 0xFF, huge[19] = 0xFF;
    p = one(huge, sizeof(huge));
    assert_int_equal(rtcp_parse_remb(&p, &r), 0);
    assert_true(r.bitrate == UINT64_MAX);

    /* 255 SSRCs build; only RTCP_REMB_MAX_SSRCS are kept when decoded. */
    uint32_t many[256];
    for (int i = 0; i < 256; i++) many[i] = (uint32_t)i;
    int n = rtcp_build_remb(out, sizeof(out), 1, 5, many, 255);
    assert_int_equal(n, 20 + 255 * 4);
    p = one(out, (size_t)n);
    assert_int_equal(rtcp_parse_remb(&p, &r), 0);
    assert_int_equal(r.ssrc_count, RTCP_REMB_MAX_SSRCS);
    assert_true(r.truncated);
    assert_int_equal(r.ssrcs[RTCP_REMB_MAX_SSRCS - 1], RTCP_REMB_MAX_SSRCS - 1);
    assert_int_equal(rtcp_build_remb(out, sizeof(out), 1, 5, many, 256), -EINVAL);

    /* Not "REMB"; more SSRCs announced than present. */
    uint8_t bad[sizeof(remb)];
    memcpy(bad, remb, sizeof(bad));
    bad[15] = 'X';
    p = one(bad, sizeof(bad));
    assert_int_equal(rtcp_parse_remb(&p, &r), -1);
    memcpy(bad, remb, sizeof(bad));
    bad[16] = 3;
    p = one(bad, sizeof(bad));
    assert_int_equal(rtcp_parse_remb(&p, &r), -1);
}

/* draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1, by hand: base
 * sequence 65534 (so the numbers wrap), 15 packets, reference time 16
 * (1024 ms), feedback count 7, and all three chunk kinds:
 *   0x2003: run length, symbol 01 (small delta), 3 packets: 65534, 65535, 0
 *   0xC910: vector of 2-bit symbols 00 10 01 00 01 00 00: seqs 1..7
 *           (1 lost, 2 large, 3 small, 4 lost, 5 small, 6 and 7 lost)
 *   0xAC00: vector of 1-bit symbols 1 0 1 1 0 (the other 9 beyond the count):
 *           seqs 8..12 (8 small, 9 lost, 10 small, 11 small, 12 lost)
 * then the receive deltas of the 9 received packets, in 250 µs ticks:
 *   4, 0, 255, -200 (two octets), 8, 1, 16, 2, 3 */
static const uint8_t twcc_bytes[] = {
    0x8F, 0xCD, 0x00, 0x08,                         /* FMT 15, PT 205, 9 words */
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, /* sender, media SSRC */
    0xFF, 0xFE, 0x00, 0x0F,                         /* base seq, status count */
    0x00, 0x00, 0x10, 0x07,                         /* reference time, fb pkt count */
    0x20, 0x03, 0xC9, 0x10, 0xAC, 0x00,             /* chunks */
    0x04, 0x00, 0xFF, 0xFF, 0x38, 0x08, 0x01, 0x10, 0x02, 0x03,
};

static void test_twcc(void **state)
{
    (void)state;
    _Static_assert(sizeof(twcc_bytes) == 36, "9 words");
    rtcp_packet_t p = one(twcc_bytes, sizeof(twcc_bytes));
    rtcp_twcc_t t;
    rtcp_twcc_packet_t k[32];
    assert_int_equal(rtcp_parse_twcc(&p, &t, k, 32), 0);
    assert_int_equal(t.sender_ssrc, 1);
    assert_int_equal(t.media_ssrc, 2);
    assert_int_equal(t.base_seq, 65534);
    assert_int_equal(t.status_count, 15);
    assert_int_equal(t.reference_time, 16);
    assert_int_equal(t.fb_count, 7);
    assert_int_equal(t.count, 15);
    assert_false(t.truncated);
    static const uint16_t seq[15] = {65534, 65535, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const uint8_t st[15] = {1, 1, 1, 0, 2, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0};
    static const int32_t delta[15] = {4, 0, 255, 0, -200, 8, 0, 1, 0, 0, 16, 0, 2, 3, 0};
    static const int64_t at[15] = {1025000, 1025000, 1088750, 0, 1038750, 1040750, 0, 1041000, 0, 0,
                                   1045000, 0,       1045500, 1046250, 0};
    for (int i = 0; i < 15; i++) {
        assert_int_equal(k[i].seq, seq[i]);
        assert_int_equal(k[i].status, st[i]);
        assert_int_equal(k[i].delta, delta[i]);
        assert_true(k[i].arrival_us == at[i]);
    }

    /* A smaller array keeps the first packets and says so. */
    memset(k, 0, sizeof(k));
    assert_int_equal(rtcp_parse_twcc(&p, &t, k, 5), 0);
    assert_int_equal(t.count, 5);
    assert_true(t.truncated);
    assert_int_equal(k[4].delta, -200);
    assert_int_equal(k[5].seq, 0); /* untouched */
    assert_int_equal(rtcp_parse_twcc(&p, &t, NULL, 0), 0);
    assert_int_equal(t.count, 0);

    uint8_t bad[sizeof(twcc_bytes) + 4];
    /* The last delta cut (one word shorter: also loses three deltas). */
    memcpy(bad, twcc_bytes, sizeof(twcc_bytes));
    bad[3] = 7;
    p = one(bad, 32);
    assert_int_equal(rtcp_parse_twcc(&p, &t, k, 32), -1);
    /* The reserved symbol 11. */
    memcpy(bad, twcc_bytes, sizeof(twcc_bytes));
    bad[23] = 0x1C; /* 0xC91C: the sixth symbol becomes 11 */
    p = one(bad, sizeof(twcc_bytes));
    assert_int_equal(rtcp_parse_twcc(&p, &t, k, 32), -1);
    /* More packets than the chunks cover (the deltas read as chunks run out). */
    memcpy(bad, twcc_bytes, sizeof(twcc_bytes));
    bad[15] = 0x60;
    p = one(bad, sizeof(twcc_bytes));
    assert_int_equal(rtcp_parse_twcc(&p, &t, k, 32), -1);
    /* Negative reference time (signed 24 bits), a zero-packet feedback. */
    static const uint8_t empty[] = {0x8F, 0xCD, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x05, 0x00, 0x00,
                                    0xFF, 0xFF, 0xFF, 0x00};
    p = one(empty, sizeof(empty));
    assert_int_equal(rtcp_parse_twcc(&p, &t, k, 32), 0);
    assert_int_equal(t.reference_time, -1);
    assert_int_equal(t.count, 0);
    /* A run of 8191 lost packets in one chunk, then padding (P bit). */
    static const uint8_t run[] = {0xAF, 0xCD, 0x00, 0x05, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x00, 0x1F, 0xFF,
                                  0x00, 0x00, 0x01, 0x00, 0x1F, 0xFF, 0x00, 0x02};
    p = one(run, sizeof(run));
    assert_int_equal(p.body_len, 18);
    static rtcp_twcc_packet_t lots[8191];
    assert_int_equal(rtcp_parse_twcc(&p, &t, lots, 8191), 0);
    assert_int_equal(t.count, 8191);
    assert_int_equal(lots[8190].seq, 8190);
    assert_int_equal(lots[8190].status, RTCP_TWCC_NOT_RECEIVED);
}

static void test_compound(void **state)
{
    (void)state;
    /* Built end to end: RR, SDES CNAME, REMB, NACK — one compound packet. */
    uint8_t buf[512];
    size_t len = 0;
    static const uint16_t lost[] = {100, 102};
    static const uint32_t ssrcs[] = {0x22};
    int n;
    assert_true((n = rtcp_build_rr(buf + len, sizeof(buf) - len, 0x11, NULL, 0)) > 0), len += (size_t)n;
    assert_true((n = rtcp_build_sdes_cname(buf + len, sizeof(buf) - len, 0x11, "cascade", 7)) > 0), len += (size_t)n;
    assert_true((n = rtcp_build_remb(buf + len, sizeof(buf) - len, 0x11, 2500000, ssrcs, 1)) > 0), len += (size_t)n;
    assert_true((n = rtcp_build_nack(buf + len, sizeof(buf) - len, 0x11, 0x22, lost, 2)) > 0), len += (size_t)n;
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_iter_init(&it, buf, len);
    rtcp_report_t r;
    rtcp_sdes_t s;
    rtcp_remb_t remb;
    rtcp_nack_t nack;
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_report(&p, &r), 0);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_sdes(&p, &s), 0);
    assert_memory_equal(s.chunks[0].cname, "cascade", 7);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_remb(&p, &remb), 0);
    assert_true(remb.bitrate <= 2500000 && remb.bitrate > 2490000);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_nack(&p, &nack), 0);
    assert_int_equal(nack.count, 2);
    assert_int_equal(nack.seqs[1], 102);
    assert_int_equal(rtcp_iter_next(&it, &p), 0);
    assert_int_equal(rtcp_iter_next(&it, &p), 0);

    /* A body error in the middle (SR whose RC=3 needs more than its length)
     * costs that packet only: the next one is still found and decoded. */
    static const uint8_t mid_body[] = {0x80, 0xC9, 0x00, 0x01, 0, 0, 0, 1,                         /* RR */
                                       0x83, 0xC8, 0x00, 0x06, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, /* SR */
                                       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                       0x81, 0xCE, 0x00, 0x02, 0, 0, 0, 3, 0, 0, 0, 4}; /* PLI */
    rtcp_iter_init(&it, mid_body, sizeof(mid_body));
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_report(&p, &r), 0);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_parse_report(&p, &r), -1);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    uint32_t snd, med;
    assert_int_equal(rtcp_parse_pli(&p, &snd, &med), 0);
    assert_int_equal(med, 4);
    assert_int_equal(rtcp_iter_next(&it, &p), 0);

    /* A length running past the buffer in the middle: what came before
     * stands, the walk stops there (the next packet cannot be found). */
    uint8_t bad_len[sizeof(mid_body)];
    memcpy(bad_len, mid_body, sizeof(bad_len));
    bad_len[11] = 0x40;
    rtcp_iter_init(&it, bad_len, sizeof(bad_len));
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(p.pt, RTCP_PT_RR);
    assert_int_equal(rtcp_iter_next(&it, &p), -1);
    assert_int_equal(rtcp_iter_next(&it, &p), 0);
    /* The same for a version that is not 2, and for a header cut short. */
    memcpy(bad_len, mid_body, sizeof(bad_len));
    bad_len[8] = 0x43;
    rtcp_iter_init(&it, bad_len, sizeof(bad_len));
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_iter_next(&it, &p), -1);
    rtcp_iter_init(&it, mid_body, 10);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_iter_next(&it, &p), -1);
    /* Padding: the count must be 1..body. */
    static const uint8_t pad[] = {0xA0, 0xC9, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 4};
    p = one(pad, sizeof(pad));
    assert_true(p.padding);
    assert_int_equal(p.body_len, 4);
    uint8_t badpad[sizeof(pad)];
    memcpy(badpad, pad, sizeof(pad));
    badpad[11] = 9;
    rtcp_iter_init(&it, badpad, sizeof(badpad));
    assert_int_equal(rtcp_iter_next(&it, &p), -1);
    badpad[11] = 0;
    rtcp_iter_init(&it, badpad, sizeof(badpad));
    assert_int_equal(rtcp_iter_next(&it, &p), -1);
    /* Nothing to walk. */
    rtcp_iter_init(&it, NULL, 5);
    assert_int_equal(rtcp_iter_next(&it, &p), 0);
}

static void test_rate_limit(void **state)
{
    (void)state;
    rtcp_rate_limit_t rl = {0};
    assert_true(rtcp_rate_limit_allow(&rl, 5000, 1000));  /* first viewer: PLI goes */
    assert_false(rtcp_rate_limit_allow(&rl, 5500, 1000)); /* second, half a second on: folded */
    assert_false(rtcp_rate_limit_allow(&rl, 5999, 1000));
    assert_true(rtcp_rate_limit_allow(&rl, 6000, 1000));
    assert_false(rtcp_rate_limit_allow(&rl, 6000, 1000));
    assert_true(rtcp_rate_limit_allow(&rl, 100, 1000)); /* the clock went back */
    rtcp_rate_limit_t zero = {0};
    assert_true(rtcp_rate_limit_allow(&zero, 0, 1000)); /* time 0 is a time */
    assert_false(rtcp_rate_limit_allow(&zero, 0, 1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demux),     cmocka_unit_test(test_sr),        cmocka_unit_test(test_rr),
        cmocka_unit_test(test_sdes),      cmocka_unit_test(test_bye),       cmocka_unit_test(test_nack_parse),
        cmocka_unit_test(test_nack_build), cmocka_unit_test(test_pli_fir),  cmocka_unit_test(test_remb),
        cmocka_unit_test(test_twcc),      cmocka_unit_test(test_compound),  cmocka_unit_test(test_rate_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
