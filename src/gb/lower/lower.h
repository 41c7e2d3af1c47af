/* lower.h — the GB/T 28181 lower platform role (下级): cascade registers
 * itself to one or more upper platforms ([upstream:ID] sections), keeps the
 * registrations alive, serves them its directory (the local channels of this
 * node and, on a middle node, the channels of the devices registered to its
 * upper role), answers their queries and streams video when they ask.
 *
 * Wiring (done by the app, src/app/dispatch.c):
 *   l = gb_lower_new(&cfg.gb, cfg.upstreams, cfg.upstream_count, &local, &deps);
 *                                      when [gb] is on or upstreams are configured
 *   gb_lower_load(l);                  local channels and upstream state from the store
 *   api_routes_gb_lower(api, l);       when the API is on (src/api/routes_gb_lower.h)
 *   gb_lower_start(l);                 start registering to every enabled upstream
 *   dispatch_request: ua_on_request() first (in-dialog BYE), then gb_lower_on_request()
 *   dispatch_conn_lost: gb_lower_on_conn_lost(l, conn_id)
 *   stop: gb_lower_stop(l, done, arg) while the loop still runs (unregisters, stops streams);
 *   free: gb_lower_free(l) once done ran (or the loop ran dry).
 *
 * Per upstream: one registration in flight at most; digest answered by the UA
 * (MD5, with or without qop); refresh at 2/3 of the granted Expires; on
 * failure a retry after an exponential backoff with jitter (2 s doubling to
 * 120 s), so a wrong password never makes a storm; keepalives only while
 * registered, and `keepalive_misses` missed keepalives (no 200 before the
 * next is due, or a non-2xx answer) mean the registration is lost. Events:
 * gb.upstream.registered, gb.upstream.lost (reason), gb.upstream.failed.
 *
 * Everything runs on the owner's loop thread: the timer service's clock is
 * the time, deps->loop carries the media sockets. */
#ifndef CASCADE_GB_LOWER_LOWER_H
#define CASCADE_GB_LOWER_LOWER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "transport/transport.h"

struct config_upstream;
struct event_bus;
struct gb_config;
struct gb_lower;
struct gb_upper;
struct sip_local;
struct store;
struct timer_service;
struct txn;
struct txn_layer;
struct ua;

#define GB_LOWER_MAX_CHANNELS 100000    /* local channels at most */

/* What the role works with; it owns none of them and they outlive it. */
struct gb_lower_deps {
    struct ua *ua;                    /* requests, dialogs, tags */
    struct txn_layer *txn;            /* a CANCEL's INVITE */
    struct timer_service *timers;     /* timers and the time (timer_now) */
    uv_loop_t *loop;                  /* media senders' sockets */
    struct store *store;              /* NULL: nothing loaded or persisted */
    struct event_bus *events;         /* NULL: no events */
};

/* gb: our id, domain, media_ip and default_media ([gb]); ups[0..n_ups): the
 * [upstream:ID] sections; local->host is the media address when [gb]
 * media_ip is empty. Everything needed is copied. NULL (logged) on a bad
 * config (our [gb] id, an upstream id or host not usable) or no memory. */
struct gb_lower *gb_lower_new(const struct gb_config *gb, const struct config_upstream *ups, int n_ups,
                              const struct sip_local *local, const struct gb_lower_deps *deps);
/* Local channels (gb_channels with device_id "") and last known upstream
 * state from the store (if any). 0, or -1 on a store error. */
int gb_lower_load(struct gb_lower *l);
/* Starts registering to every enabled upstream. */
void gb_lower_start(struct gb_lower *l);
/* 1 when the role took the request and answers it: a MESSAGE from one of our
 * upstreams (Query, Control), an INVITE from one for a local channel or, on
 * a middle node, for a channel of a device registered here; a CANCEL of such
 * an INVITE. 0 otherwise (the request is someone else's). */
int gb_lower_on_request(struct gb_lower *l, struct txn *st, const struct transport_rx *rx);
/* A TCP connection is gone: an upstream registered over it is lost (and
 * registers again), streams sent over it stop. */
void gb_lower_on_conn_lost(struct gb_lower *l, uint64_t conn_id);
/* Middle node: the upper role whose devices are relayed (NULL: none). */
void gb_lower_set_upper(struct gb_lower *l, struct gb_upper *g);
/* Middle node across cascade nodes: the cluster's event view ([redis]
 * events_stream; NULL: none), followed for other nodes' device changes,
 * which go upward as catalog Notifies (lower_nodes.c). After
 * gb_lower_set_upper. */
void gb_lower_set_cluster_events(struct gb_lower *l, struct event_bus *view);
/* Sends Expires: 0 to every registered upstream and stops every stream;
 * done(arg) runs once every unregister was answered, or after 2 s. */
void gb_lower_stop(struct gb_lower *l, void (*done)(void *arg), void *arg);
void gb_lower_free(struct gb_lower *l);

/* ---- reload (SIGHUP, POST /api/v1/reload) ---- */

/* Whether an [upstream:ID] section can be used: a disabled one always, an
 * enabled one with a 20-digit id and a numeric host. 0, or -1 with why in err. */
int gb_lower_upstream_check(const struct config_upstream *u, char *err, size_t errcap);
/* The sections now configured (checked with gb_lower_upstream_check):
 * an upstream no longer listed unregisters (Expires: 0) and its streams
 * stop; a new one registers; a changed one registers again — on the same
 * binding when only its timers, charset, password or catalog keys changed,
 * else (host, port, transport, tls_name, domain, enabled) it unregisters and
 * then registers anew. Unchanged ones are not touched. 0, or -ENOSPC when an
 * upstream found no slot (CONFIG_MAX_UPSTREAMS, removed ones count until
 * their unregister ended; logged, the others applied). */
int gb_lower_set_upstreams(struct gb_lower *l, const struct config_upstream *ups, int n);

/* ---- the local directory (API and tests) ---- */

struct gb_lower_channel_in {     /* strings may be NULL ("" / defaults) */
    const char *id;              /* 20 digits */
    const char *name, *parent_id, *status, *manufacturer, *model, *civil_code, *address;
    const char *media;           /* H.264 file to play; "" -> the built-in test clip */
};
/* Adds or replaces a local channel, persists it and sends a catalog Notify
 * (ADD or UPDATE) to registered upstreams. 0, -EINVAL (bad id or field),
 * -ENOMEM, -ENOSPC (too many channels). */
int gb_lower_channel_set(struct gb_lower *l, const struct gb_lower_channel_in *in);
/* Imports n channels at once (one catalog Notify batch). Validated first:
 * on -EINVAL nothing changed and *bad is the index of the refused entry. */
int gb_lower_channel_set_many(struct gb_lower *l, const struct gb_lower_channel_in *in, size_t n, size_t *bad);
/* 0, or -ENOENT. Notifies DEL. */
int gb_lower_channel_delete(struct gb_lower *l, const char *id);
/* The directory served upward: local channels ("device_id": null) and, on a
 * middle node unless local_only, the channels of devices registered here
 * ("device_id": the device, "online"). */
json_t *gb_lower_channels_json(struct gb_lower *l, bool local_only);
/* The relayed part alone (the devices registered here and their channels),
 * as the catalog items this node lists upward, for a middle node's peers
 * (GET /gb/channels?relayed=1[&device=ID], lower_dir.h); only_device: that
 * device's channels. NULL on no memory. */
json_t *gb_lower_relayed_json(struct gb_lower *l, const char *only_device);
/* {"upstreams": [...]}: each upstream's registration state and counters. */
json_t *gb_lower_upstreams_json(const struct gb_lower *l);
/* {"streams": [...]}: the streams sent to upstreams for local channels. */
json_t *gb_lower_streams_json(const struct gb_lower *l);
size_t gb_lower_channel_count(const struct gb_lower *l);

struct gb_lower_stats {
    uint32_t upstreams, registered, streams, relays, channels;
    uint64_t registers_sent, register_failures, keepalives_sent, keepalives_ok, keepalives_missed;
    uint64_t queries, notifies_sent, invites, controls;
};
void gb_lower_get_stats(const struct gb_lower *l, struct gb_lower_stats *out);
/* Adds {"gb_lower": {...}} to an API stats object. */
void gb_lower_stats_json(const struct gb_lower *l, json_t *stats);

#endif
