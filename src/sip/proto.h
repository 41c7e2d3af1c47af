/* proto.h — the SIP transports (RFC 3261 §18, RFC 5630 TLS, RFC 7118 WS/WSS)
 * as every layer names them: in Via ("SIP/2.0/TLS"), in URI transport
 * parameters (";transport=tls"), in logs and events ("tls"). UDP is the only
 * datagram transport; the others run over a connection (a flow, RFC 5626),
 * and TLS and WSS are the secure ones a sips: URI demands (RFC 5630 §3). */
#ifndef CASCADE_SIP_PROTO_H
#define CASCADE_SIP_PROTO_H

#include <stdbool.h>

#include "base/str.h"

enum sip_transport {
    SIP_TRANSPORT_UDP = 0,
    SIP_TRANSPORT_TCP = 1,
    SIP_TRANSPORT_TLS = 2,
    SIP_TRANSPORT_WS = 3,
    SIP_TRANSPORT_WSS = 4,
};
#define SIP_TRANSPORT_COUNT 5

/* Carried over a connection (everything but UDP): responses and in-dialog
 * requests follow the connection, nothing is retransmitted (RFC 3261 §17). */
static inline bool sip_transport_is_stream(enum sip_transport p) { return p != SIP_TRANSPORT_UDP; }
/* TLS or WSS: may carry a sips: request (RFC 5630 §3.1.2). */
static inline bool sip_transport_is_secure(enum sip_transport p)
{
    return p == SIP_TRANSPORT_TLS || p == SIP_TRANSPORT_WSS;
}
static inline bool sip_transport_is_ws(enum sip_transport p) { return p == SIP_TRANSPORT_WS || p == SIP_TRANSPORT_WSS; }

/* "UDP", "TCP", "TLS", "WS", "WSS": the Via sent-protocol transport. */
const char *sip_transport_via_name(enum sip_transport p);
/* "udp", "tcp", "tls", "ws", "wss": URI transport parameter, logs, events. */
const char *sip_transport_param(enum sip_transport p);
/* A Via transport or URI transport parameter (any case) -> the transport;
 * -1 when it names none we carry (SCTP, garbage). */
int sip_transport_from_name(str_t name);

struct sip_uri;
/* The transport a sip:/sips: URI asks for (RFC 3261 §19.1.2 with RFC 3263
 * §4.1 reduced to the transport parameter; RFC 5630 §3: sips means TLS on
 * the hop, so sips + tcp is TLS and sips + ws is WSS, RFC 7118 §5.2).
 * No parameter: UDP for sip:, TLS for sips:. -1 for other schemes, for a
 * transport we do not carry, and for sips with transport=udp (no TLS over
 * UDP). */
int sip_uri_transport(const struct sip_uri *u);
/* The port a URI without one means on proto: 5061 for TLS (RFC 3261
 * §19.1.2), 80/443 for WS/WSS (RFC 7118 §5.2: HTTP's), else 5060. */
uint16_t sip_transport_default_port(enum sip_transport p);

#endif
