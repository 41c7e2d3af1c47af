/* rtp.h — RTP (RFC 3550) for GB/T 28181 media: packing a PS frame into RTP
 * packets, parsing RTP headers, receiver statistics, and the RFC 4571 framing
 * used for RTP over TCP (a 2-byte length in front of each packet).
 *
 * Parsing never copies: gb_rtp_packet_t points into the caller's buffer. */
#ifndef CASCADE_MEDIA_RTP_H
#define CASCADE_MEDIA_RTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GB_RTP_HEADER_LEN 12
#define GB_RTP_PT_PS 96
#define GB_RTP_CLOCK 90000
#define GB_RTP_MAX_PAYLOAD_UDP 1400 /* keeps a packet under a 1500-byte MTU */
#define GB_RTP_MAX_PACKET 65535     /* RFC 4571 length field */

typedef struct {
    uint8_t version;
    bool padding, extension, marker;
    uint8_t csrc_count;
    uint8_t payload_type;
    uint16_t seq;
    uint32_t timestamp, ssrc;
    uint32_t csrc[15];
    uint16_t ext_profile;       /* RFC 3550 §5.3.1, when extension */
    const uint8_t *ext_data;    /* extension words (ext_len bytes) */
    size_t ext_len;
    const uint8_t *payload;
    size_t payload_len;         /* padding removed */
} gb_rtp_packet_t;

/* RFC 3550 §5.1. Returns 0, or -1 when the packet is shorter than its
 * header, CSRC list, extension or padding say, or the version is not 2. */
int gb_rtp_parse(const uint8_t *buf, size_t len, gb_rtp_packet_t *out);

/* ---- sending ---- */

/* Receives one packet ready to send (with the RFC 4571 prefix when the packer
 * frames for TCP). The buffer is only valid during the call. Return 0 to go
 * on, non-zero to stop packing (gb_rtp_pack_frame then returns that value). */
typedef int (*gb_rtp_emit_cb)(void *arg, const uint8_t *pkt, size_t len);

typedef struct {
    uint32_t ssrc;
    uint16_t seq;        /* next sequence number */
    uint8_t payload_type;
    bool tcp;            /* prefix each packet with its 2-byte length (RFC 4571) */
    size_t max_payload;
    uint64_t packets, bytes; /* sent so far (RTP bytes, without prefixes) */
} gb_rtp_packer_t;

/* max_payload: 1..(65535-12); 0 picks 1400 for UDP. -1 on a bad size. */
int gb_rtp_packer_init(gb_rtp_packer_t *p, uint32_t ssrc, uint8_t payload_type, uint16_t first_seq, bool tcp,
                       size_t max_payload);
/* Cuts one frame (e.g. a PS pack from gb_ps_mux_frame) into packets with the
 * same 90 kHz timestamp and consecutive sequence numbers; the marker bit is
 * set on the last (RFC 3550 §5.1, "significant events such as frame
 * boundaries"). Returns 0, -1 for an empty frame, or the callback's non-zero. */
int gb_rtp_pack_frame(gb_rtp_packer_t *p, const uint8_t *data, size_t len, uint32_t timestamp, gb_rtp_emit_cb emit,
                      void *arg);

/* ---- receiving ---- */

/* Receiver statistics per RFC 3550 §6.4.1 / Appendix A.1 (extended highest
 * sequence number with 16-bit wrap, expected vs received, lost). */
typedef struct {
    bool check_ssrc, started;
    uint32_t ssrc;
    uint16_t max_seq;
    uint32_t cycles;        /* count of wraps, shifted << 16 */
    uint32_t base_seq;
    uint32_t bad_seq;
    uint64_t received, bytes; /* accepted packets, payload bytes */
    uint64_t wrong_ssrc;      /* refused: another SSRC */
    uint64_t resets;          /* large jumps taken as a sender restart */
    uint32_t expected_prior, received_prior; /* for interval loss fraction */
} gb_rtp_stats_t;

/* check_ssrc: refuse packets of another SSRC (the one from the SDP y= line);
 * otherwise the first packet's SSRC is learnt and then enforced. */
void gb_rtp_stats_init(gb_rtp_stats_t *s, bool check_ssrc, uint32_t ssrc);
/* Accounts a parsed packet. Returns 0 when counted; 1 when its sequence
 * number jumped far (> 3000 ahead or > 100 behind): it is not counted unless
 * the next packet follows it, which is then taken as a sender restart
 * (RFC 3550 A.1); -1 when it has the wrong SSRC (counted in wrong_ssrc; the
 * caller drops it). */
int gb_rtp_stats_update(gb_rtp_stats_t *s, const gb_rtp_packet_t *pkt);
/* Extended highest sequence number received (cycles + max_seq). */
uint32_t gb_rtp_stats_ext_max(const gb_rtp_stats_t *s);
uint64_t gb_rtp_stats_expected(const gb_rtp_stats_t *s);
/* expected - received; negative when duplicates arrived (RFC 3550 §6.4.1). */
int64_t gb_rtp_stats_lost(const gb_rtp_stats_t *s);
/* Loss fraction since the previous call, in 1/256 (the RTCP RR field). */
uint8_t gb_rtp_stats_fraction_lost(gb_rtp_stats_t *s);

/* ---- RFC 4571 stream de-framing ---- */

/* Receives one complete framed packet (without the length prefix). Return 0 to
 * go on, non-zero to stop (feed then returns that value). */
typedef int (*gb_rtp_packet_cb)(void *arg, const uint8_t *pkt, size_t len);

typedef struct {
    uint8_t *buf;          /* partial packet carried over between chunks */
    size_t len, cap;
    uint64_t packets, empty_frames;
} gb_rtp_deframer_t;

void gb_rtp_deframer_init(gb_rtp_deframer_t *d);
/* Takes any chunk of the TCP byte stream. Complete packets go to cb straight
 * from data when possible (no copy), partial ones are buffered. A framed
 * packet that is not RTP/RTCP version 2 means the stream lost framing:
 * returns -1 and the connection should be closed. 0 otherwise, or the
 * callback's non-zero value. */
int gb_rtp_deframer_feed(gb_rtp_deframer_t *d, const uint8_t *data, size_t len, gb_rtp_packet_cb cb, void *arg);
void gb_rtp_deframer_free(gb_rtp_deframer_t *d);

#endif
