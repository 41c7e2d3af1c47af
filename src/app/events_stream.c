/* events_stream.c — the cluster-wide event stream (see the header). */
#include "app/events_stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "base/log.h"
#include "base/sbuf.h"
#include "events/events.h"
#include "redis/redis_cluster.h"
#include "redis/redis_config.h"
#include "redis/redis_stream.h"

#define READ_PAGE 512           /* entries per XREAD */
#define HELD_MAX 56             /* webhook entries held at once (the renewal: 6 + ids <= 64 arguments) */
#define GROUP_NAME "webhook"
#define WRITE_BATCH 48          /* events per script call (8 + 48 <= 64 arguments) */
#define WRITE_DELAY_MS 2        /* a batch waits this long for company (one call per event costs more) */

/* KEYS: stream, seq counter. ARGV: maxlen, the node id, the node id as a
 * JSON string, then the texts of up to WRITE_BATCH events, each without
 * its {"seq":N, head. Each event takes the next global seq (the counter,
 * raised above the stream's last id if the counter was lost) and becomes
 * entry "<seq>-0" with the text {"seq":<seq>,"node":"<id>",<the rest>
 * (events_stream_entry_text; no event has a "node" of its own, events.h).
 * Returns the last seq. */
static const char WRITE_SCRIPT[] =
    "local n = #ARGV - 3 "
    "local s = redis.call('INCRBY', KEYS[2], n) "
    "local first = s - n + 1 "
    "local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1) "
    "if top[1] then local t = tonumber(string.match(top[1][1], '^(%d+)')) "
    "if t and first <= t then first = t + 1 s = t + n redis.call('SET', KEYS[2], s) end end "
    "for i = 4, #ARGV do local q = first + i - 4 "
    "redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], q .. '-0', 'e', '{\"seq\":' .. q .. ',\"node\":' .. "
    "ARGV[3] .. ',' .. ARGV[i], 'n', ARGV[2]) end "
    "return s";

/* KEYS: stream. ARGV: group, consumer, ids. Resets the idle time of the
 * ids still pending for this consumer (another node may have taken one
 * over while this one was stopped: that one is left alone). */
static const char RENEW_SCRIPT[] =
    "local n = 0 "
    "for i = 3, #ARGV do "
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1) "
    "if p[1] and p[1][2] == ARGV[2] then "
    "redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID') n = n + 1 end end "
    "return n";

struct done_note {
    uint64_t seq;
    int delivered;
};

struct es_stats {
    uint64_t written, write_failed, write_dropped, written_elsewhere;
    uint64_t read, skipped, gaps, read_errors;
    uint64_t wh_taken, wh_claimed, wh_acked, wh_renewed, wh_released, wh_errors, wh_bad;
    uint64_t last_written;
};

struct events_stream {
    uv_loop_t *loop;
    struct timer_service *timers;
    struct redis_cluster *rc;
    struct event_bus *local, *view;
    bool subscribed;
    char node_id[REDIS_STREAM_NODE_MAX];
    char node_json[REDIS_STREAM_NODE_MAX * 6 + 3]; /* node_id as a JSON string */
    char key[128], seq_key[128];
    char maxlen[16];
    uint32_t max_pending, poll_ms, claim_idle_ms, batch, ring;
    struct es_stats st;
    uint32_t write_pending;    /* events batched, queued or unanswered */
    struct timer_node flush_timer;
    sbuf_t wbuf;               /* the texts of the events not yet sent */
    size_t batch_off[WRITE_BATCH], batch_len[WRITE_BATCH];
    uint32_t nbatch;
    const char *skip_type;     /* events_stream_skip_local: the next event of this type is in already */

    /* following the stream */
    struct timer_node read_timer;
    bool read_inflight, started, synced;
    struct redis_stream_id cursor;
    uint32_t read_fails;

    /* the webhook group */
    struct timer_node group_timer, claim_timer;
    bool group_inflight, claim_inflight, group_made, pel_done;
    struct redis_stream_id pel_cursor, claim_cursor;
    uint64_t held[HELD_MAX];
    int nheld;

    /* the webhook's end reports, from its thread */
    uv_async_t async;
    pthread_mutex_t mu;
    struct done_note *notes;
    size_t nnotes, notes_cap;

    bool closing;
};

long events_stream_body_offset(const char *json, size_t len)
{
    static const char head[] = "{\"seq\":";
    size_t hl = sizeof(head) - 1, i = hl;
    if (len < hl || memcmp(json, head, hl) != 0) return -1;
    while (i < len && i - hl < 20 && json[i] >= '0' && json[i] <= '9') i++;
    if (i == hl || i >= len || json[i] != ',') return -1;
    return (long)(i + 1);
}

int events_stream_entry_text(sbuf_t *b, uint64_t seq, const char *node_json, const char *body, size_t len)
{
    sbuf_append(b, "{\"seq\":", 7);
    sbuf_append_u64(b, seq);
    sbuf_append(b, ",\"node\":", 8);
    sbuf_append_cstr(b, node_json);
    sbuf_append_char(b, ',');
    sbuf_append(b, body, len);
    return b->failed ? -1 : 0;
}

static int cmd(struct events_stream *s, int key_index, int argc, const char **argv, const size_t *lens,
               redis_cluster_cb cb)
{
    size_t l[REDIS_CLUSTER_MAX_ARGS];
    for (int i = 0; i < argc; i++) l[i] = lens && lens[i] != (size_t)-1 ? lens[i] : strlen(argv[i]);
    int rc = redis_cluster_command(s->rc, key_index, argc, argv, l, cb, s);
    return rc;
}

static bool webhook_on(const struct events_stream *s)
{
    struct event_webhook_stats st;
    event_bus_webhook_stats(s->view, &st);
    return st.enabled != 0;
}

/* ---- writing ---------------------------------------------------------- */

struct write_ctx {
    struct events_stream *s;
    uint32_t n;     /* events in the call */
};

static void on_write(void *arg, int status, const struct redisReply *r)
{
    struct write_ctx *w = arg;
    struct events_stream *s = w->s;
    uint32_t n = w->n;
    free(w);
    s->write_pending -= n;
    if (status < 0 || !r || r->type != REDIS_REPLY_INTEGER) {
        s->st.write_failed += n;
        log_warn_rl("events stream: %u events were not written (%s); failed %llu, dropped %llu", n,
                    status < 0 ? strerror(-status) : r && r->type == REDIS_REPLY_ERROR ? r->str : "odd reply",
                    (unsigned long long)s->st.write_failed, (unsigned long long)s->st.write_dropped);
        return;
    }
    s->st.written += n;
    if (r->integer > 0) s->st.last_written = (uint64_t)r->integer;
}

/* Sends what the batch holds as one script call. */
static void flush_batch(struct events_stream *s)
{
    uint32_t n = s->nbatch;
    if (!n) return;
    s->nbatch = 0;
    if (s->wbuf.failed) { /* out of memory while copying */
        sbuf_clear(&s->wbuf);
        s->wbuf.failed = false;
        s->write_pending -= n;
        s->st.write_dropped += n;
        log_warn_rl("events stream: %u events dropped (out of memory)", n);
        return;
    }
    const char *argv[REDIS_CLUSTER_MAX_ARGS];
    size_t lens[REDIS_CLUSTER_MAX_ARGS];
    int argc = 0;
#define ARG(p, l) do { argv[argc] = (p); lens[argc] = (l); argc++; } while (0)
    ARG("EVAL", 4);
    ARG(WRITE_SCRIPT, sizeof(WRITE_SCRIPT) - 1);
    ARG("2", 1);
    ARG(s->key, strlen(s->key));
    ARG(s->seq_key, strlen(s->seq_key));
    ARG(s->maxlen, strlen(s->maxlen));
    ARG(s->node_id, strlen(s->node_id));
    ARG(s->node_json, strlen(s->node_json));
    for (uint32_t i = 0; i < n; i++) ARG(s->wbuf.data + s->batch_off[i], s->batch_len[i]);
#undef ARG
    struct write_ctx *w = malloc(sizeof(*w));
    int rc = -ENOMEM;
    if (w) {
        *w = (struct write_ctx){s, n};
        rc = redis_cluster_command(s->rc, 3, argc, argv, lens, on_write, w);
        if (rc < 0) free(w);
    }
    sbuf_clear(&s->wbuf);
    if (rc < 0) {
        s->write_pending -= n;
        s->st.write_dropped += n;
        log_warn_rl("events stream: %u events dropped (the client refused them: %s); dropped %llu", n, strerror(-rc),
                    (unsigned long long)s->st.write_dropped);
    }
}

static void on_flush_timer(struct timer_node *t, uint64_t now)
{
    (void)now;
    flush_batch(container_of(t, struct events_stream, flush_timer));
}

/* Whether an event's text after its seq ("time":"...","type":"<t>",...)
 * has this type. */
static bool type_is(const char *body, size_t len, const char *type)
{
    static const char key[] = "\"type\":\"";
    size_t tl = strlen(type), kl = sizeof(key) - 1;
    const char *p = memmem(body, len < 64 ? len : 64, key, kl);
    if (!p) return false;
    size_t at = (size_t)(p - body) + kl;
    return at + tl < len && !memcmp(body + at, type, tl) && body[at + tl] == '"';
}

void events_stream_skip_local(struct events_stream *s, const char *type) { s->skip_type = type; }

void events_stream_target(const struct events_stream *s, struct events_stream_target *out)
{
    *out = (struct events_stream_target){s->key, s->seq_key, s->maxlen, s->node_id, s->node_json};
}

/* The node's own event: copied into the batch, sent WRITE_DELAY_MS after
 * the batch's first event or when the batch is full. */
static void on_local_event(uint64_t seq, const char *json, size_t len, void *arg)
{
    struct events_stream *s = arg;
    if (s->closing) return;
    long off = events_stream_body_offset(json, len);
    if (off >= 0 && s->skip_type && type_is(json + off, len - (size_t)off, s->skip_type)) {
        s->skip_type = NULL; /* its reap's script wrote it (registrar/cluster.c) */
        s->st.written_elsewhere++;
        return;
    }
    if (off < 0 || s->write_pending >= s->max_pending) {
        s->st.write_dropped++;
        log_warn_rl("events stream: event %llu dropped (%s); dropped %llu", (unsigned long long)seq,
                    off < 0 ? "unexpected text" : "too many waiting for Redis",
                    (unsigned long long)s->st.write_dropped);
        return;
    }
    s->batch_off[s->nbatch] = s->wbuf.len;
    s->batch_len[s->nbatch] = len - (size_t)off;
    sbuf_append(&s->wbuf, json + off, len - (size_t)off);
    s->nbatch++;
    s->write_pending++;
    if (s->nbatch == WRITE_BATCH) {
        if (timer_armed(&s->flush_timer)) timer_stop(s->timers, &s->flush_timer);
        flush_batch(s);
    } else if (!timer_armed(&s->flush_timer)) {
        timer_start(s->timers, &s->flush_timer, timer_now(s->timers) + WRITE_DELAY_MS, on_flush_timer);
    }
}

/* ---- following the stream into the view -------------------------------- */

static void schedule(struct events_stream *s, struct timer_node *n, uint32_t ms, timer_cb cb)
{
    if (s->closing) return;
    if (timer_armed(n)) timer_stop(s->timers, n);
    timer_start(s->timers, n, timer_now(s->timers) + ms, cb);
}

static void on_read_timer(struct timer_node *n, uint64_t now);

static int read_entry(void *arg, const struct redis_stream_entry *e)
{
    struct events_stream *s = arg;
    s->cursor = e->id;
    if (!e->text) {
        s->st.skipped++;
        log_warn_rl("events stream: entry %llu-%llu is not an event of ours: skipped", (unsigned long long)e->id.ms,
                    (unsigned long long)e->id.seq);
        return 0;
    }
    int r = event_bus_inject(s->view, e->event_seq, e->text, e->text_len);
    if (r < 0) {
        s->st.skipped++;
        return 0;
    }
    if (r == 1) {
        s->st.gaps++;
        log_warn_rl("events stream: jumped to seq %llu (entries trimmed before this node read them)",
                    (unsigned long long)e->event_seq);
    }
    s->st.read++;
    return 0;
}

static void read_failed(struct events_stream *s, const char *why)
{
    s->st.read_errors++;
    s->read_fails++;
    log_warn_rl("events stream: reading %s failed: %s", s->key, why);
    uint32_t ms = s->poll_ms << (s->read_fails < 5 ? s->read_fails : 5);
    schedule(s, &s->read_timer, ms > 2000 ? 2000 : ms, on_read_timer);
}

static int last_id(void *arg, const struct redis_stream_entry *e)
{
    *(struct redis_stream_id *)arg = e->id;
    return 0;
}

static void on_start(void *arg, int status, const struct redisReply *r)
{
    struct events_stream *s = arg;
    s->read_inflight = false;
    if (s->closing) return;
    if (status < 0 || !r || r->type == REDIS_REPLY_ERROR) {
        read_failed(s, status < 0 ? strerror(-status) : r ? r->str : "no reply");
        return;
    }
    /* The last entry's id: catch up from ring entries before it. */
    struct redis_stream_id last = {0, 0};
    if (redis_stream_parse_entries(r, 0, last_id, &last) < 0) {
        read_failed(s, "the last entry does not read");
        return;
    }
    s->cursor = (struct redis_stream_id){last.ms > s->ring ? last.ms - s->ring : 0, 0};
    s->started = true;
    s->read_fails = 0;
    log_info("events stream: %s ends at seq %llu; catching up from %llu", s->key, (unsigned long long)last.ms,
             (unsigned long long)s->cursor.ms + 1);
    schedule(s, &s->read_timer, 0, on_read_timer);
}

static void on_read(void *arg, int status, const struct redisReply *r)
{
    struct events_stream *s = arg;
    s->read_inflight = false;
    if (s->closing) return;
    if (status < 0 || !r || r->type == REDIS_REPLY_ERROR) {
        read_failed(s, status < 0 ? strerror(-status) : r ? r->str : "no reply");
        return;
    }
    int n = redis_stream_parse_read(r, s->key, strlen(s->key), read_entry, s);
    if (n < 0) {
        read_failed(s, "the reply does not read");
        return;
    }
    s->read_fails = 0;
    if (n < READ_PAGE && !s->synced) {
        s->synced = true;
        event_bus_set_ready(s->view, 1);
        log_info("events stream: caught up at seq %llu", (unsigned long long)event_bus_last_seq(s->view));
    }
    schedule(s, &s->read_timer, n >= READ_PAGE ? 0 : s->poll_ms, on_read_timer);
}

static void on_read_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct events_stream *s = container_of(n, struct events_stream, read_timer);
    if (s->closing || s->read_inflight) return;
    int rc;
    if (!s->started) {
        const char *argv[] = {"XREVRANGE", s->key, "+", "-", "COUNT", "1"};
        rc = cmd(s, 1, 6, argv, NULL, on_start);
    } else {
        char id[REDIS_STREAM_ID_MAX], count[16];
        redis_stream_id_print(s->cursor, id, sizeof(id));
        snprintf(count, sizeof(count), "%d", READ_PAGE);
        const char *argv[] = {"XREAD", "COUNT", count, "STREAMS", s->key, id};
        rc = cmd(s, 4, 6, argv, NULL, on_read);
    }
    if (rc < 0) {
        read_failed(s, strerror(-rc));
        return;
    }
    s->read_inflight = true;
}

/* ---- the webhook group -------------------------------------------------- */

static bool held(const struct events_stream *s, uint64_t seq)
{
    for (int i = 0; i < s->nheld; i++)
        if (s->held[i] == seq) return true;
    return false;
}

static void on_ack(void *arg, int status, const struct redisReply *r)
{
    struct events_stream *s = arg;
    if (status < 0 || !r || r->type != REDIS_REPLY_INTEGER) {
        s->st.wh_errors++;
        log_warn_rl("events stream: XACK failed (%s): the entry may be POSTed again by the node taking it over",
                    status < 0 ? strerror(-status) : r && r->type == REDIS_REPLY_ERROR ? r->str : "odd reply");
        return;
    }
    s->st.wh_acked += (uint64_t)(r->integer > 0 ? r->integer : 0);
}

static void ack(struct events_stream *s, struct redis_stream_id id)
{
    char ids[REDIS_STREAM_ID_MAX];
    redis_stream_id_print(id, ids, sizeof(ids));
    const char *argv[] = {"XACK", s->key, GROUP_NAME, ids};
    if (cmd(s, 1, 4, argv, NULL, on_ack) < 0) {
        s->st.wh_errors++;
        log_warn_rl("events stream: XACK of %s refused by the client", ids);
    }
}

/* An entry the group gave this node (read, or taken over). */
static int take_entry(void *arg, const struct redis_stream_entry *e)
{
    struct events_stream *s = arg;
    if (!e->text) { /* deleted, trimmed or not ours: nothing to POST */
        s->st.wh_bad++;
        ack(s, e->id);
        return 0;
    }
    if (held(s, e->event_seq)) return 0;
    if (s->nheld >= HELD_MAX || event_bus_webhook_push(s->view, e->event_seq, e->text, e->text_len) != 0) {
        /* Left pending: taken over once idle (by this node too). */
        s->st.wh_released++;
        return 0;
    }
    s->held[s->nheld++] = e->event_seq;
    return 0;
}

static int take_pel_entry(void *arg, const struct redis_stream_entry *e)
{
    struct events_stream *s = arg;
    s->pel_cursor = e->id;
    return take_entry(arg, e);
}

static void on_group_timer(struct timer_node *n, uint64_t now);

static void group_failed(struct events_stream *s, const char *what, const char *why)
{
    s->st.wh_errors++;
    log_warn_rl("events stream: %s failed: %s", what, why);
    schedule(s, &s->group_timer, s->poll_ms * 10 > 2000 ? 2000 : s->poll_ms * 10, on_group_timer);
}

static void on_group_made(void *arg, int status, const struct redisReply *r)
{
    struct events_stream *s = arg;
    s->group_inflight = false;
    if (s->closing) return;
    if (status < 0 || !r || (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)) {
        group_failed(s, "XGROUP CREATE", status < 0 ? strerror(-status) : r ? r->str : "no reply");
        return;
    }
    s->group_made = true;
    schedule(s, &s->group_timer, 0, on_group_timer);
}

static void on_group_read(void *arg, int status, const struct redisReply *r)
{
    struct events_stream *s = arg;
    s->group_inflight = false;
    if (s->closing) return;
    if (status < 0 || !r || r->type == REDIS_REPLY_ERROR) {
        if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOGROUP", 7)) s->group_made = false;
        group_failed(s, "XREADGROUP", status < 0 ? strerror(-status) : r ? r->str : "no reply");
        return;
    }
    int before = s->nheld;
    int n = redis_stream_parse_read(r, s->key, strlen(s->key), s->pel_done ? take_entry : take_pel_entry, s);
    if (n < 0) {
        group_failed(s, "XREADGROUP", "the reply does not read");
        return;
    }
    s->st.wh_taken += (uint64_t)(s->nheld - before);
    if (!s->pel_done && n == 0) s->pel_done = true;
    schedule(s, &s->group_timer, n > 0 && s->nheld < (int)s->batch ? 0 : s->poll_ms, on_group_timer);
}

static void on_group_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct events_stream *s = container_of(n, struct events_stream, group_timer);
    if (s->closing || s->group_inflight) return;
    if (!webhook_on(s) || s->nheld >= (int)s->batch) {
        schedule(s, &s->group_timer, s->poll_ms, on_group_timer);
        return;
    }
    int rc;
    if (!s->group_made) {
        /* From the stream's end: a new group does not POST the past. */
        const char *argv[] = {"XGROUP", "CREATE", s->key, GROUP_NAME, "$", "MKSTREAM"};
        rc = cmd(s, 2, 6, argv, NULL, on_group_made);
    } else {
        char count[16], id[REDIS_STREAM_ID_MAX];
        snprintf(count, sizeof(count), "%d", (int)s->batch - s->nheld);
        if (s->pel_done) snprintf(id, sizeof(id), ">");
        else redis_stream_id_print(s->pel_cursor, id, sizeof(id));
        const char *argv[] = {"XREADGROUP", "GROUP", GROUP_NAME, s->node_id, "COUNT", count, "STREAMS", s->key, id};
        rc = cmd(s, 7, 9, argv, NULL, on_group_read);
    }
    if (rc < 0) {
        group_failed(s, "a group command", strerror(-rc));
        return;
    }
    s->group_inflight = true;
}

static void on_claim_timer(struct timer_node *n, uint64_t now);

static void on_renew(void *arg, int status, const struct redisReply *r)
{
    struct events_stream *s = arg;
    if (status < 0 || !r || r->type != REDIS_REPLY_INTEGER) {
        s->st.wh_errors++;
        log_warn_rl("events stream: renewing the held webhook entries failed (%s)",
                    status < 0 ? strerror(-status) : r && r->type == REDIS_REPLY_ERROR ? r->str : "odd reply");
        return;
    }
    s->st.wh_renewed += (uint64_t)(r->integer > 0 ? r->integer : 0);
}

static void on_autoclaim(void *arg, int status, const struct redisReply *r)
{
    struct events_stream *s = arg;
    s->claim_inflight = false;
    if (s->closing) return;
    uint32_t next = s->claim_idle_ms / 4;
    if (status < 0 || !r || r->type == REDIS_REPLY_ERROR) {
        s->st.wh_errors++;
        log_warn_rl("events stream: XAUTOCLAIM failed (%s)", status < 0 ? strerror(-status) : r ? r->str : "no reply");
        if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOGROUP", 7)) s->group_made = false;
    } else {
        int before = s->nheld;
        struct redis_stream_id cur = {0, 0};
        int n = redis_stream_parse_autoclaim(r, &cur, take_entry, s);
        if (n < 0) {
            s->st.wh_errors++;
            log_warn_rl("events stream: an XAUTOCLAIM reply does not read");
        } else {
            s->claim_cursor = cur;
            int got = s->nheld - before;
            s->st.wh_claimed += (uint64_t)got;
            if (got)
                log_info("events stream: took over %d webhook entries idle for %u ms or more", got,
                         s->claim_idle_ms);
            if (cur.ms || cur.seq) next = 0; /* more to scan */
        }
    }
    schedule(s, &s->claim_timer, next, on_claim_timer);
}

static void on_claim_timer(struct timer_node *n, uint64_t now)
{
    (void)now;
    struct events_stream *s = container_of(n, struct events_stream, claim_timer);
    if (s->closing || s->claim_inflight) return;
    uint32_t quarter = s->claim_idle_ms / 4;
    if (!webhook_on(s) || !s->group_made) {
        schedule(s, &s->claim_timer, quarter, on_claim_timer);
        return;
    }
    if (s->nheld) {
        const char *argv[REDIS_CLUSTER_MAX_ARGS];
        char ids[HELD_MAX][REDIS_STREAM_ID_MAX];
        int argc = 0;
        argv[argc++] = "EVAL";
        argv[argc++] = RENEW_SCRIPT;
        argv[argc++] = "1";
        argv[argc++] = s->key;
        argv[argc++] = GROUP_NAME;
        argv[argc++] = s->node_id;
        for (int i = 0; i < s->nheld && argc < REDIS_CLUSTER_MAX_ARGS; i++) {
            redis_stream_id_print((struct redis_stream_id){s->held[i], 0}, ids[i], sizeof(ids[i]));
            argv[argc++] = ids[i];
        }
        if (cmd(s, 3, argc, argv, NULL, on_renew) < 0) s->st.wh_errors++;
    }
    int room = (int)s->batch - s->nheld;
    if (room <= 0) {
        schedule(s, &s->claim_timer, quarter, on_claim_timer);
        return;
    }
    char idle[16], count[16], start[REDIS_STREAM_ID_MAX];
    snprintf(idle, sizeof(idle), "%u", s->claim_idle_ms);
    snprintf(count, sizeof(count), "%d", room);
    redis_stream_id_print(s->claim_cursor, start, sizeof(start));
    const char *argv[] = {"XAUTOCLAIM", s->key, GROUP_NAME, s->node_id, idle, start, "COUNT", count};
    if (cmd(s, 1, 8, argv, NULL, on_autoclaim) < 0) {
        s->st.wh_errors++;
        schedule(s, &s->claim_timer, quarter, on_claim_timer);
        return;
    }
    s->claim_inflight = true;
}

/* The webhook thread's reports: any thread, the webhook's lock held. */
static void on_webhook_done(uint64_t seq, int delivered, void *arg)
{
    struct events_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    if (s->nnotes == s->notes_cap) {
        size_t cap = s->notes_cap ? s->notes_cap * 2 : 64;
        struct done_note *n = realloc(s->notes, cap * sizeof(*n));
        if (!n) { /* not acknowledged: taken over later and POSTed again */
            pthread_mutex_unlock(&s->mu);
            return;
        }
        s->notes = n;
        s->notes_cap = cap;
    }
    s->notes[s->nnotes++] = (struct done_note){seq, delivered};
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->async);
}

static void on_async(uv_async_t *h)
{
    struct events_stream *s = h->data;
    pthread_mutex_lock(&s->mu);
    struct done_note *notes = s->notes;
    size_t n = s->nnotes;
    s->notes = NULL;
    s->nnotes = s->notes_cap = 0;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < s->nheld; j++) {
            if (s->held[j] != notes[i].seq) continue;
            s->held[j] = s->held[--s->nheld];
            if (notes[i].delivered && !s->closing) ack(s, (struct redis_stream_id){notes[i].seq, 0});
            else s->st.wh_released++;
            break;
        }
    }
    free(notes);
    if (n && !s->closing && !s->group_inflight) schedule(s, &s->group_timer, 0, on_group_timer);
}

/* ---- life ---------------------------------------------------------------- */

struct events_stream *events_stream_new(uv_loop_t *loop, struct timer_service *timers, const struct redis_config *cfg,
                                        struct event_bus *local, struct event_bus *view, int ring, int *err)
{
    struct events_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->loop = loop;
    s->timers = timers;
    s->local = local;
    s->view = view;
    s->max_pending = cfg->events_max_pending ? cfg->events_max_pending : 10000;
    s->poll_ms = cfg->events_poll_ms ? cfg->events_poll_ms : 50;
    s->claim_idle_ms = cfg->events_claim_idle_ms >= 500 ? cfg->events_claim_idle_ms : 15000;
    s->batch = cfg->events_webhook_batch && cfg->events_webhook_batch <= HELD_MAX ? cfg->events_webhook_batch : 32;
    s->ring = ring > 0 ? (uint32_t)ring : 4096;
    snprintf(s->maxlen, sizeof(s->maxlen), "%u", cfg->events_maxlen ? cfg->events_maxlen : 100000);
    snprintf(s->key, sizeof(s->key), "%s{events}:stream", cfg->key_prefix);
    snprintf(s->seq_key, sizeof(s->seq_key), "%s{events}:seq", cfg->key_prefix);
    if (cfg->node_id[0]) snprintf(s->node_id, sizeof(s->node_id), "%s", cfg->node_id);
    else if (gethostname(s->node_id, sizeof(s->node_id) - 1) != 0 || !s->node_id[0])
        snprintf(s->node_id, sizeof(s->node_id), "node-%ld", (long)getpid());
    json_t *nj = json_string(s->node_id);
    char *nt = nj ? json_dumps(nj, JSON_ENCODE_ANY) : NULL;
    json_decref(nj);
    if (!nt || strlen(nt) >= sizeof(s->node_json)) {
        free(nt);
        free(s);
        *err = -EINVAL; /* not UTF-8 */
        return NULL;
    }
    snprintf(s->node_json, sizeof(s->node_json), "%s", nt);
    free(nt);
    timer_node_init(&s->read_timer);
    timer_node_init(&s->flush_timer);
    sbuf_init(&s->wbuf);
    timer_node_init(&s->group_timer);
    timer_node_init(&s->claim_timer);
    pthread_mutex_init(&s->mu, NULL);
    struct redis_cluster_config rc = {.seeds = cfg->nodes, .timeout_ms = cfg->timeout_ms,
                                      .max_queued = s->max_pending + 1024};
    s->rc = redis_cluster_new(loop, timers, &rc, err);
    if (!s->rc) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    if (uv_async_init(loop, &s->async, on_async) != 0) {
        redis_cluster_free(s->rc);
        pthread_mutex_destroy(&s->mu);
        free(s);
        *err = -EIO;
        return NULL;
    }
    s->async.data = s;
    uv_unref((uv_handle_t *)&s->async);
    if (event_subscribe(local, on_local_event, s) != 0) {
        *err = -ENOMEM;
        events_stream_free(s);
        return NULL;
    }
    s->subscribed = true;
    event_bus_make_view(view);
    event_bus_set_ready(view, 0);
    event_bus_set_webhook_done(view, on_webhook_done, s);
    schedule(s, &s->read_timer, 0, on_read_timer);
    schedule(s, &s->group_timer, 0, on_group_timer);
    schedule(s, &s->claim_timer, s->claim_idle_ms / 4, on_claim_timer);
    return s;
}

static void on_async_closed(uv_handle_t *h)
{
    struct events_stream *s = h->data;
    pthread_mutex_destroy(&s->mu);
    free(s->notes);
    sbuf_free(&s->wbuf);
    free(s);
}

void events_stream_free(struct events_stream *s)
{
    if (!s) return;
    s->closing = true;
    if (s->subscribed) event_unsubscribe(s->local, on_local_event, s);
    /* The webhook may still report: after this, nobody calls back here. */
    event_bus_set_webhook_done(s->view, NULL, NULL);
    timer_stop(s->timers, &s->flush_timer);
    if (s->nbatch && s->rc) flush_batch(s); /* cancelled below unless already on its way */
    timer_stop(s->timers, &s->read_timer);
    timer_stop(s->timers, &s->group_timer);
    timer_stop(s->timers, &s->claim_timer);
    if (s->write_pending)
        log_warn("events stream: %u events not yet written when stopping", s->write_pending);
    struct redis_cluster *rc = s->rc;
    s->rc = NULL;
    redis_cluster_free(rc); /* runs every waiting callback (-ECANCELED) */
    uv_close((uv_handle_t *)&s->async, on_async_closed);
}

const char *events_stream_node_id(const struct events_stream *s) { return s->node_id; }

void events_stream_stats_json(const struct events_stream *s, json_t *stats)
{
    json_t *o = json_object();
    if (!o) return;
    json_object_set_new(o, "node_id", json_string(s->node_id));
    json_object_set_new(o, "synced", json_boolean(s->synced));
    json_object_set_new(o, "last_seq", json_integer((json_int_t)event_bus_last_seq(s->view)));
    json_object_set_new(o, "written", json_integer((json_int_t)s->st.written));
    json_object_set_new(o, "write_failed", json_integer((json_int_t)s->st.write_failed));
    json_object_set_new(o, "write_dropped", json_integer((json_int_t)s->st.write_dropped));
    json_object_set_new(o, "written_elsewhere", json_integer((json_int_t)s->st.written_elsewhere));
    json_object_set_new(o, "write_pending", json_integer((json_int_t)s->write_pending));
    json_object_set_new(o, "read", json_integer((json_int_t)s->st.read));
    json_object_set_new(o, "skipped", json_integer((json_int_t)s->st.skipped));
    json_object_set_new(o, "gaps", json_integer((json_int_t)s->st.gaps));
    json_object_set_new(o, "read_errors", json_integer((json_int_t)s->st.read_errors));
    json_object_set_new(o, "webhook_group", json_boolean(s->group_made));
    json_object_set_new(o, "webhook_taken", json_integer((json_int_t)s->st.wh_taken));
    json_object_set_new(o, "webhook_claimed", json_integer((json_int_t)s->st.wh_claimed));
    json_object_set_new(o, "webhook_acked", json_integer((json_int_t)s->st.wh_acked));
    json_object_set_new(o, "webhook_renewed", json_integer((json_int_t)s->st.wh_renewed));
    json_object_set_new(o, "webhook_released", json_integer((json_int_t)s->st.wh_released));
    json_object_set_new(o, "webhook_skipped", json_integer((json_int_t)s->st.wh_bad));
    json_object_set_new(o, "webhook_errors", json_integer((json_int_t)s->st.wh_errors));
    json_object_set_new(o, "webhook_held", json_integer(s->nheld));
    json_object_set_new(stats, "events_stream", o);
}
