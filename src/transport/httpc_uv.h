/* httpc_uv.h — one HTTP/1.1 request on the libuv loop, without blocking it
 * (the blocking client, events/httpc.h, is for threads that may block).
 *
 * Used by a node to forward an API request to another node of the cluster
 * (gb/upper/query_nodes.c). One request per connection ("Connection:
 * close"), to a numeric address only (no resolver call on the loop), over
 * plain TCP or TLS (https://: a client session of a tls_context, the
 * server's certificate chain and name checked as transport/tls.h does).
 * The answer is read with api_httpc_parse (events/httpc.h), so its framing,
 * header and body caps are the blocking client's.
 *
 * Bounded: a deadline for the whole exchange (connect, send, answer) on a
 * uv timer, and the answer's body under max_body. The callback runs
 * exactly once, from the loop (never inside httpc_uv_start), unless the
 * request is cancelled first. Loop thread only. */
#ifndef CASCADE_EVENTS_HTTPC_UV_H
#define CASCADE_EVENTS_HTTPC_UV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "events/httpc.h"

struct httpc_uv;
struct tls_context;

struct httpc_uv_request {
    const struct sockaddr *to;      /* AF_INET or AF_INET6, with the port */
    const char *host;               /* the Host header's value ("10.0.0.2:8080") */
    const char *method;             /* "GET", "POST", ... */
    const char *target;             /* origin-form, "/api/v1/..." */
    const char *headers;            /* NULL or complete "Name: value\r\n" lines */
    const char *content_type;       /* with body */
    const char *body;               /* NULL: none (Content-Length 0 for POST/PUT/PATCH) */
    size_t body_len;
    uint32_t timeout_ms;            /* the whole exchange; 0: 10 s */
    size_t max_body;                /* the answer's body cap */
    struct tls_context *tls;        /* non-NULL: https, a client session of it */
    const char *tls_name;           /* the name the server's certificate must carry (a DNS
                                       name, sent as SNI, or a numeric address); NULL: the
                                       address of `to` */
};

/* rc 0: resp is the answer (valid during the call; its body NUL-terminated).
 * rc < 0 (resp NULL, why says what): -ETIMEDOUT (no whole answer by the
 * deadline), -ECONNREFUSED and the other connect errors, -ECONNRESET (the
 * peer closed or reset before a whole answer), -EPROTO (not an HTTP answer),
 * -EMSGSIZE (over max_body or a 64 KiB head), -ENOMEM, -ECONNABORTED (the TLS
 * handshake failed: why says why, e.g. the certificate did not verify). */
typedef void (*httpc_uv_cb)(void *arg, int rc, const struct api_httpc_response *resp, const char *why);

/* 0 with *h set (cb runs later, exactly once, unless httpc_uv_cancel), or
 * -EINVAL (no address, method, target, host; a CR or LF in them), -ENOMEM,
 * or the socket's error, without cb. */
int httpc_uv_start(uv_loop_t *loop, const struct httpc_uv_request *r, httpc_uv_cb cb, void *arg,
                   struct httpc_uv **h);
/* cb will not run; the connection closes (its memory goes once libuv has
 * closed the handles: the loop must run on). */
void httpc_uv_cancel(struct httpc_uv *h);

#endif
