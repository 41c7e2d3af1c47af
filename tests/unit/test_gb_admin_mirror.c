/* test_gb_admin_mirror.c — GB devices' administrative records shared
 * through Redis ([redis] mirror_gb_admin, gb/upper/admin_mirror.h): the
 * record's encoding, what a node refuses to read from Redis, and the
 * engine's (redis/hash_mirror.h) refusals of a bad setup. The sharing
 * itself, between real nodes and a real Redis Cluster, is
 * tests/peers/test_gb_nodes.sh (section 11). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <uv.h>

#include "base/timer.h"
#include "gb/upper/admin_mirror.h"
#include "redis/hash_mirror.h"
#include "fake_clock.h"

static int decode(const char *s, struct gb_admin_record *r) { return gb_admin_record_decode(s, strlen(s), r); }

static void test_round_trip(void **state)
{
    (void)state;
    struct gb_admin_record in = {.password = "s3cr\"et\\", .charset = GB_CHARSET_GB18030, .auth = false,
                                 .allow = true, .subscribe = GB_SUBSCRIBE_CATALOG | GB_SUBSCRIBE_POSITION};
    char buf[GB_ADMIN_RECORD_MAX];
    int n = gb_admin_record_encode(&in, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    struct gb_admin_record out;
    assert_int_equal(gb_admin_record_decode(buf, (size_t)n, &out), 0);
    assert_string_equal(out.password, in.password);
    assert_int_equal(out.charset, GB_CHARSET_GB18030);
    assert_false(out.auth);
    assert_true(out.allow);
    assert_int_equal(out.subscribe, 5);
    /* no password of its own, [gb] subscribe followed */
    struct gb_admin_record dflt = {.charset = GB_CHARSET_GB2312, .auth = true, .allow = true, .subscribe = -1};
    n = gb_admin_record_encode(&dflt, buf, sizeof(buf));
    assert_int_equal(gb_admin_record_decode(buf, (size_t)n, &out), 0);
    assert_string_equal(out.password, "");
    assert_int_equal(out.subscribe, -1);
    assert_true(out.auth);
    /* the longest password fits a record */
    memset(in.password, 'x', GB_ADMIN_PASSWORD_MAX);
    in.password[GB_ADMIN_PASSWORD_MAX] = '\0';
    n = gb_admin_record_encode(&in, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(gb_admin_record_decode(buf, (size_t)n, &out), 0);
    assert_int_equal(strlen(out.password), GB_ADMIN_PASSWORD_MAX);
    /* too small a buffer */
    assert_int_equal(gb_admin_record_encode(&dflt, buf, 16), -ENOSPC);
    /* members a newer node adds are ignored; charset names as the API takes them */
    assert_int_equal(decode("{\"password\":\"p\",\"charset\":\"utf8\",\"auth\":true,\"allow\":false,"
                            "\"subscribe\":7,\"at\":123}",
                            &out),
                     0);
    assert_int_equal(out.charset, GB_CHARSET_UTF8);
    assert_false(out.allow);
    assert_int_equal(out.subscribe, 7);
}

static void test_refused(void **state)
{
    (void)state;
    struct gb_admin_record r;
    const char *bad[] = {
        "",
        "[]",
        "null",
        "{",
        "{}",
        "\"x\"",
        /* a member missing, or of another type */
        "{\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":-1}",
        "{\"password\":\"\",\"auth\":true,\"allow\":true,\"subscribe\":-1}",
        "{\"password\":\"\",\"charset\":\"GB2312\",\"allow\":true,\"subscribe\":-1}",
        "{\"password\":\"\",\"charset\":\"GB2312\",\"auth\":true,\"subscribe\":-1}",
        "{\"password\":\"\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":true}",
        "{\"password\":1,\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":-1}",
        "{\"password\":\"\",\"charset\":\"GB2312\",\"auth\":1,\"allow\":true,\"subscribe\":-1}",
        "{\"password\":\"\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":\"yes\",\"subscribe\":-1}",
        "{\"password\":\"\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":1.5}",
        /* values out of range */
        "{\"password\":\"\",\"charset\":\"latin1\",\"auth\":true,\"allow\":true,\"subscribe\":-1}",
        "{\"password\":\"\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":8}",
        "{\"password\":\"\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":-2}",
        "{\"password\":\"\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":99999999999}",
        /* a password that would break the digest or the store */
        "{\"password\":\"a\\r\\nb\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":-1}",
        "{\"password\":\"a\\u0000b\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":-1}",
        "{\"password\":\"\",\"charset\":\"GB\\u00002312\",\"auth\":true,\"allow\":true,\"subscribe\":-1}",
        /* a member twice */
        "{\"password\":\"a\",\"password\":\"b\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":-1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&r, 0x5a, sizeof(r));
        if (decode(bad[i], &r) != -EINVAL) fail_msg("accepted: %s", bad[i]);
        assert_int_equal(r.password[0], 0); /* cleared */
    }
    /* a password over the cap */
    char big[GB_ADMIN_RECORD_MAX + 64];
    char pw[GB_ADMIN_PASSWORD_MAX + 2];
    memset(pw, 'x', sizeof(pw) - 1);
    pw[sizeof(pw) - 1] = '\0';
    snprintf(big, sizeof(big), "{\"password\":\"%s\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":-1}",
             pw);
    assert_int_equal(decode(big, &r), -EINVAL);
    /* a record over GB_ADMIN_RECORD_MAX, however well-formed */
    static const char rec[] = "{\"password\":\"\",\"charset\":\"GB2312\",\"auth\":true,\"allow\":true,\"subscribe\":-1}";
    memset(big, ' ', sizeof(big));
    memcpy(big + sizeof(big) - sizeof(rec), rec, sizeof(rec)); /* leading blanks: still JSON */
    assert_int_equal(gb_admin_record_decode(big + sizeof(big) - sizeof(rec), sizeof(rec) - 1, &r), 0);
    assert_int_equal(gb_admin_record_decode(big, sizeof(big) - 1, &r), -EINVAL);
    assert_int_equal(gb_admin_record_decode(NULL, 5, &r), -EINVAL);
}

static enum hash_mirror_result nop_apply(void *arg, const char *name, const char *value, size_t len)
{
    (void)arg, (void)name, (void)value, (void)len;
    return HASH_MIRROR_UNCHANGED;
}
static bool nop_name_ok(const char *s, size_t len) { return s && len; }
static int nop_foreach(void *arg, int (*cb)(void *cbarg, const char *name), void *cbarg)
{
    (void)arg, (void)cb, (void)cbarg;
    return 0;
}
static int nop_encode(void *arg, const char *name, char *out, size_t cap)
{
    (void)arg, (void)name, (void)out, (void)cap;
    return -ENOENT;
}

/* The engine: a setup without its key, channel, an operation or a usable
 * seed is refused; a good one starts and frees with a change queued. */
static void test_engine_setup(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct timer_service ts;
    fake_loop_init(&loop, &ts);
    struct hash_mirror_ops ops = {.name_ok = nop_name_ok, .apply = nop_apply, .foreach = nop_foreach,
                                  .encode = nop_encode};
    struct hash_mirror_config hc = {.key = "t:h", .channel = "t:h-changes", .seeds = "127.0.0.1:1"};
    int err = 0;
    struct hash_mirror_config no_key = hc;
    no_key.key = "";
    assert_null(hash_mirror_new(&loop, &ts, &no_key, &ops, &err));
    assert_int_equal(err, -EINVAL);
    struct hash_mirror_config no_chan = hc;
    no_chan.channel = NULL;
    assert_null(hash_mirror_new(&loop, &ts, &no_chan, &ops, &err));
    struct hash_mirror_ops no_apply = ops;
    no_apply.apply = NULL;
    err = 0;
    assert_null(hash_mirror_new(&loop, &ts, &hc, &no_apply, &err));
    assert_int_equal(err, -EINVAL);
    struct hash_mirror_config bad_seed = hc;
    bad_seed.seeds = "localhost:7000";
    err = 0;
    assert_null(hash_mirror_new(&loop, &ts, &bad_seed, &ops, &err));
    assert_int_equal(err, -EINVAL);
    struct hash_mirror *m = hash_mirror_new(&loop, &ts, &hc, &ops, &err);
    assert_non_null(m);
    hash_mirror_changed(m, "34020000001320000001", "{}", 2);
    hash_mirror_changed(m, "34020000001320000001", NULL, 0);
    struct hash_mirror_stats st;
    hash_mirror_get_stats(m, &st);
    assert_false(st.subscribed);
    assert_int_equal(st.loads, 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    hash_mirror_free(m);
    hash_mirror_free(NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    fake_loop_close(&loop, &ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_engine_setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
