/* ws_ticket.c — the single-use WebSocket ticket table (see ws_ticket.h). */
#include "api/ws_ticket.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TICKETS_CAP_MAX 65536u

struct ticket_slot {
    uint8_t bytes[API_TICKET_BYTES];
    uint64_t expires;        /* now_ms at which it stops being good */
    bool used;               /* holds an outstanding ticket */
};

struct api_tickets {
    struct ticket_slot *slots;
    unsigned cap;
    uint32_t ttl_ms;
    struct api_tickets_stats stats;
};

struct api_tickets *api_tickets_new(unsigned cap, uint32_t ttl_ms)
{
    if (!cap || cap > TICKETS_CAP_MAX || !ttl_ms) return NULL;
    struct api_tickets *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->slots = calloc(cap, sizeof(*t->slots));
    if (!t->slots) {
        free(t);
        return NULL;
    }
    t->cap = cap;
    t->ttl_ms = ttl_ms;
    return t;
}

void api_tickets_free(struct api_tickets *t)
{
    if (!t) return;
    OPENSSL_cleanse(t->slots, (size_t)t->cap * sizeof(*t->slots));
    free(t->slots);
    free(t);
}

/* A free or expired slot, else the one that expires first (evicted). */
static struct ticket_slot *slot_for_new(struct api_tickets *t, uint64_t now_ms)
{
    struct ticket_slot *oldest = NULL;
    for (unsigned i = 0; i < t->cap; i++) {
        struct ticket_slot *s = &t->slots[i];
        if (!s->used) return s;
        if (s->expires <= now_ms) {
            s->used = false;
            t->stats.outstanding--;
            return s;
        }
        if (!oldest || s->expires < oldest->expires) oldest = s;
    }
    oldest->used = false;
    t->stats.outstanding--;
    t->stats.evicted++;
    return oldest;
}

int api_tickets_issue(struct api_tickets *t, uint64_t now_ms, char out[API_TICKET_TEXT + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[API_TICKET_BYTES];
    if (RAND_bytes(b, sizeof(b)) != 1) return -EIO;
    struct ticket_slot *s = slot_for_new(t, now_ms);
    memcpy(s->bytes, b, sizeof(b));
    s->expires = now_ms + t->ttl_ms;
    s->used = true;
    t->stats.outstanding++;
    t->stats.issued++;
    for (size_t i = 0; i < sizeof(b); i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[API_TICKET_TEXT] = '\0';
    OPENSSL_cleanse(b, sizeof(b));
    return 0;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int api_tickets_redeem(struct api_tickets *t, uint64_t now_ms, const char *ticket, size_t len)
{
    uint8_t b[API_TICKET_BYTES];
    if (!ticket || len != API_TICKET_TEXT) goto refused;
    for (size_t i = 0; i < sizeof(b); i++) {
        int hi = hex_val(ticket[2 * i]), lo = hex_val(ticket[2 * i + 1]);
        if (hi < 0 || lo < 0) goto refused;
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    /* Every slot is compared, matched or not, so the time taken says
     * nothing about which bytes of which ticket were right. */
    struct ticket_slot *hit = NULL;
    for (unsigned i = 0; i < t->cap; i++) {
        struct ticket_slot *s = &t->slots[i];
        bool same = CRYPTO_memcmp(s->bytes, b, sizeof(b)) == 0;
        if (same && s->used) hit = s;
    }
    if (!hit) goto refused;
    hit->used = false;             /* used up, good or expired */
    t->stats.outstanding--;
    if (hit->expires <= now_ms) goto refused;
    t->stats.redeemed++;
    return 1;
refused:
    t->stats.refused++;
    return 0;
}

uint32_t api_tickets_ttl_ms(const struct api_tickets *t) { return t->ttl_ms; }

void api_tickets_get_stats(const struct api_tickets *t, struct api_tickets_stats *out) { *out = t->stats; }
