/* users.c — in-memory user table backed by the store (see users.h).
 *
 * Chained hash table with a power-of-two bucket array that doubles when the
 * load factor passes 1. Each user is one allocation: the node, then the name
 * and realm strings. */
#include "registrar/users.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"

struct user_node {
    struct users_entry pub;
    struct user_node *next;
    uint32_t hash;
    char strings[];
};

struct users {
    struct store *store;
    struct user_node **buckets;
    size_t mask;              /* buckets - 1 */
    size_t count;
};

#define USERS_INITIAL_BUCKETS 64

struct users *users_new(struct store *store)
{
    struct users *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    u->buckets = calloc(USERS_INITIAL_BUCKETS, sizeof(*u->buckets));
    if (!u->buckets) {
        free(u);
        return NULL;
    }
    u->mask = USERS_INITIAL_BUCKETS - 1;
    u->store = store;
    return u;
}

void users_free(struct users *u)
{
    if (!u) return;
    for (size_t i = 0; i <= u->mask; i++) {
        struct user_node *n = u->buckets[i];
        while (n) {
            struct user_node *next = n->next;
            free(n);
            n = next;
        }
    }
    free(u->buckets);
    free(u);
}

/* ---- Validation. */

static bool text_ok(const char *s, size_t max, bool allow_empty)
{
    size_t n = s ? strnlen(s, max + 1) : 0;
    if (n > max || (!allow_empty && n == 0)) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return false;
    }
    return true;
}

bool users_name_ok(const char *name)
{
    size_t n = name ? strnlen(name, USERS_MAX_NAME + 1) : 0;
    if (n == 0 || n > USERS_MAX_NAME || !strcmp(name, ".") || !strcmp(name, "..")) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
        if (!strchr("-_.!~*'()&=+$,", c)) return false;
    }
    return true;
}

/* Copies "" / NULL or exactly `digits` hex digits, lower-cased, into out. */
static bool ha1_ok(const char *in, size_t digits, char *out)
{
    out[0] = '\0';
    if (!in || !in[0]) return true;
    size_t n = strnlen(in, digits + 1);
    if (n != digits) return false;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c >= 'A' && c <= 'F') c = (char)(c + 32);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        out[i] = c;
    }
    out[n] = '\0';
    return true;
}

/* ---- Table. */

static struct user_node **slot_of(const struct users *u, str_t name, uint32_t hash)
{
    struct user_node **p = &u->buckets[hash & u->mask];
    while (*p && !((*p)->hash == hash && str_eq_cstr(name, (*p)->pub.name))) p = &(*p)->next;
    return p;
}

static void grow(struct users *u)
{
    size_t nb = (u->mask + 1) * 2;
    struct user_node **b = calloc(nb, sizeof(*b));
    if (!b) return; /* keep working with longer chains */
    for (size_t i = 0; i <= u->mask; i++) {
        struct user_node *n = u->buckets[i];
        while (n) {
            struct user_node *next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    free(u->buckets);
    u->buckets = b;
    u->mask = nb - 1;
}

/* Validates and inserts (replacing any previous entry of that name).
 * Returns the new entry, or NULL with *err set. */
static struct user_node *put(struct users *u, const char *name, const char *realm, const char *md5,
                             const char *sha256, int64_t created_at, int *err)
{
    char m[33], s[65];
    if (!text_ok(name, USERS_MAX_NAME, false) || !text_ok(realm, USERS_MAX_REALM, true) || !ha1_ok(md5, 32, m) ||
        !ha1_ok(sha256, 64, s) || (!m[0] && !s[0])) {
        *err = -EINVAL;
        return NULL;
    }
    if (!realm) realm = "";
    size_t nlen = strlen(name), rlen = strlen(realm);
    struct user_node *n = malloc(sizeof(*n) + nlen + rlen + 2);
    if (!n) {
        *err = -ENOMEM;
        return NULL;
    }
    memcpy(n->strings, name, nlen + 1);
    memcpy(n->strings + nlen + 1, realm, rlen + 1);
    n->pub.name = n->strings;
    n->pub.realm = n->strings + nlen + 1;
    memcpy(n->pub.ha1_md5, m, sizeof(m));
    memcpy(n->pub.ha1_sha256, s, sizeof(s));
    n->hash = str_hash(str_make(name, nlen));

    struct user_node **slot = slot_of(u, str_make(name, nlen), n->hash);
    if (*slot) {
        struct user_node *old = *slot;
        n->pub.created_at = old->pub.created_at;
        n->next = old->next;
        *slot = n;
        free(old);
    } else {
        n->pub.created_at = created_at;
        n->next = NULL;
        *slot = n;
        if (++u->count > u->mask + 1) grow(u);
    }
    return n;
}

static void persist(struct users *u, struct store_op *op, const char *what, const char *name, store_done_cb cb,
                    void *arg)
{
    if (!u->store) {
        if (cb) cb(arg, 0);
        return;
    }
    int rc = store_submit(u->store, op, cb, arg);
    if (rc < 0) {
        log_error("users: cannot persist %s of \"%s\": %s", what, name, strerror(-rc));
        if (cb) cb(arg, rc);
    }
}

int users_add(struct users *u, const char *name, const char *realm, const char *ha1_md5,
              const char *ha1_sha256, store_done_cb cb, void *arg)
{
    int err = users_name_ok(name) ? 0 : -EINVAL;
    struct user_node *n = err ? NULL : put(u, name, realm, ha1_md5, ha1_sha256, clock_wall_ms(), &err);
    if (!n) {
        if (err == -EINVAL)
            log_warn("users: refused user \"%.64s\": bad name, realm or HA1", name && text_ok(name, 64, false) ? name : "?");
        return err;
    }
    struct store_op *op = NULL;
    if (u->store) {
        struct store_user row = {n->pub.name, n->pub.realm, n->pub.ha1_md5, n->pub.ha1_sha256, n->pub.created_at};
        op = store_op_user_upsert(&row);
    }
    persist(u, op, "add", n->pub.name, cb, arg);
    return 0;
}

int users_del(struct users *u, const char *name, store_done_cb cb, void *arg)
{
    if (!name) return -ENOENT;
    str_t key = str_from_cstr(name);
    struct user_node **slot = slot_of(u, key, str_hash(key));
    if (!*slot) return -ENOENT;
    struct user_node *n = *slot;
    *slot = n->next;
    u->count--;
    struct store_op *op = u->store ? store_op_user_delete(n->pub.name) : NULL;
    persist(u, op, "delete", name, cb, arg);
    free(n);
    return 0;
}

const struct users_entry *users_find(const struct users *u, str_t name)
{
    struct user_node *n = *slot_of(u, name, str_hash(name));
    return n ? &n->pub : NULL;
}

size_t users_count(const struct users *u) { return u->count; }

int users_foreach(const struct users *u, int (*cb)(void *arg, const struct users_entry *e), void *arg)
{
    for (size_t i = 0; i <= u->mask; i++)
        for (struct user_node *n = u->buckets[i]; n; n = n->next) {
            int rc = cb(arg, &n->pub);
            if (rc) return rc;
        }
    return 0;
}

struct load_ctx {
    struct users *u;
    int loaded;
};

static int load_row(void *arg, const struct store_user *row)
{
    struct load_ctx *c = arg;
    int err = 0;
    if (put(c->u, row->name, row->realm, row->ha1_md5, row->ha1_sha256, row->created_at, &err)) {
        c->loaded++;
        return 0;
    }
    if (err == -ENOMEM) return err;
    log_warn("users: skipped stored user \"%.64s\": bad name, realm or HA1", row->name);
    return 0;
}

int users_load(struct users *u, struct store *st)
{
    struct load_ctx c = {u, 0};
    int rc = store_load_users(st, load_row, &c);
    if (rc < 0) return rc;
    log_info("users: loaded %d users", c.loaded);
    return c.loaded;
}
