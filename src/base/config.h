/* config.h — configuration as data: the INI mechanics (inih) driven by key
 * tables, and the settings structs of every section.
 *
 * Each module describes its own keys in a table (struct config_key: name,
 * type, where the value goes, default, range, one-line help) next to its
 * code, e.g. registrar/registrar_config.c; the app (app/config.c) lists the
 * sections of its aggregate. From the tables this file's loader applies the
 * defaults, parses and range-checks a file, names file and line of every
 * unknown section, unknown key or bad value, and prints the reference
 * (--help-config) and the example file (cascade.ini.example). */
#ifndef CASCADE_BASE_CONFIG_H
#define CASCADE_BASE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/overload.h"

struct sockaddr;

#define CONFIG_MAX_LISTEN 8
#define CONFIG_MAX_UPSTREAMS 16

enum config_transport { CONFIG_TRANSPORT_UDP = 0, CONFIG_TRANSPORT_TCP = 1 };

struct config_listen {
    enum config_transport transport;
    char host[64];
    uint16_t port;
};

struct config_upstream {               /* [upstream:<20-digit id>] — GB28181 lower role */
    char id[32];
    char host[64];
    uint16_t port;
    enum config_transport transport;
    char domain[32];
    char password[128];
    int expires;
    int keepalive_interval;
    int keepalive_misses;
    char charset[16];                   /* GB2312 | UTF-8 */
    bool enabled;
    int catalog_items;                  /* catalog items per Response MESSAGE (1..64, default 4) */
};

/* An address block: 192.0.2.10 (a /32), 10.0.0.0/8, 2001:db8::/32. */
struct config_cidr {
    int family;                          /* AF_INET or AF_INET6 */
    uint8_t addr[16];                    /* network byte order */
    uint8_t bits;
};
#define CONFIG_MAX_TRUSTED 32

struct sip_config { /* [sip] */
    struct config_listen listen[CONFIG_MAX_LISTEN];
    int listen_count;
    char domain[128];
    uint32_t t1_ms, t2_ms, t4_ms;
    uint32_t max_message_bytes;
    uint32_t tcp_idle_timeout_s;
    uint32_t tcp_max_connections;    /* clamped at start to RLIMIT_NOFILE minus a reserve */
    uint32_t tcp_max_per_ip;         /* accepted connections from one source IP */
    uint32_t tcp_message_timeout_s;  /* a message completes this long after its first byte */
    uint32_t tcp_first_message_timeout_s; /* an accepted connection sends a whole message by then */
    char user_agent[64];
    uint32_t max_server_transactions; /* live server transactions; beyond: 503 stateless */
};

struct registrar_config { /* [registrar] */
    int min_expires, max_expires, default_expires;
    bool keep_on_transport_loss;     /* keep bindings flagged instead of dropping them */
    int nat_ping_interval_s;         /* OPTIONS to UDP bindings behind NAT; 0: off */
    int nat_ping_max_lost;           /* unanswered pings in a row that remove the binding; 0: never */
    int max_contacts;                /* bindings per AoR; one more is refused 403; 0: no limit */
};

struct auth_config { /* [auth] */
    char realm[128];
    bool require_auth;
    bool match_user;
    char algorithm[16];              /* MD5 | SHA-256 | both */
    int nonce_ttl_s;
    int nonce_ttl_noqop_s;           /* nonces answered without qop (GB devices): replay window */
    int nonce_max_uses;              /* answers checked per nonce (nc ceiling with qop); 0: no limit */
    int max_failures;                /* failed attempts per source in failure_window, then lockout; 0: off */
    int max_failures_user;           /* ... per user, from any source; 0: off */
    int failure_window_s;            /* counting window, also the auth.failed event interval */
    int lockout_s;                   /* how long a locked source/user gets 403 */
};

struct proxy_config { /* [proxy] */
    char mode[16];                   /* proxy | redirect */
    bool allow_foreign;              /* forward requests for other domains */
    bool authenticate;               /* 407 for new requests from our users or relayed elsewhere */
    struct config_cidr trusted[CONFIG_MAX_TRUSTED]; /* sources never challenged (trunks, peers) */
    int trusted_count;
    uint32_t invite_timeout_s;       /* timer C */
    uint32_t non_invite_timeout_ms;  /* 408 upstream for unanswered non-INVITE; 0: 60*T1 */
    uint32_t pike_limit;             /* new requests per source per window; 0: off */
    uint32_t pike_window_s;          /* the pike window */
};

struct store_config { /* [store] */
    char path[512];
    uint32_t commit_window_ms;       /* group commit: ops wait this long for company (0: none) */
};

struct api_config { /* [api] */
    char listen[128];                /* host:port, empty disables */
    char token[128];
};

struct events_config { /* [events] */
    char webhook[512];
    int ring_size;
};

struct log_config { /* [log] */
    char level[16];
};

struct gb_config { /* [gb] — GB28181 upper role */
    bool enabled;
    char id[32];
    char domain[32];
    char password[128];
    bool allow_unknown;
    int keepalive_interval;
    int keepalive_misses;
    char charset[16];
    char media_ip[64];
    uint16_t media_port_min, media_port_max;
    bool catalog_on_register;
    int catalog_concurrency;         /* catalog-on-register queries in flight at once (1..10000, default 32) */
    bool qop;                        /* offer qop=auth in challenges */
    char default_media[512];         /* lower role: H.264 file for channels naming none ("" = built-in clip) */
};


/* ---- key and section descriptors */

enum config_type {
    CONFIG_BOOL,        /* bool: yes|no|on|off|true|false|1|0 */
    CONFIG_INT,         /* int field: decimal in [min, max] */
    CONFIG_UINT,        /* uint16_t/uint32_t field: decimal in [min, max] */
    CONFIG_STRING,      /* char[]: stored as written (truncated to fit); values: the allowed ones */
    CONFIG_ENUM,        /* int-sized field: the index of the value in values (case-insensitive) */
    CONFIG_LISTEN,      /* struct config_listen[]: "udp:host:port, tcp:host:port"; count at offset2 */
    CONFIG_CIDR,        /* struct config_cidr[]: "ip[/bits], ..."; count at offset2 */
    CONFIG_PORT_RANGE,  /* two uint16_t: "lo-hi" with min <= lo <= hi <= max; hi at offset2 */
};

struct config_key {
    const char *name;
    enum config_type type;
    size_t offset, size;                 /* the field in the section struct */
    const char *def;                     /* the default, as written in a file ("" for none) */
    long long min, max;                  /* INT, UINT, PORT_RANGE */
    const char *const *values;           /* ENUM, STRING: NULL-terminated; NULL: any string */
    size_t offset2;                      /* LISTEN, CIDR: int count; PORT_RANGE: the upper port */
    const char *help;                    /* one line */
};

/* offset and size of a field, for the key tables. */
#define CONFIG_FIELD(type, field) offsetof(type, field), sizeof(((type *)0)->field)

struct config_section {
    const char *name;                    /* [name]; instanced: [name:<id>] */
    const char *help;                    /* one line, printed above the section */
    const struct config_key *keys;
    size_t nkeys;
    /* Instanced sections ([upstream:<id>], many of them): where the id goes. */
    size_t id_offset, id_size;           /* id_size 0: a plain section */
    const char *example_id;              /* the id shown in the example file */
    /* Rules between keys, checked after the whole file: 0, or -1 with a message
     * ("[registrar] min_expires > max_expires") in err. NULL: none. */
    int (*check)(const void *section, char *err, size_t errcap);
};

/* Where a section lives in an aggregate (e.g. struct config). */
struct config_binding {
    const struct config_section *section;
    size_t offset;                       /* of the section struct (the first instance) */
    size_t stride;                       /* instanced: sizeof one instance; 0: plain */
    int max;                             /* instanced: at most this many */
    size_t count_offset;                 /* instanced: int count of instances */
};

struct config_schema {
    const char *title;                   /* comment lines heading the example file */
    const struct config_binding *bindings;
    size_t n;
};

/* ---- the loader */

/* Fills every plain section of agg with its table's defaults; no instances. */
void config_schema_defaults(const struct config_schema *s, void *agg);
/* Overlays the INI file at path onto agg. Returns 0, or -1 with every error
 * found, one a line ("FILE:LINE: [sip] t1_ms: bad value '0' (integer 1..60000)"),
 * in err. */
int config_schema_load(const struct config_schema *s, void *agg, const char *path, char *err, size_t errcap);
/* Parses one value of key into the section struct at sec: 0, or -1 (bad value). */
int config_key_parse(const struct config_key *k, void *sec, const char *value);
/* The allowed values of k in words ("integer 1..60000", "MD5|SHA-256|both"). */
void config_key_describe(const struct config_key *k, char *out, size_t cap);

enum config_format {
    CONFIG_FORMAT_HELP,                  /* every section and key: type, range, default, help */
    CONFIG_FORMAT_INI,                   /* an INI file of the defaults with the help as comments */
};
void config_schema_print(const struct config_schema *s, enum config_format f, FILE *out);

/* ---- value parsers with logic of their own */

/* "udp:127.0.0.1:5060, tcp:[::1]:5060" into list (at most max): 0, or -1. */
int config_parse_listens(struct config_listen *list, int *count, int max, const char *value);
/* "ip[/bits], ..." into list (at most max): 0, or -1 on a bad entry or too many. */
int config_parse_cidrs(struct config_cidr *list, int *count, int max, const char *value);
/* Whether sa (AF_INET/AF_INET6) falls in one of the n blocks. */
bool config_cidr_match(const struct config_cidr *list, int n, const struct sockaddr *sa);

#endif
