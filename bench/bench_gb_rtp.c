/* bench_gb_rtp.c — PS-over-RTP traffic for the GB upper role: the video a
 * GB/T 28181 device sends (an H.264 clip muxed into MPEG-2 PS, one pack per
 * frame, cut into RTP packets with src/gb ps.c and rtp.c).
 *
 *   bench_gb_rtp --pcap OUT.pcap --ssrc N [--clip FILE] [--loops K]
 *       writes the packets into a pcap (Ethernet/IPv4/UDP, 25 frames/s
 *       timestamps) that sipp plays with <exec play_pcap_video="..."/>
 *       (tests/peers/test_gb_upper.sh);
 *   bench_gb_rtp --send HOST:PORT[,PORT...] --ssrc N[,N...] --mbps R --seconds S [--clip FILE]
 *       sends one stream per port at about R Mbit/s each (the clip's frames
 *       are padded with filler bytes to reach the rate) and prints what it
 *       sent, for the "RTP receive of 100 concurrent 4 Mbit/s streams" figure. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../tests/unit/clip_testutil.h"
#include "base/sbuf.h"
#include "media/h264.h"
#include "media/ps.h"
#include "media/rtp.h"

#define MAX_STREAMS 1000

/* ---- pcap ---- */

struct pcap_out {
    FILE *f;
    uint64_t t_us;
    uint16_t ip_id;
    uint64_t packets;
};

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }

static uint16_t ip_checksum(const uint8_t *h, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i < n; i += 2) s += (uint32_t)(h[i] << 8 | h[i + 1]);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static int pcap_emit(void *arg, const uint8_t *pkt, size_t len)
{
    struct pcap_out *o = arg;
    uint8_t hdr[42];
    memset(hdr, 0, sizeof(hdr));
    hdr[12] = 0x08; /* Ethernet type IPv4 */
    uint8_t *ip = hdr + 14;
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + 8 + len));
    put16(ip + 4, o->ip_id++);
    ip[8] = 64;
    ip[9] = 17;
    ip[12] = 127, ip[15] = 1;
    ip[16] = 127, ip[19] = 1;
    put16(ip + 10, ip_checksum(ip, 20));
    uint8_t *udp = ip + 20;
    put16(udp, 40000);
    put16(udp + 2, 30000);
    put16(udp + 4, (uint16_t)(8 + len));
    uint32_t rec[4] = {(uint32_t)(o->t_us / 1000000), (uint32_t)(o->t_us % 1000000), (uint32_t)(42 + len),
                       (uint32_t)(42 + len)};
    fwrite(rec, sizeof(rec), 1, o->f);
    fwrite(hdr, 1, sizeof(hdr), o->f);
    fwrite(pkt, 1, len, o->f);
    o->packets++;
    o->t_us += 200; /* packets of one frame 0.2 ms apart */
    return 0;
}

static int write_pcap(const char *path, const uint8_t *clip, size_t clip_len, uint32_t ssrc, int loops)
{
    struct pcap_out o = {.f = fopen(path, "wb"), .t_us = 1000000};
    if (!o.f) {
        perror(path);
        return 1;
    }
    uint32_t gh[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1}; /* v2.4, LINKTYPE_ETHERNET */
    fwrite(gh, sizeof(gh), 1, o.f);
    gb_rtp_packer_t pk;
    gb_rtp_packer_init(&pk, ssrc, GB_RTP_PT_PS, 1000, false, 0);
    sbuf_t ps;
    sbuf_init(&ps);
    uint64_t pts = 0;
    size_t frames = 0;
    for (int l = 0; l < loops; l++) {
        gb_au_reader_t r;
        gb_au_t au;
        gb_au_reader_init(&r, GB_CODEC_H264, clip, clip_len);
        while (gb_au_reader_next(&r, &au)) {
            sbuf_clear(&ps);
            if (gb_ps_mux_frame(&ps, GB_CODEC_H264, au.data, au.len, pts, au.key || frames == 0) != 0) continue;
            uint64_t frame_start = o.t_us;
            gb_rtp_pack_frame(&pk, (const uint8_t *)ps.data, ps.len, (uint32_t)pts, pcap_emit, &o);
            o.t_us = frame_start + 40000; /* 25 frames/s */
            pts += 3600;
            frames++;
        }
    }
    sbuf_free(&ps);
    fclose(o.f);
    printf("%s: %zu frames, %llu RTP packets, SSRC %u\n", path, frames, (unsigned long long)o.packets, ssrc);
    return 0;
}

/* ---- live sending ---- */

struct sender {
    int fd;
    struct sockaddr_in to;
    gb_rtp_packer_t pk;
    uint64_t bytes;
};

static int udp_emit(void *arg, const uint8_t *pkt, size_t len)
{
    struct sender *s = arg;
    if (sendto(s->fd, pkt, len, 0, (struct sockaddr *)&s->to, sizeof(s->to)) == (ssize_t)len) s->bytes += len;
    return 0;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int send_streams(const char *target, const char *ssrcs, double mbps, int seconds, const uint8_t *clip,
                        size_t clip_len)
{
    static struct sender st[MAX_STREAMS];
    char host[64];
    const char *colon = strchr(target, ':');
    if (!colon || (size_t)(colon - target) >= sizeof(host)) return 2;
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = '\0';
    int n = 0;
    const char *p = colon + 1, *q = ssrcs;
    while (*p && n < MAX_STREAMS) {
        struct sender *s = &st[n];
        s->fd = socket(AF_INET, SOCK_DGRAM, 0);
        s->to.sin_family = AF_INET;
        s->to.sin_port = htons((uint16_t)strtoul(p, (char **)&p, 10));
        inet_pton(AF_INET, host, &s->to.sin_addr);
        uint32_t ssrc = (uint32_t)strtoul(q, (char **)&q, 10);
        gb_rtp_packer_init(&s->pk, ssrc, GB_RTP_PT_PS, (uint16_t)(n * 7), false, 0);
        n++;
        if (*p == ',') p++;
        if (*q == ',') q++;
    }
    /* Frames at 25/s; each padded (PS padding after the pack) to mbps. */
    size_t frame_bytes = (size_t)(mbps * 1e6 / 8 / 25);
    sbuf_t ps;
    sbuf_init(&ps);
    uint64_t start = now_us(), pts = 0;
    gb_au_reader_t r;
    gb_au_t au;
    gb_au_reader_init(&r, GB_CODEC_H264, clip, clip_len);
    int frames = 0;
    while (now_us() - start < (uint64_t)seconds * 1000000u) {
        if (!gb_au_reader_next(&r, &au)) {
            gb_au_reader_init(&r, GB_CODEC_H264, clip, clip_len);
            continue;
        }
        sbuf_clear(&ps);
        gb_ps_mux_frame(&ps, GB_CODEC_H264, au.data, au.len, pts, au.key);
        while (ps.len + 6 < frame_bytes) { /* padding_stream (0xBE) PES packets */
            size_t k = frame_bytes - ps.len - 6;
            if (k > 60000) k = 60000;
            uint8_t h[6] = {0, 0, 1, 0xBE, (uint8_t)(k >> 8), (uint8_t)k};
            sbuf_append(&ps, h, 6);
            size_t old = ps.len;
            if (!sbuf_reserve(&ps, k)) break;
            memset(ps.data + old, 0xff, k);
            ps.len += k;
        }
        for (int i = 0; i < n; i++)
            gb_rtp_pack_frame(&st[i].pk, (const uint8_t *)ps.data, ps.len, (uint32_t)pts, udp_emit, &st[i]);
        frames++;
        pts += 3600;
        uint64_t due = start + (uint64_t)frames * 40000u;
        uint64_t now = now_us();
        if (due > now) usleep((useconds_t)(due - now));
    }
    uint64_t total = 0, pkts = 0;
    for (int i = 0; i < n; i++) total += st[i].bytes, pkts += st[i].pk.packets, close(st[i].fd);
    double secs = (double)(now_us() - start) / 1e6;
    printf("sent %d streams x %d frames: %llu packets, %.1f Mbit/s total (%.2f per stream) in %.1f s\n", n, frames,
           (unsigned long long)pkts, (double)total * 8 / 1e6 / secs, (double)total * 8 / 1e6 / secs / n, secs);
    sbuf_free(&ps);
    return 0;
}

int main(int argc, char **argv)
{
    const char *pcap = NULL, *send = NULL, *ssrc = "100009999", *clip_path = NULL;
    int loops = 3, seconds = 10;
    double mbps = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--pcap") && v) pcap = v, i++;
        else if (!strcmp(a, "--send") && v) send = v, i++;
        else if (!strcmp(a, "--ssrc") && v) ssrc = v, i++;
        else if (!strcmp(a, "--clip") && v) clip_path = v, i++;
        else if (!strcmp(a, "--loops") && v) loops = atoi(v), i++;
        else if (!strcmp(a, "--seconds") && v) seconds = atoi(v), i++;
        else if (!strcmp(a, "--mbps") && v) mbps = atof(v), i++;
        else {
            fprintf(stderr, "usage: %s --pcap OUT --ssrc N [--clip F] [--loops K]\n"
                            "       %s --send HOST:PORT[,PORT..] --ssrc N[,N..] [--mbps R] [--seconds S]\n",
                    argv[0], argv[0]);
            return 2;
        }
    }
    if (!clip_path) clip_path = "tests/data/clip.h264";
    size_t clip_len;
    uint8_t *clip = read_whole_file(clip_path, &clip_len);
    if (!clip) {
        fprintf(stderr, "cannot read %s: %s\n", clip_path, strerror(errno));
        return 1;
    }
    int rc = 2;
    if (pcap) rc = write_pcap(pcap, clip, clip_len, (uint32_t)strtoul(ssrc, NULL, 10), loops > 0 ? loops : 1);
    else if (send) rc = send_streams(send, ssrc, mbps, seconds, clip, clip_len);
    else fprintf(stderr, "give --pcap or --send\n");
    free(clip);
    return rc;
}
