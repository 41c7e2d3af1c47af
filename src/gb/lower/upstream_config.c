/* upstream_config.c — the keys of [upstream:<id>] (struct config_upstream,
 * base/config.h): one section per upper platform the lower role registers to. */
#include <stddef.h>

#include "gb/lower/upstream_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct config_upstream, f), def, lo, hi, NULL, 0, help}

/* Indexed by enum config_transport. */
static const char *const transports[] = {"udp", "tcp", "tls", NULL};

static const struct config_key keys[] = {
    KEY("host", CONFIG_STRING, host, "", 0, 0, "the upper platform's address"),
    KEY("port", CONFIG_UINT, port, "5060", 1, 65535, "its SIP port"),
    {"transport", CONFIG_ENUM, CONFIG_FIELD(struct config_upstream, transport), "udp", 0, 0, transports, 0,
     "the SIP transport to it: udp | tcp | tls (tls checks its certificate against [tls] ca)"},
    KEY("tls_name", CONFIG_STRING, tls_name, "", 0, 0,
        "transport tls: the name its certificate must carry (also sent as SNI); empty: its address"),
    KEY("domain", CONFIG_STRING, domain, "", 0, 0, "its 10-digit GB/T 28181 domain"),
    KEY("password", CONFIG_STRING, password, "", 0, 0, "our password there"),
    KEY("expires", CONFIG_INT, expires, "3600", 0, 86400, "registration lifetime asked, seconds"),
    KEY("keepalive_interval", CONFIG_INT, keepalive_interval, "60", 1, 3600, "seconds between our keepalives"),
    KEY("keepalive_misses", CONFIG_INT, keepalive_misses, "3", 1, 100, "unanswered keepalives in a row that mean the platform is lost"),
    KEY("charset", CONFIG_STRING, charset, "GB2312", 0, 0, "MANSCDP body charset: GB2312 | UTF-8"),
    KEY("catalog_items", CONFIG_INT, catalog_items, "4", 1, 64, "catalog items per Response MESSAGE (stay under UDP size)"),
    KEY("notify_without_subscription", CONFIG_BOOL, notify_without_subscription, "yes", 0, 0,
        "catalog changes go as NOTIFY within the upper's catalog subscription (GB/T 28181 §9.11); yes: as MESSAGE to an upper that never subscribed"),
    KEY("enabled", CONFIG_BOOL, enabled, "yes", 0, 0, "no: keep the section but do not register"),
};

const struct config_section upstream_config_section = {
    .name = "upstream",
    .help = "GB/T 28181 lower role: one section per upper platform we register to, [upstream:<its 20-digit id>].",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
    .id_offset = offsetof(struct config_upstream, id),
    .id_size = sizeof(((struct config_upstream *)0)->id),
    .example_id = "34020000002000000002",
};
