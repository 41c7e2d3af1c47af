/* mwi_mirror.c — message-summary across nodes (see the header). */
#include "subs/mwi_mirror.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "redis/hash_mirror.h"
#include "redis/redis_config.h"
#include "subs/subs.h"

/* ---- records ---- */

int mwi_record_encode(int64_t stamp, const char *body, size_t len, char *out, size_t cap)
{
    if (stamp < 0 || stamp > 999999999999999LL || len > MWI_MAX_BODY) return -EINVAL;
    int n = snprintf(out, cap, "%lld\n", (long long)stamp);
    if (n < 0 || (size_t)n + len >= cap) return -ENOSPC;
    memcpy(out + n, body, len);
    out[(size_t)n + len] = '\0';
    return n + (int)len;
}

int mwi_record_decode(const char *buf, size_t len, int64_t *stamp, const char **body, size_t *blen)
{
    if (!buf || len < 3 || len > MWI_MIRROR_RECORD_MAX) return -EINVAL;
    size_t d = 0;
    int64_t v = 0;
    while (d < len && d < MWI_MIRROR_STAMP_DIGITS && buf[d] >= '0' && buf[d] <= '9') v = v * 10 + (buf[d++] - '0');
    if (d == 0 || d == len || buf[d] != '\n') return -EINVAL;
    const char *b = buf + d + 1;
    size_t bl = len - d - 1;
    if (mwi_validate(b, bl, NULL) != 0) return -EINVAL;
    *stamp = v;
    *body = b;
    *blen = bl;
    return 0;
}

bool mwi_mirror_name_ok(const char *s, size_t len)
{
    if (!s || len == 0 || len > HASH_MIRROR_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || c == '#') return false;
    }
    return true;
}

enum mwi_apply_result mwi_mirror_apply(struct mwi_store *st, const char *aor, const char *rec, size_t len)
{
    if (!aor || !mwi_mirror_name_ok(aor, strlen(aor))) return MWI_APPLY_REJECTED;
    if (!rec) return mwi_store_del(st, aor) == 0 ? MWI_APPLY_REMOVED : MWI_APPLY_UNCHANGED;
    int64_t stamp;
    const char *body;
    size_t blen;
    if (mwi_record_decode(rec, len, &stamp, &body, &blen) < 0) return MWI_APPLY_REJECTED;
    int64_t held = mwi_store_stamp(st, aor);
    if (held > stamp) return MWI_APPLY_OLDER;
    if (held == stamp) {
        const char *cur = mwi_store_get(st, aor);
        if (cur && strlen(cur) == blen && memcmp(cur, body, blen) == 0) return MWI_APPLY_UNCHANGED;
    }
    if (mwi_store_put(st, aor, body, blen, stamp) < 0) return MWI_APPLY_REJECTED;
    return held < 0 ? MWI_APPLY_ADDED : MWI_APPLY_CHANGED;
}

/* ---- the engine's side ---- */

struct mwi_mirror {
    struct hash_mirror *hm;
    struct subs *subs;
    struct mwi_store *st;
    uint64_t older, not_shared;
};

static bool name_ok(const char *s, size_t len) { return mwi_mirror_name_ok(s, len); }

static enum hash_mirror_result hm_apply(void *arg, const char *name, const char *value, size_t len)
{
    struct mwi_mirror *m = arg;
    enum mwi_apply_result r = mwi_mirror_apply(m->st, name, value, len);
    switch (r) {
    case MWI_APPLY_ADDED:
    case MWI_APPLY_CHANGED:
    case MWI_APPLY_REMOVED:
        subs_mwi_changed(m->subs, name); /* this node's watchers, once */
        return r == MWI_APPLY_ADDED ? HASH_MIRROR_ADDED : r == MWI_APPLY_CHANGED ? HASH_MIRROR_CHANGED
                                                                                 : HASH_MIRROR_REMOVED;
    case MWI_APPLY_OLDER: m->older++; return HASH_MIRROR_UNCHANGED;
    case MWI_APPLY_REJECTED: return HASH_MIRROR_REJECTED;
    default: return HASH_MIRROR_UNCHANGED;
    }
}

static int hm_foreach(void *arg, int (*cb)(void *cbarg, const char *name), void *cbarg)
{
    struct mwi_mirror *m = arg;
    return mwi_store_foreach(m->st, cb, cbarg);
}

static int hm_encode(void *arg, const char *name, char *out, size_t cap)
{
    struct mwi_mirror *m = arg;
    const char *body = mwi_store_get(m->st, name);
    if (!body || !mwi_mirror_name_ok(name, strlen(name))) return -ENOENT;
    return mwi_record_encode(mwi_store_stamp(m->st, name), body, strlen(body), out, cap);
}

/* A summary here that the seeded hash lacks: kept. Nothing deletes a field
 * (a source only ever replaces a summary), so it is one this node took while
 * its write could not reach Redis, not one deleted elsewhere. */
static bool hm_may_drop(void *arg, const char *name)
{
    (void)arg, (void)name;
    return false;
}

/* A voicemail source's summary taken here: written and announced. */
static void on_taken(void *arg, const char *aor)
{
    struct mwi_mirror *m = arg;
    const char *body = mwi_store_get(m->st, aor);
    char rec[MWI_MIRROR_RECORD_MAX + 1];
    int n = body && mwi_mirror_name_ok(aor, strlen(aor))
                ? mwi_record_encode(mwi_store_stamp(m->st, aor), body, strlen(body), rec, sizeof(rec))
                : -EINVAL;
    if (n < 0) {
        m->not_shared++;
        log_warn_rl("redis mwi: the summary of \"%.64s\" is not shared (its AoR cannot be a field)", aor);
        return;
    }
    hash_mirror_changed(m->hm, aor, rec, (size_t)n);
}

struct mwi_mirror *mwi_mirror_new(uv_loop_t *loop, struct timer_service *timers, struct subs *s,
                                  const struct redis_config *cfg, uint32_t max_users, int *err)
{
    struct mwi_mirror *m = calloc(1, sizeof(*m));
    if (!m) {
        *err = -ENOMEM;
        return NULL;
    }
    m->subs = s;
    m->st = subs_mwi_store(s);
    struct hash_mirror_names names;
    struct hash_mirror_config hc = hash_mirror_config_for(cfg, "mwi", &names);
    hc.max_entries = max_users ? max_users : 1;
    hc.record_max = MWI_MIRROR_RECORD_MAX;
    hc.stamped = true;
    struct hash_mirror_ops ops = {.what = "mwi", .name_ok = name_ok, .apply = hm_apply, .foreach = hm_foreach,
                                  .encode = hm_encode, .may_drop = hm_may_drop, .arg = m};
    if (!m->st || !(m->hm = hash_mirror_new(loop, timers, &hc, &ops, err))) {
        if (!m->st) *err = -EINVAL;
        free(m);
        return NULL;
    }
    subs_set_mwi_hooks(s, &(struct subs_mwi_hooks){.arg = m, .taken = on_taken});
    return m;
}

void mwi_mirror_free(struct mwi_mirror *m)
{
    if (!m) return;
    subs_set_mwi_hooks(m->subs, NULL);
    hash_mirror_free(m->hm);
    free(m);
}

void mwi_mirror_get_stats(const struct mwi_mirror *m, struct mwi_mirror_stats *out)
{
    memset(out, 0, sizeof(*out));
    hash_mirror_get_stats(m->hm, &out->mirror);
    out->older = m->older;
    out->not_shared = m->not_shared;
    out->summaries = mwi_store_count(m->st);
}
