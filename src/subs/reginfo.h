/* reginfo.h — the reg event package's document (RFC 3680 §5.3,
 * application/reginfo+xml): one <registration> for an AoR with its
 * <contact>s, full or partial, with the document version.
 *
 *   struct reginfo_contact c = {.uri = "sip:a@192.0.2.1", .state = "active",
 *                               .event = "registered", .expires = 3600, .q1000 = 1000};
 *   reginfo_build(&sb, version, true, "sip:alice@example.com", "active", &c, 1);
 *
 * Values are XML-escaped here; nothing is validated beyond that. Pure: no
 * state, any thread. */
#ifndef CASCADE_SUBS_REGINFO_H
#define CASCADE_SUBS_REGINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "registrar/location.h"

#define REGINFO_CONTENT_TYPE "application/reginfo+xml"

struct reginfo_contact {
    const char *uri;           /* the bound contact URI (no <>) */
    const char *state;         /* "active" | "terminated" */
    const char *event;         /* registered, refreshed, expired, deactivated, unregistered, rejected, ... */
    uint32_t expires;          /* seconds left (active contacts only) */
    int q1000;                 /* q * 1000; 1000 is not written (the default) */
    const char *call_id;       /* may be NULL or "" */
    uint32_t cseq;
};

/* Appends the whole document to out. reg_state: "init" | "active" |
 * "terminated" (RFC 3680 §5.3). 0, or -ENOMEM (out failed). */
int reginfo_build(sbuf_t *out, uint32_t version, bool full, const char *aor_uri, const char *reg_state,
                  const struct reginfo_contact *contacts, size_t n);

/* The contact event attribute for a binding removed for reason (RFC 3680
 * §5.3: expired, unregistered, deactivated — its flow is gone and it may
 * come back, rejected — the administrator removed it). */
const char *reginfo_event_for_removal(enum location_reason reason);

/* Appends s XML-escaped (the five specials; control characters XML 1.0
 * cannot carry are dropped), for the other packages' documents too. */
void reginfo_put_escaped(sbuf_t *b, const char *s);

/* A short stable id for a string (contact or AoR): 8 hex digits + NUL. */
void reginfo_id(const char *s, char out[9]);

#endif
