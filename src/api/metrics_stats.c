/* metrics_stats.c — every number of GET /api/v1/stats in GET /metrics.
 *
 * At scrape time the stats object is built (the same providers as the
 * route) and walked: a number at path "transactions.created" becomes the
 * family cascade_transactions_created_total (a counter) or
 * cascade_transactions_server_live (a gauge); true/false become gauges of 1
 * and 0. The table below says which members are counters and which gauges,
 * and which are objects of numbers keyed by a name (those become one family
 * with a label). A member missing from the table is still written, as an
 * "untyped" family, so nothing in /stats is ever left out; the peer test
 * fails on any untyped family, so the table keeps up with the modules.
 *
 * A family whose name a module already registered by hand is skipped (the
 * hand-written one carries the same value), and so are members the table
 * marks as covered elsewhere. */
#include <stdio.h>
#include <string.h>

#include "api/http_internal.h"
#include "base/sbuf.h"

enum stats_kind {
    STATS_COUNTER,
    STATS_GAUGE,
    STATS_LABELLED_COUNTER, /* an object {"key": n, ...}: one family, label = the key */
    STATS_LABELLED_GAUGE,
    STATS_SKIP,             /* written by another metric (named in the comment) or not a number */
};

struct stats_member {
    const char *path;
    enum stats_kind kind;
    const char *label; /* labelled kinds */
};

#define C(p) {p, STATS_COUNTER, NULL}
#define G(p) {p, STATS_GAUGE, NULL}
/* The members of struct hash_mirror_stats (redis/hash_mirror.h) under object o. */
#define HASH_MIRROR(o)                                                                                      \
    G(o ".subscribed"), C(o ".loads"), C(o ".load_failures"), C(o ".announcements"), C(o ".applied"),      \
        C(o ".rejected"), C(o ".writes_ok"), C(o ".writes_failed")

static const struct stats_member members[] = {
    /* cascade_sip_requests_in_total{method}, cascade_sip_responses_out_total{code} */
    {"messages_in", STATS_SKIP, NULL},
    {"responses_out", STATS_SKIP, NULL},
    G("transactions.server_live"), G("transactions.client_live"), C("transactions.created"),
    C("transactions.retransmissions_absorbed"), C("transactions.timeouts"), C("transactions.transport_errors"),
    G("transactions.server_completed"), G("transactions.server_max"), C("transactions.refused_over_cap"),
    C("transactions.stateless_finals"), C("transactions.stateless_acks_absorbed"),
    C("transactions.retransmissions_sent"),
    C("transport.messages_in"), C("transport.messages_out"), C("transport.parse_errors"), C("transport.dropped"),
    G("transport.tcp_open"), C("transport.tcp_refused"), C("transport.tcp_timed_out"),
    G("transport.tcp_max_connections"), {"transport.connections", STATS_LABELLED_GAUGE, "transport"},
    C("transport.tls_handshakes"), C("transport.tls_failed"), C("transport.ws_upgrades"), C("transport.ws_refused"),
    C("bad_requests"),
    G("overload.enabled"), G("overload.loop_overloaded"), C("overload.admitted"), C("overload.refused"),
    C("overload.refused_loop"), C("overload.refused_server_transactions"), C("overload.refused_store_backlog"),
    C("overload.refused_rate"), C("overload.loop_episodes"), G("overload.loop_lag_ms"),
    G("overload.loop_lag_max_ms"), G("overload.loop_busy_pct"), G("overload.rx_queue_pct"),
    G("overload.server_transactions"), G("overload.store_backlog"),
    G("bindings"),
    {"store.backend", STATS_SKIP, NULL}, /* [store] backend: sqlite or redis */
    C("registrar.registers"), C("registrar.ok"), C("registrar.challenged"), C("registrar.auth_failed"),
    C("registrar.forbidden"), C("registrar.refused"), C("registrar.locked_out"), G("registrar.bindings"),
    G("registrar.aors"), C("registrar.nat_pings_sent"), C("registrar.nat_pings_answered"),
    G("registrar.nat_bindings"), C("registrar.nat_unreachable_removed"),
    C("proxy.requests"), C("proxy.forwarded"), C("proxy.redirected"), C("proxy.not_found"), C("proxy.unavailable"),
    C("proxy.loops"), C("proxy.too_many_hops"), C("proxy.refused"), C("proxy.challenged"), C("proxy.auth_failed"),
    C("proxy.cancels"), C("proxy.timer_c"), C("proxy.acks_forwarded"), C("proxy.stray_forwarded"),
    C("proxy.dns_lookups"), C("proxy.dns_failures"), C("proxy.non_invite_timeouts"), C("proxy.pike_refused"),
    C("proxy.cluster_lookups"), C("proxy.cluster_forwarded"), C("proxy.cluster_fallbacks"), C("proxy.from_peers"),
    C("proxy.edge_registers"), C("proxy.edge_outbound"), C("proxy.path_routed"), C("proxy.flow_failed"), C("proxy.flow_failed_removed"),
    /* [redis] mirror_bindings and cluster_route: present when enabled */
    {"redis_mirror.node_id", STATS_SKIP, NULL}, C("redis_mirror.writes_ok"), C("redis_mirror.writes_failed"),
    C("redis_mirror.writes_dropped"), C("redis_mirror.resyncs"), G("redis_mirror.pending"),
    C("redis_mirror.durable_ok"), C("redis_mirror.durable_failed"), C("redis_mirror.durable_retries"),
    /* [redis] mirror_users, mirror_mwi, mirror_gb_admin, mirror_presence_allow:
     * the engine's members (HASH_MIRROR) and the table's own */
    HASH_MIRROR("redis_users"), G("redis_users.users"),
    HASH_MIRROR("redis_mwi"), G("redis_mwi.summaries"), C("redis_mwi.older"), C("redis_mwi.not_shared"),
    HASH_MIRROR("redis_gb_admin"),
    HASH_MIRROR("redis_presence_allow"), G("redis_presence_allow.lists"),
    /* [redis] mirror_presence */
    G("redis_presence.subscribed"), G("redis_presence.followed"), G("redis_presence.remote"),
    C("redis_presence.announcements"), C("redis_presence.fetches"), C("redis_presence.fetch_failures"),
    C("redis_presence.rejected"), C("redis_presence.writes_ok"), C("redis_presence.writes_failed"),
    C("redis_presence.lookup_failures"), C("redis_presence.takes"), C("redis_presence.taken"),
    C("redis_presence.take_failures"), C("redis_presence.given_up"),
    C("redis_presence.subs_nodes_walked"), C("redis_presence.subs_adopted"), C("redis_presence.subs_dropped"),
    C("redis_presence.subs_takeover_failures"), C("redis_presence.subs_refused_cap"),
    C("redis_presence.subs_reclaimed"), C("redis_presence.subs_let_go"), C("redis_presence.subs_self_reaped"),
    /* the reg package across nodes (subs/reg_nodes.h) */
    G("redis_reg.followed"), G("redis_reg.contacts"), C("redis_reg.reads"), C("redis_reg.read_failures"),
    C("redis_reg.refused"), C("redis_reg.coalesced"), C("redis_reg.queued"), C("redis_reg.changes"), C("redis_reg.rejected"),
    C("redis_reg.over_cap"),
    /* the dialog package across nodes (subs/dialog_mirror.h) */
    G("redis_dialog.subscribed"), G("redis_dialog.followed"), G("redis_dialog.watched_elsewhere"),
    G("redis_dialog.remote"), C("redis_dialog.writes"), C("redis_dialog.write_failures"),
    C("redis_dialog.announcements"), C("redis_dialog.messages"), C("redis_dialog.bad_messages"),
    C("redis_dialog.reads"), C("redis_dialog.read_failures"), C("redis_dialog.coalesced"), C("redis_dialog.queued"),
    C("redis_dialog.changes"), C("redis_dialog.rejected"), C("redis_dialog.over_cap"),
    /* [redis] events_stream */
    {"events_stream.node_id", STATS_SKIP, NULL}, G("events_stream.synced"), G("events_stream.last_seq"),
    C("events_stream.written"), C("events_stream.write_failed"), C("events_stream.write_dropped"), C("events_stream.written_elsewhere"),
    G("events_stream.write_pending"), C("events_stream.read"), C("events_stream.skipped"), C("events_stream.gaps"),
    C("events_stream.read_errors"), G("events_stream.webhook_group"), C("events_stream.webhook_taken"), C("events_stream.webhook_claimed"),
    C("events_stream.webhook_acked"), C("events_stream.webhook_renewed"), C("events_stream.webhook_released"),
    C("events_stream.webhook_skipped"), C("events_stream.webhook_errors"), G("events_stream.webhook_held"),
    {"cluster.node_id", STATS_SKIP, NULL}, {"cluster.advertise", STATS_SKIP, NULL}, G("cluster.cache"),
    C("cluster.lookups"), C("cluster.cache_hits"), C("cluster.found"), C("cluster.failed"), C("cluster.refused"),
    C("cluster.heartbeats"), C("cluster.heartbeat_failures"), C("cluster.invalidations"), G("cluster.pending"),
    G("cluster.nodes_live"), G("cluster.peers_stream_differs"), {"cluster.peers", STATS_SKIP, NULL}, C("cluster.nodes_reaped"),
    C("cluster.bindings_reaped"), C("cluster.node_lost_offline"), C("cluster.self_reaped"),
    C("cluster.gb_devices_reaped"), C("cluster.gb_devices_kept"), C("cluster.reap_events_streamed"), C("cluster.reap_events_cancelled"),
    G("proxy.calls_live"),
    G("offline_messages.queued"), C("offline_messages.stored"), C("offline_messages.refused"),
    C("offline_messages.delivered"), C("offline_messages.expired"), C("offline_messages.delivery_failures"),
    G("subscriptions.active"), C("subscriptions.accepted"), C("subscriptions.refused"), C("subscriptions.notifies"),
    C("subscriptions.ended_by_peer"), C("subscriptions.ended_rejected"), G("subscriptions.dialogs_tracked"),
    G("subscriptions.summaries_held"),
    G("gb_upper.devices"), G("gb_upper.online"), G("gb_upper.streams"), G("gb_upper.pending_queries"),
    C("gb_upper.registers"), C("gb_upper.keepalives"), C("gb_upper.messages"), C("gb_upper.refused"),
    G("gb_upper.catalog_queued"), G("gb_upper.catalog_in_flight"), C("gb_upper.catalog_started"),
    C("gb_upper.catalog_paused"), C("gb_upper.flv_skips"), C("gb_upper.flv_dropped"), C("gb_upper.remote_plays"), C("gb_upper.remote_play_failures"),
    C("gb_upper.remote_streams_node_lost"),
    C("gb_upper.peer_relays"), C("gb_upper.peer_refused"), C("gb_upper.node_queries"),
    C("gb_upper.node_query_failures"), G("gb_upper.node_queries_pending"), C("gb_upper.peer_queries"),
    {"cluster.api", STATS_SKIP, NULL},
    {"redis_gb_devices.node_id", STATS_SKIP, NULL}, G("redis_gb_devices.pending"), C("redis_gb_devices.writes_ok"),
    C("redis_gb_devices.writes_failed"),
    C("redis_gb_devices.writes_dropped"), C("redis_gb_devices.lookups"), C("redis_gb_devices.lookups_found"),
    C("redis_gb_devices.lookups_failed"), C("redis_gb_devices.lookups_refused"),
    G("redis_gb_devices.lookups_pending"),
    G("gb_lower.upstreams"), G("gb_lower.registered"), G("gb_lower.streams"), G("gb_lower.relays"),
    G("gb_lower.channels"), C("gb_lower.registers_sent"), C("gb_lower.register_failures"),
    C("gb_lower.keepalives_sent"), C("gb_lower.keepalives_ok"), C("gb_lower.keepalives_missed"),
    C("gb_lower.queries"), C("gb_lower.notifies_sent"), C("gb_lower.invites"), C("gb_lower.controls"),
    G("media.rooms"), G("media.participants"), G("media.publishers"), G("media.viewers"), C("media.rtp_forwarded"),
    C("media.rtp_dropped"), C("media.nacks_answered"), C("media.nacks_forwarded"), C("media.plis_sent"),
    G("media.rtc.peers"), G("media.rtc.peers_connected"), C("media.rtc.stun_ok"), C("media.rtc.stun_refused"),
    C("media.rtc.dtls_handshakes"), C("media.rtc.dtls_failed"), C("media.rtc.srtp_gcm"), C("media.rtc.srtp_cm"),
    C("media.rtc.dropped_unknown_source"),
    C("media.rtc.dropped_before_dtls"), C("media.rtc.dropped_garbage"), C("media.rtc.srtp_errors"),
    G("media.rtc.tcp_connections"),
    /* cascade_media_forward_delay_seconds (a histogram) */
    {"media.forward_delay_us", STATS_SKIP, NULL},
    C("event_tickets.issued"), C("event_tickets.redeemed"), C("event_tickets.refused"), C("event_tickets.evicted"),
    G("event_tickets.outstanding"),
    C("events"),
    C("api.requests"), G("api.ws_clients"), C("api.stream_sends"), C("api.stream_bytes"),
    C("api.stream_socket_full"),
};

#undef HASH_MIRROR
#undef C
#undef G

static const struct stats_member *member_for(const char *path)
{
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++)
        if (!strcmp(members[i].path, path)) return &members[i];
    return NULL;
}

static bool family_registered(const struct api_server *srv, const char *name)
{
    for (int i = 0; i < srv->nfamilies; i++)
        if (!strcmp(srv->families[i].name, name)) return true;
    return false;
}

/* A label value or JSON key as Prometheus takes it (text format escapes). */
static void put_escaped(sbuf_t *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\') sbuf_append_cstr(out, "\\\\");
        else if (*s == '"') sbuf_append_cstr(out, "\\\"");
        else if (*s == '\n') sbuf_append_cstr(out, "\\n");
        else sbuf_append_char(out, *s);
    }
}

static bool is_number(const json_t *v) { return json_is_number(v) || json_is_boolean(v); }

static double number_of(const json_t *v)
{
    if (json_is_boolean(v)) return json_is_true(v) ? 1 : 0;
    return json_number_value(v);
}

static void put_number(sbuf_t *out, double v)
{
    if (v == (double)(long long)v) sbuf_printf(out, "%lld", (long long)v);
    else sbuf_printf(out, "%.17g", v);
}

/* The family name of path: "cascade_" + path with '.' as '_' (+ "_total"
 * for counters). Characters a metric name cannot hold become '_'. */
static void family_name(char *name, size_t cap, const char *path, bool counter)
{
    size_t n = (size_t)snprintf(name, cap, "cascade_%s%s", path, counter ? "_total" : "");
    if (n >= cap) n = cap - 1;
    for (size_t i = 8; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) name[i] = '_';
    }
}

static void write_family(struct api_server *srv, sbuf_t *out, const char *path, const json_t *v,
                         const struct stats_member *m)
{
    bool labelled = m && (m->kind == STATS_LABELLED_COUNTER || m->kind == STATS_LABELLED_GAUGE);
    bool counter = m && (m->kind == STATS_COUNTER || m->kind == STATS_LABELLED_COUNTER);
    if (labelled ? !json_is_object(v) : !is_number(v)) return;
    char name[192];
    family_name(name, sizeof(name), path, counter);
    if (family_registered(srv, name)) return;
    sbuf_printf(out, "# HELP %s GET /api/v1/stats member %s\n", name, path);
    sbuf_printf(out, "# TYPE %s %s\n", name, !m ? "untyped" : counter ? "counter" : "gauge");
    if (!labelled) {
        sbuf_printf(out, "%s ", name);
        put_number(out, number_of(v));
        sbuf_append_char(out, '\n');
        return;
    }
    const char *key;
    json_t *child;
    json_object_foreach((json_t *)v, key, child) {
        if (!is_number(child)) continue;
        sbuf_printf(out, "%s{%s=\"", name, m->label);
        put_escaped(out, key);
        sbuf_append_cstr(out, "\"} ");
        put_number(out, number_of(child));
        sbuf_append_char(out, '\n');
    }
}

static void walk(struct api_server *srv, sbuf_t *out, const char *prefix, const json_t *o)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        char path[160];
        if ((size_t)snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", key) >= sizeof(path))
            continue;
        const struct stats_member *m = member_for(path);
        if (m && m->kind == STATS_SKIP) continue;
        if (json_is_object(v) && !(m && (m->kind == STATS_LABELLED_COUNTER || m->kind == STATS_LABELLED_GAUGE)))
            walk(srv, out, path, v);
        else
            write_family(srv, out, path, v, m);
    }
}

void api_metrics_from_stats(struct api_server *srv, sbuf_t *out)
{
    json_t *stats = api_stats_object(srv);
    if (!stats) {
        out->failed = true;
        return;
    }
    walk(srv, out, "", stats);
    json_decref(stats);
}
