/* catalog_queue.c — catalog-on-register queries through a bounded queue.
 *
 * A registration storm brings devices online by the thousand per second;
 * querying each one's catalog at once would add a MESSAGE out, its 200 and
 * the Response MESSAGEs in (and their store writes) to the storm, ahead of
 * the keepalives of devices already online. So a device that comes online
 * only queues its id here, and at most [gb] catalog_concurrency queries
 * started from the queue are in flight; each one's end (complete, refused,
 * timed out, device gone) starts the next on a fresh timer run. A device
 * that gets a DeviceInfo query beside its catalog ([gb] info_on_register,
 * while no name is known) takes two slots: otherwise a storm of new devices
 * would have twice the limit in flight. It waits until both are free, unless
 * nothing is in flight (a limit of 1 still lets every device through).
 *
 * The queue is background work: it starts at most [gb] catalog_rate queries a
 * second (a DeviceInfo query counts as one), and none while the node is
 * overloaded (txn_admission_busy): in a storm of a million devices the
 * registrations and keepalives keep the loop, and the catalogs follow at a
 * pace the node can afford.
 *
 * The queue holds ids, not device pointers: a device deleted or gone offline
 * while it waits is skipped when its turn comes. */
#include "gb/upper/upper_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#define CATQ_MAX (1u << 24)
#define CATQ_BUSY_WAIT_MS 500 /* the node was overloaded: look again this much later */

static void catq_timer(struct timer_node *n, uint64_t now);

static void catq_schedule_at(struct gb_upper *g, uint64_t at)
{
    if (!g->catq.timer_ready) {
        timer_node_init(&g->catq.timer);
        g->catq.timer_ready = true;
    }
    if (!timer_armed(&g->catq.timer)) timer_start(g->timers, &g->catq.timer, at, catq_timer);
}

static void catq_schedule(struct gb_upper *g) { catq_schedule_at(g, gb_now(g)); }

/* Refills the rate bucket (at most one second banked); true when a query may
 * start now. */
static bool catq_credit(struct gb_upper *g, uint64_t now)
{
    struct gb_catq *q = &g->catq;
    uint64_t rate = g->cfg.catalog_rate > 0 ? (uint64_t)g->cfg.catalog_rate : 0;
    if (!rate) return true;
    uint64_t cap = rate * 1000u;
    if (!q->credit_at || now < q->credit_at) q->credit = cap;
    else q->credit = q->credit + (now - q->credit_at) * rate > cap ? cap : q->credit + (now - q->credit_at) * rate;
    q->credit_at = now;
    return q->credit >= 1000;
}

static void catq_spend(struct gb_upper *g)
{
    if (g->cfg.catalog_rate > 0) g->catq.credit = g->catq.credit >= 1000 ? g->catq.credit - 1000 : 0;
}

/* When the bucket holds the next query's credit again. */
static uint64_t catq_next_credit_at(const struct gb_upper *g, uint64_t now)
{
    uint64_t rate = (uint64_t)g->cfg.catalog_rate, missing = 1000 - g->catq.credit;
    return now + (missing + rate - 1) / rate;
}

static int catq_grow(struct gb_catq *q)
{
    uint32_t cap = q->cap ? q->cap * 2 : 1024;
    if (cap > CATQ_MAX) return -1;
    char(*ids)[GB_ID_LEN] = malloc((size_t)cap * GB_ID_LEN);
    if (!ids) return -1;
    for (uint32_t i = 0; i < q->count; i++) memcpy(ids[i], q->ids[(q->head + i) % q->cap], GB_ID_LEN);
    free(q->ids);
    q->ids = ids;
    q->cap = cap;
    q->head = 0;
    return 0;
}

void gb_catq_push(struct gb_upper *g, struct gb_device *d)
{
    struct gb_catq *q = &g->catq;
    if (q->count == q->cap && catq_grow(q) != 0) {
        q->dropped++;
        log_warn("gb: catalog queue full (%u), no catalog query for %s", q->count, d->id);
        return;
    }
    memcpy(q->ids[(q->head + q->count) % q->cap], d->id, GB_ID_LEN);
    q->count++;
    catq_schedule(g);
}

void gb_catq_done(struct gb_upper *g)
{
    if (g->catq.in_flight) g->catq.in_flight--;
    if (g->catq.count && !g->stopping) catq_schedule(g);
}

/* Starts the device's catalog query (and its DeviceInfo query when info is
 * set), each counted in flight until it ends (query_new, query_unlink). */
static void catq_start(struct gb_upper *g, struct gb_device *d, bool info)
{
    struct gb_catq *q = &g->catq;
    q->starting = true;
    int rc = gb_query_start(g, d, GB_Q_CATALOG, NULL, NULL, NULL, NULL);
    catq_spend(g);
    if (rc == 0) q->started++;
    else log_debug("gb: catalog query to %s not started (%d)", d->id, rc);
    if (rc == 0 && info) {
        if (gb_query_start(g, d, GB_Q_INFO, NULL, NULL, NULL, NULL) != 0)
            log_debug("gb: DeviceInfo query to %s not started", d->id);
        else catq_spend(g);
    }
    q->starting = false;
}

static void catq_timer(struct timer_node *n, uint64_t now)
{
    struct gb_upper *g = container_of(n, struct gb_upper, catq.timer);
    struct gb_catq *q = &g->catq;
    uint32_t limit = (uint32_t)(g->cfg.catalog_concurrency > 0 ? g->cfg.catalog_concurrency : 1);
    if (!g->stopping && q->count && txn_admission_busy(&g->admission)) {
        q->paused++;
        catq_schedule_at(g, now + CATQ_BUSY_WAIT_MS);
        return;
    }
    while (!g->stopping && q->count && q->in_flight < limit) {
        if (!catq_credit(g, now)) {
            catq_schedule_at(g, catq_next_credit_at(g, now));
            break;
        }
        char id[GB_ID_LEN + 1];
        memcpy(id, q->ids[q->head], GB_ID_LEN);
        id[GB_ID_LEN] = '\0';
        struct gb_device *d = gb_device_find(g, id);
        /* The device names itself only in a DeviceInfo answer: ask once, while no name is known (it is kept in
         * the store, so a device that registers again is not asked again). */
        bool info = d && d->online && g->cfg.info_on_register && !gb_device_info_str(d, "device_name");
        if (info && q->in_flight && q->in_flight + 2 > limit) break; /* its turn comes when a slot more is free */
        q->head = (q->head + 1) % q->cap;
        q->count--;
        if (!d || !d->online) continue;
        catq_start(g, d, info);
    }
    if (!q->count && q->cap > 1024) {
        /* The storm is over: give back the ring it grew (20 B a device). */
        free(q->ids);
        q->ids = NULL;
        q->cap = q->head = 0;
    }
}

void gb_catq_free(struct gb_upper *g)
{
    if (g->catq.timer_ready) timer_stop(g->timers, &g->catq.timer);
    free(g->catq.ids);
    memset(&g->catq, 0, sizeof(g->catq));
}
