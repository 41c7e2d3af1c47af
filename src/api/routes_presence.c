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
#include "base/clock.h"
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

/* ---- GET /users/{name}/subscriptions: this node's, or every node's
 * ([redis] mirror_presence: read from the cluster, answered later) ---- */

struct list_ctx {
    struct api_request *req;
    struct subs *s;
    void *handle;         /* the cluster read in flight */
    bool answered, later; /* later: subs_records returned, the callback frees */
    char name[128];
};

static void on_records(void *arg, int status, const struct subs_record *r, size_t n)
{
    struct list_ctx *c = arg;
    c->answered = true;
    if (status < 0) {
        api_reply_error(c->req, 503, "redis-unavailable", "the subscriptions could not be read from Redis (%s)",
                        strerror(-status));
    } else {
        json_t *list = json_array();
        int64_t now = clock_wall_ms();
        for (size_t i = 0; i < n && list; i++) {
            char when[40];
            clock_iso8601(when, sizeof(when), r[i].expires_wall_ms, 1);
            json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "id", r[i].id, "watcher", r[i].watcher, "event",
                                  r[i].event, "node", r[i].node ? r[i].node : "", "expires", when, "expires_in",
                                  (json_int_t)((r[i].expires_wall_ms - now + 999) / 1000));
            if (o && r[i].node_alive >= 0) json_object_set_new(o, "node_alive", json_boolean(r[i].node_alive));
            json_array_append_new(list, o);
        }
        api_reply_json(c->req, 200,
                       json_pack("{s:s,s:s,s:o*}", "user", c->name, "scope", c->handle ? "cluster" : "node",
                                 "subscriptions", list));
    }
    if (c->later) free(c);
}

static void on_list_abort(struct api_request *req, void *arg)
{
    (void)req;
    struct list_ctx *c = arg;
    subs_records_cancel(c->s, c->handle);
    free(c);
}

static void subs_list(struct api_request *req, void *user)
{
    struct subs *s = user;
    const char *name = known_user(subs_presence(s), req);
    if (!name) return;
    struct list_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        api_reply_error(req, 500, "no-memory", "%s", "no memory");
        return;
    }
    c->req = req;
    c->s = s;
    snprintf(c->name, sizeof(c->name), "%s", name);
    int rc = subs_records(s, c->name, on_records, c, &c->handle);
    if (rc == 1 && !c->answered) {
        c->later = true;
        api_on_abort(req, on_list_abort, c);
        return;
    }
    if (rc < 0) api_reply_error(req, 503, "redis-unavailable", "the subscriptions could not be asked (%s)", strerror(-rc));
    free(c);
}

void api_routes_presence(struct api_server *api, struct subs *s)
{
    if (!api || !s) return;
    struct presence *p = subs_presence(s);
    api_route(api, "GET", "/api/v1/users/{name}/presence/allow", allow_get, p);
    api_route(api, "PUT", "/api/v1/users/{name}/presence/allow", allow_put, p);
    api_route(api, "GET", "/api/v1/users/{name}/subscriptions", subs_list, s);
}
