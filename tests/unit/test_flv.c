/* test_flv.c — the FLV muxer (src/media/flv.c): the header blob, the clip
 * muxed and read back by an independent tag walker here, by ffprobe and by
 * ffmpeg (whole stream and a late viewer starting at a key frame), parameter
 * set changes, the 33-bit timestamp wrap, composition time (also with a
 * libx264 High profile B-frame clip made at test time), G.711 audio, and
 * H.265 as enhanced-RTMP hvc1 from a clip made with libx265 at test time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/sbuf.h"
#include "clip_testutil.h"
#include "media/flv.h"
#include "media/h264.h"

#define MAX_TAGS 256
#define MAX_AUS 64

/* ---- an FLV reader written from the spec, independent of the muxer ---- */

typedef struct {
    int type;
    uint32_t ts;
    const uint8_t *body;
    size_t len;
} tag_t;

static uint32_t be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | be24(p + 1); }
static int32_t si24(const uint8_t *p) { return (int32_t)(be24(p) << 8) >> 8; }

/* Walks tags (each followed by its PreviousTagSize, which must match) from
 * b; the FLV header first when file. Returns the tag count. */
static size_t walk_tags(const uint8_t *b, size_t n, bool file, tag_t *tags, size_t max)
{
    size_t off = 0, count = 0;
    if (file) {
        assert_true(n >= 13);
        assert_memory_equal(b, "FLV\x01", 4);
        assert_int_equal(be32(b + 5), 9);
        assert_int_equal(be32(b + 9), 0);
        off = 13;
    }
    while (off < n) {
        assert_true(n - off >= 15);
        size_t len = be24(b + off + 1);
        assert_true(n - off >= 15 + len);
        assert_int_equal(be24(b + off + 8), 0); /* stream id */
        assert_int_equal(be32(b + off + 11 + len), 11 + len);
        assert_true(count < max);
        tags[count].type = b[off];
        tags[count].ts = be24(b + off + 4) | (uint32_t)b[off + 7] << 24;
        tags[count].body = b + off + 11;
        tags[count].len = len;
        count++;
        off += 15 + len;
    }
    assert_int_equal(off, n);
    return count;
}

/* Finds a number in the onMetaData ECMA array (keys matched as bytes). */
static bool meta_number(const tag_t *t, const char *key, double *v)
{
    size_t k = strlen(key);
    for (size_t i = 0; i + 2 + k + 9 <= t->len; i++) {
        const uint8_t *p = t->body + i;
        if ((size_t)(p[0] << 8 | p[1]) == k && memcmp(p + 2, key, k) == 0 && p[2 + k] == 0) {
            uint64_t bits = (uint64_t)be32(p + 3 + k) << 32 | be32(p + 7 + k);
            memcpy(v, &bits, sizeof(*v));
            return true;
        }
    }
    return false;
}

/* ---- the clip ---- */

typedef struct {
    const uint8_t *data[MAX_AUS];
    size_t len[MAX_AUS];
    bool key[MAX_AUS];
    size_t count;
} aus_t;

static void split_aus(gb_codec_t codec, const uint8_t *buf, size_t len, aus_t *a)
{
    memset(a, 0, sizeof(*a));
    gb_au_reader_t r;
    gb_au_reader_init(&r, codec, buf, len);
    gb_au_t au;
    while (gb_au_reader_next(&r, &au)) {
        assert_true(a->count < MAX_AUS);
        a->data[a->count] = au.data;
        a->len[a->count] = au.len;
        a->key[a->count] = au.key;
        a->count++;
    }
}

/* The output a live stream keeps: every frame's bytes appended once, and
 * where each key frame starts. */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
    size_t key_off[MAX_AUS];
    size_t keys;
} shared_t;

static void shared_video(shared_t *s, gb_flv_muxer_t *m, const uint8_t *au, size_t len, uint64_t pts, uint64_t dts)
{
    size_t need = gb_flv_video_bound(len);
    if (s->cap - s->len < need) {
        s->cap = (s->cap + need) * 2;
        s->buf = realloc(s->buf, s->cap);
        assert_non_null(s->buf);
    }
    gb_flv_frame_info_t info;
    assert_int_equal(gb_flv_write_video(m, au, len, pts, dts, s->buf + s->len, s->cap - s->len, &info), 0);
    if (info.key && s->keys < MAX_AUS) s->key_off[s->keys++] = s->len;
    s->len += info.len;
}

static void shared_audio(shared_t *s, gb_flv_muxer_t *m, const uint8_t *b, size_t len, uint64_t pts)
{
    if (s->cap - s->len < len + 64) {
        s->cap = (s->cap + len + 64) * 2;
        s->buf = realloc(s->buf, s->cap);
        assert_non_null(s->buf);
    }
    gb_flv_frame_info_t info;
    assert_int_equal(gb_flv_write_audio(m, b, len, pts, s->buf + s->len, s->cap - s->len, &info), 0);
    s->len += info.len;
}

/* Writes header + the shared bytes from off into a temp file; returns its path (free it). */
static char *write_viewer(const gb_flv_muxer_t *m, const shared_t *s, size_t off)
{
    static uint8_t header[GB_FLV_HEADER_MAX];
    int hl = gb_flv_write_header(m, header, sizeof(header));
    assert_true(hl > 0);
    char *path = strdup("/tmp/cascade_test_flv_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, header, (size_t)hl), hl);
    assert_int_equal(write(fd, s->buf + off, s->len - off), (ssize_t)(s->len - off));
    close(fd);
    return path;
}

/* Runs a shell command; its stdout+stderr in out. Returns the exit status. */
static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have_ffmpeg(void)
{
    return system("command -v ffprobe >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1") == 0;
}

/* ffmpeg copies the file to nothing, printing no error. */
static void assert_ffmpeg_copies(const char *path)
{
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd), "ffmpeg -nostdin -v error -i %s -c copy -f null - 2>&1", path);
    int rc = run(cmd, out, sizeof(out));
    if (rc != 0 || out[0]) print_message("ffmpeg said: %s\n", out);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "");
}

/* Runs `ffprobe -v error ARGS PATH`; its stdout+stderr in out. Returns its exit status. */
static int ffprobe(const char *args, const char *path, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "ffprobe -v error %s %s 2>&1", args, path);
    return run(cmd, out, cap);
}

/* The video packets' PTS and DTS as ffprobe reads them from path, in the
 * file's (decode) order; returns how many (at most MAX_AUS). */
static size_t probe_packet_times(const char *path, uint64_t *pts, uint64_t *dts)
{
    static char out[16384];
    assert_int_equal(ffprobe("-select_streams v -show_entries packet=pts,dts -of default=nw=1", path, out, sizeof(out)), 0);
    size_t np = 0, nd = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "pts=", 4) == 0) {
            assert_true(np < MAX_AUS && np == nd);
            pts[np++] = strtoull(line + 4, NULL, 10);
        } else {
            assert_true(strncmp(line, "dts=", 4) == 0 && nd < np);
            dts[nd++] = strtoull(line + 4, NULL, 10);
        }
    }
    assert_int_equal(np, nd);
    return np;
}

/* The header blob of a muxer that has seen its parameter sets, walked: the
 * onMetaData tag then the sequence header, in ht[0] and ht[1] (pointing
 * into h, GB_FLV_HEADER_MAX bytes). */
static void header_tags(const gb_flv_muxer_t *m, uint8_t *h, tag_t ht[2])
{
    int hl = gb_flv_write_header(m, h, GB_FLV_HEADER_MAX);
    assert_true(hl > 13);
    tag_t t[4];
    assert_int_equal(walk_tags(h, (size_t)hl, true, t, 4), 2);
    ht[0] = t[0];
    ht[1] = t[1];
}

/* ---- tests ---- */

static void test_header_before_parameter_sets(void **state)
{
    (void)state;
    gb_flv_muxer_t m;
    gb_flv_config_t bad = {.video = GB_CODEC_UNKNOWN, .audio = GB_FLV_AUDIO_NONE};
    assert_int_equal(gb_flv_muxer_init(&m, &bad), -1);
    bad.audio = 3; /* not G.711 */
    assert_int_equal(gb_flv_muxer_init(&m, &bad), -1);

    gb_flv_config_t cfg = {.video = GB_CODEC_H264, .audio = GB_FLV_AUDIO_PCMA};
    assert_int_equal(gb_flv_muxer_init(&m, &cfg), 0);
    uint8_t h[GB_FLV_HEADER_MAX];
    int n = gb_flv_write_header(&m, h, sizeof(h));
    assert_true(n > 13);
    assert_int_equal(h[4], 0x05); /* audio + video */
    tag_t tags[4];
    assert_int_equal(walk_tags(h, (size_t)n, true, tags, 4), 1); /* onMetaData only */
    assert_int_equal(tags[0].type, 18);
    assert_memory_equal(tags[0].body, "\x02\x00\x0aonMetaData\x08", 14);
    double v;
    assert_true(meta_number(&tags[0], "videocodecid", &v) && v == 7);
    assert_true(meta_number(&tags[0], "audiocodecid", &v) && v == 7);
    assert_true(meta_number(&tags[0], "audiosamplerate", &v) && v == 8000);
    assert_false(meta_number(&tags[0], "width", &v)); /* not known yet */
    /* Too small a buffer is refused. */
    assert_int_equal(gb_flv_write_header(&m, h, 20), -1);

    /* A P frame before any SPS/PPS: nothing to send, counted. */
    static const uint8_t p_frame[] = {0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x03};
    uint8_t out[4096];
    gb_flv_frame_info_t info;
    assert_int_equal(gb_flv_write_video(&m, p_frame, sizeof(p_frame), 0, 0, out, sizeof(out), &info), 0);
    assert_int_equal(info.len, 0);
    assert_int_equal(m.stats.frames_no_params, 1);
    /* A buffer below the bound is refused before anything changes. */
    assert_int_equal(gb_flv_write_video(&m, p_frame, sizeof(p_frame), 0, 0, out, 100, &info), -1);
    /* Audio-only muxers flag audio only and let a viewer start anywhere. */
    gb_flv_config_t ao = {.video = GB_CODEC_UNKNOWN, .audio = GB_FLV_AUDIO_PCMU};
    assert_int_equal(gb_flv_muxer_init(&m, &ao), 0);
    n = gb_flv_write_header(&m, h, sizeof(h));
    assert_int_equal(h[4], 0x04);
    assert_int_equal(gb_flv_write_video(&m, p_frame, sizeof(p_frame), 0, 0, out, sizeof(out), &info), -1);
    static const uint8_t ulaw[160] = {0xFF};
    assert_int_equal(gb_flv_write_audio(&m, ulaw, sizeof(ulaw), 1000, out, sizeof(out), &info), 0);
    assert_true(info.key);
    assert_int_equal(walk_tags(out, info.len, false, tags, 4), 1);
    assert_int_equal(tags[0].type, 8);
    assert_int_equal(tags[0].body[0] >> 4, 8); /* SoundFormat µ-law */
    assert_int_equal(tags[0].body[0] & 1, 0);  /* mono */
    assert_int_equal(tags[0].len, 161);
    assert_int_equal(gb_flv_write_audio(&m, ulaw, 0, 1000, out, sizeof(out), &info), -1);
    assert_int_equal(gb_flv_write_audio(&m, ulaw, sizeof(ulaw), 1000, out, 100, &info), -1);
}

/* The clip through the muxer as a stream would be: pts from 900000, 40 ms
 * apart, 20 ms of A-law every 20 ms. */
static void mux_clip(uint8_t **clip, aus_t *a, gb_flv_muxer_t *m, shared_t *s, bool audio)
{
    size_t clip_len;
    *clip = read_test_clip(&clip_len);
    assert_non_null(*clip);
    split_aus(GB_CODEC_H264, *clip, clip_len, a);
    assert_int_equal(a->count, 50);
    gb_flv_config_t cfg = {.video = GB_CODEC_H264, .audio = audio ? GB_FLV_AUDIO_PCMA : GB_FLV_AUDIO_NONE};
    assert_int_equal(gb_flv_muxer_init(m, &cfg), 0);
    memset(s, 0, sizeof(*s));
    static uint8_t alaw[160];
    memset(alaw, 0xD5, sizeof(alaw)); /* A-law silence */
    for (size_t i = 0; i < a->count; i++) {
        uint64_t pts = 900000 + i * 3600;
        shared_video(s, m, a->data[i], a->len[i], pts, pts);
        if (audio) {
            shared_audio(s, m, alaw, sizeof(alaw), pts);
            shared_audio(s, m, alaw, sizeof(alaw), pts + 1800);
        }
    }
}

static void test_clip_read_back(void **state)
{
    (void)state;
    uint8_t *clip;
    aus_t a;
    gb_flv_muxer_t m;
    shared_t s;
    mux_clip(&clip, &a, &m, &s, false);
    assert_int_equal(m.width, 320);
    assert_int_equal(m.height, 240);
    assert_true(m.fps == 25.0);
    assert_int_equal(m.stats.video_frames, 50);
    assert_int_equal(m.stats.seq_headers, 1);
    assert_int_equal(s.keys, 2);

    static tag_t tags[MAX_TAGS];
    size_t nt = walk_tags(s.buf, s.len, false, tags, MAX_TAGS);
    assert_int_equal(nt, 51); /* sequence header + 50 frames */
    /* avcC: version 1, profile/compat/level from the SPS, 4-byte lengths, the clip's SPS and PPS. */
    const uint8_t *b = tags[0].body;
    assert_int_equal(b[0], 0x17);
    assert_int_equal(b[1], 0);
    gb_nal_t sps = {0}, pps = {0}, n;
    size_t pos = 0;
    while (gb_nal_next(a.data[0], a.len[0], &pos, &n)) {
        if (gb_h264_nal_type(&n) == GB_H264_NAL_SPS) sps = n;
        if (gb_h264_nal_type(&n) == GB_H264_NAL_PPS) pps = n;
    }
    assert_true(sps.len && pps.len);
    const uint8_t *rec = b + 5;
    assert_int_equal(rec[0], 1);
    assert_memory_equal(rec + 1, sps.data + 1, 3);
    assert_int_equal(rec[4], 0xFF);
    assert_int_equal(rec[5], 0xE1);
    assert_int_equal(rec[6] << 8 | rec[7], sps.len);
    assert_memory_equal(rec + 8, sps.data, sps.len);
    const uint8_t *pp = rec + 8 + sps.len;
    assert_int_equal(pp[0], 1);
    assert_int_equal(pp[1] << 8 | pp[2], pps.len);
    assert_memory_equal(pp + 3, pps.data, pps.len);
    assert_int_equal(tags[0].len, 5 + 11 + sps.len + pps.len); /* baseline: no format fields */

    /* Frames: DTS from 0 in 40 ms steps, key flags, no composition offset,
     * the AU's NAL units less SPS/PPS/AUD, 4-byte lengths. */
    for (size_t i = 0; i < 50; i++) {
        const tag_t *t = &tags[i + 1];
        assert_int_equal(t->type, 9);
        assert_int_equal(t->ts, i * 40);
        assert_int_equal(t->body[0], a.key[i] ? 0x17 : 0x27);
        assert_int_equal(t->body[1], 1);
        assert_int_equal(si24(t->body + 2), 0);
        size_t off = 5;
        pos = 0;
        while (gb_nal_next(a.data[i], a.len[i], &pos, &n)) {
            int ty = gb_h264_nal_type(&n);
            if (ty == GB_H264_NAL_SPS || ty == GB_H264_NAL_PPS || ty == GB_H264_NAL_AUD) continue;
            assert_true(off + 4 + n.len <= t->len);
            assert_int_equal(be32(t->body + off), n.len);
            assert_memory_equal(t->body + off + 4, n.data, n.len);
            off += 4 + n.len;
        }
        assert_int_equal(off, t->len);
    }
    /* The header blob: metadata with the size and rate, then the same avcC. */
    uint8_t h[GB_FLV_HEADER_MAX];
    tag_t ht[2];
    header_tags(&m, h, ht);
    double v;
    assert_true(meta_number(&ht[0], "width", &v) && v == 320);
    assert_true(meta_number(&ht[0], "height", &v) && v == 240);
    assert_true(meta_number(&ht[0], "framerate", &v) && v == 25);
    assert_int_equal(ht[1].len, tags[0].len);
    assert_memory_equal(ht[1].body, tags[0].body, tags[0].len);
    assert_int_equal(ht[1].ts, 0);
    free(s.buf);
    free(clip);
}

static void test_ffprobe_and_ffmpeg_read_it(void **state)
{
    (void)state;
    if (!have_ffmpeg()) {
        print_message("SKIP: ffprobe/ffmpeg not installed, the FLV is not checked by them\n");
        skip();
    }
    uint8_t *clip;
    aus_t a;
    gb_flv_muxer_t m;
    shared_t s;
    mux_clip(&clip, &a, &m, &s, true);
    char *path = write_viewer(&m, &s, 0);
    char cmd[512], out[4096];
    assert_int_equal(ffprobe("-count_frames -show_entries stream=codec_name,width,height,avg_frame_rate,nb_read_frames,"
                             "sample_rate,channels -of default=noprint_wrappers=1",
                             path, out, sizeof(out)),
                     0);
    print_message("ffprobe: %s", out);
    assert_non_null(strstr(out, "codec_name=h264"));
    assert_non_null(strstr(out, "width=320"));
    assert_non_null(strstr(out, "height=240"));
    assert_non_null(strstr(out, "avg_frame_rate=25/1"));
    assert_non_null(strstr(out, "nb_read_frames=50"));
    assert_non_null(strstr(out, "codec_name=pcm_alaw"));
    assert_non_null(strstr(out, "sample_rate=8000"));
    assert_non_null(strstr(out, "channels=1"));
    assert_ffmpeg_copies(path);
    unlink(path);
    free(path);

    /* A viewer joining at the second key frame: header blob, then the shared
     * bytes from there. It decodes from its first frame. */
    assert_int_equal(s.keys, 2);
    path = write_viewer(&m, &s, s.key_off[1]);
    assert_int_equal(ffprobe("-count_frames -select_streams v -show_entries stream=codec_name,width,height,nb_read_frames "
                             "-of default=noprint_wrappers=1",
                             path, out, sizeof(out)),
                     0);
    print_message("ffprobe (late viewer): %s", out);
    assert_non_null(strstr(out, "width=320"));
    assert_non_null(strstr(out, "nb_read_frames=25"));
    assert_ffmpeg_copies(path);
    /* And decoding it (not just copying) raises no error either. */
    snprintf(cmd, sizeof(cmd), "ffmpeg -nostdin -v error -i %s -f null - 2>&1", path);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    unlink(path);
    free(path);
    free(s.buf);
    free(clip);
}

static void test_parameter_sets_change(void **state)
{
    (void)state;
    uint8_t *clip;
    aus_t a;
    gb_flv_muxer_t m;
    shared_t s;
    mux_clip(&clip, &a, &m, &s, false);
    uint32_t gen = m.header_gen;
    /* The same parameter sets again: no new sequence header. */
    uint8_t *out = malloc(gb_flv_video_bound(a.len[0]));
    gb_flv_frame_info_t info;
    assert_int_equal(gb_flv_write_video(&m, a.data[0], a.len[0], 900000 + 50 * 3600, 900000 + 50 * 3600, out,
                                        gb_flv_video_bound(a.len[0]), &info),
                     0);
    assert_false(info.seq_header);
    assert_true(info.key);
    assert_int_equal(m.header_gen, gen);
    /* A new PPS (another pic_parameter_set_id byte pattern) alone: a sequence
     * header tag goes out at once, the header blob changes. */
    static const uint8_t pps2[] = {0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0x11};
    assert_int_equal(gb_flv_write_video(&m, pps2, sizeof(pps2), 900000 + 51 * 3600, 900000 + 51 * 3600, out,
                                        gb_flv_video_bound(sizeof(pps2)), &info),
                     0);
    assert_true(info.seq_header);
    assert_false(info.key);
    assert_int_equal(info.ts_ms, 51 * 40);
    assert_int_equal(m.header_gen, gen + 1);
    tag_t t[2];
    assert_int_equal(walk_tags(out, info.len, false, t, 2), 1);
    assert_int_equal(t[0].body[1], 0);
    assert_memory_equal(t[0].body + t[0].len - 5, pps2 + 4, 5);
    uint8_t h[GB_FLV_HEADER_MAX];
    int hl = gb_flv_write_header(&m, h, sizeof(h));
    assert_memory_equal(h + hl - 4 - 5, pps2 + 4, 5);
    /* An oversized parameter set is refused and counted. */
    size_t big_len = GB_FLV_MAX_PARAM + 10;
    uint8_t *big = calloc(1, big_len);
    memcpy(big, "\x00\x00\x01\x68", 4);
    memset(big + 4, 0x55, big_len - 4);
    uint8_t *o2 = malloc(gb_flv_video_bound(big_len));
    assert_int_equal(gb_flv_write_video(&m, big, big_len, 0, 0, o2, gb_flv_video_bound(big_len), &info), 0);
    assert_int_equal(m.stats.params_too_big, 1);
    assert_false(info.seq_header);
    free(o2);
    free(big);
    /* A frame too big for a tag's 24-bit DataSize is dropped, counted. */
    big_len = 4 + 0xFFFFFF;
    big = malloc(big_len);
    memcpy(big, "\x00\x00\x01\x65", 4);
    memset(big + 4, 0x55, big_len - 4);
    o2 = malloc(gb_flv_video_bound(big_len));
    assert_int_equal(gb_flv_write_video(&m, big, big_len, 0, 0, o2, gb_flv_video_bound(big_len), &info), 0);
    assert_int_equal(info.len, 0);
    assert_int_equal(m.stats.frames_too_big, 1);
    free(o2);
    free(big);
    free(out);
    free(s.buf);
    free(clip);
}

static void test_timestamps_wrap_and_composition(void **state)
{
    (void)state;
    gb_flv_muxer_t m;
    gb_flv_config_t cfg = {.video = GB_CODEC_H264, .audio = GB_FLV_AUDIO_PCMA, .fps = 0};
    assert_int_equal(gb_flv_muxer_init(&m, &cfg), 0);
    /* A hand-made SPS without VUI (66, level 30, 320x240) and PPS. */
    static const uint8_t ps[] = {0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0x05, 0x07, 0xe4, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80};
    static const uint8_t idr[] = {0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x10};
    static const uint8_t pfr[] = {0, 0, 1, 0x41, 0x9a, 0x02, 0x03};
    uint8_t out[8192];
    gb_flv_frame_info_t info;
    const uint64_t wrap = 1ull << 33;
    uint64_t start = wrap - 9000; /* 100 ms before the 33-bit wrap */
    assert_int_equal(gb_flv_write_video(&m, ps, sizeof(ps), start, start, out, sizeof(out), &info), 0);
    assert_true(info.seq_header);
    assert_int_equal(m.width, 320);
    assert_int_equal(m.height, 240);
    for (unsigned i = 0; i < 6; i++) {
        uint64_t dts = (start + i * 3600) % wrap;
        uint64_t pts = (dts + 7200) % wrap; /* displayed 80 ms after decoding */
        const uint8_t *f = i == 0 ? idr : pfr;
        size_t fl = i == 0 ? sizeof(idr) : sizeof(pfr);
        assert_int_equal(gb_flv_write_video(&m, f, fl, pts, dts, out, sizeof(out), &info), 0);
        assert_int_equal(info.ts_ms, i * 40);
        tag_t t[1];
        assert_int_equal(walk_tags(out, info.len, false, t, 1), 1);
        assert_int_equal(t[0].ts, i * 40);
        assert_int_equal(si24(t[0].body + 2), 80);
        assert_int_equal(t[0].body[0] >> 4, i == 0 ? 1 : 2);
        /* Audio 20 ms after each frame, on the same timeline. */
        static const uint8_t alaw[80] = {0xD5};
        assert_int_equal(gb_flv_write_audio(&m, alaw, sizeof(alaw), (dts + 1800) % wrap, out, sizeof(out), &info), 0);
        assert_int_equal(info.ts_ms, i * 40 + 20);
        assert_false(info.key);
        assert_int_equal(out[11], 7 << 4 | 2);
    }
    /* The frame rate came from the DTS step (the SPS had no timing). */
    assert_true(m.fps == 25.0);
    /* PTS before DTS (a bad source): a negative SI24, not a huge one. */
    uint64_t dts = (start + 6 * 3600) % wrap, pts = (dts + wrap - 900) % wrap;
    assert_int_equal(gb_flv_write_video(&m, pfr, sizeof(pfr), pts, dts, out, sizeof(out), &info), 0);
    assert_int_equal(si24(out + 11 + 2), -10);
    /* Audio stamped before the stream's start stays at 0. */
    assert_int_equal(gb_flv_write_audio(&m, idr, 4, (start + wrap - 90000) % wrap, out, sizeof(out), &info), 0);
    assert_int_equal(info.ts_ms, 0);
    /* Timestamps past 2^24 ms use the extension byte. */
    for (uint64_t k = 1; k <= 10; k++) /* 2000 s steps: each within the unwrap's half range */
        assert_int_equal(gb_flv_write_audio(&m, idr, 4, (start + k * 2000 * 90000) % wrap, out, sizeof(out), &info), 0);
    assert_int_equal(info.ts_ms, 20000000u);
    assert_int_equal(out[7], 20000000u >> 24);
    assert_int_equal(be24(out + 4), 20000000u & 0xFFFFFF);
}

/* High profile with B-frames, made by libx264 at test time: the avcC carries
 * the format fields, and the DTS/PTS ffprobe reads back from the FLV are the
 * source's (composition time = PTS - DTS). */
static void test_high_profile_b_frames(void **state)
{
    (void)state;
    if (!have_ffmpeg() || system("ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264") != 0) {
        print_message("SKIP: no ffmpeg with libx264, the B-frame clip cannot be made\n");
        skip();
    }
    char ts_path[] = "/tmp/cascade_test_flv_ts_XXXXXX";
    int fd = mkstemp(ts_path);
    assert_true(fd >= 0);
    close(fd);
    char es_path[64], cmd[1024], out[16384];
    snprintf(es_path, sizeof(es_path), "%s.h264", ts_path);
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=320x240:rate=25 -t 2 -c:v libx264 -profile:v high "
             "-bf 2 -g 25 -pix_fmt yuv420p -f mpegts %s 2>&1 && ffmpeg -nostdin -v error -y -i %s -c copy -f h264 %s 2>&1",
             ts_path, ts_path, es_path);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    /* The packets' timestamps, in decode order (the order of the access units). */
    static uint64_t pts[MAX_AUS], dts[MAX_AUS];
    assert_int_equal(probe_packet_times(ts_path, pts, dts), 50);
    size_t len;
    uint8_t *es = read_whole_file(es_path, &len);
    assert_non_null(es);
    aus_t a;
    split_aus(GB_CODEC_H264, es, len, &a);
    assert_int_equal(a.count, 50);
    gb_flv_muxer_t m;
    gb_flv_config_t cfg = {.video = GB_CODEC_H264};
    assert_int_equal(gb_flv_muxer_init(&m, &cfg), 0);
    shared_t s;
    memset(&s, 0, sizeof(s));
    bool reordered = false;
    for (size_t i = 0; i < a.count; i++) {
        shared_video(&s, &m, a.data[i], a.len[i], pts[i], dts[i]);
        reordered |= pts[i] != dts[i];
    }
    assert_true(reordered);
    /* avcC of a High profile SPS: 4:2:0 and 8-bit after the PPS. */
    uint8_t h[GB_FLV_HEADER_MAX];
    tag_t ht[2];
    header_tags(&m, h, ht);
    assert_int_equal(ht[1].body[5 + 1], 100);
    assert_memory_equal(ht[1].body + ht[1].len - 4, "\xFD\xF8\xF8\x00", 4);
    char *path = write_viewer(&m, &s, 0);
    static uint64_t fpts[MAX_AUS], fdts[MAX_AUS];
    assert_int_equal(probe_packet_times(path, fpts, fdts), 50);
    for (size_t i = 0; i < 50; i++) {
        /* FLV time base is 1 ms; the FLV's first DTS is 0. */
        assert_int_equal(fpts[i], (pts[i] - dts[0]) / 90);
        assert_int_equal(fdts[i], (dts[i] - dts[0]) / 90);
    }
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -show_entries stream=profile,has_b_frames -of default=nw=1 %s 2>&1; "
             "ffmpeg -nostdin -v error -i %s -f null - 2>&1",
             path, path);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    print_message("ffprobe (B-frames): %s", out);
    assert_string_equal(out, "profile=High\nhas_b_frames=2\n");
    assert_ffmpeg_copies(path);
    unlink(path);
    free(path);
    unlink(es_path);
    unlink(ts_path);
    free(es);
    free(s.buf);
}

/* ---- H.265 ---- */

static bool make_h265_clip(const char *path)
{
    if (system("ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx265") != 0) return false;
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=320x240:rate=25 -t 2 -c:v libx265 "
             "-x265-params log-level=error:keyint=25:min-keyint=25:bframes=0:scenecut=0 -pix_fmt yuv420p -f hevc %s 2>&1",
             path);
    return run(cmd, out, sizeof(out)) == 0;
}

static void test_h265_enhanced_rtmp(void **state)
{
    (void)state;
    if (!have_ffmpeg()) {
        print_message("SKIP: ffmpeg not installed, no H.265 clip can be made\n");
        skip();
    }
    char clip_path[] = "/tmp/cascade_test_flv_h265_XXXXXX";
    int fd = mkstemp(clip_path);
    assert_true(fd >= 0);
    close(fd);
    if (!make_h265_clip(clip_path)) {
        unlink(clip_path);
        print_message("SKIP: this ffmpeg has no libx265, the H.265 FLV part is skipped\n");
        skip();
    }
    size_t clip_len;
    uint8_t *clip = read_whole_file(clip_path, &clip_len);
    unlink(clip_path);
    assert_non_null(clip);
    aus_t a;
    split_aus(GB_CODEC_H265, clip, clip_len, &a);
    assert_int_equal(a.count, 50);
    gb_flv_muxer_t m;
    gb_flv_config_t cfg = {.video = GB_CODEC_H265, .audio = GB_FLV_AUDIO_NONE};
    assert_int_equal(gb_flv_muxer_init(&m, &cfg), 0);
    shared_t s;
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < a.count; i++) shared_video(&s, &m, a.data[i], a.len[i], 3600 * i, 3600 * i);
    assert_int_equal(m.width, 320);
    assert_int_equal(m.height, 240);
    assert_true(m.fps == 25.0);
    assert_int_equal(s.keys, 2);
    uint8_t h[GB_FLV_HEADER_MAX];
    tag_t ht[2];
    header_tags(&m, h, ht);
    double v;
    assert_true(meta_number(&ht[0], "videocodecid", &v) && v == (double)0x68766331u);
    /* SequenceStart: ExVideoTagHeader key frame, FourCC hvc1, then hvcC. */
    const uint8_t *b = ht[1].body;
    assert_int_equal(b[0], 0x80 | 1 << 4 | 0);
    assert_memory_equal(b + 1, "hvc1", 4);
    const uint8_t *rec = b + 5, *end = ht[1].body + ht[1].len;
    assert_int_equal(rec[0], 1);
    assert_int_equal(rec[1] & 0x1F, 1);   /* Main profile */
    assert_int_equal(rec[16] & 3, 1);     /* 4:2:0 */
    assert_int_equal(rec[21] & 3, 3);     /* 4-byte lengths */
    assert_int_equal(rec[22], 3);         /* VPS, SPS, PPS arrays */
    /* Rebuild an Annex B stream from hvcC and the coded frames. */
    sbuf_t es;
    sbuf_init(&es);
    const uint8_t *p = rec + 23;
    int want_type[3] = {GB_H265_NAL_VPS, GB_H265_NAL_SPS, GB_H265_NAL_PPS};
    for (int i = 0; i < 3; i++) {
        assert_true(end - p >= 5);
        assert_int_equal(p[0] & 0x3F, want_type[i]);
        assert_int_equal(p[1] << 8 | p[2], 1);
        size_t nl = (size_t)(p[3] << 8 | p[4]);
        assert_true((size_t)(end - p) >= 5 + nl);
        sbuf_append(&es, "\x00\x00\x00\x01", 4);
        sbuf_append(&es, p + 5, nl);
        p += 5 + nl;
    }
    assert_true(p == end);
    static tag_t tags[MAX_TAGS];
    size_t nt = walk_tags(s.buf, s.len, false, tags, MAX_TAGS);
    assert_int_equal(nt, 51);
    for (size_t i = 0; i < 50; i++) {
        const tag_t *t = &tags[i + 1];
        assert_int_equal(t->ts, i * 40);
        assert_int_equal(t->body[0], 0x80 | (a.key[i] ? 1 : 2) << 4 | 1); /* CodedFrames */
        assert_memory_equal(t->body + 1, "hvc1", 4);
        assert_int_equal(si24(t->body + 5), 0);
        size_t off = 8;
        while (off < t->len) {
            assert_true(t->len - off >= 4);
            size_t nl = be32(t->body + off);
            assert_true(t->len - off - 4 >= nl);
            int ty = (t->body[off + 4] >> 1) & 0x3F;
            assert_true(ty != GB_H265_NAL_VPS && ty != GB_H265_NAL_SPS && ty != GB_H265_NAL_PPS);
            sbuf_append(&es, "\x00\x00\x00\x01", 4);
            sbuf_append(&es, t->body + off + 4, nl);
            off += 4 + nl;
        }
    }
    char es_path[] = "/tmp/cascade_test_flv_hevc_XXXXXX";
    fd = mkstemp(es_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, es.data, es.len), (ssize_t)es.len);
    close(fd);
    char out[4096];
    assert_int_equal(ffprobe("-f hevc -count_frames -show_entries stream=codec_name,width,height,nb_read_frames "
                             "-of default=noprint_wrappers=1",
                             es_path, out, sizeof(out)),
                     0);
    print_message("ffprobe (hvcC + frames as Annex B): %s", out);
    assert_non_null(strstr(out, "codec_name=hevc"));
    assert_non_null(strstr(out, "width=320"));
    assert_non_null(strstr(out, "height=240"));
    assert_non_null(strstr(out, "nb_read_frames=50"));
    unlink(es_path);
    /* ffmpeg reads enhanced-RTMP FLV from 6.1 on: check it when it can. */
    char *path = write_viewer(&m, &s, 0);
    ffprobe("-show_entries stream=codec_name,width,height -of default=noprint_wrappers=1", path, out, sizeof(out));
    if (strstr(out, "codec_name=hevc")) {
        assert_non_null(strstr(out, "width=320"));
        assert_ffmpeg_copies(path);
    } else {
        print_message("note: this ffprobe does not read enhanced-RTMP FLV (needs FFmpeg >= 6.1); checked above by "
                      "rebuilding the stream instead\n");
    }
    unlink(path);
    free(path);
    sbuf_free(&es);
    free(s.buf);
    free(clip);
}

static void test_garbage_never_overruns(void **state)
{
    (void)state;
    /* Random bytes, with start codes and parameter-set headers sprinkled in,
     * written with exactly the bound as capacity. */
    static uint8_t in[4096], out[8192 + 4096];
    uint32_t x = 12345;
    gb_codec_t codecs[2] = {GB_CODEC_H264, GB_CODEC_H265};
    for (int c = 0; c < 2; c++) {
        gb_flv_muxer_t m;
        gb_flv_config_t cfg = {.video = codecs[c], .audio = GB_FLV_AUDIO_PCMA};
        assert_int_equal(gb_flv_muxer_init(&m, &cfg), 0);
        for (int round = 0; round < 500; round++) {
            size_t len = (size_t)(x % sizeof(in));
            for (size_t i = 0; i < len; i++) {
                x = x * 1103515245 + 12345;
                uint8_t r = (uint8_t)(x >> 16);
                in[i] = r < 40 ? 0 : r < 50 ? 1 : r < 60 ? (uint8_t)(0x60 | (r & 0xF)) : r;
            }
            size_t cap = gb_flv_video_bound(len);
            assert_true(cap <= sizeof(out));
            gb_flv_frame_info_t info;
            assert_int_equal(gb_flv_write_video(&m, in, len, x, x - (x & 0xFF), out, cap, &info), 0);
            assert_true(info.len <= cap);
            if (info.len) walk_tags(out, info.len, false, (tag_t[4]){0}, 4);
            uint8_t h[GB_FLV_HEADER_MAX];
            assert_true(gb_flv_write_header(&m, h, sizeof(h)) > 13);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_before_parameter_sets),
        cmocka_unit_test(test_clip_read_back),
        cmocka_unit_test(test_ffprobe_and_ffmpeg_read_it),
        cmocka_unit_test(test_parameter_sets_change),
        cmocka_unit_test(test_timestamps_wrap_and_composition),
        cmocka_unit_test(test_high_profile_b_frames),
        cmocka_unit_test(test_h265_enhanced_rtmp),
        cmocka_unit_test(test_garbage_never_overruns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
