/* ptz.h — the 8-byte PTZ command of GB/T 28181 Annex A.3 (the hex text in
 * <PTZCmd> of a DeviceControl message).
 *
 *   byte 1  0xA5
 *   byte 2  high nibble version (0), low nibble check = (0xA + 0x5 + version) % 16
 *   byte 3  address, low 8 bits
 *   byte 4  command: 0x20 zoom out, 0x10 zoom in, 0x08 up, 0x04 down,
 *           0x02 left, 0x01 right (combinable), 0x00 stop
 *   byte 5  horizontal (pan) speed 0-255
 *   byte 6  vertical (tilt) speed 0-255
 *   byte 7  high nibble zoom speed 0-15, low nibble address high 4 bits
 *   byte 8  sum of bytes 1-7 mod 256
 *
 * So "stop" at address 1 is always A50F0100000000B5. */
#ifndef CASCADE_GB_CODEC_PTZ_H
#define CASCADE_GB_CODEC_PTZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GB_PTZ_HEX_LEN 16

enum {
    GB_PTZ_RIGHT = 0x01,
    GB_PTZ_LEFT = 0x02,
    GB_PTZ_DOWN = 0x04,
    GB_PTZ_UP = 0x08,
    GB_PTZ_ZOOM_IN = 0x10,
    GB_PTZ_ZOOM_OUT = 0x20,
};

typedef struct {
    uint8_t bytes[8];
    uint8_t version;    /* byte 2 high nibble */
    uint16_t address;   /* 12 bits */
    uint8_t command;    /* byte 4 */
    uint8_t pan_speed;  /* byte 5 */
    uint8_t tilt_speed; /* byte 6 */
    uint8_t zoom_speed; /* byte 7 high nibble, 0-15 */
} gb_ptz_t;

/* cmd: "left", "right", "up", "down", "upleft", "upright", "downleft",
 * "downright", "zoomin", "zoomout" or "stop". speed (0-255) goes to the pan
 * and/or tilt byte the direction uses, zoom_speed (0-15) to byte 7 for zoom
 * commands; the bytes of unused axes stay 0. address is 12 bits (0-4095).
 * Writes 16 upper-case hex digits and a NUL. Returns 0, or -1 for an unknown
 * cmd or an out-of-range argument (out_hex is then an empty string). */
int gb_ptz_build(const char *cmd, int speed, int zoom_speed, uint16_t address, char out_hex[GB_PTZ_HEX_LEN + 1]);
/* The same from a raw command byte (any combination of the GB_PTZ_* bits,
 * or another Annex A.4-A.6 command code) and explicit byte values. */
int gb_ptz_build_raw(uint8_t command, uint8_t data1, uint8_t data2, uint8_t data3_nibble, uint16_t address,
                     char out_hex[GB_PTZ_HEX_LEN + 1]);
/* Parses 16 hex digits (either case, surrounding whitespace allowed).
 * Returns 0, or -1 when the text is not 8 hex bytes, byte 1 is not 0xA5, the
 * byte-2 check nibble or the byte-8 checksum is wrong. */
int gb_ptz_parse(const char *hex, size_t len, gb_ptz_t *out);
/* Name of a pure direction/zoom command byte ("left", "upright", "stop", ...),
 * or NULL for other command codes. */
const char *gb_ptz_command_name(uint8_t command);

#endif
