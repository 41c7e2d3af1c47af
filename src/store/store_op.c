/* store_op.c — store operations: building them (any thread) and running them
 * on the writer connection (writer thread only).
 *
 * An op is one allocation: the header with a copy of the caller's row struct,
 * then every string it points to, copied and NUL-terminated. A table of
 * string fields per row type (offset, limit, required) drives both the size
 * pass and the copy pass, so adding a column means adding one line here and
 * one bind below. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "store/store_internal.h"

_Static_assert(offsetof(struct store_op, data) % _Alignof(struct store_gb_channel) == 0,
               "channel items follow the op header");

struct field_spec {
    size_t offset;     /* of a const char * inside the row struct */
    size_t max;        /* bytes, without the NUL */
    bool required;     /* must be non-empty (a key) */
    const char *name;
};

#define TXT(type, f) {offsetof(type, f), STORE_MAX_TEXT, false, #f}
#define KEY(type, f) {offsetof(type, f), STORE_MAX_TEXT, true, #f}
#define JSN(type, f) {offsetof(type, f), STORE_MAX_JSON, false, #f}
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static const struct field_spec binding_fields[] = {
    KEY(struct store_binding, aor),       KEY(struct store_binding, contact),
    TXT(struct store_binding, call_id),   TXT(struct store_binding, transport),
    TXT(struct store_binding, remote),    TXT(struct store_binding, path),
    TXT(struct store_binding, user_agent), TXT(struct store_binding, instance),
};
static const struct field_spec user_fields[] = {
    KEY(struct store_user, name), TXT(struct store_user, realm),
    TXT(struct store_user, ha1_md5), TXT(struct store_user, ha1_sha256),
};
static const struct field_spec device_fields[] = {
    KEY(struct store_gb_device, id),        TXT(struct store_gb_device, password),
    TXT(struct store_gb_device, charset),   TXT(struct store_gb_device, remote),
    TXT(struct store_gb_device, transport), JSN(struct store_gb_device, info_json),
    JSN(struct store_gb_device, status_json),
};
/* device_id may be "" (local directory), so it is not a required key. */
static const struct field_spec channel_fields[] = {
    TXT(struct store_gb_channel, device_id), KEY(struct store_gb_channel, id),
    TXT(struct store_gb_channel, parent_id), TXT(struct store_gb_channel, name),
    TXT(struct store_gb_channel, status),    TXT(struct store_gb_channel, manufacturer),
    TXT(struct store_gb_channel, model),     TXT(struct store_gb_channel, civil_code),
    TXT(struct store_gb_channel, address),   JSN(struct store_gb_channel, extra_json),
    TXT(struct store_gb_channel, media),
};
static const struct field_spec upstream_fields[] = {
    KEY(struct store_gb_upstream, id), TXT(struct store_gb_upstream, state),
    TXT(struct store_gb_upstream, last_error),
};
static const struct field_spec record_fields[] = {
    TXT(struct store_gb_record, device_id), KEY(struct store_gb_record, channel_id),
    TXT(struct store_gb_record, name),      TXT(struct store_gb_record, type),
    TXT(struct store_gb_record, file_path),
};

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
};

const char *store_op_kind_name(enum store_op_kind kind)
{
    return (unsigned)kind < STORE_OP_KIND_COUNT ? kind_names[kind] : "?";
}

static const char **field_at(const void *row, const struct field_spec *f)
{
    return (const char **)((char *)(uintptr_t)row + f->offset);
}

/* Adds the bytes row's strings need to *total; false (logged) when a field
 * is too long or a required one is empty. */
static bool measure(const void *row, const struct field_spec *spec, size_t n, const char *what,
                    size_t *total)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = *field_at(row, &spec[i]);
        size_t len = s ? strnlen(s, spec[i].max + 1) : 0;
        if (len > spec[i].max) {
            log_warn("store: %s refused: %s longer than %zu bytes", what, spec[i].name, spec[i].max);
            return false;
        }
        if (spec[i].required && len == 0) {
            log_warn("store: %s refused: empty %s", what, spec[i].name);
            return false;
        }
        *total += len + 1;
    }
    return true;
}

/* Copies row's strings to *cur and re-points the row's fields at the copies. */
static void pack(void *row, const struct field_spec *spec, size_t n, char **cur)
{
    for (size_t i = 0; i < n; i++) {
        const char **f = field_at(row, &spec[i]);
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
                               const struct field_spec *spec, size_t n)
{
    if (!row) return NULL;
    size_t total = 0;
    if (!measure(row, spec, n, store_op_kind_name(kind), &total)) return NULL;
    struct store_op *op = op_alloc(kind, total);
    if (!op) return NULL;
    memcpy(&op->u, row, row_size);
    char *cur = op->data;
    pack(&op->u, spec, n, &cur);
    return op;
}

/* An op keyed by one or two strings (b may be NULL when unused). */
static struct store_op *op_keys(enum store_op_kind kind, const char *a, const char *b, bool b_used,
                                bool a_required)
{
    static const struct field_spec key_spec[2] = {
        {offsetof(union store_op_data, key.a), STORE_MAX_TEXT, true, "key"},
        {offsetof(union store_op_data, key.b), STORE_MAX_TEXT, true, "second key"},
    };
    struct field_spec spec[2] = {key_spec[0], key_spec[1]};
    spec[0].required = a_required;
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
    return op_row(STORE_OP_BINDING_UPSERT, b, sizeof(*b), binding_fields, NFIELDS(binding_fields));
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

struct store_op *store_op_user_upsert(const struct store_user *u)
{
    return op_row(STORE_OP_USER_UPSERT, u, sizeof(*u), user_fields, NFIELDS(user_fields));
}

struct store_op *store_op_user_delete(const char *name)
{
    return op_keys(STORE_OP_USER_DELETE, name, NULL, false, true);
}

struct store_op *store_op_gb_device_upsert(const struct store_gb_device *d)
{
    return op_row(STORE_OP_GB_DEVICE_UPSERT, d, sizeof(*d), device_fields, NFIELDS(device_fields));
}

struct store_op *store_op_gb_device_delete(const char *id)
{
    return op_keys(STORE_OP_GB_DEVICE_DELETE, id, NULL, false, true);
}

struct store_op *store_op_gb_channel_upsert(const struct store_gb_channel *c)
{
    return op_row(STORE_OP_GB_CHANNEL_UPSERT, c, sizeof(*c), channel_fields, NFIELDS(channel_fields));
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
        if (!measure(&c, channel_fields, NFIELDS(channel_fields), what, &total)) return NULL;
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
        pack(&items[i], channel_fields, NFIELDS(channel_fields), &cur);
        items[i].device_id = op->u.channels.device_id;
    }
    op->u.channels.items = items;
    op->u.channels.n = n;
    return op;
}

struct store_op *store_op_gb_upstream_upsert(const struct store_gb_upstream *u)
{
    return op_row(STORE_OP_GB_UPSTREAM_UPSERT, u, sizeof(*u), upstream_fields, NFIELDS(upstream_fields));
}

struct store_op *store_op_gb_upstream_delete(const char *id)
{
    return op_keys(STORE_OP_GB_UPSTREAM_DELETE, id, NULL, false, true);
}

struct store_op *store_op_gb_record_upsert(const struct store_gb_record *r)
{
    return op_row(STORE_OP_GB_RECORD_UPSERT, r, sizeof(*r), record_fields, NFIELDS(record_fields));
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

static const char *const stmt_sql[STMT_COUNT] = {
    /* IMMEDIATE takes the write lock at BEGIN, so a batch never fails half-way
     * on a read-to-write lock upgrade. */
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT op",
    [STMT_RELEASE] = "RELEASE op",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO op",
    [STMT_BINDING_UPSERT] =
        "INSERT OR REPLACE INTO bindings(aor,contact,expires_at,q1000,call_id,cseq,transport,remote,"
        "conn_id,path,user_agent,instance,reg_id,flags,received_at) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
    [STMT_BINDING_DELETE] = "DELETE FROM bindings WHERE aor=?1 AND contact=?2",
    [STMT_BINDING_DELETE_AOR] = "DELETE FROM bindings WHERE aor=?1",
    [STMT_BINDING_DELETE_EXPIRED] = "DELETE FROM bindings WHERE expires_at<=?1",
    /* created_at stays as first written. */
    [STMT_USER_UPSERT] = "INSERT INTO users(name,realm,ha1_md5,ha1_sha256,created_at) VALUES(?1,?2,?3,?4,?5) "
                         "ON CONFLICT(name) DO UPDATE SET realm=excluded.realm,ha1_md5=excluded.ha1_md5,"
                         "ha1_sha256=excluded.ha1_sha256",
    [STMT_USER_DELETE] = "DELETE FROM users WHERE name=?1",
    [STMT_DEVICE_UPSERT] =
        "INSERT OR REPLACE INTO gb_devices(id,password,charset,auth_enabled,allow,online,remote,transport,"
        "registered_at,last_keepalive,expires_at,info_json,status_json) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
    [STMT_DEVICE_DELETE] = "DELETE FROM gb_devices WHERE id=?1",
    [STMT_DEVICE_CHANNELS_DELETE] = "DELETE FROM gb_channels WHERE device_id=?1",
    [STMT_DEVICE_RECORDS_DELETE] = "DELETE FROM gb_records WHERE device_id=?1",
    [STMT_CHANNEL_UPSERT] =
        "INSERT OR REPLACE INTO gb_channels(device_id,id,parent_id,name,status,manufacturer,model,"
        "civil_code,address,extra_json,media) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    [STMT_CHANNEL_DELETE] = "DELETE FROM gb_channels WHERE device_id=?1 AND id=?2",
    [STMT_UPSTREAM_UPSERT] = "INSERT OR REPLACE INTO gb_upstreams(id,state,last_error,registered_at,"
                             "last_keepalive_ok) VALUES(?1,?2,?3,?4,?5)",
    [STMT_UPSTREAM_DELETE] = "DELETE FROM gb_upstreams WHERE id=?1",
    [STMT_RECORD_UPSERT] = "INSERT OR REPLACE INTO gb_records(channel_id,start,\"end\",file_path,device_id,"
                           "name,type,secrecy,size) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    [STMT_RECORDS_DELETE] = "DELETE FROM gb_records WHERE channel_id=?1 AND start<?3 AND \"end\">?2",
};

static sqlite3_stmt *stmt_get(struct store_writer_db *w, enum store_stmt which, int *rc)
{
    if (!w->stmt[which]) {
        *rc = sqlite3_prepare_v3(w->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &w->stmt[which], NULL);
        if (*rc != SQLITE_OK) {
            log_error("store: preparing \"%s\": %s", stmt_sql[which], sqlite3_errmsg(w->db));
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

static int bind_channel(sqlite3_stmt *s, const struct store_gb_channel *c)
{
    bt(s, 1, c->device_id);
    bt(s, 2, c->id);
    bt(s, 3, c->parent_id);
    bt(s, 4, c->name);
    bt(s, 5, c->status);
    bt(s, 6, c->manufacturer);
    bt(s, 7, c->model);
    bt(s, 8, c->civil_code);
    bt(s, 9, c->address);
    bt(s, 10, c->extra_json);
    bt(s, 11, c->media);
    return 0;
}

/* Runs a one-statement op: statement-level atomicity is enough. */
static int exec_single(struct store_writer_db *w, struct store_op *op)
{
    int rc;
    sqlite3_stmt *s;
    const union store_op_data *u = &op->u;
    switch (op->kind) {
    case STORE_OP_BINDING_UPSERT: {
        const struct store_binding *b = &u->binding;
        if (!(s = stmt_get(w, STMT_BINDING_UPSERT, &rc))) return rc;
        bt(s, 1, b->aor);
        bt(s, 2, b->contact);
        bi(s, 3, b->expires_at);
        bi(s, 4, b->q1000);
        bt(s, 5, b->call_id);
        bi(s, 6, b->cseq);
        bt(s, 7, b->transport);
        bt(s, 8, b->remote);
        bi(s, 9, (int64_t)b->conn_id);
        bt(s, 10, b->path);
        bt(s, 11, b->user_agent);
        bt(s, 12, b->instance);
        bi(s, 13, b->reg_id);
        bi(s, 14, b->flags);
        bi(s, 15, b->received_at);
        return step(w, s);
    }
    case STORE_OP_BINDING_DELETE:
        if (!(s = stmt_get(w, STMT_BINDING_DELETE, &rc))) return rc;
        bt(s, 1, u->key.a);
        bt(s, 2, u->key.b);
        return step(w, s);
    case STORE_OP_BINDING_DELETE_AOR:
        if (!(s = stmt_get(w, STMT_BINDING_DELETE_AOR, &rc))) return rc;
        bt(s, 1, u->key.a);
        return step(w, s);
    case STORE_OP_BINDING_DELETE_EXPIRED:
        if (!(s = stmt_get(w, STMT_BINDING_DELETE_EXPIRED, &rc))) return rc;
        bi(s, 1, u->before);
        return step(w, s);
    case STORE_OP_USER_UPSERT:
        if (!(s = stmt_get(w, STMT_USER_UPSERT, &rc))) return rc;
        bt(s, 1, u->user.name);
        bt(s, 2, u->user.realm);
        bt(s, 3, u->user.ha1_md5);
        bt(s, 4, u->user.ha1_sha256);
        bi(s, 5, u->user.created_at);
        return step(w, s);
    case STORE_OP_USER_DELETE:
        if (!(s = stmt_get(w, STMT_USER_DELETE, &rc))) return rc;
        bt(s, 1, u->key.a);
        return step(w, s);
    case STORE_OP_GB_DEVICE_UPSERT: {
        const struct store_gb_device *d = &u->device;
        if (!(s = stmt_get(w, STMT_DEVICE_UPSERT, &rc))) return rc;
        bt(s, 1, d->id);
        bt(s, 2, d->password);
        bt(s, 3, d->charset);
        bi(s, 4, d->auth_enabled);
        bi(s, 5, d->allow);
        bi(s, 6, d->online);
        bt(s, 7, d->remote);
        bt(s, 8, d->transport);
        bi(s, 9, d->registered_at);
        bi(s, 10, d->last_keepalive);
        bi(s, 11, d->expires_at);
        bt(s, 12, d->info_json);
        bt(s, 13, d->status_json);
        return step(w, s);
    }
    case STORE_OP_GB_CHANNEL_UPSERT:
        if (!(s = stmt_get(w, STMT_CHANNEL_UPSERT, &rc))) return rc;
        bind_channel(s, &u->channel);
        return step(w, s);
    case STORE_OP_GB_CHANNEL_DELETE:
        if (!(s = stmt_get(w, STMT_CHANNEL_DELETE, &rc))) return rc;
        bt(s, 1, u->key.a);
        bt(s, 2, u->key.b);
        return step(w, s);
    case STORE_OP_GB_UPSTREAM_UPSERT:
        if (!(s = stmt_get(w, STMT_UPSTREAM_UPSERT, &rc))) return rc;
        bt(s, 1, u->upstream.id);
        bt(s, 2, u->upstream.state);
        bt(s, 3, u->upstream.last_error);
        bi(s, 4, u->upstream.registered_at);
        bi(s, 5, u->upstream.last_keepalive_ok);
        return step(w, s);
    case STORE_OP_GB_UPSTREAM_DELETE:
        if (!(s = stmt_get(w, STMT_UPSTREAM_DELETE, &rc))) return rc;
        bt(s, 1, u->key.a);
        return step(w, s);
    case STORE_OP_GB_RECORD_UPSERT: {
        const struct store_gb_record *r = &u->record;
        if (!(s = stmt_get(w, STMT_RECORD_UPSERT, &rc))) return rc;
        bt(s, 1, r->channel_id);
        bi(s, 2, r->start);
        bi(s, 3, r->end);
        bt(s, 4, r->file_path);
        bt(s, 5, r->device_id);
        bt(s, 6, r->name);
        bt(s, 7, r->type);
        bi(s, 8, r->secrecy);
        bi(s, 9, r->size);
        return step(w, s);
    }
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
    sqlite3_stmt *s;
    if (op->kind == STORE_OP_GB_DEVICE_DELETE) {
        static const enum store_stmt order[] = {STMT_DEVICE_RECORDS_DELETE, STMT_DEVICE_CHANNELS_DELETE,
                                                STMT_DEVICE_DELETE};
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
            if (!(s = stmt_get(w, order[i], &rc))) return rc;
            bt(s, 1, op->u.key.a);
            if ((rc = step(w, s)) != SQLITE_OK) return rc;
        }
        return SQLITE_OK;
    }
    /* STORE_OP_GB_CHANNELS_REPLACE */
    if (!(s = stmt_get(w, STMT_DEVICE_CHANNELS_DELETE, &rc))) return rc;
    bt(s, 1, op->u.channels.device_id);
    if ((rc = step(w, s)) != SQLITE_OK) return rc;
    if (!(s = stmt_get(w, STMT_CHANNEL_UPSERT, &rc))) return rc;
    for (size_t i = 0; i < op->u.channels.n; i++) {
        bind_channel(s, &op->u.channels.items[i]);
        if ((rc = step(w, s)) != SQLITE_OK) return rc;
    }
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
