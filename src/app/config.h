/* config.h — the daemon's configuration: the sections of struct config and
 * where each module's key table is (config as data, see base/config.h).
 *
 * config_init() fills the defaults from the tables (the daemon serves with no
 * file); config_load() overlays an INI file. An unknown section or key and a
 * bad value are errors naming file and line, so typos show at start-up. */
#ifndef CASCADE_APP_CONFIG_H
#define CASCADE_APP_CONFIG_H

#include <stddef.h>

#include "api/api_config.h"
#include "auth/auth_config.h"
#include "base/config.h"
#include "base/log_config.h"
#include "base/overload.h"
#include "events/events_config.h"
#include "gb/lower/upstream_config.h"
#include "gb/upper/gb_config.h"
#include "proxy/proxy_config.h"
#include "registrar/registrar_config.h"
#include "sip/sip_config.h"
#include "store/store_config.h"
#include "transport/tls_config.h"

/* The daemon's aggregate: every section; roles get only their own. */
struct config {
    struct sip_config sip;
    struct tls_config tls;              /* [tls] — certificates for tls: listeners and outgoing TLS */
    struct registrar_config registrar;
    struct auth_config auth;
    struct proxy_config proxy;
    struct store_config store;
    struct api_config api;
    struct events_config events;
    struct log_config log;
    struct gb_config gb;
    struct overload_config overload;    /* [overload] — 503 to new REGISTERs beyond capacity */
    struct config_upstream upstreams[CONFIG_MAX_UPSTREAMS];
    int upstream_count;
};

/* The key tables, each next to the code that reads its section. */
extern const struct config_section sip_config_section;        /* sip/sip_config.c */
extern const struct config_section tls_config_section;        /* transport/tls_config.c */
extern const struct config_section registrar_config_section;  /* registrar/registrar_config.c */
extern const struct config_section auth_config_section;       /* auth/auth_config.c */
extern const struct config_section proxy_config_section;      /* proxy/proxy_config.c */
extern const struct config_section store_config_section;      /* store/store_config.c */
extern const struct config_section api_config_section;        /* api/api_config.c */
extern const struct config_section events_config_section;     /* events/events_config.c */
extern const struct config_section log_config_section;        /* base/log_config.c */
extern const struct config_section gb_config_section;         /* gb/upper/gb_config.c */
extern const struct config_section overload_config_section;   /* base/overload_config.c */
extern const struct config_section upstream_config_section;   /* gb/lower/upstream_config.c */

/* Every section of struct config, in the order of the example file. */
extern const struct config_schema config_schema;

void config_init(struct config *cfg);
/* Returns 0, or -1 with the errors, one a line, in err (file unreadable,
 * unknown section or key, bad value). */
int config_load(struct config *cfg, const char *path, char *err, size_t errcap);
/* "udp:127.0.0.1:5060, tcp:127.0.0.1:5060" into cfg->sip.listen: 0, or -1. */
int config_parse_listen(struct config *cfg, const char *value);
/* "ip[/bits], ..." into cfg->proxy.trusted: 0, or -1 on a bad entry or too many. */
int config_parse_trusted(struct config *cfg, const char *value);

#endif
