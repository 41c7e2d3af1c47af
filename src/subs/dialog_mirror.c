/* dialog_mirror.c — the dialog package across nodes (dialog_mirror.h). */
#include "subs/dialog_mirror.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/clock.h"
#include "base/htable.h"
#include "base/log.h"
#include "base/str.h"
#include "redis/redis_cluster.h"
#include "redis/redis_sub.h"
#include "registrar/cluster.h"
#include "registrar/location.h"
#include "subs/dialog_nodes.h"
#include "subs/follow.h"
#include "subs/subs.h"

#define LEASE_SLACK_MS 250u

/* HSET the record; the key lives at least as long as it; expired fields
 * dropped when the hash grows; PUBLISH when ARGV[5] (the channel) is set.
 * KEYS[1] hash, ARGV: field, record, exp (wall ms), now, channel. */
static const char WRITE_LUA[] =
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) "
    "local now = tonumber(ARGV[4]) "
    "local want = tonumber(ARGV[3]) - now "
    "if want < 1000 then want = 1000 end "
    "if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], want) end "
    "if redis.call('HLEN', KEYS[1]) > 64 then "
    "  local all = redis.call('HGETALL', KEYS[1]) "
    "  for i = 1, #all, 2 do "
    "    local ok, r = pcall(cjson.decode, all[i + 1]) "
    "    if not ok or type(r) ~= 'table' or type(r.exp) ~= 'number' or r.exp <= now then "
    "      redis.call('HDEL', KEYS[1], all[i]) end "
    "  end "
    "end "
    "if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], KEYS[1]) end "
    "return 1";

struct watched {
    struct hnode node;
    uint64_t until_ms;                 /* monotonic */
    char aor[];
};

struct dialog_mirror {
    uv_loop_t *loop;
    struct timer_service *timers;
    struct subs *subs;
    struct cluster *cluster;
    struct redis_cluster *rc;          /* NULL with a test's io */
    struct redis_sub *sub;
    struct dialog_mirror_io io;
    char self[DIALOG_NODES_NODE_MAX];
    char prefix[64];
    char channel[96];
    struct follower fl;                /* at most DIALOG_MIRROR_INFLIGHT_MAX reads in flight */
    struct htable watched;
    struct timer_node tick;
    uint32_t writes_pending;
    struct dialog_mirror_stats stats;  /* followed, remote, coalesced, queued: kept by fl */
};

/* ---- small tables ---- */

static struct watched *watched_find(const struct dialog_mirror *m, const char *aor)
{
    for (struct hnode *h = htable_first(&m->watched, str_hash(str_from_cstr(aor))); h; h = htable_next(h)) {
        struct watched *w = container_of(h, struct watched, node);
        if (strcmp(w->aor, aor) == 0) return w;
    }
    return NULL;
}

static bool node_alive(void *arg, const char *node)
{
    struct dialog_mirror *m = arg;
    return !m->io.alive || m->io.alive(m->io.arg, node);
}

static int64_t wall_now(const struct dialog_mirror *m) { return m->io.wall_ms(m->io.arg); }

/* ---- the cluster's io ---- */

static int io_command(void *arg, const char *key, int argc, const char **argv, const size_t *lens, dialog_mirror_cb cb,
                      void *cb_arg)
{
    struct dialog_mirror *m = arg;
    return redis_cluster_command_routed(m->rc, key, strlen(key), argc, argv, lens, cb, cb_arg);
}

static bool io_alive(void *arg, const char *node)
{
    struct dialog_mirror *m = arg;
    if (!m->cluster) return true;
    struct cluster_hit hit;
    return cluster_node_hit(m->cluster, node, &hit) == 0;
}

static int64_t io_wall(void *arg)
{
    (void)arg;
    return clock_wall_ms();
}

/* ---- writes ---- */

static void on_write(void *arg, int status, const struct redisReply *reply)
{
    struct dialog_mirror *m = arg;
    if (m->writes_pending) m->writes_pending--;
    if (status == -ECANCELED) return;
    if (status < 0 || !reply || reply->type == REDIS_REPLY_ERROR) {
        m->stats.write_failures++;
        log_warn_rl("redis dialog: a write failed (%s)", status < 0 ? strerror(-status)
                                                          : reply && reply->str ? reply->str
                                                                                : "no reply");
    }
}

static void send_routed(struct dialog_mirror *m, const char *key, int argc, const char **argv, const size_t *lens)
{
    int rc = m->writes_pending >= DIALOG_MIRROR_WRITES_MAX
                 ? -EAGAIN
                 : m->io.command(m->io.arg, key, argc, argv, lens, on_write, m);
    if (rc < 0) {
        m->stats.write_failures++;
        log_warn_rl("redis dialog: a write dropped (%s, %u pending)", strerror(-rc), m->writes_pending);
        return;
    }
    m->writes_pending++;
}

static void write_entry(struct dialog_mirror *m, const char *aor, const struct dialog_info_entry *e, bool announce)
{
    char field[DIALOG_NODES_FIELD_MAX], rec[DIALOG_NODES_RECORD_MAX + 1], key[LOCATION_MAX_AOR + 80], exp[24],
        now[24];
    int64_t wall = wall_now(m);
    int64_t until = wall + (e->state == DIALOG_TERMINATED ? DIALOG_MIRROR_ENDED_MS : DIALOG_MIRROR_LEASE_MS);
    int n = dialog_nodes_encode(m->self, e, until, field, sizeof(field), rec, sizeof(rec));
    if (n < 0) {
        m->stats.write_failures++;
        log_warn_rl("redis dialog: call %.64s of %s cannot be shared (%s)", e->call_id, aor, strerror(-n));
        return;
    }
    snprintf(key, sizeof(key), "%sdlg:{%s}", m->prefix, aor);
    snprintf(exp, sizeof(exp), "%lld", (long long)until);
    snprintf(now, sizeof(now), "%lld", (long long)wall);
    const char *argv[] = {"EVAL", WRITE_LUA, "1", key, field, rec, exp, now, announce ? m->channel : ""};
    size_t lens[9];
    for (size_t i = 0; i < 9; i++) lens[i] = i == 5 ? (size_t)n : strlen(argv[i]);
    m->stats.writes++;
    send_routed(m, key, 9, argv, lens);
}

static void announce(void *arg, const char *aor)
{
    struct dialog_mirror *m = arg;
    char msg[LOCATION_MAX_AOR + DIALOG_NODES_NODE_MAX + 80], key[LOCATION_MAX_AOR + 80];
    snprintf(key, sizeof(key), "%sdlg:{%s}", m->prefix, aor);
    int l = snprintf(msg, sizeof(msg), "%sdlgw:{%s} %s", m->prefix, aor, m->self);
    if (l < 0 || (size_t)l >= sizeof(msg)) return;
    const char *argv[] = {"PUBLISH", m->channel, msg};
    size_t lens[] = {7, strlen(m->channel), (size_t)l};
    m->stats.announcements++;
    send_routed(m, key, 3, argv, lens);
}

/* ---- subs hooks: the call path ---- */

static bool hook_shared(void *arg, const char *aor)
{
    struct dialog_mirror *m = arg;
    const struct watched *w = watched_find(m, aor);
    return w && w->until_ms > timer_now(m->timers);
}

static void hook_changed(void *arg, const struct dialog_info_entry *e)
{
    struct dialog_mirror *m = arg;
    const char *aor = dialog_table_aor(e);
    if (hook_shared(m, aor)) write_entry(m, aor, e, true);
}

static size_t hook_remote(void *arg, const char *aor, const struct dialog_remote **out)
{
    const struct dialog_mirror *m = arg;
    const void *have;
    size_t n = follower_have(&m->fl, aor, &have);
    *out = have;
    return n;
}

/* ---- the follower (subs/follow.h): what it reads and tells ---- */

static void on_read(void *arg, int status, const struct redisReply *reply) { follower_answer(arg, status, reply); }

static int op_read(void *arg, const char *aor, struct follow_read *rd)
{
    struct dialog_mirror *m = arg;
    char key[LOCATION_MAX_AOR + 80];
    snprintf(key, sizeof(key), "%sdlg:{%s}", m->prefix, aor);
    const char *argv[] = {"HGETALL", key};
    size_t lens[] = {7, strlen(key)};
    return m->io.command(m->io.arg, key, 2, argv, lens, on_read, rd);
}

static int op_parse(void *arg, const char *aor, int status, const struct redisReply *reply, void *out, size_t cap)
{
    struct dialog_mirror *m = arg;
    struct follow_read_stats st;
    int n = status < 0 || !reply || reply->type == REDIS_REPLY_ERROR
                ? -1
                : dialog_nodes_parse(reply, m->self, wall_now(m), node_alive, m, out, cap, &st);
    if (n < 0) {
        m->stats.read_failures++;
        log_warn_rl("redis dialog: reading %s's calls failed (%s): the watchers keep what they saw", aor,
                    status < 0 ? strerror(-status) : "an answer that does not read");
        return -1;
    }
    m->stats.reads++;
    m->stats.rejected += st.rejected;
    m->stats.over_cap += st.over_cap;
    if (st.rejected || st.over_cap)
        log_warn_rl("redis dialog: %s's calls: %u record(s) unreadable, %u over the caps, skipped", aor, st.rejected,
                    st.over_cap);
    return n;
}

static void op_refused(void *arg, const char *aor, int rc)
{
    struct dialog_mirror *m = arg;
    m->stats.read_failures++;
    log_warn_rl("redis dialog: %s's calls not read (%s): retried", aor, strerror(-rc));
}

static void op_replaced(void *arg, const char *aor, const void *old, size_t n_old, const void *cur, size_t n,
                        bool first)
{
    struct dialog_mirror *m = arg;
    static struct dialog_info_entry ch[2 * DIALOG_NODES_MAX]; /* ~70 KiB; loop thread only, not re-entered */
    size_t nch = dialog_nodes_diff(old, n_old, cur, n, ch, 2 * DIALOG_NODES_MAX);
    m->stats.changes += nch;
    /* the first view always: the first watchers (and fetches) wait for it */
    if (nch || first) subs_dialog_remote_changed(m->subs, aor, ch, nch);
}

static int64_t op_wall(void *arg) { return wall_now(arg); }

static void hook_watch(void *arg, const char *aor, bool on)
{
    struct dialog_mirror *m = arg;
    follower_watch(&m->fl, aor, on);
}

static bool hook_pending(void *arg, const char *aor)
{
    const struct dialog_mirror *m = arg;
    return follower_pending(&m->fl, aor);
}

/* ---- the channel ---- */

static void heard_watched(struct dialog_mirror *m, const char *aor)
{
    uint64_t until = timer_now(m->timers) + 3ull * DIALOG_MIRROR_ANNOUNCE_MS;
    struct watched *w = watched_find(m, aor);
    if (w) {
        w->until_ms = until;
        return;
    }
    if (htable_count(&m->watched) >= DIALOG_MIRROR_WATCHED_MAX) {
        m->stats.over_cap++;
        log_warn_rl("redis dialog: %u AoRs watched elsewhere known already: calls of %s not shared",
                    DIALOG_MIRROR_WATCHED_MAX, aor);
        return;
    }
    size_t len = strlen(aor);
    if (!(w = calloc(1, sizeof(*w) + len + 1))) return;
    w->until_ms = until;
    memcpy(w->aor, aor, len + 1);
    if (htable_insert(&m->watched, &w->node, str_hash(str_from_cstr(aor))) < 0) {
        free(w);
        return;
    }
    m->stats.watched_elsewhere++;
}

static void on_message(void *arg, const char *msg, size_t len)
{
    struct dialog_mirror *m = arg;
    char aor[LOCATION_MAX_AOR], node[DIALOG_NODES_NODE_MAX];
    m->stats.messages++;
    int kind = dialog_nodes_message(m->prefix, msg, len, aor, sizeof(aor), node, sizeof(node));
    if (kind < 0) {
        m->stats.bad_messages++;
        return;
    }
    if (kind == DIALOG_NODES_MSG_SYNC) {
        follower_foreach(&m->fl, announce, m);
    } else if (kind == DIALOG_NODES_MSG_WATCHED) {
        if (strcmp(node, m->self) != 0) heard_watched(m, aor);
    } else {
        follower_changed(&m->fl, aor);
    }
}

static void on_subscribed(void *arg)
{
    struct dialog_mirror *m = arg;
    m->stats.subscribed = true;
    char msg[96];
    int l = snprintf(msg, sizeof(msg), "%sdlgw-sync", m->prefix);
    const char *argv[] = {"PUBLISH", m->channel, msg};
    size_t lens[] = {7, strlen(m->channel), (size_t)l};
    send_routed(m, m->channel, 3, argv, lens); /* the others announce again */
    follower_foreach(&m->fl, announce, m);
    follower_changed(&m->fl, NULL); /* what was missed meanwhile */
}

void dialog_mirror_message(struct dialog_mirror *m, const char *msg, size_t len) { on_message(m, msg, len); }

void dialog_mirror_subscribed(struct dialog_mirror *m) { on_subscribed(m); }

static void on_lost(void *arg, const char *why)
{
    struct dialog_mirror *m = arg;
    if (m->stats.subscribed) log_warn_rl("redis dialog: the channel is down (%s)", why);
    m->stats.subscribed = false;
}

/* ---- the tick: announcements, lease renewals, forgetting ---- */

static int renew_one(void *arg, const struct dialog_info_entry *e)
{
    struct dialog_mirror *m = arg;
    const char *aor = dialog_table_aor(e);
    if (e->state != DIALOG_TERMINATED && hook_shared(m, aor)) write_entry(m, aor, e, false);
    return 0;
}

static int forget_one(struct hnode *n, void *arg)
{
    struct dialog_mirror *m = arg;
    struct watched *w = container_of(n, struct watched, node);
    if (w->until_ms > timer_now(m->timers)) return 0;
    htable_remove(&m->watched, &w->node);
    if (m->stats.watched_elsewhere) m->stats.watched_elsewhere--;
    free(w);
    return 0;
}

static void on_tick(struct timer_node *t, uint64_t now_ms)
{
    struct dialog_mirror *m = container_of(t, struct dialog_mirror, tick);
    follower_foreach(&m->fl, announce, m);
    subs_dialog_foreach(m->subs, renew_one, m);
    htable_foreach(&m->watched, forget_one, m);
    timer_start(m->timers, &m->tick, now_ms + DIALOG_MIRROR_ANNOUNCE_MS, on_tick);
}

/* ---- life cycle ---- */

static struct dialog_mirror *alloc_mirror(struct timer_service *timers, struct subs *s, const char *prefix,
                                          const char *node_id)
{
    if (!node_id || !*node_id || strlen(node_id) >= DIALOG_NODES_NODE_MAX || strchr(node_id, '/') ||
        strchr(node_id, ' ') || strlen(prefix) >= 64)
        return NULL;
    struct dialog_mirror *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->timers = timers;
    m->subs = s;
    snprintf(m->self, sizeof(m->self), "%s", node_id);
    snprintf(m->prefix, sizeof(m->prefix), "%s", prefix);
    snprintf(m->channel, sizeof(m->channel), "%sdlg-changes", prefix);
    static struct dialog_remote scratch[DIALOG_NODES_MAX]; /* loop thread only */
    struct follow_config fc = {
        .timers = timers,
        .ops = {.arg = m, .read = op_read, .parse = op_parse, .refused = op_refused, .replaced = op_replaced,
                .added = announce, .wall_ms = op_wall},
        .elem_size = sizeof(struct dialog_remote),
        .exp_off = offsetof(struct dialog_remote, expires_wall_ms),
        .cap = DIALOG_NODES_MAX,
        .scratch = scratch,
        .inflight_max = DIALOG_MIRROR_INFLIGHT_MAX,
        .followed = &m->stats.followed,
        .held = &m->stats.remote,
        .coalesced = &m->stats.coalesced,
        .queued = &m->stats.queued,
        .slack_ms = LEASE_SLACK_MS,
    };
    follower_init(&m->fl, &fc);
    htable_init(&m->watched);
    timer_node_init(&m->tick);
    return m;
}

static void start(struct dialog_mirror *m)
{
    if (!m->io.wall_ms) m->io.wall_ms = io_wall;
    timer_start(m->timers, &m->tick, timer_now(m->timers) + DIALOG_MIRROR_ANNOUNCE_MS, on_tick);
    struct subs_dialog_hooks h = {.arg = m, .watch = hook_watch, .shared = hook_shared, .changed = hook_changed,
                                  .remote = hook_remote, .pending = hook_pending};
    subs_set_dialog_hooks(m->subs, &h); /* the watchers held now */
}

struct dialog_mirror *dialog_mirror_new_io(struct timer_service *timers, struct subs *s, const char *key_prefix,
                                           const char *node_id, const struct dialog_mirror_io *io)
{
    struct dialog_mirror *m = alloc_mirror(timers, s, key_prefix, node_id);
    if (!m) return NULL;
    m->io = *io;
    start(m);
    return m;
}

struct dialog_mirror *dialog_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct subs *s,
                                        struct cluster *cluster, const struct redis_config *cfg, const char *node_id,
                                        int *err)
{
    *err = -EINVAL;
    struct dialog_mirror *m = alloc_mirror(timers, s, cfg->key_prefix, node_id);
    if (!m) return NULL;
    m->loop = loop;
    m->cluster = cluster;
    m->io = (struct dialog_mirror_io){.arg = m, .command = io_command, .alive = io_alive, .wall_ms = io_wall};
    struct redis_cluster_config rcc = {.seeds = cfg->nodes, .timeout_ms = cfg->timeout_ms,
                                       .max_queued = DIALOG_MIRROR_WRITES_MAX + DIALOG_MIRROR_INFLIGHT_MAX + 64};
    m->rc = redis_cluster_new(loop, timers, &rcc, err);
    if (!m->rc) {
        follower_fini(&m->fl);
        htable_free(&m->watched);
        free(m);
        return NULL;
    }
    struct redis_sub_cb scb = {.subscribed = on_subscribed, .message = on_message, .lost = on_lost, .arg = m};
    m->sub = redis_sub_new(loop, timers, cfg->nodes, m->channel, &scb, err);
    if (!m->sub) {
        redis_cluster_free(m->rc);
        follower_fini(&m->fl);
        htable_free(&m->watched);
        free(m);
        return NULL;
    }
    start(m);
    *err = 0;
    return m;
}

static int drop_watched(struct hnode *n, void *arg)
{
    struct dialog_mirror *m = arg;
    struct watched *w = container_of(n, struct watched, node);
    htable_remove(&m->watched, &w->node);
    free(w);
    return 0;
}

void dialog_mirror_free(struct dialog_mirror *m)
{
    if (!m) return;
    subs_set_dialog_hooks(m->subs, NULL);
    timer_stop(m->timers, &m->tick);
    redis_sub_free(m->sub);
    follower_drop_all(&m->fl); /* their answers dropped */
    if (m->rc) redis_cluster_free(m->rc); /* the reads left answer -ECANCELED: their contexts freed */
    htable_foreach(&m->watched, drop_watched, m);
    follower_fini(&m->fl);
    htable_free(&m->watched);
    free(m);
}

void dialog_mirror_get_stats(const struct dialog_mirror *m, struct dialog_mirror_stats *out) { *out = m->stats; }

void dialog_mirror_stats_json(const struct dialog_mirror *m, json_t *stats)
{
    const struct dialog_mirror_stats *s = &m->stats;
    json_t *o = json_object();
    json_object_set_new(o, "subscribed", json_boolean(s->subscribed));
    json_object_set_new(o, "followed", json_integer(s->followed));
    json_object_set_new(o, "watched_elsewhere", json_integer(s->watched_elsewhere));
    json_object_set_new(o, "remote", json_integer(s->remote));
    json_object_set_new(o, "writes", json_integer((json_int_t)s->writes));
    json_object_set_new(o, "write_failures", json_integer((json_int_t)s->write_failures));
    json_object_set_new(o, "announcements", json_integer((json_int_t)s->announcements));
    json_object_set_new(o, "messages", json_integer((json_int_t)s->messages));
    json_object_set_new(o, "bad_messages", json_integer((json_int_t)s->bad_messages));
    json_object_set_new(o, "reads", json_integer((json_int_t)s->reads));
    json_object_set_new(o, "read_failures", json_integer((json_int_t)s->read_failures));
    json_object_set_new(o, "coalesced", json_integer((json_int_t)s->coalesced));
    json_object_set_new(o, "queued", json_integer((json_int_t)s->queued));
    json_object_set_new(o, "changes", json_integer((json_int_t)s->changes));
    json_object_set_new(o, "rejected", json_integer((json_int_t)s->rejected));
    json_object_set_new(o, "over_cap", json_integer((json_int_t)s->over_cap));
    json_object_set_new(stats, "redis_dialog", o);
}
