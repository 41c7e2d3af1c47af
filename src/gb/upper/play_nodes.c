/* play_nodes.c — GB devices across cascade nodes (issue 16): the device's
 * registration written behind into Redis (device_mirror.h), and a play
 * request on any node reaching a device registered on another one.
 *
 * Entry node B (the API's), for a device not registered here:
 *   HGETALL <prefix>gbdev:{id} (device_mirror.h) -> the owning node A; A's
 *   advertised SIP URI from the node registry (registrar/cluster.h); then
 *   an ordinary stream (play.c) whose INVITE goes to A: Request-URI
 *   sip:<channel>@<A host:port>;gb-device=<device id>, Route
 *   <A's URI;lr;cascade-peer>, our SDP offer (B's media address). The
 *   viewers of B's stream read it from B, as any stream here.
 * Owning node A, for such an INVITE (the mark, from the address of a live
 * node): relays it to the device as the middle node of a cascade relays an
 * upstream's (gb/lower/lower_relay.c): B's SDP unchanged, so the device
 * sends RTP straight to B; the device's 200 answers B. Two dialogs, one per
 * side: a BYE on either side ends the other, a CANCEL from B cancels the
 * INVITE to the device, an INFO from B (playback control) goes on to it. A
 * alone holds the device's flow (its NATed UDP address, its TCP connection),
 * which is why the request goes through it.
 *
 * Loop protection: A relays only to a device registered on A; a marked
 * INVITE for anything else is answered 404, never sent on to a third node.
 * B asks Redis only for play requests of its own API, never for a request
 * from a peer. */
#include "gb/upper/upper_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "gb/upper/device_mirror.h"
#include "registrar/cluster.h"

/* ---- the device mirror ---- */

void gb_mirror_online(struct gb_upper *g, struct gb_device *d)
{
    if (!g->devmirror) return;
    char remote[TRANSPORT_ADDR_TEXT];
    gb_device_remote_text(d, remote, sizeof(remote));
    const struct gb_config *cfg = &g->cfg;
    struct gb_devmirror_state st = {
        .transport = sip_transport_param(d->proto),
        .remote = remote,
        .registered = d->registered_at,
        .keepalive = d->last_keepalive,
        .expires = d->expires_at,
        .keepalive_window_ms = (uint64_t)cfg->keepalive_interval * (uint64_t)cfg->keepalive_misses * 1000u,
    };
    gb_devmirror_online(g->devmirror, d->id, &st);
    d->mirrored_at = clock_wall_ms();
}

/* The device's channel keys (device_mirror.h, "Channels"): on every
 * registration and catalog change, so a middle node finds the device of a
 * channel an upstream asks for. TTL: a day, or twice the registration's. */
void gb_mirror_channels(struct gb_upper *g, struct gb_device *d)
{
    if (!g->devmirror || !d->channel_count) return;
    const char *stack[64];
    const char **ids = d->channel_count <= 64 ? stack : malloc(d->channel_count * sizeof(*ids));
    if (!ids) return;
    size_t n = 0;
    for (size_t i = 0; i < d->channel_count; i++)
        if (d->channels[i].id) ids[n++] = d->channels[i].id;
    uint64_t ttl = d->expires_s > 0 ? 2000u * (uint64_t)d->expires_s : 0;
    gb_devmirror_channels(g->devmirror, d->id, ids, n, ttl);
    if (ids != stack) free(ids);
}

void gb_mirror_keepalive(struct gb_upper *g, struct gb_device *d)
{
    if (g->devmirror && gb_devmirror_keepalive_due(g->devmirror, d->mirrored_at, d->last_keepalive))
        gb_mirror_online(g, d);
}

void gb_mirror_offline(struct gb_upper *g, struct gb_device *d)
{
    if (!g->devmirror) return;
    gb_devmirror_offline(g->devmirror, d->id);
    d->mirrored_at = 0;
}

/* ---- entry node: the device's node ---- */

enum gb_owner_verdict gb_owner_verdict(const struct gb_devmirror_record *rec, const char *self, bool known_here)
{
    bool ours = rec && !strcmp(rec->node, self);
    if ((!rec || ours) && known_here) return GB_OWNER_OFFLINE_HERE; /* offline here, online nowhere else */
    if (!rec || ours) return GB_OWNER_NOWHERE;                      /* or a stale record naming us */
    if (!rec->online) return GB_OWNER_OFFLINE;
    return GB_OWNER_GO;
}

int gb_owner_refusal(struct gb_upper *g, const char *device_id, const struct gb_devmirror_record *rec, json_t **err)
{
    switch (gb_owner_verdict(rec, gb_devmirror_node_id(g->devmirror), gb_device_find(g, device_id) != NULL)) {
    case GB_OWNER_OFFLINE_HERE:
        *err = gb_error_json("device-offline", "device %s is not online", device_id);
        return 409;
    case GB_OWNER_NOWHERE:
        *err = gb_error_json("not-found", "no GB device %s on any node", device_id);
        return 404;
    case GB_OWNER_OFFLINE:
        *err = gb_error_json("device-offline", "device %s is not online (node %s)", device_id, rec->node);
        return 409;
    case GB_OWNER_GO: break;
    }
    *err = NULL;
    return 0;
}

/* ---- a dead node's devices (node death, registrar/cluster.c) ---- */

static size_t streams_lost(struct gb_upper *g, const char *node, const char *device_id)
{
    size_t n = gb_streams_stop_via(g, node, device_id);
    if (n) {
        g->stats.remote_streams_node_lost += n;
        log_info("gb: node %s is dead: %zu stream(s)%s%s played through it stopped", node, n,
                 device_id ? " of device " : "", device_id ? device_id : "");
    }
    return n;
}

size_t gb_upper_node_lost_seen(struct gb_upper *g, const char *device_id)
{
    if (!g || g->stopping || !g->cluster || !device_id) return 0;
    size_t n = 0;
    for (;;) { /* one dead node at a time: stopping changes the list */
        char node[sizeof(g->streams->via_node)] = "";
        for (struct gb_stream *s = g->streams; s && !node[0]; s = s->next) {
            struct cluster_hit hit;
            if (s->remote && !strcmp(s->device_id, device_id) && cluster_node_hit(g->cluster, s->via_node, &hit) != 0)
                snprintf(node, sizeof(node), "%s", s->via_node);
        }
        size_t k = node[0] ? streams_lost(g, node, device_id) : 0;
        if (!k) return n;
        n += k;
    }
}

static int64_t reap_local_registered(void *arg, const char *id)
{
    struct gb_upper *g = arg;
    struct gb_device *d = g->stopping ? NULL : gb_device_find(g, id);
    return d && d->online ? d->registered_at : 0;
}

/* The survivor's script marked id offline: it was registered to the dead
 * node. Online here too (an older registration here, never ended): that
 * state was stale, it goes offline here with the event; else the event
 * alone (the record is all there was to update). */
static void reap_lost(void *arg, const char *id, const char *node)
{
    struct gb_upper *g = arg;
    /* The streams played here through the dead node (it relayed them; the
     * device's media keeps coming only until it notices, if ever). Their
     * gb.stream.stopped go to the stream as usual: the bus skips only the
     * next gb.device.offline (cluster.c publish_gb_lost). */
    if (!g->stopping) streams_lost(g, node, NULL);
    struct gb_device *d = g->stopping ? NULL : gb_device_find(g, id);
    if (d && d->online) { /* logged as any offline; the others in the reap's summary (cluster.c) */
        gb_device_node_lost(g, d, node);
        return;
    }
    json_t *f = json_pack("{s:s,s:s,s:s}", "device_id", id, "reason", "node-lost", "lost_node", node);
    gb_publish(g, "gb.device.offline", f);
}

/* Online here with a registration at or after the dead node's: ours; the
 * record is written again (ours may still be queued, or dropped). */
static void reap_kept(void *arg, const char *id)
{
    struct gb_upper *g = arg;
    struct gb_device *d = g->stopping ? NULL : gb_device_find(g, id);
    if (d && d->online) gb_mirror_online(g, d);
}

void gb_upper_gb_hooks(struct gb_upper *g, struct cluster_gb_hooks *out)
{
    memset(out, 0, sizeof(*out));
    if (!g || !g->devmirror) return;
    out->local_registered = reap_local_registered;
    out->lost = reap_lost;
    out->kept = reap_kept;
    out->arg = g;
}

/* ---- entry node: play a device registered elsewhere ---- */

struct gb_remote_play {
    struct gb_remote_play *next, *prev; /* g->remote_plays */
    struct gb_upper *g;
    struct gb_devmirror_lookup *h;      /* the Redis read in flight */
    struct gb_waiter *waiters;          /* the API request's (one; NULL: it went away) */
    char device_id[GB_ID_LEN + 1], channel[GB_ID_LEN + 1];
    bool tcp, dump, live;
    int64_t start, end;
};

static void remote_unlink(struct gb_remote_play *p)
{
    struct gb_upper *g = p->g;
    if (p->prev) p->prev->next = p->next;
    else g->remote_plays = p->next;
    if (p->next) p->next->prev = p->prev;
}

static void remote_fail(struct gb_remote_play *p, int status, json_t *body)
{
    p->g->stats.remote_play_failures++;
    gb_waiters_done(&p->waiters, status, body);
}

static void remote_on_record(void *arg, int status, const struct gb_devmirror_record *rec)
{
    struct gb_remote_play *p = arg;
    struct gb_upper *g = p->g;
    p->h = NULL;
    remote_unlink(p);
    if (!p->waiters) { /* the API request went away meanwhile */
        free(p);
        return;
    }
    if (status < 0) {
        log_warn_rl("gb play of %s/%s: the device's record could not be read from Redis (%s)", p->device_id,
                    p->channel, strerror(-status));
        remote_fail(p, 503, gb_error_json("redis-unavailable", "the device's node could not be looked up (%s)",
                                          strerror(-status)));
        free(p);
        return;
    }
    struct cluster_hit hit;
    int rc = 0;
    json_t *err = NULL;
    int refusal = gb_owner_refusal(g, p->device_id, rec, &err);
    if (refusal) {
        remote_fail(p, refusal, err);
    } else if ((rc = cluster_node_hit(g->cluster, rec->node, &hit)) != 0) {
        log_info("gb play of %s/%s: its node %s is %s: 503", p->device_id, p->channel, rec->node,
                 rc == -EHOSTDOWN ? "not heartbeating" : "unknown here");
        remote_fail(p, 503, gb_error_json("node-unavailable", "device %s is registered on node %s, which is %s",
                                          p->device_id, rec->node, rc == -EHOSTDOWN ? "down" : "unknown"));
    } else {
        struct gb_waiter *wt = p->waiters;
        gb_waiter_cancel(wt); /* out of our list: the stream takes it */
        struct gb_stream *shared = p->live ? gb_live_find_shared(g, p->device_id, p->channel) : NULL;
        if (shared && shared->state == GB_STREAM_PLAYING) {
            wt->done(wt, 200, gb_stream_json(shared));
        } else if (shared) {
            gb_waiter_add(&shared->waiter, wt); /* another request's INVITE is on its way */
        } else if ((rc = gb_stream_play_via(g, p->device_id, p->channel, p->tcp, p->dump, p->start, p->end,
                                            rec->node, hit.route, hit.hostport, wt)) != 0) {
            g->stats.remote_play_failures++;
            wt->done(wt, rc == -EINVAL ? 502 : 503,
                     gb_error_json(rc == -EINVAL ? "bad-node-address" : "play-failed",
                                   "the play through node %s could not start (%s)", rec->node, strerror(-rc)));
        } else {
            g->stats.remote_plays++;
            if (p->live) gb_live_share_newest(g, p->device_id, p->channel);
        }
    }
    free(p);
}

int gb_play_remote(struct gb_upper *g, const char *device_id, const char *channel, bool tcp, bool dump,
                   int64_t start, int64_t end, bool live, struct gb_waiter *wt)
{
    if (!g->devmirror || !g->cluster || !device_id || !gb_id_valid(str_from_cstr(device_id))) return -ENOENT;
    if (g->stopping) return -ESHUTDOWN;
    if (!channel || !gb_id_valid(str_from_cstr(channel))) return -EINVAL;
    if ((start > 0 || end > 0) && (start <= 0 || end <= start)) return -EINVAL;
    struct gb_remote_play *p = calloc(1, sizeof(*p));
    if (!p) return -ENOMEM;
    p->g = g;
    snprintf(p->device_id, sizeof(p->device_id), "%s", device_id);
    snprintf(p->channel, sizeof(p->channel), "%s", channel);
    p->tcp = tcp;
    p->dump = dump;
    p->live = live;
    p->start = start;
    p->end = end;
    int rc = gb_devmirror_lookup(g->devmirror, device_id, remote_on_record, p, &p->h);
    if (rc != 0) {
        free(p);
        g->stats.remote_play_failures++;
        log_warn_rl("gb play of %s/%s: no Redis lookup (%s)", device_id, channel, strerror(-rc));
        return rc == -ENOBUFS ? -EBUSY : rc == -EINVAL ? -EINVAL : -EAGAIN;
    }
    p->next = g->remote_plays;
    if (g->remote_plays) g->remote_plays->prev = p;
    g->remote_plays = p;
    gb_waiter_add(&p->waiters, wt);
    return 0;
}

void gb_play_remote_failed(struct gb_stream *s, int status)
{
    int code = 502;
    const char *err = "device-refused";
    switch (status) {
    case 404: code = 404, err = "not-found"; break;         /* no longer registered on that node */
    case 480: code = 409, err = "device-offline"; break;
    case 408: code = 504, err = "timeout"; break;           /* the node or the device did not answer */
    case 403:                                               /* that node does not take us for a peer */
    case 503: code = 503, err = "node-unavailable"; break;
    default: break;
    }
    s->g->stats.remote_play_failures++;
    gb_waiters_done(&s->waiter, code,
                    gb_error_json(err, "the INVITE to %s/%s through its node was answered %d", s->device_id,
                                  s->channel_id, status));
}

/* ---- owning node: INVITEs from peers relayed to our devices ---- */

struct gb_peer_relay {
    struct gb_peer_relay *next, *prev; /* g->peer_relays */
    struct gb_upper *g;
    struct txn *st;                    /* the peer's INVITE until answered */
    struct ua_uac *h;                  /* our INVITE to the device, until its final */
    struct ua_dialog *peer_dlg, *dev_dlg;
    char device_id[GB_ID_LEN + 1], channel_id[GB_ID_LEN + 1];
    char peer[TRANSPORT_ADDR_TEXT];
};

static void peer_respond(struct gb_upper *g, struct txn *st, int status)
{
    char tag[UA_TAG_SIZE];
    ua_new_tag(g->ua, tag);
    const struct sip_msg *req = txn_request(st);
    str_t to_tag = req && req->to.tag.len ? STR_NULL : str_from_cstr(tag);
    int rc = txn_respond(st, status, NULL, to_tag, NULL, 0, STR_NULL, STR_NULL);
    if (rc < 0) log_debug("gb peer relay: %d not sent: %s", status, strerror(-rc));
}

static void relay_free(struct gb_peer_relay *r)
{
    struct gb_upper *g = r->g;
    if (r->prev) r->prev->next = r->next;
    else g->peer_relays = r->next;
    if (r->next) r->next->prev = r->prev;
    free(r);
}

static void peer_dlg_end(void *arg, struct ua_dialog *d, enum ua_dialog_end why)
{
    (void)d;
    struct gb_peer_relay *r = arg;
    r->peer_dlg = NULL;
    if (r->dev_dlg) ua_dialog_bye(r->dev_dlg);
    r->dev_dlg = NULL;
    log_info("gb peer relay: stream of %s (device %s) for node %s ended: %s", r->channel_id, r->device_id, r->peer,
             why == UA_END_BYE_RECEIVED ? "BYE from the node" : ua_dialog_end_name(why));
    relay_free(r);
}

static void dev_dlg_end(void *arg, struct ua_dialog *d, enum ua_dialog_end why)
{
    (void)d, (void)why;
    struct gb_peer_relay *r = arg;
    r->dev_dlg = NULL;
    if (r->peer_dlg) ua_dialog_bye(r->peer_dlg);
    r->peer_dlg = NULL;
    log_info("gb peer relay: stream of %s (device %s) for node %s ended by the device", r->channel_id, r->device_id,
             r->peer);
    relay_free(r);
}

/* INFO from the entry node (a playback's MANSRTSP control, Annex B) goes on
 * to the device in its dialog; the device's final answers the peer. The
 * peer's transaction lives until answered and the device's INFO always
 * ends (a final or 408), so the context needs nothing from the relay. */
static void info_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                       const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)resp, (void)rx, (void)dlg;
    struct txn *st = arg;
    int rc = txn_respond(st, status >= 200 && status < 700 ? status : 500, NULL, STR_NULL, NULL, 0, STR_NULL,
                         STR_NULL);
    if (rc < 0) log_debug("gb peer relay: INFO answer not sent: %s", strerror(-rc));
}

static const struct ua_uac_cb info_cb = {.on_final = info_final};

static void peer_dlg_request(void *arg, struct ua_dialog *d, struct txn *st, const struct transport_rx *rx)
{
    (void)d;
    struct gb_peer_relay *r = arg;
    const struct sip_msg *m = rx->msg;
    int status = m->method == SIP_INVITE || m->method == SIP_UPDATE ? 488 : 200;
    if (m->method == SIP_INFO) {
        if (r->dev_dlg && ua_dialog_request(r->dev_dlg, SIP_INFO, NULL, 0, m->content_type, m->body, &info_cb, st))
            return;
        status = r->dev_dlg ? 500 : 481;
    }
    int rc = txn_respond(st, status, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
    if (rc < 0) log_debug("gb peer relay: %d not sent: %s", status, strerror(-rc));
}

static const struct ua_dialog_cb peer_dlg_cb = {.on_request = peer_dlg_request, .on_end = peer_dlg_end};
static const struct ua_dialog_cb dev_dlg_cb = {.on_end = dev_dlg_end};

static void relay_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                        const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)h, (void)rx;
    struct gb_peer_relay *r = arg;
    struct gb_upper *g = r->g;
    struct txn *st = r->st;
    r->h = NULL;
    r->st = NULL;
    if (status >= 200 && status < 300 && dlg) {
        r->dev_dlg = dlg;
        ua_dialog_set_cb(dlg, &dev_dlg_cb, r);
        str_t body = resp ? resp->body : STR_NULL;
        r->peer_dlg = ua_answer_invite(g->ua, st, 200, STR_NULL, NULL, 0,
                                       body.len ? STR_LIT("application/sdp") : STR_NULL, body, &peer_dlg_cb, r);
        if (!r->peer_dlg) {
            log_warn("gb peer relay: the device's 200 for %s could not go to node %s; BYE to the device",
                     r->channel_id, r->peer);
            peer_respond(g, st, 500);
            ua_dialog_bye(r->dev_dlg);
            r->dev_dlg = NULL;
            relay_free(r);
            return;
        }
        log_info("gb peer relay: device %s answered for %s; its stream goes to node %s", r->device_id,
                 r->channel_id, r->peer);
        return;
    }
    log_info("gb peer relay: device %s answered %d for %s (node %s)", r->device_id, status, r->channel_id, r->peer);
    peer_respond(g, st, status >= 300 && status < 700 ? status : 500);
    relay_free(r);
}

static const struct ua_uac_cb relay_cb = {.on_final = relay_final};

/* Our Route entry (the first) carries the peer mark. */
static bool peer_marked(const struct sip_msg *m)
{
    const struct sip_header *h = sip_msg_header(m, SIP_HDR_ROUTE);
    return h && memmem(h->value.s, h->value.len, ";" CLUSTER_PEER_PARAM, sizeof(CLUSTER_PEER_PARAM)) != NULL;
}

static int peer_cancel(struct gb_upper *g, struct txn *st, const struct transport_rx *rx)
{
    struct txn *inv = g->txn && g->peer_relays ? txn_find_invite_for_cancel(g->txn, rx) : NULL;
    if (!inv) return 0;
    for (struct gb_peer_relay *r = g->peer_relays; r; r = r->next) {
        if (r->st != inv) continue;
        log_info("gb peer relay: INVITE for %s cancelled by node %s", r->channel_id, r->peer);
        if (r->h) ua_request_cancel(r->h); /* a 2xx that still comes is ACKed and BYEd by the UA */
        r->h = NULL;
        r->st = NULL;
        peer_respond(g, st, 200);
        peer_respond(g, inv, 487);
        relay_free(r);
        return 1;
    }
    return 0;
}

/* A middle node's DeviceControl for one of our devices (an upstream's, the
 * middle node being another node of ours, gb/lower/lower_relay.c): a
 * MANSCDP Control whose DeviceID is the Request-URI's user, re-encoded in
 * the device's charset and sent on as the local relay does. Answered 200
 * once sent (a control has no Response, GB/T 28181 §A.2.3.1.2); 400 when
 * the body is not such a control, 404 / 480 as for an INVITE. */
static void peer_control(struct gb_upper *g, struct txn *st, const struct transport_rx *rx, struct gb_device *d)
{
    const struct sip_msg *m = rx->msg;
    gb_manscdp_t msg;
    int rc = gb_manscdp_parse(m->body.s, m->body.len, NULL, &msg);
    if (rc < 0 || msg.cmd != GB_CMD_DEVICE_CONTROL || msg.kind != GB_MSG_CONTROL || !msg.device_id ||
        !str_eq_cstr(m->ruri.user, msg.device_id)) {
        log_info("gb peer relay: MESSAGE from node %s for %.*s is not a DeviceControl of that id: 400", rx->src_text,
                 STR_FMT(m->ruri.user));
        gb_manscdp_free(&msg);
        peer_respond(g, st, 400);
        return;
    }
    sbuf_t body;
    sbuf_init(&body);
    struct ua_uac *h = NULL;
    if (gb_manscdp_build(&body, d->charset, &msg) == 0) {
        struct ua_request r;
        memset(&r, 0, sizeof(r));
        r.method = SIP_MESSAGE;
        r.content_type = STR_LIT("Application/MANSCDP+xml");
        r.body = sbuf_str(&body);
        h = gb_device_send(g, d, d->id, &r, NULL, NULL);
    }
    sbuf_free(&body);
    log_info("gb peer relay: DeviceControl from node %s for %s %s device %s", rx->src_text, msg.device_id,
             h ? "relayed to" : "could not be sent to", d->id);
    gb_manscdp_free(&msg);
    peer_respond(g, st, h ? 200 : 500);
}

int gb_peer_on_request(struct gb_upper *g, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    if (m->method == SIP_CANCEL) return peer_cancel(g, st, rx);
    str_t dev;
    if ((m->method != SIP_INVITE && m->method != SIP_MESSAGE) ||
        !sip_param_get(m->ruri.params, GB_PEER_DEVICE_PARAM, &dev))
        return 0;
    if (!peer_marked(m) || !cluster_is_node_addr(g->cluster, (const struct sockaddr *)&rx->src)) {
        g->stats.peer_refused++;
        gb_log_refusal(g, "gb peer relay: %.*s naming a device from %s, not a live node's marked request: 403",
                       STR_FMT(m->method_name), rx->src_text);
        peer_respond(g, st, 403);
        return 1;
    }
    struct gb_device *d = gb_device_find_str(g, dev);
    char chan[GB_ID_LEN + 1];
    str_copy(chan, sizeof(chan), m->ruri.user);
    if (!d || !gb_id_valid(m->ruri.user)) {
        /* Never on to a third node: a peer sends here only what Redis says is ours. */
        g->stats.peer_refused++;
        log_info("gb peer relay: node %s asked for %.*s of device %.*s, not registered here: 404", rx->src_text,
                 STR_FMT(m->ruri.user), STR_FMT(dev));
        peer_respond(g, st, 404);
        return 1;
    }
    if (!d->online) {
        g->stats.peer_refused++;
        peer_respond(g, st, 480);
        return 1;
    }
    if (m->method == SIP_MESSAGE) {
        peer_control(g, st, rx, d);
        return 1;
    }
    struct gb_peer_relay *r = calloc(1, sizeof(*r));
    if (!r) {
        peer_respond(g, st, 500);
        return 1;
    }
    r->g = g;
    r->st = st;
    snprintf(r->device_id, sizeof(r->device_id), "%s", d->id);
    snprintf(r->channel_id, sizeof(r->channel_id), "%s", chan);
    snprintf(r->peer, sizeof(r->peer), "%s", rx->src_text);
    struct ua_request req;
    memset(&req, 0, sizeof(req));
    req.method = SIP_INVITE;
    req.auto_contact = true;
    req.contact_user = str_from_cstr(g->cfg.id);
    /* Subject (§9.2.2.1) as the entry node wrote it: the SSRC is its. */
    char subject[160];
    const struct sip_header *sh = sip_msg_header(m, SIP_HDR_SUBJECT);
    if (sh && sh->value.len < 120) snprintf(subject, sizeof(subject), "Subject: %.*s", STR_FMT(sh->value));
    else snprintf(subject, sizeof(subject), "Subject: %s:0,%s:0", chan, g->cfg.id);
    str_t hdr = str_from_cstr(subject);
    req.headers = &hdr;
    req.header_count = 1;
    req.content_type = m->body.len ? STR_LIT("application/sdp") : STR_NULL;
    req.body = m->body;
    req.pin_dest = true; /* ACK and BYE where the device registered from */
    r->next = g->peer_relays;
    if (g->peer_relays) g->peer_relays->prev = r;
    g->peer_relays = r;
    r->h = gb_device_send(g, d, chan, &req, &relay_cb, r);
    if (!r->h) {
        peer_respond(g, st, 500);
        relay_free(r);
        return 1;
    }
    g->stats.peer_relays++;
    log_info("gb peer relay: INVITE from node %s for %s relayed to device %s", r->peer, chan, d->id);
    return 1;
}

/* ---- a middle node: the node of a channel an upstream asked for ---- */

struct gb_locate {
    struct gb_locate *next, *prev;     /* g->locates */
    struct gb_upper *g;
    struct gb_devmirror_lookup *h;     /* the Redis read in flight */
    gb_locate_cb cb;
    void *arg;
    char id[GB_ID_LEN + 1];            /* as asked */
    char device[GB_ID_LEN + 1];        /* its device, once read */
};

static void locate_unlink(struct gb_locate *lc)
{
    struct gb_upper *g = lc->g;
    if (lc->prev) lc->prev->next = lc->next;
    else g->locates = lc->next;
    if (lc->next) lc->next->prev = lc->prev;
}

static void locate_done(struct gb_locate *lc, int status, const struct gb_node_target *t)
{
    locate_unlink(lc);
    lc->cb(lc->arg, status, t);
    free(lc);
}

static void locate_on_record(void *arg, int status, const struct gb_devmirror_record *rec)
{
    struct gb_locate *lc = arg;
    struct gb_upper *g = lc->g;
    lc->h = NULL;
    if (status < 0) {
        log_warn_rl("gb relay of %s: the record of device %s could not be read from Redis (%s): 503", lc->id,
                    lc->device, strerror(-status));
        locate_done(lc, 503, NULL);
        return;
    }
    struct gb_device *d = gb_device_find(g, lc->device);
    if (d && d->online) { /* online here after all: the caller relays it itself */
        struct gb_node_target t = {.device_id = lc->device, .node = gb_devmirror_node_id(g->devmirror), .local = true};
        locate_done(lc, 0, &t);
        return;
    }
    struct cluster_hit hit;
    int rc;
    switch (gb_owner_verdict(rec, gb_devmirror_node_id(g->devmirror), d != NULL)) {
    case GB_OWNER_NOWHERE:
        log_info("gb relay of %s: device %s is registered on no node: 404", lc->id, lc->device);
        locate_done(lc, 404, NULL);
        return;
    case GB_OWNER_OFFLINE_HERE:
    case GB_OWNER_OFFLINE:
        log_info("gb relay of %s: device %s is offline (node %s): 480", lc->id, lc->device, rec ? rec->node : "-");
        locate_done(lc, 480, NULL);
        return;
    case GB_OWNER_GO: break;
    }
    if ((rc = cluster_node_hit(g->cluster, rec->node, &hit)) != 0) {
        log_info("gb relay of %s: device %s is on node %s, which is %s: 503", lc->id, lc->device, rec->node,
                 rc == -EHOSTDOWN ? "not heartbeating" : "unknown here");
        locate_done(lc, 503, NULL);
        return;
    }
    struct gb_node_target t = {.device_id = lc->device, .node = rec->node, .route = hit.route,
                               .hostport = hit.hostport};
    locate_done(lc, 0, &t);
}

static void locate_on_channel(void *arg, int status, const char *device)
{
    struct gb_locate *lc = arg;
    lc->h = NULL;
    if (status < 0) {
        log_warn_rl("gb relay of %s: its device could not be read from Redis (%s): 503", lc->id, strerror(-status));
        locate_done(lc, 503, NULL);
        return;
    }
    /* No channel key: the id may be a device's own (an upstream that
     * INVITEs a camera by its device id). */
    snprintf(lc->device, sizeof(lc->device), "%s", device ? device : lc->id);
    int rc = lc->g->devmirror ? gb_devmirror_lookup(lc->g->devmirror, lc->device, locate_on_record, lc, &lc->h)
                              : -ESHUTDOWN;
    if (rc != 0) {
        log_warn_rl("gb relay of %s: no Redis lookup of device %s (%s): 503", lc->id, lc->device, strerror(-rc));
        locate_done(lc, 503, NULL);
    }
}

int gb_upper_locate(struct gb_upper *g, const char *id, gb_locate_cb cb, void *arg, struct gb_locate **h)
{
    if (!g->devmirror || !g->cluster) return -ENOENT;
    if (g->stopping) return -ESHUTDOWN;
    if (!id || !gb_id_valid(str_from_cstr(id))) return -EINVAL;
    struct gb_locate *lc = calloc(1, sizeof(*lc));
    if (!lc) return -ENOMEM;
    lc->g = g;
    lc->cb = cb;
    lc->arg = arg;
    snprintf(lc->id, sizeof(lc->id), "%s", id);
    int rc = gb_devmirror_channel_lookup(g->devmirror, id, locate_on_channel, lc, &lc->h);
    if (rc != 0) {
        free(lc);
        return rc == -ENOBUFS ? -EBUSY : rc == -EINVAL ? -EINVAL : -EAGAIN;
    }
    lc->next = g->locates;
    if (g->locates) g->locates->prev = lc;
    g->locates = lc;
    *h = lc;
    return 0;
}

void gb_upper_locate_cancel(struct gb_upper *g, struct gb_locate *h)
{
    (void)g;
    if (!h) return;
    gb_devmirror_lookup_cancel(h->h);
    locate_unlink(h);
    free(h);
}

struct ua_uac *gb_upper_send_via(struct gb_upper *g, const struct gb_node_target *t, const char *target_id,
                                 struct ua_request *r, const struct ua_uac_cb *cb, void *arg)
{
    if (!t || t->local || !t->route || !t->hostport || !gb_id_valid(str_from_cstr(t->device_id)) ||
        !gb_id_valid(str_from_cstr(target_id)))
        return NULL;
    size_t rl = strlen(t->route);
    struct transport_dest dest;
    if (rl < 3 || t->route[0] != '<' || t->route[rl - 1] != '>' ||
        ua_dest_from_uri(str_make(t->route + 1, rl - 2), &dest) != 0)
        return NULL;
    char ruri[400], from[96], to[96];
    snprintf(ruri, sizeof(ruri), "sip:%s@%s;%s=%s", target_id, t->hostport, GB_PEER_DEVICE_PARAM, t->device_id);
    snprintf(from, sizeof(from), "<sip:%s@%s>", g->cfg.id, g->cfg.domain);
    snprintf(to, sizeof(to), "<sip:%s@%.10s>", target_id, target_id);
    str_t routes[] = {str_from_cstr(t->route)};
    r->ruri = str_from_cstr(ruri);
    r->from = str_from_cstr(from);
    r->to = str_from_cstr(to);
    r->routes = routes;
    r->route_count = 1;
    struct ua_uac *h = ua_request_send(g->ua, r, &dest, NULL, cb, arg);
    r->routes = NULL; /* the addressing was only valid during the call */
    r->route_count = 0;
    return h;
}

/* ---- stop ---- */

static void relay_end(struct gb_upper *g, struct gb_peer_relay *r, int status)
{
    if (r->h) ua_request_cancel(r->h); /* a 2xx that still comes is ACKed and BYEd by the UA */
    if (r->st) peer_respond(g, r->st, status);
    if (r->dev_dlg) {
        ua_dialog_set_cb(r->dev_dlg, NULL, NULL);
        ua_dialog_bye(r->dev_dlg);
    }
    if (r->peer_dlg) {
        ua_dialog_set_cb(r->peer_dlg, NULL, NULL);
        ua_dialog_bye(r->peer_dlg);
    }
    relay_free(r);
}

void gb_peer_relays_stop_device(struct gb_upper *g, const char *device_id)
{
    for (struct gb_peer_relay *r = g->peer_relays, *next; r; r = next) {
        next = r->next;
        if (strcmp(r->device_id, device_id)) continue;
        log_info("gb peer relay: device %s offline; its stream of %s for node %s ends", device_id, r->channel_id,
                 r->peer);
        relay_end(g, r, 480);
    }
}

void gb_nodes_stop(struct gb_upper *g)
{
    gb_forwards_stop(g);
    /* The app frees the mirror and the registry after this (their
     * connections would keep the loop running): forget them now. */
    g->devmirror = NULL;
    g->cluster = NULL;
    while (g->remote_plays) {
        struct gb_remote_play *p = g->remote_plays;
        remote_unlink(p);
        gb_devmirror_lookup_cancel(p->h);
        gb_waiters_done(&p->waiters, 503, gb_error_json("shutting-down", "the daemon is stopping"));
        free(p);
    }
    while (g->peer_relays) relay_end(g, g->peer_relays, 503);
    while (g->locates) {
        struct gb_locate *lc = g->locates;
        gb_devmirror_lookup_cancel(lc->h);
        locate_done(lc, 503, NULL);
    }
}
