/* rl_sdp.h — the load viewer's own minimal SDP: it reads from the server's
 * description just what a receive-only viewer needs (ICE credentials, the
 * DTLS fingerprint and role, the first IPv4 UDP candidate, the payload types
 * of Opus, H.264 and VP8 and the mids), and writes the viewer's recvonly
 * offer (WHEP) or answer (Janus). It is not a general SDP parser: the
 * project's own one lives in src/media/sdp.c; this stays separate so the
 * bench does not test the code it measures with itself. */
#ifndef CASCADE_BENCH_RL_SDP_H
#define CASCADE_BENCH_RL_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_SDP_MAX_MEDIA 4

typedef struct {
    char kind[8];          /* "audio" / "video" */
    char mid[16];
    int pt_opus, pt_h264, pt_vp8; /* -1 when the section has none */
    char h264_fmtp[128];   /* the fmtp of pt_h264, for echoing in an answer */
    int port;              /* m= port; 0: rejected */
} rl_sdp_media_t;

typedef struct {
    char ufrag[64], pwd[128];
    char fingerprint[160];  /* "sha-256 AB:..." */
    char setup[16];         /* actpass / active / passive */
    bool have_cand;
    char cand_ip[64];
    int cand_port;
    bool ice_lite;
    size_t n_media;
    rl_sdp_media_t media[RL_SDP_MAX_MEDIA];
} rl_sdp_t;

/* Reads sdp (len bytes, need not be terminated). Session-level ICE and
 * fingerprint lines are taken as defaults for the media; the first media
 * section's values win otherwise (BUNDLE: one transport). 0, or -1 with
 * *why when ufrag, pwd, fingerprint or any media section is missing. */
int rl_sdp_parse(const char *sdp, size_t len, rl_sdp_t *out, const char **why);

/* Our side of the transport. */
typedef struct {
    const char *ufrag, *pwd, *fingerprint; /* fingerprint: "sha-256 AB:.." */
    const char *ip;
    int port;
    uint32_t ssrc;          /* for a=ssrc cname: (the RTCP we send) */
} rl_sdp_local_t;

/* The WHEP offer: audio Opus pt 111, video H.264 pt 102 (constrained
 * baseline, packetization-mode=1) and VP8 pt 96, recvonly, BUNDLE,
 * rtcp-mux, a=setup:active, our host candidate. Returns the length
 * written (terminated), or -1 when cap is too small. */
int rl_sdp_write_offer(const rl_sdp_local_t *l, char *out, size_t cap);

/* The answer to a server's sendonly offer (Janus): every media section it
 * offered, each accepting its first codec we know, recvonly, the same
 * mids in a BUNDLE group, a=setup:active and our host candidate. -1 when
 * cap is too small or no section has a codec we know. */
int rl_sdp_write_answer(const rl_sdp_t *offer, const rl_sdp_local_t *l, char *out, size_t cap);

#endif
