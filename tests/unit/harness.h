/* harness.h — an in-process SIP stack for unit tests: a fake clock (the
 * timer service reads it), a real transaction layer and UA whose sends are
 * recorded instead of going to sockets, requests injected as SIP text from
 * a given source address, and helpers to parse and inspect what was sent.
 *
 *   struct harness *h = harness_new();
 *   h->on_request = my_role_on_request; h->arg = role;   (the TU under test)
 *   harness_inject(h, "192.0.2.9", 5080, SIP_TRANSPORT_UDP, "REGISTER sip:...\n...\n\n");
 *   const struct sip_msg *m = harness_sent_msg(h, harness_sent_count(h) - 1);
 *   assert_int_equal(m->status, 200);
 *   harness_advance(h, 1000);                            (timers fire in order)
 *   harness_free(h);
 *
 * Who we are (h->local): domain "example.com", host 192.0.2.1, UDP and TCP
 * port 5060, user agent "cascade-test"; set before the role is built.
 * Requests arrive at 192.0.2.1:5060. The clock starts at 1,000,000 ms.
 * Built into the static library test_harness, linked to every unit test. */
#ifndef CASCADE_TESTS_HARNESS_H
#define CASCADE_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/timer.h"
#include "sip/local.h"
#include "sip/msg.h"
#include "transport/transport.h"
#include "txn/txn.h"
#include "ua/ua.h"

struct harness_sent {
    struct transport_dest dest;
    char *data;                 /* NUL-terminated copy */
    size_t len;
    bool raw;                   /* through harness_send (outside a transaction) */
};

struct harness {
    uint64_t now;                       /* the fake clock, ms */
    struct timer_service *timers;       /* reads now */
    struct txn_layer *txn;
    struct ua *ua;
    struct sip_local local;
    /* The TU: new server transactions and stray responses go here (when
     * NULL: requests are answered 501, stray responses dropped). */
    void (*on_request)(void *arg, struct txn *st, const struct transport_rx *rx);
    void (*on_stray_response)(void *arg, const struct transport_rx *rx);
    /* A server transaction is being freed (may be NULL). */
    void (*on_server_terminated)(void *arg, struct txn *st);
    /* ACKs for 2xx (no transaction): when set, instead of the UA. */
    void (*on_ack)(void *arg, const struct transport_rx *rx);
    void *arg;
    uint64_t conn_id;                   /* given to requests injected over a stream transport (TCP, TLS, WS, WSS) */
    /* A connection that is gone: a send over it fails with UV_ENOTCONN and
     * is not recorded, as the transport's does for a flow it no longer has
     * and no address to reach (0: none). */
    uint64_t dead_conn_id;

    struct harness_sent *sent;
    size_t nsent, sent_cap;

    struct harness_priv *priv;          /* the rest (harness.c) */
};

struct users;

struct harness *harness_new(void);
void harness_free(struct harness *h);

/* Moves the clock ms forward, running every timer that falls due on the
 * way, at its own deadline. */
void harness_advance(struct harness *h, uint64_t ms);

/* Parses text (LF line ends become CRLF; "#CL#" becomes the body length)
 * and feeds it to the transaction layer as received from ip:port over
 * proto. 0, or the parse/receive error (negative). */
int harness_inject(struct harness *h, const char *ip, uint16_t port, enum sip_transport proto, const char *text);

/* A sender for what a role sends outside transactions (ua_send_fn): the
 * message is recorded with raw = true. arg is the harness. */
int harness_send(void *arg, struct transport_dest *dest, const void *data, size_t len);
/* Adds name/password to users with MD5 and SHA-256 HA1s in the harness's
 * realm (asserts on failure). */
void harness_add_user(struct harness *h, struct users *users, const char *name, const char *password);

size_t harness_sent_count(const struct harness *h);
/* Forgets what was sent so far. */
void harness_clear_sent(struct harness *h);
/* Message i parsed; valid until the next harness_sent_msg call. Fails the
 * test when it does not parse. */
const struct sip_msg *harness_sent_msg(struct harness *h, size_t i);
/* The last message sent, parsed (fails the test when none). */
const struct sip_msg *harness_last(struct harness *h);
/* The index of the first message sent at or after from whose text starts
 * with prefix ("INVITE ", "SIP/2.0 180", "CANCEL "), or -1. */
int harness_find_sent(const struct harness *h, size_t from, const char *prefix);
/* The index of the last message sent whose text starts with prefix, or -1. */
int harness_find_last_sent(const struct harness *h, const char *prefix);
/* Answers request i (a message we sent) with status, as its peer at
 * ip:port (UDP): its Via, From, To, Call-ID and CSeq copied. */
void harness_answer_sent(struct harness *h, size_t i, int status, const char *ip, uint16_t port);
/* How many messages sent at or after from start with prefix. */
size_t harness_count_sent(const struct harness *h, size_t from, const char *prefix);
/* Whether message i went to ip:port. */
bool harness_sent_to(const struct harness *h, size_t i, const char *ip, uint16_t port);
/* Status of message i (0 for a request). */
int harness_sent_status(struct harness *h, size_t i);

/* The value of the first header of type t (STR_NULL when absent). */
str_t harness_header(const struct sip_msg *m, enum sip_hdr t);
/* How many headers of type t m has. */
int harness_header_count(const struct sip_msg *m, enum sip_hdr t);
/* The value of the k-th header of type t (STR_NULL when absent). */
str_t harness_header_nth(const struct sip_msg *m, enum sip_hdr t, int k);
/* Whether the value of some header of type t contains needle. */
bool harness_header_has(const struct sip_msg *m, enum sip_hdr t, const char *needle);

#endif
