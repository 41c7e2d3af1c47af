/* proxy_config.c — the keys of [proxy] (struct proxy_config, base/config.h):
 * mode, who is challenged, timers, the pike limit. */
#include <stddef.h>

#include "proxy/proxy_config.h"

#include "base/config.h"

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
};

const struct config_section proxy_config_section = {
    .name = "proxy",
    .help = "SIP proxy (RFC 3261 section 16) for requests that are not REGISTER.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
};
