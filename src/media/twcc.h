/* twcc.h — transport-wide congestion control
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01) for the SFU, both
 * ends of it:
 *
 * - receiving (struct twcc_recv, one per publisher): the transport-wide
 *   sequence number of every packet the publisher sends us and when it
 *   arrived, kept in a ring of the last TWCC_RECV_RING, and turned every
 *   ~100 ms into an RTPFB transport-cc feedback (rtcp_build_twcc) from
 *   which the publisher's own send-side estimator (Chromium's) works;
 * - sending (struct twcc_send, one per viewer): our own transport-wide
 *   numbering of what we send the viewer, with each packet's send time and
 *   size in a ring of the last TWCC_SEND_RING, matched against the
 *   viewer's feedback to feed an estimator (struct twcc_bwe) whose
 *   estimate picks the viewer's simulcast layers as REMB does.
 *
 * The estimator is deliberately simple — a delay-gradient detector plus a
 * loss-based rule, not GoogCC's Kalman/trendline filter and probing:
 * - delay: the mean one-way delay (arrival minus send time, both clocks'
 *   offsets cancel in differences) per feedback; its change from the
 *   previous feedback, smoothed, is the gradient; its excess over a slowly
 *   following minimum is the queue. A queue over TWCC_QUEUE_US that still
 *   grows (or one over 4x that) is overuse: the estimate drops to 85% of
 *   the delivered (acknowledged) rate;
 * - loss: over 10% of a feedback's packets lost cuts the estimate by half
 *   the loss fraction; under 2% with no overuse it grows 8% per second;
 * - it never rises beyond 1.5x the delivered rate + 100 kbit/s: without
 *   probing, a rate never sent is a rate never measured.
 *
 * Pure: no I/O and no clock (times are passed in, in µs), no allocation;
 * every array is fixed in the structs. */
#ifndef CASCADE_MEDIA_TWCC_H
#define CASCADE_MEDIA_TWCC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/rtcp.h"

#define TWCC_RECV_RING 1024      /* arrivals kept per publisher (power of two) */
#define TWCC_SEND_RING 1024      /* sends kept per viewer (power of two) */
#define TWCC_FB_MAX 400          /* packets one feedback describes (fits an MTU) */
#define TWCC_FEEDBACK_MS 100     /* how often a publisher gets feedback */
#define TWCC_QUEUE_US 25000      /* queueing delay that, while growing, is overuse */

/* ---- the transport-wide sequence number element (2 bytes) ---- */

/* The number in an RTP packet's element id (one-byte or two-byte form);
 * false when absent or not 2 bytes. */
bool twcc_ext_read(const uint8_t *pkt, size_t len, uint8_t id, uint16_t *seq);
/* Overwrites the element id of a packet with seq; false when it has none. */
bool twcc_ext_write(uint8_t *pkt, size_t len, uint8_t id, uint16_t seq);

/* ---- receiving: feedback to a publisher ---- */

struct twcc_recv {
    bool started;
    int64_t max_ext;               /* highest extended sequence number seen */
    int64_t next;                  /* first one not yet reported */
    int64_t t0_us;                 /* the first arrival: reference times count from it */
    uint8_t fb_count;
    int64_t seq_of[TWCC_RECV_RING];     /* the extended number a slot holds; -1 empty */
    int64_t arrival_us[TWCC_RECV_RING];
    rtcp_twcc_packet_t scratch[TWCC_FB_MAX];
    uint64_t packets, late, feedbacks;
};

void twcc_recv_init(struct twcc_recv *r);
/* A packet with transport-wide number seq arrived at now_us. One already
 * reported (later than its feedback) is only counted as late. */
void twcc_recv_packet(struct twcc_recv *r, uint16_t seq, int64_t now_us);
/* The feedback for what arrived since the previous one: bytes written, 0
 * when nothing new arrived, negative when buf cannot hold even one packet's
 * feedback. A feedback stops early at TWCC_FB_MAX packets or at a gap
 * between arrivals no delta can carry; the rest goes in the next. */
int twcc_recv_feedback(struct twcc_recv *r, uint32_t sender_ssrc, uint32_t media_ssrc, uint8_t *buf, size_t cap);

/* ---- the estimator ---- */

struct twcc_bwe_sample {
    int64_t send_us;
    int64_t arrival_us;            /* receiver's clock; ignored when !received */
    uint32_t size;
    bool received;
};

struct twcc_bwe {
    uint64_t bps;                  /* the estimate; 0 until the first delivered rate */
    uint64_t acked_bps;            /* delivered rate over the last window; 0 before one */
    bool win_started;
    int64_t win_start_us, win_last_us;  /* arrival clock */
    uint64_t win_bytes;
    bool have_owd;
    int64_t owd_us, min_owd_us;    /* mean one-way delay (offset unknown) and its floor */
    int64_t trend_us;              /* smoothed change of owd per feedback */
    uint32_t loss_q8;              /* smoothed loss fraction, 1/256 */
    int64_t last_us, last_decrease_us;
    bool decreased;
    uint64_t overuses, loss_cuts, updates;
};

void twcc_bwe_init(struct twcc_bwe *b);
/* One feedback's packets (in sequence order) at now_us (sender's clock). */
void twcc_bwe_update(struct twcc_bwe *b, const struct twcc_bwe_sample *s, size_t n, int64_t now_us);
/* The queueing delay the estimator sees now, in µs. */
int64_t twcc_bwe_queue_us(const struct twcc_bwe *b);

/* ---- sending: numbering and feedback from a viewer ---- */

struct twcc_sent {
    uint32_t send_us;              /* low 32 bits (the ring is far shorter than their wrap) */
    uint16_t seq;
    uint16_t size;                 /* 0: empty */
};

struct twcc_send {
    uint16_t next_seq;
    struct twcc_sent ring[TWCC_SEND_RING];
    struct twcc_bwe bwe;
    int fb_last;                   /* last feedback packet count; -1 before one */
    uint64_t packets, feedbacks, feedbacks_lost, unknown;
};

void twcc_send_init(struct twcc_send *s);
/* The number for the next packet of size bytes sent at now_us (recorded). */
uint16_t twcc_send_stamp(struct twcc_send *s, size_t size, int64_t now_us);
/* A parsed feedback (rtcp_parse_twcc, t->count packets in pkts) at now_us:
 * the packets still in the ring go to the estimator. */
void twcc_send_feedback(struct twcc_send *s, const rtcp_twcc_t *t, const rtcp_twcc_packet_t *pkts, int64_t now_us);
/* The current estimate (0: none yet). */
static inline uint64_t twcc_send_estimate(const struct twcc_send *s) { return s->bwe.bps; }

#endif
