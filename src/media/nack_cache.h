/* nack_cache.h — the recent RTP packets of one outgoing stream, kept so a
 * generic NACK (RFC 4585 §6.2.1) can be answered with retransmissions.
 *
 * Keyed by the 16-bit RTP sequence number: slot seq & (slots - 1) holds the
 * newest packet put with that number, so slots (a power of two) bounds how
 * far back a NACK is answered — about 1 s of video at the stream's packet
 * rate (media.md). The copies live in one byte ring of max_bytes allocated
 * up front: putting a packet overwrites the oldest copies it needs room for,
 * so the total stays bounded and the forwarding path never allocates.
 *
 * The cache owns its memory; a pointer from nack_cache_get stays valid until
 * the next put or free. One stream, one thread; no clock. */
#ifndef CASCADE_MEDIA_NACK_CACHE_H
#define CASCADE_MEDIA_NACK_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct nack_cache nack_cache_t;

/* slots: a power of two, 1..32768 (at most half the sequence space, so
 * "the last slots packets" is unambiguous across the wrap); max_bytes:
 * 1..2^31, at least the largest packet to be put. NULL on a bad argument or
 * no memory. */
nack_cache_t *nack_cache_new(size_t slots, size_t max_bytes);
void nack_cache_free(nack_cache_t *c);

/* Copies the packet (the whole RTP packet as it will be resent). Replaces
 * whatever the slot held, and evicts the oldest copies that the byte ring
 * needs to make room. 0, or -EINVAL for len 0 or above max_bytes. */
int nack_cache_put(nack_cache_t *c, uint16_t seq, const uint8_t *pkt, size_t len);

/* The packet put with seq, or NULL when it was never put, was evicted, or
 * its slot now holds another sequence number. */
const uint8_t *nack_cache_get(const nack_cache_t *c, uint16_t seq, size_t *len);

/* Packets held now (for metrics and tests). */
size_t nack_cache_count(const nack_cache_t *c);

/* Forgets everything (the stream restarted, e.g. a new SSRC). */
void nack_cache_clear(nack_cache_t *c);

#endif
