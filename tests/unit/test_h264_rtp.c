/* test_h264_rtp.c — the RFC 6184 packetizer (src/media/h264_rtp.c): its
 * packets taken apart by a depacketizer written here from the RFC give back
 * the clip's NAL units (SPS/PPS in front of each IDR); GStreamer's
 * rtph264depay turns them back into a stream ffprobe decodes, also for a
 * viewer joining at the second IDR; FU-A boundaries at MTU edge sizes, SPS/PPS
 * insertion rules, marker bits, sequence wrap, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/sbuf.h"
#include "clip_testutil.h"
#include "media/h264.h"
#include "media/h264_rtp.h"

#define MAX_NALS 64
#define SSRC 0x11223344u
#define PT 102

/* ---- an RFC 6184 depacketizer, independent of the packetizer ---- */

typedef struct {
    sbuf_t es;                 /* the NAL units as Annex B (4-byte start codes) */
    size_t nal_off[MAX_NALS], nal_len[MAX_NALS], nals;
    bool in_fu;
    size_t fu_start;
    bool have_seq;
    uint16_t next_seq;
    uint32_t ts;
    size_t packets, max_packet;
    bool marker_seen;          /* the previous packet ended an access unit */
} depay_t;

static void depay_init(depay_t *d)
{
    memset(d, 0, sizeof(*d));
    sbuf_init(&d->es);
    d->marker_seen = true;
}

static void nal_begin(depay_t *d)
{
    sbuf_append(&d->es, "\x00\x00\x00\x01", 4);
    assert_true(d->nals < MAX_NALS);
    d->nal_off[d->nals] = d->es.len;
}
static void nal_end(depay_t *d)
{
    d->nal_len[d->nals] = d->es.len - d->nal_off[d->nals];
    d->nals++;
}

/* One packet; checks the header against what the stream must look like. */
static void depay_packet(depay_t *d, const uint8_t *p, size_t n, uint32_t want_ts)
{
    assert_true(n > 12);
    assert_int_equal(p[0], 0x80);
    assert_int_equal(p[1] & 0x7F, PT);
    uint16_t seq = (uint16_t)(p[2] << 8 | p[3]);
    if (d->have_seq) assert_int_equal(seq, d->next_seq);
    d->have_seq = true;
    d->next_seq = (uint16_t)(seq + 1);
    uint32_t ts = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    assert_int_equal(ts, want_ts);
    assert_int_equal((uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11], SSRC);
    d->marker_seen = p[1] & 0x80;
    d->packets++;
    if (n > d->max_packet) d->max_packet = n;
    const uint8_t *pl = p + 12;
    size_t len = n - 12;
    int type = pl[0] & 0x1F;
    assert_int_equal(pl[0] & 0x80, 0); /* F */
    if (type >= 1 && type <= 23) {     /* single NAL unit packet, §5.6 */
        assert_false(d->in_fu);
        nal_begin(d);
        sbuf_append(&d->es, pl, len);
        nal_end(d);
        return;
    }
    assert_int_equal(type, 28); /* FU-A is all this packetizer may send besides */
    assert_true(len >= 3);
    bool s = pl[1] & 0x80, e = pl[1] & 0x40;
    assert_int_equal(pl[1] & 0x20, 0); /* R */
    assert_false(s && e);              /* §5.8: not both in one fragment */
    if (s) {
        assert_false(d->in_fu);
        nal_begin(d);
        uint8_t hdr = (uint8_t)((pl[0] & 0xE0) | (pl[1] & 0x1F));
        sbuf_append(&d->es, &hdr, 1);
        d->in_fu = true;
    } else {
        assert_true(d->in_fu);
        /* Every fragment repeats the NAL's header bits. */
        const uint8_t *h = (const uint8_t *)d->es.data + d->nal_off[d->nals];
        assert_int_equal(pl[0] & 0xE0, h[0] & 0xE0);
        assert_int_equal(pl[1] & 0x1F, h[0] & 0x1F);
    }
    sbuf_append(&d->es, pl + 2, len - 2);
    if (e) {
        d->in_fu = false;
        nal_end(d);
    }
}

/* Sends one AU through p into d; checks the marker sits on its last packet
 * only. Returns the packet count. */
static size_t send_au(gb_h264_rtp_t *p, depay_t *d, const uint8_t *au, size_t len, uint32_t ts, FILE *rfc4571)
{
    static uint8_t pkt[GB_RTP_MAX_PACKET];
    size_t count = 0, first = d->nals;
    int nals = gb_h264_rtp_begin(p, au, len, ts);
    int n;
    while ((n = gb_h264_rtp_next(p, pkt, GB_RTP_HEADER_LEN + p->max_payload)) > 0) {
        assert_true((size_t)n <= GB_RTP_HEADER_LEN + p->max_payload);
        if (count) assert_false(d->marker_seen);
        depay_packet(d, pkt, (size_t)n, ts);
        if (rfc4571) {
            uint8_t l[2] = {(uint8_t)(n >> 8), (uint8_t)n};
            assert_int_equal(fwrite(l, 1, 2, rfc4571), 2);
            assert_int_equal(fwrite(pkt, 1, (size_t)n, rfc4571), (size_t)n);
        }
        count++;
    }
    assert_int_equal(n, 0);
    assert_int_equal(gb_h264_rtp_next(p, pkt, sizeof(pkt)), 0); /* stays done */
    if (count) assert_true(d->marker_seen);
    assert_false(d->in_fu);
    assert_int_equal(d->nals - first, nals); /* begin() said how many NAL units */
    return count;
}

/* The NAL units of an Annex B buffer. */
static size_t nals_of(const uint8_t *au, size_t len, gb_nal_t *out, size_t max)
{
    size_t pos = 0, n = 0;
    gb_nal_t nal;
    while (gb_nal_next(au, len, &pos, &nal)) {
        assert_true(n < max);
        out[n++] = nal;
    }
    return n;
}

static void assert_nals(const depay_t *d, size_t first, const gb_nal_t *want, size_t count)
{
    assert_int_equal(d->nals - first, count);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(d->nal_len[first + i], want[i].len);
        assert_memory_equal(d->es.data + d->nal_off[first + i], want[i].data, want[i].len);
    }
}

static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- tests ---- */

static void test_init(void **state)
{
    (void)state;
    gb_h264_rtp_t p;
    assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, 0, 2), -1);
    assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, 0, 65535 - 11), -1);
    assert_int_equal(gb_h264_rtp_init(&p, SSRC, 128, 0, 1200), -1);
    assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, 7, 0), 0);
    assert_int_equal(p.max_payload, 1200);
    assert_int_equal(p.seq, 7);
    /* Nothing to send: no packet, no sequence number used. */
    uint8_t buf[1300];
    assert_int_equal(gb_h264_rtp_begin(&p, (const uint8_t *)"\x00\x00\x01", 3, 0), 0);
    assert_int_equal(gb_h264_rtp_next(&p, buf, sizeof(buf)), 0);
    assert_int_equal(gb_h264_rtp_begin(&p, NULL, 10, 0), 0);
    assert_int_equal(gb_h264_rtp_next(&p, buf, sizeof(buf)), 0);
    assert_int_equal(p.seq, 7);
    /* A buffer below one full packet is refused without consuming anything. */
    static const uint8_t au[] = {0, 0, 1, 0x41, 1, 2, 3};
    assert_int_equal(gb_h264_rtp_begin(&p, au, sizeof(au), 90), 1);
    assert_int_equal(gb_h264_rtp_next(&p, buf, 1211), -1);
    assert_int_equal(p.seq, 7);
    assert_int_equal(gb_h264_rtp_next(&p, buf, 1212), 12 + 4);
    assert_int_equal(buf[1], 0x80 | PT);
    assert_memory_equal(buf + 12, au + 3, 4);
    assert_int_equal(p.seq, 8);
    /* NAL types 0 and 24-31 would read as STAP/FU to a receiver: left out. */
    static const uint8_t odd[] = {0, 0, 1, 0x7c, 0x85, 1, 0, 0, 1, 0x00, 5, 0, 0, 1, 0x41, 9};
    assert_int_equal(gb_h264_rtp_begin(&p, odd, sizeof(odd), 0), 1);
    assert_int_equal(gb_h264_rtp_next(&p, buf, sizeof(buf)), 12 + 2);
    assert_int_equal(buf[12], 0x41);
    assert_int_equal(gb_h264_rtp_next(&p, buf, sizeof(buf)), 0);
    assert_int_equal(p.stats.nals_dropped, 2);
}

typedef struct {
    uint8_t *clip;
    gb_au_t aus[64];
    size_t count;
} clip_t;

static void load_clip(clip_t *c)
{
    size_t len;
    c->clip = read_test_clip(&len);
    assert_non_null(c->clip);
    gb_au_reader_t r;
    gb_au_reader_init(&r, GB_CODEC_H264, c->clip, len);
    c->count = 0;
    while (c->count < 64 && gb_au_reader_next(&r, &c->aus[c->count])) c->count++;
    assert_int_equal(c->count, 50);
}

/* What must come out for AU i: its NAL units, and for an IDR AU the clip's
 * SPS and PPS first (after an AUD), its own SPS/PPS not repeated. */
static size_t expected_nals(const clip_t *c, size_t i, gb_nal_t *out, size_t max)
{
    gb_nal_t all[MAX_NALS], sps = {0}, pps = {0};
    size_t n = nals_of(c->aus[0].data, c->aus[0].len, all, MAX_NALS);
    for (size_t k = 0; k < n; k++) {
        if (gb_h264_nal_type(&all[k]) == GB_H264_NAL_SPS) sps = all[k];
        if (gb_h264_nal_type(&all[k]) == GB_H264_NAL_PPS) pps = all[k];
    }
    assert_true(sps.len && pps.len);
    n = nals_of(c->aus[i].data, c->aus[i].len, all, MAX_NALS);
    if (!c->aus[i].key) {
        memcpy(out, all, n * sizeof(*all));
        return n;
    }
    size_t m = 0, k = 0;
    if (n && gb_h264_nal_type(&all[0]) == GB_H264_NAL_AUD) out[m++] = all[k++];
    out[m++] = sps;
    out[m++] = pps;
    for (; k < n; k++) {
        int t = gb_h264_nal_type(&all[k]);
        if (t != GB_H264_NAL_SPS && t != GB_H264_NAL_PPS) out[m++] = all[k];
    }
    assert_true(m <= max);
    return m;
}

static void test_clip_round_trip(void **state)
{
    (void)state;
    clip_t c;
    load_clip(&c);
    size_t budgets[] = {1200, 100, 3, 65535 - 12};
    for (size_t b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
        gb_h264_rtp_t p;
        /* Start near the top so the sequence numbers wrap inside the clip. */
        assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, 65530, budgets[b]), 0);
        depay_t d;
        depay_init(&d);
        size_t keys = 0;
        for (size_t i = 0; i < c.count; i++) {
            size_t first = d.nals;
            uint32_t ts = 0xFFFFF000u + (uint32_t)(i * 3600); /* timestamps wrap too */
            gb_nal_t want[MAX_NALS];
            size_t nw = expected_nals(&c, i, want, MAX_NALS);
            send_au(&p, &d, c.aus[i].data, c.aus[i].len, ts, NULL);
            assert_nals(&d, first, want, nw);
            keys += c.aus[i].key;
        }
        assert_int_equal(keys, 2);
        assert_int_equal(p.stats.params_inserted, 2);
        assert_int_equal(p.stats.access_units, 50);
        assert_true(d.max_packet <= 12 + budgets[b]);
        assert_int_equal(p.seq, (uint16_t)(65530 + d.packets));
        if (budgets[b] == 3) assert_true(d.packets > 15000); /* one NAL byte per fragment */
        print_message("budget %zu: %zu packets, %llu FU-A\n", budgets[b], d.packets,
                      (unsigned long long)p.stats.fu_a_packets);
        sbuf_free(&d.es);
    }
    free(c.clip);
}

/* Packets into an RFC 4571 file; GStreamer's rtph264depay rebuilds the
 * stream; ffprobe decodes it. from: the first AU sent to this viewer. */
static void gst_decodes(const clip_t *c, size_t from, int want_frames)
{
    char rtp_path[] = "/tmp/cascade_test_h264_rtp_XXXXXX";
    int fd = mkstemp(rtp_path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    gb_h264_rtp_t p;
    assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, 1000, 1200), 0);
    depay_t d;
    for (size_t i = 0; i < c->count; i++) {
        /* Every AU goes through the packetizer (it learns the SPS/PPS from the
         * first); only those from `from` on reach this viewer. */
        depay_init(&d);
        send_au(&p, &d, c->aus[i].data, c->aus[i].len, (uint32_t)(i * 3600), i >= from ? f : NULL);
        sbuf_free(&d.es);
    }
    fclose(f);
    char es_path[64], cmd[1024], out[4096];
    snprintf(es_path, sizeof(es_path), "%s.h264", rtp_path);
    snprintf(cmd, sizeof(cmd),
             "gst-launch-1.0 -q filesrc location=%s ! "
             "'application/x-rtp-stream,media=video,clock-rate=90000,encoding-name=H264,payload=%d' ! rtpstreamdepay ! "
             "rtph264depay ! h264parse ! 'video/x-h264,stream-format=byte-stream,alignment=au' ! filesink location=%s 2>&1",
             rtp_path, PT, es_path);
    int rc = run(cmd, out, sizeof(out));
    if (rc != 0) print_message("gst-launch: %s\n", out);
    assert_int_equal(rc, 0);
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -count_frames -show_entries stream=codec_name,width,height,nb_read_frames "
             "-of default=noprint_wrappers=1 %s 2>&1",
             es_path);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    print_message("ffprobe (from AU %zu): %s", from, out);
    assert_non_null(strstr(out, "codec_name=h264"));
    assert_non_null(strstr(out, "width=320"));
    assert_non_null(strstr(out, "height=240"));
    char want[64];
    snprintf(want, sizeof(want), "nb_read_frames=%d", want_frames);
    assert_non_null(strstr(out, want));
    snprintf(cmd, sizeof(cmd), "ffmpeg -nostdin -v error -i %s -f null - 2>&1", es_path);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    unlink(es_path);
    unlink(rtp_path);
}

static void test_gstreamer_depayloads_it(void **state)
{
    (void)state;
    if (system("gst-inspect-1.0 rtph264depay >/dev/null 2>&1 && gst-inspect-1.0 rtpstreamdepay >/dev/null 2>&1 && "
               "gst-inspect-1.0 h264parse >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1") != 0) {
        print_message("SKIP: GStreamer (rtph264depay, rtpstreamdepay, h264parse) or ffprobe missing\n");
        skip();
    }
    clip_t c;
    load_clip(&c);
    gst_decodes(&c, 0, 50);
    /* A viewer joining at the second IDR: the camera sent SPS/PPS once, at
     * the start, yet this viewer decodes every frame it got. */
    assert_true(c.aus[25].key);
    gst_decodes(&c, 25, 25);
    free(c.clip);
}

/* An AU of one NAL of length len (type 5 or 1, NRI 3, payload counting bytes). */
static size_t make_nal_au(uint8_t *buf, size_t len, int type)
{
    memcpy(buf, "\x00\x00\x00\x01", 4);
    buf[4] = (uint8_t)(0x60 | type);
    for (size_t i = 1; i < len; i++) buf[4 + i] = (uint8_t)(i % 251 + 1); /* no start code inside */
    return 4 + len;
}

static void test_fu_a_at_mtu_edges(void **state)
{
    (void)state;
    static uint8_t au[70000];
    const size_t budget = 100;
    size_t lens[] = {1, 2, budget - 1, budget, budget + 1, budget + 2, 2 * (budget - 2), 2 * (budget - 2) + 1,
                     2 * (budget - 2) + 2, 3 * (budget - 2) + 1, 65000};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        size_t len = lens[k];
        size_t n = make_nal_au(au, len, 1);
        gb_h264_rtp_t p;
        assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, 0, budget), 0);
        depay_t d;
        depay_init(&d);
        size_t packets = send_au(&p, &d, au, n, 1234, NULL);
        /* Up to the budget: one packet. Beyond: FU-A, the NAL header byte
         * replaced by two, budget - 2 NAL bytes per fragment. */
        size_t want = len <= budget ? 1 : (len - 1 + budget - 3) / (budget - 2);
        assert_int_equal(packets, want);
        assert_int_equal(p.stats.fu_a_packets, len <= budget ? 0 : want);
        assert_int_equal(d.nals, 1);
        assert_int_equal(d.nal_len[0], len);
        assert_memory_equal(d.es.data + 4, au + 4, len);
        if (len == budget) assert_int_equal(d.max_packet, 12 + budget);
        sbuf_free(&d.es);
    }
    /* FU-A header bits: S on the first, E on the last, NRI and type kept. */
    size_t n = make_nal_au(au, 250, 5);
    gb_h264_rtp_t p;
    assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, 0, budget), 0);
    gb_h264_rtp_begin(&p, au, n, 0);
    uint8_t pkt[200];
    int l1 = gb_h264_rtp_next(&p, pkt, sizeof(pkt));
    assert_int_equal(l1, 12 + budget);
    assert_int_equal(pkt[12], 0x60 | 28);
    assert_int_equal(pkt[13], 0x80 | 5);
    assert_int_equal(pkt[1] & 0x80, 0);
    assert_int_equal(gb_h264_rtp_next(&p, pkt, sizeof(pkt)), 12 + budget);
    assert_int_equal(pkt[13], 5);
    int l3 = gb_h264_rtp_next(&p, pkt, sizeof(pkt));
    assert_int_equal(l3, 12 + 2 + (249 - 2 * 98));
    assert_int_equal(pkt[13], 0x40 | 5);
    assert_int_equal(pkt[1], 0x80 | PT);
    assert_int_equal(gb_h264_rtp_next(&p, pkt, sizeof(pkt)), 0);
}

static void test_parameter_set_insertion(void **state)
{
    (void)state;
    static const uint8_t sps[] = {0x67, 0x42, 0xc0, 0x1e, 0xda, 0x05, 0x07, 0xe4};
    static const uint8_t pps[] = {0x68, 0xce, 0x3c, 0x80};
    static const uint8_t sps2[] = {0x67, 0x42, 0xc0, 0x1f, 0xda, 0x05, 0x07, 0xe4};
    static const uint8_t au1[] = {0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0x05, 0x07, 0xe4, 0, 0, 1, 0x68, 0xce,
                                  0x3c, 0x80, 0, 0, 1, 0x65, 0x88, 0x84};
    static const uint8_t au_p[] = {0, 0, 1, 0x41, 0x9a, 0x02};
    static const uint8_t au_aud_idr[] = {0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x06, 0x05, 0x01, 0, 0, 1, 0x65, 0x88, 0x85};
    static const uint8_t au_sps2_idr[] = {0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x05, 0x07, 0xe4,
                                          0, 0, 1, 0x65, 0x88, 0x86};
    static const uint8_t au_p_sps[] = {0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0x05, 0x07, 0xe4, 0, 0, 1, 0x41, 0x9b};
    gb_h264_rtp_t p;
    depay_t d;
    /* An IDR before any parameter set: sent as it is, counted. */
    assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, 0, 1200), 0);
    depay_init(&d);
    send_au(&p, &d, au1 + 19, sizeof(au1) - 19, 0, NULL);
    assert_int_equal(d.nals, 1);
    assert_int_equal(p.stats.idr_without_params, 1);
    sbuf_free(&d.es);

    assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, 0, 1200), 0);
    depay_init(&d);
    /* SPS PPS IDR: as sent, not doubled. */
    send_au(&p, &d, au1, sizeof(au1), 0, NULL);
    assert_int_equal(d.nals, 3);
    assert_int_equal(d.nal_len[0], sizeof(sps));
    assert_memory_equal(d.es.data + d.nal_off[0], sps, sizeof(sps));
    assert_memory_equal(d.es.data + d.nal_off[1], pps, sizeof(pps));
    /* A P frame: untouched. */
    send_au(&p, &d, au_p, sizeof(au_p), 3600, NULL);
    assert_int_equal(d.nals, 4);
    /* AUD SEI IDR: AUD, then SPS, PPS, then SEI and IDR. */
    send_au(&p, &d, au_aud_idr, sizeof(au_aud_idr), 7200, NULL);
    assert_int_equal(d.nals, 9);
    assert_int_equal(d.es.data[d.nal_off[4]], 0x09);
    assert_memory_equal(d.es.data + d.nal_off[5], sps, sizeof(sps));
    assert_memory_equal(d.es.data + d.nal_off[6], pps, sizeof(pps));
    assert_int_equal(d.es.data[d.nal_off[7]], 0x06);
    assert_int_equal(d.es.data[d.nal_off[8]], 0x65);
    /* A new SPS with the IDR: the new one goes out (once), the remembered PPS with it. */
    send_au(&p, &d, au_sps2_idr, sizeof(au_sps2_idr), 10800, NULL);
    assert_int_equal(d.nals, 12);
    assert_memory_equal(d.es.data + d.nal_off[9], sps2, sizeof(sps2));
    assert_memory_equal(d.es.data + d.nal_off[10], pps, sizeof(pps));
    assert_int_equal(d.es.data[d.nal_off[11]], 0x65);
    /* An SPS in a non-IDR AU stays where it is; the next IDR carries it. */
    send_au(&p, &d, au_p_sps, sizeof(au_p_sps), 14400, NULL);
    assert_int_equal(d.nals, 14);
    assert_int_equal(d.es.data[d.nal_off[12]], 0x67);
    send_au(&p, &d, au1 + 19, sizeof(au1) - 19, 18000, NULL);
    assert_int_equal(d.nals, 17);
    assert_memory_equal(d.es.data + d.nal_off[14], sps, sizeof(sps));
    assert_int_equal(p.stats.params_inserted, 4);
    sbuf_free(&d.es);
}

static void test_sequence_wrap_and_garbage(void **state)
{
    (void)state;
    /* Numbers run on across access units and through 65535 -> 0. */
    gb_h264_rtp_t p;
    assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, 65533, 10), 0);
    depay_t d;
    depay_init(&d);
    static uint8_t au[64];
    for (int i = 0; i < 4; i++) {
        size_t n = make_nal_au(au, 25, 1); /* 3 FU-A packets each */
        assert_int_equal(send_au(&p, &d, au, n, (uint32_t)i, NULL), 3);
    }
    assert_int_equal(p.seq, (uint16_t)(65533 + 12));
    sbuf_free(&d.es);
    /* Random bytes (start codes and IDR/SPS/PPS headers frequent) never
     * overrun the packet buffer, and every byte sent is accounted. */
    static uint8_t in[8192];
    static uint8_t pkt[12 + 64];
    uint32_t x = 99;
    for (int round = 0; round < 2000; round++) {
        size_t len = (x >> 8) % sizeof(in);
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245 + 12345;
            uint8_t r = (uint8_t)(x >> 16);
            in[i] = r < 50 ? 0 : r < 70 ? 1 : r < 90 ? (uint8_t)(0x60 | (r & 7)) : r;
        }
        assert_int_equal(gb_h264_rtp_init(&p, SSRC, PT, (uint16_t)x, 3 + (x >> 4) % 61), 0);
        int nals = gb_h264_rtp_begin(&p, in, len, x);
        int n, packets = 0;
        while ((n = gb_h264_rtp_next(&p, pkt, sizeof(pkt))) > 0) {
            assert_true((size_t)n <= sizeof(pkt));
            packets++;
        }
        assert_true(packets >= nals);
        assert_int_equal(n, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_clip_round_trip),
        cmocka_unit_test(test_gstreamer_depayloads_it),
        cmocka_unit_test(test_fu_a_at_mtu_edges),
        cmocka_unit_test(test_parameter_set_insertion),
        cmocka_unit_test(test_sequence_wrap_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
