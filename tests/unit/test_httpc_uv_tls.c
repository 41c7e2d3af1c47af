/* test_httpc_uv_tls.c — one HTTPS request on the loop (transport/httpc_uv.h
 * with a tls_context): the hop a node makes to a peer whose API serves TLS
 * only (gb/upper/query_nodes.c).
 *
 * The server is in this process, on the same loop: a TCP listener whose
 * connection runs a server tls_session of a context made from the
 * throw-away PKI (tests/unit/cert_testutil.h: a server certificate for
 * sip.test and 127.0.0.1). Cases:
 *  - trusted CA, no name given: the certificate is checked against the
 *    address connected to (127.0.0.1, an IP SAN): the answer arrives (the
 *    server sends close_notify right after it), the request as sent
 *    arrived in the clear at the server;
 *  - the name sip.test given: the same;
 *  - a name the certificate does not carry: -ECONNABORTED, "hostname
 *    mismatch" in why, no request reached the server's plaintext side;
 *  - a client that does not trust the CA: -ECONNABORTED;
 *  - a server that is not TLS (it answers plaintext): -ECONNABORTED. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/sbuf.h"
#include "cert_testutil.h"
#include "transport/httpc_uv.h"
#include "transport/tls.h"

static struct test_pki pki;

struct srv {
    uv_tcp_t listener, conn;
    bool have_conn, plain;
    struct tls_context *ctx;
    struct tls_session *s;
    struct tls_io io;
    sbuf_t got;                /* the request's plaintext */
    bool answered;
    int port;
};

struct hop {
    int calls, rc, status;
    char body[256], why[256];
};

static void on_hop(void *arg, int rc, const struct api_httpc_response *resp, const char *why)
{
    struct hop *h = arg;
    h->calls++;
    h->rc = rc;
    snprintf(h->why, sizeof(h->why), "%s", why ? why : "");
    if (resp) {
        h->status = resp->status;
        snprintf(h->body, sizeof(h->body), "%s", resp->body);
    }
}

static void closed(uv_handle_t *hd) { (void)hd; }

static void written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static int srv_send(void *user, const void *data, size_t len)
{
    struct srv *s = user;
    uv_write_t *w = malloc(sizeof(*w) + len);
    if (!w) return -1;
    memcpy(w + 1, data, len);
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)len);
    if (uv_write(w, (uv_stream_t *)&s->conn, &b, 1, written) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"ok\":1}";

/* The request's plaintext: once its head and body are in, the answer. */
static int srv_recv(void *user, const void *data, size_t len)
{
    struct srv *s = user;
    sbuf_append(&s->got, data, len);
    const char *end = strstr(s->got.data, "\r\n\r\n");
    const char *cl = strstr(s->got.data, "Content-Length: ");
    if (s->answered || !end || (cl && s->got.len < (size_t)(end + 4 - s->got.data) + strtoul(cl + 16, NULL, 10)))
        return 0;
    s->answered = true;
    const char *why = NULL;
    assert_int_equal(tls_session_write(s->s, answer, strlen(answer), &s->io, &why), 0);
    /* and close_notify at once, as the API server does: it may come in the
     * same read as the answer's end */
    tls_session_shutdown(s->s, &s->io);
    return 0;
}

static void srv_alloc(uv_handle_t *hd, size_t sz, uv_buf_t *b)
{
    (void)hd, (void)sz;
    static char buf[16384];
    *b = uv_buf_init(buf, sizeof(buf));
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct srv *s = st->data;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)&s->conn)) uv_close((uv_handle_t *)&s->conn, closed);
        return;
    }
    if (n == 0) return;
    if (s->plain) { /* not TLS: a plaintext line back, whatever came */
        if (!s->answered) {
            s->answered = true;
            srv_send(s, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 47);
        }
        return;
    }
    const char *why = NULL;
    if (tls_session_input(s->s, b->base, (size_t)n, &s->io, &why) != 0 &&
        !uv_is_closing((uv_handle_t *)&s->conn))
        uv_close((uv_handle_t *)&s->conn, closed);
}

static void srv_accept(uv_stream_t *l, int status)
{
    struct srv *s = l->data;
    assert_int_equal(status, 0);
    assert_false(s->have_conn);
    uv_tcp_init(l->loop, &s->conn);
    s->conn.data = s;
    s->have_conn = true;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&s->conn), 0);
    if (!s->plain) {
        s->s = tls_session_server(s->ctx);
        assert_non_null(s->s);
    }
    uv_read_start((uv_stream_t *)&s->conn, srv_alloc, srv_read);
}

static void srv_start(uv_loop_t *loop, struct srv *s, bool plain)
{
    memset(s, 0, sizeof(*s));
    s->plain = plain;
    sbuf_init(&s->got);
    struct tls_config cfg = {.verify_server = true};
    snprintf(cfg.cert, sizeof(cfg.cert), "%s", pki.server_cert);
    snprintf(cfg.key, sizeof(cfg.key), "%s", pki.server_key);
    char err[256];
    s->ctx = tls_context_new(&cfg, err, sizeof(err));
    assert_non_null(s->ctx);
    s->io = (struct tls_io){.user = s, .send = srv_send, .recv = srv_recv};
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 4, srv_accept), 0);
    struct sockaddr_in got;
    int len = sizeof(got);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
    s->port = ntohs(got.sin_port);
}

static void srv_stop(uv_loop_t *loop, struct srv *s)
{
    uv_close((uv_handle_t *)&s->listener, closed);
    if (s->have_conn && !uv_is_closing((uv_handle_t *)&s->conn)) uv_close((uv_handle_t *)&s->conn, closed);
    uv_run(loop, UV_RUN_DEFAULT);
    tls_session_free(s->s);
    tls_context_free(s->ctx);
    sbuf_free(&s->got);
}

/* A client context: trusting the test CA, or (ca NULL) the system store. */
static struct tls_context *client_ctx(const char *ca)
{
    struct tls_config cfg = {.verify_server = true};
    if (ca) snprintf(cfg.ca, sizeof(cfg.ca), "%s", ca);
    char err[256];
    struct tls_context *c = tls_context_new(&cfg, err, sizeof(err));
    assert_non_null(c);
    return c;
}

static void run_until(uv_loop_t *loop, struct hop *h)
{
    uint64_t end = uv_hrtime() + 10000000000ull;
    while (!h->calls && uv_hrtime() < end) uv_run(loop, UV_RUN_ONCE);
}

static void hop(uv_loop_t *loop, struct srv *s, struct tls_context *c, const char *name, struct hop *h)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", s->port, &a);
    char host[32];
    snprintf(host, sizeof(host), "127.0.0.1:%d", s->port);
    struct httpc_uv_request r = {.to = (const struct sockaddr *)&a, .host = host, .method = "POST",
                                 .target = "/api/v1/gb/devices/34020000001320000001/info",
                                 .headers = "X-Cascade-Forwarded: node-b\r\nAuthorization: Bearer t\r\n",
                                 .content_type = "application/json", .body = "{\"x\":1}", .body_len = 7,
                                 .timeout_ms = 8000, .max_body = 1000, .tls = c, .tls_name = name};
    memset(h, 0, sizeof(*h));
    struct httpc_uv *hd;
    assert_int_equal(httpc_uv_start(loop, &r, on_hop, h, &hd), 0);
    assert_int_equal(h->calls, 0);
    run_until(loop, h);
    assert_int_equal(h->calls, 1);
}

static void test_https(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct tls_context *trusting = client_ctx(pki.ca);
    struct srv s;
    struct hop h;

    /* the address connected to, checked against the certificate's IP SAN */
    srv_start(&loop, &s, false);
    hop(&loop, &s, trusting, NULL, &h);
    assert_int_equal(h.rc, 0);
    assert_int_equal(h.status, 200);
    assert_string_equal(h.body, "{\"ok\":1}");
    assert_non_null(strstr(s.got.data, "POST /api/v1/gb/devices/34020000001320000001/info HTTP/1.1\r\n"));
    assert_non_null(strstr(s.got.data, "\r\nAuthorization: Bearer t\r\n"));
    assert_non_null(strstr(s.got.data, "\r\n\r\n{\"x\":1}"));
    srv_stop(&loop, &s);

    /* a DNS name the certificate carries */
    srv_start(&loop, &s, false);
    hop(&loop, &s, trusting, "sip.test", &h);
    assert_int_equal(h.rc, 0);
    assert_int_equal(h.status, 200);
    srv_stop(&loop, &s);

    /* a name it does not carry: refused before any request byte is sent */
    srv_start(&loop, &s, false);
    hop(&loop, &s, trusting, "api.other.test", &h);
    assert_int_equal(h.rc, -ECONNABORTED);
    assert_non_null(strstr(h.why, "verify"));
    assert_int_equal(s.got.len, 0);
    srv_stop(&loop, &s);

    /* a client that does not trust the server's CA */
    struct tls_context *stranger = client_ctx(pki.stranger_cert);
    srv_start(&loop, &s, false);
    hop(&loop, &s, stranger, NULL, &h);
    assert_int_equal(h.rc, -ECONNABORTED);
    assert_int_equal(s.got.len, 0);
    srv_stop(&loop, &s);
    tls_context_free(stranger);

    /* a server that does not speak TLS */
    srv_start(&loop, &s, true);
    hop(&loop, &s, trusting, NULL, &h);
    assert_int_equal(h.rc, -ECONNABORTED);
    srv_stop(&loop, &s);

    tls_context_free(trusting);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int setup(void **state)
{
    (void)state;
    return test_pki_make(&pki);
}

static int teardown(void **state)
{
    (void)state;
    test_pki_remove(&pki);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
