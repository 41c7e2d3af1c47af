/* routes_gb_lower.h — the /api/v1/gb/... routes of the GB lower platform role
 * (src/api/routes_gb_lower.c): the local directory and the registrations to
 * the upper platforms, served through the role's public header
 * (gb/lower/lower.h) alone. */
#ifndef CASCADE_API_ROUTES_GB_LOWER_H
#define CASCADE_API_ROUTES_GB_LOWER_H

struct api_server;
struct gb_lower;

/* GET/POST/DELETE /api/v1/gb/channels, GET /api/v1/gb/upstreams on api
 * (NULL: nothing), served by l. A route that cannot be added is logged. */
void api_routes_gb_lower(struct api_server *api, struct gb_lower *l);

#endif
