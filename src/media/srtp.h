/* srtp.h — SRTP/SRTCP contexts (RFC 3711) for DTLS-SRTP, a thin layer on
 * libsrtp2. The names carry the prefix msrtp_ (media SRTP) because libsrtp
 * owns srtp_*.
 *
 * One msrtp is one direction: outbound protects what we send with our
 * write key, inbound unprotects what the peer sends with its write key (a
 * DTLS server reads with the client write key, RFC 5764 §4.2). Each covers
 * every SSRC of the transport. Inbound replay protection is always on
 * (window MSRTP_REPLAY_WINDOW); outbound allows sending the same packet
 * again, which answering a NACK with the original packet needs.
 *
 * Packets are changed in place: protect grows the packet by its trailer
 * (auth tag, and the SRTCP index for RTCP), so the caller gives the
 * buffer's capacity; unprotect shrinks it.
 *
 * Thread use: libsrtp's global init runs once on first use, from any
 * thread; an msrtp is used by one thread at a time. */
#ifndef CASCADE_MEDIA_SRTP_H
#define CASCADE_MEDIA_SRTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/dtls.h"

#define MSRTP_REPLAY_WINDOW 1024
/* Bytes protect adds at most, whatever the profile: the 16-byte tag of
 * AEAD_AES_128_GCM (RFC 7714 §14.2; AES128_CM_SHA1_80 adds an 80-bit tag);
 * SRTCP also carries the E flag and 31-bit index (RFC 3711 §3.4). Buffers
 * are sized with these; msrtp_rtp_trailer() gives a context's own. */
#define MSRTP_RTP_TRAILER 16
#define MSRTP_RTCP_TRAILER (4 + 16)

/* Results: 0 or one of these. */
enum msrtp_status {
    MSRTP_OK = 0,
    MSRTP_ERR_PARAM = -1,       /* a bad key, length or packet header */
    MSRTP_ERR_ROOM = -2,        /* the buffer has no room for the trailer */
    MSRTP_ERR_AUTH = -3,        /* the auth tag does not match */
    MSRTP_ERR_REPLAY = -4,      /* seen already, or older than the window */
    MSRTP_ERR_NOMEM = -5,
    MSRTP_ERR_FAIL = -6,        /* any other libsrtp failure */
};

struct msrtp;

/* A short text for a status ("auth failed", "replayed", ...). */
const char *msrtp_strerror(int status);

/* libsrtp2's one-time set-up (also done by the first msrtp_new): call it
 * before logging msrtp_crypto_name() (srtp_crypto.h). */
void msrtp_global_init(void);

/* One direction from a key and salt of the given DTLS_SRTP_* profile
 * (AES128_CM_SHA1_80: key 16, salt 14; AEAD_AES_128_GCM: key 16, salt 12).
 * *status: MSRTP_ERR_PARAM for a wrong profile or length, MSRTP_ERR_NOMEM,
 * MSRTP_ERR_FAIL when libsrtp cannot start. NULL on error. */
struct msrtp *msrtp_new(uint16_t profile, bool inbound, const uint8_t *key, size_t key_len, const uint8_t *salt,
                        size_t salt_len, int *status);
void msrtp_free(struct msrtp *c);
/* The context's DTLS_SRTP_* profile, and the bytes its protect adds to an
 * RTP and to an RTCP packet (10 and 14 for AES128_CM_SHA1_80, 16 and 20 for
 * AEAD_AES_128_GCM). */
uint16_t msrtp_profile(const struct msrtp *c);
size_t msrtp_rtp_trailer(const struct msrtp *c);
size_t msrtp_rtcp_trailer(const struct msrtp *c);

/* Both directions of one side of a DTLS-SRTP association: *in reads with
 * the peer's write key, *out writes with ours. 0 with both set, or a
 * status with neither. */
int msrtp_pair_from_dtls(const struct dtls_srtp_keys *k, enum dtls_role we, struct msrtp **in, struct msrtp **out);

/* In place. *len: the packet's length in, the new length out (unchanged on
 * error). cap: bytes available at buf. 0 or a status. */
int msrtp_protect_rtp(struct msrtp *c, uint8_t *buf, size_t *len, size_t cap);
int msrtp_unprotect_rtp(struct msrtp *c, uint8_t *buf, size_t *len);
int msrtp_protect_rtcp(struct msrtp *c, uint8_t *buf, size_t *len, size_t cap);
int msrtp_unprotect_rtcp(struct msrtp *c, uint8_t *buf, size_t *len);

#endif
