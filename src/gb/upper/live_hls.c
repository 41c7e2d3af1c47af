/* live_hls.c — live view of a GB stream over HLS (see upper.h, "live view
 * over HLS"): the stream's video frames, demultiplexed once from its PS, are
 * cut once into segments (media/hls.h: MPEG-TS for H.264, fMP4/hvc1 for
 * H.265) that every HLS viewer fetches.
 *
 * Lifetime: the state (struct gb_live_hls) is made by the first HLS request
 * of a stream, live or playback, its segmenter by the first frame after that
 * (the frame names the codec), and both are freed when the stream stops. A
 * stream nobody asked over HLS costs no HLS memory: a playback watched over
 * FLV or WebRTC only has no segment ring. A segment being sent holds a
 * reference of its own (gb_hls_segment_ref), so it outlives both.
 *
 * Viewers: HLS is request/response, so a viewer is a client (its key: the
 * ?session= it sent, else its address and User-Agent) seen within the last
 * HLS_ACTIVE_TARGETS target durations. A new key joins, an expired one
 * leaves (gb_live_viewer_joined/left), which drives the stream's idle stop.
 * A sweep timer expires clients and bounds the wait for the first segment.
 *
 * The first playlist request of a stream that has no segment yet waits
 * (HLS_FIRST_WAIT_MS at most) for the first one: a playlist without
 * segments makes ffmpeg and hls.js give up instead of reloading.
 *
 * A playback that reaches the end of its recording (media-end: MediaStatus
 * 121) outlives its stream: the segmenter completes its last segment and
 * its playlist gets EXT-X-ENDLIST (media/hls.h, gb_hls_end), so players
 * read to the end and stop instead of reloading a playlist that is gone.
 * The ended state leaves the stream for g->hls_ended (by sid, at most
 * HLS_ENDED_MAX, the oldest goes first) and is freed HLS_ENDED_LINGER_MS
 * later. A playback asked over HLS keeps more segments (GB_HLS_RING_MAX)
 * than a live stream: the final playlist lists what was segmented since the
 * first request (VOD when the ring still holds all of it), and a player
 * behind the live edge still finds its next segment. Viewers of an ended
 * playlist are not counted: the stream is gone. */
#include "gb/upper/upper_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "media/hls.h"

#define HLS_TARGET_MS 1000        /* segments of about 1 s (cut at the first key frame after it) */
#define HLS_RING 6                /* segments listed: 6 s of a 1 s GOP, >= 3 target durations (RFC 8216 6.2.2) */
#define HLS_FIRST_WAIT_MS 10000   /* the first playlist request waits this long for a segment */
#define HLS_SWEEP_MS 500          /* how often clients expire and the wait is checked */
#define HLS_ACTIVE_TARGETS 3      /* a client counts as a viewer this many target durations after a request */
#define HLS_CLIENTS_MAX 512       /* viewers tracked per stream; more are served but not counted */
#define HLS_FRAME_STEP 3600       /* 90 kHz: a frame without a PTS is placed 40 ms after the last */
#define HLS_ENDED_MAX 8           /* ended playbacks' playlists held at once */
#define HLS_ENDED_LINGER_MS 60000 /* ... each this long after its recording ended */

struct hls_client {
    uint64_t key;                 /* FNV-1a of the client's key string */
    uint64_t last_seen;           /* timer clock */
};

struct gb_live_hls {
    struct gb_stream *s;          /* NULL once ended (on g->hls_ended) */
    struct gb_upper *g;
    char sid[GB_SSRC_LEN + 1];
    struct gb_live_hls *ended_next; /* g->hls_ended, newest first */
    gb_hls_t *hls;                /* NULL until the first frame names the codec */
    gb_hls_format_t format;
    bool broken;                  /* the segmenter could not be made: not tried again (one log line) */
    struct gb_waiter *waiters;    /* playlist requests waiting for the first segment */
    uint64_t wait_deadline;       /* timer clock: the waiters get 503 then */
    struct timer_node sweep;
    uint64_t last_pts;
    struct hls_client clients[HLS_CLIENTS_MAX];
    unsigned nclients;
    uint64_t requests, uncounted; /* requests served; requests of clients beyond HLS_CLIENTS_MAX */
};

static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++) h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

static uint64_t active_ms(const struct gb_live_hls *lh)
{
    unsigned target = lh->hls ? gb_hls_target_duration(lh->hls) : 1;
    return (uint64_t)HLS_ACTIVE_TARGETS * target * 1000u;
}

static void sweep_timer(struct timer_node *n, uint64_t now);

static void sweep_arm(struct gb_live_hls *lh)
{
    if (!timer_armed(&lh->sweep)) timer_start(lh->s->g->timers, &lh->sweep, gb_now(lh->s->g) + HLS_SWEEP_MS, sweep_timer);
}

/* A request of this client: it joins unless it was seen recently. */
static void client_touch(struct gb_live_hls *lh, const char *key)
{
    lh->requests++;
    if (!lh->s) return; /* ended: no stream to keep alive */
    uint64_t k = key_hash(key ? key : ""), now = gb_now(lh->s->g);
    for (unsigned i = 0; i < lh->nclients; i++)
        if (lh->clients[i].key == k) {
            lh->clients[i].last_seen = now;
            return;
        }
    if (lh->nclients == HLS_CLIENTS_MAX) {
        lh->uncounted++;
        return;
    }
    lh->clients[lh->nclients++] = (struct hls_client){.key = k, .last_seen = now};
    gb_live_viewer_joined(lh->s, GB_LIVE_HLS);
    sweep_arm(lh);
}

static void sweep_timer(struct timer_node *n, uint64_t now)
{
    struct gb_live_hls *lh = container_of(n, struct gb_live_hls, sweep);
    struct gb_stream *s = lh->s;
    if (lh->waiters && now >= lh->wait_deadline)
        gb_waiters_done(&lh->waiters, 503,
                        gb_error_json("no-segment", "stream %s sent no complete segment within %u ms", s->sid,
                                      HLS_FIRST_WAIT_MS));
    /* A client waiting for the first segment is not idle. */
    unsigned left = 0;
    if (!lh->waiters) {
        uint64_t window = active_ms(lh);
        for (unsigned i = 0; i < lh->nclients;) {
            if (lh->clients[i].last_seen + window > now) { /* last_seen may be a little after the timer's now */
                i++;
                continue;
            }
            lh->clients[i] = lh->clients[--lh->nclients];
            left++;
        }
    }
    if (lh->nclients || lh->waiters)
        timer_start(s->g->timers, &lh->sweep, now + HLS_SWEEP_MS, sweep_timer);
    /* Last: the last viewer leaving may arm the idle stop, never stop the stream here. */
    while (left--) gb_live_viewer_left(s, GB_LIVE_HLS);
}

static struct gb_live_hls *hls_get(struct gb_stream *s)
{
    if (s->live_hls) return s->live_hls;
    struct gb_live_hls *lh = calloc(1, sizeof(*lh));
    if (!lh) return NULL;
    lh->s = s;
    lh->g = s->g;
    snprintf(lh->sid, sizeof(lh->sid), "%s", s->sid);
    timer_node_init(&lh->sweep);
    s->live_hls = lh;
    return lh;
}

static bool segmenter_start(struct gb_live_hls *lh, gb_codec_t codec)
{
    char name[GB_SSRC_LEN + 16];
    snprintf(name, sizeof(name), "gb stream %s", lh->s->sid);
    /* H.265 goes as fMP4 (hvc1): Safari plays H.265 only that way; TS carries H.264 for every player. */
    lh->format = codec == GB_CODEC_H265 ? GB_HLS_FMP4 : GB_HLS_TS;
    gb_hls_cfg_t cfg = {.codec = codec == GB_CODEC_H265 ? GB_CODEC_H265 : GB_CODEC_H264,
                        .format = lh->format,
                        .target_ms = HLS_TARGET_MS,
                        .ring = lh->s->playback ? GB_HLS_RING_MAX : HLS_RING,
                        .uri_prefix = "",
                        .name = name};
    lh->hls = gb_hls_new(&cfg);
    if (!lh->hls) {
        log_warn("gb stream %s: the HLS segmenter could not be made (out of memory): no HLS", lh->s->sid);
        lh->broken = true;
    }
    return lh->hls != NULL;
}

/* A frame of the stream (play.c's demuxer): segmented once for every HLS viewer. */
void gb_live_hls_on_frame(struct gb_stream *s, const gb_ps_frame_t *f)
{
    struct gb_live_hls *lh = s->live_hls;
    if (!lh || !f->len) return; /* no HLS request yet: nothing to segment */
    /* The codec comes with the PSM, ahead of key frames: a frame before
     * either would be dropped anyway (a segment opens at a key frame). */
    if (!lh->hls && f->codec == GB_CODEC_UNKNOWN && !f->key) return;
    if (!lh->hls && (lh->broken || !segmenter_start(lh, f->codec))) return;
    uint64_t pts = f->has_pts ? f->pts : lh->last_pts + HLS_FRAME_STEP;
    lh->last_pts = pts;
    int rc = gb_hls_push(lh->hls, f->data, f->len, pts, f->key);
    if (rc == GB_HLS_SEGMENT_DONE && lh->waiters) gb_waiters_done(&lh->waiters, 200, NULL);
}

static void hls_free(struct gb_live_hls *lh)
{
    gb_hls_free(lh->hls);
    free(lh);
}

static void ended_unlink(struct gb_upper *g, struct gb_live_hls *lh)
{
    for (struct gb_live_hls **p = &g->hls_ended; *p; p = &(*p)->ended_next)
        if (*p == lh) {
            *p = lh->ended_next;
            g->hls_ended_count--;
            timer_stop(g->timers, &lh->sweep);
            return;
        }
}

static void ended_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct gb_live_hls *lh = container_of(n, struct gb_live_hls, sweep);
    log_info("gb stream %s: the final HLS playlist of the ended playback is gone", lh->sid);
    ended_unlink(lh->g, lh);
    hls_free(lh);
}

static struct gb_live_hls *ended_find(struct gb_upper *g, const char *sid)
{
    for (struct gb_live_hls *lh = g->hls_ended; lh; lh = lh->ended_next)
        if (!strcmp(lh->sid, sid)) return lh;
    return NULL;
}

/* The playback's recording ended: its playlist is made final and kept. */
static void ended_keep(struct gb_upper *g, struct gb_live_hls *lh)
{
    struct gb_live_hls *old = ended_find(g, lh->sid); /* an earlier stream with the same SSRC */
    if (old) {
        ended_unlink(g, old);
        hls_free(old);
    }
    if (g->hls_ended_count == HLS_ENDED_MAX) {
        struct gb_live_hls *last = g->hls_ended;
        while (last->ended_next) last = last->ended_next;
        ended_unlink(g, last);
        hls_free(last);
    }
    lh->s = NULL;
    lh->nclients = 0;
    lh->ended_next = g->hls_ended;
    g->hls_ended = lh;
    g->hls_ended_count++;
    timer_start(g->timers, &lh->sweep, gb_now(g) + HLS_ENDED_LINGER_MS, ended_timer);
    log_info("gb stream %s: recording ended; its final HLS playlist (%d segments, EXT-X-ENDLIST) is served for %u s",
             lh->sid, gb_hls_end(lh->hls), HLS_ENDED_LINGER_MS / 1000);
}

/* The stream stops: waiting requests end, the segmenter goes (segments
 * being sent keep their own reference), unless a playback's recording
 * ended: then the playlist becomes final and stays a while. No viewer.left:
 * the stream is gone and its idle timer must stay stopped. */
void gb_live_hls_on_stream_end(struct gb_stream *s, const char *reason)
{
    struct gb_live_hls *lh = s->live_hls;
    if (!lh) return;
    s->live_hls = NULL;
    timer_stop(s->g->timers, &lh->sweep);
    if (s->playback && !strcmp(reason, "media-end") && lh->hls && gb_hls_end(lh->hls) > 0) {
        ended_keep(s->g, lh);
        if (lh->waiters) gb_waiters_done(&lh->waiters, 200, NULL); /* they read the final playlist */
        return;
    }
    if (lh->waiters)
        gb_waiters_done(&lh->waiters, 404, gb_error_json("stream-stopped", "stream %s stopped (%s)", s->sid, reason));
    hls_free(lh);
}

void gb_live_hls_free_ended(struct gb_upper *g)
{
    while (g->hls_ended) {
        struct gb_live_hls *lh = g->hls_ended;
        ended_unlink(g, lh);
        hls_free(lh);
    }
}

void gb_live_hls_json(const struct gb_stream *s, json_t *o)
{
    const struct gb_live_hls *lh = s->live_hls;
    if (!lh) return;
    const gb_hls_stats_t *st = lh->hls ? gb_hls_stats(lh->hls) : NULL;
    json_object_set_new(
        o, "hls",
        json_pack("{s:s,s:I,s:I,s:I,s:i,s:I}", "format", lh->format == GB_HLS_FMP4 ? "fmp4" : "ts", "segments",
                  (json_int_t)(st ? st->segments : 0), "bytes", (json_int_t)(st ? st->bytes : 0), "requests",
                  (json_int_t)lh->requests, "clients", (int)lh->nclients, "uncounted", (json_int_t)lh->uncounted));
}

/* ---- the service API (upper.h) ---- */

static struct gb_live_hls *hls_lookup(struct gb_upper *g, const char *sid, bool make, int *err)
{
    struct gb_stream *s = sid ? gb_stream_find(g, sid) : NULL;
    if (!s || s->state == GB_STREAM_STOPPED) {
        struct gb_live_hls *ended = sid ? ended_find(g, sid) : NULL;
        if (!ended) *err = -ENOENT;
        return ended;
    }
    /* A playback too is segmented from its first HLS request on. */
    struct gb_live_hls *lh = make ? hls_get(s) : s->live_hls;
    if (!lh) *err = make ? -ENOMEM : -ENOENT;
    return lh;
}

/* Appends the playlist, with ?session=<session> after each URI when the
 * player named its session (so its segment requests count as the same
 * viewer). */
static int playlist_write(struct gb_live_hls *lh, const char *session, sbuf_t *out)
{
    if (!session) return gb_hls_playlist(lh->hls, out) > 0 ? 0 : -EAGAIN;
    sbuf_t pl;
    sbuf_init(&pl);
    int n = gb_hls_playlist(lh->hls, &pl);
    if (n <= 0 || pl.failed) {
        sbuf_free(&pl);
        return n < 0 || pl.failed ? -ENOMEM : -EAGAIN;
    }
    const char *p = pl.data, *end = pl.data + pl.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        static const char map[] = "#EXT-X-MAP:URI=\"";
        if (len && p[0] != '#') {
            sbuf_append(out, p, len);
            sbuf_printf(out, "?session=%s", session);
        } else if (len > sizeof(map) && !memcmp(p, map, sizeof(map) - 1) && p[len - 1] == '"') {
            sbuf_append(out, p, len - 1);
            sbuf_printf(out, "?session=%s\"", session);
        } else sbuf_append(out, p, len);
        if (nl) sbuf_append_char(out, '\n');
        p += len + 1;
    }
    sbuf_free(&pl);
    return out->failed ? -ENOMEM : 0;
}

int gb_live_hls_playlist(struct gb_upper *g, const char *sid, const char *client, const char *session, sbuf_t *out,
                         struct gb_waiter *wt)
{
    int err = 0;
    struct gb_live_hls *lh = hls_lookup(g, sid, true, &err);
    if (!lh) return err;
    client_touch(lh, client);
    uint64_t first, last;
    if (lh->hls && gb_hls_seq_range(lh->hls, &first, &last)) return playlist_write(lh, session, out);
    if (!wt) return -EAGAIN;
    if (!lh->waiters) lh->wait_deadline = gb_now(g) + HLS_FIRST_WAIT_MS;
    gb_waiter_add(&lh->waiters, wt);
    sweep_arm(lh);
    return -EINPROGRESS;
}

gb_hls_segment_t *gb_live_hls_segment(struct gb_upper *g, const char *sid, const char *name, const char *client,
                                      const char **content_type, int *err)
{
    struct gb_live_hls *lh = hls_lookup(g, sid, false, err);
    if (!lh) return NULL;
    gb_hls_segment_t *seg = NULL;
    uint64_t seq;
    if (!lh->hls || !name) seg = NULL;
    else if (!strcmp(name, "init.mp4")) {
        seg = gb_hls_init_ref(lh->hls);
        *content_type = "video/mp4";
    } else if (gb_hls_parse_uri(lh->hls, name, strlen(name), &seq)) {
        seg = gb_hls_segment_ref(lh->hls, seq);
        *content_type = lh->format == GB_HLS_FMP4 ? "video/mp4" : "video/mp2t";
    }
    if (!seg) {
        *err = -ENOENT;
        return NULL;
    }
    client_touch(lh, client);
    return seg;
}
