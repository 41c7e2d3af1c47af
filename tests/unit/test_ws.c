/* test_ws.c — the WebSocket handshake and frame codec (RFC 6455) as SIP over
 * WebSocket uses them (RFC 7118): what a browser's upgrade gets back, what
 * is refused and with which status, and how client frames decode, byte by
 * byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transport/ws.h"

/* What Chromium sends for new JsSIP.WebSocketInterface("ws://127.0.0.1:5066"),
 * with the RFC 6455 §1.3 sample key. */
#define JSSIP_REQUEST(version, key, origin_line, protocol_line) \
    "GET / HTTP/1.1\r\n"                                          \
    "Host: 127.0.0.1:5066\r\n"                                    \
    "Connection: Upgrade\r\n"                                     \
    "Pragma: no-cache\r\n"                                        \
    "Cache-Control: no-cache\r\n"                                 \
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome\r\n" \
    "Upgrade: websocket\r\n" origin_line                          \
    "Sec-WebSocket-Version: " version "\r\n"                      \
    "Accept-Encoding: gzip, deflate, br\r\n"                      \
    "Sec-WebSocket-Key: " key "\r\n"                              \
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" protocol_line "\r\n"

#define SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ORIGIN "Origin: http://127.0.0.1:8080\r\n"
#define PROTO_SIP "Sec-WebSocket-Protocol: sip\r\n"
#define GOOD JSSIP_REQUEST("13", SAMPLE_KEY, ORIGIN, PROTO_SIP)

struct answer {
    enum ws_handshake_result rc;
    char text[1024];
    size_t consumed;
    const char *why;
};

static const struct ws_handshake_config open_cfg = {.allow_no_origin = true};

static struct answer handshake(const char *req, size_t len, const struct ws_handshake_config *cfg)
{
    struct answer a;
    memset(&a, 0, sizeof a);
    size_t outlen = 0;
    a.rc = ws_handshake(req, len, cfg, a.text, 512, &outlen, &a.consumed, &a.why);
    assert_true(outlen < 512);
    a.text[outlen] = '\0';
    return a;
}

static void assert_status(const struct answer *a, enum ws_handshake_result rc, const char *status_line)
{
    assert_int_equal(a->rc, rc);
    assert_true(strncmp(a->text, status_line, strlen(status_line)) == 0);
    if (rc == WS_HANDSHAKE_REFUSED) {
        assert_non_null(a->why);
        assert_non_null(strstr(a->text, "\r\nContent-Length: 0\r\n"));
    }
    assert_true(strlen(a->text) >= 4 && strcmp(a->text + strlen(a->text) - 4, "\r\n\r\n") == 0);
}

/* RFC 6455 §4.2.2, RFC 7118 §4.1: the browser's request gets a 101 with the
 * §1.3 accept value for the sample key and the sip subprotocol chosen. */
static void test_jssip_request_accepted(void **state)
{
    (void)state;
    struct answer a = handshake(GOOD, strlen(GOOD), &open_cfg);
    assert_status(&a, WS_HANDSHAKE_ACCEPTED, "HTTP/1.1 101 Switching Protocols\r\n");
    assert_non_null(strstr(a.text, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strstr(a.text, "\r\nSec-WebSocket-Protocol: sip\r\n"));
    assert_non_null(strstr(a.text, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(a.text, "\r\nConnection: Upgrade\r\n"));
    assert_int_equal(a.consumed, strlen(GOOD));
}

/* Header names and the Upgrade/Connection tokens are case-insensitive and
 * lists may span lines (Firefox sends "Connection: keep-alive, Upgrade");
 * "sip" may be one of several offered subprotocols. */
static void test_tokens_in_lists_accepted(void **state)
{
    (void)state;
    const char *req = "GET /ws HTTP/1.1\r\n"
                      "host: example.com\r\n"
                      "CONNECTION: keep-alive\r\n"
                      "connection:keep-alive ,  UPGRADE\r\n"
                      "upgrade: WebSocket\r\n"
                      "sec-websocket-version:13\r\n"
                      "SEC-WEBSOCKET-KEY:   x3JJHMbDL1EzLkh9GBhXDw==  \r\n"
                      "Sec-WebSocket-Protocol: chat\r\n"
                      "Sec-WebSocket-Protocol: xmpp, sip\r\n"
                      "\r\n";
    struct answer a = handshake(req, strlen(req), &open_cfg);
    assert_status(&a, WS_HANDSHAKE_ACCEPTED, "HTTP/1.1 101 ");
    /* computed apart: base64(SHA-1(key GUID)) with python3 hashlib */
    assert_non_null(strstr(a.text, "Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n"));
}

/* RFC 7118 §4.1: no "sip" in Sec-WebSocket-Protocol, or none at all -> 400;
 * the name is matched exactly. */
static void test_no_sip_subprotocol_refused(void **state)
{
    (void)state;
    const char *reqs[] = {
        JSSIP_REQUEST("13", SAMPLE_KEY, ORIGIN, ""),
        JSSIP_REQUEST("13", SAMPLE_KEY, ORIGIN, "Sec-WebSocket-Protocol: chat, sips\r\n"),
        JSSIP_REQUEST("13", SAMPLE_KEY, ORIGIN, "Sec-WebSocket-Protocol: SIP\r\n"),
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        struct answer a = handshake(reqs[i], strlen(reqs[i]), &open_cfg);
        assert_status(&a, WS_HANDSHAKE_REFUSED, "HTTP/1.1 400 ");
        assert_string_equal(a.why, "no sip subprotocol");
        assert_int_equal(a.consumed, strlen(reqs[i]));
    }
}

/* RFC 6455 §4.2.2 / §4.4: an unknown version -> 400 naming the one we speak. */
static void test_wrong_version_refused_with_ours(void **state)
{
    (void)state;
    const char *req = JSSIP_REQUEST("8", SAMPLE_KEY, ORIGIN, PROTO_SIP);
    struct answer a = handshake(req, strlen(req), &open_cfg);
    assert_status(&a, WS_HANDSHAKE_REFUSED, "HTTP/1.1 400 ");
    assert_non_null(strstr(a.text, "\r\nSec-WebSocket-Version: 13\r\n"));
}

/* RFC 6455 §4.2.1 item 5: the key must be base64 of exactly 16 bytes. */
static void test_bad_key_refused(void **state)
{
    (void)state;
    const char *reqs[] = {
        JSSIP_REQUEST("13", "dGhlIHNhbXBsZSBub25jZQ", ORIGIN, PROTO_SIP),     /* no padding */
        JSSIP_REQUEST("13", "dGhlIHNhbXBsZSBub25jZQ=", ORIGIN, PROTO_SIP),    /* short padding */
        JSSIP_REQUEST("13", "dGhlIHNhbXBsZSBub25jZQAA", ORIGIN, PROTO_SIP),   /* 18 bytes */
        JSSIP_REQUEST("13", "dGhlIHNhbXBsZSBub25j*Q==", ORIGIN, PROTO_SIP),   /* not base64 */
        JSSIP_REQUEST("13", "dGhlIHNhbXBsZSBub25jZXh4eA==", ORIGIN, PROTO_SIP), /* 19 bytes */
        JSSIP_REQUEST("13", "", ORIGIN, PROTO_SIP),
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        struct answer a = handshake(reqs[i], strlen(reqs[i]), &open_cfg);
        assert_status(&a, WS_HANDSHAKE_REFUSED, "HTTP/1.1 400 ");
        assert_string_equal(a.why, "bad Sec-WebSocket-Key");
    }
}

/* Not an upgrade at all: plain GET, another method, HTTP/1.0, no Host. */
static void test_not_an_upgrade_refused(void **state)
{
    (void)state;
    const char *reqs[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP a\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        struct answer a = handshake(reqs[i], strlen(reqs[i]), &open_cfg);
        assert_status(&a, WS_HANDSHAKE_REFUSED, "HTTP/1.1 400 ");
    }
}

/* RFC 9112 §5.2: obsolete line folding is refused; so are lines without a
 * colon and bare LF line ends. */
static void test_malformed_lines_refused(void **state)
{
    (void)state;
    const char *reqs[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection:\r\n Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: " SAMPLE_KEY "\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        struct answer a = handshake(reqs[i], strlen(reqs[i]), &open_cfg);
        assert_status(&a, WS_HANDSHAKE_REFUSED, "HTTP/1.1 400 ");
    }
}

/* RFC 6455 §4.2.2 item 4 (and §10.2): an Origin allow-list. */
static void test_origin_allow_list(void **state)
{
    (void)state;
    const char *origins[] = {"https://phone.example.com", "http://127.0.0.1:8080"};
    struct ws_handshake_config cfg = {.origins = origins, .n_origins = 2, .allow_no_origin = false};

    struct answer a = handshake(GOOD, strlen(GOOD), &cfg);
    assert_status(&a, WS_HANDSHAKE_ACCEPTED, "HTTP/1.1 101 ");

    const char *upper = JSSIP_REQUEST("13", SAMPLE_KEY, "Origin: HTTP://127.0.0.1:8080\r\n", PROTO_SIP);
    a = handshake(upper, strlen(upper), &cfg);
    assert_status(&a, WS_HANDSHAKE_ACCEPTED, "HTTP/1.1 101 ");

    const char *other = JSSIP_REQUEST("13", SAMPLE_KEY, "Origin: http://evil.example\r\n", PROTO_SIP);
    a = handshake(other, strlen(other), &cfg);
    assert_status(&a, WS_HANDSHAKE_REFUSED, "HTTP/1.1 403 ");
    assert_string_equal(a.why, "Origin not allowed");

    const char *none = JSSIP_REQUEST("13", SAMPLE_KEY, "", PROTO_SIP);
    a = handshake(none, strlen(none), &cfg);
    assert_status(&a, WS_HANDSHAKE_REFUSED, "HTTP/1.1 403 ");
    assert_string_equal(a.why, "no Origin");

    cfg.allow_no_origin = true;
    a = handshake(none, strlen(none), &cfg);
    assert_status(&a, WS_HANDSHAKE_ACCEPTED, "HTTP/1.1 101 ");
}

/* Without a list any Origin is accepted; a request without one still needs
 * allow_no_origin. */
static void test_no_list_any_origin(void **state)
{
    (void)state;
    struct ws_handshake_config cfg = {.allow_no_origin = false};
    const char *other = JSSIP_REQUEST("13", SAMPLE_KEY, "Origin: http://anything.example\r\n", PROTO_SIP);
    struct answer a = handshake(other, strlen(other), &cfg);
    assert_status(&a, WS_HANDSHAKE_ACCEPTED, "HTTP/1.1 101 ");
    const char *none = JSSIP_REQUEST("13", SAMPLE_KEY, "", PROTO_SIP);
    a = handshake(none, strlen(none), &cfg);
    assert_status(&a, WS_HANDSHAKE_REFUSED, "HTTP/1.1 403 ");
}

/* Every proper prefix of the head is incomplete: nothing written or consumed. */
static void test_incomplete_head(void **state)
{
    (void)state;
    size_t n = strlen(GOOD);
    for (size_t cut = 0; cut < n; cut++) {
        struct answer a = handshake(GOOD, cut, &open_cfg);
        assert_int_equal(a.rc, WS_HANDSHAKE_INCOMPLETE);
        assert_int_equal(a.consumed, 0);
        assert_string_equal(a.text, "");
    }
}

/* A head that does not end within WS_MAX_HEAD bytes -> 431; one that ends
 * exactly at the limit is read. */
static void test_head_over_limit_431(void **state)
{
    (void)state;
    char *big = malloc(WS_MAX_HEAD + 64);
    assert_non_null(big);
    size_t n = (size_t)snprintf(big, WS_MAX_HEAD + 64, "%s", "GET / HTTP/1.1\r\nX-Pad: ");
    while (n < WS_MAX_HEAD) big[n++] = 'a';
    struct answer a = handshake(big, n, &open_cfg);
    assert_status(&a, WS_HANDSHAKE_REFUSED, "HTTP/1.1 431 ");
    assert_int_equal(a.consumed, n);

    /* GOOD with a padding header that makes it exactly WS_MAX_HEAD long */
    const char *good = GOOD;
    const char *tail = good + strlen("GET / HTTP/1.1\r\n");
    size_t fixed = strlen("GET / HTTP/1.1\r\nX-Pad: \r\n") + strlen(tail);
    n = (size_t)snprintf(big, WS_MAX_HEAD + 64, "GET / HTTP/1.1\r\nX-Pad: ");
    while (n < WS_MAX_HEAD - (fixed - strlen("GET / HTTP/1.1\r\nX-Pad: "))) big[n++] = 'a';
    n += (size_t)snprintf(big + n, WS_MAX_HEAD + 64 - n, "\r\n%s", tail);
    assert_int_equal(n, WS_MAX_HEAD);
    a = handshake(big, n, &open_cfg);
    assert_status(&a, WS_HANDSHAKE_ACCEPTED, "HTTP/1.1 101 ");
    assert_int_equal(a.consumed, WS_MAX_HEAD);
    free(big);
}

/* A client may send its first frame right behind the head: only the head is
 * consumed. */
static void test_pipelined_bytes_not_consumed(void **state)
{
    (void)state;
    char buf[2048];
    size_t head = strlen(GOOD);
    memcpy(buf, GOOD, head);
    memcpy(buf + head, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    struct answer a = handshake(buf, head + 11, &open_cfg);
    assert_status(&a, WS_HANDSHAKE_ACCEPTED, "HTTP/1.1 101 ");
    assert_int_equal(a.consumed, head);
}

/* ---- frames ---------------------------------------------------------- */

/* Builds a masked client frame (the shortest length form). */
static size_t client_frame(uint8_t *out, uint8_t b0, const uint8_t *payload, size_t len, const uint8_t key[4])
{
    size_t h = ws_frame_header(out, WS_OP_TEXT, len);
    out[0] = b0;
    out[1] |= 0x80;
    memcpy(out + h, key, 4);
    for (size_t i = 0; i < len; i++) out[h + 4 + i] = payload[i] ^ key[i & 3];
    return h + 4 + len;
}

static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};

/* RFC 6455 §5.7: a single-frame masked text message "Hello". */
static void test_decode_masked_hello(void **state)
{
    (void)state;
    uint8_t buf[sizeof hello_masked];
    memcpy(buf, hello_masked, sizeof buf);
    struct ws_frame f;
    const char *why = NULL;
    assert_int_equal(ws_frame_decode(buf, sizeof buf, 1024, &f, &why), 11);
    assert_int_equal(f.opcode, WS_OP_TEXT);
    assert_true(f.fin);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "Hello", 5);
    assert_ptr_equal(f.payload, buf + 6);
}

/* RFC 6455 §5.7: the masked pong carrying "Hello". */
static void test_decode_masked_pong(void **state)
{
    (void)state;
    uint8_t buf[sizeof hello_masked];
    memcpy(buf, hello_masked, sizeof buf);
    buf[0] = 0x8a;
    struct ws_frame f;
    const char *why = NULL;
    assert_int_equal(ws_frame_decode(buf, sizeof buf, 1024, &f, &why), 11);
    assert_int_equal(f.opcode, WS_OP_PONG);
    assert_memory_equal(f.payload, "Hello", 5);
}

/* RFC 6455 §5.7: 256 bytes (16-bit length) and 65536 bytes (64-bit length)
 * binary messages, masked as a client sends them. */
static void test_decode_16_and_64_bit_lengths(void **state)
{
    (void)state;
    const uint8_t key[4] = {1, 2, 3, 4};
    size_t sizes[] = {126, 256, 65535, 65536, 70000};
    uint8_t *payload = malloc(70000), *buf = malloc(70000 + 14);
    assert_non_null(payload);
    assert_non_null(buf);
    for (size_t i = 0; i < 70000; i++) payload[i] = (uint8_t)(i * 7);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = client_frame(buf, 0x82, payload, sizes[k], key);
        assert_int_equal(n, sizes[k] + (sizes[k] <= 65535 ? 8 : 14));
        assert_int_equal(buf[1], sizes[k] <= 65535 ? 0xFE : 0xFF);
        struct ws_frame f;
        const char *why = NULL;
        assert_int_equal(ws_frame_decode(buf, n, 1 << 20, &f, &why), (long)n);
        assert_int_equal(f.opcode, WS_OP_BINARY);
        assert_int_equal(f.len, sizes[k]);
        assert_memory_equal(f.payload, payload, sizes[k]);
    }
    free(payload);
    free(buf);
}

/* RFC 6455 does not require the shortest length form: 5 bytes in a 16-bit
 * and in a 64-bit length decode. */
static void test_decode_long_form_of_short_length(void **state)
{
    (void)state;
    uint8_t b16[] = {0x81, 0xFE, 0x00, 0x05, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t b64[] = {0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct ws_frame f;
    const char *why = NULL;
    assert_int_equal(ws_frame_decode(b16, sizeof b16, 100, &f, &why), sizeof b16);
    assert_memory_equal(f.payload, "Hello", 5);
    assert_int_equal(ws_frame_decode(b64, sizeof b64, 100, &f, &why), sizeof b64);
    assert_memory_equal(f.payload, "Hello", 5);
}

/* RFC 6455 §5.1: a server closes on an unmasked client frame (§5.7's
 * unmasked "Hello"). */
static void test_unmasked_frame_is_error(void **state)
{
    (void)state;
    uint8_t buf[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    struct ws_frame f;
    const char *why = NULL;
    assert_int_equal(ws_frame_decode(buf, sizeof buf, 1024, &f, &why), -1);
    assert_string_equal(why, "unmasked frame");
}

/* RFC 6455 §5.2: RSV1-3 without a negotiated extension. */
static void test_reserved_bits_are_error(void **state)
{
    (void)state;
    for (uint8_t rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        uint8_t buf[sizeof hello_masked];
        memcpy(buf, hello_masked, sizeof buf);
        buf[0] |= rsv;
        struct ws_frame f;
        const char *why = NULL;
        assert_int_equal(ws_frame_decode(buf, sizeof buf, 1024, &f, &why), -1);
        assert_string_equal(why, "reserved bits set");
    }
}

/* RFC 6455 §5.2: opcodes 3-7 and B-F are reserved. */
static void test_unknown_opcodes_are_error(void **state)
{
    (void)state;
    const uint8_t ops[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof ops; i++) {
        uint8_t buf[sizeof hello_masked];
        memcpy(buf, hello_masked, sizeof buf);
        buf[0] = (uint8_t)(0x80 | ops[i]);
        struct ws_frame f;
        const char *why = NULL;
        assert_int_equal(ws_frame_decode(buf, sizeof buf, 1024, &f, &why), -1);
        assert_string_equal(why, "unknown opcode");
    }
}

/* RFC 6455 §5.5: control frames are not fragmented and carry <= 125 bytes. */
static void test_control_frame_limits(void **state)
{
    (void)state;
    uint8_t buf[200];
    const uint8_t key[4] = {9, 8, 7, 6};
    uint8_t payload[126] = {0};
    struct ws_frame f;
    const char *why = NULL;

    size_t n = client_frame(buf, 0x09 /* ping, FIN clear */, payload, 5, key);
    assert_int_equal(ws_frame_decode(buf, n, 1024, &f, &why), -1);
    assert_string_equal(why, "fragmented control frame");

    n = client_frame(buf, 0x89, payload, 126, key);
    assert_int_equal(ws_frame_decode(buf, n, 1024, &f, &why), -1);
    assert_string_equal(why, "control frame over 125 bytes");

    n = client_frame(buf, 0x89, payload, 125, key);
    assert_int_equal(ws_frame_decode(buf, n, 1024, &f, &why), (long)n);
    assert_int_equal(f.opcode, WS_OP_PING);
    assert_int_equal(f.len, 125);
}

/* Data frames may be fragmented: a text start without FIN, then a
 * continuation with it. */
static void test_fragmented_data_frames(void **state)
{
    (void)state;
    uint8_t buf[64];
    const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    struct ws_frame f;
    const char *why = NULL;
    size_t n = client_frame(buf, 0x01, (const uint8_t *)"Hel", 3, key);
    assert_int_equal(ws_frame_decode(buf, n, 1024, &f, &why), (long)n);
    assert_false(f.fin);
    assert_int_equal(f.opcode, WS_OP_TEXT);
    n = client_frame(buf, 0x80, (const uint8_t *)"lo", 2, key);
    assert_int_equal(ws_frame_decode(buf, n, 1024, &f, &why), (long)n);
    assert_true(f.fin);
    assert_int_equal(f.opcode, WS_OP_CONTINUATION);
    assert_memory_equal(f.payload, "lo", 2);
}

/* A payload over the limit is refused (close 1009) as soon as its length is
 * known, before the payload arrives. */
static void test_payload_over_limit(void **state)
{
    (void)state;
    struct ws_frame f;
    const char *why = NULL;
    uint8_t b16[] = {0x82, 0xFE, 0x01, 0x00};           /* 256 bytes announced */
    assert_int_equal(ws_frame_decode(b16, sizeof b16, 255, &f, &why), -2);
    assert_string_equal(why, "frame over the size limit");
    uint8_t b64[] = {0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0}; /* 4 GiB announced */
    assert_int_equal(ws_frame_decode(b64, sizeof b64, 1 << 20, &f, &why), -2);
    uint8_t exact[] = {0x82, 0xFE, 0x01, 0x00};
    assert_int_equal(ws_frame_decode(exact, sizeof exact, 256, &f, &why), 0); /* at the limit: wait for it */
}

/* RFC 6455 §5.2: a 64-bit length's most significant bit must be 0. */
static void test_64_bit_length_msb_is_error(void **state)
{
    (void)state;
    uint8_t buf[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4};
    struct ws_frame f;
    const char *why = NULL;
    assert_int_equal(ws_frame_decode(buf, sizeof buf, (size_t)-1, &f, &why), -1);
    assert_string_equal(why, "bad frame length");
}

/* Every proper prefix of a frame is "not yet" and leaves the bytes alone. */
static void test_partial_frames_wait(void **state)
{
    (void)state;
    static uint8_t payload[300];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)i;
    const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
    size_t sizes[] = {0, 5, 125, 126, 300};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t frame[400], copy[400];
        size_t n = client_frame(frame, 0x82, payload, sizes[k], key);
        for (size_t cut = 0; cut < n; cut++) {
            memcpy(copy, frame, n);
            struct ws_frame f;
            const char *why = NULL;
            assert_int_equal(ws_frame_decode(copy, cut, 1024, &f, &why), 0);
            assert_memory_equal(copy, frame, n);
        }
        memcpy(copy, frame, n);
        struct ws_frame f;
        const char *why = NULL;
        assert_int_equal(ws_frame_decode(copy, n, 1024, &f, &why), (long)n);
        assert_int_equal(f.len, sizes[k]);
        if (sizes[k]) assert_memory_equal(f.payload, payload, sizes[k]);
    }
}

/* Two frames back to back: the first decode takes only the first. */
static void test_back_to_back_frames(void **state)
{
    (void)state;
    uint8_t buf[2 * sizeof hello_masked];
    memcpy(buf, hello_masked, sizeof hello_masked);
    memcpy(buf + sizeof hello_masked, hello_masked, sizeof hello_masked);
    struct ws_frame f;
    const char *why = NULL;
    assert_int_equal(ws_frame_decode(buf, sizeof buf, 1024, &f, &why), 11);
    assert_int_equal(ws_frame_decode(buf + 11, sizeof buf - 11, 1024, &f, &why), 11);
    assert_memory_equal(f.payload, "Hello", 5);
}

/* RFC 6455 §5.2: server frames, unmasked, FIN set, shortest length form. */
static void test_frame_header_lengths(void **state)
{
    (void)state;
    uint8_t h[WS_MAX_HEADER];
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 0), 2);
    assert_memory_equal(h, "\x81\x00", 2);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 125), 2);
    assert_memory_equal(h, "\x81\x7d", 2);
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 126), 4);
    assert_memory_equal(h, "\x82\x7e\x00\x7e", 4);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 65535), 4);
    assert_memory_equal(h, "\x81\x7e\xff\xff", 4);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 65536), 10);
    assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(ws_frame_header(h, WS_OP_PING, 0), 2);
    assert_memory_equal(h, "\x89\x00", 2);
}

/* RFC 6455 §5.5.1: code big-endian, then the reason, within 125 bytes and
 * cut at a UTF-8 character boundary. */
static void test_close_payload(void **state)
{
    (void)state;
    uint8_t out[200];
    assert_int_equal(ws_close_payload(out, sizeof out, 1009, "too big"), 9);
    assert_memory_equal(out, "\x03\xf1too big", 9);
    assert_int_equal(ws_close_payload(out, sizeof out, 1000, NULL), 2);
    assert_memory_equal(out, "\x03\xe8", 2);
    assert_int_equal(ws_close_payload(out, 1, 1000, "x"), 0);
    assert_int_equal(ws_close_payload(out, 4, 1002, "abcdef"), 4);

    char reason[200];
    memset(reason, 'a', 122);
    strcpy(reason + 122, "\xc3\xa9tail"); /* an é straddling byte 125 */
    size_t n = ws_close_payload(out, sizeof out, 1001, reason);
    assert_int_equal(n, 124);
    assert_int_equal(out[n - 1], 'a');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jssip_request_accepted),
        cmocka_unit_test(test_tokens_in_lists_accepted),
        cmocka_unit_test(test_no_sip_subprotocol_refused),
        cmocka_unit_test(test_wrong_version_refused_with_ours),
        cmocka_unit_test(test_bad_key_refused),
        cmocka_unit_test(test_not_an_upgrade_refused),
        cmocka_unit_test(test_malformed_lines_refused),
        cmocka_unit_test(test_origin_allow_list),
        cmocka_unit_test(test_no_list_any_origin),
        cmocka_unit_test(test_incomplete_head),
        cmocka_unit_test(test_head_over_limit_431),
        cmocka_unit_test(test_pipelined_bytes_not_consumed),
        cmocka_unit_test(test_decode_masked_hello),
        cmocka_unit_test(test_decode_masked_pong),
        cmocka_unit_test(test_decode_16_and_64_bit_lengths),
        cmocka_unit_test(test_decode_long_form_of_short_length),
        cmocka_unit_test(test_unmasked_frame_is_error),
        cmocka_unit_test(test_reserved_bits_are_error),
        cmocka_unit_test(test_unknown_opcodes_are_error),
        cmocka_unit_test(test_control_frame_limits),
        cmocka_unit_test(test_fragmented_data_frames),
        cmocka_unit_test(test_payload_over_limit),
        cmocka_unit_test(test_64_bit_length_msb_is_error),
        cmocka_unit_test(test_partial_frames_wait),
        cmocka_unit_test(test_back_to_back_frames),
        cmocka_unit_test(test_frame_header_lengths),
        cmocka_unit_test(test_close_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
