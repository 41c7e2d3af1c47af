/* registrar.h — the SIP-facing registrar (RFC 3261 §10.3, RFC 3327 Path).
 *
 * The registrar takes REGISTER requests for our domain from the dispatcher,
 * authenticates them with digest (src/auth), applies their Contacts to the
 * location service (src/registrar/location.h) and answers 200 only once the
 * store has committed the change (group commit), listing every current
 * contact with its remaining expiry. It also turns location changes into
 * events (user.online / user.offline / registration.*, their transport
 * udp/tcp/tls/ws/wss), drops the bindings of a lost TCP/TLS/WS connection,
 * binds a sips: Contact only from a REGISTER that came over TLS/WSS with a
 * sips: Request-URI and Path (else 400, RFC 5630 §5.2), answers an outbound
 * REGISTER with Require: outbound (RFC 5626 §6), and answers the queries the API routes
 * (src/api/routes_registrar.c) make through the functions at the end.
 *
 * Wiring (src/app), in this order:
 *   struct registrar_deps d = {config, collaborators, location = NULL};
 *   r = registrar_new(&d);
 *   struct location_callbacks cb;
 *   registrar_location_callbacks(r, &cb);           (cb.arg is r)
 *   loc = location_new(timers, store, &cb); location_load(...);
 *   registrar_set_location(r, loc);
 *   api_routes_registrar(api, r)                    (src/api/routes_registrar.h)
 * then registrar_on_request() from dispatch, registrar_on_conn_lost() from
 * the transport's conn-lost callback, registrar_stop() when the node starts
 * to stop, registrar_free() at the end (before the location service).
 * Loop thread only. */
#ifndef CASCADE_REGISTRAR_REGISTRAR_H
#define CASCADE_REGISTRAR_REGISTRAR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registrar/registrar_config.h"
#include "base/timer.h"
#include "registrar/location.h"
#include "sip/local.h"
#include "sip/msg.h"
#include "transport/transport.h"
#include "txn/txn.h"
#include "ua/ua.h"

struct auth_server;
struct event_bus;
struct users;
struct registrar;

/* What the registrar works with. The configs are copied; the rest is
 * borrowed and must outlive the registrar. */
struct registrar_deps {
    const struct registrar_config *cfg;   /* [registrar] */
    const struct auth_config *auth_cfg;   /* [auth] require_auth, match_user */
    const struct sip_config *sip_cfg;     /* [sip] listen: which addresses are ours */
    const struct sip_local *local;        /* domain, realm, host, ports, Server value */
    struct location *location;            /* may be NULL here and given later (registrar_set_location) */
    struct users *users;                  /* NULL: no user is known */
    struct auth_server *auth;             /* nonces, digest verification, throttle */
    struct event_bus *events;             /* NULL: no events */
    struct ua *ua;                        /* To tags, NAT ping tags */
    struct timer_service *timers;         /* the clock, the NAT ping timer */
    const struct txn_admission *admission; /* overload: new registrations; NULL admits all */
    ua_send_fn send;                      /* NAT pings: one datagram from our socket */
    void *send_arg;
    /* [proxy] trusted_edges: REGISTERs an edge forwarded count for the
     * digest failure limits by the phone's address (digest_edge_peer). */
    const struct config_cidr *trusted_edges;
    int trusted_edges_count;
};

struct registrar_stats {
    uint64_t registers;        /* REGISTER requests taken */
    uint64_t ok;               /* answered 200 */
    uint64_t challenged;       /* 401 without credentials */
    uint64_t auth_failed;      /* wrong password, bad/replayed nonce, foreign realm, unknown user */
    uint64_t forbidden;        /* 403: digest user is not the AoR user */
    uint64_t refused;          /* other 4xx/5xx */
    uint64_t locked_out;       /* 403 Too Many Failed Attempts ([auth] max_failures) */
};

/* NULL on allocation failure. */
struct registrar *registrar_new(const struct registrar_deps *d);
/* The location service to work on (made with registrar_location_callbacks);
 * applies [registrar] max_contacts to it. */
void registrar_set_location(struct registrar *r, struct location *loc);
/* The node is stopping: store commits that arrive from now on send nothing
 * (the transport is going away). */
void registrar_stop(struct registrar *r);
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

/* Fills cb so that location changes publish events (and reach the NAT
 * pings). cb->arg is r. */
void registrar_location_callbacks(struct registrar *r, struct location_callbacks *cb);
/* One more party told of each binding change, after the registrar's own
 * events (the notifier of reg subscriptions, src/subs): its binding_*
 * members are called with the same arguments and the same rules as
 * location callbacks. obs is copied; NULL removes it. */
void registrar_set_observer(struct registrar *r, const struct location_callbacks *obs);
/* fn(arg, aor) right after a REGISTER was answered 200 while the AoR has a
 * binding (a new one or a refresh; not a removal or a fetch): the moment
 * the UA is known to listen (offline messages, src/subs/offline_msg.h).
 * fn NULL removes the hook. */
void registrar_set_on_registered(struct registrar *r, void (*fn)(void *arg, const char *aor), void *arg);

/* A gate between the store's commit and the 200 of a REGISTER that leaves
 * the AoR with bindings (durable writes, location_mirror_sync): gate(arg,
 * aor, done, p) returns 1 to answer at once, a negative errno to answer 500,
 * or 0 and calls done(p, status) once later: 0 answers 200, anything else
 * 500 with Retry-After (the binding stays stored here). NULL removes it
 * (before what arg names is freed). */
typedef int (*registrar_commit_gate)(void *arg, const char *aor, void (*done)(void *p, int status), void *p);
void registrar_set_commit_gate(struct registrar *r, registrar_commit_gate gate, void *arg);

void registrar_get_stats(const struct registrar *r, struct registrar_stats *out);
/* 1 when rx (a response no transaction took) answers one of our NAT pings. */
int registrar_on_stray_response(struct registrar *r, const struct transport_rx *rx);
/* Adds "registrar": {...counters, bindings, aors} to a /stats object. */
void registrar_stats_json(const struct registrar *r, json_t *stats);

/* ---- helpers shared with the proxy ---- */

/* Whether uri names this node: its host is [sip] domain (any port), or one
 * of our addresses (a listen address, the local host, or the address rx
 * arrived at) with, when check_port, one of our ports (absent = 5060). */
bool registrar_uri_is_local(struct registrar *r, const struct sip_uri *uri, const struct transport_rx *rx,
                            bool check_port);
/* The location key of a SIP URI: its user part, unescaped (one domain per
 * node, so the host is not part of the key). Returns the length, or -1 when
 * there is no user part or it does not fit / is badly escaped. */
int registrar_aor_key(const struct sip_uri *uri, char *out, size_t cap);
/* Whether name is a provisioned user. */
bool registrar_user_known(const struct registrar *r, str_t name);

/* ---- for the API (src/api/routes_registrar.c) ---- */

/* The location service (NULL before registrar_set_location), the users
 * table (may be NULL) and who we are. */
struct location *registrar_location(const struct registrar *r);
struct users *registrar_users(const struct registrar *r);
const struct sip_local *registrar_local(const struct registrar *r);
/* Now on the clock binding expiries are kept on (ms). */
uint64_t registrar_now(const struct registrar *r);

#endif
