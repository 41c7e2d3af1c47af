/* test_stun.c — STUN (RFC 8489) parsing, verification and building, the
 * ICE-lite responder (RFC 8445 §7.3) and the RFC 7983 demultiplexer.
 *
 * The RFC 5769 test vectors are typed from the RFC; the other messages are
 * assembled here byte by byte (tmsg_*) so every refusal path of the
 * responder can be reached on purpose. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "media/stun.h"

/* ---- RFC 5769 §2.1-2.3 (padding bytes in the RFC are 0x20, on purpose) ---- */

static const char rfc_pwd[] = "VOkJxbRl1RmTxUk/WvJxBt";

static const uint8_t rfc_request[] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87,
    0xdf, 0xae, /* SOFTWARE "STUN test client" */
    0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65,
    0x6e, 0x74, /* PRIORITY */
    0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, /* ICE-CONTROLLED */
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, /* USERNAME "evtj:h6vY" */
    0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20,
    /* MESSAGE-INTEGRITY */
    0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3,
    0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, /* FINGERPRINT */
    0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf};

static const uint8_t rfc_ipv4_response[] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87,
    0xdf, 0xae, /* SOFTWARE "test vector" */
    0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
    /* XOR-MAPPED-ADDRESS 192.0.2.1:32853 */
    0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, /* MESSAGE-INTEGRITY */
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9,
    0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, /* FINGERPRINT */
    0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96};

static const uint8_t rfc_ipv6_response[] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87,
    0xdf, 0xae, /* SOFTWARE "test vector" */
    0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
    /* XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853 */
    0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
    0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, /* MESSAGE-INTEGRITY */
    0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92,
    0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, /* FINGERPRINT */
    0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c};

static const uint8_t rfc_tid[STUN_TID_LEN] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

/* ---- a hand assembler for messages the library would never build ---- */

typedef struct {
    uint8_t b[4096];
    size_t len;
} tmsg_t;

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xFFFF);
}

static void tmsg_begin(tmsg_t *t, uint16_t type)
{
    memset(t, 0, sizeof(*t));
    put16(t->b, type);
    put32(t->b + 4, STUN_MAGIC_COOKIE);
    memcpy(t->b + 8, rfc_tid, STUN_TID_LEN);
    t->len = STUN_HEADER_LEN;
}

static void tmsg_attr(tmsg_t *t, uint16_t type, const void *v, size_t n)
{
    put16(t->b + t->len, type);
    put16(t->b + t->len + 2, (unsigned)n);
    if (n) memcpy(t->b + t->len + 4, v, n);
    t->len += 4 + ((n + 3) & ~(size_t)3);
    put16(t->b + 2, (unsigned)(t->len - STUN_HEADER_LEN));
}

static void tmsg_str(tmsg_t *t, uint16_t type, const char *s) { tmsg_attr(t, type, s, strlen(s)); }

static void tmsg_u32(tmsg_t *t, uint16_t type, uint32_t v)
{
    uint8_t b[4];
    put32(b, v);
    tmsg_attr(t, type, b, 4);
}

static void tmsg_hmac(tmsg_t *t, uint16_t type, const EVP_MD *md, size_t maclen, const char *key)
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    put16(t->b + 2, (unsigned)(t->len + 4 + maclen - STUN_HEADER_LEN));
    HMAC(md, key, (int)strlen(key), t->b, t->len, mac, &n);
    tmsg_attr(t, type, mac, maclen);
}

static void tmsg_mi(tmsg_t *t, const char *key) { tmsg_hmac(t, STUN_ATTR_MESSAGE_INTEGRITY, EVP_sha1(), 20, key); }

static void tmsg_fp(tmsg_t *t)
{
    put16(t->b + 2, (unsigned)(t->len + 8 - STUN_HEADER_LEN));
    tmsg_u32(t, STUN_ATTR_FINGERPRINT, stun_crc32(t->b, t->len) ^ 0x5354554eu);
}

/* A well-formed ICE check to the lite agent "evtj" from "h6vY": everything a
 * browser sends, with extra attributes put before MESSAGE-INTEGRITY. */
static void tmsg_check(tmsg_t *t, const char *username, const char *key, void (*extra)(tmsg_t *))
{
    tmsg_begin(t, STUN_BINDING_REQUEST);
    if (username) tmsg_str(t, STUN_ATTR_USERNAME, username);
    tmsg_u32(t, STUN_ATTR_PRIORITY, 0x6e0001ff);
    uint8_t tb[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tmsg_attr(t, STUN_ATTR_ICE_CONTROLLING, tb, 8);
    if (extra) extra(t);
    if (key) tmsg_mi(t, key);
    tmsg_fp(t);
}

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static struct sockaddr_in6 v6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

static bool bytes_eq(stun_bytes_t b, const char *s) { return b.p && b.len == strlen(s) && memcmp(b.p, s, b.len) == 0; }

#define KEY(s) (const uint8_t *)(s), strlen(s)

/* ---- RFC 5769 ---- */

static void test_rfc5769_request(void **state)
{
    (void)state;
    stun_msg_t m;
    assert_int_equal(stun_parse(rfc_request, sizeof(rfc_request), &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.type, STUN_BINDING_REQUEST);
    assert_int_equal(stun_msg_method(m.type), STUN_METHOD_BINDING);
    assert_int_equal(stun_msg_class(m.type), STUN_CLASS_REQUEST);
    assert_int_equal(m.length, 0x58);
    assert_memory_equal(m.tid, rfc_tid, STUN_TID_LEN);
    assert_int_equal(m.attr_count, 6);
    assert_true(bytes_eq(m.software, "STUN test client"));
    assert_true(bytes_eq(m.username, "evtj:h6vY")); /* 9 bytes: the 3 padding spaces are not in it */
    assert_true(m.has_priority);
    assert_int_equal(m.priority, 0x6e0001ff);
    assert_true(m.has_ice_controlled);
    assert_false(m.has_ice_controlling);
    assert_true(m.ice_controlled == 0x932ff9b151263b36ull);
    assert_false(m.use_candidate);
    assert_int_equal(m.unknown_count, 0);
    assert_int_equal(m.integrity_off, 76);
    assert_int_equal(m.fingerprint_off, 100);

    assert_true(stun_verify_fingerprint(rfc_request, &m));
    assert_true(stun_verify_integrity(rfc_request, &m, KEY(rfc_pwd)));
    assert_false(stun_verify_integrity(rfc_request, &m, KEY("VOkJxbRl1RmTxUk/WvJxBT")));
    assert_false(stun_verify_integrity(rfc_request, &m, NULL, 0));
    assert_false(stun_verify_integrity_sha256(rfc_request, &m, KEY(rfc_pwd))); /* it has none */

    stun_bytes_t local, remote;
    assert_int_equal(stun_username_split(m.username, &local, &remote), 0);
    assert_true(bytes_eq(local, "evtj"));
    assert_true(bytes_eq(remote, "h6vY"));

    /* As the lite agent "evtj" with that password, the check passes. */
    struct sockaddr_in src = v4("192.0.2.1", 32853);
    uint8_t out[STUN_MAX_MESSAGE];
    size_t outlen = 0;
    stun_ice_info_t info;
    assert_int_equal(stun_ice_lite_answer(rfc_request, sizeof(rfc_request), (struct sockaddr *)&src, "evtj", rfc_pwd,
                                          out, sizeof(out), &outlen, &info),
                     STUN_ICE_SUCCESS);
    assert_null(info.why);
    assert_int_equal(info.error_code, 0);
    assert_true(bytes_eq(info.remote_ufrag, "h6vY"));
    assert_true(info.has_priority);
    assert_int_equal(info.priority, 0x6e0001ff);
    assert_true(info.ice_controlled);
    assert_false(info.ice_controlling);
    assert_true(info.tie_breaker == 0x932ff9b151263b36ull);
    assert_memory_equal(info.tid, rfc_tid, STUN_TID_LEN);

    /* Our answer carries the same XOR-MAPPED-ADDRESS bytes as the RFC's
     * §2.2 response to it (192.0.2.1:32853), our MI and a FINGERPRINT. */
    assert_int_equal(outlen, 20 + 12 + 24 + 8);
    assert_memory_equal(out + 20, rfc_ipv4_response + 36, 12);
    stun_msg_t r;
    assert_int_equal(stun_parse(out, outlen, &r, NULL), STUN_PARSE_OK);
    assert_int_equal(r.type, STUN_BINDING_SUCCESS);
    assert_true(stun_verify_integrity(out, &r, KEY(rfc_pwd)));
    assert_true(stun_verify_fingerprint(out, &r));

    /* As the other side ("h6vY") it is not for us: 401. */
    assert_int_equal(stun_ice_lite_answer(rfc_request, sizeof(rfc_request), (struct sockaddr *)&src, "h6vY", rfc_pwd,
                                          out, sizeof(out), &outlen, &info),
                     STUN_ICE_ERROR);
    assert_int_equal(info.error_code, 401);
}

static void test_rfc5769_ipv4_response(void **state)
{
    (void)state;
    stun_msg_t m;
    assert_int_equal(stun_parse(rfc_ipv4_response, sizeof(rfc_ipv4_response), &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.type, STUN_BINDING_SUCCESS);
    assert_int_equal(stun_msg_class(m.type), STUN_CLASS_SUCCESS);
    assert_true(bytes_eq(m.software, "test vector"));
    assert_true(m.has_xor_mapped);
    struct sockaddr_in want = v4("192.0.2.1", 32853);
    const struct sockaddr_in *got = (const struct sockaddr_in *)&m.xor_mapped;
    assert_int_equal(got->sin_family, AF_INET);
    assert_int_equal(got->sin_port, want.sin_port);
    assert_memory_equal(&got->sin_addr, &want.sin_addr, 4);
    assert_true(stun_verify_integrity(rfc_ipv4_response, &m, KEY(rfc_pwd)));
    assert_true(stun_verify_fingerprint(rfc_ipv4_response, &m));

    /* A lite agent does not answer responses. */
    uint8_t out[STUN_MAX_MESSAGE];
    size_t outlen = 99;
    stun_ice_info_t info;
    assert_int_equal(stun_ice_lite_answer(rfc_ipv4_response, sizeof(rfc_ipv4_response), (struct sockaddr *)&want,
                                          "evtj", rfc_pwd, out, sizeof(out), &outlen, &info),
                     STUN_ICE_DROP);
    assert_int_equal(outlen, 0);
    assert_string_equal(info.why, "not a Binding request");
}

static void test_rfc5769_ipv6_response(void **state)
{
    (void)state;
    stun_msg_t m;
    assert_int_equal(stun_parse(rfc_ipv6_response, sizeof(rfc_ipv6_response), &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.type, STUN_BINDING_SUCCESS);
    assert_true(m.has_xor_mapped);
    struct sockaddr_in6 want = v6("2001:db8:1234:5678:11:2233:4455:6677", 32853);
    const struct sockaddr_in6 *got = (const struct sockaddr_in6 *)&m.xor_mapped;
    assert_int_equal(got->sin6_family, AF_INET6);
    assert_int_equal(got->sin6_port, want.sin6_port);
    assert_memory_equal(&got->sin6_addr, &want.sin6_addr, 16);
    assert_true(stun_verify_integrity(rfc_ipv6_response, &m, KEY(rfc_pwd)));
    assert_true(stun_verify_fingerprint(rfc_ipv6_response, &m));

    /* Our builder XORs an IPv6 source the same way. */
    uint8_t out[STUN_MAX_MESSAGE];
    size_t outlen;
    assert_int_equal(stun_build_binding_success(rfc_tid, (struct sockaddr *)&want, KEY(rfc_pwd), out, sizeof(out),
                                                &outlen),
                     0);
    assert_memory_equal(out + 20, rfc_ipv6_response + 36, 24);
}

static void test_crc32(void **state)
{
    (void)state;
    /* The CRC-32 check value (ISO-HDLC): "123456789" -> 0xCBF43926. */
    assert_int_equal(stun_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
    assert_int_equal(stun_crc32(NULL, 0), 0);
}

/* ---- parsing rules ---- */

static void test_parse_header(void **state)
{
    (void)state;
    stun_msg_t m;
    const char *why = NULL;
    uint8_t b[sizeof(rfc_request)];

    memcpy(b, rfc_request, sizeof(b));
    b[0] |= 0x40; /* RTP-like: top bits set */
    assert_int_equal(stun_parse(b, sizeof(b), &m, &why), STUN_PARSE_NOT_STUN);
    assert_non_null(why);

    memcpy(b, rfc_request, sizeof(b));
    b[4] = 0x22; /* no magic cookie: RFC 3489 era or not STUN */
    assert_int_equal(stun_parse(b, sizeof(b), &m, NULL), STUN_PARSE_NOT_STUN);

    memcpy(b, rfc_request, sizeof(b));
    b[3] = 0x57; /* not a multiple of 4 */
    assert_int_equal(stun_parse(b, sizeof(b), &m, NULL), STUN_PARSE_NOT_STUN);
    b[3] = 0x54; /* multiple of 4 but not the datagram's length */
    assert_int_equal(stun_parse(b, sizeof(b), &m, NULL), STUN_PARSE_NOT_STUN);
    /* Trailing bytes after the message are refused too: one message per datagram. */
    uint8_t longer[sizeof(rfc_request) + 4] = {0};
    memcpy(longer, rfc_request, sizeof(rfc_request));
    assert_int_equal(stun_parse(longer, sizeof(longer), &m, NULL), STUN_PARSE_NOT_STUN);

    /* A header alone is a message with no attributes. */
    tmsg_t t;
    tmsg_begin(&t, STUN_BINDING_REQUEST);
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.attr_count, 0);
    assert_false(stun_verify_fingerprint(t.b, &m));
    assert_false(stun_verify_integrity(t.b, &m, KEY("x")));

    /* STUN_MAX_MESSAGE: 1500 passes, 1504 does not. */
    tmsg_begin(&t, STUN_BINDING_INDICATION);
    uint8_t big[1476] = {0};
    tmsg_attr(&t, STUN_ATTR_SOFTWARE, big, 700);
    tmsg_attr(&t, 0x8123, big, 1500 - 20 - 704 - 4);
    assert_int_equal(t.len, 1500);
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_OK);
    tmsg_attr(&t, 0x8124, NULL, 0);
    assert_int_equal(stun_parse(t.b, t.len, &m, &why), STUN_PARSE_NOT_STUN);
    assert_string_equal(why, "longer than STUN_MAX_MESSAGE");
}

static void test_parse_attributes(void **state)
{
    (void)state;
    stun_msg_t m;
    const char *why = NULL;
    tmsg_t t;

    /* An attribute whose length runs past the message. */
    tmsg_begin(&t, STUN_BINDING_REQUEST);
    tmsg_u32(&t, STUN_ATTR_PRIORITY, 1);
    put16(t.b + 22, 8);
    assert_int_equal(stun_parse(t.b, t.len, &m, &why), STUN_PARSE_MALFORMED);
    assert_string_equal(why, "attribute longer than the message");
    assert_int_equal(m.type, STUN_BINDING_REQUEST); /* header still known */
    assert_memory_equal(m.tid, rfc_tid, STUN_TID_LEN);

    /* Each recognised attribute with a wrong length. */
    static const struct {
        uint16_t type;
        size_t len;
    } bad[] = {
        {STUN_ATTR_PRIORITY, 3},
        {STUN_ATTR_PRIORITY, 8},
        {STUN_ATTR_USE_CANDIDATE, 4},
        {STUN_ATTR_ICE_CONTROLLING, 4},
        {STUN_ATTR_ICE_CONTROLLED, 12},
        {STUN_ATTR_MESSAGE_INTEGRITY, 16},
        {STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 12},
        {STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 36},
        {STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 18},
        {STUN_ATTR_FINGERPRINT, 8},
        {STUN_ATTR_XOR_MAPPED_ADDRESS, 2},
        {STUN_ATTR_XOR_MAPPED_ADDRESS, 12},
        {STUN_ATTR_ERROR_CODE, 3},
        {STUN_ATTR_UNKNOWN_ATTRIBUTES, 3},
        {STUN_ATTR_USERNAME, 513},
    };
    uint8_t zero[600] = {0};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tmsg_begin(&t, STUN_BINDING_REQUEST);
        tmsg_attr(&t, bad[i].type, zero, bad[i].len);
        assert_int_equal(stun_parse(t.b, t.len, &m, &why), STUN_PARSE_MALFORMED);
    }
    /* XOR-MAPPED-ADDRESS: family 1 with 20 bytes, family 3. */
    uint8_t xa[20] = {0, 1};
    tmsg_begin(&t, STUN_BINDING_SUCCESS);
    tmsg_attr(&t, STUN_ATTR_XOR_MAPPED_ADDRESS, xa, 20);
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_MALFORMED);
    xa[1] = 3;
    tmsg_begin(&t, STUN_BINDING_SUCCESS);
    tmsg_attr(&t, STUN_ATTR_XOR_MAPPED_ADDRESS, xa, 8);
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_MALFORMED);
    /* ERROR-CODE: class 7, number 100. */
    uint8_t ec[4] = {0, 0, 7, 0};
    tmsg_begin(&t, STUN_BINDING_ERROR);
    tmsg_attr(&t, STUN_ATTR_ERROR_CODE, ec, 4);
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_MALFORMED);
    ec[2] = 4, ec[3] = 100;
    tmsg_begin(&t, STUN_BINDING_ERROR);
    tmsg_attr(&t, STUN_ATTR_ERROR_CODE, ec, 4);
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_MALFORMED);

    /* Unknown comprehension-required types are reported, optional ones not;
     * more than STUN_MAX_UNKNOWN are counted but only that many kept. */
    tmsg_begin(&t, STUN_BINDING_REQUEST);
    tmsg_attr(&t, 0x8777, NULL, 0);
    for (uint16_t i = 0; i < STUN_MAX_UNKNOWN + 2; i++) tmsg_attr(&t, (uint16_t)(0x7000 + i), "x", 1);
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.unknown_count, STUN_MAX_UNKNOWN + 2);
    assert_int_equal(m.unknown[0], 0x7000);
    assert_int_equal(m.unknown[STUN_MAX_UNKNOWN - 1], 0x7000 + STUN_MAX_UNKNOWN - 1);

    /* Duplicates: the first counts (RFC 8489 §14). */
    tmsg_begin(&t, STUN_BINDING_REQUEST);
    tmsg_u32(&t, STUN_ATTR_PRIORITY, 7);
    tmsg_u32(&t, STUN_ATTR_PRIORITY, 9);
    tmsg_str(&t, STUN_ATTR_USERNAME, "a:b");
    tmsg_str(&t, STUN_ATTR_USERNAME, "c:d");
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.priority, 7);
    assert_true(bytes_eq(m.username, "a:b"));

    /* After MESSAGE-INTEGRITY everything but MI-SHA256 and FINGERPRINT is
     * ignored (§14.5), even unknown comprehension-required ones. */
    tmsg_begin(&t, STUN_BINDING_REQUEST);
    tmsg_mi(&t, "k");
    tmsg_u32(&t, STUN_ATTR_PRIORITY, 5);
    tmsg_attr(&t, 0x0777, NULL, 0);
    tmsg_attr(&t, STUN_ATTR_USE_CANDIDATE, zero, 4); /* even a malformed one */
    tmsg_fp(&t);
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_OK);
    assert_false(m.has_priority);
    assert_int_equal(m.unknown_count, 0);
    assert_int_equal(m.attr_count, 5);
    assert_true(stun_verify_integrity(t.b, &m, KEY("k")));
    assert_true(stun_verify_fingerprint(t.b, &m));

    /* FINGERPRINT must be last. */
    tmsg_begin(&t, STUN_BINDING_REQUEST);
    tmsg_fp(&t);
    tmsg_u32(&t, STUN_ATTR_PRIORITY, 5);
    assert_int_equal(stun_parse(t.b, t.len, &m, &why), STUN_PARSE_MALFORMED);
    assert_string_equal(why, "attribute after FINGERPRINT");

    /* STUN_MAX_ATTRS attributes pass, one more does not. */
    tmsg_begin(&t, STUN_BINDING_INDICATION);
    for (int i = 0; i < STUN_MAX_ATTRS; i++) tmsg_attr(&t, 0x8001, NULL, 0);
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_OK);
    tmsg_attr(&t, 0x8001, NULL, 0);
    assert_int_equal(stun_parse(t.b, t.len, &m, &why), STUN_PARSE_MALFORMED);
    assert_string_equal(why, "too many attributes");

    /* No buffer. (An attribute header cut short cannot happen once the
     * header passed: the length and every padded attribute are multiples
     * of 4; the parser checks it anyway.) */
    assert_int_equal(stun_parse(NULL, 20, &m, NULL), STUN_PARSE_NOT_STUN);
}

static void test_integrity_sha256(void **state)
{
    (void)state;
    /* §14.6: HMAC-SHA256, possibly truncated (here to 16 and to 32 bytes). */
    for (size_t n = 16; n <= 32; n += 16) {
        tmsg_t t;
        tmsg_begin(&t, STUN_BINDING_REQUEST);
        tmsg_str(&t, STUN_ATTR_USERNAME, "evtj:h6vY");
        tmsg_hmac(&t, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, EVP_sha256(), n, rfc_pwd);
        tmsg_fp(&t);
        stun_msg_t m;
        assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_OK);
        assert_int_equal(m.integrity256_len, n);
        assert_true(stun_verify_integrity_sha256(t.b, &m, KEY(rfc_pwd)));
        assert_false(stun_verify_integrity_sha256(t.b, &m, KEY("other")));
        assert_false(stun_verify_integrity(t.b, &m, KEY(rfc_pwd)));
        assert_true(stun_verify_fingerprint(t.b, &m));
    }
    /* Both, MI first: each verifies over its own prefix. */
    tmsg_t t;
    tmsg_begin(&t, STUN_BINDING_REQUEST);
    tmsg_mi(&t, "pw");
    tmsg_hmac(&t, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, EVP_sha256(), 32, "pw");
    tmsg_fp(&t);
    stun_msg_t m;
    assert_int_equal(stun_parse(t.b, t.len, &m, NULL), STUN_PARSE_OK);
    assert_true(stun_verify_integrity(t.b, &m, KEY("pw")));
    assert_true(stun_verify_integrity_sha256(t.b, &m, KEY("pw")));
}

static void test_username_split(void **state)
{
    (void)state;
    stun_bytes_t l, r;
    stun_bytes_t u = {(const uint8_t *)"ab:cd", 5};
    assert_int_equal(stun_username_split(u, &l, &r), 0);
    assert_true(bytes_eq(l, "ab") && bytes_eq(r, "cd"));
    u = (stun_bytes_t){(const uint8_t *)"a:b:c", 5}; /* the first colon splits */
    assert_int_equal(stun_username_split(u, &l, &r), 0);
    assert_true(bytes_eq(l, "a") && bytes_eq(r, "b:c"));
    const char *bad[] = {"abcd", ":cd", "ab:", ":", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        u = (stun_bytes_t){(const uint8_t *)bad[i], strlen(bad[i])};
        assert_int_equal(stun_username_split(u, &l, &r), -1);
    }
    assert_int_equal(stun_username_split((stun_bytes_t){NULL, 0}, &l, &r), -1);
}

static void test_method_class(void **state)
{
    (void)state;
    assert_int_equal(stun_msg_class(STUN_BINDING_REQUEST), STUN_CLASS_REQUEST);
    assert_int_equal(stun_msg_class(STUN_BINDING_INDICATION), STUN_CLASS_INDICATION);
    assert_int_equal(stun_msg_class(STUN_BINDING_SUCCESS), STUN_CLASS_SUCCESS);
    assert_int_equal(stun_msg_class(STUN_BINDING_ERROR), STUN_CLASS_ERROR);
    assert_int_equal(stun_msg_method(STUN_BINDING_ERROR), STUN_METHOD_BINDING);
    /* TURN Allocate (0x003) error response is 0x0113; a method above 0x7F
     * spans the class bits: 0x0080 request is 0x0200. */
    assert_int_equal(stun_msg_method(0x0113), 0x003);
    assert_int_equal(stun_msg_class(0x0113), STUN_CLASS_ERROR);
    assert_int_equal(stun_msg_method(0x0200), 0x080);
    assert_int_equal(stun_msg_method(0x3EEF), 0xFFF);
}

/* ---- building ---- */

static void check_success(const struct sockaddr *src, size_t addrlen)
{
    uint8_t out[STUN_MAX_MESSAGE];
    size_t outlen = 0;
    assert_int_equal(stun_build_binding_success(rfc_tid, src, KEY("ourpwd"), out, sizeof(out), &outlen), 0);
    stun_msg_t m;
    assert_int_equal(stun_parse(out, outlen, &m, NULL), STUN_PARSE_OK);
    assert_int_equal(m.type, STUN_BINDING_SUCCESS);
    assert_memory_equal(m.tid, rfc_tid, STUN_TID_LEN);
    assert_int_equal(m.attr_count, 3);
    assert_true(m.has_xor_mapped);
    assert_memory_equal(&m.xor_mapped, src, addrlen);
    assert_true(stun_verify_integrity(out, &m, KEY("ourpwd")));
    assert_false(stun_verify_integrity(out, &m, KEY("ourpwD")));
    assert_true(stun_verify_fingerprint(out, &m));
    assert_int_equal(m.fingerprint_off, outlen - 8);
    /* Every smaller buffer is refused, and nothing is claimed written. */
    for (size_t cap = 0; cap < outlen; cap++) {
        size_t n = 12345;
        assert_int_equal(stun_build_binding_success(rfc_tid, src, KEY("ourpwd"), out, cap, &n), -1);
        assert_int_equal(n, 12345);
    }
}

static void test_build_success(void **state)
{
    (void)state;
    struct sockaddr_in a = v4("203.0.113.7", 50000);
    check_success((struct sockaddr *)&a, sizeof(a));
    struct sockaddr_in6 b = v6("2001:db8::1", 9);
    check_success((struct sockaddr *)&b, sizeof(b));
    struct sockaddr unix_sa = {.sa_family = AF_UNIX};
    uint8_t out[STUN_MAX_MESSAGE];
    size_t n;
    assert_int_equal(stun_build_binding_success(rfc_tid, &unix_sa, KEY("p"), out, sizeof(out), &n), -1);
}

static void test_build_errors(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *reason;
        bool with_key;
    } cases[] = {
        {400, "Bad Request", false},
        {401, "Unauthorized", false},
        {420, "Unknown Attribute", true},
        {487, "Role Conflict", true},
        {500, "Error", false},
    };
    const uint16_t unknown[] = {0x0777, 0x0031, 0x1234}; /* odd count: padded to 4 */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t out[STUN_MAX_MESSAGE];
        size_t outlen = 0;
        const uint8_t *key = cases[i].with_key ? (const uint8_t *)"pw" : NULL;
        assert_int_equal(stun_build_binding_error(rfc_tid, cases[i].code, NULL, unknown, 3, key, key ? 2 : 0, out,
                                                  sizeof(out), &outlen),
                         0);
        stun_msg_t m;
        assert_int_equal(stun_parse(out, outlen, &m, NULL), STUN_PARSE_OK);
        assert_int_equal(m.type, STUN_BINDING_ERROR);
        assert_true(m.has_error);
        assert_int_equal(m.error_code, cases[i].code);
        assert_true(bytes_eq(m.error_reason, cases[i].reason));
        assert_true(stun_verify_fingerprint(out, &m));
        assert_int_equal(m.integrity_off != 0, cases[i].with_key);
        if (key) assert_true(stun_verify_integrity(out, &m, KEY("pw")));
        if (cases[i].code == 420) {
            /* UNKNOWN-ATTRIBUTES follows ERROR-CODE: 6 bytes, 2 of padding. */
            size_t off = 20 + 4 + 4 + strlen("Unknown Attribute") + 3;
            assert_int_equal(out[off] << 8 | out[off + 1], STUN_ATTR_UNKNOWN_ATTRIBUTES);
            assert_int_equal(out[off + 3], 6);
            static const uint8_t want[] = {0x07, 0x77, 0x00, 0x31, 0x12, 0x34};
            assert_memory_equal(out + off + 4, want, 6);
        }
        for (size_t cap = 0; cap < outlen; cap++)
            assert_int_equal(stun_build_binding_error(rfc_tid, cases[i].code, NULL, unknown, 3, key, key ? 2 : 0,
                                                      out, cap, &outlen),
                             -1);
    }
    /* A reason of our own. */
    uint8_t out[STUN_MAX_MESSAGE];
    size_t outlen;
    assert_int_equal(stun_build_binding_error(rfc_tid, 487, "Role Conflict (lite)", NULL, 0, NULL, 0, out,
                                              sizeof(out), &outlen),
                     0);
    stun_msg_t m;
    assert_int_equal(stun_parse(out, outlen, &m, NULL), 0);
    assert_true(bytes_eq(m.error_reason, "Role Conflict (lite)"));
    /* Refusals: codes outside 300..699, 420 without the list, a reason over 763 bytes. */
    assert_int_equal(stun_build_binding_error(rfc_tid, 299, NULL, NULL, 0, NULL, 0, out, sizeof(out), &outlen), -1);
    assert_int_equal(stun_build_binding_error(rfc_tid, 700, NULL, NULL, 0, NULL, 0, out, sizeof(out), &outlen), -1);
    assert_int_equal(stun_build_binding_error(rfc_tid, 420, NULL, NULL, 0, NULL, 0, out, sizeof(out), &outlen), -1);
    char longr[800];
    memset(longr, 'x', sizeof(longr) - 1);
    longr[sizeof(longr) - 1] = 0;
    assert_int_equal(stun_build_binding_error(rfc_tid, 400, longr, NULL, 0, NULL, 0, out, sizeof(out), &outlen), -1);
    longr[763] = 0;
    assert_int_equal(stun_build_binding_error(rfc_tid, 400, longr, NULL, 0, NULL, 0, out, sizeof(out), &outlen), 0);
    assert_int_equal(stun_parse(out, outlen, &m, NULL), 0);
    assert_int_equal(m.error_reason.len, 763);
}

static void test_build_request(void **state)
{
    (void)state;
    uint8_t out[STUN_MAX_MESSAGE];
    size_t outlen;
    assert_int_equal(stun_build_binding_request(rfc_tid, "evtj:h6vY", 0x6e0001ff, true, true, 0x0102030405060708ull,
                                                KEY(rfc_pwd), out, sizeof(out), &outlen),
                     0);
    stun_msg_t m;
    assert_int_equal(stun_parse(out, outlen, &m, NULL), 0);
    assert_int_equal(m.type, STUN_BINDING_REQUEST);
    assert_true(bytes_eq(m.username, "evtj:h6vY"));
    assert_true(m.use_candidate && m.has_ice_controlling && !m.has_ice_controlled);
    assert_true(m.ice_controlling == 0x0102030405060708ull);
    assert_true(stun_verify_integrity(out, &m, KEY(rfc_pwd)));
    assert_true(stun_verify_fingerprint(out, &m));
}

/* ---- the ICE-lite responder, every path ---- */

typedef struct {
    int rc;
    size_t outlen;
    stun_ice_info_t info;
    stun_msg_t resp;
    uint8_t out[STUN_MAX_MESSAGE];
} answer_t;

static void answer(answer_t *a, const uint8_t *req, size_t len)
{
    struct sockaddr_in src = v4("198.51.100.4", 61000);
    a->outlen = 777;
    a->rc = stun_ice_lite_answer(req, len, (struct sockaddr *)&src, "evtj", rfc_pwd, a->out, sizeof(a->out),
                                 &a->outlen, &a->info);
    if (a->rc == STUN_ICE_SUCCESS || a->rc == STUN_ICE_ERROR) {
        assert_int_equal(stun_parse(a->out, a->outlen, &a->resp, NULL), STUN_PARSE_OK);
        assert_memory_equal(a->resp.tid, req + 8, STUN_TID_LEN);
        assert_true(stun_verify_fingerprint(a->out, &a->resp));
    } else if (a->rc == STUN_ICE_DROP) {
        assert_int_equal(a->outlen, 0);
        assert_non_null(a->info.why);
    }
}

static void expect_error(answer_t *a, int code, bool with_mi)
{
    assert_int_equal(a->rc, STUN_ICE_ERROR);
    assert_int_equal(a->info.error_code, code);
    assert_non_null(a->info.why);
    assert_int_equal(a->resp.type, STUN_BINDING_ERROR);
    assert_int_equal(a->resp.error_code, code);
    assert_int_equal(a->resp.integrity_off != 0, with_mi);
    if (with_mi) assert_true(stun_verify_integrity(a->out, &a->resp, KEY(rfc_pwd)));
}

static void add_use_candidate(tmsg_t *t) { tmsg_attr(t, STUN_ATTR_USE_CANDIDATE, NULL, 0); }
static void add_unknown_required(tmsg_t *t) { tmsg_attr(t, 0x0777, "abc", 3); }
static void add_unknown_optional(tmsg_t *t) { tmsg_attr(t, 0x8777, "abc", 3); }
static void add_bad_priority(tmsg_t *t) { tmsg_attr(t, STUN_ATTR_PRIORITY + 0, "abc", 3); }
static void add_controlled(tmsg_t *t)
{
    uint8_t tb[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    tmsg_attr(t, STUN_ATTR_ICE_CONTROLLED, tb, 8);
}

static void test_ice_success(void **state)
{
    (void)state;
    tmsg_t t;
    answer_t a;
    tmsg_check(&t, "evtj:h6vY", rfc_pwd, add_use_candidate);
    answer(&a, t.b, t.len);
    assert_int_equal(a.rc, STUN_ICE_SUCCESS);
    assert_null(a.info.why);
    assert_true(bytes_eq(a.info.remote_ufrag, "h6vY"));
    assert_true(a.info.use_candidate);
    assert_true(a.info.ice_controlling);
    assert_true(a.info.tie_breaker == 0x0102030405060708ull);
    assert_int_equal(a.info.priority, 0x6e0001ff);
    assert_int_equal(a.resp.type, STUN_BINDING_SUCCESS);
    assert_true(stun_verify_integrity(a.out, &a.resp, KEY(rfc_pwd)));
    struct sockaddr_in src = v4("198.51.100.4", 61000);
    assert_memory_equal(&a.resp.xor_mapped, &src, sizeof(src));

    /* No USE-CANDIDATE: answered, not nominated. */
    tmsg_check(&t, "evtj:h6vY", rfc_pwd, NULL);
    answer(&a, t.b, t.len);
    assert_int_equal(a.rc, STUN_ICE_SUCCESS);
    assert_false(a.info.use_candidate);

    /* ICE-CONTROLLED from the peer while we are lite: still answered. */
    tmsg_check(&t, "evtj:h6vY", rfc_pwd, add_controlled);
    answer(&a, t.b, t.len);
    assert_int_equal(a.rc, STUN_ICE_SUCCESS);
    assert_true(a.info.ice_controlled);

    /* Unknown comprehension-optional attributes are ignored. */
    tmsg_check(&t, "evtj:h6vY", rfc_pwd, add_unknown_optional);
    answer(&a, t.b, t.len);
    assert_int_equal(a.rc, STUN_ICE_SUCCESS);

    /* No FINGERPRINT: checked only when present. */
    tmsg_begin(&t, STUN_BINDING_REQUEST);
    tmsg_str(&t, STUN_ATTR_USERNAME, "evtj:x");
    tmsg_mi(&t, rfc_pwd);
    answer(&a, t.b, t.len);
    assert_int_equal(a.rc, STUN_ICE_SUCCESS);
    assert_false(a.info.has_priority);
    assert_true(bytes_eq(a.info.remote_ufrag, "x"));

    /* IPv6 source. */
    struct sockaddr_in6 s6 = v6("2001:db8::42", 3478);
    uint8_t out[STUN_MAX_MESSAGE];
    size_t outlen;
    stun_ice_info_t info;
    tmsg_check(&t, "evtj:h6vY", rfc_pwd, NULL);
    assert_int_equal(stun_ice_lite_answer(t.b, t.len, (struct sockaddr *)&s6, "evtj", rfc_pwd, out, sizeof(out),
                                          &outlen, &info),
                     STUN_ICE_SUCCESS);
    stun_msg_t m;
    assert_int_equal(stun_parse(out, outlen, &m, NULL), 0);
    assert_memory_equal(&m.xor_mapped, &s6, sizeof(s6));
}

static void test_ice_refusals(void **state)
{
    (void)state;
    tmsg_t t;
    answer_t a;

    /* Not STUN at all. */
    static const uint8_t rtp[] = {0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0};
    answer(&a, rtp, sizeof(rtp));
    assert_int_equal(a.rc, STUN_ICE_DROP);

    /* An indication (RFC 8445 §11: keepalives) is ignored. */
    tmsg_begin(&t, STUN_BINDING_INDICATION);
    tmsg_fp(&t);
    answer(&a, t.b, t.len);
    assert_int_equal(a.rc, STUN_ICE_DROP);
    assert_string_equal(a.info.why, "not a Binding request");

    /* Another method's request. */
    tmsg_begin(&t, 0x0003);
    tmsg_fp(&t);
    answer(&a, t.b, t.len);
    assert_int_equal(a.rc, STUN_ICE_DROP);

    /* A wrong FINGERPRINT: dropped before anything else is looked at. */
    tmsg_check(&t, "evtj:h6vY", rfc_pwd, NULL);
    t.b[t.len - 1] ^= 1;
    answer(&a, t.b, t.len);
    assert_int_equal(a.rc, STUN_ICE_DROP);
    assert_string_equal(a.info.why, "bad FINGERPRINT");
    tmsg_check(&t, "nope:h6vY", NULL, NULL); /* would be 400, but the FINGERPRINT decides first */
    t.b[t.len - 1] ^= 1;
    answer(&a, t.b, t.len);
    assert_int_equal(a.rc, STUN_ICE_DROP);

    /* A malformed attribute in a request: 400. */
    tmsg_check(&t, "evtj:h6vY", rfc_pwd, add_bad_priority);
    answer(&a, t.b, t.len);
    expect_error(&a, 400, false);

    /* No MESSAGE-INTEGRITY: 400. */
    tmsg_check(&t, "evtj:h6vY", NULL, NULL);
    answer(&a, t.b, t.len);
    expect_error(&a, 400, false);

    /* No USERNAME: 400. */
    tmsg_check(&t, NULL, rfc_pwd, NULL);
    answer(&a, t.b, t.len);
    expect_error(&a, 400, false);

    /* USERNAME not ours (other ufrag, a longer one sharing our prefix, no
     * colon, empty remote part): 401. */
    const char *names[] = {"abcd:h6vY", "evtjx:h6vY", "evt:h6vY", "evtj", "evtj:", "h6vY:evtj"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        tmsg_check(&t, names[i], rfc_pwd, NULL);
        answer(&a, t.b, t.len);
        expect_error(&a, 401, false);
        assert_string_equal(a.info.why, "USERNAME is not ours");
    }

    /* Wrong password: 401. */
    tmsg_check(&t, "evtj:h6vY", "VOkJxbRl1RmTxUk/WvJxBT", NULL);
    answer(&a, t.b, t.len);
    expect_error(&a, 401, false);
    assert_string_equal(a.info.why, "MESSAGE-INTEGRITY does not match");

    /* Unknown comprehension-required attribute: 420 listing it, with MI
     * (checked after authentication, RFC 8489 §6.3). */
    tmsg_check(&t, "evtj:h6vY", rfc_pwd, add_unknown_required);
    answer(&a, t.b, t.len);
    expect_error(&a, 420, true);
    size_t off = 20 + 4 + ((4 + strlen("Unknown Attribute") + 3) & ~(size_t)3);
    assert_int_equal(a.out[off] << 8 | a.out[off + 1], STUN_ATTR_UNKNOWN_ATTRIBUTES);
    assert_int_equal(a.out[off + 3], 2);
    assert_int_equal(a.out[off + 4] << 8 | a.out[off + 5], 0x0777);
    /* ...but with a wrong password the 401 comes first. */
    tmsg_check(&t, "evtj:h6vY", "wrong", add_unknown_required);
    answer(&a, t.b, t.len);
    expect_error(&a, 401, false);

    /* Arguments: NULLs and a buffer too small for the answer. */
    tmsg_check(&t, "evtj:h6vY", rfc_pwd, NULL);
    struct sockaddr_in src = v4("198.51.100.4", 61000);
    uint8_t out[STUN_MAX_MESSAGE];
    size_t outlen;
    stun_ice_info_t info;
    assert_int_equal(stun_ice_lite_answer(t.b, t.len, (struct sockaddr *)&src, "evtj", rfc_pwd, out, 40, &outlen,
                                          &info),
                     -1);
    assert_int_equal(outlen, 0);
    assert_int_equal(stun_ice_lite_answer(NULL, 0, (struct sockaddr *)&src, "evtj", rfc_pwd, out, sizeof(out),
                                          &outlen, &info),
                     -1);
    assert_int_equal(stun_ice_lite_answer(t.b, t.len, NULL, "evtj", rfc_pwd, out, sizeof(out), &outlen, &info), -1);
    /* An address family we cannot put in XOR-MAPPED-ADDRESS. */
    struct sockaddr unix_sa = {.sa_family = AF_UNIX};
    assert_int_equal(stun_ice_lite_answer(t.b, t.len, &unix_sa, "evtj", rfc_pwd, out, sizeof(out), &outlen, &info),
                     -1);
}

/* Every prefix of a valid message is dropped (the length check). Every
 * one-bit change before FINGERPRINT is refused: FINGERPRINT or
 * MESSAGE-INTEGRITY catches it, the header checks drop it, or a changed
 * attribute length swallows the rest (then 400: no MESSAGE-INTEGRITY left).
 * A change in FINGERPRINT's value drops the packet; one in its type or
 * length makes it another attribute, after which the message is still
 * authentic: no verdict is asserted there beyond not failing. */
static void hammer(const uint8_t *msg, size_t len)
{
    answer_t a;
    stun_msg_t m;
    assert_int_equal(stun_parse(msg, len, &m, NULL), STUN_PARSE_OK);
    size_t fp = m.fingerprint_off;
    assert_true(fp > 0);
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(stun_parse(msg, n, &m, NULL), STUN_PARSE_NOT_STUN);
        answer(&a, msg, n);
        assert_int_equal(a.rc, STUN_ICE_DROP);
    }
    uint8_t b[STUN_MAX_MESSAGE];
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(b, msg, len);
            b[i] ^= (uint8_t)(1u << bit);
            answer(&a, b, len);
            assert_true(a.rc >= 0);
            if (i < fp) assert_int_not_equal(a.rc, STUN_ICE_SUCCESS);
            if (i >= fp + 4) assert_int_equal(a.rc, STUN_ICE_DROP);
            if (a.rc == STUN_ICE_ERROR) assert_int_equal(a.info.error_code, 400);
        }
    }
}

static void test_truncated_and_garbage(void **state)
{
    (void)state;
    hammer(rfc_request, sizeof(rfc_request));
    hammer(rfc_ipv4_response, sizeof(rfc_ipv4_response));
    hammer(rfc_ipv6_response, sizeof(rfc_ipv6_response));
    tmsg_t t;
    tmsg_check(&t, "evtj:h6vY", rfc_pwd, add_use_candidate);
    hammer(t.b, t.len);

    /* Pseudo-random garbage with a valid header: never crashes, never succeeds
     * (it has no valid MESSAGE-INTEGRITY). */
    uint32_t x = 12345;
    for (int round = 0; round < 2000; round++) {
        size_t len = 20 + 4 * (size_t)(round % 40);
        uint8_t b[STUN_MAX_MESSAGE];
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            b[i] = (uint8_t)(x >> 16);
        }
        put16(b, STUN_BINDING_REQUEST);
        put16(b + 2, (unsigned)(len - 20));
        put32(b + 4, STUN_MAGIC_COOKIE);
        if (len > 24 && round % 2) put16(b + 22, (unsigned)(len - 24 - (round % 3))); /* one big attribute */
        answer_t a;
        answer(&a, b, len);
        assert_true(a.rc == STUN_ICE_DROP || a.rc == STUN_ICE_ERROR);
    }
}

/* ---- RFC 7983 §7 ---- */

static void test_demux(void **state)
{
    (void)state;
    for (int b = 0; b < 256; b++) {
        media_demux_kind_t want = MEDIA_DEMUX_UNKNOWN;
        if (b <= 3) want = MEDIA_DEMUX_STUN;
        else if (b >= 16 && b <= 19) want = MEDIA_DEMUX_ZRTP;
        else if (b >= 20 && b <= 63) want = MEDIA_DEMUX_DTLS;
        else if (b >= 64 && b <= 79) want = MEDIA_DEMUX_TURN_CHANNEL;
        else if (b >= 128 && b <= 191) want = MEDIA_DEMUX_RTP;
        assert_int_equal(media_demux_kind((uint8_t)b), want);
    }
    /* The edges spelled out. */
    assert_int_equal(media_demux_kind(4), MEDIA_DEMUX_UNKNOWN);
    assert_int_equal(media_demux_kind(22), MEDIA_DEMUX_DTLS); /* handshake record */
    assert_int_equal(media_demux_kind(80), MEDIA_DEMUX_UNKNOWN);
    assert_int_equal(media_demux_kind(127), MEDIA_DEMUX_UNKNOWN);
    assert_int_equal(media_demux_kind(0x80), MEDIA_DEMUX_RTP); /* V=2 */
    assert_int_equal(media_demux_kind(192), MEDIA_DEMUX_UNKNOWN);
    assert_int_equal(media_demux_kind(rfc_request[0]), MEDIA_DEMUX_STUN);
    assert_int_equal(media_demux_kind(rfc_ipv4_response[0]), MEDIA_DEMUX_STUN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5769_request),
        cmocka_unit_test(test_rfc5769_ipv4_response),
        cmocka_unit_test(test_rfc5769_ipv6_response),
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_parse_header),
        cmocka_unit_test(test_parse_attributes),
        cmocka_unit_test(test_integrity_sha256),
        cmocka_unit_test(test_username_split),
        cmocka_unit_test(test_method_class),
        cmocka_unit_test(test_build_success),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_build_request),
        cmocka_unit_test(test_ice_success),
        cmocka_unit_test(test_ice_refusals),
        cmocka_unit_test(test_truncated_and_garbage),
        cmocka_unit_test(test_demux),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
