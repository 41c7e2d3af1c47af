/* h264_rtp.h — RFC 6184 packetizer: H.264 access units (Annex B, as the PS
 * demuxer hands them out) into RTP packets for WebRTC viewers.
 *
 * One packetizer per outgoing stream (its SSRC and sequence numbers). Use:
 *   gb_h264_rtp_begin(p, au, len, ts90k);
 *   while ((n = gb_h264_rtp_next(p, buf, cap)) > 0) send(buf, n);
 * Each packet is written into the caller's buffer (cap >= GB_RTP_HEADER_LEN +
 * max_payload); nothing is allocated. The access unit must stay valid until
 * gb_h264_rtp_next() returned 0 or the next begin.
 *
 * What goes out (RFC 6184 §5.6, §5.8; mode 1, non-interleaved):
 *   - a NAL unit of up to max_payload bytes as a single NAL unit packet;
 *   - a larger one as FU-A fragments (FU indicator F|NRI|28, FU header
 *     S|E|R|type), each at most max_payload bytes of payload;
 *   - before every IDR access unit, the last SPS and PPS seen (cameras often
 *     send them once in a PS stream, a viewer joining later needs them): they
 *     go after a leading AUD, and the AU's own SPS/PPS are then not repeated;
 *   - NAL types 0 and 24-31 (unspecified in H.264; 24-29 would be read as
 *     STAP/MTAP/FU by a receiver) are left out, counted;
 *   - the marker bit on the last packet of the access unit (§5.1);
 *   - sequence numbers continuous across access units (16-bit wrap), one
 *     timestamp per access unit. */
#ifndef CASCADE_MEDIA_H264_RTP_H
#define CASCADE_MEDIA_H264_RTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/h264.h"
#include "media/rtp.h"

#define GB_H264_RTP_MAX_PARAM 1024  /* SPS/PPS above this are not remembered */
#define GB_H264_RTP_FU_A 28

typedef struct {
    uint64_t access_units, packets, bytes; /* bytes: RTP packets, headers included */
    uint64_t fu_a_packets;
    uint64_t params_inserted;   /* IDR access units sent with remembered SPS/PPS */
    uint64_t idr_without_params; /* IDR sent before any SPS/PPS was seen */
    uint64_t params_too_big;
    uint64_t nals_dropped;      /* types 0 and 24-31: not H.264 payload (RFC 6184 §5.2) */
} gb_h264_rtp_stats_t;

typedef struct {
    uint32_t ssrc;
    uint8_t payload_type;
    uint16_t seq;               /* of the next packet */
    size_t max_payload;
    uint8_t sps[GB_H264_RTP_MAX_PARAM], pps[GB_H264_RTP_MAX_PARAM];
    size_t sps_len, pps_len;
    /* The access unit being sent. */
    const uint8_t *au;
    size_t au_len, pos;         /* gb_nal_next position in au */
    uint32_t ts;
    bool insert;                /* this AU gets the remembered SPS/PPS */
    size_t insert_pos;          /* pos at which they go */
    int inserted;               /* 0, 1 (SPS sent), 2 (both) */
    gb_nal_t cur, next;
    bool have_cur, have_next;
    size_t frag_off;            /* FU-A: next byte of cur to send (0: not started) */
    gb_h264_rtp_stats_t stats;
} gb_h264_rtp_t;

/* max_payload: RTP payload budget per packet, 3..(65535 - 12); 0 picks 1200
 * (browsers' usual budget, room left for SRTP and header extensions).
 * Returns 0, or -1 for a bad size. */
int gb_h264_rtp_init(gb_h264_rtp_t *p, uint32_t ssrc, uint8_t payload_type, uint16_t first_seq, size_t max_payload);

/* Starts sending one access unit with its 90 kHz timestamp (an unfinished
 * previous one is abandoned). Remembers its SPS/PPS. Returns the number of
 * NAL units it will send (inserted SPS/PPS included), 0 when it holds none. */
int gb_h264_rtp_begin(gb_h264_rtp_t *p, const uint8_t *au, size_t len, uint32_t ts);

/* Writes the next packet into buf. Returns its length, 0 when the access
 * unit is done, or -1 when cap < GB_RTP_HEADER_LEN + max_payload (nothing
 * consumed). */
int gb_h264_rtp_next(gb_h264_rtp_t *p, uint8_t *buf, size_t cap);

#endif
