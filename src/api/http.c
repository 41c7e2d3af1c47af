/* http.c — the API server core (see http.h): libwebsockets context and vhost
 * on the daemon's libuv loop, routing with {param} captures, bearer-token
 * checks, request bodies, and the life cycle of a request that may be
 * answered later than the handler call.
 *
 * Life of a request: LWS_CALLBACK_HTTP builds it (path, query, auth, route);
 * a body is collected through HTTP_BODY until HTTP_BODY_COMPLETION; then the
 * handler runs (state PENDING). An answer moves it to ANSWERED and asks lws
 * for a writeable callback, where headers and then the body go out in chunks;
 * the request is freed when the last byte is written. If the connection
 * closes while PENDING, the abort callback runs and the request is freed, or,
 * without one, it stays as an orphan until answered. */
#include "api/http_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "base/log.h"

#define API_ASYNC_TIMEOUT_S 300     /* an unanswered request is dropped by lws after this */
#define API_WRITE_CHUNK 32768
/* lws sends at most this per send() (else rx_buffer_size, 4 KiB here) and
 * buffers the rest with a copy: every answer goes out in one send. */
#define API_TX_PACKET (1u << 20)
#define API_STREAM_IOV 4
#define API_STREAM_TURN_MAX (4u << 20)   /* bytes one stream sends per writeable turn at most */
#define API_STREAM_SNDBUF (128 * 1024)    /* SO_SNDBUF of a streaming answer (the kernel doubles it) */
#define API_MAX_QUERY_ARGS 64
#define API_TEARDOWN_TICK_MS 2
#define API_TEARDOWN_MAX_TICKS 5000
#define API_SWEEP_MS 1000
/* After refusing a request whose body we will not read, read and drop up to
 * this much of the body before closing (a lingering close, RFC 9112 §9.6):
 * closing with unread data sends a reset, and the client may lose our answer
 * while it is still writing. */
#define API_DRAIN_MAX (2 * (uint64_t)API_MAX_BODY)
#define API_DRAIN_TIMEOUT_S 10

/* ---- lws logging into ours ------------------------------------------------ */

/* A request head larger than lws's buffer (API_MAX_HEADERS) makes lws close
 * the connection without an answer and without telling us which connection
 * (no callback before it shuts the socket down; only its log line). To answer
 * 431 anyway, the connections still reading their first request head are
 * listed here by socket (per thread, as lws runs its loop on one); when lws
 * logs the overflow, the listed socket that has delivered a full buffer's
 * worth without a complete head is the one, and gets its 431 at once. A head
 * too large on a later request of a keep-alive connection is still closed
 * without an answer. */
#define API_HEAD_WATCH 256
struct head_watch {
    struct api_server *srv;
    int fd;
};
static _Thread_local struct head_watch head_watch[API_HEAD_WATCH];
static _Thread_local int head_watch_n;

static void head_watch_add(struct api_server *srv, int fd)
{
    if (fd >= 0 && head_watch_n < API_HEAD_WATCH) head_watch[head_watch_n++] = (struct head_watch){srv, fd};
}

static void head_watch_remove(int fd)
{
    for (int i = 0; i < head_watch_n; i++)
        if (head_watch[i].fd == fd) {
            head_watch[i] = head_watch[--head_watch_n];
            return;
        }
}

static void head_watch_forget(struct api_server *srv)
{
    for (int i = 0; i < head_watch_n;)
        if (head_watch[i].srv == srv) head_watch[i] = head_watch[--head_watch_n];
        else i++;
}

/* fd is still a connection to srv's port (not a number reused since). */
static bool head_watch_valid(const struct head_watch *h)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    if (getsockname(h->fd, (struct sockaddr *)&local, &len)) return false;
    int port = local.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&local)->sin6_port)
             : local.ss_family == AF_INET  ? ntohs(((struct sockaddr_in *)&local)->sin_port)
                                           : -1;
    return port == h->srv->port;
}

/* Bytes the application (lws) has read from a TCP socket so far. glibc's
 * struct tcp_info stops before the byte counters of Linux 4.1+ (which
 * <linux/tcp.h> has, but it clashes with <netinet/tcp.h>): they follow it. */
struct api_tcp_info {
    struct tcp_info base;
    uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
};

static int64_t tcp_bytes_read(int fd)
{
    struct api_tcp_info ti;
    socklen_t len = sizeof(ti);
    int inq = 0;
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || len < sizeof(ti)) return -1;
    if (ioctl(fd, SIOCINQ, &inq)) return -1;
    return (int64_t)ti.bytes_received - inq;
}

/* RFC 6585 §5, written on the socket lws is about to close. What the client
 * already sent is read and dropped first (a bounded amount), so that the
 * close is a FIN after which the client reads our answer, not a reset that
 * may destroy it. */
static void head_too_large(struct api_server *srv, int fd)
{
    static const char body[] =
        "{\"error\":\"headers-too-large\",\"detail\":\"the request line and header fields exceed 8 KiB\"}";
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    char remote[64] = "?";
    if (!getpeername(fd, (struct sockaddr *)&peer, &plen)) {
        const void *a = peer.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&peer)->sin6_addr
                                                   : (const void *)&((struct sockaddr_in *)&peer)->sin_addr;
        inet_ntop(peer.ss_family, a, remote, sizeof(remote));
    }
    srv->responses_by_class[4]++;
    api_log_refusal(srv, "api: request from %s refused: 431 headers-too-large", remote);
    char sink[4096];
    for (uint64_t dropped = 0; dropped < API_DRAIN_MAX;) {
        ssize_t r = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (r <= 0) break;
        dropped += (uint64_t)r;
    }
    char answer[512];
    int n = snprintf(answer, sizeof(answer),
                     "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                     "content-length: %zu\r\ncache-control: no-store\r\nconnection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    ssize_t w = send(fd, answer, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;                                      /* best effort: lws closes the connection next */
}

/* lws ran out of header space on some connection of this thread: the one
 * that delivered the most head bytes (lws stores a little more than it
 * reads for unknown fields, so it may have read less than its buffer). */
static void head_overflow(void)
{
    int best = -1;
    int64_t most = API_MAX_HEADERS / 2 - 1;
    for (int i = 0; i < head_watch_n; i++) {
        if (!head_watch_valid(&head_watch[i])) continue;
        int64_t n = tcp_bytes_read(head_watch[i].fd);
        if (n > most) {
            most = n;
            best = i;
        }
    }
    if (best < 0) return;
    struct head_watch h = head_watch[best];
    head_watch_remove(h.fd);
    head_too_large(h.srv, h.fd);
}

static void lws_log_bridge(int level, const char *line)
{
    /* a request target cut at API_MAX_URI: we refuse it with 414 (logged,
     * rate-limited); lws's line per request would be an unlimited echo */
    if (!strncmp(line, "header ", 7) && strstr(line, " exceeds limit ")) return;
    if (!strncmp(line, "Ran out of header data space", 28) || !strncmp(line, "More hdr frags than we can", 26)) {
        head_overflow();                          /* logged with the peer by head_too_large() */
        return;
    }
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    if (level & LLL_ERR) log_error("lws: %.*s", (int)n, line);
    else log_warn("lws: %.*s", (int)n, line);
}

static void lws_logging_once(void) { lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_bridge); }

void api_lws_logging(void)
{
    /* Process-wide in lws: errors and warnings only, through our log. Once,
     * because a client thread (cascadectl, tests) may start lws meanwhile. */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, lws_logging_once);
}

/* ---- small helpers -------------------------------------------------------- */

void api_peer(struct lws *wsi, char *buf, size_t cap)
{
    buf[0] = '\0';
    lws_get_peer_simple(wsi, buf, cap);
    /* IPv4 clients of the dual-stack socket show as ::ffff:a.b.c.d */
    if (!strncmp(buf, "::ffff:", 7) && strchr(buf + 7, '.')) memmove(buf, buf + 7, strlen(buf + 7) + 1);
    if (!buf[0]) snprintf(buf, cap, "?");
}

void api_wake(struct api_server *srv)
{
    /* Changes made to lws state from outside its callbacks (a uv timer, an
     * event published by another module) are acted upon at its next service;
     * poke its event pipe so that happens now. */
    if (!srv->lws_depth && srv->ctx && !srv->closing) lws_cancel_service(srv->ctx);
}

unsigned char *api_scratch(struct api_server *srv, size_t payload)
{
    size_t need = LWS_PRE + payload + 1;
    if (need > srv->scratch_cap) {
        size_t cap = srv->scratch_cap ? srv->scratch_cap : 4096;
        while (cap < need) cap *= 2;
        unsigned char *p = realloc(srv->scratch, cap);
        if (!p) return NULL;
        srv->scratch = p;
        srv->scratch_cap = cap;
    }
    return srv->scratch;
}

int api_check_bearer(const struct api_server *srv, const char *authorization, size_t len)
{
    if (srv->open_access) return 1;
    if (!authorization || len < 7 || strncasecmp(authorization, "Bearer ", 7)) return 0;
    const char *t = authorization + 7, *end = authorization + len;
    while (t < end && *t == ' ') t++;
    /* Every byte of the header counts: "token\0junk" is not the token, so the
     * lengths are compared, never strlen() of what was sent. */
    size_t a = (size_t)(end - t), b = strlen(srv->token);
    /* Constant time over the configured token's length. */
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)((i < a ? t[i] : 0) ^ srv->token[i]);
    return diff == 0;
}

int api_request_authorized(const struct api_server *srv, struct lws *wsi)
{
    char authz[512];
    int al = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (al <= 0 || al >= (int)sizeof(authz)) return api_check_bearer(srv, NULL, 0);
    int n = lws_hdr_copy(wsi, authz, sizeof(authz), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n < 0) return api_check_bearer(srv, NULL, 0);
    return api_check_bearer(srv, authz, (size_t)n);
}

void api_log_refusal(struct api_server *srv, const char *fmt, ...)
{
    /* A flood of bad requests must not flood the log: one rate limit for all
     * of this server's refusals (base/log.h: LOG_RATELIMIT_BURST lines a
     * second; the next line that gets through says how many were left out). */
    if (log_get_level() < LOG_WARN) return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log_write_ratelimited(&srv->refusal_rl, LOG_WARN, "%s", line);
}

bool api_target_too_long(struct lws *wsi)
{
    char *uri = NULL;
    int ulen = 0;
    if (lws_http_get_uri_and_method(wsi, &uri, &ulen) < 0 || !uri) return false;
    /* lws keeps at most API_MAX_URI bytes of each part of the target (token
     * limits): a longer one arrives cut at exactly that length. */
    size_t target = (size_t)ulen;
    for (int i = 0; i < 256; i++) {
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (flen <= 0) break;
        target += (size_t)flen + 1;
    }
    return target >= API_MAX_URI;
}

static const char *method_name(int m)
{
    switch (m) {
    case LWSHUMETH_GET: return "GET";
    case LWSHUMETH_POST: return "POST";
    case LWSHUMETH_OPTIONS: return "OPTIONS";
    case LWSHUMETH_PUT: return "PUT";
    case LWSHUMETH_PATCH: return "PATCH";
    case LWSHUMETH_DELETE: return "DELETE";
    case LWSHUMETH_HEAD: return "HEAD";
    default: return NULL;
    }
}

/* ---- requests ------------------------------------------------------------- */

static struct api_request *request_new(struct api_server *srv, struct lws *wsi, struct api_session *ss)
{
    struct api_request *req = calloc(1, sizeof(*req));
    if (!req) return NULL;
    req->srv = srv;
    req->wsi = wsi;
    req->session = ss;
    req->state = API_REQ_BODY;
    arena_init(&req->arena, NULL, 0);
    req->arena.limit = 256 * 1024;
    req->next = srv->requests;
    if (srv->requests) srv->requests->prev = req;
    srv->requests = req;
    ss->req = req;
    return req;
}

static void request_free(struct api_request *req)
{
    struct api_server *srv = req->srv;
    /* A streaming answer's owner learns that the request is gone (the client
     * left, HEAD, the server stops) unless it ended the body itself. */
    if (req->stream && req->stream->gone) req->stream->gone(req->stream_arg);
    if (req->stream_ready) {
        struct api_request **pp = &srv->ready;
        while (*pp && *pp != req) pp = &(*pp)->ready_next;
        if (*pp) *pp = req->ready_next;
    }
    if (req->prev) req->prev->next = req->next;
    else srv->requests = req->next;
    if (req->next) req->next->prev = req->prev;
    if (req->session) req->session->req = NULL;
    arena_free(&req->arena);
    free(req->query);
    free(req->body_buf);
    json_decref(req->json);
    free(req->resp);
    free(req);
}

static int answer(struct api_request *req, int status, const char *content_type, char *owned, size_t len)
{
    if (req->state == API_REQ_ANSWERED) {
        log_error("api: %s %s answered twice (second answer %d dropped)", req->method, req->path, status);
        free(owned);
        return -1;
    }
    if (req->state == API_REQ_ABORTING) {      /* the abort callback answered: nobody to send to */
        free(owned);
        return 0;
    }
    if (status < 100 || status > 599) status = 500;
    req->state = API_REQ_ANSWERED;
    req->status = status;
    snprintf(req->content_type, sizeof(req->content_type), "%s", content_type);
    req->resp = owned;
    req->resp_len = len;
    req->srv->responses_by_class[status / 100]++;
    /* rate-limited: a storm of 503s (a full room, overload) must not flood the log */
    if (status >= 500)
        api_log_refusal(req->srv, "api: %s %.200s from %s -> %d", req->method, req->path, req->remote, status);
    else log_debug("api: %s %s from %s -> %d", req->method, req->path, req->remote, status);
    if (!req->wsi) {                           /* client left earlier: discard */
        request_free(req);
        return 0;
    }
    lws_set_timeout(req->wsi, NO_PENDING_TIMEOUT, 0);
    if (req->rx_paused) {
        /* lws does not run writeable callbacks on a flow-controlled h1 wsi */
        lws_rx_flow_control(req->wsi, 1);
        req->rx_paused = false;
    }
    lws_callback_on_writable(req->wsi);
    api_wake(req->srv);
    return 0;
}

int api_reply_stream(struct api_request *req, int status, const char *content_type,
                     const struct api_stream_ops *ops, void *arg)
{
    if (req->state == API_REQ_PENDING || req->state == API_REQ_BODY) {
        req->stream = ops;
        req->stream_arg = arg;
        req->close_after = true; /* no length: the body ends with the connection */
    }
    return answer(req, status, content_type, NULL, 0);
}

/* The direct path (plain HTTP/1.1, see api_stream_ops.peek): send what the
 * owner has, straight from its buffer, until the socket is full or nothing
 * is left. lws calls our writeable callback only once its own buffered
 * output (the headers) is flushed, so nothing of lws's is behind us. */
enum stream_flush_rc { FLUSH_IDLE, FLUSH_FULL, FLUSH_END, FLUSH_ERR };

static enum stream_flush_rc stream_flush(struct api_server *srv, struct api_request *req)
{
    int fd = lws_get_socket_fd(req->wsi);
    if (fd < 0) return FLUSH_ERR;
    size_t budget = API_STREAM_TURN_MAX;
    for (;;) {
        struct iovec iov[API_STREAM_IOV];
        int k = req->stream->peek(req->stream_arg, iov, API_STREAM_IOV);
        if (k < 0) return FLUSH_END;
        if (k == 0) return FLUSH_IDLE;
        size_t want = 0;
        for (int i = 0; i < k; i++) want += iov[i].iov_len;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
        ssize_t n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                srv->stream_full++;
                return FLUSH_FULL;
            }
            return FLUSH_ERR;
        }
        srv->stream_sends++;
        srv->stream_send_bytes += (uint64_t)n;
        req->stream->consume(req->stream_arg, (size_t)n);
        if ((size_t)n < want) {
            srv->stream_full++;
            return FLUSH_FULL;
        }
        /* One connection does not hold the loop for long: the rest waits
         * for its next writeable callback. */
        if ((size_t)n >= budget) return FLUSH_FULL;
        budget -= (size_t)n;
    }
}

/* After the poll phase of a loop turn: every stream woken in it, once. */
static void ready_check_cb(uv_check_t *h)
{
    struct api_server *srv = h->data;
    bool poke = false;
    while (srv->ready) {
        struct api_request *req = srv->ready;
        srv->ready = req->ready_next;
        req->ready_next = NULL;
        req->stream_ready = false;
        if (!req->wsi || !req->stream || req->stream_end) continue;
        enum stream_flush_rc rc = stream_flush(srv, req);
        if (rc == FLUSH_IDLE) continue;
        if (rc == FLUSH_END) {
            req->stream = NULL; /* the owner ended it: no gone(); the writeable callback closes */
            req->stream_end = true;
        }
        /* Full: the rest when the socket drains. A dead socket: its
         * writeable (or hang-up) callback closes it. */
        lws_callback_on_writable(req->wsi);
        poke = true;
    }
    uv_check_stop(h);
    if (poke) api_wake(srv);
}

void api_stream_wake(struct api_request *req)
{
    if (!req || !req->wsi || !req->stream || req->state != API_REQ_ANSWERED) return;
    struct api_server *srv = req->srv;
    if (req->stream_direct && srv->ready_check_init && !srv->closing) {
        /* Coalesced: one flush per stream after this loop turn, however many
         * wakes came, and no lws round trip when the socket takes it all. */
        if (!req->stream_ready) {
            req->stream_ready = true;
            req->ready_next = srv->ready;
            srv->ready = req;
            if (!uv_is_active((uv_handle_t *)&srv->ready_check)) uv_check_start(&srv->ready_check, ready_check_cb);
        }
        return;
    }
    lws_callback_on_writable(req->wsi);
    api_wake(srv);
}

/* The next piece of a streaming body: 0 to wait for more (or after writing
 * one piece: the next writeable callback asks again), -1 to close. */
static int stream_writeable(struct api_server *srv, struct lws *wsi, struct api_request *req)
{
    if (req->stream_end) {
        request_free(req);
        return -1;
    }
    if (!req->stream_direct && req->stream->peek && req->stream->consume && !lws_is_ssl(wsi) &&
        lws_get_network_wsi(wsi) == wsi) {
        req->stream_direct = true;
        /* A bounded kernel buffer: what a slow viewer cannot take stays in
         * the owner's buffer, where it can skip whole frames, rather than
         * seconds of it queuing unseen in the socket (on loopback the
         * kernel's own sizing starts at megabytes). */
        int sb = API_STREAM_SNDBUF;
        (void)setsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
    }
    if (req->stream_direct) {
        switch (stream_flush(srv, req)) {
        case FLUSH_IDLE: return 0;
        case FLUSH_FULL: lws_callback_on_writable(wsi); return 0;
        case FLUSH_END:
            req->stream = NULL; /* the owner ended it: no gone() */
            request_free(req);
            return -1;
        case FLUSH_ERR: return -1;
        }
    }
    unsigned char *buf = api_scratch(srv, API_WRITE_CHUNK);
    if (!buf) return -1;
    long n = req->stream->pull(req->stream_arg, buf + LWS_PRE, API_WRITE_CHUNK);
    if (n < 0) {
        req->stream = NULL; /* the owner ended it: no gone() */
        request_free(req);
        return -1;
    }
    if (n == 0) return 0;
    if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP) < (int)n) return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

int api_reply_bytes(struct api_request *req, int status, const char *content_type, const char *data, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) {
        log_error("api: out of memory answering %s %s", req->method, req->path);
        return answer(req, 500, "application/json", NULL, 0);
    }
    if (len) memcpy(copy, data, len);
    copy[len] = '\0';
    return answer(req, status, content_type, copy, len);
}

int api_reply_text(struct api_request *req, int status, const char *content_type, const char *text)
{
    return api_reply_bytes(req, status, content_type, text, strlen(text));
}

int api_reply_json(struct api_request *req, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    json_decref(body);
    if (!text) {
        log_error("api: %s %s: answer could not be serialized", req->method, req->path);
        return answer(req, 500, "application/json",
                      strdup("{\"error\":\"internal\",\"detail\":\"answer could not be serialized\"}"),
                      strlen("{\"error\":\"internal\",\"detail\":\"answer could not be serialized\"}"));
    }
    return answer(req, status, "application/json", text, strlen(text));
}

int api_reply_error(struct api_request *req, int status, const char *code, const char *detail_fmt, ...)
{
    char detail[512] = "";
    if (detail_fmt) {
        va_list ap;
        va_start(ap, detail_fmt);
        vsnprintf(detail, sizeof(detail), detail_fmt, ap);
        va_end(ap);
    }
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(code ? code : "error"));
    /* json_string refuses invalid UTF-8: fall back to a lossless-enough hint */
    json_t *d = json_string(detail);
    json_object_set_new(o, "detail", d ? d : json_string("(detail not valid UTF-8)"));
    return api_reply_json(req, status, o);
}

const char *api_method(const struct api_request *req) { return req->method; }
const char *api_path(const struct api_request *req) { return req->path; }
const char *api_remote(const struct api_request *req) { return req->remote; }
json_t *api_body(const struct api_request *req) { return req->json; }

const char *api_body_raw(const struct api_request *req, size_t *len)
{
    bool have = req->body_buf && req->state != API_REQ_BODY;
    if (len) *len = have ? req->body_len : 0;
    return have ? req->body_buf : NULL;
}

/* A copy of header token t of the request in the arena; NULL when absent. */
static const char *header_copy(struct api_request *req, int t)
{
    int len = lws_hdr_total_length(req->wsi, (enum lws_token_indexes)t);
    if (len <= 0) return NULL;
    char *v = arena_alloc(&req->arena, (size_t)len + 1);
    if (!v || lws_hdr_copy(req->wsi, v, len + 1, (enum lws_token_indexes)t) < 0) return NULL;
    return v;
}

const char *api_header(struct api_request *req, const char *name)
{
    size_t nl = name ? strlen(name) : 0;
    if (!req->wsi || !nl || nl > 64 || req->state == API_REQ_ANSWERED || req->state == API_REQ_ABORTING)
        return NULL;
    /* lws names its tokens in lower case with the colon: "content-type:" */
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        const char *tn = (const char *)lws_token_to_string((enum lws_token_indexes)t);
        if (tn && strlen(tn) == nl + 1 && tn[nl] == ':' && !strncasecmp(tn, name, nl)) return header_copy(req, t);
    }
#if defined(LWS_WITH_CUSTOM_HEADERS)
    char lname[72];
    for (size_t i = 0; i < nl; i++) lname[i] = (char)tolower((unsigned char)name[i]);
    lname[nl] = ':';
    lname[nl + 1] = '\0';
    int len = lws_hdr_custom_length(req->wsi, lname, (int)nl + 1);
    if (len < 0) return NULL;
    char *v = arena_alloc(&req->arena, (size_t)len + 1);
    if (!v || lws_hdr_custom_copy(req->wsi, v, len + 1, lname, (int)nl + 1) < 0) return NULL;
    v[len] = '\0';
    return v;
#else
    return NULL;
#endif
}

int api_add_header(struct api_request *req, const char *name, const char *value)
{
    if (req->state == API_REQ_ANSWERED || req->nextra >= API_MAX_EXTRA_HEADERS || !name || !value || !name[0] ||
        strlen(name) > 64 || strpbrk(name, "\r\n: ") || strlen(value) > 1024 || strpbrk(value, "\r\n")) {
        log_error("api: %s %s: header %s not added", req->method, req->path, name ? name : "?");
        return -1;
    }
    /* lws writes the name as given: keep the colon it wants at the end */
    str_t n = arena_printf(&req->arena, "%s:", name);
    str_t v = arena_strdup(&req->arena, str_from_cstr(value));
    if (!n.s || !v.s) return -1;
    req->extra[req->nextra++] = (struct api_kv){n.s, v.s};
    return 0;
}
struct api_server *api_request_server(const struct api_request *req) { return req->srv; }

const char *api_param(const struct api_request *req, const char *name)
{
    for (int i = 0; i < req->nparams; i++)
        if (!strcmp(req->params[i].name, name)) return req->params[i].value;
    return NULL;
}

const char *api_query(const struct api_request *req, const char *name)
{
    for (int i = 0; i < req->nquery; i++)
        if (!strcmp(req->query[i].name, name)) return req->query[i].value;
    return NULL;
}

void api_log_refused(struct api_request *req, int status, const char *code)
{
    api_log_refusal(req->srv, "api: %s %.200s from %s refused: %d %s", req->method, req->path, req->remote, status,
                    code);
}

void api_on_abort(struct api_request *req, api_abort_cb cb, void *arg)
{
    req->abort_cb = cb;
    req->abort_arg = arg;
}

/* The connection is going away: see the life cycle at the top of the file. */
static void detach_request(struct api_session *ss)
{
    struct api_request *req = ss ? ss->req : NULL;
    if (!req) return;
    ss->req = NULL;
    req->session = NULL;
    req->wsi = NULL;
    if (req->state != API_REQ_PENDING) {
        request_free(req);
        return;
    }
    log_info("api: %s %s: client %s went away before the answer", req->method, req->path, req->remote);
    if (req->abort_cb) {
        req->state = API_REQ_ABORTING;
        req->abort_cb(req, req->abort_arg);
        request_free(req);
    }
    /* else: an orphan, freed by its answer */
}

/* Every API_SWEEP_MS: a peer of a request waiting for its answer that has
 * closed (EOF or error when peeking) gets its connection killed, so that the
 * abort callback runs now rather than when the answer finally comes. */
static void sweep_tick(uv_timer_t *t)
{
    struct api_server *srv = t->data;
    bool killed = false;
    for (struct api_request *req = srv->requests; req; req = req->next) {
        if (req->state != API_REQ_PENDING || !req->wsi || req->killing) continue;
        int fd = lws_get_socket_fd(req->wsi);
        if (fd < 0) continue;
        char c;
        ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) continue;
        req->killing = true;
        lws_set_timeout(req->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        killed = true;
    }
    if (killed) api_wake(srv);
}

/* ---- routing -------------------------------------------------------------- */

static int split_path(char *p, const char **seg, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *s = strtok_r(p, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (n == max) return -1;
        seg[n++] = s;
    }
    return n;
}

int api_route(struct api_server *srv, const char *method, const char *pattern, api_handler handler, void *user)
{
    return api_route_ex(srv, method, pattern, handler, user, 0);
}

int api_route_ex(struct api_server *srv, const char *method, const char *pattern, api_handler handler, void *user,
                 unsigned flags)
{
    if (!method || !pattern || pattern[0] != '/' || !handler || strlen(method) >= sizeof(srv->routes[0].method)) {
        log_error("api: bad route %s %s", method ? method : "?", pattern ? pattern : "?");
        return -1;
    }
    struct api_route_entry r = {0};
    snprintf(r.method, sizeof(r.method), "%s", method);
    r.pattern = strdup(pattern);
    r.segs_mem = strdup(pattern);
    if (!r.pattern || !r.segs_mem) goto oom;
    r.nseg = split_path(r.segs_mem, r.seg, API_MAX_SEGMENTS);
    if (r.nseg < 0) {
        log_error("api: route %s %s has more than %d segments", method, pattern, API_MAX_SEGMENTS);
        goto fail;
    }
    int nparams = 0;
    for (int i = 0; i < r.nseg; i++) {
        size_t l = strlen(r.seg[i]);
        if (r.seg[i][0] == '{') {
            if (l < 3 || r.seg[i][l - 1] != '}') {
                log_error("api: route %s %s: bad capture '%s'", method, pattern, r.seg[i]);
                goto fail;
            }
            ((char *)r.seg[i])[l - 1] = '\0';
            r.seg[i]++;
            r.is_param[i] = true;
            if (++nparams > API_MAX_PARAMS) {
                log_error("api: route %s %s has too many captures", method, pattern);
                goto fail;
            }
        }
    }
    for (int i = 0; i < srv->nroutes; i++) {
        const struct api_route_entry *o = &srv->routes[i];
        if (strcmp(o->method, r.method) || o->nseg != r.nseg) continue;
        int same = 1;
        for (int k = 0; k < r.nseg && same; k++)
            same = o->is_param[k] == r.is_param[k] && (r.is_param[k] || !strcmp(o->seg[k], r.seg[k]));
        if (same) {
            log_error("api: route %s %s registered twice (first: %s)", method, pattern, o->pattern);
            goto fail;
        }
    }
    if (srv->nroutes == srv->routes_cap) {
        int cap = srv->routes_cap ? srv->routes_cap * 2 : 32;
        struct api_route_entry *n = realloc(srv->routes, (size_t)cap * sizeof(*n));
        if (!n) goto oom;
        srv->routes = n;
        srv->routes_cap = cap;
    }
    r.handler = handler;
    r.user = user;
    r.public_route = (!strcmp(method, "GET") && !strcmp(pattern, "/metrics")) || (flags & API_ROUTE_PUBLIC);
    r.flags = flags;
    srv->routes[srv->nroutes++] = r;
    return 0;
oom:
    log_error("api: out of memory adding route %s %s", method, pattern);
fail:
    free(r.pattern);
    free(r.segs_mem);
    return -1;
}

/* Finds the route for (method, path). On a path match with another method,
 * returns NULL and lists the allowed methods in allow. *cors: some route of
 * the path (any method) is API_ROUTE_CORS. */
static const struct api_route_entry *match_route(struct api_server *srv, struct api_request *req, char *allow,
                                                 size_t allowcap, bool *cors)
{
    *cors = false;
    char buf[API_MAX_URI + 1];
    const char *seg[API_MAX_SEGMENTS];
    allow[0] = '\0';
    if (strlen(req->path) >= sizeof(buf)) return NULL;
    strcpy(buf, req->path);
    int n = split_path(buf, seg, API_MAX_SEGMENTS);
    if (n < 0) return NULL;
    const struct api_route_entry *best = NULL;
    uint32_t best_score = 0;
    for (int i = 0; i < srv->nroutes; i++) {
        const struct api_route_entry *r = &srv->routes[i];
        if (r->nseg != n) continue;
        uint32_t score = 0;
        int k;
        for (k = 0; k < n; k++) {
            if (r->is_param[k]) score <<= 1;
            else if (!strcmp(r->seg[k], seg[k])) score = (score << 1) | 1;
            else break;
        }
        if (k < n) continue;
        if (r->flags & API_ROUTE_CORS) *cors = true;
        if (strcmp(r->method, req->method)) {
            if (!strstr(allow, r->method)) {
                size_t l = strlen(allow);
                snprintf(allow + l, allowcap - l, "%s%s", l ? ", " : "", r->method);
            }
            continue;
        }
        if (!best || score > best_score) {
            best = r;
            best_score = score;
        }
    }
    if (!best) return NULL;
    req->nparams = 0;
    for (int k = 0; k < n; k++) {
        if (!best->is_param[k]) continue;
        str_t v = arena_strdup(&req->arena, str_from_cstr(seg[k]));
        if (!v.s) return NULL;
        req->params[req->nparams++] = (struct api_kv){best->seg[k], v.s};
    }
    return best;
}

/* ---- the HTTP side of the lws callback ------------------------------------ */

static int refuse(struct api_request *req, int status, const char *code, const char *detail)
{
    api_log_refusal(req->srv, "api: %s %.200s from %s refused: %d %s", req->method, req->path, req->remote, status,
                    code);
    if (req->content_length) {
        /* The body will not be read: close after the answer, but first drop
         * what the client is still sending (see API_DRAIN_MAX). */
        req->close_after = true;
        if (req->session && req->declared_length)
            req->session->drain_left =
                req->declared_length < API_DRAIN_MAX ? req->declared_length : API_DRAIN_MAX;
    }
    return api_reply_error(req, status, code, "%s", detail);
}

/* A CORS preflight (Fetch standard §3.2.2): browsers send it without
 * credentials, so it is answered before the token check, and says which
 * methods and request headers the real request may use. */
static int preflight(struct api_request *req, const char *allow)
{
    str_t methods = arena_printf(&req->arena, "%s%sOPTIONS", allow, allow[0] ? ", " : "");
    if (!methods.s) return refuse(req, 500, "internal", "out of memory");
    if (req->content_length) req->close_after = true;   /* a preflight has no body: do not read one */
    api_add_header(req, "Access-Control-Allow-Methods", methods.s);
    api_add_header(req, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    api_add_header(req, "Access-Control-Max-Age", "600");
    return api_reply_bytes(req, 204, "", "", 0) ? -1 : 0;
}

static void dispatch(struct api_request *req)
{
    req->state = API_REQ_PENDING;
    req->handler(req, req->handler_user);
    /* req is still allocated here: answers are written (and freed) later. */
    if (req->state == API_REQ_PENDING && req->wsi) {
        /* While we wait, lws would spin on a readable socket it does not
         * read (a closed peer stays readable): stop reading until the answer,
         * and let the liveness sweep notice a peer that hung up. */
        lws_set_timeout(req->wsi, PENDING_TIMEOUT_USER_OK, API_ASYNC_TIMEOUT_S);
        lws_rx_flow_control(req->wsi, 0);
        req->rx_paused = true;
    }
}

static int parse_query(struct api_request *req, struct lws *wsi)
{
    for (int i = 0; i < API_MAX_QUERY_ARGS; i++) {
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (flen <= 0) break;
        char *frag = arena_alloc(&req->arena, (size_t)flen + 1);
        if (!frag) return -1;
        if (lws_hdr_copy_fragment(wsi, frag, flen + 1, WSI_TOKEN_HTTP_URI_ARGS, i) < 0) break;
        if (req->nquery % 8 == 0) {
            struct api_kv *n = realloc(req->query, (size_t)(req->nquery + 8) * sizeof(*n));
            if (!n) return -1;
            req->query = n;
        }
        char *eq = strchr(frag, '=');
        if (eq) *eq = '\0';
        req->query[req->nquery++] = (struct api_kv){frag, eq ? eq + 1 : ""};
    }
    return 0;
}

static int on_http(struct api_server *srv, struct lws *wsi, struct api_session *ss)
{
    if (!ss || srv->closing) return -1;
    if (ss->req) {
        char remote[64];
        api_peer(wsi, remote, sizeof(remote));
        api_log_refusal(srv, "api: request from %s while the previous one on the connection is unanswered; closing",
                        remote);
        return -1;
    }
    struct api_request *req = request_new(srv, wsi, ss);
    if (!req) return -1;
    srv->requests_total++;
    api_peer(wsi, req->remote, sizeof(req->remote));

    char *uri = NULL;
    int ulen = 0;
    int m = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    const char *mname = method_name(m);
    if (mname && !strcmp(mname, "HEAD")) {
        /* RFC 9110 §9.3.2: the GET answer's headers without its content */
        req->head_only = true;
        mname = "GET";
    }
    snprintf(req->method, sizeof(req->method), "%s", mname ? mname : "?");
    str_t path = arena_strdup(&req->arena, str_make(uri ? uri : "/", uri ? (size_t)ulen : 1));
    if (!path.s || parse_query(req, wsi)) {
        req->path = "?";
        return refuse(req, 500, "internal", "out of memory");
    }
    req->path = path.s;

    if (api_target_too_long(wsi)) {
        /* RFC 9110 §15.5.15: say why, then close (the rest of the target
         * was skipped, and what follows on the wire is not worth parsing) */
        req->close_after = true;
        return refuse(req, 414, "uri-too-long", "the request target is 4 KiB or longer");
    }

    char clen[32] = "";
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
        lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        uint64_t cl;
        if (str_to_u64(str_trim(str_from_cstr(clen)), UINT64_MAX, &cl)) {
            req->content_length = 1;   /* unknown size: do not keep the connection */
            return refuse(req, 400, "bad-request", "Content-Length is not a number");
        }
        req->content_length = cl > (uint64_t)API_MAX_BODY + 1 ? (size_t)API_MAX_BODY + 1 : (size_t)cl;
        req->declared_length = cl;
    }

    char allow[64];
    bool cors = false;
    const struct api_route_entry *route = mname ? match_route(srv, req, allow, sizeof(allow), &cors) : NULL;
    req->cors = cors;
    if (route) {
        /* copied: the route table may grow (realloc) while a body arrives */
        req->handler = route->handler;
        req->handler_user = route->user;
        req->route_flags = route->flags;
    }
    if (!route && cors && !strcmp(req->method, "OPTIONS")) return preflight(req, allow);
    if (!(route && route->public_route)) {
        if (!api_request_authorized(srv, wsi)) {
            req->allow = "Bearer";   /* sent as WWW-Authenticate */
            return refuse(req, 401, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required");
        }
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        req->content_length = 1;
        return refuse(req, 411, "length-required", "send the body with Content-Length, not chunked");
    }
    if (req->content_length > API_MAX_BODY)
        return refuse(req, 413, "too-large", "the request body exceeds 1 MiB");
    if (!route) {
        if (allow[0]) {
            req->allow = arena_strdup(&req->arena, str_from_cstr(allow)).s;
            return refuse(req, 405, "method-not-allowed", "this path does not take that method");
        }
        return refuse(req, 404, "not-found", "no such route");
    }
    if (req->content_length) {
        req->body_buf = malloc(req->content_length + 1);
        if (!req->body_buf) return refuse(req, 500, "internal", "out of memory");
        return 0;                                  /* wait for the body */
    }
    dispatch(req);
    return 0;
}

/* A refused request's body is read and dropped; once the answer is out and
 * enough was dropped, the connection closes. */
static int drain(struct api_session *ss, size_t len, bool complete)
{
    if (complete || len >= ss->drain_left) ss->drain_left = 0;
    else ss->drain_left -= len;
    return ss->drain_left == 0 && ss->drain_answered ? -1 : 0;
}

static int on_body(struct api_session *ss, const void *in, size_t len)
{
    if (ss && (ss->drain_left || ss->drain_answered)) return drain(ss, len, false);
    struct api_request *req = ss ? ss->req : NULL;
    if (!req || req->state != API_REQ_BODY || !req->body_buf) return 0;   /* refused: discard */
    if (len > req->content_length - req->body_len) len = req->content_length - req->body_len;
    memcpy(req->body_buf + req->body_len, in, len);
    req->body_len += len;
    return 0;
}

static int on_body_done(struct api_session *ss)
{
    if (ss && (ss->drain_left || ss->drain_answered)) return drain(ss, 0, true);
    struct api_request *req = ss ? ss->req : NULL;
    if (!req || req->state != API_REQ_BODY || !req->body_buf) return 0;
    req->body_buf[req->body_len] = '\0';      /* allocated content_length + 1 */
    size_t n = (req->route_flags & API_ROUTE_RAW_BODY) ? 0 : req->body_len;
    while (n && (req->body_buf[n - 1] == ' ' || req->body_buf[n - 1] == '\n' || req->body_buf[n - 1] == '\r' ||
                 req->body_buf[n - 1] == '\t'))
        n--;
    if (n) {
        json_error_t jerr;
        req->json = json_loadb(req->body_buf, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!req->json) {
            api_log_refusal(req->srv, "api: %s %.200s from %s: body is not JSON (%s)", req->method, req->path,
                            req->remote, jerr.text);
            return api_reply_error(req, 400, "bad-json", "body is not JSON: %s (line %d, column %d)", jerr.text,
                                   jerr.line, jerr.column) ? -1 : 0;
        }
    }
    /* body_buf stays for api_body_raw until the request is freed */
    dispatch(req);
    return 0;
}

/* On every answer of a cross-origin route: any origin may read it (the
 * token, not the origin, is the credential) and see where a WHIP/WHEP
 * session lives. */
static int add_cors_headers(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    static const char *const h[][2] = {
        {"access-control-allow-origin:", "*"},
        {"access-control-expose-headers:", "Location"},
    };
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)h[i][0], (const unsigned char *)h[i][1],
                                        (int)strlen(h[i][1]), p, end))
            return -1;
    return 0;
}

/* On every answer (the console's pages and the JSON alike): scripts only
 * from this origin and none inline, no framing, no type sniffing, no
 * Referer carrying URLs elsewhere. */
static int add_security_headers(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    static const char *const h[][2] = {
        {"content-security-policy:",
         "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
         "img-src 'self' data: blob:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
         "form-action 'self'; frame-ancestors 'none'"},
        {"x-frame-options:", "DENY"},
        {"x-content-type-options:", "nosniff"},
        {"referrer-policy:", "no-referrer"},
    };
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)h[i][0], (const unsigned char *)h[i][1],
                                        (int)strlen(h[i][1]), p, end))
            return -1;
    return 0;
}

static int on_http_writeable(struct api_server *srv, struct lws *wsi, struct api_session *ss)
{
    struct api_request *req = ss ? ss->req : NULL;
    if (!req || req->state != API_REQ_ANSWERED) return 0;
    if (!req->headers_sent) {
        size_t room = 2048;                    /* the fixed headers, and the extra ones on top */
        for (int i = 0; i < req->nextra; i++) room += strlen(req->extra[i].name) + strlen(req->extra[i].value) + 4;
        unsigned char *buf = api_scratch(srv, room);
        if (!buf) return -1;
        unsigned char *start = buf + LWS_PRE, *p = start, *end = start + room;
        bool own_cache = false;   /* a handler's Cache-Control replaces no-store (console files) */
        for (int i = 0; i < req->nextra; i++) own_cache |= !strcasecmp(req->extra[i].name, "cache-control:");
        lws_filepos_t length = req->stream ? LWS_ILLEGAL_HTTP_CONTENT_LEN : req->resp_len;
        if (lws_add_http_common_headers(wsi, (unsigned int)req->status,
                                        req->content_type[0] ? req->content_type : NULL, length, &p, end) ||
            (!own_cache && lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                                       (const unsigned char *)"no-store", 8, &p, end)) ||
            add_security_headers(wsi, &p, end))
            return -1;
        if (req->allow) {
            const char *name = req->status == 401 ? "www-authenticate:" : "allow:";
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)req->allow,
                                            (int)strlen(req->allow), &p, end))
                return -1;
        }
        /* HTTP/2 (TLS with ALPN h2) has no Connection header: lws refuses
         * it, and the stream ends with the body there anyway. */
        if (req->close_after && lws_get_network_wsi(wsi) == wsi &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end))
            return -1;
        if (req->cors && add_cors_headers(wsi, &p, end)) return -1;
        for (int i = 0; i < req->nextra; i++)
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)req->extra[i].name,
                                            (const unsigned char *)req->extra[i].value,
                                            (int)strlen(req->extra[i].value), &p, end))
                return -1;
        if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
        req->headers_sent = true;
        if (req->stream && !req->head_only) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        if (req->resp_len && !req->head_only) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    } else if (req->stream || req->stream_end) {
        return stream_writeable(srv, wsi, req);
    } else {
        size_t n = req->resp_len - req->resp_off;
        if (n > API_WRITE_CHUNK) n = API_WRITE_CHUNK;
        unsigned char *buf = api_scratch(srv, n);
        if (!buf) return -1;
        memcpy(buf + LWS_PRE, req->resp + req->resp_off, n);
        bool last = req->resp_off + n == req->resp_len;
        if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n) return -1;
        req->resp_off += n;
        if (!last) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    bool close_after = req->close_after;
    request_free(req);
    if (close_after && ss->drain_left) {
        /* the rest of the body is still coming: drop it, then close */
        ss->drain_answered = true;
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, API_DRAIN_TIMEOUT_S);
        return 0;
    }
    if (close_after) return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int dispatch_callback(struct api_server *srv, struct lws *wsi, enum lws_callback_reasons reason,
                             struct api_session *ss, void *user, void *in, size_t len);

static int api_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct api_session *ss = user;
    struct lws_context *ctx = lws_get_context(wsi);
    struct api_server *srv = ctx ? lws_context_user(ctx) : NULL;
    if (!srv) return lws_callback_http_dummy(wsi, reason, user, in, len);
    srv->lws_depth++;
    int rc = dispatch_callback(srv, wsi, reason, ss, user, in, len);
    srv->lws_depth--;
    return rc;
}

static int dispatch_callback(struct api_server *srv, struct lws *wsi, enum lws_callback_reasons reason,
                             struct api_session *ss, void *user, void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        head_watch_remove(lws_get_socket_fd(wsi));
        return on_http(srv, wsi, ss);
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(ss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return on_body_done(ss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_http_writeable(srv, wsi, ss);
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        head_watch_add(srv, (int)(lws_intptr_t)in);   /* a new connection: its first head is coming */
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        head_watch_remove(lws_get_socket_fd(wsi));
        detach_request(ss);
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        head_watch_remove(lws_get_socket_fd(wsi));
        int r = api_rooms_ws_filter(srv, wsi, ss);
        return r == API_WS_NOT_MINE ? api_ws_filter(srv, wsi, ss) : r;
    }
    case LWS_CALLBACK_ESTABLISHED:
        if (ss && ss->rws) return api_rooms_ws_established(srv, wsi, ss);
        return api_ws_established(srv, wsi, ss);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (ss && ss->rws) return api_rooms_ws_writeable(srv, wsi, ss);
        return api_ws_writeable(srv, wsi, ss);
    case LWS_CALLBACK_RECEIVE:
        if (ss && ss->rws) return api_rooms_ws_receive(srv, wsi, ss, in, len);
        return 0;                                  /* the event stream is one-way; ignore client text */
    case LWS_CALLBACK_CLOSED:
        api_rooms_ws_closed(srv, ss);
        api_ws_closed(srv, ss);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        head_watch_remove(lws_get_socket_fd(wsi));
        /* Last word on a connection: whatever CLOSED* did not release. */
        detach_request(ss);
        api_rooms_ws_closed(srv, ss);
        api_ws_closed(srv, ss);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- built-in routes ------------------------------------------------------ */

json_t *api_stats_object(struct api_server *srv)
{
    json_t *o = json_object();
    if (!o) return NULL;
    for (int i = 0; i < srv->nstats; i++) srv->stats[i].fn(o, srv->stats[i].arg);
    if (srv->bus) json_object_set_new(o, "events", json_integer((json_int_t)event_bus_published(srv->bus)));
    json_t *api = json_object();
    json_object_set_new(api, "requests", json_integer((json_int_t)srv->requests_total));
    json_object_set_new(api, "ws_clients", json_integer(srv->nws));
    /* streaming bodies (HTTP-FLV) sent without a copy: send calls, bytes,
     * and times a socket took less than offered */
    json_object_set_new(api, "stream_sends", json_integer((json_int_t)srv->stream_sends));
    json_object_set_new(api, "stream_bytes", json_integer((json_int_t)srv->stream_send_bytes));
    json_object_set_new(api, "stream_socket_full", json_integer((json_int_t)srv->stream_full));
    json_object_set_new(o, "api", api);
    return o;
}

static void stats_route(struct api_request *req, void *user)
{
    json_t *o = api_stats_object(user);
    if (!o) {
        api_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    api_reply_json(req, 200, o);
}

int api_stats_provider(struct api_server *srv, api_stats_fn fn, void *arg)
{
    if (srv->nstats == srv->stats_cap) {
        int cap = srv->stats_cap ? srv->stats_cap * 2 : 8;
        struct api_stats_entry *n = realloc(srv->stats, (size_t)cap * sizeof(*n));
        if (!n) return -1;
        srv->stats = n;
        srv->stats_cap = cap;
    }
    srv->stats[srv->nstats++] = (struct api_stats_entry){fn, arg};
    return 0;
}

void api_register_builtin_routes(struct api_server *srv)
{
    api_route(srv, "GET", "/api/v1/stats", stats_route, srv);
    api_metrics_routes(srv);
    if (srv->bus) api_stream_routes(srv);
    api_console_routes(srv);
}

/* ---- life cycle ----------------------------------------------------------- */

static int parse_listen(const char *listen, char *host, size_t hostcap, int *port)
{
    const char *colon;
    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (!rb || rb[1] != ':') return -1;
        snprintf(host, hostcap, "%.*s", (int)(rb - listen - 1), listen + 1);
        colon = rb + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) return -1;
        snprintf(host, hostcap, "%.*s", (int)(colon - listen), listen);
    }
    uint64_t p;
    if (str_to_u64(str_from_cstr(colon + 1), 65535, &p)) return -1;
    *port = (int)p;
    return 0;
}

/* Which family host is (0 for "", "*": every interface), and whether it is a
 * loopback address. Host names are refused: a name may resolve to several
 * addresses and lws would bind an interface of that name instead. */
static int listen_address(const char *host, int *family, bool *loopback)
{
    struct in_addr a4;
    struct in6_addr a6;
    *family = 0;
    *loopback = false;
    if (!host[0] || !strcmp(host, "*")) return 0;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        *family = AF_INET;
        *loopback = (ntohl(a4.s_addr) >> 24) == 127;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        *family = AF_INET6;
        *loopback = IN6_IS_ADDR_LOOPBACK(&a6) ||
                    (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
        return 0;
    }
    return -1;
}

static void free_memory(struct api_server *srv)
{
    while (srv->requests) request_free(srv->requests);
    while (srv->ws_clients) api_ws_closed(srv, NULL);
    api_rooms_ws_free(srv);
    api_stream_free(srv);
    for (int i = 0; i < srv->nroutes; i++) {
        free(srv->routes[i].pattern);
        free(srv->routes[i].segs_mem);
    }
    free(srv->routes);
    free(srv->stats);
    api_metrics_free(srv);
    free(srv->scratch);
    free(srv);
}

static void teardown_closed(uv_handle_t *h) { free_memory(h->data); }

struct probe {
    void *ctx;
    int found;
};

static void probe_handle(uv_handle_t *h, void *arg)
{
    struct probe *p = arg;
    if (h->data == p->ctx) p->found++;
}

/* lws 4.1 with a foreign libuv loop finishes a context destroy in two calls:
 * the first closes every connection and then lws's own "static" handles (an
 * idle and a timer whose .data is the context) through the loop; only once
 * those close callbacks ran may the second call free the context. We watch
 * the loop until no handle carrying the context is left. If lws finished by
 * itself (pcontext cleared srv->ctx), the second call is skipped. */
static void teardown_tick(uv_timer_t *t)
{
    struct api_server *srv = t->data;
    if (srv->ctx) {
        struct probe p = {srv->ctx, 0};
        uv_walk(srv->loop, probe_handle, &p);
        if (p.found) {
            if (++srv->teardown_spins < API_TEARDOWN_MAX_TICKS) return;
            /* Freeing now could let lws touch freed memory: leak instead. */
            log_error("api: libwebsockets did not release its loop handles; leaking the server");
            uv_timer_stop(t);
            uv_close((uv_handle_t *)t, NULL);
            return;
        }
        lws_context_destroy(srv->ctx);
        srv->ctx = NULL;
    }
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, teardown_closed);
}

static void start_teardown(struct api_server *srv)
{
    srv->closing = true;
    if (srv->sweep_running) {
        uv_timer_stop(&srv->sweep);
        uv_close((uv_handle_t *)&srv->sweep, NULL);   /* closed before the teardown timer's close */
        srv->sweep_running = false;
    }
    if (srv->ready_check_init) {
        uv_check_stop(&srv->ready_check);
        uv_close((uv_handle_t *)&srv->ready_check, NULL);
        srv->ready_check_init = false;
        srv->ready = NULL;
    }
    if (srv->ctx) lws_context_destroy(srv->ctx);   /* first call: closes connections via the loop */
    uv_timer_init(srv->loop, &srv->teardown);
    srv->teardown.data = srv;
    uv_timer_start(&srv->teardown, teardown_tick, API_TEARDOWN_TICK_MS, API_TEARDOWN_TICK_MS);
}

void api_server_free(struct api_server *srv)
{
    if (!srv || srv->closing) return;
    srv->closing = true;
    if (srv->subscribed) event_unsubscribe(srv->bus, api_ws_on_event, srv);
    srv->subscribed = false;
    /* Owners of unanswered requests hear about it now. */
    for (struct api_request *req = srv->requests, *next; req; req = next) {
        next = req->next;
        if (req->state != API_REQ_PENDING) continue;
        if (req->abort_cb) {
            req->state = API_REQ_ABORTING;
            req->abort_cb(req, req->abort_arg);
        }
        request_free(req);
    }
    head_watch_forget(srv);
    log_info("api: stopping (%s)", srv->listen);
    start_teardown(srv);
}

int api_server_port(const struct api_server *srv) { return srv->port; }
uv_loop_t *api_server_loop(const struct api_server *srv) { return srv->loop; }

static double metric_requests(void *arg) { return (double)((struct api_server *)arg)->requests_total; }
static double metric_ws_clients(void *arg) { return (double)((struct api_server *)arg)->nws; }
static double metric_ws_dropped(void *arg) { return (double)((struct api_server *)arg)->ws_dropped_slow; }
static double metric_events(void *arg) { return (double)event_bus_published(((struct api_server *)arg)->bus); }

static void metric_responses(struct api_metric_writer *w, void *arg)
{
    struct api_server *srv = arg;
    static const char *classes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 1; i < 6; i++) api_metric_sample(w, "class", classes[i], (double)srv->responses_by_class[i]);
}

static void metric_webhook(struct api_metric_writer *w, void *arg)
{
    struct api_wh_metric *m = arg;
    struct event_webhook_stats st;
    event_bus_webhook_stats(m->srv->bus, &st);
    uint64_t v[] = {st.delivered, st.failed_attempts, st.dropped, st.queued};
    api_metric_sample(w, NULL, NULL, (double)v[m->which]);
}

static void register_builtin_metrics(struct api_server *srv)
{
    api_metric_counter(srv, "cascade_api_requests_total", "HTTP requests received by the API", metric_requests, srv);
    api_metric_family(srv, "cascade_api_responses_total", "HTTP answers sent by the API, by status class",
                      API_METRIC_COUNTER, metric_responses, srv);
    api_metric_gauge(srv, "cascade_api_ws_clients", "WebSocket event stream clients connected", metric_ws_clients,
                     srv);
    api_metric_counter(srv, "cascade_api_ws_slow_disconnects_total",
                       "Event stream clients disconnected for falling too far behind", metric_ws_dropped, srv);
    if (!srv->bus) return;
    api_metric_counter(srv, "cascade_events_published_total", "Events published on the bus", metric_events, srv);
    struct event_webhook_stats st;
    event_bus_webhook_stats(srv->bus, &st);
    if (!st.enabled) return;
    static const struct {
        const char *name, *help;
        enum api_metric_type type;
    } wh[] = {
        {"cascade_webhook_delivered_total", "Events the webhook answered with 2xx", API_METRIC_COUNTER},
        {"cascade_webhook_failed_attempts_total", "Webhook POSTs that failed and will be retried", API_METRIC_COUNTER},
        {"cascade_webhook_dropped_total", "Events dropped because the webhook queue was full", API_METRIC_COUNTER},
        {"cascade_webhook_queue", "Events waiting for the webhook", API_METRIC_GAUGE},
    };
    for (int i = 0; i < 4; i++) {
        srv->wh_metric[i] = (struct api_wh_metric){srv, i};
        api_metric_family(srv, wh[i].name, wh[i].help, wh[i].type, metric_webhook, &srv->wh_metric[i]);
    }
}

struct api_server *api_server_new(uv_loop_t *loop, const char *listen, const char *token, struct event_bus *bus)
{
    return api_server_new_tls(loop, listen, token, NULL, NULL, bus);
}

/* A certificate file lws will load: say which one is missing and why (lws
 * only logs that the vhost failed). */
static int tls_file_readable(const char *what, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return 0;
    }
    log_error("api: %s %s: %s", what, path, strerror(errno));
    return -1;
}

struct api_server *api_server_new_tls(uv_loop_t *loop, const char *listen, const char *token, const char *tls_cert,
                                      const char *tls_key, struct event_bus *bus)
{
    bool tls = tls_cert && tls_cert[0];
    if (tls != (tls_key && tls_key[0])) {
        log_error("api: tls_cert and tls_key go together: set both or neither");
        return NULL;
    }
    if (tls && (tls_file_readable("tls_cert", tls_cert) || tls_file_readable("tls_key", tls_key))) return NULL;
    char host[128];
    int port;
    if (!listen || parse_listen(listen, host, sizeof(host), &port)) {
        log_error("api: bad listen address '%s' (want host:port)", listen ? listen : "");
        return NULL;
    }
    int family = 0;
    bool loopback = false;
    if (listen_address(host, &family, &loopback)) {
        log_error("api: bad listen address '%s' (want an IP address and port: 127.0.0.1:8080, [::1]:8080, "
                  "0.0.0.0:8080)",
                  listen);
        return NULL;
    }
    struct api_server *srv = calloc(1, sizeof(*srv));
    if (!srv) return NULL;
    srv->loop = loop;
    srv->bus = bus;
    snprintf(srv->listen, sizeof(srv->listen), "%s", listen);
    if (token && strlen(token) >= sizeof(srv->token)) {
        log_error("api: token longer than %zu bytes", sizeof(srv->token) - 1);
        free(srv);
        return NULL;
    }
    snprintf(srv->token, sizeof(srv->token), "%s", token ? token : "");
    srv->open_access = srv->token[0] == '\0';
    if (srv->open_access && !loopback) {
        log_error("api: listen = %s without a token would let anyone who can reach it use the API: set [api] "
                  "token, or listen on a loopback address (127.0.0.1 or [::1])",
                  listen);
        free(srv);
        return NULL;
    }

    api_lws_logging();
    srv->protocols[0] = (struct lws_protocols){
        .name = "cascade-api",
        .callback = api_callback,
        .per_session_data_size = sizeof(struct api_session),
        .rx_buffer_size = 4096,
        .tx_packet_size = API_TX_PACKET,
    };

    void *foreign[1] = {loop};
    struct lws_context_creation_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (tls) ci.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    ci.foreign_loops = foreign;
    ci.port = CONTEXT_PORT_NO_LISTEN;
    ci.user = srv;
    ci.pcontext = &srv->ctx;
    ci.max_http_header_data = API_MAX_HEADERS;
    /* A request target longer than API_MAX_URI is cut there (and refused with
     * 414) rather than filling the header buffer. */
    static const int uri_tokens[] = {WSI_TOKEN_GET_URI,   WSI_TOKEN_POST_URI,   WSI_TOKEN_OPTIONS_URI,
                                     WSI_TOKEN_PUT_URI,   WSI_TOKEN_PATCH_URI,  WSI_TOKEN_DELETE_URI,
                                     WSI_TOKEN_HEAD_URI,  WSI_TOKEN_CONNECT,    WSI_TOKEN_HTTP_URI_ARGS};
    for (size_t i = 0; i < sizeof(uri_tokens) / sizeof(uri_tokens[0]); i++)
        srv->token_limits.token_limit[uri_tokens[i]] = API_MAX_URI;
    ci.token_limits = &srv->token_limits;
    ci.keepalive_timeout = 30;
    ci.timeout_secs = 20;
    srv->ctx = lws_create_context(&ci);
    if (!srv->ctx) {
        log_error("api: cannot create the libwebsockets context");
        free(srv);
        return NULL;
    }

    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof(vi));
    vi.options = LWS_SERVER_OPTION_LIBUV;
    vi.port = port;
    /* Bind exactly the configured address. lws binds an AF_INET6 socket
     * unless told otherwise and, given an IPv4 iface there, ignores it and
     * binds [::] (every interface, both families): an IPv4 address needs
     * DISABLE_IPV6. "::" (or "*", "") is every interface of both families. */
    if (family == AF_INET) vi.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    bool any = !host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "*") || !strcmp(host, "::");
    vi.iface = any ? NULL : host;
    vi.protocols = srv->protocols;
    vi.vhost_name = "cascade-api";
    vi.keepalive_timeout = 30;
    vi.timeout_secs = 20;
    if (tls) {
        /* TLS only on this port: a plain HTTP request fails the handshake
         * (no LWS_SERVER_OPTION_ALLOW_NON_SSL_ON_SSL_PORT). */
        vi.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;  /* lws checks it per vhost too */
        vi.ssl_cert_filepath = tls_cert;
        vi.ssl_private_key_filepath = tls_key;
    }
    srv->vhost = lws_create_vhost(srv->ctx, &vi);
    if (!srv->vhost) {
        if (tls)
            log_error("api: cannot listen on %s with tls_cert %s and tls_key %s (bad certificate or key, or the "
                      "address is taken)",
                      listen, tls_cert, tls_key);
        else
            log_error("api: cannot listen on %s", listen);
        start_teardown(srv);                    /* frees srv once the loop ran */
        return NULL;
    }
    srv->port = lws_get_vhost_listen_port(srv->vhost);
    uv_timer_init(loop, &srv->sweep);
    srv->sweep.data = srv;
    uv_timer_start(&srv->sweep, sweep_tick, API_SWEEP_MS, API_SWEEP_MS);
    uv_unref((uv_handle_t *)&srv->sweep);
    srv->sweep_running = true;
    uv_check_init(loop, &srv->ready_check);
    srv->ready_check.data = srv;
    uv_unref((uv_handle_t *)&srv->ready_check);
    srv->ready_check_init = true;
    api_register_builtin_routes(srv);
    register_builtin_metrics(srv);
    if (bus) {
        if (event_subscribe(bus, api_ws_on_event, srv)) {
            log_error("api: out of memory subscribing to events");
            api_server_free(srv);
            return NULL;
        }
        srv->subscribed = true;
    }
    if (srv->open_access)
        log_warn("api: no [api] token configured: every API request is allowed without authentication");
    log_info("api: listening on %s://%s (port %d)", tls ? "https" : "http", listen, srv->port);
    return srv;
}
