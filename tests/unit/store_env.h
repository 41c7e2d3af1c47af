/* store_env.h — a temporary SQLite database for unit tests that need a real
 * store: a directory under /tmp, a libuv loop, and a store opened on them.
 * Header-only; include after cmocka.h. */
#ifndef CASCADE_TESTS_STORE_ENV_H
#define CASCADE_TESTS_STORE_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "store/store.h"

struct store_env {
    char dir[64], path[96];
    uv_loop_t loop;
};

/* A new directory /tmp/cascade-test-TAG-XXXXXX and a loop (TAG: a few letters). */
static inline void store_env_open(struct store_env *e, const char *tag)
{
    snprintf(e->dir, sizeof(e->dir), "/tmp/cascade-test-%.16s-XXXXXX", tag);
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->path, sizeof(e->path), "%s/db.sqlite", e->dir);
    uv_loop_init(&e->loop);
}

/* A store on e's database (fails the test when it cannot open). */
static inline struct store *store_env_store(struct store_env *e)
{
    char err[256] = "";
    struct store *st = store_open(&e->loop, e->path, err, sizeof(err));
    if (!st) fail_msg("store_open: %s", err);
    return st;
}

/* Runs the loop dry (closed handles), closes it, removes the database files
 * and the directory. Close the stores first. */
static inline void store_env_close(struct store_env *e)
{
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s%s", e->path, suffix[i]);
        unlink(p);
    }
    rmdir(e->dir);
}

#endif
