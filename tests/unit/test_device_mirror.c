/* test_device_mirror.c — the GB device mirror (src/gb/upper/device_mirror.c)
 * without a Redis server (tests/peers/test_gb_nodes.sh runs it against a
 * real cluster): what a node accepts as a device record read back from
 * Redis, the keepalive write interval, the cap on pending writes (drops
 * counted), writes and lookups that time out (counted, the lookup's
 * callback told -ETIMEDOUT exactly once), a cancelled lookup never called
 * back, and the mirror freed with a lookup waiting (-ECANCELED). The
 * cluster is 127.0.0.1:1, where nobody listens, on a fake clock. */
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
#include <uv.h>

#include "base/timer.h"
#include "gb/upper/device_mirror.h"
#include "fake_clock.h"

static int read_pairs(const char *const *kv, size_t n, struct gb_devmirror_record *out)
{
    size_t lens[32];
    for (size_t i = 0; i < n; i++) lens[i] = strlen(kv[i]);
    return gb_devmirror_record_read(kv, lens, n, out);
}

/* The record as a node writes it reads back whole; unknown fields are
 * skipped; a missing node or online, a bad number, a node id with a space
 * or a control byte, an odd count: refused. */
static void test_record_read(void **state)
{
    (void)state;
    struct gb_devmirror_record r;
    const char *ok[] = {"node", "node-a", "transport", "udp", "remote", "192.0.2.7:5060", "online", "1",
                        "registered", "1800000000000", "keepalive", "1800000001000", "expires", "1800003600000",
                        "later", "whatever"};
    assert_int_equal(read_pairs(ok, 16, &r), 0);
    assert_string_equal(r.node, "node-a");
    assert_string_equal(r.transport, "udp");
    assert_string_equal(r.remote, "192.0.2.7:5060");
    assert_true(r.online);
    assert_int_equal(r.keepalive, 1800000001000);
    assert_int_equal(r.expires, 1800003600000);

    assert_string_equal(r.inc, ""); /* absent */
    /* The incarnation (node death), when a node routing between nodes wrote it. */
    const char *with_inc[] = {"node", "node-a", "online", "1", "inc", "1a24f-565ce7b5"};
    assert_int_equal(read_pairs(with_inc, 6, &r), 0);
    assert_string_equal(r.inc, "1a24f-565ce7b5");
    const char *bad_inc[] = {"node", "node-a", "online", "1", "inc", "a b"};
    assert_int_equal(read_pairs(bad_inc, 6, &r), -1);

    const char *offline[] = {"online", "0", "node", "n"};
    assert_int_equal(read_pairs(offline, 4, &r), 0);
    assert_false(r.online);

    const char *no_node[] = {"online", "1"};
    assert_int_equal(read_pairs(no_node, 2, &r), -1);
    const char *no_online[] = {"node", "n"};
    assert_int_equal(read_pairs(no_online, 2, &r), -1);
    const char *bad_online[] = {"node", "n", "online", "yes"};
    assert_int_equal(read_pairs(bad_online, 4, &r), -1);
    const char *space[] = {"node", "a b", "online", "1"};
    assert_int_equal(read_pairs(space, 4, &r), -1);
    const char *ctl[] = {"node", "a\r\nb", "online", "1"};
    assert_int_equal(read_pairs(ctl, 4, &r), -1);
    const char *neg[] = {"node", "n", "online", "1", "keepalive", "-5"};
    assert_int_equal(read_pairs(neg, 6, &r), -1);
    const char *huge[] = {"node", "n", "online", "1", "expires", "9999999999999999999999"};
    assert_int_equal(read_pairs(huge, 6, &r), -1);
    const char *empty_node[] = {"node", "", "online", "1"};
    assert_int_equal(read_pairs(empty_node, 4, &r), -1);
    assert_int_equal(read_pairs(ok, 3, &r), -1); /* odd */
    assert_int_equal(read_pairs(ok, 0, &r), -1);
    char longnode[200];
    memset(longnode, 'x', sizeof(longnode) - 1);
    longnode[sizeof(longnode) - 1] = '\0';
    const char *too_long[] = {"node", longnode, "online", "1"};
    assert_int_equal(read_pairs(too_long, 4, &r), -1);
    /* A NUL inside a value (Redis strings are binary). */
    const char *nul_kv[] = {"node", "ab\0c", "online", "1"};
    size_t nul_lens[] = {4, 4, 6, 1};
    assert_int_equal(gb_devmirror_record_read(nul_kv, nul_lens, 4, &r), -1);
}

/* The HGETALL answer as hiredis builds it: empty = no key; not an array,
 * an element that is not a string, too many fields: -EPROTO. */
static void test_reply_read(void **state)
{
    (void)state;
    struct gb_devmirror_record r;
    redisReply e[4], *els[4];
    const char *kv[] = {"node", "node-b", "online", "1"};
    for (int i = 0; i < 4; i++) {
        memset(&e[i], 0, sizeof(e[i]));
        e[i].type = REDIS_REPLY_STRING;
        e[i].str = (char *)kv[i];
        e[i].len = strlen(kv[i]);
        els[i] = &e[i];
    }
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 4, .element = els};
    assert_int_equal(gb_devmirror_reply_read(&arr, &r), 0);
    assert_string_equal(r.node, "node-b");
    arr.elements = 0;
    assert_int_equal(gb_devmirror_reply_read(&arr, &r), -ENOENT);
    arr.elements = 4;
    e[1].type = REDIS_REPLY_INTEGER;
    assert_int_equal(gb_devmirror_reply_read(&arr, &r), -EPROTO);
    redisReply err = {.type = REDIS_REPLY_ERROR, .str = (char *)"WRONGTYPE", .len = 9};
    assert_int_equal(gb_devmirror_reply_read(&err, &r), -EPROTO);
    arr.elements = 40;
    assert_int_equal(gb_devmirror_reply_read(&arr, &r), -EPROTO);
}


/* A channel key's GET answer: a 20-digit device id, nil (no key), or
 * anything else (-EPROTO: taken as absent, never used as an id). */
static void test_channel_reply_read(void **state)
{
    (void)state;
    char dev[GB_DEVMIRROR_ID_LEN + 1];
    redisReply r = {.type = REDIS_REPLY_STRING, .str = (char *)"34020000001320000001", .len = 20};
    assert_int_equal(gb_devmirror_channel_reply_read(&r, dev), 0);
    assert_string_equal(dev, "34020000001320000001");
    redisReply nil = {.type = REDIS_REPLY_NIL};
    assert_int_equal(gb_devmirror_channel_reply_read(&nil, dev), -ENOENT);
    assert_string_equal(dev, "");
    r.len = 19; /* too short */
    assert_int_equal(gb_devmirror_channel_reply_read(&r, dev), -EPROTO);
    r.str = (char *)"3402000000132000000x"; /* not digits */
    r.len = 20;
    assert_int_equal(gb_devmirror_channel_reply_read(&r, dev), -EPROTO);
    r.str = (char *)"340200000013200000\r\n"; /* not an id, even of the right length */
    assert_int_equal(gb_devmirror_channel_reply_read(&r, dev), -EPROTO);
    redisReply err = {.type = REDIS_REPLY_ERROR, .str = (char *)"34020000001320000001", .len = 20};
    assert_int_equal(gb_devmirror_channel_reply_read(&err, dev), -EPROTO);
    redisReply num = {.type = REDIS_REPLY_INTEGER, .integer = 3};
    assert_int_equal(gb_devmirror_channel_reply_read(&num, dev), -EPROTO);
    assert_string_equal(dev, "");
}

struct got {
    int calls, status;
    bool rec;
};

struct got_channel {
    int calls, status;
    char device[32];
};

static void on_channel(void *arg, int status, const char *device)
{
    struct got_channel *g = arg;
    g->calls++;
    g->status = status;
    snprintf(g->device, sizeof(g->device), "%s", device ? device : "");
}

static void on_lookup(void *arg, int status, const struct gb_devmirror_record *rec)
{
    struct got *g = arg;
    g->calls++;
    g->status = status;
    g->rec = rec != NULL;
}

static void test_writes_and_lookups(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct timer_service ts;
    fake_loop_init(&loop, &ts);
    fake_now = 1000;
    struct redis_config cfg = {.mirror_gb_devices = true, .timeout_ms = 500, .max_pending = 3,
                               .gb_keepalive_write_s = 60};
    snprintf(cfg.nodes, sizeof(cfg.nodes), "127.0.0.1:1");
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "t:");
    int err = 0;
    assert_null(gb_devmirror_new(&loop, &ts, &cfg, "", &err)); /* a node id is needed */
    assert_int_equal(err, -EINVAL);
    struct gb_devmirror *m = gb_devmirror_new(&loop, &ts, &cfg, "node-a", &err);
    assert_non_null(m);
    assert_string_equal(gb_devmirror_node_id(m), "node-a");

    /* Keepalives: written again only after gb_keepalive_write_s. */
    assert_true(gb_devmirror_keepalive_due(m, 0, 1800000000000));
    assert_false(gb_devmirror_keepalive_due(m, 1800000000000, 1800000059999));
    assert_true(gb_devmirror_keepalive_due(m, 1800000000000, 1800000060000));
    assert_false(gb_devmirror_keepalive_due(NULL, 0, 1));

    /* Online: HSET and PEXPIRE (2 of 3); offline: the script (3 of 3);
     * another online: both dropped. */
    struct gb_devmirror_state st = {.transport = "udp", .remote = "192.0.2.7:5060", .registered = 1800000000000,
                                    .keepalive = 1800000000000, .expires = 1800003600000,
                                    .keepalive_window_ms = 180000};
    gb_devmirror_online(m, "34020000001320000001", &st);
    struct gb_devmirror_stats s;
    gb_devmirror_get_stats(m, &s);
    assert_int_equal(s.pending, 2);
    gb_devmirror_offline(m, "34020000001320000001");
    gb_devmirror_online(m, "34020000001320000001", &st);
    gb_devmirror_get_stats(m, &s);
    assert_int_equal(s.pending, 3);
    assert_int_equal(s.writes_dropped, 2);

    /* Lookups go on their own client: not behind the full write queue. */
    struct got a = {0}, b = {0}, c = {0};
    struct gb_devmirror_lookup *ha, *hb, *hc;
    assert_int_equal(gb_devmirror_lookup(m, "34020000001320000001", on_lookup, &a, &ha), 0);
    assert_int_equal(gb_devmirror_lookup(m, "34020000001320000002", on_lookup, &b, &hb), 0);
    gb_devmirror_lookup_cancel(hb);
    char long_id[100];
    memset(long_id, '1', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(gb_devmirror_lookup(m, long_id, on_lookup, &c, &hc), -EINVAL);
    gb_devmirror_get_stats(m, &s);
    assert_int_equal(s.lookups_pending, 2);
    assert_int_equal(a.calls, 0); /* never from inside the call */

    /* The deadline passes: the writes fail, the lookup is told -ETIMEDOUT
     * once, the cancelled one never. */
    spin(&loop, &ts);
    fake_now = 1000 + 500;
    spin(&loop, &ts);
    gb_devmirror_get_stats(m, &s);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.writes_failed, 3);
    assert_int_equal(s.writes_ok, 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ETIMEDOUT);
    assert_false(a.rec);
    assert_int_equal(b.calls, 0);
    assert_int_equal(c.calls, 0);
    assert_int_equal(s.lookups_pending, 0);
    assert_int_equal(s.lookups_failed, 1);

    /* Channel keys: one SET per channel but the device's own id, under the
     * same cap as the other writes (3: the third channel is dropped). */
    const char *chans[] = {"34020000001310000001", "34020000001320000001", "34020000001310000002",
                           "34020000001310000003", "34020000001310000004"};
    gb_devmirror_channels(m, "34020000001320000001", chans, 5, 0);
    gb_devmirror_get_stats(m, &s);
    assert_int_equal(s.pending, 3);
    assert_int_equal(s.writes_dropped, 3);
    gb_devmirror_channels(NULL, "34020000001320000001", chans, 5, 0); /* no mirror: nothing */

    /* A channel's device: its own callback, the same bounds and deadline. */
    struct got_channel ch = {0}, chc = {0};
    struct gb_devmirror_lookup *hch, *hchc;
    assert_int_equal(gb_devmirror_channel_lookup(m, "34020000001310000001", on_channel, &ch, &hch), 0);
    assert_int_equal(gb_devmirror_channel_lookup(m, "34020000001310000002", on_channel, &chc, &hchc), 0);
    gb_devmirror_lookup_cancel(hchc);
    assert_int_equal(gb_devmirror_channel_lookup(m, long_id, on_channel, &chc, &hchc), -EINVAL);
    gb_devmirror_get_stats(m, &s);
    assert_int_equal(s.lookups_pending, 2);
    spin(&loop, &ts);
    fake_now += 500;
    spin(&loop, &ts);
    assert_int_equal(ch.calls, 1);
    assert_int_equal(ch.status, -ETIMEDOUT);
    assert_string_equal(ch.device, "");
    assert_int_equal(chc.calls, 0);
    gb_devmirror_get_stats(m, &s);
    assert_int_equal(s.lookups_pending, 0);
    assert_int_equal(s.writes_failed, 6);

    /* Freed with lookups waiting: -ECANCELED, inside the free. */
    struct got d = {0};
    struct got_channel dc = {0};
    struct gb_devmirror_lookup *hd, *hdc;
    assert_int_equal(gb_devmirror_lookup(m, "34020000001320000001", on_lookup, &d, &hd), 0);
    assert_int_equal(gb_devmirror_channel_lookup(m, "34020000001310000001", on_channel, &dc, &hdc), 0);
    gb_devmirror_free(m);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, -ECANCELED);
    assert_int_equal(dc.calls, 1);
    assert_int_equal(dc.status, -ECANCELED);
    uv_run(&loop, UV_RUN_NOWAIT);
    fake_loop_close(&loop, &ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_read),
        cmocka_unit_test(test_reply_read),
        cmocka_unit_test(test_channel_reply_read),
        cmocka_unit_test(test_writes_and_lookups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
