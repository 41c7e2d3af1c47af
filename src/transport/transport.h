/* transport.h — SIP over UDP, TCP, TLS, WebSocket and secure WebSocket on
 * libuv (RFC 3261 §18 and §26, RFC 3581, RFC 5626 §3.5.1, RFC 7118).
 *
 * A transport owns the listening sockets and the connections of one worker
 * loop. It frames stream data, parses every message into a receive scratch
 * buffer and arena (no malloc per UDP message) and hands it up through
 * on_message; the message is valid only during that callback. TLS runs on
 * memory BIOs (tls.h) and the WebSocket framing is ours (ws.h); both sit
 * between the socket and the same connection code (tcp.c), so every
 * connection-oriented transport has the same flows, caps and timeouts.
 * WebSocket connections are only accepted (browsers connect to us): a
 * request to a WS client goes on its connection. On each
 * received request it stamps received/rport into the top Via (RFC 3261
 * §18.2.1, RFC 3581 §4) so that a response built from the request carries
 * them. Responses and requests go out through transport_send(), which reuses
 * a TCP connection by id or by remote address and connects on demand.
 *
 * Timers (TCP idle and connect timeouts) live in the caller's timer service;
 * its clock must be the one callbacks.now_ms returns (uv_now(loop) when NULL).
 *
 * Ownership: transport_free() starts closing every handle; the memory is
 * released from the libuv close callbacks, so the owner runs the loop once
 * more (uv_run(loop, UV_RUN_DEFAULT)) before uv_loop_close(). No callback
 * fires after transport_free(). transport_free() must not be called from
 * inside a transport callback. */
#ifndef CASCADE_TRANSPORT_TRANSPORT_H
#define CASCADE_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "base/timer.h"
#include "sip/msg.h"
#include "sip/proto.h"

#define TRANSPORT_MAX_LISTENERS 16
#define TRANSPORT_ADDR_TEXT 64      /* "[v6 address]:port" with room to spare */

struct transport;

struct transport_config {
    uint32_t max_message_bytes;      /* 0: 65535; UDP is capped at 65535 */
    uint32_t tcp_idle_timeout_ms;    /* 0: connections never time out */
    uint32_t tcp_connect_timeout_ms; /* 0: 10000 */
    uint32_t tcp_max_send_queue;     /* bytes queued per connection, 0: 4 MiB */
    /* Descriptor budget. tcp_max_connections (0: 10000) counts accepted and
     * outbound connections; transport_new raises the soft RLIMIT_NOFILE to
     * fit it plus tcp_fd_reserve (0: 64, left for the API, the store, logs,
     * listeners) and, when the hard limit is lower, clamps it with a warning.
     * Accepted connections above it, or above tcp_max_per_ip (0: 256) from
     * one source IP, are closed at once (the accept loop never spins); one
     * spare descriptor drains the backlog if the process runs out anyway. */
    uint32_t tcp_max_connections;
    uint32_t tcp_max_per_ip;
    uint32_t tcp_fd_reserve;
    /* Slow senders (RFC 3261 §18.3 gives none; these are ours): a message
     * must be complete tcp_message_timeout_ms (0: 10000) after its first byte
     * arrived, and an accepted connection must have delivered a complete
     * message tcp_first_message_timeout_ms (0: 30000) after it was accepted.
     * Bytes arriving do not extend either (tcp_idle_timeout_ms is for that). */
    uint32_t tcp_message_timeout_ms;
    uint32_t tcp_first_message_timeout_ms;
    /* Parse limits; zero fields take sip_parse_limits_default(). The message
     * size limit used is max_message_bytes above. */
    struct sip_parse_limits limits;
    /* WebSocket (RFC 7118): a ping after ws_ping_interval_ms (0: 30000) with
     * nothing received; an open connection that stays silent after it meets
     * tcp_idle_timeout_ms like any other. ws_origins: the Origin values a
     * browser's handshake may carry, comma-separated, empty: any. Clients
     * that send no Origin (not browsers) are let in unless ws_require_origin. */
    uint32_t ws_ping_interval_ms;
    char ws_origins[512];
    bool ws_require_origin;
};

/* One received message (or a request that failed to parse). Everything it
 * points to is valid only during the on_message callback. */
struct transport_rx {
    const struct sip_msg *msg;                 /* NULL when parse_error and !can_answer */
    const struct sip_parse_error *parse_error; /* NULL when the message parsed */
    enum sip_transport proto;
    struct sockaddr_storage src;               /* the peer */
    char src_text[TRANSPORT_ADDR_TEXT];        /* "ip:port" / "[ip6]:port", for logs */
    uint64_t conn_id;                          /* TCP connection, 0 for UDP */
    uint32_t listener_id;                      /* listener it came in on (TCP outbound: 0) */
    struct sockaddr_storage local;             /* our address it arrived at */
};

struct transport_callbacks {
    void *user;
    /* A parsed message; or a request that failed to parse (parse_error set,
     * msg filled as far as can_answer allows; the caller answers 400 and the
     * transport has already logged the refusal). Malformed responses are
     * dropped and logged here and never reach the callback. */
    void (*on_message)(void *user, const struct transport_rx *rx);
    /* A TCP connection is gone (remote close, reset, idle timeout, garbage,
     * oversize, connect failure, local close). conn_id is no longer valid. */
    void (*on_conn_lost)(void *user, uint64_t conn_id, const struct sockaddr_storage *peer,
                         const char *reason);
    /* The timer service's clock in ms; NULL uses uv_now(loop). */
    uint64_t (*now_ms)(void *user);
};

/* Where to send. For TCP, conn_id picks an existing connection (0: look the
 * address up, else connect); transport_send writes back the connection it
 * used so that a transaction can follow it. For UDP, listener_id picks the
 * socket to send from (0: the first UDP listener of the address family). */
struct transport_dest {
    enum sip_transport proto;
    struct sockaddr_storage addr;
    uint64_t conn_id;
    uint32_t listener_id;
    /* TCP: when conn_id names no live connection, open a new one instead of
     * reusing another connection to the same address (a simulator running
     * many clients on one transport, each with its own flow). */
    bool new_flow;
    /* TLS: when a connection is opened, the name the server's certificate
     * must carry (a DNS name is also sent as SNI); empty: its IP address. */
    char server_name[64];
};

struct transport_stats {
    uint64_t messages_in;       /* parsed messages delivered */
    uint64_t messages_out;      /* transport_send calls that succeeded */
    uint64_t bytes_in, bytes_out;
    uint64_t parse_errors;      /* malformed requests delivered + malformed responses dropped */
    uint64_t dropped;           /* oversize datagrams/frames, malformed responses, unanswerable requests */
    uint64_t send_errors;
    uint64_t tcp_accepted, tcp_connected, tcp_closed;
    uint64_t keepalives;        /* CRLFCRLF pings answered */
    uint32_t tcp_open;          /* connections open now (including connecting) */
    uint64_t tcp_refused;       /* accepted then closed: over tcp_max_connections or tcp_max_per_ip */
    uint64_t tcp_timed_out;     /* closed by tcp_message_timeout / tcp_first_message_timeout */
    uint32_t tcp_max_connections; /* the cap in force (after the RLIMIT_NOFILE clamp) */
    uint64_t tls_handshakes;    /* TLS sessions established (accepted and outbound) */
    uint64_t tls_failed;        /* TLS connections closed before or by a failed handshake */
    uint64_t ws_upgrades;       /* WebSocket handshakes accepted */
    uint64_t ws_refused;        /* WebSocket handshakes refused (bad request, Origin, no sip subprotocol) */
    uint32_t conns_by_proto[SIP_TRANSPORT_COUNT]; /* connections open now per transport (TCP, TLS, WS, WSS) */
};

struct transport *transport_new(uv_loop_t *loop, struct timer_service *timers,
                                const struct transport_config *cfg,
                                const struct transport_callbacks *cb);
void transport_free(struct transport *t);

/* The TLS context TLS and WSS connections are made from (not owned; it
 * must outlive the transport). A TLS or WSS listener needs one that can
 * serve; outbound TLS needs one. Until set, both are refused. */
struct tls_context;
void transport_set_tls(struct transport *t, struct tls_context *ctx);

/* Binds a listener (UDP, TCP, TLS, WS or WSS). host is a numeric IPv4 or
 * IPv6 address (brackets allowed); port 0 picks an ephemeral port. Returns
 * the listener id (> 0), or a negative libuv error code (UV_EINVAL for TLS
 * or WSS without a context that can serve). */
int transport_listen(struct transport *t, enum sip_transport proto, const char *host, uint16_t port);
/* The bound port of a listener, or a negative error code. */
int transport_listener_port(const struct transport *t, uint32_t listener_id);
/* Address of the first listener of proto, for Via and Contact: host gets the
 * numeric address, IPv6 in brackets ("[::1]"). 0, or -ENOENT when none. */
int transport_local(const struct transport *t, enum sip_transport proto, char *host, size_t cap,
                    uint16_t *port);

/* Sends one message. 0, or a negative libuv error code (UV_ENETUNREACH,
 * UV_EAFNOSUPPORT when no socket can reach the family, UV_ENOTCONN ...).
 * TCP may return 0 while still connecting; a later connect failure reports
 * through on_conn_lost with the conn_id written into dest.
 * A new TCP connection is bound to the address of a listener of its family
 * (dest->listener_id when it names a TCP one, else the first TCP, else UDP,
 * listener), port 0, unless that address is a wildcard or loopback towards
 * a non-loopback destination: its packets come from the address the Via and
 * Contact name. */
int transport_send(struct transport *t, struct transport_dest *dest, const void *data, size_t len);
/* Where a response to the request in rx goes (RFC 3261 §18.2.2, RFC 3581 §4):
 * TCP the same connection (address fallback: source IP, sent-by port);
 * UDP the source IP with rport or the sent-by port (default 5060), from the
 * socket it arrived on. A Via maddr is ignored: honouring it would let any
 * client aim responses and their retransmissions at a third party. 0, or -1
 * when no address can be formed. */
int transport_response_dest(const struct transport_rx *rx, struct transport_dest *dest);

/* Closes a TCP connection (fires on_conn_lost with "closed locally").
 * 0, or UV_ENOTCONN when unknown. */
int transport_close_conn(struct transport *t, uint64_t conn_id);
void transport_get_stats(const struct transport *t, struct transport_stats *out);

/* How full the fullest UDP listener's receive queue is, in percent of its
 * socket buffer (SO_MEMINFO; 0 when unknown). One getsockopt per UDP
 * listener: for periodic sampling (overload control), not per message. */
uint32_t transport_udp_rx_queue_pct(const struct transport *t);

/* Helpers shared with upper layers. */
/* Numeric host (brackets allowed) + port -> address. 0, or -1 when not numeric. */
int transport_addr_parse(const char *host, size_t host_len, uint16_t port, struct sockaddr_storage *out);
/* "1.2.3.4:5060" / "[::1]:5060"; returns the text length. */
size_t transport_addr_text(const struct sockaddr_storage *a, char *buf, size_t cap);
uint16_t transport_addr_port(const struct sockaddr_storage *a);
/* Same family, address and port. */
bool transport_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
const char *transport_name(enum sip_transport proto); /* "UDP" / "TCP" */

#endif
