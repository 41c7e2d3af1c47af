/* offline_msg.h — instant messages (RFC 3428 MESSAGE) kept for users who
 * cannot take them now, and handed over at their next registration.
 *
 * The proxy offers a MESSAGE outside a dialog for a local user here when
 * the user has no binding, or when every branch ended 408, 480, 503 or
 * without an answer (registered but unreachable). Taken, it is answered
 * 202 Accepted (RFC 3428 §7: accepted, not yet delivered) and written to
 * the store; over the user's quota ([messages] max_per_user,
 * max_bytes_per_user) or over max_body it is refused with 480 and a reason
 * phrase that says so. After the user's next successful REGISTER (the
 * registrar's on_registered hook, once the 200 is sent) cascade sends the
 * kept messages one at a time, oldest first, as its own MESSAGE requests:
 * From is the original sender, To the original To, a Date header says when
 * the message reached cascade, the body and Content-Type are the sender's.
 * A 2xx marks a message delivered; any other answer stops the run and the
 * rest waits for a later registration, so each is delivered in order and,
 * as far as this node knows, once. A periodic sweep marks queued messages
 * older than max_age expired and forgets delivered and expired ones
 * max_age after their last change (the API shows them until then). Once
 * delivered or expired a message's body is dropped from the store.
 *
 * Events (when a bus is given): message.stored, message.delivered,
 * message.expired, each with id, user and from.
 *
 * Wiring (src/app): o = offline_msg_new(&deps); offline_msg_load(o);
 * proxy_deps.offline = offline_msg_take; registrar_set_on_registered(reg,
 * offline_msg_on_registered, o); offline_msg_free() before the UA and the
 * location are freed. Loop thread only. */
#ifndef CASCADE_SUBS_OFFLINE_MSG_H
#define CASCADE_SUBS_OFFLINE_MSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/timer.h"
#include "registrar/registrar.h"
#include "sip/msg.h"
#include "ua/ua.h"

struct config_section;
struct event_bus;
struct store;
struct offline_msg;

struct offline_msg_config { /* [messages] */
    bool offline;              /* keep MESSAGEs for offline users; no: 480 as before */
    int max_per_user;          /* queued messages per user */
    int max_bytes_per_user;    /* queued body bytes per user */
    int max_body;              /* bytes of one body */
    int max_age;               /* seconds a message waits; also how long a final state is shown */
};
extern const struct config_section offline_msg_config_section; /* offline_msg_config.c */

struct offline_msg_deps {
    const struct offline_msg_config *cfg; /* copied */
    struct registrar *registrar;          /* the location service (bindings to deliver to) */
    struct ua *ua;                        /* the MESSAGE transactions */
    struct timer_service *timers;         /* the sweep */
    struct store *store;                  /* NULL: messages live in memory only */
    struct event_bus *events;             /* NULL: no events */
    int64_t (*wall_ms)(void);             /* the wall clock; NULL: clock_wall_ms */
};

/* NULL on allocation failure. Every pointer must outlive the object. */
struct offline_msg *offline_msg_new(const struct offline_msg_deps *d);
/* Reloads the store's messages (queued ones past max_age become expired).
 * Returns how many were loaded, or a negative errno. */
int offline_msg_load(struct offline_msg *o);
/* Detaches deliveries in flight (their messages stay queued) and frees all. */
void offline_msg_free(struct offline_msg *o);

/* The proxy's offer (see the top): req is a MESSAGE outside a dialog for
 * local user aor. Returns 202 when it is kept, 480 with *reason set when it
 * is refused (quota, size), or 0 when not taken (off, a body with a NUL, no
 * memory): the proxy answers as it would have. */
int offline_msg_take(void *o, const struct sip_msg *req, const char *aor, const char **reason);
/* The registrar answered a REGISTER of aor with 200 and the AoR has a
 * binding: the kept messages go to the newest binding. */
void offline_msg_on_registered(void *o, const char *aor);

/* GET /api/v1/messages: an array of {id, user, from, to, content_type,
 * size, received, state, updated} in arrival order (times ISO 8601 UTC);
 * user and state (may be NULL or "") filter. NULL on allocation failure. */
json_t *offline_msg_list_json(const struct offline_msg *o, const char *user, const char *state);
/* "queued", "delivered" or "expired". */
bool offline_msg_state_valid(const char *state);

struct offline_msg_stats {
    uint32_t queued;           /* messages waiting */
    uint64_t stored;           /* taken (202) */
    uint64_t refused;          /* 480 for quota or size */
    uint64_t delivered;        /* 2xx from the user */
    uint64_t expired;          /* past max_age undelivered */
    uint64_t delivery_failures;/* non-2xx answers to our MESSAGEs */
};
void offline_msg_get_stats(const struct offline_msg *o, struct offline_msg_stats *out);
/* Adds "offline_messages": {...} to a /stats object. */
void offline_msg_stats_json(const struct offline_msg *o, json_t *stats);

#endif
