/* fuzz_mpegts.c — libFuzzer target for the MPEG-TS muxer.
 *
 * Input: byte 0 picks the codec; then records of [len:2][pts:5][dts step:1]
 * [flags:1] followed by len bytes of access unit (arbitrary, not H.264). The
 * muxer must refuse nothing it should take, stay inside its bound, and
 * produce packets a reader accepts: sync bytes, continuity per PID, sane
 * adaptation fields, a PES per frame whose PTS/DTS are the ones given and
 * whose payload ends with the access unit (the muxer only prepends). */
#include <stdint.h>
#include <string.h>

#include "media/mpegts.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

#define MAX_AU 20000

static uint8_t out[MAX_AU * 2 + 8192];
static uint8_t pes[MAX_AU * 2 + 8192];

static uint64_t get_ts(const uint8_t *p)
{
    return ((uint64_t)(p[0] & 0x0E) << 29) | ((uint64_t)p[1] << 22) | ((uint64_t)(p[2] & 0xFE) << 14) |
           ((uint64_t)p[3] << 7) | ((uint64_t)p[4] >> 1);
}

/* Walks the packets of one frame; returns the reassembled PES length. */
static size_t walk(const uint8_t *buf, size_t len, int *cc, bool key, bool tables)
{
    size_t pes_len = 0;
    unsigned starts = 0, sections = 0;
    for (size_t off = 0; off < len; off += GB_TS_PACKET_SIZE) {
        const uint8_t *p = buf + off;
        CHECK(p[0] == 0x47);
        unsigned pid = (unsigned)(p[1] & 0x1F) << 8 | p[2];
        unsigned afc = p[3] >> 4 & 3, c = p[3] & 0x0F;
        CHECK(afc == 1 || afc == 3);
        int slot = pid == GB_TS_PID_PAT ? 0 : pid == GB_TS_PID_PMT ? 1 : 2;
        CHECK(slot < 2 || pid == GB_TS_PID_VIDEO);
        CHECK(cc[slot] < 0 || c == ((unsigned)cc[slot] + 1) % 16);
        cc[slot] = (int)c;
        size_t hdr = 4;
        if (afc == 3) {
            CHECK(p[4] <= 183);
            if (p[4] > 0 && (p[1] & 0x40) && slot == 2) CHECK((p[5] & 0x10) && !!(p[5] & 0x40) == key);
            hdr += 1 + p[4];
        }
        if (slot < 2) {
            sections++;
            continue;
        }
        if (p[1] & 0x40) starts++;
        memcpy(pes + pes_len, p + hdr, GB_TS_PACKET_SIZE - hdr);
        pes_len += GB_TS_PACKET_SIZE - hdr;
    }
    CHECK(starts == 1);
    CHECK(sections == ((key || tables) ? 2u : 0u));
    return pes_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    gb_ts_mux_t m;
    CHECK(gb_ts_mux_init(&m, (data[0] & 1) ? GB_CODEC_H265 : GB_CODEC_H264) == 0);
    int cc[3] = {-1, -1, -1};
    size_t pos = 1;
    while (size - pos >= 9) {
        size_t len = ((size_t)data[pos] << 8 | data[pos + 1]) % MAX_AU;
        uint64_t pts = 0;
        for (int i = 0; i < 5; i++) pts = pts << 8 | data[pos + 2 + i];
        uint64_t dts = pts - data[pos + 7];
        uint8_t flags = data[pos + 8];
        bool key = flags & 1, tables = flags & 2;
        pos += 9;
        if (len > size - pos) len = size - pos;
        const uint8_t *au = data + pos;
        pos += len;
        size_t bound = gb_ts_mux_bound(len);
        uint64_t params_before = m.params_added, auds_before = m.auds_added;
        if (flags & 4) { /* a short buffer is refused without a trace */
            uint8_t cc_before = m.cc_video;
            CHECK(gb_ts_mux_frame(&m, out, bound - 1, au, len, pts, dts, key, tables) == -1);
            CHECK(m.cc_video == cc_before);
        }
        long n = gb_ts_mux_frame(&m, out, sizeof(out), au, len, pts, dts, key, tables);
        if (len == 0) {
            CHECK(n == -1);
            continue;
        }
        CHECK(n > 0 && (size_t)n <= bound && n % GB_TS_PACKET_SIZE == 0);
        size_t pl = walk(out, (size_t)n, cc, key, tables);
        CHECK(pl >= 14 + len);
        CHECK(memcmp(pes, "\x00\x00\x01\xE0\x00\x00\x80", 7) == 0);
        size_t hl = 9 + pes[8];
        CHECK(get_ts(pes + 9) == (pts & ((1ull << 33) - 1)));
        if (hl == 19) CHECK(get_ts(pes + 14) == (dts & ((1ull << 33) - 1)));
        else CHECK(hl == 14 && ((pts - dts) & ((1ull << 33) - 1)) == 0);
        size_t added = pl - hl - len;
        if (m.params_added == params_before && m.auds_added == auds_before) CHECK(added == 0);
        if (m.params_added == params_before) CHECK(memcmp(pes + pl - len, au, len) == 0);
        CHECK(added <= 7 + 3 * (GB_TS_PARAM_MAX + 4));
    }
    return 0;
}
