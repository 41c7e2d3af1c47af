/* overload.c — admission control for new registrations (see overload.h). */
#include "base/overload.h"

#include <string.h>

void overload_config_default(struct overload_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->enabled = true;
    cfg->max_loop_lag_ms = 250;
    cfg->max_loop_busy_pct = 95;
    cfg->max_rx_queue_pct = 50;
    cfg->loop_samples = 3;
    cfg->hold_ms = 2000;
    cfg->max_server_txns = 50000;
    cfg->max_store_backlog = 20000;
    cfg->max_register_rate = 0;
    cfg->retry_after_min_s = 5;
    cfg->retry_after_max_s = 30;
}

void overload_init(struct overload *o, const struct overload_config *cfg, uint64_t seed)
{
    memset(o, 0, sizeof(*o));
    o->cfg = *cfg;
    if (!o->cfg.loop_samples) o->cfg.loop_samples = 1;
    if (o->cfg.retry_after_max_s < o->cfg.retry_after_min_s) o->cfg.retry_after_max_s = o->cfg.retry_after_min_s;
    o->rng = seed | 1;
}

/* Counts a run of bad samples; true once it is long enough. */
static bool bad_run(uint32_t *run, bool bad, uint32_t needed)
{
    if (!bad) {
        *run = 0;
        return false;
    }
    return ++*run >= needed;
}

void overload_note_loop(struct overload *o, uint64_t now_ms, uint32_t lag_ms, uint32_t busy_pct)
{
    overload_note_loop_rxq(o, now_ms, lag_ms, busy_pct, 100);
}

void overload_note_loop_rxq(struct overload *o, uint64_t now_ms, uint32_t lag_ms, uint32_t busy_pct, uint32_t rxq_pct)
{
    o->stats.loop_lag_ms = lag_ms;
    o->stats.loop_busy_pct = busy_pct;
    o->stats.rx_queue_pct = rxq_pct;
    if (rxq_pct < o->cfg.max_rx_queue_pct) busy_pct = 0; /* busy, but keeping up */
    if (lag_ms > o->stats.loop_lag_max_ms) o->stats.loop_lag_max_ms = lag_ms;
    bool late = bad_run(&o->late_run, o->cfg.max_loop_lag_ms && lag_ms > o->cfg.max_loop_lag_ms, o->cfg.loop_samples);
    bool busy =
        bad_run(&o->busy_run, o->cfg.max_loop_busy_pct && busy_pct >= o->cfg.max_loop_busy_pct, o->cfg.loop_samples);
    if (!late && !busy) return;
    if (!overload_loop_overloaded(o, now_ms)) o->stats.loop_episodes++;
    o->loop_until_ms = now_ms + o->cfg.hold_ms;
}

bool overload_loop_overloaded(const struct overload *o, uint64_t now_ms)
{
    return o->loop_until_ms && now_ms < o->loop_until_ms;
}

bool overload_busy(const struct overload *o, uint64_t now_ms, const struct overload_load *load)
{
    if (!o->cfg.enabled) return false;
    if (overload_loop_overloaded(o, now_ms)) return true;
    /* Background work backs off at half of what refuses registrations, and
     * while the receive queue fills, before anything is refused or lost. */
    if (o->cfg.max_rx_queue_pct && o->stats.rx_queue_pct >= o->cfg.max_rx_queue_pct) return true;
    if (load && o->cfg.max_server_txns && load->server_txns >= o->cfg.max_server_txns / 2) return true;
    if (load && o->cfg.max_store_backlog && load->store_backlog >= o->cfg.max_store_backlog / 2) return true;
    return false;
}

/* Token bucket: max_register_rate per second, at most one second banked. */
static bool take_token(struct overload *o, uint64_t now_ms)
{
    uint64_t cap = (uint64_t)o->cfg.max_register_rate * 1000u;
    if (!o->bucket_started) {
        o->bucket_started = true;
        o->millitokens = cap;
        o->bucket_at_ms = now_ms;
    } else if (now_ms > o->bucket_at_ms) {
        uint64_t add = (now_ms - o->bucket_at_ms) * o->cfg.max_register_rate; /* rate/1000 per ms, x1000 */
        o->millitokens = o->millitokens + add > cap ? cap : o->millitokens + add;
        o->bucket_at_ms = now_ms;
    }
    if (o->millitokens < 1000) return false;
    o->millitokens -= 1000;
    return true;
}

static enum overload_verdict decide(struct overload *o, uint64_t now_ms, const struct overload_load *load,
                                    bool rated)
{
    if (!o->cfg.enabled) return OVERLOAD_ADMIT;
    if (overload_loop_overloaded(o, now_ms)) return OVERLOAD_LOOP;
    if (load && o->cfg.max_server_txns && load->server_txns >= o->cfg.max_server_txns) return OVERLOAD_TXNS;
    if (load && o->cfg.max_store_backlog && load->store_backlog >= o->cfg.max_store_backlog) return OVERLOAD_STORE;
    if (rated && o->cfg.max_register_rate && !take_token(o, now_ms)) return OVERLOAD_RATE;
    return OVERLOAD_ADMIT;
}

enum overload_verdict overload_check(struct overload *o, uint64_t now_ms, const struct overload_load *load,
                                     bool rated)
{
    enum overload_verdict v = decide(o, now_ms, load, rated);
    if (v == OVERLOAD_ADMIT) {
        o->stats.admitted++;
    } else {
        o->stats.refused++;
        o->stats.refused_by[v]++;
    }
    return v;
}

uint32_t overload_retry_after(struct overload *o)
{
    /* xorshift64*: spreading clients out needs no secrecy. */
    uint64_t x = o->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    o->rng = x;
    uint32_t span = o->cfg.retry_after_max_s - o->cfg.retry_after_min_s + 1;
    return o->cfg.retry_after_min_s + (uint32_t)((x * 0x2545F4914F6CDD1DULL >> 32) % span);
}

const char *overload_verdict_name(enum overload_verdict v)
{
    static const char *names[OVERLOAD_VERDICTS] = {"admit", "loop", "server-transactions", "store-backlog",
                                                   "rate"};
    return (unsigned)v < OVERLOAD_VERDICTS ? names[v] : "?";
}
