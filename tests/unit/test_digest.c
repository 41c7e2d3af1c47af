/* test_digest.c — Digest authentication (src/auth): the RFC 2617 and RFC 7616
 * vectors, server challenge -> client answer -> server verify round trips,
 * each refusal (wrong password, tampered nonce, stale, replay, downgrade),
 * the replay table under eviction, and malformed headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include "auth/digest.h"
#include "auth/digest_internal.h"
#include "transport/transport.h"

static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";

static struct auth_server *server(unsigned algs, uint32_t ttl, uint32_t legacy_ttl, const char *opaque,
                                  uint32_t entries)
{
    struct auth_server_config cfg = {
        .nonce_ttl_s = ttl,
        .legacy_nonce_ttl_s = legacy_ttl,
        .secret = secret,
        .secret_len = sizeof secret,
        .algorithms = algs,
        .opaque = opaque,
        .replay_entries = entries,
    };
    struct auth_server *srv = auth_server_new(&cfg);
    assert_non_null(srv);
    return srv;
}

static str_t S(const char *c) { return str_from_cstr(c); }

static void assert_str(str_t got, const char *want)
{
    if (!str_eq_cstr(got, want)) fail_msg("got \"%.*s\", want \"%s\"", STR_FMT(got), want);
}

/* Value of name="…" (or name=token) in a header we wrote, into buf. */
static const char *param_of(const char *hdr, const char *name, char *buf, size_t cap)
{
    char key[32];
    snprintf(key, sizeof key, " %s=", name);
    const char *p = strstr(hdr, key);
    if (!p) return NULL;
    p += strlen(key);
    size_t n = 0;
    if (*p == '"') {
        p++;
        while (p[n] && p[n] != '"') n++;
    } else {
        while (p[n] && p[n] != ',') n++;
    }
    if (n >= cap) return NULL;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

/* ---- RFC vectors ----------------------------------------------------- */

static void hex_of(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

/* The nonce MAC's HMAC-SHA256 with precomputed key blocks against RFC 4231
 * (test cases 1 and 6: a short key, and one longer than a block, hashed
 * first), input split in two parts at every offset; and the two-part SHA-256
 * against FIPS 180-2's "abc". */
static void test_hmac_sha256_vectors(void **state)
{
    (void)state;
    uint8_t key1[20], key6[131], out[32];
    char hex[65];
    memset(key1, 0x0b, sizeof key1);
    memset(key6, 0xaa, sizeof key6);
    const char *m1 = "Hi There";
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    struct digest_hmac h1, h6;
    digest_hmac_init(&h1, key1, sizeof key1);
    digest_hmac_init(&h6, key6, sizeof key6);
    for (size_t cut = 0; cut <= strlen(m1); cut++) {
        digest_hmac2(&h1, m1, cut, m1 + cut, strlen(m1) - cut, out);
        hex_of(out, 32, hex);
        assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    }
    for (size_t cut = 0; cut <= strlen(m6); cut += 7) {
        digest_hmac2(&h6, m6, cut, m6 + cut, strlen(m6) - cut, out);
        hex_of(out, 32, hex);
        assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }
    digest_sha256_2("ab", 2, "c", 1, out);
    hex_of(out, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    digest_hmac_clear(&h1);
    digest_hmac_clear(&h6);
}

static void test_rfc2617_example(void **state)
{
    (void)state;
    struct auth_challenge ch;
    sbuf_t out;
    /* RFC 2617 §3.5, as sent (folded). */
    const char *www = "Digest\r\n                 realm=\"testrealm@host.com\",\r\n"
                      "                 qop=\"auth,auth-int\",\r\n"
                      "                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n"
                      "                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    assert_int_equal(auth_parse_challenge(S(www), &ch), 0);
    assert_str(ch.realm, "testrealm@host.com");
    assert_str(ch.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
    assert_str(ch.opaque, "5ccc069c403ebaf9f0171e9517f40e41");
    assert_true(ch.qop);
    assert_false(ch.stale);
    assert_int_equal(ch.algorithm, AUTH_ALG_MD5);

    sbuf_init(&out);
    assert_int_equal(auth_client_answer(&ch, S("Mufasa"), S("Circle Of Life"), S("GET"), S("/dir/index.html"), 1,
                                        S("0a4f113b"), &out),
                     0);
    assert_str(sbuf_str(&out), "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
                               "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", "
                               "response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, "
                               "cnonce=\"0a4f113b\", nc=00000001, qop=auth, "
                               "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"");

    /* The same from the stored HA1. */
    char ha1[65];
    assert_int_equal(auth_ha1(AUTH_ALG_MD5, S("Mufasa"), S("testrealm@host.com"), S("Circle Of Life"), ha1), 0);
    assert_string_equal(ha1, "939e7578ed9e3c518a452acee763bce9");
    sbuf_clear(&out);
    assert_int_equal(auth_client_answer_ha1(&ch, S("Mufasa"), S("939E7578ED9E3C518A452ACEE763BCE9"), S("GET"),
                                            S("/dir/index.html"), 1, S("0a4f113b"), &out),
                     0);
    char buf[80];
    assert_string_equal(param_of(out.data, "response", buf, sizeof buf), "6629fae49393a05397450978507c4ef1");
    sbuf_free(&out);

    /* RFC 2617 §3.5 Authorization as the client sent it. */
    struct auth_credentials c;
    const char *authz = "Digest username=\"Mufasa\",\r\n realm=\"testrealm@host.com\",\r\n"
                        " nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n uri=\"/dir/index.html\",\r\n"
                        " qop=auth,\r\n nc=00000001,\r\n cnonce=\"0a4f113b\",\r\n"
                        " response=\"6629fae49393a05397450978507c4ef1\",\r\n"
                        " opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    assert_int_equal(auth_parse_credentials(S(authz), &c), 0);
    assert_str(c.username, "Mufasa");
    assert_str(c.realm, "testrealm@host.com");
    assert_str(c.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
    assert_str(c.uri, "/dir/index.html");
    assert_str(c.cnonce, "0a4f113b");
    assert_str(c.nc, "00000001");
    assert_str(c.opaque, "5ccc069c403ebaf9f0171e9517f40e41");
    assert_str(c.response, "6629fae49393a05397450978507c4ef1");
    assert_true(c.qop);
    assert_int_equal(c.nc_value, 1);
    assert_int_equal(c.algorithm, AUTH_ALG_MD5);

    /* And the hash chain the verifier uses, on the parsed values. */
    struct digest_hasher h;
    char resp[AUTH_HEX_MAX + 1];
    assert_int_equal(digest_hasher_init(&h), 0);
    assert_int_equal(digest_response(&h, c.algorithm, ha1, c.nonce, c.qop, c.nc, c.cnonce, S("GET"), c.uri, resp), 0);
    assert_string_equal(resp, "6629fae49393a05397450978507c4ef1");
    digest_hasher_free(&h);
}

/* RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256. */
static void rfc7616_case(const char *alg, const char *want_ha1, const char *want_response)
{
    char www[512], buf[80];
    struct auth_challenge ch;
    sbuf_t out;
    snprintf(www, sizeof www,
             "Digest\r\n    realm=\"http-auth@example.org\",\r\n    qop=\"auth, auth-int\",\r\n"
             "    algorithm=%s,\r\n    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
             "    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
             alg);
    assert_int_equal(auth_parse_challenge(S(www), &ch), 0);
    assert_true(ch.qop);

    char ha1[65];
    assert_int_equal(auth_ha1(ch.algorithm, S("Mufasa"), ch.realm, S("Circle of Life"), ha1), 0);
    assert_string_equal(ha1, want_ha1);

    sbuf_init(&out);
    assert_int_equal(auth_client_answer(&ch, S("Mufasa"), S("Circle of Life"), S("GET"), S("/dir/index.html"), 1,
                                        S("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"), &out),
                     0);
    char want[600];
    snprintf(want, sizeof want,
             "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", "
             "nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", uri=\"/dir/index.html\", "
             "response=\"%s\", algorithm=%s, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", "
             "nc=00000001, qop=auth, opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
             want_response, alg);
    assert_str(sbuf_str(&out), want);

    /* Our own answer parses back to the same values. */
    struct auth_credentials c;
    assert_int_equal(auth_parse_credentials(sbuf_str(&out), &c), 0);
    assert_str(c.response, want_response);
    assert_int_equal(c.algorithm, ch.algorithm);
    assert_string_equal(param_of(out.data, "nc", buf, sizeof buf), "00000001");
    sbuf_free(&out);
}

static void test_rfc7616_md5(void **state)
{
    (void)state;
    rfc7616_case("MD5", "3d78807defe7de2157e2b0b6573a855f", "8ca523f5e9506fed4657c9700eebdbec");
}

static void test_rfc7616_sha256(void **state)
{
    (void)state;
    rfc7616_case("SHA-256", "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232",
                 "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

/* RFC 7616 §3.9.1 SHA-256 Authorization exactly as printed in the RFC. */
static void test_rfc7616_parse_authorization(void **state)
{
    (void)state;
    struct auth_credentials c;
    const char *v = "Digest username=\"Mufasa\",\r\n       realm=\"http-auth@example.org\",\r\n"
                    "       uri=\"/dir/index.html\",\r\n       algorithm=SHA-256,\r\n"
                    "       nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
                    "       nc=00000001,\r\n       cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n"
                    "       qop=auth,\r\n"
                    "       response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\",\r\n"
                    "       opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    assert_int_equal(auth_parse_credentials(S(v), &c), 0);
    assert_int_equal(c.algorithm, AUTH_ALG_SHA256);
    assert_str(c.realm, "http-auth@example.org");
    assert_str(c.cnonce, "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ");
    assert_int_equal(c.nc_value, 1);

    struct digest_hasher h;
    char resp[AUTH_HEX_MAX + 1];
    assert_int_equal(digest_hasher_init(&h), 0);
    assert_int_equal(digest_response(&h, c.algorithm, "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232",
                                     c.nonce, c.qop, c.nc, c.cnonce, S("GET"), c.uri, resp),
                     0);
    assert_string_equal(resp, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    digest_hasher_free(&h);
}

/* ---- round trips ----------------------------------------------------- */

struct trip {
    struct auth_server *srv;
    char challenge[512];
    char answer[1024];
    struct auth_credentials creds;
};

/* Challenge at t_issue, answer with password pass (nc), parse the answer. */
static void trip_run(struct trip *t, const char *realm, enum auth_algorithm alg, bool qop, const char *user,
                     const char *pass, uint32_t nc, uint64_t t_issue)
{
    sbuf_t b;
    struct auth_challenge ch;
    sbuf_init(&b);
    assert_int_equal(auth_challenge(t->srv, S(realm), alg, qop, false, t_issue, &b), 0);
    str_copy(t->challenge, sizeof t->challenge, sbuf_str(&b));
    assert_int_equal(auth_parse_challenge(S(t->challenge), &ch), 0); /* ch points into t->challenge */
    sbuf_clear(&b);
    assert_int_equal(auth_client_answer(&ch, S(user), S(pass), S("REGISTER"), S("sip:example.com"), nc, STR_NULL, &b),
                     0);
    str_copy(t->answer, sizeof t->answer, sbuf_str(&b));
    sbuf_free(&b);
    assert_int_equal(auth_parse_credentials(S(t->answer), &t->creds), 0);
}

/* Re-answer the nonce of t->challenge with another nc. */
static void trip_again(struct trip *t, const char *user, const char *pass, uint32_t nc)
{
    sbuf_t b;
    struct auth_challenge ch;
    sbuf_init(&b);
    assert_int_equal(auth_parse_challenge(S(t->challenge), &ch), 0);
    assert_int_equal(auth_client_answer(&ch, S(user), S(pass), S("REGISTER"), S("sip:example.com"), nc, STR_NULL, &b),
                     0);
    str_copy(t->answer, sizeof t->answer, sbuf_str(&b));
    sbuf_free(&b);
    assert_int_equal(auth_parse_credentials(S(t->answer), &t->creds), 0);
}

static enum auth_result trip_verify(struct trip *t, const char *realm, const char *stored_pass, uint64_t now)
{
    char ha1[65];
    assert_int_equal(
        auth_ha1(auth_algorithm_base(t->creds.algorithm), t->creds.username, S(realm), S(stored_pass), ha1), 0);
    return auth_verify(t->srv, &t->creds, S("REGISTER"), S(ha1), now);
}

static void test_challenge_format(void **state)
{
    (void)state;
    struct trip t = {.srv = server(AUTH_OFFER(AUTH_ALG_MD5) | AUTH_OFFER(AUTH_ALG_SHA256), 300, 0, NULL, 0)};
    sbuf_t b;
    char nonce[64], want[256];
    sbuf_init(&b);
    assert_int_equal(auth_challenge(t.srv, S("example.com"), AUTH_ALG_MD5, true, false, 1000, &b), 0);
    assert_non_null(param_of(b.data, "nonce", nonce, sizeof nonce));
    assert_int_equal(strlen(nonce), 40);
    snprintf(want, sizeof want, "Digest realm=\"example.com\", nonce=\"%s\", algorithm=MD5, qop=\"auth\"", nonce);
    assert_string_equal(b.data, want);

    /* Legacy GB28181 form: no qop; stale flag; SHA-256. */
    sbuf_clear(&b);
    assert_int_equal(auth_challenge(t.srv, S("3402000000"), AUTH_ALG_SHA256, false, true, 1000, &b), 0);
    char nonce2[64];
    assert_non_null(param_of(b.data, "nonce", nonce2, sizeof nonce2));
    assert_string_not_equal(nonce, nonce2); /* same second, different salt */
    snprintf(want, sizeof want, "Digest realm=\"3402000000\", nonce=\"%s\", algorithm=SHA-256, stale=true", nonce2);
    assert_string_equal(b.data, want);

    /* Refusals. */
    sbuf_clear(&b);
    assert_int_equal(auth_challenge(t.srv, S("example.com"), AUTH_ALG_MD5_SESS, true, false, 1000, &b), -EINVAL);
    assert_int_equal(auth_challenge(t.srv, S(""), AUTH_ALG_MD5, true, false, 1000, &b), -EINVAL);
    assert_int_equal(auth_challenge(t.srv, S("a\r\nX-Evil: 1"), AUTH_ALG_MD5, true, false, 1000, &b), -EINVAL);
    assert_int_equal(b.len, 0);
    /* A realm with a quote is escaped. */
    assert_int_equal(auth_challenge(t.srv, S("my \"realm\""), AUTH_ALG_MD5, false, false, 1000, &b), 0);
    assert_non_null(strstr(b.data, "realm=\"my \\\"realm\\\"\""));
    struct auth_challenge ch;
    assert_int_equal(auth_parse_challenge(sbuf_str(&b), &ch), 0);
    assert_str(ch.realm, "my \"realm\"");
    assert_false(ch.qop);
    sbuf_free(&b);
    auth_server_free(t.srv);
}

static void test_round_trip_md5(void **state)
{
    (void)state;
    struct trip t = {.srv = server(0, 300, 0, NULL, 0)};
    trip_run(&t, "example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 1000);
    assert_true(t.creds.qop);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1001), AUTH_OK);
    auth_server_free(t.srv);
}

static void test_round_trip_sha256(void **state)
{
    (void)state;
    struct trip t = {.srv = server(AUTH_OFFER(AUTH_ALG_SHA256), 300, 0, NULL, 0)};
    trip_run(&t, "example.com", AUTH_ALG_SHA256, true, "alice", "secret", 1, 1000);
    assert_int_equal(t.creds.algorithm, AUTH_ALG_SHA256);
    assert_int_equal(t.creds.response.len, 64);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_OK);
    assert_int_equal(trip_verify(&t, "example.com", "wrong", 1000), AUTH_BAD_RESPONSE);
    auth_server_free(t.srv);
}

static void test_round_trip_sess(void **state)
{
    (void)state;
    struct trip t = {.srv = server(AUTH_OFFER(AUTH_ALG_MD5_SESS) | AUTH_OFFER(AUTH_ALG_SHA256_SESS), 300, 0, NULL, 0)};
    trip_run(&t, "example.com", AUTH_ALG_MD5_SESS, true, "alice", "secret", 1, 1000);
    assert_int_equal(t.creds.algorithm, AUTH_ALG_MD5_SESS);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_OK);
    trip_run(&t, "example.com", AUTH_ALG_SHA256_SESS, true, "alice", "secret", 1, 1000);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_OK);
    assert_int_equal(trip_verify(&t, "example.com", "secret!", 1000), AUTH_BAD_RESPONSE);
    auth_server_free(t.srv);
}

static void test_wrong_password(void **state)
{
    (void)state;
    struct trip t = {.srv = server(0, 300, 0, NULL, 0)};
    trip_run(&t, "example.com", AUTH_ALG_MD5, true, "alice", "guess", 1, 1000);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_BAD_RESPONSE);
    /* The failed try did not consume nc 1: the right answer still passes. */
    trip_again(&t, "alice", "secret", 1);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_OK);
    /* Wrong method in the digest (answer made for REGISTER, checked as INVITE). */
    trip_again(&t, "alice", "secret", 2);
    char ha1[65];
    assert_int_equal(auth_ha1(AUTH_ALG_MD5, S("alice"), S("example.com"), S("secret"), ha1), 0);
    assert_int_equal(auth_verify(t.srv, &t.creds, S("INVITE"), S(ha1), 1000), AUTH_BAD_RESPONSE);
    auth_server_free(t.srv);
}

static void test_bad_nonce(void **state)
{
    (void)state;
    struct trip t = {.srv = server(0, 300, 0, NULL, 0)};
    trip_run(&t, "example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 1000);

    /* Tampered nonce: one character changed (the response is recomputed by
     * the client over the tampered nonce, so only the MAC can catch it). */
    char *n = strstr(t.challenge, "nonce=\"") + 7;
    n[3] = n[3] == 'A' ? 'B' : 'A';
    trip_again(&t, "alice", "secret", 1);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_BAD_NONCE);

    /* Not one of ours at all. */
    const char *foreign = "Digest username=\"alice\", realm=\"example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\","
                          " uri=\"sip:example.com\", response=\"6629fae49393a05397450978507c4ef1\"";
    assert_int_equal(auth_parse_credentials(S(foreign), &t.creds), 0);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_BAD_NONCE);

    /* Issued for another realm. */
    trip_run(&t, "other.example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 1000);
    t.creds.realm = S("example.com");
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_BAD_NONCE);

    /* Issued by a server with another secret. */
    trip_run(&t, "example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 1000);
    struct auth_server_config cfg = {.algorithms = 0}; /* random secret */
    struct auth_server *other = auth_server_new(&cfg);
    assert_non_null(other);
    char ha1[65];
    assert_int_equal(auth_ha1(AUTH_ALG_MD5, S("alice"), S("example.com"), S("secret"), ha1), 0);
    assert_int_equal(auth_verify(other, &t.creds, S("REGISTER"), S(ha1), 1000), AUTH_BAD_NONCE);
    auth_server_free(other);

    /* Issued in the future (beyond the allowed clock step). */
    trip_run(&t, "example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 2000);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1990), AUTH_BAD_NONCE);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1996), AUTH_OK);
    auth_server_free(t.srv);
}

static void test_algorithm_and_qop_binding(void **state)
{
    (void)state;
    struct trip t = {.srv = server(AUTH_OFFER(AUTH_ALG_MD5) | AUTH_OFFER(AUTH_ALG_SHA256), 300, 0, NULL, 0)};
    struct auth_challenge ch;
    sbuf_t b;
    char ha1[65];

    /* A SHA-256 nonce answered with MD5 (a downgrade by someone in the path). */
    trip_run(&t, "example.com", AUTH_ALG_SHA256, true, "alice", "secret", 1, 1000);
    assert_int_equal(auth_parse_challenge(S(t.challenge), &ch), 0);
    ch.algorithm = AUTH_ALG_MD5;
    sbuf_init(&b);
    assert_int_equal(auth_client_answer(&ch, S("alice"), S("secret"), S("REGISTER"), S("sip:example.com"), 1, STR_NULL,
                                        &b),
                     0);
    assert_int_equal(auth_parse_credentials(sbuf_str(&b), &t.creds), 0);
    assert_int_equal(auth_ha1(AUTH_ALG_MD5, S("alice"), S("example.com"), S("secret"), ha1), 0);
    assert_int_equal(auth_verify(t.srv, &t.creds, S("REGISTER"), S(ha1), 1000), AUTH_BAD_NONCE);

    /* A qop nonce answered without qop (would dodge the nc check). */
    trip_run(&t, "example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 1000);
    assert_int_equal(auth_parse_challenge(S(t.challenge), &ch), 0);
    ch.qop = false;
    sbuf_clear(&b);
    assert_int_equal(auth_client_answer(&ch, S("alice"), S("secret"), S("REGISTER"), S("sip:example.com"), 1, STR_NULL,
                                        &b),
                     0);
    assert_null(strstr(b.data, "qop"));
    assert_int_equal(auth_parse_credentials(sbuf_str(&b), &t.creds), 0);
    assert_int_equal(auth_verify(t.srv, &t.creds, S("REGISTER"), S(ha1), 1000), AUTH_BAD_NONCE);

    /* A no-qop nonce may be answered with qop. */
    trip_run(&t, "example.com", AUTH_ALG_MD5, false, "alice", "secret", 1, 1000);
    assert_int_equal(auth_parse_challenge(S(t.challenge), &ch), 0);
    ch.qop = true;
    sbuf_clear(&b);
    assert_int_equal(auth_client_answer(&ch, S("alice"), S("secret"), S("REGISTER"), S("sip:example.com"), 1, STR_NULL,
                                        &b),
                     0);
    assert_int_equal(auth_parse_credentials(sbuf_str(&b), &t.creds), 0);
    assert_true(t.creds.qop);
    assert_int_equal(auth_verify(t.srv, &t.creds, S("REGISTER"), S(ha1), 1000), AUTH_OK);
    assert_int_equal(auth_verify(t.srv, &t.creds, S("REGISTER"), S(ha1), 1000), AUTH_REPLAY);
    sbuf_free(&b);

    /* HA1 of the wrong algorithm (32 hex for SHA-256) is refused, not compared. */
    trip_run(&t, "example.com", AUTH_ALG_SHA256, true, "alice", "secret", 1, 1000);
    assert_int_equal(auth_verify(t.srv, &t.creds, S("REGISTER"), S(ha1), 1000), AUTH_MALFORMED);
    auth_server_free(t.srv);
}

static void test_stale(void **state)
{
    (void)state;
    struct trip t = {.srv = server(0, 60, 0, NULL, 0)};
    trip_run(&t, "example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 1000);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1060), AUTH_STALE);
    assert_int_equal(trip_verify(&t, "example.com", "wrong", 1060), AUTH_BAD_RESPONSE); /* stale only if right */
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1059), AUTH_OK);
    /* Re-challenge with stale=true and the client's next answer passes. */
    sbuf_t b;
    struct auth_challenge ch;
    sbuf_init(&b);
    assert_int_equal(auth_challenge(t.srv, S("example.com"), AUTH_ALG_MD5, true, true, 1060, &b), 0);
    assert_int_equal(auth_parse_challenge(sbuf_str(&b), &ch), 0);
    assert_true(ch.stale);
    sbuf_free(&b);
    auth_server_free(t.srv);
}

static void test_replay(void **state)
{
    (void)state;
    struct trip t = {.srv = server(0, 300, 0, NULL, 0)};
    trip_run(&t, "example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 1000);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_OK);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1001), AUTH_REPLAY); /* same nc again */
    trip_again(&t, "alice", "secret", 3);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1001), AUTH_OK);
    trip_again(&t, "alice", "secret", 2); /* late but unseen: accepted once */
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1001), AUTH_OK);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1001), AUTH_REPLAY);
    trip_again(&t, "alice", "secret", 40);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1002), AUTH_OK);
    trip_again(&t, "alice", "secret", 5); /* 35 below the highest: outside the window */
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1002), AUTH_REPLAY);
    trip_again(&t, "alice", "secret", 41);
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1002), AUTH_OK);
    /* A replay of an expired nonce is stale, not OK. */
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1300), AUTH_STALE);
    auth_server_free(t.srv);
}

static void test_replay_table_eviction(void **state)
{
    (void)state;
    /* 8 entries: one bucket of 8 ways, so the 9th nonce evicts the oldest. */
    struct trip t[10];
    struct auth_server *srv = server(0, 300, 0, NULL, 8);
    for (int i = 0; i < 10; i++) {
        t[i].srv = srv;
        trip_run(&t[i], "example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 1000 + (uint64_t)i);
    }
    for (int i = 0; i < 8; i++) assert_int_equal(trip_verify(&t[i], "example.com", "secret", 1010), AUTH_OK);
    assert_int_equal(trip_verify(&t[8], "example.com", "secret", 1010), AUTH_OK); /* evicts t[0] */
    trip_again(&t[0], "alice", "secret", 2);
    assert_int_equal(trip_verify(&t[0], "example.com", "secret", 1010), AUTH_STALE); /* not replayable */
    trip_again(&t[0], "alice", "secret", 1);
    assert_int_equal(trip_verify(&t[0], "example.com", "secret", 1010), AUTH_STALE);
    trip_again(&t[1], "alice", "secret", 2); /* still tracked */
    assert_int_equal(trip_verify(&t[1], "example.com", "secret", 1010), AUTH_OK);
    assert_int_equal(trip_verify(&t[1], "example.com", "secret", 1010), AUTH_REPLAY);
    assert_int_equal(trip_verify(&t[9], "example.com", "secret", 1010), AUTH_OK); /* newer than the floor */
    /* Once the entries expire their slots are reused without raising the floor. */
    struct trip late = {.srv = srv};
    trip_run(&late, "example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 1400);
    assert_int_equal(trip_verify(&late, "example.com", "secret", 1400), AUTH_OK);
    auth_server_free(srv);
}

static void test_legacy_no_qop(void **state)
{
    (void)state;
    struct trip t = {.srv = server(0, 300, 60, NULL, 0)};
    trip_run(&t, "3402000000", AUTH_ALG_MD5, false, "34020000001320000001", "12345678", 1, 1000);
    assert_false(t.creds.qop);
    assert_null(strstr(t.answer, "cnonce"));
    assert_null(strstr(t.answer, "nc="));
    assert_int_equal(trip_verify(&t, "3402000000", "12345678", 1000), AUTH_OK);
    /* GB28181 devices re-send the same Authorization: accepted while the nonce lives. */
    assert_int_equal(trip_verify(&t, "3402000000", "12345678", 1030), AUTH_OK);
    assert_int_equal(trip_verify(&t, "3402000000", "12345678", 1059), AUTH_OK);
    /* legacy_nonce_ttl_s (60) applies, not nonce_ttl_s (300). */
    assert_int_equal(trip_verify(&t, "3402000000", "12345678", 1060), AUTH_STALE);
    assert_int_equal(trip_verify(&t, "3402000000", "1234567", 1000), AUTH_BAD_RESPONSE);

    /* A device-style header without algorithm, cnonce, nc, qop. */
    struct auth_challenge ch;
    char nonce[64], hdr[512], ha1[65], resp[AUTH_HEX_MAX + 1];
    assert_int_equal(auth_parse_challenge(S(t.challenge), &ch), 0);
    str_copy(nonce, sizeof nonce, ch.nonce);
    assert_int_equal(auth_ha1(AUTH_ALG_MD5, S("34020000001320000001"), S("3402000000"), S("12345678"), ha1), 0);
    struct digest_hasher h;
    assert_int_equal(digest_hasher_init(&h), 0);
    assert_int_equal(digest_response(&h, AUTH_ALG_MD5, ha1, S(nonce), false, STR_NULL, STR_NULL, S("REGISTER"),
                                     S("sip:34020000002000000001@3402000000"), resp),
                     0);
    digest_hasher_free(&h);
    snprintf(hdr, sizeof hdr,
             "Digest username=\"34020000001320000001\",realm=\"3402000000\",nonce=\"%s\","
             "uri=\"sip:34020000002000000001@3402000000\",response=\"%s\"",
             nonce, resp);
    struct auth_credentials c;
    assert_int_equal(auth_parse_credentials(S(hdr), &c), 0);
    assert_int_equal(c.algorithm, AUTH_ALG_MD5);
    assert_int_equal(auth_verify(t.srv, &c, S("REGISTER"), S(ha1), 1000), AUTH_OK);
    auth_server_free(t.srv);
}

/* ---- issue 9: nonces bound to the source, uses per nonce, failure limits ---- */

static struct sockaddr_storage A(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    assert_int_equal(transport_addr_parse(ip, strlen(ip), port, &ss), 0);
    return ss;
}
#define SA(ss) ((const struct sockaddr *)&(ss))

static struct auth_server *server_limits(uint32_t legacy_ttl, uint32_t max_uses, uint32_t max_failures,
                                         uint32_t max_failures_user, uint32_t lockout)
{
    struct auth_server_config cfg = {
        .nonce_ttl_s = 300,
        .legacy_nonce_ttl_s = legacy_ttl,
        .secret = secret,
        .secret_len = sizeof secret,
        .nonce_max_uses = max_uses,
        .throttle = {.max_failures = max_failures, .max_failures_user = max_failures_user, .window_s = 60,
                     .lockout_s = lockout},
    };
    struct auth_server *srv = auth_server_new(&cfg);
    assert_non_null(srv);
    return srv;
}

/* trip_run with the challenge issued to peer. */
static void trip_run_for(struct trip *t, const struct sockaddr *peer, bool qop, const char *user, const char *pass,
                         uint32_t nc, uint64_t t_issue)
{
    sbuf_t b;
    struct auth_challenge ch;
    sbuf_init(&b);
    assert_int_equal(auth_challenge_for(t->srv, S("example.com"), AUTH_ALG_MD5, qop, false, peer, t_issue, &b), 0);
    str_copy(t->challenge, sizeof t->challenge, sbuf_str(&b));
    assert_int_equal(auth_parse_challenge(S(t->challenge), &ch), 0);
    sbuf_clear(&b);
    assert_int_equal(auth_client_answer(&ch, S(user), S(pass), S("REGISTER"), S("sip:example.com"), nc, STR_NULL, &b),
                     0);
    str_copy(t->answer, sizeof t->answer, sbuf_str(&b));
    sbuf_free(&b);
    assert_int_equal(auth_parse_credentials(S(t->answer), &t->creds), 0);
}

static enum auth_result trip_verify_from(struct trip *t, const char *stored_pass, const struct sockaddr *peer,
                                         uint64_t now, struct auth_verify_info *info)
{
    char ha1[65];
    assert_int_equal(auth_ha1(AUTH_ALG_MD5, t->creds.username, S("example.com"), S(stored_pass), ha1), 0);
    return auth_verify_from(t->srv, &t->creds, S("REGISTER"), S(ha1), peer, now, info);
}

/* A captured answer replayed from another IP gets nowhere (STALE, so a
 * client that really moved retries at once); the port may change (NAT). */
static void test_nonce_bound_to_peer(void **state)
{
    (void)state;
    struct sockaddr_storage a = A("192.0.2.1", 5060), a2 = A("192.0.2.1", 40000), b = A("198.51.100.9", 5060),
                            a6 = A("::ffff:192.0.2.1", 5060), v6 = A("2001:db8::1", 5060);
    struct auth_verify_info info;
    for (int qop = 0; qop <= 1; qop++) {
        struct trip t = {.srv = server_limits(30, 0, 0, 0, 0)};
        trip_run_for(&t, SA(a), qop, "alice", "secret", 1, 1000);
        assert_int_equal(trip_verify_from(&t, "secret", SA(b), 1001, &info), AUTH_STALE);
        assert_true(info.peer_changed);
        assert_int_equal(trip_verify_from(&t, "wrong", SA(b), 1001, &info), AUTH_BAD_RESPONSE);
        assert_int_equal(trip_verify_from(&t, "secret", SA(v6), 1001, &info), AUTH_STALE);
        assert_int_equal(trip_verify_from(&t, "secret", NULL, 1001, &info), AUTH_STALE);
        assert_int_equal(trip_verify_from(&t, "secret", SA(a2), 1001, &info), AUTH_OK); /* other port: fine */
        assert_false(info.peer_changed);
        if (qop) trip_again(&t, "alice", "secret", 2);
        assert_int_equal(trip_verify_from(&t, "secret", SA(a6), 1002, &info), AUTH_OK); /* v4-mapped: same IP */
        auth_server_free(t.srv);
    }
    /* A nonce issued with no peer verifies only without one. */
    struct trip t = {.srv = server_limits(30, 0, 0, 0, 0)};
    trip_run_for(&t, NULL, true, "alice", "secret", 1, 1000);
    assert_int_equal(trip_verify_from(&t, "secret", SA(a), 1001, &info), AUTH_STALE);
    assert_int_equal(trip_verify_from(&t, "secret", NULL, 1001, &info), AUTH_OK);
    auth_server_free(t.srv);
}

/* Without qop: the short legacy lifetime, re-sends marked reused, and a
 * ceiling on answers per nonce; with qop the nc ceiling. */
static void test_nonce_uses(void **state)
{
    (void)state;
    struct sockaddr_storage a = A("192.0.2.1", 5060);
    struct auth_verify_info info;
    struct trip t = {.srv = server_limits(30, 3, 0, 0, 0)};
    trip_run_for(&t, SA(a), false, "dev", "12345678", 1, 1000);
    assert_int_equal(trip_verify_from(&t, "12345678", SA(a), 1000, &info), AUTH_OK);
    assert_int_equal(info.uses, 1);
    assert_false(info.nonce_reused);
    assert_int_equal(trip_verify_from(&t, "12345678", SA(a), 1010, &info), AUTH_OK);
    assert_int_equal(info.uses, 2);
    assert_true(info.nonce_reused); /* may be a replay: the caller must not move the device on it */
    assert_int_equal(trip_verify_from(&t, "12345678", SA(a), 1029, &info), AUTH_OK);
    assert_int_equal(trip_verify_from(&t, "12345678", SA(a), 1029, &info), AUTH_STALE); /* 4th: used up */
    auth_server_free(t.srv);

    t.srv = server_limits(30, 3, 0, 0, 0);
    trip_run_for(&t, SA(a), false, "dev", "12345678", 1, 1000);
    assert_int_equal(trip_verify_from(&t, "12345678", SA(a), 1029, &info), AUTH_OK);
    assert_int_equal(trip_verify_from(&t, "12345678", SA(a), 1030, &info), AUTH_STALE); /* 30 s, not 300 */
    auth_server_free(t.srv);

    /* Wrong answers use a nonce up too: guesses on one nonce are bounded. */
    t.srv = server_limits(30, 3, 0, 0, 0);
    trip_run_for(&t, SA(a), true, "alice", "secret", 1, 1000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(trip_verify_from(&t, "guess", SA(a), 1001, &info), AUTH_BAD_RESPONSE);
    assert_int_equal(trip_verify_from(&t, "secret", SA(a), 1001, &info), AUTH_STALE);
    auth_server_free(t.srv);

    /* qop: nc above nonce_max_uses is stale; below it, each nc once. */
    t.srv = server_limits(30, 3, 0, 0, 0);
    trip_run_for(&t, SA(a), true, "alice", "secret", 3, 1000);
    assert_int_equal(trip_verify_from(&t, "secret", SA(a), 1001, &info), AUTH_OK);
    trip_again(&t, "alice", "secret", 2);
    assert_int_equal(trip_verify_from(&t, "secret", SA(a), 1001, &info), AUTH_OK);
    assert_true(info.nonce_reused);
    trip_again(&t, "alice", "secret", 4);
    assert_int_equal(trip_verify_from(&t, "secret", SA(a), 1001, &info), AUTH_STALE);
    auth_server_free(t.srv);
}

/* Online guessing: after max_failures the source is refused before any
 * digest work, others are not; the lock ends after lockout_s. */
static void test_failure_lockout_source(void **state)
{
    (void)state;
    struct sockaddr_storage a = A("192.0.2.1", 5060), b = A("198.51.100.9", 5060);
    struct auth_verify_info info;
    struct trip t = {.srv = server_limits(30, 0, 3, 0, 10)};
    trip_run_for(&t, SA(a), true, "alice", "secret", 1, 1000);
    assert_int_equal(trip_verify_from(&t, "guess1", SA(a), 1000, &info), AUTH_BAD_RESPONSE);
    assert_true(info.counted);
    assert_true(info.throttle.report); /* first failure of alice from a: reported */
    assert_int_equal(info.throttle.count, 1);
    assert_int_equal(trip_verify_from(&t, "guess2", SA(a), 1000, &info), AUTH_BAD_RESPONSE);
    assert_false(info.throttle.report); /* spaced out */
    assert_int_equal(trip_verify_from(&t, "guess3", SA(a), 1001, &info), AUTH_BAD_RESPONSE);
    assert_true(info.throttle.locked_now);
    assert_int_equal(info.throttle.locked, AUTH_THROTTLE_SOURCE);
    assert_true(info.throttle.report); /* a lockout is always reported */
    assert_int_equal(info.throttle.count, 2);
    /* Now even the right password from a is refused, unchecked. */
    trip_again(&t, "alice", "secret", 2);
    assert_int_equal(trip_verify_from(&t, "secret", SA(a), 1002, &info), AUTH_LOCKED);
    assert_int_equal(info.throttle.retry_after, 9);
    assert_true(info.throttle.report);
    assert_int_equal(trip_verify_from(&t, "secret", SA(a), 1003, &info), AUTH_LOCKED);
    assert_false(info.throttle.report);
    /* Another source with the right password is not affected. */
    struct trip u = {.srv = t.srv};
    trip_run_for(&u, SA(b), true, "alice", "secret", 1, 1003);
    assert_int_equal(trip_verify_from(&u, "secret", SA(b), 1003, &info), AUTH_OK);
    /* Unknown users count the same way and are locked the same way. */
    assert_int_equal(auth_refuse_unknown(t.srv, &t.creds, SA(a), 1004, &info), AUTH_LOCKED);
    /* After the lockout a can register again, with max_failures fresh tries. */
    assert_int_equal(trip_verify_from(&t, "secret", SA(a), 1011, &info), AUTH_OK);
    auth_server_free(t.srv);
}

/* A user attacked from many sources is locked out for everybody. */
static void test_failure_lockout_user(void **state)
{
    (void)state;
    struct auth_verify_info info;
    struct trip t = {.srv = server_limits(30, 0, 100, 4, 60)};
    char ip[32];
    for (int i = 1; i <= 4; i++) {
        snprintf(ip, sizeof ip, "203.0.113.%d", i);
        struct sockaddr_storage s = A(ip, 5060);
        trip_run_for(&t, SA(s), true, "alice", "secret", 1, 1000);
        assert_int_equal(trip_verify_from(&t, "guess", SA(s), 1000, &info), AUTH_BAD_RESPONSE);
    }
    assert_true(info.throttle.locked_now);
    assert_int_equal(info.throttle.locked, AUTH_THROTTLE_USER);
    struct sockaddr_storage s = A("203.0.113.99", 5060);
    trip_run_for(&t, SA(s), true, "alice", "secret", 1, 1001);
    assert_int_equal(trip_verify_from(&t, "secret", SA(s), 1001, &info), AUTH_LOCKED);
    assert_int_equal(info.throttle.locked, AUTH_THROTTLE_USER);
    trip_run_for(&t, SA(s), true, "bob", "secret", 1, 1001);
    assert_int_equal(trip_verify_from(&t, "secret", SA(s), 1001, &info), AUTH_OK);
    auth_server_free(t.srv);
}

/* The failure table is bounded: a flood of new sources cannot push a
 * locked source out of a full bucket (locks are kept over counts). */
static void test_throttle_bounded(void **state)
{
    (void)state;
    struct auth_throttle_config cfg = {.max_failures = 2, .window_s = 60, .lockout_s = 60, .entries = 8};
    struct auth_throttle *t = auth_throttle_new(&cfg);
    assert_non_null(t);
    struct auth_throttle_note n;
    struct sockaddr_storage bad = A("192.0.2.66", 5060);
    auth_throttle_failed(t, SA(bad), S("r"), S("u"), 100, &n);
    auth_throttle_failed(t, SA(bad), S("r"), S("u"), 100, &n);
    assert_true(n.locked_now);
    char ip[32];
    for (int i = 0; i < 500; i++) {
        snprintf(ip, sizeof ip, "10.%d.%d.1", i / 250, i % 250);
        struct sockaddr_storage s = A(ip, 5060);
        auth_throttle_failed(t, SA(s), S("r"), S("x"), 101, &n);
    }
    assert_true(auth_throttle_locked(t, SA(bad), S("r"), S("u"), 102, &n));
    assert_false(auth_throttle_locked(t, SA(bad), S("r"), S("u"), 160, &n)); /* lock over */
    auth_throttle_free(t);
}

static void test_opaque(void **state)
{
    (void)state;
    struct trip t = {.srv = server(0, 300, 0, "cascade-1", 0)};
    trip_run(&t, "example.com", AUTH_ALG_MD5, true, "alice", "secret", 1, 1000);
    assert_non_null(strstr(t.challenge, ", opaque=\"cascade-1\", algorithm=MD5"));
    assert_non_null(strstr(t.answer, "opaque=\"cascade-1\""));
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_OK);
    trip_again(&t, "alice", "secret", 2);
    t.creds.opaque = STR_NULL;
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_BAD_NONCE);
    auth_server_free(t.srv);
}

static void test_escaped_values(void **state)
{
    (void)state;
    /* A user name with a quote and a backslash survives writing and parsing,
     * and the digest is over the unescaped name. */
    struct trip t = {.srv = server(0, 300, 0, NULL, 0)};
    trip_run(&t, "example.com", AUTH_ALG_MD5, true, "al\"i\\ce", "secret", 1, 1000);
    assert_non_null(strstr(t.answer, "username=\"al\\\"i\\\\ce\""));
    assert_str(t.creds.username, "al\"i\\ce");
    assert_int_equal(trip_verify(&t, "example.com", "secret", 1000), AUTH_OK);
    auth_server_free(t.srv);

    struct auth_credentials c;
    assert_int_equal(auth_parse_credentials(S("Digest username=\"a\\bc\", realm=\"r\", nonce=\"n\", uri=\"u\", "
                                              "response=\"0123456789abcdef0123456789ABCDEF\""),
                                            &c),
                     0);
    assert_str(c.username, "abc");
}

static void test_client_refusals(void **state)
{
    (void)state;
    struct auth_challenge ch;
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(auth_parse_challenge(S("Digest realm=\"r\", nonce=\"n\", qop=\"auth\""), &ch), 0);
    assert_int_equal(auth_client_answer(&ch, S("u"), S("p"), S("REGISTER"), S("sip:r"), 0, STR_NULL, &b), -EINVAL);
    assert_int_equal(auth_client_answer(&ch, S(""), S("p"), S("REGISTER"), S("sip:r"), 1, STR_NULL, &b), -EINVAL);
    assert_int_equal(auth_client_answer(&ch, S("u\r\nX: y"), S("p"), S("REGISTER"), S("sip:r"), 1, STR_NULL, &b),
                     -EINVAL);
    assert_int_equal(auth_client_answer_ha1(&ch, S("u"), S("abc"), S("REGISTER"), S("sip:r"), 1, STR_NULL, &b),
                     -EINVAL);
    assert_int_equal(b.len, 0);
    /* Generated cnonce: 32 hex characters. */
    assert_int_equal(auth_client_answer(&ch, S("u"), S("p"), S("REGISTER"), S("sip:r"), 0x1a, STR_NULL, &b), 0);
    char cn[64], nc[16];
    assert_int_equal(strlen(param_of(b.data, "cnonce", cn, sizeof cn)), 32);
    assert_string_equal(param_of(b.data, "nc", nc, sizeof nc), "0000001a");
    sbuf_free(&b);
}

static void test_parse_challenge_variants(void **state)
{
    (void)state;
    struct auth_challenge ch;
    assert_int_equal(auth_parse_challenge(S("digest REALM=r,NONCE=abc,QOP=\"auth-int , auth\",STALE=TRUE,"
                                            "algorithm=sha-256,domain=\"sip:a sip:b\""),
                                          &ch),
                     0);
    assert_str(ch.realm, "r");
    assert_str(ch.nonce, "abc");
    assert_true(ch.qop);
    assert_true(ch.stale);
    assert_int_equal(ch.algorithm, AUTH_ALG_SHA256);
    assert_int_equal(auth_parse_challenge(S("Digest realm=\"r\", nonce=\"n\", stale=FALSE"), &ch), 0);
    assert_false(ch.stale);
    assert_false(ch.qop);
    assert_int_equal(auth_parse_challenge(S("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""), &ch), -ENOTSUP);
    assert_int_equal(auth_parse_challenge(S("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"), &ch), -ENOTSUP);
    assert_int_equal(auth_parse_challenge(S("Basic realm=\"r\""), &ch), -ENOTSUP);
    assert_int_equal(auth_parse_challenge(S("Digest realm=\"r\""), &ch), -EINVAL);
    assert_int_equal(auth_parse_challenge(S("Digest nonce=\"n\""), &ch), -EINVAL);
    assert_int_equal(auth_parse_challenge(S("Digest realm=\"r\", nonce=\"n\", Digest realm=\"s\""), &ch), -EINVAL);
}

/* Every entry must be refused with the given code and never crash. */
static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int rc;
    } cases[] = {
        {"", -EINVAL},
        {"Digest", -EINVAL},
        {"Digest   ", -EINVAL},
        {"Digestusername=\"a\"", -ENOTSUP}, /* one token, not "Digest" */
        {"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", -ENOTSUP},
        /* missing quotes */
        {"Digest username=\"Mufasa, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=/dir/index.html, response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest username=\"a\", realm=test realm, nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef", -EINVAL},
        /* duplicates, in any case */
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\", username=\"b\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", NONCE=\"m\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\", foo=1, Foo=2", -EINVAL},
        /* missing required */
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\"", -EINVAL},
        {"Digest username=\"\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        /* response / nc / qop shape */
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcde\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdeg\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", algorithm=SHA-256, response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=0000001, cnonce=\"c\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=00000000, cnonce=\"c\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=00000001", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\", qop=auth, cnonce=\"c\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\", qop=auth-int, nc=00000001, cnonce=\"c\"", -ENOTSUP},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\", qop=bogus, nc=00000001, cnonce=\"c\"", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5-sess", -EINVAL},
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\", algorithm=SHA-512-256", -ENOTSUP},
        /* syntax */
        {"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\",", -EINVAL},
        {"Digest username=\"a\",, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest username=\"a\" realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest username, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest =\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest username=, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest username=\"a\r\nVia: x\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"", -EINVAL},
        {"Digest username=\"a\\", -EINVAL},
        {"Digest username=\"a\\\r\", realm=\"r\"", -EINVAL},
    };
    struct auth_credentials c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = auth_parse_credentials(S(cases[i].v), &c);
        if (rc != cases[i].rc) fail_msg("case %zu \"%s\": got %d, want %d", i, cases[i].v, rc, cases[i].rc);
        assert_non_null(c.error);
    }

    /* NUL inside a quoted value. */
    static const char nul[] = "Digest username=\"a\0b\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"";
    assert_int_equal(auth_parse_credentials(str_make(nul, sizeof nul - 1), &c), -EINVAL);
    assert_int_equal(auth_parse_credentials(STR_NULL, &c), -EINVAL);

    /* Huge values: a 100 kB user name, and a header just over the limit. */
    size_t big = 100000;
    char *v = malloc(big + 200);
    assert_non_null(v);
    int n = snprintf(v, 200, "Digest username=\"");
    memset(v + n, 'A', big);
    snprintf(v + n + big, 200, "\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"");
    assert_int_equal(auth_parse_credentials(S(v), &c), -EINVAL);
    struct auth_challenge ch;
    assert_int_equal(auth_parse_challenge(S(v), &ch), -EINVAL);

    /* At the limit it parses; escaped values beyond the scratch space do not. */
    const char *tail = "\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"";
    size_t fill = AUTH_MAX_HEADER - (size_t)n - strlen(tail);
    snprintf(v + n + fill, 200, "%s", tail);
    assert_int_equal(strlen(v), AUTH_MAX_HEADER);
    assert_int_equal(auth_parse_credentials(S(v), &c), 0);
    assert_int_equal(c.username.len, fill);
    v[n] = '\\';
    assert_int_equal(auth_parse_credentials(S(v), &c), -EINVAL);
    free(v);

    /* Too many parameters. */
    sbuf_t b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"0123456789abcdef0123456789abcdef\"");
    for (int i = 0; i < AUTH_MAX_PARAMS - 5; i++) sbuf_printf(&b, ", x%d=1", i);
    assert_int_equal(auth_parse_credentials(sbuf_str(&b), &c), 0);
    sbuf_append_cstr(&b, ", one=more");
    assert_int_equal(auth_parse_credentials(sbuf_str(&b), &c), -EINVAL);
    sbuf_free(&b);

    /* Verify refuses hand-built nonsense without crashing. */
    struct auth_server *srv = server(0, 300, 0, NULL, 0);
    memset(&c, 0, sizeof c);
    c.algorithm = (enum auth_algorithm)7;
    assert_int_equal(auth_verify(srv, &c, S("REGISTER"), S("939e7578ed9e3c518a452acee763bce9"), 0), AUTH_MALFORMED);
    c.algorithm = AUTH_ALG_MD5;
    assert_int_equal(auth_verify(srv, &c, S("REGISTER"), S("939e7578ed9e3c518a452acee763bce9"), 0), AUTH_MALFORMED);
    auth_server_free(srv);
}

static void test_server_config(void **state)
{
    (void)state;
    struct auth_server_config cfg = {.secret = secret, .secret_len = 8};
    assert_null(auth_server_new(&cfg)); /* secret too short */
    cfg = (struct auth_server_config){.algorithms = 1u << 9};
    assert_null(auth_server_new(&cfg));
    cfg = (struct auth_server_config){.opaque = "a\nb"};
    assert_null(auth_server_new(&cfg));
    cfg = (struct auth_server_config){0};
    struct auth_server *srv = auth_server_new(&cfg); /* MD5 only by default */
    assert_non_null(srv);
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(auth_challenge(srv, S("r"), AUTH_ALG_SHA256, true, false, 0, &b), -EINVAL);
    assert_int_equal(auth_challenge(srv, S("r"), AUTH_ALG_MD5, true, false, 0, &b), 0);
    sbuf_free(&b);
    auth_server_free(srv);
    auth_server_free(NULL);

    enum auth_algorithm a;
    assert_int_equal(auth_algorithm_from_name(S("sha-256-SESS"), &a), 0);
    assert_int_equal(a, AUTH_ALG_SHA256_SESS);
    assert_int_equal(auth_algorithm_from_name(S("SHA-512-256"), &a), -1);
    assert_string_equal(auth_algorithm_name(AUTH_ALG_MD5_SESS), "MD5-sess");
    assert_int_equal(auth_algorithm_base(AUTH_ALG_SHA256_SESS), AUTH_ALG_SHA256);
    assert_string_equal(auth_result_name(AUTH_REPLAY), "replay");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_sha256_vectors),
        cmocka_unit_test(test_rfc2617_example),
        cmocka_unit_test(test_rfc7616_md5),
        cmocka_unit_test(test_rfc7616_sha256),
        cmocka_unit_test(test_rfc7616_parse_authorization),
        cmocka_unit_test(test_challenge_format),
        cmocka_unit_test(test_round_trip_md5),
        cmocka_unit_test(test_round_trip_sha256),
        cmocka_unit_test(test_round_trip_sess),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_bad_nonce),
        cmocka_unit_test(test_algorithm_and_qop_binding),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_replay_table_eviction),
        cmocka_unit_test(test_legacy_no_qop),
        cmocka_unit_test(test_opaque),
        cmocka_unit_test(test_escaped_values),
        cmocka_unit_test(test_client_refusals),
        cmocka_unit_test(test_parse_challenge_variants),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_server_config),
        cmocka_unit_test(test_nonce_bound_to_peer),
        cmocka_unit_test(test_nonce_uses),
        cmocka_unit_test(test_failure_lockout_source),
        cmocka_unit_test(test_failure_lockout_user),
        cmocka_unit_test(test_throttle_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
