/* upstream_config.h — the [upstream:<id>] sections (keys: upstream_config.c). */
#ifndef CASCADE_GB_LOWER_UPSTREAM_CONFIG_H
#define CASCADE_GB_LOWER_UPSTREAM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "sip/sip_config.h"

#define CONFIG_MAX_UPSTREAMS 16

struct config_upstream {               /* [upstream:<20-digit id>] — GB28181 lower role */
    char id[32];
    char host[64];
    uint16_t port;
    enum config_transport transport;   /* udp, tcp or tls */
    char tls_name[64];                  /* tls: the certificate's name; empty: the host address */
    char domain[32];
    char password[128];
    int expires;
    int keepalive_interval;
    int keepalive_misses;
    char charset[16];                   /* GB2312 | UTF-8 */
    bool enabled;
    int catalog_items;                  /* catalog items per Response MESSAGE (1..64, default 4) */
    bool notify_without_subscription;   /* catalog changes as MESSAGE to an upper that never subscribed */
};

struct config_section;
extern const struct config_section upstream_config_section; /* the keys (upstream_config.c) */

#endif
