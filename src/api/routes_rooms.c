/* routes_rooms.c — WHIP/WHEP and the rooms routes (see routes_rooms.h and
 * docs/api.md): request checks, the SFU's error codes as HTTP statuses, and
 * rooms and participants as JSON. Everything about peers and packets stays
 * behind media/sfu.h; this file only names participants by id.
 *
 * WHIP (RFC 9725 §4.2) and WHEP answer a POSTed offer with 201, the answer
 * as application/sdp, and a Location naming the session; DELETE on it ends
 * the session. Trickle ICE (PATCH, §4.3.1) is refused with 405: cascade is
 * ICE-lite and its answer already carries every candidate. Errors are the
 * API's JSON {"error","detail"} with the SFU's reason as the detail. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/routes_rooms.h"

#include "api/http.h"
#include "base/clock.h"
#include "base/histogram.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "media/room.h"
#include "media/sfu.h"

/* ---- helpers -------------------------------------------------------------- */

/* A time the SFU stamped (the loop's uv_now) as wall-clock ISO-8601. */
static json_t *loop_time_json(struct api_request *req, uint64_t at_ms)
{
    uint64_t now = uv_now(api_server_loop(api_request_server(req)));
    int64_t wall = clock_wall_ms() - (int64_t)(now >= at_ms ? now - at_ms : 0);
    char buf[40];
    clock_iso8601(buf, sizeof(buf), wall, 1);
    return json_string(buf);
}

static bool media_off(struct api_request *req, struct sfu *s)
{
    if (s) return false;
    api_log_refused(req, 503, "media-off");
    api_reply_error(req, 503, "media-off", "the media plane is not running (see [media] in the config and the log)");
    return true;
}

/* The room of the path: a good name (room_name_check), else 400 and NULL. */
static const char *room_param(struct api_request *req)
{
    const char *room = api_param(req, "room");
    const char *why = room_name_check(room ? room : "");
    if (!why) return room;
    api_log_refused(req, 400, "bad-room");
    api_reply_error(req, 400, "bad-room", "%s", why);
    return NULL;
}

/* A participant id as room.h makes them: 16 lower-case hex digits. */
static bool id_ok(const char *id)
{
    if (!id || strlen(id) != ROOM_ID_LEN) return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

/* The participant id of the path, in the room of the path: else 404. */
static const char *member_param(struct api_request *req, struct sfu *s, const char *room,
                                struct room_participant_info *pi)
{
    const char *id = api_param(req, "id");
    if (id_ok(id) && room_participant_get(sfu_rooms(s), id, pi) == 0 && pi->room && !strcmp(pi->room, room))
        return id;
    api_reply_error(req, 404, "not-found", "no participant %s in room %s", id_ok(id) ? id : "(bad id)", room);
    return NULL;
}

/* Content-Type is application/sdp (parameters allowed): else 415. */
static bool sdp_content_type(struct api_request *req)
{
    const char *ct = api_header(req, "content-type");
    if (ct) {
        while (*ct == ' ' || *ct == '\t') ct++;
        size_t n = strcspn(ct, "; \t");
        if (n == strlen("application/sdp") && !strncasecmp(ct, "application/sdp", n)) return true;
    }
    api_log_refused(req, 415, "unsupported-media-type");
    api_add_header(req, "Accept-Post", "application/sdp");
    api_reply_error(req, 415, "unsupported-media-type", "the offer must be sent as Content-Type: application/sdp%s%s",
                    ct ? ", not " : "", ct ? ct : "");
    return false;
}

/* What sfu_publish / sfu_view said, as the client's answer. */
static void reply_sfu_error(struct api_request *req, int rc, const char *why)
{
    int status;
    const char *code;
    switch (rc) {
    case -EINVAL: status = 400, code = "bad-offer"; break;
    case -ENOTSUP: status = 400, code = "unsupported-offer"; break;
    case -ENOENT: status = 404, code = "not-found"; break;
    case -ENOSPC:
    case -EUSERS: status = 503, code = "full"; break;
    case -ENOMEM: status = 503, code = "no-memory"; break;
    default: status = 500, code = "internal"; break;
    }
    if (!why || !why[0]) why = rc == -ENOENT ? "no such room or publisher" : strerror(rc < 0 ? -rc : rc);
    api_log_refused(req, status, code);
    if (status == 503) api_add_header(req, "Retry-After", "5");
    api_reply_error(req, status, code, "%s", why);
}

/* ---- WHIP / WHEP ---------------------------------------------------------- */

/* The checks a POSTed offer passes before the SFU sees it: the room name,
 * the content type, a body. */
static const char *offer_checks(struct api_request *req, const char **offer, size_t *len)
{
    const char *room = room_param(req);
    if (!room || !sdp_content_type(req)) return NULL;
    *offer = api_body_raw(req, len);
    if (!*offer || !*len) {
        api_log_refused(req, 400, "bad-offer");
        api_reply_error(req, 400, "bad-offer", "the body must be an SDP offer");
        return NULL;
    }
    return room;
}

static void reply_answer(struct api_request *req, const char *kind, const char *room, const char *id, sbuf_t *answer)
{
    char location[160];
    snprintf(location, sizeof(location), "/api/v1/%s/%s/%s", kind, room, id);
    api_add_header(req, "Location", location);
    api_reply_bytes(req, 201, "application/sdp", answer->data ? answer->data : "", answer->len);
}

static void whip_post(struct api_request *req, void *user)
{
    struct sfu *s = user;
    const char *offer, *room;
    size_t len;
    if (media_off(req, s) || !(room = offer_checks(req, &offer, &len))) return;
    sbuf_t answer;
    sbuf_init(&answer);
    char id[ROOM_ID_LEN + 1] = "";
    const char *why = NULL;
    int rc = sfu_publish(s, room, api_query(req, "name"), api_query(req, "user"), offer, len, &answer, id, &why);
    if (rc == 0) {
        log_info("api: %s publishes into room %s as %s", api_remote(req), room, id);
        reply_answer(req, "whip", room, id, &answer);
    } else {
        reply_sfu_error(req, rc, why);
    }
    sbuf_free(&answer);
}

static void whep_post(struct api_request *req, void *user)
{
    struct sfu *s = user;
    const char *offer, *room;
    size_t len;
    if (media_off(req, s) || !(room = offer_checks(req, &offer, &len))) return;
    const char *pub = api_query(req, "participant");
    if (pub && !id_ok(pub)) {
        api_reply_error(req, 404, "not-found", "no participant %s in room %s", "(bad id)", room);
        return;
    }
    sbuf_t answer;
    sbuf_init(&answer);
    char id[ROOM_ID_LEN + 1] = "";
    const char *why = NULL;
    int rc = sfu_view(s, room, pub, api_query(req, "name"), api_query(req, "user"), offer, len, &answer, id, &why);
    if (rc == 0) {
        log_info("api: %s views room %s as %s", api_remote(req), room, id);
        reply_answer(req, "whep", room, id, &answer);
    } else {
        reply_sfu_error(req, rc, why);
    }
    sbuf_free(&answer);
}

/* DELETE /whip|whep/{room}/{id}: the session ends (reason leave). A
 * session is named by the Location it was given: a publisher's under whip,
 * a viewer's under whep. */
static void session_delete(struct api_request *req, void *user)
{
    struct sfu *s = user;
    struct room_participant_info pi;
    struct sfu_peer_info pe;
    const char *room, *id;
    if (media_off(req, s) || !(room = room_param(req)) || !(id = member_param(req, s, room, &pi))) return;
    bool whip = !strncmp(api_path(req), "/api/v1/whip/", 13);
    if (sfu_peer_info(s, id, &pe) == 0 && (pe.publisher != whip || pe.member)) {
        api_reply_error(req, 404, "not-found", "%s is not a %s session of room %s", id, whip ? "WHIP" : "WHEP", room);
        return;
    }
    if (sfu_leave(s, id) != 0) {
        api_reply_error(req, 404, "not-found", "no participant %s in room %s", id, room);
        return;
    }
    api_reply_json(req, 200, json_pack("{s:s,s:s,s:b}", "room", room, "id", id, "left", 1));
}

static void session_patch(struct api_request *req, void *user)
{
    (void)user;
    api_add_header(req, "Allow", "DELETE, OPTIONS");
    api_reply_error(req, 405, "method-not-allowed",
                    "trickle ICE is not supported: cascade is ICE-lite and its answer carries every candidate");
}

/* ---- rooms ---------------------------------------------------------------- */

static const char *state_name(enum room_participant_state st)
{
    switch (st) {
    case ROOM_PART_JOINING: return "joining";
    case ROOM_PART_JOINED: return "joined";
    case ROOM_PART_PUBLISHING: return "publishing";
    default: return "leaving";
    }
}

static int count_publisher(void *arg, const struct room_participant_info *pi)
{
    if (pi->streams) ++*(uint32_t *)arg;
    return 0;
}

struct list_ctx {
    struct api_request *req;
    struct sfu *s;
    json_t *arr;
};

static int room_row(void *arg, const struct room_info *ri)
{
    struct list_ctx *c = arg;
    uint32_t publishers = 0;
    room_participants(sfu_rooms(c->s), ri->name, count_publisher, &publishers);
    json_t *o = json_pack("{s:s,s:i,s:i,s:b,s:b}", "name", ri->name, "participants", (json_int_t)ri->participants,
                          "publishers", (json_int_t)publishers, "kept", ri->kept, "closing", ri->closing);
    if (!o) return -1;
    json_object_set_new(o, "created", loop_time_json(c->req, ri->created_ms));
    json_array_append_new(c->arr, o);
    return 0;
}

static void rooms_list(struct api_request *req, void *user)
{
    struct sfu *s = user;
    if (media_off(req, s)) return;
    struct list_ctx c = {req, s, json_array()};
    room_list(sfu_rooms(s), room_row, &c);
    api_reply_json(req, 200, json_pack("{s:o}", "rooms", c.arr));
}

static json_t *peer_json(const struct sfu_peer_info *pe)
{
    const struct rtc_peer_stats *st = &pe->stats;
    json_t *o = json_pack("{s:b,s:s,s:b}", "connected", pe->connected, "remote", pe->remote, "publisher",
                          pe->publisher);
    if (!o) return NULL;
    if (!pe->publisher) json_object_set_new(o, "viewing", json_string(pe->viewing));
    json_object_set_new(o, "counters",
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "rtp_in", (json_int_t)st->rtp_in, "rtp_out",
                                  (json_int_t)st->rtp_out, "rtcp_in", (json_int_t)st->rtcp_in, "rtcp_out",
                                  (json_int_t)st->rtcp_out, "bytes_in", (json_int_t)st->bytes_in, "bytes_out",
                                  (json_int_t)st->bytes_out, "srtp_errors", (json_int_t)st->srtp_errors,
                                  "send_errors", (json_int_t)st->send_errors, "stun_requests",
                                  (json_int_t)st->stun_requests));
    json_t *bw = json_pack("{s:b,s:I}", "transport_cc", pe->transport_cc, "twcc_feedbacks",
                           (json_int_t)pe->twcc_feedbacks);
    if (bw && !pe->publisher) {
        json_object_set_new(bw, "estimate_bps", json_integer((json_int_t)pe->bwe_bps));
        json_object_set_new(bw, "remb_bps", json_integer((json_int_t)pe->remb_bps));
        json_object_set_new(bw, "twcc_bps", json_integer((json_int_t)pe->twcc_bps));
        json_object_set_new(bw, "twcc_delivered_bps", json_integer((json_int_t)pe->twcc_delivered_bps));
        json_object_set_new(bw, "twcc_queue_us", json_integer((json_int_t)pe->twcc_queue_us));
        json_object_set_new(bw, "layer_trials", json_integer((json_int_t)pe->layer_trials));
        json_object_set_new(bw, "layer_trials_failed", json_integer((json_int_t)pe->layer_trials_failed));
    }
    json_object_set_new(o, "bandwidth", bw);
    return o;
}

static int participant_row(void *arg, const struct room_participant_info *pi)
{
    struct list_ctx *c = arg;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i}", "id", pi->id, "name", pi->name ? pi->name : "", "user",
                          pi->user ? pi->user : "", "state", state_name(pi->state), "subscriptions",
                          (json_int_t)pi->subscriptions, "subscribers", (json_int_t)pi->subscribers);
    if (!o) return -1;
    json_object_set_new(o, "joined", loop_time_json(c->req, pi->joined_ms));
    json_t *streams = json_array();
    for (uint32_t i = 0; i < pi->streams; i++) {
        struct room_stream_info si;
        if (room_participant_stream(sfu_rooms(c->s), pi->id, i, &si) != 0) break;
        json_array_append_new(streams,
                              json_pack("{s:s,s:s}", "id", si.stream_id, "kind", room_stream_kind_name(si.kind)));
    }
    json_object_set_new(o, "streams", streams);
    struct sfu_peer_info pe;
    if (sfu_peer_info(c->s, pi->id, &pe) == 0) {
        pe.remote[sizeof(pe.remote) - 1] = '\0';
        pe.viewing[sizeof(pe.viewing) - 1] = '\0';
        json_object_set_new(o, "media", peer_json(&pe));
    }
    json_array_append_new(c->arr, o);
    return 0;
}

static void room_show(struct api_request *req, void *user)
{
    struct sfu *s = user;
    const char *room;
    if (media_off(req, s) || !(room = room_param(req))) return;
    struct room_info ri;
    if (room_get(sfu_rooms(s), room, &ri) != 0) {
        api_reply_error(req, 404, "not-found", "no room %s", room);
        return;
    }
    struct list_ctx c = {req, s, json_array()};
    room_participants(sfu_rooms(s), room, participant_row, &c);
    uint32_t publishers = 0;
    room_participants(sfu_rooms(s), room, count_publisher, &publishers);
    json_t *o = json_pack("{s:s,s:i,s:b,s:b,s:o}", "name", ri.name, "publishers", (json_int_t)publishers, "kept",
                          ri.kept, "closing", ri.closing, "participants", c.arr);
    if (o) json_object_set_new(o, "created", loop_time_json(req, ri.created_ms));
    api_reply_json(req, 200, o);
}

static void room_delete(struct api_request *req, void *user)
{
    struct sfu *s = user;
    const char *room;
    if (media_off(req, s) || !(room = room_param(req))) return;
    if (sfu_close_room(s, room) != 0) {
        api_reply_error(req, 404, "not-found", "no room %s", room);
        return;
    }
    log_info("api: %s closed room %s", api_remote(req), room);
    api_reply_json(req, 200, json_pack("{s:s,s:b}", "room", room, "closed", 1));
}

static void participant_delete(struct api_request *req, void *user)
{
    struct sfu *s = user;
    struct room_participant_info pi;
    const char *room, *id;
    if (media_off(req, s) || !(room = room_param(req)) || !(id = member_param(req, s, room, &pi))) return;
    if (sfu_kick(s, id) != 0) {
        api_reply_error(req, 404, "not-found", "no participant %s in room %s", id, room);
        return;
    }
    log_info("api: %s kicked %s from room %s", api_remote(req), id, room);
    api_reply_json(req, 200, json_pack("{s:s,s:s,s:b}", "room", room, "id", id, "kicked", 1));
}

/* ---- stats and metrics ---------------------------------------------------- */

/* The upper edge (µs) of the bucket holding the q-th fraction of n. */
static json_int_t delay_quantile(const uint64_t *h, uint64_t n, double q)
{
    uint64_t want = (uint64_t)(q * (double)n), seen = 0;
    for (size_t i = 0; i < RTC_DELAY_BUCKETS; i++) {
        seen += h[i];
        if (seen > want) return (json_int_t)((i + 1) * RTC_DELAY_BUCKET_US);
    }
    return (json_int_t)(RTC_DELAY_BUCKETS * RTC_DELAY_BUCKET_US);
}

/* "forward_delay_us": count and quantiles (bucket upper edges), and the
 * non-empty buckets as [upper_us, count] so that a benchmark can take the
 * difference of two readings. */
static json_t *delay_json(const struct sfu *s)
{
    static uint64_t h[RTC_DELAY_BUCKETS];   /* loop thread only; 8 KiB off the stack */
    sfu_delay_histogram(s, h);
    uint64_t n = 0;
    json_t *hist = json_array();
    for (size_t i = 0; i < RTC_DELAY_BUCKETS; i++) {
        n += h[i];
        if (h[i]) json_array_append_new(hist, json_pack("[I,I]", (json_int_t)((i + 1) * RTC_DELAY_BUCKET_US), (json_int_t)h[i]));
    }
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:o}", "count", (json_int_t)n, "p50", delay_quantile(h, n, 0.50), "p90",
                     delay_quantile(h, n, 0.90), "p99", delay_quantile(h, n, 0.99), "bucket_us",
                     (json_int_t)RTC_DELAY_BUCKET_US, "buckets", hist);
}

static void stats_media(json_t *stats, void *arg)
{
    struct sfu_stats st;
    sfu_get_stats(arg, &st);
    const struct rtc_transport_stats *r = &st.rtc;
    json_t *rtc = json_pack("{s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "peers", (json_int_t)r->peers,
                            "peers_connected", (json_int_t)r->peers_connected, "stun_ok", (json_int_t)r->stun_ok,
                            "stun_refused", (json_int_t)r->stun_refused, "dtls_handshakes",
                            (json_int_t)r->dtls_handshakes, "dtls_failed", (json_int_t)r->dtls_failed,
                            "srtp_gcm", (json_int_t)r->srtp_gcm, "srtp_cm", (json_int_t)r->srtp_cm,
                            "dropped_unknown_source", (json_int_t)r->dropped_unknown_source, "dropped_before_dtls",
                            (json_int_t)r->dropped_before_dtls, "dropped_garbage", (json_int_t)r->dropped_garbage,
                            "srtp_errors", (json_int_t)r->srtp_errors, "tcp_connections",
                            (json_int_t)r->tcp_connections);
    json_t *m = json_pack("{s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:o}", "rooms", (json_int_t)st.rooms,
                          "participants", (json_int_t)st.participants, "publishers", (json_int_t)st.publishers,
                          "viewers", (json_int_t)st.viewers, "rtp_forwarded", (json_int_t)st.rtp_forwarded,
                          "rtp_dropped", (json_int_t)st.rtp_dropped, "nacks_answered", (json_int_t)st.nacks_answered,
                          "nacks_forwarded", (json_int_t)st.nacks_forwarded, "plis_sent", (json_int_t)st.plis_sent,
                          "rtc", rtc);
    if (m) json_object_set_new(m, "forward_delay_us", delay_json(arg));
    if (m) json_object_set_new(stats, "media", m);
}

static double metric_rooms(void *arg)
{
    struct sfu_stats st;
    sfu_get_stats(arg, &st);
    return st.rooms;
}

static double metric_participants(void *arg)
{
    struct sfu_stats st;
    sfu_get_stats(arg, &st);
    return st.participants;
}

static double metric_forwarded(void *arg)
{
    struct sfu_stats st;
    sfu_get_stats(arg, &st);
    return (double)st.rtp_forwarded;
}

static void metric_stun(struct api_metric_writer *w, void *arg)
{
    struct sfu_stats st;
    sfu_get_stats(arg, &st);
    api_metric_sample(w, "result", "ok", (double)st.rtc.stun_ok);
    api_metric_sample(w, "result", "refused", (double)st.rtc.stun_refused);
}

static void metric_dtls(struct api_metric_writer *w, void *arg)
{
    struct sfu_stats st;
    sfu_get_stats(arg, &st);
    api_metric_sample(w, "result", "ok", (double)st.rtc.dtls_handshakes);
    api_metric_sample(w, "result", "failed", (double)st.rtc.dtls_failed);
}

static void metric_dropped(struct api_metric_writer *w, void *arg)
{
    struct sfu_stats st;
    sfu_get_stats(arg, &st);
    api_metric_sample(w, "reason", "garbage", (double)st.rtc.dropped_garbage);
    api_metric_sample(w, "reason", "unknown-source", (double)st.rtc.dropped_unknown_source);
    api_metric_sample(w, "reason", "before-dtls", (double)st.rtc.dropped_before_dtls);
    api_metric_sample(w, "reason", "srtp-error", (double)st.rtc.srtp_errors);
}

/* The transport's forwarding delays (10 µs buckets, rtc.h) regrouped at
 * these edges: each is a multiple of 10 µs, so a delay of bucket i (below
 * (i + 1) * 10 µs) is counted under the first edge at or above (i + 1) * 10,
 * and the open-ended last bucket (9.99 ms and more) only under +Inf. */
static const uint64_t delay_bounds_us[] = {10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
#define DELAY_BOUNDS (sizeof(delay_bounds_us) / sizeof(delay_bounds_us[0]))

static void metric_forward_delay(struct api_metric_writer *w, void *arg)
{
    static uint64_t h[RTC_DELAY_BUCKETS]; /* loop thread only; 8 KiB off the stack */
    sfu_delay_histogram(arg, h);
    struct histogram out;
    histogram_init(&out, delay_bounds_us, DELAY_BOUNDS);
    unsigned j = 0;
    for (size_t i = 0; i < RTC_DELAY_BUCKETS; i++) {
        while (j < DELAY_BOUNDS && (i + 1) * RTC_DELAY_BUCKET_US > delay_bounds_us[j]) j++;
        if (i == RTC_DELAY_BUCKETS - 1) j = DELAY_BOUNDS;
        out.buckets[j] += h[i];
        out.count += h[i];
    }
    out.sum_us = sfu_delay_sum_us(arg);
    api_metric_histogram_sample(w, NULL, NULL, &out);
}

static void register_metrics(struct api_server *api, struct sfu *s)
{
    api_stats_provider(api, stats_media, s);
    api_metric_gauge(api, "cascade_media_rooms", "SFU rooms open", metric_rooms, s);
    api_metric_gauge(api, "cascade_media_participants", "SFU participants (publishers and viewers)",
                     metric_participants, s);
    api_metric_counter(api, "cascade_media_rtp_forwarded_total", "RTP packets the SFU sent to viewers",
                       metric_forwarded, s);
    api_metric_family(api, "cascade_media_stun_total", "ICE Binding requests on the media port, by result",
                      API_METRIC_COUNTER, metric_stun, s);
    api_metric_family(api, "cascade_media_dtls_handshakes_total", "DTLS handshakes on the media port, by result",
                      API_METRIC_COUNTER, metric_dtls, s);
    api_metric_family(api, "cascade_media_dropped_total", "Datagrams the media port dropped, by reason",
                      API_METRIC_COUNTER, metric_dropped, s);
    api_metric_family(api, "cascade_media_forward_delay_seconds",
                      "SFU forwarding delay: arrival of a packet on the media port to the sendmmsg that sent it",
                      API_METRIC_HISTOGRAM, metric_forward_delay, s);
}

void api_routes_rooms(struct api_server *api, struct sfu *s)
{
    if (!api) return;
    static const struct {
        const char *method, *pattern;
        api_handler fn;
        unsigned flags;
    } routes[] = {
        {"POST", "/api/v1/whip/{room}", whip_post, API_ROUTE_RAW_BODY | API_ROUTE_CORS},
        {"DELETE", "/api/v1/whip/{room}/{id}", session_delete, API_ROUTE_CORS},
        {"PATCH", "/api/v1/whip/{room}/{id}", session_patch, API_ROUTE_RAW_BODY | API_ROUTE_CORS},
        {"POST", "/api/v1/whep/{room}", whep_post, API_ROUTE_RAW_BODY | API_ROUTE_CORS},
        {"DELETE", "/api/v1/whep/{room}/{id}", session_delete, API_ROUTE_CORS},
        {"PATCH", "/api/v1/whep/{room}/{id}", session_patch, API_ROUTE_RAW_BODY | API_ROUTE_CORS},
        {"GET", "/api/v1/rooms", rooms_list, 0},
        {"GET", "/api/v1/rooms/{room}", room_show, 0},
        {"DELETE", "/api/v1/rooms/{room}", room_delete, 0},
        {"DELETE", "/api/v1/rooms/{room}/participants/{id}", participant_delete, 0},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (api_route_ex(api, routes[i].method, routes[i].pattern, routes[i].fn, s, routes[i].flags) != 0)
            log_error("media: route %s %s not registered", routes[i].method, routes[i].pattern);
    if (s) register_metrics(api, s);
}
