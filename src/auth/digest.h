/* digest.h — HTTP/SIP Digest authentication, server and client side.
 *
 * RFC 2617 (MD5, qop=auth, and the RFC 2069 form without qop), RFC 7616
 * (SHA-256, the -sess variants), RFC 8760 (SHA-256 in SIP), RFC 3261 §22.
 * Everything here works on header VALUES (the text after "Authorization:"),
 * so the module does not depend on the SIP parser.
 *
 * Server (registrar, proxy, GB28181 upper role):
 *   srv = auth_server_new(&cfg);                  (auth_server_config_from() fills cfg from [auth])
 *   auth_challenge_for(srv, realm, AUTH_ALG_MD5, qop, stale, peer, now, &buf);  -> 401 WWW-Authenticate value
 *   auth_parse_credentials(authorization_value, &creds);              -> 400/401 on error
 *   ha1 = lookup(creds.username, creds.realm, auth_algorithm_base(creds.algorithm));
 *   (no such user: auth_refuse_unknown(srv, &creds, peer, now, &info), which counts the failure)
 *   switch (auth_verify_from(srv, &creds, method, ha1, peer, now, &info)) ...
 *       STALE: re-challenge stale=true; LOCKED: 403 at once (too many failures)
 * peer is the request's source address: a nonce is bound to the IP it was
 * issued to, so a captured answer replayed from another address is refused
 * (STALE, info.peer_changed). info.nonce_reused tells that the nonce had
 * been accepted before: a caller should not let such a request move a
 * binding or device to a new address (a no-qop answer may be a replay).
 * The caller must also check that creds.uri names the Request-URI (RFC 2617
 * §3.2.2.5) and that creds.realm is one of its realms; it logs refusals with
 * the sender's address (auth_result_name() for the reason), at most when
 * info.throttle.report says so (a guessing attack sends thousands a second).
 *
 * Nonces are stateless (timestamp, flags, salt, an HMAC-SHA256 over them
 * and the realm, and a tag binding them to the peer's IP), so issuing a
 * challenge allocates nothing; answered nonces take a slot in a fixed-size
 * table (nc replay window, uses per nonce), failures a slot in the
 * failure table (throttle.h).
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

#include <sys/socket.h>

#include "auth/throttle.h"
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
    /* Answers checked against one nonce, right or wrong (with qop also the
     * highest nc taken); past it a right answer is STALE, so the client
     * takes a fresh nonce. 0: no limit. */
    uint32_t nonce_max_uses;
    struct auth_throttle_config throttle; /* failure limits; max_failures* 0: none */
};

struct auth_config;
/* cfg's [auth] keys (nonce lifetimes and uses, failure limits) for a server
 * offering algorithms (AUTH_OFFER mask); the secret is left random. */
void auth_server_config_from(struct auth_server_config *out, const struct auth_config *cfg, unsigned algorithms);

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
int auth_challenge_for(struct auth_server *srv, str_t realm, enum auth_algorithm alg, bool qop, bool stale,
                       const struct sockaddr *peer, uint64_t now_s, sbuf_t *out);
/* The same with no peer (tests, tools): the nonce verifies only with peer NULL. */
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
    AUTH_LOCKED,        /* too many failures from this source or for this user: refused unchecked */
};
const char *auth_result_name(enum auth_result r);

/* What auth_verify_from saw besides its result. */
struct auth_verify_info {
    uint32_t uses;           /* AUTH_OK: answers accepted on this nonce, this one included */
    bool nonce_reused;       /* AUTH_OK: uses > 1. Without qop the answer may be a replay of an
                              * earlier one: do not let it move a binding to a new address */
    bool peer_changed;       /* AUTH_STALE: the nonce was issued to another IP (replay, or roaming) */
    bool counted;            /* the attempt counted as a failure against the throttle */
    struct auth_throttle_note throttle; /* AUTH_LOCKED or counted: lock, report, count */
};

/* Checks parsed credentials from peer (the request's source; NULL: none).
 * First, when the source or user is locked out (throttle.h), AUTH_LOCKED
 * with no digest work. ha1 is the stored hex HA1 of the credential's base
 * algorithm (auth_algorithm_base). The response is compared in constant
 * time. With qop, each nonce's nc is tracked in the replay table: an nc seen
 * before, or more than 32 below the highest seen, is AUTH_REPLAY.
 * Without qop (RFC 2069 form) the same answer is accepted until the nonce
 * expires or has been used nonce_max_uses times, because GB28181 devices
 * re-send it on every refresh; the window is legacy_nonce_ttl_s, and
 * info.nonce_reused marks the re-sends. A wrong response, a nonce we did
 * not issue and a replayed nc count as failures (info.counted). info may be
 * NULL. */
enum auth_result auth_verify_from(struct auth_server *srv, const struct auth_credentials *creds, str_t method,
                                  str_t ha1, const struct sockaddr *peer, uint64_t now_s,
                                  struct auth_verify_info *info);
/* The same with no peer and no info (tests, tools). */
enum auth_result auth_verify(struct auth_server *srv, const struct auth_credentials *creds, str_t method,
                             str_t ha1, uint64_t now_s);
/* Credentials naming a user we do not have: AUTH_LOCKED when the source or
 * that name is locked out, else the failure is counted like a wrong
 * password (so guessing user names is throttled too) and the result is
 * AUTH_BAD_RESPONSE. No digest work either way. */
enum auth_result auth_refuse_unknown(struct auth_server *srv, const struct auth_credentials *creds,
                                     const struct sockaddr *peer, uint64_t now_s, struct auth_verify_info *info);

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
