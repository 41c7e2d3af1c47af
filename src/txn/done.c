/* done.c — completed non-INVITE server transactions over UDP, kept compact
 * for Timer J (RFC 3261 §17.2.2).
 *
 * Once a non-INVITE server transaction has sent its final response over an
 * unreliable transport, all it still does for 64*T1 is answer retransmitted
 * requests with that response. For that it needs the match key (branch,
 * sent-by, method: §17.2.3), where to send and the response bytes; not the
 * ~600-byte struct txn with its timers, client fields and request copy. A
 * registrar or a GB upper platform keeps tens or hundreds of thousands of
 * these alive (rate x 32 s), so server.c hands each one over to a record here
 * and ends the full transaction at once.
 *
 * Records are appended to a log of 64 KiB blocks: every record waits the same
 * Timer J and the clock does not go back, so they expire in the order they
 * were appended, from the head, and a block is freed when its last record
 * expires. No per-record malloc, no per-record timer (one timer for the head),
 * and a hash index by branch for matching: open addressing (linear probing,
 * load <= 1/2) over {record, hash} slots, so that a request that is not a
 * retransmission (nearly all of them) costs one look at the slots and none
 * at the records, which lie all over the blocks. Blocks are mapped pages of
 * their own rather than heap memory: a burst (a registration storm) leaves
 * no heap holes behind, its memory goes back to the system as its records
 * expire. Loop thread only. */
#include "txn/txn_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/log.h"

#define DONE_BLOCK_BYTES (64 * 1024)      /* a mapping, header included */
#define DONE_INDEX_MIN 256

struct txn_done_block {
    struct txn_done_block *next;   /* newer block */
    size_t cap, used;              /* of mem */
    size_t map_len;                /* the whole mapping */
    _Alignas(16) char mem[];
};

struct txn_done_slot {
    struct txn_done *d;            /* NULL: empty */
    uint32_t hash;
};

struct txn_done {
    uint64_t expires_ms;
    uint32_t hash;
    uint32_t size;                 /* bytes of this record in its block */
    uint32_t listener_id;
    uint32_t resp_len;
    uint16_t branch_len, method_len, host_len;
    uint16_t sent_by_port;
    uint8_t method;                /* enum sip_method */
    bool linked;                   /* in the hash index (false after a send error) */
    union {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } addr;
    char data[];                   /* branch, method name (extension methods only), host, response */
};

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

static str_t rec_branch(const struct txn_done *d) { return str_make(d->data, d->branch_len); }
static str_t rec_method(const struct txn_done *d) { return str_make(d->data + d->branch_len, d->method_len); }
static str_t rec_host(const struct txn_done *d)
{
    return str_make(d->data + d->branch_len + d->method_len, d->host_len);
}
static const char *rec_resp(const struct txn_done *d)
{
    return d->data + d->branch_len + d->method_len + d->host_len;
}

/* ---- hash index ---- */

static int index_resize(struct txn_done_log *g, uint32_t size)
{
    struct txn_done_slot *b = calloc(size, sizeof(*b));
    if (!b) return -1;
    uint32_t old = g->mask ? g->mask + 1 : 0;
    for (uint32_t i = 0; i < old; i++) {
        if (!g->slots[i].d) continue;
        uint32_t j = g->slots[i].hash & (size - 1);
        while (b[j].d) j = (j + 1) & (size - 1);
        b[j] = g->slots[i];
    }
    free(g->slots);
    g->slots = b;
    g->mask = size - 1;
    return 0;
}

static void index_insert(struct txn_done_log *g, struct txn_done *d)
{
    uint32_t i = d->hash & g->mask;
    while (g->slots[i].d) i = (i + 1) & g->mask;
    g->slots[i] = (struct txn_done_slot){d, d->hash};
    d->linked = true;
    g->indexed++;
}

/* Removes d, then shifts later entries of the probe run back into the hole
 * (deletion without tombstones, Knuth 6.4 algorithm R). */
static void index_remove(struct txn_done_log *g, struct txn_done *d)
{
    if (!d->linked) return;
    uint32_t m = g->mask, i = d->hash & m;
    while (g->slots[i].d != d) {
        if (!g->slots[i].d) return; /* not indexed: cannot happen */
        i = (i + 1) & m;
    }
    for (uint32_t j = i;;) {
        j = (j + 1) & m;
        if (!g->slots[j].d) break;
        uint32_t home = g->slots[j].hash & m;
        /* j's entry may fill the hole at i unless its home lies in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            g->slots[i] = g->slots[j];
            i = j;
        }
    }
    g->slots[i] = (struct txn_done_slot){NULL, 0};
    d->linked = false;
    g->indexed--;
}

/* ---- expiry ---- */

static void done_timer(struct timer_node *n, uint64_t now);

static struct txn_done *log_head(struct txn_done_log *g)
{
    struct txn_done_block *b = g->first;
    return b && g->head_off < b->used ? (struct txn_done *)(b->mem + g->head_off) : NULL;
}

static void arm(struct txn_layer *l)
{
    struct txn_done *d = log_head(&l->done);
    if (!d) {
        timer_stop(l->timers, &l->done.timer);
        return;
    }
    if (timer_start(l->timers, &l->done.timer, d->expires_ms, done_timer) != 0)
        log_error("transactions: no memory for the Timer J timer (completed transactions outlive it)");
}

static struct txn_done_block *block_new(size_t need)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = offsetof(struct txn_done_block, mem) + need;
    len = len > DONE_BLOCK_BYTES ? (len + page - 1) / page * page : DONE_BLOCK_BYTES;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    struct txn_done_block *b = p;
    b->map_len = len;
    b->cap = len - offsetof(struct txn_done_block, mem);
    return b;
}

static void block_free(struct txn_done_block *b)
{
    if (b) munmap(b, b->map_len);
}

static void release_block(struct txn_done_log *g, struct txn_done_block *b)
{
    /* One spare block saves a map/unmap pair per block at a steady rate. */
    if (!g->spare && b->map_len == DONE_BLOCK_BYTES) {
        g->spare = b;
        return;
    }
    block_free(b);
}

/* Drops the oldest record (Timer J fired, or the layer is being freed). */
static void pop_head(struct txn_layer *l)
{
    struct txn_done_log *g = &l->done;
    struct txn_done_block *b = g->first;
    struct txn_done *d = (struct txn_done *)(b->mem + g->head_off);
    index_remove(g, d);
    g->count--;
    l->stats.server_live--;
    g->bytes -= d->size;
    g->head_off += d->size;
    if (g->head_off < b->used) return;
    if (b->next) {
        g->first = b->next;
        release_block(g, b);
    } else {
        b->used = 0; /* the only block: start it over */
    }
    g->head_off = 0;
}

static void done_timer(struct timer_node *n, uint64_t now)
{
    struct txn_layer *l = container_of(n, struct txn_layer, done.timer);
    struct txn_done_log *g = &l->done;
    for (struct txn_done *d; (d = log_head(g)) && d->expires_ms <= now;) pop_head(l);
    /* After a storm the index shrinks back (best effort: a failed calloc
     * keeps the larger one). */
    uint32_t size = g->mask + 1;
    if (g->mask && size > DONE_INDEX_MIN && g->indexed < size / 16)
        index_resize(g, size / 4 > DONE_INDEX_MIN ? size / 4 : DONE_INDEX_MIN);
    arm(l);
}

/* ---- the interface for server.c ---- */

int txn_done_add(struct txn_layer *l, const struct txn *t, const void *resp, size_t len)
{
    struct txn_done_log *g = &l->done;
    const struct sockaddr_storage *a = &t->dest.addr;
    if (a->ss_family != AF_INET && a->ss_family != AF_INET6) return -EINVAL;
    str_t method = t->method == SIP_METHOD_UNKNOWN ? t->method_name : STR_NULL;
    if (t->branch.len > UINT16_MAX || method.len > UINT16_MAX || t->sent_by_host.len > UINT16_MAX ||
        len > UINT32_MAX)
        return -EINVAL;
    size_t need = align16(sizeof(struct txn_done) + t->branch.len + method.len + t->sent_by_host.len + len);
    if ((g->indexed + 1) * 2 > (g->mask ? g->mask + 1 : 0) &&
        index_resize(g, g->mask ? (g->mask + 1) * 2 : DONE_INDEX_MIN) != 0)
        return -ENOMEM;

    struct txn_done_block *b = g->last;
    if (!b || b->cap - b->used < need) {
        struct txn_done_block *nb;
        if (g->spare && g->spare->cap >= need) {
            nb = g->spare;
            g->spare = NULL;
        } else if (!(nb = block_new(need))) {
            return -ENOMEM;
        }
        nb->next = NULL;
        nb->used = 0;
        if (b) b->next = nb;
        else g->first = nb, g->head_off = 0;
        g->last = b = nb;
    }
    struct txn_done *d = (struct txn_done *)(b->mem + b->used);
    memset(d, 0, sizeof(*d));
    d->expires_ms = txn_now(l) + 64 * (uint64_t)l->cfg.t1_ms; /* Timer J */
    d->hash = t->hl.hash;
    d->size = (uint32_t)need;
    d->listener_id = t->dest.listener_id;
    d->resp_len = (uint32_t)len;
    d->branch_len = (uint16_t)t->branch.len;
    d->method_len = (uint16_t)method.len;
    d->host_len = (uint16_t)t->sent_by_host.len;
    d->sent_by_port = t->sent_by_port;
    d->method = (uint8_t)t->method;
    memcpy(&d->addr, a, a->ss_family == AF_INET ? sizeof(d->addr.v4) : sizeof(d->addr.v6));
    char *p = d->data;
    memcpy(p, t->branch.s, t->branch.len);
    p += t->branch.len;
    if (method.len) memcpy(p, method.s, method.len);
    p += method.len;
    memcpy(p, t->sent_by_host.s, t->sent_by_host.len);
    p += t->sent_by_host.len;
    memcpy(p, resp, len);
    b->used += need;

    index_insert(g, d);
    g->count++;
    g->bytes += need;
    l->stats.server_live++;
    if (!timer_armed(&g->timer)) arm(l);
    return 0;
}

bool txn_done_receive(struct txn_layer *l, const struct sip_msg *m, uint32_t hash)
{
    struct txn_done_log *g = &l->done;
    if (!g->mask) return false;
    for (uint32_t i = hash & g->mask; g->slots[i].d; i = (i + 1) & g->mask) {
        if (g->slots[i].hash != hash) continue;
        struct txn_done *d = g->slots[i].d;
        if (d->method != (uint8_t)m->method || d->sent_by_port != m->via.port) continue;
        if (!str_eq(rec_branch(d), m->via.branch) || !str_ieq(rec_host(d), m->via.host)) continue;
        if (m->method == SIP_METHOD_UNKNOWN && !str_eq(rec_method(d), m->method_name)) continue;
        /* A retransmission: the final response again (§17.2.2). */
        l->stats.retransmissions_absorbed++;
        struct transport_dest dest;
        memset(&dest, 0, sizeof(dest));
        dest.proto = SIP_TRANSPORT_UDP;
        dest.listener_id = d->listener_id;
        memcpy(&dest.addr, &d->addr, d->addr.sa.sa_family == AF_INET ? sizeof(d->addr.v4) : sizeof(d->addr.v6));
        int rc = l->ops.send(l->ops.user, &dest, rec_resp(d), d->resp_len);
        if (rc < 0) {
            /* §17.2.4: the transaction ends; a later copy of the request is new. */
            char peer[TRANSPORT_ADDR_TEXT];
            transport_addr_text(&dest.addr, peer, sizeof(peer));
            l->stats.transport_errors++;
            log_warn("response to a retransmitted %.*s from %s not sent (%s): ending the transaction",
                     STR_FMT(m->method_name), peer, uv_strerror(rc));
            index_remove(g, d);
        }
        return true;
    }
    return false;
}

void txn_done_free_all(struct txn_layer *l)
{
    struct txn_done_log *g = &l->done;
    timer_stop(l->timers, &g->timer);
    for (struct txn_done_block *b = g->first, *next; b; b = next) {
        next = b->next;
        block_free(b);
    }
    block_free(g->spare);
    free(g->slots);
    l->stats.server_live -= (uint32_t)g->count;
    memset(g, 0, sizeof(*g));
}
