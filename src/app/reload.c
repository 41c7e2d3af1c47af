/* reload.c — the config read again and applied where no restart is needed
 * (see reload.h). Everything is checked before anything is applied, so a
 * refused file changes nothing. */
#include "app/reload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/worker.h"
#include "base/log.h"
#include "events/events.h"
#include "events/httpc.h"
#include "gb/codec/gbid.h"
#include "gb/lower/lower.h"
#include "gb/upper/upper.h"
#include "registrar/users.h"
#include "store/store.h"
#include "transport/tls.h"

/* ---- the plan: which differences are live ---- */

/* The keys a running daemon takes over; key NULL: every key of the section. */
static const struct {
    const char *section, *key;
} live_keys[] = {
    {"log", NULL}, /* level, format, file */
    {"events", "webhook"},
    {"tls", NULL},
    {"upstream", NULL},
};

bool reload_key_is_live(const char *section, const char *key)
{
    for (size_t i = 0; i < sizeof(live_keys) / sizeof(live_keys[0]); i++) {
        if (strcmp(section, live_keys[i].section)) continue;
        if (!live_keys[i].key || (key && !strcmp(key, live_keys[i].key))) return true;
    }
    return false;
}

static void names_add(struct reload_names *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void names_add(struct reload_names *n, const char *fmt, ...)
{
    if (n->n == RELOAD_MAX_NAMES) {
        n->more++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n->name[n->n++], RELOAD_NAME_SIZE, fmt, ap);
    va_end(ap);
}

static void on_difference(void *arg, const struct config_section *s, const char *id, const struct config_key *k,
                          enum config_change what)
{
    struct reload_plan *p = arg;
    const char *key = k ? k->name : NULL;
    bool live = reload_key_is_live(s->name, key);
    struct reload_names *to = live ? &p->applied : &p->restart;
    char section[64];
    if (id) snprintf(section, sizeof(section), "[%s:%.32s]", s->name, id);
    else snprintf(section, sizeof(section), "[%s]", s->name);
    const char *whole = what == CONFIG_INSTANCE_ADDED ? "added" : "removed";
    names_add(to, "%s %s", section, key ? key : whole);
    if (!live) return;
    if (!strcmp(s->name, "log")) {
        if (key && !strcmp(key, "format")) p->log_format = true;
        else if (key && !strcmp(key, "file")) p->log_file = true;
        else p->log_level = true;
    }
    else if (!strcmp(s->name, "events")) p->webhook = true;
    else if (!strcmp(s->name, "tls")) p->tls = true;
    else if (!strcmp(s->name, "upstream")) p->upstreams = true;
}

void reload_plan_make(const struct config *running, const struct config *next, struct reload_plan *p)
{
    memset(p, 0, sizeof(*p));
    config_schema_diff(&config_schema, running, next, on_difference, p);
}

/* ---- checks: all before anything is applied ---- */

static void err_add(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void err_add(char *err, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(err);
    if (used + 2 >= cap) return;
    if (used) err[used++] = '\n', err[used] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + used, cap - used, fmt, ap);
    va_end(ap);
}

static int check_next(const struct worker *w, const struct config *next, const struct reload_plan *p, char *err,
                      size_t errcap)
{
    char why[640];
    if (log_level_from_name(next->log.level) < 0) err_add(err, errcap, "[log] level '%s' unknown", next->log.level);
    if (log_format_from_name(next->log.format) < 0) err_add(err, errcap, "[log] format '%s' unknown", next->log.format);
    if (p->log_file && next->log.file[0]) {
        /* Opened (and created) once here, so that a path we cannot write
         * refuses the whole file instead of leaving the old log half-moved. */
        int fd = open(next->log.file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) err_add(err, errcap, "[log] file %s: %s", next->log.file, strerror(errno));
        else close(fd);
    }
    if (p->webhook && next->events.webhook[0]) {
        struct api_url u;
        if (api_url_parse(next->events.webhook, &u, why, sizeof(why)) != 0)
            err_add(err, errcap, "[events] webhook %s: %s", next->events.webhook, why);
    }
    /* The certificate files are read again even when no key changed. */
    struct tls_context *tls = tls_context_new(&next->tls, why, sizeof(why));
    if (!tls) err_add(err, errcap, "%s", why);
    tls_context_free(tls);
    for (int i = 0; i < next->upstream_count; i++)
        if (gb_lower_upstream_check(&next->upstreams[i], why, sizeof(why)) != 0) err_add(err, errcap, "%s", why);
    if (p->upstreams && !w->gb_lower && next->upstream_count > 0 && !gb_id_valid(str_from_cstr(w->cfg.gb.id)))
        err_add(err, errcap, "[gb] id '%s' is not a 20-digit GB id: the lower role cannot start", w->cfg.gb.id);
    return err[0] ? -1 : 0;
}

/* ---- applying ---- */

static json_t *names_json(const struct reload_names *n)
{
    json_t *a = json_array();
    for (int i = 0; i < n->n; i++) json_array_append_new(a, json_string(n->name[i]));
    return a;
}

/* The store as an operator may have changed it: users, GB devices. */
static void reread_store(struct worker *w, json_t *report)
{
    if (!w->store) return;
    store_flush_sync(w->store); /* our own queued writes first, or the re-read would miss them */
    struct users_reload_result ur;
    int rc = users_reload(w->users, w->store, &ur);
    if (rc < 0) {
        log_error("reload: users not re-read from the store: %s", strerror(-rc));
        json_object_set_new(report, "users", json_pack("{s:s}", "error", strerror(-rc)));
    } else {
        log_info("reload: users re-read: %d stored, %d added, %d changed, %d removed", ur.loaded, ur.added, ur.changed,
                 ur.removed);
        json_object_set_new(report, "users", json_pack("{s:i,s:i,s:i,s:i}", "stored", ur.loaded, "added", ur.added,
                                                       "changed", ur.changed, "removed", ur.removed));
    }
    if (!w->gb_upper) return;
    struct gb_devices_reload gr;
    rc = gb_upper_reload_devices(w->gb_upper, &gr);
    if (rc < 0)
        json_object_set_new(report, "gb_devices", json_pack("{s:s}", "error", strerror(-rc)));
    else
        json_object_set_new(report, "gb_devices", json_pack("{s:i,s:i,s:i,s:i}", "stored", gr.rows, "added", gr.added,
                                                            "changed", gr.changed, "removed", gr.removed));
}

static void apply_upstreams(struct worker *w, const struct config *next)
{
    memcpy(w->cfg.upstreams, next->upstreams, sizeof(w->cfg.upstreams));
    w->cfg.upstream_count = next->upstream_count;
    if (w->gb_lower) {
        gb_lower_set_upstreams(w->gb_lower, next->upstreams, next->upstream_count); /* a full table is logged */
    } else if (next->upstream_count > 0) {
        if (dispatch_start_gb_lower(w) < 0) {
            /* running without them: the next reload finds them new and tries again */
            w->cfg.upstream_count = 0;
            log_error("reload: the GB lower role did not start (see above); its upstreams are not in effect");
        } else {
            log_info("reload: GB lower role started for %d upstream(s)", next->upstream_count);
        }
    }
}

/* Applies what p marks live; the rest of w->cfg stays as running. Whether
 * the TLS context took the files. */
static bool apply(struct worker *w, const struct config *next, const struct reload_plan *p)
{
    char why[640];
    bool tls_ok = false;
    if (p->log_level) {
        log_set_level((enum log_level)log_level_from_name(next->log.level));
        snprintf(w->cfg.log.level, sizeof(w->cfg.log.level), "%s", next->log.level);
        log_info("reload: log level %s", next->log.level);
    }
    /* The file before the format: each destination keeps one format, the old
     * one's last line (in its format) says where the next lines go. */
    if (p->log_file) {
        log_info("reload: log file %s", next->log.file[0] ? next->log.file : "(standard error)");
        int rc = 0;
        if (next->log.file[0]) rc = log_open(next->log.file);
        else log_set_file(NULL);
        if (rc < 0)
            log_error("reload: [log] file %s: %s (lines keep going to the old destination)", next->log.file,
                      strerror(-rc));
        else snprintf(w->cfg.log.file, sizeof(w->cfg.log.file), "%s", next->log.file);
    }
    if (p->log_format) {
        log_set_format((enum log_format)log_format_from_name(next->log.format));
        snprintf(w->cfg.log.format, sizeof(w->cfg.log.format), "%s", next->log.format);
        log_info("reload: log format %s", next->log.format);
    }
    if (w->tls) {
        if (tls_context_reload(w->tls, &next->tls, why, sizeof(why)) != 0)
            log_error("reload: TLS certificates not reloaded, the old ones stay: %s", why);
        else {
            tls_ok = true;
            w->cfg.tls = next->tls;
            if (next->tls.cert[0]) log_info("reload: TLS certificate %s reloaded; new connections use it", next->tls.cert);
            else log_info("reload: TLS trust anchors reloaded");
        }
    }
    if (p->webhook) {
        if (event_bus_set_webhook(w->events_view ? w->events_view : w->events, next->events.webhook, why, sizeof(why)) != 0)
            log_error("reload: webhook %s: %s; the old one stays", next->events.webhook, why);
        else
            snprintf(w->cfg.events.webhook, sizeof(w->cfg.events.webhook), "%s", next->events.webhook);
    }
    if (p->upstreams) apply_upstreams(w, next);
    return tls_ok;
}

int worker_reload(struct worker *w, json_t **report, char *err, size_t errcap)
{
    if (report) *report = NULL;
    err[0] = '\0';
    if (w->stopping || !w->started) {
        snprintf(err, errcap, "the daemon is %s", w->stopping ? "stopping" : "starting");
        return -1;
    }
    struct config *next = malloc(sizeof(*next));
    if (!next) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    if (w->config_path) {
        config_init(next);
        if (config_load(next, w->config_path, err, errcap) < 0) {
            free(next);
            return -1;
        }
    } else {
        *next = w->cfg; /* embedded defaults: nothing to read, the rest is done */
    }
    struct reload_plan *p = malloc(sizeof(*p));
    if (!p) {
        free(next);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    reload_plan_make(&w->cfg, next, p);
    if (check_next(w, next, p, err, errcap) < 0) {
        free(p);
        free(next);
        return -1;
    }
    log_info("reload: %s read, %d change(s) to apply, %d needing a restart",
             w->config_path ? w->config_path : "(embedded defaults)", p->applied.n + p->applied.more,
             p->restart.n + p->restart.more);
    json_t *r = json_object();
    bool tls_ok = apply(w, next, p);
    reread_store(w, r);
    for (int i = 0; i < p->restart.n; i++)
        log_warn("reload: restart needed for %s (the running value stays)", p->restart.name[i]);
    if (p->restart.more) log_warn("reload: restart needed for %d more key(s)", p->restart.more);
    json_object_set_new(r, "config", json_string(w->config_path ? w->config_path : ""));
    json_object_set_new(r, "applied", names_json(&p->applied));
    json_object_set_new(r, "restart_needed", names_json(&p->restart));
    if (p->applied.more || p->restart.more)
        json_object_set_new(r, "left_out", json_integer(p->applied.more + p->restart.more));
    json_object_set_new(r, "tls_reloaded", json_boolean(tls_ok));
    free(p);
    free(next);
    if (report) *report = r;
    else json_decref(r);
    return 0;
}
