/* fuzz_twcc.c — libFuzzer target for transport-wide congestion control
 * (media/twcc.h and rtcp.h's fmt 15 parser and builder).
 *
 * The input as an RTCP compound: each transport-cc feedback that parses is
 * built again from its decoded packets and must parse to the same values,
 * and goes to a viewer's sender state (twcc_send_feedback) holding sends
 * the feedback may or may not name — the estimator must stay in its
 * bounds. The input read as (sequence number, arrival step) pairs goes
 * through a publisher's receive ring; every feedback it gives must parse
 * and describe packets in order. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/rtcp.h"
#include "media/twcc.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

static uint8_t out[300000];
static rtcp_twcc_packet_t pk[65536], pk2[65536];
static struct twcc_send snd;
static struct twcc_recv rcv;

static rtcp_packet_t reparse(const uint8_t *buf, int n)
{
    CHECK(n > 0 && n % 4 == 0);
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_iter_init(&it, buf, (size_t)n);
    CHECK(rtcp_iter_next(&it, &p) == 1);
    CHECK(rtcp_iter_next(&it, &p) == 0);
    return p;
}

static void feedback(const rtcp_packet_t *p, int64_t now_us)
{
    rtcp_twcc_t t, t2;
    if (rtcp_parse_twcc(p, &t, pk, 65536) < 0) return;
    CHECK(t.count == t.status_count && !t.truncated);
    if (t.count) {
        int n = rtcp_build_twcc(out, sizeof(out), t.sender_ssrc, t.media_ssrc, t.base_seq, t.reference_time,
                                t.fb_count, pk, t.count);
        rtcp_packet_t q = reparse(out, n);
        CHECK(rtcp_parse_twcc(&q, &t2, pk2, 65536) == 0);
        CHECK(t2.base_seq == t.base_seq && t2.status_count == t.status_count && t2.count == t.count);
        CHECK(t2.reference_time == t.reference_time && t2.fb_count == t.fb_count);
        for (size_t i = 0; i < t.count; i++) {
            CHECK(pk2[i].seq == pk[i].seq && pk2[i].status == pk[i].status);
            if (pk[i].status) CHECK(pk2[i].delta == pk[i].delta && pk2[i].arrival_us == pk[i].arrival_us);
        }
    }
    twcc_send_feedback(&snd, &t, pk, now_us);
    CHECK(snd.bwe.bps == 0 || (snd.bwe.bps >= 30000 && snd.bwe.bps <= 100000000));
}

static void receive(const uint8_t *data, size_t size)
{
    twcc_recv_init(&rcv);
    int64_t now = 1000000;
    for (size_t i = 0; i + 3 <= size; i += 3) {
        uint16_t seq = (uint16_t)(data[i] << 8 | data[i + 1]);
        now += (int64_t)data[i + 2] * 997; /* up to ~0.25 s a step */
        twcc_recv_packet(&rcv, seq, now);
        if (data[i + 2] & 1) continue;
        int n;
        while ((n = twcc_recv_feedback(&rcv, 1, 2, out, 1500)) > 0) {
            rtcp_packet_t q = reparse(out, n);
            rtcp_twcc_t t;
            CHECK(rtcp_parse_twcc(&q, &t, pk, 65536) == 0);
            CHECK(t.status_count >= 1 && t.status_count <= TWCC_FB_MAX);
            for (size_t k = 1; k < t.count; k++)
                if (pk[k].status && pk[k - 1].status) CHECK(pk[k].arrival_us - pk[k - 1].arrival_us == pk[k].delta * 250);
        }
        CHECK(n == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    twcc_send_init(&snd);
    /* sends 0..size-1 (mod 2^16), 1 ms apart, sizes from the input */
    int64_t now = 5000000;
    for (size_t i = 0; i < size && i < 3000; i++, now += 1000) twcc_send_stamp(&snd, 100 + data[i] * 4, now);
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_iter_init(&it, data, size);
    while (rtcp_iter_next(&it, &p) == 1) feedback(&p, now += 20000);
    receive(data, size);
    return 0;
}
