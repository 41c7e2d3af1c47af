/* ws_ticket.h — short-lived, single-use tickets that stand in for the Bearer
 * token on a WebSocket upgrade.
 *
 * A browser's WebSocket cannot send an Authorization header, so a page asks
 * for a ticket with an authorized POST and puts it in the upgrade's query
 * (?ticket=). A ticket is 128 random bits (OpenSSL's RAND_bytes) shown as
 * 32 hex digits; it is good for one upgrade within its lifetime.
 *
 * The table is a fixed array of cap slots: issuing fills a free or expired
 * slot, else evicts the one that expires first (the oldest; counted), so
 * memory stays bounded however many tickets are asked for. Redeeming
 * compares the offered ticket with every slot in constant time (the slots
 * hold no secret order) and frees the slot it matched: a second use fails.
 *
 * No clock is read: callers pass now_ms (any monotonic clock in ms, the
 * same one each time). No I/O, no logging: the caller logs refusals. */
#ifndef CASCADE_API_WS_TICKET_H
#define CASCADE_API_WS_TICKET_H

#include <stddef.h>
#include <stdint.h>

#define API_TICKET_BYTES 16
#define API_TICKET_TEXT (2 * API_TICKET_BYTES)   /* hex digits, without the NUL */
#define API_TICKET_TTL_MS 30000u
#define API_TICKET_CAP 256u

struct api_tickets;

struct api_tickets_stats {
    uint64_t issued, redeemed, refused, evicted;
    unsigned outstanding;    /* slots holding a ticket, expired ones included until reused */
};

/* cap: slots (1..65536); ttl_ms: lifetime (> 0). NULL on bad input or OOM. */
struct api_tickets *api_tickets_new(unsigned cap, uint32_t ttl_ms);
void api_tickets_free(struct api_tickets *t);

/* Writes a new ticket (API_TICKET_TEXT hex digits and a NUL) to out.
 * 0, or -EIO when no random bytes could be had (nothing issued). */
int api_tickets_issue(struct api_tickets *t, uint64_t now_ms, char out[API_TICKET_TEXT + 1]);

/* 1: the ticket (len bytes, need not be NUL-terminated) was outstanding and
 * unexpired, and is now used up; 0: refused (unknown, used, expired, or
 * malformed). */
int api_tickets_redeem(struct api_tickets *t, uint64_t now_ms, const char *ticket, size_t len);

uint32_t api_tickets_ttl_ms(const struct api_tickets *t);
void api_tickets_get_stats(const struct api_tickets *t, struct api_tickets_stats *out);

#endif
