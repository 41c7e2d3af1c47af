/* txn.c — the transaction layer: hash tables, dispatch of received messages,
 * branch generation, the common lifecycle of server and client transactions.
 * The state machines are in server.c (RFC 3261 §17.2) and client.c (§17.1). */
#include "txn/txn_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/log.h"

#define SCRATCH_BYTES (16 * 1024)

uint64_t txn_now(struct txn_layer *l) { return l->ops.now_ms(l->ops.user); }

/* ---- tables (base/htable.h; a transaction links one node per table) ---- */

static struct txn *txn_of(const struct txn_table *tb, const struct hnode *n)
{
    return n ? (struct txn *)((char *)n - tb->link_offset) : NULL;
}

static struct hnode *node_of(const struct txn_table *tb, const struct txn *t)
{
    return (struct hnode *)((char *)t + tb->link_offset);
}

int txn_table_insert(struct txn_table *tb, struct txn *t, uint32_t hash)
{
    return htable_insert(&tb->t, node_of(tb, t), hash);
}

void txn_table_remove(struct txn_table *tb, struct txn *t) { htable_remove(&tb->t, node_of(tb, t)); }

struct txn *txn_table_first(const struct txn_table *tb, uint32_t hash)
{
    return txn_of(tb, htable_first(&tb->t, hash));
}

struct txn *txn_table_next(const struct txn_table *tb, const struct txn *t)
{
    return txn_of(tb, htable_next(node_of(tb, t)));
}

uint32_t txn_key_hash(str_t s, enum sip_method method, uint32_t extra)
{
    uint32_t h = str_hash(s);
    h ^= (uint32_t)method * 0x9e3779b1u;
    h ^= extra * 0x85ebca6bu;
    h ^= h >> 15;
    return h;
}

bool txn_branch_is_3261(str_t branch)
{
    return branch.len > sizeof(TXN_BRANCH_COOKIE) - 1 &&
           memcmp(branch.s, TXN_BRANCH_COOKIE, sizeof(TXN_BRANCH_COOKIE) - 1) == 0;
}

/* ---- layer ---- */

struct txn_layer *txn_layer_new(struct timer_service *timers, const struct txn_config *cfg,
                                const struct txn_layer_ops *ops)
{
    if (!timers || !ops || !ops->send || !ops->on_request || !ops->now_ms) return NULL;
    struct txn_layer *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    l->timers = timers;
    if (cfg) l->cfg = *cfg;
    l->ops = *ops;
    if (!l->cfg.t1_ms) l->cfg.t1_ms = 500;
    if (!l->cfg.t2_ms) l->cfg.t2_ms = 4000;
    if (!l->cfg.t4_ms) l->cfg.t4_ms = 5000;
    if (!l->cfg.trying_ms) l->cfg.trying_ms = 200;
    if (!l->cfg.timer_d_ms) l->cfg.timer_d_ms = 32000;
    struct sip_parse_limits def;
    sip_parse_limits_default(&def);
    if (!l->cfg.limits.max_message_bytes) l->cfg.limits.max_message_bytes = def.max_message_bytes;
    if (!l->cfg.limits.max_headers) l->cfg.limits.max_headers = def.max_headers;
    if (!l->cfg.limits.max_line_bytes) l->cfg.limits.max_line_bytes = def.max_line_bytes;
    l->server.link_offset = offsetof(struct txn, hl);
    l->client.link_offset = offsetof(struct txn, hl);
    l->conns.link_offset = offsetof(struct txn, cl);
    l->server.t.min_buckets = l->client.t.min_buckets = l->conns.t.min_buckets = 256;
    sbuf_init(&l->sb);
    l->scratch_mem = malloc(SCRATCH_BYTES);
    if (!l->scratch_mem) {
        free(l);
        return NULL;
    }
    arena_init(&l->scratch, l->scratch_mem, SCRATCH_BYTES);
    timer_node_init(&l->done.timer);
    if (!l->cfg.retry_after_s) l->cfg.retry_after_s = 10;
    /* Random per run, so that a peer cannot make an ACK we would swallow. */
    char b[TXN_BRANCH_SIZE];
    txn_new_branch(b);
    memcpy(l->sl_prefix, b + sizeof(TXN_BRANCH_COOKIE) - 1, sizeof(l->sl_prefix) - 1);
    for (size_t i = 0; i + 1 < sizeof(l->sl_prefix); i++)
        if (l->sl_prefix[i] == '.' || l->sl_prefix[i] == '-') l->sl_prefix[i] = 'x';
    l->sl_prefix[sizeof(l->sl_prefix) - 1] = '\0';
    return l;
}

void txn_layer_free(struct txn_layer *l)
{
    if (!l) return;
    l->freeing = true;
    while (l->all) txn_destroy(l->all);
    txn_done_free_all(l);
    htable_free(&l->server.t);
    htable_free(&l->client.t);
    htable_free(&l->conns.t);
    sbuf_free(&l->sb);
    arena_free(&l->scratch);
    free(l->scratch_mem);
    free(l);
}

void txn_layer_stats(const struct txn_layer *l, struct txn_stats *out)
{
    *out = l->stats;
    out->server_completed = (uint32_t)l->done.count;
    out->server_completed_bytes = l->done.bytes;
    out->server_max = l->cfg.max_server;
}

void txn_sl_tag(const struct txn_layer *l, const struct sip_msg *m, char out[TXN_SL_TAG_SIZE])
{
    uint32_t h = txn_key_hash(m->via.branch, SIP_METHOD_UNKNOWN, str_hash(m->call_id) ^ str_hash(m->from.tag));
    static const char hex[] = "0123456789abcdef";
    memcpy(out, l->sl_prefix, 10);
    out[10] = '.';
    for (int i = 0; i < 8; i++) out[11 + i] = hex[(h >> (28 - 4 * i)) & 15];
    out[19] = '\0';
}

bool txn_sl_tag_is_ours(const struct txn_layer *l, str_t tag)
{
    return tag.len == TXN_SL_TAG_SIZE - 1 && memcmp(tag.s, l->sl_prefix, 10) == 0 && tag.s[10] == '.';
}

/* Branches must be unique in space and time (RFC 3261 §8.1.1.7) and hard to
 * guess (a guessed branch lets an off-path host answer or CANCEL for us):
 * 144 bits from the kernel, no state kept here. */
void txn_new_branch(char buf[TXN_BRANCH_SIZE])
{
    static const char alphabet[64] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.";
    unsigned char r[24];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        /* No kernel entropy (cannot happen after boot): still unique per call. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)buf;
        for (size_t i = 0; i < sizeof(r); i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            r[i] = (unsigned char)x;
        }
    }
    size_t n = sizeof(TXN_BRANCH_COOKIE) - 1;
    memcpy(buf, TXN_BRANCH_COOKIE, n);
    for (size_t i = 0; i < sizeof(r); i++) buf[n++] = alphabet[r[i] & 63];
    buf[n] = '\0';
}

int txn_layer_receive(struct txn_layer *l, const struct transport_rx *rx)
{
    if (!rx || !rx->msg || rx->parse_error) return -EINVAL;
    return rx->msg->is_request ? txn_server_receive(l, rx) : txn_client_receive(l, rx);
}

/* ---- common lifecycle ---- */

void txn_start(struct txn *t, struct timer_node *n, uint64_t delay_ms, timer_cb cb)
{
    if (timer_start(t->layer->timers, n, txn_now(t->layer) + delay_ms, cb) != 0)
        log_error("transaction %.*s: no memory for a timer", STR_FMT(t->branch));
}

static void destroy_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    txn_destroy(container_of(n, struct txn, t_main));
}

void txn_terminate_soon(struct txn *t)
{
    struct txn_layer *l = t->layer;
    t->state = TXN_TERMINATED;
    txn_table_remove(t->client ? &l->client : &l->server, t);
    txn_table_remove(&l->conns, t);
    timer_stop(l->timers, &t->t_retx);
    if (timer_start(l->timers, &t->t_main, txn_now(l), destroy_timer) != 0) {
        /* Cannot defer: the heap is out of memory. Free now rather than leak. */
        log_error("transaction %.*s: no memory for a timer, freeing now", STR_FMT(t->branch));
        txn_destroy(t);
    }
}

void txn_destroy(struct txn *t)
{
    struct txn_layer *l = t->layer;
    timer_stop(l->timers, &t->t_retx);
    timer_stop(l->timers, &t->t_main);
    txn_table_remove(t->client ? &l->client : &l->server, t);
    txn_table_remove(&l->conns, t);
    t->state = TXN_TERMINATED;
    if (t->all_prev) t->all_prev->all_next = t->all_next;
    else l->all = t->all_next;
    if (t->all_next) t->all_next->all_prev = t->all_prev;
    if (t->client) {
        l->stats.client_live--;
        if (!l->freeing && !t->detached && t->cb.on_terminated) t->cb.on_terminated(t->arg, t);
        txn_client_free_parts(t);
    } else {
        if (!t->handed_over) l->stats.server_live--;
        if (!l->freeing && l->ops.on_server_terminated) l->ops.on_server_terminated(l->ops.user, t);
        txn_server_free_parts(t);
    }
    free(t->bytes);
    free(t);
}

void txn_link_all(struct txn *t)
{
    struct txn_layer *l = t->layer;
    t->all_prev = NULL;
    t->all_next = l->all;
    if (l->all) l->all->all_prev = t;
    l->all = t;
}

int txn_keep_bytes(struct txn *t, const void *data, size_t len)
{
    if (len > t->bytes_cap) {
        char *p = realloc(t->bytes, len);
        if (!p) return -ENOMEM;
        t->bytes = p;
        t->bytes_cap = len;
    }
    if (t->bytes != data) memmove(t->bytes, data, len);
    t->bytes_len = len;
    return 0;
}

/* ---- accessors ---- */

void txn_set_user(struct txn *t, void *user) { t->user = user; }
void txn_set_stamp(struct txn *t, uint64_t stamp) { t->stamp = stamp; }
void *txn_user(const struct txn *t) { return t->user; }
enum txn_state txn_get_state(const struct txn *t) { return t->state; }
bool txn_is_client(const struct txn *t) { return t->client; }
bool txn_is_invite(const struct txn *t) { return t->invite; }
int txn_last_status(const struct txn *t) { return t->last_status; }
str_t txn_branch(const struct txn *t) { return t->branch; }
const struct transport_dest *txn_dest(const struct txn *t) { return &t->dest; }
