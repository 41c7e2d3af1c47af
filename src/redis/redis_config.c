/* redis_config.c — the keys of [redis] (struct redis_config, base/config.h). */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct redis_config, f), def, lo, hi, NULL, 0, help}

static const struct config_key keys[] = {
    KEY("mirror_bindings", CONFIG_BOOL, mirror_bindings, "no", 0, 0,
        "write registrations behind into the Redis Cluster (SQLite stays the source of truth)"
        "; on with [store] backend = redis unless set here"),
    KEY("nodes", CONFIG_STRING, nodes, "", 0, 0,
        "cluster seed nodes, numeric host:port, comma-separated (at most 16), e.g. 127.0.0.1:7000,127.0.0.1:7001"),
    KEY("node_id", CONFIG_STRING, node_id, "", 0, 0, "this node's name in the mirrored records; empty: the host name"),
    KEY("key_prefix", CONFIG_STRING, key_prefix, "cascade:", 0, 0, "put before every key (cascade:loc:{aor})"),
    KEY("timeout_ms", CONFIG_UINT, timeout_ms, "2000", 50, 60000, "a Redis command not answered this soon fails"),
    KEY("max_pending", CONFIG_UINT, max_pending, "10000", 1, 1000000,
        "mirror writes waiting for Redis at once; more are dropped, counted and logged"),
    KEY("cluster_route", CONFIG_BOOL, cluster_route, "no", 0, 0,
        "route a request for a user with no binding here to the node holding the user's binding (needs mirror_bindings)"
        "; reg and dialog watchers then see every node's registrations and calls"
        "; on with [store] backend = redis unless set here"),
    KEY("advertise", CONFIG_STRING, advertise, "", 0, 0,
        "this node's SIP URI as the other nodes reach it, numeric host, e.g. sip:10.0.0.1:5060; empty: the first UDP "
        "(else TCP) listener's address"),
    KEY("heartbeat_ms", CONFIG_UINT, heartbeat_ms, "1000", 100, 60000,
        "how often this node refreshes its entry in the node registry; a node silent for 3 heartbeats is gone"),
    KEY("lookup_cache_ms", CONFIG_UINT, lookup_cache_ms, "10000", 0, 600000,
        "how long the answer of a remote binding lookup may be reused without asking Redis (dropped sooner when "
        "the user's bindings change; no cache while the change channel is down); 0: always ask"),
    KEY("lookup_max_pending", CONFIG_UINT, lookup_max_pending, "1000", 1, 100000,
        "requests waiting at once for a remote lookup; more get the local answer (480/404), logged"),
    KEY("mirror_gb_devices", CONFIG_BOOL, mirror_gb_devices, "no", 0, 0,
        "write GB devices' state (node, transport, address, online, last keepalive) behind into the cluster; with "
        "cluster_route, a play request for a device registered on another node goes through that node"
        "; on with [store] backend = redis (and [gb] enabled) unless set here"),
    KEY("gb_keepalive_write_s", CONFIG_UINT, gb_keepalive_write_s, "60", 1, 3600,
        "a GB device's keepalives are written to Redis at most once per this many seconds (its key's TTL covers "
        "the gap)"),
    KEY("durable_writes", CONFIG_BOOL, durable_writes, "no", 0, 0,
        "hold a REGISTER's 200 until its bindings are written in Redis and acknowledged by durable_replicas "
        "replicas (WAIT), so that a master failover cannot lose an answered registration (needs mirror_bindings)"),
    KEY("durable_replicas", CONFIG_UINT, durable_replicas, "1", 1, 16,
        "replicas of the slot's master that must acknowledge a registration before its 200"),
    KEY("durable_timeout_ms", CONFIG_UINT, durable_timeout_ms, "5000", 100, 30000,
        "a registration not replicated this soon is answered 500 with Retry-After (set it above the cluster's "
        "failover time, cluster-node-timeout plus about a second, and under the client's 32 s transaction timeout)"),
    KEY("events_stream", CONFIG_BOOL, events_stream, "no", 0, 0,
        "write every event into one stream in the cluster and serve the API's events (and the webhook, once per "
        "event across the nodes) from it, with a seq common to all nodes"
        "; on with [store] backend = redis unless set here"),
    KEY("events_maxlen", CONFIG_UINT, events_maxlen, "100000", 100, 100000000,
        "the event stream's length cap (XADD MAXLEN ~): older entries are trimmed"),
    KEY("events_poll_ms", CONFIG_UINT, events_poll_ms, "50", 10, 10000,
        "how often a node reads the event stream (and the webhook group) when it has caught up"),
    KEY("events_max_pending", CONFIG_UINT, events_max_pending, "10000", 1, 1000000,
        "events waiting to be written into the stream at once; more are dropped, counted and logged"),
    KEY("events_claim_idle_ms", CONFIG_UINT, events_claim_idle_ms, "15000", 500, 3600000,
        "a webhook entry a node took and did not acknowledge, nor renew, for this long is taken over by another "
        "node (a node renews what it holds every quarter of it)"),
    KEY("events_webhook_batch", CONFIG_UINT, events_webhook_batch, "32", 1, 56,
        "webhook entries one node takes from the group and holds at once"),
    KEY("api_advertise", CONFIG_STRING, api_advertise, "", 0, 0,
        "this node's HTTP API as the other nodes reach it, numeric ip:port or [v6]:port, with https:// before it "
        "when the API serves TLS, for GB queries forwarded to the node a device is registered to; empty: the [api] "
        "listen address when it names one, else this node's SIP host with the API's port (https:// with [api] "
        "tls_cert)"),
    KEY("api_tls_name", CONFIG_STRING, api_tls_name, "", 0, 0,
        "the name (DNS name or address) the other nodes' API certificates must carry when this node forwards to "
        "an https:// API (checked with [tls] ca); empty: the address the node advertises, which its certificate "
        "must then carry as an IP address"),
    KEY("api_forward_timeout_ms", CONFIG_UINT, api_forward_timeout_ms, "15000", 500, 120000,
        "a GB API request (catalog, info, status, records, PTZ ...) forwarded to the device's node must be answered "
        "this soon, else 504; keep it above the 10 s a node waits for a device's answer"),
    KEY("api_forward_max_pending", CONFIG_UINT, api_forward_max_pending, "64", 1, 10000,
        "GB API requests forwarded to other nodes (or looking up the device's node) at once; more get 429"),
    KEY("mirror_users", CONFIG_BOOL, mirror_users, "no", 0, 0,
        "share the SIP users (name, realm, digest HA1s) through the cluster: a user added, changed or deleted "
        "through any node's API is known to every node's digest checks (each node keeps its own copy, loaded at "
        "start and kept by change announcements: no Redis round trip on REGISTER or INVITE)"
        "; on with [store] backend = redis unless set here"),
    KEY("users_max", CONFIG_UINT, users_max, "100000", 1, 10000000,
        "users a node loads from the cluster at most (with mirror_users); more are skipped, counted and logged"),
    KEY("mirror_gb_admin", CONFIG_BOOL, mirror_gb_admin, "no", 0, 0,
        "share GB devices' administrative records (what POST, PATCH and DELETE /gb/devices change: password, "
        "charset, auth, allow, own subscribe list) through the cluster: a device provisioned, changed or deleted "
        "through any node's API is known to every node's REGISTER checks (each node keeps its own table, loaded at "
        "start and kept by change announcements: no Redis round trip on REGISTER)"
        "; on with [store] backend = redis (and [gb] enabled) unless set here"),
    KEY("gb_admin_max", CONFIG_UINT, gb_admin_max, "1000000", 1, 10000000,
        "GB device records a node loads from the cluster at most (with mirror_gb_admin); more are skipped, counted "
        "and logged"),
    KEY("mirror_presence", CONFIG_BOOL, mirror_presence, "no", 0, 0,
        "share presence publications (PUBLISH, RFC 3903) through the cluster: a document published on any node "
        "reaches the presence watchers of every node (each node notifies its own; a node follows the other nodes' "
        "publications only of the users watched on it; a refresh, modify or removal may reach any node, which "
        "takes the publication over); with cluster_route, a user registered on another node "
        "is open to this node's watchers too"
        "; on with [store] backend = redis (and [subscriptions] enabled) unless set here"),
    KEY("presence_max", CONFIG_UINT, presence_max, "10000", 1, 1000000,
        "other nodes' presence publications a node holds at most (with mirror_presence; each at most 16 KiB, "
        "and at most [subscriptions] presence_max_publications_per_user per user); more are skipped, counted and "
        "logged"),
    KEY("mirror_mwi", CONFIG_BOOL, mirror_mwi, "no", 0, 0,
        "share message-summary (RFC 3842) through the cluster: the latest summary per user a voicemail source "
        "sent to any node reaches the message-summary watchers of every node (each node keeps its own copy, at "
        "most [subscriptions] max_total users, and notifies its own watchers once per change; a summary stamped "
        "before the one held is not applied); a node serves the package with no voicemail_source of its own"
        "; on with [store] backend = redis (and [subscriptions] enabled) unless set here"),
    KEY("mirror_presence_allow", CONFIG_BOOL, mirror_presence_allow, "no", 0, 0,
        "share the presence allow lists (what PUT /users/{name}/presence/allow sets) through the cluster: a list "
        "set through any node's API decides the presence SUBSCRIBEs of every node (each node keeps its own copy, "
        "loaded at start and kept by change announcements: no Redis round trip on SUBSCRIBE; subscriptions "
        "accepted already stay, as with a local change)"
        "; on with [store] backend = redis (and [subscriptions] enabled) unless set here"),
    KEY("presence_allow_max", CONFIG_UINT, presence_allow_max, "100000", 1, 10000000,
        "allow lists a node loads from the cluster at most (with mirror_presence_allow); more are skipped, counted "
        "and logged"),
};

/* ["https://"] "a.b.c.d:port" or "[v6]:port", numeric (cluster_peer_api reads it the same way). */
static bool api_hostport_ok(const char *s)
{
    if (!strncmp(s, "https://", 8)) s += 8;
    const char *colon = strrchr(s, ':');
    size_t pl = colon ? strlen(colon + 1) : 0;
    if (!colon || colon == s || !pl || pl > 5 || strspn(colon + 1, "0123456789") != pl) return false;
    long port = strtol(colon + 1, NULL, 10);
    char host[64];
    size_t hl = (size_t)(colon - s);
    bool v6 = hl >= 2 && s[0] == '[' && s[hl - 1] == ']';
    if (v6) s++, hl -= 2;
    if (!hl || hl >= sizeof(host) || port < 1 || port > 65535) return false;
    memcpy(host, s, hl);
    host[hl] = '\0';
    unsigned char buf[16];
    return inet_pton(v6 ? AF_INET6 : AF_INET, host, buf) == 1;
}

static int redis_check(const void *section, char *err, size_t errcap)
{
    const struct redis_config *r = section;
    if (r->api_advertise[0] && !api_hostport_ok(r->api_advertise)) {
        snprintf(err, errcap, "[redis] api_advertise: '%s' is not a numeric ip:port or [v6]:port (https:// before "
                              "it for TLS)", r->api_advertise);
        return -1;
    }
    if (r->mirror_bindings && !r->nodes[0]) {
        snprintf(err, errcap, "[redis] mirror_bindings = yes needs nodes");
        return -1;
    }
    if (r->mirror_gb_devices && !r->nodes[0]) {
        snprintf(err, errcap, "[redis] mirror_gb_devices = yes needs nodes");
        return -1;
    }
    if (r->cluster_route && !r->mirror_bindings) {
        snprintf(err, errcap, "[redis] cluster_route = yes needs mirror_bindings = yes (peers find users by the mirror)");
        return -1;
    }
    if (r->durable_writes && !r->mirror_bindings) {
        snprintf(err, errcap, "[redis] durable_writes = yes needs mirror_bindings = yes");
        return -1;
    }
    if (r->mirror_users && !r->nodes[0]) {
        snprintf(err, errcap, "[redis] mirror_users = yes needs nodes");
        return -1;
    }
    if (r->mirror_gb_admin && !r->nodes[0]) {
        snprintf(err, errcap, "[redis] mirror_gb_admin = yes needs nodes");
        return -1;
    }
    if (r->mirror_presence && !r->nodes[0]) {
        snprintf(err, errcap, "[redis] mirror_presence = yes needs nodes");
        return -1;
    }
    if (r->mirror_mwi && !r->nodes[0]) {
        snprintf(err, errcap, "[redis] mirror_mwi = yes needs nodes");
        return -1;
    }
    if (r->mirror_presence_allow && !r->nodes[0]) {
        snprintf(err, errcap, "[redis] mirror_presence_allow = yes needs nodes");
        return -1;
    }
    if (r->events_stream && !r->nodes[0]) {
        snprintf(err, errcap, "[redis] events_stream = yes needs nodes");
        return -1;
    }
    return 0;
}

/* [store] backend = redis turns these on when the file leaves them out (app/config.c). */
static const char *const derived[] = {"mirror_bindings", "cluster_route",     "mirror_users",
                                      "events_stream",   "mirror_gb_devices", "mirror_presence",
                                      "mirror_gb_admin", "mirror_mwi",        "mirror_presence_allow",
                                      NULL};

const struct config_section redis_config_section = {
    .name = "redis",
    .help = "Redis Cluster: bindings and GB devices mirrored write-behind for other nodes to read, events in one "
            "stream (issue 16).",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
    .check = redis_check,
    .derived = derived,
};
