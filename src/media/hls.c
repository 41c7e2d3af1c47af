/* hls.c — live HLS segmenter over the TS muxer (see hls.h).
 * Playlist rules: RFC 8216 §4.3.3 (media playlist tags), §6.2.2 (live
 * playlists: segments leave from the front, MEDIA-SEQUENCE rises with them,
 * DISCONTINUITY-SEQUENCE counts the discontinuities that left). */
#include "media/hls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "media/fmp4.h"
#include "media/mpegts.h"

#define HLS_DEFAULT_TARGET_MS 1000
#define HLS_DEFAULT_RING 6
#define HLS_DEFAULT_MAX_BYTES (8u << 20)
#define HLS_MIN_MAX_BYTES (64u << 10)
#define HLS_DEFAULT_MAX_MS 30000
#define HLS_PTS_MASK ((1ull << 33) - 1)
#define HLS_PTS_JUMP (5 * 90000ull) /* a larger step between frames is a new timeline */
#define HLS_DEFAULT_FRAME 3600      /* 40 ms: a frame's length before two PTS were seen */

struct gb_hls {
    gb_hls_cfg_t cfg;
    char prefix[GB_HLS_URI_PREFIX_MAX];
    char name[64];
    gb_ts_mux_t mux;
    gb_hls_segment_t *ring[GB_HLS_RING_MAX]; /* ring[(head + i) % cfg.ring], oldest first */
    unsigned head, count;
    gb_hls_segment_t *cur;   /* being built; NULL while waiting for a key frame */
    gb_hls_segment_t *spare; /* a rotated-out segment kept for its buffer */
    uint64_t next_seq;
    uint64_t discontinuity_seq;
    uint64_t prev_pts, frame_len; /* 90 kHz */
    bool have_prev, pending_discontinuity;
    bool ended;              /* gb_hls_end: the playlist is final */
    unsigned target_s;
    uint64_t dts; /* fMP4: decode time of the last frame, continuous (PTS steps, jumps smoothed) */
    gb_hls_segment_t *init;    /* fMP4 init segment, from the first usable key frame */
    gb_fmp4_sample_t *samples; /* fMP4: the samples of the segment being built */
    size_t nsamples;
    gb_hls_stats_t stats;
};

static void copy_str(char *dst, size_t cap, const char *src, const char *dflt)
{
    snprintf(dst, cap, "%s", src ? src : dflt);
}

gb_hls_t *gb_hls_new(const gb_hls_cfg_t *cfg)
{
    gb_hls_t *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    h->cfg = *cfg;
    if (gb_ts_mux_init(&h->mux, cfg->codec) < 0) {
        free(h);
        return NULL;
    }
    if (!h->cfg.target_ms) h->cfg.target_ms = HLS_DEFAULT_TARGET_MS;
    if (!h->cfg.ring) h->cfg.ring = HLS_DEFAULT_RING;
    if (h->cfg.ring < GB_HLS_RING_MIN) h->cfg.ring = GB_HLS_RING_MIN;
    if (h->cfg.ring > GB_HLS_RING_MAX) h->cfg.ring = GB_HLS_RING_MAX;
    if (!h->cfg.max_segment_bytes) h->cfg.max_segment_bytes = HLS_DEFAULT_MAX_BYTES;
    if (h->cfg.max_segment_bytes < HLS_MIN_MAX_BYTES) h->cfg.max_segment_bytes = HLS_MIN_MAX_BYTES;
    if (!h->cfg.max_segment_ms) h->cfg.max_segment_ms = HLS_DEFAULT_MAX_MS;
    if (h->cfg.max_segment_ms < h->cfg.target_ms) h->cfg.max_segment_ms = h->cfg.target_ms;
    copy_str(h->prefix, sizeof(h->prefix), cfg->uri_prefix, "");
    copy_str(h->name, sizeof(h->name), cfg->name, "hls");
    h->cfg.uri_prefix = h->prefix;
    h->cfg.name = h->name;
    h->frame_len = HLS_DEFAULT_FRAME;
    h->target_s = 1;
    if (h->cfg.format == GB_HLS_FMP4 && !(h->samples = calloc(GB_HLS_MAX_SAMPLES, sizeof(*h->samples)))) {
        free(h);
        return NULL;
    }
    return h;
}

/* ---- segments ---------------------------------------------------------- */

static void segment_destroy(gb_hls_segment_t *s)
{
    free(s->buf);
    free(s);
}

void gb_hls_segment_unref(gb_hls_segment_t *s)
{
    if (s && --s->refs == 0) segment_destroy(s);
}

static gb_hls_segment_t *segment_open(gb_hls_t *h, uint64_t pts)
{
    gb_hls_segment_t *s = h->spare;
    h->spare = NULL;
    if (!s && !(s = calloc(1, sizeof(*s)))) return NULL;
    uint8_t *buf = s->buf;
    size_t cap = s->cap;
    memset(s, 0, sizeof(*s));
    s->buf = buf, s->cap = cap, s->data = buf;
    s->refs = 1; /* the segmenter's */
    s->seq = h->next_seq++;
    s->start_pts = h->cfg.format == GB_HLS_FMP4 ? h->dts : pts;
    h->nsamples = 0;
    s->discontinuity = h->pending_discontinuity;
    h->pending_discontinuity = false;
    return s;
}

/* Rotation: the ring drops its reference to the oldest segment; when nobody
 * else holds it, its buffer is kept for the next segment instead of freed. */
static void ring_drop_oldest(gb_hls_t *h)
{
    gb_hls_segment_t *old = h->ring[h->head];
    h->ring[h->head] = NULL;
    h->head = (h->head + 1) % h->cfg.ring;
    h->count--;
    if (old->discontinuity) h->discontinuity_seq++;
    if (old->refs == 1 && !h->spare) h->spare = old;
    else gb_hls_segment_unref(old);
}

/* Drops the segment being built, its sequence number with it: the ring's
 * numbers stay contiguous (gb_hls_segment_ref() indexes by them). */
static int segment_abandon(gb_hls_t *h, int rc)
{
    gb_hls_segment_t *s = h->cur;
    h->cur = NULL;
    h->next_seq = s->seq;
    h->pending_discontinuity = s->discontinuity;
    h->nsamples = 0;
    gb_hls_segment_unref(s);
    return rc;
}

/* fMP4: moof + mdat header in front of the samples (one move per segment). */
static int fmp4_finish(gb_hls_t *h, gb_hls_segment_t *s)
{
    size_t hl = gb_fmp4_fragment_header_len(h->nsamples);
    if (h->nsamples == 0 || hl == SIZE_MAX || s->len > SIZE_MAX - hl) return -1;
    if (s->cap < s->len + hl) {
        uint8_t *p = realloc(s->buf, s->len + hl);
        if (!p) return -1;
        s->buf = p, s->cap = s->len + hl;
    }
    memmove(s->buf + hl, s->buf, s->len);
    if (gb_fmp4_fragment_header(s->buf, hl, (uint32_t)(s->seq + 1), s->start_pts, h->samples, h->nsamples, s->len) < 0)
        return -1;
    s->len += hl;
    h->nsamples = 0;
    return 0;
}

static void segment_close(gb_hls_t *h, bool cut)
{
    if (h->cfg.format == GB_HLS_FMP4 && fmp4_finish(h, h->cur) < 0) {
        segment_abandon(h, 0); /* nothing playable in it (no slice), or no memory */
        return;
    }
    gb_hls_segment_t *s = h->cur;
    h->cur = NULL;
    s->cut = cut;
    s->data = s->buf;
    if (h->count == h->cfg.ring) ring_drop_oldest(h);
    h->ring[(h->head + h->count) % h->cfg.ring] = s;
    h->count++;
    h->stats.segments++;
    if (cut) h->stats.cuts++;
    uint64_t secs = (s->duration + 89999) / 90000; /* §4.3.3.1: EXTINF rounded <= target */
    if (secs > h->target_s) h->target_s = secs > 3600 ? 3600 : (unsigned)secs;
}

static bool segment_grow(const gb_hls_t *h, gb_hls_segment_t *s, size_t need)
{
    if (s->cap - s->len >= need) return true;
    size_t want = s->cap ? s->cap * 2 : 256u << 10;
    if (want < s->len + need) want = s->len + need;
    if (want > h->cfg.max_segment_bytes) want = h->cfg.max_segment_bytes;
    uint8_t *p = realloc(s->buf, want);
    if (!p) return false;
    s->buf = p, s->data = p, s->cap = want;
    return true;
}

/* ---- frames ------------------------------------------------------------ */

/* The length of the frame before this one, from the PTS step; a jump keeps
 * the last good length and reports itself. */
static uint64_t frame_step(gb_hls_t *h, uint64_t pts, bool *jump)
{
    *jump = false;
    if (!h->have_prev) {
        h->have_prev = true;
        h->prev_pts = pts;
        h->dts = pts;
        return 0;
    }
    uint64_t step = (pts - h->prev_pts) & HLS_PTS_MASK;
    h->prev_pts = pts;
    if (step > HLS_PTS_JUMP) {
        *jump = true;
        h->stats.pts_jumps++;
        step = h->frame_len;
    } else if (step) {
        h->frame_len = step;
    }
    h->dts += step;
    return step;
}

static int cut_segment(gb_hls_t *h, const char *why)
{
    /* The frame that triggered the cut already ended the last one: duration is complete. */
    log_warn_rl("hls %s: segment %llu closed without a key frame (%s) after %u frames, %zu bytes; "
                "waiting for the next key frame",
                h->name, (unsigned long long)h->cur->seq, why, h->cur->frames, h->cur->len);
    segment_close(h, true);
    return GB_HLS_CUT;
}

/* Bytes one more frame may add to the segment being built, framing included. */
static size_t frame_need(const gb_hls_t *h, size_t len)
{
    if (h->cfg.format == GB_HLS_TS) return gb_ts_mux_bound(len);
    size_t hl = gb_fmp4_fragment_header_len(h->nsamples + 1);
    return len > SIZE_MAX / 2 ? SIZE_MAX : gb_fmp4_sample_bound(len) + hl;
}

static bool full(const gb_hls_t *h, size_t need)
{
    return h->cur->len + need > h->cfg.max_segment_bytes ||
           (h->cfg.format == GB_HLS_FMP4 && h->nsamples >= GB_HLS_MAX_SAMPLES);
}

/* fMP4: the init segment from the first key frame that has the parameter sets. */
static bool fmp4_init(gb_hls_t *h, const uint8_t *au, size_t len)
{
    if (h->init) return true;
    sbuf_t b;
    sbuf_init(&b);
    gb_hls_segment_t *s = calloc(1, sizeof(*s));
    if (!s || gb_fmp4_init_segment(&b, h->cfg.codec, au, len, NULL) < 0) {
        free(s);
        sbuf_free(&b);
        return false;
    }
    s->len = s->cap = b.len;
    s->buf = (uint8_t *)sbuf_take(&b);
    s->data = s->buf;
    s->refs = 1;
    h->init = s;
    return true;
}

static long write_frame(gb_hls_t *h, gb_hls_segment_t *s, const uint8_t *au, size_t len, uint64_t pts, bool key,
                        bool fresh)
{
    if (h->cfg.format == GB_HLS_TS)
        return gb_ts_mux_frame(&h->mux, s->buf + s->len, s->cap - s->len, au, len, pts, pts, key, fresh);
    long n = gb_fmp4_sample(s->buf + s->len, s->cap - s->len, h->cfg.codec, au, len);
    if (n > 0) h->samples[h->nsamples++] = (gb_fmp4_sample_t){0, (uint32_t)n, key};
    return n; /* 0: only parameter sets / AUD; the next frame's step lands on the previous sample */
}

/* Ends the segment being built where this frame says so: a PTS jump, the
 * target reached at a key frame, or a cap. Returns the GB_HLS_* so far, or
 * GB_HLS_CUT | DROP when the frame must not go in. */
#define HLS_DROP 0x100
static int close_if_due(gb_hls_t *h, size_t len, bool key, bool jump)
{
    int rc = GB_HLS_QUEUED;
    if (jump && h->cur) {
        segment_close(h, true); /* a new timeline: the next key frame opens a new segment */
        rc = GB_HLS_CUT;
    }
    if (frame_need(h, len) > h->cfg.max_segment_bytes) {
        h->stats.frames_too_big++;
        if (h->cur) return cut_segment(h, "frame above the segment cap") | HLS_DROP;
        return (rc == GB_HLS_CUT ? rc : GB_HLS_WAIT_KEY) | HLS_DROP;
    }
    if (!h->cur) return rc;
    if (key && (h->cur->duration >= (uint64_t)h->cfg.target_ms * 90 || full(h, frame_need(h, len)))) {
        segment_close(h, false);
        return GB_HLS_SEGMENT_DONE;
    }
    if (full(h, frame_need(h, len))) return cut_segment(h, "byte or frame cap") | HLS_DROP;
    if (h->cur->duration >= (uint64_t)h->cfg.max_segment_ms * 90)
        return cut_segment(h, "duration cap") | HLS_DROP;
    return rc;
}

int gb_hls_push(gb_hls_t *h, const uint8_t *au, size_t len, uint64_t pts, bool key)
{
    if (!au || len == 0) return -EINVAL;
    if (h->ended) return -EPIPE;
    h->stats.frames_in++;
    pts &= HLS_PTS_MASK;
    bool jump;
    uint64_t step = frame_step(h, pts, &jump);
    if (h->cur) {
        h->cur->duration += step;
        if (h->nsamples) h->samples[h->nsamples - 1].duration += (uint32_t)step;
    }
    if (jump && h->next_seq > 0) h->pending_discontinuity = true;
    int rc = close_if_due(h, len, key, jump);
    if (rc & HLS_DROP) return rc & ~HLS_DROP;
    bool fresh = false;
    if (!h->cur) {
        /* The flag is the caller's; the IDR/IRAP slice is checked, once per segment. */
        if (!key || !gb_annexb_has_key(h->cfg.codec, au, len) ||
            (h->cfg.format == GB_HLS_FMP4 && !fmp4_init(h, au, len))) {
            h->stats.frames_waiting_key++;
            return rc == GB_HLS_CUT ? rc : GB_HLS_WAIT_KEY;
        }
        if (!(h->cur = segment_open(h, pts))) return -ENOMEM;
        if (rc == GB_HLS_CUT) rc = GB_HLS_SEGMENT_DONE;
        fresh = true;
    }
    gb_hls_segment_t *s = h->cur;
    if (!segment_grow(h, s, frame_need(h, len))) return segment_abandon(h, -ENOMEM);
    long n = write_frame(h, s, au, len, pts, key, fresh);
    if (n < 0) return segment_abandon(h, -EINVAL); /* not expected: room for the bound was made */
    if (n == 0 && fresh) { /* fMP4: nothing but parameter sets / AUD: cannot open a segment */
        h->stats.frames_waiting_key++;
        segment_abandon(h, 0);
        return rc == GB_HLS_SEGMENT_DONE ? rc : GB_HLS_WAIT_KEY;
    }
    s->len += (size_t)n;
    s->frames++;
    h->stats.frames_muxed++;
    h->stats.bytes += (uint64_t)n;
    return rc;
}

/* ---- output ------------------------------------------------------------ */

static const gb_hls_segment_t *ring_at(const gb_hls_t *h, unsigned i)
{
    return h->ring[(h->head + i) % h->cfg.ring];
}

int gb_hls_playlist(const gb_hls_t *h, sbuf_t *out)
{
    if (h->count == 0) return 0;
    bool fmp4 = h->cfg.format == GB_HLS_FMP4;
    /* Version 7 for fMP4 (EXT-X-MAP in a media playlist needs 6, §7), 3 for decimal EXTINF. */
    sbuf_printf(out,
                "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-TARGETDURATION:%u\n#EXT-X-MEDIA-SEQUENCE:%llu\n",
                fmp4 ? 7 : 3, h->target_s, (unsigned long long)ring_at(h, 0)->seq);
    if (h->discontinuity_seq)
        sbuf_printf(out, "#EXT-X-DISCONTINUITY-SEQUENCE:%llu\n", (unsigned long long)h->discontinuity_seq);
    /* Ended with every segment since the first still held: the whole
     * recording, which will not change any more (§4.3.3.5). */
    if (h->ended && ring_at(h, 0)->seq == 0) sbuf_append_cstr(out, "#EXT-X-PLAYLIST-TYPE:VOD\n");
    sbuf_append_cstr(out, "#EXT-X-INDEPENDENT-SEGMENTS\n");
    if (fmp4) sbuf_printf(out, "#EXT-X-MAP:URI=\"%sinit.mp4\"\n", h->prefix);
    for (unsigned i = 0; i < h->count; i++) {
        const gb_hls_segment_t *s = ring_at(h, i);
        uint64_t ms = s->duration / 90;
        if (s->discontinuity) sbuf_append_cstr(out, "#EXT-X-DISCONTINUITY\n");
        sbuf_printf(out, "#EXTINF:%llu.%03u,\n%s%llu.%s\n", (unsigned long long)(ms / 1000), (unsigned)(ms % 1000),
                    h->prefix, (unsigned long long)s->seq, fmp4 ? "m4s" : "ts");
    }
    if (h->ended) sbuf_append_cstr(out, "#EXT-X-ENDLIST\n");
    return out->failed ? -ENOMEM : (int)h->count;
}

int gb_hls_end(gb_hls_t *h)
{
    if (h->ended) return (int)h->count;
    h->ended = true;
    if (h->cur && h->cur->frames) {
        /* Durations come from the next frame's PTS; the last frame has
         * none, so it lasts as long as the one before it. */
        h->cur->duration += h->frame_len;
        if (h->nsamples) h->samples[h->nsamples - 1].duration += (uint32_t)h->frame_len;
        segment_close(h, false);
    } else if (h->cur) {
        segment_abandon(h, 0);
    }
    if (h->spare) { /* nothing will be built any more */
        gb_hls_segment_unref(h->spare);
        h->spare = NULL;
    }
    return (int)h->count;
}

bool gb_hls_ended(const gb_hls_t *h) { return h->ended; }

gb_hls_segment_t *gb_hls_segment_ref(gb_hls_t *h, uint64_t seq)
{
    if (h->count == 0) return NULL;
    uint64_t first = ring_at(h, 0)->seq;
    if (seq < first || seq - first >= h->count) return NULL;
    gb_hls_segment_t *s = h->ring[(h->head + (unsigned)(seq - first)) % h->cfg.ring];
    s->refs++;
    return s;
}

bool gb_hls_seq_range(const gb_hls_t *h, uint64_t *first, uint64_t *last)
{
    if (h->count == 0) return false;
    *first = ring_at(h, 0)->seq;
    *last = ring_at(h, h->count - 1)->seq;
    return true;
}

gb_hls_segment_t *gb_hls_init_ref(gb_hls_t *h)
{
    if (h->init) h->init->refs++;
    return h->init;
}

bool gb_hls_parse_uri(const gb_hls_t *h, const char *name, size_t len, uint64_t *seq)
{
    size_t plen = strlen(h->prefix);
    const char *ext = h->cfg.format == GB_HLS_FMP4 ? ".m4s" : ".ts";
    size_t elen = strlen(ext);
    if (len < plen + elen + 1 || memcmp(name, h->prefix, plen) != 0 || memcmp(name + len - elen, ext, elen) != 0)
        return false;
    uint64_t v = 0;
    size_t digits = len - plen - elen;
    if (digits > 19) return false;
    for (size_t i = plen; i < len - elen; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *seq = v;
    return true;
}

const gb_hls_stats_t *gb_hls_stats(const gb_hls_t *h) { return &h->stats; }

unsigned gb_hls_target_duration(const gb_hls_t *h) { return h->target_s; }

void gb_hls_free(gb_hls_t *h)
{
    if (!h) return;
    while (h->count) {
        gb_hls_segment_t *s = h->ring[h->head];
        h->ring[h->head] = NULL;
        h->head = (h->head + 1) % h->cfg.ring;
        h->count--;
        gb_hls_segment_unref(s);
    }
    if (h->cur) gb_hls_segment_unref(h->cur);
    if (h->spare) gb_hls_segment_unref(h->spare);
    if (h->init) gb_hls_segment_unref(h->init);
    free(h->samples);
    free(h);
}
