/* test_natping.c — NAT keepalives (natping.h), as the registrar runs them,
 * on the in-process stack (harness.h): a UDP REGISTER that came through a
 * NAT flags its binding; every [registrar] nat_ping_interval (10 s here) the
 * binding gets a stateless OPTIONS at the REGISTER's source address; any
 * answer clears its unanswered count; nat_ping_max_lost (3 here) pings in a
 * row without one remove it (reason unreachable). Pings are what the
 * harness records as sent outside transactions (raw). No digest here:
 * [auth] require_auth = false. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/config.h"
#include "base/log.h"
#include "events/events.h"
#include "harness.h"
#include "registrar/location.h"
#include "registrar/natping.h"
#include "registrar/registrar.h"

struct fx {
    struct harness *h;
    struct config cfg;
    struct location *loc;
    struct registrar *r;
    uint32_t branch;
    size_t pings_seen;      /* raw sends already looked at */
    uv_loop_t loop;         /* the bus needs one; nothing runs on it */
    struct event_bus *events;
    char last_offline[1024]; /* the last user.offline event's JSON */
};

static void on_event(uint64_t seq, const char *json, size_t len, void *arg)
{
    (void)seq;
    struct fx *f = arg;
    if (strstr(json, "\"type\":\"user.offline\""))
        snprintf(f->last_offline, sizeof(f->last_offline), "%.*s", (int)len, json);
}

static void on_request(void *arg, struct txn *st, const struct transport_rx *rx)
{
    struct fx *f = arg;
    if (!registrar_on_request(f->r, st, rx)) txn_respond(st, 604, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
}

static void on_stray(void *arg, const struct transport_rx *rx)
{
    struct fx *f = arg;
    registrar_on_stray_response(f->r, rx);
}

static int setup(void **state)
{
    log_set_level(LOG_ERROR);
    struct fx *f = calloc(1, sizeof(*f));
    f->h = harness_new();
    config_init(&f->cfg);
    f->cfg.auth.require_auth = false;
    f->cfg.registrar.nat_ping_interval_s = 10;
    f->cfg.registrar.nat_ping_max_lost = 3;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->events = event_bus_new(&f->loop, 64, NULL);
    assert_non_null(f->events);
    assert_int_equal(event_subscribe(f->events, on_event, f), 0);
    struct registrar_deps d = {
        .cfg = &f->cfg.registrar,
        .auth_cfg = &f->cfg.auth,
        .sip_cfg = &f->cfg.sip,
        .local = &f->h->local,
        .ua = f->h->ua,
        .events = f->events,
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
    f->h->on_stray_response = on_stray;
    f->h->arg = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    registrar_free(f->r);
    location_free(f->loc);
    event_bus_free(f->events);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    harness_free(f->h);
    free(f);
    return 0;
}

/* A REGISTER for alice from src_ip:src_port whose Via says via_hostport. */
static void register_from(struct fx *f, const char *src_ip, uint16_t src_port, const char *via_hostport)
{
    char text[2048];
    f->branch++;
    snprintf(text, sizeof(text),
             "REGISTER sip:example.com SIP/2.0\n"
             "Via: SIP/2.0/UDP %s;branch=z9hG4bK-n%u\n"
             "Max-Forwards: 70\n"
             "From: <sip:alice@example.com>;tag=f1\n"
             "To: <sip:alice@example.com>\n"
             "Call-ID: nat1\n"
             "CSeq: %u REGISTER\n"
             "Contact: <sip:alice@%s>\n"
             "Expires: 3600\n"
             "Content-Length: 0\n\n",
             via_hostport, f->branch, f->branch, via_hostport);
    assert_int_equal(harness_inject(f->h, src_ip, src_port, SIP_TRANSPORT_UDP, text), 0);
    assert_int_equal(harness_sent_status(f->h, harness_sent_count(f->h) - 1), 200);
}

/* Pings (raw OPTIONS) sent since the last call; the last one's index in *last. */
static int new_pings(struct fx *f, size_t *last)
{
    int n = 0;
    for (size_t i = f->pings_seen; i < harness_sent_count(f->h); i++) {
        if (!f->h->sent[i].raw) continue;
        assert_int_equal(strncmp(f->h->sent[i].data, "OPTIONS ", 8), 0);
        n++;
        if (last) *last = i;
    }
    f->pings_seen = harness_sent_count(f->h);
    return n;
}

/* Answers ping i with 200, from the address it went to. */
static void answer_ping(struct fx *f, size_t i)
{
    const struct sip_msg *m = harness_sent_msg(f->h, i);
    char text[2048];
    snprintf(text, sizeof(text),
             "SIP/2.0 200 OK\n"
             "Via: %.*s\n"
             "From: %.*s\n"
             "To: %.*s;tag=ua1\n"
             "Call-ID: %.*s\n"
             "CSeq: 1 OPTIONS\n"
             "Content-Length: 0\n\n",
             STR_FMT(harness_header(m, SIP_HDR_VIA)), STR_FMT(harness_header(m, SIP_HDR_FROM)),
             STR_FMT(harness_header(m, SIP_HDR_TO)), STR_FMT(m->call_id));
    assert_int_equal(harness_inject(f->h, "198.51.100.7", 40000, SIP_TRANSPORT_UDP, text), 0);
}

static json_int_t np_stat(struct fx *f, const char *key)
{
    json_t *s = json_object();
    registrar_stats_json(f->r, s);
    json_int_t v = json_integer_value(json_object_get(json_object_get(s, "registrar"), key));
    json_decref(s);
    return v;
}

/* A Via sent-by that is not the source address: behind NAT, so the binding
 * is flagged and within one interval gets an OPTIONS at the source address
 * (not the Contact), on a branch the answers are known by. */
static void test_natted_binding_is_pinged_at_its_source(void **state)
{
    struct fx *f = *state;
    register_from(f, "198.51.100.7", 40000, "10.0.0.5:5060");
    const struct location_binding *b;
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), &b, 1), 1);
    assert_true(b->flags & LOCATION_FLAG_NAT);
    new_pings(f, NULL);
    harness_advance(f->h, 10000);
    size_t i = 0;
    assert_int_equal(new_pings(f, &i), 1);
    const struct harness_sent *s = &f->h->sent[i];
    assert_int_equal(s->dest.proto, SIP_TRANSPORT_UDP);
    const struct sockaddr_in *to = (const struct sockaddr_in *)&s->dest.addr;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &to->sin_addr, ip, sizeof(ip));
    assert_string_equal(ip, "198.51.100.7");
    assert_int_equal(ntohs(to->sin_port), 40000);
    const struct sip_msg *m = harness_sent_msg(f->h, i);
    assert_int_equal(m->method, SIP_OPTIONS);
    assert_true(harness_header_has(m, SIP_HDR_VIA, "branch=" NATPING_BRANCH_PREFIX));
    /* one ping per interval */
    harness_advance(f->h, 10000);
    assert_int_equal(new_pings(f, NULL), 1);
    assert_int_equal(np_stat(f, "nat_pings_sent"), 2);
}

/* A REGISTER whose Via is its source address is not behind NAT: no pings. */
static void test_direct_binding_is_not_pinged(void **state)
{
    struct fx *f = *state;
    register_from(f, "192.0.2.9", 5080, "192.0.2.9:5080");
    const struct location_binding *b;
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), &b, 1), 1);
    assert_false(b->flags & LOCATION_FLAG_NAT);
    harness_advance(f->h, 30000);
    assert_int_equal(new_pings(f, NULL), 0);
}

/* An answer to each ping clears the unanswered count: the binding stays
 * through twice nat_ping_max_lost intervals. */
static void test_answered_pings_keep_the_binding(void **state)
{
    struct fx *f = *state;
    register_from(f, "198.51.100.7", 40000, "10.0.0.5:5060");
    new_pings(f, NULL);
    for (int k = 0; k < 6; k++) {
        harness_advance(f->h, 10000);
        size_t i = 0;
        assert_int_equal(new_pings(f, &i), 1);
        answer_ping(f, i);
    }
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), NULL, 0), 1);
    assert_int_equal(np_stat(f, "nat_pings_answered"), 6);
    assert_int_equal(np_stat(f, "nat_unreachable_removed"), 0);
}

/* nat_ping_max_lost pings in a row without an answer: at the next turn the
 * binding is removed instead of pinged again, and user.offline says
 * reason unreachable. */
static void test_unanswered_pings_remove_the_binding(void **state)
{
    struct fx *f = *state;
    register_from(f, "198.51.100.7", 40000, "10.0.0.5:5060");
    new_pings(f, NULL);
    harness_advance(f->h, 30000);
    assert_int_equal(new_pings(f, NULL), 3);
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), NULL, 0), 1);
    harness_advance(f->h, 10000);
    assert_int_equal(new_pings(f, NULL), 0);
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), NULL, 0), 0);
    assert_int_equal(np_stat(f, "nat_unreachable_removed"), 1);
    assert_non_null(strstr(f->last_offline, "\"user\":\"alice\""));
    assert_non_null(strstr(f->last_offline, "\"reason\":\"unreachable\""));
}

/* A REGISTER refreshing the binding counts like an answer. */
static void test_refresh_clears_the_count(void **state)
{
    struct fx *f = *state;
    register_from(f, "198.51.100.7", 40000, "10.0.0.5:5060");
    harness_advance(f->h, 30000); /* three unanswered */
    register_from(f, "198.51.100.7", 40000, "10.0.0.5:5060");
    harness_advance(f->h, 10000);
    assert_int_equal(location_lookup(f->loc, STR_LIT("alice"), NULL, 0), 1);
}

static bool natted(const char *via, const char *contact, const char *src_ip, uint16_t src_port)
{
    struct sip_via v;
    struct sip_uri c;
    struct sockaddr_storage src;
    assert_int_equal(sip_via_parse(str_from_cstr(via), &v), 0);
    assert_int_equal(sip_uri_parse(str_from_cstr(contact), &c), 0);
    assert_int_equal(transport_addr_parse(src_ip, strlen(src_ip), src_port, &src), 0);
    return natping_request_natted(&v, &c, &src);
}

/* The nat_uac_test-like rules of natping_request_natted. */
static void test_natted_rules(void **state)
{
    (void)state;
    /* Via host is not the source IP */
    assert_true(natted("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1", "sip:a@10.0.0.5", "198.51.100.7", 5060));
    /* Via port (5060 when absent) is not the source port */
    assert_true(natted("SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK1", "sip:a@198.51.100.7", "198.51.100.7", 40000));
    /* a private Contact from a public source */
    assert_true(natted("SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK1", "sip:a@192.168.1.2", "198.51.100.7", 5060));
    /* everything matches */
    assert_false(natted("SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK1", "sip:a@198.51.100.7", "198.51.100.7", 5060));
    /* another Contact port alone is not NAT (a UA listening elsewhere) */
    assert_false(natted("SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK1", "sip:a@198.51.100.7:5070", "198.51.100.7",
                        5060));
}

/* RFC 3261 §25.1: on an IPv6 listener (host ::1) the ping's Via sent-by and
 * From/Call-ID hosts carry the brackets, and its answer is still matched. */
static void test_ping_from_ipv6_host_is_bracketed(void **state)
{
    struct fx *f = *state;
    snprintf(f->h->local.host, sizeof(f->h->local.host), "::1");
    register_from(f, "198.51.100.7", 40000, "10.0.0.5:5060");
    new_pings(f, NULL);
    harness_advance(f->h, 10000);
    size_t i = 0;
    assert_int_equal(new_pings(f, &i), 1);
    const struct sip_msg *m = harness_sent_msg(f->h, i);
    str_t via = harness_header(m, SIP_HDR_VIA);
    assert_true(via.len > 24 && !memcmp(via.s, "SIP/2.0/UDP [::1]:5060;", 23));
    assert_true(m->call_id.len > 6 && !memcmp(m->call_id.s + m->call_id.len - 6, "@[::1]", 6));
    answer_ping(f, i);
    assert_int_equal(np_stat(f, "nat_pings_answered"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_natted_binding_is_pinged_at_its_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_binding_is_not_pinged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answered_pings_keep_the_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_pings_remove_the_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_clears_the_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_from_ipv6_host_is_bracketed, setup, teardown),
        cmocka_unit_test(test_natted_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
