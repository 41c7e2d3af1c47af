/* admin_mirror.c — GB devices' administrative records shared through Redis
 * Cluster (see the header). */
#include "gb/upper/admin_mirror.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/json_out.h"
#include "base/str.h"
#include "gb/codec/gbid.h"
#include "redis/hash_mirror.h"

struct gb_admin_mirror {
    struct hash_mirror *hm;
    struct gb_upper *g;
    bool allow_unknown;
};

/* ---- records (stranger input when read) ---- */

int gb_admin_record_encode(const struct gb_admin_record *r, char *out, size_t cap)
{
    json_t *o = json_pack("{s:s,s:s,s:b,s:b,s:i}", "password", r->password, "charset", gb_charset_name(r->charset),
                          "auth", r->auth, "allow", r->allow, "subscribe", r->subscribe);
    if (!o) return -ENOMEM;
    int n = json_out_buf(o, out, cap);
    json_decref(o);
    return n;
}

int gb_admin_record_decode(const char *buf, size_t len, struct gb_admin_record *out)
{
    memset(out, 0, sizeof(*out));
    if (!buf || len == 0 || len > GB_ADMIN_RECORD_MAX) return -EINVAL;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = -EINVAL;
    if (!o || !json_is_object(o)) goto out;
    json_t *pw = json_object_get(o, "password"), *cs = json_object_get(o, "charset"),
           *auth = json_object_get(o, "auth"), *allow = json_object_get(o, "allow"),
           *sub = json_object_get(o, "subscribe");
    if (!json_is_string(pw) || !json_is_string(cs) || !json_is_boolean(auth) || !json_is_boolean(allow) ||
        !json_is_integer(sub))
        goto out;
    const char *p = json_string_value(pw);
    size_t pl = json_string_length(pw);
    if (pl > GB_ADMIN_PASSWORD_MAX || strlen(p) != pl || strpbrk(p, "\r\n")) goto out;
    if (json_string_length(cs) != strlen(json_string_value(cs)) ||
        gb_charset_from_name(json_string_value(cs), &out->charset) != 0)
        goto out;
    json_int_t s = json_integer_value(sub);
    if (s < -1 || s > (GB_SUBSCRIBE_CATALOG | GB_SUBSCRIBE_ALARM | GB_SUBSCRIBE_POSITION)) goto out;
    memcpy(out->password, p, pl + 1);
    out->auth = json_is_true(auth);
    out->allow = json_is_true(allow);
    out->subscribe = (int)s;
    rc = 0;
out:
    json_decref(o);
    if (rc) memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- the engine's side (redis/hash_mirror.h) ---- */

static bool name_ok(const char *s, size_t len) { return gb_id_valid(str_make(s, len)); }

static enum hash_mirror_result hm_apply(void *arg, const char *name, const char *value, size_t len)
{
    struct gb_admin_mirror *m = arg;
    struct gb_admin_record r;
    if (value && gb_admin_record_decode(value, len, &r) < 0) return HASH_MIRROR_REJECTED;
    switch (gb_device_admin_apply(m->g, name, value ? &r : NULL)) {
    case GB_ADMIN_ADDED: return HASH_MIRROR_ADDED;
    case GB_ADMIN_CHANGED: return HASH_MIRROR_CHANGED;
    case GB_ADMIN_REMOVED: return HASH_MIRROR_REMOVED;
    case GB_ADMIN_REJECTED: return HASH_MIRROR_REJECTED;
    default: return HASH_MIRROR_UNCHANGED;
    }
}

static int hm_foreach(void *arg, int (*cb)(void *cbarg, const char *name), void *cbarg)
{
    struct gb_admin_mirror *m = arg;
    return gb_device_admin_foreach(m->g, cb, cbarg);
}

static int hm_encode(void *arg, const char *name, char *out, size_t cap)
{
    struct gb_admin_mirror *m = arg;
    struct gb_admin_record r;
    if (gb_device_admin_get(m->g, name, &r) < 0) return -ENOENT;
    return gb_admin_record_encode(&r, out, cap);
}

static bool hm_may_drop(void *arg, const char *name)
{
    (void)name;
    const struct gb_admin_mirror *m = arg;
    return !m->allow_unknown;
}

static void on_admin_changed(void *arg, const char *id, bool deleted)
{
    struct gb_admin_mirror *m = arg;
    char rec[GB_ADMIN_RECORD_MAX + 1];
    int n = deleted ? 0 : hm_encode(m, id, rec, sizeof(rec));
    if (n < 0) return;
    hash_mirror_changed(m->hm, id, deleted ? NULL : rec, (size_t)n);
}

/* ---- life cycle ---- */

struct gb_admin_mirror *gb_admin_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct gb_upper *g,
                                            const struct redis_config *cfg, bool allow_unknown, int *err)
{
    struct gb_admin_mirror *m = calloc(1, sizeof(*m));
    if (!m) {
        *err = -ENOMEM;
        return NULL;
    }
    m->g = g;
    m->allow_unknown = allow_unknown;
    struct hash_mirror_names names;
    struct hash_mirror_config hc = hash_mirror_config_for(cfg, "gbadmin", &names);
    hc.max_entries = cfg->gb_admin_max;
    hc.record_max = GB_ADMIN_RECORD_MAX;
    struct hash_mirror_ops ops = {.what = "gb admin", .name_ok = name_ok, .apply = hm_apply, .foreach = hm_foreach,
                                  .encode = hm_encode, .may_drop = hm_may_drop, .arg = m};
    if (!(m->hm = hash_mirror_new(loop, timers, &hc, &ops, err))) {
        free(m);
        return NULL;
    }
    gb_upper_set_admin_observer(g, on_admin_changed, m);
    return m;
}

void gb_admin_mirror_free(struct gb_admin_mirror *m)
{
    if (!m) return;
    gb_upper_set_admin_observer(m->g, NULL, NULL);
    hash_mirror_free(m->hm);
    free(m);
}

void gb_admin_mirror_get_stats(const struct gb_admin_mirror *m, struct gb_admin_mirror_stats *out)
{
    hash_mirror_get_stats(m->hm, &out->mirror);
}
