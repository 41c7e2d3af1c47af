/* test_registrar.c — the registrar as RFC 3261 §10.3 specifies it, on the
 * in-process stack (harness.h): real location service (no store: commits
 * answer at once), real users table and digest server, REGISTERs given as
 * SIP text from 192.0.2.9:5080, answers read back from what was sent.
 *
 * Our domain is example.com; users alice and bob (passwords "secret-a",
 * "secret-b"). [registrar] min 60 s, max 7200 s, default 3600 s. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/digest.h"
#include "app/config.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "events/events.h"
#include "harness.h"
#include "registrar/location.h"
#include "registrar/registrar.h"
#include "registrar/users.h"

struct fx {
    struct harness *h;
    struct config cfg;
    struct users *users;
    struct auth_server *auth;
    struct location *loc;
    struct registrar *r;
    int not_taken;          /* requests registrar_on_request left alone */
    uint32_t branch;
    char authz[1024];       /* the Authorization line of the last answered challenge */
    uv_loop_t loop;         /* the event bus needs one; nothing runs on it */
    struct event_bus *events;
    char events_seen[4096]; /* the types of the events published, in order */
    char online_json[2048]; /* the last user.online event */
};

static void on_event(uint64_t seq, const char *json, size_t len, void *arg)
{
    (void)seq, (void)len;
    struct fx *f = arg;
    const char *t = strstr(json, "\"type\":\"");
    if (!t) return;
    t += 8;
    size_t n = strcspn(t, "\"");
    if (n == 11 && !strncmp(t, "user.online", 11)) snprintf(f->online_json, sizeof(f->online_json), "%s", json);
    size_t used = strlen(f->events_seen);
    snprintf(f->events_seen + used, sizeof(f->events_seen) - used, "%.*s ", (int)n, t);
}

static void on_request(void *arg, struct txn *st, const struct transport_rx *rx)
{
    struct fx *f = arg;
    if (registrar_on_request(f->r, st, rx)) return;
    f->not_taken++;
    txn_respond(st, 604, "Not Taken", STR_NULL, NULL, 0, STR_NULL, STR_NULL);
}

static void add_user(struct fx *f, const char *name, const char *pw) { harness_add_user(f->h, f->users, name, pw); }

/* Builds the registrar from f->cfg (tests change it first). */
static void start(struct fx *f)
{
    f->users = users_new(NULL);
    assert_non_null(f->users);
    add_user(f, "alice", "secret-a");
    add_user(f, "bob", "secret-b");
    struct auth_server_config ac;
    auth_server_config_from(&ac, &f->cfg.auth, AUTH_OFFER(AUTH_ALG_MD5));
    f->auth = auth_server_new(&ac);
    assert_non_null(f->auth);
    struct registrar_deps d = {
        .cfg = &f->cfg.registrar,
        .auth_cfg = &f->cfg.auth,
        .sip_cfg = &f->cfg.sip,
        .local = &f->h->local,
        .users = f->users,
        .auth = f->auth,
        .events = f->events,
        .ua = f->h->ua,
        .timers = f->h->timers,
        .send = harness_send,
        .send_arg = f->h,
    };
    f->r = registrar_new(&d);
    assert_non_null(f->r);
    struct location_callbacks cb;
    registrar_location_callbacks(f->r, &cb);
    f->loc = location_new(f->h->timers, NULL, &cb);
    assert_non_null(f->loc);
    registrar_set_location(f->r, f->loc);
    f->h->on_request = on_request;
    f->h->arg = f;
}

static int setup(void **state)
{
    log_set_level(LOG_ERROR);
    struct fx *f = calloc(1, sizeof(*f));
    f->h = harness_new();
    config_init(&f->cfg);
    f->cfg.registrar.nat_ping_interval_s = 0;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->events = event_bus_new(&f->loop, 64, NULL);
    assert_non_null(f->events);
    assert_int_equal(event_subscribe(f->events, on_event, f), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    registrar_free(f->r);
    location_free(f->loc);
    auth_server_free(f->auth);
    users_free(f->users);
    event_bus_free(f->events);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    harness_free(f->h);
    free(f);
    return 0;
}

/* Sends a REGISTER for user (To and From) with the given extra header lines
 * (each ending in \n) and, when f->authz is set, that Authorization line.
 * Returns the status of the answer. */
static int reg_to(struct fx *f, const char *ruri_host, const char *to_user, const char *to_host, const char *call_id,
                  int cseq, const char *extra)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "REGISTER sip:%s SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bK-t%u\n"
             "Max-Forwards: 70\n"
             "From: <sip:%s@%s>;tag=f1\n"
             "To: <sip:%s@%s>\n"
             "Call-ID: %s\n"
             "CSeq: %d REGISTER\n"
             "%s%s"
             "Content-Length: 0\n\n",
             ruri_host, ++f->branch, to_user, to_host, to_user, to_host, call_id, cseq, f->authz, extra);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, "192.0.2.9", 5080, SIP_TRANSPORT_UDP, text), 0);
    assert_true(harness_sent_count(f->h) > before);
    return harness_sent_status(f->h, harness_sent_count(f->h) - 1);
}

/* Answers the challenge in the last message sent (a 401) as user/pw. */
static void answer_challenge(struct fx *f, const char *user, const char *pw)
{
    const struct sip_msg *m = harness_last(f->h);
    str_t v = harness_header(m, SIP_HDR_WWW_AUTHENTICATE);
    assert_true(v.len > 0);
    char copy[1024];
    snprintf(copy, sizeof(copy), "%.*s", STR_FMT(v));
    struct auth_challenge ch;
    assert_int_equal(auth_parse_challenge(str_from_cstr(copy), &ch), 0);
    sbuf_t b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "Authorization: ");
    assert_int_equal(auth_client_answer(&ch, str_from_cstr(user), str_from_cstr(pw), STR_LIT("REGISTER"),
                                        STR_LIT("sip:example.com"), 1, STR_NULL, &b),
                     0);
    sbuf_append_cstr(&b, "\n");
    assert_false(b.failed);
    snprintf(f->authz, sizeof(f->authz), "%.*s", (int)b.len, b.data);
    sbuf_free(&b);
}

/* The two legs of an authenticated REGISTER as user for AoR aor: 401,
 * then the answer with credentials; returns the status of the second. */
static int reg_as(struct fx *f, const char *user, const char *pw, const char *aor, const char *call_id, int cseq,
                  const char *extra)
{
    f->authz[0] = '\0';
    assert_int_equal(reg_to(f, "example.com", aor, "example.com", call_id, cseq, extra), 401);
    answer_challenge(f, user, pw);
    int status = reg_to(f, "example.com", aor, "example.com", call_id, cseq + 1, extra);
    f->authz[0] = '\0';
    return status;
}

static int reg(struct fx *f, const char *call_id, int cseq, const char *extra)
{
    return reg_as(f, "alice", "secret-a", "alice", call_id, cseq, extra);
}

static size_t bindings(struct fx *f, const char *aor)
{
    return location_lookup(f->loc, str_from_cstr(aor), NULL, 0);
}

/* §10.3 step 3 / §22.4: a REGISTER without credentials is answered 401
 * with a digest challenge for our realm, and a To tag (§8.2.6.2). */
static void test_no_credentials_is_challenged(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg_to(f, "example.com", "alice", "example.com", "c1", 1,
                            "Contact: <sip:alice@192.0.2.9:5080>\n"),
                     401);
    const struct sip_msg *m = harness_last(f->h);
    assert_true(harness_header_has(m, SIP_HDR_WWW_AUTHENTICATE, "Digest realm=\"example.com\""));
    assert_true(m->to.tag.len > 0);
    assert_int_equal(bindings(f, "alice"), 0);
}

/* §10.3 step 8: the 200 lists the binding with its expiry (Expires: 3600)
 * and the Server and Date headers. */
static void test_register_is_200_with_binding_and_expires(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\nExpires: 3600\n"), 200);
    const struct sip_msg *m = harness_last(f->h);
    assert_int_equal(harness_header_count(m, SIP_HDR_CONTACT), 1);
    assert_true(harness_header_has(m, SIP_HDR_CONTACT, "<sip:alice@192.0.2.9:5080>;expires=3600"));
    assert_true(harness_header_has(m, SIP_HDR_SERVER, "cascade-test"));
    assert_int_equal(bindings(f, "alice"), 1);
}

/* §10.3 step 8: every current binding of the AoR is listed, not just the
 * one this REGISTER added; each with what is left of its own expiry. */
static void test_200_lists_every_binding(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\nExpires: 600\n"), 200);
    harness_advance(f->h, 100000);
    assert_int_equal(reg(f, "c2", 1, "Contact: <sip:alice@192.0.2.10:5090>\nExpires: 3600\n"), 200);
    const struct sip_msg *m = harness_last(f->h);
    assert_int_equal(harness_header_count(m, SIP_HDR_CONTACT), 2);
    assert_true(harness_header_has(m, SIP_HDR_CONTACT, "<sip:alice@192.0.2.9:5080>;expires=500"));
    assert_true(harness_header_has(m, SIP_HDR_CONTACT, "<sip:alice@192.0.2.10:5090>;expires=3600"));
}

/* §10.3 step 7: no expiry given: [registrar] default_expires. */
static void test_no_expires_gets_default(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\n"), 200);
    assert_true(harness_header_has(harness_last(f->h), SIP_HDR_CONTACT, ";expires=3600"));
}

/* §10.3 step 7: an expiry above [registrar] max_expires is shortened to it. */
static void test_expires_above_max_is_clamped(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\nExpires: 99999\n"), 200);
    assert_true(harness_header_has(harness_last(f->h), SIP_HDR_CONTACT, ";expires=7200"));
}

/* §10.3 step 7: a Contact's expires parameter wins over the Expires header. */
static void test_expires_param_wins_over_header(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>;expires=120\nExpires: 3600\n"), 200);
    assert_true(harness_header_has(harness_last(f->h), SIP_HDR_CONTACT, ";expires=120"));
}

/* §10.3 step 7: an expiry under [registrar] min_expires is 423 Interval Too
 * Brief with Min-Expires, and nothing is bound. */
static void test_too_brief_is_423_with_min_expires(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\nExpires: 30\n"), 423);
    str_t me = harness_header(harness_last(f->h), SIP_HDR_MIN_EXPIRES);
    assert_true(str_eq(me, STR_LIT("60")));
    assert_int_equal(bindings(f, "alice"), 0);
}

/* §10.3 step 6: "Contact: *" with Expires: 0 removes every binding; the 200
 * lists none. */
static void test_star_with_expires_0_removes_all(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\n"), 200);
    assert_int_equal(reg(f, "c2", 1, "Contact: <sip:alice@192.0.2.10:5090>\n"), 200);
    assert_int_equal(bindings(f, "alice"), 2);
    assert_int_equal(reg(f, "c3", 1, "Contact: *\nExpires: 0\n"), 200);
    assert_int_equal(harness_header_count(harness_last(f->h), SIP_HDR_CONTACT), 0);
    assert_int_equal(bindings(f, "alice"), 0);
}

/* §10.3 step 6: "*" with a non-zero Expires is 400. */
static void test_star_with_nonzero_expires_is_400(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: *\nExpires: 60\n"), 400);
}

/* §10.3 step 7: expires=0 removes that one binding; the others stay. */
static void test_expires_0_removes_one_binding(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\n"), 200);
    assert_int_equal(reg(f, "c2", 1, "Contact: <sip:alice@192.0.2.10:5090>\n"), 200);
    assert_int_equal(reg(f, "c1", 10, "Contact: <sip:alice@192.0.2.9:5080>;expires=0\n"), 200);
    const struct sip_msg *m = harness_last(f->h);
    assert_int_equal(harness_header_count(m, SIP_HDR_CONTACT), 1);
    assert_true(harness_header_has(m, SIP_HDR_CONTACT, "<sip:alice@192.0.2.10:5090>"));
    assert_int_equal(bindings(f, "alice"), 1);
}

/* §10.3 step 7: for one Call-ID, a CSeq not above the binding's is out of
 * order; the code answers 500 "Out Of Order CSeq" and changes nothing. */
static void test_out_of_order_cseq_is_500(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 10, "Contact: <sip:alice@192.0.2.9:5080>\nExpires: 600\n"), 200);
    /* the same Call-ID with a lower CSeq (5, then 6 with credentials) */
    assert_int_equal(reg(f, "c1", 5, "Contact: <sip:alice@192.0.2.9:5080>\nExpires: 0\n"), 500);
    assert_true(str_eq(harness_last(f->h)->reason, STR_LIT("Out Of Order CSeq")));
    assert_int_equal(bindings(f, "alice"), 1);
}

/* §10.3 step 7 / §20.10: the q-value is kept and listed (q=1 is left out). */
static void test_q_value_is_listed(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>;q=0.5\n"), 200);
    assert_true(harness_header_has(harness_last(f->h), SIP_HDR_CONTACT, ";expires=3600;q=0.500"));
    assert_int_equal(reg(f, "c2", 1, "Contact: <sip:alice@192.0.2.10:5090>;q=1.0\n"), 200);
    const struct sip_msg *m = harness_last(f->h);
    assert_true(harness_header_has(m, SIP_HDR_CONTACT, "<sip:alice@192.0.2.10:5090>;expires=3600"));
    assert_false(harness_header_has(m, SIP_HDR_CONTACT, "5090>;expires=3600;q="));
}

/* [registrar] max_contacts: a binding over the limit is 403 Too Many
 * Contacts; the bindings there stay. */
static void test_over_max_contacts_is_403(void **state)
{
    struct fx *f = *state;
    f->cfg.registrar.max_contacts = 2;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\n"), 200);
    assert_int_equal(reg(f, "c2", 1, "Contact: <sip:alice@192.0.2.10:5090>\n"), 200);
    assert_int_equal(reg(f, "c3", 1, "Contact: <sip:alice@192.0.2.11:5090>\n"), 403);
    assert_true(str_eq(harness_last(f->h)->reason, STR_LIT("Too Many Contacts")));
    assert_int_equal(bindings(f, "alice"), 2);
}

/* §10.3 step 1: a REGISTER whose Request-URI names another domain is not
 * the registrar's (the proxy may forward it). */
static void test_foreign_request_uri_is_not_taken(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg_to(f, "other.example.org", "alice", "other.example.org", "c1", 1,
                            "Contact: <sip:alice@192.0.2.9:5080>\n"),
                     604);
    assert_int_equal(f->not_taken, 1);
}

/* §10.3 step 5: a To in another domain is 404 (the AoR is not ours). */
static void test_foreign_to_is_404(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg_to(f, "example.com", "alice", "other.example.org", "c1", 1,
                            "Contact: <sip:alice@192.0.2.9:5080>\n"),
                     404);
    assert_int_equal(f->not_taken, 0);
}

/* §10.3 step 3 with [auth] match_user: bob may not register alice's AoR:
 * 403, nothing bound. */
static void test_other_user_is_403_with_match_user(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg_as(f, "bob", "secret-b", "alice", "c1", 1, "Contact: <sip:bob@192.0.2.9:5080>\n"), 403);
    assert_int_equal(bindings(f, "alice"), 0);
}

/* §22.4: a wrong password is challenged again (401), nothing bound. */
static void test_wrong_password_is_401(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg_as(f, "alice", "wrong", "alice", "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\n"), 401);
    assert_int_equal(bindings(f, "alice"), 0);
}

/* A binding's expiry ends it: after Expires seconds it is gone. */
static void test_binding_expires(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\nExpires: 60\n"), 200);
    harness_advance(f->h, 59000);
    assert_int_equal(bindings(f, "alice"), 1);
    harness_advance(f->h, 2000);
    assert_int_equal(bindings(f, "alice"), 0);
}

/* The events of a binding's life: the first binding of an AoR publishes
 * registration.added then user.online; a refresh registration.refreshed;
 * the removal registration.removed then user.offline. */
static void test_binding_life_events(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(reg(f, "c1", 1, "Contact: <sip:alice@192.0.2.9:5080>\n"), 200);
    assert_string_equal(f->events_seen, "registration.added user.online ");
    f->events_seen[0] = '\0';
    assert_int_equal(reg(f, "c1", 10, "Contact: <sip:alice@192.0.2.9:5080>\n"), 200);
    assert_string_equal(f->events_seen, "registration.refreshed ");
    f->events_seen[0] = '\0';
    assert_int_equal(reg(f, "c1", 20, "Contact: <sip:alice@192.0.2.9:5080>;expires=0\n"), 200);
    assert_string_equal(f->events_seen, "registration.removed user.offline ");
}

/* ---- transports: sips (RFC 5630 §5.2), WebSocket flows (RFC 7118), outbound (RFC 5626 §6) ---- */

/* A REGISTER for alice (no digest: the test turns require_auth off) to
 * ruri, from 192.0.2.9:5090 over proto on connection conn, with contact
 * (a whole Contact value) and extra header lines. Returns the status. */
static int reg_over(struct fx *f, enum sip_transport proto, uint64_t conn, const char *ruri, const char *contact,
                    const char *extra)
{
    char text[4096];
    unsigned n = ++f->branch;
    snprintf(text, sizeof(text),
             "REGISTER %s SIP/2.0\n"
             "Via: SIP/2.0/%s 192.0.2.9:5090;branch=z9hG4bK-x%u\n"
             "Max-Forwards: 70\n"
             "From: <sip:alice@example.com>;tag=f1\n"
             "To: <sip:alice@example.com>\n"
             "Call-ID: reg-over-%u\n"
             "CSeq: 1 REGISTER\n"
             "Contact: %s\n"
             "%s"
             "Content-Length: 0\n\n",
             ruri, sip_transport_via_name(proto), n, n, contact, extra);
    f->h->conn_id = conn;
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, "192.0.2.9", 5090, proto, text), 0);
    assert_true(harness_sent_count(f->h) > before);
    return harness_sent_status(f->h, harness_sent_count(f->h) - 1);
}

static void start_open(struct fx *f)
{
    f->cfg.auth.require_auth = false;
    start(f);
}

/* RFC 5630 §5.2: a sips: Contact registered over UDP is refused with 400
 * (sips means TLS on every hop, the last one included); nothing is bound. */
static void test_sips_contact_over_udp_is_400(void **state)
{
    struct fx *f = *state;
    start_open(f);
    assert_int_equal(reg_over(f, SIP_TRANSPORT_UDP, 0, "sips:example.com", "<sips:alice@192.0.2.9:5090>", ""), 400);
    assert_int_equal(bindings(f, "alice"), 0);
    assert_true(str_eq(harness_last(f->h)->reason, STR_LIT("SIPS Contact Not Allowed")));
}

/* RFC 5630 §5.2: a sips: Contact in a REGISTER whose Request-URI is sip:
 * is refused with 400 even over TLS. */
static void test_sips_contact_for_sip_request_uri_is_400(void **state)
{
    struct fx *f = *state;
    start_open(f);
    assert_int_equal(reg_over(f, SIP_TRANSPORT_TLS, 5, "sip:example.com", "<sips:alice@192.0.2.9:5091>", ""), 400);
    assert_int_equal(bindings(f, "alice"), 0);
    assert_true(str_eq(harness_last(f->h)->reason, STR_LIT("SIPS Contact Not Allowed")));
}

/* RFC 5630 §5.2: over TLS with a sips: Request-URI the sips: Contact is
 * bound, with its TLS flow; user.online says tls. */
static void test_sips_contact_over_tls_is_bound(void **state)
{
    struct fx *f = *state;
    start_open(f);
    assert_int_equal(reg_over(f, SIP_TRANSPORT_TLS, 5, "sips:example.com", "<sips:alice@192.0.2.9:5091>", ""), 200);
    const struct location_binding *b;
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), &b, 1), 1);
    assert_int_equal(b->transport, LOCATION_TRANSPORT_TLS);
    assert_int_equal(b->conn_id, 5);
    assert_non_null(strstr(f->online_json, "\"transport\":\"tls\""));
}

/* RFC 7118 §5: a WebSocket client registers a .invalid Contact; the binding
 * keeps the connection it came on (the only way to reach it) and
 * user.online names the transport ws. */
static void test_ws_register_keeps_its_flow_and_user_online_says_ws(void **state)
{
    struct fx *f = *state;
    start_open(f);
    assert_int_equal(reg_over(f, SIP_TRANSPORT_WS, 9, "sip:example.com",
                              "<sip:x7k2@df7jal23ls0d.invalid;transport=ws>", ""),
                     200);
    const struct location_binding *b;
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), &b, 1), 1);
    assert_int_equal(b->transport, LOCATION_TRANSPORT_WS);
    assert_int_equal(b->conn_id, 9);
    assert_non_null(strstr(f->online_json, "\"transport\":\"ws\""));
}

/* The same over WSS: user.online says wss. */
static void test_wss_register_user_online_says_wss(void **state)
{
    struct fx *f = *state;
    start_open(f);
    assert_int_equal(reg_over(f, SIP_TRANSPORT_WSS, 11, "sip:example.com",
                              "<sip:x7k2@df7jal23ls0d.invalid;transport=ws>", ""),
                     200);
    assert_non_null(strstr(f->online_json, "\"transport\":\"wss\""));
}

/* RFC 5626 §6: an outbound REGISTER (Supported: outbound, reg-id and
 * +sip.instance) reaching us directly is answered with Require: outbound;
 * a plain one is not. */
static void test_outbound_register_gets_require_outbound(void **state)
{
    struct fx *f = *state;
    start_open(f);
    assert_int_equal(reg_over(f, SIP_TRANSPORT_WS, 9, "sip:example.com",
                              "<sip:x7k2@df7jal23ls0d.invalid;transport=ws;ob>;reg-id=1;"
                              "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000000000001>\"",
                              "Supported: path, outbound\n"),
                     200);
    const struct sip_msg *m = harness_last(f->h);
    assert_true(harness_header_has(m, SIP_HDR_REQUIRE, "outbound"));
    assert_int_equal(reg_over(f, SIP_TRANSPORT_UDP, 0, "sip:example.com", "<sip:alice@192.0.2.9:5090>", ""), 200);
    assert_int_equal(harness_header_count(harness_last(f->h), SIP_HDR_REQUIRE), 0);
}

/* RFC 3327 / RFC 5626 §6: a REGISTER through an edge proxy (Path) over TCP
 * keeps the Path, not our connection to the edge (which carries every
 * client behind it): losing that connection does not drop the binding. */
static void test_register_with_path_is_not_tied_to_the_edge_connection(void **state)
{
    struct fx *f = *state;
    start_open(f);
    assert_int_equal(reg_over(f, SIP_TRANSPORT_TCP, 21, "sip:example.com", "<sip:alice@10.0.0.9:5090;transport=tcp>",
                              "Path: <sip:pt0101@192.0.2.50:5060;transport=tcp;lr;ob>\nSupported: path\n"),
                     200);
    assert_true(harness_header_has(harness_last(f->h), SIP_HDR_PATH, "sip:pt0101@192.0.2.50"));
    const struct location_binding *b;
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), &b, 1), 1);
    assert_int_equal(b->conn_id, 0);
    assert_int_equal(b->flags & LOCATION_FLAG_NAT, 0);
    assert_non_null(strstr(b->path, "pt0101"));
    registrar_on_conn_lost(f->r, 21, "192.0.2.50:5060");
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), &b, 1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_credentials_is_challenged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_with_path_is_not_tied_to_the_edge_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_is_200_with_binding_and_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_200_lists_every_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_expires_gets_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expires_above_max_is_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expires_param_wins_over_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_brief_is_423_with_min_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_star_with_expires_0_removes_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_star_with_nonzero_expires_is_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expires_0_removes_one_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order_cseq_is_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_q_value_is_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_over_max_contacts_is_403, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_request_uri_is_not_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_to_is_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_user_is_403_with_match_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password_is_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binding_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binding_life_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sips_contact_over_udp_is_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sips_contact_for_sip_request_uri_is_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sips_contact_over_tls_is_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_register_keeps_its_flow_and_user_online_says_ws, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wss_register_user_online_says_wss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_register_gets_require_outbound, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
