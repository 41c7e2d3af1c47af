/* location_mirror.c — bindings written behind into Redis Cluster (see the header). */
#include "registrar/location_mirror.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "base/clock.h"
#include "base/log.h"
#include "redis/redis_cluster.h"

#define MIRROR_KEY_MAX (64 + 8 + LOCATION_MAX_AOR + 2)
#define MIRROR_LOOKUP_CAP 256 /* bindings of one AoR read for the key's expiry */

struct location_mirror {
    struct redis_cluster *cluster;
    const struct location *loc;
    struct timer_service *timers;
    struct timer_node resync_timer;
    char node_id[128];
    char inc[32];              /* this run's incarnation (records' "inc") */
    char index[64 + 16 + 128 + 32 + 4]; /* <prefix>node-aors:{<id>}:<inc> */
    char prefix[64];
    uint32_t max_pending;
    bool publish;              /* [redis] cluster_route: tell the peers' caches */
    char channel[96];          /* <prefix>loc-changes */
    bool lost;                 /* a write was dropped or failed since the last resync */
    uint32_t durable_replicas; /* [redis] durable_writes: WAIT for this many; 0: off */
    uint32_t durable_timeout_ms, timeout_ms;
    struct mirror_sync *syncs; /* REGISTERs waiting for durability */
    struct location_mirror_stats stats;
};

static void key_for(const struct location_mirror *m, const char *aor, char *out, size_t cap)
{
    snprintf(out, cap, "%sloc:{%s}", m->prefix, aor);
}

static void on_reply(void *arg, int status, const struct redisReply *reply);

static void note_lost(struct location_mirror *m, const char *what, const char *key, int code)
{
    m->lost = true;
    log_warn_rl("redis mirror: %s %s (%d); pending %u, dropped %llu, failed %llu", what, key, code,
                m->stats.pending, (unsigned long long)m->stats.writes_dropped,
                (unsigned long long)m->stats.writes_failed);
}

/* One command toward the cluster, or a counted drop. */
static void send_cmd_at(struct location_mirror *m, int key_index, int argc, const char **argv, const size_t *lens);
static void send_cmd(struct location_mirror *m, int argc, const char **argv, const size_t *lens)
{
    send_cmd_at(m, 1, argc, argv, lens);
}

/* [redis] cluster_route: "PUBLISH <prefix>loc-changes <key>" after the
 * key's change, routed by the key (key_index 2): the same master, on the
 * same connection, after the write, so a peer that drops its cached answer
 * on the message reads the new bindings (registrar/cluster.h). */
static void publish_change(struct location_mirror *m, const char *key)
{
    if (!m->publish) return;
    const char *pub[] = {"PUBLISH", m->channel, key};
    size_t pub_len[] = {7, strlen(m->channel), strlen(key)};
    send_cmd_at(m, 2, 3, pub, pub_len);
}

static void send_cmd_at(struct location_mirror *m, int key_index, int argc, const char **argv, const size_t *lens)
{
    if (m->stats.pending >= m->max_pending) {
        m->stats.writes_dropped++;
        note_lost(m, "write dropped, too many pending for", argv[1], -ENOBUFS);
        return;
    }
    int rc = redis_cluster_command(m->cluster, key_index, argc, argv, lens, on_reply, m);
    if (rc < 0) {
        m->stats.writes_dropped++;
        note_lost(m, "write refused by the cluster client for", argv[1], rc);
        return;
    }
    m->stats.pending++;
}

static void on_resync_timer(struct timer_node *n, uint64_t now_ms);

static void on_reply(void *arg, int status, const struct redisReply *reply)
{
    struct location_mirror *m = arg;
    m->stats.pending--;
    if (status < 0 || !reply || reply->type == REDIS_REPLY_ERROR) {
        m->stats.writes_failed++;
        m->lost = true;
        log_warn_rl("redis mirror: a write failed: %s",
                    status < 0 ? strerror(-status) : (reply ? reply->str : "no reply"));
        return;
    }
    m->stats.writes_ok++;
    /* Redis answers again after lost writes: write everything once more (on
     * the next loop turn, not from inside the client's callback). */
    if (m->lost && m->cluster && !timer_armed(&m->resync_timer))
        timer_start(m->timers, &m->resync_timer, timer_now(m->timers), on_resync_timer);
}

/* The key's expiry: the latest among the AoR's bindings but skip (the one
 * being removed). 0 when none is left. */
static int64_t latest_expiry(const struct location_mirror *m, const char *aor, const struct location_binding *skip)
{
    const struct location_binding *bs[MIRROR_LOOKUP_CAP];
    size_t n = location_lookup(m->loc, (str_t){.s = aor, .len = strlen(aor)}, bs, MIRROR_LOOKUP_CAP);
    int64_t latest = 0;
    for (size_t i = 0; i < n && i < MIRROR_LOOKUP_CAP; i++) {
        if (skip && (bs[i] == skip || strcmp(bs[i]->contact, skip->contact) == 0)) continue;
        if (bs[i]->expires_wall_ms > latest) latest = bs[i]->expires_wall_ms;
    }
    return latest;
}

/* The binding's record (compact JSON, malloc'd), NULL when out of memory. */
static char *record_for(const struct location_mirror *m, const struct location_binding *b)
{
    json_t *rec = json_pack("{s:s,s:s,s:I,s:s,s:s,s:I,s:i}", "node", m->node_id, "inc", m->inc, "flow",
                            (json_int_t)b->conn_id, "transport",
                            location_transport_name((enum location_transport)b->transport), "remote", b->remote,
                            "expires", (json_int_t)b->expires_wall_ms, "q", (int)b->q1000);
    char *val = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    return val;
}

static void write_binding(struct location_mirror *m, const struct location_binding *b)
{
    char key[MIRROR_KEY_MAX];
    key_for(m, b->aor, key, sizeof(key));
    char *val = record_for(m, b);
    if (!val) {
        m->stats.writes_dropped++;
        note_lost(m, "out of memory for", key, -ENOMEM);
        return;
    }
    const char *hset[] = {"HSET", key, b->contact, val};
    size_t hset_len[] = {4, strlen(key), strlen(b->contact), strlen(val)};
    send_cmd(m, 4, hset, hset_len);
    free(val);

    int64_t at = latest_expiry(m, b->aor, NULL);
    if (b->expires_wall_ms > at) at = b->expires_wall_ms;
    char when[32];
    snprintf(when, sizeof(when), "%lld", (long long)at);
    const char *exp[] = {"PEXPIREAT", key, when};
    size_t exp_len[] = {9, strlen(key), strlen(when)};
    send_cmd(m, 3, exp, exp_len);
}

/* [redis] cluster_route: the AoR in this incarnation's index, which a
 * survivor reads when this node dies (cluster.h, node death). The set's
 * TTL is refreshed by the heartbeat; this one covers a node dying before
 * its first heartbeat. */
static void index_add(struct location_mirror *m, const char *aor)
{
    if (!m->publish) return;
    const char *sadd[] = {"SADD", m->index, aor};
    size_t sadd_len[] = {4, strlen(m->index), strlen(aor)};
    send_cmd(m, 3, sadd, sadd_len);
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%u", LOCATION_MIRROR_INDEX_TTL_MS);
    const char *exp[] = {"PEXPIRE", m->index, ttl};
    size_t exp_len[] = {7, strlen(m->index), strlen(ttl)};
    send_cmd(m, 3, exp, exp_len);
}

static void index_remove(struct location_mirror *m, const char *aor)
{
    if (!m->publish) return;
    const char *srem[] = {"SREM", m->index, aor};
    size_t srem_len[] = {4, strlen(m->index), strlen(aor)};
    send_cmd(m, 3, srem, srem_len);
}

static void on_added(void *arg, const struct location_binding *b)
{
    struct location_mirror *m = arg;
    write_binding(m, b);
    index_add(m, b->aor);
    char key[MIRROR_KEY_MAX];
    key_for(m, b->aor, key, sizeof(key));
    publish_change(m, key);
}
static void on_refreshed(void *arg, const struct location_binding *b) { write_binding(arg, b); }

static void on_removed(void *arg, const struct location_binding *b, enum location_reason reason)
{
    (void)reason;
    struct location_mirror *m = arg;
    char key[MIRROR_KEY_MAX];
    key_for(m, b->aor, key, sizeof(key));
    const char *hdel[] = {"HDEL", key, b->contact};
    size_t hdel_len[] = {4, strlen(key), strlen(b->contact)};
    send_cmd(m, 3, hdel, hdel_len);
    publish_change(m, key);
    int64_t at = latest_expiry(m, b->aor, b);
    if (at <= 0) { /* the last field: Redis dropped the key with it */
        index_remove(m, b->aor);
        return;
    }
    char when[32];
    snprintf(when, sizeof(when), "%lld", (long long)at);
    const char *exp[] = {"PEXPIREAT", key, when};
    size_t exp_len[] = {9, strlen(key), strlen(when)};
    send_cmd(m, 3, exp, exp_len);
}

static int resync_one(void *arg, const struct location_binding *b)
{
    write_binding(arg, b);
    index_add(arg, b->aor);
    return 0;
}

static void on_resync_timer(struct timer_node *n, uint64_t now_ms)
{
    (void)now_ms;
    struct location_mirror *m = container_of(n, struct location_mirror, resync_timer);
    bool first = m->stats.writes_ok + m->stats.writes_failed + m->stats.writes_dropped == 0;
    m->lost = false;
    if (!first) m->stats.resyncs++;
    if (!location_count(m->loc)) return;
    if (first) log_info("redis mirror: writing the %zu bindings loaded at start-up", location_count(m->loc));
    else log_info("redis mirror: the cluster answers again after lost writes; writing all %zu bindings again",
                  location_count(m->loc));
    location_foreach(m->loc, resync_one, m);
}

/* ---- durable writes ([redis] durable_writes) ----
 *
 * One sync per REGISTER whose 200 waits: HSET of the AoR's bindings as they
 * are here now (a chunk per MIRROR_SYNC_CHUNK fields), PEXPIREAT, then
 * WAIT <replicas> <ms>, all routed by the AoR's key, so they go in this
 * order on one connection to the slot's master. It succeeds when every
 * write was answered without error and the WAIT, answered later on that
 * same connection (redis_cluster_reply_origin), counts at least <replicas>
 * replicas: the bindings are then on a replica that a failover promotes.
 * Anything else (an error, a redirection or a reconnect between the write
 * and the WAIT, too few replicas) sends the whole sync again 100 ms later,
 * until the deadline. */

#define MIRROR_SYNC_CHUNK 30 /* fields per HSET: 2 + 2 * 30 arguments, under the client's 64 */
#define MIRROR_SYNC_RETRY_MS 100
#define MIRROR_SYNC_WAIT_MAX_MS 250

struct mirror_sync {
    struct location_mirror *m;
    location_mirror_sync_cb cb;          /* NULL once answered */
    void *arg;
    struct mirror_sync *prev, *next;
    struct timer_node deadline, retry;
    uint64_t deadline_ms;
    uint32_t attempt;
    uint32_t outstanding;                /* commands of any attempt unanswered */
    uint32_t waiting;                    /* commands of this attempt unanswered */
    bool bad;                            /* this attempt: something failed */
    uint64_t write_conn, write_seq;      /* the last write's origin */
    long long replicas;                  /* WAIT's answer, -1 none */
    uint64_t wait_conn, wait_seq;
    char aor[];
};

struct sync_cmd {
    struct mirror_sync *s;
    uint32_t attempt;
    bool is_wait;
};

static void sync_release(struct mirror_sync *s)
{
    if (s->cb || s->outstanding) return;
    struct location_mirror *m = s->m;
    if (s->prev) s->prev->next = s->next;
    else m->syncs = s->next;
    if (s->next) s->next->prev = s->prev;
    timer_stop(m->timers, &s->deadline);
    timer_stop(m->timers, &s->retry);
    free(s);
}

static void sync_answer(struct mirror_sync *s, int status)
{
    location_mirror_sync_cb cb = s->cb;
    if (!cb) return;
    s->cb = NULL;
    timer_stop(s->m->timers, &s->deadline);
    timer_stop(s->m->timers, &s->retry);
    if (status == 0) s->m->stats.durable_ok++;
    else s->m->stats.durable_failed++;
    cb(s->arg, status);
}

static void sync_attempt(struct mirror_sync *s);

static void on_sync_retry(struct timer_node *t, uint64_t now)
{
    (void)now;
    sync_attempt(container_of(t, struct mirror_sync, retry));
}

static void on_sync_deadline(struct timer_node *t, uint64_t now)
{
    (void)now;
    struct mirror_sync *s = container_of(t, struct mirror_sync, deadline);
    log_warn_rl("redis mirror: %s not replicated within durable_timeout_ms (%llu so far)", s->aor,
                (unsigned long long)s->m->stats.durable_failed + 1);
    sync_answer(s, -ETIMEDOUT);
    sync_release(s);
}

static void on_sync_reply(void *arg, int status, const struct redisReply *reply)
{
    struct sync_cmd *c = arg;
    struct mirror_sync *s = c->s;
    struct location_mirror *m = s->m;
    s->outstanding--;
    bool current = c->attempt == s->attempt && s->cb;
    if (current) {
        s->waiting--;
        uint64_t conn = 0, seq = 0;
        if (status == 0 && m->cluster) redis_cluster_reply_origin(m->cluster, &conn, &seq);
        if (status < 0 || !reply || reply->type == REDIS_REPLY_ERROR) {
            s->bad = true;
        } else if (c->is_wait) {
            s->replicas = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
            s->wait_conn = conn;
            s->wait_seq = seq;
        } else if (!s->write_conn || s->write_conn == conn) {
            s->write_conn = conn;
            if (seq > s->write_seq) s->write_seq = seq;
        } else {
            s->bad = true; /* the writes went to two connections */
        }
        if (!s->waiting) {
            bool ok = !s->bad && s->write_conn && s->wait_conn == s->write_conn && s->wait_seq > s->write_seq &&
                      s->replicas >= (long long)m->durable_replicas;
            if (ok) {
                sync_answer(s, 0);
            } else if (m->cluster) {
                m->stats.durable_retries++;
                timer_start(m->timers, &s->retry, timer_now(m->timers) + MIRROR_SYNC_RETRY_MS, on_sync_retry);
            }
        }
    }
    free(c);
    sync_release(s);
}

/* is_wait: argv is WAIT's (no key), routed by the AoR's key. */
static int sync_send(struct mirror_sync *s, bool is_wait, const char *key, int argc, const char **argv,
                     const size_t *lens)
{
    struct sync_cmd *c = malloc(sizeof(*c));
    if (!c) return -ENOMEM;
    c->s = s;
    c->attempt = s->attempt;
    c->is_wait = is_wait;
    int rc = is_wait ? redis_cluster_command_routed(s->m->cluster, key, strlen(key), argc, argv, lens, on_sync_reply, c)
                     : redis_cluster_command(s->m->cluster, 1, argc, argv, lens, on_sync_reply, c);
    if (rc < 0) {
        free(c);
        return rc;
    }
    s->outstanding++;
    s->waiting++;
    return 0;
}

static void sync_attempt(struct mirror_sync *s)
{
    struct location_mirror *m = s->m;
    if (!s->cb || !m->cluster) return;
    s->attempt++;
    s->bad = false;
    s->waiting = 0;
    s->write_conn = s->write_seq = s->wait_conn = s->wait_seq = 0;
    s->replicas = -1;
    char key[MIRROR_KEY_MAX];
    key_for(m, s->aor, key, sizeof(key));
    const struct location_binding *bs[MIRROR_LOOKUP_CAP];
    size_t n = location_lookup(m->loc, (str_t){.s = s->aor, .len = strlen(s->aor)}, bs, MIRROR_LOOKUP_CAP);
    if (n > MIRROR_LOOKUP_CAP) n = MIRROR_LOOKUP_CAP;
    int64_t latest = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += MIRROR_SYNC_CHUNK) {
        const char *argv[2 + 2 * MIRROR_SYNC_CHUNK];
        size_t lens[2 + 2 * MIRROR_SYNC_CHUNK];
        char *vals[MIRROR_SYNC_CHUNK];
        int argc = 2, nv = 0;
        argv[0] = "HSET";
        lens[0] = 4;
        argv[1] = key;
        lens[1] = strlen(key);
        for (size_t k = i; k < n && k < i + MIRROR_SYNC_CHUNK; k++) {
            char *v = record_for(m, bs[k]);
            if (!v) {
                rc = -ENOMEM;
                break;
            }
            vals[nv++] = v;
            argv[argc] = bs[k]->contact;
            lens[argc++] = strlen(bs[k]->contact);
            argv[argc] = v;
            lens[argc++] = strlen(v);
            if (bs[k]->expires_wall_ms > latest) latest = bs[k]->expires_wall_ms;
        }
        if (rc == 0 && argc > 2) rc = sync_send(s, false, key, argc, argv, lens);
        for (int k = 0; k < nv; k++) free(vals[k]);
    }
    if (rc == 0 && n) {
        char when[32];
        snprintf(when, sizeof(when), "%lld", (long long)latest);
        const char *exp[] = {"PEXPIREAT", key, when};
        size_t exp_len[] = {9, strlen(key), strlen(when)};
        rc = sync_send(s, false, key, 3, exp, exp_len);
    }
    if (rc == 0 && n) {
        uint64_t now = timer_now(m->timers);
        uint64_t left = s->deadline_ms > now ? s->deadline_ms - now : 1;
        char reps[16], ms[24];
        snprintf(reps, sizeof(reps), "%u", m->durable_replicas);
        /* WAIT holds this connection (every mirror command to that
         * master queues behind it) until the replicas answer: at once when
         * they are there; with too few, at most MIRROR_SYNC_WAIT_MAX_MS
         * per attempt. And within the client's deadline for the command. */
        if (left > MIRROR_SYNC_WAIT_MAX_MS) left = MIRROR_SYNC_WAIT_MAX_MS;
        if (left + 100 > m->timeout_ms) left = m->timeout_ms > 200 ? m->timeout_ms - 200 : 1;
        snprintf(ms, sizeof(ms), "%llu", (unsigned long long)left);
        const char *wait[] = {"WAIT", reps, ms};
        size_t wait_len[] = {4, strlen(reps), strlen(ms)};
        rc = sync_send(s, true, key, 3, wait, wait_len);
    }
    if (!n) { /* nothing left to make durable (removed meanwhile) */
        sync_answer(s, 0);
        return;
    }
    if (rc < 0 && !s->waiting) {
        m->stats.durable_retries++;
        timer_start(m->timers, &s->retry, timer_now(m->timers) + MIRROR_SYNC_RETRY_MS, on_sync_retry);
    } else if (rc < 0) {
        s->bad = true; /* the replies of what went decide the retry */
    }
}

int location_mirror_sync(void *mirror, const char *aor, location_mirror_sync_cb cb, void *arg)
{
    struct location_mirror *m = mirror;
    if (!m->durable_replicas || !m->cluster) return 1;
    if (!location_lookup(m->loc, (str_t){.s = aor, .len = strlen(aor)}, NULL, 0)) return 1;
    size_t len = strlen(aor);
    struct mirror_sync *s = calloc(1, sizeof(*s) + len + 1);
    if (!s) return -ENOMEM;
    memcpy(s->aor, aor, len + 1);
    s->m = m;
    s->cb = cb;
    s->arg = arg;
    timer_node_init(&s->deadline);
    timer_node_init(&s->retry);
    s->next = m->syncs;
    if (m->syncs) m->syncs->prev = s;
    m->syncs = s;
    s->deadline_ms = timer_now(m->timers) + m->durable_timeout_ms;
    timer_start(m->timers, &s->deadline, s->deadline_ms, on_sync_deadline);
    sync_attempt(s);
    sync_release(s);
    return 0;
}

struct location_mirror *location_mirror_new(uv_loop_t *loop, struct timer_service *timers,
                                            const struct location *loc, const struct redis_config *cfg, int *err)
{
    struct location_mirror *m = calloc(1, sizeof(*m));
    if (!m) {
        *err = -ENOMEM;
        return NULL;
    }
    m->loc = loc;
    m->timers = timers;
    timer_node_init(&m->resync_timer);
    m->max_pending = cfg->max_pending ? cfg->max_pending : 10000;
    snprintf(m->prefix, sizeof(m->prefix), "%s", cfg->key_prefix);
    m->publish = cfg->cluster_route;
    m->durable_replicas = cfg->durable_writes ? (cfg->durable_replicas ? cfg->durable_replicas : 1) : 0;
    m->durable_timeout_ms = cfg->durable_timeout_ms ? cfg->durable_timeout_ms : 5000;
    m->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000;
    snprintf(m->channel, sizeof(m->channel), "%sloc-changes", cfg->key_prefix);
    if (cfg->node_id[0]) {
        snprintf(m->node_id, sizeof(m->node_id), "%s", cfg->node_id);
    } else if (gethostname(m->node_id, sizeof(m->node_id) - 1) != 0 || !m->node_id[0]) {
        snprintf(m->node_id, sizeof(m->node_id), "node-%ld", (long)getpid());
    }
    /* The incarnation: a restarted node with the same id writes records a
     * survivor reaping the previous run (cluster.c) leaves alone. */
    uint32_t rnd = 0;
    FILE *ur = fopen("/dev/urandom", "rb");
    if (!ur || fread(&rnd, sizeof(rnd), 1, ur) != 1) rnd = (uint32_t)getpid();
    if (ur) fclose(ur);
    snprintf(m->inc, sizeof(m->inc), "%llx-%08x", (unsigned long long)clock_wall_ms(), rnd);
    snprintf(m->index, sizeof(m->index), "%snode-aors:{%s}:%s", m->prefix, m->node_id, m->inc);
    struct redis_cluster_config rc = {.seeds = cfg->nodes, .timeout_ms = cfg->timeout_ms,
                                      .max_queued = m->max_pending};
    m->cluster = redis_cluster_new(loop, timers, &rc, err);
    if (!m->cluster) {
        free(m);
        return NULL;
    }
    /* Bindings loaded from the store at start-up fire no callbacks: write
     * them all once the loop runs. */
    timer_start(timers, &m->resync_timer, timer_now(timers), on_resync_timer);
    return m;
}

void location_mirror_free(struct location_mirror *m)
{
    if (!m) return;
    timer_stop(m->timers, &m->resync_timer);
    struct redis_cluster *c = m->cluster;
    m->cluster = NULL; /* the cancelled callbacks must not schedule a resync or a sync's retry */
    for (struct mirror_sync *s = m->syncs; s; s = s->next) {
        timer_stop(m->timers, &s->retry);
        timer_stop(m->timers, &s->deadline);
    }
    for (struct mirror_sync *s = m->syncs, *next; s; s = next) { /* answered before their commands end */
        next = s->next;
        sync_answer(s, -ECANCELED);
    }
    redis_cluster_free(c); /* each sync is freed with its last command */
    while (m->syncs) { /* syncs with nothing in flight */
        struct mirror_sync *s = m->syncs;
        s->outstanding = 0;
        sync_release(s);
    }
    free(m);
}

void location_mirror_callbacks(struct location_mirror *m, struct location_callbacks *out)
{
    memset(out, 0, sizeof(*out));
    out->arg = m;
    out->binding_added = on_added;
    out->binding_refreshed = on_refreshed;
    out->binding_removed = on_removed;
}

void location_mirror_get_stats(const struct location_mirror *m, struct location_mirror_stats *out) { *out = m->stats; }

const char *location_mirror_node_id(const struct location_mirror *m) { return m->node_id; }
void location_mirror_resync(void *mirror)
{
    struct location_mirror *m = mirror;
    m->lost = true;
    if (m->cluster && !timer_armed(&m->resync_timer))
        timer_start(m->timers, &m->resync_timer, timer_now(m->timers), on_resync_timer);
}

const char *location_mirror_incarnation(const struct location_mirror *m) { return m->inc; }
