/* test_events_stream.c — the pure parts of the cluster-wide event stream
 * ([redis] events_stream; tests/peers/test_events_stream.sh runs it against
 * three nodes and a real cluster):
 *
 *  - stream ids: read, printed, compared, refused (sign, overflow, junk);
 *  - entries out of XREAD / XREADGROUP / XREVRANGE / XAUTOCLAIM answers,
 *    fed as RESP bytes to hiredis's own reader: ours accepted; entries not
 *    written by us (id n-1, no e field, a text whose seq is not the id's,
 *    not JSON, trailing bytes) handed on without a text; the one-pass JSON
 *    check against what jansson reads;
 *    replies of the wrong shape (ids out of order, another key, odd
 *    nesting) refused whole;
 *  - the local text's head cut off before the script rewrites it;
 *  - a view bus: injected events keep their seq, a jump empties the ring
 *    (replays report the lost ones), older seqs are refused, not ready
 *    until told. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <uv.h>

#include "app/events_stream.h"
#include "events/events.h"
#include "redis/redis_objects.h"
#include "redis/redis_stream.h"
#include "fake_redis.h"

struct seen {
    int n;
    uint64_t ids[16], seqs[16];
    char texts[16][256];
    char nodes[16][64];
    int has_text[16];
};

static int collect(void *arg, const struct redis_stream_entry *e)
{
    struct seen *s = arg;
    assert_true(s->n < 16);
    s->ids[s->n] = e->id.ms * 1000 + e->id.seq;
    s->seqs[s->n] = e->event_seq;
    s->has_text[s->n] = e->text != NULL;
    if (e->text) snprintf(s->texts[s->n], sizeof(s->texts[0]), "%.*s", (int)e->text_len, e->text);
    snprintf(s->nodes[s->n], sizeof(s->nodes[0]), "%.*s", (int)e->node_len, e->node);
    s->n++;
    return 0;
}

/* "*2\r\n$<id>\r\n*4\r\n$1\r\ne\r\n$<text>\r\n$1\r\nn\r\n$<node>\r\n" */
static int entry(char *out, size_t cap, const char *id, const char *text, const char *node)
{
    return snprintf(out, cap, "*2\r\n$%zu\r\n%s\r\n*4\r\n$1\r\ne\r\n$%zu\r\n%s\r\n$1\r\nn\r\n$%zu\r\n%s\r\n",
                    strlen(id), id, strlen(text), text, strlen(node), node);
}

static void test_ids(void **state)
{
    (void)state;
    struct redis_stream_id id;
    assert_int_equal(redis_stream_id_parse("12-0", 4, &id), 0);
    assert_true(id.ms == 12 && id.seq == 0);
    assert_int_equal(redis_stream_id_parse("18446744073709551615-18446744073709551615", 41, &id), 0);
    assert_true(id.ms == UINT64_MAX && id.seq == UINT64_MAX);
    const char *bad[] = {"", "-", "12", "12-", "-0", "+1-0", "1--0", "1-0-0", "a-0", "18446744073709551616-0",
                         "1-18446744073709551616", "1 -0", "123456789012345678901-0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(redis_stream_id_parse(bad[i], strlen(bad[i]), &id), -EPROTO);
    char buf[REDIS_STREAM_ID_MAX];
    assert_int_equal(redis_stream_id_print((struct redis_stream_id){UINT64_MAX, UINT64_MAX}, buf, sizeof(buf)), 41);
    assert_string_equal(buf, "18446744073709551615-18446744073709551615");
    assert_int_equal(redis_stream_id_cmp((struct redis_stream_id){1, 5}, (struct redis_stream_id){2, 0}), -1);
    assert_int_equal(redis_stream_id_cmp((struct redis_stream_id){2, 1}, (struct redis_stream_id){2, 0}), 1);
    assert_int_equal(redis_stream_id_cmp((struct redis_stream_id){2, 0}, (struct redis_stream_id){2, 0}), 0);
}

static void test_xread(void **state)
{
    (void)state;
    char e1[512], e2[512], e3[512], buf[2048];
    entry(e1, sizeof(e1), "7-0", "{\"seq\":7,\"node\":\"a\",\"time\":\"t\",\"type\":\"user.online\"}", "a");
    entry(e2, sizeof(e2), "8-0", "{\"seq\":8,\"node\":\"b\",\"type\":\"x\",\"user\":\"\\u00e9\"}", "b");
    entry(e3, sizeof(e3), "9-0", "{\"seq\":9,\"type\":\"y\"}", "c");
    snprintf(buf, sizeof(buf), "*1\r\n*2\r\n$8\r\nt:stream\r\n*3\r\n%s%s%s", e1, e2, e3);
    redisReply *r = fake_resp(buf);
    struct seen s = {0};
    assert_int_equal(redis_stream_parse_read(r, "t:stream", 8, collect, &s), 3);
    assert_int_equal(s.n, 3);
    assert_true(s.has_text[0] && s.has_text[1] && s.has_text[2]);
    assert_true(s.seqs[0] == 7 && s.seqs[1] == 8 && s.seqs[2] == 9);
    assert_string_equal(s.texts[0], "{\"seq\":7,\"node\":\"a\",\"time\":\"t\",\"type\":\"user.online\"}");
    assert_string_equal(s.nodes[1], "b");
    /* Asked for another key: refused, nobody called. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(redis_stream_parse_read(r, "t:other", 7, collect, &s), -EPROTO);
    assert_int_equal(s.n, 0);
    freeReplyObject(r);

    /* Nothing new. */
    r = fake_resp("*-1\r\n");
    assert_int_equal(redis_stream_parse_read(r, "k", 1, collect, &s), 0);
    freeReplyObject(r);
    r = fake_resp("$-1\r\n");
    assert_int_equal(redis_stream_parse_read(r, "k", 1, collect, &s), 0);
    freeReplyObject(r);
}

/* Entries that are not ours: handed on (the cursor moves past, a group acks
 * them) without a text. */
static void test_foreign_entries(void **state)
{
    (void)state;
    const char *texts[][2] = {
        {"5-1", "{\"seq\":5,\"type\":\"x\"}"},           /* written by XADD *, not by the script */
        {"6-0", "{\"seq\":7,\"type\":\"x\"}"},           /* the text's seq is not the id's */
        {"7-0", "{\"seq\":7,\"type\":\"x\"} "},          /* trailing byte */
        {"8-0", "{\"seq\":8,\"type\":\"x\",}"},      /* trailing comma */
        {"9-0", "{\"seq\":9,\"type\":\"x\""},            /* not closed */
        {"10-0", "{\"seq\":10 ,\"type\":\"x\"}"},        /* not our head */
        {"11-0", "[\"seq\",11]"},
        {"12-0", "{\"seq\":12,\"type\":\"\\u0000\"}"},   /* NUL inside */
        {"13-0", "{\"seq\":13,\"t\":\"\xff\"}"},         /* not UTF-8 */
        {"0-0", "{\"seq\":0,\"type\":\"x\"}"},            /* seq 0 is never written */
    };
    size_t n = sizeof(texts) / sizeof(texts[0]);
    char buf[8192];
    int len = snprintf(buf, sizeof(buf), "*%zu\r\n", n + 1);
    /* the 0-0 entry must come first for the order check: put it there */
    len += entry(buf + len, sizeof(buf) - (size_t)len, texts[n - 1][0], texts[n - 1][1], "x");
    for (size_t i = 0; i + 1 < n; i++)
        len += entry(buf + len, sizeof(buf) - (size_t)len, texts[i][0], texts[i][1], "x");
    /* and one with no e field, last */
    len += snprintf(buf + len, sizeof(buf) - (size_t)len, "*2\r\n$4\r\n14-0\r\n*2\r\n$1\r\nn\r\n$1\r\nx\r\n");
    redisReply *r = fake_resp(buf);
    struct seen s = {0};
    assert_int_equal(redis_stream_parse_entries(r, 0, collect, &s), (int)n + 1);
    assert_int_equal(s.n, (int)n + 1);
    for (int i = 0; i < s.n; i++) assert_false(s.has_text[i]);
    assert_int_equal(s.ids[1], 5001); /* 5-1: the cursor can still move past it */
    freeReplyObject(r);

    /* A deleted entry (nil fields, as XREADGROUP 0 and XCLAIM show it). */
    r = fake_resp("*1\r\n*2\r\n$3\r\n4-0\r\n*-1\r\n");
    memset(&s, 0, sizeof(s));
    assert_int_equal(redis_stream_parse_entries(r, 0, collect, &s), 1);
    assert_false(s.has_text[0]);
    freeReplyObject(r);
}

static void test_bad_shapes(void **state)
{
    (void)state;
    const char *bad[] = {
        "+OK\r\n",
        ":1\r\n",
        "*1\r\n:1\r\n",                                               /* an entry that is no array */
        "*1\r\n*1\r\n$3\r\n1-0\r\n",                                  /* no fields element */
        "*1\r\n*2\r\n$3\r\n1-x\r\n*0\r\n",                            /* an id that does not read */
        "*1\r\n*2\r\n:1\r\n*0\r\n",                                   /* an id that is no string */
        "*2\r\n*2\r\n$3\r\n2-0\r\n*0\r\n*2\r\n$3\r\n1-0\r\n*0\r\n",   /* out of order */
        "*2\r\n*2\r\n$3\r\n2-0\r\n*0\r\n*2\r\n$3\r\n2-0\r\n*0\r\n",   /* repeated */
        "*1\r\n*2\r\n$3\r\n1-0\r\n$1\r\nx\r\n",                       /* fields not an array */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *r = fake_resp(bad[i]);
        struct seen s = {0};
        assert_int_equal(redis_stream_parse_entries(r, 0, collect, &s), -EPROTO);
        assert_int_equal(s.n, 0);
        freeReplyObject(r);
    }
    /* XREAD answers of the wrong shape. */
    const char *bad_read[] = {"*2\r\n*2\r\n$1\r\nk\r\n*0\r\n*2\r\n$1\r\nk\r\n*0\r\n", "*1\r\n*1\r\n$1\r\nk\r\n",
                              "*1\r\n$1\r\nk\r\n", "-ERR no\r\n"};
    for (size_t i = 0; i < sizeof(bad_read) / sizeof(bad_read[0]); i++) {
        redisReply *r = fake_resp(bad_read[i]);
        struct seen s = {0};
        assert_int_equal(redis_stream_parse_read(r, "k", 1, collect, &s), -EPROTO);
        freeReplyObject(r);
    }
}

static void test_xrevrange_and_autoclaim(void **state)
{
    (void)state;
    char e1[512], e2[512], buf[2048];
    entry(e1, sizeof(e1), "3-0", "{\"seq\":3,\"type\":\"a\"}", "n1");
    entry(e2, sizeof(e2), "2-0", "{\"seq\":2,\"type\":\"b\"}", "n2");
    /* XREVRANGE: newest first; walked in reverse, oldest first. */
    snprintf(buf, sizeof(buf), "*2\r\n%s%s", e1, e2);
    redisReply *r = fake_resp(buf);
    struct seen s = {0};
    assert_int_equal(redis_stream_parse_entries(r, 0, collect, &s), -EPROTO); /* descending read forward */
    assert_int_equal(redis_stream_parse_entries(r, 1, collect, &s), 2);
    assert_true(s.seqs[0] == 2 && s.seqs[1] == 3);
    freeReplyObject(r);

    /* XAUTOCLAIM (Redis 7): cursor, entries, deleted ids. */
    snprintf(buf, sizeof(buf), "*3\r\n$3\r\n9-0\r\n*2\r\n%s%s*1\r\n$3\r\n1-0\r\n", e2, e1);
    r = fake_resp(buf);
    memset(&s, 0, sizeof(s));
    struct redis_stream_id next = {0, 0};
    assert_int_equal(redis_stream_parse_autoclaim(r, &next, collect, &s), 2);
    assert_true(next.ms == 9 && next.seq == 0);
    assert_string_equal(s.nodes[0], "n2");
    freeReplyObject(r);
    /* Redis 6.2: two elements; a cursor that does not read is refused. */
    r = fake_resp("*2\r\n$3\r\n0-0\r\n*0\r\n");
    assert_int_equal(redis_stream_parse_autoclaim(r, &next, collect, &s), 0);
    assert_true(next.ms == 0);
    freeReplyObject(r);
    r = fake_resp("*2\r\n$1\r\nx\r\n*0\r\n");
    assert_int_equal(redis_stream_parse_autoclaim(r, &next, collect, &s), -EPROTO);
    freeReplyObject(r);
}

static void test_json_check(void **state)
{
    (void)state;
    const char *good[] = {
        "{}", " { } ", "{\"a\":1}", "{\"a\":[1,2.5,-3e+2,0,-0.0,true,false,null,\"x\",{}]}",
        "{\"a\":{\"b\":{\"c\":[[[]]]}}}", "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}",
        "{\"u\":\"\xc3\xa9\xf0\x9f\x98\x80\"}", "{\"a\":1,\"a\":2}", "{\"n\":123456789012345678}",
        "{\"n\":1.5e99}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(redis_stream_json_object_ok(good[i], strlen(good[i])), 1);
        json_t *v = json_loadb(good[i], strlen(good[i]), 0, NULL);
        assert_true(json_is_object(v)); /* jansson reads all of them */
        json_decref(v);
    }
    const char *bad[] = {
        "", "[]", "1", "\"s\"", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":1}x", "{\"a\":1}{}",
        "{a:1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":+1}", "{\"a\":1e}", "{\"a\":1e400}",
        "{\"a\":1234567890123456789}", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\"}", "{\"a\":\"\\ud800\\u0041\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"\t\"}",
        "{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xff\"}", "{\"a\":\"unterminated}",
        "{\"a\":[1,2}", "{\"a\":[1 2]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(redis_stream_json_object_ok(bad[i], strlen(bad[i])), 0);
    assert_int_equal(redis_stream_json_object_ok("{\"a\":\"\0\"}", 8), 0); /* a raw NUL */
    /* Nesting: 32 levels in all pass, 33 do not. */
    char deep[80];
    for (int levels = 32; levels <= 33; levels++) {
        int n = 0;
        deep[n++] = '{';
        memcpy(deep + n, "\"a\":", 4), n += 4;
        for (int i = 1; i < levels; i++) deep[n++] = '[';
        for (int i = 1; i < levels; i++) deep[n++] = ']';
        deep[n++] = '}';
        assert_int_equal(redis_stream_json_object_ok(deep, (size_t)n), levels == 32);
    }
}

static void test_body_offset(void **state)
{
    (void)state;
    const char *t = "{\"seq\":42,\"time\":\"x\",\"type\":\"y\"}";
    long off = events_stream_body_offset(t, strlen(t));
    assert_int_equal(off, 10);
    assert_string_equal(t + off, "\"time\":\"x\",\"type\":\"y\"}");
    const char *bad[] = {"", "{\"seq\":", "{\"seq\":,", "{\"seq\":1}", "{\"seq\":1", "{\"seq\":x,", "{\"seq\" :1,",
                         "{\"seq\":123456789012345678901,"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(events_stream_body_offset(bad[i], strlen(bad[i])), -1);
    /* The entry the write scripts make of it: the stream's seq, then the
     * writer, then the body as it was. */
    sbuf_t b;
    sbuf_init(&b);
    assert_int_equal(events_stream_entry_text(&b, 9001, "\"node-a\"", t + off, strlen(t) - (size_t)off), 0);
    assert_string_equal(b.data, "{\"seq\":9001,\"node\":\"node-a\",\"time\":\"x\",\"type\":\"y\"}");
    assert_int_equal(events_stream_body_offset(b.data, b.len), 12);
    sbuf_free(&b);
}

struct got {
    int n;
    uint64_t seqs[16];
};
static void on_ev(uint64_t seq, const char *json, size_t len, void *arg)
{
    (void)json;
    (void)len;
    struct got *g = arg;
    if (g->n < 16) g->seqs[g->n] = seq;
    g->n++;
}

static void test_view_bus(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct event_bus *v = event_bus_new(&loop, 4, NULL);
    assert_non_null(v);
    assert_true(event_bus_ready(v));
    event_bus_set_ready(v, 0);
    assert_false(event_bus_ready(v));
    event_bus_set_ready(v, 1);
    struct got g = {0};
    assert_int_equal(event_subscribe(v, on_ev, &g), 0);
    const char *t10 = "{\"seq\":10,\"type\":\"a\"}";
    assert_int_equal(event_bus_inject(v, 10, t10, strlen(t10)), 0); /* the first: no ring to empty */
    assert_int_equal(event_bus_inject(v, 11, "{\"seq\":11}", 10), 0);
    assert_int_equal(event_bus_inject(v, 11, "{\"seq\":11}", 10), -1); /* not above the last */
    assert_int_equal(event_bus_inject(v, 0, "{}", 2), -1);
    assert_int_equal(g.n, 2);
    assert_true(g.seqs[0] == 10 && g.seqs[1] == 11);
    const char *j;
    size_t l;
    assert_int_equal(event_bus_get(v, 10, &j, &l), 0);
    assert_int_equal(l, strlen(t10));
    assert_memory_equal(j, t10, l);
    assert_int_equal(event_bus_last_seq(v), 11);
    assert_int_equal(event_bus_oldest_seq(v), 10);
    uint64_t lost = 0;
    struct got r = {0};
    assert_int_equal(event_bus_since(v, 3, on_ev, &r, &lost), 2);
    assert_int_equal(lost, 6); /* 4..9 were never held here */
    /* A jump (trimmed before this node read it): the ring starts again. */
    assert_int_equal(event_bus_inject(v, 20, "{\"seq\":20}", 10), 1);
    assert_int_equal(event_bus_oldest_seq(v), 20);
    assert_int_equal(event_bus_get(v, 11, &j, &l), -1);
    memset(&r, 0, sizeof(r));
    assert_int_equal(event_bus_since(v, 11, on_ev, &r, &lost), 1);
    assert_int_equal(lost, 8);
    /* The ring keeps its size: 21..24 push 20 out. */
    for (uint64_t q = 21; q <= 24; q++) assert_int_equal(event_bus_inject(v, q, "{}", 2), 0);
    assert_int_equal(event_bus_oldest_seq(v), 21);
    assert_int_equal(g.n, 7);
    /* A view's webhook is not fed by inject; with no webhook a push is refused. */
    assert_int_equal(event_bus_webhook_push(v, 24, "{}", 2), -1);
    event_bus_free(v);
    uv_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_xread),
        cmocka_unit_test(test_foreign_entries),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_xrevrange_and_autoclaim),
        cmocka_unit_test(test_json_check),
        cmocka_unit_test(test_body_offset),
        cmocka_unit_test(test_view_bus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
