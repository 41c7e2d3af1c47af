/* config.c — defaults and INI loading (see config.h). */
#include "base/config.h"

#include <arpa/inet.h>

#include <ini.h>

#include "base/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

void config_init(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    config_parse_listen(cfg, "udp:127.0.0.1:5060, tcp:127.0.0.1:5060");
    COPY(cfg->sip.domain, "127.0.0.1");
    cfg->sip.t1_ms = 500;
    cfg->sip.t2_ms = 4000;
    cfg->sip.t4_ms = 5000;
    cfg->sip.max_message_bytes = 65536;
    cfg->sip.tcp_idle_timeout_s = 3600;
    cfg->sip.tcp_max_connections = 10000;
    cfg->sip.tcp_max_per_ip = 256;
    cfg->sip.tcp_message_timeout_s = 10;
    cfg->sip.tcp_first_message_timeout_s = 30;
    COPY(cfg->sip.user_agent, "cascade");
    cfg->sip.max_server_transactions = 100000;
    cfg->registrar.min_expires = 60;
    cfg->registrar.max_expires = 7200;
    cfg->registrar.default_expires = 3600;
    COPY(cfg->auth.realm, "");
    cfg->auth.require_auth = true;
    cfg->auth.match_user = true;
    COPY(cfg->auth.algorithm, "MD5");
    cfg->auth.nonce_ttl_s = 300;
    cfg->auth.nonce_ttl_noqop_s = 30;
    cfg->auth.nonce_max_uses = 100;
    cfg->auth.max_failures = 10;
    cfg->auth.max_failures_user = 50;
    cfg->auth.failure_window_s = 60;
    cfg->auth.lockout_s = 60;
    COPY(cfg->proxy.mode, "proxy");
    cfg->registrar.nat_ping_interval_s = 30;
    cfg->registrar.nat_ping_max_lost = 3;
    cfg->proxy.allow_foreign = false;
    cfg->proxy.authenticate = true;
    cfg->proxy.invite_timeout_s = 180;
    cfg->registrar.max_contacts = 10;
    cfg->proxy.non_invite_timeout_ms = 0;
    cfg->proxy.pike_limit = 30;
    cfg->proxy.pike_window_s = 2;
    COPY(cfg->store.path, "./cascade.db");
    COPY(cfg->api.listen, "127.0.0.1:8080");
    cfg->events.ring_size = 4096;
    COPY(cfg->log.level, "info");
    cfg->gb.enabled = false;
    COPY(cfg->gb.id, "34020000002000000001");
    COPY(cfg->gb.domain, "3402000000");
    COPY(cfg->gb.password, "12345678");
    cfg->gb.keepalive_interval = 60;
    cfg->gb.keepalive_misses = 3;
    COPY(cfg->gb.charset, "GB2312");
    COPY(cfg->gb.media_ip, "127.0.0.1");
    cfg->gb.media_port_min = 30000;
    cfg->gb.media_port_max = 30999;
    cfg->gb.catalog_on_register = true;
    cfg->gb.catalog_concurrency = 32;
    overload_config_default(&cfg->overload);
    cfg->gb.qop = false;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcmp(v, "1")) *out = true;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcasecmp(v, "false") || !strcmp(v, "0")) *out = false;
    else return -1;
    return 0;
}

static int parse_int(const char *v, long min, long max, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < min || n > max) return -1;
    *out = n;
    return 0;
}

static int parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *port)
{
    const char *colon;
    if (s[0] == '[') {                   /* [v6]:port */
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        snprintf(host, hostcap, "%.*s", (int)(rb - s - 1), s + 1);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return -1;
        snprintf(host, hostcap, "%.*s", (int)(colon - s), s);
    }
    long p;
    if (parse_int(colon + 1, 0, 65535, &p)) return -1;
    *port = (uint16_t)p;
    return 0;
}

int config_parse_listen(struct config *cfg, const char *value)
{
    char buf[1024];
    COPY(buf, value);
    cfg->sip.listen_count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        if (cfg->sip.listen_count == CONFIG_MAX_LISTEN) return -1;
        struct config_listen *l = &cfg->sip.listen[cfg->sip.listen_count];
        if (!strncasecmp(tok, "udp:", 4)) l->transport = CONFIG_TRANSPORT_UDP;
        else if (!strncasecmp(tok, "tcp:", 4)) l->transport = CONFIG_TRANSPORT_TCP;
        else return -1;
        if (parse_hostport(tok + 4, l->host, sizeof(l->host), &l->port)) return -1;
        cfg->sip.listen_count++;
    }
    return cfg->sip.listen_count ? 0 : -1;
}

int config_parse_trusted(struct config *cfg, const char *value)
{
    char buf[2048];
    COPY(buf, value);
    cfg->proxy.trusted_count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        if (cfg->proxy.trusted_count == CONFIG_MAX_TRUSTED) return -1;
        struct config_cidr *c = &cfg->proxy.trusted[cfg->proxy.trusted_count];
        memset(c, 0, sizeof(*c));
        char *slash = strchr(tok, '/');
        if (slash) *slash = '\0';
        if (inet_pton(AF_INET, tok, c->addr) == 1) c->family = AF_INET;
        else if (inet_pton(AF_INET6, tok, c->addr) == 1) c->family = AF_INET6;
        else return -1;
        long max = c->family == AF_INET ? 32 : 128, bits = max;
        if (slash && parse_int(slash + 1, 0, max, &bits)) return -1;
        c->bits = (uint8_t)bits;
        cfg->proxy.trusted_count++;
    }
    return 0;
}

bool config_cidr_match(const struct config_cidr *list, int n, const struct sockaddr *sa)
{
    const uint8_t *a;
    if (sa->sa_family == AF_INET) a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6) a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    else return false;
    for (int i = 0; i < n; i++) {
        const struct config_cidr *c = &list[i];
        if (c->family != sa->sa_family) continue;
        int full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(a, c->addr, (size_t)full) != 0) continue;
        if (rest && ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest)))) continue;
        return true;
    }
    return false;
}

struct load_ctx {
    struct config *cfg;
    char *err;
    size_t errcap;
};

static struct config_upstream *upstream_for(struct config *cfg, const char *id)
{
    for (int i = 0; i < cfg->upstream_count; i++)
        if (!strcmp(cfg->upstreams[i].id, id)) return &cfg->upstreams[i];
    if (cfg->upstream_count == CONFIG_MAX_UPSTREAMS) return NULL;
    struct config_upstream *u = &cfg->upstreams[cfg->upstream_count++];
    memset(u, 0, sizeof(*u));
    COPY(u->id, id);
    u->port = 5060;
    u->transport = CONFIG_TRANSPORT_UDP;
    u->expires = 3600;
    u->keepalive_interval = 60;
    u->keepalive_misses = 3;
    COPY(u->charset, "GB2312");
    u->enabled = true;
    u->catalog_items = 4;
    return u;
}

#define KEY(sec, key) (!strcmp(section, sec) && !strcmp(name, key))

static int on_key(void *user, const char *section, const char *name, const char *v)
{
    struct load_ctx *ctx = user;
    struct config *c = ctx->cfg;
    long n;
    bool b;
    int bad = 0;

    if (!strncmp(section, "upstream:", 9)) {
        struct config_upstream *u = upstream_for(c, section + 9);
        if (!u) bad = 1;
        else if (!strcmp(name, "host")) COPY(u->host, v);
        else if (!strcmp(name, "port")) { if (!(bad = parse_int(v, 1, 65535, &n))) u->port = (uint16_t)n; }
        else if (!strcmp(name, "transport")) {
            if (!strcasecmp(v, "udp")) u->transport = CONFIG_TRANSPORT_UDP;
            else if (!strcasecmp(v, "tcp")) u->transport = CONFIG_TRANSPORT_TCP;
            else bad = 1;
        }
        else if (!strcmp(name, "domain")) COPY(u->domain, v);
        else if (!strcmp(name, "password")) COPY(u->password, v);
        else if (!strcmp(name, "expires")) { if (!(bad = parse_int(v, 0, 86400, &n))) u->expires = (int)n; }
        else if (!strcmp(name, "keepalive_interval")) { if (!(bad = parse_int(v, 1, 3600, &n))) u->keepalive_interval = (int)n; }
        else if (!strcmp(name, "keepalive_misses")) { if (!(bad = parse_int(v, 1, 100, &n))) u->keepalive_misses = (int)n; }
        else if (!strcmp(name, "charset")) COPY(u->charset, v);
        else if (!strcmp(name, "enabled")) { if (!(bad = parse_bool(v, &b))) u->enabled = b; }
        else if (!strcmp(name, "catalog_items")) { if (!(bad = parse_int(v, 1, 64, &n))) u->catalog_items = (int)n; }
        else goto unknown;
    }
    else if (KEY("sip", "listen")) bad = config_parse_listen(c, v);
    else if (KEY("sip", "domain")) COPY(c->sip.domain, v);
    else if (KEY("sip", "t1_ms")) { if (!(bad = parse_int(v, 1, 60000, &n))) c->sip.t1_ms = (uint32_t)n; }
    else if (KEY("sip", "t2_ms")) { if (!(bad = parse_int(v, 1, 600000, &n))) c->sip.t2_ms = (uint32_t)n; }
    else if (KEY("sip", "t4_ms")) { if (!(bad = parse_int(v, 1, 600000, &n))) c->sip.t4_ms = (uint32_t)n; }
    else if (KEY("sip", "max_message_bytes")) { if (!(bad = parse_int(v, 1024, 16 << 20, &n))) c->sip.max_message_bytes = (uint32_t)n; }
    else if (KEY("sip", "tcp_idle_timeout")) { if (!(bad = parse_int(v, 1, 86400 * 7, &n))) c->sip.tcp_idle_timeout_s = (uint32_t)n; }
    else if (KEY("sip", "tcp_max_connections")) { if (!(bad = parse_int(v, 1, 1 << 24, &n))) c->sip.tcp_max_connections = (uint32_t)n; }
    else if (KEY("sip", "tcp_max_per_ip")) { if (!(bad = parse_int(v, 1, 1 << 24, &n))) c->sip.tcp_max_per_ip = (uint32_t)n; }
    else if (KEY("sip", "tcp_message_timeout")) { if (!(bad = parse_int(v, 1, 3600, &n))) c->sip.tcp_message_timeout_s = (uint32_t)n; }
    else if (KEY("sip", "tcp_first_message_timeout")) { if (!(bad = parse_int(v, 1, 86400, &n))) c->sip.tcp_first_message_timeout_s = (uint32_t)n; }
    else if (KEY("sip", "user_agent")) COPY(c->sip.user_agent, v);
    else if (KEY("sip", "max_server_transactions")) { if (!(bad = parse_int(v, 1, 100000000, &n))) c->sip.max_server_transactions = (uint32_t)n; }
    else if (KEY("registrar", "min_expires")) { if (!(bad = parse_int(v, 0, 86400 * 30, &n))) c->registrar.min_expires = (int)n; }
    else if (KEY("registrar", "max_expires")) { if (!(bad = parse_int(v, 1, 86400 * 30, &n))) c->registrar.max_expires = (int)n; }
    else if (KEY("registrar", "default_expires")) { if (!(bad = parse_int(v, 1, 86400 * 30, &n))) c->registrar.default_expires = (int)n; }
    else if (KEY("registrar", "keep_on_transport_loss")) { if (!(bad = parse_bool(v, &b))) c->registrar.keep_on_transport_loss = b; }
    else if (KEY("auth", "realm")) COPY(c->auth.realm, v);
    else if (KEY("auth", "require_auth")) { if (!(bad = parse_bool(v, &b))) c->auth.require_auth = b; }
    else if (KEY("auth", "match_user")) { if (!(bad = parse_bool(v, &b))) c->auth.match_user = b; }
    else if (KEY("auth", "algorithm")) {
        if (strcasecmp(v, "MD5") && strcasecmp(v, "SHA-256") && strcasecmp(v, "both")) bad = 1;
        else COPY(c->auth.algorithm, v);
    }
    else if (KEY("auth", "nonce_ttl")) { if (!(bad = parse_int(v, 5, 86400, &n))) c->auth.nonce_ttl_s = (int)n; }
    else if (KEY("auth", "nonce_ttl_noqop")) { if (!(bad = parse_int(v, 5, 86400, &n))) c->auth.nonce_ttl_noqop_s = (int)n; }
    else if (KEY("auth", "nonce_max_uses")) { if (!(bad = parse_int(v, 0, 65535, &n))) c->auth.nonce_max_uses = (int)n; }
    else if (KEY("auth", "max_failures")) { if (!(bad = parse_int(v, 0, 1000000, &n))) c->auth.max_failures = (int)n; }
    else if (KEY("auth", "max_failures_user")) { if (!(bad = parse_int(v, 0, 1000000, &n))) c->auth.max_failures_user = (int)n; }
    else if (KEY("auth", "failure_window")) { if (!(bad = parse_int(v, 1, 86400, &n))) c->auth.failure_window_s = (int)n; }
    else if (KEY("auth", "lockout")) { if (!(bad = parse_int(v, 1, 86400, &n))) c->auth.lockout_s = (int)n; }
    else if (KEY("proxy", "mode")) {
        if (strcasecmp(v, "proxy") && strcasecmp(v, "redirect")) bad = 1;
        else COPY(c->proxy.mode, v);
    }
    else if (KEY("registrar", "nat_ping_max_lost")) { if (!(bad = parse_int(v, 0, 1000, &n))) c->registrar.nat_ping_max_lost = (int)n; }
    else if (KEY("registrar", "nat_ping_interval")) { if (!(bad = parse_int(v, 0, 3600, &n))) c->registrar.nat_ping_interval_s = n; }
    else if (KEY("proxy", "allow_foreign")) { if (!(bad = parse_bool(v, &b))) c->proxy.allow_foreign = b; }
    else if (KEY("proxy", "authenticate")) { if (!(bad = parse_bool(v, &b))) c->proxy.authenticate = b; }
    else if (KEY("proxy", "trusted")) bad = config_parse_trusted(c, v);
    else if (KEY("proxy", "invite_timeout")) { if (!(bad = parse_int(v, 1, 3600, &n))) c->proxy.invite_timeout_s = (uint32_t)n; }
    else if (KEY("registrar", "max_contacts")) { if (!(bad = parse_int(v, 0, 256, &n))) c->registrar.max_contacts = (int)n; }
    else if (KEY("proxy", "non_invite_timeout_ms")) { if (!(bad = parse_int(v, 0, 3600000, &n))) c->proxy.non_invite_timeout_ms = (uint32_t)n; }
    else if (KEY("proxy", "pike_limit")) { if (!(bad = parse_int(v, 0, 1000000, &n))) c->proxy.pike_limit = (uint32_t)n; }
    else if (KEY("proxy", "pike_window")) { if (!(bad = parse_int(v, 1, 3600, &n))) c->proxy.pike_window_s = (uint32_t)n; }
    else if (KEY("store", "path")) COPY(c->store.path, v);
    else if (KEY("store", "commit_window_ms")) { if (!(bad = parse_int(v, 0, 1000, &n))) c->store.commit_window_ms = (uint32_t)n; }
    else if (KEY("api", "listen")) COPY(c->api.listen, v);
    else if (KEY("api", "token")) COPY(c->api.token, v);
    else if (KEY("events", "webhook")) COPY(c->events.webhook, v);
    else if (KEY("events", "ring_size")) { if (!(bad = parse_int(v, 16, 1 << 22, &n))) c->events.ring_size = (int)n; }
    else if (KEY("log", "level")) { if (log_level_from_name(v) >= 0) COPY(c->log.level, v); else bad = 1; }
    else if (KEY("gb", "enabled")) { if (!(bad = parse_bool(v, &b))) c->gb.enabled = b; }
    else if (KEY("gb", "id")) COPY(c->gb.id, v);
    else if (KEY("gb", "domain")) COPY(c->gb.domain, v);
    else if (KEY("gb", "password")) COPY(c->gb.password, v);
    else if (KEY("gb", "allow_unknown")) { if (!(bad = parse_bool(v, &b))) c->gb.allow_unknown = b; }
    else if (KEY("gb", "keepalive_interval")) { if (!(bad = parse_int(v, 1, 3600, &n))) c->gb.keepalive_interval = (int)n; }
    else if (KEY("gb", "keepalive_misses")) { if (!(bad = parse_int(v, 1, 100, &n))) c->gb.keepalive_misses = (int)n; }
    else if (KEY("gb", "charset")) COPY(c->gb.charset, v);
    else if (KEY("gb", "media_ip")) COPY(c->gb.media_ip, v);
    else if (KEY("gb", "media_ports")) {
        long lo, hi;
        char tmp[64];
        COPY(tmp, v);
        char *dash = strchr(tmp, '-');
        if (!dash) bad = 1;
        else {
            *dash = 0;
            bad = parse_int(tmp, 1, 65535, &lo) || parse_int(dash + 1, 1, 65535, &hi) || lo > hi;
            if (!bad) { c->gb.media_port_min = (uint16_t)lo; c->gb.media_port_max = (uint16_t)hi; }
        }
    }
    else if (KEY("gb", "catalog_on_register")) { if (!(bad = parse_bool(v, &b))) c->gb.catalog_on_register = b; }
    else if (KEY("gb", "catalog_concurrency")) { if (!(bad = parse_int(v, 1, 10000, &n))) c->gb.catalog_concurrency = (int)n; }
    else if (KEY("overload", "enabled")) { if (!(bad = parse_bool(v, &b))) c->overload.enabled = b; }
    else if (KEY("overload", "max_loop_lag_ms")) { if (!(bad = parse_int(v, 0, 60000, &n))) c->overload.max_loop_lag_ms = (uint32_t)n; }
    else if (KEY("overload", "max_loop_busy")) { if (!(bad = parse_int(v, 0, 100, &n))) c->overload.max_loop_busy_pct = (uint32_t)n; }
    else if (KEY("overload", "max_rx_queue")) { if (!(bad = parse_int(v, 0, 100, &n))) c->overload.max_rx_queue_pct = (uint32_t)n; }
    else if (KEY("overload", "loop_samples")) { if (!(bad = parse_int(v, 1, 100, &n))) c->overload.loop_samples = (uint32_t)n; }
    else if (KEY("overload", "hold_ms")) { if (!(bad = parse_int(v, 0, 600000, &n))) c->overload.hold_ms = (uint32_t)n; }
    else if (KEY("overload", "max_working_transactions")) { if (!(bad = parse_int(v, 0, 10000000, &n))) c->overload.max_server_txns = (uint32_t)n; }
    else if (KEY("overload", "max_store_backlog")) { if (!(bad = parse_int(v, 0, 10000000, &n))) c->overload.max_store_backlog = (uint32_t)n; }
    else if (KEY("overload", "max_register_rate")) { if (!(bad = parse_int(v, 0, 10000000, &n))) c->overload.max_register_rate = (uint32_t)n; }
    else if (KEY("overload", "retry_after_min")) { if (!(bad = parse_int(v, 1, 86400, &n))) c->overload.retry_after_min_s = (uint32_t)n; }
    else if (KEY("overload", "retry_after_max")) { if (!(bad = parse_int(v, 1, 86400, &n))) c->overload.retry_after_max_s = (uint32_t)n; }
    else if (KEY("gb", "qop")) { if (!(bad = parse_bool(v, &b))) c->gb.qop = b; }
    else if (KEY("gb", "default_media")) COPY(c->gb.default_media, v);
    else goto unknown;

    if (bad) {
        snprintf(ctx->err, ctx->errcap, "[%s] %s: bad value '%s'", section, name, v);
        return 0;
    }
    return 1;
unknown:
    snprintf(ctx->err, ctx->errcap, "[%s] %s: unknown key", section, name);
    return 0;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errcap)
{
    struct load_ctx ctx = {cfg, err, errcap};
    err[0] = 0;
    int rc = ini_parse(path, on_key, &ctx);
    if (rc == -1) {
        snprintf(err, errcap, "%s: cannot open", path);
        return -1;
    }
    if (rc != 0) {
        if (!err[0]) snprintf(err, errcap, "%s: syntax error on line %d", path, rc);
        else {
            char tmp[256];
            snprintf(tmp, sizeof(tmp), "%s", err);
            snprintf(err, errcap, "%s line %d: %s", path, rc, tmp);
        }
        return -1;
    }
    if (cfg->overload.retry_after_min_s > cfg->overload.retry_after_max_s) {
        snprintf(err, errcap, "%s: [overload] retry_after_min > retry_after_max", path);
        return -1;
    }
    if (cfg->registrar.min_expires > cfg->registrar.max_expires) {
        snprintf(err, errcap, "%s: [registrar] min_expires > max_expires", path);
        return -1;
    }
    return 0;
}
