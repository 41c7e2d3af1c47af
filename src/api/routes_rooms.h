/* routes_rooms.h — the HTTP face of the SFU (src/api/routes_rooms.c): WHIP
 * (RFC 9725) and WHEP publish and view with one POST of an SDP offer, the
 * rooms and participants as JSON, the "media" stats and the
 * cascade_media_* metrics. Served through media/sfu.h alone. */
#ifndef CASCADE_API_ROUTES_ROOMS_H
#define CASCADE_API_ROUTES_ROOMS_H

struct api_server;
struct sfu;

/* Registers on api (NULL: nothing):
 *   POST   /api/v1/whip/{room}                 publish (application/sdp offer → 201 answer + Location)
 *   DELETE /api/v1/whip/{room}/{id}            leave;  PATCH: 405 (no trickle ICE: we are ICE-lite)
 *   POST   /api/v1/whep/{room}[?participant=]  view the room's publisher (or that one)
 *   DELETE /api/v1/whep/{room}/{id}            leave;  PATCH: 405
 *   GET    /api/v1/rooms, /api/v1/rooms/{room}
 *   DELETE /api/v1/rooms/{room}, /api/v1/rooms/{room}/participants/{id}
 * WHIP and WHEP are cross-origin routes (CORS, see api/http.h).
 * s NULL (the media plane is off): the routes answer 503 saying so, and no
 * stats or metrics are added. Times the SFU stamps (rooms created,
 * participants joined) are taken to be the API loop's uv_now() and shown as
 * wall-clock ISO-8601. */
void api_routes_rooms(struct api_server *api, struct sfu *s);

/* The room WebSocket and its join tokens (ws_rooms.c, docs/api.md "Room
 * WebSocket"): GET /api/v1/rooms/{room}/ws and POST
 * /api/v1/rooms/{room}/tokens. secret signs the tokens (HMAC-SHA256);
 * NULL or "": a random one (logged: tokens then die with the process).
 * Called by api_routes_rooms' caller once; 0 or a negative errno. */
int api_rooms_ws_start(struct api_server *srv, struct sfu *s, const char *secret);

#endif
