/* reg_nodes.c — the reg package across nodes (reg_nodes.h). */
#include "subs/reg_nodes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "base/clock.h"
#include "base/htable.h"
#include "base/log.h"
#include "base/str.h"
#include "registrar/cluster.h"
#include "registrar/location.h"
#include "subs/subs.h"

#define RETRY_MIN_MS 1000u
#define RETRY_MAX_MS 30000u
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

int reg_nodes_parse(const struct redisReply *r, const char *self, int64_t now_wall, reg_nodes_alive_fn alive,
                    void *arg, struct reg_remote *out, size_t cap, struct reg_nodes_read_stats *st)
{
    struct reg_nodes_read_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof(*st));
    if (!r || r->type != REDIS_REPLY_ARRAY) return -1;
    if (cap > REG_NODES_MAX) cap = REG_NODES_MAX;
    size_t n = 0;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (i / 2 >= REG_NODES_PAIRS_MAX) {
            st->over_cap += (uint32_t)((r->elements - i) / 2);
            break;
        }
        const struct redisReply *f = r->element[i], *v = r->element[i + 1];
        if (!f || !v || f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            !reg_nodes_contact_ok(f->str, f->len)) {
            st->rejected++;
            continue;
        }
        struct reg_remote x;
        memset(&x, 0, sizeof(x));
        if (cluster_record_read_q(v->str, v->len, x.node, sizeof(x.node), &x.expires_wall_ms, &x.q1000) < 0) {
            st->rejected++;
            continue;
        }
        if (self && strcmp(x.node, self) == 0) {
            st->own++;
            continue;
        }
        if (x.expires_wall_ms <= now_wall) {
            st->expired++;
            continue;
        }
        if (alive && !alive(arg, x.node)) {
            st->dead++;
            continue;
        }
        memcpy(x.uri, f->str, f->len);
        x.uri[f->len] = '\0';
        if (find(out, n, x.uri)) { /* a field twice: no hash answers that */
            st->rejected++;
            continue;
        }
        if (n >= cap) {
            st->over_cap++;
            continue;
        }
        out[n++] = x;
    }
    return (int)n;
}

static uint32_t secs_left(int64_t exp, int64_t now)
{
    int64_t d = exp - now;
    if (d <= 0) return 0;
    d = (d + 999) / 1000;
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

size_t reg_nodes_diff(const struct reg_remote *old, size_t n_old, const struct reg_remote *cur, size_t n_cur,
                      int64_t now_wall, reg_nodes_alive_fn alive, void *arg, struct reginfo_contact *out, size_t cap)
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

/* ---- the follower ---- */

struct follow {
    struct hnode node;
    struct reg_nodes *owner;
    uint32_t watchers;
    struct cluster_lookup *read;       /* in flight */
    bool again;                        /* a message came during it */
    bool read_once;                    /* a read has completed (the first watchers wait for it) */
    struct timer_node timer;           /* a retry, or the earliest expiry */
    uint32_t backoff_ms;
    size_t n;
    struct reg_remote *have;           /* what the watchers were told */
    struct follow *wprev, *wnext;      /* in the queue for a read slot */
    bool waiting;
    char aor[];
};

struct reg_nodes {
    struct timer_service *timers;
    struct cluster *cluster;
    struct reg_nodes_io io;            /* the cluster's, or a test's */
    struct subs *subs;
    char self[REG_NODES_NODE_MAX];
    struct htable follows;
    uint32_t inflight;                 /* reads sent, not answered (at most REG_NODES_INFLIGHT_MAX) */
    struct follow *whead, *wtail;      /* follows waiting for a read slot, oldest first */
    struct reg_nodes_stats stats;
};

static void wait_push(struct reg_nodes *rn, struct follow *f)
{
    f->waiting = true;
    f->wnext = NULL;
    f->wprev = rn->wtail;
    if (rn->wtail) rn->wtail->wnext = f;
    else rn->whead = f;
    rn->wtail = f;
}

static void wait_unlink(struct reg_nodes *rn, struct follow *f)
{
    if (!f->waiting) return;
    if (f->wprev) f->wprev->wnext = f->wnext;
    else rn->whead = f->wnext;
    if (f->wnext) f->wnext->wprev = f->wprev;
    else rn->wtail = f->wprev;
    f->wprev = f->wnext = NULL;
    f->waiting = false;
}

static struct follow *follow_find(const struct reg_nodes *rn, const char *aor)
{
    for (struct hnode *h = htable_first(&rn->follows, str_hash(str_from_cstr(aor))); h; h = htable_next(h)) {
        struct follow *f = container_of(h, struct follow, node);
        if (strcmp(f->aor, aor) == 0) return f;
    }
    return NULL;
}

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

static void start_read(struct follow *f);

static void on_timer(struct timer_node *t, uint64_t now_ms)
{
    (void)now_ms;
    start_read(container_of(t, struct follow, timer));
}

/* The timer at the earliest expiry held, or sooner (retry_ms, 0: none). */
static void arm(struct follow *f, uint32_t retry_ms)
{
    struct reg_nodes *rn = f->owner;
    int64_t wall = wall_ms(rn), first = 0;
    for (size_t i = 0; i < f->n; i++)
        if (!first || f->have[i].expires_wall_ms < first) first = f->have[i].expires_wall_ms;
    uint64_t now = timer_now(rn->timers), at = 0;
    if (first) at = now + (uint64_t)(first > wall ? first - wall : 0) + EXPIRY_SLACK_MS;
    if (retry_ms && (!at || now + retry_ms < at)) at = now + retry_ms;
    timer_stop(rn->timers, &f->timer);
    if (at) timer_start(rn->timers, &f->timer, at, on_timer);
}

/* The new view: changes told, then old dropped. cur NULL with n 0: empty. */
static void replace(struct follow *f, struct reg_remote *cur, size_t n)
{
    struct reg_nodes *rn = f->owner;
    struct reginfo_contact ch[2 * REG_NODES_MAX];
    size_t nch = reg_nodes_diff(f->have, f->n, cur, n, wall_ms(rn), node_alive, rn, ch, 2 * REG_NODES_MAX);
    struct reg_remote *old = f->have;
    size_t old_n = f->n;
    f->have = NULL;
    f->n = 0;
    if (n && (f->have = malloc(n * sizeof(*cur)))) {
        memcpy(f->have, cur, n * sizeof(*cur));
        f->n = n;
    }
    rn->stats.contacts = rn->stats.contacts - (uint32_t)old_n + (uint32_t)f->n;
    rn->stats.changes += nch;
    char aor[LOCATION_MAX_AOR];
    snprintf(aor, sizeof(aor), "%s", f->aor);
    bool first = !f->read_once;
    f->read_once = true;
    if (nch || first) subs_reg_remote_changed(rn->subs, aor, ch, nch); /* f may not live past this */
    free(old);
}

/* Redis did not answer: what passed its expiry goes (expired), the rest stays. */
static void read_failed(struct follow *f)
{
    struct reg_remote keep[REG_NODES_MAX];
    size_t n = 0;
    int64_t wall = wall_ms(f->owner);
    for (size_t i = 0; i < f->n && n < REG_NODES_MAX; i++)
        if (f->have[i].expires_wall_ms > wall) keep[n++] = f->have[i];
    f->backoff_ms = f->backoff_ms ? (f->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : f->backoff_ms * 2) : RETRY_MIN_MS;
    uint32_t retry = f->backoff_ms;
    struct reg_nodes *rn = f->owner;
    char aor[LOCATION_MAX_AOR];
    snprintf(aor, sizeof(aor), "%s", f->aor);
    replace(f, keep, n);
    if ((f = follow_find(rn, aor))) arm(f, retry);
}

/* Reads for the follows waiting, while there are slots. */
static void pump(struct reg_nodes *rn)
{
    while (rn->whead && rn->inflight < REG_NODES_INFLIGHT_MAX) {
        struct follow *f = rn->whead;
        wait_unlink(rn, f);
        start_read(f);
    }
}

static void on_read(void *arg, int status, const struct redisReply *reply)
{
    struct follow *f = arg; /* a follow that goes cancels its read first */
    struct reg_nodes *rn = f->owner;
    f->read = NULL;
    rn->inflight--;
    if (status == -ECANCELED) return; /* the cluster is going */
    char aor[LOCATION_MAX_AOR];
    snprintf(aor, sizeof(aor), "%s", f->aor);
    if (status < 0 || !reply) {
        rn->stats.read_failures++;
        log_warn_rl("reg nodes: reading %s's bindings failed (%s): the watchers keep what they saw", aor,
                    strerror(-status));
        read_failed(f);
    } else {
        rn->stats.reads++;
        struct reg_remote cur[REG_NODES_MAX];
        struct reg_nodes_read_stats st;
        int n = reg_nodes_parse(reply, rn->self, wall_ms(rn), node_alive, rn, cur, REG_NODES_MAX, &st);
        rn->stats.rejected += st.rejected;
        rn->stats.over_cap += st.over_cap;
        if (st.rejected || st.over_cap)
            log_warn_rl("reg nodes: %s's bindings: %u record(s) unreadable, %u over the caps, skipped", aor,
                        st.rejected, st.over_cap);
        if (n < 0) {
            rn->stats.read_failures++;
            read_failed(f);
        } else {
            f->backoff_ms = 0;
            replace(f, cur, (size_t)n);
            if ((f = follow_find(rn, aor))) arm(f, 0);
        }
    }
    if ((f = follow_find(rn, aor)) && f->again && !f->read) start_read(f);
    pump(rn);
}

static void start_read(struct follow *f)
{
    struct reg_nodes *rn = f->owner;
    if (f->read) {
        if (!f->again) rn->stats.coalesced++;
        f->again = true; /* the one in flight may have read before the change */
        return;
    }
    if (f->waiting) {
        rn->stats.coalesced++; /* its read is queued already */
        return;
    }
    if (rn->inflight >= REG_NODES_INFLIGHT_MAX) {
        rn->stats.queued++;
        wait_push(rn, f);
        return;
    }
    f->again = false;
    int rc = rn->io.read(rn->io.arg, f->aor, on_read, f, &f->read);
    if (rc == 0) rn->inflight++;
    if (rc < 0) {
        f->read = NULL;
        rn->stats.refused++;
        log_warn_rl("reg nodes: %s's bindings not read (%s): retried", f->aor, strerror(-rc));
        if (!f->read_once) {
            /* the first watchers must not wait for it */
            char aor[LOCATION_MAX_AOR];
            snprintf(aor, sizeof(aor), "%s", f->aor);
            f->read_once = true;
            subs_reg_remote_changed(rn->subs, aor, NULL, 0);
            if (!(f = follow_find(rn, aor))) return;
        }
        f->backoff_ms = f->backoff_ms ? (f->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : f->backoff_ms * 2)
                                      : RETRY_MIN_MS;
        arm(f, f->backoff_ms);
    }
}

static void follow_drop(struct reg_nodes *rn, struct follow *f)
{
    if (f->read) {
        rn->io.cancel(rn->io.arg, f->read); /* its callback will not come */
        rn->inflight--;
    }
    wait_unlink(rn, f);
    timer_stop(rn->timers, &f->timer);
    htable_remove(&rn->follows, &f->node);
    rn->stats.contacts -= (uint32_t)f->n;
    if (rn->stats.followed) rn->stats.followed--;
    free(f->have);
    free(f);
}

static void hook_watch(void *arg, const char *aor, bool on)
{
    struct reg_nodes *rn = arg;
    struct follow *f = follow_find(rn, aor);
    if (!on) {
        if (f && --f->watchers == 0) follow_drop(rn, f);
        return;
    }
    if (f) {
        f->watchers++;
        return;
    }
    size_t len = strlen(aor);
    if (!(f = calloc(1, sizeof(*f) + len + 1))) return;
    f->owner = rn;
    f->watchers = 1;
    memcpy(f->aor, aor, len + 1);
    timer_node_init(&f->timer);
    if (htable_insert(&rn->follows, &f->node, str_hash(str_from_cstr(aor))) < 0) {
        free(f);
        return;
    }
    rn->stats.followed++;
    start_read(f);
}

static size_t hook_remote(void *arg, const char *aor, const struct reg_remote **out)
{
    const struct follow *f = follow_find(arg, aor);
    *out = f ? f->have : NULL;
    return f ? f->n : 0;
}

static bool hook_pending(void *arg, const char *aor)
{
    const struct follow *f = follow_find(arg, aor);
    return f && !f->read_once && (f->read || f->waiting);
}

static int read_one(struct hnode *n, void *arg)
{
    (void)arg;
    start_read(container_of(n, struct follow, node));
    return 0;
}

void reg_nodes_changed(struct reg_nodes *rn, const char *aor)
{
    if (!aor) {
        htable_foreach(&rn->follows, read_one, rn);
        return;
    }
    struct follow *f = follow_find(rn, aor);
    if (f) start_read(f);
}

static void on_changed(void *arg, const char *aor) { reg_nodes_changed(arg, aor); }

struct reg_nodes *reg_nodes_new(const struct reg_nodes_deps *d)
{
    struct reg_nodes *rn = calloc(1, sizeof(*rn));
    if (!rn) return NULL;
    rn->timers = d->timers;
    rn->cluster = d->cluster;
    rn->subs = d->subs;
    snprintf(rn->self, sizeof(rn->self), "%s", d->node_id ? d->node_id : "");
    htable_init(&rn->follows);
    if (d->io) rn->io = *d->io;
    else rn->io = (struct reg_nodes_io){.arg = d->cluster, .read = io_read, .cancel = io_cancel, .alive = io_alive};
    if (!rn->io.wall_ms) rn->io.wall_ms = io_wall;
    if (rn->cluster && cluster_set_on_bindings_changed(rn->cluster, on_changed, rn) < 0) {
        htable_free(&rn->follows);
        free(rn);
        return NULL;
    }
    struct subs_reg_hooks h = {.arg = rn, .watch = hook_watch, .remote = hook_remote, .pending = hook_pending};
    subs_set_reg_hooks(rn->subs, &h); /* the watchers held now */
    return rn;
}

static int collect(struct hnode *n, void *arg)
{
    struct follow ***p = arg;
    *(*p)++ = container_of(n, struct follow, node);
    return 0;
}

void reg_nodes_free(struct reg_nodes *rn)
{
    if (!rn) return;
    if (rn->cluster) cluster_set_on_bindings_changed(rn->cluster, NULL, rn);
    /* those waiting for a first read get their NOTIFY with this node's view */
    size_t count = htable_count(&rn->follows);
    struct follow **all = count ? calloc(count, sizeof(*all)) : NULL, **p = all;
    if (all) htable_foreach(&rn->follows, collect, &p);
    for (size_t i = 0; all && i < count; i++) {
        if (all[i]->read) rn->io.cancel(rn->io.arg, all[i]->read);
        if (all[i]->read) rn->inflight--;
        all[i]->read = NULL;
        wait_unlink(rn, all[i]);
        all[i]->n = 0; /* (no diff: the document is rebuilt) */
    }
    subs_set_reg_hooks(rn->subs, NULL); /* waiting watchers released */
    for (size_t i = 0; all && i < count; i++) follow_drop(rn, all[i]);
    free(all);
    htable_free(&rn->follows);
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
