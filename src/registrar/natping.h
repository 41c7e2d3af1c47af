/* natping.h — keeping UDP bindings behind NAT reachable.
 *
 * A UDP binding is "behind NAT" when its REGISTER says so the way Kamailio's
 * nat_uac_test(1|2|16|32) does (natping_request_natted): the registrar flags
 * it LOCATION_FLAG_NAT and requests to it go to that source address. A
 * NAT forgets an idle UDP mapping after 30 s to a few minutes, so every
 * [registrar] nat_ping_interval seconds each such binding gets a stateless
 * OPTIONS at its source address, from our listening socket — what Kamailio's
 * nathelper calls SIP pings. The pings are spread over the interval (each
 * second, the bindings whose contact hashes to that second), and their
 * answers are counted and dropped (natping_on_response). 0 turns it off.
 * A binding that answered none of its last [registrar] nat_ping_max_lost
 * pings (any answer counts, even an error: the UA is there) is removed with
 * reason "unreachable" (user.offline when it was the last one); 0 keeps
 * such bindings until they expire.
 * Loop thread only. */
#ifndef CASCADE_REGISTRAR_NATPING_H
#define CASCADE_REGISTRAR_NATPING_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "base/str.h"
#include "base/timer.h"
#include "sip/local.h"
#include "transport/transport.h"
#include "ua/ua.h"

struct location;
struct location_binding;
struct sip_uri;
struct sip_via;

struct natping;

/* What the pings work with (borrowed; must outlive the natping). */
struct natping_deps {
    uint32_t interval_s;             /* [registrar] nat_ping_interval; 0: off */
    uint32_t max_lost;               /* [registrar] nat_ping_max_lost; 0: never remove */
    const struct sip_local *local;   /* Via host/port, From domain */
    struct location *location;       /* may be NULL until natping_set_location */
    struct timer_service *timers;
    struct ua *ua;                   /* From tags */
    ua_send_fn send;                 /* one datagram from our UDP socket */
    void *send_arg;
};

#define NATPING_BRANCH_PREFIX "z9hG4bKnP"

/* Whether a UDP REGISTER with top Via via, carrying contact, came from src
 * through a NAT:
 *   - the Via sent-by host is not src's IP (a name counts as different, as
 *     nat_uac_test's "received" test without DNS), or
 *   - the Via sent-by port (5060 when absent) is not src's port, or
 *   - the Contact host is a private or shared address (RFC 1918, RFC 6598,
 *     169.254/16, fc00::/7, fe80::/10) while src is not.
 * A Contact naming just another port or address than src is NOT behind NAT
 * by itself: a UA that sends from one socket and listens on another, or a
 * third-party registration; requests then go to the Contact. */
bool natping_request_natted(const struct sip_via *via, const struct sip_uri *contact,
                            const struct sockaddr_storage *src);

/* NULL when d->interval_s is 0 or on allocation failure (logged). */
struct natping *natping_new(const struct natping_deps *d);
/* The location service whose bindings are pinged. NULL np is ignored. */
void natping_set_location(struct natping *np, struct location *loc);
void natping_free(struct natping *np);

/* 1 when rx answers one of our pings (counted, nothing else to do), else 0. */
int natping_on_response(struct natping *np, const struct transport_rx *rx);

/* b was refreshed by a REGISTER: its UA is alive, its unanswered count
 * starts again. NULL np is ignored. */
void natping_refreshed(struct natping *np, const struct location_binding *b);

/* Adds "nat_pings_sent", "nat_pings_answered", "nat_bindings" and
 * "nat_unreachable_removed" to o. */
void natping_stats_json(const struct natping *np, json_t *o);

#endif
