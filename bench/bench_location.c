/* bench_location.c — memory and speed of the location service and the store.
 *
 *   bench_location mem [N]          RSS growth for N bindings (default 100000),
 *                                   in-memory update / lookup / refresh rates
 *   bench_location burst [N] [DIR]  N binding upserts submitted at once: time
 *                                   until every commit callback fired
 *   bench_location stream [RATE] [SECONDS] [DIR]
 *                                   a steady offered rate of upserts: achieved
 *                                   ops/s and submit->commit latency percentiles
 *   bench_location register [N] [DIR]
 *                                   N location_update calls with a store, each
 *                                   waiting for its commit callback
 *
 * Not a test: prints numbers, asserts nothing. Keep runs short (shared cores). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "base/clock.h"
#include "base/log.h"
#include "registrar/location.h"
#include "store/store.h"

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A realistic softphone registration: ~45-byte contact, 32-byte Call-ID,
 * user agent, UDP or TCP, no Path, no instance. */
static void make_in(struct location_binding_in *in, char *aor, size_t aorcap, char *uri, size_t uricap,
                    char *callid, size_t cidcap, struct sockaddr_in *sa, int i, uint32_t cseq)
{
    snprintf(aor, aorcap, "user%07d@example.com", i);
    snprintf(uri, uricap, "sip:user%07d@10.%d.%d.%d:5060;transport=udp", i, (i >> 16) & 255, (i >> 8) & 255,
             i & 255);
    snprintf(callid, cidcap, "%08x-%08x-4f2c-9b1e@10.0.0.1", (unsigned)i * 2654435761u, (unsigned)i);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)(5060 + (i & 1023)));
    sa->sin_addr.s_addr = htonl(0x0a000000u | (uint32_t)i);
    *in = (struct location_binding_in){
        .contact = str_from_cstr(uri),
        .expires_s = 3600,
        .q1000 = 1000,
        .call_id = str_from_cstr(callid),
        .cseq = cseq,
        .transport = LOCATION_TRANSPORT_UDP,
        .remote_addr = (const struct sockaddr *)sa,
        .user_agent = STR_LIT("Linphone/5.2.0 (belle-sip/5.2.0)"),
    };
}

static int bench_mem(int n)
{
    struct timer_service ts;
    timer_service_init(&ts);
    struct location *loc = location_new(&ts, NULL, NULL);
    location_set_limits(loc, 0, 0);
    long before = rss_kib();
    char aor[64], uri[96], cid[64];
    struct sockaddr_in sa;
    struct location_binding_in in;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        make_in(&in, aor, sizeof(aor), uri, sizeof(uri), cid, sizeof(cid), &sa, i, 1);
        if (location_update(loc, str_from_cstr(aor), &in, 1, 0, NULL, NULL) != 0) return 1;
    }
    double t1 = now_s();
    long after = rss_kib();
    size_t strings = strlen(uri) + strlen(cid) + strlen("Linphone/5.2.0 (belle-sip/5.2.0)") + strlen(aor);
    printf("mem: %d bindings (1 per AoR): RSS +%ld KiB = %.0f bytes/binding "
           "(incl. AoR record, hash buckets, timer heap; ~%zu bytes of strings each)\n",
           n, after - before, (double)(after - before) * 1024.0 / n, strings);
    printf("mem: insert %.0f updates/s\n", n / (t1 - t0));
    const struct location_binding *out[4];
    t0 = now_s();
    size_t found = 0;
    for (int r = 0; r < 5; r++)
        for (int i = 0; i < n; i++) {
            snprintf(aor, sizeof(aor), "user%07d@example.com", i);
            found += location_lookup(loc, str_from_cstr(aor), out, 4);
        }
    t1 = now_s();
    printf("mem: lookup %.0f/s (found %zu)\n", 5.0 * n / (t1 - t0), found);
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        make_in(&in, aor, sizeof(aor), uri, sizeof(uri), cid, sizeof(cid), &sa, i, 2);
        if (location_update(loc, str_from_cstr(aor), &in, 1, 1000, NULL, NULL) != 0) return 1;
    }
    t1 = now_s();
    printf("mem: refresh %.0f updates/s\n", n / (t1 - t0));
    t0 = now_s();
    int fired = timer_run(&ts, 3600 * 1000 + 1000);
    t1 = now_s();
    printf("mem: expire all: %d in %.3f s\n", fired, t1 - t0);
    location_free(loc);
    timer_service_free(&ts);
    return 0;
}

static struct store *open_in(uv_loop_t *loop, const char *dir, char *path, size_t cap)
{
    snprintf(path, cap, "%s/bench-location-%d.sqlite", dir, (int)getpid());
    char err[256];
    struct store *st = store_open(loop, path, err, sizeof(err));
    if (!st) fprintf(stderr, "store_open: %s\n", err);
    return st;
}

static void remove_db(const char *path)
{
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
}

struct burst {
    int done;
    int failed;
};

static void burst_cb(void *arg, int status)
{
    struct burst *b = arg;
    b->done++;
    if (status) b->failed++;
}

static int bench_burst(int n, const char *dir)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char path[512];
    struct store *st = open_in(&loop, dir, path, sizeof(path));
    if (!st) return 1;
    for (int round = 0; round < 3; round++) {
        struct burst b = {0};
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
            char aor[64], uri[96], cid[64];
            struct sockaddr_in sa;
            struct location_binding_in in;
            make_in(&in, aor, sizeof(aor), uri, sizeof(uri), cid, sizeof(cid), &sa, i, (uint32_t)round + 1);
            struct store_binding row = {.aor = aor, .contact = uri, .expires_at = clock_wall_ms() + 3600000,
                                        .q1000 = 1000, .call_id = cid, .cseq = in.cseq, .transport = "udp",
                                        .remote = "10.0.0.1:5060", .user_agent = "Linphone/5.2.0",
                                        .received_at = clock_wall_ms()};
            store_submit(st, store_op_binding_upsert(&row), burst_cb, &b);
        }
        double t1 = now_s();
        while (b.done < n) uv_run(&loop, UV_RUN_ONCE);
        double t2 = now_s();
        struct store_stats s;
        store_get_stats(st, &s);
        printf("burst %d (%s): %d upserts submitted in %.1f ms, all committed+called back after %.1f ms "
               "(%.0f ops/s, %d failed, max batch %llu)\n",
               round, round ? "update" : "insert", n, (t1 - t0) * 1e3, (t2 - t0) * 1e3, n / (t2 - t0), b.failed,
               (unsigned long long)s.max_batch);
    }
    store_close(st);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    remove_db(path);
    return 0;
}

struct stream {
    struct store *st;
    uv_loop_t *loop;
    uv_timer_t tick;
    int rate, seconds;
    double start;
    long submitted, done, failed;
    double *lat;         /* per op latency, ms */
    long cap;
    double *sent_at;
};

struct stream_ref {
    struct stream *s;
    long idx;
};

static void stream_cb(void *arg, int status)
{
    struct stream_ref *r = arg;
    struct stream *s = r->s;
    s->lat[r->idx] = (now_s() - s->sent_at[r->idx]) * 1e3;
    s->done++;
    if (status) s->failed++;
    free(r);
}

static void stream_tick(uv_timer_t *t)
{
    struct stream *s = t->data;
    double el = now_s() - s->start;
    if (el >= s->seconds) {
        uv_timer_stop(t);
        return;
    }
    long due = (long)(el * s->rate);
    if (due > s->cap) due = s->cap;
    while (s->submitted < due) {
        long i = s->submitted++;
        char aor[64], uri[96];
        snprintf(aor, sizeof(aor), "user%07ld@example.com", i % 100000);
        snprintf(uri, sizeof(uri), "sip:user%07ld@10.0.0.1:5060", i % 100000);
        struct store_binding row = {.aor = aor, .contact = uri, .expires_at = clock_wall_ms() + 3600000,
                                    .q1000 = 1000, .call_id = "abcdef0123456789@10.0.0.1", .cseq = (uint32_t)i,
                                    .transport = "udp", .remote = "10.0.0.1:5060",
                                    .user_agent = "Linphone/5.2.0", .received_at = clock_wall_ms()};
        struct stream_ref *r = malloc(sizeof(*r));
        r->s = s;
        r->idx = i;
        s->sent_at[i] = now_s();
        store_submit(s->st, store_op_binding_upsert(&row), stream_cb, r);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bench_stream(int rate, int seconds, const char *dir)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char path[512];
    struct stream s = {.loop = &loop, .rate = rate, .seconds = seconds};
    s.st = open_in(&loop, dir, path, sizeof(path));
    if (!s.st) return 1;
    s.cap = (long)rate * seconds + 1;
    s.lat = calloc((size_t)s.cap, sizeof(double));
    s.sent_at = calloc((size_t)s.cap, sizeof(double));
    uv_timer_init(&loop, &s.tick);
    s.tick.data = &s;
    s.start = now_s();
    uv_timer_start(&s.tick, stream_tick, 1, 1);
    while (uv_is_active((uv_handle_t *)&s.tick) || s.done < s.submitted) uv_run(&loop, UV_RUN_ONCE);
    double el = now_s() - s.start;
    struct store_stats st;
    store_get_stats(s.st, &st);
    qsort(s.lat, (size_t)s.done, sizeof(double), cmp_double);
    printf("stream: offered %d/s for %d s: %ld ops committed in %.2f s = %.0f ops/s, %ld failed; "
           "latency submit->callback p50 %.2f ms p99 %.2f ms max %.2f ms; %llu batches (avg %.1f ops)\n",
           rate, seconds, s.done, el, s.done / el, s.failed, s.lat[s.done / 2], s.lat[(long)(s.done * 0.99)],
           s.lat[s.done - 1], (unsigned long long)st.batches, (double)s.done / (double)st.batches);
    uv_close((uv_handle_t *)&s.tick, NULL);
    store_close(s.st);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    remove_db(path);
    free(s.lat);
    free(s.sent_at);
    return 0;
}

static int bench_register(int n, const char *dir)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char path[512];
    struct store *st = open_in(&loop, dir, path, sizeof(path));
    if (!st) return 1;
    struct timer_service ts;
    timer_service_init(&ts);
    struct location *loc = location_new(&ts, st, NULL);
    location_set_limits(loc, 0, 0);
    struct burst b = {0};
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        char aor[64], uri[96], cid[64];
        struct sockaddr_in sa;
        struct location_binding_in in;
        make_in(&in, aor, sizeof(aor), uri, sizeof(uri), cid, sizeof(cid), &sa, i, 1);
        if (location_update(loc, str_from_cstr(aor), &in, 1, 0, burst_cb, &b) != 0) return 1;
        /* let the loop deliver commits as a daemon would between requests */
        if ((i & 255) == 255) uv_run(&loop, UV_RUN_NOWAIT);
    }
    double t1 = now_s();
    while (b.done < n) uv_run(&loop, UV_RUN_ONCE);
    double t2 = now_s();
    printf("register: %d location_update with store: loop busy %.1f ms, all committed after %.1f ms "
           "(%.0f/s end to end, %d failed)\n",
           n, (t1 - t0) * 1e3, (t2 - t0) * 1e3, n / (t2 - t0), b.failed);
    location_free(loc);
    timer_service_free(&ts);
    store_close(st);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    remove_db(path);
    return 0;
}

int main(int argc, char **argv)
{
    log_set_level(LOG_WARN);
    const char *mode = argc > 1 ? argv[1] : "mem";
    if (strcmp(mode, "mem") == 0) return bench_mem(argc > 2 ? atoi(argv[2]) : 100000);
    if (strcmp(mode, "burst") == 0) return bench_burst(argc > 2 ? atoi(argv[2]) : 10000, argc > 3 ? argv[3] : "/tmp");
    if (strcmp(mode, "stream") == 0)
        return bench_stream(argc > 2 ? atoi(argv[2]) : 5000, argc > 3 ? atoi(argv[3]) : 3,
                            argc > 4 ? argv[4] : "/tmp");
    if (strcmp(mode, "register") == 0)
        return bench_register(argc > 2 ? atoi(argv[2]) : 100000, argc > 3 ? argv[3] : "/tmp");
    fprintf(stderr, "usage: %s mem [N] | burst [N] [DIR] | stream [RATE] [SECONDS] [DIR] | register [N] [DIR]\n",
            argv[0]);
    return 2;
}
