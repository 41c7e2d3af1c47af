/* digest.h — HTTP/SIP Digest authentication, server and client side.
 *
 * RFC 2617 (MD5, qop=auth, and the RFC 2069 form without qop), RFC 7616
 * (SHA-256, the -sess variants), RFC 8760 (SHA-256 in SIP), RFC 3261 §22.
 * Everything here works on header VALUES (the text after "Authorization:"),
 * so the module does not depend on the SIP parser.
 *
 * Server (registrar, proxy, GB28181 upper role):
 *   srv = auth_server_new(&cfg);
 *   auth_challenge(srv, realm, AUTH_ALG_MD5, qop, stale, now, &buf);   -> 401 WWW-Authenticate value
 *   auth_parse_credentials(authorization_value, &creds);              -> 400/401 on error
 *   ha1 = lookup(creds.username, creds.realm, auth_algorithm_base(creds.algorithm));
 *   switch (auth_verify(srv, &creds, method, ha1, now)) ...           -> STALE: re-challenge stale=true
 * The caller must also check that creds.uri names the Request-URI (RFC 2617
 * §3.2.2.5) and that creds.realm is one of its realms; it logs refusals with
 * the sender's address (auth_result_name() for the reason).
 *
 * Nonces are stateless (timestamp, flags, salt and an HMAC-SHA256 over them
 * and the realm), so issuing a challenge allocates nothing; only nonces that
 * were answered with qop take a slot in a fixed-size replay table.
 *
 * Client (cascade answering 401/407 to its own requests):
 *   auth_parse_challenge(www_authenticate_value, &ch);
 *   auth_client_answer(&ch, user, password, method, uri, nc, STR_NULL, &buf);
 *
 * An auth_server is not thread-safe: one per worker loop. */
#ifndef CASCADE_AUTH_DIGEST_H
#define CASCADE_AUTH_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"
#include "base/str.h"

enum auth_algorithm {
    AUTH_ALG_MD5 = 0,
    AUTH_ALG_MD5_SESS = 1,
    AUTH_ALG_SHA256 = 2,
    AUTH_ALG_SHA256_SESS = 3,
};
#define AUTH_ALG_COUNT 4
/* Bit for auth_server_config.algorithms. */
#define AUTH_OFFER(alg) (1u << (alg))

/* Limits on what the parsers accept. */
#define AUTH_MAX_HEADER 4096   /* whole header value */
#define AUTH_MAX_PARAMS 32     /* auth-params in one value */
#define AUTH_SCRATCH 1024      /* room for unescaped quoted-strings */
#define AUTH_HEX_MAX 64        /* hex digest length of SHA-256 */

/* "MD5", "MD5-sess", "SHA-256", "SHA-256-sess". */
const char *auth_algorithm_name(enum auth_algorithm alg);
/* 0, or -1 when the name is not a supported algorithm (case-insensitive). */
int auth_algorithm_from_name(str_t name, enum auth_algorithm *out);
/* The algorithm whose HA1 is stored: MD5 for MD5/MD5-sess, SHA-256 for both SHA ones. */
enum auth_algorithm auth_algorithm_base(enum auth_algorithm alg);
/* 32 for MD5 digests, 64 for SHA-256. */
size_t auth_algorithm_hex_len(enum auth_algorithm alg);

/* Hex HA1 = H(user ":" realm ":" password) for storage (RFC 7616 §3.4.2);
 * the -sess variants store the same value as their base. out gets the
 * NUL-terminated lowercase hex. 0, or negative on a crypto failure. */
int auth_ha1(enum auth_algorithm alg, str_t user, str_t realm, str_t password, char out[65]);

/* ---- server ---------------------------------------------------------- */

struct auth_server_config {
    uint32_t nonce_ttl_s;         /* nonce lifetime; 0 -> 300 */
    /* Lifetime of nonces issued without qop (RFC 2069 form, see auth_verify);
     * 0 -> nonce_ttl_s. A shorter value narrows the window in which a
     * captured legacy answer can be replayed. */
    uint32_t legacy_nonce_ttl_s;
    const uint8_t *secret;        /* HMAC key for nonces; NULL -> 32 random bytes */
    size_t secret_len;            /* 16..64 bytes when given */
    unsigned algorithms;          /* AUTH_OFFER() mask; 0 -> MD5 only */
    const char *opaque;           /* sent in every challenge and required back; NULL/"" -> none */
    uint32_t replay_entries;      /* replay table capacity; 0 -> 16384 */
};

struct auth_server;

/* NULL on bad config (logged) or allocation/crypto failure. */
struct auth_server *auth_server_new(const struct auth_server_config *cfg);
void auth_server_free(struct auth_server *srv);

/* Appends a WWW-Authenticate / Proxy-Authenticate header value to out:
 *   Digest realm="…", nonce="…"[, opaque="…"], algorithm=…[, qop="auth"][, stale=true]
 * qop=false gives the RFC 2069 form many GB28181 devices need. now_s is
 * seconds on the clock later given to auth_verify (wall clock when several
 * nodes share a secret; only its low 32 bits go into the nonce). 0; -EINVAL
 * when the algorithm is not offered, is -sess without qop, or the realm is
 * empty, over 256 bytes or holds control characters; -ENOMEM when out
 * failed; -EIO when HMAC failed. */
int auth_challenge(struct auth_server *srv, str_t realm, enum auth_algorithm alg, bool qop, bool stale,
                   uint64_t now_s, sbuf_t *out);

/* Parsed Authorization / Proxy-Authorization value (RFC 3261 §25.1
 * "credentials"). Slices point into the parsed value, or into scratch when a
 * quoted-string held escapes: keep the value alive and do not copy the struct. */
struct auth_credentials {
    str_t username, realm, nonce, uri, response, cnonce, opaque, nc;
    enum auth_algorithm algorithm; /* MD5 when absent (RFC 2617 §3.2.2) */
    bool qop;                      /* qop=auth was given (then cnonce and nc are set) */
    uint32_t nc_value;             /* nc as a number; 0 without qop */
    const char *error;             /* why parsing failed, for the caller's log line */
    size_t scratch_len;
    char scratch[AUTH_SCRATCH];
};

/* 0; -EINVAL for bad syntax, duplicate or missing parameters, bad response
 * or nc format, values over the limits; -ENOTSUP for another scheme
 * (e.g. Basic), an unknown algorithm or qop=auth-int. out->error says why. */
int auth_parse_credentials(str_t value, struct auth_credentials *out);

enum auth_result {
    AUTH_OK = 0,
    AUTH_BAD_RESPONSE,  /* wrong password (or wrong method/uri) */
    AUTH_STALE,         /* nonce expired but the answer was right: re-challenge with stale=true */
    AUTH_BAD_NONCE,     /* not our nonce, tampered, or answered with another algorithm/qop/opaque */
    AUTH_REPLAY,        /* nc already seen for this nonce */
    AUTH_MALFORMED,     /* credentials or ha1 unusable (wrong lengths, algorithm not offered) */
};
const char *auth_result_name(enum auth_result r);

/* Checks parsed credentials. ha1 is the stored hex HA1 of the credential's
 * base algorithm (auth_algorithm_base). The response is compared in constant
 * time. With qop, each nonce's nc is tracked in the replay table: an nc seen
 * before, or more than 32 below the highest seen, is AUTH_REPLAY.
 * Without qop (RFC 2069 form) the same answer is accepted until the nonce
 * expires, because GB28181 devices re-send it on every refresh; the window is
 * legacy_nonce_ttl_s. */
enum auth_result auth_verify(struct auth_server *srv, const struct auth_credentials *creds, str_t method,
                             str_t ha1, uint64_t now_s);

/* ---- client ---------------------------------------------------------- */

/* Parsed WWW-Authenticate / Proxy-Authenticate value (RFC 3261 §25.1
 * "challenge"). Same slice rules as auth_credentials. */
struct auth_challenge {
    str_t realm, nonce, opaque;
    enum auth_algorithm algorithm; /* MD5 when absent */
    bool qop;                      /* qop offered and includes "auth": answer with qop=auth */
    bool stale;
    const char *error;
    size_t scratch_len;
    char scratch[AUTH_SCRATCH];
};

/* 0; -EINVAL for bad syntax or missing realm/nonce; -ENOTSUP for another
 * scheme, an unknown algorithm, or a qop list without "auth" (look at the
 * next challenge header). */
int auth_parse_challenge(str_t value, struct auth_challenge *out);

/* Appends an Authorization / Proxy-Authorization value to out:
 *   Digest username="…", realm="…", nonce="…", uri="…", response="…", algorithm=…
 *          [, cnonce="…", nc=0000000n, qop=auth][, opaque="…"]
 * nc counts the requests sent with this nonce, from 1. cnonce is used when
 * given (with qop or -sess), else 16 random bytes in hex. out must not be the
 * buffer the challenge was parsed from (ch points into it). 0; -EINVAL on an
 * empty user, method or uri, control characters in them, or nc 0 when qop is
 * used; -ENOMEM when out failed; -EIO on a crypto failure. */
int auth_client_answer(const struct auth_challenge *ch, str_t user, str_t password, str_t method, str_t uri,
                       uint32_t nc, str_t cnonce, sbuf_t *out);
/* Same, from a stored hex HA1 of the challenge's base algorithm instead of the password. */
int auth_client_answer_ha1(const struct auth_challenge *ch, str_t user, str_t ha1, str_t method, str_t uri,
                           uint32_t nc, str_t cnonce, sbuf_t *out);

#endif
