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
#include "gb/lower_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/worker.h"
#include "base/clock.h"
#include "base/log.h"
#include "sip/sdp.h"
#include "txn/txn.h"

static void respond(struct txn *st, int status, const char *reason)
{
    int rc = txn_respond(st, status, reason, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
    if (rc < 0) log_warn("gb lower: %d to INVITE not sent: %s", status, strerror(-rc));
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

static const struct ua_dialog_cb lstream_dlg_cb = {.on_ack = dlg_on_ack, .on_end = dlg_on_end};

static void sender_stopped(void *arg, struct gb_media_sender *sender, const char *reason)
{
    (void)sender;
    struct gb_lstream *s = arg;
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

json_t *gb_lstreams_json(const struct gb_lower *l)
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

/* What the offer asks for. */
struct offer {
    enum gb_media_proto proto;
    struct sockaddr_storage remote;
    char remote_text[TRANSPORT_ADDR_TEXT];
    uint32_t ssrc;
    char ssrc_text[GB_SSRC_LEN + 1];
    unsigned pt;
    char session[16];        /* s= of the offer: Play, Playback, Download */
};

/* 0, or an SIP status to refuse with (488 for an offer we cannot serve). */
static int read_offer(struct gb_lower *l, const struct sip_msg *m, struct offer *o, const char **why)
{
    _Alignas(16) char mem[8192];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    struct sdp_session sdp;
    int status = 0;
    *why = NULL;
    if (!m->body.len || !str_ieq_cstr(str_trim(str_make(m->content_type.s, m->content_type.len)), "application/sdp")) {
        *why = "no SDP offer";
        status = 488;
        goto out;
    }
    if (sdp_parse(m->body.s, m->body.len, &a, &sdp, why) != 0) {
        status = 400;
        goto out;
    }
    const struct sdp_media *md = NULL;
    for (uint32_t i = 0; i < sdp.media_count; i++)
        if (str_eq_cstr(sdp.media[i].media, "video") && sdp.media[i].port) {
            md = &sdp.media[i];
            break;
        }
    if (!md) {
        *why = "no video media line";
        status = 488;
        goto out;
    }
    bool tcp = str_ieq_cstr(md->proto, "TCP/RTP/AVP");
    if (!tcp && !str_ieq_cstr(md->proto, "RTP/AVP")) {
        *why = "media proto not RTP/AVP or TCP/RTP/AVP";
        status = 488;
        goto out;
    }
    if (tcp) o->proto = sdp_media_setup(&sdp, md) == SDP_SETUP_ACTIVE ? GB_MEDIA_TCP_PASSIVE : GB_MEDIA_TCP_ACTIVE;
    else o->proto = GB_MEDIA_UDP;
    const struct sdp_conn *c = sdp_media_conn(&sdp, md);
    if (!c || transport_addr_parse(c->address.s, c->address.len, md->port, &o->remote) != 0) {
        *why = "no numeric connection address";
        status = 488;
        goto out;
    }
    transport_addr_text(&o->remote, o->remote_text, sizeof(o->remote_text));
    if (sdp.name.len && sdp.name.len < sizeof(o->session)) str_copy(o->session, sizeof(o->session), sdp.name);
    else snprintf(o->session, sizeof(o->session), "Play");
    for (char *p = o->session; *p; p++)
        if (*p < 0x21 || *p > 0x7e) *p = '_';
    /* The PT the upper maps to PS (GB/T 28181 uses 96; honour another). */
    o->pt = 96;
    str_t cur = md->fmts, fmt;
    while (sdp_fmt_next(&cur, &fmt)) {
        uint64_t pt;
        struct sdp_rtpmap rm;
        if (str_to_u64(fmt, 127, &pt) == 0 && sdp_media_rtpmap(md, (unsigned)pt, &rm) == 0 &&
            str_ieq_cstr(rm.encoding, "PS")) {
            o->pt = (unsigned)pt;
            break;
        }
    }
    if (sdp_gb_ssrc(&sdp, &o->ssrc) == 0 && sdp.gb_ssrc.len <= GB_SSRC_LEN) {
        str_copy(o->ssrc_text, sizeof(o->ssrc_text), sdp.gb_ssrc);
    } else {
        /* No y=: make one of ours (live prefix 0 + domain digits), GB/T 28181 §F. */
        o->ssrc = (uint32_t)(gb_lower_random(l) % 10000);
        snprintf(o->ssrc_text, sizeof(o->ssrc_text), "0%.5s%04u", l->domain + 3, o->ssrc);
        gb_ssrc_to_u32(str_from_cstr(o->ssrc_text), &o->ssrc);
    }
out:
    arena_free(&a);
    return status;
}

void gb_lower_on_invite(struct gb_lower *l, struct gb_upstream *up, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    struct gb_lchan *c = gb_lchan_find(l, m->ruri.user);
    struct offer o;
    memset(&o, 0, sizeof(o));
    const char *why;
    int status = read_offer(l, m, &o, &why);
    if (status) {
        log_warn("gb lower: INVITE for %s from upstream %s at %s refused %d: %s", c->id, up->cfg.id, rx->src_text,
                 status, why ? why : "bad SDP");
        respond(st, status, NULL);
        return;
    }
    if (!strcmp(c->status, "OFF")) {
        log_info("gb lower: INVITE for %s (status OFF): 480", c->id);
        respond(st, 480, NULL);
        return;
    }
    struct gb_media_clip *clip = gb_lower_clip(l, c->media);
    if (!clip) {
        respond(st, 500, "Media Unavailable");
        return;
    }
    struct gb_lstream *s = calloc(1, sizeof(*s));
    if (!s) {
        respond(st, 500, NULL);
        return;
    }
    s->l = l;
    s->up = up;
    s->started_at = clock_wall_ms();
    snprintf(s->channel_id, sizeof(s->channel_id), "%s", c->id);
    snprintf(s->ssrc, sizeof(s->ssrc), "%s", o.ssrc_text);
    snprintf(s->remote, sizeof(s->remote), "%s", o.remote_text);
    struct gb_media_sender_config mc = {.loop = l->w->loop, .timers = &l->w->timers, .proto = o.proto,
                                        .local_ip = l->media_ip, .remote = o.remote, .ssrc = o.ssrc,
                                        .payload_type = (uint8_t)o.pt, .clip = clip, .loop_clip = true};
    int err = 0;
    s->sender = gb_media_sender_new(&mc, &lstream_sender_cb, s, &err);
    if (!s->sender) {
        log_warn("gb lower: media socket for %s on %s: %s", c->id, l->media_ip, uv_strerror(err));
        free(s);
        respond(st, 500, "Media Unavailable");
        return;
    }
    bool tcp = o.proto != GB_MEDIA_UDP;
    sbuf_t sdp;
    sbuf_init(&sdp);
    bool v6 = strchr(l->media_ip, ':') != NULL;
    sbuf_printf(&sdp,
                "v=0\r\n"
                "o=%s 0 0 IN %s %s\r\n"
                "s=%s\r\n"
                "c=IN %s %s\r\n"
                "t=0 0\r\n"
                "m=video %u %s %u\r\n"
                "a=sendonly\r\n"
                "a=rtpmap:%u PS/90000\r\n",
                c->id, v6 ? "IP6" : "IP4", l->media_ip, o.session, v6 ? "IP6" : "IP4", l->media_ip,
                gb_media_sender_local_port(s->sender), tcp ? "TCP/RTP/AVP" : "RTP/AVP", o.pt, o.pt);
    if (tcp)
        sbuf_printf(&sdp, "a=setup:%s\r\na=connection:new\r\n",
                    o.proto == GB_MEDIA_TCP_ACTIVE ? "active" : "passive");
    sbuf_printf(&sdp, "y=%s\r\n", o.ssrc_text);
    if (sdp.failed) {
        sbuf_free(&sdp);
        gb_media_sender_free(s->sender);
        free(s);
        respond(st, 500, NULL);
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
        respond(st, 500, NULL);
        lstream_unlink(l, s);
        gb_media_sender_free(s->sender);
        free(s);
        return;
    }
    log_info("gb lower: INVITE for %s from upstream %s: %s to %s, ssrc %s, PT %u", c->id, up->cfg.id,
             gb_media_proto_name(o.proto), o.remote_text, o.ssrc_text, o.pt);
}
