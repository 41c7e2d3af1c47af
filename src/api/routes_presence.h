/* routes_presence.h — the presence package's HTTP API (routes_presence.c):
 * a user's allow list of watchers (who may subscribe to its presence under
 * [subscriptions] presence_policy = allowlist). src/app calls this once the
 * API server and the notifier exist. */
#ifndef CASCADE_API_ROUTES_PRESENCE_H
#define CASCADE_API_ROUTES_PRESENCE_H

struct api_server;
struct subs;

/* Adds GET and PUT /api/v1/users/{name}/presence/allow and GET
 * /api/v1/users/{name}/subscriptions (this node's, or with [redis]
 * mirror_presence every node's, read from the cluster). NULL api or s:
 * nothing. */
void api_routes_presence(struct api_server *api, struct subs *s);

#endif
