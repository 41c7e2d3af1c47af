/* routes_registrar.c — HTTP API routes of the registrar (docs/api.md):
 *
 *   GET    /api/v1/registrations[?user=U]  {"registrations":[{user,aor,contact,expires,...}]}
 *   DELETE /api/v1/registrations/{user}    kick: {"removed":N}, user.offline reason kicked
 *   GET    /api/v1/users                   {"users":[{"name","realm","created_at"}]}
 *   POST   /api/v1/users {"name","password"}  201 {"users":[{"name","realm"}]}
 *   DELETE /api/v1/users/{name}            {"removed":1,"bindings_removed":N}
 *
 * Changes answer once the store has committed them, like REGISTER does; if
 * the HTTP client leaves first, the abort callback makes the late commit a
 * no-op. Registered through api_routes_registrar() (routes_registrar.h); they
 * reach the registrar only through its public header. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/routes_registrar.h"

#include "api/http.h"
#include "auth/digest.h"
#include "base/clock.h"
#include "base/log.h"
#include "registrar/location.h"
#include "registrar/registrar.h"
#include "registrar/users.h"

#define PASSWORD_MAX 256

/* An API request waiting for a store commit. */
struct api_wait {
    struct api_request *req;   /* NULL once the client went away */
    int count;                 /* what to report */
    bool user_created;
    char name[USERS_MAX_NAME + 1];
    char realm[USERS_MAX_REALM + 1];
};

static void wait_abort(struct api_request *req, void *arg)
{
    (void)req;
    struct api_wait *aw = arg;
    aw->req = NULL;
}

static struct api_wait *wait_new(struct api_request *req)
{
    struct api_wait *aw = calloc(1, sizeof(*aw));
    if (!aw) return NULL;
    aw->req = req;
    api_on_abort(req, wait_abort, aw);
    return aw;
}

/* Detaches the abort callback before answering (the request is freed by the answer). */
static struct api_request *wait_take(struct api_wait *aw)
{
    struct api_request *req = aw->req;
    if (req) api_on_abort(req, NULL, NULL);
    aw->req = NULL;
    return req;
}

static void iso_time(json_t *o, const char *key, int64_t wall_ms)
{
    char buf[40];
    clock_iso8601(buf, sizeof(buf), wall_ms, 1);
    json_object_set_new(o, key, json_string(buf));
}

static const char *node_domain(const struct sip_local *l)
{
    return l->domain[0] ? l->domain : (l->realm[0] ? l->realm : l->host);
}

/* ---- registrations ---- */

struct reg_list {
    const struct registrar *r;
    json_t *arr;
    uint64_t now_ms;
};

static int add_binding(void *arg, const struct location_binding *b)
{
    struct reg_list *l = arg;
    json_t *o = json_object();
    if (!o) return 1;
    char aor[LOCATION_MAX_AOR + 160];
    snprintf(aor, sizeof(aor), "sip:%s@%s", b->aor, node_domain(registrar_local(l->r)));
    uint64_t left = b->expires_ms > l->now_ms ? (b->expires_ms - l->now_ms + 999) / 1000 : 0;
    json_object_set_new(o, "user", json_string(b->aor));
    json_object_set_new(o, "aor", json_string(aor));
    json_object_set_new(o, "contact", json_string(b->contact));
    json_object_set_new(o, "expires", json_integer((json_int_t)left));
    iso_time(o, "expires_at", b->expires_wall_ms);
    iso_time(o, "registered_at", b->received_wall_ms);
    json_object_set_new(o, "transport", json_string(location_transport_name(b->transport)));
    json_object_set_new(o, "remote", json_string(b->remote));
    json_object_set_new(o, "path", json_string(b->path));
    json_object_set_new(o, "nat", json_boolean(b->flags & LOCATION_FLAG_NAT));
    json_object_set_new(o, "q", json_real(b->q1000 / 1000.0));
    json_object_set_new(o, "user_agent", json_string(b->user_agent));
    json_object_set_new(o, "call_id", json_string(b->call_id));
    json_object_set_new(o, "cseq", json_integer(b->cseq));
    if (b->instance[0]) json_object_set_new(o, "instance", json_string(b->instance));
    json_object_set_new(o, "transport_lost", json_boolean(b->flags & LOCATION_FLAG_TRANSPORT_LOST));
    json_array_append_new(l->arr, o);
    return 0;
}

static void registrations_list(struct api_request *req, void *user)
{
    struct registrar *r = user;
    json_t *arr = json_array();
    struct reg_list l = {r, arr, registrar_now(r)};
    const char *who = api_query(req, "user");
    if (!arr) {
        api_reply_error(req, 500, "no-memory", "out of memory");
        return;
    }
    if (registrar_location(r)) {
        if (who) {
            const struct location_binding *bs[LOCATION_MAX_CONTACTS];
            size_t n = location_lookup(registrar_location(r), str_from_cstr(who), bs, LOCATION_MAX_CONTACTS);
            for (size_t i = 0; i < n && i < LOCATION_MAX_CONTACTS; i++) add_binding(&l, bs[i]);
        } else {
            location_foreach(registrar_location(r), add_binding, &l);
        }
    }
    api_reply_json(req, 200, json_pack("{s:o}", "registrations", arr));
}

static void kick_done(void *arg, int status)
{
    struct api_wait *aw = arg;
    struct api_request *req = wait_take(aw);
    if (req) {
        if (status == 0) api_reply_json(req, 200, json_pack("{s:i}", "removed", aw->count));
        else api_reply_error(req, 500, "store-error", "removal not stored: %s", strerror(-status));
    }
    free(aw);
}

static void registrations_kick(struct api_request *req, void *user)
{
    struct registrar *r = user;
    const char *who = api_param(req, "user");
    if (!who || !*who || strlen(who) >= LOCATION_MAX_AOR) {
        api_reply_error(req, 400, "bad-user", "a user name is required");
        return;
    }
    if (!registrar_location(r)) {
        api_reply_error(req, 503, "no-location", "the location service is not running");
        return;
    }
    struct api_wait *aw = wait_new(req);
    if (!aw) {
        api_reply_error(req, 500, "no-memory", "out of memory");
        return;
    }
    /* The count is known once the call returns; the callback may fire from
     * inside it (no store), so it reads aw->count through a pre-count. */
    const struct location_binding *bs[1];
    aw->count = (int)location_lookup(registrar_location(r), str_from_cstr(who), bs, 0);
    log_info("api: kick %s (%d binding(s)) from %s", who, aw->count, api_remote(req));
    int n = location_remove_all(registrar_location(r), str_from_cstr(who), LOCATION_REMOVED_KICKED, kick_done, aw);
    if (n < 0) {
        struct api_request *rq = wait_take(aw);
        free(aw);
        if (rq) api_reply_error(rq, 500, "location-error", "cannot remove the bindings of %s (%d)", who, n);
    }
}

/* ---- users ---- */

static int add_user(void *arg, const struct users_entry *e)
{
    json_t *arr = arg;
    json_t *o = json_pack("{s:s,s:s}", "name", e->name, "realm", e->realm ? e->realm : "");
    if (!o) return 1;
    iso_time(o, "created_at", e->created_at);
    json_object_set_new(o, "md5", json_boolean(e->ha1_md5[0] != '\0'));
    json_object_set_new(o, "sha256", json_boolean(e->ha1_sha256[0] != '\0'));
    json_array_append_new(arr, o);
    return 0;
}

static void users_list(struct api_request *req, void *user)
{
    struct registrar *r = user;
    json_t *arr = json_array();
    if (!arr) {
        api_reply_error(req, 500, "no-memory", "out of memory");
        return;
    }
    if (registrar_users(r)) users_foreach(registrar_users(r), add_user, arr);
    api_reply_json(req, 200, json_pack("{s:o}", "users", arr));
}

static void user_added(void *arg, int status)
{
    struct api_wait *aw = arg;
    struct api_request *req = wait_take(aw);
    if (req) {
        if (status == 0)
            api_reply_json(req, 201, json_pack("{s:[{s:s,s:s}]}", "users", "name", aw->name, "realm", aw->realm));
        else api_reply_error(req, 500, "store-error", "user %s not stored: %s", aw->name, strerror(-status));
    }
    free(aw);
}

static void users_create(struct api_request *req, void *user)
{
    struct registrar *r = user;
    json_t *body = api_body(req);
    const char *name = body ? json_string_value(json_object_get(body, "name")) : NULL;
    const char *password = body ? json_string_value(json_object_get(body, "password")) : NULL;
    if (!name || !users_name_ok(name)) {
        api_log_refused(req, 400, "bad-name");
        api_reply_error(req, 400, "bad-name",
                        "\"name\" must be 1..%d of the characters A-Z a-z 0-9 - _ . ! ~ * ' ( ) & = + $ , "
                        "and not \".\" or \"..\"",
                        USERS_MAX_NAME);
        return;
    }
    if (!password || !*password || strlen(password) > PASSWORD_MAX) {
        api_reply_error(req, 400, "bad-password", "\"password\" must be 1..%d characters", PASSWORD_MAX);
        return;
    }
    if (!registrar_users(r)) {
        api_reply_error(req, 503, "no-users", "the user table is not loaded");
        return;
    }
    if (!registrar_local(r)->realm[0]) {
        api_reply_error(req, 409, "no-realm", "set [auth] realm or [sip] domain first: HA1 depends on it");
        return;
    }
    char md5[65], sha[65];
    str_t n = str_from_cstr(name), realm = str_from_cstr(registrar_local(r)->realm), pw = str_from_cstr(password);
    if (auth_ha1(AUTH_ALG_MD5, n, realm, pw, md5) < 0 || auth_ha1(AUTH_ALG_SHA256, n, realm, pw, sha) < 0) {
        api_reply_error(req, 500, "crypto-error", "cannot compute HA1");
        return;
    }
    struct api_wait *aw = wait_new(req);
    if (!aw) {
        api_reply_error(req, 500, "no-memory", "out of memory");
        return;
    }
    snprintf(aw->name, sizeof(aw->name), "%s", name);
    snprintf(aw->realm, sizeof(aw->realm), "%s", registrar_local(r)->realm);
    int rc = users_add(registrar_users(r), name, registrar_local(r)->realm, md5, sha, user_added, aw);
    if (rc < 0) {
        struct api_request *rq = wait_take(aw);
        free(aw);
        if (rq) api_reply_error(rq, rc == -EINVAL ? 400 : 500, "refused", "user %s refused (%s)", name, strerror(-rc));
        return;
    }
    log_info("api: user %s added from %s", name, api_remote(req));
}

struct user_del {
    struct api_wait *aw;
    int writes;
    int status;
};

static void user_del_done(void *arg, int status)
{
    struct user_del *d = arg;
    if (status && !d->status) d->status = status;
    if (--d->writes) return;
    struct api_request *req = wait_take(d->aw);
    if (req) {
        if (d->status == 0) api_reply_json(req, 200, json_pack("{s:i,s:i}", "removed", 1, "bindings_removed", d->aw->count));
        else api_reply_error(req, 500, "store-error", "removal not stored: %s", strerror(-d->status));
    }
    free(d->aw);
    free(d);
}

static void users_delete(struct api_request *req, void *user)
{
    struct registrar *r = user;
    const char *name = api_param(req, "name");
    if (!name || !*name || !registrar_users(r) || !users_find(registrar_users(r), str_from_cstr(name))) {
        api_reply_error(req, 404, "not-found", "no user %s", name ? name : "");
        return;
    }
    struct user_del *d = calloc(1, sizeof(*d));
    struct api_wait *aw = d ? wait_new(req) : NULL;
    if (!aw) {
        free(d);
        api_reply_error(req, 500, "no-memory", "out of memory");
        return;
    }
    d->aw = aw;
    /* Two writes to wait for; the guard reference keeps d alive while both are queued. */
    d->writes = 3;
    if (users_del(registrar_users(r), name, user_del_done, d) < 0) d->writes--;
    /* A deleted user must not stay reachable: its bindings go too (kicked). */
    if (registrar_location(r)) {
        const struct location_binding *bs[1];
        aw->count = (int)location_lookup(registrar_location(r), str_from_cstr(name), bs, 0);
        if (location_remove_all(registrar_location(r), str_from_cstr(name), LOCATION_REMOVED_KICKED, user_del_done, d) < 0)
            d->writes--;
    } else {
        d->writes--;
    }
    log_info("api: user %s deleted from %s", name, api_remote(req));
    user_del_done(d, 0);
}

/* ---- Prometheus ---- */

static double metric_bindings(void *arg)
{
    const struct registrar *r = arg;
    return registrar_location(r) ? (double)location_count(registrar_location(r)) : 0;
}

static double metric_aors(void *arg)
{
    const struct registrar *r = arg;
    return registrar_location(r) ? (double)location_aor_count(registrar_location(r)) : 0;
}

static double metric_users(void *arg)
{
    const struct registrar *r = arg;
    return registrar_users(r) ? (double)users_count(registrar_users(r)) : 0;
}

static void metric_registers(struct api_metric_writer *mw, void *arg)
{
    struct registrar_stats s;
    registrar_get_stats(arg, &s);
    api_metric_sample(mw, "result", "ok", (double)s.ok);
    api_metric_sample(mw, "result", "challenged", (double)s.challenged);
    api_metric_sample(mw, "result", "auth_failed", (double)s.auth_failed);
    api_metric_sample(mw, "result", "forbidden", (double)s.forbidden);
    api_metric_sample(mw, "result", "refused", (double)s.refused);
}

void api_routes_registrar(struct api_server *api, struct registrar *r)
{
    if (!r || !api) return;
    api_metric_gauge(api, "cascade_bindings", "Registered contact bindings", metric_bindings, r);
    api_metric_gauge(api, "cascade_registered_aors", "Addresses of record with at least one binding", metric_aors, r);
    api_metric_gauge(api, "cascade_users", "Provisioned SIP users", metric_users, r);
    api_metric_family(api, "cascade_register_answers_total", "REGISTER outcomes", API_METRIC_COUNTER,
                      metric_registers, r);
    api_route(api, "GET", "/api/v1/registrations", registrations_list, r);
    api_route(api, "DELETE", "/api/v1/registrations/{user}", registrations_kick, r);
    api_route(api, "GET", "/api/v1/users", users_list, r);
    api_route(api, "POST", "/api/v1/users", users_create, r);
    api_route(api, "DELETE", "/api/v1/users/{name}", users_delete, r);
}
