/* test_mpegts.c — the MPEG-TS muxer: PAT/PMT bytes and CRC, packet
 * structure (continuity counters, PCR, random access, stuffing) for every
 * payload length around a packet boundary, the AUD and parameter sets it
 * adds, refusals, and ffprobe/ffmpeg reading the muxed test clip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clip_testutil.h"
#include "media/h264.h"
#include "media/mpegts.h"
#include "media/ps.h"

/* What a reader of the stream sees, rebuilt packet by packet. */
typedef struct {
    uint8_t pes[1 << 16];
    size_t pes_len;
    int cc[0x2000]; /* last continuity counter per PID, -1 before the first */
    unsigned packets, pat, pmt, video_starts, pcrs, rais;
    uint64_t last_pcr;
    int pmt_stream_type;
    bool ok; /* every rule held */
} ts_reader_t;

static void reader_init(ts_reader_t *r)
{
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < 0x2000; i++) r->cc[i] = -1;
    r->pmt_stream_type = -1;
    r->ok = true;
}

static void check_section(ts_reader_t *r, const uint8_t *p, size_t n, int table_id)
{
    /* pointer_field 0, then a section whose CRC over itself leaves 0 (Annex A). */
    size_t sl = (size_t)(p[2] & 0x0F) << 8 | p[3];
    if (p[0] != 0 || p[1] != table_id || 4 + sl > n || gb_ps_crc32(p + 1, 3 + sl) != 0) r->ok = false;
    if (table_id == 2) r->pmt_stream_type = p[1 + 12];
}

static void reader_feed(ts_reader_t *r, const uint8_t *buf, size_t len)
{
    if (len % GB_TS_PACKET_SIZE) r->ok = false;
    for (size_t off = 0; off + GB_TS_PACKET_SIZE <= len; off += GB_TS_PACKET_SIZE) {
        const uint8_t *p = buf + off;
        r->packets++;
        if (p[0] != 0x47) r->ok = false;
        unsigned pid = (unsigned)(p[1] & 0x1F) << 8 | p[2];
        bool pusi = p[1] & 0x40;
        unsigned afc = p[3] >> 4 & 3, cc = p[3] & 0x0F;
        if (afc == 0 || (afc & 1) == 0) r->ok = false; /* every packet here carries payload */
        if (r->cc[pid] >= 0 && cc != ((unsigned)r->cc[pid] + 1) % 16) r->ok = false;
        r->cc[pid] = (int)cc;
        size_t hdr = 4;
        if (afc & 2) {
            size_t afl = p[4];
            if (afl > 183) r->ok = false;
            if (afl > 0) {
                uint8_t flags = p[5];
                if (flags & 0x10) {
                    r->pcrs++;
                    r->last_pcr = (uint64_t)p[6] << 25 | (uint64_t)p[7] << 17 | (uint64_t)p[8] << 9 |
                                  (uint64_t)p[9] << 1 | p[10] >> 7;
                }
                if (flags & 0x40) r->rais++;
                size_t used = flags & 0x10 ? 8 : 2;
                for (size_t i = 4 + used; i < 5 + afl; i++)
                    if (p[i] != 0xFF) r->ok = false;
            }
            hdr += 1 + afl;
        }
        const uint8_t *pl = p + hdr;
        size_t n = GB_TS_PACKET_SIZE - hdr;
        if (pid == GB_TS_PID_PAT) r->pat++, check_section(r, pl, n, 0);
        else if (pid == GB_TS_PID_PMT) r->pmt++, check_section(r, pl, n, 2);
        else if (pid == GB_TS_PID_VIDEO) {
            if (pusi) r->video_starts++, r->pes_len = 0;
            if (r->pes_len + n > sizeof(r->pes)) r->ok = false;
            else memcpy(r->pes + r->pes_len, pl, n), r->pes_len += n;
        } else r->ok = false;
    }
}

static uint64_t get_ts(const uint8_t *p)
{
    return ((uint64_t)(p[0] & 0x0E) << 29) | ((uint64_t)p[1] << 22) | ((uint64_t)(p[2] & 0xFE) << 14) |
           ((uint64_t)p[3] << 7) | ((uint64_t)p[4] >> 1);
}

static uint8_t out[1 << 20];

static void test_tables(void **state)
{
    (void)state;
    gb_ts_mux_t m;
    assert_int_equal(gb_ts_mux_init(&m, GB_CODEC_UNKNOWN), -1);
    assert_int_equal(gb_ts_mux_init(&m, GB_CODEC_H265), 0);
    assert_int_equal(gb_ts_mux_tables(&m, out, 375), -1);
    assert_int_equal(gb_ts_mux_tables(&m, out, sizeof(out)), 376);
    assert_int_equal(gb_ts_mux_tables(&m, out + 376, sizeof(out) - 376), 376);
    /* PAT: program 1 on PID 0x1000, section CRC-checked. */
    assert_memory_equal(out, "\x47\x40\x00\x10\x00\x00\xB0\x0D\x00\x01\xC1\x00\x00\x00\x01\xF0\x00", 17);
    assert_int_equal(gb_ps_crc32(out + 5, 16), 0);
    /* PMT: PCR PID 0x100, one H.265 stream (0x24) on 0x100. */
    assert_memory_equal(out + 188, "\x47\x50\x00\x10\x00\x02\xB0\x12\x00\x01\xC1\x00\x00\xE1\x00\xF0\x00\x24\xE1\x00\xF0\x00",
                        22);
    assert_int_equal(gb_ps_crc32(out + 188 + 5, 21), 0);
    ts_reader_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    reader_init(r);
    reader_feed(r, out, 752);
    assert_true(r->ok); /* counters 0 then 1 on both PIDs */
    assert_int_equal(r->pat, 2);
    assert_int_equal(r->pmt_stream_type, 0x24);
    assert_int_equal(gb_ts_stream_type(GB_CODEC_H264), 0x1B);
    free(r);
}

/* Every payload length across one and two packet boundaries: packets are
 * full, stuffing sits in the adaptation field, the PES carries AUD + AU. */
static void test_every_length(void **state)
{
    (void)state;
    static uint8_t au[1000];
    ts_reader_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    for (size_t len = 5; len < sizeof(au); len++) {
        memcpy(au, "\x00\x00\x00\x01\x41", 5);
        for (size_t i = 5; i < len; i++) au[i] = (uint8_t)(i | 1);
        gb_ts_mux_t m;
        assert_int_equal(gb_ts_mux_init(&m, GB_CODEC_H264), 0);
        long n = gb_ts_mux_frame(&m, out, sizeof(out), au, len, 900000, 900000, false, false);
        assert_true(n > 0);
        reader_init(r);
        reader_feed(r, out, (size_t)n);
        assert_true(r->ok);
        assert_int_equal(r->pat, 0);
        assert_int_equal(r->video_starts, 1);
        assert_int_equal(r->pcrs, 1);
        assert_int_equal(r->rais, 0);
        assert_int_equal(r->last_pcr, 900000 - GB_TS_PCR_DELAY);
        /* PES header: length 0, PTS only. */
        assert_memory_equal(r->pes, "\x00\x00\x01\xE0\x00\x00\x80\x80\x05", 9);
        assert_int_equal(get_ts(r->pes + 9), 900000);
        assert_int_equal(r->pes_len, 14 + 6 + len);
        assert_memory_equal(r->pes + 14, "\x00\x00\x00\x01\x09\xF0", 6);
        assert_memory_equal(r->pes + 20, au, len);
        assert_int_equal(m.auds_added, 1);
        assert_true((size_t)n <= gb_ts_mux_bound(len));
    }
    free(r);
}

/* A key frame: tables first, random_access_indicator, DTS when it differs,
 * no second AUD, and the last SPS/PPS put back when the key frame lacks them. */
static void test_key_frame_extras(void **state)
{
    (void)state;
    static const uint8_t first[] = {0, 0, 0, 1, 0x09, 0x10, 0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1e,
                                    0, 0, 1, 0x68, 0xCE, 0x38, 0x80, 0, 0, 1, 0x65, 0x88, 0x84};
    static const uint8_t bare_idr[] = {0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21};
    gb_ts_mux_t m;
    assert_int_equal(gb_ts_mux_init(&m, GB_CODEC_H264), 0);
    ts_reader_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    reader_init(r);
    long n = gb_ts_mux_frame(&m, out, sizeof(out), first, sizeof(first), 100000, 96400, true, false);
    assert_true(n > 0);
    reader_feed(r, out, (size_t)n);
    assert_true(r->ok);
    assert_int_equal(r->pat, 1);
    assert_int_equal(r->pmt, 1);
    assert_int_equal(r->pmt_stream_type, 0x1B);
    assert_int_equal(r->rais, 1);
    assert_int_equal(r->last_pcr, 96400 - GB_TS_PCR_DELAY);
    assert_memory_equal(r->pes + 6, "\x80\xC0\x0A", 3);
    assert_int_equal(r->pes[9] >> 4, 3);
    assert_int_equal(r->pes[14] >> 4, 1);
    assert_int_equal(get_ts(r->pes + 9), 100000);
    assert_int_equal(get_ts(r->pes + 14), 96400);
    assert_int_equal(r->pes_len, 19 + sizeof(first)); /* its own AUD kept, nothing added */
    assert_memory_equal(r->pes + 19, first, sizeof(first));
    assert_int_equal(m.auds_added, 0);
    assert_int_equal(m.params_added, 0);

    /* The next key frame has only the IDR: AUD, then the kept SPS and PPS. */
    n = gb_ts_mux_frame(&m, out, sizeof(out), bare_idr, sizeof(bare_idr), 13600, 13600, true, false);
    assert_true(n > 0);
    reader_feed(r, out, (size_t)n);
    assert_true(r->ok);
    static const uint8_t want[] = {0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1e,
                                   0, 0, 0, 1, 0x68, 0xCE, 0x38, 0x80, 0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21};
    assert_int_equal(r->pes_len, 14 + sizeof(want));
    assert_memory_equal(r->pes + 14, want, sizeof(want));
    assert_int_equal(m.params_added, 1);
    /* A non-key frame gets no parameter sets; tables only when asked. */
    n = gb_ts_mux_frame(&m, out, sizeof(out), bare_idr, sizeof(bare_idr), 17200, 17200, false, true);
    reader_feed(r, out, (size_t)n);
    assert_true(r->ok);
    assert_int_equal(r->pat, 3);
    assert_int_equal(r->rais, 2);
    assert_int_equal(r->pes_len, 14 + 6 + sizeof(bare_idr));
    assert_int_equal(m.frames, 3);
    assert_int_equal(m.key_frames, 2);
    free(r);
}

/* H.265: its AUD (type 35) and VPS/SPS/PPS are repeated the same way. */
static void test_h265(void **state)
{
    (void)state;
    static const uint8_t key1[] = {0, 0, 0, 1, 0x40, 0x01, 0x0C, 0, 0, 0, 1, 0x42, 0x01, 0x01,
                                   0, 0, 0, 1, 0x44, 0x01, 0xC1, 0, 0, 0, 1, 0x26, 0x01, 0xAF};
    static const uint8_t key2[] = {0, 0, 0, 1, 0x26, 0x01, 0xAF, 0x11};
    gb_ts_mux_t m;
    assert_int_equal(gb_ts_mux_init(&m, GB_CODEC_H265), 0);
    ts_reader_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    reader_init(r);
    long n = gb_ts_mux_frame(&m, out, sizeof(out), key1, sizeof(key1), 0, 0, true, false);
    n += gb_ts_mux_frame(&m, out + n, sizeof(out) - (size_t)n, key2, sizeof(key2), 3600, 3600, true, false);
    reader_feed(r, out, (size_t)n);
    assert_true(r->ok);
    assert_int_equal(r->pmt_stream_type, 0x24);
    assert_int_equal(r->pes_len, 14 + 7 + sizeof(key1) - 7 + sizeof(key2)); /* the second PES */
    assert_memory_equal(r->pes + 14, "\x00\x00\x00\x01\x46\x01\x50", 7);
    assert_memory_equal(r->pes + 21, key1, sizeof(key1) - 7); /* VPS, SPS, PPS */
    assert_memory_equal(r->pes + 21 + sizeof(key1) - 7, key2, sizeof(key2));
    free(r);
}

static void test_refusals(void **state)
{
    (void)state;
    static const uint8_t au[] = {0, 0, 1, 0x41, 0x9A};
    gb_ts_mux_t m;
    assert_int_equal(gb_ts_mux_init(&m, GB_CODEC_H264), 0);
    assert_int_equal(gb_ts_mux_frame(&m, out, sizeof(out), au, 0, 0, 0, true, true), -1);
    assert_int_equal(gb_ts_mux_frame(&m, out, sizeof(out), NULL, 5, 0, 0, true, true), -1);
    assert_int_equal(gb_ts_mux_frame(&m, out, gb_ts_mux_bound(sizeof(au)) - 1, au, sizeof(au), 0, 0, true, true), -1);
    assert_int_equal(m.frames, 0);
    assert_int_equal(m.packets, 0);
    assert_int_equal(m.cc_video, 0);
    assert_int_equal(gb_ts_mux_bound(SIZE_MAX / 2), SIZE_MAX);
    /* Garbage in front of the AU: passed through, after our AUD. */
    static const uint8_t junk[] = {0xAB, 0xCD, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x41};
    assert_true(gb_ts_mux_frame(&m, out, sizeof(out), junk, sizeof(junk), 0, 0, false, false) > 0);
    assert_int_equal(m.auds_added, 1);
}

/* The clip as a TS file, read by the real tools. */
static void test_ffprobe_ffmpeg_read_clip(void **state)
{
    (void)state;
    if (system("command -v ffprobe >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1") != 0) {
        print_message("SKIP: ffprobe/ffmpeg not installed, the TS is not checked by a real reader\n");
        skip();
    }
    size_t clip_len;
    uint8_t *clip = read_test_clip(&clip_len);
    assert_non_null(clip);
    gb_ts_mux_t m;
    assert_int_equal(gb_ts_mux_init(&m, GB_CODEC_H264), 0);
    gb_au_reader_t rd;
    gb_au_reader_init(&rd, GB_CODEC_H264, clip, clip_len);
    gb_au_t au;
    size_t off = 0, frames = 0;
    ts_reader_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    reader_init(r);
    while (gb_au_reader_next(&rd, &au)) {
        uint64_t pts = 126000 + frames * 3600;
        long n = gb_ts_mux_frame(&m, out + off, sizeof(out) - off, au.data, au.len, pts, pts, au.key, false);
        assert_true(n > 0);
        reader_feed(r, out + off, (size_t)n);
        off += (size_t)n;
        frames++;
    }
    assert_int_equal(frames, 50);
    assert_true(r->ok);
    assert_int_equal(r->pat, 2); /* one per key frame */
    assert_int_equal(r->rais, 2);
    assert_int_equal(r->video_starts, 50);
    free(r);

    char path[] = "/tmp/cascade_test_mpegts_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, out, off), (ssize_t)off);
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -f mpegts -count_frames -select_streams v -show_entries "
             "stream=codec_name,width,height,r_frame_rate,nb_read_frames -of default=noprint_wrappers=1 %s 2>&1",
             path);
    char text[1024] = "";
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(text, 1, sizeof(text) - 1, p);
    text[n] = '\0';
    pclose(p);
    print_message("ffprobe: %s", text);
    assert_non_null(strstr(text, "codec_name=h264"));
    assert_non_null(strstr(text, "width=320"));
    assert_non_null(strstr(text, "height=240"));
    assert_non_null(strstr(text, "r_frame_rate=25/1"));
    assert_non_null(strstr(text, "nb_read_frames=50"));
    /* ffmpeg copies it with nothing on stderr at -v error. */
    snprintf(cmd, sizeof(cmd), "ffmpeg -nostdin -v error -i %s -c copy -f null - 2>&1", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(text, 1, sizeof(text) - 1, p);
    text[n] = '\0';
    int rc = pclose(p);
    unlink(path);
    if (n) print_message("ffmpeg said: %s", text);
    assert_int_equal(n, 0);
    assert_int_equal(rc, 0);
    free(clip);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_every_length),
        cmocka_unit_test(test_key_frame_extras),
        cmocka_unit_test(test_h265),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_ffprobe_ffmpeg_read_clip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
