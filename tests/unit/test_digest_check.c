/* test_digest_check.c — checking a request's digest credentials (RFC 3261
 * §22, RFC 7616) against the users table, on the in-process stack
 * (harness.h): requests come in as SIP text from 192.0.2.9:5080, the TU
 * below runs digest_check_request() on each and challenges with
 * digest_check_challenge() as the registrar does. Real users table and
 * digest server; the nonces' clock is the wall clock, as in the daemon.
 *
 * Realm example.com; user alice, password "secret-a". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/digest.h"
#include "base/clock.h"
#include "app/config.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "harness.h"
#include "registrar/digest_check.h"
#include "registrar/users.h"

struct fx {
    struct harness *h;
    struct config cfg;
    struct users *users;
    struct auth_server *auth;
    struct digest_checker dc;
    enum digest_check last;
    struct digest_check_result res;
    uint32_t branch;
    char authz[1024];
    unsigned offer;         /* AUTH_OFFER mask of the digest server; 0: MD5 */
};

/* The TU: 200 when the credentials check out, 401 with a fresh challenge
 * (stale=true for a stale nonce) otherwise, 403 when locked out. */
static void on_request(void *arg, struct txn *st, const struct transport_rx *rx)
{
    struct fx *f = arg;
    f->last = digest_check_request(&f->dc, rx, SIP_HDR_AUTHORIZATION, &f->res);
    if (f->last == DIGEST_CHECK_OK) {
        txn_respond(st, 200, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
        return;
    }
    if (f->last == DIGEST_CHECK_LOCKED) {
        txn_respond(st, 403, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
        return;
    }
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(digest_check_challenge(&f->dc, false, f->last == DIGEST_CHECK_STALE, rx, &b), 0);
    str_t line = sbuf_lines(&b);
    txn_respond(st, 401, NULL, STR_NULL, &line, 1, STR_NULL, STR_NULL);
    sbuf_free(&b);
}

static void start(struct fx *f)
{
    f->users = users_new(NULL);
    assert_non_null(f->users);
    char md5[65], sha[65];
    str_t realm = STR_LIT("example.com");
    assert_int_equal(auth_ha1(AUTH_ALG_MD5, STR_LIT("alice"), realm, STR_LIT("secret-a"), md5), 0);
    assert_int_equal(auth_ha1(AUTH_ALG_SHA256, STR_LIT("alice"), realm, STR_LIT("secret-a"), sha), 0);
    assert_int_equal(users_add(f->users, "alice", "example.com", md5, sha, NULL, NULL), 0);
    struct auth_server_config ac;
    auth_server_config_from(&ac, &f->cfg.auth, f->offer ? f->offer : AUTH_OFFER(AUTH_ALG_MD5));
    f->auth = auth_server_new(&ac);
    assert_non_null(f->auth);
    digest_checker_init(&f->dc, &f->cfg.auth, &f->h->local, f->users, f->auth, NULL);
    f->h->on_request = on_request;
    f->h->arg = f;
}

static int setup(void **state)
{
    log_set_level(LOG_ERROR);
    struct fx *f = calloc(1, sizeof(*f));
    f->h = harness_new();
    config_init(&f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    auth_server_free(f->auth);
    users_free(f->users);
    harness_free(f->h);
    free(f);
    return 0;
}

/* A request with f->authz (maybe empty) from 192.0.2.9:5080; the status of
 * the answer. */
static int send_req(struct fx *f)
{
    char text[2048];
    f->branch++;
    snprintf(text, sizeof(text),
             "REGISTER sip:example.com SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bK-d%u\n"
             "Max-Forwards: 70\n"
             "From: <sip:alice@example.com>;tag=f1\n"
             "To: <sip:alice@example.com>\n"
             "Call-ID: dc1\n"
             "CSeq: %u REGISTER\n"
             "%s"
             "Content-Length: 0\n\n",
             f->branch, f->branch, f->authz);
    assert_int_equal(harness_inject(f->h, "192.0.2.9", 5080, SIP_TRANSPORT_UDP, text), 0);
    return harness_sent_status(f->h, harness_sent_count(f->h) - 1);
}

/* send_req through an edge at 192.0.2.50:5060 for the phone whose Via
 * (received, rport) is phone_via. */
static int send_via_edge(struct fx *f, const char *phone_via)
{
    char text[2048];
    f->branch++;
    snprintf(text, sizeof(text),
             "REGISTER sip:example.com SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK-e%u\n"
             "Via: %s;branch=z9hG4bK-p%u\n"
             "Max-Forwards: 69\n"
             "From: <sip:alice@example.com>;tag=f1\n"
             "To: <sip:alice@example.com>\n"
             "Call-ID: dc-edge\n"
             "CSeq: %u REGISTER\n"
             "%s"
             "Content-Length: 0\n\n",
             f->branch, phone_via, f->branch, f->branch, f->authz);
    assert_int_equal(harness_inject(f->h, "192.0.2.50", 5060, SIP_TRANSPORT_UDP, text), 0);
    return harness_sent_status(f->h, harness_sent_count(f->h) - 1);
}

/* Sets f->authz to the answer, as user/pw with nc and uri, to the challenge
 * value ch_text. */
static void answer(struct fx *f, const char *ch_text, const char *user, const char *pw, const char *uri, uint32_t nc)
{
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", ch_text);
    struct auth_challenge ch;
    assert_int_equal(auth_parse_challenge(str_from_cstr(copy), &ch), 0);
    sbuf_t b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "Authorization: ");
    assert_int_equal(auth_client_answer(&ch, str_from_cstr(user), str_from_cstr(pw), STR_LIT("REGISTER"),
                                        str_from_cstr(uri), nc, STR_LIT("0a4f113b"), &b),
                     0);
    sbuf_append_cstr(&b, "\n");
    snprintf(f->authz, sizeof(f->authz), "%.*s", (int)b.len, b.data);
    sbuf_free(&b);
}

/* Gets a challenge (401) and answers it. */
static void challenge_and_answer(struct fx *f, const char *user, const char *pw, const char *uri, uint32_t nc)
{
    f->authz[0] = '\0';
    assert_int_equal(send_req(f), 401);
    char ch[1024];
    snprintf(ch, sizeof(ch), "%.*s", STR_FMT(harness_header(harness_last(f->h), SIP_HDR_WWW_AUTHENTICATE)));
    answer(f, ch, user, pw, uri, nc);
}

/* §22.1: no credentials for our realm: NONE, and the challenge names our
 * realm with qop=auth and MD5 ([auth] algorithm = MD5). */
static void test_no_credentials_is_none_and_challenged(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(send_req(f), 401);
    assert_int_equal(f->last, DIGEST_CHECK_NONE);
    const struct sip_msg *m = harness_last(f->h);
    assert_int_equal(harness_header_count(m, SIP_HDR_WWW_AUTHENTICATE), 1);
    assert_true(harness_header_has(m, SIP_HDR_WWW_AUTHENTICATE, "realm=\"example.com\""));
    assert_true(harness_header_has(m, SIP_HDR_WWW_AUTHENTICATE, "algorithm=MD5"));
    assert_true(harness_header_has(m, SIP_HDR_WWW_AUTHENTICATE, "qop=\"auth\""));
}

/* RFC 8760 §2.4: [auth] algorithm = both offers SHA-256 first, then MD5. */
static void test_both_algorithms_sha256_first(void **state)
{
    struct fx *f = *state;
    snprintf(f->cfg.auth.algorithm, sizeof(f->cfg.auth.algorithm), "both");
    f->offer = AUTH_OFFER(AUTH_ALG_MD5) | AUTH_OFFER(AUTH_ALG_SHA256);
    start(f);
    assert_int_equal(send_req(f), 401);
    const struct sip_msg *m = harness_last(f->h);
    assert_int_equal(harness_header_count(m, SIP_HDR_WWW_AUTHENTICATE), 2);
    str_t first = harness_header_nth(m, SIP_HDR_WWW_AUTHENTICATE, 0);
    str_t second = harness_header_nth(m, SIP_HDR_WWW_AUTHENTICATE, 1);
    assert_non_null(memmem(first.s, first.len, "algorithm=SHA-256", 17));
    assert_non_null(memmem(second.s, second.len, "algorithm=MD5", 13));
}

/* §22.4: the right password on our nonce: OK, with the user. */
static void test_right_password_is_ok(void **state)
{
    struct fx *f = *state;
    start(f);
    challenge_and_answer(f, "alice", "secret-a", "sip:example.com", 1);
    assert_int_equal(send_req(f), 200);
    assert_int_equal(f->last, DIGEST_CHECK_OK);
    assert_non_null(f->res.user);
    assert_string_equal(f->res.user->name, "alice");
}

/* §22.4: a wrong password: FAILED (challenged again). */
static void test_wrong_password_fails(void **state)
{
    struct fx *f = *state;
    start(f);
    challenge_and_answer(f, "alice", "wrong", "sip:example.com", 1);
    assert_int_equal(send_req(f), 401);
    assert_int_equal(f->last, DIGEST_CHECK_FAILED);
    assert_null(f->res.user);
}

/* An unknown user fails like a wrong password (names cannot be probed). */
static void test_unknown_user_fails(void **state)
{
    struct fx *f = *state;
    start(f);
    challenge_and_answer(f, "mallory", "x", "sip:example.com", 1);
    assert_int_equal(send_req(f), 401);
    assert_int_equal(f->last, DIGEST_CHECK_FAILED);
}

/* RFC 7616 §3.4.6: the digest-uri must be the Request-URI: URI_MISMATCH. */
static void test_other_digest_uri_is_mismatch(void **state)
{
    struct fx *f = *state;
    start(f);
    challenge_and_answer(f, "alice", "secret-a", "sip:elsewhere.example.org", 1);
    send_req(f);
    assert_int_equal(f->last, DIGEST_CHECK_URI_MISMATCH);
}

/* RFC 7616 §3.3 stale: the right password on an expired nonce ([auth]
 * nonce_ttl 300 s) is STALE, and the new challenge says stale=true. */
static void test_expired_nonce_is_stale(void **state)
{
    struct fx *f = *state;
    start(f);
    struct sockaddr_storage peer;
    assert_int_equal(transport_addr_parse("192.0.2.9", 9, 5080, &peer), 0);
    sbuf_t b;
    sbuf_init(&b);
    uint64_t old = (uint64_t)(clock_wall_ms() / 1000) - 400;
    assert_int_equal(auth_challenge_for(f->auth, STR_LIT("example.com"), AUTH_ALG_MD5, true, false,
                                        (const struct sockaddr *)&peer, old, &b),
                     0);
    char ch[1024];
    snprintf(ch, sizeof(ch), "%.*s", (int)b.len, b.data);
    sbuf_free(&b);
    answer(f, ch, "alice", "secret-a", "sip:example.com", 1);
    assert_int_equal(send_req(f), 401);
    assert_int_equal(f->last, DIGEST_CHECK_STALE);
    assert_true(harness_header_has(harness_last(f->h), SIP_HDR_WWW_AUTHENTICATE, "stale=true"));
}

/* RFC 7616 §3.4: an nc already used with this nonce is a replay: FAILED. */
static void test_replayed_nc_fails(void **state)
{
    struct fx *f = *state;
    start(f);
    challenge_and_answer(f, "alice", "secret-a", "sip:example.com", 1);
    assert_int_equal(send_req(f), 200);
    assert_int_equal(f->last, DIGEST_CHECK_OK);
    assert_int_equal(send_req(f), 401); /* the same Authorization, nc=00000001 again */
    assert_int_equal(f->last, DIGEST_CHECK_FAILED);
}

/* [auth] max_failures: after that many failures from one source, the next
 * attempt is LOCKED before any digest work, with the seconds left. */
static void test_lockout_after_max_failures(void **state)
{
    struct fx *f = *state;
    f->cfg.auth.max_failures = 3;
    start(f);
    for (int i = 0; i < 3; i++) {
        challenge_and_answer(f, "alice", "wrong", "sip:example.com", 1);
        assert_int_equal(send_req(f), 401);
        assert_int_equal(f->last, DIGEST_CHECK_FAILED);
    }
    challenge_and_answer(f, "alice", "secret-a", "sip:example.com", 1);
    assert_int_equal(send_req(f), 403);
    assert_int_equal(f->last, DIGEST_CHECK_LOCKED);
    assert_true(f->res.retry_after > 0);
}

static void edge_challenge_and_answer(struct fx *f, const char *phone_via, const char *pw)
{
    f->authz[0] = '\0';
    assert_int_equal(send_via_edge(f, phone_via), 401);
    char ch[1024];
    snprintf(ch, sizeof(ch), "%.*s", STR_FMT(harness_header(harness_last(f->h), SIP_HDR_WWW_AUTHENTICATE)));
    answer(f, ch, "alice", pw, "sip:example.com", 1);
}

/* [proxy] trusted_edges: failures of one phone behind an edge lock that
 * phone (the Via below the edge's), not the edge's other phones, and the
 * refusal's reason (the caller's log line) names the phone. Without
 * the edge listed, they all are the edge's address: the other phone is
 * locked out too. */
static void test_edge_phones_are_locked_apart(void **state)
{
    struct fx *f = *state;
    f->cfg.auth.max_failures = 3;
    f->cfg.auth.max_failures_user = 0;
    static struct config_cidr edges[1];
    int n = 0;
    assert_int_equal(config_parse_cidrs(edges, &n, 1, "192.0.2.50"), 0);
    const char *phone_a = "SIP/2.0/UDP 10.0.0.1:5062;rport=40001;received=198.51.100.1";
    const char *phone_b = "SIP/2.0/UDP 198.51.100.2:5062";
    for (int listed = 1; listed >= 0; listed--) {
        start(f);
        if (listed) {
            f->dc.edges = edges;
            f->dc.nedges = n;
        }
        for (int i = 0; i < 3; i++) {
            edge_challenge_and_answer(f, phone_a, "wrong");
            assert_int_equal(send_via_edge(f, phone_a), 401);
        }
        edge_challenge_and_answer(f, phone_a, "secret-a");
        assert_int_equal(send_via_edge(f, phone_a), 403);
        /* the caller's log line names the phone, not only the edge */
        assert_true((strstr(f->res.why, "(phone 198.51.100.1:40001 behind the edge)") != NULL) == listed);
        if (listed) {
            edge_challenge_and_answer(f, phone_b, "secret-a");
            assert_int_equal(send_via_edge(f, phone_b), 200);
        } else {
            f->authz[0] = '\0';
            assert_int_equal(send_via_edge(f, phone_b), 401); /* no credentials: challenged */
            edge_challenge_and_answer(f, phone_b, "secret-a");
            assert_int_equal(send_via_edge(f, phone_b), 403);
        }
        auth_server_free(f->auth);
        users_free(f->users);
        f->auth = NULL;
        f->users = NULL;
    }
}

/* A proxy consumes its own realm's credentials and leaves others'. */
/* A malformed Authorization is refused (400 from the caller) and always
 * marked to be logged, however many come: bounding those lines is base/log's
 * job (log_warn_rl at the caller), not a counter here. */
static void test_bad_header_always_marked_for_the_log(void **state)
{
    struct fx *f = *state;
    start(f);
    snprintf(f->authz, sizeof(f->authz), "Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\n");
    for (int i = 0; i < 25; i++) {
        send_req(f);
        assert_int_equal(f->last, DIGEST_CHECK_BAD_HEADER);
        assert_true(f->res.log);
        assert_non_null(strstr(f->res.why, "bad Authorization"));
    }
}

static void test_consume_removes_only_our_realm(void **state)
{
    struct fx *f = *state;
    start(f);
    f->h->on_request = NULL; /* 501: we only parse here */
    const char *text = "INVITE sip:bob@example.com SIP/2.0\n"
                       "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bK-c1\n"
                       "From: <sip:alice@example.com>;tag=f1\n"
                       "To: <sip:bob@example.com>\n"
                       "Call-ID: cons\n"
                       "CSeq: 1 INVITE\n"
                       "Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", "
                       "uri=\"sip:bob@example.com\", response=\"00000000000000000000000000000000\"\n"
                       "Proxy-Authorization: Digest username=\"alice\", realm=\"other.org\", nonce=\"n\", "
                       "uri=\"sip:bob@example.com\", response=\"00000000000000000000000000000000\"\n"
                       "Content-Length: 0\n\n";
    char buf[2048];
    size_t n = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') buf[n++] = '\r';
        buf[n++] = *p;
    }
    _Alignas(16) static char mem[32768];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    struct sip_msg m;
    struct sip_parse_error err;
    assert_int_equal(sip_parse(buf, n, &a, NULL, &m, &err), 0);
    assert_int_equal(harness_header_count(&m, SIP_HDR_PROXY_AUTHORIZATION), 2);
    digest_check_consume(&f->dc, &m, SIP_HDR_PROXY_AUTHORIZATION);
    assert_int_equal(harness_header_count(&m, SIP_HDR_PROXY_AUTHORIZATION), 1);
    assert_true(harness_header_has(&m, SIP_HDR_PROXY_AUTHORIZATION, "realm=\"other.org\""));
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_credentials_is_none_and_challenged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_both_algorithms_sha256_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_right_password_is_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_user_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_digest_uri_is_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_nonce_is_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replayed_nc_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_after_max_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edge_phones_are_locked_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_header_always_marked_for_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consume_removes_only_our_realm, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
