/* redis_cluster.c — the cluster client (redis_cluster.h).
 *
 * Objects: the cluster owns its nodes (an array, never shrunk, at most
 * REDIS_CLUSTER_MAX_NODES) and the slot map (slot -> node). A node owns its
 * hiredis context while one is open and a FIFO of requests waiting to be
 * sent. A request is one caller command: its arguments in one allocation,
 * its deadline and retry timers, and where it is:
 *
 *   unrouted list (no map entry yet) | a node's waiting list | sent (hiredis
 *   holds it as privdata) | on its retry timer
 *
 * A request sent and then timed out is answered at once (-ETIMEDOUT) and
 * marked done; hiredis still holds it, so it is freed when hiredis hands it
 * back (the reply, or NULL when the context goes). The context of a node
 * whose command timed out is dropped: a silent node (stopped, partitioned)
 * is then treated like a closed one.
 *
 * The events come from redis_uv.c (the packaged libuv adapter loses a
 * refused connect). hiredis 0.14 runs every pending callback with a NULL reply when a context
 * goes away (closed by the peer, or freed by us), then the disconnect
 * callback if it had connected; the connect callback reports failures, and
 * the context is freed by hiredis right after it. node->ac is cleared before
 * anything can reach the dying context. */
#include "redis/redis_cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "base/log.h"
#include "redis/redis_objects.h"
#include "redis/redis_reply.h"
#include "redis/redis_slot.h"
#include "redis/redis_uv.h"

#define RETRY_MS 100          /* TRYAGAIN/CLUSTERDOWN resend, failed map read */
#define REFRESH_GAP_MS 100    /* between two map reads */
#define MAX_SEEDS 16

struct redis_req;
struct req_list {
    struct redis_req *first, *last;
    uint32_t count;
};

enum node_state { NODE_DOWN, NODE_CONNECTING, NODE_UP };

struct redis_node {
    struct redis_cluster *cl;
    char host[REDIS_HOST_MAX];
    int port;
    redisAsyncContext *ac;
    enum node_state state;
    uint32_t inflight;
    struct req_list waiting;
    uint32_t backoff_ms;     /* next backoff; 0 after a good connect */
    struct timer_node timer; /* backoff while DOWN, connect deadline while CONNECTING */
    struct redis_reply_budget budget; /* the cap on the reply being read */
    bool backing_off;
    uint64_t serial;         /* of the current connection: never reused */
};

typedef void (*req_done_fn)(struct redis_req *r, int status, const redisReply *reply);

struct redis_req {
    struct redis_cluster *cl;
    redis_cluster_cb cb;
    void *arg;
    req_done_fn internal;     /* map reads: answered here, not to a caller */
    int slot;                 /* -1: sent to `to` */
    struct redis_node *to;    /* ASK target, or the node a map read asks */
    enum { REQ_NOWHERE, REQ_UNROUTED, REQ_WAITING, REQ_RETRY } where;
    struct redis_node *node;  /* REQ_WAITING: whose list; sent: on which node */
    bool sent, done, asking;
    uint8_t redirects;
    struct timer_node deadline, retry;
    struct redis_req *prev, *next;
    int argc;
    const char **argv;
    size_t *argvlen;
};

struct redis_cluster {
    uv_loop_t *loop;
    struct timer_service *timers;
    struct redis_cluster_config cfg;
    struct redis_node *nodes[REDIS_CLUSTER_MAX_NODES];
    uint32_t n_nodes, n_seeds;
    struct redis_node *slots[REDIS_SLOTS];
    struct req_list unrouted;  /* no node for the slot yet */
    struct req_list retrying;  /* on their retry timer */
    uint32_t queued;           /* callers' commands waiting (not map reads) */
    /* Map reads: one at a time, REFRESH_GAP_MS apart; `wanted` asks for
     * another after the one running. */
    bool refresh_running, refresh_wanted;
    uint32_t refresh_next;     /* node index to ask next (round robin) */
    uint64_t refresh_last_ms;
    struct timer_node refresh_timer;
    bool closing;
    uint64_t conn_serials;     /* connections opened */
    uint64_t reply_seq;        /* replies delivered */
    uint64_t cur_conn, cur_seq;/* the reply being delivered (redis_cluster_reply_origin) */
    struct redis_cluster_stats st;
};

static void route(struct redis_req *r);
static void node_pump(struct redis_node *n);
static void want_refresh(struct redis_cluster *cl);

static uint64_t now_ms(const struct redis_cluster *cl) { return timer_now(cl->timers); }

/* ---- request lists */

static void list_push(struct req_list *l, struct redis_req *r)
{
    r->prev = l->last;
    r->next = NULL;
    if (l->last) l->last->next = r;
    else l->first = r;
    l->last = r;
    l->count++;
}

static void list_remove(struct req_list *l, struct redis_req *r)
{
    if (r->prev) r->prev->next = r->next;
    else l->first = r->next;
    if (r->next) r->next->prev = r->prev;
    else l->last = r->prev;
    r->prev = r->next = NULL;
    l->count--;
}

static struct req_list *req_list_of(struct redis_req *r)
{
    switch (r->where) {
    case REQ_UNROUTED: return &r->cl->unrouted;
    case REQ_WAITING: return &r->node->waiting;
    case REQ_RETRY: return &r->cl->retrying;
    default: return NULL;
    }
}

/* Takes r out of whichever list holds it (and stops its retry timer). */
static void req_unlist(struct redis_req *r)
{
    if (r->where == REQ_NOWHERE) return;
    if (r->where == REQ_RETRY) timer_stop(r->cl->timers, &r->retry);
    list_remove(req_list_of(r), r);
    r->where = REQ_NOWHERE;
    if (!r->internal) r->cl->queued--;
}

/* n: a node's waiting list; NULL: the unrouted list. */
static void req_enqueue(struct redis_req *r, struct redis_node *n)
{
    r->where = n ? REQ_WAITING : REQ_UNROUTED;
    r->node = n;
    list_push(req_list_of(r), r);
    if (!r->internal) r->cl->queued++;
}

/* ---- request life */

static void req_free(struct redis_req *r)
{
    timer_stop(r->cl->timers, &r->deadline);
    timer_stop(r->cl->timers, &r->retry);
    free(r);
}

/* Answers the caller (or the internal owner) once. The request is freed
 * unless hiredis still holds it (then on_reply frees it). */
static void req_finish(struct redis_req *r, int status, const redisReply *reply)
{
    struct redis_cluster *cl = r->cl;
    req_unlist(r);
    timer_stop(cl->timers, &r->deadline);
    timer_stop(cl->timers, &r->retry);
    r->done = true;
    if (r->internal) {
    } else if (status == 0) {
        cl->st.replies++;
    } else if (status == -ETIMEDOUT) {
        cl->st.timeouts++;
    } else {
        cl->st.failures++;
    }
    if (r->internal) r->internal(r, status, reply);
    else r->cb(r->arg, status, reply);
    if (!r->sent) req_free(r);
}

static void req_on_retry(struct timer_node *t, uint64_t now)
{
    (void)now;
    struct redis_req *r = container_of(t, struct redis_req, retry);
    req_unlist(r);
    route(r);
}

static void node_drop(struct redis_node *n);

static void req_on_deadline(struct timer_node *t, uint64_t now)
{
    (void)now;
    struct redis_req *r = container_of(t, struct redis_req, deadline);
    if (!r->sent) {
        req_finish(r, -ETIMEDOUT, NULL);
        return;
    }
    /* Sent and unanswered: answer now; the node looks dead, so drop its
     * context (hiredis then hands r back with NULL and it is freed). */
    struct redis_node *n = r->node;
    req_finish(r, -ETIMEDOUT, NULL);
    if (n) node_drop(n);
}

/* ---- nodes */

static bool numeric_host(const char *h)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

static struct redis_node *node_find(struct redis_cluster *cl, const char *host, int port)
{
    for (uint32_t i = 0; i < cl->n_nodes; i++)
        if (cl->nodes[i]->port == port && strcmp(cl->nodes[i]->host, host) == 0)
            return cl->nodes[i];
    return NULL;
}

static void node_on_timer(struct timer_node *t, uint64_t now);

/* The node at host:port, made when new; NULL when the host is not numeric
 * or the cap on nodes is reached. */
static struct redis_node *node_get(struct redis_cluster *cl, const char *host, int port)
{
    struct redis_node *n = node_find(cl, host, port);
    if (n) return n;
    if (cl->n_nodes >= REDIS_CLUSTER_MAX_NODES || strlen(host) >= REDIS_HOST_MAX ||
        !numeric_host(host))
        return NULL;
    n = calloc(1, sizeof(*n));
    if (!n) return NULL;
    n->cl = cl;
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    timer_node_init(&n->timer);
    cl->nodes[cl->n_nodes++] = n;
    return n;
}

static void node_backoff(struct redis_node *n)
{
    struct redis_cluster *cl = n->cl;
    if (cl->closing) return;
    uint32_t ms = n->backoff_ms ? n->backoff_ms : cl->cfg.reconnect_min_ms;
    n->backoff_ms = ms * 2 > cl->cfg.reconnect_max_ms ? cl->cfg.reconnect_max_ms : ms * 2;
    n->backing_off = true;
    timer_start(cl->timers, &n->timer, now_ms(cl) + ms, node_on_timer);
}

/* The context is gone (hiredis frees it, or we are freeing it). */
static void node_lost(struct redis_node *n)
{
    n->ac = NULL;
    n->state = NODE_DOWN;
    n->cl->st.drops++;
    timer_stop(n->cl->timers, &n->timer);
    node_backoff(n);
    want_refresh(n->cl);
}

/* Closes the context at once: every command sent on it comes back with NULL
 * (answered -ECONNRESET unless already answered). */
static void node_drop(struct redis_node *n)
{
    redisAsyncContext *ac = n->ac;
    if (!ac) return;
    node_lost(n);
    redisAsyncFree(ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_node *n = ac->data;
    if (!n || n->ac != ac) return;
    if (status != REDIS_OK) {
        log_debug("redis: connect to %s:%d failed: %s", n->host, n->port, ac->errstr);
        n->ac = NULL; /* hiredis frees it after this callback */
        n->state = NODE_DOWN;
        timer_stop(n->cl->timers, &n->timer);
        node_backoff(n);
        want_refresh(n->cl);
        return;
    }
    n->state = NODE_UP;
    n->backoff_ms = 0;
    timer_stop(n->cl->timers, &n->timer);
    n->cl->st.connects++;
    node_pump(n);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct redis_node *n = ac->data;
    if (n && n->ac == ac) node_lost(n);
}

static void node_connect(struct redis_node *n)
{
    struct redis_cluster *cl = n->cl;
    redisAsyncContext *ac = redisAsyncConnect(n->host, n->port);
    if (!ac || ac->err) {
        log_debug("redis: connect to %s:%d: %s", n->host, n->port,
                  ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        node_backoff(n);
        want_refresh(cl); /* refused at once (loopback): the slots may have moved */
        return;
    }
    ac->data = n;
    redis_objects_use(ac->c.reader, &n->budget);
    if (redis_uv_attach(ac, cl->loop) < 0) {
        redisAsyncFree(ac);
        node_backoff(n);
        return;
    }
    n->ac = ac;
    n->serial = ++cl->conn_serials;
    n->state = NODE_CONNECTING;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* hiredis 0.14 has no connect timeout: ours is the command timeout. */
    timer_start(cl->timers, &n->timer, now_ms(cl) + cl->cfg.timeout_ms, node_on_timer);
}

static void node_on_timer(struct timer_node *t, uint64_t now)
{
    (void)now;
    struct redis_node *n = container_of(t, struct redis_node, timer);
    if (n->state == NODE_CONNECTING) { /* the connect took too long */
        node_drop(n);
        return;
    }
    n->backing_off = false;
    if (n->waiting.count > 0) node_pump(n);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static bool req_send(struct redis_node *n, struct redis_req *r)
{
    if (r->asking && redisAsyncCommand(n->ac, NULL, NULL, "ASKING") != REDIS_OK) return false;
    if (redisAsyncCommandArgv(n->ac, on_reply, r, r->argc, r->argv, r->argvlen) != REDIS_OK)
        return false;
    r->sent = true;
    r->node = n; /* for the deadline: the node to drop */
    n->inflight++;
    return true;
}

/* Sends what waits, up to the in-flight cap; connects when needed. */
static void node_pump(struct redis_node *n)
{
    if (n->cl->closing) return;
    if (n->state == NODE_DOWN) {
        if (!n->backing_off && n->waiting.count > 0) node_connect(n);
        return;
    }
    if (n->state != NODE_UP) return;
    while (n->waiting.first && n->inflight < n->cl->cfg.max_inflight && n->ac) {
        struct redis_req *r = n->waiting.first;
        req_unlist(r);
        if (!req_send(n, r)) { /* the context is closing: back to the front */
            r->where = REQ_WAITING;
            r->node = n;
            r->prev = NULL;
            r->next = n->waiting.first;
            if (n->waiting.first) n->waiting.first->prev = r;
            else n->waiting.last = r;
            n->waiting.first = r;
            n->waiting.count++;
            if (!r->internal) n->cl->queued++;
            return;
        }
    }
}

/* ---- routing */

static void route(struct redis_req *r)
{
    struct redis_cluster *cl = r->cl;
    struct redis_node *n = r->to ? r->to : (r->slot >= 0 ? cl->slots[r->slot] : NULL);
    if (!n) {
        req_enqueue(r, NULL);
        want_refresh(cl);
        return;
    }
    req_enqueue(r, n);
    node_pump(n);
}

/* Everything waiting goes through routing again (the map changed). */
static void reroute_all(struct redis_cluster *cl)
{
    struct req_list all = {0};
    struct redis_req *r;
    while ((r = cl->unrouted.first)) {
        req_unlist(r);
        list_push(&all, r);
    }
    for (uint32_t i = 0; i < cl->n_nodes; i++) {
        struct redis_node *n = cl->nodes[i];
        struct redis_req *next;
        for (r = n->waiting.first; r; r = next) {
            next = r->next;
            if (r->to) continue; /* ASK and map reads keep their node */
            req_unlist(r);
            list_push(&all, r);
        }
    }
    while ((r = all.first)) {
        list_remove(&all, r);
        route(r);
    }
}

static void retry_later(struct redis_req *r)
{
    r->where = REQ_RETRY;
    list_push(&r->cl->retrying, r);
    if (!r->internal) r->cl->queued++;
    timer_start(r->cl->timers, &r->retry, now_ms(r->cl) + RETRY_MS, req_on_retry);
}

static bool error_is(const redisReply *x, const char *word)
{
    size_t n = strlen(word);
    return x->len >= n && memcmp(x->str, word, n) == 0 && (x->len == n || x->str[n] == ' ');
}

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct redis_req *r = privdata;
    struct redis_node *n = ac->data;
    redisReply *reply = reply_;
    struct redis_cluster *cl = r->cl;
    r->sent = false;
    if (n && n->inflight) n->inflight--;
    if (!reply) { /* the context is going */
        if (n && n->ac == ac) node_lost(n);
        if (r->done) free(r);
        else req_finish(r, cl->closing ? -ECANCELED : -ECONNRESET, NULL);
        return;
    }
    if (r->done) { /* answered already (deadline) */
        free(r);
        if (n) node_pump(n);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR && !r->internal) {
        struct redis_redirect rd;
        int kind = redis_parse_redirect(reply->str, reply->len, &rd);
        if (kind == REDIS_REDIRECT_MOVED || kind == REDIS_REDIRECT_ASK) {
            if (++r->redirects > cl->cfg.max_redirects) {
                req_finish(r, -ELOOP, NULL);
            } else {
                const char *h = rd.host[0] ? rd.host : n->host;
                struct redis_node *to = numeric_host(h) ? node_get(cl, h, rd.port) : NULL;
                if (!to) {
                    req_finish(r, numeric_host(h) ? -ENOSPC : -EADDRNOTAVAIL, NULL);
                } else if (kind == REDIS_REDIRECT_MOVED) {
                    cl->st.moved++;
                    cl->slots[rd.slot] = to;
                    r->to = NULL;
                    r->asking = false;
                    want_refresh(cl);
                    route(r);
                } else {
                    cl->st.ask++;
                    r->to = to;
                    r->asking = true;
                    route(r);
                }
            }
            if (n) node_pump(n);
            return;
        }
        if (error_is(reply, "TRYAGAIN") || error_is(reply, "CLUSTERDOWN") ||
            error_is(reply, "LOADING")) {
            if (++r->redirects > cl->cfg.max_redirects + 50) { /* ~5 s of retries */
                req_finish(r, -ELOOP, NULL);
            } else {
                cl->st.retries++;
                r->to = NULL;
                r->asking = false;
                want_refresh(cl);
                retry_later(r);
            }
            if (n) node_pump(n);
            return;
        }
    }
    cl->cur_conn = n && n->ac == ac ? n->serial : 0;
    cl->cur_seq = ++cl->reply_seq;
    req_finish(r, 0, reply);
    cl->cur_conn = cl->cur_seq = 0;
    if (n) node_pump(n);
}

/* ---- the slot map */

struct map_build {
    struct redis_cluster *cl;
    struct redis_node *asked;
    struct redis_node *slots[REDIS_SLOTS];
};

static int map_range(void *arg, unsigned first, unsigned last, const char *host, int port)
{
    struct map_build *b = arg;
    const char *h = host[0] ? host : b->asked->host;
    if (!numeric_host(h)) return -EADDRNOTAVAIL;
    struct redis_node *n = node_get(b->cl, h, port);
    if (!n) return -ENOSPC;
    for (unsigned s = first; s <= last; s++) b->slots[s] = n;
    return 0;
}

static void refresh_start(struct redis_cluster *cl);

static void refresh_done(struct redis_req *r, int status, const redisReply *reply)
{
    struct redis_cluster *cl = r->cl;
    cl->refresh_running = false;
    cl->refresh_last_ms = now_ms(cl);
    int rc = status;
    if (status == 0) {
        struct map_build *b = calloc(1, sizeof(*b));
        if (!b) {
            rc = -ENOMEM;
        } else {
            b->cl = cl;
            b->asked = r->to;
            rc = redis_parse_slots(reply, map_range, b);
            if (rc > 0) {
                memcpy(cl->slots, b->slots, sizeof(cl->slots));
                cl->st.refreshes++;
                rc = 0;
            } else if (rc == 0) {
                rc = -ENODATA; /* a node that holds no slots yet: ask another */
            }
            free(b);
        }
    }
    if (rc != 0) {
        log_debug("redis: slot map from %s:%d: %d", r->to->host, r->to->port, rc);
        cl->refresh_wanted = true;
    }
    if (cl->closing) return;
    if (rc == 0) reroute_all(cl);
    if (cl->refresh_wanted) {
        cl->refresh_wanted = false;
        want_refresh(cl);
    }
}

static struct redis_req *req_alloc(struct redis_cluster *cl, int argc, const char **argv,
                                   const size_t *argvlen, size_t bytes)
{
    size_t head = sizeof(struct redis_req) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    struct redis_req *r = calloc(1, head + bytes);
    if (!r) return NULL;
    r->cl = cl;
    r->argc = argc;
    r->argv = (const char **)(r + 1);
    r->argvlen = (size_t *)(r->argv + argc);
    char *p = (char *)(r->argvlen + argc);
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], argvlen[i]);
        r->argv[i] = p;
        r->argvlen[i] = argvlen[i];
        p += argvlen[i];
    }
    r->slot = -1;
    timer_node_init(&r->deadline);
    timer_node_init(&r->retry);
    return r;
}

/* Asks the next node in turn (connected ones first) for the map. */
static void refresh_start(struct redis_cluster *cl)
{
    if (cl->closing || cl->n_nodes == 0) return;
    struct redis_node *pick = NULL;
    for (uint32_t i = 0; i < cl->n_nodes && !pick; i++) {
        struct redis_node *n = cl->nodes[(cl->refresh_next + i) % cl->n_nodes];
        if (n->state == NODE_UP) pick = n;
    }
    for (uint32_t i = 0; i < cl->n_nodes && !pick; i++) {
        struct redis_node *n = cl->nodes[(cl->refresh_next + i) % cl->n_nodes];
        if (!n->backing_off) pick = n;
    }
    if (!pick) pick = cl->nodes[cl->refresh_next % cl->n_nodes];
    for (uint32_t i = 0; i < cl->n_nodes; i++)
        if (cl->nodes[i] == pick) cl->refresh_next = (i + 1) % cl->n_nodes;
    static const char *argv[] = {"CLUSTER", "SLOTS"};
    static const size_t lens[] = {7, 5};
    struct redis_req *r = req_alloc(cl, 2, argv, lens, 12);
    if (!r) {
        cl->refresh_wanted = true;
        return;
    }
    r->internal = refresh_done;
    r->to = pick;
    cl->refresh_running = true;
    timer_start(cl->timers, &r->deadline, now_ms(cl) + cl->cfg.timeout_ms, req_on_deadline);
    route(r);
}

static void refresh_on_timer(struct timer_node *t, uint64_t now)
{
    (void)now;
    struct redis_cluster *cl = container_of(t, struct redis_cluster, refresh_timer);
    if (cl->refresh_running) cl->refresh_wanted = true;
    else refresh_start(cl);
}

static void want_refresh(struct redis_cluster *cl)
{
    if (cl->closing) return;
    if (cl->refresh_running) {
        cl->refresh_wanted = true;
        return;
    }
    if (timer_armed(&cl->refresh_timer)) return;
    uint64_t at = cl->refresh_last_ms ? cl->refresh_last_ms + REFRESH_GAP_MS : 0;
    uint64_t now = now_ms(cl);
    timer_start(cl->timers, &cl->refresh_timer, at > now ? at : now, refresh_on_timer);
}

/* ---- public */

static int parse_seeds(struct redis_cluster *cl, const char *seeds)
{
    const char *p = seeds;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) { p++; len--; }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (len > 0) {
            /* Read it as the servers write a redirection's address. */
            char text[REDIS_HOST_MAX + 32];
            if (len + 8 >= sizeof(text)) return -EINVAL;
            int n = snprintf(text, sizeof(text), "MOVED 0 %.*s", (int)len, p);
            struct redis_redirect rd;
            if (n < 0 || redis_parse_redirect(text, (size_t)n, &rd) != REDIS_REDIRECT_MOVED ||
                !rd.host[0] || !numeric_host(rd.host) || cl->n_seeds >= MAX_SEEDS)
                return -EINVAL;
            if (!node_find(cl, rd.host, rd.port)) {
                if (!node_get(cl, rd.host, rd.port)) return -ENOMEM;
                cl->n_seeds++;
            }
        }
        p = end ? end + 1 : NULL;
    }
    return cl->n_seeds ? 0 : -EINVAL;
}

struct redis_cluster *redis_cluster_new(uv_loop_t *loop, struct timer_service *timers,
                                        const struct redis_cluster_config *cfg, int *err)
{
    struct redis_cluster *cl = calloc(1, sizeof(*cl));
    if (!cl) {
        *err = -ENOMEM;
        return NULL;
    }
    cl->loop = loop;
    cl->timers = timers;
    cl->cfg = *cfg;
    cl->cfg.seeds = NULL;
    if (!cl->cfg.timeout_ms) cl->cfg.timeout_ms = 2000;
    if (!cl->cfg.max_inflight) cl->cfg.max_inflight = 1000;
    if (!cl->cfg.max_queued) cl->cfg.max_queued = 10000;
    if (!cl->cfg.max_redirects) cl->cfg.max_redirects = 5;
    if (!cl->cfg.reconnect_min_ms) cl->cfg.reconnect_min_ms = 50;
    if (!cl->cfg.reconnect_max_ms) cl->cfg.reconnect_max_ms = 2000;
    if (cl->cfg.reconnect_max_ms < cl->cfg.reconnect_min_ms)
        cl->cfg.reconnect_max_ms = cl->cfg.reconnect_min_ms;
    timer_node_init(&cl->refresh_timer);
    int rc = parse_seeds(cl, cfg->seeds);
    if (rc < 0) {
        redis_cluster_free(cl);
        *err = rc;
        return NULL;
    }
    want_refresh(cl);
    *err = 0;
    return cl;
}

void redis_cluster_free(struct redis_cluster *cl)
{
    if (!cl) return;
    cl->closing = true;
    timer_stop(cl->timers, &cl->refresh_timer);
    struct redis_req *r;
    while ((r = cl->unrouted.first)) req_finish(r, -ECANCELED, NULL);
    while ((r = cl->retrying.first)) req_finish(r, -ECANCELED, NULL);
    for (uint32_t i = 0; i < cl->n_nodes; i++) {
        struct redis_node *n = cl->nodes[i];
        while ((r = n->waiting.first)) req_finish(r, -ECANCELED, NULL);
        timer_stop(cl->timers, &n->timer);
        redisAsyncContext *ac = n->ac;
        n->ac = NULL;
        if (ac) redisAsyncFree(ac); /* sent requests come back with NULL: -ECANCELED */
    }
    for (uint32_t i = 0; i < cl->n_nodes; i++) free(cl->nodes[i]);
    free(cl);
}

/* The argument caps; the bytes of all arguments, or a negative errno. */
static long command_bytes(int argc, const char **argv, const size_t *argvlen)
{
    if (argc > REDIS_CLUSTER_MAX_ARGS) return -E2BIG;
    size_t bytes = 0;
    for (int i = 0; i < argc; i++) {
        if (!argv[i]) return -EINVAL;
        bytes += argvlen[i];
        if (argvlen[i] > REDIS_CLUSTER_MAX_ARG_BYTES || bytes > REDIS_CLUSTER_MAX_ARG_BYTES)
            return -E2BIG;
    }
    return (long)bytes;
}

/* argv checked by command_bytes (bytes). */
static int command_at_slot(struct redis_cluster *cl, int slot, int argc, const char **argv, const size_t *argvlen,
                           size_t bytes, redis_cluster_cb cb, void *arg)
{
    if (cl->queued >= cl->cfg.max_queued) return -EAGAIN;
    struct redis_req *r = req_alloc(cl, argc, argv, argvlen, bytes);
    if (!r) return -ENOMEM;
    r->cb = cb;
    r->arg = arg;
    r->slot = slot;
    cl->st.commands++;
    timer_start(cl->timers, &r->deadline, now_ms(cl) + cl->cfg.timeout_ms, req_on_deadline);
    route(r);
    return 0;
}

int redis_cluster_command(struct redis_cluster *cl, int key_index, int argc, const char **argv,
                          const size_t *argvlen, redis_cluster_cb cb, void *arg)
{
    if (!cl || !cb || argc < 1 || !argv || !argvlen || key_index < 0 || key_index >= argc)
        return -EINVAL;
    long bytes = command_bytes(argc, argv, argvlen);
    if (bytes < 0) return (int)bytes;
    return command_at_slot(cl, (int)redis_key_slot(argv[key_index], argvlen[key_index]), argc, argv, argvlen,
                           (size_t)bytes, cb, arg);
}

int redis_cluster_command_routed(struct redis_cluster *cl, const char *key, size_t key_len, int argc,
                                 const char **argv, const size_t *argvlen, redis_cluster_cb cb, void *arg)
{
    if (!cl || !cb || !key || argc < 1 || !argv || !argvlen || key_len > REDIS_CLUSTER_MAX_ARG_BYTES) return -EINVAL;
    long bytes = command_bytes(argc, argv, argvlen);
    if (bytes < 0) return (int)bytes;
    return command_at_slot(cl, (int)redis_key_slot(key, key_len), argc, argv, argvlen, (size_t)bytes, cb, arg);
}

void redis_cluster_reply_origin(const struct redis_cluster *cl, uint64_t *conn, uint64_t *seq)
{
    *conn = cl->cur_conn;
    *seq = cl->cur_seq;
}

void redis_cluster_get_stats(const struct redis_cluster *cl, struct redis_cluster_stats *out)
{
    *out = cl->st;
    out->nodes = cl->n_nodes;
    out->queued = cl->queued;
    out->inflight = 0;
    out->masters = 0;
    out->slots_mapped = 0;
    for (uint32_t i = 0; i < cl->n_nodes; i++) out->inflight += cl->nodes[i]->inflight;
    const struct redis_node *seen[REDIS_CLUSTER_MAX_NODES];
    uint32_t n_seen = 0;
    for (unsigned s = 0; s < REDIS_SLOTS; s++) {
        const struct redis_node *n = cl->slots[s];
        if (!n) continue;
        out->slots_mapped++;
        uint32_t k = 0;
        while (k < n_seen && seen[k] != n) k++;
        if (k == n_seen && n_seen < REDIS_CLUSTER_MAX_NODES) seen[n_seen++] = n;
    }
    out->masters = n_seen;
}
