/* httpc_uv.c — one HTTP/1.1 request on the libuv loop (see httpc_uv.h).
 *
 * A uv_tcp_t connects, writes the whole request, reads until
 * api_httpc_parse says the answer is whole (or malformed, or cut); a
 * uv_timer_t bounds it all. The struct lives until both handles are
 * closed: libuv calls a pending connect's or write's callback (with
 * UV_ECANCELED) before the close callback, so no callback ever sees freed
 * memory; after the outcome (done) they do nothing.
 *
 * https: a tls_session sits between the socket and the buffers. The request
 * is handed to it at once (it keeps it until the handshake is done); each
 * piece of ciphertext it makes goes out in its own uv_write with its own
 * copy (freed by the write's callback); what the socket reads is fed to it
 * and its plaintext lands in `in`. */
#include "transport/httpc_uv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sbuf.h"
#include "transport/tls.h"

#define HTTPC_UV_READ_CHUNK 16384

struct httpc_uv {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    sbuf_t out, in;
    httpc_uv_cb cb;                 /* NULL: cancelled */
    void *arg;
    size_t max_body;
    bool head;                      /* a HEAD: no body in the answer */
    bool done;                      /* the outcome is out (or cancelled) */
    int open_handles;
    struct tls_session *tls;        /* https */
    bool tls_up;                    /* its handshake completed (plaintext may follow) */
    int writes;                     /* TLS writes in flight (each frees itself) */
    struct tls_io io;               /* https: tls_send / tls_recv on this */
    char rbuf[HTTPC_UV_READ_CHUNK]; /* https: ciphertext read */
};

/* One TLS write: the request and its bytes. */
struct tls_write {
    uv_write_t req;
    char data[];
};

static void on_close(uv_handle_t *hd)
{
    struct httpc_uv *c = hd->data;
    if (--c->open_handles > 0) return;
    tls_session_free(c->tls);
    sbuf_free(&c->out);
    sbuf_free(&c->in);
    free(c);
}

static void close_all(struct httpc_uv *c)
{
    uv_timer_stop(&c->timer);
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_close);
    if (!uv_is_closing((uv_handle_t *)&c->timer)) uv_close((uv_handle_t *)&c->timer, on_close);
}

/* The outcome, once: the callback (unless cancelled), then the handles close. */
static void finish(struct httpc_uv *c, int rc, const struct api_httpc_response *resp, const char *why)
{
    if (c->done) return;
    c->done = true;
    httpc_uv_cb cb = c->cb;
    c->cb = NULL;
    if (cb) cb(c->arg, rc, rc == 0 ? resp : NULL, why);
    close_all(c);
}

static void on_timer(uv_timer_t *t)
{
    struct httpc_uv *c = t->data;
    finish(c, -ETIMEDOUT, NULL, "no whole answer before the deadline");
}

/* Whether the bytes so far (and eof) make an answer: 1 finished, 0 not yet. */
static int try_parse(struct httpc_uv *c, bool eof)
{
    struct api_httpc_response resp;
    char err[128] = "";
    int p = api_httpc_parse(c->in.data ? c->in.data : "", c->in.len, eof, c->head, c->max_body, &resp, err,
                            sizeof(err));
    if (p == 0 && !eof) return 0;
    if (p > 0) {
        finish(c, 0, &resp, NULL);
        api_httpc_response_free(&resp);
    } else if (p == -2 || p == 0) {
        finish(c, -ECONNRESET, NULL, err[0] ? err : "connection closed before a whole answer");
    } else {
        finish(c, strstr(err, "too large") ? -EMSGSIZE : strstr(err, "memory") ? -ENOMEM : -EPROTO, NULL, err);
    }
    return 1;
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct httpc_uv *c = hd->data;
    if (c->tls && !c->done) {
        *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
        return;
    }
    if (c->done || !sbuf_reserve(&c->in, HTTPC_UV_READ_CHUNK)) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct httpc_uv *c = s->data;
    if (c->done) return;
    if (nread == UV_ENOBUFS) {
        finish(c, -ENOMEM, NULL, "out of memory");
        return;
    }
    if (nread == UV_EOF) {
        if (c->tls && !c->tls_up)
            finish(c, -ECONNABORTED, NULL, "the server closed the connection during the TLS handshake");
        else try_parse(c, true);
        return;
    }
    if (nread < 0) {
        finish(c, -ECONNRESET, NULL, uv_strerror((int)nread));
        return;
    }
    if (nread == 0) return;
    if (c->tls) {
        const char *why = NULL;
        int rc = tls_session_input(c->tls, c->rbuf, (size_t)nread, &c->io, &why);
        if (rc == 0 && tls_session_established(c->tls)) c->tls_up = true;
        if (rc != 0) {
            if (c->done) return;
            /* After the handshake: the server's close_notify (often in the
             * same read as the end of its answer) or a broken record — the
             * answer so far decides. Before it: the handshake failed. */
            if (c->tls_up) try_parse(c, true);
            else finish(c, -ECONNABORTED, NULL, why ? why : "TLS handshake failed");
            return;
        }
        if (!c->done && c->in.failed) finish(c, -ENOMEM, NULL, "out of memory");
        else if (!c->done) try_parse(c, false);
        return;
    }
    c->in.len += (size_t)nread;
    c->in.data[c->in.len] = '\0';
    try_parse(c, false);
}

static void on_write(uv_write_t *w, int status)
{
    struct httpc_uv *c = w->data;
    /* A peer may answer (413, 401) and close before reading the whole
     * request: a write error is not the outcome, the read decides. */
    (void)status;
    (void)c;
}

static void on_tls_written(uv_write_t *w, int status)
{
    (void)status; /* as on_write: the read decides */
    struct tls_write *tw = (struct tls_write *)w;
    struct httpc_uv *c = w->data;
    c->writes--;
    free(tw);
}

/* tls_io: ciphertext out, each piece in a write of its own. */
static int tls_send(void *user, const void *data, size_t len)
{
    struct httpc_uv *c = user;
    if (c->done || uv_is_closing((uv_handle_t *)&c->tcp)) return -1;
    struct tls_write *tw = malloc(sizeof(*tw) + len);
    if (!tw) return -1;
    memcpy(tw->data, data, len);
    tw->req.data = c;
    uv_buf_t b = uv_buf_init(tw->data, (unsigned)len);
    if (uv_write(&tw->req, (uv_stream_t *)&c->tcp, &b, 1, on_tls_written) != 0) {
        free(tw);
        return -1;
    }
    c->writes++;
    return 0;
}

/* tls_io: plaintext of the answer, into `in` (capped as the plain path is:
 * api_httpc_parse refuses what is over max_body). */
static int tls_recv(void *user, const void *data, size_t len)
{
    struct httpc_uv *c = user;
    c->tls_up = true; /* plaintext: the handshake is done */
    if (c->in.len + len > c->max_body + 65536 + HTTPC_UV_READ_CHUNK) {
        finish(c, -EMSGSIZE, NULL, "answer too large");
        return -1;
    }
    sbuf_append(&c->in, data, len);
    return c->in.failed ? -1 : 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct httpc_uv *c = req->data;
    if (c->done) return;
    if (status < 0) {
        finish(c, status, NULL, uv_strerror(status));
        return;
    }
    if (c->tls) {
        const char *why = NULL;
        int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rc < 0) {
            finish(c, rc, NULL, uv_strerror(rc));
            return;
        }
        if (tls_session_start(c->tls, &c->io, &why) != 0 ||
            tls_session_write(c->tls, c->out.data, c->out.len, &c->io, &why) != 0)
            finish(c, -ECONNABORTED, NULL, why ? why : "TLS failed");
        return;
    }
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    c->write.data = c;
    int rc = uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc == 0) rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) finish(c, rc, NULL, uv_strerror(rc));
}

static bool clean(const char *s) { return s && *s && !strpbrk(s, "\r\n"); }

int httpc_uv_start(uv_loop_t *loop, const struct httpc_uv_request *r, httpc_uv_cb cb, void *arg,
                   struct httpc_uv **h)
{
    *h = NULL;
    if (!loop || !r || !cb || !r->to || (r->to->sa_family != AF_INET && r->to->sa_family != AF_INET6) ||
        !clean(r->method) || !clean(r->target) || !clean(r->host) || r->target[0] != '/' ||
        (r->content_type && strpbrk(r->content_type, "\r\n")))
        return -EINVAL;
    struct httpc_uv *c = calloc(1, sizeof(*c));
    if (!c) return -ENOMEM;
    c->cb = cb;
    c->arg = arg;
    c->max_body = r->max_body;
    c->head = !strcmp(r->method, "HEAD");
    sbuf_init(&c->out);
    sbuf_init(&c->in);
    sbuf_printf(&c->out, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cascade\r\nAccept: application/json\r\n"
                         "Connection: close\r\n",
                r->method, r->target, r->host);
    if (r->headers) sbuf_append_cstr(&c->out, r->headers);
    bool length = r->body || !strcmp(r->method, "POST") || !strcmp(r->method, "PUT") || !strcmp(r->method, "PATCH");
    if (r->body && r->content_type) sbuf_printf(&c->out, "Content-Type: %s\r\n", r->content_type);
    if (length) sbuf_printf(&c->out, "Content-Length: %zu\r\n", r->body ? r->body_len : 0);
    sbuf_append_cstr(&c->out, "\r\n");
    if (r->body) sbuf_append(&c->out, r->body, r->body_len);
    if (!c->out.failed && r->tls) {
        char name[INET6_ADDRSTRLEN + 2] = "";
        if (!r->tls_name) {
            const void *a = r->to->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)r->to)->sin_addr
                                                         : (const void *)&((const struct sockaddr_in6 *)r->to)->sin6_addr;
            inet_ntop(r->to->sa_family, a, name, sizeof(name));
        }
        c->tls = tls_session_client(r->tls, r->tls_name ? r->tls_name : name); /* it copies the name */
        c->io = (struct tls_io){.user = c, .send = tls_send, .recv = tls_recv};
    }
    if (c->out.failed || (r->tls && !c->tls)) {
        tls_session_free(c->tls);
            sbuf_free(&c->out);
        free(c);
        return -ENOMEM;
    }
    int rc = uv_tcp_init(loop, &c->tcp);
    if (rc < 0) {
        tls_session_free(c->tls);
            sbuf_free(&c->out);
        free(c);
        return rc;
    }
    c->tcp.data = c;
    c->open_handles = 1;
    rc = uv_timer_init(loop, &c->timer);
    if (rc == 0) {
        c->timer.data = c;
        c->open_handles = 2;
        rc = uv_timer_start(&c->timer, on_timer, r->timeout_ms ? r->timeout_ms : 10000, 0);
    }
    c->connect.data = c;
    if (rc == 0) rc = uv_tcp_connect(&c->connect, &c->tcp, r->to, on_connect);
    if (rc < 0) {
        c->done = true; /* no callback: the caller has the error */
        c->cb = NULL;
        if (c->open_handles == 2) close_all(c);
        else uv_close((uv_handle_t *)&c->tcp, on_close);
        return rc;
    }
    *h = c;
    return 0;
}

void httpc_uv_cancel(struct httpc_uv *h)
{
    if (!h || h->done) return;
    h->cb = NULL;
    finish(h, -ECANCELED, NULL, "cancelled");
}
