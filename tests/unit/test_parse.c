/* test_parse.c — sip_parse() and sip_frame_length() against the categories
 * of RFC 4475 (SIP torture tests): valid-but-unusual messages that must
 * parse, and invalid ones that must be refused with the right reason. The
 * messages are written here for these tests (same traps, own content). */
#include "sip_testutil.h"

/* ---- valid messages (RFC 4475 §3.1.1) ---------------------------------- */

/* §3.1.1.1 style: folding everywhere, LWS around separators, odd case,
 * leading zeros, compact forms, unknown headers, escapes in quoted strings. */
static const char tortuous_invite[] =
    "INVITE sip:alice@atlanta.example.com;oddparam SIP/2.0\n"
    "tO :\n"
    " sip:alice@atlanta.example.com ;   tag    = 88sja8x\n"
    "FROM   : \"Bob \\\\\\\"B\\\"\"       <sip:bob@biloxi.example.com>\n"
    "  ;\n"
    "  tag = 4711zz\n"
    "mAX-fORWARDS: 0042\n"
    "call-id: tort.93jd8@192.0.2.10\n"
    "Content-Length   : #CL#\n"
    "cSeQ: 00017\n"
    "  INVITE\n"
    "Via  : SIP  /   2.0\n"
    " /UDP\n"
    "    192.0.2.20;branch=z9hG4bKtortA\n"
    "s :\n"
    "X-Odd-Header:   first part\n"
    " second part\n"
    "X-Separators: ;;,,;;,;\n"
    "Content-Type: application/sdp\n"
    "Route:\n"
    " <sip:proxy.example.com;lr;foo=bar;baz>\n"
    "v:  SIP  / 2.0  / TCP     edge.example.com   ;\n"
    "  branch  =   z9hG4bKtortB  ,\n"
    " SIP  /    2.0   / UDP  192.168.0.9   ; branch=\n"
    " z9hG4bKtortC\n"
    "m:\"Quoted \\\"x\\\"\" <sip:bob@biloxi.example.com> ; np =\n"
    "      nv ;\n"
    "  flagp ; q = 0.33\n"
    "\n"
    "v=0\n"
    "o=bob 1 1 IN IP4 192.0.2.10\n"
    "s=-\n"
    "c=IN IP4 192.0.2.10\n"
    "t=0 0\n"
    "m=audio 4000 RTP/AVP 0\n";

static void test_tortuous_invite(void **state)
{
    (void)state;
    struct pctx *c = parse_text(tortuous_invite);
    assert_parse_ok(c);
    struct sip_msg *m = &c->m;
    assert_true(m->is_request);
    assert_int_equal(m->method, SIP_INVITE);
    assert_str(m->ruri.user, "alice");
    assert_str(m->ruri.params, "oddparam");
    assert_str(m->to.uri.host, "atlanta.example.com");
    assert_str(m->to.tag, "88sja8x");
    assert_str(m->from.display, "Bob \\\\\\\"B\\\"");
    assert_str(m->from.tag, "4711zz");
    assert_int_equal(m->max_forwards, 42);
    assert_str(m->call_id, "tort.93jd8@192.0.2.10");
    assert_int_equal(m->cseq.number, 17);
    assert_int_equal(m->cseq.method, SIP_INVITE);
    assert_str(m->via.transport, "UDP");
    assert_str(m->via.host, "192.0.2.20");
    assert_str(m->via.branch, "z9hG4bKtortA");
    assert_int_equal(m->via_count, 3);
    assert_str(m->content_type, "application/sdp");
    assert_int_equal(m->content_length, (int64_t)m->body.len);
    assert_true(m->body.len > 0 && m->body.s[0] == 'v');
    /* the empty compact Subject and the unknown headers are kept */
    const struct sip_header *h = sip_msg_header(m, SIP_HDR_SUBJECT);
    assert_non_null(h);
    assert_int_equal(h->value.len, 0);
    h = sip_msg_header_by_name(m, "x-separators");
    assert_non_null(h);
    assert_str(h->value, ";;,,;;,;");
    assert_str(h->name, "X-Separators");
    h = sip_msg_header_by_name(m, "X-Odd-Header");
    assert_non_null(h);
    assert_str(h->value, "first part\r\n second part");
    /* the second Via line carries two via-parms; both parse on demand */
    h = sip_msg_header_next(m, sip_msg_header(m, SIP_HDR_VIA));
    assert_non_null(h);
    assert_str(h->name, "v");
    str_t cur = h->value, item;
    struct sip_via v;
    assert_true(sip_list_next(&cur, &item));
    assert_int_equal(sip_via_parse(item, &v), 0);
    assert_str(v.transport, "TCP");
    assert_str(v.host, "edge.example.com");
    assert_str(v.branch, "z9hG4bKtortB");
    assert_true(sip_list_next(&cur, &item));
    assert_int_equal(sip_via_parse(item, &v), 0);
    assert_str(v.host, "192.168.0.9");
    assert_str(v.branch, "z9hG4bKtortC");
    assert_false(sip_list_next(&cur, &item));
    /* contact with LWS around '=' in its params */
    struct sip_contact *ct;
    bool star;
    assert_int_equal(sip_msg_contacts(m, &c->arena, &ct, &star), 0);
    assert_false(star);
    assert_non_null(ct);
    assert_str(ct->addr.display, "Quoted \\\"x\\\"");
    assert_int_equal(ct->q1000, 330);
    str_t np;
    assert_true(sip_param_get(ct->addr.params, "NP", &np));
    assert_str(np, "nv");
    assert_true(sip_param_get(ct->addr.params, "flagp", NULL));
    assert_null(ct->next);
    pctx_free(c);
}

/* §3.1.1.2: every character the grammar allows, in the method, URIs,
 * Call-ID, header names and tokens. */
static const char wide_range[] =
    "!odd-Method0123456789_*+`.%yes'~ sip:1_odd.URI~(be!sure)&isn't+it$/mad?,/;;*:&pw+has=1,odd!*pa$s~d_too.(ok-it)@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP host1.example.com;rport;branch=z9hG4bK-.!%66*_+`'~\n"
    "To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:1_odd.URI~(be!sure)&isn't+it$/mad?,/;;*@example.com>\n"
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9\";tag=_token~1'+`*%!-.\n"
    "Call-ID: wide.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
    "CSeq: 139122385 !odd-Method0123456789_*+`.%yes'~\n"
    "Max-Forwards: 255\n"
    "extensionHeader-!.%*+_`'~: \xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb\n"
    "Content-Length: 0\n"
    "\n";

static void test_wide_range(void **state)
{
    (void)state;
    /* this message holds NUL bytes, so its length is given explicitly */
    size_t tlen = sizeof(wide_range) - 1;
    char *crlf = malloc(2 * tlen);
    size_t o = 0;
    for (size_t i = 0; i < tlen; i++) {
        if (wide_range[i] == '\n') crlf[o++] = '\r';
        crlf[o++] = wide_range[i];
    }
    struct pctx *c = parse_raw(crlf, o);
    free(crlf);
    /* quoted-pairs may escape BEL, NUL and DEL (RFC 3261 §25.1) */
    assert_parse_ok(c);
    assert_int_equal(c->m.to.display.len, 20);
    assert_memory_equal(c->m.to.display.s, "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f", 20);
    assert_str(c->m.from.tag, "_token~1'+`*%!-.");
    pctx_free(c);

    /* the same message without the control bytes in the display name */
    static const char wide_clean[] =
        "!odd-Method0123456789_*+`.%yes'~ sip:1_odd.URI~(be!sure)&isn't+it$/mad?,/;;*:&pw+has=1,odd!*pa$s~d_too.(ok-it)@example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP host1.example.com;rport;branch=z9hG4bK-.!%66*_+`'~\n"
        "To: \"quoted \\\\ \\\" \\q\" <sip:1_odd.URI~(be!sure)&isn't+it$/mad?,/;;*@example.com>\n"
        "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\";tag=_token~1'+`*%!-.\n"
        "Call-ID: wide.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
        "CSeq: 139122385 !odd-Method0123456789_*+`.%yes'~\n"
        "Max-Forwards: 255\n"
        "extensionHeader-!.%*+_`'~: \xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb\n"
        "Content-Length: 0\n"
        "\n";
    c = parse_text(wide_clean);
    assert_parse_ok(c);
    struct sip_msg *m = &c->m;
    assert_int_equal(m->method, SIP_METHOD_UNKNOWN);
    assert_str(m->method_name, "!odd-Method0123456789_*+`.%yes'~");
    assert_str(m->ruri.user, "1_odd.URI~(be!sure)&isn't+it$/mad?,/;;*");
    assert_str(m->ruri.password, "&pw+has=1,odd!*pa$s~d_too.(ok-it)");
    assert_str(m->ruri.host, "example.com");
    assert_str(m->via.branch, "z9hG4bK-.!%66*_+`'~");
    assert_true(m->via.has_rport);
    assert_int_equal(m->via.rport, 0);
    assert_str(m->from.display, "token1~` token2'+_ token3*%!.-");
    assert_str(m->from.tag, "_token~1'+`*%!-.");
    assert_str(m->to.display, "quoted \\\\ \\\" \\q");
    assert_str(m->call_id, "wide.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
    assert_int_equal(m->cseq.number, 139122385);
    assert_int_equal(m->max_forwards, 255);
    assert_non_null(sip_msg_header_by_name(m, "extensionheader-!.%*+_`'~"));
    pctx_free(c);
}

/* §3.1.1.3 / §3.1.1.4: escapes in URIs, including an escaped NUL. */
static void test_escapes(void **state)
{
    (void)state;
    struct pctx *c = parse_text("INVITE sip:sips%3Akim%40example.net@example.org SIP/2.0\n"
                                "To: sip:%6Bim@example.org\n"
                                "From: <sip:null-%00-null@example.org>;tag=a1\n"
                                "Max-Forwards: 70\n"
                                "Call-ID: esc.1@host\n"
                                "CSeq: 1 INVITE\n"
                                "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKesc\n"
                                "Contact: <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%31>\n"
                                "Content-Length: 0\n\n");
    assert_parse_ok(c);
    char buf[64];
    int n = sip_unescape(c->m.ruri.user, buf, sizeof(buf));
    assert_int_equal(n, 20);
    assert_memory_equal(buf, "sips:kim@example.net", 20);
    n = sip_unescape(c->m.from.uri.user, buf, sizeof(buf));
    assert_int_equal(n, 11);
    assert_memory_equal(buf, "null-\0-null", 11);
    n = sip_unescape(c->m.to.uri.user, buf, sizeof(buf));
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "kim", 3);
    struct sip_contact *ct;
    bool star;
    assert_int_equal(sip_msg_contacts(&c->m, &c->arena, &ct, &star), 0);
    assert_str(ct->addr.uri.params, "%6C%72;n%61me=v%61lue%25%31");
    pctx_free(c);
}

/* §3.1.1.5: '%' that is not an escape outside URIs is just a character. */
static void test_percent_not_escape(void **state)
{
    (void)state;
    struct pctx *c = parse_text("RE%47ISTER sip:registrar.example.com SIP/2.0\n"
                                "To: \"%Z%45\" <sip:resource@example.com>\n"
                                "From: \"%11\" <sip:resource@example.com>;tag=f%ZZ\n"
                                "Call-ID: %Z1\n"
                                "CSeq: 1 RE%47ISTER\n"
                                "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bK%ZZ\n"
                                "Max-Forwards: 70\n"
                                "X-Thing: %%%\n"
                                "l: 0\n\n");
    assert_parse_ok(c);
    assert_int_equal(c->m.method, SIP_METHOD_UNKNOWN); /* not REGISTER: methods are not unescaped */
    assert_str(c->m.to.display, "%Z%45");
    assert_str(c->m.from.tag, "f%ZZ");
    pctx_free(c);
    /* but inside a URI a broken escape is an error */
    c = parse_text("OPTIONS sip:us%ZZer@example.com SIP/2.0\n"
                   "To: <sip:x@example.com>\nFrom: <sip:y@example.com>;tag=1\nCall-ID: p1\nCSeq: 1 OPTIONS\n"
                   "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bKp\nContent-Length: 0\n\n");
    assert_parse_bad(c, "Bad Request-URI");
    assert_true(c->err.can_answer);
    pctx_free(c);
}

/* §3.1.1.6: no LWS between display name and '<'. */
static void test_no_lws_display(void **state)
{
    (void)state;
    struct pctx *c = parse_text("OPTIONS sip:user@example.com SIP/2.0\n"
                                "To: sip:user@example.com\n"
                                "From: caller<sip:caller@example.com>;tag=323\n"
                                "Max-Forwards: 70\n"
                                "Call-ID: lwsdisp.1@example.com\n"
                                "CSeq: 3 OPTIONS\n"
                                "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkjshdyff\n"
                                "Content-Length: 0\n\n");
    assert_parse_ok(c);
    assert_str(c->m.from.display, "caller");
    assert_str(c->m.from.uri.user, "caller");
    assert_str(c->m.to.uri_raw, "sip:user@example.com");
    pctx_free(c);
}

/* §3.1.1.7: long values everywhere (tags, branch, display, many Vias). */
static void test_long_values(void **state)
{
    (void)state;
    char tag[1501], branch[1201], user[2001];
    memset(tag, 'T', 1500);
    tag[1500] = 0;
    memset(branch, 'b', 1200);
    branch[1200] = 0;
    memset(user, 'u', 2000);
    user[2000] = 0;
    char *text = malloc(60000);
    int n = sprintf(text,
                    "INVITE sip:%s@example.com SIP/2.0\n"
                    "Via: SIP/2.0/TCP sip33.example.com;branch=z9hG4bK%s\n",
                    user, branch);
    for (int i = 0; i < 30; i++) n += sprintf(text + n, "v: SIP/2.0/UDP sip%d.example.com;branch=z9hG4bK%d\n", i, i);
    n += sprintf(text + n,
                 "To: \"I have a user name of %s\" <sip:%s@example.com>\n"
                 "From: sip:caller@example.net;tag=%s\n"
                 "Call-ID: long.%s\n"
                 "CSeq: 1 INVITE\n"
                 "Max-Forwards: 70\n"
                 "Content-Length: 0\n\n",
                 user, user, tag, tag);
    struct pctx *c = parse_text(text);
    assert_parse_ok(c);
    assert_int_equal(c->m.via_count, 31);
    assert_int_equal(c->m.from.tag.len, 1500);
    assert_int_equal(c->m.ruri.user.len, 2000);
    assert_int_equal(c->m.via.branch.len, 1207);
    pctx_free(c);
    free(text);
}

/* §3.1.1.8: extra bytes after a Content-Length-bounded message in a datagram. */
static void test_extra_datagram_bytes(void **state)
{
    (void)state;
    struct pctx *c = parse_text("REGISTER sip:example.com SIP/2.0\n"
                                "To: sip:j.user@example.com\n"
                                "From: sip:j.user@example.com;tag=43251j3j324\n"
                                "Max-Forwards: 8\n"
                                "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\n"
                                "Contact: sip:j.user@host.example.com\n"
                                "CSeq: 8 REGISTER\n"
                                "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\n"
                                "Content-Length: 0\n"
                                "\n"
                                "INVITE sip:joe@example.com SIP/2.0\n"
                                "t: sip:joe@example.com\n"
                                "\n");
    assert_parse_ok(c);
    assert_int_equal(c->m.method, SIP_REGISTER);
    assert_int_equal(c->m.body.len, 0);
    assert_true(c->m.len < c->len);
    assert_memory_equal(c->buf + c->m.len, "INVITE", 6);
    pctx_free(c);
}

/* §3.1.1.9: ';' inside the user part of a URI. */
static void test_semicolon_user(void **state)
{
    (void)state;
    struct pctx *c = parse_text("OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\n"
                                "To: sip:j_user@example.com\n"
                                "From: sip:caller@example.org;tag=33242\n"
                                "Max-Forwards: 3\n"
                                "Call-ID: semiuri.0ha0isndaksdj\n"
                                "CSeq: 8 OPTIONS\n"
                                "Accept: application/sdp, application/pkcs7-mime,\n"
                                "        multipart/mixed, multipart/signed,\n"
                                "        message/sip, message/sipfrag\n"
                                "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\n"
                                "l: 0\n\n");
    assert_parse_ok(c);
    assert_str(c->m.ruri.user, "user;par=u%40example.net");
    assert_str(c->m.ruri.host, "example.com");
    assert_int_equal(c->m.ruri.params.len, 0);
    /* the To is a bare addr-spec, so ;tag belongs to the header */
    assert_str(c->m.from.uri_raw, "sip:caller@example.org");
    assert_str(c->m.from.tag, "33242");
    /* list across folded lines */
    struct sip_list_iter it;
    str_t item;
    int n = 0;
    sip_list_iter_init(&it, &c->m, SIP_HDR_ACCEPT);
    while (sip_list_iter_next(&it, &item)) n++;
    assert_int_equal(n, 6);
    pctx_free(c);
}

/* §3.1.1.10: transports the parser does not know are kept as tokens. */
static void test_transports(void **state)
{
    (void)state;
    struct pctx *c = parse_text("OPTIONS sip:user@example.com SIP/2.0\n"
                                "To: sip:user@example.com\n"
                                "From: <sip:caller@example.com>;tag=323\n"
                                "Max-Forwards: 70\n"
                                "Call-ID: transports.kijh4akdnaqjkwendsasfdj\n"
                                "Accept: application/sdp\n"
                                "CSeq: 60 OPTIONS\n"
                                "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\n"
                                "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\n"
                                "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\n"
                                "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\n"
                                "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\n"
                                "l: 0\n\n");
    assert_parse_ok(c);
    assert_int_equal(c->m.via_count, 5);
    const char *want[] = {"UDP", "SCTP", "TLS", "UNKNOWN", "TCP"};
    int i = 0;
    for (const struct sip_header *h = sip_msg_header(&c->m, SIP_HDR_VIA); h; h = sip_msg_header_next(&c->m, h)) {
        struct sip_via v;
        assert_int_equal(sip_via_parse(h->value, &v), 0);
        assert_str(v.transport, want[i++]);
    }
    assert_int_equal(i, 5);
    pctx_free(c);
}

/* §3.1.1.11: a multipart body is opaque to the SIP parser. */
static void test_multipart_body(void **state)
{
    (void)state;
    struct pctx *c = parse_text("MESSAGE sip:kumiko@example.org SIP/2.0\n"
                                "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport\n"
                                "Max-Forwards: 70\n"
                                "Route: <sip:127.0.0.1:5080>\n"
                                "Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=\n"
                                "Contact: <sip:fluffy@127.0.0.1:5070>\n"
                                "To: <sip:kumiko@example.org>\n"
                                "From: <sip:fluffy@example.com>;tag=2fb0dcc9\n"
                                "Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..\n"
                                "CSeq: 1 MESSAGE\n"
                                "Content-Transfer-Encoding: binary\n"
                                "Content-Type: multipart/mixed;boundary=7a9cbec02ceef655\n"
                                "Date: Sat, 15 Oct 2005 04:44:56 GMT\n"
                                "User-Agent: SIPimp.org/0.2.5 (curses)\n"
                                "Content-Length: #CL#\n"
                                "\n"
                                "--7a9cbec02ceef655\n"
                                "Content-Type: text/plain\n"
                                "Content-Transfer-Encoding: binary\n"
                                "\n"
                                "Hello\n"
                                "--7a9cbec02ceef655--\n");
    assert_parse_ok(c);
    assert_str(c->m.content_type, "multipart/mixed;boundary=7a9cbec02ceef655");
    assert_int_equal(c->m.body.len, (size_t)c->m.content_length);
    assert_memory_equal(c->m.body.s, "--7a9cbec02ceef655\r\n", 20);
    assert_non_null(sip_msg_header(&c->m, SIP_HDR_IDENTITY));
    pctx_free(c);
}

/* §3.1.1.12 / §3.1.1.13: unusual and empty reason phrases. */
static void test_reason_phrases(void **state)
{
    (void)state;
    static const char *heads[] = {
        "SIP/2.0 200 Ça marche — très bien, 好的 = 2**3 * 5**2\n",
        "SIP/2.0 100 \n",
        "SIP/2.0 100\n",
    };
    static const char *reasons[] = {"Ça marche — très bien, 好的 = 2**3 * 5**2", "", ""};
    for (int i = 0; i < 3; i++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 "%s"
                 "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n"
                 "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\n"
                 "CSeq: 35 INVITE\n"
                 "From: sip:user@example.com;tag=11141343\n"
                 "To: sip:user@example.edu;tag=2229\n"
                 "Content-Length: 0\n\n",
                 heads[i]);
        struct pctx *c = parse_text(text);
        assert_parse_ok(c);
        assert_false(c->m.is_request);
        assert_int_equal(c->m.status, i == 0 ? 200 : 100);
        assert_str(c->m.reason, reasons[i]);
        assert_false(c->err.can_answer); /* responses are never answered */
        pctx_free(c);
    }
}

/* Every compact form, any case, and the same header over several lines. */
static void test_compact_forms(void **state)
{
    (void)state;
    struct pctx *c = parse_text("SUBSCRIBE sip:res@example.com SIP/2.0\n"
                                "v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\n"
                                "V: SIP/2.0/UDP b.example.com;branch=z9hG4bK2\n"
                                "f: <sip:a@example.com>;tag=1\n"
                                "T: <sip:res@example.com>\n"
                                "i: compact.1\n"
                                "m: <sip:a@a.example.com>\n"
                                "k: eventlist\n"
                                "s: hello\n"
                                "e: gzip\n"
                                "o: presence\n"
                                "u: presence, dialog\n"
                                "r: <sip:c@example.com>\n"
                                "b: <sip:d@example.com>\n"
                                "x: 1800;refresher=uac\n"
                                "y: abc\n"
                                "a: *;audio\n"
                                "j: *;video\n"
                                "d: proxy\n"
                                "n: <https://example.com/cert>;alg=rsa-sha1\n"
                                "CSeq: 1 SUBSCRIBE\n"
                                "c: text/plain\n"
                                "L: #CL#\n"
                                "\n"
                                "x");
    assert_parse_ok(c);
    const enum sip_hdr want[] = {SIP_HDR_VIA, SIP_HDR_VIA, SIP_HDR_FROM, SIP_HDR_TO, SIP_HDR_CALL_ID,
                                 SIP_HDR_CONTACT, SIP_HDR_SUPPORTED, SIP_HDR_SUBJECT, SIP_HDR_CONTENT_ENCODING,
                                 SIP_HDR_EVENT, SIP_HDR_ALLOW_EVENTS, SIP_HDR_REFER_TO, SIP_HDR_REFERRED_BY,
                                 SIP_HDR_SESSION_EXPIRES, SIP_HDR_IDENTITY, SIP_HDR_ACCEPT_CONTACT,
                                 SIP_HDR_REJECT_CONTACT, SIP_HDR_REQUEST_DISPOSITION, SIP_HDR_IDENTITY_INFO,
                                 SIP_HDR_CSEQ, SIP_HDR_CONTENT_TYPE, SIP_HDR_CONTENT_LENGTH};
    assert_int_equal(c->m.header_count, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) assert_int_equal(c->m.headers[i].type, want[i]);
    assert_int_equal(c->m.via_count, 2);
    assert_str(c->m.via.host, "a.example.com");
    assert_str(c->m.content_type, "text/plain");
    assert_int_equal(c->m.content_length, 1);
    assert_str(c->m.body, "x");
    assert_string_equal(sip_hdr_canonical_name(SIP_HDR_SESSION_EXPIRES), "Session-Expires");
    assert_int_equal(sip_hdr_from_name(STR_LIT("CONTENT-LENGTH")), SIP_HDR_CONTENT_LENGTH);
    assert_int_equal(sip_hdr_from_name(STR_LIT("Content-Lengthx")), SIP_HDR_OTHER);
    assert_int_equal(sip_hdr_from_name(STR_LIT("q")), SIP_HDR_OTHER);
    pctx_free(c);
}

/* IPv6 references in the Request-URI, Via (with received/rport) and Contact. */
static void test_ipv6(void **state)
{
    (void)state;
    struct pctx *c = parse_text("REGISTER sip:[2001:db8::10]:5070 SIP/2.0\n"
                                "To: sip:user@[2001:db8::10]\n"
                                "From: sip:user@example.com;tag=81x2\n"
                                "Via: SIP/2.0/UDP [2001:db8::9:1]:6050;received=2001:db8::9:255;rport=6051;branch=z9hG4bKas3-111\n"
                                "Call-ID: SSG9559905523997077@hlau_4100\n"
                                "Max-Forwards: 70\n"
                                "Contact: \"Caller\" <sip:caller@[2001:db8::9:1]:6050;transport=udp>\n"
                                "CSeq: 98176 REGISTER\n"
                                "Content-Length: 0\n\n");
    assert_parse_ok(c);
    assert_true(c->m.ruri.host_is_ipv6);
    assert_str(c->m.ruri.host, "[2001:db8::10]");
    assert_int_equal(c->m.ruri.port, 5070);
    assert_str(c->m.via.host, "[2001:db8::9:1]");
    assert_int_equal(c->m.via.port, 6050);
    assert_str(c->m.via.received, "2001:db8::9:255");
    assert_true(c->m.via.has_rport);
    assert_int_equal(c->m.via.rport, 6051);
    struct sip_contact *ct;
    bool star;
    assert_int_equal(sip_msg_contacts(&c->m, &c->arena, &ct, &star), 0);
    assert_str(ct->addr.uri.host, "[2001:db8::9:1]");
    assert_str(ct->addr.uri.transport, "udp");
    pctx_free(c);
    /* a broken reference */
    c = parse_text("OPTIONS sip:[2001:db8:::10] SIP/2.0\n"
                   "To: sip:user@example.com\nFrom: sip:user@example.com;tag=1\nCall-ID: v6b\nCSeq: 1 OPTIONS\n"
                   "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bK1\nContent-Length: 0\n\n");
    assert_parse_bad(c, "Bad Request-URI");
    pctx_free(c);
    c = parse_text("OPTIONS sip:x@example.com SIP/2.0\n"
                   "To: sip:user@example.com\nFrom: sip:user@example.com;tag=1\nCall-ID: v6b\nCSeq: 1 OPTIONS\n"
                   "Via: SIP/2.0/UDP [2001:db8::9:1;branch=z9hG4bK1\nContent-Length: 0\n\n");
    assert_parse_bad(c, "Bad Via");
    assert_false(c->err.can_answer);
    pctx_free(c);
}

/* RFC 4475 §3.3.2–3.3.4: unknown schemes parse (the application answers 416). */
static void test_unknown_schemes(void **state)
{
    (void)state;
    struct pctx *c = parse_text("OPTIONS nobody:hello.world@example.com SIP/2.0\n"
                                "To: <nobody:hello.world@example.com>\n"
                                "From: \"Me\" <http://www.example.com/me>;tag=ab3\n"
                                "Contact: <mailto:me@example.com>\n"
                                "Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34\n"
                                "CSeq: 3923239 OPTIONS\n"
                                "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw\n"
                                "Max-Forwards: 7\n"
                                "Content-Length: 0\n\n");
    assert_parse_ok(c);
    assert_int_equal(c->m.ruri.scheme, SIP_SCHEME_OTHER);
    assert_str(c->m.ruri.scheme_name, "nobody");
    assert_int_equal(c->m.from.uri.scheme, SIP_SCHEME_OTHER);
    assert_str(c->m.from.uri.raw, "http://www.example.com/me");
    pctx_free(c);
    c = parse_text("OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0\n"
                   "To: sip:user@example.com\nFrom: sip:caller@example.com;tag=384\nMax-Forwards: 3\n"
                   "Call-ID: novelsc.asdfasser0q239nwsdfasdkl34\nCSeq: 3923239 OPTIONS\n"
                   "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\nContent-Length: 0\n\n");
    assert_parse_ok(c);
    assert_str(c->m.ruri.scheme_name, "soap.beep");
    pctx_free(c);
    /* tel URIs */
    c = parse_text("INVITE tel:+1-201-555-0123;phone-context=example.com SIP/2.0\n"
                   "To: <tel:+12015550123>\nFrom: <sip:a@example.com>;tag=1\nCall-ID: tel1\nCSeq: 1 INVITE\n"
                   "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bKt\nContent-Length: 0\n\n");
    assert_parse_ok(c);
    assert_int_equal(c->m.ruri.scheme, SIP_SCHEME_TEL);
    assert_str(c->m.ruri.user, "+1-201-555-0123");
    assert_str(c->m.ruri.params, "phone-context=example.com");
    pctx_free(c);
}

/* Real peers send bare LF line ends and leading CRLF keep-alives. */
static void test_lf_only_and_leading_crlf(void **state)
{
    (void)state;
    static const char lf[] = "\r\n\r\nMESSAGE sip:34020000002000000001@3402000000 SIP/2.0\n"
                             "Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1\n"
                             "From: <sip:34020000001320000001@3402000000>;tag=9\n"
                             "To: <sip:34020000002000000001@3402000000>\n"
                             "Call-ID: 77\n"
                             "CSeq: 20 MESSAGE\n"
                             "Content-Type: Application/MANSCDP+xml\n"
                             "Max-Forwards: 70\n"
                             "Content-Length: 10\n"
                             "\n"
                             "<Notify/>\n";
    struct pctx *c = parse_raw(lf, sizeof(lf) - 1);
    assert_parse_ok(c);
    assert_int_equal(c->m.method, SIP_MESSAGE);
    assert_str(c->m.body, "<Notify/>\n");
    assert_ptr_equal(c->m.buf, c->buf + 4);
    assert_str(c->m.content_type, "Application/MANSCDP+xml");
    pctx_free(c);
    /* mixed line ends with LF folding */
    static const char mixed[] = "OPTIONS sip:a@example.com SIP/2.0\r\n"
                                "Via: SIP/2.0/UDP h.example.com\n ;branch=z9hG4bKm\r\n"
                                "From: <sip:b@example.com>;tag=1\n"
                                "To: <sip:a@example.com>\r\n"
                                "Call-ID: mixed\n"
                                "CSeq: 1 OPTIONS\r\n"
                                "\n";
    c = parse_raw(mixed, sizeof(mixed) - 1);
    assert_parse_ok(c);
    assert_str(c->m.via.branch, "z9hG4bKm");
    assert_int_equal(c->m.content_length, -1);
    assert_int_equal(c->m.body.len, 0);
    pctx_free(c);
}

/* RFC 4475 §3.2.1 / §3.4.1: RFC 2543-style messages (no branch, no tags). */
static void test_rfc2543_compat(void **state)
{
    (void)state;
    struct pctx *c = parse_text("INVITE sip:UserB@example.com SIP/2.0\n"
                                "Via: SIP/2.0/UDP iftgw.example.com (comment about the gateway)\n"
                                "From: <sip:+13035551111@ift.client.example.net;user=phone>\n"
                                "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\n"
                                "To: sip:+16505552222@ss1.example.net;user=phone\n"
                                "Call-ID: inv2543.1717@ift.client.example.com\n"
                                "CSeq: 56 INVITE\n"
                                "Content-Type: application/sdp\n"
                                "Content-Length: 0\n\n");
    assert_parse_ok(c);
    assert_int_equal(c->m.via.branch.len, 0);
    assert_int_equal(c->m.from.tag.len, 0);
    assert_int_equal(c->m.max_forwards, -1);
    assert_str(c->m.from.uri.user_param, "phone");
    pctx_free(c);
}

/* RFC 4475 §3.3.11: Max-Forwards 0 is valid syntax. */
static void test_zero_max_forwards_and_expires(void **state)
{
    (void)state;
    struct pctx *c = parse_text("REGISTER sip:example.com SIP/2.0\n"
                                "Via: SIP/2.0/UDP 192.0.2.253;branch=z9hG4bKkdjuw2395\n"
                                "To: <sip:j.user@example.com>\nFrom: <sip:j.user@example.com>;tag=8\n"
                                "Call-ID: zeromf.1\nCSeq: 14398234 REGISTER\nMax-Forwards: 0\n"
                                "Contact: *\nExpires: 0\nContent-Length: 0\n\n");
    assert_parse_ok(c);
    assert_int_equal(c->m.max_forwards, 0);
    assert_int_equal(c->m.expires, 0);
    struct sip_contact *ct;
    bool star;
    assert_int_equal(sip_msg_contacts(&c->m, &c->arena, &ct, &star), 0);
    assert_true(star);
    assert_null(ct);
    pctx_free(c);
}

/* RFC 4475 §3.3.12/§3.3.13: contact parameters vs URI parameters. */
static void test_contact_params(void **state)
{
    (void)state;
    struct pctx *c = parse_text("REGISTER sip:example.com SIP/2.0\n"
                                "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\n"
                                "Max-Forwards: 70\nFrom: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe\n"
                                "To: sip:watson@example.com\nCall-ID: cparam01.70710@saturn.example.com\n"
                                "CSeq: 2 REGISTER\n"
                                "Contact: sip:+19725552222@gw1.example.net;unknownparam;expires=600, "
                                "<sip:+19725552222@gw1.example.net;unknownparam>;q=0.5;expires=99999999999999;"
                                "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1\n"
                                "m: \"Quoted, with comma\" <sip:x@example.net>;q=1.000\n"
                                "l: 0\n\n");
    assert_parse_ok(c);
    struct sip_contact *ct;
    bool star;
    assert_int_equal(sip_msg_contacts(&c->m, &c->arena, &ct, &star), 0);
    assert_non_null(ct);
    /* bare addr-spec: ";unknownparam;expires=600" are header parameters */
    assert_str(ct->addr.uri_raw, "sip:+19725552222@gw1.example.net");
    assert_int_equal(ct->addr.uri.params.len, 0);
    assert_int_equal(ct->expires, 600);
    ct = ct->next;
    assert_non_null(ct);
    assert_str(ct->addr.uri.params, "unknownparam");
    assert_int_equal(ct->q1000, 500);
    assert_int_equal(ct->expires, 4294967295LL);
    assert_str(ct->instance, "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>");
    assert_str(ct->reg_id, "1");
    ct = ct->next;
    assert_non_null(ct);
    assert_str(ct->addr.display, "Quoted, with comma");
    assert_int_equal(ct->q1000, 1000);
    assert_null(ct->next);
    pctx_free(c);
}

/* ---- invalid messages (RFC 4475 §3.1.2, §3.3) ------------------------- */

#define GOOD_TAIL                                   \
    "To: <sip:bob@example.com>\n"                   \
    "From: <sip:alice@example.com>;tag=a73kszlfl\n" \
    "Call-ID: bad.1@example.com\n"                  \
    "Max-Forwards: 70\n"

struct bad_case {
    const char *name;
    const char *text;
    const char *reason;
    int status;
    bool can_answer;
};

static const struct bad_case bad_cases[] = {
    {"extraneous separators in Via (badinv01)",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\nContent-Length: 0\n\n",
     "Bad Via", 400, false},
    {"Content-Length larger than the body (clerr)",
     "INVITE sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 INVITE\n"
     "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bK1\nContent-Length: 9999\n\nv=0\n",
     "Bad Content-Length", 400, true},
    {"Content-Length past the message limit",
     "INVITE sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 INVITE\n"
     "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bK1\nContent-Length: 999999\n\nv=0\n",
     "Request Entity Too Large", 413, true},
    {"negative Content-Length (ncl)",
     "INVITE sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 INVITE\n"
     "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bK1\nContent-Length: -999\n\nv=0\n",
     "Bad Content-Length", 400, true},
    {"Content-Length not a number",
     "INVITE sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 INVITE\n"
     "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bK1\nContent-Length: 1 2\n\nv=0\n",
     "Bad Content-Length", 400, true},
    {"conflicting Content-Length (mcl01)",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bK1\nContent-Length: 3\nl: 6\n\nabcdef",
     "Conflicting Content-Length", 400, true},
    {"overlarge CSeq (scalar02)",
     "REGISTER sip:example.com SIP/2.0\n" GOOD_TAIL "CSeq: 36893488147419103232 REGISTER\n"
     "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\nContent-Length: 0\n\n",
     "Bad CSeq", 400, true},
    {"CSeq of 2**31",
     "REGISTER sip:example.com SIP/2.0\n" GOOD_TAIL "CSeq: 2147483648 REGISTER\n"
     "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\nContent-Length: 0\n\n",
     "Bad CSeq", 400, true},
    {"Max-Forwards over 255",
     "REGISTER sip:example.com SIP/2.0\nTo: <sip:bob@example.com>\nFrom: <sip:alice@example.com>;tag=1\n"
     "Call-ID: mf\nMax-Forwards: 300\nCSeq: 1 REGISTER\n"
     "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\nContent-Length: 0\n\n",
     "Bad Max-Forwards", 400, true},
    {"Expires past 2**32-1",
     "REGISTER sip:example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 REGISTER\nExpires: 10000000000000\n"
     "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\nContent-Length: 0\n\n",
     "Bad Expires", 400, true},
    {"overlarge CSeq in a response (scalarlg)",
     "SIP/2.0 503 Service Unavailable\nVia: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw\n"
     "To: <sip:user@example.com>\nFrom: <sip:other@example.net>;tag=2easdjfejw\n"
     "CSeq: 9292394834772304023312 OPTIONS\nCall-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\n"
     "Retry-After: 949302838503028349304023988\nWarning: 1812 overture \"In Progress\"\nContent-Length: 0\n\n",
     "Bad CSeq", 400, false},
    {"unterminated quoted display name (quotbal)",
     "INVITE sip:user@example.com SIP/2.0\nTo: \"Mr. J. User <sip:j.user@example.com>\n"
     "From: sip:caller@example.net;tag=93334\nMax-Forwards: 10\nCall-ID: quotbal.aksdj\nCSeq: 1 INVITE\n"
     "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\nContent-Length: 0\n\n",
     "Bad To", 400, true},
    {"<> around the Request-URI (ltgtruri)",
     "INVITE <sip:user@example.com> SIP/2.0\n" GOOD_TAIL "CSeq: 23 INVITE\n"
     "Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKkdjuw\nContent-Length: 0\n\n",
     "Bad Request-URI", 400, true},
    {"LWS inside the Request-URI (lwsruri)",
     "INVITE sip:user@example.com; lr SIP/2.0\n" GOOD_TAIL "CSeq: 1 INVITE\n"
     "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\nContent-Length: 0\n\n",
     "LWS in Request-URI", 400, true},
    {"several SP between request-line elements (lwsstart)",
     "INVITE  sip:user@example.com  SIP/2.0\n" GOOD_TAIL "CSeq: 1 INVITE\n"
     "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\nContent-Length: 0\n\n",
     "Extra Spaces in Request-Line", 400, true},
    {"SP after the SIP version (trws)",
     "OPTIONS sip:remote-target@example.com SIP/2.0  \n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093\nContent-Length: 0\n\n",
     "Trailing Space in Request-Line", 400, true},
    {"escaped headers in the Request-URI (escruri)",
     "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\n" GOOD_TAIL "CSeq: 1 INVITE\n"
     "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\nContent-Length: 0\n\n",
     "Bad Request-URI", 400, true},
    {"spaces inside <> (badaspec)",
     "OPTIONS sip:user@example.org SIP/2.0\nVia: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\n"
     "Max-Forwards: 70\nFrom: \"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423\n"
     "To: \"Watson, Thomas\" < sip:t.watson@example.org >\nCall-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\n"
     "CSeq: 3923239 OPTIONS\nl: 0\n\n",
     "Bad To", 400, false},
    {"non-token characters in an unquoted display name (baddn)",
     "OPTIONS sip:t.watson@example.org SIP/2.0\nVia: SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\n"
     "Max-Forwards: 70\nFrom: Bell, Alexander <sip:a.g.bell@example.com>;tag=43\n"
     "To: Watson, Thomas <sip:t.watson@example.org>\nCall-ID: baddn.31415@c.example.com\n"
     "CSeq: 3923239 OPTIONS\nl: 0\n\n",
     "Bad From", 400, true},
    {"unknown SIP version (badvers)",
     "OPTIONS sip:t.watson@example.org SIP/7.0\nVia: SIP/2.0/UDP c.example.com;branch=z9hG4bKkdjuw\n"
     "Max-Forwards: 70\nFrom: A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\n"
     "To: T. Watson <sip:t.watson@example.org>\nCall-ID: badvers.31417@c.example.com\n"
     "CSeq: 1 OPTIONS\nl: 0\n\n",
     "Version Not Supported", 505, true},
    {"not a version at all",
     "OPTIONS sip:t.watson@example.org HTTP/1.1\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP c.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n",
     "Bad Request Line", 400, false},
    {"start line and CSeq method differ (mismatch01)",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 8 INVITE\n"
     "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n",
     "CSeq method mismatch", 400, true},
    {"unknown method with CSeq mismatch (mismatch02)",
     "NEWMETHOD sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 8 INVITE\n"
     "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n",
     "CSeq method mismatch", 400, true},
    {"methods are case-sensitive in CSeq",
     "INVITE sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 8 invite\n"
     "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n",
     "CSeq method mismatch", 400, true},
    {"overlarge response code (bigcode)",
     "SIP/2.0 4294967301 better not break the receiver\nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
     "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\nCSeq: 353494 INVITE\n"
     "From: <sip:user@example.com>;tag=39ansfi3\nTo: <sip:user@example.edu>;tag=902jndnke3\nContent-Length: 0\n\n",
     "Bad Status Code", 400, false},
    {"response code below 100",
     "SIP/2.0 099 Nope\nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2\nCall-ID: x\nCSeq: 1 INVITE\n"
     "From: <sip:user@example.com>;tag=1\nTo: <sip:user@example.edu>\nContent-Length: 0\n\n",
     "Bad Status Code", 400, false},
    {"missing Call-ID (insuf)",
     "INVITE sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=134161461246\n"
     "Max-Forwards: 7\nCSeq: 1 INVITE\nVia: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw\nl: 0\n\n",
     "Missing Call-ID", 400, true},
    {"missing From",
     "INVITE sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\nCall-ID: nf\n"
     "CSeq: 1 INVITE\nVia: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw\nl: 0\n\n",
     "Missing From", 400, false},
    {"missing To",
     "INVITE sip:user@example.com SIP/2.0\nFrom: sip:j.user@example.com;tag=1\nCall-ID: nt\n"
     "CSeq: 1 INVITE\nVia: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw\nl: 0\n\n",
     "Missing To", 400, false},
    {"missing Via",
     "INVITE sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 INVITE\nl: 0\n\n",
     "Missing Via", 400, false},
    {"missing CSeq",
     "INVITE sip:user@example.com SIP/2.0\n" GOOD_TAIL "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw\nl: 0\n\n",
     "Missing CSeq", 400, false},
    {"missing CSeq in a response",
     "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw\n" GOOD_TAIL "l: 0\n\n",
     "Missing CSeq", 400, false},
    {"two To headers (multi01)",
     "INVITE sip:user@company.com SIP/2.0\nContact: <sip:caller@host25.example.net>\n"
     "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\nMax-Forwards: 70\nCSeq: 5 INVITE\n"
     "Call-ID: multi01.98asdh@192.0.2.1\nFrom: sip:caller@example.com;tag=3413415\n"
     "To: sip:user@example.com\nTo: sip:other@example.net\nl: 0\n\n",
     "Multiple To", 400, true},
    {"two Call-IDs (multi01)",
     "INVITE sip:user@company.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\nCSeq: 5 INVITE\n"
     "Call-ID: multi01.98asdh@192.0.2.1\nFrom: sip:caller@example.com;tag=3413415\n"
     "To: sip:user@example.com\nCall-ID: multi01.98asdh@192.0.2.2\nl: 0\n\n",
     "Multiple Call-ID", 400, true},
    {"two CSeqs",
     "INVITE sip:user@company.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\nCSeq: 5 INVITE\n"
     "Call-ID: m2\nFrom: sip:caller@example.com;tag=3413415\nTo: sip:user@example.com\nCSeq: 59 INVITE\nl: 0\n\n",
     "Multiple CSeq", 400, true},
    {"two Max-Forwards",
     "INVITE sip:user@company.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\nCSeq: 5 INVITE\n"
     "Call-ID: m3\nFrom: sip:caller@example.com;tag=3413415\nTo: sip:user@example.com\nMax-Forwards: 70\n"
     "Max-Forwards: 5\nl: 0\n\n",
     "Multiple Max-Forwards", 400, true},
    {"Call-ID with white space",
     "OPTIONS sip:user@example.com SIP/2.0\nTo: <sip:bob@example.com>\nFrom: <sip:alice@example.com>;tag=1\n"
     "Call-ID: two words\nCSeq: 1 OPTIONS\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nl: 0\n\n",
     "Bad Call-ID", 400, true},
    {"CSeq without method",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nl: 0\n\n",
     "Bad CSeq", 400, true},
    {"a malformed second Via (it would go back in the response)",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nVia: SIP/2.0/UDP ;branch=z9hG4bK0\nl: 0\n\n",
     "Bad Via", 400, false},
    {"a malformed via-parm after a comma",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1, garbage\nl: 0\n\n",
     "Bad Via", 400, false},
    {"Via with a bad version",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/3.0/UDP h.example.com;branch=z9hG4bK1\nl: 0\n\n",
     "Bad Via", 400, false},
    {"Via without sent-by",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP\nl: 0\n\n",
     "Bad Via", 400, false},
    {"Via port out of range",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP h.example.com:65536;branch=z9hG4bK1\nl: 0\n\n",
     "Bad Via", 400, false},
    {"Via rport out of range",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP h.example.com;rport=70000;branch=z9hG4bK1\nl: 0\n\n",
     "Bad Via", 400, false},
    {"header line without a colon",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\nThis is not a header\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nl: 0\n\n",
     "Bad Header", 400, false},
    {"continuation before any header",
     "OPTIONS sip:user@example.com SIP/2.0\n continued\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nl: 0\n\n",
     "Bad Header", 400, false},
    {"no empty line after the headers",
     "OPTIONS sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\n",
     "Missing Header End", 400, false},
    {"empty start line element",
     "OPTIONS sip:user@example.com\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nl: 0\n\n",
     "Bad Request Line", 400, false},
    {"port over 65535 in the Request-URI",
     "OPTIONS sip:user@example.com:99999 SIP/2.0\n" GOOD_TAIL "CSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nl: 0\n\n",
     "Bad Request-URI", 400, true},
    {"bare From URI with headers (regbadct style)",
     "OPTIONS sip:user@example.com SIP/2.0\nTo: <sip:bob@example.com>\n"
     "From: sip:user@example.com?Route=%3Csip:sip.example.com%3E;tag=1\nCall-ID: rb\nCSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nl: 0\n\n",
     "Bad From", 400, false},
    {"empty tag",
     "OPTIONS sip:user@example.com SIP/2.0\nTo: <sip:bob@example.com>\n"
     "From: <sip:user@example.com>;tag=\nCall-ID: rb\nCSeq: 1 OPTIONS\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nl: 0\n\n",
     "Bad From", 400, true},
    {"Content-Type without subtype",
     "MESSAGE sip:user@example.com SIP/2.0\n" GOOD_TAIL "CSeq: 1 MESSAGE\nContent-Type: text\n"
     "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\nl: 2\n\nhi",
     "Bad Content-Type", 400, true},
};

static void test_invalid_messages(void **state)
{
    (void)state;
    int wrong = 0;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        struct pctx *c = parse_text(bc->text);
        if (c->rc == 0) fail_msg("case \"%s\": parsed, want \"%s\"", bc->name, bc->reason);
        if (strcmp(c->err.reason, bc->reason) != 0 || c->err.status != bc->status ||
            c->err.can_answer != bc->can_answer) {
            print_message("case \"%s\": %d \"%s\" can_answer %d, want %d \"%s\" can_answer %d\n", bc->name,
                          c->err.status, c->err.reason, c->err.can_answer, bc->status, bc->reason, bc->can_answer);
            wrong++;
        }
        if (c->err.can_answer) {
            /* enough is there to build the 400 */
            sbuf_t out;
            sbuf_init(&out);
            assert_int_equal(sip_build_response(&c->m, c->err.status, c->err.reason, STR_LIT("x1"), NULL, 0,
                                                 STR_NULL, STR_NULL, &out),
                             0);
            assert_non_null(strstr(out.data, c->err.reason));
            sbuf_free(&out);
        }
        pctx_free(c);
    }
    assert_int_equal(wrong, 0);
}

/* Builds the response to a refused request and parses it again (the fuzz
 * target's invariant); returns the response's model in c2. */
static struct pctx *answer_of(struct pctx *c)
{
    sbuf_t out;
    sbuf_init(&out);
    str_t server = STR_LIT("Server: test");
    assert_int_equal(sip_build_response(&c->m, c->err.status, c->err.reason, STR_LIT("x1"), &server, 1, STR_NULL,
                                        STR_NULL, &out),
                     0);
    struct pctx *r = parse_raw(out.data, out.len);
    sbuf_free(&out);
    assert_parse_ok(r);
    assert_false(r->m.is_request);
    assert_int_equal(r->m.status, c->err.status);
    return r;
}

/* Issue 9: requests RFC 4475 says deserve an answer were dropped (a TCP
 * client then waited forever). Each is refused with a reason that names the
 * fault, and the response built from the repaired model parses again. */
static void test_refused_but_answered(void **state)
{
    (void)state;
    static const char via[] = "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKans\n";
    static const char tail[] = "From: <sip:a@example.com>;tag=f1\nTo: <sip:b@example.com>\nCall-ID: ans-1\n";
    char text[16384];

    /* §3.1.2.6: To with an unterminated quote -> To: <URI> in the 400 */
    snprintf(text, sizeof(text),
             "INVITE sip:b@example.com SIP/2.0\n%sFrom: <sip:a@example.com>;tag=f1\n"
             "To: \"Mr. B <sip:b@example.com>;tag=tt9\nCall-ID: q1\nCSeq: 4 INVITE\nl: 0\n\n", via);
    struct pctx *c = parse_text(text);
    assert_int_equal(c->rc, -1);
    assert_string_equal(c->err.reason, "Bad To");
    assert_true(c->err.can_answer);
    struct pctx *r = answer_of(c);
    assert_str(r->m.to.uri.user, "b");
    assert_str(r->m.to.tag, "tt9");
    assert_str(r->m.call_id, "q1");
    assert_int_equal(r->m.cseq.number, 4);
    pctx_free(r);
    pctx_free(c);

    /* §3.1.2.4: CSeq over 2**32-1 -> 400, the response carries "0 REGISTER" */
    snprintf(text, sizeof(text), "REGISTER sip:example.com SIP/2.0\n%s%sCSeq: 36893488147419103232 REGISTER\nl: 0\n\n",
             via, tail);
    c = parse_text(text);
    assert_string_equal(c->err.reason, "Bad CSeq");
    assert_true(c->err.can_answer);
    r = answer_of(c);
    assert_int_equal(r->m.cseq.number, 0);
    assert_int_equal(r->m.cseq.method, SIP_REGISTER);
    assert_str(r->m.call_id, "ans-1");
    pctx_free(r);
    pctx_free(c);

    /* no Call-ID: 400 "Missing Call-ID" with a stand-in */
    snprintf(text, sizeof(text),
             "OPTIONS sip:b@example.com SIP/2.0\n%sFrom: <sip:a@example.com>;tag=f1\nTo: <sip:b@example.com>\n"
             "CSeq: 1 OPTIONS\nl: 0\n\n", via);
    c = parse_text(text);
    assert_string_equal(c->err.reason, "Missing Call-ID");
    assert_true(c->err.can_answer);
    r = answer_of(c);
    assert_true(r->m.call_id.len > 0);
    assert_str(r->m.via.branch, "z9hG4bKans");
    pctx_free(r);
    pctx_free(c);

    /* §3.1.2.8-10: request-line spacing; the version is still checked first */
    static const struct { const char *line, *reason; int status; } lines[] = {
        {"OPTIONS  sip:b@example.com SIP/2.0", "Extra Spaces in Request-Line", 400},
        {"OPTIONS sip:b@example.com  SIP/2.0", "Extra Spaces in Request-Line", 400},
        {"OPTIONS sip:b@example.com SIP/2.0 ", "Trailing Space in Request-Line", 400},
        {"OPTIONS sip:b@example.com; lr SIP/2.0", "LWS in Request-URI", 400},
        {"OPTIONS  sip:b@example.com SIP/7.0", "Version Not Supported", 505},
        {"OPTIONS sip:b@example.com SIP/7.0", "Version Not Supported", 505},
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        snprintf(text, sizeof(text), "%s\n%s%sCSeq: 1 OPTIONS\nl: 0\n\n", lines[i].line, via, tail);
        c = parse_text(text);
        assert_int_equal(c->rc, -1);
        assert_string_equal(c->err.reason, lines[i].reason);
        assert_int_equal(c->err.status, lines[i].status);
        assert_true(c->err.can_answer);
        pctx_free(answer_of(c));
        pctx_free(c);
    }
    /* still fatal: no version at the end, nothing between method and version */
    c = parse_text("OPTIONS sip:b@example.com SIP/2.0 x\nl: 0\n\n");
    assert_string_equal(c->err.reason, "Bad Request Line");
    assert_false(c->err.can_answer);
    pctx_free(c);
    c = parse_text("OPTIONS   SIP/2.0\nl: 0\n\n");
    assert_string_equal(c->err.reason, "Bad Request Line");
    pctx_free(c);

    /* Accept must be a list of media ranges (RFC 3261 §20.1) */
    static const char *accepts_ok[] = {"application/sdp", "application/sdp, text/plain;charset=utf-8",
                                       "*/*", "text/*;q=0.5", "application / sdp ; level = 1", ""};
    static const char *accepts_bad[] = {"application", "application, sdp;;q==", "text/", "/sdp",
                                        "application/sdp,,text/plain", "application/sdp;q="};
    for (size_t i = 0; i < sizeof(accepts_ok) / sizeof(accepts_ok[0]); i++) {
        snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0\n%s%sCSeq: 1 OPTIONS\nAccept: %s\nl: 0\n\n",
                 via, tail, accepts_ok[i]);
        c = parse_text(text);
        if (c->rc != 0) fail_msg("Accept: %s refused (%s)", accepts_ok[i], c->err.reason);
        pctx_free(c);
    }
    for (size_t i = 0; i < sizeof(accepts_bad) / sizeof(accepts_bad[0]); i++) {
        snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0\n%s%sCSeq: 1 OPTIONS\nAccept: %s\nl: 0\n\n",
                 via, tail, accepts_bad[i]);
        c = parse_text(text);
        if (c->rc == 0 || strcmp(c->err.reason, "Bad Accept") != 0) fail_msg("Accept: %s not refused", accepts_bad[i]);
        assert_true(c->err.can_answer);
        pctx_free(c);
    }

    /* more than 128 header fields: 513, answered; even with the fields a
     * response copies after the limit */
    int n = snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0\n%s", via);
    for (int i = 0; i < 140; i++) n += snprintf(text + n, sizeof(text) - (size_t)n, "X-F%d: %d\n", i, i);
    snprintf(text + n, sizeof(text) - (size_t)n, "%sCSeq: 1 OPTIONS\nl: 0\n\n", tail);
    c = parse_text(text);
    assert_string_equal(c->err.reason, "Too Many Headers");
    assert_int_equal(c->err.status, 513);
    assert_true(c->err.can_answer);
    r = answer_of(c);
    assert_str(r->m.call_id, "ans-1");
    pctx_free(r);
    pctx_free(c);
    /* ... but a Via past the limit cannot be copied: dropped */
    n = snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0\n%s%sCSeq: 1 OPTIONS\n", via, tail);
    for (int i = 0; i < 140; i++) n += snprintf(text + n, sizeof(text) - (size_t)n, "X-F%d: %d\n", i, i);
    snprintf(text + n, sizeof(text) - (size_t)n, "Via: SIP/2.0/UDP 192.0.2.8;branch=z9hG4bKlate\nl: 0\n\n");
    c = parse_text(text);
    assert_int_equal(c->err.status, 513);
    assert_false(c->err.can_answer);
    pctx_free(c);

    /* one line over 8 KB: 513, answered unless it is a field the response copies */
    char big[8400];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0\n%s%sCSeq: 1 OPTIONS\nX-Long: %s\nl: 0\n\n", via,
             tail, big);
    c = parse_text(text);
    assert_string_equal(c->err.reason, "Header Too Long");
    assert_int_equal(c->err.status, 513);
    assert_true(c->err.can_answer);
    pctx_free(answer_of(c));
    pctx_free(c);
    snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0\n%s%sCSeq: 1 OPTIONS\nSubject: %s\nl: 0\n\n", via,
             tail, big);
    c = parse_text(text);
    assert_true(c->err.can_answer); /* a Subject is not copied */
    pctx_free(c);
    snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0\n%sFrom: <sip:a@example.com>;tag=%s\n"
             "To: <sip:b@example.com>\nCall-ID: x\nCSeq: 1 OPTIONS\nl: 0\n\n", via, big);
    c = parse_text(text);
    assert_string_equal(c->err.reason, "Header Too Long");
    assert_false(c->err.can_answer);
    pctx_free(c);

    /* nothing to send back: no Via, no From/To, no CSeq */
    snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0\n%sCSeq: 1 OPTIONS\nl: 0\n\n", tail);
    c = parse_text(text);
    assert_false(c->err.can_answer);
    pctx_free(c);
    snprintf(text, sizeof(text), "OPTIONS sip:b@example.com SIP/2.0\n%sCall-ID: z\nCSeq: 1 OPTIONS\nl: 0\n\n", via);
    c = parse_text(text);
    assert_false(c->err.can_answer);
    pctx_free(c);
}

/* Contact-only errors surface on demand (RFC 4475 §3.1.2.13 regbadct). */
static void test_contact_errors(void **state)
{
    (void)state;
    static const char *contacts[] = {
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        "<sip:user@example.com>;;,;,,",
        "<sip:user@example.com>;q=2",
        "<sip:user@example.com>;q=0.5555",
        "<sip:user@example.com>;expires=soon",
        "\"unterminated <sip:user@example.com>",
        "<sip:user@example.com",
    };
    for (size_t i = 0; i < sizeof(contacts) / sizeof(contacts[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\n"
                 "Max-Forwards: 70\nFrom: <sip:user@example.com>;tag=998332\nTo: <sip:user@example.com>\n"
                 "Call-ID: regbadct.k345asrl3fdbv@10.0.0.1\nCSeq: 1 REGISTER\nContact: %s\nl: 0\n\n",
                 contacts[i]);
        struct pctx *c = parse_text(text);
        assert_parse_ok(c);
        struct sip_contact *ct;
        bool star;
        if (sip_msg_contacts(&c->m, &c->arena, &ct, &star) == 0) fail_msg("contact \"%s\" accepted", contacts[i]);
        pctx_free(c);
    }
}

/* Control characters and a bare CR are refused anywhere in the header. */
static void test_control_characters(void **state)
{
    (void)state;
    static const char base[] = "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
                               "From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: ctl\r\n"
                               "CSeq: 1 OPTIONS\r\nX-Y: value\r\n\r\n";
    struct pctx *c = parse_raw(base, sizeof(base) - 1);
    assert_parse_ok(c);
    pctx_free(c);
    const char *pos = strstr(base, "value") + 2;
    const char bytes[] = {'\0', '\r', '\x01', '\x7f', '\x1b'};
    for (size_t i = 0; i < sizeof(bytes); i++) {
        char buf[sizeof(base)];
        memcpy(buf, base, sizeof(base));
        buf[pos - base] = bytes[i];
        c = parse_raw(buf, sizeof(base) - 1);
        assert_int_equal(c->rc, -1);
        assert_string_equal(c->err.reason, "Bad Character");
        pctx_free(c);
    }
    /* a tab inside a value is white space */
    char buf[sizeof(base)];
    memcpy(buf, base, sizeof(base));
    buf[pos - base] = '\t';
    c = parse_raw(buf, sizeof(base) - 1);
    assert_parse_ok(c);
    pctx_free(c);
    /* tabs as the only separators in structured values, and in a reason phrase */
    static const char tabs[] = "SIP/2.0 480 Temporarily\tUnavailable\r\n"
                               "Via:\tSIP/2.0/UDP\th.example.com\t;\tbranch=z9hG4bK1\r\n"
                               "From:\t<sip:b@example.com>\t;tag=1\r\nTo:\t<sip:a@example.com>\r\n"
                               "Call-ID:\ttab\r\nCSeq:\t1\tOPTIONS\r\n\r\n";
    c = parse_raw(tabs, sizeof(tabs) - 1);
    assert_parse_ok(c);
    assert_str(c->m.reason, "Temporarily\tUnavailable");
    assert_str(c->m.via.host, "h.example.com");
    assert_str(c->m.via.branch, "z9hG4bK1");
    assert_int_equal(c->m.cseq.number, 1);
    pctx_free(c);
    /* but not between request-line elements */
    static const char tabline[] = "OPTIONS\tsip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                                  "From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n"
                                  "Call-ID: t\r\nCSeq: 1 OPTIONS\r\n\r\n";
    c = parse_raw(tabline, sizeof(tabline) - 1);
    assert_parse_bad(c, "Bad Request Line");
    pctx_free(c);
}

/* struct sip_parse_limits: message size, header count, line length. */
static void test_limits(void **state)
{
    (void)state;
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    assert_int_equal(lim.max_message_bytes, 65536);
    assert_int_equal(lim.max_headers, 128);
    assert_int_equal(lim.max_line_bytes, 8192);
    static const char msg[] = "OPTIONS sip:a@example.com SIP/2.0\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\n"
                              "From: <sip:b@example.com>;tag=1\nTo: <sip:a@example.com>\nCall-ID: lim\n"
                              "CSeq: 1 OPTIONS\nX-1: a\nX-2: b\nX-3: c\nContent-Length: 0\n\n";
    lim.max_message_bytes = 100;
    struct pctx *c = parse_text_lim(msg, &lim);
    assert_parse_bad(c, "Message Too Large");
    assert_int_equal(c->err.status, 513);
    assert_true(c->err.can_answer);
    pctx_free(c);
    sip_parse_limits_default(&lim);
    lim.max_headers = 8;
    c = parse_text_lim(msg, &lim);
    assert_parse_bad(c, "Too Many Headers");
    assert_int_equal(c->err.status, 513);
    pctx_free(c);
    lim.max_headers = 10;
    c = parse_text_lim(msg, &lim);
    assert_parse_ok(c);
    assert_int_equal(c->m.header_count, 9);
    pctx_free(c);
    sip_parse_limits_default(&lim);
    lim.max_line_bytes = 40;
    c = parse_text_lim(msg, &lim);
    assert_parse_bad(c, "Header Too Long");
    pctx_free(c);
    lim.max_line_bytes = 30;
    c = parse_text_lim(msg, &lim);
    assert_parse_bad(c, "Request-URI Too Long");
    assert_int_equal(c->err.status, 414);
    pctx_free(c);
    /* many headers beyond the first arena block grow the array */
    char *big = malloc(20000);
    int n = sprintf(big, "OPTIONS sip:a@example.com SIP/2.0\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\n"
                         "From: <sip:b@example.com>;tag=1\nTo: <sip:a@example.com>\nCall-ID: lim\nCSeq: 1 OPTIONS\n");
    for (int i = 0; i < 120; i++) n += sprintf(big + n, "X-H%d: %d\n", i, i);
    sprintf(big + n, "\n");
    c = parse_text(big);
    assert_parse_ok(c);
    assert_int_equal(c->m.header_count, 125);
    assert_str(c->m.headers[124].name, "X-H119");
    pctx_free(c);
    n += sprintf(big + n, "X-More: 1\nX-More: 2\nX-More: 3\nX-More: 4\n\n");
    c = parse_text(big);
    assert_parse_bad(c, "Too Many Headers");
    pctx_free(c);
    free(big);
}

static void test_empty_and_garbage(void **state)
{
    (void)state;
    struct pctx *c = parse_raw("", 0);
    assert_parse_bad(c, "Empty Message");
    pctx_free(c);
    c = parse_raw("\r\n\r\n", 4);
    assert_parse_bad(c, "Empty Message");
    pctx_free(c);
    c = parse_raw("OPTIONS", 7);
    assert_int_equal(c->rc, -1);
    pctx_free(c);
    c = parse_raw("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
    assert_int_equal(c->rc, -1);
    pctx_free(c);
    c = parse_raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    assert_parse_bad(c, "Bad Request Line");
    pctx_free(c);
    struct sip_msg m;
    struct sip_parse_error err;
    assert_int_equal(sip_parse(NULL, 0, NULL, NULL, &m, &err), -1);
}

static void test_methods_and_reasons(void **state)
{
    (void)state;
    for (int m = SIP_INVITE; m < SIP_METHOD_COUNT; m++)
        assert_int_equal(sip_method_from_str(str_from_cstr(sip_method_name((enum sip_method)m))), m);
    assert_int_equal(sip_method_from_str(STR_LIT("invite")), SIP_METHOD_UNKNOWN);
    assert_int_equal(sip_method_from_str(STR_LIT("")), SIP_METHOD_UNKNOWN);
    assert_string_equal(sip_reason_phrase(200), "OK");
    assert_string_equal(sip_reason_phrase(100), "Trying");
    assert_string_equal(sip_reason_phrase(423), "Interval Too Brief");
    assert_string_equal(sip_reason_phrase(429), "Provide Referrer Identity");
    assert_string_equal(sip_reason_phrase(489), "Bad Event");
    assert_string_equal(sip_reason_phrase(494), "Security Agreement Required");
    assert_string_equal(sip_reason_phrase(481), "Call/Transaction Does Not Exist");
    assert_string_equal(sip_reason_phrase(513), "Message Too Large");
    assert_string_equal(sip_reason_phrase(606), "Not Acceptable");
    assert_string_equal(sip_reason_phrase(608), "Rejected");
    assert_string_equal(sip_reason_phrase(299), "Success");
    assert_string_equal(sip_reason_phrase(-1), "");
    /* every RFC 3261 §21 code has a phrase */
    static const int rfc3261[] = {100, 180, 181, 182, 183, 200, 300, 301, 302, 305, 380, 400, 401, 402, 403,
                                  404, 405, 406, 407, 408, 410, 413, 414, 415, 416, 420, 421, 423, 480, 481,
                                  482, 483, 484, 485, 486, 487, 488, 491, 493, 500, 501, 502, 503, 504, 505,
                                  513, 600, 603, 604, 606};
    for (size_t i = 0; i < sizeof(rfc3261) / sizeof(rfc3261[0]); i++)
        assert_true(sip_reason_phrase(rfc3261[i])[0] != '\0');
}

/* Issue 9: the proxy sent "SIP/2.0 478 " (no phrase). Every code 100..699
 * has a non-empty phrase: its own when registered (and 478, which the proxy
 * sends as Kamailio does), else its class's name (RFC 3261 §7.2). */
static void test_reason_phrase_every_code(void **state)
{
    (void)state;
    static const char *const classes[] = {"Provisional", "Success", "Redirection", "Client Error", "Server Error",
                                          "Global Failure"};
    int known = 0;
    for (int code = 100; code <= 699; code++) {
        const char *p = sip_reason_phrase(code);
        assert_non_null(p);
        assert_true(p[0] != '\0');
        if (sip_reason_phrase_known(code)) {
            known++;
            assert_string_not_equal(p, classes[code / 100 - 1]);
        } else {
            assert_string_equal(p, classes[code / 100 - 1]);
        }
        /* a phrase is TEXT-UTF8 without CR/LF (RFC 3261 §25.1) */
        assert_null(strpbrk(p, "\r\n"));
    }
    assert_true(known >= 70);
    /* the codes cascade sends (grep txn_respond/proxy_reply/reply sites) */
    static const int sent[] = {100, 180, 183, 200, 202, 302, 400, 401, 403, 404, 405, 407, 408, 413, 414,
                               415, 416, 420, 423, 480, 481, 482, 483, 486, 487, 488, 489, 491, 500, 501,
                               503, 504, 505, 513, 478};
    for (size_t i = 0; i < sizeof(sent) / sizeof(sent[0]); i++) assert_true(sip_reason_phrase_known(sent[i]));
    assert_string_equal(sip_reason_phrase(478), "Unresolvable Destination");
    assert_string_equal(sip_reason_phrase(499), "Client Error");
    assert_string_equal(sip_reason_phrase(599), "Server Error");
    assert_string_equal(sip_reason_phrase(700), "");
    assert_string_equal(sip_reason_phrase(99), "");
    /* and the builder uses it: no empty phrase goes out */
    struct pctx *c = parse_text("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKrp\nFrom: <sip:a@b>;tag=1\n"
                                "To: <sip:a@b>\nCall-ID: rp\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n");
    assert_parse_ok(c);
    sbuf_t out;
    sbuf_init(&out);
    assert_int_equal(sip_build_response(&c->m, 478, NULL, STR_LIT("t"), NULL, 0, STR_NULL, STR_NULL, &out), 0);
    assert_true(out.len > 40 && memcmp(out.data, "SIP/2.0 478 Unresolvable Destination\r\n", 38) == 0);
    sbuf_clear(&out);
    assert_int_equal(sip_build_response(&c->m, 477, "", STR_LIT("t"), NULL, 0, STR_NULL, STR_NULL, &out), 0);
    assert_true(memcmp(out.data, "SIP/2.0 477 Client Error\r\n", 26) == 0);
    sbuf_free(&out);
    pctx_free(c);
}

/* ---- stream framing ---------------------------------------------------- */

static void test_frame_length(void **state)
{
    (void)state;
    size_t len, skip;
    char *msg = msg_make("INVITE sip:a@example.com SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\n"
                         "Content-Length: #CL#\n\nhello",
                         &len);
    /* complete, and every prefix asks for more */
    assert_int_equal(sip_frame_length(msg, len, 65536, &skip), (long)len);
    assert_int_equal(skip, 0);
    for (size_t i = 1; i < len; i++) assert_int_equal(sip_frame_length(msg, i, 65536, &skip), 0);
    /* keep-alive CRLFs first, then two messages back to back */
    char *two = malloc(2 * len + 8);
    memcpy(two, "\r\n\r\n", 4);
    memcpy(two + 4, msg, len);
    memcpy(two + 4 + len, msg, len);
    assert_int_equal(sip_frame_length(two, 2 * len + 4, 65536, &skip), (long)len);
    assert_int_equal(skip, 4);
    assert_int_equal(sip_frame_length(two, 4, 65536, &skip), 0);
    assert_int_equal(skip, 4);
    free(two);
    /* over the limit */
    assert_int_equal(sip_frame_length(msg, len, 20, &skip), -1);
    free(msg);
    /* compact l, LF-only */
    static const char lf[] = "SIP/2.0 200 OK\nl: 3\nVia: SIP/2.0/TCP h\n\nabc";
    assert_int_equal(sip_frame_length(lf, sizeof(lf) - 1, 65536, &skip), (long)sizeof(lf) - 1);
    /* Content-Length is required on streams */
    static const char nocl[] = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n";
    assert_int_equal(sip_frame_length(nocl, sizeof(nocl) - 1, 65536, &skip), -1);
    static const char badcl[] = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n";
    assert_int_equal(sip_frame_length(badcl, sizeof(badcl) - 1, 65536, &skip), -1);
    static const char twocl[] = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
    assert_int_equal(sip_frame_length(twocl, sizeof(twocl) - 1, 65536, &skip), -1);
    static const char samecl[] = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 2\r\nl:2\r\n\r\nab";
    assert_int_equal(sip_frame_length(samecl, sizeof(samecl) - 1, 65536, &skip), (long)sizeof(samecl) - 1);
    /* garbage is detected from its first bytes */
    assert_int_equal(sip_frame_length("\x16\x03\x01", 3, 65536, &skip), -1);
    assert_int_equal(sip_frame_length("GET /", 5, 65536, &skip), 0); /* could still be an extension method */
    assert_int_equal(sip_frame_length("<xml>", 5, 65536, &skip), -1);
    assert_int_equal(sip_frame_length(" INVITE", 7, 65536, &skip), -1);
    /* a header block that never ends */
    char *junk = malloc(70000);
    memcpy(junk, "OPTIONS ", 8);
    memset(junk + 8, 'a', 70000 - 8);
    assert_int_equal(sip_frame_length(junk, 70000, 65536, &skip), -1);
    assert_int_equal(sip_frame_length(junk, 1000, 65536, &skip), 0);
    free(junk);
    /* a 64-byte token without a space is not a method */
    char tok[80];
    memset(tok, 'A', sizeof(tok));
    assert_int_equal(sip_frame_length(tok, sizeof(tok), 65536, &skip), -1);
}

/* Inputs that end inside a construct (quotes, brackets, escapes). */
#define RAW(s) {s, sizeof(s) - 1}
static void test_truncated_constructs(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        RAW("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP [\r\n\r\n"),
        RAW("INVITE sip:a@b SIP/2.0\r\nFrom: \"\\\r\n\r\n"),
        RAW("INVITE sip:a@b SIP/2.0\r\nTo: <\r\n\r\n"),
        RAW("INVITE sip:a@b%2 SIP/2.0\r\n\r\n"),
        RAW("INVITE sip:a@b SIP/2.0\r\nCSeq: 1 \r\n\r\n"),
        RAW("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=\"x\r\n\r\n"),
        RAW("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h (unclosed\r\n\r\n"),
        RAW("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h:\r\n\r\n"),
        RAW("INVITE sip: SIP/2.0\r\n\r\n"),
        RAW("INVITE sip:@h SIP/2.0\r\n\r\n"),
        RAW("SIP/2.0 20"),
        RAW("SIP/2.0 200"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pctx *c = parse_raw(cases[i].bytes, cases[i].len);
        assert_int_equal(c->rc, -1);
        pctx_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tortuous_invite),
        cmocka_unit_test(test_wide_range),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_percent_not_escape),
        cmocka_unit_test(test_no_lws_display),
        cmocka_unit_test(test_long_values),
        cmocka_unit_test(test_extra_datagram_bytes),
        cmocka_unit_test(test_semicolon_user),
        cmocka_unit_test(test_transports),
        cmocka_unit_test(test_multipart_body),
        cmocka_unit_test(test_reason_phrases),
        cmocka_unit_test(test_compact_forms),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_unknown_schemes),
        cmocka_unit_test(test_lf_only_and_leading_crlf),
        cmocka_unit_test(test_rfc2543_compat),
        cmocka_unit_test(test_zero_max_forwards_and_expires),
        cmocka_unit_test(test_contact_params),
        cmocka_unit_test(test_invalid_messages),
        cmocka_unit_test(test_contact_errors),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_empty_and_garbage),
        cmocka_unit_test(test_methods_and_reasons),
        cmocka_unit_test(test_reason_phrase_every_code),
        cmocka_unit_test(test_refused_but_answered),
        cmocka_unit_test(test_frame_length),
        cmocka_unit_test(test_truncated_constructs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
