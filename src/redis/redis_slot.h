/* redis_slot.h — which Redis Cluster hash slot a key belongs to.
 *
 * A cluster splits the key space into 16384 slots; a key's slot is the
 * CRC16 (XMODEM: polynomial 0x1021, initial value 0, no reflection) of the
 * key modulo 16384. When the key holds a "{...}" with at least one byte
 * between the first '{' and the first '}' after it, only those bytes are
 * hashed, so keys sharing that tag share a slot (and a node): this is how
 * one AoR's or one device's keys stay together. (Redis Cluster
 * specification, "Keys distribution model" and "Hash tags".) */
#ifndef CASCADE_REDIS_SLOT_H
#define CASCADE_REDIS_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define REDIS_SLOTS 16384

uint16_t redis_crc16(const void *data, size_t len);
/* The slot of a key, 0..REDIS_SLOTS-1, with the hash tag rule above. */
unsigned redis_key_slot(const char *key, size_t len);

#endif
