/* upper.h — the GB/T 28181 upper platform role (上级): devices and lower
 * platforms register here, send keepalives, answer catalog / info / status /
 * record queries, take PTZ commands and stream live video on request.
 *
 * Wiring (done by the app, see worker.h):
 *   g = gb_upper_new(w, ua);            when cfg.gb.enabled, after store/events/txn/ua exist
 *   gb_upper_load(g);                   restore devices and channels from the store
 *   gb_upper_api_register(g, w->api);   when the API is on
 *   dispatch_request: ua_on_request() first (BYE of a stream), then gb_upper_on_request()
 *   dispatch_conn_lost: gb_upper_on_conn_lost(g, conn_id)
 *   stop: gb_upper_stop(g) (BYE every stream, close media sockets) while the loop still runs;
 *   free: gb_upper_free(g) once the loop ran dry.
 *
 * State (devices, channels, streams) lives in memory and is authoritative;
 * the store keeps devices and channels across restarts. Timers are on the
 * worker's timer service: one per device (registration expiry and keepalive
 * deadline), one per pending query, one per stream (RTP silence). */
#ifndef CASCADE_GB_UPPER_UPPER_H
#define CASCADE_GB_UPPER_UPPER_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/transport.h"

struct worker;
struct ua;
struct txn;
struct api_server;
struct gb_upper;

/* NULL (logged) on a bad [gb] config (id or domain not GB digits) or no memory. */
struct gb_upper *gb_upper_new(struct worker *w, struct ua *ua);
/* Restores devices and channels from w->store (if any). Registrations still
 * valid over UDP come back online (their keepalive deadline restarts now);
 * TCP ones and expired ones are marked offline. 0, or -1 on a store error. */
int gb_upper_load(struct gb_upper *g);
/* 1 when the role took the request (and answers it): REGISTER for our GB id
 * or from a GB id it handles, MESSAGE with a MANSCDP body from one. */
int gb_upper_on_request(struct gb_upper *g, struct txn *st, const struct transport_rx *rx);
/* A TCP connection went away: devices registered over it go offline. */
void gb_upper_on_conn_lost(struct gb_upper *g, uint64_t conn_id);
/* Registers the /api/v1/gb/... routes (src/api/routes_gb.c). */
void gb_upper_api_register(struct gb_upper *g, struct api_server *api);
/* BYE for every stream, media sockets closed, pending API requests answered
 * 503. Call while the loop still runs. */
void gb_upper_stop(struct gb_upper *g);
void gb_upper_free(struct gb_upper *g);

struct gb_upper_stats {
    uint32_t devices, online, streams, pending_queries;
    uint64_t registers, keepalives, messages, refused;
    uint64_t foreign_messages;     /* MESSAGEs in a device's name from another address/flow (403) */
    uint64_t nonce_replays;        /* REGISTERs re-using a device's nonce from another address (401) */
    uint64_t catalog_items_dropped; /* catalog items with an id that is not a GB id */
    uint32_t catalog_queued, catalog_in_flight; /* catalog-on-register: waiting, started */
};
void gb_upper_get_stats(const struct gb_upper *g, struct gb_upper_stats *out);

#endif
