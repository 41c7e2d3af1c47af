/* test_reg_nodes.c — the reg package across nodes (subs/reg_nodes.h): what
 * is read from another node's binding records and what it refuses, and the
 * diff between two reads as the reginfo contacts a partial NOTIFY carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/sbuf.h"
#include "subs/reg_nodes.h"
#include "subs/reginfo.h"
#include "fake_redis.h"

#define NOW 1700000000000LL

/* "dead" is the only node not live */
static bool alive(void *arg, const char *node)
{
    (void)arg;
    return strcmp(node, "dead") != 0;
}

static void test_contact_ok(void **state)
{
    (void)state;
    assert_true(reg_nodes_contact_ok("sip:a@192.0.2.1:5060;transport=tcp", 34));
    assert_true(reg_nodes_contact_ok("SIPS:a@h", 8));
    const char *bad[] = {"", "sip:", "tel:+1555", "http://x", "sip:a b@h", "sip:a<@h", "sip:a\"@h", "sip:a>@h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) assert_false(reg_nodes_contact_ok(bad[i], strlen(bad[i])));
    assert_false(reg_nodes_contact_ok("sip:a\0b@h", 9));  /* a NUL inside */
    assert_false(reg_nodes_contact_ok("sip:a\x7f@h", 8)); /* DEL */
    char lng[REG_NODES_URI_MAX + 1];
    memset(lng, 'a', sizeof(lng));
    memcpy(lng, "sip:", 4);
    assert_true(reg_nodes_contact_ok(lng, REG_NODES_URI_MAX - 1));
    assert_false(reg_nodes_contact_ok(lng, REG_NODES_URI_MAX));
    assert_false(reg_nodes_contact_ok(NULL, 0));
}

static void test_parse(void **state)
{
    (void)state;
    char good[160], mine[160], old[160], dead[160], lowq[160];
    snprintf(good, sizeof(good), "{\"node\":\"b\",\"flow\":3,\"transport\":\"udp\",\"expires\":%lld,\"q\":1000}",
             NOW + 60000);
    snprintf(mine, sizeof(mine), "{\"node\":\"me\",\"expires\":%lld}", NOW + 60000);
    snprintf(old, sizeof(old), "{\"node\":\"b\",\"expires\":%lld}", NOW);
    snprintf(dead, sizeof(dead), "{\"node\":\"dead\",\"expires\":%lld}", NOW + 60000);
    snprintf(lowq, sizeof(lowq), "{\"node\":\"c\",\"expires\":%lld,\"q\":500}", NOW + 3000);
    redisReply e[] = {
        fake_str_reply("sip:a@10.0.0.1"), fake_str_reply(good),       /* kept */
        fake_str_reply("sip:m@10.0.0.2"), fake_str_reply(mine),       /* own */
        fake_str_reply("sip:o@10.0.0.3"), fake_str_reply(old),        /* expired */
        fake_str_reply("sip:d@10.0.0.4"), fake_str_reply(dead),       /* dead node */
        fake_str_reply("sip:q@10.0.0.5"), fake_str_reply(lowq),       /* kept, q 0.5 */
        fake_str_reply("tel:1"),          fake_str_reply(good),       /* a field that is no contact */
        fake_str_reply("sip:x@10.0.0.6"), fake_str_reply("garbage"),  /* no JSON */
        fake_str_reply("sip:y@10.0.0.7"), fake_str_reply("{\"node\":\"\",\"expires\":9}"),
        fake_str_reply("sip:z@10.0.0.8"), fake_str_reply("{\"node\":\"b\",\"expires\":\"9\"}"),
        fake_str_reply("sip:w@10.0.0.9"), (redisReply){.type = REDIS_REPLY_INTEGER, .integer = 1},
        fake_str_reply("sip:a@10.0.0.1"), fake_str_reply(lowq),       /* a field twice: the first counts */
    };
    redisReply *ptr[22];
    for (size_t i = 0; i < 22; i++) ptr[i] = &e[i];
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 22, .element = ptr};
    struct reg_remote out[4];
    struct follow_read_stats st;
    assert_int_equal(reg_nodes_parse(&arr, "me", NOW, alive, NULL, out, 4, &st), 2);
    assert_string_equal(out[0].uri, "sip:a@10.0.0.1");
    assert_string_equal(out[0].node, "b");
    assert_int_equal(out[0].expires_wall_ms, NOW + 60000);
    assert_int_equal(out[0].q1000, 1000);
    assert_string_equal(out[1].uri, "sip:q@10.0.0.5");
    assert_int_equal(out[1].q1000, 500);
    assert_int_equal(st.own, 1);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.dead, 1);
    assert_int_equal(st.rejected, 6);
    assert_int_equal(st.over_cap, 0);
    /* the cap on contacts kept */
    assert_int_equal(reg_nodes_parse(&arr, "me", NOW, alive, NULL, out, 1, &st), 1);
    assert_int_equal(st.over_cap, 1);
    /* an odd element count: the last field has no value and is not looked at */
    arr.elements = 3;
    assert_int_equal(reg_nodes_parse(&arr, "me", NOW, alive, NULL, out, 4, NULL), 1);
    /* not an array: nothing read */
    redisReply nil = {.type = REDIS_REPLY_NIL}, err = {.type = REDIS_REPLY_ERROR, .str = "MOVED", .len = 5};
    assert_int_equal(reg_nodes_parse(&nil, "me", NOW, alive, NULL, out, 4, NULL), -1);
    assert_int_equal(reg_nodes_parse(&err, "me", NOW, alive, NULL, out, 4, NULL), -1);
    assert_int_equal(reg_nodes_parse(NULL, "me", NOW, alive, NULL, out, 4, NULL), -1);
    redisReply empty = {.type = REDIS_REPLY_ARRAY, .elements = 0};
    assert_int_equal(reg_nodes_parse(&empty, "me", NOW, alive, NULL, out, 4, NULL), 0);
}

static void test_parse_pairs_cap(void **state)
{
    (void)state;
    enum { PAIRS = REG_NODES_PAIRS_MAX + 10 };
    static char fields[PAIRS][32];
    static redisReply e[2 * PAIRS];
    static redisReply *ptr[2 * PAIRS];
    char rec[96];
    snprintf(rec, sizeof(rec), "{\"node\":\"b\",\"expires\":%lld}", NOW + 1000);
    for (size_t i = 0; i < PAIRS; i++) {
        snprintf(fields[i], sizeof(fields[i]), "sip:u%zu@h", i);
        e[2 * i] = fake_str_reply(fields[i]);
        e[2 * i + 1] = fake_str_reply(rec);
    }
    for (size_t i = 0; i < 2 * PAIRS; i++) ptr[i] = &e[i];
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 2 * PAIRS, .element = ptr};
    struct reg_remote out[REG_NODES_MAX + 8];
    struct follow_read_stats st;
    assert_int_equal(reg_nodes_parse(&arr, "me", NOW, alive, NULL, out, REG_NODES_MAX + 8, &st), REG_NODES_MAX);
    assert_int_equal(st.over_cap, (REG_NODES_PAIRS_MAX - REG_NODES_MAX) + 10);
}

static struct reg_remote rr(const char *uri, const char *node, int64_t exp)
{
    struct reg_remote r = {.expires_wall_ms = exp, .q1000 = 1000};
    snprintf(r.uri, sizeof(r.uri), "%s", uri);
    snprintf(r.node, sizeof(r.node), "%s", node);
    return r;
}

static const struct reginfo_contact *by_uri(const struct reginfo_contact *c, size_t n, const char *uri)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].uri, uri) == 0) return &c[i];
    return NULL;
}

static void test_diff(void **state)
{
    (void)state;
    struct reg_remote old[] = {
        rr("sip:same@h", "b", NOW + 30000),   /* unchanged */
        rr("sip:refr@h", "b", NOW + 30000),   /* a later expiry */
        rr("sip:moved@h", "b", NOW + 30000),  /* now on c */
        rr("sip:unreg@h", "b", NOW + 30000),  /* gone before its expiry, b live */
        rr("sip:exp@h", "b", NOW - 1),        /* gone, its expiry passed */
        rr("sip:dead@h", "dead", NOW + 30000), /* gone with its node */
    };
    struct reg_remote cur[] = {
        rr("sip:same@h", "b", NOW + 30000),
        rr("sip:refr@h", "b", NOW + 90000),
        rr("sip:moved@h", "c", NOW + 30000),
        rr("sip:new@h", "c", NOW + 3600000),
    };
    struct reginfo_contact ch[16];
    size_t n = reg_nodes_diff(old, 6, cur, 4, NOW, alive, NULL, ch, 16);
    assert_int_equal(n, 6);
    assert_null(by_uri(ch, n, "sip:same@h"));
    const struct reginfo_contact *c = by_uri(ch, n, "sip:refr@h");
    assert_string_equal(c->state, "active");
    assert_string_equal(c->event, "refreshed");
    assert_int_equal(c->expires, 90);
    c = by_uri(ch, n, "sip:moved@h");
    assert_string_equal(c->event, "registered");
    c = by_uri(ch, n, "sip:new@h");
    assert_string_equal(c->state, "active");
    assert_string_equal(c->event, "registered");
    assert_int_equal(c->expires, 3600);
    c = by_uri(ch, n, "sip:unreg@h");
    assert_string_equal(c->state, "terminated");
    assert_string_equal(c->event, "unregistered");
    assert_string_equal(by_uri(ch, n, "sip:exp@h")->event, "expired");
    assert_string_equal(by_uri(ch, n, "sip:dead@h")->event, "deactivated");
    /* the same view twice: nothing */
    assert_int_equal(reg_nodes_diff(cur, 4, cur, 4, NOW, alive, NULL, ch, 16), 0);
    /* from nothing, to nothing */
    assert_int_equal(reg_nodes_diff(NULL, 0, cur, 4, NOW, alive, NULL, ch, 16), 4);
    assert_int_equal(reg_nodes_diff(cur, 4, NULL, 0, NOW, alive, NULL, ch, 16), 4);
    /* the cap on changes */
    assert_int_equal(reg_nodes_diff(old, 6, cur, 4, NOW, alive, NULL, ch, 2), 2);
}

/* The partial document a diff becomes: the new contact active, the gone
 * one terminated without expires. */
static void test_diff_document(void **state)
{
    (void)state;
    struct reg_remote old[] = {rr("sip:alice@192.0.2.7:5060", "a", NOW + 30000)};
    struct reg_remote cur[] = {rr("sip:alice@192.0.2.8:5070", "a", NOW + 60000)};
    struct reginfo_contact ch[4];
    size_t n = reg_nodes_diff(old, 1, cur, 1, NOW, alive, NULL, ch, 4);
    assert_int_equal(n, 2);
    sbuf_t sb;
    sbuf_init(&sb);
    assert_int_equal(reginfo_build(&sb, 3, false, "sip:alice@example.com", "active", ch, n), 0);
    sbuf_append_char(&sb, '\0');
    const char *doc = sb.data;
    assert_non_null(strstr(doc, "version=\"3\" state=\"partial\""));
    assert_non_null(strstr(doc, "state=\"terminated\" event=\"unregistered\">\n   <uri>sip:alice@192.0.2.7:5060</uri>"));
    assert_non_null(strstr(doc, "state=\"active\" event=\"registered\" expires=\"60\">\n   <uri>sip:alice@192.0.2.8:5070"));
    sbuf_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contact_ok),     cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_pairs_cap), cmocka_unit_test(test_diff),
        cmocka_unit_test(test_diff_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
