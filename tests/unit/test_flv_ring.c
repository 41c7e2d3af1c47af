/* test_flv_ring.c — the HTTP-FLV viewers' ring (src/media/flv_ring.c): a
 * reader that keeps up gets the header and every tag from its key frame on;
 * a reader that falls behind finishes the tag it is in (never half a tag),
 * then resumes at the newest key frame after a sequence header stamped with
 * that frame's time (the FLV header is not sent twice), also when it was
 * still sending its header; a reader about to be overwritten is moved,
 * with the rest of a tag it had begun kept for it.
 * What each reader received is walked as FLV here, and read by ffmpeg when
 * it is installed. The stream: the test clip (50 frames, a key frame every
 * 25) looped with rising timestamps. */
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

#include "clip_testutil.h"
#include "media/flv.h"
#include "media/flv_ring.h"
#include "media/h264.h"

#define MAX_AUS 64
#define MAX_TAGS 4096

static uint32_t be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | be24(p + 1); }

typedef struct {
    int type;
    uint32_t ts;
    const uint8_t *body;
    size_t len;
} tag_t;

/* An FLV file walked from the spec: the header once, then whole tags only,
 * each followed by a PreviousTagSize that matches. Returns the tag count. */
static size_t walk(const uint8_t *b, size_t n, tag_t *tags, size_t max)
{
    assert_true(n >= 13);
    assert_memory_equal(b, "FLV\x01", 4);
    assert_int_equal(be32(b + 5), 9);
    size_t off = 13, count = 0;
    while (off < n) {
        assert_true(n - off >= 15);
        size_t len = be24(b + off + 1);
        assert_true(n - off >= 15 + len);
        assert_true(b[off] == 8 || b[off] == 9 || b[off] == 18);
        assert_int_equal(be32(b + off + 11 + len), 11 + len);
        assert_true(count < max);
        tags[count] = (tag_t){b[off], be24(b + off + 4) | (uint32_t)b[off + 7] << 24, b + off + 11, len};
        count++;
        off += 15 + len;
    }
    assert_int_equal(off, n);
    return count;
}

static bool is_seq(const tag_t *t) { return t->type == 9 && t->len >= 2 && t->body[1] == 0; }
static bool is_key(const tag_t *t) { return t->type == 9 && t->len >= 2 && t->body[1] == 1 && t->body[0] >> 4 == 1; }

/* ---- the stream ---- */

typedef struct {
    uint8_t *clip;
    const uint8_t *data[MAX_AUS];
    size_t len[MAX_AUS];
    size_t count, next;
    uint64_t pts;
    gb_flv_muxer_t m;
    flv_ring_t ring;
    uint8_t tmp[1 << 16];
} stream_t;

static void stream_init(stream_t *s, size_t ring_cap)
{
    memset(s, 0, sizeof(*s));
    size_t n;
    s->clip = read_test_clip(&n);
    assert_non_null(s->clip);
    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H264, s->clip, n);
    gb_au_t au;
    while (gb_au_reader_next(&r, &au) && s->count < MAX_AUS) {
        s->data[s->count] = au.data;
        s->len[s->count++] = au.len;
    }
    assert_int_equal(s->count, 50);
    gb_flv_config_t cfg = {.video = GB_CODEC_H264, .audio = GB_FLV_AUDIO_NONE};
    assert_int_equal(gb_flv_muxer_init(&s->m, &cfg), 0);
    assert_int_equal(flv_ring_init(&s->ring, ring_cap), 0);
    s->pts = 900000;
}

static void stream_free(stream_t *s)
{
    flv_ring_free(&s->ring);
    free(s->clip);
}

/* The next frame into the ring, after protecting the readers (as live.c).
 * Returns what flv_ring_protect said for each reader, ORed: bit 0 moved,
 * bit 1 dead. */
static int feed(stream_t *s, flv_ring_reader_t **rds, int nrd)
{
    size_t i = s->next++ % s->count;
    gb_flv_frame_info_t info;
    assert_true(gb_flv_video_bound(s->len[i]) <= sizeof(s->tmp));
    assert_int_equal(gb_flv_write_video(&s->m, s->data[i], s->len[i], s->pts, s->pts, s->tmp, sizeof(s->tmp), &info), 0);
    s->pts += 3600; /* 25 frames/s */
    int what = 0;
    for (int k = 0; k < nrd; k++) {
        int rc = flv_ring_protect(&s->ring, rds[k], info.len);
        if (rc > 0) what |= 1;
        if (rc < 0) what |= 2;
    }
    flv_ring_append(&s->ring, s->tmp, info.len, info.key, info.ts_ms);
    if (info.key)
        for (int k = 0; k < nrd; k++) flv_ring_reader_on_key(&s->ring, rds[k]);
    return what;
}

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} out_t;

static void out_put(out_t *o, const void *p, size_t n)
{
    if (o->cap - o->len < n) {
        o->cap = (o->cap + n) * 2;
        o->buf = realloc(o->buf, o->cap);
        assert_non_null(o->buf);
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

/* One send of at most budget bytes, as gb_live_peek does it: a lagging
 * reader skips when between tags, else finishes its tag first. Returns the
 * bytes sent. */
static size_t send_some(stream_t *s, flv_ring_reader_t *rd, out_t *o, size_t budget, uint64_t lag_bytes)
{
    bool lagging = flv_ring_lagging(&s->ring, rd, lag_bytes, 0);
    if (lagging && flv_ring_skip(&s->ring, rd)) lagging = false;
    if (rd->pos == FLV_RING_WAIT || !flv_ring_reader_prepare(rd, &s->m)) return 0;
    struct iovec iov[4];
    int k = flv_ring_peek(&s->ring, rd, iov, 4, lagging);
    size_t total = 0;
    for (int i = 0; i < k; i++) total += iov[i].iov_len;
    if (lagging && rd->pos != rd->tag_end) {
        /* only the rest of the tag it is in is offered */
        size_t blob = rd->blob_len - rd->blob_off;
        assert_int_equal(total - blob, rd->tag_end - rd->pos);
    }
    size_t sent = 0;
    for (int i = 0; i < k && sent < budget; i++) {
        size_t c = iov[i].iov_len < budget - sent ? iov[i].iov_len : budget - sent;
        out_put(o, iov[i].iov_base, c);
        sent += c;
    }
    flv_ring_consume(&s->ring, rd, sent);
    return sent;
}

static void write_file(const out_t *o, char *path)
{
    strcpy(path, "/tmp/cascade_test_flv_ring_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, o->buf, o->len), (ssize_t)o->len);
    close(fd);
}

/* ffmpeg decodes the file without an error (skipped when not installed). */
static void assert_ffmpeg_decodes(const out_t *o)
{
    if (system("command -v ffmpeg >/dev/null 2>&1") != 0) return;
    char path[64], cmd[256], out[4096];
    write_file(o, path);
    snprintf(cmd, sizeof(cmd), "ffmpeg -nostdin -v error -i %s -f null - 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(path);
    if (st != 0 || out[0]) print_message("ffmpeg said: %s\n", out);
    assert_int_equal(st, 0);
    assert_string_equal(out, "");
}

/* What a viewer got is playable: the header's sequence header, then a key
 * frame first; after every jump in time a sequence header stamped with the
 * key frame that follows it at once; video time never goes back. Returns
 * the number of sequence headers after the header blob (the skips). */
static size_t assert_playable(const out_t *o)
{
    static tag_t t[MAX_TAGS];
    size_t n = walk(o->buf, o->len, t, MAX_TAGS);
    assert_true(n >= 3);
    assert_int_equal(t[0].type, 18); /* onMetaData */
    assert_true(is_seq(&t[1]));
    size_t first = 2;
    if (is_seq(&t[first])) first++; /* the stream's own first sequence header */
    assert_true(first < n && is_key(&t[first]));
    size_t resends = first - 2;
    uint32_t last = t[first].ts;
    for (size_t i = first + 1; i < n; i++) {
        if (t[i].type != 9) continue;
        if (is_seq(&t[i])) {
            /* a key frame of the same time follows (unless it is the last tag sent) */
            if (i + 1 < n) {
                assert_true(is_key(&t[i + 1]));
                assert_int_equal(t[i].ts, t[i + 1].ts);
            }
            resends++;
            continue;
        }
        assert_true(t[i].ts >= last);
        if (t[i].ts - last > 40) {
            /* a jump: only right after a resent sequence header */
            assert_true(is_seq(&t[i - 1]));
        }
        last = t[i].ts;
    }
    return resends;
}

/* ---- tests ---- */

static void test_keeping_up_gets_every_frame(void **state)
{
    (void)state;
    static stream_t s;
    stream_init(&s, 64 * 1024);
    flv_ring_reader_t rd;
    flv_ring_reader_t *rds[] = {&rd};
    for (int f = 0; f < 30; f++) feed(&s, rds, 0); /* two key frames before the viewer comes */
    flv_ring_reader_init(&s.ring, &rd);
    assert_int_equal(rd.pos, s.ring.key_pos);
    assert_true(rd.pos > 0);
    out_t o = {0};
    uint64_t from = rd.pos;
    for (int f = 0; f < 120; f++) {
        assert_int_equal(feed(&s, rds, 1), 0);
        while (send_some(&s, &rd, &o, 777, 1u << 30)) {
        }
    }
    assert_int_equal(rd.pos, s.ring.head);
    assert_int_equal(rd.tag_end, rd.pos);
    assert_int_equal(rd.skips, 0);
    assert_null(rd.blob); /* freed once sent */
    assert_int_equal(assert_playable(&o), 0);
    /* after the header: exactly the ring's bytes from the key frame on */
    uint8_t hdr[GB_FLV_HEADER_MAX];
    int hl = gb_flv_write_header(&s.m, hdr, sizeof(hdr));
    assert_int_equal(o.len, (size_t)hl + (size_t)(s.ring.head - from));
    assert_memory_equal(o.buf, hdr, (size_t)hl);
    assert_ffmpeg_decodes(&o);
    free(o.buf);
    flv_ring_reader_free(&rd);
    stream_free(&s);
}

static void test_lagging_reader_skips_between_tags(void **state)
{
    (void)state;
    static stream_t s;
    stream_init(&s, 64 * 1024);
    flv_ring_reader_t slow, fast;
    flv_ring_reader_t *rds[] = {&slow, &fast};
    for (int f = 0; f < 30; f++) feed(&s, rds, 0);
    flv_ring_reader_init(&s.ring, &slow);
    flv_ring_reader_init(&s.ring, &fast);
    out_t os = {0}, of = {0};
    int what = 0;
    for (int f = 0; f < 400; f++) {
        what |= feed(&s, rds, 2);
        /* the slow one takes 150 bytes a frame (the clip is ~400 a frame) */
        send_some(&s, &slow, &os, 150, 8 * 1024);
        while (send_some(&s, &fast, &of, 1000, 8 * 1024)) {
        }
    }
    assert_int_equal(what, 0); /* nobody came near being overwritten */
    /* the slow one stopped in the middle of a tag: it finishes it */
    while (slow.pos != slow.tag_end) assert_true(send_some(&s, &slow, &os, 150, 8 * 1024) > 0);
    assert_false(slow.dead);
    assert_true(slow.skips >= 3);
    assert_int_equal(fast.skips, 0);
    assert_int_equal(assert_playable(&os), slow.skips);
    assert_int_equal(assert_playable(&of), 0);
    assert_ffmpeg_decodes(&os);
    assert_ffmpeg_decodes(&of);
    free(os.buf);
    free(of.buf);
    flv_ring_reader_free(&slow);
    flv_ring_reader_free(&fast);
    stream_free(&s);
}

static void test_overwritten_reader_moved(void **state)
{
    (void)state;
    static stream_t s;
    stream_init(&s, 32 * 1024);
    flv_ring_reader_t between, inside;
    flv_ring_reader_t *rds[] = {&between, &inside};
    for (int f = 0; f < 30; f++) feed(&s, rds, 0);
    flv_ring_reader_init(&s.ring, &between);
    flv_ring_reader_init(&s.ring, &inside);
    uint64_t start = between.pos;
    out_t ob = {0}, oi = {0};
    /* between: sends the header and the whole key frame tag, a byte at a
     * time; inside: the header and part of the key frame tag. Then both
     * stall until the ring wraps onto them. */
    do send_some(&s, &between, &ob, 1, 1u << 30);
    while (between.pos == start || between.pos != between.tag_end);
    do send_some(&s, &inside, &oi, 100, 1u << 30);
    while (inside.pos == start || inside.pos == inside.tag_end);
    size_t rest = (size_t)(inside.tag_end - inside.pos);
    int what = 0;
    for (int f = 0; f < 400 && !(between.skips && inside.skips); f++) what |= feed(&s, rds, 2);
    assert_int_equal(what, 1); /* moved, nobody dead */
    assert_false(inside.dead);
    assert_true(between.skips >= 1 && inside.skips >= 1);
    /* the rest of the tag it had begun was kept for it */
    assert_non_null(inside.blob);
    assert_int_equal(inside.blob_len, rest);
    assert_true(inside.resend);
    /* both go on, playable: whole tags, a sequence header before the key
     * frame they resume at */
    for (int f = 0; f < 60; f++) {
        feed(&s, rds, 2);
        while (send_some(&s, &between, &ob, 500, 1u << 30)) {
        }
        while (send_some(&s, &inside, &oi, 500, 1u << 30)) {
        }
    }
    assert_true(assert_playable(&ob) >= 1);
    assert_true(assert_playable(&oi) >= 1);
    assert_ffmpeg_decodes(&ob);
    assert_ffmpeg_decodes(&oi);
    free(ob.buf);
    free(oi.buf);
    flv_ring_reader_free(&between);
    flv_ring_reader_free(&inside);
    stream_free(&s);
}

/* A viewer skipped while its header blob is half sent: the header goes out
 * whole, then the sequence header, then the key frame it was moved to;
 * nothing of the ring in between. */
static void test_skip_during_header(void **state)
{
    (void)state;
    static stream_t s;
    stream_init(&s, 64 * 1024);
    flv_ring_reader_t rd;
    flv_ring_reader_t *rds[] = {&rd};
    for (int f = 0; f < 30; f++) feed(&s, rds, 0);
    flv_ring_reader_init(&s.ring, &rd);
    out_t o = {0};
    assert_int_equal(send_some(&s, &rd, &o, 10, 1u << 30), 10);
    assert_true(rd.blob_off < rd.blob_len);
    uint64_t first_key = rd.pos;
    for (int f = 0; f < 25; f++) feed(&s, rds, 1); /* the next key frame comes */
    assert_true(s.ring.key_pos > first_key);
    while (send_some(&s, &rd, &o, 10, 1024)) {
    }
    assert_int_equal(rd.skips, 1);
    assert_true(rd.pos > first_key);
    assert_int_equal(assert_playable(&o), 1);
    assert_ffmpeg_decodes(&o);
    free(o.buf);
    flv_ring_reader_free(&rd);
    stream_free(&s);
}

static void test_late_reader_waits_for_key(void **state)
{
    (void)state;
    static stream_t s;
    stream_init(&s, 64 * 1024);
    flv_ring_reader_t rd;
    flv_ring_reader_init(&s.ring, &rd); /* nothing in the ring yet */
    assert_int_equal(rd.pos, FLV_RING_WAIT);
    flv_ring_reader_t *rds[] = {&rd};
    out_t o = {0};
    for (int f = 0; f < 60; f++) {
        feed(&s, rds, 1);
        while (send_some(&s, &rd, &o, 4096, 1u << 30)) {
        }
    }
    /* the stream's own first sequence header is in the ring, before its
     * first key frame */
    assert_int_equal(assert_playable(&o), 1);
    assert_ffmpeg_decodes(&o);
    free(o.buf);
    flv_ring_reader_free(&rd);
    stream_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keeping_up_gets_every_frame),
        cmocka_unit_test(test_lagging_reader_skips_between_tags),
        cmocka_unit_test(test_overwritten_reader_moved),
        cmocka_unit_test(test_skip_during_header),
        cmocka_unit_test(test_late_reader_waits_for_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
