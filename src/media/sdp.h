/* sdp.h — WebRTC session descriptions (RFC 8866 syntax, RFC 8829/JSEP
 * content) as the SFU needs them: parse a browser's offer, decide the answer
 * for a publisher (it sends, we receive) or a viewer (we send what one
 * publisher sends), and write the answer text.
 *
 * Pure: no I/O, no clock, no allocation. A parsed session is a fixed-size
 * struct of copied, length-capped strings (over-long values refuse the
 * offer rather than truncate), so it can outlive the offer text and be kept
 * by a peer to remember what was negotiated.
 *
 * What the answers say: a=ice-lite, our ice-ufrag/pwd, one sha-256
 * fingerprint, a=setup:passive (we are the DTLS server), one BUNDLE group of
 * every accepted m-line, a=rtcp-mux (offers without it are refused), one
 * candidate line per listening address then a=end-of-candidates. Per m-line
 * exactly one codec (no RTX: retransmissions travel in the original stream),
 * the rtcp-fb lines we act on (nack, nack pli, ccm fir, goog-remb) and the
 * header extensions we understand (mid, abs-send-time). Codecs: Opus;
 * VP8; H.264 with packetization-mode=1 (profile-level-id matched by profile
 * and constraint bits, level from the offer). Data channels (m=application)
 * and unsupported codecs are rejected with port 0, as JSEP asks. */
#ifndef CASCADE_MEDIA_SDP_H
#define CASCADE_MEDIA_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"

#define SDP_MAX_TEXT (64 * 1024) /* offers above this are refused */
#define SDP_MAX_MEDIA 8          /* m-lines per session */
#define SDP_MAX_CODECS 24        /* rtpmap lines kept per m-line */
#define SDP_MAX_EXTMAP 16        /* a=extmap lines kept per m-line */
#define SDP_MAX_SSRCS 4          /* distinct a=ssrc ids kept per m-line */
#define SDP_MAX_CANDIDATES 4     /* our candidates written into an answer */
#define SDP_TOKEN_MAX 64         /* mid, codec name, ufrag, cname, msid parts */
#define SDP_PWD_MAX 256          /* ice-pwd (RFC 8839: 22..256 chars) */
#define SDP_FMTP_MAX 256
#define SDP_URI_MAX 128
#define SDP_LINE_MAX 1024        /* one offer line, without its line end; longer refuses the offer */

enum sdp_kind { SDP_KIND_AUDIO, SDP_KIND_VIDEO, SDP_KIND_OTHER };
enum sdp_dir { SDP_DIR_SENDRECV, SDP_DIR_SENDONLY, SDP_DIR_RECVONLY, SDP_DIR_INACTIVE };
enum sdp_setup { SDP_SETUP_NONE, SDP_SETUP_ACTPASS, SDP_SETUP_ACTIVE, SDP_SETUP_PASSIVE };

/* Header extensions the forwarder knows by URI. */
#define SDP_EXT_MID "urn:ietf:params:rtp-hdrext:sdes:mid"
#define SDP_EXT_ABS_SEND_TIME "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

struct sdp_codec {
    uint8_t pt;
    char name[SDP_TOKEN_MAX];   /* as written: "opus", "VP8", "H264" (compare case-insensitively) */
    uint32_t clock;
    uint8_t channels;           /* 0 when not given (video) */
    char fmtp[SDP_FMTP_MAX];    /* the a=fmtp parameters, "" when none */
    bool fb_nack, fb_pli, fb_fir, fb_remb, fb_twcc;
    uint8_t rtx_for;            /* this is "rtx" with apt=rtx_for; 0 otherwise */
};

struct sdp_extmap {
    uint8_t id;                 /* 1..14 (one-byte form) or up to 255 */
    char uri[SDP_URI_MAX];
};

struct sdp_ssrc {
    uint32_t ssrc;
    char cname[SDP_TOKEN_MAX];
    char msid_stream[SDP_TOKEN_MAX];   /* a=ssrc:N msid:<stream> <track>, "" when absent */
    char msid_track[SDP_TOKEN_MAX];
};

struct sdp_media {
    enum sdp_kind kind;
    char kind_name[16];         /* "audio", "video", "application", … as in the m-line */
    char proto[SDP_TOKEN_MAX];  /* "UDP/TLS/RTP/SAVPF" */
    uint16_t port;              /* 0: rejected / stopped */
    char mid[SDP_TOKEN_MAX];
    enum sdp_dir dir;
    bool rtcp_mux, rtcp_rsize;
    struct sdp_codec codecs[SDP_MAX_CODECS];
    size_t n_codecs;
    uint8_t fmt_pts[SDP_MAX_CODECS]; /* the m-line's payload list, for writing a rejected line back */
    size_t n_fmt_pts;
    struct sdp_extmap ext[SDP_MAX_EXTMAP];
    size_t n_ext;
    struct sdp_ssrc ssrcs[SDP_MAX_SSRCS];   /* media SSRCs; an FID group's repair SSRC is not listed */
    size_t n_ssrcs;
    uint32_t rtx_ssrc;          /* a=ssrc-group:FID media repair: the repair one, 0 when none */
    char msid_stream[SDP_TOKEN_MAX];        /* a=msid:<stream> <track>, "" when absent */
    char msid_track[SDP_TOKEN_MAX];
    bool has_rids;              /* a=rid / a=simulcast present (simulcast: not supported yet) */
    char fmt_token[SDP_TOKEN_MAX];  /* the m-line's formats when they are not payload types
                                     * ("webrtc-datachannel"), "" for RTP m-lines */
    bool bundle_only;           /* a=bundle-only: port 0 that means "in the BUNDLE", not rejected */
    /* Media-level transport attributes (with BUNDLE they are the same on
     * every m-line; the session copy below is what counts). */
};

struct sdp_session {
    uint64_t sess_id, sess_version;
    char ice_ufrag[SDP_TOKEN_MAX];
    char ice_pwd[SDP_PWD_MAX];
    bool ice_lite;
    bool has_fingerprint;
    uint8_t fingerprint[32];    /* sha-256 only; other hashes are refused */
    enum sdp_setup setup;
    bool bundle;                /* a=group:BUNDLE naming every non-rejected mid */
    struct sdp_media media[SDP_MAX_MEDIA];
    size_t n_media;
};

/* src/sip/sdp.h (the GB/T 28181 SDP) already links a function named
 * sdp_parse; this one is linked as msdp_parse so both libraries can sit in
 * one program. Callers still write sdp_parse. A file cannot include both
 * headers (struct sdp_session is in both). */
#define sdp_parse msdp_parse

/* Parses an offer (CRLF or LF line ends). 0, or -1 with *why a static
 * phrase for a 400 detail: not SDP, a line or value over its cap, too many
 * m-lines, no ice-ufrag/pwd, no sha-256 fingerprint, …. Session-level
 * ice/fingerprint/setup attributes and media-level ones are both accepted
 * (media-level wins, first m-line's). */
int sdp_parse(const char *text, size_t len, struct sdp_session *out, const char **why);

/* What the server writes into every answer. */
struct sdp_candidate {
    char ip[48];                /* numeric IPv4 or IPv6 */
    uint16_t port;
    bool tcp;                   /* ICE-TCP passive (RFC 6544) */
};
struct sdp_local {
    const char *ice_ufrag, *ice_pwd;
    const char *fingerprint;    /* "sha-256 AB:CD:…" as dtls_context_fingerprint() gives it */
    const struct sdp_candidate *candidates;
    size_t n_candidates;
    uint64_t sess_id;
    const char *cname;          /* our RTCP CNAME for the SSRCs we announce */
};

/* Answer for a publisher's offer: every sendonly/sendrecv audio or video
 * m-line becomes recvonly with the first supported codec in the offer's
 * order; everything else is rejected (port 0). On success answer holds what
 * was agreed (pt, codec, ext ids, the publisher's SSRCs copied from the
 * offer) and can be written with sdp_write. -1 with *why when nothing is
 * acceptable (no audio/video we can take, no rtcp-mux, no BUNDLE, setup
 * not actpass/active). */
int sdp_answer_publish(const struct sdp_session *offer, const struct sdp_local *local, struct sdp_session *answer,
                       const char **why);

/* Answer for a viewer's offer against what a publisher sends (pub: the
 * answer sdp_answer_publish made for it). Each recvonly/sendrecv m-line of
 * the viewer takes, in order, the publisher's next unused m-line of the
 * same kind: sendonly, the viewer's payload type for the publisher's codec
 * (same name, clock, channels; H.264 same packetization-mode and profile),
 * the viewer's ids for the extensions both sides have, a=msid and a=ssrc
 * lines naming the publisher's SSRC (the forwarder keeps SSRCs) with
 * local->cname. Viewer m-lines with nothing to take (no such kind, no
 * common codec) are answered inactive, so the browser keeps the
 * transceiver. -1 with *why when no m-line could be matched at all. */
int sdp_answer_view(const struct sdp_session *offer, const struct sdp_session *pub, const struct sdp_local *local,
                    struct sdp_session *answer, const char **why);

/* In an answer the session-level fields describe our side, as the written
 * text does: ice_ufrag/ice_pwd and fingerprint are local's, setup is
 * passive, ice_lite and bundle are true; the browser's own credentials and
 * fingerprint stay in the offer. Accepted m-lines have port 9 and exactly
 * one codec; rejected ones port 0 and no codec. A publish answer keeps the
 * publisher's SSRCs, repair SSRC and msid in its (recvonly) m-lines, which
 * sdp_write does not print (they are the browser's, not ours); a view answer
 * holds in each sendonly m-line the SSRC and msid we announce.
 *
 * Writes the answer (CRLF line ends; the media lines in answer order, which
 * is the offer's). Returns 0 or -1 when the struct is inconsistent. */
int sdp_write(sbuf_t *out, const struct sdp_session *answer, const struct sdp_local *local);

/* Lookups on a negotiated session. */
const struct sdp_codec *sdp_media_codec(const struct sdp_media *m);   /* the one codec, NULL if rejected */
uint8_t sdp_media_ext_id(const struct sdp_media *m, const char *uri); /* 0 when absent */
const struct sdp_media *sdp_find_mid(const struct sdp_session *s, const char *mid);

#endif
