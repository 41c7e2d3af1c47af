/* test_offline_msg.c — offline instant messages (subs/offline_msg.h) as
 * specified, on the in-process stack (harness.h) with the real registrar
 * and location service (no store): MESSAGEs from alice given as SIP text
 * and offered the way the proxy offers them, bob's REGISTERs through the
 * registrar, what cascade delivers read back from what was sent. The wall
 * clock is the test's.
 *
 * Our domain is example.com; bob's phone is 192.0.2.20:5062. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "subs/offline_msg.h"
#include "subs_fixture.h"
#include "txn/txn.h"

static int64_t wall_now = 1700000000000;
static int64_t fake_wall(void) { return wall_now; }

struct fx {
    struct harness *h;
    struct config cfg;
    struct users *users;
    struct location *loc;
    struct registrar *r;
    struct offline_msg *o;
    uint32_t branch;
    const char *last_reason;
};

/* MESSAGEs go where the proxy would offer them: to the store, for bob. */
static void on_request(void *arg, struct txn *st, const struct transport_rx *rx)
{
    struct fx *f = arg;
    if (registrar_on_request(f->r, st, rx)) return;
    if (rx->msg->method == SIP_MESSAGE) {
        f->last_reason = NULL;
        int status = offline_msg_take(f->o, rx->msg, "bob", &f->last_reason);
        if (status == 0) status = 480; /* not taken: the proxy's own answer */
        txn_respond(st, status, status == 202 ? "Accepted" : f->last_reason, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
        return;
    }
    txn_respond(st, 604, "Not Taken", STR_NULL, NULL, 0, STR_NULL, STR_NULL);
}

static void start(struct fx *f)
{
    f->users = users_new(NULL);
    harness_add_user(f->h, f->users, "bob", "secret-b");
    f->r = subs_fx_registrar(f->h, &f->cfg, &f->cfg.auth, f->users, NULL, &f->loc);
    struct offline_msg_deps od = {.cfg = &f->cfg.messages, .registrar = f->r, .ua = f->h->ua,
                                  .timers = f->h->timers, .wall_ms = fake_wall};
    f->o = offline_msg_new(&od);
    assert_non_null(f->o);
    registrar_set_on_registered(f->r, offline_msg_on_registered, f->o);
    f->h->on_request = on_request;
    f->h->arg = f;
}

static int setup(void **state)
{
    wall_now = 1700000000000;
    struct fx *f = calloc(1, sizeof(*f));
    f->h = subs_fx_harness(&f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    offline_msg_free(f->o);
    subs_fx_free(f->h, f->r, f->loc, NULL, f->users);
    free(f);
    return 0;
}

/* alice's MESSAGE to bob with body (to_tag "" outside a dialog); the status
 * of the answer. */
static int say(struct fx *f, const char *body, const char *to_tag)
{
    char text[4096], to[64] = "";
    uint32_t n = ++f->branch;
    if (to_tag[0]) snprintf(to, sizeof(to), ";tag=%s", to_tag);
    snprintf(text, sizeof(text),
             "MESSAGE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bK-m%u\n"
             "Max-Forwards: 70\nFrom: \"Alice\" <sip:alice@example.com>;tag=a1\nTo: <sip:bob@example.com>%s\n"
             "Call-ID: msg-%u\nCSeq: 1 MESSAGE\nContent-Type: text/plain\nContent-Length: #CL#\n\n%s",
             n, to, n, body);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, "192.0.2.9", 5080, SIP_TRANSPORT_UDP, text), 0);
    int i = harness_find_sent(f->h, before, "SIP/2.0 ");
    assert_true(i >= 0);
    return harness_sent_status(f->h, (size_t)i);
}

static void register_bob(struct fx *f, int cseq)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bK-r%u\n"
             "Max-Forwards: 70\nFrom: <sip:bob@example.com>;tag=r1\nTo: <sip:bob@example.com>\n"
             "Call-ID: reg-bob\nCSeq: %d REGISTER\nContact: <sip:bob@192.0.2.20:5062>;expires=600\n"
             "Content-Length: 0\n\n",
             ++f->branch, cseq);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, "192.0.2.20", 5062, SIP_TRANSPORT_UDP, text), 0);
    assert_true(harness_find_sent(f->h, before, "SIP/2.0 200") >= 0);
}

/* Answers the request sent at index i with status, as bob's phone. */
static void answer(struct fx *f, int i, int status)
{
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    char text[2048];
    snprintf(text, sizeof(text),
             "SIP/2.0 %d Whatever\nVia: %.*s\nFrom: %.*s\nTo: %.*s;tag=b1\nCall-ID: %.*s\nCSeq: %u MESSAGE\n"
             "Content-Length: 0\n\n",
             status, STR_FMT(harness_header(m, SIP_HDR_VIA)), STR_FMT(harness_header(m, SIP_HDR_FROM)),
             STR_FMT(harness_header(m, SIP_HDR_TO)), STR_FMT(m->call_id), m->cseq.number);
    assert_int_equal(harness_inject(f->h, "192.0.2.20", 5062, SIP_TRANSPORT_UDP, text), 0);
}

static int count_state(struct fx *f, const char *state)
{
    json_t *a = offline_msg_list_json(f->o, "bob", state);
    assert_non_null(a);
    int n = (int)json_array_size(a);
    json_decref(a);
    return n;
}

/* The MESSAGE cascade sent last, from index from on; -1 when none. */
static int next_message(struct fx *f, size_t from) { return harness_find_sent(f->h, from, "MESSAGE "); }

static bool body_is(struct fx *f, int i, const char *want)
{
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    return m->body.len == strlen(want) && memcmp(m->body.s, want, m->body.len) == 0;
}

/* Kept with 202; over the count quota, the byte quota or max_body: 480 with
 * a reason; a MESSAGE inside a dialog is not taken. */
static void test_take_and_quotas(void **state)
{
    struct fx *f = *state;
    f->cfg.messages.max_per_user = 2;
    f->cfg.messages.max_bytes_per_user = 10;
    f->cfg.messages.max_body = 6;
    start(f);
    assert_int_equal(say(f, "one", ""), 202);
    assert_int_equal(say(f, "toolong", ""), 480); /* 7 > max_body */
    assert_string_equal(f->last_reason, "Message Too Large To Keep");
    assert_int_equal(say(f, "twotwo", ""), 202); /* 3 + 6 <= 10 */
    assert_int_equal(say(f, "x", ""), 480);      /* a third */
    assert_string_equal(f->last_reason, "Offline Message Quota Exceeded");
    assert_int_equal(say(f, "in-dialog", "t9"), 480); /* not offered: the proxy's 480 */
    assert_null(f->last_reason);
    assert_int_equal(count_state(f, "queued"), 2);
    json_t *a = offline_msg_list_json(f->o, NULL, NULL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "from")),
                        "\"Alice\" <sip:alice@example.com>");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 1), "size")), 6);
    json_decref(a);
    struct offline_msg_stats st;
    offline_msg_get_stats(f->o, &st);
    assert_int_equal(st.stored, 2);
    assert_int_equal(st.refused, 2);
}

/* At registration: oldest first, one in flight, From and To as sent, a
 * Date; a failure stops the run and the next registration takes it up. */
static void test_delivery_in_order_once(void **state)
{
    struct fx *f = *state;
    start(f);
    assert_int_equal(say(f, "first", ""), 202);
    wall_now += 1000;
    assert_int_equal(say(f, "second", ""), 202);
    assert_int_equal(say(f, "third", ""), 202);
    size_t before = harness_sent_count(f->h);
    register_bob(f, 1);
    int m1 = next_message(f, before);
    assert_true(m1 >= 0);
    assert_int_equal(harness_count_sent(f->h, before, "MESSAGE "), 1); /* one in flight */
    assert_true(body_is(f, m1, "first"));
    assert_true(harness_sent_to(f->h, (size_t)m1, "192.0.2.20", 5062));
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)m1);
    assert_true(str_eq_cstr(m->ruri.raw, "sip:bob@192.0.2.20:5062"));
    assert_true(str_eq_cstr(m->from.uri_raw, "sip:alice@example.com"));
    assert_true(str_eq_cstr(m->to.uri_raw, "sip:bob@example.com"));
    assert_true(str_eq_cstr(harness_header(m, SIP_HDR_DATE), "Tue, 14 Nov 2023 22:13:20 GMT"));
    assert_true(str_eq_cstr(m->content_type, "text/plain"));
    answer(f, m1, 200);
    int m2 = next_message(f, (size_t)m1 + 1);
    assert_true(m2 >= 0 && body_is(f, m2, "second"));
    assert_int_equal(count_state(f, "delivered"), 1);
    /* bob's phone refuses the second: it stays, the third is not sent. */
    answer(f, m2, 486);
    assert_int_equal(next_message(f, (size_t)m2 + 1), -1);
    assert_int_equal(count_state(f, "queued"), 2);
    /* The next registration (a refresh) takes up from the second. */
    before = harness_sent_count(f->h);
    register_bob(f, 2);
    int m3 = next_message(f, before);
    assert_true(m3 >= 0 && body_is(f, m3, "second"));
    /* Another registration while one is in flight sends nothing more. */
    size_t mid = harness_sent_count(f->h);
    register_bob(f, 3);
    assert_int_equal(harness_count_sent(f->h, mid, "MESSAGE "), 0);
    answer(f, m3, 200);
    int m4 = next_message(f, (size_t)m3 + 1);
    assert_true(m4 >= 0 && body_is(f, m4, "third"));
    answer(f, m4, 202);
    assert_int_equal(count_state(f, "delivered"), 3);
    assert_int_equal(count_state(f, "queued"), 0);
    /* Nothing is sent twice. */
    before = harness_sent_count(f->h);
    register_bob(f, 4);
    assert_int_equal(harness_count_sent(f->h, before, "MESSAGE "), 0);
    struct offline_msg_stats st;
    offline_msg_get_stats(f->o, &st);
    assert_int_equal(st.delivered, 3);
    assert_int_equal(st.delivery_failures, 1);
}

/* Both clocks forward by ms, a second at a time. */
static void tick(struct fx *f, int64_t ms)
{
    for (int64_t t = 0; t < ms; t += 1000) {
        wall_now += 1000;
        harness_advance(f->h, 1000);
    }
}

/* Queued past max_age: expired at the sweep (every max_age when shorter
 * than a minute), no longer delivered; a final state is forgotten max_age
 * after it changed. */
static void test_expiry_and_forgetting(void **state)
{
    struct fx *f = *state;
    f->cfg.messages.max_age = 30;
    start(f);
    assert_int_equal(say(f, "old", ""), 202);
    tick(f, 20000);
    assert_int_equal(say(f, "new", ""), 202);
    tick(f, 10000); /* the sweep at 30 s: "old" is 30 s old, "new" 10 s */
    assert_int_equal(count_state(f, "expired"), 1);
    assert_int_equal(count_state(f, "queued"), 1);
    tick(f, 10000);
    size_t before = harness_sent_count(f->h);
    register_bob(f, 1);
    int m1 = next_message(f, before);
    assert_true(m1 >= 0 && body_is(f, m1, "new"));
    assert_int_equal(harness_count_sent(f->h, before, "MESSAGE "), 1);
    answer(f, m1, 200); /* delivered at 40 s */
    tick(f, 20000); /* the sweep at 60 s: "old" changed 30 s ago, "new" 20 s */
    assert_int_equal(count_state(f, NULL), 1);
    assert_int_equal(count_state(f, "delivered"), 1);
    tick(f, 30000); /* the sweep at 90 s */
    assert_int_equal(count_state(f, NULL), 0);
    struct offline_msg_stats st;
    offline_msg_get_stats(f->o, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.delivered, 1);
}

/* [messages] offline = no: nothing is taken. */
static void test_off(void **state)
{
    struct fx *f = *state;
    f->cfg.messages.offline = false;
    start(f);
    assert_int_equal(say(f, "hello", ""), 480);
    assert_null(f->last_reason);
    assert_int_equal(count_state(f, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_take_and_quotas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_in_order_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_and_forgetting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
