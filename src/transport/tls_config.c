/* tls_config.c — the keys of [tls] (struct tls_config, transport/tls.h):
 * certificate files, peer verification, protocol floor and ciphers. */
#include <stdio.h>

#include "transport/tls_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct tls_config, f), def, lo, hi, NULL, 0, help}

/* In the order of TLS_MIN_1_2, TLS_MIN_1_3. */
static const char *const versions[] = {"1.2", "1.3", NULL};

static const struct config_key keys[] = {
    KEY("cert", CONFIG_STRING, cert, "", 0, 0,
        "PEM certificate chain (ours first) for tls: listeners; empty: TLS listeners off, outgoing TLS only"),
    KEY("key", CONFIG_STRING, key, "", 0, 0, "PEM private key of cert"),
    KEY("ca", CONFIG_STRING, ca, "", 0, 0,
        "PEM file or hashed directory of CAs to verify peers; empty: the system's CA store"),
    KEY("verify_peer", CONFIG_BOOL, verify_peer, "no", 0, 0,
        "yes: a TLS client must present a certificate signed by ca (needs ca)"),
    KEY("verify_server", CONFIG_BOOL, verify_server, "yes", 0, 0,
        "outgoing TLS: check the server's certificate and that it names the host we connect to"),
    {"min_version", CONFIG_ENUM, CONFIG_FIELD(struct tls_config, min_version), "1.2", 0, 0, versions, 0,
     "oldest TLS version accepted, both ways"},
    KEY("ciphers", CONFIG_STRING, ciphers, "", 0, 0,
        "TLS 1.2 cipher list (OpenSSL syntax); empty: OpenSSL's ECDHE (forward-secret) ciphers"),
    KEY("ciphersuites", CONFIG_STRING, ciphersuites, "", 0, 0,
        "TLS 1.3 suites (OpenSSL syntax, e.g. TLS_AES_256_GCM_SHA384); empty: OpenSSL's default"),
    KEY("handshake_timeout_ms", CONFIG_UINT, handshake_timeout_ms, "10000", 100, 600000,
        "a TLS handshake not finished within this closes the connection"),
};

static int check(const void *section, char *err, size_t errcap)
{
    const struct tls_config *t = section;
    if (!t->cert[0] != !t->key[0]) {
        snprintf(err, errcap, "[tls] cert and key go together: set both or neither");
        return -1;
    }
    if (t->verify_peer && !t->ca[0]) {
        snprintf(err, errcap, "[tls] verify_peer = yes needs ca (the CA that signs the clients' certificates)");
        return -1;
    }
    return 0;
}

const struct config_section tls_config_section = {
    .name = "tls",
    .help = "TLS for SIP (RFC 3261 section 26, RFC 5630): listen = tls:host:port; re-read on SIGHUP.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
    .check = check,
};
