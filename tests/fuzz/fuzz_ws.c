/* fuzz_ws.c — libFuzzer target for the WebSocket handshake and frame codec
 * (src/transport/ws.c).
 *
 * The input is offered whole as a handshake head, then as a stream of client
 * frames cut in two at a byte the input picks (as two reads would deliver
 * it). What must hold: nothing read or written out of bounds, consumed <=
 * len, an error always says why, a frame's payload lies inside it, and
 * more bytes never change a verdict already given (a complete frame or an
 * error on a prefix is the same on the whole). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/ws.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

static void handshake(const uint8_t *data, size_t size)
{
    static const char *const origins[] = {"http://127.0.0.1:8080", "https://phone.example"};
    struct ws_handshake_config cfg = {.origins = origins, .n_origins = size & 1 ? 2 : 0, .allow_no_origin = size & 2};
    char out[512];
    size_t outlen = 99, consumed = 99;
    const char *why = NULL;
    enum ws_handshake_result r = ws_handshake((const char *)data, size, &cfg, out, sizeof out, &outlen, &consumed, &why);
    CHECK(consumed <= size && outlen < sizeof out);
    if (r == WS_HANDSHAKE_INCOMPLETE) {
        CHECK(consumed == 0 && outlen == 0 && size < WS_MAX_HEAD);
        return;
    }
    CHECK(r == WS_HANDSHAKE_ACCEPTED || r == WS_HANDSHAKE_REFUSED);
    CHECK(consumed > 0 && outlen > 12 && memcmp(out + outlen - 4, "\r\n\r\n", 4) == 0);
    if (r == WS_HANDSHAKE_ACCEPTED) {
        CHECK(memcmp(out, "HTTP/1.1 101 ", 13) == 0 && why == NULL);
        CHECK(consumed <= WS_MAX_HEAD);
    } else {
        CHECK(why != NULL && memcmp(out, "HTTP/1.1 4", 10) == 0);
    }
    /* The head alone gives the same answer: bytes after it play no part. */
    if (consumed < size && consumed <= WS_MAX_HEAD) {
        char out2[512];
        size_t outlen2, consumed2;
        const char *why2 = NULL;
        CHECK(ws_handshake((const char *)data, consumed, &cfg, out2, sizeof out2, &outlen2, &consumed2, &why2) == r);
        CHECK(consumed2 == consumed && outlen2 == outlen && memcmp(out, out2, outlen) == 0);
    }
}

/* Decodes one frame at buf[0..avail); checks what comes back. */
static long decode_one(uint8_t *buf, size_t avail, size_t max_payload, struct ws_frame *f)
{
    const char *why = NULL;
    long rc = ws_frame_decode(buf, avail, max_payload, f, &why);
    CHECK(rc >= -2 && (rc <= 0 || (size_t)rc <= avail));
    if (rc < 0) CHECK(why != NULL);
    if (rc > 0) {
        CHECK(f->len <= max_payload && f->payload >= buf + 2 && f->payload + f->len == buf + rc);
        if (f->opcode >= WS_OP_CLOSE) CHECK(f->fin && f->len <= 125);
    }
    return rc;
}

static void frames(const uint8_t *data, size_t size)
{
    if (size < 2) return;
    size_t split = data[0] % (size - 1) + 1;       /* the first read's length */
    size_t max_payload = (size_t)(data[1] & 0x7f) << (data[1] >> 7 ? 9 : 2);
    data += 2;
    size -= 2;
    split = split > size ? size : split;
    uint8_t *buf = malloc(size + 1), *copy = malloc(size + 1);
    if (!buf || !copy) abort();
    memcpy(buf, data, size);
    size_t pos = 0;
    while (pos < size) {
        struct ws_frame f, g;
        long whole;
        memcpy(copy, buf, size);
        if (pos < split) {
            /* What the first read holds; then the same bytes with the rest. */
            long part = decode_one(copy + pos, split - pos, max_payload, &f);
            whole = decode_one(buf + pos, size - pos, max_payload, &g);
            if (part != 0) CHECK(whole == part);
            if (whole > 0 && (size_t)whole <= split - pos) CHECK(part == whole);
            if (whole > 0) CHECK(f.len == g.len || part == 0);
        } else {
            whole = decode_one(buf + pos, size - pos, max_payload, &g);
        }
        if (whole <= 0) break;
        /* Our own header for that length is the shortest form of it. */
        uint8_t hdr[WS_MAX_HEADER];
        size_t h = ws_frame_header(hdr, g.opcode, g.len);
        CHECK(h == 2 || h == 4 || h == 10);
        CHECK((h == 2) == (g.len < 126) && (h == 4) == (g.len >= 126 && g.len <= 0xFFFF));
        pos += (size_t)whole;
    }
    free(buf);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    handshake(data, size);
    frames(data, size);
    uint8_t close[125];
    size_t n = ws_close_payload(close, size % 130, (uint16_t)size, size > 4 ? (const char *)"fuzz \xc3\xa9 reason" : NULL);
    CHECK(n <= 125 && (n == 0 || n >= 2));
    return 0;
}
