/* location.c — the location service (see location.h).
 *
 * Layout: a hash table (base/htable) of AoR records (struct aor), each
 * holding a short singly-linked list of its bindings sorted by q. Every
 * binding is one allocation — the public struct, its timer node, the list
 * links, then its strings packed behind it — so a binding costs one malloc
 * and one free. A second table indexes bindings by conn_id, so a lost
 * connection finds its bindings without a scan.
 *
 * An update never edits a binding in place: it builds a new object and swaps
 * it in. That keeps string packing simple and makes location_update easy to
 * keep atomic: every allocation (AoR record, new bindings, their timers)
 * happens before anything visible changes, so a failure leaves the location
 * as it was.
 *
 * Write-behind refreshes: a REGISTER that only renews a binding (same
 * contact, flow, source, path, instance, q and flags; a new expiry, CSeq or
 * Call-ID) is not written before its 200 when write_behind_ms > 0. The
 * binding goes on a dirty list instead, and one timer writes every dirty
 * binding at most write_behind_ms later in one batch (one transaction). A
 * registrar's steady state is refreshes, so at ordinary rates this takes a
 * commit, and the loop turn that delivers it, off almost every REGISTER.
 * What a crash can cost: the refreshes of the last write_behind_ms; their
 * rows keep the previous expiry (still in the future unless the binding was
 * about to expire). New bindings, changed routes and removals are still
 * committed before their answer. */
#include "registrar/location.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/htable.h"
#include "base/log.h"
#include "transport/transport.h"

struct aor {
    struct hnode node;                /* in loc->aors, under str_hash(name) */
    struct location *loc;
    struct binding *bindings;         /* q descending, newest first among equals */
    uint32_t count;
    uint32_t len;                     /* <= LOCATION_MAX_AOR */
    char name[];
};

struct binding {
    struct location_binding pub;
    struct timer_node timer;
    struct binding *next;             /* in its AoR's list */
    struct hnode by_conn;             /* in loc->conns, when pub.conn_id != 0 */
    struct aor *aor;
    uint64_t row_seq;                 /* the store op that last wrote its row as it routes now
                                         (store_submitted numbering; 0: loaded, or none) */
    struct binding *dirty_next;       /* in loc->dirty when dirty_pprev != NULL */
    struct binding **dirty_pprev;
    char strings[];
};

struct location {
    struct timer_service *timers;
    struct store *store;
    struct location_callbacks cb;
    struct htable aors;               /* struct aor by name */
    struct htable conns;              /* struct binding by conn_id */
    size_t binding_count;
    size_t nat_count;                 /* bindings with LOCATION_FLAG_NAT */
    uint32_t max_per_aor, max_total;
    uint32_t write_behind_ms;         /* 0: every refresh is written before its answer */
    struct binding *dirty;            /* refreshed, not yet written */
    size_t dirty_count;
    struct timer_node flush_timer;    /* armed while dirty is non-empty */
};

#define INITIAL_BUCKETS 256

/* ---- Names. */

const char *location_reason_name(enum location_reason r)
{
    switch (r) {
    case LOCATION_REMOVED_UNREGISTER: return "unregister";
    case LOCATION_REMOVED_EXPIRED: return "expired";
    case LOCATION_REMOVED_TRANSPORT_LOST: return "transport-lost";
    case LOCATION_REMOVED_KICKED: return "kicked";
    case LOCATION_REMOVED_REPLACED: return "replaced";
    case LOCATION_REMOVED_UNREACHABLE: return "unreachable";
    case LOCATION_REMOVED_FLOW_FAILED: return "flow-failed";
    }
    return "unknown";
}

static const char *const transport_names[] = {"udp", "tcp", "tls", "ws", "wss"};
#define TRANSPORT_COUNT (sizeof(transport_names) / sizeof(transport_names[0]))

const char *location_transport_name(enum location_transport t)
{
    return (unsigned)t < TRANSPORT_COUNT ? transport_names[t] : "udp";
}

int location_transport_from_name(const char *name)
{
    for (size_t i = 0; name && i < TRANSPORT_COUNT; i++)
        if (strcasecmp(name, transport_names[i]) == 0) return (int)i;
    return -1;
}

/* ---- Life cycle. */

/* Allocates the first bucket array now: after it an htable insert cannot
 * fail (a failed growth only lengthens chains), which keeps location_update
 * atomic — nothing can fail once it starts changing the tables. */
static int table_prime(struct htable *t)
{
    struct hnode probe;
    htable_init(t);
    t->min_buckets = INITIAL_BUCKETS;
    if (htable_insert(t, &probe, 0) != 0) return -1;
    htable_remove(t, &probe);
    return 0;
}

/* ---- Dirty list (write-behind refreshes). */

static void dirty_unlink(struct location *loc, struct binding *b)
{
    if (!b->dirty_pprev) return;
    *b->dirty_pprev = b->dirty_next;
    if (b->dirty_next) b->dirty_next->dirty_pprev = b->dirty_pprev;
    b->dirty_next = NULL;
    b->dirty_pprev = NULL;
    loc->dirty_count--;
}

static int free_aor(struct hnode *n, void *arg)
{
    struct location *loc = arg;
    struct aor *a = container_of(n, struct aor, node);
    struct binding *b = a->bindings;
    while (b) {
        struct binding *bn = b->next;
        timer_stop(loc->timers, &b->timer);
        dirty_unlink(loc, b);
        free(b);
        b = bn;
    }
    free(a);
    return 0;
}

struct location *location_new(struct timer_service *timers, struct store *store,
                              const struct location_callbacks *cb)
{
    if (!timers) return NULL;
    struct location *loc = calloc(1, sizeof(*loc));
    if (!loc) return NULL;
    if (table_prime(&loc->aors) != 0 || table_prime(&loc->conns) != 0) {
        htable_free(&loc->aors);
        htable_free(&loc->conns);
        free(loc);
        return NULL;
    }
    loc->timers = timers;
    loc->store = store;
    if (cb) loc->cb = *cb;
    loc->max_per_aor = LOCATION_DEFAULT_MAX_PER_AOR;
    timer_node_init(&loc->flush_timer);
    return loc;
}

void location_free(struct location *loc)
{
    if (!loc) return;
    timer_stop(loc->timers, &loc->flush_timer);
    htable_foreach(&loc->aors, free_aor, loc);
    htable_free(&loc->aors);
    htable_free(&loc->conns);
    free(loc);
}

void location_set_limits(struct location *loc, uint32_t max_per_aor, uint32_t max_total)
{
    loc->max_per_aor = max_per_aor;
    loc->max_total = max_total;
}

size_t location_count(const struct location *loc) { return loc->binding_count; }

size_t location_nat_count(const struct location *loc) { return loc->nat_count; }
size_t location_aor_count(const struct location *loc) { return htable_count(&loc->aors); }

/* ---- AoR table. */

static struct aor *aor_find(const struct location *loc, str_t key)
{
    for (struct hnode *n = htable_first(&loc->aors, str_hash(key)); n; n = htable_next(n)) {
        struct aor *a = container_of(n, struct aor, node);
        if (a->len == key.len && memcmp(a->name, key.s, key.len) == 0) return a;
    }
    return NULL;
}

static struct aor *aor_alloc(struct location *loc, str_t key)
{
    struct aor *a = calloc(1, sizeof(*a) + key.len + 1);
    if (!a) return NULL;
    memcpy(a->name, key.s, key.len);
    a->name[key.len] = '\0';
    a->len = (uint32_t)key.len;
    a->loc = loc;
    return a;
}

/* Cannot fail: the table was primed in location_new. */
static void aor_insert(struct location *loc, struct aor *a)
{
    htable_insert(&loc->aors, &a->node, str_hash(str_make(a->name, a->len)));
}

static void aor_remove(struct location *loc, struct aor *a) { htable_remove(&loc->aors, &a->node); }

/* ---- Bindings in their AoR. */

static struct binding *binding_find(const struct aor *a, str_t contact)
{
    if (!a) return NULL;
    for (struct binding *b = a->bindings; b; b = b->next)
        if (str_eq(str_from_cstr(b->pub.contact), contact)) return b;
    return NULL;
}

/* RFC 5626 §6: a binding with the same instance-id and reg-id is the same
 * flow registration, whatever its contact. */
static struct binding *binding_find_instance(const struct aor *a, str_t instance, uint32_t reg_id,
                                             const struct binding *except)
{
    if (!a || !instance.len || !reg_id) return NULL;
    for (struct binding *b = a->bindings; b; b = b->next)
        if (b != except && b->pub.reg_id == reg_id && str_eq(str_from_cstr(b->pub.instance), instance))
            return b;
    return NULL;
}

static void aor_link(struct aor *a, struct binding *b)
{
    struct binding **p = &a->bindings;
    while (*p && ((*p)->pub.q1000 > b->pub.q1000 ||
                  ((*p)->pub.q1000 == b->pub.q1000 && (*p)->pub.received_wall_ms > b->pub.received_wall_ms)))
        p = &(*p)->next;
    b->next = *p;
    *p = b;
    b->aor = a;
    b->pub.aor = a->name;
    a->count++;
}

static void aor_unlink(struct aor *a, struct binding *b)
{
    struct binding **p = &a->bindings;
    while (*p && *p != b) p = &(*p)->next;
    if (*p) {
        *p = b->next;
        a->count--;
    }
    b->next = NULL;
}

/* ---- Connection index. */

static uint32_t conn_hash(uint64_t id)
{
    /* splitmix64 finaliser: conn ids are sequential, spread them */
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ULL;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebULL;
    id ^= id >> 31;
    return (uint32_t)id;
}

/* Cannot fail: the table was primed in location_new. */
static void conn_link(struct location *loc, struct binding *b)
{
    if (!b->pub.conn_id) return;
    htable_insert(&loc->conns, &b->by_conn, conn_hash(b->pub.conn_id));
}

static void conn_unlink(struct location *loc, struct binding *b) { htable_remove(&loc->conns, &b->by_conn); }


/* ---- Persistence: every change becomes a store op; a caller waiting for
 * the commit gets one callback after the last of its ops. */

struct pending_done {
    store_done_cb cb;
    void *arg;
    int refs;
    int status;
};

struct persist {
    struct location *loc;
    struct store *store;
    struct pending_done *pd;          /* NULL when nobody waits */
    bool deferred;                    /* a refresh went on the dirty list */
    uint64_t row_seq;                 /* ... whose row is committed once this op is (0: already) */
};

static void pending_release(struct pending_done *pd, int status)
{
    if (status && !pd->status) pd->status = status;
    if (--pd->refs == 0) {
        pd->cb(pd->arg, pd->status);
        free(pd);
    }
}

static void pending_op_done(void *arg, int status) { pending_release(arg, status); }

static void persist_submit(struct persist *ps, struct store_op *op, const char *what, const char *aor)
{
    int rc;
    if (ps->pd) {
        ps->pd->refs++;
        rc = store_submit(ps->store, op, pending_op_done, ps->pd);
        if (rc < 0) pending_release(ps->pd, rc); /* refs stays >= 1: no callback yet */
    } else {
        rc = store_submit(ps->store, op, NULL, NULL);
    }
    if (rc < 0) log_error("location: cannot persist %s for %s: %s", what, aor, strerror(-rc));
}

static void binding_to_row(const struct binding *b, struct store_binding *row)
{
    *row = (struct store_binding){
        .aor = b->pub.aor,
        .contact = b->pub.contact,
        .expires_at = b->pub.expires_wall_ms,
        .q1000 = b->pub.q1000,
        .call_id = b->pub.call_id,
        .cseq = b->pub.cseq,
        .transport = location_transport_name(b->pub.transport),
        .remote = b->pub.remote,
        .conn_id = b->pub.conn_id,
        .path = b->pub.path,
        .user_agent = b->pub.user_agent,
        .instance = b->pub.instance,
        .reg_id = b->pub.reg_id,
        .flags = b->pub.flags,
        .received_at = b->pub.received_wall_ms,
    };
}

/* Writes b's row (the refresh it may carry too). */
static void persist_row(struct persist *ps, struct binding *b)
{
    if (!ps->store) return;
    dirty_unlink(ps->loc, b); /* this write carries the refresh too */
    struct store_binding row;
    binding_to_row(b, &row);
    persist_submit(ps, store_op_binding_upsert(&row), "binding", b->pub.aor);
}

/* Writes b's row as it now routes: a refresh of b answered before this op
 * commits would promise a binding a crash could still lose (persist_end). */
static void persist_upsert(struct persist *ps, struct binding *b)
{
    if (!ps->store) return;
    persist_row(ps, b);
    b->row_seq = store_submitted(ps->store);
}

static void persist_delete(struct persist *ps, const struct binding *b)
{
    if (!ps->store) return;
    persist_submit(ps, store_op_binding_delete(b->pub.aor, b->pub.contact), "binding removal", b->pub.aor);
}

/* Allocates the waiter (before anything changes, so failure is clean). */
static int persist_begin(struct persist *ps, struct location *loc, store_done_cb cb, void *arg)
{
    *ps = (struct persist){.loc = loc, .store = loc->store};
    if (!cb || !loc->store) return 0;
    ps->pd = malloc(sizeof(*ps->pd));
    if (!ps->pd) return LOCATION_ERR_NOMEM;
    *ps->pd = (struct pending_done){cb, arg, 1, 0};
    return 0;
}

/* Drops the waiter's own reference: the callback fires after the last op. */
static void persist_end(struct persist *ps, store_done_cb cb, void *arg)
{
    if (!cb) return;
    if (!ps->store) {
        cb(arg, 0);
        return;
    }
    if (ps->pd->refs == 1) {
        /* Nothing written, only write-behind refreshes: answer now (the
         * common case) unless the row of one of them is still being written
         * (a binding added or re-routed just before): then wait for what is
         * queued before, as for any answer. Other work in flight (the
         * flush's batch of refreshes, other AoRs' writes) does not hold it
         * up: the refreshed rows are committed already, with their older
         * expiry. */
        if (ps->deferred && store_completed(ps->store) >= ps->row_seq) {
            free(ps->pd);
            cb(arg, 0);
            return;
        }
        persist_submit(ps, store_op_barrier(), "barrier", "-");
    }
    pending_release(ps->pd, 0);
}

static void persist_abort(struct persist *ps) { free(ps->pd); }

/* ---- Write-behind. */

/* Writes every dirty binding (one upsert each; the store puts what one loop
 * turn submits into one transaction). */
void location_flush(struct location *loc)
{
    if (!loc) return;
    timer_stop(loc->timers, &loc->flush_timer);
    struct persist ps = {.loc = loc, .store = loc->store};
    while (loc->dirty) persist_row(&ps, loc->dirty); /* unlinks it; the row routes as before */
}

static void on_flush(struct timer_node *node, uint64_t now_ms)
{
    (void)now_ms;
    location_flush(container_of(node, struct location, flush_timer));
}

/* Same route as before: only the expiry, CSeq, Call-ID and arrival time
 * differ, so the stored row still routes calls the same way. */
static bool same_route(const struct binding *a, const struct binding *b)
{
    const struct location_binding *x = &a->pub, *y = &b->pub;
    return x->conn_id == y->conn_id && x->transport == y->transport && x->flags == y->flags &&
           x->q1000 == y->q1000 && x->reg_id == y->reg_id && strcmp(x->remote, y->remote) == 0 &&
           strcmp(x->path, y->path) == 0 && strcmp(x->instance, y->instance) == 0 &&
           strcmp(x->user_agent, y->user_agent) == 0;
}

/* Puts b on the dirty list (instead of writing it now) when it renews old
 * and write-behind is on; false when it must be written now. */
static bool defer_refresh(struct location *loc, const struct binding *old, struct binding *b, uint64_t now_ms)
{
    if (!loc->write_behind_ms || !loc->store || !old || !same_route(old, b)) return false;
    b->row_seq = old->row_seq; /* the same row */
    if (!timer_armed(&loc->flush_timer) &&
        timer_start(loc->timers, &loc->flush_timer, now_ms + loc->write_behind_ms, on_flush) != 0)
        return false;
    b->dirty_next = loc->dirty;
    if (loc->dirty) loc->dirty->dirty_pprev = &b->dirty_next;
    b->dirty_pprev = &loc->dirty;
    loc->dirty = b;
    loc->dirty_count++;
    return true;
}

void location_set_write_behind(struct location *loc, uint32_t ms)
{
    loc->write_behind_ms = ms;
    if (!ms) location_flush(loc);
}

size_t location_dirty_count(const struct location *loc) { return loc->dirty_count; }

/* ---- Removing. */

/* Unlinks and frees b, reporting it (and the AoR going offline). When
 * persist is non-NULL the removal is written to the store. */
static void binding_remove(struct location *loc, struct binding *b, enum location_reason reason,
                           struct persist *persist)
{
    struct aor *a = b->aor;
    timer_stop(loc->timers, &b->timer);
    aor_unlink(a, b);
    conn_unlink(loc, b);
    loc->binding_count--;
    if (b->pub.flags & LOCATION_FLAG_NAT) loc->nat_count--;
    dirty_unlink(loc, b);
    if (persist) persist_delete(persist, b);
    if (loc->cb.binding_removed) loc->cb.binding_removed(loc->cb.arg, &b->pub, reason);
    free(b);
    if (a->count == 0) {
        if (loc->cb.aor_offline) loc->cb.aor_offline(loc->cb.arg, a->name, reason);
        aor_remove(loc, a);
        free(a);
    }
}

static void on_expire(struct timer_node *node, uint64_t now_ms)
{
    (void)now_ms;
    struct binding *b = container_of(node, struct binding, timer);
    struct location *loc = b->aor->loc;
    log_debug("location: %s -> %s expired", b->pub.aor, b->pub.contact);
    struct persist ps = {.loc = loc, .store = loc->store};
    binding_remove(loc, b, LOCATION_REMOVED_EXPIRED, &ps);
}

/* ---- Building bindings. */

struct binding_fields {
    str_t contact, call_id, remote, path, user_agent, instance;
    uint64_t expires_ms;
    int64_t expires_wall_ms, received_wall_ms;
    uint64_t conn_id;
    union location_addr addr;
    uint32_t cseq, reg_id;
    uint16_t q1000;
    uint8_t transport, flags;
};

static const char *pack(char **cur, str_t s)
{
    char *p = *cur;
    if (s.len) memcpy(p, s.s, s.len);
    p[s.len] = '\0';
    *cur += s.len + 1;
    return p;
}

/* Allocates a binding and arms its timer; not yet linked anywhere. */
static struct binding *binding_alloc(struct location *loc, const struct binding_fields *f)
{
    size_t n = f->contact.len + f->call_id.len + f->remote.len + f->path.len + f->user_agent.len +
               f->instance.len + 6;
    struct binding *b = malloc(sizeof(*b) + n);
    if (!b) return NULL;
    char *cur = b->strings;
    b->pub = (struct location_binding){
        .aor = "",
        .contact = pack(&cur, f->contact),
        .call_id = pack(&cur, f->call_id),
        .remote = pack(&cur, f->remote),
        .path = pack(&cur, f->path),
        .user_agent = pack(&cur, f->user_agent),
        .instance = pack(&cur, f->instance),
        .expires_ms = f->expires_ms,
        .expires_wall_ms = f->expires_wall_ms,
        .received_wall_ms = f->received_wall_ms,
        .conn_id = f->conn_id,
        .addr = f->addr,
        .cseq = f->cseq,
        .reg_id = f->reg_id,
        .q1000 = f->q1000,
        .transport = f->transport,
        .flags = f->flags,
    };
    b->next = NULL;
    b->by_conn = (struct hnode){0};
    b->aor = NULL;
    b->row_seq = 0;
    b->dirty_next = NULL;
    b->dirty_pprev = NULL;
    timer_node_init(&b->timer);
    if (timer_start(loc->timers, &b->timer, b->pub.expires_ms, on_expire) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

static void binding_discard(struct location *loc, struct binding *b)
{
    timer_stop(loc->timers, &b->timer);
    free(b);
}

/* Links a built binding into its AoR and the connection index. */
static void binding_link(struct location *loc, struct aor *a, struct binding *b)
{
    aor_link(a, b);
    conn_link(loc, b);
    loc->binding_count++;
    if (b->pub.flags & LOCATION_FLAG_NAT) loc->nat_count++;
}

/* "ip:port" / "[ip6]:port" for addr, or "" when it is not IP (0 when it
 * does not fit). */
static size_t format_remote(const union location_addr *addr, char *buf, size_t cap)
{
    if (cap) buf[0] = '\0';
    if (addr->sa.sa_family != AF_INET && addr->sa.sa_family != AF_INET6) return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, addr, addr->sa.sa_family == AF_INET ? sizeof(addr->in) : sizeof(addr->in6));
    char text[TRANSPORT_ADDR_TEXT];
    size_t n = transport_addr_text(&ss, text, sizeof(text));
    if (n == 0 || n >= cap || n >= sizeof(text) - 1) return 0;
    memcpy(buf, text, n + 1);
    return n;
}

static void copy_addr(const struct sockaddr *sa, union location_addr *out)
{
    memset(out, 0, sizeof(*out));
    out->sa.sa_family = AF_UNSPEC;
    if (!sa) return;
    if (sa->sa_family == AF_INET) memcpy(&out->in, sa, sizeof(out->in));
    else if (sa->sa_family == AF_INET6) memcpy(&out->in6, sa, sizeof(out->in6));
}

/* Parses what format_remote wrote back into an address (for reloads). */
static void parse_remote(const char *s, union location_addr *out)
{
    memset(out, 0, sizeof(*out));
    out->sa.sa_family = AF_UNSPEC;
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon;
    size_t hlen;
    bool v6 = s[0] == '[';
    if (v6) {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') return;
        hlen = (size_t)(close - s - 1);
        if (hlen >= sizeof(host)) return;
        memcpy(host, s + 1, hlen);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return;
        hlen = (size_t)(colon - s);
        if (hlen >= sizeof(host)) return;
        memcpy(host, s, hlen);
    }
    host[hlen] = '\0';
    uint64_t port;
    if (str_to_u64(str_from_cstr(colon + 1), 65535, &port) != 0) return;
    if (v6 && inet_pton(AF_INET6, host, &out->in6.sin6_addr) == 1) {
        out->in6.sin6_family = AF_INET6;
        out->in6.sin6_port = htons((uint16_t)port);
    } else if (!v6 && inet_pton(AF_INET, host, &out->in.sin_addr) == 1) {
        out->in.sin_family = AF_INET;
        out->in.sin_port = htons((uint16_t)port);
    }
}

/* ---- Input checks. */

/* Bounded, and free of bytes that would break a C string or a header line. */
static bool text_ok(str_t s, size_t max, bool required)
{
    if (s.len > max || (required && s.len == 0) || (s.len && !s.s)) return false;
    for (size_t i = 0; i < s.len; i++)
        if (s.s[i] == '\0' || s.s[i] == '\r' || s.s[i] == '\n') return false;
    return true;
}

static bool input_ok(const struct location_binding_in *in)
{
    return text_ok(in->contact, LOCATION_MAX_FIELD, true) && text_ok(in->call_id, LOCATION_MAX_FIELD, false) &&
           text_ok(in->path, LOCATION_MAX_FIELD, false) && text_ok(in->user_agent, LOCATION_MAX_FIELD, false) &&
           text_ok(in->instance, LOCATION_MAX_FIELD, false) && in->q1000 >= 0 && in->q1000 <= 1000 &&
           (unsigned)in->transport < TRANSPORT_COUNT;
}

/* RFC 3261 §10.3 steps 6-7: an existing binding with the same Call-ID may
 * only be changed by a higher CSeq (a delayed or replayed REGISTER must not
 * undo a newer one). A different Call-ID always may. */
static bool cseq_allows(const struct binding *b, str_t call_id, uint32_t cseq)
{
    if (!b || !str_eq(str_from_cstr(b->pub.call_id), call_id)) return true;
    return cseq > b->pub.cseq;
}

/* Later entries with the same contact win: an earlier duplicate is skipped. */
static bool superseded(const struct location_binding_in *in, size_t n, size_t i)
{
    for (size_t j = i + 1; j < n; j++)
        if (str_eq(in[j].contact, in[i].contact)) return true;
    return false;
}

static void fields_from_input(struct binding_fields *f, const struct location_binding_in *in, uint64_t now_ms,
                              int64_t now_wall, char *remote_buf, size_t remote_cap)
{
    uint64_t life_ms = (uint64_t)in->expires_s * 1000u;
    *f = (struct binding_fields){
        .contact = in->contact,
        .call_id = in->call_id,
        .path = in->path,
        .user_agent = in->user_agent,
        .instance = in->instance,
        .expires_ms = now_ms + life_ms,
        .expires_wall_ms = now_wall + (int64_t)life_ms,
        .received_wall_ms = now_wall,
        .conn_id = in->conn_id,
        .cseq = in->cseq,
        .reg_id = in->reg_id,
        .q1000 = (uint16_t)in->q1000,
        .transport = (uint8_t)in->transport,
        .flags = (uint8_t)(in->flags & LOCATION_FLAG_NAT),
    };
    copy_addr(in->remote_addr, &f->addr);
    f->remote = str_make(remote_buf, format_remote(&f->addr, remote_buf, remote_cap));
}

/* ---- Update. */

int location_update(struct location *loc, str_t aor, const struct location_binding_in *in, size_t n,
                    uint64_t now_ms, store_done_cb cb, void *arg)
{
    if (!text_ok(aor, LOCATION_MAX_AOR, true) || n > LOCATION_MAX_CONTACTS || (n && !in)) {
        log_warn("location: update refused: bad AoR or %zu contacts", n);
        return LOCATION_ERR_INVALID;
    }
    struct aor *a = aor_find(loc, aor);

    /* 1. Check everything; count what the AoR will hold. */
    long projected = a ? (long)a->count : 0, adds = 0;
    for (size_t i = 0; i < n; i++) {
        if (!input_ok(&in[i])) {
            log_warn("location: update of %.*s refused: bad contact #%zu", STR_FMT(aor), i);
            return LOCATION_ERR_INVALID;
        }
        if (superseded(in, n, i)) continue;
        struct binding *b = binding_find(a, in[i].contact);
        struct binding *r = b ? NULL : binding_find_instance(a, in[i].instance, in[i].reg_id, NULL);
        if (!cseq_allows(b, in[i].call_id, in[i].cseq) ||
            (in[i].expires_s && !cseq_allows(r, in[i].call_id, in[i].cseq))) {
            log_info("location: REGISTER for %.*s out of order (Call-ID %.*s CSeq %u)", STR_FMT(aor),
                     STR_FMT(in[i].call_id), in[i].cseq);
            return LOCATION_ERR_OUT_OF_ORDER;
        }
        if (in[i].expires_s == 0) projected -= b != NULL;
        else if (!b && !r) projected++, adds++;
    }
    long before = a ? (long)a->count : 0;
    if (projected > before &&
        ((loc->max_per_aor && projected > (long)loc->max_per_aor) ||
         (loc->max_total && loc->binding_count + (size_t)adds > loc->max_total))) {
        log_warn("location: update of %.*s refused: %ld bindings would exceed the limit", STR_FMT(aor),
                 projected);
        return LOCATION_ERR_TOO_MANY;
    }

    /* 2. Allocate everything: nothing visible changes before this succeeds. */
    struct persist ps;
    if (persist_begin(&ps, loc, cb, arg) != 0) return LOCATION_ERR_NOMEM;
    struct aor *fresh = NULL;
    struct binding *built_stack[8];
    struct binding **built = n <= 8 ? built_stack : calloc(n, sizeof(*built));
    if (!built) goto nomem;
    memset(built, 0, n * sizeof(*built));
    int64_t now_wall = clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        if (in[i].expires_s == 0 || superseded(in, n, i)) continue;
        if (!a && !fresh && !(fresh = aor_alloc(loc, aor))) goto nomem;
        struct binding_fields f;
        char remote[INET6_ADDRSTRLEN + 16];
        fields_from_input(&f, &in[i], now_ms, now_wall, remote, sizeof(remote));
        if (!(built[i] = binding_alloc(loc, &f))) goto nomem;
    }

    /* 3. Apply: upserts first, then removals, so an AoR that keeps at least
     * one binding never flaps offline/online within one REGISTER. */
    if (fresh) {
        aor_insert(loc, fresh);
        a = fresh;
    }
    for (size_t i = 0; i < n; i++) {
        struct binding *nb = built[i];
        if (!nb) continue;
        struct binding *old = binding_find(a, in[i].contact);
        bool was_empty = a->count == 0;
        if (old) {
            timer_stop(loc->timers, &old->timer);
            dirty_unlink(loc, old);
            aor_unlink(a, old);
            conn_unlink(loc, old);
            loc->binding_count--;
            if (old->pub.flags & LOCATION_FLAG_NAT) loc->nat_count--;
        }
        binding_link(loc, a, nb);
        if (defer_refresh(loc, old, nb, now_ms)) {
            ps.deferred = true;
            if (nb->row_seq > ps.row_seq) ps.row_seq = nb->row_seq;
        }
        else persist_upsert(&ps, nb);
        if (old) {
            if (loc->cb.binding_refreshed) loc->cb.binding_refreshed(loc->cb.arg, &nb->pub);
            free(old);
        } else {
            if (loc->cb.binding_added) loc->cb.binding_added(loc->cb.arg, &nb->pub);
            if (was_empty && loc->cb.aor_online) loc->cb.aor_online(loc->cb.arg, a->name);
            struct binding *r = binding_find_instance(a, in[i].instance, in[i].reg_id, nb);
            if (r) binding_remove(loc, r, LOCATION_REMOVED_REPLACED, &ps);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (in[i].expires_s || superseded(in, n, i)) continue;
        /* look the AoR up again: the previous removal may have freed it */
        struct binding *b = binding_find(aor_find(loc, aor), in[i].contact);
        if (b) binding_remove(loc, b, LOCATION_REMOVED_UNREGISTER, &ps);
    }
    if (built != built_stack) free(built);
    persist_end(&ps, cb, arg);
    return 0;

nomem:
    log_error("location: out of memory updating %.*s", STR_FMT(aor));
    if (built) {
        for (size_t i = 0; i < n; i++)
            if (built[i]) binding_discard(loc, built[i]);
        if (built != built_stack) free(built);
    }
    free(fresh);
    persist_abort(&ps);
    return LOCATION_ERR_NOMEM;
}

/* ---- Removal calls. */

/* Removes every binding of a with one store op for the whole AoR. */
static int remove_aor(struct location *loc, struct aor *a, enum location_reason reason, struct persist *ps)
{
    int removed = (int)a->count;
    if (ps->store) persist_submit(ps, store_op_binding_delete_aor(a->name), "AoR removal", a->name);
    /* the last removal frees a: do not touch it after the loop */
    for (int i = 0; i < removed; i++) binding_remove(loc, a->bindings, reason, NULL);
    return removed;
}

int location_unregister_all(struct location *loc, str_t aor, str_t call_id, uint32_t cseq, store_done_cb cb,
                            void *arg)
{
    if (!text_ok(aor, LOCATION_MAX_AOR, true)) return LOCATION_ERR_INVALID;
    struct aor *a = aor_find(loc, aor);
    for (struct binding *b = a ? a->bindings : NULL; b; b = b->next)
        if (!cseq_allows(b, call_id, cseq)) {
            log_info("location: Contact: * for %.*s out of order (Call-ID %.*s CSeq %u)", STR_FMT(aor),
                     STR_FMT(call_id), cseq);
            return LOCATION_ERR_OUT_OF_ORDER;
        }
    struct persist ps;
    if (persist_begin(&ps, loc, cb, arg) != 0) return LOCATION_ERR_NOMEM;
    int removed = a ? remove_aor(loc, a, LOCATION_REMOVED_UNREGISTER, &ps) : 0;
    persist_end(&ps, cb, arg);
    return removed;
}

int location_remove(struct location *loc, str_t aor, str_t contact, enum location_reason reason,
                    store_done_cb cb, void *arg)
{
    struct binding *b = binding_find(aor_find(loc, aor), contact);
    if (!b) return LOCATION_ERR_NOT_FOUND;
    struct persist ps;
    if (persist_begin(&ps, loc, cb, arg) != 0) return LOCATION_ERR_NOMEM;
    binding_remove(loc, b, reason, &ps);
    persist_end(&ps, cb, arg);
    return 1;
}

int location_remove_all(struct location *loc, str_t aor, enum location_reason reason, store_done_cb cb,
                        void *arg)
{
    struct aor *a = aor_find(loc, aor);
    struct persist ps;
    if (persist_begin(&ps, loc, cb, arg) != 0) return LOCATION_ERR_NOMEM;
    int removed = a ? remove_aor(loc, a, reason, &ps) : 0;
    persist_end(&ps, cb, arg);
    return removed;
}

int location_remove_by_conn(struct location *loc, uint64_t conn_id, enum location_reason reason)
{
    if (!conn_id) return 0;
    struct persist ps = {.loc = loc, .store = loc->store};
    int removed = 0;
    struct hnode *n = htable_first(&loc->conns, conn_hash(conn_id));
    while (n) {
        struct hnode *next = htable_next(n); /* callbacks cannot modify: next stays valid */
        struct binding *b = container_of(n, struct binding, by_conn);
        if (b->pub.conn_id == conn_id) {
            binding_remove(loc, b, reason, &ps);
            removed++;
        }
        n = next;
    }
    return removed;
}

int location_flag_conn_lost(struct location *loc, uint64_t conn_id)
{
    if (!conn_id) return 0;
    struct persist ps = {.loc = loc, .store = loc->store};
    int flagged = 0;
    struct hnode *n = htable_first(&loc->conns, conn_hash(conn_id));
    while (n) {
        struct hnode *next = htable_next(n);
        struct binding *b = container_of(n, struct binding, by_conn);
        if (b->pub.conn_id == conn_id) {
            conn_unlink(loc, b);
            b->pub.conn_id = 0;
            b->pub.flags |= LOCATION_FLAG_TRANSPORT_LOST;
            persist_upsert(&ps, b);
            flagged++;
        }
        n = next;
    }
    return flagged;
}

/* ---- Reading. */

size_t location_lookup(const struct location *loc, str_t aor, const struct location_binding **out, size_t cap)
{
    struct aor *a = aor_find(loc, aor);
    if (!a) return 0;
    size_t i = 0;
    for (struct binding *b = a->bindings; b; b = b->next, i++)
        if (i < cap) out[i] = &b->pub;
    return a->count;
}

struct foreach_ctx {
    int (*cb)(void *arg, const struct location_binding *b);
    void *arg;
};

static int foreach_aor(struct hnode *n, void *arg)
{
    struct foreach_ctx *c = arg;
    for (struct binding *b = container_of(n, struct aor, node)->bindings; b; b = b->next) {
        int rc = c->cb(c->arg, &b->pub);
        if (rc) return rc;
    }
    return 0;
}

int location_foreach(const struct location *loc, int (*cb)(void *arg, const struct location_binding *b),
                     void *arg)
{
    struct foreach_ctx c = {cb, arg};
    /* the callback only reads: cast away const for the walk */
    return htable_foreach((struct htable *)&loc->aors, foreach_aor, &c);
}

/* ---- Reload at start. */

struct load_ctx {
    struct location *loc;
    uint64_t now_ms;
    int64_t now_wall;
    int loaded, expired, skipped;
};

static int load_row(void *arg, const struct store_binding *row)
{
    struct load_ctx *c = arg;
    struct location *loc = c->loc;
    str_t aor = str_from_cstr(row->aor), contact = str_from_cstr(row->contact);
    int transport = location_transport_from_name(row->transport);
    if (row->expires_at <= c->now_wall) {
        c->expired++;
        return 0;
    }
    struct binding_fields f = {
        .contact = contact,
        .call_id = str_from_cstr(row->call_id),
        .remote = str_from_cstr(row->remote),
        .path = str_from_cstr(row->path),
        .user_agent = str_from_cstr(row->user_agent),
        .instance = str_from_cstr(row->instance),
        .expires_ms = c->now_ms + (uint64_t)(row->expires_at - c->now_wall),
        .expires_wall_ms = row->expires_at,
        .received_wall_ms = row->received_at,
        .conn_id = 0, /* flows did not survive the restart */
        .cseq = row->cseq,
        .reg_id = row->reg_id,
        .q1000 = (uint16_t)(row->q1000 < 0 ? 0 : row->q1000 > 1000 ? 1000 : row->q1000),
        .transport = (uint8_t)(transport < 0 ? LOCATION_TRANSPORT_UDP : transport),
        .flags = (uint8_t)row->flags,
    };
    if (f.transport != LOCATION_TRANSPORT_UDP) f.flags |= LOCATION_FLAG_TRANSPORT_LOST;
    if (!text_ok(aor, LOCATION_MAX_AOR, true) || !text_ok(contact, LOCATION_MAX_FIELD, true) ||
        !text_ok(f.call_id, LOCATION_MAX_FIELD, false) || !text_ok(f.path, LOCATION_MAX_FIELD, false) ||
        !text_ok(f.user_agent, LOCATION_MAX_FIELD, false) || !text_ok(f.instance, LOCATION_MAX_FIELD, false) ||
        f.remote.len > INET6_ADDRSTRLEN + 8) {
        log_warn("location: skipped stored binding %.64s -> %.64s: bad field", row->aor, row->contact);
        c->skipped++;
        return 0;
    }
    parse_remote(row->remote, &f.addr);
    struct aor *a = aor_find(loc, aor);
    if (binding_find(a, contact)) return 0; /* already loaded */
    struct aor *fresh = a ? NULL : aor_alloc(loc, aor);
    if (!a && !fresh) return LOCATION_ERR_NOMEM;
    struct binding *b = binding_alloc(loc, &f);
    if (!b) {
        free(fresh);
        return LOCATION_ERR_NOMEM;
    }
    if (fresh) aor_insert(loc, a = fresh);
    binding_link(loc, a, b);
    c->loaded++;
    return 0;
}

int location_load(struct location *loc, struct store *st, uint64_t now_ms, int64_t now_wall_ms)
{
    if (!st) return LOCATION_ERR_NO_STORE;
    struct load_ctx c = {.loc = loc, .now_ms = now_ms, .now_wall = now_wall_ms};
    int rc = store_load_bindings(st, load_row, &c);
    if (rc < 0) {
        log_error("location: loading bindings failed (%d) after %d", rc, c.loaded);
        return rc;
    }
    if (c.expired) {
        int src = store_submit(st, store_op_binding_delete_expired(now_wall_ms), NULL, NULL);
        if (src < 0) log_error("location: cannot delete expired bindings: %s", strerror(-src));
    }
    log_info("location: loaded %d bindings (%d expired, %d skipped)", c.loaded, c.expired, c.skipped);
    return c.loaded;
}
