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
#include "base/json_out.h"
#include "base/log.h"
#include "redis/redis_cluster.h"
#include "registrar/location.h"
#include "store/store.h"
#include "subs/presence_mirror.h"

#define QUEUE_MAX 8         /* dead runs waiting for the walk in progress (more: found again later) */
#define FIND_MAX 8          /* runs one node's find script answers at most */
#define IDS_MAX 256         /* node ids one check looks at */
#define RECLAIM_BATCH 512   /* claims of loaded subscriptions in flight at most */

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
    int n = json_out_dup(o, SUBS_TAKEOVER_RECORD_MAX, out);
    json_decref(o);
    return n;
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

/* ---- the runs to walk (resumable walks) ----
 *
 * <prefix>subs-runs:{<id>}: a hash, field the incarnation of a run of node
 * id whose subscriptions may need walking, value "" (nobody walks it) or
 * "<until wall ms> <claimer>" (a walk's claim). A live run registers itself
 * (REGISTER_LUA) once the node registry lists it (node-incs:{<id>}, the
 * heartbeat's), so a run is never taken for dead before it is listed; the
 * field goes when a walk of it ends without failure (DONE_LUA). A run is
 * walkable once it is no longer listed (its reap finished: FINISH_LUA in
 * cluster.c dropped it) and unclaimed or its claim lapsed: any survivor's
 * periodic check finds it (FIND_LUA; the ids to look at in
 * <prefix>subs-nodes), so a claimer dying before or during its walk leaves
 * it to the next. The keys of one id share its hash tag with node-incs. */

/* KEYS[1] runs, KEYS[2] node-incs; ARGV inc, TTL ms. 1: registered. */
static const char REGISTER_LUA[] =
    "if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return 0 end\n"
    "redis.call('HSETNX', KEYS[1], ARGV[1], '')\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n";

/* KEYS[1] runs, KEYS[2] node-incs; ARGV now. The walkable runs (at most
 * FIND_MAX), or -1 when the hash is gone. */
static const char FIND_LUA[] =
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "if #h == 0 then return -1 end\n"
    "local out = {}\n"
    "for i = 1, #h, 2 do\n"
    "  if redis.call('SISMEMBER', KEYS[2], h[i]) == 0 then\n"
    "    local u = tonumber(string.match(h[i + 1], '^(%d+) ')) or 0\n"
    "    if u <= tonumber(ARGV[1]) then out[#out + 1] = h[i] end\n"
    "  end\n"
    "  if #out >= 8 then break end\n"
    "end\n"
    "return out\n";

/* The walk's claim, taken or renewed. KEYS[1] runs, KEYS[2] node-incs;
 * ARGV inc, claimer, now, lease ms, create ("1": the reap just finished,
 * the field may be missing), TTL ms. 1: ours until now + lease. */
static const char CLAIM_LUA[] =
    "if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end\n"
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not v then if ARGV[5] ~= '1' then return 0 end v = '' end\n"
    "local u, who = string.match(v, '^(%d+) (.*)$')\n"
    "if u and who ~= ARGV[2] and tonumber(u) > tonumber(ARGV[3]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', tonumber(ARGV[3]) + tonumber(ARGV[4])) .. ' ' .. "
    "ARGV[2])\n"
    "if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end\n"
    "return 1\n";

/* The walk done: the run's field goes while the claim is ours.
 * KEYS[1] runs; ARGV inc, claimer. */
static const char DONE_LUA[] =
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if v and string.match(v, '^%d+ (.*)$') == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) return 1 end\n"
    "return 0\n";

/* A subscription this node took up from its store after a restart, claimed
 * for its new run: its field (ours by name) rewritten with the new run when
 * it is still there, 1; gone (a survivor's ADOPT_LUA took it, or it
 * expired), 0. ADOPT_LUA takes only the old run's records, and both run on
 * the AoR's hash one at a time: exactly one of them has each record.
 * KEYS[1] the AoR's hash; ARGV field, node, new inc, new record. */
static const char RECLAIM_LUA[] =
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not v then return 0 end\n"
    "local ok, r = pcall(cjson.decode, v)\n"
    "if not ok or type(r) ~= 'table' or r.node ~= ARGV[2] then return 0 end\n"
    "if r.inc ~= ARGV[3] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[4]) end\n"
    "return 1\n";

/* After a self-reap (this live run was taken for dead and listed again):
 * may its subscriptions be claimed yet? 1 when no other node's walk of
 * this run can still be taking records: the run's field absent (never
 * registered, or walked to the end: DONE_LUA, sent after the index's DEL),
 * "" (unclaimed), claimed by this node, or its claim lapsed (a walk whose
 * claim was refused at its renewal because the run is listed again stops
 * after that batch). 0 while another node's claim holds. A walk cannot
 * claim it any more (CLAIM_LUA: listed). KEYS[1] runs; ARGV inc, claimer,
 * now. */
static const char GATE_LUA[] =
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not v or v == '' then return 1 end\n"
    "local u, who = string.match(v, '^(%d+) (.*)$')\n"
    "if not u or who == ARGV[2] or tonumber(u) <= tonumber(ARGV[3]) then return 1 end\n"
    "return 0\n";

/* An AoR into this run's index (as presence_mirror.c's). KEYS[1] the
 * index; ARGV the AoR, the TTL (ms). */
static const char INDEX_LUA[] = "redis.call('SADD', KEYS[1], ARGV[1]) redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1";

/* ---- the walk ---- */

struct dead {
    char id[SUBS_TAKEOVER_NODE_MAX], inc[SUBS_TAKEOVER_INC_MAX];
    bool create; /* told by the reap: the run's field may not be there */
};

struct subs_takeover {
    struct subs_takeover_io io;
    struct redis_cluster *rc; /* the default io's */
    struct timer_service *timers;
    struct timer_node tick;
    struct subs *subs;
    char prefix[64], node[SUBS_TAKEOVER_NODE_MAX], inc[SUBS_TAKEOVER_INC_MAX];
    char claimer[SUBS_TAKEOVER_NODE_MAX + SUBS_TAKEOVER_INC_MAX];
    bool busy, closing;
    uint64_t gen;
    struct dead cur;
    char cursor[32];
    uint32_t outstanding;  /* adoption scripts of the current batch */
    bool failed;           /* something in this walk failed: the index is kept (its TTL), the claim lapses */
    bool lost;             /* the claim was lost meanwhile: another node walks it */
    struct dead queue[QUEUE_MAX];
    size_t queued;
    uint32_t reclaims;     /* claims of loaded subscriptions in flight */
    bool reclaim_failed;   /* one of this pass failed: the next tick retries */
    uint64_t epoch;        /* bumped at a self-reap: claims sent before it are not applied */
    bool gated;            /* self-reaped: no claim until GATE_LUA says no walk of this run goes on */
    bool gate_sent;        /* GATE_LUA in flight */
    uint64_t gate_epoch;   /* the epoch it was sent in */
    bool self_pending;     /* a self-reap's claims not all settled: its outcome logged once they are */
    uint64_t self_kept, self_let_go; /* of the last self-reap */
    struct subs_takeover_stats stats;
};

struct op {
    struct subs_takeover *t;
    uint64_t gen;
    char aor[LOCATION_MAX_AOR];
};

static void walk_next(struct subs_takeover *t);
static void scan(struct subs_takeover *t);

static int send_cmd(struct subs_takeover *t, int key_index, int argc, const char **argv, subs_takeover_cb cb,
                    void *arg)
{
    size_t lens[12];
    for (int i = 0; i < argc && i < 12; i++) lens[i] = strlen(argv[i]);
    return t->io.command(t->io.arg, key_index, argc, argv, lens, cb, arg);
}

static int op_send(struct subs_takeover *t, int key_index, int argc, const char **argv, const char *aor,
                   subs_takeover_cb cb)
{
    struct op *o = calloc(1, sizeof(*o));
    if (!o) return -ENOMEM;
    *o = (struct op){.t = t, .gen = t->gen};
    if (aor) snprintf(o->aor, sizeof(o->aor), "%s", aor);
    int rc = send_cmd(t, key_index, argc, argv, cb, o);
    if (rc < 0) free(o);
    return rc;
}

static void on_dropped(void *arg, int status, const struct redisReply *reply)
{
    (void)status, (void)reply;
    free(arg);
}

static void runs_key(const struct subs_takeover *t, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%ssubs-runs:{%s}", t->prefix, id);
}

static void incs_key(const struct subs_takeover *t, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%snode-incs:{%s}", t->prefix, id); /* cluster.c's */
}

static void walk_end(struct subs_takeover *t)
{
    if (!t->failed && !t->lost) { /* everything handed over: the index and the run's field go */
        char key[256];
        if (subs_takeover_index_key(t->prefix, t->cur.id, t->cur.inc, key, sizeof(key)) == 0) {
            const char *argv[] = {"DEL", key};
            op_send(t, 1, 2, argv, NULL, on_dropped);
        }
        runs_key(t, t->cur.id, key, sizeof(key));
        const char *argv[] = {"EVAL", DONE_LUA, "1", key, t->cur.inc, t->claimer};
        op_send(t, 3, 6, argv, NULL, on_dropped);
    }
    t->stats.nodes++;
    log_info("subs takeover: node %s (run %s) walked: %llu subscriptions adopted, %llu dropped so far here%s",
             t->cur.id, t->cur.inc, (unsigned long long)t->stats.adopted, (unsigned long long)t->stats.dropped,
             t->lost     ? "; its claim was lost (another node goes on)"
             : t->failed ? "; some failed (walked again once the claim lapses)"
                         : "");
    t->busy = false;
    t->gen++;
    walk_next(t);
}

/* The walk of the current run with its claim renewed (or taken first). */
static int send_claim(struct subs_takeover *t, bool create, subs_takeover_cb cb)
{
    char runs[256], incs[256], now[24], lease[24], ttl[24];
    runs_key(t, t->cur.id, runs, sizeof(runs));
    incs_key(t, t->cur.id, incs, sizeof(incs));
    snprintf(now, sizeof(now), "%lld", (long long)t->io.wall_ms(t->io.arg));
    snprintf(lease, sizeof(lease), "%u", SUBS_TAKEOVER_LEASE_MS);
    snprintf(ttl, sizeof(ttl), "%u", SUBS_TAKEOVER_INDEX_TTL_MS);
    const char *argv[] = {"EVAL", CLAIM_LUA, "2", runs, incs, t->cur.inc, t->claimer, now, lease, create ? "1" : "0",
                          ttl};
    return op_send(t, 3, 11, argv, NULL, cb);
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
        /* this node's own, taken up from its store and not yet claimed (a
         * walk of its previous run): the script just handed it here */
        if (rc == -EEXIST && subs_claimed(t->subs, r->call_id, r->tag, true) == 0) {
            t->stats.reclaimed++;
            rc = 0;
        } else if (rc == 0) {
            t->stats.adopted++;
        }
    }
    if (rc == -EDQUOT) {
        t->stats.refused_cap++;
        log_warn_rl("subs takeover: the %s subscription of %s to %s on node %s not taken: [subscriptions] "
                    "max_total or max_per_subscriber reached here (told to subscribe again)",
                    r->event, r->watcher, a->aor, t->cur.id);
    } else if (rc != 0) {
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

static bool current(const struct subs_takeover *t, const struct op *o)
{
    return !t->closing && o->gen == t->gen && t->busy;
}

static void batch_done(struct subs_takeover *t)
{
    if (!strcmp(t->cursor, "0") || t->lost) walk_end(t);
    else scan(t);
}

static void on_adopt(void *arg, int status, const struct redisReply *reply)
{
    struct op *o = arg;
    struct subs_takeover *t = o->t;
    if (status == -ECANCELED || !current(t, o)) {
        free(o);
        return;
    }
    struct adopt_ctx a = {.t = t, .aor = o->aor, .now = t->io.wall_ms(t->io.arg)};
    if (status < 0 || subs_takeover_reply_each(reply, adopt_one, &a) < 0) {
        t->stats.failures++;
        t->failed = true;
        log_warn_rl("subs takeover: the subscriptions of %s on node %s could not be taken (%s)", o->aor, t->cur.id,
                    status < 0                                          ? strerror(-status)
                    : reply && reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str
                                                                             : "bad answer");
    }
    free(o);
    if (--t->outstanding == 0) batch_done(t);
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
    bool mine = status != -ECANCELED && current(t, o);
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
    if (--t->outstanding == 0) batch_done(t);
}

/* A renewal's answer: lost, the walk stops after this batch. */
static void on_renew(void *arg, int status, const struct redisReply *reply)
{
    struct op *o = arg;
    struct subs_takeover *t = o->t;
    if (status != -ECANCELED && current(t, o) && status == 0 && reply && reply->type == REDIS_REPLY_INTEGER &&
        reply->integer == 0)
        t->lost = true;
    free(o);
}

static void scan(struct subs_takeover *t)
{
    char key[256];
    if (subs_takeover_index_key(t->prefix, t->cur.id, t->cur.inc, key, sizeof(key)) < 0) {
        walk_end(t);
        return;
    }
    if (strcmp(t->cursor, "0") != 0) send_claim(t, false, on_renew); /* a later batch: the claim renewed */
    const char *argv[] = {"SSCAN", key, t->cursor, "COUNT", "128"};
    if (op_send(t, 1, 5, argv, NULL, on_scan) < 0) {
        t->stats.failures++;
        t->failed = true;
        walk_end(t);
    }
}

/* The claim's answer before a walk: 1, the walk; else another node has it
 * (or it is done, or still listed): the next. */
static void on_claim(void *arg, int status, const struct redisReply *reply)
{
    struct op *o = arg;
    struct subs_takeover *t = o->t;
    bool mine = status != -ECANCELED && current(t, o);
    free(o);
    if (!mine) return;
    if (status == 0 && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        log_info("subs takeover: taking over the subscriptions of node %s (run %s)", t->cur.id, t->cur.inc);
        scan(t);
        return;
    }
    if (status < 0 || !reply || reply->type != REDIS_REPLY_INTEGER) {
        t->stats.failures++;
        log_warn_rl("subs takeover: node %s (run %s) could not be claimed; found again later", t->cur.id, t->cur.inc);
    }
    t->busy = false;
    t->gen++;
    walk_next(t);
}

static void walk_next(struct subs_takeover *t)
{
    while (!t->busy && !t->closing && t->queued) {
        t->cur = t->queue[0];
        memmove(t->queue, t->queue + 1, (t->queued - 1) * sizeof(t->queue[0]));
        t->queued--;
        t->busy = true;
        t->failed = false;
        t->lost = false;
        t->outstanding = 0;
        snprintf(t->cursor, sizeof(t->cursor), "0");
        if (send_claim(t, t->cur.create, on_claim) < 0) {
            t->stats.failures++;
            t->busy = false;
            t->gen++;
        }
    }
}

/* Queued unless already queued or being walked. */
static void enqueue(struct subs_takeover *t, const char *id, const char *inc, bool create)
{
    if (t->busy && !strcmp(t->cur.id, id) && !strcmp(t->cur.inc, inc)) return;
    for (size_t i = 0; i < t->queued; i++)
        if (!strcmp(t->queue[i].id, id) && !strcmp(t->queue[i].inc, inc)) {
            t->queue[i].create |= create;
            return;
        }
    if (t->queued >= QUEUE_MAX) {
        log_warn_rl("subs takeover: too many dead runs at once; node %s's run %s is walked later", id, inc);
        return;
    }
    struct dead *d = &t->queue[t->queued++];
    *d = (struct dead){.create = create};
    snprintf(d->id, sizeof(d->id), "%s", id);
    snprintf(d->inc, sizeof(d->inc), "%s", inc);
    walk_next(t);
}

void subs_takeover_node_reaped(void *arg, const char *id, const char *inc)
{
    struct subs_takeover *t = arg;
    if (!t || t->closing || !node_ok(id, strlen(id)) || !inc[0] || !node_ok(inc, strlen(inc)) ||
        strlen(inc) >= SUBS_TAKEOVER_INC_MAX)
        return;
    enqueue(t, id, inc, true);
}

/* ---- the periodic check: this run registered, other runs found ---- */

struct find_op {
    struct subs_takeover *t;
    char id[SUBS_TAKEOVER_NODE_MAX];
};

static void on_find(void *arg, int status, const struct redisReply *reply)
{
    struct find_op *f = arg;
    struct subs_takeover *t = f->t;
    if (status == -ECANCELED || t->closing || status < 0 || !reply) {
        free(f);
        return;
    }
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == -1 && strcmp(f->id, t->node) != 0) {
        char key[256]; /* nothing left of that id: out of the list (it adds itself back while it lives) */
        snprintf(key, sizeof(key), "%ssubs-nodes", t->prefix);
        const char *argv[] = {"SREM", key, f->id};
        op_send(t, 1, 3, argv, NULL, on_dropped);
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements && i < FIND_MAX; i++) {
            const redisReply *e = reply->element[i];
            if (!e || e->type != REDIS_REPLY_STRING || !e->len || e->len >= SUBS_TAKEOVER_INC_MAX ||
                !node_ok(e->str, e->len))
                continue;
            char inc[SUBS_TAKEOVER_INC_MAX];
            memcpy(inc, e->str, e->len);
            inc[e->len] = '\0';
            if (!strcmp(f->id, t->node) && !strcmp(inc, t->inc)) continue; /* this run */
            enqueue(t, f->id, inc, false);
        }
    }
    free(f);
}

static void on_ids(void *arg, int status, const struct redisReply *reply)
{
    struct op *o = arg;
    struct subs_takeover *t = o->t;
    free(o);
    if (status == -ECANCELED || t->closing || status < 0 || !reply || reply->type != REDIS_REPLY_ARRAY) return;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)t->io.wall_ms(t->io.arg));
    for (size_t i = 0; i < reply->elements && i < IDS_MAX; i++) {
        const redisReply *e = reply->element[i];
        if (!e || e->type != REDIS_REPLY_STRING || !e->len || e->len >= SUBS_TAKEOVER_NODE_MAX ||
            !node_ok(e->str, e->len))
            continue;
        struct find_op *f = calloc(1, sizeof(*f));
        if (!f) return;
        f->t = t;
        memcpy(f->id, e->str, e->len);
        f->id[e->len] = '\0';
        char runs[256], incs[256];
        runs_key(t, f->id, runs, sizeof(runs));
        incs_key(t, f->id, incs, sizeof(incs));
        const char *argv[] = {"EVAL", FIND_LUA, "2", runs, incs, now};
        if (send_cmd(t, 3, 6, argv, on_find, f) < 0) free(f);
    }
}

static void on_registered(void *arg, int status, const struct redisReply *reply)
{
    struct op *o = arg;
    struct subs_takeover *t = o->t;
    free(o);
    if (status == -ECANCELED || t->closing) return;
    if (status == 0 && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        char key[256];
        snprintf(key, sizeof(key), "%ssubs-nodes", t->prefix);
        const char *argv[] = {"SADD", key, t->node};
        op_send(t, 1, 3, argv, NULL, on_dropped);
    }
}

static void reclaim_pass(struct subs_takeover *t);
static void gate_send(struct subs_takeover *t);

static void check(struct subs_takeover *t)
{
    if (t->closing) return;
    if (t->inc[0]) { /* this run walkable once reaped */
        char runs[256], incs[256], ttl[24];
        runs_key(t, t->node, runs, sizeof(runs));
        incs_key(t, t->node, incs, sizeof(incs));
        snprintf(ttl, sizeof(ttl), "%u", SUBS_TAKEOVER_INDEX_TTL_MS);
        const char *argv[] = {"EVAL", REGISTER_LUA, "2", runs, incs, t->inc, ttl};
        op_send(t, 3, 7, argv, NULL, on_registered);
    }
    char key[256];
    snprintf(key, sizeof(key), "%ssubs-nodes", t->prefix);
    const char *argv[] = {"SMEMBERS", key};
    op_send(t, 1, 2, argv, NULL, on_ids);
    if (t->gated) gate_send(t);
    else if (!t->reclaims) reclaim_pass(t);
}

static void on_tick(struct timer_node *n, uint64_t now_ms)
{
    struct subs_takeover *t = container_of(n, struct subs_takeover, tick);
    timer_start(t->timers, &t->tick, now_ms + SUBS_TAKEOVER_CHECK_MS, on_tick);
    check(t);
}

/* ---- this node's subscriptions taken up from its store, claimed ---- */

struct reclaim {
    struct subs_takeover *t;
    uint64_t epoch;
    char *value;
    size_t value_len;
    char aor[LOCATION_MAX_AOR], call_id[SUBS_TAKEOVER_CALL_ID_MAX], tag[SUBS_TAKEOVER_TAG_MAX];
    char field[SUBS_TAKEOVER_NODE_MAX + SUBS_TAKEOVER_TAG_MAX];
};

static void reclaim_free(struct reclaim *c)
{
    free(c->value);
    free(c);
}

static void reclaim_settled(struct subs_takeover *t, bool failed)
{
    if (failed) t->reclaim_failed = true;
    if (--t->reclaims == 0 && !t->reclaim_failed && !t->closing) reclaim_pass(t); /* more than one batch */
}

static void on_reclaim(void *arg, int status, const struct redisReply *reply)
{
    struct reclaim *c = arg;
    struct subs_takeover *t = c->t;
    if (status == -ECANCELED || t->closing) {
        reclaim_free(c);
        return;
    }
    bool failed = status < 0 || !reply || reply->type != REDIS_REPLY_INTEGER;
    if (c->epoch != t->epoch) {
        /* sent before a self-reap: a survivor may have taken the record
         * since; claimed again once the gate opens */
    } else if (failed) {
        t->stats.failures++;
        log_warn_rl("subs takeover: the subscription %s of %s could not be claimed for this run; retried",
                    c->call_id, c->aor);
    } else if (subs_claimed(t->subs, c->call_id, c->tag, reply->integer == 1) == 0) {
        bool kept = reply->integer == 1;
        if (kept) t->stats.reclaimed++;
        else t->stats.let_go++;
        if (t->self_pending && kept) t->self_kept++;
        else if (t->self_pending) t->self_let_go++;
    }
    bool stale = c->epoch != t->epoch;
    reclaim_free(c);
    reclaim_settled(t, failed && !stale);
}

/* The index first (a claim with no index would not be walked if this node
 * died next), then the claim. */
static void on_reclaim_indexed(void *arg, int status, const struct redisReply *reply)
{
    struct reclaim *c = arg;
    struct subs_takeover *t = c->t;
    if (status == -ECANCELED || t->closing) {
        reclaim_free(c);
        return;
    }
    if (c->epoch != t->epoch) { /* a self-reap since: claimed again once the gate opens */
        reclaim_free(c);
        reclaim_settled(t, false);
        return;
    }
    if (status < 0 || !reply || reply->type == REDIS_REPLY_ERROR) {
        t->stats.failures++;
        log_warn_rl("subs takeover: the subscriptions of %s could not be indexed for this run; retried", c->aor);
        reclaim_free(c);
        reclaim_settled(t, true);
        return;
    }
    char key[LOCATION_MAX_AOR + 80];
    snprintf(key, sizeof(key), "%ssubs:{%s}", t->prefix, c->aor);
    const char *argv[] = {"EVAL", RECLAIM_LUA, "1", key, c->field, t->node, t->inc, c->value};
    size_t lens[8];
    for (int i = 0; i < 8; i++) lens[i] = i == 7 ? c->value_len : strlen(argv[i]);
    if (t->io.command(t->io.arg, 3, 8, argv, lens, on_reclaim, c) < 0) {
        t->stats.failures++;
        reclaim_free(c);
        reclaim_settled(t, true);
    }
}

struct pass {
    struct subs_takeover *t;
    size_t sent;
};

static void reclaim_one(void *arg, const struct subs_record *r)
{
    struct pass *p = arg;
    struct subs_takeover *t = p->t;
    if (p->sent >= RECLAIM_BATCH) return;
    struct reclaim *c = calloc(1, sizeof(*c));
    if (!c) return;
    c->t = t;
    c->epoch = t->epoch;
    int n = subs_takeover_record_encode(t->node, t->inc, r, c->field, sizeof(c->field), &c->value);
    if (n == -EINVAL) n = presence_sub_record_encode(t->node, r, c->field, sizeof(c->field), &c->value);
    if (n < 0 || strlen(r->aor) >= sizeof(c->aor) || strlen(r->call_id) >= sizeof(c->call_id) ||
        strlen(r->id) >= sizeof(c->tag)) {
        reclaim_free(c);
        return;
    }
    c->value_len = (size_t)n;
    snprintf(c->aor, sizeof(c->aor), "%s", r->aor);
    snprintf(c->call_id, sizeof(c->call_id), "%s", r->call_id);
    snprintf(c->tag, sizeof(c->tag), "%s", r->id);
    char idx[256], ttl[24];
    if (subs_takeover_index_key(t->prefix, t->node, t->inc, idx, sizeof(idx)) < 0) {
        reclaim_free(c);
        return;
    }
    snprintf(ttl, sizeof(ttl), "%u", SUBS_TAKEOVER_INDEX_TTL_MS);
    const char *argv[] = {"EVAL", INDEX_LUA, "1", idx, c->aor, ttl};
    if (send_cmd(t, 3, 6, argv, on_reclaim_indexed, c) < 0) {
        reclaim_free(c);
        return;
    }
    t->reclaims++;
    p->sent++;
}

static void reclaim_pass(struct subs_takeover *t)
{
    if (t->closing || !t->inc[0] || t->reclaims || t->gated) return;
    t->reclaim_failed = false;
    struct pass p = {.t = t};
    t->reclaims = 1; /* held while sending */
    size_t left = subs_unclaimed(t->subs, reclaim_one, &p);
    if (!left && t->self_pending) { /* the self-reap's claims all settled: its outcome, once */
        t->self_pending = false;
        log_warn("subs takeover: after this node was taken for dead, %llu of its subscriptions were still its "
                 "own (kept) and %llu had been adopted by a survivor (let go without a NOTIFY)",
                 (unsigned long long)t->self_kept, (unsigned long long)t->self_let_go);
    }
    if (--t->reclaims == 0 && p.sent) reclaim_pass(t); /* every answer came inside: the rest */
}

/* ---- this live node taken for dead (the self-reap) ---- */

static void on_gate(void *arg, int status, const struct redisReply *reply)
{
    struct op *o = arg;
    struct subs_takeover *t = o->t;
    free(o);
    if (status == -ECANCELED || t->closing) return;
    t->gate_sent = false;
    if (t->gate_epoch != t->epoch) { /* asked before another self-reap: asked again */
        gate_send(t);
        return;
    }
    if (status < 0 || !reply || reply->type != REDIS_REPLY_INTEGER) {
        t->stats.failures++;
        log_warn_rl("subs takeover: whether a survivor still walks this node's run could not be read; asked again");
        return;
    }
    if (reply->integer != 1) return; /* a survivor's walk of this run holds its claim: the next check asks again */
    t->gated = false;
    /* those over a connection were never put back (no survivor adopts them)
     * but a walk deleted their records: written again, indexed again */
    subs_records_rewrite(t->subs);
    reclaim_pass(t);
}

static void gate_send(struct subs_takeover *t)
{
    if (t->gate_sent || t->closing) return;
    char runs[256], now[24];
    runs_key(t, t->node, runs, sizeof(runs));
    snprintf(now, sizeof(now), "%lld", (long long)t->io.wall_ms(t->io.arg));
    const char *argv[] = {"EVAL", GATE_LUA, "1", runs, t->inc, t->claimer, now};
    if (op_send(t, 3, 7, argv, NULL, on_gate) < 0) {
        t->stats.failures++;
        return;
    }
    t->gate_sent = true;
    t->gate_epoch = t->epoch;
}

void subs_takeover_self_reaped(void *arg)
{
    struct subs_takeover *t = arg;
    if (!t || t->closing || !t->inc[0]) return;
    size_t n = subs_unclaim_all(t->subs);
    t->stats.self_reaped++;
    t->epoch++;
    t->gated = true;
    t->self_pending = true;
    t->self_kept = t->self_let_go = 0;
    log_warn("subs takeover: this node (%s, run %s) was taken for dead by a peer: its %zu subscriptions over UDP are "
             "held silent until each is claimed again (a survivor may have adopted some); those over a connection "
             "go on, their records written again",
             t->node, t->inc, n);
    gate_send(t);
}

/* ---- life cycle ---- */

static int rc_command(void *arg, int key_index, int argc, const char **argv, const size_t *lens, subs_takeover_cb cb,
                      void *cb_arg)
{
    struct subs_takeover *t = arg;
    return redis_cluster_command(t->rc, key_index, argc, argv, lens, cb, cb_arg);
}

static int64_t rc_wall(void *arg)
{
    (void)arg;
    return clock_wall_ms();
}

struct subs_takeover *subs_takeover_new_io(struct timer_service *timers, struct subs *s, const char *key_prefix,
                                           const char *node_id, const char *inc, const struct subs_takeover_io *io,
                                           int *err)
{
    if (!node_ok(node_id, strlen(node_id)) || !inc || (inc[0] && !node_ok(inc, strlen(inc))) ||
        strlen(inc) >= SUBS_TAKEOVER_INC_MAX || strlen(key_prefix) >= 64) {
        *err = -EINVAL;
        return NULL;
    }
    struct subs_takeover *t = calloc(1, sizeof(*t));
    if (!t) {
        *err = -ENOMEM;
        return NULL;
    }
    t->subs = s;
    t->timers = timers;
    timer_node_init(&t->tick);
    snprintf(t->prefix, sizeof(t->prefix), "%s", key_prefix);
    snprintf(t->node, sizeof(t->node), "%s", node_id);
    snprintf(t->inc, sizeof(t->inc), "%s", inc);
    snprintf(t->claimer, sizeof(t->claimer), "%s/%s", node_id, inc);
    if (io) {
        t->io = *io;
        if (!t->io.wall_ms) t->io.wall_ms = rc_wall;
    }
    return t;
}

/* Starts the ticks and the claims of what the store gave back. */
static void keep_one(void *arg, const struct subs_record *r)
{
    subs_claimed(arg, r->call_id, r->id, true);
}

static void start(struct subs_takeover *t)
{
    timer_start(t->timers, &t->tick, timer_now(t->timers) + SUBS_TAKEOVER_CHECK_MS, on_tick);
    if (!t->inc[0]) { /* no run to claim them for (node death off): held as before */
        subs_unclaimed(t->subs, keep_one, t->subs);
        return;
    }
    reclaim_pass(t);
}

struct subs_takeover *subs_takeover_new(uv_loop_t *loop, struct timer_service *timers, struct subs *s,
                                        const struct redis_config *cfg, const char *node_id, const char *inc,
                                        int *err)
{
    struct subs_takeover *t = subs_takeover_new_io(timers, s, cfg->key_prefix, node_id, inc, NULL, err);
    if (!t) return NULL;
    struct redis_cluster_config rc = {.seeds = cfg->nodes, .timeout_ms = cfg->timeout_ms};
    t->rc = redis_cluster_new(loop, timers, &rc, err);
    if (!t->rc) {
        free(t);
        return NULL;
    }
    t->io = (struct subs_takeover_io){.arg = t, .command = rc_command, .wall_ms = rc_wall};
    start(t);
    return t;
}

void subs_takeover_start(struct subs_takeover *t) { start(t); }

void subs_takeover_free(struct subs_takeover *t)
{
    if (!t) return;
    t->closing = true;
    timer_stop(t->timers, &t->tick);
    redis_cluster_free(t->rc); /* callbacks: -ECANCELED */
    free(t);
}

void subs_takeover_get_stats(const struct subs_takeover *t, struct subs_takeover_stats *out) { *out = t->stats; }
