/* tcp.c — SIP over connections (TCP, TLS, WS, WSS): accepted and outbound
 * connections, the connection table (by id and by remote ip:port), stream
 * framing (RFC 3261 §18.3), CRLF keepalives (RFC 5626 §3.5.1), idle and
 * connect timeouts, the deadlines that close slow senders, and the
 * descriptor budget (a global and a per-source-IP cap on accepted
 * connections, a spare descriptor).
 *
 * Layers on a connection: the socket; TLS for TLS and WSS (a tls_session
 * on memory BIOs: ciphertext read goes in, plaintext comes out into the
 * connection's buffer; what we write goes through it); then either SIP
 * stream framing (TCP, TLS) or WebSocket (WS, WSS: the opening handshake,
 * then one SIP message per message, RFC 7118 §5). Everything above the
 * framing — flows, caps, timeouts — is the same for all four.
 *
 * A connection is freed only from its libuv close callback, so a pointer
 * stays valid through every callback of the loop iteration that closed it;
 * closing removes it from the tables at once so nothing new finds it. */
#include "transport/transport_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"

#define CONN_BUF_MIN 4096
#define CONN_BUF_KEEP (64 * 1024) /* an emptied buffer larger than this is released */

/* ---- the connection table ---- */

static uint32_t id_hash(uint64_t id) { return htable_hash_u64(id); }

static uint32_t addr_hash(const struct sockaddr_storage *a)
{
    str_t ip;
    if (a->ss_family == AF_INET6) ip = str_make((const char *)&((const struct sockaddr_in6 *)a)->sin6_addr, 16);
    else ip = str_make((const char *)&((const struct sockaddr_in *)a)->sin_addr, 4);
    return (str_hash(ip) ^ transport_addr_port(a)) * 16777619u;
}

static int conn_register(struct transport *t, struct tcp_conn *c)
{
    c->id = t->next_conn_id++;
    if (htable_insert(&t->conns_by_id, &c->by_id, id_hash(c->id)) != 0) {
        c->id = 0;
        return -1;
    }
    if (htable_insert(&t->conns_by_addr, &c->by_addr, addr_hash(&c->peer)) != 0) {
        htable_remove(&t->conns_by_id, &c->by_id);
        c->id = 0;
        return -1;
    }
    c->all_prev = NULL;
    c->all_next = t->all;
    if (t->all) t->all->all_prev = c;
    t->all = c;
    t->stats.tcp_open++;
    t->stats.conns_by_proto[c->proto]++;
    return 0;
}

static void conn_unregister(struct transport *t, struct tcp_conn *c)
{
    if (c->id == 0) return;
    htable_remove(&t->conns_by_id, &c->by_id);
    htable_remove(&t->conns_by_addr, &c->by_addr);
    if (c->all_prev) c->all_prev->all_next = c->all_next;
    else t->all = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    c->all_prev = c->all_next = NULL;
    t->stats.tcp_open--;
    t->stats.conns_by_proto[c->proto]--;
    t->stats.tcp_closed++;
}

static struct tcp_conn *conn_by_id(struct transport *t, uint64_t id)
{
    for (struct hnode *n = htable_first(&t->conns_by_id, id_hash(id)); n; n = htable_next(n)) {
        struct tcp_conn *c = container_of(n, struct tcp_conn, by_id);
        if (c->id == id) return c;
    }
    return NULL;
}

static struct tcp_conn *conn_by_addr(struct transport *t, const struct sockaddr_storage *a, enum sip_transport proto)
{
    for (struct hnode *n = htable_first(&t->conns_by_addr, addr_hash(a)); n; n = htable_next(n)) {
        struct tcp_conn *c = container_of(n, struct tcp_conn, by_addr);
        if (c->proto == proto && transport_addr_equal(&c->peer, a)) return c;
    }
    return NULL;
}

/* ---- connections per source IP ---- */

static void ip_only(const struct sockaddr_storage *a, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    out->ss_family = a->ss_family;
    if (a->ss_family == AF_INET) ((struct sockaddr_in *)out)->sin_addr = ((const struct sockaddr_in *)a)->sin_addr;
    else if (a->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)out)->sin6_addr = ((const struct sockaddr_in6 *)a)->sin6_addr;
}

/* Takes one of the tcp_max_per_ip places of the peer's IP: the count, or
 * NULL when the IP has none left (or no memory). */
static struct ip_count *ip_count_take(struct transport *t, const struct sockaddr_storage *peer)
{
    struct sockaddr_storage ip;
    ip_only(peer, &ip);
    uint32_t h = addr_hash(&ip);
    struct ip_count *ic = NULL;
    for (struct hnode *n = htable_first(&t->ip_counts, h); n && !ic; n = htable_next(n))
        if (transport_addr_equal(&container_of(n, struct ip_count, node)->ip, &ip))
            ic = container_of(n, struct ip_count, node);
    if (!ic) {
        ic = calloc(1, sizeof(*ic));
        if (!ic) return NULL;
        ic->ip = ip;
        if (htable_insert(&t->ip_counts, &ic->node, h) != 0) {
            free(ic);
            return NULL;
        }
    }
    if (ic->n >= t->cfg.tcp_max_per_ip) return NULL;
    ic->n++;
    return ic;
}

static void ip_count_give_back(struct transport *t, struct ip_count *ic)
{
    if (--ic->n) return;
    htable_remove(&t->ip_counts, &ic->node);
    free(ic);
}

/* ---- close ---- */

static void conn_closed(uv_handle_t *h)
{
    struct tcp_conn *c = h->data;
    struct transport *t = c->t;
    tls_session_free(c->tls);
    free(c->cork);
    free(c->ws_msg);
    free(c->buf);
    free(c);
    transport_handle_closed(t);
}

static void conn_drop_pending(struct tcp_conn *c)
{
    for (struct conn_write *w = c->pending, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    c->pending = NULL;
    c->pending_tail = &c->pending;
}

static void cork_flush(struct tcp_conn *c);

static void conn_close(struct tcp_conn *c, const char *reason, bool notify)
{
    struct transport *t = c->t;
    if (c->state == CONN_CLOSING) return;
    cork_flush(c); /* what was answered before the close still goes, as it did unbatched */
    if (c->state == CONN_CLOSING) return; /* that write failed and closed it */
    c->state = CONN_CLOSING;
    timer_stop(t->timers, &c->timer);
    conn_drop_pending(c);
    bool registered = c->id != 0;
    if (c->tls && !tls_session_established(c->tls)) t->stats.tls_failed++;
    conn_unregister(t, c);
    if (c->ip) ip_count_give_back(t, c->ip);
    c->ip = NULL;
    log_debug("%s connection %llu to %s closed: %s", transport_name(c->proto), (unsigned long long)c->id, c->peer_text,
              reason);
    if (notify && registered && t->cb.on_conn_lost) t->cb.on_conn_lost(t->cb.user, c->id, &c->peer, reason);
    uv_close((uv_handle_t *)&c->handle, conn_closed);
}

void tcp_close_all(struct transport *t)
{
    while (t->all) conn_close(t->all, "transport shutting down", false);
}

int tcp_close_conn(struct transport *t, uint64_t conn_id)
{
    struct tcp_conn *c = conn_by_id(t, conn_id);
    if (!c) return UV_ENOTCONN;
    conn_close(c, "closed locally", true);
    return 0;
}

/* ---- timers ---- */

static uint64_t deadline_min(uint64_t a, uint64_t b) { return a < b ? a : b; }

static uint32_t tls_handshake_ms(const struct transport *t)
{
    const struct tls_config *tc = t->tls ? tls_context_config(t->tls) : NULL;
    return tc && tc->handshake_timeout_ms ? tc->handshake_timeout_ms : 10000;
}

static void ws_send_ping(struct tcp_conn *c);

/* When an open connection must be looked at again: the earliest of its idle,
 * message and first-message deadlines; UINT64_MAX when none applies. */
static uint64_t conn_deadline(const struct tcp_conn *c)
{
    const struct transport *t = c->t;
    uint64_t d = UINT64_MAX;
    if (t->cfg.tcp_idle_timeout_ms) d = c->last_activity + t->cfg.tcp_idle_timeout_ms;
    if (c->msg_partial) d = deadline_min(d, c->msg_started + t->cfg.tcp_message_timeout_ms);
    if (c->listener_id && !c->got_message) d = deadline_min(d, c->opened_at + t->cfg.tcp_first_message_timeout_ms);
    if (c->tls && !c->tls_up) d = deadline_min(d, c->opened_at + tls_handshake_ms(t));
    if (c->ws_open && !c->ws_ping_out) d = deadline_min(d, c->last_rx + t->cfg.ws_ping_interval_ms);
    return d;
}

static void conn_timer(struct timer_node *n, uint64_t now);

/* (Re)arms the timer at conn_deadline unless it already fires earlier. */
static void conn_arm(struct tcp_conn *c, bool later_ok)
{
    struct transport *t = c->t;
    uint64_t d = conn_deadline(c);
    if (d == UINT64_MAX) {
        timer_stop(t->timers, &c->timer);
        return;
    }
    if (!later_ok && timer_armed(&c->timer) && c->timer.deadline_ms <= d) return;
    if (timer_start(t->timers, &c->timer, d, conn_timer) != 0)
        log_error_rl("TCP connection %llu to %s: no memory for its timer", (unsigned long long)c->id, c->peer_text);
}

static void conn_timer(struct timer_node *n, uint64_t now)
{
    struct tcp_conn *c = container_of(n, struct tcp_conn, timer);
    struct transport *t = c->t;
    if (c->state == CONN_CONNECTING) {
        log_warn_rl("TCP connect to %s timed out", c->peer_text);
        conn_close(c, "connect timeout", true);
        return;
    }
    if (c->state != CONN_OPEN) return;
    if (c->tls && !c->tls_up && now >= c->opened_at + tls_handshake_ms(t)) {
        t->stats.tcp_timed_out++;
        log_warn_rl("TLS connection %s %s: handshake not done %u ms after it opened: closing",
                    c->listener_id ? "from" : "to", c->peer_text, tls_handshake_ms(t));
        conn_close(c, "TLS handshake timeout", true);
        return;
    }
    if (c->msg_partial && now >= c->msg_started + t->cfg.tcp_message_timeout_ms) {
        t->stats.tcp_timed_out++;
        log_warn_rl("TCP connection from %s: message incomplete %u ms after its first byte: closing", c->peer_text,
                    t->cfg.tcp_message_timeout_ms);
        conn_close(c, "message timeout", true);
        return;
    }
    if (c->listener_id && !c->got_message && now >= c->opened_at + t->cfg.tcp_first_message_timeout_ms) {
        t->stats.tcp_timed_out++;
        log_warn_rl("TCP connection from %s: no complete message %u ms after it opened: closing", c->peer_text,
                    t->cfg.tcp_first_message_timeout_ms);
        conn_close(c, "first message timeout", true);
        return;
    }
    if (t->cfg.tcp_idle_timeout_ms && now >= c->last_activity + t->cfg.tcp_idle_timeout_ms) {
        log_info_rl("TCP connection %llu to %s idle for %u ms: closing", (unsigned long long)c->id, c->peer_text,
                    t->cfg.tcp_idle_timeout_ms);
        conn_close(c, "idle timeout", true);
        return;
    }
    if (c->ws_open && !c->ws_ping_out && now >= c->last_rx + t->cfg.ws_ping_interval_ms) ws_send_ping(c);
    /* Activity does not touch the heap; the timer catches up here. */
    conn_arm(c, true);
}

/* An open connection starts its deadlines. */
static void conn_arm_open(struct tcp_conn *c)
{
    c->last_activity = c->opened_at = c->last_rx = transport_now(c->t);
    conn_arm(c, true);
}

/* ---- writing ---- */

/* A peer that closed or reset under our write is the peer's business (info);
 * anything else is ours (warn). */
static void conn_log_write_error(const struct tcp_conn *c, int err)
{
    if (err == UV_ECONNRESET || err == UV_EPIPE)
        log_info_rl("%s write to %s failed: %s", transport_name(c->proto), c->peer_text, uv_strerror(err));
    else
        log_warn_rl("%s write to %s failed: %s", transport_name(c->proto), c->peer_text, uv_strerror(err));
}

static void conn_written(uv_write_t *req, int status)
{
    struct conn_write *w = container_of(req, struct conn_write, req);
    struct tcp_conn *c = w->conn;
    c->queued -= w->len;
    free(w);
    if (status == UV_ECANCELED || c->state == CONN_CLOSING) return;
    if (status < 0) {
        conn_log_write_error(c, status);
        conn_close(c, "write error", true);
        return;
    }
    if (c->close_when_written && c->queued == 0) conn_close(c, c->close_when_written, true);
}

/* Refused (a WebSocket handshake, a close frame): stop reading, and close
 * once what is queued, the answer, is written. */
static void conn_close_when_written(struct tcp_conn *c, const char *reason)
{
    if (c->state != CONN_OPEN) return;
    uv_read_stop((uv_stream_t *)&c->handle);
    cork_flush(c);
    if (c->state != CONN_OPEN) return;
    c->close_when_written = reason;
    if (c->queued == 0) conn_close(c, reason, true);
}

static struct conn_write *write_copy(struct tcp_conn *c, const void *data, size_t len)
{
    struct conn_write *w = malloc(sizeof(*w) + len);
    if (!w) return NULL;
    w->conn = c;
    w->next = NULL;
    w->len = len;
    memcpy(w->data, data, len);
    return w;
}

static int conn_write_queue(struct tcp_conn *c, struct conn_write *w)
{
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->handle, &b, 1, conn_written);
    if (rc) {
        c->queued -= w->len;
        free(w);
    }
    return rc;
}

/* Bytes for the socket (ciphertext on TLS). */
static int sock_write_now(struct tcp_conn *c, const char *data, size_t len);
static int sock_write(struct tcp_conn *c, const char *data, size_t len);

/* ---- responses held until the loop turn ends ----
 * A write is a system call (and on TLS a record); several responses to
 * the requests one read brought in leave in one write when the turn's
 * callbacks are done (transport.c flushes with the UDP batch). Only
 * responses wait; anything else written on the connection first sends
 * what waits, so the order on the wire is the order of the calls. */
#define CORK_MAX (16u * 1024u) /* one TLS record's plaintext */

static void cork_unlink(struct tcp_conn *c)
{
    struct transport *t = c->t;
    if (c->cork_prev)
        c->cork_prev->cork_next = c->cork_next;
    else if (t->corked == c)
        t->corked = c->cork_next;
    if (c->cork_next) c->cork_next->cork_prev = c->cork_prev;
    c->cork_prev = c->cork_next = NULL;
}

static void cork_flush(struct tcp_conn *c)
{
    if (!c->cork_len) return;
    cork_unlink(c);
    char *data = c->cork;
    size_t len = c->cork_len;
    c->cork = NULL;
    c->cork_len = c->cork_cap = 0;
    c->queued -= len;
    if (c->state != CONN_CLOSING) {
        int rc = sock_write_now(c, data, len);
        if (rc < 0 && rc != UV_ENOTCONN && rc != UV_ENOBUFS) c->t->stats.send_errors++;
    }
    free(data);
    if (c->state == CONN_OPEN && c->close_when_written && c->queued == 0) conn_close(c, c->close_when_written, true);
}

void tcp_flush_corked(struct transport *t)
{
    while (t->corked) cork_flush(t->corked);
}

/* Bytes for the socket, held for the end of the turn when they can be. */
static int sock_write_corked(struct tcp_conn *c, const char *data, size_t len)
{
    if (c->state != CONN_OPEN || len > CORK_MAX ||
        uv_stream_get_write_queue_size((uv_stream_t *)&c->handle) != 0)
        return sock_write(c, data, len);
    if (c->queued + len > c->t->cfg.tcp_max_send_queue) return sock_write(c, data, len); /* refuses, closes */
    if (c->cork_len + len > CORK_MAX) cork_flush(c);
    if (c->cork_len + len > c->cork_cap) {
        size_t cap = c->cork_cap ? c->cork_cap : 2048;
        while (cap < c->cork_len + len) cap *= 2;
        char *p = realloc(c->cork, cap);
        if (!p) return sock_write(c, data, len);
        c->cork = p;
        c->cork_cap = cap;
    }
    if (!c->cork_len) {
        struct transport *t = c->t;
        c->cork_next = t->corked;
        if (t->corked) t->corked->cork_prev = c;
        t->corked = c;
    }
    memcpy(c->cork + c->cork_len, data, len);
    c->cork_len += len;
    c->queued += len;
    c->last_activity = transport_now(c->t);
    return 0;
}

static int sock_write(struct tcp_conn *c, const char *data, size_t len)
{
    cork_flush(c);
    return sock_write_now(c, data, len);
}

static int sock_write_now(struct tcp_conn *c, const char *data, size_t len)
{
    struct transport *t = c->t;
    if (c->state == CONN_CLOSING) return UV_ENOTCONN;
    if (c->queued + len > t->cfg.tcp_max_send_queue) {
        log_warn_rl("TCP connection to %s: send queue over %u bytes, closing", c->peer_text,
                    t->cfg.tcp_max_send_queue);
        conn_close(c, "send queue overflow", true);
        return UV_ENOBUFS;
    }
    if (c->state == CONN_CONNECTING) {
        struct conn_write *w = write_copy(c, data, len);
        if (!w) return UV_ENOMEM;
        *c->pending_tail = w;
        c->pending_tail = &w->next;
        c->queued += len;
        return 0;
    }
    size_t done = 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->handle) == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->handle, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            conn_log_write_error(c, n);
            conn_close(c, "write error", true);
            return n;
        }
        if (n > 0) done = (size_t)n;
    }
    c->last_activity = transport_now(t);
    if (done == len) return 0;
    struct conn_write *w = write_copy(c, data + done, len - done);
    if (!w) {
        /* Part of the message is on the wire already: the stream is broken. */
        if (done) conn_close(c, "out of memory", true);
        return UV_ENOMEM;
    }
    c->queued += w->len;
    int rc = conn_write_queue(c, w);
    if (rc) {
        conn_log_write_error(c, rc);
        conn_close(c, "write error", true);
    }
    return rc;
}

/* ---- TLS between the socket and the framing ---- */

static int tls_io_send(void *user, const void *data, size_t len) { return sock_write(user, data, len); }
static int tls_io_send_corked(void *user, const void *data, size_t len) { return sock_write_corked(user, data, len); }
static int conn_take_plain(void *user, const void *data, size_t len);

static const struct tls_io *conn_tls_io_ex(struct tcp_conn *c, struct tls_io *io, bool cork)
{
    io->user = c;
    io->send = cork ? tls_io_send_corked : tls_io_send;
    io->recv = conn_take_plain;
    return io;
}

static const struct tls_io *conn_tls_io(struct tcp_conn *c, struct tls_io *io) { return conn_tls_io_ex(c, io, false); }

static void conn_tls_failed(struct tcp_conn *c, const char *why)
{
    if (c->state == CONN_CLOSING) return;
    if (why && !strcmp(why, "close_notify")) { /* the peer's orderly close */
        conn_close(c, "remote closed (close_notify)", true);
        return;
    }
    c->t->stats.dropped++;
    log_warn_rl("TLS connection %s %s: %s: closing", c->listener_id ? "from" : "to", c->peer_text,
                why ? why : "error");
    conn_close(c, why ? why : "TLS error", true);
}

/* The handshake finished during the last call into the session. */
static void conn_tls_check_up(struct tcp_conn *c)
{
    if (c->tls_up || !tls_session_established(c->tls)) return;
    c->tls_up = true;
    c->t->stats.tls_handshakes++;
    char d[160];
    tls_session_describe(c->tls, d, sizeof(d));
    log_debug("TLS connection %llu %s %s: %s", (unsigned long long)c->id, c->listener_id ? "from" : "to",
              c->peer_text, d);
    conn_arm(c, true); /* the handshake deadline is gone */
}

/* Bytes of the framing (plaintext): through TLS when the connection has it;
 * cork: a response, which may wait for the end of the turn. */
static int conn_write_ex(struct tcp_conn *c, const char *data, size_t len, bool cork)
{
    if (!c->tls) return cork ? sock_write_corked(c, data, len) : sock_write(c, data, len);
    if (c->state == CONN_CLOSING) return UV_ENOTCONN;
    if (tls_session_pending(c->tls) + c->queued + len > c->t->cfg.tcp_max_send_queue) {
        log_warn_rl("TLS connection to %s: send queue over %u bytes, closing", c->peer_text,
                    c->t->cfg.tcp_max_send_queue);
        conn_close(c, "send queue overflow", true);
        return UV_ENOBUFS;
    }
    struct tls_io io;
    const char *why = NULL;
    if (tls_session_write(c->tls, data, len, conn_tls_io_ex(c, &io, cork), &why) != 0) {
        conn_tls_failed(c, why);
        return UV_EPROTO;
    }
    return c->state == CONN_CLOSING ? UV_ENOTCONN : 0;
}

static int conn_write(struct tcp_conn *c, const char *data, size_t len) { return conn_write_ex(c, data, len, false); }

/* ---- WebSocket (RFC 6455, RFC 7118) ---- */

static int ws_send_frame_ex(struct tcp_conn *c, enum ws_opcode op, const void *data, size_t len, bool cork)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t h = ws_frame_header(hdr, op, len);
    char small[2048 + WS_MAX_HEADER];
    char *buf = h + len <= sizeof(small) ? small : malloc(h + len);
    if (!buf) return UV_ENOMEM;
    memcpy(buf, hdr, h);
    if (len) memcpy(buf + h, data, len);
    int rc = conn_write_ex(c, buf, h + len, cork);
    if (buf != small) free(buf);
    return rc;
}

static int ws_send_frame(struct tcp_conn *c, enum ws_opcode op, const void *data, size_t len)
{
    return ws_send_frame_ex(c, op, data, len, false);
}

static void ws_send_ping(struct tcp_conn *c)
{
    c->ws_ping_out = true;
    ws_send_frame(c, WS_OP_PING, "cascade", 7);
}

/* A protocol error or a close: a close frame with code, then close. */
static void ws_close(struct tcp_conn *c, uint16_t code, const char *why)
{
    uint8_t payload[125];
    size_t n = ws_close_payload(payload, sizeof(payload), code, why);
    ws_send_frame(c, WS_OP_CLOSE, payload, n);
    conn_close_when_written(c, why);
}

static void ws_fail(struct tcp_conn *c, uint16_t code, const char *why)
{
    c->t->stats.dropped++;
    log_warn_rl("%s connection from %s: %s: closing (%u)", transport_name(c->proto), c->peer_text, why, code);
    ws_close(c, code, why);
}

static void conn_deliver(struct tcp_conn *c, const char *data, size_t len)
{
    struct rx_origin o = {c->proto, &c->peer, c->peer_text, c->id, c->listener_id, &c->local};
    c->got_message = true;
    transport_deliver(c->t, data, len, &o);
}

static bool only_crlf(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '\r' && p[i] != '\n') return false;
    return true;
}

/* One data message: one SIP message (RFC 7118 §5.2); text or binary alike. */
static void ws_message(struct tcp_conn *c, const uint8_t *data, size_t len)
{
    if (len == 0 || only_crlf(data, len)) return; /* nothing to parse: a keepalive some clients send */
    conn_deliver(c, (const char *)data, len);
}

static void ws_handle_frame(struct tcp_conn *c, const struct ws_frame *f)
{
    struct transport *t = c->t;
    switch (f->opcode) {
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (c->ws_msg) {
            ws_fail(c, 1002, "new message inside a fragmented one");
        } else if (f->fin) {
            ws_message(c, f->payload, f->len);
        } else {
            c->ws_msg = malloc(t->cfg.max_message_bytes ? t->cfg.max_message_bytes : 1);
            if (!c->ws_msg) {
                ws_fail(c, 1011, "out of memory");
                return;
            }
            memcpy(c->ws_msg, f->payload, f->len); /* f->len <= max_message_bytes (ws_frame_decode) */
            c->ws_msg_len = f->len;
        }
        break;
    case WS_OP_CONTINUATION:
        if (!c->ws_msg) {
            ws_fail(c, 1002, "continuation without a message");
        } else if (c->ws_msg_len + f->len > t->cfg.max_message_bytes) {
            ws_fail(c, 1009, "message over the size limit");
        } else {
            memcpy(c->ws_msg + c->ws_msg_len, f->payload, f->len);
            c->ws_msg_len += f->len;
            if (f->fin) {
                uint8_t *m = c->ws_msg;
                size_t n = c->ws_msg_len;
                c->ws_msg = NULL;
                c->ws_msg_len = 0;
                ws_message(c, m, n);
                free(m);
            }
        }
        break;
    case WS_OP_PING:
        ws_send_frame(c, WS_OP_PONG, f->payload, f->len);
        break;
    case WS_OP_PONG:
        break; /* anything received ended the wait (last_rx) */
    case WS_OP_CLOSE: {
        uint16_t code = f->len >= 2 ? (uint16_t)(f->payload[0] << 8 | f->payload[1]) : 1000;
        log_debug("%s connection %llu from %s: close %u from the peer", transport_name(c->proto),
                  (unsigned long long)c->id, c->peer_text, code);
        /* RFC 6455 §5.5.1: answer with a close, echoing the code. */
        ws_close(c, code == 1005 || code == 1006 || code == 1015 ? 1000 : code, "remote closed");
        break;
    }
    }
}

/* ---- reading and framing ---- */

/* How much the framing buffer may hold: one message over the limit is
 * seen as such; a WebSocket frame adds its header, the opening handshake
 * its head. */
static size_t conn_buf_limit(const struct tcp_conn *c)
{
    size_t limit = (size_t)c->t->cfg.max_message_bytes + 1;
    if (sip_transport_is_ws(c->proto)) {
        limit += WS_MAX_HEADER + 4; /* + the mask key */
        if (limit < WS_MAX_HEAD + 1) limit = WS_MAX_HEAD + 1;
    }
    return limit;
}

/* Makes room in the framing buffer (up to conn_buf_limit). */
static void conn_buf_grow(struct tcp_conn *c)
{
    size_t limit = conn_buf_limit(c);
    if (c->cap - c->len < 1024 && c->cap < limit) {
        size_t cap = c->cap ? c->cap * 2 : CONN_BUF_MIN;
        if (cap > limit) cap = limit;
        char *p = realloc(c->buf, cap);
        if (p) {
            c->buf = p;
            c->cap = cap;
        }
    }
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct tcp_conn *c = h->data;
    if (c->tls) {
        /* Ciphertext goes into the receive scratch (one read at a time);
         * the plaintext into the framing buffer. */
        buf->base = c->t->udp_buf;
        buf->len = c->t->udp_cap;
        return;
    }
    conn_buf_grow(c);
    buf->base = c->buf ? c->buf + c->len : NULL;
    buf->len = c->cap - c->len;
}

static void conn_refuse(struct tcp_conn *c, const char *why)
{
    c->t->stats.dropped++;
    log_warn_rl("TCP %s from %s: closing the connection", why, c->peer_text);
    conn_close(c, why, true);
}

static void conn_consumed(struct tcp_conn *c, size_t off, bool delivered);

/* Hands every complete message in the buffer up; keeps the unfinished tail. */
static void sip_frame(struct tcp_conn *c)
{
    struct transport *t = c->t;
    size_t max = t->cfg.max_message_bytes;
    size_t off = 0;
    bool delivered = false;
    while (off < c->len && c->state == CONN_OPEN) {
        const char *p = c->buf + off;
        size_t avail = c->len - off;
        if (p[0] == '\r') {
            /* RFC 5626 §3.5.1: CRLFCRLF is a ping answered by a CRLF pong; a lone CRLF is a pong. */
            if (avail < 4 && memcmp(p, "\r\n\r\n", avail) == 0) break; /* wait for the rest */
            if (avail >= 4 && memcmp(p, "\r\n\r\n", 4) == 0) {
                t->stats.keepalives++;
                conn_write(c, "\r\n", 2);
                off += 4;
                continue;
            }
            if (avail >= 2 && p[1] == '\n') {
                off += 2;
                continue;
            }
        }
        size_t skip = 0;
        long n = sip_frame_length(p, avail, max, &skip);
        if (n < 0) {
            conn_refuse(c, avail > max ? "message over the size limit" : "garbage");
            return;
        }
        if (skip > avail) skip = avail;
        if (n == 0) {
            off += skip;
            if (avail - skip > max) {
                conn_refuse(c, "message over the size limit");
                return;
            }
            break;
        }
        if ((size_t)n > avail - skip || (size_t)n > max) {
            conn_refuse(c, "message over the size limit");
            return;
        }
        delivered = true;
        conn_deliver(c, p + skip, (size_t)n);
        off += skip + (size_t)n;
    }
    conn_consumed(c, off, delivered);
}

/* WebSocket: the opening handshake, then frames. */
static void ws_frame(struct tcp_conn *c)
{
    struct transport *t = c->t;
    size_t off = 0;
    bool delivered = false;
    while (off < c->len && c->state == CONN_OPEN && !c->close_when_written) {
        if (!c->ws_open) {
            char out[1024];
            size_t outlen = 0, consumed = 0;
            const char *why = NULL;
            enum ws_handshake_result r =
                ws_handshake(c->buf + off, c->len - off, &t->ws, out, sizeof(out), &outlen, &consumed, &why);
            if (r == WS_HANDSHAKE_INCOMPLETE) break;
            if (outlen) conn_write(c, out, outlen);
            if (r == WS_HANDSHAKE_REFUSED) {
                t->stats.ws_refused++;
                log_warn_rl("%s handshake from %s refused: %s", transport_name(c->proto), c->peer_text,
                            why ? why : "bad request");
                conn_close_when_written(c, why ? why : "WebSocket handshake refused");
                return;
            }
            t->stats.ws_upgrades++;
            c->ws_open = true;
            conn_arm(c, false); /* the ping deadline */
            off += consumed;
            log_debug("%s connection %llu from %s: WebSocket open", transport_name(c->proto),
                      (unsigned long long)c->id, c->peer_text);
            continue;
        }
        struct ws_frame f;
        const char *why = NULL;
        long n = ws_frame_decode((uint8_t *)c->buf + off, c->len - off, t->cfg.max_message_bytes, &f, &why);
        if (n == 0) break;
        if (n < 0) {
            ws_fail(c, n == -2 ? 1009 : 1002, why ? why : "bad frame");
            return;
        }
        off += (size_t)n;
        if (f.opcode == WS_OP_TEXT || f.opcode == WS_OP_BINARY || f.opcode == WS_OP_CONTINUATION) delivered = true;
        ws_handle_frame(c, &f);
    }
    conn_consumed(c, off, delivered);
}

static void conn_frame(struct tcp_conn *c)
{
    if (sip_transport_is_ws(c->proto)) ws_frame(c);
    else sip_frame(c);
}

/* The framing used the first off bytes: keep the rest, and start the
 * message deadline when a new unfinished message is waiting. */
static void conn_consumed(struct tcp_conn *c, size_t off, bool delivered)
{
    struct transport *t = c->t;
    if (c->state != CONN_OPEN) return;
    /* A message has tcp_message_timeout_ms from its first byte: bytes
     * trickling in must not keep a connection (and its buffer) forever. */
    if (c->len == off) {
        c->msg_partial = false;
    } else if (delivered || !c->msg_partial) {
        c->msg_partial = true;
        c->msg_started = transport_now(t);
        conn_arm(c, false);
    }
    if (off) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    if (c->len == 0 && c->cap > CONN_BUF_KEEP) {
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct tcp_conn *c = s->data;
    struct transport *t = c->t;
    if (c->state != CONN_OPEN) return;
    if (nread == 0) return;
    if (nread < 0) {
        if (nread == UV_EOF) {
            conn_close(c, "remote closed", true);
        } else if (nread == UV_ENOBUFS) {
            if (c->len > t->cfg.max_message_bytes) conn_refuse(c, "message over the size limit");
            else conn_refuse(c, "out of memory");
        } else {
            log_info_rl("TCP connection to %s: %s", c->peer_text, uv_strerror((int)nread));
            conn_close(c, uv_err_name((int)nread), true);
        }
        return;
    }
    t->stats.bytes_in += (uint64_t)nread;
    c->last_activity = c->last_rx = transport_now(t);
    if (c->ws_ping_out) {
        c->ws_ping_out = false;
        conn_arm(c, false);
    }
    if (c->tls) {
        struct tls_io io;
        const char *why = NULL;
        int rc = tls_session_input(c->tls, buf->base, (size_t)nread, conn_tls_io(c, &io), &why);
        if (c->state != CONN_OPEN) return;
        if (rc != 0) {
            conn_tls_failed(c, why);
            return;
        }
        conn_tls_check_up(c);
        return;
    }
    c->len += (size_t)nread;
    conn_frame(c);
}

/* Plaintext out of TLS: into the framing buffer, framed as it fills. */
static int conn_take_plain(void *user, const void *data, size_t len)
{
    struct tcp_conn *c = user;
    const char *p = data;
    conn_tls_check_up(c); /* plaintext means the handshake is done */
    while (len && c->state == CONN_OPEN) {
        conn_buf_grow(c);
        size_t room = c->cap - c->len;
        if (room == 0) {
            /* Full and nothing framed out of it: one message over the limit. */
            conn_refuse(c, c->buf ? "message over the size limit" : "out of memory");
            break;
        }
        size_t n = len < room ? len : room;
        memcpy(c->buf + c->len, p, n);
        c->len += n;
        p += n;
        len -= n;
        conn_frame(c);
    }
    return c->state == CONN_OPEN ? 0 : -1;
}

/* ---- accepting and connecting ---- */

static struct tcp_conn *conn_new(struct transport *t)
{
    struct tcp_conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->t = t;
    c->pending_tail = &c->pending;
    timer_node_init(&c->timer);
    if (uv_tcp_init(t->loop, &c->handle) != 0) {
        free(c);
        return NULL;
    }
    c->handle.data = c;
    t->open_handles++;
    return c;
}

static void conn_names(struct tcp_conn *c)
{
    int len = sizeof(c->peer);
    if (uv_tcp_getpeername(&c->handle, (struct sockaddr *)&c->peer, &len) != 0) c->peer.ss_family = AF_UNSPEC;
    len = sizeof(c->local);
    if (uv_tcp_getsockname(&c->handle, (struct sockaddr *)&c->local, &len) != 0) c->local.ss_family = AF_UNSPEC;
    transport_addr_text(&c->peer, c->peer_text, sizeof(c->peer_text));
}

#define LISTENER_PAUSE_MS 1000

/* The process is out of descriptors although tcp_max_connections keeps ours
 * under the limit (something else holds the rest) and libuv's own spare is
 * gone. accept() then fails with EMFILE even on an empty backlog, and libuv
 * retries at once for as long as it does: a spin that starves the loop. Free
 * our spare to accept and close what waits (the clients see a close, not
 * silence), then close the listener, which ends libuv's retries, and listen
 * again LISTENER_PAUSE_MS later (meanwhile connects are refused). */
static void listener_resume(struct timer_node *n, uint64_t now)
{
    struct listener *l = container_of(n, struct listener, resume);
    struct transport *t = l->t;
    if (t->freeing) return;
    if (l->handle_open) { /* its close callback has not run yet */
        timer_start(t->timers, &l->resume, now + 100, listener_resume);
        return;
    }
    int rc = transport_listener_reopen(t, l);
    if (rc) {
        log_error_rl("TCP listener %u: cannot listen again: %s; next try in %u ms", l->id, uv_strerror(rc),
                     LISTENER_PAUSE_MS);
        timer_start(t->timers, &l->resume, now + LISTENER_PAUSE_MS, listener_resume);
        return;
    }
    l->paused = false;
    log_warn_rl("TCP listener %u accepting again", l->id);
}

static void accept_out_of_fds(struct transport *t, struct listener *l, int status)
{
    uint32_t closed = 0;
    if (t->spare_fd >= 0) close(t->spare_fd);
    t->spare_fd = -1;
    uv_os_fd_t lfd;
    if (uv_fileno(&l->h.handle, &lfd) == 0) {
        for (;;) {
            int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                close(fd);
                closed++;
            } else if (errno != EINTR && errno != ECONNABORTED) {
                break;
            }
        }
    }
    t->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    t->stats.tcp_refused += closed;
    log_error_rl("TCP accept on listener %u: %s with %u SIP connections open: closed %u waiting connections, "
                 "not listening for %u ms",
                 l->id, uv_strerror(status), t->stats.tcp_open, closed, LISTENER_PAUSE_MS);
    if (l->paused) return;
    l->paused = true;
    uv_close(&l->h.handle, transport_listener_closed);
    if (timer_start(t->timers, &l->resume, transport_now(t) + LISTENER_PAUSE_MS, listener_resume) != 0)
        log_error("TCP listener %u: no memory for its resume timer: not listening any more", l->id);
}

/* Accepted past a cap: closed at once, so the listen socket is drained and
 * the peer learns it at once (rather than hanging in the backlog). */
static void accept_refuse(struct tcp_conn *c, const char *why)
{
    struct transport *t = c->t;
    t->stats.tcp_refused++;
    log_warn_rl("TCP connection from %s refused: %s", c->peer_text, why);
    conn_close(c, why, false);
}

static void on_accept(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct transport *t = l->t;
    if (status == UV_EMFILE || status == UV_ENFILE) {
        accept_out_of_fds(t, l, status);
        return;
    }
    if (status < 0) {
        log_warn_rl("TCP accept on listener %u: %s", l->id, uv_strerror(status));
        return;
    }
    struct tcp_conn *c = conn_new(t);
    if (!c) {
        log_error_rl("TCP accept on listener %u: out of memory", l->id);
        return;
    }
    c->listener_id = l->id;
    c->proto = l->proto;
    c->state = CONN_OPEN;
    if (uv_accept(server, (uv_stream_t *)&c->handle) != 0) {
        conn_close(c, "accept failed", false);
        return;
    }
    conn_names(c);
    if (t->stats.tcp_open >= t->cfg.tcp_max_connections) {
        accept_refuse(c, "tcp_max_connections reached");
        return;
    }
    c->ip = ip_count_take(t, &c->peer);
    if (!c->ip) {
        accept_refuse(c, "tcp_max_per_ip reached for its address");
        return;
    }
    if (sip_transport_is_secure(c->proto) && !(c->tls = t->tls ? tls_session_server(t->tls) : NULL)) {
        accept_refuse(c, "no TLS session (no certificate, or out of memory)");
        return;
    }
    if (conn_register(t, c) != 0) {
        log_error_rl("TCP connection from %s refused: out of memory", c->peer_text);
        conn_close(c, "out of memory", false);
        return;
    }
    t->stats.tcp_accepted++;
    uv_tcp_nodelay(&c->handle, 1);
    conn_arm_open(c);
    int rc = uv_read_start((uv_stream_t *)&c->handle, conn_alloc, conn_read);
    if (rc) {
        log_warn_rl("TCP connection from %s: %s", c->peer_text, uv_strerror(rc));
        conn_close(c, "read failed", true);
        return;
    }
    log_debug("%s connection %llu from %s accepted", transport_name(c->proto), (unsigned long long)c->id,
              c->peer_text);
}

int tcp_listener_start(struct transport *t, struct listener *l)
{
    (void)t;
    return uv_listen((uv_stream_t *)&l->h.tcp, 511, on_accept);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct tcp_conn *c = container_of(req, struct tcp_conn, connect_req);
    struct transport *t = c->t;
    if (status == UV_ECANCELED || c->state != CONN_CONNECTING) return;
    if (status < 0) {
        log_warn_rl("TCP connect to %s failed: %s", c->peer_text, uv_strerror(status));
        conn_close(c, "connect failed", true);
        return;
    }
    c->state = CONN_OPEN;
    int len = sizeof(c->local);
    if (uv_tcp_getsockname(&c->handle, (struct sockaddr *)&c->local, &len) != 0) c->local.ss_family = AF_UNSPEC;
    t->stats.tcp_connected++;
    uv_tcp_nodelay(&c->handle, 1);
    conn_arm_open(c);
    int rc = uv_read_start((uv_stream_t *)&c->handle, conn_alloc, conn_read);
    struct conn_write *w = c->pending;
    c->pending = NULL;
    c->pending_tail = &c->pending;
    while (w && rc == 0) {
        struct conn_write *next = w->next;
        rc = conn_write_queue(c, w);
        w = next;
    }
    while (w) { /* only after a failure */
        struct conn_write *next = w->next;
        c->queued -= w->len;
        free(w);
        w = next;
    }
    if (rc) {
        log_warn_rl("TCP connection to %s: %s", c->peer_text, uv_strerror(rc));
        conn_close(c, "write error", true);
        return;
    }
    log_debug("TCP connection %llu to %s established", (unsigned long long)c->id, c->peer_text);
}

/* Binds the socket of an outbound connection to a listener's address (port
 * 0) so that its packets come from the address our Via and Contact name.
 * 0 when bound or when no binding applies, else a libuv error code. */
static int conn_bind_source(struct transport *t, struct tcp_conn *c, const struct transport_dest *dest)
{
    const struct listener *l = transport_bind_listener(t, dest);
    if (!l) return 0;
    struct sockaddr_storage src = l->addr;
    socklen_t len = sizeof(struct sockaddr_in);
    if (src.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)&src)->sin6_port = 0;
        len = sizeof(struct sockaddr_in6);
    } else {
        ((struct sockaddr_in *)&src)->sin_port = 0;
    }
    int fd = socket(src.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* The port is chosen at connect, per destination: binding does not cap
     * outbound connections at the size of the ephemeral port range. */
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
    if (bind(fd, (const struct sockaddr *)&src, len) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    int rc = uv_tcp_open(&c->handle, fd);
    if (rc) close(fd);
    return rc;
}

/* An outbound TLS connection's session, its ClientHello queued first. The
 * certificate must name dest->server_name, else the address we connect to. */
static int conn_tls_client(struct tcp_conn *c, const struct transport_dest *dest)
{
    char ip[TRANSPORT_ADDR_TEXT];
    const char *name = dest->server_name;
    if (!name[0]) {
        transport_addr_text(&c->peer, ip, sizeof(ip));
        char *colon = strrchr(ip, ':'); /* "1.2.3.4:5061" / "[::1]:5061" -> the address */
        if (colon) *colon = '\0';
        if (ip[0] == '[') {
            memmove(ip, ip + 1, strlen(ip));
            char *rb = strchr(ip, ']');
            if (rb) *rb = '\0';
        }
        name = ip;
    }
    c->tls = tls_session_client(c->t->tls, name);
    if (!c->tls) return UV_ENOMEM;
    struct tls_io io;
    const char *why = NULL;
    if (tls_session_start(c->tls, conn_tls_io(c, &io), &why) != 0) {
        log_warn_rl("TLS connect to %s: %s", c->peer_text, why ? why : "cannot start");
        return UV_EPROTO;
    }
    return 0;
}

static struct tcp_conn *conn_connect(struct transport *t, const struct transport_dest *dest, int *err)
{
    const struct sockaddr_storage *addr = &dest->addr;
    if (t->stats.tcp_open >= t->cfg.tcp_max_connections) {
        *err = UV_EMFILE;
        return NULL;
    }
    struct tcp_conn *c = conn_new(t);
    if (!c) {
        *err = UV_ENOMEM;
        return NULL;
    }
    c->state = CONN_CONNECTING;
    c->proto = dest->proto;
    c->peer = *addr;
    transport_addr_text(&c->peer, c->peer_text, sizeof(c->peer_text));
    int rc = conn_bind_source(t, c, dest);
    if (rc == 0) rc = uv_tcp_connect(&c->connect_req, &c->handle, (const struct sockaddr *)addr, on_connect);
    if (rc == 0 && conn_register(t, c) != 0) rc = UV_ENOMEM;
    if (rc) {
        /* Not registered (or the connect never started): close without a callback. */
        conn_unregister(t, c);
        c->id = 0;
        conn_close(c, "connect failed", false);
        *err = rc;
        return NULL;
    }
    if (timer_start(t->timers, &c->timer, transport_now(t) + t->cfg.tcp_connect_timeout_ms, conn_timer) != 0)
        log_error_rl("TCP connect to %s: no memory for the connect timer", c->peer_text);
    if (c->proto == SIP_TRANSPORT_TLS && (rc = conn_tls_client(c, dest)) != 0) {
        conn_close(c, "TLS setup failed", false);
        *err = rc;
        return NULL;
    }
    log_debug("TCP connection %llu to %s: connecting", (unsigned long long)c->id, c->peer_text);
    return c;
}

/* One SIP message on the connection: a text frame on WS/WSS (RFC 7118 §5.2). */
static int conn_send_message(struct tcp_conn *c, const char *data, size_t len)
{
    bool response = len > 8 && memcmp(data, "SIP/2.0 ", 8) == 0;
    if (!sip_transport_is_ws(c->proto)) return conn_write_ex(c, data, len, response);
    if (!c->ws_open || c->close_when_written) return UV_ENOTCONN;
    return ws_send_frame_ex(c, WS_OP_TEXT, data, len, response);
}

int tcp_send(struct transport *t, struct transport_dest *dest, const void *data, size_t len)
{
    struct tcp_conn *c = dest->conn_id ? conn_by_id(t, dest->conn_id) : NULL;
    if (!c) {
        if (dest->addr.ss_family != AF_INET && dest->addr.ss_family != AF_INET6) return UV_ENOTCONN;
        if (!dest->new_flow) c = conn_by_addr(t, &dest->addr, dest->proto);
    }
    if (!c) {
        /* We do not open WebSocket connections: a WS client is reached on
         * its own. TLS needs a context. */
        if (sip_transport_is_ws(dest->proto)) return UV_ENOTCONN;
        if (dest->proto == SIP_TRANSPORT_TLS && !t->tls) return UV_EPROTONOSUPPORT;
        int err = 0;
        c = conn_connect(t, dest, &err);
        if (!c) return err;
    }
    dest->conn_id = c->id;
    return conn_send_message(c, data, len);
}
