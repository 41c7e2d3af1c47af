/* events_stream.h — every node's events in one Redis Cluster stream
 * ([redis] events_stream, issue 16; docs/architecture.md "Events across
 * nodes").
 *
 * Writing: each event the node's own bus publishes is queued (never waited
 * for) as one script call that takes the next global seq (INCR of
 * <prefix>{events}:seq) and XADDs the event, rewritten with that seq, as
 * entry id "<seq>-0" to <prefix>{events}:stream (MAXLEN ~ events_maxlen).
 * One hash tag: both keys live in one slot, so the script is atomic and
 * the stream's id order is the seq order, with no gaps.
 *
 * Reading: the node follows the stream (XREAD, every events_poll_ms when
 * caught up) into a view bus (events.h, event_bus_inject) that the API
 * serves: /events/recent, ?since= and the WebSocket all see the cluster's
 * events with the global seq. At start it catches up from the last
 * ring_size entries, so a replay with since= works across a restart; the
 * view answers 503 until then.
 *
 * Webhook: with [events] webhook set, the view's webhook POSTs entries the
 * node takes from the consumer group "webhook" (XREADGROUP, consumer = the
 * node id), at most events_webhook_batch at once; a 2xx answer XACKs the
 * entry. Every quarter of events_claim_idle_ms a node renews what it holds
 * (XCLAIM by a script, only entries still its own) and takes over entries
 * idle longer than events_claim_idle_ms (XAUTOCLAIM): those of a node that
 * died. After a restart under the same node id it re-reads its own
 * pending entries first.
 *
 * Loop thread only (the webhook's end reports come from its thread through
 * a uv_async). */
#ifndef CASCADE_APP_EVENTS_STREAM_H
#define CASCADE_APP_EVENTS_STREAM_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "base/sbuf.h"
#include "base/timer.h"

struct event_bus;
struct redis_config;
struct events_stream;

/* local: the node's bus (subscribed to); view: a bus made for the API (its
 * webhook, if any, is driven from here). ring: how many entries to catch up
 * at start. NULL with *err (negative errno) when the client cannot start. */
struct events_stream *events_stream_new(uv_loop_t *loop, struct timer_service *timers, const struct redis_config *cfg,
                                        struct event_bus *local, struct event_bus *view, int ring, int *err);
/* Unsubscribes, cancels what waits (events not yet written are lost,
 * logged), closes. The loop must run once more to finish closing. */
void events_stream_free(struct events_stream *s);
void events_stream_stats_json(const struct events_stream *s, json_t *stats);
const char *events_stream_node_id(const struct events_stream *s);

/* Where a writer of its own puts events (registrar/cluster.c: a reap's
 * offline events, written by the script that reaps, atomic with its
 * de-duplication): the stream's and the counter's keys, the MAXLEN cap and
 * this node's id as the head's "node" (as text and as a JSON string).
 * Valid while s lives. */
struct events_stream_target {
    const char *key, *seq_key, *maxlen, *node_id, *node_json;
};
void events_stream_target(const struct events_stream *s, struct events_stream_target *out);
/* The next event of this type that the node's bus publishes is already in
 * the stream (written by such a writer): it is not written again. NULL
 * clears it. For a publish made right after the call, on the loop thread
 * (the bus delivers it within the publish). */
void events_stream_skip_local(struct events_stream *s, const char *type);

/* Pure: where an event text from the local bus goes on after its head
 * {"seq":<digits>, — the offset of the next member, or -1 when the text
 * does not start that way. */
long events_stream_body_offset(const char *json, size_t len);

/* Pure: an entry's text as the write scripts make it in Redis
 * (WRITE_SCRIPT, registrar/cluster.c's STREAM_LUA):
 * {"seq":<seq>,"node":<node_json>,<body>, body an event's text after its
 * {"seq":N, head (events_stream_body_offset, event_format_fields_body),
 * node_json the writer's id as a JSON string. Appended to b: 0, or -1 when
 * memory is short. (The unit tests read what the stream would hold; the
 * peer tests read it from Redis.) */
int events_stream_entry_text(sbuf_t *b, uint64_t seq, const char *node_json, const char *body, size_t len);

#endif
