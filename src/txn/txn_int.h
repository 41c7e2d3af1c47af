/* txn_int.h — what txn.c (layer, tables, matching), server.c and client.c
 * share. Not for other modules: use txn.h. */
#ifndef CASCADE_TXN_TXN_INT_H
#define CASCADE_TXN_TXN_INT_H

#include "txn/txn.h"

#include "base/arena.h"
#include "base/htable.h"
#include "base/sbuf.h"

/* One of the layer's tables: the base hash table, and which node of a
 * transaction it links. */
struct txn_table {
    struct htable t;
    size_t link_offset; /* offsetof(struct txn, <node>) */
};

/* A server transaction's copy of its request: the bytes, the parsed model
 * and the arena the model lives in, in one block freed at the final response. */
struct txn_req_copy {
    struct sip_msg msg;
    struct transport_rx rx;         /* origin of the request, rx.msg = &msg */
    arena_t arena;
    size_t len;
    char *data;         /* points inside this block */
};

struct txn {
    struct txn_layer *layer;
    struct hnode hl;                /* server or client table */
    struct hnode cl;                /* client table by TCP conn_id */
    struct txn *all_prev, *all_next; /* every live transaction (for txn_layer_free) */
    bool client, invite;
    bool rfc2543;                   /* server: the request had no magic cookie */
    bool detached;                  /* client: no more TU callbacks */
    bool cancel_pending, cancel_sent;
    bool reliable;                  /* TCP: no retransmissions, zero wait timers */
    bool handed_over;               /* server: ended after its final response (a done.c record took over, or stateless); not counted live */
    bool stateless;                 /* server: keep nothing after the final response */
    enum txn_state state;
    enum sip_method method;
    int last_status;
    int pending_failure;            /* client: 408/503 to report from t_main */

    struct timer_node t_retx;       /* A, E, G; the 100 Trying timer */
    struct timer_node t_main;       /* B, F, H, D, I, J, K, L; deferred failure/destroy */
    uint32_t retx_interval;

    struct transport_dest dest;
    void *user;
    uint64_t stamp;                 /* server: txn_set_stamp, for ops.on_final_sent */

    /* client: the request until a final response, then (INVITE) the ACK;
     * server: the last response sent. */
    char *bytes;
    size_t bytes_len, bytes_cap;

    struct txn_client_cb cb;
    void *arg;

    /* server: the request and its origin are borrowed from the transport
     * during on_request, then point into copy, and are NULL after the final. */
    const struct sip_msg *req;
    const struct transport_rx *rx;
    struct txn_req_copy *copy;
    char *resp_to_tag;              /* RFC 2543 ACK matching: To tag of the final response */

    /* Keys (slices of keys[] below). */
    str_t branch, method_name, sent_by_host, via_transport;
    uint16_t sent_by_port;
    str_t ruri, from_tag, to_tag, call_id; /* RFC 2543 matching only */
    uint32_t cseq;
    char keys[];
};

/* Completed non-INVITE server transactions over UDP waiting out Timer J
 * (done.c): a log of blocks, oldest first, and a hash index by branch. */
struct txn_done;
struct txn_done_block;
struct txn_done_slot;
struct txn_done_log {
    struct txn_done_block *first, *last, *spare;
    size_t head_off;                /* oldest live record in first */
    struct txn_done_slot *slots;    /* the hash index (open addressing) */
    uint32_t mask;                  /* slots - 1, 0 before the first record */
    size_t indexed;                 /* records in the hash index */
    size_t count;                   /* records in the log */
    size_t bytes;                   /* their size in the blocks */
    struct timer_node timer;        /* Timer J of the oldest record */
};

struct txn_layer {
    struct timer_service *timers;
    struct txn_config cfg;
    struct txn_layer_ops ops;
    struct txn_table server, client, conns;
    struct txn *all;
    bool freeing;                   /* txn_layer_free: no callbacks */
    struct txn_stats stats;
    sbuf_t sb;                      /* building responses, ACK, CANCEL */
    char *scratch_mem;
    arena_t scratch;                /* parsing kept bytes on rare paths */
    struct txn_done_log done;
    char sl_prefix[11];             /* To tags of stateless finals start with it */
    uint64_t cap_log_ms;            /* last "over the cap" warning */
    uint64_t cap_log_suppressed;    /* refusals since, not logged one by one */
};

/* A stateless final's To tag: sl_prefix, '.', 8 hex digits of the request's
 * branch / Call-ID / From tag (RFC 3261 §19.3: unique enough per request). */
#define TXN_SL_TAG_SIZE 20          /* 10 + 1 + 8 + NUL */
void txn_sl_tag(const struct txn_layer *l, const struct sip_msg *m, char out[TXN_SL_TAG_SIZE]);
bool txn_sl_tag_is_ours(const struct txn_layer *l, str_t tag);

/* txn.c */
uint64_t txn_now(struct txn_layer *l);
int txn_table_insert(struct txn_table *tb, struct txn *t, uint32_t hash);
void txn_table_remove(struct txn_table *tb, struct txn *t);
struct txn *txn_table_first(const struct txn_table *tb, uint32_t hash);
struct txn *txn_table_next(const struct txn_table *tb, const struct txn *t);
uint32_t txn_key_hash(str_t s, enum sip_method method, uint32_t extra);
bool txn_branch_is_3261(str_t branch);
/* Leaves the tables and frees t from the next timer_run (t_main at now). */
void txn_terminate_soon(struct txn *t);
void txn_destroy(struct txn *t);
void txn_link_all(struct txn *t);
/* Copies bytes into t->bytes (grows it). 0 or -ENOMEM. */
int txn_keep_bytes(struct txn *t, const void *data, size_t len);
void txn_start(struct txn *t, struct timer_node *n, uint64_t delay_ms, timer_cb cb);

/* server.c */
int txn_server_receive(struct txn_layer *l, const struct transport_rx *rx);
struct txn *txn_server_find(struct txn_layer *l, const struct sip_msg *m, enum sip_method method, bool ack);
void txn_server_free_parts(struct txn *t);

/* done.c */
/* Keeps what Timer J needs of t (non-INVITE, UDP, RFC 3261 branch) and its
 * final response. 0, -ENOMEM or -EINVAL (then t keeps waiting itself). */
int txn_done_add(struct txn_layer *l, const struct txn *t, const void *resp, size_t len);
/* m (a request with an RFC 3261 branch, hash as server.c computes it)
 * retransmits a completed transaction: re-sends its response, returns true. */
bool txn_done_receive(struct txn_layer *l, const struct sip_msg *m, uint32_t hash);
void txn_done_free_all(struct txn_layer *l);

/* client.c */
int txn_client_receive(struct txn_layer *l, const struct transport_rx *rx);
void txn_client_free_parts(struct txn *t);

#endif
