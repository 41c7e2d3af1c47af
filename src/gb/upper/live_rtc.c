/* live_rtc.c — live view of a GB stream over WebRTC (see upper.h): the
 * stream's H.264 frames feed a local source of the SFU (media/sfu.h) in room
 * "gb-<sid>", which WHEP viewers watch through the SFU's ordinary view path.
 *
 * Owns the stream's struct gb_live_rtc: made by the first WHEP viewer, fed
 * by every frame from then on (whether or not a peer connected yet, so the
 * source's GOP cache is ready for the next one), freed with the stream —
 * which closes the room and so the viewers' peers. Viewers count for the
 * idle stop (gb_live_viewer_joined/left, output webrtc) from the moment
 * their peer connects until it goes. The profile-level-id announced is the
 * newest SPS's, learnt from key frames before any viewer asked. */
#include "gb/upper/upper_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "media/h264.h"
#include "media/sfu.h"

#define RTC_FRAME_TICKS 3600 /* 25 fps on the 90 kHz clock, for frames without a PTS */

struct gb_live_rtc {
    struct sfu_source *src;
    uint32_t next_ts;               /* frames without a PTS */
    uint64_t frames, frames_skipped, keyframe_requests;
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
    free(r);
}

void gb_live_rtc_on_frame(struct gb_stream *s, const gb_ps_frame_t *f)
{
    if (f->codec == GB_CODEC_H265 || !f->len) return;
    if (f->key) learn_plid(s, f);
    struct gb_live_rtc *r = s->rtc;
    if (!r) return;
    uint32_t ts = f->has_pts ? (uint32_t)f->pts : r->next_ts;
    r->next_ts = ts + RTC_FRAME_TICKS;
    if (sfu_source_video(r->src, f->data, f->len, ts, f->key) == -ENOENT) {
        /* its participant was kicked or its room closed: the next viewer makes another */
        log_info("gb stream %s: the WebRTC source left its room", s->sid);
        rtc_free(s);
        return;
    }
    r->frames++;
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
    struct gb_live_rtc *r = calloc(1, sizeof(*r));
    if (!r) {
        *why = "out of memory";
        return -ENOMEM;
    }
    char room[32], name[64];
    gb_live_rtc_room(s->sid, room, sizeof(room));
    snprintf(name, sizeof(name), "gb %s/%s", s->device_id, s->channel_id);
    struct sfu_source_config sc = {
        .room = room,
        .name = name,
        .profile_level_id = s->h264_plid[0] ? s->h264_plid : NULL,
        .cb = {.user = s, .keyframe = on_keyframe, .viewer = on_viewer},
    };
    int err = 0;
    r->src = sfu_source_new(s->g->sfu, &sc, &err, why);
    if (!r->src) {
        free(r);
        return err;
    }
    s->rtc = r;
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
    if (s->playback) {
        *why = "a playback is watched by the one who asked for it";
        return -EPERM;
    }
    if (s->demux.codec == GB_CODEC_H265) {
        *why = "the stream is H.265: the browser path needs H.264";
        return -EPROTONOSUPPORT;
    }
    if (!s->rtc) {
        int rc = rtc_make(s, why);
        if (rc < 0) return rc;
    }
    char room[32];
    gb_live_rtc_room(s->sid, room, sizeof(room));
    int rc = sfu_view(g->sfu, room, sfu_source_id(s->rtc->src), NULL, NULL, offer, offer_len, answer, id_out, why);
    if (rc == 0) log_info("gb stream %s: WebRTC viewer %s answered", s->sid, id_out);
    return rc;
}

void gb_live_rtc_json(const struct gb_stream *s, json_t *o)
{
    const struct gb_live_rtc *r = s->rtc;
    if (!r) return;
    struct sfu_source_stats st;
    sfu_source_get_stats(r->src, &st);
    json_object_set_new(o, "webrtc",
                        json_pack("{s:s,s:I,s:I,s:I,s:I,s:i}", "participant_id", sfu_source_id(r->src), "frames",
                                  (json_int_t)r->frames, "packets", (json_int_t)st.packets, "keyframe_requests",
                                  (json_int_t)r->keyframe_requests, "gop_replays", (json_int_t)st.gop_replays,
                                  "viewers", (int)st.viewers));
}
