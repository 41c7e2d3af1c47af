/* test_api.c — the HTTP API server on an ephemeral port, driven by real
 * clients: the blocking HTTP client and raw sockets from helper threads, and
 * the libwebsockets client for the event stream. The server's loop runs on
 * the test's main thread, as in the daemon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "events/events.h"
#include "api/http.h"
#include "events/httpc.h"
#include "api/wsclient.h"
#include "base/clock.h"
#include "base/histogram.h"
#include "base/log.h"

#define TOKEN "s3cret"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"

struct fixture {
    uv_loop_t loop;
    uv_timer_t pump;          /* wakes uv_run(ONCE) regularly while helper threads work */
    struct event_bus *bus;
    struct api_server *srv;
    struct api_url url;
    int port;

    struct api_request *held;  /* a request the async routes keep */
    int handler_calls;
    int abort_calls;
    uv_timer_t later;
    double messages_in;
};

static void pump_cb(uv_timer_t *t) { (void)t; }

/* ---- test routes ---------------------------------------------------------- */

static void echo_route(struct api_request *req, void *user)
{
    struct fixture *f = user;
    f->handler_calls++;
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(api_method(req)));
    json_object_set_new(o, "path", json_string(api_path(req)));
    json_object_set_new(o, "id", json_string(api_param(req, "id")));
    json_object_set_new(o, "item", json_string(api_param(req, "item")));
    const char *q = api_query(req, "q");
    if (q) json_object_set_new(o, "q", json_string(q));
    json_t *b = api_body(req);
    if (b) json_object_set(o, "body", b);
    api_reply_json(req, 201, o);
}

static void param_route(struct api_request *req, void *user)
{
    (void)user;
    json_t *o = json_object();
    json_object_set_new(o, "route", json_string("param"));
    json_object_set_new(o, "id", json_string(api_param(req, "id")));
    api_reply_json(req, 200, o);
}

static void literal_route(struct api_request *req, void *user)
{
    (void)user;
    api_reply_text(req, 200, "application/json", "{\"route\":\"literal\"}");
}

static void on_abort(struct api_request *req, void *arg)
{
    struct fixture *f = arg;
    assert_ptr_equal(req, f->held);
    f->abort_calls++;
    /* answering from here is allowed and goes nowhere */
    api_reply_error(req, 504, "timeout", "client gone anyway");
    f->held = NULL;
}

static void later_cb(uv_timer_t *t)
{
    struct fixture *f = t->data;
    if (!f->held) return;
    json_t *o = json_object();
    json_object_set_new(o, "late", json_true());
    api_reply_json(f->held, 200, o);
    f->held = NULL;
}

/* answers 60 ms later from a timer */
static void async_route(struct api_request *req, void *user)
{
    struct fixture *f = user;
    f->handler_calls++;
    f->held = req;
    api_on_abort(req, on_abort, f);
    uv_timer_start(&f->later, later_cb, 60, 0);
}

/* keeps the request without an abort callback; the test answers it */
static void orphan_route(struct api_request *req, void *user)
{
    struct fixture *f = user;
    f->handler_calls++;
    f->held = req;
}

/* an answer much larger than one write chunk */
static void big_route(struct api_request *req, void *user)
{
    (void)user;
    json_t *a = json_array();
    for (int i = 0; i < 20000; i++) json_array_append_new(a, json_pack("{s:i, s:s}", "i", i, "pad", "0123456789"));
    json_t *o = json_object();
    json_object_set_new(o, "items", a);
    api_reply_json(req, 200, o);
}

static void stats_provider(json_t *stats, void *arg)
{
    (void)arg;
    json_t *m = json_object();
    json_object_set_new(m, "REGISTER", json_integer(42));
    json_object_set_new(stats, "messages_in", m);
}

static double metric_value(void *arg) { return *(double *)arg; }

static void metric_family(struct api_metric_writer *w, void *arg)
{
    (void)arg;
    api_metric_sample(w, "code", "200", 7);
    api_metric_sample(w, "code", "we\"ird\\", 1.5);
}

/* Edges 1 ms and 10 ms; observations 1 ms (on an edge: counted under it),
 * 2.5 ms and 20 s. */
static const uint64_t test_bounds_us[] = {1000, 10000};
static struct histogram test_hist;

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->pump);
    uv_timer_start(&f->pump, pump_cb, 5, 5);
    uv_timer_init(&f->loop, &f->later);
    f->later.data = f;
    f->bus = event_bus_new(&f->loop, 8, NULL);
    f->srv = api_server_new(&f->loop, "127.0.0.1:0", TOKEN, f->bus);
    assert_non_null(f->srv);
    f->port = api_server_port(f->srv);
    assert_true(f->port > 0);
    char url[64], err[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", f->port);
    assert_int_equal(api_url_parse(url, &f->url, err, sizeof(err)), 0);
    assert_int_equal(api_route(f->srv, "POST", "/api/v1/test/{id}/items/{item}", echo_route, f), 0);
    assert_int_equal(api_route(f->srv, "GET", "/api/v1/things/{id}", param_route, f), 0);
    assert_int_equal(api_route(f->srv, "GET", "/api/v1/things/special", literal_route, f), 0);
    assert_int_equal(api_route(f->srv, "GET", "/api/v1/async", async_route, f), 0);
    assert_int_equal(api_route(f->srv, "GET", "/api/v1/orphan", orphan_route, f), 0);
    assert_int_equal(api_route(f->srv, "GET", "/api/v1/big", big_route, f), 0);
    assert_int_equal(api_stats_provider(f->srv, stats_provider, NULL), 0);
    f->messages_in = 3;
    assert_int_equal(api_metric_counter(f->srv, "cascade_messages_in_total{method=\"REGISTER\"}",
                                        "SIP requests received, by method", metric_value, &f->messages_in), 0);
    assert_int_equal(api_metric_counter(f->srv, "cascade_messages_in_total{method=\"INVITE\"}", "ignored",
                                        metric_value, &f->messages_in), 0);
    assert_int_equal(api_metric_family(f->srv, "cascade_test_answers_total", "Answers\nby code",
                                       API_METRIC_COUNTER, metric_family, NULL), 0);
    histogram_init(&test_hist, test_bounds_us, 2);
    histogram_observe(&test_hist, 1000);
    histogram_observe(&test_hist, 2500);
    histogram_observe(&test_hist, 20000000);
    assert_int_equal(api_metric_histogram(f->srv, "cascade_test_seconds", "Test latency", &test_hist), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->srv) api_server_free(f->srv);
    uv_close((uv_handle_t *)&f->pump, NULL);
    uv_close((uv_handle_t *)&f->later, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);      /* lets libwebsockets close its handles */
    event_bus_free(f->bus);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* ---- clients in helper threads ------------------------------------------- */

struct call {
    const struct api_url *url;
    const char *method, *target, *headers, *body;
    int rc;
    struct api_httpc_response resp;
    json_t *json;
    char err[256];
    atomic_int done;
};

static void *call_main(void *arg)
{
    struct call *c = arg;
    c->rc = api_httpc_request(c->url, c->method, c->target, c->headers, c->body ? "application/json" : NULL,
                              c->body, c->body ? strlen(c->body) : 0, 5000, -1, &c->resp, c->err, sizeof(c->err));
    atomic_store(&c->done, 1);
    return NULL;
}

static void run_until(struct fixture *f, atomic_int *flag, int timeout_ms)
{
    uint64_t deadline = clock_monotonic_ms() + (uint64_t)timeout_ms;
    while (!atomic_load(flag) && clock_monotonic_ms() < deadline) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(atomic_load(flag));
}

static void run_for(struct fixture *f, int ms)
{
    uint64_t deadline = clock_monotonic_ms() + (uint64_t)ms;
    while (clock_monotonic_ms() < deadline) uv_run(&f->loop, UV_RUN_ONCE);
}

/* Performs one request while the loop runs; returns the status. */
static int http(struct fixture *f, struct call *c, const char *method, const char *target, const char *headers,
                const char *body)
{
    memset(c, 0, sizeof(*c));
    c->url = &f->url;
    c->method = method;
    c->target = target;
    c->headers = headers;
    c->body = body;
    pthread_t th;
    pthread_create(&th, NULL, call_main, c);
    run_until(f, &c->done, 8000);
    pthread_join(th, NULL);
    if (c->rc) fail_msg("%s %s: %s", method, target, c->err);
    if (!strncmp(c->resp.content_type, "application/json", 16)) {
        json_error_t je;
        c->json = json_loads(c->resp.body, 0, &je);
        if (!c->json) fail_msg("%s %s: answer is not JSON: %s", method, target, c->resp.body);
    }
    return c->resp.status;
}

static void call_free(struct call *c)
{
    json_decref(c->json);
    api_httpc_response_free(&c->resp);
}

static const char *jstr(json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Reads what the server sends within timeout_ms while running the loop. */
static size_t raw_read(struct fixture *f, int fd, char *buf, size_t cap, const char *until, int timeout_ms)
{
    size_t len = 0;
    uint64_t deadline = clock_monotonic_ms() + (uint64_t)timeout_ms;
    buf[0] = '\0';
    while (clock_monotonic_ms() < deadline && len < cap - 1) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5) <= 0) continue;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0) break;
        len += (size_t)r;
        buf[len] = '\0';
        if (until && strstr(buf, until)) break;
    }
    return len;
}

/* Sends all of data while running the loop (the server is on this thread, so
 * a blocking send could wait forever). Returns 0, or the errno that stopped
 * it (EPIPE, ECONNRESET: the server closed). */
static int raw_send_all(struct fixture *f, int fd, const char *data, size_t len, int timeout_ms)
{
    uint64_t deadline = clock_monotonic_ms() + (uint64_t)timeout_ms;
    while (len && clock_monotonic_ms() < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 5) <= 0) continue;
        ssize_t w = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (w < 0) return errno;
        data += w;
        len -= (size_t)w;
    }
    return len ? ETIMEDOUT : 0;
}

/* Reads until the server closes, running the loop: 0 on a clean close (EOF),
 * else the errno (ECONNRESET) or ETIMEDOUT. What was read is appended to buf. */
static int raw_read_to_close(struct fixture *f, int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t len = strlen(buf);
    uint64_t deadline = clock_monotonic_ms() + (uint64_t)timeout_ms;
    while (clock_monotonic_ms() < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5) <= 0) continue;
        char sink[4096];
        ssize_t r = recv(fd, sink, sizeof(sink), 0);
        if (r == 0) return 0;
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno;
        size_t n = (size_t)r < cap - 1 - len ? (size_t)r : cap - 1 - len;
        memcpy(buf + len, sink, n);
        len += n;
        buf[len] = '\0';
    }
    return ETIMEDOUT;
}

/* ---- HTTP tests ----------------------------------------------------------- */

static void test_auth(void **state)
{
    struct fixture *f = *state;
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/api/v1/stats", NULL, NULL), 401);
    assert_string_equal(jstr(c.json, "error"), "unauthorized");
    assert_non_null(jstr(c.json, "detail"));
    call_free(&c);
    assert_int_equal(http(f, &c, "GET", "/api/v1/stats", "Authorization: Bearer wrong\r\n", NULL), 401);
    call_free(&c);
    assert_int_equal(http(f, &c, "GET", "/api/v1/stats", "Authorization: Bearer s3cre\r\n", NULL), 401);
    call_free(&c);
    assert_int_equal(http(f, &c, "GET", "/api/v1/stats", "Authorization: Basic czNjcmV0\r\n", NULL), 401);
    call_free(&c);
    /* unknown routes do not reveal themselves without a token */
    assert_int_equal(http(f, &c, "GET", "/api/v1/nothing", NULL, NULL), 401);
    call_free(&c);

    event_publish(f->bus, "tick", NULL);
    assert_int_equal(http(f, &c, "GET", "/api/v1/stats", AUTH, NULL), 200);
    assert_string_equal(c.resp.content_type, "application/json");
    assert_int_equal(json_integer_value(json_object_get(c.json, "events")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c.json, "messages_in"), "REGISTER")), 42);
    assert_true(json_integer_value(json_object_get(json_object_get(c.json, "api"), "requests")) >= 6);
    call_free(&c);
}

static void test_bad_registrations(void **state)
{
    struct fixture *f = *state;
    /* duplicates and malformed patterns are refused (and logged) */
    assert_int_equal(api_route(f->srv, "GET", "/api/v1/things/{other}", param_route, f), -1);
    assert_int_equal(api_route(f->srv, "GET", "/api/v1/{bad", param_route, f), -1);
    assert_int_equal(api_route(f->srv, "GET", "/api/v1/{}", param_route, f), -1);
    assert_int_equal(api_route(f->srv, "GET", "relative", param_route, f), -1);
    assert_int_equal(api_route(f->srv, "BREW", "/api/v1/x", param_route, f) == 0, 1);   /* any token fits */
    assert_int_equal(api_route(f->srv, "TOOLONGMETHOD", "/api/v1/x", param_route, f), -1);
    /* the same path with another method is fine */
    assert_int_equal(api_route(f->srv, "DELETE", "/api/v1/things/{id}", param_route, f), 0);
    assert_int_equal(api_metric_gauge(f->srv, "cascade_messages_in_total", "x", metric_value, NULL), -1);
    assert_int_equal(api_metric_gauge(f->srv, "9bad", "x", metric_value, NULL), -1);
    assert_int_equal(api_metric_gauge(f->srv, "cascade_x{unclosed", "x", metric_value, NULL), -1);
    assert_int_equal(api_metric_family(f->srv, "cascade_y{a=\"b\"}", "x", API_METRIC_GAUGE, metric_family, NULL), -1);
}

static void test_metrics_without_auth(void **state)
{
    struct fixture *f = *state;
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/metrics", NULL, NULL), 200);
    assert_non_null(strstr(c.resp.content_type, "text/plain"));
    const char *b = c.resp.body;
    assert_non_null(strstr(b, "# HELP cascade_messages_in_total SIP requests received, by method\n"
                              "# TYPE cascade_messages_in_total counter\n"
                              "cascade_messages_in_total{method=\"REGISTER\"} 3\n"
                              "cascade_messages_in_total{method=\"INVITE\"} 3\n"));
    assert_null(strstr(b, "ignored"));                    /* HELP comes from the first registration */
    assert_non_null(strstr(b, "# HELP cascade_test_answers_total Answers\\nby code\n"));
    assert_non_null(strstr(b, "cascade_test_answers_total{code=\"200\"} 7\n"));
    assert_non_null(strstr(b, "cascade_test_answers_total{code=\"we\\\"ird\\\\\"} 1.5\n"));
    assert_non_null(strstr(b, "# TYPE cascade_api_ws_clients gauge\ncascade_api_ws_clients 0\n"));
    assert_non_null(strstr(b, "cascade_events_published_total 0\n"));
    assert_non_null(strstr(b, "cascade_api_requests_total 1\n"));
    assert_null(strstr(b, "cascade_webhook"));            /* no webhook configured */
    /* A histogram: cumulative buckets with le in seconds, +Inf last, the sum
     * in seconds, the count equal to the +Inf bucket. */
    assert_non_null(strstr(b, "# TYPE cascade_test_seconds histogram\n"
                              "cascade_test_seconds_bucket{le=\"0.001\"} 1\n"
                              "cascade_test_seconds_bucket{le=\"0.01\"} 2\n"
                              "cascade_test_seconds_bucket{le=\"+Inf\"} 3\n"
                              "cascade_test_seconds_sum 20.0035\n"
                              "cascade_test_seconds_count 3\n"));
    /* A number of /stats no family covers gets one of its own; messages_in
     * is left to the hand-written family it duplicates. */
    assert_non_null(strstr(b, "# TYPE cascade_events_total counter\ncascade_events_total 0\n"));
    assert_null(strstr(b, "cascade_messages_in_REGISTER"));
    call_free(&c);
    /* other methods on /metrics still need the token */
    assert_int_equal(http(f, &c, "POST", "/metrics", NULL, "{}"), 401);
    call_free(&c);
}

static void test_not_found_and_method(void **state)
{
    struct fixture *f = *state;
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/api/v1/nothing/here", AUTH, NULL), 404);
    assert_string_equal(c.resp.content_type, "application/json");
    assert_string_equal(jstr(c.json, "error"), "not-found");
    call_free(&c);
    assert_int_equal(http(f, &c, "DELETE", "/api/v1/stats", AUTH, NULL), 405);
    assert_string_equal(jstr(c.json, "error"), "method-not-allowed");
    call_free(&c);
    assert_int_equal(http(f, &c, "GET", "/api/v1/test/a/items/b", AUTH, NULL), 405);
    call_free(&c);
    /* the connection stays usable after an error: keep-alive is the server's
     * business, but a second request on a new one must work */
    assert_int_equal(http(f, &c, "GET", "/api/v1/things/7", AUTH, NULL), 200);
    call_free(&c);
}

static void test_params_query_body(void **state)
{
    struct fixture *f = *state;
    struct call c;
    assert_int_equal(http(f, &c, "POST", "/api/v1/test/34020000001320000001/items/ch%201?q=a%20b&x=1", AUTH,
                          "{\"cmd\":\"left\",\"speed\":5,\"names\":[\"\xe5\x8d\x97\"]}"),
                     201);
    assert_string_equal(jstr(c.json, "method"), "POST");
    assert_string_equal(jstr(c.json, "id"), "34020000001320000001");
    assert_string_equal(jstr(c.json, "item"), "ch 1");
    assert_string_equal(jstr(c.json, "q"), "a b");
    json_t *b = json_object_get(c.json, "body");
    assert_string_equal(jstr(b, "cmd"), "left");
    assert_int_equal(json_integer_value(json_object_get(b, "speed")), 5);
    assert_string_equal(json_string_value(json_array_get(json_object_get(b, "names"), 0)), "\xe5\x8d\x97");
    call_free(&c);

    /* no body at all: api_body() is NULL */
    assert_int_equal(http(f, &c, "POST", "/api/v1/test/x/items/y", AUTH, NULL), 201);
    assert_null(json_object_get(c.json, "body"));
    call_free(&c);

    /* a literal segment beats a capture */
    assert_int_equal(http(f, &c, "GET", "/api/v1/things/special", AUTH, NULL), 200);
    assert_string_equal(jstr(c.json, "route"), "literal");
    call_free(&c);
    assert_int_equal(http(f, &c, "GET", "/api/v1/things/other/", AUTH, NULL), 200);
    assert_string_equal(jstr(c.json, "route"), "param");
    assert_string_equal(jstr(c.json, "id"), "other");
    call_free(&c);
}

static void test_large_answer_and_head(void **state)
{
    struct fixture *f = *state;
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/api/v1/big", AUTH, NULL), 200);
    assert_true(c.resp.len > 500000);
    json_t *items = json_object_get(c.json, "items");
    assert_int_equal(json_array_size(items), 20000);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 19999), "i")), 19999);
    size_t full = c.resp.len;
    call_free(&c);

    /* HEAD: the same headers, no content, and the connection stays usable */
    int fd = raw_connect(f->port);
    const char *req = "HEAD /api/v1/big HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n"
                      "GET /api/v1/things/9 HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n";
    send(fd, req, strlen(req), 0);
    char buf[8192];
    raw_read(f, fd, buf, sizeof(buf), "\"id\":\"9\"}", 3000);
    char cl[64];
    snprintf(cl, sizeof(cl), "content-length: %zu\r\n", full);
    assert_non_null(strstr(buf, cl));
    char *second = strstr(buf + 1, "HTTP/1.1 200");
    assert_non_null(second);                               /* the HEAD answer had no body */
    assert_non_null(strstr(second, "{\"route\":\"param\",\"id\":\"9\"}"));
    close(fd);
}

static void test_bad_json(void **state)
{
    struct fixture *f = *state;
    struct call c;
    int before = f->handler_calls;
    assert_int_equal(http(f, &c, "POST", "/api/v1/test/x/items/y", AUTH, "{\"cmd\": nope}"), 400);
    assert_string_equal(jstr(c.json, "error"), "bad-json");
    call_free(&c);
    assert_int_equal(http(f, &c, "POST", "/api/v1/test/x/items/y", AUTH, "{\"a\":1,\"a\":2}"), 400);
    call_free(&c);
    assert_int_equal(f->handler_calls, before);           /* the handler never saw them */
}

static void test_body_too_large(void **state)
{
    struct fixture *f = *state;
    /* The 413 comes as soon as the head is read, while the body is still on
     * its way; the server then reads and drops the body (up to 2 MiB) and
     * only then closes: the client can write all of it, and the close is a
     * clean EOF, not a reset (which could destroy the 413 before it is read). */
    enum { DECLARED = 1500000 };
    int fd = raw_connect(f->port);
    const char *req = "POST /api/v1/test/x/items/y HTTP/1.1\r\nHost: t\r\n" AUTH
                      "Content-Type: application/json\r\nContent-Length: 1500000\r\n\r\n{\"a\":";
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    char buf[4096];
    raw_read(f, fd, buf, sizeof(buf), "\"detail\"", 5000);
    assert_non_null(strstr(buf, "HTTP/1.1 413"));
    assert_non_null(strstr(buf, "\"error\":\"too-large\""));
    assert_non_null(strstr(buf, "connection: close"));
    size_t rest = DECLARED - 5;
    char *body = malloc(rest);
    memset(body, ' ', rest);
    assert_int_equal(raw_send_all(f, fd, body, rest, 20000), 0);   /* no EPIPE: the server still reads */
    buf[0] = '\0';
    assert_int_equal(raw_read_to_close(f, fd, buf, sizeof(buf), 20000), 0);   /* EOF, not a reset */
    assert_string_equal(buf, "");                                              /* and nothing more */
    close(fd);
    free(body);

    /* a body of exactly the declared size, just above the cap, from a real
     * client: it writes everything, then reads the 413 */
    char *big = malloc(API_MAX_BODY + 16);
    memset(big, ' ', API_MAX_BODY + 15);
    big[0] = '[';
    memcpy(big + API_MAX_BODY + 10, "]", 1);
    big[API_MAX_BODY + 15] = '\0';
    struct call c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(http(f, &c, "POST", "/api/v1/test/x/items/y", AUTH, big), 413);
    assert_string_equal(jstr(c.json, "error"), "too-large");
    call_free(&c);
    free(big);

    /* beyond what the server drops (2 MiB), it closes while the client still
     * writes: the client sees the 413, or the connection reset (EPIPE or
     * ECONNRESET: the reset can destroy the 413 before it is read) */
    size_t huge = 3 * API_MAX_BODY;
    big = malloc(huge + 1);
    memset(big, ' ', huge);
    big[huge] = '\0';
    memset(&c, 0, sizeof(c));
    c.url = &f->url;
    c.method = "POST";
    c.target = "/api/v1/test/x/items/y";
    c.headers = AUTH;
    c.body = big;
    pthread_t th;
    pthread_create(&th, NULL, call_main, &c);
    run_until(f, &c.done, 20000);
    pthread_join(th, NULL);
    if (c.rc == 0) assert_int_equal(c.resp.status, 413);
    else assert_true(strstr(c.err, "Broken pipe") || strstr(c.err, "reset"));
    api_httpc_response_free(&c.resp);
    free(big);

    /* the server is fine afterwards */
    assert_int_equal(http(f, &c, "GET", "/api/v1/things/1", AUTH, NULL), 200);
    call_free(&c);
}

static void test_async_reply_from_timer(void **state)
{
    struct fixture *f = *state;
    struct call c;
    uint64_t t0 = clock_monotonic_ms();
    assert_int_equal(http(f, &c, "GET", "/api/v1/async", AUTH, NULL), 200);
    assert_true(clock_monotonic_ms() - t0 >= 50);
    assert_true(json_is_true(json_object_get(c.json, "late")));
    assert_int_equal(f->abort_calls, 0);
    assert_null(f->held);
    call_free(&c);
}

static void test_client_gone_before_async_reply(void **state)
{
    struct fixture *f = *state;
    /* with an abort callback: it runs, and the timer finds nothing to answer */
    int fd = raw_connect(f->port);
    const char *req = "GET /api/v1/async HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n";
    send(fd, req, strlen(req), 0);
    uint64_t deadline = clock_monotonic_ms() + 3000;
    while (!f->held && clock_monotonic_ms() < deadline) uv_run(&f->loop, UV_RUN_ONCE);
    assert_non_null(f->held);
    uv_timer_start(&f->later, later_cb, 3000, 0);          /* the "device" answers late */
    close(fd);
    deadline = clock_monotonic_ms() + 3000;
    while (!f->abort_calls && clock_monotonic_ms() < deadline) uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->abort_calls, 1);
    assert_null(f->held);
    later_cb(&f->later);                                   /* the late answer finds nothing to answer */
    uv_timer_stop(&f->later);

    /* without one: the request outlives the connection; answering it is a no-op */
    fd = raw_connect(f->port);
    req = "GET /api/v1/orphan HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n";
    send(fd, req, strlen(req), 0);
    deadline = clock_monotonic_ms() + 3000;
    while (!f->held && clock_monotonic_ms() < deadline) uv_run(&f->loop, UV_RUN_ONCE);
    assert_non_null(f->held);
    close(fd);
    run_for(f, 100);
    assert_int_equal(api_reply_text(f->held, 200, "application/json", "{}"), 0);
    f->held = NULL;
    run_for(f, 20);

    /* and a request still unanswered when the server stops gets its abort */
    fd = raw_connect(f->port);
    req = "GET /api/v1/async HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n";
    send(fd, req, strlen(req), 0);
    deadline = clock_monotonic_ms() + 3000;
    while (!f->held && clock_monotonic_ms() < deadline) uv_run(&f->loop, UV_RUN_ONCE);
    assert_non_null(f->held);
    uv_timer_stop(&f->later);
    api_server_free(f->srv);
    f->srv = NULL;
    assert_int_equal(f->abort_calls, 2);
    close(fd);
}

static void test_port_in_use(void **state)
{
    struct fixture *f = *state;
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", f->port);
    assert_null(api_server_new(&f->loop, listen, TOKEN, f->bus));   /* the loop still tears it down */
    assert_null(api_server_new(&f->loop, "no-port", TOKEN, f->bus));
    run_for(f, 30);
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/api/v1/stats", AUTH, NULL), 200);   /* the first one is fine */
    call_free(&c);
}

/* Connects to addr:port (IPv4 or IPv6 literal); 0 when something accepted,
 * else the errno (ECONNREFUSED: nothing listens there; EADDRNOTAVAIL,
 * ENETUNREACH: no such local address on this machine). */
static int try_connect(const char *addr, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof(*a4);
    } else {
        assert_int_equal(inet_pton(AF_INET6, addr, &a6->sin6_addr), 1);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        len = sizeof(*a6);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0) return errno;
    int rc = connect(fd, (struct sockaddr *)&ss, len) ? errno : 0;
    close(fd);
    return rc;
}

static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void test_listens_only_where_configured(void **state)
{
    struct fixture *f = *state;
    /* listen = 127.0.0.1:P: answers there, and nowhere else (not on another
     * loopback address, not on [::1], so not on [::] either) */
    assert_int_equal(try_connect("127.0.0.1", f->port), 0);
    assert_int_not_equal(try_connect("127.0.0.2", f->port), 0);
    if (have_ipv6_loopback()) assert_int_equal(try_connect("::1", f->port), ECONNREFUSED);

    /* listen = [::1]:P: only there */
    if (have_ipv6_loopback()) {
        struct api_server *v6 = api_server_new(&f->loop, "[::1]:0", TOKEN, NULL);
        assert_non_null(v6);
        int p = api_server_port(v6);
        assert_int_equal(try_connect("::1", p), 0);
        assert_int_equal(try_connect("127.0.0.1", p), ECONNREFUSED);
        run_for(f, 30);
        api_server_free(v6);
        run_for(f, 30);   /* lws releases its handles before the next server reuses fd numbers */
    }
    /* listen = 127.0.0.2:P (another loopback address) */
    struct api_server *two = api_server_new(&f->loop, "127.0.0.2:0", TOKEN, NULL);
    assert_non_null(two);
    assert_int_equal(try_connect("127.0.0.2", api_server_port(two)), 0);
    assert_int_equal(try_connect("127.0.0.1", api_server_port(two)), ECONNREFUSED);
    api_server_free(two);
    run_for(f, 30);
    /* host names are refused: a name is not an address to bind */
    assert_null(api_server_new(&f->loop, "localhost:0", TOKEN, NULL));
    run_for(f, 30);
}

static void test_no_token_only_on_loopback(void **state)
{
    struct fixture *f = *state;
    /* without a token the API is open: refused anywhere but loopback */
    assert_null(api_server_new(&f->loop, "0.0.0.0:0", "", NULL));
    assert_null(api_server_new(&f->loop, "[::]:0", "", NULL));
    assert_null(api_server_new(&f->loop, "*:0", NULL, NULL));
    assert_null(api_server_new(&f->loop, ":0", "", NULL));
    assert_null(api_server_new(&f->loop, "192.0.2.1:0", "", NULL));
    /* with one, every interface is allowed */
    struct api_server *any = api_server_new(&f->loop, "0.0.0.0:0", TOKEN, NULL);
    assert_non_null(any);
    api_server_free(any);
    run_for(f, 30);
    /* loopback addresses are fine without */
    struct api_server *lo = api_server_new(&f->loop, "127.0.0.2:0", "", NULL);
    assert_non_null(lo);
    api_server_free(lo);
    run_for(f, 30);
    if (have_ipv6_loopback()) {
        lo = api_server_new(&f->loop, "[::1]:0", "", NULL);
        assert_non_null(lo);
        api_server_free(lo);
        run_for(f, 30);
    }
    run_for(f, 30);
}

/* One raw request; returns what came back (up to the JSON body's end). */
static void raw_request(struct fixture *f, const char *req, size_t len, char *buf, size_t cap)
{
    int fd = raw_connect(f->port);
    assert_int_equal(raw_send_all(f, fd, req, len, 5000), 0);
    raw_read(f, fd, buf, cap, "\"}", 5000);
    close(fd);
}

static void test_bearer_exact_bytes(void **state)
{
    struct fixture *f = *state;
    char buf[2048];
    /* the token followed by a NUL and junk is not the token */
    static const char nul[] = "GET /api/v1/stats HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " TOKEN
                              "\0junk\r\n\r\n";
    raw_request(f, nul, sizeof(nul) - 1, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 401"));
    static const char tail[] = "GET /api/v1/stats HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " TOKEN
                               "junk\r\n\r\n";
    raw_request(f, tail, sizeof(tail) - 1, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 401"));
    static const char good[] = "GET /api/v1/stats HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " TOKEN "\r\n\r\n";
    raw_request(f, good, sizeof(good) - 1, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    /* the same for the event stream's upgrade */
    static const char up[] = "GET /api/v1/events HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Authorization: Bearer " TOKEN "\0junk\r\n\r\n";
    raw_request(f, up, sizeof(up) - 1, buf, sizeof(buf));
    assert_non_null(strstr(buf, " 401 "));
}

/* A request whose head is too large: the answer, then a clean close. */
static void expect_refused_head(struct fixture *f, const char *req, const char *status, const char *code)
{
    int fd = raw_connect(f->port);
    assert_int_equal(raw_send_all(f, fd, req, strlen(req), 5000), 0);
    char buf[4096] = "";
    assert_int_equal(raw_read_to_close(f, fd, buf, sizeof(buf), 10000), 0);
    close(fd);
    if (!strstr(buf, status)) fail_msg("wanted %s, got: %.300s", status, buf);
    char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    json_error_t je;
    json_t *j = json_loads(body + 4, 0, &je);
    assert_non_null(j);
    assert_string_equal(jstr(j, "error"), code);
    assert_non_null(jstr(j, "detail"));
    json_decref(j);
}

static void test_head_too_large(void **state)
{
    struct fixture *f = *state;
    size_t cap = 64 * 1024;
    char *req = malloc(cap), *pad = malloc(cap);
    /* a 20 KB path: 414 */
    memset(pad, 'a', 20000);
    pad[20000] = '\0';
    snprintf(req, cap, "GET /api/v1/things/%s HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n", pad);
    expect_refused_head(f, req, " 414 ", "uri-too-long");   /* HTTP/1.0: lws skipped the version with the target */
    /* ... or a 20 KB query */
    snprintf(req, cap, "GET /api/v1/things/1?q=%s HTTP/1.1\r\nHost: t\r\n" AUTH "\r\n", pad);
    expect_refused_head(f, req, " 414 ", "uri-too-long");   /* HTTP/1.0: lws skipped the version with the target */
    /* 9 KB of header fields: 431, a field lws does not know ... */
    memset(pad, 'b', 9000);
    pad[9000] = '\0';
    snprintf(req, cap, "GET /api/v1/things/1 HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n" AUTH "\r\n", pad);
    expect_refused_head(f, req, "HTTP/1.1 431 ", "headers-too-large");
    /* ... one it knows, and many small ones */
    snprintf(req, cap, "GET /api/v1/things/1 HTTP/1.1\r\nHost: t\r\nCookie: %s\r\n" AUTH "\r\n", pad);
    expect_refused_head(f, req, "HTTP/1.1 431 ", "headers-too-large");
    size_t n = (size_t)snprintf(req, cap, "GET /api/v1/things/1 HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 300; i++) n += (size_t)snprintf(req + n, cap - n, "X-H%d: 0123456789012345678901234\r\n", i);
    snprintf(req + n, cap - n, AUTH "\r\n");
    expect_refused_head(f, req, "HTTP/1.1 431 ", "headers-too-large");
    /* a head within the limits is served, on a fresh connection as ever */
    memset(pad, 'c', 3000);
    pad[3000] = '\0';
    snprintf(req, cap, "GET /api/v1/things/%s HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n" AUTH "\r\n", pad, pad);
    char buf[8192];
    raw_request(f, req, strlen(req), buf, sizeof(buf));
    if (!strstr(buf, "HTTP/1.1 200")) fail_msg("got %.300s", buf);
    free(req);
    free(pad);
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/metrics", NULL, NULL), 200);
    assert_non_null(strstr(c.resp.body, "cascade_api_responses_total{class=\"4xx\"} 5\n"));
    call_free(&c);
}

static int count_lines(FILE *fp, const char *needle, const char *needle2, int *with2)
{
    char line[2048];
    int n = 0;
    *with2 = 0;
    rewind(fp);
    while (fgets(line, sizeof(line), fp))
        if (strstr(line, needle)) {
            n++;
            if (needle2 && strstr(line, needle2)) (*with2)++;
        }
    return n;
}

static void test_refusals_logged_rate_limited(void **state)
{
    struct fixture *f = *state;
    FILE *logf = tmpfile();
    assert_non_null(logf);
    log_set_file(logf);
    log_set_level(LOG_WARN);
    /* 400 requests with a wrong token, pipelined on one connection */
    enum { N = 400 };
    static const char one[] = "GET /api/v1/stats HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer nope\r\n\r\n";
    size_t len = (sizeof(one) - 1) * N;
    char *reqs = malloc(len);
    for (int i = 0; i < N; i++) memcpy(reqs + i * (sizeof(one) - 1), one, sizeof(one) - 1);
    uint64_t t0 = clock_monotonic_ms();
    int fd = raw_connect(f->port);
    assert_int_equal(raw_send_all(f, fd, reqs, len, 30000), 0);
    int answers = 0;
    char buf[65536];
    size_t have = 0;
    uint64_t deadline = clock_monotonic_ms() + 60000;
    while (answers < N && clock_monotonic_ms() < deadline) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5) <= 0) continue;
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r <= 0) break;
        have += (size_t)r;
        buf[have] = '\0';
        /* count complete answers, keep a possibly partial tail */
        char *q = buf, *hit;
        while ((hit = strstr(q, "\"detail\""))) {
            answers++;
            q = hit + 8;
        }
        size_t keep = have - (size_t)(q - buf);
        memmove(buf, q, keep);
        have = keep;
    }
    uint64_t elapsed_s = (clock_monotonic_ms() - t0) / 1000;
    close(fd);
    assert_int_equal(answers, N);
    int with_addr;
    int lines = count_lines(logf, "refused: 401 unauthorized", "from 127.0.0.1", &with_addr);
    /* every line names the sender; at most LOG_RATELIMIT_BURST a second got through */
    assert_true(lines >= 1);
    assert_int_equal(with_addr, lines);
    assert_true((uint64_t)lines <= LOG_RATELIMIT_BURST * (elapsed_s + 2));
    /* the refusals left out are counted in the next line that gets through
     * (once a second has passed, there is one) */
    if (lines < N) {
        run_for(f, 1100);
        struct call c;
        assert_int_equal(http(f, &c, "GET", "/api/v1/stats", "Authorization: Bearer nope\r\n", NULL), 401);
        call_free(&c);
        int summary;
        count_lines(logf, "refused: 401 unauthorized", "similar)", &summary);
        assert_true(summary >= 1);
    }
    log_set_level(LOG_ERROR);
    log_set_file(stderr);
    fclose(logf);
    free(reqs);
}

/* ---- the WebSocket stream ------------------------------------------------- */

struct ws_run {
    const struct api_url *url;
    char target[128];
    const char *token;
    int want;                  /* stop after this many messages */
    pthread_mutex_t mu;
    char *msgs[64];
    int n;
    int rc;
    char err[256];
    volatile sig_atomic_t stop;
    atomic_int done;
    pthread_t th;
};

static int ws_msg(const char *text, size_t len, void *arg)
{
    struct ws_run *w = arg;
    pthread_mutex_lock(&w->mu);
    if (w->n < 64) w->msgs[w->n++] = strndup(text, len);
    int enough = w->n >= w->want;
    pthread_mutex_unlock(&w->mu);
    return enough;
}

static void *ws_main(void *arg)
{
    struct ws_run *w = arg;
    w->rc = api_ws_stream(w->url, w->target, w->token, ws_msg, w, &w->stop, w->err, sizeof(w->err));
    atomic_store(&w->done, 1);
    return NULL;
}

static struct ws_run *ws_start(struct fixture *f, const char *target, const char *token, int want)
{
    struct ws_run *w = calloc(1, sizeof(*w));
    w->url = &f->url;
    snprintf(w->target, sizeof(w->target), "%s", target);
    w->token = token;
    w->want = want;
    pthread_mutex_init(&w->mu, NULL);
    pthread_create(&w->th, NULL, ws_main, w);
    return w;
}

static void ws_finish(struct fixture *f, struct ws_run *w)
{
    run_until(f, &w->done, 8000);
    pthread_join(w->th, NULL);
}

static void ws_free(struct ws_run *w)
{
    for (int i = 0; i < w->n; i++) free(w->msgs[i]);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static json_t *ws_json(struct ws_run *w, int i)
{
    json_error_t je;
    assert_true(i < w->n);
    json_t *v = json_loads(w->msgs[i], 0, &je);
    assert_non_null(v);
    return v;
}

static int ws_clients(struct fixture *f)
{
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/api/v1/stats", AUTH, NULL), 200);
    int n = (int)json_integer_value(json_object_get(json_object_get(c.json, "api"), "ws_clients"));
    call_free(&c);
    return n;
}

static void wait_ws_clients(struct fixture *f, int n)
{
    uint64_t deadline = clock_monotonic_ms() + 5000;
    while (ws_clients(f) != n && clock_monotonic_ms() < deadline) run_for(f, 10);
    assert_int_equal(ws_clients(f), n);
}

static json_t *fields(const char *k, const char *v)
{
    json_t *o = json_object();
    json_object_set_new(o, k, json_string(v));
    return o;
}

static void test_ws_since_then_live(void **state)
{
    struct fixture *f = *state;
    event_publish(f->bus, "user.online", fields("user", "alice"));
    event_publish(f->bus, "user.online", fields("user", "bob"));
    event_publish(f->bus, "user.offline", fields("user", "alice"));
    struct ws_run *w = ws_start(f, "/api/v1/events?since=1", TOKEN, 4);
    wait_ws_clients(f, 1);
    event_publish(f->bus, "gb.device.online", fields("id", "34020000001320000001"));
    event_publish(f->bus, "gb.device.offline", fields("reason", "keepalive-timeout"));
    ws_finish(f, w);
    assert_int_equal(w->rc, API_WS_STOPPED);
    assert_int_equal(w->n, 4);
    const char *types[] = {"user.online", "user.offline", "gb.device.online", "gb.device.offline"};
    for (int i = 0; i < 4; i++) {
        json_t *ev = ws_json(w, i);
        assert_int_equal(json_integer_value(json_object_get(ev, "seq")), i + 2);
        assert_string_equal(jstr(ev, "type"), types[i]);
        assert_non_null(jstr(ev, "time"));
        json_decref(ev);
    }
    json_t *ev = ws_json(w, 0);
    assert_string_equal(jstr(ev, "user"), "bob");
    json_decref(ev);
    ws_free(w);
    wait_ws_clients(f, 0);
}

static void test_ws_lost_notice_and_live_only(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 12; i++) event_publish(f->bus, "tick", NULL);   /* ring 8: holds 5..12 */
    struct ws_run *w = ws_start(f, "/api/v1/events?since=0", TOKEN, 9);
    ws_finish(f, w);
    assert_int_equal(w->rc, API_WS_STOPPED);
    json_t *ev = ws_json(w, 0);
    assert_string_equal(jstr(ev, "type"), "events.lost");
    assert_int_equal(json_integer_value(json_object_get(ev, "from")), 1);
    assert_int_equal(json_integer_value(json_object_get(ev, "to")), 4);
    assert_int_equal(json_integer_value(json_object_get(ev, "count")), 4);
    json_decref(ev);
    for (int i = 1; i < 9; i++) {
        ev = ws_json(w, i);
        assert_int_equal(json_integer_value(json_object_get(ev, "seq")), i + 4);
        json_decref(ev);
    }
    ws_free(w);

    /* without since: only what is published after the upgrade */
    w = ws_start(f, "/api/v1/events", TOKEN, 1);
    wait_ws_clients(f, 1);
    event_publish(f->bus, "live", NULL);
    ws_finish(f, w);
    assert_int_equal(w->n, 1);
    ev = ws_json(w, 0);
    assert_int_equal(json_integer_value(json_object_get(ev, "seq")), 13);
    assert_string_equal(jstr(ev, "type"), "live");
    json_decref(ev);
    ws_free(w);
}

static void test_ws_refused(void **state)
{
    struct fixture *f = *state;
    struct ws_run *w = ws_start(f, "/api/v1/events", "wrong", 1);
    ws_finish(f, w);
    assert_int_equal(w->rc, API_WS_FAILED);
    assert_int_equal(w->n, 0);
    assert_non_null(strstr(w->err, "unauthorized"));     /* the upgrade got a 401 */
    ws_free(w);
    /* a raw upgrade without a token gets the JSON error */
    int fd = raw_connect(f->port);
    const char *up = "GET /api/v1/events HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    send(fd, up, strlen(up), 0);
    char buf[2048];
    raw_read(f, fd, buf, sizeof(buf), "}", 3000);
    assert_non_null(strstr(buf, " 401 "));
    assert_non_null(strstr(buf, "{\"error\":\"unauthorized\""));
    close(fd);
    w = ws_start(f, "/api/v1/other", TOKEN, 1);
    ws_finish(f, w);
    assert_int_equal(w->rc, API_WS_FAILED);
    ws_free(w);
    /* a plain GET of the stream says to upgrade */
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/api/v1/events", AUTH, NULL), 426);
    assert_string_equal(jstr(c.json, "error"), "upgrade-required");
    call_free(&c);
}

/* A browser's way in: POST /events/ticket (authorized), then the upgrade
 * with ?ticket= and no header. The ticket opens one stream, not a second. */
static void test_ws_ticket_single_use(void **state)
{
    struct fixture *f = *state;
    struct call c;
    assert_int_equal(http(f, &c, "POST", "/api/v1/events/ticket", NULL, NULL), 401);
    call_free(&c);
    assert_int_equal(http(f, &c, "POST", "/api/v1/events/ticket", AUTH, NULL), 200);
    char target[128];
    snprintf(target, sizeof(target), "/api/v1/events?since=0&ticket=%s", jstr(c.json, "ticket"));
    assert_int_equal(json_integer_value(json_object_get(c.json, "expires_in")), 30);
    call_free(&c);
    event_publish(f->bus, "user.online", fields("user", "alice"));
    struct ws_run *w = ws_start(f, target, NULL, 1);
    ws_finish(f, w);
    assert_int_equal(w->rc, API_WS_STOPPED);
    assert_int_equal(w->n, 1);
    ws_free(w);
    w = ws_start(f, target, NULL, 1);   /* used up */
    ws_finish(f, w);
    assert_int_equal(w->rc, API_WS_FAILED);
    assert_non_null(strstr(w->err, "unauthorized"));
    ws_free(w);
    assert_int_equal(http(f, &c, "GET", "/api/v1/stats", AUTH, NULL), 200);
    json_t *t = json_object_get(c.json, "event_tickets");
    assert_int_equal(json_integer_value(json_object_get(t, "issued")), 1);
    assert_int_equal(json_integer_value(json_object_get(t, "redeemed")), 1);
    assert_int_equal(json_integer_value(json_object_get(t, "refused")), 1);
    call_free(&c);
}

static void test_ws_slow_client_dropped(void **state)
{
    struct fixture *f = *state;
    struct ws_run *w = ws_start(f, "/api/v1/events", TOKEN, 1000);
    wait_ws_clients(f, 1);
    /* Within one loop turn the client cannot read anything: ten events in a
     * ring of eight push its cursor out of the ring. */
    for (int i = 0; i < 10; i++) event_publish(f->bus, "burst", NULL);
    ws_finish(f, w);
    assert_int_equal(w->rc, API_WS_CLOSED);
    assert_int_equal(w->n, 0);
    ws_free(w);
    wait_ws_clients(f, 0);
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/metrics", NULL, NULL), 200);
    assert_non_null(strstr(c.resp.body, "cascade_api_ws_slow_disconnects_total 1\n"));
    call_free(&c);
}

static void test_events_recent(void **state)
{
    struct fixture *f = *state;
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/api/v1/events/recent", AUTH, NULL), 200);
    assert_int_equal(json_array_size(json_object_get(c.json, "events")), 0);
    assert_int_equal(json_integer_value(json_object_get(c.json, "last_seq")), 0);
    call_free(&c);
    for (int i = 0; i < 10; i++) event_publish(f->bus, "tick", NULL);
    assert_int_equal(http(f, &c, "GET", "/api/v1/events/recent?since=7", AUTH, NULL), 200);
    json_t *ev = json_object_get(c.json, "events");
    assert_int_equal(json_array_size(ev), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 0), "seq")), 8);
    assert_int_equal(json_integer_value(json_object_get(c.json, "lost")), 0);
    call_free(&c);
    assert_int_equal(http(f, &c, "GET", "/api/v1/events/recent?since=0&limit=2", AUTH, NULL), 200);
    ev = json_object_get(c.json, "events");
    assert_int_equal(json_array_size(ev), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 0), "seq")), 3);
    assert_int_equal(json_integer_value(json_object_get(c.json, "lost")), 2);
    assert_int_equal(json_integer_value(json_object_get(c.json, "last_seq")), 10);
    call_free(&c);
    assert_int_equal(http(f, &c, "GET", "/api/v1/events/recent?since=x", AUTH, NULL), 400);
    call_free(&c);
}

static void test_open_access_without_token(void **state)
{
    struct fixture *f = *state;
    struct api_server *open = api_server_new(&f->loop, "127.0.0.1:0", "", NULL);
    assert_non_null(open);
    struct api_url saved = f->url;
    char url[64], err[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", api_server_port(open));
    api_url_parse(url, &f->url, err, sizeof(err));
    struct call c;
    assert_int_equal(http(f, &c, "GET", "/api/v1/stats", NULL, NULL), 200);
    assert_null(json_object_get(c.json, "events"));        /* no bus */
    call_free(&c);
    assert_int_equal(http(f, &c, "GET", "/api/v1/events/recent", NULL, NULL), 404);
    call_free(&c);
    f->url = saved;
    api_server_free(open);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_registrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_without_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_query_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_answer_and_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_reply_from_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_before_async_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_since_then_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_lost_notice_and_live_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_ticket_single_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_slow_client_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_recent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_access_without_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listens_only_where_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_token_only_on_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bearer_exact_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_logged_rate_limited, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
