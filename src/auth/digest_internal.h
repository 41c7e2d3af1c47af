/* digest_internal.h — pieces shared by digest.c (parsing, hashing, client)
 * and digest_server.c (nonces, replay table, verification). Not for other
 * modules: use digest.h. */
#ifndef CASCADE_AUTH_DIGEST_INTERNAL_H
#define CASCADE_AUTH_DIGEST_INTERNAL_H

/* OpenSSL's one-algorithm hash API (MD5_*, SHA256_*): deprecated in 3.0 in
 * favour of EVP, which costs a provider dispatch, a context reset and a
 * cleanse on every Init/Final — more than hashing a 60-byte digest input.
 * The digest and nonce paths hash a few short strings per request, so they
 * use the direct API (the same assembler underneath, SHA-NI included). */
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED
#endif
#include <openssl/md5.h>
#include <openssl/sha.h>

#include "auth/digest.h"

/* The running hash of one digest computation (MD5 or SHA-256). */
struct digest_hasher {
    union {
        MD5_CTX md5;
        SHA256_CTX sha256;
    } c;
    bool is_sha256;
};

int digest_hasher_init(struct digest_hasher *h);
void digest_hasher_free(struct digest_hasher *h);

/* HMAC-SHA256 (RFC 2104) with the key's inner and outer blocks hashed once:
 * a MAC is then two SHA-256 finals over short input, no allocation. */
struct digest_hmac {
    SHA256_CTX inner, outer;
};

void digest_hmac_init(struct digest_hmac *m, const void *key, size_t key_len);
/* HMAC of a then b (either may be empty) into out. */
void digest_hmac2(const struct digest_hmac *m, const void *a, size_t a_len, const void *b, size_t b_len,
                  uint8_t out[SHA256_DIGEST_LENGTH]);
/* SHA-256 of a then b into out. */
void digest_sha256_2(const void *a, size_t a_len, const void *b, size_t b_len, uint8_t out[SHA256_DIGEST_LENGTH]);
void digest_hmac_clear(struct digest_hmac *m);

/* Lowercases a hex digest of the algorithm's length into out (NUL-terminated).
 * -1 when the length is wrong or a character is not hex. */
int digest_hex_normalize(enum auth_algorithm alg, str_t hex, char out[AUTH_HEX_MAX + 1]);

/* request-digest of RFC 7616 §3.4.1 from a normalized hex HA1 (of the base
 * algorithm): handles -sess (§3.4.2) and the form without qop (RFC 2617
 * §3.2.2.1). out gets NUL-terminated lowercase hex. 0 or -1 on crypto failure. */
int digest_response(struct digest_hasher *h, enum auth_algorithm alg, const char *ha1_hex, str_t nonce,
                    bool qop, str_t nc, str_t cnonce, str_t method, str_t uri, char out[AUTH_HEX_MAX + 1]);

/* Appends s as a quoted-string, escaping '"' and '\' (RFC 3261 §25.1). */
void digest_append_quoted(sbuf_t *out, str_t s);

/* true when s can go inside a quoted-string we write: no control characters. */
bool digest_printable(str_t s);

#endif
