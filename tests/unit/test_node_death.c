/* test_node_death.c — the pure parts of node-death handling and durable
 * writes, without a Redis server (tests/peers/test_node_failure.sh runs
 * them against a real cluster):
 *
 *  - what a reaper reads from Redis: an index or incarnation-list member
 *    (cluster_reap_member) and the reap script's answer (cluster_reap_counts,
 *    fed as RESP bytes through hiredis's own reader);
 *  - durable writes (location_mirror_sync): nothing to wait for when off or
 *    when the AoR has no binding here; with a binding and no Redis (the
 *    cluster is 127.0.0.1:1, where nobody listens) the REGISTER's answer
 *    waits and gets -ETIMEDOUT at durable_timeout_ms on a fake clock, the
 *    sync being retried meanwhile; a sync still waiting when the mirror is
 *    freed gets -ECANCELED, once;
 *  - the cluster client's reply origin outside a callback is 0, 0. */
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
#include "redis/redis_cluster.h"
#include "registrar/cluster.h"
#include "registrar/location.h"
#include "registrar/location_mirror.h"
#include "fake_clock.h"

static void test_reap_member(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(cluster_reap_member("alice", 5, out, sizeof(out)), 5);
    assert_string_equal(out, "alice");
    assert_int_equal(cluster_reap_member("1a24f-565ce7b5", 14, out, sizeof(out)), 14);
    assert_string_equal(out, "1a24f-565ce7b5");
    assert_int_equal(cluster_reap_member("alice@x.org", 11, out, sizeof(out)), 11);
    const char *bad[] = {"", "a b", "a{b", "a}b", "a\tb", "a\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cluster_reap_member(bad[i], strlen(bad[i]), out, sizeof(out)) != -1) fail_msg("took \"%s\"", bad[i]);
    assert_int_equal(cluster_reap_member("a\0b", 3, out, sizeof(out)), -1);     /* a NUL inside */
    assert_int_equal(cluster_reap_member("0123456789abcdef", 16, out, sizeof(out)), -1); /* no room for the NUL */
    assert_int_equal(cluster_reap_member("0123456789abcde", 15, out, sizeof(out)), 15);
}

static redisReply *resp(const char *bytes)
{
    redisReader *rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, bytes, strlen(bytes)), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);
    return reply;
}

static void test_reap_counts(void **state)
{
    (void)state;
    long long removed = -1, left = -1;
    redisReply *r = resp("*2\r\n:2\r\n:0\r\n");
    assert_int_equal(cluster_reap_counts(r, &removed, &left), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(left, 0);
    freeReplyObject(r);
    r = resp("*2\r\n:0\r\n:3\r\n");
    assert_int_equal(cluster_reap_counts(r, &removed, &left), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(left, 3);
    freeReplyObject(r);
    const char *bad[] = {
        "*2\r\n:-1\r\n:0\r\n",          /* negative */
        "*2\r\n:1\r\n:-5\r\n",
        "*3\r\n:1\r\n:0\r\n:0\r\n",     /* three */
        "*1\r\n:1\r\n",                 /* one */
        "*2\r\n$1\r\n1\r\n:0\r\n",      /* a string */
        "*2\r\n:1\r\n*0\r\n",           /* an array inside */
        ":1\r\n",                       /* not an array */
        "-ERR NOSCRIPT\r\n",
        "$-1\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = resp(bad[i]);
        if (cluster_reap_counts(r, &removed, &left) != -1) fail_msg("took %s", bad[i]);
        freeReplyObject(r);
    }
    assert_int_equal(cluster_reap_counts(NULL, &removed, &left), -1);
}

struct answer {
    int calls;
    int status;
};

static void on_sync(void *arg, int status)
{
    struct answer *a = arg;
    a->calls++;
    a->status = status;
}

static void add_binding(struct location *loc, const char *aor, const char *contact)
{
    struct location_binding_in in = {.contact = {contact, strlen(contact)}, .expires_s = 300, .q1000 = 1000,
                                     .call_id = STR_LIT("c1"), .cseq = 1, .transport = LOCATION_TRANSPORT_UDP};
    assert_true(location_update(loc, (str_t){aor, strlen(aor)}, &in, 1, fake_now, NULL, NULL) >= 0);
    const struct location_binding *b[1];
    assert_int_equal(location_lookup(loc, (str_t){aor, strlen(aor)}, b, 1), 1);
}

static void test_durable_sync(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct timer_service ts;
    timer_service_init(&ts);
    ts.clock = fake_clock;
    fake_now = 1000;
    struct location *loc = location_new(&ts, NULL, NULL);
    assert_non_null(loc);
    struct redis_config cfg = {.mirror_bindings = true, .timeout_ms = 500, .max_pending = 100};
    snprintf(cfg.nodes, sizeof(cfg.nodes), "127.0.0.1:1");
    snprintf(cfg.node_id, sizeof(cfg.node_id), "n1");
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "t:");
    int err = 0;

    /* Off: nothing to wait for. */
    struct location_mirror *m = location_mirror_new(&loop, &ts, loc, &cfg, &err);
    assert_non_null(m);
    struct answer a = {0};
    add_binding(loc, "alice", "sip:alice@192.0.2.1:5060");
    assert_int_equal(location_mirror_sync(m, "alice", on_sync, &a), 1);
    location_mirror_free(m);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(a.calls, 0);

    /* On. */
    cfg.durable_writes = true;
    cfg.durable_replicas = 1;
    cfg.durable_timeout_ms = 2000;
    m = location_mirror_new(&loop, &ts, loc, &cfg, &err);
    assert_non_null(m);
    assert_int_equal(location_mirror_sync(m, "bob", on_sync, &a), 1); /* no binding of bob here */
    assert_int_equal(location_mirror_sync(m, "alice", on_sync, &a), 0);
    spin(&loop, &ts);
    assert_int_equal(a.calls, 0);
    /* Each attempt fails at the client's deadline (500 ms), then again
     * 100 ms later: retried until durable_timeout_ms. */
    for (int step = 0; step < 19; step++) {
        fake_now += 100;
        spin(&loop, &ts);
        assert_int_equal(a.calls, 0);
    }
    struct location_mirror_stats st;
    location_mirror_get_stats(m, &st);
    assert_true(st.durable_retries >= 2);
    fake_now = 1000 + 2000;
    spin(&loop, &ts);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ETIMEDOUT);
    location_mirror_get_stats(m, &st);
    assert_int_equal(st.durable_failed, 1);
    assert_int_equal(st.durable_ok, 0);
    fake_now += 5000;
    spin(&loop, &ts);
    assert_int_equal(a.calls, 1); /* once */

    /* Waiting when the mirror goes: -ECANCELED, once. */
    struct answer b = {0};
    assert_int_equal(location_mirror_sync(m, "alice", on_sync, &b), 0);
    spin(&loop, &ts);
    location_mirror_free(m);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, -ECANCELED);

    location_free(loc);
    spin(&loop, &ts);
    assert_int_equal(uv_loop_close(&loop), 0);
    timer_service_free(&ts);
}

static void test_reply_origin_outside(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct timer_service ts;
    timer_service_init(&ts);
    ts.clock = fake_clock;
    struct redis_cluster_config rc = {.seeds = "127.0.0.1:1", .timeout_ms = 500};
    int err = 0;
    struct redis_cluster *c = redis_cluster_new(&loop, &ts, &rc, &err);
    assert_non_null(c);
    uint64_t conn = 7, seq = 7;
    redis_cluster_reply_origin(c, &conn, &seq);
    assert_int_equal(conn, 0);
    assert_int_equal(seq, 0);
    /* A keyless command routed by a key: refused arguments as for any. */
    const char *argv[] = {"WAIT", "1", "100"};
    size_t lens[] = {4, 1, 3};
    assert_int_equal(redis_cluster_command_routed(c, NULL, 0, 3, argv, lens, NULL, NULL), -EINVAL);
    redis_cluster_free(c);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
    timer_service_free(&ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reap_member),
        cmocka_unit_test(test_reap_counts),
        cmocka_unit_test(test_durable_sync),
        cmocka_unit_test(test_reply_origin_outside),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
