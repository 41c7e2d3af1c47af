/* redis_uv.c — hiredis event hooks on libuv (redis_uv.h). */
#include "redis/redis_uv.h"

#include <errno.h>
#include <stdlib.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

struct redis_uv {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis has cleaned up */
    int events;            /* UV_READABLE | UV_WRITABLE wanted */
};

static void redis_uv_on_poll(uv_poll_t *h, int status, int events)
{
    struct redis_uv *u = h->data;
    /* On an error libuv stops the poll and gives no events: let hiredis
     * look at the socket for whatever it was waiting for. */
    int ev = status < 0 ? u->events : events;
    if (u->ac && (ev & UV_READABLE)) redisAsyncHandleRead(u->ac);
    if (u->ac && (ev & UV_WRITABLE)) redisAsyncHandleWrite(u->ac);
}

static void redis_uv_update(struct redis_uv *u, int events)
{
    u->events = events;
    if (events) uv_poll_start(&u->poll, events, redis_uv_on_poll);
    else uv_poll_stop(&u->poll);
}

static void redis_uv_add_read(void *p)
{
    struct redis_uv *u = p;
    redis_uv_update(u, u->events | UV_READABLE);
}

static void redis_uv_del_read(void *p)
{
    struct redis_uv *u = p;
    redis_uv_update(u, u->events & ~UV_READABLE);
}

static void redis_uv_add_write(void *p)
{
    struct redis_uv *u = p;
    redis_uv_update(u, u->events | UV_WRITABLE);
}

static void redis_uv_del_write(void *p)
{
    struct redis_uv *u = p;
    redis_uv_update(u, u->events & ~UV_WRITABLE);
}

static void redis_uv_on_closed(uv_handle_t *h) { free(h->data); }

/* hiredis is freeing the context (the socket is closed after this). */
static void redis_uv_cleanup(void *p)
{
    struct redis_uv *u = p;
    u->ac = NULL;
    uv_close((uv_handle_t *)&u->poll, redis_uv_on_closed);
}

int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return -EEXIST;
    struct redis_uv *u = calloc(1, sizeof(*u));
    if (!u) return -ENOMEM;
    int rc = uv_poll_init(loop, &u->poll, ac->c.fd);
    if (rc < 0) {
        free(u);
        return rc;
    }
    u->poll.data = u;
    u->ac = ac;
    ac->ev.data = u;
    ac->ev.addRead = redis_uv_add_read;
    ac->ev.delRead = redis_uv_del_read;
    ac->ev.addWrite = redis_uv_add_write;
    ac->ev.delWrite = redis_uv_del_write;
    ac->ev.cleanup = redis_uv_cleanup;
    return 0;
}
