/* srtp.c — SRTP/SRTCP directions on libsrtp2 (see srtp.h).
 *
 * libsrtp keeps one session per srtp_t with a policy per SSRC; an
 * ssrc_any_inbound / ssrc_any_outbound policy makes one srtp_t serve every
 * SSRC of a direction, which is what a WebRTC transport needs (the SSRCs are
 * learnt from the packets). Replay protection lives in libsrtp's per-SSRC
 * stream, made on the first packet of each SSRC. */
#include "media/srtp.h"
#include "media/srtp_crypto.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <srtp2/srtp.h>

#define RTP_MIN 12      /* fixed header (RFC 3550 §5.1) */
#define RTCP_MIN 8      /* common header and sender SSRC (RFC 3550 §6.4) */

struct msrtp {
    srtp_t session;
    uint16_t profile;
    uint8_t rtp_trailer, rtcp_trailer;
};

#define CM_TAG 10       /* HMAC-SHA1 truncated to 80 bits (RFC 3711 §8.2) */
#define GCM_TAG 16      /* RFC 7714 §14.2 */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static srtp_err_status_t init_status = srtp_err_status_init_fail;

static void global_init(void)
{
    init_status = srtp_init();
    /* A failed replacement leaves libsrtp2's own primitives: slower, as
     * correct (msrtp_crypto_name says which). */
    if (init_status == srtp_err_status_ok) {
        (void)msrtp_crypto_install();
        (void)msrtp_crypto_install_gcm();
    }
}

void msrtp_global_init(void) { pthread_once(&init_once, global_init); }

const char *msrtp_strerror(int status)
{
    switch (status) {
    case MSRTP_OK: return "ok";
    case MSRTP_ERR_PARAM: return "bad parameter";
    case MSRTP_ERR_ROOM: return "no room for the SRTP trailer";
    case MSRTP_ERR_AUTH: return "auth failed";
    case MSRTP_ERR_REPLAY: return "replayed";
    case MSRTP_ERR_NOMEM: return "out of memory";
    default: return "SRTP failure";
    }
}

static int map(srtp_err_status_t e)
{
    switch (e) {
    case srtp_err_status_ok: return MSRTP_OK;
    case srtp_err_status_auth_fail: return MSRTP_ERR_AUTH;
    case srtp_err_status_replay_fail:
    case srtp_err_status_replay_old: return MSRTP_ERR_REPLAY;
    case srtp_err_status_bad_param:
    case srtp_err_status_parse_err: return MSRTP_ERR_PARAM;
    case srtp_err_status_alloc_fail: return MSRTP_ERR_NOMEM;
    default: return MSRTP_ERR_FAIL;
    }
}

struct msrtp *msrtp_new(uint16_t profile, bool inbound, const uint8_t *key, size_t key_len, const uint8_t *salt,
                        size_t salt_len, int *status)
{
    int st = MSRTP_ERR_PARAM;
    struct msrtp *c = NULL;
    uint8_t master[DTLS_SRTP_KEY_LEN + DTLS_SRTP_SALT_LEN];
    bool gcm = profile == DTLS_SRTP_AEAD_AES_128_GCM;
    if (!dtls_srtp_salt_len(profile) || key_len != DTLS_SRTP_KEY_LEN || salt_len != dtls_srtp_salt_len(profile) ||
        !key || !salt)
        goto out;
    pthread_once(&init_once, global_init);
    st = MSRTP_ERR_FAIL;
    if (init_status != srtp_err_status_ok) goto out;
    st = MSRTP_ERR_NOMEM;
    if (!(c = calloc(1, sizeof(*c)))) goto out;

    /* libsrtp takes the master key and salt as one buffer, key first. */
    memcpy(master, key, key_len);
    memcpy(master + key_len, salt, salt_len);
    srtp_policy_t p;
    memset(&p, 0, sizeof(p));
    if (gcm) {
        /* RFC 7714: SRTP and SRTCP both encrypted, 16-byte tags; libsrtp
         * takes the 12-byte salt after the key. */
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtcp);
    } else {
        srtp_crypto_policy_set_rtp_default(&p.rtp);   /* AES_CM_128_HMAC_SHA1_80 */
        srtp_crypto_policy_set_rtcp_default(&p.rtcp);
    }
    c->profile = profile;
    c->rtp_trailer = gcm ? GCM_TAG : CM_TAG;
    c->rtcp_trailer = (uint8_t)(4 + c->rtp_trailer);
    p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    p.key = master;
    p.window_size = MSRTP_REPLAY_WINDOW;
    /* A NACK is answered with the very packet sent before (same payload,
     * so no keystream reuse on different data). */
    p.allow_repeat_tx = inbound ? 0 : 1;
    st = map(srtp_create(&c->session, &p));
    memset(master, 0, sizeof(master));
    if (st == MSRTP_OK) goto out;
    free(c);
    c = NULL;
out:
    if (status) *status = st;
    return c;
}

void msrtp_free(struct msrtp *c)
{
    if (!c) return;
    srtp_dealloc(c->session);
    free(c);
}

uint16_t msrtp_profile(const struct msrtp *c) { return c->profile; }
size_t msrtp_rtp_trailer(const struct msrtp *c) { return c->rtp_trailer; }
size_t msrtp_rtcp_trailer(const struct msrtp *c) { return c->rtcp_trailer; }

int msrtp_pair_from_dtls(const struct dtls_srtp_keys *k, enum dtls_role we, struct msrtp **in, struct msrtp **out)
{
    bool server = we == DTLS_ROLE_SERVER;
    int st;
    size_t sl = dtls_srtp_salt_len(k->profile);
    struct msrtp *i = msrtp_new(k->profile, true, server ? k->client_key : k->server_key, DTLS_SRTP_KEY_LEN,
                                server ? k->client_salt : k->server_salt, sl, &st);
    if (!i) return st;
    struct msrtp *o = msrtp_new(k->profile, false, server ? k->server_key : k->client_key, DTLS_SRTP_KEY_LEN,
                                server ? k->server_salt : k->client_salt, sl, &st);
    if (!o) {
        msrtp_free(i);
        return st;
    }
    *in = i;
    *out = o;
    return MSRTP_OK;
}

/* The checks libsrtp leaves to its caller: a header long enough to read
 * the SSRC from, version 2, and lengths that fit its int. */
static bool plausible(const uint8_t *buf, size_t len, size_t min)
{
    return buf && len >= min && len <= INT_MAX / 2 && (buf[0] >> 6) == 2;
}

int msrtp_protect_rtp(struct msrtp *c, uint8_t *buf, size_t *len, size_t cap)
{
    if (!plausible(buf, *len, RTP_MIN)) return MSRTP_ERR_PARAM;
    if (cap < *len || cap - *len < c->rtp_trailer) return MSRTP_ERR_ROOM;
    int n = (int)*len;
    int st = map(srtp_protect(c->session, buf, &n));
    if (st == MSRTP_OK) *len = (size_t)n;
    return st;
}

int msrtp_unprotect_rtp(struct msrtp *c, uint8_t *buf, size_t *len)
{
    if (!plausible(buf, *len, RTP_MIN + (size_t)c->rtp_trailer)) return MSRTP_ERR_PARAM;
    int n = (int)*len;
    int st = map(srtp_unprotect(c->session, buf, &n));
    if (st == MSRTP_OK) *len = (size_t)n;
    return st;
}

int msrtp_protect_rtcp(struct msrtp *c, uint8_t *buf, size_t *len, size_t cap)
{
    if (!plausible(buf, *len, RTCP_MIN)) return MSRTP_ERR_PARAM;
    if (cap < *len || cap - *len < c->rtcp_trailer) return MSRTP_ERR_ROOM;
    int n = (int)*len;
    int st = map(srtp_protect_rtcp(c->session, buf, &n));
    if (st == MSRTP_OK) *len = (size_t)n;
    return st;
}

int msrtp_unprotect_rtcp(struct msrtp *c, uint8_t *buf, size_t *len)
{
    if (!plausible(buf, *len, RTCP_MIN + (size_t)c->rtcp_trailer)) return MSRTP_ERR_PARAM;
    int n = (int)*len;
    int st = map(srtp_unprotect_rtcp(c->session, buf, &n));
    if (st == MSRTP_OK) *len = (size_t)n;
    return st;
}
