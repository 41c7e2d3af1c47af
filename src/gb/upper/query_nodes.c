/* query_nodes.c — GB API requests for a device registered on another
 * cascade node (issue 16): catalog, DeviceInfo, DeviceStatus, RecordInfo,
 * PTZ, alarm reset, and the reads of the device and its channel tree.
 *
 * Entry node B (the API's), for a device not registered here:
 *   HGETALL <prefix>gbdev:{id} (device_mirror.h) -> the owning node A, as a
 *   play does (gb_owner_refusal: 404 nowhere, 409 offline); A's API address
 *   from the node registry (registrar/cluster.h, field api of A's hash);
 *   then the API request as the client sent it — method, path, JSON body,
 *   the client's Authorization — to A's API over HTTP (transport/httpc_uv.h,
 *   on this loop), with GB_FORWARD_HEADER naming B. A answers it as it
 *   answers its own clients (its device, its query, its 404 / 409 / 504);
 *   B hands the status and the JSON object back unchanged.
 * Owning node A: the routes see the mark and answer from A's own devices;
 *   a marked request for a device A does not have is answered 404 there,
 *   never forwarded again (loops impossible: one hop at most).
 *
 * Why HTTP and not a SIP hop (as plays do): a query's answer is not a
 * dialog but one or many MESSAGEs the device sends to the node it is
 * registered to (a catalog in parts, matched by SN, assembled into that
 * node's tree); relaying them would mean a second query machine keyed by
 * peer. A already has the whole of it behind its API. See
 * docs/architecture.md ("GB devices across nodes").
 *
 * Bounded: at most forward_max at once (lookups and hops together; more:
 * -EBUSY, 429); the lookup ends by the Redis client's deadline, the hop by
 * forward_timeout_ms; the answer's body at most GB_FORWARD_MAX_ANSWER. A
 * client that goes away does not stop its hop (it ends by its deadline);
 * its answer is dropped. */
#include "gb/upper/upper_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/httpc_uv.h"
#include "gb/upper/device_mirror.h"
#include "registrar/cluster.h"

#define GB_FORWARD_MAX_ANSWER (32u * 1024 * 1024) /* a catalog of 100 000 channels is ~25 MiB of JSON */
#define GB_FORWARD_TARGET_MAX 256
#define GB_FORWARD_AUTH_MAX 1024

struct gb_forward {
    struct gb_forward *next, *prev;     /* g->forwards */
    struct gb_upper *g;
    struct gb_devmirror_lookup *lookup; /* the record read in flight */
    struct httpc_uv *hop;               /* the request to the owner in flight */
    struct gb_waiter *waiters;          /* the API request's (NULL: it went away) */
    char device_id[GB_ID_LEN + 1];
    char node[GB_DEVMIRROR_NODE_MAX];
    char method[8];
    char target[GB_FORWARD_TARGET_MAX];
    char *auth;                         /* NULL: none */
    char *body;                         /* NULL: none */
    size_t body_len;
};

static void fwd_free(struct gb_forward *f)
{
    struct gb_upper *g = f->g;
    if (f->prev) f->prev->next = f->next;
    else g->forwards = f->next;
    if (f->next) f->next->prev = f->prev;
    g->forward_count--;
    free(f->auth);
    free(f->body);
    free(f);
}

static void fwd_fail(struct gb_forward *f, int status, json_t *body)
{
    f->g->stats.node_query_failures++;
    gb_waiters_done(&f->waiters, status, body);
    fwd_free(f);
}

static void on_hop(void *arg, int rc, const struct api_httpc_response *resp, const char *why)
{
    struct gb_forward *f = arg;
    f->hop = NULL;
    if (!f->waiters) { /* the client went away meanwhile */
        fwd_free(f);
        return;
    }
    if (rc == -ETIMEDOUT) {
        log_warn_rl("gb api: %s %s (device %s) through node %s: no answer within %u ms", f->method, f->target,
                    f->device_id, f->node, f->g->forward_timeout_ms);
        fwd_fail(f, 504, gb_error_json("node-timeout", "node %s (device %s) did not answer within %u ms", f->node,
                                       f->device_id, f->g->forward_timeout_ms));
        return;
    }
    if (rc == -EPROTO || rc == -EMSGSIZE) {
        log_warn_rl("gb api: %s %s through node %s: bad answer (%s)", f->method, f->target, f->node, why);
        fwd_fail(f, 502, gb_error_json("bad-gateway", "node %s answered what is not a usable HTTP answer (%s)",
                                       f->node, why ? why : "?"));
        return;
    }
    if (rc < 0) {
        log_info("gb api: %s %s through node %s: %s", f->method, f->target, f->node, why ? why : strerror(-rc));
        fwd_fail(f, 503, gb_error_json("node-unavailable", "device %s is registered on node %s, which cannot be "
                                                           "reached (%s)",
                                       f->device_id, f->node, why ? why : strerror(-rc)));
        return;
    }
    json_t *body = json_loadb(resp->body, resp->len, 0, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        log_warn_rl("gb api: %s %s through node %s: answered %d without a JSON object", f->method, f->target,
                    f->node, resp->status);
        fwd_fail(f, 502, gb_error_json("bad-gateway", "node %s answered %d without a JSON object", f->node,
                                       resp->status));
        return;
    }
    if (resp->status == 401 || resp->status == 403) {
        json_decref(body);
        log_warn_rl("gb api: node %s refused a forwarded request (%d): the nodes' [api] token must be the same",
                    f->node, resp->status);
        fwd_fail(f, 502, gb_error_json("node-refused", "node %s, which holds device %s, refused the request (%d): "
                                                       "the nodes do not share the API token",
                                       f->node, f->device_id, resp->status));
        return;
    }
    log_debug("gb api: %s %s answered %d by node %s", f->method, f->target, resp->status, f->node);
    f->g->stats.node_queries++;
    gb_waiters_done(&f->waiters, resp->status, body);
    fwd_free(f);
}

/* The headers of a hop to another node's API: our forwarded mark (so the
 * owner answers from its own devices and never sends it on) and, when
 * given, the Authorization to pass. */
#define FORWARD_HEADERS_MAX (GB_FORWARD_AUTH_MAX + GB_DEVMIRROR_NODE_MAX + 64)
static void forward_headers(const struct gb_upper *g, const char *auth, char *out, size_t cap)
{
    snprintf(out, cap, "%s: %s\r\n%s%s%s", GB_FORWARD_HEADER, gb_devmirror_node_id(g->devmirror),
             auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
}

static void on_record(void *arg, int status, const struct gb_devmirror_record *rec)
{
    struct gb_forward *f = arg;
    struct gb_upper *g = f->g;
    f->lookup = NULL;
    if (!f->waiters) {
        fwd_free(f);
        return;
    }
    if (status < 0) {
        log_warn_rl("gb api: device %s: its record could not be read from Redis (%s)", f->device_id,
                    strerror(-status));
        fwd_fail(f, 503, gb_error_json("redis-unavailable", "the device's node could not be looked up (%s)",
                                       strerror(-status)));
        return;
    }
    json_t *err = NULL;
    int refusal = gb_owner_refusal(g, f->device_id, rec, &err);
    struct gb_device *here = refusal ? gb_device_find(g, f->device_id) : NULL;
    if (here) {
        /* Registered on no other node, and known here (offline): the answer
         * this node gives for its own offline device. */
        json_decref(err);
        size_t tl = strlen(f->target);
        bool channels = tl > 9 && !strcmp(f->target + tl - 9, "/channels");
        if (!strcmp(f->method, "GET"))
            gb_waiters_done(&f->waiters, 200, channels ? gb_upper_channels_json(g, here->id)
                                                       : gb_upper_device_json(g, here->id));
        else
            gb_waiters_done(&f->waiters, 409, gb_error_json("device-offline", "device %s is not online", here->id));
        fwd_free(f);
        return;
    }
    if (refusal) {
        fwd_fail(f, refusal, err);
        return;
    }
    snprintf(f->node, sizeof(f->node), "%s", rec->node);
    char host[CLUSTER_API_MAX];
    struct sockaddr_storage addr;
    bool https = false;
    int rc = cluster_node_api(g->cluster, rec->node, host, sizeof(host), &addr, &https);
    if (rc != 0) {
        const char *what = rc == -EHOSTDOWN ? "down (not heartbeating)"
                           : rc == -ENOENT  ? "not a live node here"
                                            : "advertising no API address";
        log_info("gb api: device %s is on node %s, which is %s: 503", f->device_id, rec->node, what);
        fwd_fail(f, 503, gb_error_json("node-unavailable", "device %s is registered on node %s, which is %s",
                                       f->device_id, rec->node, what));
        return;
    }
    char headers[FORWARD_HEADERS_MAX];
    forward_headers(g, f->auth, headers, sizeof(headers));
    if (https && !g->forward_tls) {
        fwd_fail(f, 503, gb_error_json("node-unavailable", "node %s serves its API over TLS only and this node has "
                                                           "no TLS client",
                                       rec->node));
        return;
    }
    struct httpc_uv_request r = {.to = (const struct sockaddr *)&addr, .host = host, .method = f->method,
                                 .target = f->target, .headers = headers,
                                 .content_type = f->body ? "application/json" : NULL, .body = f->body,
                                 .body_len = f->body_len, .timeout_ms = g->forward_timeout_ms,
                                 .max_body = GB_FORWARD_MAX_ANSWER, .tls = https ? g->forward_tls : NULL,
                                 .tls_name = g->forward_tls_name[0] ? g->forward_tls_name : NULL};
    rc = httpc_uv_start(g->loop, &r, on_hop, f, &f->hop);
    if (rc != 0) {
        fwd_fail(f, 503, gb_error_json("node-unavailable", "the request to node %s could not start (%s)", rec->node,
                                       strerror(-rc)));
        return;
    }
    log_info("gb api: %s %s for device %s forwarded to node %s (%s%s)", f->method, f->target, f->device_id, rec->node,
             https ? "https://" : "", host);
}

/* A path the routes matched, made of what a GB id and a route can hold. */
static bool target_ok(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    return n > 1 && n < GB_FORWARD_TARGET_MAX && t[0] == '/' &&
           strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-") == n;
}

/* A header value: printable, no CR or LF, under the cap. */
static bool value_ok(const char *v)
{
    size_t n = strlen(v);
    if (n >= GB_FORWARD_AUTH_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) return false;
    return true;
}

int gb_upper_forward(struct gb_upper *g, const char *device_id, const struct gb_forward_req *r, struct gb_waiter *wt)
{
    if (!g->devmirror || !g->cluster || !g->loop || !device_id || !gb_id_valid(str_from_cstr(device_id)))
        return -ENOENT;
    if (g->stopping) return -ESHUTDOWN;
    if (!r || !r->method || (strcmp(r->method, "GET") && strcmp(r->method, "POST")) || !target_ok(r->target) ||
        (r->authorization && !value_ok(r->authorization)))
        return -EINVAL;
    if (g->forward_count >= g->forward_max) {
        g->stats.node_query_failures++;
        log_warn_rl("gb api: %u requests for devices on other nodes already pending; %s refused (429)",
                    g->forward_count, r->target);
        return -EBUSY;
    }
    struct gb_forward *f = calloc(1, sizeof(*f));
    if (!f) return -ENOMEM;
    f->g = g;
    snprintf(f->device_id, sizeof(f->device_id), "%s", device_id);
    snprintf(f->method, sizeof(f->method), "%s", r->method);
    snprintf(f->target, sizeof(f->target), "%s", r->target);
    if (r->authorization) f->auth = strdup(r->authorization);
    if (r->body && r->body_len) {
        f->body = malloc(r->body_len);
        if (f->body) memcpy(f->body, r->body, r->body_len);
        f->body_len = r->body_len;
    }
    if ((r->authorization && !f->auth) || (r->body && r->body_len && !f->body)) {
        free(f->auth);
        free(f->body);
        free(f);
        return -ENOMEM;
    }
    int rc = gb_devmirror_lookup(g->devmirror, device_id, on_record, f, &f->lookup);
    if (rc != 0) {
        free(f->auth);
        free(f->body);
        free(f);
        g->stats.node_query_failures++;
        log_warn_rl("gb api: device %s: no Redis lookup (%s)", device_id, strerror(-rc));
        return rc == -ENOBUFS ? -EBUSY : rc == -EINVAL ? -EINVAL : -EAGAIN;
    }
    f->next = g->forwards;
    if (g->forwards) g->forwards->prev = f;
    g->forwards = f;
    g->forward_count++;
    gb_waiter_add(&f->waiters, wt);
    return 0;
}

int gb_upper_query_remote(struct gb_upper *g, const char *device_id, enum gb_query_kind kind, const char *target,
                          const char *start, const char *end, struct gb_waiter *wt)
{
    if (!device_id || !gb_id_valid(str_from_cstr(device_id))) return -ENOENT;
    json_t *body = NULL;
    const char *what = "info";
    switch (kind) {
    case GB_Q_INFO:
    case GB_Q_STATUS:
        what = kind == GB_Q_INFO ? "info" : "status";
        body = target ? json_pack("{s:s}", "target", target) : json_object();
        break;
    case GB_Q_RECORDS:
        what = "records";
        body = target && start && end ? json_pack("{s:s,s:s,s:s}", "channel", target, "start", start, "end", end)
                                      : NULL;
        if (!body) return -EINVAL;
        break;
    case GB_Q_CATALOG: return -EINVAL;
    }
    char path[GB_FORWARD_TARGET_MAX];
    snprintf(path, sizeof(path), "/api/v1/gb/devices/%s/%s", device_id, what);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return -ENOMEM;
    struct gb_forward_req r = {.method = "POST", .target = path, .authorization = g->forward_auth, .body = text,
                               .body_len = strlen(text)};
    int rc = gb_upper_forward(g, device_id, &r, wt);
    free(text);
    return rc;
}

/* ---- a GET of our own to a node's API (gb_upper_node_get) ---- */

struct gb_node_get {
    struct gb_node_get *next, *prev; /* g->node_gets */
    struct gb_upper *g;
    struct httpc_uv *hop;
    struct timer_node later;         /* a failure found at the start, reported from the loop */
    int later_rc;
    gb_node_get_cb cb;
    void *arg;
};

static void node_get_free(struct gb_node_get *h)
{
    struct gb_upper *g = h->g;
    if (h->prev) h->prev->next = h->next;
    else g->node_gets = h->next;
    if (h->next) h->next->prev = h->prev;
    timer_stop(g->timers, &h->later);
    free(h);
}

static void on_node_get(void *arg, int rc, const struct api_httpc_response *resp, const char *why)
{
    struct gb_node_get *h = arg;
    h->hop = NULL;
    gb_node_get_cb cb = h->cb;
    void *cb_arg = h->arg;
    node_get_free(h);
    if (rc == 0) cb(cb_arg, 0, resp->status, resp->body, resp->len, NULL);
    else cb(cb_arg, rc, 0, NULL, 0, why);
}

static void on_node_get_later(struct timer_node *t, uint64_t now_ms)
{
    (void)now_ms;
    struct gb_node_get *h = container_of(t, struct gb_node_get, later);
    gb_node_get_cb cb = h->cb;
    void *cb_arg = h->arg;
    int rc = h->later_rc;
    node_get_free(h);
    cb(cb_arg, rc, 0, NULL, 0, rc == -EHOSTDOWN ? "not heartbeating" : rc == -EADDRNOTAVAIL ? "no usable API"
                                                                      : strerror(-rc));
}

int gb_upper_node_get(struct gb_upper *g, const char *node, const char *target, uint32_t timeout_ms,
                      size_t max_body, gb_node_get_cb cb, void *arg, struct gb_node_get **out)
{
    if (!g->devmirror || !g->cluster || !g->loop) return -ENOENT;
    if (g->stopping) return -ESHUTDOWN;
    size_t tn = target ? strlen(target) : 0;
    if (!node || !cb || !max_body || tn < 2 || tn >= GB_FORWARD_TARGET_MAX || target[0] != '/' ||
        strspn(target, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-?=&") != tn)
        return -EINVAL;
    struct gb_node_get *h = calloc(1, sizeof(*h));
    if (!h) return -ENOMEM;
    h->g = g;
    h->cb = cb;
    h->arg = arg;
    timer_node_init(&h->later);
    char host[CLUSTER_API_MAX];
    struct sockaddr_storage addr;
    bool https = false;
    int rc = cluster_node_api(g->cluster, node, host, sizeof(host), &addr, &https);
    if (rc == 0 && https && !g->forward_tls) rc = -EPROTONOSUPPORT;
    if (rc == 0) {
        char headers[FORWARD_HEADERS_MAX];
        forward_headers(g, g->forward_auth, headers, sizeof(headers));
        if (!timeout_ms || timeout_ms > g->forward_timeout_ms) timeout_ms = g->forward_timeout_ms;
        struct httpc_uv_request r = {.to = (const struct sockaddr *)&addr, .host = host, .method = "GET",
                                     .target = target, .headers = headers, .timeout_ms = timeout_ms,
                                     .max_body = max_body, .tls = https ? g->forward_tls : NULL,
                                     .tls_name = g->forward_tls_name[0] ? g->forward_tls_name : NULL};
        rc = httpc_uv_start(g->loop, &r, on_node_get, h, &h->hop);
    }
    if (rc != 0) { /* reported from the loop, as an answer would be */
        h->later_rc = rc;
        timer_start(g->timers, &h->later, timer_now(g->timers), on_node_get_later);
    }
    h->next = g->node_gets;
    if (g->node_gets) g->node_gets->prev = h;
    g->node_gets = h;
    *out = h;
    return 0;
}

void gb_upper_node_get_cancel(struct gb_node_get *h)
{
    if (!h) return;
    httpc_uv_cancel(h->hop);
    node_get_free(h);
}

const char *gb_upper_node_id(const struct gb_upper *g)
{
    return g->devmirror ? gb_devmirror_node_id(g->devmirror) : NULL;
}

size_t gb_upper_live_nodes(struct gb_upper *g, void (*fn)(void *arg, const char *node), void *arg)
{
    if (!g->devmirror || !g->cluster) return 0;
    return cluster_live_apis(g->cluster, fn, arg);
}

void gb_upper_peer_query(struct gb_upper *g) { g->stats.peer_queries++; }

void gb_forwards_stop(struct gb_upper *g)
{
    while (g->node_gets) {
        struct gb_node_get *h = g->node_gets;
        gb_node_get_cb cb = h->cb;
        void *cb_arg = h->arg;
        httpc_uv_cancel(h->hop);
        node_get_free(h);
        cb(cb_arg, -ESHUTDOWN, 0, NULL, 0, "the daemon is stopping");
    }
    while (g->forwards) {
        struct gb_forward *f = g->forwards;
        gb_devmirror_lookup_cancel(f->lookup);
        httpc_uv_cancel(f->hop);
        gb_waiters_done(&f->waiters, 503, gb_error_json("shutting-down", "the daemon is stopping"));
        fwd_free(f);
    }
}
