/* local.h — who this node is on the SIP side, as the roles need it: the
 * domain it serves, the digest realm, the host and ports it puts in Via,
 * Contact and Record-Route, and its User-Agent/Server string. The app fills
 * one once the listeners are bound and hands roles a const pointer; nothing
 * in it changes while they run. */
#ifndef CASCADE_SIP_LOCAL_H
#define CASCADE_SIP_LOCAL_H

#include <stdint.h>

struct sip_local {
    char domain[128];          /* [sip] domain */
    char realm[128];           /* [auth] realm, else the domain */
    char host[64];             /* Via/Contact/Record-Route host (IPv6 without brackets) */
    uint16_t udp_port;         /* first UDP listener; 0: none */
    uint16_t tcp_port;         /* first TCP listener; 0: none */
    char user_agent[64];       /* [sip] user_agent: User-Agent / Server value */
};

#endif
