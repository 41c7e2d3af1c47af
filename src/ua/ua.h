/* ua.h — the user agent layer: building requests, the UAC helper with digest
 * retry, and dialogs (RFC 3261 §8.1, §12, §13, §15, §22.2).
 *
 * The roles (registrar, proxy, GB upper and lower) sit on this layer when
 * they originate requests or take part in calls:
 *
 *   struct ua_request r = {.method = SIP_MESSAGE, .ruri = ..., .from = ..., .to = ...,
 *                          .content_type = STR_LIT("Application/MANSCDP+xml"), .body = ...};
 *   struct transport_dest dest;
 *   ua_dest_from_host("192.0.2.7", 5060, SIP_TRANSPORT_UDP, 0, &dest);
 *   struct ua_uac_cb cb = {.on_final = done};
 *   struct ua_uac *h = ua_request_send(ua, &r, &dest, NULL, &cb, obj);
 *   ...  if obj goes away first: ua_request_detach(h);
 *
 * ua_request_send() copies what it needs: the caller's strings may go away
 * after the call. Call-ID and From tag are generated when not given. A 401 or
 * 407 is answered once with the credentials (again only when the next
 * challenge says stale=true), with CSeq + 1, the same Call-ID and From tag.
 *
 * A 2xx to an INVITE makes a dialog (struct ua_dialog, owned by the UA): the
 * UA sends the ACK itself (RFC 3261 §13.2.2.4, not a transaction) and hands
 * the dialog to on_final, where the owner sets its callbacks. Answering an
 * INVITE with ua_answer_invite() makes a UAS dialog whose 2xx the UA
 * retransmits until the ACK comes (§13.3.1.4; after 64*T1 it gives up and
 * sends BYE). Requests inside a dialog reach the dispatcher, which offers
 * them to ua_on_request() first; a BYE is answered 200 and reported through
 * on_end.
 *
 * Destinations: numeric IPv4/IPv6 hosts only (a host name gives -ENOENT; DNS
 * is not done here). A TCP conn_id in a transport_dest reuses that flow.
 *
 * Everything runs on the worker's loop thread. Callbacks never fire from
 * inside the call that caused them, except where noted. */
#ifndef CASCADE_UA_UA_H
#define CASCADE_UA_UA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "base/str.h"
#include "sip/msg.h"
#include "transport/transport.h"

struct sip_config;
struct sip_local;
struct timer_service;
struct txn;
struct txn_layer;
struct ua;
struct ua_uac;
struct ua_dialog;

#define UA_TAG_SIZE 17       /* 16 hex digits + NUL */
#define UA_CALL_ID_SIZE 33   /* 32 hex digits + NUL */
#define UA_MAX_ROUTES 16     /* route set entries kept per dialog */

/* ---- destinations ---- */

/* Where a request for this URI goes (RFC 3261 §8.1.2, RFC 3263 without DNS):
 * maddr or host, the port (5060 when absent), ;transport=udp|tcp (UDP when
 * absent). 0; -EINVAL malformed; -ENOTSUP sips:, tel: or another transport;
 * -ENOENT the host is a name (not resolved here). */
int ua_dest_from_uri(str_t uri, struct transport_dest *out);
/* Numeric host (brackets allowed for IPv6). conn_id: a TCP flow to reuse (0
 * none). 0, or -ENOENT when host is not numeric. */
int ua_dest_from_host(const char *host, uint16_t port, enum sip_transport proto, uint64_t conn_id,
                      struct transport_dest *out);

/* ---- building requests ---- */

/* A request to build. Every str_t may be empty where noted. From and To are
 * a name-addr ("\"Bob\" <sip:b@h>") or a bare URI (wrapped in <> here), in
 * both cases without a tag. */
struct ua_request {
    enum sip_method method;
    str_t method_name;          /* only for SIP_METHOD_UNKNOWN */
    str_t ruri;
    str_t from, from_tag;       /* from_tag empty: generated */
    str_t to, to_tag;           /* to_tag: in-dialog requests only */
    str_t call_id;              /* empty: generated */
    uint32_t cseq;              /* 0: 1 */
    str_t contact;              /* the whole Contact value; empty: see auto_contact */
    bool auto_contact;          /* no contact given: "<sip:USER@via-host:port[;transport=tcp]>",
                                   USER from contact_user, else the From URI's user */
    str_t contact_user;
    const str_t *routes;        /* Route values, in order ("<sip:p1;lr>") */
    size_t route_count;
    const str_t *headers;       /* extra lines "Name: value" (no CRLF) */
    size_t header_count;
    str_t content_type;         /* required when body is not empty */
    str_t body;
    str_t local_host;           /* Via/Contact host; empty: the local host (sip_local) */
    bool pin_dest;              /* INVITE: the dialog its 2xx makes sends everything, the ACK
                                   included, to the dest it was sent to (as ua_dialog_set_dest) */
};

/* The top Via of a request being printed. */
struct ua_via {
    enum sip_transport proto;
    str_t host;                 /* IPv6 in brackets */
    uint16_t port;
    str_t branch;               /* "z9hG4bK..." */
};

/* Prints r (call_id and from_tag must be set, cseq > 0) with the given Via
 * (";rport" added, RFC 3581), "Max-Forwards: 70", Route lines, Contact,
 * User-Agent (when not empty), the extra lines, Content-Type and a
 * Content-Length matching the body. Refuses values holding CR, LF or other
 * control characters (header injection). 0; -EINVAL; -ENOMEM. */
int ua_print_request(const struct ua_request *r, const struct ua_via *via, str_t user_agent, sbuf_t *out);

/* The extra lines of a NOTIFY in a subscription: keep them until the
 * request is sent (r->headers points at lines). */
struct ua_notify_lines {
    char event[48];
    char state[64];
    str_t lines[2];
};

/* Makes r, filled for a NOTIFY (method, From, To), one in the dialog of a
 * subscription we serve as notifier (RFC 6665 §4.2.2, §8.2): the
 * Request-URI becomes contact unless contact is empty; Call-ID call_id,
 * From tag local_tag (ours), To tag remote_tag (the subscriber's), CSeq
 * cseq; the extra lines "Event: EVENT" and "Subscription-State:
 * active;expires=N", N the whole seconds from now_ms to expires_at_ms (0
 * once past), written into *out. The content type and body are the
 * caller's. */
void ua_subscription_notify(struct ua_request *r, struct ua_notify_lines *out, const char *event, const char *call_id,
                            const char *local_tag, const char *remote_tag, const char *contact, uint32_t cseq,
                            uint64_t expires_at_ms, uint64_t now_ms);

/* ---- the UA ---- */

/* Sends bytes outside a transaction (ACK for 2xx, 2xx retransmissions).
 * Default: transport_send() on the transport given to ua_new(). */
typedef int (*ua_send_fn)(void *arg, struct transport_dest *dest, const void *data, size_t len);

/* A UA on the transaction layer txn and the timer service timers (its clock
 * is the UA's: timer_now()). T1 and T2 come from sip ([sip] t1_ms, t2_ms;
 * 500 and 4000 when 0). local (Via/Contact host and ports, User-Agent) is
 * kept as a pointer and read at each send. transport sends what goes
 * outside transactions; NULL: such sends fail until ua_set_sender().
 * seed starts the tag and Call-ID generator (0: a random one). Every
 * pointer must outlive the UA. NULL on allocation failure. */
struct ua *ua_new(const struct sip_config *sip, const struct sip_local *local, struct timer_service *timers,
                  struct txn_layer *txn, struct transport *transport, uint64_t seed);
/* Frees every dialog and handle without callbacks (pending client
 * transactions are detached and run out on their own). */
void ua_free(struct ua *ua);
/* Replaces the sender used outside transactions (tests). */
void ua_set_sender(struct ua *ua, ua_send_fn fn, void *arg);

/* Random hex for tags (RFC 3261 §19.3) and Call-IDs (§8.1.1.4). */
void ua_new_tag(struct ua *ua, char out[UA_TAG_SIZE]);
void ua_new_call_id(struct ua *ua, char out[UA_CALL_ID_SIZE]);

/* ---- UAC helper ---- */

/* Digest credentials (RFC 3261 §22.2): user plus password, or plus the hex
 * HA1 of the realm that will challenge (MD5 or SHA-256 as challenged). */
struct ua_credentials {
    str_t user;
    str_t password;
    str_t ha1;
};

struct ua_uac_cb {
    /* Optional: each provisional response. */
    void (*on_provisional)(void *arg, struct ua_uac *h, const struct sip_msg *resp, const struct transport_rx *rx);
    /* The final answer. resp and rx are NULL for the local 408 (no answer)
     * and 503 (transport error). For a 2xx to INVITE, dlg is the new dialog
     * (ACK already sent): set its callbacks here, or ua_dialog_bye() it. h is
     * freed right after this call returns. */
    void (*on_final)(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                     const struct transport_rx *rx, struct ua_dialog *dlg);
};

/* Sends r to dest as a client transaction. cred may be NULL (then a 401/407
 * is simply the final answer). cb may be NULL (fire and forget). Returns the
 * handle, or NULL (logged) when r cannot be built or memory ran out; a send
 * failure is reported later as 503 through on_final. */
struct ua_uac *ua_request_send(struct ua *ua, const struct ua_request *r, const struct transport_dest *dest,
                               const struct ua_credentials *cred, const struct ua_uac_cb *cb, void *arg);
/* The caller forgets h: no more callbacks. A pending INVITE is CANCELled
 * (RFC 3261 §9.1); a 2xx that still arrives is ACKed and the dialog BYEd
 * (§15). Other requests run out on their own. */
void ua_request_cancel(struct ua_uac *h);
/* The caller forgets h without cancelling (a 2xx to INVITE is still ACKed
 * and then BYEd since nobody wants the call). */
void ua_request_detach(struct ua_uac *h);

/* Accessors, valid while h is (e.g. inside on_final). */
str_t ua_request_call_id(const struct ua_uac *h);
str_t ua_request_from_tag(const struct ua_uac *h);
uint32_t ua_request_cseq(const struct ua_uac *h);        /* CSeq of the last attempt */
/* Where the last attempt went (TCP: conn_id written back by the transport). */
const struct transport_dest *ua_request_dest(const struct ua_uac *h);

/* ---- dialogs ---- */

enum ua_dialog_end {
    UA_END_BYE_RECEIVED = 1,  /* the peer sent BYE (answered 200) */
    UA_END_NO_ACK,            /* our 2xx was never ACKed; BYE sent (RFC 3261 §13.3.1.4) */
};
const char *ua_dialog_end_name(enum ua_dialog_end why); /* "bye", "no-ack" */

struct ua_dialog_cb {
    /* An in-dialog request other than BYE and ACK (INFO, MESSAGE, NOTIFY,
     * re-INVITE ...); the handler answers st (txn_respond). NULL: the UA
     * answers 200 to INFO, MESSAGE, NOTIFY and OPTIONS, 488 to INVITE and
     * UPDATE, 405 to the rest. */
    void (*on_request)(void *arg, struct ua_dialog *d, struct txn *st, const struct transport_rx *rx);
    /* Optional, UAS dialogs: the ACK for our 2xx arrived (first one only). */
    void (*on_ack)(void *arg, struct ua_dialog *d, const struct transport_rx *rx);
    /* The dialog ended from the far side or for lack of an ACK. The dialog
     * is freed right after this returns. Not called after ua_dialog_bye(). */
    void (*on_end)(void *arg, struct ua_dialog *d, enum ua_dialog_end why);
};

void ua_dialog_set_cb(struct ua_dialog *d, const struct ua_dialog_cb *cb, void *arg);
/* Pins where in-dialog requests go (e.g. the address a GB device registered
 * from, when its Contact is a private address). Without it: the TCP flow the
 * dialog was made on, else the first Route / remote target, else that flow. */
void ua_dialog_set_dest(struct ua_dialog *d, const struct transport_dest *dest);

/* Sends a request inside d (RFC 3261 §12.2.1.1: CSeq + 1, route set, remote
 * target). Not for ACK or BYE. Returns the handle as ua_request_send does. */
struct ua_uac *ua_dialog_request(struct ua_dialog *d, enum sip_method method, const str_t *headers,
                                 size_t header_count, str_t content_type, str_t body, const struct ua_uac_cb *cb,
                                 void *arg);
/* Sends BYE and frees d at once (its response is not reported; on_end is not
 * called). 0, or a negative errno when the BYE could not be sent (d is freed
 * anyway). */
int ua_dialog_bye(struct ua_dialog *d);

str_t ua_dialog_call_id(const struct ua_dialog *d);
str_t ua_dialog_local_tag(const struct ua_dialog *d);
str_t ua_dialog_remote_tag(const struct ua_dialog *d);
str_t ua_dialog_remote_target(const struct ua_dialog *d);
size_t ua_dialog_route_count(const struct ua_dialog *d);
str_t ua_dialog_route(const struct ua_dialog *d, size_t i); /* in the order requests carry them */
bool ua_dialog_is_uac(const struct ua_dialog *d);
bool ua_dialog_confirmed(const struct ua_dialog *d);        /* UAS: ACK received; UAC: always */
uint32_t ua_dialog_local_cseq(const struct ua_dialog *d);
/* Prints the request d would send (RFC 3261 §12.2.1.1) without sending it:
 * for tests and logs. cseq 0 takes the next one (without consuming it). */
int ua_dialog_print_request(struct ua_dialog *d, enum sip_method method, uint32_t cseq, sbuf_t *out);

/* Answers the INVITE of st with a 2xx (status 200..299) carrying Contact
 * (the whole value; empty: "<sip:USER@local-host:port>" with the R-URI's
 * user), the extra header lines and the body, and makes the UAS dialog
 * (RFC 3261 §12.1.1: route set = Record-Route as received, remote target =
 * the INVITE's Contact). The UA retransmits the 2xx until the ACK. NULL
 * (logged) when st is not an unanswered INVITE or memory ran out; the caller
 * then answers st itself (e.g. 500). */
struct ua_dialog *ua_answer_invite(struct ua *ua, struct txn *st, int status, str_t contact, const str_t *headers,
                                   size_t header_count, str_t content_type, str_t body,
                                   const struct ua_dialog_cb *cb, void *arg);

/* ---- dispatcher interface ---- */

/* An incoming request (with a To tag) of a dialog we hold: 1 when the UA took
 * it (and answered or handed it to the dialog's owner), 0 otherwise. */
int ua_on_request(struct ua *ua, struct txn *st, const struct transport_rx *rx);
/* An ACK the transaction layer passed up (ACK for a 2xx): 1 when it belongs
 * to one of our dialogs. */
int ua_on_ack(struct ua *ua, const struct transport_rx *rx);
/* A response no transaction matched: a retransmitted 2xx to our INVITE gets
 * the ACK again; a 2xx from another fork is ACKed and BYEd (§13.2.2.4).
 * 1 when it was ours. */
int ua_on_response(struct ua *ua, const struct transport_rx *rx);

struct ua_stats {
    uint32_t dialogs;        /* live */
    uint32_t requests;       /* live UAC handles */
    uint64_t auth_retries;   /* requests re-sent with credentials */
    uint64_t acks_sent, byes_sent;
    uint64_t no_ack;         /* UAS dialogs ended for lack of an ACK */
};
void ua_get_stats(const struct ua *ua, struct ua_stats *out);

#endif
