/* live_info.c — what is known about the video of a stream being watched
 * (codec, picture size, frame rate), and the list of those streams that
 * GET /api/v1/media/streams answers (upper.h, gb_media_streams_json).
 *
 * It owns struct gb_video_info in each stream: the picture size and the
 * frame rate the SPS declares, read again on every key frame (a camera may
 * change its resolution mid-stream), and a frame rate measured from the PES
 * PTS of the frames, for cameras whose SPS carries no timing. Reading the
 * SPS only on key frames keeps this off the per-frame path. */
#include "gb/upper/upper_int.h"

#include <string.h>

#include "media/codec_config.h"

#define MEASURE_WINDOW (2 * 90000u) /* a frame rate is measured over 2 s of PTS */
#define PARSE_SPS_MAX 256           /* the head of an SPS holds the size and (H.264) timing fields */

static void learn_sps(struct gb_video_info *v, gb_codec_t codec, const gb_ps_frame_t *f)
{
    size_t pos = 0;
    gb_nal_t nal;
    while (gb_nal_next(f->data, f->len, &pos, &nal)) {
        if (codec == GB_CODEC_H265 && gb_h265_nal_type(&nal) == GB_H265_NAL_SPS) {
            gb_h265_sps_t sps;
            memset(&sps, 0, sizeof(sps));
            if (gb_h265_sps_parse(nal.data, nal.len, &sps) == 0 && sps.width > 0 && sps.height > 0)
                v->width = sps.width, v->height = sps.height;
            return;
        }
        if (codec == GB_CODEC_H264 && gb_h264_nal_type(&nal) == 7) {
            gb_h264_sps_t sps;
            if (gb_h264_parse_sps(nal.data, nal.len, &sps) == 0) {
                v->width = sps.width, v->height = sps.height;
                v->sps_fps = sps.has_timing && sps.fps >= 1 && sps.fps <= 240 ? sps.fps : 0;
            }
            return;
        }
    }
}

/* Frames counted over about MEASURE_WINDOW of PTS; a PTS going back or
 * leaping (a new recording segment, a seek) starts the window again. */
static void measure(struct gb_video_info *v, const gb_ps_frame_t *f)
{
    if (!f->has_pts) return;
    uint64_t pts = f->pts;
    if (!v->meas_on || pts < v->meas_pts0 || pts - v->meas_pts0 > 4 * MEASURE_WINDOW) {
        v->meas_on = true;
        v->meas_pts0 = pts;
        v->meas_frames = 0;
        return;
    }
    v->meas_frames++;
    if (pts - v->meas_pts0 >= MEASURE_WINDOW) {
        v->measured_fps = (double)v->meas_frames * 90000.0 / (double)(pts - v->meas_pts0);
        v->meas_pts0 = pts;
        v->meas_frames = 0;
    }
}

void gb_live_learn(struct gb_stream *s, const gb_ps_frame_t *f)
{
    struct gb_video_info *v = &s->video;
    if (f->codec != GB_CODEC_UNKNOWN) v->codec = f->codec;
    else if (v->codec == GB_CODEC_UNKNOWN) v->codec = GB_CODEC_H264; /* no PSM: taken as H.264, as the outputs do */
    if (f->key) learn_sps(v, v->codec, f);
    measure(v, f);
}

static bool has_outputs(const struct gb_stream *s)
{
    return s->live_shared || s->live || s->live_hls || s->rtc || gb_live_viewers(s) > 0;
}

static json_t *stream_row(const struct gb_stream *s)
{
    const struct gb_video_info *v = &s->video;
    char started[32];
    gb_iso_time(s->started_at, started);
    json_t *src = json_pack("{s:s,s:s,s:s,s:s}", "device_id", s->device_id, "channel_id", s->channel_id,
                            "stream_id", s->sid, "kind", s->playback ? "playback" : "live");
    double fps = v->sps_fps > 0 ? v->sps_fps : v->measured_fps;
    json_t *o = json_object();
    json_object_set_new(o, "stream_id", json_string(s->sid));
    json_object_set_new(o, "source", src);
    json_object_set_new(o, "state", json_string(s->state == GB_STREAM_PLAYING ? "playing" : "inviting"));
    json_object_set_new(o, "viewers", json_integer(gb_live_viewers(s)));
    json_object_set_new(o, "viewers_by_output", gb_live_viewers_by_output(s));
    json_object_set_new(o, "bitrate_bps", json_integer((json_int_t)s->bitrate_bps));
    json_object_set_new(o, "frame_rate", fps > 0 ? json_real((double)(int)(fps * 100 + 0.5) / 100) : json_null());
    json_object_set_new(o, "frame_rate_from", json_string(v->sps_fps > 0 ? "sps" : fps > 0 ? "measured" : "none"));
    json_object_set_new(o, "codec", json_string(gb_codec_name(v->codec)));
    json_object_set_new(o, "width", v->width ? json_integer(v->width) : json_null());
    json_object_set_new(o, "height", v->height ? json_integer(v->height) : json_null());
    json_object_set_new(o, "frames", json_integer(s->demux_on ? (json_int_t)s->demux.stats.frames : 0));
    json_object_set_new(o, "started_at", started[0] ? json_string(started) : json_null());
    return o;
}

json_t *gb_media_streams_json(struct gb_upper *g)
{
    json_t *arr = json_array();
    for (const struct gb_stream *s = g->streams; s; s = s->next)
        if (s->state != GB_STREAM_STOPPED && has_outputs(s)) json_array_append_new(arr, stream_row(s));
    return json_pack("{s:o}", "streams", arr);
}
