/* ws.c — the WebSocket opening handshake and frame codec (RFC 6455), server
 * side, for SIP over WebSocket (RFC 7118). See ws.h for the contract.
 *
 * The handshake parser reads the request head as slices of the caller's
 * buffer (nothing copied, nothing allocated), remembers the few headers a
 * WebSocket upgrade needs, then checks them in the order of RFC 6455 §4.2.1:
 * the upgrade itself, the version, the key, the Origin, the subprotocol. The
 * first failure decides the answer. */
#include "transport/ws.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/str.h"

/* RFC 6455 §1.3: appended to the key before hashing. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24 /* base64 of 16 bytes: 22 characters and "==" */

/* What the handshake keeps of the request head. Upgrade, Connection and
 * Sec-WebSocket-Protocol are lists that may be split over several lines
 * (RFC 9110 §5.3), so each line is checked as it comes and a flag kept. */
struct ws_head {
    bool host, upgrade_ws, connection_upgrade, proto_sip;
    int n_key, n_version, n_origin;
    str_t key, version, origin;
};

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const char *find_head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') return buf + i;
    return NULL;
}

static bool is_tchar(char c)
{
    /* RFC 9110 §5.6.2 token characters */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Does the comma-separated list hold the token? case_insensitive for the
 * HTTP tokens (Upgrade, Connection); subprotocol names are matched exactly,
 * since the browser checks our echo of the name byte for byte. */
static bool list_has(str_t list, const char *token, bool case_insensitive)
{
    size_t i = 0;
    while (i <= list.len) {
        size_t j = i;
        while (j < list.len && list.s[j] != ',') j++;
        str_t item = str_trim(str_make(list.s + i, j - i));
        if (case_insensitive ? str_ieq_cstr(item, token) : str_eq_cstr(item, token)) return true;
        i = j + 1;
    }
    return false;
}

/* Reads one header line (without its CRLF) into h. Returns false on a line
 * that is not "name: value": obsolete folding (RFC 9112 §5.2: a server may
 * refuse it with 400, and we do, as nothing legitimate sends it), no colon,
 * a name with non-token bytes, or a bare CR/LF or NUL in it. */
static bool head_line(str_t line, struct ws_head *h)
{
    if (line.len == 0 || line.s[0] == ' ' || line.s[0] == '\t') return false;
    size_t colon = 0;
    while (colon < line.len && line.s[colon] != ':') {
        if (!is_tchar(line.s[colon])) return false;
        colon++;
    }
    if (colon == 0 || colon == line.len) return false;
    for (size_t i = colon + 1; i < line.len; i++)
        if (line.s[i] == '\r' || line.s[i] == '\n' || line.s[i] == '\0') return false;
    str_t name = str_make(line.s, colon);
    str_t value = str_trim(str_make(line.s + colon + 1, line.len - colon - 1));
    if (str_ieq_cstr(name, "Host")) {
        h->host = true;
    } else if (str_ieq_cstr(name, "Upgrade")) {
        h->upgrade_ws |= list_has(value, "websocket", true);
    } else if (str_ieq_cstr(name, "Connection")) {
        h->connection_upgrade |= list_has(value, "upgrade", true);
    } else if (str_ieq_cstr(name, "Sec-WebSocket-Protocol")) {
        h->proto_sip |= list_has(value, "sip", false);
    } else if (str_ieq_cstr(name, "Sec-WebSocket-Key")) {
        h->key = value;
        h->n_key++;
    } else if (str_ieq_cstr(name, "Sec-WebSocket-Version")) {
        h->version = value;
        h->n_version++;
    } else if (str_ieq_cstr(name, "Origin")) {
        h->origin = value;
        h->n_origin++;
    }
    return true;
}

/* RFC 6455 §4.1: "GET request-target HTTP/1.1". */
static bool request_line_ok(str_t line)
{
    if (line.len < 14 || memcmp(line.s, "GET ", 4) != 0) return false;
    if (memcmp(line.s + line.len - 9, " HTTP/1.1", 9) != 0) return false;
    str_t target = str_make(line.s + 4, line.len - 13);
    if (target.len == 0) return false;
    for (size_t i = 0; i < target.len; i++)
        if ((unsigned char)target.s[i] <= ' ' || target.s[i] == 0x7f) return false;
    return true;
}

/* RFC 6455 §4.2.1 item 5: the key is base64 of 16 bytes. */
static bool key_ok(str_t key)
{
    if (key.len != WS_KEY_LEN || key.s[22] != '=' || key.s[23] != '=') return false;
    for (size_t i = 0; i < 22; i++)
        if (key.s[i] == '\0' || strchr(b64_alphabet, key.s[i]) == NULL) return false;
    return true;
}

static bool origin_ok(const struct ws_head *h, const struct ws_handshake_config *cfg)
{
    if (h->n_origin == 0) return cfg && cfg->allow_no_origin;
    if (!cfg || cfg->n_origins == 0) return true;
    for (size_t i = 0; i < cfg->n_origins; i++)
        if (cfg->origins[i] && str_ieq_cstr(h->origin, cfg->origins[i])) return true;
    return false;
}

static void b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Sec-WebSocket-Accept (RFC 6455 §4.2.2 item 5.4): base64(SHA-1(key GUID)),
 * 28 characters. Returns false when SHA-1 is not available (a provider
 * configuration without it). */
static bool accept_value(str_t key, char out[29])
{
    char in[WS_KEY_LEN + sizeof WS_GUID];
    memcpy(in, key.s, WS_KEY_LEN);
    memcpy(in + WS_KEY_LEN, WS_GUID, sizeof WS_GUID - 1);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(in, WS_KEY_LEN + sizeof WS_GUID - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return false;
    b64_encode(md, 20, out);
    return true;
}

/* Writes an answer; a buffer too small for it gives *outlen 0 (the caller
 * then only closes). */
static void put_answer(char *out, size_t outcap, size_t *outlen, const char *fmt, const char *arg)
{
    int n = snprintf(out, outcap, fmt, arg);
    *outlen = (n > 0 && (size_t)n < outcap) ? (size_t)n : 0;
}

/* The refusals' status lines (and headers that go with them). */
#define ANS_400 "400 Bad Request\r\n"
#define ANS_400_VERSION "400 Bad Request\r\nSec-WebSocket-Version: 13\r\n" /* RFC 6455 §4.4 */
#define ANS_403 "403 Forbidden\r\n"
#define ANS_431 "431 Request Header Fields Too Large\r\n"
#define ANS_500 "500 Internal Server Error\r\n"

static enum ws_handshake_result refuse(const char *status, const char *why_text, char *out, size_t outcap,
                                       size_t *outlen, const char **why)
{
    put_answer(out, outcap, outlen, "HTTP/1.1 %sConnection: close\r\nContent-Length: 0\r\n\r\n", status);
    if (why) *why = why_text;
    return WS_HANDSHAKE_REFUSED;
}

enum ws_handshake_result ws_handshake(const char *buf, size_t len, const struct ws_handshake_config *cfg, char *out,
                                      size_t outcap, size_t *outlen, size_t *consumed, const char **why)
{
    *outlen = 0;
    *consumed = 0;
    if (why) *why = NULL;
    const char *end = find_head_end(buf, len < WS_MAX_HEAD ? len : WS_MAX_HEAD);
    if (!end) {
        if (len < WS_MAX_HEAD) return WS_HANDSHAKE_INCOMPLETE;
        *consumed = len;
        return refuse(ANS_431, "handshake head over the size limit", out, outcap, outlen, why);
    }
    *consumed = (size_t)(end - buf) + 4;

    /* Lines end in CRLF; a bare CR or LF inside a line makes it malformed. */
    struct ws_head h = {0};
    const char *p = buf, *stop = end + 2;
    bool first = true;
    while (p < stop) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        if (!nl || nl == p || nl[-1] != '\r') return refuse(ANS_400, "malformed head", out, outcap, outlen, why);
        str_t line = str_make(p, (size_t)(nl - 1 - p));
        if (first) {
            if (!request_line_ok(line)) return refuse(ANS_400, "not a GET ... HTTP/1.1", out, outcap, outlen, why);
            first = false;
        } else if (!head_line(line, &h)) {
            return refuse(ANS_400, "malformed header line", out, outcap, outlen, why);
        }
        p = nl + 1;
    }

    if (!h.host) return refuse(ANS_400, "no Host", out, outcap, outlen, why);
    if (!h.upgrade_ws || !h.connection_upgrade)
        return refuse(ANS_400, "not a WebSocket upgrade", out, outcap, outlen, why);
    if (h.n_version != 1 || !str_eq_cstr(h.version, "13"))
        return refuse(ANS_400_VERSION, "unsupported Sec-WebSocket-Version", out, outcap, outlen, why);
    if (h.n_key != 1 || !key_ok(h.key)) return refuse(ANS_400, "bad Sec-WebSocket-Key", out, outcap, outlen, why);
    if (h.n_origin > 1) return refuse(ANS_400, "more than one Origin", out, outcap, outlen, why);
    if (!origin_ok(&h, cfg))
        return refuse(ANS_403, h.n_origin ? "Origin not allowed" : "no Origin", out, outcap, outlen, why);
    if (!h.proto_sip) return refuse(ANS_400, "no sip subprotocol", out, outcap, outlen, why);

    char acc[29];
    if (!accept_value(h.key, acc)) return refuse(ANS_500, "SHA-1 unavailable", out, outcap, outlen, why);
    put_answer(out, outcap, outlen,
               "HTTP/1.1 101 Switching Protocols\r\n"
               "Upgrade: websocket\r\n"
               "Connection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\n"
               "Sec-WebSocket-Protocol: sip\r\n"
               "\r\n",
               acc);
    return WS_HANDSHAKE_ACCEPTED;
}

/* ---- frames (RFC 6455 §5.2) ------------------------------------------ */

static bool opcode_known(unsigned op)
{
    return op == WS_OP_CONTINUATION || op == WS_OP_TEXT || op == WS_OP_BINARY || op == WS_OP_CLOSE ||
           op == WS_OP_PING || op == WS_OP_PONG;
}

static long frame_error(const char **why, const char *text, long rc)
{
    if (why) *why = text;
    return rc;
}

/* Errors are reported as soon as the bytes that show them are in, so a
 * peer cannot make us wait (and buffer) for a frame already known bad. */
long ws_frame_decode(uint8_t *buf, size_t len, size_t max_payload, struct ws_frame *f, const char **why)
{
    if (len < 1) return 0;
    unsigned op = buf[0] & 0x0F;
    bool fin = (buf[0] & 0x80) != 0, control = (op & 0x8) != 0;
    if (buf[0] & 0x70) return frame_error(why, "reserved bits set", -1); /* no extension negotiated (§5.2) */
    if (!opcode_known(op)) return frame_error(why, "unknown opcode", -1);
    if (control && !fin) return frame_error(why, "fragmented control frame", -1); /* §5.5 */
    if (len < 2) return 0;
    if (!(buf[1] & 0x80)) return frame_error(why, "unmasked frame", -1); /* §5.1: a client masks every frame */
    uint64_t plen = buf[1] & 0x7F;
    if (control && plen > 125) return frame_error(why, "control frame over 125 bytes", -1);
    size_t hdr = 2;
    if (plen == 126) {
        if (len < 4) return 0;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        hdr = 4;
    } else if (plen == 127) {
        if (len < 10) return 0;
        plen = 0;
        for (int i = 2; i < 10; i++) plen = plen << 8 | buf[i];
        if (plen >> 63) return frame_error(why, "bad frame length", -1); /* §5.2: the most significant bit is 0 */
        hdr = 10;
    }
    /* RFC 6455 does not ask for the shortest length form, so longer ones pass. */
    if (plen > max_payload || plen > (uint64_t)LONG_MAX - 14) return frame_error(why, "frame over the size limit", -2);
    size_t total = hdr + 4 + (size_t)plen;
    if (len < total) return 0;
    const uint8_t *mask = buf + hdr;
    uint8_t *payload = buf + hdr + 4;
    for (size_t i = 0; i < (size_t)plen; i++) payload[i] ^= mask[i & 3];
    f->opcode = (enum ws_opcode)op;
    f->fin = fin;
    f->payload = payload;
    f->len = (size_t)plen;
    return (long)total;
}

size_t ws_frame_header(uint8_t *hdr, enum ws_opcode opcode, size_t len)
{
    hdr[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        hdr[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        return 4;
    }
    hdr[1] = 127;
    uint64_t v = len;
    for (int i = 9; i >= 2; i--, v >>= 8) hdr[i] = (uint8_t)v;
    return 10;
}

/* §5.5.1: the code, then a UTF-8 reason, all within a control frame's 125
 * bytes; a reason cut short is cut at a character boundary. */
size_t ws_close_payload(uint8_t *out, size_t cap, uint16_t code, const char *reason)
{
    if (cap < 2) return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t room = (cap < 125 ? cap : 125) - 2;
    size_t n = reason ? strlen(reason) : 0;
    if (n > room) {
        n = room;
        while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80) n--;
    }
    if (n) memcpy(out + 2, reason, n);
    return 2 + n;
}
