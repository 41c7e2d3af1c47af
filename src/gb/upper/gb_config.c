/* gb_config.c — the keys of [gb] (struct gb_config, base/config.h): this
 * node's GB/T 28181 identity and the upper role (devices register here). */
#include <stddef.h>

#include "gb/upper/gb_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct gb_config, f), def, lo, hi, NULL, 0, help}

static const struct config_key keys[] = {
    KEY("enabled", CONFIG_BOOL, enabled, "no", 0, 0, "serve the upper role: devices register here"),
    KEY("id", CONFIG_STRING, id, "34020000002000000001", 0, 0, "this node's 20-digit GB/T 28181 id"),
    KEY("domain", CONFIG_STRING, domain, "3402000000", 0, 0, "this node's 10-digit GB/T 28181 domain"),
    KEY("password", CONFIG_STRING, password, "12345678", 0, 0, "default device password"),
    KEY("allow_unknown", CONFIG_BOOL, allow_unknown, "no", 0, 0,
        "yes: any 20-digit id of our domain with the default password"),
    KEY("keepalive_interval", CONFIG_INT, keepalive_interval, "60", 1, 3600, "seconds between device keepalives"),
    KEY("keepalive_misses", CONFIG_INT, keepalive_misses, "3", 1, 100, "keepalives missed in a row: the device is offline"),
    KEY("charset", CONFIG_STRING, charset, "GB2312", 0, 0, "MANSCDP body charset: GB2312 | UTF-8"),
    KEY("media_ip", CONFIG_STRING, media_ip, "127.0.0.1", 0, 0, "the address devices send media to"),
    {"media_ports", CONFIG_PORT_RANGE, CONFIG_FIELD(struct gb_config, media_port_min), "30000-30999", 1, 65535, NULL,
     offsetof(struct gb_config, media_port_max), "RTP ports for the streams we receive"},
    KEY("catalog_on_register", CONFIG_BOOL, catalog_on_register, "yes", 0, 0, "query a device's catalog when it registers"),
    KEY("info_on_register", CONFIG_BOOL, info_on_register, "yes", 0, 0,
        "with the catalog query on register, also ask DeviceInfo (name, maker, model) while none is known for the device"),
    KEY("catalog_concurrency", CONFIG_INT, catalog_concurrency, "32", 1, 10000,
        "queries asked on register (catalog, DeviceInfo: one each) in flight at once; the rest wait in a queue"),
    KEY("catalog_rate", CONFIG_INT, catalog_rate, "1000", 0, 1000000,
        "catalog-on-register queries (and their DeviceInfo) started per second at most; 0: no cap. "
        "They also wait while the node is overloaded"),
    KEY("qop", CONFIG_BOOL, qop, "no", 0, 0, "offer qop=auth in challenges; many devices need the legacy no-qop digest"),
    KEY("subscribe", CONFIG_STRING, subscribe, "", 0, 0,
        "subscribe to each device on register (GB/T 28181 §9.11, §9.4, §9.12): any of catalog,alarm,position; empty: none"),
    KEY("subscribe_expires", CONFIG_INT, subscribe_expires, "3600", 10, 86400,
        "seconds asked for in those subscriptions; refreshed at three quarters"),
    KEY("position_interval", CONFIG_INT, position_interval, "5", 1, 3600,
        "seconds between the mobile position notifies asked for"),
    KEY("default_media", CONFIG_STRING, default_media, "", 0, 0,
        "H.264 Annex B file streamed for local channels without one; empty: the built-in clip"),
};

const struct config_section gb_config_section = {
    .name = "gb",
    .help = "GB/T 28181: this node's identity, and the upper role (devices register here).",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
};
