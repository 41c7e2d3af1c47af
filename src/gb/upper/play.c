/* play.c — real-time play and playback (GB/T 28181-2016 §9.2, §9.8): the
 * INVITE with Subject and a recvonly SDP offer (PS/90000 on PT 96, y= SSRC,
 * UDP or TCP passive with RFC 4571 framing), and the RTP receiver that checks
 * the SSRC, counts packets, bytes and loss (RFC 3550 A.1), finds the PS pack
 * headers and the codec from the PSM, and can write the PS to a file.
 *
 * Life of a stream: INVITING (INVITE sent, media socket already open so that
 * no early packet is lost) -> PLAYING (2xx, the UA ACKed) -> STOPPED (BYE
 * either way, RTP silence, device offline, API DELETE, shutdown). A stopped
 * stream leaves the table at once and is freed when libuv has closed its
 * sockets. The stream id is its SSRC: unique among live streams, and what an
 * operator sees in captures.
 *
 * Where the dialog's requests go: the INVITE goes to the flow the device
 * registered over (its UDP source address, or its TCP connection), and so do
 * the ACK, INFO, re-INVITE and BYE (ua_request.pin_dest), whatever Contact the
 * 200 carries. Devices behind NAT put private addresses there, and a device
 * registered over TCP can only be reached over its connection; the flow the
 * REGISTER came over is the one address known to reach the device.
 *
 * What RTP carries: MPEG-PS (pack header 00 00 01 BA) as GB/T 28181 asks, or
 * MPEG-TS (PT 33, 0x47 every 188 bytes) as some cameras and simulators send;
 * the container found is reported ("ps", "ts"). A device that sends with an
 * SSRC other than the y= agreed is followed when that SSRC is the only one
 * reaching the port and none with the agreed one came (logged). */
#include "gb/upper/upper_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/clock.h"
#include "base/log.h"
#include "sip/sdp.h"

static void stream_timer(struct timer_node *n, uint64_t now);

/* ---- table ----
 * A list (newest first: the order of the API's answers) and a base/htable.h
 * table by stream id over the same streams. */

static uint32_t sid_hash(const char *sid) { return str_hash(str_from_cstr(sid)); }

struct gb_stream *gb_stream_find(struct gb_upper *g, const char *sid)
{
    if (!sid) return NULL;
    for (struct hnode *n = htable_first(&g->streams_by_sid, sid_hash(sid)); n; n = htable_next(n)) {
        struct gb_stream *s = container_of(n, struct gb_stream, by_sid);
        if (!strcmp(s->sid, sid)) return s;
    }
    return NULL;
}

static void stream_unlink(struct gb_upper *g, struct gb_stream *s)
{
    if (s->prev) s->prev->next = s->next;
    else if (g->streams == s) g->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
    htable_remove(&g->streams_by_sid, &s->by_sid);
    if (g->stream_count) g->stream_count--;
}

static void stream_free(struct gb_stream *s)
{
    gb_rtp_deframer_free(&s->deframer);
    if (s->demux_on) gb_ps_demux_free(&s->demux);
    if (s->dump) fclose(s->dump);
    free(s->dump_path);
    free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct gb_stream *s = h->data;
    if (h == (uv_handle_t *)s->conn) free(s->conn);
    if (--s->handles == 0) stream_free(s);
}

/* ---- JSON ---- */

static const char *container_name(enum gb_container c)
{
    return c == GB_CONTAINER_PS ? "ps" : c == GB_CONTAINER_TS ? "ts" : "unknown";
}

static gb_codec_t stream_codec(const struct gb_stream *s)
{
    if (s->container == GB_CONTAINER_TS) return s->ts_codec;
    return s->demux_on ? s->demux.codec : GB_CODEC_UNKNOWN;
}

json_t *gb_stream_json(const struct gb_stream *s)
{
    static const char *const states[] = {"inviting", "playing", "stopped"};
    char started[32];
    gb_iso_time(s->started_at, started);
    int64_t lost = s->rtp.started ? gb_rtp_stats_lost(&s->rtp) : 0;
    json_t *o = json_object();
    json_object_set_new(o, "stream_id", json_string(s->sid));
    json_object_set_new(o, "device_id", json_string(s->device_id));
    json_object_set_new(o, "channel_id", json_string(s->channel_id));
    json_object_set_new(o, "ssrc", json_string(s->ssrc));
    json_object_set_new(o, "transport", json_string(s->tcp ? "tcp" : "udp"));
    json_object_set_new(o, "media_ip", json_string(s->g->media_ip));
    json_object_set_new(o, "media_port", json_integer(s->port));
    json_object_set_new(o, "playback", json_boolean(s->playback));
    if (s->playback) {
        json_object_set_new(o, "paused", json_boolean(s->paused));
        json_object_set_new(o, "scale", json_real(s->scale > 0 ? s->scale : 1.0));
    }
    json_object_set_new(o, "state", json_string(states[s->state]));
    json_object_set_new(o, "packets", json_integer((json_int_t)s->rtp.received));
    json_object_set_new(o, "bytes", json_integer((json_int_t)s->bytes));
    json_object_set_new(o, "lost", json_integer((json_int_t)lost));
    json_object_set_new(o, "wrong_ssrc", json_integer((json_int_t)s->rtp.wrong_ssrc));
    json_object_set_new(o, "bad_packets", json_integer((json_int_t)s->bad_packets));
    json_object_set_new(o, "rtp_ssrc", json_integer((json_int_t)s->ssrc_value));
    json_object_set_new(o, "container", json_string(container_name(s->container)));
    json_object_set_new(o, "codec", json_string(gb_codec_name(stream_codec(s))));
    json_object_set_new(o, "ps", json_boolean(s->demux_on && s->demux.stats.packs > 0));
    json_object_set_new(o, "ps_packs", json_integer(s->demux_on ? (json_int_t)s->demux.stats.packs : 0));
    json_object_set_new(o, "frames", json_integer(s->demux_on ? (json_int_t)s->demux.stats.frames : 0));
    json_object_set_new(o, "bitrate_bps", json_integer((json_int_t)s->bitrate_bps));
    json_object_set_new(o, "started_at", started[0] ? json_string(started) : json_null());
    if (s->dump_path) json_object_set_new(o, "dump_path", json_string(s->dump_path));
    gb_live_json(s, o);
    return o;
}

json_t *gb_streams_json(struct gb_upper *g)
{
    json_t *arr = json_array();
    for (struct gb_stream *s = g->streams; s; s = s->next) json_array_append_new(arr, gb_stream_json(s));
    return json_pack("{s:o}", "streams", arr);
}

/* ---- stopping ---- */

void gb_stream_stop(struct gb_stream *s, const char *reason, bool send_bye)
{
    struct gb_upper *g = s->g;
    if (s->state == GB_STREAM_STOPPED) return;
    bool was_playing = s->state == GB_STREAM_PLAYING;
    /* Taken before the outputs end: the event says who was watching. */
    json_int_t viewers = gb_live_viewers(s);
    json_t *by_output = gb_live_viewers_by_output(s);
    s->state = GB_STREAM_STOPPED;
    snprintf(s->stop_reason, sizeof(s->stop_reason), "%s", reason);
    stream_unlink(g, s);
    timer_stop(g->timers, &s->timer);
    if (s->h) {
        ua_request_cancel(s->h); /* a 2xx that still comes is ACKed and BYEd by the UA */
        s->h = NULL;
    }
    if (s->dlg) {
        if (send_bye) ua_dialog_bye(s->dlg);
        else ua_dialog_set_cb(s->dlg, NULL, NULL);
        s->dlg = NULL;
    }
    if (s->waiter)
        gb_waiters_done(&s->waiter, 502, gb_error_json("stream-stopped", "the stream stopped before it played (%s)", reason));
    gb_ssrc_release(&g->ssrc, str_from_cstr(s->ssrc));
    struct gb_device *d = s->remote ? NULL : gb_device_find(g, s->device_id);
    if (d && d->streams) d->streams--;
    if (s->demux_on) gb_ps_demux_flush(&s->demux);
    timer_stop(g->timers, &s->live_idle);
    gb_live_on_stream_end(s, reason); /* live viewers drain what was packaged, then end */
    if (s->dump) {
        fclose(s->dump);
        s->dump = NULL;
    }
    int64_t lost = s->rtp.started ? gb_rtp_stats_lost(&s->rtp) : 0;
    log_info("gb stream %s (%s/%s) stopped: %s; %llu packets, %llu bytes, %lld lost", s->sid, s->device_id,
             s->channel_id, reason, (unsigned long long)s->rtp.received, (unsigned long long)s->bytes,
             (long long)lost);
    if (was_playing)
        gb_publish(g, "gb.stream.stopped",
                   json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:I,s:I,s:o}", "stream_id", s->sid, "device_id",
                             s->device_id, "channel_id", s->channel_id, "reason", reason, "packets",
                             (json_int_t)s->rtp.received, "bytes", (json_int_t)s->bytes, "lost", (json_int_t)lost,
                             "container", container_name(s->container), "rtp_ssrc", (json_int_t)s->ssrc_value,
                             "viewers", viewers, "viewers_by_output", by_output));
    else
        json_decref(by_output);
    int open = 0;
    if (s->udp.loop) open++;
    if (s->listener.loop) open++;
    if (s->conn) open++;
    s->handles = open;
    if (!open) {
        stream_free(s);
        return;
    }
    if (s->udp.loop) uv_close((uv_handle_t *)&s->udp, on_handle_closed);
    if (s->listener.loop) uv_close((uv_handle_t *)&s->listener, on_handle_closed);
    if (s->conn) uv_close((uv_handle_t *)s->conn, on_handle_closed);
}

void gb_streams_stop_device(struct gb_upper *g, const char *device_id, const char *reason)
{
    for (struct gb_stream *s = g->streams, *next; s; s = next) {
        next = s->next;
        if (!strcmp(s->device_id, device_id)) gb_stream_stop(s, reason, true);
    }
}

size_t gb_streams_stop_via(struct gb_upper *g, const char *node, const char *device_id)
{
    size_t n = 0;
    for (struct gb_stream *s = g->streams, *next; s; s = next) {
        next = s->next;
        if (s->remote && !strcmp(s->via_node, node) && (!device_id || !strcmp(s->device_id, device_id))) {
            gb_stream_stop(s, "node-lost", true);
            n++;
        }
    }
    return n;
}

void gb_streams_media_end(struct gb_upper *g, const char *device_id, const char *channel_id)
{
    for (struct gb_stream *s = g->streams, *next; s; s = next) {
        next = s->next;
        if (s->playback && !strcmp(s->device_id, device_id) && (!channel_id || !strcmp(s->channel_id, channel_id) ||
                                                                 !strcmp(channel_id, device_id)))
            gb_stream_stop(s, "media-end", true);
    }
}

void gb_streams_stop_all(struct gb_upper *g, const char *reason)
{
    while (g->streams) gb_stream_stop(g->streams, reason, true);
}

/* ---- receiving ---- */

static void on_ps_frame(void *arg, const gb_ps_frame_t *f)
{
    /* Counted by the demuxer (the codec comes from its PSM); packaged for
     * live viewers when there are any. */
    gb_live_learn(arg, f);
    gb_live_on_frame(arg, f);
    gb_live_hls_on_frame(arg, f);
}

static void on_ps_audio(void *arg, const gb_ps_audio_t *a) { gb_live_on_audio(arg, a); }

static void account_bitrate(struct gb_stream *s, size_t n, uint64_t now)
{
    if (!s->win_start) s->win_start = now;
    s->win_bytes += n;
    if (now - s->win_start >= 1000) {
        s->bitrate_bps = s->win_bytes * 8000u / (now - s->win_start);
        s->win_start = now;
        s->win_bytes = 0;
    }
}

/* MPEG-TS program tables (ISO/IEC 13818-1 §2.4.4): the PAT names the PMT's
 * PID, the PMT's stream_type the codec (0x1b H.264, 0x24 H.265). */
static void ts_scan(struct gb_stream *s, const uint8_t *b)
{
    uint16_t pid = (uint16_t)(((b[1] & 0x1f) << 8) | b[2]);
    if (!(b[1] & 0x40) || (pid != 0 && (!s->ts_pmt_pid || pid != s->ts_pmt_pid))) return; /* no section starts */
    size_t off = 4;
    if (b[3] & 0x20) off += 1u + b[4];          /* adaptation field */
    if (off >= 188) return;
    off += 1u + b[off];                         /* pointer_field */
    if (off + 12 > 188) return;
    size_t end = off + 3 + (((size_t)(b[off + 1] & 0x0f) << 8) | b[off + 2]);
    if (end > 188) end = 188;
    if (end < 4) return;
    end -= 4;                                   /* CRC_32 */
    if (pid == 0 && b[off] == 0x00) {
        for (size_t x = off + 8; x + 4 <= end; x += 4)
            if (b[x] || b[x + 1]) { /* program_number 0 is the network PID */
                s->ts_pmt_pid = (uint16_t)(((b[x + 2] & 0x1f) << 8) | b[x + 3]);
                return;
            }
    } else if (pid == s->ts_pmt_pid && b[off] == 0x02) {
        size_t x = off + 12 + (((size_t)(b[off + 10] & 0x0f) << 8) | b[off + 11]);
        for (; x + 5 <= end; x += 5 + (((size_t)(b[x + 3] & 0x0f) << 8) | b[x + 4])) {
            if (b[x] == 0x1b) s->ts_codec = GB_CODEC_H264;
            else if (b[x] == 0x24) s->ts_codec = GB_CODEC_H265;
            else continue;
            return;
        }
    }
}

static bool is_ts(const uint8_t *b, size_t n)
{
    if (!n || n % 188) return false;
    for (size_t i = 0; i < n; i += 188)
        if (b[i] != 0x47) return false;
    return true;
}

/* Which container the payload is, once (a PS pack header, or whole TS
 * packets; PT 33 is MP2T, RFC 3551 §6). */
static void sniff_container(struct gb_stream *s, const gb_rtp_packet_t *p)
{
    const uint8_t *b = p->payload;
    size_t n = p->payload_len;
    if (n >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 1 && b[3] == 0xBA) s->container = GB_CONTAINER_PS;
    else if (is_ts(b, n) || ((p->payload_type == 33 || s->answer_ts) && n && b[0] == 0x47))
        s->container = GB_CONTAINER_TS;
    if (s->container != GB_CONTAINER_UNKNOWN)
        log_info("gb stream %s: RTP carries MPEG-%s (PT %u)", s->sid, s->container == GB_CONTAINER_PS ? "PS" : "TS",
                 p->payload_type);
}

/* Before any packet with the agreed SSRC: a device that sends another one
 * (some pick their own and answer y= anyway) is followed once it is the only
 * other SSRC reaching the port for GB_SSRC_FOLLOW_AFTER packets. */
static void follow_ssrc(struct gb_stream *s, const gb_rtp_packet_t *p)
{
    if (s->rtp.received || p->ssrc == s->ssrc_value || s->foreign_mixed) return;
    if (s->foreign_count && p->ssrc != s->foreign_ssrc) {
        s->foreign_mixed = true;
        log_warn("gb stream %s: RTP with SSRCs %u and %u, neither the agreed %u: none followed", s->sid,
                 s->foreign_ssrc, p->ssrc, s->ssrc_value);
        return;
    }
    s->foreign_ssrc = p->ssrc;
    if (++s->foreign_count < GB_SSRC_FOLLOW_AFTER) return;
    log_info("gb stream %s: the device sends SSRC %u, not the agreed %u; following it", s->sid, p->ssrc,
             s->ssrc_value);
    uint64_t wrong = s->rtp.wrong_ssrc;
    gb_rtp_stats_init(&s->rtp, true, p->ssrc);
    s->rtp.wrong_ssrc = wrong;
    s->ssrc_value = p->ssrc;
}

static int on_rtp(void *arg, const uint8_t *pkt, size_t len)
{
    struct gb_stream *s = arg;
    if (s->state == GB_STREAM_STOPPED) return 1;
    s->packets_in++;
    gb_rtp_packet_t p;
    if (gb_rtp_parse(pkt, len, &p) != 0) {
        s->bad_packets++;
        return 0;
    }
    if (p.payload_type >= 72 && p.payload_type <= 76) return 0; /* RTCP on the same flow (RFC 5761 §4) */
    follow_ssrc(s, &p);
    if (gb_rtp_stats_update(&s->rtp, &p) != 0) return 0;          /* another SSRC, or a jump not yet trusted */
    uint64_t now = gb_now(s->g);
    s->last_rx = now;
    if (!s->first_rx) s->first_rx = now;
    s->bytes += p.payload_len;
    account_bitrate(s, p.payload_len, now);
    if (s->container == GB_CONTAINER_UNKNOWN) sniff_container(s, &p);
    if (s->container == GB_CONTAINER_TS) {
        for (size_t i = 0; !s->ts_codec && i + 188 <= p.payload_len; i += 188)
            if (p.payload[i] == 0x47) ts_scan(s, p.payload + i);
    } else if (s->demux_on && gb_ps_demux_feed(&s->demux, p.payload, p.payload_len) == 0 && p.marker)
        gb_ps_demux_flush(&s->demux);
    if (s->dump && fwrite(p.payload, 1, p.payload_len, s->dump) != p.payload_len) {
        log_warn("gb stream %s: writing %s failed, dump stopped", s->sid, s->dump_path);
        fclose(s->dump);
        s->dump = NULL;
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct gb_stream *s = h->data;
    buf->base = s->buf;
    buf->len = sizeof(s->buf);
}

static void on_udp(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
    struct gb_stream *s = h->data;
    if (nread <= 0 || !addr) return;
    if (flags & UV_UDP_PARTIAL) {
        s->bad_packets++;
        return;
    }
    on_rtp(s, (const uint8_t *)buf->base, (size_t)nread);
}

static void on_tcp_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    struct gb_stream *s = h->data;
    if (nread == 0) return;
    if (nread < 0) {
        gb_stream_stop(s, nread == UV_EOF ? "media-closed" : "media-error", true);
        return;
    }
    if (gb_rtp_deframer_feed(&s->deframer, (const uint8_t *)buf->base, (size_t)nread, on_rtp, s) < 0) {
        log_warn("gb stream %s: RFC 4571 framing lost on the media connection", s->sid);
        gb_stream_stop(s, "media-framing", true);
    }
}

static void close_and_free(uv_handle_t *h) { free(h); }

static void on_tcp_connection(uv_stream_t *server, int status)
{
    struct gb_stream *s = server->data;
    if (status < 0 || s->state == GB_STREAM_STOPPED) return;
    uv_tcp_t *c = calloc(1, sizeof(*c));
    if (!c) return;
    uv_tcp_init(server->loop, c);
    if (uv_accept(server, (uv_stream_t *)c) != 0 || s->conn) {
        /* One media connection per stream (a=connection:new, RFC 4145). */
        uv_close((uv_handle_t *)c, close_and_free);
        return;
    }
    c->data = s;
    s->conn = c;
    uv_read_start((uv_stream_t *)c, on_alloc, on_tcp_read);
}

static void stream_timer(struct timer_node *n, uint64_t now)
{
    struct gb_stream *s = container_of(n, struct gb_stream, timer);
    if (s->state != GB_STREAM_PLAYING) return;
    if (s->paused) {
        /* A paused playback sends nothing: silence is expected until PLAY. */
        timer_start(s->g->timers, &s->timer, now + GB_RTP_TIMEOUT_MS, stream_timer);
        return;
    }
    uint64_t deadline = s->last_rx ? s->last_rx + GB_RTP_TIMEOUT_MS : 0;
    if (!s->last_rx || now >= deadline) {
        log_warn("gb stream %s: no RTP for %d s", s->sid,
                 (s->last_rx ? GB_RTP_TIMEOUT_MS : GB_RTP_FIRST_TIMEOUT_MS) / 1000);
        gb_stream_stop(s, "rtp-timeout", true);
        return;
    }
    timer_start(s->g->timers, &s->timer, deadline, stream_timer);
}

/* ---- media sockets ---- */

static int bind_addr(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
    return transport_addr_parse(ip, strlen(ip), port, ss);
}

/* A socket bound to port on ip (else on the wildcard: media_ip may be a NAT
 * address we do not hold), listening when TCP. fd or -errno. */
static int open_media_socket(const char *ip, uint16_t port, bool tcp)
{
    struct sockaddr_storage ss;
    if (bind_addr(ip, port, &ss) != 0) return -EINVAL;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = socket(ss.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) return -errno;
        int one = 1;
        if (tcp) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        socklen_t len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        if (bind(fd, (struct sockaddr *)&ss, len) == 0 && (!tcp || listen(fd, 4) == 0)) return fd;
        int err = errno;
        close(fd);
        if (err != EADDRNOTAVAIL || attempt) return -err;
        bind_addr(ss.ss_family == AF_INET6 ? "::" : "0.0.0.0", port, &ss);
    }
    return -EADDRNOTAVAIL;
}

static int open_media(struct gb_upper *g, struct gb_stream *s)
{
    const struct gb_config *cfg = &g->cfg;
    uint32_t range = (uint32_t)cfg->media_port_max - cfg->media_port_min + 1;
    for (uint32_t i = 0; i < range; i++) {
        uint16_t port = g->next_port;
        g->next_port = port >= cfg->media_port_max ? cfg->media_port_min : (uint16_t)(port + 1);
        int fd = open_media_socket(g->media_ip, port, s->tcp);
        if (fd == -EADDRINUSE || fd == -EACCES) continue;
        if (fd < 0) return fd;
        int rc;
        if (s->tcp) {
            uv_tcp_init(g->loop, &s->listener);
            s->listener.data = s;
            rc = uv_tcp_open(&s->listener, fd);
            if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 4, on_tcp_connection);
        } else {
            uv_udp_init(g->loop, &s->udp);
            s->udp.data = s;
            rc = uv_udp_open(&s->udp, fd);
            if (rc == 0) {
                int sz = 4 << 20; /* a 4 Mbit/s stream bursts at key frames */
                uv_recv_buffer_size((uv_handle_t *)&s->udp, &sz);
                rc = uv_udp_recv_start(&s->udp, on_alloc, on_udp);
            }
        }
        if (rc != 0) {
            log_error("gb stream %s: media socket on port %u unusable: %s", s->sid, port, uv_strerror(rc));
            return rc;
        }
        s->port = port;
        return 0;
    }
    return -EADDRINUSE;
}

/* ---- the INVITE ---- */

static void stream_on_end(void *arg, struct ua_dialog *d, enum ua_dialog_end why)
{
    (void)d;
    struct gb_stream *s = arg;
    s->dlg = NULL; /* the UA frees the dialog */
    gb_stream_stop(s, why == UA_END_BYE_RECEIVED ? "bye" : ua_dialog_end_name(why), false);
}

static const struct ua_dialog_cb stream_dialog_cb = {.on_end = stream_on_end};

/* The device's SDP answer: its y= wins when it differs (many devices pick
 * their own), the direction should be sendonly. */
static void read_answer(struct gb_stream *s, const struct sip_msg *resp)
{
    _Alignas(16) char mem[8192];
    arena_t a;
    arena_init(&a, mem, sizeof(mem));
    struct sdp_session sdp;
    const char *why = NULL;
    if (!resp->body.len || sdp_parse(resp->body.s, resp->body.len, &a, &sdp, &why) != 0) {
        log_warn("gb stream %s: the 200 carries no usable SDP (%s)", s->sid, why ? why : "empty");
        arena_free(&a);
        return;
    }
    uint32_t theirs;
    if (sdp_gb_ssrc(&sdp, &theirs) == 0 && theirs != s->ssrc_value) {
        log_info("gb stream %s: device answered y=%u, using it", s->sid, theirs);
        s->ssrc_value = theirs;
    }
    for (uint32_t i = 0; i < sdp.media_count; i++) {
        if (!str_eq_cstr(sdp.media[i].media, "video")) continue;
        enum sdp_direction dir = sdp_media_direction(&sdp, &sdp.media[i]);
        if (dir != SDP_SENDONLY && dir != SDP_SENDRECV)
            log_warn("gb stream %s: device answered a=%s", s->sid, sdp_direction_name(dir));
        for (uint32_t k = 0; k < sdp.media[i].attr_count; k++) {
            const struct sdp_attr *at = &sdp.media[i].attrs[k];
            if (str_ieq_cstr(at->name, "rtpmap") && memmem(at->value.s, at->value.len, "MP2T", 4)) s->answer_ts = true;
        }
        bool their_tcp = str_ieq_cstr(sdp.media[i].proto, "TCP/RTP/AVP");
        if (their_tcp != s->tcp)
            log_warn("gb stream %s: offered %s, the device answered %.*s", s->sid, s->tcp ? "TCP" : "UDP",
                     STR_FMT(sdp.media[i].proto));
        break;
    }
    arena_free(&a);
}

static void stream_on_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                            const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)rx;
    struct gb_stream *s = arg;
    struct gb_upper *g = s->g;
    s->h = NULL;
    if (status >= 300 || !dlg) {
        log_warn("gb stream %s: INVITE to %s/%s answered %d", s->sid, s->device_id, s->channel_id, status);
        if (s->waiter && s->remote)
            gb_play_remote_failed(s, status);
        else if (s->waiter)
            gb_waiters_done(&s->waiter, status == 408 ? 504 : 502,
                            gb_error_json(status == 408 ? "timeout" : "device-refused",
                                          "the device answered the INVITE with %d", status));
        gb_stream_stop(s, "invite-failed", false);
        return;
    }
    s->dlg = dlg;
    ua_dialog_set_cb(dlg, &stream_dialog_cb, s);
    if (resp) read_answer(s, resp);
    gb_rtp_stats_init(&s->rtp, true, s->ssrc_value);
    s->state = GB_STREAM_PLAYING;
    gb_live_on_playing(s);
    s->started_at = clock_wall_ms();
    timer_start(g->timers, &s->timer, gb_now(g) + GB_RTP_FIRST_TIMEOUT_MS, stream_timer);
    log_info("gb stream %s playing: %s/%s over %s port %u", s->sid, s->device_id, s->channel_id,
             s->tcp ? "TCP" : "UDP", s->port);
    gb_publish(g, "gb.stream.started",
               json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:b,s:s,s:I}", "stream_id", s->sid, "device_id", s->device_id,
                         "channel_id", s->channel_id, "ssrc", s->ssrc, "transport", s->tcp ? "tcp" : "udp",
                         "media_port", s->port, "playback", s->playback, "container",
                         s->answer_ts ? "ts" : "ps", /* as agreed; the stream's info says what came */
                         "viewers", (json_int_t)gb_live_viewers(s)));
    if (s->waiter) gb_waiters_done(&s->waiter, 200, gb_stream_json(s));
}

static const struct ua_uac_cb stream_uac_cb = {.on_final = stream_on_final};

static void offer_sdp(struct gb_upper *g, struct gb_stream *s, int64_t start, int64_t end, sbuf_t *out)
{
    const char *ipv = strchr(g->media_ip, ':') ? "IP6" : "IP4";
    sbuf_printf(out, "v=0\r\no=%s 0 0 IN %s %s\r\ns=%s\r\n", g->cfg.id, ipv, g->media_ip,
                s->playback ? "Playback" : "Play");
    if (s->playback) sbuf_printf(out, "u=%s:0\r\n", s->channel_id);
    sbuf_printf(out, "c=IN %s %s\r\nt=%lld %lld\r\n", ipv, g->media_ip, (long long)(s->playback ? start : 0),
                (long long)(s->playback ? end : 0));
    if (s->tcp)
        sbuf_printf(out, "m=video %u TCP/RTP/AVP 96 97 98\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n"
                         "a=rtpmap:97 MPEG4/90000\r\na=rtpmap:98 H264/90000\r\na=setup:passive\r\na=connection:new\r\n",
                    s->port);
    else
        sbuf_printf(out, "m=video %u RTP/AVP 96 97 98\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n"
                         "a=rtpmap:97 MPEG4/90000\r\na=rtpmap:98 H264/90000\r\n",
                    s->port);
    sbuf_printf(out, "y=%s\r\n", s->ssrc);
}

static char *dump_path_for(struct gb_upper *g, const char *sid)
{
    const char *db = g->store_path;
    const char *slash = strrchr(db, '/');
    char path[600];
    if (slash) snprintf(path, sizeof(path), "%.*s/gb-stream-%s.ps", (int)(slash - db), db, sid);
    else snprintf(path, sizeof(path), "gb-stream-%s.ps", sid);
    return strdup(path);
}

/* A new stream in the table, its media socket open (and its dump file):
 * 0 with *out, or a negative errno (nothing left behind). */
static int stream_open(struct gb_upper *g, const char *device_id, const char *channel, bool tcp, bool dump,
                       int64_t start, int64_t end, struct gb_stream **out)
{
    if (g->stopping) return -ESHUTDOWN;
    if (!channel || !gb_id_valid(str_from_cstr(channel))) return -EINVAL;
    if (!g->loop) return -ENOTSUP;
    bool playback = start > 0 || end > 0;
    if (playback && (start <= 0 || end <= start)) return -EINVAL;
    struct gb_stream *s = calloc(1, sizeof(*s));
    if (!s) return -ENOMEM;
    s->g = g;
    s->tcp = tcp;
    s->playback = playback;
    snprintf(s->device_id, sizeof(s->device_id), "%s", device_id);
    snprintf(s->channel_id, sizeof(s->channel_id), "%s", channel);
    timer_node_init(&s->timer);
    timer_node_init(&s->live_idle);
    gb_rtp_deframer_init(&s->deframer);
    gb_ps_demux_init(&s->demux, on_ps_frame, s);
    gb_ps_demux_set_audio_cb(&s->demux, on_ps_audio, s);
    s->demux_on = true;
    if (gb_ssrc_alloc(&g->ssrc, playback, s->ssrc) != 0) {
        stream_free(s);
        return -EMFILE;
    }
    snprintf(s->sid, sizeof(s->sid), "%s", s->ssrc);
    gb_ssrc_to_u32(str_from_cstr(s->ssrc), &s->ssrc_value);
    if (htable_insert(&g->streams_by_sid, &s->by_sid, sid_hash(s->sid)) != 0) {
        gb_ssrc_release(&g->ssrc, str_from_cstr(s->ssrc));
        stream_free(s);
        return -ENOMEM;
    }
    /* In the table from here on: gb_stream_stop() undoes everything below. */
    s->next = g->streams;
    if (g->streams) g->streams->prev = s;
    g->streams = s;
    g->stream_count++;
    int rc = open_media(g, s);
    if (rc != 0) {
        log_error("gb stream for %s/%s: no media port (%s)", device_id, channel, uv_strerror(rc));
        gb_stream_stop(s, "no-media-port", false);
        return -EADDRINUSE;
    }
    if (dump) {
        s->dump_path = dump_path_for(g, s->sid);
        s->dump = s->dump_path ? fopen(s->dump_path, "wb") : NULL;
        if (!s->dump) log_warn("gb stream %s: cannot write %s", s->sid, s->dump_path ? s->dump_path : "?");
    }
    *out = s;
    return 0;
}

/* Sends the INVITE r (its SDP offer and Subject added here) toward dest. */
static int stream_invite(struct gb_upper *g, struct gb_stream *s, struct ua_request *r,
                         const struct transport_dest *dest, const struct ua_credentials *cred, int64_t start,
                         int64_t end, struct gb_waiter *wt)
{
    sbuf_t sdp;
    sbuf_init(&sdp);
    offer_sdp(g, s, start, end, &sdp);
    char subject[96];
    /* §9.2.2.1: Subject = media sender id:SSRC, receiver id:0. */
    snprintf(subject, sizeof(subject), "Subject: %s:%s,%s:0", s->channel_id, s->ssrc, g->cfg.id);
    str_t extra[] = {str_from_cstr(subject)};
    r->method = SIP_INVITE;
    r->auto_contact = true;
    r->contact_user = str_from_cstr(g->cfg.id);
    r->headers = extra;
    r->header_count = 1;
    r->content_type = STR_LIT("application/sdp");
    r->body = sbuf_str(&sdp);
    r->pin_dest = true; /* one destination for the whole dialog: see the top of the file */
    s->h = sdp.failed ? NULL : ua_request_send(g->ua, r, dest, cred, &stream_uac_cb, s);
    sbuf_free(&sdp);
    if (!s->h) {
        gb_stream_stop(s, "invite-failed", false);
        return -EIO;
    }
    if (wt) gb_waiter_add(&s->waiter, wt);
    return 0;
}

int gb_stream_play(struct gb_upper *g, struct gb_device *d, const char *channel, bool tcp, bool dump,
                   int64_t start, int64_t end, struct gb_waiter *wt)
{
    if (g->stopping) return -ESHUTDOWN;
    if (!d->online) return -ENOTCONN;
    struct gb_stream *s;
    int rc = stream_open(g, d->id, channel, tcp, dump, start, end, &s);
    if (rc != 0) return rc;
    d->streams++;
    struct ua_request r;
    char buf[512];
    gb_device_request(g, d, channel, &r, buf, sizeof(buf));
    struct transport_dest dest;
    gb_device_dest(d, &dest);
    struct ua_credentials cred = {.user = str_from_cstr(g->cfg.id),
                                  .password = str_from_cstr(d->password ? d->password : g->cfg.password)};
    if ((rc = stream_invite(g, s, &r, &dest, &cred, start, end, wt)) != 0) return rc;
    log_info("gb stream %s: INVITE %s/%s, %s media on %s:%u", s->sid, d->id, channel, tcp ? "TCP passive" : "UDP",
             g->media_ip, s->port);
    return 0;
}

int gb_stream_play_via(struct gb_upper *g, const char *device_id, const char *channel, bool tcp, bool dump,
                       int64_t start, int64_t end, const char *node, const char *route, const char *hostport,
                       struct gb_waiter *wt)
{
    if (!gb_id_valid(str_from_cstr(device_id)) || !node || strlen(node) >= sizeof(((struct gb_stream *)0)->via_node))
        return -EINVAL;
    /* The owning node's URI, read from Redis and checked (cluster_peer_uri):
     * the Route without its brackets is where the request goes. */
    size_t rl = strlen(route);
    if (rl < 3 || route[0] != '<' || route[rl - 1] != '>') return -EINVAL;
    struct transport_dest dest;
    if (ua_dest_from_uri(str_make(route + 1, rl - 2), &dest) != 0) return -EINVAL;
    struct gb_stream *s;
    int rc = stream_open(g, device_id, channel, tcp, dump, start, end, &s);
    if (rc != 0) return rc;
    s->remote = true;
    snprintf(s->via_node, sizeof(s->via_node), "%s", node);
    char ruri[400], from[96], to[96];
    snprintf(ruri, sizeof(ruri), "sip:%s@%s;%s=%s", channel, hostport, GB_PEER_DEVICE_PARAM, device_id);
    snprintf(from, sizeof(from), "<sip:%s@%s>", g->cfg.id, g->cfg.domain);
    snprintf(to, sizeof(to), "<sip:%s@%.10s>", channel, channel);
    str_t routes[] = {str_from_cstr(route)};
    struct ua_request r;
    memset(&r, 0, sizeof(r));
    r.ruri = str_from_cstr(ruri);
    r.from = str_from_cstr(from);
    r.to = str_from_cstr(to);
    r.routes = routes;
    r.route_count = 1;
    if ((rc = stream_invite(g, s, &r, &dest, NULL, start, end, wt)) != 0) return rc;
    log_info("gb stream %s: INVITE %s/%s through node %s, %s media on %s:%u", s->sid, device_id, channel, hostport,
             tcp ? "TCP passive" : "UDP", g->media_ip, s->port);
    return 0;
}

/* ---- playback control (MANSRTSP in INFO, GB/T 28181 Annex B) ----
 * The context outlives the stream if need be: the INFO transaction reports
 * its answer whatever happened to the dialog, and the stream is found again
 * by id to record what the device acknowledged. */

struct control_ctx {
    struct gb_upper *g;
    struct gb_waiter *waiters;
    struct gb_rtsp_req req;
    char sid[GB_SSRC_LEN + 1];
};

static const char *control_action(const struct gb_rtsp_req *r)
{
    if (r->method == GB_RTSP_PAUSE) return "pause";
    if (r->method == GB_RTSP_TEARDOWN) return "teardown";
    if (r->has_range && r->range_from >= 0) return "seek";
    return r->has_scale ? "speed" : "resume";
}

static void control_on_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                             const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)resp, (void)rx, (void)dlg;
    struct control_ctx *c = arg;
    struct gb_stream *s = gb_stream_find(c->g, c->sid);
    if (status >= 300) {
        log_info("gb stream %s: %s refused by the device: %d", c->sid, control_action(&c->req), status);
        gb_waiters_done(&c->waiters, status == 408 ? 504 : 502,
                        gb_error_json(status == 408 ? "timeout" : "device-refused",
                                      "the device answered the playback control with %d", status));
        free(c);
        return;
    }
    bool paused = false;
    double scale = 1.0;
    if (s) {
        if (c->req.method == GB_RTSP_PAUSE) s->paused = true;
        if (c->req.method == GB_RTSP_PLAY) {
            if (s->paused) s->last_rx = gb_now(c->g); /* silence counts from the resume */
            s->paused = false;
        }
        if (c->req.has_scale) s->scale = c->req.scale;
        paused = s->paused;
        scale = s->scale > 0 ? s->scale : 1.0;
        gb_publish(c->g, "gb.stream.control",
                   json_pack("{s:s,s:s,s:s,s:s,s:b,s:f}", "stream_id", s->sid, "device_id", s->device_id,
                             "channel_id", s->channel_id, "action", control_action(&c->req), "paused", paused,
                             "scale", scale));
    }
    gb_waiters_done(&c->waiters, 200,
                    json_pack("{s:s,s:s,s:b,s:f}", "stream_id", c->sid, "action", control_action(&c->req), "paused",
                              paused, "scale", scale));
    free(c);
}

static const struct ua_uac_cb control_cb = {.on_final = control_on_final};

int gb_upper_stream_control(struct gb_upper *g, const char *sid, const struct gb_rtsp_req *r, struct gb_waiter *wt)
{
    struct gb_stream *s = gb_stream_find(g, sid);
    if (!s) return -ENOENT;
    if (!s->playback) return -EINVAL;
    if (s->state != GB_STREAM_PLAYING || !s->dlg) return -ENOTCONN;
    struct control_ctx *c = calloc(1, sizeof(*c));
    if (!c) return -ENOMEM;
    c->g = g;
    c->req = *r;
    c->req.cseq = ++s->rtsp_cseq;
    snprintf(c->sid, sizeof(c->sid), "%s", s->sid);
    sbuf_t body;
    sbuf_init(&body);
    if (gb_mansrtsp_build(&body, &c->req) != 0) {
        sbuf_free(&body);
        free(c);
        return -EINVAL;
    }
    struct ua_uac *h = ua_dialog_request(s->dlg, SIP_INFO, NULL, 0, STR_LIT(GB_MANSRTSP_TYPE), sbuf_str(&body),
                                         &control_cb, c);
    sbuf_free(&body);
    if (!h) {
        free(c);
        return -EIO;
    }
    if (wt) gb_waiter_add(&c->waiters, wt);
    log_info("gb stream %s (%s/%s): %s sent (MANSRTSP cseq %u)", s->sid, s->device_id, s->channel_id,
             control_action(&c->req), c->req.cseq);
    return 0;
}
