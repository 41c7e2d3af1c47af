/* httpc.h — a small blocking HTTP/1.1 client over plain sockets.
 *
 * Used where blocking is allowed: the webhook worker thread and cascadectl.
 * One request per connection ("Connection: close"); the answer body is read
 * by Content-Length, chunked transfer coding, or until the peer closes.
 * Plain http:// only — there is no TLS here.
 *
 * Every wait honours a deadline (timeout_ms for the whole exchange) and, when
 * cancel_fd >= 0, returns early as soon as that descriptor becomes readable
 * (the webhook's shutdown pipe). */
#ifndef CASCADE_EVENTS_HTTPC_H
#define CASCADE_EVENTS_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

struct api_url {
    char host[256];   /* name or address, without [] for IPv6 */
    char port[8];
    char path[1024];  /* starts with '/'; "/" when the URL had none */
};

/* Parses "http://host[:port][/path]". Returns 0, or -1 with a reason in err
 * ("https is not supported", "bad port", ...). */
int api_url_parse(const char *url, struct api_url *out, char *err, size_t errcap);

struct api_httpc_response {
    int status;        /* 100..599 */
    char *body;        /* malloc'ed, NUL-terminated (may contain NULs before len) */
    size_t len;
    char content_type[128];
};

#define API_HTTPC_MAX_BODY (64u * 1024 * 1024)

/* Sends method target (an origin-form path such as "/api/v1/stats?x=1") to
 * url's host and port. extra_headers: NULL or complete "Name: value\r\n" lines.
 * body may be NULL (no Content-Length sent for GET/DELETE without body).
 * Returns 0 with *resp filled (free with api_httpc_response_free), or -1 with
 * the reason in err (connect refused, timeout, cancelled, bad answer). */
int api_httpc_request(const struct api_url *url, const char *method, const char *target,
                      const char *extra_headers, const char *content_type, const char *body,
                      size_t body_len, int timeout_ms, int cancel_fd,
                      struct api_httpc_response *resp, char *err, size_t errcap);
void api_httpc_response_free(struct api_httpc_response *resp);

/* Reads an HTTP/1.1 answer from the bytes received so far, [buf, buf+n)
 * (pure: what the clients here read, tests/fuzz/fuzz_cluster.c feeds it a
 * peer node's answer). eof: the peer closed after them. 1xx heads are
 * skipped; the final head must be under 64 KiB; the body is framed by
 * chunked coding, Content-Length, or the close (RFC 9112 §6.3), and none is
 * read for no_body_method (HEAD), 204 or 304. Returns 1 with *out filled
 * (free with api_httpc_response_free), 0 when more bytes are needed, -1
 * when malformed or the body is over max_body, -2 when the peer closed
 * before the answer was whole (reason in err for both). */
int api_httpc_parse(const char *buf, size_t n, bool eof, bool no_body_method, size_t max_body,
                    struct api_httpc_response *out, char *err, size_t errcap);

#endif
