/* routes_messages.h — the HTTP API route of offline instant messages
 * (routes_messages.c). src/app calls this once the API server and the
 * offline message store (subs/offline_msg.h) exist. */
#ifndef CASCADE_API_ROUTES_MESSAGES_H
#define CASCADE_API_ROUTES_MESSAGES_H

struct api_server;
struct offline_msg;

/* Adds GET /api/v1/messages. NULL api or o: nothing. */
void api_routes_messages(struct api_server *api, struct offline_msg *o);

#endif
