/* dtls.h — DTLS 1.2 for DTLS-SRTP (RFC 5764, RFC 8827 §6.5) with OpenSSL 3,
 * without I/O: the caller feeds each received datagram in, and the session
 * hands each datagram to send to a small I/O interface given on the call
 * (the style of transport/tls.h). Nothing here reads a socket or arms a
 * timer; the loop asks dtls_session_timeout_ms() when the retransmission
 * timer is due and calls dtls_session_handle_timeout() then.
 *
 * A dtls_context owns one identity for all its sessions: an ECDSA P-256 key
 * and a self-signed certificate made at start (random serial, 30 days), and
 * its SHA-256 fingerprint as the SDP wants it (RFC 8122 §5). WebRTC peers
 * are not checked against a CA: each session is given the fingerprint from
 * the peer's SDP and the handshake fails unless the SHA-256 of the peer's
 * DER certificate equals it (RFC 8842 §5; RFC 5763 §5).
 *
 * Roles: a server session (a=setup:passive, what cascade answers with) and a
 * client session (a=setup:active: tests and the load viewer). Both require
 * the peer's certificate and offer/accept the use_srtp extension with
 * SRTP_AEAD_AES_128_GCM (RFC 7714 §14.2) first and SRTP_AES128_CM_SHA1_80
 * (RFC 5764 §4.1.2) for peers without it; the server takes the first of its
 * own list the client also offers. dtls_context_set_profiles() narrows the
 * list (the load viewer's --srtp flag).
 *
 * Once established, dtls_session_srtp_keys() gives the keying material
 * exported with the "EXTRACTOR-dtls_srtp" label (RFC 5764 §4.2) split into
 * the client's and the server's write key and salt, of the lengths of the
 * agreed profile (16-byte keys; salts of 14 bytes for AES128_CM_SHA1_80,
 * 12 for AEAD_AES_128_GCM, RFC 7714 §12).
 *
 * Thread use: one context and its sessions per thread. */
#ifndef CASCADE_MEDIA_DTLS_H
#define CASCADE_MEDIA_DTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest datagram a session sends: the records of a flight are split to fit
 * (a path MTU of 1280 for IPv6, less UDP/IP headers and TURN overhead). */
#define DTLS_MTU 1200

/* SHA-256 digest length, and "sha-256 " + 32 "XX:" groups less one colon. */
#define DTLS_FP_LEN 32
#define DTLS_FP_ATTR_LEN (8 + DTLS_FP_LEN * 3 - 1)

/* SRTP protection profile ids (RFC 5764 §4.1.2, RFC 7714 §14.2). */
enum { DTLS_SRTP_AES128_CM_SHA1_80 = 0x0001, DTLS_SRTP_AEAD_AES_128_GCM = 0x0007 };

/* Which profiles a context offers (dtls_context_set_profiles). */
enum { DTLS_PROFILE_CM = 1u << 0, DTLS_PROFILE_GCM = 1u << 1 };

/* Key length of both profiles; salt lengths: SRTP_AES128_CM_SHA1_80 (RFC
 * 3711 §8.2) and AEAD_AES_128_GCM (RFC 7714 §12). DTLS_SRTP_SALT_LEN is the
 * larger, the size of the salt arrays below. */
#define DTLS_SRTP_KEY_LEN 16
#define DTLS_SRTP_SALT_LEN 14
#define DTLS_SRTP_GCM_SALT_LEN 12

/* The salt length of a profile, 0 for one we do not know. */
size_t dtls_srtp_salt_len(uint16_t profile);
/* "AES128_CM_SHA1_80", "AEAD_AES_128_GCM" or "unknown" (logs, stats). */
const char *dtls_srtp_profile_name(uint16_t profile);

/* The exported keying material, split (RFC 5764 §4.2): the client writes
 * with client_*, the server with server_*; each side reads with the other's. */
struct dtls_srtp_keys {
    uint16_t profile;               /* DTLS_SRTP_* */
    uint8_t salt_len;               /* dtls_srtp_salt_len(profile); the rest of the salts is zero */
    uint8_t client_key[DTLS_SRTP_KEY_LEN];
    uint8_t client_salt[DTLS_SRTP_SALT_LEN];
    uint8_t server_key[DTLS_SRTP_KEY_LEN];
    uint8_t server_salt[DTLS_SRTP_SALT_LEN];
};

enum dtls_role { DTLS_ROLE_SERVER, DTLS_ROLE_CLIENT };

struct dtls_context;
struct dtls_session;

/* Generates the key and certificate. initial_timeout_ms: the first
 * retransmission timeout (RFC 6347 §4.2.4.1), doubled on each retry up to
 * 60 s; 0: 1000. NULL on error with err set. */
struct dtls_context *dtls_context_new(uint32_t initial_timeout_ms, char *err, size_t errcap);
/* Sessions still open keep working until freed (OpenSSL counts references). */
void dtls_context_free(struct dtls_context *ctx);
/* "sha-256 AB:CD:..." — the value of our a=fingerprint attribute; valid
 * while the context lives. */
const char *dtls_context_fingerprint(const struct dtls_context *ctx);
/* The profiles the context's sessions offer (DTLS_PROFILE_* bits, GCM
 * first when both; the default is both): set it before making sessions
 * (OpenSSL reads the context's list when a handshake gets there). 0, or -1 for an empty or unknown
 * set (the context is unchanged). */
int dtls_context_set_profiles(struct dtls_context *ctx, unsigned profiles);

/* Parses an a=fingerprint value ("sha-256 ab:cd:...", hash name and hex
 * case-insensitive, RFC 8122 §5) into digest. 0, or -1 when it is not
 * sha-256 with 32 colon-separated hex bytes (other hashes are refused: we
 * only check SHA-256). */
int dtls_fingerprint_parse(const char *value, uint8_t digest[DTLS_FP_LEN]);

/* How a session sends: one call per datagram (at most DTLS_MTU bytes). 0,
 * or negative (the call that caused the send then fails "send failed"). */
struct dtls_io {
    void *user;
    int (*send)(void *user, const void *data, size_t len);
};

/* A session that only completes with a peer whose certificate's SHA-256 is
 * peer_fp. NULL on no memory. */
struct dtls_session *dtls_session_new(struct dtls_context *ctx, enum dtls_role role,
                                      const uint8_t peer_fp[DTLS_FP_LEN]);
void dtls_session_free(struct dtls_session *s);

/* Client: sends the ClientHello. Server: nothing (it waits for one). 0, or
 * -1 with *why. */
int dtls_session_start(struct dtls_session *s, const struct dtls_io *io, const char **why);
/* One received datagram (first byte 20..63, RFC 7983): drives the
 * handshake, sending replies through io. Application data after the
 * handshake is read and dropped (no data channels here). 0, or -1: with
 * *why "not DTLS" the datagram was refused and the session lives on (a
 * stray packet must not end it); any other -1 leaves the session dead.
 * *why: a short reason for the log — "fingerprint mismatch", "handshake failed: <OpenSSL reason>", "no SRTP
 * profile agreed", "close_notify", "send failed", "closed" (already dead);
 * valid until the next failing call on this thread. Records that do not
 * decrypt are dropped by OpenSSL silently (RFC 6347 §4.1.2.7), not failed. */
int dtls_session_input(struct dtls_session *s, const void *data, size_t len, const struct dtls_io *io,
                       const char **why);
/* Milliseconds until the retransmission timer fires (0: due now), or -1
 * when none runs (idle server, or handshake done). */
int64_t dtls_session_timeout_ms(struct dtls_session *s);
/* Retransmits the last flight when the timer is due (before that it does
 * nothing). 0, or -1 with *why ("handshake timed out" after OpenSSL's
 * retry limit). */
int dtls_session_handle_timeout(struct dtls_session *s, const struct dtls_io *io, const char **why);
bool dtls_session_established(const struct dtls_session *s);
/* The negotiated keys; -1 until established. */
int dtls_session_srtp_keys(const struct dtls_session *s, struct dtls_srtp_keys *out);
/* Sends close_notify (best effort); the session is dead afterwards. */
void dtls_session_shutdown(struct dtls_session *s, const struct dtls_io *io);

#endif
