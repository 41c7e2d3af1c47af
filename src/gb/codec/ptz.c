/* ptz.c — GB/T 28181 Annex A.3 PTZ command build/parse (see ptz.h). */
#include "gb/codec/ptz.h"

#include <string.h>

static const struct {
    const char *name;
    uint8_t command;
} ptz_names[] = {
    {"stop", 0x00},
    {"right", GB_PTZ_RIGHT},
    {"left", GB_PTZ_LEFT},
    {"down", GB_PTZ_DOWN},
    {"up", GB_PTZ_UP},
    {"downright", GB_PTZ_DOWN | GB_PTZ_RIGHT},
    {"downleft", GB_PTZ_DOWN | GB_PTZ_LEFT},
    {"upright", GB_PTZ_UP | GB_PTZ_RIGHT},
    {"upleft", GB_PTZ_UP | GB_PTZ_LEFT},
    {"zoomin", GB_PTZ_ZOOM_IN},
    {"zoomout", GB_PTZ_ZOOM_OUT},
};

#define PTZ_VERSION 0x0

/* Annex A.3.1: the check nibble is (byte1 high + byte1 low + byte2 high) % 16. */
static uint8_t ptz_byte2(uint8_t version) { return (uint8_t)((version << 4) | ((0xA + 0x5 + version) % 16)); }

int gb_ptz_build_raw(uint8_t command, uint8_t data1, uint8_t data2, uint8_t data3_nibble, uint16_t address,
                     char out_hex[GB_PTZ_HEX_LEN + 1])
{
    static const char hex[] = "0123456789ABCDEF";
    out_hex[0] = '\0';
    if (address > 0xFFF || data3_nibble > 0xF) return -1;
    uint8_t b[8];
    b[0] = 0xA5;
    b[1] = ptz_byte2(PTZ_VERSION);
    b[2] = (uint8_t)(address & 0xFF);
    b[3] = command;
    b[4] = data1;
    b[5] = data2;
    b[6] = (uint8_t)((data3_nibble << 4) | (address >> 8));
    unsigned sum = 0;
    for (int i = 0; i < 7; i++) sum += b[i];
    b[7] = (uint8_t)(sum % 256);
    for (int i = 0; i < 8; i++) {
        out_hex[2 * i] = hex[b[i] >> 4];
        out_hex[2 * i + 1] = hex[b[i] & 0xF];
    }
    out_hex[GB_PTZ_HEX_LEN] = '\0';
    return 0;
}

int gb_ptz_build(const char *cmd, int speed, int zoom_speed, uint16_t address, char out_hex[GB_PTZ_HEX_LEN + 1])
{
    out_hex[0] = '\0';
    if (!cmd || speed < 0 || speed > 255 || zoom_speed < 0 || zoom_speed > 15 || address > 0xFFF) return -1;
    for (size_t i = 0; i < sizeof(ptz_names) / sizeof(ptz_names[0]); i++) {
        if (strcmp(cmd, ptz_names[i].name) != 0) continue;
        uint8_t c = ptz_names[i].command;
        uint8_t pan = (c & (GB_PTZ_LEFT | GB_PTZ_RIGHT)) ? (uint8_t)speed : 0;
        uint8_t tilt = (c & (GB_PTZ_UP | GB_PTZ_DOWN)) ? (uint8_t)speed : 0;
        uint8_t zoom = (c & (GB_PTZ_ZOOM_IN | GB_PTZ_ZOOM_OUT)) ? (uint8_t)zoom_speed : 0;
        return gb_ptz_build_raw(c, pan, tilt, zoom, address, out_hex);
    }
    return -1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int gb_ptz_parse(const char *hex, size_t len, gb_ptz_t *out)
{
    if (!hex) return -1;
    while (len && is_space(hex[0])) hex++, len--;
    while (len && is_space(hex[len - 1])) len--;
    if (len != GB_PTZ_HEX_LEN) return -1;
    gb_ptz_t p;
    memset(&p, 0, sizeof(p));
    for (int i = 0; i < 8; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        p.bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    if (p.bytes[0] != 0xA5) return -1;
    p.version = p.bytes[1] >> 4;
    if (p.bytes[1] != ptz_byte2(p.version)) return -1;
    unsigned sum = 0;
    for (int i = 0; i < 7; i++) sum += p.bytes[i];
    if ((uint8_t)(sum % 256) != p.bytes[7]) return -1;
    p.address = (uint16_t)(p.bytes[2] | ((p.bytes[6] & 0x0F) << 8));
    p.command = p.bytes[3];
    p.pan_speed = p.bytes[4];
    p.tilt_speed = p.bytes[5];
    p.zoom_speed = p.bytes[6] >> 4;
    *out = p;
    return 0;
}

const char *gb_ptz_command_name(uint8_t command)
{
    for (size_t i = 0; i < sizeof(ptz_names) / sizeof(ptz_names[0]); i++)
        if (ptz_names[i].command == command) return ptz_names[i].name;
    return NULL;
}
