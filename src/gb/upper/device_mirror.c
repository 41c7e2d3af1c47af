/* device_mirror.c — GB devices written behind into Redis Cluster, and read
 * back for a play across nodes (see the header). */
#include "gb/upper/device_mirror.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/log.h"
#include "redis/redis_cluster.h"

#define DM_KEY_MAX 160
#define DM_ID_MAX 64
#define DM_FIELDS_MAX 32 /* 16 pairs: ours are 7; a longer hash is not one of ours */

/* Marks the device offline only while the hash still names this node: a
 * device that re-registered elsewhere keeps its new node's record. */
static const char offline_script[] =
    "if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then "
    "redis.call('HSET', KEYS[1], 'online', '0') "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end return 0";

struct gb_devmirror {
    struct redis_cluster *writer;   /* write-behind */
    struct redis_cluster *reader;   /* lookups: never behind a write backlog */
    char node_id[GB_DEVMIRROR_NODE_MAX];
    char inc[GB_DEVMIRROR_INC_MAX];    /* this run's incarnation; "": no index, no inc field */
    char prefix[64];
    uint32_t max_pending;
    int64_t keepalive_write_ms;
    struct gb_devmirror_lookup *lookups; /* waiting for Redis */
    struct gb_devmirror_stats stats;
};

struct gb_devmirror_lookup {
    struct gb_devmirror *m;         /* NULL: the mirror is gone */
    struct gb_devmirror_lookup *next, *prev;
    gb_devmirror_lookup_cb cb;      /* a device's record; NULL (and ccb NULL): cancelled */
    gb_devmirror_channel_cb ccb;    /* a channel's device */
    void *arg;
};

static int key_for(const struct gb_devmirror *m, const char *id, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%sgbdev:{%s}", m->prefix, id);
    return n > 0 && (size_t)n < cap ? n : -1;
}

/* ---- writes ---- */

static void send_write(struct gb_devmirror *m, int key_index, int argc, const char **argv, const size_t *lens);

/* With an incarnation: the device in (SADD) or out of (SREM) this run's
 * index <prefix>node-gbdevs:{<node>}:<inc>, which a survivor walks when
 * this node dies (registrar/cluster.c). Written with every online write, so
 * a dropped SADD is repaired by the device's next keepalive write. */
static void index_write(struct gb_devmirror *m, const char *cmd, const char *id)
{
    if (!m->inc[0]) return;
    char idx[DM_KEY_MAX + GB_DEVMIRROR_NODE_MAX + GB_DEVMIRROR_INC_MAX];
    snprintf(idx, sizeof(idx), "%snode-gbdevs:{%s}:%s", m->prefix, m->node_id, m->inc);
    const char *argv[] = {cmd, idx, id};
    size_t lens[] = {strlen(cmd), strlen(idx), strlen(id)};
    send_write(m, 1, 3, argv, lens);
}

static void on_write(void *arg, int status, const struct redisReply *reply)
{
    struct gb_devmirror *m = arg;
    m->stats.pending--;
    if (status < 0 || !reply || reply->type == REDIS_REPLY_ERROR) {
        m->stats.writes_failed++;
        log_warn_rl("redis gb devices: a write failed: %s",
                    status < 0 ? strerror(-status) : (reply && reply->str ? reply->str : "no reply"));
        return;
    }
    m->stats.writes_ok++;
}

static void send_write(struct gb_devmirror *m, int key_index, int argc, const char **argv, const size_t *lens)
{
    if (m->stats.pending >= m->max_pending) {
        m->stats.writes_dropped++;
        log_warn_rl("redis gb devices: write for %s dropped: %u pending", argv[key_index], m->stats.pending);
        return;
    }
    int rc = redis_cluster_command(m->writer, key_index, argc, argv, lens, on_write, m);
    if (rc < 0) {
        m->stats.writes_dropped++;
        log_warn_rl("redis gb devices: write for %s refused by the cluster client (%s)", argv[key_index],
                    strerror(-rc));
        return;
    }
    m->stats.pending++;
}

void gb_devmirror_online(struct gb_devmirror *m, const char *id, const struct gb_devmirror_state *s)
{
    char key[DM_KEY_MAX];
    if (!m || key_for(m, id, key, sizeof(key)) < 0) return;
    char reg[24], ka[24], exp[24], ttl[24];
    snprintf(reg, sizeof(reg), "%lld", (long long)s->registered);
    snprintf(ka, sizeof(ka), "%lld", (long long)s->keepalive);
    snprintf(exp, sizeof(exp), "%lld", (long long)s->expires);
    /* Online until the registration expires or the keepalive window ends
     * with no keepalive written meanwhile (written at most once per
     * interval, so the window is stretched by one interval). */
    int64_t until = s->keepalive + (int64_t)s->keepalive_window_ms + m->keepalive_write_ms;
    if (s->expires > 0 && s->expires < until) until = s->expires;
    int64_t left = until - s->keepalive;
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(left > 1000 ? left : 1000));
    const char *hset[] = {"HSET",      key,         "node",  m->node_id, "transport", s->transport, "remote",
                          s->remote,   "online",    "1",     "registered", reg,       "keepalive",  ka,
                          "expires",   exp,         "inc",   m->inc};
    int hn = (int)(sizeof(hset) / sizeof(hset[0])) - (m->inc[0] ? 0 : 2);
    size_t hl[sizeof(hset) / sizeof(hset[0])];
    for (int i = 0; i < hn; i++) hl[i] = strlen(hset[i]);
    send_write(m, 1, hn, hset, hl);
    const char *pexp[] = {"PEXPIRE", key, ttl};
    size_t pl[] = {7, strlen(key), strlen(ttl)};
    send_write(m, 1, 3, pexp, pl);
    index_write(m, "SADD", id);
}

bool gb_devmirror_keepalive_due(const struct gb_devmirror *m, int64_t last_write, int64_t now_wall)
{
    return m && (last_write <= 0 || now_wall - last_write >= m->keepalive_write_ms);
}

void gb_devmirror_offline(struct gb_devmirror *m, const char *id)
{
    char key[DM_KEY_MAX];
    if (!m || key_for(m, id, key, sizeof(key)) < 0) return;
    char keep[24];
    snprintf(keep, sizeof(keep), "%u", GB_DEVMIRROR_OFFLINE_KEEP_MS);
    const char *argv[] = {"EVAL", offline_script, "1", key, m->node_id, keep};
    size_t lens[] = {4, sizeof(offline_script) - 1, 1, strlen(key), strlen(m->node_id), strlen(keep)};
    send_write(m, 3, 6, argv, lens);
    index_write(m, "SREM", id);
}

void gb_devmirror_channels(struct gb_devmirror *m, const char *id, const char *const *channels, size_t n,
                           uint64_t ttl_ms)
{
    if (!m || !id) return;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%llu",
             (unsigned long long)(ttl_ms > GB_DEVMIRROR_CHANNEL_KEEP_MS ? ttl_ms : GB_DEVMIRROR_CHANNEL_KEEP_MS));
    for (size_t i = 0; i < n; i++) {
        char key[DM_KEY_MAX];
        const char *ch = channels[i];
        if (!ch || !strcmp(ch, id) || strlen(ch) > DM_ID_MAX) continue;
        int kn = snprintf(key, sizeof(key), "%sgbchan:{%s}", m->prefix, ch);
        if (kn <= 0 || (size_t)kn >= sizeof(key)) continue;
        const char *argv[] = {"SET", key, id, "PX", ttl};
        size_t lens[] = {3, (size_t)kn, strlen(id), 2, strlen(ttl)};
        send_write(m, 1, 5, argv, lens);
    }
}

void gb_devmirror_set_incarnation(struct gb_devmirror *m, const char *inc)
{
    if (m) snprintf(m->inc, sizeof(m->inc), "%s", inc ? inc : "");
}

/* ---- reading a record ---- */

static bool num_read(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Printable ASCII, no space, shorter than cap. */
static bool text_read(const char *s, size_t n, char *out, size_t cap)
{
    if (n == 0 || n >= cap) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static bool field_is(const char *s, size_t n, const char *name) { return strlen(name) == n && !memcmp(s, name, n); }

int gb_devmirror_record_read(const char *const *strs, const size_t *lens, size_t n, struct gb_devmirror_record *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0 || n % 2) return -1;
    bool have_node = false, have_online = false;
    for (size_t i = 0; i < n; i += 2) {
        const char *f = strs[i], *v = strs[i + 1];
        size_t fl = lens[i], vl = lens[i + 1];
        if (!f || !v) return -1;
        bool ok = true;
        if (field_is(f, fl, "node")) ok = have_node = text_read(v, vl, out->node, sizeof(out->node));
        else if (field_is(f, fl, "transport")) ok = text_read(v, vl, out->transport, sizeof(out->transport));
        else if (field_is(f, fl, "remote")) ok = text_read(v, vl, out->remote, sizeof(out->remote));
        else if (field_is(f, fl, "inc")) ok = text_read(v, vl, out->inc, sizeof(out->inc));
        else if (field_is(f, fl, "online")) {
            ok = have_online = vl == 1 && (v[0] == '0' || v[0] == '1');
            out->online = ok && v[0] == '1';
        } else if (field_is(f, fl, "registered")) ok = num_read(v, vl, &out->registered);
        else if (field_is(f, fl, "keepalive")) ok = num_read(v, vl, &out->keepalive);
        else if (field_is(f, fl, "expires")) ok = num_read(v, vl, &out->expires);
        if (!ok) return -1;
    }
    return have_node && have_online ? 0 : -1;
}

int gb_devmirror_reply_read(const struct redisReply *reply, struct gb_devmirror_record *out)
{
    memset(out, 0, sizeof(*out));
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements > DM_FIELDS_MAX) return -EPROTO;
    if (reply->elements == 0) return -ENOENT; /* no such key */
    const char *strs[DM_FIELDS_MAX];
    size_t lens[DM_FIELDS_MAX];
    for (size_t i = 0; i < reply->elements; i++) {
        const struct redisReply *e = reply->element[i];
        if (!e || e->type != REDIS_REPLY_STRING) return -EPROTO;
        strs[i] = e->str;
        lens[i] = e->len;
    }
    return gb_devmirror_record_read(strs, lens, reply->elements, out) == 0 ? 0 : -EPROTO;
}

int gb_devmirror_channel_reply_read(const struct redisReply *reply, char *out)
{
    out[0] = '\0';
    if (reply->type == REDIS_REPLY_NIL) return -ENOENT;
    if (reply->type != REDIS_REPLY_STRING || reply->len != GB_DEVMIRROR_ID_LEN || !reply->str) return -EPROTO;
    for (size_t i = 0; i < GB_DEVMIRROR_ID_LEN; i++)
        if (reply->str[i] < '0' || reply->str[i] > '9') return -EPROTO;
    memcpy(out, reply->str, GB_DEVMIRROR_ID_LEN);
    out[GB_DEVMIRROR_ID_LEN] = '\0';
    return 0;
}

/* ---- lookups ---- */

static void lookup_unlink(struct gb_devmirror_lookup *l)
{
    struct gb_devmirror *m = l->m;
    if (!m) return;
    if (l->prev) l->prev->next = l->next;
    else m->lookups = l->next;
    if (l->next) l->next->prev = l->prev;
    l->next = l->prev = NULL;
    m->stats.lookups_pending--;
}


static void on_lookup(void *arg, int status, const struct redisReply *reply)
{
    struct gb_devmirror_lookup *l = arg;
    struct gb_devmirror *m = l->m;
    lookup_unlink(l);
    if (!l->cb && !l->ccb) { /* cancelled */
        free(l);
        return;
    }
    if (status == 0 && !reply) status = -EPROTO;
    if (status < 0) {
        if (m) m->stats.lookups_failed++;
        if (l->ccb) l->ccb(l->arg, status, NULL);
        else l->cb(l->arg, status, NULL);
        free(l);
        return;
    }
    if (l->ccb) {
        char dev[GB_DEVMIRROR_ID_LEN + 1];
        int rc = gb_devmirror_channel_reply_read(reply, dev);
        if (rc == -EPROTO) log_warn_rl("redis gb devices: a channel key does not name a device; taken as absent");
        if (m && rc == 0) m->stats.lookups_found++;
        l->ccb(l->arg, 0, rc == 0 ? dev : NULL);
        free(l);
        return;
    }
    struct gb_devmirror_record rec;
    int rc = gb_devmirror_reply_read(reply, &rec);
    bool found = rc == 0;
    if (rc == -EPROTO) log_warn_rl("redis gb devices: a device record does not read; taken as absent");
    if (m && found) m->stats.lookups_found++;
    l->cb(l->arg, 0, found ? &rec : NULL);
    free(l);
}

/* One read on the reader client: HGETALL of a device's key (cb) or GET of a
 * channel's (ccb). */
static int lookup_start(struct gb_devmirror *m, const char *cmd, const char *key, gb_devmirror_lookup_cb cb,
                        gb_devmirror_channel_cb ccb, void *arg, struct gb_devmirror_lookup **h)
{
    if (m->stats.lookups_pending >= m->max_pending) {
        m->stats.lookups_refused++;
        return -ENOBUFS;
    }
    struct gb_devmirror_lookup *l = calloc(1, sizeof(*l));
    if (!l) return -ENOMEM;
    l->m = m;
    l->cb = cb;
    l->ccb = ccb;
    l->arg = arg;
    const char *argv[] = {cmd, key};
    size_t lens[] = {strlen(cmd), strlen(key)};
    int rc = redis_cluster_command(m->reader, 1, 2, argv, lens, on_lookup, l);
    if (rc < 0) {
        m->stats.lookups_refused++;
        free(l);
        return rc;
    }
    m->stats.lookups++;
    m->stats.lookups_pending++;
    l->next = m->lookups;
    if (m->lookups) m->lookups->prev = l;
    m->lookups = l;
    *h = l;
    return 0;
}

int gb_devmirror_lookup(struct gb_devmirror *m, const char *id, gb_devmirror_lookup_cb cb, void *arg,
                        struct gb_devmirror_lookup **h)
{
    char key[DM_KEY_MAX];
    if (strlen(id) > DM_ID_MAX || key_for(m, id, key, sizeof(key)) < 0) return -EINVAL;
    return lookup_start(m, "HGETALL", key, cb, NULL, arg, h);
}

int gb_devmirror_channel_lookup(struct gb_devmirror *m, const char *id, gb_devmirror_channel_cb cb, void *arg,
                                struct gb_devmirror_lookup **h)
{
    char key[DM_KEY_MAX];
    int kn = strlen(id) > DM_ID_MAX ? -1 : snprintf(key, sizeof(key), "%sgbchan:{%s}", m->prefix, id);
    if (kn <= 0 || (size_t)kn >= sizeof(key)) return -EINVAL;
    return lookup_start(m, "GET", key, NULL, cb, arg, h);
}

void gb_devmirror_lookup_cancel(struct gb_devmirror_lookup *h)
{
    if (h) h->cb = NULL, h->ccb = NULL; /* freed when the client answers (or fails it) */
}

/* ---- life ---- */

struct gb_devmirror *gb_devmirror_new(uv_loop_t *loop, struct timer_service *timers, const struct redis_config *cfg,
                                      const char *node_id, int *err)
{
    if (!node_id || !*node_id) {
        *err = -EINVAL;
        return NULL;
    }
    struct gb_devmirror *m = calloc(1, sizeof(*m));
    if (!m) {
        *err = -ENOMEM;
        return NULL;
    }
    snprintf(m->node_id, sizeof(m->node_id), "%s", node_id);
    snprintf(m->prefix, sizeof(m->prefix), "%s", cfg->key_prefix);
    m->max_pending = cfg->max_pending ? cfg->max_pending : 10000;
    m->keepalive_write_ms = (int64_t)(cfg->gb_keepalive_write_s ? cfg->gb_keepalive_write_s : 60) * 1000;
    struct redis_cluster_config rc = {.seeds = cfg->nodes, .timeout_ms = cfg->timeout_ms, .max_queued = m->max_pending};
    m->writer = redis_cluster_new(loop, timers, &rc, err);
    m->reader = m->writer ? redis_cluster_new(loop, timers, &rc, err) : NULL;
    if (!m->reader) {
        if (m->writer) redis_cluster_free(m->writer);
        free(m);
        return NULL;
    }
    return m;
}

void gb_devmirror_free(struct gb_devmirror *m)
{
    if (!m) return;
    redis_cluster_free(m->writer); /* the write callbacks only count */
    redis_cluster_free(m->reader); /* every lookup's callback runs (-ECANCELED) */
    free(m);
}

const char *gb_devmirror_node_id(const struct gb_devmirror *m) { return m->node_id; }

void gb_devmirror_get_stats(const struct gb_devmirror *m, struct gb_devmirror_stats *out) { *out = m->stats; }

void gb_devmirror_stats_json(const struct gb_devmirror *m, json_t *stats)
{
    const struct gb_devmirror_stats *s = &m->stats;
    json_object_set_new(
        stats, "redis_gb_devices",
        json_pack("{s:s,s:I,s:I,s:I,s:i,s:I,s:I,s:I,s:I,s:i}", "node_id", m->node_id, "writes_ok",
                  (json_int_t)s->writes_ok, "writes_failed", (json_int_t)s->writes_failed, "writes_dropped",
                  (json_int_t)s->writes_dropped, "pending", (int)s->pending, "lookups", (json_int_t)s->lookups,
                  "lookups_found", (json_int_t)s->lookups_found, "lookups_failed", (json_int_t)s->lookups_failed,
                  "lookups_refused", (json_int_t)s->lookups_refused, "lookups_pending", (int)s->lookups_pending));
}
