/* api_config.c — the keys of [api] (struct api_config, base/config.h). */
#include <stddef.h>
#include <stdio.h>

#include "api/api_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct api_config, f), def, lo, hi, NULL, 0, help}

static const struct config_key keys[] = {
    KEY("listen", CONFIG_STRING, listen, "127.0.0.1:8080",
        0, 0, "an IP address and port, bound exactly (0.0.0.0 / [::]: every interface); empty: no API"),
    KEY("token", CONFIG_STRING, token, "", 0, 0,
        "Bearer token for every route but /metrics; without one, loopback listen only"),
    KEY("tls_cert", CONFIG_STRING, tls_cert, "", 0, 0,
        "PEM certificate chain: the API, /metrics and the event stream are then https:// and wss:// only"),
    KEY("tls_key", CONFIG_STRING, tls_key, "", 0, 0, "PEM private key of tls_cert"),
};

static int check(const void *section, char *err, size_t errcap)
{
    const struct api_config *a = section;
    if (!a->tls_cert[0] == !a->tls_key[0]) return 0;
    snprintf(err, errcap, "[api] tls_cert and tls_key go together: set both or neither");
    return -1;
}

const struct config_section api_config_section = {
    .name = "api",
    .help = "The HTTP API, the WebSocket event stream and /metrics.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
    .check = check,
};
