/* registrar_config.c — the keys of [registrar] (struct registrar_config,
 * base/config.h): binding lifetimes, NAT keepalives, contacts per AoR. */
#include <stdio.h>

#include "registrar/registrar_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct registrar_config, f), def, lo, hi, NULL, 0, help}

static const struct config_key keys[] = {
    KEY("min_expires", CONFIG_INT, min_expires, "60", 0, 86400 * 30, "shorter asks get 423 with Min-Expires"),
    KEY("max_expires", CONFIG_INT, max_expires, "7200", 1, 86400 * 30, "longer asks are granted this"),
    KEY("default_expires", CONFIG_INT, default_expires, "3600", 1, 86400 * 30, "for a REGISTER that names no expiry"),
    KEY("keep_on_transport_loss", CONFIG_BOOL, keep_on_transport_loss, "no", 0, 0,
        "yes: keep bindings of a lost TCP flow, flagged"),
    KEY("nat_ping_interval", CONFIG_INT, nat_ping_interval_s, "30", 0, 3600,
        "seconds between OPTIONS pings to UDP bindings behind NAT (Contact is not the source address); 0: off"),
    KEY("nat_ping_max_lost", CONFIG_INT, nat_ping_max_lost, "3", 0, 1000,
        "a binding that answered none of its last N pings is removed (user.offline reason unreachable); 0: never"),
    KEY("max_contacts", CONFIG_INT, max_contacts, "10", 0, 256,
        "bindings per AoR: one more is refused 403 Too Many Contacts (bounds a call's fan-out); 0: no limit"),
    KEY("write_behind_ms", CONFIG_INT, write_behind_ms, "1000", 0, 60000,
        "a REGISTER that only renews a binding (same contact, flow, source, path) is answered at once and "
        "written with the others within this many ms; a crash loses at most that much of renewals; 0: every "
        "change is committed before its 200"),
};

static int check(const void *section, char *err, size_t errcap)
{
    const struct registrar_config *r = section;
    if (r->min_expires <= r->max_expires) return 0;
    snprintf(err, errcap, "[registrar] min_expires > max_expires");
    return -1;
}

const struct config_section registrar_config_section = {
    .name = "registrar",
    .help = "SIP registrar (RFC 3261 section 10).",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
    .check = check,
};
