/* lower_int.h — what the lower role's files share: lower.c (the role, local
 * directory, persistence, events, request dispatch), lower_reg.c (register
 * and keepalive per upstream), lower_query.c (MANSCDP answers and catalog
 * notifies), lower_media.c (INVITE for local channels and the streams),
 * lower_relay.c (middle node: the devices of the upper role relayed upward).
 * Not for other modules: use lower.h. */
#ifndef CASCADE_GB_LOWER_LOWER_INT_H
#define CASCADE_GB_LOWER_LOWER_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/htable.h"
#include "gb/lower/upstream_config.h"
#include "gb/upper/gb_config.h"
#include "base/timer.h"
#include "gb/codec/gbid.h"
#include "gb/lower/lower.h"
#include "gb/codec/manscdp.h"
#include "media/media_sender.h"
#include "ua/ua.h"

#define GB_LOWER_RETRY_MIN_MS 2000      /* first retry after a failed REGISTER */
#define GB_LOWER_RETRY_MAX_MS 120000    /* backoff ceiling */
#define GB_LOWER_STOP_WAIT_MS 2000      /* unregister answers awaited at shutdown */
#define GB_LOWER_CATALOG_WINDOW 4       /* Response MESSAGEs in flight per answer */
#define GB_LOWER_MAX_RECORDS 10000      /* RecordInfo items in one answer */
#define GB_LOWER_MAX_JOBS 64            /* catalog/record answers being sent at once */
#define GB_LOWER_NODE_REPORTS_MAX 256   /* Alarm / MobilePosition NOTIFYs in flight per upstream for
                                         * devices on other nodes (lower_subs.c); more are dropped */

enum gb_up_state { GB_UP_IDLE = 0, GB_UP_REGISTERING, GB_UP_REGISTERED, GB_UP_FAILED, GB_UP_STOPPED };
const char *gb_up_state_name(enum gb_up_state s);

struct gb_lower;

/* A subscription an upstream holds with us (lower_subs.c): Catalog, Alarm
 * or MobilePosition (GB/T 28181 §9.11, §9.4, §9.12). */
enum gb_up_sub_kind { GB_UP_SUB_CATALOG = 0, GB_UP_SUB_ALARM, GB_UP_SUB_POSITION, GB_UP_SUB_KINDS };
struct gb_upstream;
struct gb_up_sub {
    struct gb_upstream *up;           /* set once used (the slot never moves) */
    bool active;
    char call_id[128];
    char local_tag[UA_TAG_SIZE];      /* ours: the To tag of our 2xx */
    char remote_tag[64];              /* the upstream's From tag */
    char contact[160];                /* where NOTIFYs go; "" the upstream's R-URI */
    char event[32];                   /* its Event value, echoed in our NOTIFYs */
    uint32_t cseq;
    uint32_t cseq_ceiling;            /* stored: every CSeq sent is below it (restart-safe) */
    uint64_t expires_at;              /* timer clock */
    int64_t expires_wall;             /* wall ms, as stored */
    uint64_t notifies;
};

struct gb_upstream {
    struct gb_lower *l;
    struct config_upstream cfg;
    int index;
    gb_charset_t charset;
    struct transport_dest dest;       /* TCP: conn_id of the flow once connected */
    char ruri[128];                   /* sip:<upper id>@<domain> */
    enum gb_up_state state;
    char last_error[160];
    int64_t registered_at, last_keepalive_ok;  /* wall ms, 0 never */
    char call_id[UA_CALL_ID_SIZE], from_tag[UA_TAG_SIZE];
    uint32_t cseq;
    struct ua_uac *reg;               /* the REGISTER in flight (one at most) */
    struct ua_uac *ka;                /* the keepalive in flight */
    bool unregistering;
    int misses;                       /* keepalives in a row without a 200 */
    int failures;                     /* REGISTERs in a row that failed (backoff) */
    int granted;                      /* Expires the upper granted */
    uint64_t next_retry_ms;           /* timer clock, when FAILED */
    struct timer_node reg_timer;      /* refresh or retry */
    struct timer_node ka_timer;       /* next keepalive */
    uint64_t registers_sent, register_failures, keepalives_sent, keepalives_ok, keepalives_missed;
    struct gb_up_sub subs[GB_UP_SUB_KINDS];
    bool ever_subscribed;             /* to catalog: changes no longer go as MESSAGE */
    /* The Alarm / MobilePosition NOTIFYs in flight for devices on other
     * nodes (lower_subs.c): at most GB_LOWER_NODE_REPORTS_MAX (allocated at
     * the first), detached by gb_up_free. Counted per kind. */
    struct ua_uac **node_reports;
    uint32_t node_report_count;
    uint64_t node_reports_sent[GB_UP_SUB_KINDS], node_reports_dropped[GB_UP_SUB_KINDS];
    /* One subscription per kind per upstream across the cascade nodes
     * (gb_lower_view_subscribed): our gb.lower.subscribed events of each
     * kind not yet read back from the cluster's view, and the times another
     * node's newer SUBSCRIBE replaced ours. */
    uint32_t sub_view_pending[GB_UP_SUB_KINDS];
    uint64_t subs_replaced_by_node[GB_UP_SUB_KINDS];
    /* Reload (gb_lower_set_upstreams): a slot never moves, since streams,
     * jobs, timers and requests in flight point at it. */
    struct config_upstream given;     /* the section as configured (cfg may be adjusted: 423, defaults) */
    bool removed;                     /* no longer configured: skipped, reusable once its unregister ended */
    bool has_next;                    /* next: the section as changed, applied once the unregister ended */
    struct config_upstream next;
};

struct gb_lchan {                     /* a local channel (store: device_id "") */
    struct hnode by_id;               /* l->chans */
    char id[GB_ID_LEN + 1];
    char *name, *parent_id, *manufacturer, *model, *civil_code, *address, *media;
    char status[4];                   /* "ON" / "OFF" */
    char last_ptz[17];                /* DeviceControl applied here: kept and logged */
    uint64_t controls;
};

/* A stream we send to an upstream for a local channel. */
struct gb_lstream {
    struct gb_lstream *next, *prev;
    struct gb_lower *l;
    struct gb_upstream *up;
    char channel_id[GB_ID_LEN + 1];
    char ssrc[GB_SSRC_LEN + 1];
    char remote[TRANSPORT_ADDR_TEXT];
    struct ua_dialog *dlg;
    struct gb_media_sender *sender;
    int64_t started_at;
    bool playback;                    /* s=Playback/Download: a range, MANSRTSP control, MediaStatus at its end */
    bool ended;                       /* the range was sent; the upstream's BYE is due */
};

/* Middle node: an INVITE from an upstream relayed to a device of the upper role. */
struct gb_relay {
    struct gb_relay *next, *prev;
    struct gb_lower *l;
    struct gb_upstream *up;
    char device_id[GB_ID_LEN + 1], channel_id[GB_ID_LEN + 1];
    struct txn *st;                   /* the upstream's INVITE, until answered */
    struct ua_uac *h;                 /* our INVITE to the device, until its final */
    struct ua_dialog *up_dlg;         /* UAS, with the upstream */
    struct ua_dialog *dev_dlg;        /* UAC, with the device (or the node relaying to it) */
    struct gb_locate *loc;            /* across nodes: looking the channel's node up */
    char node[64];                    /* across nodes: the node it goes through; "" here */
    int64_t started_at;
};

/* One catalog / record answer being sent in several MESSAGEs. */
struct gb_lower_job {
    struct gb_lower_job *next;
    struct gb_lower *l;
    struct gb_upstream *up;
    bool records;                     /* RecordInfo answer (else catalog items) */
    bool notify;                      /* catalog Notify (items carry their Event) */
    uint32_t sn;
    char device_id[GB_ID_LEN + 1];
    char *name;                       /* RecordInfo <Name> */
    gb_catalog_item_t *items;         /* owned copies */
    gb_record_item_t *recs;
    size_t total, next_item, per_msg;
    int inflight;
    struct ua_uac *h[GB_LOWER_CATALOG_WINDOW];
};

/* Middle node: what an upstream asked (DeviceInfo, DeviceStatus, RecordInfo)
 * about a device of the upper role or one of its channels. lower_relay.c asks
 * the device; lower_query.c answers the upstream with what it said. */
struct gb_relay_ask {
    gb_cmd_t cmd;
    uint32_t sn;                      /* the upstream's */
    char id[GB_ID_LEN + 1];           /* the DeviceID it asked about */
    char type[16];                    /* RecordInfo Type ("" or "all": every type) */
    char *name;                       /* RecordInfo <Name>: the channel's name (owned) */
};
struct gb_relay_query;                /* one being asked (lower_relay.c) */

/* A change of a relayed device waiting to go upward (batched, see lower_relay.c). */
struct gb_relay_note {
    char device_id[GB_ID_LEN + 1];
    uint8_t event;                    /* gb_catalog_event_t: ON, OFF or UPDATE */
};

struct gb_clip_cache {
    struct gb_clip_cache *next;
    char *path;
    struct gb_media_clip *clip;
};

struct gb_lower {
    struct ua *ua;
    struct txn_layer *txn;
    struct timer_service *timers;
    uv_loop_t *loop;
    struct store *store;              /* NULL: nothing persisted */
    struct event_bus *events;         /* NULL: no events */
    char default_media[512];          /* [gb] default_media ("" = built-in clip) */
    struct gb_upper *upper;
    char id[GB_ID_LEN + 1];
    char domain[32];                  /* our SIP domain ([gb] domain) */
    char media_ip[64];
    struct gb_upstream *ups;          /* CONFIG_MAX_UPSTREAMS slots */
    int up_count;                     /* slots in use, removed ones included */
    struct htable chans;              /* local channels by id */
    struct gb_lstream *streams;
    uint32_t stream_count;
    struct gb_relay *relays;
    uint32_t relay_count;
    struct gb_relay_query *relay_queries; /* asked of devices, answer pending */
    struct gb_relay_control *relay_controls; /* DeviceControls looking their device's node up */
    struct gb_lower_job *jobs;
    struct gb_dir_fan *dir_fans;      /* catalog answers waiting for other nodes' directories (lower_nodes.c) */
    uint32_t dir_fan_count;
    struct event_bus *view;           /* the cluster's events (other nodes' device changes); NULL: none */
    struct gb_remote_note *rnotes;    /* other nodes' device changes not yet notified */
    size_t rnote_count, rnote_cap;
    bool rnotes_dropped;
    struct timer_node rnote_timer;
    struct gb_rnote_batch *rbatch;    /* a batch asking the nodes for the devices' items */
    uint32_t job_count;
    struct gb_relay_note *notes;      /* relayed device changes not yet notified */
    size_t note_count, note_cap;
    bool notes_dropped;               /* the pending list hit its cap (warned once) */
    struct timer_node note_timer;
    struct gb_clip_cache *clips;
    struct gb_media_clip *builtin;
    uint32_t sn;
    uint64_t rng;                     /* xorshift state for backoff jitter */
    bool started, stopping;
    int stop_pending;
    void (*stop_done)(void *arg);
    void *stop_arg;
    struct timer_node stop_timer;
    struct gb_lower_stats stats;
};

/* lower.c */
uint64_t gb_lower_now(const struct gb_lower *l);
uint64_t gb_lower_random(struct gb_lower *l);
void gb_lower_arm(struct gb_lower *l, struct timer_node *n, uint64_t at, timer_cb cb);
void gb_lower_publish(struct gb_lower *l, const char *type, json_t *fields);
/* lower_relay.c: gb.lower.relay.started's fields; via_node (NULL or "":
 * none) the node the device is registered to when the INVITE went through
 * it ("node" is the stream's: the node that wrote the event). */
json_t *gb_lower_relay_started_fields(const char *upstream, const char *device_id, const char *channel_id,
                                      const char *via_node);
struct gb_lchan *gb_lchan_find(const struct gb_lower *l, str_t id);
void gb_lower_upstream_persist(struct gb_lower *l, struct gb_upstream *up);
/* A request to the upstream outside a dialog: R-URI the upper, From us, To
 * the upper. */
void gb_lower_request_init(struct gb_lower *l, struct gb_upstream *up, enum sip_method m, struct ua_request *r,
                           char *from, size_t from_cap);
/* Sends a MANSCDP MESSAGE to up (cb/arg may be NULL). */
struct ua_uac *gb_lower_send_manscdp(struct gb_lower *l, struct gb_upstream *up, const sbuf_t *body,
                                     const struct ua_uac_cb *cb, void *arg);
/* One stop step finished (an unregister answered). */
void gb_lower_stop_step(struct gb_lower *l);
/* Appends the local channels as catalog items (copies). */
int gb_lower_local_items(struct gb_lower *l, gb_catalog_item_t **items, size_t *n, size_t *cap);
/* The clip for a media path ("" -> [gb] default_media, else built-in). NULL logged. */
struct gb_media_clip *gb_lower_clip(struct gb_lower *l, const char *path);

/* lower_reg.c */
void gb_up_init(struct gb_lower *l, struct gb_upstream *up);
void gb_up_start(struct gb_upstream *up);
/* The registration is gone (keepalives, transport, refusal): event, streams
 * stopped, register again. */
void gb_up_lost(struct gb_upstream *up, const char *reason);
/* Unregisters (Expires: 0) when registered; 1 when an answer is awaited. */
int gb_up_stop(struct gb_upstream *up);
void gb_up_free(struct gb_upstream *up);
json_t *gb_up_json(const struct gb_upstream *up);
/* Whether u can be registered to: a 20-digit id and a numeric host. 0, or
 * -1 with the reason in err. */
int gb_up_check(const struct config_upstream *u, char *err, size_t errcap);
/* Reload: cfg replaces up's section. Keys of the binding (host, port,
 * transport, tls_name, domain, enabled) unregister it (Expires: 0) and
 * register it anew once that was answered; the others take effect at once
 * with a refresh REGISTER when it is registered. */
void gb_up_reconfigure(struct gb_upstream *up, const struct config_upstream *cfg);
/* Reload: the section is gone; its work stops and it unregisters. */
void gb_up_remove(struct gb_upstream *up);

/* lower_subs.c */
/* A SUBSCRIBE from up (new, refresh or Expires 0): answered. */
void gb_lower_on_subscribe(struct gb_lower *l, struct gb_upstream *up, struct txn *st, const struct transport_rx *rx);
/* up's catalog subscription while it lasts, else NULL. */
struct gb_up_sub *gb_lower_catalog_sub(struct gb_upstream *up);
/* Whether catalog changes go to up at all: within its subscription, or as
 * MESSAGE when it never subscribed and notify_without_subscription allows. */
bool gb_lower_catalog_wanted(struct gb_upstream *up);
/* Sends body as NOTIFY within sub (cb/arg may be NULL). */
struct ua_uac *gb_lower_send_notify(struct gb_lower *l, struct gb_upstream *up, struct gb_up_sub *sub,
                                    const sbuf_t *body, const struct ua_uac_cb *cb, void *arg);
void gb_lower_subs_clear(struct gb_upstream *up);
/* A 481 answered a NOTIFY within s (resp: the answer): the upper no longer
 * holds the dialog, so the subscription ends (and its row goes). */
void gb_lower_sub_gone(struct gb_up_sub *s, const struct sip_msg *resp);   /* the registration is gone (stored rows deleted too) */
/* Takes up the subscriptions the store kept (before the upstreams start):
 * those still within their Expires go on in their dialog. */
int gb_lower_subs_load(struct gb_lower *l);
/* Middle node: a gb.alarm or gb.position event of the upper role (ev, its
 * JSON) sent as Alarm / MobilePosition NOTIFY to every upstream holding that
 * subscription. */
void gb_lower_relay_report(struct gb_lower *l, const char *type, const json_t *ev);
/* The same for such an event another node published (the cluster's view,
 * lower_nodes.c): the same upstreams and body, but at most
 * GB_LOWER_NODE_REPORTS_MAX NOTIFYs in flight per upstream (more are
 * dropped, counted and logged). */
void gb_lower_relay_node_report(struct gb_lower *l, const char *type, const json_t *ev);
/* The Notify body for the event ev of a device's report (alarm: a gb.alarm,
 * else a gb.position): the channel's (else the device's) id, the fields
 * as the event names them (README "Events"). 0, or -1 when ev cannot be
 * reported (no valid id; a position without longitude and latitude) or the
 * body was not built. */
int gb_lower_report_body(sbuf_t *body, gb_charset_t cs, uint32_t sn, bool alarm, const json_t *ev);
/* Detaches the NOTIFYs of gb_lower_relay_node_report in flight to up. */
void gb_lower_node_reports_free(struct gb_upstream *up);
json_t *gb_lower_subs_json(const struct gb_upstream *up);

/* lower_query.c */
void gb_lower_on_manscdp(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m);
/* Sends a catalog Notify (one item, with its event) to every registered upstream. */
void gb_lower_notify_channel(struct gb_lower *l, const struct gb_lchan *c, gb_catalog_event_t ev);
void gb_lower_jobs_drop(struct gb_lower *l, struct gb_upstream *up); /* up NULL: all */
/* Sends items[0..n) (each with its Event) as catalog Notifies to every
 * registered upstream, catalog_items per MESSAGE. The items are copied. */
void gb_lower_notify_items(struct gb_lower *l, const gb_catalog_item_t *items, size_t n);
/* A catalog Notify is still being sent to some upstream. */
bool gb_lower_notify_busy(const struct gb_lower *l);
/* Answers up for a query relayed to a device: status 200 with answer the
 * upper role's JSON of the device's Response (see catalog.c), anything else
 * an error (DeviceInfo/DeviceStatus with Result ERROR, RecordInfo an empty
 * list). */
void gb_lower_answer_relayed(struct gb_lower *l, struct gb_upstream *up, const struct gb_relay_ask *ask, int status,
                             const json_t *answer);
/* The DeviceInfo / DeviceStatus Response body of gb_lower_answer_relayed. */
int gb_lower_relayed_body(sbuf_t *out, gb_charset_t cs, const struct gb_relay_ask *ask, int status,
                          const json_t *answer);
/* Appends the records of the upper role's RecordInfo JSON ("records") that
 * match type ("" / "all": every one) to *recs (strings strdup'ed, at most
 * GB_LOWER_MAX_RECORDS). 0 or -ENOMEM. */
int gb_lower_records_from_json(const json_t *answer, const char *type, gb_record_item_t **recs, size_t *n,
                               size_t *cap);
void gb_lower_records_free(gb_record_item_t *recs, size_t n);

/* lower_media.c */
void gb_lower_on_invite(struct gb_lower *l, struct gb_upstream *up, struct txn *st, const struct transport_rx *rx);
void gb_lstreams_stop(struct gb_lower *l, struct gb_upstream *up, const char *reason); /* up NULL: all */

/* lower_relay.c (middle node) */
/* 1 when id names a device of the upper role or one of its channels. */
bool gb_relay_knows(struct gb_lower *l, str_t id);
/* 1 when the upper role finds devices registered on other nodes ([redis]
 * mirror_gb_devices with cluster_route): an INVITE for an id not known
 * here is looked up there (gb_relay_invite). */
bool gb_relay_across_nodes(struct gb_lower *l);
/* Relays the INVITE of st to the device owning the channel. */
void gb_relay_invite(struct gb_lower *l, struct gb_upstream *up, struct txn *st, const struct transport_rx *rx);
/* CANCEL of a relayed INVITE: 1 when it was one. */
int gb_relay_cancel(struct gb_lower *l, struct txn *invite_st);
/* Asks the device owning m->device_id the query m (DeviceInfo, DeviceStatus,
 * RecordInfo) and answers up once it answered, timed out (GB_QUERY_TIMEOUT_MS)
 * or went offline (gb_lower_answer_relayed). Across nodes
 * (gb_relay_across_nodes), an id no device here owns is looked up and asked
 * through its device's node's API; an id on no node gets an error answer.
 * 0 when taken (answered now or later), -ENOENT when no device of the upper
 * role owns the id (and across nodes is off). */
int gb_relay_query(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m);
/* Relays a DeviceControl to the device owning m->device_id. 0 when sent,
 * or (across nodes, gb_relay_across_nodes) taken: looked up, then sent in a
 * peer-marked MESSAGE through the device's node (logged if it cannot be). */
int gb_relay_control(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m);
/* Ends the relayed streams of up (NULL: all) and forgets its relayed queries
 * (no answer goes to it any more). */
void gb_relays_stop(struct gb_lower *l, struct gb_upstream *up, const char *reason);
/* Appends the relayed directory (devices and their channels) as catalog
 * items; only_device: that device's subtree, NULL everything. Strings are
 * strdup'ed (the caller frees with gb_lower_items_free). */
int gb_relay_catalog(struct gb_lower *l, const char *only_device, gb_catalog_item_t **items, size_t *n,
                     size_t *cap);
size_t gb_relay_channel_count(struct gb_lower *l);
/* Appends the relayed devices and channels to arr for GET /gb/channels, each
 * with "device_id" (where it lives) and "online". */
void gb_relay_channels_json(struct gb_lower *l, json_t *arr);
/* Follows the upper role's events (device online/offline, catalog updated)
 * to send catalog Notifies upward; off also drops what was not sent yet. */
void gb_relay_watch(struct gb_lower *l, bool on);

/* lower_query.c: a catalog or record answer built, sent (frees itself when
 * done) or dropped unsent. */
void gb_lower_job_run(struct gb_lower *l, struct gb_lower_job *j);
void gb_lower_job_free(struct gb_lower_job *j);

/* lower_nodes.c (the directory across nodes, issue 16) */
/* Takes catalog job j (its items so far: this node's, cap their capacity)
 * and asks every other live node for its relayed directory (only_device:
 * that device's channels), appends what they answer, and runs the job when
 * all answered or failed (GB_DIR_TIMEOUT_MS at most). 0 when taken;
 * -ENOENT (not across nodes, or no other live node), -EBUSY
 * (GB_DIR_MAX_FANS already wait) or -ENOMEM: the caller keeps j. */
int gb_lower_dir_fanout(struct gb_lower *l, struct gb_lower_job *j, size_t cap, const char *only_device);
/* Stops following the cluster's events and drops what was not notified. */
void gb_lower_remote_unwatch(struct gb_lower *l);
/* Drops the catalog answers of up (NULL: all) still waiting for nodes. */
void gb_lower_dir_drop(struct gb_lower *l, struct gb_upstream *up);
/* What an event of the cluster's view (parsed) is for the relay of reports:
 * GB_UP_SUB_ALARM for a gb.alarm, GB_UP_SUB_POSITION for a gb.position,
 * published by a node other than self (ours go up from our own bus), once
 * the view caught up (ready: what it replays at start is old); -1 for
 * anything else (another type, no "node", self NULL). */
int gb_lower_view_report_kind(const json_t *ev, const char *self, bool ready);
/* One subscription per kind per upstream across the cascade nodes: ev, a
 * gb.lower.subscribed of the cluster's view (in the stream's order, once it
 * caught up), self this node's id. Ours: one fewer of ours to read back.
 * Another node's, for an upstream configured here (same id) and a kind we
 * hold live with none of ours still to read back (so ours came earlier in
 * the stream): the upstream subscribed there after it did here, and ours
 * ends (as a local SUBSCRIBE of the kind replaces the one before; its
 * refresh then gets 481). Every node reads the same order, so exactly the
 * newest stays: each alarm, position or catalog change reaches the upstream
 * once. Anything else: nothing. */
void gb_lower_view_subscribed(struct gb_lower *l, const json_t *ev, const char *self);

/* Answers st out of dialog: a new To tag when the request has none (RFC 3261
 * §8.2.6.2: every response a UAS makes carries one), the extra lines "Name:
 * value". A send failure is logged. */
void gb_lower_respond(struct gb_lower *l, struct txn *st, int status, const char *reason, const str_t *extra,
                      size_t n_extra);

/* Catalog items built by lower_query.c / lower_relay.c. */
int gb_lower_items_push(gb_catalog_item_t **items, size_t *n, size_t *cap, const gb_catalog_item_t *src);
void gb_lower_items_free(gb_catalog_item_t *items, size_t n);
/* Frees the strings of items[from..n) (the array stays). */
void gb_lower_items_free_tail(gb_catalog_item_t *items, size_t from, size_t n);

#endif
