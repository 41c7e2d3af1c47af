/* digest_server.c — the server side of Digest: stateless nonces, the replay
 * table, and verification of credentials (RFC 2617 §3.2.2, RFC 7616 §3.3-3.5,
 * RFC 3261 §22.2/§22.3).
 *
 * A nonce is base64url (RFC 4648 §5, no padding) of 30 bytes:
 *   issued (4, big-endian seconds) | flags (1) | salt (7) | mac (12) | bind (6)
 *   full = HMAC-SHA256(secret, issued | flags | salt | realm); mac = full[0..12)
 *   bind = SHA-256(full[12..32) | peer IP)[0..6)
 *   flags = algorithm (bits 0-1) | qop offered (bit 2)
 * so a nonce is checked without remembering it, and it is bound to the realm,
 * the algorithm and the qop form it was issued for: an answer that switches
 * to another algorithm, or drops qop to escape the replay check, is refused.
 * bind ties it to the IP it was issued to (the port may change behind NAT):
 * the never-sent tail of the HMAC keys it, and it is checked apart from mac
 * so that a right answer from another address is told from a forged nonce
 * (STALE: a roaming client retries; a replayed capture gets nowhere). The
 * salt is a per-server counter seeded at random, so two challenges in the
 * same second differ.
 *
 * Nonce table: each nonce answered gets an entry (mac -> answers checked,
 * answers accepted, and with qop the highest nc and a 32-bit window of the nc
 * values below it, as in IPsec anti-replay: an out-of-order request over UDP
 * is accepted once, a repeat is refused). The table is set-associative (8
 * ways per bucket) with a fixed size; entries die with the nonce lifetime.
 * When a bucket is full of live entries the oldest is evicted and the
 * bucket's floor moves to its issue time: a nonce issued at or before the
 * floor that is not in the bucket is answered STALE, so the client takes a
 * fresh nonce instead of an evicted one being replayable or re-counted. */
#include "auth/digest_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base/assoc.h"
#include "base/log.h"

#define NONCE_RAW 30
#define NONCE_B64 40
#define NONCE_MAC_AT 12
#define NONCE_MAC_LEN 12
#define NONCE_BIND_AT 24
#define NONCE_BIND_LEN 6
#define NONCE_FLAG_QOP 0x04
#define NONCE_FLAG_ALG 0x03
#define NONCE_SKEW_S 5        /* tolerated clock step between issuing and verifying nodes */
#define REALM_MAX 256
#define OPAQUE_MAX 128
#define REPLAY_WAYS 8
#define REPLAY_WINDOW 32
#define REPLAY_MAX_ENTRIES (1u << 24)

struct replay_entry {
    uint8_t mac[NONCE_MAC_LEN];
    uint32_t issued;
    uint32_t nc_max;  /* highest nc accepted (qop); 0: none yet */
    uint32_t seen;    /* bit d: nc_max - d was seen */
    uint16_t uses;    /* answers checked, right or wrong; 0: slot free */
    uint16_t accepted;
};

struct replay_bucket {
    struct replay_entry e[REPLAY_WAYS];
    uint32_t floor;   /* nonces issued at or before this may have been evicted */
    bool floor_set;
};

struct auth_server {
    uint32_t ttl, legacy_ttl, table_ttl;
    unsigned algorithms;
    char opaque[OPAQUE_MAX + 1];
    size_t opaque_len;
    struct digest_hmac hmac;
    struct digest_hasher hasher;
    uint64_t salt;
    struct assoc replay;            /* struct replay_bucket */
    uint32_t max_uses;              /* 0: no limit */
    struct auth_throttle *throttle; /* NULL: no failure limits */
    uint32_t log_sec, log_lines, log_dropped; /* rate limit of refuse() */
};

/* ---- base64url ------------------------------------------------------- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void nonce_encode(const uint8_t raw[NONCE_RAW], char out[NONCE_B64])
{
    for (size_t i = 0, o = 0; i < NONCE_RAW; i += 3, o += 4) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        out[o] = b64url[v >> 18];
        out[o + 1] = b64url[(v >> 12) & 63];
        out[o + 2] = b64url[(v >> 6) & 63];
        out[o + 3] = b64url[v & 63];
    }
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

static int nonce_decode(str_t s, uint8_t raw[NONCE_RAW])
{
    if (s.len != NONCE_B64) return -1;
    for (size_t i = 0, o = 0; i < NONCE_B64; i += 4, o += 3) {
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d = b64url_value(s.s[i + k]);
            if (d < 0) return -1;
            v = v << 6 | (uint32_t)d;
        }
        raw[o] = (uint8_t)(v >> 16);
        raw[o + 1] = (uint8_t)(v >> 8);
        raw[o + 2] = (uint8_t)v;
    }
    return 0;
}

/* ---- server ---------------------------------------------------------- */

struct auth_server *auth_server_new(const struct auth_server_config *cfg)
{
    uint8_t key[64];
    size_t key_len = 32;
    unsigned algs = cfg->algorithms ? cfg->algorithms : AUTH_OFFER(AUTH_ALG_MD5);

    if (algs & ~((1u << AUTH_ALG_COUNT) - 1)) {
        log_error("auth: unknown algorithm bits 0x%x in config", algs);
        return NULL;
    }
    if (cfg->secret && (cfg->secret_len < 16 || cfg->secret_len > sizeof key)) {
        log_error("auth: nonce secret must be 16..64 bytes, got %zu", cfg->secret_len);
        return NULL;
    }
    size_t opaque_len = cfg->opaque ? strlen(cfg->opaque) : 0;
    if (opaque_len > OPAQUE_MAX || !digest_printable(str_make(cfg->opaque, opaque_len))) {
        log_error("auth: opaque must be at most %d printable characters", OPAQUE_MAX);
        return NULL;
    }

    struct auth_server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    srv->ttl = cfg->nonce_ttl_s ? cfg->nonce_ttl_s : 300;
    srv->legacy_ttl = cfg->legacy_nonce_ttl_s ? cfg->legacy_nonce_ttl_s : srv->ttl;
    if (srv->ttl > INT32_MAX / 2 || srv->legacy_ttl > INT32_MAX / 2) {
        log_error("auth: nonce lifetime too long");
        free(srv);
        return NULL;
    }
    srv->table_ttl = srv->ttl > srv->legacy_ttl ? srv->ttl : srv->legacy_ttl;
    srv->algorithms = algs;
    if (opaque_len) memcpy(srv->opaque, cfg->opaque, opaque_len);
    srv->opaque_len = opaque_len;

    uint32_t entries = cfg->replay_entries ? cfg->replay_entries : 16384;
    bool table_ok = assoc_init(&srv->replay, entries, REPLAY_MAX_ENTRIES, REPLAY_WAYS, sizeof(struct replay_bucket)) == 0;
    srv->max_uses = cfg->nonce_max_uses > UINT16_MAX ? UINT16_MAX : cfg->nonce_max_uses;
    bool want_throttle = cfg->throttle.max_failures || cfg->throttle.max_failures_user;

    if (cfg->secret) {
        key_len = cfg->secret_len;
        memcpy(key, cfg->secret, key_len);
    }
    bool ok = table_ok && digest_hasher_init(&srv->hasher) == 0 &&
              (!want_throttle || (srv->throttle = auth_throttle_new(&cfg->throttle)) != NULL) &&
              (cfg->secret || RAND_bytes(key, (int)key_len) == 1) &&
              RAND_bytes((unsigned char *)&srv->salt, sizeof srv->salt) == 1;
    if (ok) digest_hmac_init(&srv->hmac, key, key_len);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) {
        log_error("auth: cannot set up the digest server (memory or OpenSSL HMAC/MD5/SHA-256)");
        auth_server_free(srv);
        return NULL;
    }
    return srv;
}

void auth_server_free(struct auth_server *srv)
{
    if (!srv) return;
    digest_hmac_clear(&srv->hmac);
    digest_hasher_free(&srv->hasher);
    auth_throttle_free(srv->throttle);
    assoc_free(&srv->replay);
    free(srv);
}

/* The IP a nonce is bound to: 4 bytes for IPv4 (also mapped in IPv6), 16
 * for IPv6, none without a peer. */
static size_t peer_ip(const struct sockaddr *sa, uint8_t out[16])
{
    if (!sa) return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        size_t skip = memcmp(a, mapped, sizeof mapped) ? 0 : sizeof mapped;
        memcpy(out, a + skip, 16 - skip);
        return 16 - skip;
    }
    return 0;
}

/* mac over the first 12 nonce bytes and the realm, and the bind tag of the
 * peer's IP keyed by the rest of the HMAC (never sent). The key's HMAC
 * blocks are hashed once at creation (digest_hmac). */
static int nonce_mac(struct auth_server *srv, const uint8_t raw[NONCE_RAW], str_t realm, const struct sockaddr *peer,
                     uint8_t mac[NONCE_MAC_LEN], uint8_t bind[NONCE_BIND_LEN])
{
    uint8_t full[SHA256_DIGEST_LENGTH], tag[SHA256_DIGEST_LENGTH], ip[16];
    size_t ip_len = peer_ip(peer, ip);
    digest_hmac2(&srv->hmac, raw, NONCE_MAC_AT, realm.s, realm.len, full);
    memcpy(mac, full, NONCE_MAC_LEN);
    digest_sha256_2(full + NONCE_MAC_LEN, sizeof full - NONCE_MAC_LEN, ip, ip_len, tag);
    memcpy(bind, tag, NONCE_BIND_LEN);
    return 0;
}

int auth_challenge(struct auth_server *srv, str_t realm, enum auth_algorithm alg, bool qop, bool stale,
                   uint64_t now_s, sbuf_t *out)
{
    return auth_challenge_for(srv, realm, alg, qop, stale, NULL, now_s, out);
}

int auth_challenge_for(struct auth_server *srv, str_t realm, enum auth_algorithm alg, bool qop, bool stale,
                       const struct sockaddr *peer, uint64_t now_s, sbuf_t *out)
{
    uint8_t raw[NONCE_RAW];
    char nonce[NONCE_B64 + 1];

    if ((unsigned)alg >= AUTH_ALG_COUNT || !(srv->algorithms & AUTH_OFFER(alg))) return -EINVAL;
    if (realm.len == 0 || realm.len > REALM_MAX || !digest_printable(realm)) return -EINVAL;
    /* -sess needs a cnonce, which exists only with qop (RFC 7616 §3.4.2). */
    if (!qop && alg != auth_algorithm_base(alg)) return -EINVAL;

    uint32_t issued = (uint32_t)now_s;
    uint64_t salt = ++srv->salt;
    raw[0] = (uint8_t)(issued >> 24);
    raw[1] = (uint8_t)(issued >> 16);
    raw[2] = (uint8_t)(issued >> 8);
    raw[3] = (uint8_t)issued;
    raw[4] = (uint8_t)((unsigned)alg | (qop ? NONCE_FLAG_QOP : 0));
    for (int i = 0; i < 7; i++) raw[5 + i] = (uint8_t)(salt >> (8 * i));
    if (nonce_mac(srv, raw, realm, peer, raw + NONCE_MAC_AT, raw + NONCE_BIND_AT) < 0) {
        log_error("auth: HMAC failed while issuing a nonce");
        return -EIO;
    }
    nonce_encode(raw, nonce);
    nonce[NONCE_B64] = '\0';

    sbuf_append_cstr(out, "Digest realm=");
    digest_append_quoted(out, realm);
    sbuf_append_cstr(out, ", nonce=\"");
    sbuf_append(out, nonce, NONCE_B64);
    sbuf_append_char(out, '"');
    if (srv->opaque_len) {
        sbuf_append_cstr(out, ", opaque=");
        digest_append_quoted(out, str_make(srv->opaque, srv->opaque_len));
    }
    sbuf_append_cstr(out, ", algorithm=");
    sbuf_append_cstr(out, auth_algorithm_name(alg));
    if (qop) sbuf_append_cstr(out, ", qop=\"auth\"");
    if (stale) sbuf_append_cstr(out, ", stale=true");
    return out->failed ? -ENOMEM : 0;
}

/* Seconds from a to b on a 32-bit wrapping clock (negative: b before a). */
static int32_t age_s(uint32_t from, uint32_t to) { return (int32_t)(to - from); }

static enum auth_result replay_window(struct replay_entry *e, uint32_t nc)
{
    if (nc > e->nc_max) {
        uint32_t d = nc - e->nc_max;
        e->seen = d >= REPLAY_WINDOW ? 1u : (e->seen << d) | 1u;
        e->nc_max = nc;
        return AUTH_OK;
    }
    uint32_t d = e->nc_max - nc;
    if (d >= REPLAY_WINDOW || (e->seen & (1u << d))) return AUTH_REPLAY;
    e->seen |= 1u << d;
    return AUTH_OK;
}

/* The table entry of a nonce; with insert, made when missing. NULL when
 * missing (not insert), or when the nonce may have been evicted (*evicted:
 * answer STALE, never start its count again). */
static struct replay_entry *replay_entry_of(struct auth_server *srv, const uint8_t mac[NONCE_MAC_LEN],
                                            uint32_t issued, uint32_t now, bool insert, bool *evicted)
{
    uint32_t idx;
    memcpy(&idx, mac, sizeof idx); /* HMAC output: uniform, and verified before we get here */
    struct replay_bucket *b = assoc_bucket(&srv->replay, idx);
    struct replay_entry *slot = NULL, *oldest = NULL;

    *evicted = false;
    for (int i = 0; i < REPLAY_WAYS; i++) {
        struct replay_entry *e = &b->e[i];
        if (e->uses == 0 || age_s(e->issued, now) >= (int32_t)srv->table_ttl) {
            if (!slot) slot = e;
            continue;
        }
        if (memcmp(e->mac, mac, NONCE_MAC_LEN) == 0) return e;
        if (!oldest || age_s(e->issued, oldest->issued) > 0) oldest = e; /* e issued earlier */
    }
    if (b->floor_set && age_s(b->floor, now) >= (int32_t)srv->table_ttl) b->floor_set = false;
    if (b->floor_set && age_s(issued, b->floor) >= 0) {
        *evicted = true;
        return NULL;
    }
    if (!insert) return NULL;
    if (!slot) {
        slot = oldest;
        if (!b->floor_set || age_s(b->floor, oldest->issued) > 0) b->floor = oldest->issued;
        b->floor_set = true;
    }
    memset(slot, 0, sizeof *slot);
    memcpy(slot->mac, mac, NONCE_MAC_LEN);
    slot->issued = issued;
    return slot;
}

/* The debug line of a refusal, at most REFUSE_LOG_PER_S a second (a
 * guessing attack sends thousands); the rest are counted in one line. */
#define REFUSE_LOG_PER_S 20
static enum auth_result refuse(struct auth_server *srv, enum auth_result r, const struct auth_credentials *c,
                               uint32_t now, const char *why)
{
    if (log_get_level() < LOG_DEBUG) return r;
    if (now != srv->log_sec) {
        if (srv->log_dropped) log_debug("auth: %u more refusals not logged", srv->log_dropped);
        srv->log_sec = now;
        srv->log_lines = srv->log_dropped = 0;
    }
    if (++srv->log_lines > REFUSE_LOG_PER_S) {
        srv->log_dropped++;
        return r;
    }
    log_debug("auth: %s for user \"%.*s\": %s", auth_result_name(r), STR_FMT(c->username), why);
    return r;
}

/* A refusal that counts against the failure limits (throttle.h). */
static enum auth_result fail(struct auth_server *srv, enum auth_result r, const struct auth_credentials *c,
                             const struct sockaddr *peer, uint32_t now, struct auth_verify_info *info, const char *why)
{
    auth_throttle_failed(srv->throttle, peer, c->realm, c->username, now, &info->throttle);
    info->counted = true;
    return refuse(srv, r, c, now, why);
}

static bool locked(struct auth_server *srv, const struct auth_credentials *c, const struct sockaddr *peer,
                   uint32_t now, struct auth_verify_info *info)
{
    return auth_throttle_locked(srv->throttle, peer, c->realm, c->username, now, &info->throttle);
}

enum auth_result auth_refuse_unknown(struct auth_server *srv, const struct auth_credentials *creds,
                                     const struct sockaddr *peer, uint64_t now_s, struct auth_verify_info *info)
{
    struct auth_verify_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    uint32_t now = (uint32_t)now_s;
    if (locked(srv, creds, peer, now, info)) return refuse(srv, AUTH_LOCKED, creds, now, "too many failures");
    return fail(srv, AUTH_BAD_RESPONSE, creds, peer, now, info, "unknown user");
}

enum auth_result auth_verify(struct auth_server *srv, const struct auth_credentials *creds, str_t method,
                             str_t ha1, uint64_t now_s)
{
    return auth_verify_from(srv, creds, method, ha1, NULL, now_s, NULL);
}

enum auth_result auth_verify_from(struct auth_server *srv, const struct auth_credentials *creds, str_t method,
                                  str_t ha1, const struct sockaddr *peer, uint64_t now_s,
                                  struct auth_verify_info *info)
{
    char ha1_norm[AUTH_HEX_MAX + 1], got[AUTH_HEX_MAX + 1], want[AUTH_HEX_MAX + 1];
    uint8_t raw[NONCE_RAW], mac[NONCE_MAC_LEN], bind[NONCE_BIND_LEN];
    enum auth_algorithm alg = creds->algorithm;
    uint32_t now = (uint32_t)now_s;
    struct auth_verify_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);

    /* Before any work: a source or user over its failure limit (throttle.h). */
    if (locked(srv, creds, peer, now, info)) return refuse(srv, AUTH_LOCKED, creds, now, "too many failures");
    if ((unsigned)alg >= AUTH_ALG_COUNT) return refuse(srv, AUTH_MALFORMED, creds, now, "bad algorithm");
    if (digest_hex_normalize(auth_algorithm_base(alg), ha1, ha1_norm) < 0) {
        log_error("auth: stored HA1 for \"%.*s\" is not a %s hex digest", STR_FMT(creds->username),
                  auth_algorithm_name(auth_algorithm_base(alg)));
        return AUTH_MALFORMED;
    }
    if (digest_hex_normalize(alg, creds->response, got) < 0)
        return refuse(srv, AUTH_MALFORMED, creds, now, "response is not a hex digest");
    if (creds->qop && (creds->nc_value == 0 || creds->cnonce.len == 0))
        return refuse(srv, AUTH_MALFORMED, creds, now, "qop without nc or cnonce");
    if (!creds->qop && alg != auth_algorithm_base(alg))
        return refuse(srv, AUTH_MALFORMED, creds, now, "-sess without qop");

    if (nonce_decode(creds->nonce, raw) < 0) return fail(srv, AUTH_BAD_NONCE, creds, peer, now, info, "nonce not ours");
    if (raw[4] & ~(NONCE_FLAG_ALG | NONCE_FLAG_QOP))
        return fail(srv, AUTH_BAD_NONCE, creds, peer, now, info, "nonce flags");
    if (nonce_mac(srv, raw, creds->realm, peer, mac, bind) < 0) {
        log_error("auth: HMAC failed while checking a nonce");
        return AUTH_MALFORMED;
    }
    if (CRYPTO_memcmp(mac, raw + NONCE_MAC_AT, NONCE_MAC_LEN) != 0)
        return fail(srv, AUTH_BAD_NONCE, creds, peer, now, info,
                    "nonce MAC mismatch (tampered, other realm or other secret)");
    bool other_peer = CRYPTO_memcmp(bind, raw + NONCE_BIND_AT, NONCE_BIND_LEN) != 0;
    bool nonce_qop = raw[4] & NONCE_FLAG_QOP;
    if ((raw[4] & NONCE_FLAG_ALG) != (unsigned)alg || !(srv->algorithms & AUTH_OFFER(alg)))
        return fail(srv, AUTH_BAD_NONCE, creds, peer, now, info, "answered with another algorithm than challenged");
    /* RFC 2617 §3.2.2: when qop was offered the client must use it; dropping
     * it would also skip the nc replay check. A client may still use qop on a
     * nonce issued without it. */
    if (nonce_qop && !creds->qop) return fail(srv, AUTH_BAD_NONCE, creds, peer, now, info, "qop dropped");
    if (srv->opaque_len && !str_eq(creds->opaque, str_make(srv->opaque, srv->opaque_len)))
        return fail(srv, AUTH_BAD_NONCE, creds, peer, now, info, "opaque not returned unchanged");
    uint32_t issued = (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3];
    int32_t age = age_s(issued, now);
    if (age < -NONCE_SKEW_S) return fail(srv, AUTH_BAD_NONCE, creds, peer, now, info, "nonce issued in the future");

    /* A nonce used up is refused before the digest work: STALE costs a
     * client with the right password one retry and a guesser everything. */
    bool evicted = false;
    struct replay_entry *e =
        other_peer ? NULL : replay_entry_of(srv, raw + NONCE_MAC_AT, issued, now, false, &evicted);
    if (e && srv->max_uses && e->uses >= srv->max_uses)
        return refuse(srv, AUTH_STALE, creds, now, "nonce used nonce_max_uses times");

    if (digest_response(&srv->hasher, alg, ha1_norm, creds->nonce, creds->qop, creds->nc, creds->cnonce, method,
                        creds->uri, want) < 0) {
        log_error("auth: digest computation failed");
        return AUTH_MALFORMED;
    }
    if (CRYPTO_memcmp(want, got, auth_algorithm_hex_len(alg)) != 0) {
        if (!other_peer && (e || (e = replay_entry_of(srv, raw + NONCE_MAC_AT, issued, now, true, &evicted))))
            e->uses += e->uses < UINT16_MAX;
        return fail(srv, AUTH_BAD_RESPONSE, creds, peer, now, info, "response mismatch");
    }

    /* Only now may we say stale: RFC 7616 §3.3 sends stale=true only when the
     * answer was right for an expired nonce. */
    if (other_peer) {
        info->peer_changed = true;
        return refuse(srv, AUTH_STALE, creds, now, "nonce issued to another address");
    }
    if (age >= (int32_t)(nonce_qop ? srv->ttl : srv->legacy_ttl))
        return refuse(srv, AUTH_STALE, creds, now, "nonce expired");
    if (creds->qop && srv->max_uses && creds->nc_value > srv->max_uses)
        return refuse(srv, AUTH_STALE, creds, now, "nc over nonce_max_uses");
    if (!e && !(e = replay_entry_of(srv, raw + NONCE_MAC_AT, issued, now, true, &evicted)))
        return refuse(srv, AUTH_STALE, creds, now, "nonce evicted from the nonce table");
    e->uses += e->uses < UINT16_MAX;
    if (creds->qop && replay_window(e, creds->nc_value) != AUTH_OK)
        return fail(srv, AUTH_REPLAY, creds, peer, now, info, "nc seen before");
    /* Without qop (RFC 2069 form) nothing changes between two answers, so a
     * replay cannot be told from a GB28181 device re-sending its last
     * Authorization on refresh, which they do: accepted until the nonce
     * expires (legacy_nonce_ttl_s) or is used up, and marked reused. */
    if (e->accepted < UINT16_MAX) e->accepted++;
    info->uses = e->accepted;
    info->nonce_reused = e->accepted > 1;
    return AUTH_OK;
}

const char *auth_result_name(enum auth_result r)
{
    switch (r) {
    case AUTH_OK: return "ok";
    case AUTH_BAD_RESPONSE: return "bad response";
    case AUTH_STALE: return "stale nonce";
    case AUTH_BAD_NONCE: return "bad nonce";
    case AUTH_REPLAY: return "replay";
    case AUTH_MALFORMED: return "malformed credentials";
    case AUTH_LOCKED: return "too many failed attempts";
    }
    return "?";
}
