/* rtc_int.h — what rtc.c and rtc_tcp.c share inside src/media: the
 * transport and peer structs and the dispatch entry points. Not for use
 * outside the WebRTC transport. */
#ifndef CASCADE_MEDIA_RTC_INT_H
#define CASCADE_MEDIA_RTC_INT_H

#include <sys/socket.h>
#include <sys/uio.h>

#include "base/htable.h"
#include "base/log.h"
#include "base/timer.h"
#include "media/rtc.h"
#include "media/srtp.h"
#include "transport/transport.h"

#define RTC_UFRAG_LEN 8
#define RTC_PWD_LEN 24
#define RTC_MAX_ADDRS 8         /* candidate addresses kept per transport */
/* Bytes one ICE-TCP connection queues when the socket will not take a
 * frame at once; frames that do not fit are dropped whole (never a partial
 * frame: that would break the RFC 4571 framing). */
#define RTC_TCP_QUEUE (32 * 1024)

/* One accepted ICE-TCP connection (RFC 6544 passive, RFC 4571 framing). */
struct rtc_tcp_conn {
    uv_tcp_t h;
    struct rtc_transport *t;
    struct rtc_tcp_conn *prev, *next;       /* t->tcp_conns */
    struct rtc_peer *peer;                  /* the peer its first request authenticated for */
    struct rtc_tcp_conn *pprev, *pnext;     /* peer->tcp_conns */
    struct sockaddr_storage addr;
    struct timer_node auth_timer;           /* closes it unless a request authenticates in time */
    bool closing, writing;
    size_t rlen;                            /* bytes in rbuf */
    uint8_t rbuf[2 + RTC_MAX_PACKET];       /* one frame, length prefix included */
    uv_write_t wreq;
    size_t inflight, qlen;                  /* q[0..inflight) is being written, then queued bytes */
    uint8_t q[RTC_TCP_QUEUE];
};

struct rtc_peer {
    struct rtc_transport *t;
    struct hnode by_ufrag, by_addr;
    struct timer_node tn;
    struct rtc_peer *prev, *next;   /* t->peers; next also links t->zombies */
    char ufrag[RTC_UFRAG_LEN + 1];
    char pwd[RTC_PWD_LEN + 1];
    char remote_ufrag[WSDP_TOKEN_MAX];
    void *user;
    struct dtls_session *dtls;
    struct dtls_io dtls_io;
    struct msrtp *srtp_in, *srtp_out;
    bool has_path;                  /* addr (and conn for ICE-TCP) is the selected path */
    struct sockaddr_storage addr;
    struct rtc_tcp_conn *conn;      /* the path is this ICE-TCP connection */
    struct rtc_tcp_conn *tcp_conns; /* every connection authenticated for this peer */
    char remote[TRANSPORT_ADDR_TEXT];
    uint64_t created_ms, consent_ms;
    bool connected, dead;
    struct rtc_peer_stats st;
};

struct rtc_transport {
    uv_loop_t *loop;
    struct rtc_config cfg;
    char bind_ip[48], announce_ip[48];
    struct rtc_callbacks cb;
    struct dtls_context *dtls;
    uv_udp_t udp;
    uv_timer_t timer;
    uint32_t open_handles;          /* t is freed when the last one closed */
    uint16_t port;
    bool tcp_enabled;
    uv_tcp_t tcp;                   /* the ICE-TCP listener, when tcp_enabled */
    struct rtc_tcp_conn *tcp_conns;
    uint32_t ntcp_conns;
    struct htable by_ufrag, by_addr;
    struct timer_service timers;
    bool timers_dirty;
    struct rtc_peer *peers, *zombies;
    uint32_t npeers, npeers_connected;
    unsigned depth;                 /* nesting of dispatches that may call out */
    bool freeing, free_pending;
    struct rtc_transport_stats stats;
    struct log_ratelimit refuse_rl;
    char addrs[RTC_MAX_ADDRS][48];
    size_t naddrs;
    /* Every datagram lands here (no allocation per packet); the callbacks
     * get RTC_SEND_SLACK spare bytes after any packet of RTC_MAX_PACKET. */
    uint8_t rx[RTC_MAX_PACKET + RTC_SEND_SLACK];
    /* The send batch (rtc_transport_batch_begin): protected copies waiting
     * for one sendmmsg. */
    int udp_fd;                     /* the UDP socket's descriptor, -1 when unknown */
    uint64_t rx_ns;                 /* uv_hrtime() when the datagram in hand arrived */
    uint64_t delay_hist[RTC_DELAY_BUCKETS];
    uint64_t delay_sum_us;          /* of every packet counted in delay_hist */
    int udp_family;                 /* its address family: only peers of it are batched */
    bool batching;
    unsigned nbatch;
    struct rtc_batch_slot {
        struct rtc_peer *peer;
        bool rtcp;
        uint8_t buf[RTC_MAX_PACKET + RTC_SEND_SLACK];
    } batch[RTC_BATCH];
    struct mmsghdr batch_msg[RTC_BATCH];
    struct iovec batch_iov[RTC_BATCH];
};

/* rtc.c */
int rtc_udp_send(struct rtc_transport *t, const struct sockaddr_storage *to, const void *data, size_t len);
void rtc_refuse_log(struct rtc_transport *t, const struct sockaddr_storage *from, const char *what);
struct rtc_peer *rtc_on_stun(struct rtc_transport *t, const uint8_t *buf, size_t len,
                             const struct sockaddr_storage *from, struct rtc_tcp_conn *conn);
void rtc_on_dtls(struct rtc_transport *t, struct rtc_peer *p, const uint8_t *buf, size_t len);
void rtc_on_srtp(struct rtc_transport *t, struct rtc_peer *p, uint8_t *buf, size_t len,
                 const struct sockaddr_storage *from);
void rtc_peer_gone(struct rtc_peer *p, enum rtc_gone_reason why);
void rtc_peer_timer_fired(struct timer_node *n, uint64_t now);
void rtc_after_dispatch(struct rtc_transport *t);
void rtc_close_handle(struct rtc_transport *t, uv_handle_t *h);
/* A handle of t (counted in open_handles) finished closing; may free t. */
void rtc_handle_released(struct rtc_transport *t);

/* rtc_tcp.c: ICE-TCP passive (RFC 6544, RFC 4571 framing). */
/* The ICE-TCP listener on addr, or on fd (already bound there) when fd >= 0. */
int rtc_tcp_open(struct rtc_transport *t, const struct sockaddr_storage *addr, int fd, char *err, size_t errcap);
void rtc_tcp_free(struct rtc_transport *t);
/* One frame on the connection: 0, or -1 when it was dropped. */
int rtc_tcp_send(struct rtc_tcp_conn *c, const void *data, size_t len);
/* The connection's requests authenticated for p: it belongs to p now. */
void rtc_tcp_adopt(struct rtc_tcp_conn *c, struct rtc_peer *p);
/* p is going: its connections close. */
void rtc_tcp_peer_gone(struct rtc_peer *p);

#endif
