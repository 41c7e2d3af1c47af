/* webhook.h — delivers events to an HTTP endpoint from a worker thread.
 *
 * The loop thread calls api_webhook_push() with a serialized event; the call
 * only copies it into a bounded queue and signals the worker. The worker POSTs
 * events one at a time, in publish order, as application/json. A 2xx answer
 * ends the attempts for that event; anything else (refused, timeout, 3xx-5xx)
 * is retried after a backoff that starts at backoff_initial_ms, doubles up to
 * backoff_max_ms, and is jittered to [d/2, d] so that many nodes restarting
 * together do not hammer the receiver in step. Ordering means one event that
 * keeps failing holds back the ones behind it; the bounded queue then drops
 * the oldest waiting event (one log line each) so memory stays bounded.
 *
 * Plain http:// only (no TLS in this build). */
#ifndef CASCADE_EVENTS_WEBHOOK_H
#define CASCADE_EVENTS_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "events/events.h"

struct api_webhook;

struct api_webhook_options {
    size_t queue_max;         /* events waiting; default 10000 */
    int backoff_initial_ms;   /* default 500 */
    int backoff_max_ms;       /* default 30000 */
    int timeout_ms;           /* per POST; default 10000 */
};

/* opts may be NULL for the defaults (zero fields also take the default).
 * Returns NULL with a reason in err when the URL is unusable or the thread
 * cannot start. */
struct api_webhook *api_webhook_new(const char *url, const struct api_webhook_options *opts,
                                    char *err, size_t errcap);
/* Stops the worker promptly (an in-flight POST is abandoned) and frees what
 * was still queued, logging how many events were not delivered. */
void api_webhook_free(struct api_webhook *wh);
/* Queues a copy of json. Never blocks on the network. 0, or -1 when memory is
 * short (logged). */
int api_webhook_push(struct api_webhook *wh, uint64_t seq, const char *json, size_t len);
void api_webhook_stats(struct api_webhook *wh, struct event_webhook_stats *out);

/* Tells fn about the end of each event pushed from now on: delivered 1
 * when answered 2xx, 0 when it was dropped (queue full, webhook freed).
 * fn runs on the worker thread (delivered) or the caller's (dropped, freed),
 * with the webhook's lock held: it must not call back into the webhook. */
void api_webhook_set_done(struct api_webhook *wh, event_webhook_done_cb fn, void *arg);

#endif
