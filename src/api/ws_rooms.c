/* ws_rooms.c — the room signaling WebSocket, GET /api/v1/rooms/{room}/ws,
 * and the join tokens that open it (POST /api/v1/rooms/{room}/tokens). The
 * protocol is in docs/api.md ("Room WebSocket").
 *
 * One socket is one room participant: a member of the SFU (media/sfu.h,
 * sfu_join) made by its "join" message and ended exactly once — by "leave",
 * by the socket closing (disconnected), or by the room (kicked,
 * room-closed, shutdown), whichever comes first; the SFU's room registry
 * makes the "once". The member's peers (one publishing, up to the room's
 * subscription cap subscribing) are the SFU's; this file only names
 * participants by id.
 *
 * The SFU's observer calls tell us what happens in the rooms (inside sfu
 * calls, ours included): each becomes a message queued on the sockets of
 * the other members of that room. A socket's queue is bounded
 * (RWS_QUEUE_MAX messages, RWS_QUEUE_BYTES): a client that does not read
 * is dropped with a log line, and leaves as disconnected. Requests are
 * text frames of JSON up to RWS_MSG_MAX bytes: a bad JSON message gets an
 * error reply and the socket stays; a binary frame closes it with 1003, a
 * larger message with 1009.
 *
 * Authorization at the upgrade: the API Bearer token (any rights), or a
 * join token in ?token= for this room (rights and name from the token;
 * media/room.h room_token_*) — a token given is always checked, even when
 * the API is open. Refusals are plain HTTP JSON answers, as ws_events.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "api/http_internal.h"
#include "api/routes_rooms.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "media/room.h"
#include "media/sfu.h"

#define RWS_PREFIX "/api/v1/rooms/"
#define RWS_MSG_MAX (64 * 1024)        /* one request; larger closes with 1009 */
#define RWS_QUEUE_MAX 256              /* messages waiting for a slow client */
#define RWS_QUEUE_BYTES (4u << 20)     /* ... and their bytes */
#define RWS_TOKEN_TTL_DEFAULT 3600
#define RWS_TOKEN_TTL_MAX 86400

struct rws_msg {
    struct rws_msg *next;
    size_t len;
    char text[];
};

struct api_rws_session {
    struct api_rooms_ws *rw;
    struct lws *wsi;
    struct api_session *ss;
    char room[ROOM_NAME_MAX + 1];
    char token_name[ROOM_TEXT_MAX + 1]; /* the join token's name, "" for none */
    char id[ROOM_ID_LEN + 1];           /* once joined */
    char remote[64];
    bool can_publish, can_subscribe;
    bool linked;                        /* in rw's list (established) */
    bool joined;                        /* a participant now */
    bool gone;                          /* its participant left: close once the queue is out */
    bool killed;                        /* too slow: lws closes it */
    char close_reason[32];
    struct rws_msg *q_head, *q_tail;
    uint32_t q_count;
    size_t q_bytes;
    char *rx;                           /* the message being received */
    size_t rx_len, rx_cap;
    struct api_rws_session *prev, *next;
};

struct api_rooms_ws {
    struct api_server *srv;
    struct sfu *sfu;                    /* NULL: media off, or the SFU was freed */
    uint8_t key[64];
    size_t key_len;
    struct api_rws_session *head;
    uint32_t sessions;
    uint64_t dropped_slow;
};

/* ---- the outbound queue ---- */

static void rws_kill_slow(struct api_rws_session *c)
{
    if (c->killed) return;
    c->killed = true;
    c->rw->dropped_slow++;
    log_warn("api: room websocket %s (%s, participant %s) does not read: %u messages (%zu bytes) queued; "
             "disconnecting",
             c->remote, c->room, c->joined ? c->id : "-", c->q_count, c->q_bytes);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    api_wake(c->rw->srv);
}

/* Queues len bytes of JSON text for the client. */
static void rws_send_text(struct api_rws_session *c, const char *text, size_t len)
{
    if (c->killed) return;
    if (c->q_count >= RWS_QUEUE_MAX || c->q_bytes + len > RWS_QUEUE_BYTES) {
        rws_kill_slow(c);
        return;
    }
    struct rws_msg *m = malloc(sizeof(*m) + len);
    if (!m) {
        rws_kill_slow(c);
        return;
    }
    m->next = NULL;
    m->len = len;
    memcpy(m->text, text, len);
    if (c->q_tail)
        c->q_tail->next = m;
    else
        c->q_head = m;
    c->q_tail = m;
    c->q_count++;
    c->q_bytes += len;
    lws_callback_on_writable(c->wsi);
    api_wake(c->rw->srv);
}

/* Queues a JSON message (stolen) for the client. */
static void rws_send(struct api_rws_session *c, json_t *msg)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (text) rws_send_text(c, text, strlen(text));
    free(text);
}

/* A reply: the request's id comes back as "re". */
static json_t *rws_reply(const char *type, json_t *re)
{
    json_t *o = json_pack("{s:s}", "type", type);
    if (o && re) json_object_set(o, "re", re);
    return o;
}

static int rws_error(struct api_rws_session *c, json_t *re, const char *code, const char *detail)
{
    json_t *o = rws_reply("error", re);
    if (o) {
        json_object_set_new(o, "code", json_string(code));
        json_object_set_new(o, "detail", json_string(detail && *detail ? detail : code));
    }
    rws_send(c, o);
    return 0;
}

/* ---- what the SFU tells us ---- */

static json_t *streams_json(const struct room_registry *reg, const char *id, uint32_t n)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; i < n; i++) {
        struct room_stream_info si;
        if (room_participant_stream(reg, id, i, &si) != 0) break;
        json_array_append_new(arr, json_pack("{s:s,s:s}", "id", si.stream_id, "kind", room_stream_kind_name(si.kind)));
    }
    return arr;
}

/* The room event as a push to the other members; NULL for none. */
static json_t *event_push(const struct room_event *ev)
{
    switch (ev->type) {
    case ROOM_EV_JOINED:
        return json_pack("{s:s,s:s,s:s}", "type", "participant.joined", "participant", ev->participant_id, "name",
                         ev->name);
    case ROOM_EV_LEFT:
        return json_pack("{s:s,s:s,s:s}", "type", "participant.left", "participant", ev->participant_id, "reason",
                         room_leave_reason_name(ev->reason));
    case ROOM_EV_PUBLISHED:
    case ROOM_EV_UNPUBLISHED:
        return json_pack("{s:s,s:s,s:s,s:s}", "type",
                         ev->type == ROOM_EV_PUBLISHED ? "stream.published" : "stream.unpublished", "participant",
                         ev->participant_id, "stream", ev->stream_id, "kind", room_stream_kind_name(ev->kind));
    default:
        return NULL;
    }
}

static void on_room_event(void *user, const struct room_event *ev)
{
    struct api_rooms_ws *rw = user;
    char *push = NULL; /* made once, for every other member of the room */
    size_t push_len = 0;
    for (struct api_rws_session *c = rw->head; c; c = c->next) {
        if (!c->joined || c->gone || strcmp(c->room, ev->room) != 0) continue;
        if (strcmp(c->id, ev->participant_id) != 0) {
            if (!push) {
                json_t *o = event_push(ev);
                if (!o) break;
                push = json_dumps(o, JSON_COMPACT);
                json_decref(o);
                if (!push) break;
                push_len = strlen(push);
            }
            rws_send_text(c, push, push_len);
        } else if (ev->type == ROOM_EV_LEFT) { /* our own end: say why, then close */
            c->gone = true;
            snprintf(c->close_reason, sizeof(c->close_reason), "%s", room_leave_reason_name(ev->reason));
            rws_send(c, json_pack("{s:s,s:s}", "type", "left", "reason", c->close_reason));
            lws_callback_on_writable(c->wsi);
        }
    }
    free(push);
}

static struct api_rws_session *session_of(struct api_rooms_ws *rw, const char *id)
{
    for (struct api_rws_session *c = rw->head; c; c = c->next)
        if (c->joined && !c->gone && strcmp(c->id, id) == 0) return c;
    return NULL;
}

static void on_peer_ended(void *user, const char *room, const char *participant_id, const char *publisher_id,
                          const char *reason)
{
    (void)room;
    struct api_rws_session *c = session_of(user, participant_id);
    if (!c) return;
    if (publisher_id)
        rws_send(c, json_pack("{s:s,s:s,s:s}", "type", "unsubscribed", "participant", publisher_id, "reason", reason));
    else
        rws_send(c, json_pack("{s:s,s:s}", "type", "publish.ended", "reason", reason));
}

static void on_sfu_detached(void *user)
{
    struct api_rooms_ws *rw = user;
    rw->sfu = NULL;
    for (struct api_rws_session *c = rw->head; c; c = c->next) c->gone = true;
}

/* ---- requests ---- */

struct member_list {
    const char *self;
    const struct room_registry *reg;
    json_t *arr;
};

static int member_row(void *arg, const struct room_participant_info *pi)
{
    struct member_list *l = arg;
    if (pi->state == ROOM_PART_JOINING || strcmp(pi->id, l->self) == 0) return 0; /* not announced, or us */
    json_t *o = json_pack("{s:s,s:s}", "id", pi->id, "name", pi->name ? pi->name : "");
    if (o) json_object_set_new(o, "streams", streams_json(l->reg, pi->id, pi->streams));
    json_array_append_new(l->arr, o);
    return 0;
}

/* The SFU's error codes as the protocol's. */
static int sfu_error(struct api_rws_session *c, json_t *re, int rc, const char *why)
{
    const char *code;
    switch (rc) {
    case -EINVAL: code = "bad-offer"; break;
    case -ENOTSUP: code = "unsupported-offer"; break;
    case -ENOENT: code = "not-found"; break;
    case -ENOSPC:
    case -EUSERS: code = "full"; break;
    default: code = "internal"; break;
    }
    return rws_error(c, re, code, why && *why ? why : strerror(rc < 0 ? -rc : rc));
}

static int do_join(struct api_rws_session *c, json_t *req, json_t *re)
{
    struct sfu *s = c->rw->sfu;
    if (c->joined) return rws_error(c, re, "already-joined", "this socket has joined already");
    json_t *jn = json_object_get(req, "name");
    if (jn && !json_is_string(jn)) return rws_error(c, re, "bad-request", "name must be a string");
    const char *name = c->token_name[0] ? c->token_name : jn ? json_string_value(jn) : "";
    char id[ROOM_ID_LEN + 1];
    const char *why = NULL;
    int rc = sfu_join(s, c->room, name, NULL, id, &why);
    if (rc == -EINVAL) return rws_error(c, re, "bad-request", "bad display name");
    if (rc < 0) return sfu_error(c, re, rc, why);
    memcpy(c->id, id, sizeof(c->id));
    c->joined = true; /* only now: our own joined event was not for us */
    struct member_list l = {c->id, sfu_rooms(s), json_array()};
    room_participants(l.reg, c->room, member_row, &l);
    json_t *o = rws_reply("joined", re);
    if (o) {
        json_object_set_new(o, "id", json_string(c->id));
        json_object_set_new(o, "room", json_string(c->room));
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "publish", json_boolean(c->can_publish));
        json_object_set_new(o, "subscribe", json_boolean(c->can_subscribe));
        json_object_set_new(o, "participants", l.arr);
    } else {
        json_decref(l.arr);
    }
    log_info("api: room websocket %s joined %s as %s", c->remote, c->room, c->id);
    rws_send(c, o);
    return 0;
}

/* The "sdp" of a request, or an error reply and NULL. */
static const char *sdp_of(struct api_rws_session *c, json_t *req, json_t *re, size_t *len)
{
    json_t *j = json_object_get(req, "sdp");
    if (!json_is_string(j) || !json_string_length(j)) {
        rws_error(c, re, "bad-request", "sdp must be an SDP offer as a string");
        return NULL;
    }
    *len = json_string_length(j);
    return json_string_value(j);
}

/* The "participant" of a request (16 hex digits), or an error and NULL. */
static const char *participant_of(struct api_rws_session *c, json_t *req, json_t *re)
{
    const char *id = json_string_value(json_object_get(req, "participant"));
    bool ok = id && strlen(id) == ROOM_ID_LEN;
    for (const char *p = id; ok && *p; p++) ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
    if (!ok) rws_error(c, re, "bad-request", "participant must be a participant id (16 hex digits)");
    return ok ? id : NULL;
}

static void reply_answer(struct api_rws_session *c, json_t *re, const char *participant, sbuf_t *ans)
{
    json_t *o = rws_reply("answer", re);
    if (o && participant) json_object_set_new(o, "participant", json_string(participant));
    if (o) json_object_set_new(o, "sdp", json_stringn(ans->data ? ans->data : "", ans->len));
    rws_send(c, o);
}

static int do_publish(struct api_rws_session *c, json_t *req, json_t *re)
{
    size_t len;
    const char *sdp;
    if (!c->can_publish) return rws_error(c, re, "forbidden", "the join token does not allow publishing");
    if (!(sdp = sdp_of(c, req, re, &len))) return 0;
    sbuf_t ans;
    sbuf_init(&ans);
    const char *why = NULL;
    int rc = sfu_publish_as(c->rw->sfu, c->id, sdp, len, &ans, &why);
    if (rc == 0)
        reply_answer(c, re, NULL, &ans);
    else
        sfu_error(c, re, rc, why);
    sbuf_free(&ans);
    return 0;
}

static int do_subscribe(struct api_rws_session *c, json_t *req, json_t *re)
{
    size_t len;
    const char *sdp, *pub;
    if (!c->can_subscribe) return rws_error(c, re, "forbidden", "the join token does not allow subscribing");
    if (!(pub = participant_of(c, req, re)) || !(sdp = sdp_of(c, req, re, &len))) return 0;
    json_t *jl = json_object_get(req, "max_layer");
    if (jl && (!json_is_integer(jl) || json_integer_value(jl) < 0))
        return rws_error(c, re, "bad-request", "max_layer must be a layer number (0: the lowest)");
    int layer = jl ? (int)(json_integer_value(jl) > 8 ? 8 : json_integer_value(jl)) : -1;
    sbuf_t ans;
    sbuf_init(&ans);
    const char *why = NULL;
    int rc = sfu_subscribe_as(c->rw->sfu, c->id, pub, sdp, len, layer, &ans, &why);
    if (rc == 0)
        reply_answer(c, re, pub, &ans);
    else
        sfu_error(c, re, rc, why);
    sbuf_free(&ans);
    return 0;
}

static int do_unsubscribe(struct api_rws_session *c, json_t *req, json_t *re)
{
    const char *pub = participant_of(c, req, re);
    if (!pub) return 0;
    if (sfu_unsubscribe_as(c->rw->sfu, c->id, pub) != 0)
        return rws_error(c, re, "not-found", "no subscription to that participant");
    json_t *o = rws_reply("unsubscribed", re);
    if (o) json_object_set_new(o, "participant", json_string(pub));
    rws_send(c, o);
    return 0;
}

static int do_set_layer(struct api_rws_session *c, json_t *req, json_t *re)
{
    const char *pub = participant_of(c, req, re);
    if (!pub) return 0;
    json_t *jl = json_object_get(req, "max_layer");
    if (!json_is_integer(jl) || json_integer_value(jl) < 0)
        return rws_error(c, re, "bad-request", "max_layer must be a layer number (0: the lowest)");
    int layer = json_integer_value(jl) > 8 ? 8 : (int)json_integer_value(jl);
    if (sfu_set_max_layer_as(c->rw->sfu, c->id, pub, layer) != 0)
        return rws_error(c, re, "not-found", "no subscription to that participant");
    rws_send(c, rws_reply("ok", re));
    return 0;
}

/* One complete text message. Never closes the socket: errors are replies. */
static void rws_request(struct api_rws_session *c, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req || !json_is_object(req)) {
        json_decref(req);
        rws_error(c, NULL, "bad-json", "each message must be one JSON object");
        return;
    }
    json_t *re = json_object_get(req, "id");
    if (re && !json_is_string(re) && !json_is_number(re)) re = NULL;
    const char *type = json_string_value(json_object_get(req, "type"));
    if (!type) {
        rws_error(c, re, "bad-request", "the message has no \"type\"");
    } else if (!strcmp(type, "ping")) {
        rws_send(c, rws_reply("pong", re));
    } else if (c->gone || !c->rw->sfu) {
        rws_error(c, re, "gone", "this participant has left the room");
    } else if (!strcmp(type, "join")) {
        do_join(c, req, re);
    } else if (!strcmp(type, "publish") || !strcmp(type, "subscribe") || !strcmp(type, "unsubscribe") ||
               !strcmp(type, "set_layer") || !strcmp(type, "leave")) {
        if (!c->joined) rws_error(c, re, "not-joined", "send {\"type\":\"join\"} first");
        else if (!strcmp(type, "publish")) do_publish(c, req, re);
        else if (!strcmp(type, "subscribe")) do_subscribe(c, req, re);
        else if (!strcmp(type, "unsubscribe")) do_unsubscribe(c, req, re);
        else if (!strcmp(type, "set_layer")) do_set_layer(c, req, re);
        else sfu_leave(c->rw->sfu, c->id); /* its left event answers and closes */
    } else {
        rws_error(c, re, "unknown-type", "unknown message type");
    }
    json_decref(req);
}

/* ---- the lws side ---- */

/* The value of ?name= in the request target, copied to out (cap bytes):
 * 1 found, 0 absent, -1 too long. */
static int query_arg(struct lws *wsi, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (int i = 0; i < 64; i++) {
        char frag[ROOM_TOKEN_MAX + 64];
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (flen <= 0) break;
        if (flen >= (int)sizeof(frag) ||
            lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) < 0) {
            continue;
        }
        if (strncmp(frag, name, nl) || frag[nl] != '=') continue;
        size_t vlen = strlen(frag + nl + 1);
        if (vlen >= cap) return -1;
        memcpy(out, frag + nl + 1, vlen + 1);
        return 1;
    }
    return 0;
}

/* Answers a refused upgrade with plain HTTP (RFC 6455 §4.2.2), as ws_events.c. */
static int rws_refuse(struct api_server *srv, struct lws *wsi, int status, const char *code, const char *detail)
{
    char body[320];
    int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"detail\":\"%s\"}", code, detail);
    if (blen < 0 || blen >= (int)sizeof(body)) return 1;
    unsigned char *buf = api_scratch(srv, 1024 + (size_t)blen);
    if (!buf) return 1;
    unsigned char *start = buf + LWS_PRE, *p = start, *end = start + 1024;
    if (lws_add_http_common_headers(wsi, (unsigned int)status, "application/json", (lws_filepos_t)blen, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    memcpy(start, body, (size_t)blen);
    lws_write(wsi, start, (size_t)blen, LWS_WRITE_HTTP_FINAL);
    return 1;
}

/* The room of a target "/api/v1/rooms/{room}/ws" (room copied to out), or
 * NULL when the target is not of that shape. */
static const char *ws_room(const char *uri, char *out, size_t cap)
{
    size_t pl = strlen(RWS_PREFIX), n = strlen(uri);
    if (n < pl + 3 || strncmp(uri, RWS_PREFIX, pl) || strcmp(uri + n - 3, "/ws")) return NULL;
    size_t rl = n - pl - 3;
    if (rl >= cap) rl = cap - 1;
    memcpy(out, uri + pl, rl);
    out[rl] = '\0';
    return out;
}

static const char *token_refusal(int rc)
{
    switch (rc) {
    case -EXDEV: return "the join token is for another room";
    case -ETIMEDOUT: return "the join token has expired";
    default: return "the join token is not valid (tampered, or from another node's secret)";
    }
}

int api_rooms_ws_filter(struct api_server *srv, struct lws *wsi, struct api_session *ss)
{
    struct api_rooms_ws *rw = srv->rooms_ws;
    char uri[256] = "", room[ROOM_NAME_MAX + 8], remote[64] = "?";
    int ul = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI);
    if (!rw || !ss || ul <= 0 || ul >= (int)sizeof(uri) || lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 ||
        !ws_room(uri, room, sizeof(room)))
        return API_WS_NOT_MINE;
    api_peer(wsi, remote, sizeof(remote));
    if (srv->closing) return 1;
    const char *bad = room_name_check(room);
    if (bad) {
        api_log_refusal(srv, "api: room websocket from %s refused: 400 bad room", remote);
        return rws_refuse(srv, wsi, 400, "bad-room", bad);
    }
    if (!rw->sfu) return rws_refuse(srv, wsi, 503, "media-off", "the media plane is not running");
    char token[ROOM_TOKEN_MAX + 2];
    int has = query_arg(wsi, "token", token, sizeof(token));
    struct room_token t = {.publish = true, .subscribe = true};
    if (has) {
        int rc = has < 0 ? -EINVAL
                         : room_token_verify(rw->key, rw->key_len, token, room, (uint64_t)(clock_wall_ms() / 1000), &t);
        if (rc < 0) {
            api_log_refusal(srv, "api: room websocket for %s from %s refused: 401 %s", room, remote, token_refusal(rc));
            return rws_refuse(srv, wsi, 401, "unauthorized", token_refusal(rc));
        }
    } else if (!api_request_authorized(srv, wsi)) {
        api_log_refusal(srv, "api: room websocket for %s from %s refused: 401 no credentials", room, remote);
        return rws_refuse(srv, wsi, 401, "unauthorized",
                          "a join token (?token=) or an 'Authorization: Bearer <token>' header is required");
    }
    struct api_rws_session *c = calloc(1, sizeof(*c));
    if (!c) return rws_refuse(srv, wsi, 503, "no-memory", "out of memory");
    c->rw = rw;
    c->ss = ss;
    c->wsi = wsi;
    memcpy(c->room, room, strlen(room) + 1); /* room_name_check: at most ROOM_NAME_MAX */
    snprintf(c->token_name, sizeof(c->token_name), "%s", has ? t.name : "");
    snprintf(c->remote, sizeof(c->remote), "%s", remote);
    c->can_publish = t.publish;
    c->can_subscribe = t.subscribe;
    ss->rws = c;
    return 0;
}

int api_rooms_ws_established(struct api_server *srv, struct lws *wsi, struct api_session *ss)
{
    struct api_rws_session *c = ss ? ss->rws : NULL;
    if (!c || srv->closing) return -1;
    c->wsi = wsi;
    c->linked = true;
    c->next = c->rw->head;
    if (c->rw->head) c->rw->head->prev = c;
    c->rw->head = c;
    c->rw->sessions++;
    log_info("api: room websocket %s connected to %s", c->remote, c->room);
    return 0;
}

/* A text fragment: gathered up to RWS_MSG_MAX, handled when complete. */
int api_rooms_ws_receive(struct api_server *srv, struct lws *wsi, struct api_session *ss, const void *in, size_t len)
{
    (void)srv;
    struct api_rws_session *c = ss->rws;
    if (!c->linked) return -1;
    if (lws_frame_is_binary(wsi)) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, (unsigned char *)"text only", 9);
        return -1;
    }
    if (lws_is_first_fragment(wsi)) c->rx_len = 0;
    if (len > RWS_MSG_MAX - c->rx_len) {
        log_warn("api: room websocket %s sent a message over %d bytes; closing", c->remote, RWS_MSG_MAX);
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)"message too large", 17);
        return -1;
    }
    if (c->rx_len + len > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 4096;
        while (cap < c->rx_len + len) cap *= 2;
        if (cap > RWS_MSG_MAX) cap = RWS_MSG_MAX;
        char *nb = realloc(c->rx, cap);
        if (!nb) return -1;
        c->rx = nb;
        c->rx_cap = cap;
    }
    if (len) memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
    size_t n = c->rx_len;
    c->rx_len = 0;
    rws_request(c, c->rx, n);
    return 0;
}

int api_rooms_ws_writeable(struct api_server *srv, struct lws *wsi, struct api_session *ss)
{
    struct api_rws_session *c = ss->rws;
    if (c->killed) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)"too slow", 8);
        return -1;
    }
    struct rws_msg *m = c->q_head;
    if (!m) {
        if (!c->gone) return 0;
        const char *why = c->close_reason[0] ? c->close_reason : "gone";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)why, strlen(why));
        return -1;
    }
    unsigned char *buf = api_scratch(srv, m->len);
    if (!buf) return -1;
    memcpy(buf + LWS_PRE, m->text, m->len);
    if (lws_write(wsi, buf + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int)m->len) return -1;
    c->q_head = m->next;
    if (!c->q_head) c->q_tail = NULL;
    c->q_count--;
    c->q_bytes -= m->len;
    free(m);
    if (c->q_head || c->gone) lws_callback_on_writable(wsi);
    return 0;
}

static void session_free(struct api_rws_session *c)
{
    while (c->q_head) {
        struct rws_msg *m = c->q_head;
        c->q_head = m->next;
        free(m);
    }
    free(c->rx);
    free(c);
}

/* The socket closed: its participant leaves as disconnected (unless it has
 * left already). Idempotent. */
void api_rooms_ws_closed(struct api_server *srv, struct api_session *ss)
{
    (void)srv;
    struct api_rws_session *c = ss ? ss->rws : NULL;
    if (!c) return;
    ss->rws = NULL;
    struct api_rooms_ws *rw = c->rw;
    if (c->linked) {
        if (c->prev)
            c->prev->next = c->next;
        else
            rw->head = c->next;
        if (c->next) c->next->prev = c->prev;
        rw->sessions--;
    }
    if (c->joined && !c->gone && rw->sfu) {
        c->gone = true;
        sfu_exit(rw->sfu, c->id, ROOM_LEAVE_DISCONNECTED);
    }
    if (c->linked) log_info("api: room websocket %s left %s", c->remote, c->room);
    session_free(c);
}

void api_rooms_ws_free(struct api_server *srv)
{
    struct api_rooms_ws *rw = srv->rooms_ws;
    if (!rw) return;
    while (rw->head) {
        struct api_rws_session *c = rw->head;
        rw->head = c->next;
        if (c->ss) c->ss->rws = NULL;
        session_free(c);
    }
    if (rw->sfu) sfu_set_observer(rw->sfu, NULL);
    srv->rooms_ws = NULL;
    free(rw);
}

/* ---- join tokens ---- */

static void tokens_post(struct api_request *req, void *user)
{
    struct api_rooms_ws *rw = user;
    const char *room = api_param(req, "room");
    const char *bad = room_name_check(room ? room : "");
    if (bad) {
        api_log_refused(req, 400, "bad-room");
        api_reply_error(req, 400, "bad-room", "%s", bad);
        return;
    }
    if (!rw->sfu) {
        api_reply_error(req, 503, "media-off", "the media plane is not running");
        return;
    }
    json_t *b = api_body(req), *jn = NULL, *jt = NULL, *jp = NULL, *js = NULL;
    if (b && !json_is_object(b)) {
        api_reply_error(req, 400, "bad-request", "the body must be a JSON object");
        return;
    }
    if (b) jn = json_object_get(b, "name"), jt = json_object_get(b, "ttl_s"), jp = json_object_get(b, "publish"),
           js = json_object_get(b, "subscribe");
    if ((jn && !json_is_string(jn)) || (jt && (!json_is_integer(jt) || json_integer_value(jt) <= 0)) ||
        (jp && !json_is_boolean(jp)) || (js && !json_is_boolean(js))) {
        api_reply_error(req, 400, "bad-request",
                        "fields: name (string), ttl_s (seconds > 0), publish and subscribe (booleans)");
        return;
    }
    json_int_t ttl = jt ? json_integer_value(jt) : RWS_TOKEN_TTL_DEFAULT;
    if (ttl > RWS_TOKEN_TTL_MAX) ttl = RWS_TOKEN_TTL_MAX;
    struct room_token t = {.expires_s = (uint64_t)(clock_wall_ms() / 1000) + (uint64_t)ttl,
                           .publish = jp ? json_is_true(jp) : true,
                           .subscribe = js ? json_is_true(js) : true};
    snprintf(t.room, sizeof(t.room), "%s", room);
    const char *name = jn ? json_string_value(jn) : "";
    if (strlen(name) > ROOM_TEXT_MAX) {
        api_reply_error(req, 400, "bad-request", "name is longer than %d bytes", ROOM_TEXT_MAX);
        return;
    }
    snprintf(t.name, sizeof(t.name), "%s", name);
    char tok[ROOM_TOKEN_MAX + 1];
    if (room_token_sign(rw->key, rw->key_len, &t, tok, sizeof(tok)) < 0) {
        api_reply_error(req, 400, "bad-request", "name may not hold control characters or bad UTF-8");
        return;
    }
    char at[40];
    clock_iso8601(at, sizeof(at), (int64_t)t.expires_s * 1000, 1);
    log_info("api: %s made a join token for room %s (ttl %llds%s%s)", api_remote(req), room, (long long)ttl,
             t.publish ? ", publish" : "", t.subscribe ? ", subscribe" : "");
    api_reply_json(req, 201, json_pack("{s:s,s:s,s:s,s:I,s:b,s:b}", "token", tok, "room", room, "expires_at", at,
                                       "ttl_s", (json_int_t)ttl, "publish", t.publish, "subscribe", t.subscribe));
}

/* GET /api/v1/rooms/{room}/ws without an upgrade. */
static void ws_plain(struct api_request *req, void *user)
{
    (void)user;
    api_reply_error(req, 426, "upgrade-required",
                    "this is the room WebSocket: connect with a WebSocket client (see docs/api.md)");
}

static double metric_ws_sessions(void *arg) { return ((struct api_rooms_ws *)arg)->sessions; }
static double metric_ws_slow(void *arg) { return (double)((struct api_rooms_ws *)arg)->dropped_slow; }

int api_rooms_ws_start(struct api_server *srv, struct sfu *s, const char *secret)
{
    if (!srv || srv->rooms_ws) return -EINVAL;
    struct api_rooms_ws *rw = calloc(1, sizeof(*rw));
    if (!rw) return -ENOMEM;
    rw->srv = srv;
    rw->sfu = s;
    if (secret && *secret) {
        rw->key_len = strlen(secret) < sizeof(rw->key) ? strlen(secret) : sizeof(rw->key);
        memcpy(rw->key, secret, rw->key_len);
    } else {
        rw->key_len = 32;
        if (RAND_bytes(rw->key, (int)rw->key_len) != 1) {
            free(rw);
            return -EIO;
        }
        if (s)
            log_info("media: [media] token_secret is empty: join tokens are signed with a random key, so they do "
                     "not survive a restart and other nodes do not accept them");
    }
    srv->rooms_ws = rw;
    if (s) {
        struct sfu_observer ob = {
            .user = rw, .room_event = on_room_event, .peer_ended = on_peer_ended, .detached = on_sfu_detached};
        sfu_set_observer(s, &ob);
        api_metric_gauge(srv, "cascade_media_ws_sessions", "Room WebSocket connections", metric_ws_sessions, rw);
        api_metric_counter(srv, "cascade_media_ws_slow_disconnects_total",
                           "Room WebSocket clients dropped for not reading", metric_ws_slow, rw);
    }
    if (api_route(srv, "GET", "/api/v1/rooms/{room}/ws", ws_plain, rw) != 0) return -ENOMEM;
    return api_route(srv, "POST", "/api/v1/rooms/{room}/tokens", tokens_post, rw);
}
