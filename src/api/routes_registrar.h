/* routes_registrar.h — the registrar's HTTP API routes (routes_registrar.c):
 * registrations (list, kick), users (list, create, delete) and the
 * registrar's Prometheus metrics. They use only the registrar's public
 * header (registrar/registrar.h); src/app calls this once the API server
 * and the registrar exist. */
#ifndef CASCADE_API_ROUTES_REGISTRAR_H
#define CASCADE_API_ROUTES_REGISTRAR_H

struct api_server;
struct registrar;

/* Adds GET /api/v1/registrations, DELETE /api/v1/registrations/{user},
 * GET/POST /api/v1/users, DELETE /api/v1/users/{name} and the gauges
 * cascade_bindings, cascade_registered_aors, cascade_users and the counter
 * family cascade_register_answers_total. NULL api or r: nothing. */
void api_routes_registrar(struct api_server *api, struct registrar *r);

#endif
