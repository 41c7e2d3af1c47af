/* routes_gb.c — the /api/v1/gb/... routes of the upper platform role
 * (shapes in docs/api.md): devices and their administrative records,
 * catalog / info / status / records queries answered when the device has
 * answered (504 on timeout), the channel tree, PTZ, play, and streams.
 *
 * Asynchronous routes park the HTTP request on a gb_waiter; if the client
 * goes away first, api_on_abort cancels the waiter so the role never answers
 * a freed request. The role is reached through its service API (upper.h)
 * only: devices and streams by id.
 *
 * A device registered on another node of a cluster (issue 16): play and
 * live go through its node over SIP (the role's gb_upper_play); the other
 * device routes but PATCH/DELETE are forwarded to its node's API
 * (device_here_or_forward, gb_upper_forward), whose answer is the reply. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/routes_gb.h"

#include "api/http.h"
#include "base/log.h"
#include "gb/codec/gbid.h"
#include "gb/codec/mansrtsp.h"
#include "gb/upper/upper.h"
#include "media/hls.h"

struct api_wait {
    struct gb_waiter wt;
    struct api_request *req;
};

static void wait_done(struct gb_waiter *wt, int status, json_t *body)
{
    struct api_wait *a = (struct api_wait *)wt;
    api_reply_json(a->req, status, body);
    free(a);
}

static void wait_abort(struct api_request *req, void *arg)
{
    (void)req;
    struct api_wait *a = arg;
    gb_waiter_cancel(&a->wt);
    free(a);
}

/* A waiter bound to req, or NULL after answering 500. */
static struct api_wait *wait_new(struct api_request *req)
{
    struct api_wait *a = calloc(1, sizeof(*a));
    if (!a) {
        api_reply_error(req, 500, "no-memory", "out of memory");
        return NULL;
    }
    a->wt.done = wait_done;
    a->req = req;
    return a;
}

static void wait_start(struct api_wait *a) { api_on_abort(a->req, wait_abort, a); }

/* After a failed start: the waiter was never queued. */
static void wait_fail(struct api_wait *a, int rc, const char *what, const char *id)
{
    struct api_request *req = a->req;
    free(a);
    switch (rc) {
    case -ENOTCONN: api_reply_error(req, 409, "device-offline", "device %s is not online", id); break;
    case -EINVAL: api_reply_error(req, 400, "bad-request", "bad arguments for %s", what); break;
    case -EADDRINUSE: api_reply_error(req, 503, "no-media-port", "no free media port"); break;
    case -EMFILE: api_reply_error(req, 503, "no-ssrc", "every SSRC serial is in use"); break;
    case -ESHUTDOWN: api_reply_error(req, 503, "shutting-down", "the daemon is stopping"); break;
    case -EBUSY: api_reply_error(req, 429, "busy", "too many queries pending for device %s", id); break;
    case -ENOENT: api_reply_error(req, 404, "not-found", "no GB device %s", id); break;
    case -EAGAIN: api_reply_error(req, 503, "redis-unavailable", "the device's node could not be looked up"); break;
    default: api_reply_error(req, 500, "internal", "%s could not be started (%d)", what, rc); break;
    }
}

/* The {id} of the path for a play: a device here, or any id when play
 * across nodes is on (the device is then looked up in Redis: 404 later). */
static const char *device_or_local_or_remote(struct gb_upper *g, struct api_request *req)
{
    const char *id = api_param(req, "id");
    if (id && (gb_upper_has_device(g, id) || gb_upper_plays_across_nodes(g))) return id;
    api_reply_error(req, 404, "not-found", "no GB device %s", id ? id : "");
    return NULL;
}

/* The {id} of the path when it names a device, else NULL after answering 404. */
static const char *device_or_404(struct gb_upper *g, struct api_request *req)
{
    const char *id = api_param(req, "id");
    if (gb_upper_has_device(g, id)) return id;
    api_reply_error(req, 404, "not-found", "no GB device %s", id ? id : "");
    return NULL;
}

/* The {id} of the path when it names a device here. Else, with requests
 * across nodes on (gb_upper_forward) and the request not already forwarded
 * by a peer (its GB_FORWARD_HEADER, read by its lower-case name), the
 * request goes on to the node the device is registered to, whose answer
 * is the reply: NULL (answered later). Else 404 and NULL. A forwarded
 * request is answered from this node's devices only: never sent on. */
static const char *device_here_or_forward(struct gb_upper *g, struct api_request *req)
{
    const char *id = api_param(req, "id");
    bool across = gb_upper_plays_across_nodes(g); /* off: no header lookup on this path */
    bool from_peer = across && api_header(req, "x-cascade-forwarded") != NULL;
    /* Known here but offline, with requests across nodes: it may be
     * registered on another node (an administrative record shared by
     * [redis] mirror_gb_admin, or a device that moved): asked there, and
     * answered from here when it is registered nowhere (query_nodes.c). */
    if (gb_upper_has_device(g, id) && (from_peer || !across || gb_upper_device_online_here(g, id))) {
        if (from_peer) gb_upper_peer_query(g);
        return id;
    }
    if (from_peer || !across) {
        api_reply_error(req, 404, "not-found", "no GB device %s%s", id ? id : "", from_peer ? " on this node" : "");
        return NULL;
    }
    struct api_wait *a = wait_new(req);
    if (!a) return NULL;
    size_t len = 0;
    const char *body = api_body_raw(req, &len);
    struct gb_forward_req fr = {.method = api_method(req), .target = api_path(req),
                                .authorization = api_header(req, "authorization"), .body = body, .body_len = len};
    int rc = gb_upper_forward(g, id, &fr, &a->wt);
    if (rc == -EINVAL) {
        free(a);
        api_reply_error(req, 400, "bad-request", "this request cannot be sent on to the device's node");
    } else if (rc != 0) {
        wait_fail(a, rc, "the request to the device's node", id ? id : "");
    } else {
        wait_start(a);
    }
    return NULL;
}

static const char *body_str(struct api_request *req, const char *key)
{
    json_t *b = api_body(req);
    return b ? json_string_value(json_object_get(b, key)) : NULL;
}

/* ---- devices ---- */

#define GB_DEVICES_PAGE_MAX 1000   /* devices in one page of GET /gb/devices */

/* A count in [0, max] from the query parameter name; def when absent, -1 when bad. */
static long query_count(struct api_request *req, const char *name, long def, long max)
{
    const char *v = api_query(req, name);
    if (!v) return def;
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < 0 || n > max) return -1;
    return n;
}

/* GET /gb/devices[?q=TEXT][&offset=N&limit=M]: every device, or those whose
 * id or name holds TEXT; offset/limit cut one page of them (sorted by id).
 * total and online count every match, the page or not. */
static void devices_list(struct api_request *req, void *user)
{
    const char *q = api_query(req, "q");
    if (q && strlen(q) > GB_DEVICES_QUERY_MAX) {
        api_reply_error(req, 400, "bad-request", "q is longer than %d bytes", GB_DEVICES_QUERY_MAX);
        return;
    }
    long offset = query_count(req, "offset", 0, LONG_MAX);
    long limit = query_count(req, "limit", 0, GB_DEVICES_PAGE_MAX);
    if (offset < 0 || limit < 0 || (api_query(req, "limit") && limit == 0)) {
        api_reply_error(req, 400, "bad-request", "offset is a count >= 0 and limit a count from 1 to %d",
                        GB_DEVICES_PAGE_MAX);
        return;
    }
    json_t *r = gb_devices_json_match(user, q);
    json_t *all = r ? json_object_get(r, "devices") : NULL;
    if (!all) {
        json_decref(r);
        api_reply_error(req, 500, "no-memory", "out of memory");
        return;
    }
    size_t total = json_array_size(all), online = 0;
    for (size_t i = 0; i < total; i++) online += json_is_true(json_object_get(json_array_get(all, i), "online"));
    if (offset || limit) {
        size_t from = (size_t)offset < total ? (size_t)offset : total;
        size_t to = limit && (size_t)limit < total - from ? from + (size_t)limit : total;
        json_t *page = json_array();
        for (size_t i = from; i < to; i++) json_array_append(page, json_array_get(all, i));
        json_object_set_new(r, "devices", page);
        json_object_set_new(r, "offset", json_integer((json_int_t)offset));
        if (limit) json_object_set_new(r, "limit", json_integer((json_int_t)limit));
    }
    json_object_set_new(r, "total", json_integer((json_int_t)total));
    json_object_set_new(r, "online", json_integer((json_int_t)online));
    api_reply_json(req, 200, r);
}

static void device_show(struct api_request *req, void *user)
{
    const char *id = device_here_or_forward(user, req);
    if (id) api_reply_json(req, 200, gb_upper_device_json(user, id));
}

/* "subscribe": null (follow [gb] subscribe) or an array of "catalog",
 * "alarm", "position" -> -1 or a mask into *out; -2 absent; false (400
 * answered) when it is neither. */
static bool body_subscribe(struct api_request *req, json_t *b, int *out)
{
    json_t *v = json_object_get(b, "subscribe");
    *out = -2;
    if (!v) return true;
    if (json_is_null(v)) {
        *out = -1;
        return true;
    }
    static const struct { const char *name; int bit; } kinds[] = {
        {"catalog", GB_SUBSCRIBE_CATALOG}, {"alarm", GB_SUBSCRIBE_ALARM}, {"position", GB_SUBSCRIBE_POSITION}};
    int mask = 0;
    size_t i;
    json_t *e;
    bool ok = json_is_array(v) && json_array_size(v) <= 3;
    json_array_foreach(ok ? v : NULL, i, e) {
        const char *n = json_string_value(e);
        bool known = false;
        for (size_t k = 0; n && k < sizeof(kinds) / sizeof(kinds[0]); k++)
            if (!strcmp(n, kinds[k].name)) mask |= kinds[k].bit, known = true;
        ok = ok && known;
    }
    if (!ok) {
        api_reply_error(req, 400, "bad-request",
                        "subscribe is null or an array of \"catalog\", \"alarm\", \"position\"");
        return false;
    }
    *out = mask;
    return true;
}

/* POST /gb/devices (create or update) and PATCH /gb/devices/{id} (update
 * an existing one): the same fields, omitted ones kept. */
static void device_set(struct api_request *req, struct gb_upper *g, const char *id, json_t *b)
{
    json_t *auth = b ? json_object_get(b, "auth") : NULL;
    int auth_flag = -1;
    if (auth && json_is_boolean(auth)) auth_flag = json_is_true(auth);
    else if (auth && json_is_string(auth)) auth_flag = strcmp(json_string_value(auth), "off") != 0;
    int sub = -2;
    if (b && !body_subscribe(req, b, &sub)) return;
    int rc = gb_device_admin_set(g, id, body_str(req, "password"), body_str(req, "charset"), auth_flag);
    if (rc == -EINVAL) {
        api_reply_error(req, 400, "bad-request", "id must be a 20-digit GB id, charset GB2312|UTF-8|GBK|GB18030");
        return;
    }
    if (rc == 0 && sub >= -1) rc = gb_device_admin_subscribe(g, id, sub);
    if (rc < 0) {
        api_reply_error(req, 500, "internal", "device record not saved (%d)", rc);
        return;
    }
    api_reply_json(req, 200, gb_upper_device_json(g, id));
}

static void device_add(struct api_request *req, void *user)
{
    json_t *b = api_body(req);
    const char *id = body_str(req, "id");
    if (!b || !id) {
        api_reply_error(req, 400, "bad-request", "a JSON body with \"id\" is required");
        return;
    }
    device_set(req, user, id, b);
}

static void device_patch(struct api_request *req, void *user)
{
    const char *id = device_or_404(user, req);
    if (!id) return;
    json_t *b = api_body(req);
    if (b && !json_is_object(b)) {
        api_reply_error(req, 400, "bad-request", "the body is a JSON object");
        return;
    }
    device_set(req, user, id, b);
}

static void device_del(struct api_request *req, void *user)
{
    const char *id = api_param(req, "id");
    if (gb_device_admin_delete(user, id) != 0) {
        api_reply_error(req, 404, "not-found", "no GB device %s", id ? id : "");
        return;
    }
    api_reply_json(req, 200, json_pack("{s:i}", "removed", 1));
}

static void device_channels(struct api_request *req, void *user)
{
    const char *id = device_here_or_forward(user, req);
    if (!id) return;
    json_t *tree = gb_upper_channels_json(user, id);
    if (!tree) api_reply_error(req, 500, "no-memory", "out of memory");
    else api_reply_json(req, 200, tree);
}

/* ---- queries ---- */

/* id: a device here (device_here_or_forward). */
static void start_query(struct api_request *req, struct gb_upper *g, const char *id, enum gb_query_kind kind,
                        const char *target, const char *start, const char *end, const char *what)
{
    struct api_wait *a = wait_new(req);
    if (!a) return;
    int rc = gb_upper_query(g, id, kind, target, start, end, &a->wt);
    if (rc != 0) {
        wait_fail(a, rc, what, id);
        return;
    }
    wait_start(a);
}

static void device_catalog(struct api_request *req, void *user)
{
    const char *id = device_here_or_forward(user, req);
    if (id) start_query(req, user, id, GB_Q_CATALOG, NULL, NULL, NULL, "catalog");
}
/* Info / status of the device, or with {"target": id} of one of its
 * channels (a lower platform answers for a camera behind it). */
static void device_single_query(struct api_request *req, struct gb_upper *g, enum gb_query_kind kind,
                                const char *what)
{
    const char *target = body_str(req, "target");
    if (target && !gb_id_valid(str_from_cstr(target))) {
        api_reply_error(req, 400, "bad-request", "\"target\" must be a 20-digit GB id");
        return;
    }
    const char *id = device_here_or_forward(g, req);
    if (id) start_query(req, g, id, kind, target, NULL, NULL, what);
}
static void device_info(struct api_request *req, void *user) { device_single_query(req, user, GB_Q_INFO, "DeviceInfo"); }
static void device_status(struct api_request *req, void *user)
{
    device_single_query(req, user, GB_Q_STATUS, "DeviceStatus");
}

/* GB times are local "YYYY-MM-DDThh:mm:ss" (no zone). */
static bool gb_time_ok(const char *s, time_t *out)
{
    if (!s) return false;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || *end) return false;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1) return false;
    if (out) *out = t;
    return true;
}

static void device_records(struct api_request *req, void *user)
{
    struct gb_upper *g = user;
    const char *id = device_here_or_forward(g, req);
    if (!id) return;
    const char *channel = body_str(req, "channel");
    const char *start = body_str(req, "start"), *end = body_str(req, "end");
    if (!channel) channel = id;
    time_t ts, te;
    if (!gb_id_valid(str_from_cstr(channel)) || !gb_time_ok(start, &ts) || !gb_time_ok(end, &te) || te < ts) {
        api_reply_error(req, 400, "bad-request",
                        "\"channel\" (20 digits), \"start\" and \"end\" (YYYY-MM-DDThh:mm:ss, start <= end) are required");
        return;
    }
    start_query(req, g, id, GB_Q_RECORDS, channel, start, end, "RecordInfo");
}

/* ---- PTZ and play ---- */

static void channel_ptz(struct api_request *req, void *user)
{
    struct gb_upper *g = user;
    const char *id = device_here_or_forward(g, req);
    if (!id) return;
    const char *cmd = body_str(req, "cmd");
    json_t *sp = api_body(req) ? json_object_get(api_body(req), "speed") : NULL;
    int speed = sp && json_is_integer(sp) ? (int)json_integer_value(sp) : 128;
    if (!cmd) {
        api_reply_error(req, 400, "bad-request", "\"cmd\" is required (left, right, up, down, zoomin, zoomout, stop ...)");
        return;
    }
    struct api_wait *a = wait_new(req);
    if (!a) return;
    int rc = gb_upper_ptz(g, id, api_param(req, "cid"), cmd, speed, &a->wt);
    if (rc != 0) {
        wait_fail(a, rc, "PTZ (cmd and speed 0-255)", id);
        return;
    }
    wait_start(a);
}

/* ---- alarms (GB/T 28181 §9.4) ---- */

static void alarms_list(struct api_request *req, void *user)
{
    const char *dev = api_query(req, "device");
    const char *lim = api_query(req, "limit");
    char *end = NULL;
    long limit = lim ? strtol(lim, &end, 10) : 0;
    if ((lim && (*end || limit < 0)) || (dev && *dev && !gb_id_valid(str_from_cstr(dev)))) {
        api_reply_error(req, 400, "bad-request", "device is a 20-digit id and limit a count >= 0");
        return;
    }
    api_reply_json(req, 200, gb_upper_alarms_json(user, dev, (size_t)limit));
}

static void device_alarm_reset(struct api_request *req, void *user)
{
    struct gb_upper *g = user;
    const char *id = device_here_or_forward(g, req);
    if (!id) return;
    const char *channel = body_str(req, "channel");
    struct api_wait *a = wait_new(req);
    if (!a) return;
    int rc = gb_upper_alarm_reset(g, id, channel, &a->wt);
    if (rc != 0) {
        wait_fail(a, rc, "alarm reset (channel a 20-digit id)", id);
        return;
    }
    wait_start(a);
}

/* ---- the URLs of a stream's outputs, from the Host the client used ---- */

/* The WHEP URL of the stream's WebRTC output (POST an SDP offer to it). */
static void add_webrtc_url(const char *host, const char *sid, json_t *body)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s/api/v1/gb/streams/%s/whep", host ? "http://" : "", host ? host : "", sid);
    json_object_set_new(body, "webrtc", json_string(url));
}

/* The URLs of a stream's outputs: FLV, HLS and WHEP. */
static void add_output_urls(struct api_request *req, json_t *body)
{
    const char *sid = json_string_value(json_object_get(body, "stream_id"));
    const char *host = api_header(req, "host");
    if (!sid) return;
    char url[512];
    snprintf(url, sizeof(url), "%s%s/api/v1/gb/streams/%s/live.flv", host ? "http://" : "", host ? host : "", sid);
    json_object_set_new(body, "flv", json_string(url));
    snprintf(url, sizeof(url), "%s%s/api/v1/gb/streams/%s/hls/index.m3u8", host ? "http://" : "", host ? host : "",
             sid);
    json_object_set_new(body, "hls", json_string(url));
    add_webrtc_url(host, sid, body);
}

static void add_live_urls(struct api_request *req, json_t *body) { add_output_urls(req, body); }

static void playback_done(struct gb_waiter *wt, int status, json_t *body)
{
    struct api_wait *a = (struct api_wait *)wt;
    if (status == 200) add_output_urls(a->req, body); /* a playback's WHEP takes one viewer (409 viewer-taken) */
    api_reply_json(a->req, status, body);
    free(a);
}

static void channel_play(struct api_request *req, void *user)
{
    struct gb_upper *g = user;
    const char *id = device_or_local_or_remote(g, req);
    if (!id) return;
    const char *tr = body_str(req, "transport");
    if (tr && strcasecmp(tr, "udp") && strcasecmp(tr, "tcp")) {
        api_reply_error(req, 400, "bad-request", "\"transport\" is udp or tcp");
        return;
    }
    json_t *dump = api_body(req) ? json_object_get(api_body(req), "dump") : NULL;
    const char *start = body_str(req, "start"), *end = body_str(req, "end");
    time_t ts = 0, te = 0;
    if ((start || end) && (!gb_time_ok(start, &ts) || !gb_time_ok(end, &te) || te <= ts)) {
        api_reply_error(req, 400, "bad-request", "playback needs \"start\" < \"end\" (YYYY-MM-DDThh:mm:ss)");
        return;
    }
    struct api_wait *a = wait_new(req);
    if (!a) return;
    if (ts) a->wt.done = playback_done; /* a playback is watched through its own live.flv / HLS */
    int rc = gb_upper_play(g, id, api_param(req, "cid"), tr && !strcasecmp(tr, "tcp"), dump && json_is_true(dump),
                           (int64_t)ts, (int64_t)te, &a->wt);
    if (rc != 0) {
        wait_fail(a, rc, "play", id);
        return;
    }
    wait_start(a);
}

/* ---- live view (HTTP-FLV) ---- */

static void live_done(struct gb_waiter *wt, int status, json_t *body)
{
    struct api_wait *a = (struct api_wait *)wt;
    if (status == 200) add_live_urls(a->req, body);
    api_reply_json(a->req, status, body);
    free(a);
}

/* The channel's shared live stream, started when nobody watches it yet;
 * answers with the stream and the URL of each output. */
static void channel_live(struct api_request *req, void *user)
{
    struct gb_upper *g = user;
    const char *id = device_or_local_or_remote(g, req);
    if (!id) return;
    const char *cid = api_param(req, "cid");
    json_t *playing = gb_live_playing_json(g, id, cid);
    if (playing) {
        add_live_urls(req, playing);
        api_reply_json(req, 200, playing);
        return;
    }
    struct api_wait *a = wait_new(req);
    if (!a) return;
    a->wt.done = live_done;
    int rc = gb_live_start(g, id, cid, &a->wt);
    if (rc != 0) {
        wait_fail(a, rc, "live", id);
        return;
    }
    wait_start(a);
}

struct flv_viewer {
    struct api_request *req;
    struct gb_live_reader *r;
};

static long flv_pull(void *arg, unsigned char *buf, size_t cap)
{
    struct flv_viewer *v = arg;
    long n = gb_live_read(v->r, buf, cap);
    if (n < 0) {
        gb_live_close(v->r);
        free(v);
    }
    return n;
}

static void flv_gone(void *arg)
{
    struct flv_viewer *v = arg;
    gb_live_close(v->r);
    free(v);
}

static void flv_wake(void *arg) { api_stream_wake(((struct flv_viewer *)arg)->req); }

static int flv_peek(void *arg, struct iovec *iov, int max)
{
    struct flv_viewer *v = arg;
    int k = gb_live_peek(v->r, iov, max);
    if (k < 0) {
        gb_live_close(v->r);
        free(v);
    }
    return k;
}

static void flv_consume(void *arg, size_t n) { gb_live_consume(((struct flv_viewer *)arg)->r, n); }

static const struct api_stream_ops flv_ops = {
    .pull = flv_pull, .gone = flv_gone, .peek = flv_peek, .consume = flv_consume};

static void stream_flv(struct api_request *req, void *user)
{
    struct gb_upper *g = user;
    const char *sid = api_param(req, "sid");
    struct flv_viewer *v = calloc(1, sizeof(*v));
    if (!v) {
        api_reply_error(req, 500, "no-memory", "out of memory");
        return;
    }
    int err = 0;
    v->req = req;
    v->r = gb_live_open(g, sid, flv_wake, v, &err);
    if (!v->r) {
        free(v);
        if (err == -ENOENT) api_reply_error(req, 404, "not-found", "no stream %s", sid ? sid : "");
        else api_reply_error(req, 500, "no-memory", "out of memory");
        return;
    }
    api_reply_stream(req, 200, "video/x-flv", &flv_ops, v);
}

/* ---- live view (HLS) ----
 * URIs in the playlist are relative ("12.ts"), so a player reaches the
 * segments the way it reached the playlist (its Authorization header, or
 * none). A viewer is its ?session= when it sends one, else its address and
 * User-Agent (see gb_live_hls_playlist). */

#define HLS_SESSION_MAX 64
#define HLS_CLIENT_MAX (HLS_SESSION_MAX + 300)

/* The ?session= of the request when it is a plain token, else NULL. */
static const char *hls_session(struct api_request *req)
{
    const char *s = api_query(req, "session");
    size_t n = s ? strlen(s) : 0;
    if (!n || n > HLS_SESSION_MAX || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        return NULL;
    return s;
}

static void hls_client_key(struct api_request *req, char *key, size_t cap)
{
    const char *session = hls_session(req), *ua = api_header(req, "user-agent");
    if (session) snprintf(key, cap, "s:%s", session);
    else snprintf(key, cap, "a:%s|%.256s", api_remote(req), ua ? ua : "");
}

struct hls_wait {
    struct gb_waiter wt;
    struct api_request *req;
    struct gb_upper *g;
};

static void hls_refused(struct api_request *req, int rc, const char *sid)
{
    switch (rc) {
    case -ENOENT: api_reply_error(req, 404, "not-found", "no stream %s", sid ? sid : ""); break;
    case -EAGAIN: api_reply_error(req, 503, "no-segment", "stream %s has no segment yet", sid); break;
    default: api_reply_error(req, 500, "no-memory", "out of memory"); break;
    }
}

/* Answers the playlist, or the refusal; rc -EINPROGRESS only with wt. */
static int hls_playlist_reply(struct api_request *req, struct gb_upper *g, struct gb_waiter *wt)
{
    const char *sid = api_param(req, "sid");
    char key[HLS_CLIENT_MAX];
    hls_client_key(req, key, sizeof(key));
    sbuf_t out;
    sbuf_init(&out);
    int rc = gb_live_hls_playlist(g, sid, key, hls_session(req), &out, wt);
    if (rc == 0) api_reply_bytes(req, 200, "application/vnd.apple.mpegurl", out.data, out.len);
    else if (rc != -EINPROGRESS) hls_refused(req, rc, sid);
    sbuf_free(&out);
    return rc;
}

static void hls_wait_done(struct gb_waiter *wt, int status, json_t *body)
{
    struct hls_wait *w = (struct hls_wait *)wt;
    if (status == 200) {
        json_decref(body);
        hls_playlist_reply(w->req, w->g, NULL);
    } else api_reply_json(w->req, status, body);
    free(w);
}

static void hls_wait_abort(struct api_request *req, void *arg)
{
    (void)req;
    struct hls_wait *w = arg;
    gb_waiter_cancel(&w->wt);
    free(w);
}

/* The live playlist; the first request of a stream waits for its first
 * segment (players give up on a playlist without one). */
static void stream_hls_playlist(struct api_request *req, void *user)
{
    struct hls_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        api_reply_error(req, 500, "no-memory", "out of memory");
        return;
    }
    w->wt.done = hls_wait_done;
    w->req = req;
    w->g = user;
    if (hls_playlist_reply(req, user, &w->wt) == -EINPROGRESS) api_on_abort(req, hls_wait_abort, w);
    else free(w);
}

static void stream_hls_segment(struct api_request *req, void *user)
{
    const char *sid = api_param(req, "sid"), *name = api_param(req, "segment");
    char key[HLS_CLIENT_MAX];
    hls_client_key(req, key, sizeof(key));
    const char *type = NULL;
    int err = 0;
    struct gb_hls_segment *seg = gb_live_hls_segment(user, sid, name, key, &type, &err);
    if (!seg) {
        if (err == -ENOENT) api_reply_error(req, 404, "not-found", "no segment %s of stream %s", name ? name : "",
                                            sid ? sid : "");
        else hls_refused(req, err, sid);
        return;
    }
    /* Copied into the answer (a length, so the connection stays open for
     * the next request); the reference keeps the bytes while they are. */
    api_reply_bytes(req, 200, type, (const char *)seg->data, seg->len);
    gb_hls_segment_unref(seg);
}

/* ---- streams ---- */

/* Playback control: {"action": "pause" | "resume" | "seek" | "speed",
 * "position": seconds into the recording (seek), "speed": 0.0625..16
 * (speed)}; the device's answer decides the reply. */
static int control_from_body(struct api_request *req, struct gb_rtsp_req *r)
{
    const char *action = body_str(req, "action");
    json_t *b = api_body(req);
    json_t *pos = b ? json_object_get(b, "position") : NULL, *speed = b ? json_object_get(b, "speed") : NULL;
    memset(r, 0, sizeof(*r));
    r->scale = 1.0;
    if (!action) return -1;
    if (!strcmp(action, "pause")) r->method = GB_RTSP_PAUSE;
    else if (!strcmp(action, "resume")) {
        r->method = GB_RTSP_PLAY;
        r->has_range = true;
        r->range_from = -1;
    } else if (!strcmp(action, "seek")) {
        if (!json_is_number(pos) || json_number_value(pos) < 0 || json_number_value(pos) > GB_MANSRTSP_MAX_NPT) return -1;
        r->method = GB_RTSP_PLAY;
        r->has_range = true;
        r->range_from = json_number_value(pos);
    } else if (!strcmp(action, "speed")) {
        if (!json_is_number(speed)) return -1;
        r->method = GB_RTSP_PLAY;
        r->has_scale = true;
        r->scale = json_number_value(speed);
        if (!(r->scale >= GB_MANSRTSP_MIN_SCALE && r->scale <= GB_MANSRTSP_MAX_SCALE)) return -1;
    } else return -1;
    return 0;
}

static void stream_control(struct api_request *req, void *user)
{
    struct gb_upper *g = user;
    const char *sid = api_param(req, "sid");
    struct gb_rtsp_req r;
    if (control_from_body(req, &r) != 0) {
        api_reply_error(req, 400, "bad-request",
                        "\"action\" is pause, resume, seek (with \"position\" >= 0 seconds) or speed (with \"speed\" "
                        "0.0625 to 16)");
        return;
    }
    struct api_wait *a = wait_new(req);
    if (!a) return;
    int rc = gb_upper_stream_control(g, sid, &r, &a->wt);
    if (rc == 0) {
        wait_start(a);
        return;
    }
    free(a);
    switch (rc) {
    case -ENOENT: api_reply_error(req, 404, "not-found", "no stream %s", sid ? sid : ""); break;
    case -EINVAL: api_reply_error(req, 409, "not-playback", "stream %s is live, not a playback", sid); break;
    case -ENOTCONN: api_reply_error(req, 409, "not-playing", "stream %s is not playing yet", sid); break;
    default: api_reply_error(req, 502, "not-sent", "the control could not be sent (%d)", rc); break;
    }
}

static void streams_list(struct api_request *req, void *user) { api_reply_json(req, 200, gb_upper_streams_json(user)); }

/* GET /media/streams: the streams being watched (or shared for live view).
 * Only GB streams exist as media streams today, so the route lives here. */
static void media_streams(struct api_request *req, void *user) { api_reply_json(req, 200, gb_media_streams_json(user)); }

static void stream_show(struct api_request *req, void *user)
{
    json_t *s = gb_upper_stream_json(user, api_param(req, "sid"));
    if (!s) api_reply_error(req, 404, "not-found", "no stream %s", api_param(req, "sid"));
    else api_reply_json(req, 200, s);
}

static void stream_stop(struct api_request *req, void *user)
{
    if (gb_upper_stream_stop(user, api_param(req, "sid"), "api") != 0) {
        api_reply_error(req, 404, "not-found", "no stream %s", api_param(req, "sid"));
        return;
    }
    api_reply_json(req, 200, json_pack("{s:b}", "stopped", 1));
}

/* ---- WebRTC: WHEP viewers of a stream (live_rtc.c) ---- */

static void whep_error(struct api_request *req, int rc, const char *why)
{
    int status;
    const char *code;
    switch (rc) {
    case -ENOENT: status = 404, code = "not-found"; break;
    case -EPROTONOSUPPORT: status = 415, code = "unsupported-codec"; break;
    case -EPERM: status = 409, code = "viewer-taken"; break;
    case -EINVAL: status = 400, code = "bad-offer"; break;
    case -ENOTSUP: status = 400, code = "unsupported-offer"; break;
    case -ENOSPC:
    case -ENOMEM: status = 503, code = "full"; break;
    default: status = 500, code = "internal"; break;
    }
    if (rc == -ENOTSUP && why && strstr(why, "not running")) status = 503, code = "media-off";
    api_log_refused(req, status, code);
    if (status == 503) api_add_header(req, "Retry-After", "5");
    api_reply_error(req, status, code, "%s", why && why[0] ? why : strerror(-rc));
}

/* POST /gb/streams/{sid}/whep: an SDP offer in, 201 with the answer and
 * the Location of the viewer's session (DELETE it to leave: the rooms'
 * WHEP resource in room gb-<sid>). */
static void stream_whep(struct api_request *req, void *user)
{
    const char *sid = api_param(req, "sid");
    const char *ct = api_header(req, "content-type");
    size_t len = 0;
    const char *offer = api_body_raw(req, &len);
    if (!ct || strncasecmp(ct, "application/sdp", 15) != 0) {
        api_log_refused(req, 415, "unsupported-media-type");
        api_add_header(req, "Accept-Post", "application/sdp");
        api_reply_error(req, 415, "unsupported-media-type", "the offer must be sent as Content-Type: application/sdp");
        return;
    }
    if (!offer || !len) {
        api_reply_error(req, 400, "bad-offer", "the body must be an SDP offer");
        return;
    }
    sbuf_t answer;
    sbuf_init(&answer);
    char id[17] = "", room[32];
    const char *why = NULL;
    int rc = gb_live_whep(user, sid, offer, len, &answer, id, &why);
    if (rc == 0) {
        char location[160];
        gb_live_rtc_room(sid, room, sizeof(room));
        snprintf(location, sizeof(location), "/api/v1/whep/%s/%s", room, id);
        log_info("api: %s watches GB stream %s over WebRTC as %s", api_remote(req), sid, id);
        api_add_header(req, "Location", location);
        api_reply_bytes(req, 201, "application/sdp", answer.data ? answer.data : "", answer.len);
    } else {
        whep_error(req, rc, why);
    }
    sbuf_free(&answer);
}

static double metric_online(void *arg)
{
    struct gb_upper_stats st;
    gb_upper_get_stats(arg, &st);
    return st.online;
}

static double metric_streams(void *arg)
{
    struct gb_upper_stats st;
    gb_upper_get_stats(arg, &st);
    return st.streams;
}

void api_routes_gb_upper(struct api_server *api, struct gb_upper *g)
{
    static const struct {
        const char *method, *pattern;
        api_handler fn;
    } routes[] = {
        {"GET", "/api/v1/gb/devices", devices_list},
        {"POST", "/api/v1/gb/devices", device_add},
        {"GET", "/api/v1/gb/devices/{id}", device_show},
        {"DELETE", "/api/v1/gb/devices/{id}", device_del},
        {"PATCH", "/api/v1/gb/devices/{id}", device_patch},
        {"POST", "/api/v1/gb/devices/{id}/catalog", device_catalog},
        {"GET", "/api/v1/gb/devices/{id}/channels", device_channels},
        {"POST", "/api/v1/gb/devices/{id}/info", device_info},
        {"POST", "/api/v1/gb/devices/{id}/status", device_status},
        {"POST", "/api/v1/gb/devices/{id}/records", device_records},
        {"POST", "/api/v1/gb/devices/{id}/alarm/reset", device_alarm_reset},
        {"GET", "/api/v1/gb/alarms", alarms_list},
        {"POST", "/api/v1/gb/devices/{id}/channels/{cid}/ptz", channel_ptz},
        {"POST", "/api/v1/gb/devices/{id}/channels/{cid}/play", channel_play},
        {"POST", "/api/v1/gb/devices/{id}/channels/{cid}/live", channel_live},
        {"GET", "/api/v1/gb/streams/{sid}/live.flv", stream_flv},
        {"GET", "/api/v1/gb/streams/{sid}/hls/index.m3u8", stream_hls_playlist},
        {"GET", "/api/v1/gb/streams/{sid}/hls/{segment}", stream_hls_segment},
        {"GET", "/api/v1/gb/streams", streams_list},
        {"GET", "/api/v1/gb/streams/{sid}", stream_show},
        {"DELETE", "/api/v1/gb/streams/{sid}", stream_stop},
        {"POST", "/api/v1/gb/streams/{sid}/control", stream_control},
        {"GET", "/api/v1/media/streams", media_streams},
    };
    if (!g || !api) return;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (api_route(api, routes[i].method, routes[i].pattern, routes[i].fn, g) != 0)
            log_error("gb: route %s %s not registered", routes[i].method, routes[i].pattern);
    if (api_route_ex(api, "POST", "/api/v1/gb/streams/{sid}/whep", stream_whep, g, API_ROUTE_RAW_BODY | API_ROUTE_CORS))
        log_error("gb: route POST /api/v1/gb/streams/{sid}/whep not registered");
    api_metric_gauge(api, "cascade_gb_devices_online", "GB28181 devices online", metric_online, g);
    api_metric_gauge(api, "cascade_gb_streams", "GB28181 live streams", metric_streams, g);
}
