/* test_store.c — the SQLite store: op ordering on the loop, group commit,
 * round trips of every table, failure isolation, and durability of committed
 * ops when the process is SIGKILLed. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "base/log.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store_env.h"

static int setup(void **state)
{
    struct store_env *e = calloc(1, sizeof(*e));
    store_env_open(e, "store");
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct store_env *e = *state;
    store_env_close(e);
    free(e);
    return 0;
}

static struct store *open_store(struct store_env *e) { return store_env_store(e); }

/* ---- Callback recording. */

struct order_log {
    int *seen;      /* indices in callback order */
    int *status;
    int count, cap;
};

struct order_ref {
    struct order_log *log;
    int index;
};

static void count_cb(void *arg, int status)
{
    assert_int_equal(status, 0);
    (*(int *)arg)++;
}

static void record_cb(void *arg, int status)
{
    struct order_ref *r = arg;
    struct order_log *l = r->log;
    assert_true(l->count < l->cap);
    l->seen[l->count] = r->index;
    l->status[l->count] = status;
    l->count++;
}

static void run_until(struct store_env *e, const int *counter, int target)
{
    while (*counter < target) uv_run(&e->loop, UV_RUN_ONCE);
}

static void fill_binding(struct store_binding *b, char *aor, size_t aorcap, char *contact, size_t ccap, int i)
{
    snprintf(aor, aorcap, "user%d@example.com", i % 1000);
    snprintf(contact, ccap, "sip:user%d@10.0.%d.%d:5060;transport=udp", i, (i >> 8) & 255, i & 255);
    *b = (struct store_binding){
        .aor = aor,
        .contact = contact,
        .expires_at = 1700000000000LL + i,
        .q1000 = i % 1001,
        .call_id = "callid-abc",
        .cseq = (uint32_t)i,
        .transport = (i & 1) ? "tcp" : "udp",
        .remote = "192.0.2.1:5060",
        .conn_id = (uint64_t)i * 3,
        .path = (i % 3) ? "" : "<sip:edge.example.com;lr>",
        .user_agent = "test/1.0",
        .instance = (i % 5) ? "" : "<urn:uuid:00000000-0000-0000-0000-000000000001>",
        .reg_id = (uint32_t)(i % 5),
        .flags = (uint32_t)(i % 2),
        .received_at = 1699999999000LL + i,
    };
}

static int count_rows_cb(void *arg, const struct store_binding *b)
{
    (void)b;
    (*(int *)arg)++;
    return 0;
}

/* ---- Tests. */

static void test_open_creates_schema_and_reopens(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    store_close(st);
    st = open_store(e); /* second open: no migration, same version */
    store_close(st);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), store_schema_version());
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    /* A database from a newer build is refused, not guessed at. */
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", store_schema_version() + 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char err[256] = "";
    assert_null(store_open(&e->loop, e->path, err, sizeof(err)));
    assert_non_null(strstr(err, "newer"));
    assert_null(store_open(&e->loop, ":memory:", err, sizeof(err)));
}

static void test_callbacks_in_submission_order(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    enum { N = 10000 };
    struct order_log log = {calloc(N, sizeof(int)), calloc(N, sizeof(int)), 0, N};
    struct order_ref *refs = calloc(N, sizeof(*refs));
    for (int i = 0; i < N; i++) {
        char aor[64], contact[96];
        struct store_binding b;
        fill_binding(&b, aor, sizeof(aor), contact, sizeof(contact), i);
        refs[i] = (struct order_ref){&log, i};
        /* mix in other kinds so ordering holds across op types */
        struct store_op *op = (i % 7 == 3) ? store_op_binding_delete(aor, contact) : store_op_binding_upsert(&b);
        assert_int_equal(store_submit(st, op, record_cb, &refs[i]), 0);
    }
    assert_int_equal(log.count, 0); /* never called from inside store_submit */
    run_until(e, &log.count, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(log.seen[i], i);
        assert_int_equal(log.status[i], 0);
    }
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.submitted, N);
    assert_int_equal(stats.completed, N);
    assert_int_equal(stats.failed, 0);
    assert_true(stats.batches >= 2); /* N > STORE_MAX_BATCH */
    assert_true(stats.max_batch <= STORE_MAX_BATCH);
    store_close(st);

    st = open_store(e);
    int rows = 0;
    assert_int_equal(store_load_bindings(st, count_rows_cb, &rows), 0);
    int expect = 0;
    for (int i = 0; i < N; i++) expect += (i % 7 != 3);
    assert_int_equal(rows, expect);
    store_close(st);
    free(log.seen);
    free(log.status);
    free(refs);
}

struct binding_check {
    int seen;
    int stop_after;
};

static int check_binding_cb(void *arg, const struct store_binding *b)
{
    struct binding_check *c = arg;
    /* contact "sip:user<i>@..." carries i */
    int i = atoi(b->contact + strlen("sip:user"));
    char aor[64], contact[96];
    struct store_binding want;
    fill_binding(&want, aor, sizeof(aor), contact, sizeof(contact), i);
    assert_string_equal(b->aor, want.aor);
    assert_string_equal(b->contact, want.contact);
    assert_int_equal(b->expires_at, want.expires_at);
    assert_int_equal(b->q1000, want.q1000);
    assert_string_equal(b->call_id, want.call_id);
    assert_int_equal(b->cseq, want.cseq);
    assert_string_equal(b->transport, want.transport);
    assert_string_equal(b->remote, want.remote);
    assert_int_equal(b->conn_id, want.conn_id);
    assert_string_equal(b->path, want.path);
    assert_string_equal(b->user_agent, want.user_agent);
    assert_string_equal(b->instance, want.instance);
    assert_int_equal(b->reg_id, want.reg_id);
    assert_int_equal(b->flags, want.flags);
    assert_int_equal(b->received_at, want.received_at);
    c->seen++;
    return (c->stop_after && c->seen == c->stop_after) ? 42 : 0;
}

static void test_binding_round_trip_and_deletes(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    char aor[64], contact[96];
    struct store_binding b;
    for (int i = 0; i < 50; i++) {
        fill_binding(&b, aor, sizeof(aor), contact, sizeof(contact), i);
        assert_int_equal(store_submit(st, store_op_binding_upsert(&b), NULL, NULL), 0);
    }
    /* upsert twice: the second write wins, no duplicate row */
    fill_binding(&b, aor, sizeof(aor), contact, sizeof(contact), 7);
    assert_int_equal(store_submit(st, store_op_binding_upsert(&b), NULL, NULL), 0);
    store_flush_sync(st);
    struct binding_check c = {0};
    assert_int_equal(store_load_bindings(st, check_binding_cb, &c), 0);
    assert_int_equal(c.seen, 50);
    /* a row callback can stop the load and its value comes back */
    c = (struct binding_check){.stop_after = 5};
    assert_int_equal(store_load_bindings(st, check_binding_cb, &c), 42);
    assert_int_equal(c.seen, 5);

    /* delete one, then all of one AoR (user1@ has i = 1), then the expired */
    fill_binding(&b, aor, sizeof(aor), contact, sizeof(contact), 2);
    assert_int_equal(store_submit(st, store_op_binding_delete(aor, contact), NULL, NULL), 0);
    assert_int_equal(store_submit(st, store_op_binding_delete_aor("user1@example.com"), NULL, NULL), 0);
    /* expires_at = base + i: i < 10 are expired at base + 9 */
    assert_int_equal(store_submit(st, store_op_binding_delete_expired(1700000000000LL + 9), NULL, NULL), 0);
    store_flush_sync(st);
    c = (struct binding_check){0};
    assert_int_equal(store_load_bindings(st, check_binding_cb, &c), 0);
    assert_int_equal(c.seen, 40); /* 0..9 expired (incl. 1 and 2), 10..49 remain */
    store_close(st);
}

struct user_rows {
    int n;
    char names[8][32];
    char realms[8][32];
    char md5[8][40];
    int64_t created[8];
};

static int user_cb(void *arg, const struct store_user *u)
{
    struct user_rows *r = arg;
    if (r->n >= 8) return -1;
    snprintf(r->names[r->n], 32, "%s", u->name);
    snprintf(r->realms[r->n], 32, "%s", u->realm);
    snprintf(r->md5[r->n], 40, "%s", u->ha1_md5);
    r->created[r->n] = u->created_at;
    r->n++;
    return 0;
}

static void test_users(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    struct store_user u = {"alice", "example.com", "0123456789abcdef0123456789abcdef", "", 1000};
    assert_int_equal(store_submit(st, store_op_user_upsert(&u), NULL, NULL), 0);
    u = (struct store_user){"bob", "example.com", "ffffffffffffffffffffffffffffffff", "", 2000};
    assert_int_equal(store_submit(st, store_op_user_upsert(&u), NULL, NULL), 0);
    /* an update keeps created_at from the first insert */
    u = (struct store_user){"alice", "other.org", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "", 5000};
    assert_int_equal(store_submit(st, store_op_user_upsert(&u), NULL, NULL), 0);
    store_flush_sync(st);
    struct user_rows r = {0};
    assert_int_equal(store_load_users(st, user_cb, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.names[0], "alice");
    assert_string_equal(r.realms[0], "other.org");
    assert_string_equal(r.md5[0], "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(r.created[0], 1000);
    assert_int_equal(store_submit(st, store_op_user_delete("bob"), NULL, NULL), 0);
    store_flush_sync(st);
    r = (struct user_rows){0};
    assert_int_equal(store_load_users(st, user_cb, &r), 0);
    assert_int_equal(r.n, 1);
    store_close(st);
}

struct gb_rows {
    int devices, channels, upstreams, records;
    char last[64];
    int64_t last_start;
    bool online;
    char info[64];
};

static int dev_cb(void *arg, const struct store_gb_device *d)
{
    struct gb_rows *r = arg;
    r->devices++;
    snprintf(r->last, sizeof(r->last), "%s", d->id);
    snprintf(r->info, sizeof(r->info), "%s", d->info_json);
    r->online = d->online;
    return 0;
}

static int ch_cb(void *arg, const struct store_gb_channel *c)
{
    struct gb_rows *r = arg;
    r->channels++;
    snprintf(r->last, sizeof(r->last), "%s/%s/%s", c->device_id, c->id, c->name);
    return 0;
}

static int up_cb(void *arg, const struct store_gb_upstream *u)
{
    struct gb_rows *r = arg;
    r->upstreams++;
    snprintf(r->last, sizeof(r->last), "%s:%s:%s", u->id, u->state, u->last_error);
    return 0;
}

static int rec_cb(void *arg, const struct store_gb_record *rec)
{
    struct gb_rows *r = arg;
    r->records++;
    snprintf(r->last, sizeof(r->last), "%s:%s:%lld", rec->channel_id, rec->name, (long long)rec->size);
    r->last_start = rec->start;
    return 0;
}

static void test_gb_tables(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    const char *dev = "34020000001320000001";
    struct store_gb_device d = {.id = dev, .password = "12345678", .charset = "GB2312", .auth_enabled = true,
                                .allow = true, .online = true, .remote = "192.0.2.7:5060", .transport = "udp",
                                .registered_at = 1, .last_keepalive = 2, .expires_at = 3,
                                .info_json = "{\"DeviceName\":\"\xe6\x91\x84\xe5\x83\x8f\xe6\x9c\xba\"}"};
    assert_int_equal(store_submit(st, store_op_gb_device_upsert(&d), NULL, NULL), 0);
    d.id = "34020000001320000002";
    d.online = false;
    assert_int_equal(store_submit(st, store_op_gb_device_upsert(&d), NULL, NULL), 0);

    struct store_gb_channel chs[3] = {
        {.id = "34020000001310000001", .name = "gate", .status = "ON", .parent_id = dev},
        {.id = "34020000001310000002", .name = "hall", .status = "OFF", .parent_id = dev},
        {.id = "34020000001310000003", .name = "yard", .status = "ON", .parent_id = dev},
    };
    assert_int_equal(store_submit(st, store_op_gb_channels_replace(dev, chs, 3), NULL, NULL), 0);
    struct store_gb_channel other = {.device_id = "34020000001320000002", .id = "34020000001310000009",
                                     .name = "other"};
    assert_int_equal(store_submit(st, store_op_gb_channel_upsert(&other), NULL, NULL), 0);
    struct store_gb_channel local = {.device_id = "", .id = "34020000001310000077", .name = "local",
                                     .media = "/srv/clip.h264"};
    assert_int_equal(store_submit(st, store_op_gb_channel_upsert(&local), NULL, NULL), 0);

    struct store_gb_upstream up = {"34020000002000000001", "registered", "", 10, 11};
    assert_int_equal(store_submit(st, store_op_gb_upstream_upsert(&up), NULL, NULL), 0);
    up.state = "failed";
    up.last_error = "403 Forbidden";
    assert_int_equal(store_submit(st, store_op_gb_upstream_upsert(&up), NULL, NULL), 0);

    for (int i = 0; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof(name), "rec%d", i);
        struct store_gb_record rec = {.device_id = dev, .channel_id = "34020000001310000001", .name = name,
                                      .start = i * 100, .end = i * 100 + 90, .type = "time",
                                      .file_path = "", .size = i};
        assert_int_equal(store_submit(st, store_op_gb_record_upsert(&rec), NULL, NULL), 0);
    }
    store_flush_sync(st);

    struct gb_rows r = {0};
    assert_int_equal(store_load_gb_devices(st, dev_cb, &r), 0);
    assert_int_equal(r.devices, 2);
    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_devices(st, dev_cb, &r), 0);
    assert_string_equal(r.last, "34020000001320000002");
    assert_false(r.online);
    assert_string_equal(r.info, "{\"DeviceName\":\"\xe6\x91\x84\xe5\x83\x8f\xe6\x9c\xba\"}");

    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_channels(st, dev, ch_cb, &r), 0);
    assert_int_equal(r.channels, 3);
    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_channels(st, NULL, ch_cb, &r), 0);
    assert_int_equal(r.channels, 5);
    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_channels(st, "", ch_cb, &r), 0);
    assert_int_equal(r.channels, 1);
    assert_string_equal(r.last, "/34020000001310000077/local");

    /* a fresh catalog replaces the old one entirely */
    assert_int_equal(store_submit(st, store_op_gb_channels_replace(dev, &chs[1], 1), NULL, NULL), 0);
    store_flush_sync(st);
    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_channels(st, dev, ch_cb, &r), 0);
    assert_int_equal(r.channels, 1);
    assert_string_equal(r.last, "34020000001320000001/34020000001310000002/hall");

    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_upstreams(st, up_cb, &r), 0);
    assert_int_equal(r.upstreams, 1);
    assert_string_equal(r.last, "34020000002000000001:failed:403 Forbidden");

    /* records overlapping [250, 520): rec2 (200-290) .. rec5 (500-590) */
    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_records(st, "34020000001310000001", 250, 520, rec_cb, &r), 0);
    assert_int_equal(r.records, 4);
    assert_int_equal(r.last_start, 500);
    assert_int_equal(store_submit(st, store_op_gb_records_delete("34020000001310000001", 0, 300), NULL, NULL),
                     0);
    store_flush_sync(st);
    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_records(st, "34020000001310000001", 0, 10000, rec_cb, &r), 0);
    assert_int_equal(r.records, 7);

    /* deleting a device takes its channels and records along */
    assert_int_equal(store_submit(st, store_op_gb_device_delete(dev), NULL, NULL), 0);
    assert_int_equal(store_submit(st, store_op_gb_upstream_delete("34020000002000000001"), NULL, NULL), 0);
    assert_int_equal(store_submit(st, store_op_gb_channel_delete("", "34020000001310000077"), NULL, NULL), 0);
    store_flush_sync(st);
    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_devices(st, dev_cb, &r), 0);
    assert_int_equal(r.devices, 1);
    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_channels(st, NULL, ch_cb, &r), 0);
    assert_int_equal(r.channels, 1);
    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_records(st, "34020000001310000001", 0, 10000, rec_cb, &r), 0);
    assert_int_equal(r.records, 0);
    r = (struct gb_rows){0};
    assert_int_equal(store_load_gb_upstreams(st, up_cb, &r), 0);
    assert_int_equal(r.upstreams, 0);
    store_close(st);
}

static void test_constructors_refuse_bad_input(void **state)
{
    struct store_env *e = *state;
    log_set_level(LOG_ERROR); /* the refusals below log warnings */
    struct store_binding b = {.aor = "", .contact = "sip:x"};
    assert_null(store_op_binding_upsert(&b));
    b.aor = "a";
    b.contact = NULL;
    assert_null(store_op_binding_upsert(&b));
    assert_null(store_op_binding_upsert(NULL));
    char *big = malloc(STORE_MAX_TEXT + 2);
    memset(big, 'x', STORE_MAX_TEXT + 1);
    big[STORE_MAX_TEXT + 1] = '\0';
    b.contact = big;
    assert_null(store_op_binding_upsert(&b));
    big[STORE_MAX_TEXT] = '\0'; /* exactly at the limit is fine */
    struct store_op *op = store_op_binding_upsert(&b);
    assert_non_null(op);
    store_op_free(op);
    free(big);
    assert_null(store_op_user_delete(""));
    assert_null(store_op_gb_channels_replace("dev", NULL, 3));
    struct store_gb_channel bad = {.id = ""};
    assert_null(store_op_gb_channels_replace("dev", &bad, 1));

    struct store *st = open_store(e);
    assert_int_equal(store_submit(st, NULL, NULL, NULL), -ENOMEM);
    store_close(st);
    log_set_level(LOG_INFO);
}

/* One op failing (its table is gone) must not take the rest of its batch down. */
static void test_failed_op_is_isolated(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE gb_upstreams", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    log_set_level(LOG_ERROR + 0);
    FILE *quiet = fopen("/dev/null", "w");
    log_set_file(quiet);
    struct order_log log = {calloc(3, sizeof(int)), calloc(3, sizeof(int)), 0, 3};
    struct order_ref refs[3] = {{&log, 0}, {&log, 1}, {&log, 2}};
    struct store_binding b1 = {.aor = "a", .contact = "sip:1", .transport = "udp"};
    struct store_gb_upstream up = {.id = "x"};
    struct store_binding b2 = {.aor = "a", .contact = "sip:2", .transport = "udp"};
    assert_int_equal(store_submit(st, store_op_binding_upsert(&b1), record_cb, &refs[0]), 0);
    assert_int_equal(store_submit(st, store_op_gb_upstream_upsert(&up), record_cb, &refs[1]), 0);
    assert_int_equal(store_submit(st, store_op_binding_upsert(&b2), record_cb, &refs[2]), 0);
    run_until(e, &log.count, 3);
    log_set_file(NULL);
    fclose(quiet);
    log_set_level(LOG_INFO);
    assert_int_equal(log.status[0], 0);
    assert_true(log.status[1] < 0);
    assert_int_equal(log.status[2], 0);
    int rows = 0;
    assert_int_equal(store_load_bindings(st, count_rows_cb, &rows), 0);
    assert_int_equal(rows, 2);
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.failed, 1);
    store_close(st);
    free(log.seen);
    free(log.status);
}


/* A lone op is committed by the loop thread itself (no hand-over to the
 * writer), its callback runs in the next loop iteration without any other
 * wake-up, and an op submitted from that callback is committed the same way:
 * a loop with nothing else to do never blocks with work staged. */
struct inline_chain {
    struct store *st;
    struct store_binding b;
    int fired;
};

static void inline_chain_cb(void *arg, int status)
{
    struct inline_chain *c = arg;
    assert_int_equal(status, 0);
    if (++c->fired < 3) assert_int_equal(store_submit(c->st, store_op_binding_upsert(&c->b), inline_chain_cb, c), 0);
}

static void never_cb(uv_timer_t *t)
{
    (void)t;
    fail_msg("the loop blocked with store work staged");
}

static void test_lone_ops_commit_inline(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    struct inline_chain c = {.st = st, .b = {.aor = "a", .contact = "sip:1", .transport = "udp"}};
    uv_timer_t guard;
    uv_timer_init(&e->loop, &guard);
    uv_timer_start(&guard, never_cb, 10000, 0);
    assert_int_equal(store_submit(st, store_op_binding_upsert(&c.b), inline_chain_cb, &c), 0);
    for (int i = 0; i < 50 && c.fired < 3; i++) uv_run(&e->loop, UV_RUN_ONCE);
    assert_int_equal(c.fired, 3);
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.batches, 3);
    assert_int_equal(stats.inline_batches, 3);
    /* A burst larger than the inline limit goes to the writer, in order. */
    enum { N = 40 };
    struct order_log log = {calloc(N, sizeof(int)), calloc(N, sizeof(int)), 0, N};
    struct order_ref refs[N];
    struct store_binding bs[N];
    char aor[N][32];
    for (int i = 0; i < N; i++) {
        refs[i] = (struct order_ref){&log, i};
        snprintf(aor[i], sizeof(aor[i]), "burst%d", i);
        bs[i] = (struct store_binding){.aor = aor[i], .contact = "sip:2", .transport = "udp"};
        assert_int_equal(store_submit(st, store_op_binding_upsert(&bs[i]), record_cb, &refs[i]), 0);
    }
    run_until(e, &log.count, N);
    for (int i = 0; i < N; i++) assert_int_equal(log.seen[i], i);
    store_get_stats(st, &stats);
    assert_int_equal(stats.inline_batches, 3);
    assert_true(stats.batches > 3);
    uv_timer_stop(&guard);
    uv_close((uv_handle_t *)&guard, NULL);
    store_close(st);
    free(log.seen);
    free(log.status);
}

/* With a commit window, ops submitted one by one wait for company and share
 * one COMMIT; a burst of 32 goes without waiting for the window (10 s here:
 * were it waited out, uv_now would show it). */
static void test_commit_window_groups_ops(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    store_set_commit_window(st, 10000);
    int done = 0;
    char aor[32], contact[96];
    struct store_binding b;
    for (int i = 0; i < 3; i++) {
        fill_binding(&b, aor, sizeof(aor), contact, sizeof(contact), i);
        assert_int_equal(store_submit(st, store_op_binding_upsert(&b), count_cb, &done), 0);
        uv_run(&e->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(done, 0); /* still waiting for company */
    uv_update_time(&e->loop);
    uint64_t t0 = uv_now(&e->loop);
    for (int i = 3; i < 32; i++) {
        fill_binding(&b, aor, sizeof(aor), contact, sizeof(contact), i);
        assert_int_equal(store_submit(st, store_op_binding_upsert(&b), count_cb, &done), 0);
    }
    run_until(e, &done, 32);
    uv_update_time(&e->loop);
    assert_true(uv_now(&e->loop) - t0 < 5000);
    struct store_stats stats;
    store_get_stats(st, &stats);
    assert_int_equal(stats.batches, 1);
    /* A lone op after that waits out the window, unless flushed. */
    fill_binding(&b, aor, sizeof(aor), contact, sizeof(contact), 99);
    assert_int_equal(store_submit(st, store_op_binding_upsert(&b), count_cb, &done), 0);
    store_flush_sync(st);
    assert_int_equal(done, 33);
    store_close(st);
}

/* Automatic checkpoints are off (they would run inline); the writer thread
 * checkpoints once the WAL is long, also when every commit was inline. */
static void test_writer_checkpoints_inline_commits(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    int done = 0;
    char aor[32], contact[96];
    struct store_binding b;
    /* Lone ops commit inline on the loop thread while the writer thread
     * checkpoints on the same connection: the two must never overlap (they
     * did once, and SQLite reported "database disk image is malformed").
     * Keep committing for a while after the first checkpoint so both run
     * side by side many times. */
    struct store_stats stats = {0};
    int n = 0;
    while (n < 20000) {
        fill_binding(&b, aor, sizeof(aor), contact, sizeof(contact), n);
        assert_int_equal(store_submit(st, store_op_binding_upsert(&b), count_cb, &done), 0);
        n++;
        run_until(e, &done, n);
        store_get_stats(st, &stats);
        if (n > 1500 && stats.checkpoints >= 3) break;
    }
    for (int i = 0; i < 1000 && stats.checkpoints == 0; i++) {
        usleep(10000);
        store_get_stats(st, &stats);
    }
    assert_true(stats.inline_batches >= 1000);
    assert_true(stats.checkpoints > 0);
    assert_int_equal(stats.failed, 0);
    store_close(st);

    /* every row is there and the file is sound */
    st = open_store(e);
    int rows = 0;
    assert_int_equal(store_load_bindings(st, count_rows_cb, &rows), 0);
    assert_int_equal(rows, n);
    store_close(st);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* Callbacks may submit more work; store_flush_sync and store_close deliver it. */
struct chain {
    struct store *st;
    int fired;
    int limit;
    int barrier_fired;
    int last_status;
};

static void chain_cb(void *arg, int status)
{
    struct chain *c = arg;
    assert_int_equal(status, 0);
    c->fired++;
    if (c->fired < c->limit) {
        struct store_user u = {.name = "chained", .realm = "r"};
        assert_int_equal(store_submit(c->st, store_op_user_upsert(&u), chain_cb, c), 0);
        /* nested flush from inside a callback must not reorder or recurse */
        store_flush_sync(c->st);
    }
}

static void barrier_cb(void *arg, int status)
{
    struct chain *c = arg;
    c->barrier_fired = c->fired + 1;
    c->last_status = status;
}

static void closing_cb(void *arg, int status)
{
    struct chain *c = arg;
    c->fired++;
    c->last_status = status;
    /* submitting while the store closes is refused, and says so */
    struct store_user u = {.name = "late"};
    assert_int_equal(store_submit(c->st, store_op_user_upsert(&u), NULL, NULL), -ESHUTDOWN);
}

static void test_chained_submits_flush_and_close(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    struct chain c = {.st = st, .limit = 20};
    struct store_user u = {.name = "first", .realm = "r"};
    assert_int_equal(store_submit(st, store_op_user_upsert(&u), chain_cb, &c), 0);
    run_until(e, &c.fired, 20);
    assert_int_equal(c.fired, 20);

    /* barrier: fires after what came before */
    struct chain b = {.st = st};
    struct order_log log = {calloc(100, sizeof(int)), calloc(100, sizeof(int)), 0, 100};
    struct order_ref refs[100];
    for (int i = 0; i < 100; i++) {
        refs[i] = (struct order_ref){&log, i};
        struct store_user uu = {.name = "u", .realm = "r"};
        assert_int_equal(store_submit(st, store_op_user_upsert(&uu), record_cb, &refs[i]), 0);
    }
    assert_int_equal(store_submit(st, store_op_barrier(), barrier_cb, &b), 0);
    store_flush_sync(st);
    assert_int_equal(log.count, 100);
    assert_int_equal(b.barrier_fired, 1);

    /* close runs pending callbacks before returning */
    struct chain cl = {.st = st};
    for (int i = 0; i < 10; i++) {
        struct store_user uu = {.name = "v", .realm = "r"};
        assert_int_equal(store_submit(st, store_op_user_upsert(&uu), closing_cb, &cl), 0);
    }
    store_close(st);
    assert_int_equal(cl.fired, 10);
    assert_int_equal(cl.last_status, 0);
    free(log.seen);
    free(log.status);
}

/* ---- Durability: a child commits bindings and is SIGKILLed right after its
 * callbacks report them committed, while more writes are in flight. Every
 * binding reported committed must be in the database afterwards. */

struct kill_ctx {
    int fd;
    int committed;
    int kill_at;
};

static void kill_cb(void *arg, int status)
{
    struct kill_ctx *k = arg;
    if (status != 0) _exit(3);
    k->committed++;
    if (k->committed == k->kill_at) {
        if (write(k->fd, &k->committed, sizeof(k->committed)) != (ssize_t)sizeof(k->committed)) _exit(4);
        kill(getpid(), SIGKILL);
    }
}

static void kill_child(const char *path, int fd)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    struct store *st = store_open(&loop, path, err, sizeof(err));
    if (!st) _exit(2);
    enum { TOTAL = 30000 };
    struct kill_ctx k = {.fd = fd, .kill_at = 12345};
    /* stream in waves so that the kill lands while the writer is busy */
    int submitted = 0;
    while (submitted < TOTAL) {
        for (int j = 0; j < 1000 && submitted < TOTAL; j++, submitted++) {
            char aor[64], contact[96];
            struct store_binding b;
            fill_binding(&b, aor, sizeof(aor), contact, sizeof(contact), submitted);
            if (store_submit(st, store_op_binding_upsert(&b), kill_cb, &k) != 0) _exit(5);
        }
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    while (1) uv_run(&loop, UV_RUN_ONCE);
}

static int mark_cb(void *arg, const struct store_binding *b)
{
    char *seen = arg;
    int i = atoi(b->contact + strlen("sip:user"));
    if (i >= 0 && i < 30000) seen[i] = 1;
    return 0;
}

static void test_committed_survives_sigkill(void **state)
{
    struct store_env *e = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        kill_child(e->path, fds[1]);
        _exit(1);
    }
    close(fds[1]);
    int committed = 0;
    ssize_t n = read(fds[0], &committed, sizeof(committed));
    close(fds[0]);
    int wstatus = 0;
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_int_equal(n, (ssize_t)sizeof(committed));
    assert_true(WIFSIGNALED(wstatus));
    assert_int_equal(WTERMSIG(wstatus), SIGKILL);
    assert_int_equal(committed, 12345);

    struct store *st = open_store(e);
    char *seen = calloc(30000, 1);
    assert_int_equal(store_load_bindings(st, mark_cb, seen), 0);
    int found = 0;
    for (int i = 0; i < 30000; i++) found += seen[i];
    for (int i = 0; i < committed; i++) {
        if (!seen[i]) fail_msg("binding %d was reported committed but is missing", i);
    }
    /* committed bindings are a prefix: nothing after a hole */
    for (int i = 1; i < 30000; i++) assert_false(seen[i] && !seen[i - 1]);
    fprintf(stderr, "sigkill test: %d reported committed, %d found after restart\n", committed, found);
    free(seen);
    store_close(st);
}

/* ---- Row descriptors: the derived schema against the one that shipped. */

/* Schema version 1 exactly as it shipped (the text of migration 1 before the
 * descriptors existed): what every existing database holds. Never edit. */
static const char shipped_v1[] =
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
    "CREATE INDEX gb_records_device ON gb_records(device_id);";

/* Fills out[] with "type name tbl_name sql" of every schema object, by name. */
static int schema_rows(sqlite3 *db, char out[][2048], int cap)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT type,name,tbl_name,sql FROM sqlite_master ORDER BY name", -1,
                                        &s, NULL),
                     SQLITE_OK);
    int n = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        assert_true(n < cap);
        snprintf(out[n++], 2048, "%s %s %s %s", sqlite3_column_text(s, 0), sqlite3_column_text(s, 1),
                 sqlite3_column_text(s, 2), sqlite3_column_text(s, 3));
    }
    sqlite3_finalize(s);
    return n;
}

/* A database created by the shipped version 1 has, in sqlite_master, exactly
 * the CREATE text each descriptor derives, and a fresh database made from the
 * descriptors has the same sqlite_master as the shipped one. */
static void test_derived_schema_equals_shipped(void **state)
{
    struct store_env *e = *state;
    char old_path[128];
    snprintf(old_path, sizeof(old_path), "%s/old.sqlite", e->dir);
    sqlite3 *old;
    assert_int_equal(sqlite3_open(old_path, &old), SQLITE_OK);
    assert_int_equal(sqlite3_exec(old, shipped_v1, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(old, "PRAGMA user_version=1", NULL, NULL, NULL), SQLITE_OK);

    int later_tables = 0; /* tables a later version created: not in the shipped text */
    /* A shipped table a later migration added columns to (ALTER TABLE ADD
     * COLUMN): the fresh database holds its text as of now. */
    static char shipped_text[STORE_ROW_KIND_COUNT][2048], now_text[STORE_ROW_KIND_COUNT][2048];
    for (int k = 0; k < STORE_ROW_KIND_COUNT; k++) {
        const struct store_row_desc *d = &store_rows[k];
        if (d->since > 1) {
            later_tables++;
            continue;
        }
        char *derived = shipped_text[k];
        assert_int_equal(store_row_create_sql(d, 1, derived, sizeof(shipped_text[k])), 0);
        assert_int_equal(store_row_create_sql(d, store_schema_version(), now_text[k], sizeof(now_text[k])), 0);
        sqlite3_stmt *s;
        assert_int_equal(
            sqlite3_prepare_v2(old, "SELECT sql FROM sqlite_master WHERE type='table' AND name=?1", -1, &s, NULL),
            SQLITE_OK);
        sqlite3_bind_text(s, 1, d->table, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_string_equal(derived, (const char *)sqlite3_column_text(s, 0));
        sqlite3_finalize(s);
    }

    /* Migration 1 derives the very text that shipped. */
    char migration[8192];
    assert_int_equal(store_schema_migration_sql(1, migration, sizeof(migration)), 0);
    assert_string_equal(migration, shipped_v1);

    static char want[16][2048], got[16][2048];
    int nwant = schema_rows(old, want, 16);
    sqlite3_close(old);
    store_close(open_store(e)); /* a fresh database, from the descriptors */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(e->path, &db), SQLITE_OK);
    int ngot = schema_rows(db, got, 16);
    sqlite3_close(db);
    assert_int_equal(ngot, nwant + later_tables);
    assert_int_equal(nwant, STORE_ROW_KIND_COUNT - later_tables + 1); /* the v1 tables, the records' device index */
    /* Every shipped object is in the fresh database, word for word (tables
     * with later columns as SQLite rewrote them: the text derived now). */
    for (int i = 0; i < nwant; i++) {
        for (int k = 0; k < STORE_ROW_KIND_COUNT; k++) {
            size_t wl = strlen(want[i]), sl = strlen(shipped_text[k]), nl = strlen(now_text[k]);
            if (store_rows[k].since != 1 || !sl || wl < sl || strcmp(want[i] + wl - sl, shipped_text[k])) continue;
            assert_true(wl - sl + nl < sizeof(want[i]));
            memcpy(want[i] + wl - sl, now_text[k], nl + 1); /* "table name name " + its CREATE text */
        }
        bool found = false;
        for (int j = 0; j < ngot && !found; j++) found = strcmp(got[j], want[i]) == 0;
        assert_true(found);
    }
    unlink(old_path);
}

/* A database written by the shipped version 1 opens without a migration and
 * takes and returns rows. */
static int count_subscription(void *arg, const struct store_subscription *row)
{
    (void)row;
    (*(int *)arg)++;
    return 0;
}

static void test_opens_shipped_v1_database(void **state)
{
    struct store_env *e = *state;
    sqlite3 *old;
    assert_int_equal(sqlite3_open(e->path, &old), SQLITE_OK);
    assert_int_equal(sqlite3_exec(old, shipped_v1, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(old,
                                  "PRAGMA user_version=1;"
                                  "INSERT INTO users(name,realm,created_at) VALUES('carol','old.example',7)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(old);
    struct store *st = open_store(e);
    struct store_user u = {"dave", "new.example", "", "", 8};
    assert_int_equal(store_submit(st, store_op_user_upsert(&u), NULL, NULL), 0);
    store_flush_sync(st);
    struct user_rows r = {0};
    assert_int_equal(store_load_users(st, user_cb, &r), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.names[0], "carol");
    assert_string_equal(r.realms[0], "old.example");
    assert_int_equal(r.created[0], 7);
    assert_string_equal(r.names[1], "dave");
    /* Migration 2 made the subscriptions table: it loads (empty). */
    assert_int_equal(store_load_subscriptions(st, count_subscription, &r.n), 0);
    assert_int_equal(r.n, 2);
    store_close(st);
}

/* A column added by a later schema version is left out of the CREATE of
 * earlier versions and added by ALTER TABLE with its declaration (SQLite
 * requires a default for a NOT NULL column it adds). */
static void test_later_column_is_added_by_alter(void **state)
{
    (void)state;
    static const struct store_column cols[] = {
        {"id", "id", STORE_COL_TEXT, offsetof(struct store_gb_upstream, id), NULL, STORE_COL_KEY, 1},
        {"state", "state", STORE_COL_TEXT, offsetof(struct store_gb_upstream, state), "''", 0, 1},
        {"registered_at", "registered_at", STORE_COL_INT64, offsetof(struct store_gb_upstream, registered_at), "0",
         0, 2},
    };
    const struct store_row_desc d = {"t", "t", 1, sizeof(struct store_gb_upstream), cols, 3};
    char sql[512];
    assert_int_equal(store_row_create_sql(&d, 1, sql, sizeof(sql)), 0);
    assert_string_equal(sql, "CREATE TABLE t( id TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL DEFAULT '') "
                             "WITHOUT ROWID");
    assert_int_equal(store_row_create_sql(&d, 2, sql, sizeof(sql)), 0);
    assert_string_equal(sql, "CREATE TABLE t( id TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL DEFAULT '', "
                             "registered_at INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID");
    assert_int_equal(store_row_add_column_sql(&d, &cols[2], sql, sizeof(sql)), 0);
    assert_string_equal(sql, "ALTER TABLE t ADD COLUMN registered_at INTEGER NOT NULL DEFAULT 0");
    /* Too small a buffer is refused, not truncated silently. */
    assert_int_equal(store_row_create_sql(&d, 2, sql, 16), -ENAMETOOLONG);
}

/* The statements the op path prepares (once per connection) are the ones
 * the store always ran. */
static void test_derived_statements(void **state)
{
    (void)state;
    char sql[1024];
    assert_int_equal(store_row_upsert_sql(&store_rows[STORE_ROW_USER], sql, sizeof(sql)), 0);
    assert_string_equal(sql, "INSERT INTO users(name,realm,ha1_md5,ha1_sha256,created_at) VALUES(?1,?2,?3,?4,?5) "
                             "ON CONFLICT(name) DO UPDATE SET realm=excluded.realm,ha1_md5=excluded.ha1_md5,"
                             "ha1_sha256=excluded.ha1_sha256");
    assert_int_equal(store_row_upsert_sql(&store_rows[STORE_ROW_GB_RECORD], sql, sizeof(sql)), 0);
    assert_string_equal(sql, "INSERT OR REPLACE INTO gb_records(channel_id,start,\"end\",file_path,device_id,"
                             "name,type,secrecy,size) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)");
    assert_int_equal(store_row_delete_sql(&store_rows[STORE_ROW_BINDING], sql, sizeof(sql)), 0);
    assert_string_equal(sql, "DELETE FROM bindings WHERE aor=?1 AND contact=?2");
    assert_int_equal(store_row_select_sql(&store_rows[STORE_ROW_GB_UPSTREAM], "ORDER BY id", sql, sizeof(sql)), 0);
    assert_string_equal(sql, "SELECT id,state,last_error,registered_at,last_keepalive_ok FROM gb_upstreams "
                             "ORDER BY id");
}

static size_t col_size(enum store_col_type t)
{
    switch (t) {
    case STORE_COL_TEXT: return sizeof(const char *);
    case STORE_COL_INT: return sizeof(int);
    case STORE_COL_BOOL: return sizeof(bool);
    case STORE_COL_U32: return sizeof(uint32_t);
    case STORE_COL_INT64: return sizeof(int64_t);
    case STORE_COL_U64: return sizeof(uint64_t);
    }
    return 0;
}

/* Every field of every row struct has a column: laid out by offset, the
 * columns leave no gap but alignment padding and reach the struct's end. */
static void test_descriptors_cover_every_field(void **state)
{
    (void)state;
    for (int k = 0; k < STORE_ROW_KIND_COUNT; k++) {
        const struct store_row_desc *d = &store_rows[k];
        size_t end = 0;
        for (size_t covered = 0; covered < d->ncolumns; covered++) {
            const struct store_column *next = NULL; /* the column at the lowest offset >= end */
            for (size_t i = 0; i < d->ncolumns; i++)
                if (d->columns[i].offset >= end && (!next || d->columns[i].offset < next->offset))
                    next = &d->columns[i];
            assert_non_null(next);
            size_t size = col_size(next->type);
            size_t aligned = (end + size - 1) / size * size; /* these types align to their size */
            if (next->offset != aligned)
                fail_msg("%s: a field between offset %zu and column %s is not described", d->table, end, next->name);
            end = next->offset + size;
        }
        assert_true(d->row_size - end < sizeof(void *)); /* only tail padding left */
    }
}

/* Compares the field of column c in two rows; false and a message when they
 * differ. */
static bool column_equal(const struct store_row_desc *d, const struct store_column *c, const void *a,
                         const void *b)
{
    const char *fa = (const char *)a + c->offset, *fb = (const char *)b + c->offset;
    bool same;
    if (c->type == STORE_COL_TEXT) same = strcmp(*(const char *const *)fa, *(const char *const *)fb) == 0;
    else same = memcmp(fa, fb, col_size(c->type)) == 0;
    if (!same) print_error("%s.%s did not round-trip\n", d->table, c->name);
    return same;
}

struct round_trip {
    const struct store_row_desc *d;
    const void *want;
    int rows, columns_equal;
};

static int round_trip_check(struct round_trip *rt, const void *row)
{
    rt->rows++;
    for (size_t i = 0; i < rt->d->ncolumns; i++)
        rt->columns_equal += column_equal(rt->d, &rt->d->columns[i], rt->want, row);
    return 0;
}

static int rt_user_cb(void *arg, const struct store_user *r) { return round_trip_check(arg, r); }
static int rt_binding_cb(void *arg, const struct store_binding *r) { return round_trip_check(arg, r); }
static int rt_device_cb(void *arg, const struct store_gb_device *r) { return round_trip_check(arg, r); }
static int rt_channel_cb(void *arg, const struct store_gb_channel *r) { return round_trip_check(arg, r); }
static int rt_upstream_cb(void *arg, const struct store_gb_upstream *r) { return round_trip_check(arg, r); }
static int rt_record_cb(void *arg, const struct store_gb_record *r) { return round_trip_check(arg, r); }
static int rt_subscription_cb(void *arg, const struct store_subscription *r) { return round_trip_check(arg, r); }
static int rt_offline_msg_cb(void *arg, const struct store_offline_msg *r) { return round_trip_check(arg, r); }
static int rt_presence_allow_cb(void *arg, const struct store_presence_allow *r) { return round_trip_check(arg, r); }
static int rt_gb_lower_sub_cb(void *arg, const struct store_gb_lower_sub *r) { return round_trip_check(arg, r); }
static int rt_gb_sub_cb(void *arg, const struct store_gb_sub *r) { return round_trip_check(arg, r); }
static int rt_node_secret_cb(void *arg, const struct store_node_secret *r) { return round_trip_check(arg, r); }

/* Every row kind comes back from an upsert with every column as written,
 * including values at the edges of their C types and non-default booleans. */
static void test_every_row_kind_round_trips_every_column(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    const struct store_user user = {"alice", "realm.example", "0123456789abcdef0123456789abcdef",
                                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                    INT64_MAX - 1};
    const struct store_binding binding = {
        .aor = "sip:alice@example.com", .contact = "<sip:alice@10.0.0.1:5062;ob>", .expires_at = 1700000003600000,
        .q1000 = 500, .call_id = "call-1@host", .cseq = UINT32_MAX, .transport = "tcp", .remote = "10.0.0.1:5062",
        .conn_id = UINT64_MAX - 7, .path = "<sip:edge.example;lr>", .user_agent = "phone/1.0",
        .instance = "<urn:uuid:00000000-0000-0000-0000-000000000001>", .reg_id = 4000000000u,
        .flags = 0x80000001u, .received_at = 1700000000000};
    const struct store_gb_device device = {
        .id = "34020000001320000001", .password = "secret", .charset = "UTF-8", .auth_enabled = false,
        .allow = false, .online = true, .remote = "10.0.0.2:5060", .transport = "udp",
        .registered_at = 1700000000001, .last_keepalive = 1700000000002, .expires_at = 1700000003600000,
        .info_json = "{\"Manufacturer\":\"x\"}", .status_json = "{\"Online\":\"ONLINE\"}",
        .subscribe = "catalog,position"};
    const struct store_gb_channel channel = {
        .device_id = "34020000001320000001", .id = "34020000001310000001", .parent_id = "34020000002000000001",
        .name = "gate", .status = "ON", .manufacturer = "maker", .model = "m1", .civil_code = "340200",
        .address = "street 1", .extra_json = "{\"PTZType\":\"1\"}", .media = "clip.h264"};
    const struct store_gb_upstream upstream = {"34020000002000000009", "registered", "timeout", 1700000000003,
                                               1700000000004};
    const struct store_gb_record record = {
        .device_id = "34020000001320000001", .channel_id = "34020000001310000001", .name = "rec",
        .start = 1700000000000, .end = 1700000060000, .type = "alarm", .file_path = "/rec/1.ps", .secrecy = 1,
        .size = INT64_C(1) << 40};
    assert_int_equal(store_submit(st, store_op_user_upsert(&user), NULL, NULL), 0);
    assert_int_equal(store_submit(st, store_op_binding_upsert(&binding), NULL, NULL), 0);
    assert_int_equal(store_submit(st, store_op_gb_device_upsert(&device), NULL, NULL), 0);
    assert_int_equal(store_submit(st, store_op_gb_channel_upsert(&channel), NULL, NULL), 0);
    assert_int_equal(store_submit(st, store_op_gb_upstream_upsert(&upstream), NULL, NULL), 0);
    assert_int_equal(store_submit(st, store_op_gb_record_upsert(&record), NULL, NULL), 0);
    const struct store_subscription subscription = {
        .call_id = "sub-1@host", .local_tag = "0123456789abcdef", .remote_tag = "t1", .event = "reg",
        .aor = "alice", .subscriber = "sip:watcher@example.com", .target = "sip:watcher@10.0.0.3:5070",
        .routes = "<sip:p1.example;lr>,<sip:p2.example;lr>", .remote = "10.0.0.3:5070", .transport = "tcp",
        .expires_at = 1700000003600000, .local_cseq = UINT32_MAX, .remote_cseq = 4000000001u, .version = 77};
    assert_int_equal(store_submit(st, store_op_subscription_upsert(&subscription), NULL, NULL), 0);
    const struct store_offline_msg offline_msg = {
        .id = UINT64_MAX >> 1, .owner = "bob", .from_uri = "\"Alice\" <sip:alice@example.com>",
        .to_uri = "<sip:bob@example.com>", .content_type = "text/plain;charset=UTF-8", .body = "hello, bob",
        .received_at = 1700000000005, .state = "delivered", .updated_at = 1700000000006};
    assert_int_equal(store_submit(st, store_op_offline_msg_upsert(&offline_msg), NULL, NULL), 0);
    const struct store_presence_allow allow = {.user = "alice", .watchers = "bob,carol"};
    assert_int_equal(store_submit(st, store_op_presence_allow_upsert(&allow), NULL, NULL), 0);
    const struct store_gb_lower_sub lower_sub = {
        .upstream = "34020000002000000009", .kind = "catalog", .call_id = "gbsub-1@host", .local_tag = "t-ours",
        .remote_tag = "t-upper", .contact = "sip:34020000002000000009@10.0.0.9:5060", .event = "Catalog",
        .cseq_ceiling = UINT32_MAX, .expires_at = 1700000003600000};
    assert_int_equal(store_submit(st, store_op_gb_lower_sub_upsert(&lower_sub), NULL, NULL), 0);
    const struct store_gb_sub gb_sub = {.device_id = "34020000001320000001", .kind = "alarm", .call_id = "sub-9@host",
                                        .local_tag = "t-up", .remote_tag = "t-dev", .cseq = UINT32_MAX,
                                        .expires_at = 1700000003600000};
    assert_int_equal(store_submit(st, store_op_gb_sub_upsert(&gb_sub), NULL, NULL), 0);
    const struct store_node_secret secret = {.name = "edge_token_key", .value = "00ff7e"};
    assert_int_equal(store_submit(st, store_op_node_secret_upsert(&secret), NULL, NULL), 0);
    store_flush_sync(st);

    struct round_trip rt[STORE_ROW_KIND_COUNT] = {
        [STORE_ROW_USER] = {&store_rows[STORE_ROW_USER], &user, 0, 0},
        [STORE_ROW_BINDING] = {&store_rows[STORE_ROW_BINDING], &binding, 0, 0},
        [STORE_ROW_GB_DEVICE] = {&store_rows[STORE_ROW_GB_DEVICE], &device, 0, 0},
        [STORE_ROW_GB_CHANNEL] = {&store_rows[STORE_ROW_GB_CHANNEL], &channel, 0, 0},
        [STORE_ROW_GB_UPSTREAM] = {&store_rows[STORE_ROW_GB_UPSTREAM], &upstream, 0, 0},
        [STORE_ROW_GB_RECORD] = {&store_rows[STORE_ROW_GB_RECORD], &record, 0, 0},
        [STORE_ROW_SUBSCRIPTION] = {&store_rows[STORE_ROW_SUBSCRIPTION], &subscription, 0, 0},
        [STORE_ROW_OFFLINE_MSG] = {&store_rows[STORE_ROW_OFFLINE_MSG], &offline_msg, 0, 0},
        [STORE_ROW_PRESENCE_ALLOW] = {&store_rows[STORE_ROW_PRESENCE_ALLOW], &allow, 0, 0},
        [STORE_ROW_GB_LOWER_SUB] = {&store_rows[STORE_ROW_GB_LOWER_SUB], &lower_sub, 0, 0},
        [STORE_ROW_GB_SUB] = {&store_rows[STORE_ROW_GB_SUB], &gb_sub, 0, 0},
        [STORE_ROW_NODE_SECRET] = {&store_rows[STORE_ROW_NODE_SECRET], &secret, 0, 0},
    };
    assert_int_equal(store_load_node_secrets(st, rt_node_secret_cb, &rt[STORE_ROW_NODE_SECRET]), 0);
    assert_int_equal(store_load_gb_subs(st, rt_gb_sub_cb, &rt[STORE_ROW_GB_SUB]), 0);
    assert_int_equal(store_load_gb_lower_subs(st, rt_gb_lower_sub_cb, &rt[STORE_ROW_GB_LOWER_SUB]), 0);
    assert_int_equal(store_load_offline_msgs(st, rt_offline_msg_cb, &rt[STORE_ROW_OFFLINE_MSG]), 0);
    assert_int_equal(store_load_presence_allow(st, rt_presence_allow_cb, &rt[STORE_ROW_PRESENCE_ALLOW]), 0);
    assert_int_equal(store_load_subscriptions(st, rt_subscription_cb, &rt[STORE_ROW_SUBSCRIPTION]), 0);
    assert_int_equal(store_load_users(st, rt_user_cb, &rt[STORE_ROW_USER]), 0);
    assert_int_equal(store_load_bindings(st, rt_binding_cb, &rt[STORE_ROW_BINDING]), 0);
    assert_int_equal(store_load_gb_devices(st, rt_device_cb, &rt[STORE_ROW_GB_DEVICE]), 0);
    assert_int_equal(store_load_gb_channels(st, NULL, rt_channel_cb, &rt[STORE_ROW_GB_CHANNEL]), 0);
    assert_int_equal(store_load_gb_upstreams(st, rt_upstream_cb, &rt[STORE_ROW_GB_UPSTREAM]), 0);
    assert_int_equal(store_load_gb_records(st, record.channel_id, 0, INT64_MAX, rt_record_cb,
                                           &rt[STORE_ROW_GB_RECORD]),
                     0);
    for (int k = 0; k < STORE_ROW_KIND_COUNT; k++) {
        assert_int_equal(rt[k].rows, 1);
        assert_int_equal(rt[k].columns_equal, (int)rt[k].d->ncolumns);
    }
    store_close(st);
}

/* Offline messages: loaded in id order whatever order they were written
 * in; a state change is an upsert of the same id; the sweep deletes only
 * rows that are no longer queued and whose last change is old enough; a
 * body at the JSON size limit is kept whole, one byte more is refused. */
struct offline_rows {
    int n;
    uint64_t ids[8];
    char states[8][16];
    size_t body_len[8];
};

static int offline_cb(void *arg, const struct store_offline_msg *row)
{
    struct offline_rows *r = arg;
    if (r->n >= 8) return 1;
    r->ids[r->n] = row->id;
    snprintf(r->states[r->n], sizeof(r->states[0]), "%s", row->state);
    r->body_len[r->n] = strlen(row->body);
    r->n++;
    return 0;
}

static void test_offline_messages(void **state)
{
    struct store_env *e = *state;
    struct store *st = open_store(e);
    char *big = malloc(STORE_MAX_JSON + 2);
    assert_non_null(big);
    memset(big, 'x', STORE_MAX_JSON + 1);
    big[STORE_MAX_JSON + 1] = '\0';
    struct store_offline_msg m = {.owner = "bob", .from_uri = "<sip:alice@example.com>", .to_uri = "<sip:bob@x>",
                                  .content_type = "text/plain", .body = "one", .received_at = 100,
                                  .state = "queued", .updated_at = 100};
    const uint64_t order[] = {3, 1, 2, 4};
    for (size_t i = 0; i < 4; i++) {
        m.id = order[i];
        assert_int_equal(store_submit(st, store_op_offline_msg_upsert(&m), NULL, NULL), 0);
    }
    m.body = big; /* one byte over */
    assert_null(store_op_offline_msg_upsert(&m));
    big[STORE_MAX_JSON] = '\0';
    m.id = 5;
    assert_int_equal(store_submit(st, store_op_offline_msg_upsert(&m), NULL, NULL), 0);
    m.owner = ""; /* the owner is required */
    assert_null(store_op_offline_msg_upsert(&m));
    /* 1 delivered at 200, 2 expired at 300, 3 stays queued (old). */
    m = (struct store_offline_msg){.id = 1, .owner = "bob", .state = "delivered", .received_at = 100, .updated_at = 200};
    assert_int_equal(store_submit(st, store_op_offline_msg_upsert(&m), NULL, NULL), 0);
    m.id = 2, m.state = "expired", m.updated_at = 300;
    assert_int_equal(store_submit(st, store_op_offline_msg_upsert(&m), NULL, NULL), 0);
    store_flush_sync(st);
    struct offline_rows r = {0};
    assert_int_equal(store_load_offline_msgs(st, offline_cb, &r), 0);
    assert_int_equal(r.n, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(r.ids[i], (uint64_t)i + 1);
    assert_string_equal(r.states[0], "delivered");
    assert_int_equal(r.body_len[0], 0);
    assert_string_equal(r.states[2], "queued");
    assert_int_equal(r.body_len[4], STORE_MAX_JSON);
    /* The sweep at 250: the delivered one goes; the expired (changed at
     * 300) and the queued ones stay. */
    assert_int_equal(store_submit(st, store_op_offline_msgs_delete_done(250), NULL, NULL), 0);
    store_close(st);
    st = open_store(e); /* and it all survives a reopen */
    memset(&r, 0, sizeof(r));
    assert_int_equal(store_load_offline_msgs(st, offline_cb, &r), 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.ids[0], 2);
    assert_string_equal(r.states[0], "expired");
    assert_int_equal(store_submit(st, store_op_offline_msgs_delete_done(300), NULL, NULL), 0);
    store_flush_sync(st);
    memset(&r, 0, sizeof(r));
    assert_int_equal(store_load_offline_msgs(st, offline_cb, &r), 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.ids[0], 3);
    store_close(st);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_schema_and_reopens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callbacks_in_submission_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binding_round_trip_and_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gb_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_constructors_refuse_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_op_is_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lone_ops_commit_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_checkpoints_inline_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_window_groups_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chained_submits_flush_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_committed_survives_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_derived_schema_equals_shipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opens_shipped_v1_database, setup, teardown),
        cmocka_unit_test(test_descriptors_cover_every_field),
        cmocka_unit_test(test_later_column_is_added_by_alter),
        cmocka_unit_test(test_derived_statements),
        cmocka_unit_test_setup_teardown(test_every_row_kind_round_trips_every_column, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
