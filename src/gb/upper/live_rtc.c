/* live_rtc.c — live view of a GB stream over WebRTC (see upper.h): the
 * stream's H.264 frames feed a local source of the SFU (media/sfu.h) in room
 * "gb-<sid>", which WHEP viewers watch through the SFU's ordinary view path.
 *
 * Owns the stream's struct gb_live_rtc: made at a shared live stream's
 * first frame, keeping the frames since the newest key frame until the
 * first WHEP viewer makes the source, which starts with them (the first
 * viewer decodes at once too); then every frame feeds the source (whether
 * or not a peer connected yet, so its GOP cache is ready for the next one).
 * Freed with the stream — which closes the room and so the viewers' peers. Viewers count for the
 * idle stop (gb_live_viewer_joined/left, output webrtc) from the moment
 * their peer connects until it goes. The profile-level-id announced is the
 * newest SPS's, learnt from key frames before any viewer asked.
 *
 * A playback has its own source too (its own stream, so its own room) with
 * one viewer, whoever started it: its frames are stamped with their arrival
 * time rather than their PTS, so speed changes and seeks reach the browser
 * as a real-time stream (a paused playback simply sends nothing). */
#include "gb/upper/upper_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "media/h264.h"
#include "media/sfu.h"

#define RTC_FRAME_TICKS 3600 /* 25 fps on the 90 kHz clock, for frames without a PTS */
#define RTC_GOP_MAX (2u << 20) /* frames kept for the first viewer; a longer GOP is not kept */
#define RTC_GOP_HDR 8          /* per kept frame: its length and timestamp, 4 bytes each */

/* Made for a shared live stream or a playback at its first frame (when the node has an
 * SFU): until a viewer makes the source, the frames since the newest key
 * frame are kept here, so the source starts with them and even the first
 * viewer decodes at once; the source then keeps its own GOP. */
struct gb_live_rtc {
    struct sfu_source *src;
    uint32_t next_ts;               /* frames without a PTS */
    uint64_t frames, keyframe_requests;
    char viewer[17];                /* a playback's one viewer, "" before it */
    uint8_t *gop;                   /* [len][ts][frame]... since the newest key frame */
    size_t gop_len, gop_cap;
    bool gop_ok;
    int audio_type;                 /* PS stream type of the source's audio (0x90/0x91), -1: video only */
    uint64_t audio_pes;             /* G.711 PES handed to the source */
};

void gb_upper_set_sfu(struct gb_upper *g, struct sfu *sfu) { g->sfu = sfu; }

void gb_live_rtc_room(const char *sid, char *out, size_t cap) { snprintf(out, cap, "gb-%s", sid); }

/* The profile-level-id of a key frame's SPS: its first three bytes after
 * the NAL header (profile_idc, constraint flags, level_idc). */
static void learn_plid(struct gb_stream *s, const gb_ps_frame_t *f)
{
    size_t pos = 0;
    gb_nal_t nal;
    while (gb_nal_next(f->data, f->len, &pos, &nal))
        if (gb_h264_nal_type(&nal) == 7 && nal.len >= 4) {
            snprintf(s->h264_plid, sizeof(s->h264_plid), "%02x%02x%02x", nal.data[1], nal.data[2], nal.data[3]);
            return;
        }
}

static void rtc_free(struct gb_stream *s)
{
    struct gb_live_rtc *r = s->rtc;
    if (!r) return;
    s->rtc = NULL;
    sfu_source_free(r->src); /* the room closes: the viewers' peers with it, no callback */
    s->live_viewers[GB_LIVE_WEBRTC] = 0;
    free(r->gop);
    free(r);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Keeps a frame of the GOP (the buffer grows to RTC_GOP_MAX, then a GOP
 * that does not fit is dropped until the next key frame). */
static void gop_keep(struct gb_live_rtc *r, const gb_ps_frame_t *f, uint32_t ts)
{
    if (f->key) {
        r->gop_len = 0;
        r->gop_ok = true;
    }
    if (!r->gop_ok) return;
    size_t need = r->gop_len + RTC_GOP_HDR + f->len;
    if (need > RTC_GOP_MAX) {
        r->gop_ok = false;
        return;
    }
    if (need > r->gop_cap) {
        size_t cap = r->gop_cap ? r->gop_cap : 65536;
        while (cap < need) cap *= 2;
        uint8_t *b = realloc(r->gop, cap);
        if (!b) {
            r->gop_ok = false;
            return;
        }
        r->gop = b;
        r->gop_cap = cap;
    }
    put32(r->gop + r->gop_len, (uint32_t)f->len);
    put32(r->gop + r->gop_len + 4, ts);
    memcpy(r->gop + r->gop_len + RTC_GOP_HDR, f->data, f->len);
    r->gop_len = need;
}

/* The new source starts with the kept GOP (into its own cache, for the
 * viewer about to connect); the buffer is not needed any more. */
static void gop_feed(struct gb_live_rtc *r)
{
    for (size_t off = 0; r->gop_ok && off + RTC_GOP_HDR <= r->gop_len;) {
        uint32_t len = get32(r->gop + off), ts = get32(r->gop + off + 4);
        if (len > r->gop_len - off - RTC_GOP_HDR) break;
        sfu_source_video(r->src, r->gop + off + RTC_GOP_HDR, len, ts, off == 0);
        off += RTC_GOP_HDR + len;
    }
    free(r->gop);
    r->gop = NULL;
    r->gop_len = r->gop_cap = 0;
    r->gop_ok = false;
}

void gb_live_rtc_on_frame(struct gb_stream *s, const gb_ps_frame_t *f)
{
    if (f->codec == GB_CODEC_H265 || !f->len || !s->g->sfu) return;
    if (f->key) learn_plid(s, f);
    if (!s->rtc && (s->live_shared || s->playback)) s->rtc = calloc(1, sizeof(*s->rtc));
    struct gb_live_rtc *r = s->rtc;
    if (!r) return;
    /* a playback's PTS jump with seeks and run fast with speed: its 90 kHz
     * time is when the frame came (ns * 90000 / 1e9) */
    uint32_t ts = s->playback ? (uint32_t)(uv_hrtime() / 100000u * 9u) : f->has_pts ? (uint32_t)f->pts : r->next_ts;
    r->next_ts = ts + RTC_FRAME_TICKS;
    if (!r->src) {
        gop_keep(r, f, ts);
        return;
    }
    if (sfu_source_video(r->src, f->data, f->len, ts, f->key) == -ENOENT) {
        /* its participant was kicked or its room closed: the next viewer makes another */
        log_info("gb stream %s: the WebRTC source left its room", s->sid);
        rtc_free(s);
        return;
    }
    r->frames++;
}

/* The G.711 of the stream goes to the source's audio m-line as it comes
 * (RTP timestamps: the PES PTS on the 8 kHz clock, 90000/8000 = 45/4). */
void gb_live_rtc_on_audio(struct gb_stream *s, const gb_ps_audio_t *a)
{
    struct gb_live_rtc *r = s->rtc;
    if (!r || !r->src || r->audio_type < 0 || a->stream_type != r->audio_type || !a->has_pts) return;
    if (sfu_source_audio(r->src, a->data, a->len, (uint32_t)(a->pts * 4 / 45)) == 0) r->audio_pes++;
}

void gb_live_rtc_on_stream_end(struct gb_stream *s) { rtc_free(s); }

/* A camera cannot be asked for a key frame: the viewer's PLI is counted (it
 * got the newest GOP when it connected; later losses wait for the next IDR). */
static void on_keyframe(void *user)
{
    struct gb_stream *s = user;
    if (s->rtc) s->rtc->keyframe_requests++;
}

static void on_viewer(void *user, const char *viewer_id, bool joined)
{
    struct gb_stream *s = user;
    log_info("gb stream %s: WebRTC viewer %s %s", s->sid, viewer_id, joined ? "connected" : "gone");
    if (joined)
        gb_live_viewer_joined(s, GB_LIVE_WEBRTC);
    else
        gb_live_viewer_left(s, GB_LIVE_WEBRTC);
}

static int rtc_make(struct gb_stream *s, const char **why)
{
    struct gb_live_rtc *r = s->rtc ? s->rtc : calloc(1, sizeof(*r));
    if (!r) {
        *why = "out of memory";
        return -ENOMEM;
    }
    char room[32], name[64];
    gb_live_rtc_room(s->sid, room, sizeof(room));
    snprintf(name, sizeof(name), "gb %s/%s", s->device_id, s->channel_id);
    /* Audio when the PSM lists G.711 (known once the stream's first PSM
     * came, which precedes its first key frame): the browser takes it
     * when its offer has PCMA/PCMU, as Chromium's does. */
    int at = s->demux.audio_stream_type;
    r->audio_type = at == GB_PS_STREAM_TYPE_PCMA || at == GB_PS_STREAM_TYPE_PCMU ? at : -1;
    struct sfu_source_config sc = {
        .room = room,
        .name = name,
        .profile_level_id = s->h264_plid[0] ? s->h264_plid : NULL,
        .audio = r->audio_type == GB_PS_STREAM_TYPE_PCMA   ? "PCMA"
                 : r->audio_type == GB_PS_STREAM_TYPE_PCMU ? "PCMU"
                                                           : NULL,
        .cb = {.user = s, .keyframe = on_keyframe, .viewer = on_viewer},
    };
    int err = 0;
    r->src = sfu_source_new(s->g->sfu, &sc, &err, why);
    if (!r->src) {
        if (r != s->rtc) free(r);
        return err;
    }
    s->rtc = r;
    gop_feed(r);
    return 0;
}

int gb_live_whep(struct gb_upper *g, const char *sid, const char *offer, size_t offer_len, sbuf_t *answer,
                 char id_out[17], const char **why)
{
    struct gb_stream *s = gb_stream_find(g, sid);
    *why = "";
    if (!s || s->state == GB_STREAM_STOPPED) {
        *why = "no such stream";
        return -ENOENT;
    }
    if (!g->sfu) {
        *why = "the media plane (WebRTC) is not running";
        return -ENOTSUP;
    }
    /* A playback is its asker's own: one viewer (who may come back once
     * its earlier session is gone). */
    struct sfu_peer_info pi;
    if (s->playback && s->rtc && s->rtc->viewer[0] && sfu_peer_info(g->sfu, s->rtc->viewer, &pi) == 0) {
        *why = "a playback has one WebRTC viewer, and it has one";
        return -EPERM;
    }
    if (s->demux.codec == GB_CODEC_H265) {
        *why = "the stream is H.265: the browser path needs H.264";
        return -EPROTONOSUPPORT;
    }
    if (!s->rtc || !s->rtc->src) {
        int rc = rtc_make(s, why);
        if (rc < 0) return rc;
    }
    char room[32];
    gb_live_rtc_room(s->sid, room, sizeof(room));
    int rc = sfu_view(g->sfu, room, sfu_source_id(s->rtc->src), NULL, NULL, offer, offer_len, answer, id_out, why);
    if (rc == 0) log_info("gb stream %s: WebRTC viewer %s answered", s->sid, id_out);
    if (rc == 0 && s->playback) snprintf(s->rtc->viewer, sizeof(s->rtc->viewer), "%s", id_out);
    return rc;
}

void gb_live_rtc_json(const struct gb_stream *s, json_t *o)
{
    const struct gb_live_rtc *r = s->rtc;
    if (!r || !r->src) return;
    struct sfu_source_stats st;
    sfu_source_get_stats(r->src, &st);
    json_object_set_new(o, "webrtc",
                        json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:i}", "participant_id", sfu_source_id(r->src), "frames",
                                  (json_int_t)r->frames, "packets", (json_int_t)st.packets, "audio_pes",
                                  (json_int_t)r->audio_pes, "audio_packets", (json_int_t)st.audio_packets,
                                  "keyframe_requests",
                                  (json_int_t)r->keyframe_requests, "gop_replays", (json_int_t)st.gop_replays,
                                  "viewers", (int)st.viewers));
}
