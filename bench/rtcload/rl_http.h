/* rl_http.h — the load viewer's HTTP/1.1 client on libuv, for signaling
 * only (WHEP POST/DELETE, the Janus HTTP API and its long poll): plain
 * http:// URLs, one TCP connection per request with "Connection: close",
 * the response read to EOF. At most a set number of requests run at once;
 * the rest wait in a queue (a thousand viewers joining must not open a
 * thousand connections to the server at the same instant). */
#ifndef CASCADE_BENCH_RL_HTTP_H
#define CASCADE_BENCH_RL_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct {
    int status;             /* 0: no response (connect or read failed) */
    const char *location;   /* Location header or NULL */
    const char *body;       /* terminated */
    size_t body_len;
} rl_http_resp_t;

/* Called once per request; resp and its strings live only during the call. */
typedef void (*rl_http_cb)(void *user, const rl_http_resp_t *resp);

/* Splits "http://host[:port]/path" (IPv4 literal or a name resolved now,
 * blocking: setup only). 0, or -1. */
int rl_http_url(const char *url, struct sockaddr_in *addr, char *hostport, size_t hcap, char *path, size_t pcap);

void rl_http_init(uv_loop_t *loop, int max_inflight);
/* Queues a request. method "GET"/"POST"/"DELETE"; ctype and auth (the
 * Authorization header's value) may be NULL; body may be NULL. */
void rl_http_request(const struct sockaddr_in *addr, const char *hostport, const char *method, const char *path,
                     const char *ctype, const char *auth, const char *body, size_t body_len, rl_http_cb cb,
                     void *user);
/* Requests queued or running. */
size_t rl_http_pending(void);
/* At exit: drops the queue and closes the running requests without
 * calling their callbacks; their memory goes once the loop runs the
 * close callbacks. */
void rl_http_abort_all(void);

#endif
