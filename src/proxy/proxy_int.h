/* proxy_int.h — what proxy.c, redirect.c and route.c share: editing a copy
 * of a parsed message (Route/Via list elements, Max-Forwards), the branch
 * and loop-detection hash (RFC 3261 §16.6 step 8, §16.3 step 4) and where
 * to send (a URI or a Via as a transport destination). Not for other
 * modules. These helpers touch no worker state, so unit tests use them
 * directly. */
#ifndef CASCADE_PROXY_PROXY_INT_H
#define CASCADE_PROXY_PROXY_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "proxy/proxy_config.h"
#include "sip/edit.h"
#include "sip/msg.h"
#include "transport/transport.h"

/* Our branches: the RFC 3261 cookie, a marker, 16 hex digits of the loop
 * hash, '.', 8 hex digits of a per-proxy counter. */
#define PROXY_BRANCH_PREFIX "z9hG4bKcP"
#define PROXY_BRANCH_LEN (sizeof(PROXY_BRANCH_PREFIX) - 1 + 16 + 1 + 8)
#define PROXY_HOST_MAX 256

/* The loop hash of a request as it would arrive at a proxy whose own Via is
 * right above prev_via (the via-parm that was on top when the request first
 * reached us): Request-URI, From tag, To tag, Call-ID, CSeq number,
 * prev_via, Proxy-Require (RFC 3261 §16.6 step 8). */
uint64_t proxy_loop_hash(const struct sip_msg *m, str_t prev_via);
/* out gets PROXY_BRANCH_LEN characters plus NUL. */
void proxy_make_branch(char *out, size_t cap, uint64_t loop_hash, uint32_t counter);
/* The loop hash encoded in one of our branches; false when not ours. */
bool proxy_branch_loop_hash(str_t branch, uint64_t *hash);

/* RFC 3261 §16.3 step 4: true when one of the Via entries below the top is
 * ours (is_ours decides by sent-by) with a branch whose loop hash equals the
 * hash this request has now, i.e. the request came back unchanged. */
bool proxy_detect_loop(const struct sip_msg *m, bool (*is_ours)(void *arg, const struct sip_via *v), void *arg);

/* Where a URI says to send (RFC 3263 reduced to A/AAAA: maddr, else host;
 * port or the transport's default; the transport as sip_uri_transport
 * says: sips: only TLS/WSS). Returns 0 with dest filled when the host is
 * numeric, 1 when host (NUL-terminated) needs a DNS lookup (dest->proto and
 * *port are set), -1 when unusable (tel, sips;transport=udp, no host). */
int proxy_uri_dest(const struct sip_uri *u, struct transport_dest *dest, char *host, size_t cap, uint16_t *port);
/* Where a response goes back to, from a Via entry (RFC 3261 §18.2.2,
 * RFC 3581): received or sent-by host, rport or port or the transport's
 * default, the Via's transport (UDP TCP TLS WS WSS). 0 when
 * numeric, 1 when host needs DNS, -1 unusable. */
int proxy_via_dest(const struct sip_via *v, struct transport_dest *dest, char *host, size_t cap, uint16_t *port);

/* ---- flow tokens (flow_token.c, RFC 5626 §5.3) ---- */

#define PROXY_FLOW_TOKEN_LEN 38     /* "ft" + 36 hex digits */

/* The secret tokens are signed with, and the run id of this process (a
 * connection id means something within one run only). */
struct proxy_flow_key {
    unsigned char k[32];
    uint32_t run;
};
/* Draws a fresh key and run id. 0, or -1 when the RNG fails. */
int proxy_flow_key_init(struct proxy_flow_key *k);
/* The key derived from key[0..len) (HMAC-SHA256 with a fixed label: a
 * [proxy] edge_secret, or the random key kept in the store), so that
 * nodes given the same secret, and this node after a restart, verify each
 * other's Path tokens; a fresh run id. 0, or -1. */
int proxy_flow_key_set(struct proxy_flow_key *k, const unsigned char *key, size_t len);
/* The token naming connection conn_id on proto (a stream transport), for
 * the user part of a Record-Route URI; out gets PROXY_FLOW_TOKEN_LEN
 * characters and a NUL (cap > PROXY_FLOW_TOKEN_LEN, else out is ""). */
void proxy_flow_token_make(const struct proxy_flow_key *k, enum sip_transport proto, uint64_t conn_id, char *out,
                           size_t cap);
/* 0 with *proto and *conn_id when user is a token we made with k; -1 when
 * it is not (malformed, altered, signed with another key). */
int proxy_flow_token_parse(const struct proxy_flow_key *k, str_t user, enum sip_transport *proto, uint64_t *conn_id);

/* Path tokens (RFC 3327, RFC 5626 §5.1): the user part of the Path URI an
 * edge node puts in a REGISTER it forwards, naming the flow the REGISTER
 * came in on: a connection (TCP/TLS/WS/WSS) by id, a UDP client by its
 * source address and our listener. Signed with the same key as the flow
 * tokens; "pt" + at most 64 hex digits. A connection's token carries the
 * run id as well (connection ids start again after a restart). */
#define PROXY_PATH_TOKEN_MAX 66
/* Writes the token for flow into out (cap > PROXY_PATH_TOKEN_MAX is
 * enough); its length, or -1 (a stream flow without a connection id, a UDP
 * flow without an address; out is then ""). */
int proxy_path_token_make(const struct proxy_flow_key *k, const struct transport_dest *flow, char *out, size_t cap);
/* 0 with *flow (stream: proto and conn_id, no address so a gone flow is
 * never reopened; UDP: proto, addr, listener_id) when user is a token made
 * with k; 1 when it is, but names a connection of an earlier run (gone:
 * 430 Flow Failed); -1 when it is not a token of k (403). */
int proxy_path_token_parse(const struct proxy_flow_key *k, str_t user, struct transport_dest *flow);

/* ---- the proxy's own state (proxy.c, fork.c) ---- */

struct proxy;
struct transport_rx;
/* Edge mode: the Path value naming the flow rx came in on,
 * "<sip:TOKEN@host:port;transport=..;lr;ob>" (our port on the transport
 * towards the edge registrar). Its length, or -1 (no token for the flow, or
 * no listener of ours on that transport). */
int proxy_edge_path_value(struct proxy *p, const struct transport_rx *rx, char *out, size_t cap);

#include <uv.h>

#include "base/htable.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "base/timer.h"
#include "proxy/proxy.h"
#include "sip/local.h"

struct proxy_call;

/* One target of a request (RFC 3261 §16.5): where the copy goes. */
struct proxy_target {
    str_t ruri;                       /* new Request-URI; empty keeps the request's */
    str_t path;                       /* Route values to push first (a binding's Path) */
    bool use_flow;                    /* send over flow (a binding's connection/source) */
    struct transport_dest flow;
    /* Record-route towards this target with a flow token (RFC 5626 §5.3):
     * it is reached over flow only (WebSocket, or an outbound binding). */
    bool flow_token;
    /* flow came from a flow token in our Route: when it fails the answer
     * is 430 Flow Failed (RFC 5626 §5.3), not 500. */
    bool by_token;
    /* Edge mode ([proxy] edge_registrar): edge_up, the copy goes to the
     * registrar behind us for a client of ours (the Record-Route entry
     * facing the client carries a Path token naming its flow);
     * edge_client, flow is a client's flow named by such a token (the
     * entry facing it carries one). */
    bool edge_up, edge_client;
    /* The binding (AoR key, contact) this target is, when it came with a
     * Path: a 430 from the edge removes it (RFC 5626 §5.3). */
    const char *binding_aor, *binding_contact;
};

#define PROXY_REFUSE_LOG_KEYS 32

struct proxy {
    struct proxy_deps d;              /* collaborators (the config pointers cleared: copied below) */
    struct proxy_config cfg;          /* [proxy] */
    uint32_t t1_ms;                   /* [sip] t1_ms, 500 when 0 */
    bool match_user;                  /* [auth] match_user */
    int max_contacts;                 /* [registrar] max_contacts */
    /* refuse()'s log lines: one rate-limit key per status (mod the size),
     * so a flood of one refusal cannot hide another kind. */
    struct log_ratelimit refuse_log[PROXY_REFUSE_LOG_KEYS];
    bool redirect;
    struct proxy_stats stats;
    struct htable by_st;              /* server transaction -> response context */
    struct proxy_call *calls;         /* every live context */
    struct proxy_dns *dns;            /* lookups in flight */
    uint32_t counter;                 /* branch uniqueness */
    char via_hosts[4][64];            /* hosts we put in Via when listening on a wildcard */
    struct proxy_flow_key flow_key;   /* signs our flow tokens (flow_token.c) */
    struct proxy_pike *pike;          /* [proxy] pike_limit; NULL: off */
    bool edge;                        /* [proxy] edge_registrar set */
    enum sip_transport edge_proto;    /* the transport towards it (our Path URI names our port on it) */
    char edge_route[300];             /* "<edge_registrar;lr>", the Route our copies get */
    struct sockaddr_storage edge_addr; /* its address when numeric (pike exempt); else family 0 */
    struct proxy_wait *waits;         /* requests waiting for a cluster lookup */
    uint32_t nwaits;
    arena_t arena;                    /* per message handled */
    sbuf_t sb;                        /* printing */
    _Alignas(16) char arena_mem[32768];
};

/* fork.c: response contexts (RFC 3261 §16.6-§16.10). */
/* Forks the request of st to targets[0..n) (n >= 1). rx is the received
 * request (after any Route popping, req is the edited copy to forward).
 * offline_aor: the local user of a MESSAGE that may be kept for later
 * when every branch fails (proxy_offline_offer), or NULL. */
void proxy_fork(struct proxy *p, struct txn *st, const struct transport_rx *rx, const struct sip_msg *req,
                const struct proxy_target *targets, size_t n, bool record_route, const char *offline_aor);
/* Offers st's request to deps.offline for user aor (see proxy.h) and, when
 * it is taken or refused there, answers st. True when st was answered. */
bool proxy_offline_offer(struct proxy *p, struct txn *st, const struct sip_msg *req, const char *aor);
/* The context of an INVITE server transaction, or NULL. */
struct proxy_call *proxy_call_find(struct proxy *p, const struct txn *st);
/* CANCEL matched c's INVITE: CANCEL every pending branch (§16.10). */
void proxy_call_cancel(struct proxy_call *c);
void proxy_call_server_gone(struct proxy_call *c);
void proxy_calls_free(struct proxy *p);
/* Our Via host for a message that arrived as rx. */
void proxy_via_host(const struct proxy *p, const struct transport_rx *rx, char *out, size_t cap);
/* Whether a Via entry's sent-by is this node. */
bool proxy_via_is_ours(void *arg, const struct sip_via *v);
/* Sends bytes statelessly, resolving a host name first when needed
 * (ACK for 2xx, forwarded 2xx retransmissions). */
void proxy_send_stateless(struct proxy *p, struct transport_dest *dest, const char *host, uint16_t port,
                          const char *data, size_t len);
/* Answers st with a To tag and extra lines (CRLF-joined, none trailing). */
void proxy_reply(struct proxy *p, struct txn *st, int status, const char *reason, str_t extra);
/* The flow of the binding whose contact is uri, when uri is registered here. */
bool proxy_flow_for_uri(struct proxy *p, const struct sip_uri *uri, struct transport_dest *dest);
/* RFC 3261 §16.6 steps 6-7 on m (its R-URI and Route set final): handles
 * a strict next hop, then finds where to send: the first Route, else the
 * target's flow, else a registered flow for the R-URI, else the R-URI.
 * 0 dest filled, 1 host needs DNS (dest->proto, *port set), -1 unusable. */
int proxy_next_hop(struct proxy *p, struct sip_msg *m, arena_t *a, const struct proxy_target *t,
                   struct transport_dest *dest, char *host, size_t cap, uint16_t *port);
/* Whether m must travel over TLS/WSS: a sips: R-URI or top Route (RFC
 * 5630 §5.1.1: a sips: top Route is a TLS hop even with a sip: R-URI). */
bool proxy_sips_demanded(const struct sip_msg *m);
/* "Warning: 380 <us> \"SIPS Not Allowed\"" (RFC 5630 §5.3), in p->arena. */
str_t proxy_sips_warning(struct proxy *p);
/* A 2xx arriving with nobody to give it to: pop our Via, send to the next. */
void proxy_forward_response_stateless(struct proxy *p, const struct sip_msg *resp, const char *src_text);

#endif
