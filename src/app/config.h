/* config.h — the daemon's configuration: the sections of struct config and
 * where each module's key table is (config as data, see base/config.h).
 *
 * config_init() fills the defaults from the tables (the daemon serves with no
 * file); config_load() overlays an INI file. An unknown section or key and a
 * bad value are errors naming file and line, so typos show at start-up. */
#ifndef CASCADE_APP_CONFIG_H
#define CASCADE_APP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api_config.h"
#include "auth/auth_config.h"
#include "base/config.h"
#include "base/log_config.h"
#include "base/overload.h"
#include "events/events_config.h"
#include "gb/lower/upstream_config.h"
#include "gb/upper/gb_config.h"
#include "proxy/proxy_config.h"
#include "redis/redis_config.h"
#include "registrar/registrar_config.h"
#include "sip/sip_config.h"
#include "store/store_config.h"
#include "subs/offline_msg.h"
#include "subs/subs_config.h"
#include "transport/tls_config.h"

/* [media] enabled: auto serves rooms when the media port can be bound and
 * otherwise says why and goes on without them (the embedded default, so
 * that `make run` serves rooms while two daemons on one machine still
 * start); yes makes a port that cannot be bound a start-up error. */
enum media_enabled { MEDIA_ENABLED_NO, MEDIA_ENABLED_YES, MEDIA_ENABLED_AUTO };

/* [media] — the WebRTC SFU: rooms, WHIP and WHEP (keys: app/config.c; the
 * daemon turns it into a struct sfu_config, media/sfu.h). */
struct media_config {
    int enabled;                          /* enum media_enabled */
    char listen[64];                      /* IP address the media port binds */
    uint16_t port;                        /* UDP, and TCP for ICE-TCP; 0: any free port */
    char announce_ip[64];                 /* address in our candidates; "": listen's */
    bool ice_tcp;                         /* also ICE over TCP (RFC 6544 passive) */
    uint32_t consent_timeout_s;           /* RFC 7675: a peer silent this long is gone */
    uint32_t connect_timeout_s;           /* ICE + DTLS must finish within this */
    uint32_t max_peers, max_rooms, max_participants_per_room;
    uint32_t pli_interval_ms;             /* key frame requests per publisher stream, at most one per */
    uint32_t remb_bps;                    /* bitrate we ask publishers for (REMB) */
    char token_secret[128];               /* signs room join tokens; "": random per start */
    uint32_t idle_stop_s;                 /* GB live view: BYE this long after the last viewer */
    uint32_t flv_max_lag_ms;              /* live FLV: a viewer this far behind resumes at the newest key frame */
};

/* The daemon's aggregate: every section; roles get only their own. */
struct config {
    struct sip_config sip;
    struct tls_config tls;              /* [tls] — certificates for tls: listeners and outgoing TLS */
    struct registrar_config registrar;
    struct auth_config auth;
    struct proxy_config proxy;
    struct store_config store;
    struct redis_config redis;          /* [redis] — the Redis Cluster mirror (issue 16) */
    struct api_config api;
    struct events_config events;
    struct log_config log;
    struct gb_config gb;
    struct overload_config overload;    /* [overload] — 503 to new REGISTERs beyond capacity */
    struct media_config media;          /* [media] — rooms, WHIP, WHEP */
    struct subs_config subs;            /* [subscriptions] — the RFC 6665 notifier */
    struct offline_msg_config messages; /* [messages] — offline instant messages */
    struct config_upstream upstreams[CONFIG_MAX_UPSTREAMS];
    int upstream_count;
    struct config_given given;          /* the keys the file set (no key of its own) */
};

/* The key tables, each next to the code that reads its section. */
extern const struct config_section sip_config_section;        /* sip/sip_config.c */
extern const struct config_section tls_config_section;        /* transport/tls_config.c */
extern const struct config_section registrar_config_section;  /* registrar/registrar_config.c */
extern const struct config_section auth_config_section;       /* auth/auth_config.c */
extern const struct config_section proxy_config_section;      /* proxy/proxy_config.c */
extern const struct config_section store_config_section;      /* store/store_config.c */
extern const struct config_section redis_config_section;      /* redis/redis_config.c */
extern const struct config_section api_config_section;        /* api/api_config.c */
extern const struct config_section events_config_section;     /* events/events_config.c */
extern const struct config_section log_config_section;        /* base/log_config.c */
extern const struct config_section gb_config_section;         /* gb/upper/gb_config.c */
extern const struct config_section overload_config_section;   /* base/overload_config.c */
extern const struct config_section subs_config_section;       /* subs/subs_config.c */
extern const struct config_section upstream_config_section;   /* gb/lower/upstream_config.c */
extern const struct config_section media_config_section;      /* app/config.c (the SFU's config is media/sfu.h) */

/* Every section of struct config, in the order of the example file. */
extern const struct config_schema config_schema;

/* [store] backend = redis turns on the [redis] sharing switches (the
 * section's derived keys) that the file does not set: mirror_gb_devices with
 * [gb] enabled and mirror_presence with [subscriptions] enabled only (without
 * the role there is nothing to share); a missing [redis] nodes is an error.
 * One line: the backend and each sharing switch, on or off, with "(set)"
 * after those the file gave: what -t prints and the start-up logs. */
void config_sharing_describe(const struct config *cfg, char *out, size_t cap);

void config_init(struct config *cfg);
/* Returns 0, or -1 with the errors, one a line, in err (file unreadable,
 * unknown section or key, bad value). */
int config_load(struct config *cfg, const char *path, char *err, size_t errcap);
/* "udp:127.0.0.1:5060, tcp:127.0.0.1:5060" into cfg->sip.listen: 0, or -1. */
int config_parse_listen(struct config *cfg, const char *value);
/* "ip[/bits], ..." into cfg->proxy.trusted: 0, or -1 on a bad entry or too many. */
int config_parse_trusted(struct config *cfg, const char *value);

#endif
