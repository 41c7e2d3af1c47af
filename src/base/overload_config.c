/* overload_config.c — the keys of [overload] (struct overload_config,
 * overload.h). The defaults equal overload_config_default()'s (test_config). */
#include <stdio.h>

#include "base/config.h"
#include "base/overload.h"

#define KEY(name, f, def, lo, hi, help) {name, CONFIG_UINT, CONFIG_FIELD(struct overload_config, f), def, lo, hi, NULL, 0, help}

static const struct config_key keys[] = {
    {"enabled", CONFIG_BOOL, CONFIG_FIELD(struct overload_config, enabled), "yes", 0, 0, NULL, 0, "turn overload control on"},
    KEY("max_loop_lag_ms", max_loop_lag_ms, "250", 0, 60000, "the loop is overloaded when a 100 ms timer fires this late ..."),
    KEY("max_loop_busy", max_loop_busy_pct, "95", 0, 100,
        "... or it was busy this % (CPU / (CPU + waiting for I/O)) ..."),
    KEY("loop_samples", loop_samples, "3", 1, 100, "... this many samples in a row ..."),
    KEY("hold_ms", hold_ms, "2000", 0, 600000, "... and stays so this long after the last bad one"),
    KEY("max_rx_queue", max_rx_queue_pct, "50", 0, 100,
        "... with a UDP receive queue this % full (busy but emptying it = keeping up; 0: busy alone)"),
    KEY("max_working_transactions", max_server_txns, "50000", 0, 10000000,
        "server transactions still working (not those only absorbing retransmissions)"),
    KEY("max_store_backlog", max_store_backlog, "20000", 0, 10000000, "store operations not yet committed"),
    KEY("max_register_rate", max_register_rate, "0", 0, 10000000,
        "new registrations admitted per second (token bucket; 0: no cap)"),
    KEY("retry_after_min", retry_after_min_s, "5", 1, 86400, "Retry-After of the 503, uniform in [min, max] seconds"),
    KEY("retry_after_max", retry_after_max_s, "30", 1, 86400, "the upper end of that"),
};

static int check(const void *section, char *err, size_t errcap)
{
    const struct overload_config *o = section;
    if (o->retry_after_min_s <= o->retry_after_max_s) return 0;
    snprintf(err, errcap, "[overload] retry_after_min > retry_after_max");
    return -1;
}

const struct config_section overload_config_section = {
    .name = "overload",
    .help = "Overload control: beyond capacity, a REGISTER that would create a new registration (SIP AoR without "
            "bindings, GB device not online) gets 503 + random Retry-After, statelessly, before digest or store work; "
            "refreshes, keepalives and calls are served. 0 disables a limit.",
    .keys = keys,
    .nkeys = sizeof(keys) / sizeof(keys[0]),
    .check = check,
};
