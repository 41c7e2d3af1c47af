/* manscdp.c — MANSCDP body codec (see manscdp.h).
 *
 * Decoding is done here with iconv rather than by libxml2 from the
 * declaration, because the declaration is the least trustworthy part of a
 * device's body: we pick the charset, convert to UTF-8, and let libxml2 parse
 * UTF-8 with the declaration ignored (XML_PARSE_IGNORE_ENC). The fields of
 * every element level are described by tables that both the parser and the
 * builder walk, so the two cannot drift apart. */
#include "gb/codec/manscdp.h"

#include <errno.h>
#include <iconv.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

/* ---- names ---- */

static const char *const kind_names[] = {NULL, "Query", "Response", "Notify", "Control"};
static const char *const cmd_names[] = {NULL,           "Keepalive",  "Catalog",       "DeviceInfo",
                                        "DeviceStatus", "RecordInfo", "DeviceControl", "Alarm",
                                        "MobilePosition"};
static const char *const event_names[] = {NULL, "ON", "OFF", "VLOST", "DEFECT", "ADD", "DEL", "UPDATE"};

const char *gb_msg_kind_name(gb_msg_kind_t kind)
{
    return (unsigned)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : NULL;
}

const char *gb_cmd_name(gb_cmd_t cmd)
{
    return (unsigned)cmd < sizeof(cmd_names) / sizeof(cmd_names[0]) ? cmd_names[cmd] : NULL;
}

const char *gb_catalog_event_name(gb_catalog_event_t ev)
{
    return (unsigned)ev < sizeof(event_names) / sizeof(event_names[0]) ? event_names[ev] : NULL;
}

const char *gb_charset_name(gb_charset_t cs)
{
    switch (cs) {
    case GB_CHARSET_UTF8: return "UTF-8";
    case GB_CHARSET_GBK: return "GBK";
    case GB_CHARSET_GB18030: return "GB18030";
    default: return "GB2312";
    }
}

int gb_charset_from_name(const char *name, gb_charset_t *out)
{
    if (!name) return -1;
    static const struct {
        const char *name;
        gb_charset_t cs;
    } names[] = {
        {"GB2312", GB_CHARSET_GB2312}, {"EUC-CN", GB_CHARSET_GB2312}, {"UTF-8", GB_CHARSET_UTF8},
        {"UTF8", GB_CHARSET_UTF8},     {"GBK", GB_CHARSET_GBK},       {"CP936", GB_CHARSET_GBK},
        {"GB18030", GB_CHARSET_GB18030},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].cs;
            return 0;
        }
    }
    return -1;
}

const char *gb_manscdp_strerror(int err)
{
    switch (err) {
    case 0: return "ok";
    case GB_MANSCDP_ETOOBIG: return "body too large";
    case GB_MANSCDP_ECHARSET: return "undecodable charset";
    case GB_MANSCDP_EXML: return "malformed XML";
    case GB_MANSCDP_EDTD: return "DOCTYPE/entities refused";
    case GB_MANSCDP_EROOT: return "unknown root element";
    case GB_MANSCDP_ECMD: return "no CmdType";
    case GB_MANSCDP_ELIMIT: return "too many items or too deep";
    case GB_MANSCDP_ENOMEM: return "out of memory";
    case GB_MANSCDP_EARG: return "bad arguments";
    default: return "unknown error";
    }
}

/* ---- field tables ---- */

enum field_type {
    F_STR,      /* char * */
    F_INT,      /* int, -1 absent */
    F_I64,      /* int64_t, -1 absent */
    F_U32,      /* uint32_t with a bool "has" at off2 */
    F_ONOFF,    /* gb_onoff_t */
    F_EVENT,    /* gb_catalog_event_t */
    F_LON,      /* double, with has_position at off2 */
    F_LAT,      /* double, with has_position at off2 */
    F_CMDTYPE,  /* char *cmd_type + gb_cmd_t cmd at off2 */
};

typedef struct {
    const char *name;
    enum field_type type;
    size_t off, off2;
} field_t;

#define M(f) offsetof(gb_manscdp_t, f)
static const field_t root_fields[] = {
    {"CmdType", F_CMDTYPE, M(cmd_type), M(cmd)},
    {"SN", F_U32, M(sn), M(has_sn)},
    {"DeviceID", F_STR, M(device_id), 0},
    {"Status", F_STR, M(status), 0},
    {"Result", F_STR, M(result), 0},
    {"Name", F_STR, M(name), 0},
    {"NotifyType", F_STR, M(notify_type), 0},
    {"SumNum", F_U32, M(sum_num), M(has_sum_num)},
    /* DeviceInfo */
    {"DeviceName", F_STR, M(info.device_name), 0},
    {"Manufacturer", F_STR, M(info.manufacturer), 0},
    {"Model", F_STR, M(info.model), 0},
    {"Firmware", F_STR, M(info.firmware), 0},
    {"Channel", F_INT, M(info.channel), 0},
    /* DeviceStatus */
    {"Online", F_STR, M(dstatus.online), 0},
    {"Encode", F_STR, M(dstatus.encode), 0},
    {"Record", F_STR, M(dstatus.record), 0},
    {"DeviceTime", F_STR, M(dstatus.device_time), 0},
    /* RecordInfo query */
    {"StartTime", F_STR, M(record_query.start_time), 0},
    {"EndTime", F_STR, M(record_query.end_time), 0},
    {"FilePath", F_STR, M(record_query.file_path), 0},
    {"Address", F_STR, M(record_query.address), 0},
    {"Secrecy", F_INT, M(record_query.secrecy), 0},
    {"Type", F_STR, M(record_query.type), 0},
    {"RecorderID", F_STR, M(record_query.recorder_id), 0},
    /* DeviceControl */
    {"PTZCmd", F_STR, M(control.ptz_cmd), 0},
    {"TeleBoot", F_STR, M(control.tele_boot), 0},
    {"RecordCmd", F_STR, M(control.record_cmd), 0},
    {"GuardCmd", F_STR, M(control.guard_cmd), 0},
    {"AlarmCmd", F_STR, M(control.alarm_cmd), 0},
    /* Alarm notify */
    {"AlarmPriority", F_STR, M(alarm.priority), 0},
    {"AlarmMethod", F_STR, M(alarm.method), 0},
    {"AlarmTime", F_STR, M(alarm.time), 0},
    {"AlarmDescription", F_STR, M(alarm.description), 0},
    /* MobilePosition notify and query */
    {"Time", F_STR, M(position.time), 0},
    {"Longitude", F_LON, M(longitude), M(has_position)},
    {"Latitude", F_LAT, M(latitude), M(has_position)},
    {"Speed", F_STR, M(position.speed), 0},
    {"Direction", F_STR, M(position.direction), 0},
    {"Altitude", F_STR, M(position.altitude), 0},
    {"Interval", F_INT, M(interval), 0},
};

/* <Info> of an alarm notify: its fields land in the message itself. */
static const field_t info_fields[] = {
    {"AlarmType", F_STR, M(alarm.type), 0},
};
#undef M

#define C(f) offsetof(gb_catalog_item_t, f)
static const field_t catalog_fields[] = {
    {"DeviceID", F_STR, C(device_id), 0},
    {"Event", F_EVENT, C(event), 0},
    {"Name", F_STR, C(name), 0},
    {"Manufacturer", F_STR, C(manufacturer), 0},
    {"Model", F_STR, C(model), 0},
    {"Owner", F_STR, C(owner), 0},
    {"CivilCode", F_STR, C(civil_code), 0},
    {"Block", F_STR, C(block), 0},
    {"Address", F_STR, C(address), 0},
    {"Parental", F_INT, C(parental), 0},
    {"ParentID", F_STR, C(parent_id), 0},
    {"BusinessGroupID", F_STR, C(business_group_id), 0},
    {"SafetyWay", F_INT, C(safety_way), 0},
    {"RegisterWay", F_INT, C(register_way), 0},
    {"Secrecy", F_INT, C(secrecy), 0},
    {"IPAddress", F_STR, C(ip_address), 0},
    {"Port", F_INT, C(port), 0},
    {"Status", F_ONOFF, C(status), 0},
    {"Longitude", F_LON, C(longitude), C(has_position)},
    {"Latitude", F_LAT, C(latitude), C(has_position)},
};
#undef C

#define R(f) offsetof(gb_record_item_t, f)
static const field_t record_fields[] = {
    {"DeviceID", F_STR, R(device_id), 0},   {"Name", F_STR, R(name), 0},
    {"FilePath", F_STR, R(file_path), 0},   {"Address", F_STR, R(address), 0},
    {"StartTime", F_STR, R(start_time), 0}, {"EndTime", F_STR, R(end_time), 0},
    {"Secrecy", F_INT, R(secrecy), 0},      {"Type", F_STR, R(type), 0},
    {"RecorderID", F_STR, R(recorder_id), 0}, {"FileSize", F_I64, R(file_size), 0},
};
#undef R

#define A(f) offsetof(gb_alarm_status_t, f)
static const field_t alarm_fields[] = {
    {"DeviceID", F_STR, A(device_id), 0},
    {"DutyStatus", F_STR, A(duty_status), 0},
};
#undef A

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

/* Sets the "absent" value of every field of a table. */
static void fields_init(void *obj, const field_t *f, size_t n)
{
    char *base = obj;
    for (size_t i = 0; i < n; i++) {
        if (f[i].type == F_INT) *(int *)(base + f[i].off) = -1;
        if (f[i].type == F_I64) *(int64_t *)(base + f[i].off) = -1;
    }
}

static void fields_free(void *obj, const field_t *f, size_t n)
{
    char *base = obj;
    for (size_t i = 0; i < n; i++) {
        if (f[i].type == F_STR || f[i].type == F_CMDTYPE) {
            char **p = (char **)(base + f[i].off);
            free(*p);
            *p = NULL;
        }
    }
}

void gb_catalog_item_init(gb_catalog_item_t *it)
{
    memset(it, 0, sizeof(*it));
    fields_init(it, catalog_fields, NFIELDS(catalog_fields));
}

void gb_manscdp_init(gb_manscdp_t *m)
{
    memset(m, 0, sizeof(*m));
    fields_init(m, root_fields, NFIELDS(root_fields));
}

void gb_manscdp_free(gb_manscdp_t *m)
{
    if (!m) return;
    fields_free(m, root_fields, NFIELDS(root_fields));
    fields_free(m, info_fields, NFIELDS(info_fields));
    for (size_t i = 0; i < m->item_count; i++) fields_free(&m->items[i], catalog_fields, NFIELDS(catalog_fields));
    free(m->items);
    for (size_t i = 0; i < m->record_count; i++) fields_free(&m->records[i], record_fields, NFIELDS(record_fields));
    free(m->records);
    for (size_t i = 0; i < m->dstatus.alarm_count; i++)
        fields_free(&m->dstatus.alarms[i], alarm_fields, NFIELDS(alarm_fields));
    free(m->dstatus.alarms);
    gb_manscdp_init(m);
}

/* ---- charset handling ---- */

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). Returns
 * the sequence length at p and the code point, or 0 when invalid. */
static size_t utf8_decode(const unsigned char *p, size_t avail, uint32_t *cp)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) n = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

static bool all_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80) return false;
    return true;
}

static bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (!n) return false;
        i += n;
    }
    return true;
}

/* iconv name for a declared/Content-Type charset we accept, or NULL. */
static const char *known_charset(const char *name, gb_charset_t *cs)
{
    static const struct {
        const char *name, *iconv;
        gb_charset_t cs;
    } names[] = {
        {"GB2312", "GB2312", GB_CHARSET_GB2312}, {"EUC-CN", "GB2312", GB_CHARSET_GB2312},
        {"GBK", "GBK", GB_CHARSET_GBK},          {"CP936", "GBK", GB_CHARSET_GBK},
        {"GB18030", "GB18030", GB_CHARSET_GB18030}, {"UTF-8", "UTF-8", GB_CHARSET_UTF8},
        {"UTF8", "UTF-8", GB_CHARSET_UTF8},      {"US-ASCII", "UTF-8", GB_CHARSET_UTF8},
        {"ASCII", "UTF-8", GB_CHARSET_UTF8},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *cs = names[i].cs;
            return names[i].iconv;
        }
    }
    return NULL;
}

/* The encoding="..." of an XML declaration at the start of body, copied into
 * out (bounded); false when there is none. */
static bool declared_encoding(const char *body, size_t len, char *out, size_t cap)
{
    if (len < 6 || memcmp(body, "<?xml", 5) != 0) return false;
    size_t end = len < 256 ? len : 256;
    const char *close = memmem(body, end, "?>", 2);
    if (close) end = (size_t)(close - body);
    const char *e = memmem(body, end, "encoding", 8);
    if (!e) return false;
    size_t i = (size_t)(e - body) + 8;
    while (i < end && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) i++;
    if (i >= end || body[i] != '=') return false;
    i++;
    while (i < end && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) i++;
    if (i >= end || (body[i] != '"' && body[i] != '\'')) return false;
    char q = body[i++];
    size_t n = 0;
    while (i < end && body[i] != q && n + 1 < cap) out[n++] = body[i++];
    if (i >= end || body[i] != q || n == 0) return false;
    out[n] = '\0';
    return true;
}

/* Converts len bytes in charset from into a malloc'ed UTF-8 copy (strict:
 * any invalid or incomplete sequence fails). NULL on failure. */
static char *to_utf8(const char *in, size_t len, const char *from, size_t *out_len)
{
    if (strcmp(from, "UTF-8") == 0) {
        if (!utf8_valid(in, len)) return NULL;
        char *p = malloc(len + 1);
        if (!p) return NULL;
        memcpy(p, in, len);
        p[len] = '\0';
        *out_len = len;
        return p;
    }
    iconv_t cd = iconv_open("UTF-8", from);
    if (cd == (iconv_t)-1) return NULL;
    /* One input byte never becomes more than 3 UTF-8 bytes (a single byte
     * maps into the BMP; 2 -> at most 3; GB18030's 4 -> at most 4). */
    size_t cap = len * 3 + 16;
    char *buf = malloc(cap);
    char *ret = NULL;
    if (buf) {
        char *ip = (char *)in, *op = buf;
        size_t il = len, ol = cap - 1;
        if (iconv(cd, &ip, &il, &op, &ol) != (size_t)-1 && il == 0 &&
            iconv(cd, NULL, NULL, &op, &ol) != (size_t)-1) {
            *op = '\0';
            *out_len = (size_t)(op - buf);
            ret = buf;
        } else {
            free(buf);
        }
    }
    iconv_close(cd);
    return ret;
}

/* ---- parsing ---- */

static bool name_is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcasecmp((const char *)n->name, name) == 0;
}

static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Trimmed text content as a malloc'ed string; NULL only on allocation failure. */
static char *node_text(xmlNode *n)
{
    xmlChar *c = xmlNodeGetContent(n);
    const char *s = c ? (const char *)c : "";
    size_t len = strlen(s);
    while (len && is_ws((unsigned char)s[0])) s++, len--;
    while (len && is_ws((unsigned char)s[len - 1])) len--;
    char *r = malloc(len + 1);
    if (r) {
        memcpy(r, s, len);
        r[len] = '\0';
    }
    xmlFree(c);
    return r;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!*s) return false;
    if (*s == '+') s++;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static gb_onoff_t parse_onoff(const char *s)
{
    if (!strcasecmp(s, "ON") || !strcasecmp(s, "ONLINE") || !strcasecmp(s, "OK") || !strcmp(s, "1"))
        return GB_ONOFF_ON;
    if (!strcasecmp(s, "OFF") || !strcasecmp(s, "OFFLINE") || !strcmp(s, "0")) return GB_ONOFF_OFF;
    return GB_ONOFF_NONE;
}

static gb_cmd_t parse_cmd(const char *s)
{
    for (size_t i = 1; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
        if (strcasecmp(s, cmd_names[i]) == 0) return (gb_cmd_t)i;
    return GB_CMD_UNKNOWN;
}

/* Fills the fields of obj from the element children of parent; the first
 * occurrence of a field wins. Unknown elements are skipped. Returns 0 or ENOMEM. */
static int parse_fields(xmlNode *parent, void *obj, const field_t *f, size_t nf)
{
    char *base = obj;
    uint64_t seen = 0;
    bool lon_ok = false, lat_ok = false;
    for (xmlNode *n = parent->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        for (size_t i = 0; i < nf; i++) {
            if (!name_is(n, f[i].name)) continue;
            if (seen & (1ull << i)) break;
            seen |= 1ull << i;
            char *t = node_text(n);
            if (!t) return GB_MANSCDP_ENOMEM;
            void *p = base + f[i].off;
            uint64_t v;
            switch (f[i].type) {
            case F_STR: *(char **)p = t, t = NULL; break;
            case F_CMDTYPE:
                *(gb_cmd_t *)(base + f[i].off2) = parse_cmd(t);
                *(char **)p = t, t = NULL;
                break;
            case F_INT:
                if (parse_u64(t, INT_MAX, &v)) *(int *)p = (int)v;
                break;
            case F_I64:
                if (parse_u64(t, INT64_MAX, &v)) *(int64_t *)p = (int64_t)v;
                break;
            case F_U32:
                if (parse_u64(t, UINT32_MAX, &v)) *(uint32_t *)p = (uint32_t)v, *(bool *)(base + f[i].off2) = true;
                break;
            case F_ONOFF: *(gb_onoff_t *)p = parse_onoff(t); break;
            case F_EVENT:
                for (size_t k = 1; k < sizeof(event_names) / sizeof(event_names[0]); k++)
                    if (strcasecmp(t, event_names[k]) == 0) *(gb_catalog_event_t *)p = (gb_catalog_event_t)k;
                break;
            case F_LON:
            case F_LAT: {
                char *end;
                double d = strtod(t, &end);
                if (end != t && *end == '\0' && isfinite(d)) {
                    *(double *)p = d;
                    if (f[i].type == F_LON) lon_ok = true;
                    else lat_ok = true;
                    *(bool *)(base + f[i].off2) = lon_ok && lat_ok;
                }
                break;
            }
            }
            free(t);
            break;
        }
    }
    return 0;
}

/* Parses <List Num="k"><Item>...</Item>...</List> into a calloc'ed array. */
static int parse_list(xmlNode *list, size_t elem_size, const field_t *f, size_t nf, void **out, size_t *count,
                      uint32_t *num_attr)
{
    xmlChar *num = xmlGetProp(list, (const xmlChar *)"Num");
    uint64_t v;
    if (num && num_attr) {
        char *s = (char *)num;
        while (is_ws((unsigned char)*s)) s++;
        size_t l = strlen(s);
        while (l && is_ws((unsigned char)s[l - 1])) s[--l] = '\0';
        if (parse_u64(s, UINT32_MAX, &v)) *num_attr = (uint32_t)v;
    }
    xmlFree(num);
    size_t n = 0;
    for (xmlNode *c = list->children; c; c = c->next)
        if (name_is(c, "Item") && ++n > GB_MANSCDP_MAX_ITEMS) return GB_MANSCDP_ELIMIT;
    if (!n) return 0;
    char *arr = calloc(n, elem_size);
    if (!arr) return GB_MANSCDP_ENOMEM;
    *out = arr;
    size_t i = 0;
    for (xmlNode *c = list->children; c; c = c->next) {
        if (!name_is(c, "Item")) continue;
        void *obj = arr + i * elem_size;
        fields_init(obj, f, nf);
        *count = ++i; /* counted before filling so a failure frees what was set */
        int rc = parse_fields(c, obj, f, nf);
        if (rc) return rc;
    }
    return 0;
}

/* Refuses element nesting deeper than GB_MANSCDP_MAX_DEPTH (iterative walk). */
static bool depth_ok(xmlNode *root)
{
    xmlNode *n = root;
    int depth = 1;
    for (;;) {
        if (n->type == XML_ELEMENT_NODE && depth > GB_MANSCDP_MAX_DEPTH) return false;
        if (n->type == XML_ELEMENT_NODE && n->children) {
            n = n->children;
            depth++;
            continue;
        }
        while (n != root && !n->next) {
            n = n->parent;
            depth--;
        }
        if (n == root) return true;
        n = n->next;
    }
}

static int extract(xmlDoc *doc, gb_manscdp_t *m)
{
    if (doc->intSubset || doc->extSubset) return GB_MANSCDP_EDTD;
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!root) return GB_MANSCDP_EXML;
    for (size_t k = 1; k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
        if (name_is(root, kind_names[k])) m->kind = (gb_msg_kind_t)k;
    if (m->kind == GB_MSG_UNKNOWN) return GB_MANSCDP_EROOT;
    if (!depth_ok(root)) return GB_MANSCDP_ELIMIT;
    int rc = parse_fields(root, m, root_fields, NFIELDS(root_fields));
    if (rc) return rc;
    if (!m->cmd_type || !*m->cmd_type) return GB_MANSCDP_ECMD;
    for (xmlNode *n = root->children; n; n = n->next) {
        if (name_is(n, "DeviceList") && !m->has_list) {
            m->has_list = true;
            rc = parse_list(n, sizeof(gb_catalog_item_t), catalog_fields, NFIELDS(catalog_fields),
                            (void **)&m->items, &m->item_count, &m->list_num);
        } else if (name_is(n, "RecordList") && !m->has_list) {
            m->has_list = true;
            rc = parse_list(n, sizeof(gb_record_item_t), record_fields, NFIELDS(record_fields),
                            (void **)&m->records, &m->record_count, &m->list_num);
        } else if (name_is(n, "Info") && !m->alarm.type) {
            rc = parse_fields(n, m, info_fields, NFIELDS(info_fields));
        } else if (name_is(n, "Alarmstatus") && !m->dstatus.has_alarm_list) {
            m->dstatus.has_alarm_list = true;
            rc = parse_list(n, sizeof(gb_alarm_status_t), alarm_fields, NFIELDS(alarm_fields),
                            (void **)&m->dstatus.alarms, &m->dstatus.alarm_count, NULL);
        }
        if (rc) return rc;
    }
    return 0;
}

#define XML_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC | XML_PARSE_NOCDATA)

/* Parses UTF-8 text; 0 or a negative error. recover: libxml2's recovery mode
 * (last resort for devices that leave '&' unescaped and the like). */
static int parse_utf8(const char *text, size_t len, bool recover, gb_manscdp_t *m)
{
    /* No DTD is ever legitimate in MANSCDP; refusing it up front rules out
     * entity expansion (billion laughs) and external entities entirely. */
    if (memmem(text, len, "<!DOCTYPE", 9) || memmem(text, len, "<!ENTITY", 8)) return GB_MANSCDP_EDTD;
    xmlDoc *doc = xmlReadMemory(text, (int)len, NULL, NULL, XML_OPTIONS | (recover ? XML_PARSE_RECOVER : 0));
    if (!doc) return GB_MANSCDP_EXML;
    int rc = extract(doc, m);
    xmlFreeDoc(doc);
    if (rc) gb_manscdp_free(m);
    return rc;
}

int gb_manscdp_parse(const char *body, size_t len, const char *charset, gb_manscdp_t *out)
{
    gb_manscdp_init(out);
    if (!body) return GB_MANSCDP_EXML;
    if (len > GB_MANSCDP_MAX_BODY) return GB_MANSCDP_ETOOBIG;
    bool bom = len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0;
    if (bom) body += 3, len -= 3;
    /* Devices pad with line breaks before the declaration and NULs after the root. */
    while (len && is_ws((unsigned char)body[0])) body++, len--;
    while (len && (is_ws((unsigned char)body[len - 1]) || body[len - 1] == '\0')) len--;
    if (!len) return GB_MANSCDP_EXML;

    const char *cand[5];
    gb_charset_t cand_cs[5];
    size_t nc = 0;
    char declared[48];
    gb_charset_t cs;
    const char *ic;
    if (bom) cand[nc] = "UTF-8", cand_cs[nc++] = GB_CHARSET_UTF8;
    if (declared_encoding(body, len, declared, sizeof(declared)) && (ic = known_charset(declared, &cs)))
        cand[nc] = ic, cand_cs[nc++] = cs;
    if (charset) { /* a Content-Type parameter may still carry its quotes */
        char ct[48];
        size_t n = 0;
        for (const char *c = charset; *c && n + 1 < sizeof(ct); c++)
            if (*c != '"' && *c != '\'' && !is_ws((unsigned char)*c)) ct[n++] = *c;
        ct[n] = '\0';
        if ((ic = known_charset(ct, &cs))) cand[nc] = ic, cand_cs[nc++] = cs;
    }
    cand[nc] = "UTF-8", cand_cs[nc++] = GB_CHARSET_UTF8;
    cand[nc] = "GB18030", cand_cs[nc++] = GB_CHARSET_GB18030;

    /* Pure ASCII (every Keepalive) reads the same in all of them: no conversion. */
    if (all_ascii(body, len)) {
        int rc = parse_utf8(body, len, false, out);
        if (rc == GB_MANSCDP_EXML) rc = parse_utf8(body, len, true, out);
        if (rc == 0) out->charset = cand_cs[0];
        return rc;
    }

    int rc = GB_MANSCDP_ECHARSET;
    char *first_text = NULL;
    size_t first_len = 0;
    gb_charset_t first_cs = GB_CHARSET_UTF8;
    for (size_t i = 0; i < nc; i++) {
        bool dup = false;
        for (size_t k = 0; k < i; k++) dup |= strcmp(cand[k], cand[i]) == 0;
        if (dup) continue;
        size_t tlen;
        char *text = to_utf8(body, len, cand[i], &tlen);
        if (!text) continue;
        rc = parse_utf8(text, tlen, false, out);
        if (rc == 0) out->charset = cand_cs[i];
        if (rc != GB_MANSCDP_EXML || first_text) {
            free(text);
        } else {
            first_text = text, first_len = tlen, first_cs = cand_cs[i];
        }
        if (rc != GB_MANSCDP_EXML) break; /* success, or a refusal no charset changes */
    }
    if (rc == GB_MANSCDP_EXML && first_text) {
        rc = parse_utf8(first_text, first_len, true, out);
        if (rc == 0) out->charset = first_cs;
    }
    free(first_text);
    return rc;
}

/* ---- building ---- */

/* Appends s as XML text: escaped, invalid UTF-8 -> '?', control chars -> ' '. */
static void put_text(sbuf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), i = 0;
    while (i < len) {
        size_t run = i;
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '&' && p[run] != '<' && p[run] != '>')
            run++;
        if (run > i) {
            sbuf_append(b, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        uint32_t cp;
        size_t n;
        if (c == '&') sbuf_append_cstr(b, "&amp;"), n = 1;
        else if (c == '<') sbuf_append_cstr(b, "&lt;"), n = 1;
        else if (c == '>') sbuf_append_cstr(b, "&gt;"), n = 1;
        else if (c == '\t' || c == '\n') sbuf_append_char(b, (char)c), n = 1;
        else if (c == '\r') sbuf_append_cstr(b, "&#13;"), n = 1;
        else if (c < 0x20 || c == 0x7F) sbuf_append_char(b, ' '), n = 1;
        else if ((n = utf8_decode(p + i, len - i, &cp)) && cp != 0xFFFE && cp != 0xFFFF) sbuf_append(b, p + i, n);
        else sbuf_append_char(b, '?'), n = n ? n : 1;
        i += n;
    }
}

static void put_elem(sbuf_t *b, const char *name, const char *text)
{
    sbuf_printf(b, "<%s>", name);
    put_text(b, text);
    sbuf_printf(b, "</%s>\n", name);
}

static void put_fields(sbuf_t *b, const void *obj, const field_t *f, size_t nf)
{
    const char *base = obj;
    for (size_t i = 0; i < nf; i++) {
        const void *p = base + f[i].off;
        char num[40];
        switch (f[i].type) {
        case F_STR:
            if (*(char *const *)p) put_elem(b, f[i].name, *(char *const *)p);
            break;
        case F_CMDTYPE: {
            const char *name = gb_cmd_name(*(const gb_cmd_t *)(base + f[i].off2));
            if (!name) name = *(char *const *)p;
            if (name) put_elem(b, f[i].name, name);
            break;
        }
        case F_INT:
            if (*(const int *)p >= 0) snprintf(num, sizeof(num), "%d", *(const int *)p), put_elem(b, f[i].name, num);
            break;
        case F_I64:
            if (*(const int64_t *)p >= 0)
                snprintf(num, sizeof(num), "%lld", (long long)*(const int64_t *)p), put_elem(b, f[i].name, num);
            break;
        case F_U32:
            if (*(const bool *)(base + f[i].off2))
                snprintf(num, sizeof(num), "%u", (unsigned)*(const uint32_t *)p), put_elem(b, f[i].name, num);
            break;
        case F_ONOFF: {
            gb_onoff_t v = *(const gb_onoff_t *)p;
            if (v == GB_ONOFF_ON || v == GB_ONOFF_OFF) put_elem(b, f[i].name, v == GB_ONOFF_ON ? "ON" : "OFF");
            break;
        }
        case F_EVENT: {
            const char *name = gb_catalog_event_name(*(const gb_catalog_event_t *)p);
            if (name) put_elem(b, f[i].name, name);
            break;
        }
        case F_LON:
        case F_LAT:
            if (*(const bool *)(base + f[i].off2) && isfinite(*(const double *)p))
                snprintf(num, sizeof(num), "%.6f", *(const double *)p), put_elem(b, f[i].name, num);
            break;
        }
    }
}

static void put_list(sbuf_t *b, const char *name, const void *arr, size_t count, size_t elem_size,
                     const field_t *f, size_t nf)
{
    sbuf_printf(b, "<%s Num=\"%zu\">\n", name, count);
    for (size_t i = 0; i < count; i++) {
        sbuf_append_cstr(b, "<Item>\n");
        put_fields(b, (const char *)arr + i * elem_size, f, nf);
        sbuf_append_cstr(b, "</Item>\n");
    }
    sbuf_printf(b, "</%s>\n", name);
}

/* Appends UTF-8 text converted to charset `to`; characters it cannot encode
 * become numeric character references (they only occur in text content: all
 * markup we write is ASCII). Returns 0 or -1. */
static int put_converted(sbuf_t *out, const char *in, size_t len, const char *to)
{
    iconv_t cd = iconv_open(to, "UTF-8");
    if (cd == (iconv_t)-1) return -1;
    char *ip = (char *)in;
    size_t il = len;
    int rc = 0;
    while (il > 0) {
        if (!sbuf_reserve(out, il * 2 + 16)) {
            rc = -1;
            break;
        }
        char *op = out->data + out->len;
        size_t room = out->cap - out->len - 1, ol = room;
        size_t r = iconv(cd, &ip, &il, &op, &ol);
        out->len += room - ol;
        out->data[out->len] = '\0';
        if (r != (size_t)-1) break;
        if (errno == E2BIG) continue;
        if (errno != EILSEQ) {
            rc = -1;
            break;
        }
        uint32_t cp;
        size_t n = utf8_decode((const unsigned char *)ip, il, &cp);
        if (!n) {
            rc = -1;
            break;
        }
        sbuf_printf(out, "&#x%X;", (unsigned)cp);
        ip += n;
        il -= n;
    }
    iconv_close(cd);
    return out->failed ? -1 : rc;
}

int gb_manscdp_build(sbuf_t *out, gb_charset_t cs, const gb_manscdp_t *m)
{
    const char *root = gb_msg_kind_name(m->kind);
    const char *cmd = gb_cmd_name(m->cmd) ? gb_cmd_name(m->cmd) : m->cmd_type;
    if (!root || !cmd || !*cmd) return GB_MANSCDP_EARG;
    if (out->failed) return GB_MANSCDP_ENOMEM;
    sbuf_t b;
    sbuf_init(&b);
    sbuf_printf(&b, "<?xml version=\"1.0\" encoding=\"%s\"?>\n<%s>\n", gb_charset_name(cs), root);
    put_fields(&b, m, root_fields, NFIELDS(root_fields));
    /* One list per message, as the parser reads it: catalog items win, then
     * records; an empty list keeps the name its command uses. */
    if (m->item_count || (!m->record_count && m->has_list && m->cmd != GB_CMD_RECORD_INFO))
        put_list(&b, "DeviceList", m->items, m->item_count, sizeof(gb_catalog_item_t), catalog_fields,
                 NFIELDS(catalog_fields));
    else if (m->record_count || m->has_list)
        put_list(&b, "RecordList", m->records, m->record_count, sizeof(gb_record_item_t), record_fields,
                 NFIELDS(record_fields));
    if (m->dstatus.alarm_count || m->dstatus.has_alarm_list)
        put_list(&b, "Alarmstatus", m->dstatus.alarms, m->dstatus.alarm_count, sizeof(gb_alarm_status_t),
                 alarm_fields, NFIELDS(alarm_fields));
    if (m->alarm.type) {
        sbuf_append_cstr(&b, "<Info>\n");
        put_fields(&b, m, info_fields, NFIELDS(info_fields));
        sbuf_append_cstr(&b, "</Info>\n");
    }
    sbuf_printf(&b, "</%s>\n", root);
    if (b.failed) {
        sbuf_free(&b);
        return GB_MANSCDP_ENOMEM;
    }
    size_t before = out->len;
    int rc = 0;
    if (cs == GB_CHARSET_UTF8 || all_ascii(b.data, b.len)) {
        sbuf_append(out, b.data, b.len);
        if (out->failed) rc = GB_MANSCDP_ENOMEM;
    } else if (put_converted(out, b.data, b.len, gb_charset_name(cs)) < 0) {
        rc = GB_MANSCDP_ENOMEM;
    }
    if (rc && !out->failed) out->len = before;
    sbuf_free(&b);
    return rc;
}

/* ---- convenience builders ---- */

static void msg_start(gb_manscdp_t *m, gb_msg_kind_t kind, gb_cmd_t cmd, uint32_t sn, const char *device_id)
{
    gb_manscdp_init(m);
    m->kind = kind;
    m->cmd = cmd;
    m->has_sn = true;
    m->sn = sn;
    m->device_id = (char *)device_id;
}

int gb_manscdp_build_keepalive(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id, const char *status)
{
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_NOTIFY, GB_CMD_KEEPALIVE, sn, device_id);
    m.status = (char *)(status ? status : "OK");
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_media_status(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id)
{
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_NOTIFY, GB_CMD_UNKNOWN, sn, device_id);
    m.cmd_type = (char *)"MediaStatus";
    m.notify_type = (char *)"121";
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_query(sbuf_t *out, gb_charset_t cs, gb_cmd_t cmd, uint32_t sn, const char *device_id)
{
    if (cmd == GB_CMD_UNKNOWN) return GB_MANSCDP_EARG;
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_QUERY, cmd, sn, device_id);
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_catalog_response(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                      const gb_catalog_item_t *items, size_t total, size_t from, size_t n)
{
    if (from > total || n > total - from || total > UINT32_MAX || (n && !items)) return GB_MANSCDP_EARG;
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_RESPONSE, GB_CMD_CATALOG, sn, device_id);
    m.has_sum_num = true;
    m.sum_num = (uint32_t)total;
    m.has_list = true;
    m.items = n ? (gb_catalog_item_t *)(items + from) : NULL;
    m.item_count = n;
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_catalog_notify(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                    const gb_catalog_item_t *items, size_t n)
{
    if (n > UINT32_MAX || (n && !items)) return GB_MANSCDP_EARG;
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_NOTIFY, GB_CMD_CATALOG, sn, device_id);
    m.has_sum_num = true;
    m.sum_num = (uint32_t)n;
    m.has_list = true;
    m.items = (gb_catalog_item_t *)items;
    m.item_count = n;
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_device_info_response(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                          const char *result, const gb_device_info_t *info)
{
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_RESPONSE, GB_CMD_DEVICE_INFO, sn, device_id);
    m.result = (char *)result;
    if (info) m.info = *info;
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_device_status_response(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                            const char *result, const char *status, const gb_device_status_t *st)
{
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_RESPONSE, GB_CMD_DEVICE_STATUS, sn, device_id);
    m.result = (char *)result;
    m.status = (char *)status;
    if (st) m.dstatus = *st;
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_record_query(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                  const gb_record_query_t *q)
{
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_QUERY, GB_CMD_RECORD_INFO, sn, device_id);
    if (q) m.record_query = *q;
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_record_response(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                     const char *name, const gb_record_item_t *records, size_t total, size_t from,
                                     size_t n)
{
    if (from > total || n > total - from || total > UINT32_MAX || (n && !records)) return GB_MANSCDP_EARG;
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_RESPONSE, GB_CMD_RECORD_INFO, sn, device_id);
    m.name = (char *)name;
    m.has_sum_num = true;
    m.sum_num = (uint32_t)total;
    m.has_list = true;
    m.records = n ? (gb_record_item_t *)(records + from) : NULL;
    m.record_count = n;
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_ptz_control(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                 const char *ptz_hex)
{
    if (!ptz_hex) return GB_MANSCDP_EARG;
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_CONTROL, GB_CMD_DEVICE_CONTROL, sn, device_id);
    m.control.ptz_cmd = (char *)ptz_hex;
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_control_response(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                      const char *result)
{
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_RESPONSE, GB_CMD_DEVICE_CONTROL, sn, device_id);
    m.result = (char *)(result ? result : "OK");
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_subscribe_query(sbuf_t *out, gb_charset_t cs, gb_cmd_t cmd, uint32_t sn, const char *device_id,
                                     int interval)
{
    if (cmd != GB_CMD_CATALOG && cmd != GB_CMD_ALARM && cmd != GB_CMD_MOBILE_POSITION) return GB_MANSCDP_EARG;
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_QUERY, cmd, sn, device_id);
    m.interval = interval < 0 ? -1 : interval;
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_alarm_notify(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                  const gb_alarm_t *a, bool has_position, double longitude, double latitude)
{
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_NOTIFY, GB_CMD_ALARM, sn, device_id);
    m.alarm = *a;
    m.has_position = has_position;
    m.longitude = longitude;
    m.latitude = latitude;
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_position_notify(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                     const gb_position_t *p, double longitude, double latitude)
{
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_NOTIFY, GB_CMD_MOBILE_POSITION, sn, device_id);
    m.position = *p;
    m.has_position = true;
    m.longitude = longitude;
    m.latitude = latitude;
    return gb_manscdp_build(out, cs, &m);
}

int gb_manscdp_build_alarm_reset(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id)
{
    gb_manscdp_t m;
    msg_start(&m, GB_MSG_CONTROL, GB_CMD_DEVICE_CONTROL, sn, device_id);
    m.control.alarm_cmd = (char *)"ResetAlarm";
    return gb_manscdp_build(out, cs, &m);
}
