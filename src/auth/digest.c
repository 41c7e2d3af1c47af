/* digest.c — Digest authentication: the auth-param parser, the hash chain of
 * RFC 7616 §3.4 (MD5, SHA-256 and their -sess variants), HA1 for storage, and
 * the client side (parse a challenge, write an answer).
 *
 * The parser is our own rather than sip_param_get() so that auth can be
 * built and fuzzed without the SIP parser: it takes one header value,
 * returns slices into it, and never allocates. The server side (nonces,
 * replay table, verification) is in digest_server.c. */
#include "auth/digest_internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

/* ---- algorithms ------------------------------------------------------ */

static const char *const alg_names[AUTH_ALG_COUNT] = {"MD5", "MD5-sess", "SHA-256", "SHA-256-sess"};

const char *auth_algorithm_name(enum auth_algorithm alg)
{
    return (unsigned)alg < AUTH_ALG_COUNT ? alg_names[alg] : "?";
}

int auth_algorithm_from_name(str_t name, enum auth_algorithm *out)
{
    for (int i = 0; i < AUTH_ALG_COUNT; i++) {
        if (str_ieq_cstr(name, alg_names[i])) {
            *out = (enum auth_algorithm)i;
            return 0;
        }
    }
    return -1;
}

enum auth_algorithm auth_algorithm_base(enum auth_algorithm alg)
{
    return (alg == AUTH_ALG_SHA256 || alg == AUTH_ALG_SHA256_SESS) ? AUTH_ALG_SHA256 : AUTH_ALG_MD5;
}

static bool alg_is_sess(enum auth_algorithm alg) { return alg == AUTH_ALG_MD5_SESS || alg == AUTH_ALG_SHA256_SESS; }

size_t auth_algorithm_hex_len(enum auth_algorithm alg)
{
    return auth_algorithm_base(alg) == AUTH_ALG_SHA256 ? 64 : 32;
}

/* ---- hashing --------------------------------------------------------- */

int digest_hasher_init(struct digest_hasher *h)
{
    memset(h, 0, sizeof(*h));
    return 0;
}

void digest_hasher_free(struct digest_hasher *h) { OPENSSL_cleanse(h, sizeof(*h)); }

void digest_hmac_init(struct digest_hmac *m, const void *key, size_t key_len)
{
    uint8_t block[SHA256_CBLOCK] = {0}, pad[SHA256_CBLOCK];
    if (key_len > sizeof block) {
        SHA256(key, key_len, block); /* RFC 2104: a long key is hashed first */
    } else if (key_len) {
        memcpy(block, key, key_len);
    }
    for (size_t i = 0; i < sizeof block; i++) pad[i] = block[i] ^ 0x36;
    SHA256_Init(&m->inner);
    SHA256_Update(&m->inner, pad, sizeof pad);
    for (size_t i = 0; i < sizeof block; i++) pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&m->outer);
    SHA256_Update(&m->outer, pad, sizeof pad);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
}

void digest_hmac2(const struct digest_hmac *m, const void *a, size_t a_len, const void *b, size_t b_len,
                  uint8_t out[SHA256_DIGEST_LENGTH])
{
    SHA256_CTX c = m->inner;
    uint8_t in[SHA256_DIGEST_LENGTH];
    if (a_len) SHA256_Update(&c, a, a_len);
    if (b_len) SHA256_Update(&c, b, b_len);
    SHA256_Final(in, &c);
    c = m->outer;
    SHA256_Update(&c, in, sizeof in);
    SHA256_Final(out, &c);
}

void digest_sha256_2(const void *a, size_t a_len, const void *b, size_t b_len, uint8_t out[SHA256_DIGEST_LENGTH])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    if (a_len) SHA256_Update(&c, a, a_len);
    if (b_len) SHA256_Update(&c, b, b_len);
    SHA256_Final(out, &c);
}

void digest_hmac_clear(struct digest_hmac *m) { OPENSSL_cleanse(m, sizeof(*m)); }

/* A running hash. */
struct hash_run {
    struct digest_hasher *h;
};

static void run_begin(struct hash_run *r, struct digest_hasher *h, enum auth_algorithm alg)
{
    r->h = h;
    h->is_sha256 = auth_algorithm_base(alg) == AUTH_ALG_SHA256;
    if (h->is_sha256)
        SHA256_Init(&h->c.sha256);
    else
        MD5_Init(&h->c.md5);
}

static void run_add(struct hash_run *r, str_t s)
{
    if (!s.len) return;
    if (r->h->is_sha256)
        SHA256_Update(&r->h->c.sha256, s.s, s.len);
    else
        MD5_Update(&r->h->c.md5, s.s, s.len);
}

static void run_colon(struct hash_run *r) { run_add(r, STR_LIT(":")); }

static int run_hex(struct hash_run *r, char out[AUTH_HEX_MAX + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];
    unsigned int n;
    if (r->h->is_sha256) {
        SHA256_Final(md, &r->h->c.sha256);
        n = SHA256_DIGEST_LENGTH;
    } else {
        MD5_Final(md, &r->h->c.md5);
        n = MD5_DIGEST_LENGTH;
    }
    for (unsigned int i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
    return 0;
}

int digest_hex_normalize(enum auth_algorithm alg, str_t hex, char out[AUTH_HEX_MAX + 1])
{
    if (hex.len != auth_algorithm_hex_len(alg)) return -1;
    for (size_t i = 0; i < hex.len; i++) {
        char c = hex.s[i];
        if (c >= 'A' && c <= 'F') c = (char)(c + 32);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return -1;
        out[i] = c;
    }
    out[hex.len] = '\0';
    return 0;
}

int digest_response(struct digest_hasher *h, enum auth_algorithm alg, const char *ha1_hex, str_t nonce,
                    bool qop, str_t nc, str_t cnonce, str_t method, str_t uri, char out[AUTH_HEX_MAX + 1])
{
    struct hash_run r;
    char sess[AUTH_HEX_MAX + 1], ha2[AUTH_HEX_MAX + 1];
    str_t ha1 = str_from_cstr(ha1_hex);

    if (alg_is_sess(alg)) { /* RFC 7616 §3.4.2: HA1 bound to this nonce and cnonce */
        run_begin(&r, h, alg);
        run_add(&r, ha1);
        run_colon(&r);
        run_add(&r, nonce);
        run_colon(&r);
        run_add(&r, cnonce);
        if (run_hex(&r, sess) < 0) return -1;
        ha1 = str_from_cstr(sess);
    }

    run_begin(&r, h, alg); /* RFC 7616 §3.4.3, qop=auth */
    run_add(&r, method);
    run_colon(&r);
    run_add(&r, uri);
    if (run_hex(&r, ha2) < 0) return -1;

    run_begin(&r, h, alg); /* RFC 7616 §3.4.1; RFC 2617 §3.2.2.1 without qop */
    run_add(&r, ha1);
    run_colon(&r);
    run_add(&r, nonce);
    run_colon(&r);
    if (qop) {
        run_add(&r, nc);
        run_colon(&r);
        run_add(&r, cnonce);
        run_colon(&r);
        run_add(&r, STR_LIT("auth"));
        run_colon(&r);
    }
    run_add(&r, str_from_cstr(ha2));
    return run_hex(&r, out);
}

int auth_ha1(enum auth_algorithm alg, str_t user, str_t realm, str_t password, char out[65])
{
    struct digest_hasher h;
    struct hash_run r;
    out[0] = '\0';
    if ((unsigned)alg >= AUTH_ALG_COUNT || digest_hasher_init(&h) < 0) return -EINVAL;
    run_begin(&r, &h, alg);
    run_add(&r, user);
    run_colon(&r);
    run_add(&r, realm);
    run_colon(&r);
    run_add(&r, password);
    int rc = run_hex(&r, out);
    digest_hasher_free(&h);
    return rc < 0 ? -EIO : 0;
}

/* ---- writing --------------------------------------------------------- */

bool digest_printable(str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

void digest_append_quoted(sbuf_t *out, str_t s)
{
    sbuf_append_char(out, '"');
    size_t from = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.s[i] == '"' || s.s[i] == '\\') {
            sbuf_append(out, s.s + from, i - from);
            sbuf_append_char(out, '\\');
            from = i;
        }
    }
    sbuf_append(out, s.s + from, s.len - from);
    sbuf_append_char(out, '"');
}

/* ---- auth-param parser ----------------------------------------------- */

struct param {
    str_t name, value;
};

struct param_list {
    struct param p[AUTH_MAX_PARAMS];
    size_t n;
};

/* RFC 3261 §25.1 token characters (alphanumerics and -.!%*_+`'~), one bit
 * per ASCII code: a scan costs a shift and a mask per byte. */
static bool is_token_char(unsigned char c)
{
    static const uint64_t bits[2] = {0x03ff6ca200000000ull, 0x47ffffff87fffffeull};
    return c < 128 && (bits[c >> 6] >> (c & 63)) & 1;
}

/* LWS, leniently: folded lines are accepted whether or not the SIP parser
 * unfolded them already. */
static bool is_lws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static const char *skip_lws(const char *p, const char *end)
{
    while (p < end && is_lws(*p)) p++;
    return p;
}

static const char *scan_token(const char *p, const char *end)
{
    while (p < end && is_token_char((unsigned char)*p)) p++;
    return p;
}

/* Parses a quoted-string starting at the opening quote. The value without
 * quotes goes to *value: a slice of the input, or of scratch when escapes had
 * to be removed. Returns the position after the closing quote, or NULL. */
static const char *scan_quoted(const char *p, const char *end, str_t *value, char *scratch, size_t *scratch_len,
                               const char **err)
{
    const char *start = ++p;
    bool escaped = false;
    for (;;) {
        if (p >= end) {
            *err = "unterminated quoted-string";
            return NULL;
        }
        unsigned char c = (unsigned char)*p;
        if (c == '"') break;
        if (c == '\\') { /* quoted-pair: any char except CR and LF (RFC 3261 §25.1) */
            if (p + 1 >= end || p[1] == '\r' || p[1] == '\n') {
                *err = "bad escape in quoted-string";
                return NULL;
            }
            escaped = true;
            p += 2;
            continue;
        }
        /* Control characters and line breaks are refused: values we echo back
         * (realm, nonce, opaque) must not be able to inject header lines. */
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            *err = "control character in quoted-string";
            return NULL;
        }
        p++;
    }
    size_t raw = (size_t)(p - start);
    if (!escaped) {
        *value = str_make(start, raw);
        return p + 1;
    }
    char *dst = scratch + *scratch_len;
    size_t n = 0;
    if (raw > AUTH_SCRATCH - *scratch_len) {
        *err = "escaped values too long";
        return NULL;
    }
    for (const char *q = start; q < p; q++) {
        if (*q == '\\') q++;
        dst[n++] = *q;
    }
    *scratch_len += n;
    *value = str_make(dst, n);
    return p + 1;
}

/* challenge / credentials = "Digest" LWS auth-param *(COMMA auth-param)
 * (RFC 3261 §25.1). Names are matched case-insensitively; a name given twice
 * is refused, because which one a peer honours would be a guess. */
static int parse_params(str_t in, struct param_list *pl, char *scratch, size_t *scratch_len, const char **err)
{
    pl->n = 0;
    *scratch_len = 0;
    if (!in.s || in.len == 0) {
        *err = "empty value";
        return -EINVAL;
    }
    if (in.len > AUTH_MAX_HEADER) {
        *err = "value too long";
        return -EINVAL;
    }
    const char *p = skip_lws(in.s, in.s + in.len), *end = in.s + in.len;
    const char *t = scan_token(p, end);
    str_t scheme = str_make(p, (size_t)(t - p));
    if (scheme.len == 0) {
        *err = "no scheme";
        return -EINVAL;
    }
    if (!str_ieq_cstr(scheme, "Digest")) {
        *err = "scheme is not Digest";
        return -ENOTSUP;
    }
    if (t == end || !is_lws(*t)) {
        *err = t == end ? "no parameters" : "no space after scheme";
        return -EINVAL;
    }
    p = skip_lws(t, end);
    if (p == end) {
        *err = "no parameters";
        return -EINVAL;
    }
    for (;;) {
        struct param cur;
        t = scan_token(p, end);
        cur.name = str_make(p, (size_t)(t - p));
        if (cur.name.len == 0) {
            *err = "expected a parameter name";
            return -EINVAL;
        }
        p = skip_lws(t, end);
        if (p == end || *p != '=') {
            *err = "parameter without '='";
            return -EINVAL;
        }
        p = skip_lws(p + 1, end);
        if (p < end && *p == '"') {
            p = scan_quoted(p, end, &cur.value, scratch, scratch_len, err);
            if (!p) return -EINVAL;
        } else {
            t = scan_token(p, end);
            cur.value = str_make(p, (size_t)(t - p));
            if (cur.value.len == 0) {
                *err = "parameter value is neither token nor quoted-string";
                return -EINVAL;
            }
            p = t;
        }
        for (size_t i = 0; i < pl->n; i++) {
            if (str_ieq(pl->p[i].name, cur.name)) {
                *err = "duplicate parameter";
                return -EINVAL;
            }
        }
        if (pl->n == AUTH_MAX_PARAMS) {
            *err = "too many parameters";
            return -EINVAL;
        }
        pl->p[pl->n++] = cur;
        p = skip_lws(p, end);
        if (p == end) return 0;
        if (*p != ',') {
            *err = "expected ',' between parameters";
            return -EINVAL;
        }
        p = skip_lws(p + 1, end);
        if (p == end) {
            *err = "trailing ','";
            return -EINVAL;
        }
    }
}

static bool is_hex_str(str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        char c = s.s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
    }
    return true;
}

/* ---- credentials ----------------------------------------------------- */

int auth_parse_credentials(str_t value, struct auth_credentials *out)
{
    struct param_list pl;
    memset(out, 0, offsetof(struct auth_credentials, scratch));
    out->algorithm = AUTH_ALG_MD5;
    int rc = parse_params(value, &pl, out->scratch, &out->scratch_len, &out->error);
    if (rc < 0) return rc;

    str_t qop = STR_NULL;
    bool have_qop = false;
    for (size_t i = 0; i < pl.n; i++) {
        str_t n = pl.p[i].name, v = pl.p[i].value;
        if (str_ieq_cstr(n, "username")) out->username = v;
        else if (str_ieq_cstr(n, "realm")) out->realm = v;
        else if (str_ieq_cstr(n, "nonce")) out->nonce = v;
        else if (str_ieq_cstr(n, "uri")) out->uri = v;
        else if (str_ieq_cstr(n, "response")) out->response = v;
        else if (str_ieq_cstr(n, "cnonce")) out->cnonce = v;
        else if (str_ieq_cstr(n, "opaque")) out->opaque = v;
        else if (str_ieq_cstr(n, "nc")) out->nc = v;
        else if (str_ieq_cstr(n, "qop")) {
            qop = v;
            have_qop = true;
        } else if (str_ieq_cstr(n, "algorithm")) {
            if (auth_algorithm_from_name(v, &out->algorithm) < 0) {
                out->error = "unsupported algorithm";
                return -ENOTSUP;
            }
        }
        /* Other auth-params (userhash, username*, extensions) are ignored:
         * RFC 3261 §25.1 allows them; we do not use them. */
    }
    /* A value given as "" counts as missing for the required parameters. */
    if (!out->username.len || !out->realm.len || !out->nonce.len || !out->uri.len || !out->response.len) {
        out->error = "missing username, realm, nonce, uri or response";
        return -EINVAL;
    }
    if (out->response.len != auth_algorithm_hex_len(out->algorithm) || !is_hex_str(out->response)) {
        out->error = "response is not a hex digest of the algorithm's length";
        return -EINVAL;
    }
    if (have_qop) {
        if (str_ieq_cstr(qop, "auth-int")) {
            out->error = "qop=auth-int is not supported";
            return -ENOTSUP;
        }
        if (!str_ieq_cstr(qop, "auth")) {
            out->error = "unknown qop";
            return -EINVAL;
        }
        out->qop = true;
        uint32_t v = 0;
        if (out->nc.len != 8 || !is_hex_str(out->nc)) { /* RFC 2617 §3.2.2: nc = 8LHEX */
            out->error = "nc is not 8 hex digits";
            return -EINVAL;
        }
        for (size_t i = 0; i < 8; i++) {
            char c = out->nc.s[i];
            unsigned d = c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
            v = (v << 4) | d;
        }
        if (v == 0) {
            out->error = "nc is zero";
            return -EINVAL;
        }
        out->nc_value = v;
    } else {
        /* RFC 2617 §3.2.2: without qop, cnonce and nc must not be sent;
         * tolerate them (some devices do) but do not use nc. */
        out->nc = STR_NULL;
    }
    if ((out->qop || alg_is_sess(out->algorithm)) && out->cnonce.len == 0) {
        out->error = "missing cnonce";
        return -EINVAL;
    }
    return 0;
}

/* ---- challenge (client side) ----------------------------------------- */

int auth_parse_challenge(str_t value, struct auth_challenge *out)
{
    struct param_list pl;
    memset(out, 0, offsetof(struct auth_challenge, scratch));
    out->algorithm = AUTH_ALG_MD5;
    int rc = parse_params(value, &pl, out->scratch, &out->scratch_len, &out->error);
    if (rc < 0) return rc;

    bool have_realm = false, have_qop = false;
    str_t qop = STR_NULL;
    for (size_t i = 0; i < pl.n; i++) {
        str_t n = pl.p[i].name, v = pl.p[i].value;
        if (str_ieq_cstr(n, "realm")) {
            out->realm = v;
            have_realm = true;
        } else if (str_ieq_cstr(n, "nonce")) out->nonce = v;
        else if (str_ieq_cstr(n, "opaque")) out->opaque = v;
        else if (str_ieq_cstr(n, "stale")) out->stale = str_ieq_cstr(v, "true");
        else if (str_ieq_cstr(n, "qop")) {
            qop = v;
            have_qop = true;
        } else if (str_ieq_cstr(n, "algorithm")) {
            if (auth_algorithm_from_name(v, &out->algorithm) < 0) {
                out->error = "unsupported algorithm";
                return -ENOTSUP;
            }
        }
        /* domain, charset, userhash and extensions are not needed to answer. */
    }
    if (!have_realm || out->nonce.len == 0) {
        out->error = "missing realm or nonce";
        return -EINVAL;
    }
    if (have_qop) { /* qop-options = "qop" EQUAL LDQUOT qop-value *("," qop-value) RDQUOT */
        str_t rest = qop;
        while (rest.len) {
            const char *comma = memchr(rest.s, ',', rest.len);
            size_t n = comma ? (size_t)(comma - rest.s) : rest.len;
            if (str_ieq_cstr(str_trim(str_make(rest.s, n)), "auth")) out->qop = true;
            rest = comma ? str_make(comma + 1, rest.len - n - 1) : STR_NULL;
        }
        if (!out->qop) {
            out->error = "qop offered without \"auth\"";
            return -ENOTSUP;
        }
    }
    return 0;
}

static int client_answer(const struct auth_challenge *ch, str_t user, const char *ha1, str_t method, str_t uri,
                         uint32_t nc, str_t cnonce, sbuf_t *out)
{
    static const char hex[] = "0123456789abcdef";
    char cnonce_buf[33], nc_buf[9], resp[AUTH_HEX_MAX + 1];
    bool need_cnonce = ch->qop || alg_is_sess(ch->algorithm);

    if (need_cnonce && cnonce.len == 0) {
        unsigned char rnd[16];
        if (RAND_bytes(rnd, sizeof rnd) != 1) return -EIO;
        for (size_t i = 0; i < sizeof rnd; i++) {
            cnonce_buf[2 * i] = hex[rnd[i] >> 4];
            cnonce_buf[2 * i + 1] = hex[rnd[i] & 15];
        }
        cnonce_buf[32] = '\0';
        cnonce = str_make(cnonce_buf, 32);
    }
    if (ch->qop) {
        if (nc == 0) return -EINVAL;
        snprintf(nc_buf, sizeof nc_buf, "%08x", (unsigned)nc);
    } else {
        nc_buf[0] = '\0';
    }

    struct digest_hasher h;
    if (digest_hasher_init(&h) < 0) return -EIO;
    int rc = digest_response(&h, ch->algorithm, ha1, ch->nonce, ch->qop, str_make(nc_buf, strlen(nc_buf)),
                             cnonce, method, uri, resp);
    digest_hasher_free(&h);
    if (rc < 0) return -EIO;

    /* RFC 3261 §22.4 / RFC 7616 §3.4: quoted-string for the values, tokens for
     * algorithm, nc and qop. */
    sbuf_append_cstr(out, "Digest username=");
    digest_append_quoted(out, user);
    sbuf_append_cstr(out, ", realm=");
    digest_append_quoted(out, ch->realm);
    sbuf_append_cstr(out, ", nonce=");
    digest_append_quoted(out, ch->nonce);
    sbuf_append_cstr(out, ", uri=");
    digest_append_quoted(out, uri);
    sbuf_printf(out, ", response=\"%s\", algorithm=%s", resp, auth_algorithm_name(ch->algorithm));
    if (need_cnonce) {
        sbuf_append_cstr(out, ", cnonce=");
        digest_append_quoted(out, cnonce);
    }
    if (ch->qop) sbuf_printf(out, ", nc=%s, qop=auth", nc_buf);
    if (ch->opaque.len) {
        sbuf_append_cstr(out, ", opaque=");
        digest_append_quoted(out, ch->opaque);
    }
    return out->failed ? -ENOMEM : 0;
}

/* Values we write must not carry line breaks (header injection). */
static bool answer_inputs_ok(str_t user, str_t method, str_t uri, str_t cnonce)
{
    return user.len && method.len && uri.len && digest_printable(user) && digest_printable(method) &&
           digest_printable(uri) && digest_printable(cnonce) && user.len <= AUTH_SCRATCH &&
           uri.len <= AUTH_MAX_HEADER && cnonce.len <= 256;
}

int auth_client_answer(const struct auth_challenge *ch, str_t user, str_t password, str_t method, str_t uri,
                       uint32_t nc, str_t cnonce, sbuf_t *out)
{
    char ha1[AUTH_HEX_MAX + 1];
    if (!answer_inputs_ok(user, method, uri, cnonce)) return -EINVAL;
    if (auth_ha1(ch->algorithm, user, ch->realm, password, ha1) < 0) return -EIO;
    return client_answer(ch, user, ha1, method, uri, nc, cnonce, out);
}

int auth_client_answer_ha1(const struct auth_challenge *ch, str_t user, str_t ha1, str_t method, str_t uri,
                           uint32_t nc, str_t cnonce, sbuf_t *out)
{
    char norm[AUTH_HEX_MAX + 1];
    if (!answer_inputs_ok(user, method, uri, cnonce)) return -EINVAL;
    if (digest_hex_normalize(ch->algorithm, ha1, norm) < 0) return -EINVAL;
    return client_answer(ch, user, norm, method, uri, nc, cnonce, out);
}
