/* sfu.h — the selective forwarding unit: rooms (room.h) with WebRTC peers
 * (rtc.h) behind them, the answers to publish/view offers (webrtc_sdp.h), and the
 * forwarding of each publisher's RTP to its viewers.
 *
 * Signaling front ends (WHIP/WHEP over HTTP, the room WebSocket) call in
 * here; they never touch peers or packets. Each call names participants by
 * id (room.h's rule), so a late call for someone already gone is a clean
 * -ENOENT.
 *
 * Forwarding keeps the publisher's SSRCs and sequence numbers (the viewer's
 * answer announces them) — except for simulcast (RFC 8853: a publisher's
 * video in 2-3 rid layers), where each viewer gets one layer as one stream
 * under an SSRC of ours, the layer chosen from the viewer's REMB and
 * sfu_set_max_layer and switched only at a key frame; per viewer it rewrites the payload type to the
 * viewer's number for the same codec and the one-byte header-extension ids
 * to the viewer's (extensions the viewer did not agree to are blanked to
 * padding), then protects with the viewer's SRTP context. Each publisher
 * stream keeps a NACK cache (~1 s of packets): a viewer's generic NACK is
 * answered from it; a miss is passed to the publisher. A viewer that
 * connects, or sends PLI/FIR, makes the server ask the publisher for a key
 * frame (PLI, at most one per stream per pli_interval_ms). Publisher SR are
 * forwarded; the server sends the publisher RR and REMB (remb_bps).
 *
 * Participants are WHIP/WHEP peers (one peer each) or members (the room
 * WebSocket: many peers each, see sfu_join below).
 *
 * Events: the room registry's (room.created|closed,
 * room.participant.joined|left, room.stream.published|unpublished) go to the
 * bus exactly once each. A participant is joined (announced) when its peer
 * connects; it leaves with reason leave (sfu_leave), disconnected (DTLS
 * closed, or never connected), consent-expired, kicked (sfu_kick). */
#ifndef CASCADE_MEDIA_SFU_H
#define CASCADE_MEDIA_SFU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/sbuf.h"
#include "events/events.h"
#include "media/room.h"
#include "media/rtc.h"

struct sfu;

struct sfu_config {
    struct rtc_config rtc;
    struct room_config rooms;
    uint32_t pli_interval_ms;     /* default 1000 */
    uint32_t remb_bps;            /* REMB sent to publishers; default 2500000 */
    uint32_t nack_cache_ms;       /* default 1000 */
};
void sfu_config_default(struct sfu_config *cfg);

/* bus may be NULL (no events). NULL with err when the transport cannot start. */
struct sfu *sfu_new(uv_loop_t *loop, const struct sfu_config *cfg, struct event_bus *bus, char *err, size_t errcap);
/* Every participant leaves with reason shutdown (events emitted), then the
 * transport is freed; keep running the loop until it has no handles. */
void sfu_free(struct sfu *s);

/* The room registry, for read-only listings (room_list, room_get,
 * room_participants, room_participant_get) by the API. */
const struct room_registry *sfu_rooms(const struct sfu *s);

/* Publish into room (created on first use): offer in, answer out, the new
 * participant's id out. name/user as in room_join_req (may be NULL).
 * Returns 0 or a negative errno with *why a phrase for the client:
 *   -EINVAL  bad room name or bad offer (400)
 *   -ENOTSUP nothing in the offer we can receive (400 / 406)
 *   -ENOSPC  a cap reached: rooms, participants, peers (503)
 *   -ENOMEM */
int sfu_publish(struct sfu *s, const char *room, const char *name, const char *user, const char *offer,
                size_t offer_len, sbuf_t *answer, char id_out[ROOM_ID_LEN + 1], const char **why);

/* View a publisher in room: publisher_id, or NULL for the room's most
 * recent publisher that publishes now. Errors as sfu_publish plus
 *   -ENOENT  no such room / no publisher to view (404) */
int sfu_view(struct sfu *s, const char *room, const char *publisher_id, const char *name, const char *user,
             const char *offer, size_t offer_len, sbuf_t *answer, char id_out[ROOM_ID_LEN + 1], const char **why);

/* The participant leaves (reason leave) / is kicked; its peer is closed.
 * 0 or -ENOENT. */
int sfu_leave(struct sfu *s, const char *participant_id);

/* Simulcast: the highest layer (0: the lowest; layers go up in the
 * publisher's a=simulcast order) a viewer takes of every simulcast stream,
 * by default all. 0, -ENOENT, or -EINVAL (not a viewer, negative). */
int sfu_set_max_layer(struct sfu *s, const char *viewer_id, int max_layer);
int sfu_kick(struct sfu *s, const char *participant_id);
/* Any participant (WHIP/WHEP or member) leaves with this reason: 0 or
 * -ENOENT (gone already: the exit is exactly once). */
int sfu_exit(struct sfu *s, const char *participant_id, enum room_leave_reason reason);

/* ---- members: the participants of the room WebSocket ----
 * A member joins the room at once (joined emitted inside sfu_join) without
 * a peer; it then publishes through one peer (a new publish replaces it)
 * and subscribes to other participants through one peer each. A member
 * peer that goes (RTC consent expired, DTLS closed, never connected) ends
 * only its streams (unpublished, once each) or its subscription; the
 * member stays until sfu_exit/sfu_leave/sfu_kick, a room close or the
 * shutdown. Errors as sfu_publish / sfu_view; -ENOENT for an unknown
 * member or a participant that does not publish. */
int sfu_join(struct sfu *s, const char *room, const char *name, const char *user, char id_out[ROOM_ID_LEN + 1],
             const char **why);
int sfu_publish_as(struct sfu *s, const char *member_id, const char *offer, size_t offer_len, sbuf_t *answer,
                   const char **why);
/* max_layer < 0: all layers. A second subscribe to the same publisher
 * replaces the first; past max_subscriptions_per_participant: -ENOSPC. */
int sfu_subscribe_as(struct sfu *s, const char *member_id, const char *publisher_id, const char *offer,
                     size_t offer_len, int max_layer, sbuf_t *answer, const char **why);
/* 0 or -ENOENT (no such subscription). */
int sfu_unsubscribe_as(struct sfu *s, const char *member_id, const char *publisher_id);
/* sfu_set_max_layer for the member's subscription to publisher_id. */
int sfu_set_max_layer_as(struct sfu *s, const char *member_id, const char *publisher_id, int max_layer);

/* Who learns of the rooms besides the bus (the room WebSocket). Called
 * synchronously from inside sfu calls and transport callbacks: they may
 * record and queue, never call an sfu function that changes state.
 *   room_event  every room event, after the bus got it; pointers valid
 *               during the call only.
 *   peer_ended  a member's publishing peer (publisher_id NULL) or its
 *               subscription to publisher_id ended while the member stays;
 *               reason "consent-expired", "disconnected", "unpublished"
 *               (the publisher's peer went) or "left" (the publisher did).
 *               Not called for what the member asked (unsubscribe, a
 *               replacing publish/subscribe) nor when it leaves itself.
 *   detached    sfu_free: nothing is called after this. */
struct sfu_observer {
    void *user;
    void (*room_event)(void *user, const struct room_event *ev);
    void (*peer_ended)(void *user, const char *room, const char *participant_id, const char *publisher_id,
                       const char *reason);
    void (*detached)(void *user);
};
/* Replaces the observer (NULL: none). */
void sfu_set_observer(struct sfu *s, const struct sfu_observer *ob);
/* The room's participants all leave (reason room-closed) and it closes.
 * 0 or -ENOENT. */
int sfu_close_room(struct sfu *s, const char *room);

struct sfu_stats {
    uint32_t rooms, participants, publishers, viewers;
    uint64_t rtp_forwarded, rtp_dropped, nacks_answered, nacks_forwarded, plis_sent;
    struct rtc_transport_stats rtc;
};
void sfu_get_stats(const struct sfu *s, struct sfu_stats *out);

/* The transport's forwarding-delay histogram (rtc.h, RTC_DELAY_BUCKETS of
 * RTC_DELAY_BUCKET_US each), cumulative. */
void sfu_delay_histogram(const struct sfu *s, uint64_t out[RTC_DELAY_BUCKETS]);
uint64_t sfu_delay_sum_us(const struct sfu *s);

/* Per participant media counters for the API (0, or -ENOENT). */
struct sfu_peer_info {
    bool connected;
    char remote[64];               /* selected address, "" before ICE */
    bool publisher;
    char viewing[ROOM_ID_LEN + 1]; /* viewers: whom, "" when the publisher left */
    bool member;                   /* a room WebSocket participant: the rest is its publishing peer's */
    uint32_t subscriptions;        /* members: subscribing peers */
    struct rtc_peer_stats stats;
    /* bandwidth: transport_cc when its extension was agreed; a publisher's
     * twcc_feedbacks are those we sent it, a viewer's those it sent us */
    bool transport_cc;
    uint64_t twcc_feedbacks;
    uint64_t twcc_bps;             /* viewers: our transport-cc estimate (0: none yet) */
    uint64_t twcc_delivered_bps;   /* viewers: the rate its feedback says arrived */
    int64_t twcc_queue_us;         /* viewers: the queueing delay the estimator sees */
    uint64_t remb_bps;             /* viewers: its last REMB */
    uint64_t bwe_bps;              /* viewers: what picks its simulcast layer (the lower of the two) */
    uint64_t layer_trials;         /* viewers: higher simulcast layers tried (forward_sel_choose) */
    uint64_t layer_trials_failed;  /* ... and left again because the estimate fell */
};
int sfu_peer_info(const struct sfu *s, const char *participant_id, struct sfu_peer_info *out);

/* ---- local sources: streams the node makes itself ----
 * A source is a publisher without a WebRTC peer: the caller hands it H.264
 * access units (Annex B) and the SFU packetizes them (h264_rtp.h, mode 1)
 * and forwards the packets to the source's viewers exactly as a publisher's
 * (payload type and extension rewrite, SRTP, the NACK cache answering
 * NACKs). It is a participant of its room (announced at once, one video
 * stream "video", and with cfg.audio an audio stream of G.711 it is handed
 * as samples), so WHEP viewers find it with sfu_view(room, NULL).
 *
 * A source cannot be asked for a key frame, so it keeps the packets of its
 * newest GOP (up to gop_cache_bytes) and sends them to each viewer when
 * that viewer's peer connects: the viewer decodes at once rather than at
 * the next key frame. PLI/FIR of a viewer go to the keyframe callback.
 *
 * Callbacks run inside sfu calls and transport callbacks: they may record,
 * never call into the SFU. viewer: a viewer's peer connected (joined) or
 * the viewer is gone (left: it left, its peer went, the room closed). */
struct sfu_source;
struct sfu_source_callbacks {
    void *user;
    void (*keyframe)(void *user);
    void (*viewer)(void *user, const char *viewer_id, bool joined);
};
struct sfu_source_config {
    const char *room;              /* created when absent */
    const char *name;              /* display name, may be NULL */
    const char *profile_level_id;  /* 6 hex digits from the SPS; NULL: 42e01f */
    size_t gop_cache_bytes;        /* 0: 2 MiB */
    /* "PCMA" or "PCMU": a second m-line (audio, mid "1", 8 kHz, its own
     * SSRC) fed by sfu_source_audio; NULL: video only. */
    const char *audio;
    struct sfu_source_callbacks cb;
};
/* NULL with *err a negative errno (as sfu_publish) and *why a phrase. */
struct sfu_source *sfu_source_new(struct sfu *s, const struct sfu_source_config *cfg, int *err, const char **why);
/* One access unit (pts on the 90 kHz clock; key: an IDR is in it). 0, or
 * -ENOENT when the source's participant is gone (kicked, room closed):
 * free it and make another. */
int sfu_source_video(struct sfu_source *src, const uint8_t *au, size_t len, uint32_t pts90k, bool key);
/* G.711 samples (the law given as cfg.audio), ts8k the first sample's
 * RTP timestamp on the 8 kHz clock: sent as packets of 20 ms (160 samples;
 * the rest in a shorter one). 0, -EINVAL (the source has no audio), or
 * -ENOENT as sfu_source_video. */
int sfu_source_audio(struct sfu_source *src, const uint8_t *samples, size_t len, uint32_t ts8k);
const char *sfu_source_id(const struct sfu_source *src);
const char *sfu_source_room(const struct sfu_source *src);
struct sfu_source_stats {
    uint64_t access_units, packets, keyframe_requests, gop_replays, gop_overflows;
    uint64_t audio_packets;
    uint32_t viewers;              /* connected viewers now */
};
void sfu_source_get_stats(const struct sfu_source *src, struct sfu_source_stats *out);
/* Closes the source's room: its viewers leave (room-closed) and their peers
 * are closed; no callback runs. Free every source before sfu_free. */
void sfu_source_free(struct sfu_source *src);

#endif
