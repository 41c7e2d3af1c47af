/* test_srtp.c — SRTP/SRTCP directions from DTLS-SRTP keys (RFC 3711,
 * RFC 5764 §4.2).
 *
 * The client side protects, the server side unprotects (and back). One test
 * recomputes a protected packet from the RFC alone — key derivation (§4.3),
 * AES-CM (§4.1.1) and the HMAC-SHA1 tag over packet and ROC (§4.2) with
 * OpenSSL — so the wrapper is checked against the RFC, not only against
 * itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "media/dtls.h"
#include "media/srtp.h"
#include "media/srtp_crypto.h"

/* What AES128_CM_SHA1_80 adds (the MSRTP_* maxima are GCM's). */
#define CM_RTP_TRAILER 10
#define CM_RTCP_TRAILER 14

static struct dtls_srtp_keys test_keys(void)
{
    struct dtls_srtp_keys k = {.profile = DTLS_SRTP_AES128_CM_SHA1_80};
    for (int i = 0; i < DTLS_SRTP_KEY_LEN; i++) k.client_key[i] = (uint8_t)(0x10 + i), k.server_key[i] = (uint8_t)(0x80 + i);
    for (int i = 0; i < DTLS_SRTP_SALT_LEN; i++) k.client_salt[i] = (uint8_t)(0x40 + i), k.server_salt[i] = (uint8_t)(0xc0 + i);
    return k;
}

/* The same for AEAD_AES_128_GCM: 12-byte salts (RFC 7714 §12). */
static struct dtls_srtp_keys test_keys_gcm(void)
{
    struct dtls_srtp_keys k = test_keys();
    k.profile = DTLS_SRTP_AEAD_AES_128_GCM;
    k.salt_len = DTLS_SRTP_GCM_SALT_LEN;
    k.client_salt[12] = k.client_salt[13] = k.server_salt[12] = k.server_salt[13] = 0;
    return k;
}

/* Both ends of one association. */
struct ends {
    struct msrtp *c_in, *c_out, *s_in, *s_out;
};

static void ends_open_keys(struct ends *e, struct dtls_srtp_keys k)
{
    assert_int_equal(msrtp_pair_from_dtls(&k, DTLS_ROLE_CLIENT, &e->c_in, &e->c_out), MSRTP_OK);
    assert_int_equal(msrtp_pair_from_dtls(&k, DTLS_ROLE_SERVER, &e->s_in, &e->s_out), MSRTP_OK);
}

static void ends_open(struct ends *e)
{
    struct dtls_srtp_keys k = test_keys();
    assert_int_equal(msrtp_pair_from_dtls(&k, DTLS_ROLE_CLIENT, &e->c_in, &e->c_out), MSRTP_OK);
    assert_int_equal(msrtp_pair_from_dtls(&k, DTLS_ROLE_SERVER, &e->s_in, &e->s_out), MSRTP_OK);
}

static void ends_close(struct ends *e)
{
    msrtp_free(e->c_in);
    msrtp_free(e->c_out);
    msrtp_free(e->s_in);
    msrtp_free(e->s_out);
}

/* A minimal RTP packet: V=2, PT 96, the given sequence number, a payload. */
static size_t make_rtp(uint8_t *b, uint16_t seq, uint32_t ssrc, size_t payload)
{
    b[0] = 0x80, b[1] = 96;
    b[2] = (uint8_t)(seq >> 8), b[3] = (uint8_t)seq;
    b[4] = 0, b[5] = 0, b[6] = 0x12, b[7] = 0x34;                         /* timestamp */
    b[8] = (uint8_t)(ssrc >> 24), b[9] = (uint8_t)(ssrc >> 16), b[10] = (uint8_t)(ssrc >> 8), b[11] = (uint8_t)ssrc;
    for (size_t i = 0; i < payload; i++) b[12 + i] = (uint8_t)(i * 3 + seq);
    return 12 + payload;
}

/* An RTCP receiver report with no blocks (RFC 3550 §6.4.2). */
static size_t make_rtcp(uint8_t *b, uint32_t ssrc)
{
    b[0] = 0x80, b[1] = 201, b[2] = 0, b[3] = 1;
    b[4] = (uint8_t)(ssrc >> 24), b[5] = (uint8_t)(ssrc >> 16), b[6] = (uint8_t)(ssrc >> 8), b[7] = (uint8_t)ssrc;
    return 8;
}

static void test_rtp_round_trip(void **state)
{
    (void)state;
    struct ends e;
    ends_open(&e);
    uint8_t pkt[200], orig[200];
    size_t len = make_rtp(pkt, 1000, 0x11223344, 100);
    memcpy(orig, pkt, len);
    size_t olen = len;

    assert_int_equal(msrtp_protect_rtp(e.c_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    assert_int_equal(len, olen + CM_RTP_TRAILER);
    assert_memory_equal(pkt, orig, 12);                         /* the header stays clear */
    assert_memory_not_equal(pkt + 12, orig + 12, olen - 12);    /* the payload does not */
    assert_int_equal(msrtp_unprotect_rtp(e.s_in, pkt, &len), MSRTP_OK);
    assert_int_equal(len, olen);
    assert_memory_equal(pkt, orig, olen);

    /* The other way: server writes, client reads. */
    len = make_rtp(pkt, 7, 0xabcdef01, 30);
    memcpy(orig, pkt, len);
    olen = len;
    assert_int_equal(msrtp_protect_rtp(e.s_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    assert_int_equal(msrtp_unprotect_rtp(e.c_in, pkt, &len), MSRTP_OK);
    assert_memory_equal(pkt, orig, olen);
    ends_close(&e);
}

/* Each side reads only with the peer's write key. */
static void test_wrong_direction_fails(void **state)
{
    (void)state;
    struct ends e;
    ends_open(&e);
    uint8_t pkt[100];
    size_t len = make_rtp(pkt, 1, 5, 20);
    assert_int_equal(msrtp_protect_rtp(e.c_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    size_t before = len;
    assert_int_equal(msrtp_unprotect_rtp(e.c_in, pkt, &len), MSRTP_ERR_AUTH);
    assert_int_equal(len, before);
    ends_close(&e);
}

static void test_flipped_bit_fails_auth(void **state)
{
    (void)state;
    struct ends e;
    ends_open(&e);
    uint8_t pkt[100], prot[100];
    size_t len = make_rtp(pkt, 42, 9, 40);
    assert_int_equal(msrtp_protect_rtp(e.c_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    memcpy(prot, pkt, len);
    /* One bit in the header, in the payload, in the tag: each refused. */
    size_t where[] = {3, 20, len - 1};
    for (size_t i = 0; i < 3; i++) {
        memcpy(pkt, prot, len);
        pkt[where[i]] ^= 0x01;
        size_t l = len;
        assert_int_equal(msrtp_unprotect_rtp(e.s_in, pkt, &l), MSRTP_ERR_AUTH);
    }
    /* The untouched packet still passes: a failed check moved nothing. */
    memcpy(pkt, prot, len);
    assert_int_equal(msrtp_unprotect_rtp(e.s_in, pkt, &len), MSRTP_OK);
    ends_close(&e);
}

static void test_replay_refused(void **state)
{
    (void)state;
    struct ends e;
    ends_open(&e);
    uint8_t pkt[100], copy[100];
    size_t len = make_rtp(pkt, 500, 77, 10);
    assert_int_equal(msrtp_protect_rtp(e.c_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    memcpy(copy, pkt, len);
    size_t clen = len;
    assert_int_equal(msrtp_unprotect_rtp(e.s_in, pkt, &len), MSRTP_OK);
    assert_int_equal(msrtp_unprotect_rtp(e.s_in, copy, &clen), MSRTP_ERR_REPLAY);
    assert_string_equal(msrtp_strerror(MSRTP_ERR_REPLAY), "replayed");

    /* Out of order inside the window is fine; older than the window is not
     * (all protected first: the sender keeps its own window too). */
    uint8_t late[100], old[100], ahead[100];
    size_t llen = make_rtp(late, 499, 77, 10);
    size_t olen = make_rtp(old, 498, 77, 10);
    size_t alen = make_rtp(ahead, 500 + MSRTP_REPLAY_WINDOW, 77, 10);
    assert_int_equal(msrtp_protect_rtp(e.c_out, late, &llen, sizeof(late)), MSRTP_OK);
    assert_int_equal(msrtp_protect_rtp(e.c_out, old, &olen, sizeof(old)), MSRTP_OK);
    assert_int_equal(msrtp_protect_rtp(e.c_out, ahead, &alen, sizeof(ahead)), MSRTP_OK);
    assert_int_equal(msrtp_unprotect_rtp(e.s_in, late, &llen), MSRTP_OK);
    assert_int_equal(msrtp_unprotect_rtp(e.s_in, ahead, &alen), MSRTP_OK);
    assert_int_equal(msrtp_unprotect_rtp(e.s_in, old, &olen), MSRTP_ERR_REPLAY);
    ends_close(&e);
}

/* The sender may send a packet again (a NACK answered with the original). */
static void test_resend_allowed(void **state)
{
    (void)state;
    struct ends e;
    ends_open(&e);
    uint8_t a[100], b[100];
    size_t la = make_rtp(a, 9, 3, 16), lb = make_rtp(b, 9, 3, 16);
    assert_int_equal(msrtp_protect_rtp(e.s_out, a, &la, sizeof(a)), MSRTP_OK);
    assert_int_equal(msrtp_protect_rtp(e.s_out, b, &lb, sizeof(b)), MSRTP_OK);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    ends_close(&e);
}

static void test_rtcp_round_trip(void **state)
{
    (void)state;
    struct ends e;
    ends_open(&e);
    uint8_t pkt[100], orig[100], copy[100];
    size_t len = make_rtcp(pkt, 0x5eed), olen = len;
    memcpy(orig, pkt, len);
    assert_int_equal(msrtp_protect_rtcp(e.s_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    assert_int_equal(len, olen + CM_RTCP_TRAILER);
    /* RFC 3711 §3.4: the E flag set, SRTCP index 1 (the first packet). */
    assert_int_equal(pkt[olen], 0x80);
    assert_int_equal(pkt[olen + 3], 1);
    memcpy(copy, pkt, len);
    size_t clen = len;
    assert_int_equal(msrtp_unprotect_rtcp(e.c_in, pkt, &len), MSRTP_OK);
    assert_int_equal(len, olen);
    assert_memory_equal(pkt, orig, olen);
    assert_int_equal(msrtp_unprotect_rtcp(e.c_in, copy, &clen), MSRTP_ERR_REPLAY);

    len = make_rtcp(pkt, 1);
    assert_int_equal(msrtp_protect_rtcp(e.c_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    pkt[5] ^= 0x40;
    assert_int_equal(msrtp_unprotect_rtcp(e.s_in, pkt, &len), MSRTP_ERR_AUTH);
    ends_close(&e);
}

static void test_no_room_for_trailer(void **state)
{
    (void)state;
    struct ends e;
    ends_open(&e);
    uint8_t pkt[100], orig[100];
    size_t len = make_rtp(pkt, 1, 1, 20), olen = len;
    memcpy(orig, pkt, len);
    assert_int_equal(msrtp_protect_rtp(e.c_out, pkt, &len, olen + CM_RTP_TRAILER - 1), MSRTP_ERR_ROOM);
    assert_int_equal(len, olen);
    assert_memory_equal(pkt, orig, olen);                       /* untouched */
    assert_int_equal(msrtp_protect_rtp(e.c_out, pkt, &len, olen - 1), MSRTP_ERR_ROOM);
    assert_int_equal(msrtp_protect_rtp(e.c_out, pkt, &len, olen + CM_RTP_TRAILER), MSRTP_OK);

    len = make_rtcp(pkt, 1);
    assert_int_equal(msrtp_protect_rtcp(e.c_out, pkt, &len, 8 + CM_RTCP_TRAILER - 1), MSRTP_ERR_ROOM);
    assert_int_equal(msrtp_protect_rtcp(e.c_out, pkt, &len, 8 + CM_RTCP_TRAILER), MSRTP_OK);
    ends_close(&e);
}

static void test_bad_params(void **state)
{
    (void)state;
    struct ends e;
    ends_open(&e);
    uint8_t pkt[100] = {0x80};
    size_t len = 11;                                            /* shorter than a header */
    assert_int_equal(msrtp_protect_rtp(e.c_out, pkt, &len, sizeof(pkt)), MSRTP_ERR_PARAM);
    len = make_rtp(pkt, 1, 1, 4);
    pkt[0] = 0x40;                                              /* version 1 */
    assert_int_equal(msrtp_protect_rtp(e.c_out, pkt, &len, sizeof(pkt)), MSRTP_ERR_PARAM);
    len = 12 + CM_RTP_TRAILER - 1;                           /* no room for a tag */
    pkt[0] = 0x80;
    assert_int_equal(msrtp_unprotect_rtp(e.s_in, pkt, &len), MSRTP_ERR_PARAM);
    len = 7;
    assert_int_equal(msrtp_protect_rtcp(e.c_out, pkt, &len, sizeof(pkt)), MSRTP_ERR_PARAM);
    len = 8 + CM_RTCP_TRAILER - 1;
    assert_int_equal(msrtp_unprotect_rtcp(e.s_in, pkt, &len), MSRTP_ERR_PARAM);
    /* CSRC count claiming more than the packet holds. */
    len = make_rtp(pkt, 2, 1, 4);
    pkt[0] = 0x8f;
    assert_int_equal(msrtp_protect_rtp(e.c_out, pkt, &len, sizeof(pkt)), MSRTP_ERR_PARAM);
    ends_close(&e);

    uint8_t key[16] = {0}, salt[14] = {0};
    int st = 0;
    assert_null(msrtp_new(DTLS_SRTP_AES128_CM_SHA1_80, true, key, 15, salt, 14, &st));
    assert_int_equal(st, MSRTP_ERR_PARAM);
    assert_null(msrtp_new(DTLS_SRTP_AES128_CM_SHA1_80, true, key, 16, salt, 12, &st));
    assert_int_equal(st, MSRTP_ERR_PARAM);
    assert_null(msrtp_new(0x0007, true, key, 16, salt, 14, &st));   /* GCM: the salt is 12 */
    assert_int_equal(st, MSRTP_ERR_PARAM);
    assert_null(msrtp_new(0x0008, true, key, 16, salt, 12, &st));   /* AEAD_AES_256_GCM: not ours */
    assert_int_equal(st, MSRTP_ERR_PARAM);
    struct dtls_srtp_keys k = test_keys();
    k.profile = 2;
    struct msrtp *in = NULL, *out = NULL;
    assert_int_equal(msrtp_pair_from_dtls(&k, DTLS_ROLE_SERVER, &in, &out), MSRTP_ERR_PARAM);
    assert_null(in);
    assert_null(out);
    assert_string_equal(msrtp_strerror(MSRTP_ERR_AUTH), "auth failed");
    assert_string_equal(msrtp_strerror(MSRTP_ERR_ROOM), "no room for the SRTP trailer");
}

/* ---- the RFC, independently: what AES_CM_128_HMAC_SHA1_80 must produce */

static void aes_ecb(const uint8_t key[16], const uint8_t in[16], uint8_t out[16])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), NULL, key, NULL), 1);
    EVP_CIPHER_CTX_set_padding(c, 0);
    assert_int_equal(EVP_EncryptUpdate(c, out, &n, in, 16), 1);
    EVP_CIPHER_CTX_free(c);
}

/* AES-CM keystream from a 14-byte IV (IV || 16-bit block counter). */
static void keystream(const uint8_t key[16], const uint8_t iv[14], uint8_t *out, size_t len)
{
    for (size_t blk = 0; blk * 16 < len; blk++) {
        uint8_t in[16], ks[16];
        memcpy(in, iv, 14);
        in[14] = (uint8_t)(blk >> 8), in[15] = (uint8_t)blk;
        aes_ecb(key, in, ks);
        for (size_t i = 0; i < 16 && blk * 16 + i < len; i++) out[blk * 16 + i] = ks[i];
    }
}

/* §4.3.1 with key_derivation_rate 0: x = label << 48 XOR master salt. */
static void derive(const uint8_t mk[16], const uint8_t ms[14], uint8_t label, uint8_t *out, size_t len)
{
    uint8_t iv[14];
    memcpy(iv, ms, 14);
    iv[7] ^= label;
    keystream(mk, iv, out, len);
}

static void test_matches_rfc3711(void **state)
{
    (void)state;
    struct dtls_srtp_keys k = test_keys();
    struct msrtp *in, *out;
    assert_int_equal(msrtp_pair_from_dtls(&k, DTLS_ROLE_CLIENT, &in, &out), MSRTP_OK);
    uint8_t pkt[200], plain[200];
    const uint32_t ssrc = 0xcafe0001;
    const uint16_t seq = 0x1234;
    size_t len = make_rtp(pkt, seq, ssrc, 50), plen = len;
    memcpy(plain, pkt, len);
    assert_int_equal(msrtp_protect_rtp(out, pkt, &len, sizeof(pkt)), MSRTP_OK);

    /* Session keys from the client's master key and salt (labels 0, 1, 2). */
    uint8_t ke[16], ka[20], ks[14];
    derive(k.client_key, k.client_salt, 0x00, ke, sizeof(ke));
    derive(k.client_key, k.client_salt, 0x01, ka, sizeof(ka));
    derive(k.client_key, k.client_salt, 0x02, ks, sizeof(ks));

    /* §4.1.1: IV = (salt << 16) XOR (SSRC << 64) XOR (index << 16); index =
     * ROC (0) << 16 | SEQ. Our IV is the 14 bytes before the counter. */
    uint8_t iv[14];
    memcpy(iv, ks, 14);
    iv[4] ^= (uint8_t)(ssrc >> 24), iv[5] ^= (uint8_t)(ssrc >> 16), iv[6] ^= (uint8_t)(ssrc >> 8), iv[7] ^= (uint8_t)ssrc;
    iv[12] ^= (uint8_t)(seq >> 8), iv[13] ^= (uint8_t)seq;
    uint8_t want[200], stream[200];
    memcpy(want, plain, 12);
    keystream(ke, iv, stream, plen - 12);
    for (size_t i = 12; i < plen; i++) want[i] = plain[i] ^ stream[i - 12];

    /* §4.2: HMAC-SHA1 over the packet and the 32-bit ROC, first 80 bits. */
    uint8_t mac_in[220], mac[20];
    unsigned int mlen = 0;
    memcpy(mac_in, want, plen);
    memset(mac_in + plen, 0, 4);
    HMAC(EVP_sha1(), ka, sizeof(ka), mac_in, plen + 4, mac, &mlen);
    memcpy(want + plen, mac, 10);

    assert_int_equal(len, plen + 10);
    assert_memory_equal(pkt, want, len);
    msrtp_free(in);
    msrtp_free(out);
}

/* ---- AEAD_AES_128_GCM (RFC 7714), the same way */

static void gcm_seal(const uint8_t key[16], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                     const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, iv), 1);
    assert_int_equal(EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len), 1);
    assert_int_equal(EVP_EncryptUpdate(c, out, &n, in, (int)len), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, out + n, &n), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag), 1);
    EVP_CIPHER_CTX_free(c);
}

static void test_matches_rfc7714(void **state)
{
    (void)state;
    struct dtls_srtp_keys k = test_keys_gcm();
    struct msrtp *in, *out;
    assert_int_equal(msrtp_pair_from_dtls(&k, DTLS_ROLE_CLIENT, &in, &out), MSRTP_OK);
    assert_int_equal(msrtp_profile(out), DTLS_SRTP_AEAD_AES_128_GCM);
    uint8_t pkt[200], plain[200];
    const uint32_t ssrc = 0xcafe0002;
    const uint16_t seq = 0x4321;
    size_t len = make_rtp(pkt, seq, ssrc, 77), plen = len;
    memcpy(plain, pkt, len);
    assert_int_equal(msrtp_protect_rtp(out, pkt, &len, sizeof(pkt)), MSRTP_OK);

    /* §11: the RFC 3711 KDF (AES-CM PRF), the 96-bit master salt padded
     * with zeros to 112 bits (test_keys_gcm leaves bytes 12-13 zero);
     * a 128-bit session key (label 0) and a 96-bit session salt (label 2). */
    uint8_t ke[16], ks[12];
    derive(k.client_key, k.client_salt, 0x00, ke, sizeof(ke));
    derive(k.client_key, k.client_salt, 0x02, ks, sizeof(ks));
    /* §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR session salt; the AAD
     * is the header (§8.2); the 16-byte tag follows the ciphertext. */
    uint8_t iv[12] = {0, 0, (uint8_t)(ssrc >> 24), (uint8_t)(ssrc >> 16), (uint8_t)(ssrc >> 8), (uint8_t)ssrc,
                      0, 0, 0, 0, (uint8_t)(seq >> 8), (uint8_t)seq};
    for (int i = 0; i < 12; i++) iv[i] ^= ks[i];
    uint8_t want[220];
    memcpy(want, plain, 12);
    gcm_seal(ke, iv, plain, 12, plain + 12, plen - 12, want + 12, want + plen);

    assert_int_equal(len, plen + 16);
    assert_memory_equal(pkt, want, len);
    msrtp_free(in);
    msrtp_free(out);
}

static void test_gcm_round_trip_and_tamper(void **state)
{
    (void)state;
    struct ends e;
    ends_open_keys(&e, test_keys_gcm());
    assert_int_equal(msrtp_rtp_trailer(e.c_out), 16);
    assert_int_equal(msrtp_rtcp_trailer(e.c_out), 20);
    uint8_t pkt[300], orig[300], copy[300];
    size_t len = make_rtp(pkt, 500, 0x0badf00d, 200), olen = len;
    memcpy(orig, pkt, len);
    assert_int_equal(msrtp_protect_rtp(e.s_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    assert_int_equal(len, olen + 16);
    assert_memory_equal(pkt, orig, 12);
    memcpy(copy, pkt, len);
    size_t clen = len;
    assert_int_equal(msrtp_unprotect_rtp(e.c_in, pkt, &len), MSRTP_OK);
    assert_int_equal(len, olen);
    assert_memory_equal(pkt, orig, olen);
    /* A changed header byte (authenticated, not encrypted) or tag byte of
     * a packet not seen yet (a seen one is refused as a replay first). */
    len = make_rtp(pkt, 501, 0x0badf00d, 200);
    assert_int_equal(msrtp_protect_rtp(e.s_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    memcpy(copy, pkt, len);
    clen = len;
    copy[1] ^= 1;
    size_t l2 = clen;
    assert_int_equal(msrtp_unprotect_rtp(e.c_in, copy, &l2), MSRTP_ERR_AUTH);
    copy[1] ^= 1;
    copy[clen - 1] ^= 0x80;
    l2 = clen;
    assert_int_equal(msrtp_unprotect_rtp(e.c_in, copy, &l2), MSRTP_ERR_AUTH);
    /* The CM key of the same bytes does not read it. */
    struct ends cm;
    ends_open(&cm);
    copy[clen - 1] ^= 0x80;
    len = clen;
    assert_int_equal(msrtp_unprotect_rtp(cm.c_in, copy, &len), MSRTP_ERR_AUTH);
    ends_close(&cm);

    /* SRTCP: header, ciphertext, tag, E flag and index (RFC 7714 §9). */
    len = make_rtcp(pkt, 0x77);
    assert_int_equal(msrtp_protect_rtcp(e.c_out, pkt, &len, 8 + 20 - 1), MSRTP_ERR_ROOM);
    assert_int_equal(msrtp_protect_rtcp(e.c_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    assert_int_equal(len, 8 + 20);
    assert_true(pkt[len - 4] & 0x80);                           /* encrypted */
    assert_int_equal(msrtp_unprotect_rtcp(e.s_in, pkt, &len), MSRTP_OK);
    assert_int_equal(len, 8);
    len = 12 + 16 - 1;                                          /* shorter than header and tag */
    pkt[0] = 0x80;
    assert_int_equal(msrtp_unprotect_rtp(e.s_in, pkt, &len), MSRTP_ERR_PARAM);
    ends_close(&e);

    /* Key and salt lengths per profile. */
    uint8_t key[16] = {0}, salt[14] = {0};
    int st = 0;
    assert_null(msrtp_new(DTLS_SRTP_AEAD_AES_128_GCM, true, key, 16, salt, 14, &st));
    assert_int_equal(st, MSRTP_ERR_PARAM);
    struct msrtp *c = msrtp_new(DTLS_SRTP_AEAD_AES_128_GCM, false, key, 16, salt, 12, &st);
    assert_non_null(c);
    assert_int_equal(msrtp_rtp_trailer(c), 16);
    msrtp_free(c);
    c = msrtp_new(DTLS_SRTP_AES128_CM_SHA1_80, false, key, 16, salt, 14, &st);
    assert_non_null(c);
    assert_int_equal(msrtp_rtp_trailer(c), 10);
    assert_int_equal(msrtp_rtcp_trailer(c), 14);
    msrtp_free(c);
}

/* The whole chain: a DTLS handshake, its exported keys, SRTP both ways. */
struct q1 {
    uint8_t pkt[32][1500];
    size_t len[32];
    int n;
};

static int q1_send(void *user, const void *data, size_t len)
{
    struct q1 *q = user;
    assert_true(q->n < 32);
    memcpy(q->pkt[q->n], data, len);
    q->len[q->n++] = len;
    return 0;
}

/* The primitives come from OpenSSL: libsrtp2 took both replacements, which
 * it does only after they passed its self-test on the RFC 3711 §B.2 and
 * RFC 2202 vectors; test_matches_rfc3711 then checks whole packets against
 * this file's own RFC 3711 arithmetic. */
static void test_openssl_primitives_installed(void **state)
{
    (void)state;
    msrtp_global_init();
    assert_string_equal(msrtp_crypto_name(), "OpenSSL (AES-128-CTR, HMAC-SHA1)");
    /* and AES-128-GCM, after the GCM specification's test case 4 */
    assert_string_equal(msrtp_crypto_gcm_name(), "OpenSSL");
}

static void test_dtls_keys_drive_srtp(void **state)
{
    (void)state;
    char err[200];
    struct dtls_context *sc = dtls_context_new(0, err, sizeof(err)), *cc = dtls_context_new(0, err, sizeof(err));
    assert_non_null(sc);
    assert_non_null(cc);
    uint8_t sfp[DTLS_FP_LEN], cfp[DTLS_FP_LEN];
    assert_int_equal(dtls_fingerprint_parse(dtls_context_fingerprint(sc), sfp), 0);
    assert_int_equal(dtls_fingerprint_parse(dtls_context_fingerprint(cc), cfp), 0);
    struct dtls_session *srv = dtls_session_new(sc, DTLS_ROLE_SERVER, cfp);
    struct dtls_session *cli = dtls_session_new(cc, DTLS_ROLE_CLIENT, sfp);
    static struct q1 to_srv, to_cli;
    struct dtls_io sio = {&to_cli, q1_send}, cio = {&to_srv, q1_send};
    const char *why = NULL;
    assert_int_equal(dtls_session_start(cli, &cio, &why), 0);
    for (int r = 0; r < 10 && (to_srv.n || to_cli.n); r++) {
        for (int i = 0; i < to_srv.n; i++) assert_int_equal(dtls_session_input(srv, to_srv.pkt[i], to_srv.len[i], &sio, &why), 0);
        to_srv.n = 0;
        for (int i = 0; i < to_cli.n; i++) assert_int_equal(dtls_session_input(cli, to_cli.pkt[i], to_cli.len[i], &cio, &why), 0);
        to_cli.n = 0;
    }
    struct dtls_srtp_keys ks, kc;
    assert_int_equal(dtls_session_srtp_keys(srv, &ks), 0);
    assert_int_equal(dtls_session_srtp_keys(cli, &kc), 0);
    /* Both offer both profiles: GCM is agreed, and its keys work. */
    assert_int_equal(ks.profile, DTLS_SRTP_AEAD_AES_128_GCM);
    assert_int_equal(kc.profile, DTLS_SRTP_AEAD_AES_128_GCM);
    struct msrtp *s_in, *s_out, *c_in, *c_out;
    assert_int_equal(msrtp_pair_from_dtls(&ks, DTLS_ROLE_SERVER, &s_in, &s_out), MSRTP_OK);
    assert_int_equal(msrtp_pair_from_dtls(&kc, DTLS_ROLE_CLIENT, &c_in, &c_out), MSRTP_OK);

    uint8_t pkt[100], orig[100];
    size_t len = make_rtp(pkt, 3, 0x42, 40), olen = len;
    memcpy(orig, pkt, len);
    assert_int_equal(msrtp_protect_rtp(s_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    assert_int_equal(msrtp_unprotect_rtp(c_in, pkt, &len), MSRTP_OK);
    assert_memory_equal(pkt, orig, olen);
    len = make_rtcp(pkt, 0x43);
    assert_int_equal(msrtp_protect_rtcp(c_out, pkt, &len, sizeof(pkt)), MSRTP_OK);
    assert_int_equal(msrtp_unprotect_rtcp(s_in, pkt, &len), MSRTP_OK);
    assert_int_equal(len, 8);

    msrtp_free(s_in), msrtp_free(s_out), msrtp_free(c_in), msrtp_free(c_out);
    dtls_session_free(srv);
    dtls_session_free(cli);
    dtls_context_free(sc);
    dtls_context_free(cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openssl_primitives_installed),
        cmocka_unit_test(test_rtp_round_trip),
        cmocka_unit_test(test_wrong_direction_fails),
        cmocka_unit_test(test_flipped_bit_fails_auth),
        cmocka_unit_test(test_replay_refused),
        cmocka_unit_test(test_resend_allowed),
        cmocka_unit_test(test_rtcp_round_trip),
        cmocka_unit_test(test_no_room_for_trailer),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_matches_rfc3711),
        cmocka_unit_test(test_matches_rfc7714),
        cmocka_unit_test(test_gcm_round_trip_and_tamper),
        cmocka_unit_test(test_dtls_keys_drive_srtp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
