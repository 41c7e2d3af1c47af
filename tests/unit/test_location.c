/* test_location.c — the location service driven by a fake clock: add,
 * refresh and expiry, the RFC 3261 §10.3 Call-ID/CSeq rule and atomicity,
 * connection loss, q ordering, online/offline, RFC 5626 replacement, limits,
 * and a persistence round trip through a real SQLite store. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "base/clock.h"
#include "base/log.h"
#include "registrar/location.h"
#include "registrar/natping.h"
#include "sip/msg.h"
#include "transport/transport.h"
#include "store_env.h"

/* ---- Event recording. */

struct events {
    char lines[64][160];
    int n;
    int overflow;  /* events beyond the 64 kept (bulk tests reset n) */
};

static void ev_add(struct events *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ev_add(struct events *e, const char *fmt, ...)
{
    if (e->n >= 64) {
        e->overflow++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->lines[e->n++], sizeof(e->lines[0]), fmt, ap);
    va_end(ap);
}

static void on_added(void *arg, const struct location_binding *b) { ev_add(arg, "added %s %s", b->aor, b->contact); }
static void on_refreshed(void *arg, const struct location_binding *b)
{
    ev_add(arg, "refreshed %s %s", b->aor, b->contact);
}
static void on_removed(void *arg, const struct location_binding *b, enum location_reason r)
{
    ev_add(arg, "removed %s %s %s", b->aor, b->contact, location_reason_name(r));
}
static void on_online(void *arg, const char *aor) { ev_add(arg, "online %s", aor); }
static void on_offline(void *arg, const char *aor, enum location_reason r)
{
    ev_add(arg, "offline %s %s", aor, location_reason_name(r));
}

static void expect_events(struct events *e, ...)
{
    va_list ap;
    va_start(ap, e);
    int i = 0;
    const char *want;
    while ((want = va_arg(ap, const char *)) != NULL) {
        if (i >= e->n) fail_msg("missing event #%d \"%s\"", i, want);
        if (strcmp(e->lines[i], want) != 0) fail_msg("event #%d: got \"%s\", want \"%s\"", i, e->lines[i], want);
        i++;
    }
    va_end(ap);
    assert_int_equal(e->overflow, 0);
    if (i != e->n) fail_msg("unexpected event #%d \"%s\"", i, e->lines[i]);
    e->n = 0;
}

struct fixture {
    struct timer_service ts;
    struct events ev;
    struct location *loc;
};

static struct location *new_loc(struct fixture *f, struct store *st)
{
    struct location_callbacks cb = {&f->ev, on_added, on_refreshed, on_removed, on_online, on_offline};
    struct location *loc = location_new(&f->ts, st, &cb);
    assert_non_null(loc);
    return loc;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    timer_service_init(&f->ts);
    f->loc = new_loc(f, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    location_free(f->loc);
    assert_int_equal(f->ts.count, 0); /* every binding's timer was stopped */
    timer_service_free(&f->ts);
    free(f);
    return 0;
}

static struct location_binding_in contact(const char *uri, uint32_t expires, const char *call_id, uint32_t cseq)
{
    return (struct location_binding_in){
        .contact = str_from_cstr(uri),
        .expires_s = expires,
        .q1000 = 1000,
        .call_id = str_from_cstr(call_id),
        .cseq = cseq,
        .transport = LOCATION_TRANSPORT_UDP,
    };
}

static int update1(struct location *loc, const char *aor, struct location_binding_in in, uint64_t now)
{
    return location_update(loc, str_from_cstr(aor), &in, 1, now, NULL, NULL);
}

static size_t lookup(struct location *loc, const char *aor, const struct location_binding **out, size_t cap)
{
    return location_lookup(loc, str_from_cstr(aor), out, cap);
}

/* ---- Tests. */

static void test_add_refresh_expire(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(update1(f->loc, "alice", contact("sip:alice@192.0.2.1", 60, "c1", 1), 1000), 0);
    expect_events(&f->ev, "added alice sip:alice@192.0.2.1", "online alice", NULL);
    const struct location_binding *b[4];
    assert_int_equal(lookup(f->loc, "alice", b, 4), 1);
    assert_int_equal(b[0]->expires_ms, 61000);
    assert_int_equal(b[0]->cseq, 1);
    assert_true(b[0]->expires_wall_ms - b[0]->received_wall_ms == 60000);

    /* refresh at t=30 s: the deadline moves to 90 s */
    assert_int_equal(update1(f->loc, "alice", contact("sip:alice@192.0.2.1", 60, "c1", 2), 30000), 0);
    expect_events(&f->ev, "refreshed alice sip:alice@192.0.2.1", NULL);
    assert_int_equal(lookup(f->loc, "alice", b, 4), 1);
    assert_int_equal(b[0]->expires_ms, 90000);
    assert_int_equal(b[0]->cseq, 2);
    assert_int_equal(timer_run(&f->ts, 61000), 0);
    assert_int_equal(timer_run(&f->ts, 89999), 0);
    expect_events(&f->ev, NULL);
    assert_int_equal(timer_run(&f->ts, 90000), 1);
    expect_events(&f->ev, "removed alice sip:alice@192.0.2.1 expired", "offline alice expired", NULL);
    assert_int_equal(location_count(f->loc), 0);
    assert_int_equal(location_aor_count(f->loc), 0);
    assert_int_equal(lookup(f->loc, "alice", b, 4), 0);
    assert_int_equal(timer_next_deadline(&f->ts), UINT64_MAX);
}

static void test_expiry_order_many(void **state)
{
    struct fixture *f = *state;
    /* 200 AoRs with staggered lifetimes expire one by one at the right time */
    for (int i = 0; i < 200; i++) {
        char aor[32], uri[64];
        snprintf(aor, sizeof(aor), "u%d", i);
        snprintf(uri, sizeof(uri), "sip:u%d@h", i);
        assert_int_equal(update1(f->loc, aor, contact(uri, (uint32_t)(10 + (i * 7) % 200), "c", 1), 0), 0);
    }
    f->ev.n = 0;
    assert_int_equal(location_count(f->loc), 200);
    size_t remaining = 200;
    for (uint64_t t = 0; t <= 210000; t += 1000) {
        int fired = timer_run(&f->ts, t);
        remaining -= (size_t)fired;
        f->ev.n = 0;
        assert_int_equal(location_count(f->loc), remaining);
        /* every binding still there has not reached its deadline */
        for (int i = 0; i < 200; i++) {
            char aor[32];
            snprintf(aor, sizeof(aor), "u%d", i);
            const struct location_binding *b[1];
            size_t n = lookup(f->loc, aor, b, 1);
            uint64_t deadline = (uint64_t)(10 + (i * 7) % 200) * 1000;
            assert_int_equal(n, deadline > t ? 1 : 0);
        }
    }
    assert_int_equal(remaining, 0);
}

static void test_callid_cseq_rule(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(update1(f->loc, "bob", contact("sip:bob@a", 3600, "call-1", 10), 0), 0);
    /* same Call-ID, same or lower CSeq: abort (RFC 3261 §10.3 step 7) */
    assert_int_equal(update1(f->loc, "bob", contact("sip:bob@a", 3600, "call-1", 10), 0), LOCATION_ERR_OUT_OF_ORDER);
    assert_int_equal(update1(f->loc, "bob", contact("sip:bob@a", 0, "call-1", 9), 0), LOCATION_ERR_OUT_OF_ORDER);
    /* higher CSeq: fine; a different Call-ID may carry any CSeq */
    assert_int_equal(update1(f->loc, "bob", contact("sip:bob@a", 3600, "call-1", 11), 0), 0);
    assert_int_equal(update1(f->loc, "bob", contact("sip:bob@a", 3600, "call-2", 1), 0), 0);
    const struct location_binding *b[4];
    assert_int_equal(lookup(f->loc, "bob", b, 4), 1);
    assert_string_equal(b[0]->call_id, "call-2");
    assert_int_equal(b[0]->cseq, 1);
    f->ev.n = 0;

    /* atomic: one out-of-order contact fails the whole REGISTER */
    struct location_binding_in two[2] = {contact("sip:bob@new", 3600, "call-2", 1),
                                         contact("sip:bob@a", 3600, "call-2", 1)};
    assert_int_equal(location_update(f->loc, str_from_cstr("bob"), two, 2, 0, NULL, NULL),
                     LOCATION_ERR_OUT_OF_ORDER);
    assert_int_equal(lookup(f->loc, "bob", b, 4), 1);
    expect_events(&f->ev, NULL);

    /* Contact: * obeys the same rule (step 6) */
    assert_int_equal(location_unregister_all(f->loc, str_from_cstr("bob"), str_from_cstr("call-2"), 1, NULL, NULL),
                     LOCATION_ERR_OUT_OF_ORDER);
    assert_int_equal(location_count(f->loc), 1);
    assert_int_equal(location_unregister_all(f->loc, str_from_cstr("bob"), str_from_cstr("call-2"), 2, NULL, NULL), 1);
    expect_events(&f->ev, "removed bob sip:bob@a unregister", "offline bob unregister", NULL);
    assert_int_equal(location_unregister_all(f->loc, str_from_cstr("bob"), str_from_cstr("x"), 1, NULL, NULL), 0);
}

static void test_unregister_and_mixed_update(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(update1(f->loc, "carol", contact("sip:carol@b", 3600, "c", 1), 0), 0);
    f->ev.n = 0;
    /* expires 0 for an unknown contact: not an error, nothing happens */
    assert_int_equal(update1(f->loc, "carol", contact("sip:carol@zz", 0, "c", 2), 0), 0);
    expect_events(&f->ev, NULL);
    /* swap contacts in one REGISTER: carol never goes offline */
    struct location_binding_in two[2] = {contact("sip:carol@b", 0, "c", 3), contact("sip:carol@c", 3600, "c", 3)};
    assert_int_equal(location_update(f->loc, str_from_cstr("carol"), two, 2, 0, NULL, NULL), 0);
    expect_events(&f->ev, "added carol sip:carol@c", "removed carol sip:carol@b unregister", NULL);
    /* remove the last one explicitly */
    assert_int_equal(update1(f->loc, "carol", contact("sip:carol@c", 0, "c", 4), 0), 0);
    expect_events(&f->ev, "removed carol sip:carol@c unregister", "offline carol unregister", NULL);
    assert_int_equal(location_aor_count(f->loc), 0);

    /* removing several, then some unknown, in one request frees the AoR once */
    struct location_binding_in add[3] = {contact("sip:d@1", 60, "d", 1), contact("sip:d@2", 60, "d", 1),
                                         contact("sip:d@3", 60, "d", 1)};
    assert_int_equal(location_update(f->loc, str_from_cstr("dave"), add, 3, 0, NULL, NULL), 0);
    f->ev.n = 0;
    struct location_binding_in del[4] = {contact("sip:d@1", 0, "d", 2), contact("sip:d@2", 0, "d", 2),
                                         contact("sip:d@3", 0, "d", 2), contact("sip:d@4", 0, "d", 2)};
    assert_int_equal(location_update(f->loc, str_from_cstr("dave"), del, 4, 0, NULL, NULL), 0);
    expect_events(&f->ev, "removed dave sip:d@1 unregister", "removed dave sip:d@2 unregister",
                  "removed dave sip:d@3 unregister", "offline dave unregister", NULL);
    /* a duplicated contact in one request: the last one wins */
    struct location_binding_in dup[2] = {contact("sip:d@1", 60, "d", 3), contact("sip:d@1", 120, "d", 3)};
    assert_int_equal(location_update(f->loc, str_from_cstr("dave"), dup, 2, 0, NULL, NULL), 0);
    const struct location_binding *b[2];
    assert_int_equal(lookup(f->loc, "dave", b, 2), 1);
    assert_int_equal(b[0]->expires_ms, 120000);
}

static void test_online_offline_multiple(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(update1(f->loc, "erin", contact("sip:erin@1", 100, "e", 1), 0), 0);
    assert_int_equal(update1(f->loc, "erin", contact("sip:erin@2", 200, "e2", 1), 0), 0);
    expect_events(&f->ev, "added erin sip:erin@1", "online erin", "added erin sip:erin@2", NULL);
    assert_int_equal(timer_run(&f->ts, 100000), 1);
    expect_events(&f->ev, "removed erin sip:erin@1 expired", NULL);
    assert_int_equal(location_remove(f->loc, str_from_cstr("erin"), str_from_cstr("sip:erin@2"),
                                     LOCATION_REMOVED_KICKED, NULL, NULL),
                     1);
    expect_events(&f->ev, "removed erin sip:erin@2 kicked", "offline erin kicked", NULL);
    assert_int_equal(location_remove(f->loc, str_from_cstr("erin"), str_from_cstr("sip:erin@2"),
                                     LOCATION_REMOVED_KICKED, NULL, NULL),
                     LOCATION_ERR_NOT_FOUND);

    for (int i = 0; i < 5; i++) {
        char uri[32];
        snprintf(uri, sizeof(uri), "sip:f@%d", i);
        assert_int_equal(update1(f->loc, "frank", contact(uri, 100, "f", 1), 0), 0);
    }
    f->ev.n = 0;
    assert_int_equal(location_remove_all(f->loc, str_from_cstr("frank"), LOCATION_REMOVED_KICKED, NULL, NULL), 5);
    assert_int_equal(f->ev.n, 6);
    assert_string_equal(f->ev.lines[5], "offline frank kicked");
    assert_int_equal(location_remove_all(f->loc, str_from_cstr("frank"), LOCATION_REMOVED_KICKED, NULL, NULL), 0);
}

static void test_q_ordering(void **state)
{
    struct fixture *f = *state;
    struct location_binding_in in = contact("sip:g@500", 100, "g", 1);
    in.q1000 = 500;
    assert_int_equal(update1(f->loc, "gina", in, 0), 0);
    in = contact("sip:g@1000a", 100, "g", 1);
    assert_int_equal(update1(f->loc, "gina", in, 0), 0);
    in = contact("sip:g@100", 100, "g", 1);
    in.q1000 = 100;
    assert_int_equal(update1(f->loc, "gina", in, 0), 0);
    usleep(2000); /* the newer of two equal-q bindings comes first */
    in = contact("sip:g@1000b", 100, "g", 1);
    assert_int_equal(update1(f->loc, "gina", in, 0), 0);
    const struct location_binding *b[8];
    assert_int_equal(lookup(f->loc, "gina", b, 8), 4);
    assert_string_equal(b[0]->contact, "sip:g@1000b");
    assert_string_equal(b[1]->contact, "sip:g@1000a");
    assert_string_equal(b[2]->contact, "sip:g@500");
    assert_string_equal(b[3]->contact, "sip:g@100");
    /* a refresh that lowers q moves the binding */
    in = contact("sip:g@1000b", 100, "g", 2);
    in.q1000 = 0;
    assert_int_equal(update1(f->loc, "gina", in, 0), 0);
    assert_int_equal(lookup(f->loc, "gina", b, 2), 4); /* total, though only 2 fit */
    assert_string_equal(b[0]->contact, "sip:g@1000a");
    assert_string_equal(b[1]->contact, "sip:g@500");
    assert_int_equal(lookup(f->loc, "gina", b, 8), 4);
    assert_string_equal(b[3]->contact, "sip:g@1000b");
    assert_int_equal(b[3]->q1000, 0);
}

static struct location_binding_in tcp_contact(const char *uri, uint64_t conn, const struct sockaddr_in *sa)
{
    struct location_binding_in in = contact(uri, 600, uri, 1);
    in.transport = LOCATION_TRANSPORT_TCP;
    in.conn_id = conn;
    in.remote_addr = (const struct sockaddr *)sa;
    return in;
}

static void test_remove_by_conn(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(40000)};
    inet_pton(AF_INET, "198.51.100.7", &sa.sin_addr);
    assert_int_equal(update1(f->loc, "alice", tcp_contact("sip:alice@tcp", 7, &sa), 0), 0);
    assert_int_equal(update1(f->loc, "alice", contact("sip:alice@udp", 600, "u", 1), 0), 0);
    assert_int_equal(update1(f->loc, "bob", tcp_contact("sip:bob@tcp", 7, &sa), 0), 0);
    assert_int_equal(update1(f->loc, "carol", tcp_contact("sip:carol@tcp", 8, &sa), 0), 0);
    const struct location_binding *b[4];
    assert_int_equal(lookup(f->loc, "bob", b, 4), 1);
    assert_string_equal(b[0]->remote, "198.51.100.7:40000");
    assert_int_equal(b[0]->addr.sa.sa_family, AF_INET);
    assert_int_equal(b[0]->conn_id, 7);
    f->ev.n = 0;

    assert_int_equal(location_remove_by_conn(f->loc, 7, LOCATION_REMOVED_TRANSPORT_LOST), 2);
    /* alice keeps her UDP binding: no offline for her */
    assert_int_equal(f->ev.n, 3);
    assert_int_equal(lookup(f->loc, "alice", b, 4), 1);
    assert_string_equal(b[0]->contact, "sip:alice@udp");
    assert_int_equal(lookup(f->loc, "bob", b, 4), 0);
    assert_int_equal(lookup(f->loc, "carol", b, 4), 1);
    assert_int_equal(location_remove_by_conn(f->loc, 7, LOCATION_REMOVED_TRANSPORT_LOST), 0);
    assert_int_equal(location_remove_by_conn(f->loc, 0, LOCATION_REMOVED_TRANSPORT_LOST), 0);

    /* a refresh over another connection moves the binding in the index */
    struct location_binding_in in = tcp_contact("sip:carol@tcp", 9, &sa);
    in.cseq = 2;
    assert_int_equal(update1(f->loc, "carol", in, 0), 0);
    assert_int_equal(location_remove_by_conn(f->loc, 8, LOCATION_REMOVED_TRANSPORT_LOST), 0);
    f->ev.n = 0;
    /* keep-but-flag instead of removing */
    assert_int_equal(location_flag_conn_lost(f->loc, 9), 1);
    expect_events(&f->ev, NULL);
    assert_int_equal(lookup(f->loc, "carol", b, 4), 1);
    assert_true(b[0]->flags & LOCATION_FLAG_TRANSPORT_LOST);
    assert_int_equal(b[0]->conn_id, 0);
    assert_int_equal(location_remove_by_conn(f->loc, 9, LOCATION_REMOVED_TRANSPORT_LOST), 0);
    in.cseq = 3;
    in.conn_id = 10;
    assert_int_equal(update1(f->loc, "carol", in, 0), 0);
    assert_int_equal(lookup(f->loc, "carol", b, 4), 1);
    assert_int_equal(b[0]->flags, 0);

    /* many connections (index growth), each dropped on its own */
    for (int i = 0; i < 2000; i++) {
        char aor[32];
        snprintf(aor, sizeof(aor), "m%d", i);
        assert_int_equal(update1(f->loc, aor, tcp_contact("sip:m@x", 1000 + (uint64_t)i, &sa), 0), 0);
    }
    assert_int_equal(location_count(f->loc), 2002);
    for (int i = 0; i < 2000; i++) {
        f->ev.n = 0;
        assert_int_equal(location_remove_by_conn(f->loc, 1000 + (uint64_t)i, LOCATION_REMOVED_TRANSPORT_LOST), 1);
    }
    assert_int_equal(location_count(f->loc), 2);
}

/* The AoR table grows past its first 256 buckets: every AoR stays found
 * (lookup is by exact AoR), counted once, visited once by foreach, and an
 * unregister of each leaves the table empty. */
static int count_visit(void *arg, const struct location_binding *b)
{
    (void)b;
    (*(int *)arg)++;
    return 0;
}

static void test_aor_table_growth_keeps_every_aor(void **state)
{
    struct fixture *f = *state;
    enum { N = 3000 };
    char aor[32];
    for (int i = 0; i < N; i++) {
        snprintf(aor, sizeof(aor), "user%d", i);
        assert_int_equal(update1(f->loc, aor, contact("sip:u@192.0.2.1", 600, "g", 1), 0), 0);
    }
    assert_int_equal(location_aor_count(f->loc), N);
    const struct location_binding *b[2];
    for (int i = 0; i < N; i++) {
        snprintf(aor, sizeof(aor), "user%d", i);
        assert_int_equal(lookup(f->loc, aor, b, 2), 1);
        assert_string_equal(b[0]->aor, aor);
    }
    assert_int_equal(lookup(f->loc, "user", b, 2), 0);
    assert_int_equal(lookup(f->loc, "user30000", b, 2), 0);
    int visited = 0;
    assert_int_equal(location_foreach(f->loc, count_visit, &visited), 0);
    assert_int_equal(visited, N);
    for (int i = 0; i < N; i++) {
        snprintf(aor, sizeof(aor), "user%d", i);
        assert_int_equal(update1(f->loc, aor, contact("sip:u@192.0.2.1", 0, "g", 2), 0), 0);
    }
    assert_int_equal(location_aor_count(f->loc), 0);
    assert_int_equal(location_count(f->loc), 0);
}

static void test_instance_replace(void **state)
{
    struct fixture *f = *state;
    struct location_binding_in in = contact("sip:h@10.0.0.1:5060", 600, "h", 1);
    in.instance = str_from_cstr("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>");
    in.reg_id = 1;
    assert_int_equal(update1(f->loc, "hank", in, 0), 0);
    f->ev.n = 0;
    /* same instance and reg-id from a new address: the flow moved */
    in.contact = str_from_cstr("sip:h@10.0.0.2:5060");
    in.cseq = 2;
    assert_int_equal(update1(f->loc, "hank", in, 0), 0);
    expect_events(&f->ev, "added hank sip:h@10.0.0.2:5060", "removed hank sip:h@10.0.0.1:5060 replaced", NULL);
    assert_int_equal(location_count(f->loc), 1);
    /* another reg-id is another flow: kept side by side */
    in.contact = str_from_cstr("sip:h@10.0.0.3:5060");
    in.reg_id = 2;
    in.cseq = 3;
    assert_int_equal(update1(f->loc, "hank", in, 0), 0);
    assert_int_equal(location_count(f->loc), 2);
    /* an old CSeq with the same Call-ID must not replace the newer flow */
    in.contact = str_from_cstr("sip:h@10.0.0.9:5060");
    in.reg_id = 1;
    in.cseq = 1;
    assert_int_equal(update1(f->loc, "hank", in, 0), LOCATION_ERR_OUT_OF_ORDER);
}

static void test_limits_and_bad_input(void **state)
{
    struct fixture *f = *state;
    log_set_level(LOG_ERROR);
    location_set_limits(f->loc, 2, 3);
    assert_int_equal(update1(f->loc, "ivy", contact("sip:i@1", 60, "i", 1), 0), 0);
    assert_int_equal(update1(f->loc, "ivy", contact("sip:i@2", 60, "i", 2), 0), 0);
    assert_int_equal(update1(f->loc, "ivy", contact("sip:i@3", 60, "i", 3), 0), LOCATION_ERR_TOO_MANY);
    assert_int_equal(update1(f->loc, "ivy", contact("sip:i@2", 60, "i", 4), 0), 0); /* refresh is fine */
    /* swapping one for another within the limit is fine */
    struct location_binding_in swap[2] = {contact("sip:i@1", 0, "i", 5), contact("sip:i@3", 60, "i", 5)};
    assert_int_equal(location_update(f->loc, str_from_cstr("ivy"), swap, 2, 0, NULL, NULL), 0);
    assert_int_equal(update1(f->loc, "jon", contact("sip:j@1", 60, "j", 1), 0), 0);
    assert_int_equal(update1(f->loc, "kim", contact("sip:k@1", 60, "k", 1), 0), LOCATION_ERR_TOO_MANY);
    assert_int_equal(location_count(f->loc), 3);

    struct location_binding_in in = contact("", 60, "x", 1);
    assert_int_equal(update1(f->loc, "jon", in, 0), LOCATION_ERR_INVALID);
    in = contact("sip:a@b\r\nX-Injected: 1", 60, "x", 1);
    assert_int_equal(update1(f->loc, "jon", in, 0), LOCATION_ERR_INVALID);
    in = contact("sip:a@b", 60, "x", 1);
    in.q1000 = 1001;
    assert_int_equal(update1(f->loc, "jon", in, 0), LOCATION_ERR_INVALID);
    in.q1000 = -1;
    assert_int_equal(update1(f->loc, "jon", in, 0), LOCATION_ERR_INVALID);
    in.q1000 = 1000;
    in.transport = (enum location_transport)99;
    assert_int_equal(update1(f->loc, "jon", in, 0), LOCATION_ERR_INVALID);
    in.transport = LOCATION_TRANSPORT_UDP;
    char *big = malloc(LOCATION_MAX_FIELD + 2);
    memset(big, 'a', LOCATION_MAX_FIELD + 1);
    big[LOCATION_MAX_FIELD + 1] = '\0';
    in.user_agent = str_from_cstr(big);
    assert_int_equal(update1(f->loc, "jon", in, 0), LOCATION_ERR_INVALID);
    in.user_agent = STR_NULL;
    big[LOCATION_MAX_AOR + 1] = '\0';
    assert_int_equal(update1(f->loc, big, in, 0), LOCATION_ERR_INVALID);
    assert_int_equal(update1(f->loc, "", in, 0), LOCATION_ERR_INVALID);
    free(big);
    assert_int_equal(location_update(f->loc, str_from_cstr("jon"), NULL, 1, 0, NULL, NULL), LOCATION_ERR_INVALID);
    assert_int_equal(location_update(f->loc, str_from_cstr("jon"), &in, LOCATION_MAX_CONTACTS + 1, 0, NULL, NULL),
                     LOCATION_ERR_INVALID);
    assert_int_equal(location_count(f->loc), 3);
    log_set_level(LOG_INFO);
}

struct done {
    int calls;
    int status;
};

static void done_cb(void *arg, int status)
{
    struct done *d = arg;
    d->calls++;
    d->status = status;
}

static int count_cb(void *arg, const struct location_binding *b)
{
    (void)b;
    (*(int *)arg)++;
    return 0;
}

static void test_no_store_done_is_synchronous(void **state)
{
    struct fixture *f = *state;
    struct done d = {0};
    struct location_binding_in in = contact("sip:l@1", 60, "l", 1);
    assert_int_equal(location_update(f->loc, str_from_cstr("lou"), &in, 1, 0, done_cb, &d), 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    /* a failed update never calls back */
    assert_int_equal(location_update(f->loc, str_from_cstr("lou"), &in, 1, 0, done_cb, &d),
                     LOCATION_ERR_OUT_OF_ORDER);
    assert_int_equal(d.calls, 1);
    assert_int_equal(location_remove_all(f->loc, str_from_cstr("nobody"), LOCATION_REMOVED_KICKED, done_cb, &d), 0);
    assert_int_equal(d.calls, 2);
    int n = 0;
    assert_int_equal(location_foreach(f->loc, count_cb, &n), 0);
    assert_int_equal(n, 1);
}

/* ---- Persistence through a real store. */

/* A temporary directory, a loop and a store opened on a new database there. */
static struct store *store_env_start(struct store_env *e)
{
    store_env_open(e, "loc");
    return store_env_store(e);
}

static void test_persistence_round_trip(void **state)
{
    struct fixture *f = *state;
    struct store_env e;
    struct store *st = store_env_start(&e);
    struct location *loc = new_loc(f, st);

    struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6, .sin6_port = htons(5062)};
    inet_pton(AF_INET6, "2001:db8::7", &sa6.sin6_addr);
    struct location_binding_in in = contact("sip:p@[2001:db8::7]:5062;transport=tcp", 3600, "call-p", 42);
    in.q1000 = 700;
    in.transport = LOCATION_TRANSPORT_TCP;
    in.conn_id = 77;
    in.remote_addr = (const struct sockaddr *)&sa6;
    in.path = str_from_cstr("<sip:edge.example.com;lr>");
    in.user_agent = str_from_cstr("baresip 3.0");
    in.instance = str_from_cstr("<urn:uuid:1>");
    in.reg_id = 1;
    struct done d = {0};
    uint64_t now = 5000;
    int64_t wall_before = clock_wall_ms();
    assert_int_equal(location_update(loc, str_from_cstr("pat@example.com"), &in, 1, now, done_cb, &d), 0);
    assert_int_equal(d.calls, 0); /* fires only once committed */
    while (d.calls == 0) uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(d.status, 0);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(5060)};
    inet_pton(AF_INET, "192.0.2.55", &sa.sin_addr);
    struct location_binding_in u = contact("sip:p@192.0.2.55", 10, "call-u", 1);
    u.remote_addr = (const struct sockaddr *)&sa;
    struct location_binding_in gone = contact("sip:p@gone", 3600, "call-g", 1);
    struct location_binding_in both[2] = {u, gone};
    d.calls = 0;
    assert_int_equal(location_update(loc, str_from_cstr("pat@example.com"), both, 2, now, done_cb, &d), 0);
    /* a refresh of nothing (fetch) and a removal also wait for the commit */
    assert_int_equal(location_update(loc, str_from_cstr("pat@example.com"), NULL, 0, now, done_cb, &d), 0);
    assert_int_equal(location_remove(loc, str_from_cstr("pat@example.com"), str_from_cstr("sip:p@gone"),
                                     LOCATION_REMOVED_KICKED, done_cb, &d),
                     1);
    assert_int_equal(d.calls, 0);
    while (d.calls < 3) uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(d.status, 0);
    /* another AoR that is removed wholesale */
    assert_int_equal(update1(loc, "zed", contact("sip:z@1", 3600, "z", 1), now), 0);
    d.calls = 0;
    assert_int_equal(location_remove_all(loc, str_from_cstr("zed"), LOCATION_REMOVED_KICKED, done_cb, &d), 1);
    store_flush_sync(st);
    assert_int_equal(d.calls, 1);
    location_free(loc);
    store_close(st);
    f->ev.n = 0;

    /* Restart 5 s (wall) later: the 10 s UDP binding has 5 s left; then at
     * 15 s it is dropped at load. */
    char err[256];
    st = store_open(&e.loop, e.path, err, sizeof(err));
    assert_non_null(st);
    loc = new_loc(f, st);
    int64_t wall = wall_before + 5000;
    assert_int_equal(location_load(loc, st, 100000, wall), 2);
    expect_events(&f->ev, NULL);
    assert_int_equal(location_count(loc), 2);
    const struct location_binding *b[4];
    assert_int_equal(lookup(loc, "pat@example.com", b, 4), 2);
    const struct location_binding *p = b[0], *q = b[1];
    assert_string_equal(q->contact, "sip:p@[2001:db8::7]:5062;transport=tcp");
    assert_string_equal(p->contact, "sip:p@192.0.2.55");
    /* q 1000 first */
    assert_int_equal(p->q1000, 1000);
    assert_int_equal(q->q1000, 700);
    assert_string_equal(q->call_id, "call-p");
    assert_int_equal(q->cseq, 42);
    assert_int_equal(q->transport, LOCATION_TRANSPORT_TCP);
    assert_string_equal(q->remote, "[2001:db8::7]:5062");
    assert_int_equal(q->addr.sa.sa_family, AF_INET6);
    assert_int_equal(ntohs(q->addr.in6.sin6_port), 5062);
    assert_memory_equal(&q->addr.in6.sin6_addr, &sa6.sin6_addr, 16);
    assert_string_equal(q->path, "<sip:edge.example.com;lr>");
    assert_string_equal(q->user_agent, "baresip 3.0");
    assert_string_equal(q->instance, "<urn:uuid:1>");
    assert_int_equal(q->reg_id, 1);
    assert_int_equal(q->conn_id, 0);                       /* the flow died with the process */
    assert_true(q->flags & LOCATION_FLAG_TRANSPORT_LOST);
    assert_int_equal(p->flags, 0);
    assert_string_equal(p->remote, "192.0.2.55:5060");
    assert_int_equal(p->addr.sa.sa_family, AF_INET);
    assert_int_equal(ntohs(p->addr.in.sin_port), 5060);
    /* remaining lifetime carried over to the new monotonic clock */
    assert_true(p->expires_wall_ms >= wall_before + 10000 && p->expires_wall_ms <= wall_before + 11000);
    assert_int_equal(p->expires_ms, 100000 + (uint64_t)(p->expires_wall_ms - wall));
    assert_int_equal(lookup(loc, "zed", b, 4), 0);
    /* it expires on the timer and the row goes away */
    assert_int_equal(timer_run(&f->ts, p->expires_ms), 1);
    expect_events(&f->ev, "removed pat@example.com sip:p@192.0.2.55 expired", NULL);
    store_flush_sync(st);
    location_free(loc);
    loc = new_loc(f, st);
    assert_int_equal(location_load(loc, st, 0, wall), 1);
    location_free(loc);

    /* a row that expired while the daemon was down is dropped and deleted */
    loc = new_loc(f, st);
    assert_int_equal(location_load(loc, st, 0, wall_before + 4000 * 1000), 0);
    store_flush_sync(st);
    location_free(loc);
    loc = new_loc(f, st);
    assert_int_equal(location_load(loc, st, 0, wall), 0);
    location_free(loc);
    store_close(st);
    store_env_close(&e);
}

/* The stored expiry of aor -> contact (0 when there is no row). */
struct row_probe {
    const char *contact;
    int64_t expires_at;
    uint32_t cseq;
    int rows;
};

static int probe_row(void *arg, const struct store_binding *row)
{
    struct row_probe *p = arg;
    p->rows++;
    if (strcmp(row->contact, p->contact) == 0) {
        p->expires_at = row->expires_at;
        p->cseq = row->cseq;
    }
    return 0;
}

static struct row_probe stored(struct store *st, const char *contact)
{
    store_flush_sync(st);
    struct row_probe p = {.contact = contact};
    assert_int_equal(store_load_bindings(st, probe_row, &p), 0);
    return p;
}

/* [registrar] write_behind_ms: a pure refresh is answered at once and
 * written by the flush timer, whatever else the store is writing; anything
 * that changes the route, a removal, or a refresh of a binding whose row is
 * still being written waits for a commit. */
static void test_write_behind_refresh(void **state)
{
    struct fixture *f = *state;
    struct store_env e;
    struct store *st = store_env_start(&e);
    struct location *loc = new_loc(f, st);
    location_set_write_behind(loc, 1000);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(5060)};
    inet_pton(AF_INET, "192.0.2.8", &sa.sin_addr);
    struct location_binding_in in = contact("sip:w@192.0.2.8", 60, "call-w", 1);
    in.remote_addr = (const struct sockaddr *)&sa;
    struct done d = {0};
    uint64_t now = 10000;

    /* a new binding waits for its commit */
    assert_int_equal(location_update(loc, str_from_cstr("wes"), &in, 1, now, done_cb, &d), 0);
    assert_int_equal(d.calls, 0);
    while (d.calls == 0) uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(d.status, 0);
    int64_t first = stored(st, "sip:w@192.0.2.8").expires_at;
    assert_true(first > 0);

    /* a refresh with a longer expiry: answered inside the call, not written */
    in.cseq = 2;
    in.expires_s = 3600;
    assert_int_equal(location_update(loc, str_from_cstr("wes"), &in, 1, now + 100, done_cb, &d), 0);
    assert_int_equal(d.calls, 2);
    assert_int_equal(location_dirty_count(loc), 1);
    struct row_probe r = stored(st, "sip:w@192.0.2.8");
    assert_int_equal(r.expires_at, first);
    assert_int_equal(r.cseq, 1);
    /* the flush timer writes it */
    assert_int_equal(timer_run(&f->ts, now + 100 + 999), 0);
    assert_int_equal(location_dirty_count(loc), 1);
    assert_int_equal(timer_run(&f->ts, now + 100 + 1000), 1);
    assert_int_equal(location_dirty_count(loc), 0);
    r = stored(st, "sip:w@192.0.2.8");
    assert_true(r.expires_at >= first + 3500 * 1000);
    assert_int_equal(r.cseq, 2);

    /* from another source port (a NAT rebinding): written before the answer */
    struct sockaddr_in moved = sa;
    moved.sin_port = htons(5070);
    in.remote_addr = (const struct sockaddr *)&moved;
    in.cseq = 3;
    d.calls = 0;
    assert_int_equal(location_update(loc, str_from_cstr("wes"), &in, 1, now + 2000, done_cb, &d), 0);
    assert_int_equal(d.calls, 0);
    assert_int_equal(location_dirty_count(loc), 0);
    while (d.calls == 0) uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(stored(st, "sip:w@192.0.2.8").cseq, 3);

    /* a deferred refresh, then an unregister before the flush: the row is
     * deleted and the flush does not bring it back */
    in.cseq = 4;
    assert_int_equal(location_update(loc, str_from_cstr("wes"), &in, 1, now + 3000, done_cb, &d), 0);
    assert_int_equal(location_dirty_count(loc), 1);
    in.cseq = 5;
    in.expires_s = 0;
    assert_int_equal(location_update(loc, str_from_cstr("wes"), &in, 1, now + 3100, done_cb, &d), 0);
    assert_int_equal(location_dirty_count(loc), 0);
    timer_run(&f->ts, now + 5000);
    assert_int_equal(stored(st, "sip:w@192.0.2.8").rows, 0);

    /* other work in flight (another AoR's new binding, written without a
     * waiter) does not hold up a pure refresh whose row is committed */
    in = contact("sip:x@192.0.2.9", 60, "call-x", 1);
    assert_int_equal(location_update(loc, str_from_cstr("xan"), &in, 1, now + 6000, done_cb, &d), 0);
    store_flush_sync(st);
    in.cseq = 2;
    struct location_binding_in other = contact("sip:y@192.0.2.10", 60, "call-y", 1);
    d.calls = 0;
    assert_int_equal(location_update(loc, str_from_cstr("yve"), &other, 1, now + 6100, NULL, NULL), 0);
    assert_true(store_in_flight(st) > 0);
    assert_int_equal(location_update(loc, str_from_cstr("xan"), &in, 1, now + 6100, done_cb, &d), 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    assert_int_equal(location_dirty_count(loc), 1);
    /* ... nor does the flush's own batch of refreshes while it commits */
    assert_int_equal(timer_run(&f->ts, now + 6100 + 1000), 1);
    assert_int_equal(location_dirty_count(loc), 0);
    assert_true(store_in_flight(st) > 0);
    in.cseq = 3;
    assert_int_equal(location_update(loc, str_from_cstr("xan"), &in, 1, now + 7200, done_cb, &d), 0);
    assert_int_equal(d.calls, 2);
    assert_int_equal(location_dirty_count(loc), 1);
    store_flush_sync(st);

    /* a refresh of a binding whose own row is still being written (added
     * just before) waits for that commit: its 200 promises the binding */
    struct location_binding_in zin = contact("sip:z@192.0.2.11", 60, "call-z", 1);
    assert_int_equal(location_update(loc, str_from_cstr("zed"), &zin, 1, now + 7300, NULL, NULL), 0);
    assert_true(store_in_flight(st) > 0);
    zin.cseq = 2;
    d.calls = 0;
    assert_int_equal(location_update(loc, str_from_cstr("zed"), &zin, 1, now + 7300, done_cb, &d), 0);
    assert_int_equal(d.calls, 0);
    assert_int_equal(location_dirty_count(loc), 2);
    while (d.calls == 0) uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(d.status, 0);
    assert_int_equal(stored(st, "sip:z@192.0.2.11").rows, 3);
    /* once committed, its next refresh is answered at once */
    zin.cseq = 3;
    assert_int_equal(location_update(loc, str_from_cstr("zed"), &zin, 1, now + 7400, done_cb, &d), 0);
    assert_int_equal(d.calls, 2);
    /* location_flush (shutdown) writes what is dirty at once */
    location_flush(loc);
    assert_int_equal(location_dirty_count(loc), 0);
    assert_int_equal(stored(st, "sip:x@192.0.2.9").cseq, 3);
    assert_int_equal(stored(st, "sip:z@192.0.2.11").cseq, 3);
    f->ev.n = 0;
    location_free(loc);
    store_close(st);
    store_env_close(&e);
}

/* natping_request_natted on a top Via value and a Contact URI as text. */
static bool natted(const char *via, const char *contact, const struct sockaddr_storage *src)
{
    struct sip_via v;
    struct sip_uri u;
    assert_int_equal(sip_via_parse(str_from_cstr(via), &v), 0);
    assert_int_equal(sip_uri_parse(str_from_cstr(contact), &u), 0);
    return natping_request_natted(&v, &u, src);
}

/* natping.h: which UDP REGISTERs came through a NAT (Kamailio's
 * nat_uac_test 1|2|16|32), and which only name another contact. */
static void test_nat_detection(void **state)
{
    (void)state;
    struct sockaddr_storage src, lan, src6;
    assert_int_equal(transport_addr_parse("198.51.100.7", 12, 40123, &src), 0);
    assert_int_equal(transport_addr_parse("192.168.1.2", 11, 5060, &lan), 0);
    assert_int_equal(transport_addr_parse("2001:db8::5", 11, 5060, &src6), 0);
    const char *v = "SIP/2.0/UDP 198.51.100.7:40123;branch=z9hG4bK1;rport";
    /* Sent from its own address: not behind NAT, whatever Contact it names. */
    assert_false(natted(v, "sip:alice@198.51.100.7:40123", &src));
    assert_false(natted(v, "sip:alice@198.51.100.7:5070", &src));      /* listens on another socket */
    assert_false(natted(v, "sip:alice@203.0.113.9:5060", &src));       /* third-party registration */
    assert_false(natted(v, "sip:alice@phone.example.com", &src));      /* a name: can't tell, trust it */
    assert_false(natted(v, "sip:alice@172.32.0.1:5060", &src));        /* just outside 172.16/12 */
    /* The received test (2): sent-by host is not the source IP, or a name. */
    assert_true(natted("SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK1", "sip:alice@192.168.1.20:5060", &src));
    assert_true(natted("SIP/2.0/UDP 203.0.113.9:40123;branch=z9hG4bK1", "sip:alice@203.0.113.9:40123", &src));
    assert_true(natted("SIP/2.0/UDP phone.example.com:40123;branch=z9hG4bK1", "sip:a@198.51.100.7:40123", &src));
    /* The rport test (16): same IP, another port (5060 when absent). */
    assert_true(natted("SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK1;rport", "sip:a@198.51.100.7:5060", &src));
    assert_true(natted("SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK1", "sip:alice@198.51.100.7", &src));
    /* The Contact test (1/32): a private or shared Contact from a public source. */
    assert_true(natted(v, "sip:alice@10.0.0.5:5060", &src));
    assert_true(natted(v, "sip:alice@172.16.4.1:5060", &src));
    assert_true(natted(v, "sip:alice@192.168.1.20:5060", &src));
    assert_true(natted(v, "sip:alice@100.64.1.1:5060", &src));        /* RFC 6598 CGN */
    assert_true(natted(v, "sip:alice@169.254.3.3:5060", &src));
    /* ... but not on a LAN where the source is private too. */
    const char *lv = "SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bK1";
    assert_false(natted(lv, "sip:alice@192.168.1.3:5062", &lan));
    /* IPv6. */
    assert_false(natted("SIP/2.0/UDP [2001:db8::5];branch=z9hG4bK1", "sip:bob@[2001:db8::5]:5070", &src6));
    assert_true(natted("SIP/2.0/UDP [2001:db8::5]:5062;branch=z9hG4bK1", "sip:bob@[2001:db8::5]:5062", &src6));
    assert_true(natted("SIP/2.0/UDP [2001:db8::5];branch=z9hG4bK1", "sip:bob@[fd00::1]", &src6));
    assert_true(natted("SIP/2.0/UDP [2001:db8::5];branch=z9hG4bK1", "sip:bob@[fe80::1]", &src6));
    /* No source: nothing to say. */
    assert_false(natted(v, "sip:alice@192.168.1.20", NULL));
}

/* LOCATION_FLAG_NAT is kept per binding and counted through refresh,
 * change and removal (the NAT pinger skips its walk at 0). */
static void test_nat_flag_count(void **state)
{
    struct fixture *f = *state;
    struct location_binding_in in = contact("sip:a@192.168.1.2:5060", 300, "c1", 1);
    in.flags = LOCATION_FLAG_NAT | LOCATION_FLAG_TRANSPORT_LOST; /* only NAT is taken from the input */
    assert_int_equal(update1(f->loc, "alice", in, 0), 0);
    const struct location_binding *b[4];
    assert_int_equal(lookup(f->loc, "alice", b, 4), 1);
    assert_int_equal(b[0]->flags, LOCATION_FLAG_NAT);
    assert_int_equal(location_nat_count(f->loc), 1);
    in.cseq = 2; /* refresh, still behind NAT */
    assert_int_equal(update1(f->loc, "alice", in, 1000), 0);
    assert_int_equal(location_nat_count(f->loc), 1);
    in.cseq = 3; /* refreshed from its own address now */
    in.flags = 0;
    assert_int_equal(update1(f->loc, "alice", in, 2000), 0);
    assert_int_equal(location_nat_count(f->loc), 0);
    in.cseq = 4;
    in.flags = LOCATION_FLAG_NAT;
    assert_int_equal(update1(f->loc, "alice", in, 3000), 0);
    struct location_binding_in other = contact("sip:b@10.0.0.9:5062", 300, "c2", 1);
    other.flags = LOCATION_FLAG_NAT;
    assert_int_equal(update1(f->loc, "bob", other, 3000), 0);
    assert_int_equal(location_nat_count(f->loc), 2);
    in.cseq = 5;
    in.expires_s = 0; /* unregister */
    assert_int_equal(update1(f->loc, "alice", in, 4000), 0);
    assert_int_equal(location_nat_count(f->loc), 1);
    timer_run(&f->ts, 400 * 1000); /* bob expires */
    assert_int_equal(location_nat_count(f->loc), 0);
    assert_int_equal(location_count(f->loc), 0);
    f->ev.n = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nat_detection),
        cmocka_unit_test_setup_teardown(test_nat_flag_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_refresh_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_order_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callid_cseq_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unregister_and_mixed_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_online_offline_multiple, setup, teardown),
        cmocka_unit_test_setup_teardown(test_q_ordering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_by_conn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aor_table_growth_keeps_every_aor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_and_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_store_done_is_synchronous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_behind_refresh, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
