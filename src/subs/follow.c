/* follow.c — following AoRs' records in Redis (follow.h). */
#include "subs/follow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "base/str.h"
#include "registrar/location.h"

#define RETRY_MIN_MS 1000u
#define RETRY_MAX_MS 30000u

/* ---- pure ---- */

int follow_parse_hash(const struct redisReply *r, const struct follow_records *how, const char *self,
                      int64_t now_wall, follow_alive_fn alive, void *arg, void *out, size_t cap,
                      struct follow_read_stats *st)
{
    struct follow_read_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof(*st));
    if (!r || r->type != REDIS_REPLY_ARRAY) return -1;
    if (cap > how->max) cap = how->max;
    size_t pairs = r->elements / 2, n = 0, sz = how->elem_size;
    if (pairs > how->pairs_max) {
        st->over_cap += (uint32_t)(pairs - how->pairs_max);
        pairs = how->pairs_max;
    }
    unsigned char *x = how->tmp;
    for (size_t k = 0; k < pairs; k++) {
        const struct redisReply *f = r->element[2 * k], *v = r->element[2 * k + 1];
        if (!f || !v || f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || how->decode(f, v, x) < 0) {
            st->rejected++;
            continue;
        }
        const char *node = (const char *)x + how->node_off;
        int64_t exp;
        memcpy(&exp, x + how->exp_off, sizeof(exp));
        if (self && strcmp(node, self) == 0) {
            st->own++;
            continue;
        }
        if (exp <= now_wall) {
            st->expired++;
            continue;
        }
        if (alive && !alive(arg, node)) {
            st->dead++;
            continue;
        }
        if (how->dup && how->dup(out, n, x, st)) continue;
        if (n >= cap) {
            st->over_cap++;
            continue;
        }
        memcpy((unsigned char *)out + sz * n++, x, sz);
    }
    return (int)n;
}

/* ---- the follower ---- */

struct follow {
    struct hnode node;
    struct follower *owner;
    uint32_t watchers;
    struct follow_read *read;          /* in flight */
    bool again;                        /* a message came during it */
    bool read_once;                    /* a read has completed (the first watchers wait for it) */
    bool waiting;                      /* in the queue for a read slot */
    struct timer_node timer;           /* a retry, or the earliest expiry */
    uint32_t backoff_ms;
    size_t n;
    unsigned char *have;               /* n records: what the watchers were told */
    struct follow *wprev, *wnext;
    char aor[];
};

static void start_read(struct follow *f);

static void wait_push(struct follower *fl, struct follow *f)
{
    f->waiting = true;
    f->wnext = NULL;
    f->wprev = fl->wtail;
    if (fl->wtail) fl->wtail->wnext = f;
    else fl->whead = f;
    fl->wtail = f;
}

static void wait_unlink(struct follower *fl, struct follow *f)
{
    if (!f->waiting) return;
    if (f->wprev) f->wprev->wnext = f->wnext;
    else fl->whead = f->wnext;
    if (f->wnext) f->wnext->wprev = f->wprev;
    else fl->wtail = f->wprev;
    f->wprev = f->wnext = NULL;
    f->waiting = false;
}

static struct follow *follow_find(const struct follower *fl, const char *aor)
{
    for (struct hnode *h = htable_first(&fl->follows, str_hash(str_from_cstr(aor))); h; h = htable_next(h)) {
        struct follow *f = container_of(h, struct follow, node);
        if (strcmp(f->aor, aor) == 0) return f;
    }
    return NULL;
}

static int64_t expiry(const struct follower *fl, const unsigned char *recs, size_t i)
{
    int64_t e;
    memcpy(&e, recs + i * fl->cfg.elem_size + fl->cfg.exp_off, sizeof(e));
    return e;
}

static int64_t wall_ms(const struct follower *fl) { return fl->cfg.ops.wall_ms(fl->cfg.ops.arg); }

static uint32_t next_backoff(uint32_t b) { return b ? (b * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : b * 2) : RETRY_MIN_MS; }

static void on_timer(struct timer_node *t, uint64_t now_ms)
{
    (void)now_ms;
    start_read(container_of(t, struct follow, timer));
}

/* The timer at the earliest expiry held, or sooner (retry_ms, 0: none). */
static void arm(struct follow *f, uint32_t retry_ms)
{
    struct follower *fl = f->owner;
    int64_t wall = wall_ms(fl), first = 0;
    for (size_t i = 0; i < f->n; i++) {
        int64_t e = expiry(fl, f->have, i);
        if (!first || e < first) first = e;
    }
    uint64_t now = timer_now(fl->cfg.timers), at = 0;
    if (first) at = now + (uint64_t)(first > wall ? first - wall : 0) + fl->cfg.slack_ms;
    if (retry_ms && (!at || now + retry_ms < at)) at = now + retry_ms;
    timer_stop(fl->cfg.timers, &f->timer);
    if (at) timer_start(fl->cfg.timers, &f->timer, at, on_timer);
}

/* The new view: changes told, then the old one dropped. f may go inside. */
static void replace(struct follow *f, const void *cur, size_t n)
{
    struct follower *fl = f->owner;
    size_t sz = fl->cfg.elem_size;
    unsigned char *old = f->have;
    size_t old_n = f->n;
    f->have = NULL;
    f->n = 0;
    if (n && (f->have = malloc(n * sz))) {
        memcpy(f->have, cur, n * sz);
        f->n = n;
    }
    *fl->cfg.held = *fl->cfg.held - (uint32_t)old_n + (uint32_t)f->n;
    char aor[LOCATION_MAX_AOR];
    snprintf(aor, sizeof(aor), "%s", f->aor);
    bool first = !f->read_once;
    f->read_once = true;
    fl->cfg.ops.replaced(fl->cfg.ops.arg, aor, old, old_n, cur, n, first);
    free(old);
}

/* No answer that reads: what passed its expiry goes, the rest stays. */
static void read_failed(struct follow *f)
{
    struct follower *fl = f->owner;
    size_t sz = fl->cfg.elem_size, n = 0;
    unsigned char *keep = fl->cfg.scratch;
    int64_t wall = wall_ms(fl);
    for (size_t i = 0; i < f->n && n < fl->cfg.cap; i++)
        if (expiry(fl, f->have, i) > wall) memcpy(keep + sz * n++, f->have + sz * i, sz);
    f->backoff_ms = next_backoff(f->backoff_ms);
    uint32_t retry = f->backoff_ms;
    char aor[LOCATION_MAX_AOR];
    snprintf(aor, sizeof(aor), "%s", f->aor);
    replace(f, keep, n);
    if ((f = follow_find(fl, aor))) arm(f, retry);
}

/* Reads for the follows waiting, while there are slots. */
static void pump(struct follower *fl)
{
    while (fl->whead && fl->inflight < fl->cfg.inflight_max) {
        struct follow *f = fl->whead;
        wait_unlink(fl, f);
        start_read(f);
    }
}

void follower_answer(struct follow_read *rd, int status, const struct redisReply *reply)
{
    struct follower *fl = rd->fl;
    struct follow *f = rd->f;
    free(rd);
    fl->inflight--;
    if (f) f->read = NULL;
    if (status == -ECANCELED || !f) { /* the reads are going, or its follow went */
        if (status != -ECANCELED) pump(fl);
        return;
    }
    char aor[LOCATION_MAX_AOR];
    snprintf(aor, sizeof(aor), "%s", f->aor);
    int n = fl->cfg.ops.parse(fl->cfg.ops.arg, aor, status, reply, fl->cfg.scratch, fl->cfg.cap);
    if (n < 0) {
        read_failed(f);
    } else {
        f->backoff_ms = 0;
        replace(f, fl->cfg.scratch, (size_t)n);
        if ((f = follow_find(fl, aor))) arm(f, 0);
    }
    if ((f = follow_find(fl, aor)) && f->again && !f->read) start_read(f);
    pump(fl);
}

static void start_read(struct follow *f)
{
    struct follower *fl = f->owner;
    if (f->read) {
        if (!f->again) (*fl->cfg.coalesced)++;
        f->again = true; /* the one in flight may have read before the change */
        return;
    }
    if (f->waiting) {
        (*fl->cfg.coalesced)++; /* its read is queued already */
        return;
    }
    if (fl->inflight >= fl->cfg.inflight_max) {
        (*fl->cfg.queued)++;
        wait_push(fl, f);
        return;
    }
    f->again = false;
    struct follow_read *rd = malloc(sizeof(*rd));
    int rc = rd ? 0 : -ENOMEM;
    if (rd) {
        *rd = (struct follow_read){.fl = fl, .f = f};
        rc = fl->cfg.ops.read(fl->cfg.ops.arg, f->aor, rd);
        if (rc < 0) free(rd);
    }
    if (rc == 0) {
        f->read = rd;
        fl->inflight++;
        return;
    }
    fl->cfg.ops.refused(fl->cfg.ops.arg, f->aor, rc);
    if (!f->read_once) {
        /* the first watchers must not wait for it */
        char aor[LOCATION_MAX_AOR];
        snprintf(aor, sizeof(aor), "%s", f->aor);
        f->read_once = true;
        fl->cfg.ops.replaced(fl->cfg.ops.arg, aor, NULL, 0, NULL, 0, true);
        if (!(f = follow_find(fl, aor))) return;
    }
    f->backoff_ms = next_backoff(f->backoff_ms);
    arm(f, f->backoff_ms);
}

/* Its read cancelled (its answer will not come), or its answer dropped. */
static void forget_read(struct follower *fl, struct follow *f)
{
    if (!f->read) return;
    if (fl->cfg.ops.cancel) {
        fl->cfg.ops.cancel(fl->cfg.ops.arg, f->read);
        free(f->read);
        fl->inflight--;
    } else {
        f->read->f = NULL;
    }
    f->read = NULL;
}

static void follow_drop(struct follower *fl, struct follow *f)
{
    forget_read(fl, f);
    wait_unlink(fl, f);
    timer_stop(fl->cfg.timers, &f->timer);
    htable_remove(&fl->follows, &f->node);
    *fl->cfg.held -= (uint32_t)f->n;
    if (*fl->cfg.followed) (*fl->cfg.followed)--;
    free(f->have);
    free(f);
}

void follower_watch(struct follower *fl, const char *aor, bool on)
{
    struct follow *f = follow_find(fl, aor);
    if (!on) {
        if (f && --f->watchers == 0) follow_drop(fl, f);
        return;
    }
    if (f) {
        f->watchers++;
        return;
    }
    size_t len = strlen(aor);
    if (!(f = calloc(1, sizeof(*f) + len + 1))) return;
    f->owner = fl;
    f->watchers = 1;
    memcpy(f->aor, aor, len + 1);
    timer_node_init(&f->timer);
    if (htable_insert(&fl->follows, &f->node, str_hash(str_from_cstr(aor))) < 0) {
        free(f);
        return;
    }
    (*fl->cfg.followed)++;
    if (fl->cfg.ops.added) fl->cfg.ops.added(fl->cfg.ops.arg, f->aor);
    start_read(f);
}

static int read_one(struct hnode *n, void *arg)
{
    (void)arg;
    start_read(container_of(n, struct follow, node));
    return 0;
}

void follower_changed(struct follower *fl, const char *aor)
{
    if (!aor) {
        htable_foreach(&fl->follows, read_one, fl);
        return;
    }
    struct follow *f = follow_find(fl, aor);
    if (f) start_read(f);
}

size_t follower_have(const struct follower *fl, const char *aor, const void **out)
{
    const struct follow *f = follow_find(fl, aor);
    *out = f ? f->have : NULL;
    return f ? f->n : 0;
}

bool follower_pending(const struct follower *fl, const char *aor)
{
    const struct follow *f = follow_find(fl, aor);
    return f && !f->read_once && (f->read || f->waiting);
}

struct each_ctx {
    void (*fn)(void *arg, const char *aor);
    void *arg;
};

static int each_one(struct hnode *n, void *arg)
{
    struct each_ctx *c = arg;
    c->fn(c->arg, container_of(n, struct follow, node)->aor);
    return 0;
}

void follower_foreach(struct follower *fl, void (*fn)(void *arg, const char *aor), void *arg)
{
    struct each_ctx c = {.fn = fn, .arg = arg};
    htable_foreach(&fl->follows, each_one, &c);
}

void follower_init(struct follower *fl, const struct follow_config *cfg)
{
    memset(fl, 0, sizeof(*fl));
    fl->cfg = *cfg;
    htable_init(&fl->follows);
}

static int collect(struct hnode *n, void *arg)
{
    struct follow ***p = arg;
    *(*p)++ = container_of(n, struct follow, node);
    return 0;
}

/* All follows, in an array to free (NULL: none, or no memory). */
static struct follow **all_follows(struct follower *fl, size_t *count)
{
    *count = htable_count(&fl->follows);
    struct follow **all = *count ? calloc(*count, sizeof(*all)) : NULL, **p = all;
    if (all) htable_foreach(&fl->follows, collect, &p);
    else *count = 0;
    return all;
}

void follower_quiesce(struct follower *fl)
{
    size_t count;
    struct follow **all = all_follows(fl, &count);
    for (size_t i = 0; i < count; i++) {
        struct follow *f = all[i];
        if (f->read && fl->cfg.ops.cancel) forget_read(fl, f);
        wait_unlink(fl, f);
        *fl->cfg.held -= (uint32_t)f->n;
        f->n = 0; /* (no diff: the watchers' documents are rebuilt) */
    }
    free(all);
}

void follower_drop_all(struct follower *fl)
{
    size_t count;
    struct follow **all = all_follows(fl, &count);
    for (size_t i = 0; i < count; i++) follow_drop(fl, all[i]);
    free(all);
}

void follower_fini(struct follower *fl)
{
    follower_drop_all(fl);
    htable_free(&fl->follows);
}
