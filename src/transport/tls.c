/* tls.c — TLS sessions on memory BIOs and the reloadable context they are
 * made from (see tls.h).
 *
 * A session is one SSL with two memory BIOs: ciphertext from the socket goes
 * into rbio, what OpenSSL wants on the wire is drained from wbio after every
 * call and handed to io->send. Nothing here blocks and nothing here owns a
 * socket. Plaintext written before the handshake completes is kept in the
 * session (at most TLS_MAX_PENDING bytes) and encrypted the moment the
 * handshake finishes.
 *
 * Failure reasons are short strings for the connection's log line; those
 * carrying OpenSSL's words live in a per-thread buffer, valid until the next
 * failure on the same thread (so they outlive the session). */
#include "transport/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Forward-secret key exchange only (ECDHE) when [tls] ciphers is empty; TLS
 * 1.3 suites are all forward-secret already. */
#define TLS_DEFAULT_CIPHERS "ECDHE:!aNULL:!eNULL"

struct tls_context {
    struct tls_config cfg;
    SSL_CTX *server;            /* NULL: no certificate, cannot serve */
    SSL_CTX *client;
};

struct tls_session {
    SSL *ssl;                   /* holds a reference to its SSL_CTX */
    BIO *rbio, *wbio;           /* owned by ssl */
    bool server;
    bool seen_first;            /* the first input byte was checked */
    bool established;
    bool dead;                  /* failed or shut down: every call fails */
    unsigned char *pending;     /* plaintext written before the handshake */
    size_t pending_len, pending_cap;
};

static _Thread_local char why_buf[192];

/* ---- errors */

/* OpenSSL's reason for the last error on this thread, or a fallback. */
static const char *ssl_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : fallback;
}

/* "what: <openssl reason>" into the per-thread buffer; clears the queue. */
static const char *ssl_why(const char *what, const struct tls_session *s)
{
    const char *r = ssl_reason("unknown error");
    long v = s ? SSL_get_verify_result(s->ssl) : X509_V_OK;
    if (s && v != X509_V_OK && !strcmp(r, "certificate verify failed"))
        snprintf(why_buf, sizeof(why_buf), "%s: %s (%s)", what, r, X509_verify_cert_error_string(v));
    else
        snprintf(why_buf, sizeof(why_buf), "%s: %s", what, r);
    ERR_clear_error();
    return why_buf;
}

static int fail(struct tls_session *s, const char **why, const char *reason)
{
    s->dead = true;
    if (why) *why = reason;
    return -1;
}

/* ---- context */

/* A file the daemon must read: a clear errno reason before OpenSSL's. */
static int check_readable(const char *what, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "[tls] %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

static int load_identity(SSL_CTX *c, const struct tls_config *cfg, char *err, size_t errcap)
{
    if (check_readable("cert", cfg->cert, err, errcap) || check_readable("key", cfg->key, err, errcap)) return -1;
    if (SSL_CTX_use_certificate_chain_file(c, cfg->cert) != 1) {
        snprintf(err, errcap, "[tls] cert %s: %s", cfg->cert, ssl_reason("not a PEM certificate"));
        return -1;
    }
    /* OpenSSL checks the key against the certificate as it loads it. */
    if (SSL_CTX_use_PrivateKey_file(c, cfg->key, SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
        snprintf(err, errcap, "[tls] key %s: %s", cfg->key, ssl_reason("not a PEM private key"));
        return -1;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        snprintf(err, errcap, "[tls] key %s does not match cert %s", cfg->key, cfg->cert);
        return -1;
    }
    return 0;
}

/* Trust anchors: [tls] ca (a file, or a directory of hashed certificates),
 * else the system's default paths. */
static int load_trust(SSL_CTX *c, const struct tls_config *cfg, bool server, char *err, size_t errcap)
{
    if (!cfg->ca[0]) {
        if (SSL_CTX_set_default_verify_paths(c) == 1) return 0;
        snprintf(err, errcap, "[tls] system CA store: %s", ssl_reason("cannot be loaded"));
        return -1;
    }
    struct stat st;
    if (stat(cfg->ca, &st) < 0) {
        snprintf(err, errcap, "[tls] ca %s: %s", cfg->ca, strerror(errno));
        return -1;
    }
    bool dir = S_ISDIR(st.st_mode);
    if (!dir && check_readable("ca", cfg->ca, err, errcap)) return -1;
    if (SSL_CTX_load_verify_locations(c, dir ? NULL : cfg->ca, dir ? cfg->ca : NULL) != 1) {
        snprintf(err, errcap, "[tls] ca %s: %s", cfg->ca, ssl_reason("no certificate in it"));
        return -1;
    }
    if (server && !dir) {
        /* Tells clients which CAs we accept (the CertificateRequest). */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca);
        if (names) SSL_CTX_set_client_CA_list(c, names);
    }
    return 0;
}

static SSL_CTX *ctx_build(const struct tls_config *cfg, bool server, char *err, size_t errcap)
{
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c) {
        snprintf(err, errcap, "[tls] %s", ssl_reason("out of memory"));
        return NULL;
    }
    bool v13 = cfg->min_version == TLS_MIN_1_3 || cfg->min_version == 13;
    SSL_CTX_set_min_proto_version(c, v13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    /* Idle connections give their record buffers back (many idle phones). */
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    const char *ciphers = cfg->ciphers[0] ? cfg->ciphers : TLS_DEFAULT_CIPHERS;
    if (SSL_CTX_set_cipher_list(c, ciphers) != 1) {
        snprintf(err, errcap, "[tls] ciphers '%s': %s", ciphers, ssl_reason("no cipher matches"));
        goto fail;
    }
    if (cfg->ciphersuites[0] && SSL_CTX_set_ciphersuites(c, cfg->ciphersuites) != 1) {
        snprintf(err, errcap, "[tls] ciphersuites '%s': %s", cfg->ciphersuites, ssl_reason("no suite matches"));
        goto fail;
    }
    if (cfg->cert[0] && load_identity(c, cfg, err, errcap)) goto fail;
    bool verify = server ? cfg->verify_peer : cfg->verify_server;
    if (verify && load_trust(c, cfg, server, err, errcap)) goto fail;
    if (server) {
        SSL_CTX_set_verify(c, verify ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE, NULL);
        /* Resumed sessions of a verified client need an id context. */
        static const unsigned char sid[] = "cascade";
        SSL_CTX_set_session_id_context(c, sid, sizeof(sid) - 1);
    } else {
        SSL_CTX_set_verify(c, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    }
    ERR_clear_error();
    return c;
fail:
    ERR_clear_error();
    SSL_CTX_free(c);
    return NULL;
}

/* Both SSL_CTXs from cfg, or neither. */
static int ctx_build_pair(const struct tls_config *cfg, SSL_CTX **server, SSL_CTX **client, char *err,
                          size_t errcap)
{
    *server = *client = NULL;
    if (!cfg->cert[0] != !cfg->key[0]) {
        snprintf(err, errcap, "[tls] cert and key go together: set both or neither");
        return -1;
    }
    if (cfg->min_version != TLS_MIN_1_2 && cfg->min_version != TLS_MIN_1_3 && cfg->min_version != 12 &&
        cfg->min_version != 13) {
        snprintf(err, errcap, "[tls] min_version: unknown value %d", cfg->min_version);
        return -1;
    }
    if (cfg->cert[0] && !(*server = ctx_build(cfg, true, err, errcap))) return -1;
    if (!(*client = ctx_build(cfg, false, err, errcap))) {
        SSL_CTX_free(*server);
        *server = NULL;
        return -1;
    }
    return 0;
}

struct tls_context *tls_context_new(const struct tls_config *cfg, char *err, size_t errcap)
{
    struct tls_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        snprintf(err, errcap, "[tls] out of memory");
        return NULL;
    }
    if (ctx_build_pair(cfg, &ctx->server, &ctx->client, err, errcap)) {
        free(ctx);
        return NULL;
    }
    ctx->cfg = *cfg;
    return ctx;
}

int tls_context_reload(struct tls_context *ctx, const struct tls_config *cfg, char *err, size_t errcap)
{
    SSL_CTX *server, *client;
    if (ctx_build_pair(cfg, &server, &client, err, errcap)) return -1;
    /* Open sessions hold their own references to the old SSL_CTXs. */
    SSL_CTX_free(ctx->server);
    SSL_CTX_free(ctx->client);
    ctx->server = server;
    ctx->client = client;
    ctx->cfg = *cfg;
    return 0;
}

void tls_context_free(struct tls_context *ctx)
{
    if (!ctx) return;
    SSL_CTX_free(ctx->server);
    SSL_CTX_free(ctx->client);
    free(ctx);
}

bool tls_context_can_serve(const struct tls_context *ctx)
{
    return ctx && ctx->server;
}

const struct tls_config *tls_context_config(const struct tls_context *ctx)
{
    return &ctx->cfg;
}

/* ---- sessions */

static struct tls_session *session_new(SSL_CTX *c, bool server)
{
    struct tls_session *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->server = server;
    s->ssl = SSL_new(c);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (!s->ssl || !s->rbio || !s->wbio) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        SSL_free(s->ssl);
        free(s);
        ERR_clear_error();
        return NULL;
    }
    /* An empty BIO means "more later", not end of file. */
    BIO_set_mem_eof_return(s->rbio, -1);
    BIO_set_mem_eof_return(s->wbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    if (server) SSL_set_accept_state(s->ssl);
    else SSL_set_connect_state(s->ssl);
    return s;
}

struct tls_session *tls_session_server(struct tls_context *ctx)
{
    if (!tls_context_can_serve(ctx)) return NULL;
    return session_new(ctx->server, true);
}

/* A numeric address (IPv4, IPv6, or [IPv6]) into buf without brackets. */
static bool numeric_host(const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name);
    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
        if (n - 2 >= cap) return false;
        memcpy(buf, name + 1, n - 2);
        buf[n - 2] = '\0';
    } else {
        if (n >= cap) return false;
        memcpy(buf, name, n + 1);
    }
    unsigned char a[16];
    return inet_pton(AF_INET, buf, a) == 1 || inet_pton(AF_INET6, buf, a) == 1;
}

struct tls_session *tls_session_client(struct tls_context *ctx, const char *server_name)
{
    struct tls_session *s = session_new(ctx->client, false);
    if (!s || !server_name || !server_name[0]) return s;
    char ip[64];
    int ok;
    if (numeric_host(server_name, ip, sizeof(ip))) {
        /* RFC 6066 §3: no SNI for a literal address; its iPAddress SAN is checked. */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), ip);
    } else {
        SSL_set_hostflags(s->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set_tlsext_host_name(s->ssl, server_name) == 1 && SSL_set1_host(s->ssl, server_name) == 1;
    }
    if (ok != 1) {
        tls_session_free(s);
        ERR_clear_error();
        return NULL;
    }
    return s;
}

void tls_session_free(struct tls_session *s)
{
    if (!s) return;
    SSL_free(s->ssl);           /* frees both BIOs */
    free(s->pending);
    free(s);
}

/* Hands everything OpenSSL wrote to wbio to the wire. */
static int flush_out(struct tls_session *s, const struct tls_io *io, const char **why)
{
    unsigned char buf[16384];
    while (BIO_ctrl_pending(s->wbio) > 0) {
        int n = BIO_read(s->wbio, buf, sizeof(buf));
        if (n <= 0) break;
        if (io->send(io->user, buf, (size_t)n) < 0) return fail(s, why, "send failed");
    }
    return 0;
}

static int encrypt_out(struct tls_session *s, const void *data, size_t len, const struct tls_io *io,
                       const char **why)
{
    size_t written;
    ERR_clear_error();
    /* A memory BIO never blocks, so the whole buffer goes in one call. */
    if (len && SSL_write_ex(s->ssl, data, len, &written) != 1) return fail(s, why, ssl_why("TLS write failed", s));
    return flush_out(s, io, why);
}

/* Drives the handshake; on completion sends what was written meanwhile. */
static int handshake(struct tls_session *s, const struct tls_io *io, const char **why)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r != 1) {
        int e = SSL_get_error(s->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return flush_out(s, io, why);
        const char *reason = ssl_why("handshake failed", s);
        flush_out(s, io, NULL);             /* the alert, best effort */
        return fail(s, why, reason);
    }
    s->established = true;
    if (flush_out(s, io, why)) return -1;
    if (s->pending_len) {
        unsigned char *p = s->pending;
        size_t n = s->pending_len;
        s->pending = NULL;
        s->pending_len = s->pending_cap = 0;
        int rc = encrypt_out(s, p, n, io, why);
        free(p);
        if (rc) return -1;
    }
    return 0;
}

int tls_session_start(struct tls_session *s, const struct tls_io *io, const char **why)
{
    if (s->dead) return fail(s, why, "closed");
    if (s->established) return 0;
    return handshake(s, io, why);
}

/* Plaintext waiting in OpenSSL, to io->recv. */
static int read_plain(struct tls_session *s, const struct tls_io *io, const char **why)
{
    unsigned char buf[16384];
    for (;;) {
        size_t n;
        ERR_clear_error();
        if (SSL_read_ex(s->ssl, buf, sizeof(buf), &n) == 1) {
            if (io->recv(io->user, buf, n) < 0) return fail(s, why, "closed");
            continue;
        }
        int e = SSL_get_error(s->ssl, 0);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return flush_out(s, io, why);
        if (e == SSL_ERROR_ZERO_RETURN) {
            flush_out(s, io, NULL);
            return fail(s, why, "close_notify");
        }
        const char *reason = ssl_why("TLS error", s);
        flush_out(s, io, NULL);
        return fail(s, why, reason);
    }
}

int tls_session_input(struct tls_session *s, const void *data, size_t len, const struct tls_io *io,
                      const char **why)
{
    if (s->dead) return fail(s, why, "closed");
    if (!len) return 0;
    if (!s->seen_first) {
        /* A handshake record (22) opens every TLS connection; anything else
         * (a plain SIP request on the TLS port) is refused without asking
         * OpenSSL to make sense of it. A client may also get an alert (21). */
        unsigned char b = *(const unsigned char *)data;
        if (b != 0x16 && (s->server || b != 0x15)) return fail(s, why, "not TLS");
        s->seen_first = true;
    }
    if (len > INT_MAX || BIO_write(s->rbio, data, (int)len) != (int)len) return fail(s, why, "out of memory");
    if (!s->established) {
        if (handshake(s, io, why)) return -1;
        if (!s->established) return 0;
    }
    return read_plain(s, io, why);
}

int tls_session_write(struct tls_session *s, const void *data, size_t len, const struct tls_io *io,
                      const char **why)
{
    if (s->dead) return fail(s, why, "closed");
    if (s->established) return encrypt_out(s, data, len, io, why);
    if (len > TLS_MAX_PENDING - s->pending_len) return fail(s, why, "too much data before the handshake");
    if (s->pending_len + len > s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap : 4096;
        while (cap < s->pending_len + len) cap *= 2;
        unsigned char *p = realloc(s->pending, cap);
        if (!p) return fail(s, why, "out of memory");
        s->pending = p;
        s->pending_cap = cap;
    }
    memcpy(s->pending + s->pending_len, data, len);
    s->pending_len += len;
    return 0;
}

size_t tls_session_pending(const struct tls_session *s)
{
    return s->pending_len;
}

bool tls_session_established(const struct tls_session *s)
{
    return s->established && !s->dead;
}

void tls_session_shutdown(struct tls_session *s, const struct tls_io *io)
{
    if (s->established && !s->dead) {
        ERR_clear_error();
        SSL_shutdown(s->ssl);
        flush_out(s, io, NULL);
        ERR_clear_error();
    }
    s->dead = true;
}

void tls_session_describe(const struct tls_session *s, char *buf, size_t cap)
{
    if (!s->established) {
        snprintf(buf, cap, "TLS handshake not complete");
        return;
    }
    int n = snprintf(buf, cap, "%s %s", SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl));
    X509 *peer = SSL_get0_peer_certificate(s->ssl);
    char cn[128];
    if (peer && n >= 0 && (size_t)n < cap &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn)) > 0)
        snprintf(buf + n, cap - (size_t)n, " peer CN=%s", cn);
}
