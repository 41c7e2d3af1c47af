/* upper.h — the GB/T 28181 upper platform role (上级): devices and lower
 * platforms register here, send keepalives, answer catalog / info / status /
 * record queries, take PTZ commands and stream live video on request.
 *
 * Wiring (done by src/app, see dispatch.c):
 *   g = gb_upper_new(&cfg.gb, &auth, &local, cfg.store.path, &deps);
 *                                       when [gb] enabled, after store/events/txn/ua exist
 *   gb_upper_load(g);                   restore devices and channels from the store
 *   api_routes_gb_upper(api, g);        when the API is on (src/api/routes_gb.h)
 *   dispatch_request: ua_on_request() first (BYE of a stream), then gb_upper_on_request()
 *   dispatch_conn_lost: gb_upper_on_conn_lost(g, conn_id)
 *   stop: gb_upper_stop(g) (BYE every stream, close media sockets) while the loop still runs;
 *   free: gb_upper_free(g) once the loop ran dry.
 *
 * State (devices, channels, streams) lives in memory and is authoritative;
 * the store keeps devices and channels across restarts. Timers are on the
 * timer service it is given (its clock is the role's clock): one per device
 * (registration expiry and keepalive deadline), one per pending query, one
 * per stream (RTP silence).
 *
 * The service API at the end is what the HTTP routes use: devices, channels
 * and streams by id, answers as JSON objects the role builds (shapes in
 * docs/api.md). */
#ifndef CASCADE_GB_UPPER_UPPER_H
#define CASCADE_GB_UPPER_UPPER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/sbuf.h"
#include "base/str.h"
#include "gb/codec/manscdp.h"
#include "transport/transport.h"

struct auth_server_config;
struct event_bus;
struct gb_config;
struct sip_local;
struct store;
struct timer_service;
struct txn;
struct txn_admission;
struct ua;
struct ua_request;
struct ua_uac;
struct ua_uac_cb;
struct gb_upper;
struct gb_devmirror;
struct cluster;
struct tls_context;
struct txn_layer;

/* What the role works with; it owns none of them, and each must outlive it. */
struct gb_upper_deps {
    uv_loop_t *loop;                       /* media sockets (RTP); NULL: play answers -ENOTSUP */
    struct timer_service *timers;          /* every timer of the role; its clock is the role's */
    struct ua *ua;                         /* requests to devices, dialogs, tags */
    struct store *store;                   /* NULL: nothing persisted, nothing restored */
    struct event_bus *events;              /* NULL: no events */
    const struct txn_admission *admission; /* new registrations (overload); NULL: admit all */
    /* Issue 16, both NULL when off: devices written behind into Redis
     * (gb/upper/device_mirror.h); with the node registry too, a play for a
     * device registered on another node goes through that node, and INVITEs
     * from peer nodes for our devices are relayed to them (play_nodes.c). */
    struct gb_devmirror *devmirror;
    struct cluster *cluster;
    struct txn_layer *txn;                 /* CANCELs of relayed INVITEs; NULL: not matched */
    /* API requests for a device on another node, forwarded to its node's
     * API (gb_upper_forward): the hop's deadline and how many at once
     * ([redis] api_forward_timeout_ms, api_forward_max_pending; 0: 15 s, 64). */
    uint32_t forward_timeout_ms, forward_max_pending;
    /* The client side of an https:// hop (the node's [tls] context: its
     * trust anchors) and the name the peers' API certificates carry
     * ([redis] api_tls_name; NULL or "": the address each peer advertises). */
    struct tls_context *forward_tls;
    const char *forward_tls_name;
    /* The Authorization this node sends with a request of its own to a
     * peer's API (gb_upper_query_remote: a middle node's query for an
     * upstream), "Bearer <[api] token>"; NULL or "": none (copied). */
    const char *forward_authorization;
};

/* cfg ([gb]) and local are copied. auth: nonce lifetimes and throttling of
 * the role's own digest server (MD5 only whatever its algorithms say, GB/T
 * 28181 §9.1.2). store_path: stream dumps are written beside that file (NULL
 * or "": the working directory). NULL (logged) on a bad [gb] config (id or
 * domain not GB digits, no media ports) or no memory. */
struct gb_upper *gb_upper_new(const struct gb_config *cfg, const struct auth_server_config *auth,
                              const struct sip_local *local, const char *store_path, const struct gb_upper_deps *deps);
/* Restores devices and channels from the store (if any). Registrations still
 * valid over UDP come back online (their keepalive deadline restarts now);
 * TCP ones and expired ones are marked offline. 0, or -1 on a store error. */
int gb_upper_load(struct gb_upper *g);
/* 1 when the role took the request (and answers it): REGISTER for our GB id
 * or from a GB id it handles, MESSAGE with a MANSCDP body from one. */
int gb_upper_on_request(struct gb_upper *g, struct txn *st, const struct transport_rx *rx);
/* A TCP connection went away: devices registered over it go offline. */
void gb_upper_on_conn_lost(struct gb_upper *g, uint64_t conn_id);
/* BYE for every stream, media sockets closed, pending API requests answered
 * 503, deps' devmirror and cluster no longer used. Call while the loop still
 * runs. */
void gb_upper_stop(struct gb_upper *g);
void gb_upper_free(struct gb_upper *g);

struct gb_upper_stats {
    uint32_t devices, online, streams, pending_queries;
    uint64_t registers, keepalives, messages, refused;
    uint64_t foreign_messages;     /* MESSAGEs in a device's name from another address/flow (403) */
    uint64_t nonce_replays;        /* REGISTERs re-using a device's nonce from another address (401) */
    uint64_t catalog_items_dropped; /* catalog items with an id that is not a GB id */
    uint32_t catalog_queued, catalog_in_flight; /* catalog-on-register: waiting, started */
    uint64_t remote_plays;         /* play requests for devices on other nodes, sent through them */
    uint64_t remote_play_failures; /* ... not found, node down, Redis failed, refused */
    uint64_t remote_streams_node_lost; /* ... stopped because that node died (reason node-lost) */
    uint64_t peer_relays;          /* INVITEs from peer nodes relayed to our devices */
    uint64_t peer_refused;         /* INVITEs marked as from a peer, refused (not a live node, no such device) */
    uint64_t node_queries;         /* API requests for devices on other nodes, answered by that node */
    uint64_t node_query_failures;  /* ... not found, node down or silent, Redis failed, a bad answer */
    uint64_t peer_queries;         /* API requests forwarded here by a peer node */
    uint32_t node_queries_pending; /* forwarded (or looking up their node) now */
    uint64_t catalog_started, catalog_paused;   /* queries started from the queue; waits while overloaded */
    uint64_t flv_skips;            /* live FLV viewers moved forward to the newest key frame (fell behind) */
    uint64_t flv_dropped;          /* live FLV viewers ended: the ring wrapped onto them mid-tag and the rest could not be kept */
};
void gb_upper_get_stats(const struct gb_upper *g, struct gb_upper_stats *out);

/* ---- service API (the HTTP routes, the middle node) ---- */

/* Asynchronous results (a catalog being assembled, a play waiting for the
 * device's 200) are handed to a struct gb_waiter: the caller embeds one per
 * pending request and gets exactly one done() call, unless it cancels the
 * waiter first (client gone). */
struct gb_waiter;
/* status: an HTTP status; body: the answer or {"error","detail"} (stolen). */
typedef void (*gb_waiter_done)(struct gb_waiter *wt, int status, json_t *body);

struct gb_waiter {
    gb_waiter_done done;
    struct gb_waiter *next;     /* in the owner's list */
    struct gb_waiter **list;    /* head of the list it sits in (NULL once done or cancelled) */
};

/* Removes wt from whatever waits for it (no done() call afterwards). */
void gb_waiter_cancel(struct gb_waiter *wt);

enum gb_query_kind { GB_Q_CATALOG = 0, GB_Q_INFO, GB_Q_STATUS, GB_Q_RECORDS };

/* Queries: new JSON (NULL: no such device or stream, or no memory). */
bool gb_upper_has_device(struct gb_upper *g, const char *id);
/* Known here and registered here (online). */
bool gb_upper_device_online_here(struct gb_upper *g, const char *id);
json_t *gb_devices_json(struct gb_upper *g);
/* {"devices":[...]} of the devices whose id or name (DeviceInfo's) holds q,
 * ASCII case folded; q NULL or "" lists every one. Only the first
 * GB_DEVICES_QUERY_MAX bytes of q count. */
#define GB_DEVICES_QUERY_MAX 64
json_t *gb_devices_json_match(struct gb_upper *g, const char *q);
json_t *gb_upper_device_json(struct gb_upper *g, const char *id);   /* the full record */
json_t *gb_upper_channels_json(struct gb_upper *g, const char *id); /* the channel tree */
json_t *gb_upper_streams_json(struct gb_upper *g);
json_t *gb_upper_stream_json(struct gb_upper *g, const char *sid);
/* {"streams":[...]}: every stream with live outputs (shared live streams,
 * and any stream being watched), with its source, viewers per output,
 * bitrate, codec, picture size and frame rate (GET /api/v1/media/streams). */
json_t *gb_media_streams_json(struct gb_upper *g);

/* Alarms the devices reported (GB/T 28181 §9.4), newest first: {"alarms":
 * [...], "total": n}, at most limit of them (0: every one kept, up to
 * GB_ALARMS_MAX), only device_id's when it is not NULL or "". */
json_t *gb_upper_alarms_json(struct gb_upper *g, const char *device_id, size_t limit);
/* DeviceControl ResetAlarm to the device for target (a channel id; NULL or
 * "": the device itself). 0 (wt gets the outcome), -ENOENT no such device,
 * -ENOTCONN offline, -EINVAL target not a GB id, -ENOMEM / -EIO. */
int gb_upper_alarm_reset(struct gb_upper *g, const char *device_id, const char *target, struct gb_waiter *wt);

/* Admin records (POST/DELETE /gb/devices). 0, or a negative errno. Each
 * change is told to the admin observer (below). */
int gb_device_admin_set(struct gb_upper *g, const char *id, const char *password, const char *charset, int auth);
int gb_device_admin_delete(struct gb_upper *g, const char *id);
/* The device's own subscribe list (PATCH /gb/devices/{id}): mask of
 * GB_SUBSCRIBE_* bits, or -1 to follow [gb] subscribe. Stored with the
 * device, applied at once when it is online (SUBSCRIBE to what is added,
 * SUBSCRIBE with Expires 0 to what is dropped), else at its next
 * registration. 0, -ENOENT no such device, -EINVAL bad mask. */
#define GB_SUBSCRIBE_CATALOG 1
#define GB_SUBSCRIBE_ALARM 2
#define GB_SUBSCRIBE_POSITION 4
int gb_device_admin_subscribe(struct gb_upper *g, const char *id, int mask);

/* A device's administrative record as [redis] mirror_gb_admin shares it
 * (admin_mirror.h). */
#define GB_ADMIN_PASSWORD_MAX 127
struct gb_admin_record {
    char password[GB_ADMIN_PASSWORD_MAX + 1]; /* "": [gb] password */
    gb_charset_t charset;
    bool auth;       /* digest asked of it */
    bool allow;      /* false: its REGISTER is refused (403) */
    int subscribe;   /* its own subscribe mask (GB_SUBSCRIBE_*), -1: [gb] subscribe */
};
/* Told after each change made through gb_device_admin_set / _subscribe /
 * _delete (deleted: its record is gone); not for gb_device_admin_apply. */
void gb_upper_set_admin_observer(struct gb_upper *g, void (*cb)(void *arg, const char *id, bool deleted), void *arg);
/* The record of device id: 0, or -ENOENT. */
int gb_device_admin_get(struct gb_upper *g, const char *id, struct gb_admin_record *out);
enum gb_admin_apply { GB_ADMIN_UNCHANGED = 0, GB_ADMIN_ADDED, GB_ADMIN_CHANGED, GB_ADMIN_REMOVED, GB_ADMIN_REJECTED };
/* Makes device id's record r (NULL: deletes the device, as the API does:
 * online, it goes offline), stored, without telling the observer. A new
 * subscribe list is applied at once to a device online here; a password
 * or charset at its next REGISTER / message. */
enum gb_admin_apply gb_device_admin_apply(struct gb_upper *g, const char *id, const struct gb_admin_record *r);
/* cb for every known device's id until it returns non-zero (no removal from cb). */
int gb_device_admin_foreach(struct gb_upper *g, int (*cb)(void *arg, const char *id), void *arg);

/* What gb_upper_reload_devices found. */
struct gb_devices_reload {
    int rows;                          /* devices stored */
    int added, removed, changed;       /* against memory; changed: password, charset, auth, allow or subscribe */
};
/* Re-reads the devices' administrative records (password, charset, auth,
 * allow) from the store, for an operator who changed the database behind
 * the daemon's back (SIGHUP). A registration stays as it is; a new row makes
 * a device known (offline), a device whose row is gone is dropped as if
 * deleted through the API (online: its streams end). Writes still queued are
 * not seen (store_flush_sync first). 0, or a negative errno (nothing changed). */
int gb_upper_reload_devices(struct gb_upper *g, struct gb_devices_reload *out);

/* Commands to device_id. 0: wt gets the result; or a negative errno (wt then
 * untouched): -ENOENT no such device, -ENOTCONN not online, -EINVAL bad
 * arguments, -EBUSY too many queries pending, -ESHUTDOWN stopping, and for
 * play -EADDRINUSE (no media port), -EMFILE (no SSRC), -ENOTSUP (no loop). */
/* target: the DeviceID asked about — RecordInfo the channel, DeviceInfo /
 * DeviceStatus the device (NULL) or one of its channels; start/end:
 * RecordInfo ("YYYY-MM-DDThh:mm:ss"). */
int gb_upper_query(struct gb_upper *g, const char *device_id, enum gb_query_kind kind, const char *target,
                   const char *start, const char *end, struct gb_waiter *wt);
int gb_upper_ptz(struct gb_upper *g, const char *device_id, const char *channel, const char *cmd, int speed,
                 struct gb_waiter *wt);
/* start/end (epoch seconds, both > 0) ask for a playback instead of live.
 * A device not registered here is looked up in Redis when play across
 * nodes is on (gb_upper_plays_across_nodes): wt then gets 404 (nowhere),
 * 409 (offline), 503 (its node down, Redis failed) or the stream played
 * through its node; -ENOENT when it is off. gb_live_start likewise. */
bool gb_upper_plays_across_nodes(const struct gb_upper *g);
/* This node's id among the cascade nodes ([redis] node_id), NULL when the
 * devices are not shared. */
const char *gb_upper_node_id(const struct gb_upper *g);
/* Node death (registrar/cluster.h, struct cluster_gb_hooks): the role's
 * answers to a survivor's reap of a dead node's GB devices. fn NULL when
 * the role does not mirror its devices (no devmirror). */
struct cluster_gb_hooks;
void gb_upper_gb_hooks(struct gb_upper *g, struct cluster_gb_hooks *out);
/* Another survivor reaped the node device_id was registered to (its
 * gb.device.offline reason node-lost, read from the cluster's event view,
 * [redis] events_stream; gb/lower/lower_nodes.c): this node's streams of
 * device_id played through a node that is not heartbeating here stop with
 * reason node-lost. Through a live node: left alone. How many stopped. */
size_t gb_upper_node_lost_seen(struct gb_upper *g, const char *device_id);
int gb_upper_play(struct gb_upper *g, const char *device_id, const char *channel, bool tcp, bool dump, int64_t start,
                  int64_t end, struct gb_waiter *wt);
/* ---- API requests across nodes (issue 16, query_nodes.c) ----
 * A query, PTZ or read of a device registered on another node: looked up
 * in Redis (its record names the node), then the API request goes as it
 * came (method, path, JSON body, the client's Authorization) to that node's
 * API, marked with GB_FORWARD_HEADER (this node's id); the owner's answer
 * (status and JSON) is wt's. A marked request is never forwarded again
 * (the routes answer it from local devices only). wt gets 404 / 409 (no
 * such device / offline, as for play), 503 node-unavailable (its node down,
 * unknown, advertising no API, refusing the connection; Redis failed), 504
 * node-timeout (no whole answer within forward_timeout_ms), 502
 * bad-gateway (an answer that is not HTTP with a JSON object) or
 * node-refused (the owner answered 401/403: the nodes' [api] tokens
 * differ). Returns 0, or -ENOENT (across nodes off, or not a GB id),
 * -EINVAL (a method other than GET/POST, a target or Authorization that
 * cannot be sent on), -EBUSY (forward_max_pending already), -ESHUTDOWN,
 * -EAGAIN (Redis refused the lookup). */
#define GB_FORWARD_HEADER "X-Cascade-Forwarded"
struct gb_forward_req {
    const char *method;            /* "GET" or "POST" */
    const char *target;            /* the API path, "/api/v1/gb/devices/<id>/catalog" */
    const char *authorization;     /* the client's Authorization value; NULL: none */
    const char *body;              /* the request body as sent (JSON); NULL: none */
    size_t body_len;
};
int gb_upper_forward(struct gb_upper *g, const char *device_id, const struct gb_forward_req *r, struct gb_waiter *wt);
/* A middle node's query for a device registered on another node (an
 * upstream's DeviceInfo / DeviceStatus / RecordInfo, gb/lower/lower_relay.c):
 * the API request the same query is on that node — POST
 * /api/v1/gb/devices/<device_id>/info | status (body {"target"} when target)
 * or /records (body {"channel", "start", "end"}) — sent by gb_upper_forward
 * with this node's forward_authorization; wt gets what a client of that
 * API would (the body the query gives on the device's node, or the errors
 * gb_upper_forward lists). Returns as gb_upper_forward; -EINVAL for
 * GB_Q_CATALOG (a catalog is answered from this node's view). */
/* A GET of this node's own to another live node's API (a middle node's
 * directory across nodes, gb/lower/lower_nodes.c): target (an API path with
 * its query) sent to node's advertised API (https when it advertises it),
 * with this node's forward_authorization and GB_FORWARD_HEADER, ended by
 * timeout_ms (0: forward_timeout_ms; never more), the answer's body at most
 * max_body bytes. cb runs once, later (never from this call): rc 0 with the
 * HTTP status and body, or a negative errno (-ETIMEDOUT, -EPROTO / -EMSGSIZE
 * for an answer that is not HTTP or too long, -EHOSTDOWN / -ENOENT /
 * -EADDRNOTAVAIL when the node is not reachable, -ESHUTDOWN when the role
 * stops) with why (may be NULL). Returns 0 (h set), -ENOENT when nodes
 * are not shared, -EINVAL, -ENOMEM. */
struct gb_node_get;
typedef void (*gb_node_get_cb)(void *arg, int rc, int status, const char *body, size_t len, const char *why);
int gb_upper_node_get(struct gb_upper *g, const char *node, const char *target, uint32_t timeout_ms,
                      size_t max_body, gb_node_get_cb cb, void *arg, struct gb_node_get **h);
/* cb will not run; h is freed. */
void gb_upper_node_get_cancel(struct gb_node_get *h);
/* Calls fn for each other live node that advertises an API; returns how
 * many (0 when the nodes are not shared). */
size_t gb_upper_live_nodes(struct gb_upper *g, void (*fn)(void *arg, const char *node), void *arg);
int gb_upper_query_remote(struct gb_upper *g, const char *device_id, enum gb_query_kind kind, const char *target,
                          const char *start, const char *end, struct gb_waiter *wt);
/* Counts an API request that a peer forwarded here (GB_FORWARD_HEADER). */
void gb_upper_peer_query(struct gb_upper *g);

/* ---- a middle node's relay across nodes (issue 16, play_nodes.c) ----
 * An upstream platform INVITEs a middle node for a channel (or device) id;
 * when no device here owns it, the lower role (gb/lower/lower_relay.c)
 * asks where it is: the channel's device (its key <prefix>gbchan:{id},
 * device_mirror.h; no key: id is taken as a device id), then that device's
 * record and its node, as a play from the API does. cb runs exactly once,
 * later (unless cancelled), with status 0 and t, or a SIP status: 404 (no
 * such device on any node, or a stale record naming this node), 480
 * (offline), 503 (its node down or unknown, Redis failed, stopping). t:
 * its node's route, or t->local when the device turns out to be online
 * here (the caller relays as to any of its devices); valid during the call
 * only. Returns 0 (*h set), -ENOENT (across nodes off), -EINVAL (not a GB
 * id), -EBUSY / -EAGAIN (Redis lookups full / refused), -ESHUTDOWN. */
struct gb_node_target {
    const char *device_id;       /* the device that owns the id */
    const char *node;            /* its node */
    const char *route, *hostport; /* that node's marked Route and host:port (NULL when local) */
    bool local;                  /* online here after all */
};
struct gb_locate;
typedef void (*gb_locate_cb)(void *arg, int status, const struct gb_node_target *t);
int gb_upper_locate(struct gb_upper *g, const char *id, gb_locate_cb cb, void *arg, struct gb_locate **h);
/* cb will not run; h is freed. */
void gb_upper_locate_cancel(struct gb_upper *g, struct gb_locate *h);
/* Sends r out of dialog to the node t names (not local), for target_id of
 * device t->device_id, as a play through that node does: Request-URI
 * sip:<target_id>@<node>;gb-device=<device>, its marked Route (the owning
 * node relays it to the device, play_nodes.c), From us. The caller sets
 * the rest (method, headers, body, contact, pin_dest). NULL: not sent (a
 * route that does not read, or the UA refused). */
struct ua_uac *gb_upper_send_via(struct gb_upper *g, const struct gb_node_target *t, const char *target_id,
                                 struct ua_request *r, const struct ua_uac_cb *cb, void *arg);

/* Playback control (GB/T 28181 Annex B): r (method, range, scale; the CSeq
 * is the stream's) goes to the device as MANSRTSP in INFO inside the
 * playback's dialog; wt gets 200 {"stream_id","action","paused","scale"} on
 * the device's 2xx, 502 when it refused, 504 on timeout. 0, or -ENOENT (no
 * such stream), -EINVAL (not a playback), -ENOTCONN (not playing yet),
 * -EIO (not sent). */
struct gb_rtsp_req;
int gb_upper_stream_control(struct gb_upper *g, const char *sid, const struct gb_rtsp_req *r, struct gb_waiter *wt);
/* ---- live view (HTTP-FLV, live.c) ----
 * A live stream of a channel is shared by all its viewers: gb_live_start
 * INVITEs it once (a second call while it is inviting waits for the same
 * answer); it stops [gb] live_idle_stop_ms after its last viewer left.
 * gb_live_playing_json: the shared stream's JSON when it plays now (NULL:
 * call gb_live_start). A reader gets the stream as FLV: a header made for it,
 * then frames from the newest key frame on. */
json_t *gb_live_playing_json(struct gb_upper *g, const char *device_id, const char *channel);
int gb_live_start(struct gb_upper *g, const char *device_id, const char *channel, struct gb_waiter *wt);
struct gb_live_reader;
/* NULL with *err -ENOENT (no such stream), -EINVAL (a playback), -ENOMEM.
 * wake(arg) when bytes arrived for a reader whose read returned 0. */
struct gb_live_reader *gb_live_open(struct gb_upper *g, const char *sid, void (*wake)(void *arg), void *arg,
                                    int *err);
/* Bytes copied (> 0), 0 when none now (wake follows), -1 at the end (the
 * stream stopped and all was read, or the reader stalled until the ring
 * wrapped onto it and the rest of the tag it had begun could not be kept).
 * A reader that falls behind is moved to the newest key frame between two
 * tags (live.c). */
long gb_live_read(struct gb_live_reader *r, uint8_t *buf, size_t cap);
/* The same without a copy: up to max (>= 3) iovecs at what can be sent now
 * (count > 0, 0, -1 as gb_live_read); gb_live_consume(n) when n of those
 * bytes were sent. */
struct iovec;
int gb_live_peek(struct gb_live_reader *r, struct iovec *iov, int max);
void gb_live_consume(struct gb_live_reader *r, size_t n);
void gb_live_close(struct gb_live_reader *r);

/* ---- live view over HLS (live_hls.c) ----
 * The segments of a live stream (MPEG-TS for H.264, fMP4 for H.265) and
 * its live playlist, made from the first HLS request on. client keys a
 * viewer (the caller's choice: a session id, or address + User-Agent);
 * each request counts it as watching for 3 target durations.
 * gb_live_hls_playlist appends the playlist to out (session, when not NULL,
 * is appended to its URIs as ?session=; [A-Za-z0-9._-] only) and returns
 * 0; when no segment is complete yet it queues wt and returns -EINPROGRESS:
 * done(200, NULL) when one is (call again, wt NULL), done(503 | 404, error)
 * after 10 s or when the stream stops. Else -ENOENT (no such stream),
 * -EINVAL (a playback), -EAGAIN (no segment and wt NULL), -ENOMEM. */
int gb_live_hls_playlist(struct gb_upper *g, const char *sid, const char *client, const char *session, sbuf_t *out,
                         struct gb_waiter *wt);
/* The segment called name ("<seq>.ts", "<seq>.m4s", "init.mp4") with a
 * reference the caller drops (gb_hls_segment_unref) when it is sent, and
 * its content type; NULL with *err -ENOENT (no such stream or segment) or
 * -EINVAL (a playback). */
struct gb_hls_segment;
struct gb_hls_segment *gb_live_hls_segment(struct gb_upper *g, const char *sid, const char *name, const char *client,
                                           const char **content_type, int *err);
/* ---- live view over WebRTC (live_rtc.c) ----
 * The SFU the WebRTC output goes through (NULL: none; set before any
 * stream, kept until gb_upper_stop). gb_live_whep: a WHEP viewer of stream
 * sid — its SDP offer in, the answer and the viewer's participant id (its
 * WHEP resource in room gb_live_rtc_room) out. The first viewer makes the
 * stream's source (room "gb-<sid>"); viewers count for the idle stop once
 * their peer connects; the stream's end closes their peers. 0, or
 * -ENOENT (no such stream), -EPERM (a playback), -EINVAL (a bad offer: *why),
 * -EPROTONOSUPPORT (H.265: the browser path needs H.264), -ENOTSUP (no
 * SFU, or nothing in the offer to send), -ENOSPC, -ENOMEM (as sfu_view). */
struct sfu;
void gb_upper_set_sfu(struct gb_upper *g, struct sfu *sfu);
int gb_live_whep(struct gb_upper *g, const char *sid, const char *offer, size_t offer_len, sbuf_t *answer,
                 char id_out[17], const char **why);
/* "gb-<sid>" into out (cap >= 32). */
void gb_live_rtc_room(const char *sid, char *out, size_t cap);

/* BYE and close; 0, or -ENOENT when no such stream. */
int gb_upper_stream_stop(struct gb_upper *g, const char *sid, const char *reason);

/* ---- devices as handles (the middle node, src/gb/lower/lower_relay.c) ----
 * A struct gb_device is opaque outside the role: read it through the
 * accessors below, and only until control goes back to the loop (the role
 * may drop the device then). */
struct gb_device;

/* The device with this id (NULL: none). */
struct gb_device *gb_device_find(struct gb_upper *g, const char *id);
struct gb_device *gb_device_find_str(struct gb_upper *g, str_t id);
/* fn for every device, in no particular order (fn must not add or remove devices). */
void gb_device_foreach(struct gb_upper *g, void (*fn)(struct gb_device *d, void *arg), void *arg);

const char *gb_device_id(const struct gb_device *d);
bool gb_device_online(const struct gb_device *d);
gb_charset_t gb_device_charset(const struct gb_device *d);
/* A non-empty string of the last DeviceInfo answer ("device_name",
 * "manufacturer", "model"), or NULL. */
const char *gb_device_info_str(const struct gb_device *d, const char *key);

/* A channel of a device as its catalog gave it (strings owned by the role,
 * read-only; any may be NULL but id; status "ON", "OFF" or ""). */
struct gb_channel_view {
    const char *id, *name, *parent_id, *manufacturer, *model, *civil_code, *address, *business_group_id, *status;
};
/* Slots 0 .. gb_device_channel_count()-1; false for an empty slot (no id). */
size_t gb_device_channel_count(const struct gb_device *d);
bool gb_device_channel(const struct gb_device *d, size_t i, struct gb_channel_view *out);

/* Sends r out of dialog to the device where it registered from: the role
 * fills r's R-URI (its Contact address, user target_id), From (us), To
 * (target_id) and local host; the caller sets the rest (method, headers,
 * body, contact, pin_dest). The handle as ua_request_send gives it (NULL:
 * not sent); the addressing written into r is only valid during the call. */
struct ua_uac *gb_device_send(struct gb_upper *g, struct gb_device *d, const char *target_id, struct ua_request *r,
                              const struct ua_uac_cb *cb, void *arg);

/* gb_upper_query for a device in hand: starts (or joins) a query; wt (may be
 * NULL) gets the result. 0, or a negative errno (wt then untouched).
 * target: the DeviceID asked about — RecordInfo the channel,
 * DeviceInfo/DeviceStatus the device (NULL) or one of its channels (a camera
 * behind a lower platform); start/end: RecordInfo. */
int gb_query_start(struct gb_upper *g, struct gb_device *d, enum gb_query_kind kind, const char *target,
                   const char *start, const char *end, struct gb_waiter *wt);

#endif
