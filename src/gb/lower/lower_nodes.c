/* lower_nodes.c — the directory a middle node reports across cascade nodes
 * (issue 16, docs/architecture.md "A middle node's relay across nodes").
 *
 * With [redis] mirror_gb_devices and cluster_route the platform is several
 * nodes sharing one GB id; the upstream's Catalog query reaches one of them
 * (M, the node holding the upstream's registration), while the devices are
 * registered on any. The devices' channels are not in Redis (only
 * channel -> device keys), so M asks each other live node's API for the
 * relayed part of its directory, GET /api/v1/gb/channels?relayed=1 (and
 * &device=<id> for a query naming one device), one request per node, with
 * its own [api] token and X-Cascade-Forwarded (gb_upper_node_get); a node
 * answers it from its own devices (the route never asks further). The
 * catalog job (lower_query.c) holds M's own items meanwhile; each node's
 * answer is read (gb_lower_dir_parse, capped; a bad one leaves that node
 * out, logged) and appended; when every node answered or failed — at most
 * GB_DIR_TIMEOUT_MS, the requests' deadline — the items are deduplicated by
 * id and the job sends them (SumNum the merged count, split as usual). */
#include "gb/lower/lower_dir.h"
#include "gb/lower/lower_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "gb/upper/upper.h"

/* ---- the JSON a node answers, and its reader ---- */

static int set_str(json_t *o, const char *key, const char *v)
{
    return v ? json_object_set_new(o, key, json_string(v)) : 0;
}

json_t *gb_lower_dir_json(const gb_catalog_item_t *items, size_t n)
{
    json_t *arr = json_array();
    if (!arr) return NULL;
    for (size_t i = 0; i < n; i++) {
        const gb_catalog_item_t *it = &items[i];
        json_t *o = json_object();
        if (!o || set_str(o, "id", it->device_id) || set_str(o, "name", it->name) ||
            set_str(o, "manufacturer", it->manufacturer) || set_str(o, "model", it->model) ||
            set_str(o, "owner", it->owner) || set_str(o, "civil_code", it->civil_code) ||
            set_str(o, "address", it->address) || set_str(o, "parent_id", it->parent_id) ||
            set_str(o, "business_group_id", it->business_group_id) ||
            json_object_set_new(o, "parental", json_integer(it->parental == 1)) ||
            json_object_set_new(o, "status", json_string(it->status == GB_ONOFF_OFF ? "OFF" : "ON")) ||
            json_array_append_new(arr, o)) {
            json_decref(o);
            json_decref(arr);
            return NULL;
        }
    }
    return json_pack("{s:o}", "channels", arr);
}

/* A string field: absent (NULL, 0) or a string under the cap without
 * control bytes; -1 otherwise. */
static int field(const json_t *o, const char *key, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return -1;
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len > GB_DIR_FIELD_MAX || strlen(s) != len) return -1; /* no NUL inside */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return -1;
    *out = s;
    return 0;
}

static bool id_ok(const char *s)
{
    if (!s || strlen(s) != GB_ID_LEN) return false;
    for (size_t i = 0; i < GB_ID_LEN; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

static int entry_item(const json_t *o, gb_catalog_item_t *it)
{
    if (!json_is_object(o)) return -1;
    gb_catalog_item_init(it);
    const char *status, *id;
    if (field(o, "id", &id) || !id_ok(id) || field(o, "name", (const char **)&it->name) ||
        field(o, "manufacturer", (const char **)&it->manufacturer) || field(o, "model", (const char **)&it->model) ||
        field(o, "owner", (const char **)&it->owner) || field(o, "civil_code", (const char **)&it->civil_code) ||
        field(o, "address", (const char **)&it->address) || field(o, "parent_id", (const char **)&it->parent_id) ||
        field(o, "business_group_id", (const char **)&it->business_group_id) || field(o, "status", &status))
        return -1;
    it->device_id = (char *)id;
    json_t *p = json_object_get(o, "parental");
    if (p && !(json_is_integer(p) && (json_integer_value(p) == 0 || json_integer_value(p) == 1))) return -1;
    it->parental = p ? (int)json_integer_value(p) : 0;
    if (status && strcmp(status, "ON") && strcmp(status, "OFF")) return -1;
    it->status = status && !strcmp(status, "OFF") ? GB_ONOFF_OFF : GB_ONOFF_ON;
    it->safety_way = 0;
    it->register_way = 1;
    it->secrecy = 0;
    return 0;
}

int gb_lower_dir_parse(const char *body, size_t len, size_t max_items, gb_catalog_item_t **items, size_t *n,
                       size_t *cap)
{
    if (!body) return -EINVAL;
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *arr = json_object_get(root, "channels");
    if (!json_is_object(root) || !json_is_array(arr)) {
        json_decref(root);
        return -EINVAL;
    }
    size_t count = json_array_size(arr);
    if (count > max_items) {
        json_decref(root);
        return -E2BIG;
    }
    size_t before = *n;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        gb_catalog_item_t it;
        if (entry_item(json_array_get(arr, i), &it) != 0) rc = -EINVAL;
        else rc = gb_lower_items_push(items, n, cap, &it);
    }
    json_decref(root);
    if (rc != 0) {
        gb_lower_items_free_tail(*items, before, *n);
        *n = before;
        return rc;
    }
    return (int)(*n - before);
}

struct dedupe_key {
    const char *id;
    size_t i;
};

static int key_cmp(const void *a, const void *b)
{
    const struct dedupe_key *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

size_t gb_lower_items_dedupe(gb_catalog_item_t *items, size_t n)
{
    if (n < 2) return n;
    struct dedupe_key *k = malloc(n * sizeof(*k));
    bool *drop = calloc(n, sizeof(*drop));
    if (!k || !drop) {
        free(k);
        free(drop);
        return n;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].device_id) k[m++] = (struct dedupe_key){.id = items[i].device_id, .i = i};
    qsort(k, m, sizeof(*k), key_cmp);
    for (size_t i = 1; i < m; i++)
        if (!strcmp(k[i].id, k[i - 1].id)) drop[k[i].i] = true;
    free(k);
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (drop[i]) {
            gb_lower_items_free_tail(items, i, i + 1);
            continue;
        }
        if (out != i) items[out] = items[i];
        out++;
    }
    free(drop);
    return out;
}

/* ---- the fan-out ---- */

struct dir_node {
    struct gb_dir_fan *f;
    struct gb_node_get *h;           /* NULL: answered */
    char node[128];
};

struct gb_dir_fan {
    struct gb_dir_fan *next;         /* l->dir_fans */
    struct gb_lower *l;
    struct gb_lower_job *j;          /* its items so far: ours, then the nodes' */
    size_t cap;                      /* of j->items */
    const char *only;                /* a query naming one device: j->device_id */
    size_t count, pending, left_out;
    struct dir_node nodes[GB_DIR_MAX_NODES];
};

static void fan_unlink(struct gb_dir_fan *f)
{
    for (struct gb_dir_fan **pp = &f->l->dir_fans; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            f->l->dir_fan_count--;
            break;
        }
}

static void fan_finish(struct gb_dir_fan *f)
{
    struct gb_lower *l = f->l;
    struct gb_lower_job *j = f->j;
    fan_unlink(f);
    size_t before = j->total;
    j->total = gb_lower_items_dedupe(j->items, j->total);
    log_info("gb lower: Catalog SN %u from upstream %s: %zu item(s) with %zu node(s) asked (%zu left out, %zu "
             "duplicate(s) dropped), %zu per MESSAGE",
             j->sn, j->up->cfg.id, j->total, f->count, f->left_out, before - j->total, j->per_msg);
    free(f);
    gb_lower_job_run(l, j);
}

static void on_node_dir(void *arg, int rc, int status, const char *body, size_t len, const char *why)
{
    struct dir_node *dn = arg;
    struct gb_dir_fan *f = dn->f;
    struct gb_lower_job *j = f->j;
    dn->h = NULL;
    f->pending--;
    if (rc != 0) {
        f->left_out++;
        log_warn_rl("gb lower: Catalog SN %u for upstream %s: node %s left out (%s)", j->sn, j->up->cfg.id, dn->node,
                    rc == -ETIMEDOUT ? "no answer in time" : why ? why : strerror(-rc));
    } else if (status != 200) {
        f->left_out++;
        log_warn_rl("gb lower: Catalog SN %u for upstream %s: node %s left out (it answered %d)", j->sn,
                    j->up->cfg.id, dn->node, status);
    } else {
        size_t room = j->total < GB_DIR_MAX_ITEMS ? GB_DIR_MAX_ITEMS - j->total : 0;
        int got = gb_lower_dir_parse(body, len, room, &j->items, &j->total, &f->cap);
        if (got < 0) {
            f->left_out++;
            log_warn_rl("gb lower: Catalog SN %u for upstream %s: node %s left out (its directory %s)", j->sn,
                        j->up->cfg.id, dn->node,
                        got == -E2BIG    ? "is over the cap"
                        : got == -ENOMEM ? "found no memory"
                                         : "does not read");
        } else {
            log_debug("gb lower: Catalog SN %u: node %s gave %d item(s)", j->sn, dn->node, got);
        }
    }
    if (f->pending == 0) fan_finish(f);
}

struct collect {
    struct gb_dir_fan *f;
};

static void collect_node(void *arg, const char *node)
{
    struct gb_dir_fan *f = ((struct collect *)arg)->f;
    if (f->count == GB_DIR_MAX_NODES) return;
    struct dir_node *dn = &f->nodes[f->count++];
    dn->f = f;
    snprintf(dn->node, sizeof(dn->node), "%s", node);
}

int gb_lower_dir_fanout(struct gb_lower *l, struct gb_lower_job *j, size_t cap, const char *only_device)
{
    if (!gb_relay_across_nodes(l)) return -ENOENT;
    if (l->dir_fan_count >= GB_DIR_MAX_FANS) return -EBUSY;
    struct gb_dir_fan *f = calloc(1, sizeof(*f));
    if (!f) return -ENOMEM;
    f->l = l;
    f->j = j;
    f->cap = cap;
    f->only = only_device;
    gb_upper_live_nodes(l->upper, collect_node, &(struct collect){.f = f});
    if (f->count == 0) {
        free(f);
        return -ENOENT;
    }
    char target[160];
    if (only_device) snprintf(target, sizeof(target), "/api/v1/gb/channels?relayed=1&device=%s", only_device);
    else snprintf(target, sizeof(target), "/api/v1/gb/channels?relayed=1");
    f->next = l->dir_fans;
    l->dir_fans = f;
    l->dir_fan_count++;
    f->pending = f->count; /* every answer comes later, even a failure to start */
    for (size_t i = 0; i < f->count; i++) {
        struct dir_node *dn = &f->nodes[i];
        int rc = gb_upper_node_get(l->upper, dn->node, target, GB_DIR_TIMEOUT_MS, GB_DIR_MAX_ANSWER, on_node_dir, dn,
                                   &dn->h);
        if (rc != 0) {
            f->pending--;
            f->left_out++;
            log_warn_rl("gb lower: Catalog SN %u for upstream %s: node %s not asked (%s)", j->sn, j->up->cfg.id,
                        dn->node, strerror(-rc));
        }
    }
    log_info("gb lower: Catalog SN %u from upstream %s%s%s: %zu item(s) here, asking %zu other node(s)", j->sn,
             j->up->cfg.id, only_device ? " for device " : "", only_device ? only_device : "", j->total, f->pending);
    if (f->pending == 0) fan_finish(f);
    return 0;
}

void gb_lower_dir_drop(struct gb_lower *l, struct gb_upstream *up)
{
    struct gb_dir_fan **pp = &l->dir_fans;
    while (*pp) {
        struct gb_dir_fan *f = *pp;
        if (up && f->j->up != up) {
            pp = &f->next;
            continue;
        }
        *pp = f->next;
        l->dir_fan_count--;
        for (size_t i = 0; i < f->count; i++) gb_upper_node_get_cancel(f->nodes[i].h);
        gb_lower_job_free(f->j);
        free(f);
    }
}

json_t *gb_lower_relayed_json(struct gb_lower *l, const char *only_device)
{
    gb_catalog_item_t *items = NULL;
    size_t n = 0, cap = 0;
    json_t *o = NULL;
    if (gb_relay_catalog(l, only_device, &items, &n, &cap) == 0) o = gb_lower_dir_json(items, n);
    gb_lower_items_free(items, n);
    return o;
}
