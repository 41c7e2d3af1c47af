/* users.h — the user table the registrar authenticates against.
 *
 * An in-memory hash table name -> {realm, HA1 (MD5 and/or SHA-256)}. It is
 * loaded from the store at start and is authoritative while the daemon runs:
 * users_find() never touches the database. users_add()/users_del() change the
 * table at once and queue the matching store write. Passwords never reach
 * this module: the auth module computes HA1 (auth_ha1()) and passes the hex.
 *
 * Names are compared byte-exact (the SIP user part is case-sensitive,
 * RFC 3261 §19.1.4). Loop thread only. */
#ifndef CASCADE_REGISTRAR_USERS_H
#define CASCADE_REGISTRAR_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "store/store.h"

#define USERS_MAX_NAME 256
#define USERS_MAX_REALM 256

struct users;

struct users_entry {
    const char *name;
    const char *realm;
    char ha1_md5[33];        /* lower-case hex, "" when not set */
    char ha1_sha256[65];     /* lower-case hex, "" when not set */
    int64_t created_at;      /* wall ms */
};

/* store may be NULL (memory only, for tests). NULL on allocation failure. */
struct users *users_new(struct store *store);
/* Frees the table; queued store writes still complete. NULL is ignored. */
void users_free(struct users *u);

/* Adds the rows of st (normally the users' own store) to the table without
 * writing anything back. Returns how many were loaded, or a negative errno.
 * Rows that fail the checks of users_add are skipped with a warning. */
int users_load(struct users *u, struct store *st);

/* What users_reload found. */
struct users_reload_result {
    int loaded;              /* valid rows in the store: the table now */
    int added, removed, changed;   /* against the table before (changed: realm or HA1) */
};
/* Re-reads the table from st, for an operator who changed the database
 * behind the daemon's back (SIGHUP): afterwards the table holds exactly the
 * valid stored rows. Writes still queued are not seen (store_flush_sync
 * first). 0 with out filled, or a negative errno with the table unchanged.
 * Every entry found earlier counts as replaced. */
int users_reload(struct users *u, struct store *st, struct users_reload_result *out);

/* A name users_add accepts: 1..USERS_MAX_NAME characters of the SIP user
 * part (RFC 3261 §25.1: alphanum, mark "-_.!~*'()" and user-unreserved
 * "&=+$,") without ';', '?' and '/' (the API addresses users by path segment:
 * "a/b" could never be deleted), and not "." or ".." (a path collapses them). */
bool users_name_ok(const char *name);
/* Copies "" / NULL, or exactly `digits` hex digits lower-cased, into out
 * (digits + 1 bytes); false for anything else. */
bool users_ha1_copy(const char *in, size_t digits, char *out);

/* Adds or replaces a user. ha1_md5 is "" / NULL or 32 hex digits, ha1_sha256
 * "" / NULL or 64 hex digits (stored lower-case); at least one must be set.
 * The name must pass users_name_ok() (stored rows loaded by users_load only
 * need 1..USERS_MAX_NAME bytes without control characters).
 * Returns 0, -EINVAL (refused, logged) or -ENOMEM; on 0, cb (may be NULL) is
 * called once with the store's status when the write is committed — right
 * away, before users_add returns, when there is no store. A replace keeps
 * created_at. */
int users_add(struct users *u, const char *name, const char *realm, const char *ha1_md5,
              const char *ha1_sha256, store_done_cb cb, void *arg);
/* Removes a user. 0 (cb as for users_add) or -ENOENT (cb not called). */
int users_del(struct users *u, const char *name, store_done_cb cb, void *arg);

/* Told of every users_add/users_del that changed the table (after the
 * change, before the store write completes): e is the new entry, or NULL for
 * a removal. One observer; NULL clears it. users_set_quiet(u, true) mutes
 * it (a change that came from elsewhere and must not be told back). */
typedef void (*users_observer_cb)(void *arg, const char *name, const struct users_entry *e);
void users_set_observer(struct users *u, users_observer_cb cb, void *arg);
void users_set_quiet(struct users *u, bool quiet);

/* O(1). The entry stays valid until that user is replaced or deleted. */
const struct users_entry *users_find(const struct users *u, str_t name);
size_t users_count(const struct users *u);
/* Calls cb for every user in no particular order, until cb returns non-zero
 * (that value is returned). cb must not add or delete users. */
int users_foreach(const struct users *u, int (*cb)(void *arg, const struct users_entry *e), void *arg);

#endif
