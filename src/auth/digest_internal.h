/* digest_internal.h — pieces shared by digest.c (parsing, hashing, client)
 * and digest_server.c (nonces, replay table, verification). Not for other
 * modules: use digest.h. */
#ifndef CASCADE_AUTH_DIGEST_INTERNAL_H
#define CASCADE_AUTH_DIGEST_INTERNAL_H

#include <openssl/evp.h>

#include "auth/digest.h"

/* Hash contexts fetched once (OpenSSL 3 explicit fetch: implicit fetching on
 * every EVP_DigestInit_ex is measurably slower on the verify path). */
struct digest_hasher {
    EVP_MD_CTX *ctx;
    EVP_MD *md5;
    EVP_MD *sha256;
};

int digest_hasher_init(struct digest_hasher *h);
void digest_hasher_free(struct digest_hasher *h);

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
