/* flow_token.c — RFC 5626 §5.3 flow tokens: the user part of a
 * Record-Route entry we write towards a client that is reached only over
 * its own connection (a WebSocket browser, an outbound UA behind NAT), so
 * that a request coming back in the dialog is sent over that very flow.
 *
 * A token is "ft" + hex of: a version byte, the transport, the connection
 * id (big endian), and the first 8 bytes of an HMAC-SHA256 over those 10
 * bytes with a key drawn at start-up. The key never leaves the process, so
 * nobody else can make a token that names another client's flow, and a
 * token from before a restart is refused (its connection is gone anyway).
 * See proxy_int.h for the calls. */
#include "proxy/proxy_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#define TOKEN_VERSION 1
#define TOKEN_BODY 10 /* version, transport, conn_id */
#define TOKEN_MAC 8

int proxy_flow_key_init(struct proxy_flow_key *k)
{
    return RAND_bytes(k->k, sizeof(k->k)) == 1 ? 0 : -1;
}

static void token_mac(const struct proxy_flow_key *k, const unsigned char *body, unsigned char *mac)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), k->k, (int)sizeof(k->k), body, TOKEN_BODY, md, &len) || len < TOKEN_MAC)
        memset(md, 0, TOKEN_MAC); /* cannot happen with SHA-256; a zero MAC still never verifies a forgery */
    memcpy(mac, md, TOKEN_MAC);
}

void proxy_flow_token_make(const struct proxy_flow_key *k, enum sip_transport proto, uint64_t conn_id, char *out,
                           size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[TOKEN_BODY + TOKEN_MAC];
    raw[0] = TOKEN_VERSION;
    raw[1] = (unsigned char)proto;
    for (int i = 0; i < 8; i++) raw[2 + i] = (unsigned char)(conn_id >> (56 - 8 * i));
    token_mac(k, raw, raw + TOKEN_BODY);
    if (cap < PROXY_FLOW_TOKEN_LEN + 1) {
        if (cap) out[0] = '\0';
        return;
    }
    out[0] = 'f';
    out[1] = 't';
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 + 2 * i] = hex[raw[i] >> 4];
        out[3 + 2 * i] = hex[raw[i] & 15];
    }
    out[PROXY_FLOW_TOKEN_LEN] = '\0';
}

static int hexdigit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int proxy_flow_token_parse(const struct proxy_flow_key *k, str_t user, enum sip_transport *proto, uint64_t *conn_id)
{
    if (user.len != PROXY_FLOW_TOKEN_LEN || user.s[0] != 'f' || user.s[1] != 't') return -1;
    unsigned char raw[TOKEN_BODY + TOKEN_MAC];
    for (size_t i = 0; i < sizeof(raw); i++) {
        int hi = hexdigit(user.s[2 + 2 * i]), lo = hexdigit(user.s[3 + 2 * i]);
        if (hi < 0 || lo < 0) return -1;
        raw[i] = (unsigned char)(hi << 4 | lo);
    }
    unsigned char mac[TOKEN_MAC];
    token_mac(k, raw, mac);
    if (CRYPTO_memcmp(mac, raw + TOKEN_BODY, TOKEN_MAC) != 0) return -1;
    if (raw[0] != TOKEN_VERSION || raw[1] >= SIP_TRANSPORT_COUNT || raw[1] == SIP_TRANSPORT_UDP) return -1;
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) id = id << 8 | raw[2 + i];
    if (!id) return -1;
    *proto = (enum sip_transport)raw[1];
    *conn_id = id;
    return 0;
}
