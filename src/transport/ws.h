/* ws.h — the WebSocket protocol (RFC 6455) as SIP over WebSocket needs it
 * (RFC 7118), server side: the opening handshake and the frame format. Pure
 * functions on buffers, no I/O, no allocation: the connection code in tcp.c
 * owns the bytes and the state, so these can be unit-tested and fuzzed alone.
 *
 * Handshake (RFC 6455 §4.2): an HTTP/1.1 GET with Upgrade: websocket,
 * Connection: Upgrade, Sec-WebSocket-Version: 13, a 16-byte base64
 * Sec-WebSocket-Key, and Sec-WebSocket-Protocol listing "sip" (RFC 7118 §4.1:
 * a server refuses a handshake without it). When an Origin allow-list is
 * configured the request's Origin must be on it (browsers always send one;
 * other clients need not, and are allowed when allow_no_origin).
 *
 * Frames (RFC 6455 §5): client frames must be masked, control frames are at
 * most 125 bytes and not fragmented, reserved bits and opcodes are errors. */
#ifndef CASCADE_TRANSPORT_WS_H
#define CASCADE_TRANSPORT_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_MAX_HEAD 8192 /* the handshake request head must fit in this */

struct ws_handshake_config {
    const char *const *origins; /* allowed Origin values ("https://host:port"), exact, case-insensitive */
    size_t n_origins;           /* 0: any Origin */
    bool allow_no_origin;       /* a request without Origin (not a browser) is allowed; this holds
                                 * with or without a list (false: only browsers get in) */
};

enum ws_handshake_result {
    WS_HANDSHAKE_INCOMPLETE = 0, /* no full head yet (and under WS_MAX_HEAD) */
    WS_HANDSHAKE_ACCEPTED = 1,   /* out holds the 101 answer */
    WS_HANDSHAKE_REFUSED = 2,    /* out holds a 4xx answer (close after sending it); *why says why */
};

/* Reads the opening handshake from buf[0..len). ACCEPTED/REFUSED write the
 * answer into out (outcap >= 512 always suffices) with its length in
 * *outlen, and the head's length (bytes to consume) in *consumed. REFUSED
 * answers: 400 (not a WebSocket upgrade, a bad key, no "sip" subprotocol;
 * a wrong version also gets Sec-WebSocket-Version: 13), 403 (Origin not
 * allowed, or none and !allow_no_origin), 431 (a head over WS_MAX_HEAD;
 * *consumed is then len), 500 (SHA-1 unavailable in the OpenSSL providers).
 * A 400 is also what malformed heads get: not "GET target HTTP/1.1", a line
 * not ending in CRLF, obsolete line folding, no Host, a repeated key,
 * version or Origin. Refusals carry Connection: close and Content-Length: 0.
 * The 101 carries Sec-WebSocket-Accept and Sec-WebSocket-Protocol: sip
 * ("sip" is matched exactly in the offered list: the browser compares our
 * echo byte for byte). Bytes after the head are not consumed (a client may
 * send its first frame right behind it). When outcap is too small for the
 * answer, *outlen is 0. why may be NULL. */
enum ws_handshake_result ws_handshake(const char *buf, size_t len, const struct ws_handshake_config *cfg, char *out,
                                      size_t outcap, size_t *outlen, size_t *consumed, const char **why);

enum ws_opcode {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

struct ws_frame {
    enum ws_opcode opcode;
    bool fin;
    uint8_t *payload; /* inside the buffer given to ws_frame_decode, unmasked in place */
    size_t len;
};

/* Decodes one frame from buf[0..len) (a client's: it must be masked) and
 * unmasks its payload in place. Returns the frame's total length (> 0), 0
 * when the buffer holds only part of it, or -1 on a protocol error (*why:
 * "unmasked frame", "reserved bits set", "unknown opcode", "fragmented
 * control frame", "control frame over 125 bytes", "bad frame length" (a
 * 64-bit length with its top bit set)), or -2 when the payload is over
 * max_payload (*why "frame over the size limit": close 1009). Errors are
 * returned as soon as the bytes showing them are in (before the payload
 * arrives), so a bad frame is never waited for. Lengths need not use the
 * shortest form (RFC 6455 does not require it). Fragment sequencing
 * (continuation without a start), UTF-8 of text and close payloads are the
 * caller's checks. why may be NULL. */
long ws_frame_decode(uint8_t *buf, size_t len, size_t max_payload, struct ws_frame *f, const char **why);

/* Writes the header of an unmasked server frame (FIN set) carrying len
 * payload bytes; hdr needs WS_MAX_HEADER bytes. Returns the header length. */
#define WS_MAX_HEADER 10
size_t ws_frame_header(uint8_t *hdr, enum ws_opcode opcode, size_t len);

/* The payload of a close frame: the status code, big-endian, then reason. */
size_t ws_close_payload(uint8_t *out, size_t cap, uint16_t code, const char *reason);

#endif
