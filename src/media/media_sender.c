/* media_sender.c — an H.264 clip played as PS over RTP over UDP or TCP (see
 * media_sender.h). GB/T 28181 §C (PS in RTP), RFC 3550 (RTP), RFC 4571 (RTP
 * over connection-oriented transport), RFC 4145 (a=setup roles). */
#include "media/media_sender.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/sbuf.h"
#include "gb/codec/mansrtsp.h"
#include "media/g711.h"
#include "media/ps.h"
#include "media/rtp.h"
#include "sip/sdp.h"
#include "transport/transport.h"

#define DEFAULT_FPS 25.0
#define DEFAULT_MAX_QUEUE (2u << 20)
#define DEFAULT_CONNECT_TIMEOUT 10000
#define MAX_CATCH_UP 5 /* frames sent per timer tick when late; beyond that the clock is reset */

/* ---- clips ---- */

struct clip_frame {
    uint32_t off, len;
    bool key;
};

struct gb_media_clip {
    int refs;
    uint8_t *data;
    size_t len;
    struct clip_frame *frames;
    size_t nframes;
    double fps;
    gb_codec_t codec;
    char *path;
};

/* H.265 streams start with a VPS (type 32, two-byte header with the
 * forbidden bit and layer id high bit clear); everything else is read as H.264. */
static gb_codec_t guess_codec(const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    gb_nal_t nal;
    if (!gb_nal_next(buf, len, &pos, &nal) || nal.len < 2) return GB_CODEC_H264;
    if ((nal.data[0] & 0x81) == 0 && ((nal.data[0] >> 1) & 0x3f) == GB_H265_NAL_VPS) return GB_CODEC_H265;
    return GB_CODEC_H264;
}

static struct gb_media_clip *clip_index(uint8_t *data, size_t len, const char *path, char *err, size_t errcap)
{
    struct gb_media_clip *c = calloc(1, sizeof(*c));
    if (!c) {
        free(data);
        snprintf(err, errcap, "no memory");
        return NULL;
    }
    c->refs = 1;
    c->data = data;
    c->len = len;
    c->codec = guess_codec(data, len);
    c->path = strdup(path ? path : "");
    size_t cap = 64;
    c->frames = malloc(cap * sizeof(*c->frames));
    if (!c->path || !c->frames) goto nomem;
    gb_au_reader_t r;
    gb_au_reader_init(&r, c->codec, data, len);
    gb_au_t au;
    while (gb_au_reader_next(&r, &au)) {
        if (!au.vcl_count) continue; /* a trailing fragment without a picture */
        if (c->nframes == GB_MEDIA_MAX_FRAMES) break;
        if (c->nframes == cap) {
            struct clip_frame *nf = realloc(c->frames, cap * 2 * sizeof(*nf));
            if (!nf) goto nomem;
            c->frames = nf;
            cap *= 2;
        }
        c->frames[c->nframes++] = (struct clip_frame){(uint32_t)(au.data - data), (uint32_t)au.len, au.key};
    }
    if (!c->nframes) {
        snprintf(err, errcap, "%s: no video frame found", c->path);
        gb_media_clip_unref(c);
        return NULL;
    }
    c->fps = c->codec == GB_CODEC_H264 ? gb_h264_frame_rate(data, len, DEFAULT_FPS) : DEFAULT_FPS;
    return c;
nomem:
    snprintf(err, errcap, "no memory");
    gb_media_clip_unref(c);
    return NULL;
}

struct gb_media_clip *gb_media_clip_load(const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    uint8_t *data = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= GB_MEDIA_MAX_CLIP) {
                snprintf(err, errcap, "%s: larger than %u bytes", path, GB_MEDIA_MAX_CLIP);
                free(data);
                fclose(f);
                return NULL;
            }
            size_t ncap = cap ? cap * 2 : 65536;
            uint8_t *nd = realloc(data, ncap);
            if (!nd) {
                snprintf(err, errcap, "no memory");
                free(data);
                fclose(f);
                return NULL;
            }
            data = nd;
            cap = ncap;
        }
        size_t n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad || !len) {
        snprintf(err, errcap, "%s: %s", path, bad ? "read error" : "empty file");
        free(data);
        return NULL;
    }
    return clip_index(data, len, path, err, errcap);
}

struct gb_media_clip *gb_media_clip_from_buffer(const uint8_t *data, size_t len, char *err, size_t errcap)
{
    if (!len || len > GB_MEDIA_MAX_CLIP) {
        snprintf(err, errcap, "bad clip size %zu", len);
        return NULL;
    }
    uint8_t *copy = malloc(len);
    if (!copy) {
        snprintf(err, errcap, "no memory");
        return NULL;
    }
    memcpy(copy, data, len);
    return clip_index(copy, len, "(memory)", err, errcap);
}

void gb_media_clip_ref(struct gb_media_clip *c) { c->refs++; }

void gb_media_clip_unref(struct gb_media_clip *c)
{
    if (!c || --c->refs > 0) return;
    free(c->data);
    free(c->frames);
    free(c->path);
    free(c);
}

double gb_media_clip_fps(const struct gb_media_clip *c) { return c->fps; }
size_t gb_media_clip_frames(const struct gb_media_clip *c) { return c->nframes; }
gb_codec_t gb_media_clip_codec(const struct gb_media_clip *c) { return c->codec; }
const char *gb_media_clip_path(const struct gb_media_clip *c) { return c->path; }

const char *gb_media_proto_name(enum gb_media_proto p)
{
    switch (p) {
    case GB_MEDIA_UDP: return "udp";
    case GB_MEDIA_TCP_ACTIVE: return "tcp-active";
    case GB_MEDIA_TCP_PASSIVE: return "tcp-passive";
    }
    return "?";
}

/* ---- senders ---- */

struct gb_media_sender {
    uv_loop_t *loop;
    struct timer_service *timers;
    void (*timers_changed)(void *arg);
    void *timers_arg;
    uint64_t (*now_ms)(void *arg);
    enum gb_media_proto proto;
    struct sockaddr_storage remote;
    struct gb_media_clip *clip;
    uint32_t max_queue, connect_timeout;
    bool loop_clip;
    enum gb_media_audio audio;
    struct gb_media_sender_cb cb;
    void *arg;

    uv_udp_t udp;
    uv_tcp_t listener, conn;
    uv_connect_t connect_req;
    bool udp_open, listener_open, conn_open;
    int handles;             /* open handles; memory goes when the last one closed after free */
    bool freed, stopped, started, connected, connecting, skip_to_key;
    uint16_t local_port;

    struct timer_node frame_timer, wait_timer;
    gb_rtp_packer_t packer;
    size_t next_frame;       /* index into the clip */
    uint64_t frame_no;       /* frames of media time since start (PTS clock) */
    uint64_t pace_ms;        /* wall time at which frame pace_frame was due */
    uint64_t pace_frame;
    double frame_ms;
    double scale;            /* media time per wall time (playback speed) */
    uint32_t duration_ms;    /* playback: media time to send, 0: unbounded */
    bool paused, frames_on;  /* frames_on: begin_frames ran (started and connected) */
    uint32_t ts_base;
    sbuf_t ps, out;
    struct gb_media_sender_stats stats;
    char sink[512];
};

struct write_req {
    uv_write_t req;
    struct gb_media_sender *s;
    size_t len;
    char data[];
};

static uint64_t sender_now(const struct gb_media_sender *s)
{
    return s->now_ms ? s->now_ms(s->timers_arg) : uv_now(s->loop);
}

static void sender_arm(struct gb_media_sender *s, struct timer_node *n, uint64_t at, timer_cb cb)
{
    timer_start(s->timers, n, at, cb);
    if (s->timers_changed) s->timers_changed(s->timers_arg);
}

static void handle_closed(uv_handle_t *h)
{
    struct gb_media_sender *s = h->data;
    if (--s->handles > 0 || !s->freed) return;
    gb_media_clip_unref(s->clip);
    sbuf_free(&s->ps);
    sbuf_free(&s->out);
    free(s);
}

static void close_handle(uv_handle_t *h, bool *open)
{
    if (!*open) return;
    *open = false;
    if (!uv_is_closing(h)) uv_close(h, handle_closed);
}

/* The stream ends on its own: stop sending and tell the owner once. */
static void sender_stop(struct gb_media_sender *s, const char *reason)
{
    if (s->stopped || s->freed) return;
    s->stopped = true;
    timer_stop(s->timers, &s->frame_timer);
    timer_stop(s->timers, &s->wait_timer);
    close_handle((uv_handle_t *)&s->conn, &s->conn_open);
    close_handle((uv_handle_t *)&s->listener, &s->listener_open);
    if (s->cb.on_stopped) s->cb.on_stopped(s->arg, s, reason);
}

/* ---- sending frames ---- */

static int emit_udp(void *arg, const uint8_t *pkt, size_t len)
{
    struct gb_media_sender *s = arg;
    uv_buf_t b = uv_buf_init((char *)pkt, (unsigned)len);
    int rc = uv_udp_try_send(&s->udp, &b, 1, (const struct sockaddr *)&s->remote);
    if (rc < 0 && rc != UV_EAGAIN && rc != UV_ENOBUFS && rc != UV_ECONNREFUSED) return rc;
    if (rc >= 0) {
        s->stats.packets++;
        s->stats.bytes += len;
    }
    return 0;
}

static int emit_tcp(void *arg, const uint8_t *pkt, size_t len)
{
    struct gb_media_sender *s = arg;
    sbuf_append(&s->out, pkt, len);
    s->stats.packets++;
    s->stats.bytes += len - 2; /* RFC 4571 prefix not counted */
    return s->out.failed ? -ENOMEM : 0;
}

static void tcp_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct gb_media_sender *s = w->s;
    free(w);
    if (status < 0 && status != UV_ECANCELED && !s->freed) {
        log_info("media tcp write failed: %s", uv_strerror(status));
        sender_stop(s, "write-error");
    }
}

static int tcp_write_out(struct gb_media_sender *s)
{
    size_t len = s->out.len, done = 0;
    uv_buf_t b = uv_buf_init(s->out.data, (unsigned)len);
    if (uv_stream_get_write_queue_size((uv_stream_t *)&s->conn) == 0) {
        int n = uv_try_write((uv_stream_t *)&s->conn, &b, 1);
        if (n > 0) done = (size_t)n;
        else if (n < 0 && n != UV_EAGAIN) return n;
    }
    if (done == len) return 0;
    struct write_req *w = malloc(sizeof(*w) + (len - done));
    if (!w) return UV_ENOMEM;
    w->s = s;
    w->len = len - done;
    memcpy(w->data, s->out.data + done, len - done);
    b = uv_buf_init(w->data, (unsigned)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&s->conn, &b, 1, tcp_written);
    if (rc < 0) free(w);
    return rc;
}

#define AUDIO_PES_SAMPLES 320 /* 40 ms of G.711 per PES, as many cameras send */
#define AUDIO_TONE_HZ 440.0
#define AUDIO_TONE_AMPLITUDE 8000 /* about -12 dBFS */

/* Sample index (8 kHz) at the start of frame n of the media clock. */
static uint64_t audio_sample_at(const struct gb_media_sender *s, uint64_t n)
{
    return (uint64_t)((double)n * GB_G711_RATE / s->clip->fps + 0.5);
}

/* Appends the audio of frame s->frame_no (the tone over the frame's time)
 * after its video pack. */
static int mux_frame_audio(struct gb_media_sender *s)
{
    uint8_t buf[AUDIO_PES_SAMPLES];
    uint64_t from = audio_sample_at(s, s->frame_no), to = audio_sample_at(s, s->frame_no + 1);
    while (from < to) {
        size_t n = to - from < AUDIO_PES_SAMPLES ? (size_t)(to - from) : AUDIO_PES_SAMPLES;
        gb_g711_tone(buf, n, from, AUDIO_TONE_HZ, AUDIO_TONE_AMPLITUDE, s->audio == GB_MEDIA_AUDIO_PCMU);
        uint64_t pts = from * 90000 / GB_G711_RATE; /* 11.25 ticks a sample */
        if (gb_ps_mux_audio(&s->ps, buf, n, pts & 0x1FFFFFFFFULL) != 0) return -ENOMEM;
        s->stats.audio_pes++;
        s->stats.audio_samples += n;
        from += n;
    }
    return 0;
}

/* Sends clip frame s->next_frame with the clock of frame s->frame_no. */
static int send_frame(struct gb_media_sender *s)
{
    const struct clip_frame *f = &s->clip->frames[s->next_frame];
    uint64_t pts = (uint64_t)((double)s->frame_no * 90000.0 / s->clip->fps + 0.5);
    bool tcp = s->proto != GB_MEDIA_UDP;
    int rc = 0;
    if (tcp && uv_stream_get_write_queue_size((uv_stream_t *)&s->conn) > s->max_queue) s->skip_to_key = true;
    if (s->skip_to_key && f->key && (!tcp || uv_stream_get_write_queue_size((uv_stream_t *)&s->conn) <= s->max_queue))
        s->skip_to_key = false;
    if (s->skip_to_key) {
        /* The receiver cannot keep up: drop whole frames until the next key
         * frame so that what it gets still decodes. */
        s->stats.frames_skipped++;
    } else {
        sbuf_clear(&s->ps);
        sbuf_clear(&s->out);
        int audio_type = s->audio == GB_MEDIA_AUDIO_PCMA   ? GB_PS_STREAM_TYPE_PCMA
                         : s->audio == GB_MEDIA_AUDIO_PCMU ? GB_PS_STREAM_TYPE_PCMU
                                                           : -1;
        if (gb_ps_mux_frame_av(&s->ps, s->clip->codec, audio_type, s->clip->data + f->off, f->len,
                               pts & 0x1FFFFFFFFULL, f->key) != 0)
            return -ENOMEM;
        if (audio_type >= 0 && mux_frame_audio(s) != 0) return -ENOMEM;
        rc = gb_rtp_pack_frame(&s->packer, (const uint8_t *)s->ps.data, s->ps.len, s->ts_base + (uint32_t)pts,
                               tcp ? emit_tcp : emit_udp, s);
        if (rc == 0 && tcp) rc = tcp_write_out(s);
        if (rc == 0) s->stats.frames++;
    }
    s->frame_no++;
    if (++s->next_frame == s->clip->nframes) {
        s->next_frame = 0;
        s->stats.loops++;
    }
    return rc;
}

/* When frame n is due on the wall clock: the pace restarts (pace_ms,
 * pace_frame) whenever the speed changes, a pause ends or a seek jumps, so
 * that the change takes effect from that moment. */
static uint64_t frame_due(const struct gb_media_sender *s, uint64_t n)
{
    return s->pace_ms + (uint64_t)((double)(n - s->pace_frame) * s->frame_ms / s->scale);
}

static void pace_restart(struct gb_media_sender *s, uint64_t now)
{
    s->pace_ms = now;
    s->pace_frame = s->frame_no;
}

static bool media_time_over(const struct gb_media_sender *s)
{
    return s->duration_ms && (double)s->frame_no * s->frame_ms >= (double)s->duration_ms;
}

static void frame_timer_cb(struct timer_node *n, uint64_t now)
{
    struct gb_media_sender *s = container_of(n, struct gb_media_sender, frame_timer);
    int sent = 0;
    while (!s->stopped && !s->paused) {
        if (frame_due(s, s->frame_no) > now) break;
        if (sent == MAX_CATCH_UP) {
            /* Far behind (a stalled loop): restart the clock instead of bursting. */
            pace_restart(s, now);
            break;
        }
        if ((!s->loop_clip && s->stats.loops > 0) || media_time_over(s)) {
            sender_stop(s, "end");
            return;
        }
        int rc = send_frame(s);
        if (rc != 0) {
            log_info("media stream ssrc %u: send failed: %s", s->packer.ssrc,
                     rc < 0 ? uv_strerror(rc) : "error");
            sender_stop(s, s->proto == GB_MEDIA_UDP ? "send-error" : "write-error");
            return;
        }
        sent++;
    }
    if (s->stopped || s->paused) return;
    uint64_t next = frame_due(s, s->frame_no);
    sender_arm(s, &s->frame_timer, next > now ? next : now + 1, frame_timer_cb);
}

static void begin_frames(struct gb_media_sender *s)
{
    s->frames_on = true;
    pace_restart(s, sender_now(s));
    if (!s->paused) sender_arm(s, &s->frame_timer, s->pace_ms, frame_timer_cb);
}

/* ---- playback control ---- */

void gb_media_sender_pause(struct gb_media_sender *s)
{
    if (s->paused || s->stopped) return;
    s->paused = true;
    timer_stop(s->timers, &s->frame_timer);
}

void gb_media_sender_resume(struct gb_media_sender *s)
{
    if (!s->paused || s->stopped) return;
    s->paused = false;
    if (!s->frames_on) return; /* not connected yet: begin_frames starts it */
    pace_restart(s, sender_now(s));
    sender_arm(s, &s->frame_timer, s->pace_ms, frame_timer_cb);
}

int gb_media_sender_set_scale(struct gb_media_sender *s, double scale)
{
    if (!(scale >= 0.0625 && scale <= 16.0)) return -EINVAL;
    s->scale = scale;
    if (s->frames_on && !s->paused && !s->stopped) {
        pace_restart(s, sender_now(s));
        sender_arm(s, &s->frame_timer, s->pace_ms, frame_timer_cb);
    }
    return 0;
}

int gb_media_sender_seek(struct gb_media_sender *s, double pos_s)
{
    if (!(pos_s >= 0) || pos_s > 1e7 || (s->duration_ms && pos_s * 1000.0 >= (double)s->duration_ms)) return -EINVAL;
    uint64_t target = (uint64_t)(pos_s * s->clip->fps);
    /* Land on a key frame so the receiver can decode from the first frame. */
    size_t idx = (size_t)(target % s->clip->nframes), back = 0;
    while (idx > 0 && !s->clip->frames[idx].key) idx--, back++;
    s->frame_no = target - back;
    s->next_frame = idx;
    s->skip_to_key = false;
    if (s->frames_on && !s->paused && !s->stopped) {
        pace_restart(s, sender_now(s));
        sender_arm(s, &s->frame_timer, s->pace_ms, frame_timer_cb);
    }
    return 0;
}

bool gb_media_sender_paused(const struct gb_media_sender *s) { return s->paused; }

int gb_media_sender_apply(struct gb_media_sender *s, const struct gb_rtsp_req *r)
{
    switch (r->method) {
    case GB_RTSP_PAUSE: gb_media_sender_pause(s); return 0;
    case GB_RTSP_PLAY:
        if (r->has_range && r->range_from >= 0 && gb_media_sender_seek(s, r->range_from) != 0) return -EINVAL;
        if (r->has_scale && gb_media_sender_set_scale(s, r->scale) != 0) return -EINVAL;
        gb_media_sender_resume(s);
        return 0;
    case GB_RTSP_TEARDOWN: return 0;
    }
    return -EINVAL;
}

double gb_media_sender_position(const struct gb_media_sender *s) { return (double)s->frame_no * s->frame_ms / 1000.0; }

/* ---- TCP connection set-up ---- */

static void conn_read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct gb_media_sender *s = h->data;
    /* RTCP or anything else the receiver writes back is read and dropped. */
    *buf = uv_buf_init(s->sink, sizeof(s->sink));
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct gb_media_sender *s = st->data;
    if (nread < 0 && !s->freed) sender_stop(s, "peer-closed");
}

static void tcp_ready(struct gb_media_sender *s)
{
    s->connected = s->stats.connected = true;
    timer_stop(s->timers, &s->wait_timer);
    uv_tcp_nodelay(&s->conn, 1);
    uv_read_start((uv_stream_t *)&s->conn, conn_read_alloc, conn_read);
    begin_frames(s);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct gb_media_sender *s = req->data;
    s->connecting = false;
    if (s->freed || s->stopped) return;
    if (status < 0) {
        char peer[TRANSPORT_ADDR_TEXT];
        transport_addr_text(&s->remote, peer, sizeof(peer));
        log_info("media tcp connect to %s failed: %s", peer, uv_strerror(status));
        sender_stop(s, "connect-failed");
        return;
    }
    tcp_ready(s);
}

static void extra_closed(uv_handle_t *h) { free(h); }

static void on_accept(uv_stream_t *server, int status)
{
    struct gb_media_sender *s = server->data;
    if (s->freed || s->stopped || status < 0) return;
    if (s->conn_open) {
        /* One peer per stream (RFC 4145 a=connection:new): a second
         * connection racing in before the listener closed is refused. */
        uv_tcp_t *extra = malloc(sizeof(*extra));
        if (!extra || uv_tcp_init(s->loop, extra) != 0) {
            free(extra);
            return;
        }
        uv_accept(server, (uv_stream_t *)extra);
        uv_close((uv_handle_t *)extra, extra_closed);
        return;
    }
    if (uv_tcp_init(s->loop, &s->conn) != 0) return;
    s->conn.data = s;
    s->conn_open = true;
    s->handles++;
    if (uv_accept(server, (uv_stream_t *)&s->conn) != 0) {
        sender_stop(s, "accept-failed");
        return;
    }
    close_handle((uv_handle_t *)&s->listener, &s->listener_open);
    if (s->started) tcp_ready(s);
}

static void wait_timer_cb(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct gb_media_sender *s = container_of(n, struct gb_media_sender, wait_timer);
    if (s->connected) return;
    sender_stop(s, s->proto == GB_MEDIA_TCP_ACTIVE ? "connect-failed" : "accept-timeout");
}

static int bind_addr(const char *ip, struct sockaddr_storage *ss)
{
    if (!ip || !*ip) ip = "0.0.0.0";
    return transport_addr_parse(ip, strlen(ip), 0, ss) == 0 ? 0 : -EINVAL;
}

static uint16_t sock_port(const uv_handle_t *h, bool udp)
{
    struct sockaddr_storage a;
    int len = sizeof(a);
    int rc = udp ? uv_udp_getsockname((const uv_udp_t *)h, (struct sockaddr *)&a, &len)
                 : uv_tcp_getsockname((const uv_tcp_t *)h, (struct sockaddr *)&a, &len);
    return rc == 0 ? transport_addr_port(&a) : 0;
}

struct gb_media_sender *gb_media_sender_new(const struct gb_media_sender_config *cfg,
                                            const struct gb_media_sender_cb *cb, void *arg, int *err)
{
    int e = 0;
    if (!cfg || !cfg->loop || !cfg->timers || !cfg->clip || cfg->proto > GB_MEDIA_TCP_PASSIVE ||
        cfg->audio > GB_MEDIA_AUDIO_PCMU) {
        if (err) *err = -EINVAL;
        return NULL;
    }
    struct sockaddr_storage local;
    if (bind_addr(cfg->local_ip, &local) != 0) {
        if (err) *err = -EINVAL;
        return NULL;
    }
    struct gb_media_sender *s = calloc(1, sizeof(*s));
    if (!s) {
        if (err) *err = UV_ENOMEM;
        return NULL;
    }
    s->loop = cfg->loop;
    s->timers = cfg->timers;
    s->timers_changed = cfg->timers_changed;
    s->timers_arg = cfg->timers_arg;
    s->now_ms = cfg->now_ms;
    s->proto = cfg->proto;
    s->remote = cfg->remote;
    s->clip = cfg->clip;
    gb_media_clip_ref(s->clip);
    s->max_queue = cfg->max_queue_bytes ? cfg->max_queue_bytes : DEFAULT_MAX_QUEUE;
    s->connect_timeout = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT;
    s->loop_clip = cfg->loop_clip;
    s->audio = cfg->audio;
    if (cb) s->cb = *cb;
    s->arg = arg;
    s->frame_ms = 1000.0 / s->clip->fps;
    s->scale = 1.0;
    s->duration_ms = cfg->duration_ms;
    timer_node_init(&s->frame_timer);
    timer_node_init(&s->wait_timer);
    sbuf_init(&s->ps);
    sbuf_init(&s->out);
    uint16_t first_seq = 0;
    uv_random(NULL, NULL, &first_seq, sizeof(first_seq), 0, NULL);
    uv_random(NULL, NULL, &s->ts_base, sizeof(s->ts_base), 0, NULL);
    gb_rtp_packer_init(&s->packer, cfg->ssrc, cfg->payload_type ? cfg->payload_type : GB_RTP_PT_PS, first_seq,
                       s->proto != GB_MEDIA_UDP, s->proto == GB_MEDIA_UDP ? 0 : GB_RTP_MAX_PAYLOAD_UDP);

    switch (s->proto) {
    case GB_MEDIA_UDP:
        e = uv_udp_init(s->loop, &s->udp);
        if (e) break;
        s->udp.data = s;
        s->udp_open = true;
        s->handles++;
        e = uv_udp_bind(&s->udp, (const struct sockaddr *)&local, 0);
        if (!e) s->local_port = sock_port((uv_handle_t *)&s->udp, true);
        break;
    case GB_MEDIA_TCP_ACTIVE:
        e = uv_tcp_init(s->loop, &s->conn);
        if (e) break;
        s->conn.data = s;
        s->conn_open = true;
        s->handles++;
        e = uv_tcp_bind(&s->conn, (const struct sockaddr *)&local, 0);
        break;
    case GB_MEDIA_TCP_PASSIVE:
        e = uv_tcp_init(s->loop, &s->listener);
        if (e) break;
        s->listener.data = s;
        s->listener_open = true;
        s->handles++;
        e = uv_tcp_bind(&s->listener, (const struct sockaddr *)&local, 0);
        if (!e) e = uv_listen((uv_stream_t *)&s->listener, 4, on_accept);
        if (!e) s->local_port = sock_port((uv_handle_t *)&s->listener, false);
        if (!e) sender_arm(s, &s->wait_timer, sender_now(s) + s->connect_timeout, wait_timer_cb);
        break;
    }
    if (e || (s->proto != GB_MEDIA_TCP_ACTIVE && !s->local_port)) {
        if (err) *err = e ? e : UV_EADDRNOTAVAIL;
        s->stopped = true; /* no on_stopped for a sender that never existed */
        gb_media_sender_free(s);
        return NULL;
    }
    return s;
}

uint16_t gb_media_sender_local_port(const struct gb_media_sender *s)
{
    if (s->proto == GB_MEDIA_TCP_ACTIVE && s->conn_open) return sock_port((const uv_handle_t *)&s->conn, false);
    return s->local_port;
}

int gb_media_sender_start(struct gb_media_sender *s)
{
    if (s->stopped) return UV_ECANCELED;
    if (s->started) return 0;
    s->started = s->stats.started = true;
    switch (s->proto) {
    case GB_MEDIA_UDP: begin_frames(s); return 0;
    case GB_MEDIA_TCP_ACTIVE: {
        s->connect_req.data = s;
        int rc = uv_tcp_connect(&s->connect_req, &s->conn, (const struct sockaddr *)&s->remote, on_connect);
        if (rc < 0) return rc;
        s->connecting = true;
        sender_arm(s, &s->wait_timer, sender_now(s) + s->connect_timeout, wait_timer_cb);
        return 0;
    }
    case GB_MEDIA_TCP_PASSIVE:
        if (s->conn_open) tcp_ready(s); /* the peer connected before the ACK came */
        return 0;
    }
    return 0;
}

void gb_media_sender_get_stats(const struct gb_media_sender *s, struct gb_media_sender_stats *out)
{
    *out = s->stats;
}

enum gb_media_proto gb_media_sender_proto(const struct gb_media_sender *s) { return s->proto; }

void gb_media_sender_free(struct gb_media_sender *s)
{
    if (!s || s->freed) return;
    s->freed = true;
    s->stopped = true;
    timer_stop(s->timers, &s->frame_timer);
    timer_stop(s->timers, &s->wait_timer);
    /* Every sender holds at least one handle until here, so the memory always
     * goes from a close callback, never under a caller's feet. */
    close_handle((uv_handle_t *)&s->udp, &s->udp_open);
    close_handle((uv_handle_t *)&s->conn, &s->conn_open);
    close_handle((uv_handle_t *)&s->listener, &s->listener_open);
    if (s->handles == 0) { /* every close callback already ran */
        gb_media_clip_unref(s->clip);
        sbuf_free(&s->ps);
        sbuf_free(&s->out);
        free(s);
    }
}

/* ---- offer / answer ---- */

int gb_media_offer_parse(str_t content_type, str_t body, struct gb_media_offer *o, const char **why)
{
    _Alignas(16) char mem[8192];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    struct sdp_session sdp;
    int status = 0;
    memset(o, 0, sizeof(*o));
    *why = NULL;
    const char *semi = content_type.s ? memchr(content_type.s, ';', content_type.len) : NULL;
    str_t type = str_trim(str_make(content_type.s, semi ? (size_t)(semi - content_type.s) : content_type.len));
    if (!body.len || !str_ieq_cstr(type, "application/sdp")) {
        *why = "no SDP offer";
        status = 488;
        goto out;
    }
    if (sdp_parse(body.s, body.len, &a, &sdp, why) != 0) {
        status = 400;
        goto out;
    }
    const struct sdp_media *md = NULL;
    for (uint32_t i = 0; i < sdp.media_count && !md; i++)
        if (str_eq_cstr(sdp.media[i].media, "video") && sdp.media[i].port) md = &sdp.media[i];
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
    /* The PT the offer maps to PS (GB/T 28181 uses 96; honour another). */
    o->pt = GB_RTP_PT_PS;
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
    if (sdp.time_count && sdp.times[0].start <= INT64_MAX && sdp.times[0].stop <= INT64_MAX) {
        o->start = (int64_t)sdp.times[0].start;
        o->end = (int64_t)sdp.times[0].stop;
    }
    if (sdp.uri.len && sdp.uri.len < sizeof(o->uri)) {
        str_copy(o->uri, sizeof(o->uri), sdp.uri);
        for (char *p = o->uri; *p; p++)
            if (*p < 0x21 || *p > 0x7e) *p = '_';
    }
    if (sdp_gb_ssrc(&sdp, &o->ssrc) == 0 && sdp.gb_ssrc.len < sizeof(o->ssrc_text)) {
        str_copy(o->ssrc_text, sizeof(o->ssrc_text), sdp.gb_ssrc);
        o->has_ssrc = true;
    }
out:
    arena_free(&a);
    return status;
}

int gb_media_answer_sdp(sbuf_t *out, const char *origin_id, const char *ip, uint16_t port,
                        const struct gb_media_offer *o)
{
    bool v6 = strchr(ip, ':') != NULL;
    bool tcp = o->proto != GB_MEDIA_UDP;
    const char *af = v6 ? "IP6" : "IP4";
    sbuf_printf(out,
                "v=0\r\n"
                "o=%s 0 0 IN %s %s\r\n"
                "s=%s\r\n"
                "c=IN %s %s\r\n"
                "t=%lld %lld\r\n"
                "m=video %u %s %u\r\n"
                "a=sendonly\r\n"
                "a=rtpmap:%u PS/90000\r\n",
                origin_id, af, ip, o->session[0] ? o->session : "Play", af, ip, (long long)o->start,
                (long long)o->end, port, tcp ? "TCP/RTP/AVP" : "RTP/AVP", o->pt, o->pt);
    if (tcp)
        sbuf_printf(out, "a=setup:%s\r\na=connection:new\r\n", o->proto == GB_MEDIA_TCP_ACTIVE ? "active" : "passive");
    if (o->ssrc_text[0]) sbuf_printf(out, "y=%s\r\n", o->ssrc_text);
    return out->failed ? -1 : 0;
}
