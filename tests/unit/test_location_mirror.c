/* test_location_mirror.c — the binding mirror's local behaviour without a
 * Redis server (tests/peers/test_redis_location.sh runs it against a real
 * cluster): node lists refused, the node id defaulting to the host name, the
 * cap on pending writes (drops counted, never sent), writes that time out
 * counted as failed, and room again once they are answered. The cluster is
 * 127.0.0.1:1, where nobody listens: every command waits for a map until its
 * deadline on a fake clock. The location is a real one, empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <errno.h>
#include <uv.h>

#include "base/timer.h"
#include "registrar/location.h"
#include "registrar/location_mirror.h"
#include "fake_clock.h"

static void test_refused_config(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct timer_service ts;
    fake_loop_init(&loop, &ts);
    struct location *loc = location_new(&ts, NULL, NULL);
    assert_non_null(loc);
    struct redis_config cfg = {.mirror_bindings = true, .timeout_ms = 500, .max_pending = 10};
    const char *bad[] = {"localhost:7000", "127.0.0.1", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cfg.nodes, sizeof(cfg.nodes), "%s", bad[i]);
        int err = 0;
        if (location_mirror_new(&loop, &ts, loc, &cfg, &err)) fail_msg("took %s", bad[i]);
        assert_int_equal(err, -EINVAL);
    }

    /* No node_id: the host name. */
    snprintf(cfg.nodes, sizeof(cfg.nodes), "127.0.0.1:1");
    int err = 0;
    struct location_mirror *m = location_mirror_new(&loop, &ts, loc, &cfg, &err);
    assert_non_null(m);
    char host[256] = "";
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    assert_string_equal(location_mirror_node_id(m), host);
    location_mirror_free(m);
    uv_run(&loop, UV_RUN_NOWAIT);
    location_free(loc);
    fake_loop_close(&loop, &ts);
}

static void test_cap_and_failures(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct timer_service ts;
    fake_loop_init(&loop, &ts);
    fake_now = 1000;
    struct location *loc = location_new(&ts, NULL, NULL);
    assert_non_null(loc);
    struct redis_config cfg = {.mirror_bindings = true, .timeout_ms = 500, .max_pending = 3};
    snprintf(cfg.nodes, sizeof(cfg.nodes), "127.0.0.1:1");
    snprintf(cfg.node_id, sizeof(cfg.node_id), "n1");
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "t:");
    int err = 0;
    struct location_mirror *m = location_mirror_new(&loop, &ts, loc, &cfg, &err);
    assert_non_null(m);
    assert_string_equal(location_mirror_node_id(m), "n1");
    struct location_callbacks cb;
    location_mirror_callbacks(m, &cb);
    assert_non_null(cb.binding_added);
    assert_non_null(cb.binding_refreshed);
    assert_non_null(cb.binding_removed);
    spin(&loop, &ts); /* the start-up resync: nothing to write */

    struct location_binding b = {.aor = "alice", .contact = "sip:alice@192.0.2.1:5060", .call_id = "c1",
                                 .remote = "192.0.2.1:5060", .path = "", .user_agent = "", .instance = "",
                                 .expires_wall_ms = 1800000000000, .transport = LOCATION_TRANSPORT_UDP,
                                 .q1000 = 1000};
    struct location_mirror_stats st;
    /* Added: HSET and PEXPIREAT, both waiting. */
    cb.binding_added(cb.arg, &b);
    location_mirror_get_stats(m, &st);
    assert_int_equal(st.pending, 2);
    assert_int_equal(st.writes_dropped, 0);
    /* Refreshed: the HSET fits (3 of 3), the PEXPIREAT is dropped. */
    cb.binding_refreshed(cb.arg, &b);
    location_mirror_get_stats(m, &st);
    assert_int_equal(st.pending, 3);
    assert_int_equal(st.writes_dropped, 1);
    /* Removed (the location has no other binding of alice): HDEL, dropped. */
    cb.binding_removed(cb.arg, &b, LOCATION_REMOVED_UNREGISTER);
    location_mirror_get_stats(m, &st);
    assert_int_equal(st.pending, 3);
    assert_int_equal(st.writes_dropped, 2);
    assert_int_equal(st.writes_ok + st.writes_failed, 0);

    /* The connects are refused; the deadline passes: three failures. */
    spin(&loop, &ts);
    fake_now = 1000 + 500;
    spin(&loop, &ts);
    location_mirror_get_stats(m, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.writes_failed, 3);
    assert_int_equal(st.writes_ok, 0);
    assert_int_equal(st.resyncs, 0); /* only an answered write starts one */

    /* Room again. */
    cb.binding_added(cb.arg, &b);
    location_mirror_get_stats(m, &st);
    assert_int_equal(st.pending, 2);
    assert_int_equal(st.writes_dropped, 2);

    location_mirror_free(m); /* the two waiting ones are cancelled */
    uv_run(&loop, UV_RUN_NOWAIT);
    location_free(loc);
    fake_loop_close(&loop, &ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_config),
        cmocka_unit_test(test_cap_and_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
