/* upper_service.c — the upper role's service API (upper.h): devices,
 * channels and streams named by id for callers outside the role (the HTTP
 * routes in src/api/routes_gb.c), so they need none of its structs. Each
 * call finds the device or stream, then hands over to the role's own code;
 * nothing here keeps a pointer across calls, because a device or stream may
 * go away between two requests. */
#include <errno.h>

#include "gb/upper/upper_int.h"

bool gb_upper_has_device(struct gb_upper *g, const char *id) { return gb_device_find(g, id) != NULL; }

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
    return d ? gb_stream_play(g, d, channel, tcp, dump, start, end, wt) : -ENOENT;
}

int gb_upper_stream_stop(struct gb_upper *g, const char *sid, const char *reason)
{
    struct gb_stream *s = gb_stream_find(g, sid);
    if (!s) return -ENOENT;
    gb_stream_stop(s, reason, true);
    return 0;
}
