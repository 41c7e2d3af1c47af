/* store.c — the store's lifecycle, queue and writer thread (see store.h).
 *
 * Two SQLite connections on one file: the writer connection belongs to the
 * writer thread (after store_open has created the schema with it); the reader
 * connection belongs to the loop thread and serves store_load_*. WAL lets the
 * reader run while the writer commits.
 *
 * Durability: journal_mode=WAL with synchronous=NORMAL. A COMMIT has written
 * its frames to the WAL file (through the OS page cache) before the writer
 * reports it, so a committed transaction survives the process being killed
 * (kill -9, crash, abort): the kernel still writes those pages. Only an OS
 * crash or power loss can lose the last few commits, because NORMAL skips the
 * fsync at each commit (it still syncs at checkpoints, so the database is
 * never corrupted). That is the right trade for a registrar: bindings are
 * soft state that clients refresh. synchronous=FULL would close the power-loss
 * window at the cost of one fsync per batch.
 *
 * Queue: store_submit stages ops on the loop thread without a lock; once per
 * loop iteration (a prepare handle, i.e. before the loop polls for I/O) the
 * staged ops move into `pending` (mutex-protected) with one lock and at most
 * one wake-up. Under load that turns a burst of REGISTERs read in one
 * iteration into one batch instead of a commit (and a thread switch) for
 * every two or three of them. The writer takes up to
 * STORE_MAX_BATCH of them, runs them in one transaction, moves them to `done`
 * and wakes the loop with uv_async_send. The loop runs the callbacks in the
 * order the ops were submitted: the writer takes ops in FIFO order and
 * appends finished batches in the same order.
 *
 * Inline commits: at moderate rates a REGISTER arrives alone in its loop
 * iteration, and handing one op to the writer costs two thread wake-ups
 * (the writer's, then the loop's for the result) that dwarf the commit
 * itself. So when the writer is idle, nothing is queued or waiting for
 * delivery and at most STORE_INLINE_MAX ops are staged, the loop thread
 * runs the batch itself on the writer connection (the `busy` flag, taken
 * under the mutex, keeps the two threads off it at the same time) and runs
 * the callbacks at once. Bursts still go to the writer. A WAL append with
 * synchronous=NORMAL does not fsync; the one slow step, the checkpoint, is
 * never run inline: automatic checkpoints are off and the writer thread
 * checkpoints (PASSIVE) once the WAL holds STORE_CHECKPOINT_PAGES frames. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/histogram.h"
#include "base/log.h"
#include "store/store_internal.h"

struct store {
    uv_loop_t *loop;
    uv_async_t *async;             /* own allocation: freed in its close callback */
    uv_prepare_t *prep;            /* hands staged ops over once per loop iteration */
    uv_idle_t *soon;               /* delivers inline commits in the next iteration */
    uv_timer_t *window;            /* group-commit window (store_set_commit_window) */
    uint32_t window_ms;
    struct store_writer_db w;      /* writer thread only (after open) */
    sqlite3 *rdb;                  /* loop thread only */

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t wake;           /* writer waits for work */
    pthread_cond_t idle;           /* flush waits for the writer to go idle */
    /* Protected by mu: */
    struct store_op *pending, **pending_tail;
    struct store_op *done, **done_tail;
    bool stopping;
    bool busy;                     /* a thread holds the writer connection */
    bool checkpoint_due;           /* the WAL is long: the writer checkpoints it */
    int wal_frames;                /* WAL length after the last commit (holder of busy) */
    uint64_t batches, max_batch, inline_batches, checkpoints;
    struct histogram commit_time;  /* run_batch, BEGIN to COMMIT: only the holder of busy observes */

    /* Loop thread only: */
    struct store_op *staged, **staged_tail;
    size_t staged_count;
    bool closing;
    bool delivering;
    uint64_t submitted, completed, failed;
};

/* A batch the loop thread may commit itself (see the top of this file). */
#define STORE_INLINE_MAX 32
/* Staged ops that end a commit window early (the burst goes at once). */
#define STORE_WINDOW_SKIP 32
/* WAL frames (pages) after which the writer checkpoints; SQLite's own
 * automatic checkpoint uses the same number. */
#define STORE_CHECKPOINT_PAGES 1000

static void fail_op(struct store_op *op, int status)
{
    if (op->status == 0) op->status = status;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void batch_body(struct store *st, struct store_op *ops, size_t n);

/* Runs one batch in one transaction; sets each op's status. Its duration
 * (commit included, whatever the outcome) goes into commit_time. */
static void run_batch(struct store *st, struct store_op *ops, size_t n)
{
    uint64_t t0 = mono_us();
    batch_body(st, ops, n);
    histogram_observe(&st->commit_time, mono_us() - t0);
}

static void batch_body(struct store *st, struct store_op *ops, size_t n)
{
    struct store_writer_db *w = &st->w;
    int rc = store_exec_stmt(w, STMT_BEGIN);
    if (rc != SQLITE_OK) {
        log_error("store: cannot begin a batch of %zu ops: %s", n, sqlite3_errstr(rc));
        for (struct store_op *op = ops; op; op = op->next) fail_op(op, store_errno_from_sqlite(rc));
        return;
    }
    for (struct store_op *op = ops; op; op = op->next) {
        rc = store_op_exec(w, op);
        if (rc == SQLITE_OK) continue;
        op->status = store_errno_from_sqlite(rc);
        log_error("store: %s failed: %s", store_op_kind_name(op->kind), sqlite3_errstr(rc));
        if (sqlite3_get_autocommit(w->db)) {
            /* SQLite rolled the whole transaction back (I/O error, disk full):
             * nothing of this batch is committed. */
            log_error("store: batch of %zu ops rolled back", n);
            for (struct store_op *o = ops; o; o = o->next) fail_op(o, op->status);
            return;
        }
    }
    rc = store_exec_stmt(w, STMT_COMMIT);
    if (rc != SQLITE_OK) {
        log_error("store: commit of a batch of %zu ops failed: %s", n, sqlite3_errstr(rc));
        if (!sqlite3_get_autocommit(w->db)) store_exec_stmt(w, STMT_ROLLBACK);
        for (struct store_op *op = ops; op; op = op->next) fail_op(op, store_errno_from_sqlite(rc));
    }
}

/* SQLite calls this after each commit on the writer connection, on the
 * committing thread, with mu not necessarily held (see on_commit_frames). */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    struct store *st = arg;
    st->wal_frames = frames; /* only the holder of `busy` commits, so only it writes this */
    return SQLITE_OK;
}

/* After a batch, mu held, still the holder of `busy`. */
static void note_wal_length(struct store *st)
{
    if (st->wal_frames >= STORE_CHECKPOINT_PAGES) st->checkpoint_due = true;
}

/* Writer thread, mu held, nothing pending: checkpoints the WAL without
 * holding the mutex, so the loop can keep staging (not committing inline:
 * busy is set). */
static void checkpoint(struct store *st)
{
    st->busy = true;
    st->checkpoint_due = false;
    st->wal_frames = 0;
    pthread_mutex_unlock(&st->mu);
    int log_frames = 0, done_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(st->w.db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done_frames);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) log_warn("store: checkpoint failed: %s", sqlite3_errstr(rc));
    pthread_mutex_lock(&st->mu);
    st->busy = false;
    st->checkpoints++;
    pthread_cond_broadcast(&st->idle);
}

static void *writer_main(void *arg)
{
    struct store *st = arg;
    /* Signals belong to the loop thread (libuv's signal handling). */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    pthread_mutex_lock(&st->mu);
    for (;;) {
        /* busy: the loop thread is committing inline on the same connection
         * (opened NOMUTEX); a checkpoint now would use it from two threads at
         * once and corrupt the database. commit_inline wakes us after. */
        while (st->busy || (!st->pending && !st->stopping && !st->checkpoint_due))
            pthread_cond_wait(&st->wake, &st->mu);
        if (!st->pending && st->checkpoint_due) {
            checkpoint(st);
            continue;
        }
        if (!st->pending) break; /* stopping and drained */
        struct store_op *batch = st->pending, *last = batch;
        size_t n = 1;
        while (last->next && n < STORE_MAX_BATCH) last = last->next, n++;
        st->pending = last->next;
        if (!st->pending) st->pending_tail = &st->pending;
        last->next = NULL;
        st->busy = true;
        pthread_mutex_unlock(&st->mu);

        run_batch(st, batch, n);

        pthread_mutex_lock(&st->mu);
        *st->done_tail = batch;
        st->done_tail = &last->next;
        note_wal_length(st);
        st->busy = false;
        st->batches++;
        if (n > st->max_batch) st->max_batch = n;
        pthread_cond_broadcast(&st->idle);
        uv_async_send(st->async);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Runs the callbacks of finished ops, in order, on the loop thread. */
static void deliver(struct store *st)
{
    if (st->delivering) return; /* the outer delivery picks up what is new */
    st->delivering = true;
    for (;;) {
        pthread_mutex_lock(&st->mu);
        struct store_op *list = st->done;
        st->done = NULL;
        st->done_tail = &st->done;
        pthread_mutex_unlock(&st->mu);
        if (!list) break;
        while (list) {
            struct store_op *op = list;
            list = op->next;
            st->completed++;
            if (op->status) st->failed++;
            if (op->cb) op->cb(op->arg, op->status);
            free(op);
        }
    }
    st->delivering = false;
}

static void on_async(uv_async_t *h) { deliver(h->data); }

static void on_soon(uv_idle_t *h)
{
    uv_idle_stop(h);
    deliver(h->data);
}

static void on_handle_closed(uv_handle_t *h) { free(h); }

/* Commits the staged ops on the loop thread when that is cheaper than a
 * hand-over (see the top of this file); returns false to hand them over.
 * Called with mu held; returns with mu held. */
static bool commit_inline(struct store *st)
{
    if (st->busy || st->pending || st->done || st->stopping || st->staged_count > STORE_INLINE_MAX) return false;
    st->busy = true;
    pthread_mutex_unlock(&st->mu);
    struct store_op *batch = st->staged, **tail = st->staged_tail;
    size_t n = st->staged_count;
    st->staged = NULL;
    st->staged_tail = &st->staged;
    st->staged_count = 0;
    uv_prepare_stop(st->prep);
    uv_timer_stop(st->window);
    run_batch(st, batch, n);
    pthread_mutex_lock(&st->mu);
    *st->done_tail = batch;
    st->done_tail = tail;
    note_wal_length(st);
    st->busy = false;
    st->batches++;
    st->inline_batches++;
    if (n > st->max_batch) st->max_batch = n;
    if (st->checkpoint_due || st->pending || st->stopping) pthread_cond_signal(&st->wake);
    pthread_cond_broadcast(&st->idle);
    return true;
}

/* Moves the staged ops to the writer's queue, or commits them inline
 * (loop thread). */
static void hand_over(struct store *st)
{
    if (!st->staged) return;
    pthread_mutex_lock(&st->mu);
    if (commit_inline(st)) {
        pthread_mutex_unlock(&st->mu);
        /* Not from here: the prepare phase is over for this iteration, so what
         * the callbacks start (timers, more store ops) would wait for the next
         * wake-up. An idle handle makes the loop poll without blocking and
         * deliver first thing in the next iteration. */
        uv_idle_start(st->soon, on_soon);
        return;
    }
    bool was_empty = st->pending == NULL;
    *st->pending_tail = st->staged;
    st->pending_tail = st->staged_tail;
    st->staged_count = 0;
    /* The writer only sleeps when the queue is empty, so one signal per
     * empty -> non-empty transition is enough. */
    if (was_empty) pthread_cond_signal(&st->wake);
    pthread_mutex_unlock(&st->mu);
    st->staged = NULL;
    st->staged_tail = &st->staged;
    uv_prepare_stop(st->prep);
}

static void on_prepare(uv_prepare_t *h) { hand_over(h->data); }

static void on_window(uv_timer_t *h) { hand_over(h->data); }

static sqlite3 *open_db(const char *path, char *err, size_t errcap)
{
    sqlite3 *db = NULL;
    /* NOMUTEX: each connection is used by one thread at a time. */
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errcap, "opening %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    /* Another process (cascadectl, sqlite3 shell) may hold a lock briefly. */
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(s, 0);
            snprintf(out, cap, "%s", t ? (const char *)t : "");
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            out[0] = '\0';
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(s);
    return rc;
}

static void free_store(struct store *st)
{
    store_writer_db_finalize(&st->w);
    sqlite3_close(st->w.db);
    sqlite3_close(st->rdb);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->wake);
    pthread_cond_destroy(&st->idle);
    free(st);
}

struct store *store_open(uv_loop_t *loop, const char *path, char *err, size_t errcap)
{
    if (!loop || !path || !path[0] || path[0] == ':') {
        /* ":memory:" would give the two connections two different databases. */
        snprintf(err, errcap, "store path must name a file");
        return NULL;
    }
    struct store *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    st->loop = loop;
    histogram_init(&st->commit_time, histogram_latency_bounds_us, HISTOGRAM_LATENCY_BOUNDS);
    st->pending_tail = &st->pending;
    st->done_tail = &st->done;
    st->staged_tail = &st->staged;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->wake, NULL);
    pthread_cond_init(&st->idle, NULL);

    char mode[32];
    if (!(st->w.db = open_db(path, err, errcap))) goto fail;
    if (pragma_text(st->w.db, "PRAGMA journal_mode=WAL", mode, sizeof(mode)) != SQLITE_OK ||
        strcmp(mode, "wal") != 0) {
        snprintf(err, errcap, "%s: cannot switch to WAL mode (%s)", path, sqlite3_errmsg(st->w.db));
        goto fail;
    }
    /* See the top of this file for why NORMAL is enough. */
    if (sqlite3_exec(st->w.db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errcap, "%s: %s", path, sqlite3_errmsg(st->w.db));
        goto fail;
    }
    /* Checkpoints belong to the writer thread (see the top of this file). */
    sqlite3_wal_autocheckpoint(st->w.db, 0);
    sqlite3_wal_hook(st->w.db, on_wal_commit, st);
    char merr[256];
    if (store_schema_migrate(st->w.db, merr, sizeof(merr)) != 0) {
        snprintf(err, errcap, "%s: %s", path, merr);
        goto fail;
    }
    if (!(st->rdb = open_db(path, err, errcap))) goto fail;

    st->async = malloc(sizeof(*st->async));
    if (!st->async || uv_async_init(loop, st->async, on_async) != 0) {
        free(st->async);
        st->async = NULL;
        snprintf(err, errcap, "cannot create the store's async handle");
        goto fail;
    }
    st->async->data = st;
    st->prep = malloc(sizeof(*st->prep));
    if (!st->prep || uv_prepare_init(loop, st->prep) != 0) {
        free(st->prep);
        st->prep = NULL;
        uv_close((uv_handle_t *)st->async, on_handle_closed);
        snprintf(err, errcap, "cannot create the store's prepare handle");
        goto fail;
    }
    st->prep->data = st;
    st->soon = malloc(sizeof(*st->soon));
    if (!st->soon || uv_idle_init(loop, st->soon) != 0) {
        free(st->soon);
        st->soon = NULL;
        uv_close((uv_handle_t *)st->async, on_handle_closed);
        uv_close((uv_handle_t *)st->prep, on_handle_closed);
        snprintf(err, errcap, "cannot create the store's idle handle");
        goto fail;
    }
    st->soon->data = st;
    st->window = malloc(sizeof(*st->window));
    if (!st->window || uv_timer_init(loop, st->window) != 0) {
        free(st->window);
        st->window = NULL;
        uv_close((uv_handle_t *)st->async, on_handle_closed);
        uv_close((uv_handle_t *)st->prep, on_handle_closed);
        uv_close((uv_handle_t *)st->soon, on_handle_closed);
        snprintf(err, errcap, "cannot create the store's timer");
        goto fail;
    }
    st->window->data = st;
    int prc = pthread_create(&st->thread, NULL, writer_main, st);
    if (prc != 0) {
        snprintf(err, errcap, "cannot start the store writer thread: %s", strerror(prc));
        uv_close((uv_handle_t *)st->async, on_handle_closed);
        uv_close((uv_handle_t *)st->prep, on_handle_closed);
        uv_close((uv_handle_t *)st->soon, on_handle_closed);
        uv_close((uv_handle_t *)st->window, on_handle_closed);
        goto fail;
    }
    st->thread_started = true;
    log_info("store: opened %s (schema version %d, WAL)", path, store_schema_version());
    return st;

fail:
    free_store(st);
    return NULL;
}

int store_submit(struct store *st, struct store_op *op, store_done_cb cb, void *arg)
{
    if (!op) return -ENOMEM;
    if (!st || st->closing) {
        log_warn("store: %s refused: %s", store_op_kind_name(op->kind), st ? "store is closing" : "no store");
        free(op);
        return -ESHUTDOWN;
    }
    op->cb = cb;
    op->arg = arg;
    op->status = 0;
    op->next = NULL;
    st->submitted++;
    /* Commit at the end of this loop iteration, or, with a commit window,
     * once the first staged op has waited that long (a burst that fills
     * STORE_WINDOW_SKIP ops goes at once). */
    if (!st->staged) {
        if (st->window_ms) uv_timer_start(st->window, on_window, st->window_ms, 0);
        else uv_prepare_start(st->prep, on_prepare);
    } else if (st->window_ms && st->staged_count + 1 == STORE_WINDOW_SKIP) {
        uv_prepare_start(st->prep, on_prepare);
    }
    *st->staged_tail = op;
    st->staged_tail = &op->next;
    st->staged_count++;
    return 0;
}

void store_flush_sync(struct store *st)
{
    if (!st) return;
    hand_over(st);
    pthread_mutex_lock(&st->mu);
    while (st->pending || st->busy) pthread_cond_wait(&st->idle, &st->mu);
    pthread_mutex_unlock(&st->mu);
    deliver(st);
}

uint64_t store_in_flight(const struct store *st) { return st ? st->submitted - st->completed : 0; }
uint64_t store_submitted(const struct store *st) { return st ? st->submitted : 0; }
uint64_t store_completed(const struct store *st) { return st ? st->completed : 0; }

void store_close(struct store *st)
{
    if (!st) return;
    st->closing = true;
    hand_over(st);
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_signal(&st->wake);
    pthread_mutex_unlock(&st->mu);
    if (st->thread_started) pthread_join(st->thread, NULL);
    deliver(st);
    uv_close((uv_handle_t *)st->async, on_handle_closed);
    uv_close((uv_handle_t *)st->prep, on_handle_closed);
    uv_close((uv_handle_t *)st->soon, on_handle_closed);
    uv_close((uv_handle_t *)st->window, on_handle_closed);
    log_info("store: closed (%llu ops, %llu failed, %llu batches)", (unsigned long long)st->completed,
             (unsigned long long)st->failed, (unsigned long long)st->batches);
    free_store(st);
}

void store_set_commit_window(struct store *st, uint32_t ms)
{
    if (st) st->window_ms = ms > 1000 ? 1000 : ms;
}

const struct histogram *store_commit_histogram(const struct store *st) { return &st->commit_time; }

void store_get_stats(struct store *st, struct store_stats *out)
{
    *out = (struct store_stats){0};
    if (!st) return;
    out->submitted = st->submitted;
    out->completed = st->completed;
    out->failed = st->failed;
    pthread_mutex_lock(&st->mu);
    out->batches = st->batches;
    out->max_batch = st->max_batch;
    out->inline_batches = st->inline_batches;
    out->checkpoints = st->checkpoints;
    pthread_mutex_unlock(&st->mu);
}

sqlite3 *store_reader_db(struct store *st) { return st ? st->rdb : NULL; }
