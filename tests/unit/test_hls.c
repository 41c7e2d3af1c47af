/* test_hls.c — the live HLS segmenter: cuts only at key frames after the
 * target, real durations, ring rotation with rising media sequence,
 * segments that outlive rotation, bounded memory for a camera without key
 * frames, PTS jumps and wrap, and ffprobe/ffmpeg playing the playlist. */
#include <errno.h>
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
#include "media/hls.h"
#include "media/mpegts.h"

#define CLIP_FRAMES 50

typedef struct {
    uint8_t *clip;
    const uint8_t *data[CLIP_FRAMES];
    size_t len[CLIP_FRAMES];
    bool key[CLIP_FRAMES];
} clip_t;

static void load_clip(clip_t *c)
{
    size_t clip_len;
    memset(c, 0, sizeof(*c));
    c->clip = read_test_clip(&clip_len);
    assert_non_null(c->clip);
    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H264, c->clip, clip_len);
    gb_au_t au;
    size_t i = 0;
    while (gb_au_reader_next(&r, &au)) {
        assert_true(i < CLIP_FRAMES);
        c->data[i] = au.data, c->len[i] = au.len, c->key[i] = au.key;
        i++;
    }
    assert_int_equal(i, CLIP_FRAMES); /* key frames at 0 and 25: a 1 s GOP at 25 fps */
    assert_true(c->key[0] && c->key[25]);
}

/* Frames first..first+count-1 of the clip looped, 40 ms apart from pts0.
 * Returns how many pushes completed a segment. */
static unsigned feed(gb_hls_t *h, const clip_t *c, unsigned first, unsigned count, uint64_t pts0)
{
    unsigned done = 0;
    for (unsigned i = first; i < first + count; i++) {
        unsigned f = i % CLIP_FRAMES;
        int rc = gb_hls_push(h, c->data[f], c->len[f], pts0 + (uint64_t)i * 3600, c->key[f]);
        assert_true(rc >= 0);
        if (rc == GB_HLS_SEGMENT_DONE) {
            assert_true(c->key[f]); /* boundaries only at key frames */
            done++;
        }
    }
    return done;
}

/* A segment starts with PAT, PMT, then the video PES of a key frame. */
static void assert_segment_starts_with_key(const gb_hls_segment_t *s)
{
    assert_true(s->len >= 3 * GB_TS_PACKET_SIZE && s->len % GB_TS_PACKET_SIZE == 0);
    assert_memory_equal(s->data, "\x47\x40\x00", 3);
    assert_memory_equal(s->data + 188, "\x47\x50\x00", 3);
    const uint8_t *v = s->data + 376;
    assert_memory_equal(v, "\x47\x41\x00", 3);
    assert_int_equal(v[3] & 0x30, 0x30);
    assert_int_equal(v[5] & 0x50, 0x50); /* random_access_indicator, PCR */
}

static gb_hls_t *new_hls(uint32_t target_ms, unsigned ring, size_t max_bytes)
{
    gb_hls_cfg_t cfg = {.codec = GB_CODEC_H264, .target_ms = target_ms, .ring = ring,
                        .max_segment_bytes = max_bytes, .uri_prefix = "cam7-", .name = "test"};
    gb_hls_t *h = gb_hls_new(&cfg);
    assert_non_null(h);
    return h;
}

/* 10 s of the clip, 1 s target, 1 s GOP: one segment per GOP, each 1.000 s,
 * the ring keeps the last 6, the media sequence follows. */
static void test_segments_and_playlist(void **state)
{
    (void)state;
    clip_t c;
    load_clip(&c);
    gb_hls_t *h = new_hls(0, 0, 0);
    sbuf_t pl;
    sbuf_init(&pl);
    assert_int_equal(gb_hls_playlist(h, &pl), 0); /* nothing yet */
    assert_int_equal(pl.len, 0);
    assert_int_equal(feed(h, &c, 0, 250, 900000), 9);
    const gb_hls_stats_t *st = gb_hls_stats(h);
    assert_int_equal(st->segments, 9);
    assert_int_equal(st->frames_muxed, 250);
    assert_int_equal(st->cuts, 0);
    uint64_t first, last;
    assert_true(gb_hls_seq_range(h, &first, &last));
    assert_int_equal(first, 3);
    assert_int_equal(last, 8);
    for (uint64_t q = first; q <= last; q++) {
        gb_hls_segment_t *s = gb_hls_segment_ref(h, q);
        assert_non_null(s);
        assert_int_equal(s->seq, q);
        assert_int_equal(s->duration, 90000);
        assert_int_equal(s->frames, 25);
        assert_int_equal(s->start_pts, 900000 + q * 90000);
        assert_false(s->discontinuity || s->cut);
        assert_segment_starts_with_key(s);
        gb_hls_segment_unref(s);
    }
    assert_null(gb_hls_segment_ref(h, 2)); /* rotated out */
    assert_null(gb_hls_segment_ref(h, 9)); /* still being built */
    assert_int_equal(gb_hls_playlist(h, &pl), 6);
    sbuf_append_char(&pl, '\0');
    const char *want = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:3\n"
                       "#EXT-X-INDEPENDENT-SEGMENTS\n"
                       "#EXTINF:1.000,\ncam7-3.ts\n#EXTINF:1.000,\ncam7-4.ts\n#EXTINF:1.000,\ncam7-5.ts\n"
                       "#EXTINF:1.000,\ncam7-6.ts\n#EXTINF:1.000,\ncam7-7.ts\n#EXTINF:1.000,\ncam7-8.ts\n";
    assert_string_equal(pl.data, want);
    /* One more GOP: the sequence rises by one. */
    assert_int_equal(feed(h, &c, 250, 25, 900000), 1);
    assert_true(gb_hls_seq_range(h, &first, &last));
    assert_int_equal(first, 4);
    assert_int_equal(last, 9);
    uint64_t seq;
    assert_true(gb_hls_parse_uri(h, "cam7-42.ts", 10, &seq));
    assert_int_equal(seq, 42);
    assert_false(gb_hls_parse_uri(h, "cam7-.ts", 8, &seq));
    assert_false(gb_hls_parse_uri(h, "cam8-42.ts", 10, &seq));
    assert_false(gb_hls_parse_uri(h, "cam7-4x.ts", 10, &seq));
    assert_false(gb_hls_parse_uri(h, "cam7-42.m4s", 11, &seq));
    sbuf_free(&pl);
    gb_hls_free(h);
    free(c.clip);
}

/* A recording that ends: the half-built segment is completed (its last
 * frame lasting one frame length), the playlist closes with ENDLIST and,
 * holding every segment since the first, says VOD; nothing more goes in. */
static void test_end_makes_the_playlist_final(void **state)
{
    (void)state;
    clip_t c;
    load_clip(&c);
    gb_hls_t *h = new_hls(0, 32, 0);
    assert_int_equal(feed(h, &c, 0, 60, 0), 2); /* 2 s done, 10 frames being built */
    assert_false(gb_hls_ended(h));
    assert_int_equal(gb_hls_end(h), 3);
    assert_true(gb_hls_ended(h));
    assert_int_equal(gb_hls_end(h), 3); /* again: nothing changes */
    gb_hls_segment_t *s = gb_hls_segment_ref(h, 2);
    assert_non_null(s);
    assert_int_equal(s->frames, 10);
    assert_int_equal(s->duration, 10 * 3600);
    assert_segment_starts_with_key(s);
    gb_hls_segment_unref(s);
    assert_int_equal(gb_hls_push(h, c.data[0], c.len[0], 60 * 3600, true), -EPIPE);
    sbuf_t pl;
    sbuf_init(&pl);
    assert_int_equal(gb_hls_playlist(h, &pl), 3);
    sbuf_append_char(&pl, '\0');
    const char *want = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
                       "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
                       "#EXTINF:1.000,\ncam7-0.ts\n#EXTINF:1.000,\ncam7-1.ts\n#EXTINF:0.400,\ncam7-2.ts\n"
                       "#EXT-X-ENDLIST\n";
    assert_string_equal(pl.data, want);
    sbuf_free(&pl);
    gb_hls_free(h);

    /* Some segments rotated out: final, but not the whole recording. */
    h = new_hls(0, 3, 0);
    assert_int_equal(feed(h, &c, 0, 150, 0), 5);
    assert_int_equal(gb_hls_end(h), 3);
    sbuf_init(&pl);
    assert_int_equal(gb_hls_playlist(h, &pl), 3);
    sbuf_append_char(&pl, '\0');
    assert_null(strstr(pl.data, "PLAYLIST-TYPE"));
    assert_non_null(strstr(pl.data, "#EXT-X-MEDIA-SEQUENCE:3\n"));
    assert_non_null(strstr(pl.data, "cam7-5.ts\n#EXT-X-ENDLIST\n"));
    sbuf_free(&pl);
    gb_hls_free(h);

    /* Ended before any key frame: nothing to list. */
    h = new_hls(0, 0, 0);
    assert_int_equal(feed(h, &c, 1, 20, 0), 0);
    assert_int_equal(gb_hls_end(h), 0);
    sbuf_init(&pl);
    assert_int_equal(gb_hls_playlist(h, &pl), 0);
    sbuf_free(&pl);
    gb_hls_free(h);
    free(c.clip);
}

/* Frames before the first key frame are dropped; a longer target takes
 * several GOPs; the target duration follows the longest segment. */
static void test_start_and_target(void **state)
{
    (void)state;
    clip_t c;
    load_clip(&c);
    gb_hls_t *h = new_hls(1500, 3, 0);
    /* Start mid-GOP (frame 10): 15 frames wait for the key frame at 25. */
    for (unsigned i = 10; i < 25; i++)
        assert_int_equal(gb_hls_push(h, c.data[i], c.len[i], (uint64_t)i * 3600, c.key[i]), GB_HLS_WAIT_KEY);
    assert_int_equal(gb_hls_stats(h)->frames_waiting_key, 15);
    assert_int_equal(feed(h, &c, 25, 300, 0), 5); /* 1.5 s -> cut at the 2 s key frame */
    gb_hls_segment_t *s = gb_hls_segment_ref(h, 4);
    assert_non_null(s);
    assert_int_equal(s->duration, 180000);
    assert_int_equal(s->frames, 50);
    gb_hls_segment_unref(s);
    assert_int_equal(gb_hls_target_duration(h), 2);
    sbuf_t pl;
    sbuf_init(&pl);
    assert_int_equal(gb_hls_playlist(h, &pl), 3);
    sbuf_append_char(&pl, '\0');
    assert_non_null(strstr(pl.data, "#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n"));
    assert_non_null(strstr(pl.data, "#EXTINF:2.000,\ncam7-4.ts\n"));
    sbuf_free(&pl);
    gb_hls_free(h);
    free(c.clip);
}

/* A segment held by a viewer keeps its bytes after rotation and after the
 * segmenter is gone. */
static void test_segment_outlives_rotation(void **state)
{
    (void)state;
    clip_t c;
    load_clip(&c);
    gb_hls_t *h = new_hls(0, 3, 0);
    feed(h, &c, 0, 50, 0);
    gb_hls_segment_t *s = gb_hls_segment_ref(h, 0);
    assert_non_null(s);
    size_t len = s->len;
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, s->data, len);
    feed(h, &c, 50, 200, 0); /* 8 more segments: 0 left the ring long ago */
    assert_null(gb_hls_segment_ref(h, 0));
    assert_int_equal(s->seq, 0);
    assert_int_equal(s->len, len);
    assert_memory_equal(s->data, copy, len);
    gb_hls_segment_t *t = gb_hls_segment_ref(h, 7);
    assert_non_null(t);
    gb_hls_free(h);
    assert_memory_equal(s->data, copy, len);
    assert_int_equal(t->seq, 7);
    assert_segment_starts_with_key(t);
    gb_hls_segment_unref(s);
    gb_hls_segment_unref(t);
    free(copy);
    free(c.clip);
}

/* A camera that sends one key frame and then none: the segment is cut at
 * its byte cap, later frames are dropped until a key frame, memory stays
 * bounded however long it goes on. */
static void test_no_key_frames_stay_bounded(void **state)
{
    (void)state;
    const size_t cap = 256 << 10;
    gb_hls_t *h = new_hls(0, 3, cap);
    static uint8_t au[20000];
    memcpy(au, "\x00\x00\x00\x01\x65\x88", 6);
    for (size_t i = 6; i < sizeof(au); i++) au[i] = (uint8_t)(i * 7 | 1);
    assert_int_equal(gb_hls_push(h, au, sizeof(au), 0, true), GB_HLS_QUEUED);
    au[4] = 0x41;
    unsigned cuts = 0, waits = 0;
    for (unsigned i = 1; i < 5000; i++) {
        int rc = gb_hls_push(h, au, sizeof(au), (uint64_t)i * 3600, false);
        assert_true(rc == GB_HLS_QUEUED || rc == GB_HLS_CUT || rc == GB_HLS_WAIT_KEY);
        cuts += rc == GB_HLS_CUT, waits += rc == GB_HLS_WAIT_KEY;
    }
    assert_int_equal(cuts, 1);
    assert_true(waits > 4900);
    const gb_hls_stats_t *st = gb_hls_stats(h);
    assert_int_equal(st->cuts, 1);
    assert_true(st->bytes <= cap);
    gb_hls_segment_t *s = gb_hls_segment_ref(h, 0);
    assert_non_null(s);
    assert_true(s->cut);
    assert_true(s->len <= cap);
    assert_true(s->cap <= cap);
    assert_int_equal(s->duration, (uint64_t)s->frames * 3600); /* the last frame counted too */
    gb_hls_segment_unref(s);
    /* The next key frame starts over. */
    au[4] = 0x65;
    assert_int_equal(gb_hls_push(h, au, sizeof(au), 5000 * 3600, true), GB_HLS_QUEUED);
    assert_int_equal(gb_hls_push(h, au, sizeof(au), 5025 * 3600, true), GB_HLS_SEGMENT_DONE);
    uint64_t first, last;
    assert_true(gb_hls_seq_range(h, &first, &last));
    assert_int_equal(last, 1);
    /* A single frame over the cap is dropped, never half-written. */
    uint8_t *big = calloc(1, cap);
    assert_non_null(big);
    memcpy(big, "\x00\x00\x00\x01\x65", 5);
    assert_int_equal(gb_hls_push(h, big, cap, 5050 * 3600, true), GB_HLS_CUT);
    assert_int_equal(gb_hls_stats(h)->frames_too_big, 1);
    free(big);
    /* A stream with no key frame at all holds nothing. */
    gb_hls_t *h2 = new_hls(0, 3, cap);
    for (unsigned i = 0; i < 1000; i++)
        assert_int_equal(gb_hls_push(h2, au + 6, 1000, (uint64_t)i * 3600, false), GB_HLS_WAIT_KEY);
    sbuf_t pl;
    sbuf_init(&pl);
    assert_int_equal(gb_hls_playlist(h2, &pl), 0);
    assert_int_equal(gb_hls_stats(h2)->bytes, 0);
    assert_int_equal(gb_hls_push(h2, au, 0, 0, true), -EINVAL);
    sbuf_free(&pl);
    gb_hls_free(h2);
    gb_hls_free(h);
}

/* A PTS jump backwards ends the segment; the next one is marked
 * discontinuous, and the discontinuity sequence counts it once it leaves.
 * A wrap of the 33-bit PTS is not a jump. */
static void test_pts_jump_and_wrap(void **state)
{
    (void)state;
    clip_t c;
    load_clip(&c);
    gb_hls_t *h = new_hls(0, 3, 0);
    uint64_t wrap = (1ull << 33) - 30 * 3600; /* wraps inside the second GOP */
    assert_int_equal(feed(h, &c, 0, 75, wrap), 2);
    gb_hls_segment_t *s = gb_hls_segment_ref(h, 1);
    assert_non_null(s);
    assert_int_equal(s->duration, 90000);
    gb_hls_segment_unref(s);
    assert_int_equal(gb_hls_stats(h)->pts_jumps, 0);
    /* Camera restart: the PTS leaps (frame 80 of the loop, mid-GOP). */
    const uint64_t other = 1ull << 32;
    assert_int_equal(feed(h, &c, 75, 5, wrap), 1);
    assert_int_equal(gb_hls_push(h, c.data[30], c.len[30], other + 80 * 3600, false), GB_HLS_CUT);
    assert_int_equal(gb_hls_stats(h)->pts_jumps, 1);
    assert_int_equal(feed(h, &c, 81, 19, other), 0); /* waits for the key frame at 100 */
    assert_int_equal(feed(h, &c, 100, 50, other), 1);
    s = gb_hls_segment_ref(h, 3);
    assert_non_null(s);
    assert_true(s->cut);
    assert_int_equal(s->frames, 5);
    assert_int_equal(s->duration, 5 * 3600);
    gb_hls_segment_unref(s);
    s = gb_hls_segment_ref(h, 4);
    assert_non_null(s);
    assert_true(s->discontinuity);
    assert_int_equal(s->start_pts, other + 100 * 3600);
    gb_hls_segment_unref(s);
    sbuf_t pl;
    sbuf_init(&pl);
    gb_hls_playlist(h, &pl);
    sbuf_append_char(&pl, '\0');
    assert_non_null(strstr(pl.data, "#EXTINF:0.200,\ncam7-3.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1.000,\ncam7-4.ts\n"));
    assert_null(strstr(pl.data, "DISCONTINUITY-SEQUENCE"));
    assert_int_equal(feed(h, &c, 150, 100, other), 4);
    sbuf_clear(&pl);
    gb_hls_playlist(h, &pl);
    sbuf_append_char(&pl, '\0');
    assert_non_null(strstr(pl.data, "#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
    assert_null(strstr(pl.data, "#EXT-X-DISCONTINUITY\n"));
    sbuf_free(&pl);
    gb_hls_free(h);
    free(c.clip);
}

static size_t run_capture(const char *cmd, char *text, size_t cap, int *rc)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(text, 1, cap - 1, p);
    text[n] = '\0';
    *rc = pclose(p);
    return n;
}

static bool have_ffmpeg(void)
{
    if (system("command -v ffprobe >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1") == 0) return true;
    print_message("SKIP: ffprobe/ffmpeg not installed, the playlist is not played by a real reader\n");
    return false;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* The playlist, segments (and fMP4 init segment) on disk, as an HTTP server
 * would serve them: ffprobe reads the stream as want (codec, 320x240,
 * 25 fps), ffmpeg copies 5 s = 125 frames without an error. */
static void play_from_disk(gb_hls_t *h, bool fmp4, const char *want_codec)
{
    char dir[] = "/tmp/cascade_test_hls_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    const char *ext = fmp4 ? "m4s" : "ts";
    uint64_t first, last;
    assert_true(gb_hls_seq_range(h, &first, &last));
    for (uint64_t q = first; q <= last; q++) {
        gb_hls_segment_t *s = gb_hls_segment_ref(h, q);
        assert_non_null(s);
        snprintf(path, sizeof(path), "%s/cam7-%llu.%s", dir, (unsigned long long)q, ext);
        write_file(path, s->data, s->len);
        gb_hls_segment_unref(s);
    }
    if (fmp4) {
        gb_hls_segment_t *init = gb_hls_init_ref(h);
        assert_non_null(init);
        snprintf(path, sizeof(path), "%s/cam7-init.mp4", dir);
        write_file(path, init->data, init->len);
        gb_hls_segment_unref(init);
    }
    sbuf_t pl;
    sbuf_init(&pl);
    assert_int_equal(gb_hls_playlist(h, &pl), 6);
    snprintf(path, sizeof(path), "%s/live.m3u8", dir);
    write_file(path, pl.data, pl.len);

    char cmd[768], text[2048];
    int rc;
    /* A live playlist: start at its first segment, or the reader waits at the live edge for more. */
    snprintf(cmd, sizeof(cmd),
             "timeout 60 ffprobe -v error -live_start_index 0 -select_streams v -show_entries "
             "stream=codec_name,codec_tag_string,width,height,r_frame_rate -of default=noprint_wrappers=1 %s 2>&1",
             path);
    run_capture(cmd, text, sizeof(text), &rc);
    print_message("ffprobe: %s", text);
    assert_int_equal(rc, 0);
    char want[64];
    snprintf(want, sizeof(want), "codec_name=%s\n", want_codec);
    assert_non_null(strstr(text, want));
    if (fmp4 && strcmp(want_codec, "hevc") == 0) assert_non_null(strstr(text, "codec_tag_string=hvc1"));
    assert_non_null(strstr(text, "width=320"));
    assert_non_null(strstr(text, "height=240"));
    assert_non_null(strstr(text, "r_frame_rate=25/1"));
    snprintf(cmd, sizeof(cmd),
             "timeout 60 ffmpeg -nostdin -v error -live_start_index 0 -i %s -t 5 -c copy -f null - 2>&1", path);
    size_t n = run_capture(cmd, text, sizeof(text), &rc);
    if (n) print_message("ffmpeg said: %s", text);
    assert_int_equal(n, 0);
    assert_int_equal(rc, 0);
    snprintf(cmd, sizeof(cmd),
             "timeout 60 ffmpeg -nostdin -v info -live_start_index 0 -i %s -t 5 -c copy -f null - 2>&1 | "
             "grep -o 'frame= *[0-9]*' | tail -1",
             path);
    run_capture(cmd, text, sizeof(text), &rc);
    print_message("ffmpeg copied: %s", text);
    assert_non_null(strstr(text, "125"));

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    sbuf_free(&pl);
}

static void test_ffmpeg_plays_playlist(void **state)
{
    (void)state;
    if (!have_ffmpeg()) skip();
    clip_t c;
    load_clip(&c);
    gb_hls_t *h = new_hls(0, 0, 0);
    feed(h, &c, 0, 250, 8589000000ull); /* 10 s, across the 33-bit wrap as well */
    play_from_disk(h, false, "h264");
    gb_hls_free(h);
    free(c.clip);
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* fMP4 with H.264: init segment (ftyp, moov), each segment one moof + mdat
 * whose tfdt continues where the previous segment ended. */
static void test_fmp4_h264(void **state)
{
    (void)state;
    clip_t c;
    load_clip(&c);
    gb_hls_cfg_t cfg = {.codec = GB_CODEC_H264, .format = GB_HLS_FMP4, .uri_prefix = "cam7-"};
    gb_hls_t *h = gb_hls_new(&cfg);
    assert_non_null(h);
    gb_hls_segment_t *init = gb_hls_init_ref(h);
    assert_null(init);
    /* No parameter sets in the key frame: no init, no segment. */
    static const uint8_t bare[] = {0, 0, 0, 1, 0x65, 0x88, 0x84};
    assert_int_equal(gb_hls_push(h, bare, sizeof(bare), 0, true), GB_HLS_WAIT_KEY);
    assert_null(gb_hls_init_ref(h));
    /* Parameter sets alone, flagged key: no segment without the IDR slice. */
    size_t pos = 0, idr_at = 0;
    gb_nal_t nal;
    while (gb_nal_next(c.data[0], c.len[0], &pos, &nal))
        if (gb_h264_nal_type(&nal) == GB_H264_NAL_IDR) idr_at = (size_t)(nal.start - c.data[0]);
    assert_true(idr_at > 0);
    assert_int_equal(gb_hls_push(h, c.data[0], idr_at, 0, true), GB_HLS_WAIT_KEY);
    uint64_t first, last;
    assert_false(gb_hls_seq_range(h, &first, &last));
    assert_null(gb_hls_init_ref(h));
    assert_int_equal(feed(h, &c, 0, 250, 3600), 9);
    init = gb_hls_init_ref(h);
    assert_non_null(init);
    assert_memory_equal(init->data + 4, "ftyp", 4);
    assert_memory_equal(init->data + be32(init->data) + 4, "moov", 4);
    assert_non_null(memmem(init->data, init->len, "avcC", 4));
    gb_hls_segment_unref(init);
    uint64_t prev_end = 0;
    for (uint64_t q = 3; q <= 8; q++) {
        gb_hls_segment_t *s = gb_hls_segment_ref(h, q);
        assert_non_null(s);
        assert_int_equal(s->duration, 90000);
        assert_memory_equal(s->data + 4, "moof", 4);
        uint32_t moof = be32(s->data);
        assert_memory_equal(s->data + moof + 4, "mdat", 4);
        assert_int_equal(moof + be32(s->data + moof), s->len);
        assert_int_equal(be32(s->data + 20), q + 1); /* mfhd sequence_number */
        const uint8_t *tfdt = memmem(s->data, moof, "tfdt", 4);
        assert_non_null(tfdt);
        uint64_t base = (uint64_t)be32(tfdt + 8) << 32 | be32(tfdt + 12);
        assert_int_equal(base, s->start_pts);
        if (prev_end) assert_int_equal(base, prev_end);
        prev_end = base + s->duration;
        const uint8_t *trun = memmem(s->data, moof, "trun", 4);
        assert_non_null(trun);
        assert_int_equal(be32(trun + 8), 25); /* samples */
        assert_int_equal(be32(trun + 24), 0x02000000); /* the first is a sync sample */
        gb_hls_segment_unref(s);
    }
    sbuf_t pl;
    sbuf_init(&pl);
    assert_int_equal(gb_hls_playlist(h, &pl), 6);
    sbuf_append_char(&pl, '\0');
    assert_non_null(strstr(pl.data, "#EXT-X-VERSION:7\n"));
    assert_non_null(strstr(pl.data, "#EXT-X-MAP:URI=\"cam7-init.mp4\"\n#EXTINF:1.000,\ncam7-3.m4s\n"));
    uint64_t seq;
    assert_true(gb_hls_parse_uri(h, "cam7-8.m4s", 10, &seq));
    assert_int_equal(seq, 8);
    assert_false(gb_hls_parse_uri(h, "cam7-8.ts", 9, &seq));
    sbuf_free(&pl);
    if (have_ffmpeg()) play_from_disk(h, true, "h264");
    gb_hls_free(h);
    free(c.clip);
}

/* H.265 (the reason for fMP4): a clip made by libx265 at test time, played
 * from fMP4 (hvc1) and from TS (stream_type 0x24). */
static void test_h265_fmp4_and_ts(void **state)
{
    (void)state;
    if (!have_ffmpeg()) skip();
    char path[] = "/tmp/cascade_test_h265_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=320x240:rate=25 -t 2 -c:v libx265 "
             "-x265-params keyint=25:min-keyint=25:bframes=0:log-level=error -f hevc %s 2>/dev/null",
             path);
    if (system(cmd) != 0) {
        unlink(path);
        print_message("SKIP: this ffmpeg cannot encode H.265 (libx265), no H.265 clip to segment\n");
        skip();
    }
    size_t len;
    uint8_t *clip = read_whole_file(path, &len);
    unlink(path);
    assert_non_null(clip);
    clip_t c;
    memset(&c, 0, sizeof(c));
    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H265, clip, len);
    gb_au_t au;
    size_t n = 0;
    while (gb_au_reader_next(&r, &au) && n < CLIP_FRAMES) c.data[n] = au.data, c.len[n] = au.len, c.key[n] = au.key, n++;
    assert_int_equal(n, CLIP_FRAMES);
    assert_true(c.key[0] && c.key[25]);
    for (int fmt = 0; fmt < 2; fmt++) {
        gb_hls_cfg_t cfg = {.codec = GB_CODEC_H265, .format = fmt ? GB_HLS_FMP4 : GB_HLS_TS, .uri_prefix = "cam7-"};
        gb_hls_t *h = gb_hls_new(&cfg);
        assert_non_null(h);
        assert_int_equal(feed(h, &c, 0, 250, 3600), 9);
        play_from_disk(h, fmt == 1, "hevc");
        gb_hls_free(h);
    }
    free(clip);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segments_and_playlist),
        cmocka_unit_test(test_start_and_target),
        cmocka_unit_test(test_end_makes_the_playlist_final),
        cmocka_unit_test(test_segment_outlives_rotation),
        cmocka_unit_test(test_no_key_frames_stay_bounded),
        cmocka_unit_test(test_pts_jump_and_wrap),
        cmocka_unit_test(test_ffmpeg_plays_playlist),
        cmocka_unit_test(test_fmp4_h264),
        cmocka_unit_test(test_h265_fmp4_and_ts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
