/* lower.c — the GB/T 28181 lower platform role (see lower.h): the role's
 * life cycle, the local directory (channels kept in memory, persisted in the
 * store with device_id ""), events, and the dispatch of requests from our
 * upstreams to lower_query.c (MESSAGE), lower_media.c (INVITE for a local
 * channel) and lower_relay.c (INVITE for a device of this middle node). */
#include "gb/lower/lower_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "events/events.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/log.h"
#include "sip/local.h"
#include "store/store.h"
#include "txn/txn.h"

uint64_t gb_lower_now(const struct gb_lower *l) { return timer_now(l->timers); }

uint64_t gb_lower_random(struct gb_lower *l)
{
    uint64_t x = l->rng; /* xorshift64*: jitter needs spread, not secrecy */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    l->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void gb_lower_arm(struct gb_lower *l, struct timer_node *n, uint64_t at, timer_cb cb)
{
    if (timer_start(l->timers, n, at, cb) != 0) log_error("gb lower: cannot arm a timer (no memory)");
}

void gb_lower_publish(struct gb_lower *l, const char *type, json_t *fields)
{
    if (l->events) event_publish(l->events, type, fields);
    else json_decref(fields);
}

/* ---- local channels ---- */

/* Local channels by id: a base/htable.h table (node in the channel). */
static uint32_t chan_hash(str_t id) { return str_hash(id); }

struct gb_lchan *gb_lchan_find(const struct gb_lower *l, str_t id)
{
    if (id.len != GB_ID_LEN) return NULL;
    for (struct hnode *n = htable_first(&l->chans, chan_hash(id)); n; n = htable_next(n)) {
        struct gb_lchan *c = container_of(n, struct gb_lchan, by_id);
        if (!memcmp(c->id, id.s, GB_ID_LEN)) return c;
    }
    return NULL;
}

static void lchan_free(struct gb_lchan *c)
{
    if (!c) return;
    free(c->name);
    free(c->parent_id);
    free(c->manufacturer);
    free(c->model);
    free(c->civil_code);
    free(c->address);
    free(c->media);
    free(c);
}

static int chan_free_visit(struct hnode *n, void *arg)
{
    (void)arg;
    lchan_free(container_of(n, struct gb_lchan, by_id));
    return 0;
}

static void chan_unlink(struct gb_lower *l, struct gb_lchan *c)
{
    htable_remove(&l->chans, &c->by_id);
}

/* Text fields of a channel: bounded, no control characters (they go into
 * XML and SDP). */
static bool field_ok(const char *s, size_t max)
{
    if (!s) return true;
    size_t n = strlen(s);
    if (n > max) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s && *s ? s : (dflt ? dflt : ""));
}

/* The one rule set for a channel given through the API (one at a time or an
 * import): a GB id, text fields of sane length, a parent id no longer than
 * an id with a little room, status ON or OFF. */
static bool chan_in_valid(const struct gb_lower_channel_in *in)
{
    if (!in->id || !gb_id_valid(str_from_cstr(in->id))) return false;
    const char *fields[] = {in->name, in->parent_id, in->manufacturer, in->model, in->civil_code, in->address};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (!field_ok(fields[i], 256)) return false;
    if (!field_ok(in->media, 1024)) return false;
    if (in->parent_id && *in->parent_id && strlen(in->parent_id) > GB_ID_LEN + 12) return false;
    if (in->status && *in->status && strcasecmp(in->status, "ON") && strcasecmp(in->status, "OFF")) return false;
    return true;
}

/* Inserts or replaces in memory only. *was_new tells ADD from UPDATE. */
static int chan_put(struct gb_lower *l, const struct gb_lower_channel_in *in, bool *was_new)
{
    if (!chan_in_valid(in)) return -EINVAL;
    struct gb_lchan *old = gb_lchan_find(l, str_from_cstr(in->id));
    if (!old && htable_count(&l->chans) >= GB_LOWER_MAX_CHANNELS) return -ENOSPC;
    struct gb_lchan *c = calloc(1, sizeof(*c));
    if (!c) return -ENOMEM;
    snprintf(c->id, sizeof(c->id), "%s", in->id);
    c->name = dup_or(in->name, in->id);
    c->parent_id = dup_or(in->parent_id, "");
    c->manufacturer = dup_or(in->manufacturer, "cascade");
    c->model = dup_or(in->model, "cascade-lower");
    c->civil_code = dup_or(in->civil_code, "");
    c->address = dup_or(in->address, "");
    c->media = dup_or(in->media, "");
    snprintf(c->status, sizeof(c->status), "%s", in->status && !strcasecmp(in->status, "OFF") ? "OFF" : "ON");
    if (!c->name || !c->parent_id || !c->manufacturer || !c->model || !c->civil_code || !c->address || !c->media) {
        lchan_free(c);
        return -ENOMEM;
    }
    if (old) {
        c->controls = old->controls;
        memcpy(c->last_ptz, old->last_ptz, sizeof(c->last_ptz));
        chan_unlink(l, old);
        lchan_free(old);
    }
    if (htable_insert(&l->chans, &c->by_id, chan_hash(str_make(c->id, GB_ID_LEN))) != 0) {
        lchan_free(c);
        return -ENOMEM;
    }
    if (was_new) *was_new = !old;
    return 0;
}

static void store_done(void *arg, int status)
{
    (void)arg;
    if (status < 0) log_warn("gb lower: store write failed: %s", strerror(-status));
}

static void chan_persist(struct gb_lower *l, const struct gb_lchan *c)
{
    if (!l->store) return;
    struct store_gb_channel row = {
        .device_id = "", .id = c->id, .parent_id = c->parent_id, .name = c->name, .status = c->status,
        .manufacturer = c->manufacturer, .model = c->model, .civil_code = c->civil_code, .address = c->address,
        .extra_json = "", .media = c->media};
    store_submit(l->store, store_op_gb_channel_upsert(&row), store_done, l);
}

int gb_lower_channel_set(struct gb_lower *l, const struct gb_lower_channel_in *in)
{
    bool was_new = false;
    int rc = chan_put(l, in, &was_new);
    if (rc != 0) return rc;
    struct gb_lchan *c = gb_lchan_find(l, str_from_cstr(in->id));
    chan_persist(l, c);
    log_info("gb lower: local channel %s %s", c->id, was_new ? "added" : "updated");
    gb_lower_notify_channel(l, c, was_new ? GB_EVENT_ADD : GB_EVENT_UPDATE);
    return 0;
}

static void chan_item(const struct gb_lower *l, const struct gb_lchan *c, gb_catalog_item_t *it)
{
    gb_catalog_item_init(it);
    it->device_id = (char *)c->id;
    it->name = c->name;
    it->manufacturer = c->manufacturer;
    it->model = c->model;
    it->owner = (char *)"Owner";
    it->civil_code = c->civil_code[0] ? c->civil_code : (char *)l->domain;
    it->address = c->address[0] ? c->address : (char *)"Address";
    it->parental = 0;
    it->parent_id = c->parent_id[0] ? c->parent_id : (char *)l->id;
    it->safety_way = 0;
    it->register_way = 1;
    it->secrecy = 0;
    it->status = strcmp(c->status, "OFF") ? GB_ONOFF_ON : GB_ONOFF_OFF;
}

int gb_lower_channel_set_many(struct gb_lower *l, const struct gb_lower_channel_in *in, size_t n, size_t *bad)
{
    /* Validate everything first, with the rules chan_put applies: an import
     * is all or nothing. Only ids not held yet count against the cap. */
    size_t added = 0;
    for (size_t i = 0; i < n; i++) {
        if (!chan_in_valid(&in[i])) {
            if (bad) *bad = i;
            return -EINVAL;
        }
        if (!gb_lchan_find(l, str_from_cstr(in[i].id))) added++;
    }
    if (htable_count(&l->chans) + added > GB_LOWER_MAX_CHANNELS) return -ENOSPC;
    gb_catalog_item_t *items = calloc(n ? n : 1, sizeof(*items));
    if (!items) return -ENOMEM;
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool was_new = false;
        rc = chan_put(l, &in[i], &was_new);
        if (rc != 0) {
            if (bad) *bad = i;
            break;
        }
        struct gb_lchan *c = gb_lchan_find(l, str_from_cstr(in[i].id));
        chan_persist(l, c);
        chan_item(l, c, &items[k]);
        items[k++].event = was_new ? GB_EVENT_ADD : GB_EVENT_UPDATE;
    }
    /* Items point into the channels: notify before anything can change them. */
    gb_lower_notify_items(l, items, k);
    free(items);
    if (k) log_info("gb lower: %zu local channel(s) imported", k);
    return rc;
}

int gb_lower_channel_delete(struct gb_lower *l, const char *id)
{
    struct gb_lchan *c = gb_lchan_find(l, str_from_cstr(id));
    if (!c) return -ENOENT;
    chan_unlink(l, c);
    if (l->store) store_submit(l->store, store_op_gb_channel_delete("", c->id), store_done, l);
    log_info("gb lower: local channel %s deleted", c->id);
    gb_lower_notify_channel(l, c, GB_EVENT_DEL);
    lchan_free(c);
    return 0;
}

size_t gb_lower_channel_count(const struct gb_lower *l) { return htable_count(&l->chans); }

static json_t *chan_json(const struct gb_lchan *c)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id", c->id, "name", c->name, "parent_id",
                          c->parent_id, "status", c->status, "manufacturer", c->manufacturer, "model", c->model,
                          "civil_code", c->civil_code, "address", c->address, "media", c->media);
    if (o && c->controls) {
        json_object_set_new(o, "controls", json_integer((json_int_t)c->controls));
        json_object_set_new(o, "last_ptz", json_string(c->last_ptz));
    }
    return o;
}

static int chan_cmp(const void *a, const void *b)
{
    return strcmp((*(struct gb_lchan *const *)a)->id, (*(struct gb_lchan *const *)b)->id);
}

struct chan_collect_ctx {
    struct gb_lchan **v;
    size_t *n;
};

static int chan_collect(struct hnode *n, void *arg)
{
    struct chan_collect_ctx *c = arg;
    c->v[(*c->n)++] = container_of(n, struct gb_lchan, by_id);
    return 0;
}

/* The local channels sorted by id (callers free the array). */
static struct gb_lchan **chan_sorted(const struct gb_lower *l, size_t *n)
{
    *n = 0;
    struct gb_lchan **v = malloc((htable_count(&l->chans) ? htable_count(&l->chans) : 1) * sizeof(*v));
    if (!v) return NULL;
    htable_foreach((struct htable *)&l->chans, chan_collect, &(struct chan_collect_ctx){.v = v, .n = n});
    qsort(v, *n, sizeof(*v), chan_cmp);
    return v;
}

json_t *gb_lower_channels_json(struct gb_lower *l, bool local_only)
{
    json_t *arr = json_array();
    size_t n;
    struct gb_lchan **v = chan_sorted(l, &n);
    for (size_t i = 0; v && i < n; i++) {
        json_t *o = chan_json(v[i]);
        json_object_set_new(o, "device_id", json_null()); /* lives here */
        json_array_append_new(arr, o);
    }
    free(v);
    if (!local_only) gb_relay_channels_json(l, arr);
    return json_pack("{s:o}", "channels", arr);
}

/* Local channels as catalog items (ParentID: the channel's, else us). */
int gb_lower_local_items(struct gb_lower *l, gb_catalog_item_t **items, size_t *n, size_t *cap)
{
    size_t count;
    struct gb_lchan **v = chan_sorted(l, &count);
    if (!v) return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        gb_catalog_item_t it;
        chan_item(l, v[i], &it);
        rc = gb_lower_items_push(items, n, cap, &it);
    }
    free(v);
    return rc;
}

/* ---- items (owned copies for answers sent over time) ---- */

static char *dup_opt(const char *s) { return s ? strdup(s) : NULL; }

int gb_lower_items_push(gb_catalog_item_t **items, size_t *n, size_t *cap, const gb_catalog_item_t *src)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        gb_catalog_item_t *ni = realloc(*items, nc * sizeof(*ni));
        if (!ni) return -ENOMEM;
        *items = ni;
        *cap = nc;
    }
    gb_catalog_item_t *d = &(*items)[*n];
    *d = *src;
    d->device_id = dup_opt(src->device_id);
    d->name = dup_opt(src->name);
    d->manufacturer = dup_opt(src->manufacturer);
    d->model = dup_opt(src->model);
    d->owner = dup_opt(src->owner);
    d->civil_code = dup_opt(src->civil_code);
    d->block = dup_opt(src->block);
    d->address = dup_opt(src->address);
    d->parent_id = dup_opt(src->parent_id);
    d->business_group_id = dup_opt(src->business_group_id);
    d->ip_address = dup_opt(src->ip_address);
    (*n)++;
    if ((src->device_id && !d->device_id) || (src->name && !d->name) || (src->parent_id && !d->parent_id))
        return -ENOMEM;
    return 0;
}

void gb_lower_items_free_tail(gb_catalog_item_t *items, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++) {
        gb_catalog_item_t *d = &items[i];
        free(d->device_id), free(d->name), free(d->manufacturer), free(d->model), free(d->owner);
        free(d->civil_code), free(d->block), free(d->address), free(d->parent_id);
        free(d->business_group_id), free(d->ip_address);
    }
}

void gb_lower_items_free(gb_catalog_item_t *items, size_t n)
{
    gb_lower_items_free_tail(items, 0, n);
    free(items);
}

/* ---- clips ---- */

struct gb_media_clip *gb_lower_clip(struct gb_lower *l, const char *path)
{
    if (!path || !*path) path = l->default_media;
    char err[256];
    if (!path || !*path) {
        if (!l->builtin) {
            size_t len;
            const uint8_t *data = gb_media_builtin_clip(&len);
            l->builtin = gb_media_clip_from_buffer(data, len, err, sizeof(err));
            if (!l->builtin) log_error("gb lower: built-in clip: %s", err);
        }
        return l->builtin;
    }
    for (struct gb_clip_cache *c = l->clips; c; c = c->next)
        if (!strcmp(c->path, path)) return c->clip;
    struct gb_media_clip *clip = gb_media_clip_load(path, err, sizeof(err));
    if (!clip) {
        log_warn("gb lower: media %s", err);
        return NULL;
    }
    struct gb_clip_cache *c = calloc(1, sizeof(*c));
    if (!c || !(c->path = strdup(path))) {
        free(c);
        gb_media_clip_unref(clip);
        return NULL;
    }
    c->clip = clip;
    c->next = l->clips;
    l->clips = c;
    log_info("gb lower: media %s: %zu frames at %.2f fps", path, gb_media_clip_frames(clip), gb_media_clip_fps(clip));
    return clip;
}

/* ---- requests to upstreams ---- */

void gb_lower_request_init(struct gb_lower *l, struct gb_upstream *up, enum sip_method m, struct ua_request *r,
                           char *from, size_t from_cap)
{
    memset(r, 0, sizeof(*r));
    snprintf(from, from_cap, "<sip:%s@%s>", l->id, l->domain);
    r->method = m;
    r->ruri = str_from_cstr(up->ruri);
    r->from = str_from_cstr(from);
    /* The upper's address of record is the R-URI itself (GB/T 28181 §9.1). */
    r->to = str_from_cstr(up->ruri);
}

struct ua_uac *gb_lower_send_manscdp(struct gb_lower *l, struct gb_upstream *up, const sbuf_t *body,
                                     const struct ua_uac_cb *cb, void *arg)
{
    struct ua_request r;
    char from[96];
    gb_lower_request_init(l, up, SIP_MESSAGE, &r, from, sizeof(from));
    r.content_type = STR_LIT("Application/MANSCDP+xml");
    r.body = sbuf_str(body);
    struct ua_credentials cred = {.user = str_from_cstr(l->id), .password = str_from_cstr(up->cfg.password)};
    return ua_request_send(l->ua, &r, &up->dest, &cred, cb, arg);
}

/* ---- the role ---- */

struct gb_lower *gb_lower_new(const struct gb_config *gb, const struct config_upstream *ups, int n_ups,
                              const struct sip_local *local, const struct gb_lower_deps *deps)
{
    if (!gb_id_valid(str_from_cstr(gb->id))) {
        log_error("gb lower: [gb] id '%s' is not a 20-digit GB id", gb->id);
        return NULL;
    }
    struct gb_lower *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    htable_init(&l->chans);
    l->chans.min_buckets = 256;
    l->ua = deps->ua;
    l->txn = deps->txn;
    l->timers = deps->timers;
    l->loop = deps->loop;
    l->store = deps->store;
    l->events = deps->events;
    snprintf(l->default_media, sizeof(l->default_media), "%s", gb->default_media);
    memcpy(l->id, gb->id, GB_ID_LEN); /* validated: exactly 20 digits */
    if (gb->domain[0]) snprintf(l->domain, sizeof(l->domain), "%s", gb->domain);
    else gb_id_domain(str_from_cstr(l->id), l->domain);
    snprintf(l->media_ip, sizeof(l->media_ip), "%s", gb->media_ip[0] ? gb->media_ip : local->host);
    timer_node_init(&l->stop_timer);
    timer_node_init(&l->note_timer);
    timer_node_init(&l->rnote_timer);
    if (uv_random(NULL, NULL, &l->rng, sizeof(l->rng), 0, NULL) != 0) l->rng = (uint64_t)(uintptr_t)l;
    l->rng |= 1;
    /* Every slot at once: a reload adds upstreams without moving the others. */
    l->ups = calloc(CONFIG_MAX_UPSTREAMS, sizeof(*l->ups));
    if (!l->ups || n_ups > CONFIG_MAX_UPSTREAMS) {
        free(l->ups);
        free(l);
        return NULL;
    }
    for (int i = 0; i < n_ups; i++) {
        struct gb_upstream *up = &l->ups[i];
        up->cfg = up->given = ups[i];
        up->index = i;
        gb_up_init(l, up);
        if (up->state == GB_UP_STOPPED && up->cfg.enabled) {
            /* gb_up_init logged what is wrong with it */
            gb_lower_free(l);
            return NULL;
        }
        l->up_count++;
    }
    log_info("gb lower: id %s, %d upstream(s)", l->id, l->up_count);
    return l;
}

struct load_ctx {
    struct gb_lower *l;
    int loaded, bad;
};

static int load_channel_row(void *arg, const struct store_gb_channel *row)
{
    struct load_ctx *ctx = arg;
    struct gb_lower_channel_in in = {
        .id = row->id, .name = row->name, .parent_id = row->parent_id, .status = row->status,
        .manufacturer = row->manufacturer, .model = row->model, .civil_code = row->civil_code,
        .address = row->address, .media = row->media};
    if (chan_put(ctx->l, &in, NULL) == 0) ctx->loaded++;
    else {
        ctx->bad++;
        log_warn("gb lower: stored local channel '%s' skipped (bad or too many)", row->id);
    }
    return 0;
}

static int load_upstream_row(void *arg, const struct store_gb_upstream *row)
{
    struct load_ctx *ctx = arg;
    struct gb_lower *l = ctx->l;
    for (int i = 0; i < l->up_count; i++) {
        struct gb_upstream *up = &l->ups[i];
        if (strcmp(up->cfg.id, row->id)) continue;
        up->registered_at = row->registered_at;
        up->last_keepalive_ok = row->last_keepalive_ok;
    }
    return 0;
}

int gb_lower_load(struct gb_lower *l)
{
    if (!l->store) return 0;
    struct load_ctx ctx = {.l = l};
    if (store_load_gb_channels(l->store, "", load_channel_row, &ctx) < 0) return -1;
    if (store_load_gb_upstreams(l->store, load_upstream_row, &ctx) < 0) return -1;
    if (gb_lower_subs_load(l) < 0) return -1;
    log_info("gb lower: %d local channel(s) loaded", ctx.loaded);
    return 0;
}

void gb_lower_start(struct gb_lower *l)
{
    if (l->started) return;
    l->started = true;
    for (int i = 0; i < l->up_count; i++) gb_up_start(&l->ups[i]);
}

void gb_lower_set_upper(struct gb_lower *l, struct gb_upper *g)
{
    if (l->upper) gb_relay_watch(l, false);
    l->upper = g;
    if (g) gb_relay_watch(l, true);
}

void gb_lower_upstream_persist(struct gb_lower *l, struct gb_upstream *up)
{
    if (!l->store) return;
    struct store_gb_upstream row = {.id = up->cfg.id, .state = gb_up_state_name(up->state),
                                    .last_error = up->last_error, .registered_at = up->registered_at,
                                    .last_keepalive_ok = up->last_keepalive_ok};
    store_submit(l->store, store_op_gb_upstream_upsert(&row), store_done, l);
}

json_t *gb_lower_upstreams_json(const struct gb_lower *l)
{
    json_t *arr = json_array();
    for (int i = 0; i < l->up_count; i++)
        if (!l->ups[i].removed) json_array_append_new(arr, gb_up_json(&l->ups[i]));
    return json_pack("{s:o}", "upstreams", arr);
}

int gb_lower_upstream_check(const struct config_upstream *u, char *err, size_t errcap)
{
    return u->enabled ? gb_up_check(u, err, errcap) : 0;
}

/* Every key of the section alike (strings up to their end). */
static bool upstream_same(const struct config_upstream *a, const struct config_upstream *b)
{
    for (size_t i = 0; i < upstream_config_section.nkeys; i++)
        if (!config_key_equal(&upstream_config_section.keys[i], a, b)) return false;
    return true;
}

/* A slot for a new upstream: a fresh one, else one removed whose
 * unregister has ended. NULL when every slot is busy. */
static struct gb_upstream *slot_for_new(struct gb_lower *l)
{
    if (l->up_count < CONFIG_MAX_UPSTREAMS) return &l->ups[l->up_count++];
    for (int i = 0; i < l->up_count; i++) {
        struct gb_upstream *up = &l->ups[i];
        if (up->removed && !up->unregistering && !up->reg) {
            gb_up_free(up);
            return up;
        }
    }
    return NULL;
}

int gb_lower_set_upstreams(struct gb_lower *l, const struct config_upstream *ups, int n)
{
    if (l->stopping) return -ECANCELED;
    /* Gone first, so that their slots can be reused. */
    for (int i = 0; i < l->up_count; i++) {
        struct gb_upstream *up = &l->ups[i];
        if (up->removed) continue;
        bool kept = false;
        for (int j = 0; j < n && !kept; j++) kept = !strcmp(up->cfg.id, ups[j].id);
        if (!kept) gb_up_remove(up);
    }
    int rc = 0;
    for (int j = 0; j < n; j++) {
        struct gb_upstream *up = NULL;
        for (int i = 0; i < l->up_count && !up; i++)
            if (!strcmp(l->ups[i].cfg.id, ups[j].id)) up = &l->ups[i];
        if (up) {
            /* still configured, perhaps changed, or removed and back again */
            if (up->removed || up->has_next || !upstream_same(&up->given, &ups[j]))
                gb_up_reconfigure(up, &ups[j]);
            continue;
        }
        up = slot_for_new(l);
        if (!up) {
            log_error("gb lower: upstream %s not added: %d upstreams are configured or still unregistering",
                      ups[j].id, CONFIG_MAX_UPSTREAMS);
            rc = -ENOSPC;
            continue;
        }
        memset(up, 0, sizeof(*up));
        up->cfg = up->given = ups[j];
        up->index = (int)(up - l->ups);
        gb_up_init(l, up);
        log_info("gb lower: upstream %s added (%s:%u)", up->cfg.id, up->cfg.host, up->cfg.port);
        if (l->started) gb_up_start(up);
    }
    return rc;
}

/* ---- requests ---- */

/* The upstream a request comes from: its From user is the upper's id. */
static struct gb_upstream *upstream_of(struct gb_lower *l, const struct sip_msg *m)
{
    str_t user = m->from.uri.user;
    if (user.len != GB_ID_LEN) return NULL;
    for (int i = 0; i < l->up_count; i++)
        if (!l->ups[i].removed && str_eq_cstr(user, l->ups[i].cfg.id)) return &l->ups[i];
    return NULL;
}

static bool same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                       sizeof(struct in6_addr));
    return false;
}

void gb_lower_respond(struct gb_lower *l, struct txn *st, int status, const char *reason, const str_t *extra,
                      size_t n_extra)
{
    const struct sip_msg *req = txn_request(st);
    char tag[UA_TAG_SIZE];
    ua_new_tag(l->ua, tag);
    str_t to_tag = req && req->to.tag.len ? STR_NULL : str_from_cstr(tag);
    int rc = txn_respond(st, status, reason, to_tag, extra, n_extra, STR_NULL, STR_NULL);
    if (rc < 0) log_warn("gb lower: %d not sent: %s", status, strerror(-rc));
}

static void respond(struct gb_lower *l, struct txn *st, int status, const char *extra)
{
    str_t line = str_from_cstr(extra);
    gb_lower_respond(l, st, status, NULL, extra ? &line : NULL, extra ? 1 : 0);
}

/* "Application/MANSCDP+xml[;charset=...]" (case-insensitive, RFC 3261 §20.15). */
static bool is_manscdp(str_t ct, char *charset, size_t cap)
{
    charset[0] = '\0';
    const char *semi = memchr(ct.s, ';', ct.len);
    str_t type = str_trim(str_make(ct.s, semi ? (size_t)(semi - ct.s) : ct.len));
    if (!str_ieq_cstr(type, "application/manscdp+xml")) return false;
    if (semi) {
        str_t v;
        str_t params = str_make(semi + 1, ct.len - (size_t)(semi + 1 - ct.s));
        if (sip_param_get(params, "charset", &v) && v.len < cap) str_copy(charset, cap, v);
    }
    return true;
}

static void on_message(struct gb_lower *l, struct gb_upstream *up, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    char charset[32];
    if (!is_manscdp(m->content_type, charset, sizeof(charset))) {
        log_warn("gb lower: MESSAGE from upstream %s at %s with Content-Type '%.*s': 415", up->cfg.id,
                 rx->src_text, STR_FMT(m->content_type));
        respond(l, st, 415, "Accept: Application/MANSCDP+xml");
        return;
    }
    gb_manscdp_t msg;
    int rc = gb_manscdp_parse(m->body.s, m->body.len, charset[0] ? charset : NULL, &msg);
    if (rc < 0) {
        log_warn("gb lower: bad MANSCDP from upstream %s at %s: %s", up->cfg.id, rx->src_text,
                 gb_manscdp_strerror(rc));
        respond(l, st, 400, NULL);
        gb_manscdp_free(&msg);
        return;
    }
    respond(l, st, 200, NULL);
    gb_lower_on_manscdp(l, up, &msg);
    gb_manscdp_free(&msg);
}

int gb_lower_on_request(struct gb_lower *l, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!m || !m->is_request) return 0;
    if (m->method == SIP_CANCEL) {
        struct txn *inv = txn_find_invite_for_cancel(l->txn, rx);
        if (!inv || !gb_relay_cancel(l, inv)) return 0;
        respond(l, st, 200, NULL);
        return 1;
    }
    if (m->method != SIP_MESSAGE && m->method != SIP_INVITE && m->method != SIP_SUBSCRIBE) return 0;
    /* In a dialog: the UA's business, but for subscriptions (kept here). */
    if (m->to.tag.len && m->method != SIP_SUBSCRIBE) return 0;
    struct gb_upstream *up = upstream_of(l, m);
    if (!up) return 0;
    if (!same_ip(&rx->src, &up->dest.addr)) {
        log_warn("gb lower: %.*s claiming to be upstream %s came from %s, not its address: 403",
                 STR_FMT(m->method_name), up->cfg.id, rx->src_text);
        respond(l, st, 403, NULL);
        return 1;
    }
    if (m->method == SIP_MESSAGE) {
        on_message(l, up, st, rx);
        return 1;
    }
    if (m->method == SIP_SUBSCRIBE) {
        gb_lower_on_subscribe(l, up, st, rx);
        return 1;
    }
    l->stats.invites++;
    if (l->stopping) {
        respond(l, st, 503, NULL);
        return 1;
    }
    str_t target = m->ruri.user;
    if (gb_lchan_find(l, target)) gb_lower_on_invite(l, up, st, rx);
    else if (l->upper && (gb_relay_knows(l, target) || gb_relay_across_nodes(l)))
        gb_relay_invite(l, up, st, rx); /* a device here, or maybe on another node */
    else {
        log_info("gb lower: INVITE from upstream %s for unknown channel %.*s: 404", up->cfg.id, STR_FMT(target));
        respond(l, st, 404, NULL);
    }
    return 1;
}

void gb_lower_on_conn_lost(struct gb_lower *l, uint64_t conn_id)
{
    for (int i = 0; i < l->up_count; i++) {
        struct gb_upstream *up = &l->ups[i];
        if (!sip_transport_is_stream(up->dest.proto) || up->dest.conn_id != conn_id) continue;
        up->dest.conn_id = 0;
        if (!l->stopping && (up->state == GB_UP_REGISTERED || up->state == GB_UP_REGISTERING))
            gb_up_lost(up, "transport-lost");
    }
}

/* ---- stop and free ---- */

static void stop_finish(struct gb_lower *l)
{
    timer_stop(l->timers, &l->stop_timer);
    void (*done)(void *) = l->stop_done;
    l->stop_done = NULL;
    if (done) done(l->stop_arg);
}

void gb_lower_stop_step(struct gb_lower *l)
{
    if (l->stop_pending > 0 && --l->stop_pending == 0) stop_finish(l);
}

static void stop_timer_cb(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct gb_lower *l = container_of(n, struct gb_lower, stop_timer);
    if (l->stop_pending) log_warn("gb lower: %d unregister(s) unanswered after %d ms", l->stop_pending,
                                  GB_LOWER_STOP_WAIT_MS);
    l->stop_pending = 0;
    stop_finish(l);
}

void gb_lower_stop(struct gb_lower *l, void (*done)(void *arg), void *arg)
{
    if (l->stopping) return;
    l->stopping = true;
    l->stop_done = done;
    l->stop_arg = arg;
    if (l->upper) gb_relay_watch(l, false);
    gb_lower_remote_unwatch(l);
    gb_lower_jobs_drop(l, NULL);
    gb_lstreams_stop(l, NULL, "shutdown");
    gb_relays_stop(l, NULL, "shutdown");
    for (int i = 0; i < l->up_count; i++) l->stop_pending += gb_up_stop(&l->ups[i]);
    if (!l->stop_pending) {
        stop_finish(l);
        return;
    }
    gb_lower_arm(l, &l->stop_timer, gb_lower_now(l) + GB_LOWER_STOP_WAIT_MS, stop_timer_cb);
}

void gb_lower_free(struct gb_lower *l)
{
    if (!l) return;
    if (l->upper) gb_relay_watch(l, false);
    gb_lower_remote_unwatch(l);
    timer_stop(l->timers, &l->stop_timer);
    gb_lower_jobs_drop(l, NULL);
    gb_lstreams_stop(l, NULL, "shutdown");
    gb_relays_stop(l, NULL, "shutdown");
    for (int i = 0; i < l->up_count; i++) gb_up_free(&l->ups[i]);
    free(l->ups);
    htable_foreach(&l->chans, chan_free_visit, NULL);
    htable_free(&l->chans);
    while (l->clips) {
        struct gb_clip_cache *c = l->clips;
        l->clips = c->next;
        gb_media_clip_unref(c->clip);
        free(c->path);
        free(c);
    }
    gb_media_clip_unref(l->builtin);
    free(l);
}

/* ---- stats ---- */

void gb_lower_get_stats(const struct gb_lower *l, struct gb_lower_stats *out)
{
    *out = l->stats;
    out->upstreams = 0;
    out->registered = 0;
    for (int i = 0; i < l->up_count; i++) {
        const struct gb_upstream *up = &l->ups[i];
        if (!up->removed) out->upstreams++;
        if (up->state == GB_UP_REGISTERED) out->registered++;
        out->registers_sent += up->registers_sent;
        out->register_failures += up->register_failures;
        out->keepalives_sent += up->keepalives_sent;
        out->keepalives_ok += up->keepalives_ok;
        out->keepalives_missed += up->keepalives_missed;
    }
    out->streams = l->stream_count;
    out->relays = l->relay_count;
    out->channels = htable_count(&l->chans);
}

void gb_lower_stats_json(const struct gb_lower *l, json_t *stats)
{
    struct gb_lower_stats s;
    gb_lower_get_stats(l, &s);
    json_t *o = json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "upstreams", (int)s.upstreams,
                          "registered", (int)s.registered, "streams", (int)s.streams, "relays", (int)s.relays,
                          "channels", (int)s.channels, "registers_sent", (json_int_t)s.registers_sent,
                          "register_failures", (json_int_t)s.register_failures, "keepalives_sent",
                          (json_int_t)s.keepalives_sent, "keepalives_ok", (json_int_t)s.keepalives_ok,
                          "keepalives_missed", (json_int_t)s.keepalives_missed, "queries", (json_int_t)s.queries,
                          "notifies_sent", (json_int_t)s.notifies_sent, "invites", (json_int_t)s.invites,
                          "controls", (json_int_t)s.controls);
    if (o) json_object_set_new(stats, "gb_lower", o);
}
