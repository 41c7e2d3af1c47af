/* server.c — server transactions (RFC 3261 §17.2, RFC 6026 §7.1).
 *
 * INVITE:     Proceeding -(1xx)-> Proceeding -(2xx)-> Accepted --L--> gone
 *                                 \-(300-699)-> Completed (G, H) -ACK-> Confirmed --I--> gone
 * non-INVITE: Trying -(1xx)-> Proceeding -(final)-> Completed --J--> gone
 *
 * Stateless finals (txn_respond_stateless, txn_reject): the response goes
 * out once and the transaction ends at once, INVITE included (no G, H, I);
 * its To tag starts with the layer's random prefix, which is how the ACK
 * for it is recognised and absorbed. Over [sip] max_server_transactions
 * live transactions (not counting compact Timer J records), a new request is answered 503 statelessly before any
 * transaction exists.
 *
 * Matching (§17.2.3): branch with the magic cookie + sent-by + method (ACK
 * maps to INVITE); without the cookie, the RFC 2543 rules (Request-URI, tags,
 * Call-ID, CSeq, top Via). The request is borrowed from the transport during
 * on_request; if the TU has not answered by the time it returns, the bytes
 * are copied into a block of the transaction and parsed again, and the copy
 * is freed with the final response. */
#include "txn/txn_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

/* Arena for the re-parsed copy: the model's headers and eager fields. */
#define REQ_ARENA_SLACK 256
#define MAX_EDITS 4

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* ---- matching ---- */

static uint32_t server_hash(const struct sip_msg *m, enum sip_method method, bool rfc3261)
{
    return rfc3261 ? txn_key_hash(m->via.branch, method, 0) : txn_key_hash(m->call_id, method, m->cseq.number);
}

static bool ruri_equal(str_t raw, const struct sip_msg *m)
{
    struct sip_uri u;
    if (sip_uri_parse(raw, &u) != 0) return str_eq(raw, m->ruri_raw);
    return sip_uri_equal(&u, &m->ruri);
}

/* RFC 3261 §17.2.3, last paragraphs: the RFC 2543 rules. */
static bool match_2543(const struct txn *t, const struct sip_msg *m, bool ack)
{
    if (!str_eq(t->call_id, m->call_id) || t->cseq != m->cseq.number) return false;
    if (!str_eq(t->from_tag, m->from.tag)) return false;
    if (!str_ieq(t->sent_by_host, m->via.host) || t->sent_by_port != m->via.port) return false;
    if (!str_ieq(t->via_transport, m->via.transport) || !str_eq(t->branch, m->via.branch)) return false;
    /* An ACK carries the To tag of the response it acknowledges. */
    str_t to_tag = ack && t->resp_to_tag ? str_from_cstr(t->resp_to_tag) : t->to_tag;
    if (!str_eq(to_tag, m->to.tag)) return false;
    return ruri_equal(t->ruri, m);
}

struct txn *txn_server_find(struct txn_layer *l, const struct sip_msg *m, enum sip_method method, bool ack)
{
    bool rfc3261 = txn_branch_is_3261(m->via.branch);
    uint32_t h = server_hash(m, method, rfc3261);
    for (struct txn *t = txn_table_first(&l->server, h); t; t = txn_table_next(&l->server, t)) {
        if (t->method != method || t->rfc2543 == rfc3261) continue;
        if (method == SIP_METHOD_UNKNOWN && !str_eq(t->method_name, m->method_name)) continue;
        if (rfc3261) {
            if (str_eq(t->branch, m->via.branch) && str_ieq(t->sent_by_host, m->via.host) &&
                t->sent_by_port == m->via.port)
                return t;
        } else if (match_2543(t, m, ack)) {
            return t;
        }
    }
    return NULL;
}

struct txn *txn_find_invite_for_cancel(struct txn_layer *l, const struct transport_rx *rx)
{
    if (!l || !rx || !rx->msg || !rx->msg->is_request || rx->msg->method != SIP_CANCEL) return NULL;
    return txn_server_find(l, rx->msg, SIP_INVITE, false); /* RFC 3261 §9.2 */
}

/* ---- the kept request ---- */

/* Header values the transport rewrote (the stamped Via) live outside the
 * receive buffer: remember them so that the copy carries them too. */
struct edits {
    uint32_t n;
    uint32_t index[MAX_EDITS];
    str_t value[MAX_EDITS];
};

static void snapshot_edits(const struct sip_msg *m, struct edits *e)
{
    const char *lo = m->buf, *hi = m->buf + m->len;
    e->n = 0;
    for (uint32_t i = 0; i < m->header_count && e->n < MAX_EDITS; i++) {
        str_t v = m->headers[i].value;
        if (v.len && (v.s < lo || v.s + v.len > hi)) {
            e->index[e->n] = i;
            e->value[e->n] = v;
            e->n++;
        }
    }
}

static void server_drop_request(struct txn *t)
{
    if (t->copy) {
        arena_free(&t->copy->arena);
        free(t->copy);
        t->copy = NULL;
    }
    t->req = NULL;
    t->rx = NULL;
}

void txn_server_free_parts(struct txn *t)
{
    server_drop_request(t);
    free(t->resp_to_tag);
    t->resp_to_tag = NULL;
}

/* What the parser takes from the arena for m again: its header array grows
 * from 32 entries by doubling; plus the edited values. Sized so that a
 * typical request never reaches the arena's 16 KB heap fallback. */
static size_t copy_arena_bytes(const struct sip_msg *m, const struct edits *e)
{
    size_t n = 0;
    for (uint32_t cap = 32;; cap *= 2) {
        n += align16(cap * sizeof(struct sip_header));
        if (cap >= m->header_count) break;
    }
    for (uint32_t i = 0; i < e->n; i++) n += align16(e->value[i].len + 1);
    return n + REQ_ARENA_SLACK;
}

static int keep_request(struct txn *t, const struct sip_msg *m, const struct transport_rx *rx, const struct edits *e)
{
    struct txn_layer *l = t->layer;
    size_t head = align16(sizeof(struct txn_req_copy));
    size_t data = align16(m->len);
    size_t arena_cap = copy_arena_bytes(m, e);
    struct txn_req_copy *c = malloc(head + data + arena_cap);
    if (!c) return -ENOMEM;
    c->data = (char *)c + head;
    c->len = m->len;
    memcpy(c->data, m->buf, m->len);
    arena_init(&c->arena, (char *)c + head + data, arena_cap);
    struct sip_parse_limits lim = l->cfg.limits;
    if (lim.max_message_bytes < m->len) lim.max_message_bytes = (uint32_t)m->len;
    if (lim.max_headers < m->header_count) lim.max_headers = m->header_count;
    struct sip_parse_error err;
    int rc = sip_parse(c->data, c->len, &c->arena, &lim, &c->msg, &err) == 0 ? 0 : -EINVAL;
    for (uint32_t i = 0; rc == 0 && i < e->n; i++) {
        if (e->index[i] >= c->msg.header_count) {
            rc = -EINVAL;
            break;
        }
        str_t v = arena_strdup(&c->arena, e->value[i]);
        if (!v.s) {
            rc = -ENOMEM;
            break;
        }
        c->msg.headers[e->index[i]].value = v;
        if (c->msg.first[SIP_HDR_VIA] == (int32_t)e->index[i]) {
            str_t cursor = v, top;
            if (!sip_list_next(&cursor, &top) || sip_via_parse(top, &c->msg.via) != 0) rc = -EINVAL;
        }
    }
    if (rc) {
        arena_free(&c->arena);
        free(c);
        return rc;
    }
    c->rx = *rx;
    c->rx.msg = &c->msg;
    c->rx.parse_error = NULL;
    t->copy = c;
    t->req = &c->msg;
    t->rx = &c->rx;
    return 0;
}

/* ---- sending responses ---- */

/* The peer, for logs (the request may be gone). */
static const char *peer_text(const struct txn *t, char *buf, size_t cap)
{
    if (t->rx) return t->rx->src_text;
    transport_addr_text(&t->dest.addr, buf, cap);
    return buf;
}

static void server_main_timer(struct timer_node *n, uint64_t now);
static void server_retx_timer(struct timer_node *n, uint64_t now);

static void server_transport_error(struct txn *t, int rc)
{
    struct txn_layer *l = t->layer;
    char peer[TRANSPORT_ADDR_TEXT];
    l->stats.transport_errors++;
    log_warn("%d response to %.*s from %s not sent (%s): ending the transaction", t->last_status,
             STR_FMT(t->method_name), peer_text(t, peer, sizeof(peer)), uv_strerror(rc));
    server_drop_request(t);
    txn_terminate_soon(t); /* RFC 3261 §17.2.4 */
}

static void server_after_send(struct txn *t, int status)
{
    struct txn_layer *l = t->layer;
    uint32_t t1 = l->cfg.t1_ms;
    if (t->invite && t->state == TXN_PROCEEDING) timer_stop(l->timers, &t->t_retx); /* no auto 100 now */
    if (status < 200) {
        if (!t->invite) t->state = TXN_PROCEEDING;
        return;
    }
    if (t->state == TXN_ACCEPTED) return; /* another 2xx */
    server_drop_request(t);
    if (!t->invite) {
        t->state = TXN_COMPLETED;
        txn_start(t, &t->t_main, t->reliable ? 0 : 64 * (uint64_t)t1, server_main_timer); /* J */
        return;
    }
    if (status < 300) {
        t->state = TXN_ACCEPTED; /* RFC 6026 §7.1, timer L */
        txn_start(t, &t->t_main, 64 * (uint64_t)t1, server_main_timer);
        return;
    }
    t->state = TXN_COMPLETED;
    if (!t->reliable) {
        t->retx_interval = t1;
        txn_start(t, &t->t_retx, t1, server_retx_timer); /* G */
    }
    txn_start(t, &t->t_main, 64 * (uint64_t)t1, server_main_timer); /* H */
}

/* The final response to a non-INVITE request went out over UDP and a done.c
 * record now answers retransmissions (or, stateless, nothing does): this
 * transaction has nothing left to do. It leaves the table now and is freed on the next timer run (so that
 * the caller's pointer stays valid until its call returns). */
static void server_handed_over(struct txn *t)
{
    struct txn_layer *l = t->layer;
    server_drop_request(t);
    t->state = TXN_COMPLETED;
    t->handed_over = true;
    l->stats.server_live--; /* the record counts instead */
    txn_table_remove(&l->server, t);
    timer_stop(l->timers, &t->t_retx);
    txn_start(t, &t->t_main, 0, server_main_timer);
}

/* The first final response of t went out: tell the TU (handling time). */
static void server_final_sent(struct txn *t, int status, bool first_final)
{
    struct txn_layer *l = t->layer;
    if (first_final && l->ops.on_final_sent) l->ops.on_final_sent(l->ops.user, t, status, t->stamp);
}

static int server_send(struct txn *t, int status, const void *data, size_t len)
{
    struct txn_layer *l = t->layer;
    bool first_final = status >= 200 && t->last_status < 200;
    if (status >= 200 && t->stateless && t->state != TXN_ACCEPTED) {
        /* Sent once from the caller's buffer; nothing is kept. */
        t->last_status = status;
        int rc = l->ops.send(l->ops.user, &t->dest, data, len);
        if (rc < 0) {
            server_transport_error(t, rc);
            return rc;
        }
        l->stats.stateless_finals++;
        server_final_sent(t, status, first_final);
        server_handed_over(t);
        return 0;
    }
    if (status >= 200 && !t->invite && !t->reliable && !t->rfc2543) {
        /* Sent straight from the caller's buffer; the record keeps the copy. */
        t->last_status = status;
        int rc = l->ops.send(l->ops.user, &t->dest, data, len);
        if (rc < 0) {
            server_transport_error(t, rc);
            return rc;
        }
        server_final_sent(t, status, first_final);
        if (txn_done_add(l, t, data, len) == 0) {
            server_handed_over(t);
            return 0;
        }
        /* No memory for a record: wait out Timer J here, as any transaction. */
        if (txn_keep_bytes(t, data, len) != 0) {
            char peer[TRANSPORT_ADDR_TEXT];
            log_error("%d response to %.*s from %s sent, but no memory to keep it for retransmissions", status,
                      STR_FMT(t->method_name), peer_text(t, peer, sizeof(peer)));
            server_drop_request(t);
            txn_terminate_soon(t);
            return 0;
        }
        server_after_send(t, status);
        return 0;
    }
    if (txn_keep_bytes(t, data, len) != 0) {
        char peer[TRANSPORT_ADDR_TEXT];
        log_error("%d response to %.*s from %s: out of memory", status, STR_FMT(t->method_name),
                  peer_text(t, peer, sizeof(peer)));
        return -ENOMEM;
    }
    t->last_status = status;
    int rc = l->ops.send(l->ops.user, &t->dest, t->bytes, t->bytes_len);
    if (rc < 0) {
        server_transport_error(t, rc);
        return rc;
    }
    server_final_sent(t, status, first_final);
    server_after_send(t, status);
    return 0;
}

static int server_may_send(const struct txn *t, int status)
{
    if (!t || t->client || status < 100 || status > 699) return -EINVAL;
    switch (t->state) {
    case TXN_TRYING:
    case TXN_PROCEEDING: return 0;
    case TXN_ACCEPTED: return status >= 200 && status < 300 ? 0 : -EALREADY;
    case TXN_TERMINATED: return -EPIPE;
    default: return -EALREADY;
    }
}

static int remember_to_tag(struct txn *t, str_t tag)
{
    free(t->resp_to_tag);
    t->resp_to_tag = str_dup(tag);
    return t->resp_to_tag ? 0 : -ENOMEM;
}

int txn_respond(struct txn *t, int status, const char *reason, str_t to_tag, const str_t *extra_headers,
                size_t n_extra, str_t content_type, str_t body)
{
    int rc = server_may_send(t, status);
    if (rc) return rc;
    /* In Accepted the request is gone: the TU retransmits its 2xx (RFC 6026 §7.1). */
    if (t->state == TXN_ACCEPTED) return server_send(t, status, t->bytes, t->bytes_len);
    if (!t->req) return -EINVAL;
    struct txn_layer *l = t->layer;
    char sl_tag[TXN_SL_TAG_SIZE];
    if (t->stateless && status >= 200 && t->req->to.tag.len == 0) {
        txn_sl_tag(l, t->req, sl_tag); /* the ACK is recognised by it */
        to_tag = str_from_cstr(sl_tag);
    }
    sbuf_clear(&l->sb);
    if (sip_build_response(t->req, status, reason, to_tag, extra_headers, n_extra, content_type, body, &l->sb) != 0 ||
        l->sb.failed) {
        log_error("%d response to %.*s from %s could not be built", status, STR_FMT(t->method_name),
                  t->rx->src_text);
        return l->sb.failed ? -ENOMEM : -EINVAL;
    }
    if (t->rfc2543 && status >= 200 && remember_to_tag(t, t->req->to.tag.len ? t->req->to.tag : to_tag) != 0)
        return -ENOMEM;
    return server_send(t, status, l->sb.data, l->sb.len);
}

int txn_respond_stateless(struct txn *t, int status, const char *reason, str_t to_tag, const str_t *extra_headers,
                          size_t n_extra, str_t content_type, str_t body)
{
    if (t && !t->client && status >= 200) t->stateless = true;
    int rc = txn_respond(t, status, reason, to_tag, extra_headers, n_extra, content_type, body);
    if (t && rc != 0 && !t->client && t->state != TXN_TERMINATED) t->stateless = false;
    return rc;
}

int txn_reject(struct txn *t, int status, const char *reason, str_t to_tag, const str_t *extra_headers, size_t n_extra,
               str_t content_type, str_t body)
{
    const struct sip_msg *req = txn_request(t);
    bool stateless = req && status >= 300 && req->to.tag.len == 0 && t->last_status == 0;
    return (stateless ? txn_respond_stateless : txn_respond)(t, status, reason, to_tag, extra_headers, n_extra,
                                                             content_type, body);
}

int txn_layer_reply_stateless(struct txn_layer *l, const struct transport_rx *rx, int status, const char *reason,
                              const str_t *extra_headers, size_t n_extra)
{
    struct transport_dest dest;
    if (!l || !rx || !rx->msg || !rx->msg->is_request) return -EINVAL;
    if (transport_response_dest(rx, &dest) != 0) return -EINVAL;
    char sl_tag[TXN_SL_TAG_SIZE];
    txn_sl_tag(l, rx->msg, sl_tag);
    sbuf_clear(&l->sb);
    if (sip_build_response(rx->msg, status, reason, str_from_cstr(sl_tag), extra_headers, n_extra, STR_NULL,
                           STR_NULL, &l->sb) != 0 ||
        l->sb.failed)
        return l->sb.failed ? -ENOMEM : -EINVAL;
    int rc = l->ops.send(l->ops.user, &dest, l->sb.data, l->sb.len);
    if (rc == 0) l->stats.stateless_finals++;
    return rc;
}

int txn_respond_bytes(struct txn *t, int status, const void *data, size_t len)
{
    int rc = server_may_send(t, status);
    if (rc) return rc;
    if (!data || len == 0) return -EINVAL;
    if (t->rfc2543 && status >= 200) {
        struct txn_layer *l = t->layer;
        struct sip_msg resp;
        struct sip_parse_error err;
        struct sip_parse_limits lim = l->cfg.limits;
        if (lim.max_message_bytes < len) lim.max_message_bytes = (uint32_t)len;
        arena_reset(&l->scratch);
        if (sip_parse(data, len, &l->scratch, &lim, &resp, &err) != 0) return -EINVAL;
        if (remember_to_tag(t, resp.to.tag) != 0) return -ENOMEM;
    }
    return server_send(t, status, data, len);
}

const struct sip_msg *txn_request(const struct txn *t) { return t && !t->client ? t->req : NULL; }

const struct transport_rx *txn_rx_info(const struct txn *t) { return t && !t->client ? t->rx : NULL; }


/* ---- timers ---- */

static void server_retx_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct txn *t = container_of(n, struct txn, t_retx);
    struct txn_layer *l = t->layer;
    if (t->invite && t->state == TXN_PROCEEDING) {
        /* RFC 3261 §17.2.1: the TU said nothing within 200 ms. */
        if (t->last_status || !t->req) return;
        sbuf_clear(&l->sb);
        if (sip_build_response(t->req, 100, "Trying", STR_NULL, NULL, 0, STR_NULL, STR_NULL, &l->sb) != 0 ||
            l->sb.failed) {
            log_error("100 Trying to INVITE from %s could not be built", t->rx->src_text);
            return;
        }
        server_send(t, 100, l->sb.data, l->sb.len);
        return;
    }
    if (!t->invite || t->state != TXN_COMPLETED) return;
    /* Timer G: the final response again, doubling up to T2. */
    l->stats.retransmissions_sent++;
    int rc = l->ops.send(l->ops.user, &t->dest, t->bytes, t->bytes_len);
    if (rc < 0) {
        server_transport_error(t, rc);
        return;
    }
    t->retx_interval = t->retx_interval * 2 < l->cfg.t2_ms ? t->retx_interval * 2 : l->cfg.t2_ms;
    txn_start(t, &t->t_retx, t->retx_interval, server_retx_timer);
}

static void server_main_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct txn *t = container_of(n, struct txn, t_main);
    if (t->invite && t->state == TXN_COMPLETED && !t->handed_over) { /* handed over: stateless, no ACK awaited */
        char peer[TRANSPORT_ADDR_TEXT];
        log_info("timer H: no ACK from %s for the %d to INVITE (branch %.*s)", peer_text(t, peer, sizeof(peer)),
                 t->last_status, STR_FMT(t->branch));
    }
    /* H, I, J, L: the transaction ends. */
    txn_destroy(t);
}

/* ---- receiving requests ---- */

static void server_retransmission(struct txn *t)
{
    struct txn_layer *l = t->layer;
    l->stats.retransmissions_absorbed++;
    /* Trying (non-INVITE) has nothing to send; Confirmed and Accepted absorb silently. */
    if ((t->state != TXN_PROCEEDING && t->state != TXN_COMPLETED) || t->bytes_len == 0) return;
    int rc = l->ops.send(l->ops.user, &t->dest, t->bytes, t->bytes_len);
    if (rc < 0) server_transport_error(t, rc);
}

static void server_ack(struct txn_layer *l, struct txn *t, const struct transport_rx *rx)
{
    switch (t ? t->state : TXN_TERMINATED) {
    case TXN_COMPLETED:
        /* RFC 3261 §17.2.1: the ACK for our non-2xx; timer I absorbs ACK retransmissions. */
        l->stats.retransmissions_absorbed++;
        timer_stop(l->timers, &t->t_retx);
        t->state = TXN_CONFIRMED;
        txn_start(t, &t->t_main, t->reliable ? 0 : l->cfg.t4_ms, server_main_timer);
        return;
    case TXN_CONFIRMED:
    case TXN_PROCEEDING: /* an ACK before any final response: nothing to acknowledge */
        l->stats.retransmissions_absorbed++;
        return;
    default: /* Accepted (RFC 6026: the ACK for the 2xx goes to the TU) or no transaction */
        if (!t && txn_sl_tag_is_ours(l, rx->msg->to.tag)) {
            /* The ACK for a final we sent statelessly (§17.2.1's job, done without state). */
            l->stats.stateless_acks_absorbed++;
            return;
        }
        if (l->ops.on_ack) l->ops.on_ack(l->ops.user, rx);
        return;
    }
}

static struct txn *server_alloc(struct txn_layer *l, const struct sip_msg *m, bool rfc2543)
{
    size_t klen = m->via.branch.len + m->method_name.len + m->via.host.len + m->via.transport.len + 4;
    if (rfc2543) klen += m->ruri_raw.len + m->from.tag.len + m->to.tag.len + m->call_id.len + 4;
    struct txn *t = calloc(1, sizeof(*t) + klen);
    if (!t) return NULL;
    size_t off = 0;
#define KEY(field, src)                                        \
    do {                                                       \
        str_t s_ = (src);                                      \
        if (s_.len) memcpy(t->keys + off, s_.s, s_.len);       \
        t->field = str_make(t->keys + off, s_.len);            \
        off += s_.len + 1;                                     \
    } while (0)
    KEY(branch, m->via.branch);
    KEY(method_name, m->method_name);
    KEY(sent_by_host, m->via.host);
    KEY(via_transport, m->via.transport);
    if (rfc2543) {
        KEY(ruri, m->ruri_raw);
        KEY(from_tag, m->from.tag);
        KEY(to_tag, m->to.tag);
        KEY(call_id, m->call_id);
    }
#undef KEY
    t->sent_by_port = m->via.port;
    t->cseq = m->cseq.number;
    t->layer = l;
    t->method = m->method;
    t->invite = m->method == SIP_INVITE;
    t->rfc2543 = rfc2543;
    t->state = t->invite ? TXN_PROCEEDING : TXN_TRYING;
    timer_node_init(&t->t_retx);
    timer_node_init(&t->t_main);
    return t;
}

static int server_create(struct txn_layer *l, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    bool rfc2543 = !txn_branch_is_3261(m->via.branch);
    struct txn *t = server_alloc(l, m, rfc2543);
    if (!t) {
        log_error("%.*s from %s dropped: out of memory for a transaction", STR_FMT(m->method_name), rx->src_text);
        return -ENOMEM;
    }
    if (transport_response_dest(rx, &t->dest) != 0) {
        log_warn("%.*s from %s dropped: no address to answer", STR_FMT(m->method_name), rx->src_text);
        free(t);
        return -EINVAL;
    }
    t->reliable = sip_transport_is_stream(t->dest.proto);
    if (txn_table_insert(&l->server, t, server_hash(m, m->method, !rfc2543)) != 0) {
        log_error("%.*s from %s dropped: out of memory for the transaction table", STR_FMT(m->method_name),
                  rx->src_text);
        free(t);
        return -ENOMEM;
    }
    txn_link_all(t);
    l->stats.server_live++;
    l->stats.server_created++;
    t->rx = rx;
    t->req = m;

    struct edits e;
    snapshot_edits(m, &e);
    if (t->invite) txn_start(t, &t->t_retx, l->cfg.trying_ms, server_retx_timer);
    l->ops.on_request(l->ops.user, t, rx);
    if (t->req != m) return 0; /* answered (or failed) inside the callback */

    int rc = keep_request(t, m, rx, &e);
    if (rc) {
        log_error("%.*s from %s: cannot keep the request (%s), answering 500", STR_FMT(m->method_name), rx->src_text,
                  rc == -ENOMEM ? "out of memory" : "re-parse failed");
        txn_respond(t, 500, "Server Internal Error", STR_NULL, NULL, 0, STR_NULL, STR_NULL);
        server_drop_request(t);
    }
    return 0;
}

/* A new request while max_server transactions live: 503 + Retry-After
 * (RFC 3261 §21.5.4), stateless, the TU never sees it. One warning a second
 * at most, with the count of those not logged. */
static void refuse_over_cap(struct txn_layer *l, const struct transport_rx *rx)
{
    l->stats.refused_over_cap++;
    char line[32];
    snprintf(line, sizeof(line), "Retry-After: %u", l->cfg.retry_after_s);
    str_t extra = str_from_cstr(line);
    int rc = txn_layer_reply_stateless(l, rx, 503, "Service Unavailable", &extra, 1);
    uint64_t now = txn_now(l);
    if (l->cap_log_ms && now - l->cap_log_ms < 1000) {
        l->cap_log_suppressed++;
        return;
    }
    log_warn("%.*s from %s %s: %u server transactions live ([sip] max_server_transactions), answering 503%s "
             "(%llu more refused since the last warning)",
             STR_FMT(rx->msg->method_name), transport_name(rx->proto), rx->src_text, l->stats.server_live,
             rc == 0 ? "" : " failed", (unsigned long long)l->cap_log_suppressed);
    l->cap_log_ms = now ? now : 1;
    l->cap_log_suppressed = 0;
}

int txn_server_receive(struct txn_layer *l, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (m->method == SIP_ACK) {
        server_ack(l, txn_server_find(l, m, SIP_INVITE, true), rx);
        return 0;
    }
    struct txn *t = txn_server_find(l, m, m->method, false);
    if (t) {
        server_retransmission(t);
        return 0;
    }
    if (m->method != SIP_INVITE && txn_branch_is_3261(m->via.branch) &&
        txn_done_receive(l, m, server_hash(m, m->method, true)))
        return 0;
    /* The cap counts full transactions, the state a stranger could grow; the
     * compact Timer J records of answered requests (done.c, a few hundred
     * bytes each, gone after 64*T1) come only from requests we accepted, and
     * a REGISTER rate above max_server / 32 s must not be refused for them. */
    if (l->cfg.max_server && l->stats.server_live - (uint32_t)l->done.count >= l->cfg.max_server) {
        refuse_over_cap(l, rx);
        return 0;
    }
    return server_create(l, rx);
}
