/* http.h — the HTTP JSON API server: libwebsockets on the daemon's libuv loop.
 *
 * The daemon owns the uv_loop_t; the server adds its sockets to it (lws
 * "foreign loop"). Everything here runs on that loop's thread.
 *
 *   struct api_server *srv = api_server_new(loop, "127.0.0.1:8080", token, bus);
 *   api_route(srv, "GET", "/api/v1/gb/devices/{id}", device_show, gb);
 *
 *   static void device_show(struct api_request *req, void *user) {
 *       struct gb_upper *gb = user;
 *       struct gb_device *d = gb_device_find(gb, api_param(req, "id"));
 *       if (!d) { api_reply_error(req, 404, "not-found", "no device %s", api_param(req, "id")); return; }
 *       api_reply_json(req, 200, gb_device_to_json(d));
 *   }
 *
 * A handler answers exactly once, now or later. To answer later (after a
 * device replied, or from a timeout with 504), keep the request pointer and
 * register api_on_abort(): if the client goes away first, the abort callback
 * runs, the request is freed right after it returns, and the handler's owner
 * must forget the pointer. Without an abort callback the request stays valid
 * until it is answered and the answer is then discarded.
 *
 * Bodies: a route registered with api_route() gets its body parsed as JSON
 * (400 bad-json otherwise) and read with api_body(). A route registered with
 * api_route_ex(..., API_ROUTE_RAW_BODY) gets it unparsed (WHIP/WHEP offers are
 * application/sdp): the handler checks api_header(req, "content-type") and
 * reads api_body_raw(). Either way bodies above API_MAX_BODY get 413.
 *
 * Cross-origin (API_ROUTE_CORS, for browser WHIP/WHEP players on another
 * origin): an OPTIONS preflight for such a path is answered 204 without a
 * token, with Access-Control-Allow-Origin: *, -Allow-Methods (the path's
 * methods and OPTIONS), -Allow-Headers: Authorization, Content-Type and
 * -Max-Age; every answer on such a route (401 included) carries
 * Access-Control-Allow-Origin: * and Access-Control-Expose-Headers: Location.
 *
 * Built-in routes: GET /metrics (no auth), GET /api/v1/stats,
 * GET /api/v1/events (WebSocket; ?since=SEQ), GET /api/v1/events/recent?since=SEQ.
 * Every route except GET /metrics needs "Authorization: Bearer <token>" unless
 * the token is empty. Errors are {"error": "<short-code>", "detail": "..."}. */
#ifndef CASCADE_API_HTTP_H
#define CASCADE_API_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

#include "events/events.h"

struct api_server;
struct api_request;

#define API_MAX_BODY (1024 * 1024)   /* request bodies above this get 413 */
#define API_MAX_URI 4096             /* request targets (path and query) this long get 414 */
#define API_MAX_HEADERS 8192         /* a request head (line and fields) above this gets 431 */
#define API_MAX_PARAMS 8             /* {captures} per route */
#define API_MAX_SEGMENTS 16          /* path segments per route */

typedef void (*api_handler)(struct api_request *req, void *user);
typedef void (*api_abort_cb)(struct api_request *req, void *arg);
/* Adds members to the /api/v1/stats object. */
typedef void (*api_stats_fn)(json_t *stats, void *arg);

/* listen: "host:port" or "[v6]:port"; port 0 picks a free port (see
 * api_server_port). token: NULL/"" allows every request (logged as a
 * warning). bus: may be NULL (no event routes then). Returns NULL (logged)
 * when the address cannot be bound; the loop must still run afterwards so
 * that libwebsockets can release what it had set up. */
struct api_server *api_server_new(uv_loop_t *loop, const char *listen, const char *token, struct event_bus *bus);
/* The same serving https:// and wss:// only: tls_cert (PEM chain) and
 * tls_key, both set or both NULL/"" (then as api_server_new). NULL (logged,
 * naming the file) when a file cannot be read or lws refuses it. */
struct api_server *api_server_new_tls(uv_loop_t *loop, const char *listen, const char *token, const char *tls_cert,
                                      const char *tls_key, struct event_bus *bus);

/* Closes every connection and starts tearing libwebsockets down. Pending
 * requests get their abort callback; requests without one are freed too, so
 * owners must not answer after this. The memory is released by the loop: keep
 * running it (uv_run) until it has no more handles, as with uv_close().
 * Do not call from inside an API handler. */
void api_server_free(struct api_server *srv);

int api_server_port(const struct api_server *srv);   /* the bound TCP port */
uv_loop_t *api_server_loop(const struct api_server *srv);   /* the loop it serves on (its clock, uv_now) */

/* method: "GET", "POST", "PUT", "PATCH" or "DELETE". pattern: an absolute
 * path whose segments are literals or {name} captures. A literal segment
 * wins over a capture at the same position. Returns 0, or -1 (logged) on a
 * bad pattern, duplicate route, or allocation failure. */
int api_route(struct api_server *srv, const char *method, const char *pattern, api_handler handler, void *user);

/* Route flags for api_route_ex (see the top of the file). */
#define API_ROUTE_RAW_BODY 0x1u      /* the body is not parsed as JSON: api_body_raw() */
#define API_ROUTE_CORS 0x2u          /* answers preflights; answers carry CORS headers */

/* api_route with flags (API_ROUTE_*; 0 is api_route). Routes sharing a path
 * should agree on API_ROUTE_CORS: a preflight is answered when any of them
 * has it. */
int api_route_ex(struct api_server *srv, const char *method, const char *pattern, api_handler handler, void *user,
                 unsigned flags);

/* Providers are called in registration order for each GET /api/v1/stats. */
int api_stats_provider(struct api_server *srv, api_stats_fn fn, void *arg);

/* Request accessors. Strings stay valid until the request is answered. */
const char *api_method(const struct api_request *req);
const char *api_path(const struct api_request *req);      /* decoded path, no query */
const char *api_param(const struct api_request *req, const char *name);  /* NULL if absent */
const char *api_query(const struct api_request *req, const char *name);  /* decoded; NULL if absent */
json_t *api_body(const struct api_request *req);           /* borrowed; NULL when no body */
/* The body as sent (any route), NUL-terminated (the NUL is not counted in
 * *len; the body may hold NULs of its own). NULL, *len 0, when there is none. */
const char *api_body_raw(const struct api_request *req, size_t *len);
/* A request header by name (case-insensitive, without the colon): the
 * fields libwebsockets parses ("content-type", "authorization", "origin",
 * "user-agent", ...) and any other one by its lower-case name. A copy that
 * stays valid until the request is answered; NULL when absent (or when the
 * client is gone). Repeated fields are joined by lws with ", " or "; ". */
const char *api_header(struct api_request *req, const char *name);
const char *api_remote(const struct api_request *req);    /* peer address for logs */
struct api_server *api_request_server(const struct api_request *req);

void api_on_abort(struct api_request *req, api_abort_cb cb, void *arg);

/* Logs that a handler refuses the request (method, path, sender, status,
 * code), rate-limited per server: call before answering a client's error. */
void api_log_refused(struct api_request *req, int status, const char *code);

/* Answers. Each returns 0, or -1 when the request was already answered (a
 * bug, logged) — the body is released either way. After an answer the request
 * pointer must not be used again. */
int api_reply_json(struct api_request *req, int status, json_t *body);   /* body stolen; NULL = {} */
int api_reply_error(struct api_request *req, int status, const char *code, const char *detail_fmt, ...)
    __attribute__((format(printf, 4, 5)));
int api_reply_text(struct api_request *req, int status, const char *content_type, const char *text);
int api_reply_bytes(struct api_request *req, int status, const char *content_type, const char *data, size_t len);
/* A streaming answer (HTTP-FLV and other live bodies): the headers go out
 * now, without a length and with "Connection: close"; the body is whatever
 * the owner has as the socket can take it, pulled through ops; the
 * connection closes when the owner ends the body. One copy of the data
 * serves every viewer: pull() copies from the owner's shared buffer into the
 * socket's write buffer, at the viewer's own pace. */
struct api_stream_ops {
    /* Copies up to cap bytes of body into buf. Returns the count (> 0), 0
     * when nothing is ready now (call api_stream_wake when there is), or -1
     * to end the body (the connection closes; gone() is not called). */
    long (*pull)(void *arg, unsigned char *buf, size_t cap);
    /* The client went away or the server is stopping: no call after this,
     * and the request pointer must be forgotten. May come from inside
     * api_reply_stream (the client left before the answer). */
    void (*gone)(void *arg);
    /* Optional, both or neither: the body without a copy, used on plain
     * HTTP/1.1 (pull serves TLS). peek() points up to max iovecs at what is
     * ready now and returns their count (> 0), 0 when nothing is (call
     * api_stream_wake when there is), or -1 to end the body (as pull's -1:
     * no call after it, gone() is not called). consume(n) says the socket
     * took the first n of those bytes; the rest is offered again. As much
     * as the socket takes goes out per turn of the loop, and wakes of many
     * streams in one turn are served together, once, after it. */
    int (*peek)(void *arg, struct iovec *iov, int max);
    void (*consume)(void *arg, size_t n);
};
int api_reply_stream(struct api_request *req, int status, const char *content_type,
                     const struct api_stream_ops *ops, void *arg);
/* There is body to pull now (the server asks when the socket can take it). */
void api_stream_wake(struct api_request *req);

/* A header for the answer ("Location", "/api/v1/whip/room/id"), set before
 * calling api_reply_*; name and value are copied, and must be one line (no
 * CR/LF: refused), the name a token of at most 64 bytes, the value at most
 * 1024. At most API_MAX_EXTRA_HEADERS. 0, or -1 (logged) when
 * refused or the request was already answered; the answer is sent without
 * it. */
#define API_MAX_EXTRA_HEADERS 8
int api_add_header(struct api_request *req, const char *name, const char *value);

/* ---- Prometheus metrics (GET /metrics, text format 0.0.4) ----------------
 * A name may carry fixed labels: "cascade_messages_in_total{method=\"REGISTER\"}".
 * Metrics sharing the part before '{' form one family: HELP/TYPE are written
 * once, from the first registration. For labels known only at scrape time,
 * register a family collector and emit samples from it. */
typedef double (*api_metric_fn)(void *arg);
enum api_metric_type { API_METRIC_COUNTER, API_METRIC_GAUGE, API_METRIC_HISTOGRAM };
struct api_metric_writer;
typedef void (*api_metric_collect_fn)(struct api_metric_writer *w, void *arg);

int api_metric_counter(struct api_server *srv, const char *name, const char *help, api_metric_fn fn, void *arg);
int api_metric_gauge(struct api_server *srv, const char *name, const char *help, api_metric_fn fn, void *arg);
int api_metric_family(struct api_server *srv, const char *name, const char *help, enum api_metric_type type,
                      api_metric_collect_fn collect, void *arg);
/* From a collector: one sample with one label (value escaped here), or with
 * no label when label_name is NULL. */
void api_metric_sample(struct api_metric_writer *w, const char *label_name, const char *label_value, double value);
/* From a collector of an API_METRIC_HISTOGRAM family: the _bucket (le in
 * seconds, cumulative, +Inf last), _sum (seconds) and _count samples of h,
 * a snapshot (base/histogram.h), with one label or none. */
struct histogram;
void api_metric_histogram_sample(struct api_metric_writer *w, const char *label_name, const char *label_value,
                                 const struct histogram *h);
/* A histogram family of one unlabelled histogram, read at scrape time (h
 * must outlive the server). */
int api_metric_histogram(struct api_server *srv, const char *name, const char *help, const struct histogram *h);

#endif
