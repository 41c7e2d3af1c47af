/* upper_int.h — what the upper role's files share: upper.c (devices,
 * REGISTER, keepalive, persistence), catalog.c (catalog trees and the
 * queries: Catalog, DeviceInfo, DeviceStatus, RecordInfo, PTZ),
 * catalog_queue.c (catalog-on-register slots), play.c (real-time play and
 * the RTP receiver), upper_strings.c (the string pool) and upper_service.c
 * (the service API of upper.h). Not for other modules: they use upper.h. */
#ifndef CASCADE_GB_UPPER_UPPER_INT_H
#define CASCADE_GB_UPPER_UPPER_INT_H

#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <uv.h>

#include "base/htable.h"
#include "gb/upper/gb_config.h"
#include "base/log.h"
#include "base/timer.h"
#include "gb/codec/gbid.h"
#include "gb/codec/manscdp.h"
#include "gb/codec/mansrtsp.h"
#include "media/ps.h"
#include "media/rtp.h"
#include "gb/upper/upper.h"
#include "sip/local.h"
#include "txn/txn.h"
#include "ua/ua.h"

struct cluster;
struct gb_devmirror;
struct gb_peer_relay;
struct gb_remote_play;
struct gb_forward;
struct gb_devmirror_record;

#define GB_QUERY_TIMEOUT_MS 10000     /* first answer, and between parts of a split answer */
#define GB_RTP_TIMEOUT_MS 20000       /* RTP silence before a stream is stopped */
#define GB_RTP_FIRST_TIMEOUT_MS 30000 /* from the 200 to the first packet */
#define GB_MAX_CHANNELS 100000        /* per device, as the store allows */
#define GB_MAX_RECORDS 10000          /* items in one RecordInfo answer */
#define GB_DEFAULT_EXPIRES 3600
#define GB_MAX_EXPIRES 86400
#define GB_KEEPALIVE_PERSIST_MS 300000 /* last_keepalive reaches the store at most this often */
#define GB_MAX_PENDING_PER_DEVICE 8   /* queries being assembled per device (pushed ones are refused above) */

union gb_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* A channel's strings are read-only: id, name and parent_id share one block
 * the channel owns (id first), the other fields are interned in the upper's
 * string pool (upper_strings.c). Build with gb_channel_init, release with
 * gb_channel_free; a channel struct may be moved (copied) freely. */
struct gb_channel {
    char *id, *name, *parent_id, *manufacturer, *model, *civil_code, *address, *business_group_id;
    char *extra_json;           /* other item fields, JSON object text */
    char status[4];             /* "ON", "OFF" or "" */
};

/* What gb_channel_init copies (any field NULL but id). */
struct gb_channel_src {
    const char *id, *name, *parent_id, *manufacturer, *model, *civil_code, *address, *business_group_id;
    const char *extra_json, *status;
};

/* Channels of an array by id (catalog.c): nodes beside the array. */
struct gb_chan_index {
    struct htable t;
    struct hnode *nodes;        /* nodes[i]: channel i */
    size_t cap;
};

struct gb_query {
    struct gb_query *next;      /* device's pending queries */
    struct gb_upper *g;
    struct gb_device *dev;
    enum gb_query_kind kind;
    bool pushed;                /* started by the device (no query of ours): not joinable */
    uint32_t sn;
    char target[GB_ID_LEN + 1]; /* the DeviceID asked about (not Catalog) */
    struct timer_node timer;
    struct ua_uac *h;           /* the MESSAGE, while its answer is pending */
    struct gb_waiter *waiters;
    uint64_t started_ms;
    /* Catalog / RecordInfo assembly */
    bool have_sum;
    uint32_t sum_num;
    struct gb_channel *items;
    size_t count, cap;
    struct gb_chan_index index; /* items by id (dedupe) */
    json_t *records;            /* array */
    size_t parts;               /* Response MESSAGEs taken */
    size_t dropped;             /* catalog items refused (bad ids): they count towards SumNum */
    bool from_queue;            /* started by the catalog queue: its end frees a slot */
};

/* One subscription of ours to a device (device_subs.c): Catalog, Alarm or
 * MobilePosition (GB/T 28181 §9.11, §9.4, §9.12). Its dialog is kept here,
 * not in the UA: it carries only the SUBSCRIBE refreshes and the NOTIFYs. */
enum gb_sub_kind { GB_SUB_CATALOG = 0, GB_SUB_ALARM, GB_SUB_POSITION, GB_SUB_KINDS };
/* ENDING: our SUBSCRIBE with Expires 0 is in flight (the device's own
 * subscribe list no longer names the kind). */
enum gb_sub_state { GB_SUB_IDLE = 0, GB_SUB_PENDING, GB_SUB_ACTIVE, GB_SUB_ENDING };

struct gb_sub {
    struct gb_device *dev;
    uint8_t kind, state;
    char call_id[UA_CALL_ID_SIZE];
    char local_tag[UA_TAG_SIZE];
    char remote_tag[64];        /* the device's To tag from its 2xx ("" before one) */
    uint32_t cseq;
    struct ua_uac *h;           /* the SUBSCRIBE in flight */
    struct timer_node timer;    /* refresh when active, retry when idle */
    int expires_s;              /* granted */
    int64_t active_since;       /* wall ms; 0 when not active */
    uint64_t notifies;
    char last_error[32];
    bool stored;                /* a gb_subs row holds its dialog (refreshed in it after a restart) */
};

struct gb_device {
    struct hnode by_id;         /* g->devices */
    struct hnode by_conn;       /* g->by_conn, while registered over TCP */
    struct gb_upper *g;
    char id[GB_ID_LEN + 1];
    /* administrative record */
    char *password;             /* NULL: [gb] password */
    gb_charset_t charset;
    bool auth_enabled;
    bool allow;                 /* false: REGISTER refused (403) */
    bool in_store;
    bool reload_seen;           /* gb_upper_reload_devices: still a stored row */
    /* registration */
    bool online;
    enum sip_transport proto;
    union gb_addr addr;
    uint64_t conn_id;
    uint32_t listener_id;
    char *contact;              /* Contact URI of the last REGISTER */
    uint64_t last_nonce;        /* hash of the nonce of the last accepted REGISTER (0 none) */
    char *local_host;           /* our address the device reached (interned: g->strings) */
    int expires_s;
    int64_t registered_at, last_keepalive, expires_at, keepalive_stored_at; /* wall ms */
    int64_t mirrored_at;        /* wall ms of the last write to Redis (device_mirror.h); 0 none */
    uint64_t expires_mono, keepalive_deadline; /* timer clock */
    struct timer_node timer;
    json_t *info, *status;      /* last DeviceInfo / DeviceStatus */
    struct gb_channel *channels;
    size_t channel_count;
    struct gb_query *queries;
    uint32_t streams;
    struct gb_sub *subs;        /* [GB_SUB_KINDS] while online with some kind to subscribe; NULL otherwise (~1 KiB) */
    int8_t sub_own;             /* its own subscribe mask (1 << enum gb_sub_kind); -1: [gb] subscribe */
    json_t *position;           /* newest MobilePosition notify (alarms.c); NULL none */
};

enum gb_stream_state { GB_STREAM_INVITING = 0, GB_STREAM_PLAYING, GB_STREAM_STOPPED };
/* What the RTP payload carries: MPEG-PS (GB/T 28181) or MPEG-TS (PT 33). */
enum gb_container { GB_CONTAINER_UNKNOWN = 0, GB_CONTAINER_PS, GB_CONTAINER_TS };
#define GB_SSRC_FOLLOW_AFTER 3        /* packets of one other SSRC (and none of ours) before it is taken */

enum gb_live_output { GB_LIVE_FLV, GB_LIVE_HLS, GB_LIVE_WEBRTC, GB_LIVE_OUTPUTS };

/* The video a stream carries, as its frames show it (live_info.c). */
struct gb_video_info {
    gb_codec_t codec;             /* the PSM's; H.264 assumed without one */
    int width, height;            /* from the newest key frame's SPS; 0 unknown */
    double sps_fps;               /* the SPS's VUI timing; 0 when it has none */
    double measured_fps;          /* from the PTS over ~2 s; 0 until measured */
    bool meas_on;
    uint64_t meas_pts0;
    uint32_t meas_frames;
};

struct gb_stream {
    struct gb_stream *next, *prev; /* g->streams */
    struct hnode by_sid;          /* g->streams_by_sid */
    struct gb_upper *g;
    char sid[GB_SSRC_LEN + 1];    /* the stream id is its SSRC, unique while it lives */
    char device_id[GB_ID_LEN + 1], channel_id[GB_ID_LEN + 1];
    char ssrc[GB_SSRC_LEN + 1];   /* ours (y= of the offer) */
    uint32_t ssrc_value;          /* what RTP must carry (the answer's y= wins, then what it sends) */
    uint32_t foreign_ssrc;        /* another SSRC seen before any packet with ours */
    uint32_t foreign_count;       /* its packets so far */
    bool foreign_mixed;           /* more than one other SSRC: follow none */
    enum gb_container container;  /* sniffed from the payload */
    bool answer_ts;               /* the answer's rtpmap says MP2T */
    gb_codec_t ts_codec;          /* from the TS program map */
    uint16_t ts_pmt_pid;          /* 0 until the PAT named it */
    bool tcp, playback;
    bool remote;                  /* the device is registered on another node: INVITE through it (play_nodes.c) */
    char via_node[128];           /* remote: that node's id (its death ends the stream: gb_streams_stop_via) */
    bool paused;                  /* playback: the device acknowledged a PAUSE (no RTP expected) */
    double scale;                 /* playback: the speed the device last acknowledged */
    uint32_t rtsp_cseq;           /* MANSRTSP CSeq of the last INFO sent */
    uint16_t port;
    enum gb_stream_state state;
    char stop_reason[32];
    struct ua_uac *h;             /* INVITE pending */
    struct ua_dialog *dlg;
    struct gb_waiter *waiter;     /* play request waiting for the 200 */
    uv_udp_t udp;
    uv_tcp_t listener;
    uv_tcp_t *conn;
    int handles;                  /* libuv handles not yet closed */
    gb_rtp_stats_t rtp;
    gb_rtp_deframer_t deframer;
    gb_ps_demux_t demux;
    bool demux_on;
    uint64_t bytes;               /* RTP payload bytes */
    uint64_t packets_in;          /* datagrams/frames seen, good or not */
    uint64_t bad_packets;
    FILE *dump;
    char *dump_path;
    int64_t started_at;           /* wall ms */
    uint64_t first_rx, last_rx;   /* timer clock */
    uint64_t win_start, win_bytes, bitrate_bps;
    struct timer_node timer;
    struct gb_live *live;         /* HTTP-FLV packaging while viewers watch (live.c) */
    bool live_shared;             /* started for live view: shared per channel, stopped when idle */
    struct timer_node live_idle;
    uint32_t live_viewers[GB_LIVE_OUTPUTS]; /* per output; all zero: the idle stop runs */
    struct gb_live_hls *live_hls; /* HLS segmenter and viewers, from the first HLS request (live_hls.c) */
    struct gb_live_rtc *rtc;      /* WebRTC output: the SFU source while viewers come (live_rtc.c) */
    char h264_plid[7];            /* profile-level-id of the newest SPS, "" before one */
    struct gb_video_info video;   /* live_info.c */
    char buf[65536];
};

/* live.c — the outputs a live stream is watched through. Each output
 * reports its viewers with gb_live_viewer_joined/left (events, and the idle
 * stop of a shared stream when the last one of every output left). */
void gb_live_viewer_joined(struct gb_stream *s, enum gb_live_output o);
void gb_live_viewer_left(struct gb_stream *s, enum gb_live_output o);
const char *gb_live_output_name(enum gb_live_output o);
/* Viewers of s now: in all, and {"flv":n,"hls":n,"webrtc":n} (a new object). */
uint32_t gb_live_viewers(const struct gb_stream *s);
json_t *gb_live_viewers_by_output(const struct gb_stream *s);
void gb_live_on_frame(struct gb_stream *s, const gb_ps_frame_t *f);
/* An audio PES (G.711 for the outputs that carry it: FLV and WebRTC; HLS is video only). */
void gb_live_on_audio(struct gb_stream *s, const gb_ps_audio_t *a);
void gb_live_on_stream_end(struct gb_stream *s, const char *reason);
void gb_live_arm_idle(struct gb_stream *s);
/* The channel's shared live stream (not stopped), or NULL. */
struct gb_stream *gb_live_find_shared(struct gb_upper *g, const char *device_id, const char *channel);
/* The stream just made for device_id/channel becomes the channel's shared
 * live stream (idle stop armed). */
void gb_live_share_newest(struct gb_upper *g, const char *device_id, const char *channel);
void gb_live_on_playing(struct gb_stream *s);
void gb_live_json(const struct gb_stream *s, json_t *o);
/* live_info.c — every frame of a PS stream: the video's size and frame rate learnt. */
void gb_live_learn(struct gb_stream *s, const gb_ps_frame_t *f);
/* live_hls.c — the HLS output: fed every frame, freed when the stream stops. */
void gb_live_hls_on_frame(struct gb_stream *s, const gb_ps_frame_t *f);
void gb_live_hls_on_stream_end(struct gb_stream *s, const char *reason);
void gb_live_hls_json(const struct gb_stream *s, json_t *o);
void gb_live_hls_free_ended(struct gb_upper *g);   /* gb_upper_free */
/* live_rtc.c — the WebRTC output: every frame (codec learnt, the source
 * fed while it exists), the stream's end (the source and its viewers go). */
void gb_live_rtc_on_frame(struct gb_stream *s, const gb_ps_frame_t *f);
void gb_live_rtc_on_audio(struct gb_stream *s, const gb_ps_audio_t *a);
void gb_live_rtc_on_stream_end(struct gb_stream *s);
void gb_live_rtc_json(const struct gb_stream *s, json_t *o);

/* Catalog-on-register queries waiting for a slot (catalog_queue.c). */
struct gb_catq {
    char (*ids)[GB_ID_LEN];       /* ring of device ids */
    uint32_t head, count, cap;
    uint32_t in_flight;           /* queries started from the queue, not ended */
    bool starting;                /* set while the queue calls gb_query_start */
    bool timer_ready;
    struct timer_node timer;      /* starts queries on a fresh timer run */
    uint64_t started, dropped;
    uint64_t paused;              /* timer runs that waited: the node was busy (overload) */
    uint64_t credit;              /* [gb] catalog_rate bucket, in 1/1000 query */
    uint64_t credit_at;           /* when it was last filled (ms) */
};

/* The newest alarms of every device (alarms.c): a bounded ring. */
#define GB_ALARMS_MAX 512
struct gb_alarm_ring {
    json_t *items[GB_ALARMS_MAX];
    uint32_t head, count;
    uint64_t total;
};

struct gb_upper {
    struct gb_config cfg;         /* [gb], copied at gb_upper_new */
    struct sip_local local;       /* copied: user_agent for Server, host as the default media_ip */
    char store_path[512];         /* stream dumps go beside the store's file */
    uv_loop_t *loop;              /* media sockets; NULL: no streams */
    struct timer_service *timers; /* every timer of the role, and its clock */
    struct ua *ua;
    struct store *store;          /* NULL: nothing persisted */
    struct event_bus *events;     /* NULL: no events */
    struct sfu *sfu;              /* WebRTC live view (gb_upper_set_sfu); NULL: none */
    struct txn_admission admission; /* new registrations (overload); zero: admit all */
    struct auth_server *auth;     /* MD5 challenges of our own (devices need MD5) */
    gb_charset_t charset;
    char media_ip[64];
    struct htable devices;        /* every device, by id */
    struct htable by_conn;        /* TCP-registered devices, by conn_id */
    uint32_t online;
    uint32_t next_sn;
    gb_ssrc_alloc_t ssrc;
    uint16_t next_port;
    struct gb_stream *streams;
    struct htable streams_by_sid; /* the same streams by sid */
    uint32_t stream_count;
    uint32_t pending_queries;
    bool stopping;
    struct gb_upper_stats stats;
    struct gb_strpool *strings;   /* interned channel fields and local hosts */
    uint64_t auth_nonce;          /* hash of the nonce check_auth just accepted (0 none) */
    struct log_ratelimit refusal_rl; /* gb_log_refusal: one key for all the role's refusal lines */
    struct gb_catq catq;
    /* gb_query_start's query while its request is being sent: a send that
     * fails at once can close the device's connection, take the device
     * offline and free its queries (gb_queries_fail) before the send
     * returns; query_free then sets starting_freed instead of leaving the
     * starter a dangling pointer. */
    struct gb_query *starting;
    bool starting_freed;
    unsigned sub_mask;            /* 1 << enum gb_sub_kind: [gb] subscribe */
    struct gb_alarm_ring alarms;
    struct gb_devmirror *devmirror; /* [redis] mirror_gb_devices; NULL: off */
    /* [redis] mirror_gb_admin (admin_mirror.c): told of each change made
     * through the admin functions (deleted: the record is gone); NULL: off */
    void (*admin_obs)(void *arg, const char *id, bool deleted);
    void *admin_obs_arg;
    struct cluster *cluster;      /* [redis] cluster_route: the node registry; NULL: no play across nodes */
    struct txn_layer *txn;        /* CANCELs of relayed INVITEs (play_nodes.c) */
    struct gb_remote_play *remote_plays; /* play requests waiting for the device's record */
    struct gb_peer_relay *peer_relays;   /* INVITEs from peer nodes relayed to our devices */
    struct gb_locate *locates;           /* a middle node's relay: looking a channel's node up */
    struct gb_forward *forwards;  /* API requests for devices on other nodes (query_nodes.c) */
    struct gb_node_get *node_gets; /* GETs of our own to other nodes' APIs (query_nodes.c) */
    uint32_t forward_count, forward_timeout_ms, forward_max;
    struct tls_context *forward_tls;    /* https:// hops (deps) */
    char forward_tls_name[256];         /* "": the peer's advertised address */
    char *forward_auth;           /* our own requests to a peer's API (gb_upper_query_remote); NULL: none */
    struct gb_live_hls *hls_ended; /* live_hls.c: ended playbacks' final playlists, a while */
    unsigned hls_ended_count;
};

/* upper.c */
uint64_t gb_now(const struct gb_upper *g);
void gb_device_persist(struct gb_upper *g, struct gb_device *d);
json_t *gb_device_json(struct gb_upper *g, struct gb_device *d, bool full);
void gb_device_dest(const struct gb_device *d, struct transport_dest *out);
/* "ip:port" the device registered from ("" none); cap >= TRANSPORT_ADDR_TEXT. */
void gb_device_remote_text(const struct gb_device *d, char *buf, size_t cap);
/* Fills r for an out-of-dialog request to the device (R-URI its Contact
 * address with user target_id, From us, To target_id@domain). buf holds the
 * strings (>= 512 bytes). */
void gb_device_request(struct gb_upper *g, struct gb_device *d, const char *target_id, struct ua_request *r,
                       char *buf, size_t cap);
void gb_publish(struct gb_upper *g, const char *type, json_t *fields);
void gb_iso_time(int64_t wall_ms, char out[32]);
/* Copies at most cap-1 bytes of in (NULL: "") with anything but printable
 * ASCII as '?': hostile text goes into one plain log line. Returns out. */
const char *gb_log_text(const char *in, char *out, size_t cap);
/* A refusal line (with the sender in it): hostile input must not flood the
 * log, so every refusal of the role shares one rate-limit key (base/log.h:
 * LOG_RATELIMIT_BURST lines a second, then " (suppressed N similar)"). */
#define gb_log_refusal(g, ...) log_write_ratelimited(&(g)->refusal_rl, LOG_WARN, __VA_ARGS__)

/* upper_strings.c: interned, reference-counted strings (never written
 * through). gb_str_intern: NULL for NULL or no memory; gb_str_release takes
 * NULL. The pool must outlive every string taken from it. */
struct gb_strpool;
struct gb_strpool *gb_strpool_new(void);
void gb_strpool_free(struct gb_strpool *p);
char *gb_str_intern(struct gb_strpool *p, const char *s);
void gb_str_release(const char *s);
uint32_t gb_strpool_count(const struct gb_strpool *p);

/* catalog.c: sends the DeviceControl MESSAGE in body to d; its 2xx completes wt
 * with {"sent": true, key: value}, a refusal with 502 (504 on timeout) naming
 * what ("the PTZ command"). 0, or -ENOMEM / -EIO. */
int gb_control_send(struct gb_upper *g, struct gb_device *d, const sbuf_t *body, const char *what, const char *key,
                    const char *value, struct gb_waiter *wt);

/* catalog_queue.c: catalog-on-register through [gb] catalog_concurrency slots. */
void gb_catq_push(struct gb_upper *g, struct gb_device *d);
void gb_catq_done(struct gb_upper *g);   /* a query started from the queue ended */
void gb_catq_free(struct gb_upper *g);

/* catalog.c */
/* 0, or -1 (no id, or no memory: c is then empty). */
int gb_channel_init(struct gb_upper *g, struct gb_channel *c, const struct gb_channel_src *src);
void gb_channel_free(struct gb_channel *c);
void gb_channels_free(struct gb_channel *cs, size_t n);
json_t *gb_channel_json(const struct gb_channel *c);
json_t *gb_channels_tree_json(const struct gb_device *d);
/* A MANSCDP Response/Notify from device d (already answered 200). */
void gb_query_on_response(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m);
void gb_catalog_on_notify(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m);
/* Fails every pending query of d with status (device gone or offline). */
void gb_queries_fail(struct gb_upper *g, struct gb_device *d, int status, const char *code, const char *detail);
int gb_ptz_send(struct gb_upper *g, struct gb_device *d, const char *channel, const char *cmd, int speed,
                struct gb_waiter *wt, char hex_out[17]);
/* Adds wt to the list at *list. */
void gb_waiter_add(struct gb_waiter **list, struct gb_waiter *wt);
/* Hands body (a new reference per waiter) to every waiter of the list and
 * empties it; body is released. */
void gb_waiters_done(struct gb_waiter **list, int status, json_t *body);
json_t *gb_error_json(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* device_subs.c: our subscriptions to devices. */
/* "catalog,alarm,position" -> a mask; unknown words logged and skipped. */
unsigned gb_subs_parse_mask(const char *list);
/* A device's stored subscribe text ("" = [gb] subscribe, "none", or a list)
 * -> -1 (follow the config) or a mask; unknown words are skipped. */
int gb_subs_own_from_text(const char *text);
/* The stored text of a mask (-1: ""). out holds at least GB_SUBS_TEXT_MAX. */
#define GB_SUBS_TEXT_MAX 32
void gb_subs_own_text(int own, char out[GB_SUBS_TEXT_MAX]);
/* The kinds d is to be subscribed to: its own list, else [gb] subscribe. */
unsigned gb_subs_mask(const struct gb_device *d);
/* Its list changed: SUBSCRIBE to the kinds now wanted, and end (SUBSCRIBE
 * with Expires 0) those no longer wanted, when it is online. */
void gb_subs_device_apply(struct gb_upper *g, struct gb_device *d);
/* The names of a mask as a JSON array. */
json_t *gb_subs_mask_json(unsigned mask);
void gb_subs_device_init(struct gb_device *d);
void gb_subs_device_online(struct gb_upper *g, struct gb_device *d);   /* subscribe anew */
void gb_subs_device_offline(struct gb_upper *g, struct gb_device *d);  /* forget, no SUBSCRIBE sent */
/* Restored online from the store at start: our subscriptions did not
 * survive the restart, so new ones go out within a few seconds. */
void gb_subs_device_restored(struct gb_upper *g, struct gb_device *d);
/* At start, after the devices: the dialogs of the subscriptions the store
 * kept, for devices restored online (the refresh of gb_subs_device_restored
 * then goes within them). 0, or a negative errno. */
int gb_subs_load(struct gb_upper *g);
/* 1 when the NOTIFY was for one of our subscriptions (answered). */
int gb_subs_on_notify(struct gb_upper *g, struct txn *st, const struct transport_rx *rx);
json_t *gb_subs_json(const struct gb_device *d);

/* alarms.c: alarms and positions the devices report, alarm reset. */
void gb_alarm_on_notify(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m);
void gb_position_on_notify(struct gb_upper *g, struct gb_device *d, const gb_manscdp_t *m);
int gb_alarm_reset_send(struct gb_upper *g, struct gb_device *d, const char *target, struct gb_waiter *wt);
void gb_alarms_free(struct gb_upper *g);

/* play.c */
/* The Request-URI parameter naming the device in an INVITE sent through
 * the node it is registered to (play_nodes.c). */
#define GB_PEER_DEVICE_PARAM "gb-device"
/* The device is on another node: INVITE sent to that node (node: its id;
 * route, hostport: from the node registry), which relays it to the device;
 * the media comes here. Same results as gb_stream_play. */
int gb_stream_play_via(struct gb_upper *g, const char *device_id, const char *channel, bool tcp, bool dump,
                       int64_t start, int64_t end, const char *node, const char *route, const char *hostport,
                       struct gb_waiter *wt);
/* start/end (epoch seconds, both > 0) ask for a playback (s=Playback, history SSRC). */
int gb_stream_play(struct gb_upper *g, struct gb_device *d, const char *channel, bool tcp, bool dump,
                   int64_t start, int64_t end, struct gb_waiter *wt);
struct gb_stream *gb_stream_find(struct gb_upper *g, const char *sid);
json_t *gb_stream_json(const struct gb_stream *s);
json_t *gb_streams_json(struct gb_upper *g);
/* Stops s (BYE when it has a dialog); reason goes into gb.stream.stopped. */
void gb_stream_stop(struct gb_stream *s, const char *reason, bool send_bye);
void gb_streams_stop_device(struct gb_upper *g, const char *device_id, const char *reason);
/* Node death (play_nodes.c): the streams played through node (device_id
 * NULL: all of them; else only that device's) stop with reason node-lost,
 * BYE sent (to a dead node it only times out; the UA frees the dialog).
 * How many stopped. */
size_t gb_streams_stop_via(struct gb_upper *g, const char *node, const char *device_id);
void gb_streams_stop_all(struct gb_upper *g, const char *reason);
/* A device said a playback/download of channel_id (NULL: any) reached its end. */
void gb_streams_media_end(struct gb_upper *g, const char *device_id, const char *channel_id);

/* play_nodes.c: play across nodes (issue 16). */
/* device_id not registered here: looked up in Redis, then played through
 * its node (live: the channel's shared stream). 0 (wt gets the outcome),
 * -ENOENT (no mirror or cluster: nothing to ask), -EINVAL, -EBUSY (too many
 * lookups waiting), -ESHUTDOWN. */
int gb_play_remote(struct gb_upper *g, const char *device_id, const char *channel, bool tcp, bool dump,
                   int64_t start, int64_t end, bool live, struct gb_waiter *wt);
/* A remote stream's INVITE failed with status: its waiters get the answer. */
void gb_play_remote_failed(struct gb_stream *s, int status);
/* 1 when the request was an INVITE (or its CANCEL) from a peer node for
 * one of our devices (answered, relayed). */
int gb_peer_on_request(struct gb_upper *g, struct txn *st, const struct transport_rx *rx);
/* The device's registration, written behind (upper.c calls these). */
void gb_mirror_online(struct gb_upper *g, struct gb_device *d);
/* A survivor's reap found d registered to dead node `node` (newer than
 * here): offline here, gb.device.offline reason node-lost with the node. */
void gb_device_node_lost(struct gb_upper *g, struct gb_device *d, const char *node);
void gb_mirror_keepalive(struct gb_upper *g, struct gb_device *d);
/* The device's channel keys (its catalog's channel ids -> its id): on a
 * registration and a catalog change. */
void gb_mirror_channels(struct gb_upper *g, struct gb_device *d);
void gb_mirror_offline(struct gb_upper *g, struct gb_device *d);
/* The device went offline: its relays end (BYE both ways, the peer's
 * pending INVITE answered 480). */
void gb_peer_relays_stop_device(struct gb_upper *g, const char *device_id);
/* gb_upper_stop: waiting plays answered 503, relays ended (BYE both ways). */
void gb_nodes_stop(struct gb_upper *g);

/* What a play or an API request for a device not registered here does
 * with the device's record read from Redis (rec NULL: none, or one that
 * does not read); self: this node's id. Pure (tests/unit). */
enum gb_owner_verdict {
    GB_OWNER_GO,           /* online on rec->node, another node */
    GB_OWNER_OFFLINE_HERE, /* known here (offline), online on no other node: 409 */
    GB_OWNER_NOWHERE,      /* no record, or a stale one naming this node: 404 */
    GB_OWNER_OFFLINE,      /* its node has it offline: 409 */
};
enum gb_owner_verdict gb_owner_verdict(const struct gb_devmirror_record *rec, const char *self, bool known_here);
/* The verdict as an answer: 0 (go to rec->node), or the HTTP status with
 * its {"error","detail"} in *err. */
int gb_owner_refusal(struct gb_upper *g, const char *device_id, const struct gb_devmirror_record *rec, json_t **err);

/* query_nodes.c: API requests forwarded to the device's node (issue 16). */
/* gb_nodes_stop: forwards waiting answered 503, their hops closed. */
void gb_forwards_stop(struct gb_upper *g);

#endif
