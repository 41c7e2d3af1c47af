/* overload.h — admission control for new registrations under overload.
 *
 * A registration storm (a power cut restoring 100 000 cameras at once, a
 * simulator offering more than the server sustains) must not push out the
 * work of devices and users already registered: their keepalives, refreshes
 * and calls. The server asks overload_check() before it spends anything
 * (digest, store) on a REGISTER that would create a new registration; when
 * the answer is "refuse", it sends 503 with a randomised Retry-After
 * (RFC 3261 §21.5.4, §20.33) statelessly, and the client comes back later,
 * spread over [retry_after_min, retry_after_max] seconds.
 *
 * Signals, each optional (0 = not checked):
 *   the loop      the owner samples it every 100 ms or so (overload_note_loop):
 *                 lag, how late a periodic timer fires, and busy, the loop's
 *                 CPU time over CPU time + time waiting for I/O (time spent
 *                 waiting for a shared core is neither). A UDP server
 *                 reads a few dozen datagrams per loop turn, so a saturated
 *                 loop shows as busy ~100 % before its timers run late. Either
 *                 over its limit in loop_samples consecutive samples makes the
 *                 loop overloaded for hold_ms (one bad sample is a scheduler
 *                 hiccup, not load);
 *   queues        live server transactions and store ops not yet committed,
 *                 passed in by the caller at each check;
 *   rate          a token bucket of max_register_rate new registrations per
 *                 second (burst: one second's worth) — the configured
 *                 sustainable rate.
 *
 * The module reads no clock and owns no handle: the caller passes now_ms, so
 * tests drive it with a fake clock. Not thread-safe (one per loop). */
#ifndef CASCADE_BASE_OVERLOAD_H
#define CASCADE_BASE_OVERLOAD_H

#include <stdbool.h>
#include <stdint.h>

struct overload_config {
    bool enabled;
    uint32_t max_loop_lag_ms;      /* 0: loop lag not checked */
    uint32_t max_loop_busy_pct;    /* 0: loop busy share not checked */
    uint32_t max_rx_queue_pct;     /* busy counts only with the UDP receive queue this full (0: always) */
    uint32_t loop_samples;         /* consecutive bad samples that mean overload (>= 1) */
    uint32_t hold_ms;              /* stays overloaded this long after the last bad sample */
    uint32_t max_server_txns;      /* 0: not checked */
    uint32_t max_store_backlog;    /* 0: not checked */
    uint32_t max_register_rate;    /* new registrations per second; 0: no cap */
    uint32_t retry_after_min_s, retry_after_max_s;
};

/* What the caller measures at the moment of the check. */
struct overload_load {
    uint32_t server_txns;
    uint32_t store_backlog;
};

enum overload_verdict {
    OVERLOAD_ADMIT = 0,
    OVERLOAD_LOOP,
    OVERLOAD_TXNS,
    OVERLOAD_STORE,
    OVERLOAD_RATE,
    OVERLOAD_VERDICTS
};

struct overload_stats {
    uint64_t admitted;                       /* new registrations let through */
    uint64_t refused;                        /* answered 503 */
    uint64_t refused_by[OVERLOAD_VERDICTS];  /* [LOOP], [TXNS], [STORE], [RATE] */
    uint64_t loop_episodes;                  /* times the loop became overloaded */
    uint32_t loop_lag_ms;                    /* last sample */
    uint32_t loop_lag_max_ms;                /* largest sample seen */
    uint32_t loop_busy_pct;                  /* last sample */
    uint32_t rx_queue_pct;                   /* last sample */
};

struct overload {
    struct overload_config cfg;
    struct overload_stats stats;
    uint64_t loop_until_ms;        /* the loop is overloaded until then (0: not) */
    uint32_t late_run, busy_run;   /* consecutive bad samples */
    uint64_t millitokens;          /* rate bucket, in 1/1000 registration */
    uint64_t bucket_at_ms;
    bool bucket_started;
    uint64_t rng;
};

/* Defaults: enabled, lag 250 ms or busy 95 % in 3 samples in a row, held
 * 2 s; 50 000 working server transactions, 20 000 store ops, no rate cap,
 * Retry-After 5..30 s. */
void overload_config_default(struct overload_config *cfg);
void overload_init(struct overload *o, const struct overload_config *cfg, uint64_t seed);
/* One loop sample taken at now_ms: how late a periodic timer fired, and the
 * percentage of the interval the loop was not idle. */
void overload_note_loop(struct overload *o, uint64_t now_ms, uint32_t lag_ms, uint32_t busy_pct);
/* The same with the fill of the UDP receive queues (percent of the socket
 * buffer, the fullest listener): a busy sample is bad only while the queue
 * is at least max_rx_queue_pct full. A loop that is busy all the time but
 * empties its socket every turn keeps up — it is at capacity, not beyond
 * it — and refusing registrations then would only cut the peak rate; a
 * queue that fills while the loop is busy means datagrams are about to be
 * dropped. overload_note_loop is this with the queue taken as full. */
void overload_note_loop_rxq(struct overload *o, uint64_t now_ms, uint32_t lag_ms, uint32_t busy_pct, uint32_t rxq_pct);
/* Whether the loop counts as overloaded at now_ms. */
bool overload_loop_overloaded(const struct overload *o, uint64_t now_ms);
/* True while background work (catalog queries on register) should wait: the
 * loop is overloaded, its UDP receive queue is filling, or the server
 * transactions or store backlog are past half of their limits. */
bool overload_busy(const struct overload *o, uint64_t now_ms, const struct overload_load *load);
/* Decides about one new registration at now_ms and counts the verdict.
 * OVERLOAD_ADMIT (a rate token is taken when rated), or why to refuse it.
 * rated: false for the second leg of a registration (the REGISTER answering
 * our challenge), whose first leg already took its token. */
enum overload_verdict overload_check(struct overload *o, uint64_t now_ms, const struct overload_load *load,
                                     bool rated);
/* A Retry-After value in seconds, uniform in [min, max]. */
uint32_t overload_retry_after(struct overload *o);
const char *overload_verdict_name(enum overload_verdict v);

#endif
