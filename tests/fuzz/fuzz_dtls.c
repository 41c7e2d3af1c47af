/* fuzz_dtls.c — libFuzzer target for media/dtls.h: the a=fingerprint
 * parser, and arbitrary datagrams fed to a fresh server or client session.
 *
 * Input: the first byte picks the mode. 0: the rest is a fingerprint value;
 * what parses must re-serialise and parse back to the same digest.
 * 1 (server) / 2 (client): the rest is datagrams, each as a 16-bit
 * big-endian length and its bytes; the session must never crash, never
 * complete a handshake (no peer holds the key behind the expected
 * fingerprint) and never send a datagram larger than DTLS_MTU. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media/dtls.h"

#define CHECK(x)                    \
    do {                            \
        if (!(x)) __builtin_trap(); \
    } while (0)

static int sink(void *user, const void *data, size_t len)
{
    (void)user, (void)data;
    CHECK(len > 0 && len <= DTLS_MTU);
    return 0;
}

static void fingerprint(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return;
    memcpy(s, data, size);
    s[size] = '\0';
    uint8_t d[DTLS_FP_LEN], again[DTLS_FP_LEN];
    if (dtls_fingerprint_parse(s, d) == 0) {
        char v[DTLS_FP_ATTR_LEN + 1];
        int n = snprintf(v, sizeof(v), "sha-256");
        for (int i = 0; i < DTLS_FP_LEN; i++) n += snprintf(v + n, sizeof(v) - (size_t)n, "%c%02X", i ? ':' : ' ', d[i]);
        CHECK(dtls_fingerprint_parse(v, again) == 0);
        CHECK(memcmp(d, again, DTLS_FP_LEN) == 0);
    }
    free(s);
}

static void datagrams(struct dtls_context *ctx, enum dtls_role role, const uint8_t *data, size_t size)
{
    static const uint8_t peer_fp[DTLS_FP_LEN] = {1};
    struct dtls_session *s = dtls_session_new(ctx, role, peer_fp);
    if (!s) return;
    struct dtls_io io = {NULL, sink};
    const char *why = NULL;
    (void)dtls_session_start(s, &io, &why);
    while (size >= 2) {
        size_t n = (size_t)data[0] << 8 | data[1];
        data += 2, size -= 2;
        if (n > size) n = size;
        int rc = dtls_session_input(s, data, n, &io, &why);
        CHECK(rc == 0 || why != NULL);
        CHECK(!dtls_session_established(s));
        data += n, size -= n;
    }
    (void)dtls_session_timeout_ms(s);
    dtls_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dtls_context *ctx;
    if (!ctx) {
        char err[200];
        ctx = dtls_context_new(0, err, sizeof(err));
        CHECK(ctx != NULL);
    }
    if (size < 1) return 0;
    switch (data[0] % 3) {
    case 0: fingerprint(data + 1, size - 1); break;
    case 1: datagrams(ctx, DTLS_ROLE_SERVER, data + 1, size - 1); break;
    default: datagrams(ctx, DTLS_ROLE_CLIENT, data + 1, size - 1); break;
    }
    return 0;
}
