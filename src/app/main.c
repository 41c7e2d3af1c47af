/* main.c — the cascade daemon: `cascade [-c FILE] [-l LEVEL]` serves;
 * `cascade -t -c FILE` checks a config and exits; `cascade --help-config[=ini|man]`
 * prints every key from the key tables (=ini: cascade.ini.example, =man: the
 * body of cascade.ini(5)); `cascade parse FILE...` checks SIP messages in
 * files (see parse_cmd.h). Under systemd it reports READY/STOPPING/WATCHDOG
 * (sdnotify.h). */
#include <errno.h>
#include <getopt.h>
#include <libxml/parser.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "app/config.h"
#include "app/manpage.h"
#include "app/parse_cmd.h"
#include "app/sdnotify.h"
#include "app/worker.h"
#include "base/log.h"
#include "transport/tls.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cascade [-c FILE] [-l error|warn|info|debug]\n"
            "       cascade -t [-c FILE]          check the config and exit (0: good, 1: errors);\n"
            "                                     good: also prints [store] backend and the\n"
            "                                     [redis] sharing switches in effect\n"
            "       cascade --help-config[=ini|man]  every config key (=ini: as an example file,\n"
            "                                     =man: as roff for cascade.ini(5))\n"
            "       cascade parse FILE...\n"
            "Serves SIP (registrar, proxy, GB/T 28181) with the config in FILE, or with the\n"
            "embedded defaults (UDP and TCP on 127.0.0.1:5060, database ./cascade.db, GB upper role on, any\n"
            "device of domain 3402000000 with password 12345678).\n"
            "Signals: SIGTERM or SIGINT stop it. SIGHUP reloads: FILE is read again and\n"
            "[log] level, [events] webhook, [tls] (the certificate files too) and the\n"
            "[upstream:ID] sections are applied with calls, registrations and connections\n"
            "kept; users and GB devices are read again from the database; every other\n"
            "changed key is logged as \"restart needed\". A FILE with errors is refused\n"
            "whole (logged). `cascadectl reload` does the same through the API. SIGUSR1\n"
            "reopens the [log] file (after logrotate moved it).\n"
            "Under systemd (Type=notify, NOTIFY_SOCKET set) it reports READY=1 once listening,\n"
            "STOPPING=1 on SIGTERM, and WATCHDOG=1 every half WATCHDOG_USEC.\n");
}

/* Prints the errors of config_load, one a line. */
static void print_errors(const char *err)
{
    for (const char *p = err; *p;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(stderr, "cascade: %.*s\n", len, p);
        p += len + (nl != NULL);
    }
}

/* What -t can check beyond the file's syntax: the certificate files load.
 * Prints each problem; 0 when there is none. */
static int check_files(const struct config *cfg)
{
    int bad = 0;
    char err[640];
    struct tls_context *tls = tls_context_new(&cfg->tls, err, sizeof(err));
    if (!tls) {
        fprintf(stderr, "cascade: %s\n", err);
        bad = 1;
    }
    tls_context_free(tls);
    const char *api_files[2][2] = {{"tls_cert", cfg->api.tls_cert}, {"tls_key", cfg->api.tls_key}};
    for (int i = 0; i < 2; i++) {
        FILE *f = api_files[i][1][0] ? fopen(api_files[i][1], "r") : NULL;
        if (f) fclose(f);
        else if (api_files[i][1][0]) {
            fprintf(stderr, "cascade: [api] %s %s: %s\n", api_files[i][0], api_files[i][1], strerror(errno));
            bad = 1;
        }
    }
    return bad;
}

/* SIGUSR1: logrotate moved the log file away; new lines go to a new one. */
static void on_sigusr1(uv_signal_t *h, int signum)
{
    (void)h, (void)signum;
    int rc = log_reopen();
    if (rc < 0) log_error("log: cannot reopen the log file: %s (lines keep going to the old one)", strerror(-rc));
    else log_info("log: log file reopened (SIGUSR1)");
}

static int help_config(const char *format)
{
    if (!format || !strcmp(format, "help")) config_schema_print(&config_schema, CONFIG_FORMAT_HELP, stdout);
    else if (!strcmp(format, "ini")) config_schema_print(&config_schema, CONFIG_FORMAT_INI, stdout);
    else if (!strcmp(format, "man")) manpage_config_print(&config_schema, stdout);
    else {
        fprintf(stderr, "cascade: --help-config=%s: ini, man or help\n", format);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "parse") == 0) return parse_cmd_main(argc - 1, argv + 1);

    const char *conf = NULL, *level = NULL;
    bool check_only = false;
    int opt, rc;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'}, {"test-config", no_argument, NULL, 't'},
        {"help-config", optional_argument, NULL, 'H'}, {NULL, 0, NULL, 0}};
    while ((opt = getopt_long(argc, argv, "c:l:ht", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'l': level = optarg; break;
        case 't': check_only = true; break;
        case 'H': return help_config(optarg);
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    static struct worker w;
    config_init(&w.cfg);
    w.config_path = conf;
    if (conf) {
        char err[8192];
        if (config_load(&w.cfg, conf, err, sizeof(err)) < 0) {
            print_errors(err);
            return 1;
        }
    } else {
        /* The embedded defaults are for trying cascade on this machine: the
         * GB upper role is on too, and takes any device of its domain with
         * the default password (only loopback reaches it). */
        w.cfg.gb.enabled = true;
        w.cfg.gb.allow_unknown = true;
    }
    int lv = log_level_from_name(level ? level : w.cfg.log.level);
    if (lv < 0) {
        fprintf(stderr, "cascade: unknown log level\n");
        return 2;
    }
    if (check_only) {
        if (check_files(&w.cfg)) return 1;
        char sharing[512];
        config_sharing_describe(&w.cfg, sharing, sizeof(sharing));
        printf("cascade: %s: configuration ok\ncascade: %s\n", conf ? conf : "(embedded defaults)", sharing);
        return 0;
    }
    log_set_level((enum log_level)lv);
    log_set_format(log_format_from_name(w.cfg.log.format) == LOG_FORMAT_JSON ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT);
    if (w.cfg.log.file[0] && (rc = log_open(w.cfg.log.file)) < 0) {
        fprintf(stderr, "cascade: [log] file %s: %s\n", w.cfg.log.file, strerror(-rc));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    xmlInitParser(); /* once, before the store's writer thread starts */
    uv_loop_t loop;
    uv_loop_init(&loop);
    static struct sdnotify sd;
    static uv_signal_t usr1;
    uv_signal_init(&loop, &usr1);
    uv_signal_start(&usr1, on_sigusr1, SIGUSR1);
    uv_unref((uv_handle_t *)&usr1); /* keeps no loop alive */
    rc = worker_start(&w, &loop);
    if (rc < 0) {
        log_error("cascade: start-up failed");
        worker_stop(&w);
    } else {
        sdnotify_start(&sd, &loop); /* the sockets are bound: READY=1 */
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    sdnotify_stop(&sd);
    uv_close((uv_handle_t *)&usr1, NULL);
    worker_free(&w);
    /* Let close callbacks of anything freed last run, then close the loop. */
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) log_warn("event loop closed with handles still open");
    xmlCleanupParser();
    log_info("cascade stopped");
    return rc < 0 ? 1 : 0;
}
