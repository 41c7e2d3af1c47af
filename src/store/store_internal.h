/* store_internal.h — what the store's own files share: the op layout, the
 * statement cache and the schema step. Not for other modules. */
#ifndef CASCADE_STORE_INTERNAL_H
#define CASCADE_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store/store.h"

enum store_op_kind {
    STORE_OP_BARRIER = 0,
    STORE_OP_BINDING_UPSERT,
    STORE_OP_BINDING_DELETE,
    STORE_OP_BINDING_DELETE_AOR,
    STORE_OP_BINDING_DELETE_EXPIRED,
    STORE_OP_USER_UPSERT,
    STORE_OP_USER_DELETE,
    STORE_OP_GB_DEVICE_UPSERT,
    STORE_OP_GB_DEVICE_DELETE,
    STORE_OP_GB_CHANNEL_UPSERT,
    STORE_OP_GB_CHANNEL_DELETE,
    STORE_OP_GB_CHANNELS_REPLACE,
    STORE_OP_GB_UPSTREAM_UPSERT,
    STORE_OP_GB_UPSTREAM_DELETE,
    STORE_OP_GB_RECORD_UPSERT,
    STORE_OP_GB_RECORDS_DELETE,
    STORE_OP_KIND_COUNT
};

union store_op_data {
    struct store_binding binding;
    struct store_user user;
    struct store_gb_device device;
    struct store_gb_channel channel;
    struct store_gb_upstream upstream;
    struct store_gb_record record;
    struct { const char *a, *b; } key;          /* deletes by one or two text keys */
    struct { const char *device_id; struct store_gb_channel *items; size_t n; } channels;
    struct { const char *channel_id; int64_t start, end; } range;
    int64_t before;
};

/* One allocation: the header, then (for channel replaces) the item array,
 * then every string, NUL-terminated, that the union points to. */
struct store_op {
    struct store_op *next;
    enum store_op_kind kind;
    int status;
    store_done_cb cb;
    void *arg;
    union store_op_data u;
    char data[];
};

/* Cached prepared statements of the writer connection. */
enum store_stmt {
    STMT_BEGIN = 0, STMT_COMMIT, STMT_ROLLBACK, STMT_SAVEPOINT, STMT_RELEASE, STMT_ROLLBACK_TO,
    STMT_BINDING_UPSERT, STMT_BINDING_DELETE, STMT_BINDING_DELETE_AOR, STMT_BINDING_DELETE_EXPIRED,
    STMT_USER_UPSERT, STMT_USER_DELETE,
    STMT_DEVICE_UPSERT, STMT_DEVICE_DELETE, STMT_DEVICE_CHANNELS_DELETE, STMT_DEVICE_RECORDS_DELETE,
    STMT_CHANNEL_UPSERT, STMT_CHANNEL_DELETE,
    STMT_UPSTREAM_UPSERT, STMT_UPSTREAM_DELETE,
    STMT_RECORD_UPSERT, STMT_RECORDS_DELETE,
    STMT_COUNT
};

struct store_writer_db {
    sqlite3 *db;
    sqlite3_stmt *stmt[STMT_COUNT];
};

const char *store_op_kind_name(enum store_op_kind kind);
/* Runs one op inside the open transaction. Returns an SQLite result code. */
int store_op_exec(struct store_writer_db *w, struct store_op *op);
/* Runs one cached utility statement (BEGIN, COMMIT...). */
int store_exec_stmt(struct store_writer_db *w, enum store_stmt which);
void store_writer_db_finalize(struct store_writer_db *w);
int store_errno_from_sqlite(int rc);

/* The loop thread's read connection (store_load.c). */
sqlite3 *store_reader_db(struct store *st);

/* Brings the schema to the newest version (store_schema.c). */
int store_schema_migrate(sqlite3 *db, char *err, size_t errcap);

#endif
