/* proxy.h — the stateful proxy and the redirect server (RFC 3261 §16, §8.3).
 *
 * For a request to our domain the proxy looks the Request-URI's user up in
 * the location service and forks it in parallel to every binding, each
 * branch its own client transaction sent over the binding's flow (the TCP
 * connection it registered over, RFC 5626 style). It record-routes
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
 * With [proxy] mode = redirect it answers 302 with the bindings as Contacts
 * instead (404/480 the same way).
 *
 * Wiring (worker.c / dispatch.c):
 *   w->proxy = proxy_new(w);                     after registrar_new
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

#include "transport/transport.h"

struct worker;
struct txn;
struct proxy;

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
    uint32_t calls_live;            /* response contexts alive */
};

/* NULL on allocation failure. Reads w->cfg ([proxy], [sip]). */
struct proxy *proxy_new(struct worker *w);
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

void proxy_get_stats(const struct proxy *p, struct proxy_stats *out);
/* Adds "proxy": {...} to a /stats object. */
void proxy_stats_json(const struct proxy *p, json_t *stats);

#endif
