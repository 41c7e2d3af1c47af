/* harness.c — the in-process stack for unit tests (see harness.h).
 *
 * The UA is still built from a worker (ua_new(struct worker *)): the only
 * place the harness touches src/app, kept in harness_ua_new() so that the
 * day ua_new takes its collaborators one function changes. */
#include "harness.h"

#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "app/config.h"
#include "registrar/users.h"
#include "auth/digest.h"

struct harness_priv {
    struct timer_service timers;
    struct config cfg;                  /* defaults; [sip] t1/t2 for the UA */
    char *in;                           /* the last injected message */
    _Alignas(16) char in_mem[65536];
    arena_t in_arena;
    struct sip_msg in_msg;
    struct transport_rx rx;
    char *out;                          /* the last parsed sent message */
    _Alignas(16) char out_mem[65536];
    arena_t out_arena;
    struct sip_msg out_msg;
};

static int record(struct harness *h, struct transport_dest *dest, const void *data, size_t len, bool raw)
{
    if (h->dead_conn_id && dest->conn_id == h->dead_conn_id) return UV_ENOTCONN;
    if (h->nsent == h->sent_cap) {
        size_t cap = h->sent_cap ? h->sent_cap * 2 : 16;
        struct harness_sent *n = realloc(h->sent, cap * sizeof(*n));
        assert_non_null(n);
        h->sent = n;
        h->sent_cap = cap;
    }
    struct harness_sent *s = &h->sent[h->nsent++];
    s->dest = *dest;
    s->data = malloc(len + 1);
    assert_non_null(s->data);
    memcpy(s->data, data, len);
    s->data[len] = '\0';
    s->len = len;
    s->raw = raw;
    return 0;
}

int harness_send(void *arg, struct transport_dest *dest, const void *data, size_t len)
{
    return record(arg, dest, data, len, true);
}

static int op_send(void *u, struct transport_dest *dest, const void *data, size_t len)
{
    return record(u, dest, data, len, false);
}

static void op_on_request(void *u, struct txn *st, const struct transport_rx *rx)
{
    struct harness *h = u;
    if (h->on_request) h->on_request(h->arg, st, rx);
    else txn_respond(st, 501, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
}

static void op_on_ack(void *u, const struct transport_rx *rx)
{
    struct harness *h = u;
    if (h->on_ack) h->on_ack(h->arg, rx);
    else ua_on_ack(h->ua, rx);
}

static void op_on_stray(void *u, const struct transport_rx *rx)
{
    struct harness *h = u;
    if (h->on_stray_response) h->on_stray_response(h->arg, rx);
}

static void op_on_server_terminated(void *u, struct txn *st)
{
    struct harness *h = u;
    if (h->on_server_terminated) h->on_server_terminated(h->arg, st);
}

static uint64_t clock_now(void *u) { return ((struct harness *)u)->now; }

static struct ua *harness_ua_new(struct harness *h)
{
    struct config *c = &h->priv->cfg;
    config_init(c);
    c->sip.t1_ms = 500;
    c->sip.t2_ms = 4000;
    struct ua *ua = ua_new(&c->sip, &h->local, h->timers, h->txn, NULL, 1);
    if (ua) ua_set_sender(ua, harness_send, h);
    return ua;
}

struct harness *harness_new(void)
{
    struct harness *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    h->priv = calloc(1, sizeof(*h->priv));
    assert_non_null(h->priv);
    h->now = 1000000;
    h->local = (struct sip_local){.port = {5060, 5060}};
    snprintf(h->local.domain, sizeof(h->local.domain), "example.com");
    snprintf(h->local.realm, sizeof(h->local.realm), "example.com");
    snprintf(h->local.host, sizeof(h->local.host), "192.0.2.1");
    snprintf(h->local.user_agent, sizeof(h->local.user_agent), "cascade-test");
    h->timers = &h->priv->timers;
    timer_service_init(h->timers);
    h->timers->clock = clock_now;
    h->timers->clock_arg = h;
    h->timers->now_ms = h->now;
    struct txn_config xc = {.t1_ms = 500, .t2_ms = 4000, .t4_ms = 5000};
    struct txn_layer_ops ops = {.user = h, .send = op_send, .on_request = op_on_request, .on_ack = op_on_ack,
                                .on_stray_response = op_on_stray, .on_server_terminated = op_on_server_terminated,
                                .now_ms = clock_now};
    h->txn = txn_layer_new(h->timers, &xc, &ops);
    assert_non_null(h->txn);
    h->ua = harness_ua_new(h);
    assert_non_null(h->ua);
    return h;
}

void harness_free(struct harness *h)
{
    if (!h) return;
    ua_free(h->ua);
    txn_layer_free(h->txn);
    timer_service_free(h->timers);
    harness_clear_sent(h);
    free(h->sent);
    arena_free(&h->priv->in_arena);
    arena_free(&h->priv->out_arena);
    free(h->priv->in);
    free(h->priv->out);
    free(h->priv);
    free(h);
}

void harness_advance(struct harness *h, uint64_t ms)
{
    uint64_t end = h->now + ms;
    for (;;) {
        uint64_t next = timer_next_deadline(h->timers);
        if (next > end) break;
        if (next > h->now) h->now = next;
        timer_run(h->timers, h->now);
    }
    h->now = end;
    timer_run(h->timers, h->now);
}

/* LF -> CRLF (an existing CRLF stays), "#CL#" -> the body length. */
static char *make(const char *text, size_t *len)
{
    size_t n = strlen(text), o = 0;
    char *tmp = malloc(2 * n + 1);
    assert_non_null(tmp);
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) tmp[o++] = '\r';
        tmp[o++] = text[i];
    }
    tmp[o] = '\0';
    const char *hend = strstr(tmp, "\r\n\r\n");
    size_t body = hend ? o - (size_t)(hend + 4 - tmp) : 0;
    char *out = malloc(o + 32);
    assert_non_null(out);
    size_t w = 0;
    for (size_t i = 0; i < o;) {
        if (i + 4 <= o && !memcmp(tmp + i, "#CL#", 4) && (!hend || tmp + i < hend)) {
            w += (size_t)snprintf(out + w, 24, "%zu", body);
            i += 4;
        } else {
            out[w++] = tmp[i++];
        }
    }
    out[w] = '\0';
    free(tmp);
    *len = w;
    return out;
}

int harness_inject(struct harness *h, const char *ip, uint16_t port, enum sip_transport proto, const char *text)
{
    struct harness_priv *p = h->priv;
    free(p->in);
    size_t len;
    p->in = make(text, &len);
    arena_free(&p->in_arena);
    arena_init(&p->in_arena, p->in_mem, sizeof(p->in_mem));
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    struct sip_parse_error err;
    int rc = sip_parse(p->in, len, &p->in_arena, &lim, &p->in_msg, &err);
    if (rc < 0) return rc;
    struct transport_rx *rx = &p->rx;
    memset(rx, 0, sizeof(*rx));
    rx->msg = &p->in_msg;
    rx->proto = proto;
    rx->conn_id = sip_transport_is_stream(proto) ? h->conn_id : 0;
    if (transport_addr_parse(ip, strlen(ip), port, &rx->src) != 0) return -22;
    transport_addr_parse(h->local.host, strlen(h->local.host), h->local.port[SIP_TRANSPORT_UDP], &rx->local);
    snprintf(rx->src_text, sizeof(rx->src_text), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, (unsigned)port);
    return txn_layer_receive(h->txn, rx);
}

size_t harness_sent_count(const struct harness *h) { return h->nsent; }

void harness_clear_sent(struct harness *h)
{
    for (size_t i = 0; i < h->nsent; i++) free(h->sent[i].data);
    h->nsent = 0;
}

const struct sip_msg *harness_sent_msg(struct harness *h, size_t i)
{
    assert_true(i < h->nsent);
    struct harness_priv *p = h->priv;
    free(p->out);
    p->out = malloc(h->sent[i].len + 1);
    assert_non_null(p->out);
    memcpy(p->out, h->sent[i].data, h->sent[i].len + 1);
    arena_free(&p->out_arena);
    arena_init(&p->out_arena, p->out_mem, sizeof(p->out_mem));
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    struct sip_parse_error err;
    if (sip_parse(p->out, h->sent[i].len, &p->out_arena, &lim, &p->out_msg, &err) != 0)
        fail_msg("sent message %zu does not parse:\n%s", i, h->sent[i].data);
    return &p->out_msg;
}

const struct sip_msg *harness_last(struct harness *h)
{
    assert_true(h->nsent > 0);
    return harness_sent_msg(h, h->nsent - 1);
}

int harness_find_sent(const struct harness *h, size_t from, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = from; i < h->nsent; i++)
        if (h->sent[i].len >= n && !memcmp(h->sent[i].data, prefix, n)) return (int)i;
    return -1;
}

int harness_find_last_sent(const struct harness *h, const char *prefix)
{
    int found = -1;
    for (int i = 0; (i = harness_find_sent(h, (size_t)i, prefix)) >= 0; i++) found = i;
    return found;
}

void harness_answer_sent(struct harness *h, size_t i, int status, const char *ip, uint16_t port)
{
    const struct sip_msg *m = harness_sent_msg(h, i);
    char text[2048];
    snprintf(text, sizeof(text),
             "SIP/2.0 %d Whatever\nVia: %.*s\nFrom: %.*s\nTo: %.*s\nCall-ID: %.*s\nCSeq: %u %.*s\n"
             "Content-Length: 0\n\n",
             status, STR_FMT(harness_header(m, SIP_HDR_VIA)), STR_FMT(harness_header(m, SIP_HDR_FROM)),
             STR_FMT(harness_header(m, SIP_HDR_TO)), STR_FMT(m->call_id), m->cseq.number,
             STR_FMT(m->cseq.method_name));
    assert_int_equal(harness_inject(h, ip, port, SIP_TRANSPORT_UDP, text), 0);
}

size_t harness_count_sent(const struct harness *h, size_t from, const char *prefix)
{
    size_t k = 0;
    for (int i = harness_find_sent(h, from, prefix); i >= 0; i = harness_find_sent(h, (size_t)i + 1, prefix)) k++;
    return k;
}

bool harness_sent_to(const struct harness *h, size_t i, const char *ip, uint16_t port)
{
    struct sockaddr_storage want;
    if (i >= h->nsent || transport_addr_parse(ip, strlen(ip), port, &want) != 0) return false;
    const struct sockaddr_storage *got = &h->sent[i].dest.addr;
    if (got->ss_family != want.ss_family) return false;
    if (want.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)got, *b = (const void *)&want;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *a = (const void *)got, *b = (const void *)&want;
    return a->sin6_port == b->sin6_port && !memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr));
}

int harness_sent_status(struct harness *h, size_t i)
{
    const struct sip_msg *m = harness_sent_msg(h, i);
    return m->is_request ? 0 : m->status;
}

str_t harness_header(const struct sip_msg *m, enum sip_hdr t) { return harness_header_nth(m, t, 0); }

int harness_header_count(const struct sip_msg *m, enum sip_hdr t)
{
    int n = 0;
    for (const struct sip_header *x = sip_msg_header(m, t); x; x = sip_msg_header_next(m, x)) n++;
    return n;
}

str_t harness_header_nth(const struct sip_msg *m, enum sip_hdr t, int k)
{
    for (const struct sip_header *x = sip_msg_header(m, t); x; x = sip_msg_header_next(m, x))
        if (k-- == 0) return x->value;
    return STR_NULL;
}

bool harness_header_has(const struct sip_msg *m, enum sip_hdr t, const char *needle)
{
    size_t nl = strlen(needle);
    for (const struct sip_header *x = sip_msg_header(m, t); x; x = sip_msg_header_next(m, x))
        for (size_t i = 0; i + nl <= x->value.len; i++)
            if (!memcmp(x->value.s + i, needle, nl)) return true;
    return false;
}

void harness_add_user(struct harness *h, struct users *users, const char *name, const char *password)
{
    char md5[65], sha[65];
    str_t realm = str_from_cstr(h->local.realm), n = str_from_cstr(name), pw = str_from_cstr(password);
    assert_int_equal(auth_ha1(AUTH_ALG_MD5, n, realm, pw, md5), 0);
    assert_int_equal(auth_ha1(AUTH_ALG_SHA256, n, realm, pw, sha), 0);
    assert_int_equal(users_add(users, name, h->local.realm, md5, sha, NULL, NULL), 0);
}
