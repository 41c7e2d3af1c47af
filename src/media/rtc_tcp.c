/* rtc_tcp.c — ICE-TCP passive for the WebRTC transport (rtc.h; RFC 6544
 * with RFC 4571 framing: each packet is preceded by its 16-bit length).
 *
 * The listener takes the UDP port's number. A connection is nobody's until
 * its first frame, which must be a STUN Binding request that authenticates
 * for a known peer (rtc_on_stun); anything else, or nothing within the
 * connect timeout, closes it. From then on it belongs to that peer: its
 * DTLS goes to the peer, and its RTP too once a nomination made it the
 * peer's selected path. Connections are capped at max_peers, and a peer
 * going closes its connections.
 *
 * Receive: frames collect in the connection's rbuf, then each is copied to
 * the transport's rx buffer (which has the RTC_SEND_SLACK the callbacks are
 * promised) and dispatched like a datagram. Send: uv_try_write first; what
 * the socket does not take waits in the connection's fixed queue, and a
 * frame that does not fit there is dropped whole. No allocation per packet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "media/rtc_int.h"
#include "media/stun.h"

#define BACKLOG 128

/* ---- closing */

static void conn_closed(uv_handle_t *h)
{
    struct rtc_tcp_conn *c = h->data;
    struct rtc_transport *t = c->t;
    free(c);
    rtc_handle_released(t);
}

static void conn_unbind(struct rtc_tcp_conn *c)
{
    struct rtc_peer *p = c->peer;
    if (!p) return;
    if (c->pprev) c->pprev->pnext = c->pnext;
    else p->tcp_conns = c->pnext;
    if (c->pnext) c->pnext->pprev = c->pprev;
    c->pprev = c->pnext = NULL;
    if (p->conn == c) {
        /* The selected path is gone; ICE may nominate another before
         * consent runs out. */
        p->conn = NULL;
        p->has_path = false;
        p->remote[0] = '\0';
    }
    c->peer = NULL;
}

static void conn_close(struct rtc_tcp_conn *c)
{
    if (c->closing) return;
    struct rtc_transport *t = c->t;
    c->closing = true;
    conn_unbind(c);
    timer_stop(&t->timers, &c->auth_timer);
    if (c->prev) c->prev->next = c->next;
    else t->tcp_conns = c->next;
    if (c->next) c->next->prev = c->prev;
    t->ntcp_conns--;
    c->h.data = c;
    uv_close((uv_handle_t *)&c->h, conn_closed);
}

static void conn_refuse(struct rtc_tcp_conn *c, const char *what)
{
    c->t->stats.dropped_garbage++;
    rtc_refuse_log(c->t, &c->addr, what);
    conn_close(c);
}

void rtc_tcp_adopt(struct rtc_tcp_conn *c, struct rtc_peer *p)
{
    if (c->peer == p) return;
    conn_unbind(c);
    c->peer = p;
    c->pnext = p->tcp_conns;
    if (p->tcp_conns) p->tcp_conns->pprev = c;
    p->tcp_conns = c;
    timer_stop(&c->t->timers, &c->auth_timer);
}

void rtc_tcp_peer_gone(struct rtc_peer *p)
{
    while (p->tcp_conns) conn_close(p->tcp_conns);
}

/* ---- sending */

static void write_more(struct rtc_tcp_conn *c);

static void written(uv_write_t *req, int status)
{
    struct rtc_tcp_conn *c = req->data;
    c->writing = false;
    if (c->closing) return;
    if (status < 0) {
        log_info_rl("rtc: ICE-TCP write to %s: %s", c->peer ? c->peer->remote : "?", uv_strerror(status));
        conn_close(c);
        return;
    }
    memmove(c->q, c->q + c->inflight, c->qlen - c->inflight);
    c->qlen -= c->inflight;
    c->inflight = 0;
    write_more(c);
}

static void write_more(struct rtc_tcp_conn *c)
{
    if (c->writing || !c->qlen) return;
    uv_buf_t b = uv_buf_init((char *)c->q, (unsigned)c->qlen);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->h, &b, 1, written) != 0) {
        conn_close(c);
        return;
    }
    c->inflight = c->qlen;
    c->writing = true;
}

int rtc_tcp_send(struct rtc_tcp_conn *c, const void *data, size_t len)
{
    if (!c || c->closing || len == 0 || len > 0xFFFF) return -1;
    uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    size_t total = 2 + len, done = 0;
    if (!c->qlen) {
        uv_buf_t b[2] = {uv_buf_init((char *)hdr, 2), uv_buf_init((char *)data, (unsigned)len)};
        int n = uv_try_write((uv_stream_t *)&c->h, b, 2);
        if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return -1;
        }
        done = n > 0 ? (size_t)n : 0;
        if (done == total) return 0;
    } else if (RTC_TCP_QUEUE - c->qlen < total) {
        return -1;   /* dropped whole; the queue keeps the stream framed */
    }
    /* The rest of this frame (always fits an empty queue) waits. */
    for (size_t i = done; i < total; i++) c->q[c->qlen++] = i < 2 ? hdr[i] : ((const uint8_t *)data)[i - 2];
    write_more(c);
    return 0;
}

/* ---- receiving */

static void frame(struct rtc_tcp_conn *c, const uint8_t *f, size_t len)
{
    struct rtc_transport *t = c->t;
    memcpy(t->rx, f, len);
    uint8_t *b = t->rx;
    media_demux_kind_t kind = media_demux_kind(b[0]);
    if (!c->peer) {
        if (kind != MEDIA_DEMUX_STUN) {
            conn_refuse(c, "ICE-TCP that does not start with STUN");
            return;
        }
        if (!rtc_on_stun(t, b, len, &c->addr, c) && !c->closing) {
            rtc_refuse_log(t, &c->addr, "ICE-TCP whose first request did not authenticate");
            conn_close(c);
        }
        return;
    }
    switch (kind) {
    case MEDIA_DEMUX_STUN:
        rtc_on_stun(t, b, len, &c->addr, c);
        return;
    case MEDIA_DEMUX_DTLS:
        rtc_on_dtls(t, c->peer, b, len);
        return;
    case MEDIA_DEMUX_RTP:
        if (c->peer->conn != c) {
            t->stats.dropped_unknown_source++;
            rtc_refuse_log(t, &c->addr, "RTP on an ICE-TCP connection that is not the selected path");
            return;
        }
        rtc_on_srtp(t, c->peer, b, len, &c->addr);
        return;
    default:
        conn_refuse(c, "ICE-TCP garbage");
        return;
    }
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct rtc_tcp_conn *c = h->data;
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(sizeof(c->rbuf) - c->rlen));
}

/* Every whole frame in rbuf, then what is left moves to the front. */
static void frames(struct rtc_tcp_conn *c)
{
    size_t off = 0;
    while (!c->closing && !c->t->free_pending && c->rlen - off >= 2) {
        size_t flen = (size_t)c->rbuf[off] << 8 | c->rbuf[off + 1];
        if (flen == 0 || flen > RTC_MAX_PACKET) {
            conn_refuse(c, "an ICE-TCP frame of a bad length");
            return;
        }
        if (c->rlen - off < 2 + flen) break;
        frame(c, c->rbuf + off + 2, flen);
        off += 2 + flen;
    }
    if (c->closing) return;
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct rtc_tcp_conn *c = s->data;
    struct rtc_transport *t = c->t;
    if (n == 0 || c->closing) return;
    t->rx_ns = uv_hrtime();   /* forwarding delay starts here (batch_flush) */
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->rlen += (size_t)n;
    t->depth++;
    frames(c);
    t->depth--;
    rtc_after_dispatch(t);
}

/* ---- accepting */

static void auth_expired(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct rtc_tcp_conn *c = container_of(n, struct rtc_tcp_conn, auth_timer);
    if (c->peer || c->closing) return;
    rtc_refuse_log(c->t, &c->addr, "ICE-TCP connection without a Binding request");
    conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct rtc_transport *t = server->data;
    if (status < 0) {
        log_warn_rl("rtc: ICE-TCP accept: %s", uv_strerror(status));
        return;
    }
    struct rtc_tcp_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        /* Take it off the backlog all the same. */
        uv_tcp_t tmp;
        if (uv_tcp_init(t->loop, &tmp) == 0) {
            (void)uv_accept(server, (uv_stream_t *)&tmp);
            uv_close((uv_handle_t *)&tmp, NULL);
        }
        return;
    }
    c->t = t;
    uv_tcp_init(t->loop, &c->h);
    c->h.data = c;
    t->open_handles++;
    c->next = t->tcp_conns;
    if (t->tcp_conns) t->tcp_conns->prev = c;
    t->tcp_conns = c;
    t->ntcp_conns++;
    timer_node_init(&c->auth_timer);
    int len = sizeof(c->addr);
    if (uv_accept(server, (uv_stream_t *)&c->h) != 0 ||
        uv_tcp_getpeername(&c->h, (struct sockaddr *)&c->addr, &len) != 0) {
        conn_close(c);
        return;
    }
    if (t->ntcp_conns > t->cfg.max_peers) {
        rtc_refuse_log(t, &c->addr, "ICE-TCP connection over the cap");
        conn_close(c);
        return;
    }
    t->stats.tcp_connections++;
    uv_tcp_nodelay(&c->h, 1);
    if (uv_read_start((uv_stream_t *)&c->h, conn_alloc, conn_read) != 0) {
        conn_close(c);
        return;
    }
    timer_start(&t->timers, &c->auth_timer, uv_now(t->loop) + t->cfg.connect_timeout_ms, auth_expired);
    t->timers_dirty = true;
    rtc_after_dispatch(t);
}

int rtc_tcp_open(struct rtc_transport *t, const struct sockaddr_storage *addr, int fd, char *err, size_t errcap)
{
    uv_tcp_init(t->loop, &t->tcp);
    t->tcp.data = t;
    t->open_handles++;
    t->tcp_enabled = true;      /* from here rtc_tcp_free closes the listener */
    int rc = fd >= 0 ? uv_tcp_open(&t->tcp, fd) : uv_tcp_bind(&t->tcp, (const struct sockaddr *)addr, 0);
    if (rc && fd >= 0) close(fd);
    if (!rc) rc = uv_listen((uv_stream_t *)&t->tcp, BACKLOG, on_connection);
    if (rc) {
        snprintf(err, errcap, "rtc: ICE-TCP %s:%u: %s", t->cfg.bind_ip, t->port, uv_strerror(rc));
        return -1;
    }
    return 0;
}

void rtc_tcp_free(struct rtc_transport *t)
{
    while (t->tcp_conns) conn_close(t->tcp_conns);
    if (t->tcp_enabled) rtc_close_handle(t, (uv_handle_t *)&t->tcp);
}
