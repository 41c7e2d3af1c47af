/* presence_mirror.c — presence publications shared through Redis Cluster
 * (see the header). */
#include "subs/presence_mirror.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "base/clock.h"
#include "base/htable.h"
#include "base/json_out.h"
#include "base/log.h"
#include "base/str.h"
#include "redis/redis_cluster.h"
#include "redis/redis_objects.h"
#include "redis/redis_reply.h"
#include "redis/redis_sub.h"
#include "redis/redis_uv.h"
#include "registrar/cluster.h"
#include "registrar/location.h"
#include "subs/pidf.h"
#include "subs/subs_takeover.h"

#define MAX_FETCHES 1024 /* hash reads in flight; beyond: that announcement waits for the next */

/* One of ours set or refreshed: the field written, unreadable and expired
 * fields pruned (nobody else would: a dead node's stay until the key's
 * TTL), the key's TTL at the latest expiry left, the change announced.
 * Unless another field holds the same pid (ARGV[6], "": none): another
 * node took this publication over meanwhile (TAKE_LUA), so this field is
 * not written again (it would show the publication twice) and 2 is
 * returned: the node lets go of it.
 * KEYS[1] the hash; ARGV: field, record, its exp, now (wall ms), channel, pid. */
#define WRITE_LUA                                                                                                  \
    "local now = tonumber(ARGV[4]) local top = 0 local moved = false "                                            \
    "local all = redis.call('HGETALL', KEYS[1]) "                                                                  \
    "for i = 1, #all, 2 do "                                                                                       \
    "  if all[i] ~= ARGV[1] then "                                                                                 \
    "    local ok, r = pcall(cjson.decode, all[i + 1]) "                                                           \
    "    local e = ok and type(r) == 'table' and tonumber(r['exp']) or nil "                                      \
    "    if e == nil or e <= now then redis.call('HDEL', KEYS[1], all[i]) "                                        \
    "    else "                                                                                                    \
    "      if ARGV[6] ~= '' and r['pid'] == ARGV[6] then moved = true end "                                        \
    "      if e > top then top = e end "                                                                           \
    "    end "                                                                                                     \
    "  end "                                                                                                       \
    "end "                                                                                                         \
    "if moved then redis.call('HDEL', KEYS[1], ARGV[1]) else "                                                     \
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) "                                                             \
    "  local e = tonumber(ARGV[3]) if e > top then top = e end "                                                   \
    "end "                                                                                                         \
    "if top > 0 then redis.call('PEXPIREAT', KEYS[1], string.format('%d', top)) end "                              \
    "if moved then return 2 end "                                                                                  \
    "if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], KEYS[1]) end "                                          \
    "return 1"
/* An AoR with a subscription record of ours, into this run's index.
 * KEYS[1] the index; ARGV: the AoR, the TTL (ms). */
#define INDEX_LUA "redis.call('SADD', KEYS[1], ARGV[1]) redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1"
/* One of ours gone. KEYS[1] the hash; ARGV: field, channel ("": none). */
#define DEL_LUA                                                                                                    \
    "redis.call('HDEL', KEYS[1], ARGV[1]) "                                                                        \
    "if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], KEYS[1]) end return 1"

/* A PUBLISH whose SIP-If-Match another node issued (presence_take): the
 * unexpired record whose tag is ARGV[1] found (expired and unreadable
 * fields pruned on the way), its field deleted and, unless removed, the
 * publication written under this node's field with its new expiry and tag
 * (its pid, and for a refresh its set, ver and body, kept), the TTL at the
 * latest expiry left, and "<key> <old field>" announced: one step, so no
 * reader sees it twice or not at all. Numbers are written as integers.
 * KEYS[1] the hash; ARGV: tag, now, mode (r/m/d), new field, node, new exp,
 * new tag, channel, body, set, ver (the last three for 'm').
 * Returns {0}, or {1, old field, pid, set, ver, body ('r') or ""}. */
#define TAKE_LUA                                                                                                   \
    "local now = tonumber(ARGV[2]) local top = 0 local of, old = nil, nil "                                        \
    "local all = redis.call('HGETALL', KEYS[1]) "                                                                  \
    "for i = 1, #all, 2 do "                                                                                       \
    "  local ok, r = pcall(cjson.decode, all[i + 1]) "                                                             \
    "  local e = ok and type(r) == 'table' and tonumber(r['exp']) or nil "                                        \
    "  if e == nil or e <= now then redis.call('HDEL', KEYS[1], all[i]) "                                          \
    "  elseif of == nil and r['tag'] == ARGV[1] and type(r['pid']) == 'string' and type(r['body']) == 'string' "   \
    "    and type(r['set']) == 'number' and type(r['ver']) == 'number' then of = all[i] old = r "                  \
    "  elseif e > top then top = e end "                                                                           \
    "end "                                                                                                         \
    "if of == nil then return {0} end "                                                                            \
    "redis.call('HDEL', KEYS[1], of) "                                                                             \
    "local set, ver, body = old['set'], old['ver'], old['body'] "                                                  \
    "if ARGV[3] == 'm' then set = tonumber(ARGV[10]) ver = tonumber(ARGV[11]) body = ARGV[9] end "                 \
    "if ARGV[3] ~= 'd' then "                                                                                      \
    "  redis.call('HSET', KEYS[1], ARGV[4], '{\"node\":' .. cjson.encode(ARGV[5]) .. ',\"exp\":' .. ARGV[6] .. "   \
    "    ',\"set\":' .. string.format('%d', set) .. ',\"ver\":' .. string.format('%d', ver) .. "                    \
    "    ',\"pid\":' .. cjson.encode(old['pid']) .. ',\"tag\":' .. cjson.encode(ARGV[7]) .. "                       \
    "    ',\"body\":' .. cjson.encode(body) .. '}') "                                                               \
    "  local e = tonumber(ARGV[6]) if e > top then top = e end "                                                   \
    "end "                                                                                                         \
    "if top > 0 then redis.call('PEXPIREAT', KEYS[1], string.format('%d', top)) end "                              \
    "redis.call('PUBLISH', ARGV[8], KEYS[1] .. ' ' .. of) "                                                        \
    "local rb = '' if ARGV[3] == 'r' then rb = body end "                                                          \
    "return {1, of, old['pid'], string.format('%d', set), string.format('%d', ver), rb}"

/* An AoR watched here: its hash is read at each announcement. */
struct presence_mirror;

struct follow {
    struct hnode node;
    struct presence_mirror *owner;
    uint64_t gen;        /* which follow a read belongs to (one may go and come back) */
    bool fetching, again;
    bool stale;          /* the read in flight was sent before one of ours was taken: not applied */
    struct cluster_lookup *lookup; /* where its bindings are (cluster_route): in flight */
    bool lookup_again;
    /* its first read: the hash (answered, failed, or not sent) and, with
     * cluster_route, where she is registered; until both are known (ready)
     * a new watcher's first NOTIFY waits (presence_first_read_pending) */
    bool fetched_once, looked_once, ready;
    char aor[LOCATION_MAX_AOR];
};

struct fetch {
    struct presence_mirror *m;
    uint64_t gen;
    char aor[LOCATION_MAX_AOR];
};

struct presence_mirror {
    struct redis_cluster *rc;
    struct subs *subs;
    struct presence *presence;
    struct cluster *cluster;   /* presence_mirror_set_cluster: registrations on other nodes */
    uv_loop_t *loop;
    struct timer_service *timers;
    char prefix[64], channel[96], node[PRESENCE_NODE_MAX];
    char inc[SUBS_TAKEOVER_INC_MAX]; /* presence_mirror_set_incarnation: records carry it, and are indexed */
    uint32_t max_pending, pending, fetches;
    size_t per_user;
    struct htable follows;
    uint64_t next_gen;
    struct redis_sub *sub;          /* the announcements' connection */
    bool closing;
    struct presence_mirror_stats stats;
};

/* ---- records (stranger input when read) ---- */

static bool node_ok(const char *s, size_t n)
{
    if (n == 0 || n >= PRESENCE_NODE_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f || s[i] == '/') return false;
    return true;
}

/* lower-case hex, lo..hi digits */
static bool hex_ok(const char *s, size_t n, size_t lo, size_t hi)
{
    if (n < lo || n > hi) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

int presence_record_encode(const char *node, const struct presence_shared_pub *pub, char *field, size_t fcap,
                           char **out)
{
    *out = NULL;
    if (!node_ok(node, strlen(node)) || !pub->id || strspn(pub->id, "0123456789") != strlen(pub->id) ||
        !pub->id[0] || strlen(pub->id) > 20)
        return -EINVAL;
    int fl = snprintf(field, fcap, "%s/%s", node, pub->id);
    if (fl < 0 || (size_t)fl >= fcap || (size_t)fl >= PRESENCE_PUB_ID_MAX) return -ENOSPC;
    if ((pub->pid && !hex_ok(pub->pid, strlen(pub->pid), 1, PRESENCE_PID_SIZE - 1)) ||
        (pub->tag && !hex_ok(pub->tag, strlen(pub->tag), PRESENCE_TAG_HASH_SIZE - 1, PRESENCE_TAG_HASH_SIZE - 1)))
        return -EINVAL;
    json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:s%}", "node", node, "exp", (json_int_t)pub->expires_wall_ms, "set",
                          (json_int_t)pub->set_wall_ms, "ver", (json_int_t)pub->version, "body", pub->body, pub->len);
    if (!o) return -ENOMEM;
    if ((pub->pid && json_object_set_new(o, "pid", json_string(pub->pid)) < 0) ||
        (pub->tag && json_object_set_new(o, "tag", json_string(pub->tag)) < 0)) {
        json_decref(o);
        return -ENOMEM;
    }
    int n = json_out_dup(o, PRESENCE_RECORD_MAX, out);
    json_decref(o);
    return n;
}

void presence_record_clear(struct presence_record *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static bool int_at_least(json_t *v, json_int_t lo, json_int_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo) return false;
    *out = json_integer_value(v);
    return true;
}

int presence_record_decode(const char *field, size_t flen, const char *value, size_t vlen,
                           struct presence_record *out)
{
    memset(out, 0, sizeof(*out));
    if (!field || !value || flen == 0 || flen >= PRESENCE_PUB_ID_MAX || vlen == 0 || vlen > PRESENCE_RECORD_MAX)
        return -EINVAL;
    json_t *o = json_loadb(value, vlen, JSON_REJECT_DUPLICATES, NULL);
    int rc = -EINVAL;
    if (!o || !json_is_object(o)) goto out;
    json_t *node = json_object_get(o, "node"), *body = json_object_get(o, "body");
    json_int_t exp, set, ver;
    if (!json_is_string(node) || !json_is_string(body) || !int_at_least(json_object_get(o, "exp"), 1, &exp) ||
        !int_at_least(json_object_get(o, "set"), 0, &set) || !int_at_least(json_object_get(o, "ver"), 0, &ver))
        goto out;
    const char *nd = json_string_value(node);
    size_t nl = json_string_length(node);
    if (!node_ok(nd, nl) || strlen(nd) != nl) goto out;
    /* the field is "<node>/<digits>": a record cannot speak for another node's field */
    if (flen <= nl + 1 || flen - nl - 1 > 20 || memcmp(field, nd, nl) != 0 || field[nl] != '/') goto out;
    for (size_t i = nl + 1; i < flen; i++)
        if (field[i] < '0' || field[i] > '9') goto out;
    /* pid and tag: optional (an older node's record has neither) */
    json_t *pid = json_object_get(o, "pid"), *tag = json_object_get(o, "tag");
    if (pid && (!json_is_string(pid) ||
                !hex_ok(json_string_value(pid), json_string_length(pid), 1, PRESENCE_PID_SIZE - 1)))
        goto out;
    if (tag && (!json_is_string(tag) || !hex_ok(json_string_value(tag), json_string_length(tag),
                                                 PRESENCE_TAG_HASH_SIZE - 1, PRESENCE_TAG_HASH_SIZE - 1)))
        goto out;
    const char *b = json_string_value(body);
    size_t bl = json_string_length(body);
    const char *why = NULL;
    if (bl == 0 || bl > PIDF_MAX_BODY || strlen(b) != bl || pidf_validate(b, bl, &why) < 0) goto out;
    if (pid) memcpy(out->pid, json_string_value(pid), json_string_length(pid) + 1);
    if (!(out->body = malloc(bl + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(out->body, b, bl + 1);
    out->len = bl;
    memcpy(out->id, field, flen);
    out->id[flen] = '\0';
    memcpy(out->node, nd, nl + 1);
    out->expires_wall_ms = exp;
    out->set_wall_ms = set;
    out->version = (uint64_t)ver;
    rc = 0;
out:
    json_decref(o);
    if (rc) presence_record_clear(out);
    return rc;
}

int presence_mirror_read_hash(const struct redisReply *r, const char *own_node, int64_t now_wall_ms,
                              struct presence_record *out, size_t cap, size_t *bad)
{
    *bad = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2 || (r->elements && !r->element)) return -EINVAL;
    for (size_t i = 0; i < r->elements; i++)
        if (!r->element[i] || r->element[i]->type != REDIS_REPLY_STRING) return -EINVAL;
    size_t n = 0, pairs = r->elements / 2;
    if (pairs > PRESENCE_MIRROR_PAIRS_MAX) {
        *bad += pairs - PRESENCE_MIRROR_PAIRS_MAX;
        pairs = PRESENCE_MIRROR_PAIRS_MAX;
    }
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *f = r->element[2 * i], *v = r->element[2 * i + 1];
        if (n >= cap) {
            (*bad)++;
            continue;
        }
        if (presence_record_decode(f->str, f->len, v->str, v->len, &out[n]) < 0) {
            (*bad)++;
            continue;
        }
        if ((own_node && strcmp(out[n].node, own_node) == 0) || out[n].expires_wall_ms <= now_wall_ms) {
            presence_record_clear(&out[n]);
            continue;
        }
        n++;
    }
    return (int)n;
}

/* ---- subscription records (stranger input when read) ---- */

static bool text_ok(const char *s, size_t n, size_t cap)
{
    if (n == 0 || n >= cap) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f) return false;
    return true;
}

static bool event_ok(const char *s, size_t n)
{
    if (n == 0 || n >= PRESENCE_SUB_EVENT_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-'))
            return false;
    return true;
}

int presence_sub_record_encode(const char *node, const struct subs_record *r, char *field, size_t fcap, char **out)
{
    *out = NULL;
    if (!node_ok(node, strlen(node)) || !text_ok(r->id, strlen(r->id), PRESENCE_SUB_TAG_MAX) ||
        !text_ok(r->watcher, strlen(r->watcher), PRESENCE_SUB_WATCHER_MAX) || !event_ok(r->event, strlen(r->event)) ||
        r->expires_wall_ms <= 0)
        return -EINVAL;
    int fl = snprintf(field, fcap, "%s/%s", node, r->id);
    if (fl < 0 || (size_t)fl >= fcap) return -ENOSPC;
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "node", node, "watcher", r->watcher, "event", r->event, "exp",
                          (json_int_t)r->expires_wall_ms);
    if (!o) return -ENOMEM;
    int n = json_out_dup(o, SUBS_TAKEOVER_RECORD_MAX, out); /* what its reader takes (never reached: capped fields) */
    json_decref(o);
    return n;
}

int presence_sub_record_decode(const char *field, size_t flen, const char *value, size_t vlen,
                               struct presence_sub_record *out)
{
    memset(out, 0, sizeof(*out));
    if (!field || !value || flen == 0 || flen >= sizeof(out->id) || vlen == 0 || vlen > SUBS_TAKEOVER_RECORD_MAX)
        return -EINVAL;
    json_t *o = json_loadb(value, vlen, JSON_REJECT_DUPLICATES, NULL);
    int rc = -EINVAL;
    if (!o || !json_is_object(o)) goto out;
    json_t *node = json_object_get(o, "node"), *w = json_object_get(o, "watcher"), *ev = json_object_get(o, "event");
    json_int_t exp;
    if (!json_is_string(node) || !json_is_string(w) || !json_is_string(ev) ||
        !int_at_least(json_object_get(o, "exp"), 1, &exp))
        goto out;
    const char *nd = json_string_value(node), *ws = json_string_value(w), *es = json_string_value(ev);
    size_t nl = json_string_length(node), wl = json_string_length(w), el = json_string_length(ev);
    if (!node_ok(nd, nl) || strlen(nd) != nl || !text_ok(ws, wl, sizeof(out->watcher)) || strlen(ws) != wl ||
        !event_ok(es, el))
        goto out;
    if (flen <= nl + 1 || memcmp(field, nd, nl) != 0 || field[nl] != '/' ||
        !text_ok(field + nl + 1, flen - nl - 1, PRESENCE_SUB_TAG_MAX))
        goto out;
    memcpy(out->id, field, flen);
    memcpy(out->node, nd, nl + 1);
    memcpy(out->watcher, ws, wl + 1);
    memcpy(out->event, es, el + 1);
    out->expires_wall_ms = exp;
    rc = 0;
out:
    json_decref(o);
    if (rc) memset(out, 0, sizeof(*out));
    return rc;
}

int presence_mirror_key_aor(const char *prefix, const char *msg, size_t len, char *aor, size_t cap)
{
    size_t pl = strlen(prefix);
    static const char mid[] = "pres:{";
    size_t ml = sizeof(mid) - 1;
    if (!msg || len < pl + ml + 2 || memcmp(msg, prefix, pl) != 0 || memcmp(msg + pl, mid, ml) != 0 ||
        msg[len - 1] != '}')
        return -EINVAL;
    const char *a = msg + pl + ml;
    size_t al = len - pl - ml - 1;
    if (al == 0 || al >= cap || al >= LOCATION_MAX_AOR) return -EINVAL;
    for (size_t i = 0; i < al; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= 0x20 || c == 0x7f || c == '{' || c == '}') return -EINVAL;
    }
    memcpy(aor, a, al);
    aor[al] = '\0';
    return 0;
}

int presence_mirror_change_parse(const char *prefix, const char *msg, size_t len, char *aor, size_t cap, char *field,
                                 size_t fcap)
{
    if (!msg || !fcap) return -EINVAL;
    field[0] = '\0';
    const char *sp = memchr(msg, ' ', len);
    if (!sp) return presence_mirror_key_aor(prefix, msg, len, aor, cap);
    size_t kl = (size_t)(sp - msg), fl = len - kl - 1;
    const char *f = sp + 1;
    /* "<node>/<1..20 digits>" */
    const char *slash = memchr(f, '/', fl);
    if (!slash || fl >= fcap || fl >= PRESENCE_PUB_ID_MAX || !node_ok(f, (size_t)(slash - f))) return -EINVAL;
    size_t dl = fl - (size_t)(slash - f) - 1;
    if (dl == 0 || dl > 20) return -EINVAL;
    for (size_t i = 0; i < dl; i++)
        if (slash[1 + i] < '0' || slash[1 + i] > '9') return -EINVAL;
    if (presence_mirror_key_aor(prefix, msg, kl, aor, cap) < 0) return -EINVAL;
    memcpy(field, f, fl);
    field[fl] = '\0';
    return 0;
}

/* A decimal string of 1..digits digits (no sign), as an integer. */
static bool dec_ok(const redisReply *e, size_t digits, uint64_t *out)
{
    if (!e || e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > digits) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < e->len; i++) {
        if (e->str[i] < '0' || e->str[i] > '9') return false;
        uint64_t d = (uint64_t)(e->str[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int presence_take_reply_read(const struct redisReply *r, char mode, struct presence_take_answer *out)
{
    memset(out, 0, sizeof(*out));
    if (!r || r->type != REDIS_REPLY_ARRAY || !r->element || r->elements == 0) return -EINVAL;
    const redisReply *st = r->element[0];
    if (!st || st->type != REDIS_REPLY_INTEGER) return -EINVAL;
    if (st->integer == 0) return r->elements == 1 ? 0 : -EINVAL;
    if (st->integer != 1 || r->elements != 6) return -EINVAL;
    for (size_t i = 1; i < 6; i++)
        if (!r->element[i] || r->element[i]->type != REDIS_REPLY_STRING) return -EINVAL;
    const redisReply *f = r->element[1], *pid = r->element[2], *body = r->element[5];
    /* the old field: "<node>/<1..20 digits>" */
    const char *slash = f->len ? memchr(f->str, '/', f->len) : NULL;
    if (!slash || f->len >= sizeof(out->old_id) || !node_ok(f->str, (size_t)(slash - f->str))) return -EINVAL;
    size_t dl = f->len - (size_t)(slash - f->str) - 1;
    if (dl == 0 || dl > 20 || strspn(slash + 1, "0123456789") < dl) return -EINVAL;
    if (!hex_ok(pid->str, pid->len, 1, PRESENCE_PID_SIZE - 1)) return -EINVAL;
    uint64_t set, ver;
    if (!dec_ok(r->element[3], 18, &set) || !dec_ok(r->element[4], 20, &ver)) return -EINVAL;
    if (mode == 'r') {
        const char *why = NULL;
        if (body->len == 0 || body->len > PIDF_MAX_BODY || memchr(body->str, '\0', body->len) ||
            pidf_validate(body->str, body->len, &why) < 0)
            return -EINVAL;
        out->body = body->str;
        out->len = body->len;
    } else if (body->len) {
        return -EINVAL;
    }
    memcpy(out->old_id, f->str, f->len);
    out->old_id[f->len] = '\0';
    memcpy(out->pid, pid->str, pid->len);
    out->pid[pid->len] = '\0';
    out->set_wall_ms = (int64_t)set;
    out->version = ver;
    return 1;
}

/* ---- this node's changes ---- */

static void key_of(const struct presence_mirror *m, const char *aor, char *key, size_t cap)
{
    snprintf(key, cap, "%spres:{%s}", m->prefix, aor);
}

static void on_write(void *arg, int status, const struct redisReply *reply)
{
    struct presence_mirror *m = arg;
    m->pending--;
    if (status == -ECANCELED) return;
    if (status == 0 && reply && reply->type != REDIS_REPLY_ERROR) {
        m->stats.writes_ok++;
        return;
    }
    m->stats.writes_failed++;
    log_warn_rl("redis presence: a publication change was not written into Redis (%s): other nodes' watchers "
                "do not see it",
                status ? strerror(-status) : reply && reply->str ? reply->str : "bad reply");
}

static void send_script(struct presence_mirror *m, int argc, const char **argv, const size_t *lens)
{
    if (m->pending >= m->max_pending || redis_cluster_command(m->rc, 3, argc, argv, lens, on_write, m) < 0) {
        m->stats.writes_failed++;
        log_warn_rl("redis presence: a publication change dropped (%u writes pending)", m->pending);
        return;
    }
    m->pending++;
}

/* A write of one of ours: the script may say another node holds it now. */
struct pub_write {
    struct presence_mirror *m;
    char aor[LOCATION_MAX_AOR];
    char id[24];
};

static void on_pub_write(void *arg, int status, const struct redisReply *reply)
{
    struct pub_write *w = arg;
    struct presence_mirror *m = w->m;
    if (status != -ECANCELED && status == 0 && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 2) {
        m->pending--;
        m->stats.writes_ok++;
        log_info("redis presence: the publication %s/%s of %s is another node's now: let go", m->node, w->id,
                 w->aor);
        if (presence_taken(m->presence, w->aor, w->id)) m->stats.given_up++;
    } else {
        on_write(m, status, reply);
    }
    free(w);
}

static void on_published(void *arg, const char *aor, const struct presence_shared_pub *pub)
{
    struct presence_mirror *m = arg;
    char key[LOCATION_MAX_AOR + 80], field[PRESENCE_PUB_ID_MAX], exp[24], now[24];
    char *rec = NULL;
    int n = presence_record_encode(m->node, pub, field, sizeof(field), &rec);
    if (n < 0) {
        m->stats.writes_failed++;
        log_warn_rl("redis presence: the publication of %s cannot be shared (%s)", aor, strerror(-n));
        return;
    }
    key_of(m, aor, key, sizeof(key));
    snprintf(exp, sizeof(exp), "%lld", (long long)pub->expires_wall_ms);
    snprintf(now, sizeof(now), "%lld", (long long)clock_wall_ms());
    const char *argv[] = {"EVAL", WRITE_LUA, "1", key, field, rec, exp, now, m->channel, pub->pid ? pub->pid : ""};
    size_t lens[10];
    for (size_t i = 0; i < 10; i++) lens[i] = i == 5 ? (size_t)n : strlen(argv[i]);
    struct pub_write *w = calloc(1, sizeof(*w));
    if (!w || strlen(aor) >= sizeof(w->aor) || strlen(pub->id) >= sizeof(w->id) || m->pending >= m->max_pending ||
        redis_cluster_command(m->rc, 3, 10, argv, lens, on_pub_write, w) < 0) {
        free(w);
        m->stats.writes_failed++;
        log_warn_rl("redis presence: a publication change dropped (%u writes pending)", m->pending);
    } else {
        w->m = m;
        snprintf(w->aor, sizeof(w->aor), "%s", aor);
        snprintf(w->id, sizeof(w->id), "%s", pub->id);
        m->pending++;
    }
    free(rec);
}

static void on_withdrawn(void *arg, const char *aor, const char *id)
{
    struct presence_mirror *m = arg;
    char key[LOCATION_MAX_AOR + 80], field[PRESENCE_PUB_ID_MAX];
    key_of(m, aor, key, sizeof(key));
    snprintf(field, sizeof(field), "%s/%s", m->node, id);
    const char *argv[] = {"EVAL", DEL_LUA, "1", key, field, m->channel};
    size_t lens[6];
    for (size_t i = 0; i < 6; i++) lens[i] = strlen(argv[i]);
    send_script(m, 6, argv, lens);
}

struct take_req {
    struct presence_mirror *m;
    presence_take_cb cb;
    void *ctx;
    char mode;
    char aor[LOCATION_MAX_AOR];
};

static void on_take_reply(void *arg, int status, const struct redisReply *reply)
{
    struct take_req *t = arg;
    struct presence_mirror *m = t->m;
    struct presence_take_answer a;
    int rc = status < 0 ? status : presence_take_reply_read(reply, t->mode, &a);
    if (rc < 0) {
        if (rc != -ECANCELED) {
            m->stats.take_failures++;
            log_warn_rl("redis presence: the publications of %s could not be searched for an entity tag (%s)", t->aor,
                        status < 0 ? strerror(-status)
                        : reply && reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str
                                                                                   : "an answer that does not read");
        }
        t->cb(t->ctx, rc, NULL);
    } else if (rc == 0) {
        t->cb(t->ctx, 0, NULL);
    } else {
        m->stats.taken++;
        struct presence_take_found f = {.old_id = a.old_id, .pid = a.pid, .set_wall_ms = a.set_wall_ms,
                                        .version = a.version, .body = a.body, .len = a.len};
        t->cb(t->ctx, 1, &f);
    }
    free(t);
}

static int on_take(void *arg, const struct presence_take *req, presence_take_cb cb, void *ctx)
{
    struct presence_mirror *m = arg;
    if (m->closing || strlen(req->aor) >= LOCATION_MAX_AOR) return -ECANCELED;
    char key[LOCATION_MAX_AOR + 80], field[PRESENCE_PUB_ID_MAX] = "", now[24], exp[24] = "0", set[24] = "0",
                                                                    ver[24] = "0";
    key_of(m, req->aor, key, sizeof(key));
    snprintf(now, sizeof(now), "%lld", (long long)clock_wall_ms());
    if (req->mode != 'd') {
        int fl = snprintf(field, sizeof(field), "%s/%s", m->node, req->id);
        if (fl < 0 || (size_t)fl >= sizeof(field)) return -ENOSPC;
        snprintf(exp, sizeof(exp), "%lld", (long long)req->expires_wall_ms);
    }
    if (req->mode == 'm') {
        snprintf(set, sizeof(set), "%lld", (long long)req->set_wall_ms);
        snprintf(ver, sizeof(ver), "%llu", (unsigned long long)req->version);
    }
    char mode[2] = {req->mode, '\0'};
    struct take_req *t = calloc(1, sizeof(*t));
    if (!t) return -ENOMEM;
    *t = (struct take_req){.m = m, .cb = cb, .ctx = ctx, .mode = req->mode};
    snprintf(t->aor, sizeof(t->aor), "%s", req->aor);
    const char *argv[] = {"EVAL", TAKE_LUA, "1", key, req->tag, now, mode, field, m->node, exp,
                          req->new_tag ? req->new_tag : "", m->channel, req->mode == 'm' && req->body ? req->body : "",
                          set, ver};
    size_t lens[15];
    for (size_t i = 0; i < 15; i++) lens[i] = i == 12 && req->mode == 'm' && req->body ? req->len : strlen(argv[i]);
    m->stats.takes++;
    int rc = redis_cluster_command(m->rc, 3, 15, argv, lens, on_take_reply, t);
    if (rc < 0) {
        free(t);
        m->stats.take_failures++;
        return rc;
    }
    return 0;
}

/* ---- this node's subscription records, and every node's for the API ---- */

static void sub_key_of(const struct presence_mirror *m, const char *aor, char *key, size_t cap)
{
    snprintf(key, cap, "%ssubs:{%s}", m->prefix, aor);
}

static void on_sub_changed(void *arg, const struct subs_record *r)
{
    struct presence_mirror *m = arg;
    char key[LOCATION_MAX_AOR + 80], field[PRESENCE_NODE_MAX + PRESENCE_SUB_TAG_MAX], exp[24], now[24];
    char *rec = NULL;
    int n = subs_takeover_record_encode(m->node, m->inc, r, field, sizeof(field), &rec); /* version 2 */
    if (n == -EINVAL) n = presence_sub_record_encode(m->node, r, field, sizeof(field), &rec); /* no dialog state: 1 */
    if (n < 0) {
        m->stats.writes_failed++;
        log_warn_rl("redis presence: the subscription of %.128s to %s cannot be shared (%s)", r->watcher, r->aor,
                    strerror(-n));
        return;
    }
    sub_key_of(m, r->aor, key, sizeof(key));
    snprintf(exp, sizeof(exp), "%lld", (long long)r->expires_wall_ms);
    snprintf(now, sizeof(now), "%lld", (long long)clock_wall_ms());
    const char *argv[] = {"EVAL", WRITE_LUA, "1", key, field, rec, exp, now, "", ""};
    size_t lens[10];
    for (size_t i = 0; i < 10; i++) lens[i] = i == 5 ? (size_t)n : strlen(argv[i]);
    send_script(m, 10, argv, lens);
    free(rec);
    char idx[256], ttl[24];
    if (m->inc[0] && subs_takeover_index_key(m->prefix, m->node, m->inc, idx, sizeof(idx)) == 0) {
        snprintf(ttl, sizeof(ttl), "%u", SUBS_TAKEOVER_INDEX_TTL_MS); /* a survivor's takeover walks it */
        const char *iv[] = {"EVAL", INDEX_LUA, "1", idx, r->aor, ttl};
        size_t il[6];
        for (size_t i = 0; i < 6; i++) il[i] = strlen(iv[i]);
        send_script(m, 6, iv, il);
    }
}


static void on_sub_gone(void *arg, const char *aor, const char *id)
{
    struct presence_mirror *m = arg;
    char key[LOCATION_MAX_AOR + 80], field[PRESENCE_NODE_MAX + PRESENCE_SUB_TAG_MAX];
    sub_key_of(m, aor, key, sizeof(key));
    snprintf(field, sizeof(field), "%s/%s", m->node, id);
    const char *argv[] = {"EVAL", DEL_LUA, "1", key, field, ""};
    size_t lens[6];
    for (size_t i = 0; i < 6; i++) lens[i] = strlen(argv[i]);
    send_script(m, 6, argv, lens);
}

struct list_req {
    struct presence_mirror *m;
    subs_records_cb cb;
    void *ctx;
    bool cancelled;
    char aor[LOCATION_MAX_AOR];
};

/* 1 alive, 0 stopped heartbeating, -1 not known (no cluster_route, or never seen). */
static int node_alive(const struct presence_mirror *m, const char *node)
{
    if (!strcmp(node, m->node)) return 1;
    if (!m->cluster) return -1;
    struct cluster_hit hit;
    int rc = cluster_node_hit(m->cluster, node, &hit);
    return rc == 0 ? 1 : rc == -EHOSTDOWN ? 0 : -1;
}

static void list_answer(struct presence_mirror *m, struct list_req *q, const struct redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2 || (r->elements && !r->element)) {
        q->cb(q->ctx, -EPROTO, NULL, 0);
        return;
    }
    size_t pairs = r->elements / 2, n = 0, bad = 0;
    if (pairs > SUBS_RECORDS_MAX) pairs = SUBS_RECORDS_MAX;
    struct presence_sub_record *recs = calloc(pairs ? pairs : 1, sizeof(*recs));
    struct subs_record *out = calloc(pairs ? pairs : 1, sizeof(*out));
    if (!recs || !out) {
        free(recs);
        free(out);
        q->cb(q->ctx, -ENOMEM, NULL, 0);
        return;
    }
    int64_t now = clock_wall_ms();
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *f = r->element[2 * i], *v = r->element[2 * i + 1];
        if (!f || !v || f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            presence_sub_record_decode(f->str, f->len, v->str, v->len, &recs[n]) < 0) {
            bad++;
            continue;
        }
        if (recs[n].expires_wall_ms <= now) continue;
        out[n] = (struct subs_record){.aor = q->aor, .id = recs[n].id, .watcher = recs[n].watcher,
                                      .event = recs[n].event, .node = recs[n].node,
                                      .expires_wall_ms = recs[n].expires_wall_ms,
                                      .node_alive = node_alive(m, recs[n].node)};
        n++;
    }
    if (bad) {
        m->stats.rejected += bad;
        log_warn_rl("redis presence: %zu subscription records of %s skipped (unreadable)", bad, q->aor);
    }
    q->cb(q->ctx, 0, out, n);
    free(recs);
    free(out);
}

static void on_list(void *arg, int status, const struct redisReply *reply)
{
    struct list_req *q = arg;
    if (!q->cancelled) {
        if (status < 0) q->cb(q->ctx, status, NULL, 0);
        else if (!reply || reply->type == REDIS_REPLY_ERROR) q->cb(q->ctx, -EIO, NULL, 0);
        else list_answer(q->m, q, reply);
    }
    free(q);
}

static int on_list_start(void *arg, const char *aor, subs_records_cb cb, void *ctx, void **handle)
{
    struct presence_mirror *m = arg;
    if (strlen(aor) >= LOCATION_MAX_AOR) return -EINVAL;
    struct list_req *q = calloc(1, sizeof(*q));
    if (!q) return -ENOMEM;
    *q = (struct list_req){.m = m, .cb = cb, .ctx = ctx};
    snprintf(q->aor, sizeof(q->aor), "%s", aor);
    char key[LOCATION_MAX_AOR + 80];
    sub_key_of(m, aor, key, sizeof(key));
    const char *argv[] = {"HGETALL", key};
    size_t lens[] = {7, strlen(key)};
    int rc = redis_cluster_command(m->rc, 1, 2, argv, lens, on_list, q);
    if (rc < 0) {
        free(q);
        return rc;
    }
    *handle = q;
    return 1;
}

static void on_list_cancel(void *arg, void *handle)
{
    (void)arg;
    ((struct list_req *)handle)->cancelled = true; /* freed when its answer comes */
}

/* ---- the other nodes' publications of the AoRs watched here ---- */

static uint32_t hash_cstr(const char *s) { return str_hash(str_from_cstr(s)); }

static struct follow *follow_find(const struct presence_mirror *m, const char *aor)
{
    for (struct hnode *n = htable_first(&m->follows, hash_cstr(aor)); n; n = htable_next(n)) {
        struct follow *f = container_of(n, struct follow, node);
        if (strcmp(f->aor, aor) == 0) return f;
    }
    return NULL;
}

static void fetch(struct presence_mirror *m, struct follow *f);

/* f's first read is complete (its hash, and where she is registered when
 * the cluster is asked): the watchers waiting for it are told. f may go
 * inside (a fetch answered lets go of its AoR): not used after. */
static void first_read_check(struct presence_mirror *m, struct follow *f)
{
    if (f->ready || !f->fetched_once || (m->cluster && !f->looked_once)) return;
    f->ready = true;
    char aor[LOCATION_MAX_AOR];
    memcpy(aor, f->aor, sizeof(aor));
    presence_first_read_done(m->presence, aor);
}

struct unready {
    char (*aors)[LOCATION_MAX_AOR];
    size_t n, cap;
};

static int collect_unready(struct hnode *h, void *arg)
{
    struct unready *u = arg;
    struct follow *f = container_of(h, struct follow, node);
    if (!f->ready && u->n < u->cap) memcpy(u->aors[u->n++], f->aor, LOCATION_MAX_AOR);
    return 0;
}

/* first_read_check for every follow (the cluster came or went), follows
 * going meanwhile allowed. */
static void first_read_check_all(struct presence_mirror *m)
{
    struct unready u = {.cap = htable_count(&m->follows)};
    if (!u.cap || !(u.aors = calloc(u.cap, sizeof(*u.aors)))) return;
    htable_foreach(&m->follows, collect_unready, &u);
    for (size_t i = 0; i < u.n; i++) {
        struct follow *f = follow_find(m, u.aors[i]);
        if (f) first_read_check(m, f);
    }
    free(u.aors);
}

static void apply(struct presence_mirror *m, const char *aor, const struct redisReply *reply)
{
    size_t cap = m->per_user, bad = 0;
    struct presence_record *recs = calloc(cap ? cap : 1, sizeof(*recs));
    struct presence_shared_pub *pubs = calloc(cap ? cap : 1, sizeof(*pubs));
    int64_t now = clock_wall_ms();
    int n = recs && pubs ? presence_mirror_read_hash(reply, m->node, now, recs, cap, &bad) : -ENOMEM;
    if (n < 0) {
        m->stats.fetch_failures++;
        log_warn_rl("redis presence: the publications of %s did not read (%s)", aor,
                    n == -ENOMEM ? "no memory" : "a reply of another shape");
    } else {
        for (int i = 0; i < n; i++)
            pubs[i] = (struct presence_shared_pub){.id = recs[i].id, .node = recs[i].node,
                                                   .expires_wall_ms = recs[i].expires_wall_ms,
                                                   .set_wall_ms = recs[i].set_wall_ms, .version = recs[i].version,
                                                   .body = recs[i].body, .len = recs[i].len, .pid = recs[i].pid};
        size_t skipped = presence_remote_set(m->presence, aor, pubs, (size_t)n, now);
        if (bad || skipped) {
            m->stats.rejected += bad + skipped;
            log_warn_rl("redis presence: %zu records of %s skipped (unreadable, or over presence_max / "
                        "presence_max_publications_per_user)",
                        bad + skipped, aor);
        }
        for (int i = 0; i < n; i++) presence_record_clear(&recs[i]);
    }
    free(recs);
    free(pubs);
}

static void on_fetch(void *arg, int status, const struct redisReply *reply)
{
    struct fetch *fe = arg;
    struct presence_mirror *m = fe->m;
    m->fetches--;
    if (status == -ECANCELED) {
        free(fe);
        return;
    }
    struct follow *f = follow_find(m, fe->aor);
    bool ours = f && f->gen == fe->gen, answered = true;
    if (ours) f->fetching = false;
    if (status < 0 || !reply || reply->type == REDIS_REPLY_ERROR) {
        /* (its deadline, timeout_ms, passed: the first watchers get this
         * node's view rather than wait for Redis) */
        m->stats.fetch_failures++;
        log_warn_rl("redis presence: cannot read the publications of %s (%s)", fe->aor,
                    status < 0 ? strerror(-status) : reply && reply->str ? reply->str : "no reply");
    } else if (ours && f->stale) {
        /* it shows one of ours under our field (skipped) and not yet under
         * the taker's: applied, it would make the publication go and come
         * back; the read after it (again) says what became of it */
        m->stats.fetches++;
        answered = !f->again;
    } else if (f) {
        m->stats.fetches++;
        apply(m, fe->aor, reply);
    }
    if (ours) f->stale = false;
    if (ours && answered) f->fetched_once = true;
    free(fe);
    if (ours && f->again) fetch(m, f);
    if (ours) first_read_check(m, f);
}

static void fetch(struct presence_mirror *m, struct follow *f)
{
    if (f->fetching) {
        f->again = true; /* answers come in order: one more read after this one */
        return;
    }
    f->again = false;
    struct fetch *fe = malloc(sizeof(*fe));
    if (!fe) return;
    fe->m = m;
    fe->gen = f->gen;
    memcpy(fe->aor, f->aor, sizeof(fe->aor));
    char key[LOCATION_MAX_AOR + 80];
    key_of(m, f->aor, key, sizeof(key));
    const char *argv[] = {"HGETALL", key};
    size_t lens[] = {7, strlen(key)};
    if (m->fetches >= MAX_FETCHES || redis_cluster_command(m->rc, 1, 2, argv, lens, on_fetch, fe) < 0) {
        free(fe);
        f->fetched_once = true; /* no read to wait for */
        m->stats.fetch_failures++;
        log_warn_rl("redis presence: the publications of %s not read (%u reads in flight)", f->aor, m->fetches);
        return;
    }
    m->fetches++;
    f->fetching = true;
}

/* ---- registrations on other nodes (cluster_route's lookups) ---- */

static void lookup(struct presence_mirror *m, struct follow *f);

static void lookup_apply(struct presence_mirror *m, struct follow *f, const struct cluster_result *r)
{
    if (r->status < 0) {
        m->stats.lookup_failures++;
        log_warn_rl("redis presence: where %s is registered could not be read (%s)", f->aor, strerror(-r->status));
        return;
    }
    presence_set_registered_elsewhere(m->presence, f->aor, r->n > 0);
}

static void on_lookup(void *arg, const struct cluster_result *r)
{
    struct follow *f = arg; /* a follow that goes cancels its lookup first */
    struct presence_mirror *m = f->owner;
    f->lookup = NULL;
    lookup_apply(m, f, r);
    f->looked_once = true;
    if (f->lookup_again) lookup(m, f);
    first_read_check(m, f);
}

static void lookup(struct presence_mirror *m, struct follow *f)
{
    if (!m->cluster) return;
    if (f->lookup) {
        f->lookup_again = true; /* the one in flight may have read before the change */
        return;
    }
    f->lookup_again = false;
    struct cluster_result now;
    int rc = cluster_lookup(m->cluster, f->aor, &now, on_lookup, f, &f->lookup);
    if (rc == 1) {
        f->lookup = NULL;
        f->looked_once = true;
        lookup_apply(m, f, &now);
    } else if (rc < 0) {
        f->lookup = NULL;
        f->looked_once = true; /* not asked: nobody waits for it */
        m->stats.lookup_failures++;
        log_warn_rl("redis presence: where %s is registered not asked (%s)", f->aor, strerror(-rc));
    }
}

static void follow_drop(struct presence_mirror *m, struct follow *f)
{
    if (f->lookup) cluster_lookup_cancel(f->lookup);
    htable_remove(&m->follows, &f->node);
    free(f);
}

static int lookup_one(struct hnode *n, void *arg)
{
    lookup(arg, container_of(n, struct follow, node));
    return 0;
}

static void on_bindings_changed(void *arg, const char *aor)
{
    struct presence_mirror *m = arg;
    if (!aor) {
        htable_foreach(&m->follows, lookup_one, m);
        return;
    }
    struct follow *f = follow_find(m, aor);
    if (f) lookup(m, f);
}

static int cancel_one(struct hnode *n, void *arg)
{
    (void)arg;
    struct follow *f = container_of(n, struct follow, node);
    if (f->lookup) cluster_lookup_cancel(f->lookup);
    f->lookup = NULL;
    f->lookup_again = false;
    return 0;
}

void presence_mirror_set_cluster(struct presence_mirror *m, struct cluster *c)
{
    if (m->cluster) {
        cluster_set_on_bindings_changed(m->cluster, NULL, m);
        htable_foreach(&m->follows, cancel_one, m);
    }
    m->cluster = c;
    if (c) {
        if (cluster_set_on_bindings_changed(c, on_bindings_changed, m) < 0)
            log_warn("redis presence: no room for another listener of binding changes");
        htable_foreach(&m->follows, lookup_one, m);
    }
    first_read_check_all(m); /* those that waited for a lookup that went, or answered at once */
}

static void on_watch(void *arg, const char *aor, bool on)
{
    struct presence_mirror *m = arg;
    struct follow *f = follow_find(m, aor);
    if (!on) {
        if (f) follow_drop(m, f);
        return;
    }
    if (!f) {
        if (!(f = calloc(1, sizeof(*f)))) return;
        f->owner = m;
        snprintf(f->aor, sizeof(f->aor), "%s", aor);
        f->gen = ++m->next_gen;
        if (htable_insert(&m->follows, &f->node, hash_cstr(aor)) < 0) {
            free(f);
            return;
        }
    }
    fetch(m, f);
    lookup(m, f);
    first_read_check(m, f); /* neither sent: nobody waits */
}

static bool on_pending(void *arg, const char *aor)
{
    const struct follow *f = follow_find(arg, aor);
    return f && !f->ready;
}

static void on_announcement(struct presence_mirror *m, const char *msg, size_t len)
{
    m->stats.announcements++;
    char aor[LOCATION_MAX_AOR], field[PRESENCE_PUB_ID_MAX];
    if (presence_mirror_change_parse(m->prefix, msg, len, aor, sizeof(aor), field, sizeof(field)) < 0) {
        m->stats.rejected++;
        log_warn_rl("redis presence: a change message that names no presentity (%zu bytes) ignored", len);
        return;
    }
    size_t nl = strlen(m->node);
    /* one of ours taken over or removed through another node: ours no more */
    bool taken = field[0] && strncmp(field, m->node, nl) == 0 && field[nl] == '/' &&
                 presence_taken(m->presence, aor, field + nl + 1);
    if (taken) m->stats.given_up++;
    struct follow *f = follow_find(m, aor);
    if (!f) return; /* not watched here: nothing to do */
    if (taken && f->fetching) f->stale = true;
    fetch(m, f);
    first_read_check(m, f); /* (a first read stale, its next one not sent) */
}

static int refetch_one(struct hnode *n, void *arg)
{
    fetch(arg, container_of(n, struct follow, node));
    return 0;
}

/* ---- the announcements' connection (redis/redis_sub.h) ---- */

static void on_sub_lost(void *arg, const char *why)
{
    struct presence_mirror *m = arg;
    if (m->stats.subscribed)
        log_warn_rl("redis presence: the change channel is down (%s): other nodes' changes wait for it", why);
    m->stats.subscribed = false;
}

static void on_sub_subscribed(void *arg)
{
    struct presence_mirror *m = arg;
    m->stats.subscribed = true;
    log_info("redis presence: changes on channel %s; reading the %u presentities watched here", m->channel,
             htable_count(&m->follows));
    htable_foreach(&m->follows, refetch_one, m); /* what was missed while not subscribed */
}

static void on_sub_message(void *arg, const char *msg, size_t len) { on_announcement(arg, msg, len); }

/* ---- life cycle ---- */

struct presence_mirror *presence_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct subs *s,
                                            const struct redis_config *cfg, const char *node_id, int *err)
{
    struct presence *p = subs_presence(s);
    if (!node_ok(node_id, strlen(node_id))) {
        *err = -EINVAL;
        return NULL;
    }
    struct presence_mirror *m = calloc(1, sizeof(*m));
    if (!m) {
        *err = -ENOMEM;
        return NULL;
    }
    htable_init(&m->follows);
    m->subs = s;
    m->presence = p;
    m->loop = loop;
    m->timers = timers;
    m->max_pending = cfg->max_pending ? cfg->max_pending : 10000;
    m->per_user = PRESENCE_MIRROR_PAIRS_MAX;
    snprintf(m->prefix, sizeof(m->prefix), "%s", cfg->key_prefix);
    snprintf(m->channel, sizeof(m->channel), "%spres-changes", cfg->key_prefix);
    snprintf(m->node, sizeof(m->node), "%s", node_id);
    struct redis_sub_cb scb = {.subscribed = on_sub_subscribed, .message = on_sub_message, .lost = on_sub_lost,
                               .arg = m};
    m->sub = redis_sub_new(loop, timers, cfg->nodes, m->channel, &scb, err);
    if (!m->sub) {
        free(m);
        return NULL;
    }
    struct redis_cluster_config rc = {.seeds = cfg->nodes, .timeout_ms = cfg->timeout_ms,
                                      .max_queued = m->max_pending + MAX_FETCHES + 16};
    m->rc = redis_cluster_new(loop, timers, &rc, err);
    if (!m->rc) {
        redis_sub_free(m->sub);
        free(m);
        return NULL;
    }
    struct presence_mirror_hooks h = {.arg = m, .published = on_published, .withdrawn = on_withdrawn,
                                      .watch = on_watch, .take = on_take, .pending = on_pending};
    presence_set_mirror(p, &h, cfg->presence_max ? cfg->presence_max : 10000);
    struct subs_record_hooks sh = {.arg = m, .changed = on_sub_changed, .gone = on_sub_gone, .list = on_list_start,
                                   .cancel = on_list_cancel};
    subs_set_record_hooks(s, &sh); /* the subscriptions held now are written */
    return m;
}

static int free_follow(struct hnode *n, void *arg)
{
    follow_drop(arg, container_of(n, struct follow, node));
    return 0;
}

void presence_mirror_free(struct presence_mirror *m)
{
    if (!m) return;
    m->closing = true;
    if (m->cluster) cluster_set_on_bindings_changed(m->cluster, NULL, m);
    presence_set_mirror(m->presence, NULL, 0);
    subs_set_record_hooks(m->subs, NULL);
    redis_sub_free(m->sub);
    m->sub = NULL;
    redis_cluster_free(m->rc); /* callbacks: -ECANCELED */
    htable_foreach(&m->follows, free_follow, m);
    htable_free(&m->follows);
    free(m);
}

void presence_mirror_get_stats(const struct presence_mirror *m, struct presence_mirror_stats *out)
{
    *out = m->stats;
    out->followed = htable_count(&m->follows);
    out->remote = (uint32_t)presence_remote_count(m->presence);
}

void presence_mirror_set_incarnation(struct presence_mirror *m, const char *inc)
{
    snprintf(m->inc, sizeof(m->inc), "%s", inc ? inc : "");
    struct subs_record_hooks sh = {.arg = m, .changed = on_sub_changed, .gone = on_sub_gone, .list = on_list_start,
                                   .cancel = on_list_cancel};
    subs_set_record_hooks(m->subs, &sh); /* written again with it, and indexed */
}
