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
    STORE_OP_SUBSCRIPTION_UPSERT,
    STORE_OP_SUBSCRIPTION_DELETE,
    STORE_OP_OFFLINE_MSG_UPSERT,
    STORE_OP_OFFLINE_MSGS_DELETE_DONE,
    STORE_OP_PRESENCE_ALLOW_UPSERT,
    STORE_OP_PRESENCE_ALLOW_DELETE,
    STORE_OP_GB_LOWER_SUB_UPSERT,
    STORE_OP_GB_LOWER_SUB_DELETE,
    STORE_OP_GB_SUB_UPSERT,
    STORE_OP_GB_SUB_DELETE,
    STORE_OP_NODE_SECRET_UPSERT,
    STORE_OP_KIND_COUNT
};

union store_op_data {
    struct store_binding binding;
    struct store_user user;
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
    STMT_SUBSCRIPTION_UPSERT, STMT_SUBSCRIPTION_DELETE,
    STMT_OFFLINE_MSG_UPSERT, STMT_OFFLINE_MSGS_DELETE_DONE,
    STMT_PRESENCE_ALLOW_UPSERT, STMT_PRESENCE_ALLOW_DELETE,
    STMT_GB_LOWER_SUB_UPSERT, STMT_GB_LOWER_SUB_DELETE,
    STMT_GB_SUB_UPSERT, STMT_GB_SUB_DELETE,
    STMT_NODE_SECRET_UPSERT,
    STMT_COUNT
};

struct store_writer_db {
    sqlite3 *db;
    sqlite3_stmt *stmt[STMT_COUNT];
};

/* ---- Row descriptors (store_rows.c). Each table is described once, by the
 * columns of its row struct; the CREATE TABLE, the upsert and delete-by-key
 * statements with their binds, the SELECT list and the reading of a row are
 * all derived from it, and the op constructors take their string limits
 * from it. Column order is the order in CREATE, INSERT and SELECT. */

/* How a column is bound and read; the C type of its field decides (a field
 * of another type fails to compile). SQL: TEXT or INTEGER. */
enum store_col_type { STORE_COL_TEXT, STORE_COL_INT, STORE_COL_BOOL, STORE_COL_U32, STORE_COL_INT64, STORE_COL_U64 };

enum {
    STORE_COL_KEY = 1 << 0,      /* part of the primary key, in column order */
    STORE_COL_REQUIRED = 1 << 1, /* text the op constructors refuse when empty */
    STORE_COL_JSON = 1 << 2,     /* text up to STORE_MAX_JSON, not STORE_MAX_TEXT */
    STORE_COL_KEEP = 1 << 3,     /* an upsert keeps the value first written */
};

struct store_column {
    const char *name;          /* as SQL spells it ("\"end\"" for a keyword) */
    const char *field;         /* the C field, in log lines */
    enum store_col_type type;
    size_t offset;             /* of the field in the row struct */
    const char *dflt;          /* DEFAULT value as SQL text, NULL: none */
    unsigned flags;            /* STORE_COL_* */
    int since;                 /* schema version that added the column */
};

enum store_row_kind {
    STORE_ROW_USER = 0,
    STORE_ROW_BINDING,
    STORE_ROW_GB_DEVICE,
    STORE_ROW_GB_CHANNEL,
    STORE_ROW_GB_UPSTREAM,
    STORE_ROW_GB_RECORD,
    STORE_ROW_SUBSCRIPTION,     /* since schema version 2 */
    STORE_ROW_OFFLINE_MSG,      /* since schema version 3 */
    STORE_ROW_PRESENCE_ALLOW,   /* since schema version 4 */
    STORE_ROW_GB_LOWER_SUB,     /* since schema version 6 */
    STORE_ROW_GB_SUB,           /* since schema version 7 */
    STORE_ROW_NODE_SECRET,      /* since schema version 8 */
    STORE_ROW_KIND_COUNT
};

struct store_row_desc {
    const char *table;
    const char *what;          /* in log lines: "store: loading <what>: ..." */
    int since;                 /* schema version that created the table */
    size_t row_size;           /* sizeof the row struct */
    const struct store_column *columns;
    size_t ncolumns;
};

/* In schema order (the order migration 1 creates the tables). */
extern const struct store_row_desc store_rows[STORE_ROW_KIND_COUNT];

/* Each writes one SQL statement (no ';') into sql and returns 0, or
 * -ENAMETOOLONG when it does not fit. */
/* CREATE TABLE with the columns added up to schema version `version`. */
int store_row_create_sql(const struct store_row_desc *d, int version, char *sql, size_t cap);
/* ALTER TABLE ... ADD COLUMN for a column a later migration adds. */
int store_row_add_column_sql(const struct store_row_desc *d, const struct store_column *c, char *sql, size_t cap);
/* Binds ?1..?n in column order; INSERT OR REPLACE, or INSERT ... ON
 * CONFLICT(keys) DO UPDATE when some column is STORE_COL_KEEP. */
int store_row_upsert_sql(const struct store_row_desc *d, char *sql, size_t cap);
/* DELETE FROM t WHERE key1=?1 AND key2=?2 ... */
int store_row_delete_sql(const struct store_row_desc *d, char *sql, size_t cap);
/* SELECT <columns> FROM <table> <tail> (tail: WHERE / ORDER BY). */
int store_row_select_sql(const struct store_row_desc *d, const char *tail, char *sql, size_t cap);
/* Binds row's fields to ?1..?n of an upsert statement. */
void store_row_bind(sqlite3_stmt *s, const struct store_row_desc *d, const void *row);
/* Reads a SELECT row into row (text pointers valid until the next step). */
void store_row_read(sqlite3_stmt *s, const struct store_row_desc *d, void *row);

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
/* The SQL migration `version` (1-based) runs, derived from the descriptors
 * plus its hand-written part; -ENAMETOOLONG when it does not fit in sql. */
int store_schema_migration_sql(int version, char *sql, size_t cap);

#endif
