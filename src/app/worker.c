/* worker.c — builds a worker from its config and tears it down (see worker.h).
 *
 * Timers: every module arms its timers in w->timers (src/base/timer.h). One
 * uv_timer_t drives them; a uv_prepare_t re-arms it at the earliest deadline
 * just before each loop iteration blocks, so modules never have to tell the
 * worker that a deadline moved. The clock is uv_now(loop). */
#include "app/worker.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/events.h"
#include "api/http.h"
#include "auth/digest.h"
#include "base/log.h"
#include "registrar/users.h"
#include "store/store.h"
#include "txn/txn.h"

/* ---- timers ---- */

uint64_t worker_now_ms(const struct worker *w) { return uv_now(w->loop); }

static void on_uv_timer(uv_timer_t *h)
{
    struct worker *w = h->data;
    timer_run(&w->timers, uv_now(w->loop));
}

void worker_timers_changed(struct worker *w)
{
    if (w->stopping && w->timers.count == 0) {
        uv_timer_stop(&w->timer_handle);
        return;
    }
    uint64_t next = timer_next_deadline(&w->timers);
    if (next == UINT64_MAX) {
        uv_timer_stop(&w->timer_handle);
        return;
    }
    uint64_t now = uv_now(w->loop);
    uv_timer_start(&w->timer_handle, on_uv_timer, next > now ? next - now : 0, 0);
}

static void on_prepare(uv_prepare_t *h) { worker_timers_changed(h->data); }

static uint64_t clock_cb(void *user) { return uv_now(((struct worker *)user)->loop); }

/* ---- transport and transaction glue ---- */

void worker_count_response_out(struct worker *w, const char *data, size_t len)
{
    if (len < 12 || memcmp(data, "SIP/2.0 ", 8) != 0) return;
    int code = (data[8] - '0') * 100 + (data[9] - '0') * 10 + (data[10] - '0');
    if (code < 100 || code > 699) return;
    w->stats.responses_out[code / 100]++;
    w->stats.responses_out_by_code[code]++;
}

static int txn_send(void *user, struct transport_dest *dest, const void *data, size_t len)
{
    struct worker *w = user;
    worker_count_response_out(w, data, len);
    return transport_send(w->transport, dest, data, len);
}

static void txn_on_request(void *user, struct txn *st, const struct transport_rx *rx)
{
    dispatch_request(user, st, rx);
}

static void txn_on_ack(void *user, const struct transport_rx *rx)
{
    struct worker *w = user;
    dispatch_ack(w, rx);
}

static void txn_on_stray_response(void *user, const struct transport_rx *rx)
{
    struct worker *w = user;
    dispatch_stray_response(w, rx);
}

static void txn_on_server_terminated(void *user, struct txn *st) { dispatch_server_terminated(user, st); }

static void on_message(void *user, const struct transport_rx *rx)
{
    struct worker *w = user;
    if (rx->parse_error) {
        w->stats.bad_requests++;
        if (rx->msg && rx->parse_error->can_answer && rx->msg->is_request && rx->msg->method != SIP_ACK)
            worker_reply_stateless(w, rx, rx->parse_error->status ? rx->parse_error->status : 400,
                                   rx->parse_error->reason);
        return;
    }
    if (rx->msg->is_request) w->stats.requests_in[rx->msg->method]++;
    else w->stats.responses_in++;
    txn_layer_receive(w->txn, rx);
}

static void on_conn_lost(void *user, uint64_t conn_id, const struct sockaddr_storage *peer, const char *reason)
{
    struct worker *w = user;
    char text[TRANSPORT_ADDR_TEXT];
    transport_addr_text(peer, text, sizeof(text));
    log_info("tcp connection %llu to %s lost: %s", (unsigned long long)conn_id, text, reason);
    txn_layer_conn_lost(w->txn, conn_id);
    dispatch_conn_lost(w, conn_id, text);
}

/* ---- stats for the API ---- */

static void stats_provider(json_t *stats, void *arg)
{
    struct worker *w = arg;
    json_t *in = json_object();
    for (int m = 0; m < SIP_METHOD_COUNT; m++) {
        if (!w->stats.requests_in[m]) continue;
        json_object_set_new(in, m ? sip_method_name((enum sip_method)m) : "other",
                            json_integer((json_int_t)w->stats.requests_in[m]));
    }
    json_object_set_new(stats, "messages_in", in);
    json_t *out = json_object();
    for (int c = 100; c < 700; c++) {
        if (!w->stats.responses_out_by_code[c]) continue;
        char key[8];
        snprintf(key, sizeof(key), "%d", c);
        json_object_set_new(out, key, json_integer((json_int_t)w->stats.responses_out_by_code[c]));
    }
    json_object_set_new(stats, "responses_out", out);
    struct txn_stats ts;
    txn_layer_stats(w->txn, &ts);
    json_object_set_new(stats, "transactions",
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "server_live",
                                  (json_int_t)ts.server_live, "client_live", (json_int_t)ts.client_live, "created",
                                  (json_int_t)(ts.server_created + ts.client_created), "retransmissions_absorbed",
                                  (json_int_t)ts.retransmissions_absorbed, "timeouts", (json_int_t)ts.timeouts,
                                  "transport_errors", (json_int_t)ts.transport_errors, "server_completed",
                                  (json_int_t)ts.server_completed, "server_max", (json_int_t)ts.server_max,
                                  "refused_over_cap", (json_int_t)ts.refused_over_cap, "stateless_finals",
                                  (json_int_t)ts.stateless_finals, "stateless_acks_absorbed",
                                  (json_int_t)ts.stateless_acks_absorbed, "retransmissions_sent",
                                  (json_int_t)ts.retransmissions_sent));
    struct transport_stats tr;
    transport_get_stats(w->transport, &tr);
    json_object_set_new(stats, "transport",
                        json_pack("{s:I,s:I,s:I,s:I,s:I}", "messages_in", (json_int_t)tr.messages_in,
                                  "messages_out", (json_int_t)tr.messages_out, "parse_errors",
                                  (json_int_t)tr.parse_errors, "dropped", (json_int_t)tr.dropped, "tcp_open",
                                  (json_int_t)tr.tcp_open));
    json_object_set_new(stats, "bad_requests", json_integer((json_int_t)w->stats.bad_requests));
    dispatch_stats(w, stats);
}

static void metric_requests(struct api_metric_writer *mw, void *arg)
{
    struct worker *w = arg;
    for (int m = 0; m < SIP_METHOD_COUNT; m++)
        if (w->stats.requests_in[m])
            api_metric_sample(mw, "method", m ? sip_method_name((enum sip_method)m) : "other",
                              (double)w->stats.requests_in[m]);
}

static void metric_responses(struct api_metric_writer *mw, void *arg)
{
    struct worker *w = arg;
    for (int c = 100; c < 700; c++) {
        if (!w->stats.responses_out_by_code[c]) continue;
        char code[8];
        snprintf(code, sizeof(code), "%d", c);
        api_metric_sample(mw, "code", code, (double)w->stats.responses_out_by_code[c]);
    }
}

static double metric_server_txns(void *arg)
{
    struct txn_stats ts;
    txn_layer_stats(((struct worker *)arg)->txn, &ts);
    return ts.server_live;
}

static double metric_client_txns(void *arg)
{
    struct txn_stats ts;
    txn_layer_stats(((struct worker *)arg)->txn, &ts);
    return ts.client_live;
}

static double metric_tcp_open(void *arg)
{
    struct transport_stats tr;
    transport_get_stats(((struct worker *)arg)->transport, &tr);
    return tr.tcp_open;
}

static double metric_events(void *arg) { return (double)event_bus_published(((struct worker *)arg)->events); }

static void api_setup(struct worker *w)
{
    api_stats_provider(w->api, stats_provider, w);
    api_metric_family(w->api, "cascade_sip_requests_in_total", "SIP requests received, by method",
                      API_METRIC_COUNTER, metric_requests, w);
    api_metric_family(w->api, "cascade_sip_responses_out_total", "SIP responses sent, by status code",
                      API_METRIC_COUNTER, metric_responses, w);
    api_metric_gauge(w->api, "cascade_server_transactions", "Live server transactions", metric_server_txns, w);
    api_metric_gauge(w->api, "cascade_client_transactions", "Live client transactions", metric_client_txns, w);
    api_metric_gauge(w->api, "cascade_tcp_connections", "Open SIP TCP connections", metric_tcp_open, w);
    api_metric_counter(w->api, "cascade_events_total", "Events published", metric_events, w);
}

/* ---- signals ---- */

static void on_signal(uv_signal_t *h, int signum)
{
    struct worker *w = h->data;
    log_info("signal %d: stopping", signum);
    worker_stop(w);
}

/* ---- start / stop ---- */

static int start_listeners(struct worker *w)
{
    for (int i = 0; i < w->cfg.sip.listen_count; i++) {
        const struct config_listen *l = &w->cfg.sip.listen[i];
        enum sip_transport proto = l->transport == CONFIG_TRANSPORT_TCP ? SIP_TRANSPORT_TCP : SIP_TRANSPORT_UDP;
        int id = transport_listen(w->transport, proto, l->host, l->port);
        if (id < 0) {
            log_error("cannot listen on %s:%s:%u: %s", transport_name(proto), l->host, l->port, uv_strerror(id));
            return -1;
        }
        int port = transport_listener_port(w->transport, (uint32_t)id);
        log_info("listening on %s %s:%d", transport_name(proto), l->host, port);
        if (proto == SIP_TRANSPORT_UDP && !w->local_udp_port) w->local_udp_port = (uint16_t)port;
        if (proto == SIP_TRANSPORT_TCP && !w->local_tcp_port) w->local_tcp_port = (uint16_t)port;
        if (!w->local_host[0]) snprintf(w->local_host, sizeof(w->local_host), "%s", l->host);
    }
    return 0;
}

static unsigned auth_algorithms(const struct config *cfg)
{
    if (!strcasecmp(cfg->auth.algorithm, "SHA-256")) return AUTH_OFFER(AUTH_ALG_SHA256);
    if (!strcasecmp(cfg->auth.algorithm, "both")) return AUTH_OFFER(AUTH_ALG_MD5) | AUTH_OFFER(AUTH_ALG_SHA256);
    return AUTH_OFFER(AUTH_ALG_MD5);
}

int worker_start(struct worker *w, uv_loop_t *loop)
{
    w->loop = loop;
    timer_service_init(&w->timers);
    uv_timer_init(loop, &w->timer_handle);
    w->timer_handle.data = w;
    uv_prepare_init(loop, &w->prepare_handle);
    w->prepare_handle.data = w;
    uv_prepare_start(&w->prepare_handle, on_prepare);
    snprintf(w->realm, sizeof(w->realm), "%s", w->cfg.auth.realm[0] ? w->cfg.auth.realm : w->cfg.sip.domain);
    RAND_bytes((unsigned char *)&w->tag_state, sizeof(w->tag_state));
    w->tag_state |= 1;

    char err[256];
    if (w->cfg.store.path[0]) {
        w->store = store_open(loop, w->cfg.store.path, err, sizeof(err));
        if (!w->store) {
            log_error("store: %s", err);
            return -1;
        }
    }
    w->events = event_bus_new(loop, w->cfg.events.ring_size, w->cfg.events.webhook);
    if (!w->events) return -1;

    struct auth_server_config acfg = {
        .nonce_ttl_s = (uint32_t)w->cfg.auth.nonce_ttl_s,
        .algorithms = auth_algorithms(&w->cfg),
        /* Room for every nonce handed out within a nonce lifetime at
         * registrar rates (~6 MB): a smaller table evicts fresh nonces and
         * sipp at 5 000 REGISTER/s then sees stale=true. */
        .replay_entries = 1u << 18,
    };
    w->auth = auth_server_new(&acfg);
    if (!w->auth) return -1;

    w->users = users_new(w->store);
    if (!w->users || (w->store && users_load(w->users, w->store) < 0)) {
        log_error("cannot load users");
        return -1;
    }

    struct transport_config tcfg = {
        .max_message_bytes = w->cfg.sip.max_message_bytes,
        .tcp_idle_timeout_ms = w->cfg.sip.tcp_idle_timeout_s * 1000u,
    };
    sip_parse_limits_default(&tcfg.limits);
    tcfg.limits.max_message_bytes = w->cfg.sip.max_message_bytes;
    struct transport_callbacks tcb = {
        .user = w, .on_message = on_message, .on_conn_lost = on_conn_lost, .now_ms = clock_cb};
    w->transport = transport_new(loop, &w->timers, &tcfg, &tcb);
    if (!w->transport || start_listeners(w) < 0) return -1;

    struct txn_config xcfg = {.t1_ms = w->cfg.sip.t1_ms, .t2_ms = w->cfg.sip.t2_ms, .t4_ms = w->cfg.sip.t4_ms,
                              .limits = tcfg.limits, .max_server = w->cfg.sip.max_server_transactions};
    struct txn_layer_ops ops = {
        .user = w,
        .send = txn_send,
        .on_request = txn_on_request,
        .on_ack = txn_on_ack,
        .on_stray_response = txn_on_stray_response,
        .on_server_terminated = txn_on_server_terminated,
        .now_ms = clock_cb,
    };
    w->txn = txn_layer_new(&w->timers, &xcfg, &ops);
    if (!w->txn) return -1;

    if (w->cfg.api.listen[0]) {
        w->api = api_server_new(loop, w->cfg.api.listen, w->cfg.api.token, w->events);
        if (!w->api) return -1;
        api_setup(w);
        log_info("api listening on %s (port %d)", w->cfg.api.listen, api_server_port(w->api));
    }

    if (dispatch_start_roles(w) < 0) return -1;

    uv_timer_init(loop, &w->stop_timer);
    w->stop_timer.data = w;
    uv_signal_init(loop, &w->sigint);
    uv_signal_init(loop, &w->sigterm);
    w->sigint.data = w->sigterm.data = w;
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    w->started = true;
    log_info("cascade ready: sip udp %s:%u tcp %s:%u, domain %s", w->local_host, w->local_udp_port, w->local_host,
             w->local_tcp_port, w->cfg.sip.domain);
    return 0;
}

static void close_if_open(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
}

/* Second half of the stop, once the roles are done (upstreams unregistered). */
static void stop_rest(void *arg)
{
    struct worker *w = arg;
    if (w->api) {
        api_server_free(w->api);
        w->api = NULL;
    }
    if (w->transport) {
        transport_free(w->transport);
        w->transport = NULL;
    }
    if (w->store) {
        /* Answered registrations are committed before their 200 went out;
         * this drains whatever is still queued, then releases the async handle
         * that would otherwise keep the loop alive. */
        store_flush_sync(w->store);
        store_close(w->store);
        w->store = NULL;
    }
    close_if_open((uv_handle_t *)&w->sigint);
    close_if_open((uv_handle_t *)&w->sigterm);
    uv_timer_stop(&w->timer_handle);
    close_if_open((uv_handle_t *)&w->timer_handle);
    close_if_open((uv_handle_t *)&w->prepare_handle);
}

static void on_stop_timer(uv_timer_t *h)
{
    uv_close((uv_handle_t *)h, NULL);
    stop_rest(h->data);
}

/* The roles may report "done" from deep inside a transport callback, where
 * the transport must not be freed: finish on a fresh loop turn. */
static void on_roles_stopped(void *arg)
{
    struct worker *w = arg;
    uv_timer_start(&w->stop_timer, on_stop_timer, 0, 0);
}

void worker_stop(struct worker *w)
{
    if (w->stopping) return;
    w->stopping = true;
    if (w->started) dispatch_stop_roles(w, on_roles_stopped, w);
    else stop_rest(w);
}

void worker_free(struct worker *w)
{
    dispatch_free_roles(w);
    if (w->txn) txn_layer_free(w->txn);
    w->txn = NULL;
    if (w->users) users_free(w->users);
    w->users = NULL;
    if (w->auth) auth_server_free(w->auth);
    w->auth = NULL;
    if (w->events) event_bus_free(w->events);
    w->events = NULL;
    if (w->store) store_close(w->store);
    w->store = NULL;
    timer_service_free(&w->timers);
}

void worker_new_tag(struct worker *w, char out[17])
{
    /* xorshift64*: tags need to be unique, not secret (RFC 3261 §19.3). */
    uint64_t x = w->tag_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->tag_state = x;
    uint64_t v = x * 0x2545F4914F6CDD1DULL;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) out[i] = hex[(v >> (i * 4)) & 15];
    out[16] = '\0';
}
