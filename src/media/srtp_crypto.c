/* srtp_crypto.c — AES-128 counter mode and HMAC-SHA1 for libsrtp2, on
 * OpenSSL 3.
 *
 * Debian's libsrtp2 is built on NSS: every packet goes through PKCS#11
 * sessions, a mutex and a malloc, and at 1 000 viewers that was half of the
 * SFU's CPU (perf, bench/fanout.sh). libsrtp2 lets a program replace the
 * implementation behind a cipher or auth id (srtp_replace_cipher_type,
 * srtp_replace_auth_type), so SRTP itself — key derivation, the packet
 * index and rollover counter, replay windows, which bytes are encrypted and
 * authenticated — stays libsrtp2's, and only the two primitives of
 * AES_CM_128_HMAC_SHA1_80 come from OpenSSL (AES-NI, SHA extensions), with
 * the key schedule and HMAC pads computed once per context.
 *
 * libsrtp2 self-tests a replacement before taking it, with the vectors
 * below (RFC 3711 §B.2 keystream, RFC 2202 test case 1); on failure it
 * keeps its own implementation and msrtp_crypto_name() says so. */
#include "media/srtp_crypto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <srtp2/auth.h>
#include <srtp2/cipher.h>
#include <srtp2/crypto_types.h>
#include <srtp2/srtp.h>

#define ICM_KEY_LEN 16
#define ICM_SALT_LEN 14
#define SHA1_LEN 20

/* ---- AES-128 counter mode (RFC 3711 §4.1.1) ---- */

struct icm_state {
    EVP_CIPHER_CTX *ctx;
    uint8_t salt[16];   /* the session salt, left-aligned, low 16 bits zero */
};

static EVP_CIPHER *aes128_ctr;   /* fetched once: no provider lookup per key */
static EVP_MAC *hmac;
/* (defined below, after their functions; each object names its type) */
static const srtp_cipher_type_t icm_type;
static const srtp_auth_type_t hmac_type;

static srtp_err_status_t icm_alloc(srtp_cipher_pointer_t *cp, int key_len, int tag_len)
{
    (void)tag_len;
    if (key_len != ICM_KEY_LEN + ICM_SALT_LEN) return srtp_err_status_bad_param;
    struct {
        srtp_cipher_t c;
        struct icm_state s;
    } *b = calloc(1, sizeof(*b));
    if (!b) return srtp_err_status_alloc_fail;
    if (!(b->s.ctx = EVP_CIPHER_CTX_new())) {
        free(b);
        return srtp_err_status_alloc_fail;
    }
    b->c.type = &icm_type;
    b->c.state = &b->s;
    b->c.key_len = key_len;
    b->c.algorithm = SRTP_AES_ICM_128;
    *cp = &b->c;
    return srtp_err_status_ok;
}

static srtp_err_status_t icm_dealloc(srtp_cipher_pointer_t c)
{
    struct icm_state *s = c->state;
    EVP_CIPHER_CTX_free(s->ctx);
    /* the block holds keys: clear it before it goes back to the heap */
    OPENSSL_cleanse(c, sizeof(*c) + sizeof(*s));
    free(c);
    return srtp_err_status_ok;
}

/* key: the 16-byte key then the 14-byte salt. */
static srtp_err_status_t icm_init(void *state, const uint8_t *key)
{
    struct icm_state *s = state;
    memset(s->salt, 0, sizeof(s->salt));
    memcpy(s->salt, key + ICM_KEY_LEN, ICM_SALT_LEN);
    if (EVP_EncryptInit_ex2(s->ctx, aes128_ctr, key, NULL, NULL) != 1) return srtp_err_status_init_fail;
    return srtp_err_status_ok;
}

/* The counter block is salt XOR iv (the SSRC and packet index as srtp.c
 * lays them out); OpenSSL counts blocks in its low bits from there. */
static srtp_err_status_t icm_set_iv(void *state, uint8_t *iv, srtp_cipher_direction_t dir)
{
    (void)dir;
    struct icm_state *s = state;
    uint8_t counter[16];
    for (int i = 0; i < 16; i++) counter[i] = s->salt[i] ^ iv[i];
    if (EVP_EncryptInit_ex2(s->ctx, NULL, NULL, counter, NULL) != 1) return srtp_err_status_cipher_fail;
    return srtp_err_status_ok;
}

/* Counter mode: encrypting and decrypting are the same XOR, in place. */
static srtp_err_status_t icm_crypt(void *state, uint8_t *buf, unsigned int *len)
{
    struct icm_state *s = state;
    int out = 0;
    if (*len > INT32_MAX || EVP_EncryptUpdate(s->ctx, buf, &out, buf, (int)*len) != 1 || (unsigned)out != *len)
        return srtp_err_status_cipher_fail;
    return srtp_err_status_ok;
}

static const uint8_t icm_key[ICM_KEY_LEN + ICM_SALT_LEN] = {
    0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd,
};
static uint8_t icm_iv[16];   /* zero: the counter starts at the salt */
static const uint8_t icm_plain[32];
static const uint8_t icm_cipher[32] = {   /* RFC 3711 §B.2: the first two keystream blocks */
    0xe0, 0x3e, 0xad, 0x09, 0x35, 0xc9, 0x5e, 0x80, 0xe1, 0x66, 0xb1, 0x6d, 0xd9, 0x2b, 0x4e, 0xb4,
    0xd2, 0x35, 0x13, 0x16, 0x2b, 0x02, 0xd0, 0xf7, 0x2a, 0x43, 0xa2, 0xfe, 0x4a, 0x5f, 0x97, 0xab,
};
static const srtp_cipher_test_case_t icm_test = {
    .key_length_octets = sizeof(icm_key),
    .key = icm_key,
    .idx = icm_iv,
    .plaintext_length_octets = sizeof(icm_plain),
    .plaintext = icm_plain,
    .ciphertext_length_octets = sizeof(icm_cipher),
    .ciphertext = icm_cipher,
};

static const srtp_cipher_type_t icm_type = {
    .alloc = icm_alloc,
    .dealloc = icm_dealloc,
    .init = icm_init,
    .encrypt = icm_crypt,
    .decrypt = icm_crypt,
    .set_iv = icm_set_iv,
    .description = "AES-128 counter mode (OpenSSL)",
    .test_data = &icm_test,
    .id = SRTP_AES_ICM_128,
};

/* ---- HMAC-SHA1 (RFC 2104), tags truncated by libsrtp's caller ---- */

struct hmac_state {
    EVP_MAC_CTX *ctx;
};

static srtp_err_status_t hmac_alloc(srtp_auth_pointer_t *ap, int key_len, int out_len)
{
    if (key_len < 0 || key_len > SHA1_LEN || out_len < 0 || out_len > SHA1_LEN) return srtp_err_status_bad_param;
    struct {
        srtp_auth_t a;
        struct hmac_state s;
    } *b = calloc(1, sizeof(*b));
    if (!b) return srtp_err_status_alloc_fail;
    if (!(b->s.ctx = EVP_MAC_CTX_new(hmac))) {
        free(b);
        return srtp_err_status_alloc_fail;
    }
    b->a.type = &hmac_type;
    b->a.state = &b->s;
    b->a.key_len = key_len;
    b->a.out_len = out_len;
    b->a.prefix_len = 0;
    *ap = &b->a;
    return srtp_err_status_ok;
}

static srtp_err_status_t hmac_dealloc(srtp_auth_pointer_t a)
{
    struct hmac_state *s = a->state;
    EVP_MAC_CTX_free(s->ctx);
    OPENSSL_cleanse(a, sizeof(*a) + sizeof(*s));
    free(a);
    return srtp_err_status_ok;
}

/* Keys the context (the pads are computed here, once) and leaves it ready
 * for a message, as libsrtp's self-test expects. */
static srtp_err_status_t hmac_init(void *state, const uint8_t *key, int key_len)
{
    struct hmac_state *s = state;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA1", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_init(s->ctx, key, (size_t)key_len, params) != 1) return srtp_err_status_auth_fail;
    return srtp_err_status_ok;
}

/* A new message with the same key: OpenSSL reuses the keyed pads. */
static srtp_err_status_t hmac_start(void *state)
{
    struct hmac_state *s = state;
    return EVP_MAC_init(s->ctx, NULL, 0, NULL) == 1 ? srtp_err_status_ok : srtp_err_status_auth_fail;
}

static srtp_err_status_t hmac_update(void *state, const uint8_t *buf, int len)
{
    struct hmac_state *s = state;
    if (len < 0 || EVP_MAC_update(s->ctx, buf, (size_t)len) != 1) return srtp_err_status_auth_fail;
    return srtp_err_status_ok;
}

/* The last bytes (srtp.c passes the rollover counter here), then the tag's
 * first tag_len bytes. */
static srtp_err_status_t hmac_compute(void *state, const uint8_t *buf, int len, int tag_len, uint8_t *tag)
{
    struct hmac_state *s = state;
    uint8_t full[SHA1_LEN];
    size_t n = 0;
    if (tag_len < 0 || tag_len > SHA1_LEN) return srtp_err_status_bad_param;
    if (hmac_update(state, buf, len) != srtp_err_status_ok) return srtp_err_status_auth_fail;
    if (EVP_MAC_final(s->ctx, full, &n, sizeof(full)) != 1 || n != SHA1_LEN) return srtp_err_status_auth_fail;
    memcpy(tag, full, (size_t)tag_len);
    return srtp_err_status_ok;
}

static const uint8_t hmac_key[SHA1_LEN] = {
    0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
    0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
};
static const uint8_t hmac_data[8] = {'H', 'i', ' ', 'T', 'h', 'e', 'r', 'e'};
static const uint8_t hmac_tag[SHA1_LEN] = {   /* RFC 2202 §3, test case 1 */
    0xb6, 0x17, 0x31, 0x86, 0x55, 0x05, 0x72, 0x64, 0xe2, 0x8b,
    0xc0, 0xb6, 0xfb, 0x37, 0x8c, 0x8e, 0xf1, 0x46, 0xbe, 0x00,
};
static const srtp_auth_test_case_t hmac_test = {
    .key_length_octets = sizeof(hmac_key),
    .key = hmac_key,
    .data_length_octets = sizeof(hmac_data),
    .data = hmac_data,
    .tag_length_octets = sizeof(hmac_tag),
    .tag = hmac_tag,
};

static const srtp_auth_type_t hmac_type = {
    .alloc = hmac_alloc,
    .dealloc = hmac_dealloc,
    .init = hmac_init,
    .compute = hmac_compute,
    .update = hmac_update,
    .start = hmac_start,
    .description = "HMAC-SHA1 (OpenSSL)",
    .test_data = &hmac_test,
    .id = SRTP_HMAC_SHA1,
};

static const char *active = "libsrtp2";

int msrtp_crypto_install(void)
{
    aes128_ctr = EVP_CIPHER_fetch(NULL, "AES-128-CTR", NULL);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!aes128_ctr || !hmac) return -1;
    /* Both or neither: libsrtp2 self-tests each before it replaces it. */
    if (srtp_replace_cipher_type(&icm_type, SRTP_AES_ICM_128) != srtp_err_status_ok) return -1;
    if (srtp_replace_auth_type(&hmac_type, SRTP_HMAC_SHA1) != srtp_err_status_ok) {
        active = "libsrtp2 HMAC-SHA1, OpenSSL AES-128-CTR";
        return -1;
    }
    active = "OpenSSL (AES-128-CTR, HMAC-SHA1)";
    return 0;
}

const char *msrtp_crypto_name(void) { return active; }
