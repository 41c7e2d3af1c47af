/* transport.c — transport core: listeners, UDP, the receive path (parse,
 * received/rport stamping) and where responses go (RFC 3261 §18, RFC 3581).
 * Connections (TCP, TLS, WS, WSS) and their framing are in tcp.c. */
#include "transport/transport_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"

#define ARENA_FIRST_BYTES (64 * 1024)
#define ARENA_HEAP_LIMIT (1024 * 1024)
#define UDP_MAX_PAYLOAD 65535u
/* recvmmsg slots: libuv reads one datagram per 64 KiB of the buffer it is
 * given (UV__UDP_DGRAM_MAXSIZE). */
#define UDP_RX_CHUNK (64u * 1024u)
#define UDP_RX_CHUNKS 8u
/* Batched sends: entries and bytes held per loop turn. */
#define UDP_BATCH_MAX 64u
#define UDP_BATCH_BYTES (128u * 1024u)

struct udp_batch_entry {
    struct listener *l;
    struct sockaddr_storage addr;
    uint32_t off, len;
};

struct udp_batch {
    uint32_t n;
    uint32_t used;
    struct udp_batch_entry e[UDP_BATCH_MAX];
    struct mmsghdr mm[UDP_BATCH_MAX];
    struct iovec iov[UDP_BATCH_MAX];
    char bytes[UDP_BATCH_BYTES];
};

/* ---- address helpers ---- */

int transport_addr_parse(const char *host, size_t host_len, uint16_t port, struct sockaddr_storage *out)
{
    char tmp[INET6_ADDRSTRLEN + 8];
    if (!host) return -1;
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    if (host_len == 0 || host_len >= sizeof(tmp)) return -1;
    memcpy(tmp, host, host_len);
    tmp[host_len] = '\0';
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, tmp, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return 0;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, tmp, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

/* Dotted quad of a (buf >= 16 bytes), NUL-terminated; the length. Every
 * datagram's source is formatted (for logs and the Via received param), so
 * IPv4 avoids inet_ntop/snprintf. */
static size_t ipv4_text(const struct in_addr *a, char *buf)
{
    const uint8_t *b = (const uint8_t *)&a->s_addr;
    char *o = buf;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100) *o++ = (char)('0' + v / 100);
        if (v >= 10) *o++ = (char)('0' + v / 10 % 10);
        *o++ = (char)('0' + v % 10);
        if (i < 3) *o++ = '.';
    }
    *o = '\0';
    return (size_t)(o - buf);
}

/* Decimal of a port (buf >= 6 bytes), NUL-terminated; the length. */
static size_t port_text(unsigned v, char *buf)
{
    char tmp[8];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

/* The IP alone, IPv6 without brackets (the form of a Via received param). */
static size_t addr_ip_text(const struct sockaddr_storage *a, char *buf, size_t cap)
{
    if (a->ss_family == AF_INET && cap >= INET_ADDRSTRLEN)
        return ipv4_text(&((const struct sockaddr_in *)a)->sin_addr, buf);
    const void *src = a->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr
                                               : (const void *)&((const struct sockaddr_in *)a)->sin_addr;
    if (cap == 0) return 0;
    if ((a->ss_family != AF_INET && a->ss_family != AF_INET6) || !inet_ntop(a->ss_family, src, buf, (socklen_t)cap)) {
        buf[0] = '\0';
        return 0;
    }
    return strlen(buf);
}

size_t transport_addr_text(const struct sockaddr_storage *a, char *buf, size_t cap)
{
    if (a->ss_family == AF_INET) {
        /* "ip:port" as the snprintf below would print it (truncated alike). */
        char t[INET_ADDRSTRLEN + 8];
        size_t n = ipv4_text(&((const struct sockaddr_in *)a)->sin_addr, t);
        t[n++] = ':';
        n += port_text(transport_addr_port(a), t + n);
        if (cap == 0) return 0;
        if (n >= cap) n = cap - 1;
        memcpy(buf, t, n);
        buf[n] = '\0';
        return n;
    }
    char ip[INET6_ADDRSTRLEN];
    if (addr_ip_text(a, ip, sizeof(ip)) == 0) return (size_t)snprintf(buf, cap, "?");
    int n = a->ss_family == AF_INET6 ? snprintf(buf, cap, "[%s]:%u", ip, transport_addr_port(a))
                                     : snprintf(buf, cap, "%s:%u", ip, transport_addr_port(a));
    if (n < 0) return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

uint16_t transport_addr_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)a)->sin_port);
    if (a->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    return 0;
}

static void addr_set_port(struct sockaddr_storage *a, uint16_t port)
{
    if (a->ss_family == AF_INET) ((struct sockaddr_in *)a)->sin_port = htons(port);
    else if (a->ss_family == AF_INET6) ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
}

static bool addr_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return false;
}

bool transport_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return addr_same_ip(a, b) && transport_addr_port(a) == transport_addr_port(b);
}

const char *transport_name(enum sip_transport proto) { return sip_transport_via_name(proto); }

/* ---- lifecycle ---- */

/* tcp_max_connections against RLIMIT_NOFILE: raise the soft limit as far as
 * the hard one allows, then clamp what still does not fit. Every connection
 * is one descriptor; running out stops the API, the store and accept itself. */
static uint32_t tcp_fd_budget(uint32_t want, uint32_t reserve)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return want;
    rlim_t need = (rlim_t)want + reserve;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        struct rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        if (raised.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &raised) == 0) rl.rlim_cur = raised.rlim_cur;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) return want;
    uint32_t cap = rl.rlim_cur > (rlim_t)reserve + 16 ? (uint32_t)(rl.rlim_cur - reserve) : 16;
    log_warn("[sip] tcp_max_connections %u does not fit the descriptor limit %llu (minus %u kept in reserve): "
             "using %u",
             want, (unsigned long long)rl.rlim_cur, reserve, cap);
    return cap;
}

/* [sip] ws_origins "https://a, https://b" -> the handshake's allow-list. */
static void ws_origins_init(struct transport *t)
{
    snprintf(t->ws_origins_buf, sizeof(t->ws_origins_buf), "%s", t->cfg.ws_origins);
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(t->ws_origins_buf, ", \t", &save); tok && n < sizeof(t->ws_origins) / sizeof(t->ws_origins[0]);
         tok = strtok_r(NULL, ", \t", &save))
        t->ws_origins[n++] = tok;
    t->ws.origins = t->ws_origins;
    t->ws.n_origins = n;
    t->ws.allow_no_origin = !t->cfg.ws_require_origin;
}

void transport_set_tls(struct transport *t, struct tls_context *ctx) { t->tls = ctx; }

uint64_t transport_now(struct transport *t)
{
    return t->cb.now_ms ? t->cb.now_ms(t->cb.user) : uv_now(t->loop);
}

static void batch_handles_init(struct transport *t);
static void batch_handle_closed(uv_handle_t *h);
static void udp_batch_flush(struct transport *t);

struct transport *transport_new(uv_loop_t *loop, struct timer_service *timers, const struct transport_config *cfg,
                                const struct transport_callbacks *cb)
{
    if (!loop || !timers || !cb || !cb->on_message) return NULL;
    struct transport *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->loop = loop;
    t->timers = timers;
    if (cfg) t->cfg = *cfg;
    t->cb = *cb;
    if (t->cfg.max_message_bytes == 0) t->cfg.max_message_bytes = UDP_MAX_PAYLOAD;
    if (t->cfg.tcp_connect_timeout_ms == 0) t->cfg.tcp_connect_timeout_ms = 10000;
    if (t->cfg.tcp_max_send_queue == 0) t->cfg.tcp_max_send_queue = 4u << 20;
    if (t->cfg.tcp_max_connections == 0) t->cfg.tcp_max_connections = 10000;
    if (t->cfg.tcp_max_per_ip == 0) t->cfg.tcp_max_per_ip = 256;
    if (t->cfg.tcp_fd_reserve == 0) t->cfg.tcp_fd_reserve = 64;
    if (t->cfg.tcp_message_timeout_ms == 0) t->cfg.tcp_message_timeout_ms = 10000;
    if (t->cfg.tcp_first_message_timeout_ms == 0) t->cfg.tcp_first_message_timeout_ms = 30000;
    if (t->cfg.ws_ping_interval_ms == 0) t->cfg.ws_ping_interval_ms = 30000;
    ws_origins_init(t);
    t->cfg.tcp_max_connections = tcp_fd_budget(t->cfg.tcp_max_connections, t->cfg.tcp_fd_reserve);
    t->stats.tcp_max_connections = t->cfg.tcp_max_connections;

    sip_parse_limits_default(&t->limits);
    if (t->cfg.limits.max_headers) t->limits.max_headers = t->cfg.limits.max_headers;
    if (t->cfg.limits.max_line_bytes) t->limits.max_line_bytes = t->cfg.limits.max_line_bytes;
    t->limits.max_message_bytes = t->cfg.max_message_bytes;

    /* One byte more than the limit so that an oversize datagram is seen as such. */
    uint32_t udp_max = t->cfg.max_message_bytes < UDP_MAX_PAYLOAD ? t->cfg.max_message_bytes : UDP_MAX_PAYLOAD;
    t->udp_cap = (size_t)udp_max + 1;
    t->udp_buf = malloc((size_t)UDP_RX_CHUNK * UDP_RX_CHUNKS);
    t->batch = calloc(1, sizeof(*t->batch));
    t->arena_mem = malloc(ARENA_FIRST_BYTES);
    htable_init(&t->conns_by_id);
    htable_init(&t->conns_by_addr);
    htable_init(&t->ip_counts);
    if (!t->udp_buf || !t->arena_mem || !t->batch) {
        free(t->udp_buf);
        free(t->batch);
        free(t->arena_mem);
        free(t);
        return NULL;
    }
    t->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    arena_init(&t->arena, t->arena_mem, ARENA_FIRST_BYTES);
    t->arena.limit = ARENA_HEAP_LIMIT;
    t->next_conn_id = 1;
    batch_handles_init(t);
    return t;
}

static void transport_release(struct transport *t)
{
    for (uint32_t i = 0; i < t->listener_count; i++) free(t->listeners[i]);
    htable_free(&t->conns_by_id);
    htable_free(&t->conns_by_addr);
    htable_free(&t->ip_counts); /* every count went back to zero (and was freed) as its connections closed */
    if (t->spare_fd >= 0) close(t->spare_fd);
    arena_free(&t->arena);
    free(t->arena_mem);
    free(t->udp_buf);
    free(t->batch);
    free(t);
}

void transport_handle_closed(struct transport *t)
{
    t->open_handles--;
    if (t->freeing && t->open_handles == 0) transport_release(t);
}

void transport_listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    l->handle_open = false;
    transport_handle_closed(l->t);
}

void transport_free(struct transport *t)
{
    if (!t) return;
    udp_batch_flush(t);
    tcp_flush_corked(t);
    t->freeing = true;
    uv_close((uv_handle_t *)&t->batch_check, batch_handle_closed);
    uv_close((uv_handle_t *)&t->batch_prepare, batch_handle_closed);
    tcp_close_all(t);
    for (uint32_t i = 0; i < t->listener_count; i++) {
        struct listener *l = t->listeners[i];
        timer_stop(t->timers, &l->resume);
        /* A paused listener is closed or closing already. */
        if (l->handle_open && !uv_is_closing(&l->h.handle)) uv_close(&l->h.handle, transport_listener_closed);
    }
    if (t->open_handles == 0) transport_release(t);
}

void transport_get_stats(const struct transport *t, struct transport_stats *out) { *out = t->stats; }

/* ---- listeners ---- */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct listener *l = h->data;
    /* libuv fills the slots with one recvmmsg, then hands them over one by
     * one; each is handled before the next read, so one buffer serves every
     * socket. */
    buf->base = l->t->udp_buf;
    buf->len = UDP_RX_CHUNK * UDP_RX_CHUNKS;
}

/* RFC 5626 §4.4.1 uses STUN on UDP, but some UAs send bare CRLFs: ignore them. */
static bool only_crlf(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '\r' && p[i] != '\n') return false;
    return true;
}

/* One datagram read from listener l. */
static void udp_datagram(struct listener *l, const char *data, size_t len, bool truncated,
                         const struct sockaddr *addr)
{
    struct transport *t = l->t;
    char src_text[TRANSPORT_ADDR_TEXT] = "?";
    struct sockaddr_storage src = {0};
    if (addr) {
        memcpy(&src, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
        transport_addr_text(&src, src_text, sizeof(src_text));
    }
    t->stats.bytes_in += len;
    if (truncated || len > t->cfg.max_message_bytes) {
        t->stats.dropped++;
        log_warn_rl("UDP datagram from %s dropped: larger than %u bytes", src_text, t->cfg.max_message_bytes);
        return;
    }
    if (only_crlf(data, len)) return;
    struct rx_origin o = {SIP_TRANSPORT_UDP, &src, src_text, 0, l->id, &l->addr};
    transport_deliver(t, data, len, &o);
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    struct listener *l = h->data;
    if (flags & UV_UDP_MMSG_FREE) return; /* the end of one recvmmsg's slots */
    if (nread == 0 && !addr) return;      /* the socket is drained */
    if (nread < 0) {
        char src_text[TRANSPORT_ADDR_TEXT] = "?";
        if (addr) {
            struct sockaddr_storage src = {0};
            memcpy(&src, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
            transport_addr_text(&src, src_text, sizeof(src_text));
        }
        log_warn_rl("UDP receive error on listener %u from %s: %s", l->id, src_text, uv_strerror((int)nread));
        return;
    }
    if (nread == 0) return;
    udp_datagram(l, buf->base, (size_t)nread, (flags & UV_UDP_PARTIAL) != 0, addr);
}

static int listener_bind(struct transport *t, struct listener *l)
{
    const struct sockaddr *sa = (const struct sockaddr *)&l->addr;
    int rc;
    if (l->proto == SIP_TRANSPORT_UDP) {
        rc = uv_udp_init_ex(t->loop, &l->h.udp, AF_UNSPEC | UV_UDP_RECVMMSG);
        if (rc) return rc;
        t->open_handles++;
        l->handle_open = true;
        l->h.handle.data = l;
        /* IPV6ONLY so that a v4 and a v6 listener can share a port. */
        rc = uv_udp_bind(&l->h.udp, sa, l->addr.ss_family == AF_INET6 ? UV_UDP_IPV6ONLY : 0);
        if (rc) return rc;
        int size = 1 << 20; /* bursts of REGISTERs: a larger kernel queue, best effort */
        uv_recv_buffer_size(&l->h.handle, &size);
        int namelen = sizeof(l->addr);
        rc = uv_udp_getsockname(&l->h.udp, (struct sockaddr *)&l->addr, &namelen);
        if (rc) return rc;
        return uv_udp_recv_start(&l->h.udp, udp_alloc, udp_recv);
    }
    rc = uv_tcp_init(t->loop, &l->h.tcp);
    if (rc) return rc;
    t->open_handles++;
    l->handle_open = true;
    l->h.handle.data = l;
    rc = uv_tcp_bind(&l->h.tcp, sa, l->addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (rc) return rc;
    int namelen = sizeof(l->addr);
    rc = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&l->addr, &namelen);
    if (rc) return rc;
    return tcp_listener_start(t, l);
}

static void failed_listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    struct transport *t = l->t;
    free(l);
    transport_handle_closed(t);
}

int transport_listen(struct transport *t, enum sip_transport proto, const char *host, uint16_t port)
{
    if (t->freeing || (unsigned)proto >= SIP_TRANSPORT_COUNT) return UV_EINVAL;
    if (sip_transport_is_secure(proto) && !(t->tls && tls_context_can_serve(t->tls))) {
        log_error("listen %s %s:%u: no certificate ([tls] cert and key)", transport_name(proto), host ? host : "(null)",
                  port);
        return UV_EINVAL;
    }
    if (t->listener_count >= TRANSPORT_MAX_LISTENERS) return UV_ENOSPC;
    struct listener *l = calloc(1, sizeof(*l));
    if (!l) return UV_ENOMEM;
    l->t = t;
    l->proto = proto;
    l->id = t->listener_count + 1;
    timer_node_init(&l->resume);
    if (!host || transport_addr_parse(host, strlen(host), port, &l->addr) != 0) {
        log_error("listen %s %s:%u: not a numeric IP address", transport_name(proto), host ? host : "(null)", port);
        free(l);
        return UV_EINVAL;
    }
    uint32_t handles_before = t->open_handles;
    int rc = listener_bind(t, l);
    if (rc) {
        log_error("listen %s %s:%u: %s", transport_name(proto), host, port, uv_strerror(rc));
        if (t->open_handles != handles_before) uv_close(&l->h.handle, failed_listener_closed);
        else free(l);
        return rc;
    }
    t->listeners[t->listener_count++] = l;
    char text[TRANSPORT_ADDR_TEXT];
    transport_addr_text(&l->addr, text, sizeof(text));
    log_info("listening on %s %s (listener %u)", transport_name(proto), text, l->id);
    return (int)l->id;
}

int transport_listener_reopen(struct transport *t, struct listener *l)
{
    uint32_t handles_before = t->open_handles;
    int rc = listener_bind(t, l);
    if (rc && t->open_handles != handles_before) uv_close(&l->h.handle, transport_listener_closed);
    return rc;
}

int transport_listener_port(const struct transport *t, uint32_t listener_id)
{
    if (listener_id == 0 || listener_id > t->listener_count) return UV_EINVAL;
    return transport_addr_port(&t->listeners[listener_id - 1]->addr);
}

int transport_local(const struct transport *t, enum sip_transport proto, char *host, size_t cap, uint16_t *port)
{
    for (uint32_t i = 0; i < t->listener_count; i++) {
        const struct listener *l = t->listeners[i];
        if (l->proto != proto) continue;
        char ip[INET6_ADDRSTRLEN];
        addr_ip_text(&l->addr, ip, sizeof(ip));
        int n = snprintf(host, cap, l->addr.ss_family == AF_INET6 ? "[%s]" : "%s", ip);
        if (n < 0 || (size_t)n >= cap) return UV_ENOBUFS;
        if (port) *port = transport_addr_port(&l->addr);
        return 0;
    }
    return -ENOENT;
}

/* ---- sending ---- */

struct udp_send_req {
    uv_udp_send_t req;
    char data[];
};

static void udp_sent(uv_udp_send_t *req, int status)
{
    if (status < 0 && status != UV_ECANCELED) log_warn_rl("UDP send failed: %s", uv_strerror(status));
    free(req);
}

static struct listener *udp_pick(struct transport *t, const struct transport_dest *d)
{
    if (d->listener_id && d->listener_id <= t->listener_count) {
        struct listener *l = t->listeners[d->listener_id - 1];
        if (l->proto == SIP_TRANSPORT_UDP && l->addr.ss_family == d->addr.ss_family) return l;
    }
    for (uint32_t i = 0; i < t->listener_count; i++) {
        struct listener *l = t->listeners[i];
        if (l->proto == SIP_TRANSPORT_UDP && l->addr.ss_family == d->addr.ss_family) return l;
    }
    return NULL;
}

/* A copy queued behind the socket (it was full): libuv sends it when it can. */
static int udp_send_queued(struct listener *l, const struct sockaddr *to, const void *data, size_t len)
{
    struct udp_send_req *r = malloc(sizeof(*r) + len);
    if (!r) return UV_ENOMEM;
    memcpy(r->data, data, len);
    uv_buf_t b = uv_buf_init(r->data, (unsigned)len);
    int rc = uv_udp_send(&r->req, &l->h.udp, &b, 1, to, udp_sent);
    if (rc) free(r);
    return rc;
}

static int udp_send_now(struct listener *l, const struct transport_dest *d, const void *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int rc = uv_udp_try_send(&l->h.udp, &b, 1, (const struct sockaddr *)&d->addr);
    if (rc >= 0) return 0;
    if (rc != UV_EAGAIN) return rc;
    /* The socket is busy (rare; the hot path never allocates). */
    return udp_send_queued(l, (const struct sockaddr *)&d->addr, data, len);
}

/* ---- batched sends ----
 * A datagram costs a system call, and at moderate rates the call (on a VM,
 * its trip through the hypervisor) weighs more than building the message.
 * Responses are therefore held until the loop turn's callbacks are done and
 * leave in one sendmmsg per socket, in the order they were made. Requests
 * are sent at once, after what the batch holds (the order of everything we
 * send is kept): a client transaction reports a send error as 503 at once,
 * which a batch could not tell it. A response's send error is counted
 * and logged at the flush (the server transaction cannot act on it). */
static socklen_t addr_len(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void udp_batch_send_run(struct transport *t, struct udp_batch *b, uint32_t from, uint32_t to)
{
    struct listener *l = b->e[from].l;
    uv_os_fd_t fd;
    bool direct = !uv_is_closing(&l->h.handle) && uv_fileno(&l->h.handle, &fd) == 0 &&
                  l->h.udp.send_queue_count == 0; /* else libuv's queue first, to keep the order */
    uint32_t k = to - from, sent = 0;
    for (uint32_t i = 0; i < k; i++) {
        struct udp_batch_entry *e = &b->e[from + i];
        b->iov[i] = (struct iovec){b->bytes + e->off, e->len};
        b->mm[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &e->addr, .msg_namelen = addr_len(&e->addr),
                                                 .msg_iov = &b->iov[i], .msg_iovlen = 1}};
    }
    while (direct && sent < k) {
        int r = sendmmsg(fd, b->mm + sent, k - sent, 0);
        if (r > 0) {
            sent += (uint32_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        /* The datagram at `sent` failed alone; the rest still go. */
        char text[TRANSPORT_ADDR_TEXT];
        transport_addr_text(&b->e[from + sent].addr, text, sizeof(text));
        t->stats.send_errors++;
        log_warn_rl("UDP send to %s failed: %s", text, strerror(r < 0 ? errno : EIO));
        sent++;
    }
    for (; sent < k; sent++) {
        struct udp_batch_entry *e = &b->e[from + sent];
        if (uv_is_closing(&l->h.handle) ||
            udp_send_queued(l, (const struct sockaddr *)&e->addr, b->bytes + e->off, e->len) != 0)
            t->stats.send_errors++;
    }
}

static void udp_batch_flush(struct transport *t)
{
    struct udp_batch *b = t->batch;
    if (!b || b->n == 0) return;
    uint32_t i = 0;
    while (i < b->n) {
        uint32_t j = i + 1;
        while (j < b->n && b->e[j].l == b->e[i].l) j++;
        udp_batch_send_run(t, b, i, j);
        i = j;
    }
    b->n = 0;
    b->used = 0;
}

static void batch_check_cb(uv_check_t *h)
{
    udp_batch_flush(h->data);
    tcp_flush_corked(h->data);
}

static void batch_prepare_cb(uv_prepare_t *h)
{
    udp_batch_flush(h->data);
    tcp_flush_corked(h->data);
}

static void batch_handle_closed(uv_handle_t *h) { transport_handle_closed(h->data); }

static void batch_handles_init(struct transport *t)
{
    uv_check_init(t->loop, &t->batch_check);
    uv_prepare_init(t->loop, &t->batch_prepare);
    t->batch_check.data = t->batch_prepare.data = t;
    uv_check_start(&t->batch_check, batch_check_cb);
    uv_prepare_start(&t->batch_prepare, batch_prepare_cb);
    /* They run every turn but never keep the loop alive. */
    uv_unref((uv_handle_t *)&t->batch_check);
    uv_unref((uv_handle_t *)&t->batch_prepare);
    t->open_handles += 2;
}

static bool is_response(const void *data, size_t len) { return len > 8 && memcmp(data, "SIP/2.0 ", 8) == 0; }

static int udp_send(struct transport *t, const struct transport_dest *d, const void *data, size_t len)
{
    struct listener *l = udp_pick(t, d);
    if (!l) return UV_EAFNOSUPPORT;
    struct udp_batch *b = t->batch;
    if (!is_response(data, len) || len > UDP_BATCH_BYTES) {
        /* What was made before leaves before it: a NOTIFY must not pass the 200 of its SUBSCRIBE. */
        udp_batch_flush(t);
        return udp_send_now(l, d, data, len);
    }
    if (b->n == UDP_BATCH_MAX || len > UDP_BATCH_BYTES - b->used) udp_batch_flush(t);
    struct udp_batch_entry *e = &b->e[b->n++];
    e->l = l;
    memcpy(&e->addr, &d->addr, addr_len(&d->addr));
    e->off = b->used;
    e->len = (uint32_t)len;
    memcpy(b->bytes + b->used, data, len);
    b->used += (uint32_t)len;
    return 0;
}

int transport_send(struct transport *t, struct transport_dest *dest, const void *data, size_t len)
{
    if (t->freeing) return UV_ECANCELED;
    if (len == 0 || len > UINT32_MAX) return UV_EINVAL;
    bool has_addr = dest->addr.ss_family == AF_INET || dest->addr.ss_family == AF_INET6;
    if (!has_addr && !(sip_transport_is_stream(dest->proto) && dest->conn_id)) return UV_EAFNOSUPPORT;
    int rc;
    if (dest->proto == SIP_TRANSPORT_UDP) rc = udp_send(t, dest, data, len);
    else if ((unsigned)dest->proto < SIP_TRANSPORT_COUNT) rc = tcp_send(t, dest, data, len);
    else rc = UV_EINVAL;
    if (rc < 0) {
        t->stats.send_errors++;
        char text[TRANSPORT_ADDR_TEXT];
        transport_addr_text(&dest->addr, text, sizeof(text));
        log_warn_rl("%s send to %s failed: %s", transport_name(dest->proto), text, uv_strerror(rc));
        return rc;
    }
    t->stats.messages_out++;
    t->stats.bytes_out += len;
    return 0;
}

int transport_close_conn(struct transport *t, uint64_t conn_id) { return tcp_close_conn(t, conn_id); }

uint32_t transport_udp_rx_queue_pct(const struct transport *t)
{
    uint32_t most = 0;
    for (uint32_t i = 0; t && i < t->listener_count; i++) {
        const struct listener *l = t->listeners[i];
        uv_os_fd_t fd;
        if (l->proto != SIP_TRANSPORT_UDP || uv_fileno(&l->h.handle, &fd) != 0) continue;
        uint32_t mem[SK_MEMINFO_VARS];
        socklen_t len = sizeof(mem);
        if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 || len < sizeof(uint32_t) * (SK_MEMINFO_RCVBUF + 1))
            continue;
        if (mem[SK_MEMINFO_RCVBUF] == 0) continue;
        uint64_t pct = (uint64_t)mem[SK_MEMINFO_RMEM_ALLOC] * 100u / mem[SK_MEMINFO_RCVBUF];
        if (pct > most) most = pct > 100 ? 100 : (uint32_t)pct;
    }
    return most;
}

static bool addr_is_wildcard(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss_family == AF_INET6) return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return true;
}

static bool addr_is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->ss_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return false;
}

const struct listener *transport_bind_listener(const struct transport *t, const struct transport_dest *dest)
{
    const struct listener *pick = NULL;
    if (dest->listener_id && dest->listener_id <= t->listener_count) {
        const struct listener *l = t->listeners[dest->listener_id - 1];
        if (sip_transport_is_stream(l->proto) && l->addr.ss_family == dest->addr.ss_family) pick = l;
    }
    /* The listener of the same transport, else any connection listener, else UDP. */
    for (int round = 0; round < 3 && !pick; round++)
        for (uint32_t i = 0; i < t->listener_count && !pick; i++) {
            const struct listener *l = t->listeners[i];
            bool fits = round == 0   ? l->proto == dest->proto
                        : round == 1 ? sip_transport_is_stream(l->proto)
                                     : l->proto == SIP_TRANSPORT_UDP;
            if (fits && l->addr.ss_family == dest->addr.ss_family) pick = l;
        }
    if (!pick || addr_is_wildcard(&pick->addr)) return NULL; /* the kernel picks by route */
    /* A loopback source cannot reach another host. */
    if (addr_is_loopback(&pick->addr) && !addr_is_loopback(&dest->addr)) return NULL;
    return pick;
}

/* ---- where a response goes (RFC 3261 §18.2.2, RFC 3581 §4) ---- */

static bool host_is_source(str_t host, const struct sockaddr_storage *src);

int transport_response_dest(const struct transport_rx *rx, struct transport_dest *d)
{
    memset(d, 0, sizeof(*d));
    d->proto = rx->proto;
    d->listener_id = rx->listener_id;
    d->addr = rx->src;
    if (sip_transport_is_stream(rx->proto)) d->conn_id = rx->conn_id;
    if (rx->src.ss_family != AF_INET && rx->src.ss_family != AF_INET6) return -1;
    const struct sip_msg *m = rx->msg;
    if (!m || m->via.host.len == 0) return 0; /* nothing better than the source */
    uint16_t sent_by_port = m->via.port ? m->via.port : 5060;
    if (sip_transport_is_stream(rx->proto)) {
        /* The same connection; if it is gone, the received IP and the sent-by port. */
        addr_set_port(&d->addr, sent_by_port);
        return 0;
    }
    /* RFC 3261 §18.2.2 would send to maddr; RFC 3581 §4 (received/rport)
     * wins here: a maddr other than the source would let any client aim our
     * responses, and their retransmissions, at a third party. One equal to
     * the source changes nothing. */
    if (m->via.maddr.len && !host_is_source(m->via.maddr, &rx->src))
        log_info_rl("Via maddr=%.*s from %s ignored: responses go to the source address", STR_FMT(m->via.maddr),
                    rx->src_text);
    if (!m->via.has_rport) addr_set_port(&d->addr, sent_by_port);
    return 0;
}

/* ---- receive path ---- */

/* End of the via-param starting at i: the next ';' outside a quoted string. */
static size_t param_end(str_t s, size_t i)
{
    bool quoted = false;
    for (; i < s.len; i++) {
        char c = s.s[i];
        if (quoted) {
            if (c == '\\' && i + 1 < s.len) i++;
            else if (c == '"') quoted = false;
        } else if (c == '"') {
            quoted = true;
        } else if (c == ';') {
            break;
        }
    }
    return i;
}

static bool host_is_source(str_t host, const struct sockaddr_storage *src)
{
    struct sockaddr_storage a;
    if (transport_addr_parse(host.s, host.len, 0, &a) != 0) return false; /* a domain name */
    return addr_same_ip(&a, src);
}

struct text_out {
    char *p;
    size_t n, cap;
};

static void out_put(struct text_out *o, const char *s, size_t n)
{
    if (o->n + n > o->cap) n = o->cap - o->n; /* cannot happen: cap is computed for the worst case */
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

/* RFC 3261 §18.2.1 and RFC 3581 §4: add received= when the sent-by host is
 * not the source IP (always when the request asked for rport) and fill a
 * bare rport with the source port. The top Via header value is rewritten in
 * the arena so that sip_build_response / sip_print copy the stamped Via. */
static int via_stamp(struct sip_msg *m, arena_t *a, const struct sockaddr_storage *src)
{
    int32_t idx = m->first[SIP_HDR_VIA];
    if (idx < 0 || (uint32_t)idx >= m->header_count) return 0;
    bool fill_rport = m->via.has_rport && m->via.rport == 0;
    if (!fill_rport && host_is_source(m->via.host, src)) return 0;

    char ip[INET6_ADDRSTRLEN];
    if (addr_ip_text(src, ip, sizeof(ip)) == 0) return -1;
    char port[8];
    size_t port_len = port_text(transport_addr_port(src), port);
    size_t ip_len = strlen(ip);

    str_t value = m->headers[idx].value;
    str_t parm = m->via.raw;
    if (parm.len == 0 || parm.s < value.s || parm.s + parm.len > value.s + value.len) {
        str_t cursor = value;
        if (!sip_list_next(&cursor, &parm) || parm.s < value.s || parm.s + parm.len > value.s + value.len)
            return -1;
    }
    struct text_out o = {NULL, 0, value.len + ip_len + (size_t)port_len + 32};
    o.p = arena_alloc(a, o.cap);
    if (!o.p) return -1;
    out_put(&o, value.s, (size_t)(parm.s - value.s));
    size_t parm_start = o.n;
    size_t i = param_end(parm, 0);
    str_t head = str_trim(str_make(parm.s, i));
    out_put(&o, head.s, head.len);
    bool received_done = false;
    while (i < parm.len) {
        size_t start = i + 1;
        i = param_end(parm, start);
        str_t p = str_trim(str_make(parm.s + start, i - start));
        if (p.len == 0) continue;
        const char *eq = memchr(p.s, '=', p.len);
        str_t name = str_trim(str_make(p.s, eq ? (size_t)(eq - p.s) : p.len));
        if (str_ieq_cstr(name, "received")) {
            if (received_done) continue;
            out_put(&o, ";received=", 10);
            out_put(&o, ip, ip_len);
            received_done = true;
        } else if (fill_rport && str_ieq_cstr(name, "rport")) {
            out_put(&o, ";rport=", 7);
            out_put(&o, port, (size_t)port_len);
        } else {
            out_put(&o, ";", 1);
            out_put(&o, p.s, p.len);
        }
    }
    if (!received_done) {
        out_put(&o, ";received=", 10);
        out_put(&o, ip, ip_len);
    }
    size_t parm_len = o.n - parm_start;
    const char *after = parm.s + parm.len;
    out_put(&o, after, (size_t)(value.s + value.len - after));

    struct sip_via v;
    if (sip_via_parse(str_make(o.p + parm_start, parm_len), &v) != 0) return -1;
    m->headers[idx].value = str_make(o.p, o.n);
    m->via = v;
    return 0;
}

static bool looks_like_response(const char *data, size_t len)
{
    return len >= 4 && memcmp(data, "SIP/", 4) == 0;
}

void transport_deliver(struct transport *t, const char *data, size_t len, const struct rx_origin *o)
{
    arena_reset(&t->arena);
    struct sip_msg msg;
    struct sip_parse_error err = {0};
    struct transport_rx rx;
    rx.proto = o->proto;
    rx.src = *o->src;
    memcpy(rx.src_text, o->src_text, sizeof(rx.src_text));
    rx.src_text[sizeof(rx.src_text) - 1] = '\0';
    rx.conn_id = o->conn_id;
    rx.listener_id = o->listener_id;
    rx.local = *o->local;

    if (sip_parse(data, len, &t->arena, &t->limits, &msg, &err) != 0) {
        t->stats.parse_errors++;
        const char *reason = err.reason ? err.reason : "malformed";
        if ((err.can_answer && !msg.is_request) || (!err.can_answer && looks_like_response(data, len))) {
            t->stats.dropped++;
            log_warn_rl("malformed response from %s %s dropped: %s", transport_name(o->proto), o->src_text, reason);
            return;
        }
        if (!err.can_answer) {
            /* Without a usable Via, From, To or CSeq no response can be
             * formed. Over TCP the connection is closed rather than leave
             * the client waiting for an answer that will not come (issue 9). */
            t->stats.dropped++;
            log_warn_rl("malformed request from %s %s dropped (cannot answer): %s%s", transport_name(o->proto),
                     o->src_text, reason, sip_transport_is_stream(o->proto) ? ", closing the connection" : "");
            if (sip_transport_is_stream(o->proto)) tcp_close_conn(t, o->conn_id);
            return;
        }
        log_warn_rl("malformed request from %s %s: %s (answering %d)", transport_name(o->proto), o->src_text, reason,
                 err.status ? err.status : 400);
        if (via_stamp(&msg, &t->arena, o->src) != 0) {
            t->stats.dropped++;
            log_warn_rl("malformed request from %s %s dropped: unusable Via", transport_name(o->proto), o->src_text);
            if (sip_transport_is_stream(o->proto)) tcp_close_conn(t, o->conn_id);
            return;
        }
        rx.msg = &msg;
        rx.parse_error = &err;
        t->stats.messages_in++;
        t->cb.on_message(t->cb.user, &rx);
        return;
    }
    if (msg.is_request && via_stamp(&msg, &t->arena, o->src) != 0) {
        t->stats.dropped++;
        log_warn_rl("%.*s from %s %s dropped: cannot stamp the Via (out of memory or bad Via)", STR_FMT(msg.method_name),
                 transport_name(o->proto), o->src_text);
        return;
    }
    rx.msg = &msg;
    rx.parse_error = NULL;
    t->stats.messages_in++;
    t->cb.on_message(t->cb.user, &rx);
}
