/* test_nack_cache.c — the retransmission cache: what it keeps, what it
 * evicts by sequence slot and by byte budget, the 16-bit wrap, and a long
 * mixed run checked against a model (never stale bytes, the newest always
 * there, the last `slots` packets there while the bytes allow). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "media/nack_cache.h"

/* A packet whose bytes say which sequence number and which copy it is. */
static size_t make_pkt(uint8_t *buf, uint16_t seq, uint8_t tag, size_t len)
{
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(seq + tag + i);
    return len;
}

static void assert_holds(const nack_cache_t *c, uint16_t seq, uint8_t tag, size_t len)
{
    uint8_t want[2048];
    make_pkt(want, seq, tag, len);
    size_t got_len = 0;
    const uint8_t *got = nack_cache_get(c, seq, &got_len);
    assert_non_null(got);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, want, len);
}

static void put(nack_cache_t *c, uint16_t seq, uint8_t tag, size_t len)
{
    uint8_t buf[2048];
    make_pkt(buf, seq, tag, len);
    assert_int_equal(nack_cache_put(c, seq, buf, len), 0);
}

static void test_new(void **state)
{
    (void)state;
    assert_null(nack_cache_new(0, 1000));
    assert_null(nack_cache_new(3, 1000));     /* not a power of two */
    assert_null(nack_cache_new(65536, 1000)); /* more than half the sequence space */
    assert_null(nack_cache_new(16, 0));
    nack_cache_t *c = nack_cache_new(1, 10);
    assert_non_null(c);
    nack_cache_free(c);
    nack_cache_free(NULL);
    c = nack_cache_new(32768, 1 << 20);
    assert_non_null(c);
    nack_cache_free(c);
}

static void test_put_get(void **state)
{
    (void)state;
    nack_cache_t *c = nack_cache_new(16, 4096);
    assert_null(nack_cache_get(c, 0, NULL)); /* empty: nothing, not a zeroed slot */
    uint8_t buf[64];
    make_pkt(buf, 10, 0, 40);
    assert_int_equal(nack_cache_put(c, 10, buf, 40), 0);
    memset(buf, 0, sizeof(buf)); /* the cache holds a copy */
    assert_holds(c, 10, 0, 40);
    assert_null(nack_cache_get(c, 11, NULL));
    assert_null(nack_cache_get(c, 26, NULL)); /* same slot, other number */
    assert_int_equal(nack_cache_count(c), 1);

    /* A new copy of the same number replaces the old one. */
    put(c, 10, 7, 50);
    assert_holds(c, 10, 7, 50);
    assert_int_equal(nack_cache_count(c), 1);

    /* Refused: empty, larger than the whole budget. */
    assert_int_equal(nack_cache_put(c, 1, buf, 0), -EINVAL);
    assert_int_equal(nack_cache_put(c, 1, NULL, 10), -EINVAL);
    uint8_t big[4097] = {0};
    assert_int_equal(nack_cache_put(c, 1, big, sizeof(big)), -EINVAL);
    assert_holds(c, 10, 7, 50);

    nack_cache_clear(c);
    assert_int_equal(nack_cache_count(c), 0);
    assert_null(nack_cache_get(c, 10, NULL));
    put(c, 10, 1, 5);
    assert_holds(c, 10, 1, 5);
    nack_cache_free(c);
}

static void test_slot_eviction(void **state)
{
    (void)state;
    nack_cache_t *c = nack_cache_new(8, 8 * 1500);
    for (uint16_t s = 100; s < 108; s++) put(c, s, 0, 1200);
    for (uint16_t s = 100; s < 108; s++) assert_holds(c, s, 0, 1200);
    assert_int_equal(nack_cache_count(c), 8);
    /* The ninth takes the first one's slot. */
    put(c, 108, 0, 1200);
    assert_null(nack_cache_get(c, 100, NULL));
    for (uint16_t s = 101; s < 109; s++) assert_holds(c, s, 0, 1200);
    assert_int_equal(nack_cache_count(c), 8);
    nack_cache_free(c);
}

static void test_wraparound(void **state)
{
    (void)state;
    nack_cache_t *c = nack_cache_new(16, 16 * 200);
    /* 65530..65535 then 0..9: sixteen numbers across the wrap, all kept. */
    for (uint16_t i = 0; i < 16; i++) put(c, (uint16_t)(65530 + i), 3, 100 + i);
    for (uint16_t i = 0; i < 16; i++) assert_holds(c, (uint16_t)(65530 + i), 3, 100 + i);
    assert_null(nack_cache_get(c, 65529, NULL));
    assert_null(nack_cache_get(c, 10, NULL));
    /* 10 takes 65530's slot; 65531 stays. */
    put(c, 10, 3, 100);
    assert_null(nack_cache_get(c, 65530, NULL));
    assert_holds(c, 65531, 3, 101);
    assert_holds(c, 10, 3, 100);
    /* A slot never answers for a number one whole wrap away. */
    assert_null(nack_cache_get(c, (uint16_t)(65531 + 32768), NULL));
    nack_cache_free(c);
}

static void test_byte_budget(void **state)
{
    (void)state;
    /* Room for three 30-byte copies in 100 bytes: the fourth goes to the
     * start of the ring (the 10-byte tail is skipped) and evicts the first. */
    nack_cache_t *c = nack_cache_new(16, 100);
    put(c, 1, 0, 30);
    put(c, 2, 0, 30);
    put(c, 3, 0, 30);
    assert_int_equal(nack_cache_count(c), 3);
    put(c, 4, 0, 30);
    assert_null(nack_cache_get(c, 1, NULL));
    assert_holds(c, 2, 0, 30);
    assert_holds(c, 3, 0, 30);
    assert_holds(c, 4, 0, 30);
    assert_int_equal(nack_cache_count(c), 3);
    /* A 60-byte copy after 4 (at 30..90) evicts 2 and 3 only. */
    put(c, 5, 0, 60);
    assert_null(nack_cache_get(c, 2, NULL));
    assert_null(nack_cache_get(c, 3, NULL));
    assert_holds(c, 4, 0, 30);
    assert_holds(c, 5, 0, 60);
    /* One copy as large as the budget leaves only itself. */
    put(c, 6, 0, 100);
    assert_int_equal(nack_cache_count(c), 1);
    assert_holds(c, 6, 0, 100);
    assert_null(nack_cache_get(c, 5, NULL));
    /* Replaced copies (orphans) give their bytes back when their turn comes. */
    put(c, 7, 0, 40);
    put(c, 7, 1, 40);
    assert_int_equal(nack_cache_count(c), 1);
    put(c, 8, 0, 20); /* 40 orphaned + 40 live + 20: fits */
    assert_holds(c, 7, 1, 40);
    assert_holds(c, 8, 0, 20);
    put(c, 9, 0, 40); /* wraps: the orphan at 0..40 goes, the live 7 stays */
    assert_holds(c, 7, 1, 40);
    assert_holds(c, 8, 0, 20);
    assert_holds(c, 9, 0, 40);
    assert_int_equal(nack_cache_count(c), 3);
    nack_cache_free(c);
}

/* A long run of mostly increasing numbers with losses, reordering, repeats
 * and sizes from 1 to 1500, against a model of the last copy put per number. */
static void test_model(void **state)
{
    (void)state;
    enum { SLOTS = 64, BYTES = 40000, ROUNDS = 50000 };
    nack_cache_t *c = nack_cache_new(SLOTS, BYTES);
    static uint8_t last_tag[65536];
    static uint16_t last_len[65536];
    static uint8_t ever[65536];
    uint32_t rng = 12345;
    uint16_t seq = 65000; /* crosses the wrap */
    for (int r = 0; r < ROUNDS; r++) {
        rng = rng * 1103515245u + 12345u;
        unsigned roll = (rng >> 16) % 100;
        uint16_t s = seq;
        if (roll < 5) s = (uint16_t)(seq - 1 - (rng >> 8) % 20); /* late or repeated */
        else seq++;
        if (roll >= 95) seq += (uint16_t)(rng >> 24) % 5; /* a loss before the next */
        size_t len = 1 + (rng >> 4) % 1500;
        uint8_t tag = (uint8_t)r;
        put(c, s, tag, len);
        last_tag[s] = tag, last_len[s] = (uint16_t)len, ever[s] = 1;
        /* The newest is always there; what is there is the last copy put. */
        assert_holds(c, s, tag, len);
        rng = rng * 1103515245u + 12345u;
        uint16_t q = (uint16_t)(s - (rng >> 16) % (2 * SLOTS));
        size_t gl;
        const uint8_t *g = nack_cache_get(c, q, &gl);
        if (g) {
            assert_true(ever[q]);
            assert_holds(c, q, last_tag[q], last_len[q]);
        }
        assert_true(nack_cache_count(c) <= SLOTS);
    }
    nack_cache_free(c);

    /* Sequential packets whose bytes all fit: the last SLOTS are all there. */
    c = nack_cache_new(SLOTS, SLOTS * 1500 + 1499);
    for (unsigned i = 0; i < 5000; i++) {
        uint16_t s2 = (uint16_t)(60000 + i);
        put(c, s2, 9, 1 + (i * 7919) % 1500);
        if (i >= SLOTS && i % 97 == 0)
            for (unsigned k = 0; k < SLOTS; k++) {
                unsigned j = i - k;
                assert_holds(c, (uint16_t)(60000 + j), 9, 1 + (j * 7919) % 1500);
            }
    }
    assert_int_equal(nack_cache_count(c), SLOTS);
    nack_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new),         cmocka_unit_test(test_put_get),    cmocka_unit_test(test_slot_eviction),
        cmocka_unit_test(test_wraparound),  cmocka_unit_test(test_byte_budget), cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
