/* test_config.c — configuration as data: the table-driven loader
 * (base/config.c) over the daemon's sections (app/config.c). Each test is one
 * rule an operator relies on: defaults as documented, typed values in range,
 * unknown sections and keys named with file and line, [upstream:<id>]
 * instances, rules between keys; and the [proxy] trusted address blocks. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/config.h"
#include "base/overload.h"

static struct config cfg;
static char err[4096];
static char path[64];

/* Writes text to a temporary file (its name in path). */
static void write_ini(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* config_init, then text loaded as a file over it: config_load's result. */
static int load(const char *text)
{
    write_ini(text);
    config_init(&cfg);
    int rc = config_load(&cfg, path, err, sizeof(err));
    unlink(path);
    return rc;
}

/* err holds this line ("FILE:LINE: msg" with this run's file). */
static bool has_error(int line, const char *msg)
{
    char want[600];
    if (line) snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
    else snprintf(want, sizeof(want), "%s: %s", path, msg);
    for (const char *p = err; (p = strstr(p, want)); p++)
        if ((p == err || p[-1] == '\n') && (p[strlen(want)] == '\0' || p[strlen(want)] == '\n')) return true;
    return false;
}

static int error_lines(void)
{
    int n = err[0] ? 1 : 0;
    for (const char *p = err; (p = strchr(p, '\n')); p++) n++;
    return n;
}

/* ---- defaults */

/* The values config_init set before the key tables, field by field: the
 * tables must give the same (the daemon serves with no file). */
static void defaults_before_tables(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->sip.listen_count = 2;
    /* Field by field: a compound literal's padding need not be zero (clang
     * copies it as it is), and the comparison below is byte by byte. */
    c->sip.listen[0].transport = CONFIG_TRANSPORT_UDP;
    snprintf(c->sip.listen[0].host, sizeof(c->sip.listen[0].host), "127.0.0.1");
    c->sip.listen[0].port = 5060;
    c->sip.listen[1].transport = CONFIG_TRANSPORT_TCP;
    snprintf(c->sip.listen[1].host, sizeof(c->sip.listen[1].host), "127.0.0.1");
    c->sip.listen[1].port = 5060;
    strcpy(c->sip.domain, "127.0.0.1");
    c->sip.t1_ms = 500;
    c->sip.t2_ms = 4000;
    c->sip.t4_ms = 5000;
    c->sip.max_message_bytes = 65536;
    c->sip.tcp_idle_timeout_s = 3600;
    c->sip.tcp_max_connections = 10000;
    c->sip.tcp_max_per_ip = 256;
    c->sip.tcp_message_timeout_s = 10;
    c->sip.tcp_first_message_timeout_s = 30;
    strcpy(c->sip.user_agent, "cascade");
    c->sip.max_server_transactions = 100000;
    c->sip.ws_ping_interval_s = 30;
    c->tls.verify_server = true;
    c->tls.min_version = TLS_MIN_1_2;
    c->tls.handshake_timeout_ms = 10000;
    c->registrar.min_expires = 60;
    c->registrar.max_expires = 7200;
    c->registrar.default_expires = 3600;
    c->registrar.nat_ping_interval_s = 30;
    c->registrar.nat_ping_max_lost = 3;
    c->registrar.max_contacts = 10;
    c->registrar.write_behind_ms = 1000;
    c->auth.require_auth = true;
    c->auth.match_user = true;
    strcpy(c->auth.algorithm, "MD5");
    c->auth.nonce_ttl_s = 300;
    c->auth.nonce_ttl_noqop_s = 30;
    c->auth.nonce_max_uses = 100;
    c->auth.max_failures = 10;
    c->auth.max_failures_user = 50;
    c->auth.failure_window_s = 60;
    c->auth.lockout_s = 60;
    strcpy(c->proxy.mode, "proxy");
    c->proxy.authenticate = true;
    c->proxy.invite_timeout_s = 180;
    c->proxy.pike_limit = 30;
    c->proxy.pike_window_s = 2;
    strcpy(c->store.path, "./cascade.db");
    strcpy(c->redis.key_prefix, "cascade:");
    c->redis.timeout_ms = 2000;
    c->redis.max_pending = 10000;
    c->redis.heartbeat_ms = 1000;
    c->redis.lookup_cache_ms = 10000;
    c->redis.lookup_max_pending = 1000;
    c->redis.gb_keepalive_write_s = 60;
    c->redis.durable_replicas = 1;
    c->redis.durable_timeout_ms = 5000;
    c->redis.events_maxlen = 100000;
    c->redis.events_poll_ms = 50;
    c->redis.events_max_pending = 10000;
    c->redis.events_claim_idle_ms = 15000;
    c->redis.events_webhook_batch = 32;
    c->redis.api_forward_timeout_ms = 15000;
    c->redis.api_forward_max_pending = 64;
    c->redis.users_max = 100000;
    c->redis.presence_max = 10000;
    c->redis.gb_admin_max = 1000000;
    c->redis.presence_allow_max = 100000;
    strcpy(c->api.listen, "127.0.0.1:8080");
    c->events.ring_size = 4096;
    strcpy(c->log.level, "info");
    strcpy(c->log.format, "text");
    strcpy(c->gb.id, "34020000002000000001");
    strcpy(c->gb.domain, "3402000000");
    strcpy(c->gb.password, "12345678");
    c->gb.keepalive_interval = 60;
    c->gb.keepalive_misses = 3;
    strcpy(c->gb.charset, "GB2312");
    strcpy(c->gb.media_ip, "127.0.0.1");
    c->gb.media_port_min = 30000;
    c->gb.media_port_max = 30999;
    c->gb.catalog_on_register = true;
    c->gb.info_on_register = true;
    c->gb.catalog_concurrency = 32;
    c->gb.catalog_rate = 1000;
    c->gb.subscribe_expires = 3600;
    c->gb.position_interval = 5;
    overload_config_default(&c->overload);
    c->media.enabled = MEDIA_ENABLED_AUTO;
    strcpy(c->media.listen, "127.0.0.1");
    c->media.port = 20000;
    c->media.ice_tcp = true;
    c->media.consent_timeout_s = 30;
    c->media.connect_timeout_s = 15;
    c->media.max_peers = 5000;
    c->media.max_rooms = 1000;
    c->media.max_participants_per_room = 1000;
    c->media.pli_interval_ms = 1000;
    c->media.remb_bps = 2500000;
    c->media.idle_stop_s = 10;
    c->media.flv_max_lag_ms = 5000;
    c->subs.enabled = true;
    c->subs.min_expires = 60;
    c->subs.max_expires = 7200;
    c->subs.default_expires = 3761;
    c->subs.max_per_subscriber = 20;
    c->subs.max_total = 10000;
    c->subs.reg_any_user = false;
    c->messages.offline = true;
    c->messages.max_per_user = 100;
    c->messages.max_bytes_per_user = 262144;
    c->messages.max_body = 8192;
    c->messages.max_age = 604800;
    c->subs.dialog_any_user = false;
    c->subs.dialog_max_per_user = 16;
    c->subs.presence_policy = SUBS_PRESENCE_DOMAIN;
    c->subs.presence_max_publications_per_user = 8;
    c->subs.presence_max_publications = 20000;
    c->subs.presence_publish_any_user = false;
}

static void test_defaults_are_the_documented_ones(void **state)
{
    (void)state;
    static struct config want;
    defaults_before_tables(&want);
    config_init(&cfg);
    assert_memory_equal(&cfg, &want, sizeof(cfg));
}

/* The [overload] table and overload_config_default() (used without a config) agree. */
static void test_overload_defaults_agree(void **state)
{
    (void)state;
    struct overload_config want;
    overload_config_default(&want);
    config_init(&cfg);
    assert_memory_equal(&cfg.overload, &want, sizeof(want));
}

/* Every key's default is a value its own type takes, and has a help line. */
static void test_every_default_parses(void **state)
{
    (void)state;
    static char scratch[sizeof(struct config)];
    for (size_t i = 0; i < config_schema.n; i++) {
        const struct config_section *s = config_schema.bindings[i].section;
        assert_non_null(s->help);
        for (size_t j = 0; j < s->nkeys; j++) {
            const struct config_key *k = &s->keys[j];
            assert_true(k->help && k->help[0]);
            assert_int_equal(config_key_parse(k, scratch, k->def), 0);
        }
    }
}

/* The committed example file is the defaults: loading it changes nothing. */
static void test_example_file_is_the_defaults(void **state)
{
    (void)state;
    static struct config want;
    config_init(&want);
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, "../../cascade.ini.example", err, sizeof(err)), 0);
    /* It sets every key but the ones another key derives (commented out there). */
    assert_true(config_given_has(&config_schema, &cfg.given, "store", "backend"));
    assert_true(config_given_has(&config_schema, &cfg.given, "redis", "nodes"));
    assert_false(config_given_has(&config_schema, &cfg.given, "redis", "mirror_bindings"));
    memset(&cfg.given, 0, sizeof(cfg.given));
    assert_memory_equal(&cfg, &want, sizeof(cfg));
}

/* ---- [media] */

/* enabled takes yes, no and auto (the default: serve rooms unless the port
 * is taken); anything else names the choices. */
static void test_media_enabled(void **state)
{
    (void)state;
    assert_int_equal(load("[media]\nenabled = no\n"), 0);
    assert_int_equal(cfg.media.enabled, MEDIA_ENABLED_NO);
    assert_int_equal(load("[media]\nenabled = YES\n"), 0);
    assert_int_equal(cfg.media.enabled, MEDIA_ENABLED_YES);
    assert_int_equal(load("[media]\nenabled = auto\n"), 0);
    assert_int_equal(cfg.media.enabled, MEDIA_ENABLED_AUTO);
    assert_int_equal(load("[media]\nenabled = maybe\n"), -1);
    assert_true(has_error(2, "[media] enabled: bad value 'maybe' (no|yes|auto)"));
}

/* Every key lands in its field; port 0 (any free port) is allowed. */
static void test_media_values(void **state)
{
    (void)state;
    assert_int_equal(load("[media]\nlisten = ::\nport = 0\nannounce_ip = 198.51.100.7\nice_tcp = no\n"
                          "consent_timeout_s = 3\nconnect_timeout_s = 600\nmax_peers = 20\nmax_rooms = 2\n"
                          "max_participants_per_room = 5\npli_interval_ms = 500\nremb_bps = 800000\n"),
                     0);
    assert_string_equal(cfg.media.listen, "::");
    assert_int_equal(cfg.media.port, 0);
    assert_string_equal(cfg.media.announce_ip, "198.51.100.7");
    assert_false(cfg.media.ice_tcp);
    assert_int_equal(cfg.media.consent_timeout_s, 3);
    assert_int_equal(cfg.media.connect_timeout_s, 600);
    assert_int_equal(cfg.media.max_peers, 20);
    assert_int_equal(cfg.media.max_rooms, 2);
    assert_int_equal(cfg.media.max_participants_per_room, 5);
    assert_int_equal(cfg.media.pli_interval_ms, 500);
    assert_int_equal(cfg.media.remb_bps, 800000);
    assert_int_equal(load("[media]\nport = 65536\n"), -1);
    assert_true(has_error(2, "[media] port: bad value '65536' (integer 0..65535)"));
    assert_int_equal(load("[media]\nconsent_timeout_s = 0\n"), -1);
    assert_true(has_error(2, "[media] consent_timeout_s: bad value '0' (integer 1..3600)"));
}

/* Addresses are IP addresses (a name could resolve to several, and the
 * candidates must say one); a room cap above the peer cap could never fill. */
static void test_media_rules(void **state)
{
    (void)state;
    assert_int_equal(load("[media]\nlisten = localhost\n"), -1);
    assert_true(has_error(0, "[media] listen: 'localhost' is not an IP address (127.0.0.1, 0.0.0.0, ::1, ::)"));
    assert_int_equal(load("[media]\nannounce_ip = media.example.com\n"), -1);
    assert_true(has_error(0, "[media] announce_ip: 'media.example.com' is not an IP address"));
    assert_int_equal(load("[media]\nmax_peers = 10\nmax_participants_per_room = 11\n"), -1);
    assert_true(has_error(0, "[media] max_participants_per_room > max_peers (a room could never fill)"));
    assert_int_equal(load("[media]\nmax_participants_per_room = 10\nmax_peers = 10\n"), 0);
}

/* [proxy] edge_registrar: a sip: URI of a host, udp/tcp/tls, not with
 * mode = redirect. */
static void test_edge_registrar_rules(void **state)
{
    (void)state;
    assert_int_equal(load("[proxy]\nedge_registrar = sip:10.0.0.2:5070;transport=tcp\n"), 0);
    assert_string_equal(cfg.proxy.edge_registrar, "sip:10.0.0.2:5070;transport=tcp");
    assert_int_equal(load("[proxy]\nedge_registrar = 10.0.0.2:5070\n"), -1);
    assert_true(has_error(0, "[proxy] edge_registrar: '10.0.0.2:5070' is not a sip: URI of a host "
                             "(sip:10.0.0.2:5060;transport=tcp)"));
    assert_int_equal(load("[proxy]\nedge_registrar = sip:alice@10.0.0.2\n"), -1);
    assert_int_equal(load("[proxy]\nedge_registrar = sip:10.0.0.2;transport=ws\n"), -1);
    assert_true(has_error(0, "[proxy] edge_registrar: transport must be udp, tcp or tls"));
    assert_int_equal(load("[proxy]\nmode = redirect\nedge_registrar = sip:10.0.0.2\n"), -1);
    assert_true(has_error(0, "[proxy] edge_registrar needs mode = proxy (an edge forwards)"));
}

/* [proxy] edge_secret (any text, "" by default: the store's key) and
 * trusted_edges (addresses and networks, none by default). */
static void test_edge_secret_and_trusted_edges(void **state)
{
    (void)state;
    assert_int_equal(load(""), 0);
    assert_string_equal(cfg.proxy.edge_secret, "");
    assert_int_equal(cfg.proxy.trusted_edges_count, 0);
    assert_int_equal(load("[proxy]\nedge_secret = s3cret shared by the edges\n"
                          "trusted_edges = 192.0.2.7, 10.1.0.0/16, 2001:db8::/32\n"), 0);
    assert_string_equal(cfg.proxy.edge_secret, "s3cret shared by the edges");
    assert_int_equal(cfg.proxy.trusted_edges_count, 3);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "10.1.2.3", &a.sin_addr);
    assert_true(config_cidr_match(cfg.proxy.trusted_edges, cfg.proxy.trusted_edges_count, (struct sockaddr *)&a));
    inet_pton(AF_INET, "10.2.2.3", &a.sin_addr);
    assert_false(config_cidr_match(cfg.proxy.trusted_edges, cfg.proxy.trusted_edges_count, (struct sockaddr *)&a));
    assert_int_equal(load("[proxy]\ntrusted_edges = not-an-address\n"), -1);
}

/* ---- typed values */

static void test_bool_spellings(void **state)
{
    (void)state;
    assert_int_equal(load("[registrar]\nkeep_on_transport_loss = yes\n"), 0);
    assert_true(cfg.registrar.keep_on_transport_loss);
    assert_int_equal(load("[registrar]\nkeep_on_transport_loss = On\n"), 0);
    assert_true(cfg.registrar.keep_on_transport_loss);
    assert_int_equal(load("[registrar]\nkeep_on_transport_loss = 1\n"), 0);
    assert_true(cfg.registrar.keep_on_transport_loss);
    assert_int_equal(load("[proxy]\nauthenticate = FALSE\n"), 0);
    assert_false(cfg.proxy.authenticate);
    assert_int_equal(load("[proxy]\nauthenticate = off\n"), 0);
    assert_false(cfg.proxy.authenticate);
    assert_int_equal(load("[proxy]\nauthenticate = maybe\n"), -1);
    assert_true(has_error(2, "[proxy] authenticate: bad value 'maybe' (yes|no)"));
}

/* A range's ends are in it; one past either end, or trailing junk, is not. */
static void test_integer_range_edges(void **state)
{
    (void)state;
    assert_int_equal(load("[sip]\nt1_ms = 1\n"), 0);
    assert_int_equal(cfg.sip.t1_ms, 1);
    assert_int_equal(load("[sip]\nt1_ms = 60000\n"), 0);
    assert_int_equal(cfg.sip.t1_ms, 60000);
    assert_int_equal(load("[sip]\nt1_ms = 0\n"), -1);
    assert_true(has_error(2, "[sip] t1_ms: bad value '0' (integer 1..60000)"));
    assert_int_equal(load("[sip]\nt1_ms = 60001\n"), -1);
    assert_int_equal(load("[sip]\nt1_ms = 5s\n"), -1);
    assert_int_equal(load("[sip]\nt1_ms =\n"), -1);
    assert_int_equal(load("[registrar]\nmin_expires = 0\n"), 0);  /* 0 allowed here */
    assert_int_equal(cfg.registrar.min_expires, 0);
}

/* A 16-bit field takes its whole range ([upstream] port 1..65535). */
static void test_small_unsigned_field(void **state)
{
    (void)state;
    assert_int_equal(load("[upstream:34020000002000000002]\nport = 65535\n"), 0);
    assert_int_equal(cfg.upstreams[0].port, 65535);
    assert_int_equal(load("[upstream:34020000002000000002]\nport = 65536\n"), -1);
    assert_true(has_error(2, "[upstream:34020000002000000002] port: bad value '65536' (integer 1..65535)"));
}

/* Choices are matched without case and kept as written. */
static void test_choice_kept_as_written(void **state)
{
    (void)state;
    assert_int_equal(load("[auth]\nalgorithm = sha-256\n[proxy]\nmode = REDIRECT\n[log]\nlevel = Debug\n"), 0);
    assert_string_equal(cfg.auth.algorithm, "sha-256");
    assert_string_equal(cfg.proxy.mode, "REDIRECT");
    assert_string_equal(cfg.log.level, "Debug");
    assert_int_equal(load("[auth]\nalgorithm = SHA-512\n"), -1);
    assert_true(has_error(2, "[auth] algorithm: bad value 'SHA-512' (MD5|SHA-256|both)"));
    assert_int_equal(load("[log]\nlevel = verbose\n"), -1);
    assert_true(has_error(2, "[log] level: bad value 'verbose' (error|warn|info|debug)"));
    assert_int_equal(load("[log]\nformat = JSON\nfile = /var/log/cascade/cascade.log\n"), 0);
    assert_string_equal(cfg.log.format, "JSON");
    assert_string_equal(cfg.log.file, "/var/log/cascade/cascade.log");
    assert_int_equal(load("[log]\nformat = xml\n"), -1);
    assert_true(has_error(2, "[log] format: bad value 'xml' (text|json)"));
}

/* An enum stores the index of its value: [upstream] transport. */
static void test_enum_value(void **state)
{
    (void)state;
    assert_int_equal(load("[upstream:34020000002000000002]\ntransport = TCP\n"), 0);
    assert_int_equal(cfg.upstreams[0].transport, CONFIG_TRANSPORT_TCP);
    assert_int_equal(load("[upstream:34020000002000000002]\ntransport = sctp\n"), -1);
    assert_true(has_error(2, "[upstream:34020000002000000002] transport: bad value 'sctp' (udp|tcp|tls)"));
}

/* A string longer than its field is cut to fit, as before. */
static void test_string_cut_to_fit(void **state)
{
    (void)state;
    char text[200];
    snprintf(text, sizeof(text), "[log]\n[sip]\nuser_agent = %0100d\n", 7);
    assert_int_equal(load(text), 0);
    assert_int_equal(strlen(cfg.sip.user_agent), sizeof(cfg.sip.user_agent) - 1);
}

static void test_listen_list(void **state)
{
    (void)state;
    assert_int_equal(load("[sip]\nlisten = tcp:[::1]:5070, UDP:0.0.0.0:5080\n"), 0);
    assert_int_equal(cfg.sip.listen_count, 2);
    assert_int_equal(cfg.sip.listen[0].transport, CONFIG_TRANSPORT_TCP);
    assert_string_equal(cfg.sip.listen[0].host, "::1");
    assert_int_equal(cfg.sip.listen[0].port, 5070);
    assert_int_equal(cfg.sip.listen[1].transport, CONFIG_TRANSPORT_UDP);
    assert_string_equal(cfg.sip.listen[1].host, "0.0.0.0");
    assert_int_equal(cfg.sip.listen[1].port, 5080);
    assert_int_equal(load("[sip]\nlisten = tls:127.0.0.1:5061, ws:[::1]:8088, WSS:0.0.0.0:8089\n"), 0);
    assert_int_equal(cfg.sip.listen_count, 3);
    assert_int_equal(cfg.sip.listen[0].transport, CONFIG_TRANSPORT_TLS);
    assert_int_equal(cfg.sip.listen[1].transport, CONFIG_TRANSPORT_WS);
    assert_string_equal(cfg.sip.listen[1].host, "::1");
    assert_int_equal(cfg.sip.listen[2].transport, CONFIG_TRANSPORT_WSS);
    assert_int_equal(cfg.sip.listen[2].port, 8089);
    assert_int_equal(load("[sip]\nlisten = sctp:127.0.0.1:5060\n"), -1);
    assert_int_equal(load("[sip]\nlisten = udp:127.0.0.1\n"), -1);
    assert_int_equal(load("[sip]\nlisten =\n"), -1);        /* serving nothing is no config */
    assert_true(has_error(2, "[sip] listen: bad value '' (udp|tcp|tls|ws|wss:host:port, ... (1 to 8))"));
}

static void test_port_range(void **state)
{
    (void)state;
    assert_int_equal(load("[gb]\nmedia_ports = 40000-40001\n"), 0);
    assert_int_equal(cfg.gb.media_port_min, 40000);
    assert_int_equal(cfg.gb.media_port_max, 40001);
    assert_int_equal(load("[gb]\nmedia_ports = 40000-40000\n"), 0);
    assert_int_equal(load("[gb]\nmedia_ports = 40001-40000\n"), -1);
    assert_int_equal(load("[gb]\nmedia_ports = 0-10\n"), -1);
    assert_int_equal(load("[gb]\nmedia_ports = 40000\n"), -1);
    assert_true(has_error(2, "[gb] media_ports: bad value '40000' (low-high, ports 1..65535)"));
}

/* ---- errors: file and line */

static void test_unknown_key_names_file_and_line(void **state)
{
    (void)state;
    assert_int_equal(load("; a comment\n[sip]\ndomain = example.com\nt1 = 500\n"), -1);
    assert_true(has_error(4, "[sip] t1: unknown key"));
    assert_int_equal(error_lines(), 1);
}

/* A misspelt section is found even with no keys in it (inih never reports those). */
static void test_unknown_section_names_line(void **state)
{
    (void)state;
    assert_int_equal(load("[sip]\ndomain = example.com\n\n[registar]\nmin_expires = 30\n[gbb]\n"), -1);
    assert_true(has_error(4, "unknown section [registar]"));
    assert_true(has_error(6, "unknown section [gbb]"));
    assert_int_equal(error_lines(), 2);              /* not one more per key inside */
}

/* A file saved with a UTF-8 byte order mark: its first header is still read. */
static void test_byte_order_mark(void **state)
{
    (void)state;
    assert_int_equal(load("\xEF\xBB\xBF[sip]\ndomain = bom.test\n"), 0);
    assert_string_equal(cfg.sip.domain, "bom.test");
    assert_int_equal(load("\xEF\xBB\xBF[sipp]\ndomain = bom.test\n"), -1);
    assert_true(has_error(1, "unknown section [sipp]"));
    assert_int_equal(error_lines(), 1);
}

static void test_key_outside_a_section(void **state)
{
    (void)state;
    assert_int_equal(load("domain = example.com\n[sip]\n"), -1);
    assert_true(has_error(1, "domain: key outside a section"));
}

static void test_syntax_error_line(void **state)
{
    (void)state;
    assert_int_equal(load("[sip]\ndomain = example.com\nthis line has no equals sign\n"), -1);
    assert_true(has_error(3, "syntax error"));
}

/* Every error of the file is reported, not only the first (cascade -t). */
static void test_every_error_is_reported(void **state)
{
    (void)state;
    assert_int_equal(load("[sip]\nt1_ms = 0\nbogus = 1\n[registrar]\nmax_contacts = 999\n[nope]\n"), -1);
    assert_true(has_error(2, "[sip] t1_ms: bad value '0' (integer 1..60000)"));
    assert_true(has_error(3, "[sip] bogus: unknown key"));
    assert_true(has_error(5, "[registrar] max_contacts: bad value '999' (integer 0..256)"));
    assert_true(has_error(6, "unknown section [nope]"));
    assert_int_equal(error_lines(), 4);
}

static void test_missing_file(void **state)
{
    (void)state;
    config_init(&cfg);
    assert_int_equal(config_load(&cfg, "/nonexistent/cascade.ini", err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/cascade.ini: cannot open");
}

/* Rules between keys are checked once the whole file is read. */
static void test_rules_between_keys(void **state)
{
    (void)state;
    assert_int_equal(load("[registrar]\nmin_expires = 600\nmax_expires = 60\n"), -1);
    assert_true(has_error(0, "[registrar] min_expires > max_expires"));
    /* Either order in the file: only the end result counts. */
    assert_int_equal(load("[registrar]\nmin_expires = 8000\nmax_expires = 9000\n"), 0);
    assert_int_equal(load("[overload]\nretry_after_min = 30\nretry_after_max = 5\n"), -1);
    assert_true(has_error(0, "[overload] retry_after_min > retry_after_max"));
}

/* [tls]: min_version as an operator writes it; cert and key together; a
 * client certificate check needs the CA that signs them; [api] likewise. */
static void test_tls_section(void **state)
{
    (void)state;
    assert_int_equal(load("[tls]\ncert = /etc/c.pem\nkey = /etc/c.key\nmin_version = 1.3\n"), 0);
    assert_int_equal(cfg.tls.min_version, TLS_MIN_1_3);
    assert_string_equal(cfg.tls.cert, "/etc/c.pem");
    assert_int_equal(load("[tls]\nmin_version = 1.1\n"), -1);
    assert_true(has_error(2, "[tls] min_version: bad value '1.1' (1.2|1.3)"));
    assert_int_equal(load("[tls]\ncert = /etc/c.pem\n"), -1);
    assert_true(has_error(0, "[tls] cert and key go together: set both or neither"));
    assert_int_equal(load("[tls]\nverify_peer = yes\n"), -1);
    assert_true(has_error(0, "[tls] verify_peer = yes needs ca (the CA that signs the clients' certificates)"));
    assert_int_equal(load("[api]\ntls_key = /etc/k.pem\n"), -1);
    assert_true(has_error(0, "[api] tls_cert and tls_key go together: set both or neither"));
}

/* [redis]: the mirror needs seeds; routing between nodes needs the mirror
 * (the peers find a user by the bindings it writes). */
static void test_redis_section(void **state)
{
    (void)state;
    assert_int_equal(load("[redis]\nmirror_bindings = yes\n"), -1);
    assert_true(has_error(0, "[redis] mirror_bindings = yes needs nodes"));
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\ncluster_route = yes\n"), -1);
    assert_true(
        has_error(0, "[redis] cluster_route = yes needs mirror_bindings = yes (peers find users by the mirror)"));
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nmirror_bindings = yes\ncluster_route = yes\n"
                          "advertise = sip:10.0.0.1:5070\nheartbeat_ms = 500\nlookup_cache_ms = 0\n"),
                     0);
    assert_true(cfg.redis.cluster_route);
    assert_string_equal(cfg.redis.advertise, "sip:10.0.0.1:5070");
    assert_int_equal(cfg.redis.heartbeat_ms, 500);
    assert_int_equal(cfg.redis.lookup_cache_ms, 0);
    assert_int_equal(load("[redis]\nheartbeat_ms = 50\n"), -1);
    assert_int_equal(load("[redis]\nmirror_gb_devices = yes\n"), -1);
    assert_true(has_error(0, "[redis] mirror_gb_devices = yes needs nodes"));
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nmirror_gb_devices = yes\ngb_keepalive_write_s = 5\n"), 0);
    assert_true(cfg.redis.mirror_gb_devices);
    assert_int_equal(cfg.redis.gb_keepalive_write_s, 5);
    assert_int_equal(load("[redis]\ngb_keepalive_write_s = 0\n"), -1);
    /* durable writes: the 200 waits for the mirror's write on a replica */
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\ndurable_writes = yes\n"), -1);
    assert_true(has_error(0, "[redis] durable_writes = yes needs mirror_bindings = yes"));
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nmirror_bindings = yes\ndurable_writes = yes\n"
                          "durable_replicas = 2\ndurable_timeout_ms = 8000\n"),
                     0);
    assert_true(cfg.redis.durable_writes);
    assert_int_equal(cfg.redis.durable_replicas, 2);
    assert_int_equal(cfg.redis.durable_timeout_ms, 8000);
    assert_int_equal(load("[redis]\ndurable_replicas = 0\n"), -1);
    assert_int_equal(load("[redis]\ndurable_timeout_ms = 60000\n"), -1);
    /* events_stream: its own seeds check; the webhook batch fits one renewal */
    assert_int_equal(load("[redis]\nevents_stream = yes\n"), -1);
    assert_true(has_error(0, "[redis] events_stream = yes needs nodes"));
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nevents_stream = yes\nevents_maxlen = 5000\n"
                          "events_poll_ms = 20\nevents_claim_idle_ms = 2000\nevents_webhook_batch = 8\n"
                          "events_max_pending = 100\n"),
                     0);
    assert_true(cfg.redis.events_stream);
    assert_false(cfg.redis.mirror_bindings);
    assert_int_equal(cfg.redis.events_maxlen, 5000);
    assert_int_equal(cfg.redis.events_poll_ms, 20);
    assert_int_equal(cfg.redis.events_claim_idle_ms, 2000);
    assert_int_equal(cfg.redis.events_webhook_batch, 8);
    assert_int_equal(cfg.redis.events_max_pending, 100);
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nevents_webhook_batch = 57\n"), -1);
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nevents_claim_idle_ms = 100\n"), -1);
    /* GB API requests forwarded to the device's node: its API address, the hop's bounds */
    assert_int_equal(load("[redis]\napi_advertise = 10.0.0.1:8080\napi_forward_timeout_ms = 3000\n"
                          "api_forward_max_pending = 8\n"),
                     0);
    assert_string_equal(cfg.redis.api_advertise, "10.0.0.1:8080");
    assert_int_equal(cfg.redis.api_forward_timeout_ms, 3000);
    assert_int_equal(cfg.redis.api_forward_max_pending, 8);
    assert_int_equal(load("[redis]\napi_advertise = [::1]:8080\n"), 0);
    assert_int_equal(load("[redis]\napi_advertise = api.example.com:8080\n"), -1);
    assert_true(has_error(0, "[redis] api_advertise: 'api.example.com:8080' is not a numeric ip:port or [v6]:port "
                             "(https:// before it for TLS)"));
    /* an API that serves TLS: https:// before the address; the name its certificate carries */
    assert_int_equal(load("[redis]\napi_advertise = https://10.0.0.1:8443\napi_tls_name = api.cluster.test\n"), 0);
    assert_string_equal(cfg.redis.api_advertise, "https://10.0.0.1:8443");
    assert_string_equal(cfg.redis.api_tls_name, "api.cluster.test");
    assert_int_equal(load("[redis]\napi_advertise = https://[::1]:8443\n"), 0);
    assert_int_equal(load("[redis]\napi_advertise = http://10.0.0.1:8080\n"), -1);
    assert_int_equal(load("[redis]\napi_advertise = https://\n"), -1);
    assert_int_equal(load("[redis]\napi_advertise = 10.0.0.1\n"), -1);
    assert_int_equal(load("[redis]\napi_advertise = 10.0.0.1:0\n"), -1);
    assert_int_equal(load("[redis]\napi_forward_timeout_ms = 100\n"), -1);
    assert_int_equal(load("[redis]\napi_forward_max_pending = 0\n"), -1);
    /* mirror_users: needs seeds; the cap on users loaded */
    assert_int_equal(load("[redis]\nmirror_users = yes\n"), -1);
    assert_true(has_error(0, "[redis] mirror_users = yes needs nodes"));
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nmirror_users = yes\nusers_max = 500\n"), 0);
    assert_true(cfg.redis.mirror_users);
    assert_false(cfg.redis.mirror_bindings);
    assert_int_equal(cfg.redis.users_max, 500);
    assert_int_equal(load("[redis]\nusers_max = 0\n"), -1);
    /* mirror_presence: needs seeds; the cap on other nodes' publications held */
    assert_int_equal(load("[redis]\nmirror_presence = yes\n"), -1);
    assert_true(has_error(0, "[redis] mirror_presence = yes needs nodes"));
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nmirror_presence = yes\npresence_max = 50\n"), 0);
    assert_true(cfg.redis.mirror_presence);
    assert_int_equal(cfg.redis.presence_max, 50);
    assert_int_equal(load("[redis]\npresence_max = 0\n"), -1);
    /* mirror_gb_admin: needs seeds; the cap on device records loaded */
    assert_int_equal(load("[redis]\nmirror_gb_admin = yes\n"), -1);
    assert_true(has_error(0, "[redis] mirror_gb_admin = yes needs nodes"));
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nmirror_gb_admin = yes\ngb_admin_max = 20\n"), 0);
    assert_true(cfg.redis.mirror_gb_admin);
    assert_false(cfg.redis.mirror_gb_devices);
    assert_int_equal(cfg.redis.gb_admin_max, 20);
    assert_int_equal(load("[redis]\ngb_admin_max = 0\n"), -1);
    assert_int_equal(load("[redis]\ngb_admin_max = 10000001\n"), -1);
    /* mirror_mwi: needs seeds (its cap is [subscriptions] max_total, the store's) */
    assert_int_equal(load("[redis]\nmirror_mwi = yes\n"), -1);
    assert_true(has_error(0, "[redis] mirror_mwi = yes needs nodes"));
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nmirror_mwi = yes\n"), 0);
    assert_true(cfg.redis.mirror_mwi);
    assert_false(cfg.redis.mirror_presence);
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\n"), 0);
    assert_false(cfg.redis.mirror_mwi); /* off by default */
    /* mirror_presence_allow: needs seeds; the cap on allow lists loaded */
    assert_int_equal(load("[redis]\nmirror_presence_allow = yes\n"), -1);
    assert_true(has_error(0, "[redis] mirror_presence_allow = yes needs nodes"));
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nmirror_presence_allow = yes\npresence_allow_max = 7\n"),
                     0);
    assert_true(cfg.redis.mirror_presence_allow);
    assert_false(cfg.redis.mirror_presence); /* its own switch */
    assert_int_equal(cfg.redis.presence_allow_max, 7);
    assert_int_equal(load("[redis]\npresence_allow_max = 0\n"), -1);
    assert_int_equal(load("[redis]\npresence_allow_max = 10000001\n"), -1);
}

/* ---- [store] backend */

/* The record of keys given: what the file set, whatever the value. */
static void test_keys_given(void **state)
{
    (void)state;
    assert_int_equal(load("[sip]\ndomain = example.com\n[redis]\nmirror_users = no\n"), 0);
    assert_true(config_given_has(&config_schema, &cfg.given, "sip", "domain"));
    assert_true(config_given_has(&config_schema, &cfg.given, "redis", "mirror_users")); /* a default's value too */
    assert_false(config_given_has(&config_schema, &cfg.given, "sip", "t1_ms"));
    assert_false(config_given_has(&config_schema, &cfg.given, "redis", "mirror_bindings"));
    assert_false(config_given_has(&config_schema, &cfg.given, "redis", "no_such_key"));
    assert_false(config_given_has(&config_schema, &cfg.given, "nosuch", "domain"));
    config_init(&cfg); /* no file: nothing given */
    assert_false(config_given_has(&config_schema, &cfg.given, "sip", "domain"));
}

static bool sharing_all(bool on)
{
    return cfg.redis.mirror_bindings == on && cfg.redis.cluster_route == on && cfg.redis.mirror_users == on &&
           cfg.redis.events_stream == on && cfg.redis.mirror_gb_devices == on && cfg.redis.mirror_presence == on &&
           cfg.redis.mirror_gb_admin == on && cfg.redis.mirror_mwi == on && cfg.redis.mirror_presence_allow == on;
}

/* sqlite by default, no sharing; redis turns every sharing switch on (GB
 * devices with [gb], presence with [subscriptions]); durable_writes stays the
 * operator's choice. */
static void test_store_backend(void **state)
{
    (void)state;
    config_init(&cfg);
    assert_int_equal(cfg.store.backend, STORE_BACKEND_SQLITE);
    assert_true(sharing_all(false));
    assert_int_equal(load("[store]\nbackend = sqlite\n[redis]\nnodes = 127.0.0.1:7000\n"), 0);
    assert_true(sharing_all(false));
    assert_int_equal(load("[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:7000,127.0.0.1:7001\n"
                          "[gb]\nenabled = yes\n"),
                     0);
    assert_int_equal(cfg.store.backend, STORE_BACKEND_REDIS);
    assert_true(sharing_all(true));
    assert_false(cfg.redis.durable_writes);
    assert_string_equal(cfg.store.path, "./cascade.db"); /* SQLite stays the local store */
    /* without the GB upper role or the notifier there is nothing of theirs to share */
    assert_int_equal(load("[store]\nbackend = REDIS\n[redis]\nnodes = 127.0.0.1:7000\n[subscriptions]\nenabled = no\n"),
                     0);
    assert_true(cfg.redis.mirror_bindings && cfg.redis.cluster_route && cfg.redis.mirror_users &&
                cfg.redis.events_stream);
    assert_false(cfg.redis.mirror_gb_devices);
    assert_false(cfg.redis.mirror_presence);
    assert_false(cfg.redis.mirror_gb_admin);
    assert_false(cfg.redis.mirror_mwi); /* no notifier, no message-summary */
    assert_false(cfg.redis.mirror_presence_allow);
    char line[512];
    config_sharing_describe(&cfg, line, sizeof(line));
    assert_string_equal(line, "[store] backend = redis; mirror_bindings on cluster_route on mirror_users on "
                              "events_stream on mirror_gb_devices off mirror_presence off mirror_gb_admin off "
                              "mirror_mwi off mirror_presence_allow off");
    assert_int_equal(load("[store]\nbackend = mysql\n"), -1);
    assert_true(has_error(2, "[store] backend: bad value 'mysql' (sqlite|redis)"));
}

/* What the file sets wins over what backend = redis turns on: an explicit no
 * stays off, in either order of the sections. */
static void test_store_backend_explicit_wins(void **state)
{
    (void)state;
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nevents_stream = no\nmirror_users = off\n"
                          "[store]\nbackend = redis\n[gb]\nenabled = yes\n"),
                     0);
    assert_false(cfg.redis.events_stream);
    assert_false(cfg.redis.mirror_users);
    assert_true(cfg.redis.mirror_bindings && cfg.redis.cluster_route && cfg.redis.mirror_gb_devices &&
                cfg.redis.mirror_presence && cfg.redis.mirror_gb_admin && cfg.redis.mirror_mwi &&
                cfg.redis.mirror_presence_allow);
    char line[512];
    config_sharing_describe(&cfg, line, sizeof(line));
    assert_string_equal(line, "[store] backend = redis; mirror_bindings on cluster_route on mirror_users off (set) "
                              "events_stream off (set) mirror_gb_devices on mirror_presence on mirror_gb_admin on "
                              "mirror_mwi on mirror_presence_allow on");
    /* mirror_mwi = no in the file stays off under backend = redis */
    assert_int_equal(load("[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:7000\nmirror_mwi = no\n"), 0);
    assert_false(cfg.redis.mirror_mwi);
    assert_true(cfg.redis.mirror_presence);
    /* an explicit yes for a role that is off stays yes */
    assert_int_equal(load("[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:7000\nmirror_gb_devices = yes\n"),
                     0);
    assert_true(cfg.redis.mirror_gb_devices);
    /* the rules between the switches still hold for what the file set */
    assert_int_equal(load("[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:7000\nmirror_bindings = no\n"), -1);
    assert_true(
        has_error(0, "[redis] cluster_route = yes needs mirror_bindings = yes (peers find users by the mirror)"));
}

/* backend = sqlite with switches set: as before the key (no behaviour change). */
static void test_store_backend_sqlite_keeps_switches(void **state)
{
    (void)state;
    assert_int_equal(load("[redis]\nnodes = 127.0.0.1:7000\nmirror_bindings = yes\ncluster_route = yes\n"), 0);
    assert_int_equal(cfg.store.backend, STORE_BACKEND_SQLITE);
    assert_true(cfg.redis.mirror_bindings && cfg.redis.cluster_route);
    assert_false(cfg.redis.mirror_users || cfg.redis.events_stream || cfg.redis.mirror_gb_devices ||
                 cfg.redis.mirror_presence || cfg.redis.mirror_mwi || cfg.redis.mirror_presence_allow);
    assert_int_equal(load("[store]\nbackend = sqlite\n[redis]\nnodes = 127.0.0.1:7000\nevents_stream = yes\n"), 0);
    assert_true(cfg.redis.events_stream);
    assert_false(cfg.redis.mirror_bindings);
}

/* backend = redis without the cluster's seeds: one error naming the key
 * (not one per switch it would have turned on). */
static void test_store_backend_redis_needs_nodes(void **state)
{
    (void)state;
    assert_int_equal(load("[store]\nbackend = redis\n"), -1);
    assert_true(has_error(0, "[store] backend = redis needs [redis] nodes (the Redis Cluster's seed nodes, "
                             "host:port,...)"));
    assert_int_equal(error_lines(), 1);
    assert_int_equal(load("[store]\nbackend = redis\n[redis]\nnodes =\nmirror_users = yes\n"), -1);
    assert_true(has_error(0, "[store] backend = redis needs [redis] nodes (the Redis Cluster's seed nodes, "
                             "host:port,...)"));
}

/* The example file leaves the sharing switches commented out: a copy with
 * backend = redis does not pin them off. */
static void test_example_leaves_sharing_switches_out(void **state)
{
    (void)state;
    char buf[256];
    FILE *f = fopen("../../cascade.ini.example", "r");
    assert_non_null(f);
    int commented = 0, set = 0;
    while (fgets(buf, sizeof(buf), f)) {
        for (const char *const *k = redis_config_section.derived; *k; k++) {
            size_t n = strlen(*k);
            if (!strncmp(buf, *k, n) && buf[n] == ' ') set++;
            if (buf[0] == ';' && !strncmp(buf + 1, *k, n) && buf[n + 1] == ' ') commented++;
        }
    }
    fclose(f);
    assert_int_equal(set, 0);
    assert_int_equal(commented, 9);
}

/* ---- [upstream:<id>] */

/* Each id is one upstream with the table's defaults; a repeated id adds to it. */
static void test_upstream_sections(void **state)
{
    (void)state;
    assert_int_equal(load("[upstream:34020000002000000002]\nhost = 198.51.100.7\n"
                          "[upstream:34020000002000000003]\nhost = 198.51.100.8\nport = 5070\nenabled = no\n"
                          "[upstream:34020000002000000002]\npassword = secret\n"),
                     0);
    assert_int_equal(cfg.upstream_count, 2);
    const struct config_upstream *a = &cfg.upstreams[0], *b = &cfg.upstreams[1];
    assert_string_equal(a->id, "34020000002000000002");
    assert_string_equal(a->host, "198.51.100.7");
    assert_string_equal(a->password, "secret");
    assert_int_equal(a->port, 5060);
    assert_int_equal(a->transport, CONFIG_TRANSPORT_UDP);
    assert_int_equal(a->expires, 3600);
    assert_int_equal(a->keepalive_interval, 60);
    assert_int_equal(a->keepalive_misses, 3);
    assert_string_equal(a->charset, "GB2312");
    assert_true(a->enabled);
    assert_int_equal(a->catalog_items, 4);
    assert_true(a->notify_without_subscription);
    assert_string_equal(b->id, "34020000002000000003");
    assert_int_equal(b->port, 5070);
    assert_false(b->enabled);
}

/* An [upstream:<id>] with no keys makes no upstream (as before the tables). */
static void test_empty_upstream_section_makes_none(void **state)
{
    (void)state;
    assert_int_equal(load("[upstream:34020000002000000002]\n"), 0);
    assert_int_equal(cfg.upstream_count, 0);
}

static void test_too_many_upstreams(void **state)
{
    (void)state;
    char text[4096] = "";
    for (int i = 0; i <= CONFIG_MAX_UPSTREAMS; i++) {
        char one[96];
        snprintf(one, sizeof(one), "[upstream:340200000020000000%02d]\nhost = 192.0.2.%d\n", i, i + 1);
        strcat(text, one);
    }
    assert_int_equal(load(text), -1);
    assert_int_equal(cfg.upstream_count, CONFIG_MAX_UPSTREAMS);
    assert_true(has_error(2 * CONFIG_MAX_UPSTREAMS + 2,
                          "[upstream:34020000002000000016]: too many [upstream:<id>] sections (at most 16)"));
}

/* ---- [proxy] trusted */

static bool matches(const struct config *c, const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    }
    return config_cidr_match(c->proxy.trusted, c->proxy.trusted_count, (const struct sockaddr *)&ss);
}

static void test_trusted_blocks(void **state)
{
    (void)state;
    struct config c;
    config_init(&c);
    assert_int_equal(c.proxy.trusted_count, 0);
    assert_false(matches(&c, "127.0.0.1"));
    assert_int_equal(config_parse_trusted(&c, "192.0.2.10, 10.0.0.0/8,172.16.0.0/12 2001:db8::/32, 198.51.100.0/25"), 0);
    assert_int_equal(c.proxy.trusted_count, 5);
    assert_true(matches(&c, "192.0.2.10"));
    assert_false(matches(&c, "192.0.2.11"));      /* a bare address is a /32 */
    assert_true(matches(&c, "10.255.1.2"));
    assert_false(matches(&c, "11.0.0.1"));
    assert_true(matches(&c, "172.31.255.255"));    /* /12: 172.16-31 */
    assert_false(matches(&c, "172.32.0.1"));
    assert_true(matches(&c, "198.51.100.127"));    /* /25: .0-.127 */
    assert_false(matches(&c, "198.51.100.128"));
    assert_true(matches(&c, "2001:db8:ffff::1"));
    assert_false(matches(&c, "2001:db9::1"));
    assert_false(matches(&c, "::ffff:10.0.0.1"));  /* v4-mapped v6 is not v4 here */
    /* Refused: not an address, bits out of range, too many. */
    assert_int_equal(config_parse_trusted(&c, "gateway.example.com"), -1);
    assert_int_equal(config_parse_trusted(&c, "10.0.0.0/33"), -1);
    assert_int_equal(config_parse_trusted(&c, "2001:db8::/129"), -1);
    assert_int_equal(config_parse_trusted(&c, "10.0.0.0/x"), -1);
    char many[2048] = "";
    for (int i = 0; i <= CONFIG_MAX_TRUSTED; i++) {
        char one[32];
        snprintf(one, sizeof(one), "10.0.%d.0/24,", i);
        strcat(many, one);
    }
    assert_int_equal(config_parse_trusted(&c, many), -1);
    /* 0.0.0.0/0 takes every IPv4 source. */
    assert_int_equal(config_parse_trusted(&c, "0.0.0.0/0"), 0);
    assert_true(matches(&c, "203.0.113.9"));
    assert_false(matches(&c, "2001:db8::1"));
}

/* The same blocks through the file, where the key is read. */
static void test_trusted_key(void **state)
{
    (void)state;
    assert_int_equal(load("[proxy]\ntrusted = 192.0.2.10, 10.0.0.0/8\n"), 0);
    assert_int_equal(cfg.proxy.trusted_count, 2);
    assert_true(matches(&cfg, "10.1.2.3"));
    assert_int_equal(load("[proxy]\ntrusted = 10.0.0.0/33\n"), -1);
    assert_true(has_error(2, "[proxy] trusted: bad value '10.0.0.0/33' (ip[/bits], ... (up to 32))"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_the_documented_ones),
        cmocka_unit_test(test_overload_defaults_agree),
        cmocka_unit_test(test_every_default_parses),
        cmocka_unit_test(test_example_file_is_the_defaults),
        cmocka_unit_test(test_media_enabled),
        cmocka_unit_test(test_media_values),
        cmocka_unit_test(test_media_rules),
        cmocka_unit_test(test_edge_registrar_rules),
        cmocka_unit_test(test_edge_secret_and_trusted_edges),
        cmocka_unit_test(test_bool_spellings),
        cmocka_unit_test(test_integer_range_edges),
        cmocka_unit_test(test_small_unsigned_field),
        cmocka_unit_test(test_choice_kept_as_written),
        cmocka_unit_test(test_enum_value),
        cmocka_unit_test(test_string_cut_to_fit),
        cmocka_unit_test(test_listen_list),
        cmocka_unit_test(test_port_range),
        cmocka_unit_test(test_unknown_key_names_file_and_line),
        cmocka_unit_test(test_unknown_section_names_line),
        cmocka_unit_test(test_byte_order_mark),
        cmocka_unit_test(test_key_outside_a_section),
        cmocka_unit_test(test_syntax_error_line),
        cmocka_unit_test(test_every_error_is_reported),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_rules_between_keys),
        cmocka_unit_test(test_tls_section),
        cmocka_unit_test(test_redis_section),
        cmocka_unit_test(test_keys_given),
        cmocka_unit_test(test_store_backend),
        cmocka_unit_test(test_store_backend_explicit_wins),
        cmocka_unit_test(test_store_backend_sqlite_keeps_switches),
        cmocka_unit_test(test_store_backend_redis_needs_nodes),
        cmocka_unit_test(test_example_leaves_sharing_switches_out),
        cmocka_unit_test(test_upstream_sections),
        cmocka_unit_test(test_empty_upstream_section_makes_none),
        cmocka_unit_test(test_too_many_upstreams),
        cmocka_unit_test(test_trusted_blocks),
        cmocka_unit_test(test_trusted_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
