/* reload.h — SIGHUP and POST /api/v1/reload: the config file is read
 * again and what can change while calls, registrations and connections
 * stay up is applied.
 *
 * Applied at once: [log] level, [events] webhook, every [tls] key (the
 * certificate files are read again even when no key changed: a renewed
 * certificate), the [upstream:ID] sections (added, removed, changed: see
 * gb_lower_set_upstreams). Read again from the store every time: the SIP
 * users and the GB devices' records. Every other key that changed keeps its
 * running value and is named, "restart needed for [sip] listen".
 *
 * A file that does not parse or check (a bad value, certificate files that
 * do not load, an unusable upstream or webhook URL) is refused as a whole:
 * nothing is applied and the errors are returned.
 *
 *   struct reload_plan p;
 *   reload_plan_make(&running, &from_file, &p);   pure: what changed, what is live
 *   worker_reload(w, &report, err, sizeof(err));  worker.h: check, apply, report */
#ifndef CASCADE_APP_RELOAD_H
#define CASCADE_APP_RELOAD_H

#include <stdbool.h>

#include "app/config.h"

#define RELOAD_MAX_NAMES 64     /* names kept per list; more are counted */
#define RELOAD_NAME_SIZE 96     /* "[upstream:34020000002000000001] keepalive_interval" */

struct reload_names {
    int n;                      /* kept in name[] */
    int more;                   /* left out beyond RELOAD_MAX_NAMES */
    char name[RELOAD_MAX_NAMES][RELOAD_NAME_SIZE];
};

/* What a new file changes against the running config. */
struct reload_plan {
    struct reload_names applied;   /* "[log] level", "[upstream:ID] added", "[upstream:ID] port" */
    struct reload_names restart;   /* "[sip] listen": kept as running until a restart */
    bool log_level, log_format, log_file, webhook, tls, upstreams; /* which live parts changed */
};

/* Compares every key of every section (config_schema_diff) and sorts the
 * differences into applied and restart. */
void reload_plan_make(const struct config *running, const struct config *next, struct reload_plan *p);

/* Whether a key of a section takes effect without a restart (key NULL: a
 * whole [upstream:ID] added or removed). */
bool reload_key_is_live(const char *section, const char *key);

#endif
