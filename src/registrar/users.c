/* users.c — in-memory user table backed by the store (see users.h).
 *
 * A base/htable keyed by str_hash(name). Each user is one allocation: the
 * node, then the name and realm strings. */
#include "registrar/users.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/htable.h"
#include "base/timer.h" /* container_of */
#include "base/log.h"

struct user_node {
    struct users_entry pub;
    struct hnode node;        /* in users->table */
    char strings[];
};

struct users {
    struct store *store;
    struct htable table;      /* struct user_node by name */
    users_observer_cb observer;
    void *observer_arg;
    bool quiet;
};

void users_set_observer(struct users *u, users_observer_cb cb, void *arg)
{
    u->observer = cb;
    u->observer_arg = arg;
}

void users_set_quiet(struct users *u, bool quiet) { u->quiet = quiet; }

static void tell(struct users *u, const char *name, const struct users_entry *e)
{
    if (u->observer && !u->quiet) u->observer(u->observer_arg, name, e);
}

#define USERS_INITIAL_BUCKETS 64

struct users *users_new(struct store *store)
{
    struct users *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    htable_init(&u->table);
    u->table.min_buckets = USERS_INITIAL_BUCKETS;
    u->store = store;
    return u;
}

static int free_node(struct hnode *n, void *arg)
{
    (void)arg;
    free(container_of(n, struct user_node, node));
    return 0;
}

void users_free(struct users *u)
{
    if (!u) return;
    htable_foreach(&u->table, free_node, NULL);
    htable_free(&u->table);
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

bool users_ha1_copy(const char *in, size_t digits, char *out)
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

static struct user_node *node_find(const struct users *u, str_t name)
{
    for (struct hnode *h = htable_first(&u->table, str_hash(name)); h; h = htable_next(h)) {
        struct user_node *n = container_of(h, struct user_node, node);
        if (str_eq_cstr(name, n->pub.name)) return n;
    }
    return NULL;
}

/* Validates and inserts (replacing any previous entry of that name).
 * Returns the new entry, or NULL with *err set. */
static struct user_node *put(struct users *u, const char *name, const char *realm, const char *md5,
                             const char *sha256, int64_t created_at, int *err)
{
    char m[33], s[65];
    if (!text_ok(name, USERS_MAX_NAME, false) || !text_ok(realm, USERS_MAX_REALM, true) || !users_ha1_copy(md5, 32, m) ||
        !users_ha1_copy(sha256, 64, s) || (!m[0] && !s[0])) {
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

    str_t key = str_make(name, nlen);
    struct user_node *old = node_find(u, key);
    n->pub.created_at = old ? old->pub.created_at : created_at;
    if (old) htable_remove(&u->table, &old->node);
    /* fails only for the first bucket array: never when replacing */
    if (htable_insert(&u->table, &n->node, str_hash(key)) != 0) {
        free(n);
        *err = -ENOMEM;
        return NULL;
    }
    free(old);
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
    tell(u, n->pub.name, &n->pub);
    persist(u, op, "add", n->pub.name, cb, arg);
    return 0;
}

int users_del(struct users *u, const char *name, store_done_cb cb, void *arg)
{
    if (!name) return -ENOENT;
    str_t key = str_from_cstr(name);
    struct user_node *n = node_find(u, key);
    if (!n) return -ENOENT;
    htable_remove(&u->table, &n->node);
    struct store_op *op = u->store ? store_op_user_delete(n->pub.name) : NULL;
    tell(u, n->pub.name, NULL);
    persist(u, op, "delete", name, cb, arg);
    free(n);
    return 0;
}

const struct users_entry *users_find(const struct users *u, str_t name)
{
    struct user_node *n = node_find(u, name);
    return n ? &n->pub : NULL;
}

size_t users_count(const struct users *u) { return htable_count(&u->table); }

struct foreach_ctx {
    int (*cb)(void *arg, const struct users_entry *e);
    void *arg;
};

static int foreach_node(struct hnode *h, void *arg)
{
    struct foreach_ctx *c = arg;
    return c->cb(c->arg, &container_of(h, struct user_node, node)->pub);
}

int users_foreach(const struct users *u, int (*cb)(void *arg, const struct users_entry *e), void *arg)
{
    struct foreach_ctx c = {cb, arg};
    /* the callback only reads: cast away const for the walk */
    return htable_foreach((struct htable *)&u->table, foreach_node, &c);
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

struct reload_ctx {
    const struct users *other;
    int *count;              /* entries of the walked table missing from other */
    int *changed;            /* NULL: not counted */
};

static int reload_compare(struct hnode *h, void *arg)
{
    struct reload_ctx *c = arg;
    const struct users_entry *e = &container_of(h, struct user_node, node)->pub;
    const struct user_node *o = node_find(c->other, str_from_cstr(e->name));
    if (!o) (*c->count)++;
    else if (c->changed && (strcmp(e->realm, o->pub.realm) || strcmp(e->ha1_md5, o->pub.ha1_md5) ||
                            strcmp(e->ha1_sha256, o->pub.ha1_sha256)))
        (*c->changed)++;
    return 0;
}

int users_reload(struct users *u, struct store *st, struct users_reload_result *out)
{
    struct users *fresh = users_new(NULL);
    if (!fresh) return -ENOMEM;
    fresh->table.min_buckets = USERS_INITIAL_BUCKETS;
    int rc = users_load(fresh, st);
    if (rc < 0) {
        users_free(fresh);
        return rc;
    }
    struct users_reload_result r = {.loaded = rc};
    htable_foreach(&fresh->table, reload_compare, &(struct reload_ctx){u, &r.added, &r.changed});
    htable_foreach(&u->table, reload_compare, &(struct reload_ctx){fresh, &r.removed, NULL});
    struct htable old = u->table;
    u->table = fresh->table;
    fresh->table = old;
    users_free(fresh); /* the entries that were in use */
    if (out) *out = r;
    return 0;
}
