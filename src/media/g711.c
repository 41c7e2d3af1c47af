/* g711.c — G.711 A-law / µ-law (see g711.h). Segment tables follow
 * ITU-T G.711 §2 (A-law: 13-bit magnitude, even bits inverted; µ-law:
 * 14-bit magnitude biased by 33, all bits inverted). */
#include "media/g711.h"

#include <math.h>

/* Position of the highest set bit of v >> shift, 0..7: the segment. */
static int segment(int mag, int shift)
{
    int seg = 0;
    for (int v = mag >> shift; v > 1 && seg < 7; v >>= 1) seg++;
    return seg;
}

uint8_t gb_g711_alaw_encode(int16_t pcm)
{
    int v = pcm >> 3; /* 13 bits */
    int sign = v >= 0 ? 0x80 : 0x00;
    int mag = v >= 0 ? v : -v - 1;
    if (mag > 0xFFF) mag = 0xFFF;
    /* Segments 0 and 1 share the step (2); each further one doubles it. */
    int seg = mag < 32 ? 0 : segment(mag, 5) + 1;
    int mant = (mag >> (seg < 2 ? 1 : seg)) & 0x0F;
    return (uint8_t)((sign | seg << 4 | mant) ^ 0x55);
}

int16_t gb_g711_alaw_decode(uint8_t a)
{
    a ^= 0x55;
    int seg = (a >> 4) & 7;
    int mag = (a & 0x0F) << 4;
    mag += seg == 0 ? 8 : 0x108;
    if (seg > 1) mag <<= seg - 1;
    return (int16_t)(a & 0x80 ? mag : -mag);
}

uint8_t gb_g711_ulaw_encode(int16_t pcm)
{
    int v = pcm >> 2; /* 14 bits */
    int sign = v < 0 ? 0x80 : 0x00;
    int mag = v < 0 ? -v : v;
    if (mag > 8158) mag = 8158;
    mag += 33;
    int seg = segment(mag, 5); /* biased 33..63 is segment 0 */
    uint8_t out = (uint8_t)(sign | seg << 4 | ((mag >> (seg + 1)) & 0x0F));
    return (uint8_t)~out;
}

int16_t gb_g711_ulaw_decode(uint8_t u)
{
    u = (uint8_t)~u;
    int seg = (u >> 4) & 7, mant = u & 0x0F;
    int mag = ((mant << 1) + 33) << seg;
    mag = (mag - 33) << 2;
    return (int16_t)(u & 0x80 ? -mag : mag);
}

void gb_g711_tone(uint8_t *out, size_t n, uint64_t first, double freq_hz, int amplitude, int ulaw)
{
    const double two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i++) {
        /* The phase from the sample index modulo one second keeps the
         * argument small however long the stream runs (whole cycles per
         * second for an integer frequency). */
        double t = (double)((first + i) % GB_G711_RATE) / GB_G711_RATE;
        int16_t s = (int16_t)lrint(amplitude * sin(two_pi * freq_hz * t));
        out[i] = ulaw ? gb_g711_ulaw_encode(s) : gb_g711_alaw_encode(s);
    }
}
