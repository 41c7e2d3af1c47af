/* fuzz_webrtc_sdp.c — libFuzzer target for WebRTC offers (media/webrtc_sdp.h): the
 * parser, both answers and the writer on arbitrary text. (fuzz_sdp is the
 * GB/T 28181 SDP of src/sip.)
 *
 * Checks: a refusal always says why; an offer that parses is answered as a
 * publisher, and as a viewer both of its own publish answer and of a fixed
 * real Chromium publisher; every answer made is written, the text parses
 * again and says the same m-lines (mid, port, direction, codec, SSRC). */
#include <stdint.h>
#include <string.h>

#include "media/webrtc_sdp.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

/* A Chromium publisher (audio + VP8 video), trimmed to what the answer uses. */
static const char pub_offer[] =
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
    "a=fingerprint:sha-256 00:E1:3E:4A:71:15:47:BD:78:B1:C0:0B:25:2F:10:C2:1B:F3:5F:A2:1F:01:BA:36:97:90:84:D2:38:B2:7A:EC\r\n"
    "a=ice-ufrag:TyxX\r\na=ice-pwd:T1FRo/hx/hqvVL3zB8BRsa4D\r\na=setup:actpass\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n"
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=ssrc:2399284583 cname:AsjGqdPXVMevqOyI\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\n"
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
    "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
    "a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n"
    "a=ssrc-group:FID 336574753 197470527\r\na=ssrc:336574753 cname:x\r\na=ssrc:197470527 cname:x\r\n";

static const struct wsdp_candidate cands[] = {{.ip = "192.0.2.1", .port = 40000}, {.ip = "::1", .port = 40001, .tcp = true}};
static const struct wsdp_local local = {
    .ice_ufrag = "srv1",
    .ice_pwd = "0123456789abcdefghijklmn",
    .fingerprint = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                   "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
    .candidates = cands,
    .n_candidates = 2,
    .sess_id = 7,
    .cname = "sfu",
};

/* Sessions are large: static, one input at a time. */
static struct wsdp_session offer, own_pub, fixed_pub, answer, again;

static void write_and_reparse(const struct wsdp_session *a)
{
    sbuf_t out;
    sbuf_init(&out);
    CHECK(wsdp_write(&out, a, &local) == 0);
    const char *why = NULL;
    CHECK(wsdp_parse(out.data, out.len, &again, &why) == 0);
    CHECK(again.n_media == a->n_media && again.bundle && again.ice_lite);
    CHECK(again.setup == WSDP_SETUP_PASSIVE && !memcmp(again.fingerprint, a->fingerprint, 32));
    for (size_t i = 0; i < a->n_media; i++) {
        const struct wsdp_media *x = &a->media[i], *y = &again.media[i];
        CHECK(x->port == y->port && !strcmp(x->mid, y->mid) && !strcmp(x->kind_name, y->kind_name));
        const struct wsdp_codec *cx = wsdp_media_codec(x), *cy = wsdp_media_codec(y);
        CHECK((cx == NULL) == (cy == NULL));
        if (!cx) continue;
        CHECK(cx->pt == cy->pt && !strcmp(cx->name, cy->name) && !strcmp(cx->fmtp, cy->fmtp));
        CHECK(x->dir == y->dir && x->n_ext == y->n_ext && y->n_codecs == 1);
        if (x->dir == WSDP_DIR_SENDONLY && x->n_ssrcs) CHECK(y->n_ssrcs == 1 && y->ssrcs[0].ssrc == x->ssrcs[0].ssrc);
    }
    sbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    const char *why = NULL;
    if (!init) {
        CHECK(wsdp_parse(pub_offer, sizeof(pub_offer) - 1, &offer, &why) == 0);
        CHECK(wsdp_answer_publish(&offer, &local, &fixed_pub, &why) == 0);
        init = true;
    }
    if (wsdp_parse((const char *)data, size, &offer, &why) != 0) {
        CHECK(why != NULL);
        return 0;
    }
    CHECK(offer.n_media <= WSDP_MAX_MEDIA && offer.has_fingerprint && offer.ice_ufrag[0] && offer.ice_pwd[0]);
    for (size_t i = 0; i < offer.n_media; i++) {
        const struct wsdp_media *m = &offer.media[i];
        CHECK(m->n_codecs <= WSDP_MAX_CODECS && m->n_ext <= WSDP_MAX_EXTMAP && m->n_ssrcs <= WSDP_MAX_SSRCS);
        if (m->mid[0]) CHECK(wsdp_find_mid(&offer, m->mid) == m);
    }
    why = NULL;
    bool have_pub = wsdp_answer_publish(&offer, &local, &own_pub, &why) == 0;
    CHECK(have_pub || why);
    if (have_pub) write_and_reparse(&own_pub);
    if (have_pub) {
        why = NULL;
        if (wsdp_answer_view(&offer, &own_pub, &local, &answer, &why) == 0)
            write_and_reparse(&answer);
        else
            CHECK(why != NULL);
    }
    why = NULL;
    if (wsdp_answer_view(&offer, &fixed_pub, &local, &answer, &why) == 0)
        write_and_reparse(&answer);
    else
        CHECK(why != NULL);
    return 0;
}
