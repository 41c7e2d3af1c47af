/* wsclient.c — blocking WebSocket client for the event stream (see
 * wsclient.h). One private lws context per call, serviced with lws's own poll
 * loop; a 200 ms scheduler tick makes lws_service() return regularly so that
 * the stop flag is honoured. */
#include "api/wsclient.h"

#include <libwebsockets.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http_internal.h"
#include "base/sbuf.h"

#define WS_MAX_MESSAGE (16u * 1024 * 1024)
#define WS_TICK_US (200 * LWS_US_PER_MS)

struct ws_state {
    lws_sorted_usec_list_t tick;          /* first: the tick callback finds us from it */
    struct lws_context *ctx;
    const char *token;
    api_ws_message_cb cb;
    void *arg;
    sbuf_t msg;
    bool established, done, closed, stop_asked;
    char *err;
    size_t errcap;
};

static void seterr(struct ws_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(struct ws_state *st, const char *fmt, ...)
{
    if (!st->err || !st->errcap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, st->errcap, fmt, ap);
    va_end(ap);
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    struct ws_state *st = (struct ws_state *)sul;   /* tick is the first member */
    lws_sul_schedule(st->ctx, 0, &st->tick, tick_cb, WS_TICK_US);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    struct ws_state *st = ctx ? lws_context_user(ctx) : NULL;
    if (!st) return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (st->token && *st->token) {
            unsigned char **p = (unsigned char **)in, *end = *p + len;
            char h[600];
            int n = snprintf(h, sizeof(h), "Bearer %s", st->token);
            if (n < 0 || n >= (int)sizeof(h) ||
                lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)h, n, p, end))
                return -1;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        st->established = true;
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        seterr(st, "%s", in ? (const char *)in : "connection failed");
        st->done = true;
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (lws_frame_is_binary(wsi)) return 0;
        if (st->msg.len + len > WS_MAX_MESSAGE) {
            seterr(st, "message larger than %u bytes", WS_MAX_MESSAGE);
            st->done = st->closed = true;
            return -1;
        }
        sbuf_append(&st->msg, in, len);
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
        if (st->msg.failed) {
            seterr(st, "out of memory");
            st->done = st->closed = true;
            return -1;
        }
        if (st->cb(st->msg.data ? st->msg.data : "", st->msg.len, st->arg)) {
            st->stop_asked = true;
            st->done = true;
            sbuf_clear(&st->msg);
            return -1;
        }
        sbuf_clear(&st->msg);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!st->done) st->closed = true;
        st->done = true;
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

int api_ws_stream(const struct api_url *url, const char *target, const char *token, api_ws_message_cb cb,
                  void *arg, volatile sig_atomic_t *stop, char *err, size_t errcap)
{
    struct ws_state st;
    memset(&st, 0, sizeof(st));
    st.token = token;
    st.cb = cb;
    st.arg = arg;
    st.err = err;
    st.errcap = errcap;
    if (err && errcap) err[0] = '\0';
    sbuf_init(&st.msg);

    api_lws_logging();
    static const struct lws_protocols protocols[] = {
        {"cascade-events", ws_callback, 0, 65536, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    struct lws_context_creation_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.port = CONTEXT_PORT_NO_LISTEN;
    ci.protocols = protocols;
    ci.user = &st;
    ci.connect_timeout_secs = 10;
    st.ctx = lws_create_context(&ci);
    if (!st.ctx) {
        seterr(&st, "cannot create the websocket client");
        sbuf_free(&st.msg);
        return API_WS_FAILED;
    }
    lws_sul_schedule(st.ctx, 0, &st.tick, tick_cb, WS_TICK_US);

    struct lws_client_connect_info cc;
    memset(&cc, 0, sizeof(cc));
    cc.context = st.ctx;
    cc.address = url->host;
    cc.port = atoi(url->port);
    cc.path = target;
    cc.host = url->host;
    cc.origin = url->host;
    cc.ietf_version_or_minus_one = -1;
    cc.local_protocol_name = "cascade-events";
    int rc;
    if (!lws_client_connect_via_info(&cc)) {
        if (!(err && err[0])) seterr(&st, "cannot connect to %s:%s", url->host, url->port);
        rc = API_WS_FAILED;
    } else {
        while (!st.done && !(stop && *stop))
            if (lws_service(st.ctx, 0) < 0) break;
        if (st.stop_asked || (stop && *stop)) rc = API_WS_STOPPED;
        else if (st.established) rc = API_WS_CLOSED;
        else {
            if (!(err && err[0])) seterr(&st, "connection failed");
            rc = API_WS_FAILED;
        }
    }
    lws_sul_cancel(&st.tick);
    lws_context_destroy(st.ctx);
    sbuf_free(&st.msg);
    return rc;
}
