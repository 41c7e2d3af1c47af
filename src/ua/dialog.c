/* dialog.c — SIP dialogs (RFC 3261 §12, §13.2.2.4, §13.3.1.4, §15).
 *
 * A dialog is keyed by Call-ID and our (local) tag in one hash table of the
 * UA: an incoming in-dialog request carries our tag in To, a response to our
 * INVITE carries it in From. The remote tag is checked after the lookup.
 *
 * UAC dialogs come from the 2xx to an INVITE sent through the UAC helper: the
 * route set is the Record-Route of the 2xx reversed, the remote target its
 * Contact (§12.1.2). The UA sends the ACK itself (a new branch, the INVITE's
 * CSeq number, the same credentials) and re-sends it for each retransmitted
 * 2xx. UAS dialogs come from ua_answer_invite(): route set as received,
 * remote target the INVITE's Contact (§12.1.1); the 2xx is re-sent at T1,
 * doubling to T2, until the ACK, and after 64*T1 the dialog ends with a BYE
 * (§13.3.1.4). */
#include "ua/ua_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "txn/txn.h"

#define MAX_ANSWER_HEADERS 32

const char *ua_dialog_end_name(enum ua_dialog_end why)
{
    switch (why) {
    case UA_END_BYE_RECEIVED: return "bye";
    case UA_END_NO_ACK: return "no-ack";
    }
    return "?";
}

/* ---- table ---- */

uint32_t ua_dialog_hash(str_t call_id, str_t local_tag) { return str_hash(call_id) * 31u ^ str_hash(local_tag); }

static int table_insert(struct ua *ua, struct ua_dialog *d)
{
    uint32_t h = ua_dialog_hash(str_from_cstr(d->call_id), str_from_cstr(d->local_tag));
    return htable_insert(&ua->dialogs, &d->node, h) == 0 ? 0 : -1;
}

static void table_remove(struct ua *ua, struct ua_dialog *d) { htable_remove(&ua->dialogs, &d->node); }

struct ua_dialog *ua_dialog_find(struct ua *ua, str_t call_id, str_t local_tag)
{
    if (!call_id.len || !local_tag.len) return NULL;
    for (struct hnode *n = htable_first(&ua->dialogs, ua_dialog_hash(call_id, local_tag)); n; n = htable_next(n)) {
        struct ua_dialog *d = container_of(n, struct ua_dialog, node);
        if (str_eq_cstr(call_id, d->call_id) && str_eq_cstr(local_tag, d->local_tag)) return d;
    }
    return NULL;
}

/* ---- life ---- */

static void dialog_free(struct ua_dialog *d, bool in_table)
{
    struct ua *ua = d->ua;
    if (in_table) table_remove(ua, d);
    timer_stop(ua_timers(ua), &d->retx);
    timer_stop(ua_timers(ua), &d->giveup);
    ua_uacs_forget_dialog(ua, d);
    free(d->call_id);
    free(d->local_tag);
    free(d->remote_tag);
    free(d->local_uri);
    free(d->remote_uri);
    free(d->remote_target);
    free(d->local_contact);
    for (size_t i = 0; i < d->route_count; i++) free(d->routes[i]);
    free(d->local_host);
    free(d->user);
    free(d->password);
    free(d->ha1);
    free(d->auth_line);
    free(d->keep);
    free(d);
}

static int free_one(struct hnode *n, void *arg)
{
    struct ua *ua = arg;
    htable_remove(&ua->dialogs, n);
    dialog_free(container_of(n, struct ua_dialog, node), false);
    return 0;
}

void ua_dialogs_free(struct ua *ua) { htable_foreach(&ua->dialogs, free_one, ua); }

static char *dup_c(const char *s) { return s ? strdup(s) : NULL; }

/* First Contact URI of m, or STR_NULL. */
static str_t contact_uri(const struct sip_msg *m)
{
    struct sip_list_iter it;
    str_t item;
    struct sip_name_addr na;
    sip_list_iter_init(&it, m, SIP_HDR_CONTACT);
    if (sip_list_iter_next(&it, &item) && sip_name_addr_parse(item, &na) == 0 && !na.star) return na.uri_raw;
    return STR_NULL;
}

/* Record-Route elements of m, in order (reversed when reverse). */
static int take_routes(struct ua_dialog *d, const struct sip_msg *m, bool reverse)
{
    struct sip_list_iter it;
    str_t item, all[UA_MAX_ROUTES];
    size_t n = 0;
    sip_list_iter_init(&it, m, SIP_HDR_RECORD_ROUTE);
    while (sip_list_iter_next(&it, &item)) {
        if (n == UA_MAX_ROUTES) {
            log_warn("dialog %s: more than %d Record-Route entries, refused", d->call_id, UA_MAX_ROUTES);
            return -E2BIG;
        }
        all[n++] = item;
    }
    for (size_t i = 0; i < n; i++) {
        d->routes[i] = ua_strdup_str(all[reverse ? n - 1 - i : i]);
        if (!d->routes[i]) return -ENOMEM;
        d->route_count = i + 1;
    }
    return 0;
}

/* Where in-dialog requests go: see ua_dialog_set_dest. */
static void dialog_dest(const struct ua_dialog *d, struct transport_dest *out)
{
    if (d->pinned || (sip_transport_is_stream(d->flow.proto) && d->flow.conn_id)) {
        *out = d->flow;
        return;
    }
    str_t next = str_from_cstr(d->remote_target);
    struct sip_name_addr na;
    if (d->route_count && sip_name_addr_parse(str_from_cstr(d->routes[0]), &na) == 0) next = na.uri_raw;
    if (ua_dest_from_uri(next, out) != 0) *out = d->flow;
}

/* RFC 3261 §12.2.1.1: R-URI and Route set, loose or strict routing. The
 * strict case needs "<remote target>" as the last Route: buf holds it. */
static void dialog_fill(struct ua_dialog *d, enum sip_method method, uint32_t cseq, struct ua_request *r,
                        str_t routes[UA_MAX_ROUTES + 1], sbuf_t *buf)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->ruri = str_from_cstr(d->remote_target);
    r->from = str_from_cstr(d->local_uri);
    r->from_tag = str_from_cstr(d->local_tag);
    r->to = str_from_cstr(d->remote_uri);
    r->to_tag = str_from_cstr(d->remote_tag);
    r->call_id = str_from_cstr(d->call_id);
    r->cseq = cseq;
    r->local_host = str_from_cstr(d->local_host);
    if (method == SIP_INVITE || method == SIP_UPDATE || method == SIP_SUBSCRIBE || method == SIP_NOTIFY ||
        method == SIP_REFER)
        r->contact = str_from_cstr(d->local_contact); /* target refresh requests (§12.2.1.1) */
    size_t n = 0;
    struct sip_name_addr first;
    bool strict = d->route_count && sip_name_addr_parse(str_from_cstr(d->routes[0]), &first) == 0 && !first.uri.lr;
    if (strict) {
        r->ruri = first.uri_raw;
        for (size_t i = 1; i < d->route_count; i++) routes[n++] = str_from_cstr(d->routes[i]);
        sbuf_clear(buf);
        sbuf_append_char(buf, '<');
        sbuf_append_cstr(buf, d->remote_target);
        sbuf_append_char(buf, '>');
        if (!buf->failed) routes[n++] = sbuf_str(buf);
    } else {
        for (size_t i = 0; i < d->route_count; i++) routes[n++] = str_from_cstr(d->routes[i]);
    }
    r->routes = n ? routes : NULL;
    r->route_count = n;
}

/* Prints the ACK for our INVITE's 2xx and sends it (§13.2.2.4). */
static int dialog_send_ack(struct ua_dialog *d)
{
    struct ua *ua = d->ua;
    struct ua_request r;
    str_t routes[UA_MAX_ROUTES + 1];
    sbuf_t buf, out;
    sbuf_init(&buf);
    sbuf_init(&out);
    dialog_fill(d, SIP_ACK, d->invite_cseq, &r, routes, &buf);
    str_t auth = str_from_cstr(d->auth_line);
    if (d->auth_line) {
        r.headers = &auth; /* the ACK carries the INVITE's credentials (§13.2.2.4) */
        r.header_count = 1;
    }
    dialog_dest(d, &d->keep_dest);
    char branch[TXN_BRANCH_SIZE];
    int rc = ua_build(ua, &r, &d->keep_dest, branch, &out);
    sbuf_free(&buf);
    if (rc == 0) {
        free(d->keep);
        d->keep_len = out.len;
        d->keep = sbuf_take(&out);
        rc = ua_send_raw(ua, &d->keep_dest, d->keep, d->keep_len);
        if (rc < 0) log_warn("ACK for dialog %s not sent: %s", d->call_id, uv_strerror(rc));
        else ua->stats.acks_sent++;
    } else {
        log_error("ACK for dialog %s could not be built", d->call_id);
    }
    sbuf_free(&out);
    return rc;
}

static struct ua_dialog *dialog_new_uac(struct ua *ua, struct ua_uac *h, const struct sip_msg *resp)
{
    const struct ua_request *q = &h->rc->req;
    struct ua_dialog *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->ua = ua;
    d->uac = true;
    d->confirmed = true;
    timer_node_init(&d->retx);
    timer_node_init(&d->giveup);
    struct sip_name_addr from;
    str_t target = contact_uri(resp);
    d->call_id = ua_strdup_str(q->call_id);
    d->local_tag = ua_strdup_str(q->from_tag);
    d->remote_tag = ua_strdup_str(resp->to.tag);
    d->local_uri = sip_name_addr_parse(q->from, &from) == 0 ? ua_name_addr_uri(&from) : ua_strdup_str(q->from);
    d->remote_uri = ua_name_addr_uri(&resp->to);
    d->remote_target = ua_strdup_str(target.len ? target : q->ruri);
    d->local_host = q->local_host.len ? ua_strdup_str(q->local_host) : NULL;
    d->local_contact = q->contact.len ? ua_strdup_str(q->contact) : NULL;
    d->user = dup_c(h->user);
    d->password = dup_c(h->password);
    d->ha1 = dup_c(h->ha1);
    d->auth_line = dup_c(h->auth_line);
    d->local_cseq = d->invite_cseq = q->cseq;
    d->flow = h->dest;
    d->pinned = q->pin_dest;
    if (!d->call_id || !d->local_tag || !d->remote_tag || !d->local_uri || !d->remote_uri || !d->remote_target ||
        (q->local_host.len && !d->local_host) || (q->contact.len && !d->local_contact) || (h->user && !d->user) ||
        (h->password && !d->password) || (h->ha1 && !d->ha1) || (h->auth_line && !d->auth_line) ||
        take_routes(d, resp, true) != 0) {
        dialog_free(d, false);
        return NULL;
    }
    return d;
}

struct ua_dialog *ua_dialog_from_2xx(struct ua *ua, struct ua_uac *h, const struct sip_msg *resp,
                                     const struct transport_rx *rx)
{
    (void)rx;
    struct ua_dialog *d = dialog_new_uac(ua, h, resp);
    if (!d) return NULL;
    if (ua_dialog_find(ua, str_from_cstr(d->call_id), str_from_cstr(d->local_tag)) || table_insert(ua, d) != 0) {
        log_warn("dialog %s;%s exists already or no memory", d->call_id, d->local_tag);
        dialog_free(d, false);
        return NULL;
    }
    dialog_send_ack(d);
    return d;
}

/* Sends BYE for d (a fresh request, its answer not reported). */
static int dialog_send_bye(struct ua_dialog *d)
{
    struct ua_request r;
    str_t routes[UA_MAX_ROUTES + 1];
    sbuf_t buf;
    sbuf_init(&buf);
    dialog_fill(d, SIP_BYE, ++d->local_cseq, &r, routes, &buf);
    struct transport_dest dest;
    dialog_dest(d, &dest);
    struct ua_uac *h = ua_uac_start(d->ua, &r, &dest, d->user, d->password, d->ha1, NULL, NULL, NULL);
    sbuf_free(&buf);
    if (!h) {
        log_warn("BYE for dialog %s could not be sent", d->call_id);
        return -ENOMEM;
    }
    d->ua->stats.byes_sent++;
    return 0;
}

void ua_dialog_refuse_2xx(struct ua *ua, struct ua_uac *h, const struct sip_msg *resp,
                          const struct transport_rx *rx)
{
    (void)rx;
    struct ua_dialog *d = dialog_new_uac(ua, h, resp);
    if (!d) {
        log_error("2xx to INVITE %.*s nobody wants: no memory to ACK/BYE it", STR_FMT(h->rc->req.call_id));
        return;
    }
    log_info("2xx to INVITE %s nobody wants any more: ACK and BYE (RFC 3261 §15)", d->call_id);
    dialog_send_ack(d);
    dialog_send_bye(d);
    dialog_free(d, false);
}

/* ---- owner interface ---- */

void ua_dialog_set_cb(struct ua_dialog *d, const struct ua_dialog_cb *cb, void *arg)
{
    if (cb) d->cb = *cb;
    else memset(&d->cb, 0, sizeof(d->cb));
    d->arg = arg;
}

void ua_dialog_set_dest(struct ua_dialog *d, const struct transport_dest *dest)
{
    d->flow = *dest;
    d->pinned = true;
}

str_t ua_dialog_call_id(const struct ua_dialog *d) { return str_from_cstr(d->call_id); }
str_t ua_dialog_local_tag(const struct ua_dialog *d) { return str_from_cstr(d->local_tag); }
str_t ua_dialog_remote_tag(const struct ua_dialog *d) { return str_from_cstr(d->remote_tag); }
str_t ua_dialog_remote_target(const struct ua_dialog *d) { return str_from_cstr(d->remote_target); }
size_t ua_dialog_route_count(const struct ua_dialog *d) { return d->route_count; }
str_t ua_dialog_route(const struct ua_dialog *d, size_t i)
{
    return i < d->route_count ? str_from_cstr(d->routes[i]) : STR_NULL;
}
bool ua_dialog_is_uac(const struct ua_dialog *d) { return d->uac; }
bool ua_dialog_confirmed(const struct ua_dialog *d) { return d->confirmed; }
uint32_t ua_dialog_local_cseq(const struct ua_dialog *d) { return d->local_cseq; }

int ua_dialog_print_request(struct ua_dialog *d, enum sip_method method, uint32_t cseq, sbuf_t *out)
{
    struct ua_request r;
    str_t routes[UA_MAX_ROUTES + 1];
    sbuf_t buf;
    sbuf_init(&buf);
    dialog_fill(d, method, cseq ? cseq : d->local_cseq + 1, &r, routes, &buf);
    struct transport_dest dest;
    dialog_dest(d, &dest);
    char branch[TXN_BRANCH_SIZE];
    int rc = ua_build(d->ua, &r, &dest, branch, out);
    sbuf_free(&buf);
    return rc;
}

struct ua_uac *ua_dialog_request(struct ua_dialog *d, enum sip_method method, const str_t *headers,
                                 size_t header_count, str_t content_type, str_t body, const struct ua_uac_cb *cb,
                                 void *arg)
{
    if (!d || d->ending || method == SIP_ACK || method == SIP_BYE || method == SIP_CANCEL ||
        method == SIP_METHOD_UNKNOWN)
        return NULL;
    struct ua_request r;
    str_t routes[UA_MAX_ROUTES + 1];
    sbuf_t buf;
    sbuf_init(&buf);
    dialog_fill(d, method, d->local_cseq + 1, &r, routes, &buf);
    r.headers = headers;
    r.header_count = header_count;
    r.content_type = content_type;
    r.body = body;
    struct transport_dest dest;
    dialog_dest(d, &dest);
    struct ua_uac *h = ua_uac_start(d->ua, &r, &dest, d->user, d->password, d->ha1, d, cb, arg);
    sbuf_free(&buf);
    if (h) d->local_cseq++;
    return h;
}

int ua_dialog_bye(struct ua_dialog *d)
{
    if (!d) return -EINVAL;
    if (d->ending) return -EALREADY; /* inside on_end: the UA frees it */
    d->ending = true;
    int rc = dialog_send_bye(d);
    dialog_free(d, true);
    return rc;
}

/* Ends d from the UA's side and tells the owner; d is gone afterwards. */
static void dialog_end(struct ua_dialog *d, enum ua_dialog_end why)
{
    d->ending = true;
    table_remove(d->ua, d);
    timer_stop(ua_timers(d->ua), &d->retx);
    timer_stop(ua_timers(d->ua), &d->giveup);
    if (d->cb.on_end) d->cb.on_end(d->arg, d, why);
    dialog_free(d, false);
}

/* ---- UAS ---- */

static void uas_retx_timer(struct timer_node *n, uint64_t now)
{
    struct ua_dialog *d = container_of(n, struct ua_dialog, retx);
    if (d->confirmed || !d->keep) return;
    int rc = ua_send_raw(d->ua, &d->keep_dest, d->keep, d->keep_len);
    if (rc < 0) log_warn("2xx retransmission for dialog %s failed: %s", d->call_id, uv_strerror(rc));
    uint32_t t2 = ua_t2(d->ua);
    d->retx_interval = d->retx_interval * 2 < t2 ? d->retx_interval * 2 : t2;
    timer_start(ua_timers(d->ua), &d->retx, now + d->retx_interval, uas_retx_timer);
}

static void uas_giveup_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct ua_dialog *d = container_of(n, struct ua_dialog, giveup);
    if (d->confirmed) return;
    /* RFC 3261 §13.3.1.4: no ACK within 64*T1 -> confirm and end with BYE. */
    log_warn("dialog %s: no ACK for our 2xx within %u ms, sending BYE", d->call_id, 64 * ua_t1(d->ua));
    d->ua->stats.no_ack++;
    d->ending = true;
    dialog_send_bye(d);
    dialog_end(d, UA_END_NO_ACK);
}

/* Our address a request arrived at, as a host for Via/Contact; "" when the
 * transport did not say (unspecified address). */
static void local_host_of(const struct transport_rx *rx, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    buf[0] = '\0';
    if (rx->local.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&rx->local;
        if (a->sin_addr.s_addr == 0 || !inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip))) return;
        snprintf(buf, cap, "%s", ip);
    } else if (rx->local.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&rx->local;
        static const struct in6_addr any = IN6ADDR_ANY_INIT;
        if (!memcmp(&a->sin6_addr, &any, sizeof(any)) || !inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip)))
            return;
        snprintf(buf, cap, "[%s]", ip);
    }
}

struct ua_dialog *ua_answer_invite(struct ua *ua, struct txn *st, int status, str_t contact, const str_t *headers,
                                   size_t header_count, str_t content_type, str_t body,
                                   const struct ua_dialog_cb *cb, void *arg)
{
    const struct sip_msg *req = txn_request(st);
    const struct transport_rx *rx = txn_rx_info(st);
    if (!req || !rx || req->method != SIP_INVITE || status < 200 || status > 299 ||
        header_count > MAX_ANSWER_HEADERS || req->to.tag.len)
        return NULL;
    struct ua_dialog *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->ua = ua;
    timer_node_init(&d->retx);
    timer_node_init(&d->giveup);
    char tag[UA_TAG_SIZE], host[INET6_ADDRSTRLEN + 2];
    ua_new_tag(ua, tag);
    local_host_of(rx, host, sizeof(host));
    str_t target = contact_uri(req);
    d->call_id = ua_strdup_str(req->call_id);
    d->local_tag = strdup(tag);
    d->remote_tag = ua_strdup_str(req->from.tag);
    d->local_uri = ua_name_addr_uri(&req->to);
    d->remote_uri = ua_name_addr_uri(&req->from);
    d->remote_target = ua_strdup_str(target.len ? target : req->from.uri_raw);
    d->local_host = host[0] ? strdup(host) : NULL;
    d->remote_cseq = d->invite_cseq = req->cseq.number;
    d->remote_cseq_set = true;
    d->remote_method = SIP_INVITE;
    d->flow.proto = rx->proto;
    d->flow.addr = rx->src;
    d->flow.conn_id = rx->conn_id;
    d->flow.listener_id = rx->listener_id;
    if (contact.len) {
        d->local_contact = ua_strdup_str(contact);
    } else {
        struct ua_via via;
        ua_via_for(ua, rx->proto, str_from_cstr(host), &via);
        bool v6 = memchr(via.host.s, ':', via.host.len) && via.host.s[0] != '[';
        sbuf_t c;
        sbuf_init(&c);
        sbuf_printf(&c, "<sip:%.*s%s%s%.*s%s:%u%s%s>", STR_FMT(req->ruri.user), req->ruri.user.len ? "@" : "",
                    v6 ? "[" : "", STR_FMT(via.host), v6 ? "]" : "", via.port,
                    rx->proto != SIP_TRANSPORT_UDP ? ";transport=" : "", rx->proto != SIP_TRANSPORT_UDP ? sip_transport_param(rx->proto) : "");
        d->local_contact = c.failed ? NULL : sbuf_take(&c);
        sbuf_free(&c);
    }
    if (!d->call_id || !d->local_tag || !d->remote_tag || !d->local_uri || !d->remote_uri || !d->remote_target ||
        (host[0] && !d->local_host) || !d->local_contact || take_routes(d, req, false) != 0) {
        dialog_free(d, false);
        return NULL;
    }
    /* The 2xx: Contact plus the caller's lines. */
    str_t lines[MAX_ANSWER_HEADERS + 1];
    sbuf_t cl;
    sbuf_init(&cl);
    sbuf_append_cstr(&cl, "Contact: ");
    sbuf_append_cstr(&cl, d->local_contact);
    lines[0] = sbuf_str(&cl);
    for (size_t i = 0; i < header_count; i++) lines[i + 1] = headers[i];
    sbuf_t out;
    sbuf_init(&out);
    int rc = cl.failed ? -1
                       : sip_build_response(req, status, NULL, str_from_cstr(tag), lines, header_count + 1,
                                            content_type, body, &out);
    sbuf_free(&cl);
    /* The destination is computed before answering: the request goes with the final. */
    if (rc != 0 || out.failed || transport_response_dest(rx, &d->keep_dest) != 0) {
        log_error("%d to INVITE %s from %s could not be built", status, d->call_id, rx->src_text);
        sbuf_free(&out);
        dialog_free(d, false);
        return NULL;
    }
    d->keep_len = out.len;
    d->keep = sbuf_take(&out);
    sbuf_free(&out);
    if (ua_dialog_find(ua, str_from_cstr(d->call_id), str_from_cstr(d->local_tag)) || table_insert(ua, d) != 0) {
        dialog_free(d, false);
        return NULL;
    }
    rc = txn_respond_bytes(st, status, d->keep, d->keep_len);
    if (rc < 0) {
        log_warn("%d to INVITE %s from %s not sent: %s", status, d->call_id, d->keep_dest.proto ? "tcp" : "udp",
                 strerror(-rc));
        dialog_free(d, true);
        return NULL;
    }
    if (cb) d->cb = *cb;
    d->arg = arg;
    uint64_t now = ua_now(ua);
    d->retx_interval = ua_t1(ua);
    timer_start(ua_timers(ua), &d->retx, now + d->retx_interval, uas_retx_timer);
    timer_start(ua_timers(ua), &d->giveup, now + 64 * (uint64_t)ua_t1(ua), uas_giveup_timer);
    return d;
}

/* ---- dispatcher interface ---- */

static void answer(struct txn *st, int status, const char *extra)
{
    str_t line = str_from_cstr(extra);
    int rc = txn_respond(st, status, NULL, STR_NULL, extra ? &line : NULL, extra ? 1 : 0, STR_NULL, STR_NULL);
    if (rc < 0) log_warn("in-dialog %d not sent: %s", status, strerror(-rc));
}

int ua_on_request(struct ua *ua, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!m || !m->is_request || !m->to.tag.len || m->method == SIP_ACK || m->method == SIP_CANCEL) return 0;
    struct ua_dialog *d = ua_dialog_find(ua, m->call_id, m->to.tag);
    if (!d || d->ending) return 0;
    if (d->remote_tag[0] && !str_eq_cstr(m->from.tag, d->remote_tag)) return 0;
    /* RFC 3261 §12.2.2: only a CSeq lower than the last one is out of
     * order. An equal one is fine for another method (real platforms send
     * "N BYE" after "N INVITE"); for the same method it is a copy the
     * transaction layer did not absorb (a new branch). */
    bool out_of_order = d->remote_cseq_set && (m->cseq.number < d->remote_cseq ||
                                               (m->cseq.number == d->remote_cseq && m->method == d->remote_method));
    if (out_of_order) {
        log_warn("%.*s in dialog %s from %s: CSeq %u out of order (last %u), 500", STR_FMT(m->method_name),
                 d->call_id, rx->src_text, m->cseq.number, d->remote_cseq);
        answer(st, 500, "Retry-After: 1");
        /* A peer that sent BYE has ended the session whatever we answer
         * (§15.1.1): keeping the dialog would keep media flowing to it. */
        if (m->method == SIP_BYE) dialog_end(d, UA_END_BYE_RECEIVED);
        return 1;
    }
    d->remote_cseq = m->cseq.number;
    d->remote_cseq_set = true;
    d->remote_method = m->method;
    if (m->method == SIP_BYE) {
        answer(st, 200, NULL);
        log_info("dialog %s ended by BYE from %s", d->call_id, rx->src_text);
        dialog_end(d, UA_END_BYE_RECEIVED);
        return 1;
    }
    if (d->cb.on_request) {
        d->cb.on_request(d->arg, d, st, rx);
        return 1;
    }
    switch (m->method) {
    case SIP_INFO:
    case SIP_MESSAGE:
    case SIP_NOTIFY:
    case SIP_OPTIONS: answer(st, 200, NULL); break;
    case SIP_INVITE:
    case SIP_UPDATE: answer(st, 488, NULL); break;
    default: answer(st, 405, "Allow: INVITE, ACK, BYE, CANCEL, INFO, MESSAGE, NOTIFY, OPTIONS"); break;
    }
    return 1;
}

int ua_on_ack(struct ua *ua, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!m || !m->to.tag.len) return 0;
    struct ua_dialog *d = ua_dialog_find(ua, m->call_id, m->to.tag);
    if (!d || d->ending) return 0;
    if (d->remote_tag[0] && !str_eq_cstr(m->from.tag, d->remote_tag)) return 0;
    if (d->uac || d->confirmed || m->cseq.number != d->invite_cseq) return 1; /* a retransmitted ACK */
    d->confirmed = true;
    timer_stop(ua_timers(ua), &d->retx);
    timer_stop(ua_timers(ua), &d->giveup);
    free(d->keep);
    d->keep = NULL;
    d->keep_len = 0;
    if (d->cb.on_ack) d->cb.on_ack(d->arg, d, rx);
    return 1;
}

int ua_on_response(struct ua *ua, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (!m || m->is_request || m->cseq.method != SIP_INVITE || m->status < 200 || m->status > 299) return 0;
    struct ua_dialog *d = ua_dialog_find(ua, m->call_id, m->from.tag);
    if (!d || !d->uac) return 0;
    if (str_eq_cstr(m->to.tag, d->remote_tag)) {
        /* A retransmitted 2xx: our ACK was lost (§13.2.2.4). */
        if (d->keep && m->cseq.number == d->invite_cseq) {
            int rc = ua_send_raw(ua, &d->keep_dest, d->keep, d->keep_len);
            if (rc == 0) ua->stats.acks_sent++;
        }
        return 1;
    }
    /* A 2xx from another fork: ACK it and end that dialog at once. */
    struct ua_dialog *f = calloc(1, sizeof(*f));
    if (!f) return 1;
    f->ua = ua;
    f->uac = true;
    f->confirmed = true;
    timer_node_init(&f->retx);
    timer_node_init(&f->giveup);
    str_t target = contact_uri(m);
    f->call_id = strdup(d->call_id);
    f->local_tag = strdup(d->local_tag);
    f->remote_tag = ua_strdup_str(m->to.tag);
    f->local_uri = strdup(d->local_uri);
    f->remote_uri = ua_name_addr_uri(&m->to);
    f->remote_target = ua_strdup_str(target.len ? target : str_from_cstr(d->remote_target));
    f->local_host = dup_c(d->local_host);
    f->user = dup_c(d->user);
    f->password = dup_c(d->password);
    f->ha1 = dup_c(d->ha1);
    f->auth_line = dup_c(d->auth_line);
    f->local_cseq = f->invite_cseq = d->invite_cseq;
    f->flow = d->flow;
    f->flow.conn_id = rx->conn_id;
    f->pinned = d->pinned;
    if (f->call_id && f->local_tag && f->remote_tag && f->local_uri && f->remote_uri && f->remote_target &&
        take_routes(f, m, true) == 0) {
        log_info("2xx from another fork of INVITE %s (%s): ACK and BYE", f->call_id, rx->src_text);
        dialog_send_ack(f);
        dialog_send_bye(f);
    }
    dialog_free(f, false);
    return 1;
}
