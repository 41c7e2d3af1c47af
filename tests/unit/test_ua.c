/* test_ua.c — the UA layer (src/ua): request printing, destinations, the
 * UAC helper's digest retry and failures, UAC dialogs (route set reversed,
 * loose and strict routing, ACK for 2xx and its re-sending), UAS dialogs (2xx
 * retransmission until the ACK, BYE received, no ACK -> BYE) on a fake clock.
 *
 * The UA gets what the daemon gives it — [sip] settings, the local host and
 * ports, a timer service on a fake clock and a real transaction layer —
 * and no transport: the transaction layer's send op and the UA's sender
 * record every message; received messages are parsed from text and fed
 * through txn_layer_receive() as the transport would. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/digest.h"
#include "app/config.h"
#include "base/log.h"
#include "sip/local.h"
#include "txn/txn.h"
#include "ua/ua.h"

#define MAX_SENT 64

struct sent {
    struct transport_dest dest;
    char *data;
    size_t len;
};

struct h {
    struct config cfg;
    struct sip_local local;
    struct timer_service timers;
    struct txn_layer *txn;
    struct ua *ua;
    uint64_t now;
    struct sent sent[MAX_SENT];
    int nsent;

    /* client results */
    int finals, provisionals, last_status;
    bool last_had_resp;
    struct ua_dialog *dlg;

    /* server side */
    int answer_invite;           /* on_request: answer INVITEs with ua_answer_invite */
    struct ua_dialog *uas;
    int acks, ends, in_dialog_requests, ua_took;
    enum ua_dialog_end end_why;

    char buf[8192];
    _Alignas(16) char arena_mem[32768];
    arena_t arena;
    struct sip_msg msg;
    struct transport_rx rx;

    char pbuf[8192];
    _Alignas(16) char parena_mem[32768];
    arena_t parena;
    struct sip_msg pmsg;
};

static struct h *H;

static int record(struct h *h, struct transport_dest *dest, const void *data, size_t len)
{
    assert_true(h->nsent < MAX_SENT);
    struct sent *s = &h->sent[h->nsent++];
    s->dest = *dest;
    s->data = malloc(len + 1);
    memcpy(s->data, data, len);
    s->data[len] = '\0';
    s->len = len;
    return 0;
}

static int op_send(void *u, struct transport_dest *dest, const void *data, size_t len)
{
    return record(u, dest, data, len);
}
static int ua_sender(void *u, struct transport_dest *dest, const void *data, size_t len)
{
    return record(u, dest, data, len);
}
static uint64_t op_now(void *u) { return ((struct h *)u)->now; }

static void dlg_on_ack(void *arg, struct ua_dialog *d, const struct transport_rx *rx)
{
    (void)d, (void)rx;
    ((struct h *)arg)->acks++;
}
static void dlg_on_end(void *arg, struct ua_dialog *d, enum ua_dialog_end why)
{
    struct h *h = arg;
    if (d == h->uas) h->uas = NULL;
    if (d == h->dlg) h->dlg = NULL;
    h->ends++;
    h->end_why = why;
}
static void dlg_on_request(void *arg, struct ua_dialog *d, struct txn *st, const struct transport_rx *rx)
{
    (void)d, (void)rx;
    ((struct h *)arg)->in_dialog_requests++;
    txn_respond(st, 200, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
}
static const struct ua_dialog_cb dlg_cb = {.on_request = dlg_on_request, .on_ack = dlg_on_ack, .on_end = dlg_on_end};

static void op_on_request(void *u, struct txn *st, const struct transport_rx *rx)
{
    struct h *h = u;
    if (ua_on_request(h->ua, st, rx)) {
        h->ua_took++;
        return;
    }
    if (rx->msg->method == SIP_INVITE && h->answer_invite) {
        h->uas = ua_answer_invite(h->ua, st, 200, STR_NULL, NULL, 0, STR_LIT("application/sdp"),
                                  STR_LIT("v=0\r\n"), &dlg_cb, h);
        assert_non_null(h->uas);
        return;
    }
    txn_respond(st, 481, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
}
static void op_on_ack(void *u, const struct transport_rx *rx) { ua_on_ack(((struct h *)u)->ua, rx); }
static void op_on_stray(void *u, const struct transport_rx *rx) { ua_on_response(((struct h *)u)->ua, rx); }

static int setup(void **state)
{
    struct h *h = calloc(1, sizeof(*h));
    config_init(&h->cfg);
    h->cfg.sip.t1_ms = 500;
    h->cfg.sip.t2_ms = 4000;
    snprintf(h->local.user_agent, sizeof(h->local.user_agent), "cascade-test");
    snprintf(h->local.host, sizeof(h->local.host), "192.0.2.1");
    h->local.port[SIP_TRANSPORT_UDP] = 5060;
    h->local.port[SIP_TRANSPORT_TCP] = 5061;
    timer_service_init(&h->timers);
    h->timers.clock = op_now;
    h->timers.clock_arg = h;
    struct txn_config xc = {.t1_ms = 500, .t2_ms = 4000, .t4_ms = 5000};
    struct txn_layer_ops ops = {.user = h, .send = op_send, .on_request = op_on_request, .on_ack = op_on_ack,
                                .on_stray_response = op_on_stray, .now_ms = op_now};
    h->txn = txn_layer_new(&h->timers, &xc, &ops);
    assert_non_null(h->txn);
    h->ua = ua_new(&h->cfg.sip, &h->local, &h->timers, h->txn, NULL, 0x5eed);
    assert_non_null(h->ua);
    ua_set_sender(h->ua, ua_sender, h);
    H = h;
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct h *h = *state;
    ua_free(h->ua);
    txn_layer_free(h->txn);
    timer_service_free(&h->timers);
    for (int i = 0; i < h->nsent; i++) free(h->sent[i].data);
    free(h);
    return 0;
}

static void advance(struct h *h, uint64_t ms)
{
    uint64_t end = h->now + ms;
    for (;;) {
        uint64_t next = timer_next_deadline(&h->timers);
        if (next > end) break;
        if (next > h->now) h->now = next;
        timer_run(&h->timers, h->now);
    }
    h->now = end;
    timer_run(&h->timers, h->now);
}

/* Feeds text (LF line ends turned into CRLF) as received over UDP. */
static void feed(struct h *h, const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p && n + 2 < sizeof(h->buf); p++) {
        if (*p == '\n' && (p == text || p[-1] != '\r')) h->buf[n++] = '\r';
        h->buf[n++] = *p;
    }
    arena_init(&h->arena, h->arena_mem, sizeof(h->arena_mem));
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    struct sip_parse_error err;
    assert_int_equal(sip_parse(h->buf, n, &h->arena, &lim, &h->msg, &err), 0);
    memset(&h->rx, 0, sizeof(h->rx));
    h->rx.msg = &h->msg;
    h->rx.proto = SIP_TRANSPORT_UDP;
    transport_addr_parse("192.0.2.9", 9, 5080, &h->rx.src);
    transport_addr_parse("192.0.2.1", 9, 5060, &h->rx.local);
    snprintf(h->rx.src_text, sizeof(h->rx.src_text), "192.0.2.9:5080");
    assert_int_equal(txn_layer_receive(h->txn, &h->rx), 0);
}

/* Parses sent message i into h->pmsg. */
static struct sip_msg *sent_msg(struct h *h, int i)
{
    assert_true(i >= 0 && i < h->nsent);
    memcpy(h->pbuf, h->sent[i].data, h->sent[i].len);
    arena_init(&h->parena, h->parena_mem, sizeof(h->parena_mem));
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    struct sip_parse_error err;
    assert_int_equal(sip_parse(h->pbuf, h->sent[i].len, &h->parena, &lim, &h->pmsg, &err), 0);
    return &h->pmsg;
}

static str_t hdr(const struct sip_msg *m, enum sip_hdr t)
{
    const struct sip_header *x = sip_msg_header(m, t);
    return x ? x->value : STR_NULL;
}

static void on_final(void *arg, struct ua_uac *u, int status, const struct sip_msg *resp,
                     const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)u, (void)rx;
    struct h *h = arg;
    h->finals++;
    h->last_status = status;
    h->last_had_resp = resp != NULL;
    if (dlg) {
        h->dlg = dlg;
        ua_dialog_set_cb(dlg, &dlg_cb, h);
    }
}
static void on_prov(void *arg, struct ua_uac *u, const struct sip_msg *resp, const struct transport_rx *rx)
{
    (void)u, (void)resp, (void)rx;
    ((struct h *)arg)->provisionals++;
}
static const struct ua_uac_cb uac_cb = {.on_provisional = on_prov, .on_final = on_final};

/* ---- printing and destinations ---- */

static void test_print_request(void **state)
{
    (void)state;
    str_t routes[] = {STR_LIT("<sip:p1.example;lr>"), STR_LIT("<sip:192.0.2.5;lr>")};
    str_t extra[] = {STR_LIT("Subject: 34020000001310000001:0100000001,34020000002000000001:0"),
                     STR_LIT("Expires: 3600")};
    struct ua_request r = {
        .method = SIP_MESSAGE,
        .ruri = STR_LIT("sip:34020000001320000001@192.0.2.9:5080"),
        .from = STR_LIT("sip:34020000002000000001@3402000000"),
        .from_tag = STR_LIT("abc"),
        .to = STR_LIT("\"Cam\" <sip:34020000001320000001@3402000000>"),
        .call_id = STR_LIT("cid-1"),
        .cseq = 7,
        .contact = STR_LIT("<sip:34020000002000000001@192.0.2.1:5060>"),
        .routes = routes,
        .route_count = 2,
        .headers = extra,
        .header_count = 2,
        .content_type = STR_LIT("Application/MANSCDP+xml"),
        .body = STR_LIT("<?xml version=\"1.0\"?>\r\n<Query/>"),
    };
    struct ua_via via = {.proto = SIP_TRANSPORT_UDP, .host = STR_LIT("192.0.2.1"), .port = 5060,
                         .branch = STR_LIT("z9hG4bKtest1")};
    sbuf_t out;
    sbuf_init(&out);
    assert_int_equal(ua_print_request(&r, &via, STR_LIT("cascade"), &out), 0);
    _Alignas(16) char mem[16384];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    struct sip_parse_error err;
    struct sip_msg m;
    assert_int_equal(sip_parse(out.data, out.len, &a, &lim, &m, &err), 0);
    assert_int_equal(m.method, SIP_MESSAGE);
    assert_true(str_eq_cstr(m.ruri_raw, "sip:34020000001320000001@192.0.2.9:5080"));
    assert_true(str_eq_cstr(m.via.branch, "z9hG4bKtest1"));
    assert_true(m.via.has_rport);
    assert_true(str_eq_cstr(m.via.host, "192.0.2.1"));
    assert_int_equal(m.via.port, 5060);
    assert_int_equal(m.max_forwards, 70);
    assert_true(str_eq_cstr(m.from.tag, "abc"));
    assert_true(str_eq_cstr(m.from.uri_raw, "sip:34020000002000000001@3402000000"));
    assert_int_equal(m.to.tag.len, 0);
    assert_true(str_eq_cstr(m.to.display, "Cam"));
    assert_true(str_eq_cstr(m.call_id, "cid-1"));
    assert_int_equal(m.cseq.number, 7);
    assert_int_equal(m.cseq.method, SIP_MESSAGE);
    const struct sip_header *rt = sip_msg_header(&m, SIP_HDR_ROUTE);
    assert_non_null(rt);
    assert_true(str_eq_cstr(rt->value, "<sip:p1.example;lr>"));
    rt = sip_msg_header_next(&m, rt);
    assert_true(str_eq_cstr(rt->value, "<sip:192.0.2.5;lr>"));
    assert_true(str_eq_cstr(hdr(&m, SIP_HDR_SUBJECT), "34020000001310000001:0100000001,34020000002000000001:0"));
    assert_int_equal(m.expires, 3600);
    assert_true(str_eq_cstr(hdr(&m, SIP_HDR_USER_AGENT), "cascade"));
    assert_true(str_eq_cstr(m.content_type, "Application/MANSCDP+xml"));
    assert_int_equal(m.content_length, (int64_t)r.body.len);
    assert_true(str_eq(m.body, r.body));

    /* Header injection and missing fields are refused. */
    struct ua_request bad = r;
    str_t evil[] = {STR_LIT("X-A: 1\r\nX-B: 2")};
    bad.headers = evil;
    bad.header_count = 1;
    sbuf_clear(&out);
    assert_int_equal(ua_print_request(&bad, &via, STR_NULL, &out), -EINVAL);
    bad = r;
    bad.call_id = STR_LIT("a\r\nb");
    assert_int_equal(ua_print_request(&bad, &via, STR_NULL, &out), -EINVAL);
    bad = r;
    bad.ruri = STR_LIT("sip:a b");
    assert_int_equal(ua_print_request(&bad, &via, STR_NULL, &out), -EINVAL);
    bad = r;
    bad.content_type = STR_NULL;
    assert_int_equal(ua_print_request(&bad, &via, STR_NULL, &out), -EINVAL);
    bad = r;
    bad.from_tag = STR_NULL;
    assert_int_equal(ua_print_request(&bad, &via, STR_NULL, &out), -EINVAL);
    /* An IPv6 Via host gets brackets. */
    struct ua_via v6 = {.proto = SIP_TRANSPORT_TCP, .host = STR_LIT("2001:db8::1"), .port = 5061,
                        .branch = STR_LIT("z9hG4bKv6")};
    sbuf_clear(&out);
    assert_int_equal(ua_print_request(&r, &v6, STR_NULL, &out), 0);
    assert_non_null(strstr(out.data, "Via: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKv6;rport\r\n"));
    sbuf_free(&out);
}

/* A NOTIFY made one of a subscription's dialog: its ids, the CSeq, Event
 * and the whole seconds left; the Request-URI stays when the subscriber
 * gave no contact, and a subscription past its end says expires=0. */
static void test_subscription_notify(void **state)
{
    (void)state;
    struct ua_request r = {.method = SIP_NOTIFY, .ruri = STR_LIT("sip:up@192.0.2.9:5080"),
                           .from = STR_LIT("sip:34020000001320000001@3402000000"),
                           .to = STR_LIT("sip:34020000002000000001@3402000000")};
    struct ua_notify_lines nl;
    ua_subscription_notify(&r, &nl, "Catalog", "cid-9", "ours", "theirs", "sip:watcher@192.0.2.7:5070", 5,
                           1000000 + 3599500, 1000000);
    assert_true(str_eq_cstr(r.ruri, "sip:watcher@192.0.2.7:5070"));
    assert_true(str_eq_cstr(r.call_id, "cid-9"));
    assert_true(str_eq_cstr(r.from_tag, "ours"));
    assert_true(str_eq_cstr(r.to_tag, "theirs"));
    assert_int_equal(r.cseq, 5);
    assert_int_equal(r.header_count, 2);
    assert_ptr_equal(r.headers, nl.lines);
    assert_true(str_eq_cstr(r.headers[0], "Event: Catalog"));
    assert_true(str_eq_cstr(r.headers[1], "Subscription-State: active;expires=3599"));

    struct ua_request past = {.method = SIP_NOTIFY, .ruri = STR_LIT("sip:up@192.0.2.9:5080")};
    ua_subscription_notify(&past, &nl, "presence", "cid-10", "o", "t", "", 6, 1000, 2000);
    assert_true(str_eq_cstr(past.ruri, "sip:up@192.0.2.9:5080"));
    assert_true(str_eq_cstr(past.headers[0], "Event: presence"));
    assert_true(str_eq_cstr(past.headers[1], "Subscription-State: active;expires=0"));
}

static void test_dest(void **state)
{
    (void)state;
    struct transport_dest d;
    assert_int_equal(ua_dest_from_uri(STR_LIT("sip:34020000001320000001@192.0.2.9"), &d), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_UDP);
    assert_int_equal(transport_addr_port(&d.addr), 5060);
    assert_int_equal(ua_dest_from_uri(STR_LIT("sip:u@192.0.2.9:5090;transport=TCP"), &d), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_TCP);
    assert_int_equal(transport_addr_port(&d.addr), 5090);
    assert_int_equal(ua_dest_from_uri(STR_LIT("sip:u@example.com;maddr=192.0.2.7"), &d), 0);
    char text[64];
    transport_addr_text(&d.addr, text, sizeof(text));
    assert_string_equal(text, "192.0.2.7:5060");
    assert_int_equal(ua_dest_from_uri(STR_LIT("sip:u@[2001:db8::2]:5070"), &d), 0);
    transport_addr_text(&d.addr, text, sizeof(text));
    assert_string_equal(text, "[2001:db8::2]:5070");
    assert_int_equal(ua_dest_from_uri(STR_LIT("sip:u@example.com"), &d), -ENOENT);
    /* sips: TLS on 5061 (RFC 5630 §3, RFC 3261 §19.1.2), never UDP */
    assert_int_equal(ua_dest_from_uri(STR_LIT("sips:u@192.0.2.9"), &d), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_TLS);
    assert_int_equal(transport_addr_port(&d.addr), 5061);
    assert_int_equal(ua_dest_from_uri(STR_LIT("sips:u@192.0.2.9;transport=udp"), &d), -ENOTSUP);
    assert_int_equal(ua_dest_from_uri(STR_LIT("sip:u@192.0.2.9:8443;transport=wss"), &d), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_WSS);
    assert_int_equal(ua_dest_from_uri(STR_LIT("sip:u@192.0.2.9;transport=tls"), &d), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_TLS);
    assert_int_equal(ua_dest_from_uri(STR_LIT("sip:u@192.0.2.9;transport=sctp"), &d), -ENOTSUP);
    assert_int_equal(ua_dest_from_uri(STR_LIT("not a uri"), &d), -EINVAL);
    assert_int_equal(ua_dest_from_host("192.0.2.3", 0, SIP_TRANSPORT_TCP, 42, &d), 0);
    assert_int_equal(d.conn_id, 42);
    assert_int_equal(transport_addr_port(&d.addr), 5060);
    assert_int_equal(ua_dest_from_host("cam.local", 5060, SIP_TRANSPORT_UDP, 0, &d), -ENOENT);
}

/* ---- UAC helper ---- */

static struct ua_request register_req(void)
{
    struct ua_request r = {
        .method = SIP_REGISTER,
        .ruri = STR_LIT("sip:34020000002000000001@3402000000"),
        .from = STR_LIT("<sip:34020000001320000001@3402000000>"),
        .to = STR_LIT("<sip:34020000001320000001@3402000000>"),
        .auto_contact = true,
    };
    static str_t exp[] = {STR_LIT("Expires: 3600")};
    r.headers = exp;
    r.header_count = 1;
    return r;
}

/* Answers sent message i with status and extra lines. */
static void respond_to(struct h *h, int i, int status, const char *to_tag, const char *extra)
{
    struct sip_msg *req = sent_msg(h, i);
    sbuf_t out;
    sbuf_init(&out);
    str_t lines[4];
    size_t n = 0;
    char copy[4096];
    if (extra) {
        snprintf(copy, sizeof(copy), "%s", extra);
        for (char *save, *tok = strtok_r(copy, "\n", &save); tok && n < 4; tok = strtok_r(NULL, "\n", &save))
            lines[n++] = str_from_cstr(tok);
    }
    assert_int_equal(sip_build_response(req, status, NULL, str_from_cstr(to_tag), lines, n, STR_NULL, STR_NULL, &out),
                     0);
    char text[8192];
    snprintf(text, sizeof(text), "%.*s", (int)out.len, out.data);
    sbuf_free(&out);
    feed(h, text);
}

static void test_auth_retry(void **state)
{
    struct h *h = *state;
    static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";
    struct auth_server_config ac = {.secret = secret, .secret_len = 32};
    struct auth_server *srv = auth_server_new(&ac);
    assert_non_null(srv);

    struct ua_request r = register_req();
    struct transport_dest dest;
    assert_int_equal(ua_dest_from_host("192.0.2.9", 5080, SIP_TRANSPORT_UDP, 0, &dest), 0);
    struct ua_credentials cred = {.user = STR_LIT("34020000001320000001"), .password = STR_LIT("12345678")};
    struct ua_uac *u = ua_request_send(h->ua, &r, &dest, &cred, &uac_cb, h);
    assert_non_null(u);
    assert_int_equal(h->nsent, 1);
    struct sip_msg *m = sent_msg(h, 0);
    assert_int_equal(m->cseq.number, 1);
    assert_int_equal(m->from.tag.len, 16);
    assert_int_equal(m->call_id.len, 32);
    assert_true(str_eq_cstr(hdr(m, SIP_HDR_CONTACT), "<sip:34020000001320000001@192.0.2.1:5060>"));
    char call_id[64], from_tag[32];
    str_copy(call_id, sizeof(call_id), m->call_id);
    str_copy(from_tag, sizeof(from_tag), m->from.tag);

    /* 401 -> answered with CSeq 2, same Call-ID and From tag. */
    sbuf_t ch;
    sbuf_init(&ch);
    sbuf_append_cstr(&ch, "WWW-Authenticate: ");
    assert_int_equal(auth_challenge(srv, STR_LIT("3402000000"), AUTH_ALG_MD5, false, false, 1000, &ch), 0);
    respond_to(h, 0, 401, "srv1", ch.data);
    assert_int_equal(h->finals, 0);
    assert_int_equal(h->nsent, 2);
    m = sent_msg(h, 1);
    assert_int_equal(m->cseq.number, 2);
    assert_true(str_eq_cstr(m->call_id, call_id));
    assert_true(str_eq_cstr(m->from.tag, from_tag));
    const struct sip_header *az = sip_msg_header(m, SIP_HDR_AUTHORIZATION);
    assert_non_null(az);
    struct auth_credentials cr;
    assert_int_equal(auth_parse_credentials(az->value, &cr), 0);
    char ha1[65];
    assert_int_equal(auth_ha1(AUTH_ALG_MD5, STR_LIT("34020000001320000001"), STR_LIT("3402000000"),
                              STR_LIT("12345678"), ha1),
                     0);
    assert_int_equal(auth_verify(srv, &cr, STR_LIT("REGISTER"), str_from_cstr(ha1), 1000), AUTH_OK);
    assert_true(str_eq(cr.uri, m->ruri_raw));

    /* A second, non-stale challenge is final. */
    respond_to(h, 1, 401, "srv2", ch.data);
    assert_int_equal(h->finals, 1);
    assert_int_equal(h->last_status, 401);
    assert_true(h->last_had_resp);
    assert_int_equal(h->nsent, 2);

    /* Success path with an HA1 instead of the password. */
    struct ua_credentials cred2 = {.user = STR_LIT("34020000001320000001"), .ha1 = str_from_cstr(ha1)};
    u = ua_request_send(h->ua, &r, &dest, &cred2, &uac_cb, h);
    assert_non_null(u);
    respond_to(h, 2, 401, "srv3", ch.data);
    assert_int_equal(h->nsent, 4);
    m = sent_msg(h, 3);
    az = sip_msg_header(m, SIP_HDR_AUTHORIZATION);
    assert_int_equal(auth_parse_credentials(az->value, &cr), 0);
    assert_int_equal(auth_verify(srv, &cr, STR_LIT("REGISTER"), str_from_cstr(ha1), 1000), AUTH_OK);
    respond_to(h, 3, 200, "srv3", "Date: 2026-11-21T22:44:44.123");
    assert_int_equal(h->finals, 2);
    assert_int_equal(h->last_status, 200);

    /* Without credentials a 401 is the answer. */
    u = ua_request_send(h->ua, &r, &dest, NULL, &uac_cb, h);
    respond_to(h, 4, 401, "srv4", ch.data);
    assert_int_equal(h->finals, 3);
    assert_int_equal(h->last_status, 401);
    struct ua_stats st;
    ua_get_stats(h->ua, &st);
    assert_int_equal(st.auth_retries, 2);
    assert_int_equal(st.requests, 0);
    sbuf_free(&ch);
    auth_server_free(srv);
}

static void test_timeout_and_detach(void **state)
{
    struct h *h = *state;
    struct ua_request r = register_req();
    struct transport_dest dest;
    ua_dest_from_host("192.0.2.9", 5080, SIP_TRANSPORT_UDP, 0, &dest);
    assert_non_null(ua_request_send(h->ua, &r, &dest, NULL, &uac_cb, h));
    advance(h, 64 * 500 + 1);
    assert_int_equal(h->finals, 1);
    assert_int_equal(h->last_status, 408);
    assert_false(h->last_had_resp);

    /* A detached handle gets no callback. */
    int before = h->nsent;
    struct ua_uac *u = ua_request_send(h->ua, &r, &dest, NULL, &uac_cb, h);
    ua_request_detach(u);
    respond_to(h, before, 200, "x", NULL);
    advance(h, 64 * 500 + 1);
    assert_int_equal(h->finals, 1);
    struct ua_stats st;
    ua_get_stats(h->ua, &st);
    assert_int_equal(st.requests, 0);

    /* Bad input builds nothing. */
    r.ruri = STR_LIT("sip:bad\r\nX: y");
    assert_null(ua_request_send(h->ua, &r, &dest, NULL, &uac_cb, h));
}

/* ---- what the UA is given ---- */

/* The seed given to ua_new() fixes the tag and Call-ID sequence, so a test
 * can predict them; another seed gives others. Tags only need to be unique
 * (RFC 3261 §19.3): 16 hex digits, a Call-ID 32 (§8.1.1.4). */
static void test_seed(void **state)
{
    struct h *h = *state;
    struct ua *same = ua_new(&h->cfg.sip, &h->local, &h->timers, h->txn, NULL, 0x5eed);
    struct ua *other = ua_new(&h->cfg.sip, &h->local, &h->timers, h->txn, NULL, 0x5eee);
    assert_non_null(same);
    assert_non_null(other);
    char a[UA_TAG_SIZE], b[UA_TAG_SIZE], c[UA_TAG_SIZE];
    ua_new_tag(h->ua, a);
    ua_new_tag(same, b);
    ua_new_tag(other, c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 16);
    assert_int_equal(strspn(a, "0123456789abcdef"), 16);
    char ca[UA_CALL_ID_SIZE], cb[UA_CALL_ID_SIZE];
    ua_new_call_id(h->ua, ca);
    ua_new_call_id(same, cb);
    assert_string_equal(ca, cb);
    assert_int_equal(strspn(ca, "0123456789abcdef"), 32);
    ua_free(same);
    ua_free(other);
}

/* The sent-by of Via (RFC 3261 §18.1.1), the automatic Contact and the
 * User-Agent come from the sip_local the UA was given, read at each send:
 * the app fills it once its listeners are bound. */
static void test_local_read_at_send(void **state)
{
    struct h *h = *state;
    struct ua_request r = register_req();
    struct transport_dest dest;
    ua_dest_from_host("192.0.2.9", 5080, SIP_TRANSPORT_UDP, 0, &dest);
    assert_non_null(ua_request_send(h->ua, &r, &dest, NULL, NULL, NULL));
    assert_int_equal(h->nsent, 1);
    struct sip_msg *m = sent_msg(h, 0);
    assert_true(str_eq_cstr(m->via.host, "192.0.2.1"));
    assert_int_equal(m->via.port, 5060);
    assert_true(str_eq_cstr(hdr(m, SIP_HDR_CONTACT), "<sip:34020000001320000001@192.0.2.1:5060>"));
    assert_true(str_eq_cstr(hdr(m, SIP_HDR_USER_AGENT), "cascade-test"));

    snprintf(h->local.host, sizeof(h->local.host), "198.51.100.7");
    h->local.port[SIP_TRANSPORT_UDP] = 5070;
    snprintf(h->local.user_agent, sizeof(h->local.user_agent), "cascade-2");
    assert_non_null(ua_request_send(h->ua, &r, &dest, NULL, NULL, NULL));
    assert_int_equal(h->nsent, 2);
    m = sent_msg(h, 1);
    assert_true(str_eq_cstr(m->via.host, "198.51.100.7"));
    assert_int_equal(m->via.port, 5070);
    assert_true(str_eq_cstr(hdr(m, SIP_HDR_CONTACT), "<sip:34020000001320000001@198.51.100.7:5070>"));
    assert_true(str_eq_cstr(hdr(m, SIP_HDR_USER_AGENT), "cascade-2"));
}

/* RFC 3261 §25.1: listening on ::1, the UA's Via sent-by and automatic
 * Contact carry the brackets; over TLS they name TLS and its port. */
static void test_ipv6_local_host_bracketed(void **state)
{
    struct h *h = *state;
    snprintf(h->local.host, sizeof(h->local.host), "::1");
    h->local.port[SIP_TRANSPORT_TLS] = 5061;
    struct ua_request r = register_req();
    struct transport_dest dest;
    assert_int_equal(ua_dest_from_host("2001:db8::9", 5081, SIP_TRANSPORT_TLS, 0, &dest), 0);
    assert_non_null(ua_request_send(h->ua, &r, &dest, NULL, NULL, NULL));
    struct sip_msg *m = sent_msg(h, h->nsent - 1);
    assert_true(str_eq_cstr(m->via.host, "[::1]"));
    assert_true(str_eq_cstr(m->via.transport, "TLS"));
    assert_int_equal(m->via.port, 5061);
    assert_true(str_eq_cstr(hdr(m, SIP_HDR_CONTACT), "<sip:34020000001320000001@[::1]:5061;transport=tls>"));
}

/* ---- UAC dialogs ---- */

static struct ua_uac *send_invite(struct h *h)
{
    struct ua_request r = {
        .method = SIP_INVITE,
        .ruri = STR_LIT("sip:34020000001310000001@192.0.2.9:5080"),
        .from = STR_LIT("<sip:34020000002000000001@3402000000>"),
        .to = STR_LIT("<sip:34020000001310000001@3402000000>"),
        .auto_contact = true,
        .content_type = STR_LIT("application/sdp"),
        .body = STR_LIT("v=0\r\n"),
    };
    struct transport_dest dest;
    ua_dest_from_host("192.0.2.9", 5080, SIP_TRANSPORT_UDP, 0, &dest);
    return ua_request_send(h->ua, &r, &dest, NULL, &uac_cb, h);
}

static void test_uac_dialog(void **state)
{
    struct h *h = *state;
    assert_non_null(send_invite(h));
    respond_to(h, 0, 180, "dev1", NULL);
    assert_int_equal(h->provisionals, 1);
    respond_to(h, 0, 200, "dev1",
               "Record-Route: <sip:192.0.2.20;lr>, <sip:192.0.2.21;lr>\nRecord-Route: <sip:192.0.2.22;lr>\n"
               "Contact: <sip:34020000001310000001@192.0.2.30:5090>");
    assert_int_equal(h->finals, 1);
    assert_int_equal(h->last_status, 200);
    assert_non_null(h->dlg);
    struct ua_dialog *d = h->dlg;
    assert_true(ua_dialog_is_uac(d));
    assert_true(str_eq_cstr(ua_dialog_remote_tag(d), "dev1"));
    assert_true(str_eq_cstr(ua_dialog_remote_target(d), "sip:34020000001310000001@192.0.2.30:5090"));
    /* RFC 3261 §12.1.2: the route set is the Record-Route reversed. */
    assert_int_equal(ua_dialog_route_count(d), 3);
    assert_true(str_eq_cstr(ua_dialog_route(d, 0), "<sip:192.0.2.22;lr>"));
    assert_true(str_eq_cstr(ua_dialog_route(d, 1), "<sip:192.0.2.21;lr>"));
    assert_true(str_eq_cstr(ua_dialog_route(d, 2), "<sip:192.0.2.20;lr>"));

    /* The ACK: sent by the UA, loose routing (R-URI = remote target), to the first route. */
    assert_int_equal(h->nsent, 2);
    struct sip_msg *ack = sent_msg(h, 1);
    assert_int_equal(ack->method, SIP_ACK);
    assert_int_equal(ack->cseq.number, 1);
    assert_int_equal(ack->cseq.method, SIP_ACK);
    assert_true(str_eq_cstr(ack->ruri_raw, "sip:34020000001310000001@192.0.2.30:5090"));
    assert_true(str_eq_cstr(ack->to.tag, "dev1"));
    const struct sip_header *rt = sip_msg_header(ack, SIP_HDR_ROUTE);
    assert_true(str_eq_cstr(rt->value, "<sip:192.0.2.22;lr>"));
    char text[64];
    transport_addr_text(&h->sent[1].dest.addr, text, sizeof(text));
    assert_string_equal(text, "192.0.2.22:5060");
    char ack_branch[64];
    str_copy(ack_branch, sizeof(ack_branch), ack->via.branch);
    struct sip_msg *inv = sent_msg(h, 0);
    assert_false(str_eq_cstr(inv->via.branch, ack_branch));

    /* A retransmitted 2xx gets the same ACK again. */
    respond_to(h, 0, 200, "dev1",
               "Record-Route: <sip:192.0.2.20;lr>, <sip:192.0.2.21;lr>\nRecord-Route: <sip:192.0.2.22;lr>\n"
               "Contact: <sip:34020000001310000001@192.0.2.30:5090>");
    assert_int_equal(h->nsent, 3);
    assert_string_equal(h->sent[2].data, h->sent[1].data);

    /* In-dialog INFO: CSeq 2, route set, tags. */
    struct ua_uac *u = ua_dialog_request(d, SIP_INFO, NULL, 0, STR_LIT("Application/MANSRTSP"),
                                         STR_LIT("PAUSE RTSP/1.0\r\n"), &uac_cb, h);
    assert_non_null(u);
    struct sip_msg *info = sent_msg(h, 3);
    assert_int_equal(info->method, SIP_INFO);
    assert_int_equal(info->cseq.number, 2);
    assert_true(str_eq_cstr(info->to.tag, "dev1"));
    assert_int_equal(sip_msg_header(info, SIP_HDR_ROUTE) != NULL, 1);
    respond_to(h, 3, 200, NULL, NULL);
    assert_int_equal(h->finals, 2);

    /* Incoming request in the dialog: matched by Call-ID + our tag. */
    struct sip_msg *i0 = sent_msg(h, 0);
    char cid[64], ltag[32];
    str_copy(cid, sizeof(cid), i0->call_id);
    str_copy(ltag, sizeof(ltag), i0->from.tag);
    char req[2048];
    snprintf(req, sizeof(req),
             "MESSAGE sip:34020000002000000001@192.0.2.1:5060 SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKmsg1\nMax-Forwards: 70\n"
             "From: <sip:34020000001310000001@3402000000>;tag=dev1\n"
             "To: <sip:34020000002000000001@3402000000>;tag=%s\nCall-ID: %s\nCSeq: 5 MESSAGE\nContent-Length: 0\n\n",
             ltag, cid);
    feed(h, req);
    assert_int_equal(h->ua_took, 1);
    assert_int_equal(h->in_dialog_requests, 1);
    /* A lower CSeq afterwards: 500 (§12.2.2). */
    snprintf(req, sizeof(req),
             "MESSAGE sip:34020000002000000001@192.0.2.1:5060 SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKmsg2\nMax-Forwards: 70\n"
             "From: <sip:34020000001310000001@3402000000>;tag=dev1\n"
             "To: <sip:34020000002000000001@3402000000>;tag=%s\nCall-ID: %s\nCSeq: 4 MESSAGE\nContent-Length: 0\n\n",
             ltag, cid);
    feed(h, req);
    assert_int_equal(h->ua_took, 2);
    assert_int_equal(h->in_dialog_requests, 1);
    assert_non_null(strstr(h->sent[h->nsent - 1].data, "SIP/2.0 500 "));
    /* Wrong remote tag: not ours (the core answers 481). */
    snprintf(req, sizeof(req),
             "BYE sip:34020000002000000001@192.0.2.1:5060 SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKbye0\nMax-Forwards: 70\n"
             "From: <sip:34020000001310000001@3402000000>;tag=other\n"
             "To: <sip:34020000002000000001@3402000000>;tag=%s\nCall-ID: %s\nCSeq: 9 BYE\nContent-Length: 0\n\n",
             ltag, cid);
    feed(h, req);
    assert_int_equal(h->ua_took, 2);
    assert_non_null(strstr(h->sent[h->nsent - 1].data, "SIP/2.0 481 "));

    /* Our BYE: CSeq 3, then the dialog is gone. */
    int before = h->nsent;
    assert_int_equal(ua_dialog_bye(d), 0);
    h->dlg = NULL;
    struct sip_msg *bye = sent_msg(h, before);
    assert_int_equal(bye->method, SIP_BYE);
    assert_int_equal(bye->cseq.number, 3);
    struct ua_stats st;
    ua_get_stats(h->ua, &st);
    assert_int_equal(st.dialogs, 0);
    assert_int_equal(st.byes_sent, 1);
    assert_int_equal(h->ends, 0);
}

static void test_strict_route(void **state)
{
    struct h *h = *state;
    assert_non_null(send_invite(h));
    respond_to(h, 0, 200, "dev2",
               "Record-Route: <sip:192.0.2.40;lr>\nRecord-Route: <sip:192.0.2.41>\n"
               "Contact: <sip:cam@192.0.2.30:5090>");
    assert_non_null(h->dlg);
    /* Reversed: the strict router 192.0.2.41 comes first -> it becomes the R-URI. */
    sbuf_t out;
    sbuf_init(&out);
    assert_int_equal(ua_dialog_print_request(h->dlg, SIP_BYE, 0, &out), 0);
    _Alignas(16) char mem[16384];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    struct sip_parse_error err;
    struct sip_msg m;
    assert_int_equal(sip_parse(out.data, out.len, &a, &lim, &m, &err), 0);
    assert_true(str_eq_cstr(m.ruri_raw, "sip:192.0.2.41"));
    const struct sip_header *rt = sip_msg_header(&m, SIP_HDR_ROUTE);
    assert_true(str_eq_cstr(rt->value, "<sip:192.0.2.40;lr>"));
    rt = sip_msg_header_next(&m, rt);
    assert_non_null(rt);
    assert_true(str_eq_cstr(rt->value, "<sip:cam@192.0.2.30:5090>"));
    assert_null(sip_msg_header_next(&m, rt));
    assert_int_equal(m.cseq.number, 2);
    sbuf_free(&out);
    /* Pinning the destination overrides the route set for sending. */
    struct transport_dest pin;
    ua_dest_from_host("192.0.2.99", 5999, SIP_TRANSPORT_UDP, 0, &pin);
    ua_dialog_set_dest(h->dlg, &pin);
    int before = h->nsent;
    ua_dialog_bye(h->dlg);
    h->dlg = NULL;
    char text[64];
    transport_addr_text(&h->sent[before].dest.addr, text, sizeof(text));
    assert_string_equal(text, "192.0.2.99:5999");
}

static void test_cancelled_invite_2xx(void **state)
{
    struct h *h = *state;
    struct ua_uac *u = send_invite(h);
    respond_to(h, 0, 100, NULL, NULL);
    ua_request_cancel(u);
    /* CANCEL goes out after the provisional. */
    assert_int_equal(h->nsent, 2);
    assert_int_equal(sent_msg(h, 1)->method, SIP_CANCEL);
    /* The 2xx crossed the CANCEL: ACK then BYE, no callback (RFC 3261 §15). */
    respond_to(h, 0, 200, "dev3", "Contact: <sip:cam@192.0.2.30:5090>");
    assert_int_equal(h->finals, 0);
    assert_int_equal(h->nsent, 4);
    assert_int_equal(sent_msg(h, 2)->method, SIP_ACK);
    assert_int_equal(sent_msg(h, 3)->method, SIP_BYE);
    struct ua_stats st;
    ua_get_stats(h->ua, &st);
    assert_int_equal(st.dialogs, 0);
    assert_int_equal(st.requests, 1); /* the BYE, running out */
}

/* ---- UAS dialogs ---- */

static const char *invite_text =
    "INVITE sip:34020000001310000001@192.0.2.1:5060 SIP/2.0\n"
    "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKinv1;rport\nMax-Forwards: 70\n"
    "Record-Route: <sip:192.0.2.50;lr>\nRecord-Route: <sip:192.0.2.51;lr>\n"
    "From: <sip:34020000002000000001@3402000000>;tag=up1\n"
    "To: <sip:34020000001310000001@3402000000>\nCall-ID: uas-call-1\nCSeq: 20 INVITE\n"
    "Contact: <sip:34020000002000000001@192.0.2.9:5080>\n"
    "Subject: 34020000001310000001:0100000001,34020000002000000001:0\n"
    "Content-Type: application/sdp\nContent-Length: 5\n\nv=0\r\n";

static void test_uas_dialog(void **state)
{
    struct h *h = *state;
    h->answer_invite = 1;
    feed(h, invite_text);
    assert_non_null(h->uas);
    struct ua_dialog *d = h->uas;
    assert_false(ua_dialog_is_uac(d));
    assert_false(ua_dialog_confirmed(d));
    /* Route set as received (§12.1.1). */
    assert_int_equal(ua_dialog_route_count(d), 2);
    assert_true(str_eq_cstr(ua_dialog_route(d, 0), "<sip:192.0.2.50;lr>"));
    assert_true(str_eq_cstr(ua_dialog_remote_target(d), "sip:34020000002000000001@192.0.2.9:5080"));
    assert_int_equal(h->nsent, 1);
    struct sip_msg *ok = sent_msg(h, 0);
    assert_int_equal(ok->status, 200);
    assert_true(str_eq(ok->to.tag, ua_dialog_local_tag(d)));
    assert_true(str_eq_cstr(hdr(ok, SIP_HDR_CONTACT), "<sip:34020000001310000001@192.0.2.1:5060>"));
    assert_non_null(sip_msg_header(ok, SIP_HDR_RECORD_ROUTE));
    char ltag[32];
    str_copy(ltag, sizeof(ltag), ok->to.tag);

    /* Retransmitted at T1, then 2*T1. */
    advance(h, 500);
    assert_int_equal(h->nsent, 2);
    assert_string_equal(h->sent[1].data, h->sent[0].data);
    advance(h, 1000);
    assert_int_equal(h->nsent, 3);

    /* ACK stops it. */
    char ack[1024];
    snprintf(ack, sizeof(ack),
             "ACK sip:34020000001310000001@192.0.2.1:5060 SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKack1\nMax-Forwards: 70\n"
             "From: <sip:34020000002000000001@3402000000>;tag=up1\n"
             "To: <sip:34020000001310000001@3402000000>;tag=%s\nCall-ID: uas-call-1\nCSeq: 20 ACK\n"
             "Content-Length: 0\n\n",
             ltag);
    feed(h, ack);
    assert_int_equal(h->acks, 1);
    assert_true(ua_dialog_confirmed(d));
    advance(h, 40000);
    assert_int_equal(h->nsent, 3);
    assert_int_equal(h->ends, 0);

    /* Our in-dialog request as UAS: R-URI = their Contact, Route = RR in order. */
    struct ua_uac *u = ua_dialog_request(d, SIP_MESSAGE, NULL, 0, STR_LIT("Application/MANSCDP+xml"),
                                         STR_LIT("<x/>"), NULL, NULL);
    assert_non_null(u);
    struct sip_msg *msg = sent_msg(h, 3);
    assert_true(str_eq_cstr(msg->ruri_raw, "sip:34020000002000000001@192.0.2.9:5080"));
    assert_true(str_eq_cstr(hdr(msg, SIP_HDR_ROUTE), "<sip:192.0.2.50;lr>"));
    assert_true(str_eq_cstr(msg->from.tag, ltag));
    assert_true(str_eq_cstr(msg->to.tag, "up1"));
    assert_int_equal(msg->cseq.number, 1);

    /* BYE from the far side: 200 and on_end. */
    char bye[1024];
    snprintf(bye, sizeof(bye),
             "BYE sip:34020000001310000001@192.0.2.1:5060 SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKbye1\nMax-Forwards: 70\n"
             "From: <sip:34020000002000000001@3402000000>;tag=up1\n"
             "To: <sip:34020000001310000001@3402000000>;tag=%s\nCall-ID: uas-call-1\nCSeq: 21 BYE\n"
             "Content-Length: 0\n\n",
             ltag);
    feed(h, bye);
    assert_int_equal(h->ends, 1);
    assert_int_equal(h->end_why, UA_END_BYE_RECEIVED);
    assert_null(h->uas);
    assert_non_null(strstr(h->sent[h->nsent - 1].data, "SIP/2.0 200 OK"));
    assert_non_null(strstr(h->sent[h->nsent - 1].data, "CSeq: 21 BYE"));
    struct ua_stats st;
    ua_get_stats(h->ua, &st);
    assert_int_equal(st.dialogs, 0);
}

static void test_uas_no_ack(void **state)
{
    struct h *h = *state;
    h->answer_invite = 1;
    feed(h, invite_text);
    assert_non_null(h->uas);
    advance(h, 64 * 500 - 1);
    assert_int_equal(h->ends, 0);
    /* T1, 2T1, 4T1, then T2 (4 s) steps: 0.5 1.5 3.5 7.5 11.5 ... 31.5 s. */
    int retx = h->nsent - 1;
    assert_int_equal(retx, 10);
    advance(h, 2);
    assert_int_equal(h->ends, 1);
    assert_int_equal(h->end_why, UA_END_NO_ACK);
    struct sip_msg *bye = sent_msg(h, h->nsent - 1);
    assert_int_equal(bye->method, SIP_BYE);
    assert_true(str_eq_cstr(bye->ruri_raw, "sip:34020000002000000001@192.0.2.9:5080"));
    struct ua_stats st;
    ua_get_stats(h->ua, &st);
    assert_int_equal(st.no_ack, 1);
    assert_int_equal(st.dialogs, 0);
}

/* Answers invite_text, ACKs it, and returns the local tag in ltag. */
static void uas_confirmed(struct h *h, char *ltag, size_t cap)
{
    h->answer_invite = 1;
    feed(h, invite_text);
    assert_non_null(h->uas);
    str_copy(ltag, cap, sent_msg(h, 0)->to.tag);
    char ack[1024];
    snprintf(ack, sizeof(ack),
             "ACK sip:34020000001310000001@192.0.2.1:5060 SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKack1\nMax-Forwards: 70\n"
             "From: <sip:34020000002000000001@3402000000>;tag=up1\n"
             "To: <sip:34020000001310000001@3402000000>;tag=%s\nCall-ID: uas-call-1\nCSeq: 20 ACK\n"
             "Content-Length: 0\n\n",
             ltag);
    feed(h, ack);
    assert_int_equal(h->acks, 1);
}

/* An in-dialog request from the peer of invite_text's dialog. */
static void feed_in_dialog(struct h *h, const char *method, unsigned cseq, const char *branch, const char *ltag)
{
    char req[1024];
    snprintf(req, sizeof(req),
             "%s sip:34020000001310000001@192.0.2.1:5060 SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=%s\nMax-Forwards: 70\n"
             "From: <sip:34020000002000000001@3402000000>;tag=up1\n"
             "To: <sip:34020000001310000001@3402000000>;tag=%s\nCall-ID: uas-call-1\nCSeq: %u %s\n"
             "Content-Length: 0\n\n",
             method, branch, ltag, cseq, method);
    feed(h, req);
}

/* RFC 3261 §12.2.2: a BYE with the INVITE's CSeq (as some upper platforms
 * send it) is in order: 200 and the dialog ends (issue 9). */
static void test_uas_bye_equal_cseq(void **state)
{
    struct h *h = *state;
    char ltag[32];
    uas_confirmed(h, ltag, sizeof(ltag));
    feed_in_dialog(h, "BYE", 20, "z9hG4bKbye20", ltag);
    assert_non_null(strstr(h->sent[h->nsent - 1].data, "SIP/2.0 200 OK"));
    assert_non_null(strstr(h->sent[h->nsent - 1].data, "CSeq: 20 BYE"));
    assert_int_equal(h->ends, 1);
    assert_int_equal(h->end_why, UA_END_BYE_RECEIVED);
    assert_null(h->uas);
    struct ua_stats st;
    ua_get_stats(h->ua, &st);
    assert_int_equal(st.dialogs, 0);
}

/* Equal CSeq for another method is accepted, for the same method (a new
 * branch) refused; a lower one is refused 500 — but a BYE, even out of
 * order, still ends the dialog (the peer has hung up whatever we answer). */
static void test_uas_cseq_order(void **state)
{
    struct h *h = *state;
    char ltag[32];
    uas_confirmed(h, ltag, sizeof(ltag));
    feed_in_dialog(h, "INFO", 20, "z9hG4bKinfo20", ltag);
    assert_int_equal(h->in_dialog_requests, 1);
    feed_in_dialog(h, "INFO", 20, "z9hG4bKinfo20b", ltag);
    assert_int_equal(h->in_dialog_requests, 1);
    assert_non_null(strstr(h->sent[h->nsent - 1].data, "SIP/2.0 500"));
    feed_in_dialog(h, "INFO", 19, "z9hG4bKinfo19", ltag);
    assert_int_equal(h->in_dialog_requests, 1);
    assert_non_null(strstr(h->sent[h->nsent - 1].data, "SIP/2.0 500"));
    assert_int_equal(h->ends, 0);
    feed_in_dialog(h, "BYE", 5, "z9hG4bKbye5", ltag);
    assert_non_null(strstr(h->sent[h->nsent - 1].data, "SIP/2.0 500"));
    assert_non_null(strstr(h->sent[h->nsent - 1].data, "CSeq: 5 BYE"));
    assert_int_equal(h->ends, 1);
    assert_int_equal(h->end_why, UA_END_BYE_RECEIVED);
    assert_null(h->uas);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_print_request),
        cmocka_unit_test(test_dest),
        cmocka_unit_test(test_subscription_notify),
        cmocka_unit_test_setup_teardown(test_seed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_read_at_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_local_host_bracketed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_and_detach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uac_dialog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strict_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_invite_2xx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uas_dialog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uas_no_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uas_bye_equal_cseq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uas_cseq_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
