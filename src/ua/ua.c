/* ua.c — building requests, destinations and the UAC helper with digest
 * retry (RFC 3261 §8.1, §22.2). Dialogs are in dialog.c.
 *
 * A struct ua_uac keeps a deep copy of the request it sends so that a 401/407
 * can be answered by printing it again with CSeq + 1 and an Authorization
 * line (§22.2; the Call-ID and From tag stay, §8.1.3.5). Each attempt is a
 * fresh client transaction with a new branch. */
#include "ua/ua_int.h"
#include "sip/sip_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/digest.h"
#include "base/log.h"
#include "sip/local.h"
#include "txn/txn.h"

#define UA_MAX_EXTRA_HEADERS 64

char *ua_strdup_str(str_t s)
{
    char *p = malloc(s.len + 1);
    if (!p) return NULL;
    if (s.len) memcpy(p, s.s, s.len);
    p[s.len] = '\0';
    return p;
}

static char *dup_opt(str_t s) { return s.len ? ua_strdup_str(s) : NULL; }

/* Single-line header text: no CR, LF or other controls but HTAB. */
static bool clean(str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

static bool is_token(str_t s)
{
    if (!s.len) return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.s[i];
        if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c)) return false;
    }
    return true;
}

/* ---- destinations ---- */

int ua_dest_from_host(const char *host, uint16_t port, enum sip_transport proto, uint64_t conn_id,
                      struct transport_dest *out)
{
    memset(out, 0, sizeof(*out));
    if (!host || transport_addr_parse(host, strlen(host), port ? port : 5060, &out->addr) != 0) return -ENOENT;
    out->proto = proto;
    out->conn_id = sip_transport_is_stream(proto) ? conn_id : 0;
    return 0;
}

int ua_dest_from_uri(str_t text, struct transport_dest *out)
{
    struct sip_uri u;
    memset(out, 0, sizeof(*out));
    if (sip_uri_parse(text, &u) != 0) return -EINVAL;
    int proto = sip_uri_transport(&u); /* sips: TLS (or WSS), never UDP/TCP (RFC 5630 §3) */
    if (proto < 0) return -ENOTSUP;
    str_t host = u.maddr.len ? u.maddr : u.host; /* RFC 3261 §8.1.2 / RFC 3263 §4 */
    uint16_t port = u.port ? u.port : sip_transport_default_port((enum sip_transport)proto);
    if (!host.len || transport_addr_parse(host.s, host.len, port, &out->addr) != 0) return -ENOENT;
    out->proto = (enum sip_transport)proto;
    return 0;
}

/* ---- printing ---- */

/* A From/To value as a name-addr: already one when it holds '<'. */
static void put_addr(sbuf_t *b, str_t v)
{
    if (memchr(v.s, '<', v.len)) {
        sbuf_append_str(b, v);
    } else {
        sbuf_append_char(b, '<');
        sbuf_append_str(b, v);
        sbuf_append_char(b, '>');
    }
}

int ua_print_request(const struct ua_request *r, const struct ua_via *via, str_t user_agent, sbuf_t *out)
{
    str_t method = r->method == SIP_METHOD_UNKNOWN ? r->method_name : str_from_cstr(sip_method_name(r->method));
    if (!is_token(method) || !r->ruri.len || !r->from.len || !r->to.len || !r->call_id.len || !r->from_tag.len ||
        !r->cseq || !via->host.len || !via->branch.len)
        return -EINVAL;
    if (r->body.len && !r->content_type.len) return -EINVAL;
    str_t fields[] = {r->ruri,    r->from,     r->from_tag,     r->to,     r->to_tag,    r->call_id,
                      r->contact, user_agent,  r->content_type, via->host, via->branch};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (!clean(fields[i])) return -EINVAL;
    str_t words[] = {r->ruri, r->from_tag, r->to_tag, r->call_id, via->host, via->branch};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (words[i].len && (memchr(words[i].s, ' ', words[i].len) || memchr(words[i].s, '\t', words[i].len)))
            return -EINVAL;
    for (size_t i = 0; i < r->route_count; i++)
        if (!r->routes[i].len || !clean(r->routes[i])) return -EINVAL;
    for (size_t i = 0; i < r->header_count; i++)
        if (!r->headers[i].len || !clean(r->headers[i]) || !memchr(r->headers[i].s, ':', r->headers[i].len))
            return -EINVAL;

    bool v6 = memchr(via->host.s, ':', via->host.len) && via->host.s[0] != '[';
    sbuf_append_str(out, method);
    sbuf_append_char(out, ' ');
    sbuf_append_str(out, r->ruri);
    sbuf_printf(out, " SIP/2.0\r\nVia: SIP/2.0/%s %s%.*s%s", transport_name(via->proto), v6 ? "[" : "",
                STR_FMT(via->host), v6 ? "]" : "");
    if (via->port) sbuf_printf(out, ":%u", via->port);
    sbuf_printf(out, ";branch=%.*s;rport\r\nMax-Forwards: 70\r\nFrom: ", STR_FMT(via->branch));
    put_addr(out, r->from);
    sbuf_append_cstr(out, ";tag=");
    sbuf_append_str(out, r->from_tag);
    sbuf_append_cstr(out, "\r\nTo: ");
    put_addr(out, r->to);
    if (r->to_tag.len) {
        sbuf_append_cstr(out, ";tag=");
        sbuf_append_str(out, r->to_tag);
    }
    sbuf_append_cstr(out, "\r\nCall-ID: ");
    sbuf_append_str(out, r->call_id);
    sbuf_printf(out, "\r\nCSeq: %u ", r->cseq);
    sbuf_append_str(out, method);
    sbuf_append_cstr(out, "\r\n");
    for (size_t i = 0; i < r->route_count; i++) {
        sbuf_append_cstr(out, "Route: ");
        sbuf_append_str(out, r->routes[i]);
        sbuf_append_cstr(out, "\r\n");
    }
    if (r->contact.len) {
        sbuf_append_cstr(out, "Contact: ");
        sbuf_append_str(out, r->contact);
        sbuf_append_cstr(out, "\r\n");
    }
    if (user_agent.len) {
        sbuf_append_cstr(out, "User-Agent: ");
        sbuf_append_str(out, user_agent);
        sbuf_append_cstr(out, "\r\n");
    }
    for (size_t i = 0; i < r->header_count; i++) {
        sbuf_append_str(out, r->headers[i]);
        sbuf_append_cstr(out, "\r\n");
    }
    if (r->content_type.len) {
        sbuf_append_cstr(out, "Content-Type: ");
        sbuf_append_str(out, r->content_type);
        sbuf_append_cstr(out, "\r\n");
    }
    sbuf_printf(out, "Content-Length: %zu\r\n\r\n", r->body.len);
    sbuf_append_str(out, r->body);
    return out->failed ? -ENOMEM : 0;
}

void ua_subscription_notify(struct ua_request *r, struct ua_notify_lines *out, const char *event, const char *call_id,
                            const char *local_tag, const char *remote_tag, const char *contact, uint32_t cseq,
                            uint64_t expires_at_ms, uint64_t now_ms)
{
    if (contact[0]) r->ruri = str_from_cstr(contact);
    snprintf(out->event, sizeof(out->event), "Event: %s", event);
    snprintf(out->state, sizeof(out->state), "Subscription-State: active;expires=%llu",
             (unsigned long long)(expires_at_ms > now_ms ? (expires_at_ms - now_ms) / 1000u : 0));
    out->lines[0] = str_from_cstr(out->event);
    out->lines[1] = str_from_cstr(out->state);
    r->call_id = str_from_cstr(call_id);
    r->from_tag = str_from_cstr(local_tag);
    r->to_tag = str_from_cstr(remote_tag);
    r->cseq = cseq;
    r->headers = out->lines;
    r->header_count = 2;
}

/* ---- the UA ---- */

static int default_send(void *arg, struct transport_dest *dest, const void *data, size_t len)
{
    struct transport *t = arg;
    if (!t) return UV_ENOTCONN;
    return transport_send(t, dest, data, len);
}

struct ua *ua_new(const struct sip_config *sip, const struct sip_local *local, struct timer_service *timers,
                  struct txn_layer *txn, struct transport *transport, uint64_t seed)
{
    struct ua *ua = calloc(1, sizeof(*ua));
    if (!ua) return NULL;
    ua->local = local;
    ua->timers = timers;
    ua->txn = txn;
    ua->t1_ms = sip->t1_ms ? sip->t1_ms : 500;
    ua->t2_ms = sip->t2_ms ? sip->t2_ms : 4000;
    ua->send = default_send;
    ua->send_arg = transport;
    ua->rng = seed;
    if (!ua->rng && RAND_bytes((unsigned char *)&ua->rng, sizeof(ua->rng)) != 1)
        ua->rng = (uint64_t)(uintptr_t)ua ^ 0x9e3779b97f4a7c15ULL;
    ua->rng |= 1;
    return ua;
}

void ua_set_sender(struct ua *ua, ua_send_fn fn, void *arg)
{
    ua->send = fn;
    ua->send_arg = arg;
}

static void uac_free(struct ua_uac *h);

void ua_free(struct ua *ua)
{
    if (!ua) return;
    ua_dialogs_free(ua);
    while (ua->uacs) {
        struct ua_uac *h = ua->uacs;
        if (h->ct) txn_client_detach(h->ct);
        h->ct = NULL;
        uac_free(h);
    }
    htable_free(&ua->dialogs);
    free(ua);
}

static uint64_t next_rand(struct ua *ua)
{
    /* xorshift64*: tags and Call-IDs must be unique, not secret (§19.3). */
    uint64_t x = ua->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ua->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void put_hex(char *out, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) out[i] = hex[(v >> (i * 4)) & 15];
}

void ua_new_tag(struct ua *ua, char out[UA_TAG_SIZE])
{
    put_hex(out, next_rand(ua));
    out[16] = '\0';
}

void ua_new_call_id(struct ua *ua, char out[UA_CALL_ID_SIZE])
{
    put_hex(out, next_rand(ua));
    put_hex(out + 16, next_rand(ua));
    out[32] = '\0';
}

uint64_t ua_now(const struct ua *ua) { return timer_now(ua->timers); }
uint32_t ua_t1(const struct ua *ua) { return ua->t1_ms; }
uint32_t ua_t2(const struct ua *ua) { return ua->t2_ms; }
struct timer_service *ua_timers(const struct ua *ua) { return ua->timers; }

int ua_send_raw(struct ua *ua, struct transport_dest *dest, const void *data, size_t len)
{
    return ua->send(ua->send_arg, dest, data, len);
}

void ua_via_for(struct ua *ua, enum sip_transport proto, str_t local_host, struct ua_via *via)
{
    const struct sip_local *l = ua->local;
    via->proto = proto;
    via->host = local_host.len ? local_host : str_from_cstr(l->host);
    via->port = sip_local_port(l, proto);
}

void ua_get_stats(const struct ua *ua, struct ua_stats *out)
{
    *out = ua->stats;
    out->dialogs = htable_count(&ua->dialogs);
}

/* The user part of a From value (for an automatic Contact). */
static str_t from_user(str_t from)
{
    struct sip_name_addr na;
    if (sip_name_addr_parse(from, &na) != 0) return STR_NULL;
    return na.uri.user;
}

int ua_build(struct ua *ua, const struct ua_request *r, const struct transport_dest *dest, char *branch,
             sbuf_t *out)
{
    struct ua_via via;
    txn_new_branch(branch);
    ua_via_for(ua, dest->proto, r->local_host, &via);
    via.branch = str_from_cstr(branch);
    struct ua_request copy = *r;
    char contact[256];
    if (!r->contact.len && r->auto_contact) {
        str_t user = r->contact_user.len ? r->contact_user : from_user(r->from);
        bool v6 = memchr(via.host.s, ':', via.host.len) && via.host.s[0] != '[';
        int n = snprintf(contact, sizeof(contact), "<sip:%.*s%s%s%.*s%s:%u%s%s>", STR_FMT(user), user.len ? "@" : "",
                         v6 ? "[" : "", STR_FMT(via.host), v6 ? "]" : "", via.port,
                         dest->proto != SIP_TRANSPORT_UDP ? ";transport=" : "", dest->proto != SIP_TRANSPORT_UDP ? sip_transport_param(dest->proto) : "");
        if (n < 0 || (size_t)n >= sizeof(contact)) return -EINVAL;
        copy.contact = str_make(contact, (size_t)n);
    }
    return ua_print_request(&copy, &via, str_from_cstr(ua->local->user_agent), out);
}

/* ---- request copies ---- */

static size_t str_room(str_t s) { return s.len + 1; }

static str_t put_str(char **cur, str_t s)
{
    if (!s.len) return STR_NULL;
    char *p = *cur;
    memcpy(p, s.s, s.len);
    p[s.len] = '\0';
    *cur += s.len + 1;
    return str_make(p, s.len);
}

/* Deep copy; generates the From tag and Call-ID when missing. */
static struct ua_req_copy *req_copy(struct ua *ua, const struct ua_request *r)
{
    if (r->route_count > UA_MAX_ROUTES || r->header_count > UA_MAX_EXTRA_HEADERS) return NULL;
    const str_t *single[] = {&r->method_name, &r->ruri,       &r->from,         &r->from_tag, &r->to,
                             &r->to_tag,      &r->call_id,    &r->contact,      &r->contact_user,
                             &r->content_type, &r->body,      &r->local_host};
    size_t need = sizeof(struct ua_req_copy) + (r->route_count + r->header_count) * sizeof(str_t);
    for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++) need += str_room(*single[i]);
    for (size_t i = 0; i < r->route_count; i++) need += str_room(r->routes[i]);
    for (size_t i = 0; i < r->header_count; i++) need += str_room(r->headers[i]);
    struct ua_req_copy *c = calloc(1, need);
    if (!c) return NULL;
    str_t *arr = (str_t *)(c + 1);
    char *cur = (char *)(arr + r->route_count + r->header_count);
    struct ua_request *q = &c->req;
    *q = *r;
    q->method_name = put_str(&cur, r->method_name);
    q->ruri = put_str(&cur, r->ruri);
    q->from = put_str(&cur, r->from);
    q->from_tag = put_str(&cur, r->from_tag);
    q->to = put_str(&cur, r->to);
    q->to_tag = put_str(&cur, r->to_tag);
    q->call_id = put_str(&cur, r->call_id);
    q->contact = put_str(&cur, r->contact);
    q->contact_user = put_str(&cur, r->contact_user);
    q->content_type = put_str(&cur, r->content_type);
    q->body = put_str(&cur, r->body);
    q->local_host = put_str(&cur, r->local_host);
    q->routes = r->route_count ? arr : NULL;
    for (size_t i = 0; i < r->route_count; i++) arr[i] = put_str(&cur, r->routes[i]);
    q->headers = r->header_count ? arr + r->route_count : NULL;
    for (size_t i = 0; i < r->header_count; i++) arr[r->route_count + i] = put_str(&cur, r->headers[i]);
    if (!q->from_tag.len) {
        ua_new_tag(ua, c->tagbuf);
        q->from_tag = str_from_cstr(c->tagbuf);
    }
    if (!q->call_id.len) {
        ua_new_call_id(ua, c->cidbuf);
        q->call_id = str_from_cstr(c->cidbuf);
    }
    if (!q->cseq) q->cseq = 1;
    return c;
}

/* ---- UAC ---- */

static void uac_on_response(void *arg, struct txn *ct, const struct sip_msg *resp, const struct transport_rx *rx);
static void uac_on_failure(void *arg, struct txn *ct, int status);

static const struct txn_client_cb uac_txn_cb = {.on_response = uac_on_response, .on_failure = uac_on_failure};

static void uac_free(struct ua_uac *h)
{
    struct ua *ua = h->ua;
    if (h->prev) h->prev->next = h->next;
    else ua->uacs = h->next;
    if (h->next) h->next->prev = h->prev;
    if (ua->stats.requests) ua->stats.requests--;
    free(h->rc);
    free(h->user);
    free(h->password);
    free(h->ha1);
    free(h->auth_line);
    free(h);
}

/* Prints and sends the current attempt as a new client transaction. */
static int uac_send_attempt(struct ua_uac *h)
{
    struct ua *ua = h->ua;
    struct ua_request r = h->rc->req;
    str_t lines[UA_MAX_EXTRA_HEADERS + 1];
    if (h->auth_line) {
        for (size_t i = 0; i < r.header_count; i++) lines[i] = r.headers[i];
        lines[r.header_count] = str_from_cstr(h->auth_line);
        r.headers = lines;
        r.header_count++;
    }
    char branch[TXN_BRANCH_SIZE];
    sbuf_t out;
    sbuf_init(&out);
    int rc = ua_build(ua, &r, &h->dest, branch, &out);
    if (rc != 0) {
        /* The fields may hold the very control characters refused: not logged. */
        log_error("%s (Call-ID %.*s) could not be built (%s)", r.method ? sip_method_name(r.method) : "request",
                  STR_FMT(r.call_id), rc == -ENOMEM ? "no memory" : "bad field");
        sbuf_free(&out);
        return rc;
    }
    h->ct = txn_client_new(ua->txn, &h->dest, out.data, out.len, str_from_cstr(branch), r.method, &uac_txn_cb, h);
    sbuf_free(&out);
    if (!h->ct) {
        log_error("%.*s to %.*s: no client transaction", STR_FMT(r.call_id), STR_FMT(r.ruri));
        return -ENOMEM;
    }
    return 0;
}

struct ua_uac *ua_uac_start(struct ua *ua, const struct ua_request *r, const struct transport_dest *dest,
                            const char *user, const char *password, const char *ha1, struct ua_dialog *dlg,
                            const struct ua_uac_cb *cb, void *arg)
{
    if (r->method == SIP_ACK || r->method == SIP_CANCEL) return NULL; /* not transactions of ours */
    struct ua_uac *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    h->ua = ua;
    h->rc = req_copy(ua, r);
    h->dest = *dest;
    h->user = user ? strdup(user) : NULL;
    h->password = password ? strdup(password) : NULL;
    h->ha1 = ha1 ? strdup(ha1) : NULL;
    if (cb) h->cb = *cb;
    else h->forgotten = true;
    h->arg = arg;
    h->dlg = dlg;
    h->next = ua->uacs;
    if (ua->uacs) ua->uacs->prev = h;
    ua->uacs = h;
    ua->stats.requests++;
    if (!h->rc || (user && !h->user) || (password && !h->password) || (ha1 && !h->ha1) || uac_send_attempt(h) != 0) {
        uac_free(h);
        return NULL;
    }
    return h;
}

struct ua_uac *ua_request_send(struct ua *ua, const struct ua_request *r, const struct transport_dest *dest,
                               const struct ua_credentials *cred, const struct ua_uac_cb *cb, void *arg)
{
    char *user = NULL, *password = NULL, *ha1 = NULL;
    if (cred && cred->user.len && (cred->password.len || cred->ha1.len)) {
        user = ua_strdup_str(cred->user);
        password = dup_opt(cred->password);
        ha1 = dup_opt(cred->ha1);
        if (!user || (cred->password.len && !password) || (cred->ha1.len && !ha1)) {
            free(user), free(password), free(ha1);
            return NULL;
        }
    }
    struct ua_uac *h = ua_uac_start(ua, r, dest, user, password, ha1, NULL, cb, arg);
    free(user), free(password), free(ha1);
    return h;
}

/* RFC 3261 §22.2: answer the challenge and send again with CSeq + 1. One
 * answer per challenge; a second challenge is final unless it says stale. */
static int uac_try_auth(struct ua_uac *h, const struct sip_msg *resp)
{
    if (!h->user || (!h->password && !h->ha1)) return -1;
    enum sip_hdr type = resp->status == 401 ? SIP_HDR_WWW_AUTHENTICATE : SIP_HDR_PROXY_AUTHENTICATE;
    struct auth_challenge ch;
    bool found = false;
    for (const struct sip_header *hd = sip_msg_header(resp, type); hd; hd = sip_msg_header_next(resp, hd)) {
        if (auth_parse_challenge(hd->value, &ch) == 0) {
            found = true;
            break;
        }
    }
    struct ua_request *r = &h->rc->req;
    if (!found) {
        log_warn("%d to %.*s: no usable challenge", resp->status, STR_FMT(r->ruri));
        return -1;
    }
    if (h->auth_rounds >= 3 || (h->auth_rounds >= 1 && !ch.stale)) {
        log_warn("%d to %.*s again: credentials of %s refused", resp->status, STR_FMT(r->ruri), h->user);
        return -1;
    }
    str_t method = r->method == SIP_METHOD_UNKNOWN ? r->method_name : str_from_cstr(sip_method_name(r->method));
    sbuf_t ans;
    sbuf_init(&ans);
    sbuf_append_cstr(&ans, resp->status == 401 ? "Authorization: " : "Proxy-Authorization: ");
    sbuf_t val;
    sbuf_init(&val);
    int rc = h->password ? auth_client_answer(&ch, str_from_cstr(h->user), str_from_cstr(h->password), method,
                                              r->ruri, 1, STR_NULL, &val)
                         : auth_client_answer_ha1(&ch, str_from_cstr(h->user), str_from_cstr(h->ha1), method,
                                                  r->ruri, 1, STR_NULL, &val);
    if (rc == 0) sbuf_append_str(&ans, sbuf_str(&val));
    sbuf_free(&val);
    if (rc != 0 || ans.failed) {
        log_warn("%d to %.*s: cannot answer the challenge (%d)", resp->status, STR_FMT(r->ruri), rc);
        sbuf_free(&ans);
        return -1;
    }
    free(h->auth_line);
    h->auth_line = sbuf_take(&ans);
    h->auth_rounds++;
    r->cseq++;
    if (h->dlg && h->dlg->local_cseq < r->cseq) h->dlg->local_cseq = r->cseq;
    h->ua->stats.auth_retries++;
    return uac_send_attempt(h);
}

static void uac_final(struct ua_uac *h, int status, const struct sip_msg *resp, const struct transport_rx *rx,
                      struct ua_dialog *dlg)
{
    if (!h->forgotten && h->cb.on_final) {
        h->forgotten = true; /* cancel/detach from inside the callback: nothing left to do */
        h->cb.on_final(h->arg, h, status, resp, rx, dlg);
    }
    uac_free(h);
}

static void uac_on_response(void *arg, struct txn *ct, const struct sip_msg *resp, const struct transport_rx *rx)
{
    struct ua_uac *h = arg;
    if (resp->status < 200) {
        if (!h->forgotten && h->cb.on_provisional) h->cb.on_provisional(h->arg, h, resp, rx);
        return;
    }
    const struct transport_dest *used = txn_dest(ct);
    if (used) h->dest = *used; /* TCP: the connection it went over */
    txn_client_detach(ct);
    h->ct = NULL;
    if ((resp->status == 401 || resp->status == 407) && uac_try_auth(h, resp) == 0) return;
    if (h->rc->req.method == SIP_INVITE && resp->status < 300) {
        if (h->forgotten) {
            ua_dialog_refuse_2xx(h->ua, h, resp, rx);
            uac_free(h);
            return;
        }
        struct ua_dialog *d = ua_dialog_from_2xx(h->ua, h, resp, rx);
        if (!d) {
            ua_dialog_refuse_2xx(h->ua, h, resp, rx);
            uac_final(h, 500, NULL, NULL, NULL);
            return;
        }
        uac_final(h, resp->status, resp, rx, d);
        return;
    }
    uac_final(h, resp->status, resp, rx, NULL);
}

static void uac_on_failure(void *arg, struct txn *ct, int status)
{
    (void)ct;
    struct ua_uac *h = arg;
    h->ct = NULL;
    uac_final(h, status, NULL, NULL, NULL);
}

static void uac_forget(struct ua_uac *h, bool cancel)
{
    if (!h || h->forgotten) {
        if (h) h->forgotten = true;
        return;
    }
    h->forgotten = true;
    if (!h->ct) return; /* inside on_final: freed after it */
    if (h->rc->req.method == SIP_INVITE) {
        /* Keep the handle until the final so a late 2xx is ACKed and BYEd (§15). */
        if (cancel) txn_client_cancel(h->ct);
        return;
    }
    txn_client_detach(h->ct);
    h->ct = NULL;
    uac_free(h);
}

void ua_request_cancel(struct ua_uac *h) { uac_forget(h, true); }
void ua_request_detach(struct ua_uac *h) { uac_forget(h, false); }

str_t ua_request_call_id(const struct ua_uac *h) { return h->rc->req.call_id; }
str_t ua_request_from_tag(const struct ua_uac *h) { return h->rc->req.from_tag; }
uint32_t ua_request_cseq(const struct ua_uac *h) { return h->rc->req.cseq; }
const struct transport_dest *ua_request_dest(const struct ua_uac *h) { return &h->dest; }

void ua_uacs_forget_dialog(struct ua *ua, struct ua_dialog *d)
{
    for (struct ua_uac *h = ua->uacs; h; h = h->next)
        if (h->dlg == d) h->dlg = NULL;
}

char *ua_name_addr_uri(const struct sip_name_addr *na)
{
    size_t n = na->uri_raw.len;
    char *p = malloc(n + 3);
    if (!p) return NULL;
    p[0] = '<';
    memcpy(p + 1, na->uri_raw.s, n);
    p[n + 1] = '>';
    p[n + 2] = '\0';
    return p;
}
