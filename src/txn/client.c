/* client.c — client transactions (RFC 3261 §17.1) and CANCEL (§9.1).
 *
 * INVITE:     Calling (A, B) -(1xx)-> Proceeding -(2xx)-> gone (the TU ACKs)
 *                                    \-(300-699)-> Completed (ACK sent, D) -> gone
 * non-INVITE: Trying (E, F) -(1xx)-> Proceeding (E at T2, F) -(final)-> Completed (K) -> gone
 *
 * The caller prints the request; the transaction keeps its bytes for
 * retransmission until a final response, then (INVITE) the ACK it built for
 * a non-2xx. Failures (408 timeout, 503 transport) and the end are reported
 * from timer callbacks only. */
#include "txn/txn_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#define METHOD_MAX 32
#define BRANCH_MAX 256

static void client_main_timer(struct timer_node *n, uint64_t now);
static void client_retx_timer(struct timer_node *n, uint64_t now);

void txn_client_free_parts(struct txn *t) { (void)t; }

static uint32_t conn_hash(uint64_t conn_id) { return (uint32_t)(conn_id ^ (conn_id >> 32)) * 2654435761u; }

static struct txn *client_find(struct txn_layer *l, str_t branch, enum sip_method method, str_t method_name)
{
    uint32_t h = txn_key_hash(branch, method, 0);
    for (struct txn *t = txn_table_first(&l->client, h); t; t = txn_table_next(&l->client, t)) {
        if (t->method != method || !str_eq(t->branch, branch)) continue;
        if (method == SIP_METHOD_UNKNOWN && !str_eq(t->method_name, method_name)) continue;
        return t;
    }
    return NULL;
}

static void client_track_conn(struct txn *t)
{
    if (!t->reliable || !t->dest.conn_id || t->cl.linked) return;
    if (txn_table_insert(&t->layer->conns, t, conn_hash(t->dest.conn_id)) != 0)
        log_error("transaction %.*s: out of memory for the connection index", STR_FMT(t->branch));
}

/* Failure found outside a timer callback: leave the tables now, report from t_main. */
static void client_fail_soon(struct txn *t, int status)
{
    struct txn_layer *l = t->layer;
    txn_table_remove(&l->client, t);
    txn_table_remove(&l->conns, t);
    timer_stop(l->timers, &t->t_retx);
    t->pending_failure = status;
    t->cancel_pending = false;
    txn_start(t, &t->t_main, 0, client_main_timer);
}

/* From a timer callback: report and free. */
static void client_fail_now(struct txn *t, int status)
{
    struct txn_layer *l = t->layer;
    txn_table_remove(&l->client, t);
    txn_table_remove(&l->conns, t);
    t->state = TXN_TERMINATED;
    if (!t->detached && t->cb.on_failure) t->cb.on_failure(t->arg, t, status);
    txn_destroy(t);
}

static struct txn *client_create(struct txn_layer *l, const struct transport_dest *dest, const void *data,
                                 size_t len, str_t branch, enum sip_method method, str_t method_name,
                                 const struct txn_client_cb *cb, void *arg)
{
    struct txn *t = calloc(1, sizeof(*t) + branch.len + method_name.len + 2);
    if (!t) return NULL;
    memcpy(t->keys, branch.s, branch.len);
    t->branch = str_make(t->keys, branch.len);
    memcpy(t->keys + branch.len + 1, method_name.s, method_name.len);
    t->method_name = str_make(t->keys + branch.len + 1, method_name.len);
    t->bytes = malloc(len);
    if (!t->bytes) {
        free(t);
        return NULL;
    }
    memcpy(t->bytes, data, len);
    t->bytes_len = t->bytes_cap = len;
    t->layer = l;
    t->client = true;
    t->method = method;
    t->invite = method == SIP_INVITE;
    t->state = t->invite ? TXN_CALLING : TXN_TRYING;
    t->dest = *dest;
    t->reliable = sip_transport_is_stream(dest->proto);
    if (cb) t->cb = *cb;
    else t->detached = true;
    t->arg = arg;
    timer_node_init(&t->t_retx);
    timer_node_init(&t->t_main);
    if (txn_table_insert(&l->client, t, txn_key_hash(t->branch, method, 0)) != 0) {
        free(t->bytes);
        free(t);
        return NULL;
    }
    txn_link_all(t);
    l->stats.client_live++;
    l->stats.client_created++;

    int rc = l->ops.send(l->ops.user, &t->dest, t->bytes, t->bytes_len);
    if (rc < 0) {
        l->stats.transport_errors++;
        log_warn("%.*s (branch %.*s) not sent (%s): reporting 503", STR_FMT(t->method_name), STR_FMT(t->branch),
                 uv_strerror(rc));
        client_fail_soon(t, 503);
        return t;
    }
    client_track_conn(t);
    uint32_t t1 = l->cfg.t1_ms;
    if (!t->reliable) {
        t->retx_interval = t1;
        txn_start(t, &t->t_retx, t1, client_retx_timer); /* A or E */
    }
    txn_start(t, &t->t_main, 64 * (uint64_t)t1, client_main_timer); /* B or F */
    return t;
}

/* The method token of a request line. */
static str_t request_method(const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && i <= METHOD_MAX && data[i] != ' ') {
        char c = data[i];
        if (c <= ' ' || c >= 127) return STR_NULL;
        i++;
    }
    if (i == 0 || i > METHOD_MAX || i >= len) return STR_NULL;
    return str_make(data, i);
}

struct txn *txn_client_new(struct txn_layer *l, const struct transport_dest *dest, const void *data, size_t len,
                           str_t branch, enum sip_method method, const struct txn_client_cb *cb, void *arg)
{
    if (!l || !dest || !data || len == 0) return NULL;
    if (!txn_branch_is_3261(branch) || branch.len > BRANCH_MAX) {
        log_error("client transaction refused: branch \"%.*s\" lacks the z9hG4bK cookie or is too long",
                  (int)(branch.len > 64 ? 64 : branch.len), branch.s ? branch.s : "");
        return NULL;
    }
    str_t name = request_method(data, len);
    if (name.len == 0) {
        log_error("client transaction refused: no request line");
        return NULL;
    }
    if (sip_method_from_str(name) != method) {
        log_error("client transaction refused: method %s but the request line says %.*s", sip_method_name(method),
                  STR_FMT(name));
        return NULL;
    }
    if (method == SIP_ACK) {
        log_error("client transaction refused: ACK is not a transaction (send it directly)");
        return NULL;
    }
    if (client_find(l, branch, method, name)) {
        log_error("client transaction refused: %.*s with branch %.*s exists", STR_FMT(name), STR_FMT(branch));
        return NULL;
    }
    return client_create(l, dest, data, len, branch, method, name, cb, arg);
}

/* ---- ACK and CANCEL (RFC 3261 §17.1.1.3, §9.1) ---- */

static int parse_own_request(struct txn *t, struct sip_msg *req)
{
    struct txn_layer *l = t->layer;
    struct sip_parse_limits lim = l->cfg.limits;
    if (lim.max_message_bytes < t->bytes_len) lim.max_message_bytes = (uint32_t)t->bytes_len;
    struct sip_parse_error err;
    arena_reset(&l->scratch);
    if (sip_parse(t->bytes, t->bytes_len, &l->scratch, &lim, req, &err) != 0) {
        log_error("%.*s (branch %.*s): our own request does not parse (%s)", STR_FMT(t->method_name),
                  STR_FMT(t->branch), err.reason ? err.reason : "?");
        return -EINVAL;
    }
    return 0;
}

static str_t header_value(const struct sip_msg *m, enum sip_hdr type)
{
    const struct sip_header *h = sip_msg_header(m, type);
    return h ? h->value : STR_NULL;
}

static str_t top_via(const struct sip_msg *m)
{
    if (m->via.raw.len) return m->via.raw;
    str_t cursor = header_value(m, SIP_HDR_VIA), item;
    return sip_list_next(&cursor, &item) ? item : STR_NULL;
}

/* The request line through CSeq for ACK and CANCEL: same R-URI, the top Via
 * only, From, To (given), Call-ID, CSeq number with the new method, and the
 * Route set of the original. */
static int build_in_dialog(const struct sip_msg *req, const char *method, str_t to, sbuf_t *b)
{
    str_t via = top_via(req);
    if (!via.len || !to.len) return -EINVAL;
    sbuf_clear(b);
    sbuf_printf(b, "%s %.*s SIP/2.0\r\nVia: %.*s\r\nMax-Forwards: 70\r\nFrom: %.*s\r\nTo: %.*s\r\n"
                   "Call-ID: %.*s\r\nCSeq: %u %s\r\n",
                method, STR_FMT(req->ruri_raw), STR_FMT(via), STR_FMT(header_value(req, SIP_HDR_FROM)), STR_FMT(to),
                STR_FMT(req->call_id), req->cseq.number, method);
    for (const struct sip_header *h = sip_msg_header(req, SIP_HDR_ROUTE); h; h = sip_msg_header_next(req, h)) {
        sbuf_append_cstr(b, "Route: ");
        sbuf_append_str(b, h->value);
        sbuf_append_cstr(b, "\r\n");
    }
    sbuf_append_cstr(b, "Content-Length: 0\r\n\r\n");
    return b->failed ? -ENOMEM : 0;
}

/* Replaces the kept INVITE with the ACK for the non-2xx final resp. */
static int client_build_ack(struct txn *t, const struct sip_msg *resp)
{
    struct txn_layer *l = t->layer;
    struct sip_msg req;
    int rc = parse_own_request(t, &req);
    if (rc == 0) rc = build_in_dialog(&req, "ACK", header_value(resp, SIP_HDR_TO), &l->sb);
    if (rc == 0) rc = txn_keep_bytes(t, l->sb.data, l->sb.len);
    if (rc) log_error("ACK for %d (branch %.*s) could not be built", resp->status, STR_FMT(t->branch));
    return rc;
}

static void client_send_ack(struct txn *t)
{
    struct txn_layer *l = t->layer;
    int rc = l->ops.send(l->ops.user, &t->dest, t->bytes, t->bytes_len);
    if (rc < 0) log_warn("ACK (branch %.*s) not sent: %s", STR_FMT(t->branch), uv_strerror(rc));
}

static int client_send_cancel(struct txn *t)
{
    struct txn_layer *l = t->layer;
    struct sip_msg req;
    int rc = parse_own_request(t, &req);
    if (rc == 0) rc = build_in_dialog(&req, "CANCEL", header_value(&req, SIP_HDR_TO), &l->sb);
    if (rc) {
        log_error("CANCEL for branch %.*s could not be built", STR_FMT(t->branch));
        return rc;
    }
    t->cancel_pending = false;
    t->cancel_sent = true;
    /* Its own non-INVITE client transaction, same branch (§9.1); the TU does
     * not see its responses: the INVITE's 487 is what matters. */
    struct txn *c = client_create(l, &t->dest, l->sb.data, l->sb.len, t->branch, SIP_CANCEL, STR_LIT("CANCEL"),
                                  NULL, NULL);
    return c ? 0 : -ENOMEM;
}

int txn_client_cancel(struct txn *t)
{
    if (!t || !t->client || !t->invite || t->pending_failure) return -EINVAL;
    if (t->state != TXN_CALLING && t->state != TXN_PROCEEDING) return -EINVAL;
    if (t->cancel_sent || t->cancel_pending) return 0;
    if (t->state == TXN_CALLING) {
        t->cancel_pending = true; /* §9.1: not before a provisional response */
        return 0;
    }
    return client_send_cancel(t);
}

void txn_client_detach(struct txn *t)
{
    if (!t || !t->client) return;
    t->detached = true;
    t->cb = (struct txn_client_cb){0};
    t->arg = NULL;
}

/* ---- responses ---- */

static void deliver(struct txn *t, const struct sip_msg *m, const struct transport_rx *rx)
{
    if (!t->detached && t->cb.on_response) t->cb.on_response(t->arg, t, m, rx);
}

static void client_invite_response(struct txn *t, const struct sip_msg *m, const struct transport_rx *rx)
{
    struct txn_layer *l = t->layer;
    int status = m->status;
    if (t->state == TXN_COMPLETED) {
        /* A retransmitted final: ACK again (§17.1.1.2), the TU saw it already. */
        l->stats.retransmissions_absorbed++;
        if (status >= 300) client_send_ack(t);
        return;
    }
    if (t->state != TXN_CALLING && t->state != TXN_PROCEEDING) return;
    t->last_status = status;
    if (status < 200) {
        if (t->state == TXN_CALLING) {
            timer_stop(l->timers, &t->t_retx); /* A */
            timer_stop(l->timers, &t->t_main); /* B: only in Calling */
            t->state = TXN_PROCEEDING;
        }
        if (t->cancel_pending) client_send_cancel(t);
        deliver(t, m, rx);
        return;
    }
    t->cancel_pending = false;
    if (status < 300) {
        /* The TU sends the ACK for a 2xx; later 2xx reach on_stray_response. */
        txn_terminate_soon(t);
        deliver(t, m, rx);
        return;
    }
    timer_stop(l->timers, &t->t_retx);
    if (client_build_ack(t, m) == 0) client_send_ack(t);
    t->state = TXN_COMPLETED;
    txn_start(t, &t->t_main, t->reliable ? 0 : l->cfg.timer_d_ms, client_main_timer); /* D */
    deliver(t, m, rx);
}

static void client_noninvite_response(struct txn *t, const struct sip_msg *m, const struct transport_rx *rx)
{
    struct txn_layer *l = t->layer;
    int status = m->status;
    if (t->state == TXN_COMPLETED) {
        l->stats.retransmissions_absorbed++;
        return;
    }
    if (t->state != TXN_TRYING && t->state != TXN_PROCEEDING) return;
    t->last_status = status;
    if (status < 200) {
        t->state = TXN_PROCEEDING; /* E keeps running, reset at T2 when it fires */
        deliver(t, m, rx);
        return;
    }
    timer_stop(l->timers, &t->t_retx);
    free(t->bytes); /* nothing to retransmit any more */
    t->bytes = NULL;
    t->bytes_len = t->bytes_cap = 0;
    t->state = TXN_COMPLETED;
    txn_start(t, &t->t_main, t->reliable ? 0 : l->cfg.t4_ms, client_main_timer); /* K */
    deliver(t, m, rx);
}

int txn_client_receive(struct txn_layer *l, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    struct txn *t = NULL;
    if (m->status < 100 || m->status > 699) {
        log_warn("response with status %d from %s dropped", m->status, rx->src_text);
        return -EINVAL;
    }
    /* §17.1.3: branch of the top Via and the CSeq method. */
    if (txn_branch_is_3261(m->via.branch))
        t = client_find(l, m->via.branch, m->cseq.method, m->cseq.method_name);
    if (!t) {
        if (l->ops.on_stray_response) l->ops.on_stray_response(l->ops.user, rx);
        return 0;
    }
    if (t->invite) client_invite_response(t, m, rx);
    else client_noninvite_response(t, m, rx);
    return 0;
}

/* ---- timers ---- */

static void client_retx_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct txn *t = container_of(n, struct txn, t_retx);
    struct txn_layer *l = t->layer;
    bool active = t->invite ? t->state == TXN_CALLING : (t->state == TXN_TRYING || t->state == TXN_PROCEEDING);
    if (!active || !t->bytes) return;
    l->stats.retransmissions_sent++;
    int rc = l->ops.send(l->ops.user, &t->dest, t->bytes, t->bytes_len);
    if (rc < 0) {
        l->stats.transport_errors++;
        log_warn("%.*s (branch %.*s) retransmission failed (%s): reporting 503", STR_FMT(t->method_name),
                 STR_FMT(t->branch), uv_strerror(rc));
        client_fail_now(t, 503);
        return;
    }
    uint32_t t2 = l->cfg.t2_ms;
    if (t->invite) t->retx_interval *= 2; /* A doubles without a cap; B ends it */
    else if (t->state == TXN_PROCEEDING) t->retx_interval = t2;
    else t->retx_interval = t->retx_interval * 2 < t2 ? t->retx_interval * 2 : t2;
    txn_start(t, &t->t_retx, t->retx_interval, client_retx_timer);
}

static void client_main_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct txn *t = container_of(n, struct txn, t_main);
    struct txn_layer *l = t->layer;
    if (t->pending_failure) {
        client_fail_now(t, t->pending_failure);
        return;
    }
    bool waiting = t->invite ? t->state == TXN_CALLING : (t->state == TXN_TRYING || t->state == TXN_PROCEEDING);
    if (waiting) {
        l->stats.timeouts++;
        log_info("%.*s (branch %.*s) timed out (timer %c): reporting 408", STR_FMT(t->method_name),
                 STR_FMT(t->branch), t->invite ? 'B' : 'F');
        client_fail_now(t, 408);
        return;
    }
    txn_destroy(t); /* D, K, or the end after a 2xx */
}

void txn_layer_conn_lost(struct txn_layer *l, uint64_t conn_id)
{
    uint32_t h = conn_hash(conn_id);
    for (struct txn *t = txn_table_first(&l->conns, h), *next; t; t = next) {
        next = txn_table_next(&l->conns, t);
        if (t->dest.conn_id != conn_id) continue;
        txn_table_remove(&l->conns, t);
        bool waiting = t->invite ? (t->state == TXN_CALLING || t->state == TXN_PROCEEDING)
                                 : (t->state == TXN_TRYING || t->state == TXN_PROCEEDING);
        if (!waiting || t->pending_failure) continue;
        l->stats.transport_errors++;
        log_info("%.*s (branch %.*s): connection %llu lost, reporting 503", STR_FMT(t->method_name),
                 STR_FMT(t->branch), (unsigned long long)conn_id);
        client_fail_soon(t, 503);
    }
}
