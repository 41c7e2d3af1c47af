/* httpc.c — blocking HTTP/1.1 client over plain sockets (see httpc.h).
 * Non-blocking sockets plus poll() so that every wait has a deadline and can
 * be cancelled through cancel_fd. RFC 9112 message framing: Content-Length,
 * chunked, or read-until-close. */
#include "events/httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/sbuf.h"

#define HTTPC_MAX_HEADER (64 * 1024)

static void seterr(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

int api_url_parse(const char *url, struct api_url *out, char *err, size_t errcap)
{
    memset(out, 0, sizeof(*out));
    if (!url || !*url) {
        seterr(err, errcap, "empty URL");
        return -1;
    }
    if (!strncasecmp(url, "https://", 8)) {
        seterr(err, errcap, "https is not supported (plain http:// only)");
        return -1;
    }
    if (strncasecmp(url, "http://", 7)) {
        seterr(err, errcap, "URL must start with http://");
        return -1;
    }
    const char *p = url + 7;
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        seterr(err, errcap, "credentials in the URL are not supported");
        return -1;
    }
    const char *host_end, *port_start = NULL;
    if (*p == '[') {                                   /* [v6]:port */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) {
            seterr(err, errcap, "unterminated [IPv6] host");
            return -1;
        }
        if ((size_t)(rb - p - 1) >= sizeof(out->host)) goto too_long;
        memcpy(out->host, p + 1, (size_t)(rb - p - 1));
        host_end = rb + 1;
        if (host_end < end) {
            if (*host_end != ':') {
                seterr(err, errcap, "junk after [IPv6] host");
                return -1;
            }
            port_start = host_end + 1;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        host_end = colon ? colon : end;
        if ((size_t)(host_end - p) >= sizeof(out->host)) goto too_long;
        memcpy(out->host, p, (size_t)(host_end - p));
        if (colon) port_start = colon + 1;
    }
    if (!out->host[0]) {
        seterr(err, errcap, "no host in URL");
        return -1;
    }
    if (port_start) {
        size_t n = (size_t)(end - port_start);
        long port = 0;
        if (n == 0 || n > 5) goto bad_port;
        for (size_t i = 0; i < n; i++) {
            if (port_start[i] < '0' || port_start[i] > '9') goto bad_port;
            port = port * 10 + (port_start[i] - '0');
        }
        if (port < 1 || port > 65535) goto bad_port;
        snprintf(out->port, sizeof(out->port), "%ld", port);
    } else {
        snprintf(out->port, sizeof(out->port), "80");
    }
    if (slash) {
        if (strlen(slash) >= sizeof(out->path)) goto too_long;
        snprintf(out->path, sizeof(out->path), "%s", slash);
    } else {
        snprintf(out->path, sizeof(out->path), "/");
    }
    return 0;
bad_port:
    seterr(err, errcap, "bad port in URL");
    return -1;
too_long:
    seterr(err, errcap, "URL too long");
    return -1;
}

/* Waits for events on fd until the deadline. 1 ready, 0 timeout, -1 cancelled
 * or error (err set). */
static int wait_fd(int fd, short events, uint64_t deadline, int cancel_fd, char *err, size_t errcap)
{
    for (;;) {
        uint64_t now = clock_monotonic_ms();
        if (now >= deadline) {
            seterr(err, errcap, "timed out");
            return 0;
        }
        struct pollfd pfd[2] = {{.fd = fd, .events = events}, {.fd = cancel_fd, .events = POLLIN}};
        int n = poll(pfd, cancel_fd >= 0 ? 2 : 1, (int)(deadline - now));
        if (n < 0) {
            if (errno == EINTR) continue;
            seterr(err, errcap, "poll: %s", strerror(errno));
            return -1;
        }
        if (n == 0) continue;                           /* re-check the deadline */
        if (cancel_fd >= 0 && pfd[1].revents) {
            seterr(err, errcap, "cancelled");
            return -1;
        }
        if (pfd[0].revents) return 1;
    }
}

static int connect_to(const struct api_url *url, uint64_t deadline, int cancel_fd, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(url->host, url->port, &hints, &res);
    if (rc) {
        seterr(err, errcap, "cannot resolve %s: %s", url->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            seterr(err, errcap, "socket: %s", strerror(errno));
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS) {
            int w = wait_fd(fd, POLLOUT, deadline, cancel_fd, err, errcap);
            if (w == 1) {
                int soerr = 0;
                socklen_t sl = sizeof(soerr);
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                if (soerr == 0) break;
                seterr(err, errcap, "connect to %s:%s: %s", url->host, url->port, strerror(soerr));
            } else if (w == 0) {
                seterr(err, errcap, "connect to %s:%s timed out", url->host, url->port);
            }
            if (w < 0) {                                /* cancelled: do not try other addresses */
                close(fd);
                fd = -1;
                break;
            }
        } else {
            seterr(err, errcap, "connect to %s:%s: %s", url->host, url->port, strerror(errno));
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const char *p, size_t n, uint64_t deadline, int cancel_fd, char *err, size_t errcap)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLOUT, deadline, cancel_fd, err, errcap) != 1) return -1;
            continue;
        }
        int e = errno;
        seterr(err, errcap, "send: %s", strerror(e));
        return e == EPIPE || e == ECONNRESET ? -2 : -1;   /* -2: the peer closed */
    }
    return 0;
}

/* Reads more bytes into b. >0 bytes read, 0 EOF, -1 error/timeout/cancel. */
static ssize_t recv_more(int fd, sbuf_t *b, uint64_t deadline, int cancel_fd, char *err, size_t errcap)
{
    if (!sbuf_reserve(b, 16384)) {
        seterr(err, errcap, "out of memory");
        return -1;
    }
    for (;;) {
        ssize_t r = recv(fd, b->data + b->len, b->cap - b->len, 0);
        if (r >= 0) {
            b->len += (size_t)r;
            return r;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(fd, POLLIN, deadline, cancel_fd, err, errcap) != 1) return -1;
            continue;
        }
        seterr(err, errcap, "recv: %s", strerror(errno));
        return -1;
    }
}

struct head {
    int status;
    bool chunked;
    long long content_length;   /* -1: not given */
    char content_type[128];
};

/* Parses the status line and the headers we need from [p, p+n). */
static int parse_head(const char *p, size_t n, struct head *h, char *err, size_t errcap)
{
    memset(h, 0, sizeof(*h));
    h->content_length = -1;
    if (n < 12 || strncmp(p, "HTTP/1.", 7) || p[8] != ' ') goto bad;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') goto bad;
        st = st * 10 + (p[i] - '0');
    }
    if (st < 100 || st > 599) goto bad;
    h->status = st;
    const char *line = memchr(p, '\n', n);
    const char *end = p + n;
    while (line && line + 1 < end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) break;
        size_t ll = (size_t)(eol - line);
        if (ll && line[ll - 1] == '\r') ll--;
        if (ll == 0) break;
        const char *colon = memchr(line, ':', ll);
        if (colon) {
            size_t nl = (size_t)(colon - line);
            const char *v = colon + 1;
            const char *ve = line + ll;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t vl = (size_t)(ve - v);
            if (nl == 14 && !strncasecmp(line, "Content-Length", 14)) {
                long long cl = 0;
                if (!vl) goto bad;
                for (size_t i = 0; i < vl; i++) {
                    if (v[i] < '0' || v[i] > '9' || cl > (long long)API_HTTPC_MAX_BODY) goto bad;
                    cl = cl * 10 + (v[i] - '0');
                }
                h->content_length = cl;
            } else if (nl == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) {
                /* chunked must be the final coding (RFC 9112 §6.1) */
                if (vl >= 7 && !strncasecmp(ve - 7, "chunked", 7)) h->chunked = true;
            } else if (nl == 12 && !strncasecmp(line, "Content-Type", 12)) {
                snprintf(h->content_type, sizeof(h->content_type), "%.*s", (int)vl, v);
            }
        }
        line = eol;
    }
    return 0;
bad:
    seterr(err, errcap, "malformed HTTP answer");
    return -1;
}

/* Decodes a complete chunked body in place; returns the decoded length, or -1
 * when more bytes are needed, -2 when malformed. */
static long long dechunk(const char *in, size_t n, sbuf_t *out)
{
    size_t i = 0;
    sbuf_clear(out);
    for (;;) {
        size_t size = 0;
        size_t start = i;
        while (i < n) {
            char c = in[i];
            int d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            else break;
            if (size > API_HTTPC_MAX_BODY) return -2;
            size = size * 16 + (size_t)d;
            i++;
        }
        if (i == n) return -1;
        if (i == start) return -2;
        const char *crlf = memchr(in + i, '\n', n - i);    /* skip chunk extensions */
        if (!crlf) return -1;
        i = (size_t)(crlf - in) + 1;
        if (size == 0) {
            /* trailer section ends with an empty line */
            for (;;) {
                const char *nl = memchr(in + i, '\n', n - i);
                if (!nl) return -1;
                size_t ll = (size_t)(nl - (in + i));
                i = (size_t)(nl - in) + 1;
                if (ll == 0 || (ll == 1 && in[i - 2] == '\r')) return (long long)out->len;
            }
        }
        if (n - i < size + 2) return -1;
        sbuf_append(out, in + i, size);
        if (out->len > API_HTTPC_MAX_BODY) return -2;
        i += size;
        if (in[i] == '\r') i++;
        if (i >= n) return -1;
        if (in[i] != '\n') return -2;
        i++;
    }
}

int api_httpc_parse(const char *buf, size_t n, bool eof, bool no_body_method, size_t max_body,
                    struct api_httpc_response *out, char *err, size_t errcap)
{
    struct head h;
    size_t off = 0;
    for (;;) {                                  /* a final (non-1xx) head */
        const char *hend = n - off >= 4 ? memmem(buf + off, n - off, "\r\n\r\n", 4) : NULL;
        if (!hend) {
            if (n - off > HTTPC_MAX_HEADER) {
                seterr(err, errcap, "answer header too large");
                return -1;
            }
            if (eof) {
                seterr(err, errcap, "connection closed before an answer");
                return -2;
            }
            return 0;
        }
        size_t head_len = (size_t)(hend - (buf + off)) + 4;
        if (head_len > HTTPC_MAX_HEADER) {
            seterr(err, errcap, "answer header too large");
            return -1;
        }
        if (parse_head(buf + off, head_len, &h, err, errcap)) return -1;
        off += head_len;
        if (h.status >= 200) break;             /* skip 100 Continue and the like */
    }
    if (h.content_length >= 0 && !h.chunked && (unsigned long long)h.content_length > max_body) {
        seterr(err, errcap, "answer body too large");
        return -1;
    }
    bool no_body = no_body_method || h.status == 204 || h.status == 304;
    size_t have = n - off, len = 0;
    sbuf_t dec;
    sbuf_init(&dec);
    if (!no_body) {
        if (h.chunked) {
            long long d = dechunk(buf + off, have, &dec);
            if (d == -2 || (d < 0 && have > max_body + HTTPC_MAX_HEADER) || (d >= 0 && (size_t)d > max_body)) {
                sbuf_free(&dec);
                seterr(err, errcap, d == -2 ? "malformed chunked answer" : "answer body too large");
                return -1;
            }
            if (d < 0) {
                sbuf_free(&dec);
                if (eof) {
                    seterr(err, errcap, "connection closed in the middle of the answer");
                    return -2;
                }
                return 0;
            }
            len = dec.len;
        } else if (h.content_length >= 0) {
            if (have < (size_t)h.content_length) {
                if (eof) {
                    seterr(err, errcap, "connection closed in the middle of the answer");
                    return -2;
                }
                return 0;
            }
            len = (size_t)h.content_length;
        } else {
            if (have > max_body) {
                seterr(err, errcap, "answer body too large");
                return -1;
            }
            if (!eof) return 0;                 /* the body runs until the peer closes */
            len = have;
        }
    }
    memset(out, 0, sizeof(*out));
    out->status = h.status;
    snprintf(out->content_type, sizeof(out->content_type), "%s", h.content_type);
    out->len = len;
    if (h.chunked && !no_body) {
        if (dec.failed) {
            sbuf_free(&dec);
            seterr(err, errcap, "out of memory");
            return -1;
        }
        out->body = sbuf_take(&dec);
    } else {
        out->body = malloc(len + 1);
        if (out->body) {
            if (len) memcpy(out->body, buf + off, len);
            out->body[len] = '\0';
        }
    }
    sbuf_free(&dec);
    if (!out->body) {
        seterr(err, errcap, "out of memory");
        return -1;
    }
    return 1;
}

int api_httpc_request(const struct api_url *url, const char *method, const char *target,
                      const char *extra_headers, const char *content_type, const char *body,
                      size_t body_len, int timeout_ms, int cancel_fd,
                      struct api_httpc_response *resp, char *err, size_t errcap)
{
    memset(resp, 0, sizeof(*resp));
    uint64_t deadline = clock_monotonic_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000);
    int fd = connect_to(url, deadline, cancel_fd, err, errcap);
    if (fd < 0) return -1;

    sbuf_t req, in;
    sbuf_init(&req);
    sbuf_init(&in);
    bool v6 = strchr(url->host, ':') != NULL;
    sbuf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n", method, target, v6 ? "[" : "",
                url->host, v6 ? "]" : "", strcmp(url->port, "80") ? ":" : "",
                strcmp(url->port, "80") ? url->port : "");
    sbuf_append_cstr(&req, "User-Agent: cascade\r\nAccept: application/json\r\nConnection: close\r\n");
    if (extra_headers) sbuf_append_cstr(&req, extra_headers);
    bool wants_length = body || !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");
    if (body && content_type) sbuf_printf(&req, "Content-Type: %s\r\n", content_type);
    if (wants_length) sbuf_printf(&req, "Content-Length: %zu\r\n", body ? body_len : 0);
    sbuf_append_cstr(&req, "\r\n");
    if (body) sbuf_append(&req, body, body_len);
    int rc = -1;
    bool send_failed = false;
    char send_err[256] = "";
    if (req.failed) {
        seterr(err, errcap, "out of memory");
        goto out;
    }
    int sent = send_all(fd, req.data, req.len, deadline, cancel_fd, err, errcap);
    if (sent) {
        /* A server may answer (413, 401) and close before reading the whole
         * request (RFC 9112 §9.6): its answer can still be waiting in our
         * receive queue. Read it if it is there; else report the send error. */
        if (sent != -2) goto out;
        send_failed = true;
        snprintf(send_err, sizeof(send_err), "%s", err ? err : "send failed");
    }
    bool eof = false, head_only = !strcmp(method, "HEAD");
    for (;;) {
        int p = in.len || eof ? api_httpc_parse(in.data ? in.data : "", in.len, eof, head_only, API_HTTPC_MAX_BODY,
                                                resp, err, errcap)
                              : 0;
        if (p < 0) goto out;
        if (p > 0) break;
        ssize_t r = recv_more(fd, &in, deadline, cancel_fd, err, errcap);
        if (r < 0) goto out;
        if (r == 0) eof = true;
    }
    rc = 0;
out:
    if (rc && send_failed) seterr(err, errcap, "%s", send_err);
    close(fd);
    sbuf_free(&req);
    sbuf_free(&in);
    if (rc) api_httpc_response_free(resp);
    return rc;
}

void api_httpc_response_free(struct api_httpc_response *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}
