/* webrtc_sdp.c — WebRTC offers in, answers out (see webrtc_sdp.h): a line parser that
 * copies what the SFU needs into fixed-size fields, the publish and view
 * answer decisions, and the answer writer.
 *
 * Everything is bounded: the text by WSDP_MAX_TEXT, each line by
 * WSDP_LINE_MAX, each kept value by its field (too long refuses the offer),
 * each list by its SDP_MAX_* (what does not fit is dropped, keeping first
 * what an answer can use). */
#include "media/webrtc_sdp.h"

#include <stdio.h>
#include <string.h>

#define REPAIR_MAX 8 /* FID repair SSRCs remembered per m-line while parsing */
#define RID_SEEN_MAX 8 /* a=rid send lines remembered per m-line while parsing */

/* ---- small text helpers over str_t ---- */

/* Splits off the next space-separated word of *rest (leading spaces skipped). */
static str_t next_word(str_t *rest)
{
    size_t i = 0;
    while (i < rest->len && rest->s[i] == ' ') i++;
    size_t start = i;
    while (i < rest->len && rest->s[i] != ' ') i++;
    str_t w = {rest->s + start, i - start};
    *rest = (str_t){rest->s + i, rest->len - i};
    return w;
}

/* Splits s at the first c: head before, *tail after (empty when no c). */
static str_t split_at(str_t s, char c, str_t *tail)
{
    const char *p = s.len ? memchr(s.s, c, s.len) : NULL;
    if (!p) {
        *tail = (str_t){s.s + s.len, 0};
        return s;
    }
    *tail = (str_t){p + 1, s.len - (size_t)(p - s.s) - 1};
    return (str_t){s.s, (size_t)(p - s.s)};
}

/* Copies a value into a capped field; false when it does not fit (the
 * offer is then refused rather than silently truncated). */
static bool copy_capped(char *dst, size_t cap, str_t v)
{
    if (v.len >= cap) return false;
    str_copy(dst, cap, v);
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "sha-256 AB:CD:…" (32 colon-separated hex bytes) into out. */
static bool parse_sha256(str_t v, uint8_t out[32])
{
    str_t hash = next_word(&v), hex = str_trim(v);
    if (!str_ieq_cstr(hash, "sha-256") || hex.len != 32 * 3 - 1) return false;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval(hex.s[i * 3]), lo = hexval(hex.s[i * 3 + 1]);
        if (hi < 0 || lo < 0 || (i < 31 && hex.s[i * 3 + 2] != ':')) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* ---- codecs ---- */

static bool codec_is(const struct wsdp_codec *c, const char *name) { return strcasecmp(c->name, name) == 0; }

/* Looks up key=value in an fmtp parameter list ("a=1;b=2", spaces allowed). */
static bool fmtp_param(const char *fmtp, const char *key, str_t *val)
{
    str_t rest = str_from_cstr(fmtp), tail;
    while (rest.len) {
        str_t item = str_trim(split_at(rest, ';', &tail)), v;
        str_t k = str_trim(split_at(item, '=', &v));
        if (str_ieq_cstr(k, key)) {
            *val = str_trim(v);
            return true;
        }
        rest = tail;
    }
    return false;
}

/* H.264 packetization-mode (RFC 6184 §8.1: absent means 0). */
static unsigned h264_mode(const struct wsdp_codec *c)
{
    str_t v;
    uint64_t m = 0;
    if (fmtp_param(c->fmtp, "packetization-mode", &v) && str_to_u64(v, 2, &m) != 0) return 99;
    return (unsigned)m;
}

/* H.264 profiles as a decoder sees them. profile-level-id spells one profile
 * several ways (RFC 6184 §8.1 with H.264 Annex A.2): Constrained Baseline is
 * 42 with constraint_set1, or 4D with constraint_set0, or 58 with set0 and
 * set1 — cameras and encoders write 42c0xx, browsers 42e0xx, and these must
 * match. The level is left out on purpose: a decoder of a higher level takes
 * a lower one, and the level is the sender's business. */
enum h264_profile {
    H264_PROFILE_UNKNOWN = -1,
    H264_PROFILE_CONSTRAINED_BASELINE,
    H264_PROFILE_BASELINE,
    H264_PROFILE_MAIN,
    H264_PROFILE_CONSTRAINED_HIGH,
    H264_PROFILE_HIGH,
    H264_PROFILE_PREDICTIVE_HIGH_444,
};

/* The profile of profile_idc idc with constraint flags cf (set0 is 0x80).
 * Reserved low bits set: unknown. */
static enum h264_profile h264_profile_of(unsigned idc, unsigned cf)
{
    bool set0 = cf & 0x80, set1 = cf & 0x40, set3 = cf & 0x10, set4 = cf & 0x08;
    switch (idc) {
    case 0x42: /* Baseline; with set1 its Constrained subset */
        if (cf & 0x0f) return H264_PROFILE_UNKNOWN;
        return set1 ? H264_PROFILE_CONSTRAINED_BASELINE : H264_PROFILE_BASELINE;
    case 0x4D: /* Main; with set0 it obeys Baseline's constraints too */
        if (cf & 0x0f) return H264_PROFILE_UNKNOWN;
        return set0 ? H264_PROFILE_CONSTRAINED_BASELINE : H264_PROFILE_MAIN;
    case 0x58: /* Extended with set0: Baseline; with set0 and set1: Constrained Baseline */
        if ((cf & 0x0f) || !set0) return H264_PROFILE_UNKNOWN;
        return set1 ? H264_PROFILE_CONSTRAINED_BASELINE : H264_PROFILE_BASELINE;
    case 0x64: /* High; set3 and set4 together: Constrained High */
        if (cf == 0) return H264_PROFILE_HIGH;
        return (cf == 0x0c || (set3 && set4 && !(cf & 0xe3))) ? H264_PROFILE_CONSTRAINED_HIGH : H264_PROFILE_UNKNOWN;
    case 0xF4:
        return cf == 0 ? H264_PROFILE_PREDICTIVE_HIGH_444 : H264_PROFILE_UNKNOWN;
    }
    return H264_PROFILE_UNKNOWN;
}

/* The profile of a codec's profile-level-id (absent: Baseline, RFC 6184
 * §8.1's default 420010). */
static enum h264_profile h264_profile(const struct wsdp_codec *c)
{
    str_t v;
    if (!fmtp_param(c->fmtp, "profile-level-id", &v)) return H264_PROFILE_BASELINE;
    if (v.len != 6) return H264_PROFILE_UNKNOWN;
    unsigned x = 0;
    for (size_t i = 0; i < 6; i++) {
        int h = hexval(v.s[i]);
        if (h < 0) return H264_PROFILE_UNKNOWN;
        x = x << 4 | (unsigned)h;
    }
    return h264_profile_of(x >> 16, (x >> 8) & 0xff);
}

/* A codec the forwarder can pass through (webrtc_sdp.h: Opus, VP8, H.264 pm=1). */
static bool codec_supported(const struct wsdp_codec *c, enum wsdp_kind kind)
{
    /* RFC 7587 §7: Opus is always "opus/48000/2" whatever is sent; some
     * stacks (GStreamer's webrtcbin, receiving) leave the channels out. */
    if (kind == WSDP_KIND_AUDIO) return codec_is(c, "opus") && c->clock == 48000 && c->channels <= 2;
    if (kind != WSDP_KIND_VIDEO || c->clock != 90000) return false;
    if (codec_is(c, "VP8")) return true;
    return codec_is(c, "H264") && h264_mode(c) == 1 && h264_profile(c) != H264_PROFILE_UNKNOWN;
}

/* Same stream format on both sides: what a viewer must decode is exactly
 * what the publisher sends. */
static bool codec_same(const struct wsdp_codec *a, const struct wsdp_codec *b)
{
    if (strcasecmp(a->name, b->name) != 0 || a->clock != b->clock) return false;
    if (codec_is(a, "opus")) return true; /* one format whatever the channel count says (above) */
    if ((a->channels ? a->channels : 1) != (b->channels ? b->channels : 1)) return false;
    if (codec_is(a, "H264")) return h264_mode(a) == h264_mode(b) && h264_profile(a) == h264_profile(b);
    return true;
}

static struct wsdp_codec *codec_by_pt(struct wsdp_media *m, unsigned pt)
{
    for (size_t i = 0; i < m->n_codecs; i++)
        if (m->codecs[i].pt == pt) return &m->codecs[i];
    return NULL;
}

static bool ext_known(const char *uri)
{
    return !strcmp(uri, WSDP_EXT_MID) || !strcmp(uri, WSDP_EXT_ABS_SEND_TIME) || !strcmp(uri, WSDP_EXT_TWCC);
}
static bool ext_rid(const char *uri) { return !strcmp(uri, WSDP_EXT_RID) || !strcmp(uri, WSDP_EXT_REPAIRED_RID); }

/* RFC 8851 §10: rid-id = 1*(alpha-numeric / "-" / "_"). */
static bool rid_token(str_t v)
{
    if (!v.len) return false;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* ---- parsing ---- */

struct parse {
    struct wsdp_session *s;
    struct wsdp_media *m;         /* current m-line, NULL at session level */
    bool m_ufrag, m_pwd, m_fp, m_setup; /* taken from a media level already (the first m-line having it wins) */
    bool fp_seen_other;          /* a fingerprint with another hash */
    bool has_bundle;
    char bundle[WSDP_LINE_MAX];   /* the first BUNDLE group's mids */
    uint32_t repair[REPAIR_MAX]; /* FID repair SSRCs of the current m-line */
    size_t n_repair;
    char rid_send[RID_SEEN_MAX][WSDP_RID_MAX]; /* a=rid:<id> send of the current m-line */
    size_t n_rid_send;
    char sim_send[WSDP_LINE_MAX]; /* its a=simulcast send list, "" when none */
    bool fb_all[WSDP_MAX_MEDIA][5]; /* a=rtcp-fb:* per m-line, applied at the end */
};

static bool is_repair(const struct parse *p, uint32_t ssrc)
{
    for (size_t i = 0; i < p->n_repair; i++)
        if (p->repair[i] == ssrc) return true;
    return false;
}

static bool rid_sent(const struct parse *p, str_t id)
{
    for (size_t i = 0; i < p->n_rid_send; i++)
        if (str_eq_cstr(id, p->rid_send[i])) return true;
    return false;
}

/* The simulcast streams of the m-line: each ';'-separated stream of the
 * send list by its first alternative (RFC 8853 §5.1: the others are
 * fallbacks; '~' marks it paused, still a layer), kept when an a=rid send
 * line defines it, not twice, at most WSDP_MAX_RIDS. */
static void finish_rids(struct parse *p, struct wsdp_media *m)
{
    str_t rest = str_from_cstr(p->sim_send), tail;
    while (rest.len && m->n_rids < WSDP_MAX_RIDS) {
        str_t stream = split_at(rest, ';', &tail), more;
        str_t id = str_trim(split_at(stream, ',', &more));
        if (id.len && id.s[0] == '~') id = (str_t){id.s + 1, id.len - 1};
        bool dup = false;
        for (size_t i = 0; i < m->n_rids; i++) dup |= str_eq_cstr(id, m->rids[i]);
        if (!dup && rid_sent(p, id)) str_copy(m->rids[m->n_rids++], WSDP_RID_MAX, id);
        rest = tail;
    }
    p->n_rid_send = 0;
    p->sim_send[0] = '\0';
}

/* Drops repair SSRCs that were listed before their a=ssrc-group line and
 * settles the simulcast streams. */
static void finish_media(struct parse *p)
{
    struct wsdp_media *m = p->m;
    if (!m) return;
    size_t k = 0;
    for (size_t i = 0; i < m->n_ssrcs; i++)
        if (!is_repair(p, m->ssrcs[i].ssrc)) m->ssrcs[k++] = m->ssrcs[i];
    m->n_ssrcs = k;
    p->n_repair = 0;
    finish_rids(p, m);
}

/* a=rid:<id> <send|recv> [params] (RFC 8851 §10); the restrictions are not
 * used: the answer takes one codec for every layer. */
static int attr_rid(struct parse *p, str_t v, const char **why)
{
    str_t id = next_word(&v), dir = next_word(&v);
    if (!rid_token(id) || !dir.len) return *why = "bad a=rid", -1;
    if (id.len >= WSDP_RID_MAX) return *why = "a=rid id too long", -1;
    if (!str_eq_cstr(dir, "send") || rid_sent(p, id) || p->n_rid_send >= RID_SEEN_MAX) return 0;
    str_copy(p->rid_send[p->n_rid_send++], WSDP_RID_MAX, id);
    return 0;
}

/* a=simulcast: "send <list>" and/or "recv <list>" in either order (RFC
 * 8853 §5.1); only the send list matters to a publisher's offer. */
static void attr_simulcast(struct parse *p, str_t v)
{
    for (str_t dir = next_word(&v), list = next_word(&v); dir.len; dir = next_word(&v), list = next_word(&v))
        if (str_eq_cstr(dir, "send")) str_copy(p->sim_send, sizeof(p->sim_send), list); /* fits: within a line */
}

static int parse_m_line(struct parse *p, str_t v, const char **why)
{
    struct wsdp_session *s = p->s;
    finish_media(p);
    if (s->n_media >= WSDP_MAX_MEDIA) return *why = "too many m-lines", -1;
    struct wsdp_media *m = &s->media[s->n_media++];
    memset(m, 0, sizeof(*m));
    p->m = m;
    str_t kind = next_word(&v), port = next_word(&v), proto = next_word(&v), fmts = str_trim(v), tail;
    uint64_t n;
    port = split_at(port, '/', &tail); /* port/count: the count does not matter to bundled media */
    if (!kind.len || !proto.len || !fmts.len || str_to_u64(port, 65535, &n) != 0) return *why = "bad m-line", -1;
    if (!copy_capped(m->kind_name, sizeof(m->kind_name), kind) || !copy_capped(m->proto, sizeof(m->proto), proto))
        return *why = "m-line value too long", -1;
    m->port = (uint16_t)n;
    m->kind = str_eq_cstr(kind, "audio") ? WSDP_KIND_AUDIO : str_eq_cstr(kind, "video") ? WSDP_KIND_VIDEO : WSDP_KIND_OTHER;
    m->dir = WSDP_DIR_SENDRECV; /* RFC 8866 §6.7: the default */
    if (!memmem(proto.s, proto.len, "RTP", 3)) {
        /* data channels: "webrtc-datachannel", not payload types */
        if (!copy_capped(m->fmt_token, sizeof(m->fmt_token), fmts)) return *why = "m-line value too long", -1;
        return 0;
    }
    while (fmts.len) {
        str_t f = next_word(&fmts);
        if (!f.len) break;
        if (str_to_u64(f, 127, &n) != 0) return *why = "bad m-line payload type", -1;
        if (m->n_fmt_pts < WSDP_MAX_CODECS) m->fmt_pts[m->n_fmt_pts++] = (uint8_t)n;
    }
    return 0;
}

/* Keeps a new codec; when the list is full a codec the SFU can use takes
 * the place of the last one it cannot (Chromium offers 30+ video types). */
static struct wsdp_codec *codec_slot(struct wsdp_media *m, const struct wsdp_codec *c)
{
    if (m->n_codecs < WSDP_MAX_CODECS) return &m->codecs[m->n_codecs++];
    if (!codec_supported(c, m->kind)) return NULL;
    for (size_t i = m->n_codecs; i-- > 0;) {
        if (codec_supported(&m->codecs[i], m->kind)) continue;
        memmove(&m->codecs[i], &m->codecs[i + 1], (m->n_codecs - i - 1) * sizeof(m->codecs[0]));
        return &m->codecs[m->n_codecs - 1];
    }
    return NULL;
}

static int attr_rtpmap(struct wsdp_media *m, str_t v, const char **why)
{
    uint64_t pt, clock, ch = 0;
    str_t pts = next_word(&v), enc = str_trim(v), rest, rest2;
    str_t name = split_at(enc, '/', &rest);
    str_t clk = split_at(rest, '/', &rest2);
    if (str_to_u64(pts, 127, &pt) != 0 || !name.len || str_to_u64(clk, UINT32_MAX, &clock) != 0 ||
        (rest2.len && str_to_u64(rest2, 255, &ch) != 0))
        return *why = "bad a=rtpmap", -1;
    if (codec_by_pt(m, (unsigned)pt)) return 0; /* a second rtpmap for a type: the first stands */
    struct wsdp_codec c = {.pt = (uint8_t)pt, .clock = (uint32_t)clock, .channels = (uint8_t)ch};
    if (!copy_capped(c.name, sizeof(c.name), name)) return *why = "codec name too long", -1;
    struct wsdp_codec *slot = codec_slot(m, &c);
    if (slot) *slot = c;
    return 0;
}

static int attr_fmtp(struct wsdp_media *m, str_t v, const char **why)
{
    uint64_t pt;
    str_t pts = next_word(&v), params = str_trim(v), a;
    if (str_to_u64(pts, 127, &pt) != 0) return *why = "bad a=fmtp", -1;
    struct wsdp_codec *c = codec_by_pt(m, (unsigned)pt);
    if (!c) return 0;
    if (!copy_capped(c->fmtp, sizeof(c->fmtp), params)) return *why = "a=fmtp too long", -1;
    uint64_t apt;
    if (codec_is(c, "rtx") && fmtp_param(c->fmtp, "apt", &a) && str_to_u64(a, 127, &apt) == 0) c->rtx_for = (uint8_t)apt;
    return 0;
}

/* rtcp-fb kinds in the order of struct parse's fb_all. */
static int fb_kind(str_t v)
{
    str_t t = next_word(&v), param = str_trim(v);
    if (str_eq_cstr(t, "nack")) return param.len == 0 ? 0 : str_eq_cstr(param, "pli") ? 1 : -1;
    if (str_eq_cstr(t, "ccm") && str_eq_cstr(param, "fir")) return 2;
    if (str_eq_cstr(t, "goog-remb")) return 3;
    if (str_eq_cstr(t, "transport-cc")) return 4;
    return -1;
}

static void fb_set(struct wsdp_codec *c, int k)
{
    switch (k) {
    case 0: c->fb_nack = true; break;
    case 1: c->fb_pli = true; break;
    case 2: c->fb_fir = true; break;
    case 3: c->fb_remb = true; break;
    case 4: c->fb_twcc = true; break;
    default: break;
    }
}

static void attr_rtcp_fb(struct parse *p, str_t v)
{
    str_t pts = next_word(&v);
    int k = fb_kind(v);
    uint64_t pt;
    if (k < 0) return;
    if (str_eq_cstr(pts, "*")) {
        p->fb_all[p->m - p->s->media][k] = true;
        return;
    }
    struct wsdp_codec *c = str_to_u64(pts, 127, &pt) == 0 ? codec_by_pt(p->m, (unsigned)pt) : NULL;
    if (c) fb_set(c, k);
}

static int attr_extmap(struct wsdp_media *m, str_t v, const char **why)
{
    str_t idw = next_word(&v), uri = next_word(&v), dir;
    uint64_t id;
    if (str_to_u64(split_at(idw, '/', &dir), 255, &id) != 0 || id == 0 || !uri.len) return *why = "bad a=extmap", -1;
    struct wsdp_extmap e = {.id = (uint8_t)id};
    if (!copy_capped(e.uri, sizeof(e.uri), uri)) return *why = "a=extmap URI too long", -1;
    if (m->n_ext < WSDP_MAX_EXTMAP) {
        m->ext[m->n_ext++] = e;
    } else if (ext_known(e.uri) || ext_rid(e.uri)) {
        /* full: an extension we use replaces the last one we do not */
        for (size_t i = m->n_ext; i-- > 0;) {
            if (ext_known(m->ext[i].uri) || ext_rid(m->ext[i].uri)) continue;
            memmove(&m->ext[i], &m->ext[i + 1], (m->n_ext - i - 1) * sizeof(m->ext[0]));
            m->ext[m->n_ext - 1] = e;
            break;
        }
    }
    return 0;
}

static struct wsdp_ssrc *ssrc_entry(struct wsdp_media *m, uint32_t id)
{
    for (size_t i = 0; i < m->n_ssrcs; i++)
        if (m->ssrcs[i].ssrc == id) return &m->ssrcs[i];
    if (m->n_ssrcs >= WSDP_MAX_SSRCS) return NULL;
    struct wsdp_ssrc *e = &m->ssrcs[m->n_ssrcs++];
    memset(e, 0, sizeof(*e));
    e->ssrc = id;
    return e;
}

static int msid_pair(str_t v, char *stream, char *track)
{
    str_t st = next_word(&v), tr = next_word(&v);
    if (!copy_capped(stream, WSDP_TOKEN_MAX, st) || !copy_capped(track, WSDP_TOKEN_MAX, tr)) return -1;
    return 0;
}

static int attr_ssrc(struct parse *p, str_t v, const char **why)
{
    uint64_t id;
    str_t ids = next_word(&v), rest = str_trim(v), val;
    if (str_to_u64(ids, UINT32_MAX, &id) != 0) return *why = "bad a=ssrc", -1;
    if (is_repair(p, (uint32_t)id)) return 0;
    struct wsdp_ssrc *e = ssrc_entry(p->m, (uint32_t)id);
    if (!e) return 0;
    str_t name = split_at(rest, ':', &val);
    if (str_eq_cstr(name, "cname") && !copy_capped(e->cname, sizeof(e->cname), val))
        return *why = "a=ssrc cname too long", -1;
    if (str_eq_cstr(name, "msid") && msid_pair(val, e->msid_stream, e->msid_track) != 0)
        return *why = "a=ssrc msid too long", -1;
    return 0;
}

static int attr_ssrc_group(struct parse *p, str_t v, const char **why)
{
    str_t sem = next_word(&v), a = next_word(&v), b = next_word(&v);
    uint64_t media, repair;
    if (!str_eq_cstr(sem, "FID")) return 0; /* SIM, FEC-FR: not used */
    if (str_to_u64(a, UINT32_MAX, &media) != 0 || str_to_u64(b, UINT32_MAX, &repair) != 0)
        return *why = "bad a=ssrc-group", -1;
    if (!p->m->rtx_ssrc) p->m->rtx_ssrc = (uint32_t)repair;
    if (p->n_repair < REPAIR_MAX) p->repair[p->n_repair++] = (uint32_t)repair;
    return 0;
}

/* ICE and DTLS attributes: at session level, or at media level where the
 * first m-line carrying one wins over the session value (with BUNDLE all
 * m-lines carry the same). */
static int attr_transport(struct parse *p, str_t name, str_t v, const char **why, bool *handled)
{
    struct wsdp_session *s = p->s;
    bool media = p->m != NULL;
    *handled = true;
    if (str_eq_cstr(name, "ice-ufrag")) {
        if (media && p->m_ufrag) return 0;
        if (!copy_capped(s->ice_ufrag, sizeof(s->ice_ufrag), v) || !v.len) return *why = "bad ice-ufrag", -1;
        p->m_ufrag = media;
    } else if (str_eq_cstr(name, "ice-pwd")) {
        if (media && p->m_pwd) return 0;
        if (!copy_capped(s->ice_pwd, sizeof(s->ice_pwd), v) || !v.len) return *why = "bad ice-pwd", -1;
        p->m_pwd = media;
    } else if (str_eq_cstr(name, "ice-lite")) {
        s->ice_lite = true;
    } else if (str_eq_cstr(name, "fingerprint")) {
        uint8_t fp[32];
        if (!parse_sha256(v, fp)) {
            p->fp_seen_other = true; /* sha-1 or another hash: not enough alone */
            return 0;
        }
        if (media && p->m_fp) return 0;
        memcpy(s->fingerprint, fp, 32);
        s->has_fingerprint = true;
        p->m_fp = media;
    } else if (str_eq_cstr(name, "setup")) {
        if (media && p->m_setup) return 0;
        s->setup = str_eq_cstr(v, "actpass")   ? WSDP_SETUP_ACTPASS
                   : str_eq_cstr(v, "active")  ? WSDP_SETUP_ACTIVE
                   : str_eq_cstr(v, "passive") ? WSDP_SETUP_PASSIVE
                                               : WSDP_SETUP_NONE;
        p->m_setup = media;
    } else {
        *handled = false;
    }
    return 0;
}

static int parse_attr(struct parse *p, str_t line, const char **why)
{
    str_t v, name = split_at(line, ':', &v);
    bool handled;
    if (attr_transport(p, name, v, why, &handled) != 0) return -1;
    if (handled) return 0;
    if (!p->m) {
        if (str_eq_cstr(name, "group") && !p->has_bundle) {
            str_t sem = next_word(&v);
            if (str_eq_cstr(sem, "BUNDLE")) {
                p->has_bundle = true;
                str_copy(p->bundle, sizeof(p->bundle), v); /* fits: a line is at most WSDP_LINE_MAX */
            }
        }
        return 0;
    }
    struct wsdp_media *m = p->m;
    if (str_eq_cstr(name, "mid")) {
        /* a token (RFC 5888): it is written space-separated in the BUNDLE group */
        if (!copy_capped(m->mid, sizeof(m->mid), v) || !v.len || memchr(v.s, ' ', v.len) || memchr(v.s, '\t', v.len))
            return *why = "bad a=mid", -1;
    } else if (str_eq_cstr(name, "sendrecv")) {
        m->dir = WSDP_DIR_SENDRECV;
    } else if (str_eq_cstr(name, "sendonly")) {
        m->dir = WSDP_DIR_SENDONLY;
    } else if (str_eq_cstr(name, "recvonly")) {
        m->dir = WSDP_DIR_RECVONLY;
    } else if (str_eq_cstr(name, "inactive")) {
        m->dir = WSDP_DIR_INACTIVE;
    } else if (str_eq_cstr(name, "rtcp-mux")) {
        m->rtcp_mux = true;
    } else if (str_eq_cstr(name, "rtcp-rsize")) {
        m->rtcp_rsize = true;
    } else if (str_eq_cstr(name, "bundle-only")) {
        m->bundle_only = true;
    } else if (str_eq_cstr(name, "rtpmap")) {
        return attr_rtpmap(m, v, why);
    } else if (str_eq_cstr(name, "fmtp")) {
        return attr_fmtp(m, v, why);
    } else if (str_eq_cstr(name, "rtcp-fb")) {
        attr_rtcp_fb(p, v);
    } else if (str_eq_cstr(name, "extmap")) {
        return attr_extmap(m, v, why);
    } else if (str_eq_cstr(name, "ssrc")) {
        return attr_ssrc(p, v, why);
    } else if (str_eq_cstr(name, "ssrc-group")) {
        return attr_ssrc_group(p, v, why);
    } else if (str_eq_cstr(name, "msid")) {
        if (msid_pair(v, m->msid_stream, m->msid_track) != 0) return *why = "a=msid too long", -1;
    } else if (str_eq_cstr(name, "rid")) {
        m->has_rids = true;
        return attr_rid(p, v, why);
    } else if (str_eq_cstr(name, "simulcast")) {
        m->has_rids = true;
        attr_simulcast(p, v);
    }
    return 0;
}

static bool in_bundle(const char *group, const char *mid)
{
    str_t rest = str_from_cstr(group);
    for (str_t w = next_word(&rest); w.len; w = next_word(&rest))
        if (str_eq_cstr(w, mid)) return true;
    return false;
}

/* After the last line: rtcp-fb wildcards, BUNDLE membership, required values. */
static int parse_finish(struct parse *p, const char **why)
{
    struct wsdp_session *s = p->s;
    finish_media(p);
    s->bundle = p->has_bundle;
    for (size_t i = 0; i < s->n_media; i++) {
        struct wsdp_media *m = &s->media[i];
        for (int k = 0; k < 5; k++)
            if (p->fb_all[i][k])
                for (size_t c = 0; c < m->n_codecs; c++) fb_set(&m->codecs[c], k);
        for (size_t j = 0; j < i; j++)
            if (m->mid[0] && !strcmp(m->mid, s->media[j].mid)) return *why = "duplicate a=mid", -1;
        if ((m->port != 0 || m->bundle_only) && !(m->mid[0] && in_bundle(p->bundle, m->mid))) s->bundle = false;
    }
    if (!s->ice_ufrag[0] || !s->ice_pwd[0]) return *why = "no ice-ufrag/ice-pwd", -1;
    if (!s->has_fingerprint)
        return *why = p->fp_seen_other ? "no sha-256 fingerprint (other hashes are not accepted)" : "no fingerprint", -1;
    return 0;
}

/* Bytes an SDP line may hold: printable ASCII, TAB and UTF-8 (s=, i=). */
static bool line_bytes_ok(str_t l)
{
    for (size_t i = 0; i < l.len; i++) {
        unsigned char c = (unsigned char)l.s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

int wsdp_parse(const char *text, size_t len, struct wsdp_session *out, const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    if (!text || len == 0) return *why = "empty SDP", -1;
    if (len > WSDP_MAX_TEXT) return *why = "SDP too long", -1;
    static const struct parse zero;
    struct parse p = zero;
    memset(out, 0, sizeof(*out));
    p.s = out;
    size_t pos = 0, nline = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        str_t l = {text + pos, end - pos};
        pos = end + 1;
        if (l.len && l.s[l.len - 1] == '\r') l.len--;
        if (l.len > WSDP_LINE_MAX) return *why = "SDP line too long", -1;
        if (!line_bytes_ok(l)) return *why = "not SDP (control bytes)", -1;
        if (l.len == 0) continue; /* blank lines (a trailing one is common) */
        if (nline++ == 0 && !str_eq_cstr(l, "v=0")) return *why = "not SDP (no v=0 first)", -1;
        if (l.len < 2 || l.s[1] != '=' || l.s[0] < 'a' || l.s[0] > 'z') return *why = "not SDP (malformed line)", -1;
        str_t v = {l.s + 2, l.len - 2};
        int rc = 0;
        if (l.s[0] == 'm') {
            rc = parse_m_line(&p, v, why);
        } else if (l.s[0] == 'a') {
            rc = parse_attr(&p, v, why);
        } else if (l.s[0] == 'o') {
            str_t user = next_word(&v), id = next_word(&v), ver = next_word(&v);
            if (!user.len || str_to_u64(id, UINT64_MAX, &out->sess_id) != 0 ||
                str_to_u64(ver, UINT64_MAX, &out->sess_version) != 0)
                return *why = "bad o= line", -1;
        }
        if (rc != 0) return -1;
    }
    if (nline == 0) return *why = "empty SDP", -1;
    return parse_finish(&p, why);
}

/* ---- answers ---- */

/* The answer's session part: our side (see webrtc_sdp.h). */
static int answer_session(struct wsdp_session *a, const struct wsdp_session *offer, const struct wsdp_local *local,
                          const char **why)
{
    memset(a, 0, sizeof(*a));
    if (!offer->bundle) return *why = "offer without BUNDLE of all its m-lines", -1;
    if (offer->setup != WSDP_SETUP_ACTPASS && offer->setup != WSDP_SETUP_ACTIVE)
        return *why = "a=setup must be actpass or active (we are the DTLS server)", -1;
    if (!local || !local->ice_ufrag || !local->ice_pwd || !local->fingerprint)
        return *why = "local ICE/DTLS parameters missing", -1;
    if (!copy_capped(a->ice_ufrag, sizeof(a->ice_ufrag), str_from_cstr(local->ice_ufrag)) ||
        !copy_capped(a->ice_pwd, sizeof(a->ice_pwd), str_from_cstr(local->ice_pwd)) ||
        !parse_sha256(str_from_cstr(local->fingerprint), a->fingerprint))
        return *why = "local ICE/DTLS parameters invalid", -1;
    a->has_fingerprint = true;
    a->sess_id = local->sess_id;
    a->sess_version = 2;
    a->ice_lite = true;
    a->setup = WSDP_SETUP_PASSIVE;
    a->bundle = true;
    a->n_media = offer->n_media;
    return 0;
}

/* Common part of an answer m-line; rejected (port 0) until accepted. */
static void answer_media_base(struct wsdp_media *am, const struct wsdp_media *om)
{
    memset(am, 0, sizeof(*am));
    am->kind = om->kind;
    memcpy(am->kind_name, om->kind_name, sizeof(am->kind_name));
    memcpy(am->proto, om->proto, sizeof(am->proto));
    memcpy(am->mid, om->mid, sizeof(am->mid));
    memcpy(am->fmt_pts, om->fmt_pts, sizeof(am->fmt_pts));
    am->n_fmt_pts = om->n_fmt_pts;
    memcpy(am->fmt_token, om->fmt_token, sizeof(am->fmt_token));
    am->dir = WSDP_DIR_INACTIVE;
}

/* An offered m-line we could take at all: live RTP audio/video, bundled. */
static bool media_usable(const struct wsdp_media *om)
{
    return om->kind != WSDP_KIND_OTHER && (om->port != 0 || om->bundle_only) && om->mid[0] &&
           strstr(om->proto, "RTP/SAVPF") != NULL;
}

/* Accepts am with one codec from the offer (feedback limited to what we
 * act on: transport-cc stays when offered — the SFU answers it for a
 * publisher and reads it from a viewer, twcc.h). */
static void answer_accept(struct wsdp_media *am, const struct wsdp_media *om, const struct wsdp_codec *c,
                          enum wsdp_dir dir)
{
    am->port = 9;
    am->dir = dir;
    am->rtcp_mux = true;
    am->rtcp_rsize = om->rtcp_rsize;
    am->codecs[0] = *c;
    am->codecs[0].rtx_for = 0;
    am->n_codecs = 1;
    am->fmt_pts[0] = c->pt;
    am->n_fmt_pts = 1;
}

/* The first supported codec in the offer's preference order (the m-line
 * order; rtpmap order for types past WSDP_MAX_CODECS on the m-line). */
static const struct wsdp_codec *first_supported(const struct wsdp_media *om)
{
    for (size_t i = 0; i < om->n_fmt_pts; i++)
        for (size_t k = 0; k < om->n_codecs; k++)
            if (om->codecs[k].pt == om->fmt_pts[i] && codec_supported(&om->codecs[k], om->kind)) return &om->codecs[k];
    for (size_t k = 0; k < om->n_codecs; k++)
        if (codec_supported(&om->codecs[k], om->kind)) return &om->codecs[k];
    return NULL;
}

/* Takes the offer's simulcast streams on a video m-line whose packets say
 * their rid (see wsdp_answer_publish). */
static void answer_simulcast(struct wsdp_media *am, const struct wsdp_media *om)
{
    if (!om->n_rids || om->kind != WSDP_KIND_VIDEO || !wsdp_media_ext_id(om, WSDP_EXT_RID)) return;
    for (size_t e = 0; e < om->n_ext && am->n_ext < WSDP_MAX_EXTMAP; e++)
        if (ext_rid(om->ext[e].uri)) am->ext[am->n_ext++] = om->ext[e];
    memcpy(am->rids, om->rids, sizeof(am->rids));
    am->n_rids = om->n_rids;
}

int wsdp_answer_publish(const struct wsdp_session *offer, const struct wsdp_local *local, struct wsdp_session *answer,
                       const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    if (answer_session(answer, offer, local, why) != 0) return -1;
    size_t accepted = 0;
    for (size_t i = 0; i < offer->n_media; i++) {
        const struct wsdp_media *om = &offer->media[i];
        struct wsdp_media *am = &answer->media[i];
        answer_media_base(am, om);
        if (!media_usable(om) || (om->dir != WSDP_DIR_SENDONLY && om->dir != WSDP_DIR_SENDRECV)) continue;
        if (!om->rtcp_mux) return *why = "offer without a=rtcp-mux", -1;
        const struct wsdp_codec *c = first_supported(om);
        if (!c) continue;
        answer_accept(am, om, c, WSDP_DIR_RECVONLY);
        for (size_t e = 0; e < om->n_ext; e++)
            if (ext_known(om->ext[e].uri)) am->ext[am->n_ext++] = om->ext[e];
        memcpy(am->ssrcs, om->ssrcs, sizeof(am->ssrcs));
        am->n_ssrcs = om->n_ssrcs;
        am->rtx_ssrc = om->rtx_ssrc;
        memcpy(am->msid_stream, om->msid_stream, sizeof(am->msid_stream));
        memcpy(am->msid_track, om->msid_track, sizeof(am->msid_track));
        if (!am->msid_stream[0] && om->n_ssrcs) {
            memcpy(am->msid_stream, om->ssrcs[0].msid_stream, sizeof(am->msid_stream));
            memcpy(am->msid_track, om->ssrcs[0].msid_track, sizeof(am->msid_track));
        }
        am->has_rids = om->has_rids;
        answer_simulcast(am, om);
        accepted++;
    }
    if (!accepted) return *why = "no audio or video we can receive (Opus, VP8, H.264 packetization-mode=1)", -1;
    return 0;
}

static const struct wsdp_codec *viewer_codec(const struct wsdp_media *vm, const struct wsdp_codec *pc)
{
    for (size_t k = 0; k < vm->n_codecs; k++)
        if (codec_same(&vm->codecs[k], pc)) return &vm->codecs[k];
    return NULL;
}

/* What we announce on a sendonly m-line: the publisher's SSRC (the
 * forwarder keeps it; a simulcast one goes out as out_ssrc) and msid, with
 * our CNAME. */
static void view_sender(struct wsdp_media *am, const struct wsdp_media *pm, const struct wsdp_local *local)
{
    if (pm->msid_stream[0]) {
        memcpy(am->msid_stream, pm->msid_stream, sizeof(am->msid_stream));
        memcpy(am->msid_track, pm->msid_track, sizeof(am->msid_track));
    } else {
        /* a publisher without msid: still name a stream, so the viewer's
         * ontrack gets one for audio and video together */
        snprintf(am->msid_stream, sizeof(am->msid_stream), "cascade");
        snprintf(am->msid_track, sizeof(am->msid_track), "%s-%.40s",
                 pm->kind == WSDP_KIND_AUDIO ? "audio" : "video", pm->mid);
    }
    uint32_t ssrc = pm->n_rids ? pm->out_ssrc : pm->n_ssrcs ? pm->ssrcs[0].ssrc : 0;
    if (!ssrc) return;
    struct wsdp_ssrc *s = &am->ssrcs[0];
    s->ssrc = ssrc;
    str_copy(s->cname, sizeof(s->cname), str_from_cstr(local->cname ? local->cname : "cascade"));
    memcpy(s->msid_stream, am->msid_stream, sizeof(s->msid_stream));
    memcpy(s->msid_track, am->msid_track, sizeof(s->msid_track));
    am->n_ssrcs = 1;
}

int wsdp_answer_view(const struct wsdp_session *offer, const struct wsdp_session *pub, const struct wsdp_local *local,
                    struct wsdp_session *answer, const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    if (!pub) return *why = "no publisher", -1;
    if (answer_session(answer, offer, local, why) != 0) return -1;
    bool used[WSDP_MAX_MEDIA] = {false};
    size_t matched = 0;
    size_t n_pub = pub->n_media < WSDP_MAX_MEDIA ? pub->n_media : WSDP_MAX_MEDIA;
    for (size_t i = 0; i < offer->n_media; i++) {
        const struct wsdp_media *vm = &offer->media[i];
        struct wsdp_media *am = &answer->media[i];
        answer_media_base(am, vm);
        if (!media_usable(vm)) continue;
        if (!vm->rtcp_mux) return *why = "offer without a=rtcp-mux", -1;
        const struct wsdp_codec *vc = NULL;
        const struct wsdp_media *pm = NULL;
        if (vm->dir == WSDP_DIR_RECVONLY || vm->dir == WSDP_DIR_SENDRECV) {
            for (size_t j = 0; j < n_pub && !vc; j++) {
                const struct wsdp_codec *pc = wsdp_media_codec(&pub->media[j]);
                if (used[j] || pub->media[j].kind != vm->kind || !pc) continue;
                vc = viewer_codec(vm, pc);
                if (vc) {
                    used[j] = true;
                    pm = &pub->media[j];
                }
            }
        }
        if (!pm) {
            /* nothing to send here: inactive keeps the viewer's transceiver
             * (an accepted m-line still names one codec) */
            const struct wsdp_codec *c = first_supported(vm);
            if (c) answer_accept(am, vm, c, WSDP_DIR_INACTIVE);
            continue;
        }
        answer_accept(am, vm, vc, WSDP_DIR_SENDONLY);
        for (size_t e = 0; e < pm->n_ext; e++) {
            uint8_t id = wsdp_media_ext_id(vm, pm->ext[e].uri);
            if (!id || am->n_ext >= WSDP_MAX_EXTMAP || ext_rid(pm->ext[e].uri)) continue;
            am->ext[am->n_ext] = pm->ext[e];
            am->ext[am->n_ext++].id = id;
        }
        view_sender(am, pm, local);
        matched++;
    }
    if (!matched) return *why = "the viewer's offer has nothing the publisher sends", -1;
    return 0;
}

/* ---- writing ---- */

static const char *dir_name(enum wsdp_dir d)
{
    switch (d) {
    case WSDP_DIR_SENDRECV: return "sendrecv";
    case WSDP_DIR_SENDONLY: return "sendonly";
    case WSDP_DIR_RECVONLY: return "recvonly";
    default: return "inactive";
    }
}

/* A value going into a line: no line breaks or other control bytes (the
 * struct may come from elsewhere than wsdp_parse); TAB, as wsdp_parse lets
 * it through. */
static bool safe(const char *v, bool may_be_empty)
{
    if (!v || (!may_be_empty && !v[0])) return false;
    for (; *v; v++)
        if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f) return false;
    return true;
}

static bool media_consistent(const struct wsdp_media *m)
{
    if (!safe(m->kind_name, false) || !safe(m->proto, false) || !safe(m->mid, true) || !safe(m->fmt_token, true))
        return false;
    if (m->n_fmt_pts > WSDP_MAX_CODECS || m->n_ext > WSDP_MAX_EXTMAP || m->n_ssrcs > WSDP_MAX_SSRCS) return false;
    if (m->port == 0) return m->n_fmt_pts > 0 || m->fmt_token[0];
    if (m->n_codecs != 1 || !m->mid[0] || m->codecs[0].pt > 127) return false;
    const struct wsdp_codec *c = &m->codecs[0];
    if (!safe(c->name, false) || !safe(c->fmtp, true) || !safe(m->msid_stream, true) || !safe(m->msid_track, true))
        return false;
    for (size_t i = 0; i < m->n_ext; i++)
        if (!m->ext[i].id || !safe(m->ext[i].uri, false)) return false;
    if (m->n_rids > WSDP_MAX_RIDS) return false;
    for (size_t i = 0; i < m->n_rids; i++)
        if (!memchr(m->rids[i], '\0', WSDP_RID_MAX) || !rid_token(str_from_cstr(m->rids[i]))) return false;
    for (size_t i = 0; i < m->n_ssrcs; i++)
        if (!safe(m->ssrcs[i].cname, true) || !safe(m->ssrcs[i].msid_stream, true) ||
            !safe(m->ssrcs[i].msid_track, true))
            return false;
    return true;
}

static void write_candidates(sbuf_t *out, const struct wsdp_local *local)
{
    for (size_t i = 0; i < local->n_candidates && i < WSDP_MAX_CANDIDATES; i++) {
        const struct wsdp_candidate *c = &local->candidates[i];
        /* host priorities of RFC 8445 §5.1.2 (type 126, local 65535) and for
         * passive TCP RFC 6544 §4.2 (lower, so UDP is preferred) */
        if (c->tcp)
            sbuf_printf(out, "a=candidate:2 1 tcp 1518280447 %s %u typ host tcptype passive\r\n", c->ip, c->port);
        else
            sbuf_printf(out, "a=candidate:1 1 udp 2130706431 %s %u typ host\r\n", c->ip, c->port);
    }
    sbuf_append_cstr(out, "a=end-of-candidates\r\n");
}

static void write_codec(sbuf_t *out, const struct wsdp_codec *c)
{
    sbuf_printf(out, "a=rtpmap:%u %s/%u", c->pt, c->name, (unsigned)c->clock);
    unsigned channels = c->channels ? c->channels : codec_is(c, "opus") ? 2 : 0; /* RFC 7587 §7 */
    if (channels) sbuf_printf(out, "/%u", channels);
    sbuf_append_cstr(out, "\r\n");
    if (c->fmtp[0]) sbuf_printf(out, "a=fmtp:%u %s\r\n", c->pt, c->fmtp);
    if (c->fb_remb) sbuf_printf(out, "a=rtcp-fb:%u goog-remb\r\n", c->pt);
    if (c->fb_fir) sbuf_printf(out, "a=rtcp-fb:%u ccm fir\r\n", c->pt);
    if (c->fb_nack) sbuf_printf(out, "a=rtcp-fb:%u nack\r\n", c->pt);
    if (c->fb_pli) sbuf_printf(out, "a=rtcp-fb:%u nack pli\r\n", c->pt);
    if (c->fb_twcc) sbuf_printf(out, "a=rtcp-fb:%u transport-cc\r\n", c->pt);
}

/* RFC 8853 §5.3: the answerer receives what the offerer sends. */
static void write_simulcast(sbuf_t *out, const struct wsdp_media *m)
{
    for (size_t i = 0; i < m->n_rids; i++) sbuf_printf(out, "a=rid:%s recv\r\n", m->rids[i]);
    sbuf_append_cstr(out, "a=simulcast:recv ");
    for (size_t i = 0; i < m->n_rids; i++) sbuf_printf(out, "%s%s", i ? ";" : "", m->rids[i]);
    sbuf_append_cstr(out, "\r\n");
}

static void write_media(sbuf_t *out, const struct wsdp_media *m, const struct wsdp_local *local, const char *cline)
{
    sbuf_printf(out, "m=%s %u %s", m->kind_name, m->port ? 9u : 0u, m->proto);
    if (m->fmt_token[0]) sbuf_printf(out, " %s", m->fmt_token);
    for (size_t i = 0; i < m->n_fmt_pts && !m->fmt_token[0]; i++) sbuf_printf(out, " %u", m->fmt_pts[i]);
    sbuf_printf(out, "\r\n%s", cline);
    if (m->port == 0) {
        if (m->mid[0]) sbuf_printf(out, "a=mid:%s\r\n", m->mid);
        return;
    }
    sbuf_printf(out, "a=mid:%s\r\na=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=fingerprint:%s\r\na=setup:passive\r\n", m->mid,
                local->ice_ufrag, local->ice_pwd, local->fingerprint);
    sbuf_append_cstr(out, "a=rtcp-mux\r\n");
    if (m->rtcp_rsize) sbuf_append_cstr(out, "a=rtcp-rsize\r\n");
    sbuf_printf(out, "a=%s\r\n", dir_name(m->dir));
    bool sending = m->dir == WSDP_DIR_SENDONLY || m->dir == WSDP_DIR_SENDRECV;
    if (sending && m->msid_stream[0]) {
        sbuf_printf(out, "a=msid:%s", m->msid_stream);
        if (m->msid_track[0]) sbuf_printf(out, " %s", m->msid_track);
        sbuf_append_cstr(out, "\r\n");
    }
    for (size_t i = 0; i < m->n_ext; i++) sbuf_printf(out, "a=extmap:%u %s\r\n", m->ext[i].id, m->ext[i].uri);
    write_codec(out, &m->codecs[0]);
    if (m->n_rids && m->dir == WSDP_DIR_RECVONLY) write_simulcast(out, m);
    for (size_t i = 0; sending && i < m->n_ssrcs; i++) {
        const struct wsdp_ssrc *s = &m->ssrcs[i];
        if (s->cname[0]) sbuf_printf(out, "a=ssrc:%u cname:%s\r\n", (unsigned)s->ssrc, s->cname);
        if (s->msid_stream[0]) {
            sbuf_printf(out, "a=ssrc:%u msid:%s", (unsigned)s->ssrc, s->msid_stream);
            if (s->msid_track[0]) sbuf_printf(out, " %s", s->msid_track);
            sbuf_append_cstr(out, "\r\n");
        }
    }
    write_candidates(out, local);
}

int wsdp_write(sbuf_t *out, const struct wsdp_session *answer, const struct wsdp_local *local)
{
    if (!out || !answer || !local || answer->n_media == 0 || answer->n_media > WSDP_MAX_MEDIA) return -1;
    if (!safe(local->ice_ufrag, false) || !safe(local->ice_pwd, false) || !safe(local->fingerprint, false)) return -1;
    if (local->n_candidates && !local->candidates) return -1;
    for (size_t i = 0; i < local->n_candidates && i < WSDP_MAX_CANDIDATES; i++) {
        const char *ip = local->candidates[i].ip;
        if (!memchr(ip, '\0', sizeof(local->candidates[i].ip)) || !safe(ip, false) || strchr(ip, ' ')) return -1;
    }
    size_t accepted = 0;
    for (size_t i = 0; i < answer->n_media; i++) {
        if (!media_consistent(&answer->media[i])) return -1;
        accepted += answer->media[i].port != 0;
    }
    if (!accepted) return -1;
    /* c= follows the first candidate's address family (JSEP §5.3.1 writes
     * the dummy address when the real ones are only in candidates) */
    const char *cline = local->n_candidates && strchr(local->candidates[0].ip, ':') ? "c=IN IP6 ::\r\n"
                                                                                    : "c=IN IP4 0.0.0.0\r\n";
    sbuf_printf(out, "v=0\r\no=- %llu %llu IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE",
                (unsigned long long)answer->sess_id, (unsigned long long)answer->sess_version);
    for (size_t i = 0; i < answer->n_media; i++)
        if (answer->media[i].port) sbuf_printf(out, " %s", answer->media[i].mid);
    sbuf_append_cstr(out, "\r\na=ice-lite\r\na=msid-semantic: WMS *\r\n");
    for (size_t i = 0; i < answer->n_media; i++) write_media(out, &answer->media[i], local, cline);
    return out->failed ? -1 : 0;
}

/* ---- lookups ---- */

const struct wsdp_codec *wsdp_media_codec(const struct wsdp_media *m)
{
    return m && m->port != 0 && m->n_codecs > 0 ? &m->codecs[0] : NULL;
}

uint8_t wsdp_media_ext_id(const struct wsdp_media *m, const char *uri)
{
    for (size_t i = 0; m && uri && i < m->n_ext; i++)
        if (!strcmp(m->ext[i].uri, uri)) return m->ext[i].id;
    return 0;
}

const struct wsdp_media *wsdp_find_mid(const struct wsdp_session *s, const char *mid)
{
    for (size_t i = 0; s && mid && i < s->n_media; i++)
        if (s->media[i].mid[0] && !strcmp(s->media[i].mid, mid)) return &s->media[i];
    return NULL;
}
