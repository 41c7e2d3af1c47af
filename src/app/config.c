/* config.c — struct config's sections and its defaults and loading from the
 * modules' key tables (see config.h). */
#include "app/config.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define SECTION(field, table) {&table, offsetof(struct config, field), 0, 0, 0}

/* ---- [media]: its keys live here, as the media layer's own config is the
 * pointer-carrying struct sfu_config the daemon builds from this one. */

#define MKEY(name, type, f, def, lo, hi, help) \
    {name, type, CONFIG_FIELD(struct media_config, f), def, lo, hi, NULL, 0, help}

static const char *const media_enabled_values[] = {"no", "yes", "auto", NULL};

static const struct config_key media_keys[] = {
    {"enabled", CONFIG_ENUM, CONFIG_FIELD(struct media_config, enabled), "auto", 0, 0, media_enabled_values, 0,
     "rooms, WHIP and WHEP; auto: unless the media port cannot be bound (logged)"},
    MKEY("listen", CONFIG_STRING, listen, "127.0.0.1", 0, 0,
         "IP address of the media port; 0.0.0.0 or '::': every interface, each announced"),
    MKEY("port", CONFIG_UINT, port, "20000", 0, 65535,
         "the one UDP (and ICE-TCP) port every WebRTC peer uses; 0: any free one"),
    MKEY("announce_ip", CONFIG_STRING, announce_ip, "", 0, 0,
         "address in our ICE candidates (behind NAT: the public one); empty: listen's"),
    MKEY("ice_tcp", CONFIG_BOOL, ice_tcp, "yes", 0, 0, "also accept ICE over TCP (RFC 6544) on the same port number"),
    MKEY("consent_timeout_s", CONFIG_UINT, consent_timeout_s, "30", 1, 3600,
         "a peer without a valid ICE check this long is gone (RFC 7675)"),
    MKEY("connect_timeout_s", CONFIG_UINT, connect_timeout_s, "15", 1, 3600,
         "ICE and DTLS must complete this soon after the offer"),
    MKEY("max_peers", CONFIG_UINT, max_peers, "5000", 1, 1000000, "WebRTC peers (publishers and viewers) at once"),
    MKEY("max_rooms", CONFIG_UINT, max_rooms, "1000", 1, 1000000, "rooms at once"),
    MKEY("max_participants_per_room", CONFIG_UINT, max_participants_per_room, "1000", 1, 1000000,
         "participants in one room; joins beyond get 503"),
    MKEY("pli_interval_ms", CONFIG_UINT, pli_interval_ms, "1000", 10, 60000,
         "at most one key frame request (PLI) per publisher stream this often"),
    MKEY("remb_bps", CONFIG_UINT, remb_bps, "2500000", 10000, 1000000000,
         "bits/s publishers are asked to stay within (REMB)"),
    MKEY("token_secret", CONFIG_STRING, token_secret, "", 0, 0,
         "signs room join tokens (HMAC-SHA256); the same on every node that must accept them; empty: a random one "
         "per start (tokens die with the process)"),
    MKEY("idle_stop", CONFIG_UINT, idle_stop_s, "10", 0, 3600,
         "a GB live stream nobody watches is stopped (BYE) this many seconds after its last viewer left"),
    MKEY("flv_max_lag_ms", CONFIG_UINT, flv_max_lag_ms, "5000", 0, 600000,
         "a live HTTP-FLV viewer this far behind the newest frame (or half its stream's 4 MiB buffer) skips to "
         "the newest key frame; 0: only the buffer limit"),
};

static bool is_ip(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static int media_check(const void *section, char *err, size_t errcap)
{
    const struct media_config *m = section;
    if (!is_ip(m->listen)) {
        snprintf(err, errcap, "[media] listen: '%s' is not an IP address (127.0.0.1, 0.0.0.0, ::1, ::)", m->listen);
        return -1;
    }
    if (m->announce_ip[0] && !is_ip(m->announce_ip)) {
        snprintf(err, errcap, "[media] announce_ip: '%s' is not an IP address", m->announce_ip);
        return -1;
    }
    if (m->max_participants_per_room > m->max_peers) {
        snprintf(err, errcap, "[media] max_participants_per_room > max_peers (a room could never fill)");
        return -1;
    }
    return 0;
}

const struct config_section media_config_section = {
    .name = "media",
    .help = "The WebRTC SFU: rooms, WHIP (publish) and WHEP (view) on the API, media on one UDP/TCP port.",
    .keys = media_keys,
    .nkeys = sizeof(media_keys) / sizeof(media_keys[0]),
    .check = media_check,
};

static const struct config_binding bindings[] = {
    SECTION(sip, sip_config_section),
    SECTION(tls, tls_config_section),
    SECTION(registrar, registrar_config_section),
    SECTION(auth, auth_config_section),
    SECTION(proxy, proxy_config_section),
    SECTION(store, store_config_section),
    SECTION(redis, redis_config_section),
    SECTION(api, api_config_section),
    SECTION(events, events_config_section),
    SECTION(log, log_config_section),
    SECTION(gb, gb_config_section),
    SECTION(overload, overload_config_section),
    SECTION(media, media_config_section),
    SECTION(subs, subs_config_section),
    SECTION(messages, offline_msg_config_section),
    {&upstream_config_section, offsetof(struct config, upstreams), sizeof(struct config_upstream), CONFIG_MAX_UPSTREAMS,
     offsetof(struct config, upstream_count)},
};

/* ---- [store] backend = redis: the sharing switches in [redis] */

/* A [redis] sharing switch's key in the table (a CONFIG_BOOL), or NULL. */
static const struct config_key *sharing_key(const char *name)
{
    const struct config_section *r = &redis_config_section;
    for (size_t i = 0; i < r->nkeys; i++)
        if (!strcmp(r->keys[i].name, name) && r->keys[i].type == CONFIG_BOOL) return &r->keys[i];
    return NULL;
}

/* Whether the node has anything for the switch key to share. */
static bool sharing_wanted(const struct config *cfg, const char *key)
{
    if (!strcmp(key, "mirror_gb_devices") || !strcmp(key, "mirror_gb_admin")) return cfg->gb.enabled;
    if (!strcmp(key, "mirror_presence") || !strcmp(key, "mirror_mwi") || !strcmp(key, "mirror_presence_allow"))
        return cfg->subs.enabled;
    return true;
}

static int config_resolve(void *agg, const struct config_given *given, char *err, size_t errcap)
{
    struct config *cfg = agg;
    if (cfg->store.backend != STORE_BACKEND_REDIS) return 0;
    if (!cfg->redis.nodes[0]) {
        snprintf(err, errcap, "[store] backend = redis needs [redis] nodes (the Redis Cluster's seed nodes, "
                              "host:port,...)");
        return -1;
    }
    for (const char *const *key = redis_config_section.derived; *key; key++) {
        const struct config_key *k = sharing_key(*key);
        if (k && !config_given_has(&config_schema, given, "redis", *key)) /* else: the operator's value */
            *(bool *)((char *)&cfg->redis + k->offset) = sharing_wanted(cfg, *key);
    }
    return 0;
}

void config_sharing_describe(const struct config *cfg, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "[store] backend = %s;",
                                  cfg->store.backend == STORE_BACKEND_REDIS ? "redis" : "sqlite");
    for (const char *const *key = redis_config_section.derived; *key && len < cap; key++) {
        const struct config_key *k = sharing_key(*key);
        bool on = k && *(const bool *)((const char *)&cfg->redis + k->offset);
        len += (size_t)snprintf(out + len, cap - len, " %s %s%s", *key, on ? "on" : "off",
                                config_given_has(&config_schema, &cfg->given, "redis", *key) ? " (set)" : "");
    }
}

const struct config_schema config_schema = {
    .title = "cascade configuration: every key with its default. Every key is optional: without a file "
             "cascade serves UDP and TCP on 127.0.0.1:5060, keeps its database in ./cascade.db and its "
             "HTTP API on 127.0.0.1:8080 with rooms (WHIP, WHEP) whose media use 127.0.0.1:20000. "
             "Generated by `cascade --help-config=ini` from the key tables "
             "(scripts/config-example.sh): edit those, not this file.",
    .bindings = bindings,
    .n = sizeof(bindings) / sizeof(bindings[0]),
    .given_offset = offsetof(struct config, given),
    .given_size = sizeof(struct config_given),
    .resolve = config_resolve,
};

void config_init(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    config_schema_defaults(&config_schema, cfg);
}

int config_load(struct config *cfg, const char *path, char *err, size_t errcap)
{
    return config_schema_load(&config_schema, cfg, path, err, errcap);
}

int config_parse_listen(struct config *cfg, const char *value)
{
    return config_parse_listens(cfg->sip.listen, &cfg->sip.listen_count, CONFIG_MAX_LISTEN, value);
}

int config_parse_trusted(struct config *cfg, const char *value)
{
    return config_parse_cidrs(cfg->proxy.trusted, &cfg->proxy.trusted_count, CONFIG_MAX_TRUSTED, value);
}
