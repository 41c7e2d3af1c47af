/* publish.c — answering PUBLISH (RFC 3903) for the presence package: the
 * SIP side of presence.c (event, credentials, expiry, content type, the
 * entity-tag headers). The request names one of our users; the caller
 * (subs.c) checked that. */
#include "subs/presence.h"
#include "subs/presence_int.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/log.h"
#include "base/str.h"
#include "registrar/location.h"
#include "registrar/users.h"
#include "subs/pidf.h"
#include "subs/subs.h"

/* A To tag for our answer (RFC 3261 §8.2.6.2): PUBLISH makes no dialog,
 * the tag only has to be ours. */
static void to_tag(char out[17])
{
    unsigned char r[8] = {0};
    if (RAND_bytes(r, sizeof(r)) != 1) memset(r, 0x5a, sizeof(r));
    for (size_t i = 0; i < sizeof(r); i++) snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static void answer(struct txn *st, int status, const char *reason, const char *const *lines, size_t n)
{
    str_t extra[4];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 4; i++)
        if (lines[i]) extra[k++] = str_from_cstr(lines[i]);
    char tag[17];
    to_tag(tag);
    /* Refusals keep no transaction (issue 9), like every refusal here. */
    int rc = (status >= 300 ? txn_reject : txn_respond)(st, status, reason, str_from_cstr(tag), extra, k, STR_NULL,
                                                         STR_NULL);
    if (rc < 0) log_warn("presence: cannot answer PUBLISH %d: %s", status, strerror(-rc));
}

static void refuse(struct txn *st, const struct transport_rx *rx, int status, const char *reason, const char *line,
                   const char *why)
{
    log_warn_rl("presence: %d to PUBLISH from %s: %s", status, rx->src_text, why ? why : reason);
    const char *lines[1] = {line};
    answer(st, status, reason, lines, 1);
}

/* Digest like REGISTER: 1 when the publisher may publish for aor, else 0
 * with the request answered (401, 403, 400, 500). */
static int authorise(const struct presence_deps *d, struct txn *st, const struct transport_rx *rx, const char *aor)
{
    if (!d->require_auth) return 1;
    struct digest_check_result res;
    enum digest_check c = digest_check_request(d->digest, rx, SIP_HDR_AUTHORIZATION, &res);
    if (c == DIGEST_CHECK_OK) {
        if (d->cfg->presence_publish_any_user || strcmp(res.user->name, aor) == 0) return 1;
        refuse(st, rx, 403, "Forbidden", NULL, "a user publishes only its own presence");
        return 0;
    }
    if (c == DIGEST_CHECK_BAD_HEADER || c == DIGEST_CHECK_URI_MISMATCH) {
        refuse(st, rx, 400, c == DIGEST_CHECK_BAD_HEADER ? "Bad Authorization Header" : "Digest URI Mismatch", NULL,
               res.why);
        return 0;
    }
    if (c == DIGEST_CHECK_LOCKED) {
        refuse(st, rx, 403, "Too Many Failed Attempts", NULL, res.why);
        return 0;
    }
    if (c != DIGEST_CHECK_NONE && res.log) log_warn_rl("presence: 401 to PUBLISH from %s: %s", rx->src_text, res.why);
    sbuf_t sb;
    sbuf_init(&sb);
    if (digest_check_challenge(d->digest, false, c == DIGEST_CHECK_STALE, rx, &sb) < 0 || sb.failed) {
        sbuf_free(&sb);
        refuse(st, rx, 500, "Server Internal Error", NULL, "no challenge");
        return 0;
    }
    str_t extra[] = {sbuf_lines(&sb)};
    char tag[17];
    to_tag(tag);
    txn_respond_stateless(st, 401, "Unauthorized", str_from_cstr(tag), extra, 1, STR_NULL, STR_NULL);
    sbuf_free(&sb);
    return 0;
}

/* The SIP-If-Match value (RFC 3903 §11.3.2), or an empty string. */
static str_t if_match(const struct sip_msg *m)
{
    for (uint32_t i = 0; i < m->header_count; i++)
        if (str_ieq_cstr(m->headers[i].name, "SIP-If-Match")) return str_trim(m->headers[i].value);
    return STR_NULL;
}

/* "application/pidf+xml" with any parameters and in any case. */
static bool is_pidf_type(str_t ct)
{
    size_t n = 0;
    while (n < ct.len && ct.s[n] != ';') n++;
    return str_ieq_cstr(str_trim(str_make(ct.s, n)), PIDF_CONTENT_TYPE);
}

/* 1 and *out the granted expiry, or 0 with the request answered (423). */
static int granted_expires(const struct subs_config *cfg, struct txn *st, const struct transport_rx *rx, int64_t *out)
{
    int64_t asked = rx->msg->expires < 0 ? PRESENCE_DEFAULT_EXPIRES : rx->msg->expires;
    if (asked > 0 && asked < cfg->min_expires) {
        char line[40];
        snprintf(line, sizeof(line), "Min-Expires: %d", cfg->min_expires);
        refuse(st, rx, 423, "Interval Too Brief", line, "expiry below min_expires");
        return 0;
    }
    *out = asked > cfg->max_expires ? cfg->max_expires : asked;
    return 1;
}

/* What the answer needs once the outcome is known (now, or when Redis
 * answered for another node's publication). */
struct publish_ctx {
    struct txn *st;
    bool document;                     /* the PUBLISH carried a body */
    int tuples, open;
    char src[64];
    char aor[LOCATION_MAX_AOR];
};

static void publish_done(void *arg, const struct presence_outcome *out)
{
    struct publish_ctx *c = arg;
    struct txn *st = c->st;
    if (out->status != 200) {
        char warn[200];
        snprintf(warn, sizeof(warn), "Warning: 399 cascade \"%s\"", out->why ? out->why : out->reason);
        log_warn_rl("presence: %d to PUBLISH from %s: %s", out->status, c->src, out->why ? out->why : out->reason);
        const char *lines[1] = {out->why ? warn : NULL};
        answer(st, out->status, out->reason, lines, 1);
        free(c);
        return;
    }
    char tagline[PRESENCE_ETAG_SIZE + 16], expline[32];
    snprintf(tagline, sizeof(tagline), "SIP-ETag: %s", out->etag);
    snprintf(expline, sizeof(expline), "Expires: %u", out->expires);
    const char *lines[2] = {out->expires ? tagline : NULL, expline};
    log_info("presence: %s published for %s (%u s, tag %s, %s: %d tuples, %d open)", c->src, c->aor, out->expires,
             out->expires ? out->etag : "removed", c->document ? "document" : "refresh", c->tuples, c->open);
    answer(st, 200, "OK", lines, 2);
    free(c);
}

void presence_on_publish(struct presence *p, struct txn *st, const struct transport_rx *rx, const char *aor)
{
    const struct presence_deps *d = &p->d;
    const struct sip_msg *m = rx->msg;
    const struct sip_header *ev = sip_msg_header(m, SIP_HDR_EVENT);
    char pkg[16];
    if (!ev || subs_event_package(ev->value, pkg, sizeof(pkg)) < 0 || strcmp(pkg, "presence") != 0)
        return refuse(st, rx, 489, "Bad Event", "Allow-Events: presence", "PUBLISH for a package we do not serve");
    if (!authorise(d, st, rx, aor)) return;
    int64_t expires;
    if (!granted_expires(d->cfg, st, rx, &expires)) return;
    if (m->body.len && !is_pidf_type(m->content_type))
        return refuse(st, rx, 415, "Unsupported Media Type", "Accept: " PIDF_CONTENT_TYPE, "not application/pidf+xml");
    char etag[PRESENCE_ETAG_SIZE + 1];
    str_t im = if_match(m);
    if (im.len >= sizeof(etag)) return refuse(st, rx, 412, "Conditional Request Failed", NULL, "entity tag too long");
    str_copy(etag, sizeof(etag), im);
    struct publish_ctx *c = calloc(1, sizeof(*c));
    if (!c) return refuse(st, rx, 500, "Server Internal Error", NULL, "no memory");
    c->st = st;
    snprintf(c->src, sizeof(c->src), "%s", rx->src_text);
    snprintf(c->aor, sizeof(c->aor), "%s", aor);
    c->document = m->body.len > 0;
    if (m->body.len) pidf_summary(m->body.s, m->body.len, &c->tuples, &c->open);
    struct presence_publish req = {.aor = aor, .if_match = im.len ? etag : NULL, .expires = expires,
                                   .body = m->body.s, .len = m->body.len};
    /* a tag this node does not hold may be another node's (mirror_presence):
     * then the answer waits for Redis; the transaction lives until it */
    presence_publish_any(p, &req, publish_done, c);
}
