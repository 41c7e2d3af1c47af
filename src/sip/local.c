/* local.c — writing our host into headers (see local.h). */
#include "sip/local.h"

#include <string.h>

size_t sip_host_for_header(const char *host, char *out, size_t cap)
{
    size_t n = strlen(host);
    /* A colon outside brackets can only be an IPv6 literal: a host name
     * or IPv4 address has none, and the port is never part of host. */
    bool v6 = n && host[0] != '[' && memchr(host, ':', n);
    size_t w = 0;
    if (v6 && w + 1 < cap) out[w++] = '[';
    for (size_t i = 0; i < n && w + 1 < cap; i++) out[w++] = host[i];
    if (v6 && w + 1 < cap) out[w++] = ']';
    out[w] = '\0';
    return w;
}
