/* natping.h — keeping UDP bindings behind NAT reachable.
 *
 * A UDP binding is "behind NAT" when its Contact names another address or
 * port than the one its REGISTER came from (the registrar flags it
 * LOCATION_FLAG_NAT; requests to it already go to that source address). A
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
#include "transport/transport.h"

struct location_binding;
struct sip_uri;

struct worker;
struct natping;

#define NATPING_BRANCH_PREFIX "z9hG4bKnP"

/* Whether a UDP Contact (its parsed URI) is not the address the REGISTER
 * came from: another IP, another port (5060 when absent), or a host name
 * (we cannot tell: treat it as NAT). */
bool natping_contact_natted(const struct sip_uri *contact, const struct sockaddr_storage *src);

/* NULL when [registrar] nat_ping_interval is 0 or on allocation failure
 * (logged). Uses w->timers, w->location, w->transport at ping time. */
struct natping *natping_new(struct worker *w);
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
