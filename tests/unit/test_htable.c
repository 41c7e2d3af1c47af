/* test_htable.c — the intrusive hash table (src/base/htable.h): lookups by
 * hash with collisions, growth keeping every node, removal from inside a
 * walk, one object in two tables, a long run of one hash (every binding of
 * one connection) unlinked from its middle, its ends and across growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/htable.h"
#include "base/timer.h" /* container_of */

struct item {
    struct hnode by_key, by_group;
    int key, group;
};

static uint32_t key_hash(int k) { return htable_hash_u64((uint64_t)k); }

static struct item *find(struct htable *t, int key)
{
    for (struct hnode *n = htable_first(t, key_hash(key)); n; n = htable_next(n)) {
        struct item *it = container_of(n, struct item, by_key);
        if (it->key == key) return it;
    }
    return NULL;
}

static void test_insert_find_remove_through_growth(void **state)
{
    (void)state;
    enum { N = 10000 };
    struct item *items = calloc(N, sizeof(*items));
    struct htable t;
    htable_init(&t);
    for (int i = 0; i < N; i++) {
        items[i].key = i * 7;
        assert_int_equal(htable_insert(&t, &items[i].by_key, key_hash(items[i].key)), 0);
        assert_true(hnode_linked(&items[i].by_key));
    }
    assert_int_equal(htable_count(&t), N);
    assert_true(t.mask + 1 >= N); /* grew at load factor 1 */
    for (int i = 0; i < N; i++) assert_ptr_equal(find(&t, i * 7), &items[i]);
    assert_null(find(&t, 3)); /* not a multiple of 7 */
    for (int i = 0; i < N; i += 2) htable_remove(&t, &items[i].by_key);
    assert_int_equal(htable_count(&t), N / 2);
    for (int i = 0; i < N; i++) {
        if (i % 2) assert_ptr_equal(find(&t, i * 7), &items[i]);
        else assert_null(find(&t, i * 7));
    }
    htable_remove(&t, &items[0].by_key); /* not linked: left alone */
    assert_int_equal(htable_count(&t), N / 2);
    htable_free(&t);
    free(items);
}

/* Equal hashes for different keys: every node is reachable and the walk
 * yields only nodes of that hash. */
static void test_colliding_hashes(void **state)
{
    (void)state;
    struct item it[6] = {{.key = 1}, {.key = 2}, {.key = 3}, {.key = 4}, {.key = 5}, {.key = 6}};
    struct htable t;
    htable_init(&t);
    t.min_buckets = 4;
    for (int i = 0; i < 6; i++) assert_int_equal(htable_insert(&t, &it[i].by_key, i < 4 ? 42u : 42u + 4u), 0);
    int seen = 0;
    for (struct hnode *n = htable_first(&t, 42); n; n = htable_next(n)) {
        assert_int_equal(n->hash, 42);
        seen++;
    }
    assert_int_equal(seen, 4);
    htable_remove(&t, &it[1].by_key);
    seen = 0;
    for (struct hnode *n = htable_first(&t, 42); n; n = htable_next(n)) seen++;
    assert_int_equal(seen, 3);
    assert_null(htable_first(&t, 7));
    htable_free(&t);
}

static int drop_odd(struct hnode *n, void *arg)
{
    struct htable *t = arg;
    struct item *it = container_of(n, struct item, by_group);
    if (it->key % 2) htable_remove(t, n);
    return 0;
}

static int stop_at_five(struct hnode *n, void *arg)
{
    int *visits = arg;
    (*visits)++;
    return container_of(n, struct item, by_key)->key == 5 ? 5 : 0;
}

/* One object in two tables; a walk may remove the node it is given. */
static void test_two_tables_and_removal_in_walk(void **state)
{
    (void)state;
    struct item it[100];
    struct htable by_key, by_group;
    htable_init(&by_key);
    htable_init(&by_group);
    for (int i = 0; i < 100; i++) {
        it[i] = (struct item){.key = i, .group = i % 10};
        assert_int_equal(htable_insert(&by_key, &it[i].by_key, key_hash(i)), 0);
        assert_int_equal(htable_insert(&by_group, &it[i].by_group, (uint32_t)it[i].group), 0);
    }
    assert_int_equal(htable_foreach(&by_group, drop_odd, &by_group), 0);
    assert_int_equal(htable_count(&by_group), 50);
    assert_int_equal(htable_count(&by_key), 100); /* the other table is untouched */
    for (int i = 0; i < 100; i++) assert_int_equal(hnode_linked(&it[i].by_group), i % 2 == 0);
    int visits = 0;
    assert_int_equal(htable_foreach(&by_key, stop_at_five, &visits), 5);
    assert_true(visits >= 1 && visits <= 100);
    htable_free(&by_key);
    htable_free(&by_group);
    assert_null(htable_first(&by_key, key_hash(1))); /* a freed table is empty */
}

/* One hash shared by many nodes (a registrar's bindings of one connection)
 * among others: each removal, wherever the node sits in its chain and
 * whether it was linked before or after a growth, leaves exactly the others
 * reachable and the count right. */
static void test_one_hash_many_nodes(void **state)
{
    (void)state;
    enum { N = 3000, SAME = 7 };
    struct item *it = calloc(N, sizeof(*it));
    assert_non_null(it);
    struct htable t;
    htable_init(&t);
    for (int i = 0; i < N; i++) {
        it[i].key = i;
        it[i].group = i % 3 ? SAME : i; /* two thirds share one hash */
        assert_int_equal(htable_insert(&t, &it[i].by_group, (uint32_t)it[i].group), 0);
    }
    /* middle, first linked, last linked, then every fifth: a fixed order that
     * visits heads, tails and inner nodes of the long chain */
    int order[] = {N / 2 + 1, 1, N - 1, N - 2};
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) htable_remove(&t, &it[order[k]].by_group);
    for (int i = 0; i < N; i += 5) htable_remove(&t, &it[i].by_group);
    htable_remove(&t, &it[1].by_group); /* twice: a no-op */
    int expect = 0, seen = 0;
    for (int i = 0; i < N; i++) {
        bool gone = i % 5 == 0 || i == N / 2 + 1 || i == 1 || i == N - 1 || i == N - 2;
        assert_int_equal(hnode_linked(&it[i].by_group), !gone);
        if (!gone && it[i].group == SAME) expect++;
    }
    for (struct hnode *n = htable_first(&t, SAME); n; n = htable_next(n)) {
        struct item *x = container_of(n, struct item, by_group);
        assert_int_equal(x->group, SAME);
        assert_true(hnode_linked(n));
        seen++;
    }
    assert_int_equal(seen, expect);
    int left = 0;
    for (int i = 0; i < N; i++) left += hnode_linked(&it[i].by_group);
    assert_int_equal(htable_count(&t), left);
    for (int i = 0; i < N; i++) htable_remove(&t, &it[i].by_group);
    assert_int_equal(htable_count(&t), 0);
    assert_null(htable_first(&t, SAME));
    htable_free(&t);
    free(it);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_remove_through_growth),
        cmocka_unit_test(test_colliding_hashes),
        cmocka_unit_test(test_two_tables_and_removal_in_walk),
        cmocka_unit_test(test_one_hash_many_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
