/* registrar.h — the SIP-facing registrar (RFC 3261 §10.3, RFC 3327 Path).
 *
 * The registrar takes REGISTER requests for our domain from the dispatcher,
 * authenticates them with digest (src/auth), applies their Contacts to the
 * location service (src/registrar/location.h) and answers 200 only once the
 * store has committed the change (group commit), listing every current
 * contact with its remaining expiry. It also turns location changes into
 * events (user.online / user.offline / registration.*), drops the bindings of
 * a lost TCP connection, and serves the /api/v1/registrations and
 * /api/v1/users routes (routes_registrar.c).
 *
 * Wiring (worker.c), in this order:
 *   struct location_callbacks cb;
 *   registrar_location_callbacks(w, &cb);          (arg is the worker)
 *   w->location = location_new(&w->timers, w->store, &cb);
 *   location_load(...);
 *   w->registrar = registrar_new(w);
 *   registrar_api_register(w->registrar, w->api);  (when w->api)
 * then registrar_on_request() from dispatch, registrar_on_conn_lost() from
 * the transport's conn-lost callback, registrar_free() at the end.
 * Loop thread only. */
#ifndef CASCADE_REGISTRAR_REGISTRAR_H
#define CASCADE_REGISTRAR_REGISTRAR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registrar/location.h"
#include "sip/msg.h"
#include "transport/transport.h"

struct worker;
struct txn;
struct api_server;
struct registrar;

struct registrar_stats {
    uint64_t registers;        /* REGISTER requests taken */
    uint64_t ok;               /* answered 200 */
    uint64_t challenged;       /* 401 without credentials */
    uint64_t auth_failed;      /* wrong password, bad/replayed nonce, foreign realm, unknown user */
    uint64_t forbidden;        /* 403: digest user is not the AoR user */
    uint64_t refused;          /* other 4xx/5xx */
    uint64_t locked_out;       /* 403 Too Many Failed Attempts ([auth] max_failures) */
};

/* NULL on allocation failure. Reads w->cfg; uses w->txn, w->auth,
 * w->users, w->location, w->events at request time. */
struct registrar *registrar_new(struct worker *w);
/* Answers still waiting for a store commit are dropped (their callbacks,
 * when they come, only free). NULL is ignored. */
void registrar_free(struct registrar *r);

/* 1 when the request is a REGISTER for our domain (the registrar then
 * answers st, now or after the store commit), 0 otherwise. */
int registrar_on_request(struct registrar *r, struct txn *st, const struct transport_rx *rx);

/* A TCP connection is gone: every binding registered over it is removed
 * (user.offline reason transport-lost at once), or, with [registrar]
 * keep_on_transport_loss, kept but flagged. */
void registrar_on_conn_lost(struct registrar *r, uint64_t conn_id, const char *peer_text);

/* Fills cb so that location changes publish events through w->events.
 * cb->arg is w. Safe to call before registrar_new. */
void registrar_location_callbacks(struct worker *w, struct location_callbacks *cb);

/* Adds GET /api/v1/registrations, DELETE /api/v1/registrations/{user},
 * GET/POST /api/v1/users, DELETE /api/v1/users/{name}
 * (routes_registrar.c). */
void registrar_api_register(struct registrar *r, struct api_server *api);

void registrar_get_stats(const struct registrar *r, struct registrar_stats *out);
/* 1 when rx (a response no transaction took) answers one of our NAT pings. */
int registrar_on_stray_response(struct registrar *r, const struct transport_rx *rx);
/* Adds "registrar": {...counters, bindings, aors} to a /stats object. */
void registrar_stats_json(const struct registrar *r, json_t *stats);

/* ---- helpers shared with the proxy ---- */

/* Whether uri names this node: its host is [sip] domain (any port), or one
 * of our addresses (a listen address, the local host, or the address rx
 * arrived at) with, when check_port, one of our ports (absent = 5060). */
bool registrar_uri_is_local(const struct worker *w, const struct sip_uri *uri, const struct transport_rx *rx,
                            bool check_port);
/* The location key of a SIP URI: its user part, unescaped (one domain per
 * node, so the host is not part of the key). Returns the length, or -1 when
 * there is no user part or it does not fit / is badly escaped. */
int registrar_aor_key(const struct sip_uri *uri, char *out, size_t cap);
/* Whether name is a provisioned user. */
bool registrar_user_known(const struct registrar *r, str_t name);

/* For routes_registrar.c. */
struct worker *registrar_worker(const struct registrar *r);

#endif
