/* store_op.c — store operations: building them (any thread) and running them
 * on the writer connection (writer thread only).
 *
 * An op is one allocation: the header with a copy of the caller's row struct,
 * then every string it points to, copied and NUL-terminated. The row's
 * descriptor (store_rows.c) drives the size pass, the copy pass and the
 * binds, and gives the upsert and delete-by-key statements, so adding a
 * column touches only the descriptor (and the row struct). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "store/store_internal.h"

_Static_assert(offsetof(struct store_op, data) % _Alignof(struct store_gb_channel) == 0,
               "channel items follow the op header");

static const struct store_row_desc *const user_row = &store_rows[STORE_ROW_USER];
static const struct store_row_desc *const binding_row = &store_rows[STORE_ROW_BINDING];
static const struct store_row_desc *const device_row = &store_rows[STORE_ROW_GB_DEVICE];
static const struct store_row_desc *const channel_row = &store_rows[STORE_ROW_GB_CHANNEL];
static const struct store_row_desc *const upstream_row = &store_rows[STORE_ROW_GB_UPSTREAM];
static const struct store_row_desc *const record_row = &store_rows[STORE_ROW_GB_RECORD];
static const struct store_row_desc *const subscription_row = &store_rows[STORE_ROW_SUBSCRIPTION];
static const struct store_row_desc *const offline_msg_row = &store_rows[STORE_ROW_OFFLINE_MSG];
static const struct store_row_desc *const presence_allow_row = &store_rows[STORE_ROW_PRESENCE_ALLOW];
static const struct store_row_desc *const gb_lower_sub_row = &store_rows[STORE_ROW_GB_LOWER_SUB];
static const struct store_row_desc *const gb_sub_row = &store_rows[STORE_ROW_GB_SUB];
static const struct store_row_desc *const node_secret_row = &store_rows[STORE_ROW_NODE_SECRET];

static const char *const kind_names[STORE_OP_KIND_COUNT] = {
    [STORE_OP_BARRIER] = "barrier",
    [STORE_OP_BINDING_UPSERT] = "binding upsert",
    [STORE_OP_BINDING_DELETE] = "binding delete",
    [STORE_OP_BINDING_DELETE_AOR] = "binding delete-aor",
    [STORE_OP_BINDING_DELETE_EXPIRED] = "binding delete-expired",
    [STORE_OP_USER_UPSERT] = "user upsert",
    [STORE_OP_USER_DELETE] = "user delete",
    [STORE_OP_GB_DEVICE_UPSERT] = "gb device upsert",
    [STORE_OP_GB_DEVICE_DELETE] = "gb device delete",
    [STORE_OP_GB_CHANNEL_UPSERT] = "gb channel upsert",
    [STORE_OP_GB_CHANNEL_DELETE] = "gb channel delete",
    [STORE_OP_GB_CHANNELS_REPLACE] = "gb channels replace",
    [STORE_OP_GB_UPSTREAM_UPSERT] = "gb upstream upsert",
    [STORE_OP_GB_UPSTREAM_DELETE] = "gb upstream delete",
    [STORE_OP_GB_RECORD_UPSERT] = "gb record upsert",
    [STORE_OP_GB_RECORDS_DELETE] = "gb records delete",
    [STORE_OP_SUBSCRIPTION_UPSERT] = "subscription upsert",
    [STORE_OP_SUBSCRIPTION_DELETE] = "subscription delete",
    [STORE_OP_OFFLINE_MSG_UPSERT] = "offline message upsert",
    [STORE_OP_OFFLINE_MSGS_DELETE_DONE] = "offline messages delete-done",
    [STORE_OP_PRESENCE_ALLOW_UPSERT] = "presence allow upsert",
    [STORE_OP_PRESENCE_ALLOW_DELETE] = "presence allow delete",
    [STORE_OP_GB_LOWER_SUB_UPSERT] = "gb lower subscription upsert",
    [STORE_OP_GB_LOWER_SUB_DELETE] = "gb lower subscription delete",
    [STORE_OP_GB_SUB_UPSERT] = "gb subscription upsert",
    [STORE_OP_GB_SUB_DELETE] = "gb subscription delete",
    [STORE_OP_NODE_SECRET_UPSERT] = "node secret upsert",
};

const char *store_op_kind_name(enum store_op_kind kind)
{
    return (unsigned)kind < STORE_OP_KIND_COUNT ? kind_names[kind] : "?";
}

static const char **field_at(const void *row, const struct store_column *c)
{
    return (const char **)((char *)(uintptr_t)row + c->offset);
}

static size_t text_max(const struct store_column *c)
{
    return (c->flags & STORE_COL_JSON) ? STORE_MAX_JSON : STORE_MAX_TEXT;
}

/* Adds the bytes row's strings need to *total; false (logged) when a field
 * is too long or a required one is empty. */
static bool measure(const void *row, const struct store_column *cols, size_t n, const char *what, size_t *total)
{
    for (size_t i = 0; i < n; i++) {
        if (cols[i].type != STORE_COL_TEXT) continue;
        const char *s = *field_at(row, &cols[i]);
        size_t max = text_max(&cols[i]);
        size_t len = s ? strnlen(s, max + 1) : 0;
        if (len > max) {
            log_warn("store: %s refused: %s longer than %zu bytes", what, cols[i].field, max);
            return false;
        }
        if ((cols[i].flags & STORE_COL_REQUIRED) && len == 0) {
            log_warn("store: %s refused: empty %s", what, cols[i].field);
            return false;
        }
        *total += len + 1;
    }
    return true;
}

/* Copies row's strings to *cur and re-points the row's fields at the copies. */
static void pack(void *row, const struct store_column *cols, size_t n, char **cur)
{
    for (size_t i = 0; i < n; i++) {
        if (cols[i].type != STORE_COL_TEXT) continue;
        const char **f = field_at(row, &cols[i]);
        size_t len = *f ? strlen(*f) : 0;
        if (len) memcpy(*cur, *f, len);
        (*cur)[len] = '\0';
        *f = *cur;
        *cur += len + 1;
    }
}

static struct store_op *op_alloc(enum store_op_kind kind, size_t extra)
{
    struct store_op *op = calloc(1, sizeof(*op) + extra);
    if (!op) {
        log_error("store: out of memory building a %s op", store_op_kind_name(kind));
        return NULL;
    }
    op->kind = kind;
    return op;
}

/* An op holding one row struct (copied into the union at offset 0). */
static struct store_op *op_row(enum store_op_kind kind, const void *row, size_t row_size,
                               const struct store_row_desc *d)
{
    if (!row) return NULL;
    size_t total = 0;
    if (!measure(row, d->columns, d->ncolumns, store_op_kind_name(kind), &total)) return NULL;
    struct store_op *op = op_alloc(kind, total);
    if (!op) return NULL;
    memcpy(&op->u, row, row_size);
    char *cur = op->data;
    pack(&op->u, d->columns, d->ncolumns, &cur);
    return op;
}

/* An op keyed by one or two strings (b may be NULL when unused). */
static struct store_op *op_keys(enum store_op_kind kind, const char *a, const char *b, bool b_used,
                                bool a_required)
{
    struct store_column spec[2] = {
        {.name = "key", .field = "key", .type = STORE_COL_TEXT, .offset = offsetof(union store_op_data, key.a),
         .flags = a_required ? STORE_COL_REQUIRED : 0u},
        {.name = "key", .field = "second key", .type = STORE_COL_TEXT,
         .offset = offsetof(union store_op_data, key.b), .flags = STORE_COL_REQUIRED},
    };
    union store_op_data u = {.key = {a, b}};
    size_t total = 0;
    size_t n = b_used ? 2 : 1;
    if (!measure(&u, spec, n, store_op_kind_name(kind), &total)) return NULL;
    struct store_op *op = op_alloc(kind, total);
    if (!op) return NULL;
    op->u = u;
    char *cur = op->data;
    pack(&op->u, spec, n, &cur);
    return op;
}

struct store_op *store_op_binding_upsert(const struct store_binding *b)
{
    return op_row(STORE_OP_BINDING_UPSERT, b, sizeof(*b), binding_row);
}

struct store_op *store_op_binding_delete(const char *aor, const char *contact)
{
    return op_keys(STORE_OP_BINDING_DELETE, aor, contact, true, true);
}

struct store_op *store_op_binding_delete_aor(const char *aor)
{
    return op_keys(STORE_OP_BINDING_DELETE_AOR, aor, NULL, false, true);
}

struct store_op *store_op_binding_delete_expired(int64_t before)
{
    struct store_op *op = op_alloc(STORE_OP_BINDING_DELETE_EXPIRED, 0);
    if (op) op->u.before = before;
    return op;
}

struct store_op *store_op_subscription_upsert(const struct store_subscription *sub)
{
    return op_row(STORE_OP_SUBSCRIPTION_UPSERT, sub, sizeof(*sub), subscription_row);
}

struct store_op *store_op_subscription_delete(const char *call_id, const char *local_tag)
{
    return op_keys(STORE_OP_SUBSCRIPTION_DELETE, call_id, local_tag, true, true);
}

struct store_op *store_op_offline_msg_upsert(const struct store_offline_msg *m)
{
    return op_row(STORE_OP_OFFLINE_MSG_UPSERT, m, sizeof(*m), offline_msg_row);
}

struct store_op *store_op_offline_msgs_delete_done(int64_t before)
{
    struct store_op *op = op_alloc(STORE_OP_OFFLINE_MSGS_DELETE_DONE, 0);
    if (op) op->u.before = before;
    return op;
}

struct store_op *store_op_presence_allow_upsert(const struct store_presence_allow *a)
{
    return op_row(STORE_OP_PRESENCE_ALLOW_UPSERT, a, sizeof(*a), presence_allow_row);
}

struct store_op *store_op_presence_allow_delete(const char *user)
{
    return op_keys(STORE_OP_PRESENCE_ALLOW_DELETE, user, NULL, false, true);
}

struct store_op *store_op_node_secret_upsert(const struct store_node_secret *s)
{
    return op_row(STORE_OP_NODE_SECRET_UPSERT, s, sizeof(*s), node_secret_row);
}

struct store_op *store_op_gb_lower_sub_upsert(const struct store_gb_lower_sub *s)
{
    return op_row(STORE_OP_GB_LOWER_SUB_UPSERT, s, sizeof(*s), gb_lower_sub_row);
}

struct store_op *store_op_gb_lower_sub_delete(const char *upstream, const char *kind)
{
    return op_keys(STORE_OP_GB_LOWER_SUB_DELETE, upstream, kind, true, true);
}

struct store_op *store_op_gb_sub_upsert(const struct store_gb_sub *s)
{
    return op_row(STORE_OP_GB_SUB_UPSERT, s, sizeof(*s), gb_sub_row);
}

struct store_op *store_op_gb_sub_delete(const char *device_id, const char *kind)
{
    return op_keys(STORE_OP_GB_SUB_DELETE, device_id, kind, true, true);
}

struct store_op *store_op_user_upsert(const struct store_user *u)
{
    return op_row(STORE_OP_USER_UPSERT, u, sizeof(*u), user_row);
}

struct store_op *store_op_user_delete(const char *name)
{
    return op_keys(STORE_OP_USER_DELETE, name, NULL, false, true);
}

struct store_op *store_op_gb_device_upsert(const struct store_gb_device *d)
{
    return op_row(STORE_OP_GB_DEVICE_UPSERT, d, sizeof(*d), device_row);
}

struct store_op *store_op_gb_device_delete(const char *id)
{
    return op_keys(STORE_OP_GB_DEVICE_DELETE, id, NULL, false, true);
}

struct store_op *store_op_gb_channel_upsert(const struct store_gb_channel *c)
{
    return op_row(STORE_OP_GB_CHANNEL_UPSERT, c, sizeof(*c), channel_row);
}

struct store_op *store_op_gb_channel_delete(const char *device_id, const char *id)
{
    /* device_id "" names the local directory; the channel id is the real key. */
    struct store_op *op = op_keys(STORE_OP_GB_CHANNEL_DELETE, device_id ? device_id : "", id, true, false);
    return op;
}

struct store_op *store_op_gb_channels_replace(const char *device_id, const struct store_gb_channel *chs,
                                              size_t n)
{
    const char *what = store_op_kind_name(STORE_OP_GB_CHANNELS_REPLACE);
    if (n > STORE_MAX_CHANNELS || (n && !chs)) {
        log_warn("store: %s refused: %zu channels (limit %d)", what, n, STORE_MAX_CHANNELS);
        return NULL;
    }
    if (!device_id) device_id = "";
    size_t dlen = strnlen(device_id, STORE_MAX_TEXT + 1);
    if (dlen > STORE_MAX_TEXT) {
        log_warn("store: %s refused: device_id too long", what);
        return NULL;
    }
    size_t total = n * sizeof(struct store_gb_channel) + dlen + 1;
    for (size_t i = 0; i < n; i++) {
        struct store_gb_channel c = chs[i];
        c.device_id = "";
        if (!measure(&c, channel_row->columns, channel_row->ncolumns, what, &total)) return NULL;
    }
    struct store_op *op = op_alloc(STORE_OP_GB_CHANNELS_REPLACE, total);
    if (!op) return NULL;
    struct store_gb_channel *items = (struct store_gb_channel *)(void *)op->data;
    char *cur = op->data + n * sizeof(struct store_gb_channel);
    memcpy(cur, device_id, dlen);
    cur[dlen] = '\0';
    op->u.channels.device_id = cur;
    cur += dlen + 1;
    for (size_t i = 0; i < n; i++) {
        items[i] = chs[i];
        items[i].device_id = "";
        pack(&items[i], channel_row->columns, channel_row->ncolumns, &cur);
        items[i].device_id = op->u.channels.device_id;
    }
    op->u.channels.items = items;
    op->u.channels.n = n;
    return op;
}

struct store_op *store_op_gb_upstream_upsert(const struct store_gb_upstream *u)
{
    return op_row(STORE_OP_GB_UPSTREAM_UPSERT, u, sizeof(*u), upstream_row);
}

struct store_op *store_op_gb_upstream_delete(const char *id)
{
    return op_keys(STORE_OP_GB_UPSTREAM_DELETE, id, NULL, false, true);
}

struct store_op *store_op_gb_record_upsert(const struct store_gb_record *r)
{
    return op_row(STORE_OP_GB_RECORD_UPSERT, r, sizeof(*r), record_row);
}

struct store_op *store_op_gb_records_delete(const char *channel_id, int64_t start, int64_t end)
{
    struct store_op *op = op_keys(STORE_OP_GB_RECORDS_DELETE, channel_id, NULL, false, true);
    if (op) {
        const char *ch = op->u.key.a;
        op->u.range.channel_id = ch;
        op->u.range.start = start;
        op->u.range.end = end;
    }
    return op;
}

struct store_op *store_op_barrier(void) { return op_alloc(STORE_OP_BARRIER, 0); }

void store_op_free(struct store_op *op) { free(op); }

/* ---- Execution on the writer connection. */

/* Statements written here; the upserts and deletes by key are derived from
 * the descriptors (stmt_derived) when first prepared. */
static const char *const stmt_sql[STMT_COUNT] = {
    /* IMMEDIATE takes the write lock at BEGIN, so a batch never fails half-way
     * on a read-to-write lock upgrade. */
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT op",
    [STMT_RELEASE] = "RELEASE op",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO op",
    [STMT_BINDING_DELETE_AOR] = "DELETE FROM bindings WHERE aor=?1",
    [STMT_BINDING_DELETE_EXPIRED] = "DELETE FROM bindings WHERE expires_at<=?1",
    [STMT_DEVICE_CHANNELS_DELETE] = "DELETE FROM gb_channels WHERE device_id=?1",
    [STMT_DEVICE_RECORDS_DELETE] = "DELETE FROM gb_records WHERE device_id=?1",
    [STMT_RECORDS_DELETE] = "DELETE FROM gb_records WHERE channel_id=?1 AND start<?3 AND \"end\">?2",
    [STMT_OFFLINE_MSGS_DELETE_DONE] = "DELETE FROM offline_messages WHERE state<>'queued' AND updated_at<=?1",
};

enum derived_kind { NOT_DERIVED = 0, DERIVED_UPSERT, DERIVED_DELETE };

static const struct {
    enum derived_kind how;
    enum store_row_kind row;
} stmt_derived[STMT_COUNT] = {
    [STMT_BINDING_UPSERT] = {DERIVED_UPSERT, STORE_ROW_BINDING},
    [STMT_BINDING_DELETE] = {DERIVED_DELETE, STORE_ROW_BINDING},
    /* users keep created_at as first written (STORE_COL_KEEP). */
    [STMT_USER_UPSERT] = {DERIVED_UPSERT, STORE_ROW_USER},
    [STMT_USER_DELETE] = {DERIVED_DELETE, STORE_ROW_USER},
    [STMT_DEVICE_UPSERT] = {DERIVED_UPSERT, STORE_ROW_GB_DEVICE},
    [STMT_DEVICE_DELETE] = {DERIVED_DELETE, STORE_ROW_GB_DEVICE},
    [STMT_CHANNEL_UPSERT] = {DERIVED_UPSERT, STORE_ROW_GB_CHANNEL},
    [STMT_CHANNEL_DELETE] = {DERIVED_DELETE, STORE_ROW_GB_CHANNEL},
    [STMT_UPSTREAM_UPSERT] = {DERIVED_UPSERT, STORE_ROW_GB_UPSTREAM},
    [STMT_UPSTREAM_DELETE] = {DERIVED_DELETE, STORE_ROW_GB_UPSTREAM},
    [STMT_RECORD_UPSERT] = {DERIVED_UPSERT, STORE_ROW_GB_RECORD},
    [STMT_SUBSCRIPTION_UPSERT] = {DERIVED_UPSERT, STORE_ROW_SUBSCRIPTION},
    [STMT_SUBSCRIPTION_DELETE] = {DERIVED_DELETE, STORE_ROW_SUBSCRIPTION},
    [STMT_OFFLINE_MSG_UPSERT] = {DERIVED_UPSERT, STORE_ROW_OFFLINE_MSG},
    [STMT_PRESENCE_ALLOW_UPSERT] = {DERIVED_UPSERT, STORE_ROW_PRESENCE_ALLOW},
    [STMT_PRESENCE_ALLOW_DELETE] = {DERIVED_DELETE, STORE_ROW_PRESENCE_ALLOW},
    [STMT_GB_LOWER_SUB_UPSERT] = {DERIVED_UPSERT, STORE_ROW_GB_LOWER_SUB},
    [STMT_GB_LOWER_SUB_DELETE] = {DERIVED_DELETE, STORE_ROW_GB_LOWER_SUB},
    [STMT_GB_SUB_UPSERT] = {DERIVED_UPSERT, STORE_ROW_GB_SUB},
    [STMT_GB_SUB_DELETE] = {DERIVED_DELETE, STORE_ROW_GB_SUB},
    [STMT_NODE_SECRET_UPSERT] = {DERIVED_UPSERT, STORE_ROW_NODE_SECRET},
};

/* The SQL of statement which: written, or derived into buf. NULL when a
 * derived one does not fit (it always does: the tables are small). */
static const char *stmt_text(enum store_stmt which, char *buf, size_t cap)
{
    const struct store_row_desc *d = &store_rows[stmt_derived[which].row];
    switch (stmt_derived[which].how) {
    case DERIVED_UPSERT: return store_row_upsert_sql(d, buf, cap) == 0 ? buf : NULL;
    case DERIVED_DELETE: return store_row_delete_sql(d, buf, cap) == 0 ? buf : NULL;
    case NOT_DERIVED: break;
    }
    return stmt_sql[which];
}

/* Prepared once per connection and cached: the op path builds no SQL. */
static sqlite3_stmt *stmt_get(struct store_writer_db *w, enum store_stmt which, int *rc)
{
    if (!w->stmt[which]) {
        char buf[2048];
        const char *sql = stmt_text(which, buf, sizeof(buf));
        if (!sql) {
            log_error("store: statement %d does not fit in %zu bytes", (int)which, sizeof(buf));
            *rc = SQLITE_TOOBIG;
            return NULL;
        }
        *rc = sqlite3_prepare_v3(w->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &w->stmt[which], NULL);
        if (*rc != SQLITE_OK) {
            log_error("store: preparing \"%s\": %s", sql, sqlite3_errmsg(w->db));
            return NULL;
        }
    }
    *rc = SQLITE_OK;
    return w->stmt[which];
}

void store_writer_db_finalize(struct store_writer_db *w)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        sqlite3_finalize(w->stmt[i]);
        w->stmt[i] = NULL;
    }
}

static void bt(sqlite3_stmt *s, int i, const char *v) { sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC); }
static void bi(sqlite3_stmt *s, int i, int64_t v) { sqlite3_bind_int64(s, i, v); }

/* Steps a bound statement to completion and resets it (which also releases
 * the bindings' hold on the op's memory). */
static int step(struct store_writer_db *w, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        log_error("store: \"%s\": %s", sqlite3_sql(s), sqlite3_errmsg(w->db));
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return (rc == SQLITE_DONE || rc == SQLITE_ROW) ? SQLITE_OK : rc;
}

int store_exec_stmt(struct store_writer_db *w, enum store_stmt which)
{
    int rc;
    sqlite3_stmt *s = stmt_get(w, which, &rc);
    return s ? step(w, s) : rc;
}

/* Runs a derived upsert of row, described by its statement's descriptor. */
static int exec_upsert(struct store_writer_db *w, enum store_stmt which, const void *row)
{
    int rc;
    sqlite3_stmt *s = stmt_get(w, which, &rc);
    if (!s) return rc;
    store_row_bind(s, &store_rows[stmt_derived[which].row], row);
    return step(w, s);
}

/* Runs a statement taking one or two text parameters (b NULL: one). */
static int exec_keys(struct store_writer_db *w, enum store_stmt which, const char *a, const char *b)
{
    int rc;
    sqlite3_stmt *s = stmt_get(w, which, &rc);
    if (!s) return rc;
    bt(s, 1, a);
    if (b) bt(s, 2, b);
    return step(w, s);
}

/* Runs a one-statement op: statement-level atomicity is enough. */
static int exec_single(struct store_writer_db *w, struct store_op *op)
{
    int rc;
    sqlite3_stmt *s;
    const union store_op_data *u = &op->u;
    switch (op->kind) {
    case STORE_OP_BINDING_UPSERT: return exec_upsert(w, STMT_BINDING_UPSERT, &u->binding);
    case STORE_OP_BINDING_DELETE: return exec_keys(w, STMT_BINDING_DELETE, u->key.a, u->key.b);
    case STORE_OP_BINDING_DELETE_AOR: return exec_keys(w, STMT_BINDING_DELETE_AOR, u->key.a, NULL);
    case STORE_OP_BINDING_DELETE_EXPIRED:
        if (!(s = stmt_get(w, STMT_BINDING_DELETE_EXPIRED, &rc))) return rc;
        bi(s, 1, u->before);
        return step(w, s);
    case STORE_OP_USER_UPSERT: return exec_upsert(w, STMT_USER_UPSERT, &u->user);
    case STORE_OP_USER_DELETE: return exec_keys(w, STMT_USER_DELETE, u->key.a, NULL);
    case STORE_OP_GB_DEVICE_UPSERT: return exec_upsert(w, STMT_DEVICE_UPSERT, &u->device);
    case STORE_OP_GB_CHANNEL_UPSERT: return exec_upsert(w, STMT_CHANNEL_UPSERT, &u->channel);
    case STORE_OP_GB_CHANNEL_DELETE: return exec_keys(w, STMT_CHANNEL_DELETE, u->key.a, u->key.b);
    case STORE_OP_GB_UPSTREAM_UPSERT: return exec_upsert(w, STMT_UPSTREAM_UPSERT, &u->upstream);
    case STORE_OP_GB_UPSTREAM_DELETE: return exec_keys(w, STMT_UPSTREAM_DELETE, u->key.a, NULL);
    case STORE_OP_GB_RECORD_UPSERT: return exec_upsert(w, STMT_RECORD_UPSERT, &u->record);
    case STORE_OP_SUBSCRIPTION_UPSERT: return exec_upsert(w, STMT_SUBSCRIPTION_UPSERT, &u->subscription);
    case STORE_OP_SUBSCRIPTION_DELETE: return exec_keys(w, STMT_SUBSCRIPTION_DELETE, u->key.a, u->key.b);
    case STORE_OP_OFFLINE_MSG_UPSERT: return exec_upsert(w, STMT_OFFLINE_MSG_UPSERT, &u->offline_msg);
    case STORE_OP_OFFLINE_MSGS_DELETE_DONE:
        if (!(s = stmt_get(w, STMT_OFFLINE_MSGS_DELETE_DONE, &rc))) return rc;
        bi(s, 1, u->before);
        return step(w, s);
    case STORE_OP_PRESENCE_ALLOW_UPSERT: return exec_upsert(w, STMT_PRESENCE_ALLOW_UPSERT, &u->presence_allow);
    case STORE_OP_PRESENCE_ALLOW_DELETE: return exec_keys(w, STMT_PRESENCE_ALLOW_DELETE, u->key.a, NULL);
    case STORE_OP_GB_LOWER_SUB_UPSERT: return exec_upsert(w, STMT_GB_LOWER_SUB_UPSERT, &u->gb_lower_sub);
    case STORE_OP_GB_LOWER_SUB_DELETE: return exec_keys(w, STMT_GB_LOWER_SUB_DELETE, u->key.a, u->key.b);
    case STORE_OP_GB_SUB_UPSERT: return exec_upsert(w, STMT_GB_SUB_UPSERT, &u->gb_sub);
    case STORE_OP_GB_SUB_DELETE: return exec_keys(w, STMT_GB_SUB_DELETE, u->key.a, u->key.b);
    case STORE_OP_NODE_SECRET_UPSERT: return exec_upsert(w, STMT_NODE_SECRET_UPSERT, &u->node_secret);
    case STORE_OP_GB_RECORDS_DELETE:
        if (!(s = stmt_get(w, STMT_RECORDS_DELETE, &rc))) return rc;
        bt(s, 1, u->range.channel_id);
        bi(s, 2, u->range.start);
        bi(s, 3, u->range.end);
        return step(w, s);
    default:
        return SQLITE_MISUSE;
    }
}

/* Multi-statement ops: all statements or none, inside a savepoint so that a
 * failure leaves the rest of the batch intact. */
static int exec_multi_body(struct store_writer_db *w, struct store_op *op)
{
    int rc;
    if (op->kind == STORE_OP_GB_DEVICE_DELETE) {
        static const enum store_stmt order[] = {STMT_DEVICE_RECORDS_DELETE, STMT_DEVICE_CHANNELS_DELETE,
                                                STMT_DEVICE_DELETE};
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
            if ((rc = exec_keys(w, order[i], op->u.key.a, NULL)) != SQLITE_OK) return rc;
        return SQLITE_OK;
    }
    /* STORE_OP_GB_CHANNELS_REPLACE */
    if ((rc = exec_keys(w, STMT_DEVICE_CHANNELS_DELETE, op->u.channels.device_id, NULL)) != SQLITE_OK) return rc;
    for (size_t i = 0; i < op->u.channels.n; i++)
        if ((rc = exec_upsert(w, STMT_CHANNEL_UPSERT, &op->u.channels.items[i])) != SQLITE_OK) return rc;
    return SQLITE_OK;
}

int store_op_exec(struct store_writer_db *w, struct store_op *op)
{
    if (op->kind == STORE_OP_BARRIER) return SQLITE_OK;
    if (op->kind != STORE_OP_GB_DEVICE_DELETE && op->kind != STORE_OP_GB_CHANNELS_REPLACE)
        return exec_single(w, op);
    int rc = store_exec_stmt(w, STMT_SAVEPOINT);
    if (rc != SQLITE_OK) return rc;
    rc = exec_multi_body(w, op);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(w->db)) store_exec_stmt(w, STMT_ROLLBACK_TO);
    if (!sqlite3_get_autocommit(w->db)) {
        int rc2 = store_exec_stmt(w, STMT_RELEASE);
        if (rc == SQLITE_OK) rc = rc2;
    }
    return rc;
}

int store_errno_from_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: return 0;
    case SQLITE_FULL: return -ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return -EBUSY;
    case SQLITE_NOMEM: return -ENOMEM;
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH: return -EINVAL;
    default: return -EIO;
    }
}
