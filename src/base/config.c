/* config.c — the table-driven INI loader (see config.h). */
#include "base/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>

#include <ini.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

static int parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcmp(v, "1")) *out = true;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcasecmp(v, "false") || !strcmp(v, "0")) *out = false;
    else return -1;
    return 0;
}

static int parse_int(const char *v, long min, long max, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < min || n > max) return -1;
    *out = n;
    return 0;
}

static int parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *port)
{
    const char *colon;
    if (s[0] == '[') {                   /* [v6]:port */
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -1;
        snprintf(host, hostcap, "%.*s", (int)(rb - s - 1), s + 1);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return -1;
        snprintf(host, hostcap, "%.*s", (int)(colon - s), s);
    }
    long p;
    if (parse_int(colon + 1, 0, 65535, &p)) return -1;
    *port = (uint16_t)p;
    return 0;
}

int config_parse_listens(struct config_listen *list, int *count, int max, const char *value)
{
    char buf[1024];
    COPY(buf, value);
    *count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        if (*count == max) return -1;
        struct config_listen *l = &list[*count];
        static const char *const schemes[] = {"udp:", "tcp:", "tls:", "ws:", "wss:"};
        size_t skip = 0;
        for (int i = 0; i < (int)(sizeof(schemes) / sizeof(schemes[0])) && !skip; i++)
            if (!strncasecmp(tok, schemes[i], strlen(schemes[i]))) {
                l->transport = (enum config_transport)i;
                skip = strlen(schemes[i]);
            }
        if (!skip || parse_hostport(tok + skip, l->host, sizeof(l->host), &l->port)) return -1;
        (*count)++;
    }
    return *count ? 0 : -1;
}

int config_parse_cidrs(struct config_cidr *list, int *count, int max, const char *value)
{
    char buf[2048];
    COPY(buf, value);
    *count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        if (*count == max) return -1;
        struct config_cidr *c = &list[*count];
        memset(c, 0, sizeof(*c));
        char *slash = strchr(tok, '/');
        if (slash) *slash = '\0';
        if (inet_pton(AF_INET, tok, c->addr) == 1) c->family = AF_INET;
        else if (inet_pton(AF_INET6, tok, c->addr) == 1) c->family = AF_INET6;
        else return -1;
        long max_bits = c->family == AF_INET ? 32 : 128, bits = max_bits;
        if (slash && parse_int(slash + 1, 0, max_bits, &bits)) return -1;
        c->bits = (uint8_t)bits;
        (*count)++;
    }
    return 0;
}

bool config_cidr_match(const struct config_cidr *list, int n, const struct sockaddr *sa)
{
    const uint8_t *a;
    if (sa->sa_family == AF_INET) a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6) a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    else return false;
    for (int i = 0; i < n; i++) {
        const struct config_cidr *c = &list[i];
        if (c->family != sa->sa_family) continue;
        int full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(a, c->addr, (size_t)full) != 0) continue;
        if (rest && ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest)))) continue;
        return true;
    }
    return false;
}

/* ---- one key */

static void *field(void *sec, size_t offset) { return (char *)sec + offset; }

static void store_number(const struct config_key *k, void *sec, long n)
{
    void *f = field(sec, k->offset);
    switch (k->size) {
    case 1: *(uint8_t *)f = (uint8_t)n; break;
    case 2: *(uint16_t *)f = (uint16_t)n; break;
    case 8: *(int64_t *)f = (int64_t)n; break;
    default:
        if (k->type == CONFIG_UINT) *(uint32_t *)f = (uint32_t)n;
        else *(int *)f = (int)n;
    }
}

static int value_index(const char *const *values, const char *v)
{
    for (int i = 0; values[i]; i++)
        if (!strcasecmp(values[i], v)) return i;
    return -1;
}

static int parse_port_range(const struct config_key *k, void *sec, const char *v)
{
    char tmp[64];
    long lo, hi;
    COPY(tmp, v);
    char *dash = strchr(tmp, '-');
    if (!dash) return -1;
    *dash = 0;
    if (parse_int(tmp, k->min, k->max, &lo) || parse_int(dash + 1, k->min, k->max, &hi) || lo > hi) return -1;
    *(uint16_t *)field(sec, k->offset) = (uint16_t)lo;
    *(uint16_t *)field(sec, k->offset2) = (uint16_t)hi;
    return 0;
}

int config_key_parse(const struct config_key *k, void *sec, const char *v)
{
    long n;
    switch (k->type) {
    case CONFIG_BOOL: return parse_bool(v, (bool *)field(sec, k->offset));
    case CONFIG_INT:
    case CONFIG_UINT:
        if (parse_int(v, (long)k->min, (long)k->max, &n)) return -1;
        store_number(k, sec, n);
        return 0;
    case CONFIG_STRING:
        if (k->values && value_index(k->values, v) < 0) return -1;
        snprintf(field(sec, k->offset), k->size, "%s", v);
        return 0;
    case CONFIG_ENUM:
        if ((n = value_index(k->values, v)) < 0) return -1;
        store_number(k, sec, n);
        return 0;
    case CONFIG_LISTEN:
        return config_parse_listens(field(sec, k->offset), field(sec, k->offset2),
                                   (int)(k->size / sizeof(struct config_listen)), v);
    case CONFIG_CIDR:
        return config_parse_cidrs(field(sec, k->offset), field(sec, k->offset2),
                                  (int)(k->size / sizeof(struct config_cidr)), v);
    case CONFIG_PORT_RANGE: return parse_port_range(k, sec, v);
    }
    return -1;
}

static void join_values(const char *const *values, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; values[i] && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "|" : "", values[i]);
}

void config_key_describe(const struct config_key *k, char *out, size_t cap)
{
    switch (k->type) {
    case CONFIG_BOOL: snprintf(out, cap, "yes|no"); break;
    case CONFIG_INT:
    case CONFIG_UINT: snprintf(out, cap, "integer %lld..%lld", k->min, k->max); break;
    case CONFIG_STRING:
    case CONFIG_ENUM:
        if (k->values) join_values(k->values, out, cap);
        else snprintf(out, cap, "string, up to %zu bytes", k->size - 1);
        break;
    case CONFIG_LISTEN:
        snprintf(out, cap, "udp|tcp|tls|ws|wss:host:port, ... (1 to %zu)", k->size / sizeof(struct config_listen));
        break;
    case CONFIG_CIDR:
        snprintf(out, cap, "ip[/bits], ... (up to %zu)", k->size / sizeof(struct config_cidr));
        break;
    case CONFIG_PORT_RANGE: snprintf(out, cap, "low-high, ports %lld..%lld", k->min, k->max); break;
    }
}

/* ---- defaults */

static const struct config_key *find_key(const struct config_section *s, const char *name)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (!strcmp(s->keys[i].name, name)) return &s->keys[i];
    return NULL;
}

static void section_defaults(const struct config_section *s, void *sec)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct config_key *k = &s->keys[i];
        /* An empty listen list is no default: the key then starts empty. */
        if (config_key_parse(k, sec, k->def) < 0 && k->def[0]) {
            fprintf(stderr, "config: [%s] %s: the default '%s' does not parse\n", s->name, k->name, k->def);
            abort();                     /* a broken table: caught by test_config */
        }
    }
}

void config_schema_defaults(const struct config_schema *s, void *agg)
{
    if (s->n > CONFIG_GIVEN_MAX_SECTIONS) {
        fprintf(stderr, "config: %zu sections, the record of keys given holds %d\n", s->n, CONFIG_GIVEN_MAX_SECTIONS);
        abort();                         /* a broken table: caught by test_config */
    }
    if (s->given_size) memset(field(agg, s->given_offset), 0, s->given_size);
    for (size_t i = 0; i < s->n; i++) {
        const struct config_binding *b = &s->bindings[i];
        if (b->section->nkeys > CONFIG_GIVEN_MAX_KEYS) {
            fprintf(stderr, "config: [%s] has %zu keys, the record of keys given holds %d\n", b->section->name,
                    b->section->nkeys, CONFIG_GIVEN_MAX_KEYS);
            abort();
        }
        if (b->stride) *(int *)field(agg, b->count_offset) = 0;
        else section_defaults(b->section, field(agg, b->offset));
    }
}

/* ---- loading a file */

bool config_given_has(const struct config_schema *s, const struct config_given *g, const char *section,
                      const char *key)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct config_binding *b = &s->bindings[i];
        if (b->stride || strcmp(b->section->name, section)) continue;
        const struct config_key *k = find_key(b->section, key);
        return k && (g->keys[i] >> (k - b->section->keys) & 1);
    }
    return false;
}

struct load_ctx {
    const struct config_schema *schema;
    void *agg;
    const char *path;
    FILE *f;
    int line;                            /* the line inih is on */
    bool skip;                           /* in an unknown section (reported at its header) */
    struct config_given given;           /* the keys the file set */
    int errors;
    char *err;
    size_t errcap, errlen;
};

static void add_error(struct load_ctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_error(struct load_ctx *c, int line, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->errors++;
    if (c->errlen + 1 >= c->errcap) return;
    int n = line > 0 ? snprintf(c->err + c->errlen, c->errcap - c->errlen, "%s%s:%d: %s", c->errlen ? "\n" : "", c->path, line, msg)
                     : snprintf(c->err + c->errlen, c->errcap - c->errlen, "%s%s: %s", c->errlen ? "\n" : "", c->path, msg);
    c->errlen += (size_t)n;
    if (c->errlen >= c->errcap) c->errlen = c->errcap - 1;
}

/* The binding for a section name as written: "sip", or "upstream:<id>" (*id set). */
static const struct config_binding *binding_for(const struct load_ctx *c, const char *name, const char **id)
{
    *id = NULL;
    for (size_t i = 0; i < c->schema->n; i++) {
        const struct config_binding *b = &c->schema->bindings[i];
        size_t len = strlen(b->section->name);
        if (!b->stride && !strcmp(name, b->section->name)) return b;
        if (b->stride && !strncmp(name, b->section->name, len) && name[len] == ':') {
            *id = name + len + 1;
            return b;
        }
    }
    return NULL;
}

/* An instance of an instanced section by id, made (with the defaults) on first use. */
static void *instance_for(struct load_ctx *c, const struct config_binding *b, const char *id)
{
    int *count = field(c->agg, b->count_offset);
    const struct config_section *s = b->section;
    for (int i = 0; i < *count; i++) {
        char *inst = (char *)c->agg + b->offset + (size_t)i * b->stride;
        if (!strcmp(inst + s->id_offset, id)) return inst;
    }
    if (*count == b->max) return NULL;
    char *inst = (char *)c->agg + b->offset + (size_t)(*count)++ * b->stride;
    memset(inst, 0, b->stride);
    section_defaults(s, inst);
    snprintf(inst + s->id_offset, s->id_size, "%s", id);
    return inst;
}

/* inih reads a line at a time through this: count lines and look at section
 * headers, which inih does not report for a section without keys. */
static char *read_line(char *str, int num, void *stream)
{
    struct load_ctx *c = stream;
    if (!fgets(str, num, c->f)) return NULL;
    c->line++;
    const char *p = str;
    if (c->line == 1 && !strncmp(p, "\xEF\xBB\xBF", 3)) p += 3;   /* a UTF-8 BOM, as inih skips it */
    while (isspace((unsigned char)*p)) p++;
    if (*p == '[') {
        const char *end = strchr(p + 1, ']'), *id;
        if (!end) return str;           /* inih reports the syntax error */
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
        c->skip = !binding_for(c, name, &id);
        if (c->skip) add_error(c, c->line, "unknown section [%s]", name);
    }
    return str;
}

static int on_key(void *user, const char *section, const char *name, const char *v)
{
    struct load_ctx *c = user;
    const char *id;
    if (c->skip || !name) return 1;      /* !name: a new section, when inih reports those */
    const struct config_binding *b = binding_for(c, section, &id);
    if (!b && section[0]) {              /* a header read_line did not see */
        add_error(c, c->line, "unknown section [%s]", section);
        c->skip = true;
        return 1;
    }
    if (!b) {                            /* keys before any section */
        add_error(c, c->line, "%s: key outside a section", name);
        return 1;
    }
    const struct config_key *k = find_key(b->section, name);
    if (!k) {
        add_error(c, c->line, "[%s] %s: unknown key", section, name);
        return 1;
    }
    void *sec = b->stride ? instance_for(c, b, id) : field(c->agg, b->offset);
    if (!sec) {
        add_error(c, c->line, "[%s]: too many [%s:<id>] sections (at most %d)", section, b->section->name, b->max);
        return 1;
    }
    if (!b->stride) c->given.keys[b - c->schema->bindings] |= 1ull << (k - b->section->keys);
    if (config_key_parse(k, sec, v) < 0) {
        char allowed[256];
        config_key_describe(k, allowed, sizeof(allowed));
        add_error(c, c->line, "[%s] %s: bad value '%s' (%s)", section, name, v, allowed);
    }
    return 1;
}

static void run_checks(struct load_ctx *c)
{
    for (size_t i = 0; i < c->schema->n; i++) {
        const struct config_binding *b = &c->schema->bindings[i];
        if (!b->section->check) continue;
        int n = b->stride ? *(int *)field(c->agg, b->count_offset) : 1;
        for (int j = 0; j < n; j++) {
            char msg[256];
            if (b->section->check((char *)c->agg + b->offset + (size_t)j * b->stride, msg, sizeof(msg)) < 0)
                add_error(c, 0, "%s", msg);
        }
    }
}

int config_schema_load(const struct config_schema *s, void *agg, const char *path, char *err, size_t errcap)
{
    struct load_ctx c = {.schema = s, .agg = agg, .path = path, .err = err, .errcap = errcap};
    err[0] = 0;
    c.f = fopen(path, "r");
    if (!c.f) {
        snprintf(err, errcap, "%s: cannot open", path);
        return -1;
    }
    /* on_key records its own errors and always goes on, so rc > 0 is inih's
     * first syntax error. */
    int rc = ini_parse_stream(read_line, &c, on_key, &c);
    fclose(c.f);
    if (rc > 0) add_error(&c, rc, "syntax error");
    else if (rc < 0) add_error(&c, 0, "cannot read");
    if (s->given_size == sizeof(c.given)) memcpy(field(agg, s->given_offset), &c.given, sizeof(c.given));
    if (s->resolve) {
        char msg[512];
        if (s->resolve(agg, &c.given, msg, sizeof(msg)) < 0) add_error(&c, 0, "%s", msg);
    }
    run_checks(&c);
    return c.errors ? -1 : 0;
}

/* ---- printing the tables */

/* Writes text as comment lines from column col, wrapped before width. */
static void print_comment(FILE *out, int col, int at, const char *text, int width)
{
    const char *p = text;
    while (*p) {
        if (at < col) at += fprintf(out, "%*s", col - at, "");
        int room = width - col - 2, len = (int)strlen(p);
        if (len > room) {
            int cut = room;
            while (cut > 0 && p[cut] != ' ') cut--;
            if (cut == 0) cut = room;
            len = cut;
        }
        fprintf(out, "; %.*s\n", len, p);
        p += len;
        while (*p == ' ') p++;
        at = 0;
    }
}

static void print_ini_key(FILE *out, const struct config_key *k, bool commented)
{
    char allowed[256] = "", help[512];
    if (k->type == CONFIG_INT || k->type == CONFIG_UINT) snprintf(allowed, sizeof(allowed), "%lld..%lld", k->min, k->max);
    else if (k->values) join_values(k->values, allowed, sizeof(allowed));
    if (allowed[0]) snprintf(help, sizeof(help), "%s [%s]", k->help, allowed);
    else snprintf(help, sizeof(help), "%s", k->help);
    int at = fprintf(out, "%s%s =%s%s", commented ? ";" : "", k->name, k->def[0] ? " " : "", k->def);
    print_comment(out, at < 34 ? 34 : at + 1, at, help, 110);
}

static void print_ini(const struct config_schema *s, FILE *out)
{
    print_comment(out, 0, 0, s->title, 80);
    for (size_t i = 0; i < s->n; i++) {
        const struct config_section *sec = s->bindings[i].section;
        bool inst = s->bindings[i].stride != 0;
        fprintf(out, "\n");
        print_comment(out, 0, 0, sec->help, 100);
        if (inst) fprintf(out, ";[%s:%s]\n", sec->name, sec->example_id);
        else fprintf(out, "[%s]\n", sec->name);
        for (size_t j = 0; j < sec->nkeys; j++) {
            bool derived = sec->derived && value_index(sec->derived, sec->keys[j].name) >= 0;
            print_ini_key(out, &sec->keys[j], inst || derived); /* derived: commented out, not pinned */
        }
    }
}

static void print_help(const struct config_schema *s, FILE *out)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct config_section *sec = s->bindings[i].section;
        if (i) fprintf(out, "\n");
        if (s->bindings[i].stride) fprintf(out, "[%s:<id>] (up to %d)\n", sec->name, s->bindings[i].max);
        else fprintf(out, "[%s]\n", sec->name);
        fprintf(out, "  %s\n", sec->help);
        for (size_t j = 0; j < sec->nkeys; j++) {
            const struct config_key *k = &sec->keys[j];
            char allowed[256];
            config_key_describe(k, allowed, sizeof(allowed));
            fprintf(out, "  %-26s %s; default \"%s\"\n  %-26s %s\n", k->name, allowed, k->def, "", k->help);
        }
    }
}

void config_schema_print(const struct config_schema *s, enum config_format f, FILE *out)
{
    if (f == CONFIG_FORMAT_INI) print_ini(s, out);
    else print_help(s, out);
}

/* ---- comparing two aggregates */

static const void *cfield(const void *sec, size_t offset) { return (const char *)sec + offset; }

bool config_key_equal(const struct config_key *k, const void *a, const void *b)
{
    const void *fa = cfield(a, k->offset), *fb = cfield(b, k->offset);
    switch (k->type) {
    case CONFIG_STRING: return strncmp(fa, fb, k->size) == 0; /* bytes after the end may differ */
    case CONFIG_LISTEN:
    case CONFIG_CIDR: {
        int na = *(const int *)cfield(a, k->offset2), nb = *(const int *)cfield(b, k->offset2);
        if (na != nb) return false;
        for (int i = 0; i < na; i++) {
            if (k->type == CONFIG_LISTEN) {
                const struct config_listen *la = (const struct config_listen *)fa + i;
                const struct config_listen *lb = (const struct config_listen *)fb + i;
                if (la->transport != lb->transport || la->port != lb->port || strcmp(la->host, lb->host)) return false;
            } else {
                const struct config_cidr *ca = (const struct config_cidr *)fa + i;
                const struct config_cidr *cb = (const struct config_cidr *)fb + i;
                if (ca->family != cb->family || ca->bits != cb->bits || memcmp(ca->addr, cb->addr, sizeof(ca->addr)))
                    return false;
            }
        }
        return true;
    }
    case CONFIG_PORT_RANGE:
        return !memcmp(fa, fb, sizeof(uint16_t)) && !memcmp(cfield(a, k->offset2), cfield(b, k->offset2), sizeof(uint16_t));
    case CONFIG_BOOL:
    case CONFIG_INT:
    case CONFIG_UINT:
    case CONFIG_ENUM: return memcmp(fa, fb, k->size) == 0;
    }
    return false;
}

static int section_diff(const struct config_section *s, const char *id, const void *a, const void *b,
                        config_diff_cb cb, void *arg)
{
    int n = 0;
    for (size_t i = 0; i < s->nkeys; i++) {
        if (config_key_equal(&s->keys[i], a, b)) continue;
        cb(arg, s, id, &s->keys[i], CONFIG_KEY_CHANGED);
        n++;
    }
    return n;
}

/* The instance of b with the given id in agg, or NULL. */
static const void *instance_find(const struct config_binding *b, const void *agg, const char *id)
{
    int count = *(const int *)cfield(agg, b->count_offset);
    for (int i = 0; i < count; i++) {
        const char *inst = (const char *)agg + b->offset + (size_t)i * b->stride;
        if (!strncmp(inst + b->section->id_offset, id, b->section->id_size)) return inst;
    }
    return NULL;
}

int config_schema_diff(const struct config_schema *s, const void *old_agg, const void *new_agg, config_diff_cb cb,
                       void *arg)
{
    int n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct config_binding *b = &s->bindings[i];
        const struct config_section *sec = b->section;
        if (!b->stride) {
            n += section_diff(sec, NULL, cfield(old_agg, b->offset), cfield(new_agg, b->offset), cb, arg);
            continue;
        }
        /* Instances: removed and changed in the old order, then added in the new. */
        int nold = *(const int *)cfield(old_agg, b->count_offset);
        for (int j = 0; j < nold; j++) {
            const char *o = (const char *)old_agg + b->offset + (size_t)j * b->stride;
            const char *id = o + sec->id_offset;
            const void *nw = instance_find(b, new_agg, id);
            if (!nw) {
                cb(arg, sec, id, NULL, CONFIG_INSTANCE_REMOVED);
                n++;
            } else {
                n += section_diff(sec, id, o, nw, cb, arg);
            }
        }
        int nnew = *(const int *)cfield(new_agg, b->count_offset);
        for (int j = 0; j < nnew; j++) {
            const char *nw = (const char *)new_agg + b->offset + (size_t)j * b->stride;
            if (instance_find(b, old_agg, nw + sec->id_offset)) continue;
            cb(arg, sec, nw + sec->id_offset, NULL, CONFIG_INSTANCE_ADDED);
            n++;
        }
    }
    return n;
}
