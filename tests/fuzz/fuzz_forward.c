/* fuzz_forward.c — libFuzzer target for the forwarder's packet paths.
 *
 * The first 16 bytes make a viewer sink (payload type, an id translation,
 * maybe a mid); the rest is one packet. As RTP, the viewer's copy must keep
 * the length, sequence number, timestamp, SSRC and payload, carry the
 * sink's payload type, and hold no extension id outside the sink's
 * translation. The packet then goes through a publisher stream (loss
 * tracking, NACK building) and, read as RTCP, through the viewer and
 * publisher classifiers, whose outputs must stay inside their caps. As a
 * simulcast layer (its rid element id from data[13]) it goes through key
 * frame detection (VP8 and H.264) and a layer selector: what it forwards
 * must map back (forward_sel_lookup) to the packet it came from. */
#include <stdint.h>
#include <string.h>

#include "media/forward.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

static struct fwd_stream stream;
static bool stream_ready;
static struct fwd_layers layers;
static struct fwd_sel sel;
static uint64_t clock_ms;

static struct fwd_stream *find(void *arg, uint32_t ssrc, void **tag)
{
    (void)ssrc;
    *tag = arg;
    return &stream;
}

static bool in_image(const struct fwd_sink *k, uint8_t id)
{
    for (int i = 1; i < FWD_EXT_IDS; i++)
        if (k->ext[i] == id) return true;
    return false;
}

static void check_copy(const struct fwd_sink *k, const uint8_t *pkt, size_t len)
{
    static uint8_t out[2048];
    struct fwd_rtp h, o;
    int n = forward_prepare(k, pkt, len, out, sizeof(out));
    if (forward_rtp_parse(pkt, len, &h) < 0 || len > sizeof(out)) {
        CHECK(n == -1);
        return;
    }
    CHECK(n == (int)len);
    CHECK(forward_rtp_parse(out, len, &o) == 0);
    CHECK(o.pt == k->pt && o.marker == h.marker && o.seq == h.seq && o.ts == h.ts && o.ssrc == h.ssrc);
    CHECK(o.payload_off == h.payload_off && memcmp(out + o.payload_off, pkt + h.payload_off, len - h.payload_off) == 0);
    for (int id = 1; id < 256; id++) {
        size_t vlen = 0;
        const uint8_t *v = forward_rtp_ext(out, &o, (uint8_t)id, &vlen);
        if (!v || (h.ext_profile != FWD_EXT_ONE_BYTE && (h.ext_profile & 0xFFF0) != FWD_EXT_TWO_BYTE)) continue;
        CHECK(in_image(k, (uint8_t)id));
        CHECK(v >= out + o.ext_off && v + vlen <= out + o.ext_off + o.ext_len);
    }
}

static void check_simulcast(const uint8_t *pkt, size_t len, const struct fwd_rtp *h, uint8_t rid_ext)
{
    const uint8_t *payload = NULL;
    size_t plen = 0;
    bool key = false;
    if (forward_rtp_payload(pkt, len, h, &payload, &plen)) {
        CHECK(payload >= pkt && payload + plen <= pkt + len);
        key = forward_keyframe_start(FWD_VIDEO_VP8, payload, plen);
        key |= forward_keyframe_start(FWD_VIDEO_H264, payload, plen);
    }
    bool learnt;
    int layer = forward_layers_classify(&layers, pkt, h, rid_ext, &learnt);
    CHECK(layer >= -1 && layer < (int)layers.n);
    if (layer < 0) layer = h->ssrc % 3; /* still drive the selector */
    forward_layers_account(&layers, layer, len, clock_ms);
    forward_sel_estimate(&sel, (uint64_t)h->ts * 10); /* rises and falls: the hysteresis paths */
    int target = forward_sel_choose(&sel, &layers, clock_ms);
    CHECK(target >= -1 && target < FWD_MAX_LAYERS);
    struct fwd_sel_out o;
    if (forward_sel_packet(&sel, layer, h, key, clock_ms, &o)) {
        int l;
        uint16_t in_seq;
        uint32_t ts_off;
        CHECK(layer == sel.current);
        CHECK(forward_sel_lookup(&sel, o.seq, &l, &in_seq, &ts_off));
        CHECK(l == layer && in_seq == h->seq && o.ts == h->ts + ts_off);
    }
    CHECK(sel.n_hist <= FWD_SEL_HISTORY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 16) return 0;
    if (!stream_ready) {
        struct fwd_stream_config cfg = {.video = true, .pt = 96, .ssrc = 0x1234, .clock = 90000, .nack = true, .cache_ms = 200};
        if (forward_stream_init(&stream, &cfg) < 0) return 0;
        stream_ready = true;
        static const char rids[3][WSDP_RID_MAX] = {"q", "h", "f"};
        forward_layers_init(&layers, rids, 3);
        forward_sel_init(&sel, 0x5151, 90000, 2);
    }
    struct fwd_sink k;
    forward_sink_init(&k, data[0]);
    for (int i = 1; i < FWD_EXT_IDS; i++) forward_sink_map(&k, (uint8_t)i, data[i] & 0x0F);
    if (data[15] & 1) forward_sink_set_mid(&k, data[15] >> 4, data[14] & 0x0F, (data[15] & 2) ? "mid" : "7");
    const uint8_t *pkt = data + 16;
    size_t len = size - 16;
    check_copy(&k, pkt, len);

    clock_ms += 7;
    struct fwd_rtp h;
    if (forward_rtp_parse(pkt, len, &h) == 0 && len <= 1500) {
        forward_stream_receive(&stream, pkt, len, &h, clock_ms);
        CHECK(stream.n_missing <= FWD_MISSING_MAX);
        uint8_t nack[600];
        int n = forward_stream_nack(&stream, clock_ms, 20, 1, nack, sizeof(nack));
        CHECK(n >= 0 && n <= (int)sizeof(nack));
        check_simulcast(pkt, len, &h, data[13]);
    }
    static struct fwd_viewer_rtcp fb;
    forward_viewer_rtcp(pkt, len, find, &k, clock_ms, 100, &fb);
    CHECK(fb.n_resend <= FWD_FB_MAX && fb.n_upstream <= FWD_FB_STREAMS && fb.n_keyframe <= FWD_FB_STREAMS);
    for (size_t i = 0; i < fb.n_resend; i++) CHECK(forward_stream_cached(&stream, fb.resend[i].seq, NULL));
    static uint8_t srs[2048];
    int n = forward_publisher_rtcp(pkt, len, find, &k, clock_ms, srs, sizeof(srs));
    CHECK(n <= (int)sizeof(srs) && (n < 0 || n % 4 == 0));
    return 0;
}
