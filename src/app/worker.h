/* worker.h — one worker: a libuv loop and every piece of SIP state it owns.
 *
 * Everything hangs off struct worker (no globals), so a later step can run one
 * worker per core with SO_REUSEPORT. The modules are created in worker_start()
 * in dependency order and freed in reverse by worker_stop().
 *
 * Request flow (architecture.md): transport -> txn -> dispatch_request(), which
 * offers the request to each enabled role in turn (GB lower, GB upper,
 * registrar, proxy); a role returns 1 when it took the request (it then owns
 * answering the server transaction), 0 to pass. What nobody takes is answered
 * by the core: OPTIONS 200, unknown methods 501, known ones 405. */
#ifndef CASCADE_APP_WORKER_H
#define CASCADE_APP_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "app/config.h"
#include "base/histogram.h"
#include "base/overload.h"
#include "base/timer.h"
#include "registrar/digest_check.h"
#include "registrar/location.h"
#include "sip/local.h"
#include "sip/msg.h"
#include "transport/tls.h"
#include "transport/transport.h"
#include "txn/txn.h"

struct txn;
struct txn_layer;
struct store;
struct event_bus;
struct api_server;
struct auth_server;
struct users;
struct location;
struct registrar;
struct subs;
struct offline_msg;
struct proxy;
struct gb_upper;
struct gb_lower;
struct ua;
struct sfu;
struct location_mirror;
struct events_stream;
struct cluster;
struct gb_devmirror;
struct gb_admin_mirror;
struct presence_allow_mirror;

#define WORKER_MAX_OBSERVERS 4

struct worker_stats {
    uint64_t requests_in[SIP_METHOD_COUNT];  /* by method; [0] counts extension methods */
    uint64_t responses_in;
    uint64_t responses_out[7];               /* by class: [1]=1xx ... [6]=6xx */
    uint64_t responses_out_by_code[700];     /* by status code */
    uint64_t bad_requests;                   /* answered 400 by the core */
};

struct worker {
    struct config cfg;                       /* as started; a reload updates the keys it applies */
    const char *config_path;                 /* -c FILE, read again by a reload; NULL: embedded defaults */
    uv_loop_t *loop;
    struct timer_service timers;
    uv_timer_t timer_handle;                 /* drives timers */
    uv_prepare_t prepare_handle;             /* re-arms timer_handle each iteration; idle from here */
    uv_check_t idle_check;                   /* ... to here: the loop's time waiting in poll */
    uint64_t idle_ns, idle_from_ns;
    uv_timer_t stop_timer;                   /* finishes a stop on a fresh loop turn */
    uv_signal_t sigint, sigterm, sighup;
    bool started, stopping;
    uint64_t tag_state;                      /* PRNG state for To/From tags */

    struct transport *transport;
    struct tls_context *tls;                 /* [tls]: serves tls: listeners when it has a cert; outgoing TLS */
    struct txn_layer *txn;
    struct store *store;
    struct event_bus *events;
    /* [redis] events_stream: the cluster's events (the API and the webhook
     * serve this view, fed by events_stream); both NULL when off. */
    struct event_bus *events_view;
    struct events_stream *events_stream;
    struct api_server *api;
    struct auth_server *auth;
    struct users *users;
    struct location *location;
    struct registrar *registrar;
    struct proxy *proxy;
    struct subs *subs;                       /* [subscriptions]: the notifier; NULL when off */
    struct offline_msg *offline;             /* [messages] offline: kept MESSAGEs; NULL when off */
    struct ua *ua;
    struct gb_upper *gb_upper;
    struct gb_lower *gb_lower;
    struct sfu *sfu;                         /* [media]: rooms, WHIP, WHEP; NULL when off */
    struct location_mirror *mirror;          /* [redis] mirror_bindings: NULL when off */
    struct cluster *cluster;                 /* [redis] cluster_route: NULL when off */
    struct users_mirror *users_mirror;      /* [redis] mirror_users: NULL when off */
    struct reg_nodes *reg_nodes;         /* the reg package across nodes (cluster_route and the notifier): NULL when off */
    struct dialog_mirror *dialog_mirror; /* the dialog package across nodes (cluster_route and the notifier): NULL when off */
    struct presence_mirror *presence_mirror; /* [redis] mirror_presence (and the notifier): NULL when off */
    struct subs_takeover *subs_takeover;     /* mirror_presence with cluster_route: a dead node's subscriptions */
    struct mwi_mirror *mwi_mirror;          /* [redis] mirror_mwi (and the notifier): NULL when off */
    struct presence_allow_mirror *allow_mirror; /* [redis] mirror_presence_allow (and the notifier): NULL when off */
    struct gb_admin_mirror *gb_admin_mirror; /* [redis] mirror_gb_admin (and [gb] enabled): NULL when off */
    struct gb_devmirror *gb_mirror;          /* [redis] mirror_gb_devices (and [gb] enabled): NULL when off */
    /* The registrar's one observer slot fans out to these (dispatch.c): the
     * notifier's and the Redis mirror's callbacks. */
    struct location_callbacks observers[WORKER_MAX_OBSERVERS];
    size_t nobservers;

    struct sip_local local;                  /* who we are, as roles get it: realm ([auth] realm, else
                                                the domain), Via/Contact host and ports from the
                                                first listeners, domain, user agent */
    struct txn_admission admission;          /* worker_overload_refuse, as roles get it */
    struct digest_checker digest;            /* the proxy's digest checks */
    struct worker_stats stats;
    struct overload overload;                /* admission of new registrations */
    uv_timer_t lag_timer;                    /* samples the loop's lag for it */
    uint64_t lag_last_ns, idle_last_ns, cpu_last_ns;
    struct histogram loop_lag;               /* every lag sample, for the metrics */
    /* Request received -> our first final response sent: [0] REGISTER, [1] INVITE */
    struct histogram handling[2];
    uint64_t overload_log_at, overload_log_skipped;
    /* worker_reply_stateless's warnings: at most REFUSAL_LOG_PER_S a second */
    uint64_t refusal_log_ms;
    uint32_t refusal_log_count;
    uint64_t refusal_log_suppressed;
};

/* Starts every module from w->cfg on loop. 0, or -1 (logged). */
int worker_start(struct worker *w, uv_loop_t *loop);
/* Begins a clean shutdown (unregister upstreams, close sockets, flush the store). */
void worker_stop(struct worker *w);
/* Frees what worker_stop left once the loop has run dry. */
void worker_free(struct worker *w);
/* Re-arms the libuv timer at the timer service's next deadline; modules call
 * it after timer_start() when the new deadline may be the earliest. */
void worker_timers_changed(struct worker *w);
uint64_t worker_now_ms(const struct worker *w);
/* Copies domain, realm, local host and ports, user agent into w->local. */
void worker_fill_local(struct worker *w);

/* Overload control for a REGISTER that would create a new registration (a
 * SIP AoR without bindings, a GB device not online): true when it was
 * refused — 503 with a random Retry-After sent statelessly on st, logged
 * (rate-limited) with the sender; false: serve it. Call it before any digest
 * or store work. */
bool worker_overload_refuse(struct worker *w, struct txn *st);
bool worker_overload_busy(struct worker *w); /* background work should wait (overload_busy) */

/* reload.c: SIGHUP and POST /api/v1/reload (see reload.h). */
int worker_reload(struct worker *w, json_t **report, char *err, size_t errcap);

/* A fresh random tag (16 hex digits) for To/From (RFC 3261 §19.3). */
void worker_new_tag(struct worker *w, char out[17]);

/* dispatch.c: the roles and the core's own answers. */
int dispatch_start_roles(struct worker *w);
/* The GB lower role from w->cfg ([gb], the upstreams): at start, or at a
 * reload that adds the first upstream. 0, or -1 (logged). */
int dispatch_start_gb_lower(struct worker *w);
/* Stops the roles (BYE streams, unregister from upstreams); done(arg) runs
 * once they are finished (at once, or after the unregistrations). */
void dispatch_stop_roles(struct worker *w, void (*done)(void *arg), void *arg);
void dispatch_free_roles(struct worker *w);
void dispatch_request(struct worker *w, struct txn *st, const struct transport_rx *rx);
void dispatch_ack(struct worker *w, const struct transport_rx *rx);
void dispatch_stray_response(struct worker *w, const struct transport_rx *rx);
void dispatch_server_terminated(struct worker *w, struct txn *st);
void dispatch_conn_lost(struct worker *w, uint64_t conn_id, const char *peer_text);
void dispatch_stats(struct worker *w, json_t *stats);
/* Sends a stateless response to a request that did not make a transaction
 * (a malformed request: 400 with the parse error as reason). */
void worker_reply_stateless(struct worker *w, const struct transport_rx *rx, int status, const char *reason);
/* Counts a response leaving (called by the txn send hook). */
void worker_count_response_out(struct worker *w, const char *data, size_t len);

#endif
