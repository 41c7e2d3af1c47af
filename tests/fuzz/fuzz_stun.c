/* fuzz_stun.c — libFuzzer target for STUN (media/stun.h): the parser, the
 * verifiers and the ICE-lite responder on arbitrary bytes.
 *
 * Checks: every slice and offset a parse returns lies inside the input; the
 * responder's verdict agrees with the parser (never an answer to what does
 * not parse as STUN, never a success without a valid MESSAGE-INTEGRITY);
 * every answer parses back with our FINGERPRINT (and MI where due). Then
 * the input's attributes are re-signed with the right password, so the
 * paths past the integrity check are reached too, and the verdict must be
 * the one RFC 8489 §9.1.3 / RFC 8445 §7.3 predict. */
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "media/stun.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

static const char UFRAG[] = "evtj";
static const char PWD[] = "VOkJxbRl1RmTxUk/WvJxBt";

static void check_slice(stun_bytes_t b, const uint8_t *buf, size_t len)
{
    if (!b.p) return;
    CHECK(b.p >= buf && b.p + b.len <= buf + len);
}

static void check_parsed(const uint8_t *buf, size_t len, const stun_msg_t *m)
{
    CHECK(len >= STUN_HEADER_LEN && len <= STUN_MAX_MESSAGE && len == STUN_HEADER_LEN + (size_t)m->length);
    CHECK(m->attr_count <= STUN_MAX_ATTRS && m->unknown_count <= m->attr_count);
    check_slice(m->username, buf, len);
    check_slice(m->software, buf, len);
    check_slice(m->error_reason, buf, len);
    if (m->username.p) CHECK(m->username.len <= STUN_MAX_USERNAME);
    if (m->integrity_off) CHECK(m->integrity_off >= STUN_HEADER_LEN && m->integrity_off + 24 <= len);
    if (m->integrity256_off) CHECK(m->integrity256_off + 4 + m->integrity256_len <= len);
    if (m->fingerprint_off) CHECK(m->fingerprint_off == len - 8);
    if (m->has_error) CHECK(m->error_code >= 300 && m->error_code <= 699);
    if (m->has_xor_mapped)
        CHECK(m->xor_mapped.ss_family == AF_INET || m->xor_mapped.ss_family == AF_INET6);
    (void)stun_verify_fingerprint(buf, m);
    (void)stun_verify_integrity(buf, m, (const uint8_t *)PWD, strlen(PWD));
    (void)stun_verify_integrity_sha256(buf, m, (const uint8_t *)PWD, strlen(PWD));
    stun_bytes_t l, r;
    if (stun_username_split(m->username, &l, &r) == 0) CHECK(l.len > 0 && r.len > 0 && l.len + r.len + 1 == m->username.len);
}

/* Runs the responder and checks its answer against the parse; returns it. */
static int answer(const uint8_t *buf, size_t len, stun_ice_info_t *info)
{
    struct sockaddr_in6 src;
    memset(&src, 0, sizeof(src));
    src.sin6_family = AF_INET6;
    src.sin6_port = htons(len & 0xFFFF);
    if (len > 0) src.sin6_addr.s6_addr[15] = buf[0];
    uint8_t out[STUN_MAX_MESSAGE];
    size_t outlen = 1;
    int rc = stun_ice_lite_answer(buf, len, (struct sockaddr *)&src, UFRAG, PWD, out, sizeof(out), &outlen, info);
    CHECK(rc == STUN_ICE_DROP || rc == STUN_ICE_SUCCESS || rc == STUN_ICE_ERROR);
    stun_msg_t req;
    int prc = stun_parse(buf, len, &req, NULL);
    if (rc == STUN_ICE_DROP) {
        CHECK(outlen == 0 && info->why);
        return rc;
    }
    CHECK(prc != STUN_PARSE_NOT_STUN && req.type == STUN_BINDING_REQUEST);
    stun_msg_t resp;
    CHECK(stun_parse(out, outlen, &resp, NULL) == STUN_PARSE_OK);
    CHECK(memcmp(resp.tid, req.tid, STUN_TID_LEN) == 0);
    CHECK(stun_verify_fingerprint(out, &resp));
    if (rc == STUN_ICE_SUCCESS) {
        CHECK(prc == STUN_PARSE_OK && info->why == NULL);
        CHECK(stun_verify_integrity(buf, &req, (const uint8_t *)PWD, strlen(PWD)));
        CHECK(!req.fingerprint_off || stun_verify_fingerprint(buf, &req));
        CHECK(req.unknown_count == 0);
        CHECK(resp.type == STUN_BINDING_SUCCESS && resp.has_xor_mapped);
        CHECK(memcmp(&resp.xor_mapped, &src, sizeof(src)) == 0);
        CHECK(stun_verify_integrity(out, &resp, (const uint8_t *)PWD, strlen(PWD)));
        check_slice(info->remote_ufrag, buf, len);
        CHECK(info->use_candidate == req.use_candidate && info->priority == req.priority);
    } else {
        CHECK(resp.type == STUN_BINDING_ERROR && resp.has_error && resp.error_code == info->error_code);
        CHECK(info->error_code == 400 || info->error_code == 401 || info->error_code == 420);
        CHECK((resp.integrity_off != 0) == (info->error_code == 420));
        if (info->error_code == 420) {
            CHECK(prc == STUN_PARSE_OK && req.unknown_count > 0);
            CHECK(stun_verify_integrity(out, &resp, (const uint8_t *)PWD, strlen(PWD)));
        }
    }
    return rc;
}

static void put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The attributes before MESSAGE-INTEGRITY (or all, without FINGERPRINT),
 * signed with PWD and fingerprinted, as an honest peer would send them. */
static void resign(const uint8_t *buf, size_t len, const stun_msg_t *m)
{
    size_t end = m->integrity_off ? m->integrity_off : m->integrity256_off ? m->integrity256_off
                                                      : m->fingerprint_off ? m->fingerprint_off
                                                                           : len;
    if (end + 32 > STUN_MAX_MESSAGE) return;
    uint8_t b[STUN_MAX_MESSAGE];
    memcpy(b, buf, end);
    put16(b + 2, end - STUN_HEADER_LEN);
    stun_msg_t p;
    CHECK(stun_parse(b, end, &p, NULL) == STUN_PARSE_OK);
    if (p.attr_count + 2 > STUN_MAX_ATTRS) return;
    put16(b + 2, end + 24 - STUN_HEADER_LEN);
    put16(b + end, STUN_ATTR_MESSAGE_INTEGRITY);
    put16(b + end + 2, 20);
    unsigned n = 0;
    CHECK(HMAC(EVP_sha1(), PWD, (int)strlen(PWD), b, end, b + end + 4, &n) && n == 20);
    size_t fp = end + 24;
    put16(b + 2, fp + 8 - STUN_HEADER_LEN);
    put16(b + fp, STUN_ATTR_FINGERPRINT);
    put16(b + fp + 2, 4);
    uint32_t crc = stun_crc32(b, fp) ^ 0x5354554eu;
    b[fp + 4] = (uint8_t)(crc >> 24), b[fp + 5] = (uint8_t)(crc >> 16), b[fp + 6] = (uint8_t)(crc >> 8),
    b[fp + 7] = (uint8_t)crc;

    stun_ice_info_t info;
    int rc = answer(b, fp + 8, &info);
    stun_bytes_t l, r;
    int want_code = 0;
    if (!p.username.p) want_code = 400;
    else if (stun_username_split(p.username, &l, &r) != 0 || l.len != strlen(UFRAG) || memcmp(l.p, UFRAG, l.len))
        want_code = 401;
    else if (p.unknown_count) want_code = 420;
    if (want_code) {
        CHECK(rc == STUN_ICE_ERROR && info.error_code == want_code);
    } else {
        CHECK(rc == STUN_ICE_SUCCESS);
        CHECK(info.remote_ufrag.len == r.len && memcmp(info.remote_ufrag.p, r.p, r.len) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stun_msg_t m;
    const char *why = NULL;
    int rc = stun_parse(data, size, &m, &why);
    CHECK(rc == STUN_PARSE_OK || rc == STUN_PARSE_NOT_STUN || rc == STUN_PARSE_MALFORMED);
    if (rc != STUN_PARSE_OK) CHECK(why != NULL);
    if (rc == STUN_PARSE_OK) check_parsed(data, size, &m);
    if (size > 0) (void)media_demux_kind(data[0]);
    stun_ice_info_t info;
    int verdict = answer(data, size, &info);
    if (rc == STUN_PARSE_NOT_STUN) CHECK(verdict == STUN_ICE_DROP);
    if (rc == STUN_PARSE_OK && m.type == STUN_BINDING_REQUEST) resign(data, size, &m);
    return 0;
}
