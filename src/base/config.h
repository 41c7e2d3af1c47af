/* config.h — configuration as data: the INI mechanics (inih) driven by key
 * tables. The settings struct of each section lives with its module
 * (registrar/registrar_config.h, ...), the aggregate in app/config.h.
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

struct sockaddr;

/* Value types the loader parses besides numbers and strings: a listen list
 * ("udp:127.0.0.1:5060, tcp:...") and address blocks (config_cidr). */
#define CONFIG_MAX_LISTEN 8

/* Numbered as enum sip_transport (sip/proto.h), which base cannot include. */
enum config_transport {
    CONFIG_TRANSPORT_UDP = 0,
    CONFIG_TRANSPORT_TCP = 1,
    CONFIG_TRANSPORT_TLS = 2,
    CONFIG_TRANSPORT_WS = 3,
    CONFIG_TRANSPORT_WSS = 4,
};

struct config_listen {
    enum config_transport transport;
    char host[64];
    uint16_t port;
};

/* An address block: 192.0.2.10 (a /32), 10.0.0.0/8, 2001:db8::/32. */
struct config_cidr {
    int family;                          /* AF_INET or AF_INET6 */
    uint8_t addr[16];                    /* network byte order */
    uint8_t bits;
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
    /* Keys whose default another key changes (config_schema.resolve), NULL-
     * terminated: the example file has them commented out, so that a copy of
     * it does not pin them to the plain default. NULL: none. */
    const char *const *derived;
};

/* Where a section lives in an aggregate (e.g. struct config). */
struct config_binding {
    const struct config_section *section;
    size_t offset;                       /* of the section struct (the first instance) */
    size_t stride;                       /* instanced: sizeof one instance; 0: plain */
    int max;                             /* instanced: at most this many */
    size_t count_offset;                 /* instanced: int count of instances */
};

/* Which keys a file set (whatever value, a default's too): one bit per key
 * of each plain section's table, bindings and keys in table order. Instanced
 * sections are not recorded (each instance is new in its file anyway). Rules
 * that derive a key from others (config_schema.resolve) read it to leave alone
 * what the operator wrote. */
#define CONFIG_GIVEN_MAX_SECTIONS 32
#define CONFIG_GIVEN_MAX_KEYS 64
struct config_given {
    uint64_t keys[CONFIG_GIVEN_MAX_SECTIONS]; /* bit i: key i of binding b's table */
};

struct config_schema {
    const char *title;                   /* comment lines heading the example file */
    const struct config_binding *bindings;
    size_t n;
    /* Where the aggregate keeps its struct config_given; filled by
     * config_schema_load. given_size 0: not kept (resolve gets a local one). */
    size_t given_offset, given_size;
    /* Rules across sections, run after the file is read and before the
     * sections' checks: may set keys the file did not give (given), 0, or -1
     * with a message in err. NULL: none. */
    int (*resolve)(void *agg, const struct config_given *given, char *err, size_t errcap);
};

/* ---- the loader */

/* Fills every plain section of agg with its table's defaults; no instances. */
void config_schema_defaults(const struct config_schema *s, void *agg);
/* Overlays the INI file at path onto agg. Returns 0, or -1 with every error
 * found, one a line ("FILE:LINE: [sip] t1_ms: bad value '0' (integer 1..60000)"),
 * in err. */
int config_schema_load(const struct config_schema *s, void *agg, const char *path, char *err, size_t errcap);
/* Whether the file set key of the plain section named section (by the record
 * of config_schema_load); false for an unknown name. */
bool config_given_has(const struct config_schema *s, const struct config_given *g, const char *section,
                      const char *key);
/* Parses one value of key into the section struct at sec: 0, or -1 (bad value). */
int config_key_parse(const struct config_key *k, void *sec, const char *value);
/* The allowed values of k in words ("integer 1..60000", "MD5|SHA-256|both"). */
void config_key_describe(const struct config_key *k, char *out, size_t cap);

/* ---- comparing two aggregates (a reload: what the file changed) */

enum config_change {
    CONFIG_KEY_CHANGED,      /* a key of a plain section or of an instance in both */
    CONFIG_INSTANCE_ADDED,   /* an instanced section only in the new aggregate (key NULL) */
    CONFIG_INSTANCE_REMOVED, /* an instanced section only in the old one (key NULL) */
};
/* One difference: the section's table, the instance's id (NULL for a plain
 * section), the key (NULL for a whole instance added or removed). */
typedef void (*config_diff_cb)(void *arg, const struct config_section *s, const char *id, const struct config_key *k,
                               enum config_change what);
/* Calls cb for every key whose value differs between old_agg and new_agg
 * (strings up to their end, lists element by element), in table order;
 * instances are matched by id. Returns how many differences were reported. */
int config_schema_diff(const struct config_schema *s, const void *old_agg, const void *new_agg, config_diff_cb cb,
                       void *arg);
/* Whether k has the same value in the section structs a and b. */
bool config_key_equal(const struct config_key *k, const void *a, const void *b);

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
