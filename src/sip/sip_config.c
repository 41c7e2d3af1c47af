/* sip_config.c — the keys of [sip] (struct sip_config, base/config.h):
 * where SIP is served, the RFC 3261 timers, message and TCP limits. */
#include <stddef.h>

#include "sip/sip_config.h"

#include "base/config.h"

#define KEY(name, type, f, def, lo, hi, help) {name, type, CONFIG_FIELD(struct sip_config, f), def, lo, hi, NULL, 0, help}

static const struct config_key keys[] = {
    {"listen", CONFIG_LISTEN, CONFIG_FIELD(struct sip_config, listen), "udp:127.0.0.1:5060, tcp:127.0.0.1:5060", 0, 0, NULL,
     offsetof(struct sip_config, listen_count), "the sockets SIP is served on: udp: tcp: tls: ws: wss: host:port (0.0.0.0 / [::]: every interface; tls: and wss: need [tls] cert)"},
    KEY("domain", CONFIG_STRING, domain, "127.0.0.1", 0, 0, "the domain we are registrar/proxy for"),
    KEY("t1_ms", CONFIG_UINT, t1_ms, "500", 1, 60000, "RFC 3261 T1: round-trip estimate, ms"),
    KEY("t2_ms", CONFIG_UINT, t2_ms, "4000", 1, 600000, "RFC 3261 T2: longest retransmit interval of non-INVITE requests, ms"),
    KEY("t4_ms", CONFIG_UINT, t4_ms, "5000", 1, 600000, "RFC 3261 T4: how long a message may stay in the network, ms"),
    KEY("max_message_bytes", CONFIG_UINT, max_message_bytes, "65536", 1024, 16 << 20, "larger SIP messages are refused"),
    KEY("tcp_idle_timeout", CONFIG_UINT, tcp_idle_timeout_s, "3600", 1, 86400 * 7, "seconds an idle TCP connection is kept"),
    KEY("tcp_max_connections", CONFIG_UINT, tcp_max_connections, "10000", 1, 1 << 24,
        "SIP TCP connections in all; raised into RLIMIT_NOFILE at start, or clamped (with a warning) to the limit minus 64 kept for API/store"),
    KEY("tcp_max_per_ip", CONFIG_UINT, tcp_max_per_ip, "256", 1, 1 << 24,
        "accepted TCP connections from one source IP; more are closed at once"),
    KEY("tcp_message_timeout", CONFIG_UINT, tcp_message_timeout_s, "10", 1, 3600,
        "seconds a TCP message may take from its first byte (slow senders)"),
    KEY("tcp_first_message_timeout", CONFIG_UINT, tcp_first_message_timeout_s, "30", 1, 86400,
        "seconds an accepted TCP connection has to send a complete message"),
    KEY("user_agent", CONFIG_STRING, user_agent, "cascade", 0, 0, "User-Agent and Server header value"),
    KEY("max_server_transactions", CONFIG_UINT, max_server_transactions, "100000", 1, 100000000,
        "live server transactions (Timer J records of answered requests not counted); beyond, new requests get 503 + Retry-After"),
    KEY("ws_ping_interval", CONFIG_UINT, ws_ping_interval_s, "30", 1, 86400,
        "seconds of silence on a ws:/wss: connection before we send a WebSocket ping (a dead peer then meets tcp_idle_timeout)"),
    KEY("ws_origins", CONFIG_STRING, ws_origins, "", 0, 0,
        "Origin values a browser may open ws:/wss: from, comma-separated (e.g. https://phone.example.com); empty: any (403 otherwise)"),
    KEY("ws_require_origin", CONFIG_BOOL, ws_require_origin, "no", 0, 0,
        "yes: WebSocket clients that send no Origin header (not browsers) are refused"),
};

const struct config_section sip_config_section = {
    .name = "sip",
    .help = "SIP: listening sockets, transaction timers, message and TCP limits.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
};
