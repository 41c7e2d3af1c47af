/* redis_cluster_probe.c — drives src/redis/redis_cluster.c against a real
 * cluster for tests/peers/test_redis_cluster.sh.
 *
 *   redis_cluster_probe SEEDS [TIMEOUT_MS]
 *
 * reads one command per line on stdin and answers each with one line on
 * stdout once every Redis command it started has been answered:
 *
 *   fill P N    SET P:i to "v-P-i" for i < N, all at once
 *               -> "fill ok=A err=B"            (B: callbacks with status < 0
 *                                                or an error reply)
 *   check P N   GET P:i, each compared with "v-P-i"
 *               -> "check ok=A bad=B err=C"     (bad: answered, wrong value)
 *   get K       -> "value V" | "nil" | "error TEXT" | "status -E"
 *   set K V     -> "ok" | "error TEXT" | "status -E"
 *   stats       -> "stats moved=.. ask=.. retries=.. refreshes=.. connects=..
 *                  drops=.. timeouts=.. failures=.. masters=.. slots=.."
 *
 * The client runs on this program's libuv loop; its timer service is
 * driven by a 10 ms libuv timer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "base/log.h"
#include "base/timer.h"
#include "redis/redis_cluster.h"

static uv_loop_t *loop;
static struct timer_service timers;
static struct redis_cluster *cluster;
static uv_pipe_t in;
static uv_timer_t tick;
static char line[4096];
static size_t line_len;

/* The command being run: counts of its Redis commands. */
static struct {
    const char *kind;
    unsigned pending, ok, bad, err;
    char prefix[256];
} run;

struct op {
    unsigned index;
};

static void done_if_idle(void)
{
    if (run.pending) return;
    if (strcmp(run.kind, "fill") == 0) printf("fill ok=%u err=%u\n", run.ok, run.err);
    else printf("check ok=%u bad=%u err=%u\n", run.ok, run.bad, run.err);
    fflush(stdout);
    run.kind = NULL;
}

static void on_set(void *arg, int status, const redisReply *r)
{
    free(arg);
    run.pending--;
    if (status == 0 && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0) run.ok++;
    else run.err++;
    done_if_idle();
}

static void on_get(void *arg, int status, const redisReply *r)
{
    struct op *op = arg;
    run.pending--;
    if (status < 0 || r->type == REDIS_REPLY_ERROR) {
        run.err++;
    } else {
        char want[512];
        snprintf(want, sizeof(want), "v-%s-%u", run.prefix, op->index);
        if (r->type == REDIS_REPLY_STRING && r->len == strlen(want) && memcmp(r->str, want, r->len) == 0)
            run.ok++;
        else
            run.bad++;
    }
    free(op);
    done_if_idle();
}

static void bulk(const char *kind, const char *prefix, unsigned n)
{
    run.kind = kind;
    run.pending = run.ok = run.bad = run.err = 0;
    snprintf(run.prefix, sizeof(run.prefix), "%s", prefix);
    bool fill = strcmp(kind, "fill") == 0;
    for (unsigned i = 0; i < n; i++) {
        char key[512], val[512];
        snprintf(key, sizeof(key), "%s:%u", prefix, i);
        snprintf(val, sizeof(val), "v-%s-%u", prefix, i);
        const char *argv[3] = {fill ? "SET" : "GET", key, val};
        size_t lens[3] = {3, strlen(key), strlen(val)};
        struct op *op = malloc(sizeof(*op));
        if (!op) abort();
        op->index = i;
        int rc = redis_cluster_command(cluster, 1, fill ? 3 : 2, argv, lens, fill ? on_set : on_get,
                                       op);
        if (rc < 0) {
            free(op);
            run.err++;
        } else {
            run.pending++;
        }
    }
    done_if_idle();
}

static void on_single(void *arg, int status, const redisReply *r)
{
    (void)arg;
    if (status < 0) printf("status %d\n", status);
    else if (r->type == REDIS_REPLY_ERROR) printf("error %s\n", r->str);
    else if (r->type == REDIS_REPLY_NIL) printf("nil\n");
    else if (r->type == REDIS_REPLY_STATUS) printf("ok\n");
    else if (r->type == REDIS_REPLY_STRING) printf("value %.*s\n", (int)r->len, r->str);
    else printf("type %d\n", r->type);
    fflush(stdout);
}

static void single(int argc, const char **argv)
{
    size_t lens[3];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    int rc = redis_cluster_command(cluster, 1, argc, argv, lens, on_single, NULL);
    if (rc < 0) {
        printf("status %d\n", rc);
        fflush(stdout);
    }
}

static void stats(void)
{
    struct redis_cluster_stats s;
    redis_cluster_get_stats(cluster, &s);
    printf("stats moved=%llu ask=%llu retries=%llu refreshes=%llu connects=%llu drops=%llu "
           "timeouts=%llu failures=%llu masters=%u slots=%u\n",
           (unsigned long long)s.moved, (unsigned long long)s.ask, (unsigned long long)s.retries,
           (unsigned long long)s.refreshes, (unsigned long long)s.connects,
           (unsigned long long)s.drops, (unsigned long long)s.timeouts,
           (unsigned long long)s.failures, s.masters, s.slots_mapped);
    fflush(stdout);
}

static void command(char *text)
{
    char *w[4] = {0};
    int n = 0;
    for (char *save = NULL, *t = strtok_r(text, " ", &save); t && n < 4; t = strtok_r(NULL, " ", &save))
        w[n++] = t;
    if (n == 0) return;
    if (n == 3 && (strcmp(w[0], "fill") == 0 || strcmp(w[0], "check") == 0)) {
        bulk(strcmp(w[0], "fill") == 0 ? "fill" : "check", w[1], (unsigned)strtoul(w[2], NULL, 10));
    } else if (n == 2 && strcmp(w[0], "get") == 0) {
        const char *argv[2] = {"GET", w[1]};
        single(2, argv);
    } else if (n == 3 && strcmp(w[0], "set") == 0) {
        const char *argv[3] = {"SET", w[1], w[2]};
        single(3, argv);
    } else if (n == 1 && strcmp(w[0], "stats") == 0) {
        stats();
    } else {
        printf("what?\n");
        fflush(stdout);
    }
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    (void)size;
    static char chunk[4096];
    *buf = uv_buf_init(chunk, sizeof(chunk));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) { /* stdin closed: done */
        uv_read_stop(s);
        uv_close((uv_handle_t *)&in, NULL);
        uv_timer_stop(&tick);
        uv_close((uv_handle_t *)&tick, NULL);
        redis_cluster_free(cluster);
        cluster = NULL;
        return;
    }
    for (ssize_t i = 0; i < nread; i++) {
        char c = buf->base[i];
        if (c == '\n') {
            line[line_len] = '\0';
            line_len = 0;
            command(line);
        } else if (line_len < sizeof(line) - 1) {
            line[line_len++] = c;
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    timer_run(&timers, uv_now(loop));
}

static uint64_t loop_clock(void *arg)
{
    (void)arg;
    return uv_now(loop);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: redis_cluster_probe SEEDS [TIMEOUT_MS]\n");
        return 2;
    }
    if (getenv("REDIS_PROBE_DEBUG")) log_set_level(LOG_DEBUG); /* to stderr */
    loop = uv_default_loop();
    timer_service_init(&timers);
    timers.clock = loop_clock;
    struct redis_cluster_config cfg = {.seeds = argv[1],
                                       .timeout_ms = argc > 2 ? (uint32_t)atoi(argv[2]) : 3000,
                                       .max_inflight = 200};
    int err;
    cluster = redis_cluster_new(loop, &timers, &cfg, &err);
    if (!cluster) {
        fprintf(stderr, "redis_cluster_new: %s\n", strerror(-err));
        return 1;
    }
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
    uv_pipe_init(loop, &in, 0);
    uv_pipe_open(&in, 0);
    uv_read_start((uv_stream_t *)&in, on_alloc, on_read);
    uv_run(loop, UV_RUN_DEFAULT);
    timer_service_free(&timers);
    return 0;
}
