/* proto.c — transport names (see proto.h). */
#include "sip/proto.h"

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
