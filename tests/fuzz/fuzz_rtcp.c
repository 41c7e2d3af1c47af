/* fuzz_rtcp.c — libFuzzer target for the RTCP walker and decoders.
 *
 * Every packet of the input goes through every decoder (each must refuse
 * what is not its kind); what decodes must stay inside the buffer and its
 * caps, and where a builder exists, building from the decoded values and
 * decoding again must give the same values. The input read as a list of
 * sequence numbers must survive NACK building and parsing as a set. */
#include <stdint.h>
#include <string.h>

#include "media/rtcp.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

static uint8_t out[70000];

static bool inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static rtcp_packet_t reparse(int n)
{
    CHECK(n > 0 && n % 4 == 0);
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_iter_init(&it, out, (size_t)n);
    CHECK(rtcp_iter_next(&it, &p) == 1);
    CHECK(p.len == (size_t)n);
    CHECK(rtcp_iter_next(&it, &p) == 0);
    return p;
}

static void report(const rtcp_packet_t *p)
{
    rtcp_report_t r, r2;
    if (rtcp_parse_report(p, &r) < 0) return;
    CHECK(r.report_count <= RTCP_MAX_REPORTS);
    int n = r.is_sr ? rtcp_build_sr(out, sizeof(out), r.ssrc, &r.si, r.reports, r.report_count)
                    : rtcp_build_rr(out, sizeof(out), r.ssrc, r.reports, r.report_count);
    rtcp_packet_t q = reparse(n);
    CHECK(rtcp_parse_report(&q, &r2) == 0);
    CHECK(r2.is_sr == r.is_sr && r2.ssrc == r.ssrc && r2.report_count == r.report_count);
    CHECK(memcmp(&r2.si, &r.si, sizeof(r.si)) == 0);
    for (unsigned i = 0; i < r.report_count; i++) {
        const rtcp_report_block_t *a = &r.reports[i], *b = &r2.reports[i];
        CHECK(a->ssrc == b->ssrc && a->fraction_lost == b->fraction_lost && a->cumulative_lost == b->cumulative_lost);
        CHECK(a->ext_highest_seq == b->ext_highest_seq && a->jitter == b->jitter && a->lsr == b->lsr &&
              a->dlsr == b->dlsr);
    }
}

static void sdes(const rtcp_packet_t *p)
{
    rtcp_sdes_t s, s2;
    if (rtcp_parse_sdes(p, &s) < 0) return;
    CHECK(s.count == p->count);
    for (unsigned i = 0; i < s.count; i++) {
        const rtcp_sdes_chunk_t *c = &s.chunks[i];
        if (!c->cname) continue;
        CHECK(inside(c->cname, c->cname_len, p->body, p->body_len));
        if (c->cname_len == 0) continue;
        rtcp_packet_t q = reparse(rtcp_build_sdes_cname(out, sizeof(out), c->ssrc, (const char *)c->cname, c->cname_len));
        CHECK(rtcp_parse_sdes(&q, &s2) == 0 && s2.count == 1 && s2.chunks[0].ssrc == c->ssrc);
        CHECK(s2.chunks[0].cname_len == c->cname_len && memcmp(s2.chunks[0].cname, c->cname, c->cname_len) == 0);
    }
}

static void bye(const rtcp_packet_t *p)
{
    rtcp_bye_t b;
    if (rtcp_parse_bye(p, &b) < 0) return;
    CHECK(b.count == p->count);
    if (b.reason) CHECK(inside(b.reason, b.reason_len, p->body, p->body_len));
}

static uint8_t seen[65536 / 8], seen2[65536 / 8];

static void nack_roundtrip(const uint16_t *seqs, size_t n)
{
    static rtcp_nack_t back;
    memset(seen, 0, sizeof(seen));
    memset(seen2, 0, sizeof(seen2));
    for (size_t i = 0; i < n; i++) seen[seqs[i] >> 3] |= (uint8_t)(1u << (seqs[i] & 7));
    rtcp_packet_t q = reparse(rtcp_build_nack(out, sizeof(out), 1, 2, seqs, n));
    CHECK(rtcp_parse_nack(&q, &back) == 0 && !back.truncated && back.count <= n);
    CHECK(back.sender_ssrc == 1 && back.media_ssrc == 2);
    for (size_t i = 0; i < back.count; i++) seen2[back.seqs[i] >> 3] |= (uint8_t)(1u << (back.seqs[i] & 7));
    CHECK(memcmp(seen, seen2, sizeof(seen)) == 0);
}

static void feedback(const rtcp_packet_t *p)
{
    rtcp_fb_t fb;
    if (rtcp_parse_fb(p, &fb) == 0) CHECK(inside(fb.fci, fb.fci_len, p->body, p->body_len));

    static rtcp_nack_t nack;
    if (rtcp_parse_nack(p, &nack) == 0) {
        CHECK(nack.count >= 1 && nack.count <= RTCP_NACK_MAX_SEQS);
        if (!nack.truncated) nack_roundtrip(nack.seqs, nack.count);
    }

    uint32_t s, m, s2, m2;
    if (rtcp_parse_pli(p, &s, &m) == 0) {
        rtcp_packet_t q = reparse(rtcp_build_pli(out, sizeof(out), s, m));
        CHECK(rtcp_parse_pli(&q, &s2, &m2) == 0 && s2 == s && m2 == m);
    }

    rtcp_fir_t fir, fir2;
    if (rtcp_parse_fir(p, &fir) == 0) {
        CHECK(fir.count >= 1 && fir.count <= RTCP_FIR_MAX_ENTRIES);
        rtcp_packet_t q = reparse(rtcp_build_fir(out, sizeof(out), fir.sender_ssrc, fir.entries[0].ssrc,
                                                 fir.entries[0].seq_nr));
        CHECK(rtcp_parse_fir(&q, &fir2) == 0 && fir2.count == 1 && fir2.sender_ssrc == fir.sender_ssrc);
        CHECK(fir2.entries[0].ssrc == fir.entries[0].ssrc && fir2.entries[0].seq_nr == fir.entries[0].seq_nr);
    }

    static rtcp_remb_t remb, remb2;
    if (rtcp_parse_remb(p, &remb) == 0) {
        CHECK(remb.ssrc_count <= RTCP_REMB_MAX_SSRCS);
        rtcp_packet_t q = reparse(rtcp_build_remb(out, sizeof(out), remb.sender_ssrc, remb.bitrate, remb.ssrcs,
                                                  remb.ssrc_count));
        CHECK(rtcp_parse_remb(&q, &remb2) == 0 && remb2.ssrc_count == remb.ssrc_count);
        /* Exact unless the decoded value saturated. */
        if (remb.bitrate != UINT64_MAX) CHECK(remb2.bitrate == remb.bitrate);
        CHECK(memcmp(remb2.ssrcs, remb.ssrcs, remb.ssrc_count * 4u) == 0);
    }

    static rtcp_twcc_packet_t pk[1024];
    rtcp_twcc_t t;
    if (rtcp_parse_twcc(p, &t, pk, 1024) == 0) {
        CHECK(t.count <= 1024 && t.count <= t.status_count && t.truncated == (t.count < t.status_count));
        int64_t at = (int64_t)t.reference_time * 64000;
        for (size_t i = 0; i < t.count; i++) {
            CHECK(pk[i].seq == (uint16_t)(t.base_seq + i));
            CHECK(pk[i].status <= RTCP_TWCC_LARGE_DELTA);
            if (pk[i].status == RTCP_TWCC_NOT_RECEIVED) {
                CHECK(pk[i].delta == 0 && pk[i].arrival_us == 0);
                continue;
            }
            if (pk[i].status == RTCP_TWCC_SMALL_DELTA) CHECK(pk[i].delta >= 0 && pk[i].delta <= 255);
            at += (int64_t)pk[i].delta * 250;
            CHECK(pk[i].arrival_us == at);
        }
        /* A smaller array sees the same first packets. */
        rtcp_twcc_packet_t few[3];
        rtcp_twcc_t t2;
        CHECK(rtcp_parse_twcc(p, &t2, few, 3) == 0);
        for (size_t i = 0; i < t2.count; i++)
            CHECK(few[i].seq == pk[i].seq && few[i].status == pk[i].status && few[i].delta == pk[i].delta &&
                  few[i].arrival_us == pk[i].arrival_us);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)rtcp_is_rtcp(data, size);
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_iter_init(&it, data, size);
    size_t walked = 0;
    int rc;
    while ((rc = rtcp_iter_next(&it, &p)) == 1) {
        CHECK(p.data == data + walked && p.len >= 4 && p.len % 4 == 0 && inside(p.data, p.len, data, size));
        CHECK(p.body == p.data + 4 && p.body_len <= p.len - 4);
        walked += p.len;
        report(&p);
        sdes(&p);
        bye(&p);
        feedback(&p);
    }
    CHECK(rc == 0 ? walked == size : walked < size);
    CHECK(rtcp_iter_next(&it, &p) == 0);

    /* The input as sequence numbers (up to 256 of them) through NACK. */
    uint16_t seqs[256];
    size_t n = size / 2 < 256 ? size / 2 : 256;
    for (size_t i = 0; i < n; i++) seqs[i] = (uint16_t)(data[2 * i] << 8 | data[2 * i + 1]);
    if (n) nack_roundtrip(seqs, n);
    return 0;
}
