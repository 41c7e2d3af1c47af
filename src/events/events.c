/* events.c — the event bus (see events.h): builds each event once, keeps the
 * last N serialized events in a ring, logs them, and fans them out to the
 * subscribers and the webhook queue. Loop thread only.
 *
 * Each event is serialized once, straight into one reusable buffer: the
 * seq/time/type head by hand, then the fields (jansson's dump callback for
 * event_publish, our own printer for event_publish_fields, which gives the
 * same text as jansson's compact output), and the ring keeps one exact-size
 * copy. No JSON object is built for the event itself. */
#include "events/events.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "events/webhook.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sbuf.h"

#define EVENT_RING_MAX (1 << 20)

struct event_slot {
    uint64_t seq;
    char *json;
    size_t len;
};

struct event_sub {
    event_cb cb;          /* NULL: removed while a fan-out was running */
    void *arg;
};

struct event_bus {
    uv_loop_t *loop;
    struct event_slot *ring;
    int ring_size;
    int ring_count;       /* slots in use */
    int ring_head;        /* slot of the oldest event */
    uint64_t last_seq;

    struct event_sub *subs;
    int nsubs, subs_cap;
    int fanout_depth;     /* >0 while subscribers are being called */
    bool subs_dirty;      /* some entries have cb == NULL */

    /* Events published from inside a callback wait here so that every
     * subscriber sees events in seq order. */
    struct event_slot *pending;
    int npending, pending_cap;
    /* Texts evicted from the ring while callbacks run: a callback may still
     * hold the pointer it was given, so they are freed when the outermost
     * dispatch ends. */
    char **graveyard;
    int ngrave, grave_cap;

    struct api_webhook *webhook;
    event_webhook_done_cb wh_done;  /* a view's: pushes are explicit (event_bus_webhook_push) */
    void *wh_done_arg;
    bool not_ready;                 /* a view still catching up */
    bool view;                      /* event_bus_make_view */

    sbuf_t sb;            /* the event being serialized */
    int64_t time_sec;     /* wall second time_head was formatted for */
    char time_head[24];   /* "YYYY-MM-DDThh:mm:ss." of time_sec */
};

struct event_bus *event_bus_new(uv_loop_t *loop, int ring_size, const char *webhook_url)
{
    struct event_bus *bus = calloc(1, sizeof(*bus));
    if (!bus) return NULL;
    if (ring_size < 1) ring_size = 1;
    if (ring_size > EVENT_RING_MAX) ring_size = EVENT_RING_MAX;
    bus->loop = loop;
    bus->ring_size = ring_size;
    bus->ring = calloc((size_t)ring_size, sizeof(*bus->ring));
    if (!bus->ring) {
        free(bus);
        return NULL;
    }
    if (webhook_url && *webhook_url) {
        char err[256];
        bus->webhook = api_webhook_new(webhook_url, NULL, err, sizeof(err));
        if (!bus->webhook) {
            log_error("events: webhook %s: %s", webhook_url, err);
            free(bus->ring);
            free(bus);
            return NULL;
        }
        log_info("events: webhook POSTs to %s", webhook_url);
    }
    return bus;
}

int event_bus_set_webhook(struct event_bus *bus, const char *url, char *err, size_t errcap)
{
    struct api_webhook *wh = NULL;
    if (url && *url && !(wh = api_webhook_new(url, NULL, err, errcap))) return -1;
    if (wh && bus->wh_done) api_webhook_set_done(wh, bus->wh_done, bus->wh_done_arg);
    if (bus->webhook) api_webhook_free(bus->webhook);
    bus->webhook = wh;
    if (wh) log_info("events: webhook POSTs to %s", url);
    else log_info("events: no webhook");
    return 0;
}

void event_bus_free(struct event_bus *bus)
{
    if (!bus) return;
    if (bus->webhook) api_webhook_free(bus->webhook);
    for (int i = 0; i < bus->ring_count; i++)
        free(bus->ring[(bus->ring_head + i) % bus->ring_size].json);
    for (int i = 0; i < bus->ngrave; i++) free(bus->graveyard[i]);
    free(bus->graveyard);
    sbuf_free(&bus->sb);
    free(bus->pending);
    free(bus->ring);
    free(bus->subs);
    free(bus);
}

static int grow(void **arr, int *cap, size_t elem)
{
    int ncap = *cap ? *cap * 2 : 16;
    void *n = realloc(*arr, (size_t)ncap * elem);
    if (!n) return -1;
    *arr = n;
    *cap = ncap;
    return 0;
}

static void retire_text(struct event_bus *bus, char *text)
{
    if (!bus->fanout_depth) {
        free(text);
        return;
    }
    if (bus->ngrave == bus->grave_cap &&
        grow((void **)&bus->graveyard, &bus->grave_cap, sizeof(*bus->graveyard))) {
        /* Keeping it would need memory we do not have; leaking one event is
         * safer than freeing text a callback may still read. */
        log_error("events: out of memory, one event text leaked");
        return;
    }
    bus->graveyard[bus->ngrave++] = text;
}

static void ring_store(struct event_bus *bus, uint64_t seq, char *json, size_t len)
{
    int slot;
    if (bus->ring_count < bus->ring_size) {
        slot = (bus->ring_head + bus->ring_count) % bus->ring_size;
        bus->ring_count++;
    } else {                               /* full: overwrite the oldest */
        slot = bus->ring_head;
        retire_text(bus, bus->ring[slot].json);
        bus->ring_head = (bus->ring_head + 1) % bus->ring_size;
    }
    bus->ring[slot] = (struct event_slot){seq, json, len};
}

static void subs_compact(struct event_bus *bus)
{
    int j = 0;
    for (int i = 0; i < bus->nsubs; i++)
        if (bus->subs[i].cb) bus->subs[j++] = bus->subs[i];
    bus->nsubs = j;
    bus->subs_dirty = false;
}

static void dispatch_begin(struct event_bus *bus) { bus->fanout_depth++; }

static void deliver(struct event_bus *bus, uint64_t seq, const char *json, size_t len)
{
    /* By index and re-reading bus->subs: a callback may subscribe (realloc)
     * or unsubscribe (entry cleared, compacted when the outermost ends). */
    for (int i = 0; i < bus->nsubs; i++) {
        struct event_sub s = bus->subs[i];
        if (s.cb) s.cb(seq, json, len, s.arg);
    }
}

static void dispatch_end(struct event_bus *bus)
{
    if (bus->fanout_depth > 1) {
        bus->fanout_depth--;
        return;
    }
    /* Outermost: deliver what callbacks published meanwhile, in order. */
    for (int i = 0; i < bus->npending; i++) {
        struct event_slot e = bus->pending[i];
        deliver(bus, e.seq, e.json, e.len);
    }
    bus->npending = 0;
    bus->fanout_depth = 0;
    if (bus->subs_dirty) subs_compact(bus);
    for (int i = 0; i < bus->ngrave; i++) free(bus->graveyard[i]);
    bus->ngrave = 0;
}

/* ---- serializing ---- */

/* Length of the valid UTF-8 sequence at p (RFC 3629, as jansson checks it:
 * no overlongs, no surrogates, nothing above U+10FFFF), 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    uint32_t u;
    if (c < 0x80) return 1;
    if (c < 0xc2) return 0;
    if (c < 0xe0) n = 2, u = c & 0x1f;
    else if (c < 0xf0) n = 3, u = c & 0x0f;
    else if (c < 0xf5) n = 4, u = c & 0x07;
    else return 0;
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        u = (u << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && u < 0x800) || (n == 4 && u < 0x10000)) return 0;
    if ((u >= 0xd800 && u <= 0xdfff) || u > 0x10ffff) return 0;
    return n;
}

/* Appends s as a JSON string the way jansson's compact dump writes it: '"',
 * '\\' and control characters escaped (\b \f \n \r \t by name, the others as
 * \u00XX), everything else (including '/' and non-ASCII) as is. -1 (nothing
 * appended) when s is not valid UTF-8. */
static int put_string(sbuf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    for (const unsigned char *q = p; q < end;) {
        if (*q < 0x80) { /* ASCII: most of what events carry */
            q++;
            continue;
        }
        size_t n = utf8_seq(q, end);
        if (!n) return -1;
        q += n;
    }
    if (!sbuf_reserve(b, (size_t)(end - p) * 6 + 2)) return 0; /* failed: the caller sees b->failed */
    char *o = b->data + b->len;
    *o++ = '"';
    for (; p < end; p++) {
        unsigned char c = *p;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

static void put_i64(sbuf_t *b, int64_t v)
{
    if (v < 0) {
        sbuf_append_char(b, '-');
        sbuf_append_u64(b, (unsigned long long)0 - (unsigned long long)v);
    } else {
        sbuf_append_u64(b, (unsigned long long)v);
    }
}

/* seq, time and type are the head's; node is the cluster stream's (the
 * writer's id, app/events_stream.h): an event's own field of that name
 * would be a second "node" in the stream's entries. */
static bool reserved_key(const char *key)
{
    return !strcmp(key, "seq") || !strcmp(key, "time") || !strcmp(key, "type") || !strcmp(key, "node");
}

/* {"seq":N,"time":"...","type":"..." into bus->sb (no closing brace).
 * -1 when type is not valid UTF-8. */
static int put_head(struct event_bus *bus, uint64_t seq, const char *type)
{
    sbuf_t *b = &bus->sb;
    sbuf_clear(b);
    sbuf_append(b, "{\"seq\":", 7);
    sbuf_append_u64(b, seq);
    /* ISO-8601 UTC with milliseconds, as clock_iso8601 prints it; the part up
     * to the second is formatted once per second. */
    int64_t ms = clock_wall_ms();
    int64_t sec = ms / 1000;
    if (sec != bus->time_sec || !bus->time_head[0]) {
        char full[40];
        size_t n = clock_iso8601(full, sizeof(full), sec * 1000, 0);
        if (n < 4 || n - 3 >= sizeof(bus->time_head)) return -1;
        memcpy(bus->time_head, full, n - 3);   /* drop "000" */
        bus->time_head[n - 3] = '\0';
        bus->time_sec = sec;
    }
    char frac[4] = {(char)('0' + ms % 1000 / 100), (char)('0' + ms % 100 / 10), (char)('0' + ms % 10), 0};
    sbuf_append(b, ",\"time\":\"", 9);
    sbuf_append_cstr(b, bus->time_head);
    sbuf_append(b, frac, 3);
    sbuf_append(b, "Z\",\"type\":", 10);
    return put_string(b, type);
}

static int dump_to_sbuf(const char *buffer, size_t size, void *data)
{
    sbuf_t *b = data;
    sbuf_append(b, buffer, size);
    return b->failed ? -1 : 0;
}

/* Stores, logs and fans out the event now in bus->sb. */
static uint64_t deliver_text(struct event_bus *bus, uint64_t seq, char *text, size_t len);

static uint64_t publish_text(struct event_bus *bus, uint64_t seq, const char *type)
{
    sbuf_t *b = &bus->sb;
    char *text = b->failed ? NULL : malloc(b->len + 1);
    if (!text) {
        log_error("events: %s: out of memory building the event", type);
        return 0;
    }
    size_t len = b->len;
    memcpy(text, b->data, len + 1);
    bus->last_seq = seq;
    ring_store(bus, seq, text, len);
    log_info("event %s", text);
    if (bus->webhook && !bus->wh_done) api_webhook_push(bus->webhook, seq, text, len);
    return deliver_text(bus, seq, text, len);
}

static uint64_t deliver_text(struct event_bus *bus, uint64_t seq, char *text, size_t len)
{
    if (bus->fanout_depth) {
        if (bus->npending == bus->pending_cap &&
            grow((void **)&bus->pending, &bus->pending_cap, sizeof(*bus->pending))) {
            log_error("events: out of memory, event %llu not delivered to subscribers",
                      (unsigned long long)seq);
            return seq;
        }
        bus->pending[bus->npending++] = (struct event_slot){seq, text, len};
        return seq;
    }
    dispatch_begin(bus);
    deliver(bus, seq, text, len);
    dispatch_end(bus);
    return seq;
}

uint64_t event_publish(struct event_bus *bus, const char *type, json_t *fields)
{
    if (!bus || !type || !*type) {
        log_error("events: publish without bus or type");
        json_decref(fields);
        return 0;
    }
    if (fields && !json_is_object(fields)) {
        log_error("events: %s: fields is not a JSON object, ignored", type);
        json_decref(fields);
        fields = NULL;
    }
    uint64_t seq = bus->last_seq + 1;
    if (put_head(bus, seq, type) != 0) {
        log_error("events: an event type is not valid UTF-8: not published");
        json_decref(fields);
        return 0;
    }
    sbuf_t *b = &bus->sb;
    if (fields && json_object_size(fields)) {
        /* Reserved names are dropped from a copy (the caller may share fields). */
        if (json_object_get(fields, "seq") || json_object_get(fields, "time") || json_object_get(fields, "type") ||
            json_object_get(fields, "node")) {
            json_t *copy = json_copy(fields);
            json_decref(fields);
            fields = copy;
            if (fields) {
                json_object_del(fields, "seq");
                json_object_del(fields, "time");
                json_object_del(fields, "type");
                json_object_del(fields, "node");
            }
        }
    }
    if (fields && json_object_size(fields)) {
        /* The fields object dumps as {...}: its '{' becomes the ',' after type. */
        size_t at = b->len;
        if (json_dump_callback(fields, dump_to_sbuf, b, JSON_COMPACT) != 0 || b->failed || b->len <= at + 1) {
            /* json_dump fails on invalid UTF-8 in a string: the publisher's
             * bug, but it must not cost the daemon. */
            log_error("events: %s: could not serialize (invalid UTF-8 in a field?)", type);
            json_decref(fields);
            return 0;
        }
        b->data[at] = ',';
    } else {
        sbuf_append_char(b, '}');
    }
    json_decref(fields);
    return publish_text(bus, seq, type);
}

/* ,"key":value for each field (event_publish_fields). */
static void put_fields(sbuf_t *b, const struct event_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct event_field *f = &fields[i];
        if (!f->key || reserved_key(f->key)) continue;
        size_t at = b->len;
        sbuf_append_char(b, ',');
        if (put_string(b, f->key) != 0) {
            b->len = at;
            continue;
        }
        sbuf_append_char(b, ':');
        switch (f->kind) {
        case EVENT_FIELD_STR:
            if (put_string(b, f->str ? f->str : "") != 0) {
                /* json_string() refuses invalid UTF-8: the field is left out. */
                b->len = at;
                b->data[at] = '\0';
            }
            break;
        case EVENT_FIELD_INT: put_i64(b, f->num); break;
        case EVENT_FIELD_BOOL: sbuf_append_cstr(b, f->num ? "true" : "false"); break;
        }
    }
}

uint64_t event_publish_fields(struct event_bus *bus, const char *type, const struct event_field *fields, size_t n)
{
    if (!bus || !type || !*type) {
        log_error("events: publish without bus or type");
        return 0;
    }
    uint64_t seq = bus->last_seq + 1;
    if (put_head(bus, seq, type) != 0) {
        log_error("events: an event type is not valid UTF-8: not published");
        return 0;
    }
    sbuf_t *b = &bus->sb;
    put_fields(b, fields, n);
    sbuf_append_char(b, '}');
    return publish_text(bus, seq, type);
}

int event_subscribe(struct event_bus *bus, event_cb cb, void *arg)
{
    for (int i = 0; i < bus->nsubs; i++)
        if (bus->subs[i].cb == cb && bus->subs[i].arg == arg) return 0;
    if (bus->nsubs == bus->subs_cap) {
        int cap = bus->subs_cap ? bus->subs_cap * 2 : 8;
        struct event_sub *n = realloc(bus->subs, (size_t)cap * sizeof(*n));
        if (!n) return -1;
        bus->subs = n;
        bus->subs_cap = cap;
    }
    bus->subs[bus->nsubs++] = (struct event_sub){cb, arg};
    return 0;
}

void event_unsubscribe(struct event_bus *bus, event_cb cb, void *arg)
{
    for (int i = 0; i < bus->nsubs; i++) {
        if (bus->subs[i].cb != cb || bus->subs[i].arg != arg) continue;
        if (bus->fanout_depth) {
            bus->subs[i].cb = NULL;
            bus->subs_dirty = true;
        } else {
            memmove(&bus->subs[i], &bus->subs[i + 1], (size_t)(bus->nsubs - i - 1) * sizeof(*bus->subs));
            bus->nsubs--;
        }
        return;
    }
}

uint64_t event_bus_oldest_seq(const struct event_bus *bus)
{
    return bus->ring_count ? bus->ring[bus->ring_head].seq : 0;
}

int event_bus_get(const struct event_bus *bus, uint64_t seq, const char **json, size_t *len)
{
    if (seq == 0 || seq > bus->last_seq) return 1;
    uint64_t oldest = event_bus_oldest_seq(bus);
    if (!bus->ring_count || seq < oldest) return -1;
    /* seqs in the ring are consecutive, so the offset from the oldest is the index. */
    const struct event_slot *s = &bus->ring[(bus->ring_head + (int)(seq - oldest)) % bus->ring_size];
    *json = s->json;
    *len = s->len;
    return 0;
}

int event_bus_since(struct event_bus *bus, uint64_t since, event_cb cb, void *arg, uint64_t *lost)
{
    uint64_t oldest = event_bus_oldest_seq(bus);
    uint64_t from = since + 1;
    uint64_t missing = 0;
    if (since < bus->last_seq && (!bus->ring_count || from < oldest))
        missing = (bus->ring_count ? oldest : bus->last_seq + 1) - from;
    if (lost) *lost = missing;
    if (from < oldest) from = oldest;
    /* Snapshot the end: a callback that publishes must not extend this replay. */
    uint64_t last = bus->last_seq;
    int n = 0;
    dispatch_begin(bus);
    for (uint64_t s = from; s <= last && bus->ring_count; s++) {
        const char *json;
        size_t len;
        if (event_bus_get(bus, s, &json, &len) != 0) continue;   /* overwritten meanwhile */
        cb(s, json, len, arg);
        n++;
    }
    dispatch_end(bus);
    return n;
}

uint64_t event_bus_published(const struct event_bus *bus) { return bus->last_seq; }
uint64_t event_bus_last_seq(const struct event_bus *bus) { return bus->last_seq; }
int event_bus_ring_size(const struct event_bus *bus) { return bus->ring_size; }

void event_bus_webhook_stats(const struct event_bus *bus, struct event_webhook_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (bus->webhook) api_webhook_stats(bus->webhook, out);
}

void event_bus_set_webhook_done(struct event_bus *bus, event_webhook_done_cb done, void *arg)
{
    bus->wh_done = done;
    bus->wh_done_arg = arg;
    if (bus->webhook) api_webhook_set_done(bus->webhook, done, arg);
}

int event_bus_webhook_push(struct event_bus *bus, uint64_t seq, const char *json, size_t len)
{
    if (!bus->webhook) return -1;
    return api_webhook_push(bus->webhook, seq, json, len);
}

int event_bus_inject(struct event_bus *bus, uint64_t seq, const char *json, size_t len)
{
    if (seq == 0 || seq <= bus->last_seq) return -1;
    int gap = 0;
    if (seq != bus->last_seq + 1 && bus->ring_count) {
        /* Seqs in the ring must be consecutive (event_bus_get): start it again. */
        for (int i = 0; i < bus->ring_count; i++) retire_text(bus, bus->ring[(bus->ring_head + i) % bus->ring_size].json);
        bus->ring_count = 0;
        bus->ring_head = 0;
        gap = 1;
    }
    char *text = malloc(len + 1);
    if (!text) {
        log_error("events: out of memory for stream event %llu", (unsigned long long)seq);
        return -1;
    }
    memcpy(text, json, len);
    text[len] = '\0';
    bus->last_seq = seq;
    ring_store(bus, seq, text, len);
    deliver_text(bus, seq, text, len);
    return gap;
}

void event_bus_set_ready(struct event_bus *bus, int ready) { bus->not_ready = !ready; }
int event_bus_ready(const struct event_bus *bus) { return !bus->not_ready; }
void event_bus_make_view(struct event_bus *bus) { bus->view = true; }
int event_bus_is_view(const struct event_bus *bus) { return bus->view; }

int event_format_fields_body(sbuf_t *b, const char *type, const struct event_field *fields, size_t n)
{
    if (!type || !*type) return -1;
    char when[40];
    size_t wl = clock_iso8601(when, sizeof(when), clock_wall_ms(), 0);
    if (wl < 4 || wl >= sizeof(when)) return -1;
    size_t at = b->len;
    sbuf_append(b, "\"time\":\"", 8);
    sbuf_append(b, when, wl);
    sbuf_append(b, "Z\",\"type\":", 10);
    if (put_string(b, type) != 0) {
        b->len = at;
        return -1;
    }
    put_fields(b, fields, n);
    sbuf_append_char(b, '}');
    return b->failed ? -1 : 0;
}
