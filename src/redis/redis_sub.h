/* redis_sub.h — one SUBSCRIBE connection to one channel, on the libuv loop,
 * kept up: a node's way to hear what other nodes change (the cluster's
 * binding invalidations, the users' and the presence changes).
 *
 * Pub/sub is at-most-once: a message published while the connection is down
 * is lost. So the owner is told both edges — `lost` when the connection goes
 * (or a connect fails) and `subscribed` each time the SUBSCRIBE takes again —
 * and catches up on `subscribed` (flush a cache, reload, re-read).
 *
 * The connection goes to the seeds in turn (`[redis] nodes`; a Redis
 * Cluster forwards PUBLISH to every node, so any node will do), with hiredis
 * on the loop (redis_uv.h) and replies built under the object cap
 * (redis_objects.h). After a failure it is tried again after 100 ms,
 * doubling to 2 s; a SUBSCRIBE that takes resets the delay. Loop thread
 * only. */
#ifndef CASCADE_REDIS_SUB_H
#define CASCADE_REDIS_SUB_H

#include <stddef.h>

#include <uv.h>

struct timer_service;
struct redis_sub;

struct redis_sub_cb {
    void (*subscribed)(void *arg);                             /* the SUBSCRIBE took (again) */
    void (*message)(void *arg, const char *msg, size_t len);  /* a message on the channel */
    void (*lost)(void *arg, const char *why);                 /* down: "connect failed", "connection closed" */
    void *arg;
};

/* Starts the connection (answers come later, from the loop). NULL with *err:
 * -EINVAL (no seed in seeds, or no channel), -ENOMEM. */
struct redis_sub *redis_sub_new(uv_loop_t *loop, struct timer_service *timers, const char *seeds, const char *channel,
                                const struct redis_sub_cb *cb, int *err);
/* Closes it; no callback runs during or after this call. NULL: nothing. */
void redis_sub_free(struct redis_sub *s);

#endif
