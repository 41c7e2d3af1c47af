/* dtls.c — DTLS-SRTP endpoints on OpenSSL 3 (see dtls.h).
 *
 * A session is one SSL. Received datagrams go into a memory BIO; outgoing
 * records go through a small BIO of our own that hands each write straight
 * to io->send. A memory BIO on the write side would merge the datagrams of a
 * flight into one byte stream and lose their boundaries (and the MTU); one
 * BIO write from OpenSSL's DTLS code is one datagram, so forwarding writes
 * one by one keeps both. The io is only known during a call, so the session
 * holds it for the length of the call and the BIO refuses writes outside.
 *
 * The peer's certificate is checked by a certificate-verify callback that
 * replaces OpenSSL's chain building: only the SHA-256 of the leaf's DER is
 * compared with the SDP fingerprint, in constant time.
 *
 * The server sends no HelloVerifyRequest (RFC 6347 §4.2.1 cookie): the
 * transport is meant to hand it datagrams only from an address that passed
 * an ICE connectivity check, which already proves the peer receives there. */
#include "media/dtls.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define CERT_DAYS 30
#define MAX_TIMEOUT_US 60000000u        /* RFC 6347 §4.2.4.1: at least 60 s */
#define SRTP_LABEL "EXTRACTOR-dtls_srtp"

struct dtls_context {
    SSL_CTX *ssl_ctx;
    uint32_t initial_timeout_ms;
    char fingerprint[DTLS_FP_ATTR_LEN + 1];
};

struct dtls_session {
    SSL *ssl;
    BIO *rbio;                  /* owned by ssl */
    const struct dtls_io *io;   /* set only during a call */
    uint8_t peer_fp[DTLS_FP_LEN];
    uint32_t initial_timeout_ms;
    bool client;
    bool established;
    bool dead;
    bool send_failed;           /* io->send refused a datagram */
    bool fp_mismatch;           /* the verify callback refused the peer */
    struct dtls_srtp_keys keys;
};

static _Thread_local char why_buf[192];

/* ---- errors */

/* "what: <OpenSSL's reason>" in the per-thread buffer; clears the queue.
 * Some refusals of a malformed handshake leave no reason in the queue. */
static const char *ssl_why(const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(why_buf, sizeof(why_buf), "%s: %s", what, r ? r : "refused by OpenSSL, no reason given");
    ERR_clear_error();
    return why_buf;
}

static int fail(struct dtls_session *s, const char **why, const char *reason)
{
    s->dead = true;
    if (why) *why = reason;
    return -1;
}

/* ---- the datagram write BIO */

static int out_write(BIO *b, const char *data, int len)
{
    struct dtls_session *s = BIO_get_data(b);
    if (!s || !s->io || s->send_failed) return -1;
    if (s->io->send(s->io->user, data, (size_t)len) < 0) {
        s->send_failed = true;
        return -1;
    }
    return len;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    /* Every write already left, so a flush always succeeds; everything else
     * (MTU queries, peer address) has no meaning here: the MTU is set. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int out_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *out_method;
static pthread_once_t out_once = PTHREAD_ONCE_INIT;

/* Made once per process and never freed: BIOs of sessions that outlive
 * their context still point at it. */
static void out_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cascade dtls out");
    if (!m) return;
    BIO_meth_set_write(m, out_write);
    BIO_meth_set_ctrl(m, out_ctrl);
    BIO_meth_set_create(m, out_create);
    out_method = m;
}

/* ---- identity */

static X509 *make_cert(EVP_PKEY *key)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    X509_NAME *name = X509_NAME_new();
    bool ok = x && bn && name && X509_set_version(x, 2) &&
              /* A random serial: two instances never present the same one. */
              BN_rand(bn, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
              BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
              /* A day back: a peer with a slow clock still takes it. */
              X509_gmtime_adj(X509_getm_notBefore(x), -86400L) &&
              X509_gmtime_adj(X509_getm_notAfter(x), 86400L * CERT_DAYS) &&
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"cascade", -1, -1, 0) &&
              X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) && X509_set_pubkey(x, key) &&
              X509_sign(x, key, EVP_sha256()) > 0;
    BN_free(bn);
    X509_NAME_free(name);
    if (ok) return x;
    X509_free(x);
    return NULL;
}

static void format_fingerprint(const uint8_t md[DTLS_FP_LEN], char out[DTLS_FP_ATTR_LEN + 1])
{
    static const char hex[] = "0123456789ABCDEF";
    memcpy(out, "sha-256 ", 8);
    char *p = out + 8;
    for (size_t i = 0; i < DTLS_FP_LEN; i++) {
        if (i) *p++ = ':';
        *p++ = hex[md[i] >> 4];
        *p++ = hex[md[i] & 15];
    }
    *p = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int dtls_fingerprint_parse(const char *value, uint8_t digest[DTLS_FP_LEN])
{
    if (!value || strncasecmp(value, "sha-256", 7) != 0) return -1;
    const char *p = value + 7;
    if (*p != ' ' && *p != '\t') return -1;
    while (*p == ' ' || *p == '\t') p++;
    for (size_t i = 0; i < DTLS_FP_LEN; i++) {
        if (i && *p++ != ':') return -1;
        int hi = hexval(p[0]), lo = hi < 0 ? -1 : hexval(p[1]);
        if (lo < 0) return -1;
        digest[i] = (uint8_t)(hi << 4 | lo);
        p += 2;
    }
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return *p ? -1 : 0;
}

/* ---- peer check and timer */

static int verify_peer(X509_STORE_CTX *xs, void *arg)
{
    (void)arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct dtls_session *s = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!s || !leaf || X509_digest(leaf, EVP_sha256(), md, &n) != 1 || n != DTLS_FP_LEN) return 0;
    if (CRYPTO_memcmp(md, s->peer_fp, DTLS_FP_LEN) != 0) {
        s->fp_mismatch = true;
        X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    return 1;
}

/* The next retransmission timeout: our initial value, then doubling. */
static unsigned int next_timeout(SSL *ssl, unsigned int prev_us)
{
    const struct dtls_session *s = SSL_get_app_data(ssl);
    if (!prev_us) return s->initial_timeout_ms * 1000u;
    return prev_us >= MAX_TIMEOUT_US / 2 ? MAX_TIMEOUT_US : prev_us * 2;
}

/* ---- context */

/* OpenSSL's names, our order of preference: AES-GCM does encryption and
 * authentication in one pass (AES-NI and carry-less multiply), where
 * AES128_CM_SHA1_80 runs AES-CTR and then HMAC-SHA1 over the packet. */
#define PROFILES_BOTH "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"

size_t dtls_srtp_salt_len(uint16_t profile)
{
    switch (profile) {
    case DTLS_SRTP_AES128_CM_SHA1_80: return DTLS_SRTP_SALT_LEN;
    case DTLS_SRTP_AEAD_AES_128_GCM: return DTLS_SRTP_GCM_SALT_LEN;
    default: return 0;
    }
}

const char *dtls_srtp_profile_name(uint16_t profile)
{
    switch (profile) {
    case DTLS_SRTP_AES128_CM_SHA1_80: return "AES128_CM_SHA1_80";
    case DTLS_SRTP_AEAD_AES_128_GCM: return "AEAD_AES_128_GCM";
    default: return "unknown";
    }
}

static SSL_CTX *ctx_build(EVP_PKEY *key, X509 *cert, char *err, size_t errcap)
{
    SSL_CTX *c = SSL_CTX_new(DTLS_method());
    if (!c) goto bad;
    /* DTLS 1.0 has no SRTP-capable browser left and weaker suites. */
    if (!SSL_CTX_set_min_proto_version(c, DTLS1_2_VERSION)) goto bad;
    SSL_CTX_set_options(c, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    if (SSL_CTX_set_cipher_list(c, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) goto bad;
    if (SSL_CTX_use_certificate(c, cert) != 1 || SSL_CTX_use_PrivateKey(c, key) != 1 ||
        SSL_CTX_check_private_key(c) != 1)
        goto bad;
    /* Both sides demand the other's certificate: the fingerprint is the
     * only thing tying the DTLS peer to the SDP peer. */
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_cert_verify_callback(c, verify_peer, NULL);
    /* Note the inverted convention: 0 is success here. */
    if (SSL_CTX_set_tlsext_use_srtp(c, PROFILES_BOTH) != 0) goto bad;
    return c;
bad:
    snprintf(err, errcap, "%s", ssl_why("DTLS context"));
    SSL_CTX_free(c);
    return NULL;
}

struct dtls_context *dtls_context_new(uint32_t initial_timeout_ms, char *err, size_t errcap)
{
    pthread_once(&out_once, out_method_init);
    if (!out_method) {
        snprintf(err, errcap, "DTLS context: out of memory");
        return NULL;
    }
    struct dtls_context *ctx = calloc(1, sizeof(*ctx));
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = key ? make_cert(key) : NULL;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!ctx || !cert || X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != DTLS_FP_LEN) {
        snprintf(err, errcap, "%s", ssl_why("DTLS certificate"));
        goto out;
    }
    ctx->ssl_ctx = ctx_build(key, cert, err, errcap);
    if (!ctx->ssl_ctx) goto out;
    ctx->initial_timeout_ms = initial_timeout_ms ? initial_timeout_ms : 1000;
    format_fingerprint(md, ctx->fingerprint);
out:
    /* The SSL_CTX holds its own references. */
    X509_free(cert);
    EVP_PKEY_free(key);
    if (ctx && !ctx->ssl_ctx) {
        free(ctx);
        ctx = NULL;
    }
    return ctx;
}

int dtls_context_set_profiles(struct dtls_context *ctx, unsigned profiles)
{
    const char *list = profiles == (DTLS_PROFILE_CM | DTLS_PROFILE_GCM) ? PROFILES_BOTH
                       : profiles == DTLS_PROFILE_CM                    ? "SRTP_AES128_CM_SHA1_80"
                       : profiles == DTLS_PROFILE_GCM                   ? "SRTP_AEAD_AES_128_GCM"
                                                                        : NULL;
    if (!list) return -1;
    /* Note the inverted convention: 0 is success here. */
    int r = SSL_CTX_set_tlsext_use_srtp(ctx->ssl_ctx, list) == 0 ? 0 : -1;
    ERR_clear_error();
    return r;
}

void dtls_context_free(struct dtls_context *ctx)
{
    if (!ctx) return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

const char *dtls_context_fingerprint(const struct dtls_context *ctx)
{
    return ctx->fingerprint;
}

/* ---- session */

struct dtls_session *dtls_session_new(struct dtls_context *ctx, enum dtls_role role,
                                      const uint8_t peer_fp[DTLS_FP_LEN])
{
    struct dtls_session *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->ssl = SSL_new(ctx->ssl_ctx);
    s->rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(out_method);
    if (!s->ssl || !s->rbio || !wbio) {
        BIO_free(s->rbio);
        BIO_free(wbio);
        SSL_free(s->ssl);
        free(s);
        return NULL;
    }
    BIO_set_data(wbio, s);
    BIO_set_mem_eof_return(s->rbio, -1);      /* empty means "more later" */
    SSL_set_bio(s->ssl, s->rbio, wbio);
    SSL_set_app_data(s->ssl, s);
    memcpy(s->peer_fp, peer_fp, DTLS_FP_LEN);
    s->initial_timeout_ms = ctx->initial_timeout_ms;
    s->client = role == DTLS_ROLE_CLIENT;
    SSL_set_mtu(s->ssl, DTLS_MTU);
    DTLS_set_timer_cb(s->ssl, next_timeout);
    if (s->client) SSL_set_connect_state(s->ssl);
    else SSL_set_accept_state(s->ssl);
    return s;
}

void dtls_session_free(struct dtls_session *s)
{
    if (!s) return;
    SSL_free(s->ssl);           /* frees both BIOs */
    OPENSSL_cleanse(&s->keys, sizeof(s->keys));
    free(s);
}

/* The exported material is client key, server key, client salt, server
 * salt, in that order (RFC 5764 §4.2), 2 × (key + salt) bytes of the
 * profile's lengths: 60 for AES128_CM_SHA1_80, 56 for AEAD_AES_128_GCM
 * (RFC 7714 §12). */
static int export_keys(struct dtls_session *s, uint16_t profile)
{
    size_t sl = dtls_srtp_salt_len(profile);
    uint8_t m[2 * (DTLS_SRTP_KEY_LEN + DTLS_SRTP_SALT_LEN)];
    size_t n = 2 * (DTLS_SRTP_KEY_LEN + sl);
    if (!sl || SSL_export_keying_material(s->ssl, m, n, SRTP_LABEL, strlen(SRTP_LABEL), NULL, 0, 0) != 1) return -1;
    const uint8_t *p = m;
    memset(&s->keys, 0, sizeof(s->keys));
    memcpy(s->keys.client_key, p, DTLS_SRTP_KEY_LEN), p += DTLS_SRTP_KEY_LEN;
    memcpy(s->keys.server_key, p, DTLS_SRTP_KEY_LEN), p += DTLS_SRTP_KEY_LEN;
    memcpy(s->keys.client_salt, p, sl), p += sl;
    memcpy(s->keys.server_salt, p, sl);
    s->keys.profile = profile;
    s->keys.salt_len = (uint8_t)sl;
    OPENSSL_cleanse(m, sizeof(m));
    return 0;
}

static int handshake_failed(struct dtls_session *s, const char **why)
{
    const char *reason = s->send_failed   ? "send failed"
                         : s->fp_mismatch ? "fingerprint mismatch"
                                          : ssl_why("handshake failed");
    ERR_clear_error();
    return fail(s, why, reason);
}

static int handshake(struct dtls_session *s, const char **why)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r != 1) {
        int e = SSL_get_error(s->ssl, r);
        if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && !s->send_failed) return 0;
        return handshake_failed(s, why);
    }
    const SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(s->ssl);
    if (!p || !dtls_srtp_salt_len((uint16_t)p->id)) return fail(s, why, "no SRTP profile agreed");
    if (export_keys(s, (uint16_t)p->id)) return fail(s, why, ssl_why("keying material export failed"));
    s->established = true;
    return 0;
}

/* After the handshake: drops application data, notices close_notify, and
 * lets OpenSSL answer a retransmitted last flight of the peer. */
static int read_after(struct dtls_session *s, const char **why)
{
    uint8_t buf[2048];
    for (;;) {
        size_t n;
        ERR_clear_error();
        if (SSL_read_ex(s->ssl, buf, sizeof(buf), &n) == 1) continue;
        int e = SSL_get_error(s->ssl, 0);
        if (s->send_failed) return fail(s, why, "send failed");
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
        if (e == SSL_ERROR_ZERO_RETURN) return fail(s, why, "close_notify");
        return fail(s, why, ssl_why("DTLS error"));
    }
}

int dtls_session_start(struct dtls_session *s, const struct dtls_io *io, const char **why)
{
    if (s->dead) return fail(s, why, "closed");
    if (!s->client || s->established) return 0;
    s->io = io;
    int rc = handshake(s, why);
    s->io = NULL;
    return rc;
}

int dtls_session_input(struct dtls_session *s, const void *data, size_t len, const struct dtls_io *io,
                       const char **why)
{
    if (s->dead) return fail(s, why, "closed");
    if (!len) return 0;
    /* RFC 7983: a DTLS record's content type is 20..63. Anything else is
     * not ours; refused without killing the session, since anyone can send
     * a stray datagram to the port. */
    uint8_t b = *(const uint8_t *)data;
    if (b < 20 || b > 63 || len > INT_MAX) {
        if (why) *why = "not DTLS";
        return -1;
    }
    if (BIO_write(s->rbio, data, (int)len) != (int)len) return fail(s, why, "out of memory");
    s->io = io;
    int rc = 0;
    if (!s->established) rc = handshake(s, why);
    if (!rc && s->established) rc = read_after(s, why);
    s->io = NULL;
    /* One datagram at a time: a part OpenSSL left (a broken record) must not
     * be glued to the next datagram. */
    (void)BIO_reset(s->rbio);
    return rc;
}

int64_t dtls_session_timeout_ms(struct dtls_session *s)
{
    struct timeval tv;
    if (s->dead || !DTLSv1_get_timeout(s->ssl, &tv)) return -1;
    return (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
}

int dtls_session_handle_timeout(struct dtls_session *s, const struct dtls_io *io, const char **why)
{
    if (s->dead) return fail(s, why, "closed");
    s->io = io;
    ERR_clear_error();
    int r = (int)DTLSv1_handle_timeout(s->ssl);
    s->io = NULL;
    if (s->send_failed) return fail(s, why, "send failed");
    if (r < 0) {
        ERR_clear_error();
        return fail(s, why, "handshake timed out");
    }
    return 0;
}

bool dtls_session_established(const struct dtls_session *s)
{
    return s->established && !s->dead;
}

int dtls_session_srtp_keys(const struct dtls_session *s, struct dtls_srtp_keys *out)
{
    if (!s->established) return -1;
    *out = s->keys;
    return 0;
}

void dtls_session_shutdown(struct dtls_session *s, const struct dtls_io *io)
{
    if (s->dead) return;
    s->io = io;
    ERR_clear_error();
    if (s->established) SSL_shutdown(s->ssl);
    ERR_clear_error();
    s->io = NULL;
    s->dead = true;
}
