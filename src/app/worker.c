/* worker.c — builds a worker from its config and tears it down (see worker.h).
 *
 * Timers: every module arms its timers in w->timers (src/base/timer.h). One
 * uv_timer_t drives them; a uv_prepare_t re-arms it at the earliest deadline
 * just before each loop iteration blocks, so modules never have to tell the
 * worker that a deadline moved. The clock is uv_now(loop).
 *
 * Overload: a 100 ms timer measures how late it fires (the loop's lag) and
 * feeds base/overload.c, which the REGISTER paths consult through
 * worker_overload_refuse() together with the live server transactions and
 * the store's backlog. */
#include "app/worker.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events/events.h"
#include "app/events_stream.h"
#include "api/http.h"
#include "api/routes_rooms.h"
#include "auth/digest.h"
#include "base/log.h"
#include "media/sfu.h"
#include "media/srtp_crypto.h"
#include "registrar/registrar.h"
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

/* The loop's idle time, for the overload detector: from the end of the
 * prepare phase to the start of the check phase, i.e. the wall time spent
 * in (or runnable after) epoll_wait. libuv's UV_METRICS_IDLE_TIME measures
 * the same but adds a non-blocking epoll_wait before every blocking one,
 * one more system call per wake-up, which is most of them at low rates.
 * Ordering: libuv runs the most recently started watcher of a kind first.
 * This prepare handle was started before any other, so it runs last; the
 * check handle is restarted here, so it runs first, before the transport's
 * check flushes what the poll phase produced (that is work, not idle). */
static void on_idle_check(uv_check_t *h)
{
    struct worker *w = h->data;
    if (w->idle_from_ns) {
        w->idle_ns += uv_hrtime() - w->idle_from_ns;
        w->idle_from_ns = 0;
    }
    /* Timers due now run here, after the poll phase's callbacks and before
     * the transport's check sends what they made. These are mostly the
     * zero-delay ones those callbacks just set (a transaction freed once
     * its final response is out, RFC 3261 Timer J = 0 on TCP): left to the
     * timer phase, each would cost one more loop turn with a non-blocking
     * epoll_wait. What they hand the store commits in the next turn's
     * prepare phase, before the loop blocks again. */
    uint64_t now = uv_now(w->loop);
    if (timer_next_deadline(&w->timers) <= now) timer_run(&w->timers, now);
}

static void on_prepare(uv_prepare_t *h)
{
    struct worker *w = h->data;
    worker_timers_changed(w);
    uv_check_stop(&w->idle_check);
    uv_check_start(&w->idle_check, on_idle_check);
    w->idle_from_ns = uv_hrtime();
}

static uint64_t clock_cb(void *user) { return uv_now(((struct worker *)user)->loop); }

/* ---- overload control ---- */

#define LAG_SAMPLE_MS 100

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_lag_timer(uv_timer_t *h)
{
    struct worker *w = h->data;
    uint64_t now_ns = uv_hrtime();
    uint64_t due_ns = w->lag_last_ns + (uint64_t)LAG_SAMPLE_MS * 1000000u;
    uint32_t lag_ms = now_ns > due_ns ? (uint32_t)((now_ns - due_ns) / 1000000u) : 0;
    /* Busy: the loop thread's CPU time over that plus its time waiting in
     * epoll. Time the thread sat runnable while another process had the
     * core counts as neither, so a shared core does not look saturated
     * unless the loop itself never waits. */
    uint64_t idle_ns = w->idle_ns, cpu_ns = thread_cpu_ns();
    uint64_t idle = idle_ns - w->idle_last_ns, cpu = cpu_ns - w->cpu_last_ns;
    uint32_t busy = cpu + idle ? (uint32_t)(cpu * 100u / (cpu + idle)) : 0;
    histogram_observe(&w->loop_lag, now_ns > due_ns ? (now_ns - due_ns) / 1000u : 0);
    w->lag_last_ns = now_ns;
    w->idle_last_ns = idle_ns;
    w->cpu_last_ns = cpu_ns;
    overload_note_loop_rxq(&w->overload, uv_now(w->loop), lag_ms, busy, transport_udp_rx_queue_pct(w->transport));
    log_flush_suppressed(); /* call sites that went quiet after a burst: their counts */
}

static void overload_start(struct worker *w)
{
    uint64_t seed;
    RAND_bytes((unsigned char *)&seed, sizeof(seed));
    overload_init(&w->overload, &w->cfg.overload, seed);
    uv_timer_init(w->loop, &w->lag_timer);
    w->lag_timer.data = w;
    histogram_init(&w->loop_lag, histogram_latency_bounds_us, HISTOGRAM_LATENCY_BOUNDS);
    for (int i = 0; i < 2; i++) histogram_init(&w->handling[i], histogram_latency_bounds_us, HISTOGRAM_LATENCY_BOUNDS);
    w->idle_last_ns = w->idle_ns;
    w->cpu_last_ns = thread_cpu_ns();
    w->lag_last_ns = uv_hrtime();
    uv_timer_start(&w->lag_timer, on_lag_timer, LAG_SAMPLE_MS, LAG_SAMPLE_MS);
    uv_unref((uv_handle_t *)&w->lag_timer); /* a sampler keeps no loop alive */
}

static uint32_t store_backlog(struct worker *w)
{
    struct store_stats ss;
    store_get_stats(w->store, &ss);
    return ss.submitted > ss.completed ? (uint32_t)(ss.submitted - ss.completed) : 0;
}

/* Server transactions still working: completed UDP ones kept for Timer J
 * (compact records) are no queued work. */
static uint32_t working_txns(const struct txn_stats *ts)
{
    return ts->server_live > ts->server_completed ? ts->server_live - ts->server_completed : 0;
}

bool worker_overload_busy(struct worker *w)
{
    struct txn_stats ts;
    txn_layer_stats(w->txn, &ts);
    struct overload_load load = {.server_txns = working_txns(&ts), .store_backlog = store_backlog(w)};
    return overload_busy(&w->overload, uv_now(w->loop), &load);
}

bool worker_overload_refuse(struct worker *w, struct txn *st)
{
    if (!w->overload.cfg.enabled) return false;
    struct txn_stats ts;
    txn_layer_stats(w->txn, &ts);
    struct overload_load load = {.server_txns = working_txns(&ts), .store_backlog = store_backlog(w)};
    const struct sip_msg *req = txn_request(st);
    bool second_leg = req && sip_msg_header(req, SIP_HDR_AUTHORIZATION);
    enum overload_verdict v = overload_check(&w->overload, uv_now(w->loop), &load, !second_leg);
    if (v == OVERLOAD_ADMIT) return false;
    char ra[40], server[96], tag[17];
    snprintf(ra, sizeof(ra), "Retry-After: %u", overload_retry_after(&w->overload));
    snprintf(server, sizeof(server), "Server: %s", w->cfg.sip.user_agent);
    str_t lines[] = {str_from_cstr(server), str_from_cstr(ra)};
    worker_new_tag(w, tag);
    const struct transport_rx *ri = txn_rx_info(st);
    char src[TRANSPORT_ADDR_TEXT];
    snprintf(src, sizeof(src), "%s", ri ? ri->src_text : "?");
    /* RFC 3261 §21.5.4: 503 with Retry-After; no transaction record is kept
     * (a retransmission is refused again, which costs as little). */
    int rc = txn_respond_stateless(st, 503, "Service Unavailable", str_from_cstr(tag), lines, 2, STR_NULL, STR_NULL);
    if (rc < 0) log_warn("overload: 503 to %s not sent: %s", src, strerror(-rc));
    /* One line a second at most: a storm must not turn into a log storm. */
    uint64_t now = uv_now(w->loop);
    if (now - w->overload_log_at >= 1000 || !w->overload_log_at) {
        log_warn("overload (%s): new REGISTER from %s refused with 503, %s (and %llu more in the last second)",
                 overload_verdict_name(v), src, ra, (unsigned long long)w->overload_log_skipped);
        w->overload_log_at = now;
        w->overload_log_skipped = 0;
    } else {
        w->overload_log_skipped++;
    }
    return true;
}

static json_t *overload_json(struct worker *w)
{
    const struct overload_stats *s = &w->overload.stats;
    struct txn_stats ts;
    txn_layer_stats(w->txn, &ts);
    return json_pack("{s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:i,s:i}", "enabled", w->overload.cfg.enabled,
                     "loop_overloaded", overload_loop_overloaded(&w->overload, uv_now(w->loop)), "admitted",
                     (json_int_t)s->admitted, "refused", (json_int_t)s->refused, "refused_loop",
                     (json_int_t)s->refused_by[OVERLOAD_LOOP],
                     "refused_server_transactions", (json_int_t)s->refused_by[OVERLOAD_TXNS],
                     "refused_store_backlog", (json_int_t)s->refused_by[OVERLOAD_STORE], "refused_rate",
                     (json_int_t)s->refused_by[OVERLOAD_RATE], "loop_episodes", (json_int_t)s->loop_episodes,
                     "loop_lag_ms", (int)s->loop_lag_ms, "loop_lag_max_ms", (int)s->loop_lag_max_ms, "loop_busy_pct",
                     (int)s->loop_busy_pct, "rx_queue_pct", (int)s->rx_queue_pct,
                     "server_transactions", (int)working_txns(&ts), "store_backlog", (int)store_backlog(w));
}

static double metric_overload_refused(void *arg) { return (double)((struct worker *)arg)->overload.stats.refused; }
static double metric_loop_lag(void *arg) { return ((struct worker *)arg)->overload.stats.loop_lag_ms; }

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

/* Handling time (request received -> our first final response sent) of
 * REGISTER and INVITE: the arrival is stamped on the transaction in
 * microseconds (never 0: 0 is "not measured"). */
static uint64_t now_us(void) { return uv_hrtime() / 1000u; }

static void txn_on_request(void *user, struct txn *st, const struct transport_rx *rx)
{
    enum sip_method m = rx->msg->method;
    if (m == SIP_REGISTER || m == SIP_INVITE) txn_set_stamp(st, now_us() | 1u);
    dispatch_request(user, st, rx);
}

static void txn_on_final_sent(void *user, struct txn *st, int status, uint64_t stamp)
{
    (void)status;
    if (!stamp) return;
    struct worker *w = user;
    uint64_t now = now_us();
    histogram_observe(&w->handling[txn_is_invite(st) ? 1 : 0], now > stamp ? now - stamp : 0);
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
    log_info("SIP connection %llu with %s lost: %s", (unsigned long long)conn_id, text, reason);
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
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "messages_in", (json_int_t)tr.messages_in,
                                  "messages_out", (json_int_t)tr.messages_out, "parse_errors",
                                  (json_int_t)tr.parse_errors, "dropped", (json_int_t)tr.dropped, "tcp_open",
                                  (json_int_t)tr.tcp_open, "tcp_refused", (json_int_t)tr.tcp_refused,
                                  "tcp_timed_out", (json_int_t)tr.tcp_timed_out, "tcp_max_connections",
                                  (json_int_t)tr.tcp_max_connections));
    json_t *tj = json_object_get(stats, "transport");
    json_t *open = json_object();
    for (int p = SIP_TRANSPORT_TCP; p < SIP_TRANSPORT_COUNT; p++)
        json_object_set_new(open, sip_transport_param(p), json_integer(tr.conns_by_proto[p]));
    json_object_set_new(tj, "connections", open);
    json_object_set_new(tj, "tls_handshakes", json_integer((json_int_t)tr.tls_handshakes));
    json_object_set_new(tj, "tls_failed", json_integer((json_int_t)tr.tls_failed));
    json_object_set_new(tj, "ws_upgrades", json_integer((json_int_t)tr.ws_upgrades));
    json_object_set_new(tj, "ws_refused", json_integer((json_int_t)tr.ws_refused));
    json_object_set_new(stats, "bad_requests", json_integer((json_int_t)w->stats.bad_requests));
    json_object_set_new(stats, "overload", overload_json(w));
    json_object_set_new(stats, "store", json_pack("{s:s}", "backend",
                                                  w->cfg.store.backend == STORE_BACKEND_REDIS ? "redis" : "sqlite"));
    dispatch_stats(w, stats);
    if (w->events_stream) events_stream_stats_json(w->events_stream, stats);
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

static void metric_connections(struct api_metric_writer *mw, void *arg)
{
    struct transport_stats tr;
    transport_get_stats(((struct worker *)arg)->transport, &tr);
    for (int p = SIP_TRANSPORT_TCP; p < SIP_TRANSPORT_COUNT; p++)
        api_metric_sample(mw, "transport", sip_transport_param(p), tr.conns_by_proto[p]);
}

static double metric_tls_handshakes(void *arg)
{
    struct transport_stats tr;
    transport_get_stats(((struct worker *)arg)->transport, &tr);
    return (double)tr.tls_handshakes;
}

static double metric_events(void *arg) { return (double)event_bus_published(((struct worker *)arg)->events); }

static void metric_handling(struct api_metric_writer *mw, void *arg)
{
    struct worker *w = arg;
    static const char *const methods[] = {"REGISTER", "INVITE"};
    for (int i = 0; i < 2; i++) {
        struct histogram snap;
        histogram_snapshot(&w->handling[i], &snap);
        api_metric_histogram_sample(mw, "method", methods[i], &snap);
    }
}

static void api_reload(struct api_request *req, void *user);

static void api_setup(struct worker *w)
{
    api_stats_provider(w->api, stats_provider, w);
    api_route(w->api, "POST", "/api/v1/reload", api_reload, w);
    api_metric_family(w->api, "cascade_sip_requests_in_total", "SIP requests received, by method",
                      API_METRIC_COUNTER, metric_requests, w);
    api_metric_family(w->api, "cascade_sip_responses_out_total", "SIP responses sent, by status code",
                      API_METRIC_COUNTER, metric_responses, w);
    api_metric_gauge(w->api, "cascade_server_transactions", "Live server transactions", metric_server_txns, w);
    api_metric_gauge(w->api, "cascade_client_transactions", "Live client transactions", metric_client_txns, w);
    api_metric_gauge(w->api, "cascade_tcp_connections", "Open SIP connections (TCP, TLS, WS, WSS)", metric_tcp_open, w);
    api_metric_family(w->api, "cascade_sip_connections", "Open SIP connections, by transport", API_METRIC_GAUGE,
                      metric_connections, w);
    api_metric_counter(w->api, "cascade_tls_handshakes_total", "TLS handshakes completed (SIP over TLS and WSS)",
                       metric_tls_handshakes, w);
    api_metric_counter(w->api, "cascade_events_total", "Events published", metric_events, w);
    api_metric_counter(w->api, "cascade_overload_refused_total", "New REGISTERs refused with 503 (overload)",
                       metric_overload_refused, w);
    api_metric_gauge(w->api, "cascade_loop_lag_ms", "Event loop lag, last 100 ms sample", metric_loop_lag, w);
    api_metric_histogram(w->api, "cascade_loop_lag_seconds", "Event loop lag, every 100 ms sample", &w->loop_lag);
    api_metric_family(w->api, "cascade_sip_handling_seconds",
                      "REGISTER and INVITE handling: request received to our first final response sent",
                      API_METRIC_HISTOGRAM, metric_handling, w);
    if (w->store)
        api_metric_histogram(w->api, "cascade_store_commit_seconds",
                             "Store batch transactions (BEGIN, the ops, COMMIT)", store_commit_histogram(w->store));
}

/* ---- media ---- */

/* [media] as the SFU takes it; the strings point into cfg. */
static void media_sfu_config(const struct media_config *m, struct sfu_config *sc)
{
    sfu_config_default(sc);
    sc->rtc.bind_ip = m->listen;
    sc->rtc.port = m->port;
    sc->rtc.tcp = m->ice_tcp;
    sc->rtc.announce_ip = m->announce_ip[0] ? m->announce_ip : NULL;
    sc->rtc.consent_timeout_ms = m->consent_timeout_s * 1000u;
    sc->rtc.connect_timeout_ms = m->connect_timeout_s * 1000u;
    sc->rtc.max_peers = m->max_peers;
    sc->rooms.max_rooms = m->max_rooms;
    sc->rooms.max_participants_per_room = m->max_participants_per_room;
    sc->pli_interval_ms = m->pli_interval_ms;
    sc->remb_bps = m->remb_bps;
}

/* The SFU once the event bus and the API exist: its routes answer 503
 * while it is off. enabled = auto goes on without it when it cannot start
 * (another daemon has the port); yes makes that fatal. */
static int start_media(struct worker *w)
{
    const struct media_config *m = &w->cfg.media;
    if (m->enabled != MEDIA_ENABLED_NO) {
        struct sfu_config sc;
        media_sfu_config(m, &sc);
        char err[256] = "";
        w->sfu = sfu_new(w->loop, &sc, w->events, err, sizeof(err));
        if (w->sfu) {
            log_info("media: rooms, WHIP and WHEP on; media port %s %u (udp%s); SRTP by %s", m->listen, m->port,
                     m->ice_tcp ? ", tcp" : "", msrtp_crypto_name());
        } else if (m->enabled == MEDIA_ENABLED_YES) {
            log_error("media: cannot start on %s port %u: %s", m->listen, m->port, err);
            return -1;
        } else {
            log_error("media: cannot start on %s port %u: %s; going on without rooms, WHIP and WHEP ([media] "
                      "enabled = auto; set another port, or enabled = no)",
                      m->listen, m->port, err);
        }
    }
    if (w->api) {
        api_routes_rooms(w->api, w->sfu);
        if (api_rooms_ws_start(w->api, w->sfu, m->token_secret) < 0) log_error("media: the room websocket cannot start");
    }
    return 0;
}

/* ---- signals ---- */

static void on_signal(uv_signal_t *h, int signum)
{
    struct worker *w = h->data;
    log_info("signal %d: stopping", signum);
    worker_stop(w);
}

/* A refused reload: each of its errors on a line of its own. */
static void log_reload_refused(const char *who, const char *err)
{
    for (const char *line = err; *line;) {
        const char *nl = strchr(line, '\n');
        int len = nl ? (int)(nl - line) : (int)strlen(line);
        log_error("%s: reload refused, the running config stays: %.*s", who, len, line);
        line += len + (nl != NULL);
    }
}

/* SIGHUP: the config file read again and applied where no restart is
 * needed (reload.h); a refused file leaves everything as it runs. */
static void on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    struct worker *w = h->data;
    char err[4096];
    log_info("SIGHUP: reloading");
    if (worker_reload(w, NULL, err, sizeof(err)) != 0) log_reload_refused("SIGHUP", err);
}

/* POST /api/v1/reload: the same as SIGHUP, with what changed in the answer. */
static void api_reload(struct api_request *req, void *user)
{
    struct worker *w = user;
    char err[4096];
    json_t *report = NULL;
    log_info("reload asked through the API by %s", api_remote(req));
    if (worker_reload(w, &report, err, sizeof(err)) != 0) {
        log_reload_refused("API", err);
        api_reply_error(req, w->stopping ? 503 : 400, w->stopping ? "stopping" : "bad-config", "%s", err);
        return;
    }
    api_reply_json(req, 200, report);
}

/* ---- start / stop ---- */

/* What roles get instead of the worker: who this node is (sip/local.h). */
void worker_fill_local(struct worker *w)
{
    /* realm, host and ports are written where they become known (worker_start,
     * the listeners); the rest comes from the config. */
    struct sip_local *l = &w->local;
    snprintf(l->domain, sizeof(l->domain), "%s", w->cfg.sip.domain);
    snprintf(l->user_agent, sizeof(l->user_agent), "%s", w->cfg.sip.user_agent);
}

_Static_assert((int)CONFIG_TRANSPORT_WSS == (int)SIP_TRANSPORT_WSS && (int)CONFIG_TRANSPORT_TLS == (int)SIP_TRANSPORT_TLS,
               "config and SIP transports are numbered alike");

static int start_listeners(struct worker *w)
{
    for (int i = 0; i < w->cfg.sip.listen_count; i++) {
        const struct config_listen *l = &w->cfg.sip.listen[i];
        enum sip_transport proto = (enum sip_transport)l->transport; /* the same numbering, see base/config.h */
        int id = transport_listen(w->transport, proto, l->host, l->port);
        if (id < 0) {
            log_error("cannot listen on %s:%s:%u: %s", transport_name(proto), l->host, l->port, uv_strerror(id));
            return -1;
        }
        int port = transport_listener_port(w->transport, (uint32_t)id); /* transport_listen logged it */
        if (!w->local.port[proto]) w->local.port[proto] = (uint16_t)port;
        if (!w->local.host[0]) snprintf(w->local.host, sizeof(w->local.host), "%s", l->host);
    }
    worker_fill_local(w);
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
    w->timers.clock = clock_cb;
    w->timers.clock_arg = w;
    uv_timer_init(loop, &w->timer_handle);
    w->timer_handle.data = w;
    uv_prepare_init(loop, &w->prepare_handle);
    w->prepare_handle.data = w;
    uv_prepare_start(&w->prepare_handle, on_prepare);
    uv_check_init(loop, &w->idle_check);
    w->idle_check.data = w;
    uv_check_start(&w->idle_check, on_idle_check);
    uv_unref((uv_handle_t *)&w->idle_check); /* a meter keeps no loop alive */
    snprintf(w->local.realm, sizeof(w->local.realm), "%s", w->cfg.auth.realm[0] ? w->cfg.auth.realm : w->cfg.sip.domain);
    RAND_bytes((unsigned char *)&w->tag_state, sizeof(w->tag_state));
    w->tag_state |= 1;
    overload_start(w);

    char err[640];
    if (w->cfg.store.path[0]) {
        w->store = store_open(loop, w->cfg.store.path, err, sizeof(err));
        if (!w->store) {
            log_error("store: %s", err);
            return -1;
        }
        store_set_commit_window(w->store, w->cfg.store.commit_window_ms);
    }
    if (w->cfg.store.backend == STORE_BACKEND_REDIS) {
        char sharing[512];
        config_sharing_describe(&w->cfg, sharing, sizeof(sharing));
        log_info("%s (SQLite %s stays this node's local store)", sharing,
                 w->cfg.store.path[0] ? w->cfg.store.path : "off");
    }
    bool stream = w->cfg.redis.events_stream;
    w->events = event_bus_new(loop, w->cfg.events.ring_size, stream ? "" : w->cfg.events.webhook);
    if (!w->events) return -1;
    if (stream) {
        /* The API and the webhook serve the cluster's events (events_stream.h). */
        w->events_view = event_bus_new(loop, w->cfg.events.ring_size, w->cfg.events.webhook);
        if (!w->events_view) return -1;
        int serr = 0;
        w->events_stream = events_stream_new(loop, &w->timers, &w->cfg.redis, w->events, w->events_view,
                                             w->cfg.events.ring_size, &serr);
        if (!w->events_stream) {
            log_error("[redis] cannot start the event stream toward %s: %s", w->cfg.redis.nodes, strerror(-serr));
            return -1;
        }
        log_info("[redis] events go to the cluster's stream as node %s; the API serves the stream",
                 events_stream_node_id(w->events_stream));
    }

    struct auth_server_config acfg;
    auth_server_config_from(&acfg, &w->cfg.auth, auth_algorithms(&w->cfg));
    /* Room for every nonce handed out within a nonce lifetime at
     * registrar rates (~7 MB): a smaller table evicts fresh nonces and
     * sipp at 5 000 REGISTER/s then sees stale=true. */
    acfg.replay_entries = 1u << 18;
    w->auth = auth_server_new(&acfg);
    if (!w->auth) return -1;

    w->users = users_new(w->store);
    if (!w->users || (w->store && users_load(w->users, w->store) < 0)) {
        log_error("cannot load users");
        return -1;
    }

    w->tls = tls_context_new(&w->cfg.tls, err, sizeof(err));
    if (!w->tls) {
        log_error("tls: %s", err);
        return -1;
    }

    struct transport_config tcfg = {
        .max_message_bytes = w->cfg.sip.max_message_bytes,
        .tcp_idle_timeout_ms = w->cfg.sip.tcp_idle_timeout_s * 1000u,
        .tcp_max_connections = w->cfg.sip.tcp_max_connections,
        .tcp_max_per_ip = w->cfg.sip.tcp_max_per_ip,
        .tcp_message_timeout_ms = w->cfg.sip.tcp_message_timeout_s * 1000u,
        .tcp_first_message_timeout_ms = w->cfg.sip.tcp_first_message_timeout_s * 1000u,
        .ws_ping_interval_ms = w->cfg.sip.ws_ping_interval_s * 1000u,
        .ws_require_origin = w->cfg.sip.ws_require_origin,
    };
    snprintf(tcfg.ws_origins, sizeof(tcfg.ws_origins), "%s", w->cfg.sip.ws_origins);
    sip_parse_limits_default(&tcfg.limits);
    tcfg.limits.max_message_bytes = w->cfg.sip.max_message_bytes;
    struct transport_callbacks tcb = {
        .user = w, .on_message = on_message, .on_conn_lost = on_conn_lost, .now_ms = clock_cb};
    w->transport = transport_new(loop, &w->timers, &tcfg, &tcb);
    if (!w->transport) return -1;
    transport_set_tls(w->transport, w->tls);
    if (start_listeners(w) < 0) return -1;

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
        .on_final_sent = txn_on_final_sent,
    };
    w->txn = txn_layer_new(&w->timers, &xcfg, &ops);
    if (!w->txn) return -1;

    if (w->cfg.api.listen[0]) {
        w->api = api_server_new_tls(loop, w->cfg.api.listen, w->cfg.api.token, w->cfg.api.tls_cert,
                                    w->cfg.api.tls_key, w->events_view ? w->events_view : w->events);
        if (!w->api) return -1;
        api_setup(w);
    }
    if (start_media(w) < 0) return -1;

    if (dispatch_start_roles(w) < 0) return -1;

    uv_timer_init(loop, &w->stop_timer);
    w->stop_timer.data = w;
    uv_signal_init(loop, &w->sigint);
    uv_signal_init(loop, &w->sigterm);
    w->sigint.data = w->sigterm.data = w;
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &w->sighup);
    w->sighup.data = w;
    uv_signal_start(&w->sighup, on_sighup, SIGHUP);
    w->started = true;
    char where[256] = "";
    size_t n = 0;
    bool v6 = strchr(w->local.host, ':') != NULL;
    for (int i = 0; i < SIP_TRANSPORT_COUNT && n < sizeof(where); i++)
        if (w->local.port[i])
            n += (size_t)snprintf(where + n, sizeof(where) - n, " %s %s%s%s:%u", sip_transport_param(i), v6 ? "[" : "",
                                  w->local.host, v6 ? "]" : "", w->local.port[i]);
    log_info("cascade ready: sip%s, domain %s", where, w->cfg.sip.domain);
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
    if (w->sfu) {
        /* participants leave (reason shutdown, on the bus) while the API and
         * the bus still stand; its handles close as the loop drains */
        sfu_free(w->sfu);
        w->sfu = NULL;
    }
    if (w->api) {
        api_server_free(w->api);
        w->api = NULL;
    }
    events_stream_free(w->events_stream); /* its connections would keep the loop running */
    w->events_stream = NULL;
    if (w->transport) {
        transport_free(w->transport);
        w->transport = NULL;
    }
    tls_context_free(w->tls);               /* after the sessions: they hold their own references */
    w->tls = NULL;
    if (w->store) {
        /* Answered registrations are committed before their 200 went out;
         * this drains whatever is still queued, then releases the async handle
         * that would otherwise keep the loop alive. */
        if (w->location) location_flush(w->location); /* write-behind refreshes */
        store_flush_sync(w->store);
        store_close(w->store);
        w->store = NULL;
    }
    close_if_open((uv_handle_t *)&w->sigint);
    close_if_open((uv_handle_t *)&w->sigterm);
    close_if_open((uv_handle_t *)&w->sighup);
    close_if_open((uv_handle_t *)&w->lag_timer);
    uv_timer_stop(&w->timer_handle);
    close_if_open((uv_handle_t *)&w->timer_handle);
    close_if_open((uv_handle_t *)&w->prepare_handle);
    close_if_open((uv_handle_t *)&w->idle_check);
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
    registrar_stop(w->registrar);
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
    events_stream_free(w->events_stream);
    w->events_stream = NULL;
    if (w->events_view) event_bus_free(w->events_view);
    w->events_view = NULL;
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
