/* room.h — the rooms of the SFU as a state machine: which rooms exist, who is
 * in each, what each participant publishes and whom it watches, and the
 * events a user center sees about them. Pure logic: no I/O, no clock (every
 * time is passed in, in milliseconds), no thread; the signaling and the media
 * transports call in when something happens and read the lookups.
 *
 * The one promise (issue 12): room.participant.joined and .left, and
 * room.stream.published and .unpublished, come EXACTLY ONCE per participant
 * (per stream), whatever order a leave request, a closed signaling
 * connection, an expired ICE consent, a kick, a room close or a shutdown
 * arrive in. Every way out goes through one function (room_participant_exit):
 * the first reason wins, the participant is freed, and later exits for the
 * same id find nobody (-ENOENT) — so a late callback cannot emit twice nor
 * touch freed memory, as participants are named by id, never by pointer.
 *
 *   participant:  joining ──confirm──▶ joined ──publish──▶ publishing
 *                    │                   │  ◀──unpublish all──  │
 *                    └───────────────────┴───── exit ───────────┘
 *                                         ▼
 *                        leaving (inside exit only) ──▶ gone (freed)
 *
 * On exit, in this order: one unpublished per stream it published, each of
 * its subscribers told (room_events.subscription_dropped) and their
 * subscriptions dropped, its own subscriptions dropped, then left (only if
 * joined had been emitted: a participant that never got past joining was
 * never announced, so it is never un-announced).
 *
 * Rooms are created on first join (or by room_create) and closed when the
 * last participant goes — at once, or after cfg.close_grace_ms so that a
 * reloading page does not close and recreate its room; room_registry_tick
 * closes rooms whose grace ran out. A room made by room_create is kept while
 * empty until room_close.
 *
 * Publisher reload: a join with rejoin set and a user key equal to one
 * already in the room replaces that participant: the old one leaves with
 * reason disconnected (one left), then the new one joins (one joined); the
 * old connection's own close, arriving later, finds nobody.
 *
 * Memory is bounded by the caps in room_config: rooms per registry,
 * participants per room, streams and subscriptions per participant. A join
 * past a cap is refused in O(1) with nothing emitted.
 *
 * Events must not re-enter: emit and subscription_dropped may record, queue
 * or publish (room_event_publish puts events on the bus, which queues nested
 * deliveries), but must not call room_* functions that change state. */
#ifndef CASCADE_MEDIA_ROOM_H
#define CASCADE_MEDIA_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROOM_NAME_MAX 64        /* room names: 1..64 of [A-Za-z0-9_.-] */
#define ROOM_ID_LEN 16          /* participant ids: 16 lower-case hex digits */
#define ROOM_TEXT_MAX 64        /* display names, user keys and stream ids */

enum room_event_type {
    ROOM_EV_CREATED,            /* room.created */
    ROOM_EV_CLOSED,             /* room.closed */
    ROOM_EV_JOINED,             /* room.participant.joined */
    ROOM_EV_LEFT,               /* room.participant.left (with reason) */
    ROOM_EV_PUBLISHED,          /* room.stream.published (with stream) */
    ROOM_EV_UNPUBLISHED,        /* room.stream.unpublished (with stream) */
};

/* Why a participant left. The first four are the issue's; room-closed and
 * shutdown say the server ended the room or the node. */
enum room_leave_reason {
    ROOM_LEAVE_REQUEST,         /* "leave": the client asked */
    ROOM_LEAVE_DISCONNECTED,    /* "disconnected": signaling closed, or replaced by a rejoin */
    ROOM_LEAVE_CONSENT_EXPIRED, /* "consent-expired": ICE consent (RFC 7675 §5.1) lapsed */
    ROOM_LEAVE_KICKED,          /* "kicked": an operator removed it */
    ROOM_LEAVE_ROOM_CLOSED,     /* "room-closed": room_close while inside */
    ROOM_LEAVE_SHUTDOWN,        /* "shutdown": room_registry_shutdown */
};

enum room_stream_kind { ROOM_STREAM_AUDIO, ROOM_STREAM_VIDEO };

enum room_participant_state {
    ROOM_PART_JOINING,          /* admitted, not announced yet */
    ROOM_PART_JOINED,
    ROOM_PART_PUBLISHING,       /* joined, with at least one stream */
    ROOM_PART_LEAVING,          /* inside the exit only; the lookups never show it */
};

/* One event. Every pointer is valid only during the emit call. participant_id,
 * name, user are "" for room events; stream_id is "" except for stream events;
 * reason is meaningful for ROOM_EV_LEFT only. */
struct room_event {
    enum room_event_type type;
    const char *room;
    const char *participant_id;
    const char *name;           /* display name */
    const char *user;           /* user key ("" when the join gave none) */
    enum room_leave_reason reason;
    const char *stream_id;
    enum room_stream_kind kind;
    uint64_t time_ms;           /* the now passed with the call that caused it */
};

struct room_events {
    void *user;
    void (*emit)(void *user, const struct room_event *ev);
    /* Optional: viewer_id's subscription to publisher_id was dropped because
     * the publisher went (the viewer stays in the room). */
    void (*subscription_dropped)(void *user, const char *room, const char *viewer_id, const char *publisher_id);
};

/* Fills buf with len random bytes; 0 on success. */
typedef int (*room_random_fn)(void *arg, uint8_t *buf, size_t len);

struct room_config {
    uint32_t max_rooms;                 /* per registry (node); default 1000 */
    uint32_t max_participants_per_room; /* default 1000 */
    uint32_t max_streams_per_participant;   /* default 4 (audio, video, 2 spare) */
    uint32_t max_subscriptions_per_participant; /* default 16 */
    uint64_t close_grace_ms;            /* empty room kept this long; 0: close at once */
};

/* The defaults above. */
void room_config_default(struct room_config *cfg);

struct room_registry;

/* cfg (NULL: defaults; a 0 cap takes its default), events (copied; emit may
 * be NULL to drop events), rnd (NULL: OpenSSL RAND_bytes) with its arg.
 * NULL when memory is short. */
struct room_registry *room_registry_new(const struct room_config *cfg, const struct room_events *events,
                                        room_random_fn rnd, void *rnd_arg);
/* Frees everything without emitting (call room_registry_shutdown first for
 * the events). NULL allowed. */
void room_registry_free(struct room_registry *reg);
/* Every participant of every room exits (reason shutdown), every room closes. */
void room_registry_shutdown(struct room_registry *reg, uint64_t now_ms);

/* NULL when name is a good room name, else why not (a sentence for the
 * client). Refuses empty, longer than ROOM_NAME_MAX, "." and "..", and
 * anything outside [A-Za-z0-9_.-] — path characters named as such. */
const char *room_name_check(const char *name);

/* Creates an empty room that stays until room_close (it emits created).
 * 0, -EINVAL (bad name), -EEXIST, -ENOSPC (max_rooms), -ENOMEM. */
int room_create(struct room_registry *reg, const char *name, uint64_t now_ms);
/* Every participant exits (reason room-closed), then the room closes.
 * 0 or -ENOENT. */
int room_close(struct room_registry *reg, const char *name, uint64_t now_ms);
/* Closes empty rooms whose grace ran out by now_ms; returns how many. */
int room_registry_tick(struct room_registry *reg, uint64_t now_ms);
/* The earliest time a tick has work to do, or UINT64_MAX for none. */
uint64_t room_registry_next_deadline(const struct room_registry *reg);

struct room_join_req {
    const char *room;           /* created when absent */
    const char *name;           /* display name, 0..64 bytes, no control characters; NULL: "" */
    const char *user;           /* who it is (rejoin key), same rules; NULL: "" */
    bool rejoin;                /* replace this user's participant in the room */
    bool pending;               /* stay joining (unannounced) until room_participant_confirm */
};

/* Admits a participant and writes its id (ROOM_ID_LEN hex + NUL) to id_out.
 * Emits created (new room), then left for a replaced participant (rejoin),
 * then joined (unless pending). 0, -EINVAL (bad room name, name or user),
 * -ENOSPC (max_rooms reached: the room would be new), -EUSERS (the room is
 * full), -ENOMEM, -EIO (the random source failed). Nothing is emitted and
 * nothing is kept on an error. */
int room_join(struct room_registry *reg, const struct room_join_req *req, uint64_t now_ms,
              char id_out[ROOM_ID_LEN + 1]);
/* joining → joined, emits joined. 0, -ENOENT, -EALREADY (already joined). */
int room_participant_confirm(struct room_registry *reg, const char *id, uint64_t now_ms);

/* THE way out. Emits unpublished per stream, tells subscribers, emits left
 * with this reason, frees the participant, closes or schedules closing of an
 * emptied room. 0, or -ENOENT when the id is unknown — which is what every
 * exit after the first gets. */
int room_participant_exit(struct room_registry *reg, const char *id, enum room_leave_reason reason,
                          uint64_t now_ms);
/* room_participant_exit with reason kicked, for the API and cascadectl. */
int room_kick(struct room_registry *reg, const char *id, uint64_t now_ms);

/* A joined participant announces a stream (stream_id 1..64 bytes, unique for
 * this participant). Emits published. 0, -ENOENT, -EINVAL, -EAGAIN (still
 * joining), -EEXIST (stream id in use), -ENOSPC (max_streams_per_participant). */
int room_publish(struct room_registry *reg, const char *id, const char *stream_id, enum room_stream_kind kind,
                 uint64_t now_ms);
/* Emits unpublished. 0, -ENOENT (participant or stream unknown). */
int room_unpublish(struct room_registry *reg, const char *id, const char *stream_id, uint64_t now_ms);

/* viewer watches publisher's streams (both joined, same room, not the same
 * participant). 0, -ENOENT, -EINVAL (self or other room), -EAGAIN (either
 * still joining), -EEXIST, -ENOSPC (max_subscriptions_per_participant). */
int room_subscribe(struct room_registry *reg, const char *viewer_id, const char *publisher_id);
/* 0 or -ENOENT (no such subscription). Tells nobody: the viewer asked. */
int room_unsubscribe(struct room_registry *reg, const char *viewer_id, const char *publisher_id);

/* Lookups for the API. Strings stay valid until the next call that changes
 * the registry. */
struct room_info {
    const char *name;
    uint32_t participants;
    uint64_t created_ms;
    bool kept;                  /* made by room_create */
    bool closing;               /* empty, in its grace time */
};
struct room_stream_info {
    const char *stream_id;
    enum room_stream_kind kind;
};
struct room_participant_info {
    const char *id, *room, *name, *user;
    enum room_participant_state state;
    uint64_t joined_ms;
    uint32_t streams, subscriptions, subscribers;
};

uint32_t room_registry_count(const struct room_registry *reg);
/* Calls fn per room (order of creation, oldest first) until it returns
 * non-zero; returns that value. */
int room_list(const struct room_registry *reg, int (*fn)(void *arg, const struct room_info *ri), void *arg);
/* 0 or -ENOENT. */
int room_get(const struct room_registry *reg, const char *name, struct room_info *out);
/* Calls fn per participant of the room in order of joining; -ENOENT when the
 * room is unknown, else the first non-zero fn result or 0. */
int room_participants(const struct room_registry *reg, const char *name,
                      int (*fn)(void *arg, const struct room_participant_info *pi), void *arg);
/* 0 or -ENOENT. */
int room_participant_get(const struct room_registry *reg, const char *id, struct room_participant_info *out);
/* The i-th stream of a participant. 0 or -ENOENT. */
int room_participant_stream(const struct room_registry *reg, const char *id, uint32_t i,
                            struct room_stream_info *out);
/* Is viewer subscribed to publisher? */
bool room_is_subscribed(const struct room_registry *reg, const char *viewer_id, const char *publisher_id);

/* ---- join tokens ----
 * A per-room join token is stateless: the room, the expiry (Unix seconds),
 * the rights and a display name, signed with HMAC-SHA256 under a node
 * secret, as base64url(payload) "." base64url(mac) — URL-safe, so that a
 * browser can put it in the WebSocket URL (it cannot set headers there).
 * A token names one room: it never opens another. Whoever holds the
 * secret can mint tokens; tokens live until they expire (no revocation). */
#define ROOM_TOKEN_MAX 320      /* a token's length, NUL excluded, at most */

struct room_token {
    char room[ROOM_NAME_MAX + 1];
    char name[ROOM_TEXT_MAX + 1];   /* "" for none */
    uint64_t expires_s;             /* Unix time */
    bool publish, subscribe;
};

/* Writes the token for t (room and name checked as room_join does) to out.
 * Returns its length, or -EINVAL (bad room or name, no key), -ENOSPC (cap
 * smaller than ROOM_TOKEN_MAX + 1). */
int room_token_sign(const uint8_t *key, size_t key_len, const struct room_token *t, char *out, size_t cap);
/* Checks token for room at now_s (Unix seconds) and fills out. 0, -EINVAL
 * (malformed, or the signature does not match: tampered, another node's
 * secret), -EXDEV (a good token for another room), -ETIMEDOUT (expired).
 * The signature is compared in constant time. */
int room_token_verify(const uint8_t *key, size_t key_len, const char *token, const char *room, uint64_t now_s,
                      struct room_token *out);

/* Names as the events carry them: "room.created", ..., and "leave",
 * "disconnected", "consent-expired", "kicked", "room-closed", "shutdown";
 * "audio" / "video". */
const char *room_event_type_name(enum room_event_type t);
const char *room_leave_reason_name(enum room_leave_reason r);
const char *room_stream_kind_name(enum room_stream_kind k);

/* A room_events.emit that publishes on the event bus (user: struct
 * event_bus *) with fields room, participant, name, user, reason, stream,
 * kind as each type has them. */
void room_event_publish(void *bus, const struct room_event *ev);

#endif
