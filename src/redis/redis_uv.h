/* redis_uv.h — hiredis's async event hooks on a libuv loop.
 *
 * hiredis ships an adapter for libuv (hiredis/adapters/libuv.h); the one in
 * Debian's hiredis 0.14 drops a uv_poll callback whose status is an error
 * (libuv reports a refused or reset non-blocking connect that way, and stops
 * the poll), so hiredis never learns that a connect failed and the context
 * hangs in "connecting". This is the same set of hooks (read/write interest
 * on a uv_poll_t, closed by hiredis's cleanup) except that an error status
 * is handed to hiredis as the events it was waiting for: its read or write
 * handler then finds the socket error itself (getsockopt / read) and
 * reports it through the connect or disconnect callback. */
#ifndef CASCADE_REDIS_UV_H
#define CASCADE_REDIS_UV_H

#include <uv.h>

struct redisAsyncContext;

/* Attaches ac to loop. 0, -EEXIST when ac already has event hooks, or a
 * negative libuv/errno code. The poll handle is freed once libuv has
 * closed it, after hiredis frees the context: the loop must run then. */
int redis_uv_attach(struct redisAsyncContext *ac, uv_loop_t *loop);

#endif
