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
#include "events/events.h"
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
    char node[GB_DIR_NODE_MAX];
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

/* ---- other nodes' device changes -> catalog Notifies upward ----
 *
 * The cluster's event view ([redis] events_stream) carries every node's
 * gb.device.online / gb.device.offline / gb.catalog.updated, with the node
 * that published it. A change of a device that is not registered here is
 * gathered (one entry per device per batch, as lower_relay.c does for the
 * devices here); every RNOTE_BATCH_MS the nodes named are each asked once
 * for their relayed directory (the request a Catalog answer makes), and
 * each device's items are taken from its node's answer and notified as a
 * device here would be: offline, the device item OFF and its channels
 * (status OFF) as UPDATE; its catalog updated, the device and channels as
 * UPDATE; back online only, the device item as UPDATE. A device its node
 * no longer lists (or a node that does not answer): an offline change
 * still goes up as the device item OFF; an online one is left out, logged.
 * One batch at a time; changes wait meanwhile (merged). */

#define RNOTE_BATCH_MS 500
#define RNOTE_MAX 65536                      /* pending changes kept at most */

struct gb_remote_note {
    char device_id[GB_ID_LEN + 1];
    char node[GB_DIR_NODE_MAX];
    uint8_t event;                           /* GB_EVENT_ON / OFF / UPDATE */
    size_t order;                            /* arrival: the latest names the node */
};

struct rnote_node {
    struct gb_rnote_batch *b;
    struct gb_node_get *h;
    char node[GB_DIR_NODE_MAX];
    gb_catalog_item_t *items;                /* its answer (NULL: none) */
    size_t n, cap;
};

struct gb_rnote_batch {
    struct gb_lower *l;
    struct gb_remote_note *notes;            /* sorted by device, then arrival */
    size_t count, pending, nnodes;
    struct rnote_node nodes[GB_DIR_MAX_NODES];
};

static void rbatch_free(struct gb_rnote_batch *b)
{
    for (size_t i = 0; i < b->nnodes; i++) {
        gb_upper_node_get_cancel(b->nodes[i].h);
        gb_lower_items_free(b->nodes[i].items, b->nodes[i].n);
    }
    free(b->notes);
    free(b);
}

static int rnote_cmp(const void *a, const void *b)
{
    const struct gb_remote_note *x = a, *y = b;
    int c = strcmp(x->device_id, y->device_id);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static int id_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct gb_remote_note *)elem)->device_id);
}

/* The group of notes of device id in the sorted notes: its last (latest) one. */
static const struct gb_remote_note *rnote_latest(const struct gb_rnote_batch *b, const char *id, bool *updated)
{
    const struct gb_remote_note *hit = bsearch(id, b->notes, b->count, sizeof(*b->notes), id_cmp);
    if (!hit) return NULL;
    size_t i = (size_t)(hit - b->notes);
    while (i > 0 && !strcmp(b->notes[i - 1].device_id, id)) i--;
    *updated = false;
    for (; i + 1 < b->count && !strcmp(b->notes[i + 1].device_id, id); i++) *updated |= b->notes[i].event == GB_EVENT_UPDATE;
    *updated |= b->notes[i].event == GB_EVENT_UPDATE;
    return &b->notes[i];
}

static void rbatch_finish(struct gb_rnote_batch *b)
{
    struct gb_lower *l = b->l;
    l->rbatch = NULL;
    gb_catalog_item_t *items = NULL;
    size_t count = 0, cap = 0, devices = 0;
    int rc = 0;
    /* Which devices were found (in the node their latest note names). */
    bool *found = calloc(b->count ? b->count : 1, sizeof(*found));
    if (!found) rc = -ENOMEM;
    for (size_t k = 0; k < b->nnodes && rc == 0; k++) {
        struct rnote_node *rn = &b->nodes[k];
        for (size_t i = 0; i < rn->n && rc == 0; i++) {
            gb_catalog_item_t *dev = &rn->items[i];
            if (dev->parental != 1 || !dev->device_id) continue;
            bool updated;
            const struct gb_remote_note *note = rnote_latest(b, dev->device_id, &updated);
            if (!note || strcmp(note->node, rn->node) || found[note - b->notes]) continue;
            found[note - b->notes] = true;
            devices++;
            bool online = dev->status != GB_ONOFF_OFF;
            size_t first = count;
            rc = gb_lower_items_push(&items, &count, &cap, dev);
            if (rc == 0) items[first].event = online ? GB_EVENT_UPDATE : GB_EVENT_OFF;
            for (size_t c = i + 1; rc == 0 && c < rn->n && rn->items[c].parental != 1; c++) {
                if (online && !updated) continue;
                rc = gb_lower_items_push(&items, &count, &cap, &rn->items[c]);
                if (rc == 0) items[count - 1].event = GB_EVENT_UPDATE;
            }
        }
    }
    /* Not listed by its node: an offline change still goes up. */
    for (size_t i = 0; i < b->count && rc == 0; i++) {
        if (i + 1 < b->count && !strcmp(b->notes[i + 1].device_id, b->notes[i].device_id)) continue; /* not the latest */
        if (found[i]) continue;
        if (b->notes[i].event != GB_EVENT_OFF) {
            log_info("gb lower: %s changed on node %s, which did not list it: no catalog Notify", b->notes[i].device_id,
                     b->notes[i].node);
            continue;
        }
        gb_catalog_item_t it;
        gb_catalog_item_init(&it);
        it.device_id = b->notes[i].device_id;
        it.name = b->notes[i].device_id;
        it.parent_id = l->id;
        it.parental = 1;
        it.register_way = 1;
        it.safety_way = 0;
        it.secrecy = 0;
        it.status = GB_ONOFF_OFF;
        it.event = GB_EVENT_OFF;
        rc = gb_lower_items_push(&items, &count, &cap, &it);
        devices++;
    }
    free(found);
    if (rc != 0) log_error("gb lower: no memory for a catalog Notify batch of other nodes' devices");
    else {
        log_info("gb lower: catalog Notify of %zu device(s) on other nodes (%zu item(s))", devices, count);
        gb_lower_notify_items(l, items, count);
    }
    gb_lower_items_free(items, count);
    rbatch_free(b);
}

static void on_rnode_dir(void *arg, int rc, int status, const char *body, size_t len, const char *why)
{
    struct rnote_node *rn = arg;
    struct gb_rnote_batch *b = rn->b;
    rn->h = NULL;
    b->pending--;
    int got = rc == 0 && status == 200 ? gb_lower_dir_parse(body, len, GB_DIR_MAX_ITEMS, &rn->items, &rn->n, &rn->cap)
                                       : -EIO;
    if (got < 0)
        log_warn_rl("gb lower: node %s's directory for a catalog Notify not had (%s)", rn->node,
                    rc ? (why ? why : strerror(-rc)) : status != 200 ? "not 200" : "does not read");
    if (b->pending == 0) rbatch_finish(b);
}

static void rnote_timer_cb(struct timer_node *t, uint64_t now)
{
    struct gb_lower *l = container_of(t, struct gb_lower, rnote_timer);
    if (!l->rnote_count) return;
    if (l->rbatch || gb_lower_notify_busy(l)) {
        gb_lower_arm(l, &l->rnote_timer, now + RNOTE_BATCH_MS, rnote_timer_cb);
        return;
    }
    struct gb_rnote_batch *b = calloc(1, sizeof(*b));
    if (!b) {
        gb_lower_arm(l, &l->rnote_timer, now + RNOTE_BATCH_MS, rnote_timer_cb);
        return;
    }
    b->l = l;
    b->notes = l->rnotes;
    b->count = l->rnote_count;
    l->rnotes = NULL;
    l->rnote_count = l->rnote_cap = 0;
    l->rnotes_dropped = false;
    qsort(b->notes, b->count, sizeof(*b->notes), rnote_cmp);
    /* The nodes the latest notes name, each asked once. */
    for (size_t i = 0; i < b->count; i++) {
        if (i + 1 < b->count && !strcmp(b->notes[i + 1].device_id, b->notes[i].device_id)) continue;
        size_t k = 0;
        while (k < b->nnodes && strcmp(b->nodes[k].node, b->notes[i].node)) k++;
        if (k < b->nnodes || b->nnodes == GB_DIR_MAX_NODES) continue;
        struct rnote_node *rn = &b->nodes[b->nnodes++];
        rn->b = b;
        snprintf(rn->node, sizeof(rn->node), "%s", b->notes[i].node);
    }
    l->rbatch = b;
    b->pending = b->nnodes;
    for (size_t k = 0; k < b->nnodes; k++) {
        struct rnote_node *rn = &b->nodes[k];
        int rc = gb_upper_node_get(l->upper, rn->node, "/api/v1/gb/channels?relayed=1", GB_DIR_TIMEOUT_MS,
                                   GB_DIR_MAX_ANSWER, on_rnode_dir, rn, &rn->h);
        if (rc != 0) {
            b->pending--;
            log_warn_rl("gb lower: node %s not asked for a catalog Notify (%s)", rn->node, strerror(-rc));
        }
    }
    if (b->pending == 0) rbatch_finish(b);
}

static void rnote_add(struct gb_lower *l, const char *device_id, const char *node, gb_catalog_event_t ev)
{
    if (l->rnote_count == l->rnote_cap) {
        size_t nc = l->rnote_cap ? l->rnote_cap * 2 : 16;
        struct gb_remote_note *nn = nc <= RNOTE_MAX ? realloc(l->rnotes, nc * sizeof(*nn)) : NULL;
        if (!nn) {
            if (!l->rnotes_dropped)
                log_warn("gb lower: %zu changes of other nodes' devices pending, more are dropped", l->rnote_count);
            l->rnotes_dropped = true;
            return;
        }
        l->rnotes = nn;
        l->rnote_cap = nc;
    }
    struct gb_remote_note *n = &l->rnotes[l->rnote_count];
    snprintf(n->device_id, sizeof(n->device_id), "%s", device_id);
    snprintf(n->node, sizeof(n->node), "%s", node);
    n->event = (uint8_t)ev;
    n->order = l->rnote_count++;
    if (!timer_armed(&l->rnote_timer))
        gb_lower_arm(l, &l->rnote_timer, gb_lower_now(l) + RNOTE_BATCH_MS, rnote_timer_cb);
}

/* ---- other nodes' alarms and positions -> NOTIFYs upward ----
 *
 * A device's alarm or position is published as gb.alarm / gb.position by
 * the node the device reported it to (alarms.c); the view carries it with
 * that node. Another node's, once the view caught up, goes to the upstreams
 * as one of ours does (gb_lower_relay_node_report: the same subscriptions
 * and Notify body, the NOTIFYs in flight capped per upstream). */

static const char *view_node(const json_t *ev)
{
    const char *node = json_string_value(json_object_get(ev, "node"));
    return node && *node && strlen(node) < GB_DIR_NODE_MAX ? node : NULL;
}

int gb_lower_view_report_kind(const json_t *ev, const char *self, bool ready)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *node = view_node(ev);
    if (!ready || !type || !node || !self || !strcmp(node, self)) return -1;
    if (!strcmp(type, "gb.alarm")) return GB_UP_SUB_ALARM;
    if (!strcmp(type, "gb.position")) return GB_UP_SUB_POSITION;
    return -1;
}

static void on_view_event(uint64_t seq, const char *json, size_t len, void *arg)
{
    (void)seq;
    struct gb_lower *l = arg;
    /* Not while the view catches up at start: those changes are old (the
     * upstream asks for the catalog when it registers us), and so are
     * those alarms and positions. */
    if (!l->upper || l->stopping || !event_bus_ready(l->view)) return;
    if (!memmem(json, len, "\"gb.alarm\"", 10) && !memmem(json, len, "\"gb.position\"", 13) &&
        !memmem(json, len, "\"gb.device.o", 12) && !memmem(json, len, "\"gb.catalog.updated\"", 20) &&
        !memmem(json, len, "\"gb.lower.subscribed\"", 21))
        return;
    json_t *ev = json_loadb(json, len, 0, NULL);
    if (!ev) return;
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *self = gb_upper_node_id(l->upper);
    if (type && !strcmp(type, "gb.lower.subscribed")) {
        gb_lower_view_subscribed(l, ev, self);
        json_decref(ev);
        return;
    }
    if (gb_lower_view_report_kind(ev, self, true) >= 0) {
        gb_lower_relay_node_report(l, type, ev);
        json_decref(ev);
        return;
    }
    const char *id = json_string_value(json_object_get(ev, "device_id"));
    const char *node = view_node(ev);
    gb_catalog_event_t what = !type                                  ? GB_EVENT_NONE
                              : !strcmp(type, "gb.device.online")    ? GB_EVENT_ON
                              : !strcmp(type, "gb.device.offline")   ? GB_EVENT_OFF
                              : !strcmp(type, "gb.catalog.updated") ? GB_EVENT_UPDATE
                                                                     : GB_EVENT_NONE;
    /* Another node's, about a device not registered here (ours go up from
     * our own bus, lower_relay.c). */
    if (what != GB_EVENT_NONE && id && id_ok(id) && node && self && strcmp(node, self) && !gb_device_find(l->upper, id))
        rnote_add(l, id, node, what);
    /* A survivor reaped the device's node: our streams played through that
     * node end now, not on their RTP timeout (play_nodes.c). */
    const char *reason = json_string_value(json_object_get(ev, "reason"));
    if (what == GB_EVENT_OFF && id && id_ok(id) && reason && !strcmp(reason, "node-lost"))
        gb_upper_node_lost_seen(l->upper, id);
    json_decref(ev);
}

void gb_lower_set_cluster_events(struct gb_lower *l, struct event_bus *view)
{
    gb_lower_remote_unwatch(l);
    if (!view) return;
    if (event_subscribe(view, on_view_event, l) != 0) {
        log_warn("gb lower: cannot follow the cluster's events: other nodes' devices are not notified upward");
        return;
    }
    l->view = view;
}

void gb_lower_remote_unwatch(struct gb_lower *l)
{
    if (l->view) event_unsubscribe(l->view, on_view_event, l);
    l->view = NULL;
    timer_stop(l->timers, &l->rnote_timer);
    free(l->rnotes);
    l->rnotes = NULL;
    l->rnote_count = l->rnote_cap = 0;
    if (l->rbatch) rbatch_free(l->rbatch);
    l->rbatch = NULL;
}
