/* test_txn.c — the transaction state machines (RFC 3261 §17) on a fake clock.
 *
 * The timer service is driven by the test (advance() fires every deadline in
 * order), ops.send records every message into an array, and received
 * messages are parsed from text into transport_rx values as the transport
 * would hand them up. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "txn/txn.h"

#define T1 500
#define T2 4000
#define T4 5000
#define MAX_SENT 128

struct sent {
    struct transport_dest dest;
    char *data;
    size_t len;
    uint64_t at;
};

struct fake {
    uint64_t now;
    struct timer_service ts;
    struct txn_layer *l;
    struct sent sent[MAX_SENT];
    int nsent;
    int send_rc;              /* returned by ops.send when non-zero */
    uint64_t next_conn_id;    /* TCP sends without conn_id get one */

    /* server side */
    struct txn *st;           /* last server transaction handed up */
    int requests, acks, strays, server_terminated;
    enum sip_method last_method;
    int answer_status;        /* respond inside on_request when non-zero */
    str_t answer_tag;
    bool answer_stateless;    /* ... with txn_respond_stateless */
    bool answer_reject;       /* ... with txn_reject */
    int finals;               /* ops.on_final_sent calls */
    int final_status;         /* ... the last one's status and stamp */
    uint64_t final_stamp;

    /* client side */
    int responses[32];
    int nresponses;
    int failure;
    int client_terminated;
    struct txn *ct_terminated;

    /* parse storage for one received message */
    char buf[8192];
    char arena_mem[32768];
    arena_t arena;
    struct sip_msg msg;
    struct transport_rx rx;
};

/* ---- ops ---- */

static uint64_t fake_now(void *u) { return ((struct fake *)u)->now; }

static int fake_send(void *u, struct transport_dest *dest, const void *data, size_t len)
{
    struct fake *f = u;
    if (f->send_rc) return f->send_rc;
    assert_true(f->nsent < MAX_SENT);
    if (dest->proto == SIP_TRANSPORT_TCP && dest->conn_id == 0) dest->conn_id = ++f->next_conn_id;
    struct sent *s = &f->sent[f->nsent++];
    s->dest = *dest;
    s->data = malloc(len + 1);
    memcpy(s->data, data, len);
    s->data[len] = '\0';
    s->len = len;
    s->at = f->now;
    return 0;
}

static void fake_on_request(void *u, struct txn *st, const struct transport_rx *rx)
{
    struct fake *f = u;
    f->st = st;
    f->requests++;
    f->last_method = rx->msg->method;
    assert_ptr_equal(txn_request(st), rx->msg);
    if (f->answer_status)
        assert_int_equal((f->answer_reject ? txn_reject : f->answer_stateless ? txn_respond_stateless : txn_respond)(
                             st, f->answer_status, NULL, f->answer_tag, NULL, 0, STR_NULL, STR_NULL),
                         0);
}

static void fake_final_sent(void *u, struct txn *st, int status, uint64_t stamp)
{
    struct fake *f = u;
    (void)st;
    f->finals++;
    f->final_status = status;
    f->final_stamp = stamp;
}

static void fake_on_ack(void *u, const struct transport_rx *rx)
{
    (void)rx;
    ((struct fake *)u)->acks++;
}

static void fake_on_stray(void *u, const struct transport_rx *rx)
{
    (void)rx;
    ((struct fake *)u)->strays++;
}

static void fake_server_terminated(void *u, struct txn *st)
{
    struct fake *f = u;
    f->server_terminated++;
    if (f->st == st) f->st = NULL;
}

static void cl_response(void *arg, struct txn *ct, const struct sip_msg *resp, const struct transport_rx *rx)
{
    (void)ct;
    (void)rx;
    struct fake *f = arg;
    assert_true(f->nresponses < 32);
    f->responses[f->nresponses++] = resp->status;
}

static void cl_failure(void *arg, struct txn *ct, int status)
{
    (void)ct;
    ((struct fake *)arg)->failure = status;
}

static void cl_terminated(void *arg, struct txn *ct)
{
    struct fake *f = arg;
    f->client_terminated++;
    f->ct_terminated = ct;
}

static const struct txn_client_cb client_cb = {cl_response, cl_failure, cl_terminated};

/* ---- harness ---- */

static int setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    f->now = 1000000;
    timer_service_init(&f->ts);
    struct txn_config cfg = {.t1_ms = T1, .t2_ms = T2, .t4_ms = T4};
    struct txn_layer_ops ops = {
        .user = f,
        .send = fake_send,
        .on_request = fake_on_request,
        .on_ack = fake_on_ack,
        .on_stray_response = fake_on_stray,
        .on_server_terminated = fake_server_terminated,
        .now_ms = fake_now,
        .on_final_sent = fake_final_sent,
    };
    f->l = txn_layer_new(&f->ts, &cfg, &ops);
    assert_non_null(f->l);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fake *f = *state;
    txn_layer_free(f->l);
    timer_service_free(&f->ts);
    for (int i = 0; i < f->nsent; i++) free(f->sent[i].data);
    free(f);
    return 0;
}

/* Moves the clock forward by ms, firing every timer at its own deadline. */
static void advance(struct fake *f, uint64_t ms)
{
    uint64_t target = f->now + ms;
    for (;;) {
        uint64_t next = timer_next_deadline(&f->ts);
        if (next > target) break;
        if (next > f->now) f->now = next;
        timer_run(&f->ts, f->now);
    }
    f->now = target;
    timer_run(&f->ts, f->now);
}

static void clear_sent(struct fake *f)
{
    for (int i = 0; i < f->nsent; i++) free(f->sent[i].data);
    f->nsent = 0;
}

/* Parses text (headers joined with \r\n by the caller) as received over proto. */
static const struct transport_rx *make_rx(struct fake *f, enum sip_transport proto, const char *text)
{
    size_t len = strlen(text);
    assert_true(len < sizeof(f->buf));
    memcpy(f->buf, text, len);
    arena_init(&f->arena, f->arena_mem, sizeof(f->arena_mem));
    struct sip_parse_error err;
    int rc = sip_parse(f->buf, len, &f->arena, NULL, &f->msg, &err);
    if (rc != 0) fail_msg("test message does not parse: %s", err.reason);
    memset(&f->rx, 0, sizeof(f->rx));
    f->rx.msg = &f->msg;
    f->rx.proto = proto;
    struct sockaddr_in *sin = (struct sockaddr_in *)&f->rx.src;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(5070);
    inet_pton(AF_INET, "192.0.2.10", &sin->sin_addr);
    strcpy(f->rx.src_text, "192.0.2.10:5070");
    f->rx.conn_id = proto == SIP_TRANSPORT_TCP ? 77 : 0;
    f->rx.listener_id = 1;
    return &f->rx;
}

static int receive(struct fake *f, enum sip_transport proto, const char *text)
{
    const struct transport_rx *rx = make_rx(f, proto, text);
    int rc = txn_layer_receive(f->l, rx);
    arena_free(&f->arena);
    return rc;
}

static int status_of(const struct sent *s)
{
    int st = 0;
    if (sscanf(s->data, "SIP/2.0 %d", &st) != 1) return 0;
    return st;
}

static struct txn_stats stats(struct fake *f)
{
    struct txn_stats s;
    txn_layer_stats(f->l, &s);
    return s;
}

#define VIA_UDP "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKsrv1\r\n"
#define VIA_TCP "Via: SIP/2.0/TCP 192.0.2.10:5070;branch=z9hG4bKsrv1\r\n"

static char *request(char *out, size_t cap, const char *method, const char *via, const char *to_tag, int cseq,
                     const char *cseq_method)
{
    snprintf(out, cap,
             "%s sip:bob@example.com SIP/2.0\r\n"
             "%s"
             "Max-Forwards: 70\r\n"
             "From: <sip:alice@example.com>;tag=fromtag1\r\n"
             "To: <sip:bob@example.com>%s%s\r\n"
             "Call-ID: call-1@example.com\r\n"
             "CSeq: %d %s\r\n"
             "Content-Length: 0\r\n\r\n",
             method, via, to_tag ? ";tag=" : "", to_tag ? to_tag : "", cseq, cseq_method);
    return out;
}

/* ---- server non-INVITE ---- */

static void test_server_noninvite_udp_timer_j(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "OPTIONS", VIA_UDP, NULL, 1, "OPTIONS");
    f->answer_status = 200;
    f->answer_tag = STR_LIT("srvtag");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(status_of(&f->sent[0]), 200);
    assert_non_null(strstr(f->sent[0].data, "To: <sip:bob@example.com>;tag=srvtag"));
    /* The response goes back to the source (no rport: sent-by port). */
    assert_int_equal(transport_addr_port(&f->sent[0].dest.addr), 5070);
    assert_null(txn_request(f->st)); /* freed with the final response */
    assert_int_equal(txn_get_state(f->st), TXN_COMPLETED);

    /* A retransmission re-sends the same bytes and does not reach the TU. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nsent, 2);
    assert_int_equal(f->sent[1].len, f->sent[0].len);
    assert_memory_equal(f->sent[1].data, f->sent[0].data, f->sent[0].len);

    /* Timer J = 64*T1 over UDP. */
    advance(f, 64 * T1 - 1);
    assert_int_equal(stats(f).server_live, 1);
    advance(f, 1);
    assert_int_equal(stats(f).server_live, 0);
    assert_int_equal(f->server_terminated, 1);
    /* Now the same request is new again. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 2);
}

static void test_server_noninvite_trying_and_late_answer(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "REGISTER", VIA_UDP, NULL, 5, "REGISTER");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    struct txn *st = f->st;
    assert_non_null(st);
    assert_int_equal(txn_get_state(st), TXN_TRYING);
    /* The TU did not answer: the transaction kept its own copy of the request. */
    const struct sip_msg *kept = txn_request(st);
    assert_non_null(kept);
    assert_int_equal(kept->method, SIP_REGISTER);
    assert_true(str_eq_cstr(kept->call_id, "call-1@example.com"));
    assert_true(str_eq_cstr(kept->via.branch, "z9hG4bKsrv1"));
    assert_ptr_equal(txn_rx_info(st)->msg, kept);
    assert_string_equal(txn_rx_info(st)->src_text, "192.0.2.10:5070");

    /* Retransmission in Trying: absorbed, nothing to re-send. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nsent, 0);
    assert_int_equal(stats(f).retransmissions_absorbed, 1);

    /* A provisional moves to Proceeding; a retransmission re-sends it. */
    assert_int_equal(txn_respond(st, 183, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(txn_get_state(st), TXN_PROCEEDING);
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->nsent, 2);
    assert_int_equal(status_of(&f->sent[1]), 183);
    assert_memory_equal(f->sent[0].data, f->sent[1].data, f->sent[0].len);

    /* The final answer is built from the kept copy. */
    str_t extra[] = {STR_LIT("Expires: 3600")};
    assert_int_equal(txn_respond(st, 200, "OK", STR_LIT("t1"), extra, 1, STR_NULL, STR_NULL), 0);
    assert_int_equal(f->nsent, 3);
    assert_non_null(strstr(f->sent[2].data, "Expires: 3600\r\n"));
    assert_non_null(strstr(f->sent[2].data, "CSeq: 5 REGISTER\r\n"));
    assert_null(txn_request(st));
    /* A second final is refused. */
    assert_int_equal(txn_respond(st, 500, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), -EALREADY);
    assert_int_equal(txn_respond(st, 99, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), -EINVAL);
}

static void test_server_noninvite_tcp_zero_j(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "OPTIONS", VIA_TCP, NULL, 1, "OPTIONS");
    f->answer_status = 200;
    assert_int_equal(receive(f, SIP_TRANSPORT_TCP, req), 0);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->sent[0].dest.proto, SIP_TRANSPORT_TCP);
    assert_int_equal(f->sent[0].dest.conn_id, 77); /* the connection it came on */
    assert_int_equal(stats(f).server_live, 1);
    advance(f, 0); /* J = 0: ends on the next timer run */
    assert_int_equal(stats(f).server_live, 0);
}

/* ---- server INVITE ---- */

static void test_server_invite_auto_100_and_timer_g_h(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "INVITE", VIA_UDP, NULL, 1, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    struct txn *st = f->st;
    assert_int_equal(txn_get_state(st), TXN_PROCEEDING);
    advance(f, 199);
    assert_int_equal(f->nsent, 0);
    advance(f, 1); /* §17.2.1: 100 Trying after 200 ms of TU silence */
    assert_int_equal(f->nsent, 1);
    assert_int_equal(status_of(&f->sent[0]), 100);
    assert_non_null(strstr(f->sent[0].data, "To: <sip:bob@example.com>\r\n")); /* no To tag on 100 */

    /* A retransmitted INVITE gets the 100 again. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->nsent, 2);
    assert_int_equal(status_of(&f->sent[1]), 100);
    assert_int_equal(f->requests, 1);

    clear_sent(f);
    assert_int_equal(txn_respond(st, 486, NULL, STR_LIT("busytag"), NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(txn_get_state(st), TXN_COMPLETED);
    uint64_t t0 = f->now;
    /* Timer G: T1, 2T1, 4T1, then T2 until timer H = 64*T1. */
    advance(f, 64 * T1 - 1);
    uint64_t expect[] = {500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500};
    int n = (int)(sizeof(expect) / sizeof(expect[0]));
    assert_int_equal(f->nsent, 1 + n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(f->sent[1 + i].at - t0, expect[i]);
        assert_int_equal(status_of(&f->sent[1 + i]), 486);
        assert_memory_equal(f->sent[1 + i].data, f->sent[0].data, f->sent[0].len);
    }
    assert_int_equal(stats(f).server_live, 1);
    advance(f, 1); /* H */
    assert_int_equal(stats(f).server_live, 0);
    assert_int_equal(f->acks, 0);
}

static void test_server_invite_ack_confirmed_timer_i(void **state)
{
    struct fake *f = *state;
    char req[1024], ack[1024];
    request(req, sizeof(req), "INVITE", VIA_UDP, NULL, 1, "INVITE");
    f->answer_status = 404;
    f->answer_tag = STR_LIT("nf");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    struct txn *st = f->st;
    assert_int_equal(f->nsent, 1); /* the 404 only: no 100 after an answer */
    advance(f, 300);
    assert_int_equal(f->nsent, 1);
    request(ack, sizeof(ack), "ACK", VIA_UDP, "nf", 1, "ACK");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, ack), 0);
    assert_int_equal(f->acks, 0); /* absorbed by the transaction */
    assert_int_equal(txn_get_state(st), TXN_CONFIRMED);
    advance(f, 5000 - 1); /* no more G retransmissions once confirmed */
    assert_int_equal(f->nsent, 1);
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, ack), 0); /* retransmitted ACK absorbed */
    assert_int_equal(f->acks, 0);
    assert_int_equal(stats(f).server_live, 1);
    advance(f, 1); /* I = T4 */
    assert_int_equal(stats(f).server_live, 0);
}

static void test_server_invite_tcp_no_g_zero_i(void **state)
{
    struct fake *f = *state;
    char req[1024], ack[1024];
    request(req, sizeof(req), "INVITE", VIA_TCP, NULL, 1, "INVITE");
    f->answer_status = 480;
    f->answer_tag = STR_LIT("x");
    assert_int_equal(receive(f, SIP_TRANSPORT_TCP, req), 0);
    advance(f, 20000);
    assert_int_equal(f->nsent, 1); /* no timer G over TCP */
    request(ack, sizeof(ack), "ACK", VIA_TCP, "x", 1, "ACK");
    assert_int_equal(receive(f, SIP_TRANSPORT_TCP, ack), 0);
    assert_int_equal(f->acks, 0);
    advance(f, 0); /* I = 0 */
    assert_int_equal(stats(f).server_live, 0);
}

static void test_server_invite_tcp_timer_h(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "INVITE", VIA_TCP, NULL, 1, "INVITE");
    f->answer_status = 480;
    assert_int_equal(receive(f, SIP_TRANSPORT_TCP, req), 0);
    advance(f, 64 * T1 - 1);
    assert_int_equal(stats(f).server_live, 1);
    advance(f, 1);
    assert_int_equal(stats(f).server_live, 0);
}

/* ops.on_final_sent: once per server transaction, at its first final
 * response however it was sent, with the TU's stamp (the app measures
 * handling time with it). */
static void test_server_final_sent_reported(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "INVITE", VIA_UDP, NULL, 1, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    txn_set_stamp(f->st, 1234);
    assert_int_equal(txn_respond(f->st, 180, NULL, STR_LIT("f1"), NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(f->finals, 0);
    assert_int_equal(txn_respond(f->st, 200, NULL, STR_LIT("f1"), NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(f->finals, 1);
    assert_int_equal(f->final_status, 200);
    assert_int_equal(f->final_stamp, 1234);
    assert_int_equal(txn_respond(f->st, 200, NULL, STR_LIT("f1"), NULL, 0, STR_NULL, STR_NULL), 0); /* 2xx again */
    assert_int_equal(f->finals, 1);
    /* A non-INVITE over UDP (its record answers retransmissions), no stamp. */
    request(req, sizeof(req), "OPTIONS", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKfin2\r\n", NULL, 2,
            "OPTIONS");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(txn_respond(f->st, 404, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(f->finals, 2);
    assert_int_equal(f->final_status, 404);
    assert_int_equal(f->final_stamp, 0);
    /* A stateless refusal from inside on_request. */
    f->answer_status = 401;
    f->answer_stateless = true;
    request(req, sizeof(req), "REGISTER", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKfin3\r\n", NULL, 3,
            "REGISTER");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->finals, 3);
    assert_int_equal(f->final_status, 401);
    /* A send that fails reports nothing: no response went out. */
    f->answer_status = 0;
    request(req, sizeof(req), "MESSAGE", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKfin4\r\n", NULL, 4,
            "MESSAGE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    f->send_rc = -EPIPE;
    assert_true(txn_respond(f->st, 200, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL) < 0);
    assert_int_equal(f->finals, 3);
    f->send_rc = 0;
}

static void test_server_invite_2xx_accepted(void **state)
{
    struct fake *f = *state;
    char req[1024], ack[1024];
    request(req, sizeof(req), "INVITE", VIA_UDP, NULL, 1, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    struct txn *st = f->st;
    assert_int_equal(txn_respond(st, 180, NULL, STR_LIT("ok1"), NULL, 0, STR_NULL, STR_NULL), 0);
    advance(f, 1000); /* the TU answered: no automatic 100 */
    assert_int_equal(f->nsent, 1);
    assert_int_equal(txn_respond(st, 200, NULL, STR_LIT("ok1"), NULL, 0, STR_LIT("application/sdp"),
                                 STR_LIT("v=0\r\n")),
                     0);
    assert_int_equal(txn_get_state(st), TXN_ACCEPTED);
    assert_int_equal(f->nsent, 2);
    /* The 2xx is not retransmitted by the transaction (the TU does that) ... */
    advance(f, 10000);
    assert_int_equal(f->nsent, 2);
    /* ... and a retransmitted INVITE is absorbed silently (RFC 6026 §7.1). */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nsent, 2);
    /* The TU may send its 2xx again; a non-2xx is refused. */
    assert_int_equal(txn_respond(st, 200, NULL, STR_LIT("ok1"), NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(f->nsent, 3);
    assert_memory_equal(f->sent[2].data, f->sent[1].data, f->sent[1].len);
    assert_int_equal(txn_respond(st, 486, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), -EALREADY);
    /* The ACK for a 2xx (a new branch) is not absorbed: it goes to the TU. */
    request(ack, sizeof(ack), "ACK", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKack2\r\n", "ok1", 1, "ACK");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, ack), 0);
    assert_int_equal(f->acks, 1);
    /* Even an ACK reusing the INVITE branch reaches the TU in Accepted. */
    request(ack, sizeof(ack), "ACK", VIA_UDP, "ok1", 1, "ACK");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, ack), 0);
    assert_int_equal(f->acks, 2);
    /* Timer L = 64*T1 from the 2xx. */
    advance(f, 64 * T1 - 10000 - 1);
    assert_int_equal(stats(f).server_live, 1);
    advance(f, 1);
    assert_int_equal(stats(f).server_live, 0);
}

static void test_server_cancel_matching(void **state)
{
    struct fake *f = *state;
    char req[1024], cancel[1024];
    request(req, sizeof(req), "INVITE", VIA_UDP, NULL, 1, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    struct txn *inv = f->st;
    request(cancel, sizeof(cancel), "CANCEL", VIA_UDP, NULL, 1, "CANCEL");
    const struct transport_rx *rx = make_rx(f, SIP_TRANSPORT_UDP, cancel);
    /* The CANCEL is its own server transaction (same branch, other method). */
    assert_ptr_equal(txn_find_invite_for_cancel(f->l, rx), inv);
    assert_int_equal(txn_layer_receive(f->l, rx), 0);
    arena_free(&f->arena);
    assert_int_equal(f->requests, 2);
    assert_int_equal(f->last_method, SIP_CANCEL);
    struct txn *cst = f->st;
    assert_ptr_not_equal(cst, inv);
    assert_int_equal(txn_respond(cst, 200, NULL, STR_LIT("c"), NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(txn_respond(inv, 487, NULL, STR_LIT("c"), NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(status_of(&f->sent[0]), 200);
    assert_non_null(strstr(f->sent[0].data, "CSeq: 1 CANCEL"));
    assert_int_equal(status_of(&f->sent[1]), 487);
    assert_non_null(strstr(f->sent[1].data, "CSeq: 1 INVITE"));

    /* A CANCEL with another branch matches nothing. */
    request(cancel, sizeof(cancel), "CANCEL", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKother\r\n", NULL, 1,
            "CANCEL");
    rx = make_rx(f, SIP_TRANSPORT_UDP, cancel);
    assert_null(txn_find_invite_for_cancel(f->l, rx));
    arena_free(&f->arena);
    /* Same branch but another sent-by: not the same transaction either (§17.2.3). */
    request(cancel, sizeof(cancel), "CANCEL", "Via: SIP/2.0/UDP 192.0.2.99:5070;branch=z9hG4bKsrv1\r\n", NULL, 1,
            "CANCEL");
    rx = make_rx(f, SIP_TRANSPORT_UDP, cancel);
    assert_null(txn_find_invite_for_cancel(f->l, rx));
    arena_free(&f->arena);
}

static void test_server_rfc2543_matching(void **state)
{
    struct fake *f = *state;
    char req[1024], other[1024];
    const char *via = "Via: SIP/2.0/UDP 192.0.2.10:5070\r\n"; /* no branch at all */
    request(req, sizeof(req), "INVITE", via, NULL, 7, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    struct txn *inv = f->st;
    assert_int_equal(f->requests, 1);
    /* Retransmission: same R-URI, tags, Call-ID, CSeq, top Via. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 1);
    /* A different CSeq is a new transaction. */
    request(other, sizeof(other), "INVITE", via, NULL, 8, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, other), 0);
    assert_int_equal(f->requests, 2);
    struct txn *inv8 = f->st;
    /* CANCEL matches by the same rules (§9.2). */
    request(other, sizeof(other), "CANCEL", via, NULL, 7, "CANCEL");
    const struct transport_rx *rx = make_rx(f, SIP_TRANSPORT_UDP, other);
    assert_ptr_equal(txn_find_invite_for_cancel(f->l, rx), inv);
    arena_free(&f->arena);
    /* A branch without the cookie is part of the top Via compared. */
    request(other, sizeof(other), "INVITE", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=old1\r\n", NULL, 7, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, other), 0);
    assert_int_equal(f->requests, 3);

    /* The ACK for the non-2xx carries the To tag of the response. */
    assert_int_equal(txn_respond(inv, 486, NULL, STR_LIT("t486"), NULL, 0, STR_NULL, STR_NULL), 0);
    request(other, sizeof(other), "ACK", via, "wrong", 7, "ACK");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, other), 0);
    assert_int_equal(f->acks, 1); /* not ours: to the TU */
    assert_int_equal(txn_get_state(inv), TXN_COMPLETED);
    request(other, sizeof(other), "ACK", via, "t486", 7, "ACK");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, other), 0);
    assert_int_equal(f->acks, 1);
    assert_int_equal(txn_get_state(inv), TXN_CONFIRMED);

    /* txn_respond_bytes: the tag is read from the bytes. */
    char resp[512];
    snprintf(resp, sizeof(resp),
             "SIP/2.0 603 Decline\r\n%sFrom: <sip:alice@example.com>;tag=fromtag1\r\n"
             "To: <sip:bob@example.com>;tag=b603\r\nCall-ID: call-1@example.com\r\nCSeq: 8 INVITE\r\n"
             "Content-Length: 0\r\n\r\n",
             via);
    assert_int_equal(txn_respond_bytes(inv8, 603, resp, strlen(resp)), 0);
    request(other, sizeof(other), "ACK", via, "b603", 8, "ACK");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, other), 0);
    assert_int_equal(f->acks, 1);
    assert_int_equal(txn_get_state(inv8), TXN_CONFIRMED);
}

static void test_server_transport_error(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "MESSAGE", VIA_UDP, NULL, 1, "MESSAGE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    struct txn *st = f->st;
    f->send_rc = UV_ENETUNREACH;
    assert_int_equal(txn_respond(st, 200, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), UV_ENETUNREACH);
    assert_int_equal(txn_get_state(st), TXN_TERMINATED); /* §17.2.4 */
    assert_int_equal(txn_respond(st, 200, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), -EPIPE);
    assert_int_equal(stats(f).transport_errors, 1);
    advance(f, 0);
    assert_int_equal(stats(f).server_live, 0);
    assert_int_equal(f->server_terminated, 1);
}

static void test_server_respond_bytes_proxy(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "INVITE", VIA_UDP, NULL, 1, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    const char *resp = "SIP/2.0 180 Ringing\r\n" VIA_UDP
                       "From: <sip:alice@example.com>;tag=fromtag1\r\nTo: <sip:bob@example.com>;tag=d1\r\n"
                       "Call-ID: call-1@example.com\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(txn_respond_bytes(f->st, 180, resp, strlen(resp)), 0);
    assert_int_equal(f->nsent, 1);
    assert_string_equal(f->sent[0].data, resp);
    assert_int_equal(txn_last_status(f->st), 180);
    /* The TU kept the request to forward it later: still there after a provisional. */
    assert_non_null(txn_request(f->st));
    advance(f, 1000);
    assert_int_equal(f->nsent, 1); /* no automatic 100 after the 180 */
}

/* ---- client non-INVITE ---- */

static struct txn *client_send(struct fake *f, enum sip_transport proto, const char *method, const char *branch)
{
    char req[1024], via[128];
    snprintf(via, sizeof(via), "Via: SIP/2.0/%s 192.0.2.1:5060;branch=%s\r\n", transport_name(proto), branch);
    request(req, sizeof(req), method, via, NULL, 1, method);
    struct transport_dest d = {.proto = proto};
    transport_addr_parse("192.0.2.20", 10, 5060, &d.addr);
    return txn_client_new(f->l, &d, req, strlen(req), str_from_cstr(branch), sip_method_from_str(str_from_cstr(method)),
                          &client_cb, f);
}

static char *response(char *out, size_t cap, int status, const char *branch, const char *method, const char *tag)
{
    snprintf(out, cap,
             "SIP/2.0 %d Whatever\r\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=%s\r\n"
             "From: <sip:alice@example.com>;tag=fromtag1\r\n"
             "To: <sip:bob@example.com>%s%s\r\n"
             "Call-ID: call-1@example.com\r\n"
             "CSeq: 1 %s\r\n"
             "Content-Length: 0\r\n\r\n",
             status, branch, tag ? ";tag=" : "", tag ? tag : "", method);
    return out;
}

static void test_client_noninvite_timer_e_f(void **state)
{
    struct fake *f = *state;
    struct txn *ct = client_send(f, SIP_TRANSPORT_UDP, "OPTIONS", "z9hG4bKc1");
    assert_non_null(ct);
    assert_int_equal(f->nsent, 1);
    uint64_t t0 = f->now;
    advance(f, 64 * T1 - 1);
    /* E: T1, 2T1, 4T1, then T2. */
    uint64_t expect[] = {500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500};
    int n = (int)(sizeof(expect) / sizeof(expect[0]));
    assert_int_equal(f->nsent, 1 + n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(f->sent[1 + i].at - t0, expect[i]);
        assert_memory_equal(f->sent[1 + i].data, f->sent[0].data, f->sent[0].len);
    }
    assert_int_equal(f->failure, 0);
    advance(f, 1); /* F */
    assert_int_equal(f->failure, 408);
    assert_int_equal(f->client_terminated, 1);
    assert_ptr_equal(f->ct_terminated, ct);
    assert_int_equal(stats(f).client_live, 0);
    assert_int_equal(stats(f).timeouts, 1);
}

static void test_client_noninvite_provisional_then_final_timer_k(void **state)
{
    struct fake *f = *state;
    char resp[1024];
    struct txn *ct = client_send(f, SIP_TRANSPORT_UDP, "MESSAGE", "z9hG4bKc2");
    assert_non_null(ct);
    advance(f, 500); /* E fired once */
    assert_int_equal(f->nsent, 2);
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, response(resp, sizeof(resp), 100, "z9hG4bKc2", "MESSAGE", NULL)),
                     0);
    assert_int_equal(txn_get_state(ct), TXN_PROCEEDING);
    assert_int_equal(f->nresponses, 1);
    /* In Proceeding, E fires at its pending time and then every T2. */
    uint64_t t0 = f->now;
    advance(f, 1000); /* pending E (1000 after the last) */
    assert_int_equal(f->nsent, 3);
    advance(f, T2 - 1);
    assert_int_equal(f->nsent, 3);
    advance(f, 1);
    assert_int_equal(f->nsent, 4);
    assert_int_equal(f->sent[3].at - t0, 1000 + T2);
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, response(resp, sizeof(resp), 202, "z9hG4bKc2", "MESSAGE", "x")), 0);
    assert_int_equal(f->nresponses, 2);
    assert_int_equal(f->responses[1], 202);
    assert_int_equal(txn_get_state(ct), TXN_COMPLETED);
    /* A retransmitted final is absorbed. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, response(resp, sizeof(resp), 202, "z9hG4bKc2", "MESSAGE", "x")), 0);
    assert_int_equal(f->nresponses, 2);
    advance(f, T4 - 1);
    assert_int_equal(f->nsent, 4); /* no retransmission after the final */
    assert_int_equal(f->client_terminated, 0);
    advance(f, 1); /* K */
    assert_int_equal(f->client_terminated, 1);
    assert_int_equal(f->failure, 0);
    /* A late retransmission is now stray. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, response(resp, sizeof(resp), 202, "z9hG4bKc2", "MESSAGE", "x")), 0);
    assert_int_equal(f->strays, 1);
}

static void test_client_noninvite_tcp(void **state)
{
    struct fake *f = *state;
    char resp[1024];
    struct txn *ct = client_send(f, SIP_TRANSPORT_TCP, "REGISTER", "z9hG4bKc3");
    assert_non_null(ct);
    assert_int_not_equal(txn_dest(ct)->conn_id, 0); /* the connection used is remembered */
    advance(f, 64 * T1 - 1);
    assert_int_equal(f->nsent, 1); /* no timer E over TCP */
    assert_int_equal(receive(f, SIP_TRANSPORT_TCP, response(resp, sizeof(resp), 200, "z9hG4bKc3", "REGISTER", "x")),
                     0);
    assert_int_equal(f->nresponses, 1);
    advance(f, 0); /* K = 0 */
    assert_int_equal(f->client_terminated, 1);
    assert_int_equal(stats(f).client_live, 0);
}

static void test_client_noninvite_tcp_timer_f(void **state)
{
    struct fake *f = *state;
    assert_non_null(client_send(f, SIP_TRANSPORT_TCP, "REGISTER", "z9hG4bKc3f"));
    advance(f, 64 * T1);
    assert_int_equal(f->failure, 408);
    assert_int_equal(f->nsent, 1);
}

/* ---- client INVITE ---- */

static void test_client_invite_timer_a_b(void **state)
{
    struct fake *f = *state;
    struct txn *ct = client_send(f, SIP_TRANSPORT_UDP, "INVITE", "z9hG4bKi1");
    assert_non_null(ct);
    assert_int_equal(txn_get_state(ct), TXN_CALLING);
    uint64_t t0 = f->now;
    advance(f, 64 * T1 - 1);
    /* A doubles without a cap: 500, 1500, 3500, 7500, 15500, 31500. */
    uint64_t expect[] = {500, 1500, 3500, 7500, 15500, 31500};
    assert_int_equal(f->nsent, 7);
    for (int i = 0; i < 6; i++) assert_int_equal(f->sent[1 + i].at - t0, expect[i]);
    advance(f, 1); /* B */
    assert_int_equal(f->failure, 408);
    assert_int_equal(f->client_terminated, 1);
}

static void test_client_invite_non2xx_ack(void **state)
{
    struct fake *f = *state;
    char req[2048], resp[1024];
    snprintf(req, sizeof(req),
             "INVITE sip:bob@example.com SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi2;rport\r\n"
             "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKupstream\r\n"
             "Route: <sip:p1.example.com;lr>\r\n"
             "Route: <sip:p2.example.com;lr>\r\n"
             "Max-Forwards: 69\r\n"
             "From: \"Alice\" <sip:alice@example.com>;tag=fromtag1\r\n"
             "To: <sip:bob@example.com>\r\n"
             "Call-ID: call-2@example.com\r\n"
             "CSeq: 42 INVITE\r\n"
             "Contact: <sip:alice@192.0.2.1>\r\n"
             "Content-Type: application/sdp\r\n"
             "Content-Length: 4\r\n\r\nv=0\n");
    struct transport_dest d = {.proto = SIP_TRANSPORT_UDP};
    transport_addr_parse("192.0.2.20", 10, 5060, &d.addr);
    struct txn *ct = txn_client_new(f->l, &d, req, strlen(req), STR_LIT("z9hG4bKi2"), SIP_INVITE, &client_cb, f);
    assert_non_null(ct);
    snprintf(resp, sizeof(resp),
             "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi2;rport=5060\r\n"
             "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKupstream\r\n"
             "From: \"Alice\" <sip:alice@example.com>;tag=fromtag1\r\nTo: <sip:bob@example.com>;tag=r1\r\n"
             "Call-ID: call-2@example.com\r\nCSeq: 42 INVITE\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, resp), 0);
    assert_int_equal(txn_get_state(ct), TXN_PROCEEDING);
    /* A and B stop on a provisional: no retransmission, no 408 */
    advance(f, 100000);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->failure, 0);

    snprintf(resp, sizeof(resp),
             "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi2;rport=5060\r\n"
             "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKupstream\r\n"
             "From: \"Alice\" <sip:alice@example.com>;tag=fromtag1\r\nTo: <sip:bob@example.com>;tag=busy9\r\n"
             "Call-ID: call-2@example.com\r\nCSeq: 42 INVITE\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, resp), 0);
    assert_int_equal(f->nresponses, 2);
    assert_int_equal(f->responses[1], 486);
    assert_int_equal(txn_get_state(ct), TXN_COMPLETED);
    assert_int_equal(f->nsent, 2);
    /* §17.1.1.3: the ACK the transaction built. */
    const char *ack = f->sent[1].data;
    assert_string_equal(ack, "ACK sip:bob@example.com SIP/2.0\r\n"
                             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi2;rport\r\n"
                             "Max-Forwards: 70\r\n"
                             "From: \"Alice\" <sip:alice@example.com>;tag=fromtag1\r\n"
                             "To: <sip:bob@example.com>;tag=busy9\r\n"
                             "Call-ID: call-2@example.com\r\n"
                             "CSeq: 42 ACK\r\n"
                             "Route: <sip:p1.example.com;lr>\r\n"
                             "Route: <sip:p2.example.com;lr>\r\n"
                             "Content-Length: 0\r\n\r\n");
    /* The ACK parses and goes where the INVITE went. */
    struct sip_msg m;
    char mem[8192];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    struct sip_parse_error err;
    assert_int_equal(sip_parse(ack, strlen(ack), &a, NULL, &m, &err), 0);
    assert_int_equal(m.method, SIP_ACK);
    assert_true(transport_addr_equal(&f->sent[1].dest.addr, &d.addr));
    /* A retransmitted 486: the ACK again, the TU does not see it twice. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, resp), 0);
    assert_int_equal(f->nresponses, 2);
    assert_int_equal(f->nsent, 3);
    assert_string_equal(f->sent[2].data, ack);
    /* D = 32 s over UDP */
    advance(f, 32000 - 1);
    assert_int_equal(f->client_terminated, 0);
    advance(f, 1);
    assert_int_equal(f->client_terminated, 1);
    assert_int_equal(f->failure, 0);
}

static void test_client_invite_2xx_not_absorbed(void **state)
{
    struct fake *f = *state;
    char resp[1024];
    struct txn *ct = client_send(f, SIP_TRANSPORT_UDP, "INVITE", "z9hG4bKi3");
    assert_non_null(ct);
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, response(resp, sizeof(resp), 200, "z9hG4bKi3", "INVITE", "ok")), 0);
    assert_int_equal(f->nresponses, 1);
    assert_int_equal(f->responses[0], 200);
    assert_int_equal(f->nsent, 1); /* no ACK from the transaction for a 2xx */
    assert_int_equal(txn_get_state(ct), TXN_TERMINATED);
    /* A retransmitted (or forked) 2xx goes to the TU as stray. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, response(resp, sizeof(resp), 200, "z9hG4bKi3", "INVITE", "ok")), 0);
    assert_int_equal(f->nresponses, 1);
    assert_int_equal(f->strays, 1);
    advance(f, 0);
    assert_int_equal(f->client_terminated, 1);
    assert_int_equal(stats(f).client_live, 0);
    advance(f, 64 * T1);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(f->failure, 0);
}

static void test_client_invite_tcp_zero_d(void **state)
{
    struct fake *f = *state;
    char resp[1024];
    assert_non_null(client_send(f, SIP_TRANSPORT_TCP, "INVITE", "z9hG4bKi4"));
    advance(f, 10000);
    assert_int_equal(f->nsent, 1); /* no timer A */
    assert_int_equal(receive(f, SIP_TRANSPORT_TCP, response(resp, sizeof(resp), 503, "z9hG4bKi4", "INVITE", "u")), 0);
    assert_int_equal(f->nsent, 2); /* the ACK */
    assert_non_null(strstr(f->sent[1].data, "ACK "));
    assert_int_equal(f->sent[1].dest.conn_id, f->sent[0].dest.conn_id);
    advance(f, 0); /* D = 0 */
    assert_int_equal(f->client_terminated, 1);
}

static void test_client_cancel(void **state)
{
    struct fake *f = *state;
    char resp[1024];
    struct txn *ct = client_send(f, SIP_TRANSPORT_UDP, "INVITE", "z9hG4bKi5");
    assert_non_null(ct);
    /* §9.1: no CANCEL before a provisional response. */
    assert_int_equal(txn_client_cancel(ct), 0);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, response(resp, sizeof(resp), 180, "z9hG4bKi5", "INVITE", "r")), 0);
    assert_int_equal(f->nsent, 2);
    const char *cancel = f->sent[1].data;
    assert_non_null(strstr(cancel, "CANCEL sip:bob@example.com SIP/2.0\r\n"));
    assert_non_null(strstr(cancel, "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKi5\r\n"));
    assert_non_null(strstr(cancel, "To: <sip:bob@example.com>\r\n")); /* the request's To: no tag */
    assert_non_null(strstr(cancel, "CSeq: 1 CANCEL\r\n"));
    assert_int_equal(stats(f).client_live, 2);
    assert_int_equal(txn_client_cancel(ct), 0); /* once only */
    assert_int_equal(f->nsent, 2);
    /* The CANCEL retransmits on its own (timer E) ... */
    advance(f, T1);
    assert_int_equal(f->nsent, 3);
    assert_string_equal(f->sent[2].data, f->sent[1].data);
    /* ... and its 200 does not reach the INVITE's callbacks. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, response(resp, sizeof(resp), 200, "z9hG4bKi5", "CANCEL", "r")), 0);
    assert_int_equal(f->nresponses, 1);
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, response(resp, sizeof(resp), 487, "z9hG4bKi5", "INVITE", "r")), 0);
    assert_int_equal(f->nresponses, 2);
    assert_int_equal(f->responses[1], 487);
    assert_non_null(strstr(f->sent[f->nsent - 1].data, "ACK sip:bob@example.com"));
    advance(f, 40000);
    assert_int_equal(stats(f).client_live, 0);
    assert_int_equal(f->client_terminated, 1); /* the CANCEL's transaction has no callbacks */
}

static void test_client_cancel_after_final_is_refused(void **state)
{
    struct fake *f = *state;
    char resp[1024];
    struct txn *ct = client_send(f, SIP_TRANSPORT_UDP, "INVITE", "z9hG4bKi6");
    assert_int_equal(txn_client_cancel(ct), 0); /* pending */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, response(resp, sizeof(resp), 404, "z9hG4bKi6", "INVITE", "n")), 0);
    assert_int_equal(f->nsent, 2); /* INVITE + ACK, no CANCEL */
    assert_null(strstr(f->sent[1].data, "CANCEL"));
    assert_int_equal(txn_client_cancel(ct), -EINVAL);
    struct txn *opt = client_send(f, SIP_TRANSPORT_UDP, "OPTIONS", "z9hG4bKi7");
    assert_int_equal(txn_client_cancel(opt), -EINVAL);
}

static void test_client_transport_error_503(void **state)
{
    struct fake *f = *state;
    f->send_rc = UV_EHOSTUNREACH;
    struct txn *ct = client_send(f, SIP_TRANSPORT_UDP, "OPTIONS", "z9hG4bKe1");
    assert_non_null(ct);
    assert_int_equal(f->failure, 0); /* never from inside txn_client_new */
    advance(f, 0);
    assert_int_equal(f->failure, 503);
    assert_int_equal(f->client_terminated, 1);
    assert_int_equal(stats(f).client_live, 0);

    /* A failing retransmission also ends in 503. */
    f->send_rc = 0;
    f->failure = 0;
    assert_non_null(client_send(f, SIP_TRANSPORT_UDP, "INVITE", "z9hG4bKe2"));
    f->send_rc = UV_ENETUNREACH;
    advance(f, T1);
    assert_int_equal(f->failure, 503);
    assert_int_equal(stats(f).transport_errors, 2);
}

static void test_client_conn_lost_503(void **state)
{
    struct fake *f = *state;
    char resp[1024];
    struct txn *a = client_send(f, SIP_TRANSPORT_TCP, "INVITE", "z9hG4bKl1");
    struct txn *b = client_send(f, SIP_TRANSPORT_TCP, "OPTIONS", "z9hG4bKl2");
    assert_non_null(a);
    assert_non_null(b);
    uint64_t conn_a = txn_dest(a)->conn_id;
    assert_int_not_equal(conn_a, txn_dest(b)->conn_id);
    assert_int_equal(receive(f, SIP_TRANSPORT_TCP, response(resp, sizeof(resp), 180, "z9hG4bKl1", "INVITE", "r")), 0);
    txn_layer_conn_lost(f->l, conn_a);
    assert_int_equal(f->failure, 0);
    advance(f, 0);
    assert_int_equal(f->failure, 503);
    assert_int_equal(f->client_terminated, 1);
    assert_ptr_equal(f->ct_terminated, a);
    assert_int_equal(stats(f).client_live, 1); /* b is on another connection */
    txn_layer_conn_lost(f->l, 999);
    advance(f, 0);
    assert_int_equal(stats(f).client_live, 1);
}

static void test_client_refusals_and_detach(void **state)
{
    struct fake *f = *state;
    struct transport_dest d = {.proto = SIP_TRANSPORT_UDP};
    transport_addr_parse("192.0.2.20", 10, 5060, &d.addr);
    const char *r = "OPTIONS sip:x SIP/2.0\r\n\r\n";
    assert_null(txn_client_new(f->l, &d, r, strlen(r), STR_LIT("nocookie"), SIP_OPTIONS, &client_cb, f));
    assert_null(txn_client_new(f->l, &d, r, strlen(r), STR_LIT("z9hG4bKm"), SIP_INVITE, &client_cb, f));
    const char *ack = "ACK sip:x SIP/2.0\r\n\r\n";
    assert_null(txn_client_new(f->l, &d, ack, strlen(ack), STR_LIT("z9hG4bKa"), SIP_ACK, &client_cb, f));
    struct txn *ct = client_send(f, SIP_TRANSPORT_UDP, "OPTIONS", "z9hG4bKdup");
    assert_non_null(ct);
    assert_null(client_send(f, SIP_TRANSPORT_UDP, "OPTIONS", "z9hG4bKdup"));
    /* A detached transaction runs out without calling back. */
    txn_client_detach(ct);
    advance(f, 64 * T1);
    assert_int_equal(f->failure, 0);
    assert_int_equal(f->client_terminated, 0);
    assert_int_equal(stats(f).client_live, 0);
}

static void test_branch_generation(void **state)
{
    (void)state;
    char a[TXN_BRANCH_SIZE], b[TXN_BRANCH_SIZE];
    txn_new_branch(a);
    txn_new_branch(b);
    assert_int_equal(strncmp(a, "z9hG4bK", 7), 0);
    assert_int_equal(strlen(a), 7 + 24);
    assert_string_not_equal(a, b);
    for (size_t i = 7; i < strlen(a); i++)
        assert_true((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') || (a[i] >= '0' && a[i] <= '9') ||
                    a[i] == '-' || a[i] == '.');
}

static void test_layer_free_with_live_transactions(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "INVITE", VIA_UDP, NULL, 1, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_non_null(client_send(f, SIP_TRANSPORT_UDP, "INVITE", "z9hG4bKfree1"));
    f->send_rc = UV_EHOSTUNREACH;
    assert_non_null(client_send(f, SIP_TRANSPORT_UDP, "OPTIONS", "z9hG4bKfree2")); /* failure pending */
    assert_int_equal(stats(f).server_live, 1);
    assert_int_equal(stats(f).client_live, 2);
    /* teardown frees the layer: ASan checks that nothing leaks and no callback fires. */
}

static void test_many_transactions_hash(void **state)
{
    struct fake *f = *state;
    char req[1024], via[128];
    f->answer_status = 200;
    for (int i = 0; i < 2000; i++) {
        snprintf(via, sizeof(via), "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKmany%d\r\n", i);
        request(req, sizeof(req), "OPTIONS", via, NULL, 1, "OPTIONS");
        assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
        clear_sent(f);
    }
    assert_int_equal(stats(f).server_live, 2000);
    assert_int_equal(f->requests, 2000);
    /* Each retransmission still finds its own transaction after the table grew. */
    for (int i = 0; i < 2000; i += 97) {
        snprintf(via, sizeof(via), "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKmany%d\r\n", i);
        request(req, sizeof(req), "OPTIONS", via, NULL, 1, "OPTIONS");
        int before = f->nsent;
        assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
        assert_int_equal(f->nsent, before + 1);
        assert_non_null(strstr(f->sent[f->nsent - 1].data, via + 5));
        if (f->nsent > MAX_SENT - 4) clear_sent(f);
    }
    assert_int_equal(f->requests, 2000);
    advance(f, 64 * T1);
    assert_int_equal(stats(f).server_live, 0);
}

/* ---- completed non-INVITE over UDP: the compact record (done.c) ---- */

static void test_server_completed_record(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "OPTIONS", VIA_UDP, NULL, 1, "OPTIONS");
    f->answer_status = 200;
    f->answer_tag = STR_LIT("srvtag");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(stats(f).server_live, 1);
    assert_int_equal(stats(f).server_completed, 1);
    assert_true(stats(f).server_completed_bytes >= f->sent[0].len);
    /* The full transaction ends on the next timer run; the record stays. */
    advance(f, 1);
    assert_int_equal(f->server_terminated, 1);
    assert_null(f->st);
    assert_int_equal(stats(f).server_live, 1);
    /* Retransmissions get the same bytes, to the same place, without the TU. */
    for (int i = 0; i < 3; i++) {
        advance(f, 5000);
        assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    }
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nsent, 4);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(f->sent[i].len, f->sent[0].len);
        assert_memory_equal(f->sent[i].data, f->sent[0].data, f->sent[0].len);
        assert_true(transport_addr_equal(&f->sent[i].dest.addr, &f->sent[0].dest.addr));
        assert_int_equal(f->sent[i].dest.proto, SIP_TRANSPORT_UDP);
        assert_int_equal(f->sent[i].dest.listener_id, 1);
    }
    assert_int_equal(stats(f).retransmissions_absorbed, 3);
    /* Same branch but another sent-by port or another method: not a retransmission. */
    char other[1024];
    request(other, sizeof(other), "OPTIONS", "Via: SIP/2.0/UDP 192.0.2.10:5071;branch=z9hG4bKsrv1\r\n", NULL, 1,
            "OPTIONS");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, other), 0);
    assert_int_equal(f->requests, 2);
    request(other, sizeof(other), "MESSAGE", VIA_UDP, NULL, 1, "MESSAGE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, other), 0);
    assert_int_equal(f->requests, 3);
    /* Timer J, counted from the final response. */
    advance(f, 64 * T1 - 15001 - 1);
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 3);
    advance(f, 2);
    assert_int_equal(stats(f).server_completed, 2); /* the two later ones */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 4);
    advance(f, 64 * T1);
    assert_int_equal(stats(f).server_live, 0);
    assert_int_equal(stats(f).server_completed, 0);
    assert_int_equal(stats(f).server_completed_bytes, 0);
}

/* RFC 3261 §8.2.7: a stateless final response (a challenge) keeps nothing;
 * the retransmitted request is a new transaction and is answered anew. */
static void test_server_stateless_response(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "REGISTER", VIA_UDP, NULL, 1, "REGISTER");
    f->answer_status = 401;
    f->answer_tag = STR_LIT("srvtag");
    f->answer_stateless = true;
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(status_of(&f->sent[0]), 401);
    assert_int_equal(stats(f).server_live, 0);
    assert_int_equal(stats(f).server_completed, 0);
    assert_int_equal(stats(f).server_completed_bytes, 0);
    advance(f, 1);
    assert_int_equal(f->server_terminated, 1);
    /* The retransmission reaches the TU again and is answered again. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 2);
    assert_int_equal(f->nsent, 2);
    assert_int_equal(status_of(&f->sent[1]), 401);
    advance(f, 1);
    assert_int_equal(f->server_terminated, 2);
    assert_int_equal(stats(f).server_live, 0);
    /* Over TCP it is an ordinary transaction (Timer J is 0 there anyway). */
    char treq[1024];
    request(treq, sizeof(treq), "REGISTER", VIA_TCP, NULL, 2, "REGISTER");
    assert_int_equal(receive(f, SIP_TRANSPORT_TCP, treq), 0);
    assert_int_equal(f->requests, 3);
    assert_int_equal(status_of(&f->sent[2]), 401);
    advance(f, 1);
    assert_int_equal(stats(f).server_live, 0);
    /* Provisional responses are not stateless: the transaction lives on. */
    f->answer_status = 0;
    request(req, sizeof(req), "REGISTER", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKsl2\r\n", NULL, 3,
            "REGISTER");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(txn_respond_stateless(f->st, 180, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(stats(f).server_live, 1);
    assert_int_equal(txn_respond_stateless(f->st, 403, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(stats(f).server_live, 0);
    assert_int_equal(stats(f).server_completed, 0);
}

/* The To tag of sent[i] (after ";tag="), copied into out. */
static void sent_to_tag(const struct sent *s, char *out, size_t cap)
{
    const char *to = strstr(s->data, "\r\nTo: ");
    assert_non_null(to);
    const char *tag = strstr(to, ";tag=");
    assert_non_null(tag);
    tag += 5;
    size_t n = strcspn(tag, "\r\n;");
    assert_true(n < cap);
    memcpy(out, tag, n);
    out[n] = '\0';
}

/* Issue 9: a refused INVITE from outside a dialog is answered once. No Timer
 * G (one spoofed INVITE used to draw 11 responses), no Timer H state; the
 * ACK that comes back carries the layer's To tag and is absorbed, never
 * handed to the TU as the ACK of a 2xx. */
static void test_server_reject_invite_stateless(void **state)
{
    struct fake *f = *state;
    char req[1024], ack[1024];
    request(req, sizeof(req), "INVITE", VIA_UDP, NULL, 1, "INVITE");
    f->answer_status = 404;
    f->answer_tag = STR_LIT("tutag");
    f->answer_reject = true;
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(status_of(&f->sent[0]), 404);
    assert_int_equal(stats(f).server_live, 0);
    assert_int_equal(stats(f).stateless_finals, 1);
    char tag[64];
    sent_to_tag(&f->sent[0], tag, sizeof(tag));
    assert_string_not_equal(tag, "tutag"); /* the layer's, recognisable in the ACK */
    advance(f, 64 * T1 + T4);
    assert_int_equal(f->nsent, 1); /* no Timer G retransmission */
    assert_int_equal(f->server_terminated, 1);
    /* RFC 3261 §17.1.1.3: the ACK has the branch of the INVITE and our To tag. */
    request(ack, sizeof(ack), "ACK", VIA_UDP, tag, 1, "ACK");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, ack), 0);
    assert_int_equal(f->acks, 0);
    assert_int_equal(f->nsent, 1);
    assert_int_equal(stats(f).stateless_acks_absorbed, 1);
    /* An ACK with another To tag is a 2xx ACK for the TU, as before. */
    request(ack, sizeof(ack), "ACK", VIA_UDP, "othertag", 1, "ACK");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, ack), 0);
    assert_int_equal(f->acks, 1);
    /* A retransmitted INVITE is a new request, answered once again. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 2);
    assert_int_equal(f->nsent, 2);
    char tag2[64];
    sent_to_tag(&f->sent[1], tag2, sizeof(tag2));
    assert_string_equal(tag, tag2); /* same request, same tag */
    /* Over TCP too: no Timer H wait for the ACK. */
    request(req, sizeof(req), "INVITE", VIA_TCP, NULL, 2, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_TCP, req), 0);
    assert_int_equal(f->nsent, 3);
    assert_int_equal(stats(f).server_live, 0);
}

/* txn_reject is stateless only for a first answer >= 300 out of a dialog. */
static void test_server_reject_rules(void **state)
{
    struct fake *f = *state;
    char req[1024];
    f->answer_reject = true;
    /* 2xx: stateful (Timer J record). */
    f->answer_status = 200;
    request(req, sizeof(req), "OPTIONS", VIA_UDP, NULL, 1, "OPTIONS");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(stats(f).server_live, 1);
    assert_int_equal(stats(f).stateless_finals, 0);
    /* In a dialog (To tag): stateful. */
    f->answer_status = 481;
    request(req, sizeof(req), "BYE", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKrr2\r\n", "theirs", 2, "BYE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(stats(f).server_live, 2);
    assert_int_equal(stats(f).stateless_finals, 0);
    /* After a provisional (a forwarded INVITE): stateful, Timer G runs. */
    f->answer_status = 0;
    request(req, sizeof(req), "INVITE", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKrr3\r\n", NULL, 3, "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    int before = f->nsent;
    assert_int_equal(txn_respond(f->st, 180, NULL, STR_LIT("t3"), NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(txn_reject(f->st, 486, NULL, STR_LIT("t3"), NULL, 0, STR_NULL, STR_NULL), 0);
    assert_int_equal(stats(f).server_live, 3);
    advance(f, T1);
    assert_int_equal(f->nsent, before + 3); /* 180, 486, and the 486 again */
    assert_int_equal(stats(f).stateless_finals, 0);
}

/* Issue 9: [sip] max_server_transactions caps live server transactions —
 * full ones; the compact Timer J records of answered requests do not count
 * (a REGISTER rate above the cap / 64*T1 must not be refused for them).
 * Beyond the cap a new request gets 503 with Retry-After, statelessly, and
 * never reaches the TU; retransmissions of live transactions are still
 * absorbed; room frees as they end. */
static void test_server_transaction_cap(void **state)
{
    struct fake *f = *state;
    txn_layer_free(f->l);
    struct txn_config cfg = {.t1_ms = T1, .t2_ms = T2, .t4_ms = T4, .max_server = 3, .retry_after_s = 7};
    struct txn_layer_ops ops = {.user = f, .send = fake_send, .on_request = fake_on_request, .on_ack = fake_on_ack,
                                .on_stray_response = fake_on_stray, .on_server_terminated = fake_server_terminated,
                                .now_ms = fake_now};
    f->l = txn_layer_new(&f->ts, &cfg, &ops);
    assert_non_null(f->l);
    assert_int_equal(stats(f).server_max, 3);
    char req[1024], via[128];
    /* Answered at once: a Timer J record each, not counted against the cap. */
    f->answer_status = 200;
    for (int i = 0; i < 5; i++) {
        snprintf(via, sizeof(via), "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKdone%d\r\n", i);
        request(req, sizeof(req), "MESSAGE", via, NULL, i + 1, "MESSAGE");
        assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    }
    assert_int_equal(f->requests, 5);
    assert_int_equal(stats(f).server_completed, 5);
    /* Not answered yet: full transactions, up to the cap. */
    f->answer_status = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(via, sizeof(via), "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKcap%d\r\n", i);
        request(req, sizeof(req), "MESSAGE", via, NULL, i + 1, "MESSAGE");
        assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    }
    assert_int_equal(f->requests, 8);
    assert_int_equal(stats(f).server_live, 8);
    size_t sent_before = f->nsent;
    /* The next one: 503 + Retry-After, no transaction, the TU never sees it. */
    request(req, sizeof(req), "INVITE", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKcap9\r\n", NULL, 9,
            "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 8);
    assert_int_equal(f->nsent, sent_before + 1);
    assert_int_equal(status_of(&f->sent[sent_before]), 503);
    assert_non_null(strstr(f->sent[sent_before].data, "\r\nRetry-After: 7\r\n"));
    assert_int_equal(stats(f).refused_over_cap, 1);
    assert_int_equal(stats(f).server_live, 8);
    /* its ACK is absorbed like any stateless final's */
    char tag[64], ack[1024];
    sent_to_tag(&f->sent[sent_before], tag, sizeof(tag));
    request(ack, sizeof(ack), "ACK", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKcap9\r\n", tag, 9, "ACK");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, ack), 0);
    assert_int_equal(f->acks, 0);
    /* a retransmission of an answered one is still answered from its record */
    request(req, sizeof(req), "MESSAGE", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKdone0\r\n", NULL, 1,
            "MESSAGE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(status_of(&f->sent[sent_before + 1]), 200);
    /* Timer J ends the records; the unanswered ones stay (a non-INVITE server
     * transaction waits for its TU) and keep the cap reached. */
    advance(f, 64 * T1);
    assert_int_equal(stats(f).server_completed, 0);
    assert_int_equal(stats(f).server_live, 3);
    request(req, sizeof(req), "INVITE", "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKcap8\r\n", NULL, 8,
            "INVITE");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 8);
    assert_int_equal(stats(f).refused_over_cap, 2);
}

static void test_server_completed_extension_method(void **state)
{
    struct fake *f = *state;
    char req[1024], other[1024];
    f->answer_status = 202;
    request(req, sizeof(req), "FOO", VIA_UDP, NULL, 1, "FOO");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->last_method, SIP_METHOD_UNKNOWN);
    advance(f, 1);
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->nsent, 2);
    /* Another extension method with the same branch is another transaction. */
    request(other, sizeof(other), "BAR", VIA_UDP, NULL, 1, "BAR");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, other), 0);
    assert_int_equal(f->requests, 2);
    /* The sent-by host compares without case (RFC 3261 §17.2.3). */
    request(other, sizeof(other), "FOO", "Via: SIP/2.0/UDP Host.Example.com:5070;branch=z9hG4bKcase\r\n", NULL, 1,
            "FOO");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, other), 0);
    assert_int_equal(f->requests, 3);
    advance(f, 1);
    request(other, sizeof(other), "FOO", "Via: SIP/2.0/UDP host.example.COM:5070;branch=z9hG4bKcase\r\n", NULL, 1,
            "FOO");
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, other), 0);
    assert_int_equal(f->requests, 3);
    assert_int_equal(stats(f).retransmissions_absorbed, 2);
}

static void test_server_completed_send_error(void **state)
{
    struct fake *f = *state;
    char req[1024];
    request(req, sizeof(req), "OPTIONS", VIA_UDP, NULL, 1, "OPTIONS");
    f->answer_status = 200;
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    advance(f, 1);
    f->send_rc = UV_EHOSTUNREACH;
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0); /* absorbed, but the resend failed */
    assert_int_equal(f->requests, 1);
    assert_int_equal(stats(f).transport_errors, 1);
    f->send_rc = 0;
    f->answer_status = 0;
    /* §17.2.4: the transaction ended, so the next copy is a new request. */
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(f->requests, 2);
    assert_int_equal(txn_respond(f->st, 200, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), 0);
    advance(f, 64 * T1);
    assert_int_equal(stats(f).server_live, 0);
    assert_int_equal(stats(f).server_completed, 0);
}

/* Records with large responses spread over several blocks, appended at
 * different times, expire one by one in order; the log ends empty. */
static void test_server_completed_many_blocks(void **state)
{
    struct fake *f = *state;
    char req[1024], via[128];
    static char body[3000];
    memset(body, 'x', sizeof(body) - 1);
    for (int i = 0; i < 100; i++) {
        snprintf(via, sizeof(via), "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKblk%d\r\n", i);
        request(req, sizeof(req), "MESSAGE", via, NULL, 1, "MESSAGE");
        assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
        assert_int_equal(txn_respond(f->st, 200, NULL, STR_LIT("t"), NULL, 0, STR_LIT("text/plain"),
                                     str_from_cstr(body)),
                         0);
        clear_sent(f);
        advance(f, 10);
    }
    assert_int_equal(stats(f).server_completed, 100);
    assert_true(stats(f).server_completed_bytes > 100 * 3000);
    /* The first record appended at t0 expires at t0 + 64*T1: 1000 ms have passed. */
    advance(f, 64 * T1 - 1000 - 1);
    assert_int_equal(stats(f).server_completed, 100);
    for (int i = 0; i < 100; i++) {
        advance(f, i ? 10 : 1);
        assert_int_equal(stats(f).server_completed, 99 - i);
        /* The newest one still answers until its own Timer J. */
        if (i == 98) {
            snprintf(via, sizeof(via), "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKblk%d\r\n", 99);
            request(req, sizeof(req), "MESSAGE", via, NULL, 1, "MESSAGE");
            int before = f->requests;
            assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
            assert_int_equal(f->requests, before);
            assert_int_equal(f->nsent, 1);
            assert_non_null(strstr(f->sent[0].data, "xxxx"));
        }
    }
    assert_int_equal(stats(f).server_live, 0);
    assert_int_equal(stats(f).server_completed_bytes, 0);
    /* The log is reused after it emptied. */
    request(req, sizeof(req), "OPTIONS", VIA_UDP, NULL, 2, "OPTIONS");
    f->answer_status = 200;
    assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
    assert_int_equal(stats(f).server_completed, 1);
    /* teardown frees the layer with a record left: ASan checks for leaks. */
}

/* The index stays exact while records expire from the middle of probe runs:
 * after half of them expired, every live one still answers and every
 * expired one is a new request. */
static void test_server_completed_index_churn(void **state)
{
    struct fake *f = *state;
    char req[1024], via[128];
    enum { N = 3000 };
    f->answer_status = 200;
    for (int i = 0; i < N; i++) {
        snprintf(via, sizeof(via), "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKchurn%d\r\n", i);
        request(req, sizeof(req), "OPTIONS", via, NULL, 1, "OPTIONS");
        assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
        clear_sent(f);
        if (i % 10 == 9) advance(f, 1);
    }
    assert_int_equal(stats(f).server_completed, N);
    /* Records i < N/2 were answered at or before t0 + 149 ms. */
    advance(f, 64 * T1 - N / 10 / 2 - 1); /* now t0 + 300 + J - 151 */
    assert_int_equal(stats(f).server_completed, N / 2);
    f->answer_status = 0;
    int requests = f->requests;
    for (int i = 0; i < N; i++) {
        snprintf(via, sizeof(via), "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKchurn%d\r\n", i);
        request(req, sizeof(req), "OPTIONS", via, NULL, 1, "OPTIONS");
        assert_int_equal(receive(f, SIP_TRANSPORT_UDP, req), 0);
        if (i < N / 2) {
            assert_int_equal(f->requests, ++requests); /* expired: new */
            assert_int_equal(txn_respond(f->st, 200, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL), 0);
        } else {
            assert_int_equal(f->requests, requests); /* still absorbed */
        }
        clear_sent(f);
    }
    advance(f, 64 * T1);
    assert_int_equal(stats(f).server_live, 0);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_noninvite_udp_timer_j, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_noninvite_trying_and_late_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_noninvite_tcp_zero_j, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_invite_auto_100_and_timer_g_h, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_invite_ack_confirmed_timer_i, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_invite_tcp_no_g_zero_i, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_invite_tcp_timer_h, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_invite_2xx_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_final_sent_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_cancel_matching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_rfc2543_matching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_transport_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_respond_bytes_proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_noninvite_timer_e_f, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_noninvite_provisional_then_final_timer_k, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_noninvite_tcp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_noninvite_tcp_timer_f, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_invite_timer_a_b, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_invite_non2xx_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_invite_2xx_not_absorbed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_invite_tcp_zero_d, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cancel_after_final_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_transport_error_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_conn_lost_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_refusals_and_detach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_branch_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layer_free_with_live_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_transactions_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_completed_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_completed_extension_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_stateless_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_reject_invite_stateless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_reject_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_transaction_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_completed_send_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_completed_many_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_completed_index_churn, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
