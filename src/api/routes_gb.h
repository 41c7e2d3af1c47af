/* routes_gb.h — the /api/v1/gb/... routes of the GB28181 upper role
 * (routes_gb.c; shapes in docs/api.md) and its two gauges on /metrics. The
 * app calls it once, after both the API server and the role exist; the
 * routes reach the role through its service API (gb/upper/upper.h). */
#ifndef CASCADE_API_ROUTES_GB_H
#define CASCADE_API_ROUTES_GB_H

struct api_server;
struct gb_upper;

/* Registers the routes with g as their user pointer (nothing when either is NULL). */
void api_routes_gb_upper(struct api_server *api, struct gb_upper *g);

#endif
