/* test_redis.c — the Redis Cluster client's pure parts and its local
 * behaviour without a server (tests/peers/test_redis_cluster.sh runs it
 * against a real cluster).
 *
 *  - the key slot: CRC16 against the specification's check value and
 *    slots that `redis-cli CLUSTER KEYSLOT` printed for the same keys
 *    (Redis 7.0.15), hash tags as the specification's examples read;
 *  - MOVED/ASK texts, good and refused;
 *  - CLUSTER SLOTS answers, fed as RESP bytes to hiredis's own reader;
 *  - the client: seed lists refused, argument caps, a command with no map
 *    answered -ETIMEDOUT at its deadline on a fake clock, -ECANCELED on
 *    free. */
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
#include "redis/redis_objects.h"
#include "redis/redis_reply.h"
#include "redis/redis_slot.h"
#include "fake_clock.h"
#include "fake_redis.h"

static unsigned slot_of(const char *k) { return redis_key_slot(k, strlen(k)); }

static void test_crc16(void **state)
{
    (void)state;
    /* CRC-16/XMODEM check value, as the cluster specification gives it. */
    assert_int_equal(redis_crc16("123456789", 9), 0x31C3);
    assert_int_equal(redis_crc16("", 0), 0);
    assert_int_equal(slot_of("123456789"), 12739);
    assert_int_equal(slot_of("foo"), 12182);
    assert_int_equal(slot_of("bar"), 5061);
    assert_int_equal(slot_of("somekey"), 11058);
}

static void test_hash_tags(void **state)
{
    (void)state;
    /* Keys with one tag share its slot. */
    assert_int_equal(slot_of("{user1000}.following"), 3443);
    assert_int_equal(slot_of("{user1000}.followers"), 3443);
    assert_int_equal(slot_of("user1000"), 3443);
    /* "{}" is no tag: the whole key is hashed. */
    assert_int_equal(slot_of("foo{}{bar}"), 8363);
    /* The tag ends at the first '}' after the first '{': "{bar". */
    assert_int_equal(slot_of("foo{{bar}}zap"), 4015);
    assert_int_equal(slot_of("{bar"), 4015);
    /* Only the first tag counts. */
    assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));
    /* A '{' with no '}' after it: the whole key. */
    assert_int_equal(slot_of("a{b"), redis_crc16("a{b", 3) & 16383);
    assert_int_equal(slot_of("}{"), redis_crc16("}{", 2) & 16383);
    /* Binary keys: the length decides, not a NUL. */
    assert_int_equal(redis_key_slot("{x\0y}z", 6), redis_crc16("x\0y", 3) & 16383);
}

static int redirect(const char *text, struct redis_redirect *rd)
{
    return redis_parse_redirect(text, strlen(text), rd);
}

static void test_redirect_parse(void **state)
{
    (void)state;
    struct redis_redirect rd;
    assert_int_equal(redirect("MOVED 3999 127.0.0.1:6381", &rd), REDIS_REDIRECT_MOVED);
    assert_int_equal(rd.kind, REDIS_REDIRECT_MOVED);
    assert_int_equal(rd.slot, 3999);
    assert_string_equal(rd.host, "127.0.0.1");
    assert_int_equal(rd.port, 6381);

    assert_int_equal(redirect("ASK 16383 10.0.0.2:7002", &rd), REDIS_REDIRECT_ASK);
    assert_int_equal(rd.slot, 16383);
    assert_string_equal(rd.host, "10.0.0.2");
    assert_int_equal(rd.port, 7002);

    /* IPv6, bare (port after the last ':') and bracketed. */
    assert_int_equal(redirect("MOVED 0 ::1:7000", &rd), REDIS_REDIRECT_MOVED);
    assert_string_equal(rd.host, "::1");
    assert_int_equal(rd.port, 7000);
    assert_int_equal(redirect("ASK 1 [fe80::1%eth0]:7001", &rd), REDIS_REDIRECT_ASK);
    assert_string_equal(rd.host, "fe80::1%eth0");
    assert_int_equal(rd.port, 7001);

    /* A node that does not know its address: empty host (the node asked). */
    assert_int_equal(redirect("MOVED 12 :6380", &rd), REDIS_REDIRECT_MOVED);
    assert_string_equal(rd.host, "");
    assert_int_equal(rd.port, 6380);

    /* Other errors are not redirections. */
    assert_int_equal(redirect("WRONGTYPE Operation against a key", &rd), REDIS_REDIRECT_NONE);
    assert_int_equal(rd.kind, REDIS_REDIRECT_NONE);
    assert_int_equal(redirect("CLUSTERDOWN The cluster is down", &rd), REDIS_REDIRECT_NONE);
    assert_int_equal(redirect("MOVEDX 1 a:1", &rd), REDIS_REDIRECT_NONE);
    assert_int_equal(redirect("", &rd), REDIS_REDIRECT_NONE);

    /* Redirections that do not read. */
    const char *bad[] = {
        "MOVED 16384 127.0.0.1:6379", /* slot out of range */
        "MOVED -1 127.0.0.1:6379",
        "MOVED +1 127.0.0.1:6379",
        "MOVED 1 127.0.0.1:0",        /* port out of range */
        "MOVED 1 127.0.0.1:65536",
        "MOVED 1 127.0.0.1:",
        "MOVED 1 127.0.0.1",          /* no port */
        "MOVED 1",                    /* no address */
        "MOVED  127.0.0.1:1",
        "ASK 1 127.0.0.1:6379 extra",
        "ASK 1 bad/host:1",
        "ASK 99999999999 1.2.3.4:5",
        "MOVED 1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rd.kind = REDIS_REDIRECT_MOVED;
        if (redirect(bad[i], &rd) != -EPROTO) fail_msg("accepted: %s", bad[i]);
        assert_int_equal(rd.kind, REDIS_REDIRECT_NONE);
    }
}

/* ---- CLUSTER SLOTS, as RESP bytes through hiredis's reader */

static struct redis_reply_budget budget;

struct ranges {
    int n;
    unsigned first[8], last[8];
    char host[8][REDIS_HOST_MAX];
    int port[8];
    int stop_at; /* return -EINTR at this range (or -1) */
};

static int on_range(void *arg, unsigned first, unsigned last, const char *host, int port)
{
    struct ranges *r = arg;
    if (r->n == r->stop_at) return -EINTR;
    if (r->n >= 8) return -ERANGE;
    r->first[r->n] = first;
    r->last[r->n] = last;
    snprintf(r->host[r->n], REDIS_HOST_MAX, "%s", host);
    r->port[r->n] = port;
    r->n++;
    return 0;
}

/* A master entry: [ip, port, id]. */
#define MASTER "*3\r\n$7\r\n1.2.3.4\r\n:1\r\n$2\r\nid\r\n"

static void test_slots_parse(void **state)
{
    (void)state;
    /* Three masters, the second with a replica, the third announced as "?"
     * and with Redis 7's fourth (metadata) element. */
    const char *good = "*3\r\n"
                       "*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
                       "*4\r\n:5461\r\n:10922\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"
                       "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nid\r\n"
                       "*3\r\n:10923\r\n:16383\r\n*4\r\n$1\r\n?\r\n:7002\r\n$2\r\nid\r\n*0\r\n";
    redisReply *x = fake_resp(good);
    struct ranges r = {.stop_at = -1};
    assert_int_equal(redis_parse_slots(x, on_range, &r), 3);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.first[0], 0);
    assert_int_equal(r.last[0], 5460);
    assert_string_equal(r.host[0], "127.0.0.1");
    assert_int_equal(r.port[0], 7000);
    assert_int_equal(r.first[1], 5461);
    assert_int_equal(r.last[1], 10922);
    assert_int_equal(r.port[1], 7001); /* the master, not the replica */
    assert_int_equal(r.first[2], 10923);
    assert_int_equal(r.last[2], 16383);
    assert_string_equal(r.host[2], "");
    assert_int_equal(r.port[2], 7002);

    /* A callback's refusal stops the walk and comes back. */
    struct ranges stop = {.stop_at = 1};
    assert_int_equal(redis_parse_slots(x, on_range, &stop), -EINTR);
    assert_int_equal(stop.n, 1);
    freeReplyObject(x);

    /* No ranges (a fresh node): 0. */
    x = fake_resp("*0\r\n");
    struct ranges none = {.stop_at = -1};
    assert_int_equal(redis_parse_slots(x, on_range, &none), 0);
    freeReplyObject(x);

    /* Wrong shapes: refused before any range is reported. */
    const char *bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        "$5\r\nhello\r\n",
        /* a good range, then last < first */
        "*2\r\n*3\r\n:0\r\n:1\r\n" MASTER "*3\r\n:9\r\n:8\r\n" MASTER,
        "*1\r\n*3\r\n:0\r\n:16384\r\n" MASTER,  /* past the last slot */
        "*1\r\n*3\r\n:-1\r\n:5\r\n" MASTER,
        "*1\r\n*2\r\n:0\r\n:5\r\n",                         /* no master */
        "*1\r\n*3\r\n$1\r\n0\r\n:5\r\n" MASTER, /* slot as a string */
        "*1\r\n*3\r\n:0\r\n:5\r\n*3\r\n$7\r\n1.2.3.4\r\n$4\r\n7000\r\n$2\r\nid\r\n", /* port string */
        "*1\r\n*3\r\n:0\r\n:5\r\n*3\r\n$7\r\n1.2.3.4\r\n:0\r\n$2\r\nid\r\n",        /* port 0 */
        "*1\r\n*3\r\n:0\r\n:5\r\n*3\r\n$7\r\n1 2.3.4\r\n:1\r\n$2\r\nid\r\n",        /* host */
        "*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n$7\r\n1.2.3.4\r\n",                          /* no port */
        "*1\r\n:5\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        x = fake_resp(bad[i]);
        struct ranges b = {.stop_at = -1};
        if (redis_parse_slots(x, on_range, &b) != -EPROTO) fail_msg("accepted bad[%zu]", i);
        assert_int_equal(b.n, 0);
        freeReplyObject(x);
    }
    assert_int_equal(redis_parse_slots(NULL, on_range, &r), -EPROTO);
}

/* The reader's arrays are capped per reply: a header alone does not
 * allocate past REDIS_REPLY_MAX_ELEMENTS, at one level or over several. */
static int read_status(const char *bytes, size_t len)
{
    redisReader *rd = redisReaderCreate();
    assert_non_null(rd);
    redis_objects_use(rd, &budget);
    assert_int_equal(redisReaderFeed(rd, bytes, len), REDIS_OK);
    void *reply = NULL;
    int rc = redisReaderGetReply(rd, &reply);
    if (reply) freeReplyObject(reply);
    redisReaderFree(rd);
    return rc;
}

static void test_reply_cap(void **state)
{
    (void)state;
    const char *big = "*300000000\r\n";
    assert_int_equal(read_status(big, strlen(big)), REDIS_ERR);
    char at_cap[64];
    snprintf(at_cap, sizeof(at_cap), "*%u\r\n", REDIS_REPLY_MAX_ELEMENTS + 1);
    assert_int_equal(read_status(at_cap, strlen(at_cap)), REDIS_ERR);
    /* Nested: 4 arrays of 300 000 pass one by one, not together (4 x 300 000
     * > 2^20), while 3 fit. */
    const char *nest4 = "*4\r\n*300000\r\n";
    assert_int_equal(read_status(nest4, strlen(nest4)), REDIS_OK); /* incomplete, no error yet */
    char *many = malloc(8 * 1024 * 1024);
    assert_non_null(many);
    size_t n = (size_t)sprintf(many, "*4\r\n");
    for (int a = 0; a < 4; a++) {
        n += (size_t)sprintf(many + n, "*300000\r\n");
        for (int i = 0; i < 300000; i++) {
            memcpy(many + n, ":1\r\n", 4);
            n += 4;
        }
    }
    assert_int_equal(read_status(many, n), REDIS_ERR);
    /* The same with 3 arrays is a good reply; and the budget starts afresh
     * for the next one. */
    n = (size_t)sprintf(many, "*3\r\n");
    for (int a = 0; a < 3; a++) {
        n += (size_t)sprintf(many + n, "*300000\r\n");
        for (int i = 0; i < 300000; i++) {
            memcpy(many + n, ":1\r\n", 4);
            n += 4;
        }
    }
    size_t one = n;
    memcpy(many + n, many, one);
    n += one;
    redisReader *rd = redisReaderCreate();
    redis_objects_use(rd, &budget);
    assert_int_equal(redisReaderFeed(rd, many, n), REDIS_OK);
    for (int k = 0; k < 2; k++) {
        void *reply = NULL;
        assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
        assert_non_null(reply);
        redisReply *r = reply;
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 3);
        assert_int_equal(r->element[2]->elements, 300000);
        assert_int_equal(r->element[2]->element[299999]->integer, 1);
        freeReplyObject(reply);
    }
    redisReaderFree(rd);
    free(many);
}

/* ---- the client with no server */

struct answer {
    int calls, status;
};

static void on_answer(void *arg, int status, const struct redisReply *reply)
{
    struct answer *a = arg;
    a->calls++;
    a->status = status;
    assert_null(reply);
}

static void test_client_refusals(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct timer_service ts;
    fake_loop_init(&loop, &ts);
    int err = 0;
    const char *bad_seeds[] = {"", " , ", "localhost:7000", "127.0.0.1", "127.0.0.1:0",
                               "127.0.0.1:7000,example.org:7001", "1.2.3.4:70000"};
    for (size_t i = 0; i < sizeof(bad_seeds) / sizeof(bad_seeds[0]); i++) {
        struct redis_cluster_config cfg = {.seeds = bad_seeds[i]};
        err = 0;
        if (redis_cluster_new(&loop, &ts, &cfg, &err) != NULL) fail_msg("took %s", bad_seeds[i]);
        assert_int_equal(err, -EINVAL);
    }
    struct redis_cluster_config null_cfg = {.seeds = NULL};
    assert_null(redis_cluster_new(&loop, &ts, &null_cfg, &err));
    assert_int_equal(err, -EINVAL);

    /* Port 1 on loopback: nobody listens (the connect is refused). */
    struct redis_cluster_config cfg = {.seeds = "127.0.0.1:1, [::1]:1", .timeout_ms = 500,
                                       .max_queued = 2};
    struct redis_cluster *c = redis_cluster_new(&loop, &ts, &cfg, &err);
    assert_non_null(c);
    assert_int_equal(err, 0);
    struct redis_cluster_stats st;
    redis_cluster_get_stats(c, &st);
    assert_int_equal(st.nodes, 2);
    assert_int_equal(st.slots_mapped, 0);

    const char *argv[] = {"GET", "k"};
    size_t lens[] = {3, 1};
    struct answer a = {0}, b = {0}, d = {0};
    assert_int_equal(redis_cluster_command(c, 2, 2, argv, lens, on_answer, &a), -EINVAL);
    assert_int_equal(redis_cluster_command(c, -1, 2, argv, lens, on_answer, &a), -EINVAL);
    assert_int_equal(redis_cluster_command(c, 1, 2, argv, lens, NULL, &a), -EINVAL);
    size_t huge[] = {3, REDIS_CLUSTER_MAX_ARG_BYTES + 1};
    assert_int_equal(redis_cluster_command(c, 1, 2, argv, huge, on_answer, &a), -E2BIG);
    const char *many[REDIS_CLUSTER_MAX_ARGS + 1];
    size_t many_len[REDIS_CLUSTER_MAX_ARGS + 1];
    for (int i = 0; i <= REDIS_CLUSTER_MAX_ARGS; i++) {
        many[i] = "x";
        many_len[i] = 1;
    }
    assert_int_equal(redis_cluster_command(c, 1, REDIS_CLUSTER_MAX_ARGS + 1, many, many_len,
                                           on_answer, &a), -E2BIG);

    /* Two accepted (no map yet: they wait), the third over max_queued. */
    fake_now = 1000;
    assert_int_equal(redis_cluster_command(c, 1, 2, argv, lens, on_answer, &a), 0);
    fake_now = 1200;
    assert_int_equal(redis_cluster_command(c, 1, 2, argv, lens, on_answer, &b), 0);
    assert_int_equal(redis_cluster_command(c, 1, 2, argv, lens, on_answer, &d), -EAGAIN);
    assert_int_equal(a.calls + b.calls + d.calls, 0); /* never from inside the call */
    redis_cluster_get_stats(c, &st);
    assert_int_equal(st.queued, 2);

    /* Let the map reads fail for real (connection refused), on the loop. */
    for (int i = 0; i < 50; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        timer_run(&ts, fake_now);
    }
    assert_int_equal(a.calls, 0);
    /* The first command's deadline (1000 + 500) passes, not the second's. */
    fake_now = 1500;
    timer_run(&ts, fake_now);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ETIMEDOUT);
    assert_int_equal(b.calls, 0);
    redis_cluster_get_stats(c, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.refreshes, 0);
    assert_int_equal(st.connects, 0);

    /* Freed while the second waits: -ECANCELED, once. */
    redis_cluster_free(c);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, -ECANCELED);
    assert_int_equal(a.calls, 1);
    uv_run(&loop, UV_RUN_NOWAIT); /* libuv closes the poll handles */
    fake_loop_close(&loop, &ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_redirect_parse),
        cmocka_unit_test(test_slots_parse),
        cmocka_unit_test(test_reply_cap),
        cmocka_unit_test(test_client_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
