/* sfu.c — the SFU (sfu.h): glue between the room state machine (room.h),
 * the WebRTC transport (rtc.h), offer/answer (webrtc_sdp.h) and the per-packet
 * rules (forward.h). It owns one room registry, one transport, a 1 s timer
 * (room grace closes, RR + REMB to publishers, NACK retries, freeing retired
 * peers) and a struct sfu_peer per participant, found by id in a
 * base/htable and attached to its rtc_peer as user data.
 *
 * A member (sfu_join: a room WebSocket's participant) has no peer of its
 * own: it is joined at once and holds one publishing peer and up to
 * max_subscriptions_per_participant subscribing peers, each under an id of
 * its own in by_id and named by the member's id towards the room. When one
 * of them goes (consent, DTLS, a replacement) only its streams are
 * unpublished or its subscription dropped, and the observer is told; the
 * member leaves only through sfu_exit or the room (kick, close, shutdown).
 *
 * A peer's life: made by sfu_publish/sfu_view with the participant pending
 * in its room; announced (confirmed, streams published, subscription made)
 * when the transport says connected. Every way out — leave, kick, room
 * close, shutdown, gone, a rejoin replacing it — ends in peer_retire, which
 * detaches it from streams and viewers at once, and parks it on the zombie
 * list; zombie_sweep closes its rtc_peer (if the transport has not freed it)
 * and frees it. The sweep runs only outside transport callbacks (API calls
 * and the timer), so a callback never sees its own peer closed under it,
 * and a zombie's late callbacks find a retired peer and do nothing.
 *
 * Room events arrive synchronously inside room_* calls: a left event retires
 * the peer (that is how a rejoin, a room close or a shutdown reach us),
 * subscription_dropped detaches a viewer from a publisher going away. Both
 * only touch sfu.c's own structures, as room.h requires.
 *
 * Per packet nothing is allocated: a publisher's RTP is parsed, cached and
 * copied per viewer into a stack buffer (forward_prepare) and protected
 * there by the transport.
 *
 * Simulcast (a publisher m-line with rids): the stream has one fwd_stream
 * per layer (fs is layer 0, upper[] the others: cache, loss, RR each), the
 * layers' SSRCs learnt from the rtp-stream-id extension; every viewer sink
 * has a layer selector (forward.h's fwd_sel) that sends one layer under
 * the stream's out_ssrc — the SSRC the viewer's answer announces — picking
 * the layer from the viewer's REMB and its max layer (sfu_set_max_layer)
 * and asking the target layer for a key frame while a switch waits. */
#include "media/sfu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/htable.h"
#include "base/log.h"
#include "base/str.h"
#include "base/timer.h" /* container_of */
#include "media/forward.h"
#include "media/h264_rtp.h"
#include "media/twcc.h"
#include "media/webrtc_sdp.h"

#define SFU_TICK_MS 1000
#define SFU_FB_TICK_MS TWCC_FEEDBACK_MS /* the timer runs this often: transport-cc feedback */
#define SFU_NACK_RETRY_MS 100  /* a NACKed packet is asked again after this (no RTT estimate yet) */
#define SFU_CNAME "cascade"
#define SFU_BUF (RTC_MAX_PACKET + RTC_SEND_SLACK)

struct sfu_peer;

struct sfu_sink {
    struct fwd_sink fk;
    bool sim;                     /* the stream is simulcast: sel picks and renumbers */
    struct fwd_sel sel;
    struct sfu_stream *st;
    struct sfu_peer *viewer;
    struct sfu_sink *prev, *next; /* in st->sinks */
};

struct sfu_stream {
    struct sfu_peer *pub;
    size_t media_index;           /* its m-line in pub->answer */
    char id[ROOM_TEXT_MAX + 1];   /* announced stream id: the mid */
    char mid[WSDP_TOKEN_MAX];
    enum room_stream_kind kind;
    uint8_t mid_ext;              /* the publisher's mid extension id, to learn an unsignaled SSRC */
    struct fwd_stream fs;         /* the stream; with simulcast its layer 0 */
    /* simulcast */
    bool sim;
    struct fwd_layers layers;
    struct fwd_stream upper[FWD_MAX_LAYERS - 1]; /* layers 1.. */
    uint8_t rid_ext;              /* the publisher's rtp-stream-id extension id */
    enum fwd_video_codec codec;   /* for key frame detection */
    uint32_t out_ssrc;            /* what viewers receive it as */
    uint32_t clock;
    struct sfu_sink *sinks;
};

struct sfu_member;

struct sfu_peer {
    struct hnode by_id;
    struct sfu *s;
    struct rtc_peer *rtc;         /* NULL once the transport reported it gone */
    char id[ROOM_ID_LEN + 1];     /* the key in by_id: the participant's id, or a member peer's own */
    char part[ROOM_ID_LEN + 1];   /* the participant it is (WHIP/WHEP) or belongs to (member) */
    char room[ROOM_NAME_MAX + 1];
    struct sfu_member *member;    /* NULL: the peer is its participant (WHIP/WHEP) */
    struct sfu_peer *m_prev, *m_next; /* a member's subscribing peers */
    char target[ROOM_ID_LEN + 1]; /* a member's subscribing peer: the participant it watches */
    bool publisher, connected, confirmed, retired;
    struct sfu_peer *prev, *next; /* s->peers while live, s->zombies once retired */
    /* publisher */
    struct wsdp_session *answer;   /* what viewers' answers are made against */
    struct sfu_stream *streams;
    size_t n_streams;
    struct sfu_peer *viewers;     /* through v_prev/v_next */
    /* viewer */
    struct sfu_peer *viewing;
    struct sfu_peer *v_prev, *v_next;
    bool subscribed;
    int max_layer;                /* simulcast: the highest layer it takes (sfu_set_max_layer) */
    struct sfu_sink sinks[WSDP_MAX_MEDIA];
    size_t n_sinks;
    /* local sources (sfu_source_new) */
    struct sfu_source *src;       /* publisher: the source it is, NULL once freed */
    bool src_joined;              /* viewer of a source: reported joined */
    /* transport-wide congestion control (twcc.h), when its extension was agreed */
    uint8_t twcc_id;              /* the extension's id in this peer's answer */
    struct twcc_recv *twr;        /* publisher: arrivals to report */
    struct twcc_send *tws;        /* viewer: what we sent it, and the estimate from its feedback */
    uint64_t remb_bps;            /* viewer: its last REMB (0: none) */
};

static void source_viewer_note(struct sfu_peer *v, struct sfu_peer *pub, bool joined);
static void source_connected(struct sfu_peer *v);
static void source_keyframe(struct sfu_peer *pub);

/* A participant with no peer of its own (the room WebSocket): it joins at
 * once and its publishing peer and subscribing peers come and go under it. */
struct sfu_member {
    struct hnode by_id;
    char id[ROOM_ID_LEN + 1];
    char room[ROOM_NAME_MAX + 1];
    struct sfu_peer *pub;         /* its publishing peer, or NULL */
    struct sfu_peer *subs;        /* its subscribing peers, through m_prev/m_next */
    uint32_t n_subs;
};

struct sfu {
    uv_loop_t *loop;
    struct sfu_config cfg;
    struct event_bus *bus;
    struct room_registry *rooms;
    struct rtc_transport *rtc;
    uv_timer_t timer;
    struct htable by_id;
    struct htable members;
    struct sfu_observer ob;
    uint32_t n_members, n_own;    /* participants: members, and peers that are their participant */
    struct sfu_peer *head, *tail; /* live peers, oldest first */
    struct sfu_peer *zombies;
    uint32_t publishers, viewers;
    uint32_t rtcp_ssrc;           /* our sender SSRC in RTCP to publishers */
    int64_t pkt_us;               /* µs clock read once per packet or compound handled (transport-cc) */
    uint64_t slow_ms;             /* when the 1 s work of the timer last ran */
    uint64_t rtp_forwarded, rtp_dropped, nacks_answered, nacks_forwarded, plis_sent;
};

static uint64_t now_ms(const struct sfu *s) { return uv_now(s->loop); }

/* The stream's fwd_streams: one, or one per simulcast layer. */
static size_t stream_nfs(const struct sfu_stream *st) { return st->sim ? st->layers.n : 1; }
static struct fwd_stream *stream_fs(struct sfu_stream *st, size_t i) { return i == 0 ? &st->fs : &st->upper[i - 1]; }

void sfu_config_default(struct sfu_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->rtc.bind_ip = "127.0.0.1";
    cfg->rtc.connect_timeout_ms = 15000;
    cfg->rtc.consent_timeout_ms = 30000;
    cfg->rtc.max_peers = 5000;
    room_config_default(&cfg->rooms);
    cfg->pli_interval_ms = 1000;
    cfg->remb_bps = 2500000;
    cfg->nack_cache_ms = 1000;
}

/* ---- peers by id ---- */

static uint32_t id_hash(const char *id) { return str_hash(str_from_cstr(id)); }

static struct sfu_peer *peer_find(const struct sfu *s, const char *id)
{
    if (!id) return NULL;
    for (struct hnode *n = htable_first(&s->by_id, id_hash(id)); n; n = htable_next(n)) {
        struct sfu_peer *p = container_of(n, struct sfu_peer, by_id);
        if (strcmp(p->id, id) == 0) return p;
    }
    return NULL;
}

/* The peer that is participant id (WHIP/WHEP), not a member's peer. */
static struct sfu_peer *part_peer(const struct sfu *s, const char *id)
{
    struct sfu_peer *p = peer_find(s, id);
    return p && !p->member ? p : NULL;
}

static struct sfu_member *member_find(const struct sfu *s, const char *id)
{
    if (!id) return NULL;
    for (struct hnode *n = htable_first(&s->members, id_hash(id)); n; n = htable_next(n)) {
        struct sfu_member *m = container_of(n, struct sfu_member, by_id);
        if (strcmp(m->id, id) == 0) return m;
    }
    return NULL;
}

/* A member's subscribing peer watching participant pub_id. */
static struct sfu_peer *member_sub(const struct sfu_member *m, const char *pub_id)
{
    for (struct sfu_peer *v = m->subs; v; v = v->m_next)
        if (strcmp(v->target, pub_id) == 0) return v;
    return NULL;
}

/* The peer publishing for participant id: its own, or a member's. */
static struct sfu_peer *publishing_peer(const struct sfu *s, const char *id)
{
    struct sfu_peer *p = part_peer(s, id);
    if (p) return p->publisher ? p : NULL;
    struct sfu_member *m = member_find(s, id);
    return m ? m->pub : NULL;
}

static void note_ended(struct sfu *s, const char *room, const char *part, const char *pub, const char *reason)
{
    if (s->ob.peer_ended) s->ob.peer_ended(s->ob.user, room, part, pub, reason);
}

static void live_append(struct sfu *s, struct sfu_peer *p)
{
    p->prev = s->tail;
    p->next = NULL;
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
}

static void live_unlink(struct sfu *s, struct sfu_peer *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        s->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        s->tail = p->prev;
    p->prev = p->next = NULL;
}

/* ---- attaching viewers to publishers ---- */

static void sink_unlink(struct sfu_sink *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        k->st->sinks = k->next;
    if (k->next) k->next->prev = k->prev;
    k->prev = k->next = NULL;
    k->st = NULL;
}

/* The viewer stops receiving its publisher (it stays connected). */
static void viewer_detach(struct sfu_peer *v)
{
    for (size_t i = 0; i < v->n_sinks; i++)
        if (v->sinks[i].st) sink_unlink(&v->sinks[i]);
    v->n_sinks = 0;
    struct sfu_peer *pub = v->viewing;
    if (!pub) return;
    if (v->src_joined) source_viewer_note(v, pub, false);
    if (v->v_prev)
        v->v_prev->v_next = v->v_next;
    else
        pub->viewers = v->v_next;
    if (v->v_next) v->v_next->v_prev = v->v_prev;
    v->v_prev = v->v_next = NULL;
    v->viewing = NULL;
    v->subscribed = false;
}

static void viewer_attach(struct sfu_peer *v, struct sfu_peer *pub, const struct wsdp_session *view)
{
    int map[WSDP_MAX_MEDIA];
    forward_match_view(pub->answer, view, map);
    for (size_t i = 0; i < view->n_media && i < WSDP_MAX_MEDIA; i++) {
        if (map[i] < 0) continue;
        struct sfu_stream *st = NULL;
        for (size_t j = 0; j < pub->n_streams && !st; j++)
            if (pub->streams[j].media_index == (size_t)map[i]) st = &pub->streams[j];
        const struct wsdp_codec *c = wsdp_media_codec(&view->media[i]);
        if (!st || !c) continue;
        struct sfu_sink *k = &v->sinks[v->n_sinks++];
        forward_sink_from_media(&k->fk, c->pt, &pub->answer->media[st->media_index], &view->media[i]);
        k->sim = st->sim;
        if (st->sim) forward_sel_init(&k->sel, st->out_ssrc, st->clock, v->max_layer);
        k->st = st;
        k->viewer = v;
        k->prev = NULL;
        k->next = st->sinks;
        if (st->sinks) st->sinks->prev = k;
        st->sinks = k;
    }
    v->viewing = pub;
    v->v_prev = NULL;
    v->v_next = pub->viewers;
    if (pub->viewers) pub->viewers->v_prev = v;
    pub->viewers = v;
}

static void streams_free(struct sfu_peer *p)
{
    for (size_t i = 0; i < p->n_streams; i++)
        for (size_t l = 0; l < stream_nfs(&p->streams[i]); l++) forward_stream_free(stream_fs(&p->streams[i], l));
    free(p->streams);
    p->streams = NULL;
    p->n_streams = 0;
    free(p->answer);
    p->answer = NULL;
    free(p->twr);
    p->twr = NULL;
    free(p->tws);
    p->tws = NULL;
}

static void member_sub_end(struct sfu *s, struct sfu_peer *v, const char *reason, bool notify);

/* Out of its member, if it has one. */
static void member_unlink(struct sfu_peer *p)
{
    struct sfu_member *m = p->member;
    if (!m) return;
    if (m->pub == p) {
        m->pub = NULL;
    } else {
        if (p->m_prev)
            p->m_prev->m_next = p->m_next;
        else
            m->subs = p->m_next;
        if (p->m_next) p->m_next->m_prev = p->m_prev;
        m->n_subs--;
    }
    p->m_prev = p->m_next = NULL;
    p->member = NULL;
}

/* Out of every structure but the zombie list; idempotent. A publisher's
 * viewers stay connected without media (WHEP), except a member's
 * subscribing peers: that subscription has ended. */
static void peer_retire(struct sfu_peer *p)
{
    struct sfu *s = p->s;
    if (p->retired) return;
    p->retired = true;
    htable_remove(&s->by_id, &p->by_id);
    live_unlink(s, p);
    if (!p->member) s->n_own--;
    member_unlink(p);
    if (p->publisher) {
        while (p->viewers) {
            struct sfu_peer *v = p->viewers;
            if (v->member)
                member_sub_end(s, v, "unpublished", true);
            else
                viewer_detach(v);
        }
        streams_free(p);
        s->publishers--;
    } else {
        viewer_detach(p);
        free(p->tws); /* nothing is sent to a retired peer */
        p->tws = NULL;
        s->viewers--;
    }
    p->next = s->zombies;
    s->zombies = p;
}

/* A member's subscribing peer ends (it went, was replaced or unsubscribed,
 * or its publisher did): the member stays in the room. */
static void member_sub_end(struct sfu *s, struct sfu_peer *v, const char *reason, bool notify)
{
    char room[ROOM_NAME_MAX + 1], part[ROOM_ID_LEN + 1], target[ROOM_ID_LEN + 1];
    memcpy(room, v->room, sizeof(room));
    memcpy(part, v->part, sizeof(part));
    memcpy(target, v->target, sizeof(target));
    if (v->subscribed) room_unsubscribe(s->rooms, part, target);
    peer_retire(v);
    if (notify) note_ended(s, room, part, target, reason);
}

/* A member's publishing peer ends: each stream it announced is unpublished
 * (the room emits that once: a stream already gone is -ENOENT), its
 * viewers are detached, the member stays in the room. */
static void member_pub_end(struct sfu *s, struct sfu_peer *p, const char *reason, bool notify)
{
    char room[ROOM_NAME_MAX + 1], part[ROOM_ID_LEN + 1];
    memcpy(room, p->room, sizeof(room));
    memcpy(part, p->part, sizeof(part));
    uint64_t now = now_ms(s);
    for (size_t i = p->n_streams; i-- > 0;) room_unpublish(s->rooms, part, p->streams[i].id, now);
    for (struct sfu_peer *v = p->viewers; v; v = v->v_next)
        if (!v->member && v->subscribed) room_unsubscribe(s->rooms, v->part, part);
    peer_retire(p);
    if (notify) note_ended(s, room, part, NULL, reason);
}

/* The member left the room (its left event): its peers end unannounced. */
static void member_free(struct sfu *s, struct sfu_member *m)
{
    if (m->pub) member_pub_end(s, m->pub, "left", false);
    while (m->subs) member_sub_end(s, m->subs, "left", false);
    htable_remove(&s->members, &m->by_id);
    s->n_members--;
    free(m);
}

/* Closes and frees retired peers. Never from inside a transport callback. */
static void zombie_sweep(struct sfu *s)
{
    while (s->zombies) {
        struct sfu_peer *p = s->zombies;
        s->zombies = p->next;
        if (p->rtc) {
            rtc_peer_set_user(p->rtc, NULL);
            rtc_peer_close(p->rtc);
        }
        free(p);
    }
}

/* ---- room events ---- */

static void on_room_event(void *user, const struct room_event *ev)
{
    struct sfu *s = user;
    if (s->bus) room_event_publish(s->bus, ev);
    if (ev->type == ROOM_EV_LEFT) {
        struct sfu_peer *p = part_peer(s, ev->participant_id);
        if (p) peer_retire(p);
        struct sfu_member *m = member_find(s, ev->participant_id);
        if (m) member_free(s, m);
    }
    if (s->ob.room_event) s->ob.room_event(s->ob.user, ev);
}

static void on_subscription_dropped(void *user, const char *room, const char *viewer_id, const char *publisher_id)
{
    (void)room;
    struct sfu *s = user;
    struct sfu_member *m = member_find(s, viewer_id);
    struct sfu_peer *v = m ? member_sub(m, publisher_id) : part_peer(s, viewer_id);
    if (v && m) {
        v->subscribed = false; /* the room has dropped it */
        member_sub_end(s, v, "left", true);
    } else if (v && v->viewing && strcmp(v->viewing->part, publisher_id) == 0) {
        viewer_detach(v);
    }
}

/* ---- sending ---- */

static bool can_send(const struct sfu_peer *p) { return p && !p->retired && p->rtc && p->connected; }

static void send_rtcp(struct sfu_peer *p, uint8_t *buf, int len)
{
    if (len > 0 && can_send(p)) rtc_peer_send_rtcp(p->rtc, buf, (size_t)len);
}

/* Our transport-wide number for the viewer in place of the publisher's
 * (the element, if the packet has one, already carries the viewer's id),
 * the send remembered for its feedback. */
static void twcc_stamp(struct sfu *s, struct sfu_peer *v, uint8_t *buf, size_t n)
{
    if (v->tws && twcc_ext_write(buf, n, v->twcc_id, v->tws->next_seq)) twcc_send_stamp(v->tws, n, s->pkt_us);
}

/* One packet of the sink's stream to its viewer, in the viewer's terms. */
static bool send_to_sink(struct sfu *s, const struct sfu_sink *k, const uint8_t *pkt, size_t len)
{
    uint8_t buf[SFU_BUF];
    if (!can_send(k->viewer)) return false;
    int n = forward_prepare(&k->fk, pkt, len, buf, RTC_MAX_PACKET);
    if (n >= 0) twcc_stamp(s, k->viewer, buf, (size_t)n);
    if (n < 0 || rtc_peer_send_rtp(k->viewer->rtc, buf, (size_t)n) < 0) {
        s->rtp_dropped++;
        return false;
    }
    return true;
}

/* A simulcast sink's copy: as send_to_sink, then under the viewer's one
 * SSRC with the selector's numbers. */
static bool send_to_sim_sink(struct sfu *s, const struct sfu_sink *k, const uint8_t *pkt, size_t len,
                             const struct fwd_sel_out *o)
{
    uint8_t buf[SFU_BUF];
    if (!can_send(k->viewer)) return false;
    int n = forward_prepare(&k->fk, pkt, len, buf, RTC_MAX_PACKET);
    if (n >= 0) forward_sel_rewrite(&k->sel, buf, o);
    if (n >= 0) twcc_stamp(s, k->viewer, buf, (size_t)n);
    if (n < 0 || rtc_peer_send_rtp(k->viewer->rtc, buf, (size_t)n) < 0) {
        s->rtp_dropped++;
        return false;
    }
    return true;
}

/* A key frame request to one stream (a simulcast layer), rate-limited. */
static void request_keyframe(struct sfu *s, struct sfu_peer *pub, struct fwd_stream *fs, uint64_t now)
{
    uint8_t buf[SFU_BUF];
    int n = forward_stream_keyframe(fs, now, s->cfg.pli_interval_ms, s->rtcp_ssrc, buf, RTC_MAX_PACKET);
    if (n > 0) {
        send_rtcp(pub, buf, n);
        s->plis_sent++;
    }
}

static void send_keyframe_requests(struct sfu *s, struct sfu_peer *pub, uint64_t now)
{
    if (!can_send(pub)) return;
    for (size_t i = 0; i < pub->n_streams; i++) {
        struct sfu_stream *st = &pub->streams[i];
        if (st->kind != ROOM_STREAM_VIDEO) continue;
        for (size_t l = 0; l < stream_nfs(st); l++) request_keyframe(s, pub, stream_fs(st, l), now);
    }
}

static void send_nack(struct sfu *s, struct sfu_peer *pub, struct fwd_stream *fs, uint64_t now)
{
    uint8_t buf[SFU_BUF];
    int n = forward_stream_nack(fs, now, SFU_NACK_RETRY_MS, s->rtcp_ssrc, buf, RTC_MAX_PACKET);
    send_rtcp(pub, buf, n);
}

/* ---- transport callbacks ---- */

static struct sfu_peer *live_peer(struct rtc_peer *rp)
{
    struct sfu_peer *p = rtc_peer_user(rp);
    return p && !p->retired ? p : NULL;
}

static void subscribe(struct sfu *s, struct sfu_peer *v)
{
    if (v->subscribed || !v->confirmed || !v->viewing || !v->viewing->confirmed) return;
    int rc = room_subscribe(s->rooms, v->part, v->viewing->part);
    if (rc == 0 || rc == -EEXIST)
        v->subscribed = true;
    else
        log_warn("sfu: %s cannot subscribe to %s: %s", v->part, v->viewing->part, strerror(-rc));
}

static void publish_streams(struct sfu *s, struct sfu_peer *p, uint64_t now)
{
    for (size_t i = 0; i < p->n_streams; i++) {
        int rc = room_publish(s->rooms, p->part, p->streams[i].id, p->streams[i].kind, now);
        if (rc < 0) log_warn("sfu: %s cannot publish stream %s: %s", p->id, p->streams[i].id, strerror(-rc));
    }
}

static void on_connected(void *user, struct rtc_peer *rp)
{
    struct sfu *s = user;
    struct sfu_peer *p = live_peer(rp);
    if (!p || p->connected) return;
    uint64_t now = now_ms(s);
    p->connected = true;
    /* A member's peer: its participant is in the room already. */
    int rc = p->member ? 0 : room_participant_confirm(s->rooms, p->id, now);
    if (rc < 0 && rc != -EALREADY) { /* it left the room meanwhile (closed, replaced): closed at the next sweep */
        peer_retire(p);
        return;
    }
    p->confirmed = true;
    if (p->publisher) {
        publish_streams(s, p, now);
        for (struct sfu_peer *v = p->viewers; v; v = v->v_next) subscribe(s, v);
        if (p->viewers) send_keyframe_requests(s, p, now);
    } else if (p->viewing) {
        subscribe(s, p);
        if (p->viewing->src)
            source_connected(p); /* its newest GOP at once: nobody to ask for a key frame */
        else
            send_keyframe_requests(s, p->viewing, now);
    }
}

static struct sfu_stream *stream_by_ssrc(struct sfu_peer *p, uint32_t ssrc)
{
    for (size_t i = 0; i < p->n_streams; i++)
        if (!p->streams[i].sim && p->streams[i].fs.cfg.ssrc == ssrc && ssrc) return &p->streams[i];
    return NULL;
}

/* An SSRC the offer did not name: the stream whose mid the packet carries
 * (BUNDLE demux, RFC 8843 §9.2), or the only one still waiting for its SSRC
 * with this payload type. The payload type must be the stream's, so an RTX
 * or FEC SSRC is never taken for the media one; and a stream that already
 * receives keeps its SSRC, so layers of a simulcast the answer declined are
 * dropped rather than flipping it packet by packet. Simulcast streams learn
 * their layers' SSRCs by rid (sim_stream). */
static struct sfu_stream *stream_learn(struct sfu_peer *p, const uint8_t *pkt, const struct fwd_rtp *h)
{
    struct sfu_stream *hit = NULL;
    for (size_t i = 0; i < p->n_streams && !hit; i++) {
        struct sfu_stream *st = &p->streams[i];
        if (st->fs.started || st->sim) continue;
        size_t vlen = 0;
        const uint8_t *mid = st->mid_ext ? forward_rtp_ext(pkt, h, st->mid_ext, &vlen) : NULL;
        if (mid && vlen == strlen(st->mid) && memcmp(mid, st->mid, vlen) == 0 && h->pt == st->fs.cfg.pt) hit = st;
    }
    for (size_t i = 0; i < p->n_streams && !hit; i++) {
        struct sfu_stream *st = &p->streams[i];
        if (!st->sim && !st->fs.cfg.ssrc && h->pt == st->fs.cfg.pt) hit = st;
    }
    if (hit) {
        log_info("sfu: %s stream %s is SSRC %08x", p->id, hit->id, h->ssrc);
        forward_stream_set_ssrc(&hit->fs, h->ssrc);
    }
    return hit;
}

/* The simulcast stream and layer of a packet (by SSRC, or by rid), or NULL. */
static struct sfu_stream *sim_stream(struct sfu_peer *p, const uint8_t *pkt, const struct fwd_rtp *h, int *layer)
{
    for (size_t i = 0; i < p->n_streams; i++) {
        struct sfu_stream *st = &p->streams[i];
        bool learnt;
        if (!st->sim || (*layer = forward_layers_classify(&st->layers, pkt, h, st->rid_ext, &learnt)) < 0) continue;
        if (learnt) {
            log_info("sfu: %s stream %s layer %s is SSRC %08x", p->id, st->id, st->layers.rid[*layer], h->ssrc);
            forward_stream_set_ssrc(stream_fs(st, (size_t)*layer), h->ssrc);
        }
        return st;
    }
    return NULL;
}

/* A packet of a simulcast layer: each sink's selector picks (its target
 * from the layers' state and the viewer's estimate; a key frame asked of
 * the target while a switch waits) and renumbers. */
static void sim_forward(struct sfu *s, struct sfu_stream *st, int layer, const uint8_t *pkt, size_t len,
                        const struct fwd_rtp *h, uint64_t now)
{
    const uint8_t *payload;
    size_t plen;
    bool key = forward_rtp_payload(pkt, len, h, &payload, &plen) && forward_keyframe_start(st->codec, payload, plen);
    forward_layers_account(&st->layers, layer, len, now);
    rtc_transport_batch_begin(s->rtc);
    for (struct sfu_sink *k = st->sinks; k; k = k->next) {
        int target = forward_sel_choose(&k->sel, &st->layers, now);
        struct fwd_sel_out o;
        uint64_t switches = k->sel.switches;
        if (forward_sel_packet(&k->sel, layer, h, key, now, &o) && send_to_sim_sink(s, k, pkt, len, &o))
            s->rtp_forwarded++;
        if (k->sel.switches != switches) /* rare: the operator's (and the browser test's) view of the choice */
            log_info("sfu: %s receives stream %s layer %s (estimate %llu bit/s%s)", k->viewer->id, st->id,
                     st->layers.rid[layer], (unsigned long long)k->sel.bwe_bps,
                     k->sel.trial == layer ? ", trial" : "");
        if (target >= 0 && forward_sel_waiting(&k->sel) && can_send(st->pub))
            request_keyframe(s, st->pub, stream_fs(st, (size_t)target), now);
    }
    rtc_transport_batch_flush(s->rtc);
}

static void on_rtp(void *user, struct rtc_peer *rp, uint8_t *pkt, size_t len)
{
    struct sfu *s = user;
    struct sfu_peer *p = live_peer(rp);
    struct fwd_rtp h;
    if (!p || !p->publisher || len > RTC_MAX_PACKET || forward_rtp_parse(pkt, len, &h) < 0) {
        s->rtp_dropped++;
        return;
    }
    s->pkt_us = (int64_t)(uv_hrtime() / 1000);
    if (p->twr) { /* every packet that arrived counts, forwarded or not */
        size_t vlen = 0;
        const uint8_t *tw = forward_rtp_ext(pkt, &h, p->twcc_id, &vlen);
        if (tw && vlen == 2) twcc_recv_packet(p->twr, (uint16_t)(tw[0] << 8 | tw[1]), s->pkt_us);
    }
    int layer = 0;
    struct sfu_stream *st = stream_by_ssrc(p, h.ssrc);
    if (!st) st = sim_stream(p, pkt, &h, &layer);
    if (!st) st = stream_learn(p, pkt, &h);
    if (!st || h.pt != st->fs.cfg.pt) { /* unknown SSRC, or RTX/FEC we did not negotiate */
        s->rtp_dropped++;
        return;
    }
    uint64_t now = now_ms(s);
    struct fwd_stream *fs = stream_fs(st, (size_t)layer);
    if (forward_stream_receive(fs, pkt, len, &h, now) == FWD_DUPLICATE) {
        s->rtp_dropped++;
        return;
    }
    if (fs->n_missing) send_nack(s, p, fs, now);
    if (st->sim) {
        sim_forward(s, st, layer, pkt, len, &h, now);
        return;
    }
    /* One sendmmsg per RTC_BATCH viewers instead of a system call each. */
    rtc_transport_batch_begin(s->rtc);
    for (struct sfu_sink *k = st->sinks; k; k = k->next)
        if (send_to_sink(s, k, pkt, len)) s->rtp_forwarded++;
    rtc_transport_batch_flush(s->rtc);
}

/* The stream and layer of one of the publisher's SSRCs. */
static struct sfu_stream *layer_of(struct sfu_peer *p, uint32_t ssrc, size_t *layer)
{
    for (size_t i = 0; ssrc && i < p->n_streams; i++)
        for (size_t l = 0; l < stream_nfs(&p->streams[i]); l++)
            if (stream_fs(&p->streams[i], l)->cfg.ssrc == ssrc) {
                *layer = l;
                return &p->streams[i];
            }
    return NULL;
}

static struct fwd_stream *find_pub_stream(void *arg, uint32_t ssrc, void **tag)
{
    size_t layer = 0;
    struct sfu_stream *st = layer_of(arg, ssrc, &layer);
    *tag = st;
    return st ? stream_fs(st, layer) : NULL;
}

/* A simulcast sink's feedback goes to the layer it receives (the one it
 * waits for, before the first). */
static struct fwd_stream *find_viewer_stream(void *arg, uint32_t ssrc, void **tag)
{
    struct sfu_peer *v = arg;
    for (size_t i = 0; i < v->n_sinks; i++) {
        struct sfu_sink *k = &v->sinks[i];
        if (!k->st || !ssrc) continue;
        if (k->sim && k->sel.ssrc == ssrc) {
            int layer = k->sel.current >= 0 ? k->sel.current : k->sel.target >= 0 ? k->sel.target : 0;
            *tag = k;
            return stream_fs(k->st, (size_t)layer);
        }
        if (!k->sim && k->st->fs.cfg.ssrc == ssrc) {
            *tag = k;
            return &k->st->fs;
        }
    }
    return NULL;
}

/* A simulcast sink's NACKed number: the layer and number it came from. */
static bool map_viewer_seq(void *arg, void *tag, uint16_t out_seq, struct fwd_stream **st, uint16_t *seq)
{
    (void)arg;
    struct sfu_sink *k = tag;
    if (!k->sim) return true; /* the publisher's own numbers */
    int layer;
    uint32_t ts_off;
    if (!forward_sel_lookup(&k->sel, out_seq, &layer, seq, &ts_off)) return false;
    *st = stream_fs(k->st, (size_t)layer);
    return true;
}

/* The resend of a NACKed packet, renumbered as first sent for a simulcast sink. */
static bool resend_to_sink(struct sfu *s, struct sfu_sink *k, const struct fwd_resend *r)
{
    size_t clen = 0;
    const uint8_t *c = forward_stream_cached(r->st, r->seq, &clen);
    if (!c) return false;
    if (!k->sim) return send_to_sink(s, k, c, clen);
    struct fwd_rtp h;
    int layer;
    uint16_t in_seq;
    uint32_t ts_off;
    if (forward_rtp_parse(c, clen, &h) < 0 || !forward_sel_lookup(&k->sel, r->out_seq, &layer, &in_seq, &ts_off))
        return false;
    struct fwd_sel_out o = {.seq = r->out_seq, .ts = h.ts + ts_off};
    return send_to_sim_sink(s, k, c, clen, &o);
}

struct sim_sr {
    struct sfu_stream *st;
    int layer;
    rtcp_sender_info_t si;
};

/* Splits the SRs for viewers: those of plain streams go to all as they
 * are (into common), those of simulcast layers into sims, for each viewer
 * to translate. Returns the bytes in common. */
static size_t split_srs(struct sfu_peer *p, const uint8_t *srs, size_t n, uint8_t *common, struct sim_sr *sims,
                        size_t *n_sims)
{
    rtcp_iter_t it;
    rtcp_packet_t pk;
    size_t nc = 0;
    *n_sims = 0;
    rtcp_iter_init(&it, srs, n);
    while (rtcp_iter_next(&it, &pk) == 1) {
        uint32_t ssrc = pk.len >= 8 ? (uint32_t)pk.data[4] << 24 | (uint32_t)pk.data[5] << 16 |
                                          (uint32_t)pk.data[6] << 8 | pk.data[7]
                                    : 0;
        size_t layer = 0;
        struct sfu_stream *st = layer_of(p, ssrc, &layer);
        rtcp_report_t r;
        if (st && st->sim) {
            if (*n_sims < WSDP_MAX_MEDIA * FWD_MAX_LAYERS && rtcp_parse_report(&pk, &r) == 0)
                sims[(*n_sims)++] = (struct sim_sr){.st = st, .layer = (int)layer, .si = r.si};
            continue;
        }
        memcpy(common + nc, pk.data, pk.len); /* fits: common is as large as srs */
        nc += pk.len;
    }
    return nc;
}

/* SRs go on to every viewer, each copy protected for that viewer; a
 * simulcast layer's SR only to the viewers receiving that layer, under
 * their SSRC and time (forward_sel_sr). */
static void publisher_rtcp(struct sfu_peer *p, const uint8_t *pkt, size_t len, uint64_t now)
{
    uint8_t srs[SFU_BUF], common[SFU_BUF], buf[SFU_BUF];
    struct sim_sr sims[WSDP_MAX_MEDIA * FWD_MAX_LAYERS];
    size_t n_sims;
    int n = forward_publisher_rtcp(pkt, len, find_pub_stream, p, now, srs, RTC_MAX_PACKET);
    if (n <= 0) return;
    size_t nc = split_srs(p, srs, (size_t)n, common, sims, &n_sims);
    rtc_transport_batch_begin(p->s->rtc);
    for (struct sfu_peer *v = p->viewers; v; v = v->v_next) {
        if (!can_send(v)) continue;
        memcpy(buf, common, nc);
        size_t off = nc;
        for (size_t i = 0; i < n_sims; i++)
            for (size_t j = 0; j < v->n_sinks; j++) {
                const struct sfu_sink *k = &v->sinks[j];
                if (!k->sim || k->st != sims[i].st) continue;
                int w = forward_sel_sr(&k->sel, sims[i].layer, &sims[i].si, buf + off, RTC_MAX_PACKET - off);
                if (w > 0) off += (size_t)w;
            }
        if (off) rtc_peer_send_rtcp(v->rtc, buf, off);
    }
    rtc_transport_batch_flush(p->s->rtc);
}

/* The viewer's transport-cc feedback in a compound, to its estimator:
 * whether there was any. */
static bool viewer_twcc(struct sfu *s, struct sfu_peer *v, const uint8_t *pkt, size_t len)
{
    rtcp_twcc_packet_t pk[TWCC_FB_MAX];
    rtcp_iter_t it;
    rtcp_packet_t p;
    rtcp_twcc_t t;
    bool any = false;
    rtcp_iter_init(&it, pkt, len);
    while (rtcp_iter_next(&it, &p) == 1) {
        if (p.pt != RTCP_PT_RTPFB || p.count != RTCP_FMT_TWCC || rtcp_parse_twcc(&p, &t, pk, TWCC_FB_MAX) < 0)
            continue;
        twcc_send_feedback(v->tws, &t, pk, s->pkt_us);
        any = true;
    }
    return any;
}

/* The lower of the viewer's REMB and our transport-cc estimate, when both
 * exist (a browser usually sends one or the other); 0: none yet. */
static uint64_t viewer_estimate(const struct sfu_peer *v)
{
    uint64_t t = v->tws ? twcc_send_estimate(v->tws) : 0, r = v->remb_bps;
    return t && r ? (t < r ? t : r) : t ? t : r;
}

/* NACKs answered from the caches, misses and key frame requests passed to
 * the publisher; REMB and transport-cc feed the layer selectors; reports
 * consumed. */
static void viewer_rtcp(struct sfu *s, struct sfu_peer *v, const uint8_t *pkt, size_t len, uint64_t now)
{
    struct sfu_peer *pub = v->viewing;
    if (!pub) return;
    struct fwd_viewer_rtcp fb;
    forward_viewer_rtcp_map(pkt, len, find_viewer_stream, map_viewer_seq, v, now, s->cfg.pli_interval_ms, &fb);
    for (size_t i = 0; i < fb.n_resend; i++)
        if (resend_to_sink(s, fb.resend[i].tag, &fb.resend[i])) s->nacks_answered++;
    for (size_t i = 0; i < fb.n_upstream; i++) {
        send_nack(s, pub, fb.upstream[i], now);
        s->nacks_forwarded++;
    }
    /* Congestion, for the selectors' trials: our estimator cut (overuse or
     * loss), or the viewer's REMB fell under 85 % of its last value. An
     * estimate pinned at its ceiling (~1.5x what arrives) moves down and up
     * with the delivered rate: that alone is no congestion. */
    bool congested = fb.remb_bps && v->remb_bps && fb.remb_bps < v->remb_bps / 100 * 85;
    if (fb.remb_bps) v->remb_bps = fb.remb_bps;
    uint64_t cuts = v->tws ? v->tws->bwe.overuses + v->tws->bwe.loss_cuts : 0;
    if ((v->tws && viewer_twcc(s, v, pkt, len)) || fb.remb_bps) { /* the estimate picks its simulcast layers */
        uint64_t est = viewer_estimate(v);
        if (v->tws && v->tws->bwe.overuses + v->tws->bwe.loss_cuts != cuts) congested = true;
        for (size_t i = 0; i < v->n_sinks; i++) {
            if (!v->sinks[i].sim) continue;
            if (congested) forward_sel_congested(&v->sinks[i].sel);
            if (est) forward_sel_estimate(&v->sinks[i].sel, est);
        }
    }
    for (size_t i = 0; i < fb.n_keyframe && pub->src; i++) source_keyframe(pub);
    for (size_t i = 0; i < fb.n_keyframe && !pub->src; i++) {
        uint8_t buf[SFU_BUF];
        int n = forward_stream_keyframe_build(fb.keyframe[i], s->rtcp_ssrc, buf, RTC_MAX_PACKET);
        if (n > 0 && can_send(pub)) {
            send_rtcp(pub, buf, n);
            s->plis_sent++;
        }
    }
}

static void on_rtcp(void *user, struct rtc_peer *rp, uint8_t *pkt, size_t len)
{
    struct sfu *s = user;
    struct sfu_peer *p = live_peer(rp);
    if (!p) return;
    s->pkt_us = (int64_t)(uv_hrtime() / 1000);
    if (p->publisher)
        publisher_rtcp(p, pkt, len, now_ms(s));
    else
        viewer_rtcp(s, p, pkt, len, now_ms(s));
}

static void on_gone(void *user, struct rtc_peer *rp, enum rtc_gone_reason why)
{
    struct sfu *s = user;
    struct sfu_peer *p = rtc_peer_user(rp);
    if (!p) return;
    p->rtc = NULL; /* the transport frees it after this returns */
    if (p->retired) return;
    enum room_leave_reason reason =
        why == RTC_GONE_CONSENT_EXPIRED ? ROOM_LEAVE_CONSENT_EXPIRED : ROOM_LEAVE_DISCONNECTED;
    log_info("sfu: %s gone (%s)", p->id, rtc_gone_reason_name(why));
    if (p->member) { /* only this stream or subscription ends, not the participant */
        if (p->publisher)
            member_pub_end(s, p, room_leave_reason_name(reason), true);
        else
            member_sub_end(s, p, room_leave_reason_name(reason), true);
        return;
    }
    room_participant_exit(s->rooms, p->id, reason, now_ms(s));
    peer_retire(p); /* a participant never announced leaves without an event */
}

/* ---- the timer ---- */

static void send_receiver_report(struct sfu *s, struct sfu_peer *p, uint64_t now)
{
    struct fwd_stream *fs[WSDP_MAX_MEDIA * FWD_MAX_LAYERS];
    size_t n = 0;
    for (size_t i = 0; i < p->n_streams && i < WSDP_MAX_MEDIA; i++)
        for (size_t l = 0; l < stream_nfs(&p->streams[i]); l++) fs[n++] = stream_fs(&p->streams[i], l);
    uint8_t buf[SFU_BUF];
    int len = forward_build_receiver_report(fs, n, s->rtcp_ssrc, SFU_CNAME, s->cfg.remb_bps, now, buf, RTC_MAX_PACKET);
    send_rtcp(p, buf, len);
}

/* Transport-cc feedback on what the publisher sent since the last one
 * (normally one packet; more after a burst). */
static void send_twcc_feedback(struct sfu *s, struct sfu_peer *p)
{
    uint8_t buf[SFU_BUF];
    uint32_t media = p->n_streams ? p->streams[0].fs.cfg.ssrc : 0;
    for (int i = 0; i < 4; i++) {
        int len = twcc_recv_feedback(p->twr, s->rtcp_ssrc, media, buf, RTC_MAX_PACKET);
        if (len <= 0) break;
        send_rtcp(p, buf, len);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct sfu *s = t->data;
    uint64_t now = now_ms(s);
    for (struct sfu_peer *p = s->head; p; p = p->next)
        if (p->publisher && p->twr && can_send(p)) send_twcc_feedback(s, p);
    if (now - s->slow_ms < SFU_TICK_MS) return;
    s->slow_ms = now;
    room_registry_tick(s->rooms, now);
    zombie_sweep(s);
    for (struct sfu_peer *p = s->head; p; p = p->next) {
        if (!p->publisher || !can_send(p)) continue;
        send_receiver_report(s, p, now);
        for (size_t i = 0; i < p->n_streams; i++)
            for (size_t l = 0; l < stream_nfs(&p->streams[i]); l++)
                if (stream_fs(&p->streams[i], l)->n_missing) send_nack(s, p, stream_fs(&p->streams[i], l), now);
    }
}

/* ---- construction ---- */

struct sfu *sfu_new(uv_loop_t *loop, const struct sfu_config *cfg, struct event_bus *bus, char *err, size_t errcap)
{
    struct sfu *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->cfg = *cfg;
    s->bus = bus;
    if (!s->cfg.pli_interval_ms) s->cfg.pli_interval_ms = 1000;
    if (!s->cfg.nack_cache_ms) s->cfg.nack_cache_ms = 1000;
    struct room_config rdef;
    room_config_default(&rdef);
    if (!s->cfg.rooms.max_streams_per_participant)
        s->cfg.rooms.max_streams_per_participant = rdef.max_streams_per_participant;
    htable_init(&s->by_id);
    htable_init(&s->members);
    if (RAND_bytes((unsigned char *)&s->rtcp_ssrc, sizeof(s->rtcp_ssrc)) != 1 || !s->rtcp_ssrc) s->rtcp_ssrc = 1;
    struct room_events ev = {.user = s, .emit = on_room_event, .subscription_dropped = on_subscription_dropped};
    s->rooms = room_registry_new(&s->cfg.rooms, &ev, NULL, NULL);
    if (!s->rooms) {
        snprintf(err, errcap, "out of memory");
        free(s);
        return NULL;
    }
    struct rtc_callbacks cb = {
        .user = s, .connected = on_connected, .rtp = on_rtp, .rtcp = on_rtcp, .gone = on_gone};
    s->rtc = rtc_transport_new(loop, &s->cfg.rtc, &cb, err, errcap);
    if (!s->rtc) {
        room_registry_free(s->rooms);
        free(s);
        return NULL;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->slow_ms = now_ms(s);
    uv_timer_start(&s->timer, on_tick, SFU_FB_TICK_MS, SFU_FB_TICK_MS);
    return s;
}

static void free_on_close(uv_handle_t *h) { free(h->data); }

void sfu_free(struct sfu *s)
{
    if (!s) return;
    room_registry_shutdown(s->rooms, now_ms(s));
    while (s->head) peer_retire(s->head); /* the pending ones, never announced */
    zombie_sweep(s);
    if (s->ob.detached) s->ob.detached(s->ob.user);
    s->ob = (struct sfu_observer){0};
    room_registry_free(s->rooms);
    rtc_transport_free(s->rtc);
    htable_free(&s->by_id);
    htable_free(&s->members);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, free_on_close);
}

const struct room_registry *sfu_rooms(const struct sfu *s) { return s->rooms; }

/* ---- publish and view ---- */

/* What our side of an answer says, for a new rtc peer. */
static void local_for(struct sfu *s, struct rtc_peer *rp, struct wsdp_candidate *cands, struct wsdp_local *l)
{
    uint64_t sess = 0;
    if (RAND_bytes((unsigned char *)&sess, sizeof(sess)) != 1) sess = now_ms(s);
    *l = (struct wsdp_local){
        .ice_ufrag = rtc_peer_ufrag(rp),
        .ice_pwd = rtc_peer_pwd(rp),
        .fingerprint = rtc_transport_fingerprint(s->rtc),
        .candidates = cands,
        .n_candidates = rtc_transport_candidates(s->rtc, cands, WSDP_MAX_CANDIDATES),
        .sess_id = sess >> 1, /* RFC 8866 §5.2: keep it within 63 bits */
        .cname = SFU_CNAME,
    };
}

static int join_error(int rc, const char **why)
{
    switch (rc) {
    case -EINVAL: *why = "bad room name, display name or user"; return -EINVAL;
    case -ENOSPC: *why = "too many rooms"; return -ENOSPC;
    case -EUSERS: *why = "the room is full"; return -ENOSPC;
    case -EIO: *why = "no random source for an id"; return -ENOMEM;
    default: *why = "out of memory"; return -ENOMEM;
    }
}

/* The work both kinds share, once the peer and its answer exist: admit the
 * participant (pending), write the answer, index the peer. */
static int admit(struct sfu *s, struct sfu_peer *p, const char *name, const char *user, bool rejoin,
                 const struct wsdp_session *answer, const struct wsdp_local *local, sbuf_t *out, const char **why)
{
    struct room_join_req req = {
        .room = p->room, .name = name, .user = user, .rejoin = rejoin, .pending = true};
    uint64_t now = now_ms(s);
    int rc = room_join(s->rooms, &req, now, p->id);
    if (rc < 0) return join_error(rc, why);
    if (wsdp_write(out, answer, local) < 0 || out->failed) {
        room_participant_exit(s->rooms, p->id, ROOM_LEAVE_DISCONNECTED, now); /* pending: no event */
        *why = out->failed ? "out of memory" : "could not write the answer";
        return out->failed ? -ENOMEM : -EINVAL;
    }
    if (htable_insert(&s->by_id, &p->by_id, id_hash(p->id)) < 0) {
        room_participant_exit(s->rooms, p->id, ROOM_LEAVE_DISCONNECTED, now);
        *why = "out of memory";
        return -ENOMEM;
    }
    memcpy(p->part, p->id, sizeof(p->part));
    live_append(s, p);
    s->n_own++;
    if (p->publisher)
        s->publishers++;
    else
        s->viewers++;
    return 0;
}

/* A simulcast stream: a fwd_stream per layer, SSRCs learnt by rid, and the
 * SSRC viewers get it as (set in the answer for their answers to announce). */
static int sim_make(struct sfu_peer *p, struct sfu_stream *st, const struct wsdp_media *m,
                    const struct fwd_stream_config *fc)
{
    struct fwd_stream_config lc = *fc;
    lc.ssrc = 0;
    st->sim = true;
    forward_layers_init(&st->layers, m->rids, m->n_rids);
    st->rid_ext = wsdp_media_ext_id(m, WSDP_EXT_RID);
    st->codec = forward_video_codec(wsdp_media_codec(m));
    st->clock = fc->clock;
    for (size_t l = 0; l < st->layers.n; l++) {
        if (forward_stream_init(stream_fs(st, l), &lc) == 0) continue;
        while (l-- > 0) forward_stream_free(stream_fs(st, l)); /* not counted in n_streams: freed here */
        return -ENOMEM;
    }
    if (RAND_bytes((unsigned char *)&st->out_ssrc, sizeof(st->out_ssrc)) != 1 || !st->out_ssrc)
        st->out_ssrc = 0x5C000000u | (uint32_t)st->media_index;
    p->answer->media[st->media_index].out_ssrc = st->out_ssrc;
    return 0;
}

/* One forwarding stream per accepted m-line, up to the per-participant cap. */
static int streams_make(struct sfu *s, struct sfu_peer *p)
{
    const struct wsdp_session *a = p->answer;
    size_t cap = s->cfg.rooms.max_streams_per_participant;
    if (cap > WSDP_MAX_MEDIA) cap = WSDP_MAX_MEDIA;
    p->streams = calloc(cap ? cap : 1, sizeof(*p->streams));
    if (!p->streams) return -ENOMEM;
    for (size_t i = 0; i < a->n_media && i < WSDP_MAX_MEDIA; i++) {
        const struct wsdp_media *m = &a->media[i];
        const struct wsdp_codec *c = wsdp_media_codec(m);
        if (!c || m->port == 0 || m->kind == WSDP_KIND_OTHER) continue;
        if (p->n_streams == cap) {
            log_warn("sfu: %s offers more than %zu streams: m-line %s not forwarded", p->room, cap, m->mid);
            break;
        }
        struct sfu_stream *st = &p->streams[p->n_streams];
        st->pub = p;
        st->media_index = i;
        st->kind = m->kind == WSDP_KIND_VIDEO ? ROOM_STREAM_VIDEO : ROOM_STREAM_AUDIO;
        snprintf(st->mid, sizeof(st->mid), "%s", m->mid);
        if (m->mid[0])
            snprintf(st->id, sizeof(st->id), "%s", m->mid);
        else
            snprintf(st->id, sizeof(st->id), "%s%zu", room_stream_kind_name(st->kind), i);
        st->mid_ext = wsdp_media_ext_id(m, WSDP_EXT_MID);
        struct fwd_stream_config fc = {
            .video = st->kind == ROOM_STREAM_VIDEO,
            .pt = c->pt,
            .ssrc = m->n_ssrcs ? m->ssrcs[0].ssrc : 0,
            .clock = c->clock,
            .use_fir = c->fb_fir && !c->fb_pli,
            .nack = c->fb_nack,
            .cache_ms = s->cfg.nack_cache_ms,
        };
        if (m->n_rids && st->kind == ROOM_STREAM_VIDEO) {
            if (sim_make(p, st, m, &fc) < 0) return -ENOMEM;
        } else if (forward_stream_init(&st->fs, &fc) < 0) {
            return -ENOMEM;
        }
        p->n_streams++;
    }
    return 0;
}

/* A peer whose setup failed: nothing points at it yet. */
static void peer_discard(struct sfu_peer *p)
{
    if (p->rtc) rtc_peer_close(p->rtc);
    streams_free(p);
    free(p);
}

static struct sfu_peer *peer_alloc(struct sfu *s, const char *room, bool publisher)
{
    struct sfu_peer *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->s = s;
    p->publisher = publisher;
    p->max_layer = FWD_MAX_LAYERS - 1;
    snprintf(p->room, sizeof(p->room), "%s", room);
    return p;
}

/* Parses the offer and makes the rtc peer for it. */
static int offer_peer(struct sfu *s, struct sfu_peer *p, const char *offer, size_t offer_len,
                      struct wsdp_session *parsed, const char **why)
{
    if (!offer || wsdp_parse(offer, offer_len, parsed, why) < 0) {
        if (!offer) *why = "no offer";
        return -EINVAL;
    }
    p->rtc = rtc_peer_new(s->rtc, parsed->ice_ufrag, parsed->fingerprint, p);
    if (!p->rtc) {
        *why = "no room for another media peer";
        return -ENOSPC;
    }
    return 0;
}

/* The transport-wide-cc extension's id in an answer (BUNDLE: one id for
 * the transport; the first m-line naming it), 0 when not agreed. */
static uint8_t answer_twcc_id(const struct wsdp_session *a)
{
    for (size_t i = 0; i < a->n_media && i < WSDP_MAX_MEDIA; i++) {
        uint8_t id = a->media[i].port ? wsdp_media_ext_id(&a->media[i], WSDP_EXT_TWCC) : 0;
        if (id && id < FWD_EXT_IDS) return id;
    }
    return 0;
}

/* A publishing peer for room from an offer: the offer read, the answer made
 * (p->answer, its candidates in cands/local, which the caller writes out
 * later), its streams made. 0, or a negative errno with *why; either way
 * *p and *off are the caller's to keep or discard (peer_discard, free). */
static int publisher_from_offer(struct sfu *s, const char *room, const char *offer, size_t offer_len,
                                struct wsdp_candidate cands[WSDP_MAX_CANDIDATES], struct wsdp_local *local,
                                struct sfu_peer **p_out, struct wsdp_session **off_out, const char **why)
{
    struct sfu_peer *p = *p_out = peer_alloc(s, room, true);
    struct wsdp_session *off = *off_out = calloc(1, sizeof(*off));
    if (p) p->answer = calloc(1, sizeof(*p->answer));
    if (!p || !off || !p->answer) {
        *why = "out of memory";
        return -ENOMEM;
    }
    int rc = offer_peer(s, p, offer, offer_len, off, why);
    if (rc < 0) return rc;
    local_for(s, p->rtc, cands, local);
    if (wsdp_answer_publish(off, local, p->answer, why) < 0) return -ENOTSUP;
    if ((p->twcc_id = answer_twcc_id(p->answer)) != 0) {
        if (!(p->twr = malloc(sizeof(*p->twr)))) {
            *why = "out of memory";
            return -ENOMEM;
        }
        twcc_recv_init(p->twr);
    }
    if (streams_make(s, p) < 0) {
        *why = "out of memory";
        return -ENOMEM;
    }
    return 0;
}

/* A viewing peer for room from an offer, on publisher pub's streams: the
 * offer read, the answer made (*ans_out, its candidates in cands/local, which
 * the caller writes out later). The caller binds the streams
 * (viewer_attach with *ans_out) once the peer is indexed. 0, or a negative
 * errno with *why; either way *p_out, *off_out and *ans_out are the caller's
 * to keep or discard (peer_discard, free). */
static int viewer_from_offer(struct sfu *s, const char *room, const struct sfu_peer *pub, const char *offer,
                             size_t offer_len, struct wsdp_candidate cands[WSDP_MAX_CANDIDATES],
                             struct wsdp_local *local, struct sfu_peer **p_out, struct wsdp_session **off_out,
                             struct wsdp_session **ans_out, const char **why)
{
    struct sfu_peer *p = *p_out = peer_alloc(s, room, false);
    struct wsdp_session *off = *off_out = calloc(1, sizeof(*off));
    struct wsdp_session *ans = *ans_out = calloc(1, sizeof(*ans));
    if (!p || !off || !ans) {
        *why = "out of memory";
        return -ENOMEM;
    }
    int rc = offer_peer(s, p, offer, offer_len, off, why);
    if (rc < 0) return rc;
    local_for(s, p->rtc, cands, local);
    if (wsdp_answer_view(off, pub->answer, local, ans, why) < 0) return -ENOTSUP;
    if ((p->twcc_id = answer_twcc_id(ans)) != 0) {
        if (!(p->tws = malloc(sizeof(*p->tws)))) {
            *why = "out of memory";
            return -ENOMEM;
        }
        twcc_send_init(p->tws);
    }
    return 0;
}

int sfu_publish(struct sfu *s, const char *room, const char *name, const char *user, const char *offer,
                size_t offer_len, sbuf_t *answer, char id_out[ROOM_ID_LEN + 1], const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    *why = "";
    if (!room || (*why = room_name_check(room)) != NULL) return -EINVAL;
    *why = "";
    struct sfu_peer *p = NULL;
    struct wsdp_session *off = NULL;
    struct wsdp_candidate cands[WSDP_MAX_CANDIDATES];
    struct wsdp_local local;
    int rc = publisher_from_offer(s, room, offer, offer_len, cands, &local, &p, &off, why);
    if (rc < 0) goto fail;
    /* A publisher with a user key replaces its earlier self (a reloaded page). */
    if ((rc = admit(s, p, name, user, user && *user, p->answer, &local, answer, why)) < 0) goto fail;
    free(off);
    if (id_out) memcpy(id_out, p->id, ROOM_ID_LEN + 1);
    log_info("sfu: %s publishes in %s (%zu streams)", p->id, room, p->n_streams);
    zombie_sweep(s); /* the replaced one, if any */
    return 0;
fail:
    free(off);
    if (p) peer_discard(p);
    zombie_sweep(s);
    return rc;
}

/* The room's newest publisher with streams announced. */
static struct sfu_peer *current_publisher(struct sfu *s, const char *room)
{
    for (struct sfu_peer *p = s->tail; p; p = p->prev)
        if (p->publisher && p->confirmed && p->n_streams && strcmp(p->room, room) == 0) return p;
    return NULL;
}

int sfu_view(struct sfu *s, const char *room, const char *publisher_id, const char *name, const char *user,
             const char *offer, size_t offer_len, sbuf_t *answer, char id_out[ROOM_ID_LEN + 1], const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    *why = "";
    if (!room || (*why = room_name_check(room)) != NULL) return -EINVAL;
    struct room_info ri;
    if (room_get(s->rooms, room, &ri) < 0) {
        *why = "no such room";
        return -ENOENT;
    }
    struct sfu_peer *pub = publisher_id ? publishing_peer(s, publisher_id) : current_publisher(s, room);
    if (!pub || !pub->publisher || strcmp(pub->room, room) != 0 || !pub->answer) {
        *why = publisher_id ? "no such publisher in this room" : "nobody publishes in this room";
        return -ENOENT;
    }
    struct sfu_peer *p = NULL;
    struct wsdp_session *off = NULL, *ans = NULL;
    struct wsdp_candidate cands[WSDP_MAX_CANDIDATES];
    struct wsdp_local local;
    int rc = viewer_from_offer(s, room, pub, offer, offer_len, cands, &local, &p, &off, &ans, why);
    if (rc < 0) goto fail;
    if ((rc = admit(s, p, name, user, false, ans, &local, answer, why)) < 0) goto fail;
    viewer_attach(p, pub, ans);
    free(off);
    free(ans);
    if (id_out) memcpy(id_out, p->id, ROOM_ID_LEN + 1);
    log_info("sfu: %s views %s in %s (%zu streams)", p->id, pub->id, room, p->n_sinks);
    return 0;
fail:
    free(off);
    free(ans);
    if (p) peer_discard(p);
    return rc;
}

/* ---- leaving ---- */

int sfu_exit(struct sfu *s, const char *participant_id, enum room_leave_reason reason)
{
    struct sfu_peer *p = part_peer(s, participant_id);
    struct sfu_member *m = p ? NULL : member_find(s, participant_id);
    if (!p && !m) return -ENOENT;
    char id[ROOM_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", participant_id);
    room_participant_exit(s->rooms, id, reason, now_ms(s));
    /* The left event retired and freed them; a pending peer has none. */
    if ((p = part_peer(s, id)) != NULL) peer_retire(p);
    if ((m = member_find(s, id)) != NULL) member_free(s, m);
    zombie_sweep(s);
    return 0;
}

int sfu_leave(struct sfu *s, const char *participant_id) { return sfu_exit(s, participant_id, ROOM_LEAVE_REQUEST); }
int sfu_kick(struct sfu *s, const char *participant_id) { return sfu_exit(s, participant_id, ROOM_LEAVE_KICKED); }

int sfu_close_room(struct sfu *s, const char *room)
{
    if (!room) return -ENOENT;
    int rc = room_close(s->rooms, room, now_ms(s));
    if (rc < 0) return rc;
    /* The announced ones were retired by their left events; the pending
     * ones left silently. */
    struct sfu_peer *p = s->head;
    while (p) {
        struct sfu_peer *next = p->next;
        if (strcmp(p->room, room) == 0) peer_retire(p);
        p = next;
    }
    zombie_sweep(s);
    return 0;
}

static int set_layer(struct sfu_peer *v, int max_layer)
{
    if (!v) return -ENOENT;
    if (v->publisher || max_layer < 0) return -EINVAL;
    if (max_layer >= FWD_MAX_LAYERS) max_layer = FWD_MAX_LAYERS - 1;
    for (size_t i = 0; i < v->n_sinks; i++)
        if (v->sinks[i].sim) v->sinks[i].sel.max_layer = max_layer;
    v->max_layer = max_layer;
    return 0;
}

int sfu_set_max_layer(struct sfu *s, const char *viewer_id, int max_layer)
{
    return set_layer(part_peer(s, viewer_id), max_layer);
}

void sfu_set_observer(struct sfu *s, const struct sfu_observer *ob)
{
    s->ob = ob ? *ob : (struct sfu_observer){0};
}

/* ---- members: participants of the room WebSocket ---- */

int sfu_join(struct sfu *s, const char *room, const char *name, const char *user, char id_out[ROOM_ID_LEN + 1],
             const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    if (!room || (*why = room_name_check(room)) != NULL) return -EINVAL;
    struct sfu_member *m = calloc(1, sizeof(*m));
    if (!m) {
        *why = "out of memory";
        return -ENOMEM;
    }
    snprintf(m->room, sizeof(m->room), "%s", room);
    struct room_join_req req = {.room = room, .name = name, .user = user};
    int rc = room_join(s->rooms, &req, now_ms(s), m->id);
    if (rc < 0) {
        free(m);
        return join_error(rc, why);
    }
    if (htable_insert(&s->members, &m->by_id, id_hash(m->id)) < 0) {
        room_participant_exit(s->rooms, m->id, ROOM_LEAVE_DISCONNECTED, now_ms(s));
        free(m);
        *why = "out of memory";
        return -ENOMEM;
    }
    s->n_members++;
    memcpy(id_out, m->id, ROOM_ID_LEN + 1);
    *why = "";
    log_info("sfu: %s joins %s", m->id, room);
    return 0;
}

/* A new peer of member m: its own id (16 hex digits, not a participant's). */
static int member_peer_id(struct sfu *s, char out[ROOM_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int tries = 0; tries < 8; tries++) {
        uint8_t b[ROOM_ID_LEN / 2];
        if (RAND_bytes(b, sizeof(b)) != 1) return -ENOMEM;
        for (size_t i = 0; i < sizeof(b); i++) {
            out[2 * i] = hex[b[i] >> 4];
            out[2 * i + 1] = hex[b[i] & 15];
        }
        out[ROOM_ID_LEN] = '\0';
        if (!peer_find(s, out) && !member_find(s, out)) return 0;
    }
    return -ENOMEM;
}

/* Indexes a member's new peer once its answer is written. */
static int member_peer_add(struct sfu *s, struct sfu_member *m, struct sfu_peer *p, const struct wsdp_session *ans,
                           const struct wsdp_local *local, sbuf_t *out, const char **why)
{
    if (wsdp_write(out, ans, local) < 0 || out->failed) {
        *why = out->failed ? "out of memory" : "could not write the answer";
        return out->failed ? -ENOMEM : -EINVAL;
    }
    if (member_peer_id(s, p->id) < 0 || htable_insert(&s->by_id, &p->by_id, id_hash(p->id)) < 0) {
        *why = "out of memory";
        return -ENOMEM;
    }
    memcpy(p->part, m->id, sizeof(p->part));
    p->member = m;
    live_append(s, p);
    if (p->publisher) {
        s->publishers++;
        m->pub = p;
    } else {
        s->viewers++;
        p->m_next = m->subs;
        if (m->subs) m->subs->m_prev = p;
        m->subs = p;
        m->n_subs++;
    }
    return 0;
}

int sfu_publish_as(struct sfu *s, const char *member_id, const char *offer, size_t offer_len, sbuf_t *answer,
                   const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    *why = "";
    struct sfu_member *m = member_find(s, member_id);
    if (!m) {
        *why = "not in a room";
        return -ENOENT;
    }
    struct sfu_peer *p = NULL;
    struct wsdp_session *off = NULL;
    struct wsdp_candidate cands[WSDP_MAX_CANDIDATES];
    struct wsdp_local local;
    int rc = publisher_from_offer(s, m->room, offer, offer_len, cands, &local, &p, &off, why);
    if (rc < 0) goto fail;
    /* A publish again (a new camera, a renegotiation) replaces the last. */
    if (m->pub) member_pub_end(s, m->pub, "replaced", false);
    if ((rc = member_peer_add(s, m, p, p->answer, &local, answer, why)) < 0) goto fail;
    free(off);
    log_info("sfu: %s publishes in %s through peer %s (%zu streams)", m->id, m->room, p->id, p->n_streams);
    zombie_sweep(s);
    return 0;
fail:
    free(off);
    if (p) peer_discard(p);
    zombie_sweep(s);
    return rc;
}

int sfu_subscribe_as(struct sfu *s, const char *member_id, const char *publisher_id, const char *offer,
                     size_t offer_len, int max_layer, sbuf_t *answer, const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    *why = "";
    struct sfu_member *m = member_find(s, member_id);
    if (!m) {
        *why = "not in a room";
        return -ENOENT;
    }
    if (publisher_id && strcmp(publisher_id, m->id) == 0) {
        *why = "a participant cannot subscribe to itself";
        return -EINVAL;
    }
    struct sfu_peer *pub = publishing_peer(s, publisher_id);
    if (!pub || strcmp(pub->room, m->room) != 0 || !pub->answer) {
        *why = "that participant does not publish in this room";
        return -ENOENT;
    }
    struct sfu_peer *old = member_sub(m, publisher_id);
    if (!old && m->n_subs >= s->cfg.rooms.max_subscriptions_per_participant) {
        *why = "too many subscriptions";
        return -ENOSPC;
    }
    struct sfu_peer *p = NULL;
    struct wsdp_session *off = NULL, *ans = NULL;
    struct wsdp_candidate cands[WSDP_MAX_CANDIDATES];
    struct wsdp_local local;
    int rc = viewer_from_offer(s, m->room, pub, offer, offer_len, cands, &local, &p, &off, &ans, why);
    if (rc < 0) goto fail;
    if (old) member_sub_end(s, old, "replaced", false);
    if ((rc = member_peer_add(s, m, p, ans, &local, answer, why)) < 0) goto fail;
    snprintf(p->target, sizeof(p->target), "%s", publisher_id);
    if (max_layer >= 0) set_layer(p, max_layer);
    viewer_attach(p, pub, ans);
    free(off);
    free(ans);
    log_info("sfu: %s subscribes to %s in %s through peer %s (%zu streams)", m->id, publisher_id, m->room, p->id,
             p->n_sinks);
    zombie_sweep(s);
    return 0;
fail:
    free(off);
    free(ans);
    if (p) peer_discard(p);
    zombie_sweep(s);
    return rc;
}

int sfu_unsubscribe_as(struct sfu *s, const char *member_id, const char *publisher_id)
{
    struct sfu_member *m = member_find(s, member_id);
    struct sfu_peer *v = m && publisher_id ? member_sub(m, publisher_id) : NULL;
    if (!v) return -ENOENT;
    member_sub_end(s, v, "unsubscribed", false);
    zombie_sweep(s);
    return 0;
}

int sfu_set_max_layer_as(struct sfu *s, const char *member_id, const char *publisher_id, int max_layer)
{
    struct sfu_member *m = member_find(s, member_id);
    return set_layer(m && publisher_id ? member_sub(m, publisher_id) : NULL, max_layer);
}

/* ---- lookups ---- */

void sfu_get_stats(const struct sfu *s, struct sfu_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->rooms = room_registry_count(s->rooms);
    out->publishers = s->publishers;
    out->viewers = s->viewers;
    out->participants = s->n_own + s->n_members;
    out->rtp_forwarded = s->rtp_forwarded;
    out->rtp_dropped = s->rtp_dropped;
    out->nacks_answered = s->nacks_answered;
    out->nacks_forwarded = s->nacks_forwarded;
    out->plis_sent = s->plis_sent;
    rtc_transport_get_stats(s->rtc, &out->rtc);
}

int sfu_peer_info(const struct sfu *s, const char *participant_id, struct sfu_peer_info *out)
{
    const struct sfu_peer *p = part_peer(s, participant_id);
    const struct sfu_member *m = p ? NULL : member_find(s, participant_id);
    if (!p && !m) return -ENOENT;
    memset(out, 0, sizeof(*out));
    if (m) { /* a member: what its publishing peer does */
        out->member = true;
        out->subscriptions = m->n_subs;
        if (!(p = m->pub)) return 0;
    }
    out->connected = p->connected && p->rtc;
    out->publisher = p->publisher;
    if (p->rtc) {
        snprintf(out->remote, sizeof(out->remote), "%s", rtc_peer_remote(p->rtc));
        rtc_peer_get_stats(p->rtc, &out->stats);
    }
    if (p->viewing) memcpy(out->viewing, p->viewing->id, ROOM_ID_LEN + 1);
    out->transport_cc = p->twr || p->tws;
    if (p->twr) out->twcc_feedbacks = p->twr->feedbacks;
    if (p->tws) {
        out->twcc_feedbacks = p->tws->feedbacks;
        out->twcc_bps = twcc_send_estimate(p->tws);
        out->twcc_queue_us = twcc_bwe_queue_us(&p->tws->bwe);
        out->twcc_delivered_bps = p->tws->bwe.acked_bps;
    }
    out->remb_bps = p->remb_bps;
    out->bwe_bps = viewer_estimate(p);
    for (size_t i = 0; i < p->n_sinks; i++)
        if (p->sinks[i].sim) {
            out->layer_trials += p->sinks[i].sel.trials;
            out->layer_trials_failed += p->sinks[i].sel.trials_failed;
        }
    return 0;
}

void sfu_delay_histogram(const struct sfu *s, uint64_t out[RTC_DELAY_BUCKETS])
{
    rtc_transport_delay_histogram(s->rtc, out);
}

uint64_t sfu_delay_sum_us(const struct sfu *s) { return rtc_transport_delay_sum_us(s->rtc); }

/* ---- local sources (sfu.h): a publisher whose packets we make ----
 *
 * The source is an sfu_peer like any publisher — its answer made here
 * rather than from an offer, no rtc peer, connected from the start — so the
 * view path, the sinks and the NACK cache are the publishers'. Its handle
 * finds the peer by id on every call: the peer may be retired under it
 * (kicked, its room closed), the handle then answers -ENOENT. */

#define SFU_SOURCE_PT 102
#define SFU_SOURCE_GOP (2u << 20)
#define SFU_SOURCE_AUDIO_PACKET 160 /* G.711 samples per RTP packet: 20 ms, what browsers expect (ptime 20) */

struct sfu_source {
    struct sfu *s;
    char id[ROOM_ID_LEN + 1];
    char room[ROOM_NAME_MAX + 1];
    struct sfu_source_callbacks cb;
    gb_h264_rtp_t pk;
    /* The newest GOP's packets as sent, each behind a 2-byte length. */
    uint8_t *gop;
    size_t gop_len, gop_cap;
    bool gop_ok;                  /* gop holds everything since a key frame */
    /* G.711 audio (cfg.audio): its own SSRC and sequence, packets sent as made */
    bool has_audio;
    uint8_t audio_pt;             /* 8 PCMA, 0 PCMU (RFC 3551 static types) */
    uint32_t audio_ssrc;
    uint16_t audio_seq;
    struct sfu_source_stats st;
};

static struct sfu_peer *source_peer(const struct sfu_source *src)
{
    struct sfu_peer *p = part_peer(src->s, src->id);
    return p && p->src == src ? p : NULL;
}

static void source_viewer_note(struct sfu_peer *v, struct sfu_peer *pub, bool joined)
{
    struct sfu_source *src = pub->src;
    v->src_joined = joined;
    if (!src) return;
    if (joined)
        src->st.viewers++;
    else if (src->st.viewers)
        src->st.viewers--;
    if (src->cb.viewer) src->cb.viewer(src->cb.user, v->part, joined);
}

/* A viewer's peer connected: the GOP so far, so its first frame decodes. */
static void source_connected(struct sfu_peer *v)
{
    struct sfu_peer *pub = v->viewing;
    struct sfu_source *src = pub->src;
    struct sfu *s = pub->s;
    source_viewer_note(v, pub, true);
    if (!src->gop_ok || !src->gop_len) return;
    src->st.gop_replays++;
    rtc_transport_batch_begin(s->rtc);
    for (size_t off = 0; off + 2 <= src->gop_len;) {
        size_t n = (size_t)src->gop[off] << 8 | src->gop[off + 1];
        const uint8_t *pkt = src->gop + off + 2;
        off += 2 + n;
        for (size_t i = 0; i < v->n_sinks; i++)
            if (v->sinks[i].st && v->sinks[i].st->pub == pub && send_to_sink(s, &v->sinks[i], pkt, n))
                s->rtp_forwarded++;
    }
    rtc_transport_batch_flush(s->rtc);
}

static void source_keyframe(struct sfu_peer *pub)
{
    struct sfu_source *src = pub->src;
    src->st.keyframe_requests++;
    if (src->cb.keyframe) src->cb.keyframe(src->cb.user);
}

/* What a publish answer would hold for one H.264 video stream we send. */
static void source_answer(struct wsdp_session *a, const char *room, const char *plid, uint32_t ssrc)
{
    a->bundle = true;
    a->n_media = 1;
    struct wsdp_media *m = &a->media[0];
    m->kind = WSDP_KIND_VIDEO;
    snprintf(m->kind_name, sizeof(m->kind_name), "video");
    snprintf(m->proto, sizeof(m->proto), "UDP/TLS/RTP/SAVPF");
    m->port = 9;
    snprintf(m->mid, sizeof(m->mid), "0");
    m->dir = WSDP_DIR_RECVONLY;
    m->rtcp_mux = m->rtcp_rsize = true;
    struct wsdp_codec *c = &m->codecs[0];
    m->n_codecs = 1;
    c->pt = SFU_SOURCE_PT;
    snprintf(c->name, sizeof(c->name), "H264");
    c->clock = 90000;
    snprintf(c->fmtp, sizeof(c->fmtp), "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=%s", plid);
    c->fb_nack = c->fb_pli = c->fb_fir = true;
    m->fmt_pts[0] = SFU_SOURCE_PT;
    m->n_fmt_pts = 1;
    snprintf(m->msid_stream, sizeof(m->msid_stream), "%.40s", room);
    snprintf(m->msid_track, sizeof(m->msid_track), "video");
    m->ssrcs[0].ssrc = ssrc;
    snprintf(m->ssrcs[0].cname, sizeof(m->ssrcs[0].cname), SFU_CNAME);
    m->n_ssrcs = 1;
}

/* The source's audio m-line (mid "1"): G.711 at 8 kHz mono, no feedback
 * (nothing upstream to ask for a retransmission). */
static void source_answer_audio(struct wsdp_session *a, const char *room, const char *law, uint8_t pt, uint32_t ssrc)
{
    struct wsdp_media *m = &a->media[a->n_media++];
    m->kind = WSDP_KIND_AUDIO;
    snprintf(m->kind_name, sizeof(m->kind_name), "audio");
    snprintf(m->proto, sizeof(m->proto), "UDP/TLS/RTP/SAVPF");
    m->port = 9;
    snprintf(m->mid, sizeof(m->mid), "1");
    m->dir = WSDP_DIR_RECVONLY;
    m->rtcp_mux = m->rtcp_rsize = true;
    struct wsdp_codec *c = &m->codecs[0];
    m->n_codecs = 1;
    c->pt = pt;
    snprintf(c->name, sizeof(c->name), "%s", law);
    c->clock = 8000;
    m->fmt_pts[0] = pt;
    m->n_fmt_pts = 1;
    snprintf(m->msid_stream, sizeof(m->msid_stream), "%.40s", room);
    snprintf(m->msid_track, sizeof(m->msid_track), "audio");
    m->ssrcs[0].ssrc = ssrc;
    snprintf(m->ssrcs[0].cname, sizeof(m->ssrcs[0].cname), SFU_CNAME);
    m->n_ssrcs = 1;
}

static bool plid_ok(const char *v) { return strlen(v) == 6 && strspn(v, "0123456789abcdefABCDEF") == 6; }

/* The source's participant: joined and publishing at once. */
static int source_admit(struct sfu *s, struct sfu_peer *p, const struct sfu_source_config *cfg, const char **why)
{
    struct room_join_req req = {.room = cfg->room, .name = cfg->name};
    uint64_t now = now_ms(s);
    int rc = room_join(s->rooms, &req, now, p->id);
    if (rc < 0) return join_error(rc, why);
    if (htable_insert(&s->by_id, &p->by_id, id_hash(p->id)) < 0) {
        room_participant_exit(s->rooms, p->id, ROOM_LEAVE_DISCONNECTED, now);
        *why = "out of memory";
        return -ENOMEM;
    }
    memcpy(p->part, p->id, sizeof(p->part));
    live_append(s, p);
    s->n_own++;
    s->publishers++;
    p->connected = p->confirmed = true;
    publish_streams(s, p, now);
    return 0;
}

struct sfu_source *sfu_source_new(struct sfu *s, const struct sfu_source_config *cfg, int *err, const char **why)
{
    const char *dummy;
    int e;
    if (!why) why = &dummy;
    if (!err) err = &e;
    *why = "";
    const char *plid = cfg->profile_level_id ? cfg->profile_level_id : "42e01f";
    bool audio = cfg->audio != NULL;
    if (audio && strcmp(cfg->audio, "PCMA") != 0 && strcmp(cfg->audio, "PCMU") != 0) {
        *why = "audio is PCMA or PCMU";
        *err = -EINVAL;
        return NULL;
    }
    if (!cfg->room || (*why = room_name_check(cfg->room)) != NULL || !plid_ok(plid)) {
        if (!*why) *why = "bad profile-level-id";
        *err = -EINVAL;
        return NULL;
    }
    struct sfu_source *src = calloc(1, sizeof(*src));
    struct sfu_peer *p = src ? peer_alloc(s, cfg->room, true) : NULL;
    if (p) p->answer = calloc(1, sizeof(*p->answer));
    if (src) src->gop_cap = cfg->gop_cache_bytes ? cfg->gop_cache_bytes : SFU_SOURCE_GOP;
    if (src) src->gop = malloc(src->gop_cap);
    uint32_t ssrc = 0;
    uint16_t seq = 0;
    *err = -ENOMEM;
    *why = "out of memory";
    if (!p || !p->answer || !src->gop) goto fail;
    if (RAND_bytes((unsigned char *)&ssrc, sizeof(ssrc)) != 1 || RAND_bytes((unsigned char *)&seq, sizeof(seq)) != 1)
        goto fail;
    if (!ssrc) ssrc = 0x6B000001u;
    source_answer(p->answer, cfg->room, plid, ssrc);
    if (audio) {
        src->has_audio = true;
        src->audio_pt = cfg->audio[3] == 'A' ? 8 : 0;
        if (RAND_bytes((unsigned char *)&src->audio_ssrc, sizeof(src->audio_ssrc)) != 1 ||
            RAND_bytes((unsigned char *)&src->audio_seq, sizeof(src->audio_seq)) != 1)
            goto fail;
        if (!src->audio_ssrc || src->audio_ssrc == ssrc) src->audio_ssrc = ssrc ^ 0x5A5A0001u;
        source_answer_audio(p->answer, cfg->room, cfg->audio, src->audio_pt, src->audio_ssrc);
    }
    if (streams_make(s, p) < 0 || p->n_streams != (audio ? 2u : 1u)) goto fail;
    for (size_t i = 0; i < p->n_streams; i++) p->streams[i].fs.cfg.nack = false; /* nobody upstream to ask */
    if (gb_h264_rtp_init(&src->pk, ssrc, SFU_SOURCE_PT, seq, 0) < 0) goto fail;
    if ((*err = source_admit(s, p, cfg, why)) < 0) goto fail;
    src->s = s;
    src->cb = cfg->cb;
    memcpy(src->id, p->id, sizeof(src->id));
    snprintf(src->room, sizeof(src->room), "%s", cfg->room);
    p->src = src;
    *why = "";
    log_info("sfu: %s is a local H.264 source in %s (profile-level-id %s%s%s)", p->id, cfg->room, plid,
             audio ? ", audio " : "", audio ? cfg->audio : "");
    return src;
fail:
    if (p) peer_discard(p);
    if (src) free(src->gop);
    free(src);
    return NULL;
}

/* Keeps a packet of the GOP being sent; one that does not fit ends the
 * keeping until the next key frame (viewers then wait for that one). */
static void source_keep(struct sfu_source *src, const uint8_t *pkt, size_t n)
{
    if (!src->gop_ok) return;
    if (src->gop_cap - src->gop_len < n + 2) {
        src->gop_ok = false;
        src->st.gop_overflows++;
        return;
    }
    src->gop[src->gop_len] = (uint8_t)(n >> 8);
    src->gop[src->gop_len + 1] = (uint8_t)n;
    memcpy(src->gop + src->gop_len + 2, pkt, n);
    src->gop_len += n + 2;
}

int sfu_source_video(struct sfu_source *src, const uint8_t *au, size_t len, uint32_t pts90k, bool key)
{
    struct sfu_peer *p = source_peer(src);
    if (!p) return -ENOENT;
    struct sfu *s = src->s;
    struct sfu_stream *st = &p->streams[0];
    if (!au || !len || gb_h264_rtp_begin(&src->pk, au, len, pts90k) <= 0) return 0;
    if (key) {
        src->gop_len = 0;
        src->gop_ok = true;
    }
    src->st.access_units++;
    uint64_t now = now_ms(s);
    uint8_t pkt[SFU_BUF];
    int n;
    rtc_transport_batch_begin(s->rtc);
    while ((n = gb_h264_rtp_next(&src->pk, pkt, RTC_MAX_PACKET)) > 0) {
        struct fwd_rtp h;
        if (forward_rtp_parse(pkt, (size_t)n, &h) < 0) break;
        forward_stream_receive(&st->fs, pkt, (size_t)n, &h, now); /* into the NACK cache */
        source_keep(src, pkt, (size_t)n);
        src->st.packets++;
        for (struct sfu_sink *k = st->sinks; k; k = k->next)
            if (send_to_sink(s, k, pkt, (size_t)n)) s->rtp_forwarded++;
    }
    rtc_transport_batch_flush(s->rtc);
    return 0;
}

int sfu_source_audio(struct sfu_source *src, const uint8_t *samples, size_t len, uint32_t ts8k)
{
    if (!src->has_audio) return -EINVAL;
    struct sfu_peer *p = source_peer(src);
    if (!p) return -ENOENT;
    if (!samples || !len || p->n_streams < 2) return 0;
    struct sfu *s = src->s;
    struct sfu_stream *st = &p->streams[1];
    uint64_t now = now_ms(s);
    uint8_t pkt[12 + SFU_SOURCE_AUDIO_PACKET];
    rtc_transport_batch_begin(s->rtc);
    for (size_t off = 0; off < len;) {
        size_t n = len - off < SFU_SOURCE_AUDIO_PACKET ? len - off : SFU_SOURCE_AUDIO_PACKET;
        uint32_t ts = ts8k + (uint32_t)off;
        /* RFC 3550 §5.1 header, no marker: G.711 is sent without silence suppression. */
        pkt[0] = 0x80;
        pkt[1] = src->audio_pt;
        pkt[2] = (uint8_t)(src->audio_seq >> 8), pkt[3] = (uint8_t)src->audio_seq;
        pkt[4] = (uint8_t)(ts >> 24), pkt[5] = (uint8_t)(ts >> 16), pkt[6] = (uint8_t)(ts >> 8), pkt[7] = (uint8_t)ts;
        pkt[8] = (uint8_t)(src->audio_ssrc >> 24), pkt[9] = (uint8_t)(src->audio_ssrc >> 16);
        pkt[10] = (uint8_t)(src->audio_ssrc >> 8), pkt[11] = (uint8_t)src->audio_ssrc;
        memcpy(pkt + 12, samples + off, n);
        src->audio_seq++;
        off += n;
        struct fwd_rtp h;
        if (forward_rtp_parse(pkt, 12 + n, &h) < 0) break;
        forward_stream_receive(&st->fs, pkt, 12 + n, &h, now);
        src->st.audio_packets++;
        for (struct sfu_sink *k = st->sinks; k; k = k->next)
            if (send_to_sink(s, k, pkt, 12 + n)) s->rtp_forwarded++;
    }
    rtc_transport_batch_flush(s->rtc);
    return 0;
}

const char *sfu_source_id(const struct sfu_source *src) { return src->id; }
const char *sfu_source_room(const struct sfu_source *src) { return src->room; }

void sfu_source_get_stats(const struct sfu_source *src, struct sfu_source_stats *out) { *out = src->st; }

void sfu_source_free(struct sfu_source *src)
{
    if (!src) return;
    struct sfu_peer *p = source_peer(src);
    if (p) {
        p->src = NULL; /* no callback from here on */
        sfu_close_room(src->s, src->room);
    }
    free(src->gop);
    free(src);
}
