/* hash_mirror.c — a table shared through one Redis Cluster hash (see the header). */
#include "redis/hash_mirror.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "base/htable.h"
#include "base/log.h"
#include "base/str.h"
#include "base/timer.h"
#include "redis/redis_cluster.h"
#include "redis/redis_config.h"
#include "redis/redis_sub.h"

#define LOAD_RETRY_MS 1000
#define SCAN_COUNT "256"
#define MARKER "#"        /* the hash was seeded (no owner's name has '#') */
#define MAX_FETCHES 256   /* HGETs of announced names unanswered; beyond: a full reload */
#define SEED_BATCH_ENTRIES 2048         /* entries in one seeding EVAL at most */
#define SEED_BATCH_BYTES (256 * 1024)   /* and about this many bytes (the client's cap: 1 MiB) */
/* A seeding batch: each field written unless there (another node seeding
 * at the same moment keeps what it wrote first). KEYS[1] the hash; ARGV[1]
 * a JSON array [field, record, field, record ...]. */
#define SEED_LUA                                                                                                   \
    "local t = cjson.decode(ARGV[1]) "                                                                             \
    "for i = 1, #t, 2 do redis.call('HSETNX', KEYS[1], t[i], t[i + 1]) end return #t / 2"

/* A stamped table's write (hash_mirror_config.stamped): the record is taken
 * unless the one held starts with a larger decimal stamp, so that Redis's
 * value never goes back in time. KEYS[1] the hash; ARGV[1] the field,
 * ARGV[2] the record. */
#define STAMPED_LUA                                                                                                \
    "local old = redis.call('HGET', KEYS[1], ARGV[1]) "                                                          \
    "if old then local o = tonumber(string.match(old, '^%d+')) local n = tonumber(string.match(ARGV[2], '^%d+')) " \
    "if o and n and n < o then return 0 end end "                                                                 \
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1"

/* A name (and, in a load's fresh set, its record) in a load's sets. */
struct hm_entry {
    struct hnode node;
    char *value; /* NULL in the touched set */
    size_t vlen;
    char name[]; /* NUL-terminated */
};

struct hash_mirror {
    struct redis_cluster *rc;
    struct hash_mirror_ops ops;
    struct timer_service *timers;
    char *key, *channel;
    size_t max_entries, record_max;
    uint32_t max_pending, pending;
    struct redis_sub *sub;
    bool closing, stamped;
    /* a full load: the hash read into fresh, the names announced meanwhile
     * in touched (their own HGET is newer than the scan) */
    bool loading, load_again, load_overflow, marker_seen;
    struct htable fresh, touched;
    char cursor[32];
    struct timer_node load_timer;
    uint32_t fetches;
    struct hash_mirror_stats stats;
};

/* ---- a load's sets ---- */

static struct hm_entry *set_find(const struct htable *t, const char *name)
{
    str_t s = str_from_cstr(name);
    for (struct hnode *n = htable_first(t, str_hash(s)); n; n = htable_next(n)) {
        struct hm_entry *e = container_of(n, struct hm_entry, node);
        if (!strcmp(e->name, name)) return e;
    }
    return NULL;
}

/* Adds name (and a copy of value, when not NULL) unless it is there. */
static int set_add(struct htable *t, const char *name, const char *value, size_t vlen)
{
    if (set_find(t, name)) return 0;
    size_t nl = strlen(name);
    struct hm_entry *e = calloc(1, sizeof(*e) + nl + 1);
    if (!e) return -ENOMEM;
    memcpy(e->name, name, nl + 1);
    if (value) {
        if (!(e->value = malloc(vlen + 1))) {
            free(e);
            return -ENOMEM;
        }
        memcpy(e->value, value, vlen);
        e->value[vlen] = '\0';
        e->vlen = vlen;
    }
    if (htable_insert(t, &e->node, str_hash(str_make(e->name, nl))) != 0) {
        free(e->value);
        free(e);
        return -ENOMEM;
    }
    return 0;
}

static int set_free_one(struct hnode *n, void *arg)
{
    struct htable *t = arg;
    struct hm_entry *e = container_of(n, struct hm_entry, node);
    htable_remove(t, n);
    free(e->value);
    free(e);
    return 0;
}

static void set_clear(struct htable *t)
{
    htable_foreach(t, set_free_one, t);
    htable_free(t);
    htable_init(t);
}

/* ---- replies (stranger input) ---- */

int hash_mirror_scan_read(const struct redisReply *r, char *cursor, size_t cap,
                          void (*cb)(void *arg, const struct redisReply *field, const struct redisReply *value),
                          void *arg)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element) return -EINVAL;
    const redisReply *cur = r->element[0], *pairs = r->element[1];
    if (!cur || !pairs || cur->type != REDIS_REPLY_STRING || cur->len == 0 || cur->len >= cap ||
        strspn(cur->str, "0123456789") != cur->len || pairs->type != REDIS_REPLY_ARRAY || pairs->elements % 2 ||
        (pairs->elements && !pairs->element))
        return -EINVAL;
    for (size_t i = 0; i < pairs->elements; i++)
        if (!pairs->element[i] || pairs->element[i]->type != REDIS_REPLY_STRING) return -EINVAL;
    memcpy(cursor, cur->str, cur->len);
    cursor[cur->len] = '\0';
    for (size_t i = 0; i < pairs->elements; i += 2) cb(arg, pairs->element[i], pairs->element[i + 1]);
    return 0;
}

/* A name from Redis, copied with its NUL into out (HASH_MIRROR_NAME_MAX + 1). */
static bool name_read(const struct hash_mirror *m, const char *s, size_t len, char *out)
{
    if (!s || len == 0 || len > HASH_MIRROR_NAME_MAX || memchr(s, '\0', len) || !m->ops.name_ok(s, len)) return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

static void count_result(struct hash_mirror *m, enum hash_mirror_result r)
{
    if (r == HASH_MIRROR_REJECTED) m->stats.rejected++;
    else if (r != HASH_MIRROR_UNCHANGED) m->stats.applied++;
}

/* ---- this node's changes, written and announced ---- */

static void on_write(void *arg, int status, const struct redisReply *reply)
{
    struct hash_mirror *m = arg;
    m->pending--;
    if (status == -ECANCELED) return; /* shutting down */
    if (status == 0 && reply && reply->type != REDIS_REPLY_ERROR) {
        m->stats.writes_ok++;
        return;
    }
    m->stats.writes_failed++;
    log_warn_rl("redis %s: a change was not written into Redis (%s): the other nodes do not see it", m->ops.what,
                status ? strerror(-status) : reply && reply->str ? reply->str : "bad reply");
}

static void send_write_at(struct hash_mirror *m, int key_index, int argc, const char **argv, const size_t *lens)
{
    if (m->pending >= m->max_pending ||
        redis_cluster_command(m->rc, key_index, argc, argv, lens, on_write, m) < 0) {
        m->stats.writes_failed++;
        log_warn_rl("redis %s: a change dropped (%u writes pending)", m->ops.what, m->pending);
        return;
    }
    m->pending++;
}

static void send_write(struct hash_mirror *m, int argc, const char **argv, const size_t *lens)
{
    send_write_at(m, 1, argc, argv, lens);
}

/* PUBLISH routed by the hash's key: on the same connection as its write, after it. */
static void announce(struct hash_mirror *m, const char *name)
{
    const char *argv[] = {"PUBLISH", m->channel, name};
    size_t lens[] = {7, strlen(m->channel), strlen(name)};
    if (m->pending >= m->max_pending ||
        redis_cluster_command_routed(m->rc, m->key, strlen(m->key), 3, argv, lens, on_write, m) < 0) {
        m->stats.writes_failed++;
        return;
    }
    m->pending++;
}

static void mark_touched(struct hash_mirror *m, const char *name)
{
    if (!m->loading) return;
    if (set_add(&m->touched, name, NULL, 0) < 0 || htable_count(&m->touched) > MAX_FETCHES) m->load_overflow = true;
}

void hash_mirror_changed(struct hash_mirror *m, const char *name, const char *rec, size_t len)
{
    if (!m || m->closing) return;
    mark_touched(m, name); /* a load under way must not undo it with an older scan */
    if (rec && m->stamped) {
        const char *argv[] = {"EVAL", STAMPED_LUA, "1", m->key, name, rec};
        size_t lens[] = {4, strlen(STAMPED_LUA), 1, strlen(m->key), strlen(name), len};
        send_write_at(m, 3, 6, argv, lens);
    } else if (rec) {
        const char *argv[] = {"HSET", m->key, name, rec};
        size_t lens[] = {4, strlen(m->key), strlen(name), len};
        send_write(m, 4, argv, lens);
    } else {
        const char *argv[] = {"HDEL", m->key, name};
        size_t lens[] = {4, strlen(m->key), strlen(name)};
        send_write(m, 3, argv, lens);
    }
    announce(m, name);
}

/* ---- announcements of the other nodes' changes ---- */

struct fetch {
    struct hash_mirror *m;
    char name[HASH_MIRROR_NAME_MAX + 1];
};

static void start_load(struct hash_mirror *m);

static enum hash_mirror_result apply_reply(struct hash_mirror *m, const char *name, const redisReply *v)
{
    if (!v) return HASH_MIRROR_REJECTED;
    if (v->type == REDIS_REPLY_NIL) return m->ops.apply(m->ops.arg, name, NULL, 0);
    if (v->type != REDIS_REPLY_STRING || !v->str || v->len == 0 || v->len > m->record_max) return HASH_MIRROR_REJECTED;
    return m->ops.apply(m->ops.arg, name, v->str, v->len);
}

static void on_fetch(void *arg, int status, const struct redisReply *reply)
{
    struct fetch *f = arg;
    struct hash_mirror *m = f->m;
    m->fetches--;
    if (status == -ECANCELED) {
        free(f);
        return;
    }
    if (status < 0 || !reply || reply->type == REDIS_REPLY_ERROR) {
        free(f);
        log_warn_rl("redis %s: cannot read an announced entry (%d): reloading", m->ops.what, status);
        start_load(m);
        return;
    }
    enum hash_mirror_result r = apply_reply(m, f->name, reply);
    count_result(m, r);
    if (r == HASH_MIRROR_REJECTED)
        log_warn_rl("redis %s: refused the record of \"%.64s\" (bad, or over a cap)", m->ops.what, f->name);
    else if (r != HASH_MIRROR_UNCHANGED)
        log_info("redis %s: %s %s from another node", m->ops.what, f->name,
                 r == HASH_MIRROR_REMOVED ? "deleted" : r == HASH_MIRROR_ADDED ? "added" : "changed");
    free(f);
}

static void on_announcement(struct hash_mirror *m, const char *msg, size_t len)
{
    m->stats.announcements++;
    if (len == 1 && msg[0] == '#') { /* a node seeded the hash: read it all */
        start_load(m);
        return;
    }
    struct fetch *f = malloc(sizeof(*f));
    if (!f) return;
    if (!name_read(m, msg, len, f->name)) {
        free(f);
        m->stats.rejected++;
        return;
    }
    mark_touched(m, f->name);
    const char *argv[] = {"HGET", m->key, f->name};
    size_t lens[] = {4, strlen(m->key), strlen(f->name)};
    f->m = m;
    if (m->fetches >= MAX_FETCHES || redis_cluster_command(m->rc, 1, 3, argv, lens, on_fetch, f) < 0) {
        free(f);
        start_load(m); /* too many at once: read them all instead */
        return;
    }
    m->fetches++;
}

/* ---- full load ---- */

static void on_load_timer(struct timer_node *t, uint64_t now_ms)
{
    (void)now_ms;
    start_load(container_of(t, struct hash_mirror, load_timer));
}

static void load_end(struct hash_mirror *m)
{
    set_clear(&m->fresh);
    set_clear(&m->touched);
    m->loading = false;
}

static void load_failed(struct hash_mirror *m, const char *why)
{
    load_end(m);
    m->stats.load_failures++;
    log_warn_rl("redis %s: loading %s failed (%s): again in %d ms", m->ops.what, m->key, why, LOAD_RETRY_MS);
    timer_start(m->timers, &m->load_timer, timer_now(m->timers) + LOAD_RETRY_MS, on_load_timer);
}

struct diff_ctx {
    struct hash_mirror *m;
    int added, changed, removed;
    char **gone;
    size_t ngone, cap;
    int err;
};

static int diff_fresh(struct hnode *n, void *arg)
{
    struct diff_ctx *d = arg;
    struct hm_entry *e = container_of(n, struct hm_entry, node);
    if (set_find(&d->m->touched, e->name)) return 0;
    enum hash_mirror_result r = d->m->ops.apply(d->m->ops.arg, e->name, e->value, e->vlen);
    if (r == HASH_MIRROR_ADDED) d->added++;
    else if (r == HASH_MIRROR_CHANGED) d->changed++;
    else if (r == HASH_MIRROR_REJECTED) d->m->stats.rejected++;
    return 0;
}

/* local entries the hash lacks (copied: no removal inside the owner's walk) */
static int diff_live(void *arg, const char *name)
{
    struct diff_ctx *d = arg;
    struct hash_mirror *m = d->m;
    if (set_find(&m->fresh, name) || set_find(&m->touched, name)) return 0;
    if (m->ops.may_drop && !m->ops.may_drop(m->ops.arg, name)) return 0;
    if (d->ngone == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        char **g = realloc(d->gone, cap * sizeof(*g));
        if (!g) return d->err = -ENOMEM;
        d->gone = g;
        d->cap = cap;
    }
    if (!(d->gone[d->ngone] = strdup(name))) return d->err = -ENOMEM;
    d->ngone++;
    return 0;
}

/* Seeding: this node's entries written in batches (one EVAL of at most
 * SEED_BATCH_BYTES or SEED_BATCH_ENTRIES: a large table does not take one
 * pending write per entry), then the marker, then one announcement "#"
 * that makes every node reload. */
struct seed_ctx {
    struct hash_mirror *m;
    json_t *batch; /* [name, record, name, record ...] */
    size_t bytes, n, seeded, skipped;
    char *rec;
};

static void seed_flush(struct seed_ctx *c)
{
    if (!c->batch || !c->n) return;
    char *text = json_dumps(c->batch, JSON_COMPACT);
    if (text) {
        const char *argv[] = {"EVAL", SEED_LUA, "1", c->m->key, text};
        size_t lens[] = {4, strlen(SEED_LUA), 1, strlen(c->m->key), strlen(text)};
        send_write_at(c->m, 3, 5, argv, lens);
        c->seeded += c->n;
    } else {
        c->skipped += c->n;
    }
    free(text);
    json_array_clear(c->batch);
    c->n = c->bytes = 0;
}

static int seed_one(void *arg, const char *name)
{
    struct seed_ctx *c = arg;
    struct hash_mirror *m = c->m;
    int n = m->ops.encode(m->ops.arg, name, c->rec, m->record_max + 1);
    if (n < 0) return 0;
    /* JSON strings: a name or record that is not UTF-8 is skipped (the
     * owners' encoders only write UTF-8) */
    json_t *jn = json_string(name), *jr = json_stringn(c->rec, (size_t)n);
    if (!jn || !jr || json_array_append_new(c->batch, jn) != 0) {
        json_decref(jn);
        json_decref(jr);
        c->skipped++;
        return 0;
    }
    if (json_array_append_new(c->batch, jr) != 0) {
        json_array_remove(c->batch, json_array_size(c->batch) - 1);
        c->skipped++;
        return 0;
    }
    c->n++;
    c->bytes += strlen(name) + (size_t)n * 2 + 8; /* escaping may double a record */
    if (c->n >= SEED_BATCH_ENTRIES || c->bytes >= SEED_BATCH_BYTES) seed_flush(c);
    return 0;
}

static void seed(struct hash_mirror *m)
{
    struct seed_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        log_warn("redis %s: no memory to seed %s", m->ops.what, m->key);
        return;
    }
    c->m = m;
    c->batch = json_array();
    c->rec = malloc(m->record_max + 1);
    if (c->batch && c->rec) {
        m->ops.foreach(m->ops.arg, seed_one, c);
        seed_flush(c);
    } else {
        log_warn("redis %s: no memory to seed %s with this node's entries", m->ops.what, m->key);
    }
    json_decref(c->batch);
    free(c->rec);
    if (c->skipped) {
        m->stats.writes_failed += c->skipped;
        log_warn("redis %s: %zu entries could not be seeded (not UTF-8, or no memory)", m->ops.what, c->skipped);
    }
    const char *argv[] = {"HSETNX", m->key, MARKER, "1"};
    size_t lens[] = {6, strlen(m->key), 1, 1};
    send_write(m, 4, argv, lens);
    announce(m, MARKER);
    log_info("redis %s: %s was not seeded yet: seeded with this node's %zu entries", m->ops.what, m->key, c->seeded);
    free(c);
}

static void load_finish(struct hash_mirror *m)
{
    if (m->load_overflow) {
        load_end(m);
        start_load(m);
        return;
    }
    struct diff_ctx d = {.m = m};
    size_t read = htable_count(&m->fresh);
    htable_foreach(&m->fresh, diff_fresh, &d);
    if (!m->marker_seen) {
        seed(m); /* never seeded: this node's entries go in, nobody's are dropped */
    } else if (m->ops.foreach(m->ops.arg, diff_live, &d) == 0 && !d.err) {
        for (size_t i = 0; i < d.ngone; i++)
            if (m->ops.apply(m->ops.arg, d.gone[i], NULL, 0) == HASH_MIRROR_REMOVED) d.removed++;
    }
    for (size_t i = 0; i < d.ngone; i++) free(d.gone[i]);
    free(d.gone);
    m->stats.loads++;
    m->stats.applied += (uint64_t)(d.added + d.changed + d.removed);
    log_info("redis %s: loaded %zu entries from %s (%d added, %d changed, %d removed here)", m->ops.what, read,
             m->key, d.added, d.changed, d.removed);
    bool again = m->load_again;
    load_end(m);
    if (again) start_load(m);
}

static void scan_pair(void *arg, const struct redisReply *field, const struct redisReply *value)
{
    struct hash_mirror *m = arg;
    if (field->len == 1 && field->str[0] == '#') {
        m->marker_seen = true;
        return;
    }
    char name[HASH_MIRROR_NAME_MAX + 1];
    if (!name_read(m, field->str, field->len, name) || !value->str || value->len == 0 || value->len > m->record_max) {
        m->stats.rejected++;
        log_warn_rl("redis %s: skipped a bad field or record in %s", m->ops.what, m->key);
        return;
    }
    if (htable_count(&m->fresh) >= m->max_entries) {
        m->stats.rejected++;
        log_warn_rl("redis %s: more entries in %s than %zu: the rest are not loaded", m->ops.what, m->key,
                    m->max_entries);
        return;
    }
    if (set_add(&m->fresh, name, value->str, value->len) < 0) m->load_overflow = true; /* no memory: again */
}

static void send_scan(struct hash_mirror *m);

static void on_scan(void *arg, int status, const struct redisReply *reply)
{
    struct hash_mirror *m = arg;
    m->pending--;
    if (status == -ECANCELED || !m->loading) return;
    if (status < 0 || !reply) {
        load_failed(m, strerror(-status));
        return;
    }
    if (hash_mirror_scan_read(reply, m->cursor, sizeof(m->cursor), scan_pair, m) < 0) {
        load_failed(m, reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str : "a reply of another shape");
        return;
    }
    if (!strcmp(m->cursor, "0")) load_finish(m);
    else send_scan(m);
}

static void send_scan(struct hash_mirror *m)
{
    const char *argv[] = {"HSCAN", m->key, m->cursor, "COUNT", SCAN_COUNT};
    size_t lens[] = {5, strlen(m->key), strlen(m->cursor), 5, strlen(SCAN_COUNT)};
    if (redis_cluster_command(m->rc, 1, 5, argv, lens, on_scan, m) < 0) {
        load_failed(m, "the client refused the command");
        return;
    }
    m->pending++;
}

static void start_load(struct hash_mirror *m)
{
    if (m->closing) return;
    if (m->loading) {
        m->load_again = true;
        return;
    }
    timer_stop(m->timers, &m->load_timer);
    m->loading = true;
    m->load_again = m->load_overflow = m->marker_seen = false;
    snprintf(m->cursor, sizeof(m->cursor), "0");
    send_scan(m);
}

/* ---- the announcements' connection (redis/redis_sub.h) ---- */

static void on_sub_lost(void *arg, const char *why)
{
    struct hash_mirror *m = arg;
    if (m->stats.subscribed)
        log_warn_rl("redis %s: the change channel is down (%s): changes made elsewhere wait for it", m->ops.what, why);
    m->stats.subscribed = false;
}

static void on_sub_subscribed(void *arg)
{
    struct hash_mirror *m = arg;
    m->stats.subscribed = true;
    log_info("redis %s: changes on channel %s; loading %s", m->ops.what, m->channel, m->key);
    start_load(m); /* what was missed while not subscribed */
}

static void on_sub_message(void *arg, const char *msg, size_t len) { on_announcement(arg, msg, len); }

/* ---- life cycle ---- */

struct hash_mirror_config hash_mirror_config_for(const struct redis_config *cfg, const char *table,
                                                 struct hash_mirror_names *names)
{
    snprintf(names->key, sizeof(names->key), "%s%s", cfg->key_prefix, table);
    snprintf(names->channel, sizeof(names->channel), "%s%s-changes", cfg->key_prefix, table);
    return (struct hash_mirror_config){.key = names->key, .channel = names->channel, .seeds = cfg->nodes,
                                       .timeout_ms = cfg->timeout_ms, .max_pending = cfg->max_pending};
}

struct hash_mirror *hash_mirror_new(uv_loop_t *loop, struct timer_service *timers, const struct hash_mirror_config *cfg,
                                    const struct hash_mirror_ops *ops, int *err)
{
    if (!cfg->key || !*cfg->key || !cfg->channel || !*cfg->channel || !ops->name_ok || !ops->apply || !ops->foreach ||
        !ops->encode) {
        *err = -EINVAL;
        return NULL;
    }
    struct hash_mirror *m = calloc(1, sizeof(*m));
    if (!m || !(m->key = strdup(cfg->key)) || !(m->channel = strdup(cfg->channel))) {
        if (m) free(m->key);
        free(m);
        *err = -ENOMEM;
        return NULL;
    }
    timer_node_init(&m->load_timer);
    htable_init(&m->fresh);
    htable_init(&m->touched);
    m->ops = *ops;
    if (!m->ops.what) m->ops.what = "mirror";
    m->timers = timers;
    m->max_entries = cfg->max_entries ? cfg->max_entries : 100000;
    m->record_max = cfg->record_max ? cfg->record_max : 1024;
    m->stamped = cfg->stamped;
    m->max_pending = cfg->max_pending ? cfg->max_pending : 10000;
    struct redis_sub_cb scb = {.subscribed = on_sub_subscribed, .message = on_sub_message, .lost = on_sub_lost,
                               .arg = m};
    m->sub = redis_sub_new(loop, timers, cfg->seeds, m->channel, &scb, err);
    struct redis_cluster_config rc = {.seeds = cfg->seeds, .timeout_ms = cfg->timeout_ms,
                                      .max_queued = m->max_pending + MAX_FETCHES + 16};
    if (!m->sub || !(m->rc = redis_cluster_new(loop, timers, &rc, err))) {
        redis_sub_free(m->sub);
        free(m->key);
        free(m->channel);
        free(m);
        return NULL;
    }
    return m;
}

void hash_mirror_free(struct hash_mirror *m)
{
    if (!m) return;
    m->closing = true;
    timer_stop(m->timers, &m->load_timer);
    redis_sub_free(m->sub);
    m->sub = NULL;
    m->loading = false;
    redis_cluster_free(m->rc); /* callbacks: -ECANCELED */
    set_clear(&m->fresh);
    set_clear(&m->touched);
    free(m->key);
    free(m->channel);
    free(m);
}

void hash_mirror_get_stats(const struct hash_mirror *m, struct hash_mirror_stats *out) { *out = m->stats; }
