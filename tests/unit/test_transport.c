/* test_transport.c — the transport on real loopback sockets (libuv loop in
 * the test, plain POSIX sockets as the peer): UDP receive and Via stamping
 * (RFC 3581), TCP framing, CRLF keepalive, garbage/oversize/idle closes,
 * connection reuse, and the transport feeding the transaction layer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "transport/transport.h"
#include "txn/txn.h"

#define MAX_MSGS 16

struct got {
    bool is_request, parse_error;
    int status;
    char method[32];
    char via[512];                 /* the top Via header value as handed up */
    char received[64];
    int rport;
    enum sip_transport proto;
    uint64_t conn_id;
    uint32_t listener_id;
    char src_text[TRANSPORT_ADDR_TEXT];
    char body[256];
};

struct node {                      /* one transport plus what it saw */
    struct tt *x;
    struct transport *t;
    struct got msgs[MAX_MSGS];
    int nmsgs;
    int lost;
    uint64_t lost_conn;
    char lost_reason[64];
    int reply_status;              /* answer requests statelessly with this status */
    bool count_only;               /* count requests, check their Call-IDs run "q0", "q1", ... */
    int seq_errors;
    struct txn_layer *txn;         /* when set, messages go to the transaction layer */
};

struct tt {
    uv_loop_t loop;
    uv_timer_t tick;
    struct timer_service ts;
    struct node a, b;
    /* transaction user for the end-to-end test */
    struct txn *st;
    int requests;
    /* Set: the timers see fake_ms instead of the loop's clock, so a test
     * decides how much time passes whatever the machine's load. */
    bool manual_time;
    uint64_t fake_ms;
};

/* ---- callbacks ---- */

static void on_message(void *user, const struct transport_rx *rx)
{
    struct node *n = user;
    if (n->txn && !rx->parse_error) {
        txn_layer_receive(n->txn, rx);
        return;
    }
    if (n->count_only) {
        char want[16];
        int w = snprintf(want, sizeof(want), "q%d", n->nmsgs++);
        if (!rx->msg || rx->msg->call_id.len != (size_t)w || memcmp(rx->msg->call_id.s, want, (size_t)w) != 0)
            n->seq_errors++;
        if (!n->reply_status || !rx->msg) return;
    } else {
        assert_true(n->nmsgs < MAX_MSGS);
    }
    if (n->count_only) {
        sbuf_t b;
        sbuf_init(&b);
        assert_int_equal(sip_build_response(rx->msg, n->reply_status, NULL, STR_LIT("rt"), NULL, 0, STR_NULL,
                                            STR_NULL, &b), 0);
        struct transport_dest d;
        assert_int_equal(transport_response_dest(rx, &d), 0);
        assert_int_equal(transport_send(n->t, &d, b.data, b.len), 0);
        sbuf_free(&b);
        return;
    }
    struct got *g = &n->msgs[n->nmsgs++];
    memset(g, 0, sizeof(*g));
    g->parse_error = rx->parse_error != NULL;
    g->proto = rx->proto;
    g->conn_id = rx->conn_id;
    g->listener_id = rx->listener_id;
    snprintf(g->src_text, sizeof(g->src_text), "%s", rx->src_text);
    const struct sip_msg *m = rx->msg;
    if (!m) return;
    g->is_request = m->is_request;
    g->status = m->status;
    str_copy(g->method, sizeof(g->method), m->method_name);
    const struct sip_header *via = sip_msg_header(m, SIP_HDR_VIA);
    if (via) str_copy(g->via, sizeof(g->via), via->value);
    str_copy(g->received, sizeof(g->received), m->via.received);
    g->rport = m->via.has_rport ? m->via.rport : -1;
    str_copy(g->body, sizeof(g->body), m->body);
    if (n->reply_status && m->is_request && !rx->parse_error) {
        sbuf_t b;
        sbuf_init(&b);
        assert_int_equal(
            sip_build_response(m, n->reply_status, NULL, STR_LIT("rt"), NULL, 0, STR_NULL, STR_NULL, &b), 0);
        struct transport_dest d;
        assert_int_equal(transport_response_dest(rx, &d), 0);
        assert_int_equal(transport_send(n->t, &d, b.data, b.len), 0);
        sbuf_free(&b);
    }
}

static void on_conn_lost(void *user, uint64_t conn_id, const struct sockaddr_storage *peer, const char *reason)
{
    (void)peer;
    struct node *n = user;
    n->lost++;
    n->lost_conn = conn_id;
    snprintf(n->lost_reason, sizeof(n->lost_reason), "%s", reason);
}

static void tick(uv_timer_t *h)
{
    struct tt *x = h->data;
    timer_run(&x->ts, x->manual_time ? x->fake_ms : uv_now(&x->loop));
}

/* The transport's clock: the fake one when the test drives time. */
static uint64_t node_now(void *user)
{
    struct tt *x = ((struct node *)user)->x;
    return x->manual_time ? x->fake_ms : uv_now(&x->loop);
}

static struct transport *node_start(struct tt *x, struct node *n, const struct transport_config *cfg)
{
    n->x = x;
    struct transport_callbacks cb = {
        .user = n, .on_message = on_message, .on_conn_lost = on_conn_lost, .now_ms = node_now};
    n->t = transport_new(&x->loop, &x->ts, cfg, &cb);
    assert_non_null(n->t);
    return n->t;
}

static int setup(void **state)
{
    struct tt *x = calloc(1, sizeof(*x));
    assert_int_equal(uv_loop_init(&x->loop), 0);
    timer_service_init(&x->ts);
    uv_timer_init(&x->loop, &x->tick);
    x->tick.data = x;
    uv_timer_start(&x->tick, tick, 5, 5);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct tt *x = *state;
    if (x->a.txn) txn_layer_free(x->a.txn);
    transport_free(x->a.t);
    transport_free(x->b.t);
    uv_close((uv_handle_t *)&x->tick, NULL);
    uv_run(&x->loop, UV_RUN_DEFAULT); /* close callbacks free the transports */
    assert_int_equal(uv_loop_close(&x->loop), 0);
    timer_service_free(&x->ts);
    free(x);
    return 0;
}

/* Runs the loop until *counter reaches target (or ms pass). */
static bool run_until(struct tt *x, const int *counter, int target, int ms)
{
    uv_update_time(&x->loop);
    uint64_t end = uv_now(&x->loop) + (uint64_t)ms;
    while (*counter < target) {
        uv_run(&x->loop, UV_RUN_ONCE);
        if (uv_now(&x->loop) >= end) return *counter >= target;
    }
    return true;
}

static void run_for(struct tt *x, int ms)
{
    int never = 0;
    run_until(x, &never, 1, ms);
}

/* ---- plain sockets for the peer side ---- */

static int peer_socket(int family, int type, struct sockaddr_storage *bound)
{
    int fd = socket(family, type, 0);
    assert_true(fd >= 0);
    struct sockaddr_storage a;
    memset(&a, 0, sizeof(a));
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*s4);
    }
    if (bind(fd, (struct sockaddr *)&a, len) != 0) {
        close(fd);
        return -1;
    }
    len = sizeof(*bound);
    getsockname(fd, (struct sockaddr *)bound, &len);
    return fd;
}

static void listener_addr(struct transport *t, uint32_t id, const char *host, struct sockaddr_storage *out)
{
    int port = transport_listener_port(t, id);
    assert_true(port > 0);
    assert_int_equal(transport_addr_parse(host, strlen(host), (uint16_t)port, out), 0);
}

static int tcp_peer(struct transport *t, uint32_t id)
{
    struct sockaddr_storage bound, srv;
    int fd = peer_socket(AF_INET, SOCK_STREAM, &bound);
    listener_addr(t, id, "127.0.0.1", &srv);
    assert_int_equal(connect(fd, (struct sockaddr *)&srv, sizeof(struct sockaddr_in)), 0);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* Reads what the peer socket has within ms while running the loop. 0 on EOF, -1 on nothing. */
static ssize_t peer_recv(struct tt *x, int fd, char *buf, size_t cap, int ms)
{
    uv_update_time(&x->loop);
    uint64_t end = uv_now(&x->loop) + (uint64_t)ms;
    for (;;) {
        ssize_t r = recv(fd, buf, cap - 1, MSG_DONTWAIT);
        if (r >= 0) {
            buf[r] = '\0';
            return r;
        }
        if (errno == ECONNRESET) return 0;
        if (uv_now(&x->loop) >= end) return -1;
        uv_run(&x->loop, UV_RUN_ONCE);
    }
}

#define REQ_HEAD(via)                                                                 \
    "OPTIONS sip:cascade@127.0.0.1 SIP/2.0\r\n"                                       \
    "Via: " via "\r\n"                                                                \
    "Max-Forwards: 70\r\n"                                                            \
    "From: <sip:alice@example.com>;tag=a1\r\n"                                        \
    "To: <sip:cascade@example.com>\r\n"                                               \
    "Call-ID: tcall@example.com\r\n"                                                  \
    "CSeq: 1 OPTIONS\r\n"

#define SIMPLE_REQ REQ_HEAD("SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKt1") "Content-Length: 0\r\n\r\n"

/* ---- UDP ---- */

static void test_udp_request_rport_received(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    node_start(x, n, NULL);
    n->reply_status = 200;
    int id = transport_listen(n->t, SIP_TRANSPORT_UDP, "127.0.0.1", 0);
    assert_true(id > 0);
    struct sockaddr_storage me, srv;
    int fd = peer_socket(AF_INET, SOCK_DGRAM, &me);
    listener_addr(n->t, (uint32_t)id, "127.0.0.1", &srv);
    const char *req = REQ_HEAD("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKu1") "Content-Length: 0\r\n\r\n";
    assert_true(sendto(fd, req, strlen(req), 0, (struct sockaddr *)&srv, sizeof(struct sockaddr_in)) > 0);
    assert_true(run_until(x, &n->nmsgs, 1, 2000));
    struct got *g = &n->msgs[0];
    uint16_t my_port = transport_addr_port(&me);
    char text[64];
    snprintf(text, sizeof(text), "127.0.0.1:%u", my_port);
    assert_string_equal(g->src_text, text);
    assert_int_equal(g->proto, SIP_TRANSPORT_UDP);
    assert_int_equal(g->conn_id, 0);
    assert_int_equal(g->listener_id, id);
    assert_string_equal(g->method, "OPTIONS");
    /* RFC 3581 §4: a bare rport gets the source port, and received is added. */
    assert_string_equal(g->received, "127.0.0.1");
    assert_int_equal(g->rport, my_port);
    char want[256];
    snprintf(want, sizeof(want), "SIP/2.0/UDP 10.0.0.1:5060;rport=%u;branch=z9hG4bKu1;received=127.0.0.1", my_port);
    assert_string_equal(g->via, want);
    /* The response went to the source port (not the sent-by 5060) and carries the stamped Via. */
    char buf[2048];
    ssize_t r = peer_recv(x, fd, buf, sizeof(buf), 2000);
    assert_true(r > 0);
    assert_non_null(strstr(buf, "SIP/2.0 200 "));
    assert_non_null(strstr(buf, want));
    struct transport_stats s;
    transport_get_stats(n->t, &s);
    assert_int_equal(s.messages_in, 1);
    assert_int_equal(s.messages_out, 1);
    close(fd);
}

static void test_udp_via_untouched_and_sent_by_port(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    node_start(x, n, NULL);
    n->reply_status = 404;
    int id = transport_listen(n->t, SIP_TRANSPORT_UDP, "127.0.0.1", 0);
    struct sockaddr_storage me, srv, other;
    int fd = peer_socket(AF_INET, SOCK_DGRAM, &me);
    int fd2 = peer_socket(AF_INET, SOCK_DGRAM, &other); /* the sent-by port: a different socket */
    listener_addr(n->t, (uint32_t)id, "127.0.0.1", &srv);
    char req[1024];
    snprintf(req, sizeof(req),
             "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bKu2\r\n"
             "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c2\r\nCSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n",
             transport_addr_port(&other));
    assert_true(sendto(fd, req, strlen(req), 0, (struct sockaddr *)&srv, sizeof(struct sockaddr_in)) > 0);
    assert_true(run_until(x, &n->nmsgs, 1, 2000));
    char want[128];
    snprintf(want, sizeof(want), "SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bKu2", transport_addr_port(&other));
    assert_string_equal(n->msgs[0].via, want); /* sent-by is the source IP: nothing added */
    assert_string_equal(n->msgs[0].received, "");
    /* §18.2.2 without rport: the response goes to the sent-by port. */
    char buf[2048];
    assert_true(peer_recv(x, fd2, buf, sizeof(buf), 2000) > 0);
    assert_non_null(strstr(buf, "SIP/2.0 404 "));
    assert_int_equal(peer_recv(x, fd, buf, sizeof(buf), 50), -1);
    close(fd);
    close(fd2);
}

static void test_udp_via_list_and_existing_received(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    node_start(x, n, NULL);
    int id = transport_listen(n->t, SIP_TRANSPORT_UDP, "127.0.0.1", 0);
    struct sockaddr_storage me, srv;
    int fd = peer_socket(AF_INET, SOCK_DGRAM, &me);
    listener_addr(n->t, (uint32_t)id, "127.0.0.1", &srv);
    /* Two via-parms on one line; a stale received and a quoted param on the top one. */
    const char *req = REQ_HEAD("SIP/2.0/UDP host.example.com:5062 ; received=10.9.9.9;x=\"a;b\" ;branch=z9hG4bKl1 ,"
                               " SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKl0") "Content-Length: 0\r\n\r\n";
    assert_true(sendto(fd, req, strlen(req), 0, (struct sockaddr *)&srv, sizeof(struct sockaddr_in)) > 0);
    assert_true(run_until(x, &n->nmsgs, 1, 2000));
    assert_string_equal(n->msgs[0].via, "SIP/2.0/UDP host.example.com:5062;received=127.0.0.1;x=\"a;b\";"
                                        "branch=z9hG4bKl1 , SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKl0");
    assert_string_equal(n->msgs[0].received, "127.0.0.1");
    assert_int_equal(n->msgs[0].rport, -1); /* no rport asked: none added */
    close(fd);
}

static void test_udp_oversize_and_malformed(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    struct transport_config cfg = {.max_message_bytes = 1000};
    node_start(x, n, &cfg);
    int id = transport_listen(n->t, SIP_TRANSPORT_UDP, "127.0.0.1", 0);
    struct sockaddr_storage me, srv;
    int fd = peer_socket(AF_INET, SOCK_DGRAM, &me);
    listener_addr(n->t, (uint32_t)id, "127.0.0.1", &srv);
    socklen_t sl = sizeof(struct sockaddr_in);

    char big[1500];
    char head[] = REQ_HEAD("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbig");
    memset(big, 'a', sizeof(big));
    memcpy(big, head, strlen(head));
    assert_true(sendto(fd, big, sizeof(big), 0, (struct sockaddr *)&srv, sl) > 0);
    /* A request with a broken Max-Forwards: handed up with parse_error so the daemon answers 400. */
    const char *bad = "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbad\r\n"
                      "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c3\r\nCSeq: 1 OPTIONS\r\n"
                      "Max-Forwards: lots\r\n"
                      "Content-Length: 0\r\n\r\n";
    assert_true(sendto(fd, bad, strlen(bad), 0, (struct sockaddr *)&srv, sl) > 0);
    /* Without a CSeq no answer can be formed: dropped and logged here. */
    const char *noanswer = "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKna\r\n"
                           "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c4\r\n"
                           "Content-Length: 0\r\n\r\n";
    assert_true(sendto(fd, noanswer, strlen(noanswer), 0, (struct sockaddr *)&srv, sl) > 0);
    /* A malformed response is dropped here. */
    const char *badresp = "SIP/2.0 200 OK\r\nVia: garbage\r\n\r\n";
    assert_true(sendto(fd, badresp, strlen(badresp), 0, (struct sockaddr *)&srv, sl) > 0);
    /* CRLF keepalives on UDP are ignored. */
    assert_true(sendto(fd, "\r\n\r\n", 4, 0, (struct sockaddr *)&srv, sl) > 0);
    const char *good = REQ_HEAD("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKgood") "Content-Length: 0\r\n\r\n";
    assert_true(sendto(fd, good, strlen(good), 0, (struct sockaddr *)&srv, sl) > 0);
    assert_true(run_until(x, &n->nmsgs, 2, 2000));
    run_for(x, 50);
    assert_int_equal(n->nmsgs, 2);
    assert_true(n->msgs[0].parse_error);
    assert_string_equal(n->msgs[0].method, "OPTIONS");
    assert_false(n->msgs[1].parse_error);
    assert_non_null(strstr(n->msgs[1].via, "z9hG4bKgood"));
    struct transport_stats s;
    transport_get_stats(n->t, &s);
    assert_int_equal(s.dropped, 3);       /* the big one, the unanswerable request, the bad response */
    assert_int_equal(s.parse_errors, 3);
    close(fd);
}

static void test_udp_ipv6(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    node_start(x, n, NULL);
    int id = transport_listen(n->t, SIP_TRANSPORT_UDP, "::1", 0);
    if (id < 0) skip(); /* no IPv6 loopback here */
    struct sockaddr_storage me, srv;
    int fd = peer_socket(AF_INET6, SOCK_DGRAM, &me);
    if (fd < 0) skip();
    listener_addr(n->t, (uint32_t)id, "[::1]", &srv);
    const char *req = REQ_HEAD("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKv6") "Content-Length: 0\r\n\r\n";
    assert_true(sendto(fd, req, strlen(req), 0, (struct sockaddr *)&srv, sizeof(struct sockaddr_in6)) > 0);
    assert_true(run_until(x, &n->nmsgs, 1, 2000));
    char text[64];
    snprintf(text, sizeof(text), "[::1]:%u", transport_addr_port(&me));
    assert_string_equal(n->msgs[0].src_text, text);
    assert_string_equal(n->msgs[0].received, "::1");
    char host[64];
    uint16_t port = 0;
    assert_int_equal(transport_local(n->t, SIP_TRANSPORT_UDP, host, sizeof(host), &port), 0);
    assert_string_equal(host, "[::1]");
    assert_int_equal(port, transport_listener_port(n->t, (uint32_t)id));
    close(fd);
}

/* ---- TCP ---- */

/* One OPTIONS from fd to srv with Call-ID q<i>. */
static void send_numbered(int fd, const struct sockaddr_storage *srv, int i)
{
    char req[512];
    snprintf(req, sizeof(req),
             "OPTIONS sip:cascade@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bKq%d\r\n"
             "Max-Forwards: 70\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: q%d\r\n"
             "CSeq: %d OPTIONS\r\nContent-Length: 0\r\n\r\n",
             i, i, i + 1);
    assert_true(sendto(fd, req, strlen(req), 0, (const struct sockaddr *)srv, sizeof(struct sockaddr_in)) > 0);
}

/* Responses leave at the end of the loop turn, in one batch and in the order
 * they were made; a request leaves at once (its sender sees errors). */
static void test_udp_responses_batched_requests_immediate(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    node_start(x, n, NULL);
    n->reply_status = 200;
    n->count_only = true;
    int id = transport_listen(n->t, SIP_TRANSPORT_UDP, "127.0.0.1", 0);
    assert_true(id > 0);
    struct sockaddr_storage me, srv;
    int fd = peer_socket(AF_INET, SOCK_DGRAM, &me);
    listener_addr(n->t, (uint32_t)id, "127.0.0.1", &srv);
    enum { N = 40 };
    for (int i = 0; i < N; i++) send_numbered(fd, &srv, i);
    assert_true(run_until(x, &n->nmsgs, N, 5000));
    assert_int_equal(n->seq_errors, 0);
    /* Every answer arrives, in order. */
    for (int i = 0; i < N; i++) {
        char buf[2048], want[32];
        ssize_t r = peer_recv(x, fd, buf, sizeof(buf), 2000);
        assert_true(r > 0);
        assert_non_null(strstr(buf, "SIP/2.0 200 "));
        snprintf(want, sizeof(want), "CSeq: %d OPTIONS", i + 1);
        assert_non_null(strstr(buf, want));
    }
    /* A response handed over outside any loop turn waits for the next one... */
    struct transport_dest d = {.proto = SIP_TRANSPORT_UDP, .listener_id = (uint32_t)id};
    memcpy(&d.addr, &me, sizeof(struct sockaddr_in));
    const char *resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\n"
                       "To: <sip:b@x>;tag=2\r\nCall-ID: late\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(transport_send(n->t, &d, resp, strlen(resp)), 0);
    char buf[2048];
    assert_true(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    /* ... and a request does not, but leaves after the response made before it (the order is kept). */
    const char *req = REQ_HEAD("SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKnow") "Content-Length: 0\r\n\r\n";
    assert_int_equal(transport_send(n->t, &d, req, strlen(req)), 0);
    ssize_t r = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    assert_true(r > 0);
    buf[r] = '\0';
    assert_non_null(strstr(buf, "Call-ID: late"));
    r = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    assert_true(r > 0);
    buf[r] = '\0';
    assert_non_null(strstr(buf, "OPTIONS sip:"));
    close(fd);
}

static void test_tcp_framing(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    node_start(x, n, NULL);
    int id = transport_listen(n->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    assert_true(id > 0);
    int fd = tcp_peer(n->t, (uint32_t)id);
    /* One message split across writes, the split inside the body. */
    const char *body_msg = REQ_HEAD("SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKs1")
        "Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world";
    size_t len = strlen(body_msg);
    send_all(fd, body_msg, 20);
    run_for(x, 30);
    send_all(fd, body_msg + 20, len - 20 - 5);
    run_for(x, 30);
    assert_int_equal(n->nmsgs, 0);
    send_all(fd, body_msg + len - 5, 5);
    assert_true(run_until(x, &n->nmsgs, 1, 2000));
    assert_string_equal(n->msgs[0].body, "hello world");
    assert_int_equal(n->msgs[0].proto, SIP_TRANSPORT_TCP);
    assert_int_not_equal(n->msgs[0].conn_id, 0);
    /* Two messages in one write (and a stray CRLF between them). */
    char two[2048];
    snprintf(two, sizeof(two), "%s\r\n%s", SIMPLE_REQ,
             REQ_HEAD("SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKs3") "Content-Length: 0\r\n\r\n");
    send_all(fd, two, strlen(two));
    assert_true(run_until(x, &n->nmsgs, 3, 2000));
    assert_non_null(strstr(n->msgs[1].via, "z9hG4bKt1"));
    assert_non_null(strstr(n->msgs[2].via, "z9hG4bKs3"));
    assert_int_equal(n->msgs[1].conn_id, n->msgs[0].conn_id);
    /* A TCP request whose sent-by is the source IP gets no received. */
    assert_string_equal(n->msgs[1].received, "");
    struct transport_stats s;
    transport_get_stats(n->t, &s);
    assert_int_equal(s.tcp_open, 1);
    assert_int_equal(s.tcp_accepted, 1);
    close(fd);
    assert_true(run_until(x, &n->lost, 1, 2000));
    assert_string_equal(n->lost_reason, "remote closed");
    assert_int_equal(n->lost_conn, n->msgs[0].conn_id);
    transport_get_stats(n->t, &s);
    assert_int_equal(s.tcp_open, 0);
}

/* Responses on a TCP connection wait for the end of the loop turn and
 * leave together; a request (anything not a response) sends what waits
 * first, then itself; a connection closed meanwhile still sends them. */
static void test_tcp_responses_held_for_the_turn(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    node_start(x, n, NULL);
    int id = transport_listen(n->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    assert_true(id > 0);
    int fd = tcp_peer(n->t, (uint32_t)id);
    send_all(fd, SIMPLE_REQ, strlen(SIMPLE_REQ));
    assert_true(run_until(x, &n->nmsgs, 1, 2000));
    struct transport_dest d = {.proto = SIP_TRANSPORT_TCP, .conn_id = n->msgs[0].conn_id};
    char resp[3][512];
    for (int i = 0; i < 3; i++) {
        snprintf(resp[i], sizeof(resp[i]),
                 "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKt1\r\nFrom: <sip:a@x>;tag=1\r\n"
                 "To: <sip:b@x>;tag=2\r\nCall-ID: held-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", i);
    }
    assert_int_equal(transport_send(n->t, &d, resp[0], strlen(resp[0])), 0);
    assert_int_equal(transport_send(n->t, &d, resp[1], strlen(resp[1])), 0);
    char buf[4096];
    assert_true(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    /* A request: the two responses, then it. */
    const char *req = REQ_HEAD("SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKnow") "Content-Length: 0\r\n\r\n";
    assert_int_equal(transport_send(n->t, &d, req, strlen(req)), 0);
    size_t want = strlen(resp[0]) + strlen(resp[1]) + strlen(req), got = 0;
    char all[4096];
    while (got < want) {
        ssize_t r = recv(fd, all + got, sizeof(all) - 1 - got, MSG_DONTWAIT);
        assert_true(r > 0); /* already written: no loop turn needed */
        got += (size_t)r;
    }
    all[got] = '\0';
    char *a = strstr(all, "Call-ID: held-0"), *b = strstr(all, "Call-ID: held-1"), *c = strstr(all, "OPTIONS sip:");
    assert_true(a && b && c && a < b && b < c);
    /* Held, then the loop turns: out together. */
    assert_int_equal(transport_send(n->t, &d, resp[0], strlen(resp[0])), 0);
    assert_int_equal(transport_send(n->t, &d, resp[1], strlen(resp[1])), 0);
    got = 0;
    want = strlen(resp[0]) + strlen(resp[1]);
    while (got < want) {
        ssize_t r = peer_recv(x, fd, all + got, sizeof(all) - got, 2000);
        assert_true(r > 0);
        got += (size_t)r;
    }
    all[got] = '\0';
    assert_true(strstr(all, "held-0") < strstr(all, "held-1"));
    /* A response held when the connection is closed still goes, before the FIN. */
    assert_int_equal(transport_send(n->t, &d, resp[2], strlen(resp[2])), 0);
    assert_int_equal(transport_close_conn(n->t, d.conn_id), 0);
    got = 0;
    for (;;) {
        ssize_t r = peer_recv(x, fd, all + got, sizeof(all) - got, 2000);
        assert_true(r >= 0);
        if (r == 0) break;
        got += (size_t)r;
    }
    all[got] = '\0';
    assert_non_null(strstr(all, "Call-ID: held-2"));
    close(fd);
}

static void test_tcp_crlf_ping(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    node_start(x, n, NULL);
    int id = transport_listen(n->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    int fd = tcp_peer(n->t, (uint32_t)id);
    char buf[64];
    send_all(fd, "\r\n", 2); /* half a ping */
    assert_int_equal(peer_recv(x, fd, buf, sizeof(buf), 50), -1);
    send_all(fd, "\r\n", 2);
    assert_int_equal(peer_recv(x, fd, buf, sizeof(buf), 2000), 2);
    assert_string_equal(buf, "\r\n"); /* RFC 5626 §3.5.1 pong */
    /* Ping then a message in one write. */
    char both[1024];
    snprintf(both, sizeof(both), "\r\n\r\n%s", SIMPLE_REQ);
    send_all(fd, both, strlen(both));
    assert_true(run_until(x, &n->nmsgs, 1, 2000));
    assert_int_equal(peer_recv(x, fd, buf, sizeof(buf), 2000), 2);
    struct transport_stats s;
    transport_get_stats(n->t, &s);
    assert_int_equal(s.keepalives, 2);
    assert_int_equal(n->lost, 0);
    close(fd);
}

static void test_tcp_garbage_closes(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    node_start(x, n, NULL);
    int id = transport_listen(n->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    int fd = tcp_peer(n->t, (uint32_t)id);
    send_all(fd, SIMPLE_REQ, strlen(SIMPLE_REQ));
    assert_true(run_until(x, &n->nmsgs, 1, 2000));
    const char tls_hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    send_all(fd, tls_hello, sizeof(tls_hello) - 1);
    assert_true(run_until(x, &n->lost, 1, 2000));
    assert_string_equal(n->lost_reason, "garbage");
    assert_int_equal(n->lost_conn, n->msgs[0].conn_id);
    char buf[64];
    assert_int_equal(peer_recv(x, fd, buf, sizeof(buf), 2000), 0); /* closed */
    close(fd);
    /* A message without Content-Length cannot be framed on a stream either. */
    fd = tcp_peer(n->t, (uint32_t)id);
    const char *nocl = REQ_HEAD("SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKncl") "\r\n";
    send_all(fd, nocl, strlen(nocl));
    assert_true(run_until(x, &n->lost, 2, 2000));
    assert_string_equal(n->lost_reason, "garbage");
    close(fd);
}

static void test_tcp_oversize_closes(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    struct transport_config cfg = {.max_message_bytes = 2000};
    node_start(x, n, &cfg);
    int id = transport_listen(n->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    int fd = tcp_peer(n->t, (uint32_t)id);
    char big[3000];
    char head[] = REQ_HEAD("SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKbig") "X-Pad: ";
    memset(big, 'p', sizeof(big));
    memcpy(big, head, strlen(head));
    send_all(fd, big, sizeof(big));
    assert_true(run_until(x, &n->lost, 1, 2000));
    assert_string_equal(n->lost_reason, "message over the size limit");
    assert_int_equal(n->nmsgs, 0);
    close(fd);
    /* A Content-Length that announces too much is refused as soon as the header is in. */
    fd = tcp_peer(n->t, (uint32_t)id);
    const char *cl = REQ_HEAD("SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKcl") "Content-Length: 50000\r\n\r\n";
    send_all(fd, cl, strlen(cl));
    assert_true(run_until(x, &n->lost, 2, 2000));
    close(fd);
}

static void test_tcp_idle_timeout_and_close_conn(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    struct transport_config cfg = {.tcp_idle_timeout_ms = 150};
    x->manual_time = true;
    x->fake_ms = uv_now(&x->loop);
    run_for(x, 10); /* the timers take the fake clock */
    node_start(x, n, &cfg);
    int id = transport_listen(n->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    int fd = tcp_peer(n->t, (uint32_t)id);
    /* Activity keeps it open: 80 ms of (fake) time between the bytes, 320 in
     * all, however long the machine makes each step take. */
    for (int i = 0; i < 4; i++) {
        x->fake_ms += 80;
        run_for(x, 10);
        send_all(fd, "\r\n\r\n", 4);
        run_for(x, 10); /* read: the connection's activity is at fake_ms */
    }
    assert_int_equal(n->lost, 0);
    /* ... silence closes it. */
    x->fake_ms += 200;
    assert_true(run_until(x, &n->lost, 1, 2000));
    assert_string_equal(n->lost_reason, "idle timeout");
    char buf[64];
    ssize_t r;
    while ((r = peer_recv(x, fd, buf, sizeof(buf), 2000)) > 0) {
    }
    assert_int_equal(r, 0);
    close(fd);

    /* transport_close_conn closes on demand. */
    fd = tcp_peer(n->t, (uint32_t)id);
    send_all(fd, SIMPLE_REQ, strlen(SIMPLE_REQ));
    assert_true(run_until(x, &n->nmsgs, 1, 2000));
    assert_int_equal(transport_close_conn(n->t, n->msgs[0].conn_id), 0);
    assert_int_equal(n->lost, 2);
    assert_string_equal(n->lost_reason, "closed locally");
    assert_int_equal(transport_close_conn(n->t, n->msgs[0].conn_id), UV_ENOTCONN);
    assert_int_equal(peer_recv(x, fd, buf, sizeof(buf), 2000), 0);
    close(fd);
}

static void test_tcp_connect_reuse_and_response_path(void **state)
{
    struct tt *x = *state;
    struct node *a = &x->a, *b = &x->b;
    node_start(x, a, NULL);
    node_start(x, b, NULL);
    b->reply_status = 200;
    int bid = transport_listen(b->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    assert_true(transport_listen(a->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0) > 0);
    struct transport_dest d = {.proto = SIP_TRANSPORT_TCP};
    listener_addr(b->t, (uint32_t)bid, "127.0.0.1", &d.addr);
    /* Connect on demand: the bytes wait for the connection. */
    assert_int_equal(transport_send(a->t, &d, SIMPLE_REQ, strlen(SIMPLE_REQ)), 0);
    uint64_t conn = d.conn_id;
    assert_int_not_equal(conn, 0);
    assert_true(run_until(x, &a->nmsgs, 1, 2000));
    /* B answered over the same connection: A got it on its outbound connection. */
    assert_int_equal(a->msgs[0].status, 200);
    assert_int_equal(a->msgs[0].conn_id, conn);
    assert_int_equal(a->msgs[0].listener_id, 0);
    /* By address again: the same connection, no new connect. */
    struct transport_dest d2 = {.proto = SIP_TRANSPORT_TCP, .addr = d.addr};
    assert_int_equal(transport_send(a->t, &d2, SIMPLE_REQ, strlen(SIMPLE_REQ)), 0);
    assert_int_equal(d2.conn_id, conn);
    assert_true(run_until(x, &a->nmsgs, 2, 2000));
    struct transport_stats sa, sb;
    transport_get_stats(a->t, &sa);
    transport_get_stats(b->t, &sb);
    assert_int_equal(sa.tcp_connected, 1);
    assert_int_equal(sa.tcp_accepted, 0);
    assert_int_equal(sb.tcp_accepted, 1);
    assert_int_equal(sb.tcp_connected, 0);
    assert_int_equal(b->nmsgs, 2);
    assert_int_equal(b->msgs[0].conn_id, b->msgs[1].conn_id);
    /* And by id. */
    struct transport_dest d3 = {.proto = SIP_TRANSPORT_TCP, .conn_id = conn};
    assert_int_equal(transport_send(a->t, &d3, SIMPLE_REQ, strlen(SIMPLE_REQ)), 0);
    assert_true(run_until(x, &a->nmsgs, 3, 2000));
    /* B closes: A hears about its connection. */
    assert_int_equal(transport_close_conn(b->t, b->msgs[0].conn_id), 0);
    assert_true(run_until(x, &a->lost, 1, 2000));
    assert_int_equal(a->lost_conn, conn);
    assert_string_equal(a->lost_reason, "remote closed");
}

static void test_tcp_connect_failure(void **state)
{
    struct tt *x = *state;
    struct node *a = &x->a;
    node_start(x, a, NULL);
    /* A port nobody listens on: bind a socket, note its port, close it. */
    struct sockaddr_storage gone;
    int fd = peer_socket(AF_INET, SOCK_STREAM, &gone);
    close(fd);
    struct transport_dest d = {.proto = SIP_TRANSPORT_TCP, .addr = gone};
    assert_int_equal(transport_send(a->t, &d, SIMPLE_REQ, strlen(SIMPLE_REQ)), 0);
    assert_true(run_until(x, &a->lost, 1, 2000));
    assert_int_equal(a->lost_conn, d.conn_id);
    assert_string_equal(a->lost_reason, "connect failed");
    struct transport_stats s;
    transport_get_stats(a->t, &s);
    assert_int_equal(s.tcp_open, 0);
    /* Bytes queued on a connection still connecting are freed by transport_free
     * (teardown, checked by ASan); a TEST-NET address never answers the SYN. */
    struct transport_dest far = {.proto = SIP_TRANSPORT_TCP};
    transport_addr_parse("192.0.2.1", 9, 5060, &far.addr);
    int rc = transport_send(a->t, &far, SIMPLE_REQ, strlen(SIMPLE_REQ));
    if (rc == 0) {
        assert_int_equal(transport_send(a->t, &far, SIMPLE_REQ, strlen(SIMPLE_REQ)), 0);
        transport_get_stats(a->t, &s);
        assert_int_equal(s.tcp_open, 1);
    }
    /* UDP without a UDP socket of that family cannot send. */
    struct transport_dest u = {.proto = SIP_TRANSPORT_UDP, .addr = gone};
    assert_int_equal(transport_send(a->t, &u, "x", 1), UV_EAFNOSUPPORT);
}

/* ---- transport + transactions ---- */

static uint64_t loop_now(void *user) { return uv_now(&((struct tt *)user)->loop); }

static int txn_send(void *user, struct transport_dest *dest, const void *data, size_t len)
{
    struct tt *x = user;
    return transport_send(x->a.t, dest, data, len);
}

static void txn_on_request(void *user, struct txn *st, const struct transport_rx *rx)
{
    (void)rx;
    struct tt *x = user;
    x->st = st;
    x->requests++; /* answered later, from the kept copy */
}

static void test_txn_over_udp_keeps_stamped_via(void **state)
{
    struct tt *x = *state;
    struct node *a = &x->a;
    node_start(x, a, NULL);
    struct txn_layer_ops ops = {.user = x, .send = txn_send, .on_request = txn_on_request, .now_ms = loop_now};
    struct txn_config cfg = {.t1_ms = 50, .t2_ms = 400, .t4_ms = 500};
    a->txn = txn_layer_new(&x->ts, &cfg, &ops);
    assert_non_null(a->txn);
    int id = transport_listen(a->t, SIP_TRANSPORT_UDP, "127.0.0.1", 0);
    struct sockaddr_storage me, srv;
    int fd = peer_socket(AF_INET, SOCK_DGRAM, &me);
    listener_addr(a->t, (uint32_t)id, "127.0.0.1", &srv);
    const char *inv = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
                      "Via: SIP/2.0/UDP phone.example.com;rport;branch=z9hG4bKe2e\r\n"
                      "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
                      "Call-ID: e2e@example.com\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    socklen_t sl = sizeof(struct sockaddr_in);
    assert_true(sendto(fd, inv, strlen(inv), 0, (struct sockaddr *)&srv, sl) > 0);
    assert_true(run_until(x, &x->requests, 1, 2000));
    /* The transaction sends 100 Trying after 200 ms. */
    char buf[2048];
    assert_true(peer_recv(x, fd, buf, sizeof(buf), 2000) > 0);
    assert_non_null(strstr(buf, "SIP/2.0 100 Trying"));
    char want[256];
    snprintf(want, sizeof(want), "Via: SIP/2.0/UDP phone.example.com;rport=%u;branch=z9hG4bKe2e;received=127.0.0.1",
             transport_addr_port(&me));
    assert_non_null(strstr(buf, want));
    /* A retransmission is absorbed: the 100 again, no new request for the TU. */
    assert_true(sendto(fd, inv, strlen(inv), 0, (struct sockaddr *)&srv, sl) > 0);
    assert_true(peer_recv(x, fd, buf, sizeof(buf), 2000) > 0);
    assert_non_null(strstr(buf, "SIP/2.0 100 Trying"));
    assert_int_equal(x->requests, 1);
    /* The final answer, built later from the transaction's copy, still carries received/rport. */
    const struct sip_msg *kept = txn_request(x->st);
    assert_non_null(kept);
    assert_true(str_eq_cstr(kept->via.received, "127.0.0.1"));
    assert_int_equal(txn_respond(x->st, 486, NULL, STR_LIT("b"), NULL, 0, STR_NULL, STR_NULL), 0);
    assert_true(peer_recv(x, fd, buf, sizeof(buf), 2000) > 0);
    assert_non_null(strstr(buf, "SIP/2.0 486 Busy Here"));
    assert_non_null(strstr(buf, want));
    /* Timer G retransmits it (T1 = 50 ms here) until the ACK. */
    assert_true(peer_recv(x, fd, buf, sizeof(buf), 2000) > 0);
    assert_non_null(strstr(buf, "SIP/2.0 486 Busy Here"));
    const char *ack = "ACK sip:bob@127.0.0.1 SIP/2.0\r\n"
                      "Via: SIP/2.0/UDP phone.example.com;rport;branch=z9hG4bKe2e\r\n"
                      "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>;tag=b\r\n"
                      "Call-ID: e2e@example.com\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n";
    assert_true(sendto(fd, ack, strlen(ack), 0, (struct sockaddr *)&srv, sl) > 0);
    run_for(x, 100);
    while (peer_recv(x, fd, buf, sizeof(buf), 0) > 0) {
    } /* drain what crossed the ACK */
    assert_int_equal(peer_recv(x, fd, buf, sizeof(buf), 300), -1);
    struct txn_stats ts;
    txn_layer_stats(a->txn, &ts);
    assert_int_equal(ts.server_live, 1); /* Confirmed, waiting for timer I */
    run_for(x, 600);
    txn_layer_stats(a->txn, &ts);
    assert_int_equal(ts.server_live, 0);
    close(fd);
}

/* ---- descriptor budget, slow senders, maddr, source address (issue 9) ---- */

/* A TCP client bound to source address ip (127.0.0.x), connected to listener id. */
static int tcp_peer_from(struct transport *t, uint32_t id, const char *ip)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct sockaddr_storage srv;
    listener_addr(t, id, "127.0.0.1", &srv);
    assert_int_equal(connect(fd, (struct sockaddr *)&srv, sizeof(struct sockaddr_in)), 0);
    return fd;
}

/* Sends an OPTIONS on fd: 1 when a 200 comes back, 0 when the transport
 * closed the connection instead. */
static int tcp_ask(struct tt *x, int fd)
{
    (void)send(fd, SIMPLE_REQ, strlen(SIMPLE_REQ), MSG_NOSIGNAL); /* fails when already closed */
    char buf[2048];
    ssize_t r = peer_recv(x, fd, buf, sizeof(buf), 3000);
    assert_true(r >= 0); /* an answer or a close, never silence */
    if (r == 0) return 0;
    assert_non_null(strstr(buf, "SIP/2.0 200 "));
    return 1;
}

static void test_tcp_caps_refuse_per_ip_and_total(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    struct transport_config cfg = {.tcp_max_connections = 3, .tcp_max_per_ip = 2};
    node_start(x, n, &cfg);
    n->reply_status = 200;
    int id = transport_listen(n->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    assert_true(id > 0);
    /* Three from one address: the third is over tcp_max_per_ip and closed at once. */
    int a1 = tcp_peer_from(n->t, (uint32_t)id, "127.0.0.1");
    int a2 = tcp_peer_from(n->t, (uint32_t)id, "127.0.0.1");
    int a3 = tcp_peer_from(n->t, (uint32_t)id, "127.0.0.1");
    assert_int_equal(tcp_ask(x, a1), 1);
    assert_int_equal(tcp_ask(x, a2), 1);
    assert_int_equal(tcp_ask(x, a3), 0);
    /* Another address gets the last place of tcp_max_connections, a third address none. */
    int b1 = tcp_peer_from(n->t, (uint32_t)id, "127.0.0.2");
    assert_int_equal(tcp_ask(x, b1), 1);
    int c1 = tcp_peer_from(n->t, (uint32_t)id, "127.0.0.3");
    assert_int_equal(tcp_ask(x, c1), 0);
    struct transport_stats s;
    transport_get_stats(n->t, &s);
    assert_int_equal(s.tcp_open, 3);
    assert_int_equal(s.tcp_accepted, 3);
    assert_int_equal(s.tcp_refused, 2);
    assert_int_equal(n->lost, 0); /* refused connections were never announced */
    /* A place freed is a place again: for the same address and for a new one. */
    close(a1);
    assert_true(run_until(x, &n->lost, 1, 3000));
    int a4 = tcp_peer_from(n->t, (uint32_t)id, "127.0.0.1");
    assert_int_equal(tcp_ask(x, a4), 1);
    close(b1);
    assert_true(run_until(x, &n->lost, 2, 3000));
    int c2 = tcp_peer_from(n->t, (uint32_t)id, "127.0.0.3");
    assert_int_equal(tcp_ask(x, c2), 1);
    close(a2);
    close(a3);
    close(a4);
    close(c1);
    close(c2);
}

/* Runs in a child: the descriptor limits are process-wide. */
static int fd_budget_child(void)
{
    uv_loop_t loop;
    struct timer_service ts;
    if (uv_loop_init(&loop) != 0) return 10;
    timer_service_init(&ts);
    struct transport_callbacks cb = {.on_message = on_message};
    /* The soft limit is raised as far as the hard one allows ... */
    struct rlimit rl = {200, 2000};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 11;
    struct transport_config cfg = {.tcp_max_connections = 1000, .tcp_fd_reserve = 64};
    struct transport *t = transport_new(&loop, &ts, &cfg, &cb);
    struct transport_stats s;
    transport_get_stats(t, &s);
    if (s.tcp_max_connections != 1000) return 12;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 1064) return 13;
    transport_free(t);
    /* ... and what still does not fit is clamped to the limit minus the reserve. */
    rl.rlim_cur = rl.rlim_max = 256;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 14;
    cfg.tcp_max_connections = 65536;
    t = transport_new(&loop, &ts, &cfg, &cb);
    transport_get_stats(t, &s);
    if (s.tcp_max_connections != 256 - 64) return 15;
    transport_free(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    timer_service_free(&ts);
    return 0;
}

static void test_tcp_max_connections_fits_rlimit(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(fd_budget_child());
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* Runs in a child (it exhausts the process's descriptors): with libuv's own
 * spare descriptor gone, as when another thread took it, accept failing with
 * EMFILE must neither spin (libuv retries at once for as long as the callback
 * leaves the backlog full) nor leave clients hanging: the transport's spare
 * drains the backlog, and the listener accepts again once descriptors free. */
static int emfile_child(void)
{
    alarm(20); /* a spin never returns from uv_run: fail instead of hanging */
    uv_loop_t loop;
    struct timer_service ts;
    if (uv_loop_init(&loop) != 0) return 10;
    timer_service_init(&ts);
    struct node n = {0};
    struct transport_callbacks cb = {.user = &n, .on_message = on_message, .on_conn_lost = on_conn_lost};
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 11;
    rl.rlim_cur = 256;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 11;
    struct transport_config cfg = {.tcp_max_connections = 100}; /* fits: the limit stays 256 */
    struct transport *t = transport_new(&loop, &ts, &cfg, &cb);
    if (!t) return 11;
    int id = transport_listen(t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    if (id <= 0) return 12;
    struct sockaddr_storage srv;
    transport_addr_parse("127.0.0.1", 9, (uint16_t)transport_listener_port(t, (uint32_t)id), &srv);
    enum { CLIENTS = 3, FILL = 4096 };
    int cl[CLIENTS + 1];
    for (int i = 0; i <= CLIENTS; i++)
        if ((cl[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0) return 13;
    if (loop.emfile_fd >= 0) close(loop.emfile_fd);
    loop.emfile_fd = -1;
    static int fill[FILL];
    int nfill = 0;
    while (nfill < FILL && (fill[nfill] = open("/dev/null", O_RDONLY)) >= 0) nfill++;
    if (nfill == FILL || errno != EMFILE) return 14;
    for (int i = 0; i < CLIENTS; i++)
        if (connect(cl[i], (struct sockaddr *)&srv, sizeof(struct sockaddr_in)) != 0) return 15;
    int closed = 0;
    for (int round = 0; round < 200 && closed < CLIENTS; round++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        closed = 0;
        for (int i = 0; i < CLIENTS; i++) {
            char b;
            ssize_t r = recv(cl[i], &b, 1, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno == ECONNRESET)) closed++;
        }
        usleep(10000);
    }
    if (closed != CLIENTS) return 16;
    struct transport_stats s;
    transport_get_stats(t, &s);
    if (s.tcp_refused != CLIENTS || s.tcp_accepted != 0) return 17;
    /* Descriptors free again: the listener (paused a while) serves again. */
    for (int i = 0; i < 8; i++) close(fill[--nfill]);
    bool connected = false;
    for (int round = 0; round < 1000 && s.tcp_accepted == 0; round++) {
        if (!connected && round % 10 == 0) {
            connected = connect(cl[CLIENTS], (struct sockaddr *)&srv, sizeof(struct sockaddr_in)) == 0;
            if (!connected) { /* refused while the listener pauses: a new socket for the next try */
                close(cl[CLIENTS]);
                if ((cl[CLIENTS] = socket(AF_INET, SOCK_STREAM, 0)) < 0) return 18;
            }
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_update_time(&loop);
        timer_run(&ts, uv_now(&loop)); /* the pause ends on the transport's timer */
        transport_get_stats(t, &s);
        usleep(10000);
    }
    if (s.tcp_accepted != 1) return 19;
    return 0; /* the child exits: the kernel takes the rest back */
}

static void test_tcp_emfile_no_spin_then_listens_again(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(emfile_child());
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st)); /* not killed by the alarm: no spin */
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* A client trickling a byte now and then is closed tcp_message_timeout after
 * its message began, although every byte is activity. */
static void test_tcp_slow_message_closed(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    struct transport_config cfg = {.tcp_message_timeout_ms = 300, .tcp_first_message_timeout_ms = 60000};
    node_start(x, n, &cfg);
    n->reply_status = 200;
    int id = transport_listen(n->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    int fd = tcp_peer(n->t, (uint32_t)id);
    /* A whole message first: the deadline is per message, not per connection. */
    assert_int_equal(tcp_ask(x, fd), 1);
    size_t len = strlen(SIMPLE_REQ), sent = 0;
    uv_update_time(&x->loop);
    uint64_t end = uv_now(&x->loop) + 5000;
    while (n->lost == 0 && sent < len && uv_now(&x->loop) < end) {
        if (send(fd, &SIMPLE_REQ[sent], 1, MSG_NOSIGNAL) == 1) sent++;
        run_for(x, 50);
    }
    assert_int_equal(n->lost, 1);
    assert_string_equal(n->lost_reason, "message timeout");
    assert_true(sent < len); /* closed before the trickle could finish */
    assert_int_equal(n->nmsgs, 1);
    struct transport_stats s;
    transport_get_stats(n->t, &s);
    assert_int_equal(s.tcp_timed_out, 1);
    close(fd);
}

/* A message in parts within the deadline, and whole messages further apart
 * than it, keep the connection. */
static void test_tcp_normal_client_kept(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    /* Deadlines well above the 50 ms gap below: a stalled machine must not close the client. */
    struct transport_config cfg = {.tcp_message_timeout_ms = 800, .tcp_first_message_timeout_ms = 800};
    node_start(x, n, &cfg);
    n->reply_status = 200;
    int id = transport_listen(n->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    int fd = tcp_peer(n->t, (uint32_t)id);
    send_all(fd, SIMPLE_REQ, 30);
    run_for(x, 50);
    send_all(fd, &SIMPLE_REQ[30], strlen(SIMPLE_REQ) - 30);
    char buf[2048];
    assert_true(peer_recv(x, fd, buf, sizeof(buf), 3000) > 0);
    assert_non_null(strstr(buf, "SIP/2.0 200 "));
    for (int i = 0; i < 2; i++) {
        run_for(x, 1000); /* longer than both deadlines */
        assert_int_equal(n->lost, 0);
        assert_int_equal(tcp_ask(x, fd), 1);
    }
    assert_int_equal(n->lost, 0);
    close(fd);
}

/* An accepted connection that never completes a message (here: only CRLF
 * pings) is closed tcp_first_message_timeout after it opened. */
static void test_tcp_no_first_message_closed(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    struct transport_config cfg = {.tcp_first_message_timeout_ms = 300};
    node_start(x, n, &cfg);
    int id = transport_listen(n->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    int fd = tcp_peer(n->t, (uint32_t)id);
    uv_update_time(&x->loop);
    uint64_t end = uv_now(&x->loop) + 5000;
    while (n->lost == 0 && uv_now(&x->loop) < end) {
        (void)send(fd, "\r\n\r\n", 4, MSG_NOSIGNAL);
        run_for(x, 50);
    }
    assert_int_equal(n->lost, 1);
    assert_string_equal(n->lost_reason, "first message timeout");
    close(fd);
}

/* RFC 3581 wins over a Via maddr: the response goes back to the source, not
 * to the third address the client named. */
static void test_udp_maddr_ignored(void **state)
{
    struct tt *x = *state;
    struct node *n = &x->b;
    node_start(x, n, NULL);
    n->reply_status = 200;
    int id = transport_listen(n->t, SIP_TRANSPORT_UDP, "127.0.0.1", 0);
    struct sockaddr_storage me, srv;
    int fd = peer_socket(AF_INET, SOCK_DGRAM, &me);
    listener_addr(n->t, (uint32_t)id, "127.0.0.1", &srv);
    char via[128], req[1024];
    snprintf(via, sizeof(via), "SIP/2.0/UDP 127.0.0.1:%u;maddr=192.0.2.7;branch=z9hG4bKm1", transport_addr_port(&me));
    snprintf(req, sizeof(req),
             "OPTIONS sip:cascade@127.0.0.1 SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\n"
             "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:cascade@example.com>\r\n"
             "Call-ID: maddr@example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
             via);
    assert_true(sendto(fd, req, strlen(req), 0, (struct sockaddr *)&srv, sizeof(struct sockaddr_in)) > 0);
    char buf[2048];
    assert_true(peer_recv(x, fd, buf, sizeof(buf), 3000) > 0);
    assert_non_null(strstr(buf, "SIP/2.0 200 "));
    /* The same with rport: source IP and port. */
    snprintf(via, sizeof(via), "SIP/2.0/UDP 10.0.0.9:5060;rport;maddr=192.0.2.7;branch=z9hG4bKm2");
    snprintf(req, sizeof(req),
             "OPTIONS sip:cascade@127.0.0.1 SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\n"
             "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:cascade@example.com>\r\n"
             "Call-ID: maddr2@example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
             via);
    assert_true(sendto(fd, req, strlen(req), 0, (struct sockaddr *)&srv, sizeof(struct sockaddr_in)) > 0);
    assert_true(peer_recv(x, fd, buf, sizeof(buf), 3000) > 0);
    assert_non_null(strstr(buf, "z9hG4bKm2"));
    close(fd);
}

/* A transport listening on 127.0.0.2 opens its TCP connections from
 * 127.0.0.2 (what its Via says), not from the address the route picks. */
static void test_tcp_outbound_bound_to_listener(void **state)
{
    struct tt *x = *state;
    struct node *a = &x->a, *b = &x->b;
    node_start(x, a, NULL);
    node_start(x, b, NULL);
    b->reply_status = 200;
    int bid = transport_listen(b->t, SIP_TRANSPORT_TCP, "127.0.0.1", 0);
    int aid = transport_listen(a->t, SIP_TRANSPORT_TCP, "127.0.0.2", 0);
    assert_true(aid > 0);
    struct transport_dest d = {.proto = SIP_TRANSPORT_TCP};
    listener_addr(b->t, (uint32_t)bid, "127.0.0.1", &d.addr);
    assert_int_equal(transport_send(a->t, &d, SIMPLE_REQ, strlen(SIMPLE_REQ)), 0);
    assert_true(run_until(x, &b->nmsgs, 1, 3000));
    assert_memory_equal(b->msgs[0].src_text, "127.0.0.2:", 10);
    /* Its own port, not the listener's. */
    char lport[16];
    snprintf(lport, sizeof(lport), ":%d", transport_listener_port(a->t, (uint32_t)aid));
    assert_string_not_equal(strchr(b->msgs[0].src_text, ':'), lport);
    assert_true(run_until(x, &a->nmsgs, 1, 3000));
    assert_int_equal(a->msgs[0].status, 200);
    /* A UDP-only node on 127.0.0.3 binds its TCP connections there too. */
    transport_free(a->t);
    a->nmsgs = 0;
    node_start(x, a, NULL);
    assert_true(transport_listen(a->t, SIP_TRANSPORT_UDP, "127.0.0.3", 0) > 0);
    struct transport_dest d2 = {.proto = SIP_TRANSPORT_TCP, .addr = d.addr};
    assert_int_equal(transport_send(a->t, &d2, SIMPLE_REQ, strlen(SIMPLE_REQ)), 0);
    assert_true(run_until(x, &b->nmsgs, 2, 3000));
    assert_memory_equal(b->msgs[1].src_text, "127.0.0.3:", 10);
}

/* The IPv4 fast path prints what inet_ntop + snprintf print, truncation included. */
static void test_addr_text_ipv4(void **state)
{
    (void)state;
    const char *ips[] = {"0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.100.9", "1.20.100.200", "127.0.0.1"};
    const unsigned ports[] = {0, 9, 10, 99, 100, 5060, 65535};
    for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
        for (size_t j = 0; j < sizeof(ports) / sizeof(ports[0]); j++) {
            struct sockaddr_storage ss;
            memset(&ss, 0, sizeof(ss));
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            sin->sin_family = AF_INET;
            sin->sin_port = htons((uint16_t)ports[j]);
            assert_int_equal(inet_pton(AF_INET, ips[i], &sin->sin_addr), 1);
            char want[64];
            int n = snprintf(want, sizeof(want), "%s:%u", ips[i], ports[j]);
            char got[64];
            assert_int_equal(transport_addr_text(&ss, got, sizeof(got)), (size_t)n);
            assert_string_equal(got, want);
            for (size_t cap = 1; cap <= (size_t)n + 1; cap++) {
                char small[64];
                memset(small, 'X', sizeof(small));
                size_t k = transport_addr_text(&ss, small, cap);
                assert_int_equal(k, cap - 1 < (size_t)n ? cap - 1 : (size_t)n);
                assert_memory_equal(small, want, k);
                assert_int_equal(small[k], '\0');
                assert_int_equal(small[cap], 'X');
            }
        }
    }
}

int main(void)
{
    log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_text_ipv4),
        cmocka_unit_test_setup_teardown(test_udp_request_rport_received, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_via_untouched_and_sent_by_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_via_list_and_existing_received, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_oversize_and_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_responses_batched_requests_immediate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_framing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_responses_held_for_the_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_crlf_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_garbage_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_oversize_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_idle_timeout_and_close_conn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_connect_reuse_and_response_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_connect_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_over_udp_keeps_stamped_via, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_caps_refuse_per_ip_and_total, setup, teardown),
        cmocka_unit_test(test_tcp_max_connections_fits_rlimit),
        cmocka_unit_test(test_tcp_emfile_no_spin_then_listens_again),
        cmocka_unit_test_setup_teardown(test_tcp_slow_message_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_normal_client_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_no_first_message_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_maddr_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_outbound_bound_to_listener, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
