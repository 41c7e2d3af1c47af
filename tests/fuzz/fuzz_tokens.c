/* fuzz_tokens.c — libFuzzer target for the two bearer strings a stranger can
 * hand the API: a room join token (media/room.h, room_token_verify) and an
 * event WebSocket ticket (api/ws_ticket.h, api_tickets_redeem).
 *
 * The input is read as a token for room "lobby": verification never
 * crashes, and whatever it accepts signs back to a token that verifies to
 * the same fields. The input's first bytes also build a token (room, name,
 * rights, expiry) that must verify to what was signed. The input as a
 * ticket is refused (tickets are 128 random bits); an issued ticket is taken
 * once, then refused.
 *
 * The input is also read as the user part of a SIP Route URI: a Path token
 * or a flow token (proxy/flow_token.c, RFC 5626 §5.3, what any stranger can
 * put in front of an edge node). Whatever parses makes the same token
 * again; a flow built from the input's bytes makes a token that parses
 * back to it, and a stream flow's token made in another run of the node
 * (the same key, another run id) parses as gone (1), a UDP one as ever. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "api/ws_ticket.h"
#include "media/room.h"
#include "proxy/proxy_int.h"

static const uint8_t key[32] = "fuzz-room-token-secret-32-bytes";

static void same_or_die(const struct room_token *a, const struct room_token *b)
{
    if (strcmp(a->room, b->room) || strcmp(a->name, b->name) || a->expires_s != b->expires_s ||
        a->publish != b->publish || a->subscribe != b->subscribe)
        abort();
}

static void token_as_input(const uint8_t *data, size_t size)
{
    char tok[ROOM_TOKEN_MAX * 2 + 2];
    size_t n = size < sizeof(tok) - 1 ? size : sizeof(tok) - 1;
    memcpy(tok, data, n);
    tok[n] = '\0';
    struct room_token got;
    if (room_token_verify(key, sizeof(key), tok, "lobby", 1000, &got) != 0) return;
    if (strcmp(got.room, "lobby") != 0) abort();
    char again[ROOM_TOKEN_MAX + 1];
    if (room_token_sign(key, sizeof(key), &got, again, sizeof(again)) < 0) abort();
    struct room_token back;
    if (room_token_verify(key, sizeof(key), again, "lobby", 1000, &back) != 0) abort();
    same_or_die(&got, &back);
}

static void token_from_input(const uint8_t *data, size_t size)
{
    if (size < 2) return;
    struct room_token t = {0};
    size_t rl = data[0] % (ROOM_NAME_MAX + 1), nl = data[1] % (ROOM_TEXT_MAX + 1);
    if (2 + rl + nl > size) return;
    memcpy(t.room, data + 2, rl);
    memcpy(t.name, data + 2 + rl, nl);
    if (memchr(t.room, 0, rl) || memchr(t.name, 0, nl)) return;
    t.publish = data[0] & 1;
    t.subscribe = data[1] & 1;
    t.expires_s = 2000 + (uint64_t)data[1] * 977;
    char tok[ROOM_TOKEN_MAX + 1];
    if (room_token_sign(key, sizeof(key), &t, tok, sizeof(tok)) < 0) return; /* a room or name room_join refuses */
    struct room_token got;
    if (room_token_verify(key, sizeof(key), tok, t.room, 1000, &got) != 0) abort();
    same_or_die(&t, &got);
    if (room_token_verify(key, sizeof(key), tok, t.room, t.expires_s + 1, &got) == 0) abort(); /* expired */
}

static void ticket(const uint8_t *data, size_t size)
{
    struct api_tickets *t = api_tickets_new(4, 30000);
    if (!t) abort();
    char good[API_TICKET_TEXT + 1];
    if (api_tickets_issue(t, 0, good) != 0) abort();
    if (api_tickets_redeem(t, 1, (const char *)data, size) != 0 &&
        !(size == API_TICKET_TEXT && strncasecmp((const char *)data, good, size) == 0))
        abort();
    if (api_tickets_redeem(t, 2, good, API_TICKET_TEXT) != 1 &&
        !(size == API_TICKET_TEXT && strncasecmp((const char *)data, good, size) == 0))
        abort();
    if (api_tickets_redeem(t, 3, good, API_TICKET_TEXT) != 0) abort();
    api_tickets_free(t);
}

static const struct proxy_flow_key sip_key = {.k = "fuzz-sip-flow-token-key", .run = 0x01020304u};
static const struct proxy_flow_key sip_key_before = {.k = "fuzz-sip-flow-token-key", .run = 0x0a0b0c0du};

static void sip_token_as_input(const uint8_t *data, size_t size)
{
    str_t user = str_make((const char *)data, size);
    struct transport_dest d;
    int rc = proxy_path_token_parse(&sip_key, user, &d);
    if (rc == 0) {
        char again[PROXY_PATH_TOKEN_MAX + 1];
        int n = proxy_path_token_make(&sip_key, &d, again, sizeof(again));
        if (n < 0 || (size_t)n != size || memcmp(again, data, size)) abort();
    } else if (rc == 1) {
        if (!sip_transport_is_stream(d.proto) || !d.conn_id) abort(); /* only a connection dies with its run */
    } else if (rc != -1) {
        abort();
    }
    enum sip_transport proto;
    uint64_t id;
    if (proxy_flow_token_parse(&sip_key, user, &proto, &id) == 0) {
        char again[PROXY_FLOW_TOKEN_LEN + 1];
        proxy_flow_token_make(&sip_key, proto, id, again, sizeof(again));
        if (size != PROXY_FLOW_TOKEN_LEN || memcmp(again, data, size)) abort();
    }
}

static void sip_token_from_input(const uint8_t *data, size_t size)
{
    if (size < 27) return;
    struct transport_dest d;
    memset(&d, 0, sizeof(d));
    d.proto = (enum sip_transport)(data[0] % SIP_TRANSPORT_COUNT);
    for (int i = 0; i < 8; i++) d.conn_id = d.conn_id << 8 | data[1 + i];
    d.listener_id = (uint32_t)data[9] << 24 | (uint32_t)data[10] << 16 | (uint32_t)data[11] << 8 | data[12];
    uint16_t port = (uint16_t)(data[13] << 8 | data[14]);
    if (data[0] & 0x80) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&d.addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        memcpy(&a->sin6_addr, data + 11, 16);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&d.addr;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        memcpy(&a->sin_addr, data + 15, 4);
    }
    char tok[PROXY_PATH_TOKEN_MAX + 1];
    if (proxy_path_token_make(&sip_key, &d, tok, sizeof(tok)) < 0) {
        if (sip_transport_is_stream(d.proto) ? d.conn_id != 0 : port != 0) abort();
        return;
    }
    struct transport_dest back;
    if (proxy_path_token_parse(&sip_key, str_from_cstr(tok), &back) != 0 || back.proto != d.proto) abort();
    char old[PROXY_PATH_TOKEN_MAX + 1];
    struct transport_dest was;
    if (proxy_path_token_make(&sip_key_before, &d, old, sizeof(old)) < 0 ||
        proxy_path_token_parse(&sip_key, str_from_cstr(old), &was) != (sip_transport_is_stream(d.proto) ? 1 : 0))
        abort();
    if (sip_transport_is_stream(d.proto)) {
        if (back.conn_id != d.conn_id || back.addr.ss_family) abort();
    } else if (!transport_addr_equal(&back.addr, &d.addr) || back.listener_id != d.listener_id) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sip_token_as_input(data, size);
    sip_token_from_input(data, size);
    token_as_input(data, size);
    token_from_input(data, size);
    ticket(data, size);
    return 0;
}
