/* test_uri.c — URI parsing (RFC 3261 §19.1.1, §25.1), escapes, parameter
 * access, and the comparison rules of RFC 3261 §19.1.4 with its examples. */
#include "sip_testutil.h"
#include "sip/local.h"
#include "sip/proto.h"

static struct sip_uri parse_ok(const char *s)
{
    struct sip_uri u;
    if (sip_uri_parse(str_from_cstr(s), &u) != 0) fail_msg("URI \"%s\" refused", s);
    return u;
}

static void test_parse_parts(void **state)
{
    (void)state;
    struct sip_uri u = parse_ok("sip:alice:secretword@atlanta.com;transport=tcp");
    assert_int_equal(u.scheme, SIP_SCHEME_SIP);
    assert_str(u.scheme_name, "sip");
    assert_str(u.user, "alice");
    assert_str(u.password, "secretword");
    assert_str(u.host, "atlanta.com");
    assert_int_equal(u.port, 0);
    assert_str(u.params, "transport=tcp");
    assert_str(u.transport, "tcp");
    assert_int_equal(u.headers.len, 0);

    u = parse_ok("sips:alice@atlanta.com?subject=project%20x&priority=urgent");
    assert_int_equal(u.scheme, SIP_SCHEME_SIPS);
    assert_str(u.headers, "subject=project%20x&priority=urgent");

    u = parse_ok("sip:+1-212-555-1212:1234@gateway.com;user=phone");
    assert_str(u.user, "+1-212-555-1212");
    assert_str(u.password, "1234");
    assert_str(u.user_param, "phone");

    u = parse_ok("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com");
    assert_int_equal(u.user.len, 0);
    assert_str(u.host, "atlanta.com");
    assert_str(u.method_param, "REGISTER");
    assert_str(u.headers, "to=alice%40atlanta.com");

    u = parse_ok("SIP:alice;day=tuesday@atlanta.com");
    assert_int_equal(u.scheme, SIP_SCHEME_SIP);
    assert_str(u.user, "alice;day=tuesday");
    assert_str(u.host, "atlanta.com");

    u = parse_ok("sip:proxy.example.com:5070;lr;maddr=239.255.255.1;ttl=15");
    assert_int_equal(u.port, 5070);
    assert_true(u.lr);
    assert_str(u.maddr, "239.255.255.1");
    assert_str(u.ttl, "15");

    u = parse_ok("sip:user@[2001:db8::1]:5061;transport=tls");
    assert_true(u.host_is_ipv6);
    assert_str(u.host, "[2001:db8::1]");
    assert_int_equal(u.port, 5061);

    u = parse_ok("sip:[::ffff:192.0.2.1]");
    assert_true(u.host_is_ipv6);

    u = parse_ok("sip:34020000001320000001@3402000000");
    assert_str(u.user, "34020000001320000001");
    assert_str(u.host, "3402000000");

    u = parse_ok("sip:user:@host.example.com"); /* empty password is allowed */
    assert_str(u.password, "");

    u = parse_ok("tel:+358-555-1234567;postd=pp22");
    assert_int_equal(u.scheme, SIP_SCHEME_TEL);
    assert_str(u.user, "+358-555-1234567");
    assert_str(u.params, "postd=pp22");

    u = parse_ok("urn:service:sos");
    assert_int_equal(u.scheme, SIP_SCHEME_OTHER);
    assert_str(u.scheme_name, "urn");
    assert_str(u.raw, "urn:service:sos");
}

static void test_parse_refusals(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "sip:",
        "sip:@example.com",
        "sip:user@",
        "sip:user@exa mple.com",
        "sip:user@example.com:",
        "sip:user@example.com:65536",
        "sip:user@example.com:123456",
        "sip:user@example.com:5x",
        "sip:user@[2001:db8::1",
        "sip:user@[not-v6]",
        "sip:user@[]",
        "sip:user@.example.com",
        "sip:user@example..com",
        "sip:user@example.com;",
        "sip:user@example.com;=x",
        "sip:user@example.com;a=",
        "sip:user@example.com?",
        "sip:us%2ger@example.com",
        "sip:user%4@example.com",
        "sip:user@example.com;a=<b>",
        "sip:user@example.com?a=b c",
        "<sip:user@example.com>",
        "1sip:user@example.com",
        "sip user@example.com",
        "tel:",
        "tel:;x=1",
        "tel:+1 212",
        "http://example.com/a b",
        "http:",
        "sip:u\"ser@example.com",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sip_uri u;
        if (sip_uri_parse(str_from_cstr(bad[i]), &u) == 0) fail_msg("URI \"%s\" accepted", bad[i]);
    }
    struct sip_uri u;
    assert_int_equal(sip_uri_parse(STR_NULL, &u), -1);
}

static void test_unescape(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(sip_unescape(STR_LIT("%61lice"), buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "alice", 5);
    assert_int_equal(sip_unescape(STR_LIT("a%00b"), buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "a\0b", 3);
    assert_int_equal(sip_unescape(STR_LIT("%4A%4a"), buf, sizeof(buf)), 2);
    assert_memory_equal(buf, "JJ", 2);
    assert_int_equal(sip_unescape(STR_LIT(""), buf, sizeof(buf)), 0);
    assert_int_equal(sip_unescape(STR_LIT("%"), buf, sizeof(buf)), -1);
    assert_int_equal(sip_unescape(STR_LIT("ab%4"), buf, sizeof(buf)), -1);
    assert_int_equal(sip_unescape(STR_LIT("%zz"), buf, sizeof(buf)), -1);
    assert_int_equal(sip_unescape(STR_LIT("abcdef"), buf, 3), -1);
    assert_int_equal(sip_unescape(STR_LIT("abc"), buf, 3), 3);
}

static void test_params(void **state)
{
    (void)state;
    str_t params = STR_LIT("transport=TCP ; lr ;Name = \"quoted;value\";empty=;x=1");
    str_t v;
    assert_true(sip_param_get(params, "transport", &v));
    assert_str(v, "TCP");
    assert_true(sip_param_get(params, "LR", &v));
    assert_int_equal(v.len, 0);
    assert_true(sip_param_get(params, "name", &v));
    assert_str(v, "quoted;value");
    assert_true(sip_param_get(params, "empty", &v));
    assert_int_equal(v.len, 0);
    assert_true(sip_param_get(params, "x", &v));
    assert_str(v, "1");
    assert_false(sip_param_get(params, "missing", &v));
    assert_false(sip_param_get(params, "trans", &v));
    /* iteration yields them in order and tells flags from values */
    str_t cur = params, n;
    bool hv;
    assert_true(sip_param_next(&cur, &n, &v, &hv));
    assert_str(n, "transport");
    assert_true(hv);
    assert_true(sip_param_next(&cur, &n, &v, &hv));
    assert_str(n, "lr");
    assert_false(hv);
    int count = 2;
    while (sip_param_next(&cur, &n, &v, &hv)) count++;
    assert_int_equal(count, 5);
    /* degenerate lists do not loop */
    cur = STR_LIT(";;; ;");
    assert_false(sip_param_next(&cur, &n, &v, &hv));
    cur = STR_LIT("a=\"unterminated");
    assert_true(sip_param_next(&cur, &n, &v, &hv));
    assert_false(sip_param_next(&cur, &n, &v, &hv));
}

static bool eq(const char *a, const char *b)
{
    struct sip_uri ua = parse_ok(a), ub = parse_ok(b);
    bool r1 = sip_uri_equal(&ua, &ub), r2 = sip_uri_equal(&ub, &ua);
    if (r1 != r2) fail_msg("comparison of \"%s\" and \"%s\" is not symmetric", a, b);
    return r1;
}

/* RFC 3261 §19.1.4: the examples of equivalent URIs... */
static void test_equal_examples(void **state)
{
    (void)state;
    assert_true(eq("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"));
    assert_true(eq("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"));
    assert_true(eq("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"));
    assert_true(eq("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"));
    assert_true(eq("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                   "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"));
    assert_true(eq("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                   "sip:alice@atlanta.com?priority=urgent&subject=project%20x"));
}

/* ...and of non-equivalent ones. */
static void test_not_equal_examples(void **state)
{
    (void)state;
    /* different usernames (case matters in the user part) */
    assert_false(eq("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"));
    /* an explicit port differs from none */
    assert_false(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
    /* an explicit transport differs from none */
    assert_false(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"));
    assert_false(eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"));
    /* a header component */
    assert_false(eq("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"));
    /* a name is not the address it resolves to */
    assert_false(eq("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
}

static void test_equal_rules(void **state)
{
    (void)state;
    /* scheme */
    assert_false(eq("sip:a@example.com", "sips:a@example.com"));
    /* password is case-sensitive, host is not */
    assert_false(eq("sip:a:pw@example.com", "sip:a:PW@example.com"));
    assert_true(eq("sip:a:pw@EXAMPLE.com", "sip:a:p%77@example.COM"));
    /* the five strict parameters */
    assert_false(eq("sip:a@example.com;user=phone", "sip:a@example.com"));
    assert_false(eq("sip:a@example.com;ttl=1", "sip:a@example.com"));
    assert_false(eq("sip:a@example.com;method=INVITE", "sip:a@example.com"));
    assert_false(eq("sip:a@example.com;maddr=239.1.1.1", "sip:a@example.com"));
    assert_false(eq("sip:a@example.com;maddr=239.1.1.1", "sip:a@example.com;maddr=239.1.1.2"));
    /* other parameters only when in both; lr is one of them */
    assert_true(eq("sip:a@example.com;lr", "sip:a@example.com"));
    assert_false(eq("sip:a@example.com;foo=1", "sip:a@example.com;foo=2"));
    assert_true(eq("sip:a@example.com;foo=ABC", "sip:a@example.com;FOO=abc"));
    /* escaped reserved characters differ from the literal ones */
    assert_false(eq("sip:alice;day=tuesday@atlanta.com", "sip:alice%3Bday%3Dtuesday@atlanta.com"));
    assert_true(eq("sip:alice%3bday@atlanta.com", "sip:alice%3Bday@atlanta.com"));
    /* escaped unreserved characters equal the literal ones */
    assert_true(eq("sip:%41lice@atlanta.com", "sip:Alice@atlanta.com"));
    /* headers: all must match in both directions */
    assert_false(eq("sip:a@b.com?x=1&y=2", "sip:a@b.com?x=1"));
    assert_true(eq("sip:a@b.com?X=1", "sip:a@b.com?x=1"));
    /* IPv6 references compare as addresses */
    assert_true(eq("sip:a@[2001:db8::1]", "sip:a@[2001:DB8:0:0:0:0:0:1]"));
    assert_false(eq("sip:a@[2001:db8::1]", "sip:a@[2001:db8::2]"));
    /* tel: numbers */
    assert_true(eq("tel:+1-201-555-0123", "tel:+1-201-555-0123"));
    assert_false(eq("tel:+1-201-555-0123", "tel:+1-201-555-0124"));
    /* other schemes: same text */
    assert_true(eq("urn:service:sos", "URN:service:sos"));
    assert_false(eq("urn:service:sos", "urn:service:police"));
}

/* Found by fuzz_sip: a NUL byte passed the separator check of params, and
 * duplicate parameters made a URI unequal to itself. */
static void test_fuzz_regressions(void **state)
{
    (void)state;
    static const char nul_param[] = "sip:h.example.com;l\0\0=\0";
    struct sip_uri u;
    assert_int_equal(sip_uri_parse((str_t){nul_param, sizeof(nul_param) - 1}, &u), -1);
    static const char nul_hdr[] = "sip:h.example.com?a=\0";
    assert_int_equal(sip_uri_parse((str_t){nul_hdr, sizeof(nul_hdr) - 1}, &u), -1);
    assert_true(eq("sip:a@b.example.com;x=1;x=2", "sip:a@b.example.com;x=1;x=2"));
    assert_true(eq("sip:a@b.example.com;x=1;x=2", "sip:a@b.example.com;x=2;x=1"));
    assert_false(eq("sip:a@b.example.com;x=1;x=2", "sip:a@b.example.com;x=1"));
    assert_true(eq("sip:a@b.example.com;transport=tcp;transport=udp", "sip:a@b.example.com;transport=udp;transport=tcp"));
}

/* RFC 3261 §25.1: an IPv6 literal goes into a header in brackets; names,
 * IPv4 and already bracketed literals as they are; truncation is safe. */
static void test_host_for_header(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sip_host_for_header("::1", out, sizeof(out)), 5);
    assert_string_equal(out, "[::1]");
    sip_host_for_header("2001:db8::5", out, sizeof(out));
    assert_string_equal(out, "[2001:db8::5]");
    sip_host_for_header("[::1]", out, sizeof(out));
    assert_string_equal(out, "[::1]");
    sip_host_for_header("192.0.2.1", out, sizeof(out));
    assert_string_equal(out, "192.0.2.1");
    sip_host_for_header("sip.example.com", out, sizeof(out));
    assert_string_equal(out, "sip.example.com");
    assert_int_equal(sip_host_for_header("2001:db8::5", out, 4), 3);
    assert_string_equal(out, "[20");
}

/* RFC 3261 §19.1.2, RFC 5630 §3, RFC 7118 §5.2: the transport a URI asks
 * for; sips never means UDP, TCP or plain WS. */
static void test_uri_transport(void **state)
{
    (void)state;
    static const struct { const char *uri; int proto; } cases[] = {
        {"sip:a@h", SIP_TRANSPORT_UDP},
        {"sip:a@h;transport=TCP", SIP_TRANSPORT_TCP},
        {"sip:a@h;transport=tls", SIP_TRANSPORT_TLS},
        {"sip:a@h;transport=ws", SIP_TRANSPORT_WS},
        {"sip:a@h;transport=wss", SIP_TRANSPORT_WSS},
        {"sips:a@h", SIP_TRANSPORT_TLS},
        {"sips:a@h;transport=tcp", SIP_TRANSPORT_TLS},
        {"sips:a@h;transport=ws", SIP_TRANSPORT_WSS},
        {"sips:a@h;transport=udp", -1},
        {"sip:a@h;transport=sctp", -1},
        {"tel:+15551234", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sip_uri u;
        assert_int_equal(sip_uri_parse(str_from_cstr(cases[i].uri), &u), 0);
        if (sip_uri_transport(&u) != cases[i].proto) fail_msg("%s", cases[i].uri);
    }
    assert_int_equal(sip_transport_default_port(SIP_TRANSPORT_TLS), 5061);
    assert_int_equal(sip_transport_default_port(SIP_TRANSPORT_UDP), 5060);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_parts),     cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_unescape),        cmocka_unit_test(test_params),
        cmocka_unit_test(test_equal_examples),  cmocka_unit_test(test_not_equal_examples),
        cmocka_unit_test(test_equal_rules),     cmocka_unit_test(test_fuzz_regressions),
        cmocka_unit_test(test_host_for_header), cmocka_unit_test(test_uri_transport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
