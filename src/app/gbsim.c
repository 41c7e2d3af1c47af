/* gbsim.c — cascade-gbsim: simulates GB/T 28181 devices (cameras) against an
 * upper platform, for tests and the scale benchmark. Built on cascade's own
 * stack (transport, transactions, UA with digest retry, MANSCDP, PS/RTP), so
 * it also exercises that stack.
 *
 *   cascade-gbsim --target 127.0.0.1:5060 --devices 10000 --channels 2 --rate 2000
 *
 * N devices with ids counted up from --base-id, each with M channels
 * (type 131, numbered (serial-1)*M + channel + 1 under the same domain, the
 * serial being the device id's last 7 digits), register
 * with digest, refresh at 2/3 of the granted Expires, keep alive every
 * --keepalive seconds, and answer Query Catalog / DeviceInfo / DeviceStatus /
 * RecordInfo, DeviceControl and INVITE (streaming the clip as PS over RTP).
 * They also take the upper's subscriptions (GB/T 28181 §9.11 Catalog, §9.4
 * Alarm, §9.12 MobilePosition: 200, refreshes, Expires 0) and notify within
 * them: a position every Interval seconds, an alarm every --alarm-every
 * seconds, one new channel (catalog ADD) --catalog-add-after seconds after a
 * catalog subscription. A DeviceControl ResetAlarm is logged at info.
 * --subscribe-log FILE appends each SUBSCRIBE received as one JSON line
 * ({"device","kind":"new|refresh|end","event","call_id","expires","status",
 * "cseq"}), for tests to assert on what the upper sent.
 *
 * Scale: the devices are split over --threads threads, each with its own
 * libuv loop, its own stack and its own UDP sockets (--sockets per thread),
 * so the simulator is not the bottleneck of the server it measures. Within a
 * thread, requests from the upper are routed to a device by the Request-URI
 * user, so a device costs one small struct (timer-wheel node, pending
 * request, CSeq, state) and no socket. Call-ID and From tag are derived from
 * a per-run random and the device index, not stored. Over TCP each device
 * has its own connection. Device timers sit in a timer wheel (gbsim_wheel.c),
 * not in the stack's heap.
 *
 * Like a real camera, a device whose REGISTER fails retries with exponential
 * backoff and jitter (2 s doubling to 60 s), and after a 503 with
 * Retry-After (RFC 3261 §21.5.4) waits what the server asked, plus up to a
 * second of jitter.
 *
 * Prints every second (all threads summed): registered devices, REGISTERs
 * sent/ok/failed/503, keepalives sent/ok/timed out/failed, the simulator's
 * own timer lag (how late its device timers fire: when high, the simulator
 * is the bottleneck) and the server's response latency p50/p99 (first send
 * to final answer). A final summary (text, and JSON with --json). Runs for
 * --duration seconds or until SIGINT/SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libxml/parser.h>
#include <malloc.h>
#include <uv.h>

#include "app/gbsim_int.h"
#include "app/worker.h"
#include "base/clock.h"
#include "base/log.h"
#include "gb/codec/gbid.h"
#include "gb/codec/manscdp.h"
#include "gb/codec/mansrtsp.h"
#include "media/media_sender.h"
#include "gb/codec/ptz.h"
#include "txn/txn.h"
#include "ua/ua.h"

#define SIM_MAX_SOCKETS 64
#define SIM_MAX_CHANNELS 10000
#define SIM_RETRY_MIN_MS 2000
#define SIM_RETRY_MAX_MS 60000
#define SIM_MAX_STREAMS 10000
#define SIM_MAX_THREADS 64
#define SIM_WHEEL_SLOTS 8192       /* x 10 ms: 82 s, longer than a keepalive interval */
#define SIM_WHEEL_TICK_MS 10
#define SIM_WHEEL_BUDGET 2000      /* timers fired per wheel run (every tick): 200 000/s, then the sockets */
#define SIM_PUBLISH_MS 250         /* threads hand their counts to the reporter */
#define SIM_MAX_SUBS 256           /* subscriptions from the upper held per thread */

enum dev_state { DEV_IDLE = 0, DEV_REGISTERING, DEV_REGISTERED, DEV_FAILED, DEV_UNREGISTERING, DEV_DONE };
enum pending_kind { PEND_NONE = 0, PEND_REGISTER, PEND_KEEPALIVE };

struct sim;

/* One simulated device: kept small (the benchmark holds 1 000 000 of them). */
struct sim_dev {
    struct gbsim_wheel_node timer; /* next action: register, retry, keepalive, refresh */
    struct sim *sim;
    struct ua_uac *pending;        /* the REGISTER or keepalive in flight */
    uint32_t cseq;
    uint32_t refresh_at_s;         /* sim clock seconds: REGISTER refresh due */
    uint32_t sent_ms;              /* sim clock ms: the pending request was sent */
    uint8_t state, pend, misses, failures;
    uint8_t ever_registered;
};

struct sim_stream {
    struct sim_stream *next, *prev;
    struct sim *sim;
    uint32_t dev;
    char channel_id[GB_ID_LEN + 1];
    struct ua_dialog *dlg;
    struct gb_media_sender *sender;
    bool playback, ended;   /* ended: the range was sent, MediaStatus went up, the upper's BYE is due */
};

/* A subscription the upper holds with one of our devices. */
enum sim_sub_kind { SUB_CATALOG = 0, SUB_ALARM, SUB_POSITION };
struct sim_sub {
    bool used, catalog_added;
    uint8_t kind;
    uint32_t dev;
    char call_id[128];
    char local_tag[UA_TAG_SIZE];   /* ours: the To tag of our 200 */
    char remote_tag[64];           /* the upper's From tag */
    char event[32];                /* its Event header, echoed in our NOTIFYs */
    char contact[160];             /* where NOTIFYs go (its Contact URI) */
    uint32_t cseq, interval_s, notifies;
    uint64_t expires_at, next_position, next_alarm, catalog_at; /* sim clock ms */
};

struct sim_opts {
    char target_host[64];
    uint16_t target_port;
    char target_id[GB_ID_LEN + 1];
    char target_domain[64];
    enum sip_transport proto;
    char local_ip[64];
    uint16_t local_port;
    int sockets;
    uint32_t devices, channels;
    char base_id[GB_ID_LEN + 1];
    char password[128];
    int expires, keepalive, keepalive_misses;
    double rate;
    uint32_t jitter_ms;
    uint32_t duration_s;
    bool unregister, quiet;
    gb_charset_t charset;
    int catalog_items;
    char media[512];
    int audio; /* enum gb_media_audio: the tone sent beside the video (PCMA) */
    char json_path[512];
    char sub_log[512];             /* --subscribe-log: one JSON line per SUBSCRIBE received ("" none) */
    int threads;
    uint32_t alarm_every_s;        /* 0: no alarms */
    uint32_t catalog_add_after_s;  /* 0: no catalog change */
};

struct sim_counts {
    uint64_t reg_sent, reg_ok, reg_fail, ka_sent, ka_ok, ka_fail, ka_refused, lost, queries, invites, controls;
    uint64_t streams_started, streams_stopped, rtp_packets;
    uint64_t reg_503, reg_retry_after, ka_timeout;
    uint64_t playbacks, rtsp_play, rtsp_pause, rtsp_scale, rtsp_seek, rtsp_bad, media_status;
    uint64_t subscribes, notifies, alarm_resets;
};

/* What a device thread hands to the reporter (under mu). */
struct sim_shared {
    uv_mutex_t mu;
    struct sim_counts c;
    uint32_t registered, max_registered, stream_count, txns;
    uint64_t all_registered_ms;    /* uv_hrtime ms, 0 until every device of the thread registered */
    struct gbsim_hist rtt, lag;    /* since the reporter last took them */
    bool done, failed;
    bool no_wake;                  /* the thread closed its wake-up handle */
};

struct sim {
    struct sim_opts o;
    int thread_index;
    uint32_t index_base;           /* global index of this thread's device 0 */
    struct sim_shared *sh;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;               /* the reporter asks to stop */
    struct gbsim_wheel wheel;
    uv_timer_t wheel_timer;
    struct gbsim_hist rtt, lag;    /* since the last publish */
    struct worker w;               /* the stack's context: loop, timers, transport, txn, config */
    struct ua *ua;
    uv_timer_t timer_handle, tick;
    uv_prepare_t prepare;
    uint32_t listeners[SIM_MAX_SOCKETS];
    int nlisteners;
    struct transport_dest target;
    char prefix[14];               /* domain (10) + device type (3) of the base id */
    uint32_t base_num;             /* last 7 digits of the base id */
    char domain[GB_DOMAIN_LEN + 1];
    uint64_t run_id;               /* per-run random for Call-IDs and tags */
    uint64_t rng;
    struct sim_dev *devs;
    uint64_t *conns;               /* TCP: each device's connection (0 none) */
    uint64_t *conn_index;          /* TCP: open addressing conn_id -> device+1 */
    uint32_t conn_index_mask;
    uint32_t registered, max_registered;
    uint64_t start_ms, all_registered_ms, stop_at_ms;
    uint32_t sn;
    struct sim_counts c;
    struct sim_stream *streams;
    uint32_t stream_count;
    struct sim_sub *subs;          /* SIM_MAX_SUBS, from the first SUBSCRIBE */
    struct gb_media_clip *clip;
    bool stopping, closing;
    uint32_t unregister_pending;
    uint64_t unregister_deadline;
};

/* ---- small helpers ---- */

static uint64_t sim_now(const struct sim *s) { return uv_now(s->w.loop); }
static uint32_t sim_secs(const struct sim *s) { return (uint32_t)((sim_now(s) - s->start_ms) / 1000u); }

static uint64_t sim_rand(struct sim *s)
{
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint32_t dev_index(const struct sim_dev *d) { return (uint32_t)(d - d->sim->devs); }

static void dev_id(const struct sim *s, uint32_t i, char out[GB_ID_LEN + 1])
{
    snprintf(out, GB_ID_LEN + 1, "%.13s%07u", s->prefix, s->base_num + i);
}

/* Channels are numbered after the device's own serial, so simulators started
 * with different --base-id values never hand out the same channel id. */
static uint32_t chan_base(const struct sim *s, uint32_t i)
{
    uint32_t serial = s->base_num + i;
    return (serial ? serial - 1 : 0) * s->o.channels;
}

static void chan_id(const struct sim *s, uint32_t i, uint32_t ch, char out[GB_ID_LEN + 1])
{
    snprintf(out, GB_ID_LEN + 1, "%.10s131%07u", s->prefix, chan_base(s, i) + ch + 1);
}

/* A target id -> device index (and channel, -1 for the device itself). */
static int route_id(const struct sim *s, str_t id, uint32_t *dev, int *ch)
{
    if (id.len != GB_ID_LEN || !gb_id_valid(id) || memcmp(id.s, s->prefix, 10)) return -1;
    uint64_t num;
    if (str_to_u64(str_make(id.s + 13, 7), 9999999, &num) != 0) return -1;
    if (!memcmp(id.s + 10, s->prefix + 10, 3)) {
        if (num < s->base_num || num - s->base_num >= s->o.devices) return -1;
        *dev = (uint32_t)(num - s->base_num);
        *ch = -1;
        return 0;
    }
    if (memcmp(id.s + 10, "131", 3) || num == 0 || !s->o.channels) return -1;
    uint64_t first = chan_base(s, 0);
    if (num - 1 < first || (num - 1 - first) / s->o.channels >= s->o.devices) return -1;
    *dev = (uint32_t)((num - 1 - first) / s->o.channels);
    *ch = (int)((num - 1 - first) % s->o.channels);
    return 0;
}

static void call_id_of(const struct sim *s, uint32_t i, char out[48])
{
    snprintf(out, 48, "%016llx-%u", (unsigned long long)s->run_id, i);
}

static void tag_of(const struct sim *s, uint32_t i, char out[UA_TAG_SIZE])
{
    uint64_t v = (s->run_id ^ ((uint64_t)i * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL;
    snprintf(out, UA_TAG_SIZE, "%016llx", (unsigned long long)v);
}

/* Every device timer runs dev_timer_cb (the wheel has one callback). */
static void sim_arm(struct sim *s, struct sim_dev *d, uint64_t at)
{
    gbsim_wheel_add(&s->wheel, &d->timer, at);
}

/* Milliseconds since the start, by the sim clock (for a device's send time). */
static uint32_t sim_ms(const struct sim *s) { return (uint32_t)(sim_now(s) - s->start_ms); }

static void note_rtt(struct sim *s, struct sim_dev *d)
{
    uint32_t now = sim_ms(s);
    gbsim_hist_add(&s->rtt, now > d->sent_ms ? now - d->sent_ms : 0);
}

/* ---- TCP flows ---- */

static void conn_index_put(struct sim *s, uint64_t conn, uint32_t dev)
{
    if (!s->conn_index || !conn) return;
    uint32_t i = (uint32_t)(conn * 0x9E3779B97F4A7C15ULL >> 32) & s->conn_index_mask;
    while (s->conn_index[i * 2] && s->conn_index[i * 2] != conn) i = (i + 1) & s->conn_index_mask;
    s->conn_index[i * 2] = conn;
    s->conn_index[i * 2 + 1] = dev + 1;
}

static int64_t conn_index_get(const struct sim *s, uint64_t conn)
{
    if (!s->conn_index || !conn) return -1;
    uint32_t i = (uint32_t)(conn * 0x9E3779B97F4A7C15ULL >> 32) & s->conn_index_mask;
    while (s->conn_index[i * 2]) {
        if (s->conn_index[i * 2] == conn) return (int64_t)s->conn_index[i * 2 + 1] - 1;
        i = (i + 1) & s->conn_index_mask;
    }
    return -1;
}

static void dev_dest(struct sim *s, uint32_t i, struct transport_dest *d)
{
    *d = s->target;
    if (s->o.proto == SIP_TRANSPORT_UDP) {
        d->listener_id = s->listeners[i % (uint32_t)s->nlisteners];
    } else {
        d->conn_id = s->conns[i];
        d->new_flow = true; /* each device its own connection */
    }
}

static void dev_learn_flow(struct sim *s, uint32_t i, struct ua_uac *h)
{
    if (s->o.proto != SIP_TRANSPORT_TCP) return;
    uint64_t conn = ua_request_dest(h)->conn_id;
    if (conn && conn != s->conns[i]) {
        s->conns[i] = conn;
        conn_index_put(s, conn, i);
    }
}

/* ---- requests to the upper ---- */

static void fill_request(struct sim *s, uint32_t i, enum sip_method m, struct ua_request *r, char *buf, size_t cap)
{
    char id[GB_ID_LEN + 1];
    dev_id(s, i, id);
    memset(r, 0, sizeof(*r));
    int a = snprintf(buf, cap, "sip:%s@%s", s->o.target_id, s->o.target_domain);
    int b = snprintf(buf + a + 1, cap - (size_t)a - 1, "<sip:%s@%s>", id, s->domain);
    r->method = m;
    r->ruri = str_make(buf, (size_t)a);
    r->from = str_make(buf + a + 1, (size_t)b);
    r->to = m == SIP_REGISTER ? r->from : r->ruri;
}

static void send_register(struct sim_dev *d, int expires);

static uint64_t jitter(struct sim *s) { return s->o.jitter_ms ? sim_rand(s) % (s->o.jitter_ms + 1) : 0; }

/* Retry-After: delta-seconds [comment] [;params] (RFC 3261 §20.33). */
static bool retry_after(const struct sip_msg *resp, uint64_t *secs)
{
    const struct sip_header *h = resp ? sip_msg_header(resp, SIP_HDR_RETRY_AFTER) : NULL;
    if (!h) return false;
    str_t v = str_trim(h->value);
    size_t n = 0;
    while (n < v.len && v.s[n] >= '0' && v.s[n] <= '9') n++;
    return n > 0 && str_to_u64(str_make(v.s, n), 86400, secs) == 0;
}

static uint64_t backoff(struct sim *s, struct sim_dev *d)
{
    uint64_t base = SIM_RETRY_MIN_MS;
    for (int i = 1; i < d->failures && base < SIM_RETRY_MAX_MS; i++) base *= 2;
    if (base > SIM_RETRY_MAX_MS) base = SIM_RETRY_MAX_MS;
    return base / 2 + sim_rand(s) % (base / 2 + 1);
}

static void dev_unregistered(struct sim *s, struct sim_dev *d)
{
    if (d->state == DEV_REGISTERED) {
        s->registered--;
        s->c.lost++;
    }
}

static void on_register_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                              const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)rx;
    (void)dlg;
    struct sim_dev *d = arg;
    struct sim *s = d->sim;
    uint32_t i = dev_index(d);
    d->pending = NULL;
    d->pend = PEND_NONE;
    d->cseq = ua_request_cseq(h);
    dev_learn_flow(s, i, h);
    uint64_t now = sim_now(s);
    if (resp) note_rtt(s, d);
    if (d->state == DEV_UNREGISTERING) {
        d->state = DEV_DONE;
        if (s->unregister_pending) s->unregister_pending--;
        return;
    }
    if (s->stopping) return;
    if (status >= 200 && status < 300 && resp) {
        s->c.reg_ok++;
        int granted = resp->expires >= 0 ? (int)resp->expires : s->o.expires;
        if (granted <= 0) granted = s->o.expires;
        d->refresh_at_s = sim_secs(s) + (uint32_t)(granted * 2 / 3 > 0 ? granted * 2 / 3 : 1);
        d->failures = 0;
        d->misses = 0;
        bool first = d->state != DEV_REGISTERED;
        if (first) {
            d->state = DEV_REGISTERED;
            d->ever_registered = 1;
            s->registered++;
            if (s->registered > s->max_registered) s->max_registered = s->registered;
            if (s->registered == s->o.devices && !s->all_registered_ms) s->all_registered_ms = now;
            /* First keepalive at a random phase of the interval: 100 000
             * devices registered in a burst must not keep alive in step. */
            uint64_t phase = (uint64_t)s->o.keepalive * 1000u;
            sim_arm(s, d, now + 200 + sim_rand(s) % (phase ? phase : 1));
        } else if (!gbsim_wheel_armed(&d->timer)) {
            sim_arm(s, d, now + (uint64_t)s->o.keepalive * 1000u);
        }
        return;
    }
    s->c.reg_fail++;
    if (status == 503) s->c.reg_503++;
    dev_unregistered(s, d);
    d->state = DEV_FAILED;
    if (d->failures < 250) d->failures++;
    uint64_t wait = backoff(s, d);
    uint64_t ra;
    if (retry_after(resp, &ra)) {
        /* RFC 3261 §21.5.4: come back when the server said, a little
         * spread so the devices it refused together do not return together. */
        s->c.reg_retry_after++;
        wait = ra * 1000u + sim_rand(s) % 1000u;
    }
    if (status == 423 && resp) {
        const struct sip_header *me = sip_msg_header(resp, SIP_HDR_MIN_EXPIRES);
        uint64_t v;
        if (me && str_to_u64(str_trim(me->value), 86400, &v) == 0 && (int)v > s->o.expires) s->o.expires = (int)v;
    }
    if ((d->failures <= 1 && status != 503) || log_get_level() >= LOG_DEBUG)
        log_warn("gbsim: device %u REGISTER failed: %d", s->index_base + i, status);
    sim_arm(s, d, now + wait);
}

static const struct ua_uac_cb register_cb = {.on_final = on_register_final};

static void send_register(struct sim_dev *d, int expires)
{
    struct sim *s = d->sim;
    uint32_t i = dev_index(d);
    if (d->pending) return;
    struct ua_request r;
    char buf[256], cid[48], tag[UA_TAG_SIZE], exp[32], id[GB_ID_LEN + 1];
    fill_request(s, i, SIP_REGISTER, &r, buf, sizeof(buf));
    call_id_of(s, i, cid);
    tag_of(s, i, tag);
    dev_id(s, i, id);
    r.call_id = str_from_cstr(cid);
    r.from_tag = str_from_cstr(tag);
    r.cseq = ++d->cseq;
    r.auto_contact = true;
    r.contact_user = str_from_cstr(id);
    snprintf(exp, sizeof(exp), "Expires: %d", expires);
    str_t hdr = str_from_cstr(exp);
    r.headers = &hdr;
    r.header_count = 1;
    struct ua_credentials cred = {.user = str_from_cstr(id), .password = str_from_cstr(s->o.password)};
    struct transport_dest dest;
    dev_dest(s, i, &dest);
    s->c.reg_sent++;
    d->sent_ms = sim_ms(s);
    d->pending = ua_request_send(s->ua, &r, &dest, &cred, &register_cb, d);
    if (d->pending) {
        d->pend = PEND_REGISTER;
    } else {
        log_error("gbsim: REGISTER of device %u could not be sent", i);
        if (d->state == DEV_UNREGISTERING) {
            d->state = DEV_DONE;
            if (s->unregister_pending) s->unregister_pending--;
        }
    }
}

static void on_keepalive_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                               const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)rx;
    (void)dlg;
    struct sim_dev *d = arg;
    struct sim *s = d->sim;
    d->pending = NULL;
    d->pend = PEND_NONE;
    dev_learn_flow(s, dev_index(d), h);
    if (resp) note_rtt(s, d);
    else s->c.ka_timeout++; /* our own 408: no answer (Timer F) */
    if (s->stopping || d->state != DEV_REGISTERED) return;
    if (status >= 200 && status < 300) {
        s->c.ka_ok++;
        d->misses = 0;
        return;
    }
    s->c.ka_fail++;
    if (resp && (status == 403 || status == 404)) {
        /* The upper forgot us (GB/T 28181 §9.6): register again at once. */
        s->c.ka_refused++;
        dev_unregistered(s, d);
        d->state = DEV_REGISTERING;
        send_register(d, s->o.expires);
        return;
    }
    if (++d->misses >= s->o.keepalive_misses) {
        dev_unregistered(s, d);
        d->state = DEV_REGISTERING;
        d->misses = 0;
        send_register(d, s->o.expires);
    }
}

static const struct ua_uac_cb keepalive_cb = {.on_final = on_keepalive_final};

static void send_keepalive(struct sim_dev *d)
{
    struct sim *s = d->sim;
    uint32_t i = dev_index(d);
    struct ua_request r;
    char buf[256], id[GB_ID_LEN + 1];
    fill_request(s, i, SIP_MESSAGE, &r, buf, sizeof(buf));
    dev_id(s, i, id);
    sbuf_t body;
    sbuf_init(&body);
    if (gb_manscdp_build_keepalive(&body, s->o.charset, ++s->sn, id, "OK") != 0) {
        sbuf_free(&body);
        return;
    }
    r.content_type = STR_LIT("Application/MANSCDP+xml");
    r.body = sbuf_str(&body);
    struct ua_credentials cred = {.user = str_from_cstr(id), .password = str_from_cstr(s->o.password)};
    struct transport_dest dest;
    dev_dest(s, i, &dest);
    s->c.ka_sent++;
    d->sent_ms = sim_ms(s);
    d->pending = ua_request_send(s->ua, &r, &dest, &cred, &keepalive_cb, d);
    d->pend = d->pending ? PEND_KEEPALIVE : PEND_NONE;
    sbuf_free(&body);
}

static void dev_timer_cb(struct gbsim_wheel_node *n, uint64_t now, void *user)
{
    struct sim *s = user;
    struct sim_dev *d = container_of(n, struct sim_dev, timer);
    /* How late the simulator itself is: measured from the end of the
     * deadline's wheel tick (when the wheel means to fire it), so what is
     * left is a loop too busy to run its timers. */
    uint64_t due = (n->deadline_ms / SIM_WHEEL_TICK_MS + 1) * SIM_WHEEL_TICK_MS - 1;
    uint64_t real = uv_hrtime() / 1000000u;
    gbsim_hist_add(&s->lag, real > due ? (uint32_t)(real - due) : 0);
    if (s->stopping) return;
    switch (d->state) {
    case DEV_IDLE:
    case DEV_FAILED:
        d->state = DEV_REGISTERING;
        send_register(d, s->o.expires);
        return;
    case DEV_REGISTERING:
        /* a REGISTER is in flight; its answer re-arms the timer */
        return;
    case DEV_REGISTERED:
        break;
    default: return;
    }
    if (d->pend == PEND_KEEPALIVE) {
        /* Still unanswered when the next one is due: a miss. */
        ua_request_detach(d->pending);
        d->pending = NULL;
        d->pend = PEND_NONE;
        s->c.ka_fail++;
        s->c.ka_timeout++;
        if (++d->misses >= s->o.keepalive_misses) {
            dev_unregistered(s, d);
            d->state = DEV_REGISTERING;
            d->misses = 0;
            send_register(d, s->o.expires);
            return;
        }
    }
    uint64_t interval = (uint64_t)s->o.keepalive * 1000u;
    if (sim_secs(s) >= d->refresh_at_s) {
        if (d->pend == PEND_NONE) send_register(d, s->o.expires);
        sim_arm(s, d, now + interval);
        return;
    }
    if (d->pend == PEND_NONE) send_keepalive(d);
    uint64_t next = now + interval + (s->o.jitter_ms ? jitter(s) / 4 : 0);
    uint64_t refresh = s->start_ms + (uint64_t)d->refresh_at_s * 1000u;
    sim_arm(s, d, refresh < next ? refresh : next);
}

/* ---- requests from the upper ---- */

static void respond(struct txn *st, int status)
{
    int rc = txn_respond(st, status, NULL, STR_NULL, NULL, 0, STR_NULL, STR_NULL);
    if (rc < 0) log_debug("gbsim: %d not sent: %s", status, strerror(-rc));
}

/* Sends a MANSCDP body to the upper from device i, fire and forget. */
static void send_to_upper(struct sim *s, uint32_t i, const sbuf_t *body)
{
    struct ua_request r;
    char buf[256], id[GB_ID_LEN + 1];
    fill_request(s, i, SIP_MESSAGE, &r, buf, sizeof(buf));
    dev_id(s, i, id);
    r.content_type = STR_LIT("Application/MANSCDP+xml");
    r.body = sbuf_str(body);
    struct ua_credentials cred = {.user = str_from_cstr(id), .password = str_from_cstr(s->o.password)};
    struct transport_dest dest;
    dev_dest(s, i, &dest);
    if (!ua_request_send(s->ua, &r, &dest, &cred, NULL, NULL)) log_warn("gbsim: answer of device %u not sent", i);
}

static void answer_catalog(struct sim *s, uint32_t i, const gb_manscdp_t *m)
{
    uint32_t n = s->o.channels;
    gb_catalog_item_t *items = calloc(n, sizeof(*items));
    char (*ids)[GB_ID_LEN + 1] = calloc(n, sizeof(*ids));
    char (*names)[48] = calloc(n, sizeof(*names));
    char did[GB_ID_LEN + 1], civil[8];
    dev_id(s, i, did);
    snprintf(civil, sizeof(civil), "%.6s", did);
    if (!items || !ids || !names) goto out;
    for (uint32_t k = 0; k < n; k++) {
        gb_catalog_item_t *it = &items[k];
        gb_catalog_item_init(it);
        chan_id(s, i, k, ids[k]);
        /* Chinese names: the upper must decode them from GB2312. */
        snprintf(names[k], sizeof(names[k]), "模拟通道%u-%u", s->index_base + i + 1, k + 1);
        it->device_id = ids[k];
        it->name = names[k];
        it->manufacturer = (char *)"cascade-gbsim";
        it->model = (char *)"SIM-IPC";
        it->owner = (char *)"Owner";
        it->civil_code = civil;
        it->address = (char *)"模拟地址";
        it->parental = 0;
        it->parent_id = did;
        it->safety_way = 0;
        it->register_way = 1;
        it->secrecy = 0;
        it->status = GB_ONOFF_ON;
    }
    size_t per = (size_t)s->o.catalog_items;
    for (size_t from = 0; from < n || (n == 0 && from == 0); from += per) {
        size_t k = n - from < per ? n - from : per;
        sbuf_t body;
        sbuf_init(&body);
        if (gb_manscdp_build_catalog_response(&body, s->o.charset, m->sn, did, items, n, from, k) == 0)
            send_to_upper(s, i, &body);
        sbuf_free(&body);
        if (n == 0) break;
    }
out:
    free(items);
    free(ids);
    free(names);
}

static void answer_query(struct sim *s, uint32_t i, int ch, const gb_manscdp_t *m)
{
    char did[GB_ID_LEN + 1], target[GB_ID_LEN + 1], now[24];
    dev_id(s, i, did);
    if (ch >= 0) chan_id(s, i, (uint32_t)ch, target);
    else memcpy(target, did, sizeof(did));
    sbuf_t body;
    sbuf_init(&body);
    int rc = -1;
    s->c.queries++;
    switch (m->cmd) {
    case GB_CMD_CATALOG: answer_catalog(s, i, m); return;
    case GB_CMD_DEVICE_INFO: {
        char name[48];
        snprintf(name, sizeof(name), "模拟设备%u", s->index_base + i + 1);
        gb_device_info_t info = {.device_name = name, .manufacturer = (char *)"cascade-gbsim",
                                 .model = (char *)"SIM-IPC", .firmware = (char *)"1.0",
                                 .channel = (int)s->o.channels};
        rc = gb_manscdp_build_device_info_response(&body, s->o.charset, m->sn, target, "OK", &info);
        break;
    }
    case GB_CMD_DEVICE_STATUS: {
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%S", &tm);
        gb_device_status_t st = {.online = (char *)"ONLINE", .encode = (char *)"ON", .record = (char *)"OFF",
                                 .device_time = now};
        rc = gb_manscdp_build_device_status_response(&body, s->o.charset, m->sn, target, "OK", "OK", &st);
        break;
    }
    case GB_CMD_RECORD_INFO:
        /* The simulator records nothing: an empty list is a valid answer. */
        rc = gb_manscdp_build_record_response(&body, s->o.charset, m->sn, target, target, NULL, 0, 0, 0);
        break;
    default: break;
    }
    if (rc == 0) send_to_upper(s, i, &body);
    sbuf_free(&body);
}

static void on_message(struct sim *s, uint32_t i, int ch, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    gb_manscdp_t msg;
    if (gb_manscdp_parse(m->body.s, m->body.len, NULL, &msg) != 0) {
        log_warn("gbsim: bad MANSCDP to device %u from %s", i, rx->src_text);
        respond(st, 400);
        gb_manscdp_free(&msg);
        return;
    }
    respond(st, 200);
    if (msg.kind == GB_MSG_QUERY) {
        answer_query(s, i, ch, &msg);
    } else if (msg.kind == GB_MSG_CONTROL) {
        s->c.controls++;
        if (msg.control.ptz_cmd) {
            gb_ptz_t p;
            if (gb_ptz_parse(msg.control.ptz_cmd, strlen(msg.control.ptz_cmd), &p) != 0)
                log_warn("gbsim: bad PTZCmd '%s' to device %u", msg.control.ptz_cmd, i);
            else log_info("gbsim: device %u PTZ %s", i, gb_ptz_command_name(p.command) ? gb_ptz_command_name(p.command) : "other");
        }
        if (msg.control.alarm_cmd && !strcasecmp(msg.control.alarm_cmd, "ResetAlarm")) {
            s->c.alarm_resets++;
            log_info("gbsim: device %u ResetAlarm for %s", i, msg.device_id ? msg.device_id : "?");
        }
    }
    gb_manscdp_free(&msg);
}

/* ---- subscriptions from the upper ---- */

static struct sim_sub *sub_find(struct sim *s, str_t call_id, str_t to_tag)
{
    for (uint32_t k = 0; s->subs && k < SIM_MAX_SUBS; k++) {
        struct sim_sub *x = &s->subs[k];
        if (x->used && str_eq_cstr(call_id, x->call_id) && str_eq_cstr(to_tag, x->local_tag)) return x;
    }
    return NULL;
}

static struct sim_sub *sub_alloc(struct sim *s)
{
    if (!s->subs && !(s->subs = calloc(SIM_MAX_SUBS, sizeof(*s->subs)))) return NULL;
    for (uint32_t k = 0; k < SIM_MAX_SUBS; k++)
        if (!s->subs[k].used) return &s->subs[k];
    return NULL;
}

/* --subscribe-log: the SUBSCRIBE as received and our answer, one JSON
 * object per line (appended whole: O_APPEND, one write per line). kind:
 * "new" (out of dialog), "refresh", "end" (Expires 0 in a dialog). */
static void sub_log(struct sim *s, uint32_t dev, const char *kind, const struct sip_msg *m, int expires, int status)
{
    if (!s->o.sub_log[0]) return;
    char id[GB_ID_LEN + 1];
    dev_id(s, dev, id);
    const struct sip_header *ev = sip_msg_header_by_name(m, "Event");
    str_t e = ev ? str_trim(ev->value) : STR_NULL;
    json_t *j = json_pack("{s:s,s:s,s:s%,s:s%,s:i,s:i,s:I}", "device", id, "kind", kind, "event", e.s ? e.s : "",
                          e.len, "call_id", m->call_id.s ? m->call_id.s : "", m->call_id.len, "expires", expires,
                          "status", status, "cseq", (json_int_t)m->cseq.number);
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!line) return;
    FILE *f = fopen(s->o.sub_log, "a");
    if (f) {
        fprintf(f, "%s\n", line);
        fclose(f);
    }
    free(line);
}

static void answer_subscribe(struct txn *st, const char *tag, int expires)
{
    char ex[32];
    snprintf(ex, sizeof(ex), "Expires: %d", expires);
    str_t line = str_from_cstr(ex);
    int rc = txn_respond(st, 200, NULL, tag ? str_from_cstr(tag) : STR_NULL, &line, 1, STR_NULL, STR_NULL);
    if (rc < 0) log_debug("gbsim: 200 to SUBSCRIBE not sent: %s", strerror(-rc));
}

/* Sends a NOTIFY with body within x (fire and forget). */
static void sub_notify(struct sim *s, struct sim_sub *x, const sbuf_t *body)
{
    struct ua_request r;
    struct ua_notify_lines nl;
    char buf[256], id[GB_ID_LEN + 1];
    fill_request(s, x->dev, SIP_NOTIFY, &r, buf, sizeof(buf));
    dev_id(s, x->dev, id);
    ua_subscription_notify(&r, &nl, x->event, x->call_id, x->local_tag, x->remote_tag, x->contact, ++x->cseq,
                           x->expires_at, sim_now(s));
    r.content_type = STR_LIT("Application/MANSCDP+xml");
    r.body = sbuf_str(body);
    struct transport_dest dest;
    dev_dest(s, x->dev, &dest);
    if (!ua_request_send(s->ua, &r, &dest, NULL, NULL, NULL)) log_warn("gbsim: NOTIFY of device %u not sent", x->dev);
    x->notifies++;
    s->c.notifies++;
}

static void sim_time(char out[24])
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
}

static void notify_position(struct sim *s, struct sim_sub *x)
{
    char did[GB_ID_LEN + 1], now[24];
    dev_id(s, x->dev, did);
    sim_time(now);
    /* A slow walk east from Tian'anmen: each notify a new position. */
    double lon = 116.397 + 0.0001 * x->notifies, lat = 39.909;
    gb_position_t p = {.time = now, .speed = (char *)"12", .direction = (char *)"90", .altitude = (char *)"44"};
    sbuf_t body;
    sbuf_init(&body);
    if (gb_manscdp_build_position_notify(&body, s->o.charset, ++s->sn, did, &p, lon, lat) == 0) sub_notify(s, x, &body);
    sbuf_free(&body);
}

static void notify_alarm(struct sim *s, struct sim_sub *x)
{
    char cid[GB_ID_LEN + 1], now[24], desc[48];
    chan_id(s, x->dev, 0, cid);
    sim_time(now);
    snprintf(desc, sizeof(desc), "模拟报警 %u", x->notifies + 1);
    /* Method 5: video alarm; type 2: motion detection (§A.2.5.3). */
    gb_alarm_t a = {.priority = (char *)"1", .method = (char *)"5", .time = now, .description = desc,
                    .type = (char *)"2"};
    sbuf_t body;
    sbuf_init(&body);
    if (gb_manscdp_build_alarm_notify(&body, s->o.charset, ++s->sn, cid, &a, false, 0, 0) == 0)
        sub_notify(s, x, &body);
    sbuf_free(&body);
}

/* One new channel (the next number after the device's own). */
static void notify_catalog_add(struct sim *s, struct sim_sub *x)
{
    char did[GB_ID_LEN + 1], cid[GB_ID_LEN + 1], civil[8];
    dev_id(s, x->dev, did);
    chan_id(s, x->dev, s->o.channels, cid);
    snprintf(civil, sizeof(civil), "%.6s", did);
    gb_catalog_item_t it;
    gb_catalog_item_init(&it);
    it.device_id = cid;
    it.event = GB_EVENT_ADD;
    it.name = (char *)"新增通道";
    it.manufacturer = (char *)"cascade-gbsim";
    it.model = (char *)"SIM-IPC";
    it.civil_code = civil;
    it.parental = 0;
    it.parent_id = did;
    it.status = GB_ONOFF_ON;
    sbuf_t body;
    sbuf_init(&body);
    if (gb_manscdp_build_catalog_notify(&body, s->o.charset, ++s->sn, did, &it, 1) == 0) sub_notify(s, x, &body);
    sbuf_free(&body);
    log_info("gbsim: device %u catalog ADD %s notified", x->dev, cid);
}

/* Called every SIM_PUBLISH_MS: what is due in each subscription. */
static void subs_run(struct sim *s)
{
    uint64_t now = sim_now(s);
    for (uint32_t k = 0; s->subs && k < SIM_MAX_SUBS; k++) {
        struct sim_sub *x = &s->subs[k];
        if (!x->used) continue;
        if (now >= x->expires_at) {
            log_info("gbsim: subscription %s of device %u expired", x->event, x->dev);
            x->used = false;
            continue;
        }
        if (x->kind == SUB_POSITION && now >= x->next_position) {
            notify_position(s, x);
            x->next_position = now + (uint64_t)x->interval_s * 1000u;
        }
        if (x->kind == SUB_ALARM && s->o.alarm_every_s && now >= x->next_alarm) {
            notify_alarm(s, x);
            x->next_alarm = now + (uint64_t)s->o.alarm_every_s * 1000u;
        }
        if (x->kind == SUB_CATALOG && s->o.catalog_add_after_s && !x->catalog_added && now >= x->catalog_at) {
            x->catalog_added = true;
            notify_catalog_add(s, x);
        }
    }
}

static int sub_expires(const struct sip_msg *m) { return m->expires >= 0 && m->expires < 86400 ? (int)m->expires : 3600; }

/* A refresh or an unsubscribe (Expires 0) within one of our subscriptions. */
static void on_subscribe_refresh(struct sim *s, struct txn *st, const struct sip_msg *m)
{
    struct sim_sub *x = sub_find(s, m->call_id, m->to.tag);
    if (!x) {
        respond(st, 481);
        uint32_t i = 0;
        int ch;
        if (route_id(s, m->ruri.user.len ? m->ruri.user : m->to.uri.user, &i, &ch) != 0) i = 0;
        sub_log(s, i, m->expires == 0 ? "end" : "refresh", m, (int)m->expires, 481);
        return;
    }
    int expires = sub_expires(m);
    answer_subscribe(st, NULL, expires);
    sub_log(s, x->dev, expires == 0 ? "end" : "refresh", m, expires, 200);
    s->c.subscribes++;
    x->expires_at = sim_now(s) + (uint64_t)expires * 1000u;
    if (expires == 0) {
        log_info("gbsim: subscription %s of device %u ended by the upper", x->event, x->dev);
        x->used = false;
    } else {
        log_info("gbsim: subscription %s of device %u refreshed (expires %d)", x->event, x->dev, expires);
    }
}

static void on_subscribe(struct sim *s, uint32_t i, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    gb_manscdp_t q;
    if (gb_manscdp_parse(m->body.s, m->body.len, NULL, &q) != 0 || q.kind != GB_MSG_QUERY) {
        log_warn("gbsim: SUBSCRIBE to device %u from %s without a MANSCDP Query", i, rx->src_text);
        respond(st, 400);
        gb_manscdp_free(&q);
        return;
    }
    int kind = q.cmd == GB_CMD_CATALOG ? SUB_CATALOG : q.cmd == GB_CMD_ALARM ? SUB_ALARM
             : q.cmd == GB_CMD_MOBILE_POSITION ? SUB_POSITION : -1;
    uint32_t interval = q.interval > 0 && q.interval <= 3600 ? (uint32_t)q.interval : 5;
    gb_manscdp_free(&q);
    struct sim_sub *x = kind >= 0 ? sub_alloc(s) : NULL;
    if (!x) {
        respond(st, kind < 0 ? 489 : 503);
        return;
    }
    int expires = sub_expires(m);
    memset(x, 0, sizeof(*x));
    x->kind = (uint8_t)kind;
    x->dev = i;
    str_copy(x->call_id, sizeof(x->call_id), m->call_id);
    str_copy(x->remote_tag, sizeof(x->remote_tag), m->from.tag);
    const struct sip_header *ev = sip_msg_header_by_name(m, "Event");
    str_copy(x->event, sizeof(x->event), ev ? str_trim(ev->value) : str_from_cstr("Catalog"));
    struct sip_list_iter it;
    str_t item;
    struct sip_name_addr na;
    sip_list_iter_init(&it, m, SIP_HDR_CONTACT);
    if (sip_list_iter_next(&it, &item) && sip_name_addr_parse(item, &na) == 0 && !na.star)
        str_copy(x->contact, sizeof(x->contact), na.uri_raw);
    ua_new_tag(s->ua, x->local_tag);
    answer_subscribe(st, x->local_tag, expires);
    sub_log(s, i, "new", m, expires, 200);
    s->c.subscribes++;
    if (expires == 0) return; /* a fetch: nothing kept */
    x->used = true;
    uint64_t now = sim_now(s);
    x->expires_at = now + (uint64_t)expires * 1000u;
    x->interval_s = interval;
    x->next_position = now;
    x->next_alarm = now + (uint64_t)s->o.alarm_every_s * 1000u;
    x->catalog_at = now + (uint64_t)s->o.catalog_add_after_s * 1000u;
    log_info("gbsim: device %u subscription %s (expires %d, interval %u) from %s", i, x->event, expires, interval,
             rx->src_text);
}

/* ---- streams ---- */

static void stream_free(struct sim_stream *x, bool bye)
{
    struct sim *s = x->sim;
    if (x->sender) {
        struct gb_media_sender_stats st;
        gb_media_sender_get_stats(x->sender, &st);
        s->c.rtp_packets += st.packets;
    }
    if (x->dlg) {
        if (bye) ua_dialog_bye(x->dlg);
        else ua_dialog_set_cb(x->dlg, NULL, NULL);
    }
    gb_media_sender_free(x->sender);
    if (x->prev) x->prev->next = x->next;
    else s->streams = x->next;
    if (x->next) x->next->prev = x->prev;
    s->stream_count--;
    s->c.streams_stopped++;
    free(x);
}

static void stream_ack(void *arg, struct ua_dialog *d, const struct transport_rx *rx)
{
    (void)d;
    (void)rx;
    struct sim_stream *x = arg;
    if (gb_media_sender_start(x->sender) < 0) stream_free(x, true);
}

static void stream_end(void *arg, struct ua_dialog *d, enum ua_dialog_end why)
{
    (void)d;
    struct sim_stream *x = arg;
    log_info("gbsim: stream of %s ended: %s", x->channel_id, why == UA_END_BYE_RECEIVED ? "BYE from the upper" : "no ACK");
    x->dlg = NULL;
    stream_free(x, false);
}

/* Playback control from the upper (GB/T 28181 Annex B): MANSRTSP in INFO.
 * Each request is logged with its body's meaning and counted, so that a test
 * can check what reached the device. */
static void stream_info(struct sim_stream *x, struct txn *st, const struct sip_msg *m)
{
    struct sim *s = x->sim;
    struct gb_rtsp_req r;
    const char *why = NULL;
    if (!gb_mansrtsp_is_type(m->content_type.s, m->content_type.len)) {
        respond(st, 415);
        return;
    }
    if (!x->playback || gb_mansrtsp_parse(m->body.s, m->body.len, &r, &why) != 0) {
        s->c.rtsp_bad++;
        log_warn("gbsim: INFO for %s refused: %s", x->channel_id, x->playback ? why : "not a playback");
        respond(st, x->playback ? 400 : 488);
        return;
    }
    if (gb_media_sender_apply(x->sender, &r) != 0) {
        respond(st, 457); /* RTSP "Invalid Range", as devices answer a seek past the end */
        return;
    }
    if (r.method == GB_RTSP_PAUSE) s->c.rtsp_pause++;
    if (r.method == GB_RTSP_PLAY) s->c.rtsp_play++;
    if (r.has_scale) s->c.rtsp_scale++;
    if (r.has_range && r.range_from >= 0) s->c.rtsp_seek++;
    log_info("gbsim: INFO for %s: %s cseq %u%s scale %.3g position %.1fs", x->channel_id,
             gb_rtsp_method_name(r.method), r.cseq, gb_media_sender_paused(x->sender) ? " (paused)" : "",
             r.has_scale ? r.scale : 0.0, gb_media_sender_position(x->sender));
    respond(st, 200);
    if (r.method == GB_RTSP_TEARDOWN) stream_free(x, true);
}

static void stream_request(void *arg, struct ua_dialog *d, struct txn *st, const struct transport_rx *rx)
{
    (void)d;
    struct sim_stream *x = arg;
    if (rx->msg->method == SIP_INFO) stream_info(x, st, rx->msg);
    else respond(st, rx->msg->method == SIP_INVITE || rx->msg->method == SIP_UPDATE ? 488 : 200);
}

static const struct ua_dialog_cb stream_dlg_cb = {.on_request = stream_request, .on_ack = stream_ack,
                                                  .on_end = stream_end};

static void stream_stopped(void *arg, struct gb_media_sender *sender, const char *reason)
{
    (void)sender;
    struct sim_stream *x = arg;
    struct sim *s = x->sim;
    log_info("gbsim: stream of %s stopped: %s", x->channel_id, reason);
    if (x->playback && !strcmp(reason, "end") && x->dlg) {
        /* The range was sent: tell the upper (§A.2.5.9, NotifyType 121);
         * its BYE ends the dialog (stream_end). */
        sbuf_t body;
        sbuf_init(&body);
        if (gb_manscdp_build_media_status(&body, s->o.charset, ++s->sn, x->channel_id) == 0) {
            send_to_upper(s, x->dev, &body);
            s->c.media_status++;
            x->ended = true;
        }
        sbuf_free(&body);
        if (x->ended) return;
    }
    stream_free(x, true);
}

static const struct gb_media_sender_cb stream_sender_cb = {.on_stopped = stream_stopped};

static void on_invite(struct sim *s, uint32_t i, int ch, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    s->c.invites++;
    if (ch < 0 || s->stream_count >= SIM_MAX_STREAMS) {
        respond(st, ch < 0 ? 404 : 486);
        return;
    }
    struct gb_media_offer o;
    const char *why;
    int status = gb_media_offer_parse(m->content_type, m->body, &o, &why);
    if (status) {
        log_warn("gbsim: INVITE to device %u from %s refused %d: %s", i, rx->src_text, status, why ? why : "");
        respond(st, status);
        return;
    }
    if (!o.has_ssrc) {
        snprintf(o.ssrc_text, sizeof(o.ssrc_text), "0%.5s%04u", s->domain + 3, (unsigned)(sim_rand(s) % 10000));
        gb_ssrc_to_u32(str_from_cstr(o.ssrc_text), &o.ssrc);
    }
    struct sim_stream *x = calloc(1, sizeof(*x));
    if (!x) {
        respond(st, 500);
        return;
    }
    x->sim = s;
    x->dev = i;
    chan_id(s, i, (uint32_t)ch, x->channel_id);
    struct gb_media_sender_config mc = {.loop = s->w.loop, .timers = &s->w.timers, .proto = o.proto,
                                        .local_ip = s->o.local_ip, .remote = o.remote, .ssrc = o.ssrc,
                                        .payload_type = (uint8_t)o.pt, .clip = s->clip, .loop_clip = true,
                                        .audio = (enum gb_media_audio)s->o.audio};
    x->playback = !strcasecmp(o.session, "Playback") || !strcasecmp(o.session, "Download");
    if (x->playback) {
        /* A recording of end - start seconds: the clip, looped, for that
         * long (capped at a day), then MediaStatus. */
        int64_t span = o.end > o.start ? o.end - o.start : 0;
        mc.duration_ms = span <= 0 ? 0 : span > 86400 ? 86400000u : (uint32_t)(span * 1000);
        s->c.playbacks++;
    }
    int err = 0;
    x->sender = gb_media_sender_new(&mc, &stream_sender_cb, x, &err);
    sbuf_t sdp;
    sbuf_init(&sdp);
    if (!x->sender || gb_media_answer_sdp(&sdp, x->channel_id, s->o.local_ip, gb_media_sender_local_port(x->sender), &o)) {
        log_warn("gbsim: no media socket for %s: %s", x->channel_id, err ? uv_strerror(err) : "no memory");
        gb_media_sender_free(x->sender);
        free(x);
        sbuf_free(&sdp);
        respond(st, 500);
        return;
    }
    x->next = s->streams;
    if (s->streams) s->streams->prev = x;
    s->streams = x;
    s->stream_count++;
    s->c.streams_started++;
    x->dlg = ua_answer_invite(s->ua, st, 200, STR_NULL, NULL, 0, STR_LIT("application/sdp"), sbuf_str(&sdp),
                              &stream_dlg_cb, x);
    sbuf_free(&sdp);
    if (!x->dlg) {
        respond(st, 500);
        stream_free(x, false);
        return;
    }
    log_info("gbsim: INVITE for %s: %s %s to %s ssrc %s t=%lld-%lld", x->channel_id, o.session,
             gb_media_proto_name(o.proto), o.remote_text, o.ssrc_text, (long long)o.start, (long long)o.end);
}

/* ---- the stack's glue (what worker.c does for the daemon) ---- */

static void on_request(void *user, struct txn *st, const struct transport_rx *rx)
{
    struct sim *s = user;
    const struct sip_msg *m = rx->msg;
    if (ua_on_request(s->ua, st, rx)) return;
    if (m->method == SIP_SUBSCRIBE && m->to.tag.len) {
        on_subscribe_refresh(s, st, m);
        return;
    }
    if (m->method == SIP_CANCEL) {
        struct txn *inv = txn_find_invite_for_cancel(s->w.txn, rx);
        respond(st, inv ? 200 : 481);
        if (inv && txn_last_status(inv) < 200) respond(inv, 487);
        return;
    }
    uint32_t i;
    int ch;
    str_t target = m->ruri.user.len ? m->ruri.user : m->to.uri.user;
    if (m->to.tag.len || route_id(s, target, &i, &ch) != 0) {
        respond(st, m->to.tag.len ? 481 : 404);
        return;
    }
    if (s->stopping) {
        respond(st, 503);
        return;
    }
    switch (m->method) {
    case SIP_MESSAGE: on_message(s, i, ch, st, rx); break;
    case SIP_INVITE: on_invite(s, i, ch, st, rx); break;
    case SIP_OPTIONS: respond(st, 200); break;
    case SIP_SUBSCRIBE: on_subscribe(s, i, st, rx); break;
    default: respond(st, 405); break;
    }
}

static void on_ack(void *user, const struct transport_rx *rx) { ua_on_ack(((struct sim *)user)->ua, rx); }
static void on_stray(void *user, const struct transport_rx *rx) { ua_on_response(((struct sim *)user)->ua, rx); }

static int txn_send(void *user, struct transport_dest *dest, const void *data, size_t len)
{
    struct sim *s = user;
    return s->w.transport ? transport_send(s->w.transport, dest, data, len) : UV_ENOTCONN;
}

static uint64_t clock_cb(void *user) { return uv_now(((struct sim *)user)->w.loop); }

static void on_sip(void *user, const struct transport_rx *rx)
{
    struct sim *s = user;
    if (rx->parse_error) return; /* the transport logged it */
    txn_layer_receive(s->w.txn, rx);
}

static void on_conn_lost(void *user, uint64_t conn_id, const struct sockaddr_storage *peer, const char *reason)
{
    (void)peer;
    struct sim *s = user;
    txn_layer_conn_lost(s->w.txn, conn_id);
    int64_t i = conn_index_get(s, conn_id);
    if (i < 0 || s->conns[i] != conn_id) return;
    s->conns[i] = 0;
    struct sim_dev *d = &s->devs[i];
    log_debug("gbsim: device %lld lost its connection: %s", (long long)i, reason);
    if (s->stopping || d->state != DEV_REGISTERED) return;
    /* The upper sees the device go offline at once (TCP loss); register
     * again after a short random wait so a restarted upper is not flooded. */
    dev_unregistered(s, d);
    d->state = DEV_FAILED;
    if (d->pending) ua_request_detach(d->pending);
    d->pending = NULL;
    d->pend = PEND_NONE;
    sim_arm(s, d, sim_now(s) + 500 + sim_rand(s) % 3000);
}

static void on_uv_timer(uv_timer_t *h)
{
    struct sim *s = h->data;
    timer_run(&s->w.timers, uv_now(s->w.loop));
}

static void on_prepare(uv_prepare_t *h)
{
    struct sim *s = h->data;
    uint64_t next = timer_next_deadline(&s->w.timers);
    if (next == UINT64_MAX) {
        uv_timer_stop(&s->timer_handle);
        return;
    }
    uint64_t now = uv_now(s->w.loop);
    uv_timer_start(&s->timer_handle, on_uv_timer, next > now ? next - now : 0, 0);
}

/* ---- publishing (device thread -> reporter) ---- */

static void publish(struct sim *s)
{
    struct sim_shared *sh = s->sh;
    struct txn_stats ts;
    if (s->w.txn) txn_layer_stats(s->w.txn, &ts);
    else memset(&ts, 0, sizeof(ts));
    uv_mutex_lock(&sh->mu);
    sh->c = s->c;
    sh->registered = s->registered;
    sh->max_registered = s->max_registered;
    sh->stream_count = s->stream_count;
    sh->txns = ts.client_live + ts.server_live;
    if (s->all_registered_ms && !sh->all_registered_ms)
        sh->all_registered_ms = uv_hrtime() / 1000000u - (sim_now(s) - s->all_registered_ms);
    gbsim_hist_merge(&sh->rtt, &s->rtt);
    gbsim_hist_merge(&sh->lag, &s->lag);
    uv_mutex_unlock(&sh->mu);
    memset(&s->rtt, 0, sizeof(s->rtt));
    memset(&s->lag, 0, sizeof(s->lag));
}

/* ---- start and stop (device thread) ---- */

static void close_if_open(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h)) uv_close(h, NULL);
}

static void sim_close(struct sim *s)
{
    if (s->closing) return;
    s->closing = true;
    while (s->streams) stream_free(s->streams, true); /* counts their packets */
    if (s->devs)
        for (uint32_t i = 0; i < s->o.devices; i++) {
            struct sim_dev *d = &s->devs[i];
            gbsim_wheel_del(&s->wheel, &d->timer);
            if (d->pending) ua_request_detach(d->pending);
            d->pending = NULL;
        }
    publish(s);
    /* The reporter sends no wake-up from now on (under the lock: a send in
     * flight finishes before the handle goes). */
    uv_mutex_lock(&s->sh->mu);
    s->sh->no_wake = true;
    uv_mutex_unlock(&s->sh->mu);
    ua_free(s->ua);
    s->ua = NULL;
    if (s->w.transport) transport_free(s->w.transport);
    s->w.transport = NULL;
    close_if_open((uv_handle_t *)&s->wake);
    close_if_open((uv_handle_t *)&s->tick);
    close_if_open((uv_handle_t *)&s->wheel_timer);
    uv_timer_stop(&s->timer_handle);
    close_if_open((uv_handle_t *)&s->timer_handle);
    close_if_open((uv_handle_t *)&s->prepare);
}

static void sim_stop(struct sim *s)
{
    if (s->stopping) return;
    s->stopping = true;
    if (!s->o.unregister) {
        sim_close(s);
        return;
    }
    /* Expires: 0 for every registered device, then close (or after 5 s). */
    s->stopping = false; /* let answers be processed */
    for (uint32_t i = 0; i < s->o.devices; i++) {
        struct sim_dev *d = &s->devs[i];
        gbsim_wheel_del(&s->wheel, &d->timer);
        if (d->state != DEV_REGISTERED) {
            d->state = DEV_DONE;
            continue;
        }
        if (d->pending) ua_request_detach(d->pending);
        d->pending = NULL;
        d->state = DEV_UNREGISTERING;
        s->registered--;
        s->unregister_pending++;
        send_register(d, 0);
    }
    s->stopping = true;
    s->unregister_deadline = sim_now(s) + 5000;
}

static void on_tick(uv_timer_t *h)
{
    struct sim *s = h->data;
    if (s->closing) return;
    /* The registration ramp leaves freed transactions in glibc's arenas;
     * give them back now and then so RSS shows what the devices hold. */
    uint64_t ms = sim_now(s) - s->start_ms;
    if (s->all_registered_ms && ms / SIM_PUBLISH_MS % (30000 / SIM_PUBLISH_MS) == 0) malloc_trim(0);
    if (s->stopping) {
        if (!s->unregister_pending || sim_now(s) >= s->unregister_deadline) sim_close(s);
        return;
    }
    subs_run(s);
    publish(s);
}

static void on_wheel(uv_timer_t *h)
{
    struct sim *s = h->data;
    gbsim_wheel_run(&s->wheel, uv_now(s->w.loop), SIM_WHEEL_BUDGET);
}

/* The reporter asks to stop: the first time cleanly, then at once. */
static void on_wake(uv_async_t *h)
{
    struct sim *s = h->data;
    if (s->stopping) sim_close(s);
    else sim_stop(s);
}

static int sim_start(struct sim *s, uv_loop_t *loop)
{
    struct worker *w = &s->w;
    config_init(&w->cfg);
    snprintf(w->cfg.sip.user_agent, sizeof(w->cfg.sip.user_agent), "cascade-gbsim");
    w->loop = loop;
    timer_service_init(&w->timers);
    snprintf(w->local.host, sizeof(w->local.host), "%s", s->o.local_ip);
    uv_random(NULL, NULL, &s->run_id, sizeof(s->run_id), 0, NULL);
    s->rng = s->run_id | 1;
    w->tag_state = s->run_id | 1;
    uv_timer_init(loop, &s->timer_handle);
    s->timer_handle.data = s;
    uv_prepare_init(loop, &s->prepare);
    s->prepare.data = s;
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    uv_timer_init(loop, &s->wheel_timer);
    s->wheel_timer.data = s;
    uv_update_time(loop);
    if (gbsim_wheel_init(&s->wheel, SIM_WHEEL_SLOTS, SIM_WHEEL_TICK_MS, uv_now(loop), dev_timer_cb, s) != 0) return -1;

    struct transport_config tcfg = {.tcp_max_connections = s->o.devices + 1024};
    sip_parse_limits_default(&tcfg.limits);
    struct transport_callbacks tcb = {.user = s, .on_message = on_sip, .on_conn_lost = on_conn_lost, .now_ms = clock_cb};
    w->transport = transport_new(loop, &w->timers, &tcfg, &tcb);
    if (!w->transport) return -1;
    int nsock = s->o.proto == SIP_TRANSPORT_UDP ? s->o.sockets : 1;
    for (int k = 0; k < nsock; k++) {
        uint16_t port = s->o.local_port ? (uint16_t)(s->o.local_port + k) : 0;
        int id = transport_listen(w->transport, SIP_TRANSPORT_UDP, s->o.local_ip, port);
        if (id < 0) {
            log_error("gbsim: cannot bind UDP %s:%u: %s", s->o.local_ip, port, uv_strerror(id));
            return -1;
        }
        s->listeners[s->nlisteners++] = (uint32_t)id;
        if (!w->local.port[SIP_TRANSPORT_UDP]) w->local.port[SIP_TRANSPORT_UDP] = (uint16_t)transport_listener_port(w->transport, (uint32_t)id);
    }
    if (s->o.proto == SIP_TRANSPORT_TCP) {
        /* Outgoing connections carry the requests; the listener is what
         * Contact names (most uppers answer over the device's connection). */
        int id = transport_listen(w->transport, SIP_TRANSPORT_TCP, s->o.local_ip, w->local.port[SIP_TRANSPORT_UDP]);
        if (id > 0) w->local.port[SIP_TRANSPORT_TCP] = (uint16_t)transport_listener_port(w->transport, (uint32_t)id);
        s->conns = calloc(s->o.devices, sizeof(*s->conns));
        uint32_t cap = 1024;
        while (cap < s->o.devices * 2u) cap *= 2;
        s->conn_index = calloc((size_t)cap * 2, sizeof(*s->conn_index));
        s->conn_index_mask = cap - 1;
        if (!s->conns || !s->conn_index) return -1;
    }
    struct txn_config xcfg = {.limits = tcfg.limits};
    struct txn_layer_ops ops = {.user = s, .send = txn_send, .on_request = on_request, .on_ack = on_ack,
                                .on_stray_response = on_stray, .now_ms = clock_cb};
    w->txn = txn_layer_new(&w->timers, &xcfg, &ops);
    /* The UA reads the time through the timer service (timer_now). */
    w->timers.clock = clock_cb;
    w->timers.clock_arg = s;
    worker_fill_local(w);
    s->ua = w->txn ? ua_new(&w->cfg.sip, &w->local, &w->timers, w->txn, w->transport, 0) : NULL;
    if (!s->ua) return -1;
    if (ua_dest_from_host(s->o.target_host, s->o.target_port, s->o.proto, 0, &s->target) != 0) {
        log_error("gbsim: --target host must be a numeric address");
        return -1;
    }

    char err[256];
    if (s->o.media[0]) s->clip = gb_media_clip_load(s->o.media, err, sizeof(err));
    else {
        size_t len;
        const uint8_t *data = gb_media_builtin_clip(&len);
        s->clip = gb_media_clip_from_buffer(data, len, err, sizeof(err));
    }
    if (!s->clip) {
        log_error("gbsim: media: %s", err);
        return -1;
    }

    s->devs = calloc(s->o.devices, sizeof(*s->devs));
    if (!s->devs) return -1;
    uv_prepare_start(&s->prepare, on_prepare);
    uv_timer_start(&s->tick, on_tick, SIM_PUBLISH_MS, SIM_PUBLISH_MS);
    uv_timer_start(&s->wheel_timer, on_wheel, SIM_WHEEL_TICK_MS, SIM_WHEEL_TICK_MS);

    uv_update_time(loop);
    s->start_ms = uv_now(loop);
    /* The ramp: device i starts at i / rate seconds, plus its jitter. */
    for (uint32_t i = 0; i < s->o.devices; i++) {
        struct sim_dev *d = &s->devs[i];
        d->sim = s;
        uint64_t at = s->start_ms + (uint64_t)((double)i * 1000.0 / s->o.rate) + jitter(s);
        sim_arm(s, d, at);
    }
    return 0;
}

static void sim_free(struct sim *s)
{
    if (s->w.txn) txn_layer_free(s->w.txn);
    s->w.txn = NULL;
    timer_service_free(&s->w.timers);
    gb_media_clip_unref(s->clip);
    gbsim_wheel_free(&s->wheel);
    free(s->devs);
    free(s->subs);
    free(s->conns);
    free(s->conn_index);
}

/* A device thread: its own loop (initialised with its wake-up handle by the
 * main thread before the thread starts), stack, sockets and devices. */
static void sim_thread(void *arg)
{
    struct sim *s = arg;
    int rc = sim_start(s, &s->loop);
    if (rc != 0) {
        log_error("gbsim: thread %d: start-up failed", s->thread_index);
        s->stopping = true;
        sim_close(s);
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);
    sim_free(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    uv_mutex_lock(&s->sh->mu);
    s->sh->failed = rc != 0;
    s->sh->done = true;
    uv_mutex_unlock(&s->sh->mu);
}

/* ---- the reporter (main thread) ---- */

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

struct reporter {
    struct sim_opts o;             /* the whole run's options */
    struct sim **sims;
    int nthreads;
    uv_loop_t *loop;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    uint64_t start_ms, stop_at_ms; /* uv_hrtime ms */
    double cpu_at_start;
    bool stop_sent, closing;
    /* sums over the threads */
    struct sim_counts c, last;
    uint32_t registered, max_registered, streams, txns;
    uint64_t all_registered_ms;
    struct gbsim_hist rtt, lag;        /* this second */
    struct gbsim_hist rtt_all, lag_all; /* the whole run */
    int done, failed;
};

static uint64_t hr_ms(void) { return uv_hrtime() / 1000000u; }

static void add_counts(struct sim_counts *a, const struct sim_counts *b)
{
    const uint64_t *src = (const uint64_t *)b;
    uint64_t *dst = (uint64_t *)a;
    for (size_t i = 0; i < sizeof(*a) / sizeof(uint64_t); i++) dst[i] += src[i];
}

static void collect(struct reporter *r)
{
    memset(&r->c, 0, sizeof(r->c));
    memset(&r->rtt, 0, sizeof(r->rtt));
    memset(&r->lag, 0, sizeof(r->lag));
    r->registered = r->streams = r->txns = 0;
    r->done = r->failed = 0;
    uint64_t all = 0;
    int all_n = 0;
    uint32_t max_reg = 0;
    for (int k = 0; k < r->nthreads; k++) {
        struct sim_shared *sh = r->sims[k]->sh;
        uv_mutex_lock(&sh->mu);
        add_counts(&r->c, &sh->c);
        r->registered += sh->registered;
        max_reg += sh->max_registered;
        r->streams += sh->stream_count;
        r->txns += sh->txns;
        if (sh->all_registered_ms) {
            all_n++;
            if (sh->all_registered_ms > all) all = sh->all_registered_ms;
        }
        gbsim_hist_merge(&r->rtt, &sh->rtt);
        gbsim_hist_merge(&r->lag, &sh->lag);
        memset(&sh->rtt, 0, sizeof(sh->rtt));
        memset(&sh->lag, 0, sizeof(sh->lag));
        r->done += sh->done;
        r->failed += sh->failed;
        uv_mutex_unlock(&sh->mu);
    }
    if (max_reg > r->max_registered) r->max_registered = max_reg;
    if (r->registered > r->max_registered) r->max_registered = r->registered;
    if (all_n == r->nthreads && !r->all_registered_ms) r->all_registered_ms = all;
    gbsim_hist_merge(&r->rtt_all, &r->rtt);
    gbsim_hist_merge(&r->lag_all, &r->lag);
}

#define D(f) (unsigned long long)c->f, (unsigned long long)(c->f - p->f)

static void print_tick(struct reporter *r)
{
    struct sim_counts *c = &r->c, *p = &r->last;
    printf("t=%llus registered=%u/%u reg_sent=%llu(+%llu) reg_ok=%llu(+%llu) reg_fail=%llu(+%llu) "
           "reg_503=%llu(+%llu) ka_sent=%llu(+%llu) ka_ok=%llu(+%llu) ka_timeout=%llu(+%llu) ka_fail=%llu(+%llu) "
           "lag_ms=%u/%u rtt_ms=%u/%u lost=%llu streams=%u queries=%llu txns=%u rss=%ldKiB\n",
           (unsigned long long)((hr_ms() - r->start_ms) / 1000), r->registered, r->o.devices, D(reg_sent), D(reg_ok),
           D(reg_fail), D(reg_503), D(ka_sent), D(ka_ok), D(ka_timeout), D(ka_fail), gbsim_hist_quantile(&r->lag, 0.99),
           r->lag.max, gbsim_hist_quantile(&r->rtt, 0.5), gbsim_hist_quantile(&r->rtt, 0.99),
           (unsigned long long)c->lost, r->streams, (unsigned long long)c->queries, r->txns, rss_kib());
    fflush(stdout);
    r->last = r->c;
}

static void summary(struct reporter *r)
{
    uint64_t wall = hr_ms() - r->start_ms;
    double cpu = cpu_seconds() - r->cpu_at_start;
    long rss = rss_kib();
    const struct sim_counts *c = &r->c;
    double ramp = r->all_registered_ms ? (double)(r->all_registered_ms - r->start_ms) / 1000.0 : -1;
    uint32_t rtt50 = gbsim_hist_quantile(&r->rtt_all, 0.5), rtt99 = gbsim_hist_quantile(&r->rtt_all, 0.99);
    uint32_t lag99 = gbsim_hist_quantile(&r->lag_all, 0.99);
    printf("summary: devices=%u channels=%u transport=%s threads=%d duration=%.1fs registered=%u max_registered=%u "
           "ramp=%.2fs reg_sent=%llu reg_ok=%llu reg_fail=%llu reg_503=%llu reg_retry_after=%llu ka_sent=%llu "
           "ka_ok=%llu ka_fail=%llu ka_timeout=%llu ka_refused=%llu lost=%llu queries=%llu invites=%llu streams=%llu "
           "rtp_packets=%llu lag_p99=%ums lag_max=%ums rtt_p50=%ums rtt_p99=%ums cpu=%.2fs cpu_share=%.1f%% "
           "rss=%ldKiB rss_per_device=%.0fB\n",
           r->o.devices, r->o.channels, r->o.proto == SIP_TRANSPORT_TCP ? "tcp" : "udp", r->nthreads, wall / 1000.0,
           r->registered, r->max_registered, ramp, (unsigned long long)c->reg_sent, (unsigned long long)c->reg_ok,
           (unsigned long long)c->reg_fail, (unsigned long long)c->reg_503, (unsigned long long)c->reg_retry_after,
           (unsigned long long)c->ka_sent, (unsigned long long)c->ka_ok, (unsigned long long)c->ka_fail,
           (unsigned long long)c->ka_timeout, (unsigned long long)c->ka_refused, (unsigned long long)c->lost,
           (unsigned long long)c->queries, (unsigned long long)c->invites, (unsigned long long)c->streams_started,
           (unsigned long long)c->rtp_packets, lag99, r->lag_all.max, rtt50, rtt99, cpu,
           wall ? 100.0 * cpu / (wall / 1000.0) : 0, rss, r->o.devices ? rss * 1024.0 / r->o.devices : 0);
    fflush(stdout);
    if (!r->o.json_path[0]) return;
    json_t *j = json_pack("{s:i,s:i,s:s,s:i,s:f,s:i,s:i,s:f}", "devices", (int)r->o.devices, "channels",
                          (int)r->o.channels, "transport", r->o.proto == SIP_TRANSPORT_TCP ? "tcp" : "udp", "threads",
                          r->nthreads, "duration_s", wall / 1000.0, "registered", (int)r->registered,
                          "max_registered", (int)r->max_registered, "ramp_s", ramp);
    struct { const char *k; uint64_t v; } ints[] = {
        {"reg_sent", c->reg_sent}, {"reg_ok", c->reg_ok}, {"reg_fail", c->reg_fail}, {"reg_503", c->reg_503},
        {"reg_retry_after", c->reg_retry_after}, {"ka_sent", c->ka_sent}, {"ka_ok", c->ka_ok},
        {"ka_fail", c->ka_fail}, {"ka_timeout", c->ka_timeout}, {"ka_refused", c->ka_refused}, {"lost", c->lost},
        {"queries", c->queries}, {"invites", c->invites}, {"streams", c->streams_started},
        {"rtp_packets", c->rtp_packets}, {"playbacks", c->playbacks}, {"rtsp_play", c->rtsp_play},
        {"rtsp_pause", c->rtsp_pause}, {"rtsp_scale", c->rtsp_scale}, {"rtsp_seek", c->rtsp_seek},
        {"rtsp_bad", c->rtsp_bad}, {"media_status", c->media_status}, {"lag_p99_ms", lag99}, {"lag_max_ms", r->lag_all.max},
        {"rtt_p50_ms", rtt50}, {"rtt_p99_ms", rtt99}, {"rss_kib", (uint64_t)rss}};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        json_object_set_new(j, ints[i].k, json_integer((json_int_t)ints[i].v));
    json_object_set_new(j, "cpu_s", json_real(cpu));
    json_object_set_new(j, "cpu_share", json_real(wall ? cpu / (wall / 1000.0) : 0.0));
    if (!strcmp(r->o.json_path, "-")) json_dumpf(j, stdout, JSON_COMPACT), printf("\n");
    else if (json_dump_file(j, r->o.json_path, JSON_INDENT(2)) != 0) log_error("gbsim: cannot write %s", r->o.json_path);
    json_decref(j);
}

static void reporter_stop(struct reporter *r)
{
    r->stop_sent = true;
    for (int k = 0; k < r->nthreads; k++) {
        struct sim_shared *sh = r->sims[k]->sh;
        uv_mutex_lock(&sh->mu);
        if (!sh->no_wake) uv_async_send(&r->sims[k]->wake);
        uv_mutex_unlock(&sh->mu);
    }
}

static void reporter_tick(uv_timer_t *h)
{
    struct reporter *r = h->data;
    collect(r);
    if (r->done == r->nthreads) {
        uv_close((uv_handle_t *)&r->tick, NULL);
        uv_close((uv_handle_t *)&r->sigint, NULL);
        uv_close((uv_handle_t *)&r->sigterm, NULL);
        return;
    }
    if (r->failed && !r->stop_sent) reporter_stop(r);
    if (!r->stop_sent && !r->o.quiet) print_tick(r);
    if (r->stop_at_ms && hr_ms() >= r->stop_at_ms && !r->stop_sent) reporter_stop(r);
}

static void reporter_signal(uv_signal_t *h, int sig)
{
    struct reporter *r = h->data;
    log_info("gbsim: signal %d, stopping", sig);
    reporter_stop(r); /* a second signal: the threads close at once */
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cascade-gbsim --target IP:PORT [options]\n"
            "  --target IP:PORT        the upper platform to register to (required)\n"
            "  --target-id ID          its 20-digit GB id (34020000002000000001)\n"
            "  --target-domain D       host part of the Request-URI (first 10 digits of the id)\n"
            "  --transport udp|tcp     signalling transport (udp)\n"
            "  --local-ip IP           address to bind (127.0.0.1)\n"
            "  --local-port P          first UDP port (0: ephemeral)\n"
            "  --sockets K             UDP sockets per thread, shared by its devices (4)\n"
            "  --threads N             threads, each with its own loop, sockets and slice of devices (1)\n"
            "  --devices N             devices to simulate (1)\n"
            "  --channels M            channels per device (1)\n"
            "  --base-id ID            id of the first device (34020000001320000001)\n"
            "  --password P            digest password (12345678)\n"
            "  --expires S             REGISTER Expires (3600)\n"
            "  --keepalive S           keepalive interval (60)\n"
            "  --keepalive-misses K    failed keepalives before registering again (3)\n"
            "  --rate R                registrations started per second (1000)\n"
            "  --jitter MS             random start delay per device, 0..MS (0)\n"
            "  --duration S            stop after S seconds (0: until SIGINT)\n"
            "  --unregister            send Expires: 0 for every device at the end\n"
            "  --charset GB2312|UTF-8  body charset (GB2312)\n"
            "  --catalog-items K       catalog items per Response MESSAGE (4)\n"
            "  --alarm-every S         within an alarm subscription, an alarm NOTIFY every S seconds (0: none)\n"
            "  --catalog-add-after S   within a catalog subscription, one new channel (ADD) after S seconds (0: none)\n"
            "  --media FILE            H.264 or H.265 Annex B clip to stream (built-in test clip)\n"
            "  --audio pcma|pcmu|none  G.711 audio (a 440 Hz tone) in the PS beside the video (pcma)\n"
            "  --quiet                 no per-second lines\n"
            "  --json FILE             write the final summary as JSON ('-': stdout)\n"
            "  --subscribe-log FILE    append each SUBSCRIBE received and its answer as a JSON line\n"
            "  --log-level L           error|warn|info|debug (warn)\n");
}

static int parse_u32(const char *v, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (end == v || *end || n < min || n > max) return -1;
    *out = (uint32_t)n;
    return 0;
}

static int parse_opts(int argc, char **argv, struct sim_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->target_id, sizeof(o->target_id), "34020000002000000001");
    o->proto = SIP_TRANSPORT_UDP;
    snprintf(o->local_ip, sizeof(o->local_ip), "127.0.0.1");
    o->sockets = 4;
    o->threads = 1;
    o->devices = 1;
    o->channels = 1;
    snprintf(o->base_id, sizeof(o->base_id), "34020000001320000001");
    snprintf(o->password, sizeof(o->password), "12345678");
    o->expires = 3600;
    o->keepalive = 60;
    o->keepalive_misses = 3;
    o->rate = 1000;
    o->charset = GB_CHARSET_GB2312;
    o->catalog_items = 4;
    o->audio = GB_MEDIA_AUDIO_PCMA;
    const char *level = "warn";
    static const struct option longopts[] = {
        {"target", required_argument, NULL, 't'}, {"target-id", required_argument, NULL, 'I'},
        {"target-domain", required_argument, NULL, 'D'}, {"transport", required_argument, NULL, 'T'},
        {"local-ip", required_argument, NULL, 'l'}, {"local-port", required_argument, NULL, 'p'},
        {"sockets", required_argument, NULL, 'k'}, {"devices", required_argument, NULL, 'n'},
        {"channels", required_argument, NULL, 'm'}, {"base-id", required_argument, NULL, 'b'},
        {"password", required_argument, NULL, 'P'}, {"expires", required_argument, NULL, 'e'},
        {"keepalive", required_argument, NULL, 'K'}, {"keepalive-misses", required_argument, NULL, 'M'},
        {"rate", required_argument, NULL, 'r'}, {"jitter", required_argument, NULL, 'j'},
        {"duration", required_argument, NULL, 'd'}, {"unregister", no_argument, NULL, 'u'},
        {"charset", required_argument, NULL, 'c'}, {"catalog-items", required_argument, NULL, 'C'},
        {"media", required_argument, NULL, 'F'},
        {"audio", required_argument, NULL, 'A'}, {"quiet", no_argument, NULL, 'q'},
        {"json", required_argument, NULL, 'J'}, {"log-level", required_argument, NULL, 'L'},
        {"threads", required_argument, NULL, 'N'}, {"alarm-every", required_argument, NULL, 'a'},
        {"catalog-add-after", required_argument, NULL, 'G'}, {"subscribe-log", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt;
    uint32_t v;
    bool have_target = false;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 't': {
            const char *colon = strrchr(optarg, ':');
            if (!colon || (size_t)(colon - optarg) >= sizeof(o->target_host) || parse_u32(colon + 1, 1, 65535, &v)) {
                fprintf(stderr, "cascade-gbsim: --target IP:PORT\n");
                return -1;
            }
            snprintf(o->target_host, sizeof(o->target_host), "%.*s", (int)(colon - optarg), optarg);
            o->target_port = (uint16_t)v;
            have_target = true;
            break;
        }
        case 'I': snprintf(o->target_id, sizeof(o->target_id), "%s", optarg); break;
        case 'D': snprintf(o->target_domain, sizeof(o->target_domain), "%s", optarg); break;
        case 'T':
            if (!strcasecmp(optarg, "udp")) o->proto = SIP_TRANSPORT_UDP;
            else if (!strcasecmp(optarg, "tcp")) o->proto = SIP_TRANSPORT_TCP;
            else return -1;
            break;
        case 'l': snprintf(o->local_ip, sizeof(o->local_ip), "%s", optarg); break;
        case 'p': if (parse_u32(optarg, 0, 65535, &v)) return -1; o->local_port = (uint16_t)v; break;
        case 'k': if (parse_u32(optarg, 1, SIM_MAX_SOCKETS, &v)) return -1; o->sockets = (int)v; break;
        case 'n': if (parse_u32(optarg, 1, 1000000, &o->devices)) return -1; break;
        case 'm': if (parse_u32(optarg, 0, SIM_MAX_CHANNELS, &o->channels)) return -1; break;
        case 'b': snprintf(o->base_id, sizeof(o->base_id), "%s", optarg); break;
        case 'P': snprintf(o->password, sizeof(o->password), "%s", optarg); break;
        case 'e': if (parse_u32(optarg, 1, 86400, &v)) return -1; o->expires = (int)v; break;
        case 'K': if (parse_u32(optarg, 1, 3600, &v)) return -1; o->keepalive = (int)v; break;
        case 'M': if (parse_u32(optarg, 1, 100, &v)) return -1; o->keepalive_misses = (int)v; break;
        case 'r': if (parse_u32(optarg, 1, 1000000, &v)) return -1; o->rate = v; break;
        case 'j': if (parse_u32(optarg, 0, 3600000, &o->jitter_ms)) return -1; break;
        case 'd': if (parse_u32(optarg, 0, 86400 * 7, &o->duration_s)) return -1; break;
        case 'u': o->unregister = true; break;
        case 'c': if (gb_charset_from_name(optarg, &o->charset)) return -1; break;
        case 'C': if (parse_u32(optarg, 1, 64, &v)) return -1; o->catalog_items = (int)v; break;
        case 'F': snprintf(o->media, sizeof(o->media), "%s", optarg); break;
        case 'A':
            if (!strcasecmp(optarg, "pcma")) o->audio = GB_MEDIA_AUDIO_PCMA;
            else if (!strcasecmp(optarg, "pcmu")) o->audio = GB_MEDIA_AUDIO_PCMU;
            else if (!strcasecmp(optarg, "none")) o->audio = GB_MEDIA_AUDIO_NONE;
            else return -1;
            break;
        case 'q': o->quiet = true; break;
        case 'N': if (parse_u32(optarg, 1, SIM_MAX_THREADS, &v)) return -1; o->threads = (int)v; break;
        case 'a': if (parse_u32(optarg, 0, 86400, &o->alarm_every_s)) return -1; break;
        case 'G': if (parse_u32(optarg, 0, 86400, &o->catalog_add_after_s)) return -1; break;
        case 'J': snprintf(o->json_path, sizeof(o->json_path), "%s", optarg); break;
        case 'S': snprintf(o->sub_log, sizeof(o->sub_log), "%s", optarg); break;
        case 'L': level = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (optind != argc || !have_target) return -1;
    if (!gb_id_valid(str_from_cstr(o->target_id)) || !gb_id_valid(str_from_cstr(o->base_id))) {
        fprintf(stderr, "cascade-gbsim: ids must be 20 digits\n");
        return -1;
    }
    if (!memcmp(o->base_id + 10, "131", 3)) {
        fprintf(stderr, "cascade-gbsim: --base-id must not use type 131 (channels use it)\n");
        return -1;
    }
    if (!o->target_domain[0]) snprintf(o->target_domain, sizeof(o->target_domain), "%.10s", o->target_id);
    int lv = log_level_from_name(level);
    if (lv < 0) return -1;
    log_set_level((enum log_level)lv);
    return 0;
}

/* Thread k's share of the run: a contiguous slice of the devices (ids and
 * channel ids as with one thread), its part of the rate, its own ports. */
static void slice_opts(const struct sim_opts *all, int k, int n, struct sim_opts *o, uint32_t *first)
{
    *o = *all;
    uint32_t per = all->devices / (uint32_t)n, extra = all->devices % (uint32_t)n;
    *first = per * (uint32_t)k + ((uint32_t)k < extra ? (uint32_t)k : extra);
    o->devices = per + ((uint32_t)k < extra ? 1 : 0);
    o->rate = all->rate / n;
    if (all->local_port) o->local_port = (uint16_t)(all->local_port + k * all->sockets);
    o->duration_s = 0; /* the reporter stops the threads */
}

int main(int argc, char **argv)
{
    struct reporter r;
    memset(&r, 0, sizeof(r));
    if (parse_opts(argc, argv, &r.o) != 0) {
        usage(stderr);
        return 2;
    }
    char prefix[14];
    memcpy(prefix, r.o.base_id, 13);
    prefix[13] = '\0';
    uint32_t base_num = (uint32_t)strtoul(r.o.base_id + 13, NULL, 10);
    if ((uint64_t)base_num + r.o.devices > 9999999u ||
        ((uint64_t)base_num + r.o.devices) * (r.o.channels ? r.o.channels : 1) > 9999999u) {
        fprintf(stderr, "cascade-gbsim: ids would overflow 7 digits (devices x channels < 10^7)\n");
        return 2;
    }
    if ((uint32_t)r.o.threads > r.o.devices) r.o.threads = (int)r.o.devices;
    if (r.o.local_port && r.o.local_port + r.o.threads * r.o.sockets > 65536) {
        fprintf(stderr, "cascade-gbsim: --local-port + threads x sockets passes 65535\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    xmlInitParser(); /* once, before the threads parse MANSCDP (libxml2's rule) */
    r.nthreads = r.o.threads;
    r.sims = calloc((size_t)r.nthreads, sizeof(*r.sims));
    if (!r.sims) return 1;
    for (int k = 0; k < r.nthreads; k++) {
        struct sim *s = calloc(1, sizeof(*s));
        struct sim_shared *sh = calloc(1, sizeof(*sh));
        if (!s || !sh) return 1;
        uv_mutex_init(&sh->mu);
        s->sh = sh;
        s->thread_index = k;
        uint32_t first;
        slice_opts(&r.o, k, r.nthreads, &s->o, &first);
        s->index_base = first;
        memcpy(s->prefix, prefix, sizeof(prefix));
        s->base_num = base_num + first;
        memcpy(s->domain, r.o.base_id, GB_DOMAIN_LEN);
        uv_loop_init(&s->loop);
        uv_async_init(&s->loop, &s->wake, on_wake);
        s->wake.data = s;
        r.sims[k] = s;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    r.loop = &loop;
    r.start_ms = hr_ms();
    r.cpu_at_start = cpu_seconds();
    if (r.o.duration_s) r.stop_at_ms = r.start_ms + (uint64_t)r.o.duration_s * 1000u;
    uv_timer_init(&loop, &r.tick);
    r.tick.data = &r;
    uv_timer_start(&r.tick, reporter_tick, 1000, 1000);
    uv_signal_init(&loop, &r.sigint);
    uv_signal_init(&loop, &r.sigterm);
    r.sigint.data = r.sigterm.data = &r;
    uv_signal_start(&r.sigint, reporter_signal, SIGINT);
    uv_signal_start(&r.sigterm, reporter_signal, SIGTERM);
    printf("gbsim: %u device(s) x %u channel(s) from %s to %s:%u (%s, %d thread(s) x %d socket(s)), rate %.0f/s, "
           "keepalive %d s, expires %d s\n",
           r.o.devices, r.o.channels, r.o.base_id, r.o.target_host, r.o.target_port,
           r.o.proto == SIP_TRANSPORT_TCP ? "tcp" : "udp", r.nthreads, r.o.proto == SIP_TRANSPORT_TCP ? 1 : r.o.sockets,
           r.o.rate, r.o.keepalive, r.o.expires);
    fflush(stdout);
    for (int k = 0; k < r.nthreads; k++) {
        if (uv_thread_create(&r.sims[k]->thread, sim_thread, r.sims[k]) != 0) {
            log_error("gbsim: cannot start thread %d", k);
            return 1;
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int k = 0; k < r.nthreads; k++) uv_thread_join(&r.sims[k]->thread);
    collect(&r);
    summary(&r);
    int failed = r.failed;
    uv_loop_close(&loop);
    for (int k = 0; k < r.nthreads; k++) {
        uv_mutex_destroy(&r.sims[k]->sh->mu);
        free(r.sims[k]->sh);
        free(r.sims[k]);
    }
    free(r.sims);
    return failed ? 1 : 0;
}
