/* test_webhook.c — the webhook sink against a tiny HTTP server run in a
 * thread of this test: retries with backoff until 2xx, ordering, the bounded
 * queue, prompt shutdown, and the bus wiring. Also the blocking HTTP client's
 * answer framing (Content-Length, chunked, until-close). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "events/events.h"
#include "events/httpc.h"
#include "events/webhook.h"
#include "base/clock.h"
#include "base/log.h"

enum answer_mode { ANSWER_STATUS, ANSWER_HANG, ANSWER_CHUNKED, ANSWER_UNTIL_CLOSE };

#define MAX_SEEN 64

struct hook_server {
    int lfd;
    int port;
    pthread_t th;
    atomic_int stop;
    enum answer_mode mode;
    int fail_first;          /* answer this many requests with fail_status first */
    int fail_status;
    pthread_mutex_t mu;
    int nreq;                /* requests seen */
    char method[MAX_SEEN][8];
    char path[MAX_SEEN][64];
    char ctype[MAX_SEEN][64];
    char body[MAX_SEEN][512];
    int answered[MAX_SEEN];  /* status sent */
};

static void header_value(const char *head, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    const char *p = strcasestr(head, name);
    if (!p) return;
    p += strlen(name);
    while (*p == ' ') p++;
    size_t n = strcspn(p, "\r\n");
    snprintf(out, cap, "%.*s", (int)n, p);
}

static void serve_one(struct hook_server *s, int fd)
{
    char buf[8192];
    size_t len = 0;
    char *hend = NULL;
    while (!hend && len < sizeof(buf) - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) <= 0) return;
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0) return;
        len += (size_t)r;
        buf[len] = '\0';
        hend = strstr(buf, "\r\n\r\n");
    }
    if (!hend) return;
    char cl[32];
    *hend = '\0';
    header_value(buf, "\r\ncontent-length:", cl, sizeof(cl));
    size_t want = (size_t)atoi(cl), have = len - (size_t)(hend + 4 - buf);
    while (have < want && len < sizeof(buf) - 1) {
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0) return;
        len += (size_t)r;
        have += (size_t)r;
    }
    pthread_mutex_lock(&s->mu);
    int i = s->nreq < MAX_SEEN ? s->nreq : MAX_SEEN - 1;
    sscanf(buf, "%7s %63s", s->method[i], s->path[i]);
    header_value(buf, "\r\ncontent-type:", s->ctype[i], sizeof(s->ctype[i]));
    snprintf(s->body[i], sizeof(s->body[i]), "%.*s", (int)want, hend + 4);
    int fail = s->nreq < s->fail_first;
    s->nreq++;
    enum answer_mode mode = s->mode;
    s->answered[i] = fail ? s->fail_status : 200;
    pthread_mutex_unlock(&s->mu);

    const char *ans;
    char tmp[256];
    if (fail) {
        snprintf(tmp, sizeof(tmp), "HTTP/1.1 %d Nope\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
                 s->fail_status);
        ans = tmp;
    } else if (mode == ANSWER_HANG) {
        while (!atomic_load(&s->stop)) usleep(10000);
        return;
    } else if (mode == ANSWER_CHUNKED) {
        ans = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
    } else if (mode == ANSWER_UNTIL_CLOSE) {
        ans = "HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\n\r\nread until close";
    } else {
        ans = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
    }
    ssize_t w = send(fd, ans, strlen(ans), MSG_NOSIGNAL);
    (void)w;
}

static void *server_main(void *arg)
{
    struct hook_server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        serve_one(s, fd);
        close(fd);
    }
    return NULL;
}

static struct hook_server *server_start(enum answer_mode mode, int fail_first, int fail_status)
{
    struct hook_server *s = calloc(1, sizeof(*s));
    s->mode = mode;
    s->fail_first = fail_first;
    s->fail_status = fail_status;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    socklen_t al = sizeof(a);
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, server_main, s);
    return s;
}

static void server_stop(struct hook_server *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int server_nreq(struct hook_server *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->nreq;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void wait_delivered(struct api_webhook *wh, uint64_t n, int timeout_ms)
{
    uint64_t deadline = clock_monotonic_ms() + (uint64_t)timeout_ms;
    struct event_webhook_stats st;
    do {
        api_webhook_stats(wh, &st);
        if (st.delivered >= n) return;
        usleep(5000);
    } while (clock_monotonic_ms() < deadline);
    fail_msg("only %llu of %llu events delivered", (unsigned long long)st.delivered, (unsigned long long)n);
}

static void test_retry_until_2xx_in_order(void **state)
{
    (void)state;
    struct hook_server *s = server_start(ANSWER_STATUS, 2, 503);
    char url[128], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks/cascade", s->port);
    struct api_webhook_options o = {.queue_max = 100, .backoff_initial_ms = 20, .backoff_max_ms = 80, .timeout_ms = 2000};
    struct api_webhook *wh = api_webhook_new(url, &o, err, sizeof(err));
    assert_non_null(wh);
    const char *ev[] = {"{\"seq\":1,\"type\":\"a\"}", "{\"seq\":2,\"type\":\"b\"}", "{\"seq\":3,\"type\":\"c\"}"};
    for (int i = 0; i < 3; i++) assert_int_equal(api_webhook_push(wh, (uint64_t)i + 1, ev[i], strlen(ev[i])), 0);
    wait_delivered(wh, 3, 5000);
    struct event_webhook_stats st;
    api_webhook_stats(wh, &st);
    assert_int_equal(st.failed_attempts, 2);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.queued, 0);
    api_webhook_free(wh);

    assert_int_equal(s->nreq, 5);
    /* event 1 three times (503, 503, 200), then 2 and 3 once each, in order */
    const int expect[] = {0, 0, 0, 1, 2};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(s->method[i], "POST");
        assert_string_equal(s->path[i], "/hooks/cascade");
        assert_string_equal(s->ctype[i], "application/json");
        assert_string_equal(s->body[i], ev[expect[i]]);
    }
    assert_int_equal(s->answered[1], 503);
    assert_int_equal(s->answered[2], 200);
    server_stop(s);
}

static void test_non_2xx_is_retried(void **state)
{
    (void)state;
    struct hook_server *s = server_start(ANSWER_STATUS, 1, 404);
    char url[128], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/h", s->port);
    struct api_webhook_options o = {.backoff_initial_ms = 10, .backoff_max_ms = 10};
    struct api_webhook *wh = api_webhook_new(url, &o, err, sizeof(err));
    assert_non_null(wh);
    api_webhook_push(wh, 7, "{\"seq\":7}", 9);
    wait_delivered(wh, 1, 5000);
    api_webhook_free(wh);
    assert_int_equal(s->nreq, 2);
    assert_string_equal(s->body[1], "{\"seq\":7}");
    server_stop(s);
}

static void test_queue_bound_and_prompt_stop(void **state)
{
    (void)state;
    /* A port nobody listens on: every attempt is refused at once. */
    struct hook_server *s = server_start(ANSWER_STATUS, 0, 0);
    int port = s->port;
    server_stop(s);
    char url[128], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/h", port);
    struct api_webhook_options o = {.queue_max = 2, .backoff_initial_ms = 10000, .backoff_max_ms = 30000};
    struct api_webhook *wh = api_webhook_new(url, &o, err, sizeof(err));
    assert_non_null(wh);
    api_webhook_push(wh, 1, "{}", 2);
    struct event_webhook_stats st;
    uint64_t deadline = clock_monotonic_ms() + 3000;
    do {
        usleep(2000);
        api_webhook_stats(wh, &st);
    } while (st.failed_attempts < 1 && clock_monotonic_ms() < deadline);
    assert_int_equal(st.failed_attempts, 1);       /* event 1 is in flight, sleeping ~5-10 s */
    for (int i = 2; i <= 5; i++) api_webhook_push(wh, (uint64_t)i, "{}", 2);
    api_webhook_stats(wh, &st);
    assert_int_equal(st.dropped, 2);               /* 2 and 3 made room for 4 and 5 */
    assert_int_equal(st.queued, 3);
    assert_int_equal(st.delivered, 0);
    uint64_t t0 = clock_monotonic_ms();
    api_webhook_free(wh);                          /* must not wait out the backoff */
    assert_true(clock_monotonic_ms() - t0 < 1000);
}

/* The end reports a view's webhook gives (event_bus_set_webhook_done): 1 for
 * each 2xx, 0 for each event dropped by the queue or left at free, once each. */
struct done_log {
    pthread_mutex_t mu;
    int n;
    uint64_t seq[16];
    int delivered[16];
};
static void on_done(uint64_t seq, int delivered, void *arg)
{
    struct done_log *d = arg;
    pthread_mutex_lock(&d->mu);
    if (d->n < 16) {
        d->seq[d->n] = seq;
        d->delivered[d->n] = delivered;
    }
    d->n++;
    pthread_mutex_unlock(&d->mu);
}

static void test_done_reports(void **state)
{
    (void)state;
    struct done_log d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct hook_server *s = server_start(ANSWER_STATUS, 1, 503);
    char url[128], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/h", s->port);
    struct api_webhook_options o = {.backoff_initial_ms = 10, .backoff_max_ms = 10};
    struct api_webhook *wh = api_webhook_new(url, &o, err, sizeof(err));
    assert_non_null(wh);
    api_webhook_set_done(wh, on_done, &d);
    api_webhook_push(wh, 4, "{\"seq\":4}", 9);
    api_webhook_push(wh, 5, "{\"seq\":5}", 9);
    wait_delivered(wh, 2, 5000);
    api_webhook_free(wh);
    server_stop(s);
    assert_int_equal(d.n, 2); /* the 503 is retried, not reported */
    assert_true(d.seq[0] == 4 && d.delivered[0] == 1 && d.seq[1] == 5 && d.delivered[1] == 1);

    /* Nobody listening: the queue drops the oldest waiting, free leaves the rest. */
    s = server_start(ANSWER_STATUS, 0, 0);
    int port = s->port;
    server_stop(s);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/h", port);
    struct api_webhook_options o2 = {.queue_max = 1, .backoff_initial_ms = 10000, .backoff_max_ms = 10000};
    wh = api_webhook_new(url, &o2, err, sizeof(err));
    assert_non_null(wh);
    d.n = 0;
    api_webhook_set_done(wh, on_done, &d);
    api_webhook_push(wh, 1, "{}", 2);
    struct event_webhook_stats st;
    uint64_t deadline = clock_monotonic_ms() + 3000;
    do {
        usleep(2000);
        api_webhook_stats(wh, &st);
    } while (st.failed_attempts < 1 && clock_monotonic_ms() < deadline);
    api_webhook_push(wh, 2, "{}", 2);
    api_webhook_push(wh, 3, "{}", 2);  /* drops 2 */
    pthread_mutex_lock(&d.mu);
    assert_int_equal(d.n, 1);
    assert_true(d.seq[0] == 2 && d.delivered[0] == 0);
    pthread_mutex_unlock(&d.mu);
    api_webhook_free(wh);              /* 1 in flight, 3 queued: both reported undelivered */
    assert_int_equal(d.n, 3);
    assert_true(d.delivered[1] == 0 && d.delivered[2] == 0);
    assert_true((d.seq[1] == 1 && d.seq[2] == 3) || (d.seq[1] == 3 && d.seq[2] == 1));
}

static void test_stop_interrupts_post(void **state)
{
    (void)state;
    struct hook_server *s = server_start(ANSWER_HANG, 0, 0);
    char url[128], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/h", s->port);
    struct api_webhook_options o = {.timeout_ms = 20000};
    struct api_webhook *wh = api_webhook_new(url, &o, err, sizeof(err));
    api_webhook_push(wh, 1, "{}", 2);
    uint64_t deadline = clock_monotonic_ms() + 3000;
    while (server_nreq(s) < 1 && clock_monotonic_ms() < deadline) usleep(2000);
    assert_int_equal(server_nreq(s), 1);           /* the server holds the POST unanswered */
    uint64_t t0 = clock_monotonic_ms();
    api_webhook_free(wh);
    assert_true(clock_monotonic_ms() - t0 < 1000);
    server_stop(s);
}

static void test_bus_posts_events(void **state)
{
    (void)state;
    struct hook_server *s = server_start(ANSWER_STATUS, 1, 500);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ev", s->port);
    struct event_bus *bus = event_bus_new(uv_default_loop(), 8, url);
    assert_non_null(bus);
    json_t *f = json_object();
    json_object_set_new(f, "user", json_string("alice"));
    assert_int_equal(event_publish(bus, "user.online", f), 1);
    assert_int_equal(event_publish(bus, "user.offline", NULL), 2);
    struct event_webhook_stats st;
    uint64_t deadline = clock_monotonic_ms() + 5000;   /* first retry after 0.25-0.5 s */
    do {
        usleep(5000);
        event_bus_webhook_stats(bus, &st);
    } while (st.delivered < 2 && clock_monotonic_ms() < deadline);
    assert_int_equal(st.enabled, 1);
    assert_int_equal(st.delivered, 2);
    assert_int_equal(st.failed_attempts, 1);
    event_bus_free(bus);
    assert_int_equal(s->nreq, 3);
    json_error_t je;
    json_t *a = json_loads(s->body[1], 0, &je), *b = json_loads(s->body[2], 0, &je);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(json_integer_value(json_object_get(a, "seq")), 1);
    assert_string_equal(json_string_value(json_object_get(a, "type")), "user.online");
    assert_string_equal(json_string_value(json_object_get(a, "user")), "alice");
    assert_int_equal(json_integer_value(json_object_get(b, "seq")), 2);
    assert_string_equal(s->body[0], s->body[1]);     /* the retry sent the same bytes */
    json_decref(a);
    json_decref(b);
    server_stop(s);
}

static void test_httpc_framing(void **state)
{
    (void)state;
    char err[256];
    struct api_url u;
    struct api_httpc_response r;
    struct hook_server *s = server_start(ANSWER_CHUNKED, 0, 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", s->port);
    assert_int_equal(api_url_parse(url, &u, err, sizeof(err)), 0);
    assert_string_equal(u.path, "/");
    assert_int_equal(api_httpc_request(&u, "GET", "/x?y=1", NULL, NULL, NULL, 0, 2000, -1, &r, err, sizeof(err)), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 11);
    assert_string_equal(r.body, "hello world");
    api_httpc_response_free(&r);
    assert_string_equal(s->path[0], "/x?y=1");
    s->mode = ANSWER_UNTIL_CLOSE;
    assert_int_equal(api_httpc_request(&u, "GET", "/", NULL, NULL, NULL, 0, 2000, -1, &r, err, sizeof(err)), 0);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "read until close");
    assert_string_equal(r.content_type, "text/plain");
    api_httpc_response_free(&r);
    server_stop(s);

    assert_int_equal(api_url_parse("http://[::1]:8080/a/b", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.port, "8080");
    assert_string_equal(u.path, "/a/b");
    assert_int_equal(api_url_parse("http://example.org", &u, err, sizeof(err)), 0);
    assert_string_equal(u.port, "80");
    assert_int_equal(api_url_parse("https://example.org/", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "https"));
    assert_int_equal(api_url_parse("http://:80/", &u, err, sizeof(err)), -1);
    assert_int_equal(api_url_parse("http://a:0/", &u, err, sizeof(err)), -1);
    assert_int_equal(api_url_parse("http://u:p@a/", &u, err, sizeof(err)), -1);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_until_2xx_in_order), cmocka_unit_test(test_non_2xx_is_retried),
        cmocka_unit_test(test_queue_bound_and_prompt_stop), cmocka_unit_test(test_stop_interrupts_post),
        cmocka_unit_test(test_bus_posts_events),        cmocka_unit_test(test_httpc_framing),
        cmocka_unit_test(test_done_reports),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_loop_close(uv_default_loop());
    return rc;
}
