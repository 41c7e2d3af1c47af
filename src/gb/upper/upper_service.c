/* upper_service.c — the upper role's service API (upper.h): devices,
 * channels and streams named by id for callers outside the role (the HTTP
 * routes in src/api/routes_gb.c), so they need none of its structs. Each
 * call finds the device or stream, then hands over to the role's own code;
 * nothing here keeps a pointer across calls, because a device or stream may
 * go away between two requests. */
#include <errno.h>

#include "gb/upper/upper_int.h"

bool gb_upper_has_device(struct gb_upper *g, const char *id) { return gb_device_find(g, id) != NULL; }

bool gb_upper_device_online_here(struct gb_upper *g, const char *id)
{
    const struct gb_device *d = gb_device_find(g, id);
    return d && d->online;
}

json_t *gb_upper_device_json(struct gb_upper *g, const char *id)
{
    struct gb_device *d = gb_device_find(g, id);
    return d ? gb_device_json(g, d, true) : NULL;
}

json_t *gb_upper_channels_json(struct gb_upper *g, const char *id)
{
    struct gb_device *d = gb_device_find(g, id);
    return d ? gb_channels_tree_json(d) : NULL;
}

json_t *gb_upper_streams_json(struct gb_upper *g) { return gb_streams_json(g); }

json_t *gb_upper_stream_json(struct gb_upper *g, const char *sid)
{
    struct gb_stream *s = gb_stream_find(g, sid);
    return s ? gb_stream_json(s) : NULL;
}

int gb_upper_query(struct gb_upper *g, const char *device_id, enum gb_query_kind kind, const char *target,
                   const char *start, const char *end, struct gb_waiter *wt)
{
    struct gb_device *d = gb_device_find(g, device_id);
    return d ? gb_query_start(g, d, kind, target, start, end, wt) : -ENOENT;
}

int gb_upper_ptz(struct gb_upper *g, const char *device_id, const char *channel, const char *cmd, int speed,
                 struct gb_waiter *wt)
{
    struct gb_device *d = gb_device_find(g, device_id);
    return d ? gb_ptz_send(g, d, channel, cmd, speed, wt, NULL) : -ENOENT;
}

int gb_upper_play(struct gb_upper *g, const char *device_id, const char *channel, bool tcp, bool dump, int64_t start,
                  int64_t end, struct gb_waiter *wt)
{
    struct gb_device *d = gb_device_find(g, device_id);
    /* Known here but offline: it may have registered on another node since. */
    if (d && (d->online || !g->cluster)) return gb_stream_play(g, d, channel, tcp, dump, start, end, wt);
    return gb_play_remote(g, device_id, channel, tcp, dump, start, end, false, wt); /* another node's? */
}

bool gb_upper_plays_across_nodes(const struct gb_upper *g) { return g->cluster != NULL; }

int gb_upper_stream_stop(struct gb_upper *g, const char *sid, const char *reason)
{
    struct gb_stream *s = gb_stream_find(g, sid);
    if (!s) return -ENOENT;
    gb_stream_stop(s, reason, true);
    return 0;
}

/* ---- devices as handles (the middle node) ---- */

const char *gb_device_id(const struct gb_device *d) { return d->id; }

bool gb_device_online(const struct gb_device *d) { return d->online; }

gb_charset_t gb_device_charset(const struct gb_device *d) { return d->charset; }

const char *gb_device_info_str(const struct gb_device *d, const char *key)
{
    json_t *v = d->info ? json_object_get(d->info, key) : NULL;
    return json_is_string(v) && json_string_length(v) ? json_string_value(v) : NULL;
}

size_t gb_device_channel_count(const struct gb_device *d) { return d->channel_count; }

bool gb_device_channel(const struct gb_device *d, size_t i, struct gb_channel_view *out)
{
    const struct gb_channel *ch = i < d->channel_count ? &d->channels[i] : NULL;
    if (!ch || !ch->id) return false;
    *out = (struct gb_channel_view){
        .id = ch->id,
        .name = ch->name,
        .parent_id = ch->parent_id,
        .manufacturer = ch->manufacturer,
        .model = ch->model,
        .civil_code = ch->civil_code,
        .address = ch->address,
        .business_group_id = ch->business_group_id,
        .status = ch->status,
    };
    return true;
}

struct ua_uac *gb_device_send(struct gb_upper *g, struct gb_device *d, const char *target_id, struct ua_request *r,
                              const struct ua_uac_cb *cb, void *arg)
{
    /* gb_device_request starts from a blank request: keep the caller's
     * fields and take only the addressing from it. */
    struct ua_request addr;
    char buf[512];
    gb_device_request(g, d, target_id, &addr, buf, sizeof(buf));
    r->ruri = addr.ruri;
    r->from = addr.from;
    r->to = addr.to;
    r->local_host = addr.local_host;
    struct transport_dest dest;
    gb_device_dest(d, &dest);
    return ua_request_send(g->ua, r, &dest, NULL, cb, arg);
}
