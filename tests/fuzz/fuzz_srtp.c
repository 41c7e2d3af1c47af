/* fuzz_srtp.c — libFuzzer target for SRTP/SRTCP unprotect (media/srtp.h)
 * with both DTLS-SRTP profiles, AES128_CM_SHA1_80 and AEAD_AES_128_GCM
 * (the GCM primitives are ours, srtp_crypto.c).
 *
 * The input is read as a received packet by each profile's inbound
 * context, as RTP and as RTCP: whatever it holds, unprotect must fail
 * cleanly or succeed with a shorter length. The first byte also picks a
 * profile for a round trip: the rest as a plaintext packet (version bits
 * forced) is protected and must then unprotect to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/dtls.h"
#include "media/srtp.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

#define MAXP 2048

static struct msrtp *in_cm, *in_gcm, *out_cm, *out_gcm, *rin_cm, *rin_gcm;

static void setup(void)
{
    static const uint8_t key[DTLS_SRTP_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static const uint8_t salt[DTLS_SRTP_SALT_LEN] = {21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34};
    int st;
    in_cm = msrtp_new(DTLS_SRTP_AES128_CM_SHA1_80, true, key, 16, salt, 14, &st);
    in_gcm = msrtp_new(DTLS_SRTP_AEAD_AES_128_GCM, true, key, 16, salt, 12, &st);
    out_cm = msrtp_new(DTLS_SRTP_AES128_CM_SHA1_80, false, key, 16, salt, 14, &st);
    out_gcm = msrtp_new(DTLS_SRTP_AEAD_AES_128_GCM, false, key, 16, salt, 12, &st);
    rin_cm = msrtp_new(DTLS_SRTP_AES128_CM_SHA1_80, true, key, 16, salt, 14, &st);
    rin_gcm = msrtp_new(DTLS_SRTP_AEAD_AES_128_GCM, true, key, 16, salt, 12, &st);
    CHECK(in_cm && in_gcm && out_cm && out_gcm && rin_cm && rin_gcm);
}

static void unprotect_all(struct msrtp *c, const uint8_t *data, size_t size)
{
    static uint8_t buf[MAXP];
    memcpy(buf, data, size);
    size_t len = size;
    if (msrtp_unprotect_rtp(c, buf, &len) == MSRTP_OK) CHECK(len + msrtp_rtp_trailer(c) <= size);
    else CHECK(len == size);
    memcpy(buf, data, size);
    len = size;
    if (msrtp_unprotect_rtcp(c, buf, &len) == MSRTP_OK) CHECK(len + msrtp_rtcp_trailer(c) <= size);
    else CHECK(len == size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!in_cm) setup();
    if (size > MAXP - 64) return 0;
    unprotect_all(in_cm, data, size);
    unprotect_all(in_gcm, data, size);

    if (size < 2) return 0;
    bool gcm = data[0] & 1, rtcp = data[0] & 2;
    struct msrtp *o = gcm ? out_gcm : out_cm, *r = gcm ? rin_gcm : rin_cm;
    static uint8_t pkt[MAXP], orig[MAXP];
    size_t len = size - 1;
    memcpy(pkt, data + 1, len);
    pkt[0] = (uint8_t)((pkt[0] & 0x3f) | 0x80);   /* version 2 */
    if (rtcp && len >= 2) pkt[1] = (uint8_t)(200 + pkt[1] % 5);   /* SR..APP */
    memcpy(orig, pkt, len);
    size_t plen = len;
    int st = rtcp ? msrtp_protect_rtcp(o, pkt, &len, sizeof(pkt)) : msrtp_protect_rtp(o, pkt, &len, sizeof(pkt));
    if (st != MSRTP_OK) return 0;   /* a header libsrtp will not take (short, CSRC or extension overrun) */
    CHECK(len == plen + (rtcp ? msrtp_rtcp_trailer(o) : msrtp_rtp_trailer(o)));
    st = rtcp ? msrtp_unprotect_rtcp(r, pkt, &len) : msrtp_unprotect_rtp(r, pkt, &len);
    /* the same SSRC and sequence number may come again: a replay */
    if (st == MSRTP_ERR_REPLAY) return 0;
    CHECK(st == MSRTP_OK);
    CHECK(len == plen);
    CHECK(memcmp(pkt, orig, plen) == 0);
    return 0;
}
