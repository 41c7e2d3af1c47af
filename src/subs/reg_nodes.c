/* reg_nodes.c — the reg package across nodes (reg_nodes.h). */
#include "subs/reg_nodes.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "base/clock.h"
#include "base/log.h"
#include "registrar/cluster.h"
#include "subs/follow.h"
#include "subs/subs.h"

#define EXPIRY_SLACK_MS 250u     /* read a little after a contact's expiry */

/* ---- pure ---- */

bool reg_nodes_contact_ok(const char *s, size_t len)
{
    if (!s || len >= REG_NODES_URI_MAX) return false;
    if (!(len > 4 && strncasecmp(s, "sip:", 4) == 0) && !(len > 5 && strncasecmp(s, "sips:", 5) == 0)) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '<' || c == '>' || c == '"') return false;
    }
    return true;
}

static const struct reg_remote *find(const struct reg_remote *a, size_t n, const char *uri)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].uri, uri) == 0) return &a[i];
    return NULL;
}

static int decode(const struct redisReply *f, const struct redisReply *v, void *rec)
{
    struct reg_remote *x = rec;
    memset(x, 0, sizeof(*x));
    if (!reg_nodes_contact_ok(f->str, f->len) ||
        cluster_record_read_q(v->str, v->len, x->node, sizeof(x->node), &x->expires_wall_ms, &x->q1000) < 0)
        return -1;
    memcpy(x->uri, f->str, f->len);
    x->uri[f->len] = '\0';
    return 0;
}

static bool seen(void *out, size_t n, const void *rec, struct follow_read_stats *st)
{
    if (!find(out, n, ((const struct reg_remote *)rec)->uri)) return false;
    st->rejected++; /* a field twice: no hash answers that */
    return true;
}

int reg_nodes_parse(const struct redisReply *r, const char *self, int64_t now_wall, follow_alive_fn alive, void *arg,
                    struct reg_remote *out, size_t cap, struct follow_read_stats *st)
{
    struct reg_remote x;
    const struct follow_records how = {
        .elem_size = sizeof(x), .node_off = offsetof(struct reg_remote, node),
        .exp_off = offsetof(struct reg_remote, expires_wall_ms), .pairs_max = REG_NODES_PAIRS_MAX,
        .max = REG_NODES_MAX, .tmp = &x, .decode = decode, .dup = seen};
    return follow_parse_hash(r, &how, self, now_wall, alive, arg, out, cap, st);
}

static uint32_t secs_left(int64_t exp, int64_t now)
{
    int64_t d = exp - now;
    if (d <= 0) return 0;
    d = (d + 999) / 1000;
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

size_t reg_nodes_diff(const struct reg_remote *old, size_t n_old, const struct reg_remote *cur, size_t n_cur,
                      int64_t now_wall, follow_alive_fn alive, void *arg, struct reginfo_contact *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < n_old && n < cap; i++) {
        if (find(cur, n_cur, old[i].uri)) continue;
        const char *ev = old[i].expires_wall_ms <= now_wall      ? "expired"
                         : alive && !alive(arg, old[i].node) ? "deactivated"
                                                             : "unregistered";
        out[n++] = (struct reginfo_contact){.uri = old[i].uri, .state = "terminated", .event = ev,
                                            .q1000 = old[i].q1000};
    }
    for (size_t i = 0; i < n_cur && n < cap; i++) {
        const struct reg_remote *o = find(old, n_old, cur[i].uri);
        const char *ev = NULL;
        if (!o || strcmp(o->node, cur[i].node) != 0) ev = "registered";
        else if (o->expires_wall_ms != cur[i].expires_wall_ms || o->q1000 != cur[i].q1000) ev = "refreshed";
        if (!ev) continue;
        out[n++] = (struct reginfo_contact){.uri = cur[i].uri, .state = "active", .event = ev,
                                            .expires = secs_left(cur[i].expires_wall_ms, now_wall),
                                            .q1000 = cur[i].q1000};
    }
    return n;
}

/* ---- the follower (subs/follow.h): what it reads and tells ---- */

struct reg_nodes {
    struct timer_service *timers;
    struct cluster *cluster;
    struct reg_nodes_io io;            /* the cluster's, or a test's */
    struct subs *subs;
    char self[REG_NODES_NODE_MAX];
    struct follower fl;                /* at most REG_NODES_INFLIGHT_MAX reads in flight */
    struct reg_remote scratch[REG_NODES_MAX];
    struct reg_nodes_stats stats;      /* followed, contacts, coalesced, queued: kept by fl */
};

static bool node_alive(void *arg, const char *node)
{
    struct reg_nodes *rn = arg;
    return rn->io.alive(rn->io.arg, node);
}

static int64_t wall_ms(const struct reg_nodes *rn) { return rn->io.wall_ms(rn->io.arg); }

/* ---- the cluster's io ---- */

static int io_read(void *arg, const char *aor, cluster_read_cb cb, void *cb_arg, struct cluster_lookup **h)
{
    return cluster_read_bindings(arg, aor, cb, cb_arg, h);
}

static void io_cancel(void *arg, struct cluster_lookup *h)
{
    (void)arg;
    cluster_read_cancel(h);
}

static bool io_alive(void *arg, const char *node)
{
    struct cluster_hit hit;
    return cluster_node_hit(arg, node, &hit) == 0;
}

static int64_t io_wall(void *arg)
{
    (void)arg;
    return clock_wall_ms();
}

/* ---- the follower's ops ---- */

static void on_read(void *arg, int status, const struct redisReply *reply) { follower_answer(arg, status, reply); }

static int op_read(void *arg, const char *aor, struct follow_read *rd)
{
    struct reg_nodes *rn = arg;
    struct cluster_lookup *h = NULL;
    int rc = rn->io.read(rn->io.arg, aor, on_read, rd, &h);
    rd->handle = h;
    return rc;
}

static void op_cancel(void *arg, struct follow_read *rd)
{
    struct reg_nodes *rn = arg;
    rn->io.cancel(rn->io.arg, rd->handle); /* its callback will not come */
}

static int op_parse(void *arg, const char *aor, int status, const struct redisReply *reply, void *out, size_t cap)
{
    struct reg_nodes *rn = arg;
    if (status < 0 || !reply) {
        rn->stats.read_failures++;
        log_warn_rl("reg nodes: reading %s's bindings failed (%s): the watchers keep what they saw", aor,
                    strerror(-status));
        return -1;
    }
    rn->stats.reads++;
    struct follow_read_stats st;
    int n = reg_nodes_parse(reply, rn->self, wall_ms(rn), node_alive, rn, out, cap, &st);
    rn->stats.rejected += st.rejected;
    rn->stats.over_cap += st.over_cap;
    if (st.rejected || st.over_cap)
        log_warn_rl("reg nodes: %s's bindings: %u record(s) unreadable, %u over the caps, skipped", aor, st.rejected,
                    st.over_cap);
    if (n < 0) rn->stats.read_failures++;
    return n;
}

static void op_refused(void *arg, const char *aor, int rc)
{
    struct reg_nodes *rn = arg;
    rn->stats.refused++;
    log_warn_rl("reg nodes: %s's bindings not read (%s): retried", aor, strerror(-rc));
}

/* Changes told (the first view always: its watchers wait for it). */
static void op_replaced(void *arg, const char *aor, const void *old, size_t n_old, const void *cur, size_t n,
                        bool first)
{
    struct reg_nodes *rn = arg;
    struct reginfo_contact ch[2 * REG_NODES_MAX];
    size_t nch = reg_nodes_diff(old, n_old, cur, n, wall_ms(rn), node_alive, rn, ch, 2 * REG_NODES_MAX);
    rn->stats.changes += nch;
    if (nch || first) subs_reg_remote_changed(rn->subs, aor, ch, nch);
}

static int64_t op_wall(void *arg) { return wall_ms(arg); }

/* ---- subs hooks ---- */

static void hook_watch(void *arg, const char *aor, bool on)
{
    struct reg_nodes *rn = arg;
    follower_watch(&rn->fl, aor, on);
}

static size_t hook_remote(void *arg, const char *aor, const struct reg_remote **out)
{
    const struct reg_nodes *rn = arg;
    const void *have;
    size_t n = follower_have(&rn->fl, aor, &have);
    *out = have;
    return n;
}

static bool hook_pending(void *arg, const char *aor)
{
    const struct reg_nodes *rn = arg;
    return follower_pending(&rn->fl, aor);
}

void reg_nodes_changed(struct reg_nodes *rn, const char *aor) { follower_changed(&rn->fl, aor); }

static void on_changed(void *arg, const char *aor) { reg_nodes_changed(arg, aor); }

struct reg_nodes *reg_nodes_new(const struct reg_nodes_deps *d)
{
    struct reg_nodes *rn = calloc(1, sizeof(*rn));
    if (!rn) return NULL;
    rn->timers = d->timers;
    rn->cluster = d->cluster;
    rn->subs = d->subs;
    snprintf(rn->self, sizeof(rn->self), "%s", d->node_id ? d->node_id : "");
    if (d->io) rn->io = *d->io;
    else rn->io = (struct reg_nodes_io){.arg = d->cluster, .read = io_read, .cancel = io_cancel, .alive = io_alive};
    if (!rn->io.wall_ms) rn->io.wall_ms = io_wall;
    struct follow_config fc = {
        .timers = d->timers,
        .ops = {.arg = rn, .read = op_read, .cancel = op_cancel, .parse = op_parse, .refused = op_refused,
                .replaced = op_replaced, .wall_ms = op_wall},
        .elem_size = sizeof(struct reg_remote),
        .exp_off = offsetof(struct reg_remote, expires_wall_ms),
        .cap = REG_NODES_MAX,
        .scratch = rn->scratch,
        .inflight_max = REG_NODES_INFLIGHT_MAX,
        .followed = &rn->stats.followed,
        .held = &rn->stats.contacts,
        .coalesced = &rn->stats.coalesced,
        .queued = &rn->stats.queued,
        .slack_ms = EXPIRY_SLACK_MS,
    };
    follower_init(&rn->fl, &fc);
    if (rn->cluster && cluster_set_on_bindings_changed(rn->cluster, on_changed, rn) < 0) {
        follower_fini(&rn->fl);
        free(rn);
        return NULL;
    }
    struct subs_reg_hooks h = {.arg = rn, .watch = hook_watch, .remote = hook_remote, .pending = hook_pending};
    subs_set_reg_hooks(rn->subs, &h); /* the watchers held now */
    return rn;
}

void reg_nodes_free(struct reg_nodes *rn)
{
    if (!rn) return;
    if (rn->cluster) cluster_set_on_bindings_changed(rn->cluster, NULL, rn);
    /* those waiting for a first read get their NOTIFY with this node's view */
    follower_quiesce(&rn->fl);
    subs_set_reg_hooks(rn->subs, NULL); /* waiting watchers released */
    follower_fini(&rn->fl);
    free(rn);
}

void reg_nodes_get_stats(const struct reg_nodes *rn, struct reg_nodes_stats *out) { *out = rn->stats; }

void reg_nodes_stats_json(const struct reg_nodes *rn, json_t *stats)
{
    const struct reg_nodes_stats *s = &rn->stats;
    json_object_set_new(stats, "redis_reg",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "followed", (json_int_t)s->followed,
                                  "queued", (json_int_t)s->queued,
                                  "contacts", (json_int_t)s->contacts, "reads", (json_int_t)s->reads,
                                  "read_failures", (json_int_t)s->read_failures, "refused", (json_int_t)s->refused,
                                  "coalesced", (json_int_t)s->coalesced, "changes", (json_int_t)s->changes,
                                  "rejected", (json_int_t)s->rejected, "over_cap", (json_int_t)s->over_cap));
}
