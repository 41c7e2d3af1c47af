/* txn.h — SIP transactions (RFC 3261 §17, §9, RFC 6026).
 *
 * The transaction layer sits between the transport and the transaction user
 * (TU: the daemon core, registrar, proxy, GB roles). Every received message
 * goes through txn_layer_receive(): a request either matches a server
 * transaction (a retransmission, absorbed: the last response is re-sent) or
 * creates one and reaches the TU through ops.on_request; a response either
 * matches a client transaction (and reaches that transaction's callbacks) or
 * goes to ops.on_stray_response. Retransmissions, timeouts (408), transport
 * errors (503), the ACK for a non-2xx final and CANCEL are handled here.
 *
 * Timers run in the caller's timer service (src/base/timer.h) in the clock of
 * ops.now_ms; nothing here reads a clock or touches libuv. After calling into
 * the layer, the owner re-arms its clock source at timer_next_deadline():
 * events the layer defers (a failure report, a zero-length TCP timer) are
 * armed at "now" and run on the next timer_run().
 *
 * Lifetimes: a transaction is freed only from a timer callback, never inside
 * a call the TU made, so a pointer the TU holds stays valid until the
 * terminated notification (ops.on_server_terminated / cb.on_terminated).
 * A server transaction lives until the TU sends a final response (plus the
 * RFC's wait timers): the TU must answer every request it is given. */
#ifndef CASCADE_TXN_TXN_H
#define CASCADE_TXN_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/timer.h"
#include "sip/msg.h"
#include "transport/transport.h"

#define TXN_BRANCH_COOKIE "z9hG4bK"   /* RFC 3261 §8.1.1.7 */
#define TXN_BRANCH_SIZE 40            /* buffer for txn_new_branch, NUL included */

struct txn;        /* a server or a client transaction (opaque) */
struct txn_layer;

struct txn_config {
    uint32_t t1_ms, t2_ms, t4_ms;     /* 0: 500, 4000, 5000 (RFC 3261 §17.1.1.1) */
    uint32_t trying_ms;               /* auto 100 Trying for INVITE, 0: 200 (§17.2.1) */
    uint32_t timer_d_ms;              /* 0: 32000 (§17.1.1.2, UDP) */
    struct sip_parse_limits limits;   /* for re-parsing kept requests; zero: defaults */
    /* Live server transactions (Timer J records included) beyond which a
     * new request is answered 503 with Retry-After, statelessly, and never
     * reaches the TU. 0: no cap. */
    uint32_t max_server;
    uint32_t retry_after_s;           /* in that 503; 0: 10 */
};

struct txn_layer_ops {
    void *user;
    /* Sends bytes; returns 0 or a negative transport error (the layer turns it
     * into 503 for client transactions). dest->conn_id may be written back. */
    int (*send)(void *user, struct transport_dest *dest, const void *data, size_t len);
    /* A request created server transaction st (INVITE, non-INVITE, CANCEL). rx
     * is valid during the call; txn_request(st) stays valid until the final
     * response. The TU answers through txn_respond*, now or later. */
    void (*on_request)(void *user, struct txn *st, const struct transport_rx *rx);
    /* An ACK that matches no INVITE server transaction in Completed/Confirmed:
     * the ACK for a 2xx (RFC 3261 §17.2.3, RFC 6026 §8.9). */
    void (*on_ack)(void *user, const struct transport_rx *rx);
    /* A response matching no client transaction (2xx retransmissions, forked
     * 2xx after the INVITE client transaction ended). */
    void (*on_stray_response)(void *user, const struct transport_rx *rx);
    /* Optional: st is about to be freed. */
    void (*on_server_terminated)(void *user, struct txn *st);
    /* Milliseconds in the timer service's clock. */
    uint64_t (*now_ms)(void *user);
    /* Optional: the first final response of server transaction st went out
     * (any way: txn_respond, stateless, txn_respond_bytes). stamp is what
     * the TU gave txn_set_stamp (0 when nothing): the app measures request
     * handling time with it. */
    void (*on_final_sent)(void *user, struct txn *st, int status, uint64_t stamp);
};

/* Client transaction callbacks; arg is the pointer given to txn_client_new. */
struct txn_client_cb {
    /* Every provisional and the final response (for INVITE, one 2xx: later
     * 2xx go to on_stray_response). rx is valid during the call. */
    void (*on_response)(void *arg, struct txn *ct, const struct sip_msg *resp, const struct transport_rx *rx);
    /* No final response: 408 on timeout (timer B/F), 503 on a transport error. */
    void (*on_failure)(void *arg, struct txn *ct, int status);
    /* Optional: ct is about to be freed; always the last call. */
    void (*on_terminated)(void *arg, struct txn *ct);
};

enum txn_state {
    TXN_CALLING,     /* client INVITE */
    TXN_TRYING,      /* non-INVITE (client and server) */
    TXN_PROCEEDING,
    TXN_COMPLETED,
    TXN_CONFIRMED,   /* server INVITE after the ACK */
    TXN_ACCEPTED,    /* server INVITE after a 2xx (RFC 6026 §7.1) */
    TXN_TERMINATED
};

struct txn_stats {
    uint32_t server_live, client_live;
    uint64_t server_created, client_created;
    uint64_t retransmissions_absorbed;   /* requests and responses */
    uint64_t retransmissions_sent;       /* timer A/E/G resends */
    uint64_t timeouts;                   /* 408 reported */
    uint64_t transport_errors;           /* 503 reported / server send failures */
    /* Of server_live: completed non-INVITE transactions over UDP kept in
     * compact form for Timer J, and the bytes they take (keys + responses). */
    uint32_t server_completed;
    uint64_t server_completed_bytes;
    uint32_t server_max;                 /* the cap (0: none) */
    uint64_t refused_over_cap;           /* 503s sent because server_live reached the cap */
    uint64_t stateless_finals;           /* finals sent keeping no state (txn_respond_stateless/txn_reject) */
    uint64_t stateless_acks_absorbed;    /* ACKs for those finals, dropped by their To tag */
};

struct txn_layer *txn_layer_new(struct timer_service *timers, const struct txn_config *cfg,
                                const struct txn_layer_ops *ops);
/* Frees every transaction without callbacks (shutdown). */
void txn_layer_free(struct txn_layer *layer);

/* Feeds one received message (rx->parse_error must be NULL). Returns 0, or
 * a negative errno when it could not be handled (logged). */
int txn_layer_receive(struct txn_layer *layer, const struct transport_rx *rx);
/* The TCP connection conn_id is gone: client transactions still waiting for
 * a final response over it report 503. */
void txn_layer_conn_lost(struct txn_layer *layer, uint64_t conn_id);
void txn_layer_stats(const struct txn_layer *layer, struct txn_stats *out);
/* "z9hG4bK" + 24 random characters (getrandom), NUL-terminated. */
void txn_new_branch(char buf[TXN_BRANCH_SIZE]);

/* ---- server transactions ---- */

/* Lifetime of a non-INVITE server transaction over UDP with an RFC 3261
 * branch: once its final response is sent, the transaction hands the match
 * key and the response to a compact record that answers retransmissions for
 * Timer J (RFC 3261 §17.2.2), and the struct txn itself ends on the next
 * timer run (the TU then gets on_server_terminated). The TU must not use such
 * a transaction after its final response beyond the call it is in. */

/* Builds the response with sip_build_response() and sends it; the bytes are
 * kept for retransmissions. Provisional: 101..199 (100 too); final 200..699.
 * After a 2xx to INVITE further 2xx may be sent (the TU retransmits them,
 * RFC 6026). 0, or a negative errno: -EINVAL (bad status, not a server
 * transaction), -EALREADY (final already sent), -ENOMEM, or the transport
 * error (the transaction then terminates, RFC 3261 §17.2.4). */
int txn_respond(struct txn *st, int status, const char *reason, str_t to_tag, const str_t *extra_headers,
                size_t n_extra, str_t content_type, str_t body);
/* txn_respond for a final response that keeps nothing: the response is
 * sent once and the transaction ends (RFC 3261 §8.2.7 lets a UAS answer
 * statelessly). A retransmission of the request is a new transaction,
 * answered anew (a 401 then carries a fresh nonce). For INVITE this means no
 * Timer G retransmissions and no waiting for the ACK: the response carries a
 * To tag the layer makes (when the request had none; to_tag is then
 * ignored), and an ACK that comes back with that tag and matches no
 * transaction is absorbed here, never given to ops.on_ack. Provisional
 * responses are plain txn_respond. */
int txn_respond_stateless(struct txn *st, int status, const char *reason, str_t to_tag, const str_t *extra_headers,
                          size_t n_extra, str_t content_type, str_t body);
/* How a request is refused (issue 9: state and retransmissions for
 * strangers): a final >= 300 to a request from outside a dialog (no To tag)
 * that got no response yet is sent statelessly (txn_respond_stateless), so
 * a refusal costs one datagram and no memory; anything else (a provisional
 * went out, a forwarded INVITE's final, in-dialog, 2xx) is txn_respond. */
int txn_reject(struct txn *st, int status, const char *reason, str_t to_tag, const str_t *extra_headers,
               size_t n_extra, str_t content_type, str_t body);
/* Answers a request that has no transaction (a malformed one, one refused
 * over the cap) once, with the layer's stateless To tag (so its ACK is
 * absorbed) and extra header lines. 0 or a negative errno. */
int txn_layer_reply_stateless(struct txn_layer *layer, const struct transport_rx *rx, int status, const char *reason,
                              const str_t *extra_headers, size_t n_extra);
/* Sends a response the TU printed itself (a proxy forwarding one). */
int txn_respond_bytes(struct txn *st, int status, const void *data, size_t len);
/* The request, or NULL once the final response is sent. */
const struct sip_msg *txn_request(const struct txn *st);
/* Where the request came from (proto, src, conn_id, listener); ->msg is
 * txn_request(st). NULL once the final response is sent, like the request. */
const struct transport_rx *txn_rx_info(const struct txn *st);
/* The INVITE server transaction a CANCEL (rx) targets (RFC 3261 §9.2), or NULL. */
struct txn *txn_find_invite_for_cancel(struct txn_layer *layer, const struct transport_rx *cancel);

/* ---- client transactions ---- */

/* Sends the request data[0..len) (printed by the caller, top Via carrying
 * branch) and runs the client transaction for it. method must be the one of
 * the request line (SIP_METHOD_UNKNOWN for an extension method, whose name
 * is read from the request line); ACK is refused: it is not a transaction.
 * A send error is reported as 503 through on_failure on the next timer_run,
 * never from inside this call. NULL on bad arguments, duplicate branch or
 * no memory. */
struct txn *txn_client_new(struct txn_layer *layer, const struct transport_dest *dest, const void *data,
                           size_t len, str_t branch, enum sip_method method, const struct txn_client_cb *cb,
                           void *arg);
/* Cancels a client INVITE (RFC 3261 §9.1): sends CANCEL now when a
 * provisional arrived, else as soon as one does; nothing when a final came.
 * 0, or -EINVAL (not a pending INVITE client transaction), -ENOMEM. */
int txn_client_cancel(struct txn *ct);
/* The TU forgets ct: no more callbacks; the transaction runs out on its own. */
void txn_client_detach(struct txn *ct);

/* ---- both ---- */
void txn_set_user(struct txn *t, void *user);
/* A number of the TU's kept with a server transaction and handed back to
 * ops.on_final_sent (the app: when the request arrived). */
void txn_set_stamp(struct txn *t, uint64_t stamp);
void *txn_user(const struct txn *t);
enum txn_state txn_get_state(const struct txn *t);
bool txn_is_client(const struct txn *t);
bool txn_is_invite(const struct txn *t);
int txn_last_status(const struct txn *t);      /* last response sent/received, 0 none */
str_t txn_branch(const struct txn *t);
const struct transport_dest *txn_dest(const struct txn *t); /* where it sends */

/* Admission control for requests that would create new state (a REGISTER
 * for an AoR without bindings, a GB device not online): the app supplies it
 * (overload control). refuse() returns true when it has answered st itself
 * (503 + Retry-After, stateless) and the caller must do nothing more with it.
 * Call it before any digest or store work. A NULL admission admits all. */
struct txn_admission {
    bool (*refuse)(void *arg, struct txn *st);
    /* True while the node is over capacity: work nobody is waiting for (catalog
     * queries on register) holds back so keepalives and calls keep their share. */
    bool (*busy)(void *arg);
    void *arg;
};

static inline bool txn_admission_refuse(const struct txn_admission *a, struct txn *st)
{
    return a && a->refuse && a->refuse(a->arg, st);
}

static inline bool txn_admission_busy(const struct txn_admission *a)
{
    return a && a->busy && a->busy(a->arg);
}

#endif
