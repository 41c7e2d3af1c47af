/* test_tls.c — TLS sessions on memory BIOs (transport/tls.h) as RFC 3261
 * §26.2 and RFC 5630 want them: a client and a server session of ours pumped
 * through each other in memory (what one sends is the other's input), with
 * a throw-away PKI made at start (cert_testutil.h): a CA, a server
 * certificate for sip.test / 127.0.0.1, a client certificate, a self-signed
 * stranger. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cert_testutil.h"
#include "transport/tls.h"

static struct test_pki pki;

/* One side of a connection: its session, the ciphertext it sent and not yet
 * delivered, the plaintext it received, and how it ended. */
struct end {
    struct tls_session *s;
    unsigned char *wire;
    size_t wire_len;
    unsigned char *plain;
    size_t plain_len;
    int rc;
    char why[200];
    struct tls_io io;
};

static void append(unsigned char **buf, size_t *len, const void *data, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    assert_non_null(*buf);
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static int on_send(void *user, const void *data, size_t len)
{
    struct end *e = user;
    append(&e->wire, &e->wire_len, data, len);
    return 0;
}

static int on_recv(void *user, const void *data, size_t len)
{
    struct end *e = user;
    append(&e->plain, &e->plain_len, data, len);
    return 0;
}

static void end_init(struct end *e, struct tls_session *s)
{
    memset(e, 0, sizeof(*e));
    assert_non_null(s);
    e->s = s;
    e->io = (struct tls_io){.user = e, .send = on_send, .recv = on_recv};
}

static void end_free(struct end *e)
{
    tls_session_free(e->s);
    free(e->wire);
    free(e->plain);
}

static void note(struct end *e, int rc, const char *why)
{
    if (rc == 0 || e->rc) return;
    e->rc = rc;
    snprintf(e->why, sizeof(e->why), "%s", why ? why : "(no reason)");
}

/* Delivers what from sent to to, until neither has anything left or one
 * side failed. */
static void pump(struct end *a, struct end *b)
{
    for (int round = 0; round < 100; round++) {
        bool moved = false;
        struct end *from[2] = {a, b}, *to[2] = {b, a};
        for (int i = 0; i < 2; i++) {
            if (!from[i]->wire_len || to[i]->rc) continue;
            unsigned char *data = from[i]->wire;
            size_t len = from[i]->wire_len;
            from[i]->wire = NULL;
            from[i]->wire_len = 0;
            const char *why = NULL;
            int rc = tls_session_input(to[i]->s, data, len, &to[i]->io, &why);
            note(to[i], rc, why);
            free(data);
            moved = true;
        }
        if (!moved) return;
    }
    fail_msg("the sessions kept talking for 100 rounds");
}

static void start(struct end *client)
{
    const char *why = NULL;
    int rc = tls_session_start(client->s, &client->io, &why);
    note(client, rc, why);
}

static void write_plain(struct end *e, const void *data, size_t len)
{
    const char *why = NULL;
    int rc = tls_session_write(e->s, data, len, &e->io, &why);
    if (rc) fail_msg("write failed: %s", why ? why : "?");
}

/* Configs: a server with sip.test's certificate; a client trusting the CA. */
static struct tls_config server_cfg(void)
{
    struct tls_config c = {.verify_server = true};
    snprintf(c.cert, sizeof(c.cert), "%s", pki.server_cert);
    snprintf(c.key, sizeof(c.key), "%s", pki.server_key);
    snprintf(c.ca, sizeof(c.ca), "%s", pki.ca);
    return c;
}

static struct tls_config client_cfg(const char *cert, const char *key)
{
    struct tls_config c = {.verify_server = true};
    snprintf(c.ca, sizeof(c.ca), "%s", pki.ca);
    if (cert) snprintf(c.cert, sizeof(c.cert), "%s", cert);
    if (key) snprintf(c.key, sizeof(c.key), "%s", key);
    return c;
}

static struct tls_context *context(const struct tls_config *c)
{
    char err[512] = "";
    struct tls_context *ctx = tls_context_new(c, err, sizeof(err));
    if (!ctx) fail_msg("tls_context_new: %s", err);
    return ctx;
}

/* A client of cctx connecting to a server of sctx as name, pumped through
 * the handshake. */
static void connect_pair(struct tls_context *cctx, struct tls_context *sctx, const char *name, struct end *c,
                         struct end *s)
{
    end_init(c, tls_session_client(cctx, name));
    end_init(s, tls_session_server(sctx));
    start(c);
    pump(c, s);
}

static void test_handshake_completes_and_plaintext_flows_both_ways(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg(), cc = client_cfg(NULL, NULL);
    struct tls_context *sctx = context(&sc), *cctx = context(&cc);
    struct end c, s;
    end_init(&c, tls_session_client(cctx, "sip.test"));
    end_init(&s, tls_session_server(sctx));
    /* Written before the handshake: kept, then sent once it completes. */
    static const char early[] = "OPTIONS sip:sip.test SIP/2.0\r\n\r\n";
    write_plain(&c, early, sizeof(early) - 1);
    assert_int_equal(tls_session_pending(c.s), sizeof(early) - 1);
    assert_false(tls_session_established(c.s));
    start(&c);
    pump(&c, &s);
    assert_int_equal(c.rc, 0);
    assert_int_equal(s.rc, 0);
    assert_true(tls_session_established(c.s));
    assert_true(tls_session_established(s.s));
    assert_int_equal(tls_session_pending(c.s), 0);
    assert_string_equal((char *)s.plain, early);

    /* A 60 KiB message each way (several records). */
    size_t big = 60 * 1024;
    unsigned char *msg = malloc(big);
    assert_non_null(msg);
    for (size_t i = 0; i < big; i++) msg[i] = (unsigned char)('a' + i % 26);
    write_plain(&s, msg, big);
    write_plain(&c, msg, big);
    pump(&c, &s);
    assert_int_equal(c.plain_len, big);
    assert_memory_equal(c.plain, msg, big);
    assert_int_equal(s.plain_len, sizeof(early) - 1 + big);
    assert_memory_equal(s.plain + sizeof(early) - 1, msg, big);
    free(msg);

    char d[256];
    tls_session_describe(c.s, d, sizeof(d));
    assert_non_null(strstr(d, "TLSv1.3"));
    assert_non_null(strstr(d, "CN=sip.test"));
    end_free(&c);
    end_free(&s);
    tls_context_free(sctx);
    tls_context_free(cctx);
}

/* RFC 5922 §7.2 / RFC 6125: the certificate must name the host we asked for. */
static void test_client_refuses_a_server_named_otherwise(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg(), cc = client_cfg(NULL, NULL);
    struct tls_context *sctx = context(&sc), *cctx = context(&cc);
    struct end c, s;
    connect_pair(cctx, sctx, "other.test", &c, &s);
    assert_int_equal(c.rc, -1);
    assert_non_null(strstr(c.why, "handshake failed"));
    assert_non_null(strstr(c.why, "hostname mismatch"));
    assert_false(tls_session_established(c.s));
    end_free(&c);
    end_free(&s);
    tls_context_free(sctx);
    tls_context_free(cctx);
}

/* A numeric address is checked against the certificate's IP addresses. */
static void test_client_accepts_the_server_by_name_and_by_address(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg(), cc = client_cfg(NULL, NULL);
    struct tls_context *sctx = context(&sc), *cctx = context(&cc);
    const char *good[] = {"sip.test", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < 3; i++) {
        struct end c, s;
        connect_pair(cctx, sctx, good[i], &c, &s);
        if (c.rc) fail_msg("%s: %s", good[i], c.why);
        assert_true(tls_session_established(c.s));
        assert_true(tls_session_established(s.s));
        end_free(&c);
        end_free(&s);
    }
    struct end c, s;
    connect_pair(cctx, sctx, "127.0.0.2", &c, &s);
    assert_int_equal(c.rc, -1);
    assert_non_null(strstr(c.why, "mismatch"));
    end_free(&c);
    end_free(&s);
    tls_context_free(sctx);
    tls_context_free(cctx);
}

static void test_client_refuses_a_server_its_ca_did_not_sign(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg(), cc = client_cfg(NULL, NULL);
    snprintf(sc.cert, sizeof(sc.cert), "%s", pki.stranger_cert);
    snprintf(sc.key, sizeof(sc.key), "%s", pki.stranger_key);
    struct tls_context *sctx = context(&sc), *cctx = context(&cc);
    struct end c, s;
    connect_pair(cctx, sctx, "stranger", &c, &s);
    assert_int_equal(c.rc, -1);
    assert_non_null(strstr(c.why, "certificate verify failed"));
    end_free(&c);
    end_free(&s);
    tls_context_free(sctx);
    tls_context_free(cctx);
}

/* verify_server off (a lab without certificates): any certificate goes. */
static void test_client_without_verify_server_takes_any_certificate(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg(), cc = client_cfg(NULL, NULL);
    snprintf(sc.cert, sizeof(sc.cert), "%s", pki.stranger_cert);
    snprintf(sc.key, sizeof(sc.key), "%s", pki.stranger_key);
    cc.verify_server = false;
    struct tls_context *sctx = context(&sc), *cctx = context(&cc);
    struct end c, s;
    connect_pair(cctx, sctx, "sip.test", &c, &s);
    if (c.rc) fail_msg("client: %s", c.why);
    assert_true(tls_session_established(c.s));
    end_free(&c);
    end_free(&s);
    tls_context_free(sctx);
    tls_context_free(cctx);
}

/* [tls] ca may be a directory of certificates named by subject hash
 * (what `openssl rehash` makes). */
static void test_ca_may_be_a_hashed_directory(void **state)
{
    (void)state;
    char dir[160], link[200];
    snprintf(dir, sizeof(dir), "%s/cadir", pki.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    FILE *f = fopen(pki.ca, "r");
    assert_non_null(f);
    X509 *ca = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(ca);
    snprintf(link, sizeof(link), "%s/%08lx.0", dir, X509_subject_name_hash(ca));
    X509_free(ca);
    assert_int_equal(symlink(pki.ca, link), 0);

    struct tls_config sc = server_cfg(), cc = client_cfg(NULL, NULL);
    snprintf(cc.ca, sizeof(cc.ca), "%s", dir);
    struct tls_context *sctx = context(&sc), *cctx = context(&cc);
    struct end c, s;
    connect_pair(cctx, sctx, "sip.test", &c, &s);
    if (c.rc) fail_msg("client: %s", c.why);
    assert_true(tls_session_established(c.s));
    end_free(&c);
    end_free(&s);
    tls_context_free(sctx);
    tls_context_free(cctx);
    unlink(link);
    rmdir(dir);
}

/* verify_peer: the server asks for a certificate and refuses a client
 * without one the CA signed. */
static void verify_peer_with(const char *cert, const char *key, bool accepted)
{
    struct tls_config sc = server_cfg(), cc = client_cfg(cert, key);
    sc.verify_peer = true;
    struct tls_context *sctx = context(&sc), *cctx = context(&cc);
    struct end c, s;
    connect_pair(cctx, sctx, "sip.test", &c, &s);
    if (accepted) {
        if (s.rc || c.rc) fail_msg("server: %s, client: %s", s.why, c.why);
        assert_true(tls_session_established(s.s));
        char d[256];
        tls_session_describe(s.s, d, sizeof(d));
        assert_non_null(strstr(d, "CN=alice.client"));
    } else {
        assert_int_equal(s.rc, -1);
        assert_non_null(strstr(s.why, "handshake failed: "));
        assert_false(tls_session_established(s.s));
    }
    end_free(&c);
    end_free(&s);
    tls_context_free(sctx);
    tls_context_free(cctx);
}

static void test_verify_peer_refuses_a_client_without_a_certificate(void **state)
{
    (void)state;
    verify_peer_with(NULL, NULL, false);
}

static void test_verify_peer_refuses_a_self_signed_stranger(void **state)
{
    (void)state;
    verify_peer_with(pki.stranger_cert, pki.stranger_key, false);
}

static void test_verify_peer_accepts_a_client_the_ca_signed(void **state)
{
    (void)state;
    verify_peer_with(pki.client_cert, pki.client_key, true);
}

/* A plain SIP request (or any garbage) on a TLS port: refused at once. */
static void test_server_refuses_what_is_not_a_tls_record(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg();
    struct tls_context *sctx = context(&sc);
    const char *inputs[] = {"REGISTER sip:sip.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1\r\n\r\n",
                            "\x01\x02\x03garbage"};
    for (size_t i = 0; i < 2; i++) {
        struct end s;
        end_init(&s, tls_session_server(sctx));
        const char *why = NULL;
        assert_int_equal(tls_session_input(s.s, inputs[i], strlen(inputs[i]), &s.io, &why), -1);
        assert_string_equal(why, "not TLS");
        assert_int_equal(s.wire_len, 0);
        assert_int_equal(s.plain_len, 0);
        /* Dead from then on. */
        assert_int_equal(tls_session_input(s.s, "\x16", 1, &s.io, &why), -1);
        end_free(&s);
    }
    tls_context_free(sctx);
}

/* A handshake record that is garbage inside: refused with OpenSSL's reason. */
static void test_server_refuses_a_garbled_client_hello(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg();
    struct tls_context *sctx = context(&sc);
    struct end s;
    end_init(&s, tls_session_server(sctx));
    static const unsigned char hello[] = {0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 'x', 'x', 'x', 'x'};
    const char *why = NULL;
    assert_int_equal(tls_session_input(s.s, hello, sizeof(hello), &s.io, &why), -1);
    assert_non_null(strstr(why, "handshake failed: "));
    end_free(&s);
    tls_context_free(sctx);
}

/* A peer that speaks TLS 1.2 at most, straight from OpenSSL, pumped against
 * one of our server sessions. */
static void test_min_version_1_3_refuses_a_tls_1_2_client(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg();
    sc.min_version = TLS_MIN_1_3;
    struct tls_context *sctx = context(&sc);
    SSL_CTX *old = SSL_CTX_new(TLS_client_method());
    assert_non_null(old);
    SSL_CTX_set_max_proto_version(old, TLS1_2_VERSION);
    SSL *ssl = SSL_new(old);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in, -1);
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
    assert_int_equal(SSL_do_handshake(ssl), -1);     /* wants the ServerHello */

    struct end s;
    end_init(&s, tls_session_server(sctx));
    unsigned char buf[4096];
    int n = BIO_read(out, buf, sizeof(buf));
    assert_true(n > 0);
    const char *why = NULL;
    assert_int_equal(tls_session_input(s.s, buf, (size_t)n, &s.io, &why), -1);
    assert_non_null(strstr(why, "handshake failed: "));
    assert_non_null(strstr(why, "protocol"));
    /* The old client gets an alert, not a ServerHello. */
    BIO_write(in, s.wire, (int)s.wire_len);
    assert_int_equal(SSL_do_handshake(ssl), -1);
    assert_int_equal(SSL_get_error(ssl, -1), SSL_ERROR_SSL);
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(old);
    end_free(&s);
    tls_context_free(sctx);
}

/* SIGHUP: new files for new sessions, open sessions go on with the old. */
static void test_reload_keeps_open_sessions_and_serves_the_new_certificate(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg(), cc = client_cfg(NULL, NULL);
    struct tls_context *sctx = context(&sc), *cctx = context(&cc);
    struct end c1, s1;
    connect_pair(cctx, sctx, "sip.test", &c1, &s1);
    assert_true(tls_session_established(s1.s));

    snprintf(sc.cert, sizeof(sc.cert), "%s", pki.server2_cert);
    snprintf(sc.key, sizeof(sc.key), "%s", pki.server2_key);
    char err[512] = "";
    assert_int_equal(tls_context_reload(sctx, &sc, err, sizeof(err)), 0);
    assert_string_equal(tls_context_config(sctx)->cert, pki.server2_cert);

    write_plain(&c1, "ping", 4);
    write_plain(&s1, "pong", 4);
    pump(&c1, &s1);
    assert_int_equal(s1.rc, 0);
    assert_string_equal((char *)s1.plain, "ping");
    assert_string_equal((char *)c1.plain, "pong");

    struct end c2, s2;
    connect_pair(cctx, sctx, "sip.test", &c2, &s2);
    assert_true(tls_session_established(c2.s));
    char d[256];
    tls_session_describe(c2.s, d, sizeof(d));
    assert_non_null(strstr(d, "CN=sip.test renewed"));
    end_free(&c1);
    end_free(&s1);
    end_free(&c2);
    end_free(&s2);
    tls_context_free(sctx);
    tls_context_free(cctx);
}

static void test_reload_with_a_missing_file_fails_and_keeps_the_old(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg(), cc = client_cfg(NULL, NULL);
    struct tls_context *sctx = context(&sc), *cctx = context(&cc);
    struct tls_config bad = sc;
    snprintf(bad.cert, sizeof(bad.cert), "%s/missing.pem", pki.dir);
    char err[512] = "";
    assert_int_equal(tls_context_reload(sctx, &bad, err, sizeof(err)), -1);
    assert_non_null(strstr(err, bad.cert));
    assert_non_null(strstr(err, "No such file"));
    assert_string_equal(tls_context_config(sctx)->cert, pki.server_cert);

    struct end c, s;
    connect_pair(cctx, sctx, "sip.test", &c, &s);
    assert_true(tls_session_established(c.s));
    char d[256];
    tls_session_describe(c.s, d, sizeof(d));
    assert_non_null(strstr(d, "CN=sip.test"));
    assert_null(strstr(d, "renewed"));
    end_free(&c);
    end_free(&s);
    tls_context_free(sctx);
    tls_context_free(cctx);
}

static void test_context_names_the_file_it_cannot_use(void **state)
{
    (void)state;
    char err[512];
    struct tls_config c = server_cfg();
    snprintf(c.key, sizeof(c.key), "%s", pki.client_key);          /* not the cert's key */
    assert_null(tls_context_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "does not match"));

    c = server_cfg();
    snprintf(c.cert, sizeof(c.cert), "%s", pki.server_key);        /* a key where a cert belongs */
    assert_null(tls_context_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, pki.server_key));

    c = server_cfg();
    c.key[0] = '\0';
    assert_null(tls_context_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "cert and key"));

    c = server_cfg();
    snprintf(c.ciphers, sizeof(c.ciphers), "NO-SUCH-CIPHER");
    assert_null(tls_context_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "ciphers"));
}

static void test_context_without_a_certificate_cannot_serve(void **state)
{
    (void)state;
    struct tls_config cc = client_cfg(NULL, NULL);
    struct tls_context *ctx = context(&cc);
    assert_false(tls_context_can_serve(ctx));
    assert_null(tls_session_server(ctx));
    struct tls_session *s = tls_session_client(ctx, "sip.test");
    assert_non_null(s);
    tls_session_free(s);
    tls_context_free(ctx);
}

/* What a stranger can make us buffer before the handshake is bounded. */
static void test_plaintext_kept_before_the_handshake_is_capped(void **state)
{
    (void)state;
    struct tls_config cc = client_cfg(NULL, NULL);
    struct tls_context *ctx = context(&cc);
    struct end c;
    end_init(&c, tls_session_client(ctx, "sip.test"));
    unsigned char *chunk = calloc(1, TLS_MAX_PENDING);
    assert_non_null(chunk);
    const char *why = NULL;
    assert_int_equal(tls_session_write(c.s, chunk, TLS_MAX_PENDING, &c.io, &why), 0);
    assert_int_equal(tls_session_write(c.s, chunk, 1, &c.io, &why), -1);
    assert_string_equal(why, "too much data before the handshake");
    free(chunk);
    end_free(&c);
    tls_context_free(ctx);
}

/* RFC 8446 §6.1: close_notify ends the peer's reading with that reason. */
static void test_shutdown_sends_close_notify(void **state)
{
    (void)state;
    struct tls_config sc = server_cfg(), cc = client_cfg(NULL, NULL);
    struct tls_context *sctx = context(&sc), *cctx = context(&cc);
    struct end c, s;
    connect_pair(cctx, sctx, "sip.test", &c, &s);
    assert_true(tls_session_established(s.s));
    tls_session_shutdown(c.s, &c.io);
    pump(&c, &s);
    assert_int_equal(s.rc, -1);
    assert_string_equal(s.why, "close_notify");
    const char *why = NULL;
    assert_int_equal(tls_session_write(c.s, "x", 1, &c.io, &why), -1);
    end_free(&c);
    end_free(&s);
    tls_context_free(sctx);
    tls_context_free(cctx);
}

static int setup(void **state)
{
    (void)state;
    return test_pki_make(&pki);
}

static int teardown(void **state)
{
    (void)state;
    test_pki_remove(&pki);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_completes_and_plaintext_flows_both_ways),
        cmocka_unit_test(test_client_refuses_a_server_named_otherwise),
        cmocka_unit_test(test_client_accepts_the_server_by_name_and_by_address),
        cmocka_unit_test(test_client_refuses_a_server_its_ca_did_not_sign),
        cmocka_unit_test(test_client_without_verify_server_takes_any_certificate),
        cmocka_unit_test(test_ca_may_be_a_hashed_directory),
        cmocka_unit_test(test_verify_peer_refuses_a_client_without_a_certificate),
        cmocka_unit_test(test_verify_peer_refuses_a_self_signed_stranger),
        cmocka_unit_test(test_verify_peer_accepts_a_client_the_ca_signed),
        cmocka_unit_test(test_server_refuses_what_is_not_a_tls_record),
        cmocka_unit_test(test_server_refuses_a_garbled_client_hello),
        cmocka_unit_test(test_min_version_1_3_refuses_a_tls_1_2_client),
        cmocka_unit_test(test_reload_keeps_open_sessions_and_serves_the_new_certificate),
        cmocka_unit_test(test_reload_with_a_missing_file_fails_and_keeps_the_old),
        cmocka_unit_test(test_context_names_the_file_it_cannot_use),
        cmocka_unit_test(test_context_without_a_certificate_cannot_serve),
        cmocka_unit_test(test_plaintext_kept_before_the_handshake_is_capped),
        cmocka_unit_test(test_shutdown_sends_close_notify),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
