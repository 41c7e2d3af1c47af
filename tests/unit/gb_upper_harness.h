/* gb_upper_harness.h — drives the GB upper role without sockets: the role
 * built from its collaborators (a real transaction layer and UA, a timer
 * service on a fake clock, no loop, store or event bus), every message the
 * stack sends recorded, and SIP text fed in as the transport would.
 * Shared by tests/unit/test_gb_upper.c and bench/bench_gb_catalog.c
 * (header-only: static functions). */
#ifndef CASCADE_TESTS_GB_UPPER_HARNESS_H
#define CASCADE_TESTS_GB_UPPER_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/worker.h"
#include "auth/digest.h"
#include "app/config.h"
#include "base/sbuf.h"
#include "gb/upper/upper.h"
#include "gb/upper/upper_int.h"
#include "sip/local.h"
#include "txn/txn.h"
#include "ua/ua.h"

#define GBH_KEEP 16

struct gbh {
    struct config cfg;      /* [gb] and [auth] the role is built from: edit between gbh_init and gbh_start */
    struct sip_local local;
    /* ua_new() still takes a worker (its own change is on another branch):
     * this one only carries the timer service and transaction layer the UA
     * uses, which the role gets as collaborators too. */
    struct worker ua_w;
    struct ua *ua;
    const struct txn_admission *admission; /* set before gbh_start; NULL: admit all */
    struct gb_upper *g;
    uint64_t now;
    char *sent[GBH_KEEP];   /* the last messages sent, newest at (nsent-1) % GBH_KEEP */
    size_t sent_len[GBH_KEEP];
    uint64_t nsent;
    uint32_t seq;           /* for branches/Call-IDs of fed requests */
    _Alignas(16) char arena_mem[65536];
    arena_t arena;
    struct sip_msg msg;
    struct transport_rx rx;
    char *buf;
    size_t buf_cap;
};

static inline int gbh_record(struct gbh *h, const void *data, size_t len)
{
    size_t i = h->nsent % GBH_KEEP;
    free(h->sent[i]);
    h->sent[i] = malloc(len + 1);
    if (!h->sent[i]) return UV_ENOMEM;
    memcpy(h->sent[i], data, len);
    h->sent[i][len] = '\0';
    h->sent_len[i] = len;
    h->nsent++;
    return 0;
}

static inline int gbh_op_send(void *u, struct transport_dest *dest, const void *data, size_t len)
{
    (void)dest;
    return gbh_record(u, data, len);
}
static inline int gbh_ua_send(void *u, struct transport_dest *dest, const void *data, size_t len)
{
    (void)dest;
    return gbh_record(u, data, len);
}
static inline uint64_t gbh_op_now(void *u) { return ((struct gbh *)u)->now; }

static inline void gbh_on_request(void *u, struct txn *st, const struct transport_rx *rx)
{
    struct gbh *h = u;
    if (ua_on_request(h->ua, st, rx)) return;
    if (h->g && gb_upper_on_request(h->g, st, rx)) return;
    txn_respond(st, 405, NULL, STR_LIT("x"), NULL, 0, STR_NULL, STR_NULL);
}
static inline void gbh_on_ack(void *u, const struct transport_rx *rx) { ua_on_ack(((struct gbh *)u)->ua, rx); }
static inline void gbh_on_stray(void *u, const struct transport_rx *rx) { ua_on_response(((struct gbh *)u)->ua, rx); }

/* Config tweaks go through cfg before gb_upper_new (the role copies it):
 * call gbh_init, edit h->cfg, then gbh_start. */
static inline void gbh_init(struct gbh *h)
{
    memset(h, 0, sizeof(*h));
    config_init(&h->cfg);
    h->cfg.gb.enabled = true;
    h->cfg.gb.catalog_on_register = false;
    snprintf(h->cfg.gb.password, sizeof(h->cfg.gb.password), "defaultpw");
    snprintf(h->local.host, sizeof(h->local.host), "192.0.2.1");
    h->local.port[SIP_TRANSPORT_UDP] = 5060;
    h->local.port[SIP_TRANSPORT_TCP] = 5060;
    config_init(&h->ua_w.cfg);
    snprintf(h->ua_w.local.host, sizeof(h->ua_w.local.host), "%s", h->local.host);
    h->ua_w.local.port[SIP_TRANSPORT_UDP] = h->local.port[SIP_TRANSPORT_UDP];
    h->ua_w.local.port[SIP_TRANSPORT_TCP] = h->local.port[SIP_TRANSPORT_TCP];
    h->now = 1000;
    timer_service_init(&h->ua_w.timers);
    timer_run(&h->ua_w.timers, h->now); /* the role reads the service's clock */
}

static inline int gbh_start(struct gbh *h)
{
    struct txn_config xc = {.t1_ms = 500, .t2_ms = 4000, .t4_ms = 5000};
    struct txn_layer_ops ops = {.user = h, .send = gbh_op_send, .on_request = gbh_on_request, .on_ack = gbh_on_ack,
                                .on_stray_response = gbh_on_stray, .now_ms = gbh_op_now};
    h->ua_w.txn = txn_layer_new(&h->ua_w.timers, &xc, &ops);
    h->ua = h->ua_w.txn ? ua_new(&h->cfg.sip, &h->local, &h->ua_w.timers, h->ua_w.txn, NULL, 0) : NULL;
    if (!h->ua) return -1;
    ua_set_sender(h->ua, gbh_ua_send, h);
    snprintf(h->local.user_agent, sizeof(h->local.user_agent), "%s", h->cfg.sip.user_agent);
    struct auth_server_config ac;
    auth_server_config_from(&ac, &h->cfg.auth, AUTH_OFFER(AUTH_ALG_MD5));
    struct gb_upper_deps deps = {.timers = &h->ua_w.timers, .ua = h->ua, .admission = h->admission};
    h->g = gb_upper_new(&h->cfg.gb, &ac, &h->local, h->cfg.store.path, &deps);
    return h->g ? 0 : -1;
}

static inline void gbh_free(struct gbh *h)
{
    if (h->g) gb_upper_stop(h->g);
    gb_upper_free(h->g);
    ua_free(h->ua);
    if (h->ua_w.txn) txn_layer_free(h->ua_w.txn);
    timer_service_free(&h->ua_w.timers);
    for (int i = 0; i < GBH_KEEP; i++) free(h->sent[i]);
    free(h->buf);
}

static inline void gbh_advance(struct gbh *h, uint64_t ms)
{
    uint64_t end = h->now + ms;
    for (;;) {
        uint64_t next = timer_next_deadline(&h->ua_w.timers);
        if (next > end) break;
        if (next > h->now) h->now = next;
        timer_run(&h->ua_w.timers, h->now);
    }
    h->now = end;
    timer_run(&h->ua_w.timers, h->now);
}

static inline const char *gbh_last(const struct gbh *h)
{
    return h->nsent ? h->sent[(h->nsent - 1) % GBH_KEEP] : "";
}

/* Status code of the last message sent when it is a response, else 0. */
static inline int gbh_last_status(const struct gbh *h)
{
    const char *m = gbh_last(h);
    return strncmp(m, "SIP/2.0 ", 8) ? 0 : atoi(m + 8);
}

/* Feeds one message (CRLF line ends expected) from src_port over proto. */
static inline int gbh_feed(struct gbh *h, const char *text, size_t len, enum sip_transport proto, uint64_t conn_id,
                    uint16_t src_port)
{
    if (len > h->buf_cap) {
        free(h->buf);
        h->buf = malloc(len);
        h->buf_cap = h->buf ? len : 0;
        if (!h->buf) return -1;
    }
    memcpy(h->buf, text, len);
    arena_init(&h->arena, h->arena_mem, sizeof(h->arena_mem));
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    lim.max_message_bytes = 1u << 20;
    struct sip_parse_error err;
    if (sip_parse(h->buf, len, &h->arena, &lim, &h->msg, &err) != 0) return -1;
    memset(&h->rx, 0, sizeof(h->rx));
    h->rx.msg = &h->msg;
    h->rx.proto = proto;
    h->rx.conn_id = conn_id;
    transport_addr_parse("192.0.2.9", 9, src_port, &h->rx.src);
    transport_addr_parse("192.0.2.1", 9, 5060, &h->rx.local);
    snprintf(h->rx.src_text, sizeof(h->rx.src_text), "192.0.2.9:%u", src_port);
    int rc = txn_layer_receive(h->ua_w.txn, &h->rx);
    arena_free(&h->arena);
    return rc;
}

/* A REGISTER from id; auth: the Authorization value or NULL. */
static inline int gbh_send_register(struct gbh *h, const char *id, int expires, const char *auth, enum sip_transport proto,
                             uint64_t conn_id, uint16_t port)
{
    sbuf_t b;
    sbuf_init(&b);
    h->seq++;
    sbuf_printf(&b,
                "REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
                "Via: SIP/2.0/%s 192.0.2.9:%u;branch=z9hG4bKreg%u;rport\r\n"
                "From: <sip:%s@3402000000>;tag=ft%u\r\nTo: <sip:%s@3402000000>\r\n"
                "Call-ID: reg-%s\r\nCSeq: %u REGISTER\r\nContact: <sip:%s@192.0.2.9:%u>\r\n"
                "Max-Forwards: 70\r\nExpires: %d\r\n%s%s%sContent-Length: 0\r\n\r\n",
                proto == SIP_TRANSPORT_TCP ? "TCP" : "UDP", port, h->seq, id, h->seq, id, id, h->seq, id, port,
                expires, auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "");
    int rc = gbh_feed(h, b.data, b.len, proto, conn_id, port);
    sbuf_free(&b);
    return rc;
}

/* 401 then digest: the final status. */
static inline int gbh_register(struct gbh *h, const char *id, const char *password, int expires, enum sip_transport proto,
                        uint64_t conn_id, uint16_t port)
{
    gbh_send_register(h, id, expires, NULL, proto, conn_id, port);
    int st = gbh_last_status(h);
    if (st != 401) return st;
    const char *w = strstr(gbh_last(h), "WWW-Authenticate: ");
    if (!w) return -1;
    w += 18;
    const char *e = strstr(w, "\r\n");
    struct auth_challenge ch;
    if (auth_parse_challenge(str_make(w, (size_t)(e - w)), &ch) != 0) return -1;
    sbuf_t ans;
    sbuf_init(&ans);
    auth_client_answer(&ch, str_from_cstr(id), str_from_cstr(password), STR_LIT("REGISTER"),
                       STR_LIT("sip:34020000002000000001@3402000000"), 1, STR_NULL, &ans);
    sbuf_append_char(&ans, '\0');
    gbh_send_register(h, id, expires, ans.data, proto, conn_id, port);
    sbuf_free(&ans);
    return gbh_last_status(h);
}

/* A MANSCDP MESSAGE from id with body; the status answered. */
static inline int gbh_message(struct gbh *h, const char *id, const char *body, size_t body_len, uint16_t port)
{
    sbuf_t b;
    sbuf_init(&b);
    h->seq++;
    sbuf_printf(&b,
                "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"
                "Via: SIP/2.0/UDP 192.0.2.9:%u;branch=z9hG4bKmsg%u;rport\r\n"
                "From: <sip:%s@3402000000>;tag=mt%u\r\nTo: <sip:34020000002000000001@3402000000>\r\n"
                "Call-ID: msg-%u\r\nCSeq: 20 MESSAGE\r\nMax-Forwards: 70\r\n"
                "Content-Type: Application/MANSCDP+xml\r\nContent-Length: %zu\r\n\r\n",
                port, h->seq, id, h->seq, h->seq, body_len);
    sbuf_append(&b, body, body_len);
    int rc = gbh_feed(h, b.data, b.len, SIP_TRANSPORT_UDP, 0, port);
    sbuf_free(&b);
    return rc < 0 ? rc : gbh_last_status(h);
}

static inline int gbh_keepalive(struct gbh *h, const char *id, uint16_t port)
{
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n"
                     "<SN>%u</SN>\r\n<DeviceID>%s</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n",
                     h->seq, id);
    return gbh_message(h, id, body, (size_t)n, port);
}

#endif
