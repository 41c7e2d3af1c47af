/* rtcp.h — RTCP as an SFU needs it: telling RTCP from RTP on a muxed port
 * (RFC 5761 §4), walking a compound packet (RFC 3550 §6.1), decoding SR, RR,
 * SDES CNAME, BYE (RFC 3550 §6.4-6.6), generic NACK (RFC 4585 §6.2.1), PLI
 * (RFC 4585 §6.3.1), FIR (RFC 5104 §4.3.1), REMB (draft-alvestrand-rmcat-remb)
 * and transport-wide congestion control feedback
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1), and building
 * RR, SR, SDES CNAME, NACK, PLI, FIR and REMB; plus a tiny rate limiter for
 * forwarding key frame requests.
 *
 * Pure functions on buffers: no I/O, no clock, no allocation. Decoders point
 * into the caller's buffer (CNAME, BYE reason) or fill fixed-size arrays with
 * a stated cap and a `truncated` flag; builders write into a caller buffer
 * and return the bytes written, so packets can be laid end to end into one
 * compound packet (each one's length field covers only itself).
 *
 * What is malformed, and what it costs (RFC 3550 §6.1 and A.2 leave the
 * choice open once the header check has passed):
 * - framing: a header whose version is not 2, whose length runs past the
 *   buffer, or whose padding count is 0 or exceeds the packet, leaves no way
 *   to find the next packet. rtcp_iter_next returns -1 and the walk stops;
 *   packets already returned stand.
 * - body: a packet whose framing is sound but whose content does not fit
 *   (a report count needing more words than the length gives, a NACK with a
 *   partial FCI, a FIR without entries, REMB without its identifier...) is
 *   refused by its decoder (-1) and the caller goes on to the next packet,
 *   since the length field still locates it.
 * - a P bit on a packet other than the last is accepted (§6.4.1 reserves it
 *   for the last): its padding lies inside its own length, so framing holds.
 * - the first-packet rule (SR/RR first) is not enforced: reduced-size RTCP
 *   (RFC 5506), which browsers negotiate, sends lone feedback packets.
 */
#ifndef CASCADE_MEDIA_RTCP_H
#define CASCADE_MEDIA_RTCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTCP_HEADER_LEN 4
#define RTCP_PT_SR 200
#define RTCP_PT_RR 201
#define RTCP_PT_SDES 202
#define RTCP_PT_BYE 203
#define RTCP_PT_APP 204
#define RTCP_PT_RTPFB 205 /* RFC 4585 §6.1: transport layer feedback */
#define RTCP_PT_PSFB 206  /* payload-specific feedback */

#define RTCP_FMT_NACK 1   /* RTPFB */
#define RTCP_FMT_TWCC 15  /* RTPFB, draft-holmer §3.1 */
#define RTCP_FMT_PLI 1    /* PSFB */
#define RTCP_FMT_FIR 4    /* PSFB, RFC 5104 §4.3.1 */
#define RTCP_FMT_AFB 15   /* PSFB application layer feedback; REMB is one */

#define RTCP_MAX_REPORTS 31      /* 5-bit RC */
#define RTCP_MAX_SDES_CHUNKS 31  /* 5-bit SC */
#define RTCP_MAX_BYE_SSRCS 31    /* 5-bit SC */
#define RTCP_NACK_MAX_SEQS 512   /* decoded lost sequence numbers kept */
#define RTCP_FIR_MAX_ENTRIES 32  /* decoded FIR entries kept */
#define RTCP_REMB_MAX_SSRCS 64   /* decoded REMB SSRCs kept (the wire allows 255) */

/* RFC 5761 §4: with rtcp-mux, a packet whose second octet (marker bit and
 * payload type together) is 192..223 is RTCP; RTP must not use payload types
 * 64..95 there. False for anything shorter than an RTCP header. */
bool rtcp_is_rtcp(const uint8_t *buf, size_t len);

/* ---- walking a compound packet ---- */

typedef struct {
    uint8_t count;          /* RC, SC or FMT: the 5 bits after V and P */
    uint8_t pt;
    bool padding;
    const uint8_t *data;    /* the whole packet, header included */
    size_t len;             /* (length field + 1) * 4 */
    const uint8_t *body;    /* after the 4-byte header, padding removed */
    size_t body_len;
} rtcp_packet_t;

typedef struct {
    const uint8_t *buf;
    size_t len, off;
} rtcp_iter_t;

void rtcp_iter_init(rtcp_iter_t *it, const uint8_t *buf, size_t len);
/* 1 with the next packet in *out; 0 at the end; -1 when the framing is
 * broken (see the top of this file) — the walk then stays at its end. */
int rtcp_iter_next(rtcp_iter_t *it, rtcp_packet_t *out);

/* ---- decoding (each returns 0, or -1 when the packet is not of that kind
 * or its body does not hold what its header announces) ---- */

typedef struct {
    uint32_t ssrc;
    uint8_t fraction_lost;       /* 1/256 */
    int32_t cumulative_lost;     /* 24-bit signed on the wire (RFC 3550 §6.4.1) */
    uint32_t ext_highest_seq;
    uint32_t jitter;
    uint32_t lsr, dlsr;          /* middle 32 bits of the SR's NTP; 1/65536 s */
} rtcp_report_block_t;

typedef struct {
    uint64_t ntp;                /* 32.32 fixed point seconds since 1900 */
    uint32_t rtp_ts;
    uint32_t packet_count, octet_count;
} rtcp_sender_info_t;

typedef struct {
    uint32_t ssrc;               /* of the packet's sender */
    bool is_sr;                  /* sender info present */
    rtcp_sender_info_t si;
    uint8_t report_count;
    rtcp_report_block_t reports[RTCP_MAX_REPORTS];
} rtcp_report_t;

/* SR or RR. Profile-specific extensions after the report blocks are skipped. */
int rtcp_parse_report(const rtcp_packet_t *p, rtcp_report_t *out);

typedef struct {
    uint32_t ssrc;
    const uint8_t *cname;        /* NULL when the chunk has no CNAME; not NUL-terminated */
    uint8_t cname_len;
} rtcp_sdes_chunk_t;

typedef struct {
    uint8_t count;
    rtcp_sdes_chunk_t chunks[RTCP_MAX_SDES_CHUNKS];
} rtcp_sdes_t;

/* SDES: every chunk must end with a null item within the packet (§6.5);
 * items other than CNAME are skipped. */
int rtcp_parse_sdes(const rtcp_packet_t *p, rtcp_sdes_t *out);

typedef struct {
    uint8_t count;
    uint32_t ssrcs[RTCP_MAX_BYE_SSRCS];
    const uint8_t *reason;       /* NULL when absent */
    uint8_t reason_len;
} rtcp_bye_t;

int rtcp_parse_bye(const rtcp_packet_t *p, rtcp_bye_t *out);

/* The common feedback header (RFC 4585 §6.1) of an RTPFB or PSFB packet. */
typedef struct {
    uint32_t sender_ssrc, media_ssrc;
    const uint8_t *fci;
    size_t fci_len;
} rtcp_fb_t;

int rtcp_parse_fb(const rtcp_packet_t *p, rtcp_fb_t *out);

typedef struct {
    uint32_t sender_ssrc, media_ssrc;
    size_t count;                /* lost sequence numbers in seqs, wire order */
    bool truncated;              /* more than RTCP_NACK_MAX_SEQS were announced */
    uint16_t seqs[RTCP_NACK_MAX_SEQS];
} rtcp_nack_t;

/* RTPFB fmt 1: each FCI is PID plus BLP, bit i of BLP meaning PID+i+1 lost
 * (mod 2^16). At least one FCI; the FCI must be whole 32-bit words. */
int rtcp_parse_nack(const rtcp_packet_t *p, rtcp_nack_t *out);

/* PSFB fmt 1: no FCI (RFC 4585 §6.3.1.2; trailing words are tolerated). */
int rtcp_parse_pli(const rtcp_packet_t *p, uint32_t *sender_ssrc, uint32_t *media_ssrc);

typedef struct {
    uint32_t ssrc;               /* the media sender asked for a key frame */
    uint8_t seq_nr;              /* command sequence number; a repeat means a retransmission */
} rtcp_fir_entry_t;

typedef struct {
    uint32_t sender_ssrc;
    size_t count;
    bool truncated;
    rtcp_fir_entry_t entries[RTCP_FIR_MAX_ENTRIES];
} rtcp_fir_t;

/* PSFB fmt 4: one or more 8-byte entries (SSRC, seq nr, 24 reserved bits).
 * The media SSRC field is to be 0 (§4.3.1.2) and is ignored. */
int rtcp_parse_fir(const rtcp_packet_t *p, rtcp_fir_t *out);

typedef struct {
    uint32_t sender_ssrc;
    uint64_t bitrate;            /* bits per second; UINT64_MAX when exp<<mantissa overflows */
    uint8_t ssrc_count;          /* SSRCs kept in ssrcs */
    bool truncated;              /* the wire listed more than RTCP_REMB_MAX_SSRCS */
    uint32_t ssrcs[RTCP_REMB_MAX_SSRCS];
} rtcp_remb_t;

/* PSFB fmt 15 whose FCI begins with "REMB": Num SSRC (8), BR Exp (6),
 * BR Mantissa (18), then the SSRC list, which must be all there. */
int rtcp_parse_remb(const rtcp_packet_t *p, rtcp_remb_t *out);

enum {
    RTCP_TWCC_NOT_RECEIVED = 0,
    RTCP_TWCC_SMALL_DELTA = 1,   /* received, delta 0..255 ticks in one byte */
    RTCP_TWCC_LARGE_DELTA = 2,   /* received, signed 16-bit delta */
};

typedef struct {
    uint16_t seq;                /* transport-wide sequence number */
    uint8_t status;              /* RTCP_TWCC_* */
    int32_t delta;               /* 250 µs ticks since the previous received packet (or the reference time) */
    int64_t arrival_us;          /* reference_time * 64 ms + the deltas so far; receiver's clock */
} rtcp_twcc_packet_t;

typedef struct {
    uint32_t sender_ssrc, media_ssrc;
    uint16_t base_seq;
    uint16_t status_count;       /* packets the feedback describes */
    int32_t reference_time;      /* signed 24 bits, in 64 ms */
    uint8_t fb_count;            /* feedback packet count, to spot lost feedback */
    size_t count;                /* packets decoded into the caller's array */
    bool truncated;              /* status_count exceeded the array */
} rtcp_twcc_t;

/* RTPFB fmt 15. The chunks (run-length: T=0, 2-bit symbol, 13-bit run;
 * status vector: T=1, S=0 fourteen 1-bit symbols or S=1 seven 2-bit ones)
 * must cover status_count packets; the receive deltas, one per received
 * packet in order, must all be present. Symbol 3 (reserved) is refused.
 * The first min(status_count, cap) packets go to pkts. */
int rtcp_parse_twcc(const rtcp_packet_t *p, rtcp_twcc_t *out, rtcp_twcc_packet_t *pkts, size_t cap);

/* ---- building: each returns the bytes written (a multiple of 4), -ENOSPC
 * when buf is too small, -EINVAL for counts the wire cannot carry ---- */

/* RR with n (0..31) report blocks. */
int rtcp_build_rr(uint8_t *buf, size_t cap, uint32_t ssrc, const rtcp_report_block_t *blocks, size_t n);
/* SR with sender info and n (0..31) report blocks. */
int rtcp_build_sr(uint8_t *buf, size_t cap, uint32_t ssrc, const rtcp_sender_info_t *si,
                  const rtcp_report_block_t *blocks, size_t n);
/* SDES with one chunk holding one CNAME item (1..255 bytes), padded with
 * the null item to a word boundary (RFC 3550 §6.5). */
int rtcp_build_sdes_cname(uint8_t *buf, size_t cap, uint32_t ssrc, const char *cname, size_t cname_len);
/* Generic NACK for n (>= 1) lost sequence numbers. Each starts a new FCI
 * unless it is 1..16 after the current FCI's PID (mod 2^16), then it is a BLP
 * bit; so ascending order (mod 2^16) packs tightest, and any order is correct.
 * A repeat of a PID or BLP bit adds nothing. */
int rtcp_build_nack(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc, const uint16_t *seqs,
                    size_t n);
int rtcp_build_pli(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc);
/* FIR for one media sender; seq_nr is to increase by one per new request
 * (RFC 5104 §4.3.1.1) and stay the same in a repeat of it. */
int rtcp_build_fir(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc, uint8_t seq_nr);
/* REMB for n (0..255) SSRCs. The bitrate is rounded down to what an 18-bit
 * mantissa with a 6-bit exponent holds. */
int rtcp_build_remb(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint64_t bitrate, const uint32_t *ssrcs,
                    size_t n);

/* Transport-cc feedback (RTPFB fmt 15) for n (1..65535) packets from
 * base_seq: pkts[i].status and, for received ones, pkts[i].delta (250 µs
 * ticks from the previous received packet, the first from reference_time
 * * 64 ms; 0..255 for a small delta, a signed 16-bit one for a large);
 * seq and arrival_us are not read. Runs of 14 or more equal symbols become
 * run-length chunks, the rest status vectors (1-bit when no large delta is
 * among them). -EINVAL for a delta its symbol cannot carry. */
int rtcp_build_twcc(uint8_t *buf, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc, uint16_t base_seq,
                    int32_t reference_time, uint8_t fb_count, const rtcp_twcc_packet_t *pkts, size_t n);

/* ---- key frame request limiter ---- */

/* At most one PLI/FIR per interval per stream toward a publisher, however
 * many viewers ask (media.md: e.g. <= 1/s). Zero-initialised = never sent. */
typedef struct {
    bool sent;
    uint64_t last_ms;
} rtcp_rate_limit_t;

/* true (and now_ms recorded) when nothing was allowed in the last
 * interval_ms; false otherwise. A clock that goes back counts as elapsed. */
bool rtcp_rate_limit_allow(rtcp_rate_limit_t *rl, uint64_t now_ms, uint64_t interval_ms);

#endif
