/* proxy_config.c — the keys of [proxy] (struct proxy_config, base/config.h):
 * mode, who is challenged, timers, the pike limit. */
#include <stddef.h>
#include <stdio.h>
#include <strings.h>

#include "proxy/proxy_config.h"

#include "base/config.h"
#include "sip/msg.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct proxy_config, f), def, lo, hi, NULL, 0, help}

static const char *const modes[] = {"proxy", "redirect", NULL};

static const struct config_key keys[] = {
    {"mode", CONFIG_STRING, CONFIG_FIELD(struct proxy_config, mode), "proxy", 0, 0, modes, 0,
     "proxy: forward requests (RFC 3261 section 16); redirect: answer 302 with the bindings"},
    KEY("allow_foreign", CONFIG_BOOL, allow_foreign, "no", 0, 0, "forward requests for other domains"),
    KEY("authenticate", CONFIG_BOOL, authenticate, "yes", 0, 0,
        "407 for new requests whose From is one of our users, and for requests relayed to other domains; "
        "calls from other domains to our users and in-dialog requests pass"),
    {"trusted", CONFIG_CIDR, CONFIG_FIELD(struct proxy_config, trusted), "", 0, 0, NULL,
     offsetof(struct proxy_config, trusted_count),
     "sources never challenged (gateways, peer proxies): \"192.0.2.10, 10.0.0.0/8, 2001:db8::/32\""},
    KEY("invite_timeout", CONFIG_UINT, invite_timeout_s, "180", 1, 3600, "timer C, seconds"),
    KEY("non_invite_timeout_ms", CONFIG_UINT, non_invite_timeout_ms, "0", 0, 3600000,
        "MESSAGE, OPTIONS ... unanswered this long: 408 to the sender before its own timer F (0: 60*T1, 30 s at T1 500 ms)"),
    KEY("pike_limit", CONFIG_UINT, pike_limit, "30", 0, 1000000,
        "new requests per source IP per pike_window the proxy takes; beyond: 503 (stateless, Retry-After); trusted exempt; 0: off"),
    KEY("pike_window", CONFIG_UINT, pike_window_s, "2", 1, 3600, "seconds"),
    KEY("edge_registrar", CONFIG_STRING, edge_registrar, "", 0, 0,
        "edge mode: this node holds its clients' flows and the registrar behind it holds the location "
        "(\"sip:10.0.0.2:5060;transport=tcp\"); REGISTERs for our domain go there with a Path naming the "
        "client's flow (RFC 3327, RFC 5626), other requests for our domain go there record-routed; empty: off"),
    KEY("edge_secret", CONFIG_STRING, edge_secret, "", 0, 0,
        "the key of our Path and flow tokens is derived from this (edges behind one registrar may share it); "
        "empty: a random key made once and kept in the store ([store] path), so tokens outlive a restart"),
    {"trusted_edges", CONFIG_CIDR, CONFIG_FIELD(struct proxy_config, trusted_edges), "", 0, 0, NULL,
     offsetof(struct proxy_config, trusted_edges_count),
     "edge nodes in front of this registrar: a request from one whose top Via is the edge's counts for pike and "
     "digest-failure limits (and logs) by the next Via's received/rport, the phone's address; empty: none"},
};

/* edge_registrar: a sip:/sips: URI with a host and no user, usable as a
 * next hop; not with mode = redirect. */
static int proxy_check(const void *section, char *err, size_t errcap)
{
    const struct proxy_config *c = section;
    if (!c->edge_registrar[0]) return 0;
    struct sip_uri u;
    if (sip_uri_parse(str_from_cstr(c->edge_registrar), &u) != 0 ||
        (u.scheme != SIP_SCHEME_SIP && u.scheme != SIP_SCHEME_SIPS) || !u.host.len || u.user.len) {
        snprintf(err, errcap,
                 "[proxy] edge_registrar: '%s' is not a sip: URI of a host (sip:10.0.0.2:5060;transport=tcp)",
                 c->edge_registrar);
        return -1;
    }
    str_t tp;
    if (sip_param_get(u.params, "transport", &tp) && !str_ieq_cstr(tp, "udp") && !str_ieq_cstr(tp, "tcp") &&
        !str_ieq_cstr(tp, "tls")) {
        snprintf(err, errcap, "[proxy] edge_registrar: transport must be udp, tcp or tls");
        return -1;
    }
    if (!strcasecmp(c->mode, "redirect")) {
        snprintf(err, errcap, "[proxy] edge_registrar needs mode = proxy (an edge forwards)");
        return -1;
    }
    return 0;
}

const struct config_section proxy_config_section = {
    .name = "proxy",
    .help = "SIP proxy (RFC 3261 section 16) for requests that are not REGISTER.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
    .check = proxy_check,
};
