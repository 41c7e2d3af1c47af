/* twcc.c — transport-wide congestion control: feedback we send publishers,
 * feedback we read from viewers, and the estimator (see twcc.h). */
#include "media/twcc.h"

#include <errno.h>
#include <string.h>

#include "media/forward.h"

#define TWCC_TICK_US 250               /* a receive delta's unit */
#define TWCC_REF_US 64000              /* a reference time's unit */
#define TWCC_MIN_BPS 30000ULL
#define TWCC_MAX_BPS 100000000ULL
#define TWCC_WINDOW_US 1000000         /* delivered rate measured over this much arrival time */
#define TWCC_HOLD_US 300000            /* at most one cut per this (about an RTT and a feedback) */
#define TWCC_GROW_US 1000              /* gradient (µs per feedback) above which the queue grows */

/* ---- the header extension ---- */

static uint8_t *ext_at(const uint8_t *pkt, size_t len, uint8_t id)
{
    struct fwd_rtp h;
    size_t vlen = 0;
    if (!id || forward_rtp_parse(pkt, len, &h) < 0) return NULL;
    const uint8_t *v = forward_rtp_ext(pkt, &h, id, &vlen);
    return v && vlen == 2 ? (uint8_t *)(uintptr_t)v : NULL;
}

bool twcc_ext_read(const uint8_t *pkt, size_t len, uint8_t id, uint16_t *seq)
{
    const uint8_t *v = ext_at(pkt, len, id);
    if (v) *seq = (uint16_t)(v[0] << 8 | v[1]);
    return v != NULL;
}

bool twcc_ext_write(uint8_t *pkt, size_t len, uint8_t id, uint16_t seq)
{
    uint8_t *v = ext_at(pkt, len, id);
    if (v) v[0] = (uint8_t)(seq >> 8), v[1] = (uint8_t)seq;
    return v != NULL;
}

/* ---- receiving ---- */

void twcc_recv_init(struct twcc_recv *r)
{
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < TWCC_RECV_RING; i++) r->seq_of[i] = -1;
}

void twcc_recv_packet(struct twcc_recv *r, uint16_t seq, int64_t now_us)
{
    int64_t ext;
    if (!r->started) {
        r->started = true;
        r->t0_us = now_us;
        r->next = r->max_ext = ext = seq;
    } else {
        ext = r->max_ext + (int16_t)(uint16_t)(seq - (uint16_t)r->max_ext);
        if (ext < r->next) { /* its feedback is gone already */
            r->late++;
            return;
        }
        if (ext > r->max_ext) r->max_ext = ext;
        /* Too far behind to report it all: the ring holds the newest. */
        if (r->max_ext - r->next >= TWCC_RECV_RING) r->next = r->max_ext - TWCC_RECV_RING + 1;
    }
    size_t slot = (size_t)ext & (TWCC_RECV_RING - 1);
    r->seq_of[slot] = ext;
    r->arrival_us[slot] = now_us - r->t0_us;
    r->packets++;
}

/* The arrival of ext, or -1 when it did not arrive (or was overwritten). */
static int64_t arrival(const struct twcc_recv *r, int64_t ext)
{
    size_t slot = (size_t)ext & (TWCC_RECV_RING - 1);
    return r->seq_of[slot] == ext ? r->arrival_us[slot] : -1;
}

/* Fills scratch for the packets from r->next on; returns how many go in
 * one feedback and the reference time. */
static size_t fill_feedback(struct twcc_recv *r, int32_t *ref)
{
    size_t n = (size_t)(r->max_ext - r->next + 1);
    if (n > TWCC_FB_MAX) n = TWCC_FB_MAX;
    int64_t first = -1;
    for (size_t i = 0; i < n && first < 0; i++) first = arrival(r, r->next + (int64_t)i);
    if (first < 0) first = 0; /* none arrived (overwritten): all reported lost */
    *ref = (int32_t)((first / TWCC_REF_US) & 0x7FFFFF);
    int64_t at = first / TWCC_REF_US * TWCC_REF_US;
    for (size_t i = 0; i < n; i++) {
        rtcp_twcc_packet_t *k = &r->scratch[i];
        int64_t a = arrival(r, r->next + (int64_t)i);
        k->status = RTCP_TWCC_NOT_RECEIVED;
        k->delta = 0;
        if (a < 0) continue;
        int64_t d = (a - at) / TWCC_TICK_US; /* toward zero; the error does not pile up (at follows d) */
        if (d < INT16_MIN || d > INT16_MAX) return i ? i : 1; /* the next feedback takes a new reference */
        k->status = d >= 0 && d <= 255 ? RTCP_TWCC_SMALL_DELTA : RTCP_TWCC_LARGE_DELTA;
        k->delta = (int32_t)d;
        at += d * TWCC_TICK_US;
    }
    return n;
}

int twcc_recv_feedback(struct twcc_recv *r, uint32_t sender_ssrc, uint32_t media_ssrc, uint8_t *buf, size_t cap)
{
    if (!r->started || r->next > r->max_ext) return 0;
    int32_t ref;
    size_t n = fill_feedback(r, &ref);
    int len;
    /* A smaller buffer than an MTU: fewer packets per feedback. */
    while ((len = rtcp_build_twcc(buf, cap, sender_ssrc, media_ssrc, (uint16_t)r->next, ref, r->fb_count,
                                  r->scratch, n)) == -ENOSPC && n > 1)
        n /= 2;
    if (len < 0) return len;
    r->next += (int64_t)n;
    r->fb_count++;
    r->feedbacks++;
    return len;
}

/* ---- the estimator ---- */

void twcc_bwe_init(struct twcc_bwe *b) { memset(b, 0, sizeof(*b)); }

int64_t twcc_bwe_queue_us(const struct twcc_bwe *b) { return b->have_owd ? b->owd_us - b->min_owd_us : 0; }

/* Delivered bytes by arrival time; a window of TWCC_WINDOW_US gives the rate. */
static void account_delivered(struct twcc_bwe *b, const struct twcc_bwe_sample *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!s[i].received) continue;
        int64_t a = s[i].arrival_us;
        if (!b->win_started || a < b->win_start_us) { /* first, or the receiver's clock jumped back */
            b->win_started = true;
            b->win_start_us = b->win_last_us = a;
            b->win_bytes = 0;
        }
        b->win_bytes += s[i].size;
        if (a > b->win_last_us) b->win_last_us = a;
        if (b->win_last_us - b->win_start_us >= TWCC_WINDOW_US) {
            b->acked_bps = b->win_bytes * 8 * 1000000 / (uint64_t)(b->win_last_us - b->win_start_us);
            b->win_start_us = b->win_last_us;
            b->win_bytes = 0;
        }
    }
}

/* The mean one-way delay of the received packets and its gradient and
 * queue; false when none was received. */
static bool account_delay(struct twcc_bwe *b, const struct twcc_bwe_sample *s, size_t n)
{
    int64_t sum = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i].received) sum += s[i].arrival_us - s[i].send_us, k++;
    if (!k) return false;
    int64_t owd = sum / k;
    int64_t grad = b->have_owd ? owd - b->owd_us : 0;
    if (!b->have_owd || grad > 5000000 || grad < -5000000) { /* first, or a clock jumped: start over */
        b->have_owd = true;
        b->min_owd_us = owd;
        b->trend_us = 0;
        grad = 0;
    }
    b->owd_us = owd;
    b->trend_us = (b->trend_us * 3 + grad) / 4;
    /* The floor follows a lower delay at once and a higher one slowly, so
     * a path whose base delay grew is not taken for a queue for ever. */
    if (owd < b->min_owd_us)
        b->min_owd_us = owd;
    else
        b->min_owd_us += (owd - b->min_owd_us) / 64;
    return true;
}

static uint64_t clamp_bps(uint64_t v) { return v < TWCC_MIN_BPS ? TWCC_MIN_BPS : v > TWCC_MAX_BPS ? TWCC_MAX_BPS : v; }

void twcc_bwe_update(struct twcc_bwe *b, const struct twcc_bwe_sample *s, size_t n, int64_t now_us)
{
    if (!n) return;
    b->updates++;
    size_t lost = 0;
    for (size_t i = 0; i < n; i++) lost += !s[i].received;
    b->loss_q8 = (b->loss_q8 * 3 + (uint32_t)(lost * 256 / n)) / 4;
    account_delivered(b, s, n);
    bool delay = account_delay(b, s, n);
    int64_t dt = b->last_us && now_us > b->last_us ? now_us - b->last_us : 0;
    if (dt > 1000000) dt = 1000000;
    b->last_us = now_us;
    if (!b->acked_bps) return; /* no delivered rate yet: nothing to base an estimate on */
    uint64_t ceiling = b->acked_bps * 3 / 2 + 100000;
    if (!b->bps) b->bps = ceiling;
    int64_t queue = twcc_bwe_queue_us(b);
    bool overuse = delay && ((queue > TWCC_QUEUE_US && b->trend_us > TWCC_GROW_US) || queue > 4 * TWCC_QUEUE_US);
    bool may_cut = !b->decreased || now_us - b->last_decrease_us >= TWCC_HOLD_US;
    if (overuse) {
        if (may_cut) {
            uint64_t cut = b->acked_bps * 85 / 100;
            if (cut < b->bps) b->bps = cut;
            b->overuses++;
            b->decreased = true;
            b->last_decrease_us = now_us;
        }
    } else if (b->loss_q8 > 26) { /* over 10% */
        if (may_cut) {
            b->bps -= b->bps * b->loss_q8 / 512;
            b->loss_cuts++;
            b->decreased = true;
            b->last_decrease_us = now_us;
        }
    } else if (b->loss_q8 < 5 && b->trend_us <= TWCC_GROW_US) { /* under 2%, no growing queue */
        b->bps += b->bps * 8 / 100 * (uint64_t)dt / 1000000;
        if (b->bps > ceiling) b->bps = ceiling;
    }
    b->bps = clamp_bps(b->bps);
}

/* ---- sending ---- */

void twcc_send_init(struct twcc_send *s)
{
    memset(s, 0, sizeof(*s));
    twcc_bwe_init(&s->bwe);
    s->fb_last = -1;
}

uint16_t twcc_send_stamp(struct twcc_send *s, size_t size, int64_t now_us)
{
    uint16_t seq = s->next_seq++;
    struct twcc_sent *e = &s->ring[seq & (TWCC_SEND_RING - 1)];
    e->send_us = (uint32_t)now_us;
    e->seq = seq;
    e->size = (uint16_t)(size > 0xFFFF ? 0xFFFF : size ? size : 1);
    s->packets++;
    return seq;
}

void twcc_send_feedback(struct twcc_send *s, const rtcp_twcc_t *t, const rtcp_twcc_packet_t *pkts, int64_t now_us)
{
    struct twcc_bwe_sample smp[TWCC_FB_MAX];
    size_t n = 0;
    s->feedbacks++;
    if (s->fb_last >= 0 && (uint8_t)(t->fb_count - (uint8_t)s->fb_last) > 1) s->feedbacks_lost++;
    s->fb_last = t->fb_count;
    for (size_t i = 0; i < t->count && n < TWCC_FB_MAX; i++) {
        const struct twcc_sent *e = &s->ring[pkts[i].seq & (TWCC_SEND_RING - 1)];
        /* Only what we still remember, and sent no longer ago than the ring spans. */
        uint16_t ahead = (uint16_t)(s->next_seq - pkts[i].seq);
        if (!e->size || e->seq != pkts[i].seq || ahead == 0 || ahead > TWCC_SEND_RING) {
            s->unknown++;
            continue;
        }
        uint32_t ago = (uint32_t)now_us - e->send_us;
        smp[n++] = (struct twcc_bwe_sample){
            .send_us = now_us - (int64_t)ago,
            .arrival_us = pkts[i].arrival_us,
            .size = e->size,
            .received = pkts[i].status != RTCP_TWCC_NOT_RECEIVED,
        };
    }
    twcc_bwe_update(&s->bwe, smp, n, now_us);
}
