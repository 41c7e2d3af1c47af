/* fuzz_sip.c — libFuzzer target for the SIP message layer.
 *
 * Feeds each input to sip_parse(); a message that parses must print, parse
 * again, and give the same model (the round-trip property of msg.h); its
 * Contact list, parameters and URIs are walked; a request (or a refused one
 * marked can_answer) must yield a response. The same bytes also go through
 * sip_frame_length() and the piecewise parsers. A message that parses is
 * also read as forwarded by a trusted edge (digest_edge_peer, [proxy]
 * trusted_edges): the phone it names is an address with a port. Any broken
 * property traps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "registrar/digest_check.h"
#include "sip/msg.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

static void walk_headers(const struct sip_msg *m, arena_t *a)
{
    struct sip_contact *ct;
    bool star;
    if (sip_msg_contacts(m, a, &ct, &star) == 0) {
        for (; ct; ct = ct->next) {
            CHECK(ct->q1000 >= 0 && ct->q1000 <= 1000);
            CHECK(sip_uri_equal(&ct->addr.uri, &ct->addr.uri));
            str_t v;
            (void)sip_param_get(ct->addr.uri.params, "transport", &v);
        }
    }
    static const enum sip_hdr lists[] = {SIP_HDR_VIA, SIP_HDR_ROUTE, SIP_HDR_RECORD_ROUTE, SIP_HDR_SUPPORTED};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct sip_list_iter it;
        str_t item;
        sip_list_iter_init(&it, m, lists[i]);
        while (sip_list_iter_next(&it, &item)) {
            if (lists[i] == SIP_HDR_VIA) {
                struct sip_via v;
                (void)sip_via_parse(item, &v);
            } else {
                struct sip_name_addr na;
                if (sip_name_addr_parse(item, &na) == 0 && !na.star) CHECK(sip_uri_equal(&na.uri, &na.uri));
            }
        }
    }
    (void)sip_msg_header_by_name(m, "X-Unknown");
    if (m->is_request) CHECK(sip_uri_equal(&m->ruri, &m->ruri));
}

static void round_trip(const struct sip_msg *m, const struct sip_parse_limits *lim)
{
    sbuf_t out;
    sbuf_init(&out);
    CHECK(sip_print(m, &out) == 0);
    /* printing may add ": " and a Content-Length header */
    struct sip_parse_limits l2 = *lim;
    l2.max_message_bytes = lim->max_message_bytes * 2;
    l2.max_headers = lim->max_headers + 1;
    l2.max_line_bytes = lim->max_line_bytes + 2;
    static _Alignas(16) char scratch2[32768];
    arena_t a2;
    arena_init(&a2, scratch2, sizeof(scratch2));
    struct sip_msg m2;
    struct sip_parse_error e2;
    CHECK(sip_parse(out.data, out.len, &a2, &l2, &m2, &e2) == 0);
    CHECK(m2.is_request == m->is_request);
    CHECK(m2.method == m->method && m2.status == m->status);
    CHECK(str_eq(m2.call_id, m->call_id));
    CHECK(m2.cseq.number == m->cseq.number);
    CHECK(m2.via_count == m->via_count);
    CHECK(str_eq(m2.from.tag, m->from.tag) && str_eq(m2.to.tag, m->to.tag));
    CHECK(str_eq(m2.via.branch, m->via.branch));
    CHECK(str_eq(m2.body, m->body));
    CHECK(m2.max_forwards == m->max_forwards && m2.expires == m->expires);
    /* printing the re-parsed message gives the same bytes */
    sbuf_t out2;
    sbuf_init(&out2);
    CHECK(sip_print(&m2, &out2) == 0);
    CHECK(out2.len == out.len && memcmp(out2.data, out.data, out.len) == 0);
    sbuf_free(&out2);
    arena_free(&a2);
    sbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    static _Alignas(16) char scratch[16384];
    arena_t a;
    arena_init(&a, scratch, sizeof(scratch));
    struct sip_msg m;
    struct sip_parse_error err;
    int rc = sip_parse(buf, size, &a, &lim, &m, &err);
    if (rc == 0) {
        CHECK(m.len <= size);
        CHECK(m.via_count >= 1);
        walk_headers(&m, &a);
        round_trip(&m, &lim);
        static struct config_cidr any[2];
        static int nany;
        if (!nany) CHECK(config_parse_cidrs(any, &nany, 2, "0.0.0.0/0, ::/0") == 0);
        struct transport_rx rx = {.msg = &m, .proto = SIP_TRANSPORT_UDP};
        struct sockaddr_in *src = (struct sockaddr_in *)&rx.src;
        src->sin_family = AF_INET;
        src->sin_port = htons(5060);
        src->sin_addr.s_addr = htonl(0x7f000001);
        struct sockaddr_storage phone;
        if (digest_edge_peer(any, nany, &rx, &phone))
            CHECK((phone.ss_family == AF_INET && ((struct sockaddr_in *)&phone)->sin_port) ||
                  (phone.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&phone)->sin6_port));
    } else {
        CHECK(err.reason != NULL && err.status >= 400 && err.status < 600);
    }
    if ((rc == 0 && m.is_request) || (rc < 0 && err.can_answer)) {
        sbuf_t out;
        sbuf_init(&out);
        str_t extra = STR_LIT("Server: fuzz");
        CHECK(sip_build_response(&m, rc == 0 ? 200 : err.status, rc == 0 ? NULL : err.reason, STR_LIT("ftag"),
                                 &extra, 1, STR_NULL, STR_NULL, &out) == 0);
        static _Alignas(16) char scratch3[16384];
        arena_t a3;
        arena_init(&a3, scratch3, sizeof(scratch3));
        struct sip_msg r;
        struct sip_parse_error e3;
        struct sip_parse_limits l3 = lim;
        l3.max_message_bytes *= 2;
        l3.max_headers += 4;
        l3.max_line_bytes += 16;
        CHECK(sip_parse(out.data, out.len, &a3, &l3, &r, &e3) == 0);
        CHECK(!r.is_request && r.via_count == m.via_count);
        arena_free(&a3);
        sbuf_free(&out);
    }
    arena_free(&a);

    size_t skip = 0;
    long fl = sip_frame_length(buf, size, 65536, &skip);
    CHECK(skip <= size);
    CHECK(fl <= (long)(size - skip));

    /* the piecewise parsers on the raw bytes */
    str_t s = {buf, size};
    struct sip_uri u;
    if (sip_uri_parse(s, &u) == 0) CHECK(sip_uri_equal(&u, &u));
    struct sip_name_addr na;
    (void)sip_name_addr_parse(s, &na);
    struct sip_via v;
    (void)sip_via_parse(s, &v);
    struct sip_cseq cs;
    if (sip_cseq_parse(s, &cs) == 0) CHECK(cs.number <= 0x7fffffffu);
    char tmp[256];
    int n = sip_unescape(s, tmp, sizeof(tmp));
    CHECK(n <= (int)sizeof(tmp));
    return 0;
}
