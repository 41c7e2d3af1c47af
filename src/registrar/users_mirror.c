/* users_mirror.c — SIP users shared through Redis Cluster (see the header). */
#include "registrar/users_mirror.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "base/log.h"
#include "base/str.h"
#include "redis/redis_cluster.h"
#include "redis/redis_objects.h"
#include "redis/redis_reply.h"
#include "redis/redis_sub.h"
#include "redis/redis_uv.h"

#define LOAD_RETRY_MS 1000
#define SCAN_COUNT "256"
#define MARKER "#" /* the hash was seeded (no user name has '#') */
#define MAX_FETCHES 256 /* HGETs of announced users unanswered; beyond: a full reload */

struct users_mirror {
    struct redis_cluster *rc;
    struct users *users;
    uv_loop_t *loop;
    struct timer_service *timers;
    char key[96];        /* <prefix>users */
    char channel[112];   /* <prefix>users-changes */
    size_t max_users;
    uint32_t max_pending, pending;
    struct redis_sub *sub;          /* the announcements' connection */
    bool closing;
    /* a full load: the hash read into fresh, the names announced meanwhile
     * in touched (their own HGET is newer than the scan) */
    bool loading, load_again, load_overflow, marker_seen;
    struct users *fresh, *touched;
    char cursor[32];
    struct timer_node load_timer;
    uint32_t fetches;
    void (*on_removed)(void *arg, const char *name);
    void *on_removed_arg;
    struct users_mirror_stats stats;
};

/* ---- records (stranger input when read) ---- */

int users_record_encode(const struct users_entry *e, char *out, size_t cap)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "realm", e->realm, "md5", e->ha1_md5, "sha256", e->ha1_sha256,
                          "created", (json_int_t)e->created_at);
    if (!o) return -ENOMEM;
    size_t n = json_dumpb(o, out, cap, JSON_COMPACT);
    json_decref(o);
    if (n == 0 || n >= cap) return -ENOSPC;
    out[n] = '\0';
    return (int)n;
}

int users_record_decode(const char *buf, size_t len, struct users_record *out)
{
    memset(out, 0, sizeof(*out));
    if (!buf || len == 0 || len > USERS_MIRROR_RECORD_MAX) return -EINVAL;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return -EINVAL;
    }
    json_t *realm = json_object_get(o, "realm"), *md5 = json_object_get(o, "md5"),
           *sha = json_object_get(o, "sha256"), *created = json_object_get(o, "created");
    int rc = -EINVAL;
    if (!json_is_string(realm) || !json_is_string(md5) || !json_is_string(sha) || !json_is_integer(created))
        goto out;
    const char *r = json_string_value(realm);
    size_t rl = json_string_length(realm);
    if (rl > USERS_MAX_REALM || strlen(r) != rl) goto out; /* no NUL inside */
    for (size_t i = 0; i < rl; i++)
        if ((unsigned char)r[i] < 0x20 || (unsigned char)r[i] == 0x7f) goto out;
    if (json_string_length(md5) > 32 || json_string_length(sha) > 64) goto out;
    if (!users_ha1_copy(json_string_value(md5), 32, out->md5) || !users_ha1_copy(json_string_value(sha), 64, out->sha256)) goto out;
    if (!out->md5[0] && !out->sha256[0]) goto out;
    if (json_integer_value(created) < 0) goto out;
    memcpy(out->realm, r, rl + 1);
    out->created_at = json_integer_value(created);
    rc = 0;
out:
    json_decref(o);
    if (rc) memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- applying what Redis holds ---- */

static bool same(const struct users_entry *e, const struct users_record *r)
{
    return !strcmp(e->realm, r->realm) && !strcmp(e->ha1_md5, r->md5) && !strcmp(e->ha1_sha256, r->sha256);
}

/* name (NUL-terminated, checked) <- record r (NULL: none). */
static enum users_apply_result apply_record(struct users *u, const char *name, const struct users_record *r,
                                            size_t max_users)
{
    const struct users_entry *e = users_find(u, str_from_cstr(name));
    enum users_apply_result res;
    users_set_quiet(u, true);
    if (!r) {
        res = e && users_del(u, name, NULL, NULL) == 0 ? USERS_APPLY_REMOVED : USERS_APPLY_UNCHANGED;
    } else if (e && same(e, r)) {
        res = USERS_APPLY_UNCHANGED;
    } else if (!e && users_count(u) >= max_users) {
        res = USERS_APPLY_REJECTED;
    } else {
        bool had = e != NULL;
        res = users_add(u, name, r->realm, r->md5, r->sha256, NULL, NULL) == 0
                  ? (had ? USERS_APPLY_CHANGED : USERS_APPLY_ADDED)
                  : USERS_APPLY_REJECTED;
    }
    users_set_quiet(u, false);
    return res;
}

/* A name from Redis: a users_name_ok name, copied with its NUL. */
static bool name_read(const char *s, size_t len, char *out)
{
    if (!s || len == 0 || len > USERS_MAX_NAME || memchr(s, '\0', len)) return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return users_name_ok(out);
}

enum users_apply_result users_mirror_apply(struct users *u, const char *name, size_t name_len,
                                           const struct redisReply *value, size_t max_users)
{
    char n[USERS_MAX_NAME + 1];
    if (!value || !name_read(name, name_len, n)) return USERS_APPLY_REJECTED;
    if (value->type == REDIS_REPLY_NIL) return apply_record(u, n, NULL, max_users);
    struct users_record r;
    if (value->type != REDIS_REPLY_STRING || users_record_decode(value->str, value->len, &r) < 0)
        return USERS_APPLY_REJECTED;
    return apply_record(u, n, &r, max_users);
}

int users_mirror_scan_read(const struct redisReply *r, char *cursor, size_t cap,
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

/* ---- this node's changes, written and announced ---- */

static void on_write(void *arg, int status, const struct redisReply *reply)
{
    struct users_mirror *m = arg;
    m->pending--;
    if (status == -ECANCELED) return; /* shutting down */
    if (status == 0 && reply && reply->type != REDIS_REPLY_ERROR) {
        m->stats.writes_ok++;
        return;
    }
    m->stats.writes_failed++;
    log_warn_rl("redis users: a user change was not written into Redis (%s): the other nodes do not see it",
                status ? strerror(-status) : reply && reply->str ? reply->str : "bad reply");
}

static void send_write(struct users_mirror *m, int key_index, int argc, const char **argv, const size_t *lens)
{
    if (m->pending >= m->max_pending ||
        redis_cluster_command(m->rc, key_index, argc, argv, lens, on_write, m) < 0) {
        m->stats.writes_failed++;
        log_warn_rl("redis users: a user change dropped (%u writes pending)", m->pending);
        return;
    }
    m->pending++;
}

/* PUBLISH routed by the hash's key: on the same connection as its write, after it. */
static void announce(struct users_mirror *m, const char *name)
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

static void write_user(struct users_mirror *m, const char *name, const struct users_entry *e)
{
    if (e) {
        char rec[USERS_MIRROR_RECORD_MAX];
        int n = users_record_encode(e, rec, sizeof(rec));
        if (n < 0) return;
        const char *argv[] = {"HSET", m->key, name, rec};
        size_t lens[] = {4, strlen(m->key), strlen(name), (size_t)n};
        send_write(m, 1, 4, argv, lens);
    } else {
        const char *argv[] = {"HDEL", m->key, name};
        size_t lens[] = {4, strlen(m->key), strlen(name)};
        send_write(m, 1, 3, argv, lens);
    }
    announce(m, name);
}

static void mark_touched(struct users_mirror *m, const char *name)
{
    if (!m->loading || !m->touched) return;
    users_add(m->touched, name, "", "00000000000000000000000000000000", NULL, NULL, NULL);
    if (users_count(m->touched) > MAX_FETCHES) m->load_overflow = true;
}

static void on_user_changed(void *arg, const char *name, const struct users_entry *e)
{
    struct users_mirror *m = arg;
    mark_touched(m, name); /* a load under way must not undo it with an older scan */
    write_user(m, name, e);
}

static void removed(struct users_mirror *m, const char *name)
{
    if (m->on_removed) m->on_removed(m->on_removed_arg, name);
}

/* ---- announcements of the other nodes' changes ---- */

struct fetch {
    struct users_mirror *m;
    char name[USERS_MAX_NAME + 1];
};

static void start_load(struct users_mirror *m);

static void on_fetch(void *arg, int status, const struct redisReply *reply)
{
    struct fetch *f = arg;
    struct users_mirror *m = f->m;
    m->fetches--;
    if (status == -ECANCELED) {
        free(f);
        return;
    }
    if (status < 0 || !reply || reply->type == REDIS_REPLY_ERROR) {
        free(f);
        log_warn_rl("redis users: cannot read an announced user (%d): reloading", status);
        start_load(m);
        return;
    }
    enum users_apply_result r = users_mirror_apply(m->users, f->name, strlen(f->name), reply, m->max_users);
    if (r == USERS_APPLY_REJECTED) {
        m->stats.rejected++;
        log_warn_rl("redis users: refused the record of \"%.64s\" (bad, or over users_max %zu)", f->name,
                    m->max_users);
    } else if (r != USERS_APPLY_UNCHANGED) {
        m->stats.applied++;
        if (r == USERS_APPLY_REMOVED) removed(m, f->name);
        log_info("redis users: user %s %s from another node", f->name,
                 r == USERS_APPLY_REMOVED ? "deleted" : r == USERS_APPLY_ADDED ? "added" : "changed");
    }
    free(f);
}

static void on_announcement(struct users_mirror *m, const char *msg, size_t len)
{
    m->stats.announcements++;
    struct fetch *f = malloc(sizeof(*f));
    if (!f) return;
    if (!name_read(msg, len, f->name)) {
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
    start_load(container_of(t, struct users_mirror, load_timer));
}

static void load_end(struct users_mirror *m)
{
    users_free(m->fresh);
    users_free(m->touched);
    m->fresh = m->touched = NULL;
    m->loading = false;
}

static void load_failed(struct users_mirror *m, const char *why)
{
    load_end(m);
    m->stats.load_failures++;
    log_warn_rl("redis users: loading the users from Redis failed (%s): again in %d ms", why, LOAD_RETRY_MS);
    timer_start(m->timers, &m->load_timer, timer_now(m->timers) + LOAD_RETRY_MS, on_load_timer);
}

struct diff_ctx {
    struct users_mirror *m;
    struct users *other;
    int added, changed, removed;
    const char **gone;
    size_t ngone, cap;
};

static int diff_fresh(void *arg, const struct users_entry *e)
{
    struct diff_ctx *d = arg;
    if (users_find(d->m->touched, str_from_cstr(e->name))) return 0;
    struct users_record r;
    snprintf(r.realm, sizeof(r.realm), "%s", e->realm);
    memcpy(r.md5, e->ha1_md5, sizeof(r.md5));
    memcpy(r.sha256, e->ha1_sha256, sizeof(r.sha256));
    r.created_at = e->created_at;
    enum users_apply_result res = apply_record(d->m->users, e->name, &r, d->m->max_users);
    if (res == USERS_APPLY_ADDED) d->added++;
    else if (res == USERS_APPLY_CHANGED) d->changed++;
    else if (res == USERS_APPLY_REJECTED) d->m->stats.rejected++;
    return 0;
}

/* live users the hash lacks (collected: no removal inside the walk) */
static int diff_live(void *arg, const struct users_entry *e)
{
    struct diff_ctx *d = arg;
    if (users_find(d->other, str_from_cstr(e->name)) || users_find(d->m->touched, str_from_cstr(e->name))) return 0;
    if (d->ngone == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        const char **g = realloc(d->gone, cap * sizeof(*g));
        if (!g) return -ENOMEM;
        d->gone = g;
        d->cap = cap;
    }
    d->gone[d->ngone++] = e->name;
    return 0;
}

static int seed_one(void *arg, const struct users_entry *e)
{
    struct users_mirror *m = arg;
    char rec[USERS_MIRROR_RECORD_MAX];
    int n = users_record_encode(e, rec, sizeof(rec));
    if (n < 0) return 0;
    const char *argv[] = {"HSETNX", m->key, e->name, rec};
    size_t lens[] = {6, strlen(m->key), strlen(e->name), (size_t)n};
    send_write(m, 1, 4, argv, lens);
    announce(m, e->name);
    return 0;
}

static void load_finish(struct users_mirror *m)
{
    if (m->load_overflow) {
        load_end(m);
        start_load(m);
        return;
    }
    struct diff_ctx d = {.m = m, .other = m->fresh};
    if (!m->marker_seen) {
        /* never seeded: this node's users go in, nobody's are dropped */
        const char *argv[] = {"HSETNX", m->key, MARKER, "1"};
        size_t lens[] = {6, strlen(m->key), 1, 1};
        users_foreach(m->fresh, diff_fresh, &d);
        users_foreach(m->users, seed_one, m);
        send_write(m, 1, 4, argv, lens);
        log_info("redis users: %s held no users yet: seeded with this node's %zu", m->key, users_count(m->users));
    } else {
        users_foreach(m->fresh, diff_fresh, &d);
        if (users_foreach(m->users, diff_live, &d) == 0) {
            /* names point into live entries: copy each before its removal */
            for (size_t i = 0; i < d.ngone; i++) {
                char name[USERS_MAX_NAME + 1];
                snprintf(name, sizeof(name), "%s", d.gone[i]);
                if (apply_record(m->users, name, NULL, m->max_users) == USERS_APPLY_REMOVED) {
                    d.removed++;
                    removed(m, name);
                }
            }
        }
    }
    free(d.gone);
    m->stats.loads++;
    m->stats.applied += (uint64_t)(d.added + d.changed + d.removed);
    log_info("redis users: loaded %zu users from %s (%d added, %d changed, %d removed here)",
             users_count(m->fresh), m->key, d.added, d.changed, d.removed);
    bool again = m->load_again;
    load_end(m);
    if (again) start_load(m);
}

static void scan_pair(void *arg, const struct redisReply *field, const struct redisReply *value)
{
    struct users_mirror *m = arg;
    if (field->len == 1 && field->str[0] == '#') {
        m->marker_seen = true;
        return;
    }
    if (users_count(m->fresh) >= m->max_users) {
        m->stats.rejected++;
        log_warn_rl("redis users: more users in Redis than users_max %zu: the rest are not loaded", m->max_users);
        return;
    }
    if (users_mirror_apply(m->fresh, field->str, field->len, value, m->max_users) == USERS_APPLY_REJECTED) {
        m->stats.rejected++;
        log_warn_rl("redis users: skipped a bad user record in %s", m->key);
    }
}

static void send_scan(struct users_mirror *m);

static void on_scan(void *arg, int status, const struct redisReply *reply)
{
    struct users_mirror *m = arg;
    m->pending--;
    if (status == -ECANCELED || !m->loading) return;
    if (status < 0 || !reply) {
        load_failed(m, strerror(-status));
        return;
    }
    if (users_mirror_scan_read(reply, m->cursor, sizeof(m->cursor), scan_pair, m) < 0) {
        load_failed(m, reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str : "a reply of another shape");
        return;
    }
    if (!strcmp(m->cursor, "0")) load_finish(m);
    else send_scan(m);
}

static void send_scan(struct users_mirror *m)
{
    const char *argv[] = {"HSCAN", m->key, m->cursor, "COUNT", SCAN_COUNT};
    size_t lens[] = {5, strlen(m->key), strlen(m->cursor), 5, strlen(SCAN_COUNT)};
    if (redis_cluster_command(m->rc, 1, 5, argv, lens, on_scan, m) < 0) {
        load_failed(m, "the client refused the command");
        return;
    }
    m->pending++;
}

static void start_load(struct users_mirror *m)
{
    if (m->closing) return;
    if (m->loading) {
        m->load_again = true;
        return;
    }
    timer_stop(m->timers, &m->load_timer);
    m->fresh = users_new(NULL);
    m->touched = users_new(NULL);
    if (!m->fresh || !m->touched) {
        load_failed(m, "out of memory");
        return;
    }
    m->loading = true;
    m->load_again = m->load_overflow = m->marker_seen = false;
    snprintf(m->cursor, sizeof(m->cursor), "0");
    send_scan(m);
}

/* ---- the announcements' connection (redis/redis_sub.h) ---- */

static void on_sub_lost(void *arg, const char *why)
{
    struct users_mirror *m = arg;
    if (m->stats.subscribed)
        log_warn_rl("redis users: the change channel is down (%s): changes made elsewhere wait for it", why);
    m->stats.subscribed = false;
}

static void on_sub_subscribed(void *arg)
{
    struct users_mirror *m = arg;
    m->stats.subscribed = true;
    log_info("redis users: changes on channel %s; loading %s", m->channel, m->key);
    start_load(m); /* what was missed while not subscribed */
}

static void on_sub_message(void *arg, const char *msg, size_t len) { on_announcement(arg, msg, len); }

/* ---- life cycle ---- */

struct users_mirror *users_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct users *u,
                                      const struct redis_config *cfg, int *err)
{
    struct users_mirror *m = calloc(1, sizeof(*m));
    if (!m) {
        *err = -ENOMEM;
        return NULL;
    }
    timer_node_init(&m->load_timer);
    m->users = u;
    m->loop = loop;
    m->timers = timers;
    m->max_users = cfg->users_max ? cfg->users_max : 100000;
    m->max_pending = cfg->max_pending ? cfg->max_pending : 10000;
    snprintf(m->key, sizeof(m->key), "%susers", cfg->key_prefix);
    snprintf(m->channel, sizeof(m->channel), "%susers-changes", cfg->key_prefix);
    struct redis_sub_cb scb = {.subscribed = on_sub_subscribed, .message = on_sub_message, .lost = on_sub_lost,
                               .arg = m};
    m->sub = redis_sub_new(loop, timers, cfg->nodes, m->channel, &scb, err);
    if (!m->sub) {
        free(m);
        return NULL;
    }
    struct redis_cluster_config rc = {.seeds = cfg->nodes, .timeout_ms = cfg->timeout_ms,
                                      .max_queued = m->max_pending + MAX_FETCHES + 16};
    m->rc = redis_cluster_new(loop, timers, &rc, err);
    if (!m->rc) {
        redis_sub_free(m->sub);
        free(m);
        return NULL;
    }
    users_set_observer(u, on_user_changed, m);
    return m;
}

void users_mirror_free(struct users_mirror *m)
{
    if (!m) return;
    m->closing = true;
    users_set_observer(m->users, NULL, NULL);
    timer_stop(m->timers, &m->load_timer);
    redis_sub_free(m->sub);
    m->sub = NULL;
    m->loading = false;
    redis_cluster_free(m->rc); /* callbacks: -ECANCELED */
    users_free(m->fresh);
    users_free(m->touched);
    free(m);
}

void users_mirror_set_on_removed(struct users_mirror *m, void (*cb)(void *arg, const char *name), void *arg)
{
    m->on_removed = cb;
    m->on_removed_arg = arg;
}

void users_mirror_get_stats(const struct users_mirror *m, struct users_mirror_stats *out)
{
    *out = m->stats;
    out->users = (uint32_t)users_count(m->users);
}
