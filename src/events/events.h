/* events.h — the event bus: every state change a user center cares about
 * (user.online, gb.device.offline, gb.stream.started, ...) is published here
 * once and fans out to every sink: the WebSocket stream, the webhook, the log.
 *
 * Usage (all on the loop thread):
 *
 *   struct event_bus *bus = event_bus_new(loop, 4096, cfg.events.webhook);
 *   json_t *f = json_object();
 *   json_object_set_new(f, "user", json_string("alice"));
 *   event_publish(bus, "user.online", f);          // f is stolen
 *
 * Each event is one JSON object {"seq","time","type", ...fields}. seq starts
 * at 1 and grows by one per event; time is ISO-8601 UTC with milliseconds. The
 * bus keeps the serialized text of the last ring_size events so that a client
 * that reconnects can ask for what it missed (event_bus_since).
 *
 * Publishing never blocks: the log line is one write, subscribers are plain
 * calls, and the webhook (when configured) only gets a copy queued for its own
 * thread (see webhook.h). */
#ifndef CASCADE_EVENTS_EVENTS_H
#define CASCADE_EVENTS_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/sbuf.h"

struct event_bus;

/* A subscriber sees each event as serialized JSON. json is NUL-terminated and
 * owned by the bus: copy what must outlive the call. A callback may publish,
 * subscribe or unsubscribe (itself or others); nested publishes are delivered
 * in order after the current one reached everybody. */
typedef void (*event_cb)(uint64_t seq, const char *json, size_t len, void *arg);

/* webhook_url: NULL or "" for none, else http://host[:port]/path (plain HTTP
 * only: https is refused). ring_size is clamped to [1, 1<<20]. Returns NULL
 * (logged) when the webhook URL is unusable or memory is short. */
struct event_bus *event_bus_new(uv_loop_t *loop, int ring_size, const char *webhook_url);
/* Reload: events from now on go to url (NULL or "": no webhook). The new
 * webhook starts before the old one stops; events still queued for the old
 * URL are dropped (logged). 0, or -1 with why in err and the old webhook kept. */
int event_bus_set_webhook(struct event_bus *bus, const char *url, char *err, size_t errcap);
/* Stops the webhook worker (events still queued for it are dropped, logged)
 * and frees everything. Subscribers must be gone or must not be called again. */
void event_bus_free(struct event_bus *bus);

/* Publishes one event: adds "seq", "time" and "type", then the members of
 * fields (an object; the reference is stolen; NULL allowed; members named seq,
 * time, type or node are ignored: node belongs to the cluster stream, the id
 * of the node that wrote the event, app/events_stream.h; an event that names
 * another node says which in its own name: lost_node, via_node). Returns the
 * event's seq, or 0 when it could not be built (logged; fields is still
 * released). */
uint64_t event_publish(struct event_bus *bus, const char *type, json_t *fields);

/* One field of event_publish_fields. */
enum event_field_kind { EVENT_FIELD_STR, EVENT_FIELD_INT, EVENT_FIELD_BOOL };
struct event_field {
    const char *key;                  /* plain name; not seq, time, type or node */
    enum event_field_kind kind;
    const char *str;                  /* EVENT_FIELD_STR (NULL: "") */
    int64_t num;                      /* EVENT_FIELD_INT; EVENT_FIELD_BOOL: 0 false, else true */
};
#define EVENT_STR(k, v) ((struct event_field){.key = (k), .kind = EVENT_FIELD_STR, .str = (v)})
#define EVENT_INT(k, v) ((struct event_field){.key = (k), .kind = EVENT_FIELD_INT, .num = (int64_t)(v)})
#define EVENT_BOOL(k, v) ((struct event_field){.key = (k), .kind = EVENT_FIELD_BOOL, .num = (v) ? 1 : 0})

/* The same event as event_publish with a JSON object holding these fields in
 * this order (same text, byte for byte), serialized straight into a buffer
 * without building JSON values: the path for hot publishers (the registrar).
 * Keys must be distinct; reserved keys (seq, time, type, node) are ignored.
 * A string that is not valid UTF-8 is left out, as json_string() would
 * refuse it.
 * Returns the seq, or 0 (logged) when the event could not be built. */
uint64_t event_publish_fields(struct event_bus *bus, const char *type, const struct event_field *fields, size_t n);

/* The text event_publish_fields would publish for these fields after its
 * {"seq":N, head — "time":"<now>","type":"<type>",<fields>} — appended to b
 * (byte for byte the same form; the time is now). For a writer that puts
 * an event into the cluster's stream itself (registrar/cluster.c, a reap's
 * offline events). 0, or -1 (type not valid UTF-8, out of memory). */
int event_format_fields_body(sbuf_t *b, const char *type, const struct event_field *fields, size_t n);

/* 0, or -1 on allocation failure. The same (cb, arg) pair may be added once. */
int event_subscribe(struct event_bus *bus, event_cb cb, void *arg);
void event_unsubscribe(struct event_bus *bus, event_cb cb, void *arg);

/* Calls cb for each event the ring still holds with seq > since, oldest first.
 * *lost (optional) is set to how many events after `since` are no longer held
 * (0 when nothing was lost). Returns how many events were replayed. */
int event_bus_since(struct event_bus *bus, uint64_t since, event_cb cb, void *arg, uint64_t *lost);

/* Looks up one event by seq. Returns 0 and sets *json and *len (owned by the bus,
 * valid until the next publish), -1 when that event already left the ring, or
 * 1 when it has not been published yet. */
int event_bus_get(const struct event_bus *bus, uint64_t seq, const char **json, size_t *len);

uint64_t event_bus_published(const struct event_bus *bus);  /* events published so far */
uint64_t event_bus_last_seq(const struct event_bus *bus);   /* 0 before the first event */
uint64_t event_bus_oldest_seq(const struct event_bus *bus); /* oldest held; 0 when empty */
int event_bus_ring_size(const struct event_bus *bus);

struct event_webhook_stats {
    int enabled;
    uint64_t delivered;        /* events answered with 2xx */
    uint64_t failed_attempts;  /* POSTs that failed (connect error, timeout, non-2xx) */
    uint64_t dropped;          /* events dropped because the queue was full */
    uint64_t queued;           /* events waiting, including the one being sent */
};
void event_bus_webhook_stats(const struct event_bus *bus, struct event_webhook_stats *out);

/* ---- a view bus: the cluster-wide stream (app/events_stream.h) ----------
 *
 * The events a view holds come from elsewhere with their seq already given
 * (event_bus_inject), not from event_publish. Its webhook, when it has one,
 * gets only what event_bus_webhook_push hands it, and tells done about each
 * event's end (see webhook.h; done runs on the webhook's thread). */
typedef void (*event_webhook_done_cb)(uint64_t seq, int delivered, void *arg);

/* From now on (and for webhooks set later by event_bus_set_webhook) events
 * reach the webhook only through event_bus_webhook_push, and done hears
 * of each one's end. */
void event_bus_set_webhook_done(struct event_bus *bus, event_webhook_done_cb done, void *arg);
/* Queues one event for the webhook. 0, or -1 when there is no webhook
 * (or memory is short). */
int event_bus_webhook_push(struct event_bus *bus, uint64_t seq, const char *json, size_t len);
/* Adds an event with its own seq (json copied, not logged, not sent to the
 * webhook) and delivers it to the subscribers. seq must be above the last:
 * -1 (nothing done) otherwise. When it is not the next one, the ring is
 * emptied first (the events in between are lost to this view: replays
 * report them as lost) and 1 is returned; else 0. */
int event_bus_inject(struct event_bus *bus, uint64_t seq, const char *json, size_t len);
/* A view is not ready until it caught up with its source: the API answers
 * 503 for replays meanwhile. A bus is ready when made. */
void event_bus_set_ready(struct event_bus *bus, int ready);
int event_bus_ready(const struct event_bus *bus);
/* Marks the bus a view of a stream whose seqs outlive this process: a
 * client's since beyond the last seq is one this node has not read yet
 * (not a restart of the seqs), so the WebSocket waits for it. */
void event_bus_make_view(struct event_bus *bus);
int event_bus_is_view(const struct event_bus *bus);

#endif
