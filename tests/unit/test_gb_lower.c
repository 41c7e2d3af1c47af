/* test_gb_lower.c — the media side of the GB lower role and the simulator
 * (src/media/media_sender.c): the clip index, the built-in clip, SDP offer
 * reading and answer writing (a=setup roles, y=, the PS payload type), and
 * real streams on loopback — UDP, TCP passive (we listen) and TCP active (we
 * connect) — checked packet by packet (RTP header, SSRC, sequence, 90 kHz
 * timestamps at the clip's frame rate, marker per frame, RFC 4571 framing)
 * and frame by frame through the PS demuxer. Also the middle node's answers
 * to queries relayed to a device (src/gb/lower/lower_query.c): the upper role's
 * JSON of the device's Response written back as MANSCDP for the upstream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "base/timer.h"
#include "gb/lower/lower_int.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_clip_is_the_test_clip),
        cmocka_unit_test(test_clip_refusals),
        cmocka_unit_test(test_offer_udp),
        cmocka_unit_test(test_offer_tcp_roles),
        cmocka_unit_test(test_offer_refusals),
        cmocka_unit_test_setup_teardown(test_udp_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_loops_the_clip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_passive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_active_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passive_accept_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
        cmocka_unit_test(test_relayed_info),
        cmocka_unit_test(test_relayed_status),
        cmocka_unit_test(test_relayed_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
