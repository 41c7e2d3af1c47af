/* routes_gb_lower.c — the /api/v1/gb/... routes of the lower platform role
 * (shapes in docs/api.md): the local directory a lower node serves upward
 * (GET/POST/DELETE /gb/channels; GET also lists a middle node's relayed
 * channels with the device they live on; POST takes one channel or an import
 * {"channels":[...]}) and the state of the registrations to our upper
 * platforms (GET /gb/upstreams, with the streams we send them). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/routes_gb_lower.h"

#include "api/http.h"
#include "base/log.h"
#include "gb/codec/gbid.h"
#include "gb/lower/lower.h"

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* One JSON object -> channel input (strings borrowed from o). -1 when a
 * field has the wrong type. */
static int channel_in(json_t *o, struct gb_lower_channel_in *in)
{
    static const char *const keys[] = {"id", "name", "parent_id", "status", "manufacturer", "model",
                                       "civil_code", "address", "media"};
    if (!json_is_object(o)) return -1;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (v && !json_is_string(v) && !json_is_null(v)) return -1;
    }
    memset(in, 0, sizeof(*in));
    in->id = jstr(o, "id");
    in->name = jstr(o, "name");
    in->parent_id = jstr(o, "parent_id");
    in->status = jstr(o, "status");
    in->manufacturer = jstr(o, "manufacturer");
    in->model = jstr(o, "model");
    in->civil_code = jstr(o, "civil_code");
    in->address = jstr(o, "address");
    in->media = jstr(o, "media");
    return 0;
}

/* GET /gb/channels[?local=1]: local=1 leaves out a middle node's relayed
 * channels; ?relayed=1[&device=ID]: the relayed part alone, as catalog
 * items (what a middle node on another cascade node merges into its
 * directory; answered from this node's own devices, never asked further). */
static void channels_list(struct api_request *req, void *user)
{
    const char *local = api_query(req, "local");
    const char *relayed = api_query(req, "relayed");
    if (relayed && strcmp(relayed, "0")) {
        const char *dev = api_query(req, "device");
        if (dev && !gb_id_valid(str_from_cstr(dev))) {
            api_reply_error(req, 400, "bad-request", "%s", "device: not a 20-digit GB id");
            return;
        }
        json_t *o = gb_lower_relayed_json(user, dev);
        if (!o) api_reply_error(req, 500, "no-memory", "%s", "out of memory");
        else api_reply_json(req, 200, o);
        return;
    }
    api_reply_json(req, 200, gb_lower_channels_json(user, local && strcmp(local, "0")));
}

static void channels_import(struct api_request *req, struct gb_lower *l, json_t *arr)
{
    size_t n = json_array_size(arr);
    if (n > GB_LOWER_MAX_CHANNELS) {
        api_reply_error(req, 413, "too-many", "at most %d channels", GB_LOWER_MAX_CHANNELS);
        return;
    }
    struct gb_lower_channel_in *in = calloc(n ? n : 1, sizeof(*in));
    if (!in) {
        api_reply_error(req, 500, "no-memory", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (channel_in(json_array_get(arr, i), &in[i]) != 0) {
            free(in);
            api_reply_error(req, 400, "bad-request", "channels[%zu] is not a channel object", i);
            return;
        }
    size_t bad = 0;
    int rc = gb_lower_channel_set_many(l, in, n, &bad);
    free(in);
    if (rc == -EINVAL) {
        log_warn("api %s: channel import refused at entry %zu", api_remote(req), bad);
        api_reply_error(req, 400, "bad-channel", "channels[%zu]: bad id (20 digits), status (ON/OFF) or field", bad);
    } else if (rc == -ENOSPC) {
        api_reply_error(req, 507, "too-many", "the directory would exceed %d channels", GB_LOWER_MAX_CHANNELS);
    } else if (rc != 0) {
        api_reply_error(req, 500, "internal", "import failed (%d)", rc);
    } else {
        api_reply_json(req, 200, json_pack("{s:I,s:I}", "imported", (json_int_t)n, "channels",
                                           (json_int_t)gb_lower_channel_count(l)));
    }
}

static void channels_add(struct api_request *req, void *user)
{
    struct gb_lower *l = user;
    json_t *b = api_body(req);
    if (!json_is_object(b)) {
        api_reply_error(req, 400, "bad-request", "a JSON object is expected");
        return;
    }
    json_t *arr = json_object_get(b, "channels");
    if (arr) {
        if (!json_is_array(arr)) api_reply_error(req, 400, "bad-request", "\"channels\" must be an array");
        else channels_import(req, l, arr);
        return;
    }
    struct gb_lower_channel_in in;
    if (channel_in(b, &in) != 0) {
        api_reply_error(req, 400, "bad-request", "channel fields must be strings");
        return;
    }
    int rc = gb_lower_channel_set(l, &in);
    if (rc == -EINVAL) {
        log_warn("api %s: channel '%s' refused", api_remote(req), in.id ? in.id : "");
        api_reply_error(req, 400, "bad-channel", "bad id (20 digits), status (ON/OFF) or field");
        return;
    }
    if (rc == -ENOSPC) {
        api_reply_error(req, 507, "too-many", "at most %d channels", GB_LOWER_MAX_CHANNELS);
        return;
    }
    if (rc != 0) {
        api_reply_error(req, 500, "internal", "channel not saved (%d)", rc);
        return;
    }
    json_t *all = gb_lower_channels_json(l, true);
    json_t *list = json_object_get(all, "channels");
    json_t *found = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
        if (!strcmp(jstr(v, "id") ? jstr(v, "id") : "", in.id)) found = v;
    api_reply_json(req, 201, found ? json_incref(found) : json_object());
    json_decref(all);
}

static void channels_delete(struct api_request *req, void *user)
{
    const char *id = api_param(req, "id");
    if (gb_lower_channel_delete(user, id) != 0) {
        api_reply_error(req, 404, "not-found", "no local channel %s", id ? id : "");
        return;
    }
    api_reply_json(req, 200, json_pack("{s:i}", "removed", 1));
}

static void upstreams_list(struct api_request *req, void *user)
{
    struct gb_lower *l = user;
    json_t *o = gb_lower_upstreams_json(l);
    json_t *streams = gb_lower_streams_json(l);
    json_object_set(o, "streams", json_object_get(streams, "streams"));
    json_decref(streams);
    api_reply_json(req, 200, o);
}

void api_routes_gb_lower(struct api_server *api, struct gb_lower *l)
{
    if (!api) return;
    static const struct {
        const char *method, *pattern;
        api_handler fn;
    } routes[] = {
        {"GET", "/api/v1/gb/channels", channels_list},
        {"POST", "/api/v1/gb/channels", channels_add},
        {"DELETE", "/api/v1/gb/channels/{id}", channels_delete},
        {"GET", "/api/v1/gb/upstreams", upstreams_list},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (api_route(api, routes[i].method, routes[i].pattern, routes[i].fn, l) != 0)
            log_error("gb lower: route %s %s not registered", routes[i].method, routes[i].pattern);
}
