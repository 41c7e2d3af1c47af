/* throttle.c — failed-attempt counting and lockouts (see throttle.h).
 *
 * One table holds three kinds of key: a source, a user, and a user+source
 * pair. An entry counts failures since window_start; reaching the limit sets
 * locked_until. The pair kind never locks: it only spaces reports out. When
 * a lock ends the count starts again from zero, so a locked-out source gets
 * max_failures fresh tries per lockout, never more. */
#include "auth/throttle.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/assoc.h"

#define THR_WAYS 8
#define THR_MAX_ENTRIES (1u << 24)

enum thr_kind { THR_SOURCE = 1, THR_USER = 2, THR_PAIR = 3 };

struct thr_entry {
    uint64_t key;           /* 0: free */
    uint32_t window_start;
    uint32_t locked_until;  /* meaningful while locked */
    uint32_t last_report;
    uint32_t count;         /* failures in the current window */
    uint32_t unreported;    /* failures (pair) or refusals (locked key) since the last report */
    bool locked, reported;
};

struct auth_throttle {
    struct auth_throttle_config cfg;
    uint64_t seed;
    struct assoc table;     /* struct thr_entry[THR_WAYS] per bucket */
};

/* Seconds from a to b on a wrapping clock (negative: b before a). */
static int32_t age_s(uint32_t from, uint32_t to) { return (int32_t)(to - from); }

struct auth_throttle *auth_throttle_new(const struct auth_throttle_config *cfg)
{
    struct auth_throttle *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->cfg = *cfg;
    if (!t->cfg.window_s) t->cfg.window_s = 60;
    if (!t->cfg.lockout_s) t->cfg.lockout_s = 60;
    uint32_t entries = t->cfg.entries ? t->cfg.entries : 65536;
    if (assoc_init(&t->table, entries, THR_MAX_ENTRIES, THR_WAYS, THR_WAYS * sizeof(struct thr_entry)) != 0 ||
        RAND_bytes((unsigned char *)&t->seed, sizeof t->seed) != 1) {
        auth_throttle_free(t);
        return NULL;
    }
    return t;
}

void auth_throttle_free(struct auth_throttle *t)
{
    if (!t) return;
    assoc_free(&t->table);
    free(t);
}

/* ---- keys ---- */

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return h;
}

/* splitmix64's finalizer: FNV alone leaves the low bits (the bucket) weak. */
static uint64_t finish(uint64_t h)
{
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h ? h : 1;
}

/* The address part that identifies a source: IPv4 (also mapped in IPv6),
 * or the /64 of an IPv6 address. */
static size_t source_bytes(const struct sockaddr *sa, uint8_t out[16])
{
    if (!sa) return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(a, mapped, 12)) {
            memcpy(out, a + 12, 4);
            return 4;
        }
        memcpy(out, a, 8);
        return 8;
    }
    return 0;
}

static uint64_t key_of(const struct auth_throttle *t, enum thr_kind kind, const struct sockaddr *peer, str_t realm,
                       str_t user)
{
    uint8_t k = (uint8_t)kind, ip[16];
    uint64_t h = mix(0xcbf29ce484222325ULL ^ t->seed, &k, 1);
    if (kind != THR_USER) {
        size_t n = source_bytes(peer, ip);
        h = mix(h, &n, sizeof n);
        h = mix(h, ip, n);
    }
    if (kind != THR_SOURCE) {
        h = mix(h, &realm.len, sizeof realm.len);
        h = mix(h, realm.s, realm.len);
        h = mix(h, user.s, user.len);
    }
    return finish(h);
}

/* ---- table ---- */

static bool lock_over(const struct thr_entry *e, uint32_t now)
{
    return !e->locked || age_s(e->locked_until, now) >= 0;
}

/* Nothing in e matters any more: no lock, no count, no recent report. */
static bool entry_idle(const struct auth_throttle *t, const struct thr_entry *e, uint32_t now)
{
    int32_t w = (int32_t)t->cfg.window_s;
    return e->key == 0 || (lock_over(e, now) && age_s(e->window_start, now) >= w &&
                           (!e->reported || age_s(e->last_report, now) >= w));
}

static struct thr_entry *find(struct auth_throttle *t, uint64_t key)
{
    struct thr_entry *b = assoc_bucket(&t->table, key);
    for (int i = 0; i < THR_WAYS; i++)
        if (b[i].key == key) return &b[i];
    return NULL;
}

/* How much an entry is worth keeping: 0 idle, 1 counting, 2 locked. */
static int worth(const struct auth_throttle *t, const struct thr_entry *e, uint32_t now)
{
    if (entry_idle(t, e, now)) return 0;
    return lock_over(e, now) ? 1 : 2;
}

/* The entry for key, made when missing by taking the least useful way:
 * idle first, then the oldest count, then the lock that ends first. */
static struct thr_entry *get(struct auth_throttle *t, uint64_t key, uint32_t now)
{
    struct thr_entry *b = assoc_bucket(&t->table, key);
    struct thr_entry *victim = NULL;
    int vw = 3;
    for (int i = 0; i < THR_WAYS; i++) {
        struct thr_entry *e = &b[i];
        if (e->key == key) return e;
        int w = worth(t, e, now);
        bool older = victim && (w == 2 ? age_s(e->locked_until, victim->locked_until) > 0
                                       : age_s(e->window_start, victim->window_start) > 0);
        if (w < vw || (w == vw && older)) {
            victim = e;
            vw = w;
        }
    }
    memset(victim, 0, sizeof *victim);
    victim->key = key;
    victim->window_start = now;
    return victim;
}

static void take_report(struct auth_throttle *t, struct thr_entry *e, uint32_t now, struct auth_throttle_note *out)
{
    if (e->reported && age_s(e->last_report, now) < (int32_t)t->cfg.window_s) return;
    out->report = true;
    out->count = e->unreported;
    e->unreported = 0;
    e->reported = true;
    e->last_report = now;
}

/* A lock that has run out: the key starts a fresh window. */
static void expire_lock(struct thr_entry *e, uint32_t now)
{
    if (e->locked && lock_over(e, now)) {
        e->locked = false;
        e->count = 0;
        e->window_start = now;
    }
}

static bool check_one(struct auth_throttle *t, uint64_t key, enum auth_throttle_lock kind, uint32_t now,
                      struct auth_throttle_note *out)
{
    struct thr_entry *e = find(t, key);
    if (!e) return false;
    expire_lock(e, now);
    if (!e->locked) return false;
    out->locked = kind;
    out->retry_after = (uint32_t)age_s(now, e->locked_until);
    e->unreported++;
    take_report(t, e, now, out);
    return true;
}

bool auth_throttle_locked(struct auth_throttle *t, const struct sockaddr *peer, str_t realm, str_t user,
                          uint32_t now, struct auth_throttle_note *out)
{
    memset(out, 0, sizeof *out);
    if (!t) return false;
    if (t->cfg.max_failures && check_one(t, key_of(t, THR_SOURCE, peer, realm, user), AUTH_THROTTLE_SOURCE, now, out))
        return true;
    return t->cfg.max_failures_user &&
           check_one(t, key_of(t, THR_USER, peer, realm, user), AUTH_THROTTLE_USER, now, out);
}

/* One more failure on a lockable key; true when it started a lock. */
static bool count_one(struct auth_throttle *t, uint64_t key, uint32_t max, uint32_t now)
{
    struct thr_entry *e = get(t, key, now);
    expire_lock(e, now);
    if (e->locked) return false; /* counted when it was locked */
    if (age_s(e->window_start, now) >= (int32_t)t->cfg.window_s || age_s(e->window_start, now) < 0) {
        e->window_start = now;
        e->count = 0;
    }
    if (++e->count < max) return false;
    e->locked = true;
    e->locked_until = now + t->cfg.lockout_s;
    /* The lock's refusals get their own report, not this failure's. */
    e->unreported = 0;
    e->reported = false;
    return true;
}

void auth_throttle_failed(struct auth_throttle *t, const struct sockaddr *peer, str_t realm, str_t user,
                          uint32_t now, struct auth_throttle_note *out)
{
    memset(out, 0, sizeof *out);
    if (!t) return;
    if (t->cfg.max_failures && count_one(t, key_of(t, THR_SOURCE, peer, realm, user), t->cfg.max_failures, now)) {
        out->locked = AUTH_THROTTLE_SOURCE;
        out->locked_now = true;
        out->retry_after = t->cfg.lockout_s;
    }
    if (t->cfg.max_failures_user &&
        count_one(t, key_of(t, THR_USER, peer, realm, user), t->cfg.max_failures_user, now) && !out->locked) {
        out->locked = AUTH_THROTTLE_USER;
        out->locked_now = true;
        out->retry_after = t->cfg.lockout_s;
    }
    struct thr_entry *pair = get(t, key_of(t, THR_PAIR, peer, realm, user), now);
    pair->unreported++;
    if (out->locked_now) pair->reported = false; /* a lockout is always worth a report */
    take_report(t, pair, now, out);
}
