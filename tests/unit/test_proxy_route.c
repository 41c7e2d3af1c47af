/* test_proxy_route.c — the proxy's message surgery and addressing helpers
 * (src/proxy/route.c): Route/Via list elements, Max-Forwards, the loop hash
 * in our branches and loop detection (RFC 3261 §16.3 step 4), and URI/Via
 * -> transport destination. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app/worker.h"
#include "proxy/pike.h"
#include "proxy/proxy_int.h"
#include "registrar/registrar.h"

struct parsed {
    char buf[4096];
    char mem[16384];
    arena_t arena;
    struct sip_msg msg;
};

/* Parses text ("\n" line ends turned into CRLF). */
static struct parsed *parse(const char *text)
{
    struct parsed *p = calloc(1, sizeof(*p));
    size_t o = 0;
    for (const char *c = text; *c && o + 2 < sizeof(p->buf); c++) {
        if (*c == '\n') p->buf[o++] = '\r';
        p->buf[o++] = *c;
    }
    arena_init(&p->arena, p->mem, sizeof(p->mem));
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    struct sip_parse_error err;
    if (sip_parse(p->buf, o, &p->arena, &lim, &p->msg, &err) != 0) fail_msg("parse: %s", err.reason);
    return p;
}

static void done(struct parsed *p)
{
    arena_free(&p->arena);
    free(p);
}

#define INVITE_HEAD                                                                   \
    "INVITE sip:bob@example.com SIP/2.0\n"                                            \
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-caller-1;rport=5060;received=192.0.2.10\n"
#define INVITE_TAIL                                                                   \
    "From: <sip:alice@example.com>;tag=aaa\n"                                         \
    "To: <sip:bob@example.com>\n"                                                     \
    "Call-ID: call-1@192.0.2.10\n"                                                    \
    "CSeq: 1 INVITE\n"                                                                \
    "Max-Forwards: 70\n"                                                              \
    "Content-Length: 0\n\n"

static str_t header_value(const struct sip_msg *m, enum sip_hdr t)
{
    const struct sip_header *h = sip_msg_header(m, t);
    return h ? h->value : STR_NULL;
}

static void test_route_entries(void **state)
{
    (void)state;
    struct parsed *p = parse(INVITE_HEAD "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\n"
                                         "Route: <sip:p3.example.com;lr>\n" INVITE_TAIL);
    struct sip_msg m;
    assert_int_equal(sip_edit_clone(&p->msg, &p->arena, &m), 0);
    uint32_t idx;
    str_t e;
    assert_true(sip_edit_first_entry(&m, SIP_HDR_ROUTE, &idx, &e));
    assert_true(str_eq_cstr(e, "<sip:p1.example.com;lr>"));
    assert_true(sip_edit_last_entry(&m, SIP_HDR_ROUTE, &idx, &e));
    assert_true(str_eq_cstr(e, "<sip:p3.example.com;lr>"));

    sip_edit_pop_first_entry(&m, SIP_HDR_ROUTE);
    assert_true(str_eq_cstr(header_value(&m, SIP_HDR_ROUTE), "<sip:p2.example.com;lr>"));
    sip_edit_pop_last_entry(&m, SIP_HDR_ROUTE); /* p3's header goes */
    assert_true(sip_edit_last_entry(&m, SIP_HDR_ROUTE, &idx, &e));
    assert_true(str_eq_cstr(e, "<sip:p2.example.com;lr>"));
    sip_edit_pop_first_entry(&m, SIP_HDR_ROUTE);
    assert_false(sip_edit_first_entry(&m, SIP_HDR_ROUTE, &idx, &e));
    assert_int_equal(m.first[SIP_HDR_ROUTE], -1);
    /* the original model is untouched */
    assert_true(sip_edit_first_entry(&p->msg, SIP_HDR_ROUTE, &idx, &e));
    assert_true(str_eq_cstr(e, "<sip:p1.example.com;lr>"));
    done(p);
}

static void test_via_pop_in_response(void **state)
{
    (void)state;
    struct parsed *p = parse("SIP/2.0 180 Ringing\n"
                             "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKcP0123456789abcdef.00000001, "
                             "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-caller-1\n"
                             "From: <sip:alice@example.com>;tag=aaa\n"
                             "To: <sip:bob@example.com>;tag=bbb\n"
                             "Call-ID: call-1@192.0.2.10\n"
                             "CSeq: 1 INVITE\n"
                             "Content-Length: 0\n\n");
    struct sip_msg m;
    assert_int_equal(sip_edit_clone(&p->msg, &p->arena, &m), 0);
    sip_edit_pop_first_entry(&m, SIP_HDR_VIA);
    assert_true(str_eq_cstr(header_value(&m, SIP_HDR_VIA), "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-caller-1"));
    sbuf_t out;
    sbuf_init(&out);
    assert_int_equal(sip_print(&m, &out), 0);
    assert_non_null(strstr(out.data, "\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-caller-1\r\n"));
    assert_null(strstr(out.data, "z9hG4bKcP"));
    sbuf_free(&out);
    done(p);
}

static void test_max_forwards_and_insert(void **state)
{
    (void)state;
    struct parsed *p = parse(INVITE_HEAD INVITE_TAIL);
    struct sip_msg m;
    assert_int_equal(sip_edit_clone(&p->msg, &p->arena, &m), 0);
    assert_int_equal(sip_edit_set_max_forwards(&m, &p->arena, 69), 0);
    assert_true(str_eq_cstr(header_value(&m, SIP_HDR_MAX_FORWARDS), "69"));
    assert_int_equal(sip_edit_index_after(&m, SIP_HDR_VIA), 1);
    assert_int_equal(sip_edit_insert_before(&m, &p->arena, SIP_HDR_RECORD_ROUTE, sip_edit_index_after(&m, SIP_HDR_VIA),
                                        STR_LIT("Record-Route"), STR_LIT("<sip:10.0.0.1:5060;lr>")),
                     0);
    assert_int_equal(m.first[SIP_HDR_RECORD_ROUTE], 1);
    /* a header value with CR/LF is refused: no header injection */
    assert_int_not_equal(sip_msg_add_header(&m, &p->arena, STR_LIT("Route"), STR_LIT("<sip:x>\r\nEvil: 1")), 0);

    struct parsed *q = parse("OPTIONS sip:bob@example.com SIP/2.0\n"
                             "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-x\n"
                             "From: <sip:a@example.com>;tag=1\nTo: <sip:bob@example.com>\n"
                             "Call-ID: c\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n");
    struct sip_msg n;
    assert_int_equal(sip_edit_clone(&q->msg, &q->arena, &n), 0);
    assert_int_equal(sip_edit_set_max_forwards(&n, &q->arena, 70), 0); /* absent: added */
    assert_true(str_eq_cstr(header_value(&n, SIP_HDR_MAX_FORWARDS), "70"));
    done(q);
    done(p);
}

static void test_branch_round_trip(void **state)
{
    (void)state;
    char b[64];
    proxy_make_branch(b, sizeof(b), 0x0123456789abcdefULL, 7);
    assert_int_equal(strlen(b), PROXY_BRANCH_LEN);
    assert_memory_equal(b, "z9hG4bK", 7); /* RFC 3261 magic cookie */
    uint64_t h = 0;
    assert_true(proxy_branch_loop_hash(str_from_cstr(b), &h));
    assert_true(h == 0x0123456789abcdefULL);
    assert_false(proxy_branch_loop_hash(STR_LIT("z9hG4bK-caller-1"), &h));
    assert_false(proxy_branch_loop_hash(STR_LIT("z9hG4bKcP0123456789abcdeZ.00000001"), &h));
}

static bool ours_10_0_0_1(void *arg, const struct sip_via *v)
{
    (void)arg;
    return str_eq_cstr(v->host, "10.0.0.1") && v->port == 5060;
}

static bool never_ours(void *arg, const struct sip_via *v)
{
    (void)arg;
    (void)v;
    return false;
}

/* The request as it would come back to us after we forwarded it: our Via
 * (branch carrying the loop hash of the first arrival) above the caller's. */
static void looped_copy(const struct sip_msg *first, const char *ruri, char *out, size_t cap)
{
    uint32_t idx;
    str_t top;
    assert_true(sip_edit_first_entry(first, SIP_HDR_VIA, &idx, &top));
    char branch[64];
    proxy_make_branch(branch, sizeof(branch), proxy_loop_hash(first, top), 1);
    snprintf(out, cap,
             "INVITE %s SIP/2.0\n"
             "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=%s\n"
             "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-caller-1;rport=5060;received=192.0.2.10\n" INVITE_TAIL,
             ruri, branch);
}

static void test_loop_detection(void **state)
{
    (void)state;
    struct parsed *first = parse(INVITE_HEAD INVITE_TAIL);
    assert_false(proxy_detect_loop(&first->msg, ours_10_0_0_1, NULL));

    char text[2048];
    looped_copy(&first->msg, "sip:bob@example.com", text, sizeof(text));
    struct parsed *loop = parse(text);
    assert_true(proxy_detect_loop(&loop->msg, ours_10_0_0_1, NULL));

    /* the same path with another Request-URI is a spiral, not a loop */
    looped_copy(&first->msg, "sip:bob@other.example.com", text, sizeof(text));
    struct parsed *spiral = parse(text);
    assert_false(proxy_detect_loop(&spiral->msg, ours_10_0_0_1, NULL));

    /* a Via that is not ours never counts */
    looped_copy(&first->msg, "sip:bob@example.com", text, sizeof(text));
    struct parsed *other = parse(text);
    assert_false(proxy_detect_loop(&other->msg, never_ours, NULL));
    done(other);
    done(spiral);
    done(loop);
    done(first);
}

static void test_uri_dest(void **state)
{
    (void)state;
    struct sip_uri u;
    struct transport_dest d;
    char host[PROXY_HOST_MAX];
    uint16_t port;
    assert_int_equal(sip_uri_parse(STR_LIT("sip:bob@192.0.2.5:5070"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_UDP);
    assert_int_equal(transport_addr_port(&d.addr), 5070);

    assert_int_equal(sip_uri_parse(STR_LIT("sip:bob@192.0.2.5;transport=tcp"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_TCP);
    assert_int_equal(transport_addr_port(&d.addr), 5060);

    assert_int_equal(sip_uri_parse(STR_LIT("sip:bob@example.com;maddr=192.0.2.9"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 0);
    char a[64];
    transport_addr_text(&d.addr, a, sizeof(a));
    assert_string_equal(a, "192.0.2.9:5060");

    assert_int_equal(sip_uri_parse(STR_LIT("sip:bob@Example.COM:5080"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 1);
    assert_string_equal(host, "Example.COM");
    assert_int_equal(port, 5080);

    assert_int_equal(sip_uri_parse(STR_LIT("sip:bob@[2001:db8::1]:5062"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.addr.ss_family, AF_INET6);

    /* RFC 5630 §3, RFC 3261 §19.1.2: sips is TLS, on 5061 by default */
    assert_int_equal(sip_uri_parse(STR_LIT("sips:bob@192.0.2.5"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_TLS);
    assert_int_equal(transport_addr_port(&d.addr), 5061);
    /* sips with transport=tcp is still TLS; with transport=ws it is WSS (RFC 7118 §5.2) */
    assert_int_equal(sip_uri_parse(STR_LIT("sips:bob@192.0.2.5:5071;transport=tcp"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_TLS);
    assert_int_equal(sip_uri_parse(STR_LIT("sips:bob@192.0.2.5:443;transport=ws"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_WSS);
    /* no TLS over UDP: a sips URI asking for UDP is unusable */
    assert_int_equal(sip_uri_parse(STR_LIT("sips:bob@192.0.2.5;transport=udp"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), -1);
    /* every transport name we carry */
    assert_int_equal(sip_uri_parse(STR_LIT("sip:bob@192.0.2.5;transport=TLS"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_TLS);
    assert_int_equal(transport_addr_port(&d.addr), 5061);
    assert_int_equal(sip_uri_parse(STR_LIT("sip:bob@192.0.2.5:8080;transport=ws"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_WS);
    assert_int_equal(sip_uri_parse(STR_LIT("sip:bob@[::1]:5070;transport=wss"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_WSS);
    assert_int_equal(d.addr.ss_family, AF_INET6);
    assert_int_equal(transport_addr_port(&d.addr), 5070);
    /* RFC 6761 §6.4, RFC 7118 §5: a .invalid host is never looked up */
    assert_int_equal(sip_uri_parse(STR_LIT("sip:bob@df7jal23ls0d.invalid;transport=ws"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), -1);
    assert_int_equal(sip_uri_parse(STR_LIT("sip:bob@192.0.2.5;transport=sctp"), &u), 0);
    assert_int_equal(proxy_uri_dest(&u, &d, host, sizeof(host), &port), -1);
}

static void test_via_dest(void **state)
{
    (void)state;
    struct sip_via v;
    struct transport_dest d;
    char host[PROXY_HOST_MAX], a[64];
    uint16_t port;
    assert_int_equal(sip_via_parse(STR_LIT("SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK1;rport=40000;received=198.51.100.7"), &v), 0);
    assert_int_equal(proxy_via_dest(&v, &d, host, sizeof(host), &port), 0);
    transport_addr_text(&d.addr, a, sizeof(a));
    assert_string_equal(a, "198.51.100.7:40000"); /* RFC 3581 §4 */

    assert_int_equal(sip_via_parse(STR_LIT("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK2"), &v), 0);
    assert_int_equal(proxy_via_dest(&v, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_TCP);
    assert_int_equal(transport_addr_port(&d.addr), 5060);

    assert_int_equal(sip_via_parse(STR_LIT("SIP/2.0/UDP pc.example.com:5062;branch=z9hG4bK3"), &v), 0);
    assert_int_equal(proxy_via_dest(&v, &d, host, sizeof(host), &port), 1);
    assert_string_equal(host, "pc.example.com");

    /* every Via transport we carry (RFC 7118 §5.1: WS, WSS) */
    assert_int_equal(sip_via_parse(STR_LIT("SIP/2.0/WSS 192.0.2.1;branch=z9hG4bK4;received=192.0.2.8;rport=50000"), &v), 0);
    assert_int_equal(proxy_via_dest(&v, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_WSS);
    transport_addr_text(&d.addr, a, sizeof(a));
    assert_string_equal(a, "192.0.2.8:50000");
    assert_int_equal(sip_via_parse(STR_LIT("SIP/2.0/TLS [2001:db8::5];branch=z9hG4bK5"), &v), 0);
    assert_int_equal(proxy_via_dest(&v, &d, host, sizeof(host), &port), 0);
    assert_int_equal(d.proto, SIP_TRANSPORT_TLS);
    assert_int_equal(transport_addr_port(&d.addr), 5061);
    assert_int_equal(sip_via_parse(STR_LIT("SIP/2.0/SCTP 192.0.2.1;branch=z9hG4bK6"), &v), 0);
    assert_int_equal(proxy_via_dest(&v, &d, host, sizeof(host), &port), -1);
}

static bool local(const struct worker *w, const char *uri, bool check_port)
{
    struct sip_uri u;
    if (sip_uri_parse(str_from_cstr(uri), &u) != 0) fail_msg("uri %s", uri);
    /* The registrar keeps a copy of [sip] and who we are: one per question. */
    struct timer_service ts;
    timer_service_init(&ts);
    struct sip_local l = {.port = {w->local.port[SIP_TRANSPORT_UDP], w->local.port[SIP_TRANSPORT_TCP]}};
    snprintf(l.domain, sizeof(l.domain), "%s", w->cfg.sip.domain);
    snprintf(l.realm, sizeof(l.realm), "%s", w->cfg.sip.domain);
    snprintf(l.host, sizeof(l.host), "%s", w->local.host);
    struct registrar_config rc = w->cfg.registrar;
    rc.nat_ping_interval_s = 0;
    struct registrar_deps d = {.cfg = &rc, .auth_cfg = &w->cfg.auth, .sip_cfg = &w->cfg.sip, .local = &l, .timers = &ts};
    struct registrar *r = registrar_new(&d);
    assert_non_null(r);
    bool yes = registrar_uri_is_local(r, &u, NULL, check_port);
    registrar_free(r);
    timer_service_free(&ts);
    return yes;
}

/* Which Request-URIs name this node (issue 9): the domain and every listen
 * address are ours without a port or with one of our ports; 0.0.0.0 takes
 * the machine's addresses (loopback at least). */
static void test_uri_is_local(void **state)
{
    (void)state;
    struct worker *w = calloc(1, sizeof(*w));
    config_init(&w->cfg);
    assert_int_equal(config_parse_listen(&w->cfg, "udp:127.0.0.1:5070, tcp:127.0.0.1:5070"), 0);
    snprintf(w->cfg.sip.domain, sizeof(w->cfg.sip.domain), "127.0.0.1");
    snprintf(w->local.host, sizeof(w->local.host), "127.0.0.1");
    w->local.port[SIP_TRANSPORT_UDP] = w->local.port[SIP_TRANSPORT_TCP] = 5070;
    /* the domain written as an address, on a port other than 5060 */
    assert_true(local(w, "sip:bob@127.0.0.1", true));
    assert_true(local(w, "sip:bob@127.0.0.1:5070", true));
    assert_true(local(w, "sip:127.0.0.1;lr", true));
    assert_false(local(w, "sip:bob@127.0.0.1:5080", true)); /* a UA on the same host */
    assert_true(local(w, "sip:bob@127.0.0.1:5080", false));
    assert_false(local(w, "sip:bob@192.0.2.7", true));
    assert_false(local(w, "sip:bob@127.0.0.2", true));     /* not a wildcard listener */
    assert_false(local(w, "sip:bob@127.0.0.1;maddr=192.0.2.7", true));
    /* a domain name is ours on any port */
    snprintf(w->cfg.sip.domain, sizeof(w->cfg.sip.domain), "sip.example.com");
    assert_true(local(w, "sip:bob@sip.example.com:9999", true));
    assert_true(local(w, "sip:bob@127.0.0.1", true));       /* a listen address */
    assert_false(local(w, "sip:bob@example.com", true));
    /* 0.0.0.0: any local address, still only on our port when one is given */
    assert_int_equal(config_parse_listen(&w->cfg, "udp:0.0.0.0:5070"), 0);
    snprintf(w->local.host, sizeof(w->local.host), "0.0.0.0");
    assert_true(local(w, "sip:bob@127.0.0.2", true));
    assert_true(local(w, "sip:bob@127.0.0.1:5070", true));
    assert_false(local(w, "sip:bob@127.0.0.1:5080", true));
    assert_false(local(w, "sip:bob@192.0.2.7", true));
    free(w);
}

static struct sockaddr_storage ip(const char *text)
{
    struct sockaddr_storage ss;
    if (transport_addr_parse(text, strlen(text), 5060, &ss) != 0) fail_msg("addr %s", text);
    return ss;
}

/* [proxy] pike_*: at most limit requests per source address and window;
 * the first refusal of a window says so (to be logged), the others not;
 * another source, and the same one in its next window, pass (issue 9). */
static void test_pike(void **state)
{
    (void)state;
    struct proxy_pike *pk = proxy_pike_new(3, 2000);
    assert_non_null(pk);
    struct sockaddr_storage a = ip("192.0.2.1"), a2 = ip("192.0.2.1"), b = ip("192.0.2.2"), v6 = ip("2001:db8::1");
    ((struct sockaddr_in *)&a2)->sin_port = htons(40000); /* another port: the same source */
    const struct sockaddr *A = (const struct sockaddr *)&a, *A2 = (const struct sockaddr *)&a2,
                          *B = (const struct sockaddr *)&b, *V6 = (const struct sockaddr *)&v6;
    uint64_t t = 1000000;
    assert_int_equal(proxy_pike_check(pk, A, t), PROXY_PIKE_PASS);
    assert_int_equal(proxy_pike_check(pk, A2, t + 10), PROXY_PIKE_PASS);
    assert_int_equal(proxy_pike_check(pk, A, t + 20), PROXY_PIKE_PASS);
    assert_int_equal(proxy_pike_check(pk, A, t + 30), PROXY_PIKE_REFUSE_FIRST);
    assert_int_equal(proxy_pike_check(pk, A2, t + 40), PROXY_PIKE_REFUSE);
    assert_int_equal(proxy_pike_count(pk, A), 5);
    assert_int_equal(proxy_pike_check(pk, B, t + 50), PROXY_PIKE_PASS);
    for (int i = 0; i < 3; i++) assert_int_equal(proxy_pike_check(pk, V6, t + 60), PROXY_PIKE_PASS);
    assert_int_equal(proxy_pike_check(pk, V6, t + 70), PROXY_PIKE_REFUSE_FIRST);
    assert_int_equal(proxy_pike_check(pk, A, t + 1999), PROXY_PIKE_REFUSE);
    /* the next window */
    assert_int_equal(proxy_pike_check(pk, A, t + 2000), PROXY_PIKE_PASS);
    assert_int_equal(proxy_pike_count(pk, A), 1);
    /* many sources: memory stays fixed, every fresh source passes */
    for (uint32_t i = 0; i < 3 * PIKE_SLOTS; i++) {
        struct sockaddr_in x = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        assert_int_equal(proxy_pike_check(pk, (const struct sockaddr *)&x, t + 3000), PROXY_PIKE_PASS);
    }
    proxy_pike_free(pk);
    /* limit 0: off */
    pk = proxy_pike_new(0, 2000);
    for (int i = 0; i < 100; i++) assert_int_equal(proxy_pike_check(pk, A, t), PROXY_PIKE_PASS);
    proxy_pike_free(pk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_entries),   cmocka_unit_test(test_via_pop_in_response),
        cmocka_unit_test(test_max_forwards_and_insert), cmocka_unit_test(test_branch_round_trip),
        cmocka_unit_test(test_loop_detection),  cmocka_unit_test(test_uri_dest),
        cmocka_unit_test(test_via_dest),
        cmocka_unit_test(test_uri_is_local),
        cmocka_unit_test(test_pike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
