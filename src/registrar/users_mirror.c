/* users_mirror.c — SIP users shared through Redis Cluster (see the header). */
#include "registrar/users_mirror.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "base/json_out.h"
#include "base/log.h"
#include "base/str.h"
#include "redis/hash_mirror.h"

/* ---- records (stranger input when read) ---- */

int users_record_encode(const struct users_entry *e, char *out, size_t cap)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "realm", e->realm, "md5", e->ha1_md5, "sha256", e->ha1_sha256,
                          "created", (json_int_t)e->created_at);
    if (!o) return -ENOMEM;
    int n = json_out_buf(o, out, cap);
    json_decref(o);
    return n;
}

int users_record_decode(const char *buf, size_t len, struct users_record *out)
{
    memset(out, 0, sizeof(*out));
    if (!buf || len == 0 || len > USERS_MIRROR_RECORD_MAX) return -EINVAL;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return -EINVAL;
    }
    json_t *realm = json_object_get(o, "realm"), *md5 = json_object_get(o, "md5"),
           *sha = json_object_get(o, "sha256"), *created = json_object_get(o, "created");
    int rc = -EINVAL;
    if (!json_is_string(realm) || !json_is_string(md5) || !json_is_string(sha) || !json_is_integer(created))
        goto out;
    const char *r = json_string_value(realm);
    size_t rl = json_string_length(realm);
    if (rl > USERS_MAX_REALM || strlen(r) != rl) goto out; /* no NUL inside */
    for (size_t i = 0; i < rl; i++)
        if ((unsigned char)r[i] < 0x20 || (unsigned char)r[i] == 0x7f) goto out;
    if (json_string_length(md5) > 32 || json_string_length(sha) > 64) goto out;
    if (!users_ha1_copy(json_string_value(md5), 32, out->md5) || !users_ha1_copy(json_string_value(sha), 64, out->sha256)) goto out;
    if (!out->md5[0] && !out->sha256[0]) goto out;
    if (json_integer_value(created) < 0) goto out;
    memcpy(out->realm, r, rl + 1);
    out->created_at = json_integer_value(created);
    rc = 0;
out:
    json_decref(o);
    if (rc) memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- applying what Redis holds ---- */

static bool same(const struct users_entry *e, const struct users_record *r)
{
    return !strcmp(e->realm, r->realm) && !strcmp(e->ha1_md5, r->md5) && !strcmp(e->ha1_sha256, r->sha256);
}

/* name (NUL-terminated, checked) <- record r (NULL: none). */
static enum users_apply_result apply_record(struct users *u, const char *name, const struct users_record *r,
                                            size_t max_users)
{
    const struct users_entry *e = users_find(u, str_from_cstr(name));
    enum users_apply_result res;
    users_set_quiet(u, true);
    if (!r) {
        res = e && users_del(u, name, NULL, NULL) == 0 ? USERS_APPLY_REMOVED : USERS_APPLY_UNCHANGED;
    } else if (e && same(e, r)) {
        res = USERS_APPLY_UNCHANGED;
    } else if (!e && users_count(u) >= max_users) {
        res = USERS_APPLY_REJECTED;
    } else {
        bool had = e != NULL;
        res = users_add(u, name, r->realm, r->md5, r->sha256, NULL, NULL) == 0
                  ? (had ? USERS_APPLY_CHANGED : USERS_APPLY_ADDED)
                  : USERS_APPLY_REJECTED;
    }
    users_set_quiet(u, false);
    return res;
}

/* A name from Redis: a users_name_ok name, copied with its NUL. */
static bool name_read(const char *s, size_t len, char *out)
{
    if (!s || len == 0 || len > USERS_MAX_NAME || memchr(s, '\0', len)) return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return users_name_ok(out);
}

enum users_apply_result users_mirror_apply(struct users *u, const char *name, size_t name_len,
                                           const struct redisReply *value, size_t max_users)
{
    char n[USERS_MAX_NAME + 1];
    if (!value || !name_read(name, name_len, n)) return USERS_APPLY_REJECTED;
    if (value->type == REDIS_REPLY_NIL) return apply_record(u, n, NULL, max_users);
    struct users_record r;
    if (value->type != REDIS_REPLY_STRING || users_record_decode(value->str, value->len, &r) < 0)
        return USERS_APPLY_REJECTED;
    return apply_record(u, n, &r, max_users);
}

/* ---- the engine's side (redis/hash_mirror.h) ---- */

struct users_mirror {
    struct hash_mirror *hm;
    struct users *users;
    size_t max_users;
    void (*on_removed)(void *arg, const char *name);
    void *on_removed_arg;
};

static bool name_ok(const char *s, size_t len)
{
    char n[USERS_MAX_NAME + 1];
    return name_read(s, len, n);
}

static enum hash_mirror_result hm_apply(void *arg, const char *name, const char *value, size_t len)
{
    struct users_mirror *m = arg;
    struct users_record r;
    if (value && users_record_decode(value, len, &r) < 0) return HASH_MIRROR_REJECTED;
    enum users_apply_result res = apply_record(m->users, name, value ? &r : NULL, m->max_users);
    if (res == USERS_APPLY_REMOVED && m->on_removed) m->on_removed(m->on_removed_arg, name);
    switch (res) {
    case USERS_APPLY_ADDED: return HASH_MIRROR_ADDED;
    case USERS_APPLY_CHANGED: return HASH_MIRROR_CHANGED;
    case USERS_APPLY_REMOVED: return HASH_MIRROR_REMOVED;
    case USERS_APPLY_REJECTED: return HASH_MIRROR_REJECTED;
    default: return HASH_MIRROR_UNCHANGED;
    }
}

struct walk {
    int (*cb)(void *cbarg, const char *name);
    void *cbarg;
};

static int walk_one(void *arg, const struct users_entry *e)
{
    struct walk *w = arg;
    return w->cb(w->cbarg, e->name);
}

static int hm_foreach(void *arg, int (*cb)(void *cbarg, const char *name), void *cbarg)
{
    struct users_mirror *m = arg;
    struct walk w = {cb, cbarg};
    return users_foreach(m->users, walk_one, &w);
}

static int hm_encode(void *arg, const char *name, char *out, size_t cap)
{
    struct users_mirror *m = arg;
    const struct users_entry *e = users_find(m->users, str_from_cstr(name));
    return e ? users_record_encode(e, out, cap) : -ENOENT;
}

static void on_user_changed(void *arg, const char *name, const struct users_entry *e)
{
    struct users_mirror *m = arg;
    char rec[USERS_MIRROR_RECORD_MAX];
    int n = e ? users_record_encode(e, rec, sizeof(rec)) : 0;
    if (n < 0) return;
    hash_mirror_changed(m->hm, name, e ? rec : NULL, (size_t)n);
}

/* ---- life cycle ---- */

struct users_mirror *users_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct users *u,
                                      const struct redis_config *cfg, int *err)
{
    struct users_mirror *m = calloc(1, sizeof(*m));
    if (!m) {
        *err = -ENOMEM;
        return NULL;
    }
    m->users = u;
    m->max_users = cfg->users_max ? cfg->users_max : 100000;
    struct hash_mirror_names names;
    struct hash_mirror_config hc = hash_mirror_config_for(cfg, "users", &names);
    hc.max_entries = m->max_users;
    hc.record_max = USERS_MIRROR_RECORD_MAX;
    struct hash_mirror_ops ops = {.what = "users", .name_ok = name_ok, .apply = hm_apply, .foreach = hm_foreach,
                                  .encode = hm_encode, .arg = m};
    if (!(m->hm = hash_mirror_new(loop, timers, &hc, &ops, err))) {
        free(m);
        return NULL;
    }
    users_set_observer(u, on_user_changed, m);
    return m;
}

void users_mirror_free(struct users_mirror *m)
{
    if (!m) return;
    users_set_observer(m->users, NULL, NULL);
    hash_mirror_free(m->hm);
    free(m);
}

void users_mirror_set_on_removed(struct users_mirror *m, void (*cb)(void *arg, const char *name), void *arg)
{
    m->on_removed = cb;
    m->on_removed_arg = arg;
}

void users_mirror_get_stats(const struct users_mirror *m, struct users_mirror_stats *out)
{
    memset(out, 0, sizeof(*out));
    hash_mirror_get_stats(m->hm, &out->mirror);
    out->users = (uint32_t)users_count(m->users);
}
