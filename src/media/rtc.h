/* rtc.h — the WebRTC transport of one node: one UDP media port (and an
 * optional ICE-TCP passive listener, RFC 6544 with RFC 4571 framing) shared
 * by every peer, demultiplexed the way mediasoup's WebRtcServer does it.
 *
 * Per datagram (RFC 7983 first byte, media_demux_kind):
 *   STUN  → ICE-lite (stun_ice_lite_answer): the USERNAME's first half is a
 *           peer's local ufrag; a request with valid MESSAGE-INTEGRITY is
 *           answered and its source becomes (or refreshes) that peer's path;
 *           USE-CANDIDATE, or the first valid request, selects the path.
 *           Every valid request refreshes consent (RFC 7675), and so does
 *           SRTP/SRTCP that unprotects on the selected path (authenticated
 *           by the DTLS keys; libnice-based peers keep paths alive with
 *           unauthenticated indications only).
 *   DTLS  → the peer owning the source 5-tuple (unknown sources: dropped,
 *           counted); we are the DTLS server (a=setup:passive). The remote
 *           certificate must match the offer's fingerprint.
 *   RTP/RTCP → only from a peer's selected path after DTLS completed (before:
 *           dropped, counted); SRTP/SRTCP unprotected, handed to the
 *           callbacks in place.
 * Anything else is dropped and counted; refusals are logged with the
 * sender, rate-limited. Nothing a stranger sends allocates: peers exist only
 * because signaling (WHIP/WHEP/WS) created them.
 *
 * A peer that has not completed ICE and DTLS within connect_timeout_ms, or
 * whose consent lapses (no valid Binding request for consent_timeout_ms), or
 * whose DTLS fails or receives close_notify, is reported gone once and then
 * freed by the transport.
 *
 * Single-threaded: everything runs on the loop's thread. */
#ifndef CASCADE_MEDIA_RTC_H
#define CASCADE_MEDIA_RTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "media/dtls.h"
#include "media/webrtc_sdp.h"

struct rtc_transport;
struct rtc_peer;

/* Room for the SRTP trailer after a packet handed to rtc_peer_send_*: the
 * buffer's capacity must be at least len + RTC_SEND_SLACK. */
#define RTC_SEND_SLACK 32
#define RTC_MAX_PACKET 1500

struct rtc_config {
    const char *bind_ip;          /* "127.0.0.1", "0.0.0.0", "::" */
    uint16_t port;                /* 0: pick one (rtc_transport_port tells) */
    bool tcp;                     /* also listen ICE-TCP passive on the same port number */
    const char *announce_ip;      /* the address written into candidates; NULL/"": bind_ip
                                   * (a wildcard bind_ip then announces each local interface address) */
    uint32_t connect_timeout_ms;  /* ICE + DTLS must finish within this after rtc_peer_new; default 15000 */
    uint32_t consent_timeout_ms;  /* RFC 7675: 30000 */
    uint32_t max_peers;           /* default 5000; rtc_peer_new fails beyond */
};

enum rtc_gone_reason {
    RTC_GONE_CONNECT_TIMEOUT,     /* ICE or DTLS never finished */
    RTC_GONE_CONSENT_EXPIRED,
    RTC_GONE_DTLS_FAILED,         /* handshake error or bad fingerprint */
    RTC_GONE_DTLS_CLOSED,         /* close_notify from the peer */
};
const char *rtc_gone_reason_name(enum rtc_gone_reason r);

struct rtc_callbacks {
    void *user;
    /* ICE and DTLS done, SRTP keys in place: media may flow. */
    void (*connected)(void *user, struct rtc_peer *p);
    /* A decrypted RTP packet (pkt writable, capacity len + RTC_SEND_SLACK,
     * valid only during the call). */
    void (*rtp)(void *user, struct rtc_peer *p, uint8_t *pkt, size_t len);
    /* A decrypted compound RTCP packet, same rules. */
    void (*rtcp)(void *user, struct rtc_peer *p, uint8_t *pkt, size_t len);
    /* Once per peer; the peer is freed right after this returns. */
    void (*gone)(void *user, struct rtc_peer *p, enum rtc_gone_reason why);
};

/* NULL with err filled when the port cannot be bound or the DTLS identity
 * cannot be made (ECDSA P-256 certificate generated here). */
struct rtc_transport *rtc_transport_new(uv_loop_t *loop, const struct rtc_config *cfg, const struct rtc_callbacks *cb,
                                        char *err, size_t errcap);
/* Frees every peer without calling gone, closes the handles; keep running
 * the loop until it has no handles, as with uv_close(). */
void rtc_transport_free(struct rtc_transport *t);

uint16_t rtc_transport_port(const struct rtc_transport *t);
const char *rtc_transport_fingerprint(const struct rtc_transport *t);   /* "sha-256 AB:…" */
/* Our candidates for answers (UDP first, then TCP passive). */
size_t rtc_transport_candidates(const struct rtc_transport *t, struct wsdp_candidate *out, size_t max);

/* A peer for one browser PeerConnection. remote_ufrag/remote_fp from its
 * offer. Local ufrag (8 chars) and pwd (24 chars) are random. NULL when
 * max_peers is reached or memory ran out. */
struct rtc_peer *rtc_peer_new(struct rtc_transport *t, const char *remote_ufrag, const uint8_t remote_fp[DTLS_FP_LEN],
                              void *user);
const char *rtc_peer_ufrag(const struct rtc_peer *p);
const char *rtc_peer_pwd(const struct rtc_peer *p);
void *rtc_peer_user(const struct rtc_peer *p);
void rtc_peer_set_user(struct rtc_peer *p, void *user);
bool rtc_peer_connected(const struct rtc_peer *p);
/* The selected remote address as "ip:port" ("" before ICE). */
const char *rtc_peer_remote(const struct rtc_peer *p);
/* Closes a peer from our side (sends DTLS close_notify when connected);
 * no callback follows. */
void rtc_peer_close(struct rtc_peer *p);

/* Protect in place (the buffer has RTC_SEND_SLACK spare bytes after len)
 * and send on the selected path. 0, or -1 when not connected or the send
 * failed (counted; never blocks, never queues more than the socket does). */
int rtc_peer_send_rtp(struct rtc_peer *p, uint8_t *pkt, size_t len);
int rtc_peer_send_rtcp(struct rtc_peer *p, uint8_t *pkt, size_t len);

/* Batched sends. Between begin and flush, rtc_peer_send_rtp/rtcp to UDP
 * peers protect a copy of the packet (the caller's buffer is left as it
 * was) and queue it; flush sends the queue with sendmmsg, RTC_BATCH packets
 * a system call (a full queue flushes itself). A fan-out of one publisher
 * packet to N viewers costs N/RTC_BATCH system calls instead of N. The
 * sends return 0 when queued; what the socket then refuses is counted in
 * the peer's send_errors at the flush. ICE-TCP peers are sent at once.
 * Begin and flush must pair up within one callback (no nesting). */
#define RTC_BATCH 64
void rtc_transport_batch_begin(struct rtc_transport *t);
void rtc_transport_batch_flush(struct rtc_transport *t);

/* Forwarding delay: for each packet sent in a batch, the time from its
 * source datagram's arrival on the media port to the sendmmsg that sent
 * it (the SFU's own part of the path: decrypt, copy, rewrite, protect,
 * queue, system call), counted in buckets of RTC_DELAY_BUCKET_US; the last
 * bucket holds everything longer. Cumulative since the transport started. */
#define RTC_DELAY_BUCKET_US 10
#define RTC_DELAY_BUCKETS 1000
void rtc_transport_delay_histogram(const struct rtc_transport *t, uint64_t out[RTC_DELAY_BUCKETS]);
/* The sum of those delays in µs (for a mean, or a Prometheus _sum). */
uint64_t rtc_transport_delay_sum_us(const struct rtc_transport *t);

struct rtc_peer_stats {
    uint64_t rtp_in, rtp_out, rtcp_in, rtcp_out, bytes_in, bytes_out;
    uint64_t srtp_errors, send_errors;
    uint64_t stun_requests;
};
void rtc_peer_get_stats(const struct rtc_peer *p, struct rtc_peer_stats *out);

struct rtc_transport_stats {
    uint32_t peers, peers_connected;
    uint64_t stun_ok, stun_refused, dtls_handshakes, dtls_failed;
    uint64_t srtp_gcm, srtp_cm;   /* handshakes that agreed AEAD_AES_128_GCM / AES128_CM_SHA1_80 */
    uint64_t dropped_unknown_source, dropped_before_dtls, dropped_garbage, srtp_errors;
    uint64_t tcp_connections;
};
void rtc_transport_get_stats(const struct rtc_transport *t, struct rtc_transport_stats *out);

#endif
