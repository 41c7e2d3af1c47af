/* gbsim_wheel.c — the simulator's timer wheel (see gbsim_int.h). */
#include <stdlib.h>

#include "app/gbsim_int.h"

int gbsim_wheel_init(struct gbsim_wheel *w, uint32_t nslots, uint32_t tick_ms, uint64_t now_ms, gbsim_wheel_cb cb,
                     void *user)
{
    w->slots = calloc(nslots, sizeof(*w->slots));
    if (!w->slots) return -1;
    for (uint32_t i = 0; i < nslots; i++) w->slots[i].next = w->slots[i].prev = &w->slots[i];
    w->mask = nslots - 1;
    w->tick_ms = tick_ms ? tick_ms : 1;
    w->cur_tick = now_ms / w->tick_ms;
    w->count = 0;
    w->cb = cb;
    w->user = user;
    return 0;
}

void gbsim_wheel_free(struct gbsim_wheel *w)
{
    free(w->slots);
    w->slots = NULL;
}

static void link_tail(struct gbsim_wheel_node *head, struct gbsim_wheel_node *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static void unlink_node(struct gbsim_wheel_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

void gbsim_wheel_add(struct gbsim_wheel *w, struct gbsim_wheel_node *n, uint64_t deadline_ms)
{
    if (gbsim_wheel_armed(n)) unlink_node(n);
    else w->count++;
    n->deadline_ms = deadline_ms;
    uint64_t tick = deadline_ms / w->tick_ms;
    if (tick < w->cur_tick) tick = w->cur_tick; /* due: the next tick run takes it */
    link_tail(&w->slots[tick & w->mask], n);
}

void gbsim_wheel_del(struct gbsim_wheel *w, struct gbsim_wheel_node *n)
{
    if (!gbsim_wheel_armed(n)) return;
    unlink_node(n);
    w->count--;
}

uint32_t gbsim_wheel_run(struct gbsim_wheel *w, uint64_t now_ms, uint32_t max)
{
    uint32_t fired = 0;
    /* A tick runs once it is over, so nothing fires before its deadline. */
    while ((w->cur_tick + 1) * w->tick_ms <= now_ms + 1) {
        uint64_t tick = w->cur_tick++;
        /* cur_tick moved first: whatever a callback arms for now lands in
         * the next slot, not in the list being walked. */
        struct gbsim_wheel_node *head = &w->slots[tick & w->mask];
        struct gbsim_wheel_node pending = {.next = &pending, .prev = &pending};
        if (head->next == head) continue;
        /* Splice the slot's list onto a local head, then take nodes one by
         * one: a callback may stop or re-arm any node, this one included. */
        pending.next = head->next;
        pending.prev = head->prev;
        pending.next->prev = &pending;
        pending.prev->next = &pending;
        head->next = head->prev = head;
        while (pending.next != &pending) {
            if (max && fired == max) {
                /* Out of budget: what is left of this tick goes back in
                 * front of its slot and the tick runs again next time. */
                pending.prev->next = head->next;
                head->next->prev = pending.prev;
                head->next = pending.next;
                pending.next->prev = head;
                w->cur_tick = tick;
                return fired;
            }
            struct gbsim_wheel_node *n = pending.next;
            unlink_node(n);
            if (n->deadline_ms / w->tick_ms > tick) {
                link_tail(&w->slots[(n->deadline_ms / w->tick_ms) & w->mask], n); /* a later round */
                continue;
            }
            w->count--;
            fired++;
            w->cb(n, now_ms, w->user);
        }
    }
    return fired;
}
