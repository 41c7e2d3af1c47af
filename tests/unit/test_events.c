/* test_events.c — the event bus: seq and fields, ring bounds, replay with
 * loss detection, subscribers (including re-entrant publish/unsubscribe);
 * the text builder against the bus; a dead node's offline events as the
 * cluster's stream holds them (one "node", the writer, and lost_node). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app/events_stream.h"
#include "events/events.h"
#include "base/log.h"
#include "registrar/cluster.h"

static json_t *parse(const char *json)
{
    json_error_t e;
    json_t *v = json_loads(json, 0, &e);
    assert_non_null(v);
    return v;
}

static json_t *fields_user(const char *user)
{
    json_t *f = json_object();
    json_object_set_new(f, "user", json_string(user));
    return f;
}

static void test_seq_time_type_fields(void **state)
{
    (void)state;
    struct event_bus *bus = event_bus_new(uv_default_loop(), 8, NULL);
    assert_non_null(bus);
    assert_int_equal(event_bus_last_seq(bus), 0);
    assert_int_equal(event_bus_oldest_seq(bus), 0);

    json_t *f = fields_user("alice");
    json_object_set_new(f, "seq", json_integer(999));        /* reserved: ignored */
    json_object_set_new(f, "type", json_string("forged"));
    assert_int_equal(event_publish(bus, "user.online", f), 1);
    assert_int_equal(event_publish(bus, "user.offline", NULL), 2);
    assert_int_equal(event_publish(bus, "x", json_string("not an object")), 3);
    assert_int_equal(event_bus_published(bus), 3);

    const char *json;
    size_t len;
    assert_int_equal(event_bus_get(bus, 1, &json, &len), 0);
    assert_int_equal(strlen(json), len);
    json_t *ev = parse(json);
    assert_int_equal(json_integer_value(json_object_get(ev, "seq")), 1);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "user.online");
    assert_string_equal(json_string_value(json_object_get(ev, "user")), "alice");
    const char *t = json_string_value(json_object_get(ev, "time"));
    assert_non_null(t);
    /* 2026-11-21T22:44:44.123Z */
    assert_int_equal(strlen(t), 24);
    assert_int_equal(t[10], 'T');
    assert_int_equal(t[19], '.');
    assert_int_equal(t[23], 'Z');
    /* seq, time, type come first so that a reader of the log sees them first */
    assert_memory_equal(json, "{\"seq\":1,\"time\":\"", 17);
    json_decref(ev);

    assert_int_equal(event_bus_get(bus, 3, &json, &len), 0);
    ev = parse(json);
    assert_int_equal(json_object_size(ev), 3);                 /* the non-object fields were dropped */
    json_decref(ev);

    assert_int_equal(event_publish(bus, "", NULL), 0);          /* no type: refused */
    assert_int_equal(event_bus_last_seq(bus), 3);
    event_bus_free(bus);
}

static void test_ring_bounds(void **state)
{
    (void)state;
    struct event_bus *bus = event_bus_new(uv_default_loop(), 4, NULL);
    for (int i = 1; i <= 10; i++) assert_int_equal(event_publish(bus, "tick", NULL), (uint64_t)i);
    assert_int_equal(event_bus_ring_size(bus), 4);
    assert_int_equal(event_bus_oldest_seq(bus), 7);
    assert_int_equal(event_bus_last_seq(bus), 10);
    const char *json;
    size_t len;
    assert_int_equal(event_bus_get(bus, 6, &json, &len), -1);
    assert_int_equal(event_bus_get(bus, 0, &json, &len), 1);
    assert_int_equal(event_bus_get(bus, 11, &json, &len), 1);
    for (uint64_t s = 7; s <= 10; s++) {
        assert_int_equal(event_bus_get(bus, s, &json, &len), 0);
        json_t *ev = parse(json);
        assert_int_equal(json_integer_value(json_object_get(ev, "seq")), s);
        json_decref(ev);
    }
    event_bus_free(bus);

    /* ring_size below 1 is clamped */
    bus = event_bus_new(uv_default_loop(), 0, NULL);
    assert_int_equal(event_bus_ring_size(bus), 1);
    event_publish(bus, "a", NULL);
    event_publish(bus, "b", NULL);
    assert_int_equal(event_bus_oldest_seq(bus), 2);
    event_bus_free(bus);
}

struct collected {
    uint64_t seqs[64];
    char types[64][32];
    int n;
};

static void collect(uint64_t seq, const char *json, size_t len, void *arg)
{
    struct collected *c = arg;
    assert_int_equal(strlen(json), len);
    json_t *ev = parse(json);
    assert_int_equal(json_integer_value(json_object_get(ev, "seq")), seq);
    assert_true(c->n < 64);
    c->seqs[c->n] = seq;
    snprintf(c->types[c->n], sizeof(c->types[0]), "%s", json_string_value(json_object_get(ev, "type")));
    c->n++;
    json_decref(ev);
}

static void test_since_replay_and_loss(void **state)
{
    (void)state;
    struct event_bus *bus = event_bus_new(uv_default_loop(), 4, NULL);
    struct collected c = {0};
    uint64_t lost = 99;

    /* empty bus */
    assert_int_equal(event_bus_since(bus, 0, collect, &c, &lost), 0);
    assert_int_equal(lost, 0);

    for (int i = 0; i < 10; i++) event_publish(bus, "tick", NULL);   /* holds 7..10 */

    memset(&c, 0, sizeof(c));
    assert_int_equal(event_bus_since(bus, 8, collect, &c, &lost), 2);
    assert_int_equal(lost, 0);
    assert_int_equal(c.seqs[0], 9);
    assert_int_equal(c.seqs[1], 10);

    memset(&c, 0, sizeof(c));
    assert_int_equal(event_bus_since(bus, 6, collect, &c, &lost), 4);  /* exactly the oldest: nothing lost */
    assert_int_equal(lost, 0);

    memset(&c, 0, sizeof(c));
    assert_int_equal(event_bus_since(bus, 2, collect, &c, &lost), 4);
    assert_int_equal(lost, 4);                                          /* 3, 4, 5, 6 */
    assert_int_equal(c.seqs[0], 7);
    assert_int_equal(c.seqs[3], 10);

    memset(&c, 0, sizeof(c));
    assert_int_equal(event_bus_since(bus, 0, collect, &c, &lost), 4);
    assert_int_equal(lost, 6);

    memset(&c, 0, sizeof(c));
    assert_int_equal(event_bus_since(bus, 10, collect, &c, NULL), 0);
    assert_int_equal(event_bus_since(bus, 500, collect, &c, &lost), 0);
    assert_int_equal(lost, 0);
    event_bus_free(bus);
}

static void test_subscribers(void **state)
{
    (void)state;
    struct event_bus *bus = event_bus_new(uv_default_loop(), 16, NULL);
    struct collected a = {0}, b = {0};
    assert_int_equal(event_subscribe(bus, collect, &a), 0);
    assert_int_equal(event_subscribe(bus, collect, &b), 0);
    assert_int_equal(event_subscribe(bus, collect, &a), 0);   /* same pair once */
    event_publish(bus, "one", NULL);
    event_publish(bus, "two", fields_user("bob"));
    assert_int_equal(a.n, 2);
    assert_int_equal(b.n, 2);
    assert_string_equal(a.types[1], "two");
    event_unsubscribe(bus, collect, &a);
    event_publish(bus, "three", NULL);
    assert_int_equal(a.n, 2);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.seqs[2], 3);
    event_unsubscribe(bus, collect, &b);
    event_unsubscribe(bus, collect, &b);                       /* not subscribed: no-op */
    event_publish(bus, "four", NULL);
    assert_int_equal(b.n, 3);
    event_bus_free(bus);
}

/* A subscriber that publishes from its callback and another that
 * unsubscribes itself: everybody still sees events in seq order. */
struct reentrant {
    struct event_bus *bus;
    struct collected seen;
    int publish_on_first;
    int unsubscribe_self;
};

static void reentrant_cb(uint64_t seq, const char *json, size_t len, void *arg)
{
    struct reentrant *r = arg;
    collect(seq, json, len, &r->seen);
    if (r->publish_on_first && seq == 1) {
        /* ring of 1: the text of event 1 is evicted while callers may hold it */
        assert_int_equal(event_publish(r->bus, "nested", NULL), 2);
        assert_int_equal(event_publish(r->bus, "nested2", NULL), 3);
    }
    if (r->unsubscribe_self) event_unsubscribe(r->bus, reentrant_cb, r);
}

static void test_reentrant_publish(void **state)
{
    (void)state;
    struct event_bus *bus = event_bus_new(uv_default_loop(), 1, NULL);
    struct reentrant pub = {.bus = bus, .publish_on_first = 1};
    struct reentrant quitter = {.bus = bus, .unsubscribe_self = 1};
    struct reentrant last = {.bus = bus};
    event_subscribe(bus, reentrant_cb, &pub);
    event_subscribe(bus, reentrant_cb, &quitter);
    event_subscribe(bus, reentrant_cb, &last);
    event_publish(bus, "first", NULL);
    assert_int_equal(pub.seen.n, 3);
    assert_int_equal(last.seen.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pub.seen.seqs[i], (uint64_t)i + 1);
        assert_int_equal(last.seen.seqs[i], (uint64_t)i + 1);
    }
    assert_string_equal(last.seen.types[0], "first");
    assert_string_equal(last.seen.types[2], "nested2");
    assert_int_equal(quitter.seen.n, 1);                       /* gone after its first call */
    event_publish(bus, "after", NULL);
    assert_int_equal(quitter.seen.n, 1);
    assert_int_equal(last.seen.n, 4);
    event_bus_free(bus);
}

static void test_bad_webhook_url(void **state)
{
    (void)state;
    assert_null(event_bus_new(uv_default_loop(), 8, "https://example.invalid/hook"));
    assert_null(event_bus_new(uv_default_loop(), 8, "ftp://x/"));
    assert_null(event_bus_new(uv_default_loop(), 8, "http://host:99999/"));
    struct event_bus *bus = event_bus_new(uv_default_loop(), 8, "");
    assert_non_null(bus);
    struct event_webhook_stats st;
    event_bus_webhook_stats(bus, &st);
    assert_int_equal(st.enabled, 0);
    event_bus_free(bus);
}

/* The text after "type":"...": what the fields turned into, copied out
 * (malloc'ed): the bus's text is only valid until the next publish, and
 * nothing of the lookup may outlive this function. */
static char *after_type(struct event_bus *bus, uint64_t seq)
{
    const char *json = NULL;
    size_t len = 0;
    assert_int_equal(event_bus_get(bus, seq, &json, &len), 0);
    assert_non_null(json);
    assert_int_equal(strlen(json), len);
    const char *p = strstr(json, "\"type\":\"t\"");
    assert_non_null(p);
    char *copy = strdup(p + 10);
    assert_non_null(copy);
    return copy;
}

/* A jansson dump of the same event reference: the time is the only part
 * that may differ, and it is compared for shape above. */
static void compare_with_jansson(struct event_bus *bus, const struct event_field *f, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *v = f[i].kind == EVENT_FIELD_STR   ? json_string(f[i].str ? f[i].str : "")
                    : f[i].kind == EVENT_FIELD_INT ? json_integer(f[i].num)
                                                   : json_boolean(f[i].num);
        json_object_set_new(o, f[i].key, v); /* a NULL v (invalid UTF-8) leaves the key out */
    }
    uint64_t a = event_publish(bus, "t", o);
    uint64_t b = event_publish_fields(bus, "t", f, n);
    assert_int_equal(b, a + 1);
    char *ta = after_type(bus, a), *tb = after_type(bus, b);
    assert_string_equal(ta, tb);
    free(ta);
    const char *json;
    size_t len;
    assert_int_equal(event_bus_get(bus, b, &json, &len), 0);
    /* event_format_fields_body: the same text after the {"seq":N, head
     * (a reap's events, written into the stream by cluster.c), the time
     * of the same shape. */
    sbuf_t body;
    sbuf_init(&body);
    assert_int_equal(event_format_fields_body(&body, "t", f, n), 0);
    const char *head_end = strchr(json, ',');
    assert_non_null(head_end);
    size_t hl = (size_t)(head_end + 1 - json);
    assert_int_equal(body.len, len - hl);
    assert_memory_equal(body.data, "\"time\":\"", 8);
    assert_memory_equal(body.data + 8 + 24, "\",\"type\":\"t\"", 12);
    assert_memory_equal(json + hl, body.data, 8 + 4); /* the year */
    const char *bt = strstr(body.data, "\"type\":\"t\"");
    assert_non_null(bt);
    assert_string_equal(bt + 10, tb);
    free(tb);
    sbuf_free(&body);
    json_error_t e;
    json_t *v = json_loads(json, 0, &e);
    assert_non_null(v);
    assert_int_equal(json_integer_value(json_object_get(v, "seq")), b);
    json_decref(v);
}

static void test_fields_match_jansson(void **state)
{
    (void)state;
    struct event_bus *bus = event_bus_new(uv_default_loop(), 64, NULL);
    assert_non_null(bus);
    /* Every control character, the escapes, '/', DEL and multi-byte UTF-8. */
    char ctl[40];
    for (int i = 1; i < 0x20; i++) ctl[i - 1] = (char)i;
    ctl[31] = '"', ctl[32] = '\\', ctl[33] = '/', ctl[34] = 0x7f, ctl[35] = '\0';
    struct event_field f[] = {
        EVENT_STR("user", "alice"),
        EVENT_STR("contact", "<sip:alice@10.0.0.1:5060;transport=tcp>;q=0.5"),
        EVENT_STR("ctl", ctl),
        EVENT_STR("utf8", "\xe4\xb8\xad\xe6\x96\x87 \xc3\xa9 \xf0\x9f\x98\x80"),
        EVENT_STR("empty", NULL),
        EVENT_INT("expires", 3600),
        EVENT_INT("neg", INT64_MIN),
        EVENT_INT("zero", 0),
        EVENT_BOOL("kept", true),
        EVENT_BOOL("no", false),
    };
    compare_with_jansson(bus, f, sizeof(f) / sizeof(f[0]));
    /* Invalid UTF-8 strings are left out, as json_string() refuses them:
     * overlong, surrogate, above U+10FFFF, truncated, stray continuation. */
    const char *bad[] = {"\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "ab\xe4\xb8", "\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct event_field g[] = {EVENT_STR("a", "x"), EVENT_STR("bad", bad[i]), EVENT_INT("n", 1)};
        compare_with_jansson(bus, g, 3);
    }
    struct event_field none[] = {EVENT_STR("only", "\xff")};
    compare_with_jansson(bus, none, 0);
    compare_with_jansson(bus, none, 1);
    /* Reserved keys are ignored: the head's, and node (the cluster
     * stream's writer: an event's own would be a second "node" there). */
    struct event_field res[] = {EVENT_INT("seq", 5), EVENT_STR("type", "forged"), EVENT_STR("x", "y"),
                                EVENT_STR("node", "forged")};
    uint64_t s = event_publish_fields(bus, "t", res, 4);
    char *t = after_type(bus, s);
    assert_string_equal(t, ",\"x\":\"y\"}");
    free(t);
    sbuf_t rb;
    sbuf_init(&rb);
    assert_int_equal(event_format_fields_body(&rb, "t", res, 4), 0);
    const char *rt = strstr(rb.data, "\"type\":\"t\"");
    assert_non_null(rt);
    assert_string_equal(rt + 10, ",\"x\":\"y\"}");
    sbuf_free(&rb);
    json_t *jres = json_pack("{s:s,s:s,s:s}", "x", "y", "node", "forged", "time", "forged");
    s = event_publish(bus, "t", jres);
    t = after_type(bus, s);
    assert_string_equal(t, ",\"x\":\"y\"}");
    free(t);
    /* ... from a copy: the caller's object keeps its members */
    jres = json_pack("{s:s,s:s}", "lost_node", "node-a", "node", "forged");
    json_incref(jres);
    s = event_publish(bus, "t", jres);
    t = after_type(bus, s);
    assert_string_equal(t, ",\"lost_node\":\"node-a\"}");
    free(t);
    assert_int_equal(json_object_size(jres), 2);
    json_decref(jres);
    sbuf_t nb;
    sbuf_init(&nb);
    assert_int_equal(event_format_fields_body(&nb, "", res, 3), -1);
    assert_int_equal(event_format_fields_body(&nb, "\xc0\x80", res, 3), -1);
    assert_int_equal(nb.len, 0);
    sbuf_free(&nb);
    assert_int_equal(event_publish_fields(bus, "", res, 3), 0);
    assert_int_equal(event_publish_fields(bus, "\xc0\x80", res, 3), 0);
    /* A random round trip: arbitrary bytes either match jansson or are left out by both. */
    unsigned x = 12345;
    for (int round = 0; round < 2000; round++) {
        char buf[16];
        size_t n = 1 + round % 15;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (char)((x >> 16) & 0xff);
            if (!buf[i]) buf[i] = 'z';
        }
        buf[n] = '\0';
        struct event_field r[] = {EVENT_STR("r", buf)};
        compare_with_jansson(bus, r, 1);
    }
    event_bus_free(bus);
}

/* An entry of the cluster's stream with body (an event's text after its
 * {"seq":N, head) written by node-b, parsed as a strict reader would: no
 * member twice. */
static json_t *stream_entry(uint64_t seq, const char *body, size_t len)
{
    sbuf_t e;
    sbuf_init(&e);
    assert_int_equal(events_stream_entry_text(&e, seq, "\"node-b\"", body, len), 0);
    json_error_t err;
    json_t *v = json_loadb(e.data, e.len, JSON_REJECT_DUPLICATES, &err);
    if (!v) fail_msg("stream entry %s: %s", e.data, err.text);
    assert_int_equal(json_integer_value(json_object_get(v, "seq")), seq);
    assert_string_equal(json_string_value(json_object_get(v, "node")), "node-b");
    sbuf_free(&e);
    return v;
}

/* A dead node's offline events (registrar/cluster.c): node-b, a survivor,
 * publishes them on its bus and writes them into the stream with its reap
 * script (the body from event_format_fields_body); both give the same
 * bytes but the time, and the entry names the writer (node) and the dead
 * node (lost_node) once each. */
static void test_node_lost_stream_entry(void **state)
{
    (void)state;
    struct event_bus *bus = event_bus_new(uv_default_loop(), 64, NULL);
    assert_non_null(bus);
    for (int gb = 0; gb < 2; gb++) {
        char uri[1024];
        struct event_field f[CLUSTER_LOST_FIELDS];
        const char *type = NULL;
        const char *what = gb ? "34020000001320000001" : "alice";
        size_t n = cluster_node_lost_event(gb, what, "example.com", "node-a", uri, sizeof(uri), f, &type);
        assert_int_equal(n, gb ? 3 : 4);
        assert_string_equal(type, gb ? "gb.device.offline" : "user.offline");
        compare_with_jansson(bus, f, n);

        uint64_t seq = event_publish_fields(bus, type, f, n);
        assert_true(seq > 0);
        const char *json;
        size_t len;
        assert_int_equal(event_bus_get(bus, seq, &json, &len), 0);
        long off = events_stream_body_offset(json, len);
        assert_true(off > 0);
        sbuf_t body;
        sbuf_init(&body);
        assert_int_equal(event_format_fields_body(&body, type, f, n), 0);
        /* "time":"<24>" then the same bytes */
        assert_int_equal(body.len, len - (size_t)off);
        assert_memory_equal(body.data, json + off, 8);
        assert_memory_equal(body.data + 8 + 24, json + off + 8 + 24, body.len - 8 - 24);

        const char *bodies[] = {json + off, body.data};
        size_t lens[] = {len - (size_t)off, body.len};
        for (int k = 0; k < 2; k++) {
            json_t *v = stream_entry(1000 + seq, bodies[k], lens[k]);
            assert_string_equal(json_string_value(json_object_get(v, "type")), type);
            assert_string_equal(json_string_value(json_object_get(v, "reason")), "node-lost");
            assert_string_equal(json_string_value(json_object_get(v, "lost_node")), "node-a");
            if (gb) {
                assert_string_equal(json_string_value(json_object_get(v, "device_id")), what);
                assert_int_equal(json_object_size(v), 7);
            } else {
                assert_string_equal(json_string_value(json_object_get(v, "user")), "alice");
                assert_string_equal(json_string_value(json_object_get(v, "aor")), "sip:alice@example.com");
                assert_int_equal(json_object_size(v), 8);
            }
            json_decref(v);
        }
        sbuf_free(&body);
    }
    /* Whatever a publisher adds, the stream's entry has one "node". */
    struct event_field forged[] = {EVENT_STR("node", "node-a"), EVENT_STR("x", "y")};
    uint64_t seq = event_publish_fields(bus, "t", forged, 2);
    const char *json;
    size_t len;
    assert_int_equal(event_bus_get(bus, seq, &json, &len), 0);
    long off = events_stream_body_offset(json, len);
    assert_true(off > 0);
    json_t *v = stream_entry(seq, json + off, len - (size_t)off);
    assert_string_equal(json_string_value(json_object_get(v, "x")), "y");
    json_decref(v);
    event_bus_free(bus);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_time_type_fields), cmocka_unit_test(test_ring_bounds),
        cmocka_unit_test(test_since_replay_and_loss), cmocka_unit_test(test_subscribers),
        cmocka_unit_test(test_reentrant_publish),     cmocka_unit_test(test_bad_webhook_url),
        cmocka_unit_test(test_fields_match_jansson),  cmocka_unit_test(test_node_lost_stream_entry),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_loop_close(uv_default_loop());
    return rc;
}
