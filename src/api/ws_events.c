/* ws_events.c — the event stream: GET /api/v1/events upgraded to a WebSocket
 * sends one JSON event per text frame; GET /api/v1/events/recent answers the
 * same events as one JSON document for polling clients and tests.
 *
 * A client is a cursor into the bus's ring (the next seq to send), not a copy
 * of each event: publishing only asks lws for a writeable callback per client,
 * and each callback sends one frame straight from the ring. The ring is thus
 * every client's bounded send queue. A client whose cursor falls out of the
 * ring (it reads slower than events arrive, by more than ring_size events) is
 * disconnected with a log line; it can reconnect with ?since= and learn from
 * an "events.lost" notice what it missed.
 *
 * With ?since=SEQ the client first gets the events after SEQ that the ring
 * still holds (preceded by an events.lost notice if some are gone), then live
 * ones. Without it, only live events. A since beyond the last seq means the
 * daemon restarted (seqs start at 1 again): the whole ring is replayed —
 * except on a view of the cluster's stream ([redis] events_stream), whose
 * seqs persist: there the client gets the events after its since once this
 * node has read them.
 *
 * Authorization: the Bearer header, or (for browsers, whose WebSocket cannot
 * send one) ?ticket= with a ticket from POST /api/v1/events/ticket: good for
 * API_TICKET_TTL_MS and one upgrade (ws_ticket.h). With no token configured
 * neither is needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http_internal.h"
#include "base/log.h"
#include "base/sbuf.h"
#include "api/ws_ticket.h"

#define STREAM_PATH "/api/v1/events"

struct api_ws_client {
    struct api_server *srv;
    struct lws *wsi;
    struct api_session *ss;
    uint64_t next_seq;
    uint64_t lost_from, lost_to;   /* an events.lost notice is due when lost_to != 0 */
    bool killed;
    char remote[64];
    struct api_ws_client *prev, *next;
};

/* The value of query argument name= (the first one) copied to out: 1, or
 * 0 when absent or longer than cap - 1 bytes. */
static int query_arg(struct lws *wsi, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (int i = 0; i < 64; i++) {
        char frag[128];
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (flen <= 0) break;
        if (flen >= (int)sizeof(frag)) continue;
        if (lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) < 0) break;
        if (strncmp(frag, name, nl) || frag[nl] != '=') continue;
        if (strlen(frag + nl + 1) >= cap) return 0;
        memcpy(out, frag + nl + 1, strlen(frag + nl + 1) + 1);
        return 1;
    }
    return 0;
}

static int since_from_args(struct lws *wsi, uint64_t *since)
{
    char v[128];   /* as long as any fragment query_arg reads: a too long since is refused, not ignored */
    if (!query_arg(wsi, "since", v, sizeof(v))) return 0;
    return str_to_u64(str_from_cstr(v), UINT64_MAX, since) ? -1 : 1;
}

/* The upgrade's credential: the Bearer header, else a ticket, used up here
 * (a ticket is tried only when the header does not do: a good header with
 * a ticket leaves the ticket for its own use). */
static bool upgrade_authorized(struct api_server *srv, struct lws *wsi, bool *had_ticket)
{
    char ticket[API_TICKET_TEXT + 2];
    *had_ticket = false;
    if (api_request_authorized(srv, wsi)) return true;
    if (!srv->tickets || !query_arg(wsi, "ticket", ticket, sizeof(ticket))) return false;
    *had_ticket = true;
    return api_tickets_redeem(srv->tickets, uv_now(srv->loop), ticket, strlen(ticket)) == 1;
}

/* Answers a refused upgrade with a plain HTTP error so that clients learn
 * why (RFC 6455 §4.2.2: any status other than 101 refuses), then closes. */
static int refuse_upgrade(struct api_server *srv, struct lws *wsi, int status, const char *code,
                          const char *detail)
{
    char body[256];
    int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"detail\":\"%s\"}", code, detail);
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

int api_ws_filter(struct api_server *srv, struct lws *wsi, struct api_session *ss)
{
    char remote[64] = "?", uri[256] = "";
    api_peer(wsi, remote, sizeof(remote));
    if (!ss || srv->closing || !srv->bus) return 1;
    if (api_target_too_long(wsi)) {
        api_log_refusal(srv, "api: websocket upgrade from %s refused: 414 uri-too-long", remote);
        return refuse_upgrade(srv, wsi, 414, "uri-too-long", "the request target is 4 KiB or longer");
    }
    int ul = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI);
    if (ul <= 0 || ul >= (int)sizeof(uri) || lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0) {
        api_log_refusal(srv, "api: websocket upgrade from %s refused: not a GET or target too long", remote);
        return 1;
    }
    size_t n = strlen(uri);
    if (n > 1 && uri[n - 1] == '/') uri[--n] = '\0';
    if (strcmp(uri, STREAM_PATH)) {
        api_log_refusal(srv, "api: websocket upgrade for %s from %s refused: no such stream", uri, remote);
        return refuse_upgrade(srv, wsi, 404, "not-found", "no such stream");
    }
    bool had_ticket;
    if (!upgrade_authorized(srv, wsi, &had_ticket)) {
        api_log_refusal(srv, "api: websocket upgrade for %s from %s refused: unauthorized (%s)", uri, remote,
                        had_ticket ? "ticket unknown, used or expired" : "no valid token or ticket");
        return refuse_upgrade(srv, wsi, 401, "unauthorized",
                              had_ticket ? "the ticket is unknown, used or expired: ask POST /api/v1/events/ticket "
                                           "for a new one"
                                         : "a valid 'Authorization: Bearer <token>' header or ?ticket= is required");
    }
    if (!event_bus_ready(srv->bus)) {
        api_log_refusal(srv, "api: websocket upgrade for %s from %s refused: the event stream is catching up", uri,
                        remote);
        return refuse_upgrade(srv, wsi, 503, "unavailable", "the cluster's event stream is still being read; retry");
    }
    int r = since_from_args(wsi, &ss->ws_since);
    if (r < 0) {
        api_log_refusal(srv, "api: websocket upgrade for %s from %s refused: bad since", uri, remote);
        return refuse_upgrade(srv, wsi, 400, "bad-request", "since must be a sequence number");
    }
    ss->ws_has_since = r == 1;
    ss->ws_accepted = true;
    return 0;
}

int api_ws_established(struct api_server *srv, struct lws *wsi, struct api_session *ss)
{
    if (!ss || !ss->ws_accepted || srv->closing) return -1;
    struct api_ws_client *c = calloc(1, sizeof(*c));
    if (!c) return -1;
    c->srv = srv;
    c->wsi = wsi;
    c->ss = ss;
    api_peer(wsi, c->remote, sizeof(c->remote));
    uint64_t last = event_bus_last_seq(srv->bus), oldest = event_bus_oldest_seq(srv->bus);
    if (!ss->ws_has_since) {
        c->next_seq = last + 1;
    } else if (ss->ws_since > last && event_bus_is_view(srv->bus)) {
        /* The cluster's seqs persist: this node has not read that far yet. */
        c->next_seq = ss->ws_since + 1;
    } else if (ss->ws_since > last) {
        log_info("api: event stream client %s asks for events after %llu but the last is %llu "
                 "(restarted?): replaying what is held",
                 c->remote, (unsigned long long)ss->ws_since, (unsigned long long)last);
        c->next_seq = oldest ? oldest : last + 1;
    } else {
        c->next_seq = ss->ws_since + 1;
        if (oldest && c->next_seq < oldest) {
            c->lost_from = c->next_seq;
            c->lost_to = oldest - 1;
            c->next_seq = oldest;
        }
    }
    ss->ws = c;
    c->next = srv->ws_clients;
    if (srv->ws_clients) srv->ws_clients->prev = c;
    srv->ws_clients = c;
    srv->nws++;
    log_info("api: event stream client %s connected (from seq %llu)", c->remote, (unsigned long long)c->next_seq);
    if (c->lost_to || c->next_seq <= last) lws_callback_on_writable(wsi);
    return 0;
}

static void kill_slow(struct api_ws_client *c)
{
    if (c->killed) return;
    c->killed = true;
    c->srv->ws_dropped_slow++;
    log_warn("api: event stream client %s fell more than %d events behind (next %llu, last %llu); disconnecting",
             c->remote, event_bus_ring_size(c->srv->bus), (unsigned long long)c->next_seq,
             (unsigned long long)event_bus_last_seq(c->srv->bus));
    /* Its socket may not become writeable again: let lws close it. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    api_wake(c->srv);
}

void api_ws_on_event(uint64_t seq, const char *json, size_t len, void *arg)
{
    (void)seq;
    (void)json;
    (void)len;
    struct api_server *srv = arg;
    uint64_t oldest = event_bus_oldest_seq(srv->bus);
    for (struct api_ws_client *c = srv->ws_clients; c; c = c->next) {
        if (c->killed) continue;
        if (c->next_seq < oldest) kill_slow(c);
        else lws_callback_on_writable(c->wsi);
    }
    if (srv->ws_clients) api_wake(srv);
}

static int write_text(struct api_server *srv, struct lws *wsi, const char *text, size_t len)
{
    unsigned char *buf = api_scratch(srv, len);
    if (!buf) return -1;
    memcpy(buf + LWS_PRE, text, len);
    return lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int)len ? -1 : 0;
}

int api_ws_writeable(struct api_server *srv, struct lws *wsi, struct api_session *ss)
{
    struct api_ws_client *c = ss ? ss->ws : NULL;
    if (!c || srv->closing) return -1;
    if (c->killed) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)"too slow", 8);
        return -1;
    }
    if (c->lost_to) {
        char note[160];
        int n = snprintf(note, sizeof(note), "{\"type\":\"events.lost\",\"from\":%llu,\"to\":%llu,\"count\":%llu}",
                         (unsigned long long)c->lost_from, (unsigned long long)c->lost_to,
                         (unsigned long long)(c->lost_to - c->lost_from + 1));
        c->lost_to = 0;
        if (write_text(srv, wsi, note, (size_t)n)) return -1;
    } else {
        const char *json;
        size_t len;
        int r = event_bus_get(srv->bus, c->next_seq, &json, &len);
        if (r == 1) return 0;                       /* up to date */
        if (r < 0) {
            kill_slow(c);
            lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)"too slow", 8);
            return -1;
        }
        if (write_text(srv, wsi, json, len)) return -1;
        c->next_seq++;
    }
    if (c->next_seq <= event_bus_last_seq(srv->bus)) lws_callback_on_writable(wsi);
    return 0;
}

void api_ws_closed(struct api_server *srv, struct api_session *ss)
{
    struct api_ws_client *c;
    if (ss) {
        c = ss->ws;
        if (!c) return;
        ss->ws = NULL;
        log_info("api: event stream client %s disconnected", c->remote);
    } else {
        c = srv->ws_clients;                        /* final cleanup: sessions are gone */
        if (!c) return;
    }
    if (c->prev) c->prev->next = c->next;
    else srv->ws_clients = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->nws--;
    free(c);
}

/* GET /api/v1/events without an upgrade. */
static void events_plain(struct api_request *req, void *user)
{
    (void)user;
    api_reply_error(req, 426, "upgrade-required",
                    "this is a WebSocket stream; use GET /api/v1/events/recent?since=SEQ to poll");
}

static void events_recent(struct api_request *req, void *user)
{
    struct api_server *srv = user;
    struct event_bus *bus = srv->bus;
    if (!event_bus_ready(bus)) {
        api_reply_error(req, 503, "unavailable", "the cluster's event stream is still being read; retry");
        return;
    }
    uint64_t since = 0, limit = (uint64_t)event_bus_ring_size(bus);
    const char *s = api_query(req, "since"), *l = api_query(req, "limit");
    if (s && str_to_u64(str_from_cstr(s), UINT64_MAX, &since)) {
        api_reply_error(req, 400, "bad-request", "since must be a sequence number");
        return;
    }
    if (l && (str_to_u64(str_from_cstr(l), UINT64_MAX, &limit) || limit == 0)) {
        api_reply_error(req, 400, "bad-request", "limit must be a positive number");
        return;
    }
    uint64_t last = event_bus_last_seq(bus), oldest = event_bus_oldest_seq(bus);
    uint64_t from = since + 1, lost = 0;
    if (since < last && oldest && from < oldest) {
        lost = oldest - from;
        from = oldest;
    }
    sbuf_t out;
    sbuf_init(&out);
    sbuf_append_cstr(&out, "{\"events\":[");
    uint64_t n = 0;
    for (uint64_t q = from; q <= last && n < limit; q++, n++) {
        const char *json;
        size_t len;
        if (event_bus_get(bus, q, &json, &len)) break;
        if (n) sbuf_append_char(&out, ',');
        sbuf_append(&out, json, len);
    }
    sbuf_printf(&out, "],\"last_seq\":%llu,\"lost\":%llu}", (unsigned long long)last, (unsigned long long)lost);
    if (out.failed) api_reply_error(req, 500, "internal", "out of memory");
    else api_reply_bytes(req, 200, "application/json", out.data, out.len);
    sbuf_free(&out);
}

/* POST /api/v1/events/ticket: a single-use ticket for ?ticket= on the
 * event stream's upgrade (authorized like every route). */
static void events_ticket(struct api_request *req, void *user)
{
    struct api_server *srv = user;
    char ticket[API_TICKET_TEXT + 1];
    if (!srv->tickets || api_tickets_issue(srv->tickets, uv_now(srv->loop), ticket)) {
        api_reply_error(req, 503, "unavailable", "no ticket can be issued now");
        return;
    }
    api_reply_json(req, 200,
                   json_pack("{s:s,s:i}", "ticket", ticket, "expires_in",
                             (int)(api_tickets_ttl_ms(srv->tickets) / 1000)));
}

static void tickets_stats(json_t *stats, void *arg)
{
    struct api_server *srv = arg;
    struct api_tickets_stats st;
    if (!srv->tickets) return;
    api_tickets_get_stats(srv->tickets, &st);
    json_object_set_new(stats, "event_tickets",
                        json_pack("{s:I,s:I,s:I,s:I,s:i}", "issued", (json_int_t)st.issued, "redeemed",
                                  (json_int_t)st.redeemed, "refused", (json_int_t)st.refused, "evicted",
                                  (json_int_t)st.evicted, "outstanding", (int)st.outstanding));
}

void api_stream_routes(struct api_server *srv)
{
    api_route(srv, "GET", STREAM_PATH, events_plain, srv);
    api_route(srv, "GET", STREAM_PATH "/recent", events_recent, srv);
    srv->tickets = api_tickets_new(API_TICKET_CAP, API_TICKET_TTL_MS);
    if (!srv->tickets) {
        log_warn("api: out of memory for the event stream's ticket table: browsers will poll");
        return;
    }
    api_route(srv, "POST", STREAM_PATH "/ticket", events_ticket, srv);
    api_stats_provider(srv, tickets_stats, srv);
}

void api_stream_free(struct api_server *srv)
{
    api_tickets_free(srv->tickets);
    srv->tickets = NULL;
}
