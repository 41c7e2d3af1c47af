/* test_dtls.c — DTLS-SRTP endpoints (RFC 5764, RFC 8122 fingerprints).
 *
 * Two sessions talk through in-memory datagram queues: what one sends is
 * queued, and the pump hands each queued datagram to the other side, so a
 * test can drop, corrupt or replay any datagram of the handshake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "media/dtls.h"

#define QMAX 32

/* Datagrams one side sent, not yet delivered. */
struct queue {
    uint8_t pkt[QMAX][1500];
    size_t len[QMAX];
    int n;
    size_t max_len;             /* largest datagram ever sent */
    int total;                  /* datagrams ever sent */
    bool refuse;                /* io->send fails */
};

static int q_send(void *user, const void *data, size_t len)
{
    struct queue *q = user;
    if (q->refuse) return -1;
    assert_true(q->n < QMAX);
    assert_true(len <= sizeof(q->pkt[0]));
    memcpy(q->pkt[q->n], data, len);
    q->len[q->n++] = len;
    q->total++;
    if (len > q->max_len) q->max_len = len;
    return 0;
}

struct side {
    struct dtls_session *s;
    struct queue out;
    struct dtls_io io;
    const char *why;            /* the reason of its last failure */
    int failed;
};

static void side_init(struct side *d, struct dtls_session *s)
{
    memset(d, 0, sizeof(*d));
    d->s = s;
    d->io.user = &d->out;
    d->io.send = q_send;
}

/* Delivers everything `from` sent to `to`, in order. */
static void deliver(struct side *from, struct side *to)
{
    struct queue *q = &from->out;
    for (int i = 0; i < q->n; i++)
        if (dtls_session_input(to->s, q->pkt[i], q->len[i], &to->io, &to->why)) to->failed++;
    q->n = 0;
}

/* Until neither side has anything to send (or a side failed). */
static void pump(struct side *a, struct side *b)
{
    for (int round = 0; round < 20 && (a->out.n || b->out.n) && !a->failed && !b->failed; round++) {
        deliver(a, b);
        deliver(b, a);
    }
}

struct pair {
    struct dtls_context *sctx, *cctx;
    struct side server, client;
};

static void pair_open(struct pair *p, uint32_t timeout_ms, bool bad_server_fp, bool bad_client_fp)
{
    char err[256];
    p->sctx = dtls_context_new(timeout_ms, err, sizeof(err));
    p->cctx = dtls_context_new(timeout_ms, err, sizeof(err));
    assert_non_null(p->sctx);
    assert_non_null(p->cctx);
    uint8_t sfp[DTLS_FP_LEN], cfp[DTLS_FP_LEN];
    assert_int_equal(dtls_fingerprint_parse(dtls_context_fingerprint(p->sctx), sfp), 0);
    assert_int_equal(dtls_fingerprint_parse(dtls_context_fingerprint(p->cctx), cfp), 0);
    if (bad_client_fp) cfp[31] ^= 1;        /* what the server expects of the client */
    if (bad_server_fp) sfp[0] ^= 0x80;      /* what the client expects of the server */
    side_init(&p->server, dtls_session_new(p->sctx, DTLS_ROLE_SERVER, cfp));
    side_init(&p->client, dtls_session_new(p->cctx, DTLS_ROLE_CLIENT, sfp));
    assert_non_null(p->server.s);
    assert_non_null(p->client.s);
}

/* A pair whose contexts offer the given DTLS_PROFILE_* sets. */
static void pair_open_profiles(struct pair *p, unsigned server, unsigned client)
{
    pair_open(p, 0, false, false);
    assert_int_equal(dtls_context_set_profiles(p->sctx, server), 0);
    assert_int_equal(dtls_context_set_profiles(p->cctx, client), 0);
}

static void pair_close(struct pair *p)
{
    dtls_session_free(p->server.s);
    dtls_session_free(p->client.s);
    dtls_context_free(p->sctx);
    dtls_context_free(p->cctx);
}

static void handshake(struct pair *p)
{
    assert_int_equal(dtls_session_start(p->client.s, &p->client.io, &p->client.why), 0);
    pump(&p->client, &p->server);
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i]) return false;
    return true;
}

/* ---- the fingerprint attribute (RFC 8122 §5) */

static void test_fingerprint_format(void **state)
{
    (void)state;
    char err[256];
    struct dtls_context *a = dtls_context_new(0, err, sizeof(err));
    struct dtls_context *b = dtls_context_new(0, err, sizeof(err));
    assert_non_null(a);
    assert_non_null(b);
    const char *fp = dtls_context_fingerprint(a);
    assert_int_equal(strlen(fp), DTLS_FP_ATTR_LEN);
    assert_memory_equal(fp, "sha-256 ", 8);
    for (size_t i = 8; i < DTLS_FP_ATTR_LEN; i++) {
        char c = fp[i];
        if ((i - 8) % 3 == 2) assert_int_equal(c, ':');
        else assert_true((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'));
    }
    /* A fresh key and certificate per context. */
    assert_string_not_equal(fp, dtls_context_fingerprint(b));
    dtls_context_free(a);
    dtls_context_free(b);
}

static void test_fingerprint_parse(void **state)
{
    (void)state;
    uint8_t d[DTLS_FP_LEN];
    char v[160] = "SHA-256 ";
    for (int i = 0; i < DTLS_FP_LEN; i++) sprintf(v + strlen(v), "%s%02x", i ? ":" : "", i * 7);
    assert_int_equal(dtls_fingerprint_parse(v, d), 0);
    for (int i = 0; i < DTLS_FP_LEN; i++) assert_int_equal(d[i], (uint8_t)(i * 7));
    char crlf[170];
    snprintf(crlf, sizeof(crlf), "%s\r\n", v);
    assert_int_equal(dtls_fingerprint_parse(crlf, d), 0);

    assert_int_equal(dtls_fingerprint_parse("sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33", d), -1);
    assert_int_equal(dtls_fingerprint_parse("sha-256 00:11", d), -1);             /* short */
    assert_int_equal(dtls_fingerprint_parse("sha-256", d), -1);
    assert_int_equal(dtls_fingerprint_parse("", d), -1);
    assert_int_equal(dtls_fingerprint_parse(NULL, d), -1);
    char bad[170];
    strcpy(bad, v);
    bad[10] = '-';                                                               /* not a colon */
    assert_int_equal(dtls_fingerprint_parse(bad, d), -1);
    strcpy(bad, v);
    bad[8] = 'g';                                                                /* not hex */
    assert_int_equal(dtls_fingerprint_parse(bad, d), -1);
    snprintf(bad, sizeof(bad), "%s:00", v);                                      /* 33 bytes */
    assert_int_equal(dtls_fingerprint_parse(bad, d), -1);
    snprintf(bad, sizeof(bad), "sha-2560%s", v + 7);                             /* a longer name */
    assert_int_equal(dtls_fingerprint_parse(bad, d), -1);
}

/* ---- the handshake */

static void test_handshake_and_keys(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 0, false, false);
    /* An idle server runs no timer and sends nothing on start. */
    assert_int_equal(dtls_session_timeout_ms(p.server.s), -1);
    assert_int_equal(dtls_session_start(p.server.s, &p.server.io, &p.server.why), 0);
    assert_int_equal(p.server.out.n, 0);

    struct dtls_srtp_keys ks, kc;
    assert_int_equal(dtls_session_srtp_keys(p.client.s, &kc), -1);   /* not yet */
    handshake(&p);
    assert_int_equal(p.server.failed + p.client.failed, 0);
    assert_true(dtls_session_established(p.server.s));
    assert_true(dtls_session_established(p.client.s));

    assert_int_equal(dtls_session_srtp_keys(p.server.s, &ks), 0);
    assert_int_equal(dtls_session_srtp_keys(p.client.s, &kc), 0);
    /* Both offer both: the server's first choice, GCM (RFC 7714). */
    assert_int_equal(ks.profile, DTLS_SRTP_AEAD_AES_128_GCM);
    assert_int_equal(kc.profile, DTLS_SRTP_AEAD_AES_128_GCM);
    assert_int_equal(ks.salt_len, DTLS_SRTP_GCM_SALT_LEN);
    /* The same export on both ends: the client write key is what the
     * server reads with, and the other way round. */
    assert_memory_equal(ks.client_key, kc.client_key, DTLS_SRTP_KEY_LEN);
    assert_memory_equal(ks.client_salt, kc.client_salt, DTLS_SRTP_SALT_LEN);
    assert_memory_equal(ks.server_key, kc.server_key, DTLS_SRTP_KEY_LEN);
    assert_memory_equal(ks.server_salt, kc.server_salt, DTLS_SRTP_SALT_LEN);
    assert_memory_not_equal(ks.client_key, ks.server_key, DTLS_SRTP_KEY_LEN);
    assert_false(all_zero(ks.client_key, DTLS_SRTP_KEY_LEN));
    assert_false(all_zero(ks.server_salt, DTLS_SRTP_SALT_LEN));

    /* Every datagram of the flights fit the MTU. */
    assert_true(p.server.out.max_len <= DTLS_MTU);
    assert_true(p.client.out.max_len <= DTLS_MTU);
    assert_true(p.server.out.max_len > 0);
    /* Done: no retransmission timer left on the client. */
    assert_int_equal(dtls_session_timeout_ms(p.client.s), -1);
    pair_close(&p);
}

static void test_fingerprint_mismatch_client_side(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 0, true, false);
    handshake(&p);
    assert_int_equal(p.client.failed, 1);
    assert_string_equal(p.client.why, "fingerprint mismatch");
    assert_false(dtls_session_established(p.client.s));
    /* The alert the client sent ends the server too. */
    deliver(&p.client, &p.server);
    assert_false(dtls_session_established(p.server.s));
    assert_int_equal(p.server.failed, 1);
    assert_non_null(strstr(p.server.why, "handshake failed"));
    /* Dead is dead. */
    uint8_t b = 22;
    assert_int_equal(dtls_session_input(p.client.s, &b, 1, &p.client.io, &p.client.why), -1);
    assert_string_equal(p.client.why, "closed");
    pair_close(&p);
}

static void test_fingerprint_mismatch_server_side(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 0, false, true);
    handshake(&p);
    assert_int_equal(p.server.failed, 1);
    assert_string_equal(p.server.why, "fingerprint mismatch");
    assert_false(dtls_session_established(p.server.s));
    struct dtls_srtp_keys k;
    assert_int_equal(dtls_session_srtp_keys(p.server.s, &k), -1);
    pair_close(&p);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* OpenSSL's DTLS timer runs on the real clock, which no test controls: a
 * loaded machine may stop this thread past a deadline at any point. The
 * tests below therefore assert what holds however late they run (a timer
 * never longer than its duration, a due timer retransmitting), and check
 * "not due yet" only when the clock says it surely was not. */
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RFC 6347 §4.2.4: a lost flight is sent again when the timer fires. */
static void test_lost_first_flight_retransmitted(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 40, false, false);
    int64_t started = mono_ms();
    assert_int_equal(dtls_session_start(p.client.s, &p.client.io, &p.client.why), 0);
    assert_true(p.client.out.n >= 1);
    uint8_t hello[1500];
    size_t hello_len = p.client.out.len[0];
    memcpy(hello, p.client.out.pkt[0], hello_len);
    p.client.out.n = 0;                     /* the ClientHello is lost */

    int64_t t = dtls_session_timeout_ms(p.client.s);
    assert_true(t >= 0 && t <= 40);
    /* Before it is due the call does nothing. */
    assert_int_equal(dtls_session_handle_timeout(p.client.s, &p.client.io, &p.client.why), 0);
    if (mono_ms() - started < 40) assert_int_equal(p.client.out.n, 0);

    if (p.client.out.n == 0) {
        sleep_ms(t + 5);
        assert_int_equal(dtls_session_timeout_ms(p.client.s), 0);
        assert_int_equal(dtls_session_handle_timeout(p.client.s, &p.client.io, &p.client.why), 0);
    }
    assert_true(p.client.out.n >= 1);
    assert_int_equal(p.client.out.len[0], hello_len);
    /* The timer doubles for the next try: never more than twice the first. */
    t = dtls_session_timeout_ms(p.client.s);
    assert_true(t >= 0 && t <= 80);

    pump(&p.client, &p.server);
    assert_true(dtls_session_established(p.client.s));
    assert_true(dtls_session_established(p.server.s));
    pair_close(&p);
}

/* The server's last flight lost: the client's retransmission makes the
 * (already established) server send it again. */
static void test_lost_last_flight(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 30, false, false);
    assert_int_equal(dtls_session_start(p.client.s, &p.client.io, &p.client.why), 0);
    deliver(&p.client, &p.server);              /* ClientHello */
    deliver(&p.server, &p.client);              /* ServerHello .. Done */
    deliver(&p.client, &p.server);              /* Certificate .. Finished */
    assert_true(dtls_session_established(p.server.s));
    assert_false(dtls_session_established(p.client.s));
    p.server.out.n = 0;                         /* ChangeCipherSpec, Finished lost */

    int64_t t = dtls_session_timeout_ms(p.client.s);
    assert_true(t >= 0);
    sleep_ms(t + 5);
    assert_int_equal(dtls_session_handle_timeout(p.client.s, &p.client.io, &p.client.why), 0);
    assert_true(p.client.out.n >= 1);
    pump(&p.client, &p.server);
    assert_int_equal(p.server.failed + p.client.failed, 0);
    assert_true(dtls_session_established(p.client.s));
    pair_close(&p);
}

/* A peer that never answers: each timeout sends the ClientHello again
 * and doubles the wait (RFC 6347 §4.2.4.1). OpenSSL gives up after twelve
 * tries ("handshake timed out"); the wait for that is not spent here. */
static void test_backoff(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 20, false, false);
    assert_int_equal(dtls_session_start(p.client.s, &p.client.io, &p.client.why), 0);
    size_t hello_len = p.client.out.len[0];
    for (int i = 0; i < 4; i++) {
        p.client.out.n = 0;
        int64_t t = dtls_session_timeout_ms(p.client.s);
        assert_true(t >= 0 && t <= (int64_t)20 << i); /* the duration doubles; how much is left depends on the clock */
        sleep_ms(t + 1);
        assert_int_equal(dtls_session_handle_timeout(p.client.s, &p.client.io, &p.client.why), 0);
        assert_int_equal(p.client.out.n, 1);
        assert_int_equal(p.client.out.len[0], hello_len);
    }
    pair_close(&p);
}

static void test_send_failure(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 0, false, false);
    p.client.out.refuse = true;
    assert_int_equal(dtls_session_start(p.client.s, &p.client.io, &p.client.why), -1);
    assert_string_equal(p.client.why, "send failed");
    pair_close(&p);
}

/* ---- garbage */

static void test_garbage_refused(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 0, false, false);
    struct side *sv = &p.server;

    /* Not a DTLS content type (RFC 7983): refused, the session lives on. */
    const uint8_t stun[] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
    assert_int_equal(dtls_session_input(sv->s, stun, sizeof(stun), &sv->io, &sv->why), -1);
    assert_string_equal(sv->why, "not DTLS");
    const uint8_t rtp[] = {0x80, 0x60, 0x00, 0x01};
    assert_int_equal(dtls_session_input(sv->s, rtp, sizeof(rtp), &sv->io, &sv->why), -1);
    assert_int_equal(dtls_session_input(sv->s, rtp, 0, &sv->io, &sv->why), 0);

    /* Noise inside the DTLS range: dropped without an answer. */
    srand(12);
    for (int i = 0; i < 200; i++) {
        uint8_t junk[300];
        size_t n = 1 + (size_t)rand() % sizeof(junk);
        for (size_t j = 0; j < n; j++) junk[j] = (uint8_t)rand();
        junk[0] = (uint8_t)(20 + i % 44);
        (void)dtls_session_input(sv->s, junk, n, &sv->io, &sv->why);
    }
    /* A handshake record header with a length past the datagram. */
    const uint8_t cut[] = {0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x00, 0x01};
    (void)dtls_session_input(sv->s, cut, sizeof(cut), &sv->io, &sv->why);
    assert_false(dtls_session_established(sv->s));
    assert_int_equal(sv->out.n, 0);

    /* A real client still gets through. */
    handshake(&p);
    assert_true(dtls_session_established(p.server.s));
    assert_true(dtls_session_established(p.client.s));

    /* And noise after the handshake does not end it. */
    for (int i = 0; i < 50; i++) {
        uint8_t junk[100];
        for (size_t j = 0; j < sizeof(junk); j++) junk[j] = (uint8_t)rand();
        junk[0] = 23;                   /* application data, a wrong MAC */
        junk[1] = 0xfe, junk[2] = 0xfd;
        assert_int_equal(dtls_session_input(sv->s, junk, sizeof(junk), &sv->io, &sv->why), 0);
    }
    assert_true(dtls_session_established(sv->s));
    pair_close(&p);
}

/* A ClientHello cut short or with its body damaged is refused, never
 * answered with a ServerHello. */
static void test_damaged_client_hello(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 0, false, false);
    assert_int_equal(dtls_session_start(p.client.s, &p.client.io, &p.client.why), 0);
    uint8_t hello[1500];
    size_t len = p.client.out.len[0];
    memcpy(hello, p.client.out.pkt[0], len);
    p.client.out.n = 0;

    for (size_t cut = 1; cut < len; cut += 7) {
        struct dtls_session *s = dtls_session_new(p.sctx, DTLS_ROLE_SERVER, (uint8_t[DTLS_FP_LEN]){0});
        struct queue q = {0};
        struct dtls_io io = {&q, q_send};
        const char *why = NULL;
        (void)dtls_session_input(s, hello, cut, &io, &why);
        assert_false(dtls_session_established(s));
        assert_int_equal(q.total, 0);
        dtls_session_free(s);
    }
    /* The handshake body's length field made larger than the record. */
    hello[13 + 1] ^= 0x7f;
    struct queue q = {0};
    struct dtls_io io = {&q, q_send};
    const char *why = NULL;
    int rc = dtls_session_input(p.server.s, hello, len, &io, &why);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(why, "handshake failed"));
    assert_false(dtls_session_established(p.server.s));
    for (int i = 0; i < q.n; i++) assert_int_equal(q.pkt[i][0], 21);      /* an alert at most */
    pair_close(&p);
}

static void test_shutdown(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 0, false, false);
    handshake(&p);
    assert_true(dtls_session_established(p.client.s));
    dtls_session_shutdown(p.client.s, &p.client.io);
    assert_false(dtls_session_established(p.client.s));
    assert_int_equal(p.client.out.n, 1);
    deliver(&p.client, &p.server);
    assert_int_equal(p.server.failed, 1);
    assert_string_equal(p.server.why, "close_notify");
    assert_int_equal(dtls_session_handle_timeout(p.server.s, &p.server.io, &p.server.why), -1);
    assert_string_equal(p.server.why, "closed");
    pair_close(&p);
}

/* A session may outlive its context. */
static void test_session_outlives_context(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 0, false, false);
    dtls_context_free(p.sctx);
    dtls_context_free(p.cctx);
    p.sctx = p.cctx = NULL;
    handshake(&p);
    assert_true(dtls_session_established(p.server.s));
    pair_close(&p);
}

/* Which profile a pair agrees on, and the key split of each: the export
 * is 2 × (16 + salt) bytes, keys first, then salts (RFC 5764 §4.2), so
 * the salts are 14 bytes for CM and 12 for GCM (RFC 7714 §12), with
 * nothing past them. */
static uint16_t agreed(unsigned server, unsigned client, struct dtls_srtp_keys *ks)
{
    struct pair p;
    pair_open_profiles(&p, server, client);
    handshake(&p);
    uint16_t prof = 0;
    if (!p.server.failed && !p.client.failed && dtls_session_established(p.server.s)) {
        struct dtls_srtp_keys kc;
        assert_int_equal(dtls_session_srtp_keys(p.server.s, ks), 0);
        assert_int_equal(dtls_session_srtp_keys(p.client.s, &kc), 0);
        assert_int_equal(ks->profile, kc.profile);
        assert_int_equal(ks->salt_len, kc.salt_len);
        assert_memory_equal(ks->client_key, kc.client_key, DTLS_SRTP_KEY_LEN);
        assert_memory_equal(ks->server_key, kc.server_key, DTLS_SRTP_KEY_LEN);
        assert_memory_equal(ks->client_salt, kc.client_salt, DTLS_SRTP_SALT_LEN);
        assert_memory_equal(ks->server_salt, kc.server_salt, DTLS_SRTP_SALT_LEN);
        prof = ks->profile;
    } else {
        assert_string_equal(p.server.failed ? p.server.why : p.client.why, "no SRTP profile agreed");
    }
    pair_close(&p);
    return prof;
}

static void test_profile_selection(void **state)
{
    (void)state;
    const unsigned both = DTLS_PROFILE_CM | DTLS_PROFILE_GCM;
    struct dtls_srtp_keys k;
    assert_int_equal(agreed(both, DTLS_PROFILE_CM, &k), DTLS_SRTP_AES128_CM_SHA1_80);   /* a CM-only peer */
    assert_int_equal(k.salt_len, 14);
    assert_false(all_zero(k.client_salt + 12, 2));
    assert_int_equal(agreed(both, DTLS_PROFILE_GCM, &k), DTLS_SRTP_AEAD_AES_128_GCM);   /* a GCM-only peer */
    assert_int_equal(k.salt_len, 12);
    assert_true(all_zero(k.client_salt + 12, 2));
    assert_true(all_zero(k.server_salt + 12, 2));
    assert_false(all_zero(k.server_salt, 12));
    assert_memory_not_equal(k.client_salt, k.server_salt, 12);
    assert_int_equal(agreed(DTLS_PROFILE_CM, both, &k), DTLS_SRTP_AES128_CM_SHA1_80);   /* a CM-only server */
    assert_int_equal(agreed(both, both, &k), DTLS_SRTP_AEAD_AES_128_GCM);
    assert_int_equal(agreed(DTLS_PROFILE_GCM, DTLS_PROFILE_CM, &k), 0);                 /* nothing in common */

    char err[200];
    struct dtls_context *c = dtls_context_new(0, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(dtls_context_set_profiles(c, 0), -1);
    assert_int_equal(dtls_context_set_profiles(c, 4), -1);
    dtls_context_free(c);
    assert_int_equal(dtls_srtp_salt_len(DTLS_SRTP_AES128_CM_SHA1_80), 14);
    assert_int_equal(dtls_srtp_salt_len(DTLS_SRTP_AEAD_AES_128_GCM), 12);
    assert_int_equal(dtls_srtp_salt_len(0x0008), 0);
    assert_string_equal(dtls_srtp_profile_name(DTLS_SRTP_AEAD_AES_128_GCM), "AEAD_AES_128_GCM");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprint_format),
        cmocka_unit_test(test_fingerprint_parse),
        cmocka_unit_test(test_handshake_and_keys),
        cmocka_unit_test(test_profile_selection),
        cmocka_unit_test(test_fingerprint_mismatch_client_side),
        cmocka_unit_test(test_fingerprint_mismatch_server_side),
        cmocka_unit_test(test_lost_first_flight_retransmitted),
        cmocka_unit_test(test_lost_last_flight),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_send_failure),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_damaged_client_hello),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_session_outlives_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
