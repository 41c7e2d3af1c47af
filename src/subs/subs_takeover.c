/* subs_takeover.c — a dead node's subscriptions continued by a survivor
 * (see the header). */
#include "subs/subs_takeover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "base/clock.h"
#include "base/log.h"
#include "redis/redis_cluster.h"
#include "registrar/location.h"
#include "store/store.h"

#define QUEUE_MAX 8 /* reaped incarnations waiting for the walk in progress */

/* The records of node ARGV[1], incarnation ARGV[2], deleted from the hash
 * and returned as {field, value, ...}: the commit point of a takeover. A
 * version 1 record (an older writer: no inc) matches on the node alone; a
 * version 2 one without inc is not taken (a node without cluster_route, or
 * the write a starting node makes before it knows its run, which the next
 * write replaces). */
static const char ADOPT_LUA[] =
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "local out = {}\n"
    "for i = 1, #h, 2 do\n"
    "  local ok, r = pcall(cjson.decode, h[i + 1])\n"
    "  if ok and type(r) == 'table' and r.node == ARGV[1]\n"
    "    and (r.inc == ARGV[2] or (r.inc == nil and r.v == nil)) then\n"
    "    redis.call('HDEL', KEYS[1], h[i])\n"
    "    out[#out + 1] = h[i]\n"
    "    out[#out + 1] = h[i + 1]\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ---- records ---- */

/* n bytes, none below space (space itself when spaces), no DEL */
static bool printable(const char *s, size_t n, bool spaces)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || (c == 0x20 && !spaces) || c == 0x7f) return false;
    }
    return true;
}

static bool word_ok(const char *s, size_t n, size_t cap) { return n > 0 && n < cap && printable(s, n, false); }

static bool node_ok(const char *s, size_t n)
{
    return word_ok(s, n, SUBS_TAKEOVER_NODE_MAX) && !memchr(s, '/', n) && !memchr(s, '{', n) && !memchr(s, '}', n);
}

static bool event_ok(const char *s, size_t n)
{
    if (n == 0 || n >= SUBS_TAKEOVER_EVENT_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-'))
            return false;
    return true;
}

static bool transport_ok(const char *s)
{
    static const char *const names[] = {"udp", "tcp", "tls", "sctp", "ws", "wss"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(s, names[i])) return true;
    return false;
}

static bool cstr_word(const char *s, size_t cap) { return s && word_ok(s, strlen(s), cap); }

int subs_takeover_record_encode(const char *node, const char *inc, const struct subs_record *r, char *field,
                                size_t fcap, char **out)
{
    *out = NULL;
    if (!inc) inc = "";
    if (!node || !node_ok(node, strlen(node)) || !cstr_word(r->id, SUBS_TAKEOVER_TAG_MAX) ||
        !cstr_word(r->watcher, SUBS_TAKEOVER_URI_MAX) || !r->event || !event_ok(r->event, strlen(r->event)) ||
        r->expires_wall_ms <= 0 || (inc[0] && !node_ok(inc, strlen(inc))) || strlen(inc) >= SUBS_TAKEOVER_INC_MAX)
        return -EINVAL;
    const char *routes = r->routes ? r->routes : "", *accept = r->accept ? r->accept : "";
    if (!cstr_word(r->call_id, SUBS_TAKEOVER_CALL_ID_MAX) || !cstr_word(r->remote_tag, SUBS_TAKEOVER_TAG_MAX) ||
        !cstr_word(r->target, SUBS_TAKEOVER_URI_MAX) || strlen(routes) >= SUBS_TAKEOVER_ROUTES_MAX ||
        !printable(routes, strlen(routes), true) || strlen(accept) >= SUBS_TAKEOVER_ACCEPT_MAX ||
        !printable(accept, strlen(accept), true) || !r->transport || !transport_ok(r->transport) ||
        !cstr_word(r->remote, SUBS_TAKEOVER_REMOTE_MAX) || r->local_cseq > INT32_MAX || r->remote_cseq > INT32_MAX ||
        r->version > INT32_MAX)
        return -EINVAL;
    int fl = snprintf(field, fcap, "%s/%s", node, r->id);
    if (fl < 0 || (size_t)fl >= fcap) return -ENOSPC;
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "v", SUBS_TAKEOVER_VERSION,
                          "node", node, "watcher", r->watcher, "event", r->event, "exp", (json_int_t)r->expires_wall_ms,
                          "cid", r->call_id, "ftag", r->remote_tag, "target", r->target, "routes", routes, "accept",
                          accept, "tp", r->transport, "remote", r->remote, "cseq", (json_int_t)r->local_cseq, "rcseq",
                          (json_int_t)r->remote_cseq, "ver", (json_int_t)r->version);
    if (!o) return -ENOMEM;
    if (inc[0] && json_object_set_new(o, "inc", json_string(inc)) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!txt) return -ENOMEM;
    size_t n = strlen(txt);
    if (n > SUBS_TAKEOVER_RECORD_MAX) {
        free(txt);
        return -ENOSPC;
    }
    *out = txt;
    return (int)n;
}

/* A string member of o into dst (cap), checked by ok (spaces allowed when
 * spaces and ok is NULL); absent: false unless may_miss (dst ""). */
static bool get_str(json_t *o, const char *key, char *dst, size_t cap, bool (*ok)(const char *, size_t, size_t),
                    bool spaces, bool may_miss)
{
    json_t *v = json_object_get(o, key);
    dst[0] = '\0';
    if (!v) return may_miss;
    if (!json_is_string(v)) return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= cap || strlen(s) != n) return false;
    if (ok ? !ok(s, n, cap) : !printable(s, n, spaces)) return false;
    memcpy(dst, s, n + 1);
    return true;
}

static bool get_u31(json_t *o, const char *key, uint32_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) return false;
    *out = (uint32_t)json_integer_value(v);
    return true;
}

int subs_takeover_record_decode(const char *field, size_t flen, const char *value, size_t vlen,
                                struct subs_takeover_record *out)
{
    memset(out, 0, sizeof(*out));
    if (!field || !value || flen == 0 || vlen == 0 || vlen > SUBS_TAKEOVER_RECORD_MAX) return -EINVAL;
    json_t *o = json_loadb(value, vlen, JSON_REJECT_DUPLICATES, NULL);
    int rc = -EINVAL;
    if (!o || !json_is_object(o)) goto out;
    json_t *v = json_object_get(o, "v"), *exp = json_object_get(o, "exp");
    if (v && (!json_is_integer(v) || json_integer_value(v) != SUBS_TAKEOVER_VERSION)) goto out;
    out->version = v ? SUBS_TAKEOVER_VERSION : 1;
    if (!json_is_integer(exp) || json_integer_value(exp) < 1) goto out;
    out->expires_wall_ms = json_integer_value(exp);
    if (!get_str(o, "node", out->node, sizeof(out->node), NULL, false, false) ||
        !node_ok(out->node, strlen(out->node)) ||
        !get_str(o, "watcher", out->watcher, sizeof(out->watcher), word_ok, false, false) ||
        !get_str(o, "event", out->event, sizeof(out->event), NULL, false, false) ||
        !event_ok(out->event, strlen(out->event)) ||
        !get_str(o, "inc", out->inc, sizeof(out->inc), word_ok, false, true) ||
        (out->inc[0] && !node_ok(out->inc, strlen(out->inc))))
        goto out;
    size_t nl = strlen(out->node);
    if (flen <= nl + 1 || memcmp(field, out->node, nl) != 0 || field[nl] != '/' ||
        !word_ok(field + nl + 1, flen - nl - 1, sizeof(out->tag)))
        goto out;
    memcpy(out->tag, field + nl + 1, flen - nl - 1);
    out->tag[flen - nl - 1] = '\0';
    if (out->version == SUBS_TAKEOVER_VERSION &&
        (!get_str(o, "cid", out->call_id, sizeof(out->call_id), word_ok, false, false) ||
         !get_str(o, "ftag", out->remote_tag, sizeof(out->remote_tag), word_ok, false, false) ||
         !get_str(o, "target", out->target, sizeof(out->target), word_ok, false, false) ||
         !get_str(o, "routes", out->routes, sizeof(out->routes), NULL, true, false) ||
         !get_str(o, "accept", out->accept, sizeof(out->accept), NULL, true, false) ||
         !get_str(o, "tp", out->transport, sizeof(out->transport), word_ok, false, false) ||
         !transport_ok(out->transport) ||
         !get_str(o, "remote", out->remote, sizeof(out->remote), word_ok, false, false) ||
         !get_u31(o, "cseq", &out->local_cseq) || !get_u31(o, "rcseq", &out->remote_cseq) ||
         !get_u31(o, "ver", &out->version_doc)))
        goto out;
    rc = 0;
out:
    json_decref(o);
    if (rc) memset(out, 0, sizeof(*out));
    return rc;
}

enum subs_takeover_verdict subs_takeover_decide(const struct subs_takeover_record *r, int64_t now_wall_ms)
{
    if (r->version < SUBS_TAKEOVER_VERSION) return SUBS_TAKEOVER_OLD;
    if (strcmp(r->transport, "udp") != 0) return SUBS_TAKEOVER_FLOW;
    if (r->expires_wall_ms <= now_wall_ms) return SUBS_TAKEOVER_EXPIRED;
    return SUBS_TAKEOVER_ADOPT;
}

static uint32_t jump(uint32_t v)
{
    uint64_t n = (uint64_t)v + SUBS_TAKEOVER_JUMP;
    return n > INT32_MAX ? INT32_MAX : (uint32_t)n;
}

void subs_takeover_row(const struct subs_takeover_record *r, const char *aor, struct store_subscription *row)
{
    *row = (struct store_subscription){.call_id = r->call_id, .local_tag = r->tag, .remote_tag = r->remote_tag,
                                       .event = r->event, .aor = aor, .subscriber = r->watcher, .target = r->target,
                                       .routes = r->routes, .remote = r->remote, .transport = r->transport,
                                       .expires_at = r->expires_wall_ms, .local_cseq = jump(r->local_cseq),
                                       .remote_cseq = r->remote_cseq, .version = jump(r->version_doc)};
}

int subs_takeover_reply_each(const struct redisReply *r,
                             void (*fn)(void *arg, const char *field, size_t flen, const char *value, size_t vlen),
                             void *arg)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2 || (r->elements && !r->element)) return -EINVAL;
    size_t pairs = r->elements / 2;
    if (pairs > SUBS_TAKEOVER_PAIRS_MAX) pairs = SUBS_TAKEOVER_PAIRS_MAX;
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *f = r->element[2 * i], *v = r->element[2 * i + 1];
        if (!f || !v || f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) fn(arg, NULL, 0, NULL, 0);
        else fn(arg, f->str, f->len, v->str, v->len);
    }
    return (int)pairs;
}

int subs_takeover_index_key(const char *prefix, const char *node, const char *inc, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%snode-subs:{%s}:%s", prefix, node, inc);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

/* ---- the walk ---- */

struct dead {
    char id[SUBS_TAKEOVER_NODE_MAX], inc[SUBS_TAKEOVER_INC_MAX];
};

struct subs_takeover {
    struct redis_cluster *rc;
    struct subs *subs;
    char prefix[64], node[SUBS_TAKEOVER_NODE_MAX];
    bool busy, closing;
    uint64_t gen;
    struct dead cur;
    char cursor[32];
    uint32_t outstanding;  /* adoption scripts of the current batch */
    bool failed;           /* something in this walk failed: the index is kept (its TTL) */
    struct dead queue[QUEUE_MAX];
    size_t queued;
    struct subs_takeover_stats stats;
};

struct op {
    struct subs_takeover *t;
    uint64_t gen;
    char aor[LOCATION_MAX_AOR];
};

static void walk_next(struct subs_takeover *t);
static void scan(struct subs_takeover *t);

static int op_send(struct subs_takeover *t, int key_index, int argc, const char **argv, const char *aor,
                void (*cb)(void *, int, const struct redisReply *))
{
    size_t lens[8];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    struct op *o = calloc(1, sizeof(*o));
    if (!o) return -ENOMEM;
    *o = (struct op){.t = t, .gen = t->gen};
    if (aor) snprintf(o->aor, sizeof(o->aor), "%s", aor);
    int rc = redis_cluster_command(t->rc, key_index, argc, argv, lens, cb, o);
    if (rc < 0) free(o);
    return rc;
}

static void on_dropped(void *arg, int status, const struct redisReply *reply)
{
    (void)status, (void)reply;
    free(arg);
}

static void walk_end(struct subs_takeover *t)
{
    if (!t->failed) { /* everything handed over: the index goes */
        char key[256];
        if (subs_takeover_index_key(t->prefix, t->cur.id, t->cur.inc, key, sizeof(key)) == 0) {
            const char *argv[] = {"DEL", key};
            op_send(t, 1, 2, argv, NULL, on_dropped);
        }
    }
    t->stats.nodes++;
    log_info("subs takeover: node %s (run %s) walked: %llu subscriptions adopted, %llu dropped so far here%s",
             t->cur.id, t->cur.inc, (unsigned long long)t->stats.adopted, (unsigned long long)t->stats.dropped,
             t->failed ? "; some failed (their records expire)" : "");
    t->busy = false;
    t->gen++;
    walk_next(t);
}

struct adopt_ctx {
    struct subs_takeover *t;
    const char *aor;
    int64_t now;
};

static void adopt_one(void *arg, const char *field, size_t flen, const char *value, size_t vlen)
{
    struct adopt_ctx *a = arg;
    struct subs_takeover *t = a->t;
    struct subs_takeover_record *r = malloc(sizeof(*r));
    if (!r || !field || subs_takeover_record_decode(field, flen, value, vlen, r) < 0) {
        t->stats.dropped++;
        log_warn_rl("subs takeover: a record of %s from node %s does not read: deleted", a->aor, t->cur.id);
        free(r);
        return;
    }
    enum subs_takeover_verdict v = subs_takeover_decide(r, a->now);
    int rc = -EINVAL;
    if (v == SUBS_TAKEOVER_ADOPT) {
        struct store_subscription row;
        subs_takeover_row(r, a->aor, &row);
        rc = subs_adopt(t->subs, &row, a->now);
    }
    if (rc == 0) {
        t->stats.adopted++;
    } else {
        t->stats.dropped++;
        log_info("subs takeover: the %s subscription of %s to %s on node %s deleted: %s", r->event, r->watcher, a->aor,
                 t->cur.id,
                 v == SUBS_TAKEOVER_OLD       ? "an old record (no dialog state)"
                 : v == SUBS_TAKEOVER_FLOW    ? "its subscriber's connection died with that node"
                 : v == SUBS_TAKEOVER_EXPIRED ? "expired"
                                              : strerror(-rc));
    }
    free(r);
}

static void on_adopt(void *arg, int status, const struct redisReply *reply)
{
    struct op *o = arg;
    struct subs_takeover *t = o->t;
    if (status == -ECANCELED || t->closing || o->gen != t->gen || !t->busy) {
        free(o);
        return;
    }
    struct adopt_ctx a = {.t = t, .aor = o->aor, .now = clock_wall_ms()};
    if (status < 0 || subs_takeover_reply_each(reply, adopt_one, &a) < 0) {
        t->stats.failures++;
        t->failed = true;
        log_warn_rl("subs takeover: the subscriptions of %s on node %s could not be taken (%s)", o->aor, t->cur.id,
                    status < 0                                          ? strerror(-status)
                    : reply && reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str
                                                                             : "bad answer");
    }
    free(o);
    if (--t->outstanding == 0) {
        if (!strcmp(t->cursor, "0")) walk_end(t);
        else scan(t);
    }
}

static bool member_ok(const char *s, size_t n)
{
    if (!n || n >= LOCATION_MAX_AOR) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '{' || c == '}') return false;
    }
    return true;
}

static void on_scan(void *arg, int status, const struct redisReply *reply)
{
    struct op *o = arg;
    struct subs_takeover *t = o->t;
    bool mine = status != -ECANCELED && !t->closing && o->gen == t->gen && t->busy;
    free(o);
    if (!mine) return;
    if (status < 0 || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING || !reply->element[0]->len ||
        reply->element[0]->len >= sizeof(t->cursor) || reply->element[1]->type != REDIS_REPLY_ARRAY) {
        t->stats.failures++;
        t->failed = true;
        log_warn_rl("subs takeover: node %s's index could not be read", t->cur.id);
        walk_end(t);
        return;
    }
    memcpy(t->cursor, reply->element[0]->str, reply->element[0]->len);
    t->cursor[reply->element[0]->len] = '\0';
    const redisReply *m = reply->element[1];
    char node[SUBS_TAKEOVER_NODE_MAX], inc[SUBS_TAKEOVER_INC_MAX];
    snprintf(node, sizeof(node), "%s", t->cur.id);
    snprintf(inc, sizeof(inc), "%s", t->cur.inc);
    t->outstanding = 1; /* held while sending: an answer inside cannot end the batch */
    for (size_t i = 0; i < m->elements; i++) {
        const redisReply *e = m->element[i];
        if (e->type != REDIS_REPLY_STRING || !member_ok(e->str, e->len)) continue;
        char aor[LOCATION_MAX_AOR], key[LOCATION_MAX_AOR + 80];
        memcpy(aor, e->str, e->len);
        aor[e->len] = '\0';
        snprintf(key, sizeof(key), "%ssubs:{%s}", t->prefix, aor);
        const char *argv[] = {"EVAL", ADOPT_LUA, "1", key, node, inc};
        if (op_send(t, 3, 6, argv, aor, on_adopt) < 0) {
            t->stats.failures++;
            t->failed = true;
            continue;
        }
        t->outstanding++;
    }
    if (--t->outstanding == 0) {
        if (!strcmp(t->cursor, "0")) walk_end(t);
        else scan(t);
    }
}

static void scan(struct subs_takeover *t)
{
    char key[256];
    if (subs_takeover_index_key(t->prefix, t->cur.id, t->cur.inc, key, sizeof(key)) < 0) {
        walk_end(t);
        return;
    }
    const char *argv[] = {"SSCAN", key, t->cursor, "COUNT", "128"};
    if (op_send(t, 1, 5, argv, NULL, on_scan) < 0) {
        t->stats.failures++;
        t->failed = true;
        walk_end(t);
    }
}

static void walk_next(struct subs_takeover *t)
{
    if (t->busy || t->closing || !t->queued) return;
    t->cur = t->queue[0];
    memmove(t->queue, t->queue + 1, (t->queued - 1) * sizeof(t->queue[0]));
    t->queued--;
    t->busy = true;
    t->failed = false;
    t->outstanding = 0;
    snprintf(t->cursor, sizeof(t->cursor), "0");
    log_info("subs takeover: taking over the subscriptions of node %s (run %s)", t->cur.id, t->cur.inc);
    scan(t);
}

void subs_takeover_node_reaped(void *arg, const char *id, const char *inc)
{
    struct subs_takeover *t = arg;
    if (!t || t->closing || !node_ok(id, strlen(id)) || !inc[0] || strlen(inc) >= SUBS_TAKEOVER_INC_MAX) return;
    if (t->queued >= QUEUE_MAX) {
        t->stats.failures++;
        log_warn_rl("subs takeover: too many dead nodes at once; node %s's subscriptions expire instead", id);
        return;
    }
    struct dead *d = &t->queue[t->queued++];
    snprintf(d->id, sizeof(d->id), "%s", id);
    snprintf(d->inc, sizeof(d->inc), "%s", inc);
    walk_next(t);
}

struct subs_takeover *subs_takeover_new(uv_loop_t *loop, struct timer_service *timers, struct subs *s,
                                        const struct redis_config *cfg, const char *node_id, int *err)
{
    if (!node_ok(node_id, strlen(node_id))) {
        *err = -EINVAL;
        return NULL;
    }
    struct subs_takeover *t = calloc(1, sizeof(*t));
    if (!t) {
        *err = -ENOMEM;
        return NULL;
    }
    t->subs = s;
    snprintf(t->prefix, sizeof(t->prefix), "%s", cfg->key_prefix);
    snprintf(t->node, sizeof(t->node), "%s", node_id);
    struct redis_cluster_config rc = {.seeds = cfg->nodes, .timeout_ms = cfg->timeout_ms};
    t->rc = redis_cluster_new(loop, timers, &rc, err);
    if (!t->rc) {
        free(t);
        return NULL;
    }
    return t;
}

void subs_takeover_free(struct subs_takeover *t)
{
    if (!t) return;
    t->closing = true;
    redis_cluster_free(t->rc); /* callbacks: -ECANCELED */
    free(t);
}

void subs_takeover_get_stats(const struct subs_takeover *t, struct subs_takeover_stats *out) { *out = t->stats; }
