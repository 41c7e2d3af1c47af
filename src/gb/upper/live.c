/* live.c — live view of a GB stream over HTTP-FLV (see upper.h, "live
 * view"): the stream's video frames, demultiplexed once from its PS, are
 * packaged once into FLV (media/flv.h) in a byte ring every viewer reads from
 * at its own pace.
 *
 * The ring (media/flv_ring.h) holds the last LIVE_RING bytes; a viewer that
 * joins starts at the newest key frame at once (its first frame decodes: no
 * wait for the next key frame) after a header blob made for it (FLV header,
 * onMetaData, the sequence header). A viewer that falls behind — more than
 * half the ring, or more than [media] flv_max_lag_ms behind the newest
 * frame — finishes the tag it is in and resumes at the newest key frame
 * after the sequence header (counted: flv.skips, gb_upper.flv_skips). A
 * viewer that stalls until the ring wraps onto it is moved the same way (the
 * rest of a tag it had begun is copied out for it); it is ended only when
 * that copy cannot be made (flv.viewers_dropped, gb_upper.flv_dropped).
 *
 * Lifetime: the packaging (struct gb_live) belongs to its stream while the
 * stream lives and is freed with the stream when no viewer reads; a stream
 * that stops first leaves it to its viewers, who drain what is left and get
 * the end. A stream started for live view (gb_live_start) is shared by all
 * viewers of its channel and stopped [gb] live_idle_stop_ms after its last
 * viewer left (or after it started, when nobody came). A playback (or any
 * stream started with play) is read through the same ring but neither
 * shared nor idle-stopped. */
#include "gb/upper/upper_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "media/flv.h"
#include "media/flv_ring.h"

#define LIVE_RING (4u << 20)        /* 4 MiB: > 8 s at 4 Mbit/s, two GOPs of most cameras */
#define LIVE_MAX_FRAME (1u << 20)   /* tags of one frame above this are dropped (a broken stream) */
#define LIVE_LAG_BYTES (LIVE_RING / 2) /* a viewer this far behind resumes at the newest key frame */

struct gb_live_reader {
    struct gb_live *live;
    struct gb_live_reader *prev, *next;
    void (*wake)(void *arg);
    void *arg;
    flv_ring_reader_t rd;
    bool waiting;                   /* read returned 0: wake when bytes arrive */
};

struct gb_live {
    struct gb_upper *g;
    struct gb_stream *stream;       /* NULL once the stream stopped */
    char sid[GB_SSRC_LEN + 1];
    bool muxer_ready;
    gb_flv_muxer_t flv;
    flv_ring_t ring;
    uint8_t *tmp;                   /* one frame's tags before they go into the ring */
    size_t tmp_cap;
    struct gb_live_reader *readers;
    uint32_t nreaders;
    uint64_t frames, frames_dropped, viewers_total, viewers_slow, viewers_skipped, skips;
    uint64_t audio_frames;          /* G.711 tags packaged */
    char end_reason[32];
};

static void live_free(struct gb_live *l)
{
    flv_ring_free(&l->ring);
    free(l->tmp);
    free(l);
}

static struct gb_live *live_get(struct gb_stream *s)
{
    if (s->live) return s->live;
    struct gb_live *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    if (flv_ring_init(&l->ring, LIVE_RING) != 0) {
        free(l);
        return NULL;
    }
    l->g = s->g;
    l->stream = s;
    snprintf(l->sid, sizeof(l->sid), "%s", s->sid);
    s->live = l;
    return l;
}

/* A viewer moved forward: counted, and logged (rate-limited: a stalled
 * network moves many at once). */
static void note_skip(struct gb_live *l, struct gb_live_reader *r, uint64_t behind)
{
    l->skips++;
    l->g->stats.flv_skips++;
    if (r->rd.skips == 1) l->viewers_skipped++;
    log_warn_rl("gb stream %s: a live FLV viewer fell %llu bytes behind: resumes at the newest key frame (skip %u)",
                l->sid, (unsigned long long)behind, r->rd.skips);
}

/* Before n bytes go into the ring: no viewer loses bytes it has not sent. A
 * viewer between two tags is moved to the newest key frame; one that began
 * a tag whose rest would be overwritten is ended. */
static void protect_readers(struct gb_live *l, size_t n)
{
    for (struct gb_live_reader *r = l->readers; r; r = r->next) {
        uint64_t behind = r->rd.pos == FLV_RING_WAIT ? 0 : l->ring.head - r->rd.pos;
        int rc = flv_ring_protect(&l->ring, &r->rd, n);
        if (rc > 0) note_skip(l, r, behind);
        if (rc < 0) {
            l->viewers_slow++;
            l->g->stats.flv_dropped++;
            log_warn_rl("gb stream %s: a live FLV viewer stalled %llu bytes behind in the middle of a tag (its rest "
                        "could not be kept): dropped",
                        l->sid, (unsigned long long)behind);
            r->waiting = true; /* woken below: its read ends it */
        }
    }
}

static void ring_append(struct gb_live *l, const uint8_t *p, size_t n, bool key, uint32_t ts)
{
    protect_readers(l, n);
    flv_ring_append(&l->ring, p, n, key, ts);
    if (key)
        for (struct gb_live_reader *r = l->readers; r; r = r->next) flv_ring_reader_on_key(&l->ring, &r->rd);
}

static void wake_readers(struct gb_live *l)
{
    for (struct gb_live_reader *r = l->readers; r; r = r->next)
        if (r->waiting) {
            r->waiting = false;
            r->wake(r->arg);
        }
}

static bool tmp_reserve(struct gb_live *l, size_t need)
{
    if (need <= l->tmp_cap) return true;
    size_t cap = l->tmp_cap ? l->tmp_cap : 65536;
    while (cap < need) cap *= 2;
    uint8_t *t = realloc(l->tmp, cap);
    if (!t) return false;
    l->tmp = t;
    l->tmp_cap = cap;
    return true;
}

static gb_flv_audio_t flv_audio_of(int stream_type)
{
    return stream_type == GB_PS_STREAM_TYPE_PCMA   ? GB_FLV_AUDIO_PCMA
           : stream_type == GB_PS_STREAM_TYPE_PCMU ? GB_FLV_AUDIO_PCMU
                                                   : GB_FLV_AUDIO_NONE;
}

/* A frame of the stream (play.c's demuxer): packaged once for every viewer. */
void gb_live_on_frame(struct gb_stream *s, const gb_ps_frame_t *f)
{
    gb_live_rtc_on_frame(s, f); /* WebRTC (live_rtc.c) */
    struct gb_live *l = s->live;
    if (!l || !l->nreaders || !f->len) return; /* nobody watches: nothing to package */
    if (!l->muxer_ready) {
        gb_codec_t codec = f->codec == GB_CODEC_H265 ? GB_CODEC_H265 : GB_CODEC_H264;
        /* The audio the PSM lists is packaged too when FLV carries it (G.711). */
        gb_flv_config_t cfg = {.video = codec, .audio = flv_audio_of(f->audio_stream_type), .fps = 0};
        if (gb_flv_muxer_init(&l->flv, &cfg) != 0) return;
        l->muxer_ready = true;
    }
    size_t bound = gb_flv_video_bound(f->len);
    if (bound > LIVE_MAX_FRAME || !tmp_reserve(l, bound)) {
        l->frames_dropped++;
        return;
    }
    gb_flv_frame_info_t info;
    uint64_t pts = f->has_pts ? f->pts : 0;
    if (gb_flv_write_video(&l->flv, f->data, f->len, pts, pts, l->tmp, l->tmp_cap, &info) != 0 || !info.len) {
        l->frames_dropped++;
        return;
    }
    /* Viewers waiting for a key frame start at this one. */
    ring_append(l, l->tmp, info.len, info.key, info.ts_ms);
    l->frames++;
    wake_readers(l);
}

/* An audio PES of the stream (play.c's demuxer): once the FLV muxer was
 * made (at the first video frame, from the PSM) with this G.711 law, its
 * samples become one audio tag in the ring. Viewers start at a key frame,
 * so audio between two video frames reaches those already reading. */
void gb_live_on_audio(struct gb_stream *s, const gb_ps_audio_t *a)
{
    gb_live_rtc_on_audio(s, a); /* WebRTC (live_rtc.c) */
    struct gb_live *l = s->live;
    if (!l || !l->nreaders || !l->muxer_ready || !a->has_pts) return;
    if (l->flv.cfg.audio == GB_FLV_AUDIO_NONE || flv_audio_of(a->stream_type) != l->flv.cfg.audio) return;
    size_t need = a->len + 1 + GB_FLV_TAG_OVERHEAD;
    if (need > LIVE_MAX_FRAME || !tmp_reserve(l, need)) return;
    gb_flv_frame_info_t info;
    if (gb_flv_write_audio(&l->flv, a->data, a->len, a->pts, l->tmp, l->tmp_cap, &info) != 0) return;
    ring_append(l, l->tmp, info.len, info.key, info.ts_ms);
    l->audio_frames++;
    wake_readers(l);
}

/* The stream stops: its viewers drain what is left, then end. */
void gb_live_on_stream_end(struct gb_stream *s, const char *reason)
{
    gb_live_hls_on_stream_end(s, reason);
    gb_live_rtc_on_stream_end(s); /* WebRTC viewers' peers close now */
    struct gb_live *l = s->live;
    if (!l) return;
    s->live = NULL;
    l->stream = NULL;
    snprintf(l->end_reason, sizeof(l->end_reason), "%s", reason);
    if (!l->readers) {
        live_free(l);
        return;
    }
    for (struct gb_live_reader *r = l->readers; r; r = r->next) r->waiting = true;
    wake_readers(l);
}

static uint32_t viewers_total(const struct gb_stream *s)
{
    uint32_t n = 0;
    for (int i = 0; i < GB_LIVE_OUTPUTS; i++) n += s->live_viewers[i];
    return n;
}

uint32_t gb_live_viewers(const struct gb_stream *s) { return viewers_total(s); }

json_t *gb_live_viewers_by_output(const struct gb_stream *s)
{
    json_t *per = json_object();
    for (int i = 0; i < GB_LIVE_OUTPUTS; i++)
        json_object_set_new(per, gb_live_output_name(i), json_integer(s->live_viewers[i]));
    return per;
}

const char *gb_live_output_name(enum gb_live_output o)
{
    static const char *const names[] = {"flv", "hls", "webrtc"};
    return o < GB_LIVE_OUTPUTS ? names[o] : "?";
}

static void viewer_event(struct gb_stream *s, const char *type, enum gb_live_output o)
{
    gb_publish(s->g, type,
               json_pack("{s:s,s:s,s:s,s:s,s:i,s:i}", "stream_id", s->sid, "device_id", s->device_id, "channel_id",
                         s->channel_id, "output", gb_live_output_name(o), "viewers", (int)s->live_viewers[o],
                         "viewers_total", (int)viewers_total(s)));
}

void gb_live_viewer_joined(struct gb_stream *s, enum gb_live_output o)
{
    s->live_viewers[o]++;
    timer_stop(s->g->timers, &s->live_idle);
    viewer_event(s, "media.viewer.joined", o);
}

void gb_live_viewer_left(struct gb_stream *s, enum gb_live_output o)
{
    if (s->live_viewers[o]) s->live_viewers[o]--;
    viewer_event(s, "media.viewer.left", o);
    if (!viewers_total(s)) gb_live_arm_idle(s);
}

static void idle_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct gb_stream *s = container_of(n, struct gb_stream, live_idle);
    if (viewers_total(s)) return;
    log_info("gb stream %s: no live viewer for %u ms: stopping", s->sid, s->g->cfg.live_idle_stop_ms);
    gb_stream_stop(s, "idle", true);
}

void gb_live_arm_idle(struct gb_stream *s)
{
    if (!s->live_shared) return;
    timer_start(s->g->timers, &s->live_idle, gb_now(s->g) + s->g->cfg.live_idle_stop_ms, idle_timer);
}

/* A shared stream that plays with nobody watching yet stops if nobody comes. */
void gb_live_on_playing(struct gb_stream *s)
{
    if (!viewers_total(s)) gb_live_arm_idle(s);
}

struct gb_live_reader *gb_live_open(struct gb_upper *g, const char *sid, void (*wake)(void *arg), void *arg,
                                    int *err)
{
    struct gb_stream *s = gb_stream_find(g, sid);
    if (!s || s->state == GB_STREAM_STOPPED) {
        *err = -ENOENT;
        return NULL;
    }
    /* A playback is read here too: by whoever started it (they alone know
     * its id), never shared with live requests (find_shared skips it), and
     * never idle-stopped (gb_live_arm_idle needs live_shared): it ends with
     * the recording (media-end) or a DELETE. */
    struct gb_live *l = live_get(s);
    struct gb_live_reader *r = l ? calloc(1, sizeof(*r)) : NULL;
    if (!r) {
        *err = -ENOMEM;
        return NULL;
    }
    r->live = l;
    r->wake = wake;
    r->arg = arg;
    flv_ring_reader_init(&l->ring, &r->rd);
    r->next = l->readers;
    if (l->readers) l->readers->prev = r;
    l->readers = r;
    l->nreaders++;
    l->viewers_total++;
    gb_live_viewer_joined(s, GB_LIVE_FLV);
    return r;
}

int gb_live_peek(struct gb_live_reader *r, struct iovec *iov, int max)
{
    struct gb_live *l = r->live;
    if (r->rd.dead) return -1;
    uint32_t max_ms = l->g->cfg.live_flv_max_lag_ms;
    bool lagging = flv_ring_lagging(&l->ring, &r->rd, LIVE_LAG_BYTES, max_ms);
    if (lagging) {
        uint64_t behind = l->ring.head - r->rd.pos;
        if (flv_ring_skip(&l->ring, &r->rd)) {
            note_skip(l, r, behind);
            lagging = false;
        }
    }
    /* The header blob is made when the viewer's first frame is known, so
     * that it carries the sequence header that frame needs. */
    int k = 0;
    if (r->rd.blob_off < r->rd.blob_len ||
        (r->rd.pos != FLV_RING_WAIT && l->muxer_ready && flv_ring_reader_prepare(&r->rd, &l->flv)))
        k = flv_ring_peek(&l->ring, &r->rd, iov, max, lagging); /* lagging: finish this tag, then skip */
    if (k) return k;
    if (!l->stream) return -1;
    r->waiting = true;
    return 0;
}

void gb_live_consume(struct gb_live_reader *r, size_t n) { flv_ring_consume(&r->live->ring, &r->rd, n); }

long gb_live_read(struct gb_live_reader *r, uint8_t *buf, size_t cap)
{
    struct iovec iov[4];
    int k = gb_live_peek(r, iov, 4);
    if (k <= 0) return k;
    size_t n = 0;
    for (int i = 0; i < k && n < cap; i++) {
        size_t c = iov[i].iov_len < cap - n ? iov[i].iov_len : cap - n;
        memcpy(buf + n, iov[i].iov_base, c);
        n += c;
    }
    gb_live_consume(r, n);
    return (long)n;
}

void gb_live_close(struct gb_live_reader *r)
{
    struct gb_live *l = r->live;
    if (r->prev) r->prev->next = r->next;
    else l->readers = r->next;
    if (r->next) r->next->prev = r->prev;
    l->nreaders--;
    /* Nothing is packaged while nobody reads: the next viewer must wait for
     * a fresh key frame rather than start at a stale one. */
    if (!l->nreaders) l->ring.key_pos = FLV_RING_WAIT;
    struct gb_stream *s = l->stream;
    flv_ring_reader_free(&r->rd);
    free(r);
    if (s) gb_live_viewer_left(s, GB_LIVE_FLV);
    else if (!l->readers) live_free(l);
}

void gb_live_json(const struct gb_stream *s, json_t *o)
{
    const struct gb_live *l = s->live;
    json_object_set_new(o, "live_shared", json_boolean(s->live_shared));
    json_object_set_new(o, "viewers", json_integer(viewers_total(s)));
    json_object_set_new(o, "viewers_by_output", gb_live_viewers_by_output(s));
    gb_live_hls_json(s, o);
    gb_live_rtc_json(s, o);
    if (l)
        json_object_set_new(o, "flv", json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "frames", (json_int_t)l->frames,
                                                "dropped", (json_int_t)l->frames_dropped, "audio_frames",
                                                (json_int_t)l->audio_frames, "bytes", (json_int_t)l->ring.head,
                                                "viewers_total", (json_int_t)l->viewers_total, "viewers_skipped",
                                                (json_int_t)l->viewers_skipped, "skips", (json_int_t)l->skips,
                                                "viewers_dropped", (json_int_t)l->viewers_slow));
}

/* ---- the shared live stream of a channel ---- */

struct gb_stream *gb_live_find_shared(struct gb_upper *g, const char *device_id, const char *channel)
{
    for (struct gb_stream *s = g->streams; s; s = s->next)
        if (s->live_shared && s->state != GB_STREAM_STOPPED && !strcmp(s->device_id, device_id) &&
            !strcmp(s->channel_id, channel))
            return s;
    return NULL;
}

json_t *gb_live_playing_json(struct gb_upper *g, const char *device_id, const char *channel)
{
    struct gb_stream *s = gb_live_find_shared(g, device_id, channel);
    return s && s->state == GB_STREAM_PLAYING ? gb_stream_json(s) : NULL;
}

int gb_live_start(struct gb_upper *g, const char *device_id, const char *channel, struct gb_waiter *wt)
{
    struct gb_device *d = gb_device_find(g, device_id);
    struct gb_stream *s = gb_live_find_shared(g, device_id, channel);
    if (s) {
        /* One INVITE per channel: wait with those already waiting. */
        gb_waiter_add(&s->waiter, wt);
        return 0;
    }
    if (!d || (!d->online && g->cluster)) /* another node's? (offline here: it may have moved) */
        return gb_play_remote(g, device_id, channel, false, false, 0, 0, true, wt);
    int rc = gb_stream_play(g, d, channel, false, false, 0, 0, wt);
    if (rc != 0) return rc;
    gb_live_share_newest(g, device_id, channel);
    return 0;
}

void gb_live_share_newest(struct gb_upper *g, const char *device_id, const char *channel)
{
    struct gb_stream *s = g->streams; /* the stream just made: the list is newest first */
    if (s && !strcmp(s->device_id, device_id) && !strcmp(s->channel_id, channel)) {
        s->live_shared = true;
        gb_live_arm_idle(s); /* nobody comes: stop after the grace period */
    }
}
