/* gb_config.h — the [gb] section (keys: gb_config.c), read by both GB roles. */
#ifndef CASCADE_GB_UPPER_GB_CONFIG_H
#define CASCADE_GB_UPPER_GB_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct gb_config { /* [gb] — GB28181 upper role */
    bool enabled;
    char id[32];
    char domain[32];
    char password[128];
    bool allow_unknown;
    int keepalive_interval;
    int keepalive_misses;
    char charset[16];
    char media_ip[64];
    uint16_t media_port_min, media_port_max;
    bool catalog_on_register;
    bool info_on_register;           /* with the catalog query: DeviceInfo when no name is known yet */
    int catalog_concurrency;         /* catalog-on-register queries in flight at once (1..10000, default 32) */
    int catalog_rate;                /* queries started from the queue per second (0: no cap, default 1000) */
    bool qop;                        /* offer qop=auth in challenges */
    char subscribe[64];              /* "catalog,alarm,position": what the upper subscribes to on register */
    int subscribe_expires;           /* seconds asked in those SUBSCRIBEs (refreshed at 3/4) */
    int position_interval;           /* seconds between MobilePosition notifies asked for */
    char default_media[512];         /* lower role: H.264 file for channels naming none ("" = built-in clip) */
    uint32_t live_idle_stop_ms;      /* not a [gb] key: [media] idle_stop, set by the daemon */
    uint32_t live_flv_max_lag_ms;    /* not a [gb] key: [media] flv_max_lag_ms, set by the daemon (0: no limit) */
};

#endif
