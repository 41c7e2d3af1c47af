/* winfo.h — the watcher information template package's document (RFC 3857,
 * RFC 3858, application/watcherinfo+xml): who subscribes to a resource's
 * package, as cascade serves it for presence ("presence.winfo"): a user
 * subscribes to their own presentity's watchers and gets the whole list in
 * each NOTIFY (state "full").
 *
 *   struct winfo_watcher w = {.id = "a1b2", .uri = "sip:bob@example.com",
 *                             .status = "active", .event = "subscribe"};
 *   winfo_build(&sb, version, "sip:alice@example.com", "presence", &w, 1);
 *
 * Values are XML-escaped here. Pure: no state, any thread. */
#ifndef CASCADE_SUBS_WINFO_H
#define CASCADE_SUBS_WINFO_H

#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"

#define WINFO_CONTENT_TYPE "application/watcherinfo+xml"
#define WINFO_MAX_WATCHERS 256  /* listed in one document (the subscription caps bound them anyway) */

struct winfo_watcher {
    const char *id;            /* unique per watcher subscription (our dialog tag) */
    const char *uri;           /* the watcher's URI */
    const char *status;        /* "active" | "pending" | "waiting" | "terminated" (RFC 3858 §4.4) */
    const char *event;         /* "subscribe" | "approved" | "timeout" | "rejected" | ... */
};

/* Appends the whole document (state "full") to out. 0, or -ENOMEM. */
int winfo_build(sbuf_t *out, uint32_t version, const char *resource, const char *package,
                const struct winfo_watcher *w, size_t n);

#endif
