/* store_schema.c — the database schema as a list of migrations.
 *
 * PRAGMA user_version holds how many migrations a database has seen. At open,
 * each missing migration runs in its own transaction together with the
 * user_version bump, so a crash leaves the database at a whole version.
 * A migration is derived from the row descriptors (store_rows.c): version v
 * creates the tables whose `since` is v and adds to older tables the columns
 * whose `since` is v; then it runs its hand-written part below (indexes,
 * data fixes). To change the schema, add the column or table with the next
 * version and append that version's entry here (it may be "") — never edit
 * what has shipped. A database written by a newer build (higher version) is
 * refused rather than guessed at. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "store/store_internal.h"

/* What each migration runs after the tables and columns it derives. */
static const char *const migration_extra[] = {
    /* 1: initial schema (every table of store_rows.c). */
    "CREATE INDEX gb_records_device ON gb_records(device_id);",
    /* 2: subscriptions (issue 15). */
    "",
    /* 3: offline instant messages (issue 15). */
    "",
    /* 4: presence allow lists (issue 15). */
    "",
    /* 5: a GB device's own subscribe list (issue 15). */
    "",
    /* 6: subscriptions an upper platform holds with the lower role (issue 15). */
    "",
    /* 7: the upper role's subscriptions to its devices (issue 15). */
    "",
    /* 8: a node's secrets (the edge's token key, issue 16). */
    "",
};

#define MIGRATION_COUNT ((int)(sizeof(migration_extra) / sizeof(migration_extra[0])))

int store_schema_version(void) { return MIGRATION_COUNT; }

/* After a statement written at sql[*n]: moves past it and adds its ';'.
 * False when that does not fit. */
static bool end_stmt(char *sql, size_t cap, size_t *n)
{
    *n += strlen(sql + *n);
    if (*n + 1 >= cap) return false;
    sql[(*n)++] = ';';
    sql[*n] = '\0';
    return true;
}

int store_schema_migration_sql(int version, char *sql, size_t cap)
{
    if (version < 1 || version > MIGRATION_COUNT || cap == 0) return -EINVAL;
    size_t n = 0;
    sql[0] = '\0';
    for (int k = 0; k < STORE_ROW_KIND_COUNT; k++) {
        const struct store_row_desc *d = &store_rows[k];
        if (d->since == version) {
            if (store_row_create_sql(d, version, sql + n, cap - n) != 0 || !end_stmt(sql, cap, &n))
                return -ENAMETOOLONG;
            continue;
        }
        if (d->since > version) continue;
        for (size_t i = 0; i < d->ncolumns; i++) {
            if (d->columns[i].since != version) continue;
            if (store_row_add_column_sql(d, &d->columns[i], sql + n, cap - n) != 0 || !end_stmt(sql, cap, &n))
                return -ENAMETOOLONG;
        }
    }
    size_t extra = strlen(migration_extra[version - 1]);
    if (n + extra >= cap) return -ENAMETOOLONG;
    memcpy(sql + n, migration_extra[version - 1], extra + 1);
    return 0;
}

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
        char sql[16384];
        if (store_schema_migration_sql(v + 1, sql, sizeof(sql)) != 0) {
            snprintf(err, errcap, "schema migration %d: SQL too long", v + 1);
            return -1;
        }
        char *msg = NULL;
        /* IMMEDIATE: take the write lock first so two daemons starting on the
         * same file cannot both run the same migration. */
        int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
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
