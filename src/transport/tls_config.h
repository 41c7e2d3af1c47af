/* tls_config.h — the [tls] section: struct tls_config lives in tls.h (the
 * context is built from it); its keys are in tls_config.c: cert, key, ca,
 * verify_peer, verify_server, min_version, ciphers, ciphersuites,
 * handshake_timeout_ms. */
#ifndef CASCADE_TRANSPORT_TLS_CONFIG_H
#define CASCADE_TRANSPORT_TLS_CONFIG_H

#include "transport/tls.h"

#endif
