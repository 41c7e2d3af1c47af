/* flow_token.c — RFC 5626 §5.3 flow tokens: the user part of a
 * Record-Route entry we write towards a client that is reached only over
 * its own connection (a WebSocket browser, an outbound UA behind NAT), so
 * that a request coming back in the dialog is sent over that very flow.
 *
 * A token is "ft" + hex of: a version byte, the transport, the connection
 * id (big endian), and the first 8 bytes of an HMAC-SHA256 over those 10
 * bytes and the key's run id (random per process), with the node's key
 * (proxy_new: [proxy] edge_secret, a key kept in the store, or drawn at
 * start-up). The key never leaves the node, so nobody else can make a
 * token that names another client's flow, and a token from before a
 * restart is refused (its connection is gone anyway).
 * See proxy_int.h for the calls. */
#include "proxy/proxy_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#define TOKEN_VERSION 1
#define TOKEN_BODY 10 /* version, transport, conn_id */
#define TOKEN_MAC 8

static int draw_run(struct proxy_flow_key *k)
{
    unsigned char r[4];
    if (RAND_bytes(r, sizeof(r)) != 1) return -1;
    k->run = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
    return 0;
}

int proxy_flow_key_init(struct proxy_flow_key *k)
{
    return RAND_bytes(k->k, sizeof(k->k)) == 1 ? draw_run(k) : -1;
}

int proxy_flow_key_set(struct proxy_flow_key *k, const unsigned char *key, size_t len)
{
    if (!len) return -1;
    unsigned int n = 0;
    static const char label[] = "cascade edge token key 1";
    if (!HMAC(EVP_sha256(), key, (int)len, (const unsigned char *)label, sizeof(label) - 1, k->k, &n) ||
        n != sizeof(k->k))
        return -1;
    return draw_run(k);
}

static void token_mac(const struct proxy_flow_key *k, const unsigned char *body, unsigned char *mac)
{
    unsigned char md[EVP_MAX_MD_SIZE], in[TOKEN_BODY + 4];
    unsigned int len = 0;
    memcpy(in, body, TOKEN_BODY);
    for (int i = 0; i < 4; i++) in[TOKEN_BODY + i] = (unsigned char)(k->run >> (24 - 8 * i));
    if (!HMAC(EVP_sha256(), k->k, (int)sizeof(k->k), in, sizeof(in), md, &len) || len < TOKEN_MAC)
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

/* ---- Path tokens (RFC 3327 + RFC 5626 §5.1): any flow, UDP included ----
 *
 * "pt" + hex of: a version byte, the transport, then for a stream
 * transport the run id of the process that made it (4 bytes) and the
 * connection id (8 bytes, big endian), for UDP the listener id (4), the
 * port (2) and the IPv4 (4) or IPv6 (16) address; then the first 8 bytes
 * of an HMAC-SHA256 over all of that, with the node's key, which outlives
 * a restart ([proxy] edge_secret or the store's). A stream token of an
 * earlier run verifies but names a connection that died with that run
 * (connection ids start again at 1): proxy_path_token_parse says so (1),
 * and the request gets 430, never another client's connection. A UDP
 * token names an address, which a restart does not change. The family
 * follows from the length. */

#define PATH_VERSION 2
#define PATH_BODY_MAX (2 + 4 + 2 + 16)
#define PATH_STREAM_BODY (2 + 4 + 8)

static void path_mac(const struct proxy_flow_key *k, const unsigned char *body, size_t len, unsigned char *mac)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), k->k, (int)sizeof(k->k), body, len, md, &mdlen) || mdlen < TOKEN_MAC)
        memset(md, 0, TOKEN_MAC);
    memcpy(mac, md, TOKEN_MAC);
}

int proxy_path_token_make(const struct proxy_flow_key *k, const struct transport_dest *flow, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[PATH_BODY_MAX + TOKEN_MAC];
    size_t n = 0;
    if (cap) out[0] = '\0';
    if ((unsigned)flow->proto >= SIP_TRANSPORT_COUNT) return -1;
    raw[n++] = PATH_VERSION;
    raw[n++] = (unsigned char)flow->proto;
    if (sip_transport_is_stream(flow->proto)) {
        if (!flow->conn_id) return -1;
        for (int i = 0; i < 4; i++) raw[n++] = (unsigned char)(k->run >> (24 - 8 * i));
        for (int i = 0; i < 8; i++) raw[n++] = (unsigned char)(flow->conn_id >> (56 - 8 * i));
    } else {
        for (int i = 0; i < 4; i++) raw[n++] = (unsigned char)(flow->listener_id >> (24 - 8 * i));
        uint16_t port = transport_addr_port(&flow->addr);
        raw[n++] = (unsigned char)(port >> 8);
        raw[n++] = (unsigned char)port;
        if (flow->addr.ss_family == AF_INET) {
            memcpy(raw + n, &((const struct sockaddr_in *)&flow->addr)->sin_addr, 4);
            n += 4;
        } else if (flow->addr.ss_family == AF_INET6) {
            memcpy(raw + n, &((const struct sockaddr_in6 *)&flow->addr)->sin6_addr, 16);
            n += 16;
        } else {
            return -1;
        }
        if (!port) return -1;
    }
    path_mac(k, raw, n, raw + n);
    n += TOKEN_MAC;
    if (cap < 2 + 2 * n + 1) return -1;
    out[0] = 'p';
    out[1] = 't';
    for (size_t i = 0; i < n; i++) {
        out[2 + 2 * i] = hex[raw[i] >> 4];
        out[3 + 2 * i] = hex[raw[i] & 15];
    }
    out[2 + 2 * n] = '\0';
    return (int)(2 + 2 * n);
}

int proxy_path_token_parse(const struct proxy_flow_key *k, str_t user, struct transport_dest *flow)
{
    if (user.len < 2 + 2 * (2 + 4 + 2 + 4 + TOKEN_MAC) || user.len > 2 + 2 * (PATH_BODY_MAX + TOKEN_MAC) || user.len % 2 ||
        user.s[0] != 'p' || user.s[1] != 't')
        return -1;
    unsigned char raw[PATH_BODY_MAX + TOKEN_MAC];
    size_t n = (user.len - 2) / 2;
    for (size_t i = 0; i < n; i++) {
        int hi = hexdigit(user.s[2 + 2 * i]), lo = hexdigit(user.s[3 + 2 * i]);
        if (hi < 0 || lo < 0) return -1;
        raw[i] = (unsigned char)(hi << 4 | lo);
    }
    size_t body = n - TOKEN_MAC;
    unsigned char mac[TOKEN_MAC];
    path_mac(k, raw, body, mac);
    if (CRYPTO_memcmp(mac, raw + body, TOKEN_MAC) != 0) return -1;
    if (raw[0] != PATH_VERSION || raw[1] >= SIP_TRANSPORT_COUNT) return -1;
    struct transport_dest d;
    memset(&d, 0, sizeof(d));
    d.proto = (enum sip_transport)raw[1];
    bool stale = false;
    if (sip_transport_is_stream(d.proto)) {
        if (body != PATH_STREAM_BODY) return -1;
        uint32_t run = 0;
        for (int i = 0; i < 4; i++) run = run << 8 | raw[2 + i];
        for (int i = 0; i < 8; i++) d.conn_id = d.conn_id << 8 | raw[6 + i];
        if (!d.conn_id) return -1;
        stale = run != k->run;
    } else {
        if (body != 2 + 4 + 2 + 4 && body != 2 + 4 + 2 + 16) return -1;
        for (int i = 0; i < 4; i++) d.listener_id = d.listener_id << 8 | raw[2 + i];
        uint16_t port = (uint16_t)(raw[6] << 8 | raw[7]);
        if (!port) return -1;
        if (body == 2 + 4 + 2 + 4) {
            struct sockaddr_in *a = (struct sockaddr_in *)&d.addr;
            a->sin_family = AF_INET;
            a->sin_port = htons(port);
            memcpy(&a->sin_addr, raw + 8, 4);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&d.addr;
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(port);
            memcpy(&a->sin6_addr, raw + 8, 16);
        }
    }
    *flow = d;
    return stale ? 1 : 0;
}
