/* store_rows.c — one descriptor per table of the store, and the SQL derived
 * from it (see store_internal.h).
 *
 * A table is its row struct's fields, in column order, each with its SQL
 * default and flags. Every column is NOT NULL; a table with one key column
 * declares it "PRIMARY KEY NOT NULL" inline, one with several adds
 * "PRIMARY KEY(a, b)"; every table is WITHOUT ROWID. The derived CREATE text
 * is byte for byte the one the first schema shipped with (test_store checks
 * it against a database made from that text), so sqlite_master stays the same.
 *
 * To add a column: append it to its table with COLUMN_SINCE(n, ...) and add
 * migration n in store_schema.c (it derives the ALTER TABLE ... ADD COLUMN).
 * Never change or reorder a column that has shipped. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store/store_internal.h"

#define COL_TYPE(rowtype, f)                                                                                       \
    _Generic(((rowtype *)NULL)->f, const char *: STORE_COL_TEXT, int: STORE_COL_INT, bool: STORE_COL_BOOL,       \
             uint32_t: STORE_COL_U32, int64_t: STORE_COL_INT64, uint64_t: STORE_COL_U64)

/* COLUMN(struct store_user, name, NULL, STORE_COL_KEY | STORE_COL_REQUIRED):
 * the column "name" of the field name, no default. COLUMN_AS when SQL spells
 * the name otherwise; COLUMN_SINCE for a column a later migration added. */
#define COLUMN_FULL(since_v, rowtype, f, sqlname, dflt_sql, flg)                                                   \
    {sqlname, #f, COL_TYPE(rowtype, f), offsetof(rowtype, f), dflt_sql, flg, since_v}
#define COLUMN_AS(rowtype, f, sqlname, dflt_sql, flg) COLUMN_FULL(1, rowtype, f, sqlname, dflt_sql, flg)
#define COLUMN(rowtype, f, dflt_sql, flg) COLUMN_FULL(1, rowtype, f, #f, dflt_sql, flg)
#define COLUMN_SINCE(v, rowtype, f, dflt_sql, flg) COLUMN_FULL(v, rowtype, f, #f, dflt_sql, flg)

#define KEY STORE_COL_KEY
#define REQ STORE_COL_REQUIRED
#define JSON STORE_COL_JSON
#define KEEP STORE_COL_KEEP

/* Times are wall-clock ms since the epoch. */

#define U struct store_user
static const struct store_column user_columns[] = {
    COLUMN(U, name, NULL, KEY | REQ),
    COLUMN(U, realm, "''", 0),
    COLUMN(U, ha1_md5, "''", 0),
    COLUMN(U, ha1_sha256, "''", 0),
    COLUMN(U, created_at, "0", KEEP),
};
#undef U

#define B struct store_binding
static const struct store_column binding_columns[] = {
    COLUMN(B, aor, NULL, KEY | REQ),
    COLUMN(B, contact, NULL, KEY | REQ),
    COLUMN(B, expires_at, NULL, 0),
    COLUMN(B, q1000, "1000", 0),
    COLUMN(B, call_id, "''", 0),
    COLUMN(B, cseq, "0", 0),
    COLUMN(B, transport, "'udp'", 0),
    COLUMN(B, remote, "''", 0),
    COLUMN(B, conn_id, "0", 0),
    COLUMN(B, path, "''", 0),
    COLUMN(B, user_agent, "''", 0),
    COLUMN(B, instance, "''", 0),
    COLUMN(B, reg_id, "0", 0),
    COLUMN(B, flags, "0", 0),
    COLUMN(B, received_at, "0", 0),
};
#undef B

#define D struct store_gb_device
static const struct store_column device_columns[] = {
    COLUMN(D, id, NULL, KEY | REQ),
    COLUMN(D, password, "''", 0),
    COLUMN(D, charset, "'GB2312'", 0),
    COLUMN(D, auth_enabled, "1", 0),
    COLUMN(D, allow, "1", 0),
    COLUMN(D, online, "0", 0),
    COLUMN(D, remote, "''", 0),
    COLUMN(D, transport, "''", 0),
    COLUMN(D, registered_at, "0", 0),
    COLUMN(D, last_keepalive, "0", 0),
    COLUMN(D, expires_at, "0", 0),
    COLUMN(D, info_json, "''", JSON),
    COLUMN(D, status_json, "''", JSON),
    COLUMN_SINCE(5, D, subscribe, "''", 0),
};
#undef D

/* device_id may be "" (a lower node's local directory), so it is a key but
 * not required. */
#define C struct store_gb_channel
static const struct store_column channel_columns[] = {
    COLUMN(C, device_id, NULL, KEY),
    COLUMN(C, id, NULL, KEY | REQ),
    COLUMN(C, parent_id, "''", 0),
    COLUMN(C, name, "''", 0),
    COLUMN(C, status, "''", 0),
    COLUMN(C, manufacturer, "''", 0),
    COLUMN(C, model, "''", 0),
    COLUMN(C, civil_code, "''", 0),
    COLUMN(C, address, "''", 0),
    COLUMN(C, extra_json, "''", JSON),
    COLUMN(C, media, "''", 0),
};
#undef C

#define P struct store_gb_upstream
static const struct store_column upstream_columns[] = {
    COLUMN(P, id, NULL, KEY | REQ),
    COLUMN(P, state, "''", 0),
    COLUMN(P, last_error, "''", 0),
    COLUMN(P, registered_at, "0", 0),
    COLUMN(P, last_keepalive_ok, "0", 0),
};
#undef P

/* file_path may be "" and is still part of the key. */
#define R struct store_gb_record
static const struct store_column record_columns[] = {
    COLUMN(R, channel_id, NULL, KEY | REQ),
    COLUMN(R, start, NULL, KEY),
    COLUMN_AS(R, end, "\"end\"", NULL, KEY),
    COLUMN(R, file_path, "''", KEY),
    COLUMN(R, device_id, "''", 0),
    COLUMN(R, name, "''", 0),
    COLUMN(R, type, "''", 0),
    COLUMN(R, secrecy, "0", 0),
    COLUMN(R, size, "0", 0),
};
#undef R

/* Schema version 2 (issue 15): RFC 6665 subscriptions, keyed by dialog. */
#define S struct store_subscription
static const struct store_column subscription_columns[] = {
    COLUMN_SINCE(2, S, call_id, NULL, KEY | REQ),
    COLUMN_SINCE(2, S, local_tag, NULL, KEY | REQ),
    COLUMN_SINCE(2, S, remote_tag, "''", 0),
    COLUMN_SINCE(2, S, event, "''", 0),
    COLUMN_SINCE(2, S, aor, "''", 0),
    COLUMN_SINCE(2, S, subscriber, "''", 0),
    COLUMN_SINCE(2, S, target, "''", 0),
    COLUMN_SINCE(2, S, routes, "''", 0),
    COLUMN_SINCE(2, S, remote, "''", 0),
    COLUMN_SINCE(2, S, transport, "'udp'", 0),
    COLUMN_SINCE(2, S, expires_at, "0", 0),
    COLUMN_SINCE(2, S, local_cseq, "0", 0),
    COLUMN_SINCE(2, S, remote_cseq, "0", 0),
    COLUMN_SINCE(2, S, version, "0", 0),
};
#undef S

/* Schema version 3 (issue 15): offline instant messages. The body may be
 * as long as a *_json field (the [messages] max_body cap sits below it). */
#define M struct store_offline_msg
static const struct store_column offline_msg_columns[] = {
    COLUMN_SINCE(3, M, id, NULL, KEY),
    COLUMN_SINCE(3, M, owner, "''", REQ),
    COLUMN_SINCE(3, M, from_uri, "''", 0),
    COLUMN_SINCE(3, M, to_uri, "''", 0),
    COLUMN_SINCE(3, M, content_type, "''", 0),
    COLUMN_SINCE(3, M, body, "''", JSON),
    COLUMN_SINCE(3, M, received_at, "0", 0),
    COLUMN_SINCE(3, M, state, "'queued'", 0),
    COLUMN_SINCE(3, M, updated_at, "0", 0),
};
#undef M
/* Schema version 4 (issue 15): presence allow lists, one row per user. */
#define A struct store_presence_allow
static const struct store_column presence_allow_columns[] = {
    COLUMN_SINCE(4, A, user, NULL, KEY | REQ),
    COLUMN_SINCE(4, A, watchers, "''", 0),
};
#undef A

/* Schema version 6 (issue 15): subscriptions an upper holds with the lower
 * role, one per upstream and kind. */
#define L struct store_gb_lower_sub
static const struct store_column gb_lower_sub_columns[] = {
    COLUMN_SINCE(6, L, upstream, NULL, KEY | REQ),
    COLUMN_SINCE(6, L, kind, NULL, KEY | REQ),
    COLUMN_SINCE(6, L, call_id, "''", 0),
    COLUMN_SINCE(6, L, local_tag, "''", 0),
    COLUMN_SINCE(6, L, remote_tag, "''", 0),
    COLUMN_SINCE(6, L, contact, "''", 0),
    COLUMN_SINCE(6, L, event, "''", 0),
    COLUMN_SINCE(6, L, cseq_ceiling, "0", 0),
    COLUMN_SINCE(6, L, expires_at, "0", 0),
};
#undef L

/* Schema version 7 (issue 15): the upper role's subscriptions to its
 * devices, one per device and kind. */
#define G struct store_gb_sub
static const struct store_column gb_sub_columns[] = {
    COLUMN_SINCE(7, G, device_id, NULL, KEY | REQ),
    COLUMN_SINCE(7, G, kind, NULL, KEY | REQ),
    COLUMN_SINCE(7, G, call_id, "''", 0),
    COLUMN_SINCE(7, G, local_tag, "''", 0),
    COLUMN_SINCE(7, G, remote_tag, "''", 0),
    COLUMN_SINCE(7, G, cseq, "0", 0),
    COLUMN_SINCE(7, G, expires_at, "0", 0),
};
#undef G

/* Schema version 8 (issue 16): secrets a node keeps across restarts (the
 * key of an edge's Path and flow tokens), one row per name. */
#define S struct store_node_secret
static const struct store_column node_secret_columns[] = {
    COLUMN_SINCE(8, S, name, NULL, KEY | REQ),
    COLUMN_SINCE(8, S, value, "''", 0),
};
#undef S

#define TABLE_SINCE(v, name, what, rowtype, cols) {name, what, v, sizeof(rowtype), cols, sizeof(cols) / sizeof(cols[0])}
#define TABLE(name, what, rowtype, cols) TABLE_SINCE(1, name, what, rowtype, cols)

const struct store_row_desc store_rows[STORE_ROW_KIND_COUNT] = {
    [STORE_ROW_USER] = TABLE("users", "users", struct store_user, user_columns),
    [STORE_ROW_BINDING] = TABLE("bindings", "bindings", struct store_binding, binding_columns),
    [STORE_ROW_GB_DEVICE] = TABLE("gb_devices", "gb devices", struct store_gb_device, device_columns),
    [STORE_ROW_GB_CHANNEL] = TABLE("gb_channels", "gb channels", struct store_gb_channel, channel_columns),
    [STORE_ROW_GB_UPSTREAM] = TABLE("gb_upstreams", "gb upstreams", struct store_gb_upstream, upstream_columns),
    [STORE_ROW_GB_RECORD] = TABLE("gb_records", "gb records", struct store_gb_record, record_columns),
    [STORE_ROW_SUBSCRIPTION] =
        TABLE_SINCE(2, "subscriptions", "subscriptions", struct store_subscription, subscription_columns),
    [STORE_ROW_OFFLINE_MSG] =
        TABLE_SINCE(3, "offline_messages", "offline messages", struct store_offline_msg, offline_msg_columns),
    [STORE_ROW_PRESENCE_ALLOW] = TABLE_SINCE(4, "presence_allow", "presence allow lists", struct store_presence_allow,
                                             presence_allow_columns),
    [STORE_ROW_GB_LOWER_SUB] = TABLE_SINCE(6, "gb_lower_subs", "gb lower subscriptions", struct store_gb_lower_sub,
                                           gb_lower_sub_columns),
    [STORE_ROW_GB_SUB] = TABLE_SINCE(7, "gb_subs", "gb subscriptions", struct store_gb_sub, gb_sub_columns),
    [STORE_ROW_NODE_SECRET] =
        TABLE_SINCE(8, "node_secrets", "node secrets", struct store_node_secret, node_secret_columns),
};

/* ---- Deriving SQL. */

struct sql_buf {
    char *p;
    size_t cap, n;
};

static void put(struct sql_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct sql_buf *b, const char *fmt, ...)
{
    if (b->n >= b->cap) return; /* already truncated */
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n = k < 0 ? b->cap : b->n + (size_t)k;
}

static int done(const struct sql_buf *b) { return b->n < b->cap ? 0 : -ENAMETOOLONG; }

static size_t key_count(const struct store_row_desc *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->ncolumns; i++)
        if (d->columns[i].flags & STORE_COL_KEY) n++;
    return n;
}

/* "name TEXT NOT NULL DEFAULT ''": what CREATE and ADD COLUMN declare. */
static void put_column_decl(struct sql_buf *b, const struct store_column *c, bool inline_key)
{
    put(b, "%s %s%s NOT NULL", c->name, c->type == STORE_COL_TEXT ? "TEXT" : "INTEGER",
        inline_key ? " PRIMARY KEY" : "");
    if (c->dflt) put(b, " DEFAULT %s", c->dflt);
}

int store_row_create_sql(const struct store_row_desc *d, int version, char *sql, size_t cap)
{
    struct sql_buf b = {sql, cap, 0};
    bool one_key = key_count(d) == 1;
    put(&b, "CREATE TABLE %s(", d->table);
    const char *sep = " ";
    for (size_t i = 0; i < d->ncolumns; i++) {
        const struct store_column *c = &d->columns[i];
        if (c->since > version) continue;
        put(&b, "%s", sep);
        put_column_decl(&b, c, one_key && (c->flags & STORE_COL_KEY));
        sep = ", ";
    }
    if (!one_key) {
        put(&b, ", PRIMARY KEY(");
        sep = "";
        for (size_t i = 0; i < d->ncolumns; i++) {
            if (!(d->columns[i].flags & STORE_COL_KEY)) continue;
            put(&b, "%s%s", sep, d->columns[i].name);
            sep = ", ";
        }
        put(&b, ")");
    }
    put(&b, ") WITHOUT ROWID");
    return done(&b);
}

int store_row_add_column_sql(const struct store_row_desc *d, const struct store_column *c, char *sql, size_t cap)
{
    struct sql_buf b = {sql, cap, 0};
    put(&b, "ALTER TABLE %s ADD COLUMN ", d->table);
    put_column_decl(&b, c, false);
    return done(&b);
}

int store_row_upsert_sql(const struct store_row_desc *d, char *sql, size_t cap)
{
    struct sql_buf b = {sql, cap, 0};
    bool keeps = false;
    for (size_t i = 0; i < d->ncolumns; i++)
        if (d->columns[i].flags & STORE_COL_KEEP) keeps = true;
    /* Without a kept column a replace is the whole upsert; with one, only the
     * other non-key columns are updated on conflict. */
    put(&b, "INSERT %sINTO %s(", keeps ? "" : "OR REPLACE ", d->table);
    for (size_t i = 0; i < d->ncolumns; i++) put(&b, "%s%s", i ? "," : "", d->columns[i].name);
    put(&b, ") VALUES(");
    for (size_t i = 0; i < d->ncolumns; i++) put(&b, "%s?%zu", i ? "," : "", i + 1);
    put(&b, ")");
    if (keeps) {
        put(&b, " ON CONFLICT(");
        const char *sep = "";
        for (size_t i = 0; i < d->ncolumns; i++) {
            if (!(d->columns[i].flags & STORE_COL_KEY)) continue;
            put(&b, "%s%s", sep, d->columns[i].name);
            sep = ",";
        }
        put(&b, ") DO UPDATE SET ");
        sep = "";
        for (size_t i = 0; i < d->ncolumns; i++) {
            const struct store_column *c = &d->columns[i];
            if (c->flags & (STORE_COL_KEY | STORE_COL_KEEP)) continue;
            put(&b, "%s%s=excluded.%s", sep, c->name, c->name);
            sep = ",";
        }
    }
    return done(&b);
}

int store_row_delete_sql(const struct store_row_desc *d, char *sql, size_t cap)
{
    struct sql_buf b = {sql, cap, 0};
    put(&b, "DELETE FROM %s WHERE ", d->table);
    size_t k = 0;
    for (size_t i = 0; i < d->ncolumns; i++) {
        if (!(d->columns[i].flags & STORE_COL_KEY)) continue;
        k++;
        put(&b, "%s%s=?%zu", k > 1 ? " AND " : "", d->columns[i].name, k);
    }
    return done(&b);
}

int store_row_select_sql(const struct store_row_desc *d, const char *tail, char *sql, size_t cap)
{
    struct sql_buf b = {sql, cap, 0};
    put(&b, "SELECT ");
    for (size_t i = 0; i < d->ncolumns; i++) put(&b, "%s%s", i ? "," : "", d->columns[i].name);
    put(&b, " FROM %s %s", d->table, tail);
    return done(&b);
}

/* ---- Binding and reading: the hot path of every upsert. */

void store_row_bind(sqlite3_stmt *s, const struct store_row_desc *d, const void *row)
{
    const char *base = row;
    for (size_t i = 0; i < d->ncolumns; i++) {
        const struct store_column *c = &d->columns[i];
        const void *f = base + c->offset;
        int p = (int)i + 1;
        switch (c->type) {
        case STORE_COL_TEXT: {
            const char *v = *(const char *const *)f;
            sqlite3_bind_text(s, p, v ? v : "", -1, SQLITE_STATIC);
            break;
        }
        case STORE_COL_INT: sqlite3_bind_int64(s, p, *(const int *)f); break;
        case STORE_COL_BOOL: sqlite3_bind_int64(s, p, *(const bool *)f); break;
        case STORE_COL_U32: sqlite3_bind_int64(s, p, *(const uint32_t *)f); break;
        case STORE_COL_INT64: sqlite3_bind_int64(s, p, *(const int64_t *)f); break;
        case STORE_COL_U64: sqlite3_bind_int64(s, p, (int64_t) * (const uint64_t *)f); break;
        }
    }
}

void store_row_read(sqlite3_stmt *s, const struct store_row_desc *d, void *row)
{
    char *base = row;
    for (size_t i = 0; i < d->ncolumns; i++) {
        const struct store_column *c = &d->columns[i];
        void *f = base + c->offset;
        int k = (int)i;
        switch (c->type) {
        case STORE_COL_TEXT: {
            const unsigned char *t = sqlite3_column_text(s, k);
            *(const char **)f = t ? (const char *)t : "";
            break;
        }
        case STORE_COL_INT: *(int *)f = sqlite3_column_int(s, k); break;
        case STORE_COL_BOOL: *(bool *)f = sqlite3_column_int(s, k) != 0; break;
        case STORE_COL_U32: *(uint32_t *)f = (uint32_t)sqlite3_column_int64(s, k); break;
        case STORE_COL_INT64: *(int64_t *)f = sqlite3_column_int64(s, k); break;
        case STORE_COL_U64: *(uint64_t *)f = (uint64_t)sqlite3_column_int64(s, k); break;
        }
    }
}
