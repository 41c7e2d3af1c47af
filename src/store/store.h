/* store.h — persistent storage: SQLite in WAL mode behind a small interface.
 *
 * What lives here: users (HA1 only), registrar bindings, event
 * subscriptions (RFC 6665; and those an upper GB platform holds with the
 * lower role), offline instant messages, GB28181 devices, channels, upstream platforms
 * and cached record lists. The in-memory state
 * of each module is authoritative while the daemon runs; the store is what
 * survives a restart.
 *
 * Writes never block the loop thread. A caller builds an operation with one
 * of the store_op_*() constructors (the op copies everything it needs into
 * one allocation) and hands it to store_submit(), which queues it and returns
 * at once. A writer thread drains the queue in batches: everything queued (up
 * to STORE_MAX_BATCH ops) goes into one BEGIN…COMMIT ("group commit"), with
 * prepared statements cached. Completed ops go back to the loop through
 * uv_async_send, and the loop thread calls each op's callback in submission
 * order with status 0 once the op is committed, or a negative errno-style
 * code when it failed (the failure is logged once by the store).
 *
 * Reads (store_load_*) are synchronous and meant for start-up, before the
 * daemon serves, or for rare administrative queries: they run on the calling
 * thread on a second connection and see what has been committed (not what is
 * still queued: store_flush_sync() first if that matters).
 *
 * Threads: every function here except the constructors store_op_*() (which
 * may run anywhere) must be called from the loop thread that opened the store.
 */
#ifndef CASCADE_STORE_STORE_H
#define CASCADE_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct store;
struct store_op;

/* Called on the loop thread; status is 0 (committed) or negative errno
 * (-EIO database error, -ENOSPC disk full, -EBUSY database locked by another
 * process, -ESHUTDOWN store closing). The op itself is freed by the store
 * right after the callback returns. */
typedef void (*store_done_cb)(void *arg, int status);

#define STORE_MAX_BATCH 8192          /* ops per transaction */
#define STORE_MAX_TEXT 8192           /* bytes per ordinary text field */
#define STORE_MAX_JSON (256 * 1024)   /* bytes per *_json field */
#define STORE_MAX_CHANNELS 100000     /* channels in one replace op */

/* ---- Row types. Used both to build ops (fields are copied) and to report
 * loaded rows (pointers valid only during the row callback). Text fields
 * are NUL-terminated; NULL is accepted as "" when building, and loads never
 * report NULL. Times are wall-clock milliseconds since the epoch. */

struct store_user {
    const char *name;          /* key */
    const char *realm;
    const char *ha1_md5;       /* 32 lower-case hex digits, or "" */
    const char *ha1_sha256;    /* 64 lower-case hex digits, or "" */
    int64_t created_at;        /* kept from the first insert on upsert */
};

struct store_binding {
    const char *aor;           /* key part 1 */
    const char *contact;       /* key part 2 */
    int64_t expires_at;
    int q1000;
    const char *call_id;
    uint32_t cseq;
    const char *transport;     /* "udp", "tcp", ... */
    const char *remote;        /* "ip:port" the REGISTER came from */
    uint64_t conn_id;          /* 0 when none (meaningless after a restart) */
    const char *path;          /* RFC 3327 Path, may be "" */
    const char *user_agent;
    const char *instance;      /* +sip.instance, may be "" */
    uint32_t reg_id;           /* RFC 5626 reg-id, 0 when absent */
    uint32_t flags;            /* location flags (see registrar/location.h) */
    int64_t received_at;       /* when the last REGISTER for it arrived */
};

struct store_gb_device {
    const char *id;            /* 20-digit GB id, key */
    const char *password;      /* digest password for this device, "" = realm default */
    const char *charset;       /* "GB2312" | "UTF-8" */
    bool auth_enabled;
    bool allow;                /* false: refuse its REGISTER (403) */
    bool online;
    const char *remote;
    const char *transport;
    int64_t registered_at;
    int64_t last_keepalive;
    int64_t expires_at;
    const char *info_json;     /* last DeviceInfo as JSON text, may be "" */
    const char *status_json;   /* last DeviceStatus as JSON text, may be "" */
    const char *subscribe;     /* schema 5: its own [gb] subscribe ("catalog,alarm", "none"); "" = the config's */
};

struct store_gb_channel {
    const char *device_id;     /* key part 1; "" for the local directory of a lower node */
    const char *id;            /* key part 2 */
    const char *parent_id;
    const char *name;
    const char *status;        /* "ON" | "OFF" | "" */
    const char *manufacturer;
    const char *model;
    const char *civil_code;
    const char *address;
    const char *extra_json;    /* other catalog item fields as JSON text */
    const char *media;         /* local channels: media file to play */
};

struct store_gb_upstream {
    const char *id;            /* upper platform id, key */
    const char *state;         /* "registering" | "registered" | "failed" */
    const char *last_error;
    int64_t registered_at;
    int64_t last_keepalive_ok;
};

struct store_gb_record {
    const char *device_id;
    const char *channel_id;    /* key part 1 */
    const char *name;
    int64_t start;             /* key part 2 (wall ms) */
    int64_t end;               /* key part 3 */
    const char *type;          /* "time" | "alarm" | "manual" | ... */
    const char *file_path;     /* key part 4, may be "" */
    int secrecy;
    int64_t size;              /* bytes, 0 when unknown */
};

/* An RFC 6665 subscription the notifier (src/subs) holds: the dialog as
 * the notifier sees it, so that it survives a restart. */
struct store_subscription {
    const char *call_id;       /* key part 1 */
    const char *local_tag;     /* key part 2: our tag (the To tag of our 200) */
    const char *remote_tag;    /* the subscriber's From tag */
    const char *event;         /* package: "reg" */
    const char *aor;           /* the resource (location key) */
    const char *subscriber;    /* the subscriber's From URI */
    const char *target;        /* remote target: the SUBSCRIBE's Contact URI */
    const char *routes;        /* route set, Record-Route values comma-joined in order, or "" */
    const char *remote;        /* "ip:port" the SUBSCRIBE came from */
    const char *transport;     /* "udp", "tcp", ... */
    int64_t expires_at;
    uint32_t local_cseq;       /* last CSeq of our NOTIFYs */
    uint32_t remote_cseq;      /* last CSeq of the subscriber's requests */
    uint32_t version;          /* the package's document version (reginfo) */
};

/* An instant message (RFC 3428 MESSAGE) kept for a user who could not take
 * it (src/subs/offline_msg.c), until it is delivered or expires. */
struct store_offline_msg {
    uint64_t id;               /* key: arrival order on this node */
    const char *owner;         /* the recipient's AoR key (as the location service keys it) */
    const char *from_uri;      /* the sender's From (name-addr, tag removed) */
    const char *to_uri;        /* the To the sender wrote (name-addr, no tag) */
    const char *content_type;
    const char *body;          /* text up to STORE_MAX_JSON; "" once delivered or expired */
    int64_t received_at;
    const char *state;         /* "queued" | "delivered" | "expired" */
    int64_t updated_at;        /* the last change of state */
};

/* Who may watch a user's presence under [subscriptions] presence_policy =
 * allowlist (src/subs/presence.h); schema version 4. */
struct store_presence_allow {
    const char *user;          /* key: the watched user */
    const char *watchers;      /* user names, comma-joined */
};

/* A secret the node keeps across restarts (src/app: the key of an edge's
 * Path and flow tokens when [proxy] edge_secret is unset); schema version 8. */
struct store_node_secret {
    const char *name;          /* key: what it is for ("edge_token_key") */
    const char *value;         /* hex */
};

/* A subscription an upper platform holds with the lower role (GB/T 28181
 * §9.11/§9.4/§9.12; src/gb/lower/lower_subs.c), so that the NOTIFYs go on
 * within it after a restart; schema version 6. */
struct store_gb_lower_sub {
    const char *upstream;      /* key part 1: the upper platform's id */
    const char *kind;          /* key part 2: "catalog" | "alarm" | "position" */
    const char *call_id;
    const char *local_tag;     /* ours: the To tag of our 2xx */
    const char *remote_tag;    /* the upper's From tag */
    const char *contact;       /* where NOTIFYs go, "" the upstream's R-URI */
    const char *event;         /* its Event value, echoed in our NOTIFYs */
    uint32_t cseq_ceiling;     /* every NOTIFY CSeq sent so far is below it */
    int64_t expires_at;        /* wall ms */
};

/* A subscription the upper role holds with one of its devices
 * (src/gb/upper/device_subs.c): its dialog, so that after a restart it is
 * refreshed in that dialog instead of made anew; schema version 7. */
struct store_gb_sub {
    const char *device_id;     /* key part 1 */
    const char *kind;          /* key part 2: "catalog" | "alarm" | "position" */
    const char *call_id;
    const char *local_tag;     /* ours: the From tag of our SUBSCRIBEs */
    const char *remote_tag;    /* the device's To tag */
    uint32_t cseq;             /* our last SUBSCRIBE's CSeq */
    int64_t expires_at;        /* wall ms */
};

/* ---- Opening and closing. */

/* Opens or creates the database at path, brings the schema up to date and
 * starts the writer thread. Returns NULL with a message in err on failure.
 * Must be called on loop's thread. */
struct store *store_open(uv_loop_t *loop, const char *path, char *err, size_t errcap);

/* Group-commit window ([store] commit_window_ms; 0, store_open's default:
 * commit at the end of the loop iteration that submitted). With a window,
 * ops wait up to `ms` after the first of them for company, so that at
 * moderate rates one COMMIT (its WAL writes and file locks) serves several;
 * a burst of 32 goes at once, and flush and close do not wait. The price:
 * each op's callback (for the registrar, the 200) up to `ms` later. Loop
 * thread only. */
void store_set_commit_window(struct store *st, uint32_t ms);

/* Waits until every op submitted so far is committed (or failed), then runs
 * their callbacks on the calling (loop) thread before returning. For shutdown
 * and tests; it blocks. Inside a store callback it only waits: the pending
 * callbacks run when the outer delivery continues. */
void store_flush_sync(struct store *st);

/* Ops submitted whose callbacks have not run yet (0: everything submitted so
 * far is committed and reported). Loop thread only; no lock. */
uint64_t store_in_flight(const struct store *st);

/* The ops are numbered 1, 2, ... in the order they are submitted and
 * reported in that order: store_submitted is the number of the last op
 * submitted (0: none yet), and op N has been committed and reported once
 * store_completed >= N. Loop thread only; no lock. */
uint64_t store_submitted(const struct store *st);
uint64_t store_completed(const struct store *st);

/* Drains the queue (callbacks run before it returns), joins the writer,
 * closes the database and frees the store. Not from inside a store callback. The async handle is closed with
 * uv_close, so, as with any libuv handle, run the loop once more before
 * uv_loop_close(). NULL is ignored. */
void store_close(struct store *st);

/* ---- Writing. */

/* Queues op (ownership passes to the store in every case). Returns 0, then
 * cb (may be NULL) is called later on the loop thread, never from inside
 * store_submit. Returns -ENOMEM when op is NULL (a constructor failed; pass
 * its result straight in) and -ESHUTDOWN when the store is closing; then the
 * op is freed and cb is never called. */
int store_submit(struct store *st, struct store_op *op, store_done_cb cb, void *arg);

/* Op constructors: copy their arguments, return NULL (logged) on allocation
 * failure or when a key is empty or a field exceeds the limits above. */
struct store_op *store_op_binding_upsert(const struct store_binding *b);
struct store_op *store_op_binding_delete(const char *aor, const char *contact);
struct store_op *store_op_binding_delete_aor(const char *aor);
/* Deletes every binding with expires_at <= before (stale rows at start-up). */
struct store_op *store_op_binding_delete_expired(int64_t before);
struct store_op *store_op_user_upsert(const struct store_user *u);
struct store_op *store_op_user_delete(const char *name);
struct store_op *store_op_gb_device_upsert(const struct store_gb_device *d);
/* Also deletes the device's channels and cached records. */
struct store_op *store_op_gb_device_delete(const char *id);
struct store_op *store_op_gb_channel_upsert(const struct store_gb_channel *c);
struct store_op *store_op_gb_channel_delete(const char *device_id, const char *id);
/* Replaces all channels of device_id with chs[0..n) (a fresh catalog);
 * every chs[i].device_id is ignored and taken from device_id. */
struct store_op *store_op_gb_channels_replace(const char *device_id, const struct store_gb_channel *chs,
                                              size_t n);
struct store_op *store_op_gb_upstream_upsert(const struct store_gb_upstream *u);
struct store_op *store_op_gb_upstream_delete(const char *id);
struct store_op *store_op_gb_record_upsert(const struct store_gb_record *r);
/* Deletes records of channel_id overlapping [start, end). */
struct store_op *store_op_gb_records_delete(const char *channel_id, int64_t start, int64_t end);
struct store_op *store_op_subscription_upsert(const struct store_subscription *s);
struct store_op *store_op_subscription_delete(const char *call_id, const char *local_tag);
struct store_op *store_op_offline_msg_upsert(const struct store_offline_msg *m);
/* Deletes every offline message not "queued" whose updated_at <= before
 * (the sweep of delivered and expired ones). */
struct store_op *store_op_offline_msgs_delete_done(int64_t before);
struct store_op *store_op_presence_allow_upsert(const struct store_presence_allow *a);
struct store_op *store_op_presence_allow_delete(const char *user);
struct store_op *store_op_gb_lower_sub_upsert(const struct store_gb_lower_sub *s);
struct store_op *store_op_gb_lower_sub_delete(const char *upstream, const char *kind);
struct store_op *store_op_gb_sub_upsert(const struct store_gb_sub *s);
struct store_op *store_op_gb_sub_delete(const char *device_id, const char *kind);
struct store_op *store_op_node_secret_upsert(const struct store_node_secret *s);
/* Does nothing; its callback fires once everything submitted before it is
 * committed (or failed). */
struct store_op *store_op_barrier(void);
void store_op_free(struct store_op *op);   /* only for an op never submitted */

/* ---- Reading (synchronous). Row callbacks return 0 to continue or any
 * other value to stop; a load returns 0, that value, or a negative errno
 * (logged) on a database error. */
typedef int (*store_user_row_cb)(void *arg, const struct store_user *row);
typedef int (*store_binding_row_cb)(void *arg, const struct store_binding *row);
typedef int (*store_gb_device_row_cb)(void *arg, const struct store_gb_device *row);
typedef int (*store_gb_channel_row_cb)(void *arg, const struct store_gb_channel *row);
typedef int (*store_gb_upstream_row_cb)(void *arg, const struct store_gb_upstream *row);
typedef int (*store_gb_record_row_cb)(void *arg, const struct store_gb_record *row);
typedef int (*store_subscription_row_cb)(void *arg, const struct store_subscription *row);
typedef int (*store_offline_msg_row_cb)(void *arg, const struct store_offline_msg *row);

int store_load_users(struct store *st, store_user_row_cb cb, void *arg);
int store_load_bindings(struct store *st, store_binding_row_cb cb, void *arg);   /* by aor, contact */
int store_load_gb_devices(struct store *st, store_gb_device_row_cb cb, void *arg);
int store_load_subscriptions(struct store *st, store_subscription_row_cb cb, void *arg);
int store_load_offline_msgs(struct store *st, store_offline_msg_row_cb cb, void *arg);   /* by id */
typedef int (*store_presence_allow_row_cb)(void *arg, const struct store_presence_allow *row);
int store_load_presence_allow(struct store *st, store_presence_allow_row_cb cb, void *arg);
typedef int (*store_gb_lower_sub_row_cb)(void *arg, const struct store_gb_lower_sub *row);
int store_load_gb_lower_subs(struct store *st, store_gb_lower_sub_row_cb cb, void *arg);
typedef int (*store_gb_sub_row_cb)(void *arg, const struct store_gb_sub *row);
int store_load_gb_subs(struct store *st, store_gb_sub_row_cb cb, void *arg);
typedef int (*store_node_secret_row_cb)(void *arg, const struct store_node_secret *row);
int store_load_node_secrets(struct store *st, store_node_secret_row_cb cb, void *arg);
/* device_id NULL: every channel (ordered by device, id); else that device's. */
int store_load_gb_channels(struct store *st, const char *device_id, store_gb_channel_row_cb cb, void *arg);
int store_load_gb_upstreams(struct store *st, store_gb_upstream_row_cb cb, void *arg);
/* Records of channel_id overlapping [start, end), ordered by start. */
int store_load_gb_records(struct store *st, const char *channel_id, int64_t start, int64_t end,
                          store_gb_record_row_cb cb, void *arg);

/* ---- Introspection (for /stats and benchmarks). */
struct store_stats {
    uint64_t submitted;        /* ops accepted by store_submit */
    uint64_t completed;        /* callbacks delivered */
    uint64_t failed;           /* of which with an error status */
    uint64_t batches;          /* transactions committed or attempted */
    uint64_t max_batch;        /* largest batch seen */
    uint64_t inline_batches;   /* of batches, those the loop thread committed itself */
    uint64_t checkpoints;      /* WAL checkpoints the writer ran */
};
void store_get_stats(struct store *st, struct store_stats *out);
/* Time of each batch transaction (BEGIN, the ops, COMMIT; failed ones too),
 * on whichever thread ran it: for the metrics (base/histogram.h; read it
 * with histogram_snapshot). Valid until store_close. */
struct histogram;
const struct histogram *store_commit_histogram(const struct store *st);
/* Schema version the code writes (PRAGMA user_version after open). */
int store_schema_version(void);

#endif
