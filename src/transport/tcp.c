/* tcp.c — SIP over TCP: accepted and outbound connections, the connection
 * table (by id and by remote ip:port), stream framing (RFC 3261 §18.3),
 * CRLF keepalives (RFC 5626 §3.5.1), idle and connect timeouts, the
 * deadlines that close slow senders, and the descriptor budget (a global
 * and a per-source-IP cap on accepted connections, a spare descriptor).
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

static struct tcp_conn *conn_by_addr(struct transport *t, const struct sockaddr_storage *a)
{
    for (struct hnode *n = htable_first(&t->conns_by_addr, addr_hash(a)); n; n = htable_next(n)) {
        struct tcp_conn *c = container_of(n, struct tcp_conn, by_addr);
        if (transport_addr_equal(&c->peer, a)) return c;
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

static void conn_close(struct tcp_conn *c, const char *reason, bool notify)
{
    struct transport *t = c->t;
    if (c->state == CONN_CLOSING) return;
    c->state = CONN_CLOSING;
    timer_stop(t->timers, &c->timer);
    conn_drop_pending(c);
    bool registered = c->id != 0;
    conn_unregister(t, c);
    if (c->ip) ip_count_give_back(t, c->ip);
    c->ip = NULL;
    log_debug("TCP connection %llu to %s closed: %s", (unsigned long long)c->id, c->peer_text, reason);
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

/* When an open connection must be looked at again: the earliest of its idle,
 * message and first-message deadlines; UINT64_MAX when none applies. */
static uint64_t conn_deadline(const struct tcp_conn *c)
{
    const struct transport *t = c->t;
    uint64_t d = UINT64_MAX;
    if (t->cfg.tcp_idle_timeout_ms) d = c->last_activity + t->cfg.tcp_idle_timeout_ms;
    if (c->msg_partial) d = deadline_min(d, c->msg_started + t->cfg.tcp_message_timeout_ms);
    if (c->listener_id && !c->got_message) d = deadline_min(d, c->opened_at + t->cfg.tcp_first_message_timeout_ms);
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
    /* Activity does not touch the heap; the timer catches up here. */
    conn_arm(c, true);
}

/* An open connection starts its deadlines. */
static void conn_arm_open(struct tcp_conn *c)
{
    c->last_activity = c->opened_at = transport_now(c->t);
    conn_arm(c, true);
}

/* ---- writing ---- */

static void conn_written(uv_write_t *req, int status)
{
    struct conn_write *w = container_of(req, struct conn_write, req);
    struct tcp_conn *c = w->conn;
    c->queued -= w->len;
    free(w);
    if (status == UV_ECANCELED || c->state == CONN_CLOSING) return;
    if (status < 0) {
        log_warn_rl("TCP write to %s failed: %s", c->peer_text, uv_strerror(status));
        conn_close(c, "write error", true);
    }
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

static int conn_write(struct tcp_conn *c, const char *data, size_t len)
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
            log_warn_rl("TCP write to %s failed: %s", c->peer_text, uv_strerror(n));
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
        log_warn_rl("TCP write to %s failed: %s", c->peer_text, uv_strerror(rc));
        conn_close(c, "write error", true);
    }
    return rc;
}

/* ---- reading and framing ---- */

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct tcp_conn *c = h->data;
    size_t limit = (size_t)c->t->cfg.max_message_bytes + 1;
    if (c->cap - c->len < 1024 && c->cap < limit) {
        size_t cap = c->cap ? c->cap * 2 : CONN_BUF_MIN;
        if (cap > limit) cap = limit;
        char *p = realloc(c->buf, cap);
        if (p) {
            c->buf = p;
            c->cap = cap;
        }
    }
    buf->base = c->buf ? c->buf + c->len : NULL;
    buf->len = c->cap - c->len;
}

static void conn_refuse(struct tcp_conn *c, const char *why)
{
    c->t->stats.dropped++;
    log_warn_rl("TCP %s from %s: closing the connection", why, c->peer_text);
    conn_close(c, why, true);
}

/* Hands every complete message in the buffer up; keeps the unfinished tail. */
static void conn_frame(struct tcp_conn *c)
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
        struct rx_origin o = {SIP_TRANSPORT_TCP, &c->peer, c->peer_text, c->id, c->listener_id, &c->local};
        c->got_message = delivered = true;
        transport_deliver(t, p + skip, (size_t)n, &o);
        off += skip + (size_t)n;
    }
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
    c->len += (size_t)nread;
    c->last_activity = transport_now(t);
    conn_frame(c);
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
    log_debug("TCP connection %llu from %s accepted", (unsigned long long)c->id, c->peer_text);
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
    log_debug("TCP connection %llu to %s: connecting", (unsigned long long)c->id, c->peer_text);
    return c;
}

int tcp_send(struct transport *t, struct transport_dest *dest, const void *data, size_t len)
{
    struct tcp_conn *c = dest->conn_id ? conn_by_id(t, dest->conn_id) : NULL;
    if (!c) {
        if (dest->addr.ss_family != AF_INET && dest->addr.ss_family != AF_INET6) return UV_ENOTCONN;
        if (!dest->new_flow) c = conn_by_addr(t, &dest->addr);
    }
    if (!c) {
        int err = 0;
        c = conn_connect(t, dest, &err);
        if (!c) return err;
    }
    dest->conn_id = c->id;
    return conn_write(c, data, len);
}
