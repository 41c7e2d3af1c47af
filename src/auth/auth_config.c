/* auth_config.c — the keys of [auth] (struct auth_config, base/config.h):
 * digest realm and algorithms, nonce lifetimes, failure limits. */
#include <stddef.h>

#include "auth/auth_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct auth_config, f), def, lo, hi, NULL, 0, help}

static const char *const algorithms[] = {"MD5", "SHA-256", "both", NULL};

static const struct config_key keys[] = {
    KEY("realm", CONFIG_STRING, realm, "", 0, 0, "digest realm; empty: [sip] domain"),
    KEY("require_auth", CONFIG_BOOL, require_auth, "yes", 0, 0, "REGISTER must answer a digest challenge"),
    KEY("match_user", CONFIG_BOOL, match_user, "yes", 0, 0, "digest username must equal the AoR user"),
    {"algorithm", CONFIG_STRING, CONFIG_FIELD(struct auth_config, algorithm), "MD5", 0, 0, algorithms, 0,
     "digest algorithm offered in challenges"},
    KEY("nonce_ttl", CONFIG_INT, nonce_ttl_s, "300", 5, 86400, "seconds a nonce is accepted"),
    KEY("nonce_ttl_noqop", CONFIG_INT, nonce_ttl_noqop_s, "30", 5, 86400,
        "lifetime of nonces answered without qop (GB devices): a captured answer can be replayed (from the same IP) at most this long"),
    KEY("nonce_max_uses", CONFIG_INT, nonce_max_uses, "100", 0, 65535,
        "answers checked per nonce, right or wrong (nc ceiling); 0: no limit"),
    KEY("max_failures", CONFIG_INT, max_failures, "10", 0, 1000000,
        "failed attempts from one source in failure_window -> 403 for lockout s; 0: off"),
    KEY("max_failures_user", CONFIG_INT, max_failures_user, "50", 0, 1000000,
        "... for one user from any source; 0: off"),
    KEY("failure_window", CONFIG_INT, failure_window_s, "60", 1, 86400,
        "seconds; also: one auth.failed event per user+source per window"),
    KEY("lockout", CONFIG_INT, lockout_s, "60", 1, 86400, "seconds of 403 \"Too many failed attempts\""),
};

const struct config_section auth_config_section = {
    .name = "auth",
    .help = "Digest authentication (RFC 3261 section 22, RFC 8760) for the registrar and the proxy.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
};
