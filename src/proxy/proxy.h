/* proxy.h — the stateful proxy and the redirect server (RFC 3261 §16, §8.3).
 *
 * For a request to our domain the proxy looks the Request-URI's user up in
 * the location service and forks it in parallel to every binding, each
 * branch its own client transaction sent over the binding's flow (the
 * TCP/TLS/WS/WSS connection it registered over, RFC 5626 §5.3; a WebSocket
 * client, whose Contact host is a made-up .invalid name, is reached that
 * way or not at all: 480 when no binding is reachable). Towards a client
 * only its flow reaches (WS/WSS, or outbound with ;ob / reg-id) our
 * Record-Route carries a flow token (flow_token.c): a request coming back
 * with it in its Route goes over that flow (403 when the token was
 * altered, 430 Flow Failed when the flow is gone). sips: (RFC 5630) means
 * TLS/WSS on every hop: a sips: request that arrived over anything else,
 * or that has no binding with a sips: Contact over TLS/WSS, or no secure
 * next hop, is answered 480 with Warning 380 "SIPS Not Allowed" (§5.3);
 * its Record-Route entries are sips: URIs. IPv6 hosts are bracketed in
 * every header we write. It record-routes
 * dialog-creating requests, routes in-dialog requests by their Route set
 * (loose routing, §16.4), checks Max-Forwards (483), loops (482) and
 * Proxy-Require (420), forwards provisional responses, picks the best final
 * response (§16.7: 2xx at once and CANCEL the rest, 6xx cancels the rest,
 * else the lowest class, 401/407 challenges aggregated), forwards CANCEL and
 * answers 408 when timer C ([proxy] invite_timeout) fires; a non-INVITE
 * request gets its best answer (408 when all branches are silent) at [proxy]
 * non_invite_timeout_ms, before the sender's own timer F. Each source IP may
 * send [proxy] pike_limit requests per pike_window (pike.h; 503 beyond,
 * trusted sources exempt), and a user's fan-out is at most [registrar]
 * max_contacts branches. ACKs for 2xx and
 * 2xx retransmissions are forwarded statelessly. Requests for other domains
 * are forwarded (numeric host or a DNS A/AAAA lookup) when [proxy]
 * allow_foreign is on, else refused with 403.
 *
 * A MESSAGE outside a dialog whose user has no binding, or whose branches
 * all failed (408, 480, 503), is offered to deps.offline first (offline
 * messages: 202 when kept).
 *
 * Edge mode ([proxy] edge_registrar, RFC 3327, RFC 5626 §5.1): the node
 * holds its clients' flows and another node (the edge registrar) holds the
 * location. A REGISTER for our domain is forwarded there with our Path
 * <sip:TOKEN@us;transport=..;lr;ob> (TOKEN names the flow it came in on,
 * signed like the flow tokens) and Supported: path, not record-routed and
 * not challenged here; other requests for our domain go there too,
 * record-routed with a token facing the client. A request whose top Route
 * is our Path (or Record-Route) URI goes over the flow its token names:
 * 430 Flow Failed when that flow is gone, 403 for a token we did not make.
 *
 * With [proxy] mode = redirect it answers 302 with the bindings as Contacts
 * instead (404/480 the same way).
 *
 * Wiring (src/app/dispatch.c):
 *   struct proxy_deps d = {configs, local, collaborators, callbacks};
 *   proxy = proxy_new(&d);                        after the registrar and the UA
 *   dispatch_request:  ... registrar_on_request(), then proxy_on_request()
 *   dispatch_ack:           proxy_on_ack()
 *   dispatch_stray_response: proxy_on_stray_response()
 *   txn ops.on_server_terminated: proxy_on_server_terminated()
 *   proxy_free() before txn_layer_free().
 * Loop thread only. */
#ifndef CASCADE_PROXY_PROXY_H
#define CASCADE_PROXY_PROXY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "base/sbuf.h"
#include "registrar/digest_check.h"
#include "sip/msg.h"
#include "transport/transport.h"

struct auth_config;
struct cluster;
struct location;
struct proxy;
struct proxy_config;
struct registrar_config;
struct sip_config;
struct sip_local;
struct store;
struct timer_service;
struct txn;
struct txn_layer;
struct ua;
struct users;

#define PROXY_MAX_BRANCHES 32       /* targets forked per request */

struct proxy_stats {
    uint64_t requests;              /* requests taken */
    uint64_t forwarded;             /* branches sent */
    uint64_t redirected;            /* 302 answered */
    uint64_t not_found;             /* 404 */
    uint64_t unavailable;           /* 480 */
    uint64_t loops;                 /* 482 */
    uint64_t too_many_hops;         /* 483 */
    uint64_t refused;               /* 403/420/416/other refusals */
    uint64_t challenged;            /* 407 without credentials (or a stale nonce) */
    uint64_t auth_failed;           /* 407 again: wrong password, unknown user, replayed nonce; 403 From mismatch */
    uint64_t cancels;               /* CANCELs matched to a proxied INVITE */
    uint64_t timer_c;               /* INVITEs ended by timer C */
    uint64_t acks_forwarded;        /* ACKs for 2xx */
    uint64_t stray_forwarded;       /* 2xx retransmissions forwarded */
    uint64_t dns_lookups, dns_failures;
    uint64_t non_invite_timeouts;   /* non-INVITE requests answered at their deadline */
    uint64_t pike_refused;          /* requests over a source's pike_limit (503) */
    uint64_t cluster_lookups;       /* local misses asked of the cluster ([redis] cluster_route) */
    uint64_t cluster_forwarded;     /* requests forwarded to another node */
    uint64_t cluster_fallbacks;     /* lookups failed or refused: answered as without the cluster */
    uint64_t from_peers;            /* requests marked as forwarded by a peer node */
    uint64_t edge_registers;        /* REGISTERs forwarded to [proxy] edge_registrar with our Path */
    uint64_t edge_outbound;         /* other requests from our clients forwarded to it */
    uint64_t path_routed;           /* requests sent over a client's flow named by our Path/Record-Route token */
    uint64_t flow_failed;           /* 430 Flow Failed: the flow a token named is gone (RFC 5626 §5.3) */
    uint64_t flow_failed_removed;   /* bindings removed: their Path's edge answered 430 (RFC 5626 §5.3) */
    uint32_t calls_live;            /* response contexts alive */
};

/* Checking a request's digest credentials (registrar/digest_check.h): the
 * proxy asks, whoever owns the nonces, users and failure counts answers.
 * Each function has the meaning of its digest_check_* namesake; arg is
 * passed back. */
struct proxy_digest {
    enum digest_check (*check)(void *arg, const struct transport_rx *rx, enum sip_hdr hdr,
                               struct digest_check_result *out);
    int (*challenge)(void *arg, bool proxy, bool stale, const struct transport_rx *rx, sbuf_t *b);
    void (*consume)(void *arg, struct sip_msg *m, enum sip_hdr hdr);
    void *arg;
};

/* What the proxy tells an observer about the calls it forwards (the
 * dialog event package, RFC 4235), with no knowledge of who watches:
 *   INVITE    an INVITE (initial or not) is being forked: req is it;
 *   RESPONSE  a response to it goes upstream: 1xx, the first 2xx, or the
 *             final failure; resp is it (NULL when the proxy made the
 *             final itself), status what was sent, cancelled/timed_out
 *             when a CANCEL or timer C ended the call;
 *   BYE       a BYE inside a dialog is being forwarded: req is it.
 * req of RESPONSE is the INVITE as received. */
enum proxy_call_what { PROXY_CALL_INVITE, PROXY_CALL_RESPONSE, PROXY_CALL_BYE };
struct proxy_call_event {
    enum proxy_call_what what;
    const struct sip_msg *req;
    const struct sip_msg *resp;
    int status;
    bool cancelled, timed_out;
};

/* What the proxy works with. The configs are copied; everything else is
 * borrowed and must outlive the proxy. */
struct proxy_deps {
    const struct proxy_config *cfg;          /* [proxy] */
    const struct sip_config *sip_cfg;        /* [sip] t1_ms (timer defaults) */
    const struct auth_config *auth_cfg;      /* [auth] match_user */
    const struct registrar_config *reg_cfg;  /* [registrar] max_contacts bounds the fan-out */
    const struct sip_local *local;           /* Via/Record-Route host and ports, Server value;
                                                read at each message */
    struct txn_layer *txn;                   /* client transactions, CANCEL matching */
    /* Stateless sends (ACK for 2xx, stray 2xx): one datagram or message to
     * dest (the app: transport_send; tests: a recorder). NULL: not sent. */
    int (*send)(void *arg, struct transport_dest *dest, const void *data, size_t len);
    void *send_arg;
    struct timer_service *timers;            /* the clock (timer_now), timer C, deadlines */
    uv_loop_t *loop;                         /* DNS lookups (uv_getaddrinfo) */
    struct location *location;               /* targets; NULL: nobody is registered */
    /* Optional: where the token key is kept when [proxy] edge_secret is
     * unset (NULL: a random key per run). Read and written in proxy_new. */
    struct store *store;
    struct users *users;                     /* 480 vs 404; NULL: no user is known */
    struct ua *ua;                           /* To tags of our answers */
    struct proxy_digest digest;              /* [proxy] authenticate */
    /* Whether uri names this node (registrar_uri_is_local's meaning):
     * the host is the domain, or one of our addresses with, when
     * check_port, one of our ports. rx may be NULL. */
    bool (*uri_is_local)(void *arg, const struct sip_uri *uri, const struct transport_rx *rx, bool check_port);
    void *uri_is_local_arg;
    /* Optional: a response the proxy sends outside a transaction (a stray
     * 2xx forwarded), for the node's response counters. */
    void (*on_response_out)(void *arg, const char *data, size_t len);
    void *on_response_out_arg;
    /* Optional: offline messages (src/subs/offline_msg.h). A MESSAGE
     * outside a dialog for a local user aor who has no binding, or whose
     * branches all ended 408, 480, 503 or unanswered, is offered here; a
     * non-zero return is the status answered instead (202 kept, or a
     * refusal with *reason), 0 lets the usual answer go. */
    int (*offline)(void *arg, const struct sip_msg *req, const char *aor, const char **reason);
    void *offline_arg;
    /* Optional: the calls forwarded (struct proxy_call_event); called on
     * the loop thread, must not re-enter the proxy. */
    void (*on_call)(void *arg, const struct proxy_call_event *ev);
    void *on_call_arg;
    /* Optional ([redis] cluster_route, registrar/cluster.h): a request for
     * a local user with no binding here is looked up in Redis (the request
     * waits, bounded) and forwarded to the live nodes holding a binding,
     * record-routed, with the peer mark in their Route; a request carrying
     * that mark is routed to local bindings only, and is not challenged
     * when it comes from a live node's address. NULL: off (nothing of it
     * on the path of a message). Must outlive the proxy, or be freed
     * before it (its waiting lookups then end with the local answer). */
    struct cluster *cluster;
};

/* NULL on allocation failure. */
struct proxy *proxy_new(const struct proxy_deps *d);
/* Detaches every client transaction and frees every context; call before
 * txn_layer_free(). Pending DNS lookups finish on the loop and free
 * themselves. NULL is ignored. */
void proxy_free(struct proxy *p);

/* 1 when the proxy took the request (it then answers st, now or later), 0 to
 * let the core answer (requests addressed to this node itself: OPTIONS
 * without a user part, in-dialog requests for a dialog we are in, CANCEL of
 * a transaction that is not ours). */
int proxy_on_request(struct proxy *p, struct txn *st, const struct transport_rx *rx);
/* An ACK for a 2xx (matched no server transaction): routed statelessly. */
void proxy_on_ack(struct proxy *p, const struct transport_rx *rx);
/* A response matching no client transaction: a 2xx to INVITE whose top Via
 * is ours is forwarded statelessly to the next Via; others are dropped. */
void proxy_on_stray_response(struct proxy *p, const struct transport_rx *rx);
/* st is being freed: forget it if a response context holds it. */
void proxy_on_server_terminated(struct proxy *p, struct txn *st);

/* Whether the proxy takes rx before the registrar and the event notifier
 * do: edge mode ([proxy] edge_registrar) and a REGISTER for our domain, or
 * a request outside a dialog for a user of our domain (they all go to the
 * registrar node behind us). */
bool proxy_edge_takes(const struct proxy *p, const struct transport_rx *rx);

/* Replaces deps.cluster (NULL: routing between nodes off from now on;
 * before freeing the cluster). */
void proxy_set_cluster(struct proxy *p, struct cluster *c);

void proxy_get_stats(const struct proxy *p, struct proxy_stats *out);
/* Adds "proxy": {...} to a /stats object. */
void proxy_stats_json(const struct proxy *p, json_t *stats);

#endif
