/* digest_check.h — checking a request's digest credentials against our users
 * (RFC 3261 §22, RFC 7616), for the registrar (Authorization, 401) and the
 * proxy (Proxy-Authorization, 407).
 *
 *   struct digest_checker dc;
 *   digest_checker_init(&dc, &cfg->auth, local, users, auth, events);
 *   struct digest_check_result res;
 *   switch (digest_check_request(&dc, rx, SIP_HDR_AUTHORIZATION, &res)) {
 *   case DIGEST_CHECK_OK: ... res.user is the authenticated user ...
 *   case DIGEST_CHECK_NONE: case DIGEST_CHECK_STALE: case DIGEST_CHECK_FAILED:
 *       challenge (stale=true for STALE) with digest_check_challenge(); log res.why when res.log
 *   case DIGEST_CHECK_LOCKED: 403 Too many failed attempts, log res.why when res.log
 *   case DIGEST_CHECK_BAD_HEADER: case DIGEST_CHECK_URI_MISMATCH: 400, log res.why when res.log
 *   }
 * Failed attempts count against [auth] max_failures / max_failures_user
 * (auth/throttle.h); they are published as auth.failed events (fields user,
 * realm, remote, transport, reason, count), at most one per user+source per
 * [auth] failure_window, and res.log is set only as often, so an attack
 * cannot flood the log; other refusals (stale, bad header, URI mismatch)
 * always set res.log and the caller prints them with log_*_rl (base/log.h),
 * the sender in the line. Nonces are bound to the request's source IP.
 * Loop thread only. */
#ifndef CASCADE_REGISTRAR_DIGEST_CHECK_H
#define CASCADE_REGISTRAR_DIGEST_CHECK_H

#include <stdbool.h>

#include "auth/auth_config.h"
#include "base/sbuf.h"
#include "base/config.h"
#include "sip/local.h"
#include "sip/msg.h"
#include "transport/transport.h"

struct auth_server;
struct event_bus;
struct users;
struct users_entry;

/* What a check works with: a value the caller keeps (the registrar and the
 * proxy each have one). The pointers are borrowed. */
struct digest_checker {
    const struct sip_local *local;   /* realm */
    char algorithm[16];              /* [auth] algorithm: MD5 | SHA-256 | both */
    struct users *users;             /* NULL: every user is unknown */
    struct auth_server *auth;        /* nonces, verification, failure throttle */
    struct event_bus *events;        /* auth.failed; NULL: no events */
    /* [proxy] trusted_edges: a request an edge forwarded counts (failure
     * limits, nonce binding, auth.failed's remote) by its phone's address
     * (digest_edge_peer). */
    const struct config_cidr *edges;
    int nedges;
};

void digest_checker_init(struct digest_checker *dc, const struct auth_config *cfg, const struct sip_local *local,
                         struct users *users, struct auth_server *auth, struct event_bus *events);

/* [proxy] trusted_edges (RFC 3327 edges in front of this node): when rx
 * came from one of edges[0..n) and its top Via is that edge's (its sent-by
 * is the source IP, so the transport stamped no received), the phone the
 * edge forwarded it for is the next Via's received (else its host, an IP)
 * and rport (else port, else 5060): written to *out, true. Anything else
 * (an untrusted source, the edge's own request, a Via naming a host):
 * false. For per-source limits and logs, never for where to send. */
bool digest_edge_peer(const struct config_cidr *edges, int n, const struct transport_rx *rx,
                      struct sockaddr_storage *out);

#define DIGEST_CHECK_MAX_HEADERS 8  /* credential headers looked at per request */

enum digest_check {
    DIGEST_CHECK_OK,           /* verified: result.user */
    DIGEST_CHECK_NONE,         /* no credentials for our realm */
    DIGEST_CHECK_STALE,        /* right password, expired nonce */
    DIGEST_CHECK_FAILED,       /* unknown user, wrong password, replayed nc, a nonce we did not issue */
    DIGEST_CHECK_BAD_HEADER,   /* unreadable credentials: 400 Bad Authorization Header */
    DIGEST_CHECK_URI_MISMATCH, /* digest uri is not the Request-URI: 400 Digest URI Mismatch */
    DIGEST_CHECK_LOCKED,       /* too many failures from this source or for this user: 403, no digest work */
};

struct digest_check_result {
    const struct users_entry *user; /* DIGEST_CHECK_OK (and STALE) */
    bool nonce_reused;              /* OK: the nonce was accepted before (auth_verify_info) */
    bool log;                       /* log why now: refusals are rate-limited */
    uint32_t retry_after;           /* LOCKED: seconds until the lock ends */
    char why[160];                  /* for the log line of anything but OK */
};

/* Looks for credentials for [auth] realm in the headers of type hdr
 * (SIP_HDR_AUTHORIZATION or SIP_HDR_PROXY_AUTHORIZATION) of rx->msg and
 * verifies them against the users table, the method, the nonce and the
 * source address the nonce was issued to. */
enum digest_check digest_check_request(const struct digest_checker *dc, const struct transport_rx *rx, enum sip_hdr hdr,
                                       struct digest_check_result *out);

/* Appends one "WWW-Authenticate: ..." (proxy: "Proxy-Authenticate: ...")
 * line, CRLF-terminated, per algorithm of [auth] algorithm, SHA-256 first
 * (RFC 8760 §2.4: in order of preference). 0, or a negative errno. */
int digest_check_challenge(const struct digest_checker *dc, bool proxy, bool stale, const struct transport_rx *rx, sbuf_t *b);

/* Removes the credentials for our realm from m (a proxy consumes what it
 * asked for; the next hop never sees them). Entries of other realms stay. */
void digest_check_consume(const struct digest_checker *dc, struct sip_msg *m, enum sip_hdr hdr);

#endif
