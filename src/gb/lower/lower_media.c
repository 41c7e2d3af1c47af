/* lower_media.c — real-time play of a local channel for an upper platform
 * (GB/T 28181 §9.2): the upper's INVITE offers where it receives (c=, m=,
 * RTP/AVP or TCP/RTP/AVP with a=setup) and the SSRC (y=); we answer 200 with
 * a sendonly SDP carrying the same y= and our media port, and start sending
 * the channel's clip as PS over RTP when the ACK comes. BYE from the upper,
 * a stream that fails on its own, or the upper going away stops it.
 *
 * TCP roles (RFC 4145): the upper's a=setup:passive means it listens and we
 * connect (active); a=setup:active means it connects to the port we answer
 * (we listen, passive). No a=setup in a TCP offer: we connect, as most GB
 * upper platforms expect. */
#include "gb/lower/lower_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/log.h"
#include "gb/codec/mansrtsp.h"
#include "txn/txn.h"

static void respond(struct gb_lower *l, struct txn *st, int status, const char *reason)
{
    gb_lower_respond(l, st, status, reason, NULL, 0);
}

static void lstream_unlink(struct gb_lower *l, struct gb_lstream *s)
{
    if (s->prev) s->prev->next = s->next;
    else l->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    l->stream_count--;
}

static void lstream_end(struct gb_lstream *s, const char *reason, bool send_bye)
{
    struct gb_lower *l = s->l;
    struct gb_media_sender_stats st = {0};
    if (s->sender) gb_media_sender_get_stats(s->sender, &st);
    log_info("gb lower: stream of %s to upstream %s (ssrc %s) stopped: %s; %llu frames, %llu packets", s->channel_id,
             s->up->cfg.id, s->ssrc, reason, (unsigned long long)st.frames, (unsigned long long)st.packets);
    json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "upstream", s->up->cfg.id, "channel_id", s->channel_id, "ssrc",
                          s->ssrc, "reason", reason, "packets", (json_int_t)st.packets, "bytes", (json_int_t)st.bytes);
    gb_lower_publish(l, "gb.lower.stream.stopped", f);
    if (s->dlg) {
        if (send_bye) ua_dialog_bye(s->dlg);
        else ua_dialog_set_cb(s->dlg, NULL, NULL);
    }
    s->dlg = NULL;
    gb_media_sender_free(s->sender);
    lstream_unlink(l, s);
    free(s);
}

static void dlg_on_ack(void *arg, struct ua_dialog *d, const struct transport_rx *rx)
{
    (void)d;
    (void)rx;
    struct gb_lstream *s = arg;
    int rc = gb_media_sender_start(s->sender);
    if (rc < 0) {
        log_warn("gb lower: stream of %s could not start: %s", s->channel_id, uv_strerror(rc));
        lstream_end(s, "media-error", true);
        return;
    }
    json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:s}", "upstream", s->up->cfg.id, "channel_id", s->channel_id, "ssrc",
                          s->ssrc, "transport", gb_media_proto_name(gb_media_sender_proto(s->sender)), "remote",
                          s->remote);
    gb_lower_publish(s->l, "gb.lower.stream.started", f);
}

static void dlg_on_end(void *arg, struct ua_dialog *d, enum ua_dialog_end why)
{
    (void)d;
    struct gb_lstream *s = arg;
    s->dlg = NULL; /* the UA frees it after this returns */
    lstream_end(s, why == UA_END_BYE_RECEIVED ? "bye" : "no-ack", false);
}

/* Playback control from the upstream (MANSRTSP in INFO, Annex B). */
static void dlg_on_request(void *arg, struct ua_dialog *d, struct txn *st, const struct transport_rx *rx)
{
    (void)d;
    struct gb_lstream *s = arg;
    const struct sip_msg *m = rx->msg;
    if (m->method != SIP_INFO) {
        respond(s->l, st, m->method == SIP_INVITE || m->method == SIP_UPDATE ? 488 : 200, NULL);
        return;
    }
    if (!gb_mansrtsp_is_type(m->content_type.s, m->content_type.len)) {
        respond(s->l, st, 415, NULL);
        return;
    }
    struct gb_rtsp_req r;
    const char *why = "not a playback";
    if (!s->playback || gb_mansrtsp_parse(m->body.s, m->body.len, &r, &why) != 0) {
        log_warn("gb lower: INFO for %s from upstream %s refused: %s", s->channel_id, s->up->cfg.id, why);
        respond(s->l, st, s->playback ? 400 : 488, NULL);
        return;
    }
    if (gb_media_sender_apply(s->sender, &r) != 0) {
        respond(s->l, st, 457, "Invalid Range");
        return;
    }
    log_info("gb lower: playback of %s for upstream %s: %s (cseq %u)%s", s->channel_id, s->up->cfg.id,
             gb_rtsp_method_name(r.method), r.cseq, gb_media_sender_paused(s->sender) ? ", paused" : "");
    respond(s->l, st, 200, NULL);
    if (r.method == GB_RTSP_TEARDOWN) lstream_end(s, "teardown", true);
}

static const struct ua_dialog_cb lstream_dlg_cb = {.on_request = dlg_on_request, .on_ack = dlg_on_ack,
                                                   .on_end = dlg_on_end};

static void sender_stopped(void *arg, struct gb_media_sender *sender, const char *reason)
{
    (void)sender;
    struct gb_lstream *s = arg;
    if (s->playback && !strcmp(reason, "end") && s->dlg && !s->ended) {
        /* The requested range was sent: MediaStatus 121 (§A.2.5.9) to the
         * upstream, whose BYE ends the dialog (dlg_on_end). */
        struct gb_lower *l = s->l;
        sbuf_t body;
        sbuf_init(&body);
        if (gb_manscdp_build_media_status(&body, s->up->charset, ++l->sn, s->channel_id) == 0 &&
            gb_lower_send_manscdp(l, s->up, &body, NULL, NULL)) {
            s->ended = true;
            log_info("gb lower: playback of %s for upstream %s reached its end: MediaStatus sent", s->channel_id,
                     s->up->cfg.id);
        }
        sbuf_free(&body);
        if (s->ended) return;
    }
    lstream_end(s, reason, true);
}

static const struct gb_media_sender_cb lstream_sender_cb = {.on_stopped = sender_stopped};

void gb_lstreams_stop(struct gb_lower *l, struct gb_upstream *up, const char *reason)
{
    struct gb_lstream *s = l->streams;
    while (s) {
        struct gb_lstream *next = s->next;
        if (!up || s->up == up) lstream_end(s, reason, true);
        s = next;
    }
}

json_t *gb_lower_streams_json(const struct gb_lower *l)
{
    json_t *arr = json_array();
    for (const struct gb_lstream *s = l->streams; s; s = s->next) {
        struct gb_media_sender_stats st;
        gb_media_sender_get_stats(s->sender, &st);
        char started[40];
        clock_iso8601(started, sizeof(started), s->started_at, 1);
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:I,s:I,s:I,s:s}", "upstream", s->up->cfg.id, "channel_id",
                           s->channel_id, "ssrc", s->ssrc, "transport",
                           gb_media_proto_name(gb_media_sender_proto(s->sender)), "remote", s->remote, "sending",
                           st.started && (st.connected || gb_media_sender_proto(s->sender) == GB_MEDIA_UDP),
                           "frames", (json_int_t)st.frames, "packets", (json_int_t)st.packets, "bytes",
                           (json_int_t)st.bytes, "started_at", started));
    }
    return json_pack("{s:o}", "streams", arr);
}

void gb_lower_on_invite(struct gb_lower *l, struct gb_upstream *up, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    struct gb_lchan *c = gb_lchan_find(l, m->ruri.user);
    struct gb_media_offer o;
    const char *why;
    int status = gb_media_offer_parse(m->content_type, m->body, &o, &why);
    if (status) {
        log_warn("gb lower: INVITE for %s from upstream %s at %s refused %d: %s", c->id, up->cfg.id, rx->src_text,
                 status, why ? why : "bad SDP");
        respond(l, st, status, NULL);
        return;
    }
    if (!o.has_ssrc) {
        /* No y=: make one of ours (live prefix 0 + domain digits), Annex F. */
        snprintf(o.ssrc_text, sizeof(o.ssrc_text), "0%.5s%04u", l->domain + 3,
                 (unsigned)(gb_lower_random(l) % 10000));
        if (gb_ssrc_to_u32(str_from_cstr(o.ssrc_text), &o.ssrc) != 0) o.ssrc = (uint32_t)gb_lower_random(l);
    }
    if (!strcmp(c->status, "OFF")) {
        log_info("gb lower: INVITE for %s (status OFF): 480", c->id);
        respond(l, st, 480, NULL);
        return;
    }
    struct gb_media_clip *clip = gb_lower_clip(l, c->media);
    if (!clip) {
        respond(l, st, 500, "Media Unavailable");
        return;
    }
    struct gb_lstream *s = calloc(1, sizeof(*s));
    if (!s) {
        respond(l, st, 500, NULL);
        return;
    }
    s->l = l;
    s->up = up;
    s->started_at = clock_wall_ms();
    snprintf(s->channel_id, sizeof(s->channel_id), "%s", c->id);
    snprintf(s->ssrc, sizeof(s->ssrc), "%s", o.ssrc_text);
    snprintf(s->remote, sizeof(s->remote), "%s", o.remote_text);
    struct gb_media_sender_config mc = {.loop = l->loop, .timers = l->timers, .proto = o.proto,
                                        .local_ip = l->media_ip, .remote = o.remote, .ssrc = o.ssrc,
                                        .payload_type = (uint8_t)o.pt, .clip = clip, .loop_clip = true};
    s->playback = !strcasecmp(o.session, "Playback") || !strcasecmp(o.session, "Download");
    if (s->playback) {
        /* The recording of the requested range (t=): the channel's clip,
         * looped, for end - start seconds (at most a day). */
        int64_t span = o.end > o.start ? o.end - o.start : 0;
        mc.duration_ms = span <= 0 ? 0 : span > 86400 ? 86400000u : (uint32_t)(span * 1000);
    }
    int err = 0;
    s->sender = gb_media_sender_new(&mc, &lstream_sender_cb, s, &err);
    if (!s->sender) {
        log_warn("gb lower: media socket for %s on %s: %s", c->id, l->media_ip, uv_strerror(err));
        free(s);
        respond(l, st, 500, "Media Unavailable");
        return;
    }
    sbuf_t sdp;
    sbuf_init(&sdp);
    if (gb_media_answer_sdp(&sdp, c->id, l->media_ip, gb_media_sender_local_port(s->sender), &o) != 0) {
        sbuf_free(&sdp);
        gb_media_sender_free(s->sender);
        free(s);
        respond(l, st, 500, NULL);
        return;
    }
    s->next = l->streams;
    if (l->streams) l->streams->prev = s;
    l->streams = s;
    l->stream_count++;
    s->dlg = ua_answer_invite(l->ua, st, 200, STR_NULL, NULL, 0, STR_LIT("application/sdp"), sbuf_str(&sdp),
                              &lstream_dlg_cb, s);
    sbuf_free(&sdp);
    if (!s->dlg) {
        respond(l, st, 500, NULL);
        lstream_unlink(l, s);
        gb_media_sender_free(s->sender);
        free(s);
        return;
    }
    log_info("gb lower: INVITE for %s from upstream %s: %s %s to %s, ssrc %s, PT %u, t=%lld-%lld", c->id, up->cfg.id,
             o.session, gb_media_proto_name(o.proto), o.remote_text, o.ssrc_text, o.pt, (long long)o.start,
             (long long)o.end);
}
