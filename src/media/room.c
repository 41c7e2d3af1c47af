/* room.c — the room state machine (room.h). Owns the rooms, participants,
 * streams and subscriptions it hands out; indexes rooms by name and
 * participants by id in base/htable, keeps rooms and each room's
 * participants in doubly linked lists (creation / join order for the
 * lookups), and subscriptions in two lists at once (the viewer's and the
 * publisher's) so that either side going drops them in O(its own). */
#include "media/room.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>

#include "base/htable.h"
#include "base/str.h"
#include "base/timer.h" /* container_of */
#include "events/events.h"

struct room_sub {
    struct room_participant *viewer, *pub;
    struct room_sub *v_prev, *v_next; /* in viewer->subs */
    struct room_sub *p_prev, *p_next; /* in pub->subscribers */
};

struct room_stream {
    char id[ROOM_TEXT_MAX + 1];
    enum room_stream_kind kind;
};

struct room;

struct room_participant {
    struct hnode by_id;
    char id[ROOM_ID_LEN + 1];
    char name[ROOM_TEXT_MAX + 1];
    char user[ROOM_TEXT_MAX + 1];
    enum room_participant_state state;
    enum room_leave_reason reason; /* the first one, once leaving */
    struct room *room;
    struct room_participant *prev, *next;
    uint64_t joined_ms;
    struct room_sub *subs, *subscribers;
    uint32_t nsubs, nsubscribers;
    uint32_t nstreams;
    struct room_stream streams[]; /* cfg.max_streams_per_participant */
};

struct room {
    struct hnode by_name;
    char name[ROOM_NAME_MAX + 1];
    struct room *prev, *next;          /* registry order */
    struct room *empty_prev, *empty_next; /* while in grace */
    struct room_participant *head, *tail;
    uint32_t count;
    uint64_t created_ms, close_at;
    bool kept, closing, in_close;
};

struct room_registry {
    struct room_config cfg;
    struct room_events ev;
    room_random_fn rnd;
    void *rnd_arg;
    struct htable rooms, parts;
    struct room *head, *tail;
    struct room *empty_head, *empty_tail;
    uint32_t nrooms;
};

/* ---- names ---- */

static const char *leave_names[] = {"leave", "disconnected", "consent-expired", "kicked", "room-closed", "shutdown"};
static const char *type_names[] = {"room.created",           "room.closed",          "room.participant.joined",
                                   "room.participant.left", "room.stream.published", "room.stream.unpublished"};

const char *room_event_type_name(enum room_event_type t)
{
    return (unsigned)t < sizeof type_names / sizeof *type_names ? type_names[t] : "room.unknown";
}

const char *room_leave_reason_name(enum room_leave_reason r)
{
    return (unsigned)r < sizeof leave_names / sizeof *leave_names ? leave_names[r] : "unknown";
}

const char *room_stream_kind_name(enum room_stream_kind k) { return k == ROOM_STREAM_AUDIO ? "audio" : "video"; }

/* Room names become URL segments, file-ish labels and log fields, so the
 * alphabet is the unreserved set of RFC 3986 §2.3 minus '~'. */
const char *room_name_check(const char *name)
{
    if (!name || !*name) return "room name is empty";
    size_t n = strnlen(name, ROOM_NAME_MAX + 1);
    if (n > ROOM_NAME_MAX) return "room name is longer than 64 characters";
    if (!strcmp(name, ".") || !strcmp(name, "..")) return "room name may not be \".\" or \"..\"";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == '\\') return "room name may not contain path separators ('/' or '\\')";
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '.' || c == '-';
        if (!ok) return "room name may contain only letters, digits, '_', '.' and '-'";
    }
    return NULL;
}

/* Display names, user keys and stream ids end up in JSON events; the bus
 * leaves out strings that are not UTF-8, so they are refused here instead. */
static bool text_ok(const char *s, size_t min)
{
    size_t n = strnlen(s, ROOM_TEXT_MAX + 1);
    if (n < min || n > ROOM_TEXT_MAX) return false;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x20 || c == 0x7f) return false;
        if (c < 0x80) { p++; continue; }
        size_t k = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : 0;
        if (!k || c > 0xf4 || (size_t)(end - p) <= k) return false;
        unsigned cp = c & (0x3f >> k);
        for (size_t i = 1; i <= k; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        /* overlong forms, surrogates, past U+10FFFF */
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        p += k + 1;
    }
    return true;
}

/* ---- config, registry ---- */

void room_config_default(struct room_config *cfg)
{
    *cfg = (struct room_config){.max_rooms = 1000,
                                .max_participants_per_room = 1000,
                                .max_streams_per_participant = 4,
                                .max_subscriptions_per_participant = 16,
                                .close_grace_ms = 0};
}

static int openssl_random(void *arg, uint8_t *buf, size_t len)
{
    (void)arg;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

struct room_registry *room_registry_new(const struct room_config *cfg, const struct room_events *events,
                                        room_random_fn rnd, void *rnd_arg)
{
    struct room_registry *reg = calloc(1, sizeof *reg);
    if (!reg) return NULL;
    room_config_default(&reg->cfg);
    if (cfg) {
        if (cfg->max_rooms) reg->cfg.max_rooms = cfg->max_rooms;
        if (cfg->max_participants_per_room) reg->cfg.max_participants_per_room = cfg->max_participants_per_room;
        if (cfg->max_streams_per_participant)
            reg->cfg.max_streams_per_participant = cfg->max_streams_per_participant;
        if (cfg->max_subscriptions_per_participant)
            reg->cfg.max_subscriptions_per_participant = cfg->max_subscriptions_per_participant;
        reg->cfg.close_grace_ms = cfg->close_grace_ms;
    }
    if (events) reg->ev = *events;
    reg->rnd = rnd ? rnd : openssl_random;
    reg->rnd_arg = rnd ? rnd_arg : NULL;
    htable_init(&reg->rooms);
    htable_init(&reg->parts);
    return reg;
}

static void emit(struct room_registry *reg, enum room_event_type type, const struct room *r,
                 const struct room_participant *p, const struct room_stream *s, uint64_t now_ms)
{
    if (!reg->ev.emit) return;
    struct room_event ev = {.type = type,
                            .room = r->name,
                            .participant_id = p ? p->id : "",
                            .name = p ? p->name : "",
                            .user = p ? p->user : "",
                            .reason = p ? p->reason : ROOM_LEAVE_REQUEST,
                            .stream_id = s ? s->id : "",
                            .kind = s ? s->kind : ROOM_STREAM_AUDIO,
                            .time_ms = now_ms};
    reg->ev.emit(reg->ev.user, &ev);
}

/* ---- lookups by key ---- */

static uint32_t key_hash(const char *s) { return str_hash(str_from_cstr(s)); }

static struct room *room_find(const struct room_registry *reg, const char *name)
{
    if (!name) return NULL;
    for (struct hnode *n = htable_first(&reg->rooms, key_hash(name)); n; n = htable_next(n)) {
        struct room *r = container_of(n, struct room, by_name);
        if (!strcmp(r->name, name)) return r;
    }
    return NULL;
}

static struct room_participant *part_find(const struct room_registry *reg, const char *id)
{
    if (!id || strnlen(id, ROOM_ID_LEN + 1) != ROOM_ID_LEN) return NULL;
    for (struct hnode *n = htable_first(&reg->parts, key_hash(id)); n; n = htable_next(n)) {
        struct room_participant *p = container_of(n, struct room_participant, by_id);
        if (!strcmp(p->id, id)) return p;
    }
    return NULL;
}

/* ---- rooms ---- */

static void empty_unlink(struct room_registry *reg, struct room *r)
{
    if (!r->closing) return;
    if (r->empty_prev) r->empty_prev->empty_next = r->empty_next;
    else reg->empty_head = r->empty_next;
    if (r->empty_next) r->empty_next->empty_prev = r->empty_prev;
    else reg->empty_tail = r->empty_prev;
    r->empty_prev = r->empty_next = NULL;
    r->closing = false;
}

static struct room *room_new(struct room_registry *reg, const char *name, uint64_t now_ms)
{
    struct room *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    memcpy(r->name, name, strlen(name) + 1);
    r->created_ms = now_ms;
    if (htable_insert(&reg->rooms, &r->by_name, key_hash(name)) < 0) {
        free(r);
        return NULL;
    }
    r->prev = reg->tail;
    if (reg->tail) reg->tail->next = r;
    else reg->head = r;
    reg->tail = r;
    reg->nrooms++;
    return r;
}

/* Unlinks and frees an empty room, emitting closed. */
static void room_destroy(struct room_registry *reg, struct room *r, uint64_t now_ms)
{
    empty_unlink(reg, r);
    htable_remove(&reg->rooms, &r->by_name);
    if (r->prev) r->prev->next = r->next;
    else reg->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else reg->tail = r->prev;
    reg->nrooms--;
    emit(reg, ROOM_EV_CLOSED, r, NULL, NULL, now_ms);
    free(r);
}

/* The last participant went: close now, or start the grace time. */
static void room_emptied(struct room_registry *reg, struct room *r, uint64_t now_ms)
{
    if (r->count || r->kept || r->in_close) return;
    if (!reg->cfg.close_grace_ms) {
        room_destroy(reg, r, now_ms);
        return;
    }
    r->closing = true;
    r->close_at = now_ms + reg->cfg.close_grace_ms;
    r->empty_prev = reg->empty_tail;
    r->empty_next = NULL;
    if (reg->empty_tail) reg->empty_tail->empty_next = r;
    else reg->empty_head = r;
    reg->empty_tail = r;
}

int room_create(struct room_registry *reg, const char *name, uint64_t now_ms)
{
    if (room_name_check(name)) return -EINVAL;
    struct room *r = room_find(reg, name);
    if (r) return -EEXIST;
    if (reg->nrooms >= reg->cfg.max_rooms) return -ENOSPC;
    if (!(r = room_new(reg, name, now_ms))) return -ENOMEM;
    r->kept = true;
    emit(reg, ROOM_EV_CREATED, r, NULL, NULL, now_ms);
    return 0;
}

int room_close(struct room_registry *reg, const char *name, uint64_t now_ms)
{
    struct room *r = room_find(reg, name);
    if (!r) return -ENOENT;
    r->in_close = true; /* the exits below must not close it a second time */
    while (r->head) room_participant_exit(reg, r->head->id, ROOM_LEAVE_ROOM_CLOSED, now_ms);
    room_destroy(reg, r, now_ms);
    return 0;
}

int room_registry_tick(struct room_registry *reg, uint64_t now_ms)
{
    int closed = 0;
    struct room *r = reg->empty_head;
    while (r) {
        struct room *next = r->empty_next;
        if (r->close_at <= now_ms) {
            room_destroy(reg, r, now_ms);
            closed++;
        }
        r = next;
    }
    return closed;
}

uint64_t room_registry_next_deadline(const struct room_registry *reg)
{
    uint64_t t = UINT64_MAX;
    for (const struct room *r = reg->empty_head; r; r = r->empty_next)
        if (r->close_at < t) t = r->close_at;
    return t;
}

void room_registry_shutdown(struct room_registry *reg, uint64_t now_ms)
{
    while (reg->head) {
        struct room *r = reg->head;
        r->in_close = true;
        while (r->head) room_participant_exit(reg, r->head->id, ROOM_LEAVE_SHUTDOWN, now_ms);
        room_destroy(reg, r, now_ms);
    }
}

/* ---- subscriptions ---- */

static void sub_free(struct room_sub *s)
{
    struct room_participant *v = s->viewer, *p = s->pub;
    if (s->v_prev) s->v_prev->v_next = s->v_next;
    else v->subs = s->v_next;
    if (s->v_next) s->v_next->v_prev = s->v_prev;
    if (s->p_prev) s->p_prev->p_next = s->p_next;
    else p->subscribers = s->p_next;
    if (s->p_next) s->p_next->p_prev = s->p_prev;
    v->nsubs--;
    p->nsubscribers--;
    free(s);
}

static struct room_sub *sub_find(const struct room_participant *v, const struct room_participant *p)
{
    for (struct room_sub *s = v->subs; s; s = s->v_next)
        if (s->pub == p) return s;
    return NULL;
}

int room_subscribe(struct room_registry *reg, const char *viewer_id, const char *publisher_id)
{
    struct room_participant *v = part_find(reg, viewer_id), *p = part_find(reg, publisher_id);
    if (!v || !p) return -ENOENT;
    if (v == p || v->room != p->room) return -EINVAL;
    if (v->state == ROOM_PART_JOINING || p->state == ROOM_PART_JOINING) return -EAGAIN;
    if (sub_find(v, p)) return -EEXIST;
    if (v->nsubs >= reg->cfg.max_subscriptions_per_participant) return -ENOSPC;
    struct room_sub *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->viewer = v;
    s->pub = p;
    s->v_next = v->subs;
    if (v->subs) v->subs->v_prev = s;
    v->subs = s;
    s->p_next = p->subscribers;
    if (p->subscribers) p->subscribers->p_prev = s;
    p->subscribers = s;
    v->nsubs++;
    p->nsubscribers++;
    return 0;
}

int room_unsubscribe(struct room_registry *reg, const char *viewer_id, const char *publisher_id)
{
    struct room_participant *v = part_find(reg, viewer_id), *p = part_find(reg, publisher_id);
    struct room_sub *s = v && p ? sub_find(v, p) : NULL;
    if (!s) return -ENOENT;
    sub_free(s);
    return 0;
}

bool room_is_subscribed(const struct room_registry *reg, const char *viewer_id, const char *publisher_id)
{
    struct room_participant *v = part_find(reg, viewer_id), *p = part_find(reg, publisher_id);
    return v && p && sub_find(v, p);
}

/* ---- participants ---- */

static int new_id(struct room_registry *reg, char out[ROOM_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    /* 64 random bits: a clash is all but impossible, but a weak caller-given
     * source must not make two participants share an id. */
    for (int tries = 0; tries < 8; tries++) {
        uint8_t b[ROOM_ID_LEN / 2];
        if (reg->rnd(reg->rnd_arg, b, sizeof b) != 0) return -EIO;
        for (size_t i = 0; i < sizeof b; i++) {
            out[2 * i] = hex[b[i] >> 4];
            out[2 * i + 1] = hex[b[i] & 15];
        }
        out[ROOM_ID_LEN] = '\0';
        if (!part_find(reg, out)) return 0;
    }
    return -EIO;
}

static struct room_participant *find_user(const struct room *r, const char *user)
{
    for (struct room_participant *p = r->head; p; p = p->next)
        if (!strcmp(p->user, user)) return p;
    return NULL;
}

int room_join(struct room_registry *reg, const struct room_join_req *req, uint64_t now_ms,
              char id_out[ROOM_ID_LEN + 1])
{
    const char *name = req->name ? req->name : "", *user = req->user ? req->user : "";
    if (room_name_check(req->room) || !text_ok(name, 0) || !text_ok(user, 0)) return -EINVAL;
    if (req->rejoin && !*user) return -EINVAL;
    struct room *r = room_find(reg, req->room);
    struct room_participant *old = r && req->rejoin ? find_user(r, user) : NULL;
    /* Caps first, so a refused join costs nothing and emits nothing. */
    if (!r && reg->nrooms >= reg->cfg.max_rooms) return -ENOSPC;
    if (r && r->count - (old ? 1 : 0) >= reg->cfg.max_participants_per_room) return -EUSERS;

    size_t size = sizeof(struct room_participant) + reg->cfg.max_streams_per_participant * sizeof(struct room_stream);
    struct room_participant *p = calloc(1, size);
    if (!p) return -ENOMEM;
    int rc = new_id(reg, p->id);
    if (rc == 0 && htable_insert(&reg->parts, &p->by_id, key_hash(p->id)) < 0) rc = -ENOMEM;
    if (rc < 0) {
        free(p);
        return rc;
    }
    bool created = false;
    if (!r) {
        if (!(r = room_new(reg, req->room, now_ms))) {
            htable_remove(&reg->parts, &p->by_id);
            free(p);
            return -ENOMEM;
        }
        created = true;
    }
    memcpy(p->name, name, strlen(name) + 1);
    memcpy(p->user, user, strlen(user) + 1);
    p->state = ROOM_PART_JOINING;
    p->room = r;
    p->joined_ms = now_ms;
    /* In the room before the old one leaves, so a rejoin never empties it. */
    p->prev = r->tail;
    if (r->tail) r->tail->next = p;
    else r->head = p;
    r->tail = p;
    r->count++;
    empty_unlink(reg, r);

    if (created) emit(reg, ROOM_EV_CREATED, r, NULL, NULL, now_ms);
    if (old) room_participant_exit(reg, old->id, ROOM_LEAVE_DISCONNECTED, now_ms);
    if (!req->pending) {
        p->state = ROOM_PART_JOINED;
        emit(reg, ROOM_EV_JOINED, r, p, NULL, now_ms);
    }
    memcpy(id_out, p->id, ROOM_ID_LEN + 1);
    return 0;
}

int room_participant_confirm(struct room_registry *reg, const char *id, uint64_t now_ms)
{
    struct room_participant *p = part_find(reg, id);
    if (!p) return -ENOENT;
    if (p->state != ROOM_PART_JOINING) return -EALREADY;
    p->state = ROOM_PART_JOINED;
    emit(reg, ROOM_EV_JOINED, p->room, p, NULL, now_ms);
    return 0;
}

int room_participant_exit(struct room_registry *reg, const char *id, enum room_leave_reason reason,
                          uint64_t now_ms)
{
    struct room_participant *p = part_find(reg, id);
    if (!p) return -ENOENT;
    /* Removed from the index first: from here on every other exit for this
     * id, even one made from inside the callbacks below, finds nobody. */
    htable_remove(&reg->parts, &p->by_id);
    bool announced = p->state != ROOM_PART_JOINING;
    p->state = ROOM_PART_LEAVING;
    p->reason = reason;
    struct room *r = p->room;

    /* Streams go before their owner, newest first. */
    while (p->nstreams) {
        p->nstreams--;
        emit(reg, ROOM_EV_UNPUBLISHED, r, p, &p->streams[p->nstreams], now_ms);
    }
    while (p->subscribers) {
        struct room_sub *s = p->subscribers;
        if (reg->ev.subscription_dropped) reg->ev.subscription_dropped(reg->ev.user, r->name, s->viewer->id, p->id);
        sub_free(s);
    }
    while (p->subs) sub_free(p->subs);
    if (announced) emit(reg, ROOM_EV_LEFT, r, p, NULL, now_ms);

    if (p->prev) p->prev->next = p->next;
    else r->head = p->next;
    if (p->next) p->next->prev = p->prev;
    else r->tail = p->prev;
    r->count--;
    free(p);
    room_emptied(reg, r, now_ms);
    return 0;
}

int room_kick(struct room_registry *reg, const char *id, uint64_t now_ms)
{
    return room_participant_exit(reg, id, ROOM_LEAVE_KICKED, now_ms);
}

/* ---- streams ---- */

int room_publish(struct room_registry *reg, const char *id, const char *stream_id, enum room_stream_kind kind,
                 uint64_t now_ms)
{
    struct room_participant *p = part_find(reg, id);
    if (!p) return -ENOENT;
    if (!stream_id || !text_ok(stream_id, 1) || (kind != ROOM_STREAM_AUDIO && kind != ROOM_STREAM_VIDEO))
        return -EINVAL;
    if (p->state == ROOM_PART_JOINING) return -EAGAIN;
    for (uint32_t i = 0; i < p->nstreams; i++)
        if (!strcmp(p->streams[i].id, stream_id)) return -EEXIST;
    if (p->nstreams >= reg->cfg.max_streams_per_participant) return -ENOSPC;
    struct room_stream *s = &p->streams[p->nstreams++];
    memcpy(s->id, stream_id, strlen(stream_id) + 1);
    s->kind = kind;
    p->state = ROOM_PART_PUBLISHING;
    emit(reg, ROOM_EV_PUBLISHED, p->room, p, s, now_ms);
    return 0;
}

int room_unpublish(struct room_registry *reg, const char *id, const char *stream_id, uint64_t now_ms)
{
    struct room_participant *p = part_find(reg, id);
    if (!p || !stream_id) return -ENOENT;
    for (uint32_t i = 0; i < p->nstreams; i++) {
        if (strcmp(p->streams[i].id, stream_id)) continue;
        struct room_stream gone = p->streams[i];
        /* Keep the rest in publishing order. */
        memmove(&p->streams[i], &p->streams[i + 1], (p->nstreams - i - 1) * sizeof *p->streams);
        p->nstreams--;
        if (!p->nstreams) p->state = ROOM_PART_JOINED;
        emit(reg, ROOM_EV_UNPUBLISHED, p->room, p, &gone, now_ms);
        return 0;
    }
    return -ENOENT;
}

/* ---- lookups ---- */

uint32_t room_registry_count(const struct room_registry *reg) { return reg->nrooms; }

static void fill_room(const struct room *r, struct room_info *out)
{
    *out = (struct room_info){.name = r->name,
                              .participants = r->count,
                              .created_ms = r->created_ms,
                              .kept = r->kept,
                              .closing = r->closing};
}

static void fill_part(const struct room_participant *p, struct room_participant_info *out)
{
    *out = (struct room_participant_info){.id = p->id,
                                          .room = p->room->name,
                                          .name = p->name,
                                          .user = p->user,
                                          .state = p->state,
                                          .joined_ms = p->joined_ms,
                                          .streams = p->nstreams,
                                          .subscriptions = p->nsubs,
                                          .subscribers = p->nsubscribers};
}

int room_list(const struct room_registry *reg, int (*fn)(void *arg, const struct room_info *ri), void *arg)
{
    for (const struct room *r = reg->head; r; r = r->next) {
        struct room_info ri;
        fill_room(r, &ri);
        int rc = fn(arg, &ri);
        if (rc) return rc;
    }
    return 0;
}

int room_get(const struct room_registry *reg, const char *name, struct room_info *out)
{
    const struct room *r = room_find(reg, name);
    if (!r) return -ENOENT;
    fill_room(r, out);
    return 0;
}

int room_participants(const struct room_registry *reg, const char *name,
                      int (*fn)(void *arg, const struct room_participant_info *pi), void *arg)
{
    const struct room *r = room_find(reg, name);
    if (!r) return -ENOENT;
    for (const struct room_participant *p = r->head; p; p = p->next) {
        struct room_participant_info pi;
        fill_part(p, &pi);
        int rc = fn(arg, &pi);
        if (rc) return rc;
    }
    return 0;
}

int room_participant_get(const struct room_registry *reg, const char *id, struct room_participant_info *out)
{
    const struct room_participant *p = part_find(reg, id);
    if (!p) return -ENOENT;
    fill_part(p, out);
    return 0;
}

int room_participant_stream(const struct room_registry *reg, const char *id, uint32_t i,
                            struct room_stream_info *out)
{
    const struct room_participant *p = part_find(reg, id);
    if (!p || i >= p->nstreams) return -ENOENT;
    *out = (struct room_stream_info){.stream_id = p->streams[i].id, .kind = p->streams[i].kind};
    return 0;
}

/* ---- teardown ---- */

void room_registry_free(struct room_registry *reg)
{
    if (!reg) return;
    struct room *r = reg->head;
    while (r) {
        struct room *next_room = r->next;
        for (struct room_participant *p = r->head, *np; p; p = np) {
            np = p->next;
            while (p->subs) sub_free(p->subs);
        }
        for (struct room_participant *p = r->head, *np; p; p = np) {
            np = p->next;
            free(p);
        }
        free(r);
        r = next_room;
    }
    htable_free(&reg->rooms);
    htable_free(&reg->parts);
    free(reg);
}

/* ---- the bus ---- */

void room_event_publish(void *bus, const struct room_event *ev)
{
    struct event_field f[7];
    size_t n = 0;
    f[n++] = EVENT_STR("room", ev->room);
    if (ev->type != ROOM_EV_CREATED && ev->type != ROOM_EV_CLOSED) {
        f[n++] = EVENT_STR("participant", ev->participant_id);
        f[n++] = EVENT_STR("name", ev->name);
        f[n++] = EVENT_STR("user", ev->user);
    }
    if (ev->type == ROOM_EV_LEFT) f[n++] = EVENT_STR("reason", room_leave_reason_name(ev->reason));
    if (ev->type == ROOM_EV_PUBLISHED || ev->type == ROOM_EV_UNPUBLISHED) {
        f[n++] = EVENT_STR("stream", ev->stream_id);
        f[n++] = EVENT_STR("kind", room_stream_kind_name(ev->kind));
    }
    event_publish_fields(bus, room_event_type_name(ev->type), f, n);
}

/* ---- join tokens ---- */

#define TOKEN_MAC_LEN 32 /* SHA-256 */
#define TOKEN_PAYLOAD_MAX (ROOM_NAME_MAX + ROOM_TEXT_MAX + 48)

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* RFC 4648 §5 without padding. out has room for 4 * ceil(n / 3) + 1. */
static size_t b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        size_t chars = n - i >= 3 ? 4 : n - i + 1;
        for (size_t k = 0; k < chars; k++) out[o++] = b64url[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
    return o;
}

/* Strict: only the alphabet, no padding, no trailing bits. -1 on error. */
static int b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4 == 1) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *hit = memchr(b64url, in[i], 64);
        if (!hit || !in[i]) return -1;
        acc = acc << 6 | (uint32_t)(hit - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap) return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits && (acc & ((1u << bits) - 1))) return -1;
    return (int)o;
}

static bool token_mac(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t n, uint8_t mac[TOKEN_MAC_LEN])
{
    unsigned int len = 0;
    return HMAC(EVP_sha256(), key, (int)key_len, msg, n, mac, &len) && len == TOKEN_MAC_LEN;
}

/* payload: "v1\n" room "\n" expires "\n" rights "\n" name — the name last,
 * as it is the only free text (no control characters: text_ok). */
int room_token_sign(const uint8_t *key, size_t key_len, const struct room_token *t, char *out, size_t cap)
{
    if (!key || !key_len || room_name_check(t->room) || !text_ok(t->name, 0)) return -EINVAL;
    if (cap < ROOM_TOKEN_MAX + 1) return -ENOSPC;
    char payload[TOKEN_PAYLOAD_MAX];
    int n = snprintf(payload, sizeof(payload), "v1\n%s\n%llu\n%s%s\n%s", t->room, (unsigned long long)t->expires_s,
                     t->publish ? "p" : "", t->subscribe ? "s" : "", t->name);
    if (n < 0 || (size_t)n >= sizeof(payload)) return -EINVAL;
    uint8_t mac[TOKEN_MAC_LEN];
    if (!token_mac(key, key_len, (const uint8_t *)payload, (size_t)n, mac)) return -EINVAL;
    size_t o = b64url_encode((const uint8_t *)payload, (size_t)n, out);
    out[o++] = '.';
    o += b64url_encode(mac, sizeof(mac), out + o);
    return (int)o;
}

static int token_fields(const char *payload, size_t n, struct room_token *out)
{
    const char *f[5];
    size_t len[5], k = 0, start = 0;
    for (size_t i = 0; i <= n && k < 5; i++) {
        if (i < n && (payload[i] != '\n' || k == 4)) continue;
        f[k] = payload + start;
        len[k++] = i - start;
        start = i + 1;
    }
    if (k != 5 || len[0] != 2 || memcmp(f[0], "v1", 2) || len[1] > ROOM_NAME_MAX || len[4] > ROOM_TEXT_MAX)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    memcpy(out->room, f[1], len[1]);
    memcpy(out->name, f[4], len[4]);
    if (!len[2] || len[2] > 20) return -EINVAL;
    for (size_t i = 0; i < len[2]; i++) {
        if (f[2][i] < '0' || f[2][i] > '9') return -EINVAL;
        out->expires_s = out->expires_s * 10 + (uint64_t)(f[2][i] - '0');
    }
    for (size_t i = 0; i < len[3]; i++) {
        if (f[3][i] == 'p') out->publish = true;
        else if (f[3][i] == 's') out->subscribe = true;
        else return -EINVAL;
    }
    return 0;
}

int room_token_verify(const uint8_t *key, size_t key_len, const char *token, const char *room, uint64_t now_s,
                      struct room_token *out)
{
    if (!key || !key_len || !token) return -EINVAL;
    size_t n = strnlen(token, ROOM_TOKEN_MAX + 1);
    const char *dot = memchr(token, '.', n);
    if (n > ROOM_TOKEN_MAX || !dot) return -EINVAL;
    uint8_t payload[TOKEN_PAYLOAD_MAX], mac[TOKEN_MAC_LEN + 3], want[TOKEN_MAC_LEN];
    int pn = b64url_decode(token, (size_t)(dot - token), payload, sizeof(payload));
    int mn = b64url_decode(dot + 1, n - (size_t)(dot - token) - 1, mac, sizeof(mac));
    if (pn <= 0 || mn != TOKEN_MAC_LEN || !token_mac(key, key_len, payload, (size_t)pn, want)) return -EINVAL;
    if (CRYPTO_memcmp(mac, want, TOKEN_MAC_LEN) != 0) return -EINVAL;
    struct room_token t;
    if (token_fields((const char *)payload, (size_t)pn, &t) < 0) return -EINVAL;
    if (!room || strcmp(t.room, room) != 0) return -EXDEV;
    if (now_s >= t.expires_s) return -ETIMEDOUT;
    if (out) *out = t;
    return 0;
}
