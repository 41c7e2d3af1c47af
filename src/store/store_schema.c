/* store_schema.c — the database schema as a list of migrations.
 *
 * PRAGMA user_version holds how many migrations a database has seen. At open,
 * each missing migration runs in its own transaction together with the
 * user_version bump, so a crash leaves the database at a whole version.
 * To change the schema, append a migration (e.g. "ALTER TABLE gb_devices ADD
 * COLUMN ...") — never edit one that has shipped. A database written by a
 * newer build (higher version) is refused rather than guessed at. */
#include <stdio.h>

#include "base/log.h"
#include "store/store_internal.h"

static const char *const migrations[] = {
    /* 1: initial schema. Times are wall-clock ms since the epoch. */
    "CREATE TABLE users("
    " name TEXT PRIMARY KEY NOT NULL,"
    " realm TEXT NOT NULL DEFAULT '',"
    " ha1_md5 TEXT NOT NULL DEFAULT '',"
    " ha1_sha256 TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE bindings("
    " aor TEXT NOT NULL,"
    " contact TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " q1000 INTEGER NOT NULL DEFAULT 1000,"
    " call_id TEXT NOT NULL DEFAULT '',"
    " cseq INTEGER NOT NULL DEFAULT 0,"
    " transport TEXT NOT NULL DEFAULT 'udp',"
    " remote TEXT NOT NULL DEFAULT '',"
    " conn_id INTEGER NOT NULL DEFAULT 0,"
    " path TEXT NOT NULL DEFAULT '',"
    " user_agent TEXT NOT NULL DEFAULT '',"
    " instance TEXT NOT NULL DEFAULT '',"
    " reg_id INTEGER NOT NULL DEFAULT 0,"
    " flags INTEGER NOT NULL DEFAULT 0,"
    " received_at INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(aor, contact)"
    ") WITHOUT ROWID;"
    "CREATE TABLE gb_devices("
    " id TEXT PRIMARY KEY NOT NULL,"
    " password TEXT NOT NULL DEFAULT '',"
    " charset TEXT NOT NULL DEFAULT 'GB2312',"
    " auth_enabled INTEGER NOT NULL DEFAULT 1,"
    " allow INTEGER NOT NULL DEFAULT 1,"
    " online INTEGER NOT NULL DEFAULT 0,"
    " remote TEXT NOT NULL DEFAULT '',"
    " transport TEXT NOT NULL DEFAULT '',"
    " registered_at INTEGER NOT NULL DEFAULT 0,"
    " last_keepalive INTEGER NOT NULL DEFAULT 0,"
    " expires_at INTEGER NOT NULL DEFAULT 0,"
    " info_json TEXT NOT NULL DEFAULT '',"
    " status_json TEXT NOT NULL DEFAULT ''"
    ") WITHOUT ROWID;"
    "CREATE TABLE gb_channels("
    " device_id TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " parent_id TEXT NOT NULL DEFAULT '',"
    " name TEXT NOT NULL DEFAULT '',"
    " status TEXT NOT NULL DEFAULT '',"
    " manufacturer TEXT NOT NULL DEFAULT '',"
    " model TEXT NOT NULL DEFAULT '',"
    " civil_code TEXT NOT NULL DEFAULT '',"
    " address TEXT NOT NULL DEFAULT '',"
    " extra_json TEXT NOT NULL DEFAULT '',"
    " media TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY(device_id, id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE gb_upstreams("
    " id TEXT PRIMARY KEY NOT NULL,"
    " state TEXT NOT NULL DEFAULT '',"
    " last_error TEXT NOT NULL DEFAULT '',"
    " registered_at INTEGER NOT NULL DEFAULT 0,"
    " last_keepalive_ok INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE gb_records("
    " channel_id TEXT NOT NULL,"
    " start INTEGER NOT NULL,"
    " \"end\" INTEGER NOT NULL,"
    " file_path TEXT NOT NULL DEFAULT '',"
    " device_id TEXT NOT NULL DEFAULT '',"
    " name TEXT NOT NULL DEFAULT '',"
    " type TEXT NOT NULL DEFAULT '',"
    " secrecy INTEGER NOT NULL DEFAULT 0,"
    " size INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(channel_id, start, \"end\", file_path)"
    ") WITHOUT ROWID;"
    "CREATE INDEX gb_records_device ON gb_records(device_id);",
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))

int store_schema_version(void) { return MIGRATION_COUNT; }

static int user_version(sqlite3 *db, int *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(s, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(s);
    return rc;
}

int store_schema_migrate(sqlite3 *db, char *err, size_t errcap)
{
    int version = 0;
    if (user_version(db, &version) != SQLITE_OK) {
        snprintf(err, errcap, "reading schema version: %s", sqlite3_errmsg(db));
        return -1;
    }
    if (version > MIGRATION_COUNT) {
        snprintf(err, errcap, "database schema version %d is newer than this build knows (%d)", version,
                 MIGRATION_COUNT);
        return -1;
    }
    for (int v = version; v < MIGRATION_COUNT; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version=%d;", v + 1);
        char *msg = NULL;
        /* IMMEDIATE: take the write lock first so two daemons starting on the
         * same file cannot both run the same migration. */
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, migrations[v], NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, bump, NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            snprintf(err, errcap, "schema migration %d: %s", v + 1, msg ? msg : sqlite3_errmsg(db));
            sqlite3_free(msg);
            if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        log_info("store: schema migrated to version %d", v + 1);
    }
    return 0;
}
