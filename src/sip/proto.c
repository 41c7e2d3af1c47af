/* proto.c — transport names (see proto.h). */
#include "sip/proto.h"

#include "sip/msg.h"

static const char *const via_names[SIP_TRANSPORT_COUNT] = {"UDP", "TCP", "TLS", "WS", "WSS"};
static const char *const params[SIP_TRANSPORT_COUNT] = {"udp", "tcp", "tls", "ws", "wss"};

const char *sip_transport_via_name(enum sip_transport p)
{
    return (unsigned)p < SIP_TRANSPORT_COUNT ? via_names[p] : "UDP";
}

const char *sip_transport_param(enum sip_transport p)
{
    return (unsigned)p < SIP_TRANSPORT_COUNT ? params[p] : "udp";
}

int sip_transport_from_name(str_t name)
{
    for (int i = 0; i < SIP_TRANSPORT_COUNT; i++)
        if (str_ieq_cstr(name, params[i])) return i;
    return -1;
}

int sip_uri_transport(const struct sip_uri *u)
{
    bool secure = u->scheme == SIP_SCHEME_SIPS;
    if (!secure && u->scheme != SIP_SCHEME_SIP) return -1;
    if (!u->transport.len) return secure ? SIP_TRANSPORT_TLS : SIP_TRANSPORT_UDP;
    int t = sip_transport_from_name(u->transport);
    if (t < 0 || !secure) return t;
    /* sips: the hop is secured whatever the parameter says */
    switch (t) {
    case SIP_TRANSPORT_TCP:
    case SIP_TRANSPORT_TLS: return SIP_TRANSPORT_TLS;
    case SIP_TRANSPORT_WS:
    case SIP_TRANSPORT_WSS: return SIP_TRANSPORT_WSS;
    default: return -1;
    }
}

uint16_t sip_transport_default_port(enum sip_transport p)
{
    switch (p) {
    case SIP_TRANSPORT_TLS: return 5061;
    case SIP_TRANSPORT_WS: return 80;
    case SIP_TRANSPORT_WSS: return 443;
    default: return 5060;
    }
}
