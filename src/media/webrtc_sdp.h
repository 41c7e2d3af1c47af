/* webrtc_sdp.h — WebRTC session descriptions (RFC 8866 syntax, RFC 8829/JSEP
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
 * the rtcp-fb lines we act on (nack, nack pli, ccm fir, goog-remb,
 * transport-cc) and the header extensions we understand (mid,
 * abs-send-time, transport-wide-cc). Codecs: Opus;
 * VP8; H.264 with packetization-mode=1 (profile-level-id matched by profile
 * and constraint bits, level from the offer). Data channels (m=application)
 * and unsupported codecs are rejected with port 0, as JSEP asks. */
#ifndef CASCADE_MEDIA_WEBRTC_SDP_H
#define CASCADE_MEDIA_WEBRTC_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"

#define WSDP_MAX_TEXT (64 * 1024) /* offers above this are refused */
#define WSDP_MAX_MEDIA 8          /* m-lines per session */
#define WSDP_MAX_CODECS 24        /* rtpmap lines kept per m-line */
#define WSDP_MAX_EXTMAP 16        /* a=extmap lines kept per m-line */
#define WSDP_MAX_SSRCS 4          /* distinct a=ssrc ids kept per m-line */
#define WSDP_MAX_CANDIDATES 4     /* our candidates written into an answer */
#define WSDP_TOKEN_MAX 64         /* mid, codec name, ufrag, cname, msid parts */
#define WSDP_PWD_MAX 256          /* ice-pwd (RFC 8839: 22..256 chars) */
#define WSDP_FMTP_MAX 256
#define WSDP_URI_MAX 128
#define WSDP_LINE_MAX 1024        /* one offer line, without its line end; longer refuses the offer */
#define WSDP_MAX_RIDS 3           /* simulcast streams kept per m-line (RFC 8853); more are left out of the answer */
#define WSDP_RID_MAX 17           /* a rid-id and its NUL: 16 bytes fit one one-byte header-extension element */

enum wsdp_kind { WSDP_KIND_AUDIO, WSDP_KIND_VIDEO, WSDP_KIND_OTHER };
enum wsdp_dir { WSDP_DIR_SENDRECV, WSDP_DIR_SENDONLY, WSDP_DIR_RECVONLY, WSDP_DIR_INACTIVE };
enum wsdp_setup { WSDP_SETUP_NONE, WSDP_SETUP_ACTPASS, WSDP_SETUP_ACTIVE, WSDP_SETUP_PASSIVE };

/* Header extensions the forwarder knows by URI. */
#define WSDP_EXT_MID "urn:ietf:params:rtp-hdrext:sdes:mid"
#define WSDP_EXT_ABS_SEND_TIME "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
#define WSDP_EXT_TWCC "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
/* RFC 8852: which simulcast stream (rid) a packet, or its repair, belongs to.
 * Accepted only on a publisher's simulcast m-line, never sent to viewers. */
#define WSDP_EXT_RID "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
#define WSDP_EXT_REPAIRED_RID "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

struct wsdp_codec {
    uint8_t pt;
    char name[WSDP_TOKEN_MAX];   /* as written: "opus", "VP8", "H264" (compare case-insensitively) */
    uint32_t clock;
    uint8_t channels;           /* 0 when not given (video) */
    char fmtp[WSDP_FMTP_MAX];    /* the a=fmtp parameters, "" when none */
    bool fb_nack, fb_pli, fb_fir, fb_remb, fb_twcc;
    uint8_t rtx_for;            /* this is "rtx" with apt=rtx_for; 0 otherwise */
};

struct wsdp_extmap {
    uint8_t id;                 /* 1..14 (one-byte form) or up to 255 */
    char uri[WSDP_URI_MAX];
};

struct wsdp_ssrc {
    uint32_t ssrc;
    char cname[WSDP_TOKEN_MAX];
    char msid_stream[WSDP_TOKEN_MAX];   /* a=ssrc:N msid:<stream> <track>, "" when absent */
    char msid_track[WSDP_TOKEN_MAX];
};

struct wsdp_media {
    enum wsdp_kind kind;
    char kind_name[16];         /* "audio", "video", "application", … as in the m-line */
    char proto[WSDP_TOKEN_MAX];  /* "UDP/TLS/RTP/SAVPF" */
    uint16_t port;              /* 0: rejected / stopped */
    char mid[WSDP_TOKEN_MAX];
    enum wsdp_dir dir;
    bool rtcp_mux, rtcp_rsize;
    struct wsdp_codec codecs[WSDP_MAX_CODECS];
    size_t n_codecs;
    uint8_t fmt_pts[WSDP_MAX_CODECS]; /* the m-line's payload list, for writing a rejected line back */
    size_t n_fmt_pts;
    struct wsdp_extmap ext[WSDP_MAX_EXTMAP];
    size_t n_ext;
    struct wsdp_ssrc ssrcs[WSDP_MAX_SSRCS];   /* media SSRCs; an FID group's repair SSRC is not listed */
    size_t n_ssrcs;
    uint32_t rtx_ssrc;          /* a=ssrc-group:FID media repair: the repair one, 0 when none */
    char msid_stream[WSDP_TOKEN_MAX];        /* a=msid:<stream> <track>, "" when absent */
    char msid_track[WSDP_TOKEN_MAX];
    bool has_rids;              /* a=rid / a=simulcast present */
    /* Simulcast (RFC 8853 with RFC 8851 rids): in an offer, the streams of
     * a=simulcast:send that have an a=rid:<id> send line, in the simulcast
     * order (the first alternative of each stream, paused '~' or not), at
     * most WSDP_MAX_RIDS; in a publish answer, the ones accepted (written
     * as a=rid:<id> recv and a=simulcast:recv). Layers are taken lowest
     * quality first in this order, as browsers list sendEncodings. 0: no
     * simulcast. */
    char rids[WSDP_MAX_RIDS][WSDP_RID_MAX];
    size_t n_rids;
    /* View answers of a simulcast publisher: the one SSRC its layers go out
     * with to viewers, chosen by the caller and set in the publish answer
     * (wsdp_answer_view announces it); 0: none chosen. */
    uint32_t out_ssrc;
    char fmt_token[WSDP_TOKEN_MAX];  /* the m-line's formats when they are not payload types
                                     * ("webrtc-datachannel"), "" for RTP m-lines */
    bool bundle_only;           /* a=bundle-only: port 0 that means "in the BUNDLE", not rejected */
    /* Media-level transport attributes (with BUNDLE they are the same on
     * every m-line; the session copy below is what counts). */
};

struct wsdp_session {
    uint64_t sess_id, sess_version;
    char ice_ufrag[WSDP_TOKEN_MAX];
    char ice_pwd[WSDP_PWD_MAX];
    bool ice_lite;
    bool has_fingerprint;
    uint8_t fingerprint[32];    /* sha-256 only; other hashes are refused */
    enum wsdp_setup setup;
    bool bundle;                /* a=group:BUNDLE naming every non-rejected mid */
    struct wsdp_media media[WSDP_MAX_MEDIA];
    size_t n_media;
};

/* Parses an offer (CRLF or LF line ends). 0, or -1 with *why a static
 * phrase for a 400 detail: not SDP, a line or value over its cap, too many
 * m-lines, no ice-ufrag/pwd, no sha-256 fingerprint, …. Session-level
 * ice/fingerprint/setup attributes and media-level ones are both accepted
 * (media-level wins, first m-line's). */
int wsdp_parse(const char *text, size_t len, struct wsdp_session *out, const char **why);

/* What the server writes into every answer. */
struct wsdp_candidate {
    char ip[48];                /* numeric IPv4 or IPv6 */
    uint16_t port;
    bool tcp;                   /* ICE-TCP passive (RFC 6544) */
};
struct wsdp_local {
    const char *ice_ufrag, *ice_pwd;
    const char *fingerprint;    /* "sha-256 AB:CD:…" as dtls_context_fingerprint() gives it */
    const struct wsdp_candidate *candidates;
    size_t n_candidates;
    uint64_t sess_id;
    const char *cname;          /* our RTCP CNAME for the SSRCs we announce */
};

/* Answer for a publisher's offer: every sendonly/sendrecv audio or video
 * m-line becomes recvonly with the first supported codec in the offer's
 * order; everything else is rejected (port 0). A simulcast video m-line
 * (n_rids > 0) is accepted with all its rids, and with the rtp-stream-id
 * and repaired-rtp-stream-id extensions when offered; without the
 * rtp-stream-id extension its layers cannot be told apart, so simulcast is
 * then declined (no a=simulcast: the browser sends its first layer only). On success answer holds what
 * was agreed (pt, codec, ext ids, the publisher's SSRCs copied from the
 * offer) and can be written with wsdp_write. -1 with *why when nothing is
 * acceptable (no audio/video we can take, no rtcp-mux, no BUNDLE, setup
 * not actpass/active). */
int wsdp_answer_publish(const struct wsdp_session *offer, const struct wsdp_local *local, struct wsdp_session *answer,
                       const char **why);

/* Answer for a viewer's offer against what a publisher sends (pub: the
 * answer wsdp_answer_publish made for it). Each recvonly/sendrecv m-line of
 * the viewer takes, in order, the publisher's next unused m-line of the
 * same kind: sendonly, the viewer's payload type for the publisher's codec
 * (same name, clock, channels; H.264 same packetization-mode and profile),
 * the viewer's ids for the extensions both sides have, a=msid and a=ssrc
 * lines naming the publisher's SSRC (the forwarder keeps SSRCs; for a
 * simulcast m-line its out_ssrc) with local->cname; the rid extensions are
 * never offered to a viewer. Viewer m-lines with nothing to take (no such kind, no
 * common codec) are answered inactive, so the browser keeps the
 * transceiver. -1 with *why when no m-line could be matched at all. */
int wsdp_answer_view(const struct wsdp_session *offer, const struct wsdp_session *pub, const struct wsdp_local *local,
                    struct wsdp_session *answer, const char **why);

/* In an answer the session-level fields describe our side, as the written
 * text does: ice_ufrag/ice_pwd and fingerprint are local's, setup is
 * passive, ice_lite and bundle are true; the browser's own credentials and
 * fingerprint stay in the offer. Accepted m-lines have port 9 and exactly
 * one codec; rejected ones port 0 and no codec. A publish answer keeps the
 * publisher's SSRCs, repair SSRC and msid in its (recvonly) m-lines, which
 * wsdp_write does not print (they are the browser's, not ours); a view answer
 * holds in each sendonly m-line the SSRC and msid we announce.
 *
 * Writes the answer (CRLF line ends; the media lines in answer order, which
 * is the offer's). Returns 0 or -1 when the struct is inconsistent. */
int wsdp_write(sbuf_t *out, const struct wsdp_session *answer, const struct wsdp_local *local);

/* Lookups on a negotiated session. */
const struct wsdp_codec *wsdp_media_codec(const struct wsdp_media *m);   /* the one codec, NULL if rejected */
uint8_t wsdp_media_ext_id(const struct wsdp_media *m, const char *uri); /* 0 when absent */
const struct wsdp_media *wsdp_find_mid(const struct wsdp_session *s, const char *mid);

#endif
