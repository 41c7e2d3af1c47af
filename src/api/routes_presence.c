/* routes_presence.c — the presence allow lists over HTTP:
 *
 *   GET /api/v1/users/{name}/presence/allow   {"user":"alice","policy":"allowlist","allow":["bob"]}
 *   PUT /api/v1/users/{name}/presence/allow   {"allow":["bob","carol"]}  -> the same object
 *
 * The list is the subscription layer's (subs/presence.h); PUT replaces it
 * whole ([] clears it) and the store keeps it. The user must exist. */
#include "api/routes_presence.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "api/http.h"
#include "base/log.h"
#include "base/str.h"
#include "subs/presence.h"
#include "subs/subs.h"

static json_t *allow_json(struct presence *p, const char *name)
{
    char names[PRESENCE_MAX_ALLOW][PRESENCE_MAX_NAME];
    size_t n = presence_allow_get(p, name, names, PRESENCE_MAX_ALLOW);
    json_t *list = json_array();
    for (size_t i = 0; i < n && list; i++) json_array_append_new(list, json_string(names[i]));
    return json_pack("{s:s,s:s,s:o*}", "user", name, "policy",
                     presence_policy_name(p), "allow", list);
}

/* The user named in the path, or NULL with 404 answered. */
static const char *known_user(struct presence *p, struct api_request *req)
{
    const char *name = api_param(req, "name");
    if (!name || !*name || !presence_user_known(p, name)) {
        api_reply_error(req, 404, "not-found", "no user %s", name ? name : "");
        return NULL;
    }
    return name;
}

static void allow_get(struct api_request *req, void *user)
{
    const char *name = known_user(user, req);
    if (name) api_reply_json(req, 200, allow_json(user, name));
}

static void allow_put(struct api_request *req, void *user)
{
    struct presence *p = user;
    const char *name = known_user(p, req);
    if (!name) return;
    json_t *list = json_object_get(api_body(req), "allow");
    if (!json_is_array(list) || json_array_size(list) > PRESENCE_MAX_ALLOW) {
        api_reply_error(req, 400, "bad-allow", "allow must be an array of at most %d user names", PRESENCE_MAX_ALLOW);
        return;
    }
    const char *names[PRESENCE_MAX_ALLOW];
    size_t n = json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        names[i] = json_string_value(json_array_get(list, i));
        if (!names[i] || !*names[i] || strlen(names[i]) >= PRESENCE_MAX_NAME || strchr(names[i], ',')) {
            api_reply_error(req, 400, "bad-allow", "allow[%zu] is not a user name (1..%d bytes, no comma)", i,
                            PRESENCE_MAX_NAME - 1);
            return;
        }
    }
    int rc = presence_allow_set(p, name, names, n);
    if (rc < 0) {
        api_reply_error(req, rc == -ENOMEM ? 500 : 400, rc == -ENOMEM ? "no-memory" : "bad-allow", "%s",
                        strerror(-rc));
        return;
    }
    log_info("api: presence allow list of %s set (%zu names) from %s", name, n, api_remote(req));
    api_reply_json(req, 200, allow_json(p, name));
}

void api_routes_presence(struct api_server *api, struct subs *s)
{
    if (!api || !s) return;
    struct presence *p = subs_presence(s);
    api_route(api, "GET", "/api/v1/users/{name}/presence/allow", allow_get, p);
    api_route(api, "PUT", "/api/v1/users/{name}/presence/allow", allow_put, p);
}
