/* test_gb_lower.c — the media side of the GB lower role and the simulator
 * (src/media/media_sender.c): the clip index, the built-in clip, SDP offer
 * reading and answer writing (a=setup roles, y=, the PS payload type), and
 * real streams on loopback — UDP, TCP passive (we listen) and TCP active (we
 * connect) — checked packet by packet (RTP header, SSRC, sequence, 90 kHz
 * timestamps at the clip's frame rate, marker per frame, RFC 4571 framing)
 * and frame by frame through the PS demuxer. Also the middle node's answers
 * to queries relayed to a device (src/gb/lower/lower_query.c): the upper role's
 * JSON of the device's Response written back as MANSCDP for the upstream.
 * Last, the role built from its collaborators (gb_lower_new with [gb], the
 * upstreams, sip_local and the real txn layer, UA and event bus; a fake clock,
 * every message sent recorded): registration to an upstream, its refresh,
 * backoff and the unregister at stop, and the local directory; as a middle
 * node across cascade nodes, which events of the cluster's view carry other
 * nodes' alarms and positions up, and those going up within the upstream's
 * subscriptions, their NOTIFYs in flight capped. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "app/config.h"
#include "app/config.h"
#include "app/events_stream.h"
#include "base/timer.h"
#include "events/events.h"
#include "gb/lower/lower.h"
#include "gb/lower/lower_int.h"
#include "sip/local.h"
#include "txn/txn.h"
#include "ua/ua.h"
#include "media/g711.h"
#include "media/media_sender.h"
#include "media/ps.h"
#include "media/rtp.h"
#include "transport/transport.h"

/* ---- a loop driving a timer service, as the worker does ---- */

struct h {
    uv_loop_t loop;
    struct timer_service timers;
    uv_timer_t driver;
    uv_prepare_t prepare;
    /* what the receiver saw */
    uint8_t pkts[2048][1500];
    size_t lens[2048];
    size_t npkts;
    gb_rtp_deframer_t deframer;
    uv_udp_t udp;
    uv_tcp_t server, conn;
    bool conn_open, server_open;
    int stopped;
    char stop_reason[32];
    struct gb_media_sender *s;
};

static void driver_cb(uv_timer_t *t)
{
    struct h *h = t->data;
    timer_run(&h->timers, uv_now(&h->loop));
}

static void prepare_cb(uv_prepare_t *p)
{
    struct h *h = p->data;
    uint64_t next = timer_next_deadline(&h->timers), now = uv_now(&h->loop);
    if (next == UINT64_MAX) uv_timer_stop(&h->driver);
    else uv_timer_start(&h->driver, driver_cb, next > now ? next - now : 0, 0);
}

static int setup(void **state)
{
    struct h *h = calloc(1, sizeof(*h));
    assert_int_equal(uv_loop_init(&h->loop), 0);
    timer_service_init(&h->timers);
    uv_timer_init(&h->loop, &h->driver);
    h->driver.data = h;
    uv_prepare_init(&h->loop, &h->prepare);
    h->prepare.data = h;
    uv_prepare_start(&h->prepare, prepare_cb);
    gb_rtp_deframer_init(&h->deframer);
    *state = h;
    return 0;
}

static void close_cb(uv_handle_t *hd) { (void)hd; }

static int teardown(void **state)
{
    struct h *h = *state;
    gb_media_sender_free(h->s);
    uv_close((uv_handle_t *)&h->driver, close_cb);
    uv_close((uv_handle_t *)&h->prepare, close_cb);
    if (h->udp.loop) uv_close((uv_handle_t *)&h->udp, close_cb);
    if (h->conn_open) uv_close((uv_handle_t *)&h->conn, close_cb);
    if (h->server_open) uv_close((uv_handle_t *)&h->server, close_cb);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    timer_service_free(&h->timers);
    gb_rtp_deframer_free(&h->deframer);
    free(h);
    return 0;
}

static void wake_cb(uv_timer_t *t) { (void)t; }

/* Runs the loop for ms milliseconds; a timer makes sure it wakes up. */
static void run_for(struct h *h, uint64_t ms)
{
    uv_timer_t wake;
    uv_timer_init(&h->loop, &wake);
    uv_update_time(&h->loop);
    uint64_t end = uv_now(&h->loop) + ms;
    for (uint64_t now = uv_now(&h->loop); now < end; now = uv_now(&h->loop)) {
        if (!uv_is_active((uv_handle_t *)&wake)) uv_timer_start(&wake, wake_cb, end - now, 0);
        uv_run(&h->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&h->loop, UV_RUN_NOWAIT);
}

static void keep_packet(struct h *h, const uint8_t *p, size_t n)
{
    if (h->npkts == 2048 || n > 1500) return;
    memcpy(h->pkts[h->npkts], p, n);
    h->lens[h->npkts++] = n;
}

static void on_stopped(void *arg, struct gb_media_sender *s, const char *reason)
{
    (void)s;
    struct h *h = arg;
    h->stopped++;
    snprintf(h->stop_reason, sizeof(h->stop_reason), "%s", reason);
}
static const struct gb_media_sender_cb sender_cb = {.on_stopped = on_stopped};

static struct gb_media_clip *builtin(void)
{
    size_t len;
    const uint8_t *data = gb_media_builtin_clip(&len);
    char err[128];
    struct gb_media_clip *c = gb_media_clip_from_buffer(data, len, err, sizeof(err));
    assert_non_null(c);
    return c;
}

/* ---- checking what arrived ---- */

struct demux_seen {
    int frames, keys;
    gb_codec_t codec;
    bool first_key;
};

static void on_frame(void *arg, const gb_ps_frame_t *f)
{
    struct demux_seen *d = arg;
    if (d->frames == 0) d->first_key = f->key;
    d->frames++;
    d->keys += f->key;
    d->codec = f->codec;
}

/* RTP shape (RFC 3550 §5.1, GB/T 28181 §C): version 2, PT, SSRC, consecutive
 * sequence, one timestamp per frame with the marker on its last packet,
 * frame-to-frame steps of 90000/fps; then the payload as PS. Returns frames. */
static int check_stream(struct h *h, uint32_t ssrc, uint8_t pt, double fps)
{
    assert_true(h->npkts > 4);
    gb_ps_demux_t dm;
    struct demux_seen seen = {0};
    gb_ps_demux_init(&dm, on_frame, &seen);
    uint32_t frame_ts = 0;
    int frames = 0;
    bool in_frame = false;
    for (size_t i = 0; i < h->npkts; i++) {
        gb_rtp_packet_t p;
        assert_int_equal(gb_rtp_parse(h->pkts[i], h->lens[i], &p), 0);
        assert_int_equal(p.version, 2);
        assert_int_equal(p.payload_type, pt);
        assert_int_equal(p.ssrc, ssrc);
        if (i) {
            gb_rtp_packet_t prev;
            gb_rtp_parse(h->pkts[i - 1], h->lens[i - 1], &prev);
            assert_int_equal((uint16_t)(prev.seq + 1), p.seq);
        }
        if (!in_frame) {
            if (frames) {
                uint32_t step = p.timestamp - frame_ts;
                uint32_t want = (uint32_t)(90000.0 / fps + 0.5);
                assert_true(step + 1 >= want && step <= want + 1);
            }
            frame_ts = p.timestamp;
            in_frame = true;
        } else {
            assert_int_equal(p.timestamp, frame_ts);
        }
        if (p.marker) {
            in_frame = false;
            frames++;
        }
        assert_int_equal(gb_ps_demux_feed(&dm, p.payload, p.payload_len), 0);
    }
    gb_ps_demux_flush(&dm);
    gb_ps_demux_free(&dm);
    assert_true(seen.frames >= frames - 1);
    assert_true(seen.first_key);
    assert_int_equal(seen.codec, GB_CODEC_H264);
    return frames;
}

/* ---- clips ---- */

static void test_builtin_clip_is_the_test_clip(void **state)
{
    (void)state;
    char err[128];
    struct gb_media_clip *file = gb_media_clip_load("../data/clip.h264", err, sizeof(err));
    assert_non_null(file);
    size_t len;
    const uint8_t *data = gb_media_builtin_clip(&len);
    FILE *f = fopen("../data/clip.h264", "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(len + 1);
    assert_int_equal(fread(buf, 1, len + 1, f), len);
    fclose(f);
    assert_memory_equal(buf, data, len);
    free(buf);
    assert_int_equal(gb_media_clip_frames(file), 50);
    assert_true(gb_media_clip_fps(file) > 24.9 && gb_media_clip_fps(file) < 25.1);
    assert_int_equal(gb_media_clip_codec(file), GB_CODEC_H264);
    gb_media_clip_unref(file);
}

static void test_clip_refusals(void **state)
{
    (void)state;
    char err[128];
    assert_null(gb_media_clip_load("/nonexistent/clip.h264", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent"));
    const uint8_t junk[] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_null(gb_media_clip_from_buffer(junk, sizeof(junk), err, sizeof(err)));
    assert_null(gb_media_clip_from_buffer(junk, 0, err, sizeof(err)));
}

/* ---- offer / answer ---- */

static const char *OFFER_UDP = "v=0\r\n"
                               "o=34020000002000000001 0 0 IN IP4 192.0.2.10\r\n"
                               "s=Play\r\n"
                               "c=IN IP4 192.0.2.10\r\n"
                               "t=0 0\r\n"
                               "m=video 30000 RTP/AVP 96 97 98\r\n"
                               "a=recvonly\r\n"
                               "a=rtpmap:96 PS/90000\r\n"
                               "a=rtpmap:97 MPEG4/90000\r\n"
                               "a=rtpmap:98 H264/90000\r\n"
                               "y=0100000001\r\n";

static void test_offer_udp(void **state)
{
    (void)state;
    struct gb_media_offer o;
    const char *why;
    assert_int_equal(gb_media_offer_parse(STR_LIT("application/sdp"), str_from_cstr(OFFER_UDP), &o, &why), 0);
    assert_int_equal(o.proto, GB_MEDIA_UDP);
    assert_string_equal(o.remote_text, "192.0.2.10:30000");
    assert_true(o.has_ssrc);
    assert_string_equal(o.ssrc_text, "0100000001");
    assert_int_equal(o.ssrc, 100000001u);
    assert_int_equal(o.pt, 96);
    assert_string_equal(o.session, "Play");
    sbuf_t out;
    sbuf_init(&out);
    assert_int_equal(gb_media_answer_sdp(&out, "34020000001310000001", "192.0.2.20", 40000, &o), 0);
    sbuf_append_char(&out, '\0');
    assert_non_null(strstr(out.data, "m=video 40000 RTP/AVP 96\r\n"));
    assert_non_null(strstr(out.data, "a=sendonly\r\n"));
    assert_non_null(strstr(out.data, "a=rtpmap:96 PS/90000\r\n"));
    assert_non_null(strstr(out.data, "c=IN IP4 192.0.2.20\r\n"));
    assert_non_null(strstr(out.data, "y=0100000001\r\n"));
    assert_null(strstr(out.data, "a=setup"));
    sbuf_free(&out);
}

static void test_offer_tcp_roles(void **state)
{
    (void)state;
    const char *passive = "v=0\r\no=x 0 0 IN IP4 192.0.2.10\r\ns=Playback\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
                          "m=video 30002 TCP/RTP/AVP 100\r\na=recvonly\r\na=rtpmap:100 PS/90000\r\n"
                          "a=setup:passive\r\na=connection:new\r\ny=1100000002\r\n";
    struct gb_media_offer o;
    const char *why;
    assert_int_equal(gb_media_offer_parse(STR_LIT("Application/SDP"), str_from_cstr(passive), &o, &why), 0);
    assert_int_equal(o.proto, GB_MEDIA_TCP_ACTIVE); /* they listen, we connect */
    assert_int_equal(o.pt, 100);
    assert_string_equal(o.session, "Playback");
    sbuf_t out;
    sbuf_init(&out);
    gb_media_answer_sdp(&out, "34020000001310000001", "192.0.2.20", 40002, &o);
    sbuf_append_char(&out, '\0');
    assert_non_null(strstr(out.data, "m=video 40002 TCP/RTP/AVP 100\r\n"));
    assert_non_null(strstr(out.data, "a=setup:active\r\n"));
    assert_non_null(strstr(out.data, "a=connection:new\r\n"));
    assert_non_null(strstr(out.data, "s=Playback\r\n"));
    sbuf_free(&out);

    char active[512];
    snprintf(active, sizeof(active), "%s", passive);
    memcpy(strstr(active, "setup:passive") + 6, "active\r\na=x", 11);
    assert_int_equal(gb_media_offer_parse(STR_LIT("application/sdp"), str_from_cstr(active), &o, &why), 0);
    assert_int_equal(o.proto, GB_MEDIA_TCP_PASSIVE); /* they connect, we listen */
}

static void test_offer_refusals(void **state)
{
    (void)state;
    struct gb_media_offer o;
    const char *why;
    assert_int_equal(gb_media_offer_parse(STR_LIT("text/plain"), str_from_cstr(OFFER_UDP), &o, &why), 488);
    assert_int_equal(gb_media_offer_parse(STR_LIT("application/sdp"), STR_NULL, &o, &why), 488);
    const char *audio = "v=0\r\no=x 0 0 IN IP4 1.2.3.4\r\ns=Play\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
                        "m=audio 30000 RTP/AVP 8\r\n";
    assert_int_equal(gb_media_offer_parse(STR_LIT("application/sdp"), str_from_cstr(audio), &o, &why), 488);
    assert_non_null(why);
    const char *savp = "v=0\r\no=x 0 0 IN IP4 1.2.3.4\r\ns=Play\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
                       "m=video 30000 RTP/SAVP 96\r\n";
    assert_int_equal(gb_media_offer_parse(STR_LIT("application/sdp"), str_from_cstr(savp), &o, &why), 488);
    const char *name = "v=0\r\no=x 0 0 IN IP4 1.2.3.4\r\ns=Play\r\nc=IN IP4 cam.example\r\nt=0 0\r\n"
                       "m=video 30000 RTP/AVP 96\r\n";
    assert_int_equal(gb_media_offer_parse(STR_LIT("application/sdp"), str_from_cstr(name), &o, &why), 488);
    assert_int_equal(gb_media_offer_parse(STR_LIT("application/sdp"), STR_LIT("v=0\r\nq=bad\r\n"), &o, &why), 400);
    const char *no_y = "v=0\r\no=x 0 0 IN IP4 1.2.3.4\r\ns=Play\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
                       "m=video 30000 RTP/AVP 96\r\n";
    assert_int_equal(gb_media_offer_parse(STR_LIT("application/sdp"), str_from_cstr(no_y), &o, &why), 0);
    assert_false(o.has_ssrc);
}

/* ---- streams on loopback ---- */

static void udp_alloc(uv_handle_t *hd, size_t s, uv_buf_t *b)
{
    (void)hd;
    (void)s;
    static char buf[65536]; /* test receiver only */
    *b = uv_buf_init(buf, sizeof(buf));
}

static void udp_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *a, unsigned flags)
{
    (void)a;
    (void)flags;
    if (n > 0) keep_packet(u->data, (const uint8_t *)b->base, (size_t)n);
}

static uint16_t bound_port_udp(uv_udp_t *u)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_udp_getsockname(u, (struct sockaddr *)&ss, &len);
    return transport_addr_port(&ss);
}

static void test_udp_stream(void **state)
{
    struct h *h = *state;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_udp_init(&h->loop, &h->udp);
    h->udp.data = h;
    assert_int_equal(uv_udp_bind(&h->udp, (const struct sockaddr *)&a, 0), 0);
    uv_udp_recv_start(&h->udp, udp_alloc, udp_recv);
    struct gb_media_clip *clip = builtin();
    struct gb_media_sender_config c = {.loop = &h->loop, .timers = &h->timers, .proto = GB_MEDIA_UDP,
                                       .local_ip = "127.0.0.1", .ssrc = 100000001u, .clip = clip, .loop_clip = true};
    transport_addr_parse("127.0.0.1", 9, bound_port_udp(&h->udp), &c.remote);
    int err = 0;
    h->s = gb_media_sender_new(&c, &sender_cb, h, &err);
    gb_media_clip_unref(clip); /* the sender holds its own reference */
    assert_non_null(h->s);
    assert_true(gb_media_sender_local_port(h->s) > 0);
    run_for(h, 100);
    assert_int_equal(h->npkts, 0); /* nothing before start (the ACK) */
    assert_int_equal(gb_media_sender_start(h->s), 0);
    run_for(h, 500);
    int frames = check_stream(h, 100000001u, 96, 25.0);
    /* 500 ms at 25 fps: about 13 frames (paced, not a burst). */
    assert_true(frames >= 9 && frames <= 15);
    struct gb_media_sender_stats st;
    gb_media_sender_get_stats(h->s, &st);
    assert_int_equal(st.packets, h->npkts);
    assert_int_equal(h->stopped, 0);
}

/* ---- audio: the G.711 tone beside the video ---- */

struct audio_seen {
    int pes, bad_type, gaps, too_long;
    uint64_t samples, next_pts;
    int16_t peak;
    int crossings;
    int16_t last;
};

static void on_audio(void *arg, const gb_ps_audio_t *a)
{
    struct audio_seen *d = arg;
    if (a->stream_type != GB_PS_STREAM_TYPE_PCMA || !a->has_pts) d->bad_type++;
    if (a->len > 320) d->too_long++;
    /* Contiguous: each PES starts where the previous ended (11.25 ticks a sample, rounded down). */
    if (d->pes && (a->pts + 1 < d->next_pts || a->pts > d->next_pts + 1)) d->gaps++;
    d->next_pts = a->pts + (uint64_t)a->len * 90000 / 8000;
    for (size_t i = 0; i < a->len; i++) {
        int16_t v = gb_g711_alaw_decode(a->data[i]);
        if (v > d->peak) d->peak = v;
        if ((d->last < 0) != (v < 0)) d->crossings++;
        d->last = v;
    }
    d->samples += a->len;
    d->pes++;
}

static void count_frame(void *arg, const gb_ps_frame_t *f)
{
    int *frames = arg;
    (*frames)++;
    assert_int_equal(f->audio_stream_type, GB_PS_STREAM_TYPE_PCMA);
}

/* With audio, every frame is followed by its 40 ms of A-law (at 25 fps:
 * one PES of 320 samples), a 440 Hz tone at about -12 dBFS, contiguous in
 * PTS, and the PSM lists it; the video is as without audio. */
static void test_udp_stream_with_audio(void **state)
{
    struct h *h = *state;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_udp_init(&h->loop, &h->udp);
    h->udp.data = h;
    assert_int_equal(uv_udp_bind(&h->udp, (const struct sockaddr *)&a, 0), 0);
    uv_udp_recv_start(&h->udp, udp_alloc, udp_recv);
    struct gb_media_clip *clip = builtin();
    struct gb_media_sender_config c = {.loop = &h->loop, .timers = &h->timers, .proto = GB_MEDIA_UDP,
                                       .local_ip = "127.0.0.1", .ssrc = 100000002u, .clip = clip,
                                       .loop_clip = true, .audio = GB_MEDIA_AUDIO_PCMA};
    transport_addr_parse("127.0.0.1", 9, bound_port_udp(&h->udp), &c.remote);
    h->s = gb_media_sender_new(&c, &sender_cb, h, NULL);
    gb_media_clip_unref(clip);
    assert_non_null(h->s);
    assert_int_equal(gb_media_sender_start(h->s), 0);
    run_for(h, 600);
    int frames = check_stream(h, 100000002u, 96, 25.0);
    assert_true(frames >= 5);

    gb_ps_demux_t dm;
    int vframes = 0;
    struct audio_seen seen = {0};
    gb_ps_demux_init(&dm, count_frame, &vframes);
    gb_ps_demux_set_audio_cb(&dm, on_audio, &seen);
    for (size_t i = 0; i < h->npkts; i++) {
        gb_rtp_packet_t p;
        assert_int_equal(gb_rtp_parse(h->pkts[i], h->lens[i], &p), 0);
        assert_int_equal(gb_ps_demux_feed(&dm, p.payload, p.payload_len), 0);
    }
    gb_ps_demux_flush(&dm);
    assert_int_equal(dm.stats.pes_other, 0);
    gb_ps_demux_free(&dm);
    assert_int_equal(seen.pes, frames); /* one 40 ms PES per frame at 25 fps */
    assert_int_equal(seen.samples, (uint64_t)frames * 320);
    assert_int_equal(seen.bad_type + seen.gaps + seen.too_long, 0);
    assert_true(seen.peak > 7000 && seen.peak < 9000);
    /* 440 Hz: 880 sign changes a second (8 samples of the first are its own start). */
    double rate = seen.crossings * 8000.0 / (double)seen.samples;
    assert_true(rate > 860 && rate < 900);
    struct gb_media_sender_stats st;
    gb_media_sender_get_stats(h->s, &st);
    assert_int_equal(st.audio_pes, (uint64_t)frames);
    assert_int_equal(st.audio_samples, seen.samples);
}

static void test_udp_loops_the_clip(void **state)
{
    struct h *h = *state;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_udp_init(&h->loop, &h->udp);
    h->udp.data = h;
    uv_udp_bind(&h->udp, (const struct sockaddr *)&a, 0);
    uv_udp_recv_start(&h->udp, udp_alloc, udp_recv);
    /* The first 3 frames of the clip (SPS/PPS/IDR + 2 P frames). */
    size_t len;
    const uint8_t *data = gb_media_builtin_clip(&len);
    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H264, data, len);
    gb_au_t au;
    size_t end = 0;
    for (int i = 0; i < 3 && gb_au_reader_next(&r, &au); i++) end = (size_t)(au.data + au.len - data);
    char err[128];
    struct gb_media_clip *clip = gb_media_clip_from_buffer(data, end, err, sizeof(err));
    assert_non_null(clip);
    assert_int_equal(gb_media_clip_frames(clip), 3);
    struct gb_media_sender_config c = {.loop = &h->loop, .timers = &h->timers, .proto = GB_MEDIA_UDP,
                                       .local_ip = "127.0.0.1", .ssrc = 7, .payload_type = 100, .clip = clip,
                                       .loop_clip = true};
    transport_addr_parse("127.0.0.1", 9, bound_port_udp(&h->udp), &c.remote);
    h->s = gb_media_sender_new(&c, &sender_cb, h, NULL);
    gb_media_clip_unref(clip);
    assert_non_null(h->s);
    gb_media_sender_start(h->s);
    run_for(h, 400);
    int frames = check_stream(h, 7, 100, gb_media_clip_fps(clip));
    assert_true(frames >= 7);
    struct gb_media_sender_stats st;
    gb_media_sender_get_stats(h->s, &st);
    assert_true(st.loops >= 2); /* timestamps kept growing across loops (checked above) */
}

/* TCP: the receiver's side. */
static void tcp_alloc(uv_handle_t *hd, size_t s, uv_buf_t *b)
{
    (void)hd;
    (void)s;
    static char buf[65536];
    *b = uv_buf_init(buf, sizeof(buf));
}

static int deframed(void *arg, const uint8_t *pkt, size_t len)
{
    keep_packet(arg, pkt, len);
    return 0;
}

static void tcp_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct h *h = st->data;
    if (n > 0) assert_int_equal(gb_rtp_deframer_feed(&h->deframer, (const uint8_t *)b->base, (size_t)n, deframed, h), 0);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct h *h = req->data;
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&h->conn, tcp_alloc, tcp_read);
}

static void test_tcp_passive(void **state)
{
    struct h *h = *state;
    struct gb_media_clip *clip = builtin();
    struct gb_media_sender_config c = {.loop = &h->loop, .timers = &h->timers, .proto = GB_MEDIA_TCP_PASSIVE,
                                       .local_ip = "127.0.0.1", .ssrc = 200000002u, .clip = clip, .loop_clip = true};
    h->s = gb_media_sender_new(&c, &sender_cb, h, NULL);
    gb_media_clip_unref(clip);
    assert_non_null(h->s);
    uint16_t port = gb_media_sender_local_port(h->s);
    assert_true(port > 0);
    /* The upper connects to the port we answered (a=setup:active on its side). */
    uv_tcp_init(&h->loop, &h->conn);
    h->conn.data = h;
    h->conn_open = true;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_connect_t req;
    req.data = h;
    uv_tcp_connect(&req, &h->conn, (const struct sockaddr *)&a, on_connected);
    run_for(h, 100);
    assert_int_equal(h->npkts, 0);
    gb_media_sender_start(h->s);
    run_for(h, 500);
    int frames = check_stream(h, 200000002u, 96, 25.0);
    assert_true(frames >= 9);
    struct gb_media_sender_stats st;
    gb_media_sender_get_stats(h->s, &st);
    assert_true(st.connected);
    /* The receiver hangs up: the stream stops on its own and says why. */
    uv_close((uv_handle_t *)&h->conn, close_cb);
    h->conn_open = false;
    run_for(h, 200);
    assert_int_equal(h->stopped, 1);
    assert_string_equal(h->stop_reason, "peer-closed");
}

static void on_accept(uv_stream_t *server, int status)
{
    struct h *h = server->data;
    assert_int_equal(status, 0);
    uv_tcp_init(&h->loop, &h->conn);
    h->conn.data = h;
    h->conn_open = true;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&h->conn), 0);
    uv_read_start((uv_stream_t *)&h->conn, tcp_alloc, tcp_read);
}

static void test_tcp_active(void **state)
{
    struct h *h = *state;
    uv_tcp_init(&h->loop, &h->server);
    h->server.data = h;
    h->server_open = true;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&h->server, (const struct sockaddr *)&a, 0);
    assert_int_equal(uv_listen((uv_stream_t *)&h->server, 4, on_accept), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&h->server, (struct sockaddr *)&ss, &len);
    struct gb_media_clip *clip = builtin();
    struct gb_media_sender_config c = {.loop = &h->loop, .timers = &h->timers, .proto = GB_MEDIA_TCP_ACTIVE,
                                       .local_ip = "127.0.0.1", .ssrc = 3, .clip = clip, .loop_clip = true,
                                       .remote = ss};
    h->s = gb_media_sender_new(&c, &sender_cb, h, NULL);
    gb_media_clip_unref(clip);
    assert_non_null(h->s);
    assert_int_equal(gb_media_sender_start(h->s), 0);
    run_for(h, 500);
    int frames = check_stream(h, 3, 96, 25.0);
    assert_true(frames >= 9);
    assert_int_equal(h->stopped, 0);
}

static void test_tcp_active_refused(void **state)
{
    struct h *h = *state;
    /* A port nobody listens on: bind one, note it, close it. */
    uv_tcp_t tmp;
    uv_tcp_init(&h->loop, &tmp);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&tmp, (const struct sockaddr *)&a, 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&tmp, (struct sockaddr *)&ss, &len);
    uv_close((uv_handle_t *)&tmp, close_cb);
    run_for(h, 10);
    struct gb_media_clip *clip = builtin();
    struct gb_media_sender_config c = {.loop = &h->loop, .timers = &h->timers, .proto = GB_MEDIA_TCP_ACTIVE,
                                       .local_ip = "127.0.0.1", .ssrc = 3, .clip = clip, .remote = ss};
    h->s = gb_media_sender_new(&c, &sender_cb, h, NULL);
    gb_media_clip_unref(clip);
    assert_non_null(h->s);
    gb_media_sender_start(h->s);
    run_for(h, 300);
    assert_int_equal(h->stopped, 1);
    assert_string_equal(h->stop_reason, "connect-failed");
}

static void test_passive_accept_timeout(void **state)
{
    struct h *h = *state;
    struct gb_media_clip *clip = builtin();
    struct gb_media_sender_config c = {.loop = &h->loop, .timers = &h->timers, .proto = GB_MEDIA_TCP_PASSIVE,
                                       .local_ip = "127.0.0.1", .ssrc = 3, .clip = clip, .connect_timeout_ms = 150};
    h->s = gb_media_sender_new(&c, &sender_cb, h, NULL);
    gb_media_clip_unref(clip);
    assert_non_null(h->s);
    gb_media_sender_start(h->s);
    run_for(h, 400);
    assert_int_equal(h->stopped, 1);
    assert_string_equal(h->stop_reason, "accept-timeout");
}

static void test_bad_config(void **state)
{
    struct h *h = *state;
    struct gb_media_clip *clip = builtin();
    struct gb_media_sender_config c = {.loop = &h->loop, .timers = &h->timers, .proto = GB_MEDIA_UDP,
                                       .local_ip = "not-an-ip", .clip = clip};
    int err = 0;
    assert_null(gb_media_sender_new(&c, &sender_cb, h, &err));
    assert_int_not_equal(err, 0);
    c.local_ip = "127.0.0.1";
    c.clip = NULL;
    assert_null(gb_media_sender_new(&c, &sender_cb, h, &err));
    gb_media_clip_unref(clip);
}

/* ---- relayed query answers ---- */

static void parse_relayed(const struct gb_relay_ask *ask, gb_charset_t cs, int status, const char *answer_json,
                          gb_manscdp_t *m)
{
    json_t *answer = answer_json ? json_loads(answer_json, 0, NULL) : NULL;
    assert_true(!answer_json || answer);
    sbuf_t body;
    sbuf_init(&body);
    assert_int_equal(gb_lower_relayed_body(&body, cs, ask, status, answer), 0);
    json_decref(answer);
    assert_int_equal(gb_manscdp_parse(body.data, body.len, NULL, m), 0);
    sbuf_free(&body);
    assert_int_equal(m->kind, GB_MSG_RESPONSE);
    assert_int_equal(m->cmd, ask->cmd);
    assert_int_equal(m->sn, ask->sn);
    assert_string_equal(m->device_id, ask->id); /* the id the upstream asked, whatever the device wrote */
}

static void test_relayed_info(void **state)
{
    (void)state;
    struct gb_relay_ask ask = {.cmd = GB_CMD_DEVICE_INFO, .sn = 77, .id = "34020000001310000003"};
    gb_manscdp_t m;
    parse_relayed(&ask, GB_CHARSET_GB2312, 200,
                  "{\"device_id\":\"34020000001320000002\",\"result\":\"OK\",\"device_name\":\"模拟设备2\","
                  "\"manufacturer\":\"cascade-gbsim\",\"model\":\"SIM-IPC\",\"firmware\":\"1.0\",\"channel\":2}",
                  &m);
    char text[256];
    snprintf(text, sizeof(text), "%s|%s|%s|%s|%s|%d", m.result, m.info.device_name, m.info.manufacturer,
             m.info.model, m.info.firmware, m.info.channel);
    assert_string_equal(text, "OK|模拟设备2|cascade-gbsim|SIM-IPC|1.0|2");
    gb_manscdp_free(&m);

    /* The device's own Result is passed on. */
    parse_relayed(&ask, GB_CHARSET_UTF8, 200, "{\"result\":\"ERROR\",\"channel\":null}", &m);
    assert_string_equal(m.result, "ERROR");
    assert_int_equal(m.info.channel, -1);
    gb_manscdp_free(&m);

    /* Timed out / offline: Result ERROR and nothing made up. */
    parse_relayed(&ask, GB_CHARSET_GB2312, 504, "{\"error\":\"timeout\",\"detail\":\"x\"}", &m);
    assert_string_equal(m.result, "ERROR");
    assert_null(m.info.manufacturer);
    assert_null(m.info.device_name);
    gb_manscdp_free(&m);
}

static void test_relayed_status(void **state)
{
    (void)state;
    struct gb_relay_ask ask = {.cmd = GB_CMD_DEVICE_STATUS, .sn = 5, .id = "34020000001320000002"};
    gb_manscdp_t m;
    parse_relayed(&ask, GB_CHARSET_GB2312, 200,
                  "{\"result\":\"OK\",\"online\":\"ONLINE\",\"status\":\"OK\",\"encode\":\"ON\",\"record\":\"OFF\","
                  "\"device_time\":\"2026-11-21T10:00:00\",\"alarms\":[{\"device_id\":\"34020000001340000001\","
                  "\"duty_status\":\"ONDUTY\"}]}",
                  &m);
    char text[256];
    assert_int_equal(m.dstatus.alarm_count, 1);
    snprintf(text, sizeof(text), "%s|%s|%s|%s|%s|%s|%s=%s", m.result, m.status, m.dstatus.online, m.dstatus.encode,
             m.dstatus.record, m.dstatus.device_time, m.dstatus.alarms[0].device_id, m.dstatus.alarms[0].duty_status);
    assert_string_equal(text, "OK|OK|ONLINE|ON|OFF|2026-11-21T10:00:00|34020000001340000001=ONDUTY");
    gb_manscdp_free(&m);

    parse_relayed(&ask, GB_CHARSET_GB2312, 409, NULL, &m);
    assert_string_equal(m.result, "ERROR");
    assert_string_equal(m.status, "ERROR");
    assert_string_equal(m.dstatus.online, "OFFLINE");
    assert_null(m.dstatus.encode);
    gb_manscdp_free(&m);
}

static gb_record_item_t *records_of(const json_t *answer, const char *type, size_t *n)
{
    gb_record_item_t *recs = NULL;
    size_t cap = 0;
    *n = 0;
    assert_int_equal(gb_lower_records_from_json(answer, type, &recs, n, &cap), 0);
    return recs;
}

static void test_relayed_records(void **state)
{
    (void)state;
    json_t *answer = json_loads("{\"device_id\":\"34020000001320000002\",\"channel\":\"34020000001310000003\","
                                "\"sum_num\":3,\"records\":["
                                "{\"device_id\":\"34020000001310000003\",\"name\":\"a\",\"start\":\"2026-01-01T00:00:00\","
                                "\"end\":\"2026-01-01T01:00:00\",\"type\":\"time\",\"file_path\":\"/r/a\",\"file_size\":1000},"
                                "{\"device_id\":\"34020000001310000003\",\"name\":\"b\",\"start\":\"2026-01-01T01:00:00\","
                                "\"end\":\"2026-01-01T02:00:00\",\"type\":\"alarm\",\"file_path\":null},"
                                "{\"device_id\":null}]}",
                                0, NULL);
    assert_non_null(answer);
    size_t n;
    gb_record_item_t *recs = records_of(answer, "all", &n);
    assert_int_equal(n, 3);
    assert_string_equal(recs[0].start_time, "2026-01-01T00:00:00");
    assert_string_equal(recs[0].file_path, "/r/a");
    assert_int_equal(recs[0].file_size, 1000);
    assert_string_equal(recs[1].file_path, ""); /* absent: empty, never NULL */
    assert_int_equal(recs[1].file_size, -1);
    assert_string_equal(recs[2].device_id, "");
    gb_lower_records_free(recs, n);

    /* The upstream's Type filter applies to what the device sent (it was asked "all"). */
    recs = records_of(answer, "alarm", &n);
    assert_int_equal(n, 1);
    assert_string_equal(recs[0].name, "b");
    gb_lower_records_free(recs, n);
    json_decref(answer);

    /* No answer (an error): no records. */
    recs = records_of(NULL, "", &n);
    assert_int_equal(n, 0);
    gb_lower_records_free(recs, n);
}

/* ---- the role built from its collaborators ---- */

#define LOWER_ID "34020000002000000002"
#define UPPER_ID "34020000002000000001"
#define LH_KEEP 256

struct lh {
    struct config cfg;                /* defaults ([sip] for the UA, [gb] for the role) */
    struct timer_service timers;
    struct txn_layer *txn;
    uv_loop_t loop;
    struct event_bus *bus;
    struct ua *ua;
    struct gb_lower *l;
    struct gb_config gb;
    struct config_upstream up;
    struct sip_local local;
    uint64_t now;
    char *sent[LH_KEEP];
    char sent_to[LH_KEEP][TRANSPORT_ADDR_TEXT];   /* where each went */
    size_t nsent;
    char events[32][48];              /* types published, in order */
    size_t nevents;
    int stop_done;
    _Alignas(16) char arena_mem[65536];
};

static int lh_record(void *u, struct transport_dest *dest, const void *data, size_t len)
{
    struct lh *h = u;
    if (h->nsent == LH_KEEP) return 0;
    transport_addr_text(&dest->addr, h->sent_to[h->nsent], sizeof(h->sent_to[0]));
    char *m = malloc(len + 1);
    assert_non_null(m);
    memcpy(m, data, len);
    m[len] = '\0';
    h->sent[h->nsent++] = m;
    return 0;
}

static uint64_t lh_now(void *u) { return ((struct lh *)u)->now; }

static void lh_on_request(void *u, struct txn *st, const struct transport_rx *rx)
{
    struct lh *h = u;
    if (ua_on_request(h->ua, st, rx)) return;
    if (h->l && gb_lower_on_request(h->l, st, rx)) return;
    txn_respond(st, 405, NULL, STR_LIT("x"), NULL, 0, STR_NULL, STR_NULL);
}
static void lh_on_ack(void *u, const struct transport_rx *rx) { ua_on_ack(((struct lh *)u)->ua, rx); }
static void lh_on_stray(void *u, const struct transport_rx *rx) { ua_on_response(((struct lh *)u)->ua, rx); }

static void lh_on_event(uint64_t seq, const char *json, size_t len, void *arg)
{
    (void)seq;
    (void)len;
    struct lh *h = arg;
    const char *t = strstr(json, "\"type\": \"");
    size_t skip = 9;
    if (!t) {
        t = strstr(json, "\"type\":\"");
        skip = 8;
    }
    if (!t || h->nevents == 32) return;
    t += skip;
    const char *e = strchr(t, '"');
    snprintf(h->events[h->nevents++], sizeof(h->events[0]), "%.*s", e ? (int)(e - t) : 0, t);
}

/* [gb] id LOWER_ID and one enabled UDP upstream UPPER_ID at 192.0.2.7:5060;
 * tests edit h->gb / h->up before lh_start. */
static int lh_setup(void **state)
{
    struct lh *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    struct config cfg;
    config_init(&cfg);
    h->gb = cfg.gb;
    snprintf(h->gb.id, sizeof(h->gb.id), LOWER_ID);
    snprintf(h->up.id, sizeof(h->up.id), UPPER_ID);
    snprintf(h->up.host, sizeof(h->up.host), "192.0.2.7");
    h->up.port = 5060;
    h->up.transport = CONFIG_TRANSPORT_UDP;
    snprintf(h->up.password, sizeof(h->up.password), "pw");
    snprintf(h->up.charset, sizeof(h->up.charset), "GB2312");
    h->up.expires = 3600;
    h->up.keepalive_interval = 3600; /* keepalives out of the way of the registration tests */
    h->up.keepalive_misses = 3;
    h->up.enabled = true;
    snprintf(h->local.host, sizeof(h->local.host), "192.0.2.1");
    h->local.port[SIP_TRANSPORT_UDP] = 5060;
    assert_int_equal(uv_loop_init(&h->loop), 0);
    h->bus = event_bus_new(&h->loop, 64, NULL);
    assert_non_null(h->bus);
    assert_int_equal(event_subscribe(h->bus, lh_on_event, h), 0);
    config_init(&h->cfg);
    h->now = 1000;
    timer_service_init(&h->timers);
    timer_run(&h->timers, h->now);
    struct txn_config xc = {.t1_ms = 500, .t2_ms = 4000, .t4_ms = 5000};
    struct txn_layer_ops ops = {.user = h, .send = lh_record, .on_request = lh_on_request, .on_ack = lh_on_ack,
                                .on_stray_response = lh_on_stray, .now_ms = lh_now};
    h->txn = txn_layer_new(&h->timers, &xc, &ops);
    assert_non_null(h->txn);
    h->ua = ua_new(&h->cfg.sip, &h->local, &h->timers, h->txn, NULL, 1);
    assert_non_null(h->ua);
    ua_set_sender(h->ua, lh_record, h);
    *state = h;
    return 0;
}

static struct gb_lower *lh_new(struct lh *h)
{
    struct gb_lower_deps deps = {.ua = h->ua, .txn = h->txn, .timers = &h->timers, .loop = &h->loop,
                                 .store = NULL, .events = h->bus};
    return gb_lower_new(&h->gb, &h->up, 1, &h->local, &deps);
}

static void lh_start(struct lh *h)
{
    h->l = lh_new(h);
    assert_non_null(h->l);
    gb_lower_start(h->l);
}

static int lh_teardown(void **state)
{
    struct lh *h = *state;
    gb_lower_free(h->l);
    ua_free(h->ua);
    txn_layer_free(h->txn);
    timer_service_free(&h->timers);
    event_bus_free(h->bus);
    uv_run(&h->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    for (size_t i = 0; i < h->nsent; i++) free(h->sent[i]);
    free(h);
    return 0;
}

static void lh_advance(struct lh *h, uint64_t ms)
{
    uint64_t end = h->now + ms;
    for (;;) {
        uint64_t next = timer_next_deadline(&h->timers);
        if (next > end) break;
        if (next > h->now) h->now = next;
        timer_run(&h->timers, h->now);
    }
    h->now = end;
    timer_run(&h->timers, h->now);
}

/* The newest message sent that starts with prefix ("REGISTER ", "MESSAGE "), or NULL. */
static const char *lh_last(const struct lh *h, const char *prefix)
{
    for (size_t i = h->nsent; i-- > 0;)
        if (!strncmp(h->sent[i], prefix, strlen(prefix))) return h->sent[i];
    return NULL;
}

/* How many different REGISTERs went out (retransmissions counted once). */
static int lh_registers(const struct lh *h)
{
    int n = 0;
    for (size_t i = 0; i < h->nsent; i++) {
        if (strncmp(h->sent[i], "REGISTER ", 9)) continue;
        bool again = false;
        const char *br = strstr(h->sent[i], "branch=");
        for (size_t j = 0; j < i && br; j++)
            if (!strncmp(h->sent[j], "REGISTER ", 9) && strstr(h->sent[j], "branch=") &&
                !strncmp(strstr(h->sent[j], "branch="), br, strcspn(br, ";\r")))
                again = true;
        n += !again;
    }
    return n;
}

static bool lh_event_seen(const struct lh *h, const char *type)
{
    for (size_t i = 0; i < h->nevents; i++)
        if (!strcmp(h->events[i], type)) return true;
    return false;
}

/* Copies the header line of req found by "\r\nName: " into b (with its CRLF). */
static void copy_line(sbuf_t *b, const char *req, const char *name)
{
    const char *p = strstr(req, name);
    assert_non_null(p);
    p += 2;
    sbuf_append(b, p, strcspn(p, "\r") + 2);
}

static void lh_feed(struct lh *h, const char *text, size_t len, const char *ip);

/* Answers req (one we sent) as the upstream would, extra: more header lines
 * ("Name: value\r\n" each) or "". */
static void lh_answer(struct lh *h, const char *req, int status, const char *reason, const char *extra)
{
    sbuf_t b;
    sbuf_init(&b);
    sbuf_printf(&b, "SIP/2.0 %d %s\r\n", status, reason);
    copy_line(&b, req, "\r\nVia: ");
    copy_line(&b, req, "\r\nFrom: ");
    const char *to = strstr(req, "\r\nTo: ");
    assert_non_null(to);
    sbuf_printf(&b, "%.*s;tag=up1\r\n", (int)strcspn(to + 2, "\r"), to + 2);
    copy_line(&b, req, "\r\nCall-ID: ");
    copy_line(&b, req, "\r\nCSeq: ");
    sbuf_printf(&b, "%sContent-Length: 0\r\n\r\n", extra);
    lh_feed(h, b.data, b.len, h->up.host);
    sbuf_free(&b);
}

/* Hands one message from ip:5060 over UDP to the transaction layer, as the
 * transport would. */
static void lh_feed(struct lh *h, const char *text, size_t len, const char *ip)
{
    arena_t arena;
    arena_init(&arena, h->arena_mem, sizeof(h->arena_mem));
    struct sip_parse_limits lim;
    sip_parse_limits_default(&lim);
    struct sip_msg msg;
    struct sip_parse_error err;
    char *buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, text, len);
    assert_int_equal(sip_parse(buf, len, &arena, &lim, &msg, &err), 0);
    struct transport_rx rx = {.msg = &msg, .proto = SIP_TRANSPORT_UDP};
    assert_int_equal(transport_addr_parse(ip, strlen(ip), 5060, &rx.src), 0);
    transport_addr_parse(h->local.host, strlen(h->local.host), 5060, &rx.local);
    snprintf(rx.src_text, sizeof(rx.src_text), "%s:5060", ip);
    txn_layer_receive(h->txn, &rx);
    arena_free(&arena);
    free(buf);
}

static const char *upstream_state(const struct lh *h)
{
    static char state[16];
    json_t *o = gb_lower_upstreams_json(h->l);
    json_t *up = json_array_get(json_object_get(o, "upstreams"), 0);
    snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(up, "state")));
    json_decref(o);
    return state;
}

static void lh_register(struct lh *h, const char *expires_line)
{
    lh_start(h);
    const char *reg = lh_last(h, "REGISTER ");
    assert_non_null(reg);
    lh_answer(h, reg, 200, "OK", expires_line);
    assert_string_equal(upstream_state(h), "registered");
}

/* GB/T 28181 §9.1.2: a platform id is 20 digits; anything else is refused at
 * construction, nothing is sent. */
static void test_role_refuses_a_bad_gb_id(void **state)
{
    struct lh *h = *state;
    snprintf(h->gb.id, sizeof(h->gb.id), "3402000000200000000");
    assert_null(lh_new(h));
    assert_int_equal(h->nsent, 0);
}

/* An enabled upstream must be reachable: a host that is not a numeric
 * address makes the role refuse to start. */
static void test_role_refuses_an_unusable_upstream(void **state)
{
    struct lh *h = *state;
    snprintf(h->up.host, sizeof(h->up.host), "upper.example");
    assert_null(lh_new(h));
}

/* GB/T 28181 §9.1.2.1 / RFC 3261 §10.2: REGISTER to sip:<upper id>@<upper
 * domain>, From and To our own address of record, Expires as configured. */
static void test_role_registers_to_its_upstream(void **state)
{
    struct lh *h = *state;
    lh_start(h);
    const char *reg = lh_last(h, "REGISTER ");
    assert_non_null(reg);
    assert_true(!strncmp(reg, "REGISTER sip:" UPPER_ID "@3402000000 SIP/2.0\r\n", 46));
    assert_non_null(strstr(reg, "\r\nFrom: <sip:" LOWER_ID "@3402000000>;tag="));
    assert_non_null(strstr(reg, "\r\nTo: <sip:" LOWER_ID "@3402000000>\r\n"));
    assert_non_null(strstr(reg, "\r\nExpires: 3600\r\n"));
    assert_non_null(strstr(reg, "Via: SIP/2.0/UDP 192.0.2.1:5060;"));
    assert_string_equal(upstream_state(h), "registering");
}

/* A 2xx makes the upstream registered for the Expires it granted, publishes
 * gb.upstream.registered and sends the first keepalive at once (§9.6). */
static void test_role_is_registered_on_200(void **state)
{
    struct lh *h = *state;
    lh_register(h, "Expires: 600\r\n");
    json_t *o = gb_lower_upstreams_json(h->l);
    json_t *up = json_array_get(json_object_get(o, "upstreams"), 0);
    assert_int_equal(json_integer_value(json_object_get(up, "expires")), 600);
    json_decref(o);
    assert_true(lh_event_seen(h, "gb.upstream.registered"));
    lh_advance(h, 0);
    const char *ka = lh_last(h, "MESSAGE ");
    assert_non_null(ka);
    assert_non_null(strstr(ka, "<CmdType>Keepalive</CmdType>"));
}

/* The registration is refreshed at 2/3 of the granted time, not before. */
static void test_role_refreshes_at_two_thirds(void **state)
{
    struct lh *h = *state;
    lh_register(h, "Expires: 600\r\n");
    lh_advance(h, 0);
    lh_answer(h, lh_last(h, "MESSAGE "), 200, "OK", ""); /* the keepalive */
    lh_advance(h, 399999);
    assert_int_equal(lh_registers(h), 1);
    lh_advance(h, 1);
    assert_int_equal(lh_registers(h), 2);
    assert_non_null(strstr(lh_last(h, "REGISTER "), "\r\nCSeq: 2 REGISTER\r\n"));
}

/* A refusal is retried after a backoff (2 s, half of it random), never at
 * once, and published once as gb.upstream.failed. */
static void test_role_retries_a_refusal_after_backoff(void **state)
{
    struct lh *h = *state;
    lh_start(h);
    lh_answer(h, lh_last(h, "REGISTER "), 403, "Forbidden", "");
    assert_string_equal(upstream_state(h), "failed");
    assert_true(lh_event_seen(h, "gb.upstream.failed"));
    lh_advance(h, 999);
    assert_int_equal(lh_registers(h), 1);
    lh_advance(h, 1001);
    assert_int_equal(lh_registers(h), 2);
}

static void lh_stopped(void *arg) { ((struct lh *)arg)->stop_done++; }

/* At stop a registered upstream gets a REGISTER with Expires: 0 (RFC 3261
 * §10.2.2); done runs once it answered, not before. */
static void test_role_unregisters_at_stop(void **state)
{
    struct lh *h = *state;
    lh_register(h, "Expires: 600\r\n");
    gb_lower_stop(h->l, lh_stopped, h);
    const char *reg = lh_last(h, "REGISTER ");
    assert_non_null(strstr(reg, "\r\nExpires: 0\r\n"));
    assert_int_equal(h->stop_done, 0);
    lh_answer(h, reg, 200, "OK", "");
    assert_int_equal(h->stop_done, 1);
    assert_string_equal(upstream_state(h), "stopped");
}

/* With [gb] media_ip empty, the media go from the node's own SIP host
 * (sip_local): an INVITE from the upstream for a local channel is answered
 * 200 with that address in the SDP (GB/T 28181 §9.2.2), and the stream is
 * listed for GET /gb/upstreams. */
static void test_role_answers_an_invite_from_the_local_host(void **state)
{
    struct lh *h = *state;
    snprintf(h->up.host, sizeof(h->up.host), "127.0.0.1");
    snprintf(h->local.host, sizeof(h->local.host), "127.0.0.1");
    h->gb.media_ip[0] = '\0';
    lh_start(h);
    struct gb_lower_channel_in in = {.id = "34020000001310000101"};
    assert_int_equal(gb_lower_channel_set(h->l, &in), 0);
    const char *sdp = "v=0\r\no=" UPPER_ID " 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\n"
                      "t=0 0\r\nm=video 30000 RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n"
                      "y=0100000001\r\n";
    char inv[2048];
    int n = snprintf(inv, sizeof(inv),
                     "INVITE sip:34020000001310000101@3402000000 SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinv1;rport\r\n"
                     "From: <sip:" UPPER_ID "@3402000000>;tag=i1\r\n"
                     "To: <sip:34020000001310000101@3402000000>\r\nCall-ID: inv-1\r\nCSeq: 1 INVITE\r\n"
                     "Contact: <sip:" UPPER_ID "@127.0.0.1:5060>\r\nMax-Forwards: 70\r\n"
                     "Content-Type: application/sdp\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(sdp), sdp);
    lh_feed(h, inv, (size_t)n, "127.0.0.1");
    const char *ok = lh_last(h, "SIP/2.0 200 ");
    assert_non_null(ok);
    assert_non_null(strstr(ok, "\r\nc=IN IP4 127.0.0.1\r\n"));
    assert_non_null(strstr(ok, "\r\ny=0100000001\r\n"));
    json_t *o = gb_lower_streams_json(h->l);
    json_t *st = json_array_get(json_object_get(o, "streams"), 0);
    assert_string_equal(json_string_value(json_object_get(st, "channel_id")), "34020000001310000101");
    assert_string_equal(json_string_value(json_object_get(st, "upstream")), UPPER_ID);
    json_decref(o);
}

/* The local directory: a channel with a 20-digit id is kept and listed
 * ("device_id": null), a bad id is refused with nothing changed, a delete of
 * an unknown id says so. */
static void test_role_local_directory(void **state)
{
    struct lh *h = *state;
    lh_start(h);
    struct gb_lower_channel_in in = {.id = "34020000001310000101", .name = "gate"};
    assert_int_equal(gb_lower_channel_set(h->l, &in), 0);
    struct gb_lower_channel_in bad = {.id = "3402000000131000010x"};
    assert_int_equal(gb_lower_channel_set(h->l, &bad), -EINVAL);
    assert_int_equal(gb_lower_channel_count(h->l), 1);
    json_t *o = gb_lower_channels_json(h->l, true);
    json_t *c = json_array_get(json_object_get(o, "channels"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "id")), "34020000001310000101");
    assert_string_equal(json_string_value(json_object_get(c, "name")), "gate");
    assert_true(json_is_null(json_object_get(c, "device_id")));
    json_decref(o);
    assert_int_equal(gb_lower_channel_delete(h->l, "34020000001310000101"), 0);
    assert_int_equal(gb_lower_channel_delete(h->l, "34020000001310000101"), -ENOENT);
    assert_int_equal(gb_lower_channel_count(h->l), 0);
}

/* An import is all or nothing, with the rules of a single set: a parent id
 * longer than an id (plus room) refuses the whole import, naming the entry,
 * and stores none of it (it once passed the import's own check, failed in
 * the middle and left the earlier entries stored). Updates of held channels
 * do not count as new ones. */
static void test_role_import_all_or_nothing(void **state)
{
    struct lh *h = *state;
    lh_start(h);
    char long_parent[41];
    memset(long_parent, '1', 40);
    long_parent[40] = '\0';
    struct gb_lower_channel_in in[2] = {{.id = "34020000001310000101", .name = "a"},
                                        {.id = "34020000001310000102", .name = "b", .parent_id = long_parent}};
    size_t bad = 99;
    assert_int_equal(gb_lower_channel_set_many(h->l, in, 2, &bad), -EINVAL);
    assert_int_equal(bad, 1);
    assert_int_equal(gb_lower_channel_count(h->l), 0);
    in[1].parent_id = "34020000002000000001";
    assert_int_equal(gb_lower_channel_set_many(h->l, in, 2, &bad), 0);
    assert_int_equal(gb_lower_channel_count(h->l), 2);
    in[0].name = "a2";
    assert_int_equal(gb_lower_channel_set_many(h->l, in, 2, &bad), 0); /* updates */
    assert_int_equal(gb_lower_channel_count(h->l), 2);
}

/* ---- reload: gb_lower_set_upstreams ---- */

/* The Call-ID value of msg, into out. */
static void call_id_of(const char *msg, char *out, size_t cap)
{
    const char *p = strstr(msg, "\r\nCall-ID: ");
    assert_non_null(p);
    p += 11;
    snprintf(out, cap, "%.*s", (int)strcspn(p, "\r"), p);
}

/* Index of the newest message starting with prefix. */
static size_t lh_last_index(const struct lh *h, const char *prefix)
{
    for (size_t i = h->nsent; i-- > 0;)
        if (!strncmp(h->sent[i], prefix, strlen(prefix))) return i;
    fail_msg("no %s sent", prefix);
    return 0;
}

static int lh_upstream_count(const struct lh *h)
{
    json_t *o = gb_lower_upstreams_json(h->l);
    int n = (int)json_array_size(json_object_get(o, "upstreams"));
    json_decref(o);
    return n;
}

/* A section that is gone: Expires: 0 on the binding's Call-ID, the upstream
 * no longer listed nor counted, and nothing more goes to it. */
static void test_reload_removes_an_upstream(void **state)
{
    struct lh *h = *state;
    lh_register(h, "Expires: 600\r\n");
    char first[128], now[128];
    call_id_of(lh_last(h, "REGISTER "), first, sizeof(first));
    assert_int_equal(gb_lower_set_upstreams(h->l, NULL, 0), 0);
    const char *unreg = lh_last(h, "REGISTER ");
    assert_non_null(strstr(unreg, "\r\nExpires: 0\r\n"));
    call_id_of(unreg, now, sizeof(now));
    assert_string_equal(now, first);
    assert_int_equal(lh_upstream_count(h), 0);
    lh_answer(h, unreg, 200, "OK", "");
    struct gb_lower_stats st;
    gb_lower_get_stats(h->l, &st);
    assert_int_equal(st.upstreams, 0);
    size_t sent = h->nsent;
    lh_advance(h, 3600 * 1000);
    assert_int_equal(h->nsent, sent); /* no refresh, no keepalive */
}

/* A change that keeps the binding (password, timers): a refresh on the same
 * Call-ID with the next CSeq, no unregister. */
static void test_reload_refreshes_a_changed_upstream(void **state)
{
    struct lh *h = *state;
    lh_register(h, "Expires: 600\r\n");
    char first[128], now[128];
    call_id_of(lh_last(h, "REGISTER "), first, sizeof(first));
    struct config_upstream up = h->up;
    snprintf(up.password, sizeof(up.password), "new-pw");
    up.keepalive_interval = 30;
    assert_int_equal(gb_lower_set_upstreams(h->l, &up, 1), 0);
    assert_int_equal(lh_registers(h), 2);
    const char *reg = lh_last(h, "REGISTER ");
    assert_non_null(strstr(reg, "\r\nExpires: 3600\r\n"));
    assert_non_null(strstr(reg, "\r\nCSeq: 2 REGISTER\r\n"));
    call_id_of(reg, now, sizeof(now));
    assert_string_equal(now, first);
    lh_answer(h, reg, 200, "OK", "Expires: 600\r\n");
    assert_string_equal(upstream_state(h), "registered");
    /* the same section again: nothing is sent */
    size_t sent = h->nsent;
    assert_int_equal(gb_lower_set_upstreams(h->l, &up, 1), 0);
    assert_int_equal(h->nsent, sent);
}

/* A new address: Expires: 0 to the old one, and only once that is answered
 * a REGISTER on a new binding (new Call-ID) to the new address — the upper
 * never sees our unregister after our new registration. */
static void test_reload_moves_an_upstream(void **state)
{
    struct lh *h = *state;
    lh_register(h, "Expires: 600\r\n");
    char first[128], now[128];
    call_id_of(lh_last(h, "REGISTER "), first, sizeof(first));
    struct config_upstream up = h->up;
    snprintf(up.host, sizeof(up.host), "192.0.2.8");
    assert_int_equal(gb_lower_set_upstreams(h->l, &up, 1), 0);
    size_t i = lh_last_index(h, "REGISTER ");
    const char *unreg = h->sent[i];
    assert_non_null(strstr(unreg, "\r\nExpires: 0\r\n"));
    assert_string_equal(h->sent_to[i], "192.0.2.7:5060");
    int before = lh_registers(h);
    lh_advance(h, 400); /* less than T1: no retransmission either */
    assert_int_equal(lh_registers(h), before);
    lh_answer(h, unreg, 200, "OK", "");
    i = lh_last_index(h, "REGISTER ");
    const char *reg = h->sent[i];
    assert_non_null(strstr(reg, "\r\nExpires: 3600\r\n"));
    assert_string_equal(h->sent_to[i], "192.0.2.8:5060");
    call_id_of(reg, now, sizeof(now));
    assert_string_not_equal(now, first);
    assert_string_equal(upstream_state(h), "registering");
}

/* A new section registers at once; the one already there is not touched. */
static void test_reload_adds_an_upstream(void **state)
{
    struct lh *h = *state;
    lh_register(h, "Expires: 600\r\n");
    struct config_upstream ups[2] = {h->up, h->up};
    snprintf(ups[1].id, sizeof(ups[1].id), "34020000002000000003");
    snprintf(ups[1].host, sizeof(ups[1].host), "192.0.2.9");
    assert_int_equal(gb_lower_set_upstreams(h->l, ups, 2), 0);
    assert_int_equal(lh_registers(h), 2);
    size_t i = lh_last_index(h, "REGISTER ");
    assert_true(!strncmp(h->sent[i], "REGISTER sip:34020000002000000003@3402000000 SIP/2.0\r\n", 54));
    assert_string_equal(h->sent_to[i], "192.0.2.9:5060");
    assert_int_equal(lh_upstream_count(h), 2);
    assert_string_equal(upstream_state(h), "registered");
}

/* Every slot holds an upstream or one still unregistering: a new section
 * finds none (-ENOSPC, the others applied); once the unregister is answered
 * its slot takes the new section. */
static void test_reload_slots(void **state)
{
    struct lh *h = *state;
    lh_register(h, "Expires: 600\r\n");
    struct config_upstream ups[CONFIG_MAX_UPSTREAMS];
    ups[0] = h->up;
    for (int i = 1; i < CONFIG_MAX_UPSTREAMS; i++) {
        ups[i] = h->up;
        snprintf(ups[i].id, sizeof(ups[i].id), "340200000020000001%02d", i);
    }
    assert_int_equal(gb_lower_set_upstreams(h->l, ups, CONFIG_MAX_UPSTREAMS), 0);
    assert_int_equal(lh_upstream_count(h), CONFIG_MAX_UPSTREAMS);
    snprintf(ups[0].id, sizeof(ups[0].id), "34020000002000000199"); /* UPPER_ID goes, another comes */
    assert_int_equal(gb_lower_set_upstreams(h->l, ups, CONFIG_MAX_UPSTREAMS), -ENOSPC);
    assert_int_equal(lh_upstream_count(h), CONFIG_MAX_UPSTREAMS - 1);
    const char *unreg = lh_last(h, "REGISTER ");
    assert_true(!strncmp(unreg, "REGISTER sip:" UPPER_ID "@", 13 + 20 + 1));
    assert_non_null(strstr(unreg, "\r\nExpires: 0\r\n"));
    lh_answer(h, unreg, 200, "OK", "");
    assert_int_equal(gb_lower_set_upstreams(h->l, ups, CONFIG_MAX_UPSTREAMS), 0);
    assert_int_equal(lh_upstream_count(h), CONFIG_MAX_UPSTREAMS);
    assert_true(!strncmp(lh_last(h, "REGISTER "), "REGISTER sip:34020000002000000199@", 34));
}

static void test_reload_checks_a_section(void **state)
{
    struct lh *h = *state;
    char err[256];
    assert_int_equal(gb_lower_upstream_check(&h->up, err, sizeof(err)), 0);
    struct config_upstream up = h->up;
    snprintf(up.host, sizeof(up.host), "upper.example");
    assert_int_equal(gb_lower_upstream_check(&up, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a numeric address"));
    up.enabled = false; /* a disabled section is never used */
    assert_int_equal(gb_lower_upstream_check(&up, err, sizeof(err)), 0);
    up = h->up;
    snprintf(up.id, sizeof(up.id), "3402");
    assert_int_equal(gb_lower_upstream_check(&up, err, sizeof(err)), -1);
}

/* ---- a middle node across cascade nodes: other nodes' alarms and
 * positions (lower_nodes.c gb_lower_view_report_kind, lower_subs.c
 * gb_lower_relay_node_report) ---- */

#define NODE_DEV "34020000001320000001"
#define NODE_CH "34020000001340000001"

static json_t *view_ev(const char *type, const char *node)
{
    json_t *ev = json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:s,s:s,s:f,s:f,s:s,s:i,s:i,s:i}", "type", type, "device",
                           NODE_DEV, "channel", NODE_CH, "priority", 1, "method", 5, "alarm_type", 2, "alarm_time",
                           "2026-12-07T10:00:00", "description", "motion 1", "longitude", 116.397, "latitude",
                           39.909, "position_time", "2026-12-07T10:00:01", "speed", 12, "direction", 90,
                           "altitude", 44);
    assert_non_null(ev);
    if (node) json_object_set_new(ev, "node", json_string(node));
    return ev;
}

/* Which events of the cluster's view go up: another node's gb.alarm and
 * gb.position once the view caught up; never ours (our own bus relays
 * them), never one replayed at start, never another type or one without
 * a usable node. */
static void test_view_report_kind(void **state)
{
    (void)state;
    json_t *ev = view_ev("gb.alarm", "node-b");
    assert_int_equal(gb_lower_view_report_kind(ev, "node-a", true), GB_UP_SUB_ALARM);
    assert_int_equal(gb_lower_view_report_kind(ev, "node-b", true), -1);  /* our own */
    assert_int_equal(gb_lower_view_report_kind(ev, "node-a", false), -1); /* replayed while catching up */
    assert_int_equal(gb_lower_view_report_kind(ev, NULL, true), -1);      /* no node id here */
    json_decref(ev);
    ev = view_ev("gb.position", "node-b");
    assert_int_equal(gb_lower_view_report_kind(ev, "node-a", true), GB_UP_SUB_POSITION);
    assert_int_equal(gb_lower_view_report_kind(ev, "node-b", true), -1);
    assert_int_equal(gb_lower_view_report_kind(ev, "node-a", false), -1);
    json_decref(ev);
    const char *others[] = {"gb.device.online", "gb.catalog.updated", "gb.alarms", "user.online"};
    for (size_t i = 0; i < sizeof(others) / sizeof(*others); i++) {
        ev = view_ev(others[i], "node-b");
        assert_int_equal(gb_lower_view_report_kind(ev, "node-a", true), -1);
        json_decref(ev);
    }
    ev = view_ev("gb.alarm", NULL); /* no node */
    assert_int_equal(gb_lower_view_report_kind(ev, "node-a", true), -1);
    json_object_set_new(ev, "node", json_string(""));
    assert_int_equal(gb_lower_view_report_kind(ev, "node-a", true), -1);
    json_object_set_new(ev, "node", json_integer(7));
    assert_int_equal(gb_lower_view_report_kind(ev, "node-a", true), -1);
    char longid[200];
    memset(longid, 'n', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    json_object_set_new(ev, "node", json_string(longid));
    assert_int_equal(gb_lower_view_report_kind(ev, "node-a", true), -1);
    json_decref(ev);
    ev = json_pack("{s:s}", "node", "node-b"); /* no type */
    assert_int_equal(gb_lower_view_report_kind(ev, "node-a", true), -1);
    json_decref(ev);
}

/* gb.lower.relay.started as the cluster's stream holds it, written by
 * node-a (the node holding the upstream's registration): with the INVITE
 * relayed through node-b (the device's), via_node names it and "node" is
 * the writer, each once; without, no via_node. */
static void test_relay_started_stream_entry(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct event_bus *bus = event_bus_new(&loop, 8, NULL);
    assert_non_null(bus);
    const char *via[] = {"node-b", "", NULL};
    for (size_t i = 0; i < 3; i++) {
        uint64_t seq = event_publish(bus, "gb.lower.relay.started",
                                     gb_lower_relay_started_fields("34020000002000000001", NODE_DEV, NODE_CH, via[i]));
        assert_true(seq > 0);
        const char *json;
        size_t len;
        assert_int_equal(event_bus_get(bus, seq, &json, &len), 0);
        long off = events_stream_body_offset(json, len);
        assert_true(off > 0);
        sbuf_t b;
        sbuf_init(&b);
        assert_int_equal(events_stream_entry_text(&b, 40 + seq, "\"node-a\"", json + off, len - (size_t)off), 0);
        json_error_t err;
        json_t *e = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &err);
        if (!e) fail_msg("%s: %s", b.data, err.text);
        assert_string_equal(json_string_value(json_object_get(e, "node")), "node-a");
        assert_string_equal(json_string_value(json_object_get(e, "upstream")), "34020000002000000001");
        assert_string_equal(json_string_value(json_object_get(e, "device_id")), NODE_DEV);
        assert_string_equal(json_string_value(json_object_get(e, "channel_id")), NODE_CH);
        if (i == 0) {
            assert_string_equal(json_string_value(json_object_get(e, "via_node")), "node-b");
            assert_int_equal(json_object_size(e), 8);
        } else {
            assert_null(json_object_get(e, "via_node"));
            assert_int_equal(json_object_size(e), 7);
        }
        json_decref(e);
        sbuf_free(&b);
    }
    event_bus_free(bus);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The upstream subscribes (an initial SUBSCRIBE of Event `event`, body
 * CmdType `cmd`, Call-ID `call_id`): answered 200. */
static void lh_subscribe(struct lh *h, const char *event, const char *cmd, const char *call_id)
{
    char body[256], msg[1024];
    snprintf(body, sizeof(body),
             "<?xml version=\"1.0\"?>\r\n<Query><CmdType>%s</CmdType><SN>1</SN><DeviceID>" LOWER_ID
             "</DeviceID></Query>\r\n",
             cmd);
    snprintf(msg, sizeof(msg),
             "SUBSCRIBE sip:" LOWER_ID "@192.0.2.1:5060 SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK%s\r\n"
             "From: <sip:" UPPER_ID "@3402000000>;tag=upt-%s\r\n"
             "To: <sip:" LOWER_ID "@3402000000>\r\n"
             "Call-ID: %s\r\nCSeq: 1 SUBSCRIBE\r\n"
             "Contact: <sip:" UPPER_ID "@192.0.2.7:5060>\r\n"
             "Event: %s\r\nExpires: 3600\r\nMax-Forwards: 70\r\n"
             "Content-Type: Application/MANSCDP+xml\r\nContent-Length: %zu\r\n\r\n%s",
             call_id, call_id, call_id, event, strlen(body), body);
    size_t before = h->nsent;
    lh_feed(h, msg, strlen(msg), h->up.host);
    assert_true(h->nsent > before);
    assert_true(!strncmp(h->sent[h->nsent - 1], "SIP/2.0 200 ", 12));
}

/* Answers a NOTIFY we sent within a dialog (its To already tagged). */
static void lh_answer_notify(struct lh *h, const char *req, int status, const char *reason)
{
    sbuf_t b;
    sbuf_init(&b);
    sbuf_printf(&b, "SIP/2.0 %d %s\r\n", status, reason);
    copy_line(&b, req, "\r\nVia: ");
    copy_line(&b, req, "\r\nFrom: ");
    copy_line(&b, req, "\r\nTo: ");
    copy_line(&b, req, "\r\nCall-ID: ");
    copy_line(&b, req, "\r\nCSeq: ");
    sbuf_printf(&b, "Content-Length: 0\r\n\r\n");
    lh_feed(h, b.data, b.len, h->up.host);
    sbuf_free(&b);
}

static json_int_t lh_sub_count(struct lh *h, const char *kind, const char *what)
{
    json_t *o = gb_lower_upstreams_json(h->l);
    json_t *up = json_array_get(json_object_get(o, "upstreams"), 0);
    json_t *sub = json_object_get(json_object_get(up, "subscriptions"), kind);
    json_int_t v = json_integer_value(json_object_get(sub, what));
    json_decref(o);
    return v;
}

static const char *lh_sub_state(struct lh *h, const char *kind)
{
    static char st[16];
    json_t *o = gb_lower_upstreams_json(h->l);
    json_t *up = json_array_get(json_object_get(o, "upstreams"), 0);
    json_t *sub = json_object_get(json_object_get(up, "subscriptions"), kind);
    const char *v = json_string_value(json_object_get(sub, "state"));
    snprintf(st, sizeof(st), "%s", v ? v : "");
    json_decref(o);
    return st;
}

static size_t lh_count(const struct lh *h, const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < h->nsent; i++) n += !strncmp(h->sent[i], prefix, strlen(prefix));
    return n;
}

/* Another node's alarm goes up as the local path sends one: a NOTIFY
 * within the upstream's Alarm subscription, with the Notify body written
 * from the event; its position does not (no MobilePosition subscription);
 * an event without a usable id does not. */
static void test_node_report_within_the_subscription(void **state)
{
    struct lh *h = *state;
    lh_register(h, "Expires: 3600\r\n");
    json_t *alarm = view_ev("gb.alarm", "node-b"), *pos = view_ev("gb.position", "node-b");
    gb_lower_relay_node_report(h->l, "gb.alarm", alarm); /* not subscribed yet */
    assert_int_equal(lh_count(h, "NOTIFY "), 0);
    lh_subscribe(h, "Alarm", "Alarm", "sub-alarm-1");
    gb_lower_relay_node_report(h->l, "gb.alarm", alarm);
    assert_int_equal(lh_count(h, "NOTIFY "), 1);
    const char *n = lh_last(h, "NOTIFY ");
    assert_non_null(strstr(n, "\r\nCall-ID: sub-alarm-1\r\n"));
    assert_non_null(strstr(n, "\r\nEvent: Alarm\r\n"));
    assert_non_null(strstr(n, ";tag=upt-sub-alarm-1"));
    assert_non_null(strstr(n, "<CmdType>Alarm</CmdType>"));
    assert_non_null(strstr(n, "<DeviceID>" NODE_CH "</DeviceID>"));
    assert_non_null(strstr(n, "<AlarmPriority>1</AlarmPriority>"));
    assert_non_null(strstr(n, "<AlarmMethod>5</AlarmMethod>"));
    assert_non_null(strstr(n, "<AlarmTime>2026-12-07T10:00:00</AlarmTime>"));
    assert_non_null(strstr(n, "<AlarmDescription>motion 1</AlarmDescription>"));
    assert_non_null(strstr(n, "<AlarmType>2</AlarmType>"));
    assert_int_equal(lh_sub_count(h, "alarm", "other_nodes"), 1);
    assert_int_equal(h->l->ups[0].node_report_count, 1);
    gb_lower_relay_node_report(h->l, "gb.position", pos); /* no position subscription */
    assert_int_equal(lh_count(h, "NOTIFY "), 1);
    json_object_set_new(alarm, "channel", json_string("3402"));
    json_object_del(alarm, "device");
    gb_lower_relay_node_report(h->l, "gb.alarm", alarm); /* no valid id */
    assert_int_equal(lh_count(h, "NOTIFY "), 1);
    /* Within a position subscription, the position goes; one without
     * longitude and latitude does not. */
    lh_subscribe(h, "MobilePosition", "MobilePosition", "sub-pos-1");
    gb_lower_relay_node_report(h->l, "gb.position", pos);
    assert_int_equal(lh_count(h, "NOTIFY "), 2);
    n = lh_last(h, "NOTIFY ");
    assert_non_null(strstr(n, "\r\nCall-ID: sub-pos-1\r\n"));
    assert_non_null(strstr(n, "<CmdType>MobilePosition</CmdType>"));
    assert_non_null(strstr(n, "<DeviceID>" NODE_CH "</DeviceID>"));
    assert_non_null(strstr(n, "<Longitude>116.397"));
    assert_non_null(strstr(n, "<Speed>12</Speed>"));
    assert_int_equal(lh_sub_count(h, "position", "other_nodes"), 1);
    json_object_del(pos, "latitude");
    gb_lower_relay_node_report(h->l, "gb.position", pos);
    assert_int_equal(lh_count(h, "NOTIFY "), 2);
    /* Answered: out of flight. A 481 ends the subscription it was in. */
    lh_answer_notify(h, lh_last(h, "NOTIFY "), 481, "Call/Transaction Does Not Exist");
    assert_string_equal(lh_sub_state(h, "position"), "none");
    assert_string_equal(lh_sub_state(h, "alarm"), "active");
    assert_int_equal(h->l->ups[0].node_report_count, 1);
    const char *first = NULL;
    for (size_t i = 0; i < h->nsent && !first; i++)
        if (!strncmp(h->sent[i], "NOTIFY ", 7)) first = h->sent[i];
    lh_answer_notify(h, first, 200, "OK");
    assert_int_equal(h->l->ups[0].node_report_count, 0);
    assert_string_equal(lh_sub_state(h, "alarm"), "active");
    json_decref(alarm);
    json_decref(pos);
}

/* At most GB_LOWER_NODE_REPORTS_MAX NOTIFYs for other nodes' devices in
 * flight per upstream: more are dropped (counted); once they are answered
 * or time out there is room again. Our own devices' reports are not held
 * to it. */
static void test_node_reports_capped(void **state)
{
    struct lh *h = *state;
    lh_register(h, "Expires: 3600\r\n");
    lh_subscribe(h, "Alarm", "Alarm", "sub-alarm-2");
    json_t *alarm = view_ev("gb.alarm", "node-b");
    for (int i = 0; i < GB_LOWER_NODE_REPORTS_MAX + 3; i++) gb_lower_relay_node_report(h->l, "gb.alarm", alarm);
    assert_int_equal(lh_sub_count(h, "alarm", "other_nodes"), GB_LOWER_NODE_REPORTS_MAX);
    assert_int_equal(lh_sub_count(h, "alarm", "other_nodes_dropped"), 3);
    assert_int_equal(h->l->ups[0].node_report_count, GB_LOWER_NODE_REPORTS_MAX);
    json_int_t sent = lh_sub_count(h, "alarm", "notifies");
    gb_lower_relay_report(h->l, "gb.alarm", alarm); /* a device here: sent anyway */
    assert_int_equal(lh_sub_count(h, "alarm", "notifies"), sent + 1);
    assert_int_equal(lh_sub_count(h, "alarm", "other_nodes"), GB_LOWER_NODE_REPORTS_MAX);
    lh_advance(h, 40000); /* no answer: each ends (Timer F, 64*T1) */
    assert_int_equal(h->l->ups[0].node_report_count, 0);
    gb_lower_relay_node_report(h->l, "gb.alarm", alarm);
    assert_int_equal(lh_sub_count(h, "alarm", "other_nodes"), GB_LOWER_NODE_REPORTS_MAX + 1);
    assert_int_equal(lh_sub_count(h, "alarm", "other_nodes_dropped"), 3);
    assert_int_equal(h->l->ups[0].node_report_count, 1);
    json_decref(alarm);
    /* lh_teardown frees the role with one in flight: detached, no callback later. */
}

/* A gb.lower.subscribed as the cluster's view carries it: published by node,
 * the upstream subscribed to kind. */
static json_t *view_subscribed(const char *node, const char *upstream, const char *kind)
{
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:i}", "type", "gb.lower.subscribed", "node", node, "upstream",
                           upstream, "event", kind, "expires", 3600);
    assert_non_null(ev);
    return ev;
}

/* Both nodes read the view in the stream's order. */
static void view_feed(struct lh *a, struct lh *b, json_t *ev)
{
    gb_lower_view_subscribed(a->l, ev, "node-a");
    gb_lower_view_subscribed(b->l, ev, "node-b");
    json_decref(ev);
}

/* One upstream subscribed to alarms at two nodes of one platform (node-a
 * and node-b, the same upstream id): without a rule both relay every alarm
 * of another node's device (and the device's own node relays it too), so
 * the upstream gets each twice. The newest SUBSCRIBE in the stream's order
 * wins on every node: each alarm reaches the upstream once, whichever node
 * its device is on, and whichever order the nodes took the SUBSCRIBEs and
 * read the stream in. */
static void test_one_subscription_across_nodes(void **state)
{
    (void)state;
    void *sa = NULL, *sb = NULL;
    lh_setup(&sa);
    lh_setup(&sb);
    struct lh *a = sa, *b = sb;
    lh_register(a, "Expires: 3600\r\n");
    lh_register(b, "Expires: 3600\r\n");
    struct event_bus *va = event_bus_new(&a->loop, 64, NULL), *vb = event_bus_new(&b->loop, 64, NULL);
    assert_non_null(va);
    assert_non_null(vb);
    gb_lower_set_cluster_events(a->l, va);
    gb_lower_set_cluster_events(b->l, vb);
    /* Both SUBSCRIBEs taken before either node read the other's from the
     * stream; A's is first there. */
    lh_subscribe(a, "Alarm", "Alarm", "sub-a1");
    lh_subscribe(b, "Alarm", "Alarm", "sub-b1");
    view_feed(a, b, view_subscribed("node-a", UPPER_ID, "alarm"));
    assert_string_equal(lh_sub_state(a, "alarm"), "active"); /* B's not read yet: A's still stands */
    assert_string_equal(lh_sub_state(b, "alarm"), "active"); /* B's own comes later in the stream */
    view_feed(a, b, view_subscribed("node-b", UPPER_ID, "alarm"));
    assert_string_equal(lh_sub_state(a, "alarm"), "none");
    assert_string_equal(lh_sub_state(b, "alarm"), "active");
    assert_int_equal(lh_sub_count(a, "alarm", "replaced_by_node"), 1);
    assert_int_equal(lh_sub_count(b, "alarm", "replaced_by_node"), 0);
    /* A device on a third node: both read its alarm from the view. */
    json_t *alarm = view_ev("gb.alarm", "node-c");
    gb_lower_relay_node_report(a->l, "gb.alarm", alarm);
    gb_lower_relay_node_report(b->l, "gb.alarm", alarm);
    assert_int_equal(lh_count(a, "NOTIFY ") + lh_count(b, "NOTIFY "), 1);
    assert_non_null(strstr(lh_last(b, "NOTIFY "), "\r\nCall-ID: sub-b1\r\n"));
    /* A device on A: A relays it from its bus, B from the view. */
    json_t *alarm_a = view_ev("gb.alarm", "node-a");
    gb_lower_relay_report(a->l, "gb.alarm", alarm_a);
    gb_lower_relay_node_report(b->l, "gb.alarm", alarm_a);
    assert_int_equal(lh_count(a, "NOTIFY ") + lh_count(b, "NOTIFY "), 2);
    /* The upstream subscribes at A again (a new dialog): B's ends when it
     * reads A's, A's stays. */
    lh_subscribe(a, "Alarm", "Alarm", "sub-a2");
    view_feed(a, b, view_subscribed("node-a", UPPER_ID, "alarm"));
    assert_string_equal(lh_sub_state(a, "alarm"), "active");
    assert_string_equal(lh_sub_state(b, "alarm"), "none");
    size_t before = lh_count(a, "NOTIFY ") + lh_count(b, "NOTIFY ");
    gb_lower_relay_node_report(a->l, "gb.alarm", alarm);
    gb_lower_relay_node_report(b->l, "gb.alarm", alarm);
    assert_int_equal(lh_count(a, "NOTIFY ") + lh_count(b, "NOTIFY "), before + 1);
    assert_non_null(strstr(lh_last(a, "NOTIFY "), "\r\nCall-ID: sub-a2\r\n"));
    /* Two SUBSCRIBEs at B read back before A's: still one. */
    lh_subscribe(b, "Alarm", "Alarm", "sub-b2");
    lh_subscribe(b, "Alarm", "Alarm", "sub-b3");
    view_feed(a, b, view_subscribed("node-b", UPPER_ID, "alarm"));
    assert_string_equal(lh_sub_state(a, "alarm"), "none");
    lh_subscribe(a, "Alarm", "Alarm", "sub-a3"); /* between B's two in the stream */
    view_feed(a, b, view_subscribed("node-a", UPPER_ID, "alarm"));
    assert_string_equal(lh_sub_state(b, "alarm"), "active"); /* B's second is still to come */
    view_feed(a, b, view_subscribed("node-b", UPPER_ID, "alarm"));
    assert_string_equal(lh_sub_state(a, "alarm"), "none");
    assert_string_equal(lh_sub_state(b, "alarm"), "active");
    /* What does not concern a subscription held: another upstream, another
     * kind, not that event, no node, a kind we do not know. */
    view_feed(a, b, view_subscribed("node-a", "34020000002000000099", "alarm"));
    view_feed(a, b, view_subscribed("node-a", UPPER_ID, "position"));
    json_t *odd = view_subscribed("node-a", UPPER_ID, "alarm");
    json_object_set_new(odd, "type", json_string("gb.lower.registered"));
    view_feed(a, b, odd);
    odd = view_subscribed("node-a", UPPER_ID, "alarm");
    json_object_del(odd, "node");
    view_feed(a, b, odd);
    view_feed(a, b, view_subscribed("node-a", UPPER_ID, "alarms"));
    assert_string_equal(lh_sub_state(b, "alarm"), "active");
    before = lh_count(a, "NOTIFY ") + lh_count(b, "NOTIFY ");
    gb_lower_relay_node_report(a->l, "gb.alarm", alarm);
    gb_lower_relay_node_report(b->l, "gb.alarm", alarm);
    assert_int_equal(lh_count(a, "NOTIFY ") + lh_count(b, "NOTIFY "), before + 1);
    json_decref(alarm);
    json_decref(alarm_a);
    lh_teardown(&sa); /* the roles leave the views first */
    lh_teardown(&sb);
    event_bus_free(va);
    event_bus_free(vb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_clip_is_the_test_clip),
        cmocka_unit_test(test_clip_refusals),
        cmocka_unit_test(test_offer_udp),
        cmocka_unit_test(test_offer_tcp_roles),
        cmocka_unit_test(test_offer_refusals),
        cmocka_unit_test_setup_teardown(test_udp_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_stream_with_audio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_loops_the_clip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_passive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_active_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passive_accept_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
        cmocka_unit_test(test_relayed_info),
        cmocka_unit_test(test_relayed_status),
        cmocka_unit_test(test_relayed_records),
        cmocka_unit_test_setup_teardown(test_role_refuses_a_bad_gb_id, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_role_refuses_an_unusable_upstream, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_role_registers_to_its_upstream, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_role_is_registered_on_200, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_role_refreshes_at_two_thirds, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_role_retries_a_refusal_after_backoff, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_role_unregisters_at_stop, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_role_answers_an_invite_from_the_local_host, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_role_local_directory, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_role_import_all_or_nothing, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_reload_removes_an_upstream, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_reload_refreshes_a_changed_upstream, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_reload_moves_an_upstream, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_reload_adds_an_upstream, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_reload_slots, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_reload_checks_a_section, lh_setup, lh_teardown),
        cmocka_unit_test(test_view_report_kind),
        cmocka_unit_test(test_relay_started_stream_entry),
        cmocka_unit_test_setup_teardown(test_node_report_within_the_subscription, lh_setup, lh_teardown),
        cmocka_unit_test_setup_teardown(test_node_reports_capped, lh_setup, lh_teardown),
        cmocka_unit_test(test_one_subscription_across_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
