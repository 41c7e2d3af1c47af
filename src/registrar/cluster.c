/* cluster.c — the node registry and the remote binding lookup (see the header). */
#include "registrar/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "base/clock.h"
#include "base/log.h"
#include "events/events.h"
#include "redis/redis_cluster.h"
#include "redis/redis_objects.h"
#include "redis/redis_reply.h"
#include "redis/redis_sub.h"
#include "redis/redis_uv.h"
#include "base/sbuf.h"
#include "registrar/location.h"
#include "sip/msg.h"

#define CACHE_SLOTS 1024                 /* power of two */
#define KEY_MAX (64 + 16 + LOCATION_MAX_AOR + 2)
#define MEMBERS_MAX CLUSTER_MAX_NODES    /* set members read per heartbeat */

struct node {
    bool used;
    char id[128];
    char sip[256];
    char route[CLUSTER_ROUTE_MAX];
    char hostport[CLUSTER_HOSTPORT_MAX];
    struct sockaddr_storage ip;          /* ss_family 0: not numeric */
    char api[CLUSTER_API_MAX];           /* its API as advertised ("host:port" or "https://host:port"); "": none */
    char api_host[CLUSTER_API_MAX];      /* its "host:port" (cluster_peer_api) */
    bool api_tls;                        /* https:// */
    struct sockaddr_storage api_addr;
    uint64_t seen_ms;                    /* last heartbeat round that found it */
    uint32_t gen;                        /* bumped when the slot is reused */
    int8_t stream;                       /* its hash's "stream": 1 writes into the events stream, 0 not, -1 unsaid */
    bool stream_warned;                  /* its setting differs from ours: said once */
};

struct cache_entry {
    uint64_t expires_ms;                 /* 0: empty */
    uint8_t n;
    uint8_t idx[CLUSTER_MAX_HITS];
    uint32_t gen[CLUSTER_MAX_HITS];
    char aor[LOCATION_MAX_AOR];
};

struct cluster_lookup {
    struct cluster *c;
    cluster_lookup_cb cb;                /* NULL: cancelled (and raw NULL) */
    cluster_read_cb raw;                 /* cluster_read_bindings: the reply as is */
    void *arg;
    uint64_t seq;                        /* c->inval_seq when sent */
    char aor[LOCATION_MAX_AOR];
};

struct hb_ctx {                          /* one heartbeat command */
    struct cluster *c;
    int what;                            /* HB_* */
    char id[128];
};
enum { HB_WRITE, HB_MEMBERS, HB_NODE, HB_INC };

/* Node death (see cluster.h): one dead incarnation reaped at a time. */
enum { R_INCS, R_CLAIM, R_SCAN, R_REAP, R_FINISH, R_GBREAP, R_EMIT, R_GBEMIT, R_STREAM, R_UNMARK };
/* The AoRs, then the GB devices; with the event stream, after a grace of
 * one heartbeat, both indexes again to announce what is still lost. */
enum { PHASE_AORS, PHASE_GB, PHASE_AORS_EMIT, PHASE_GB_EMIT };
enum { KIND_USER, KIND_GB };
struct reap_ctx {
    struct cluster *c;
    int op;                              /* R_* */
    uint32_t gen;                        /* c->reap.gen when sent (R_CLAIM..R_FINISH) */
    char id[128];                        /* R_INCS: whose incarnations */
    char aor[LOCATION_MAX_AOR];          /* R_REAP, R_EMIT, R_STREAM; R_GBREAP, R_GBEMIT: the device id */
    int kind;                            /* R_STREAM: KIND_USER (aor) or KIND_GB (a device id) */
};
struct reaper {
    bool busy;
    uint32_t gen;                        /* bumped by every new reap */
    char id[128], inc[CLUSTER_INC_MAX];
    char cursor[32];
    uint32_t outstanding;                /* R_REAP of this batch unanswered */
    bool failed;                         /* this batch: a reap failed */
    int phase;                           /* PHASE_AORS, then PHASE_GB: its devices */
    uint64_t gb_lost;                    /* this reap's devices marked offline (for its log line) */
    struct cluster_gb_walk gb;           /* PHASE_GB, PHASE_GB_EMIT */
    char mark[128 + CLUSTER_INC_MAX + 1]; /* "<id>/<inc>": what the reap scripts leave to announce */
    struct timer_node grace;             /* before PHASE_AORS_EMIT */
};

struct cluster {
    struct redis_cluster *rc;
    uv_loop_t *loop;
    struct timer_service *timers;
    /* The invalidation channel (redis/redis_sub.h; only with a cache). The
     * cache is used only while subscribed. */
    struct redis_sub *sub;
    bool subscribed;
    uint64_t inval_seq;                  /* invalidations (and flushes) seen */
    char channel[96];
    struct timer_node hb_timer;
    char node_id[128];
    char inc[CLUSTER_INC_MAX];           /* this run's incarnation */
    char claimer[128 + CLUSTER_INC_MAX]; /* "<id>/<inc>": the value of our claims */
    bool inc_listed;                     /* a heartbeat listed our incarnation */
    char prefix[64];
    char advertise[256];
    char api[CLUSTER_API_MAX];           /* this node's API for its peers ("": none) */
    struct event_bus *events;            /* user.offline reason node-lost; NULL: none */
    char domain[160];
    struct reaper reap;
    /* cluster_set_events_stream: the reap's offline events written into
     * the stream by its own scripts; on false: published on the bus. */
    struct {
        bool on;
        char key[128], seq_key[128], maxlen[16], node_id[128], node_json[128 * 6 + 3];
        void (*skip_local)(void *arg, const char *type);
        void *arg;
    } stream;
    sbuf_t body;                         /* an event's text for the stream */
    uint32_t heartbeat_ms, node_ttl_ms, cache_ms, max_pending;
    uint32_t hb_pending;                 /* commands of this round unanswered */
    bool hb_failed;
    bool closing;
    struct node nodes[CLUSTER_MAX_NODES];
    /* Nodes whose hash read nil: reaped only after CLUSTER_DEAD_ROUNDS
     * rounds in a row (a failover of the master holding a live node's
     * hash can drop it for a moment: the node writes it again at its next
     * heartbeat). */
    struct suspect {
        char id[128];
        uint64_t last_round;
        uint32_t count;
    } suspects[CLUSTER_MAX_NODES];
    struct cluster_gb_hooks gb_hooks;    /* cluster_set_gb_hooks; fns NULL: none */
    void (*on_reaped)(void *arg);        /* cluster_set_on_reaped */
    void *on_reaped_arg;
    void (*on_node_reaped)(void *arg, const char *id, const char *inc); /* cluster_set_on_node_reaped */
    void *on_node_reaped_arg;
    struct {                             /* cluster_set_on_bindings_changed */
        void (*fn)(void *arg, const char *aor);
        void *arg;
    } on_changed[CLUSTER_LISTENERS_MAX];
    struct cache_entry *cache;           /* CACHE_SLOTS, NULL when cache_ms is 0 */
    struct cluster_stats stats;
};

/* ---- advertised URIs ---- */

int cluster_peer_uri(const char *s, char *route, size_t route_cap, char *hostport, size_t hostport_cap,
                     struct sockaddr_storage *ip)
{
    size_t len = strlen(s);
    if (!len || len >= 256) return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '<' || ch == '>' || ch == '"' || ch == ',') return -1;
    }
    struct sip_uri u;
    if (sip_uri_parse((str_t){.s = s, .len = len}, &u) != 0) return -1;
    if ((u.scheme != SIP_SCHEME_SIP && u.scheme != SIP_SCHEME_SIPS) || !u.host.len || u.user.len || u.headers.len)
        return -1;
    uint16_t port = u.port ? u.port : (u.scheme == SIP_SCHEME_SIPS ? 5061 : 5060);
    int rn = snprintf(route, route_cap, "<%s;lr;%s>", s, CLUSTER_PEER_PARAM);
    int hn = snprintf(hostport, hostport_cap, "%.*s:%u", STR_FMT(u.host), (unsigned)port);
    if (rn < 0 || (size_t)rn >= route_cap || hn < 0 || (size_t)hn >= hostport_cap) return -1;
    memset(ip, 0, sizeof(*ip));
    char h[INET6_ADDRSTRLEN + 2];
    str_t host = u.host;
    if (host.len >= 2 && host.s[0] == '[') {
        host.s++;
        host.len -= 2;
    }
    if (host.len < sizeof(h)) {
        memcpy(h, host.s, host.len);
        h[host.len] = '\0';
        struct sockaddr_in *a4 = (struct sockaddr_in *)ip;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ip;
        if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) a4->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) a6->sin6_family = AF_INET6;
    }
    return 0;
}

/* The node's fields from its advertised URI. */
static int parse_advertise(const char *s, struct node *n)
{
    if (cluster_peer_uri(s, n->route, sizeof(n->route), n->hostport, sizeof(n->hostport), &n->ip) != 0) return -1;
    snprintf(n->sip, sizeof(n->sip), "%s", s);
    return 0;
}

int cluster_peer_api(const char *s, size_t len, char *hostport, size_t cap, struct sockaddr_storage *addr, bool *tls)
{
    /* ["https://"] "a.b.c.d:port" or "[v6]:port": numeric, a port 1..65535, nothing else. */
    static const char https[] = "https://";
    if (len >= CLUSTER_API_MAX) return -1;
    *tls = len > sizeof(https) - 1 && !memcmp(s, https, sizeof(https) - 1);
    if (*tls) s += sizeof(https) - 1, len -= sizeof(https) - 1;
    if (!len || len >= cap) return -1;
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon || colon == s) return -1;
    size_t hl = (size_t)(colon - s), pl = len - hl - 1;
    if (!pl || pl > 5) return -1;
    unsigned port = 0;
    for (size_t i = 0; i < pl; i++) {
        if (colon[1 + i] < '0' || colon[1 + i] > '9') return -1;
        port = port * 10 + (unsigned)(colon[1 + i] - '0');
    }
    if (!port || port > 65535) return -1;
    char h[INET6_ADDRSTRLEN + 1];
    const char *hs = s;
    bool v6 = hl >= 2 && s[0] == '[' && s[hl - 1] == ']';
    if (v6) hs++, hl -= 2;
    if (!hl || hl >= sizeof(h) || memchr(hs, '\0', hl)) return -1;
    memcpy(h, hs, hl);
    h[hl] = '\0';
    memset(addr, 0, sizeof(*addr));
    struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
    if (!v6 && inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
    } else if (v6 && inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
    } else {
        return -1;
    }
    memcpy(hostport, s, len);
    hostport[len] = '\0';
    return 0;
}

int cluster_record_read(const char *json, size_t len, char *node, size_t node_cap, int64_t *expires)
{
    return cluster_record_read_q(json, len, node, node_cap, expires, NULL);
}

int cluster_record_read_q(const char *json, size_t len, char *node, size_t node_cap, int64_t *expires, int *q1000)
{
    json_t *rec = json_loadb(json, len, 0, NULL);
    const char *n = json_string_value(json_object_get(rec, "node"));
    json_t *e = json_object_get(rec, "expires");
    int rc = -1;
    if (n && *n && json_is_integer(e) && strlen(n) < node_cap) {
        snprintf(node, node_cap, "%s", n);
        *expires = (int64_t)json_integer_value(e);
        if (q1000) {
            json_t *q = json_object_get(rec, "q");
            json_int_t v = json_is_integer(q) ? json_integer_value(q) : 1000;
            *q1000 = v >= 0 && v <= 1000 ? (int)v : 1000;
        }
        rc = 0;
    }
    json_decref(rec);
    return rc;
}

int cluster_key_aor(const char *key, size_t len, char *aor, size_t cap)
{
    const char *open = memchr(key, '{', len);
    const char *close = open ? memchr(open, '}', len - (size_t)(open - key)) : NULL;
    if (!open || !close || close == open + 1 || (size_t)(close - open - 1) >= cap) return -1;
    size_t n = (size_t)(close - open - 1);
    if (memchr(open + 1, '\0', n)) return -1;
    memcpy(aor, open + 1, n);
    aor[n] = '\0';
    return (int)n;
}

/* ---- the node table ---- */

static bool node_alive(const struct cluster *c, const struct node *n, uint64_t now)
{
    return n->used && now < n->seen_ms + c->node_ttl_ms;
}

static struct node *node_find(struct cluster *c, const char *id, size_t len)
{
    for (size_t i = 0; i < CLUSTER_MAX_NODES; i++)
        if (c->nodes[i].used && strlen(c->nodes[i].id) == len && !memcmp(c->nodes[i].id, id, len)) return &c->nodes[i];
    return NULL;
}

/* A peer's [redis] events_stream against ours. A node that does not write
 * into the stream is missing from what the nodes that do serve (the API,
 * the WebSocket, the webhook group), and serves only its own events: warned
 * once per peer (again after it agreed meanwhile), counted in /stats. */
static void node_stream_seen(struct cluster *c, struct node *n, int8_t stream)
{
    n->stream = stream;
    bool differs = stream >= 0 && (stream == 1) != c->stream.on;
    if (differs && !n->stream_warned && c->stream.on)
        log_warn("cluster: node %s does not write its events into the events stream ([redis] events_stream): they "
                 "are missing from the stream this node serves; set events_stream = yes on every node",
                 n->id);
    else if (differs && !n->stream_warned)
        log_warn("cluster: node %s writes its events into the events stream and this node does not ([redis] "
                 "events_stream): this node's events are missing from the stream it serves, and this node serves "
                 "only its own; set events_stream = yes on every node",
                 n->id);
    else if (!differs && n->stream_warned)
        log_info("cluster: node %s now agrees with this node on the events stream", n->id);
    n->stream_warned = differs;
}

static void node_seen(struct cluster *c, const char *id, const char *sip, const char *api, size_t api_len,
                      int8_t stream)
{
    uint64_t now = timer_now(c->timers);
    struct node *n = node_find(c, id, strlen(id));
    if (!n) {
        for (size_t i = 0; i < CLUSTER_MAX_NODES && !n; i++)
            if (!c->nodes[i].used || !node_alive(c, &c->nodes[i], now)) n = &c->nodes[i];
        if (!n) {
            log_warn_rl("cluster: more than %d nodes; node %s left out", CLUSTER_MAX_NODES, id);
            return;
        }
        uint32_t gen = n->gen + 1;
        memset(n, 0, sizeof(*n));
        n->gen = gen;
        snprintf(n->id, sizeof(n->id), "%s", id);
        log_info("cluster: node %s at %s joins", id, sip);
    }
    if (strcmp(n->sip, sip) != 0) {
        struct node tmp = *n;
        if (parse_advertise(sip, &tmp) != 0) {
            log_warn_rl("cluster: node %s advertises an unusable SIP URI; left out", id);
            n->used = false;
            return;
        }
        *n = tmp;
    }
    if (api_len != strlen(n->api) || memcmp(api, n->api, api_len) != 0) {
        char hp[CLUSTER_API_MAX];
        struct sockaddr_storage a;
        bool tls;
        if (api_len && cluster_peer_api(api, api_len, hp, sizeof(hp), &a, &tls) == 0) {
            memcpy(n->api, api, api_len);
            n->api[api_len] = '\0';
            snprintf(n->api_host, sizeof(n->api_host), "%s", hp);
            n->api_tls = tls;
            n->api_addr = a;
        } else {
            if (api_len) log_warn_rl("cluster: node %s advertises an unusable API address; no API requests to it", id);
            n->api[0] = n->api_host[0] = '\0';
            n->api_tls = false;
            memset(&n->api_addr, 0, sizeof(n->api_addr));
        }
    }
    n->used = true;
    n->seen_ms = now;
    node_stream_seen(c, n, stream);
}

static void node_gone(struct cluster *c, const char *id)
{
    struct node *n = node_find(c, id, strlen(id));
    if (!n) return;
    log_info("cluster: node %s (%s) stopped heartbeating", n->id, n->sip);
    n->used = false;
    n->gen++;
}

/* ---- heartbeat ---- */

static void reap_check(struct cluster *c, const char *id);

static struct suspect *suspect_find(struct cluster *c, const char *id)
{
    for (size_t i = 0; i < CLUSTER_MAX_NODES; i++)
        if (c->suspects[i].count && !strcmp(c->suspects[i].id, id)) return &c->suspects[i];
    return NULL;
}

static void suspect_clear(struct cluster *c, const char *id)
{
    struct suspect *s = suspect_find(c, id);
    if (s) s->count = 0;
}

/* One more round finding id's hash nil: the rounds in a row so far. */
static uint32_t suspect_nil(struct cluster *c, const char *id)
{
    uint64_t round = c->stats.heartbeats;
    struct suspect *s = suspect_find(c, id);
    for (size_t i = 0; !s && i < CLUSTER_MAX_NODES; i++)
        if (!c->suspects[i].count) s = &c->suspects[i];
    if (!s) return 0;
    if (s->count && s->last_round + 1 == round) s->count++;
    else if (!s->count || s->last_round != round) s->count = 1;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->last_round = round;
    return s->count;
}

static void hb_reply(void *arg, int status, const struct redisReply *reply);

static void hb_send(struct cluster *c, int what, const char *id, int key_index, int argc, const char **argv)
{
    size_t lens[12];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    struct hb_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        c->hb_failed = true;
        return;
    }
    x->c = c;
    x->what = what;
    if (id) snprintf(x->id, sizeof(x->id), "%s", id);
    int rc = redis_cluster_command(c->rc, key_index, argc, argv, lens, hb_reply, x);
    if (rc < 0) {
        free(x);
        c->hb_failed = true;
        return;
    }
    c->hb_pending++;
}

static void hb_round_done(struct cluster *c)
{
    if (c->hb_failed) {
        c->stats.heartbeat_failures++;
        log_warn_rl("cluster: a heartbeat round toward Redis failed (%llu so far); peers may see this node as gone",
                    (unsigned long long)c->stats.heartbeat_failures);
    }
}

static void hb_reply(void *arg, int status, const struct redisReply *reply)
{
    struct hb_ctx *x = arg;
    struct cluster *c = x->c;
    c->hb_pending--;
    bool ok = status == 0 && reply && reply->type != REDIS_REPLY_ERROR;
    if (!ok) c->hb_failed = true;
    if (ok && !c->closing && x->what == HB_MEMBERS && reply->type == REDIS_REPLY_ARRAY) {
        size_t n = reply->elements < MEMBERS_MAX ? reply->elements : MEMBERS_MAX;
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_STRING || !e->len || e->len >= sizeof(x->id)) continue;
            if (strlen(c->node_id) == e->len && !memcmp(c->node_id, e->str, e->len)) continue;
            char id[128], key[KEY_MAX];
            memcpy(id, e->str, e->len);
            id[e->len] = '\0';
            snprintf(key, sizeof(key), "%snode:{%s}", c->prefix, id);
            const char *argv[] = {"HMGET", key, "sip", "api", "stream"};
            hb_send(c, HB_NODE, id, 1, 5, argv);
        }
    } else if (ok && !c->closing && x->what == HB_INC) {
        /* 1: our incarnation was not listed. After the first round, a peer
         * reaped this live node (a failover or a pause of more than three
         * heartbeats hid its hash): our bindings are written again. */
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1 && c->inc_listed) {
            c->stats.self_reaped++;
            log_warn("cluster: this node (%s, run %s) was taken for dead by a peer; writing its bindings again",
                     c->node_id, c->inc);
            if (c->on_reaped) c->on_reaped(c->on_reaped_arg);
        }
        if (reply->type == REDIS_REPLY_INTEGER) c->inc_listed = true;
    } else if (ok && !c->closing && x->what == HB_NODE) {
        /* HMGET sip api stream: {nil, nil, nil} when the hash is gone;
         * stream nil from a node of a version that does not say it. */
        const redisReply *rs = reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 ? reply->element[0] : NULL;
        const redisReply *ra = rs ? reply->element[1] : NULL, *rst = rs ? reply->element[2] : NULL;
        if (rs && rs->type == REDIS_REPLY_STRING && rs->len < 256) {
            char sip[256];
            memcpy(sip, rs->str, rs->len);
            sip[rs->len] = '\0';
            bool api = ra->type == REDIS_REPLY_STRING;
            int8_t stream = -1;
            if (rst->type == REDIS_REPLY_STRING && rst->len == 1 && (rst->str[0] == '0' || rst->str[0] == '1'))
                stream = (int8_t)(rst->str[0] - '0');
            node_seen(c, x->id, sip, api ? ra->str : "", api ? ra->len : 0, stream);
            suspect_clear(c, x->id);
        } else if (rs && rs->type == REDIS_REPLY_NIL && ra->type == REDIS_REPLY_NIL) {
            /* Its hash expired: gone. Its incarnations are reaped (node
             * death, below) once it stayed gone for CLUSTER_DEAD_ROUNDS
             * rounds, then it leaves the set (it adds itself back when it
             * heartbeats again). */
            node_gone(c, x->id);
            if (c->inc[0]) {
                if (suspect_nil(c, x->id) >= CLUSTER_DEAD_ROUNDS) reap_check(c, x->id);
            } else {
                char key[KEY_MAX];
                snprintf(key, sizeof(key), "%snodes", c->prefix);
                const char *argv[] = {"SREM", key, x->id};
                hb_send(c, HB_WRITE, NULL, 1, 3, argv);
            }
        }
    }
    free(x);
    if (!c->hb_pending && !c->closing) hb_round_done(c);
}

static void on_hb_timer(struct timer_node *t, uint64_t now_ms)
{
    struct cluster *c = container_of(t, struct cluster, hb_timer);
    timer_start(c->timers, &c->hb_timer, now_ms + c->heartbeat_ms, on_hb_timer);
    if (c->hb_pending) {
        log_debug("cluster: the last heartbeat round is still unanswered (%u commands); skipping one", c->hb_pending);
        return;
    }
    c->hb_failed = false;
    c->stats.heartbeats++;
    char key[KEY_MAX], set[KEY_MAX], seen[32], ttl[32];
    snprintf(key, sizeof(key), "%snode:{%s}", c->prefix, c->node_id);
    snprintf(set, sizeof(set), "%snodes", c->prefix);
    snprintf(seen, sizeof(seen), "%lld", (long long)clock_wall_ms());
    snprintf(ttl, sizeof(ttl), "%u", c->node_ttl_ms);
    const char *hset[] = {"HSET", key,   "sip", c->advertise, "seen",   seen,
                          "inc",  c->inc, "api", c->api,       "stream", c->stream.on ? "1" : "0"};
    hb_send(c, HB_WRITE, NULL, 1, 12, hset);
    const char *exp[] = {"PEXPIRE", key, ttl};
    hb_send(c, HB_WRITE, NULL, 1, 3, exp);
    if (c->inc[0]) {
        /* This incarnation is listed until a survivor has reaped it; its
         * index lives while it heartbeats (and a day after). */
        char incs[KEY_MAX], idx[KEY_MAX + CLUSTER_INC_MAX], day[24];
        snprintf(incs, sizeof(incs), "%snode-incs:{%s}", c->prefix, c->node_id);
        snprintf(idx, sizeof(idx), "%snode-aors:{%s}:%s", c->prefix, c->node_id, c->inc);
        snprintf(day, sizeof(day), "%u", CLUSTER_INDEX_TTL_MS);
        const char *sadd_inc[] = {"SADD", incs, c->inc};
        hb_send(c, HB_INC, NULL, 1, 3, sadd_inc);
        const char *exp_idx[] = {"PEXPIRE", idx, day};
        hb_send(c, HB_WRITE, NULL, 1, 3, exp_idx);
        snprintf(idx, sizeof(idx), "%snode-gbdevs:{%s}:%s", c->prefix, c->node_id, c->inc);
        const char *exp_gb[] = {"PEXPIRE", idx, day};
        hb_send(c, HB_WRITE, NULL, 1, 3, exp_gb);
        /* A previous run of this node id that nobody reaped (it restarted
         * within the TTL, or every node went down): ours to reap, once the
         * mirror has rewritten the bindings loaded from the store with this
         * run's incarnation (its first writes; three heartbeats later). */
        if (c->stats.heartbeats > 3) reap_check(c, c->node_id);
    }
    const char *sadd[] = {"SADD", set, c->node_id};
    hb_send(c, HB_WRITE, NULL, 1, 3, sadd);
    const char *members[] = {"SMEMBERS", set};
    hb_send(c, HB_MEMBERS, NULL, 1, 2, members);
    if (!c->hb_pending) hb_round_done(c);
}

/* ---- node death ----
 *
 * A node's hash expired (or this node restarted): each of its incarnations
 * still listed in <prefix>node-incs:{<id>} is reaped by exactly one node at
 * a time, the holder of the claim <prefix>dead:{<id>}:<inc> (CLAIM_LUA: set
 * when absent, renewed by its holder, a TTL of three heartbeats so that
 * another node takes over when the holder dies). The holder walks the
 * incarnation's index <prefix>node-aors:{<id>}:<inc> with SSCAN and runs
 * REAP_LUA on each AoR's hash: the fields whose record names that node and
 * incarnation are deleted, and the script answers {removed, left} (left:
 * the unexpired bindings of other nodes or runs). The script is the commit
 * point: two reapers, or a second one after the first died mid-way, can
 * remove a field only once, so `user.offline` (reason node-lost) follows
 * from removed > 0 and left = 0 exactly once per AoR. FINISH_LUA then drops
 * the index, the claim and the incarnation from the list (only while the
 * claim is still ours). All keys of one node id share the hash tag {<id>}:
 * one slot, so the claim and finish scripts may touch them together.
 *
 * With the event stream (cluster_set_events_stream) the events are not
 * published from the answers: the scripts leave marks, and a second walk a
 * heartbeat later (PHASE_*_EMIT) writes each still-due event into the
 * stream by STREAM_LUA, once (cluster.h; docs/architecture.md "Node
 * death"). */

static const char CLAIM_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end\n"
    "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end\n"
    "return 0\n";

static const char REAP_LUA[] =
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "local removed, left = 0, 0\n"
    "for i = 1, #h, 2 do\n"
    "  local ok, r = pcall(cjson.decode, h[i + 1])\n"
    "  if ok and type(r) == 'table' and r.node == ARGV[1] and (r.inc == nil or r.inc == ARGV[2]) then\n"
    "    redis.call('HDEL', KEYS[1], h[i])\n"
    "    removed = removed + 1\n"
    "  elseif not ok or type(r) ~= 'table' or type(r.expires) ~= 'number' or r.expires > tonumber(ARGV[3]) then\n"
    "    left = left + 1\n"
    "  end\n"
    "end\n"
    "if removed > 0 then redis.call('PUBLISH', ARGV[4], KEYS[1]) end\n"
    "if removed > 0 and left == 0 and ARGV[5] ~= '' then\n"
    "  redis.call('HSET', KEYS[2], ARGV[5], '1')\n"
    "  redis.call('PEXPIRE', KEYS[2], ARGV[6])\n"
    "end\n"
    "return {removed, left}\n";

/* A dead node's GB device (gb/upper/device_mirror.h's record): marked
 * offline only while it names the dead node (and incarnation: a record
 * without inc, from an older writer, matches on the node alone) and says
 * online 1. ARGV[3]: the wall ms of the device's registration on the node
 * running this, 0 when not online there; at or after the dead node's, the
 * device is this node's and the record is left alone (2). */
static const char GBREAP_LUA[] =
    "local h = redis.call('HMGET', KEYS[1], 'node', 'inc', 'online', 'registered')\n"
    "if h[1] ~= ARGV[1] or (h[2] and h[2] ~= ARGV[2]) or h[3] ~= '1' then return 0 end\n"
    "local mine = tonumber(ARGV[3]) or 0\n"
    "if mine > 0 and mine >= (tonumber(h[4]) or 0) then return 2 end\n"
    "if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'online', '0', 'reaped', ARGV[5])\n"
    "else redis.call('HSET', KEYS[1], 'online', '0') end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "return 1\n";

/* With the event stream (cluster_set_events_stream) the two reap scripts
 * above leave a mark where the offline is due (ARGV[5], "<id>/<inc>": a
 * field of <prefix>reaped:{<aor>}, in the AoR's slot; the device record's
 * field reaped), and the event is announced one heartbeat later, once the
 * survivors' queued writes had time to land: EMIT_LUA / GBEMIT_LUA answer
 * CLUSTER_EMIT_* from what the records say then, and only an answer 1 goes
 * on to STREAM_LUA. The mark stays until the stream has the event (a
 * claimer dying in between leaves it to its successor). */
static const char EMIT_LUA[] =
    "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end\n"
    "local v = redis.call('HVALS', KEYS[1])\n"
    "for i = 1, #v do\n"
    "  local ok, r = pcall(cjson.decode, v[i])\n"
    "  if not ok or type(r) ~= 'table' or type(r.expires) ~= 'number' or r.expires > tonumber(ARGV[2]) then\n"
    "    redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "    return 3\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* ARGV: the mark, the dead node, its incarnation, the device's registration
 * here (wall ms, 0: not online here). */
static const char GBEMIT_LUA[] =
    "local h = redis.call('HMGET', KEYS[1], 'reaped', 'node', 'inc', 'online', 'registered')\n"
    "if h[1] ~= ARGV[1] then return 0 end\n"
    "if h[2] ~= ARGV[2] or (h[3] and h[3] ~= ARGV[3]) or h[4] ~= '0' then\n"
    "  redis.call('HDEL', KEYS[1], 'reaped') return 3 end\n"
    "local mine = tonumber(ARGV[4]) or 0\n"
    "if mine > 0 and mine >= (tonumber(h[5]) or 0) then redis.call('HDEL', KEYS[1], 'reaped') return 2 end\n"
    "return 1\n";

/* The device's mark, once its event is in the stream (only this mark: a
 * later reap's stays). */
static const char GBUNMARK_LUA[] =
    "if redis.call('HGET', KEYS[1], 'reaped') == ARGV[1] then redis.call('HDEL', KEYS[1], 'reaped') end\n"
    "return 1\n";

/* One reaped record's offline event into the events stream (app/events_stream.c's
 * WRITE_SCRIPT for one event: the next seq, entry "<seq>-0", the text
 * {"seq":<seq>,"node":<this node>,<body>; the body names the dead node
 * lost_node, cluster_node_lost_event), once: KEYS[3] (the dead
 * incarnation's <prefix>{events}:reaped:<id>:<inc>, the stream's slot)
 * holds a field per event written (ARGV[4]: "u:<aor>" or "g:<device>"), so
 * a second run for the same record (a successor, a retry) writes nothing.
 * KEYS: stream, counter, that hash. ARGV: maxlen, node id, node id as a
 * JSON string, the field, the hash's TTL, the body. The seq, or 0. */
static const char STREAM_LUA[] =
    "if redis.call('HSETNX', KEYS[3], ARGV[4], '0') == 0 then return 0 end\n"
    "redis.call('PEXPIRE', KEYS[3], ARGV[5])\n"
    "local s = redis.call('INCR', KEYS[2])\n"
    "local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)\n"
    "if top[1] then local t = tonumber(string.match(top[1][1], '^(%d+)'))\n"
    "  if t and s <= t then s = t + 1 redis.call('SET', KEYS[2], s) end end\n"
    "redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], s .. '-0', 'e', '{\"seq\":' .. s .. ',\"node\":' .. "
    "ARGV[3] .. ',' .. ARGV[6], 'n', ARGV[2])\n"
    "redis.call('HSET', KEYS[3], ARGV[4], s)\n"
    "return s\n";

static const char FINISH_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('SREM', KEYS[2], ARGV[2])\n"
    "redis.call('DEL', KEYS[3])\n"
    "redis.call('DEL', KEYS[4])\n"
    "redis.call('DEL', KEYS[1])\n"
    "return 1\n";

int cluster_reap_member(const char *s, size_t len, char *out, size_t cap)
{
    if (!len || len >= cap) return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '{' || ch == '}') return -1;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return (int)len;
}

int cluster_reap_counts(const struct redisReply *r, long long *removed, long long *left)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_INTEGER || r->element[0]->integer < 0 || r->element[1]->integer < 0)
        return -1;
    *removed = r->element[0]->integer;
    *left = r->element[1]->integer;
    return 0;
}

int cluster_emit_verdict(const struct redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < CLUSTER_EMIT_NONE || r->integer > CLUSTER_EMIT_MOVED)
        return -1;
    return (int)r->integer;
}

int cluster_stream_answer(const struct redisReply *r, long long *seq)
{
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < 0) return -1;
    *seq = r->integer;
    return 0;
}

int cluster_gb_reap_verdict(const struct redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < CLUSTER_GB_NONE || r->integer > CLUSTER_GB_KEPT)
        return -1;
    return (int)r->integer;
}

void cluster_gb_walk_reset(struct cluster_gb_walk *w)
{
    free(w->ids);
    memset(w, 0, sizeof(*w));
    snprintf(w->cursor, sizeof(w->cursor), "0");
}

int cluster_gb_walk_scan(struct cluster_gb_walk *w, const struct redisReply *r)
{
    if (!cluster_gb_walk_batch_done(w)) return -EBUSY;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        !r->element[0]->len || r->element[0]->len >= sizeof(w->cursor) || r->element[1]->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < r->element[0]->len; i++)
        if (r->element[0]->str[i] < '0' || r->element[0]->str[i] > '9') return -1;
    const redisReply *m = r->element[1];
    size_t take = m->elements < CLUSTER_GB_SCAN_MAX ? m->elements : CLUSTER_GB_SCAN_MAX;
    char(*ids)[CLUSTER_GB_ID_MAX] = take ? malloc(take * sizeof(*ids)) : NULL;
    if (take && !ids) return -ENOMEM;
    size_t n = 0;
    uint64_t skipped = m->elements - take;
    for (size_t i = 0; i < take; i++) {
        const redisReply *e = m->element[i];
        if (e->type != REDIS_REPLY_STRING || cluster_reap_member(e->str, e->len, ids[n], CLUSTER_GB_ID_MAX) < 0)
            skipped++;
        else
            n++;
    }
    free(w->ids);
    w->ids = ids;
    w->n = n;
    w->next = 0;
    w->outstanding = 0;
    w->skipped += skipped;
    memcpy(w->cursor, r->element[0]->str, r->element[0]->len);
    w->cursor[r->element[0]->len] = '\0';
    return 0;
}

const char *cluster_gb_walk_next(struct cluster_gb_walk *w)
{
    if (w->next >= w->n || w->outstanding >= CLUSTER_GB_WINDOW) return NULL;
    w->outstanding++;
    return w->ids[w->next++];
}

void cluster_gb_walk_answered(struct cluster_gb_walk *w)
{
    if (w->outstanding) w->outstanding--;
}

bool cluster_gb_walk_batch_done(const struct cluster_gb_walk *w) { return w->next >= w->n && !w->outstanding; }

static void reap_reply(void *arg, int status, const struct redisReply *reply);

static int reap_send(struct cluster *c, int op, const char *id, const char *aor, int key_index, int argc,
                     const char **argv)
{
    size_t lens[12];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    struct reap_ctx *x = calloc(1, sizeof(*x));
    if (!x) return -ENOMEM;
    x->c = c;
    x->op = op;
    x->gen = c->reap.gen;
    if (id) snprintf(x->id, sizeof(x->id), "%s", id);
    if (aor) snprintf(x->aor, sizeof(x->aor), "%s", aor);
    int rc = redis_cluster_command(c->rc, key_index, argc, argv, lens, reap_reply, x);
    if (rc < 0) free(x);
    return rc;
}

static void dead_key(const struct cluster *c, char *out, size_t cap)
{
    snprintf(out, cap, "%sdead:{%s}:%s", c->prefix, c->reap.id, c->reap.inc);
}

static void reap_stop(struct cluster *c, const char *why)
{
    if (why) log_warn_rl("cluster: reaping node %s (run %s) stopped: %s; retried on a later heartbeat", c->reap.id,
                         c->reap.inc, why);
    c->reap.busy = false;
    c->reap.gen++;
    if (timer_armed(&c->reap.grace)) timer_stop(c->timers, &c->reap.grace);
    cluster_gb_walk_reset(&c->reap.gb);
}

static void reap_claim(struct cluster *c)
{
    char key[KEY_MAX + CLUSTER_INC_MAX], ttl[24];
    dead_key(c, key, sizeof(key));
    snprintf(ttl, sizeof(ttl), "%u", c->node_ttl_ms);
    const char *argv[] = {"EVAL", CLAIM_LUA, "1", key, c->claimer, ttl};
    if (reap_send(c, R_CLAIM, NULL, NULL, 3, 6, argv) < 0) reap_stop(c, "claim refused by the client");
}

static void reap_scan(struct cluster *c)
{
    char idx[KEY_MAX + CLUSTER_INC_MAX];
    bool gb = c->reap.phase == PHASE_GB || c->reap.phase == PHASE_GB_EMIT;
    snprintf(idx, sizeof(idx), "%snode-%s:{%s}:%s", c->prefix, gb ? "gbdevs" : "aors",
             c->reap.id, c->reap.inc);
    const char *argv[] = {"SSCAN", idx, c->reap.cursor, "COUNT", "128"};
    if (reap_send(c, R_SCAN, NULL, NULL, 1, 5, argv) < 0) reap_stop(c, "scan refused by the client");
}

static void reap_finish(struct cluster *c)
{
    char key[KEY_MAX + CLUSTER_INC_MAX], incs[KEY_MAX];
    char idx[KEY_MAX + CLUSTER_INC_MAX], gbidx[KEY_MAX + CLUSTER_INC_MAX];
    dead_key(c, key, sizeof(key));
    snprintf(incs, sizeof(incs), "%snode-incs:{%s}", c->prefix, c->reap.id);
    snprintf(idx, sizeof(idx), "%snode-aors:{%s}:%s", c->prefix, c->reap.id, c->reap.inc);
    snprintf(gbidx, sizeof(gbidx), "%snode-gbdevs:{%s}:%s", c->prefix, c->reap.id, c->reap.inc);
    const char *argv[] = {"EVAL", FINISH_LUA, "4", key, incs, idx, gbidx, c->claimer, c->reap.inc};
    if (reap_send(c, R_FINISH, NULL, NULL, 3, 9, argv) < 0) reap_stop(c, "finish refused by the client");
}

size_t cluster_node_lost_event(bool gb, const char *what, const char *domain, const char *dead, char *uri,
                               size_t ucap, struct event_field *out, const char **type)
{
    if (gb) {
        *type = "gb.device.offline";
        out[0] = EVENT_STR("device_id", what);
        out[1] = EVENT_STR("reason", "node-lost");
        out[2] = EVENT_STR("lost_node", dead);
        return 3;
    }
    *type = "user.offline";
    snprintf(uri, ucap, "sip:%s@%s", what, domain);
    out[0] = EVENT_STR("user", what);
    out[1] = EVENT_STR("aor", uri);
    out[2] = EVENT_STR("reason", "node-lost");
    out[3] = EVENT_STR("lost_node", dead);
    return 4;
}

/* The AoR lost its last binding anywhere with the dead node. With the
 * stream its event is there already (written by STREAM_LUA): the bus's
 * subscribers here get it, the stream writer does not take it again. */
static void publish_node_lost(struct cluster *c, const char *aor)
{
    c->stats.node_lost_offline++;
    if (!c->events) return;
    if (c->stream.on) c->stream.skip_local(c->stream.arg, "user.offline");
    char uri[LOCATION_MAX_AOR + 170];
    struct event_field f[CLUSTER_LOST_FIELDS];
    const char *type;
    size_t n = cluster_node_lost_event(false, aor, c->domain, c->reap.id, uri, sizeof(uri), f, &type);
    event_publish_fields(c->events, type, f, n);
    if (c->stream.on) c->stream.skip_local(c->stream.arg, NULL);
}

/* A dead node's GB device lost with it: the role's hook, or the event as is. */
static void publish_gb_lost(struct cluster *c, const char *id)
{
    if (!c->stream.on) { /* with the stream: counted when the script marked it */
        c->stats.gb_devices_reaped++;
        c->reap.gb_lost++;
    }
    if (c->stream.on) c->stream.skip_local(c->stream.arg, "gb.device.offline");
    if (c->gb_hooks.lost) {
        c->gb_hooks.lost(c->gb_hooks.arg, id, c->reap.id);
    } else if (c->events) {
        struct event_field f[CLUSTER_LOST_FIELDS];
        const char *type;
        size_t n = cluster_node_lost_event(true, id, c->domain, c->reap.id, NULL, 0, f, &type);
        event_publish_fields(c->events, type, f, n);
    }
    if (c->stream.on) c->stream.skip_local(c->stream.arg, NULL);
}

/* A reaped record whose offline is still due (EMIT_LUA or GBEMIT_LUA
 * answered 1): its event into the stream, once (STREAM_LUA). 0, or the
 * client's refusal. */
static int stream_send(struct cluster *c, int kind, const char *what)
{
    char uri[LOCATION_MAX_AOR + 170];
    struct event_field f[CLUSTER_LOST_FIELDS];
    const char *type;
    size_t n = cluster_node_lost_event(kind == KIND_GB, what, c->domain, c->reap.id, uri, sizeof(uri), f, &type);
    sbuf_clear(&c->body);
    int rc = event_format_fields_body(&c->body, type, f, n);
    if (rc < 0) {
        c->body.failed = false;
        return -ENOMEM;
    }
    char dedupe[sizeof(c->prefix) + 16 + 128 + CLUSTER_INC_MAX], field[LOCATION_MAX_AOR + 4], ttl[24];
    snprintf(dedupe, sizeof(dedupe), "%s{events}:reaped:%s:%s", c->prefix, c->reap.id, c->reap.inc);
    snprintf(field, sizeof(field), "%c:%s", kind == KIND_USER ? 'u' : 'g', what);
    snprintf(ttl, sizeof(ttl), "%u", CLUSTER_INDEX_TTL_MS);
    const char *argv[] = {"EVAL",          STREAM_LUA, "3",   c->stream.key, c->stream.seq_key, dedupe,
                          c->stream.maxlen, c->stream.node_id, c->stream.node_json, field, ttl, c->body.data};
    struct reap_ctx *x = calloc(1, sizeof(*x));
    if (!x) return -ENOMEM;
    *x = (struct reap_ctx){.c = c, .op = R_STREAM, .gen = c->reap.gen, .kind = kind};
    snprintf(x->aor, sizeof(x->aor), "%s", what);
    size_t lens[12];
    for (int i = 0; i < 12; i++) lens[i] = i == 11 ? c->body.len : strlen(argv[i]);
    rc = redis_cluster_command(c->rc, 3, 12, argv, lens, reap_reply, x);
    if (rc < 0) free(x);
    return rc;
}

/* The event is in the stream: the mark goes (not waited for; when it
 * stays, a successor's STREAM_LUA writes nothing for it). */
static void unmark(struct cluster *c, int kind, const char *what)
{
    char key[KEY_MAX];
    if (kind == KIND_USER) {
        snprintf(key, sizeof(key), "%sreaped:{%s}", c->prefix, what);
        const char *argv[] = {"HDEL", key, c->reap.mark};
        reap_send(c, R_UNMARK, NULL, NULL, 1, 3, argv);
    } else {
        snprintf(key, sizeof(key), "%sgbdev:{%s}", c->prefix, what);
        const char *argv[] = {"EVAL", GBUNMARK_LUA, "1", key, c->reap.mark};
        reap_send(c, R_UNMARK, NULL, NULL, 3, 5, argv);
    }
}

static void on_grace(struct timer_node *t, uint64_t now)
{
    (void)now;
    struct cluster *c = container_of(t, struct cluster, reap.grace);
    if (!c->reap.busy || c->closing) return;
    c->reap.phase = PHASE_AORS_EMIT;
    snprintf(c->reap.cursor, sizeof(c->reap.cursor), "0");
    reap_claim(c); /* renewed, then the AoR index from its start */
}

static void reap_batch_done(struct cluster *c)
{
    if (c->reap.failed) {
        reap_stop(c, c->reap.phase == PHASE_GB ? "a GB device's reap failed" : "a binding's reap failed");
    } else if (!strcmp(c->reap.cursor, "0") && (c->reap.phase == PHASE_AORS || c->reap.phase == PHASE_AORS_EMIT)) {
        /* the same claim, renewed, then the devices' index from its start */
        c->reap.phase = c->reap.phase == PHASE_AORS ? PHASE_GB : PHASE_GB_EMIT;
        cluster_gb_walk_reset(&c->reap.gb);
        reap_claim(c);
    } else if (!strcmp(c->reap.cursor, "0") && c->reap.phase == PHASE_GB && c->stream.on) {
        /* Announced after a heartbeat: a survivor's write queued while
         * the scripts ran (the device or user came back there) lands first. */
        if (timer_start(c->timers, &c->reap.grace, timer_now(c->timers) + c->heartbeat_ms, on_grace) != 0)
            reap_stop(c, "out of memory");
    } else if (!strcmp(c->reap.cursor, "0")) {
        reap_finish(c);
    } else {
        reap_claim(c); /* renew, then the next batch */
    }
}

/* Scripts for the walk's next devices, at most CLUSTER_GB_WINDOW in flight;
 * the batch is done when every one is answered. */
static void gb_pump(struct cluster *c)
{
    char now_keep[24];
    snprintf(now_keep, sizeof(now_keep), "%u", CLUSTER_GB_OFFLINE_KEEP_MS);
    const char *id;
    while (!c->reap.failed && (id = cluster_gb_walk_next(&c->reap.gb))) {
        char key[KEY_MAX], mine[24];
        snprintf(key, sizeof(key), "%sgbdev:{%s}", c->prefix, id);
        int64_t reg = c->gb_hooks.local_registered ? c->gb_hooks.local_registered(c->gb_hooks.arg, id) : 0;
        snprintf(mine, sizeof(mine), "%lld", (long long)(reg > 0 ? reg : 0));
        int rc;
        if (c->reap.phase == PHASE_GB_EMIT) {
            const char *argv[] = {"EVAL", GBEMIT_LUA, "1", key, c->reap.mark, c->reap.id, c->reap.inc, mine};
            rc = reap_send(c, R_GBEMIT, NULL, id, 3, 8, argv);
        } else {
            const char *argv[] = {"EVAL", GBREAP_LUA, "1", key, c->reap.id, c->reap.inc, mine, now_keep,
                                  c->stream.on ? c->reap.mark : ""};
            rc = reap_send(c, R_GBREAP, NULL, id, 3, 9, argv);
        }
        if (rc < 0) {
            cluster_gb_walk_answered(&c->reap.gb); /* never sent */
            c->reap.failed = true;
        }
    }
    if (cluster_gb_walk_batch_done(&c->reap.gb) || (c->reap.failed && !c->reap.gb.outstanding)) {
        snprintf(c->reap.cursor, sizeof(c->reap.cursor), "%s", c->reap.gb.cursor);
        reap_batch_done(c);
    }
}

static void on_gb_scan(struct cluster *c, const redisReply *reply)
{
    uint64_t skipped = c->reap.gb.skipped;
    int rc = cluster_gb_walk_scan(&c->reap.gb, reply);
    if (rc < 0) {
        reap_stop(c, rc == -ENOMEM ? "out of memory" : "unexpected SSCAN answer");
        return;
    }
    if (c->reap.gb.skipped != skipped)
        log_warn_rl("cluster: unusable members in node %s's GB device index; skipped", c->reap.id);
    c->reap.failed = false;
    gb_pump(c);
}

static void on_scan(struct cluster *c, const redisReply *reply)
{
    if (c->reap.phase == PHASE_GB || c->reap.phase == PHASE_GB_EMIT) {
        on_gb_scan(c, reply);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[0]->len >= sizeof(c->reap.cursor) || reply->element[1]->type != REDIS_REPLY_ARRAY) {
        reap_stop(c, "unexpected SSCAN answer");
        return;
    }
    memcpy(c->reap.cursor, reply->element[0]->str, reply->element[0]->len);
    c->reap.cursor[reply->element[0]->len] = '\0';
    const redisReply *m = reply->element[1];
    c->reap.failed = false;
    c->reap.outstanding = 0;
    char now[24], chan[sizeof(c->channel)], day[24];
    snprintf(now, sizeof(now), "%lld", (long long)clock_wall_ms());
    snprintf(day, sizeof(day), "%u", CLUSTER_INDEX_TTL_MS);
    snprintf(chan, sizeof(chan), "%s", c->channel);
    for (size_t i = 0; i < m->elements; i++) {
        char aor[LOCATION_MAX_AOR], key[KEY_MAX], mkey[KEY_MAX];
        const redisReply *e = m->element[i];
        if (e->type != REDIS_REPLY_STRING || cluster_reap_member(e->str, e->len, aor, sizeof(aor)) < 0) {
            log_warn_rl("cluster: an unusable member in node %s's index; skipped", c->reap.id);
            continue;
        }
        snprintf(key, sizeof(key), "%sloc:{%s}", c->prefix, aor);
        snprintf(mkey, sizeof(mkey), "%sreaped:{%s}", c->prefix, aor);
        int rc;
        if (c->reap.phase == PHASE_AORS_EMIT) {
            const char *argv[] = {"EVAL", EMIT_LUA, "2", key, mkey, c->reap.mark, now};
            rc = reap_send(c, R_EMIT, NULL, aor, 3, 7, argv);
        } else {
            const char *argv[] = {"EVAL", REAP_LUA, "2", key, mkey, c->reap.id, c->reap.inc, now, chan,
                                  c->stream.on ? c->reap.mark : "", day};
            rc = reap_send(c, R_REAP, NULL, aor, 3, 11, argv);
        }
        if (rc < 0) {
            c->reap.failed = true;
            break;
        }
        c->reap.outstanding++;
    }
    if (!c->reap.outstanding) reap_batch_done(c);
}

static void reap_start(struct cluster *c, const char *id, const char *inc)
{
    c->reap.busy = true;
    c->reap.gen++;
    snprintf(c->reap.id, sizeof(c->reap.id), "%s", id);
    snprintf(c->reap.inc, sizeof(c->reap.inc), "%s", inc);
    snprintf(c->reap.mark, sizeof(c->reap.mark), "%s/%s", id, inc);
    snprintf(c->reap.cursor, sizeof(c->reap.cursor), "0");
    c->reap.failed = false;
    c->reap.outstanding = 0;
    c->reap.phase = PHASE_AORS;
    c->reap.gb_lost = 0;
    cluster_gb_walk_reset(&c->reap.gb);
    reap_claim(c);
}

static void reap_reply(void *arg, int status, const struct redisReply *reply)
{
    struct reap_ctx *x = arg;
    struct cluster *c = x->c;
    bool ok = status == 0 && reply && reply->type != REDIS_REPLY_ERROR;
    if (c->closing) {
        free(x);
        return;
    }
    if (!ok && x->op != R_INCS && x->gen == c->reap.gen && c->reap.busy) {
        log_warn_rl("cluster: reaping node %s: %s", c->reap.id,
                    status < 0 ? strerror(-status) : (reply ? reply->str : "no reply"));
    }
    if (x->op == R_INCS) {
        if (ok && reply->type == REDIS_REPLY_ARRAY && !c->reap.busy) {
            bool self = !strcmp(x->id, c->node_id);
            size_t left = 0;
            for (size_t i = 0; i < reply->elements; i++) {
                const redisReply *e = reply->element[i];
                char inc[CLUSTER_INC_MAX];
                if (e->type != REDIS_REPLY_STRING || cluster_reap_member(e->str, e->len, inc, sizeof(inc)) < 0)
                    continue;
                if (self && !strcmp(inc, c->inc)) continue;
                left++;
                if (!c->reap.busy) reap_start(c, x->id, inc);
            }
            if (!left && !self) { /* nothing left to reap: out of the registry */
                char key[KEY_MAX];
                snprintf(key, sizeof(key), "%snodes", c->prefix);
                const char *argv[] = {"SREM", key, x->id};
                hb_send(c, HB_WRITE, NULL, 1, 3, argv);
            }
        }
        free(x);
        return;
    }
    if (x->op == R_UNMARK) { /* not waited for */
        free(x);
        return;
    }
    if (x->gen != c->reap.gen || !c->reap.busy) { /* an earlier reap's late answer */
        free(x);
        return;
    }
    switch (x->op) {
    case R_CLAIM:
        if (!ok) reap_stop(c, "claim failed");
        else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) reap_scan(c);
        else reap_stop(c, NULL); /* another node holds it */
        break;
    case R_SCAN:
        if (!ok) reap_stop(c, "scan failed");
        else on_scan(c, reply);
        break;
    case R_REAP: {
        long long removed = 0, left = 0;
        if (!ok || cluster_reap_counts(reply, &removed, &left) < 0) {
            c->reap.failed = true;
        } else if (removed > 0) {
            c->stats.bindings_reaped += (uint64_t)removed;
            if (!left && !c->stream.on) publish_node_lost(c, x->aor); /* else marked, announced later */
        }
        if (--c->reap.outstanding == 0) reap_batch_done(c);
        break;
    }
    case R_EMIT: {
        int v = ok ? cluster_emit_verdict(reply) : -1;
        if (v < 0 || v == CLUSTER_EMIT_KEPT) {
            c->reap.failed = true;
        } else if (v == CLUSTER_EMIT_DUE) {
            if (stream_send(c, KIND_USER, x->aor) == 0) break; /* its answer ends this AoR */
            c->reap.failed = true;
        } else if (v == CLUSTER_EMIT_MOVED) {
            c->stats.reap_events_cancelled++;
        }
        if (--c->reap.outstanding == 0) reap_batch_done(c);
        break;
    }
    case R_GBEMIT: {
        int v = ok ? cluster_emit_verdict(reply) : -1;
        if (v == CLUSTER_EMIT_DUE && stream_send(c, KIND_GB, x->aor) == 0) break; /* its answer ends it */
        cluster_gb_walk_answered(&c->reap.gb);
        if (v < 0 || v == CLUSTER_EMIT_DUE) {
            c->reap.failed = true;
        } else if (v == CLUSTER_EMIT_KEPT) {
            c->stats.gb_devices_kept++;
            if (c->gb_hooks.kept) c->gb_hooks.kept(c->gb_hooks.arg, x->aor);
        } else if (v == CLUSTER_EMIT_MOVED) {
            c->stats.reap_events_cancelled++;
        }
        if (x->gen == c->reap.gen && c->reap.busy) gb_pump(c);
        break;
    }
    case R_STREAM: {
        long long seq = 0;
        if (!ok || cluster_stream_answer(reply, &seq) < 0) {
            c->reap.failed = true; /* the mark stays: retried, written at most once */
        } else {
            /* 0: a predecessor wrote it and died before its mark went;
             * this node's own subscribers have not seen it either way. */
            if (seq > 0) c->stats.reap_events_streamed++;
            if (x->kind == KIND_USER) publish_node_lost(c, x->aor);
            else publish_gb_lost(c, x->aor);
            if (x->gen == c->reap.gen && c->reap.busy) unmark(c, x->kind, x->aor);
        }
        if (x->gen != c->reap.gen || !c->reap.busy) break; /* a hook ended the reap */
        if (x->kind == KIND_USER) {
            if (--c->reap.outstanding == 0) reap_batch_done(c);
        } else {
            cluster_gb_walk_answered(&c->reap.gb);
            gb_pump(c);
        }
        break;
    }
    case R_GBREAP: {
        cluster_gb_walk_answered(&c->reap.gb);
        int v = ok ? cluster_gb_reap_verdict(reply) : -1;
        if (v < 0) c->reap.failed = true;
        else if (v == CLUSTER_GB_LOST && c->stream.on) { /* marked: announced after the grace */
            c->stats.gb_devices_reaped++;
            c->reap.gb_lost++;
        } else if (v == CLUSTER_GB_LOST) publish_gb_lost(c, x->aor);
        else if (v == CLUSTER_GB_KEPT) {
            c->stats.gb_devices_kept++;
            if (c->gb_hooks.kept) c->gb_hooks.kept(c->gb_hooks.arg, x->aor);
        }
        /* The hooks may not end the reap; still ours (same gen, busy). */
        if (x->gen == c->reap.gen && c->reap.busy) gb_pump(c);
        break;
    }
    case R_FINISH:
        if (ok && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
            c->stats.nodes_reaped++;
            if (c->stream.on) { /* the de-duplication outlives a claimer stalled in mid-event by 10 minutes */
                char dedupe[sizeof(c->prefix) + 16 + 128 + CLUSTER_INC_MAX];
                snprintf(dedupe, sizeof(dedupe), "%s{events}:reaped:%s:%s", c->prefix, c->reap.id, c->reap.inc);
                const char *argv[] = {"PEXPIRE", dedupe, "600000"};
                reap_send(c, R_UNMARK, NULL, NULL, 1, 3, argv);
            }
            log_info("cluster: node %s (run %s) reaped: its bindings are out of Redis, %llu GB devices marked "
                     "offline here",
                     c->reap.id, c->reap.inc, (unsigned long long)c->reap.gb_lost);
            char id[sizeof(c->reap.id)], inc[sizeof(c->reap.inc)];
            snprintf(id, sizeof(id), "%s", c->reap.id);
            snprintf(inc, sizeof(inc), "%s", c->reap.inc);
            reap_stop(c, NULL);
            if (c->on_node_reaped) c->on_node_reaped(c->on_node_reaped_arg, id, inc); /* the claimer only */
        } else {
            reap_stop(c, ok ? "the claim was lost before the end" : "finish failed");
        }
        break;
    }
    free(x);
}

/* The incarnations of node id still to reap: one reap at a time. */
static void reap_check(struct cluster *c, const char *id)
{
    if (c->reap.busy || c->closing) return;
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "%snode-incs:{%s}", c->prefix, id);
    const char *argv[] = {"SMEMBERS", key};
    reap_send(c, R_INCS, id, NULL, 1, 2, argv);
}

/* ---- the lookup cache ---- */

static uint64_t hash_aor(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct cache_entry *cache_slot(struct cluster *c, const char *aor)
{
    return c->cache && c->subscribed ? &c->cache[hash_aor(aor) & (CACHE_SLOTS - 1)] : NULL;
}

static void cache_flush(struct cluster *c)
{
    c->inval_seq++;
    if (c->cache)
        for (size_t i = 0; i < CACHE_SLOTS; i++) c->cache[i].expires_ms = 0;
}

static void fill_hit(const struct node *n, struct cluster_hit *h)
{
    snprintf(h->node, sizeof(h->node), "%s", n->id);
    snprintf(h->route, sizeof(h->route), "%s", n->route);
    snprintf(h->hostport, sizeof(h->hostport), "%s", n->hostport);
}

/* true with *r filled when aor's answer is cached and its nodes all live. */
static bool cache_get(struct cluster *c, const char *aor, struct cluster_result *r)
{
    struct cache_entry *e = cache_slot(c, aor);
    uint64_t now = timer_now(c->timers);
    if (!e || !e->expires_ms || now >= e->expires_ms || strcmp(e->aor, aor) != 0) return false;
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < e->n; i++) {
        const struct node *n = &c->nodes[e->idx[i]];
        if (n->gen != e->gen[i] || !node_alive(c, n, now)) {
            e->expires_ms = 0; /* a node went: ask Redis again */
            return false;
        }
        fill_hit(n, &r->hits[r->n++]);
    }
    r->cached = true;
    return true;
}

/* seq: c->inval_seq when the lookup was sent; an invalidation since may
 * concern this answer (read before the change): not kept. */
static void cache_put(struct cluster *c, const char *aor, const uint8_t *idx, size_t n, uint64_t seq)
{
    struct cache_entry *e = cache_slot(c, aor);
    if (!e || seq != c->inval_seq) return;
    snprintf(e->aor, sizeof(e->aor), "%s", aor);
    e->n = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        e->idx[i] = idx[i];
        e->gen[i] = c->nodes[idx[i]].gen;
    }
    e->expires_ms = timer_now(c->timers) + c->cache_ms;
}

/* ---- lookups ---- */

/* The live nodes other than this one among the bindings of an HGETALL. */
static void read_bindings(struct cluster *c, const char *aor, uint64_t seq, const redisReply *reply,
                          struct cluster_result *r)
{
    uint8_t idx[CLUSTER_MAX_HITS];
    int64_t wall = clock_wall_ms();
    uint64_t now = timer_now(c->timers);
    if (reply->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 1; i < reply->elements && r->n < CLUSTER_MAX_HITS; i += 2) {
        const redisReply *v = reply->element[i];
        if (v->type != REDIS_REPLY_STRING) continue;
        char nodebuf[128];
        int64_t exp = 0;
        const char *node = cluster_record_read(v->str, v->len, nodebuf, sizeof(nodebuf), &exp) == 0 ? nodebuf : NULL;
        struct node *n = node && exp > wall && strcmp(node, c->node_id) != 0 ? node_find(c, node, strlen(node)) : NULL;
        if (n && node_alive(c, n, now)) {
            bool dup = false;
            for (size_t k = 0; k < r->n; k++) dup = dup || !strcmp(r->hits[k].node, n->id);
            if (!dup) {
                idx[r->n] = (uint8_t)(n - c->nodes);
                fill_hit(n, &r->hits[r->n++]);
            }
        } else if (node && exp > wall && strcmp(node, c->node_id) != 0) {
            log_info_rl("cluster: %s has a binding on node %s, which is not live here", aor, node);
        }
    }
    cache_put(c, aor, idx, r->n, seq);
}

static void on_lookup(void *arg, int status, const struct redisReply *reply)
{
    struct cluster_lookup *l = arg;
    struct cluster *c = l->c;
    c->stats.pending--;
    if (l->raw) { /* cluster_read_bindings */
        if (status < 0 || !reply || reply->type == REDIS_REPLY_ERROR) c->stats.failed++;
        cluster_read_cb raw = l->raw;
        void *raw_arg = l->arg;
        bool bad = status < 0 || !reply || reply->type == REDIS_REPLY_ERROR;
        free(l);
        raw(raw_arg, c->closing ? -ECANCELED : status < 0 ? status : bad ? -EIO : 0,
            c->closing || bad ? NULL : reply);
        return;
    }
    struct cluster_result r;
    memset(&r, 0, sizeof(r));
    if (status < 0 || !reply || reply->type == REDIS_REPLY_ERROR) {
        c->stats.failed++;
        r.status = status < 0 ? status : -EIO;
        if (status != -ECANCELED)
            log_warn_rl("cluster: lookup of %s failed: %s", l->aor,
                        status < 0 ? strerror(-status) : (reply ? reply->str : "no reply"));
    } else if (!c->closing) {
        read_bindings(c, l->aor, l->seq, reply, &r);
        if (r.n) c->stats.found++;
    } else {
        r.status = -ECANCELED;
    }
    if (l->cb) l->cb(l->arg, &r);
    free(l);
}

/* Sends HGETALL of aor's location hash under the lookups' cap; the reply goes to on_lookup,
 * which hands it to cb (a lookup) or raw (a raw read): exactly one of them is set. */
static int start_hgetall(struct cluster *c, const char *aor, cluster_lookup_cb cb, cluster_read_cb raw, void *arg,
                         struct cluster_lookup **h)
{
    if (c->stats.pending >= c->max_pending) {
        c->stats.refused++;
        return -ENOBUFS;
    }
    struct cluster_lookup *l = calloc(1, sizeof(*l));
    if (!l) {
        c->stats.refused++;
        return -ENOMEM;
    }
    l->c = c;
    l->cb = cb;
    l->raw = raw;
    l->arg = arg;
    l->seq = c->inval_seq;
    snprintf(l->aor, sizeof(l->aor), "%s", aor);
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "%sloc:{%s}", c->prefix, aor);
    const char *argv[] = {"HGETALL", key};
    size_t lens[] = {7, strlen(key)};
    int rc = redis_cluster_command(c->rc, 1, 2, argv, lens, on_lookup, l);
    if (rc < 0) {
        free(l);
        c->stats.refused++;
        return rc;
    }
    c->stats.pending++;
    *h = l;
    return 0;
}

int cluster_lookup(struct cluster *c, const char *aor, struct cluster_result *now, cluster_lookup_cb cb, void *arg,
                   struct cluster_lookup **h)
{
    c->stats.lookups++;
    if (cache_get(c, aor, now)) {
        c->stats.cache_hits++;
        if (now->n) c->stats.found++;
        return 1;
    }
    return start_hgetall(c, aor, cb, NULL, arg, h);
}

void cluster_lookup_cancel(struct cluster_lookup *h)
{
    if (h) h->cb = NULL;
}

/* A raw HGETALL of aor's location hash, with the lookups' cap. */
int cluster_read_bindings(struct cluster *c, const char *aor, cluster_read_cb cb, void *arg, struct cluster_lookup **h)
{
    return start_hgetall(c, aor, NULL, cb, arg, h);
}

static void read_dropped(void *arg, int status, const struct redisReply *reply) { (void)arg, (void)status, (void)reply; }

void cluster_read_cancel(struct cluster_lookup *h)
{
    if (h) h->raw = read_dropped;
}

/* The invalidation channel's listeners (cluster.h). */
int cluster_set_on_bindings_changed(struct cluster *c, void (*fn)(void *arg, const char *aor), void *arg)
{
    for (size_t i = 0; i < CLUSTER_LISTENERS_MAX; i++)
        if (c->on_changed[i].fn && c->on_changed[i].arg == arg) {
            c->on_changed[i].fn = fn; /* replaced, or removed with NULL */
            return 0;
        }
    if (!fn) return 0;
    for (size_t i = 0; i < CLUSTER_LISTENERS_MAX; i++)
        if (!c->on_changed[i].fn) {
            c->on_changed[i].fn = fn;
            c->on_changed[i].arg = arg;
            return 0;
        }
    return -ENOSPC;
}

static void tell_changed(struct cluster *c, const char *aor)
{
    for (size_t i = 0; i < CLUSTER_LISTENERS_MAX; i++)
        if (c->on_changed[i].fn) c->on_changed[i].fn(c->on_changed[i].arg, aor);
}

/* ---- invalidations (redis/redis_sub.h) ---- */

static void on_sub_lost(void *arg, const char *why)
{
    struct cluster *c = arg;
    if (c->subscribed)
        log_warn_rl("cluster: the invalidation channel is down (%s): lookups skip the cache until it is back", why);
    c->subscribed = false;
    cache_flush(c);
}

static void on_sub_subscribed(void *arg)
{
    struct cluster *c = arg;
    c->subscribed = true;
    cache_flush(c); /* nothing cached before now was covered */
    log_info("cluster: invalidations on channel %s; lookups cached up to %u ms", c->channel, c->cache_ms);
    tell_changed(c, NULL); /* what was missed meanwhile */
}

/* "<prefix>loc:{<aor>}", the key the mirror changed: its cache entry goes. */
static void invalidate(struct cluster *c, const char *msg, size_t len)
{
    c->inval_seq++;
    c->stats.invalidations++;
    char aor[LOCATION_MAX_AOR];
    if (cluster_key_aor(msg, len, aor, sizeof(aor)) < 0) return;
    struct cache_entry *e = cache_slot(c, aor);
    if (e && !strcmp(e->aor, aor)) e->expires_ms = 0;
    tell_changed(c, aor);
}

static void on_sub_message(void *arg, const char *msg, size_t len) { invalidate(arg, msg, len); }

/* ---- life cycle ---- */

struct cluster *cluster_new(uv_loop_t *loop, struct timer_service *timers, const struct redis_config *cfg,
                            const char *node_id, const char *advertise, int *err)
{
    struct node self;
    memset(&self, 0, sizeof(self));
    if (parse_advertise(advertise, &self) != 0) {
        *err = -EINVAL;
        return NULL;
    }
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        *err = -ENOMEM;
        return NULL;
    }
    c->loop = loop;
    c->timers = timers;
    timer_node_init(&c->hb_timer);
    timer_node_init(&c->reap.grace);
    sbuf_init(&c->body);
    snprintf(c->node_id, sizeof(c->node_id), "%s", node_id);
    snprintf(c->prefix, sizeof(c->prefix), "%s", cfg->key_prefix);
    snprintf(c->advertise, sizeof(c->advertise), "%s", advertise);
    c->heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : 1000;
    c->node_ttl_ms = 3 * c->heartbeat_ms;
    c->cache_ms = cfg->lookup_cache_ms;
    c->max_pending = cfg->lookup_max_pending ? cfg->lookup_max_pending : 1000;
    if (c->cache_ms) {
        c->cache = calloc(CACHE_SLOTS, sizeof(*c->cache));
        if (!c->cache) {
            free(c);
            *err = -ENOMEM;
            return NULL;
        }
    }
    struct redis_cluster_config rc = {.seeds = cfg->nodes, .timeout_ms = cfg->timeout_ms,
                                      .max_queued = c->max_pending + 4 * CLUSTER_MAX_NODES};
    c->rc = redis_cluster_new(loop, timers, &rc, err);
    if (!c->rc) {
        free(c->cache);
        free(c);
        return NULL;
    }
    timer_start(timers, &c->hb_timer, timer_now(timers), on_hb_timer);
    snprintf(c->channel, sizeof(c->channel), "%sloc-changes", c->prefix);
    if (c->cache) {
        struct redis_sub_cb scb = {.subscribed = on_sub_subscribed, .message = on_sub_message, .lost = on_sub_lost,
                                   .arg = c};
        int serr = 0;
        c->sub = redis_sub_new(loop, timers, cfg->nodes, c->channel, &scb, &serr);
        if (!c->sub) log_warn("cluster: no invalidation channel (%s): lookups are not cached", strerror(-serr));
    }
    return c;
}

void cluster_free(struct cluster *c)
{
    if (!c) return;
    timer_stop(c->timers, &c->hb_timer);
    if (timer_armed(&c->reap.grace)) timer_stop(c->timers, &c->reap.grace);
    c->closing = true;
    redis_sub_free(c->sub);
    c->sub = NULL;
    redis_cluster_free(c->rc); /* every waiting command called back with -ECANCELED */
    cluster_gb_walk_reset(&c->reap.gb);
    sbuf_free(&c->body);
    free(c->cache);
    free(c);
}

bool cluster_is_node_addr(const struct cluster *c, const struct sockaddr *addr)
{
    uint64_t now = timer_now(c->timers);
    for (size_t i = 0; i < CLUSTER_MAX_NODES; i++) {
        const struct node *n = &c->nodes[i];
        if (!node_alive(c, n, now) || n->ip.ss_family != addr->sa_family) continue;
        if (addr->sa_family == AF_INET &&
            ((const struct sockaddr_in *)&n->ip)->sin_addr.s_addr == ((const struct sockaddr_in *)addr)->sin_addr.s_addr)
            return true;
        if (addr->sa_family == AF_INET6 && !memcmp(&((const struct sockaddr_in6 *)&n->ip)->sin6_addr,
                                                   &((const struct sockaddr_in6 *)addr)->sin6_addr, 16))
            return true;
    }
    return false;
}

int cluster_node_hit(const struct cluster *c, const char *id, struct cluster_hit *out)
{
    uint64_t now = timer_now(c->timers);
    size_t len = strlen(id);
    for (size_t i = 0; i < CLUSTER_MAX_NODES; i++) {
        const struct node *n = &c->nodes[i];
        if (!n->used || strlen(n->id) != len || memcmp(n->id, id, len)) continue;
        if (!node_alive(c, n, now)) return -EHOSTDOWN;
        fill_hit(n, out);
        return 0;
    }
    return -ENOENT;
}

int cluster_set_api(struct cluster *c, const char *hostport)
{
    char hp[CLUSTER_API_MAX];
    struct sockaddr_storage a;
    bool tls;
    if (!hostport || !*hostport) {
        c->api[0] = '\0';
        return 0;
    }
    if (cluster_peer_api(hostport, strlen(hostport), hp, sizeof(hp), &a, &tls) != 0) return -EINVAL;
    snprintf(c->api, sizeof(c->api), "%s", hostport);
    return 0;
}

int cluster_node_api(const struct cluster *c, const char *id, char *hostport, size_t cap,
                     struct sockaddr_storage *addr, bool *https)
{
    uint64_t now = timer_now(c->timers);
    size_t len = strlen(id);
    for (size_t i = 0; i < CLUSTER_MAX_NODES; i++) {
        const struct node *n = &c->nodes[i];
        if (!n->used || strlen(n->id) != len || memcmp(n->id, id, len)) continue;
        if (!node_alive(c, n, now)) return -EHOSTDOWN;
        if (!n->api[0]) return -EADDRNOTAVAIL;
        snprintf(hostport, cap, "%s", n->api_host);
        *addr = n->api_addr;
        *https = n->api_tls;
        return 0;
    }
    return -ENOENT;
}

size_t cluster_live_apis(const struct cluster *c, void (*fn)(void *arg, const char *id), void *arg)
{
    uint64_t now = timer_now(c->timers);
    size_t n = 0;
    for (size_t i = 0; i < CLUSTER_MAX_NODES; i++) {
        const struct node *nd = &c->nodes[i];
        if (!node_alive(c, nd, now) || !nd->api[0]) continue;
        n++;
        if (fn) fn(arg, nd->id);
    }
    return n;
}

void cluster_set_on_node_reaped(struct cluster *c, void (*fn)(void *arg, const char *id, const char *inc), void *arg)
{
    c->on_node_reaped = fn;
    c->on_node_reaped_arg = arg;
}

void cluster_set_on_reaped(struct cluster *c, void (*fn)(void *arg), void *arg)
{
    c->on_reaped = fn;
    c->on_reaped_arg = arg;
}

void cluster_set_events_stream(struct cluster *c, const struct cluster_stream *st)
{
    memset(&c->stream, 0, sizeof(c->stream));
    if (!st || !st->skip_local) return;
    snprintf(c->stream.key, sizeof(c->stream.key), "%s", st->key);
    snprintf(c->stream.seq_key, sizeof(c->stream.seq_key), "%s", st->seq_key);
    snprintf(c->stream.maxlen, sizeof(c->stream.maxlen), "%s", st->maxlen);
    snprintf(c->stream.node_id, sizeof(c->stream.node_id), "%s", st->node_id);
    snprintf(c->stream.node_json, sizeof(c->stream.node_json), "%s", st->node_json);
    if (strlen(st->key) >= sizeof(c->stream.key) || strlen(st->seq_key) >= sizeof(c->stream.seq_key) ||
        strlen(st->maxlen) >= sizeof(c->stream.maxlen) || strlen(st->node_id) >= sizeof(c->stream.node_id) ||
        strlen(st->node_json) >= sizeof(c->stream.node_json)) {
        log_error("cluster: the event stream's names do not fit: a reap's events go through the bus");
        memset(&c->stream, 0, sizeof(c->stream));
        return;
    }
    c->stream.skip_local = st->skip_local;
    c->stream.arg = st->arg;
    c->stream.on = true;
}

void cluster_set_gb_hooks(struct cluster *c, const struct cluster_gb_hooks *h)
{
    if (h) c->gb_hooks = *h;
    else memset(&c->gb_hooks, 0, sizeof(c->gb_hooks));
}

void cluster_set_node_death(struct cluster *c, const char *inc, struct event_bus *events, const char *domain)
{
    snprintf(c->inc, sizeof(c->inc), "%s", inc ? inc : "");
    snprintf(c->claimer, sizeof(c->claimer), "%s/%s", c->node_id, c->inc);
    c->events = events;
    snprintf(c->domain, sizeof(c->domain), "%s", domain ? domain : "");
}

const char *cluster_node_id(const struct cluster *c) { return c->node_id; }
const char *cluster_advertise(const struct cluster *c) { return c->advertise; }

void cluster_get_stats(const struct cluster *c, struct cluster_stats *out)
{
    *out = c->stats;
    uint64_t now = timer_now(c->timers);
    out->nodes_live = out->peers_stream_differs = 0;
    for (size_t i = 0; i < CLUSTER_MAX_NODES; i++) {
        if (!node_alive(c, &c->nodes[i], now)) continue;
        out->nodes_live++;
        out->peers_stream_differs += c->nodes[i].stream_warned;
    }
}

void cluster_stats_json(const struct cluster *c, json_t *stats)
{
    struct cluster_stats s;
    cluster_get_stats(c, &s);
    json_t *o = json_object();
    if (!o) return;
    json_object_set_new(o, "node_id", json_string(c->node_id));
    json_object_set_new(o, "advertise", json_string(c->advertise));
    json_object_set_new(o, "api", json_string(c->api));
    json_object_set_new(o, "cache", json_boolean(c->subscribed));
#define PUT(name) json_object_set_new(o, #name, json_integer((json_int_t)s.name))
    PUT(lookups);
    PUT(cache_hits);
    PUT(found);
    PUT(failed);
    PUT(refused);
    PUT(heartbeats);
    PUT(heartbeat_failures);
    PUT(invalidations);
    PUT(pending);
    PUT(nodes_live);
    PUT(peers_stream_differs);
    PUT(nodes_reaped);
    PUT(bindings_reaped);
    PUT(node_lost_offline);
    PUT(self_reaped);
    PUT(gb_devices_reaped);
    PUT(gb_devices_kept);
    PUT(reap_events_streamed);
    PUT(reap_events_cancelled);
#undef PUT
    json_t *peers = json_array();
    uint64_t now = timer_now(c->timers);
    for (size_t i = 0; peers && i < CLUSTER_MAX_NODES; i++)
        if (node_alive(c, &c->nodes[i], now)) {
            const struct node *n = &c->nodes[i];
            json_array_append_new(peers, json_pack("{s:s,s:s,s:s,s:o}", "id", n->id, "sip", n->sip, "api", n->api,
                                                   "events_stream",
                                                   n->stream < 0 ? json_null() : json_boolean(n->stream == 1)));
        }
    if (peers) json_object_set_new(o, "peers", peers);
    json_object_set_new(stats, "cluster", o);
}
