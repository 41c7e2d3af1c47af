/* test_webrtc_sdp.c — WebRTC offers and answers (src/media/webrtc_sdp.h): parsing
 * real Chromium offers, the publish and view answers the SFU gives, the
 * offers it refuses, and the written answer read back.
 *
 * The offers in sdp_offers/ were captured from Debian's Chromium
 * 156.0.8078.114 (headless, fake camera and microphone):
 *   chromium_publish.sdp          getUserMedia audio+video, addTrack both
 *   chromium_publish_h264.sdp     video only, H.264 first by setCodecPreferences
 *   chromium_publish_datachannel.sdp  audio+video plus createDataChannel
 *   chromium_view.sdp             two recvonly transceivers (audio, video)
 *   chromium_publish_simulcast.sdp  audio, and video by addTransceiver with
 *                                 sendEncodings rid q (1/4), h (1/2), f (full)
 * The answers these tests check were given to that same Chromium 156.0.8078.114
 * with setRemoteDescription({type:'answer'}) on a live offer of each kind and
 * it accepted all of them: the publish answer (Opus + VP8, recvonly), the
 * H.264 publish answer, the answer rejecting the data channel, and the view
 * answer for the default viewer offer against the VP8 publisher and against
 * the H.264 publisher (audio inactive, video sendonly H.264 102; ontrack
 * fired with the publisher's msid stream). The simulcast publish answer
 * (a=rid:q/h/f recv, a=simulcast:recv q;h;f, the rid extensions) was given
 * to a live simulcast offer of that Chromium and accepted, its sender
 * keeping the three encodings; the view answer for a live viewer offer
 * against that simulcast publisher (video sendonly under an out_ssrc of
 * ours) was accepted too, ontrack firing for audio and video. This file is named test_webrtc_sdp
 * because tests/unit/test_sdp.c tests the GB/T 28181 SDP of src/sip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "media/webrtc_sdp.h"

/* What the server puts into every answer here. */
static const struct wsdp_candidate cands[] = {
    {.ip = "127.0.0.1", .port = 40000, .tcp = false},
    {.ip = "127.0.0.1", .port = 40001, .tcp = true},
};
static const char local_fp[] = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                               "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
static const struct wsdp_local local = {
    .ice_ufrag = "srv1",
    .ice_pwd = "0123456789abcdefghijklmn",
    .fingerprint = local_fp,
    .candidates = cands,
    .n_candidates = 2,
    .sess_id = 4242,
    .cname = "cascade-sfu",
};

/* Sessions are ~90 KB each: on the heap, not the stack. */
struct fx {
    struct wsdp_session offer, pub, view_offer, answer, again;
    char text[WSDP_MAX_TEXT + 2];
    size_t len;
    sbuf_t out;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    sbuf_init(&f->out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    sbuf_free(&f->out);
    free(f);
    return 0;
}

static void load(struct fx *f, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "sdp_offers/%s", name);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s (tests run in tests/unit)", path);
    f->len = fread(f->text, 1, sizeof(f->text) - 1, fp);
    fclose(fp);
    f->text[f->len] = '\0';
}

static void parse_file(struct fx *f, const char *name, struct wsdp_session *s)
{
    load(f, name);
    const char *why = NULL;
    if (wsdp_parse(f->text, f->len, s, &why) != 0) fail_msg("%s: %s", name, why);
}

static const struct wsdp_codec *codec_pt(const struct wsdp_media *m, unsigned pt)
{
    for (size_t i = 0; i < m->n_codecs; i++)
        if (m->codecs[i].pt == pt) return &m->codecs[i];
    return NULL;
}

/* ---- parsing real offers ---- */

static void test_parse_chromium_publish(void **state)
{
    struct fx *f = *state;
    struct wsdp_session *s = &f->offer;
    parse_file(f, "chromium_publish.sdp", s);
    assert_true(s->sess_id == 6483162566577808696ull);
    assert_int_equal(s->sess_version, 2);
    assert_string_equal(s->ice_ufrag, "TyxX");
    assert_string_equal(s->ice_pwd, "T1FRo/hx/hqvVL3zB8BRsa4D");
    static const uint8_t fp[32] = {0x00, 0xE1, 0x3E, 0x4A, 0x71, 0x15, 0x47, 0xBD, 0x78, 0xB1, 0xC0,
                                   0x0B, 0x25, 0x2F, 0x10, 0xC2, 0x1B, 0xF3, 0x5F, 0xA2, 0x1F, 0x01,
                                   0xBA, 0x36, 0x97, 0x90, 0x84, 0xD2, 0x38, 0xB2, 0x7A, 0xEC};
    assert_true(s->has_fingerprint);
    assert_memory_equal(s->fingerprint, fp, 32);
    assert_int_equal(s->setup, WSDP_SETUP_ACTPASS);
    assert_false(s->ice_lite);
    assert_true(s->bundle);
    assert_int_equal(s->n_media, 2);

    const struct wsdp_media *a = &s->media[0];
    assert_int_equal(a->kind, WSDP_KIND_AUDIO);
    assert_string_equal(a->kind_name, "audio");
    assert_string_equal(a->proto, "UDP/TLS/RTP/SAVPF");
    assert_string_equal(a->mid, "0");
    assert_int_equal(a->port, 33651);
    assert_int_equal(a->dir, WSDP_DIR_SENDRECV);
    assert_true(a->rtcp_mux && a->rtcp_rsize);
    assert_int_equal(a->n_fmt_pts, 8);
    assert_int_equal(a->fmt_pts[0], 111);
    assert_int_equal(a->n_codecs, 8);
    const struct wsdp_codec *opus = codec_pt(a, 111);
    assert_non_null(opus);
    assert_string_equal(opus->name, "opus");
    assert_int_equal(opus->clock, 48000);
    assert_int_equal(opus->channels, 2);
    assert_string_equal(opus->fmtp, "minptime=10;useinbandfec=1");
    assert_true(opus->fb_twcc);
    assert_false(opus->fb_nack);
    assert_int_equal(wsdp_media_ext_id(a, WSDP_EXT_MID), 4);
    assert_int_equal(wsdp_media_ext_id(a, WSDP_EXT_ABS_SEND_TIME), 2);
    assert_int_equal(wsdp_media_ext_id(a, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"), 1);
    assert_int_equal(a->n_ssrcs, 1);
    assert_int_equal(a->ssrcs[0].ssrc, 2399284583u);
    assert_string_equal(a->ssrcs[0].cname, "AsjGqdPXVMevqOyI");
    assert_string_equal(a->ssrcs[0].msid_stream, "3df82043-39eb-4dfd-97b2-67fc6a3c0c8f");
    assert_string_equal(a->msid_track, "bb815b9b-51b0-4be1-82d8-bb0ae4e53403");
    assert_int_equal(a->rtx_ssrc, 0);

    const struct wsdp_media *v = &s->media[1];
    assert_int_equal(v->kind, WSDP_KIND_VIDEO);
    assert_string_equal(v->mid, "1");
    assert_int_equal(v->n_fmt_pts, 23);
    assert_int_equal(v->n_codecs, 23);
    const struct wsdp_codec *vp8 = codec_pt(v, 96), *rtx = codec_pt(v, 97), *h264 = codec_pt(v, 108);
    assert_string_equal(vp8->name, "VP8");
    assert_int_equal(vp8->clock, 90000);
    assert_int_equal(vp8->channels, 0);
    assert_true(vp8->fb_nack && vp8->fb_pli && vp8->fb_fir && vp8->fb_remb && vp8->fb_twcc);
    assert_string_equal(rtx->name, "rtx");
    assert_int_equal(rtx->rtx_for, 96);
    assert_string_equal(h264->fmtp, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f");
    assert_int_equal(wsdp_media_ext_id(v, "urn:ietf:params:rtp-hdrext:toffset"), 14);
    assert_int_equal(wsdp_media_ext_id(v, WSDP_EXT_MID), 4);
    assert_int_equal(wsdp_media_ext_id(v, "urn:example:absent"), 0);
    /* FID 336574753 197470527: the media SSRC is listed, the repair one apart */
    assert_int_equal(v->n_ssrcs, 1);
    assert_int_equal(v->ssrcs[0].ssrc, 336574753u);
    assert_int_equal(v->rtx_ssrc, 197470527u);
    assert_string_equal(v->ssrcs[0].msid_track, "4fb438d6-23f1-4cf7-98e8-88b96e8f65ec");
    assert_false(v->has_rids);

    assert_ptr_equal(wsdp_find_mid(s, "1"), v);
    assert_null(wsdp_find_mid(s, "2"));
}

/* The viewer's video m-line lists 34 payload types, more than
 * WSDP_MAX_CODECS: the ones the SFU can use are kept over the others. */
static void test_parse_chromium_view(void **state)
{
    struct fx *f = *state;
    struct wsdp_session *s = &f->offer;
    parse_file(f, "chromium_view.sdp", s);
    assert_string_equal(s->ice_ufrag, "b/Qn");
    assert_int_equal(s->fingerprint[0], 0xE0);
    assert_int_equal(s->fingerprint[31], 0x0B);
    assert_true(s->bundle);
    assert_int_equal(s->n_media, 2);
    assert_int_equal(s->media[0].dir, WSDP_DIR_RECVONLY);
    const struct wsdp_media *v = &s->media[1];
    assert_int_equal(v->dir, WSDP_DIR_RECVONLY);
    assert_int_equal(v->n_ssrcs, 0);
    assert_string_equal(v->msid_stream, "");
    assert_int_equal(v->n_fmt_pts, WSDP_MAX_CODECS);
    assert_int_equal(v->n_codecs, WSDP_MAX_CODECS);
    assert_non_null(codec_pt(v, 96));   /* VP8 */
    assert_non_null(codec_pt(v, 102));  /* H.264 42001f pm=1 */
    assert_non_null(codec_pt(v, 108));  /* H.264 42e01f pm=1 */
    assert_non_null(codec_pt(v, 41));   /* H.264 f4001f pm=1: 29th, kept in place of an unusable one */
    assert_null(codec_pt(v, 47));       /* AV1 profile 1: past the cap and not ours */
}

static void test_parse_chromium_h264_publish(void **state)
{
    struct fx *f = *state;
    struct wsdp_session *s = &f->offer;
    parse_file(f, "chromium_publish_h264.sdp", s);
    assert_int_equal(s->n_media, 1);
    const struct wsdp_media *v = &s->media[0];
    assert_int_equal(v->dir, WSDP_DIR_SENDONLY);
    assert_int_equal(v->fmt_pts[0], 102);
    assert_int_equal(v->ssrcs[0].ssrc, 515152628u);
    assert_int_equal(v->rtx_ssrc, 1790710381u);
    assert_int_equal(codec_pt(v, 103)->rtx_for, 102);
}

/* ---- the publish answer ---- */

static void test_publish_answer_vp8_opus(void **state)
{
    struct fx *f = *state;
    parse_file(f, "chromium_publish.sdp", &f->offer);
    const char *why = NULL;
    if (wsdp_answer_publish(&f->offer, &local, &f->pub, &why) != 0) fail_msg("%s", why);
    const struct wsdp_session *a = &f->pub;
    assert_true(a->ice_lite && a->bundle);
    assert_int_equal(a->setup, WSDP_SETUP_PASSIVE);
    assert_string_equal(a->ice_ufrag, "srv1");
    assert_int_equal(a->sess_id, 4242);
    assert_int_equal(a->n_media, 2);
    const struct wsdp_media *au = &a->media[0], *vi = &a->media[1];
    assert_int_equal(au->port, 9);
    assert_int_equal(au->dir, WSDP_DIR_RECVONLY);
    assert_int_equal(au->n_codecs, 1);
    const struct wsdp_codec *c = wsdp_media_codec(au);
    assert_string_equal(c->name, "opus");
    assert_int_equal(c->pt, 111);
    assert_true(c->fb_twcc); /* offered: the SFU sends transport-cc feedback (twcc.h) */
    /* first supported in the offer's order: VP8 (96), not its RTX (97) */
    c = wsdp_media_codec(vi);
    assert_string_equal(c->name, "VP8");
    assert_int_equal(c->pt, 96);
    assert_int_equal(vi->n_codecs, 1);
    assert_int_equal(vi->dir, WSDP_DIR_RECVONLY);
    assert_true(c->fb_nack && c->fb_pli && c->fb_fir && c->fb_remb);
    /* only the extensions we use, with the offer's ids */
    assert_int_equal(vi->n_ext, 3);
    assert_int_equal(wsdp_media_ext_id(vi, WSDP_EXT_MID), 4);
    assert_int_equal(wsdp_media_ext_id(vi, WSDP_EXT_ABS_SEND_TIME), 2);
    assert_int_equal(wsdp_media_ext_id(vi, WSDP_EXT_TWCC), 3);
    /* the publisher's SSRCs, kept for the forwarder */
    assert_int_equal(vi->ssrcs[0].ssrc, 336574753u);
    assert_int_equal(vi->rtx_ssrc, 197470527u);
    assert_int_equal(au->ssrcs[0].ssrc, 2399284583u);

    assert_int_equal(wsdp_write(&f->out, a, &local), 0);
    const char *t = f->out.data;
    assert_non_null(strstr(t, "v=0\r\no=- 4242 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
                              "a=ice-lite\r\na=msid-semantic: WMS *\r\n"));
    assert_non_null(strstr(t, "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"));
    assert_non_null(strstr(t, "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"));
    assert_non_null(strstr(t, "a=fingerprint:sha-256 00:11:22"));
    assert_non_null(strstr(t, "a=setup:passive\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=recvonly\r\n"));
    assert_non_null(strstr(t, "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"));
    assert_non_null(strstr(t, "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 ccm fir\r\n"
                              "a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n"));
    assert_non_null(strstr(t, "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
                              "a=candidate:2 1 tcp 1518280447 127.0.0.1 40001 typ host tcptype passive\r\n"
                              "a=end-of-candidates\r\n"));
    assert_null(strstr(t, "rtx"));
    assert_non_null(strstr(t, "a=rtcp-fb:96 transport-cc\r\n"));
    assert_non_null(strstr(t, "a=extmap:3 " WSDP_EXT_TWCC "\r\n"));
    assert_null(strstr(t, "a=ssrc")); /* recvonly: the SSRCs are the browser's */
    assert_null(strstr(t, "\n\n"));
}

static void test_publish_answer_h264(void **state)
{
    struct fx *f = *state;
    parse_file(f, "chromium_publish_h264.sdp", &f->offer);
    const char *why = NULL;
    if (wsdp_answer_publish(&f->offer, &local, &f->pub, &why) != 0) fail_msg("%s", why);
    const struct wsdp_codec *c = wsdp_media_codec(&f->pub.media[0]);
    assert_string_equal(c->name, "H264");
    assert_int_equal(c->pt, 102);
    /* the offer's fmtp for the chosen type, unchanged */
    assert_string_equal(c->fmtp, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f");
    assert_int_equal(wsdp_write(&f->out, &f->pub, &local), 0);
    assert_non_null(strstr(f->out.data, "a=group:BUNDLE 0\r\n"));
    assert_non_null(strstr(f->out.data, "m=video 9 UDP/TLS/RTP/SAVPF 102\r\n"));
    assert_non_null(strstr(f->out.data, "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;"
                                        "profile-level-id=42001f\r\n"));
}

/* H.264 with packetization-mode 0 only is not taken (FU-A needs mode 1). */
static void test_publish_answer_h264_mode0_refused(void **state)
{
    struct fx *f = *state;
    static const char offer[] = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE v\r\n"
                                "m=video 9 UDP/TLS/RTP/SAVPF 104 102\r\nc=IN IP4 0.0.0.0\r\n"
                                "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
                                "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                                "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n"
                                "a=setup:actpass\r\na=mid:v\r\na=sendonly\r\na=rtcp-mux\r\n"
                                "a=rtpmap:104 H264/90000\r\n"
                                "a=fmtp:104 packetization-mode=0;profile-level-id=42e01f\r\n"
                                "a=rtpmap:102 H264/90000\r\n"
                                "a=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";
    const char *why;
    assert_int_equal(wsdp_parse(offer, sizeof(offer) - 1, &f->offer, &why), 0);
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), 0);
    assert_int_equal(wsdp_media_codec(&f->pub.media[0])->pt, 102);
}

/* The data channel m-line is rejected in place: same order, port 0, the
 * original format, its mid kept, out of the BUNDLE group. */
static void test_publish_answer_rejects_datachannel(void **state)
{
    struct fx *f = *state;
    parse_file(f, "chromium_publish_datachannel.sdp", &f->offer);
    assert_int_equal(f->offer.n_media, 3);
    const struct wsdp_media *dc = &f->offer.media[2];
    assert_int_equal(dc->kind, WSDP_KIND_OTHER);
    assert_string_equal(dc->kind_name, "application");
    assert_string_equal(dc->fmt_token, "webrtc-datachannel");
    assert_int_equal(dc->n_fmt_pts, 0);
    const char *why = NULL;
    if (wsdp_answer_publish(&f->offer, &local, &f->pub, &why) != 0) fail_msg("%s", why);
    assert_int_equal(f->pub.media[2].port, 0);
    assert_null(wsdp_media_codec(&f->pub.media[2]));
    assert_int_equal(wsdp_write(&f->out, &f->pub, &local), 0);
    const char *t = f->out.data;
    assert_non_null(strstr(t, "a=group:BUNDLE 0 1\r\n"));
    const char *app = strstr(t, "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n");
    assert_non_null(app);
    assert_true(app > strstr(t, "m=video"));
    assert_null(strstr(app, "a=ice-ufrag")); /* nothing else for a rejected line */
}

/* ---- the view answer ---- */

static void publish_and_view(struct fx *f, const char *pub_file)
{
    const char *why = NULL;
    parse_file(f, pub_file, &f->offer);
    if (wsdp_answer_publish(&f->offer, &local, &f->pub, &why) != 0) fail_msg("%s", why);
    parse_file(f, "chromium_view.sdp", &f->view_offer);
    if (wsdp_answer_view(&f->view_offer, &f->pub, &local, &f->answer, &why) != 0) fail_msg("%s", why);
}

static void test_view_answer_vp8_opus(void **state)
{
    struct fx *f = *state;
    publish_and_view(f, "chromium_publish.sdp");
    const struct wsdp_session *a = &f->answer;
    assert_int_equal(a->n_media, 2);
    const struct wsdp_media *au = &a->media[0], *vi = &a->media[1];
    assert_string_equal(au->mid, "0"); /* the viewer's mids */
    assert_int_equal(au->dir, WSDP_DIR_SENDONLY);
    assert_int_equal(wsdp_media_codec(au)->pt, 111);
    assert_int_equal(vi->dir, WSDP_DIR_SENDONLY);
    const struct wsdp_codec *c = wsdp_media_codec(vi);
    assert_string_equal(c->name, "VP8");
    assert_int_equal(c->pt, 96); /* the viewer's type for VP8 */
    /* the publisher's SSRC with our CNAME, the publisher's msid */
    assert_int_equal(vi->n_ssrcs, 1);
    assert_int_equal(vi->ssrcs[0].ssrc, 336574753u);
    assert_string_equal(vi->ssrcs[0].cname, "cascade-sfu");
    assert_string_equal(vi->msid_stream, "3df82043-39eb-4dfd-97b2-67fc6a3c0c8f");
    assert_string_equal(vi->msid_track, "4fb438d6-23f1-4cf7-98e8-88b96e8f65ec");
    assert_int_equal(vi->rtx_ssrc, 0);
    assert_int_equal(au->ssrcs[0].ssrc, 2399284583u);
    assert_int_equal(wsdp_media_ext_id(vi, WSDP_EXT_MID), 4);
    assert_int_equal(wsdp_media_ext_id(vi, WSDP_EXT_ABS_SEND_TIME), 2);
    /* transport-cc both ways: the extension (the viewer's id) and the feedback */
    assert_int_equal(wsdp_media_ext_id(vi, WSDP_EXT_TWCC), 3);
    assert_true(c->fb_twcc && c->fb_remb);

    assert_int_equal(wsdp_write(&f->out, a, &local), 0);
    const char *t = f->out.data;
    assert_non_null(strstr(t, "a=sendonly\r\na=msid:3df82043-39eb-4dfd-97b2-67fc6a3c0c8f "
                              "4fb438d6-23f1-4cf7-98e8-88b96e8f65ec\r\n"));
    assert_non_null(strstr(t, "a=ssrc:336574753 cname:cascade-sfu\r\n"
                              "a=ssrc:336574753 msid:3df82043-39eb-4dfd-97b2-67fc6a3c0c8f "
                              "4fb438d6-23f1-4cf7-98e8-88b96e8f65ec\r\n"));
    assert_non_null(strstr(t, "a=ssrc:2399284583 cname:cascade-sfu\r\n"));
    assert_null(strstr(t, "197470527")); /* no RTX */
}

/* A video-only H.264 publisher and the default viewer offer: video maps to
 * the viewer's H.264 with the same packetization mode and profile, audio
 * has nothing to take and is answered inactive (with a codec, so the
 * transceiver stays). */
static void test_view_answer_h264_publisher(void **state)
{
    struct fx *f = *state;
    publish_and_view(f, "chromium_publish_h264.sdp");
    const struct wsdp_media *au = &f->answer.media[0], *vi = &f->answer.media[1];
    assert_int_equal(au->port, 9);
    assert_int_equal(au->dir, WSDP_DIR_INACTIVE);
    assert_int_equal(au->n_ssrcs, 0);
    assert_string_equal(wsdp_media_codec(au)->name, "opus");
    assert_int_equal(vi->dir, WSDP_DIR_SENDONLY);
    const struct wsdp_codec *c = wsdp_media_codec(vi);
    assert_int_equal(c->pt, 102);
    assert_string_equal(c->fmtp, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f");
    assert_int_equal(vi->ssrcs[0].ssrc, 515152628u);
    assert_int_equal(wsdp_write(&f->out, &f->answer, &local), 0);
    assert_non_null(strstr(f->out.data, "a=group:BUNDLE 0 1\r\n"));
    assert_non_null(strstr(f->out.data, "a=inactive\r\na=rtpmap:111 opus/48000/2\r\n"));
}

/* H.264 matching: the profiles must agree (profile_idc read with its
 * constraint flags, as a decoder does), the level need not; a viewer
 * without such a profile gets nothing, which refuses. */
static void test_view_answer_h264_profiles(void **state)
{
    struct fx *f = *state;
    char offer[2048];
    static const char head[] = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE v\r\n"
                               "m=video 9 UDP/TLS/RTP/SAVPF 100 101\r\n"
                               "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
                               "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                               "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n"
                               "a=setup:actpass\r\na=mid:v\r\na=rtcp-mux\r\n";
    const char *why;
    /* publisher: 42e01f (Constrained Baseline, level 3.1) */
    int n = snprintf(offer, sizeof(offer),
                     "%sa=sendonly\r\na=ssrc:7 cname:x\r\na=rtpmap:100 H264/90000\r\n"
                     "a=fmtp:100 packetization-mode=1;profile-level-id=42e01f\r\n",
                     head);
    assert_int_equal(wsdp_parse(offer, (size_t)n, &f->offer, &why), 0);
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), 0);
    /* viewer: 42001f (Baseline) first, then 42e034 (Constrained Baseline, level 5.2) */
    n = snprintf(offer, sizeof(offer),
                 "%sa=recvonly\r\na=rtpmap:100 H264/90000\r\n"
                 "a=fmtp:100 packetization-mode=1;profile-level-id=42001f\r\n"
                 "a=rtpmap:101 H264/90000\r\na=fmtp:101 packetization-mode=1;profile-level-id=42e034\r\n",
                 head);
    assert_int_equal(wsdp_parse(offer, (size_t)n, &f->view_offer, &why), 0);
    assert_int_equal(wsdp_answer_view(&f->view_offer, &f->pub, &local, &f->answer, &why), 0);
    assert_int_equal(wsdp_media_codec(&f->answer.media[0])->pt, 101);
    assert_int_equal(f->answer.media[0].ssrcs[0].ssrc, 7);
    /* viewer with Main (4d001f) only: no common codec, nothing to view */
    n = snprintf(offer, sizeof(offer),
                 "%sa=recvonly\r\na=rtpmap:100 H264/90000\r\n"
                 "a=fmtp:100 packetization-mode=1;profile-level-id=4d001f\r\n",
                 head);
    assert_int_equal(wsdp_parse(offer, (size_t)n, &f->view_offer, &why), 0);
    assert_int_equal(wsdp_answer_view(&f->view_offer, &f->pub, &local, &f->answer, &why), -1);
    assert_non_null(why);
    /* publisher: 42c01e, Constrained Baseline as x264 and cameras write it
     * (constraint_set0 and set1); a browser's 42e01f is the same profile,
     * its Baseline 42001f is not */
    n = snprintf(offer, sizeof(offer),
                 "%sa=sendonly\r\na=ssrc:8 cname:x\r\na=rtpmap:100 H264/90000\r\n"
                 "a=fmtp:100 packetization-mode=1;profile-level-id=42c01e\r\n",
                 head);
    assert_int_equal(wsdp_parse(offer, (size_t)n, &f->offer, &why), 0);
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), 0);
    n = snprintf(offer, sizeof(offer),
                 "%sa=recvonly\r\na=rtpmap:100 H264/90000\r\n"
                 "a=fmtp:100 packetization-mode=1;profile-level-id=42001f\r\n"
                 "a=rtpmap:101 H264/90000\r\na=fmtp:101 packetization-mode=1;profile-level-id=42e01f\r\n",
                 head);
    assert_int_equal(wsdp_parse(offer, (size_t)n, &f->view_offer, &why), 0);
    assert_int_equal(wsdp_answer_view(&f->view_offer, &f->pub, &local, &f->answer, &why), 0);
    assert_int_equal(wsdp_media_codec(&f->answer.media[0])->pt, 101);
    /* a reserved constraint bit set: not a profile we know, not published */
    n = snprintf(offer, sizeof(offer),
                 "%sa=sendonly\r\na=ssrc:9 cname:x\r\na=rtpmap:100 H264/90000\r\n"
                 "a=fmtp:100 packetization-mode=1;profile-level-id=42e11f\r\n",
                 head);
    assert_int_equal(wsdp_parse(offer, (size_t)n, &f->offer, &why), 0);
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), -1);
}

/* ---- refusals ---- */

/* A small valid offer, and edits of it that must be refused. */
static const char base_offer[] = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE a\r\n"
                                 "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
                                 "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
                                 "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                                 "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n"
                                 "a=setup:actpass\r\na=mid:a\r\na=sendonly\r\na=rtcp-mux\r\n"
                                 "a=rtpmap:111 opus/48000/2\r\n";

/* base_offer with the first line starting with `drop` removed and `add`
 * appended (either may be NULL). */
static size_t edit(char *dst, size_t cap, const char *drop, const char *add)
{
    size_t n = 0;
    for (const char *p = base_offer; *p;) {
        const char *e = strchr(p, '\n') + 1;
        if (!(drop && strncmp(p, drop, strlen(drop)) == 0)) {
            memcpy(dst + n, p, (size_t)(e - p));
            n += (size_t)(e - p);
        } else {
            drop = NULL;
        }
        p = e;
    }
    if (add) n += (size_t)snprintf(dst + n, cap - n, "%s", add);
    assert_true(n < cap);
    return n;
}

static void test_base_offer_is_accepted(void **state)
{
    struct fx *f = *state;
    const char *why;
    assert_int_equal(wsdp_parse(base_offer, sizeof(base_offer) - 1, &f->offer, &why), 0);
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), 0);
    /* LF line ends and a trailing blank line are fine too */
    char lf[sizeof(base_offer)];
    size_t n = 0;
    for (const char *p = base_offer; *p; p++)
        if (*p != '\r') lf[n++] = *p;
    lf[n++] = '\n';
    assert_int_equal(wsdp_parse(lf, n, &f->offer, &why), 0);
    assert_string_equal(f->offer.ice_pwd, "0123456789012345678901");
}

static void expect_parse_refused(struct fx *f, const char *text, size_t len, const char *what)
{
    const char *why = NULL;
    if (wsdp_parse(text, len, &f->offer, &why) == 0) fail_msg("accepted: %s", what);
    print_message("%-40s -> %s\n", what, why);
}

static void expect_publish_refused(struct fx *f, const char *text, size_t len, const char *what)
{
    const char *why = NULL;
    if (wsdp_parse(text, len, &f->offer, &why) != 0) fail_msg("%s: parse: %s", what, why);
    if (wsdp_answer_publish(&f->offer, &local, &f->pub, &why) == 0) fail_msg("answered: %s", what);
    print_message("%-40s -> %s\n", what, why);
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    char t[8192];
    size_t n;

    n = edit(t, sizeof(t), "a=fingerprint", NULL);
    expect_parse_refused(f, t, n, "no fingerprint");
    n = edit(t, sizeof(t), "a=fingerprint", "a=fingerprint:sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33\r\n");
    expect_parse_refused(f, t, n, "sha-1 fingerprint only");
    n = edit(t, sizeof(t), "a=fingerprint", "a=fingerprint:sha-256 00:11:22\r\n");
    expect_parse_refused(f, t, n, "short sha-256 fingerprint");
    n = edit(t, sizeof(t), "a=ice-ufrag", NULL);
    expect_parse_refused(f, t, n, "no ice-ufrag");
    n = edit(t, sizeof(t), "a=ice-pwd", NULL);
    expect_parse_refused(f, t, n, "no ice-pwd");
    n = edit(t, sizeof(t), "a=ice-ufrag", "a=ice-ufrag:" /* 64 characters: one over the cap */
                                          "0123456789012345678901234567890123456789012345678901234567890123\r\n");
    expect_parse_refused(f, t, n, "over-long ufrag");
    {
        char big[WSDP_LINE_MAX + 32];
        memcpy(big, "a=tool:", 7);
        memset(big + 7, 'x', WSDP_LINE_MAX);
        memcpy(big + 7 + WSDP_LINE_MAX, "\r\n", 3);
        n = edit(t, sizeof(t), NULL, big);
        expect_parse_refused(f, t, n, "over-long line");
    }
    {
        char nine[4096] = "";
        for (int i = 0; i < 9; i++) {
            size_t l = strlen(nine);
            snprintf(nine + l, sizeof(nine) - l, "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:m%d\r\n", i);
        }
        n = edit(t, sizeof(t), NULL, nine);
        expect_parse_refused(f, t, n, "9 m-lines");
    }
    static const uint8_t garbage[] = {0x16, 0xfe, 0xfd, 0x00, 0x00, 0x76, 0x3d, 0x30, 0x0d, 0x0a, 0xff, 0x00, 0x01};
    expect_parse_refused(f, (const char *)garbage, sizeof(garbage), "binary garbage");
    memcpy(t, base_offer, sizeof(base_offer));
    t[40] = '\0'; /* a NUL inside */
    expect_parse_refused(f, t, sizeof(base_offer) - 1, "NUL byte");
    expect_parse_refused(f, "", 0, "empty");
    expect_parse_refused(f, "\r\n\r\n", 4, "only blank lines");
    expect_parse_refused(f, "hello world\r\n", 13, "not SDP");
    n = edit(t, sizeof(t), "m=audio", "m=audio 9 UDP/TLS/RTP/SAVPF 111 300\r\n");
    expect_parse_refused(f, t, n, "payload type over 127");

    n = edit(t, sizeof(t), "a=rtcp-mux", NULL);
    expect_publish_refused(f, t, n, "no rtcp-mux");
    n = edit(t, sizeof(t), "a=group", NULL);
    expect_publish_refused(f, t, n, "no BUNDLE");
    n = edit(t, sizeof(t), "a=setup", "a=setup:passive\r\n");
    expect_publish_refused(f, t, n, "setup:passive (we are the DTLS server)");
    n = edit(t, sizeof(t), "a=rtpmap", "a=rtpmap:111 G722/8000\r\n");
    expect_publish_refused(f, t, n, "no codec we forward");
    n = edit(t, sizeof(t), "a=sendonly", "a=recvonly\r\n");
    expect_publish_refused(f, t, n, "a publisher that only receives");
}

/* ICE/DTLS attributes at session level are overridden by the first m-line
 * carrying them; later m-lines (the same under BUNDLE) do not count. */
static void test_transport_attribute_levels(void **state)
{
    struct fx *f = *state;
    char t[4096], v[4096];
    size_t n = edit(t, sizeof(t), NULL,
                    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:b\r\na=ice-ufrag:late\r\na=setup:active\r\n"
                    "a=sendonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n");
    const char *m = strstr(t, "m=audio");
    snprintf(v, sizeof(v), "%.*sa=ice-ufrag:sess\r\na=setup:active\r\n%.*s", (int)(m - t), t,
             (int)(n - (size_t)(m - t)), m);
    const char *why;
    assert_int_equal(wsdp_parse(v, strlen(v), &f->offer, &why), 0);
    assert_string_equal(f->offer.ice_ufrag, "abcd");            /* first m-line's */
    assert_int_equal(f->offer.setup, WSDP_SETUP_ACTPASS);        /* first m-line's over the session's */
    assert_false(f->offer.bundle);                              /* "b" is not in the group */
}

/* JSEP max-bundle: port 0 with a=bundle-only is in the BUNDLE, not rejected. */
static void test_bundle_only(void **state)
{
    struct fx *f = *state;
    char t[4096], v[4096];
    size_t n = edit(t, sizeof(t), "a=group", "m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:b\r\na=bundle-only\r\n"
                                            "a=sendonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n");
    const char *m = strstr(t, "m=audio"); /* the group line again, now naming both, before the m-lines */
    snprintf(v, sizeof(v), "%.*sa=group:BUNDLE a b\r\n%.*s", (int)(m - t), t, (int)(n - (size_t)(m - t)), m);
    const char *why;
    assert_int_equal(wsdp_parse(v, strlen(v), &f->offer, &why), 0);
    assert_true(f->offer.bundle);
    assert_true(f->offer.media[1].bundle_only);
    assert_int_equal(f->offer.media[1].port, 0);
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), 0);
    assert_int_equal(f->pub.media[1].port, 9);
    assert_string_equal(wsdp_media_codec(&f->pub.media[1])->name, "VP8");
}

/* ---- the written answer read back ---- */

static void assert_same_media(const struct wsdp_media *x, const struct wsdp_media *y)
{
    assert_int_equal(x->kind, y->kind);
    assert_string_equal(x->kind_name, y->kind_name);
    assert_string_equal(x->proto, y->proto);
    assert_string_equal(x->mid, y->mid);
    assert_int_equal(x->port, y->port);
    assert_string_equal(x->fmt_token, y->fmt_token);
    assert_int_equal(x->n_fmt_pts, y->n_fmt_pts);
    assert_memory_equal(x->fmt_pts, y->fmt_pts, x->n_fmt_pts);
    if (x->port == 0) return;
    assert_int_equal(x->dir, y->dir);
    assert_int_equal(x->rtcp_mux, y->rtcp_mux);
    assert_int_equal(x->rtcp_rsize, y->rtcp_rsize);
    assert_int_equal(x->n_codecs, 1);
    assert_int_equal(y->n_codecs, 1);
    const struct wsdp_codec *a = &x->codecs[0], *b = &y->codecs[0];
    assert_int_equal(a->pt, b->pt);
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->clock, b->clock);
    assert_int_equal(a->channels, b->channels);
    assert_string_equal(a->fmtp, b->fmtp);
    assert_true(a->fb_nack == b->fb_nack && a->fb_pli == b->fb_pli && a->fb_fir == b->fb_fir &&
                a->fb_remb == b->fb_remb && a->fb_twcc == b->fb_twcc);
    assert_int_equal(x->n_ext, y->n_ext);
    for (size_t i = 0; i < x->n_ext; i++) {
        assert_int_equal(x->ext[i].id, y->ext[i].id);
        assert_string_equal(x->ext[i].uri, y->ext[i].uri);
    }
    if (x->dir != WSDP_DIR_SENDONLY) return; /* a recvonly line announces no SSRC */
    assert_string_equal(x->msid_stream, y->msid_stream);
    assert_string_equal(x->msid_track, y->msid_track);
    assert_int_equal(x->n_ssrcs, y->n_ssrcs);
    for (size_t i = 0; i < x->n_ssrcs; i++) {
        assert_int_equal(x->ssrcs[i].ssrc, y->ssrcs[i].ssrc);
        assert_string_equal(x->ssrcs[i].cname, y->ssrcs[i].cname);
        assert_string_equal(x->ssrcs[i].msid_stream, y->ssrcs[i].msid_stream);
        assert_string_equal(x->ssrcs[i].msid_track, y->ssrcs[i].msid_track);
    }
}

static void round_trip(struct fx *f, const struct wsdp_session *ans)
{
    sbuf_clear(&f->out);
    assert_int_equal(wsdp_write(&f->out, ans, &local), 0);
    const char *why = NULL;
    if (wsdp_parse(f->out.data, f->out.len, &f->again, &why) != 0) fail_msg("written answer: %s", why);
    const struct wsdp_session *b = &f->again;
    assert_int_equal(b->sess_id, ans->sess_id);
    assert_int_equal(b->sess_version, ans->sess_version);
    assert_string_equal(b->ice_ufrag, ans->ice_ufrag);
    assert_string_equal(b->ice_pwd, ans->ice_pwd);
    assert_memory_equal(b->fingerprint, ans->fingerprint, 32);
    assert_int_equal(b->setup, WSDP_SETUP_PASSIVE);
    assert_true(b->ice_lite && b->bundle);
    assert_int_equal(b->n_media, ans->n_media);
    for (size_t i = 0; i < ans->n_media; i++) assert_same_media(&ans->media[i], &b->media[i]);
}

static void test_round_trip(void **state)
{
    struct fx *f = *state;
    publish_and_view(f, "chromium_publish.sdp");
    round_trip(f, &f->pub);
    round_trip(f, &f->answer);
    publish_and_view(f, "chromium_publish_h264.sdp");
    round_trip(f, &f->pub);
    round_trip(f, &f->answer);
    const char *why;
    parse_file(f, "chromium_publish_datachannel.sdp", &f->offer);
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), 0);
    round_trip(f, &f->pub);
}

/* wsdp_write refuses what it cannot write truthfully. */
static void test_write_refuses_inconsistent(void **state)
{
    struct fx *f = *state;
    publish_and_view(f, "chromium_publish.sdp");
    struct wsdp_session *a = &f->answer;
    a->media[1].n_codecs = 0; /* accepted but no codec */
    assert_int_equal(wsdp_write(&f->out, a, &local), -1);
    a->media[1].n_codecs = 1;
    strcpy(a->media[1].mid, "1\r\na=evil"); /* a line break inside a value */
    assert_int_equal(wsdp_write(&f->out, a, &local), -1);
    strcpy(a->media[1].mid, "1");
    struct wsdp_local l = local;
    l.fingerprint = NULL;
    assert_int_equal(wsdp_write(&f->out, a, &l), -1);
    a->n_media = WSDP_MAX_MEDIA + 1;
    assert_int_equal(wsdp_write(&f->out, a, &local), -1);
    a->n_media = 2;
    sbuf_clear(&f->out);
    assert_int_equal(wsdp_write(&f->out, a, &local), 0);
    /* an IPv6 first candidate: c= says IP6 */
    static const struct wsdp_candidate v6[] = {{.ip = "::1", .port = 5000}};
    l = local;
    l.candidates = v6;
    l.n_candidates = 1;
    sbuf_clear(&f->out);
    assert_int_equal(wsdp_write(&f->out, a, &l), 0);
    assert_non_null(strstr(f->out.data, "c=IN IP6 ::\r\n"));
    assert_non_null(strstr(f->out.data, "a=candidate:1 1 udp 2130706431 ::1 5000 typ host\r\n"));
}

/* Found by fuzz_webrtc_sdp: a TAB inside a kept value (here the fmtp) is
 * accepted by the parser, so the writer must write it too. */
static void test_tab_in_fmtp_is_written(void **state)
{
    struct fx *f = *state;
    char t[4096];
    size_t n = edit(t, sizeof(t), NULL, "a=fmtp:111 minptime=10;\tuseinbandfec=1\r\n");
    const char *why;
    assert_int_equal(wsdp_parse(t, n, &f->offer, &why), 0);
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), 0);
    assert_int_equal(wsdp_write(&f->out, &f->pub, &local), 0);
    assert_non_null(strstr(f->out.data, "a=fmtp:111 minptime=10;\tuseinbandfec=1\r\n"));
}

/* ---- simulcast (RFC 8853 with RFC 8851 rids) ---- */

static void test_parse_chromium_simulcast(void **state)
{
    struct fx *f = *state;
    parse_file(f, "chromium_publish_simulcast.sdp", &f->offer);
    assert_int_equal(f->offer.n_media, 2);
    const struct wsdp_media *au = &f->offer.media[0], *v = &f->offer.media[1];
    assert_int_equal(au->n_rids, 0);
    assert_false(au->has_rids);
    assert_true(v->has_rids);
    assert_int_equal(v->dir, WSDP_DIR_SENDONLY);
    assert_int_equal(v->n_rids, 3);
    assert_string_equal(v->rids[0], "q");
    assert_string_equal(v->rids[1], "h");
    assert_string_equal(v->rids[2], "f");
    assert_int_equal(v->n_ssrcs, 0); /* Chromium names no SSRC for simulcast: learnt from the rid extension */
    assert_int_equal(wsdp_media_ext_id(v, WSDP_EXT_RID), 10);
    assert_int_equal(wsdp_media_ext_id(v, WSDP_EXT_REPAIRED_RID), 11);
}

static void test_publish_answer_simulcast(void **state)
{
    struct fx *f = *state;
    parse_file(f, "chromium_publish_simulcast.sdp", &f->offer);
    const char *why = NULL;
    if (wsdp_answer_publish(&f->offer, &local, &f->pub, &why) != 0) fail_msg("%s", why);
    const struct wsdp_media *au = &f->pub.media[0], *v = &f->pub.media[1];
    assert_int_equal(au->n_rids, 0);
    assert_int_equal(v->dir, WSDP_DIR_RECVONLY);
    assert_int_equal(v->n_rids, 3);
    assert_string_equal(v->rids[2], "f");
    assert_int_equal(wsdp_media_ext_id(v, WSDP_EXT_RID), 10);
    assert_int_equal(wsdp_media_ext_id(v, WSDP_EXT_REPAIRED_RID), 11);
    assert_int_equal(wsdp_media_ext_id(v, WSDP_EXT_MID), 4);
    assert_int_equal(wsdp_write(&f->out, &f->pub, &local), 0);
    const char *t = f->out.data;
    assert_non_null(strstr(t, "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n"
                              "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n"));
    assert_non_null(strstr(t, "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f\r\n"));
    /* audio says nothing of simulcast */
    assert_true(strstr(t, "a=rid:") > strstr(t, "m=video"));
}

/* Without simulcast the rid extensions stay out of the answer, as before. */
static void test_publish_answer_no_simulcast_no_rid_ext(void **state)
{
    struct fx *f = *state;
    parse_file(f, "chromium_publish.sdp", &f->offer);
    const char *why = NULL;
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), 0);
    assert_int_equal(f->pub.media[1].n_rids, 0);
    assert_int_equal(wsdp_media_ext_id(&f->pub.media[1], WSDP_EXT_RID), 0);
    assert_int_equal(wsdp_write(&f->out, &f->pub, &local), 0);
    assert_null(strstr(f->out.data, "rid"));
    assert_null(strstr(f->out.data, "simulcast"));
}

/* A viewer receives one stream: the publisher's out_ssrc, no rid
 * extensions, no simulcast lines. */
static void test_view_answer_simulcast_publisher(void **state)
{
    struct fx *f = *state;
    publish_and_view(f, "chromium_publish_simulcast.sdp");
    const struct wsdp_media *vi = &f->answer.media[1];
    assert_int_equal(vi->dir, WSDP_DIR_SENDONLY);
    assert_int_equal(vi->n_ssrcs, 0); /* no out_ssrc chosen: nothing announced */
    f->pub.media[1].out_ssrc = 123456789u;
    const char *why = NULL;
    if (wsdp_answer_view(&f->view_offer, &f->pub, &local, &f->answer, &why) != 0) fail_msg("%s", why);
    vi = &f->answer.media[1];
    assert_int_equal(vi->n_ssrcs, 1);
    assert_int_equal(vi->ssrcs[0].ssrc, 123456789u);
    assert_int_equal(vi->n_rids, 0);
    assert_int_equal(wsdp_media_ext_id(vi, WSDP_EXT_RID), 0);
    assert_int_equal(wsdp_media_ext_id(vi, WSDP_EXT_REPAIRED_RID), 0);
    assert_int_equal(wsdp_media_ext_id(vi, WSDP_EXT_MID), 4);
    assert_int_equal(wsdp_write(&f->out, &f->answer, &local), 0);
    assert_non_null(strstr(f->out.data, "a=ssrc:123456789 cname:cascade-sfu\r\n"));
    assert_null(strstr(f->out.data, "rid"));
    assert_null(strstr(f->out.data, "simulcast"));
}

static const char sim_head[] = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE v\r\n"
                               "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
                               "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
                               "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                               "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n"
                               "a=setup:actpass\r\na=mid:v\r\na=sendonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n";

static int sim_parse(struct fx *f, const char *tail, const char **why)
{
    char t[4096];
    int n = snprintf(t, sizeof(t), "%s%s", sim_head, tail);
    assert_true(n > 0 && (size_t)n < sizeof(t));
    return wsdp_parse(t, (size_t)n, &f->offer, why);
}

/* The simulcast line decides which rids and in what order; alternatives
 * and pause marks (RFC 8853 §5.1); rids without a send line, recv rids,
 * duplicates and a fourth stream are left out; rid params are ignored. */
static void test_simulcast_parse_rules(void **state)
{
    struct fx *f = *state;
    const char *why = NULL;
    static const char ext[] = "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n";
    char tail[1024];
    snprintf(tail, sizeof(tail),
             "%sa=rid:lo send pt=96;max-width=320\r\na=rid:mid send\r\na=rid:hi send\r\na=rid:x send\r\n"
             "a=rid:in recv\r\na=simulcast:recv in send hi;~mid,lo;nodef;mid;lo;x\r\n",
             ext);
    if (sim_parse(f, tail, &why) != 0) fail_msg("%s", why);
    const struct wsdp_media *m = &f->offer.media[0];
    assert_int_equal(m->n_rids, 3);
    assert_string_equal(m->rids[0], "hi");
    assert_string_equal(m->rids[1], "mid");
    assert_string_equal(m->rids[2], "lo");
    /* a=rid without a=simulcast, or the other way round: no simulcast */
    snprintf(tail, sizeof(tail), "%sa=rid:a send\r\n", ext);
    assert_int_equal(sim_parse(f, tail, &why), 0);
    assert_true(f->offer.media[0].has_rids);
    assert_int_equal(f->offer.media[0].n_rids, 0);
    snprintf(tail, sizeof(tail), "%sa=simulcast:send a;b\r\n", ext);
    assert_int_equal(sim_parse(f, tail, &why), 0);
    assert_int_equal(f->offer.media[0].n_rids, 0);
    /* bad or over-long rid ids refuse the offer, as other over-long values */
    assert_int_equal(sim_parse(f, "a=rid:a.b send\r\n", &why), -1);
    assert_int_equal(sim_parse(f, "a=rid:abcdefghijklmnopq send\r\n", &why), -1);
    assert_string_equal(why, "a=rid id too long");
    assert_int_equal(sim_parse(f, "a=rid:abcdefghijklmnop send\r\na=simulcast:send abcdefghijklmnop\r\n", &why), 0);
    assert_string_equal(f->offer.media[0].rids[0], "abcdefghijklmnop");
}

/* Simulcast whose packets would not say their rid is declined: the video
 * is still taken, as one stream. */
static void test_simulcast_without_rid_ext_declined(void **state)
{
    struct fx *f = *state;
    const char *why = NULL;
    assert_int_equal(sim_parse(f, "a=rid:a send\r\na=rid:b send\r\na=simulcast:send a;b\r\n", &why), 0);
    assert_int_equal(f->offer.media[0].n_rids, 2);
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), 0);
    assert_int_equal(f->pub.media[0].port, 9);
    assert_int_equal(f->pub.media[0].n_rids, 0);
    assert_int_equal(wsdp_write(&f->out, &f->pub, &local), 0);
    assert_null(strstr(f->out.data, "simulcast"));
}

/* The writer refuses a rid that would break its line. */
static void test_write_refuses_bad_rid(void **state)
{
    struct fx *f = *state;
    parse_file(f, "chromium_publish_simulcast.sdp", &f->offer);
    const char *why = NULL;
    assert_int_equal(wsdp_answer_publish(&f->offer, &local, &f->pub, &why), 0);
    strcpy(f->pub.media[1].rids[1], "h;x");
    assert_int_equal(wsdp_write(&f->out, &f->pub, &local), -1);
    strcpy(f->pub.media[1].rids[1], "h");
    f->pub.media[1].n_rids = WSDP_MAX_RIDS + 1;
    assert_int_equal(wsdp_write(&f->out, &f->pub, &local), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_chromium_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_chromium_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_chromium_h264_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_answer_vp8_opus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_answer_h264, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_answer_h264_mode0_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_answer_rejects_datachannel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_answer_vp8_opus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_answer_h264_publisher, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_answer_h264_profiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_base_offer_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_attribute_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bundle_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refuses_inconsistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tab_in_fmtp_is_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_chromium_simulcast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_answer_simulcast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_answer_no_simulcast_no_rid_ext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_answer_simulcast_publisher, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simulcast_parse_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simulcast_without_rid_ext_declined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refuses_bad_rid, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
