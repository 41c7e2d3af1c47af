/* redis_sub.c — a kept-up SUBSCRIBE connection (see redis_sub.h). */
#include "redis/redis_sub.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "base/timer.h"
#include "redis/redis_objects.h"
#include "redis/redis_reply.h"
#include "redis/redis_uv.h"

#define SEEDS_MAX 16
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

struct redis_sub {
    uv_loop_t *loop;
    struct timer_service *timers;
    struct redis_sub_cb cb;
    char channel[256];
    struct redis_seed seeds[SEEDS_MAX];
    size_t nseeds, seed_next;
    redisAsyncContext *ac;            /* NULL: down (a retry is due) */
    struct redis_reply_budget budget; /* the reader's object cap */
    struct timer_node retry;
    uint32_t backoff_ms;
    bool closing;
};

static void sub_connect(struct redis_sub *s);

static void on_retry(struct timer_node *t, uint64_t now_ms)
{
    (void)now_ms;
    sub_connect(container_of(t, struct redis_sub, retry));
}

static void schedule_retry(struct redis_sub *s)
{
    if (s->closing) return;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS) s->backoff_ms = BACKOFF_MAX_MS;
    timer_start(s->timers, &s->retry, timer_now(s->timers) + s->backoff_ms, on_retry);
}

static void lost(struct redis_sub *s, const char *why)
{
    s->ac = NULL; /* hiredis frees the context after the callback that told us */
    schedule_retry(s);
    if (s->cb.lost) s->cb.lost(s->cb.arg, why);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_sub *s = privdata;
    const redisReply *reply = r;
    if (!s || s->ac != ac || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const redisReply *kind = reply->element[0], *payload = reply->element[2];
    if (!kind || !payload || kind->type != REDIS_REPLY_STRING) return;
    if (!strcmp(kind->str, "subscribe")) {
        s->backoff_ms = 0;
        if (s->cb.subscribed) s->cb.subscribed(s->cb.arg);
    } else if (!strcmp(kind->str, "message") && payload->type == REDIS_REPLY_STRING) {
        if (s->cb.message) s->cb.message(s->cb.arg, payload->str, payload->len);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_sub *s = ac->data;
    if (!s || s->ac != ac || status == REDIS_OK) return;
    lost(s, "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct redis_sub *s = ac->data;
    if (s && s->ac == ac) lost(s, "connection closed");
}

static void sub_connect(struct redis_sub *s)
{
    if (s->closing || s->ac) return;
    const struct redis_seed *sd = &s->seeds[s->seed_next++ % s->nseeds];
    redisAsyncContext *ac = redisAsyncConnect(sd->host, sd->port);
    if (!ac || ac->err) {
        if (ac) redisAsyncFree(ac);
        schedule_retry(s);
        return;
    }
    ac->data = s;
    redis_objects_use(ac->c.reader, &s->budget);
    if (redis_uv_attach(ac, s->loop) < 0) {
        redisAsyncFree(ac);
        schedule_retry(s);
        return;
    }
    s->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (redisAsyncCommand(ac, on_reply, s, "SUBSCRIBE %s", s->channel) != REDIS_OK) {
        s->ac = NULL;
        redisAsyncFree(ac);
        schedule_retry(s);
    }
}

struct redis_sub *redis_sub_new(uv_loop_t *loop, struct timer_service *timers, const char *seeds, const char *channel,
                                const struct redis_sub_cb *cb, int *err)
{
    if (!channel || !*channel || strlen(channel) >= sizeof(((struct redis_sub *)0)->channel) || !cb) {
        *err = -EINVAL;
        return NULL;
    }
    struct redis_sub *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->nseeds = redis_seeds_read(seeds, s->seeds, SEEDS_MAX);
    if (!s->nseeds) {
        free(s);
        *err = -EINVAL;
        return NULL;
    }
    s->loop = loop;
    s->timers = timers;
    s->cb = *cb;
    snprintf(s->channel, sizeof(s->channel), "%s", channel);
    timer_node_init(&s->retry);
    sub_connect(s);
    return s;
}

void redis_sub_free(struct redis_sub *s)
{
    if (!s) return;
    s->closing = true;
    timer_stop(s->timers, &s->retry);
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL; /* its callbacks, run inside the free, now find nothing */
        redisAsyncFree(ac);
    }
    free(s);
}
