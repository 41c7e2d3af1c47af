/* natping.c — OPTIONS pings for UDP bindings behind NAT (see natping.h). */
#include "registrar/natping.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/sbuf.h"
#include "base/timer.h"
#include "registrar/location.h"
#include "sip/msg.h"

#define NATPING_TICK_MS 1000
#define NATPING_MAX_REMOVE 256      /* bindings removed per second at most */

/* Pings in a row a binding has not answered, by a 64-bit key of (AoR,
 * contact) that also rides in the ping's branch. Open addressing, linear
 * probing; key 0 is an empty slot, tombstones are not needed because a
 * whole round's stale entries are dropped by rebuilding the table. */
struct np_entry {
    uint64_t key;
    uint32_t unanswered;
    uint32_t seen_round;        /* last round the binding was pinged in */
};

struct np_gone {
    char *aor, *contact;
};

struct natping {
    struct natping_deps d;
    struct timer_node timer;
    uint32_t interval_s;
    uint64_t tick;              /* seconds since start: picks this second's share */
    uint64_t seq;               /* makes each ping's branch and Call-ID unique */
    uint64_t sent, answered, send_errors, removed;
    uint32_t max_lost;
    uint32_t round;             /* full intervals so far */
    struct np_entry *tab;
    size_t cap, used;           /* cap: a power of two, or 0 */
    struct np_gone gone[NATPING_MAX_REMOVE];
    size_t n_gone;
    sbuf_t sb;
};

static str_t unbracket(str_t h)
{
    if (h.len >= 2 && h.s[0] == '[' && h.s[h.len - 1] == ']') return str_make(h.s + 1, h.len - 2);
    return h;
}

/* RFC 1918, RFC 6598 (carrier-grade NAT), link-local; IPv6 unique-local
 * and link-local: addresses a NAT hides. */
static bool addr_private(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
        return b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
               (b[0] == 100 && (b[1] & 0xc0) == 64) || (b[0] == 169 && b[1] == 254);
    }
    if (a->ss_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(b, mapped, sizeof mapped)) {
            struct sockaddr_storage v4 = {0};
            v4.ss_family = AF_INET;
            memcpy(&((struct sockaddr_in *)&v4)->sin_addr, b + 12, 4);
            return addr_private(&v4);
        }
        return (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80);
    }
    return false;
}

bool natping_request_natted(const struct sip_via *via, const struct sip_uri *contact,
                            const struct sockaddr_storage *src)
{
    if (!src) return false;
    struct sockaddr_storage a;
    if (via && via->host.len) {
        /* nat_uac_test 2 and 16: the sent-by is not where it came from. */
        str_t h = unbracket(via->host);
        if (transport_addr_parse(h.s, h.len, via->port ? via->port : 5060, &a) != 0) return true; /* a name */
        if (!transport_addr_equal(&a, src)) return true;
    }
    /* nat_uac_test 1/32: a private Contact seen from a public source. */
    str_t ch = contact ? unbracket(contact->host) : STR_NULL;
    return ch.len && transport_addr_parse(ch.s, ch.len, 0, &a) == 0 && addr_private(&a) && !addr_private(src);
}

static uint64_t binding_key(const struct location_binding *b)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *s = b->aor; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    h = (h ^ 0x1f) * 0x100000001b3ULL;
    for (const char *s = b->contact; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h ? h : 1;
}

static struct np_entry *slot_for(struct np_entry *tab, size_t cap, uint64_t key)
{
    size_t i = (size_t)(key ^ key >> 29) & (cap - 1);
    while (tab[i].key && tab[i].key != key) i = (i + 1) & (cap - 1);
    return &tab[i];
}

/* Rebuilds the table with the entries seen since round min_round (the
 * others belong to bindings gone or no longer behind NAT). */
static int rebuild(struct natping *np, size_t cap, uint32_t min_round)
{
    struct np_entry *tab = calloc(cap, sizeof(*tab));
    if (!tab) return -1;
    size_t used = 0;
    for (size_t i = 0; i < np->cap; i++) {
        const struct np_entry *e = &np->tab[i];
        if (!e->key || e->seen_round < min_round) continue;
        *slot_for(tab, cap, e->key) = *e;
        used++;
    }
    free(np->tab);
    np->tab = tab;
    np->cap = cap;
    np->used = used;
    return 0;
}

static struct np_entry *entry(struct natping *np, uint64_t key, bool create)
{
    if (np->cap) {
        struct np_entry *e = slot_for(np->tab, np->cap, key);
        if (e->key || !create) return e->key ? e : NULL;
    }
    if (!create) return NULL;
    if ((np->used + 1) * 2 > np->cap && rebuild(np, np->cap ? np->cap * 2 : 64, 0) != 0) return NULL;
    struct np_entry *e = slot_for(np->tab, np->cap, key);
    *e = (struct np_entry){.key = key};
    np->used++;
    return e;
}

/* One stateless OPTIONS to the binding's source address; the branch
 * carries the binding's key so that the answer finds its entry. */
static void ping(struct natping *np, const struct location_binding *b, uint64_t key)
{
    const struct sip_local *l = np->d.local;
    char host[sizeof(l->host) + 2];
    sip_host_for_header(l->host, host, sizeof(host));
    sbuf_t *s = &np->sb;
    sbuf_clear(s);
    np->seq++;
    char tag[17];
    ua_new_tag(np->d.ua, tag);
    sbuf_printf(s,
                "OPTIONS %s SIP/2.0\r\n"
                "Via: SIP/2.0/UDP %s:%u;branch=" NATPING_BRANCH_PREFIX "%016llx.%llx;rport\r\n"
                "Max-Forwards: 70\r\n"
                "From: <sip:ping@%s>;tag=%s\r\n"
                "To: <%s>\r\n"
                "Call-ID: np%llx.%s@%s\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n",
                b->contact, host, (unsigned)l->port[SIP_TRANSPORT_UDP], (unsigned long long)key,
                (unsigned long long)np->seq,
                l->domain[0] ? l->domain : host, tag, b->contact,
                (unsigned long long)np->seq, tag, host);
    if (s->failed) return;
    struct transport_dest d;
    memset(&d, 0, sizeof(d));
    d.proto = SIP_TRANSPORT_UDP;
    memcpy(&d.addr, &b->addr, b->addr.sa.sa_family == AF_INET6 ? sizeof(b->addr.in6) : sizeof(b->addr.in));
    if (np->d.send(np->d.send_arg, &d, s->data, s->len) == 0) np->sent++;
    else np->send_errors++;
}

struct round {
    struct natping *np;
    uint32_t slot;
};

static int visit(void *arg, const struct location_binding *b)
{
    struct round *r = arg;
    if (!(b->flags & LOCATION_FLAG_NAT) || b->transport != LOCATION_TRANSPORT_UDP) return 0;
    if (b->addr.sa.sa_family != AF_INET && b->addr.sa.sa_family != AF_INET6) return 0;
    struct natping *np = r->np;
    if (str_hash(str_from_cstr(b->contact)) % np->interval_s != r->slot) return 0;
    uint64_t key = binding_key(b);
    struct np_entry *e = entry(np, key, true);
    if (e) {
        e->seen_round = np->round;
        if (np->max_lost && e->unanswered >= np->max_lost) {
            /* Collected now, removed after the walk (the walk must not
             * change the location). */
            if (np->n_gone < NATPING_MAX_REMOVE) {
                struct np_gone *g = &np->gone[np->n_gone];
                g->aor = strdup(b->aor);
                g->contact = strdup(b->contact);
                if (g->aor && g->contact) np->n_gone++;
                else free(g->aor), free(g->contact);
            }
            return 0;
        }
        e->unanswered++;
    }
    ping(np, b, key);
    return 0;
}

static void on_tick(struct timer_node *n, uint64_t now)
{
    struct natping *np = container_of(n, struct natping, timer);
    struct location *loc = np->d.location;
    /* Every second walks the bindings (no state to keep in step with the
     * location service), pinging the share whose contact hashes to it; not
     * at all while no binding is behind NAT. */
    struct round r = {np, (uint32_t)(np->tick % np->interval_s)};
    if (r.slot == 0) {
        np->round++;
        /* Entries not pinged for two rounds: their binding is gone. */
        if (np->cap && np->round > 2) rebuild(np, np->cap, np->round - 2);
    }
    if (loc && location_nat_count(loc)) location_foreach(loc, visit, &r);
    for (size_t i = 0; i < np->n_gone; i++) {
        struct np_gone *g = &np->gone[i];
        log_info("registrar: %s (%s) answered none of its last %u NAT pings: removed", g->aor, g->contact,
                 np->max_lost);
        if (loc && location_remove(loc, str_from_cstr(g->aor), str_from_cstr(g->contact),
                                           LOCATION_REMOVED_UNREACHABLE, NULL, NULL) >= 0)
            np->removed++;
        free(g->aor);
        free(g->contact);
    }
    np->n_gone = 0;
    np->tick++;
    timer_start(np->d.timers, &np->timer, now + NATPING_TICK_MS, on_tick);
}

struct natping *natping_new(const struct natping_deps *d)
{
    uint32_t interval = d->interval_s;
    if (interval == 0) return NULL;
    struct natping *np = calloc(1, sizeof(*np));
    if (!np) {
        log_error("registrar: no memory for NAT pings: bindings behind NAT are not kept open");
        return NULL;
    }
    np->d = *d;
    np->interval_s = interval;
    np->max_lost = d->max_lost;
    sbuf_init(&np->sb);
    timer_node_init(&np->timer);
    if (timer_start(d->timers, &np->timer, timer_now(d->timers) + NATPING_TICK_MS, on_tick) != 0) {
        log_error("registrar: cannot start the NAT ping timer");
        sbuf_free(&np->sb);
        free(np);
        return NULL;
    }
    log_info("registrar: OPTIONS pings every %u s to UDP bindings behind NAT", interval);
    return np;
}

void natping_set_location(struct natping *np, struct location *loc)
{
    if (np) np->d.location = loc;
}

void natping_free(struct natping *np)
{
    if (!np) return;
    timer_stop(np->d.timers, &np->timer);
    for (size_t i = 0; i < np->n_gone; i++) free(np->gone[i].aor), free(np->gone[i].contact);
    free(np->tab);
    sbuf_free(&np->sb);
    free(np);
}

int natping_on_response(struct natping *np, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!np || !m || m->is_request || m->cseq.method != SIP_OPTIONS) return 0;
    const struct sip_header *h = sip_msg_header(m, SIP_HDR_VIA);
    if (!h) return 0;
    struct sip_via v;
    if (sip_via_parse(h->value, &v) != 0) return 0;
    size_t pl = sizeof(NATPING_BRANCH_PREFIX) - 1;
    if (v.branch.len <= pl || memcmp(v.branch.s, NATPING_BRANCH_PREFIX, pl) != 0) return 0;
    np->answered++;
    /* Any answer (even 4xx/5xx: the UA is there) clears the count. */
    uint64_t key = 0;
    size_t i = pl;
    for (; i < v.branch.len && i < pl + 16; i++) {
        char ch = v.branch.s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) break;
        key = key << 4 | (uint64_t)d;
    }
    struct np_entry *e = i == pl + 16 ? entry(np, key, false) : NULL;
    if (e) e->unanswered = 0;
    log_debug("registrar: NAT ping answered %d by %s", m->status, rx->src_text);
    return 1;
}

void natping_refreshed(struct natping *np, const struct location_binding *b)
{
    struct np_entry *e = np ? entry(np, binding_key(b), false) : NULL;
    if (e) e->unanswered = 0;
}

void natping_stats_json(const struct natping *np, json_t *o)
{
    json_object_set_new(o, "nat_pings_sent", json_integer(np ? (json_int_t)np->sent : 0));
    json_object_set_new(o, "nat_pings_answered", json_integer(np ? (json_int_t)np->answered : 0));
    size_t nat = np && np->d.location ? location_nat_count(np->d.location) : 0;
    json_object_set_new(o, "nat_bindings", json_integer((json_int_t)nat));
    json_object_set_new(o, "nat_unreachable_removed", json_integer(np ? (json_int_t)np->removed : 0));
}
