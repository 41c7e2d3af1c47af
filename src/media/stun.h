/* stun.h — STUN (RFC 8489) as an ICE-lite server needs it (RFC 8445 §2.5,
 * §7.3), and the RFC 7983 first-byte demultiplexer of the one media port.
 *
 * Pure functions on caller buffers: nothing here allocates, reads a clock or
 * does I/O. A parsed message (stun_msg_t) points into the buffer it was
 * parsed from and is valid while that buffer is. Builders write a whole
 * message into a caller buffer and say how long it is.
 *
 * What is supported: Binding (request, success and error responses,
 * indications recognised so they can be ignored), short-term credentials
 * (the key is the ice-pwd bytes, RFC 8489 §9.1.2), MESSAGE-INTEGRITY
 * (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256 (recognised and verifiable, never
 * sent: browsers use SHA-1 for ICE), FINGERPRINT, and the ICE attributes.
 * Not supported: long-term credentials (REALM/NONCE), TURN, other methods. */
#ifndef CASCADE_MEDIA_STUN_H
#define CASCADE_MEDIA_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define STUN_HEADER_LEN 20
#define STUN_MAGIC_COOKIE 0x2112A442u
#define STUN_TID_LEN 12
/* Messages longer than this are refused. STUN for ICE travels in single UDP
 * datagrams (or RFC 4571 frames of ICE-TCP) on paths with a 1500-byte MTU;
 * a browser's Binding request is ~100 bytes, and RFC 8489 §6.1 asks senders
 * to stay under the path MTU. The cap bounds the work one packet can cause
 * (one HMAC and one CRC over at most 1500 bytes), lets integrity checks use
 * a stack copy, and keeps every offset well inside 16 bits. */
#define STUN_MAX_MESSAGE 1500
/* Attributes per message: a Binding request has ~7; a message with more is
 * refused rather than walked (it is either broken or a cost attack). */
#define STUN_MAX_ATTRS 32
/* Unknown comprehension-required types remembered for a 420 answer. */
#define STUN_MAX_UNKNOWN 8
/* RFC 8489 §14.3: USERNAME is less than 513 bytes. */
#define STUN_MAX_USERNAME 512
/* RFC 8489 §14.8: the reason phrase is at most 763 bytes. */
#define STUN_MAX_REASON 763
#define STUN_HMAC_SHA1_LEN 20

/* Message types (RFC 8489 §5, §18.2): method Binding (0x001) with its classes. */
#define STUN_BINDING_REQUEST 0x0001
#define STUN_BINDING_INDICATION 0x0011
#define STUN_BINDING_SUCCESS 0x0101
#define STUN_BINDING_ERROR 0x0111
#define STUN_METHOD_BINDING 0x001

/* Classes, as returned by stun_msg_class(). */
enum { STUN_CLASS_REQUEST = 0, STUN_CLASS_INDICATION = 1, STUN_CLASS_SUCCESS = 2, STUN_CLASS_ERROR = 3 };

/* Attribute types (RFC 8489 §18.3, RFC 8445 §16.1). Below 0x8000 an
 * attribute is comprehension-required (§14). */
#define STUN_ATTR_USERNAME 0x0006
#define STUN_ATTR_MESSAGE_INTEGRITY 0x0008
#define STUN_ATTR_ERROR_CODE 0x0009
#define STUN_ATTR_UNKNOWN_ATTRIBUTES 0x000A
#define STUN_ATTR_MESSAGE_INTEGRITY_SHA256 0x001C
#define STUN_ATTR_XOR_MAPPED_ADDRESS 0x0020
#define STUN_ATTR_PRIORITY 0x0024
#define STUN_ATTR_USE_CANDIDATE 0x0025
#define STUN_ATTR_SOFTWARE 0x8022
#define STUN_ATTR_FINGERPRINT 0x8028
#define STUN_ATTR_ICE_CONTROLLED 0x8029
#define STUN_ATTR_ICE_CONTROLLING 0x802A

/* A slice of the parsed buffer. */
typedef struct {
    const uint8_t *p;
    size_t len;
} stun_bytes_t;

typedef struct {
    uint16_t type;                 /* method and class bits together, e.g. STUN_BINDING_REQUEST */
    uint16_t length;               /* the header's length field: bytes after the header */
    uint8_t tid[STUN_TID_LEN];     /* transaction id */
    unsigned attr_count;           /* attributes walked, including ignored ones */

    stun_bytes_t username;         /* .p NULL when absent */
    stun_bytes_t software;
    /* Offsets of the attribute headers in the buffer, 0 when absent (the
     * header occupies offset 0, so no attribute can sit there). */
    size_t integrity_off;          /* MESSAGE-INTEGRITY */
    size_t integrity256_off;       /* MESSAGE-INTEGRITY-SHA256 */
    size_t integrity256_len;       /* its value length: 16..32, a multiple of 4 */
    size_t fingerprint_off;        /* FINGERPRINT, always the last attribute */

    bool has_xor_mapped;
    struct sockaddr_storage xor_mapped; /* AF_INET or AF_INET6, already un-XORed */
    bool has_priority;
    uint32_t priority;
    bool use_candidate;
    bool has_ice_controlling, has_ice_controlled;
    uint64_t ice_controlling, ice_controlled; /* their tie-breakers */
    bool has_error;
    uint16_t error_code;           /* 300..699 */
    stun_bytes_t error_reason;

    /* Comprehension-required types not understood (before MESSAGE-INTEGRITY;
     * after it everything but MI-SHA256 and FINGERPRINT is ignored, §14.5).
     * unknown_count may exceed STUN_MAX_UNKNOWN; only that many are kept. */
    unsigned unknown_count;
    uint16_t unknown[STUN_MAX_UNKNOWN];
} stun_msg_t;

/* Return values of stun_parse. */
#define STUN_PARSE_OK 0
#define STUN_PARSE_NOT_STUN (-1)  /* header wrong: not STUN at all, drop it (RFC 8489 §6.3) */
#define STUN_PARSE_MALFORMED (-2) /* header fine, an attribute is not: type and tid are set */

/* Parses one whole message: len must be exactly 20 + the length field (one
 * datagram or one framed message). Checks (RFC 8489 §5, §6.3, §14): the two
 * top bits zero, the magic cookie, the length a multiple of 4 and matching,
 * len <= STUN_MAX_MESSAGE; every attribute's length inside the message and
 * padded to 4; at most STUN_MAX_ATTRS attributes; the value length of each
 * recognised attribute as its section says; FINGERPRINT last. The first of
 * duplicated attributes counts. why (may be NULL) gets a static phrase on
 * failure. */
int stun_parse(const uint8_t *buf, size_t len, stun_msg_t *m, const char **why);

/* Method (12 bits) and class (STUN_CLASS_*) of a message type (§5). */
uint16_t stun_msg_method(uint16_t type);
int stun_msg_class(uint16_t type);

/* FINGERPRINT (§14.7): CRC-32 of the message up to the attribute, XOR
 * 0x5354554e. True only when present and correct. buf is the buffer m was
 * parsed from. */
bool stun_verify_fingerprint(const uint8_t *buf, const stun_msg_t *m);
/* MESSAGE-INTEGRITY (§14.5): HMAC-SHA1 over the message up to the
 * attribute, with the length field set as if the message ended after it.
 * For short-term credentials the key is the password bytes (§9.1.2). True
 * only when present and correct (compared in constant time). */
bool stun_verify_integrity(const uint8_t *buf, const stun_msg_t *m, const uint8_t *key, size_t keylen);
/* MESSAGE-INTEGRITY-SHA256 (§14.6): the same with HMAC-SHA256, truncated to
 * the attribute's length. */
bool stun_verify_integrity_sha256(const uint8_t *buf, const stun_msg_t *m, const uint8_t *key, size_t keylen);

/* Splits an ICE USERNAME "localUfrag:remoteUfrag" (RFC 8445 §7.2.2) at its
 * first colon; "local" is the ufrag of the agent receiving the request. -1
 * when there is no colon or either side is empty. */
int stun_username_split(stun_bytes_t username, stun_bytes_t *local, stun_bytes_t *remote);

/* The raw CRC-32 (ISO-HDLC, as zlib's crc32) used by FINGERPRINT. */
uint32_t stun_crc32(const uint8_t *data, size_t len);

/* ---- building ---- */

/* Builders return 0 and set *outlen, or -1 when the arguments are wrong
 * (address family, error code, reason too long) or cap is too small;
 * STUN_MAX_MESSAGE always suffices. FINGERPRINT is always added (ICE
 * requires it, RFC 8445 §7.2.2). */

/* A Binding success response: XOR-MAPPED-ADDRESS of src (the request's
 * source, AF_INET or AF_INET6), MESSAGE-INTEGRITY with key (our ice-pwd),
 * FINGERPRINT. */
int stun_build_binding_success(const uint8_t tid[STUN_TID_LEN], const struct sockaddr *src, const uint8_t *key,
                               size_t keylen, uint8_t *out, size_t cap, size_t *outlen);

/* A Binding error response with ERROR-CODE code (300..699) and reason (NULL:
 * the RFC's phrase for 400, 401, 420, 487, else "Error"). For 420, unknown
 * lists the types for UNKNOWN-ATTRIBUTES (n_unknown > 0 required). key NULL:
 * no MESSAGE-INTEGRITY, as for 400 and 401 where the request could not be
 * authenticated (RFC 8489 §9.1.3); pass it for 420 and 487, answered after
 * the request was authenticated. */
int stun_build_binding_error(const uint8_t tid[STUN_TID_LEN], int code, const char *reason, const uint16_t *unknown,
                             size_t n_unknown, const uint8_t *key, size_t keylen, uint8_t *out, size_t cap,
                             size_t *outlen);

/* A Binding request as a full agent would send it (for tests and for a
 * future controlling side): USERNAME, PRIORITY, optional USE-CANDIDATE, the
 * role attribute (controlling or controlled with tie_breaker),
 * MESSAGE-INTEGRITY with key, FINGERPRINT. */
int stun_build_binding_request(const uint8_t tid[STUN_TID_LEN], const char *username, uint32_t priority,
                               bool use_candidate, bool controlling, uint64_t tie_breaker, const uint8_t *key,
                               size_t keylen, uint8_t *out, size_t cap, size_t *outlen);

/* ---- the ICE-lite responder ---- */

typedef enum {
    /* Send nothing: *outlen is 0. Not STUN, not a Binding request (indications
     * and responses included), or a FINGERPRINT that does not match (RFC 8489
     * §7: the packet is not taken as STUN). info.why says which. */
    STUN_ICE_DROP = 0,
    /* out holds a success response; the check passed: info says which pair
     * to nominate (use_candidate) and the caller refreshes consent (RFC 7675). */
    STUN_ICE_SUCCESS = 1,
    /* out holds an error response with info.error_code; the check failed. */
    STUN_ICE_ERROR = 2,
} stun_ice_verdict_t;

typedef struct {
    int error_code;                /* 400, 401 or 420 with STUN_ICE_ERROR, else 0 */
    const char *why;               /* static phrase for the log; NULL on success */
    uint8_t tid[STUN_TID_LEN];
    stun_bytes_t remote_ufrag;     /* from USERNAME, points into the request */
    bool has_priority;
    uint32_t priority;             /* PRIORITY: of the peer-reflexive candidate (RFC 8445 §7.3.1.3) */
    bool use_candidate;            /* the controlling agent nominates this pair */
    bool ice_controlling, ice_controlled;
    uint64_t tie_breaker;          /* of whichever role attribute was present */
} stun_ice_info_t;

/* Answers one packet received on the ICE-lite port from src (RFC 8445 §7.3,
 * RFC 8489 §6.3, §9.1.3), in this order:
 *   not STUN / not a Binding request / bad FINGERPRINT  -> DROP
 *   an attribute malformed                                -> 400 (DROP when
 *     the message ends in a FINGERPRINT attribute that does not match)
 *   no USERNAME or no MESSAGE-INTEGRITY                    -> 400
 *   USERNAME not "local_ufrag:<something>"                 -> 401
 *   MESSAGE-INTEGRITY wrong for local_pwd                  -> 401
 *   unknown comprehension-required attributes             -> 420 (with MI)
 *   otherwise                                              -> SUCCESS
 * A lite agent is always controlled (RFC 8445 §6.1.1), so ICE-CONTROLLING
 * is what a browser sends; ICE-CONTROLLED from the peer (both sides think
 * they are controlled, as when the peer is lite too) is still answered: a
 * lite agent never changes role, and the full side resolves the conflict.
 * Returns the verdict, or -1 when an argument is NULL or cap is too small
 * for the response (a cap of STUN_MAX_MESSAGE always suffices). */
int stun_ice_lite_answer(const uint8_t *req, size_t len, const struct sockaddr *src, const char *local_ufrag,
                         const char *local_pwd, uint8_t *out, size_t cap, size_t *outlen, stun_ice_info_t *info);

/* ---- RFC 7983 §7: what the first byte of a packet on the media port is ---- */

typedef enum {
    MEDIA_DEMUX_UNKNOWN = 0,
    MEDIA_DEMUX_STUN,         /* 0..3 */
    MEDIA_DEMUX_ZRTP,         /* 16..19 */
    MEDIA_DEMUX_DTLS,         /* 20..63 */
    MEDIA_DEMUX_TURN_CHANNEL, /* 64..79 */
    MEDIA_DEMUX_RTP,          /* 128..191: RTP or RTCP */
} media_demux_kind_t;

media_demux_kind_t media_demux_kind(uint8_t first_byte);

#endif
