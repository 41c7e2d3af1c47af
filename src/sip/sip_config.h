/* sip_config.h — the [sip] section (keys: sip_config.c). */
#ifndef CASCADE_SIP_SIP_CONFIG_H
#define CASCADE_SIP_SIP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/config.h"

struct sip_config { /* [sip] */
    struct config_listen listen[CONFIG_MAX_LISTEN];
    int listen_count;
    char domain[128];
    uint32_t t1_ms, t2_ms, t4_ms;
    uint32_t max_message_bytes;
    uint32_t tcp_idle_timeout_s;
    uint32_t tcp_max_connections;    /* clamped at start to RLIMIT_NOFILE minus a reserve */
    uint32_t tcp_max_per_ip;         /* accepted connections from one source IP */
    uint32_t tcp_message_timeout_s;  /* a message completes this long after its first byte */
    uint32_t tcp_first_message_timeout_s; /* an accepted connection sends a whole message by then */
    char user_agent[64];
    uint32_t max_server_transactions; /* live server transactions; beyond: 503 stateless */
    uint32_t ws_ping_interval_s;     /* WebSocket ping after this long with nothing received */
    char ws_origins[512];            /* browsers' Origin values allowed on ws:/wss:, comma-separated; empty: any */
    bool ws_require_origin;          /* refuse WebSocket clients that send no Origin */
};

#endif
