/* store_load.c — synchronous reads on the reader connection (see store.h).
 * Meant for start-up and rare admin queries; statements are prepared per call. */
#include <errno.h>

#include "base/log.h"
#include "store/store_internal.h"

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

/* Row callbacks travel as a generic function pointer and are cast back to
 * their real type by the matching row function. */
typedef void (*any_fn)(void);
typedef int (*row_fn)(sqlite3_stmt *s, any_fn cb, void *arg);

/* Prepares sql, lets bind() fill parameters, and feeds each row to row(). */
static int load(struct store *st, const char *what, const char *sql, void (*bind)(sqlite3_stmt *, const void *),
                const void *bind_arg, row_fn row, any_fn cb, void *arg)
{
    sqlite3 *db = store_reader_db(st);
    if (!db || !cb) return -EINVAL;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) {
        log_error("store: loading %s: %s", what, sqlite3_errmsg(db));
        return store_errno_from_sqlite(rc);
    }
    if (bind) bind(s, bind_arg);
    int ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if ((ret = row(s, cb, arg)) != 0) break;
    }
    if (ret == 0 && rc != SQLITE_DONE) {
        log_error("store: loading %s: %s", what, sqlite3_errmsg(db));
        ret = store_errno_from_sqlite(rc);
    }
    sqlite3_finalize(s);
    return ret;
}

static int user_row(sqlite3_stmt *s, any_fn cb, void *arg)
{
    struct store_user u = {
        .name = col_text(s, 0),
        .realm = col_text(s, 1),
        .ha1_md5 = col_text(s, 2),
        .ha1_sha256 = col_text(s, 3),
        .created_at = sqlite3_column_int64(s, 4),
    };
    return ((store_user_row_cb)cb)(arg, &u);
}

int store_load_users(struct store *st, store_user_row_cb cb, void *arg)
{
    return load(st, "users", "SELECT name,realm,ha1_md5,ha1_sha256,created_at FROM users ORDER BY name", NULL,
                NULL, user_row, (any_fn)cb, arg);
}

static int binding_row(sqlite3_stmt *s, any_fn cb, void *arg)
{
    struct store_binding b = {
        .aor = col_text(s, 0),
        .contact = col_text(s, 1),
        .expires_at = sqlite3_column_int64(s, 2),
        .q1000 = sqlite3_column_int(s, 3),
        .call_id = col_text(s, 4),
        .cseq = (uint32_t)sqlite3_column_int64(s, 5),
        .transport = col_text(s, 6),
        .remote = col_text(s, 7),
        .conn_id = (uint64_t)sqlite3_column_int64(s, 8),
        .path = col_text(s, 9),
        .user_agent = col_text(s, 10),
        .instance = col_text(s, 11),
        .reg_id = (uint32_t)sqlite3_column_int64(s, 12),
        .flags = (uint32_t)sqlite3_column_int64(s, 13),
        .received_at = sqlite3_column_int64(s, 14),
    };
    return ((store_binding_row_cb)cb)(arg, &b);
}

int store_load_bindings(struct store *st, store_binding_row_cb cb, void *arg)
{
    return load(st, "bindings",
                "SELECT aor,contact,expires_at,q1000,call_id,cseq,transport,remote,conn_id,path,user_agent,"
                "instance,reg_id,flags,received_at FROM bindings ORDER BY aor,contact",
                NULL, NULL, binding_row, (any_fn)cb, arg);
}

static int device_row(sqlite3_stmt *s, any_fn cb, void *arg)
{
    struct store_gb_device d = {
        .id = col_text(s, 0),
        .password = col_text(s, 1),
        .charset = col_text(s, 2),
        .auth_enabled = sqlite3_column_int(s, 3) != 0,
        .allow = sqlite3_column_int(s, 4) != 0,
        .online = sqlite3_column_int(s, 5) != 0,
        .remote = col_text(s, 6),
        .transport = col_text(s, 7),
        .registered_at = sqlite3_column_int64(s, 8),
        .last_keepalive = sqlite3_column_int64(s, 9),
        .expires_at = sqlite3_column_int64(s, 10),
        .info_json = col_text(s, 11),
        .status_json = col_text(s, 12),
    };
    return ((store_gb_device_row_cb)cb)(arg, &d);
}

int store_load_gb_devices(struct store *st, store_gb_device_row_cb cb, void *arg)
{
    return load(st, "gb devices",
                "SELECT id,password,charset,auth_enabled,allow,online,remote,transport,registered_at,"
                "last_keepalive,expires_at,info_json,status_json FROM gb_devices ORDER BY id",
                NULL, NULL, device_row, (any_fn)cb, arg);
}

static int channel_row(sqlite3_stmt *s, any_fn cb, void *arg)
{
    struct store_gb_channel c = {
        .device_id = col_text(s, 0),
        .id = col_text(s, 1),
        .parent_id = col_text(s, 2),
        .name = col_text(s, 3),
        .status = col_text(s, 4),
        .manufacturer = col_text(s, 5),
        .model = col_text(s, 6),
        .civil_code = col_text(s, 7),
        .address = col_text(s, 8),
        .extra_json = col_text(s, 9),
        .media = col_text(s, 10),
    };
    return ((store_gb_channel_row_cb)cb)(arg, &c);
}

static void bind_text1(sqlite3_stmt *s, const void *text)
{
    sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC);
}

int store_load_gb_channels(struct store *st, const char *device_id, store_gb_channel_row_cb cb, void *arg)
{
#define CHANNEL_COLS "SELECT device_id,id,parent_id,name,status,manufacturer,model,civil_code,address,extra_json,media"
    if (!device_id)
        return load(st, "gb channels", CHANNEL_COLS " FROM gb_channels ORDER BY device_id,id", NULL, NULL,
                    channel_row, (any_fn)cb, arg);
    return load(st, "gb channels", CHANNEL_COLS " FROM gb_channels WHERE device_id=?1 ORDER BY id", bind_text1,
                device_id, channel_row, (any_fn)cb, arg);
#undef CHANNEL_COLS
}

static int upstream_row(sqlite3_stmt *s, any_fn cb, void *arg)
{
    struct store_gb_upstream u = {
        .id = col_text(s, 0),
        .state = col_text(s, 1),
        .last_error = col_text(s, 2),
        .registered_at = sqlite3_column_int64(s, 3),
        .last_keepalive_ok = sqlite3_column_int64(s, 4),
    };
    return ((store_gb_upstream_row_cb)cb)(arg, &u);
}

int store_load_gb_upstreams(struct store *st, store_gb_upstream_row_cb cb, void *arg)
{
    return load(st, "gb upstreams",
                "SELECT id,state,last_error,registered_at,last_keepalive_ok FROM gb_upstreams ORDER BY id", NULL,
                NULL, upstream_row, (any_fn)cb, arg);
}

static int record_row(sqlite3_stmt *s, any_fn cb, void *arg)
{
    struct store_gb_record r = {
        .channel_id = col_text(s, 0),
        .start = sqlite3_column_int64(s, 1),
        .end = sqlite3_column_int64(s, 2),
        .file_path = col_text(s, 3),
        .device_id = col_text(s, 4),
        .name = col_text(s, 5),
        .type = col_text(s, 6),
        .secrecy = sqlite3_column_int(s, 7),
        .size = sqlite3_column_int64(s, 8),
    };
    return ((store_gb_record_row_cb)cb)(arg, &r);
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
    return load(st, "gb records",
                "SELECT channel_id,start,\"end\",file_path,device_id,name,type,secrecy,size FROM gb_records "
                "WHERE channel_id=?1 AND start<?3 AND \"end\">?2 ORDER BY start,\"end\",file_path",
                bind_record_query, &q, record_row, (any_fn)cb, arg);
}
