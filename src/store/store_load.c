/* store_load.c — synchronous reads on the reader connection (see store.h).
 * Meant for start-up and rare admin queries; statements are prepared per call. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "store/store_internal.h"

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

/* The row structs a load fills, one row at a time. */
union store_row {
    struct store_user user;
    struct store_binding binding;
    struct store_gb_device device;
    struct store_gb_channel channel;
    struct store_gb_upstream upstream;
    struct store_gb_record record;
};

/* How a column is read into its field; the field's type decides. */
enum column_kind { COL_TEXT, COL_INT, COL_BOOL, COL_U32, COL_INT64, COL_U64 };

struct column {
    const char *name; /* as written in the SELECT list */
    enum column_kind kind;
    size_t offset; /* of the field in union store_row */
};

/* COLUMN(user, name): the column "name" read into row.user.name; COLUMN_AS
 * when SQL spells the column otherwise. A field of a type read_row() does
 * not know fails to compile. */
#define COLUMN_AS(member, field, sql)                                                                              \
    {sql,                                                                                                          \
     _Generic(((union store_row *)NULL)->member.field, const char *: COL_TEXT, int: COL_INT, bool: COL_BOOL,      \
              uint32_t: COL_U32, int64_t: COL_INT64, uint64_t: COL_U64),                                           \
     offsetof(union store_row, member.field)}
#define COLUMN(member, field) COLUMN_AS(member, field, #field)

/* Each kind of row's columns, in SELECT order. */
static const struct column user_columns[] = {
    COLUMN(user, name), COLUMN(user, realm), COLUMN(user, ha1_md5), COLUMN(user, ha1_sha256),
    COLUMN(user, created_at),
};

static const struct column binding_columns[] = {
    COLUMN(binding, aor), COLUMN(binding, contact), COLUMN(binding, expires_at), COLUMN(binding, q1000),
    COLUMN(binding, call_id), COLUMN(binding, cseq), COLUMN(binding, transport), COLUMN(binding, remote),
    COLUMN(binding, conn_id), COLUMN(binding, path), COLUMN(binding, user_agent), COLUMN(binding, instance),
    COLUMN(binding, reg_id), COLUMN(binding, flags), COLUMN(binding, received_at),
};

static const struct column device_columns[] = {
    COLUMN(device, id), COLUMN(device, password), COLUMN(device, charset), COLUMN(device, auth_enabled),
    COLUMN(device, allow), COLUMN(device, online), COLUMN(device, remote), COLUMN(device, transport),
    COLUMN(device, registered_at), COLUMN(device, last_keepalive), COLUMN(device, expires_at),
    COLUMN(device, info_json), COLUMN(device, status_json),
};

static const struct column channel_columns[] = {
    COLUMN(channel, device_id), COLUMN(channel, id), COLUMN(channel, parent_id), COLUMN(channel, name),
    COLUMN(channel, status), COLUMN(channel, manufacturer), COLUMN(channel, model), COLUMN(channel, civil_code),
    COLUMN(channel, address), COLUMN(channel, extra_json), COLUMN(channel, media),
};

static const struct column upstream_columns[] = {
    COLUMN(upstream, id), COLUMN(upstream, state), COLUMN(upstream, last_error), COLUMN(upstream, registered_at),
    COLUMN(upstream, last_keepalive_ok),
};

static const struct column record_columns[] = {
    COLUMN(record, channel_id), COLUMN(record, start), COLUMN_AS(record, end, "\"end\""), COLUMN(record, file_path),
    COLUMN(record, device_id), COLUMN(record, name), COLUMN(record, type), COLUMN(record, secrecy),
    COLUMN(record, size),
};

/* What a load reads: one kind of row per table of the schema. */
enum row_kind { ROW_USER, ROW_BINDING, ROW_DEVICE, ROW_CHANNEL, ROW_UPSTREAM, ROW_RECORD };

struct table {
    const char *what; /* in log lines: "store: loading <what>: ..." */
    const struct column *columns;
    size_t ncolumns;
};

#define TABLE(what, columns) {what, columns, sizeof(columns) / sizeof(columns[0])}

static const struct table tables[] = {
    [ROW_USER] = TABLE("users", user_columns),
    [ROW_BINDING] = TABLE("bindings", binding_columns),
    [ROW_DEVICE] = TABLE("gb devices", device_columns),
    [ROW_CHANNEL] = TABLE("gb channels", channel_columns),
    [ROW_UPSTREAM] = TABLE("gb upstreams", upstream_columns),
    [ROW_RECORD] = TABLE("gb records", record_columns),
};

/* Row callbacks travel as a generic function pointer and are cast back to
 * their real type here. */
typedef void (*any_fn)(void);

static int deliver(enum row_kind kind, any_fn cb, void *arg, const union store_row *row)
{
    switch (kind) {
    case ROW_USER: return ((store_user_row_cb)cb)(arg, &row->user);
    case ROW_BINDING: return ((store_binding_row_cb)cb)(arg, &row->binding);
    case ROW_DEVICE: return ((store_gb_device_row_cb)cb)(arg, &row->device);
    case ROW_CHANNEL: return ((store_gb_channel_row_cb)cb)(arg, &row->channel);
    case ROW_UPSTREAM: return ((store_gb_upstream_row_cb)cb)(arg, &row->upstream);
    case ROW_RECORD: return ((store_gb_record_row_cb)cb)(arg, &row->record);
    }
    return -EINVAL;
}

static void read_row(sqlite3_stmt *s, const struct table *t, union store_row *row)
{
    for (size_t i = 0; i < t->ncolumns; i++) {
        char *field = (char *)row + t->columns[i].offset;
        int c = (int)i;
        switch (t->columns[i].kind) {
        case COL_TEXT: *(const char **)field = col_text(s, c); break;
        case COL_INT: *(int *)field = sqlite3_column_int(s, c); break;
        case COL_BOOL: *(bool *)field = sqlite3_column_int(s, c) != 0; break;
        case COL_U32: *(uint32_t *)field = (uint32_t)sqlite3_column_int64(s, c); break;
        case COL_INT64: *(int64_t *)field = sqlite3_column_int64(s, c); break;
        case COL_U64: *(uint64_t *)field = (uint64_t)sqlite3_column_int64(s, c); break;
        }
    }
}

/* Writes "SELECT <t's columns> FROM <from>" into sql; -ENAMETOOLONG when it
 * does not fit. */
static int select_sql(char *sql, size_t cap, const struct table *t, const char *from)
{
    size_t n = (size_t)snprintf(sql, cap, "SELECT ");
    for (size_t i = 0; i < t->ncolumns && n < cap; i++)
        n += (size_t)snprintf(sql + n, cap - n, "%s%s", i ? "," : "", t->columns[i].name);
    if (n < cap) n += (size_t)snprintf(sql + n, cap - n, " FROM %s", from);
    return n < cap ? 0 : -ENAMETOOLONG;
}

/* Selects the columns of kind's table FROM from (the table, then WHERE /
 * ORDER BY), lets bind() fill parameters, and delivers each row until cb
 * returns non-zero. */
static int load(struct store *st, enum row_kind kind, const char *from, void (*bind)(sqlite3_stmt *, const void *),
                const void *bind_arg, any_fn cb, void *arg)
{
    const struct table *t = &tables[kind];
    sqlite3 *db = store_reader_db(st);
    if (!db || !cb) return -EINVAL;
    char sql[1024];
    if (select_sql(sql, sizeof(sql), t, from) != 0) {
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
        read_row(s, t, &row);
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
    return load(st, ROW_USER, "users ORDER BY name", NULL, NULL, (any_fn)cb, arg);
}

int store_load_bindings(struct store *st, store_binding_row_cb cb, void *arg)
{
    return load(st, ROW_BINDING, "bindings ORDER BY aor,contact", NULL, NULL, (any_fn)cb, arg);
}

int store_load_gb_devices(struct store *st, store_gb_device_row_cb cb, void *arg)
{
    return load(st, ROW_DEVICE, "gb_devices ORDER BY id", NULL, NULL, (any_fn)cb, arg);
}

static void bind_text1(sqlite3_stmt *s, const void *text)
{
    sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC);
}

int store_load_gb_channels(struct store *st, const char *device_id, store_gb_channel_row_cb cb, void *arg)
{
    if (!device_id) return load(st, ROW_CHANNEL, "gb_channels ORDER BY device_id,id", NULL, NULL, (any_fn)cb, arg);
    return load(st, ROW_CHANNEL, "gb_channels WHERE device_id=?1 ORDER BY id", bind_text1, device_id, (any_fn)cb,
                arg);
}

int store_load_gb_upstreams(struct store *st, store_gb_upstream_row_cb cb, void *arg)
{
    return load(st, ROW_UPSTREAM, "gb_upstreams ORDER BY id", NULL, NULL, (any_fn)cb, arg);
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
    return load(st, ROW_RECORD,
                "gb_records WHERE channel_id=?1 AND start<?3 AND \"end\">?2 ORDER BY start,\"end\",file_path",
                bind_record_query, &q, (any_fn)cb, arg);
}
