/* proxy_config.h — the [proxy] section (keys: proxy_config.c). */
#ifndef CASCADE_PROXY_PROXY_CONFIG_H
#define CASCADE_PROXY_PROXY_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/config.h"

#define CONFIG_MAX_TRUSTED 32

struct proxy_config { /* [proxy] */
    char mode[16];                   /* proxy | redirect */
    bool allow_foreign;              /* forward requests for other domains */
    bool authenticate;               /* 407 for new requests from our users or relayed elsewhere */
    struct config_cidr trusted[CONFIG_MAX_TRUSTED]; /* sources never challenged (trunks, peers) */
    int trusted_count;
    uint32_t invite_timeout_s;       /* timer C */
    uint32_t non_invite_timeout_ms;  /* 408 upstream for unanswered non-INVITE; 0: 60*T1 */
    uint32_t pike_limit;             /* new requests per source per window; 0: off */
    uint32_t pike_window_s;          /* the pike window */
    char edge_registrar[256];        /* edge mode: the registrar node behind us (a SIP URI); "" off */
    char edge_secret[256];           /* the Path/flow token key's seed; "" a random key kept in the store */
    struct config_cidr trusted_edges[CONFIG_MAX_TRUSTED]; /* edges whose phones count by the next Via */
    int trusted_edges_count;
};

#endif
