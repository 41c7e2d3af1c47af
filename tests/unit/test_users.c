/* test_users.c — the registrar's user table: validation, O(1) lookups over
 * many users, replace/delete, and a round trip through a real SQLite store. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "base/log.h"
#include "registrar/users.h"
#include "store_env.h"

#define MD5_A "0123456789abcdef0123456789abcdef"
#define MD5_B "ffffffffffffffffffffffffffffffff"
#define SHA_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

struct done {
    int calls, status;
};

static void done_cb(void *arg, int status)
{
    struct done *d = arg;
    d->calls++;
    d->status = status;
}

static void test_add_find_replace_delete(void **state)
{
    (void)state;
    struct users *u = users_new(NULL);
    assert_non_null(u);
    struct done d = {0};
    assert_int_equal(users_add(u, "alice", "example.com", MD5_A, NULL, done_cb, &d), 0);
    assert_int_equal(d.calls, 1); /* no store: synchronous */
    const struct users_entry *e = users_find(u, STR_LIT("alice"));
    assert_non_null(e);
    assert_string_equal(e->realm, "example.com");
    assert_string_equal(e->ha1_md5, MD5_A);
    assert_string_equal(e->ha1_sha256, "");
    int64_t created = e->created_at;
    assert_true(created > 0);
    /* byte-exact names */
    assert_null(users_find(u, STR_LIT("Alice")));
    assert_null(users_find(u, STR_LIT("alic")));
    assert_null(users_find(u, STR_NULL));

    /* replace: upper-case hex is normalised, created_at kept */
    assert_int_equal(users_add(u, "alice", "other.org", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", SHA_A, NULL, NULL), 0);
    e = users_find(u, STR_LIT("alice"));
    assert_string_equal(e->ha1_md5, MD5_B);
    assert_string_equal(e->ha1_sha256, SHA_A);
    assert_string_equal(e->realm, "other.org");
    assert_int_equal(e->created_at, created);
    assert_int_equal(users_count(u), 1);

    assert_int_equal(users_del(u, "alice", done_cb, &d), 0);
    assert_int_equal(d.calls, 2);
    assert_null(users_find(u, STR_LIT("alice")));
    assert_int_equal(users_del(u, "alice", done_cb, &d), -ENOENT);
    assert_int_equal(d.calls, 2);
    assert_int_equal(users_count(u), 0);
    users_free(u);
}

static void test_refuses_bad_input(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR);
    struct users *u = users_new(NULL);
    struct done d = {0};
    assert_int_equal(users_add(u, "", "r", MD5_A, NULL, done_cb, &d), -EINVAL);
    assert_int_equal(users_add(u, NULL, "r", MD5_A, NULL, done_cb, &d), -EINVAL);
    assert_int_equal(users_add(u, "bob", "r", NULL, NULL, done_cb, &d), -EINVAL);   /* no HA1 at all */
    assert_int_equal(users_add(u, "bob", "r", "0123", NULL, done_cb, &d), -EINVAL); /* short */
    assert_int_equal(users_add(u, "bob", "r", MD5_A "0", NULL, done_cb, &d), -EINVAL);
    assert_int_equal(users_add(u, "bob", "r", "0123456789abcdef0123456789abcdeg", NULL, done_cb, &d), -EINVAL);
    assert_int_equal(users_add(u, "bob", "r", NULL, MD5_A, done_cb, &d), -EINVAL); /* md5 length as sha */
    assert_int_equal(users_add(u, "bo\nb", "r", MD5_A, NULL, done_cb, &d), -EINVAL);
    assert_int_equal(users_add(u, "bob", "r\r", MD5_A, NULL, done_cb, &d), -EINVAL);
    char big[USERS_MAX_NAME + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(users_add(u, big, "r", MD5_A, NULL, done_cb, &d), -EINVAL);
    big[USERS_MAX_NAME] = '\0';
    assert_int_equal(users_add(u, big, "r", MD5_A, NULL, done_cb, &d), 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(users_count(u), 1);
    users_free(u);
    log_set_level(LOG_INFO);
}

static int count_cb(void *arg, const struct users_entry *e)
{
    (void)e;
    (*(int *)arg)++;
    return 0;
}

static void test_many_users(void **state)
{
    (void)state;
    struct users *u = users_new(NULL);
    enum { N = 50000 };
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        assert_int_equal(users_add(u, name, "r", MD5_A, NULL, NULL, NULL), 0);
    }
    assert_int_equal(users_count(u), N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "user%d", i);
        const struct users_entry *e = users_find(u, str_from_cstr(name));
        assert_non_null(e);
        assert_string_equal(e->name, name);
    }
    for (int i = 0; i < N; i += 2) {
        snprintf(name, sizeof(name), "user%d", i);
        assert_int_equal(users_del(u, name, NULL, NULL), 0);
    }
    int n = 0;
    assert_int_equal(users_foreach(u, count_cb, &n), 0);
    assert_int_equal(n, N / 2);
    assert_null(users_find(u, STR_LIT("user0")));
    assert_non_null(users_find(u, STR_LIT("user1")));
    users_free(u);
}

static void test_store_round_trip(void **state)
{
    (void)state;
    struct store_env env;
    store_env_open(&env, "users");
    struct store *st = store_env_store(&env);
    uv_loop_t *loop = &env.loop;

    struct users *u = users_new(st);
    struct done d = {0};
    assert_int_equal(users_add(u, "alice", "example.com", MD5_A, SHA_A, done_cb, &d), 0);
    assert_int_equal(users_add(u, "bob", "example.com", MD5_B, NULL, done_cb, &d), 0);
    assert_int_equal(users_add(u, "carol", "example.com", MD5_B, NULL, done_cb, &d), 0);
    assert_int_equal(d.calls, 0); /* only once committed */
    assert_int_equal(users_del(u, "carol", done_cb, &d), 0);
    while (d.calls < 4) uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(d.status, 0);
    int64_t created = users_find(u, STR_LIT("alice"))->created_at;
    users_free(u);
    store_close(st);

    char err[256];
    st = store_open(loop, env.path, err, sizeof(err));
    assert_non_null(st);
    u = users_new(st);
    assert_int_equal(users_load(u, st), 2);
    const struct users_entry *e = users_find(u, STR_LIT("alice"));
    assert_non_null(e);
    assert_string_equal(e->ha1_md5, MD5_A);
    assert_string_equal(e->ha1_sha256, SHA_A);
    assert_string_equal(e->realm, "example.com");
    assert_int_equal(e->created_at, created);
    assert_non_null(users_find(u, STR_LIT("bob")));
    assert_null(users_find(u, STR_LIT("carol")));
    users_free(u);
    store_close(st);
    store_env_close(&env);
}

/* Reload: the database changed behind the table's back (here through a
 * second table on the same store, as an operator's sqlite3 would): the table
 * becomes exactly the stored rows and says what changed. */
static void test_reload_from_the_store(void **state)
{
    (void)state;
    struct store_env env;
    store_env_open(&env, "users");
    struct store *st = store_env_store(&env);
    uv_loop_t *loop = &env.loop;
    struct users *u = users_new(st), *operator = users_new(st);
    struct done d = {0};
    assert_int_equal(users_add(u, "alice", "example.com", MD5_A, NULL, done_cb, &d), 0);
    assert_int_equal(users_add(u, "bob", "example.com", MD5_A, NULL, done_cb, &d), 0);
    assert_int_equal(users_add(u, "erin", "example.com", MD5_A, NULL, done_cb, &d), 0);
    while (d.calls < 3) uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(users_load(operator, st), 3);
    assert_int_equal(users_add(operator, "dave", "example.com", MD5_B, NULL, done_cb, &d), 0);
    assert_int_equal(users_add(operator, "bob", "example.com", MD5_B, NULL, done_cb, &d), 0);
    assert_int_equal(users_del(operator, "alice", done_cb, &d), 0);
    while (d.calls < 6) uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(d.status, 0);

    struct users_reload_result r;
    assert_int_equal(users_reload(u, st, &r), 0);
    assert_int_equal(r.loaded, 3);
    assert_int_equal(r.added, 1);
    assert_int_equal(r.changed, 1);
    assert_int_equal(r.removed, 1);
    assert_int_equal(users_count(u), 3);
    assert_null(users_find(u, STR_LIT("alice")));
    assert_string_equal(users_find(u, STR_LIT("bob"))->ha1_md5, MD5_B);
    assert_string_equal(users_find(u, STR_LIT("dave"))->ha1_md5, MD5_B);
    assert_string_equal(users_find(u, STR_LIT("erin"))->ha1_md5, MD5_A);
    /* nothing changed since: all counted as kept */
    assert_int_equal(users_reload(u, st, &r), 0);
    assert_int_equal(r.added + r.changed + r.removed, 0);
    assert_int_equal(r.loaded, 3);

    users_free(operator);
    users_free(u);
    store_close(st);
    store_env_close(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_replace_delete),
        cmocka_unit_test(test_refuses_bad_input),
        cmocka_unit_test(test_many_users),
        cmocka_unit_test(test_store_round_trip),
        cmocka_unit_test(test_reload_from_the_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
