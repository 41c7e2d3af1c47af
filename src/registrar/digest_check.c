/* digest_check.c — a request's digest credentials against our users (see
 * digest_check.h). */
#include "registrar/digest_check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "events/events.h"
#include "auth/digest.h"
#include "base/clock.h"
#include "base/log.h"
#include "registrar/users.h"

void digest_checker_init(struct digest_checker *dc, const struct auth_config *cfg, const struct sip_local *local,
                         struct users *users, struct auth_server *auth, struct event_bus *events)
{
    *dc = (struct digest_checker){.local = local, .users = users, .auth = auth, .events = events};
    snprintf(dc->algorithm, sizeof(dc->algorithm), "%s", cfg->algorithm);
}

static bool ip_of(str_t host, uint16_t port, struct sockaddr_storage *out)
{
    char ip[INET6_ADDRSTRLEN + 2];
    if (host.len >= 2 && host.s[0] == '[' && host.s[host.len - 1] == ']') host = str_make(host.s + 1, host.len - 2);
    if (!host.len || host.len >= sizeof(ip)) return false;
    memcpy(ip, host.s, host.len);
    ip[host.len] = '\0';
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *a4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        return true;
    }
    if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        return true;
    }
    return false;
}

static bool same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return a->ss_family == AF_INET6 && !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                                               &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
}

bool digest_edge_peer(const struct config_cidr *edges, int n, const struct transport_rx *rx,
                      struct sockaddr_storage *out)
{
    if (n <= 0 || !rx || !rx->msg || !config_cidr_match(edges, n, (const struct sockaddr *)&rx->src)) return false;
    struct sip_list_iter it;
    str_t item;
    struct sip_via top, next;
    struct sockaddr_storage edge;
    sip_list_iter_init(&it, rx->msg, SIP_HDR_VIA);
    if (!sip_list_iter_next(&it, &item) || sip_via_parse(item, &top) != 0 || top.received.len ||
        !ip_of(top.host, 0, &edge) || !same_ip(&edge, &rx->src))
        return false;
    if (!sip_list_iter_next(&it, &item) || sip_via_parse(item, &next) != 0) return false;
    uint16_t port = next.has_rport && next.rport ? next.rport : next.port ? next.port : 5060;
    return ip_of(next.received.len ? next.received : next.host, port, out);
}

/* The source a request counts by: the phone behind a trusted edge, else
 * where it came from. */
static const struct sockaddr *peer_of(const struct digest_checker *dc, const struct transport_rx *rx,
                                      struct sockaddr_storage *phone)
{
    if (dc->nedges && digest_edge_peer(dc->edges, dc->nedges, rx, phone)) return (const struct sockaddr *)phone;
    return (const struct sockaddr *)&rx->src;
}

static uint64_t now_s(void) { return (uint64_t)(clock_wall_ms() / 1000); }

static bool offer_sha256(const struct digest_checker *dc)
{
    return !strcasecmp(dc->algorithm, "SHA-256") || !strcasecmp(dc->algorithm, "both");
}

static bool offer_md5(const struct digest_checker *dc) { return strcasecmp(dc->algorithm, "SHA-256") != 0; }

/* Whether the digest-uri names the Request-URI (RFC 2617 §3.2.2.5). */
static bool digest_uri_matches(str_t duri, const struct sip_msg *m)
{
    if (str_eq(duri, m->ruri_raw)) return true;
    struct sip_uri u;
    return sip_uri_parse(duri, &u) == 0 && sip_uri_equal(&u, &m->ruri);
}

/* A refusal the throttle does not space out (stale, bad headers): always
 * worth a line; the caller prints it through base/log's per-call-site
 * limiter (log_warn_rl), so a flood of them stays bounded. */
static void log_always(struct digest_check_result *out) { out->log = true; }

static const char *failure_reason(enum auth_result r, bool unknown, const struct auth_throttle_note *n)
{
    if (n->locked_now) return n->locked == AUTH_THROTTLE_USER ? "locked-user" : "locked-source";
    if (unknown) return "unknown-user";
    switch (r) {
    case AUTH_BAD_NONCE: return "bad-nonce";
    case AUTH_REPLAY: return "replay";
    default: return "wrong-password";
    }
}

/* auth.failed, when the throttle says this user+source is due a report. */
static void publish_failure(const struct digest_checker *dc, const struct transport_rx *rx, const struct auth_credentials *c,
                            const char *reason, uint32_t count)
{
    char user[65], realm[129];
    snprintf(user, sizeof(user), "%.*s", (int)(c->username.len > 64 ? 64 : c->username.len), c->username.s);
    snprintf(realm, sizeof(realm), "%.*s", (int)(c->realm.len > 128 ? 128 : c->realm.len), c->realm.s);
    struct sockaddr_storage phone;
    char remote[TRANSPORT_ADDR_TEXT];
    if (dc->nedges && digest_edge_peer(dc->edges, dc->nedges, rx, &phone))
        transport_addr_text(&phone, remote, sizeof(remote));
    else
        snprintf(remote, sizeof(remote), "%s", rx->src_text);
    struct event_field f[] = {
        EVENT_STR("user", user),
        EVENT_STR("realm", realm),
        EVENT_STR("remote", remote),
        EVENT_STR("transport", sip_transport_param(rx->proto)),
        EVENT_STR("reason", reason),
        EVENT_INT("count", count),
    };
    if (dc->events) event_publish_fields(dc->events, "auth.failed", f, sizeof(f) / sizeof(f[0]));
}

/* The outcome of a refusal the auth layer counted or refused as locked. */
static enum digest_check throttled(const struct digest_checker *dc, const struct transport_rx *rx, const struct auth_credentials *c,
                                   enum auth_result res, bool unknown, const struct auth_verify_info *info,
                                   struct digest_check_result *out)
{
    const struct auth_throttle_note *n = &info->throttle;
    out->user = NULL;
    out->log = n->report;
    int ul = (int)(c->username.len > 64 ? 64 : c->username.len);
    if (res == AUTH_LOCKED) {
        out->retry_after = n->retry_after;
        snprintf(out->why, sizeof(out->why), "user \"%.*s\": too many failed attempts from %s, %u refused, %u s left",
                 ul, c->username.s, n->locked == AUTH_THROTTLE_USER ? "anywhere (user locked)" : "this source",
                 n->count, n->retry_after);
        return DIGEST_CHECK_LOCKED;
    }
    const char *reason = failure_reason(res, unknown, n);
    if (unknown)
        snprintf(out->why, sizeof(out->why), "unknown user \"%.*s\" (%u failure(s) since the last report)%s", ul,
                 c->username.s, n->count, n->locked_now ? ", locked out" : "");
    else
        snprintf(out->why, sizeof(out->why), "user %.*s: %s (%u failure(s) since the last report)%s", ul,
                 c->username.s, auth_result_name(res), n->count, n->locked_now ? ", locked out" : "");
    if (n->report) publish_failure(dc, rx, c, reason, n->count);
    return DIGEST_CHECK_FAILED;
}

static enum digest_check check_request(const struct digest_checker *dc, const struct transport_rx *rx,
                                       enum sip_hdr hdr, const struct sockaddr *peer, struct digest_check_result *out)
{
    const struct sip_msg *m = rx->msg;
    uint64_t now = now_s();
    out->user = NULL;
    out->nonce_reused = false;
    out->log = false;
    out->retry_after = 0;
    out->why[0] = '\0';
    str_t realm = str_from_cstr(dc->local->realm);
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
            log_always(out);
            return DIGEST_CHECK_BAD_HEADER;
        }
        if (str_eq(creds.realm, realm)) {
            found = true;
            break;
        }
    }
    if (!found) {
        /* The first request of every client: challenged, not a refusal to log. */
        snprintf(out->why, sizeof(out->why), "no credentials for realm %s", dc->local->realm);
        return DIGEST_CHECK_NONE;
    }
    if (!digest_uri_matches(creds.uri, m)) {
        snprintf(out->why, sizeof(out->why), "digest uri \"%.*s\" is not the Request-URI",
                 (int)(creds.uri.len > 100 ? 100 : creds.uri.len), creds.uri.s);
        log_always(out);
        return DIGEST_CHECK_URI_MISMATCH;
    }
    struct auth_verify_info info;
    const struct users_entry *u = dc->users ? users_find(dc->users, creds.username) : NULL;
    bool sha = auth_algorithm_base(creds.algorithm) == AUTH_ALG_SHA256;
    const char *ha1 = u ? (sha ? u->ha1_sha256 : u->ha1_md5) : NULL;
    if (!ha1 || !ha1[0]) {
        /* Unknown user, or none of this algorithm: a failure like a wrong
         * password, so names cannot be guessed any faster. */
        enum auth_result res = auth_refuse_unknown(dc->auth, &creds, peer, now, &info);
        return throttled(dc, rx, &creds, res, true, &info, out);
    }
    enum auth_result res = auth_verify_from(dc->auth, &creds, m->method_name, str_from_cstr(ha1), peer, now, &info);
    out->user = u;
    switch (res) {
    case AUTH_OK:
        out->nonce_reused = info.nonce_reused;
        return DIGEST_CHECK_OK;
    case AUTH_STALE:
        snprintf(out->why, sizeof(out->why), "stale nonce (user %s%s)", u->name,
                 info.peer_changed ? ", nonce issued to another address" : "");
        log_always(out);
        return DIGEST_CHECK_STALE;
    case AUTH_MALFORMED:
        snprintf(out->why, sizeof(out->why), "user %s: %s", u->name, auth_result_name(res));
        out->user = NULL;
        log_always(out);
        return DIGEST_CHECK_FAILED;
    default:
        /* Wrong password, a replayed nc, a nonce we did not issue, or a
         * locked-out source/user: counted by the auth layer. The caller
         * challenges afresh (RFC 3261 §22.4 lets the UA retry) or, when
         * locked, answers 403. */
        return throttled(dc, rx, &creds, res, false, &info, out);
    }
}

enum digest_check digest_check_request(const struct digest_checker *dc, const struct transport_rx *rx, enum sip_hdr hdr,
                                       struct digest_check_result *out)
{
    struct sockaddr_storage phone;
    const struct sockaddr *peer = peer_of(dc, rx, &phone);
    enum digest_check r = check_request(dc, rx, hdr, peer, out);
    if (r != DIGEST_CHECK_OK && out->why[0] && peer == (const struct sockaddr *)&phone) {
        /* The caller logs why with the edge's address: name the phone. */
        char t[TRANSPORT_ADDR_TEXT];
        transport_addr_text(&phone, t, sizeof(t));
        size_t n = strlen(out->why);
        snprintf(out->why + n, sizeof(out->why) - n, " (phone %s behind the edge)", t);
    }
    return r;
}

int digest_check_challenge(const struct digest_checker *dc, bool proxy, bool stale, const struct transport_rx *rx, sbuf_t *b)
{
    str_t realm = str_from_cstr(dc->local->realm);
    uint64_t t = now_s();
    enum auth_algorithm algs[2];
    int na = 0, rc = 0;
    if (offer_sha256(dc)) algs[na++] = AUTH_ALG_SHA256;
    if (offer_md5(dc)) algs[na++] = AUTH_ALG_MD5;
    struct sockaddr_storage phone;
    const struct sockaddr *peer = rx ? peer_of(dc, rx, &phone) : NULL;
    for (int i = 0; i < na && rc == 0; i++) {
        sbuf_append_cstr(b, proxy ? "Proxy-Authenticate: " : "WWW-Authenticate: ");
        rc = auth_challenge_for(dc->auth, realm, algs[i], true, stale, peer, t, b);
        sbuf_append_cstr(b, "\r\n");
    }
    if (rc < 0) return rc;
    return b->failed ? -ENOMEM : 0;
}

void digest_check_consume(const struct digest_checker *dc, struct sip_msg *m, enum sip_hdr hdr)
{
    str_t realm = str_from_cstr(dc->local->realm);
    for (uint32_t k = m->header_count; k-- > 0;) {
        if (m->headers[k].type != hdr) continue;
        struct auth_credentials creds;
        if (auth_parse_credentials(m->headers[k].value, &creds) == 0 && str_eq(creds.realm, realm))
            sip_msg_remove_header(m, k);
    }
}
