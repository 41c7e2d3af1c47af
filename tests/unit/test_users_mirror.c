/* test_users_mirror.c — the users mirror ([redis] mirror_users) without a
 * Redis server (tests/peers/test_users_nodes.sh runs it against a real
 * cluster): the record's encoding and its defensive decoding, what an
 * HGET answer does to the table (add, replace, delete, refuse; never told
 * back to the observer), the users_max cap, the HSCAN answer's reader on
 * fake replies, and the observer a users_add/users_del of the API fires. */
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
#include "registrar/users.h"
#include "redis/hash_mirror.h"
#include "registrar/users_mirror.h"
#include "fake_clock.h"
#include "fake_redis.h"

#define MD5A "0123456789abcdef0123456789abcdef"
#define SHAA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_record_round_trip(void **state)
{
    (void)state;
    struct users_entry e = {.name = "alice", .realm = "example.com", .created_at = 1234567};
    memcpy(e.ha1_md5, MD5A, 33);
    memcpy(e.ha1_sha256, SHAA, 65);
    char buf[USERS_MIRROR_RECORD_MAX];
    int n = users_record_encode(&e, buf, sizeof(buf));
    assert_true(n > 0);
    assert_null(strstr(buf, "alice")); /* the name is the field, not in the record */
    struct users_record r;
    assert_int_equal(users_record_decode(buf, (size_t)n, &r), 0);
    assert_string_equal(r.realm, "example.com");
    assert_string_equal(r.md5, MD5A);
    assert_string_equal(r.sha256, SHAA);
    assert_int_equal(r.created_at, 1234567);
    /* too small a buffer */
    assert_int_equal(users_record_encode(&e, buf, 20), -ENOSPC);

    /* upper-case hex is lower-cased; one HA1 is enough */
    const char *up = "{\"realm\":\"r\",\"md5\":\"0123456789ABCDEF0123456789ABCDEF\",\"sha256\":\"\",\"created\":0}";
    assert_int_equal(users_record_decode(up, strlen(up), &r), 0);
    assert_string_equal(r.md5, MD5A);
    assert_string_equal(r.sha256, "");
}

static void test_record_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "[]",
        "not json",
        "{\"realm\":\"r\",\"md5\":\"\",\"sha256\":\"\",\"created\":0}",                     /* no HA1 */
        "{\"realm\":\"r\",\"md5\":\"0123\",\"sha256\":\"\",\"created\":0}",                 /* short */
        "{\"realm\":\"r\",\"md5\":\"0123456789abcdef0123456789abcdeg\",\"sha256\":\"\",\"created\":0}", /* not hex */
        "{\"realm\":\"r\",\"md5\":\"" MD5A "\",\"sha256\":\"\",\"created\":-1}",            /* negative time */
        "{\"realm\":\"r\",\"md5\":\"" MD5A "\",\"sha256\":\"\"}",                           /* no time */
        "{\"realm\":1,\"md5\":\"" MD5A "\",\"sha256\":\"\",\"created\":0}",                 /* realm not a string */
        "{\"realm\":\"a\\nb\",\"md5\":\"" MD5A "\",\"sha256\":\"\",\"created\":0}",         /* control character */
        "{\"realm\":\"a\\u0000b\",\"md5\":\"" MD5A "\",\"sha256\":\"\",\"created\":0}",     /* NUL inside */
        "{\"realm\":\"r\",\"realm\":\"s\",\"md5\":\"" MD5A "\",\"sha256\":\"\",\"created\":0}", /* duplicate */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct users_record r;
        if (users_record_decode(bad[i], strlen(bad[i]), &r) == 0) fail_msg("took %s", bad[i]);
    }
    /* over the size cap */
    char big[USERS_MIRROR_RECORD_MAX + 256];
    int n = snprintf(big, sizeof(big), "{\"realm\":\"%0*d\",\"md5\":\"" MD5A "\",\"sha256\":\"\",\"created\":0}",
                     USERS_MIRROR_RECORD_MAX, 0);
    struct users_record r;
    assert_int_equal(users_record_decode(big, (size_t)n, &r), -EINVAL);
}

struct told {
    int count;
    char last[64];
    bool removal;
};

static void observer(void *arg, const char *name, const struct users_entry *e)
{
    struct told *t = arg;
    t->count++;
    snprintf(t->last, sizeof(t->last), "%s", name);
    t->removal = e == NULL;
}

static void test_apply(void **state)
{
    (void)state;
    struct users *u = users_new(NULL);
    assert_non_null(u);
    struct told told = {0};
    users_set_observer(u, observer, &told);

    char rec[256];
    snprintf(rec, sizeof(rec), "{\"realm\":\"example.com\",\"md5\":\"%s\",\"sha256\":\"\",\"created\":5}", MD5A);
    redisReply v = fake_str_reply(rec), nil = {.type = REDIS_REPLY_NIL};
    assert_int_equal(users_mirror_apply(u, "alice", 5, &v, 10), USERS_APPLY_ADDED);
    const struct users_entry *e = users_find(u, str_from_cstr("alice"));
    assert_non_null(e);
    assert_string_equal(e->ha1_md5, MD5A);
    assert_string_equal(e->realm, "example.com");
    assert_int_equal(users_mirror_apply(u, "alice", 5, &v, 10), USERS_APPLY_UNCHANGED);

    /* a new password */
    snprintf(rec, sizeof(rec), "{\"realm\":\"example.com\",\"md5\":\"%s\",\"sha256\":\"\",\"created\":5}",
             "ffffffffffffffffffffffffffffffff");
    v = fake_str_reply(rec);
    assert_int_equal(users_mirror_apply(u, "alice", 5, &v, 10), USERS_APPLY_CHANGED);
    assert_string_equal(users_find(u, str_from_cstr("alice"))->ha1_md5, "ffffffffffffffffffffffffffffffff");

    /* bad names, bad records, other reply types: table unchanged */
    assert_int_equal(users_mirror_apply(u, "a/b", 3, &v, 10), USERS_APPLY_REJECTED);
    assert_int_equal(users_mirror_apply(u, "a\0b", 3, &v, 10), USERS_APPLY_REJECTED);
    assert_int_equal(users_mirror_apply(u, "", 0, &v, 10), USERS_APPLY_REJECTED);
    assert_int_equal(users_mirror_apply(u, "#", 1, &v, 10), USERS_APPLY_REJECTED);
    redisReply junk = fake_str_reply("{\"realm\":\"x\"}"),
               err = {.type = REDIS_REPLY_ERROR, .str = (char *)"WRONGTYPE", .len = 9},
               num = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    assert_int_equal(users_mirror_apply(u, "alice", 5, &junk, 10), USERS_APPLY_REJECTED);
    assert_int_equal(users_mirror_apply(u, "alice", 5, &err, 10), USERS_APPLY_REJECTED);
    assert_int_equal(users_mirror_apply(u, "alice", 5, &num, 10), USERS_APPLY_REJECTED);
    assert_int_equal(users_mirror_apply(u, "alice", 5, NULL, 10), USERS_APPLY_REJECTED);
    assert_non_null(users_find(u, str_from_cstr("alice")));

    /* the cap: a new user beyond it refused, a known one still replaced */
    assert_int_equal(users_mirror_apply(u, "bob", 3, &v, 1), USERS_APPLY_REJECTED);
    assert_int_equal(users_mirror_apply(u, "bob", 3, &v, 2), USERS_APPLY_ADDED);
    assert_int_equal(users_count(u), 2);

    /* nil: deleted; again: nothing to do */
    assert_int_equal(users_mirror_apply(u, "alice", 5, &nil, 10), USERS_APPLY_REMOVED);
    assert_null(users_find(u, str_from_cstr("alice")));
    assert_int_equal(users_mirror_apply(u, "alice", 5, &nil, 10), USERS_APPLY_UNCHANGED);

    /* what came from Redis was never told back */
    assert_int_equal(told.count, 0);
    /* an API change is */
    assert_int_equal(users_add(u, "carol", "example.com", MD5A, NULL, NULL, NULL), 0);
    assert_int_equal(told.count, 1);
    assert_string_equal(told.last, "carol");
    assert_false(told.removal);
    assert_int_equal(users_del(u, "carol", NULL, NULL), 0);
    assert_int_equal(told.count, 2);
    assert_true(told.removal);
    users_free(u);
}

struct pairs {
    int n;
    char names[4][16];
};

static void on_pair(void *arg, const redisReply *f, const redisReply *v)
{
    (void)v;
    struct pairs *p = arg;
    if (p->n < 4) snprintf(p->names[p->n], sizeof(p->names[0]), "%.*s", (int)f->len, f->str);
    p->n++;
}

static void test_scan_reader(void **state)
{
    (void)state;
    redisReply cur = fake_str_reply("1792"), f1 = fake_str_reply("alice"), v1 = fake_str_reply("{}"),
               f2 = fake_str_reply("#"), v2 = fake_str_reply("1");
    redisReply *pe[] = {&f1, &v1, &f2, &v2};
    redisReply pairs = {.type = REDIS_REPLY_ARRAY, .elements = 4, .element = pe};
    redisReply *top_e[] = {&cur, &pairs};
    redisReply top = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = top_e};
    char cursor[32];
    struct pairs p = {0};
    assert_int_equal(hash_mirror_scan_read(&top, cursor, sizeof(cursor), on_pair, &p), 0);
    assert_string_equal(cursor, "1792");
    assert_int_equal(p.n, 2);
    assert_string_equal(p.names[0], "alice");
    assert_string_equal(p.names[1], "#");

    /* shapes refused, nothing called */
    p.n = 0;
    pairs.elements = 3; /* odd */
    assert_int_equal(hash_mirror_scan_read(&top, cursor, sizeof(cursor), on_pair, &p), -EINVAL);
    pairs.elements = 4;
    redisReply numv = {.type = REDIS_REPLY_INTEGER};
    pe[1] = &numv; /* a value not a string */
    assert_int_equal(hash_mirror_scan_read(&top, cursor, sizeof(cursor), on_pair, &p), -EINVAL);
    pe[1] = &v1;
    redisReply badcur = fake_str_reply("12x");
    top_e[0] = &badcur;
    assert_int_equal(hash_mirror_scan_read(&top, cursor, sizeof(cursor), on_pair, &p), -EINVAL);
    redisReply longcur = fake_str_reply("123456789012345678901234567890123456");
    top_e[0] = &longcur;
    assert_int_equal(hash_mirror_scan_read(&top, cursor, sizeof(cursor), on_pair, &p), -EINVAL);
    top_e[0] = &cur;
    top.elements = 1;
    assert_int_equal(hash_mirror_scan_read(&top, cursor, sizeof(cursor), on_pair, &p), -EINVAL);
    redisReply e = {.type = REDIS_REPLY_ERROR, .str = (char *)"CLUSTERDOWN", .len = 11};
    assert_int_equal(hash_mirror_scan_read(&e, cursor, sizeof(cursor), on_pair, &p), -EINVAL);
    assert_int_equal(hash_mirror_scan_read(NULL, cursor, sizeof(cursor), on_pair, &p), -EINVAL);
    assert_int_equal(p.n, 0);
}

static void test_new_and_free(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct timer_service ts;
    fake_loop_init(&loop, &ts);
    struct users *u = users_new(NULL);
    struct redis_config cfg = {.mirror_users = true, .timeout_ms = 500, .max_pending = 10, .users_max = 5};
    int err = 0;
    snprintf(cfg.nodes, sizeof(cfg.nodes), "localhost:7000");
    assert_null(users_mirror_new(&loop, &ts, u, &cfg, &err));
    assert_int_equal(err, -EINVAL);
    snprintf(cfg.nodes, sizeof(cfg.nodes), "127.0.0.1:1");
    struct users_mirror *m = users_mirror_new(&loop, &ts, u, &cfg, &err);
    assert_non_null(m);
    /* an API change with nobody listening: queued, then cancelled at free */
    assert_int_equal(users_add(u, "alice", "r", MD5A, NULL, NULL, NULL), 0);
    struct users_mirror_stats st;
    users_mirror_get_stats(m, &st);
    assert_int_equal(st.users, 1);
    assert_false(st.mirror.subscribed);
    uv_run(&loop, UV_RUN_NOWAIT);
    users_mirror_free(m);
    uv_run(&loop, UV_RUN_NOWAIT);
    /* the observer slot is free again */
    assert_int_equal(users_del(u, "alice", NULL, NULL), 0);
    users_free(u);
    fake_loop_close(&loop, &ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_round_trip), cmocka_unit_test(test_record_refused),
        cmocka_unit_test(test_apply), cmocka_unit_test(test_scan_reader), cmocka_unit_test(test_new_and_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
