/* srtp_crypto.h — OpenSSL primitives for libsrtp2's AES_CM_128_HMAC_SHA1_80
 * and AEAD_AES_128_GCM
 * (see srtp_crypto.c for why). Called once, by srtp.c's global init, after
 * srtp_init() and before any session exists. */
#ifndef CASCADE_MEDIA_SRTP_CRYPTO_H
#define CASCADE_MEDIA_SRTP_CRYPTO_H

/* 0 when both primitives now come from OpenSSL; -1 when libsrtp2 refused
 * one (its self-test failed) and keeps its own. */
int msrtp_crypto_install(void);
/* The same for AEAD_AES_128_GCM (RFC 7714): 0 when OpenSSL's AES-128-GCM
 * replaces libsrtp2's (Debian's is NSS, a PKCS#11 round per packet). */
int msrtp_crypto_install_gcm(void);

/* What computes SRTP now, for logs and /api/v1/stats. */
const char *msrtp_crypto_name(void);
/* What computes AEAD_AES_128_GCM: "OpenSSL" or "libsrtp2". */
const char *msrtp_crypto_gcm_name(void);

#endif
