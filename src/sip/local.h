/* local.h — who this node is on the SIP side, as the roles need it: the
 * domain it serves, the digest realm, the host and ports it puts in Via,
 * Contact and Record-Route, and its User-Agent/Server string. The app fills
 * one once the listeners are bound and hands roles a const pointer; nothing
 * in it changes while they run. */
#ifndef CASCADE_SIP_LOCAL_H
#define CASCADE_SIP_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "sip/proto.h"

struct sip_local {
    char domain[128];          /* [sip] domain */
    char realm[128];           /* [auth] realm, else the domain */
    char host[64];             /* Via/Contact/Record-Route host (IPv6 without brackets) */
    uint16_t port[SIP_TRANSPORT_COUNT]; /* first listener of each transport; 0: none */
    char user_agent[64];       /* [sip] user_agent: User-Agent / Server value */
};

/* The port to name in a Via or Record-Route for proto: its listener's, else
 * (a connection we opened on a transport we do not listen on: responses come
 * back on that connection anyway) the UDP, then the TCP listener's. */
static inline uint16_t sip_local_port(const struct sip_local *l, enum sip_transport proto)
{
    if (l->port[proto]) return l->port[proto];
    return l->port[SIP_TRANSPORT_UDP] ? l->port[SIP_TRANSPORT_UDP] : l->port[SIP_TRANSPORT_TCP];
}

/* host as it goes into a header we write (Via sent-by, Contact,
 * Record-Route, Path, From/To/Call-ID hosts): an IPv6 literal gets its
 * brackets (RFC 3261 §25.1 IPv6reference: "::1" -> "[::1]"), anything else,
 * a bracketed literal included, is copied as it is. An SDP c= line is not a
 * header: it takes the bare address (RFC 4566 §5.7). Returns the length
 * written, truncated to cap - 1 like snprintf (cap > 0). */
size_t sip_host_for_header(const char *host, char *out, size_t cap);

#endif
