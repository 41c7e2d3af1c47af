/* forward.h — the per-packet work of the SFU (sfu.c is only glue around it):
 *
 * - a publisher stream (struct fwd_stream): what was negotiated for one
 *   m-line (kind, payload type, SSRC), a NACK cache of its recent packets,
 *   receiver statistics for the RR we send it, the sequence numbers we saw
 *   missing (NACKed upstream a bounded number of times, never beyond the
 *   cache window) and the key frame request limiter;
 * - a viewer sink (struct fwd_sink): how one viewer receives one stream —
 *   its payload type for the codec, and a translation of header-extension
 *   ids (RFC 8285, one-byte and two-byte forms) where an extension the
 *   viewer did not agree to is blanked to padding and the mid value is
 *   rewritten to the viewer's mid;
 * - simulcast (RFC 8853): a publisher stream of up to FWD_MAX_LAYERS layers
 *   (struct fwd_layers: which SSRC is which rid, learnt from the
 *   rtp-stream-id extension, and each layer's bitrate), and per viewer a
 *   layer selector (struct fwd_sel) that forwards exactly one layer as one
 *   continuous stream — one SSRC, sequence numbers and timestamps rewritten
 *   — switching layer only at a key frame of the layer it switches to;
 * - RTCP: what a viewer's compound asks for (NACKs split into resends from
 *   the cache and misses to ask upstream, key frame requests let through or
 *   rate-limited), the SRs of a publisher to pass on, and the RR + REMB we
 *   send a publisher.
 *
 * Pure: no I/O and no clock (every time is passed in, in ms). The only
 * allocation is a stream's NACK cache, at forward_stream_init; nothing on
 * the per-packet path allocates. */
#ifndef CASCADE_MEDIA_FORWARD_H
#define CASCADE_MEDIA_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/nack_cache.h"
#include "media/rtcp.h"
#include "media/webrtc_sdp.h"

#define FWD_RTP_HEADER 12
#define FWD_EXT_IDS 15       /* one-byte ids 1..14 (index 0 unused); 15 stops parsing (RFC 8285 §4.2) */
#define FWD_MID_MAX 16       /* longest mid value we write into a packet */
#define FWD_MISSING_MAX 64   /* sequence numbers tracked as lost per stream, and per NACK we send */
#define FWD_NACK_TRIES 3     /* NACKs per lost packet before giving up on it */
#define FWD_FB_MAX 128       /* resends and upstream asks taken from one viewer compound */
#define FWD_FB_STREAMS 8     /* streams one compound can name (a viewer has <= WSDP_MAX_MEDIA sinks) */

/* RFC 8285 §4.2 / §4.3: the profiles marking the two extension forms. */
#define FWD_EXT_ONE_BYTE 0xBEDE
#define FWD_EXT_TWO_BYTE 0x1000 /* the low 4 bits ("appbits") are free */

/* ---- RTP header ---- */

/* The fields the forwarder reads; offsets into the packet parsed. */
struct fwd_rtp {
    uint8_t pt;
    bool marker;
    uint16_t seq;
    uint32_t ts, ssrc;
    uint16_t ext_profile;   /* when ext_len > 0 */
    size_t ext_off;         /* first byte of the extension elements (after the 4-byte header) */
    size_t ext_len;         /* their bytes; 0: no extension block */
    size_t payload_off;
};

/* RFC 3550 §5.1/§5.3.1: 0, or -1 when the packet is not version 2 or is
 * shorter than its CSRC list or extension say. */
int forward_rtp_parse(const uint8_t *pkt, size_t len, struct fwd_rtp *out);

/* The value of extension element id (one-byte or two-byte form), NULL when
 * absent or the block has another profile; *vlen its length. */
const uint8_t *forward_rtp_ext(const uint8_t *pkt, const struct fwd_rtp *h, uint8_t id, size_t *vlen);

/* ---- publisher streams ---- */

struct fwd_stream_config {
    bool video;
    uint8_t pt;
    uint32_t ssrc;          /* 0: not signaled, learnt by the caller (forward_stream_set_ssrc) */
    uint32_t clock;         /* RTP clock rate, for the RR jitter; 0: no jitter */
    bool use_fir;           /* the publisher takes FIR but not PLI */
    bool nack;              /* the publisher answers NACKs; otherwise nothing is asked upstream */
    uint32_t cache_ms;      /* how far back NACKs are answered (sizes the cache) */
};

struct fwd_missing {
    uint16_t seq;
    uint8_t tries;          /* NACKs sent for it so far */
    uint64_t last_ms;       /* of the last one */
};

struct fwd_stream {
    struct fwd_stream_config cfg;
    nack_cache_t *cache;
    uint16_t window;        /* cache slots: how far back anything is kept or asked for */
    /* receive side (RFC 3550 A.1 / A.8, simplified: a jump beyond the window restarts) */
    bool started;
    uint16_t max_seq;
    uint32_t cycles;        /* wraps << 16 */
    uint32_t base_seq;
    uint64_t received;
    uint32_t expected_prior, received_prior;
    uint32_t jitter_q4;     /* interarrival jitter, << 4 (A.8) */
    int64_t last_transit;
    bool have_transit;
    uint32_t lsr;           /* middle 32 bits of the last SR's NTP time */
    uint64_t sr_at_ms;
    bool have_sr;
    /* lost packets, oldest first */
    struct fwd_missing missing[FWD_MISSING_MAX];
    size_t n_missing;
    rtcp_rate_limit_t keyframe_rl;
    uint8_t fir_seq;
    uint64_t duplicates, restarts, cache_errors;
};

/* Slots and bytes of the NACK cache for a stream (video: ~1 packet per ms,
 * up to 1200 bytes; audio: one per 10 ms, up to 320 bytes; padded to what a
 * full RTC packet needs). */
void forward_cache_size(bool video, uint32_t cache_ms, size_t *slots, size_t *bytes);

/* 0, or -ENOMEM / -EINVAL (no cache could be made). */
int forward_stream_init(struct fwd_stream *st, const struct fwd_stream_config *cfg);
void forward_stream_free(struct fwd_stream *st);
/* A new SSRC for the stream (learnt from a mid or a payload type): the
 * history of the old one is forgotten. */
void forward_stream_set_ssrc(struct fwd_stream *st, uint32_t ssrc);

enum fwd_verdict {
    FWD_FORWARD,            /* new (or recovered) packet: send it to the sinks */
    FWD_DUPLICATE,          /* already cached: drop */
};

/* Accounts one packet of this stream (the caller checked SSRC and payload
 * type; h from forward_rtp_parse) received at now_ms, and caches it. A gap
 * after the highest sequence number marks the packets in it missing (at
 * most FWD_MISSING_MAX of the newest, none when the gap exceeds the window:
 * that is a restart); a missing packet arriving late is forwarded. */
enum fwd_verdict forward_stream_receive(struct fwd_stream *st, const uint8_t *pkt, size_t len,
                                        const struct fwd_rtp *h, uint64_t now_ms);

/* The cached copy of seq (as the publisher sent it) or NULL. */
const uint8_t *forward_stream_cached(const struct fwd_stream *st, uint16_t seq, size_t *len);

/* A viewer asked for seq and the cache does not have it: track it as
 * missing so the next forward_stream_nack asks the publisher. False when
 * it is already tracked, outside the window, or not yet sent. */
bool forward_stream_want(struct fwd_stream *st, uint16_t seq, uint64_t now_ms);

/* The generic NACK (RFC 4585 §6.2.1) from sender_ssrc for the missing
 * packets due at now_ms: never asked, or last asked retry_ms ago and fewer
 * than FWD_NACK_TRIES times. Packets asked enough, or fallen out of the
 * window, are dropped from the list. Bytes written, 0 when nothing is due
 * (or the publisher takes no NACK), negative when buf is too small. */
int forward_stream_nack(struct fwd_stream *st, uint64_t now_ms, uint32_t retry_ms, uint32_t sender_ssrc, uint8_t *buf,
                        size_t cap);

/* A key frame request (PLI, or FIR when cfg.use_fir) from sender_ssrc, if
 * none was sent within interval_ms: bytes written; 0 when rate-limited or
 * the SSRC is still unknown; negative when buf is too small. */
int forward_stream_keyframe(struct fwd_stream *st, uint64_t now_ms, uint32_t interval_ms, uint32_t sender_ssrc,
                            uint8_t *buf, size_t cap);

/* The RR report block about this stream at now_ms (fraction lost since the
 * previous call, DLSR from the last SR). False before the first packet. */
bool forward_stream_report(struct fwd_stream *st, uint64_t now_ms, rtcp_report_block_t *out);

/* RR with a block per started stream, SDES CNAME (when cname), and REMB of
 * remb_bps for their SSRCs (when remb_bps > 0): one compound. Bytes
 * written, 0 when no stream has started, negative when buf is too small. */
int forward_build_receiver_report(struct fwd_stream *const *streams, size_t n, uint32_t sender_ssrc, const char *cname,
                                  uint64_t remb_bps, uint64_t now_ms, uint8_t *buf, size_t cap);

/* ---- viewer sinks ---- */

struct fwd_sink {
    uint8_t pt;                   /* the viewer's payload type for the codec */
    uint8_t ext[FWD_EXT_IDS];     /* publisher id → viewer id; 0 blanks the element */
    uint8_t mid_pub_id;           /* the publisher's mid extension id (0: none) */
    uint8_t mid_len;              /* the viewer's mid value, written in its place */
    char mid[FWD_MID_MAX];
};

/* Payload type only; every extension blanked. */
void forward_sink_init(struct fwd_sink *k, uint8_t pt);
/* Publisher id → viewer id (1..14 each; anything else blanks). */
void forward_sink_map(struct fwd_sink *k, uint8_t pub_id, uint8_t viewer_id);
/* The mid element (publisher's id pub_id) goes out as viewer_id with the
 * value mid; a mid longer than the element or than FWD_MID_MAX blanks it. */
void forward_sink_set_mid(struct fwd_sink *k, uint8_t pub_id, uint8_t viewer_id, const char *mid);
/* From the two negotiated m-lines: every extension URI both have is mapped,
 * the mid one with the viewer's mid value. */
void forward_sink_from_media(struct fwd_sink *k, uint8_t pt, const struct wsdp_media *pub, const struct wsdp_media *view);

/* Copies pkt into out (cap >= len) for the sink: payload type rewritten
 * (marker kept), extension ids translated, elements the viewer lacks
 * blanked (id/length byte and data zeroed: padding); SSRC and sequence
 * number kept. Returns len, or -1 when the packet is malformed or does not
 * fit. */
int forward_prepare(const struct fwd_sink *k, const uint8_t *pkt, size_t len, uint8_t *out, size_t cap);

/* Which publisher m-line each m-line of the viewer's answer receives:
 * map[i] is an index into pub->media, or -1 (rejected, inactive, no match).
 * A viewer m-line naming a publisher SSRC takes that m-line; otherwise the
 * next unused one of the same kind with the same codec (name, clock). */
void forward_match_view(const struct wsdp_session *pub, const struct wsdp_session *view, int map[WSDP_MAX_MEDIA]);

/* The one codec of a negotiated m-line (first that is not RTX), NULL when
 * the m-line is rejected. */
const struct wsdp_codec *forward_media_codec(const struct wsdp_media *m);

/* ---- simulcast ---- */

#define FWD_MAX_LAYERS WSDP_MAX_RIDS
#define FWD_LAYER_IDLE_MS 1000   /* a layer silent this long is not chosen (the browser paused it) */
#define FWD_RATE_WINDOW_MS 1000  /* a layer's bitrate is measured over windows this long */
#define FWD_SEL_HISTORY 8        /* layer switches a selector remembers, to answer NACKs across them */

enum fwd_video_codec { FWD_VIDEO_OTHER, FWD_VIDEO_VP8, FWD_VIDEO_H264 };

/* VP8, H264 or other from a negotiated codec (NULL: other). */
enum fwd_video_codec forward_video_codec(const struct wsdp_codec *c);

/* The payload of a parsed packet without its padding; false when empty. */
bool forward_rtp_payload(const uint8_t *pkt, size_t len, const struct fwd_rtp *h, const uint8_t **payload,
                         size_t *plen);

/* Whether an RTP payload is the first packet of a key frame: VP8 (RFC 7741
 * §4.2/§4.3: start of partition 0 with the P bit clear); H.264 (RFC 6184):
 * an IDR slice or SPS alone, a STAP-A holding one, or an FU-A start of one.
 * A decoder can start at such a packet. */
bool forward_keyframe_start(enum fwd_video_codec codec, const uint8_t *payload, size_t len);

/* A simulcast publisher stream's layers, lowest first (the a=simulcast
 * order). */
struct fwd_layers {
    size_t n;
    char rid[FWD_MAX_LAYERS][WSDP_RID_MAX];
    uint32_t ssrc[FWD_MAX_LAYERS];     /* 0 until learnt */
    uint64_t last_ms[FWD_MAX_LAYERS];  /* newest packet */
    bool seen[FWD_MAX_LAYERS];         /* any packet yet */
    uint64_t bps[FWD_MAX_LAYERS];      /* bitrate over the last full window; 0 before one */
    uint64_t win_bytes[FWD_MAX_LAYERS];
    uint64_t win_start_ms;
    bool win_started;
};

/* n rids (at most FWD_MAX_LAYERS are taken), lowest layer first. */
void forward_layers_init(struct fwd_layers *l, const char (*rids)[WSDP_RID_MAX], size_t n);

/* The layer of a packet: by its SSRC, else by its rtp-stream-id element
 * (rid_ext: the publisher's id for it), whose SSRC is then learnt (*learnt
 * true: the caller forgets that layer's stream history,
 * forward_stream_set_ssrc). -1 when it belongs to no layer. */
int forward_layers_classify(struct fwd_layers *l, const uint8_t *pkt, const struct fwd_rtp *h, uint8_t rid_ext,
                            bool *learnt);

/* Counts a packet of len bytes of layer at now_ms (activity and bitrate). */
void forward_layers_account(struct fwd_layers *l, int layer, size_t len, uint64_t now_ms);

/* A layer that sent within FWD_LAYER_IDLE_MS of now_ms. */
bool forward_layer_active(const struct fwd_layers *l, int layer, uint64_t now_ms);

/* Where a run of the outgoing stream comes from: from out_seq on, layer's
 * packets go out with seq + seq_off and ts + ts_off. */
struct fwd_sel_switch {
    uint16_t out_seq;
    uint16_t seq_off;
    uint32_t ts_off;
    int layer;
};

/* One viewer's view of a simulcast stream. */
struct fwd_sel {
    uint32_t ssrc;            /* the one SSRC the viewer receives (its answer announces it) */
    uint32_t clock;           /* RTP clock, for the timestamp step at a switch */
    int max_layer;            /* the highest layer the viewer asked for */
    uint64_t bwe_bps;         /* the viewer's bandwidth estimate (REMB); 0: none yet */
    bool bwe_fell;            /* it fell since it last rose: the viewer's path queues up */
    int current;              /* the layer forwarded; -1 before the first key frame */
    int target;               /* the layer wanted; a switch waits for its key frame */
    bool sent;                /* anything forwarded yet */
    uint16_t start_seq;       /* the current layer's first forwarded (input) sequence number */
    uint16_t last_seq;        /* the highest sequence number sent */
    uint32_t last_ts;         /* its timestamp */
    uint64_t last_ms;         /* when it was sent */
    struct fwd_sel_switch hist[FWD_SEL_HISTORY]; /* oldest first; the last is the current run */
    size_t n_hist;
    uint64_t switches, dropped;
    /* Trials (forward_sel_choose): an estimate grows only to ~1.5x what the
     * viewer receives, so one that fell onto a low layer could never reach a
     * higher one again; after a quiet spell the next layer up is tried. */
    int trial;                /* the layer on trial; -1: none */
    int trial_from;           /* the layer it started from */
    bool congested;           /* forward_sel_congested since the last choice */
    bool trial_fell;          /* congestion during the trial */
    uint64_t trial_at_ms;     /* the next trial may start then (0: not scheduled) */
    uint64_t trial_until_ms;  /* on the trial layer until then without a fall: kept (0: not there yet) */
    uint64_t trial_deadline_ms; /* a trial whose layer never came by then is given up */
    uint32_t trial_backoff_ms;  /* the quiet spell before the next trial */
    int proven;               /* a layer a trial proved: kept unless the estimate falls under 70 % of it */
    uint64_t trials, trials_failed;
};

#define FWD_TRIAL_FIRST_MS 10000u /* quiet spell before the first trial, and after a success */
#define FWD_TRIAL_MAX_MS 60000u   /* ... doubling after each failed one up to this */
#define FWD_TRIAL_HOLD_MS 3000u   /* on the trial layer this long without the estimate falling: kept */
#define FWD_TRIAL_WAIT_MS 5000u   /* the trial layer's key frame must come within this */

/* ssrc: the outgoing one; max_layer: FWD_MAX_LAYERS - 1 for "any". */
void forward_sel_init(struct fwd_sel *k, uint32_t ssrc, uint32_t clock, int max_layer);

/* A new estimate from the viewer (its REMB). */
void forward_sel_estimate(struct fwd_sel *k, uint64_t bps);

/* The viewer's path showed congestion (the estimator cut for a growing
 * queue or loss, or the viewer's own estimate dropped sharply): a trial in
 * progress fails, and the quiet spell before the next starts again. A
 * merely lower estimate is not this: one pinned at its ceiling follows the
 * delivered rate down and up. */
void forward_sel_congested(struct fwd_sel *k);

/* The target at now_ms, from the viewer's estimate and max_layer and the
 * layers' activity and bitrates: the highest active layer up to max_layer
 * whose bitrate fits the estimate (an unmeasured layer fits; no estimate
 * yet fits everything; one above the layer forwarded fits with a quarter
 * of its bitrate to spare), else the lowest active layer — except that the
 * layer being forwarded is kept while the estimate does not say it is too
 * much: below half its bitrate, or fallen below 70 % of it. (A browser's
 * receive-side estimate starts from what arrives and grows slowly, so it
 * lags a stream that is ramping up; and a queue on the way makes it fall
 * to ~85 % of what arrives.) No active layer: the target stays.
 * Trials: an estimate cannot measure a rate never sent, so a viewer settled
 * below its max_layer with no congestion (forward_sel_congested) for
 * FWD_TRIAL_FIRST_MS is moved to the next active layer up on trial;
 * congestion before it held that layer for FWD_TRIAL_HOLD_MS ends the trial
 * (the usual choice then takes it down if the estimate says so, else the
 * layer below the trial) and doubles the spell before the next, up to
 * FWD_TRIAL_MAX_MS; a trial that holds makes the layer proven (kept unless
 * the estimate falls under 70 % of it). Returns the target. */
int forward_sel_choose(struct fwd_sel *k, const struct fwd_layers *l, uint64_t now_ms);

/* A switch waits (for a key frame of the target: worth a PLI to it). */
bool forward_sel_waiting(const struct fwd_sel *k);

struct fwd_sel_out {
    uint16_t seq;
    uint32_t ts;
};

/* One new packet of layer (h parsed, keyframe from forward_keyframe_start)
 * at now_ms: true with the sequence number and timestamp it goes out with.
 * The target's key frame start switches to it: its sequence numbers follow
 * the last sent without a gap, its timestamps the last sent plus the time
 * since. Packets of other layers, and of the current one from before the
 * switch, are dropped. */
bool forward_sel_packet(struct fwd_sel *k, int layer, const struct fwd_rtp *h, bool keyframe, uint64_t now_ms,
                        struct fwd_sel_out *out);

/* Writes the viewer's SSRC, seq and ts into a packet copy (>= 12 bytes). */
void forward_sel_rewrite(const struct fwd_sel *k, uint8_t *pkt, const struct fwd_sel_out *o);

/* A NACKed outgoing sequence number: the layer and input sequence number
 * it was (or would have been) sent from, and its timestamp offset. False
 * when it is not sent yet or older than the remembered switches. */
bool forward_sel_lookup(const struct fwd_sel *k, uint16_t out_seq, int *layer, uint16_t *in_seq, uint32_t *ts_off);

/* The SR a viewer of k gets for a layer's SR (si: what the publisher said
 * of that layer): under the viewer's SSRC, the RTP time moved as the
 * current run moves it, so the viewer can sync it with the audio. Bytes
 * written; 0 when layer is not the one forwarded now (its clock is not the
 * viewer's); negative when buf is too small. */
int forward_sel_sr(const struct fwd_sel *k, int layer, const rtcp_sender_info_t *si, uint8_t *buf, size_t cap);

/* ---- RTCP ---- */

/* Resolves a media SSRC named in feedback to the stream (and the caller's
 * tag, e.g. its sink), or NULL. */
typedef struct fwd_stream *(*fwd_find_fn)(void *arg, uint32_t ssrc, void **tag);

struct fwd_resend {
    struct fwd_stream *st;
    void *tag;
    uint16_t seq;           /* in st's cache */
    uint16_t out_seq;       /* as the viewer asked (seq, unless a map translated it) */
};

/* For a viewer receiving a translated stream (simulcast): the stream and
 * input sequence number behind the out_seq it NACKed on the stream find
 * gave (tag as find set it). False: not known (counted missed). NULL map:
 * every sequence number is the stream's own. */
typedef bool (*fwd_map_fn)(void *arg, void *tag, uint16_t out_seq, struct fwd_stream **st, uint16_t *seq);

/* What a viewer's compound RTCP asks for. */
struct fwd_viewer_rtcp {
    size_t n_resend;                          /* NACKed and cached: send again */
    struct fwd_resend resend[FWD_FB_MAX];
    size_t n_upstream;                        /* streams with newly missing packets: forward_stream_nack */
    struct fwd_stream *upstream[FWD_FB_STREAMS];
    size_t n_keyframe;                        /* streams whose key frame request may go now */
    struct fwd_stream *keyframe[FWD_FB_STREAMS];
    uint32_t nacked;                          /* sequence numbers asked */
    uint32_t missed;                          /* of them, not cached */
    uint32_t rate_limited;                    /* PLI/FIR held back by the limiter */
    uint32_t unknown;                         /* feedback for an SSRC the viewer does not receive */
    uint32_t reports, remb, other, malformed;
    uint64_t remb_bps;                        /* the last REMB's estimate, 0: none in this compound */
    bool truncated;                           /* more than FWD_FB_MAX seqs asked */
};

/* Classifies a viewer's compound at now_ms. NACKed packets in the cache go
 * to resend[]; the others are tracked missing (forward_stream_want) and
 * their streams listed in upstream[]. PLI/FIR go through each stream's
 * limiter (one per interval_ms): an allowed one is listed in keyframe[] and
 * the caller sends it with forward_stream_keyframe_build. RR and REMB are
 * counted only. */
void forward_viewer_rtcp(const uint8_t *pkt, size_t len, fwd_find_fn find, void *arg, uint64_t now_ms,
                         uint32_t interval_ms, struct fwd_viewer_rtcp *out);
/* The same with each NACKed sequence number translated by map. */
void forward_viewer_rtcp_map(const uint8_t *pkt, size_t len, fwd_find_fn find, fwd_map_fn map, void *arg,
                             uint64_t now_ms, uint32_t interval_ms, struct fwd_viewer_rtcp *out);

/* The PLI (or FIR) for st without asking the limiter (it already agreed). */
int forward_stream_keyframe_build(struct fwd_stream *st, uint32_t sender_ssrc, uint8_t *buf, size_t cap);

/* A publisher's compound: each SR of a stream find knows is noted (for the
 * RR's LSR/DLSR) and copied to out without its report blocks (they are about
 * what the publisher receives from us, nothing a viewer sent). Returns the
 * bytes of SRs for viewers (0: none), negative when out is too small. */
int forward_publisher_rtcp(const uint8_t *pkt, size_t len, fwd_find_fn find, void *arg, uint64_t now_ms, uint8_t *out,
                           size_t cap);

#endif
