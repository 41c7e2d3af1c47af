/* test_subs_takeover.c — a dead node's subscriptions continued by a survivor
 * (src/subs/subs_takeover.c, subs_adopt in subs.c): the record's version 2
 * encoding and its defensive reading (what a node takes from Redis), the
 * version 1 record still read (and not adoptable), the refusals, the
 * adoption decision and the row made of a record, the adoption script's
 * answer; and, on the in-process stack (harness.h) with the real registrar,
 * a subscription made on one notifier, its record taken as another node
 * writes it, and adopted by a second notifier: a NOTIFY in the same dialog
 * (Call-ID, tags, CSeq moved on) with the adopter's Contact, to the address
 * the SUBSCRIBE came from; the subscriber's refresh answered 200 there; a
 * 481 ends it. The peer test against a real cluster is
 * tests/peers/test_presence_nodes.sh (7b). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/clock.h"
#include "registrar/digest_check.h"
#include "store/store.h"
#include "subs/presence_mirror.h"
#include "subs/subs.h"
#include "subs/subs_takeover.h"
#include "fake_redis.h"
#include "store_env.h"
#include "subs_fixture.h"

#define NOW 1700000000000LL

static struct subs_record sample(void)
{
    return (struct subs_record){.aor = "alice", .id = "t0a1", .watcher = "sip:bob@example.com", .event = "presence",
                                .expires_wall_ms = NOW + 60000, .call_id = "cid-1@h", .remote_tag = "ftag-1",
                                .target = "sip:bob@192.0.2.9:5080", .routes = "<sip:p1;lr>,\"P 2\" <sip:p2;lr>",
                                .transport = "udp", .remote = "192.0.2.9:5080", .accept = "application/pidf+xml",
                                .local_cseq = 7, .remote_cseq = 3, .version = 5};
}

static void test_record_v2_roundtrip(void **state)
{
    (void)state;
    struct subs_record r = sample();
    char field[300], *rec = NULL;
    int n = subs_takeover_record_encode("node-a", "inc-1", &r, field, sizeof(field), &rec);
    assert_true(n > 0);
    assert_string_equal(field, "node-a/t0a1");
    struct subs_takeover_record d;
    assert_int_equal(subs_takeover_record_decode(field, strlen(field), rec, (size_t)n, &d), 0);
    assert_int_equal(d.version, 2);
    assert_string_equal(d.node, "node-a");
    assert_string_equal(d.tag, "t0a1");
    assert_string_equal(d.inc, "inc-1");
    assert_string_equal(d.watcher, r.watcher);
    assert_string_equal(d.event, "presence");
    assert_true(d.expires_wall_ms == NOW + 60000);
    assert_string_equal(d.call_id, r.call_id);
    assert_string_equal(d.remote_tag, r.remote_tag);
    assert_string_equal(d.target, r.target);
    assert_string_equal(d.routes, r.routes);
    assert_string_equal(d.accept, r.accept);
    assert_string_equal(d.transport, "udp");
    assert_string_equal(d.remote, r.remote);
    assert_int_equal(d.local_cseq, 7);
    assert_int_equal(d.remote_cseq, 3);
    assert_int_equal(d.version_doc, 5);
    /* the listing's reader (version 1) reads it too */
    struct presence_sub_record l;
    assert_int_equal(presence_sub_record_decode(field, strlen(field), rec, (size_t)n, &l), 0);
    assert_string_equal(l.node, "node-a");
    assert_string_equal(l.event, "presence");
    free(rec);
    /* no incarnation: no "inc" */
    n = subs_takeover_record_encode("node-a", NULL, &r, field, sizeof(field), &rec);
    assert_true(n > 0);
    assert_null(strstr(rec, "\"inc\""));
    assert_int_equal(subs_takeover_record_decode(field, strlen(field), rec, (size_t)n, &d), 0);
    assert_string_equal(d.inc, "");
    free(rec);
}

static void test_record_v1_read(void **state)
{
    (void)state;
    struct subs_record r = sample();
    char field[300], *rec = NULL;
    int n = presence_sub_record_encode("node-a", &r, field, sizeof(field), &rec); /* what older nodes write */
    assert_true(n > 0);
    struct subs_takeover_record d;
    assert_int_equal(subs_takeover_record_decode(field, strlen(field), rec, (size_t)n, &d), 0);
    assert_int_equal(d.version, 1);
    assert_string_equal(d.tag, "t0a1");
    assert_string_equal(d.call_id, "");
    assert_int_equal(subs_takeover_decide(&d, NOW), SUBS_TAKEOVER_OLD);
    free(rec);
}

static void test_record_refusals(void **state)
{
    (void)state;
    struct subs_record r = sample();
    char field[300], *rec = NULL;
    struct subs_record b = r;
    b.call_id = NULL; /* no dialog state */
    assert_int_equal(subs_takeover_record_encode("node-a", "i", &b, field, sizeof(field), &rec), -EINVAL);
    b = r;
    b.transport = "carrier-pigeon";
    assert_int_equal(subs_takeover_record_encode("node-a", "i", &b, field, sizeof(field), &rec), -EINVAL);
    b = r;
    b.target = "sip:a b";
    assert_int_equal(subs_takeover_record_encode("node-a", "i", &b, field, sizeof(field), &rec), -EINVAL);
    b = r;
    b.routes = "<sip:p1;lr>\r\nX: y";
    assert_int_equal(subs_takeover_record_encode("node-a", "i", &b, field, sizeof(field), &rec), -EINVAL);
    b = r;
    b.local_cseq = 0x80000000u;
    assert_int_equal(subs_takeover_record_encode("node-a", "i", &b, field, sizeof(field), &rec), -EINVAL);
    assert_int_equal(subs_takeover_record_encode("node/a", "i", &r, field, sizeof(field), &rec), -EINVAL);
    assert_int_equal(subs_takeover_record_encode("node-a", "i{", &r, field, sizeof(field), &rec), -EINVAL);
    assert_int_equal(subs_takeover_record_encode("node-a", "i", &r, field, 5, &rec), -ENOSPC);
    assert_null(rec);

    const char *ok_tail = ",\"cid\":\"c\",\"ftag\":\"f\",\"target\":\"sip:b@h\",\"routes\":\"\",\"accept\":\"\","
                          "\"tp\":\"udp\",\"remote\":\"1.2.3.4:5\",\"cseq\":1,\"rcseq\":1,\"ver\":0}";
    char good[512];
    snprintf(good, sizeof(good), "{\"v\":2,\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9%s",
             ok_tail);
    struct subs_takeover_record d;
    assert_int_equal(subs_takeover_record_decode("n1/t", 4, good, strlen(good), &d), 0);
    const char *bad[] = {
        "not json",
        "[]",
        "{\"v\":3,\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9}",
        "{\"v\":\"2\",\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9}",
        /* version 2 without its dialog */
        "{\"v\":2,\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9}",
        "{\"v\":2,\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9,\"cid\":\"c\",\"ftag\":\"f\","
        "\"target\":\"sip:b@h\",\"routes\":\"\",\"accept\":\"\",\"tp\":\"smtp\",\"remote\":\"1.2.3.4:5\",\"cseq\":1,"
        "\"rcseq\":1,\"ver\":0}",
        "{\"v\":2,\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9,\"cid\":\"c\",\"ftag\":\"f\","
        "\"target\":\"sip:b@h\",\"routes\":\"\",\"accept\":\"\",\"tp\":\"udp\",\"remote\":\"1.2.3.4:5\",\"cseq\":-1,"
        "\"rcseq\":1,\"ver\":0}",
        "{\"v\":2,\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9,\"cid\":\"c\",\"ftag\":\"f\","
        "\"target\":\"sip:b@h\",\"routes\":\"\",\"accept\":\"\",\"tp\":\"udp\",\"remote\":\"1.2.3.4:5\","
        "\"cseq\":2147483648,\"rcseq\":1,\"ver\":0}",
        "{\"v\":2,\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9,\"cid\":\"c d\",\"ftag\":\"f\","
        "\"target\":\"sip:b@h\",\"routes\":\"\",\"accept\":\"\",\"tp\":\"udp\",\"remote\":\"1.2.3.4:5\",\"cseq\":1,"
        "\"rcseq\":1,\"ver\":0}",
        "{\"v\":2,\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9,\"cid\":\"c\",\"ftag\":\"f\","
        "\"target\":\"sip:b@h\",\"routes\":\"a\\u0000b\",\"accept\":\"\",\"tp\":\"udp\",\"remote\":\"1.2.3.4:5\","
        "\"cseq\":1,\"rcseq\":1,\"ver\":0}",
        "{\"node\":\"n1\",\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9}",
        "{\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"REG\",\"exp\":9}",
        "{\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":0}",
        "{\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9,\"inc\":\"a b\"}",
        "{\"node\":\"n1\",\"watcher\":\"sip:w@h\",\"event\":\"reg\",\"exp\":9,\"inc\":\"a{b\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (subs_takeover_record_decode("n1/t", 4, bad[i], strlen(bad[i]), &d) == 0) fail_msg("took %s", bad[i]);
    /* the field must be the record's node and a tag */
    const char *fields[] = {"n2/t", "n1/", "n1", "n1/a b", "/t"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (subs_takeover_record_decode(fields[i], strlen(fields[i]), good, strlen(good), &d) == 0)
            fail_msg("took field %s", fields[i]);
    /* over the size cap */
    char *big = malloc(SUBS_TAKEOVER_RECORD_MAX + 64);
    memset(big, ' ', SUBS_TAKEOVER_RECORD_MAX + 10);
    memcpy(big + SUBS_TAKEOVER_RECORD_MAX + 10 - strlen(good), good, strlen(good));
    assert_int_equal(subs_takeover_record_decode("n1/t", 4, big, SUBS_TAKEOVER_RECORD_MAX + 10, &d), -EINVAL);
    free(big);
}

static void test_decide_and_row(void **state)
{
    (void)state;
    struct subs_record r = sample();
    char field[300], *rec = NULL;
    int n = subs_takeover_record_encode("node-a", "inc-1", &r, field, sizeof(field), &rec);
    struct subs_takeover_record d;
    assert_int_equal(subs_takeover_record_decode(field, strlen(field), rec, (size_t)n, &d), 0);
    free(rec);
    assert_int_equal(subs_takeover_decide(&d, NOW), SUBS_TAKEOVER_ADOPT);
    assert_int_equal(subs_takeover_decide(&d, NOW + 60000), SUBS_TAKEOVER_EXPIRED);
    const char *tps[] = {"tcp", "tls", "ws", "wss", "sctp"};
    for (size_t i = 0; i < 5; i++) {
        struct subs_takeover_record x = d;
        snprintf(x.transport, sizeof(x.transport), "%s", tps[i]);
        assert_int_equal(subs_takeover_decide(&x, NOW), SUBS_TAKEOVER_FLOW);
    }
    struct store_subscription row;
    subs_takeover_row(&d, "alice", &row);
    assert_string_equal(row.call_id, "cid-1@h");
    assert_string_equal(row.local_tag, "t0a1");
    assert_string_equal(row.remote_tag, "ftag-1");
    assert_string_equal(row.aor, "alice");
    assert_string_equal(row.subscriber, "sip:bob@example.com");
    assert_string_equal(row.transport, "udp");
    assert_int_equal(row.local_cseq, 7 + SUBS_TAKEOVER_JUMP);
    assert_int_equal(row.version, 5 + SUBS_TAKEOVER_JUMP);
    assert_int_equal(row.remote_cseq, 3);
    d.local_cseq = INT32_MAX - 1; /* never beyond 2^31 - 1 */
    subs_takeover_row(&d, "alice", &row);
    assert_int_equal(row.local_cseq, INT32_MAX);
    char key[64];
    assert_int_equal(subs_takeover_index_key("p:", "node-a", "i1", key, sizeof(key)), 0);
    assert_string_equal(key, "p:node-subs:{node-a}:i1");
    assert_int_equal(subs_takeover_index_key("p:", "node-a", "i1", key, 10), -ENOSPC);
}

/* ---- the adoption script's answer ---- */

static redisReply s_rep(const char *s)
{
    return (redisReply){.type = REDIS_REPLY_STRING, .str = (char *)s, .len = strlen(s)};
}

struct pairs {
    int n, bad;
};

static void count_pair(void *arg, const char *f, size_t fl, const char *v, size_t vl)
{
    (void)fl, (void)vl;
    struct pairs *p = arg;
    if (!f || !v) p->bad++;
    else p->n++;
}

static void test_reply_each(void **state)
{
    (void)state;
    redisReply e[4] = {s_rep("n/t"), s_rep("{}"), s_rep("n/u"), {.type = REDIS_REPLY_INTEGER, .integer = 1}};
    redisReply *ep[4] = {&e[0], &e[1], &e[2], &e[3]};
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 4, .element = ep};
    struct pairs p = {0};
    assert_int_equal(subs_takeover_reply_each(&arr, count_pair, &p), 2);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.bad, 1);
    arr.elements = 3;
    assert_int_equal(subs_takeover_reply_each(&arr, count_pair, &p), -EINVAL);
    redisReply empty = {.type = REDIS_REPLY_ARRAY};
    assert_int_equal(subs_takeover_reply_each(&empty, count_pair, &p), 0);
    assert_int_equal(subs_takeover_reply_each(&e[0], count_pair, &p), -EINVAL);
    assert_int_equal(subs_takeover_reply_each(NULL, count_pair, &p), -EINVAL);
}

/* ---- adoption on the stack ---- */

struct fx {
    struct harness *h;
    struct config cfg;
    struct users *users;
    struct auth_server *auth;
    struct digest_checker digest;
    struct location *loc;
    struct registrar *r;
    struct subs *s;
    uint32_t branch;
    /* the last record told */
    int changed, gone;
    char field[300], *rec;
    int rec_len;
};

static void on_request(void *arg, struct txn *st, const struct transport_rx *rx)
{
    struct fx *f = arg;
    if (subs_on_request(f->s, st, rx)) return;
    if (registrar_on_request(f->r, st, rx)) return;
    txn_respond(st, 604, "Not Taken", STR_NULL, NULL, 0, STR_NULL, STR_NULL);
}

static struct subs *new_notifier(struct fx *f)
{
    struct subs_deps sd = {.cfg = &f->cfg.subs, .local = &f->h->local, .require_auth = false, .digest = &f->digest,
                           .registrar = f->r, .ua = f->h->ua, .timers = f->h->timers};
    struct subs *s = subs_new(&sd);
    assert_non_null(s);
    return s;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->h = subs_fx_harness(&f->cfg);
    f->users = users_new(NULL);
    harness_add_user(f->h, f->users, "alice", "secret-a");
    struct auth_server_config ac;
    auth_server_config_from(&ac, &f->cfg.auth, AUTH_OFFER(AUTH_ALG_MD5));
    f->auth = auth_server_new(&ac);
    digest_checker_init(&f->digest, &f->cfg.auth, &f->h->local, f->users, f->auth, NULL);
    f->r = subs_fx_registrar(f->h, &f->cfg, &f->cfg.auth, f->users, f->auth, &f->loc);
    f->s = new_notifier(f);
    f->h->on_request = on_request;
    f->h->arg = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    subs_free(f->s);
    subs_fx_free(f->h, f->r, f->loc, f->auth, f->users);
    free(f->rec);
    free(f);
    return 0;
}

static void rec_changed(void *arg, const struct subs_record *r)
{
    struct fx *f = arg;
    f->changed++;
    free(f->rec);
    f->rec = NULL;
    f->rec_len = subs_takeover_record_encode("node-x", "inc-x", r, f->field, sizeof(f->field), &f->rec);
    assert_true(f->rec_len > 0);
}

static void rec_gone(void *arg, const char *aor, const char *id)
{
    (void)aor, (void)id;
    ((struct fx *)arg)->gone++;
}

/* A SUBSCRIBE from the watcher over proto: the answer's status. */
static int subscribe_over(struct fx *f, enum sip_transport proto, const char *call_id, int cseq, const char *to_tag,
                          const char *ruri, const char *extra)
{
    char text[4096], to[128] = "";
    if (to_tag && *to_tag) snprintf(to, sizeof(to), ";tag=%s", to_tag);
    snprintf(text, sizeof(text),
             "SUBSCRIBE %s SIP/2.0\n"
             "Via: SIP/2.0/%s 192.0.2.9:5080;branch=z9hG4bK-t%u\n"
             "Max-Forwards: 70\n"
             "From: <sip:watcher@example.com>;tag=f1\n"
             "To: <sip:alice@example.com>%s\n"
             "Call-ID: %s\n"
             "CSeq: %d SUBSCRIBE\n"
             "Contact: <sip:watcher@192.0.2.9:5080>\n"
             "Event: presence\n"
             "%s"
             "Content-Length: 0\n\n",
             ruri, proto == SIP_TRANSPORT_UDP ? "UDP" : "TCP", ++f->branch, to, call_id, cseq, extra ? extra : "");
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, "192.0.2.9", 5080, proto, text), 0);
    int i = harness_find_sent(f->h, before, "SIP/2.0 ");
    assert_true(i >= 0);
    return harness_sent_status(f->h, (size_t)i);
}

static int subscribe(struct fx *f, const char *call_id, int cseq, const char *to_tag, const char *ruri,
                     const char *extra)
{
    return subscribe_over(f, SIP_TRANSPORT_UDP, call_id, cseq, to_tag, ruri, extra);
}

static int last_notify(struct fx *f) { return harness_find_last_sent(f->h, "NOTIFY "); }

/* Answers the NOTIFY sent at index i with status. */
static void answer_notify(struct fx *f, int i, int status) { harness_answer_sent(f->h, (size_t)i, status, "192.0.2.9", 5080); }

static uint32_t active(struct subs *s)
{
    struct subs_stats st;
    subs_get_stats(s, &st);
    return st.active;
}

static void test_adopt(void **state)
{
    struct fx *f = *state;
    struct subs_record_hooks hk = {.arg = f, .changed = rec_changed, .gone = rec_gone};
    subs_set_record_hooks(f->s, &hk);
    /* the "dead" node's subscription, two NOTIFYs sent */
    assert_int_equal(subscribe(f, "adopt-1", 1, "", "sip:alice@example.com", "Expires: 600\n"), 200);
    answer_notify(f, last_notify(f), 200);
    assert_int_equal(f->changed, 1);
    const struct sip_msg *n1 = harness_sent_msg(f->h, (size_t)last_notify(f));
    uint32_t cseq1 = n1->cseq.number;
    char tag[64];
    snprintf(tag, sizeof(tag), "%.*s", STR_FMT(n1->from.tag));
    struct subs_takeover_record d;
    assert_int_equal(subs_takeover_record_decode(f->field, strlen(f->field), f->rec, (size_t)f->rec_len, &d), 0);
    assert_string_equal(d.tag, tag);
    assert_string_equal(d.call_id, "adopt-1");
    assert_string_equal(d.remote_tag, "f1");
    assert_string_equal(d.target, "sip:watcher@192.0.2.9:5080");
    assert_string_equal(d.transport, "udp");
    assert_string_equal(d.remote, "192.0.2.9:5080");
    assert_string_equal(d.accept, "application/pidf+xml");
    assert_int_equal(d.remote_cseq, 1);
    assert_int_equal(d.local_cseq, 0); /* written when made, before its first NOTIFY */
    /* that node dies (no NOTIFY: its state just goes), another notifier adopts */
    subs_free(f->s);
    f->s = new_notifier(f);
    subs_set_record_hooks(f->s, &hk);
    int64_t now = d.expires_wall_ms - 500000;
    assert_int_equal(subs_takeover_decide(&d, now), SUBS_TAKEOVER_ADOPT);
    struct store_subscription row;
    subs_takeover_row(&d, "alice", &row);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(subs_adopt(f->s, &row, now), 0);
    assert_int_equal(active(f->s), 1);
    assert_int_equal(f->changed, 2); /* its record written under this node */
    int i = harness_find_sent(f->h, before, "NOTIFY ");
    assert_true(i >= 0);
    const struct sip_msg *n2 = harness_sent_msg(f->h, (size_t)i);
    assert_true(str_eq_cstr(n2->call_id, "adopt-1"));
    assert_true(str_eq_cstr(n2->from.tag, tag));
    assert_true(str_eq_cstr(n2->to.tag, "f1"));
    assert_true(n2->cseq.number > cseq1 && n2->cseq.number == SUBS_TAKEOVER_JUMP + 1);
    assert_true(harness_sent_to(f->h, (size_t)i, "192.0.2.9", 5080));
    str_t contact = harness_header(n2, SIP_HDR_CONTACT);
    char want[128];
    snprintf(want, sizeof(want), "sip:alice@%s:%u", f->h->local.host, f->h->local.port[SIP_TRANSPORT_UDP]);
    assert_non_null(memmem(contact.s, contact.len, want, strlen(want)));
    assert_true(harness_header_has(n2, SIP_HDR_SUBSCRIPTION_STATE, "active"));
    answer_notify(f, i, 200);
    /* again: held here already */
    assert_int_equal(subs_adopt(f->s, &row, now), -EEXIST);
    /* the subscriber's refresh, sent to the new Contact: 200, a NOTIFY */
    char ruri[160];
    snprintf(ruri, sizeof(ruri), "%s", want);
    assert_int_equal(subscribe(f, "adopt-1", 2, tag, ruri, "Expires: 600\n"), 200);
    i = last_notify(f);
    assert_true(harness_sent_msg(f->h, (size_t)i)->cseq.number == SUBS_TAKEOVER_JUMP + 2);
    /* a 481 to a NOTIFY ends it as for one made here */
    answer_notify(f, i, 481);
    assert_int_equal(active(f->s), 0);
    assert_int_equal(f->gone, 1);
    subs_set_record_hooks(f->s, NULL);
}

static void test_adopt_refusals(void **state)
{
    struct fx *f = *state;
    struct store_subscription row = {.call_id = "r-1", .local_tag = "abc", .remote_tag = "f1", .event = "presence",
                                     .aor = "alice", .subscriber = "sip:w@example.com", .target = "sip:w@192.0.2.9",
                                     .routes = "", .remote = "192.0.2.9:5080", .transport = "tcp",
                                     .expires_at = NOW + 1000};
    size_t before = harness_sent_count(f->h);
    assert_int_equal(subs_adopt(f->s, &row, NOW), -EHOSTUNREACH); /* its flow died with its node */
    row.transport = "udp";
    assert_int_equal(subs_adopt(f->s, &row, NOW + 1000), -ETIME);
    row.event = "no-such-package";
    assert_int_equal(subs_adopt(f->s, &row, NOW), -ENOTSUP);
    row.event = "presence";
    char long_tag[200];
    memset(long_tag, 'a', sizeof(long_tag) - 1);
    long_tag[sizeof(long_tag) - 1] = '\0';
    row.local_tag = long_tag;
    assert_int_equal(subs_adopt(f->s, &row, NOW), -EINVAL);
    assert_int_equal(active(f->s), 0);
    assert_int_equal(harness_find_sent(f->h, before, "NOTIFY "), -1);
}

/* ---- a fake Redis io: commands kept, answered by the test ---- */

#define FIO_MAX 128

struct fcmd {
    int key_index, argc;
    char *argv[12];
    subs_takeover_cb cb;
    void *cb_arg;
    bool done;
};

struct fio {
    struct fcmd c[FIO_MAX];
    size_t n;
};

static int fio_command(void *arg, int key_index, int argc, const char **argv, const size_t *lens, subs_takeover_cb cb,
                       void *cb_arg)
{
    struct fio *io = arg;
    assert_true(io->n < FIO_MAX && argc <= 12);
    struct fcmd *c = &io->c[io->n++];
    *c = (struct fcmd){.key_index = key_index, .argc = argc, .cb = cb, .cb_arg = cb_arg};
    for (int i = 0; i < argc; i++) c->argv[i] = strndup(argv[i], lens[i]);
    return 0;
}

/* The first unanswered command whose key starts with key and whose
 * command (or script text, for EVAL) contains what; -1 when none. */
static int fio_find(struct fio *io, const char *key, const char *what)
{
    for (size_t i = 0; i < io->n; i++) {
        struct fcmd *c = &io->c[i];
        if (c->done || strncmp(c->argv[c->key_index], key, strlen(key)) != 0) continue;
        if (strstr(c->argv[0], what) || (!strcmp(c->argv[0], "EVAL") && strstr(c->argv[1], what))) return (int)i;
    }
    return -1;
}

static void fio_answer(struct fio *io, int i, const char *resp)
{
    assert_true(i >= 0 && (size_t)i < io->n && !io->c[i].done);
    io->c[i].done = true;
    redisReply *r = fake_resp(resp);
    io->c[i].cb(io->c[i].cb_arg, 0, r);
    freeReplyObject(r);
}

/* fio_find that must find it: the command's index. */
static int fio_expect(struct fio *io, const char *key, const char *what)
{
    int i = fio_find(io, key, what);
    assert_true(i >= 0);
    return i;
}

/* The command that must be there (fio_expect), answered with resp. */
static void fio_reply(struct fio *io, const char *key, const char *what, const char *resp)
{
    fio_answer(io, fio_expect(io, key, what), resp);
}

/* Every unanswered command cancelled (the io closing), then freed. */
static void fio_close(struct fio *io)
{
    for (size_t i = 0; i < io->n; i++) {
        if (!io->c[i].done) {
            io->c[i].done = true;
            io->c[i].cb(io->c[i].cb_arg, -ECANCELED, NULL);
        }
    }
    for (size_t i = 0; i < io->n; i++)
        for (int k = 0; k < io->c[i].argc; k++) free(io->c[i].argv[k]);
    io->n = 0;
}

static char *bulk(const char *s)
{
    char *out = malloc(strlen(s) + 32);
    sprintf(out, "$%zu\r\n%s\r\n", strlen(s), s);
    return out;
}

/* A dead node's walk resumed by a survivor that was not told of the reap
 * (its claimer died between the reap and the walk): the run is found by
 * the periodic check, not walked while another holds its claim, walked
 * once the claim is had, and its field removed at the end. */
static void test_walk_resumed(void **state)
{
    struct fx *f = *state;
    struct subs_record_hooks hk = {.arg = f, .changed = rec_changed, .gone = rec_gone};
    subs_set_record_hooks(f->s, &hk);
    assert_int_equal(subscribe(f, "resume-1", 1, "", "sip:alice@example.com", "Expires: 600\n"), 200);
    answer_notify(f, last_notify(f), 200);
    char field[300];
    snprintf(field, sizeof(field), "%s", f->field); /* node-x's record, run inc-x */
    char *rec = strdup(f->rec);
    subs_free(f->s); /* node-x dies */
    f->s = new_notifier(f);
    struct fio io = {0};
    struct subs_takeover_io tio = {.arg = &io, .command = fio_command};
    int err = 0;
    struct subs_takeover *t = subs_takeover_new_io(f->h->timers, f->s, "p:", "node-b", "inc-b", &tio, &err);
    assert_non_null(t);
    subs_takeover_start(t);
    assert_int_equal(io.n, 0); /* nothing loaded, nothing to claim */
    /* nobody calls subs_takeover_node_reaped: the check finds the run */
    for (int round = 0; round < 2; round++) {
        harness_advance(f->h, SUBS_TAKEOVER_CHECK_MS);
        int i = fio_expect(&io, "p:subs-runs:{node-b}", "HSETNX"); /* this run registers itself */
        assert_string_equal(io.c[i].argv[5], "inc-b");
        fio_answer(&io, i, ":1\r\n");
        i = fio_expect(&io, "p:subs-nodes", "SADD");
        assert_string_equal(io.c[i].argv[2], "node-b");
        fio_answer(&io, i, ":1\r\n");
        fio_reply(&io, "p:subs-nodes", "SMEMBERS", "*2\r\n$6\r\nnode-x\r\n$6\r\nnode-b\r\n");
        fio_reply(&io, "p:subs-runs:{node-b}", "return -1", "*0\r\n");
        i = fio_expect(&io, "p:subs-runs:{node-x}", "return -1");
        assert_string_equal(io.c[i].argv[4], "p:node-incs:{node-x}");
        fio_answer(&io, i, "*1\r\n$5\r\ninc-x\r\n");
        i = fio_expect(&io, "p:subs-runs:{node-x}", "PTTL"); /* the claim */
        assert_string_equal(io.c[i].argv[5], "inc-x");
        assert_string_equal(io.c[i].argv[6], "node-b/inc-b");
        assert_string_equal(io.c[i].argv[9], "0"); /* found, not told by a reap: not created */
        if (round == 0) { /* another survivor's claim has not lapsed yet */
            fio_answer(&io, i, ":0\r\n");
            assert_int_equal(fio_find(&io, "p:node-subs:", "SSCAN"), -1);
            continue;
        }
        fio_answer(&io, i, ":1\r\n");
    }
    fio_reply(&io, "p:node-subs:{node-x}:inc-x", "SSCAN", "*2\r\n$1\r\n0\r\n*1\r\n$5\r\nalice\r\n");
    int i = fio_expect(&io, "p:subs:{alice}", "HGETALL");
    assert_string_equal(io.c[i].argv[4], "node-x");
    assert_string_equal(io.c[i].argv[5], "inc-x");
    char *bf = bulk(field), *bv = bulk(rec), resp[4096];
    snprintf(resp, sizeof(resp), "*2\r\n%s%s", bf, bv);
    free(bf);
    free(bv);
    size_t before = harness_sent_count(f->h);
    fio_answer(&io, i, resp);
    int n = harness_find_sent(f->h, before, "NOTIFY ");
    assert_true(n >= 0);
    assert_true(str_eq_cstr(harness_sent_msg(f->h, (size_t)n)->call_id, "resume-1"));
    answer_notify(f, n, 200);
    assert_int_equal(active(f->s), 1);
    struct subs_takeover_stats st;
    subs_takeover_get_stats(t, &st);
    assert_int_equal(st.adopted, 1);
    assert_int_equal(st.nodes, 1);
    /* the walk done: its index and its run's field go (while the claim is ours) */
    assert_true(fio_find(&io, "p:node-subs:{node-x}:inc-x", "DEL") >= 0);
    i = fio_expect(&io, "p:subs-runs:{node-x}", "HDEL");
    assert_string_equal(io.c[i].argv[4], "inc-x");
    assert_string_equal(io.c[i].argv[5], "node-b/inc-b");
    /* told by a reap later (a second claimer finishing it): claimed, created if need be */
    subs_takeover_node_reaped(t, "node-y", "inc-y");
    i = fio_expect(&io, "p:subs-runs:{node-y}", "PTTL");
    assert_string_equal(io.c[i].argv[9], "1");
    fio_close(&io);
    subs_takeover_free(t);
    free(rec);
    subs_set_record_hooks(f->s, NULL);
}

/* A node restarted under the same id: what its store gives back is held
 * silent until claimed; the record still its old run's is claimed for the
 * new run (its index first), one taken by a survivor meanwhile is let go
 * (its row and timer gone, nothing sent). */
static void test_restart_reclaim(void **state)
{
    struct fx *f = *state;
    struct store_env env;
    store_env_open(&env, "takeover");
    struct store *st = store_env_store(&env);
    int64_t now = clock_wall_ms();
    const char *tags[] = {"kept1", "taken1"};
    for (int k = 0; k < 2; k++) {
        char cid[32];
        snprintf(cid, sizeof(cid), "rs-%d", k);
        struct store_subscription row = {.call_id = cid, .local_tag = tags[k], .remote_tag = "f1", .event = "presence",
                                         .aor = "alice", .subscriber = "sip:watcher@example.com",
                                         .target = "sip:watcher@192.0.2.9:5080", .routes = "",
                                         .remote = "192.0.2.9:5080", .transport = "udp", .expires_at = now + 600000,
                                         .local_cseq = 4, .remote_cseq = 1, .version = 3};
        assert_int_equal(store_submit(st, store_op_subscription_upsert(&row), NULL, NULL), 0);
    }
    store_flush_sync(st);
    subs_free(f->s);
    struct subs_deps sd = {.cfg = &f->cfg.subs, .local = &f->h->local, .digest = &f->digest, .registrar = f->r,
                           .ua = f->h->ua, .timers = f->h->timers, .store = st, .claim_loaded = true};
    f->s = subs_new(&sd);
    assert_non_null(f->s);
    struct subs_record_hooks hk = {.arg = f, .changed = rec_changed, .gone = rec_gone};
    subs_set_record_hooks(f->s, &hk);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(subs_load(f->s, now), 2);
    assert_int_equal(active(f->s), 2);
    assert_int_equal(f->changed, 0); /* no record written before the claim */
    /* a refresh meanwhile: not answered as held (maybe another node's now) */
    assert_int_equal(subscribe(f, "rs-0", 2, "kept1", "sip:alice@example.com", "Expires: 600\n"), 503);
    struct fio io = {0};
    struct subs_takeover_io tio = {.arg = &io, .command = fio_command};
    int err = 0;
    struct subs_takeover *t = subs_takeover_new_io(f->h->timers, f->s, "p:", "node-a", "inc-2", &tio, &err);
    assert_non_null(t);
    subs_takeover_start(t);
    /* each: the new run's index first, then the claim */
    for (int k = 0; k < 2; k++) {
        int i = fio_expect(&io, "p:node-subs:{node-a}:inc-2", "SADD");
        assert_string_equal(io.c[i].argv[4], "alice");
        assert_int_equal(fio_find(&io, "p:subs:{alice}", "r.inc ~= ARGV[3]"), -1);
        fio_answer(&io, i, ":1\r\n");
        i = fio_expect(&io, "p:subs:{alice}", "r.inc ~= ARGV[3]");
        assert_string_equal(io.c[i].argv[5], "node-a");
        assert_string_equal(io.c[i].argv[6], "inc-2");
        bool kept = strcmp(io.c[i].argv[4], "node-a/kept1") == 0;
        if (!kept) assert_string_equal(io.c[i].argv[4], "node-a/taken1");
        struct subs_takeover_record d; /* the record as the new run writes it */
        assert_int_equal(subs_takeover_record_decode(io.c[i].argv[4], strlen(io.c[i].argv[4]), io.c[i].argv[7],
                                                     strlen(io.c[i].argv[7]), &d),
                         0);
        assert_string_equal(d.inc, "inc-2");
        assert_string_equal(d.call_id, kept ? "rs-0" : "rs-1");
        fio_answer(&io, i, kept ? ":1\r\n" : ":0\r\n");
    }
    assert_int_equal(active(f->s), 1);
    assert_int_equal(f->changed, 1); /* the kept one, written as any */
    assert_int_equal(f->gone, 0);    /* the taken one's record is another node's: not touched */
    assert_int_equal(harness_find_sent(f->h, before, "NOTIFY "), -1);
    struct subs_takeover_stats ts;
    subs_takeover_get_stats(t, &ts);
    assert_int_equal(ts.reclaimed, 1);
    assert_int_equal(ts.let_go, 1);
    /* the kept one answers its refresh again */
    assert_int_equal(subscribe(f, "rs-0", 3, "kept1", "sip:alice@example.com", "Expires: 600\n"), 200);
    /* the taken one's row is gone from the store */
    store_flush_sync(st);
    fio_close(&io);
    subs_takeover_free(t);
    subs_set_record_hooks(f->s, NULL);
    subs_free(f->s);
    sd.claim_loaded = false;
    f->s = subs_new(&sd);
    assert_int_equal(subs_load(f->s, now), 1);
    subs_free(f->s);
    f->s = new_notifier(f);
    store_close(st);
    store_env_close(&env);
}

/* A PUBLISH of alice's presence (basic open/closed): its status; the
 * SIP-ETag into etag. */
static int publish_alice(struct fx *f, const char *basic, const char *if_match, char *etag, size_t cap)
{
    char body[512], text[2048], cond[128] = "";
    snprintf(body, sizeof(body),
             "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
             "entity=\"sip:alice@example.com\"><tuple id=\"pc\"><status><basic>%s</basic></status>"
             "</tuple></presence>",
             basic);
    if (if_match) snprintf(cond, sizeof(cond), "SIP-If-Match: %s\n", if_match);
    uint32_t n = ++f->branch;
    snprintf(text, sizeof(text),
             "PUBLISH sip:alice@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bK-p%u\n"
             "Max-Forwards: 70\nFrom: <sip:alice@example.com>;tag=p1\nTo: <sip:alice@example.com>\n"
             "Call-ID: pub-1\nCSeq: %u PUBLISH\nEvent: presence\nExpires: 600\n%s"
             "Content-Type: application/pidf+xml\nContent-Length: %zu\n\n%s",
             n, n, cond, strlen(body), body);
    size_t before = harness_sent_count(f->h);
    assert_int_equal(harness_inject(f->h, "192.0.2.20", 5062, SIP_TRANSPORT_UDP, text), 0);
    int i = harness_find_sent(f->h, before, "SIP/2.0 ");
    assert_true(i >= 0);
    const struct sip_msg *m = harness_sent_msg(f->h, (size_t)i);
    etag[0] = '\0';
    for (uint32_t k = 0; k < m->header_count; k++)
        if (str_ieq_cstr(m->headers[k].name, "SIP-ETag")) str_copy(etag, cap, str_trim(m->headers[k].value));
    return harness_sent_status(f->h, (size_t)i);
}

/* The NOTIFYs sent from index from on: how many, and whether one was in
 * call_id's dialog. */
static int notifies_since(struct fx *f, size_t from, const char *call_id, bool *in_dialog)
{
    int n = 0;
    *in_dialog = false;
    for (int i = harness_find_sent(f->h, from, "NOTIFY "); i >= 0;
         i = harness_find_sent(f->h, (size_t)i + 1, "NOTIFY ")) {
        n++;
        if (str_eq_cstr(harness_sent_msg(f->h, (size_t)i)->call_id, call_id)) *in_dialog = true;
    }
    return n;
}

/* A live node taken for dead by a peer (its run listed again, the same
 * incarnation): every subscription it holds goes silent (a refresh 503, a
 * change held back) until claimed again, which waits while a survivor's
 * walk of its run holds its claim; then each is claimed as after a
 * restart: the record still there is its own (kept, indexed again, its
 * record written; the change held back NOTIFYs, later ones as usual), the
 * one a survivor adopted is let go (nothing sent, its row out of the
 * store, the record, now the survivor's, untouched). */
static void test_self_reaped(void **state)
{
    struct fx *f = *state;
    struct store_env env;
    store_env_open(&env, "selfreap");
    struct store *st = store_env_store(&env);
    subs_free(f->s);
    struct subs_deps sd = {.cfg = &f->cfg.subs, .local = &f->h->local, .digest = &f->digest, .registrar = f->r,
                           .ua = f->h->ua, .timers = f->h->timers, .store = st, .claim_loaded = true};
    f->s = subs_new(&sd);
    assert_non_null(f->s);
    struct subs_record_hooks hk = {.arg = f, .changed = rec_changed, .gone = rec_gone};
    subs_set_record_hooks(f->s, &hk);
    const char *cids[] = {"sr-keep", "sr-take"};
    char tags[2][64];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(subscribe(f, cids[k], 1, "", "sip:alice@example.com", "Expires: 600\n"), 200);
        int i = last_notify(f);
        snprintf(tags[k], sizeof(tags[k]), "%.*s", STR_FMT(harness_sent_msg(f->h, (size_t)i)->from.tag));
        answer_notify(f, i, 200);
    }
    assert_int_equal(active(f->s), 2);
    struct fio io = {0};
    struct subs_takeover_io tio = {.arg = &io, .command = fio_command};
    int err = 0;
    struct subs_takeover *t = subs_takeover_new_io(f->h->timers, f->s, "p:", "node-x", "inc-x", &tio, &err);
    assert_non_null(t);
    subs_takeover_start(t);
    assert_int_equal(io.n, 0); /* nothing unclaimed */
    int changed = f->changed;
    /* a peer took this node for dead (a survivor adopted sr-take meanwhile) */
    subs_takeover_self_reaped(t);
    assert_int_equal(active(f->s), 2);
    int g = fio_expect(&io, "p:subs-runs:{node-x}", "v == ''"); /* does a walk of this run go on? */
    assert_string_equal(io.c[g].argv[4], "inc-x");
    assert_string_equal(io.c[g].argv[5], "node-x/inc-x");
    size_t before = harness_sent_count(f->h);
    /* held: a refresh answered 503, a change NOTIFYs nobody, no record written */
    assert_int_equal(subscribe(f, "sr-keep", 2, tags[0], "sip:alice@example.com", "Expires: 600\n"), 503);
    char etag[64];
    assert_int_equal(publish_alice(f, "open", NULL, etag, sizeof(etag)), 200);
    assert_true(etag[0]);
    bool in_dialog;
    assert_int_equal(notifies_since(f, before, "sr-keep", &in_dialog), 0);
    assert_int_equal(f->changed, changed);
    /* a survivor's walk of this run still holds its claim: nothing claimed yet */
    fio_answer(&io, g, ":0\r\n");
    assert_int_equal(fio_find(&io, "p:node-subs:", "SADD"), -1);
    assert_int_equal(fio_find(&io, "p:subs:{alice}", "r.inc ~= ARGV[3]"), -1);
    harness_advance(f->h, SUBS_TAKEOVER_CHECK_MS); /* the next check asks again */
    fio_reply(&io, "p:subs-runs:{node-x}", "v == ''", ":1\r\n");
    /* each: the run's index again (a finished walk deleted it), then the claim */
    for (int k = 0; k < 2; k++) {
        int i = fio_expect(&io, "p:node-subs:{node-x}:inc-x", "SADD");
        assert_string_equal(io.c[i].argv[4], "alice");
        fio_answer(&io, i, ":1\r\n");
        i = fio_expect(&io, "p:subs:{alice}", "r.inc ~= ARGV[3]");
        assert_string_equal(io.c[i].argv[5], "node-x");
        assert_string_equal(io.c[i].argv[6], "inc-x");
        struct subs_takeover_record d;
        assert_int_equal(subs_takeover_record_decode(io.c[i].argv[4], strlen(io.c[i].argv[4]), io.c[i].argv[7],
                                                     strlen(io.c[i].argv[7]), &d),
                         0);
        assert_string_equal(d.inc, "inc-x");
        bool kept = strcmp(d.call_id, "sr-keep") == 0;
        if (!kept) assert_string_equal(d.call_id, "sr-take");
        assert_string_equal(d.tag, tags[kept ? 0 : 1]);
        fio_answer(&io, i, kept ? ":1\r\n" : ":0\r\n"); /* the record taken by the survivor is gone */
    }
    assert_int_equal(active(f->s), 1);
    assert_int_equal(f->gone, 0);               /* sr-take's record is the survivor's: not touched */
    assert_true(f->changed > changed);           /* sr-keep's written again */
    char want[128];
    snprintf(want, sizeof(want), "node-x/%s", tags[0]);
    assert_string_equal(f->field, want);
    /* the change held back goes to sr-keep only */
    assert_int_equal(notifies_since(f, before, "sr-keep", &in_dialog), 1);
    assert_true(in_dialog);
    answer_notify(f, last_notify(f), 200);
    struct subs_takeover_stats ts;
    subs_takeover_get_stats(t, &ts);
    assert_int_equal(ts.self_reaped, 1);
    assert_int_equal(ts.reclaimed, 1);
    assert_int_equal(ts.let_go, 1);
    /* sr-keep held as any: its refresh 200, a later change NOTIFYs it */
    assert_int_equal(subscribe(f, "sr-keep", 3, tags[0], "sip:alice@example.com", "Expires: 600\n"), 200);
    answer_notify(f, last_notify(f), 200);
    before = harness_sent_count(f->h);
    char etag2[64];
    assert_int_equal(publish_alice(f, "closed", etag, etag2, sizeof(etag2)), 200);
    assert_int_equal(notifies_since(f, before, "sr-keep", &in_dialog), 1);
    assert_true(in_dialog);
    answer_notify(f, last_notify(f), 200);
    /* sr-take is not this notifier's any more (the fixture's fallback answers) */
    assert_int_equal(subscribe(f, "sr-take", 2, tags[1], "sip:alice@example.com", "Expires: 600\n"), 604);
    fio_close(&io);
    subs_takeover_free(t);
    subs_set_record_hooks(f->s, NULL);
    /* its row is out of the store, sr-keep's is not */
    store_flush_sync(st);
    subs_free(f->s);
    sd.claim_loaded = false;
    f->s = subs_new(&sd);
    assert_int_equal(subs_load(f->s, clock_wall_ms()), 1);
    assert_int_equal(active(f->s), 1);
    subs_free(f->s);
    f->s = new_notifier(f);
    store_close(st);
    store_env_close(&env);
}

/* Self-reaps close together: the gate's answer asked before a second one
 * is not taken (asked again), and a claim answered after a later one is not
 * applied (its "gone" may predate it; claimed again once the gate opens). */
static void test_self_reaped_again(void **state)
{
    struct fx *f = *state;
    struct subs_record_hooks hk = {.arg = f, .changed = rec_changed, .gone = rec_gone};
    subs_set_record_hooks(f->s, &hk);
    assert_int_equal(subscribe(f, "sra-1", 1, "", "sip:alice@example.com", "Expires: 600\n"), 200);
    answer_notify(f, last_notify(f), 200);
    struct fio io = {0};
    struct subs_takeover_io tio = {.arg = &io, .command = fio_command};
    int err = 0;
    struct subs_takeover *t = subs_takeover_new_io(f->h->timers, f->s, "p:", "node-x", "inc-x", &tio, &err);
    assert_non_null(t);
    subs_takeover_start(t);
    subs_takeover_self_reaped(t);
    int g = fio_expect(&io, "p:subs-runs:{node-x}", "v == ''");
    subs_takeover_self_reaped(t); /* again before the answer: one question in flight */
    assert_true(fio_find(&io, "p:subs-runs:{node-x}", "v == ''") == g);
    fio_answer(&io, g, ":1\r\n"); /* asked before the second: not taken */
    assert_int_equal(fio_find(&io, "p:node-subs:", "SADD"), -1);
    fio_reply(&io, "p:subs-runs:{node-x}", "v == ''", ":1\r\n");
    fio_reply(&io, "p:node-subs:{node-x}:inc-x", "SADD", ":1\r\n");
    int i = fio_expect(&io, "p:subs:{alice}", "r.inc ~= ARGV[3]");
    /* a third before the claim's answer: its "gone" is not applied */
    subs_takeover_self_reaped(t);
    fio_answer(&io, i, ":0\r\n");
    assert_int_equal(active(f->s), 1);
    struct subs_takeover_stats ts;
    subs_takeover_get_stats(t, &ts);
    assert_int_equal(ts.let_go, 0);
    assert_int_equal(ts.reclaimed, 0);
    fio_reply(&io, "p:subs-runs:{node-x}", "v == ''", ":1\r\n");
    fio_reply(&io, "p:node-subs:{node-x}:inc-x", "SADD", ":1\r\n");
    fio_reply(&io, "p:subs:{alice}", "r.inc ~= ARGV[3]", ":1\r\n");
    assert_int_equal(active(f->s), 1);
    subs_takeover_get_stats(t, &ts);
    assert_int_equal(ts.self_reaped, 3);
    assert_int_equal(ts.reclaimed, 1);
    assert_int_equal(ts.let_go, 0);
    /* held as any again */
    size_t before = harness_sent_count(f->h);
    char tag[64];
    snprintf(tag, sizeof(tag), "%s", f->field + strlen("node-x/"));
    assert_int_equal(subscribe(f, "sra-1", 2, tag, "sip:alice@example.com", "Expires: 600\n"), 200);
    assert_true(harness_find_sent(f->h, before, "NOTIFY ") >= 0);
    fio_close(&io);
    subs_takeover_free(t);
    subs_set_record_hooks(f->s, NULL);
}

/* A subscription over a connection at a self-reap: no survivor adopts it
 * (its flow is here; the walk deleted its record), so it is not held: a
 * change NOTIFYs it at once, its refresh is answered, nothing asks whose it
 * is, and once no walk of the run goes on its record is written again (and
 * the one over UDP claimed as usual). */
static void test_self_reaped_flow(void **state)
{
    struct fx *f = *state;
    struct subs_record_hooks hk = {.arg = f, .changed = rec_changed, .gone = rec_gone};
    subs_set_record_hooks(f->s, &hk);
    f->h->conn_id = 41;
    assert_int_equal(subscribe_over(f, SIP_TRANSPORT_TCP, "srf-tcp", 1, "", "sip:alice@example.com",
                                    "Expires: 600\n"),
                     200);
    int i = last_notify(f);
    char tcp_tag[64];
    snprintf(tcp_tag, sizeof(tcp_tag), "%.*s", STR_FMT(harness_sent_msg(f->h, (size_t)i)->from.tag));
    answer_notify(f, i, 200);
    f->h->conn_id = 0;
    assert_int_equal(subscribe(f, "srf-udp", 1, "", "sip:alice@example.com", "Expires: 600\n"), 200);
    answer_notify(f, last_notify(f), 200);
    struct fio io = {0};
    struct subs_takeover_io tio = {.arg = &io, .command = fio_command};
    int err = 0;
    struct subs_takeover *t = subs_takeover_new_io(f->h->timers, f->s, "p:", "node-x", "inc-x", &tio, &err);
    assert_non_null(t);
    subs_takeover_start(t);
    subs_takeover_self_reaped(t);
    int g = fio_expect(&io, "p:subs-runs:{node-x}", "v == ''");
    /* the one over TCP goes on meanwhile; the one over UDP is held */
    size_t before = harness_sent_count(f->h);
    char etag[64];
    assert_int_equal(publish_alice(f, "open", NULL, etag, sizeof(etag)), 200);
    bool in_dialog;
    assert_int_equal(notifies_since(f, before, "srf-tcp", &in_dialog), 1);
    assert_true(in_dialog);
    answer_notify(f, last_notify(f), 200);
    assert_int_equal(subscribe_over(f, SIP_TRANSPORT_TCP, "srf-tcp", 2, tcp_tag, "sip:alice@example.com",
                                    "Expires: 600\n"),
                     200);
    answer_notify(f, last_notify(f), 200);
    int changed = f->changed;
    fio_answer(&io, g, ":1\r\n"); /* no walk of this run goes on */
    /* its record written again at once; only the one over UDP is claimed */
    assert_true(f->changed > changed);
    char want[128];
    snprintf(want, sizeof(want), "node-x/%s", tcp_tag);
    assert_string_equal(f->field, want);
    fio_reply(&io, "p:node-subs:{node-x}:inc-x", "SADD", ":1\r\n");
    i = fio_expect(&io, "p:subs:{alice}", "r.inc ~= ARGV[3]");
    struct subs_takeover_record d;
    assert_int_equal(subs_takeover_record_decode(io.c[i].argv[4], strlen(io.c[i].argv[4]), io.c[i].argv[7],
                                                 strlen(io.c[i].argv[7]), &d),
                     0);
    assert_string_equal(d.call_id, "srf-udp");
    fio_answer(&io, i, ":0\r\n"); /* adopted by a survivor */
    assert_int_equal(fio_find(&io, "p:subs:{alice}", "r.inc ~= ARGV[3]"), -1); /* none for the TCP one */
    assert_int_equal(active(f->s), 1);
    struct subs_takeover_stats ts;
    subs_takeover_get_stats(t, &ts);
    assert_int_equal(ts.reclaimed, 0);
    assert_int_equal(ts.let_go, 1);
    fio_close(&io);
    subs_takeover_free(t);
    subs_set_record_hooks(f->s, NULL);
}

/* Adoption meets [subscriptions] max_total and max_per_subscriber: the
 * subscription is not held, its subscriber told to subscribe again. */
static void test_adopt_caps(void **state)
{
    struct fx *f = *state;
    for (int cap = 0; cap < 2; cap++) {
        subs_free(f->s);
        f->cfg.subs.max_total = cap == 0 ? 1 : 0;
        f->cfg.subs.max_per_subscriber = cap == 1 ? 1 : 0;
        f->s = new_notifier(f);
        char cid[32];
        snprintf(cid, sizeof(cid), "cap-held-%d", cap);
        assert_int_equal(subscribe(f, cid, 1, "", "sip:alice@example.com", "Expires: 600\n"), 200);
        answer_notify(f, last_notify(f), 200);
        assert_int_equal(active(f->s), 1);
        /* the watcher of the first one, for the per-subscriber cap */
        struct store_subscription row = {.call_id = "cap-1", .local_tag = "capt", .remote_tag = "f9",
                                         .event = "presence", .aor = "alice",
                                         .subscriber = cap == 1 ? "sip:watcher@example.com" : "sip:other@example.com",
                                         .target = "sip:w@192.0.2.9:5080", .routes = "", .remote = "192.0.2.9:5080",
                                         .transport = "udp", .expires_at = NOW + 600000, .local_cseq = 9,
                                         .remote_cseq = 2, .version = 1};
        size_t before = harness_sent_count(f->h);
        assert_int_equal(subs_adopt(f->s, &row, NOW), -EDQUOT);
        assert_int_equal(active(f->s), 1);
        int i = harness_find_sent(f->h, before, "NOTIFY ");
        assert_true(i >= 0);
        const struct sip_msg *n = harness_sent_msg(f->h, (size_t)i);
        assert_true(str_eq_cstr(n->call_id, "cap-1"));
        assert_true(harness_header_has(n, SIP_HDR_SUBSCRIPTION_STATE, "terminated;reason=deactivated"));
        assert_int_equal(n->cseq.number, 10);
        answer_notify(f, i, 200);
        assert_int_equal(harness_find_sent(f->h, (size_t)i + 1, "NOTIFY "), -1);
    }
    f->cfg.subs.max_total = 0;
    f->cfg.subs.max_per_subscriber = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_v2_roundtrip),
        cmocka_unit_test(test_record_v1_read),
        cmocka_unit_test(test_record_refusals),
        cmocka_unit_test(test_decide_and_row),
        cmocka_unit_test(test_reply_each),
        cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_resumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_reclaim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_reaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_reaped_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_reaped_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_caps, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
