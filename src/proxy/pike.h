/* pike.h — how many new requests one source may send the proxy (in the
 * spirit of Kamailio's pike module): at most `limit` per source IP address
 * in each window of `window_ms`; beyond, the proxy refuses them (503) until
 * the window ends. Bounds what one unauthenticated sender can make us fork
 * (issue 9: one INVITE to a user with 32 contacts became 224 INVITEs).
 *
 *   struct proxy_pike *pk = proxy_pike_new(30, 2000);
 *   switch (proxy_pike_check(pk, (const struct sockaddr *)&rx->src, now_ms)) { ... }
 *   proxy_pike_free(pk);
 *
 * Fixed memory (base/assoc): PIKE_SLOTS entries in buckets of PIKE_PROBE,
 * the bucket picked by a seeded hash of the address; when every way of the
 * bucket holds another live source, the one whose window is oldest is taken
 * over (a flood of spoofed sources can push a
 * real one out, and then it starts a fresh window: it is never refused for
 * somebody else's requests). Reads no clock: the caller passes now_ms. */
#ifndef CASCADE_PROXY_PIKE_H
#define CASCADE_PROXY_PIKE_H

#include <stdint.h>

struct sockaddr;
struct proxy_pike;

#define PIKE_SLOTS 4096
#define PIKE_PROBE 8

enum proxy_pike_verdict {
    PROXY_PIKE_PASS = 0,
    PROXY_PIKE_REFUSE_FIRST,  /* the first refusal of this source in this window: log it */
    PROXY_PIKE_REFUSE,        /* refused again in the same window (already logged) */
};

/* limit 0: every request passes. NULL on allocation failure. */
struct proxy_pike *proxy_pike_new(uint32_t limit, uint32_t window_ms);
void proxy_pike_free(struct proxy_pike *pk);
/* Counts one request from sa (AF_INET/AF_INET6; others pass). */
enum proxy_pike_verdict proxy_pike_check(struct proxy_pike *pk, const struct sockaddr *sa, uint64_t now_ms);
/* Requests the source at sa sent in its current window (0 when unknown). */
uint32_t proxy_pike_count(const struct proxy_pike *pk, const struct sockaddr *sa);

#endif
