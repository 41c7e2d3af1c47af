/* catalog.c — queries the upper platform sends and the answers it assembles:
 * Catalog (a directory split over many Response MESSAGEs, put together by
 * device and SN until SumNum items came or a timeout), DeviceInfo,
 * DeviceStatus, RecordInfo (assembled like Catalog), catalog Notify
 * (ON/OFF/VLOST/DEFECT/ADD/DEL/UPDATE), DeviceControl PTZ; and the channel
 * tree (ParentID, then BusinessGroupID) as JSON.
 *
 * GB/T 28181-2016 §9.5 (queries), §A.2.4-A.2.6 (bodies). A query is one
 * MESSAGE (its 200 only says "received"); the data comes back as separate
 * MESSAGEs from the device that upper.c answers 200 and passes here. */
#include "gb/upper/upper_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "gb/codec/ptz.h"
#include "store/store.h"

#define MANSCDP_CT "Application/MANSCDP+xml"

static const char *const kind_names[] = {"catalog", "info", "status", "records"};
static const gb_cmd_t kind_cmds[] = {GB_CMD_CATALOG, GB_CMD_DEVICE_INFO, GB_CMD_DEVICE_STATUS, GB_CMD_RECORD_INFO};

/* ---- channels ---- */

int gb_channel_init(struct gb_upper *g, struct gb_channel *c, const struct gb_channel_src *src)
{
    memset(c, 0, sizeof(*c));
    if (!src->id) return -1;
    /* The fields unique to a channel in one block (id first: it owns it). */
    const char *own[3] = {src->id, src->name, src->parent_id};
    size_t len[3], total = 0;
    for (int i = 0; i < 3; i++) total += len[i] = own[i] ? strlen(own[i]) + 1 : 0;
    char *b = malloc(total);
    if (!b) return -1;
    char **dst[3] = {&c->id, &c->name, &c->parent_id};
    for (int i = 0; i < 3; i++) {
        if (!own[i]) continue;
        memcpy(b, own[i], len[i]);
        *dst[i] = b;
        b += len[i];
    }
    /* The fields devices repeat, shared. */
    const char *shared[6] = {src->manufacturer, src->model, src->civil_code,
                             src->address, src->business_group_id, src->extra_json};
    char **sdst[6] = {&c->manufacturer, &c->model, &c->civil_code, &c->address, &c->business_group_id, &c->extra_json};
    for (int i = 0; i < 6; i++) {
        if (shared[i] && !(*sdst[i] = gb_str_intern(g->strings, shared[i]))) {
            gb_channel_free(c);
            return -1;
        }
    }
    snprintf(c->status, sizeof(c->status), "%s", src->status ? src->status : "");
    return 0;
}

void gb_channel_free(struct gb_channel *c)
{
    free(c->id); /* the block of id, name and parent_id */
    gb_str_release(c->manufacturer);
    gb_str_release(c->model);
    gb_str_release(c->civil_code);
    gb_str_release(c->address);
    gb_str_release(c->business_group_id);
    gb_str_release(c->extra_json);
    memset(c, 0, sizeof(*c));
}

void gb_channels_free(struct gb_channel *cs, size_t n)
{
    for (size_t i = 0; i < n; i++) gb_channel_free(&cs[i]);
    free(cs);
}

static const char *onoff(gb_onoff_t s) { return s == GB_ONOFF_ON ? "ON" : s == GB_ONOFF_OFF ? "OFF" : ""; }

/* ParentID and the like: empty, a GB id, a civil code (up to 8 digits, the
 * directory of some devices), or a "/"-separated path of those. */
static bool id_path_valid(const char *v)
{
    if (!v || !*v) return true;
    size_t run = 0;
    for (const char *p = v;; p++) {
        if (*p >= '0' && *p <= '9') {
            if (++run > GB_ID_LEN) return false;
        } else if (*p == '/' || *p == '\0') {
            if (!run) return false;
            if (!*p) return true;
            run = 0;
        } else {
            return false;
        }
    }
}

/* GB/T 28181 §A.2.5 items name channels by 20-digit id: an item whose
 * DeviceID is anything else (a path, markup) never becomes a channel (ids
 * end up in the store, file names and web pages), nor one whose ParentID or
 * BusinessGroupID is not made of ids. Dropped items are counted and logged. */
static bool item_ids_valid(struct gb_upper *g, const struct gb_device *d, const gb_catalog_item_t *it)
{
    const char *bad = NULL, *v = NULL;
    if (!it->device_id || !gb_id_valid(str_from_cstr(it->device_id))) bad = "DeviceID", v = it->device_id;
    else if (!id_path_valid(it->parent_id)) bad = "ParentID", v = it->parent_id;
    else if (!id_path_valid(it->business_group_id)) bad = "BusinessGroupID", v = it->business_group_id;
    if (!bad) return true;
    g->stats.catalog_items_dropped++;
    char shown[48];
    gb_log_text(v, shown, sizeof(shown));
    char at[TRANSPORT_ADDR_TEXT];
    at[0] = '\0';
    if (d->addr.sa.sa_family) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        memcpy(&ss, &d->addr, sizeof(d->addr));
        transport_addr_text(&ss, at, sizeof(at));
    }
    gb_log_refusal(g, "gb device %s at %s: catalog item with %s \"%s\" (not a GB id) dropped", d->id, at, bad, shown);
    return false;
}

/* A catalog item as a channel (strings copied or shared, UTF-8). -1 on no memory. */
static int channel_from_item(struct gb_upper *g, struct gb_channel *c, const gb_catalog_item_t *it)
{
    json_t *x = json_object();
    if (it->owner) json_object_set_new(x, "owner", json_string(it->owner));
    if (it->block) json_object_set_new(x, "block", json_string(it->block));
    if (it->ip_address) json_object_set_new(x, "ip_address", json_string(it->ip_address));
    if (it->business_group_id) json_object_set_new(x, "business_group_id", json_string(it->business_group_id));
    if (it->port >= 0) json_object_set_new(x, "port", json_integer(it->port));
    if (it->parental >= 0) json_object_set_new(x, "parental", json_integer(it->parental));
    if (it->safety_way >= 0) json_object_set_new(x, "safety_way", json_integer(it->safety_way));
    if (it->register_way >= 0) json_object_set_new(x, "register_way", json_integer(it->register_way));
    if (it->secrecy >= 0) json_object_set_new(x, "secrecy", json_integer(it->secrecy));
    if (it->has_position) {
        json_object_set_new(x, "longitude", json_real(it->longitude));
        json_object_set_new(x, "latitude", json_real(it->latitude));
    }
    char *extra = json_object_size(x) ? json_dumps(x, JSON_COMPACT) : NULL;
    json_decref(x);
    struct gb_channel_src src = {
        .id = it->device_id,
        .name = it->name,
        .parent_id = it->parent_id,
        .manufacturer = it->manufacturer,
        .model = it->model,
        .civil_code = it->civil_code,
        .address = it->address,
        .business_group_id = it->business_group_id,
        .extra_json = extra,
        .status = onoff(it->status),
    };
    int rc = gb_channel_init(g, c, &src);
    free(extra);
    return rc;
}

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

json_t *gb_channel_json(const struct gb_channel *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(c->id));
    json_object_set_new(o, "name", str_or_null(c->name));
    json_object_set_new(o, "parent_id", str_or_null(c->parent_id));
    json_object_set_new(o, "status", json_string(c->status));
    json_object_set_new(o, "manufacturer", str_or_null(c->manufacturer));
    json_object_set_new(o, "model", str_or_null(c->model));
    json_object_set_new(o, "civil_code", str_or_null(c->civil_code));
    json_object_set_new(o, "address", str_or_null(c->address));
    if (c->business_group_id) json_object_set_new(o, "business_group_id", json_string(c->business_group_id));
    return o;
}

static void store_channel(struct gb_upper *g, const char *device_id, const struct gb_channel *c, struct store_gb_channel *row)
{
    (void)g;
    memset(row, 0, sizeof(*row));
    row->device_id = device_id;
    row->id = c->id;
    row->parent_id = c->parent_id;
    row->name = c->name;
    row->status = c->status;
    row->manufacturer = c->manufacturer;
    row->model = c->model;
    row->civil_code = c->civil_code;
    row->address = c->address;
    row->extra_json = c->extra_json;
}

static void persist_channel(struct gb_upper *g, struct gb_device *d, const struct gb_channel *c)
{
    if (!g->store) return;
    struct store_gb_channel row;
    store_channel(g, d->id, c, &row);
    store_submit(g->store, store_op_gb_channel_upsert(&row), NULL, NULL);
}

static void persist_catalog(struct gb_upper *g, struct gb_device *d)
{
    if (!g->store) return;
    struct store_gb_channel *rows = calloc(d->channel_count ? d->channel_count : 1, sizeof(*rows));
    if (!rows) {
        log_error("gb device %s: no memory to store its catalog", d->id);
        return;
    }
    for (size_t i = 0; i < d->channel_count; i++) store_channel(g, d->id, &d->channels[i], &rows[i]);
    int rc = store_submit(g->store, store_op_gb_channels_replace(d->id, rows, d->channel_count), NULL, NULL);
    if (rc < 0) log_warn("gb device %s: catalog not stored (%s)", d->id, strerror(-rc));
    free(rows);
}

static struct gb_channel *device_channel(struct gb_device *d, const char *id)
{
    for (size_t i = 0; i < d->channel_count; i++)
        if (!strcmp(d->channels[i].id, id)) return &d->channels[i];
    return NULL;
}

/* ---- the tree ---- */

/* The last segment of a ParentID ("a/b/c" paths are sent by some platforms). */
static const char *parent_key(const char *p)
{
    if (!p || !*p) return NULL;
    const char *slash = strrchr(p, '/');
    return slash ? slash + 1 : p;
}

/* struct gb_chan_index (upper_int.h): channels of an array by id, on a
 * base/htable.h table whose nodes sit in an array of their own, node i for
 * channel i. The channel structs move when their array grows, and a channel
 * does not carry a node of its own (memory per channel); position i does not
 * move, so the index survives the array's reallocation. */
static uint32_t chan_id_hash(const char *id) { return str_hash(str_from_cstr(id)); }

/* Room for cap channels, and the first n of cs indexed again (a bigger node
 * array may have moved). 0, or -1 (no memory: the index is as it was, or
 * empty when its first bucket array could not be had). */
static int chan_index_reserve(struct gb_chan_index *ix, const struct gb_channel *cs, size_t n, size_t cap)
{
    if (cap > ix->cap) {
        struct hnode *nn = realloc(ix->nodes, cap * sizeof(*nn));
        if (!nn) return -1;
        ix->nodes = nn;
        ix->cap = cap;
    }
    htable_free(&ix->t);
    for (size_t i = 0; i < n; i++) {
        ix->nodes[i].linked = false;
        if (htable_insert(&ix->t, &ix->nodes[i], chan_id_hash(cs[i].id)) != 0) return -1;
    }
    return 0;
}

static void chan_index_free(struct gb_chan_index *ix)
{
    htable_free(&ix->t);
    free(ix->nodes);
    *ix = (struct gb_chan_index){0};
}

/* The position of the channel with this id in cs (the array indexed), or -1. */
static long chan_index_find(const struct gb_chan_index *ix, const struct gb_channel *cs, const char *id)
{
    if (!id) return -1;
    for (struct hnode *n = htable_first(&ix->t, chan_id_hash(id)); n; n = htable_next(n)) {
        long i = n - ix->nodes;
        if (!strcmp(cs[i].id, id)) return i;
    }
    return -1;
}

json_t *gb_channels_tree_json(const struct gb_device *d)
{
    size_t n = d->channel_count;
    const struct gb_channel *cs = d->channels;
    json_t *roots = json_array();
    if (!n) return json_pack("{s:s,s:o}", "device_id", d->id, "channels", roots);
    struct gb_chan_index ix = {0};
    long *parent = malloc(n * sizeof(*parent));
    long *first = malloc(n * sizeof(*first));
    long *sibling = malloc(n * sizeof(*sibling));
    long *queue = malloc(n * sizeof(*queue));
    json_t **obj = calloc(n, sizeof(*obj));
    char *seen = calloc(n, 1);
    if (!parent || !first || !sibling || !queue || !obj || !seen || chan_index_reserve(&ix, cs, n, n) != 0) {
        free(parent), free(first), free(sibling), free(queue), free(obj), free(seen);
        chan_index_free(&ix);
        json_decref(roots);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) first[i] = sibling[i] = -1;
    /* Children in reverse so that pushing to the front keeps catalog order. */
    for (size_t k = n; k-- > 0;) {
        long p = chan_index_find(&ix, cs, parent_key(cs[k].parent_id));
        if (p < 0 || (size_t)p == k) p = chan_index_find(&ix, cs, cs[k].business_group_id);
        if ((size_t)p == k) p = -1;
        parent[k] = p;
        if (p >= 0) {
            sibling[k] = first[p];
            first[p] = (long)k;
        }
    }
    for (size_t i = 0; i < n; i++) {
        obj[i] = gb_channel_json(&cs[i]);
        json_object_set_new(obj[i], "children", json_array());
    }
    /* Breadth first from the roots; what a cycle hides becomes a root. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t r = 0; r < n; r++) {
            if (seen[r] || (pass == 0 && parent[r] >= 0)) continue;
            size_t qh = 0, qt = 0;
            seen[r] = 1;
            json_array_append(roots, obj[r]);
            queue[qt++] = (long)r;
            while (qh < qt) {
                long u = queue[qh++];
                json_t *kids = json_object_get(obj[u], "children");
                for (long c = first[u]; c >= 0; c = sibling[c]) {
                    if (seen[c]) continue;
                    seen[c] = 1;
                    json_array_append(kids, obj[c]);
                    queue[qt++] = c;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++) json_decref(obj[i]);
    free(parent), free(first), free(sibling), free(queue), free(obj), free(seen);
    chan_index_free(&ix);
    return json_pack("{s:s,s:o}", "device_id", d->id, "channels", roots);
}

/* ---- queries ---- */

static void query_timer(struct timer_node *n, uint64_t now);

static void query_unlink(struct gb_query *q)
{
    struct gb_device *d = q->dev;
    for (struct gb_query **pp = &d->queries; *pp; pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    }
    if (q->g->pending_queries) q->g->pending_queries--;
    if (q->from_queue) gb_catq_done(q->g);
    q->from_queue = false;
}

static void query_free(struct gb_query *q)
{
    if (q->g->starting == q) {
        q->g->starting = NULL;
        q->g->starting_freed = true;
    }
    timer_stop(q->g->timers, &q->timer);
    if (q->h) ua_request_detach(q->h);
    gb_channels_free(q->items, q->count);
    chan_index_free(&q->index);
    json_decref(q->records);
    free(q);
}

static struct gb_query *query_find(struct gb_device *d, enum gb_query_kind kind, uint32_t sn, bool by_sn)
{
    for (struct gb_query *q = d->queries; q; q = q->next)
        if (q->kind == kind && (by_sn ? q->sn == sn : !q->pushed)) return q;
    return NULL;
}

static size_t query_count(const struct gb_device *d)
{
    size_t n = 0;
    for (const struct gb_query *q = d->queries; q; q = q->next) n++;
    return n;
}

static struct gb_query *query_new(struct gb_upper *g, struct gb_device *d, enum gb_query_kind kind, uint32_t sn)
{
    struct gb_query *q = calloc(1, sizeof(*q));
    if (!q) return NULL;
    q->g = g;
    q->dev = d;
    q->kind = kind;
    q->sn = sn;
    q->started_ms = gb_now(g);
    q->from_queue = g->catq.starting;
    if (q->from_queue) g->catq.in_flight++;
    timer_node_init(&q->timer);
    if (kind == GB_Q_RECORDS) q->records = json_array();
    q->next = d->queries;
    d->queries = q;
    g->pending_queries++;
    timer_start(g->timers, &q->timer, gb_now(g) + GB_QUERY_TIMEOUT_MS, query_timer);
    return q;
}

void gb_queries_fail(struct gb_upper *g, struct gb_device *d, int status, const char *code, const char *detail)
{
    (void)g;
    while (d->queries) {
        struct gb_query *q = d->queries;
        query_unlink(q);
        gb_waiters_done(&q->waiters, status, gb_error_json(code, "%s", detail));
        query_free(q);
    }
}

static void query_on_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                           const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)resp, (void)rx, (void)dlg;
    struct gb_query *q = arg;
    q->h = NULL;
    if (status < 300) return; /* received: the data follows in MESSAGEs */
    log_warn("gb %s query to %s: %d", kind_names[q->kind], q->dev->id, status);
    query_unlink(q);
    gb_waiters_done(&q->waiters, status == 408 ? 504 : 502,
                    gb_error_json(status == 408 ? "timeout" : "device-refused", "the device answered the %s query with %d",
                                  kind_names[q->kind], status));
    query_free(q);
}

static const struct ua_uac_cb query_cb = {.on_final = query_on_final};

int gb_query_start(struct gb_upper *g, struct gb_device *d, enum gb_query_kind kind, const char *target,
                   const char *start, const char *end, struct gb_waiter *wt)
{
    if (!d->online) return -ENOTCONN;
    if (query_count(d) >= GB_MAX_PENDING_PER_DEVICE) return -EBUSY;
    if (kind != GB_Q_RECORDS) {
        /* DeviceInfo / DeviceStatus ask about the device, or about one of
         * its channels (a lower platform's camera) when target names one. */
        if (!target || !*target) target = d->id;
        for (struct gb_query *q = d->queries; q; q = q->next)
            if (q->kind == kind && !q->pushed && !strcmp(q->target, target)) {
                /* the same question is on its way: wait for its answer */
                if (wt) gb_waiter_add(&q->waiters, wt);
                return 0;
            }
    }
    uint32_t sn = g->next_sn++;
    sbuf_t body;
    sbuf_init(&body);
    int rc;
    if (kind == GB_Q_RECORDS) {
        char type[] = "all";
        gb_record_query_t rq = {.start_time = (char *)start, .end_time = (char *)end, .type = type, .secrecy = 0};
        rc = gb_manscdp_build_record_query(&body, d->charset, sn, target, &rq);
    } else {
        rc = gb_manscdp_build_query(&body, d->charset, kind_cmds[kind], sn, kind == GB_Q_CATALOG ? d->id : target);
    }
    if (rc != 0 || body.failed) {
        sbuf_free(&body);
        return -EINVAL;
    }
    struct gb_query *q = query_new(g, d, kind, sn);
    if (!q) {
        sbuf_free(&body);
        return -ENOMEM;
    }
    if (target) snprintf(q->target, sizeof(q->target), "%s", target);
    struct ua_request r;
    char buf[512];
    gb_device_request(g, d, d->id, &r, buf, sizeof(buf));
    r.method = SIP_MESSAGE;
    r.content_type = STR_LIT(MANSCDP_CT);
    r.body = sbuf_str(&body);
    struct transport_dest dest;
    gb_device_dest(d, &dest);
    struct ua_credentials cred = {.user = str_from_cstr(g->cfg.id),
                                  .password = str_from_cstr(d->password ? d->password : g->cfg.password)};
    g->starting = q;
    g->starting_freed = false;
    struct ua_uac *h = ua_request_send(g->ua, &r, &dest, &cred, &query_cb, q);
    sbuf_free(&body);
    if (g->starting_freed) {
        /* q is gone (the send took the device offline): nothing may call
         * back into it */
        g->starting_freed = false;
        if (h) ua_request_detach(h);
        return -EIO;
    }
    g->starting = NULL;
    q->h = h;
    if (!q->h) {
        query_unlink(q);
        query_free(q);
        return -EIO;
    }
    if (wt) gb_waiter_add(&q->waiters, wt);
    log_debug("gb %s query SN %u sent to %s", kind_names[kind], sn, d->id);
    return 0;
}

/* Adds a channel to the assembly unless its id is there already (a device
 * that repeats items must not inflate the count). */
static int assembly_add(struct gb_query *q, const gb_catalog_item_t *it)
{
    if (!it->device_id || !*it->device_id || q->count >= GB_MAX_CHANNELS) return 0;
    if (!item_ids_valid(q->g, q->dev, it)) {
        q->dropped++;
        return 0;
    }
    long at = chan_index_find(&q->index, q->items, it->device_id);
    if (at >= 0) { /* a repeat: the newer item wins */
        struct gb_channel nc;
        if (channel_from_item(q->g, &nc, it) != 0) return -1;
        gb_channel_free(&q->items[at]);
        q->items[at] = nc;
        return 0;
    }
    if (q->count == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 32;
        struct gb_channel *ni = realloc(q->items, ncap * sizeof(*ni));
        if (!ni) return -1;
        q->items = ni;
        q->cap = ncap;
    }
    if (q->index.cap < q->cap && chan_index_reserve(&q->index, q->items, q->count, q->cap) != 0) return -1;
    if (channel_from_item(q->g, &q->items[q->count], it) != 0) return -1;
    struct hnode *n = &q->index.nodes[q->count];
    n->linked = false;
    if (htable_insert(&q->index.t, n, chan_id_hash(q->items[q->count].id)) != 0) {
        gb_channel_free(&q->items[q->count]);
        return -1;
    }
    q->count++;
    return 0;
}

static json_t *catalog_json(const struct gb_device *d, uint32_t sum_num)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < d->channel_count; i++) json_array_append_new(arr, gb_channel_json(&d->channels[i]));
    return json_pack("{s:s,s:I,s:o}", "device_id", d->id, "sum_num", (json_int_t)sum_num, "channels", arr);
}

/* Catalog complete: it replaces the device's channels. */
static void catalog_complete(struct gb_upper *g, struct gb_query *q)
{
    struct gb_device *d = q->dev;
    gb_channels_free(d->channels, d->channel_count);
    /* The assembly grew by doubling from 32 slots; the device keeps exactly
     * its channels (a camera with one channel held 2.5 KiB of empty slots). */
    if (q->count < q->cap) {
        struct gb_channel *fit = q->count ? realloc(q->items, q->count * sizeof(*fit)) : NULL;
        if (fit || !q->count) {
            if (!q->count) free(q->items);
            q->items = fit;
            q->cap = q->count;
        }
    }
    d->channels = q->items;
    d->channel_count = q->count;
    q->items = NULL;
    q->count = q->cap = 0;
    chan_index_free(&q->index); /* it indexed the items the device now holds */
    persist_catalog(g, d);
    uint64_t took = gb_now(g) - q->started_ms;
    log_info("gb device %s: catalog of %zu channels assembled from %zu messages in %llu ms", d->id, d->channel_count,
             q->parts, (unsigned long long)took);
    gb_mirror_channels(g, d);
    gb_publish(g, "gb.catalog.updated",
               json_pack("{s:s,s:I,s:I,s:b,s:I,s:I}", "device_id", d->id, "channels", (json_int_t)d->channel_count,
                         "sum_num", (json_int_t)q->sum_num, "complete", 1, "took_ms", (json_int_t)took, "dropped",
                         (json_int_t)q->dropped));
    if (q->waiters) gb_waiters_done(&q->waiters, 200, catalog_json(d, q->sum_num));
}

/* Timed out part way: what came is merged (no channel is dropped on a partial answer). */
static void catalog_partial(struct gb_upper *g, struct gb_query *q)
{
    struct gb_device *d = q->dev;
    struct gb_chan_index ix = {0};
    bool indexed = d->channel_count && chan_index_reserve(&ix, d->channels, d->channel_count, d->channel_count) == 0;
    size_t old = d->channel_count;
    for (size_t i = 0; i < q->count; i++) {
        long at = indexed ? chan_index_find(&ix, d->channels, q->items[i].id) : -1;
        struct gb_channel *c = at >= 0 && (size_t)at < old ? &d->channels[at] : NULL;
        if (!indexed && old) c = device_channel(d, q->items[i].id);
        if (c) {
            gb_channel_free(c);
            *c = q->items[i];
        } else {
            struct gb_channel *nc = realloc(d->channels, (d->channel_count + 1) * sizeof(*nc));
            if (!nc) {
                gb_channel_free(&q->items[i]);
                continue;
            }
            d->channels = nc;
            c = &d->channels[d->channel_count++];
            *c = q->items[i];
        }
        memset(&q->items[i], 0, sizeof(q->items[i]));
        persist_channel(g, d, c);
    }
    chan_index_free(&ix);
    q->count = 0;
    chan_index_free(&q->index); /* the items were handed over */
    gb_mirror_channels(g, d);
    gb_publish(g, "gb.catalog.updated",
               json_pack("{s:s,s:I,s:I,s:b}", "device_id", d->id, "channels", (json_int_t)d->channel_count,
                         "sum_num", (json_int_t)q->sum_num, "complete", 0));
}

static void query_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct gb_query *q = container_of(n, struct gb_query, timer);
    struct gb_upper *g = q->g;
    query_unlink(q);
    if (q->kind == GB_Q_CATALOG && q->count) {
        log_warn("gb device %s: catalog SN %u timed out with %zu of %u items", q->dev->id, q->sn, q->count,
                 q->sum_num);
        size_t got = q->count;
        catalog_partial(g, q);
        gb_waiters_done(&q->waiters, 504,
                        gb_error_json("timeout", "catalog of %s: %zu of %u items within %d s", q->dev->id, got,
                                      q->sum_num, GB_QUERY_TIMEOUT_MS / 1000));
    } else {
        log_warn("gb %s query SN %u to %s timed out", kind_names[q->kind], q->sn, q->dev->id);
        gb_waiters_done(&q->waiters, 504,
                        gb_error_json("timeout", "no %s answer from %s within %d s", kind_names[q->kind], q->dev->id,
                                      GB_QUERY_TIMEOUT_MS / 1000));
    }
    query_free(q);
}

static json_t *info_json(const gb_manscdp_t *m)
{
    const gb_device_info_t *i = &m->info;
    json_t *o = json_object();
    json_object_set_new(o, "device_id", str_or_null(m->device_id));
    json_object_set_new(o, "result", str_or_null(m->result));
    json_object_set_new(o, "device_name", str_or_null(i->device_name));
    json_object_set_new(o, "manufacturer", str_or_null(i->manufacturer));
    json_object_set_new(o, "model", str_or_null(i->model));
    json_object_set_new(o, "firmware", str_or_null(i->firmware));
    json_object_set_new(o, "channel", i->channel >= 0 ? json_integer(i->channel) : json_null());
    return o;
}

static json_t *status_json(const gb_manscdp_t *m)
{
    const gb_device_status_t *s = &m->dstatus;
    json_t *o = json_object();
    json_object_set_new(o, "device_id", str_or_null(m->device_id));
    json_object_set_new(o, "result", str_or_null(m->result));
    json_object_set_new(o, "online", str_or_null(s->online));
    json_object_set_new(o, "status", str_or_null(m->status));
    json_object_set_new(o, "encode", str_or_null(s->encode));
    json_object_set_new(o, "record", str_or_null(s->record));
    json_object_set_new(o, "device_time", str_or_null(s->device_time));
    json_t *alarms = json_array();
    for (size_t i = 0; i < s->alarm_count; i++)
        json_array_append_new(alarms, json_pack("{s:o,s:o}", "device_id", str_or_null(s->alarms[i].device_id),
                                                "duty_status", str_or_null(s->alarms[i].duty_status)));
    json_object_set_new(o, "alarms", alarms);
    return o;
}

static json_t *record_json(const gb_record_item_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "device_id", str_or_null(r->device_id));
    json_object_set_new(o, "name", str_or_null(r->name));
    json_object_set_new(o, "start", str_or_null(r->start_time));
    json_object_set_new(o, "end", str_or_null(r->end_time));
    json_object_set_new(o, "type", str_or_null(r->type));
    json_object_set_new(o, "file_path", str_or_null(r->file_path));
    if (r->file_size >= 0) json_object_set_new(o, "file_size", json_integer(r->file_size));
    return o;
}

static void on_catalog_response(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m)
{
    struct gb_query *q = query_find(d, GB_Q_CATALOG, m->sn, true);
    if (!q) {
        /* Pushed by the device, or the answer to a query made before a
         * restart: assemble it the same way. */
        if (!m->has_sn || query_count(d) >= GB_MAX_PENDING_PER_DEVICE) {
            log_warn("gb device %s: catalog SN %u nobody asked for, dropped", d->id, m->sn);
            return;
        }
        if (!(q = query_new(g, d, GB_Q_CATALOG, m->sn))) return;
        q->pushed = true;
        log_info("gb device %s: unsolicited catalog SN %u", d->id, m->sn);
    }
    if (m->has_sum_num) {
        q->have_sum = true;
        q->sum_num = m->sum_num;
    }
    q->parts++;
    for (size_t i = 0; i < m->item_count; i++) {
        if (assembly_add(q, &m->items[i]) != 0) {
            log_error("gb device %s: no memory for the catalog", d->id);
            break;
        }
    }
    uint32_t want = q->sum_num > GB_MAX_CHANNELS ? GB_MAX_CHANNELS : q->sum_num;
    if (q->have_sum && q->count + q->dropped >= want) {
        query_unlink(q);
        catalog_complete(g, q);
        query_free(q);
        return;
    }
    timer_start(g->timers, &q->timer, gb_now(g) + GB_QUERY_TIMEOUT_MS, query_timer);
}

static void on_records_response(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m)
{
    struct gb_query *q = query_find(d, GB_Q_RECORDS, m->sn, true);
    if (!q) {
        log_info("gb device %s: RecordInfo SN %u nobody asked for, dropped", d->id, m->sn);
        return;
    }
    if (m->has_sum_num) {
        q->have_sum = true;
        q->sum_num = m->sum_num;
    }
    q->parts++;
    for (size_t i = 0; i < m->record_count && json_array_size(q->records) < GB_MAX_RECORDS; i++)
        json_array_append_new(q->records, record_json(&m->records[i]));
    size_t want = q->sum_num > GB_MAX_RECORDS ? GB_MAX_RECORDS : q->sum_num;
    if (q->have_sum && json_array_size(q->records) >= want) {
        query_unlink(q);
        gb_waiters_done(&q->waiters, 200,
                        json_pack("{s:s,s:s,s:I,s:O}", "device_id", d->id, "channel", q->target, "sum_num",
                                  (json_int_t)q->sum_num, "records", q->records));
        query_free(q);
        return;
    }
    timer_start(g->timers, &q->timer, gb_now(g) + GB_QUERY_TIMEOUT_MS, query_timer);
}

static void on_single_response(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m,
                               enum gb_query_kind kind)
{
    json_t *j = kind == GB_Q_INFO ? info_json(m) : status_json(m);
    if (!m->device_id || !strcmp(m->device_id, d->id)) { /* not an answer about one of its channels */
        json_t **slot = kind == GB_Q_INFO ? &d->info : &d->status;
        json_decref(*slot);
        *slot = json_incref(j);
        gb_device_persist(g, d);
    }
    struct gb_query *q = query_find(d, kind, m->sn, true);
    if (!q) q = query_find(d, kind, 0, false); /* some devices answer with their own SN */
    if (q) {
        query_unlink(q);
        gb_waiters_done(&q->waiters, 200, json_incref(j));
        query_free(q);
    }
    json_decref(j);
}

void gb_query_on_response(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m)
{
    switch (m->cmd) {
    case GB_CMD_CATALOG: on_catalog_response(g, d, m); break;
    case GB_CMD_DEVICE_INFO: on_single_response(g, d, m, GB_Q_INFO); break;
    case GB_CMD_DEVICE_STATUS: on_single_response(g, d, m, GB_Q_STATUS); break;
    case GB_CMD_RECORD_INFO: on_records_response(g, d, m); break;
    case GB_CMD_DEVICE_CONTROL:
        log_info("gb device %s: DeviceControl result %s", d->id, m->result ? m->result : "?");
        break;
    default: log_debug("gb device %s: Response %s ignored", d->id, m->cmd_type ? m->cmd_type : "?"); break;
    }
}

/* §A.2.5 catalog notify: each item carries an Event. */
void gb_catalog_on_notify(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m)
{
    size_t changes = 0;
    for (size_t i = 0; i < m->item_count; i++) {
        const gb_catalog_item_t *it = &m->items[i];
        if (!it->device_id || !*it->device_id || !item_ids_valid(g, d, it)) continue;
        struct gb_channel *c = device_channel(d, it->device_id);
        switch (it->event) {
        case GB_EVENT_ON:
        case GB_EVENT_OFF:
        case GB_EVENT_VLOST:
        case GB_EVENT_DEFECT:
            if (!c) break;
            snprintf(c->status, sizeof(c->status), "%s", it->event == GB_EVENT_ON ? "ON" : "OFF");
            persist_channel(g, d, c);
            changes++;
            break;
        case GB_EVENT_DEL:
            if (!c) break;
            if (g->store) store_submit(g->store, store_op_gb_channel_delete(d->id, c->id), NULL, NULL);
            gb_channel_free(c);
            *c = d->channels[--d->channel_count];
            changes++;
            break;
        default: { /* ADD, UPDATE, or no event: the item as it is now */
            struct gb_channel nc;
            if (channel_from_item(g, &nc, it) != 0) break;
            if (c) {
                gb_channel_free(c);
                *c = nc;
            } else {
                if (d->channel_count >= GB_MAX_CHANNELS) {
                    gb_channel_free(&nc);
                    break;
                }
                struct gb_channel *arr = realloc(d->channels, (d->channel_count + 1) * sizeof(*arr));
                if (!arr) {
                    gb_channel_free(&nc);
                    break;
                }
                d->channels = arr;
                d->channels[d->channel_count++] = nc;
                c = &d->channels[d->channel_count - 1];
            }
            persist_channel(g, d, c);
            changes++;
            break;
        }
        }
    }
    if (!changes) return;
    gb_mirror_channels(g, d);
    gb_publish(g, "gb.catalog.updated",
               json_pack("{s:s,s:I,s:I,s:b}", "device_id", d->id, "channels", (json_int_t)d->channel_count,
                         "changes", (json_int_t)changes, "notify", 1));
}

/* ---- device control: a MESSAGE whose answer completes waiters ---- */

struct control_ctx {
    struct gb_waiter *waiters;
    char what[32];  /* for the refusal text: "the PTZ command" */
    char key[16];   /* the success answer's field ... */
    char value[32]; /* ... and its value */
};

static void control_on_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                             const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)resp, (void)rx, (void)dlg;
    struct control_ctx *c = arg;
    if (status < 300)
        gb_waiters_done(&c->waiters, 200, json_pack("{s:b,s:s}", "sent", 1, c->key, c->value));
    else
        gb_waiters_done(&c->waiters, status == 408 ? 504 : 502,
                        gb_error_json(status == 408 ? "timeout" : "device-refused",
                                      "the device answered %s with %d", c->what, status));
    free(c);
}

static const struct ua_uac_cb control_cb = {.on_final = control_on_final};

int gb_control_send(struct gb_upper *g, struct gb_device *d, const sbuf_t *body, const char *what, const char *key,
                    const char *value, struct gb_waiter *wt)
{
    struct control_ctx *c = calloc(1, sizeof(*c));
    if (!c) return -ENOMEM;
    snprintf(c->what, sizeof(c->what), "%s", what);
    snprintf(c->key, sizeof(c->key), "%s", key);
    snprintf(c->value, sizeof(c->value), "%s", value);
    struct ua_request r;
    char buf[512];
    gb_device_request(g, d, d->id, &r, buf, sizeof(buf));
    r.method = SIP_MESSAGE;
    r.content_type = STR_LIT(MANSCDP_CT);
    r.body = sbuf_str(body);
    struct transport_dest dest;
    gb_device_dest(d, &dest);
    if (!ua_request_send(g->ua, &r, &dest, NULL, &control_cb, c)) {
        free(c);
        return -EIO;
    }
    if (wt) gb_waiter_add(&c->waiters, wt);
    return 0;
}

/* ---- PTZ ---- */

int gb_ptz_send(struct gb_upper *g, struct gb_device *d, const char *channel, const char *cmd, int speed,
                struct gb_waiter *wt, char hex_out[17])
{
    if (!d->online) return -ENOTCONN;
    if (!gb_id_valid(str_from_cstr(channel))) return -EINVAL;
    if (speed < 0 || speed > 255) return -EINVAL;
    char hex[GB_PTZ_HEX_LEN + 1];
    /* Zoom speed is a nibble: the same speed scaled to 0-15 (Annex A.3). */
    if (gb_ptz_build(cmd, speed, speed >> 4, 1, hex) != 0) return -EINVAL;
    sbuf_t body;
    sbuf_init(&body);
    if (gb_manscdp_build_ptz_control(&body, d->charset, g->next_sn++, channel, hex) != 0 || body.failed) {
        sbuf_free(&body);
        return -EINVAL;
    }
    int rc = gb_control_send(g, d, &body, "the PTZ command", "ptz_cmd", hex, wt);
    sbuf_free(&body);
    if (rc != 0) return rc;
    if (hex_out) memcpy(hex_out, hex, sizeof(hex));
    log_info("gb PTZ %s (%s) to %s channel %s", cmd, hex, d->id, channel);
    return 0;
}
