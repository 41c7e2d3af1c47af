/* test_twcc.c — transport-wide congestion control (media/twcc.h and the
 * RTPFB fmt 15 builder in rtcp.h): feedback built and parsed back (run
 * lengths, 1-bit and 2-bit status vectors, missing packets, large and
 * negative deltas, sequence wrap-around), the extension element read and
 * rewritten in real RTP packets, and the estimator driven end to end —
 * arrivals recorded, feedback built, parsed and matched to our sends — over
 * a simulated path that stays clear, that queues up, and that loses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "media/rtcp.h"
#include "media/twcc.h"

/* The one packet of a buffer, parsed as transport-cc feedback. */
static void parse_one(const uint8_t *buf, int len, rtcp_twcc_t *t, rtcp_twcc_packet_t *k, size_t cap)
{
    rtcp_iter_t it;
    rtcp_packet_t p;
    assert_true(len > 0);
    rtcp_iter_init(&it, buf, (size_t)len);
    assert_int_equal(rtcp_iter_next(&it, &p), 1);
    assert_int_equal(rtcp_iter_next(&it, &p), 0);
    assert_int_equal(rtcp_parse_twcc(&p, t, k, cap), 0);
}

/* The receiver's next feedback (sender SSRC 1, media SSRC 2) built into buf
 * and parsed back into t and k (TWCC_FB_MAX packets at the most). */
static void next_feedback(struct twcc_recv *r, uint8_t *buf, size_t cap, rtcp_twcc_t *t, rtcp_twcc_packet_t *k)
{
    int len = twcc_recv_feedback(r, 1, 2, buf, cap);
    parse_one(buf, len, t, k, TWCC_FB_MAX);
}

static void test_build_round_trip(void **state)
{
    (void)state;
    /* 20 received (a run), 14 alternating lost/received (a 1-bit vector),
     * then a large and a negative delta among small ones (2-bit vectors),
     * and a lost tail of 3 (a run to the end). */
    rtcp_twcc_packet_t in[44];
    memset(in, 0, sizeof(in));
    size_t n = 0;
    for (int i = 0; i < 20; i++) in[n++] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_SMALL_DELTA, .delta = i * 10};
    for (int i = 0; i < 14; i++)
        in[n++] = (rtcp_twcc_packet_t){.status = (uint8_t)(i & 1 ? RTCP_TWCC_SMALL_DELTA : RTCP_TWCC_NOT_RECEIVED),
                                       .delta = i & 1 ? 255 : 0};
    in[n++] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_LARGE_DELTA, .delta = 8000}; /* 2 s */
    in[n++] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_LARGE_DELTA, .delta = -40};
    in[n++] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_SMALL_DELTA, .delta = 1};
    in[n++] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_NOT_RECEIVED};
    in[n++] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_SMALL_DELTA, .delta = 0};
    in[n++] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_LARGE_DELTA, .delta = INT16_MIN};
    in[n++] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_LARGE_DELTA, .delta = INT16_MAX};
    for (int i = 0; i < 3; i++) in[n++] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_NOT_RECEIVED};
    assert_int_equal(n, 44);

    uint8_t buf[1500];
    int len = rtcp_build_twcc(buf, sizeof(buf), 0x11223344, 0x55667788, 65530, -5, 7, in, n);
    assert_true(len > 0 && len % 4 == 0);
    /* chunk 1: a run of 20 small deltas (T=0, S=1, length 20) */
    assert_int_equal(buf[20] << 8 | buf[21], 1 << 13 | 20);
    /* chunk 2: a 1-bit vector (T=1, S=0), lost/received alternating */
    assert_int_equal(buf[22] << 8 | buf[23], 0x8000 | 0x1555);

    rtcp_twcc_t t;
    rtcp_twcc_packet_t out[64];
    parse_one(buf, len, &t, out, 64);
    assert_int_equal(t.sender_ssrc, 0x11223344);
    assert_int_equal(t.media_ssrc, 0x55667788);
    assert_int_equal(t.base_seq, 65530);
    assert_int_equal(t.status_count, 44);
    assert_int_equal(t.reference_time, -5);
    assert_int_equal(t.fb_count, 7);
    assert_int_equal(t.count, 44);
    int64_t at = -5 * 64000;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].seq, (uint16_t)(65530 + i)); /* wraps past 65535 to 0 */
        assert_int_equal(out[i].status, in[i].status);
        if (in[i].status == RTCP_TWCC_NOT_RECEIVED) continue;
        assert_int_equal(out[i].delta, in[i].delta);
        at += (int64_t)in[i].delta * 250;
        assert_int_equal(out[i].arrival_us, at);
    }
}

static void test_build_refusals(void **state)
{
    (void)state;
    rtcp_twcc_packet_t k[2] = {{.status = RTCP_TWCC_SMALL_DELTA, .delta = 256}, {.status = RTCP_TWCC_SMALL_DELTA}};
    uint8_t buf[64];
    assert_int_equal(rtcp_build_twcc(buf, sizeof(buf), 1, 2, 0, 0, 0, k, 2), -EINVAL); /* small delta > 255 */
    k[0].delta = -1;
    assert_int_equal(rtcp_build_twcc(buf, sizeof(buf), 1, 2, 0, 0, 0, k, 2), -EINVAL); /* small delta < 0 */
    k[0] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_LARGE_DELTA, .delta = 40000};
    assert_int_equal(rtcp_build_twcc(buf, sizeof(buf), 1, 2, 0, 0, 0, k, 2), -EINVAL); /* beyond 16 bits */
    k[0] = (rtcp_twcc_packet_t){.status = 3};
    assert_int_equal(rtcp_build_twcc(buf, sizeof(buf), 1, 2, 0, 0, 0, k, 2), -EINVAL); /* reserved symbol */
    k[0] = (rtcp_twcc_packet_t){.status = RTCP_TWCC_SMALL_DELTA};
    assert_int_equal(rtcp_build_twcc(buf, sizeof(buf), 1, 2, 0, 0x800000, 0, k, 2), -EINVAL); /* 24 bits */
    assert_int_equal(rtcp_build_twcc(buf, sizeof(buf), 1, 2, 0, 0, 0, k, 0), -EINVAL);
    assert_int_equal(rtcp_build_twcc(buf, 20, 1, 2, 0, 0, 0, k, 2), -ENOSPC);
    assert_int_equal(rtcp_build_twcc(buf, sizeof(buf), 1, 2, 0, 0, 0, k, 2), 24);
}

/* Arrivals across the sequence wrap with two missing, one late packet and
 * a gap no delta carries: the feedback says exactly that. */
static void test_recv_feedback(void **state)
{
    (void)state;
    struct twcc_recv *r = malloc(sizeof(*r));
    assert_non_null(r);
    twcc_recv_init(r);
    uint8_t buf[1500];
    rtcp_twcc_t t;
    rtcp_twcc_packet_t k[TWCC_FB_MAX];
    assert_int_equal(twcc_recv_feedback(r, 1, 2, buf, sizeof(buf)), 0); /* nothing yet */
    int64_t now = 5000000;
    for (uint16_t s = 65532, i = 0; i < 8; s++, i++) { /* 65532..65535, 0..3 without 65535 and 1 */
        if (s == 65535 || s == 1) continue;
        twcc_recv_packet(r, s, now + i * 1000); /* 1 ms apart: 4 ticks */
    }
    next_feedback(r, buf, sizeof(buf), &t, k);
    assert_int_equal(t.base_seq, 65532);
    assert_int_equal(t.status_count, 8);
    assert_int_equal(t.fb_count, 0);
    static const uint8_t want[8] = {1, 1, 1, 0, 1, 0, 1, 1};
    for (size_t i = 0; i < 8; i++) assert_int_equal(k[i].status, want[i]);
    assert_int_equal(k[1].arrival_us - k[0].arrival_us, 1000);
    assert_int_equal(k[4].arrival_us - k[2].arrival_us, 2000);
    assert_int_equal(twcc_recv_feedback(r, 1, 2, buf, sizeof(buf)), 0); /* all reported */

    twcc_recv_packet(r, 1, now + 9000); /* its feedback is gone: late */
    assert_int_equal(r->late, 1);

    /* 2 s later: a large delta; 10 s after that: no delta carries it, the
     * feedback stops there and the next one takes a new reference. */
    twcc_recv_packet(r, 4, now + 2007000);
    twcc_recv_packet(r, 5, now + 12007000);
    next_feedback(r, buf, sizeof(buf), &t, k);
    assert_int_equal(t.base_seq, 4);
    assert_int_equal(t.status_count, 1);
    assert_int_equal(t.fb_count, 1);
    next_feedback(r, buf, sizeof(buf), &t, k);
    assert_int_equal(t.base_seq, 5);
    assert_int_equal(t.status_count, 1);
    assert_int_equal(k[0].status, RTCP_TWCC_SMALL_DELTA);
    assert_int_equal(twcc_recv_feedback(r, 1, 2, buf, sizeof(buf)), 0);

    /* 2 s between two packets in one feedback: a large delta */
    twcc_recv_packet(r, 6, now + 12008000);
    twcc_recv_packet(r, 7, now + 14008000);
    next_feedback(r, buf, sizeof(buf), &t, k);
    assert_int_equal(t.status_count, 2);
    assert_int_equal(k[1].status, RTCP_TWCC_LARGE_DELTA);
    assert_int_equal(k[1].delta, 8000);

    /* A burst longer than one feedback takes several. */
    for (int i = 0; i < TWCC_FB_MAX + 10; i++) twcc_recv_packet(r, (uint16_t)(8 + i), now + 14009000 + i * 100);
    next_feedback(r, buf, sizeof(buf), &t, k);
    assert_int_equal(t.status_count, TWCC_FB_MAX);
    next_feedback(r, buf, sizeof(buf), &t, k);
    assert_int_equal(t.base_seq, 8 + TWCC_FB_MAX);
    assert_int_equal(t.status_count, 10);
    free(r);
}

/* An RTP packet with a one-byte-form extension block: mid (id 1, "0")
 * then transport-wide seq (id 3, 2 bytes), padded to a word. */
static size_t rtp_with_ext(uint8_t *p, uint16_t tw)
{
    static const uint8_t hdr[] = {0x90, 96, 0x12, 0x34, 0, 0, 0, 1, 0xAA, 0xBB, 0xCC, 0xDD, 0xBE, 0xDE, 0, 2,
                                  0x10, '0', 0x31, 0, 0, 0, 0, 0};
    memcpy(p, hdr, sizeof(hdr));
    p[19] = (uint8_t)(tw >> 8), p[20] = (uint8_t)tw;
    memset(p + sizeof(hdr), 0x5A, 100);
    return sizeof(hdr) + 100;
}

static void test_ext(void **state)
{
    (void)state;
    uint8_t p[200];
    size_t n = rtp_with_ext(p, 0xBEEF);
    uint16_t seq = 0;
    assert_true(twcc_ext_read(p, n, 3, &seq));
    assert_int_equal(seq, 0xBEEF);
    assert_false(twcc_ext_read(p, n, 1, &seq)); /* the mid: 1 byte, not ours */
    assert_false(twcc_ext_read(p, n, 4, &seq));
    assert_true(twcc_ext_write(p, n, 3, 0x0102));
    assert_true(twcc_ext_read(p, n, 3, &seq));
    assert_int_equal(seq, 0x0102);
    assert_int_equal(p[17], '0'); /* the rest untouched */
    assert_false(twcc_ext_write(p, 11, 3, 1)); /* truncated */
    assert_false(twcc_ext_write(p, n, 0, 1));
}

/* ---- end to end over a simulated path ---- */

struct path {
    int64_t base_us;      /* one-way delay without a queue */
    int64_t ramp_from_us; /* from then on the queue grows ... */
    int64_t ramp_per_s;   /* ... this many µs per second */
    int lose_every;       /* every n-th packet lost (0: none) */
};

/* Sends 1 Mbit/s (1000-byte packets every 8 ms) for secs seconds from
 * *now over the path, the receiver's feedback every 100 ms going back to
 * the sender's estimator. The receiver's clock is 7 s off ours. */
static void run(struct twcc_send *snd, struct twcc_recv *rcv, const struct path *pa, int64_t *now, int secs)
{
    uint8_t pkt[1200], fb[1500];
    rtcp_twcc_packet_t k[TWCC_FB_MAX];
    rtcp_twcc_t t;
    int64_t end = *now + (int64_t)secs * 1000000, next_fb = *now + 100000;
    memset(pkt, 0, sizeof(pkt));
    rtp_with_ext(pkt, 0);
    for (int64_t at = *now; at < end; at += 8000) {
        size_t n = 1000;
        assert_true(twcc_ext_write(pkt, n, 3, snd->next_seq));
        uint16_t seq = twcc_send_stamp(snd, n, at);
        int64_t q = at > pa->ramp_from_us ? (at - pa->ramp_from_us) * pa->ramp_per_s / 1000000 : 0;
        uint16_t got;
        assert_true(twcc_ext_read(pkt, n, 3, &got));
        assert_int_equal(got, seq);
        if (!pa->lose_every || seq % pa->lose_every) twcc_recv_packet(rcv, got, at + pa->base_us + q + 7000000);
        if (at >= next_fb) {
            next_fb += 100000;
            int len;
            while ((len = twcc_recv_feedback(rcv, 9, 8, fb, sizeof(fb))) > 0) {
                parse_one(fb, len, &t, k, TWCC_FB_MAX);
                twcc_send_feedback(snd, &t, k, at + 20000); /* it comes back 20 ms later */
            }
        }
    }
    *now = end;
}

/* The sender and the receiver of an end-to-end run, fresh. */
static void ends_new(struct twcc_send **snd, struct twcc_recv **rcv)
{
    *snd = malloc(sizeof(**snd));
    *rcv = malloc(sizeof(**rcv));
    assert_non_null(*snd);
    assert_non_null(*rcv);
    twcc_send_init(*snd);
    twcc_recv_init(*rcv);
}

static void test_estimator_clear_path(void **state)
{
    (void)state;
    struct twcc_send *snd;
    struct twcc_recv *rcv;
    ends_new(&snd, &rcv);
    struct path clear = {.base_us = 30000};
    int64_t now = 1000000;
    run(snd, rcv, &clear, &now, 1);
    run(snd, rcv, &clear, &now, 5);
    /* delivered ~1 Mbit/s: the estimate sits at its ceiling, above it */
    assert_in_range(snd->bwe.acked_bps, 950000, 1050000);
    assert_in_range(twcc_send_estimate(snd), 1400000, 1700000);
    assert_int_equal(snd->bwe.overuses, 0);
    assert_int_equal(snd->bwe.loss_cuts, 0);
    assert_true(snd->feedbacks >= 50);
    assert_int_equal(snd->feedbacks_lost, 0);
    assert_int_equal(snd->unknown, 0);
    assert_true(twcc_bwe_queue_us(&snd->bwe) < 1000);
    free(snd);
    free(rcv);
}

static void test_estimator_delay_ramp(void **state)
{
    (void)state;
    struct twcc_send *snd;
    struct twcc_recv *rcv;
    ends_new(&snd, &rcv);
    int64_t now = 1000000;
    /* clear for 4 s, then the queue grows 100 ms per second: a path that
     * carries less than we send */
    struct path ramp = {.base_us = 30000, .ramp_from_us = now + 4000000, .ramp_per_s = 100000};
    run(snd, rcv, &ramp, &now, 4);
    uint64_t before = twcc_send_estimate(snd);
    assert_true(before > 1000000);
    assert_int_equal(snd->bwe.overuses, 0);
    run(snd, rcv, &ramp, &now, 2);
    assert_true(snd->bwe.overuses >= 1);
    assert_true(twcc_bwe_queue_us(&snd->bwe) > TWCC_QUEUE_US);
    /* 85% of what was delivered, so below what we send */
    assert_true(twcc_send_estimate(snd) < 1000000);
    assert_true(twcc_send_estimate(snd) < before * 2 / 3);
    assert_int_equal(snd->bwe.loss_cuts, 0);
    free(snd);
    free(rcv);
}

static void test_estimator_loss(void **state)
{
    (void)state;
    struct twcc_send *snd;
    struct twcc_recv *rcv;
    ends_new(&snd, &rcv);
    int64_t now = 1000000;
    struct path clear = {.base_us = 30000}, lossy = {.base_us = 30000, .lose_every = 4};
    run(snd, rcv, &clear, &now, 3);
    uint64_t before = twcc_send_estimate(snd);
    run(snd, rcv, &lossy, &now, 3); /* 25% lost, no queue */
    assert_true(snd->bwe.loss_cuts >= 3);
    assert_int_equal(snd->bwe.overuses, 0);
    assert_true(twcc_send_estimate(snd) < before / 2);
    /* the loss gone, it grows again */
    uint64_t low = twcc_send_estimate(snd);
    run(snd, rcv, &clear, &now, 3);
    assert_true(twcc_send_estimate(snd) > low);
    free(snd);
    free(rcv);
}

/* Feedback naming packets we never sent (or long forgotten) changes
 * nothing; lost feedback is counted. */
static void test_send_unknown(void **state)
{
    (void)state;
    struct twcc_send *snd = malloc(sizeof(*snd));
    assert_non_null(snd);
    twcc_send_init(snd);
    for (int i = 0; i < 3 * TWCC_SEND_RING; i++) twcc_send_stamp(snd, 1000, i * 1000);
    rtcp_twcc_t t = {.base_seq = 5, .status_count = 2, .count = 2, .fb_count = 3};
    rtcp_twcc_packet_t k[2] = {{.seq = 5, .status = 1, .arrival_us = 10}, {.seq = 6, .status = 1, .arrival_us = 20}};
    twcc_send_feedback(snd, &t, k, 3 * TWCC_SEND_RING * 1000);
    assert_int_equal(snd->unknown, 2);
    t.fb_count = 5;
    twcc_send_feedback(snd, &t, k, 3 * TWCC_SEND_RING * 1000);
    assert_int_equal(snd->feedbacks_lost, 1);
    assert_int_equal(twcc_send_estimate(snd), 0);
    free(snd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_round_trip),  cmocka_unit_test(test_build_refusals),
        cmocka_unit_test(test_recv_feedback),     cmocka_unit_test(test_ext),
        cmocka_unit_test(test_estimator_clear_path), cmocka_unit_test(test_estimator_delay_ramp),
        cmocka_unit_test(test_estimator_loss),    cmocka_unit_test(test_send_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
