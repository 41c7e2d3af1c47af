/* pike.c — per-source request counting for the proxy (see pike.h).
 *
 * A base/assoc table: PIKE_SLOTS entries in buckets of PIKE_PROBE, the
 * bucket picked by a seeded hash of the address so a sender cannot aim its
 * sources at the bucket of a real one. */
#include "proxy/pike.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/rand.h>

#include "base/assoc.h"

struct pike_slot {
    uint8_t family;                   /* 0: free */
    uint8_t addr[16];
    uint32_t count;                   /* requests in the window */
    uint64_t start;                   /* when the window began */
};

struct proxy_pike {
    uint32_t limit, window_ms;
    uint64_t seed;
    struct assoc table;               /* struct pike_slot[PIKE_PROBE] per bucket */
};

struct proxy_pike *proxy_pike_new(uint32_t limit, uint32_t window_ms)
{
    struct proxy_pike *pk = calloc(1, sizeof(*pk));
    if (!pk) return NULL;
    pk->limit = limit;
    pk->window_ms = window_ms ? window_ms : 1;
    if (assoc_init(&pk->table, PIKE_SLOTS, PIKE_SLOTS, PIKE_PROBE, PIKE_PROBE * sizeof(struct pike_slot)) != 0 ||
        RAND_bytes((unsigned char *)&pk->seed, sizeof(pk->seed)) != 1) {
        proxy_pike_free(pk);
        return NULL;
    }
    return pk;
}

void proxy_pike_free(struct proxy_pike *pk)
{
    if (!pk) return;
    assoc_free(&pk->table);
    free(pk);
}

/* The address bytes of sa; 0 when it is neither IPv4 nor IPv6. */
static size_t addr_key(const struct sockaddr *sa, uint8_t out[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 16;
    }
    return 0;
}

/* FNV-1a from the seed, then splitmix64's finaliser (the bucket is the low bits). */
static uint64_t addr_hash(const struct proxy_pike *pk, const uint8_t *a, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ pk->seed;
    for (size_t i = 0; i < n; i++) h = (h ^ a[i]) * 0x100000001b3ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static bool slot_is(const struct pike_slot *s, int family, const uint8_t *a, size_t n)
{
    return s->family == family && !memcmp(s->addr, a, n);
}

static struct pike_slot *bucket_of(const struct proxy_pike *pk, const uint8_t *a, size_t n)
{
    return assoc_bucket(&pk->table, addr_hash(pk, a, n));
}

static struct pike_slot *find(struct pike_slot *b, int family, const uint8_t *a, size_t n)
{
    for (uint32_t i = 0; i < PIKE_PROBE; i++)
        if (slot_is(&b[i], family, a, n)) return &b[i];
    return NULL;
}

enum proxy_pike_verdict proxy_pike_check(struct proxy_pike *pk, const struct sockaddr *sa, uint64_t now_ms)
{
    uint8_t a[16] = {0};
    size_t n = addr_key(sa, a);
    if (!pk->limit || !n) return PROXY_PIKE_PASS;
    struct pike_slot *b = bucket_of(pk, a, n);
    struct pike_slot *s = find(b, sa->sa_family, a, n);
    if (!s) {
        /* A free or expired way, else the one with the oldest window. */
        struct pike_slot *victim = NULL;
        for (uint32_t i = 0; i < PIKE_PROBE; i++) {
            struct pike_slot *c = &b[i];
            if (!c->family || now_ms - c->start >= pk->window_ms) {
                victim = c;
                break;
            }
            if (!victim || c->start < victim->start) victim = c;
        }
        s = victim;
        memset(s, 0, sizeof(*s));
        s->family = (uint8_t)sa->sa_family;
        memcpy(s->addr, a, n);
        s->start = now_ms;
    } else if (now_ms - s->start >= pk->window_ms) {
        s->start = now_ms;
        s->count = 0;
    }
    if (s->count < UINT32_MAX) s->count++;
    if (s->count <= pk->limit) return PROXY_PIKE_PASS;
    return s->count == pk->limit + 1 ? PROXY_PIKE_REFUSE_FIRST : PROXY_PIKE_REFUSE;
}

uint32_t proxy_pike_count(const struct proxy_pike *pk, const struct sockaddr *sa)
{
    uint8_t a[16] = {0};
    size_t n = addr_key(sa, a);
    const struct pike_slot *s = n ? find(bucket_of(pk, a, n), sa->sa_family, a, n) : NULL;
    return s ? s->count : 0;
}
