/* pidf.h — the Presence Information Data Format (RFC 3863,
 * application/pidf+xml): checking what a PUBLISH carries, and composing
 * what a presence NOTIFY carries.
 *
 *   const char *why;
 *   if (pidf_validate(body, len, &why) < 0) answer 400 with why;
 *   pidf_compose(&sb, "sip:alice@example.com", docs, 2);   all tuples of both
 *   pidf_derived(&sb, "sip:alice@example.com", true, "sip:alice@192.0.2.1");
 *
 * libxml2 reads the documents: no network, no DTD (a document with one is
 * refused, so no entity can expand), at most PIDF_MAX_BODY bytes. Pure: no
 * state kept between calls; loop thread (libxml2's error hooks are global). */
#ifndef CASCADE_SUBS_PIDF_H
#define CASCADE_SUBS_PIDF_H

#include <stdbool.h>
#include <stddef.h>

#include "base/sbuf.h"

#define PIDF_CONTENT_TYPE "application/pidf+xml"
#define PIDF_NS "urn:ietf:params:xml:ns:pidf"
#define PIDF_MAX_BODY 16384  /* bytes of one published document; more is 413 */
#define PIDF_MAX_TUPLES 32   /* tuples in one document; more is 400 */

/* 0 when body is a well-formed PIDF document (RFC 3863 §4: a <presence>
 * root in the PIDF namespace with an entity, each <tuple> with an id and a
 * <status>, <basic> open or closed); -EINVAL with *why a short reason
 * (static text) otherwise; -EMSGSIZE over PIDF_MAX_BODY. */
int pidf_validate(const char *body, size_t len, const char **why);

/* What a valid document says: its tuples and how many are basic open.
 * -EINVAL when it is not valid. */
int pidf_summary(const char *body, size_t len, int *tuples, int *open);

/* One document for entity holding every top-level element (tuples, RPID
 * persons, notes) of the n valid documents docs[i] (lens[i] bytes), in
 * order, namespaces kept (RFC 3863 §4.1: the tuples of several sources
 * make up one presentity). Appends to out: 0, -EINVAL (a document did not
 * parse), -ENOMEM. */
int pidf_compose(sbuf_t *out, const char *entity, const char *const *docs, const size_t *lens, size_t n);

/* The document for a presentity nobody published for: one tuple whose
 * basic status is open when the user has a binding (contact: one of them,
 * may be NULL), closed when it has none. Appends to out: 0 or -ENOMEM. */
int pidf_derived(sbuf_t *out, const char *entity, bool open, const char *contact);

#endif
