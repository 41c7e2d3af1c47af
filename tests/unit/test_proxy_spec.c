/* test_proxy_spec.c — the stateful proxy and the redirect server as RFC 3261 §16
 * specifies them, on the in-process stack (harness.h): the real location
 * service, users table, digest server and registrar (for "is this URI
 * ours"), the harness's transaction layer and UA, a fake clock, and every
 * message the proxy sends recorded.
 *
 * We are example.com at 192.0.2.1:5060. The caller is 192.0.2.9:5080
 * (carol@other.net, a foreign user: not challenged unless stated). Our
 * users: alice ("secret-a"), bob and dave; bob has bindings at
 * 192.0.2.20:5070 and 192.0.2.21:5070 when a test gives them. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/config.h"
#include "auth/digest.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "harness.h"
#include "proxy/pike.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "registrar/digest_check.h"
#include "registrar/location.h"
#include "registrar/registrar.h"
#include "registrar/users.h"
#include "store/store.h"

#define CALLER "192.0.2.9"
#define CALLER_PORT 5080
#define BOB_A "192.0.2.20"
#define BOB_B "192.0.2.21"
#define BOB_PORT 5070

struct fx {
    struct harness *h;
    struct config cfg;
    struct users *users;
    struct auth_server *auth;
    struct location *loc;
    struct registrar *r;
    struct digest_checker dc;
    struct proxy *p;
    struct proxy_deps pd;   /* what p was made with (restart_proxy) */
    int not_taken;          /* requests the proxy left to the core */
};

/* ---- the proxy wired as src/app/dispatch.c wires it ---- */

static enum digest_check d_check(void *arg, const struct transport_rx *rx, enum sip_hdr hdr,
                                 struct digest_check_result *out)
{
    return digest_check_request(arg, rx, hdr, out);
}
static int d_challenge(void *arg, bool proxy, bool stale, const struct transport_rx *rx, sbuf_t *b)
{
    return digest_check_challenge(arg, proxy, stale, rx, b);
}
static void d_consume(void *arg, struct sip_msg *m, enum sip_hdr hdr) { digest_check_consume(arg, m, hdr); }
static bool is_local(void *arg, const struct sip_uri *uri, const struct transport_rx *rx, bool check_port)
{
    return registrar_uri_is_local(arg, uri, rx, check_port);
}

static void on_request(void *arg, struct txn *st, const struct transport_rx *rx)
{
    struct fx *f = arg;
    if (proxy_on_request(f->p, st, rx)) return;
    f->not_taken++;
    txn_respond(st, 604, "Not Taken", STR_NULL, NULL, 0, STR_NULL, STR_NULL);
}

static void on_server_terminated(void *arg, struct txn *st) { proxy_on_server_terminated(((struct fx *)arg)->p, st); }

static void on_ack(void *arg, const struct transport_rx *rx) { proxy_on_ack(((struct fx *)arg)->p, rx); }

static void add_user(struct fx *f, const char *name, const char *pw) { harness_add_user(f->h, f->users, name, pw); }

/* Builds the stack from f->cfg (tests change it first). */
static void start(struct fx *f)
{
    f->users = users_new(NULL);
    assert_non_null(f->users);
    add_user(f, "alice", "secret-a");
    add_user(f, "bob", "secret-b");
    add_user(f, "dave", "secret-d");
    struct auth_server_config ac;
    auth_server_config_from(&ac, &f->cfg.auth, AUTH_OFFER(AUTH_ALG_MD5));
    f->auth = auth_server_new(&ac);
    assert_non_null(f->auth);
    struct registrar_deps rd = {
        .cfg = &f->cfg.registrar, .auth_cfg = &f->cfg.auth, .sip_cfg = &f->cfg.sip, .local = &f->h->local,
        .users = f->users, .auth = f->auth, .ua = f->h->ua, .timers = f->h->timers,
        .send = harness_send, .send_arg = f->h,
    };
    f->r = registrar_new(&rd);
    assert_non_null(f->r);
    struct location_callbacks cb;
    registrar_location_callbacks(f->r, &cb);
    f->loc = location_new(f->h->timers, NULL, &cb);
    assert_non_null(f->loc);
    registrar_set_location(f->r, f->loc);
    digest_checker_init(&f->dc, &f->cfg.auth, &f->h->local, f->users, f->auth, NULL);
    struct proxy_deps d = {
        .cfg = &f->cfg.proxy, .sip_cfg = &f->cfg.sip, .auth_cfg = &f->cfg.auth, .reg_cfg = &f->cfg.registrar,
        .local = &f->h->local, .txn = f->h->txn, .timers = f->h->timers,
        .location = f->loc, .users = f->users, .ua = f->h->ua,
        .digest = {.check = d_check, .challenge = d_challenge, .consume = d_consume, .arg = &f->dc},
        .uri_is_local = is_local, .uri_is_local_arg = f->r,
        .send = harness_send, .send_arg = f->h,
    };
    f->pd = d;
    f->p = proxy_new(&d);
    assert_non_null(f->p);
    f->h->on_request = on_request;
    f->h->on_server_terminated = on_server_terminated;
    f->h->on_ack = on_ack;
    f->h->arg = f;
}

static int setup(void **state)
{
    log_set_level(LOG_ERROR);
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->h = harness_new();
    config_init(&f->cfg);
    f->cfg.registrar.nat_ping_interval_s = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    proxy_free(f->p);
    registrar_free(f->r);
    location_free(f->loc);
    auth_server_free(f->auth);
    users_free(f->users);
    harness_free(f->h);
    free(f);
    return 0;
}

/* A UDP binding of aor (the location key: the user part) to contact with q (in thousandths), for an hour. */
static void add_binding(struct fx *f, const char *aor, const char *contact, int q1000)
{
    char call_id[64];
    snprintf(call_id, sizeof(call_id), "reg-%s", contact);
    struct location_binding_in in = {
        .contact = str_from_cstr(contact), .expires_s = 3600, .q1000 = q1000, .call_id = str_from_cstr(call_id),
        .cseq = 1, .transport = LOCATION_TRANSPORT_UDP,
    };
    assert_int_equal(location_update(f->loc, str_from_cstr(aor), &in, 1, f->h->now, NULL, NULL), 0);
}

static void bind_bob_twice(struct fx *f)
{
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 500);
    add_binding(f, "bob", "sip:bob@" BOB_B ":5070", 1000);
}

/* A request from the caller: method to ruri, From carol@other.net (a BYE
 * with a To tag, the others without), with extra header lines (each ending
 * in \n). */
static void send_req(struct fx *f, const char *method, const char *ruri, const char *extra)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "%s %s SIP/2.0\n"
             "Via: SIP/2.0/UDP " CALLER ":5080;branch=z9hG4bK-caller1\n"
             "Max-Forwards: 70\n"
             "From: <sip:carol@other.net>;tag=f1\n"
             "To: <%s>%s\n"
             "Call-ID: call-1@" CALLER "\n"
             "CSeq: 1 %s\n"
             "Contact: <sip:carol@" CALLER ":5080>\n"
             "%s"
             "Content-Length: 0\n\n",
             method, ruri, ruri, strcmp(method, "BYE") ? "" : ";tag=t1" /* a BYE is in a dialog */, method, extra);
    assert_int_equal(harness_inject(f->h, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, text), 0);
}

static void invite_bob(struct fx *f) { send_req(f, "INVITE", "sip:bob@example.com", ""); }

/* The status of the single final or forwarded response sent to the caller
 * since from (the transaction layer's own 100 Trying, RFC 3261 §17.2.1,
 * left aside). */
static int answer_since(struct fx *f, size_t from)
{
    int found = -1;
    for (int i = harness_find_sent(f->h, from, "SIP/2.0 "); i >= 0;
         i = harness_find_sent(f->h, (size_t)i + 1, "SIP/2.0 ")) {
        if (harness_sent_status(f->h, (size_t)i) == 100) continue;
        assert_int_equal(found, -1);
        found = i;
    }
    assert_true(found >= 0);
    assert_true(harness_sent_to(f->h, (size_t)found, CALLER, CALLER_PORT));
    return harness_sent_status(f->h, (size_t)found);
}

/* The callee at ip answers the request sent as message i with status
 * (To tag "callee" for everything but 100) and extra header lines (each
 * ending in \n). */
static void reply_with(struct fx *f, size_t i, const char *ip, int status, const char *reason, const char *extra)
{
    const struct sip_msg *m = harness_sent_msg(f->h, i);
    char vias[1024] = "";
    for (int k = 0; k < harness_header_count(m, SIP_HDR_VIA); k++) {
        str_t v = harness_header_nth(m, SIP_HDR_VIA, k);
        size_t used = strlen(vias);
        snprintf(vias + used, sizeof(vias) - used, "Via: %.*s\n", STR_FMT(v));
    }
    str_t from = harness_header(m, SIP_HDR_FROM), to = harness_header(m, SIP_HDR_TO);
    str_t cid = harness_header(m, SIP_HDR_CALL_ID), cseq = harness_header(m, SIP_HDR_CSEQ);
    char text[4096];
    snprintf(text, sizeof(text),
             "SIP/2.0 %d %s\n%sFrom: %.*s\nTo: %.*s%s\nCall-ID: %.*s\nCSeq: %.*s\n%sContent-Length: 0\n\n", status,
             reason, vias, STR_FMT(from), STR_FMT(to), status == 100 ? "" : ";tag=callee", STR_FMT(cid),
             STR_FMT(cseq), extra);
    assert_int_equal(harness_inject(f->h, ip, BOB_PORT, SIP_TRANSPORT_UDP, text), 0);
}

static void reply_to(struct fx *f, size_t i, const char *ip, int status, const char *reason)
{
    reply_with(f, i, ip, status, reason, "");
}

/* The index of the first request starting with prefix sent to ip since from. */
static size_t sent_to_since(struct fx *f, size_t from, const char *prefix, const char *ip)
{
    for (int i = harness_find_sent(f->h, from, prefix); i >= 0; i = harness_find_sent(f->h, (size_t)i + 1, prefix))
        if (harness_sent_to(f->h, (size_t)i, ip, BOB_PORT)) return (size_t)i;
    fail_msg("no %s sent to %s", prefix, ip);
    return 0;
}

/* ---- §16.3 request validation ---- */

/* §16.3 step 2: a Request-URI scheme we do not handle: 416. */
static void test_unsupported_uri_scheme_is_416(void **state)
{
    struct fx *f = *state;
    start(f);
    send_req(f, "INVITE", "tel:+15551234", "");
    assert_int_equal(answer_since(f, 0), 416);
    assert_int_equal(harness_find_sent(f->h, 0, "INVITE "), -1);
}

/* §16.3 step 3: Max-Forwards 0 is refused with 483 and not forwarded. */
static void test_max_forwards_zero_is_483(void **state)
{
    struct fx *f = *state;
    start(f);
    bind_bob_twice(f);
    char text[1024];
    snprintf(text, sizeof(text),
             "INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP " CALLER ":5080;branch=z9hG4bK-mf0\n"
             "Max-Forwards: 0\nFrom: <sip:carol@other.net>;tag=f1\nTo: <sip:bob@example.com>\n"
             "Call-ID: mf0\nCSeq: 1 INVITE\nContent-Length: 0\n\n");
    assert_int_equal(harness_inject(f->h, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, text), 0);
    assert_int_equal(harness_sent_count(f->h), 1);
    assert_int_equal(answer_since(f, 0), 483);
    assert_int_equal(harness_find_sent(f->h, 0, "INVITE "), -1);
}

/* §16.3 step 4: a request that comes back to us unchanged (our Via below
 * the top with the same loop hash) is a loop: 482. */
static void test_request_coming_back_unchanged_is_482(void **state)
{
    struct fx *f = *state;
    start(f);
    /* In-dialog BYE routed through us to 192.0.2.40. */
    send_req(f, "BYE", "sip:bob@" BOB_A ":5070",
             "Route: <sip:192.0.2.1:5060;lr>, <sip:192.0.2.40:5060;lr>\n");
    int i = harness_find_sent(f->h, 0, "BYE ");
    assert_true(i >= 0);
    /* 192.0.2.40 sends it straight back (its own Via on top). */
    char back[4096];
    const char *lf = strchr(f->h->sent[i].data, '\n');
    snprintf(back, sizeof(back), "%.*sVia: SIP/2.0/UDP 192.0.2.40:5060;branch=z9hG4bK-back\r\n%s",
             (int)(lf - f->h->sent[i].data + 1), f->h->sent[i].data, lf + 1);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, "192.0.2.40", 5060, SIP_TRANSPORT_UDP, back), 0);
    assert_int_equal(harness_sent_count(f->h), before + 1);
    assert_int_equal(harness_sent_status(f->h, before), 482);
    assert_true(harness_sent_to(f->h, before, "192.0.2.40", 5060));
}

/* §16.3 step 5: a Proxy-Require we do not support: 420 listing it in
 * Unsupported. */
static void test_unsupported_proxy_require_is_420(void **state)
{
    struct fx *f = *state;
    start(f);
    bind_bob_twice(f);
    send_req(f, "INVITE", "sip:bob@example.com", "Proxy-Require: foo\n");
    assert_int_equal(answer_since(f, 0), 420);
    assert_true(harness_header_has(harness_last(f->h), SIP_HDR_UNSUPPORTED, "foo"));
    assert_int_equal(harness_find_sent(f->h, 0, "INVITE "), -1);
}

/* ---- §16.4 Route information preprocessing ---- */

/* §16.4, §16.6 step 7: our Route entry is popped and the request goes,
 * Request-URI untouched, to the next (loose) Route. */
static void test_loose_route_pops_ours_and_goes_to_next(void **state)
{
    struct fx *f = *state;
    start(f);
    send_req(f, "BYE", "sip:bob@" BOB_A ":5070;x=1",
             "Route: <sip:192.0.2.1:5060;lr>, <sip:192.0.2.40:5060;lr>\n");
    int i = harness_find_sent(f->h, 0, "BYE ");
    assert_true(i >= 0);
    assert_true(harness_sent_to(f->h, (size_t)i, "192.0.2.40", 5060));
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    assert_true(str_eq(m->ruri_raw, STR_LIT("sip:bob@" BOB_A ":5070;x=1")));
    assert_int_equal(harness_header_count(m, SIP_HDR_ROUTE), 1);
    assert_true(harness_header_has(m, SIP_HDR_ROUTE, "<sip:192.0.2.40:5060;lr>"));
    assert_false(harness_header_has(m, SIP_HDR_ROUTE, "192.0.2.1"));
}

/* §16.4: a Request-URI that is our own lr URI (the previous hop was a
 * strict router) is replaced by the last Route, which is popped. */
static void test_strict_router_request_uri_restored_from_last_route(void **state)
{
    struct fx *f = *state;
    start(f);
    send_req(f, "BYE", "sip:192.0.2.1:5060;lr",
             "Route: <sip:192.0.2.40:5060;lr>, <sip:bob@" BOB_A ":5070>\n");
    int i = harness_find_sent(f->h, 0, "BYE ");
    assert_true(i >= 0);
    assert_true(harness_sent_to(f->h, (size_t)i, "192.0.2.40", 5060));
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    assert_true(str_eq(m->ruri_raw, STR_LIT("sip:bob@" BOB_A ":5070")));
    assert_int_equal(harness_header_count(m, SIP_HDR_ROUTE), 1);
    assert_true(str_eq(harness_header(m, SIP_HDR_ROUTE), STR_LIT("<sip:192.0.2.40:5060;lr>")));
}

/* ---- §16.5 determining the targets ---- */

/* §16.5: a Request-URI for our domain naming nobody: 404. */
static void test_unknown_user_is_404(void **state)
{
    struct fx *f = *state;
    start(f);
    send_req(f, "INVITE", "sip:nobody@example.com", "");
    assert_int_equal(answer_since(f, 0), 404);
    assert_int_equal(harness_sent_count(f->h), 1);
}

/* §16.5: one of our users with no binding: 480. */
static void test_user_without_binding_is_480(void **state)
{
    struct fx *f = *state;
    start(f);
    send_req(f, "INVITE", "sip:dave@example.com", "");
    assert_int_equal(answer_since(f, 0), 480);
    assert_int_equal(harness_sent_count(f->h), 1);
}

/* §16.5, §16.6 step 2: one branch per binding, highest q first, each with
 * the binding's contact as Request-URI, sent to that contact. */
static void test_forks_to_every_binding_by_q(void **state)
{
    struct fx *f = *state;
    start(f);
    bind_bob_twice(f);
    invite_bob(f);
    assert_int_equal(harness_count_sent(f->h, 0, "INVITE "), 2);
    int first = harness_find_sent(f->h, 0, "INVITE ");
    int second = harness_find_sent(f->h, (size_t)first + 1, "INVITE ");
    assert_true(harness_sent_to(f->h, (size_t)first, BOB_B, BOB_PORT));   /* q=1 */
    assert_true(harness_sent_to(f->h, (size_t)second, BOB_A, BOB_PORT));  /* q=0.5 */
    assert_true(str_eq(harness_sent_msg(f->h, (size_t)first)->ruri_raw, STR_LIT("sip:bob@" BOB_B ":5070")));
    assert_true(str_eq(harness_sent_msg(f->h, (size_t)second)->ruri_raw, STR_LIT("sip:bob@" BOB_A ":5070")));
    assert_int_equal(harness_find_sent(f->h, 0, "SIP/2.0 "), -1); /* nothing final yet (the 100 is the txn's) */
}

/* ---- §16.6 request forwarding ---- */

/* §16.6 steps 3 and 8: Max-Forwards one less; our Via on top with a
 * branch of our own (the magic cookie first), the caller's below. */
static void test_forwarded_copy_has_max_forwards_decremented_and_our_via(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    invite_bob(f);
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)harness_find_sent(f->h, 0, "INVITE "));
    assert_int_equal(m->max_forwards, 69);
    assert_int_equal(harness_header_count(m, SIP_HDR_VIA), 2);
    str_t top = harness_header_nth(m, SIP_HDR_VIA, 0);
    assert_true(str_eq(str_make(top.s, strlen("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK")),
                       STR_LIT("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK")));
    assert_true(str_eq(harness_header_nth(m, SIP_HDR_VIA, 1),
                       STR_LIT("SIP/2.0/UDP " CALLER ":5080;branch=z9hG4bK-caller1")));
}

/* §16.6 step 8: each branch has its own branch parameter. */
static void test_each_branch_has_its_own_via_branch(void **state)
{
    struct fx *f = *state;
    start(f);
    bind_bob_twice(f);
    invite_bob(f);
    int a = harness_find_sent(f->h, 0, "INVITE "), b = harness_find_sent(f->h, (size_t)a + 1, "INVITE ");
    char top_a[256];
    str_t v = harness_header(harness_sent_msg(f->h, (size_t)a), SIP_HDR_VIA);
    snprintf(top_a, sizeof(top_a), "%.*s", STR_FMT(v));
    assert_false(str_eq(harness_header(harness_sent_msg(f->h, (size_t)b), SIP_HDR_VIA), str_from_cstr(top_a)));
}

/* §16.6 step 4: a dialog-creating request is record-routed (loose). */
static void test_invite_is_record_routed(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    invite_bob(f);
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)harness_find_sent(f->h, 0, "INVITE "));
    assert_int_equal(harness_header_count(m, SIP_HDR_RECORD_ROUTE), 1);
    assert_true(str_eq(harness_header(m, SIP_HDR_RECORD_ROUTE), STR_LIT("<sip:192.0.2.1:5060;lr>")));
}

/* §16.6 step 4: a MESSAGE creates no dialog: no Record-Route. */
static void test_message_is_not_record_routed(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    send_req(f, "MESSAGE", "sip:bob@example.com", "");
    int i = harness_find_sent(f->h, 0, "MESSAGE ");
    assert_true(i >= 0);
    assert_int_equal(harness_header_count(harness_sent_msg(f->h, (size_t)i), SIP_HDR_RECORD_ROUTE), 0);
}

/* §16.6 step 3: a request without Max-Forwards is forwarded with 70. */
static void test_missing_max_forwards_becomes_70(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    assert_int_equal(harness_inject(f->h, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP,
                                    "MESSAGE sip:bob@example.com SIP/2.0\n"
                                    "Via: SIP/2.0/UDP " CALLER ":5080;branch=z9hG4bK-nomf\n"
                                    "From: <sip:carol@other.net>;tag=f1\nTo: <sip:bob@example.com>\n"
                                    "Call-ID: nomf\nCSeq: 1 MESSAGE\nContent-Length: 0\n\n"),
                     0);
    int i = harness_find_sent(f->h, 0, "MESSAGE ");
    assert_true(i >= 0);
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    assert_true(str_eq(harness_header(m, SIP_HDR_MAX_FORWARDS), STR_LIT("70")));
}

/* ---- §16.7 response processing ---- */

/* §16.7 steps 3 and 9: a 100 stays hop by hop; a 180 goes upstream without
 * our Via. */
static void test_provisional_forwarded_without_our_via_100_not(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    invite_bob(f);
    size_t inv = (size_t)harness_find_sent(f->h, 0, "INVITE ");
    size_t mark = harness_sent_count(f->h);
    reply_to(f, inv, BOB_A, 100, "Trying");
    assert_int_equal(harness_sent_count(f->h), mark);
    reply_to(f, inv, BOB_A, 180, "Ringing");
    assert_int_equal(answer_since(f, mark), 180);
    const struct sip_msg *m = harness_last(f->h);
    assert_int_equal(harness_header_count(m, SIP_HDR_VIA), 1);
    assert_true(harness_header_has(m, SIP_HDR_VIA, "branch=z9hG4bK-caller1"));
}

/* §16.7 step 5: a 2xx goes upstream at once (our Via removed) and the
 * other branches are CANCELled. */
static void test_2xx_forwarded_at_once_and_others_cancelled(void **state)
{
    struct fx *f = *state;
    start(f);
    bind_bob_twice(f);
    invite_bob(f);
    size_t to_b = sent_to_since(f, 0, "INVITE ", BOB_B), to_a = sent_to_since(f, 0, "INVITE ", BOB_A);
    reply_to(f, to_a, BOB_A, 180, "Ringing");
    size_t mark = harness_sent_count(f->h);
    reply_to(f, to_b, BOB_B, 200, "OK");
    assert_int_equal(answer_since(f, mark), 200);
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)harness_find_sent(f->h, mark, "SIP/2.0 "));
    assert_int_equal(harness_header_count(m, SIP_HDR_VIA), 1);
    (void)sent_to_since(f, mark, "CANCEL ", BOB_A);
    assert_int_equal(harness_count_sent(f->h, mark, "CANCEL "), 1);
}

/* §16.7 step 6: with every branch failed, the best final goes upstream
 * once: the lowest class (486 over 500). */
static void test_best_final_is_lowest_class(void **state)
{
    struct fx *f = *state;
    start(f);
    bind_bob_twice(f);
    invite_bob(f);
    size_t to_b = sent_to_since(f, 0, "INVITE ", BOB_B), to_a = sent_to_since(f, 0, "INVITE ", BOB_A);
    size_t mark = harness_sent_count(f->h);
    reply_to(f, to_b, BOB_B, 500, "Server Error");
    assert_int_equal(harness_find_sent(f->h, mark, "SIP/2.0 "), -1); /* one branch still pending */
    reply_to(f, to_a, BOB_A, 486, "Busy Here");
    assert_int_equal(answer_since(f, mark), 486);
    assert_int_equal(harness_count_sent(f->h, mark, "ACK "), 2); /* §17.1.1.3: each non-2xx ACKed hop by hop */
}

/* §16.7 step 5: a 6xx CANCELs the other branches and is the answer once
 * they ended (their 487 does not win over it). */
static void test_6xx_cancels_the_others_and_wins(void **state)
{
    struct fx *f = *state;
    start(f);
    bind_bob_twice(f);
    invite_bob(f);
    size_t to_b = sent_to_since(f, 0, "INVITE ", BOB_B), to_a = sent_to_since(f, 0, "INVITE ", BOB_A);
    reply_to(f, to_a, BOB_A, 180, "Ringing");
    size_t mark = harness_sent_count(f->h);
    reply_to(f, to_b, BOB_B, 603, "Decline");
    size_t cancel = sent_to_since(f, mark, "CANCEL ", BOB_A);
    assert_int_equal(harness_find_sent(f->h, mark, "SIP/2.0 "), -1); /* waits for the CANCELled branch */
    reply_to(f, cancel, BOB_A, 200, "OK");
    reply_to(f, to_a, BOB_A, 487, "Request Terminated");
    assert_int_equal(answer_since(f, mark), 603);
}

/* ---- §16.10 CANCEL ---- */

/* §16.10: a CANCEL matching a proxied INVITE is answered 200 by us and
 * CANCELs every ringing branch; their 487 goes upstream. */
static void test_cancel_answered_and_forwarded_to_branches(void **state)
{
    struct fx *f = *state;
    start(f);
    bind_bob_twice(f);
    invite_bob(f);
    size_t to_b = sent_to_since(f, 0, "INVITE ", BOB_B), to_a = sent_to_since(f, 0, "INVITE ", BOB_A);
    reply_to(f, to_a, BOB_A, 180, "Ringing");
    reply_to(f, to_b, BOB_B, 180, "Ringing");
    size_t mark = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP,
                                    "CANCEL sip:bob@example.com SIP/2.0\n"
                                    "Via: SIP/2.0/UDP " CALLER ":5080;branch=z9hG4bK-caller1\n"
                                    "Max-Forwards: 70\nFrom: <sip:carol@other.net>;tag=f1\n"
                                    "To: <sip:bob@example.com>\nCall-ID: call-1@" CALLER "\n"
                                    "CSeq: 1 CANCEL\nContent-Length: 0\n\n"),
                     0);
    int ok = harness_find_sent(f->h, mark, "SIP/2.0 200");
    assert_true(ok >= 0);
    assert_int_equal(harness_sent_msg(f->h, (size_t)ok)->cseq.method, SIP_CANCEL);
    size_t ca = sent_to_since(f, mark, "CANCEL ", BOB_A), cb = sent_to_since(f, mark, "CANCEL ", BOB_B);
    assert_int_equal(f->not_taken, 0);
    size_t before_487 = harness_sent_count(f->h);
    reply_to(f, ca, BOB_A, 200, "OK");
    reply_to(f, cb, BOB_B, 200, "OK");
    reply_to(f, to_a, BOB_A, 487, "Request Terminated");
    reply_to(f, to_b, BOB_B, 487, "Request Terminated");
    assert_int_equal(answer_since(f, before_487), 487);
}

/* §16.10: a CANCEL matching nothing of ours is left to the core. */
static void test_cancel_of_unknown_invite_left_to_core(void **state)
{
    struct fx *f = *state;
    start(f);
    send_req(f, "CANCEL", "sip:bob@example.com", "");
    assert_int_equal(f->not_taken, 1);
}

/* ---- §16.8 timer C ---- */

/* §16.8: when timer C ([proxy] invite_timeout) fires, a ringing branch
 * is CANCELled; its 487 goes upstream. */
static void test_timer_c_cancels_ringing_branch(void **state)
{
    struct fx *f = *state;
    f->cfg.proxy.invite_timeout_s = 20;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    invite_bob(f);
    size_t inv = sent_to_since(f, 0, "INVITE ", BOB_A);
    reply_to(f, inv, BOB_A, 180, "Ringing");
    size_t mark = harness_sent_count(f->h);
    harness_advance(f->h, 19999);
    assert_int_equal(harness_find_sent(f->h, mark, "CANCEL "), -1);
    harness_advance(f->h, 1);
    size_t cancel = sent_to_since(f, mark, "CANCEL ", BOB_A);
    assert_int_equal(harness_find_sent(f->h, mark, "SIP/2.0 "), -1);
    reply_to(f, cancel, BOB_A, 200, "OK");
    reply_to(f, inv, BOB_A, 487, "Request Terminated");
    assert_int_equal(answer_since(f, mark), 487);
}

/* §16.8: a provisional restarts timer C. */
static void test_provisional_restarts_timer_c(void **state)
{
    struct fx *f = *state;
    f->cfg.proxy.invite_timeout_s = 20;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    invite_bob(f);
    size_t inv = sent_to_since(f, 0, "INVITE ", BOB_A);
    harness_advance(f->h, 15000);
    reply_to(f, inv, BOB_A, 180, "Ringing");
    size_t mark = harness_sent_count(f->h);
    harness_advance(f->h, 19000);
    assert_int_equal(harness_find_sent(f->h, mark, "CANCEL "), -1);
    harness_advance(f->h, 1000);
    (void)sent_to_since(f, mark, "CANCEL ", BOB_A);
}

/* §16.8: a branch that never answered counts as 408 when timer C fires
 * (before the client transaction's own timer B at 64*T1 = 32 s). */
static void test_timer_c_silent_branch_is_408(void **state)
{
    struct fx *f = *state;
    f->cfg.proxy.invite_timeout_s = 20;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    invite_bob(f);
    size_t mark = harness_sent_count(f->h);
    harness_advance(f->h, 20000);
    assert_int_equal(answer_since(f, mark), 408);
    assert_int_equal(harness_find_sent(f->h, mark, "CANCEL "), -1); /* nothing rang: nothing to CANCEL */
}

/* ---- [proxy] authenticate (RFC 3261 §22.3) ---- */

static const char *alice_invite =
    "INVITE sip:bob@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP " CALLER ":5080;branch=z9hG4bK-al%d\n"
    "Max-Forwards: 70\nFrom: <sip:alice@example.com>;tag=fa\nTo: <sip:bob@example.com>\n"
    "Call-ID: al@" CALLER "\nCSeq: %d INVITE\n%sContent-Length: 0\n\n";

static void send_alice(struct fx *f, int cseq, const char *extra)
{
    char text[4096];
    snprintf(text, sizeof(text), alice_invite, cseq, cseq, extra);
    assert_int_equal(harness_inject(f->h, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, text), 0);
}

/* The Proxy-Authorization line (ending in \n) answering the 407 last sent
 * as user/pw, for INVITE sip:bob@example.com. */
static void answer_407(struct fx *f, const char *user, const char *pw, char *line, size_t cap)
{
    char chal[1024];
    str_t v = harness_header(harness_last(f->h), SIP_HDR_PROXY_AUTHENTICATE);
    assert_true(v.len > 0);
    snprintf(chal, sizeof(chal), "%.*s", STR_FMT(v));
    struct auth_challenge ch;
    assert_int_equal(auth_parse_challenge(str_from_cstr(chal), &ch), 0);
    sbuf_t b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "Proxy-Authorization: ");
    assert_int_equal(auth_client_answer(&ch, str_from_cstr(user), str_from_cstr(pw), STR_LIT("INVITE"),
                                        STR_LIT("sip:bob@example.com"), 1, STR_NULL, &b),
                     0);
    sbuf_append_cstr(&b, "\n");
    assert_false(b.failed);
    snprintf(line, cap, "%.*s", (int)b.len, b.data);
    sbuf_free(&b);
}

/* §22.3: a new request claiming one of our users gets 407 with a
 * Proxy-Authenticate for our realm, and is not forwarded. */
static void test_our_user_without_credentials_gets_407(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    send_alice(f, 1, "");
    assert_int_equal(answer_since(f, 0), 407);
    assert_true(harness_header_has(harness_last(f->h), SIP_HDR_PROXY_AUTHENTICATE, "realm=\"example.com\""));
    assert_int_equal(harness_find_sent(f->h, 0, "INVITE "), -1);
}

/* §22.3: answered with the right password, the request is forwarded and
 * our realm's Proxy-Authorization is taken out of the copy. */
static void test_our_user_with_credentials_is_forwarded(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    send_alice(f, 1, "");
    char line[1024];
    answer_407(f, "alice", "secret-a", line, sizeof(line));
    size_t mark = harness_sent_count(f->h);
    send_alice(f, 2, line);
    int i = harness_find_sent(f->h, mark, "INVITE ");
    assert_true(i >= 0);
    assert_int_equal(harness_header_count(harness_sent_msg(f->h, (size_t)i), SIP_HDR_PROXY_AUTHORIZATION), 0);
}

/* §22.3: a wrong password is challenged again, and nothing is forwarded. */
static void test_wrong_password_is_challenged_again(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    send_alice(f, 1, "");
    char line[1024];
    answer_407(f, "alice", "wrong", line, sizeof(line));
    size_t mark = harness_sent_count(f->h);
    send_alice(f, 2, line);
    assert_int_equal(answer_since(f, mark), 407);
    assert_int_equal(harness_find_sent(f->h, 0, "INVITE "), -1);
}

/* [proxy] trusted: a source in the list is not challenged. */
static void test_trusted_source_is_not_challenged(void **state)
{
    struct fx *f = *state;
    assert_int_equal(config_parse_cidrs(f->cfg.proxy.trusted, &f->cfg.proxy.trusted_count, CONFIG_MAX_TRUSTED,
                                        CALLER "/32"),
                     0);
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    send_alice(f, 1, "");
    assert_true(harness_find_sent(f->h, 0, "INVITE ") >= 0);
    assert_int_equal(harness_find_sent(f->h, 0, "SIP/2.0 407"), -1);
}

/* §16.5: a request for another domain is refused when [proxy]
 * allow_foreign is off (the default): we are no open relay. */
static void test_foreign_domain_is_403_without_allow_foreign(void **state)
{
    struct fx *f = *state;
    start(f);
    send_req(f, "INVITE", "sip:x@192.0.2.30:5060", "");
    assert_int_equal(answer_since(f, 0), 403);
    assert_int_equal(harness_find_sent(f->h, 0, "INVITE "), -1);
}

/* §16.4: a request addressed to this node itself (no user part, no Route)
 * is not proxied: the core answers it. */
static void test_request_for_this_node_left_to_core(void **state)
{
    struct fx *f = *state;
    start(f);
    send_req(f, "OPTIONS", "sip:example.com", "");
    assert_int_equal(f->not_taken, 1);
    assert_int_equal(answer_since(f, 0), 604);
}

/* §16.6 step 2: a binding registered with a Path (RFC 3327 §5.4) is
 * reached through it: the Path is the forwarded request's first Route. */
static void test_binding_path_becomes_first_route(void **state)
{
    struct fx *f = *state;
    start(f);
    struct location_binding_in in = {
        .contact = STR_LIT("sip:bob@10.0.0.5:5070"), .expires_s = 3600, .q1000 = 1000,
        .call_id = STR_LIT("reg-path"), .cseq = 1, .transport = LOCATION_TRANSPORT_UDP,
        .path = STR_LIT("<sip:192.0.2.50:5060;lr>"),
    };
    assert_int_equal(location_update(f->loc, STR_LIT("bob"), &in, 1, f->h->now, NULL, NULL), 0);
    invite_bob(f);
    int i = harness_find_sent(f->h, 0, "INVITE ");
    assert_true(i >= 0);
    assert_true(harness_sent_to(f->h, (size_t)i, "192.0.2.50", 5060));
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    assert_true(str_eq(m->ruri_raw, STR_LIT("sip:bob@10.0.0.5:5070")));
    assert_true(str_eq(harness_header(m, SIP_HDR_ROUTE), STR_LIT("<sip:192.0.2.50:5060;lr>")));
}

/* bob's binding at contact that came through the edge at 192.0.2.50:5060
 * (its Path, with token pt00; pt01 for a later REGISTER, cseq 2). */
static void add_path_binding_as(struct fx *f, const char *contact, const char *path, uint32_t cseq)
{
    struct location_binding_in in = {
        .contact = str_from_cstr(contact), .expires_s = 3600, .q1000 = 1000,
        .call_id = STR_LIT("reg-path"), .cseq = cseq, .transport = LOCATION_TRANSPORT_UDP,
        .path = str_from_cstr(path),
    };
    assert_int_equal(location_update(f->loc, STR_LIT("bob"), &in, 1, f->h->now, NULL, NULL), 0);
}

static void add_path_binding(struct fx *f, const char *contact)
{
    add_path_binding_as(f, contact, "<sip:pt00@192.0.2.50:5060;lr;ob>", 1);
}

/* RFC 5626 §5.3: the edge a binding's Path names answers 430 Flow Failed:
 * the binding goes at once, and the caller, who knows nothing of flows,
 * gets 480 when it was bob's only one. */
static void test_430_from_edge_removes_the_binding_and_is_480(void **state)
{
    struct fx *f = *state;
    start(f);
    add_path_binding(f, "sip:bob@10.0.0.5:5070");
    invite_bob(f);
    int i = harness_find_sent(f->h, 0, "INVITE ");
    assert_true(i >= 0);
    assert_true(harness_sent_to(f->h, (size_t)i, "192.0.2.50", 5060));
    size_t mark = harness_sent_count(f->h);
    reply_to(f, (size_t)i, "192.0.2.50", 430, "Flow Failed");
    assert_int_equal(answer_since(f, mark), 480);
    const struct location_binding *bs[2];
    assert_int_equal(location_lookup(f->loc, STR_LIT("bob"), bs, 2), 0);
    struct proxy_stats st;
    proxy_get_stats(f->p, &st);
    assert_int_equal(st.flow_failed_removed, 1);
}

/* The phone registered again through the edge (a new flow: a new Path)
 * while the request was on its way over the old one: the 430 for the old
 * flow leaves the new binding alone. */
static void test_430_for_an_old_path_leaves_a_fresh_binding(void **state)
{
    struct fx *f = *state;
    start(f);
    add_path_binding(f, "sip:bob@10.0.0.5:5070");
    invite_bob(f);
    int i = harness_find_sent(f->h, 0, "INVITE ");
    assert_true(i >= 0);
    add_path_binding_as(f, "sip:bob@10.0.0.5:5070", "<sip:pt01@192.0.2.50:5060;lr;ob>", 2);
    size_t mark = harness_sent_count(f->h);
    reply_to(f, (size_t)i, "192.0.2.50", 430, "Flow Failed");
    assert_int_equal(answer_since(f, mark), 480);
    const struct location_binding *bs[2];
    assert_int_equal(location_lookup(f->loc, STR_LIT("bob"), bs, 2), 1);
    assert_string_equal(bs[0]->path, "<sip:pt01@192.0.2.50:5060;lr;ob>");
    struct proxy_stats st;
    proxy_get_stats(f->p, &st);
    assert_int_equal(st.flow_failed_removed, 0);
}

/* The same with another binding of bob's: it was tried as well (parallel
 * fork) and its answer is the caller's; it stays, the 430 one goes. A 430
 * from a binding without a Path (no edge of ours) removes nothing. */
static void test_430_from_edge_leaves_the_other_bindings(void **state)
{
    struct fx *f = *state;
    start(f);
    add_path_binding(f, "sip:bob@10.0.0.5:5070");
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 500);
    invite_bob(f);
    int e = harness_find_sent(f->h, 0, "INVITE ");
    while (e >= 0 && !harness_sent_to(f->h, (size_t)e, "192.0.2.50", 5060))
        e = harness_find_sent(f->h, (size_t)e + 1, "INVITE ");
    assert_true(e >= 0);
    size_t via_edge = (size_t)e;
    size_t direct = sent_to_since(f, 0, "INVITE ", BOB_A);
    size_t mark = harness_sent_count(f->h);
    reply_to(f, via_edge, "192.0.2.50", 430, "Flow Failed");
    reply_to(f, direct, BOB_A, 486, "Busy Here");
    assert_int_equal(answer_since(f, mark), 486);
    const struct location_binding *bs[2];
    assert_int_equal(location_lookup(f->loc, STR_LIT("bob"), bs, 2), 1);
    assert_string_equal(bs[0]->contact, "sip:bob@" BOB_A ":5070");
    mark = harness_sent_count(f->h);
    send_req(f, "MESSAGE", "sip:bob@example.com", "");
    reply_to(f, sent_to_since(f, mark, "MESSAGE ", BOB_A), BOB_A, 430, "Flow Failed");
    assert_int_equal(location_lookup(f->loc, STR_LIT("bob"), bs, 2), 1);
    struct proxy_stats st;
    proxy_get_stats(f->p, &st);
    assert_int_equal(st.flow_failed_removed, 1);
}

/* §16.7 step 6: a 503 from the only branch goes upstream as 500 (the
 * caller must not think this proxy is overloaded). */
static void test_503_from_branch_becomes_500(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    invite_bob(f);
    size_t inv = sent_to_since(f, 0, "INVITE ", BOB_A);
    size_t mark = harness_sent_count(f->h);
    reply_to(f, inv, BOB_A, 503, "Service Unavailable");
    assert_int_equal(answer_since(f, mark), 500);
}

/* §16.7 step 7: 407s from several branches are aggregated: the answer
 * upstream carries every branch's Proxy-Authenticate. */
static void test_407_challenges_are_aggregated(void **state)
{
    struct fx *f = *state;
    start(f);
    bind_bob_twice(f);
    invite_bob(f);
    size_t to_b = sent_to_since(f, 0, "INVITE ", BOB_B), to_a = sent_to_since(f, 0, "INVITE ", BOB_A);
    size_t mark = harness_sent_count(f->h);
    reply_with(f, to_a, BOB_A, 407, "Proxy Authentication Required",
               "Proxy-Authenticate: Digest realm=\"a.example\", nonce=\"na\"\n");
    reply_with(f, to_b, BOB_B, 407, "Proxy Authentication Required",
               "Proxy-Authenticate: Digest realm=\"b.example\", nonce=\"nb\"\n");
    assert_int_equal(answer_since(f, mark), 407);
    const struct sip_msg *m = harness_last(f->h);
    assert_int_equal(harness_header_count(m, SIP_HDR_PROXY_AUTHENTICATE), 2);
    assert_true(harness_header_has(m, SIP_HDR_PROXY_AUTHENTICATE, "realm=\"a.example\""));
    assert_true(harness_header_has(m, SIP_HDR_PROXY_AUTHENTICATE, "realm=\"b.example\""));
}

/* §16.8: a callee that ignores the CANCEL sent at timer C: the caller gets
 * 408 64*T1 (32 s) later. */
static void test_callee_ignoring_cancel_gets_408_after_64_t1(void **state)
{
    struct fx *f = *state;
    f->cfg.proxy.invite_timeout_s = 20;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    invite_bob(f);
    size_t inv = sent_to_since(f, 0, "INVITE ", BOB_A);
    reply_to(f, inv, BOB_A, 180, "Ringing");
    size_t mark = harness_sent_count(f->h);
    harness_advance(f->h, 20000);
    (void)sent_to_since(f, mark, "CANCEL ", BOB_A);
    harness_advance(f->h, 31999);
    assert_int_equal(harness_find_sent(f->h, mark, "SIP/2.0 "), -1);
    harness_advance(f->h, 1);
    assert_int_equal(answer_since(f, mark), 408);
}

/* Non-INVITE (issue 9, a deliberate deviation from RFC 4320 §4.2): a
 * request no branch answers gets 408 at [proxy] non_invite_timeout_ms,
 * before the sender's own timer F. */
static void test_unanswered_message_gets_408_at_deadline(void **state)
{
    struct fx *f = *state;
    f->cfg.proxy.non_invite_timeout_ms = 10000;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    send_req(f, "MESSAGE", "sip:bob@example.com", "");
    assert_true(harness_find_sent(f->h, 0, "MESSAGE ") >= 0);
    size_t mark = harness_sent_count(f->h);
    harness_advance(f->h, 9999);
    assert_int_equal(harness_find_sent(f->h, mark, "SIP/2.0 "), -1);
    harness_advance(f->h, 1);
    assert_int_equal(answer_since(f, mark), 408);
}

/* §16.7 step 5: the 2xx to a MESSAGE goes upstream without our Via. */
static void test_2xx_to_message_forwarded(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    send_req(f, "MESSAGE", "sip:bob@example.com", "");
    size_t msg = sent_to_since(f, 0, "MESSAGE ", BOB_A);
    size_t mark = harness_sent_count(f->h);
    reply_to(f, msg, BOB_A, 200, "OK");
    assert_int_equal(answer_since(f, mark), 200);
    assert_int_equal(harness_header_count(harness_last(f->h), SIP_HDR_VIA), 1);
}

/* [auth] match_user: authenticated as alice, a request may not claim to
 * be from dave: 403. */
static void test_credentials_of_another_user_are_403_with_match_user(void **state)
{
    struct fx *f = *state;
    f->cfg.auth.match_user = true;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    char text[4096];
    const char *dave =
        "INVITE sip:bob@example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP " CALLER ":5080;branch=z9hG4bK-dv%d\n"
        "Max-Forwards: 70\nFrom: <sip:dave@example.com>;tag=fd\nTo: <sip:bob@example.com>\n"
        "Call-ID: dv@" CALLER "\nCSeq: %d INVITE\n%sContent-Length: 0\n\n";
    snprintf(text, sizeof(text), dave, 1, 1, "");
    assert_int_equal(harness_inject(f->h, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, text), 0);
    char line[1024];
    answer_407(f, "alice", "secret-a", line, sizeof(line));
    size_t mark = harness_sent_count(f->h);
    snprintf(text, sizeof(text), dave, 2, 2, line);
    assert_int_equal(harness_inject(f->h, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, text), 0);
    assert_int_equal(answer_since(f, mark), 403);
    assert_int_equal(harness_find_sent(f->h, mark, "INVITE "), -1);
}

/* §16.7 step 10 / §13.2.2.4: the ACK for a 2xx is a new transaction the
 * caller sends along the route set; the proxy that record-routed relays it
 * statelessly to the callee's Contact, with its own Via on top, our Route
 * popped and Max-Forwards decremented. */
static void test_ack_for_2xx_relayed_statelessly(void **state)
{
    struct fx *f = *state;
    start(f);
    bind_bob_twice(f);
    invite_bob(f);
    size_t to_b = sent_to_since(f, 0, "INVITE ", BOB_B);
    /* the route set: our Record-Route in the INVITE as forwarded */
    str_t rr = harness_header(harness_sent_msg(f->h, to_b), SIP_HDR_RECORD_ROUTE);
    assert_true(rr.len > 0);
    char rrbuf[256];
    snprintf(rrbuf, sizeof(rrbuf), "%.*s", STR_FMT(rr));
    reply_with(f, to_b, BOB_B, 200, "OK", "Contact: <sip:bob@" BOB_B ":5070>\n");
    assert_true(harness_find_sent(f->h, 0, "SIP/2.0 200") >= 0);
    size_t mark = harness_sent_count(f->h);
    char text[2048];
    snprintf(text, sizeof(text),
             "ACK sip:bob@" BOB_B ":5070 SIP/2.0\nVia: SIP/2.0/UDP " CALLER ":5080;branch=z9hG4bK-ack2xx\n"
             "Route: %s\nMax-Forwards: 70\nFrom: <sip:carol@other.net>;tag=f1\n"
             "To: <sip:bob@example.com>;tag=callee\nCall-ID: call-1@" CALLER "\nCSeq: 1 ACK\n"
             "Content-Length: 0\n\n",
             rrbuf);
    assert_int_equal(harness_inject(f->h, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, text), 0);
    int ack = harness_find_sent(f->h, mark, "ACK ");
    assert_true(ack >= 0);
    assert_true(harness_sent_to(f->h, (size_t)ack, BOB_B, BOB_PORT));
    const struct sip_msg *a = harness_sent_msg(f->h, (size_t)ack);
    assert_int_equal(harness_header_count(a, SIP_HDR_VIA), 2);
    char top[256], below[256]; /* ours on top, the caller's below */
    str_t v0 = harness_header_nth(a, SIP_HDR_VIA, 0), v1 = harness_header_nth(a, SIP_HDR_VIA, 1);
    snprintf(top, sizeof(top), "%.*s", STR_FMT(v0));
    snprintf(below, sizeof(below), "%.*s", STR_FMT(v1));
    assert_non_null(strstr(top, f->h->local.host));
    assert_non_null(strstr(below, "z9hG4bK-ack2xx"));
    assert_int_equal(harness_header_count(a, SIP_HDR_ROUTE), 0);
    assert_int_equal(a->max_forwards, 69);
    assert_int_equal(harness_count_sent(f->h, mark, "ACK "), 1);
}

/* Refusals are logged with the sender, but a stranger's flood of one kind
 * (here 50 INVITEs for unknown users, 404) writes at most
 * LOG_RATELIMIT_BURST lines a second, and does not hide a refusal of another
 * kind (483) in the same second. Every request is still answered. */
static void test_refusal_flood_is_logged_bounded(void **state)
{
    struct fx *f = *state;
    f->cfg.proxy.pike_limit = 0; /* the per-source limit would answer 503 first */
    start(f);
    bind_bob_twice(f);
    char path[] = "/tmp/cascade-proxy-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *logf = fdopen(fd, "w+");
    log_set_file(logf);
    log_set_level(LOG_INFO); /* the unknown-user 404 is an info line */
    for (int i = 0; i < 50; i++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 "INVITE sip:nobody%d@example.com SIP/2.0\nVia: SIP/2.0/UDP 198.51.100.7:5080;branch=z9hG4bK-fl%d\n"
                 "Max-Forwards: 70\nFrom: <sip:x@other.net>;tag=f%d\nTo: <sip:nobody%d@example.com>\n"
                 "Call-ID: flood-%d\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
                 i, i, i, i, i);
        assert_int_equal(harness_inject(f->h, "198.51.100.7", 5080, SIP_TRANSPORT_UDP, text), 0);
    }
    assert_int_equal(harness_count_sent(f->h, 0, "SIP/2.0 404"), 50);
    assert_int_equal(harness_inject(f->h, "198.51.100.8", 5080, SIP_TRANSPORT_UDP,
                                    "INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP 198.51.100.8:5080;"
                                    "branch=z9hG4bK-mf0\nMax-Forwards: 0\nFrom: <sip:x@other.net>;tag=m\n"
                                    "To: <sip:bob@example.com>\nCall-ID: mf-flood\nCSeq: 1 INVITE\n"
                                    "Content-Length: 0\n\n"),
                     0);
    log_set_file(stderr);
    log_set_level(LOG_ERROR);
    fflush(logf);
    rewind(logf);
    char line[1024];
    int n404 = 0, n483 = 0;
    while (fgets(line, sizeof(line), logf)) {
        if (strstr(line, "proxy: 404") && strstr(line, "from 198.51.100.7:5080")) n404++;
        if (strstr(line, "proxy: 483") && strstr(line, "from 198.51.100.8:5080")) n483++;
    }
    fclose(logf);
    unlink(path);
    assert_true(n404 >= 1);
    assert_true(n404 <= 2 * LOG_RATELIMIT_BURST); /* the run may straddle a second */
    assert_int_equal(n483, 1);
}

/* [proxy] pike_limit: a source over its allowance per window gets 503 with
 * Retry-After (the window), and is not forwarded. */
static void test_source_over_pike_limit_gets_503(void **state)
{
    struct fx *f = *state;
    f->cfg.proxy.pike_limit = 2;
    start(f);
    send_req(f, "INVITE", "sip:nobody@example.com", "");
    send_req(f, "MESSAGE", "sip:nobody@example.com", "");
    size_t mark = harness_sent_count(f->h);
    send_req(f, "INFO", "sip:nobody@example.com", "");
    assert_int_equal(answer_since(f, mark), 503);
    assert_true(str_eq(harness_header(harness_last(f->h), SIP_HDR_RETRY_AFTER), STR_LIT("2")));
}

/* ---- redirect mode (§8.3, [proxy] mode = redirect) ---- */

/* A redirect server answers 302 with every binding as a Contact (q kept
 * when below 1, expires left) and forwards nothing. */
static void test_redirect_answers_302_with_contacts(void **state)
{
    struct fx *f = *state;
    snprintf(f->cfg.proxy.mode, sizeof(f->cfg.proxy.mode), "redirect");
    start(f);
    bind_bob_twice(f);
    harness_advance(f->h, 600000);
    invite_bob(f);
    assert_int_equal(answer_since(f, 0), 302);
    const struct sip_msg *m = harness_last(f->h);
    assert_int_equal(harness_header_count(m, SIP_HDR_CONTACT), 2);
    assert_true(str_eq(harness_header_nth(m, SIP_HDR_CONTACT, 0), STR_LIT("<sip:bob@" BOB_B ":5070>;expires=3000")));
    assert_true(
        str_eq(harness_header_nth(m, SIP_HDR_CONTACT, 1), STR_LIT("<sip:bob@" BOB_A ":5070>;q=0.500;expires=3000")));
    assert_int_equal(harness_find_sent(f->h, 0, "INVITE "), -1);
}

/* Redirect mode answers an unknown user 404 as the proxy does. */
static void test_redirect_unknown_user_is_404(void **state)
{
    struct fx *f = *state;
    snprintf(f->cfg.proxy.mode, sizeof(f->cfg.proxy.mode), "redirect");
    start(f);
    send_req(f, "INVITE", "sip:nobody@example.com", "");
    assert_int_equal(answer_since(f, 0), 404);
}

/* ---- transports: IPv6, sips (RFC 5630), WebSocket flows and flow tokens (RFC 7118, RFC 5626) ---- */

#define BOB_WS_CONTACT "sip:bob@df7jal23ls0d.invalid;transport=ws"
#define BOB_WS_CONN 9u

/* A binding of aor to contact made over transport tp, from ip:port, on
 * connection conn (0: none), with RFC 5626 reg-id (0: none). */
static void add_binding_over(struct fx *f, const char *aor, const char *contact, enum location_transport tp,
                             uint64_t conn, const char *ip, uint16_t port, uint32_t reg_id)
{
    struct sockaddr_storage src;
    assert_int_equal(transport_addr_parse(ip, strlen(ip), port, &src), 0);
    char call_id[96];
    snprintf(call_id, sizeof(call_id), "reg-%s", contact);
    struct location_binding_in in = {
        .contact = str_from_cstr(contact), .expires_s = 3600, .q1000 = 1000, .call_id = str_from_cstr(call_id),
        .cseq = 1, .transport = tp, .remote_addr = (const struct sockaddr *)&src, .conn_id = conn,
        .reg_id = reg_id, .instance = reg_id ? STR_LIT("<urn:uuid:00000000-0000-1000-8000-000000000001>") : STR_NULL,
    };
    assert_int_equal(location_update(f->loc, str_from_cstr(aor), &in, 1, f->h->now, NULL, NULL), 0);
}

/* A request as send_req's, from ip:port over proto (on connection conn for
 * a stream transport), with contact as its Contact URI, route (may be "")
 * as Route lines, a To tag when to_tag. */
static void send_over(struct fx *f, const char *ip, uint16_t port, enum sip_transport proto, uint64_t conn,
                      const char *method, const char *ruri, const char *contact, const char *route, bool to_tag)
{
    bool v6 = strchr(ip, ':') != NULL;
    char text[4096];
    snprintf(text, sizeof(text),
             "%s %s SIP/2.0\n"
             "Via: SIP/2.0/%s %s%s%s:%u;branch=z9hG4bK-%s%u\n"
             "Max-Forwards: 70\n"
             "From: <sip:carol@other.net>;tag=f1\n"
             "To: <%s>%s\n"
             "Call-ID: call-t@other.net\n"
             "CSeq: 2 %s\n"
             "Contact: <%s>\n"
             "%s"
             "Content-Length: 0\n\n",
             method, ruri, sip_transport_via_name(proto), v6 ? "[" : "", ip, v6 ? "]" : "", port, method,
             (unsigned)harness_sent_count(f->h), ruri, to_tag ? ";tag=t1" : "", method, contact, route);
    f->h->conn_id = conn;
    assert_int_equal(harness_inject(f->h, ip, port, proto, text), 0);
}

/* The request starting with prefix sent since from (fails when none). */
static const struct sip_msg *sent_req(struct fx *f, size_t from, const char *prefix, size_t *index)
{
    int i = harness_find_sent(f->h, from, prefix);
    assert_true(i >= 0);
    if (index) *index = (size_t)i;
    return harness_sent_msg(f->h, (size_t)i);
}

/* The final answer to a request that came from ip:port since from. */
static int final_since(struct fx *f, size_t from, const char *ip, uint16_t port, str_t *warning)
{
    for (int i = harness_find_sent(f->h, from, "SIP/2.0 "); i >= 0; i = harness_find_sent(f->h, (size_t)i + 1, "SIP/2.0 ")) {
        int st = harness_sent_status(f->h, (size_t)i);
        if (st < 200 || !harness_sent_to(f->h, (size_t)i, ip, port)) continue;
        if (warning) *warning = harness_header(harness_sent_msg(f->h, (size_t)i), SIP_HDR_WARNING);
        return st;
    }
    fail_msg("no final answer sent to %s:%u", ip, port);
    return 0;
}

/* RFC 3261 §25.1 (IPv6reference): listening on ::1, our Via sent-by and
 * Record-Route carry the brackets, and a Route naming [::1] is ours. */
static void test_ipv6_host_is_bracketed_in_via_and_record_route(void **state)
{
    struct fx *f = *state;
    snprintf(f->h->local.host, sizeof(f->h->local.host), "::1");
    start(f);
    add_binding(f, "bob", "sip:bob@[2001:db8::20]:5070", 1000);
    send_over(f, "2001:db8::9", 5080, SIP_TRANSPORT_UDP, 0, "INVITE", "sip:bob@example.com",
              "sip:carol@[2001:db8::9]:5080", "", false);
    size_t inv;
    const struct sip_msg *m = sent_req(f, 0, "INVITE ", &inv);
    assert_true(harness_sent_to(f->h, inv, "2001:db8::20", 5070));
    str_t via = harness_header(m, SIP_HDR_VIA);
    assert_true(via.len > 25 && !memcmp(via.s, "SIP/2.0/UDP [::1]:5060;branch=", 30));
    assert_true(str_eq(harness_header(m, SIP_HDR_RECORD_ROUTE), STR_LIT("<sip:[::1]:5060;lr>")));
    /* The callee's BYE, routed by that Record-Route, reaches the caller. */
    size_t mark = harness_sent_count(f->h);
    send_over(f, "2001:db8::20", 5070, SIP_TRANSPORT_UDP, 0, "BYE", "sip:carol@[2001:db8::9]:5080",
              "sip:bob@[2001:db8::20]:5070", "Route: <sip:[::1]:5060;lr>\n", true);
    size_t bye;
    m = sent_req(f, mark, "BYE ", &bye);
    assert_true(harness_sent_to(f->h, bye, "2001:db8::9", 5080));
    assert_int_equal(harness_header_count(m, SIP_HDR_ROUTE), 0);
}

/* RFC 5630 §4, RFC 3261 §26.2.2 as RFC 5630 updates it: sips: means TLS on
 * every hop; a sips: request that arrived over UDP is refused with 480 and
 * warn-code 380, and goes nowhere. */
static void test_sips_request_over_udp_is_480_sips_not_allowed(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding_over(f, "bob", "sips:bob@" BOB_B ":5071", LOCATION_TRANSPORT_TLS, 7, BOB_B, 40000, 0);
    send_req(f, "INVITE", "sips:bob@example.com", "");
    str_t warning;
    assert_int_equal(final_since(f, 0, CALLER, CALLER_PORT, &warning), 480);
    assert_true(warning.len > 4 && !memcmp(warning.s, "380 ", 4));
    assert_int_equal(harness_find_sent(f->h, 0, "INVITE "), -1);
}

/* RFC 5630 §5.3: a sips: request goes only to a binding with a sips:
 * Contact reached over TLS, keeps its sips: R-URI, leaves with Via TLS and
 * a sips: Record-Route (no transport=tls). */
static void test_sips_request_goes_only_to_the_tls_binding(void **state)
{
    struct fx *f = *state;
    f->h->local.port[SIP_TRANSPORT_TLS] = 5061;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    add_binding_over(f, "bob", "sips:bob@" BOB_B ":5071", LOCATION_TRANSPORT_TLS, 7, BOB_B, 40000, 0);
    send_over(f, CALLER, 5081, SIP_TRANSPORT_TLS, 3, "INVITE", "sips:bob@example.com", "sips:carol@" CALLER ":5081",
              "", false);
    assert_int_equal(harness_count_sent(f->h, 0, "INVITE "), 1);
    size_t inv;
    const struct sip_msg *m = sent_req(f, 0, "INVITE ", &inv);
    assert_int_equal(f->h->sent[inv].dest.proto, SIP_TRANSPORT_TLS);
    assert_int_equal(f->h->sent[inv].dest.conn_id, 7);
    assert_true(str_eq(m->ruri_raw, STR_LIT("sips:bob@" BOB_B ":5071")));
    str_t via = harness_header(m, SIP_HDR_VIA);
    assert_true(via.len > 28 && !memcmp(via.s, "SIP/2.0/TLS 192.0.2.1:5061;", 27));
    assert_int_equal(harness_header_count(m, SIP_HDR_RECORD_ROUTE), 1);
    assert_true(str_eq(harness_header(m, SIP_HDR_RECORD_ROUTE), STR_LIT("<sips:192.0.2.1:5061;lr>")));
}

/* RFC 5630 §5.3: bindings reached over UDP, or over TLS with a sip:
 * Contact (the UA did not ask for sips), never get a sips: request: 480
 * with warn-code 380 (SIPS Not Allowed, RFC 5630 §9). */
static void test_sips_request_without_secure_binding_is_480(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    add_binding_over(f, "bob", "sip:bob@" BOB_B ":5071;transport=tls", LOCATION_TRANSPORT_TLS, 7, BOB_B, 40000, 0);
    send_over(f, CALLER, 5081, SIP_TRANSPORT_TLS, 3, "INVITE", "sips:bob@example.com", "sips:carol@" CALLER ":5081",
              "", false);
    str_t warning;
    assert_int_equal(final_since(f, 0, CALLER, 5081, &warning), 480);
    assert_true(warning.len > 4 && !memcmp(warning.s, "380 ", 4));
    assert_int_equal(harness_find_sent(f->h, 0, "INVITE "), -1);
}

/* RFC 5630 §5.3: a sip: request to a binding with a sips: Contact goes
 * with the scheme replaced by sip:, over TLS all the same. */
static void test_sip_request_to_sips_contact_goes_over_tls_with_sip_uri(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding_over(f, "bob", "sips:bob@" BOB_B ":5071", LOCATION_TRANSPORT_TLS, 7, BOB_B, 40000, 0);
    invite_bob(f);
    size_t inv;
    const struct sip_msg *m = sent_req(f, 0, "INVITE ", &inv);
    assert_int_equal(f->h->sent[inv].dest.proto, SIP_TRANSPORT_TLS);
    assert_int_equal(f->h->sent[inv].dest.conn_id, 7);
    assert_true(str_eq(m->ruri_raw, STR_LIT("sip:bob@" BOB_B ":5071")));
}

/* RFC 7118 §5, RFC 5626 §5.3: a WebSocket client's Contact host is a
 * made-up .invalid name: it is reached over the connection it registered
 * on, with Via WS, never by resolving the Contact; the Record-Route facing
 * it carries a flow token. */
/* Redirect mode leaves WebSocket bindings out of its 302: a caller sent to a
 * .invalid Contact cannot reach it (RFC 7118 §5.2); with nothing else: 480. */
static void test_redirect_leaves_out_websocket_bindings(void **state)
{
    struct fx *f = *state;
    snprintf(f->cfg.proxy.mode, sizeof(f->cfg.proxy.mode), "redirect");
    start(f);
    add_binding_over(f, "bob", BOB_WS_CONTACT, LOCATION_TRANSPORT_WS, BOB_WS_CONN, BOB_A, 51000, 0);
    invite_bob(f);
    assert_int_equal(answer_since(f, 0), 480);
    size_t mark = f->h->nsent;
    add_binding_over(f, "bob", "sip:bob@" BOB_B ":5070", LOCATION_TRANSPORT_UDP, 0, BOB_B, 5070, 0);
    invite_bob(f);
    assert_int_equal(answer_since(f, mark), 302);
    const struct sip_msg *m = harness_last(f->h);
    assert_int_equal(harness_header_count(m, SIP_HDR_CONTACT), 1);
    assert_true(str_eq(harness_header_nth(m, SIP_HDR_CONTACT, 0), STR_LIT("<sip:bob@" BOB_B ":5070>;expires=3600")));
}

static void test_ws_binding_is_reached_on_its_flow(void **state)
{
    struct fx *f = *state;
    f->h->local.port[SIP_TRANSPORT_WS] = 8080;
    start(f);
    add_binding_over(f, "bob", BOB_WS_CONTACT, LOCATION_TRANSPORT_WS, BOB_WS_CONN, BOB_A, 51000, 0);
    invite_bob(f);
    size_t inv;
    const struct sip_msg *m = sent_req(f, 0, "INVITE ", &inv);
    assert_int_equal(f->h->sent[inv].dest.proto, SIP_TRANSPORT_WS);
    assert_int_equal(f->h->sent[inv].dest.conn_id, BOB_WS_CONN);
    assert_int_equal(f->h->sent[inv].dest.addr.ss_family, AF_UNSPEC); /* nothing to reconnect to */
    assert_true(str_eq(m->ruri_raw, STR_LIT(BOB_WS_CONTACT)));
    str_t via = harness_header(m, SIP_HDR_VIA);
    assert_true(via.len > 27 && !memcmp(via.s, "SIP/2.0/WS 192.0.2.1:8080;", 26));
    /* RFC 5658: one entry per side; the one facing bob (on top) has the token */
    assert_int_equal(harness_header_count(m, SIP_HDR_RECORD_ROUTE), 2);
    char out[128];
    str_t rr = harness_header_nth(m, SIP_HDR_RECORD_ROUTE, 0);
    snprintf(out, sizeof(out), "%.*s", STR_FMT(rr));
    assert_true(!strncmp(out, "<sip:ft", 7));
    assert_non_null(strstr(out, "@192.0.2.1:8080;transport=ws;lr;ob>"));
    assert_true(str_eq(harness_header_nth(m, SIP_HDR_RECORD_ROUTE, 1), STR_LIT("<sip:192.0.2.1:5060;lr>")));
}

/* RFC 7118 §5: a WebSocket binding whose connection is gone cannot be
 * reached at all (nobody connects to a browser): 480, nothing sent. */
static void test_ws_binding_with_flow_gone_is_480(void **state)
{
    struct fx *f = *state;
    start(f);
    add_binding_over(f, "bob", BOB_WS_CONTACT, LOCATION_TRANSPORT_WS, 0, BOB_A, 51000, 0);
    invite_bob(f);
    assert_int_equal(answer_since(f, 0), 480);
    assert_int_equal(harness_find_sent(f->h, 0, "INVITE "), -1);
}

/* The Record-Route entries of the INVITE forwarded to the WS binding,
 * as the callee (rr) and the caller (reversed) will put them in Route. */
static void ws_call_routes(struct fx *f, char *callee_route, char *caller_route, size_t cap, char *token_entry)
{
    f->h->local.port[SIP_TRANSPORT_WS] = 8080;
    start(f);
    add_binding_over(f, "bob", BOB_WS_CONTACT, LOCATION_TRANSPORT_WS, BOB_WS_CONN, BOB_A, 51000, 0);
    invite_bob(f);
    const struct sip_msg *m = sent_req(f, 0, "INVITE ", NULL);
    str_t out = harness_header_nth(m, SIP_HDR_RECORD_ROUTE, 0), in = harness_header_nth(m, SIP_HDR_RECORD_ROUTE, 1);
    snprintf(callee_route, cap, "Route: %.*s\nRoute: %.*s\n", STR_FMT(out), STR_FMT(in));
    snprintf(caller_route, cap, "Route: %.*s\nRoute: %.*s\n", STR_FMT(in), STR_FMT(out));
    snprintf(token_entry, cap, "%.*s", STR_FMT(out));
}

/* RFC 5626 §5.3: a request in the dialog coming back with our flow token
 * in its Route goes over that flow, whatever its R-URI says; the callee's
 * own request (the token names the flow it came on) goes by its R-URI. */
static void test_flow_token_round_trip(void **state)
{
    struct fx *f = *state;
    char callee_route[512], caller_route[512], tok[256];
    ws_call_routes(f, callee_route, caller_route, sizeof(callee_route), tok);
    size_t mark = harness_sent_count(f->h);
    send_over(f, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, 0, "BYE", BOB_WS_CONTACT, "sip:carol@" CALLER ":5080",
              caller_route, true);
    size_t bye;
    const struct sip_msg *m = sent_req(f, mark, "BYE ", &bye);
    assert_int_equal(f->h->sent[bye].dest.proto, SIP_TRANSPORT_WS);
    assert_int_equal(f->h->sent[bye].dest.conn_id, BOB_WS_CONN);
    assert_int_equal(harness_header_count(m, SIP_HDR_ROUTE), 0);
    str_t via = harness_header(m, SIP_HDR_VIA);
    assert_true(via.len > 11 && !memcmp(via.s, "SIP/2.0/WS ", 11));

    mark = harness_sent_count(f->h);
    send_over(f, BOB_A, 51000, SIP_TRANSPORT_WS, BOB_WS_CONN, "BYE", "sip:carol@" CALLER ":5080", BOB_WS_CONTACT,
              callee_route, true);
    m = sent_req(f, mark, "BYE ", &bye);
    assert_int_equal(f->h->sent[bye].dest.proto, SIP_TRANSPORT_UDP);
    assert_true(harness_sent_to(f->h, bye, CALLER, CALLER_PORT));
}

/* RFC 5626 §5.3: a flow token that does not pass its integrity check (one
 * digit changed) is refused with 403, and nothing is sent on. */
static void test_tampered_flow_token_is_403(void **state)
{
    struct fx *f = *state;
    char callee_route[512], caller_route[512], tok[256];
    ws_call_routes(f, callee_route, caller_route, sizeof(callee_route), tok);
    char *digit = strstr(caller_route, "<sip:ft") + 8; /* a digit of the token (its version byte) */
    *digit = *digit == '0' ? '1' : '0';
    size_t mark = harness_sent_count(f->h);
    send_over(f, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, 0, "BYE", BOB_WS_CONTACT, "sip:carol@" CALLER ":5080",
              caller_route, true);
    assert_int_equal(final_since(f, mark, CALLER, CALLER_PORT, NULL), 403);
    assert_int_equal(harness_find_sent(f->h, mark, "BYE "), -1);
}

/* RFC 5626 §5.3: the flow the token names is gone: 430 Flow Failed (the
 * proxy does not open a new connection towards the client). */
static void test_flow_token_of_gone_flow_is_430(void **state)
{
    struct fx *f = *state;
    char callee_route[512], caller_route[512], tok[256];
    ws_call_routes(f, callee_route, caller_route, sizeof(callee_route), tok);
    f->h->dead_conn_id = BOB_WS_CONN;
    size_t mark = harness_sent_count(f->h);
    send_over(f, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, 0, "BYE", BOB_WS_CONTACT, "sip:carol@" CALLER ":5080",
              caller_route, true);
    harness_advance(f->h, 10);
    assert_int_equal(final_since(f, mark, CALLER, CALLER_PORT, NULL), 430);
    assert_int_equal(harness_find_sent(f->h, mark, "BYE "), -1);
}

/* RFC 5626 §5.3: a caller on a WebSocket gets a flow token in the entry
 * facing it, so the callee's requests reach it over its flow although its
 * Contact (a .invalid host) cannot be resolved. */
static void test_ws_caller_is_reached_through_its_token(void **state)
{
    struct fx *f = *state;
    f->h->local.port[SIP_TRANSPORT_WS] = 8080;
    start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000);
    send_over(f, "192.0.2.30", 52000, SIP_TRANSPORT_WS, 4, "INVITE", "sip:bob@example.com",
              "sip:carol@k3x9.invalid;transport=ws", "", false);
    const struct sip_msg *m = sent_req(f, 0, "INVITE ", NULL);
    assert_int_equal(harness_header_count(m, SIP_HDR_RECORD_ROUTE), 2);
    str_t out = harness_header_nth(m, SIP_HDR_RECORD_ROUTE, 0), in = harness_header_nth(m, SIP_HDR_RECORD_ROUTE, 1);
    assert_true(str_eq(out, STR_LIT("<sip:192.0.2.1:5060;lr>")));
    assert_true(in.len > 7 && !memcmp(in.s, "<sip:ft", 7));
    char route[512];
    snprintf(route, sizeof(route), "Route: %.*s\nRoute: %.*s\n", STR_FMT(out), STR_FMT(in));
    size_t mark = harness_sent_count(f->h);
    send_over(f, BOB_A, BOB_PORT, SIP_TRANSPORT_UDP, 0, "BYE", "sip:carol@k3x9.invalid;transport=ws",
              "sip:bob@" BOB_A ":5070", route, true);
    size_t bye;
    sent_req(f, mark, "BYE ", &bye);
    assert_int_equal(f->h->sent[bye].dest.proto, SIP_TRANSPORT_WS);
    assert_int_equal(f->h->sent[bye].dest.conn_id, 4);
}

/* ---- edge mode ([proxy] edge_registrar, RFC 3327, RFC 5626 §5.1) ---- */

#define EDGE_REG "192.0.2.50"

/* Path tokens: every kind of flow comes back as it went in; a changed
 * digit, another key, a wrong length are refused. */
static void test_path_token_round_trip(void **state)
{
    (void)state;
    struct proxy_flow_key k, other;
    assert_int_equal(proxy_flow_key_init(&k), 0);
    assert_int_equal(proxy_flow_key_init(&other), 0);
    struct transport_dest in[3];
    memset(in, 0, sizeof(in));
    in[0].proto = SIP_TRANSPORT_UDP;
    in[0].listener_id = 3;
    assert_int_equal(transport_addr_parse("192.0.2.9", 9, 5080, &in[0].addr), 0);
    in[1].proto = SIP_TRANSPORT_TCP;
    in[1].conn_id = 0x0102030405060708ull;
    in[2].proto = SIP_TRANSPORT_UDP;
    in[2].listener_id = 1;
    assert_int_equal(transport_addr_parse("2001:db8::9", 11, 5090, &in[2].addr), 0);
    for (int i = 0; i < 3; i++) {
        char tok[PROXY_PATH_TOKEN_MAX + 1];
        int n = proxy_path_token_make(&k, &in[i], tok, sizeof(tok));
        assert_true(n > 2 && n <= PROXY_PATH_TOKEN_MAX && (size_t)n == strlen(tok));
        struct transport_dest out;
        assert_int_equal(proxy_path_token_parse(&k, str_from_cstr(tok), &out), 0);
        assert_int_equal(out.proto, in[i].proto);
        assert_int_equal(out.conn_id, in[i].conn_id);
        assert_int_equal(out.listener_id, in[i].listener_id);
        if (in[i].proto == SIP_TRANSPORT_UDP) assert_true(transport_addr_equal(&out.addr, &in[i].addr));
        else assert_int_equal(out.addr.ss_family, 0); /* a gone connection is never reopened */
        assert_int_equal(proxy_path_token_parse(&other, str_from_cstr(tok), &out), -1);
        for (int d = 2; d < n; d++) {
            char bad[PROXY_PATH_TOKEN_MAX + 1];
            memcpy(bad, tok, (size_t)n + 1);
            bad[d] = bad[d] == '0' ? '1' : '0';
            assert_int_equal(proxy_path_token_parse(&k, str_from_cstr(bad), &out), -1);
        }
        assert_int_equal(proxy_path_token_parse(&k, str_make(tok, (size_t)n - 2), &out), -1);
    }
    struct transport_dest none = {.proto = SIP_TRANSPORT_TCP};
    char tok[PROXY_PATH_TOKEN_MAX + 1];
    assert_int_equal(proxy_path_token_make(&k, &none, tok, sizeof(tok)), -1);
    assert_int_equal(proxy_path_token_make(&k, &in[0], tok, 10), -1);
    assert_int_equal(proxy_path_token_parse(&k, STR_LIT("ft00"), &none), -1);
}

static void edge_start(struct fx *f)
{
    snprintf(f->cfg.proxy.edge_registrar, sizeof(f->cfg.proxy.edge_registrar), "sip:" EDGE_REG ":5070");
    start(f);
}

/* alice REGISTERs through the edge from ip:port over proto (conn); the
 * copy sent to the edge registrar is returned, its Path value in path. */
static const struct sip_msg *edge_register(struct fx *f, const char *ip, uint16_t port, enum sip_transport proto,
                                           uint64_t conn, char *path, size_t cap, size_t *index)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "REGISTER sip:example.com SIP/2.0\n"
             "Via: SIP/2.0/%s %s:%u;branch=z9hG4bK-reg%u\n"
             "Max-Forwards: 70\n"
             "From: <sip:alice@example.com>;tag=r1\n"
             "To: <sip:alice@example.com>\n"
             "Call-ID: reg-alice\n"
             "CSeq: %u REGISTER\n"
             "Contact: <sip:alice@%s:%u;transport=%s>\n"
             "Content-Length: 0\n\n",
             sip_transport_via_name(proto), ip, port, (unsigned)harness_sent_count(f->h),
             (unsigned)harness_sent_count(f->h) + 1, ip, port, sip_transport_param(proto));
    size_t mark = harness_sent_count(f->h);
    f->h->conn_id = conn;
    assert_int_equal(harness_inject(f->h, ip, port, proto, text), 0);
    const struct sip_msg *m = sent_req(f, mark, "REGISTER ", index);
    assert_true(harness_sent_to(f->h, *index, EDGE_REG, 5070));
    str_t pv = harness_header(m, SIP_HDR_PATH);
    snprintf(path, cap, "%.*s", STR_FMT(pv));
    return m;
}

/* RFC 3327 §4.2, RFC 5626 §5.1: a REGISTER for our domain is not
 * registered here: it goes to the edge registrar with our Path (a token
 * for the client's flow, ;lr;ob) and Supported: path, no Record-Route, not
 * challenged; the registrar's 401 goes back to the client. */
static void test_edge_register_goes_to_registrar_with_path(void **state)
{
    struct fx *f = *state;
    edge_start(f);
    char path[256];
    size_t i;
    const struct sip_msg *m = edge_register(f, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, 0, path, sizeof(path), &i);
    assert_true(!strncmp(path, "<sip:pt", 7));
    assert_non_null(strstr(path, "@192.0.2.1:5060;transport=udp;lr;ob>"));
    assert_true(harness_header_has(m, SIP_HDR_SUPPORTED, "path"));
    assert_true(harness_header_has(m, SIP_HDR_ROUTE, "<sip:" EDGE_REG ":5070;lr>"));
    assert_int_equal(harness_header_count(m, SIP_HDR_RECORD_ROUTE), 0);
    const struct location_binding *bs[2];
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), bs, 2), 0);
    size_t mark = harness_sent_count(f->h);
    reply_with(f, i, EDGE_REG, 401, "Unauthorized", "WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n1\"\n");
    assert_int_equal(final_since(f, mark, CALLER, CALLER_PORT, NULL), 401);
    assert_true(harness_header_has(harness_last(f->h), SIP_HDR_WWW_AUTHENTICATE, "nonce=\"n1\""));
    struct proxy_stats st;
    proxy_get_stats(f->p, &st);
    assert_int_equal(st.edge_registers, 1);
    assert_int_equal(st.challenged, 0);
}

/* An INVITE from the registrar with our Path as its Route goes to the
 * client's UDP flow (its source address), the Route gone; our
 * Record-Route facing the client names its flow too. */
static void test_edge_path_route_reaches_the_client_flow(void **state)
{
    struct fx *f = *state;
    edge_start(f);
    char path[256], route[300];
    size_t i;
    edge_register(f, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, 0, path, sizeof(path), &i);
    snprintf(route, sizeof(route), "Route: %s\n", path);
    size_t mark = harness_sent_count(f->h);
    send_over(f, EDGE_REG, 5070, SIP_TRANSPORT_UDP, 0, "INVITE", "sip:alice@10.0.0.9:5080", "sip:bob@" EDGE_REG ":5070",
              route, false);
    const struct sip_msg *m = sent_req(f, mark, "INVITE ", &i);
    assert_true(harness_sent_to(f->h, i, CALLER, CALLER_PORT));
    assert_int_equal(harness_header_count(m, SIP_HDR_ROUTE), 0);
    assert_true(str_eq(m->ruri_raw, STR_LIT("sip:alice@10.0.0.9:5080")));
    str_t top = harness_header_nth(m, SIP_HDR_RECORD_ROUTE, 0);
    assert_true(top.len > 7 && !memcmp(top.s, "<sip:pt", 7));
    struct proxy_stats st;
    proxy_get_stats(f->p, &st);
    assert_int_equal(st.path_routed, 1);
    assert_int_equal(st.challenged, 0);
}

/* RFC 5626 §5.3: a Path token that does not verify is 403, nothing sent. */
static void test_edge_forged_path_token_is_403(void **state)
{
    struct fx *f = *state;
    edge_start(f);
    char path[256], route[300];
    size_t i;
    edge_register(f, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, 0, path, sizeof(path), &i);
    path[9] = path[9] == '0' ? '1' : '0';
    snprintf(route, sizeof(route), "Route: %s\n", path);
    size_t mark = harness_sent_count(f->h);
    send_over(f, EDGE_REG, 5070, SIP_TRANSPORT_UDP, 0, "INVITE", "sip:alice@10.0.0.9:5080", "sip:bob@" EDGE_REG ":5070",
              route, false);
    assert_int_equal(final_since(f, mark, EDGE_REG, 5070, NULL), 403);
    assert_int_equal(harness_find_sent(f->h, mark, "INVITE "), -1);
}

/* RFC 5626 §5.3: the TCP connection the Path token names is gone: 430
 * Flow Failed to the registrar, no new connection towards the client. */
static void test_edge_gone_flow_is_430(void **state)
{
    struct fx *f = *state;
    edge_start(f);
    char path[256], route[300];
    size_t i;
    edge_register(f, CALLER, 40000, SIP_TRANSPORT_TCP, 77, path, sizeof(path), &i);
    assert_non_null(strstr(path, ";transport=udp;lr;ob>")); /* our port towards the registrar */
    f->h->dead_conn_id = 77;
    snprintf(route, sizeof(route), "Route: %s\n", path);
    size_t mark = harness_sent_count(f->h);
    send_over(f, EDGE_REG, 5070, SIP_TRANSPORT_UDP, 0, "MESSAGE", "sip:alice@10.0.0.9:5080",
              "sip:bob@" EDGE_REG ":5070", route, false);
    harness_advance(f->h, 10);
    assert_int_equal(final_since(f, mark, EDGE_REG, 5070, NULL), 430);
    struct proxy_stats st;
    proxy_get_stats(f->p, &st);
    assert_int_equal(st.flow_failed, 1);
}

/* A client's INVITE for another user of our domain goes to the registrar
 * (no 407 here, no local lookup), record-routed: the entry facing the
 * client carries its flow's token. */
static void test_edge_client_request_goes_to_registrar(void **state)
{
    struct fx *f = *state;
    edge_start(f);
    add_binding(f, "bob", "sip:bob@" BOB_A ":5070", 1000); /* ignored in edge mode */
    char text[1024];
    snprintf(text, sizeof(text),
             "INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP " CALLER ":5080;branch=z9hG4bK-e1\n"
             "Max-Forwards: 70\nFrom: <sip:alice@example.com>;tag=a1\nTo: <sip:bob@example.com>\n"
             "Call-ID: edge-1\nCSeq: 1 INVITE\nContact: <sip:alice@" CALLER ":5080>\nContent-Length: 0\n\n");
    assert_int_equal(harness_inject(f->h, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, text), 0);
    size_t i;
    const struct sip_msg *m = sent_req(f, 0, "INVITE ", &i);
    assert_true(harness_sent_to(f->h, i, EDGE_REG, 5070));
    assert_true(str_eq(m->ruri_raw, STR_LIT("sip:bob@example.com")));
    assert_true(harness_header_has(m, SIP_HDR_ROUTE, "<sip:" EDGE_REG ":5070;lr>"));
    assert_int_equal(harness_header_count(m, SIP_HDR_RECORD_ROUTE), 2);
    str_t in = harness_header_nth(m, SIP_HDR_RECORD_ROUTE, 1);
    assert_true(in.len > 7 && !memcmp(in.s, "<sip:pt", 7));
    struct proxy_stats st;
    proxy_get_stats(f->p, &st);
    assert_int_equal(st.edge_outbound, 1);
    assert_int_equal(st.challenged, 0);
}

/* The registrar behind the edge sends every phone's calls: it is not held
 * to pike_limit; the phones still are. */
static void test_edge_registrar_is_exempt_from_pike(void **state)
{
    struct fx *f = *state;
    f->cfg.proxy.pike_limit = 2;
    edge_start(f);
    char path[256], route[300];
    size_t i;
    edge_register(f, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, 0, path, sizeof(path), &i);
    snprintf(route, sizeof(route), "Route: %s\n", path);
    size_t mark = harness_sent_count(f->h);
    for (int k = 0; k < 5; k++)
        send_over(f, EDGE_REG, 5070, SIP_TRANSPORT_UDP, 0, "OPTIONS", "sip:alice@10.0.0.9:5080",
                  "sip:bob@" EDGE_REG ":5070", route, false);
    assert_int_equal(harness_count_sent(f->h, mark, "OPTIONS "), 5);
    assert_int_equal(harness_find_sent(f->h, mark, "SIP/2.0 503"), -1);
    edge_register(f, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, 0, path, sizeof(path), &i); /* the phone's 2nd */
    mark = harness_sent_count(f->h);
    send_over(f, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, 0, "MESSAGE", "sip:bob@example.com",
              "sip:carol@" CALLER ":5080", "", false);
    assert_int_equal(final_since(f, mark, CALLER, CALLER_PORT, NULL), 503);
}

/* A MESSAGE for nobody@example.com (404 here) from src (port 5060) with
 * the Via lines vias (each ending in \n); its final status to src. */
static int message_via(struct fx *f, const char *src, const char *vias, int n)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "MESSAGE sip:nobody@example.com SIP/2.0\n%sMax-Forwards: 69\nFrom: <sip:carol@other.net>;tag=m%d\n"
             "To: <sip:nobody@example.com>\nCall-ID: te-%d\nCSeq: 1 MESSAGE\nContent-Length: 0\n\n",
             vias, n, n);
    size_t mark = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, src, 5060, SIP_TRANSPORT_UDP, text), 0);
    return final_since(f, mark, src, 5060, NULL);
}

/* [proxy] trusted_edges: requests an edge forwarded count for pike by the
 * phone (the Via below the edge's: received, rport), so one phone over the
 * limit does not stop the edge's other phones; an untrusted source, or a
 * top Via that is not the source's own, counts by the source as ever. */
static void test_trusted_edge_phones_count_apart_for_pike(void **state)
{
    struct fx *f = *state;
    f->cfg.proxy.pike_limit = 2;
    f->cfg.proxy.pike_window_s = 3600;
    assert_int_equal(config_parse_cidrs(f->cfg.proxy.trusted_edges, &f->cfg.proxy.trusted_edges_count,
                                        CONFIG_MAX_TRUSTED, "192.0.2.50"),
                     0);
    start(f);
#define EDGE_VIA(n) "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK-e" #n "\n"
    const char *phone_a = "Via: SIP/2.0/UDP 10.0.0.1:5062;rport=40001;received=198.51.100.1;branch=z9hG4bK-a\n";
    const char *phone_b = "Via: SIP/2.0/TCP 10.0.0.2:5062;branch=z9hG4bK-b\n";
    char vias[512];
    int n = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(vias, sizeof(vias), EDGE_VIA(1) "%s", phone_a);
        assert_int_equal(message_via(f, "192.0.2.50", vias, n++), 404);
    }
    snprintf(vias, sizeof(vias), EDGE_VIA(2) "%s", phone_a);
    assert_int_equal(message_via(f, "192.0.2.50", vias, n++), 503); /* phone A: its third */
    snprintf(vias, sizeof(vias), EDGE_VIA(3) "%s", phone_b);
    assert_int_equal(message_via(f, "192.0.2.50", vias, n++), 404); /* phone B: its first */
    struct sockaddr_storage ph;
    assert_int_equal(transport_addr_parse("198.51.100.1", 12, 40001, &ph), 0);
    assert_int_equal(proxy_pike_count(f->p->pike, (const struct sockaddr *)&ph), 3);
    /* Not trusted: the inner Vias change nothing, the source counts. */
    const char *untrusted_via = "Via: SIP/2.0/UDP 192.0.2.60:5060;branch=z9hG4bK-u\n";
    for (int k = 0; k < 2; k++) {
        snprintf(vias, sizeof(vias), "%s%s", untrusted_via, k ? phone_a : phone_b);
        assert_int_equal(message_via(f, "192.0.2.60", vias, n++), 404);
    }
    snprintf(vias, sizeof(vias), "%s%s", untrusted_via, "Via: SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bK-c\n");
    assert_int_equal(message_via(f, "192.0.2.60", vias, n++), 503);
}

/* digest_edge_peer: the phone is the Via below the edge's; nothing when
 * the source is not a trusted edge, the top Via is not the source's own
 * (received stamped, or a host name), or there is no second Via. */
static void test_edge_peer_from_vias(void **state)
{
    struct fx *f = *state;
    struct config_cidr edges[2];
    int n = 0;
    assert_int_equal(config_parse_cidrs(edges, &n, 2, "192.0.2.50, 2001:db8::/32"), 0);
    struct { const char *src, *vias, *want; } cases[] = {
        {"192.0.2.50", EDGE_VIA(1) "Via: SIP/2.0/UDP 10.0.0.1:5062;rport=40001;received=198.51.100.1\n",
         "198.51.100.1:40001"},
        {"192.0.2.50", EDGE_VIA(1) "Via: SIP/2.0/TCP 10.0.0.2\n", "10.0.0.2:5060"},
        {"192.0.2.50", EDGE_VIA(1) "Via: SIP/2.0/UDP 10.0.0.3:5070;rport\n", "10.0.0.3:5070"},
        {"2001:db8::5", "Via: SIP/2.0/UDP [2001:db8::5]:5060;branch=z9hG4bK-6\nVia: SIP/2.0/UDP [2001:db8::77]:5062\n",
         "[2001:db8::77]:5062"},
        {"192.0.2.50", EDGE_VIA(1), NULL},
        {"192.0.2.50", "Via: SIP/2.0/UDP 192.0.2.50:5060;received=192.0.2.50\nVia: SIP/2.0/UDP 10.0.0.1\n", NULL},
        {"192.0.2.50", "Via: SIP/2.0/UDP edge.example.com\nVia: SIP/2.0/UDP 10.0.0.1\n", NULL},
        {"192.0.2.50", EDGE_VIA(1) "Via: SIP/2.0/UDP phone.example.com\n", NULL},
        {"192.0.2.51", "Via: SIP/2.0/UDP 192.0.2.51\nVia: SIP/2.0/UDP 10.0.0.1\n", NULL},
    };
    start(f);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 "OPTIONS sip:example.com SIP/2.0\n%sMax-Forwards: 70\nFrom: <sip:a@b>;tag=1\nTo: <sip:x@y>\n"
                 "Call-ID: ep-%zu\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
                 cases[i].vias, i);
        struct sip_msg m;
        struct sip_parse_limits lim;
        struct sip_parse_error err;
        arena_t a;
        char mem[8192];
        arena_init(&a, mem, sizeof(mem));
        sip_parse_limits_default(&lim);
        size_t len = strlen(text);
        char wire[1024];
        size_t w = 0;
        for (size_t k = 0; k < len; k++) { /* the harness's \n -> CRLF */
            if (text[k] == '\n') wire[w++] = '\r';
            wire[w++] = text[k];
        }
        assert_int_equal(sip_parse(wire, w, &a, &lim, &m, &err), 0);
        struct transport_rx rx = {.msg = &m, .proto = SIP_TRANSPORT_UDP};
        assert_int_equal(transport_addr_parse(cases[i].src, strlen(cases[i].src), 5060, &rx.src), 0);
        struct sockaddr_storage out;
        bool got = digest_edge_peer(edges, n, &rx, &out);
        if (!cases[i].want) {
            assert_false(got);
        } else {
            assert_true(got);
            char t[TRANSPORT_ADDR_TEXT];
            transport_addr_text(&out, t, sizeof(t));
            assert_string_equal(t, cases[i].want);
        }
        arena_free(&a);
    }
#undef EDGE_VIA
}

/* The node restarts (a new proxy from the same config and store). */
static void restart_proxy(struct fx *f)
{
    proxy_free(f->p);
    f->p = proxy_new(&f->pd);
    assert_non_null(f->p);
}

/* The edge restarts with the same [proxy] edge_secret: a Path token of a
 * UDP client from before still reaches it; one naming a TCP connection
 * (gone with the old run; a new connection may have its id) is 430, not
 * 403 and not sent anywhere; a forged one is still 403. Another secret
 * makes the old tokens 403. */
static void test_edge_secret_tokens_survive_a_restart(void **state)
{
    struct fx *f = *state;
    snprintf(f->cfg.proxy.edge_secret, sizeof(f->cfg.proxy.edge_secret), "shared by the edges");
    edge_start(f);
    char udp_path[256], tcp_path[256], route[300];
    size_t i;
    edge_register(f, CALLER, CALLER_PORT, SIP_TRANSPORT_UDP, 0, udp_path, sizeof(udp_path), &i);
    edge_register(f, CALLER, 40000, SIP_TRANSPORT_TCP, 77, tcp_path, sizeof(tcp_path), &i);
    restart_proxy(f);
    snprintf(route, sizeof(route), "Route: %s\n", udp_path);
    size_t mark = harness_sent_count(f->h);
    send_over(f, EDGE_REG, 5070, SIP_TRANSPORT_UDP, 0, "MESSAGE", "sip:alice@10.0.0.9:5080",
              "sip:bob@" EDGE_REG ":5070", route, false);
    sent_req(f, mark, "MESSAGE ", &i);
    assert_true(harness_sent_to(f->h, i, CALLER, CALLER_PORT));
    f->h->conn_id = 77; /* a new connection of the new run got the old id */
    snprintf(route, sizeof(route), "Route: %s\n", tcp_path);
    mark = harness_sent_count(f->h);
    send_over(f, EDGE_REG, 5070, SIP_TRANSPORT_UDP, 0, "MESSAGE", "sip:alice@10.0.0.9:5080",
              "sip:bob@" EDGE_REG ":5070", route, false);
    harness_advance(f->h, 10);
    assert_int_equal(final_since(f, mark, EDGE_REG, 5070, NULL), 430);
    assert_int_equal(harness_find_sent(f->h, mark, "MESSAGE "), -1);
    struct proxy_stats st;
    proxy_get_stats(f->p, &st);
    assert_int_equal(st.flow_failed, 1);
    char forged[256];
    snprintf(forged, sizeof(forged), "%s", tcp_path);
    forged[12] = forged[12] == '0' ? '1' : '0';
    snprintf(route, sizeof(route), "Route: %s\n", forged);
    mark = harness_sent_count(f->h);
    send_over(f, EDGE_REG, 5070, SIP_TRANSPORT_UDP, 0, "MESSAGE", "sip:alice@10.0.0.9:5080",
              "sip:bob@" EDGE_REG ":5070", route, false);
    assert_int_equal(final_since(f, mark, EDGE_REG, 5070, NULL), 403);
    snprintf(f->cfg.proxy.edge_secret, sizeof(f->cfg.proxy.edge_secret), "another");
    restart_proxy(f);
    snprintf(route, sizeof(route), "Route: %s\n", udp_path);
    mark = harness_sent_count(f->h);
    send_over(f, EDGE_REG, 5070, SIP_TRANSPORT_UDP, 0, "MESSAGE", "sip:alice@10.0.0.9:5080",
              "sip:bob@" EDGE_REG ":5070", route, false);
    assert_int_equal(final_since(f, mark, EDGE_REG, 5070, NULL), 403);
}

/* Without edge_secret the key is made once and kept in the store: a
 * restarted proxy on the same store verifies the old tokens; without a
 * store each run has its own. */
static void test_edge_token_key_is_kept_in_the_store(void **state)
{
    struct fx *f = *state;
    char dir[] = "/tmp/cascade-proxy-key-XXXXXX", path[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/db.sqlite", dir);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct store *st = store_open(&loop, path, err, sizeof(err));
    assert_non_null(st);
    edge_start(f);
    f->pd.store = st;
    restart_proxy(f);
    struct transport_dest flow = {.proto = SIP_TRANSPORT_UDP, .listener_id = 1};
    struct sockaddr_in *a = (struct sockaddr_in *)&flow.addr;
    a->sin_family = AF_INET;
    a->sin_port = htons(5080);
    inet_pton(AF_INET, "192.0.2.9", &a->sin_addr);
    char tok[PROXY_PATH_TOKEN_MAX + 1];
    assert_true(proxy_path_token_make(&f->p->flow_key, &flow, tok, sizeof(tok)) > 0);
    struct proxy_flow_key before = f->p->flow_key;
    restart_proxy(f);
    assert_memory_equal(before.k, f->p->flow_key.k, sizeof(before.k));
    struct transport_dest out;
    assert_int_equal(proxy_path_token_parse(&f->p->flow_key, str_from_cstr(tok), &out), 0);
    assert_true(transport_addr_equal(&out.addr, &flow.addr));
    /* a stream token of the earlier run: verified, but gone (1) */
    struct transport_dest conn = {.proto = SIP_TRANSPORT_TCP, .conn_id = 5};
    assert_true(proxy_path_token_make(&before, &conn, tok, sizeof(tok)) > 0);
    assert_int_equal(proxy_path_token_parse(&f->p->flow_key, str_from_cstr(tok), &out), 1);
    assert_true(proxy_path_token_make(&f->p->flow_key, &conn, tok, sizeof(tok)) > 0);
    assert_int_equal(proxy_path_token_parse(&f->p->flow_key, str_from_cstr(tok), &out), 0);
    assert_int_equal(out.conn_id, 5);
    f->pd.store = NULL;
    restart_proxy(f);
    assert_memory_not_equal(before.k, f->p->flow_key.k, sizeof(before.k));
    store_close(st);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_unsupported_uri_scheme_is_416),
        T(test_max_forwards_zero_is_483),
        T(test_request_coming_back_unchanged_is_482),
        T(test_unsupported_proxy_require_is_420),
        T(test_loose_route_pops_ours_and_goes_to_next),
        T(test_strict_router_request_uri_restored_from_last_route),
        T(test_unknown_user_is_404),
        T(test_user_without_binding_is_480),
        T(test_forks_to_every_binding_by_q),
        T(test_forwarded_copy_has_max_forwards_decremented_and_our_via),
        T(test_each_branch_has_its_own_via_branch),
        T(test_invite_is_record_routed),
        T(test_message_is_not_record_routed),
        T(test_missing_max_forwards_becomes_70),
        T(test_provisional_forwarded_without_our_via_100_not),
        T(test_2xx_forwarded_at_once_and_others_cancelled),
        T(test_best_final_is_lowest_class),
        T(test_6xx_cancels_the_others_and_wins),
        T(test_cancel_answered_and_forwarded_to_branches),
        T(test_cancel_of_unknown_invite_left_to_core),
        T(test_timer_c_cancels_ringing_branch),
        T(test_provisional_restarts_timer_c),
        T(test_timer_c_silent_branch_is_408),
        T(test_our_user_without_credentials_gets_407),
        T(test_our_user_with_credentials_is_forwarded),
        T(test_wrong_password_is_challenged_again),
        T(test_trusted_source_is_not_challenged),
        T(test_foreign_domain_is_403_without_allow_foreign),
        T(test_request_for_this_node_left_to_core),
        T(test_binding_path_becomes_first_route),
        T(test_430_from_edge_removes_the_binding_and_is_480),
        T(test_430_from_edge_leaves_the_other_bindings),
        T(test_430_for_an_old_path_leaves_a_fresh_binding),
        T(test_503_from_branch_becomes_500),
        T(test_407_challenges_are_aggregated),
        T(test_callee_ignoring_cancel_gets_408_after_64_t1),
        T(test_unanswered_message_gets_408_at_deadline),
        T(test_2xx_to_message_forwarded),
        T(test_credentials_of_another_user_are_403_with_match_user),
        T(test_source_over_pike_limit_gets_503),
        T(test_refusal_flood_is_logged_bounded),
        T(test_ack_for_2xx_relayed_statelessly),
        T(test_redirect_answers_302_with_contacts),
        T(test_redirect_unknown_user_is_404),
        T(test_ipv6_host_is_bracketed_in_via_and_record_route),
        T(test_sips_request_over_udp_is_480_sips_not_allowed),
        T(test_sips_request_goes_only_to_the_tls_binding),
        T(test_sips_request_without_secure_binding_is_480),
        T(test_sip_request_to_sips_contact_goes_over_tls_with_sip_uri),
        T(test_redirect_leaves_out_websocket_bindings),
        T(test_ws_binding_is_reached_on_its_flow),
        T(test_ws_binding_with_flow_gone_is_480),
        T(test_flow_token_round_trip),
        T(test_tampered_flow_token_is_403),
        T(test_flow_token_of_gone_flow_is_430),
        T(test_ws_caller_is_reached_through_its_token),
        T(test_path_token_round_trip),
        T(test_edge_register_goes_to_registrar_with_path),
        T(test_edge_path_route_reaches_the_client_flow),
        T(test_edge_forged_path_token_is_403),
        T(test_edge_gone_flow_is_430),
        T(test_edge_client_request_goes_to_registrar),
        T(test_edge_registrar_is_exempt_from_pike),
        T(test_edge_secret_tokens_survive_a_restart),
        T(test_edge_token_key_is_kept_in_the_store),
        T(test_trusted_edge_phones_count_apart_for_pike),
        T(test_edge_peer_from_vias),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
