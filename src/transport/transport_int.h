/* transport_int.h — what transport.c (core, UDP, receive path) and tcp.c
 * (connections, framing) share. Not for other modules: use transport.h. */
#ifndef CASCADE_TRANSPORT_TRANSPORT_INT_H
#define CASCADE_TRANSPORT_TRANSPORT_INT_H

#include "transport/transport.h"

#include "base/arena.h"
#include "base/htable.h"
#include "transport/tls.h"
#include "transport/ws.h"

struct transport;

struct listener {
    union {
        uv_handle_t handle;
        uv_udp_t udp;
        uv_tcp_t tcp;
    } h;
    struct transport *t;
    uint32_t id;
    enum sip_transport proto;
    struct sockaddr_storage addr; /* as bound (the real port when 0 was asked) */
    bool handle_open;             /* h initialised and its close callback not yet run */
    bool paused;                  /* TCP: closed while the process is out of descriptors */
    struct timer_node resume;     /* ... listens again when this fires */
};

enum conn_state { CONN_CONNECTING, CONN_OPEN, CONN_CLOSING };

/* A queued TCP write: the bytes live after the header (one malloc). */
struct conn_write {
    uv_write_t req;
    struct tcp_conn *conn;
    struct conn_write *next; /* pending list while connecting */
    size_t len;
    char data[];
};

struct tcp_conn {
    uv_tcp_t handle;               /* handle.data = this */
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    struct transport *t;
    uint64_t id;                   /* 0 until registered in the tables */
    uint32_t listener_id;          /* accepting listener, 0 for outbound */
    enum sip_transport proto;      /* TCP, TLS, WS or WSS */
    enum conn_state state;
    struct tls_session *tls;       /* TLS and WSS: what the socket carries is TLS */
    bool tls_up;                   /* its handshake is done */
    bool ws_open;                  /* WS and WSS: the opening handshake was answered 101 */
    bool ws_ping_out;              /* a ping went out and nothing came in since */
    const char *close_when_written; /* refused: close with this reason once the answer is out */
    uint64_t last_rx;              /* WS ping deadline: + ws_ping_interval_ms */
    uint8_t *ws_msg;               /* a fragmented WebSocket message being put together */
    size_t ws_msg_len;
    struct sockaddr_storage peer, local;
    char peer_text[TRANSPORT_ADDR_TEXT];
    char *buf;                     /* bytes read, not yet framed */
    size_t len, cap;
    struct timer_node timer;       /* connect timeout, then the earliest of the deadlines below */
    uint64_t last_activity;        /* idle deadline: + tcp_idle_timeout_ms */
    uint64_t opened_at;            /* accepted: + tcp_first_message_timeout_ms until got_message */
    uint64_t msg_started;          /* first byte of the unfinished message: + tcp_message_timeout_ms */
    bool msg_partial;              /* the buffer holds part of a message (msg_started is set) */
    bool got_message;              /* a complete message has been framed */
    struct ip_count *ip;           /* accepted: the per-source-IP count it holds */
    struct conn_write *pending, **pending_tail; /* bytes queued while connecting */
    size_t queued;                 /* bytes handed to libuv or pending, not yet written */
    char *cork;                    /* responses of this loop turn, for one write at its end */
    size_t cork_len, cork_cap;
    struct tcp_conn *cork_prev, *cork_next; /* in transport.corked while cork_len > 0 */
    struct hnode by_id, by_addr;   /* in transport.conns_by_id / conns_by_addr */
    struct tcp_conn *all_prev, *all_next; /* every registered connection */
};

/* Accepted connections from one source IP (tcp_max_per_ip). */
struct ip_count {
    struct hnode node;             /* in transport.ip_counts */
    struct sockaddr_storage ip;    /* port 0 */
    uint32_t n;
};

struct transport {
    uv_loop_t *loop;
    struct timer_service *timers;
    struct transport_config cfg;
    struct transport_callbacks cb;
    struct sip_parse_limits limits;

    struct listener *listeners[TRANSPORT_MAX_LISTENERS];
    uint32_t listener_count;

    /* Receive scratch: UDP_RX_CHUNKS datagram slots of UDP_RX_CHUNK bytes
     * (one recvmmsg fills several; each is handled before the next read),
     * and one parse arena reset per message. */
    char *udp_buf;
    size_t udp_cap;                /* the largest datagram taken, +1 to see an oversize one */
    /* Responses sent over UDP wait here until the loop turn ends and leave
     * in one sendmmsg per socket (transport.c, "batched sends"). */
    struct udp_batch *batch;
    uv_check_t batch_check;        /* flushes after the turn's I/O callbacks */
    uv_prepare_t batch_prepare;    /* ... and after its timers, before the loop sleeps */
    char *arena_mem;
    arena_t arena;

    struct htable conns_by_id, conns_by_addr;
    struct tcp_conn *all;          /* list of registered connections */
    struct tcp_conn *corked;       /* connections holding responses until the turn ends */
    struct htable ip_counts;       /* struct ip_count by IP */
    int spare_fd;                  /* closed to drain the backlog on EMFILE, then reopened; -1 */
    uint64_t next_conn_id;

    struct tls_context *tls;       /* TLS and WSS (not owned); NULL: none */
    struct ws_handshake_config ws; /* origins point into ws_origins_buf */
    const char *ws_origins[16];
    char ws_origins_buf[512];

    struct transport_stats stats;
    uint32_t open_handles;         /* handles not yet closed; the struct outlives them */
    bool freeing;
};

/* Where a message came from, for transport_deliver. */
struct rx_origin {
    enum sip_transport proto;
    const struct sockaddr_storage *src;
    const char *src_text;
    uint64_t conn_id;
    uint32_t listener_id;
    const struct sockaddr_storage *local;
};

uint64_t transport_now(struct transport *t);
/* Parses one complete message and hands it up (or drops and logs it). */
void transport_deliver(struct transport *t, const char *data, size_t len, const struct rx_origin *o);
/* Called from every handle's close callback; frees t after the last one once freeing. */
void transport_handle_closed(struct transport *t);
/* Close callback of a listener handle. */
void transport_listener_closed(uv_handle_t *h);
/* Binds and starts a listener again at its address (after a pause). 0, or a
 * libuv error code (the handle is then closing). */
int transport_listener_reopen(struct transport *t, struct listener *l);

/* tcp.c */
int tcp_listener_start(struct transport *t, struct listener *l);
int tcp_send(struct transport *t, struct transport_dest *dest, const void *data, size_t len);
/* Writes the responses each connection held during the loop turn. */
void tcp_flush_corked(struct transport *t);
/* The listener whose address an outbound TCP connection to dest binds to, or NULL. */
const struct listener *transport_bind_listener(const struct transport *t, const struct transport_dest *dest);
int tcp_close_conn(struct transport *t, uint64_t conn_id);
void tcp_close_all(struct transport *t); /* transport_free: no callbacks */

#endif
