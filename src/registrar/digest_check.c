/* digest_check.c — a request's digest credentials against our users (see
 * digest_check.h). */
#include "registrar/digest_check.h"

#include <errno.h>
#include <stdio.h>
#include <strings.h>

#include "app/worker.h"
#include "auth/digest.h"
#include "base/clock.h"
#include "registrar/users.h"

static uint64_t now_s(void) { return (uint64_t)(clock_wall_ms() / 1000); }

static bool offer_sha256(const struct worker *w)
{
    return !strcasecmp(w->cfg.auth.algorithm, "SHA-256") || !strcasecmp(w->cfg.auth.algorithm, "both");
}

static bool offer_md5(const struct worker *w) { return strcasecmp(w->cfg.auth.algorithm, "SHA-256") != 0; }

/* Whether the digest-uri names the Request-URI (RFC 2617 §3.2.2.5). */
static bool digest_uri_matches(str_t duri, const struct sip_msg *m)
{
    if (str_eq(duri, m->ruri_raw)) return true;
    struct sip_uri u;
    return sip_uri_parse(duri, &u) == 0 && sip_uri_equal(&u, &m->ruri);
}

enum digest_check digest_check_request(struct worker *w, const struct sip_msg *m, enum sip_hdr hdr,
                                       struct digest_check_result *out)
{
    out->user = NULL;
    out->why[0] = '\0';
    str_t realm = str_from_cstr(w->realm);
    struct auth_credentials creds;
    bool found = false;
    int seen = 0;
    for (const struct sip_header *h = sip_msg_header(m, hdr); h && seen < DIGEST_CHECK_MAX_HEADERS;
         h = sip_msg_header_next(m, h), seen++) {
        int rc = auth_parse_credentials(h->value, &creds);
        if (rc == -ENOTSUP) continue; /* another scheme or algorithm: look at the next one */
        if (rc < 0) {
            snprintf(out->why, sizeof(out->why), "bad %s (%s)",
                     hdr == SIP_HDR_PROXY_AUTHORIZATION ? "Proxy-Authorization" : "Authorization",
                     creds.error ? creds.error : "?");
            return DIGEST_CHECK_BAD_HEADER;
        }
        if (str_eq(creds.realm, realm)) {
            found = true;
            break;
        }
    }
    if (!found) {
        snprintf(out->why, sizeof(out->why), "no credentials for realm %s", w->realm);
        return DIGEST_CHECK_NONE;
    }
    if (!digest_uri_matches(creds.uri, m)) {
        snprintf(out->why, sizeof(out->why), "digest uri \"%.*s\" is not the Request-URI",
                 (int)(creds.uri.len > 100 ? 100 : creds.uri.len), creds.uri.s);
        return DIGEST_CHECK_URI_MISMATCH;
    }
    const struct users_entry *u = w->users ? users_find(w->users, creds.username) : NULL;
    if (!u) {
        snprintf(out->why, sizeof(out->why), "unknown user \"%.*s\"",
                 (int)(creds.username.len > 64 ? 64 : creds.username.len), creds.username.s);
        return DIGEST_CHECK_FAILED;
    }
    bool sha = auth_algorithm_base(creds.algorithm) == AUTH_ALG_SHA256;
    const char *ha1 = sha ? u->ha1_sha256 : u->ha1_md5;
    if (!ha1[0]) {
        snprintf(out->why, sizeof(out->why), "user %s has no %s credential", u->name, sha ? "SHA-256" : "MD5");
        return DIGEST_CHECK_FAILED;
    }
    enum auth_result res = auth_verify(w->auth, &creds, m->method_name, str_from_cstr(ha1), now_s());
    out->user = u;
    switch (res) {
    case AUTH_OK: return DIGEST_CHECK_OK;
    case AUTH_STALE:
        snprintf(out->why, sizeof(out->why), "stale nonce (user %s)", u->name);
        return DIGEST_CHECK_STALE;
    default:
        /* Wrong password, a replayed nc, a nonce we did not issue: the
         * caller challenges afresh (RFC 3261 §22.4 lets the UA retry). */
        snprintf(out->why, sizeof(out->why), "user %s: %s", u->name, auth_result_name(res));
        out->user = NULL;
        return DIGEST_CHECK_FAILED;
    }
}

int digest_check_challenge(struct worker *w, bool proxy, bool stale, sbuf_t *b)
{
    str_t realm = str_from_cstr(w->realm);
    uint64_t t = now_s();
    enum auth_algorithm algs[2];
    int na = 0, rc = 0;
    if (offer_sha256(w)) algs[na++] = AUTH_ALG_SHA256;
    if (offer_md5(w)) algs[na++] = AUTH_ALG_MD5;
    for (int i = 0; i < na && rc == 0; i++) {
        sbuf_append_cstr(b, proxy ? "Proxy-Authenticate: " : "WWW-Authenticate: ");
        rc = auth_challenge(w->auth, realm, algs[i], true, stale, t, b);
        sbuf_append_cstr(b, "\r\n");
    }
    if (rc < 0) return rc;
    return b->failed ? -ENOMEM : 0;
}

void digest_check_consume(struct worker *w, struct sip_msg *m, enum sip_hdr hdr)
{
    str_t realm = str_from_cstr(w->realm);
    for (uint32_t k = m->header_count; k-- > 0;) {
        if (m->headers[k].type != hdr) continue;
        struct auth_credentials creds;
        if (auth_parse_credentials(m->headers[k].value, &creds) == 0 && str_eq(creds.realm, realm))
            sip_msg_remove_header(m, k);
    }
}
