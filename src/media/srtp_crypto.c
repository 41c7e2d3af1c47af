/* srtp_crypto.c — AES-128 counter mode, HMAC-SHA1 and AES-128-GCM for
 * libsrtp2, on OpenSSL 3.
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

/* ---- AES-128-GCM (RFC 7714) ----
 *
 * libsrtp2 builds the 12-byte IV from the session salt, SSRC and packet
 * index itself and hands it to set_iv; the AAD (the RTP header, or the
 * SRTCP header and index) goes to set_aad; encrypt then get_tag on the
 * way out, decrypt over the ciphertext with the tag at its end on the way
 * in, failing when the tag does not match. The key schedule and the GHASH
 * key are computed once per context (init); each packet only sets the IV. */

struct gcm_state {
    EVP_CIPHER_CTX *ctx;
    int tag_len;
    int enc;            /* 1 encrypt, 0 decrypt, as set_iv was told */
};

static EVP_CIPHER *aes128_gcm;
static const srtp_cipher_type_t gcm_type;

#define GCM_KEY_LEN 16
#define GCM_SALT_LEN 12
#define GCM_IV_LEN 12

static srtp_err_status_t gcm_alloc(srtp_cipher_pointer_t *cp, int key_len, int tag_len)
{
    if (key_len != GCM_KEY_LEN + GCM_SALT_LEN || (tag_len != 16 && tag_len != 8)) return srtp_err_status_bad_param;
    struct {
        srtp_cipher_t c;
        struct gcm_state s;
    } *b = calloc(1, sizeof(*b));
    if (!b) return srtp_err_status_alloc_fail;
    if (!(b->s.ctx = EVP_CIPHER_CTX_new())) {
        free(b);
        return srtp_err_status_alloc_fail;
    }
    b->s.tag_len = tag_len;
    b->s.enc = -1;
    b->c.type = &gcm_type;
    b->c.state = &b->s;
    b->c.key_len = key_len;
    b->c.algorithm = SRTP_AES_GCM_128;
    *cp = &b->c;
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_dealloc(srtp_cipher_pointer_t c)
{
    struct gcm_state *s = c->state;
    EVP_CIPHER_CTX_free(s->ctx);
    OPENSSL_cleanse(c, sizeof(*c) + sizeof(*s));
    free(c);
    return srtp_err_status_ok;
}

/* key: the 16-byte key (libsrtp2 passes the salt after it; the IV it
 * builds already has the salt in). */
static srtp_err_status_t gcm_init(void *state, const uint8_t *key)
{
    struct gcm_state *s = state;
    s->enc = -1;
    if (EVP_CipherInit_ex2(s->ctx, aes128_gcm, key, NULL, 1, NULL) != 1) return srtp_err_status_init_fail;
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_set_iv(void *state, uint8_t *iv, srtp_cipher_direction_t dir)
{
    struct gcm_state *s = state;
    if (dir != srtp_direction_encrypt && dir != srtp_direction_decrypt) return srtp_err_status_bad_param;
    s->enc = dir == srtp_direction_encrypt;
    /* The default IV length of GCM is the 12 bytes RFC 7714 uses; a NULL
     * key keeps the schedule. */
    if (EVP_CipherInit_ex2(s->ctx, NULL, NULL, iv, s->enc, NULL) != 1) return srtp_err_status_init_fail;
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_set_aad(void *state, const uint8_t *aad, uint32_t aad_len)
{
    struct gcm_state *s = state;
    int out = 0;
    if (s->enc < 0 || aad_len > INT32_MAX || EVP_CipherUpdate(s->ctx, NULL, &out, aad, (int)aad_len) != 1)
        return srtp_err_status_algo_fail;
    return srtp_err_status_ok;
}

static srtp_err_status_t gcm_encrypt(void *state, uint8_t *buf, unsigned int *len)
{
    struct gcm_state *s = state;
    int out = 0;
    if (s->enc != 1 || *len > INT32_MAX) return srtp_err_status_bad_param;
    if (*len && (EVP_CipherUpdate(s->ctx, buf, &out, buf, (int)*len) != 1 || (unsigned)out != *len))
        return srtp_err_status_cipher_fail;
    return srtp_err_status_ok;
}

/* After encrypt: finishes GHASH and writes the tag at buf. */
static srtp_err_status_t gcm_get_tag(void *state, uint8_t *buf, uint32_t *len)
{
    struct gcm_state *s = state;
    uint8_t none[16];
    int out = 0;
    if (s->enc != 1 || EVP_CipherFinal_ex(s->ctx, none, &out) != 1 ||
        EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_GET_TAG, s->tag_len, buf) != 1)
        return srtp_err_status_algo_fail;
    *len = (uint32_t)s->tag_len;
    return srtp_err_status_ok;
}

/* *len covers the ciphertext and its tag; on success it loses the tag. */
static srtp_err_status_t gcm_decrypt(void *state, uint8_t *buf, unsigned int *len)
{
    struct gcm_state *s = state;
    uint8_t none[16];
    int out = 0;
    if (s->enc != 0 || *len > INT32_MAX) return srtp_err_status_bad_param;
    if (*len < (unsigned)s->tag_len) return srtp_err_status_auth_fail;
    unsigned int n = *len - (unsigned)s->tag_len;
    if (EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_SET_TAG, s->tag_len, buf + n) != 1)
        return srtp_err_status_auth_fail;
    if (n && (EVP_CipherUpdate(s->ctx, buf, &out, buf, (int)n) != 1 || (unsigned)out != n))
        return srtp_err_status_cipher_fail;
    if (EVP_CipherFinal_ex(s->ctx, none, &out) != 1) return srtp_err_status_auth_fail;
    *len = n;
    return srtp_err_status_ok;
}

/* The GCM specification's test case 4 (McGrew and Viega, "The Galois/Counter
 * Mode of Operation", appendix B): 60 bytes with 20 bytes of AAD. The salt
 * part of the key is not used by the cipher (libsrtp2 folds it into the IV). */
static const uint8_t gcm_key[GCM_KEY_LEN + GCM_SALT_LEN] = {
    0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83, 0x08,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static uint8_t gcm_iv[GCM_IV_LEN] = {0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce, 0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88};
static const uint8_t gcm_plain[60] = {
    0xd9, 0x31, 0x32, 0x25, 0xf8, 0x84, 0x06, 0xe5, 0xa5, 0x59, 0x09, 0xc5, 0xaf, 0xf5, 0x26, 0x9a,
    0x86, 0xa7, 0xa9, 0x53, 0x15, 0x34, 0xf7, 0xda, 0x2e, 0x4c, 0x30, 0x3d, 0x8a, 0x31, 0x8a, 0x72,
    0x1c, 0x3c, 0x0c, 0x95, 0x95, 0x68, 0x09, 0x53, 0x2f, 0xcf, 0x0e, 0x24, 0x49, 0xa6, 0xb5, 0x25,
    0xb1, 0x6a, 0xed, 0xf5, 0xaa, 0x0d, 0xe6, 0x57, 0xba, 0x63, 0x7b, 0x39,
};
static const uint8_t gcm_aad[20] = {
    0xfe, 0xed, 0xfa, 0xce, 0xde, 0xad, 0xbe, 0xef, 0xfe, 0xed,
    0xfa, 0xce, 0xde, 0xad, 0xbe, 0xef, 0xab, 0xad, 0xda, 0xd2,
};
static const uint8_t gcm_cipher[60 + 16] = {   /* ciphertext, then the tag */
    0x42, 0x83, 0x1e, 0xc2, 0x21, 0x77, 0x74, 0x24, 0x4b, 0x72, 0x21, 0xb7, 0x84, 0xd0, 0xd4, 0x9c,
    0xe3, 0xaa, 0x21, 0x2f, 0x2c, 0x02, 0xa4, 0xe0, 0x35, 0xc1, 0x7e, 0x23, 0x29, 0xac, 0xa1, 0x2e,
    0x21, 0xd5, 0x14, 0xb2, 0x54, 0x66, 0x93, 0x1c, 0x7d, 0x8f, 0x6a, 0x5a, 0xac, 0x84, 0xaa, 0x05,
    0x1b, 0xa3, 0x0b, 0x39, 0x6a, 0x0a, 0xac, 0x97, 0x3d, 0x58, 0xe0, 0x91,
    0x5b, 0xc9, 0x4f, 0xbc, 0x32, 0x21, 0xa5, 0xdb, 0x94, 0xfa, 0xe9, 0x5a, 0xe7, 0x12, 0x1a, 0x47,
};
static const srtp_cipher_test_case_t gcm_test = {
    .key_length_octets = sizeof(gcm_key),
    .key = gcm_key,
    .idx = gcm_iv,
    .plaintext_length_octets = sizeof(gcm_plain),
    .plaintext = gcm_plain,
    .ciphertext_length_octets = sizeof(gcm_cipher),
    .ciphertext = gcm_cipher,
    .aad_length_octets = sizeof(gcm_aad),
    .aad = gcm_aad,
    .tag_length_octets = 16,
};

static const srtp_cipher_type_t gcm_type = {
    .alloc = gcm_alloc,
    .dealloc = gcm_dealloc,
    .init = gcm_init,
    .set_aad = gcm_set_aad,
    .encrypt = gcm_encrypt,
    .decrypt = gcm_decrypt,
    .set_iv = gcm_set_iv,
    .get_tag = gcm_get_tag,
    .description = "AES-128 GCM (OpenSSL)",
    .test_data = &gcm_test,
    .id = SRTP_AES_GCM_128,
};

static const char *active = "libsrtp2";
static const char *active_gcm = "libsrtp2";

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

int msrtp_crypto_install_gcm(void)
{
    aes128_gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    if (!aes128_gcm || srtp_replace_cipher_type(&gcm_type, SRTP_AES_GCM_128) != srtp_err_status_ok) return -1;
    active_gcm = "OpenSSL";
    return 0;
}

const char *msrtp_crypto_name(void) { return active; }
const char *msrtp_crypto_gcm_name(void) { return active_gcm; }
