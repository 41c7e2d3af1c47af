/* test_reload.c — what a reload finds between the running config and the
 * file read again (config_schema_diff in base/config.c, reload_plan_make in
 * app/reload.c): which keys changed, which of them a running daemon takes
 * over ([log] level, format and file, [events] webhook, [tls], [upstream:ID]) and which need
 * a restart, and that values written differently but equal are no change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/config.h"
#include "app/reload.h"

static struct config running, next;
static struct reload_plan plan;

/* text as a config file loaded over the defaults into *cfg. */
static void load(struct config *cfg, const char *text)
{
    char path[64], err[2048];
    snprintf(path, sizeof(path), "/tmp/test_reload_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    config_init(cfg);
    int rc = config_load(cfg, path, err, sizeof(err));
    unlink(path);
    if (rc != 0) fail_msg("%s", err);
}

static void plan_between(const char *before, const char *after)
{
    load(&running, before);
    load(&next, after);
    reload_plan_make(&running, &next, &plan);
}

static bool listed(const struct reload_names *n, const char *name)
{
    for (int i = 0; i < n->n; i++)
        if (!strcmp(n->name[i], name)) return true;
    return false;
}

static void test_same_file_changes_nothing(void **state)
{
    (void)state;
    const char *text = "[sip]\nlisten = udp:127.0.0.1:5070, tcp:127.0.0.1:5070\n"
                       "[proxy]\ntrusted = 10.0.0.0/8, 192.0.2.1\n"
                       "[upstream:34020000002000000002]\nhost = 198.51.100.7\n";
    plan_between(text, text);
    assert_int_equal(plan.applied.n, 0);
    assert_int_equal(plan.restart.n, 0);
    assert_false(plan.log_level || plan.webhook || plan.tls || plan.upstreams);
}

/* A key given twice keeps the last value: the bytes the longer first value
 * left behind the string's end are no change. */
static void test_string_compared_up_to_its_end(void **state)
{
    (void)state;
    plan_between("[sip]\ndomain = a-much-longer-domain.example\ndomain = example.com\n",
                 "[sip]\ndomain = example.com\n");
    assert_int_equal(plan.restart.n, 0);
    assert_int_equal(plan.applied.n, 0);
}

static void test_log_level_is_live(void **state)
{
    (void)state;
    plan_between("[log]\nlevel = info\n", "[log]\nlevel = debug\n");
    assert_true(plan.log_level);
    assert_int_equal(plan.applied.n, 1);
    assert_string_equal(plan.applied.name[0], "[log] level");
    assert_int_equal(plan.restart.n, 0);
}

/* [log] format and file too: the daemon switches them on a reload. */
static void test_log_format_and_file_are_live(void **state)
{
    (void)state;
    plan_between("[log]\nlevel = info\n", "[log]\nlevel = info\nformat = json\nfile = /var/log/cascade.log\n");
    assert_true(plan.log_format);
    assert_true(plan.log_file);
    assert_false(plan.log_level);
    assert_int_equal(plan.applied.n, 2);
    assert_true(listed(&plan.applied, "[log] format"));
    assert_true(listed(&plan.applied, "[log] file"));
    assert_int_equal(plan.restart.n, 0);
    plan_between("[log]\nfile = /var/log/cascade.log\n", "[log]\n");
    assert_true(plan.log_file);
    assert_false(plan.log_format || plan.log_level);
}

static void test_restart_keys_are_named(void **state)
{
    (void)state;
    plan_between("[sip]\nlisten = udp:127.0.0.1:5060\n[registrar]\nmax_expires = 3600\n",
                 "[sip]\nlisten = udp:127.0.0.1:5060, tcp:127.0.0.1:5060\n[registrar]\nmax_expires = 7200\n"
                 "[gb]\nmedia_ports = 30000-30100\n");
    assert_int_equal(plan.applied.n, 0);
    assert_int_equal(plan.restart.n, 3);
    assert_string_equal(plan.restart.name[0], "[sip] listen");
    assert_string_equal(plan.restart.name[1], "[registrar] max_expires");
    assert_string_equal(plan.restart.name[2], "[gb] media_ports");
    assert_false(plan.log_level || plan.webhook || plan.tls || plan.upstreams);
}

/* [store] backend is not live: a change is a restart, named with the
 * effective [redis] switches it moves; what the file wrote or left to the
 * backend compares by its effect (left out under redis = written yes). */
static void test_store_backend_needs_restart(void **state)
{
    (void)state;
    const char *seeds = "[redis]\nnodes = 127.0.0.1:7000\n[subscriptions]\nenabled = no\n";
    char redis[256];
    snprintf(redis, sizeof(redis), "[store]\nbackend = redis\n%s", seeds);
    plan_between(seeds, redis);
    assert_false(reload_key_is_live("store", "backend"));
    assert_int_equal(plan.applied.n, 0);
    assert_int_equal(plan.restart.n, 5);
    assert_string_equal(plan.restart.name[0], "[store] backend");
    assert_true(listed(&plan.restart, "[redis] mirror_bindings"));
    assert_true(listed(&plan.restart, "[redis] cluster_route"));
    assert_true(listed(&plan.restart, "[redis] mirror_users"));
    assert_true(listed(&plan.restart, "[redis] events_stream"));
    plan_between(redis, redis);
    assert_int_equal(plan.restart.n, 0);
    plan_between(redis, "[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:7000\nmirror_bindings = yes\n"
                        "cluster_route = yes\n[subscriptions]\nenabled = no\n");
    assert_int_equal(plan.restart.n, 0);
}

/* Lists compare element by element: the same blocks in another order are a
 * change (the first match decides), the same listeners written with other
 * spacing are not. */
static void test_lists(void **state)
{
    (void)state;
    plan_between("[sip]\nlisten = udp:127.0.0.1:5060,tcp:127.0.0.1:5060\n[proxy]\ntrusted = 10.0.0.0/8, 192.0.2.1\n",
                 "[sip]\nlisten = udp:127.0.0.1:5060 ,  tcp:127.0.0.1:5060\n[proxy]\ntrusted = 192.0.2.1, 10.0.0.0/8\n");
    assert_int_equal(plan.restart.n, 1);
    assert_string_equal(plan.restart.name[0], "[proxy] trusted");
    plan_between("[proxy]\ntrusted = 10.0.0.0/8\n", "[proxy]\ntrusted = 10.0.0.0/16\n");
    assert_int_equal(plan.restart.n, 1);
    plan_between("[gb]\nmedia_ports = 30000-30999\n", "[gb]\nmedia_ports = 30000-30999\n");
    assert_int_equal(plan.restart.n, 0);
}

static void test_webhook_and_tls_are_live(void **state)
{
    (void)state;
    plan_between("[events]\nwebhook = http://127.0.0.1:9000/a\n",
                 "[events]\nwebhook = http://127.0.0.1:9000/b\nring_size = 100\n[tls]\nca = /etc/ssl/ca.pem\n"
                 "verify_peer = yes\n");
    assert_true(plan.webhook);
    assert_true(plan.tls);
    assert_false(plan.log_level || plan.upstreams);
    assert_int_equal(plan.applied.n, 3);
    assert_true(listed(&plan.applied, "[events] webhook"));
    assert_true(listed(&plan.applied, "[tls] ca"));
    assert_true(listed(&plan.applied, "[tls] verify_peer"));
    assert_int_equal(plan.restart.n, 1);
    assert_string_equal(plan.restart.name[0], "[events] ring_size");
}

/* Upstreams are matched by id: gone, changed (each key named), new. */
static void test_upstreams_added_removed_changed(void **state)
{
    (void)state;
    plan_between("[upstream:34020000002000000002]\nhost = 198.51.100.7\n"
                 "[upstream:34020000002000000003]\nhost = 198.51.100.8\n"
                 "[upstream:34020000002000000005]\nhost = 198.51.100.9\n",
                 "[upstream:34020000002000000004]\nhost = 198.51.100.10\n"
                 "[upstream:34020000002000000005]\nhost = 198.51.100.9\n"
                 "[upstream:34020000002000000002]\nhost = 198.51.100.7\nport = 5070\npassword = x\n");
    assert_true(plan.upstreams);
    assert_int_equal(plan.restart.n, 0);
    assert_int_equal(plan.applied.n, 4);
    assert_string_equal(plan.applied.name[0], "[upstream:34020000002000000002] port");
    assert_string_equal(plan.applied.name[1], "[upstream:34020000002000000002] password");
    assert_string_equal(plan.applied.name[2], "[upstream:34020000002000000003] removed");
    assert_string_equal(plan.applied.name[3], "[upstream:34020000002000000004] added");
}

static void test_live_table(void **state)
{
    (void)state;
    assert_true(reload_key_is_live("log", "level"));
    assert_true(reload_key_is_live("log", "format"));
    assert_true(reload_key_is_live("log", "file"));
    assert_true(reload_key_is_live("events", "webhook"));
    assert_false(reload_key_is_live("events", "ring_size"));
    assert_true(reload_key_is_live("tls", "cert"));
    assert_true(reload_key_is_live("upstream", "host"));
    assert_true(reload_key_is_live("upstream", NULL));
    assert_false(reload_key_is_live("sip", "listen"));
    assert_false(reload_key_is_live("api", "token"));
    assert_false(reload_key_is_live("gb", NULL));
}

/* More differences than the plan keeps by name: the rest are counted. */
static void test_many_changes_counted(void **state)
{
    (void)state;
    load(&running, "");
    next = running;
    for (int i = 0; i < CONFIG_MAX_UPSTREAMS; i++) {
        struct config_upstream *a = &running.upstreams[i], *b = &next.upstreams[i];
        memset(a, 0, sizeof(*a));
        snprintf(a->id, sizeof(a->id), "340200000020000001%02d", i);
        snprintf(a->host, sizeof(a->host), "192.0.2.%d", i + 1);
        a->port = 5060;
        a->expires = 3600;
        a->keepalive_interval = 60;
        *b = *a;
        /* five keys of every upstream differ */
        snprintf(b->host, sizeof(b->host), "198.51.100.%d", i + 1);
        b->port = 5070;
        snprintf(b->password, sizeof(b->password), "pw%d", i);
        b->expires = 600;
        b->keepalive_interval = 30;
    }
    running.upstream_count = next.upstream_count = CONFIG_MAX_UPSTREAMS;
    next.sip.t1_ms = running.sip.t1_ms + 1;
    reload_plan_make(&running, &next, &plan);
    assert_true(5 * CONFIG_MAX_UPSTREAMS > RELOAD_MAX_NAMES);
    assert_int_equal(plan.applied.n, RELOAD_MAX_NAMES);
    assert_int_equal(plan.applied.more, 5 * CONFIG_MAX_UPSTREAMS - RELOAD_MAX_NAMES);
    assert_int_equal(plan.restart.n, 1);
    assert_int_equal(plan.restart.more, 0);
    assert_string_equal(plan.restart.name[0], "[sip] t1_ms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_file_changes_nothing),
        cmocka_unit_test(test_string_compared_up_to_its_end),
        cmocka_unit_test(test_log_level_is_live),
        cmocka_unit_test(test_log_format_and_file_are_live),
        cmocka_unit_test(test_restart_keys_are_named),
        cmocka_unit_test(test_store_backend_needs_restart),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_webhook_and_tls_are_live),
        cmocka_unit_test(test_upstreams_added_removed_changed),
        cmocka_unit_test(test_live_table),
        cmocka_unit_test(test_many_changes_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
