/* stun.c — STUN parsing, verification, building, the ICE-lite responder and
 * the RFC 7983 demultiplexer (see stun.h). */
#include "media/stun.h"

#include <netinet/in.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define FINGERPRINT_XOR 0x5354554eu /* RFC 8489 §14.7: "STUN" */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) << 32 | rd32(p + 4); }
static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, (uint16_t)(v >> 16));
    wr16(p + 2, (uint16_t)v);
}

/* ---- CRC-32 (reflected, polynomial 0xEDB88320, init and final XOR all ones) ---- */

static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t stun_crc32(const uint8_t *data, size_t len)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) c = crc_table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ---- parsing ---- */

uint16_t stun_msg_method(uint16_t type)
{
    /* §5: the class bits C0 (0x010) and C1 (0x100) sit inside the method. */
    return (uint16_t)((type & 0x000F) | (type & 0x00E0) >> 1 | (type & 0x3E00) >> 2);
}

int stun_msg_class(uint16_t type) { return (type >> 4 & 1) | (type >> 7 & 2); }

static int fail(const char **why, const char *what, int rc)
{
    if (why) *why = what;
    return rc;
}

/* One recognised attribute's value into m. 0, or -1 when its length or
 * content is not what its section says (why set). */
static int take_attr(stun_msg_t *m, uint16_t type, const uint8_t *v, size_t vlen, size_t off, const char **why)
{
    switch (type) {
    case STUN_ATTR_USERNAME:
        if (vlen > STUN_MAX_USERNAME) return fail(why, "USERNAME too long", -1);
        if (!m->username.p) m->username = (stun_bytes_t){v, vlen};
        return 0;
    case STUN_ATTR_SOFTWARE:
        if (vlen > STUN_MAX_REASON) return fail(why, "SOFTWARE too long", -1);
        if (!m->software.p) m->software = (stun_bytes_t){v, vlen};
        return 0;
    case STUN_ATTR_MESSAGE_INTEGRITY:
        if (vlen != STUN_HMAC_SHA1_LEN) return fail(why, "MESSAGE-INTEGRITY length", -1);
        m->integrity_off = off;
        return 0;
    case STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
        if (vlen < 16 || vlen > 32 || vlen % 4) return fail(why, "MESSAGE-INTEGRITY-SHA256 length", -1);
        m->integrity256_off = off;
        m->integrity256_len = vlen;
        return 0;
    case STUN_ATTR_FINGERPRINT:
        if (vlen != 4) return fail(why, "FINGERPRINT length", -1);
        m->fingerprint_off = off;
        return 0;
    case STUN_ATTR_XOR_MAPPED_ADDRESS: {
        /* §14.2: reserved byte, family, X-Port, X-Address. */
        if (vlen < 4) return fail(why, "XOR-MAPPED-ADDRESS length", -1);
        uint16_t port = rd16(v + 2) ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16);
        uint8_t mask[16];
        wr32(mask, STUN_MAGIC_COOKIE);
        memcpy(mask + 4, m->tid, STUN_TID_LEN);
        if (m->has_xor_mapped) return 0;
        memset(&m->xor_mapped, 0, sizeof(m->xor_mapped));
        if (v[1] == 0x01 && vlen == 8) {
            struct sockaddr_in *a = (struct sockaddr_in *)&m->xor_mapped;
            a->sin_family = AF_INET;
            a->sin_port = htons(port);
            uint8_t ip[4];
            for (int i = 0; i < 4; i++) ip[i] = v[4 + i] ^ mask[i];
            memcpy(&a->sin_addr, ip, 4);
        } else if (v[1] == 0x02 && vlen == 20) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&m->xor_mapped;
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(port);
            for (int i = 0; i < 16; i++) a->sin6_addr.s6_addr[i] = v[4 + i] ^ mask[i];
        } else {
            return fail(why, "XOR-MAPPED-ADDRESS family or length", -1);
        }
        m->has_xor_mapped = true;
        return 0;
    }
    case STUN_ATTR_PRIORITY:
        if (vlen != 4) return fail(why, "PRIORITY length", -1);
        if (!m->has_priority) m->priority = rd32(v);
        m->has_priority = true;
        return 0;
    case STUN_ATTR_USE_CANDIDATE:
        if (vlen != 0) return fail(why, "USE-CANDIDATE length", -1);
        m->use_candidate = true;
        return 0;
    case STUN_ATTR_ICE_CONTROLLING:
        if (vlen != 8) return fail(why, "ICE-CONTROLLING length", -1);
        if (!m->has_ice_controlling) m->ice_controlling = rd64(v);
        m->has_ice_controlling = true;
        return 0;
    case STUN_ATTR_ICE_CONTROLLED:
        if (vlen != 8) return fail(why, "ICE-CONTROLLED length", -1);
        if (!m->has_ice_controlled) m->ice_controlled = rd64(v);
        m->has_ice_controlled = true;
        return 0;
    case STUN_ATTR_ERROR_CODE: {
        /* §14.8: 21 reserved bits, class (3 bits, 3..6), number (0..99), reason. */
        if (vlen < 4 || vlen > 4 + STUN_MAX_REASON) return fail(why, "ERROR-CODE length", -1);
        unsigned cls = v[2] & 0x07, num = v[3];
        if (cls < 3 || cls > 6 || num > 99) return fail(why, "ERROR-CODE value", -1);
        if (!m->has_error) {
            m->error_code = (uint16_t)(cls * 100 + num);
            m->error_reason = (stun_bytes_t){v + 4, vlen - 4};
        }
        m->has_error = true;
        return 0;
    }
    case STUN_ATTR_UNKNOWN_ATTRIBUTES:
        if (vlen % 2) return fail(why, "UNKNOWN-ATTRIBUTES length", -1);
        return 0;
    default:
        if (type < 0x8000) {
            if (m->unknown_count < STUN_MAX_UNKNOWN) m->unknown[m->unknown_count] = type;
            m->unknown_count++;
        }
        return 0;
    }
}

int stun_parse(const uint8_t *buf, size_t len, stun_msg_t *m, const char **why)
{
    if (!buf || !m) return fail(why, "no buffer", STUN_PARSE_NOT_STUN);
    memset(m, 0, sizeof(*m));
    if (len < STUN_HEADER_LEN) return fail(why, "shorter than a STUN header", STUN_PARSE_NOT_STUN);
    if (buf[0] & 0xC0) return fail(why, "top bits not zero", STUN_PARSE_NOT_STUN);
    if (rd32(buf + 4) != STUN_MAGIC_COOKIE) return fail(why, "no magic cookie", STUN_PARSE_NOT_STUN);
    uint16_t length = rd16(buf + 2);
    if (length % 4) return fail(why, "length not a multiple of 4", STUN_PARSE_NOT_STUN);
    if ((size_t)length + STUN_HEADER_LEN != len) return fail(why, "length field does not match", STUN_PARSE_NOT_STUN);
    if (len > STUN_MAX_MESSAGE) return fail(why, "longer than STUN_MAX_MESSAGE", STUN_PARSE_NOT_STUN);
    m->type = rd16(buf);
    m->length = length;
    memcpy(m->tid, buf + 8, STUN_TID_LEN);

    /* After MESSAGE-INTEGRITY only MI-SHA256 and FINGERPRINT count; after
     * MI-SHA256 only FINGERPRINT (§14.5, §14.6); after FINGERPRINT nothing
     * may follow (§14.7). */
    bool after_mi = false, after_mi256 = false;
    size_t off = STUN_HEADER_LEN;
    while (off < len) {
        if (m->fingerprint_off) return fail(why, "attribute after FINGERPRINT", STUN_PARSE_MALFORMED);
        if (len - off < 4) return fail(why, "truncated attribute header", STUN_PARSE_MALFORMED);
        if (++m->attr_count > STUN_MAX_ATTRS) return fail(why, "too many attributes", STUN_PARSE_MALFORMED);
        uint16_t type = rd16(buf + off), vlen = rd16(buf + off + 2);
        size_t padded = ((size_t)vlen + 3) & ~(size_t)3;
        if (padded > len - off - 4) return fail(why, "attribute longer than the message", STUN_PARSE_MALFORMED);
        /* A second MESSAGE-INTEGRITY falls under "after it" and is ignored too. */
        bool counts = after_mi256 ? type == STUN_ATTR_FINGERPRINT
                      : after_mi  ? type == STUN_ATTR_FINGERPRINT || type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256
                                  : true;
        if (counts && take_attr(m, type, buf + off + 4, vlen, off, why) != 0) return STUN_PARSE_MALFORMED;
        if (counts && type == STUN_ATTR_MESSAGE_INTEGRITY) after_mi = true;
        if (counts && type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256) after_mi = after_mi256 = true;
        off += 4 + padded;
    }
    return STUN_PARSE_OK;
}

/* ---- verification ---- */

bool stun_verify_fingerprint(const uint8_t *buf, const stun_msg_t *m)
{
    if (!buf || !m || !m->fingerprint_off) return false;
    /* FINGERPRINT is last, so the length field already covers it as sent. */
    uint32_t want = stun_crc32(buf, m->fingerprint_off) ^ FINGERPRINT_XOR;
    return rd32(buf + m->fingerprint_off + 4) == want;
}

/* HMAC over the message up to the attribute at off, with the header's length
 * field pointing just past that attribute (value length alen). */
static bool verify_hmac(const uint8_t *buf, size_t off, size_t alen, const EVP_MD *md, const uint8_t *key,
                        size_t keylen)
{
    uint8_t copy[STUN_MAX_MESSAGE];
    if (off < STUN_HEADER_LEN || off > sizeof(copy) || keylen > 0x7FFFFFFF) return false;
    memcpy(copy, buf, off);
    wr16(copy + 2, (uint16_t)(off + 4 + alen - STUN_HEADER_LEN));
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    static const uint8_t empty = 0;
    if (!HMAC(md, key ? key : &empty, (int)keylen, copy, off, mac, &maclen) || maclen < alen) return false;
    return CRYPTO_memcmp(mac, buf + off + 4, alen) == 0;
}

bool stun_verify_integrity(const uint8_t *buf, const stun_msg_t *m, const uint8_t *key, size_t keylen)
{
    if (!buf || !m || !m->integrity_off) return false;
    return verify_hmac(buf, m->integrity_off, STUN_HMAC_SHA1_LEN, EVP_sha1(), key, keylen);
}

bool stun_verify_integrity_sha256(const uint8_t *buf, const stun_msg_t *m, const uint8_t *key, size_t keylen)
{
    if (!buf || !m || !m->integrity256_off) return false;
    return verify_hmac(buf, m->integrity256_off, m->integrity256_len, EVP_sha256(), key, keylen);
}

int stun_username_split(stun_bytes_t username, stun_bytes_t *local, stun_bytes_t *remote)
{
    if (!username.p) return -1;
    const uint8_t *colon = memchr(username.p, ':', username.len);
    if (!colon || colon == username.p || colon == username.p + username.len - 1) return -1;
    if (local) *local = (stun_bytes_t){username.p, (size_t)(colon - username.p)};
    if (remote) *remote = (stun_bytes_t){colon + 1, username.len - (size_t)(colon - username.p) - 1};
    return 0;
}

/* ---- building ---- */

/* Appends attributes to a message in a caller buffer; any overflow sticks
 * and makes finish() fail, so callers check once. */
typedef struct {
    uint8_t *buf;
    size_t cap, len;
    bool overflow;
} writer_t;

static void w_header(writer_t *w, uint16_t type, const uint8_t tid[STUN_TID_LEN])
{
    if (w->cap < STUN_HEADER_LEN) {
        w->overflow = true;
        return;
    }
    wr16(w->buf, type);
    wr16(w->buf + 2, 0);
    wr32(w->buf + 4, STUN_MAGIC_COOKIE);
    memcpy(w->buf + 8, tid, STUN_TID_LEN);
    w->len = STUN_HEADER_LEN;
}

/* Reserves an attribute of vlen bytes (zero padding written) and returns
 * its value, or NULL on overflow. The header's length is kept current so
 * MESSAGE-INTEGRITY and FINGERPRINT can be computed over what is there. */
static uint8_t *w_attr(writer_t *w, uint16_t type, size_t vlen)
{
    size_t padded = (vlen + 3) & ~(size_t)3;
    if (w->overflow || w->cap - w->len < 4 + padded || w->len + 4 + padded > STUN_MAX_MESSAGE) {
        w->overflow = true;
        return NULL;
    }
    uint8_t *a = w->buf + w->len;
    wr16(a, type);
    wr16(a + 2, (uint16_t)vlen);
    memset(a + 4, 0, padded);
    w->len += 4 + padded;
    wr16(w->buf + 2, (uint16_t)(w->len - STUN_HEADER_LEN));
    return a + 4;
}

static void w_bytes(writer_t *w, uint16_t type, const void *v, size_t vlen)
{
    uint8_t *p = w_attr(w, type, vlen);
    if (p && vlen) memcpy(p, v, vlen);
}

static void w_integrity(writer_t *w, const uint8_t *key, size_t keylen)
{
    size_t off = w->len;
    uint8_t *p = w_attr(w, STUN_ATTR_MESSAGE_INTEGRITY, STUN_HMAC_SHA1_LEN);
    if (!p) return;
    unsigned maclen = 0;
    static const uint8_t empty = 0;
    /* The length field already counts this attribute, as §14.5 asks. */
    if (keylen > 0x7FFFFFFF || !HMAC(EVP_sha1(), key ? key : &empty, (int)keylen, w->buf, off, p, &maclen))
        w->overflow = true;
}

static void w_fingerprint(writer_t *w)
{
    size_t off = w->len;
    uint8_t *p = w_attr(w, STUN_ATTR_FINGERPRINT, 4);
    if (p) wr32(p, stun_crc32(w->buf, off) ^ FINGERPRINT_XOR);
}

static int w_finish(writer_t *w, size_t *outlen)
{
    if (w->overflow) return -1;
    if (outlen) *outlen = w->len;
    return 0;
}

static int xor_address(const struct sockaddr *sa, const uint8_t tid[STUN_TID_LEN], uint8_t v[20], size_t *vlen)
{
    uint8_t mask[16];
    wr32(mask, STUN_MAGIC_COOKIE);
    memcpy(mask + 4, tid, STUN_TID_LEN);
    v[0] = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        const uint8_t *ip = (const uint8_t *)&a->sin_addr;
        v[1] = 0x01;
        wr16(v + 2, ntohs(a->sin_port) ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16));
        for (int i = 0; i < 4; i++) v[4 + i] = ip[i] ^ mask[i];
        *vlen = 8;
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        v[1] = 0x02;
        wr16(v + 2, ntohs(a->sin6_port) ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16));
        for (int i = 0; i < 16; i++) v[4 + i] = a->sin6_addr.s6_addr[i] ^ mask[i];
        *vlen = 20;
        return 0;
    }
    return -1;
}

int stun_build_binding_success(const uint8_t tid[STUN_TID_LEN], const struct sockaddr *src, const uint8_t *key,
                               size_t keylen, uint8_t *out, size_t cap, size_t *outlen)
{
    uint8_t addr[20];
    size_t alen;
    if (!tid || !src || !out || xor_address(src, tid, addr, &alen) != 0) return -1;
    writer_t w = {out, cap, 0, false};
    w_header(&w, STUN_BINDING_SUCCESS, tid);
    w_bytes(&w, STUN_ATTR_XOR_MAPPED_ADDRESS, addr, alen);
    w_integrity(&w, key, keylen);
    w_fingerprint(&w);
    return w_finish(&w, outlen);
}

static const char *default_reason(int code)
{
    switch (code) { /* RFC 8489 §14.8, RFC 8445 §16.1 */
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 420: return "Unknown Attribute";
    case 487: return "Role Conflict";
    default: return "Error";
    }
}

int stun_build_binding_error(const uint8_t tid[STUN_TID_LEN], int code, const char *reason, const uint16_t *unknown,
                             size_t n_unknown, const uint8_t *key, size_t keylen, uint8_t *out, size_t cap,
                             size_t *outlen)
{
    if (!tid || !out || code < 300 || code > 699) return -1;
    if (code == 420 && (!unknown || n_unknown == 0)) return -1;
    if (!reason) reason = default_reason(code);
    size_t rlen = strlen(reason);
    if (rlen > STUN_MAX_REASON) return -1;
    writer_t w = {out, cap, 0, false};
    w_header(&w, STUN_BINDING_ERROR, tid);
    uint8_t *e = w_attr(&w, STUN_ATTR_ERROR_CODE, 4 + rlen);
    if (e) {
        e[2] = (uint8_t)(code / 100);
        e[3] = (uint8_t)(code % 100);
        memcpy(e + 4, reason, rlen);
    }
    if (code == 420) {
        uint8_t *u = w_attr(&w, STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * n_unknown);
        for (size_t i = 0; u && i < n_unknown; i++) wr16(u + 2 * i, unknown[i]);
    }
    if (key) w_integrity(&w, key, keylen);
    w_fingerprint(&w);
    return w_finish(&w, outlen);
}

int stun_build_binding_request(const uint8_t tid[STUN_TID_LEN], const char *username, uint32_t priority,
                               bool use_candidate, bool controlling, uint64_t tie_breaker, const uint8_t *key,
                               size_t keylen, uint8_t *out, size_t cap, size_t *outlen)
{
    if (!tid || !username || !out || strlen(username) > STUN_MAX_USERNAME) return -1;
    writer_t w = {out, cap, 0, false};
    w_header(&w, STUN_BINDING_REQUEST, tid);
    w_bytes(&w, STUN_ATTR_USERNAME, username, strlen(username));
    uint8_t *p = w_attr(&w, STUN_ATTR_PRIORITY, 4);
    if (p) wr32(p, priority);
    if (use_candidate) w_attr(&w, STUN_ATTR_USE_CANDIDATE, 0);
    p = w_attr(&w, controlling ? STUN_ATTR_ICE_CONTROLLING : STUN_ATTR_ICE_CONTROLLED, 8);
    if (p) {
        wr32(p, (uint32_t)(tie_breaker >> 32));
        wr32(p + 4, (uint32_t)tie_breaker);
    }
    w_integrity(&w, key, keylen);
    w_fingerprint(&w);
    return w_finish(&w, outlen);
}

/* ---- the ICE-lite responder ---- */

static int ice_drop(stun_ice_info_t *info, size_t *outlen, const char *why)
{
    info->why = why;
    *outlen = 0;
    return STUN_ICE_DROP;
}

static int ice_error(stun_ice_info_t *info, int code, const char *why, const stun_msg_t *m, const uint8_t *key,
                     size_t keylen, uint8_t *out, size_t cap, size_t *outlen)
{
    info->why = why;
    info->error_code = code;
    size_t n = 0;
    if (code == 420) n = m->unknown_count < STUN_MAX_UNKNOWN ? m->unknown_count : STUN_MAX_UNKNOWN;
    if (stun_build_binding_error(m->tid, code, NULL, m->unknown, n, key, keylen, out, cap, outlen) != 0) {
        *outlen = 0;
        return -1;
    }
    return STUN_ICE_ERROR;
}

/* For a message whose attributes do not parse: do its last 8 bytes look
 * like a FINGERPRINT attribute that does not match? */
static bool tail_fingerprint_bad(const uint8_t *buf, size_t len)
{
    if (len < STUN_HEADER_LEN + 8) return false;
    const uint8_t *a = buf + len - 8;
    if (rd16(a) != STUN_ATTR_FINGERPRINT || rd16(a + 2) != 4) return false;
    return rd32(a + 4) != (stun_crc32(buf, len - 8) ^ FINGERPRINT_XOR);
}

int stun_ice_lite_answer(const uint8_t *req, size_t len, const struct sockaddr *src, const char *local_ufrag,
                         const char *local_pwd, uint8_t *out, size_t cap, size_t *outlen, stun_ice_info_t *info)
{
    if (!req || !src || !local_ufrag || !local_pwd || !out || !outlen || !info) return -1;
    memset(info, 0, sizeof(*info));
    *outlen = 0;
    stun_msg_t m;
    const char *why = NULL;
    int rc = stun_parse(req, len, &m, &why);
    if (rc == STUN_PARSE_NOT_STUN) return ice_drop(info, outlen, why);
    memcpy(info->tid, m.tid, STUN_TID_LEN);
    /* Indications and responses get no answer (RFC 8489 §6.3.2-6.3.4); a lite
     * agent sends no requests, so no response is ours. Other methods are not
     * spoken on this port. */
    if (m.type != STUN_BINDING_REQUEST) return ice_drop(info, outlen, "not a Binding request");
    /* RFC 8489 §7: a FINGERPRINT that does not match means the packet is
     * not STUN (or was damaged), so it is not answered. A malformed message
     * may still end in one: then it decides between a 400 and silence. */
    if (rc == STUN_PARSE_MALFORMED) {
        if (tail_fingerprint_bad(req, len)) return ice_drop(info, outlen, "bad FINGERPRINT");
        return ice_error(info, 400, why, &m, NULL, 0, out, cap, outlen);
    }
    if (m.fingerprint_off && !stun_verify_fingerprint(req, &m)) return ice_drop(info, outlen, "bad FINGERPRINT");
    /* RFC 8489 §9.1.3, in its order. */
    if (!m.integrity_off || !m.username.p)
        return ice_error(info, 400, "no USERNAME or MESSAGE-INTEGRITY", &m, NULL, 0, out, cap, outlen);
    size_t ulen = strlen(local_ufrag);
    stun_bytes_t local, remote;
    if (stun_username_split(m.username, &local, &remote) != 0 || local.len != ulen ||
        memcmp(local.p, local_ufrag, ulen) != 0)
        return ice_error(info, 401, "USERNAME is not ours", &m, NULL, 0, out, cap, outlen);
    const uint8_t *key = (const uint8_t *)local_pwd;
    size_t keylen = strlen(local_pwd);
    if (!stun_verify_integrity(req, &m, key, keylen))
        return ice_error(info, 401, "MESSAGE-INTEGRITY does not match", &m, NULL, 0, out, cap, outlen);
    info->remote_ufrag = remote;
    info->has_priority = m.has_priority;
    info->priority = m.priority;
    info->use_candidate = m.use_candidate;
    info->ice_controlling = m.has_ice_controlling;
    info->ice_controlled = m.has_ice_controlled;
    info->tie_breaker = m.has_ice_controlling ? m.ice_controlling : m.ice_controlled;
    /* RFC 8489 §6.3: unknown attributes are checked once authenticated, so
     * the 420 carries MESSAGE-INTEGRITY. */
    if (m.unknown_count)
        return ice_error(info, 420, "unknown comprehension-required attribute", &m, key, keylen, out, cap, outlen);
    if (stun_build_binding_success(m.tid, src, key, keylen, out, cap, outlen) != 0) {
        *outlen = 0;
        return -1;
    }
    return STUN_ICE_SUCCESS;
}

/* ---- RFC 7983 §7 ---- */

media_demux_kind_t media_demux_kind(uint8_t b)
{
    if (b <= 3) return MEDIA_DEMUX_STUN;
    if (b >= 16 && b <= 19) return MEDIA_DEMUX_ZRTP;
    if (b >= 20 && b <= 63) return MEDIA_DEMUX_DTLS;
    if (b >= 64 && b <= 79) return MEDIA_DEMUX_TURN_CHANNEL;
    if (b >= 128 && b <= 191) return MEDIA_DEMUX_RTP;
    return MEDIA_DEMUX_UNKNOWN;
}
