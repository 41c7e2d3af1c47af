/* fuzz_tokens.c — libFuzzer target for the two bearer strings a stranger can
 * hand the API: a room join token (media/room.h, room_token_verify) and an
 * event WebSocket ticket (api/ws_ticket.h, api_tickets_redeem).
 *
 * The input is read as a token for room "lobby": verification never
 * crashes, and whatever it accepts signs back to a token that verifies to
 * the same fields. The input's first bytes also build a token (room, name,
 * rights, expiry) that must verify to what was signed. The input as a
 * ticket is refused (tickets are 128 random bits); an issued ticket is taken
 * once, then refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/ws_ticket.h"
#include "media/room.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    token_as_input(data, size);
    token_from_input(data, size);
    ticket(data, size);
    return 0;
}
