/* api_config.h — the [api] section (keys: api_config.c). */
#ifndef CASCADE_API_API_CONFIG_H
#define CASCADE_API_API_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct api_config { /* [api] */
    char listen[128];                /* host:port, empty disables */
    char token[128];
    char tls_cert[256];              /* PEM chain: the API serves https:// and wss:// only */
    char tls_key[256];               /* its private key; both set or neither */
};

#endif
