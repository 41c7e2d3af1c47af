/* timer.c — min-heap timer service (see timer.h). */
#include "base/timer.h"

#include <stdlib.h>

static bool earlier(const struct timer_node *a, const struct timer_node *b)
{
    return a->deadline_ms < b->deadline_ms || (a->deadline_ms == b->deadline_ms && a->order < b->order);
}

static void place(struct timer_service *ts, uint32_t i, struct timer_node *n)
{
    ts->heap[i] = n;
    n->heap_index = i;
}

static void sift_up(struct timer_service *ts, uint32_t i)
{
    struct timer_node *n = ts->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!earlier(n, ts->heap[parent])) break;
        place(ts, i, ts->heap[parent]);
        i = parent;
    }
    place(ts, i, n);
}

static void sift_down(struct timer_service *ts, uint32_t i)
{
    struct timer_node *n = ts->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, best = i;
        const struct timer_node *bn = n;
        if (l < ts->count && earlier(ts->heap[l], bn)) best = l, bn = ts->heap[l];
        if (r < ts->count && earlier(ts->heap[r], bn)) best = r;
        if (best == i) break;
        place(ts, i, ts->heap[best]);
        i = best;
    }
    place(ts, i, n);
}

void timer_service_init(struct timer_service *ts) { *ts = (struct timer_service){0}; }

void timer_service_free(struct timer_service *ts)
{
    for (uint32_t i = 0; i < ts->count; i++) ts->heap[i]->heap_index = UINT32_MAX;
    free(ts->heap);
    *ts = (struct timer_service){0};
}

void timer_node_init(struct timer_node *n) { *n = (struct timer_node){.heap_index = UINT32_MAX}; }

int timer_start(struct timer_service *ts, struct timer_node *n, uint64_t deadline_ms, timer_cb cb)
{
    if (timer_armed(n)) timer_stop(ts, n);
    if (ts->count == ts->cap) {
        uint32_t cap = ts->cap ? ts->cap * 2 : 256;
        struct timer_node **h = realloc(ts->heap, cap * sizeof(*h));
        if (!h) return -1;
        ts->heap = h;
        ts->cap = cap;
    }
    n->deadline_ms = deadline_ms;
    n->cb = cb;
    n->order = ts->next_order++;
    place(ts, ts->count++, n);
    sift_up(ts, n->heap_index);
    return 0;
}

void timer_stop(struct timer_service *ts, struct timer_node *n)
{
    if (!timer_armed(n)) return;
    uint32_t i = n->heap_index;
    n->heap_index = UINT32_MAX;
    ts->count--;
    if (i == ts->count) return;
    struct timer_node *last = ts->heap[ts->count];
    place(ts, i, last);
    if (i > 0 && earlier(last, ts->heap[(i - 1) / 2])) sift_up(ts, i);
    else sift_down(ts, i);
}

int timer_run(struct timer_service *ts, uint64_t now_ms)
{
    int fired = 0;
    if (now_ms > ts->now_ms) ts->now_ms = now_ms;
    while (ts->count && ts->heap[0]->deadline_ms <= now_ms) {
        struct timer_node *n = ts->heap[0];
        timer_stop(ts, n);
        n->cb(n, now_ms);
        fired++;
    }
    return fired;
}

uint64_t timer_next_deadline(const struct timer_service *ts)
{
    return ts->count ? ts->heap[0]->deadline_ms : UINT64_MAX;
}
