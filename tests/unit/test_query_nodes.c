/* test_query_nodes.c — GB API requests forwarded to the node that holds the
 * device (src/gb/upper/query_nodes.c, issue 16) without a Redis server or
 * another node (tests/peers/test_gb_nodes.sh runs them for real):
 *  - what a node accepts as an HTTP answer (api_httpc_parse, events/httpc.c):
 *    framing by Content-Length, chunked coding or the close, 1xx skipped,
 *    "need more" until whole, a cut answer, malformed heads, the caps;
 *  - a peer's API address read from the node registry (cluster_peer_api);
 *  - the verdict on a device's record (gb_owner_verdict: go, 404, 409);
 *  - the hop itself (events/httpc_uv.c) against a server in this process on
 *    loopback: the request as sent (Host, the mark, the body), a chunked
 *    answer, a refused connect, a silent peer ended by the deadline, not
 *    HTTP, over the body cap, closed mid-answer, cancelled (no callback);
 *  - gb_upper_forward's refusals and bounds on the role (the harness, Redis
 *    at 127.0.0.1:1 where nobody listens): not a GB id, a method, target or
 *    Authorization that cannot be sent on, the cap (-EBUSY), a lookup that
 *    times out (503 redis-unavailable), the stop with one waiting (503). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>
#include <uv.h>

#include "events/httpc.h"
#include "transport/httpc_uv.h"
#include "gb/upper/device_mirror.h"
#include "gb_upper_harness.h"
#include "registrar/cluster.h"

/* ---- api_httpc_parse ---- */

static int parse(const char *s, bool eof, struct api_httpc_response *r)
{
    char err[128];
    return api_httpc_parse(s, strlen(s), eof, false, 1000, r, err, sizeof(err));
}

static void test_parse(void **state)
{
    (void)state;
    struct api_httpc_response r;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
    assert_int_equal(parse(ok, false, &r), 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 7);
    assert_string_equal(r.body, "{\"a\":1}");
    assert_string_equal(r.content_type, "application/json");
    api_httpc_response_free(&r);
    /* every prefix needs more; cut by the close: -2 */
    char buf[256];
    for (size_t n = 0; n < strlen(ok); n++) {
        memcpy(buf, ok, n);
        buf[n] = '\0';
        assert_int_equal(parse(buf, false, &r), 0);
        assert_int_equal(parse(buf, true, &r), -2);
    }
    /* 100 Continue skipped; chunked; by the close; 204 has no body */
    assert_int_equal(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}", false,
                           &r),
                     1);
    assert_int_equal(r.status, 404);
    api_httpc_response_free(&r);
    const char *ch = "HTTP/1.1 504 x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
    assert_int_equal(parse(ch, false, &r), 1);
    assert_int_equal(r.status, 504);
    assert_string_equal(r.body, "{\"a\":1}");
    api_httpc_response_free(&r);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a", false, &r), 0);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, &r), -1);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\n\r\n{}", false, &r), 0);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\n\r\n{}", true, &r), 1);
    assert_string_equal(r.body, "{}");
    api_httpc_response_free(&r);
    assert_int_equal(parse("HTTP/1.1 204 No Content\r\n\r\n", false, &r), 1);
    assert_int_equal(r.len, 0);
    api_httpc_response_free(&r);
    /* not HTTP; a bad status or length; over the caps */
    assert_int_equal(parse("SSH-2.0-x\r\n\r\n", false, &r), -1);
    assert_int_equal(parse("HTTP/1.1 999 x\r\n\r\n", false, &r), -1);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", false, &r), -1);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n", false, &r), -1);
    char big[1200];
    snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\n\r\n%01100d", 0);
    assert_int_equal(parse(big, false, &r), -1);
    size_t hn = 70 * 1024;
    char *head = malloc(hn + 1);
    assert_non_null(head);
    memset(head, 'a', hn);
    memcpy(head, "HTTP/1.1 200 OK\r\nX: ", 20);
    head[hn] = '\0';
    assert_int_equal(parse(head, false, &r), -1);
    free(head);
}

/* ---- cluster_peer_api ---- */

static bool peer_tls;

static int peer_api(const char *s, char *hp, struct sockaddr_storage *a)
{
    return cluster_peer_api(s, strlen(s), hp, CLUSTER_API_MAX, a, &peer_tls);
}

static void test_peer_api(void **state)
{
    (void)state;
    char hp[CLUSTER_API_MAX];
    struct sockaddr_storage a;
    assert_int_equal(peer_api("10.0.0.2:8080", hp, &a), 0);
    assert_string_equal(hp, "10.0.0.2:8080");
    assert_false(peer_tls);
    assert_int_equal(a.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&a)->sin_port), 8080);
    assert_int_equal(peer_api("[::1]:1", hp, &a), 0);
    assert_int_equal(a.ss_family, AF_INET6);
    /* https: the scheme is told apart, the host:port is what follows it */
    assert_int_equal(peer_api("https://10.0.0.2:8443", hp, &a), 0);
    assert_string_equal(hp, "10.0.0.2:8443");
    assert_true(peer_tls);
    assert_int_equal(ntohs(((struct sockaddr_in *)&a)->sin_port), 8443);
    assert_int_equal(peer_api("https://[::1]:443", hp, &a), 0);
    assert_true(peer_tls);
    assert_int_equal(a.ss_family, AF_INET6);
    const char *bad[] = {"", "10.0.0.2", "10.0.0.2:", ":80", "10.0.0.2:0", "10.0.0.2:65536", "10.0.0.2:8o",
                         "api.example.com:80", "::1:80", "[10.0.0.2]:80", "10.0.0.2:80\r\nX: y", "[]:80",
                         "10.0.0.2 :80", "10.0.0.2:123456", "https://", "http://10.0.0.2:80",
                         "https://https://10.0.0.2:80", "HTTPS://10.0.0.2:80", "https://api.example.com:443",
                         "https:/10.0.0.2:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) assert_int_equal(peer_api(bad[i], hp, &a), -1);
    assert_int_equal(cluster_peer_api("10.0.0.2:80\0x", 13, hp, sizeof(hp), &a, &peer_tls), -1);
    assert_int_equal(cluster_peer_api("10.0.0.2:80", 11, hp, 11, &a, &peer_tls), -1); /* no room for its NUL */
}

/* ---- gb_owner_verdict ---- */

static void test_owner_verdict(void **state)
{
    (void)state;
    struct gb_devmirror_record rec = {.node = "node-a", .online = true};
    assert_int_equal(gb_owner_verdict(&rec, "node-b", false), GB_OWNER_GO);
    assert_int_equal(gb_owner_verdict(&rec, "node-b", true), GB_OWNER_GO); /* offline here, moved to A */
    assert_int_equal(gb_owner_verdict(&rec, "node-a", false), GB_OWNER_NOWHERE); /* stale: names us */
    assert_int_equal(gb_owner_verdict(&rec, "node-a", true), GB_OWNER_OFFLINE_HERE);
    assert_int_equal(gb_owner_verdict(NULL, "node-b", false), GB_OWNER_NOWHERE);
    assert_int_equal(gb_owner_verdict(NULL, "node-b", true), GB_OWNER_OFFLINE_HERE);
    rec.online = false;
    assert_int_equal(gb_owner_verdict(&rec, "node-b", false), GB_OWNER_OFFLINE);
}

/* ---- httpc_uv against a server in this process ---- */

enum srv_mode { SRV_JSON, SRV_SILENT, SRV_GARBAGE, SRV_BIG, SRV_CLOSE };

struct srv {
    uv_tcp_t listener;
    uv_tcp_t conn;
    bool have_conn;
    enum srv_mode mode;
    sbuf_t got;              /* the request as received */
    uv_write_t wr;
    int port;
};

struct hop {
    int calls, rc, status;
    char body[256];
};

static void on_hop(void *arg, int rc, const struct api_httpc_response *resp, const char *why)
{
    (void)why;
    struct hop *h = arg;
    h->calls++;
    h->rc = rc;
    if (resp) {
        h->status = resp->status;
        snprintf(h->body, sizeof(h->body), "%s", resp->body);
    }
}

static void srv_alloc(uv_handle_t *hd, size_t sz, uv_buf_t *b)
{
    (void)hd, (void)sz;
    static char buf[4096];
    *b = uv_buf_init(buf, sizeof(buf));
}

static void srv_closed(uv_handle_t *hd) { (void)hd; }

static void srv_written(uv_write_t *w, int status)
{
    (void)status;
    struct srv *s = w->data;
    uv_close((uv_handle_t *)&s->conn, srv_closed);
}

static void srv_send(struct srv *s, const char *text)
{
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));
    s->wr.data = s;
    assert_int_equal(uv_write(&s->wr, (uv_stream_t *)&s->conn, &b, 1, srv_written), 0);
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct srv *s = st->data;
    if (n <= 0) return;
    sbuf_append(&s->got, b->base, (size_t)n);
    const char *end = strstr(s->got.data, "\r\n\r\n");
    const char *cl = strstr(s->got.data, "Content-Length: ");
    if (!end || (cl && s->got.len < (size_t)(end + 4 - s->got.data) + strtoul(cl + 16, NULL, 10))) return;
    uv_read_stop(st);
    switch (s->mode) {
    case SRV_JSON:
        srv_send(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\n{\"ok\"\r\n3\r\n:1}\r\n0\r\n\r\n");
        break;
    case SRV_GARBAGE: srv_send(s, "SSH-2.0-not-http\r\n\r\n"); break;
    case SRV_BIG: srv_send(s, "HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n{"); break;
    case SRV_CLOSE: srv_send(s, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"cut\""); break;
    case SRV_SILENT: break;
    }
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
    uv_read_start((uv_stream_t *)&s->conn, srv_alloc, srv_read);
}

static void srv_start(uv_loop_t *loop, struct srv *s, enum srv_mode mode)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    sbuf_init(&s->got);
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
    uv_close((uv_handle_t *)&s->listener, srv_closed);
    if (s->have_conn && !uv_is_closing((uv_handle_t *)&s->conn)) uv_close((uv_handle_t *)&s->conn, srv_closed);
    uv_run(loop, UV_RUN_DEFAULT);
    sbuf_free(&s->got);
}

/* Runs the loop until the hop is called back (or 5 s of real time). */
static void run_until(uv_loop_t *loop, struct hop *h)
{
    uint64_t end = uv_hrtime() + 5000000000ull;
    while (!h->calls && uv_hrtime() < end) uv_run(loop, UV_RUN_ONCE);
}

static int start(uv_loop_t *loop, int port, uint32_t timeout_ms, struct hop *h, struct httpc_uv **hd)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    char host[32];
    snprintf(host, sizeof(host), "127.0.0.1:%d", port);
    struct httpc_uv_request r = {.to = (const struct sockaddr *)&a, .host = host, .method = "POST",
                                 .target = "/api/v1/gb/devices/34020000001320000001/info",
                                 .headers = "X-Cascade-Forwarded: node-b\r\nAuthorization: Bearer t\r\n",
                                 .content_type = "application/json", .body = "{\"x\":1}", .body_len = 7,
                                 .timeout_ms = timeout_ms, .max_body = 1000};
    memset(h, 0, sizeof(*h));
    return httpc_uv_start(loop, &r, on_hop, h, hd);
}

static void test_hop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct srv s;
    struct hop h;
    struct httpc_uv *hd;

    /* the request as sent, a chunked answer */
    srv_start(&loop, &s, SRV_JSON);
    assert_int_equal(start(&loop, s.port, 5000, &h, &hd), 0);
    assert_int_equal(h.calls, 0); /* never inside the start */
    run_until(&loop, &h);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.rc, 0);
    assert_int_equal(h.status, 200);
    assert_string_equal(h.body, "{\"ok\":1}");
    assert_non_null(strstr(s.got.data, "POST /api/v1/gb/devices/34020000001320000001/info HTTP/1.1\r\n"));
    char host[48];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", s.port);
    assert_non_null(strstr(s.got.data, host));
    assert_non_null(strstr(s.got.data, "\r\nX-Cascade-Forwarded: node-b\r\n"));
    assert_non_null(strstr(s.got.data, "\r\nAuthorization: Bearer t\r\n"));
    assert_non_null(strstr(s.got.data, "\r\nContent-Length: 7\r\n\r\n{\"x\":1}"));
    srv_stop(&loop, &s);

    /* not HTTP: -EPROTO; over the cap: -EMSGSIZE; cut: -ECONNRESET */
    enum srv_mode modes[] = {SRV_GARBAGE, SRV_BIG, SRV_CLOSE};
    int want[] = {-EPROTO, -EMSGSIZE, -ECONNRESET};
    for (size_t i = 0; i < 3; i++) {
        srv_start(&loop, &s, modes[i]);
        assert_int_equal(start(&loop, s.port, 5000, &h, &hd), 0);
        run_until(&loop, &h);
        assert_int_equal(h.calls, 1);
        assert_int_equal(h.rc, want[i]);
        srv_stop(&loop, &s);
    }

    /* silent: the deadline ends it, once */
    srv_start(&loop, &s, SRV_SILENT);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(start(&loop, s.port, 200, &h, &hd), 0);
    run_until(&loop, &h);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.rc, -ETIMEDOUT);
    assert_true(uv_hrtime() - t0 >= 190000000ull);
    srv_stop(&loop, &s);
    /* cancelled while waiting: never called back */
    srv_start(&loop, &s, SRV_SILENT);
    assert_int_equal(start(&loop, s.port, 200, &h, &hd), 0);
    httpc_uv_cancel(hd);
    uv_run(&loop, UV_RUN_NOWAIT);
    srv_stop(&loop, &s);
    assert_int_equal(h.calls, 0);

    /* refused: a port nobody listens on any more */
    srv_start(&loop, &s, SRV_SILENT);
    int port = s.port;
    srv_stop(&loop, &s);
    assert_int_equal(start(&loop, port, 5000, &h, &hd), 0);
    run_until(&loop, &h);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.rc, -ECONNREFUSED);

    /* what cannot be sent */
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    struct httpc_uv_request r = {.to = (const struct sockaddr *)&a, .host = "h", .method = "GET", .target = "/x\r\n"};
    assert_int_equal(httpc_uv_start(&loop, &r, on_hop, &h, &hd), -EINVAL);
    r.target = "x";
    assert_int_equal(httpc_uv_start(&loop, &r, on_hop, &h, &hd), -EINVAL);
    r.target = "/x";
    r.host = "";
    assert_int_equal(httpc_uv_start(&loop, &r, on_hop, &h, &hd), -EINVAL);

    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- gb_upper_forward on the role ---- */

/* A GB upper role with the device mirror and the cluster on, against a Redis
 * that never answers (127.0.0.1:1): the fixture of the across-nodes tests
 * below. across_start makes them (the role does not use them yet: a test
 * first checks what it does without), across_attach hands them to the role,
 * across_end frees everything and closes the loop. */
struct across {
    struct gbh *h;
    uv_loop_t loop;
    struct gb_devmirror *m;
    struct cluster *c;
};

static void across_start(struct across *x, const char *node_id)
{
    x->h = calloc(1, sizeof(*x->h));
    assert_non_null(x->h);
    gbh_init(x->h);
    assert_int_equal(gbh_start(x->h), 0);
    assert_int_equal(uv_loop_init(&x->loop), 0);
    struct redis_config rc = {.mirror_gb_devices = true, .mirror_bindings = true, .cluster_route = true,
                              .timeout_ms = 500, .max_pending = 10, .heartbeat_ms = 1000, .lookup_max_pending = 10};
    snprintf(rc.nodes, sizeof(rc.nodes), "127.0.0.1:1");
    snprintf(rc.key_prefix, sizeof(rc.key_prefix), "t:");
    int err = 0;
    x->m = gb_devmirror_new(&x->loop, &x->h->ua_w.timers, &rc, node_id, &err);
    x->c = cluster_new(&x->loop, &x->h->ua_w.timers, &rc, node_id, "sip:127.0.0.1:5060", &err);
    assert_non_null(x->m);
    assert_non_null(x->c);
}

static void across_attach(struct across *x)
{
    x->h->g->devmirror = x->m;
    x->h->g->cluster = x->c;
    x->h->g->loop = &x->loop;
}

static void across_end(struct across *x)
{
    gb_devmirror_free(x->m);
    cluster_free(x->c);
    gbh_free(x->h);
    free(x->h);
    for (int i = 0; i < 10; i++) uv_run(&x->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&x->loop), 0);
}

struct answer {
    struct gb_waiter wt;
    int calls, status;
    char error[64];
};

static void answer_done(struct gb_waiter *wt, int status, json_t *body)
{
    struct answer *a = (struct answer *)wt;
    a->calls++;
    a->status = status;
    const char *e = json_string_value(json_object_get(body, "error"));
    snprintf(a->error, sizeof(a->error), "%s", e ? e : "");
    json_decref(body);
}

static void test_forward_bounds(void **state)
{
    (void)state;
    struct across x;
    across_start(&x, "node-b");
    struct gbh *h = x.h;
    struct gb_upper *g = h->g;
    const char *dev = "34020000001320000001";
    struct gb_forward_req fr = {.method = "POST", .target = "/api/v1/gb/devices/34020000001320000001/info"};
    struct answer a = {.wt.done = answer_done}, b = {.wt.done = answer_done}, d = {.wt.done = answer_done};
    assert_int_equal(gb_upper_forward(g, dev, &fr, &a.wt), -ENOENT); /* across nodes off */
    across_attach(&x);
    g->forward_max = 1;
    assert_int_equal(gb_upper_forward(g, "3402", &fr, &a.wt), -ENOENT); /* not a GB id */
    fr.method = "DELETE";
    assert_int_equal(gb_upper_forward(g, dev, &fr, &a.wt), -EINVAL);
    fr.method = "POST";
    fr.target = "/api/v1/gb/devices/x y";
    assert_int_equal(gb_upper_forward(g, dev, &fr, &a.wt), -EINVAL);
    fr.target = "/api/v1/gb/devices/34020000001320000001/info";
    fr.authorization = "Bearer t\r\nX-Cascade-Forwarded: no";
    assert_int_equal(gb_upper_forward(g, dev, &fr, &a.wt), -EINVAL);
    fr.authorization = "Bearer t";
    fr.body = "{}";
    fr.body_len = 2;
    assert_int_equal(gb_upper_forward(g, dev, &fr, &a.wt), 0);
    assert_int_equal(gb_upper_forward(g, dev, &fr, &b.wt), -EBUSY); /* the cap: one at once */
    struct gb_upper_stats st;
    gb_upper_get_stats(g, &st);
    assert_int_equal(st.node_queries_pending, 1);
    assert_int_equal(st.node_query_failures, 1);
    /* Redis at 127.0.0.1:1 never answers: the lookup's deadline, 503 */
    for (int i = 0; i < 50 && !a.calls; i++) {
        uv_run(&x.loop, UV_RUN_NOWAIT);
        gbh_advance(h, 50);
    }
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 503);
    assert_string_equal(a.error, "redis-unavailable");
    gb_upper_get_stats(g, &st);
    assert_int_equal(st.node_queries_pending, 0);
    /* one waiting when the role stops: 503 shutting-down */
    assert_int_equal(gb_upper_forward(g, dev, &fr, &d.wt), 0);
    gb_upper_stop(g);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 503);
    assert_string_equal(d.error, "shutting-down");
    assert_int_equal(b.calls, 0);
    across_end(&x);
}

struct got {
    int calls, rc, status;
};

static void on_got(void *arg, int rc, int status, const char *body, size_t len, const char *why)
{
    (void)body, (void)len, (void)why;
    struct got *g = arg;
    g->calls++;
    g->rc = rc;
    g->status = status;
}

/* A middle node's GET of its own to another node's API (gb_upper_node_get,
 * the directory across nodes): refusals, a node the registry does not know
 * (reported later, never from the call), cancel (no callback), the stop
 * (-ESHUTDOWN), and the live nodes listed (none here). */
static void test_node_get(void **state)
{
    (void)state;
    struct across x;
    across_start(&x, "node-m");
    struct gbh *h = x.h;
    struct gb_upper *g = h->g;
    struct got a = {0}, b = {0}, d = {0};
    struct gb_node_get *ha = NULL, *hb = NULL, *hd = NULL;
    const char *t = "/api/v1/gb/channels?relayed=1&device=34020000001320000001";
    assert_int_equal(gb_upper_node_get(g, "node-b", t, 0, 1024, on_got, &a, &ha), -ENOENT); /* not shared */
    assert_null(gb_upper_node_id(g));
    assert_int_equal(gb_upper_live_nodes(g, NULL, NULL), 0);
    across_attach(&x);
    assert_string_equal(gb_upper_node_id(g), "node-m");
    assert_int_equal(gb_upper_live_nodes(g, NULL, NULL), 0); /* no heartbeat round yet */
    assert_int_equal(gb_upper_node_get(g, "node-b", "/api/v1/gb/channels x", 0, 1024, on_got, &a, &ha), -EINVAL);
    assert_int_equal(gb_upper_node_get(g, "node-b", "/api/v1/a\r\nX: y", 0, 1024, on_got, &a, &ha), -EINVAL);
    assert_int_equal(gb_upper_node_get(g, "node-b", "api/v1", 0, 1024, on_got, &a, &ha), -EINVAL);
    assert_int_equal(gb_upper_node_get(g, "node-b", t, 0, 0, on_got, &a, &ha), -EINVAL); /* no body cap */
    assert_int_equal(gb_upper_node_get(g, NULL, t, 0, 1024, on_got, &a, &ha), -EINVAL);
    /* A node never seen: -ENOENT, from the loop, not from the call. */
    assert_int_equal(gb_upper_node_get(g, "node-b", t, 0, 1024, on_got, &a, &ha), 0);
    assert_int_equal(a.calls, 0);
    assert_int_equal(gb_upper_node_get(g, "node-c", t, 0, 1024, on_got, &b, &hb), 0);
    gb_upper_node_get_cancel(hb); /* cancelled: no callback */
    gbh_advance(h, 1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.rc, -ENOENT);
    assert_int_equal(b.calls, 0);
    /* one pending when the role stops: -ESHUTDOWN, once */
    assert_int_equal(gb_upper_node_get(g, "node-d", t, 0, 1024, on_got, &d, &hd), 0);
    gb_upper_stop(g);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.rc, -ESHUTDOWN);
    gbh_advance(h, 10);
    assert_int_equal(d.calls, 1);
    assert_int_equal(gb_upper_node_get(g, "node-b", t, 0, 1024, on_got, &a, &ha), -ENOENT); /* stopped: forgotten */
    across_end(&x);
}

struct located {
    int calls, status;
    char device[24];
};

static void on_located(void *arg, int status, const struct gb_node_target *t)
{
    struct located *l = arg;
    l->calls++;
    l->status = status;
    snprintf(l->device, sizeof(l->device), "%s", t ? t->device_id : "");
}

/* A middle node's lookups (gb_upper_locate: the channel's device, then its
 * record) and its queries sent to a peer's API (gb_upper_query_remote):
 * refusals, the Redis deadline (503), cancel, stop; gb_upper_send_via
 * refuses a local or unreadable target. */
static void test_locate(void **state)
{
    (void)state;
    struct across x;
    across_start(&x, "node-m");
    struct gbh *h = x.h;
    struct gb_upper *g = h->g;
    const char *ch = "34020000001310000001";
    struct located a = {0}, b = {0}, d = {0};
    struct gb_locate *ha, *hb, *hd;
    assert_int_equal(gb_upper_locate(g, ch, on_located, &a, &ha), -ENOENT); /* across nodes off */
    across_attach(&x);
    assert_int_equal(gb_upper_locate(g, "3402", on_located, &a, &ha), -EINVAL);
    assert_int_equal(gb_upper_locate(g, ch, on_located, &a, &ha), 0);
    assert_int_equal(gb_upper_locate(g, ch, on_located, &b, &hb), 0);
    gb_upper_locate_cancel(g, hb);
    assert_int_equal(a.calls, 0); /* never from inside the call */

    /* Queries for a peer's API: a catalog is not one; RecordInfo needs its range. */
    struct answer q = {.wt.done = answer_done};
    assert_int_equal(gb_upper_query_remote(g, "34020000001320000001", GB_Q_CATALOG, NULL, NULL, NULL, &q.wt), -EINVAL);
    assert_int_equal(gb_upper_query_remote(g, "34020000001320000001", GB_Q_RECORDS, ch, NULL, NULL, &q.wt), -EINVAL);
    assert_int_equal(gb_upper_query_remote(g, "x", GB_Q_INFO, NULL, NULL, NULL, &q.wt), -ENOENT);
    assert_int_equal(gb_upper_query_remote(g, "34020000001320000001", GB_Q_INFO, ch, NULL, NULL, &q.wt), 0);

    /* Redis at 127.0.0.1:1 never answers: 503 at the deadline, once; the
     * cancelled one never; the query's forward gets its 503 too. */
    for (int i = 0; i < 50 && (!a.calls || !q.calls); i++) {
        uv_run(&x.loop, UV_RUN_NOWAIT);
        gbh_advance(h, 50);
    }
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 503);
    assert_string_equal(a.device, "");
    assert_int_equal(b.calls, 0);
    assert_int_equal(q.calls, 1);
    assert_int_equal(q.status, 503);
    assert_string_equal(q.error, "redis-unavailable");

    /* Not sent: a local target, or a route that does not read. */
    struct ua_request r = {.method = SIP_MESSAGE};
    struct gb_node_target local = {.device_id = "34020000001320000001", .node = "node-m", .local = true};
    assert_null(gb_upper_send_via(g, &local, ch, &r, NULL, NULL));
    struct gb_node_target bad = {.device_id = "34020000001320000001", .node = "node-a", .route = "sip:nobrackets",
                                 .hostport = "127.0.0.1:5070"};
    assert_null(gb_upper_send_via(g, &bad, ch, &r, NULL, NULL));
    bad.route = "<sip:127.0.0.1:5070;lr;cascade-peer>";
    assert_null(gb_upper_send_via(g, &bad, "not-an-id", &r, NULL, NULL));

    /* One waiting when the role stops: 503 inside the stop. */
    assert_int_equal(gb_upper_locate(g, ch, on_located, &d, &hd), 0);
    gb_upper_stop(g);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 503);
    assert_int_equal(gb_upper_locate(g, ch, on_located, &b, &hb), -ENOENT); /* stopped: off */
    across_end(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_peer_api),
        cmocka_unit_test(test_owner_verdict),
        cmocka_unit_test(test_hop),
        cmocka_unit_test(test_forward_bounds),
        cmocka_unit_test(test_node_get),
        cmocka_unit_test(test_locate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
