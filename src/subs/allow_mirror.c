/* allow_mirror.c — the presence allow lists shared through Redis Cluster
 * (see the header). */
#include "subs/allow_mirror.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/json_out.h"
#include "redis/hash_mirror.h"

struct presence_allow_mirror {
    struct hash_mirror *hm;
    struct presence *p;
    size_t max_lists;
};

/* ---- records (stranger input when read) ---- */

int presence_allow_record_encode(const char (*names)[PRESENCE_MAX_NAME], size_t n, char *out, size_t cap)
{
    if (n == 0 || n > PRESENCE_MAX_ALLOW) return -EINVAL;
    json_t *list = json_array();
    for (size_t i = 0; i < n && list; i++)
        if (json_array_append_new(list, json_stringn(names[i], strnlen(names[i], PRESENCE_MAX_NAME))) < 0) {
            json_decref(list);
            list = NULL;
        }
    json_t *o = list ? json_pack("{s:o}", "allow", list) : NULL;
    if (!o) return -ENOMEM;
    int len = json_out_buf(o, out, cap);
    json_decref(o);
    return len;
}

int presence_allow_record_decode(const char *buf, size_t len, char (*names)[PRESENCE_MAX_NAME], size_t *n)
{
    *n = 0;
    if (!buf || len == 0 || len > PRESENCE_ALLOW_RECORD_MAX) return -EINVAL;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = -EINVAL;
    json_t *list = json_is_object(o) ? json_object_get(o, "allow") : NULL;
    size_t count = json_is_array(list) ? json_array_size(list) : 0;
    if (count == 0 || count > PRESENCE_MAX_ALLOW) goto out;
    for (size_t i = 0; i < count; i++) {
        json_t *s = json_array_get(list, i);
        if (!json_is_string(s)) goto out;
        const char *v = json_string_value(s);
        size_t l = json_string_length(s);
        if (l == 0 || l >= PRESENCE_MAX_NAME || strlen(v) != l || strchr(v, ',')) goto out;
        memcpy(names[i], v, l + 1);
    }
    *n = count;
    rc = 0;
out:
    json_decref(o);
    return rc;
}

bool presence_allow_field_ok(const char *s, size_t len)
{
    if (!s || len == 0 || len > HASH_MIRROR_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '#') return false;
    }
    return true;
}

/* ---- the engine's side (redis/hash_mirror.h) ---- */

static enum hash_mirror_result hm_apply(void *arg, const char *name, const char *value, size_t len)
{
    struct presence_allow_mirror *m = arg;
    char names[PRESENCE_MAX_ALLOW][PRESENCE_MAX_NAME];
    const char *ptrs[PRESENCE_MAX_ALLOW];
    size_t n = 0;
    if (value && presence_allow_record_decode(value, len, names, &n) < 0) return HASH_MIRROR_REJECTED;
    for (size_t i = 0; i < n; i++) ptrs[i] = names[i];
    /* a new list beyond the cap is refused (an existing one may change) */
    if (n && presence_allow_count(m->p) >= m->max_lists && presence_allow_get(m->p, name, NULL, 0) == 0)
        return HASH_MIRROR_REJECTED;
    switch (presence_allow_apply(m->p, name, ptrs, n)) {
    case PRESENCE_ALLOW_ADDED: return HASH_MIRROR_ADDED;
    case PRESENCE_ALLOW_CHANGED: return HASH_MIRROR_CHANGED;
    case PRESENCE_ALLOW_REMOVED: return HASH_MIRROR_REMOVED;
    case PRESENCE_ALLOW_UNCHANGED: return HASH_MIRROR_UNCHANGED;
    default: return HASH_MIRROR_REJECTED;
    }
}

static int hm_foreach(void *arg, int (*cb)(void *cbarg, const char *name), void *cbarg)
{
    struct presence_allow_mirror *m = arg;
    return presence_allow_foreach(m->p, cb, cbarg);
}

static int hm_encode(void *arg, const char *name, char *out, size_t cap)
{
    struct presence_allow_mirror *m = arg;
    if (!presence_allow_field_ok(name, strlen(name))) return -EINVAL; /* a stored row Redis cannot name */
    char names[PRESENCE_MAX_ALLOW][PRESENCE_MAX_NAME];
    size_t n = presence_allow_get(m->p, name, names, PRESENCE_MAX_ALLOW);
    if (n == 0) return -ENOENT;
    return presence_allow_record_encode((const char (*)[PRESENCE_MAX_NAME])names, n, out, cap);
}

static void on_allow_changed(void *arg, const char *aor)
{
    struct presence_allow_mirror *m = arg;
    if (!presence_allow_field_ok(aor, strlen(aor))) return;
    char rec[PRESENCE_ALLOW_RECORD_MAX + 1];
    int n = hm_encode(m, aor, rec, sizeof(rec));
    if (n == -ENOENT) hash_mirror_changed(m->hm, aor, NULL, 0); /* cleared */
    else if (n > 0) hash_mirror_changed(m->hm, aor, rec, (size_t)n);
}

/* ---- life cycle ---- */

struct presence_allow_mirror *presence_allow_mirror_new(uv_loop_t *loop, struct timer_service *timers,
                                                        struct presence *p, const struct redis_config *cfg,
                                                        int *err)
{
    struct presence_allow_mirror *m = calloc(1, sizeof(*m));
    if (!m) {
        *err = -ENOMEM;
        return NULL;
    }
    m->p = p;
    m->max_lists = cfg->presence_allow_max;
    struct hash_mirror_names names;
    struct hash_mirror_config hc = hash_mirror_config_for(cfg, "presallow", &names);
    hc.max_entries = cfg->presence_allow_max;
    hc.record_max = PRESENCE_ALLOW_RECORD_MAX;
    struct hash_mirror_ops ops = {.what = "presence allow", .name_ok = presence_allow_field_ok, .apply = hm_apply,
                                  .foreach = hm_foreach, .encode = hm_encode, .arg = m};
    if (!(m->hm = hash_mirror_new(loop, timers, &hc, &ops, err))) {
        free(m);
        return NULL;
    }
    presence_set_allow_observer(p, on_allow_changed, m);
    return m;
}

void presence_allow_mirror_free(struct presence_allow_mirror *m)
{
    if (!m) return;
    presence_set_allow_observer(m->p, NULL, NULL);
    hash_mirror_free(m->hm);
    free(m);
}

void presence_allow_mirror_get_stats(const struct presence_allow_mirror *m, struct presence_allow_mirror_stats *out)
{
    memset(out, 0, sizeof(*out));
    hash_mirror_get_stats(m->hm, &out->mirror);
    out->lists = presence_allow_count(m->p);
}
