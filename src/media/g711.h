/* g711.h — ITU-T G.711 companding (A-law and µ-law, 8 kHz mono): what GB
 * cameras send as audio (PS stream types 0x90/0x91) and WebRTC carries as
 * PCMA/PCMU. Encoding is for the device simulator's test tone; decoding is
 * for tests and level checks. Pure functions, no state. */
#ifndef CASCADE_MEDIA_G711_H
#define CASCADE_MEDIA_G711_H

#include <stddef.h>
#include <stdint.h>

#define GB_G711_RATE 8000

uint8_t gb_g711_alaw_encode(int16_t pcm);
int16_t gb_g711_alaw_decode(uint8_t a);
uint8_t gb_g711_ulaw_encode(int16_t pcm);
int16_t gb_g711_ulaw_decode(uint8_t u);

/* A tone of freq_hz at amplitude (0..32767) encoded with A-law (ulaw 0) or
 * µ-law (ulaw 1), starting at sample index first (phase continuous across
 * calls): out[0..n). */
void gb_g711_tone(uint8_t *out, size_t n, uint64_t first, double freq_hz, int amplitude, int ulaw);

#endif
