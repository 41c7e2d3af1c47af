/* store_load.c — synchronous reads on the reader connection (see store.h).
 * Meant for start-up and rare admin queries; statements are prepared per call.
 * The SELECT list and the reading of each row come from the table's
 * descriptor (store_rows.c). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "store/store_internal.h"

/* The row structs a load fills, one row at a time. */
union store_row {
    struct store_user user;
    struct store_binding binding;
    struct store_gb_device device;
    struct store_gb_channel channel;
    struct store_gb_upstream upstream;
    struct store_gb_record record;
    struct store_subscription subscription;
    struct store_offline_msg offline_msg;
    struct store_presence_allow presence_allow;
    struct store_gb_lower_sub gb_lower_sub;
    struct store_gb_sub gb_sub;
    struct store_node_secret node_secret;
};

/* Row callbacks travel as a generic function pointer and are cast back to
 * their real type here. */
typedef void (*any_fn)(void);

static int deliver(enum store_row_kind kind, any_fn cb, void *arg, const union store_row *row)
{
    switch (kind) {
    case STORE_ROW_USER: return ((store_user_row_cb)cb)(arg, &row->user);
    case STORE_ROW_BINDING: return ((store_binding_row_cb)cb)(arg, &row->binding);
    case STORE_ROW_GB_DEVICE: return ((store_gb_device_row_cb)cb)(arg, &row->device);
    case STORE_ROW_GB_CHANNEL: return ((store_gb_channel_row_cb)cb)(arg, &row->channel);
    case STORE_ROW_GB_UPSTREAM: return ((store_gb_upstream_row_cb)cb)(arg, &row->upstream);
    case STORE_ROW_GB_RECORD: return ((store_gb_record_row_cb)cb)(arg, &row->record);
    case STORE_ROW_SUBSCRIPTION: return ((store_subscription_row_cb)cb)(arg, &row->subscription);
    case STORE_ROW_OFFLINE_MSG: return ((store_offline_msg_row_cb)cb)(arg, &row->offline_msg);
    case STORE_ROW_PRESENCE_ALLOW: return ((store_presence_allow_row_cb)cb)(arg, &row->presence_allow);
    case STORE_ROW_GB_LOWER_SUB: return ((store_gb_lower_sub_row_cb)cb)(arg, &row->gb_lower_sub);
    case STORE_ROW_GB_SUB: return ((store_gb_sub_row_cb)cb)(arg, &row->gb_sub);
    case STORE_ROW_NODE_SECRET: return ((store_node_secret_row_cb)cb)(arg, &row->node_secret);
    case STORE_ROW_KIND_COUNT: break;
    }
    return -EINVAL;
}

/* Selects the columns of kind's table followed by tail (WHERE / ORDER BY),
 * lets bind() fill parameters, and delivers each row until cb returns
 * non-zero. */
static int load(struct store *st, enum store_row_kind kind, const char *tail,
                void (*bind)(sqlite3_stmt *, const void *), const void *bind_arg, any_fn cb, void *arg)
{
    const struct store_row_desc *t = &store_rows[kind];
    sqlite3 *db = store_reader_db(st);
    if (!db || !cb) return -EINVAL;
    char sql[1024];
    if (store_row_select_sql(t, tail, sql, sizeof(sql)) != 0) {
        log_error("store: loading %s: query too long", t->what);
        return -ENAMETOOLONG;
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) {
        log_error("store: loading %s: %s", t->what, sqlite3_errmsg(db));
        return store_errno_from_sqlite(rc);
    }
    if (bind) bind(s, bind_arg);
    int ret = 0;
    union store_row row;
    memset(&row, 0, sizeof(row));
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_row_read(s, t, &row);
        if ((ret = deliver(kind, cb, arg, &row)) != 0) break;
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        log_error("store: loading %s: %s", t->what, sqlite3_errmsg(db));
        ret = store_errno_from_sqlite(rc);
    }
    sqlite3_finalize(s);
    return ret;
}

int store_load_users(struct store *st, store_user_row_cb cb, void *arg)
{
    return load(st, STORE_ROW_USER, "ORDER BY name", NULL, NULL, (any_fn)cb, arg);
}

int store_load_bindings(struct store *st, store_binding_row_cb cb, void *arg)
{
    return load(st, STORE_ROW_BINDING, "ORDER BY aor,contact", NULL, NULL, (any_fn)cb, arg);
}

int store_load_subscriptions(struct store *st, store_subscription_row_cb cb, void *arg)
{
    return load(st, STORE_ROW_SUBSCRIPTION, "ORDER BY call_id,local_tag", NULL, NULL, (any_fn)cb, arg);
}

int store_load_offline_msgs(struct store *st, store_offline_msg_row_cb cb, void *arg)
{
    return load(st, STORE_ROW_OFFLINE_MSG, "ORDER BY id", NULL, NULL, (any_fn)cb, arg);
}

int store_load_presence_allow(struct store *st, store_presence_allow_row_cb cb, void *arg)
{
    return load(st, STORE_ROW_PRESENCE_ALLOW, "ORDER BY user", NULL, NULL, (any_fn)cb, arg);
}

int store_load_node_secrets(struct store *st, store_node_secret_row_cb cb, void *arg)
{
    return load(st, STORE_ROW_NODE_SECRET, "ORDER BY name", NULL, NULL, (any_fn)cb, arg);
}

int store_load_gb_lower_subs(struct store *st, store_gb_lower_sub_row_cb cb, void *arg)
{
    return load(st, STORE_ROW_GB_LOWER_SUB, "ORDER BY upstream, kind", NULL, NULL, (any_fn)cb, arg);
}

int store_load_gb_subs(struct store *st, store_gb_sub_row_cb cb, void *arg)
{
    return load(st, STORE_ROW_GB_SUB, "ORDER BY device_id, kind", NULL, NULL, (any_fn)cb, arg);
}

int store_load_gb_devices(struct store *st, store_gb_device_row_cb cb, void *arg)
{
    return load(st, STORE_ROW_GB_DEVICE, "ORDER BY id", NULL, NULL, (any_fn)cb, arg);
}

static void bind_text1(sqlite3_stmt *s, const void *text)
{
    sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC);
}

int store_load_gb_channels(struct store *st, const char *device_id, store_gb_channel_row_cb cb, void *arg)
{
    if (!device_id) return load(st, STORE_ROW_GB_CHANNEL, "ORDER BY device_id,id", NULL, NULL, (any_fn)cb, arg);
    return load(st, STORE_ROW_GB_CHANNEL, "WHERE device_id=?1 ORDER BY id", bind_text1, device_id, (any_fn)cb,
                arg);
}

int store_load_gb_upstreams(struct store *st, store_gb_upstream_row_cb cb, void *arg)
{
    return load(st, STORE_ROW_GB_UPSTREAM, "ORDER BY id", NULL, NULL, (any_fn)cb, arg);
}

struct record_query {
    const char *channel_id;
    int64_t start, end;
};

static void bind_record_query(sqlite3_stmt *s, const void *p)
{
    const struct record_query *q = p;
    sqlite3_bind_text(s, 1, q->channel_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, q->start);
    sqlite3_bind_int64(s, 3, q->end);
}

int store_load_gb_records(struct store *st, const char *channel_id, int64_t start, int64_t end,
                          store_gb_record_row_cb cb, void *arg)
{
    if (!channel_id) return -EINVAL;
    struct record_query q = {channel_id, start, end};
    return load(st, STORE_ROW_GB_RECORD,
                "WHERE channel_id=?1 AND start<?3 AND \"end\">?2 ORDER BY start,\"end\",file_path",
                bind_record_query, &q, (any_fn)cb, arg);
}
