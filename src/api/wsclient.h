/* wsclient.h — a blocking WebSocket client for the event stream, built on the
 * libwebsockets client with its own private poll loop (no libuv). Used by
 * `cascadectl events` and by the tests; never by the daemon's loop thread.
 *
 *   static int on_msg(const char *text, size_t len, void *arg) { ...; return 0; }
 *   rc = api_ws_stream(&url, "/api/v1/events?since=41", token, on_msg, arg, &stop, err, sizeof err);
 *
 * Plain ws:// only (the API has no TLS). */
#ifndef CASCADE_API_WSCLIENT_H
#define CASCADE_API_WSCLIENT_H

#include <signal.h>
#include <stddef.h>

#include "events/httpc.h"

/* Called once per complete text message (fragments are joined; messages over
 * 16 MiB end the stream). Return nonzero to stop streaming. */
typedef int (*api_ws_message_cb)(const char *text, size_t len, void *arg);

enum {
    API_WS_STOPPED = 0,    /* the callback or *stop asked to stop */
    API_WS_CLOSED = 1,     /* connected, then the server or the network closed it */
    API_WS_FAILED = -1,    /* could not connect or the upgrade was refused (err says why) */
};

/* Connects to url's host and port, upgrades target (path and query) with an
 * "Authorization: Bearer token" header when token is non-empty, and delivers
 * messages until one of the API_WS_* outcomes. stop (optional) is polled
 * between service calls, at least every 200 ms. */
int api_ws_stream(const struct api_url *url, const char *target, const char *token, api_ws_message_cb cb,
                  void *arg, volatile sig_atomic_t *stop, char *err, size_t errcap);

#endif
