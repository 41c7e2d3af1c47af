/* tls.h — TLS for the stream transports (RFC 3261 §26.2, RFC 5630) with
 * OpenSSL 3 on memory BIOs: no socket is ever handed to OpenSSL, so nothing
 * blocks the loop. The connection code reads ciphertext from its socket and
 * feeds it in; the session hands back plaintext and ciphertext to write
 * through a small I/O interface given on each call.
 *
 * A tls_context holds what sessions are made from: a server SSL_CTX (when a
 * certificate is configured) and a client SSL_CTX (always; verifying the
 * server by the name or address we connect to, with [tls] ca or the system
 * store). tls_context_reload() builds new SSL_CTXs from the files (SIGHUP):
 * new sessions use them, sessions already open keep theirs (OpenSSL counts
 * the references), so no connection drops; when the new files are bad the
 * old ones stay and the error is returned.
 *
 * Thread use: one context and its sessions per loop thread. */
#ifndef CASCADE_TRANSPORT_TLS_H
#define CASCADE_TRANSPORT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The [tls] section (see tls_config.h for the keys). Paths are files; ca may
 * be a file or a directory of hashed certificates; empty: unset. */
struct tls_config {
    char cert[256];             /* PEM chain: ours first */
    char key[256];              /* PEM private key */
    char ca[256];               /* trust anchors for peers; empty: the system store */
    bool verify_peer;           /* server: require a client certificate the ca trusts */
    bool verify_server;         /* client: check the server's certificate and name (default yes) */
    int min_version;            /* TLS_MIN_1_2 (default) or TLS_MIN_1_3; 12 and 13 are taken too */
    char ciphers[512];          /* TLS 1.2 cipher list (OpenSSL syntax); empty: OpenSSL's ECDHE ones */
    char ciphersuites[256];     /* TLS 1.3 suites; empty: OpenSSL's default */
    uint32_t handshake_timeout_ms; /* a handshake must finish within this; 0: 10000 */
};

/* [tls] min_version "1.2" | "1.3" (the index in the key's values). */
enum { TLS_MIN_1_2 = 0, TLS_MIN_1_3 = 1 };

/* Plaintext a session keeps while its handshake runs; more fails the write. */
#define TLS_MAX_PENDING (256u * 1024u)

struct tls_context;
struct tls_session;

/* Builds a context. Without cert/key the context can only be a client
 * (tls_context_can_serve() false). NULL on error with a line in err naming
 * the file and OpenSSL's reason. */
struct tls_context *tls_context_new(const struct tls_config *cfg, char *err, size_t errcap);
/* Re-reads the files (SIGHUP). 0, or -1 with err set (the old SSL_CTXs stay). */
int tls_context_reload(struct tls_context *ctx, const struct tls_config *cfg, char *err, size_t errcap);
/* Frees the context; sessions still open keep working until freed. */
void tls_context_free(struct tls_context *ctx);
bool tls_context_can_serve(const struct tls_context *ctx);
const struct tls_config *tls_context_config(const struct tls_context *ctx);

/* How a session moves bytes: given on each call, so the session holds no
 * pointer back to the connection. */
struct tls_io {
    void *user;
    /* Ciphertext for the wire. 0, or a negative error (the call then fails). */
    int (*send)(void *user, const void *data, size_t len);
    /* Plaintext received, in order. 0 to go on, negative to stop (the
     * connection is closing; the call returns -1 with *why "closed"). */
    int (*recv)(void *user, const void *data, size_t len);
};

/* A server session for an accepted connection; NULL when the context cannot
 * serve or on no memory. */
struct tls_session *tls_session_server(struct tls_context *ctx);
/* A client session. server_name: the host we connect to — a DNS name is sent
 * as SNI and checked against the certificate's names; a numeric address is
 * checked against its IP addresses (no SNI); "[::1]" is taken as ::1.
 * NULL: no name check (meant for verify_server off; with it on the chain is
 * still verified). NULL on no memory. */
struct tls_session *tls_session_client(struct tls_context *ctx, const char *server_name);
void tls_session_free(struct tls_session *s);

/* Client: sends the ClientHello (a server session waits for input; calling
 * this on one is harmless). 0, or -1 with *why. */
int tls_session_start(struct tls_session *s, const struct tls_io *io, const char **why);
/* Ciphertext from the socket: drives the handshake, hands plaintext to
 * io->recv, writes handshake records and alerts through io->send. 0, or -1
 * when the connection must close (*why: a short static reason for the log,
 * e.g. "not TLS", "handshake failed: certificate verify failed (hostname
 * mismatch)", "close_notify"). *why stays valid until the next failing call
 * on this thread, also after tls_session_free(). After a failure every call
 * fails ("closed"). */
int tls_session_input(struct tls_session *s, const void *data, size_t len, const struct tls_io *io,
                      const char **why);
/* Encrypts plaintext and sends it; before the handshake is done it is kept
 * (at most TLS_MAX_PENDING bytes, see tls_session_pending) and sent once
 * the handshake completes. 0, or -1 with *why. */
int tls_session_write(struct tls_session *s, const void *data, size_t len, const struct tls_io *io,
                      const char **why);
/* Plaintext bytes kept until the handshake completes. */
size_t tls_session_pending(const struct tls_session *s);
bool tls_session_established(const struct tls_session *s);
/* Sends close_notify (best effort). */
void tls_session_shutdown(struct tls_session *s, const struct tls_io *io);
/* For logs after the handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384" and the
 * peer certificate's subject CN when there is one. */
void tls_session_describe(const struct tls_session *s, char *buf, size_t cap);

#endif
