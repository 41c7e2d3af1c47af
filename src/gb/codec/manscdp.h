/* manscdp.h — the MANSCDP XML bodies of GB/T 28181 MESSAGE/NOTIFY requests
 * (§A.2 of the standard): one struct for every command cascade speaks, a
 * parser (libxml2) from bytes in whatever charset the peer used, and a
 * builder that writes the struct back in the charset the peer wants.
 *
 * Parsing: the body's bytes and, optionally, the charset parameter of its
 * Content-Type. The XML declaration's encoding is tried first (GB2312 in the
 * field, often a lie), then the Content-Type charset, then UTF-8, then
 * GB18030; a body without a declaration is UTF-8 when it is valid UTF-8, else
 * GB18030. Hard limits: GB_MANSCDP_MAX_BODY bytes, GB_MANSCDP_MAX_ITEMS list
 * items, GB_MANSCDP_MAX_DEPTH element nesting; DOCTYPEs are refused (no
 * entities, no external anything), libxml2 never touches the network.
 *
 * Every string in a parsed message is an owned, NUL-terminated UTF-8 copy
 * (NULL when the element was absent, "" when it was empty; surrounding
 * whitespace trimmed); gb_manscdp_free() releases them. Integer fields hold
 * -1 when absent.
 *
 * Building: gb_manscdp_build() writes every field that is set (non-NULL
 * string, int >= 0, enum != NONE), so a parsed message builds back to an
 * equivalent body. The builder only reads the struct: a caller can point the
 * strings and item arrays at its own memory (and must not call
 * gb_manscdp_free() on such a struct). Convenience wrappers cover the bodies
 * the upper and lower roles send. */
#ifndef CASCADE_GB_CODEC_MANSCDP_H
#define CASCADE_GB_CODEC_MANSCDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"

#define GB_MANSCDP_MAX_BODY (256 * 1024)
#define GB_MANSCDP_MAX_ITEMS 4096
#define GB_MANSCDP_MAX_DEPTH 16

typedef enum {
    GB_CHARSET_GB2312 = 0, /* the default on the wire */
    GB_CHARSET_UTF8,
    GB_CHARSET_GBK,
    GB_CHARSET_GB18030,
} gb_charset_t;

/* "GB2312", "UTF-8"/"UTF8", "GBK"/"CP936", "GB18030" (any case) -> 0 and *out; -1 otherwise. */
int gb_charset_from_name(const char *name, gb_charset_t *out);
const char *gb_charset_name(gb_charset_t cs); /* as written in the XML declaration */

typedef enum { GB_MSG_UNKNOWN = 0, GB_MSG_QUERY, GB_MSG_RESPONSE, GB_MSG_NOTIFY, GB_MSG_CONTROL } gb_msg_kind_t;

typedef enum {
    GB_CMD_UNKNOWN = 0, /* cmd_type holds the text */
    GB_CMD_KEEPALIVE,
    GB_CMD_CATALOG,
    GB_CMD_DEVICE_INFO,
    GB_CMD_DEVICE_STATUS,
    GB_CMD_RECORD_INFO,
    GB_CMD_DEVICE_CONTROL,
    GB_CMD_ALARM,           /* §A.2.5.3 notify, §9.4 subscription */
    GB_CMD_MOBILE_POSITION, /* §A.2.5.6 notify, §9.12 subscription */
} gb_cmd_t;

const char *gb_msg_kind_name(gb_msg_kind_t kind); /* "Query", ...; NULL for UNKNOWN */
const char *gb_cmd_name(gb_cmd_t cmd);            /* "Keepalive", ...; NULL for UNKNOWN */

typedef enum { GB_ONOFF_NONE = 0, GB_ONOFF_ON, GB_ONOFF_OFF } gb_onoff_t;

/* Catalog notify <Event> (§A.2.5, 2016: ON OFF VLOST DEFECT ADD DEL UPDATE). */
typedef enum {
    GB_EVENT_NONE = 0,
    GB_EVENT_ON,
    GB_EVENT_OFF,
    GB_EVENT_VLOST,
    GB_EVENT_DEFECT,
    GB_EVENT_ADD,
    GB_EVENT_DEL,
    GB_EVENT_UPDATE,
} gb_catalog_event_t;

const char *gb_catalog_event_name(gb_catalog_event_t ev); /* NULL for NONE */

/* One <Item> of a Catalog response or notify. */
typedef struct {
    char *device_id, *name, *manufacturer, *model, *owner, *civil_code, *block, *address;
    char *parent_id, *business_group_id, *ip_address;
    int parental, safety_way, register_way, secrecy, port; /* -1 when absent */
    gb_onoff_t status;
    bool has_position;
    double longitude, latitude;
    gb_catalog_event_t event; /* notify only */
} gb_catalog_item_t;

/* Sets every int to -1 and everything else to empty. */
void gb_catalog_item_init(gb_catalog_item_t *it);

typedef struct {
    char *device_name, *manufacturer, *model, *firmware;
    int channel; /* -1 when absent */
} gb_device_info_t;

typedef struct {
    char *device_id, *duty_status; /* ONDUTY / OFFDUTY / ALARM */
} gb_alarm_status_t;

/* DeviceStatus response fields besides the message-level Result and Status. */
typedef struct {
    char *online;           /* ONLINE / OFFLINE */
    char *encode, *record;  /* ON / OFF */
    char *device_time;
    gb_alarm_status_t *alarms;
    size_t alarm_count;
    bool has_alarm_list;    /* <Alarmstatus> present (possibly empty) */
} gb_device_status_t;

/* RecordInfo query (§A.2.4.5). */
typedef struct {
    char *start_time, *end_time, *file_path, *address, *type, *recorder_id;
    int secrecy; /* -1 when absent */
} gb_record_query_t;

/* One <Item> of a RecordInfo response. */
typedef struct {
    char *device_id, *name, *file_path, *address, *start_time, *end_time, *type, *recorder_id;
    int secrecy;       /* -1 when absent */
    int64_t file_size; /* -1 when absent */
} gb_record_item_t;

/* DeviceControl commands (§A.2.3.1). */
typedef struct {
    char *ptz_cmd;    /* 16 hex digits, see ptz.h */
    char *tele_boot;  /* "Boot" */
    char *record_cmd; /* "Record" / "StopRecord" */
    char *guard_cmd;  /* "SetGuard" / "ResetGuard" */
    char *alarm_cmd;  /* "ResetAlarm" */
} gb_device_control_t;

/* Alarm notify fields (§A.2.5.3); type is <Info><AlarmType>. Priority 1-4
 * and method 1-7 stay text: devices send what they like. */
typedef struct {
    char *priority, *method, *time, *description, *type;
} gb_alarm_t;

/* MobilePosition notify fields (§A.2.5.6) besides Longitude/Latitude. */
typedef struct {
    char *time, *speed, *direction, *altitude;
} gb_position_t;

typedef struct {
    gb_msg_kind_t kind;
    gb_cmd_t cmd;
    char *cmd_type;     /* the CmdType text as sent */
    bool has_sn;
    uint32_t sn;
    char *device_id;
    gb_charset_t charset; /* parse: how the body was decoded */

    /* Message-level scalars; which ones a command uses is in §A.2. */
    char *status; /* Keepalive (OK/ERROR) and DeviceStatus response (OK/ERROR) */
    char *result; /* DeviceInfo/DeviceStatus/DeviceControl responses (OK/ERROR) */
    char *name;   /* RecordInfo response */
    char *notify_type; /* MediaStatus notify (§A.2.5.9): "121", the file ended */

    /* Catalog response/notify and RecordInfo response. */
    bool has_sum_num;
    uint32_t sum_num;
    bool has_list;      /* a <DeviceList>/<RecordList> element was present */
    uint32_t list_num;  /* its Num attribute (0 when absent) */
    gb_catalog_item_t *items;
    size_t item_count;
    gb_record_item_t *records;
    size_t record_count;

    gb_device_info_t info;       /* DeviceInfo response */
    gb_device_status_t dstatus;  /* DeviceStatus response */
    gb_record_query_t record_query;
    gb_device_control_t control;

    /* Alarm and MobilePosition notifies; Interval of a MobilePosition query
     * (seconds between notifies, -1 absent). The message-level position is
     * set only when both Longitude and Latitude parsed. */
    gb_alarm_t alarm;
    gb_position_t position;
    bool has_position;
    double longitude, latitude;
    int interval;
} gb_manscdp_t;

/* Errors (negative return values). */
enum {
    GB_MANSCDP_ETOOBIG = -1,  /* body over GB_MANSCDP_MAX_BODY */
    GB_MANSCDP_ECHARSET = -2, /* no charset decoded it */
    GB_MANSCDP_EXML = -3,     /* not well-formed XML */
    GB_MANSCDP_EDTD = -4,     /* has a DOCTYPE / entity declarations */
    GB_MANSCDP_EROOT = -5,    /* root is not Query/Response/Notify/Control */
    GB_MANSCDP_ECMD = -6,     /* no CmdType */
    GB_MANSCDP_ELIMIT = -7,   /* too many items or too deep */
    GB_MANSCDP_ENOMEM = -8,
    GB_MANSCDP_EARG = -9,     /* builder: missing kind/CmdType, bad slice */
};
const char *gb_manscdp_strerror(int err);

/* Sets every field empty (ints -1). */
void gb_manscdp_init(gb_manscdp_t *m);
/* charset: the Content-Type charset parameter or NULL. On success returns 0
 * and fills out (free it with gb_manscdp_free); on error returns a negative
 * GB_MANSCDP_E* and out is left empty (gb_manscdp_free is still safe).
 * An unknown CmdType is not an error (cmd == GB_CMD_UNKNOWN). */
int gb_manscdp_parse(const char *body, size_t len, const char *charset, gb_manscdp_t *out);
void gb_manscdp_free(gb_manscdp_t *m);

/* Appends the XML body of m in charset cs (declaration included) to out.
 * One list is written: DeviceList when item_count > 0, else RecordList when
 * record_count > 0, else an empty one of the command's kind when has_list.
 * Needs kind and a CmdType (cmd, or cmd_type when cmd is UNKNOWN). Text is
 * escaped; characters GB2312/GBK cannot encode are written as character
 * references (&#x...;); invalid UTF-8 bytes in the input become '?' and
 * control characters a space. Returns 0, or a negative GB_MANSCDP_E* (out is
 * then unchanged). */
int gb_manscdp_build(sbuf_t *out, gb_charset_t cs, const gb_manscdp_t *m);

/* ---- convenience builders (all return like gb_manscdp_build) ---- */

/* <Notify> Keepalive with <Status> (status NULL -> "OK"). */
int gb_manscdp_build_keepalive(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id, const char *status);
/* <Query> with only CmdType/SN/DeviceID: Catalog, DeviceInfo, DeviceStatus. */
/* The MediaStatus notify a device sends when a playback or download reached
 * the end of the requested range (NotifyType 121, §A.2.5.9); device_id is
 * the channel that was played. */
int gb_manscdp_build_media_status(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id);
int gb_manscdp_build_query(sbuf_t *out, gb_charset_t cs, gb_cmd_t cmd, uint32_t sn, const char *device_id);
/* <Response> Catalog carrying items[from, from+n) of a catalog of total items:
 * SumNum = total, DeviceList Num = n. -EARG when the slice is out of range. */
int gb_manscdp_build_catalog_response(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                      const gb_catalog_item_t *items, size_t total, size_t from, size_t n);
/* <Notify> Catalog with items[0, n) (each with its Event); SumNum = n. */
int gb_manscdp_build_catalog_notify(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                    const gb_catalog_item_t *items, size_t n);
int gb_manscdp_build_device_info_response(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                          const char *result, const gb_device_info_t *info);
/* status: the device's <Status> (OK/ERROR). */
int gb_manscdp_build_device_status_response(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                            const char *result, const char *status, const gb_device_status_t *st);
int gb_manscdp_build_record_query(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                  const gb_record_query_t *q);
/* <Response> RecordInfo carrying records[from, from+n) of total: SumNum = total. */
int gb_manscdp_build_record_response(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                     const char *name, const gb_record_item_t *records, size_t total, size_t from,
                                     size_t n);
/* <Control> DeviceControl with <PTZCmd>. */
int gb_manscdp_build_ptz_control(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                 const char *ptz_hex);
/* The body of a SUBSCRIBE (§9.11, §9.4, §9.12): <Query> of cmd (Catalog,
 * Alarm or MobilePosition) with <Interval> when interval >= 0. */
int gb_manscdp_build_subscribe_query(sbuf_t *out, gb_charset_t cs, gb_cmd_t cmd, uint32_t sn, const char *device_id,
                                     int interval);
/* <Notify> Alarm; a's strings may be NULL (not written); position written
 * when has_position. */
int gb_manscdp_build_alarm_notify(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                  const gb_alarm_t *a, bool has_position, double longitude, double latitude);
/* <Notify> MobilePosition at (longitude, latitude). */
int gb_manscdp_build_position_notify(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                     const gb_position_t *p, double longitude, double latitude);
/* <Control> DeviceControl with <AlarmCmd>ResetAlarm</AlarmCmd> (§A.2.3.1.7). */
int gb_manscdp_build_alarm_reset(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id);
/* <Response> DeviceControl with <Result>. */
int gb_manscdp_build_control_response(sbuf_t *out, gb_charset_t cs, uint32_t sn, const char *device_id,
                                      const char *result);

#endif
