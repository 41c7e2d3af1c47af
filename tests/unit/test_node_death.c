/* test_node_death.c — the pure parts of node-death handling and durable
 * writes, without a Redis server (tests/peers/test_node_failure.sh runs
 * them against a real cluster):
 *
 *  - what a reaper reads from Redis: an index or incarnation-list member
 *    (cluster_reap_member) and the reap script's answer (cluster_reap_counts,
 *    fed as RESP bytes through hiredis's own reader);
 *  - a dead node's GB devices: the device script's answer
 *    (cluster_gb_reap_verdict), the walk over the device index
 *    (cluster_gb_walk_*: SSCAN answers' shapes, unusable members skipped,
 *    at most CLUSTER_GB_WINDOW scripts in flight even when one answer is
 *    bigger, a claimer dying mid-way and its successor walking again: one
 *    offline per device at most, none for a device re-registered on a live
 *    node or already offline);
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
#include "fake_redis.h"

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

static void test_reap_counts(void **state)
{
    (void)state;
    long long removed = -1, left = -1;
    redisReply *r = fake_resp("*2\r\n:2\r\n:0\r\n");
    assert_int_equal(cluster_reap_counts(r, &removed, &left), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(left, 0);
    freeReplyObject(r);
    r = fake_resp("*2\r\n:0\r\n:3\r\n");
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
        r = fake_resp(bad[i]);
        if (cluster_reap_counts(r, &removed, &left) != -1) fail_msg("took %s", bad[i]);
        freeReplyObject(r);
    }
    assert_int_equal(cluster_reap_counts(NULL, &removed, &left), -1);
}

/* ---- a dead node's GB devices ---- */

static void test_gb_verdict(void **state)
{
    (void)state;
    const char *good[] = {":0\r\n", ":1\r\n", ":2\r\n"};
    for (int i = 0; i < 3; i++) {
        redisReply *r = fake_resp(good[i]);
        assert_int_equal(cluster_gb_reap_verdict(r), i);
        freeReplyObject(r);
    }
    const char *bad[] = {":3\r\n", ":-1\r\n", "$1\r\n1\r\n", "*1\r\n:1\r\n", "-ERR x\r\n", "$-1\r\n", "*-1\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *r = fake_resp(bad[i]);
        if (cluster_gb_reap_verdict(r) != -1) fail_msg("took %s", bad[i]);
        freeReplyObject(r);
    }
    assert_int_equal(cluster_gb_reap_verdict(NULL), -1);
}

/* An SSCAN answer in RESP: cursor, then the members. */
static redisReply *sscan_answer(const char *cursor, const char *const *ids, size_t n)
{
    size_t cap = 64 + n * 48;
    char *b = malloc(cap);
    assert_non_null(b);
    int k = snprintf(b, cap, "*2\r\n$%zu\r\n%s\r\n*%zu\r\n", strlen(cursor), cursor, n);
    for (size_t i = 0; i < n; i++) k += snprintf(b + k, cap - (size_t)k, "$%zu\r\n%s\r\n", strlen(ids[i]), ids[i]);
    redisReply *r = fake_resp(b);
    free(b);
    return r;
}

static void test_gb_walk_shapes(void **state)
{
    (void)state;
    struct cluster_gb_walk w;
    memset(&w, 0, sizeof(w));
    cluster_gb_walk_reset(&w);
    assert_string_equal(w.cursor, "0");
    assert_true(cluster_gb_walk_batch_done(&w));
    assert_null(cluster_gb_walk_next(&w));
    const char *bad[] = {
        "*2\r\n$1\r\n0\r\n$1\r\nx\r\n",         /* members not an array */
        "*1\r\n$1\r\n0\r\n",                    /* no members */
        "*3\r\n$1\r\n0\r\n*0\r\n*0\r\n",        /* three */
        "*2\r\n:0\r\n*0\r\n",                   /* an integer cursor */
        "*2\r\n$2\r\n-1\r\n*0\r\n",             /* a cursor that is no number */
        "*2\r\n$0\r\n\r\n*0\r\n",               /* an empty cursor */
        "*2\r\n$40\r\n1234567890123456789012345678901234567890\r\n*0\r\n", /* too long */
        "-MOVED 1 127.0.0.1:1\r\n", ":1\r\n", "$-1\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redisReply *r = fake_resp(bad[i]);
        if (cluster_gb_walk_scan(&w, r) != -1) fail_msg("took %s", bad[i]);
        freeReplyObject(r);
    }
    assert_int_equal(cluster_gb_walk_scan(&w, NULL), -1);
    /* Unusable members (a brace, a space, empty, too long, not a string)
     * are skipped and counted; the rest are handed out in order. */
    redisReply *r = fake_resp("*2\r\n$2\r\n17\r\n*6\r\n$20\r\n34020000001320000001\r\n$3\r\na{b\r\n$3\r\na b\r\n"
                         "$0\r\n\r\n:5\r\n$70\r\n"
                         "3402000000132000000134020000001320000001340200000013200000013402000000\r\n");
    assert_int_equal(cluster_gb_walk_scan(&w, r), 0);
    freeReplyObject(r);
    assert_string_equal(w.cursor, "17");
    assert_int_equal(w.n, 1);
    assert_int_equal(w.skipped, 5);
    assert_string_equal(cluster_gb_walk_next(&w), "34020000001320000001");
    assert_null(cluster_gb_walk_next(&w));
    assert_false(cluster_gb_walk_batch_done(&w));
    /* The next answer only once this one's ids are all answered. */
    r = sscan_answer("0", NULL, 0);
    assert_int_equal(cluster_gb_walk_scan(&w, r), -EBUSY);
    cluster_gb_walk_answered(&w);
    assert_true(cluster_gb_walk_batch_done(&w));
    assert_int_equal(cluster_gb_walk_scan(&w, r), 0);
    freeReplyObject(r);
    assert_string_equal(w.cursor, "0");
    assert_true(cluster_gb_walk_batch_done(&w));
    cluster_gb_walk_reset(&w);
}

/* A model of the store the reap scripts run against: each device's record
 * (its node, online). model_script() answers as GBREAP_LUA does (the
 * script itself runs against a real Redis in tests/peers/test_gb_nodes.sh);
 * what this checks is the walk around it: every listed device asked once
 * per run, never more than CLUSTER_GB_WINDOW in flight, a second run (a
 * successor after the first claimer died mid-way) making no second
 * offline, a device re-registered on a live node never marked. */
#define NDEV 300
struct model_dev {
    char id[24];
    char node[16];
    bool online;
    int lost_events;
    int asked;
};

static int model_script(struct model_dev *d, const char *dead)
{
    d->asked++;
    if (strcmp(d->node, dead) != 0 || !d->online) return CLUSTER_GB_NONE;
    d->online = false;
    return CLUSTER_GB_LOST;
}

/* One run of a reaper over the index (SSCAN answers of `batch` members):
 * stops after `stop_after` answers when > 0 (the claimer dies: what it had
 * in flight was sent and ran, the answers are lost). Returns the most
 * scripts it had in flight at once. */
static uint32_t model_run(struct model_dev *devs, const char *const *index, size_t nindex, size_t batch,
                          int stop_after)
{
    struct cluster_gb_walk w;
    memset(&w, 0, sizeof(w));
    cluster_gb_walk_reset(&w);
    uint32_t max_inflight = 0;
    size_t pos = 0;
    int answers = 0;
    do {
        size_t n = nindex - pos < batch ? nindex - pos : batch;
        char cursor[24];
        snprintf(cursor, sizeof(cursor), "%zu", pos + n < nindex ? pos + n : 0);
        redisReply *r = sscan_answer(cursor, index + pos, n);
        assert_int_equal(cluster_gb_walk_scan(&w, r), 0);
        freeReplyObject(r);
        pos += n;
        /* Send what the window allows, answer the oldest, repeat. */
        const char *inflight[CLUSTER_GB_SCAN_MAX];
        size_t head = 0, tail = 0;
        for (;;) {
            const char *id;
            while ((id = cluster_gb_walk_next(&w))) inflight[tail++] = id;
            if (w.outstanding > max_inflight) max_inflight = w.outstanding;
            if (head == tail) break;
            const char *done = inflight[head++];
            struct model_dev *d = NULL;
            for (size_t k = 0; k < NDEV && !d; k++)
                if (!strcmp(devs[k].id, done)) d = &devs[k];
            assert_non_null(d);
            int v = model_script(d, "node-a");
            if (stop_after > 0 && ++answers > stop_after) { /* died: the rest in flight ran, unanswered */
                while (head < tail) {
                    const char *lost = inflight[head++];
                    for (size_t k = 0; k < NDEV; k++)
                        if (!strcmp(devs[k].id, lost)) model_script(&devs[k], "node-a");
                }
                cluster_gb_walk_reset(&w);
                return max_inflight;
            }
            cluster_gb_walk_answered(&w);
            if (v == CLUSTER_GB_LOST) d->lost_events++;
        }
        assert_true(cluster_gb_walk_batch_done(&w));
    } while (strcmp(w.cursor, "0") != 0);
    cluster_gb_walk_reset(&w);
    return max_inflight;
}

static void test_gb_walk_exactly_once(void **state)
{
    (void)state;
    static struct model_dev devs[NDEV];
    const char *index[NDEV];
    for (size_t i = 0; i < NDEV; i++) {
        memset(&devs[i], 0, sizeof(devs[i]));
        snprintf(devs[i].id, sizeof(devs[i].id), "340200000013200%05zu", i + 1);
        snprintf(devs[i].node, sizeof(devs[i].node), "node-a");
        devs[i].online = true;
        index[i] = devs[i].id;
    }
    /* Device 7 re-registered on node C before the reap; device 9 went
     * offline on A before A died (its own event then). */
    snprintf(devs[7].node, sizeof(devs[7].node), "node-c");
    devs[9].online = false;

    /* One SSCAN answer bigger than the window (Redis may answer more
     * than COUNT): at most CLUSTER_GB_WINDOW in flight all the same. */
    uint32_t inflight = model_run(devs, index, NDEV, NDEV, 150);
    assert_true(inflight <= CLUSTER_GB_WINDOW);
    assert_int_equal(inflight, CLUSTER_GB_WINDOW);
    /* The claimer died after 150 answers; its successor walks the index
     * from the start, in batches of 128. */
    inflight = model_run(devs, index, NDEV, 128, 0);
    assert_true(inflight <= CLUSTER_GB_WINDOW);
    int events = 0;
    for (size_t i = 0; i < NDEV; i++) {
        if (i == 7 || i == 9) {
            assert_int_equal(devs[i].lost_events, 0);
            if (i == 7) assert_true(devs[i].online); /* C's device stays online */
            continue;
        }
        assert_false(devs[i].online);
        /* The first run's lost answers (died with it) make no event: lost,
         * never doubled — the window the docs name. Every other device:
         * exactly one. */
        assert_true(devs[i].lost_events <= 1);
        assert_true(devs[i].asked >= 1 && devs[i].asked <= 2);
        events += devs[i].lost_events;
    }
    /* The first run's 150 answers (two of them the skipped devices) made
     * 148 events; the 128 scripts it had in flight when it died ran, their
     * events lost with it (never doubled: the successor finds them offline);
     * the successor marked the 22 the first never sent. */
    assert_int_equal(events, 148 + 22);
    assert_int_equal(NDEV - 2 - events, CLUSTER_GB_WINDOW);
}

/* ---- with [redis] events_stream: the reap's events written by its scripts ----
 *
 * A model of REAP/GBREAP (mark), EMIT/GBEMIT (still due?), STREAM_LUA (the
 * event once per dead incarnation and record) and the unmark, the answers
 * going through the real readers (cluster_emit_verdict,
 * cluster_stream_answer). A claimer dies after any number of script runs
 * (the script ran, its answer is lost, it sends nothing more); a successor
 * then runs the whole reap again. Whatever the point: exactly one event in
 * the stream per device lost, none for a device that re-registered on a
 * survivor before the announcement (its record names that survivor), none
 * for one on a live node or already offline; each live node's bus gets an
 * event at most once. */
#define SDEV 6
struct sdev {
    char node[16];
    bool online;
    bool mark;                           /* the record's field reaped */
    bool deduped;                        /* its field in {events}:reaped:<id>:<inc> */
    int stream_events;                   /* entries in the stream */
    int bus_events[2];                   /* published on the claimer's / successor's bus */
};

static int model_int(long long v, int (*read)(const redisReply *))
{
    char b[32];
    snprintf(b, sizeof(b), ":%lld\r\n", v);
    redisReply *r = fake_resp(b);
    int got = read(r);
    freeReplyObject(r);
    return got;
}

static int read_seq(const redisReply *r)
{
    long long seq = -1;
    return cluster_stream_answer(r, &seq) < 0 ? -1 : (int)seq;
}

static int sgbreap(struct sdev *d) /* GBREAP_LUA with a mark */
{
    if (strcmp(d->node, "node-a") || !d->online) return CLUSTER_GB_NONE;
    d->online = false;
    d->mark = true;
    return CLUSTER_GB_LOST;
}

static int sgbemit(struct sdev *d) /* GBEMIT_LUA (not online on the runner) */
{
    if (!d->mark) return CLUSTER_EMIT_NONE;
    if (strcmp(d->node, "node-a") || d->online) {
        d->mark = false;
        return CLUSTER_EMIT_MOVED;
    }
    return CLUSTER_EMIT_DUE;
}

static int sstream(struct sdev *d, long long *next_seq) /* STREAM_LUA */
{
    if (d->deduped) return 0;
    d->deduped = true;
    d->stream_events++;
    return (int)(*next_seq)++;
}

/* One reaper; returns false when it died (after `budget` script runs). */
static bool sreap_run(struct sdev *devs, int who, int *budget, long long *seq, int rereg_at_grace)
{
#define RUN_OR_DIE() do { if (*budget >= 0 && (*budget)-- == 0) return false; } while (0)
    for (int i = 0; i < SDEV; i++) {
        RUN_OR_DIE();
        int v = model_int(sgbreap(&devs[i]), cluster_gb_reap_verdict);
        assert_true(v >= 0);
    }
    /* the grace: a survivor's queued write of a device that came back lands */
    if (rereg_at_grace >= 0) {
        snprintf(devs[rereg_at_grace].node, sizeof(devs[rereg_at_grace].node), "node-c");
        devs[rereg_at_grace].online = true;
    }
    for (int i = 0; i < SDEV; i++) {
        RUN_OR_DIE();
        int v = model_int(sgbemit(&devs[i]), cluster_emit_verdict);
        assert_true(v >= 0);
        if (v != CLUSTER_EMIT_DUE) continue;
        RUN_OR_DIE();
        /* the script ran; the answer reaches the reaper only if it lives on */
        int got = sstream(&devs[i], seq);
        if (*budget == 0) return false;
        assert_true(model_int(got, read_seq) >= 0);
        devs[i].bus_events[who]++;
        RUN_OR_DIE();
        devs[i].mark = false; /* unmark */
    }
#undef RUN_OR_DIE
    return true;
}

static void test_stream_exactly_once(void **state)
{
    (void)state;
    /* the answers' readers */
    assert_int_equal(model_int(0, cluster_emit_verdict), CLUSTER_EMIT_NONE);
    assert_int_equal(model_int(3, cluster_emit_verdict), CLUSTER_EMIT_MOVED);
    assert_int_equal(model_int(4, cluster_emit_verdict), -1);
    assert_int_equal(model_int(-1, cluster_emit_verdict), -1);
    assert_int_equal(model_int(0, read_seq), 0);
    assert_int_equal(model_int(41, read_seq), 41);
    assert_int_equal(model_int(-2, read_seq), -1);
    redisReply *r = fake_resp("$1\r\n1\r\n");
    long long seq = 0;
    assert_int_equal(cluster_emit_verdict(r), -1);
    assert_int_equal(cluster_stream_answer(r, &seq), -1);
    freeReplyObject(r);

    for (int rereg = -1; rereg < 2; rereg++) {
        for (int die = 0; die < 40; die++) {
            struct sdev devs[SDEV];
            memset(devs, 0, sizeof(devs));
            for (int i = 0; i < SDEV; i++) {
                snprintf(devs[i].node, sizeof(devs[i].node), "node-a");
                devs[i].online = true;
            }
            snprintf(devs[4].node, sizeof(devs[4].node), "node-b"); /* on a live node */
            devs[5].online = false;                                  /* offline before A died */
            long long next = 1;
            int budget = die;
            bool finished = sreap_run(devs, 0, &budget, &next, rereg);
            if (!finished) {
                int unlimited = -1; /* the successor, after the claim lapsed */
                assert_true(sreap_run(devs, 1, &unlimited, &next, -1));
            }
            for (int i = 0; i < SDEV; i++) {
                /* re-registered on node C during the claimer's grace (it
                 * got that far): no event; else one per device of node-a */
                int want = i >= 4 || !strcmp(devs[i].node, "node-c") ? 0 : 1;
                if (devs[i].stream_events != want)
                    fail_msg("die %d rereg %d: device %d has %d events in the stream", die, rereg, i,
                             devs[i].stream_events);
                assert_true(devs[i].bus_events[0] <= 1 && devs[i].bus_events[1] <= 1);
                assert_true(devs[i].bus_events[0] + devs[i].bus_events[1] <= 1 + !finished);
                assert_false(devs[i].mark && finished);
            }
        }
    }
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
    struct timer_service ts;
    fake_loop_init(&loop, &ts);
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
    fake_loop_close(&loop, &ts);
}

static void test_reply_origin_outside(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct timer_service ts;
    fake_loop_init(&loop, &ts);
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
    fake_loop_close(&loop, &ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reap_member),
        cmocka_unit_test(test_reap_counts),
        cmocka_unit_test(test_gb_verdict),
        cmocka_unit_test(test_gb_walk_shapes),
        cmocka_unit_test(test_gb_walk_exactly_once),
        cmocka_unit_test(test_stream_exactly_once),
        cmocka_unit_test(test_durable_sync),
        cmocka_unit_test(test_reply_origin_outside),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
