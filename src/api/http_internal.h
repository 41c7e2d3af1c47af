/* http_internal.h — what the files of the API server share (http.c: lws glue,
 * routing and the request life cycle; stream.c: the WebSocket event stream and
 * the event routes; metrics.c: /metrics). Not for other modules. */
#ifndef CASCADE_API_HTTP_INTERNAL_H
#define CASCADE_API_HTTP_INTERNAL_H

#include <libwebsockets.h>
#include <stdbool.h>

#include "api/http.h"
#include "base/arena.h"
#include "base/log.h"
#include "base/sbuf.h"

struct api_route_entry {
    char method[8];
    char *pattern;                        /* as registered, for logs */
    char *segs_mem;                       /* the split copy segs point into */
    const char *seg[API_MAX_SEGMENTS];    /* literal, or capture name without braces */
    bool is_param[API_MAX_SEGMENTS];
    int nseg;
    bool public_route;                    /* no bearer token needed (GET /metrics) */
    unsigned flags;                       /* API_ROUTE_* */
    api_handler handler;
    void *user;
};

enum api_req_state {
    API_REQ_BODY,        /* reading the body */
    API_REQ_PENDING,     /* handler called, no answer yet */
    API_REQ_ABORTING,    /* client gone, abort callback running */
    API_REQ_ANSWERED,    /* answer built; being written */
};

struct api_kv {
    const char *name, *value;
};

struct api_session;

struct api_request {
    struct api_server *srv;
    struct lws *wsi;                      /* NULL once the client went away */
    struct api_session *session;          /* NULL once detached from the connection */
    enum api_req_state state;
    arena_t arena;                        /* strings below */
    char method[8];
    const char *path;
    char remote[64];
    struct api_kv *query;
    int nquery;
    struct api_kv params[API_MAX_PARAMS];
    int nparams;
    api_handler handler;                  /* of the matched route */
    void *handler_user;
    unsigned route_flags;                 /* of the matched route (API_ROUTE_*) */
    bool cors;                            /* answers carry the CORS headers */
    char *body_buf;                       /* the raw body (NUL-terminated once complete) */
    size_t body_len, content_length;
    uint64_t declared_length;             /* Content-Length as sent (content_length is capped) */
    json_t *json;

    api_abort_cb abort_cb;
    void *abort_arg;

    /* the answer */
    int status;
    char content_type[96];
    char *resp;
    size_t resp_len, resp_off;
    const char *allow;                    /* for 405 */
    struct api_kv extra[API_MAX_EXTRA_HEADERS];   /* api_add_header, in the arena */
    int nextra;
    bool headers_sent;
    const struct api_stream_ops *stream;  /* a streaming answer (api_reply_stream) */
    void *stream_arg;
    bool stream_direct;                   /* plain h1, lws has nothing buffered: we send() the body ourselves */
    bool stream_end;                      /* the owner ended the body (peek -1): close at the next writeable */
    bool stream_ready;                    /* on srv->ready: woken, to be flushed after this loop turn */
    struct api_request *ready_next;
    bool close_after;                     /* body not read, or refused: close after answering */
    bool head_only;                       /* HEAD: answer as GET, without the body */
    bool rx_paused;                       /* lws rx flow control off while PENDING */
    bool killing;                         /* peer seen gone; lws is closing the connection */

    struct api_request *prev, *next;      /* srv->requests */
};

struct api_ws_client;
struct api_rws_session;
struct api_rooms_ws;

/* lws per-session data for every connection of our protocol. */
struct api_session {
    struct api_request *req;
    struct api_ws_client *ws;
    struct api_rws_session *rws;          /* a room WebSocket (ws_rooms.c) */
    uint64_t ws_since;                    /* from ?since= at upgrade time */
    bool ws_has_since;
    bool ws_accepted;                     /* passed the upgrade filter */
    uint64_t drain_left;                  /* body bytes of a refused request still to drop */
    bool drain_answered;                  /* ... and its answer is out: close when drained */
};

struct api_stats_entry {
    api_stats_fn fn;
    void *arg;
};

struct api_metric_entry {
    char *labels;                         /* "method=\"REGISTER\"" or NULL */
    api_metric_fn fn;
    api_metric_collect_fn collect;
    void *arg;
};

struct api_metric_family_s {
    char *name, *help;
    enum api_metric_type type;
    struct api_metric_entry *entries;
    int nentries, cap;
};

/* arg of the webhook metric collectors: which counter of the stats */
struct api_wh_metric {
    struct api_server *srv;
    int which;             /* 0 delivered, 1 failed attempts, 2 dropped, 3 queued */
};

struct api_server {
    uv_loop_t *loop;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct lws_protocols protocols[2];
    /* Streaming bodies woken in this loop turn (api_stream_wake), flushed
     * together by one check handle after the poll phase. */
    struct api_request *ready;
    uv_check_t ready_check;
    bool ready_check_init;
    uint64_t stream_sends, stream_send_bytes, stream_full;   /* direct sends, bytes, socket-full stops */
    int port;
    char listen[160];
    char token[256];
    bool open_access;                     /* empty token */
    struct event_bus *bus;
    bool subscribed;

    struct api_route_entry *routes;
    int nroutes, routes_cap;
    struct api_stats_entry *stats;
    int nstats, stats_cap;
    struct api_metric_family_s *families;
    int nfamilies, families_cap;

    struct api_request *requests;         /* every live request, newest first */
    struct api_ws_client *ws_clients;
    int nws;
    struct api_rooms_ws *rooms_ws;        /* ws_rooms.c, once api_routes_rooms ran */
    struct api_tickets *tickets;          /* ws_events.c: ?ticket= for browsers' event streams */

    unsigned char *scratch;               /* LWS_PRE + payload, for lws_write */
    size_t scratch_cap;

    uint64_t requests_total;
    uint64_t responses_by_class[6];       /* index status/100 */
    uint64_t ws_dropped_slow;
    struct lws_token_limits token_limits; /* lws keeps a pointer: lives as long as the context */
    struct log_ratelimit refusal_rl;      /* api_log_refusal's one rate limit */
    struct api_wh_metric wh_metric[4];

    uv_timer_t sweep;                     /* liveness of peers with pending requests */
    bool sweep_running;
    int lws_depth;                        /* >0 inside our lws callback */
    bool closing;
    uv_timer_t teardown;                  /* polls lws's handles while it shuts down */
    int teardown_spins;
};

/* A route anyone may call, without the Bearer token (api_route_ex flags;
 * the console's static files). */
#define API_ROUTE_PUBLIC 0x100u

/* http.c */
void api_lws_logging(void);   /* routes lws's own log lines into ours (also used by wsclient.c) */
void api_wake(struct api_server *srv);
void api_peer(struct lws *wsi, char *buf, size_t cap);  /* peer address for logs */
unsigned char *api_scratch(struct api_server *srv, size_t payload);   /* NULL on OOM; payload at +LWS_PRE */
/* authorization: the header's bytes (len of them, NULs included); 1 when it
 * carries the configured token (or no token is configured), else 0. */
int api_check_bearer(const struct api_server *srv, const char *authorization, size_t len);
int api_request_authorized(const struct api_server *srv, struct lws *wsi);   /* api_check_bearer on wsi's header */
/* The request target (path and query) is API_MAX_URI bytes or longer: 414. */
bool api_target_too_long(struct lws *wsi);
/* log_warn for a refused request (say who sent it), rate-limited per server. */
void api_log_refusal(struct api_server *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void api_register_builtin_routes(struct api_server *srv);

/* stream.c */
int api_ws_filter(struct api_server *srv, struct lws *wsi, struct api_session *ss);
int api_ws_established(struct api_server *srv, struct lws *wsi, struct api_session *ss);
int api_ws_writeable(struct api_server *srv, struct lws *wsi, struct api_session *ss);
void api_ws_closed(struct api_server *srv, struct api_session *ss);
void api_ws_on_event(uint64_t seq, const char *json, size_t len, void *arg);
void api_stream_routes(struct api_server *srv);
void api_stream_free(struct api_server *srv);   /* the ticket table */

/* ws_rooms.c: the room WebSocket. The filter answers API_WS_NOT_MINE for
 * targets other than /api/v1/rooms/{room}/ws, else as api_ws_filter; the
 * rest are called for sessions whose rws is set. */
#define API_WS_NOT_MINE 2
int api_rooms_ws_filter(struct api_server *srv, struct lws *wsi, struct api_session *ss);
int api_rooms_ws_established(struct api_server *srv, struct lws *wsi, struct api_session *ss);
int api_rooms_ws_receive(struct api_server *srv, struct lws *wsi, struct api_session *ss, const void *in, size_t len);
int api_rooms_ws_writeable(struct api_server *srv, struct lws *wsi, struct api_session *ss);
void api_rooms_ws_closed(struct api_server *srv, struct api_session *ss);
void api_rooms_ws_free(struct api_server *srv);

/* console.c: the web console's static files */
void api_console_routes(struct api_server *srv);

/* metrics.c */
void api_metrics_free(struct api_server *srv);
/* The GET /api/v1/stats object (every provider's members); NULL on no memory. */
json_t *api_stats_object(struct api_server *srv);
/* Appends every number of the stats object that no registered family
 * covers, as families of its own (metrics_stats.c). */
void api_metrics_from_stats(struct api_server *srv, sbuf_t *out);
void api_metrics_routes(struct api_server *srv);

#endif
